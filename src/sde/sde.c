/* The parameterization layer: schedule + model -> score, eps, x0, drifts, divergences.
 *
 * Every output kind is reduced to s = a F(in x, cond) + k x (see sde.h); each compute call
 * evaluates the per-row coefficients in double, the model once on the scaled input, and then
 * an affine per-row map out = P s + Q x, again in double per element.
 *
 * The model is only read: every model evaluation goes through the sde's own model workspace
 * (score__model_ws), so any number of sdes, each used by one thread, may evaluate one model at
 * the same time. The sde's label and context go to the model through that workspace; with a
 * guidance weight w != 0 a call evaluates its n rows twice in one batch of 2n rows (label y,
 * then the null label) and combines the two halves per element before the affine map. */
#include <math.h>
#include <string.h>

#include "model/model-priv.h"
#include "sde-priv.h"

static const score__param_desc sde_params[SCORE__SDE_NPARAMS] = {
    {SCORE_SDE_PARAM_OUTPUT, "output", SCORE_PARAM_I64, 1, 6, SCORE_OUTPUT_SCORE,
     "what the model outputs: 1 score, 2 eps, 3 x0, 4 v, 5 EDM raw network, 6 score * sigma"},
    {SCORE_SDE_PARAM_COND, "cond", SCORE_PARAM_I64, 0, 4, SCORE_COND_DEFAULT,
     "conditioning value: 0 default (EDM: ln(sigma/alpha)/4, else t), 1 t, 2 cond_scale * t, "
     "3 sigma/alpha, 4 ln(sigma/alpha)/4"},
    {SCORE_SDE_PARAM_COND_SCALE, "cond_scale", SCORE_PARAM_F64, 1e-12, 1e12, 999.0,
     "factor of the scaled-time conditioning (cond = 2)"},
    {SCORE_SDE_PARAM_SIGMA_DATA, "sigma_data", SCORE_PARAM_F64, 1e-6, 1e6, 0.5,
     "data standard deviation of the EDM preconditioning"},
    {SCORE_SDE_PARAM_GUIDANCE, "guidance", SCORE_PARAM_F64, -1e6, 1e6, 0.0,
     "classifier-free guidance weight w on one conditional model: (1 + w) s(x, y) - w s(x, null)"},
    {SCORE_SDE_PARAM_THRESHOLD, "threshold", SCORE_PARAM_F64, 0.0, 1.0, 0.0,
     "dynamic-thresholding percentile p of the data prediction; 0 = off"},
    {SCORE_SDE_PARAM_OBS_VAR, "obs_var", SCORE_PARAM_F64, 0.0, 1e12, 0.0,
     "prior data variance v of the PiGDM observation likelihood; 0 = DPS (r_t = 0)"},
    {SCORE_SDE_PARAM_OBS_ZETA, "obs_zeta", SCORE_PARAM_F64, 0.0, 1e12, 0.0,
     "DPS step size zeta of the normalised observation term; 0 = off"},
    {SCORE_SDE_PARAM_OBS_METHOD, "obs_method", SCORE_PARAM_I64, 0, 1, SCORE_OBS_METHOD_DEFAULT,
     "conditioning on data: 0 DPS / PiGDM (observation), replacement (known coordinates); "
     "1 moment matching with the Tweedie covariance (exact for Gaussian data)"},
};

const score__param_desc *score__sde_param_table(size_t *n_out)
{
    *n_out = SCORE__SDE_NPARAMS;
    return sde_params;
}

static int64_t par_i(const score_sde *sde, int id)
{
    return sde->params[score__param_index(sde_params, SCORE__SDE_NPARAMS, id)].i;
}

static double par_f(const score_sde *sde, int id)
{
    return sde->params[score__param_index(sde_params, SCORE__SDE_NPARAMS, id)].f;
}

double score__sde_par_f(const score_sde *sde, int id)
{
    return par_f(sde, id);
}

int64_t score__sde_par_i(const score_sde *sde, int id)
{
    return par_i(sde, id);
}

/* Re-reports the current last-error message (e.g. the model's) prefixed with fn. */
static int rewrap(const char *fn, int rc, const char *what)
{
    char msg[384];
    strncpy(msg, score_last_error_message(), sizeof msg - 1);
    msg[sizeof msg - 1] = '\0';
    return score__error(rc, fn, "%s failed: %s", what, msg);
}

/* ---- coefficients ------------------------------------------------------------------ */

int score__sde_row_coefs(const score_sde *sde, const char *fn, size_t row, int output_kind,
                         double t, double *alpha, double *sigma, double *a, double *k,
                         double *in_scale, double *cond)
{
    double al, si, ca = 1.0, ck = 0.0, cin = 1.0, cc;
    int ckind = (int)par_i(sde, SCORE_SDE_PARAM_COND), rc;
    if (!isfinite(t))
        return score__error(SCORE_E_NUMERIC, fn, "t[%zu] = %g is not finite", row, t);
    if (t == 0.0)
        return score__error(SCORE_E_RANGE, fn,
                            "t[%zu] = 0 is the grid end (sigma = 0, the data itself): the model "
                            "cannot be evaluated there; take the last step to 0 with the data "
                            "prediction at the previous time", row);
    if (t < 0.0)
        return score__error(SCORE_E_RANGE, fn, "t[%zu] = %g is negative", row, t);
    rc = score_schedule_alpha_sigma(sde->sched, 1, &t, &al, &si);
    if (rc != SCORE_OK)
        return rewrap(fn, rc, "the schedule at this time");
    if (!(si > 0.0) || !(al > 0.0) || !isfinite(si) || !isfinite(al))
        return score__error(SCORE_E_RANGE, fn,
                            "t[%zu] = %g gives alpha = %g, sigma = %g: the model needs "
                            "0 < alpha, 0 < sigma < inf", row, t, al, si);
    switch (output_kind) {
    case SCORE_OUTPUT_SCORE:
        break;
    case SCORE_OUTPUT_EPS:
        ca = -1.0 / si;
        break;
    case SCORE_OUTPUT_X0:
        ca = al / (si * si);
        ck = -1.0 / (si * si);
        break;
    case SCORE_OUTPUT_V: {
        double r2 = al * al + si * si;
        ca = -al / (si * r2);
        ck = -1.0 / r2;
        break;
    }
    case SCORE_OUTPUT_EDM: {
        /* s_e = sigma / alpha; c_skip - 1 = -s_e^2 / den and alpha c_out / sigma^2 simplify
         * to the forms below (no cancellation). */
        double sd = par_f(sde, SCORE_SDE_PARAM_SIGMA_DATA), se = si / al;
        double rden = sqrt(se * se + sd * sd);
        ca = sd / (si * rden);
        ck = -1.0 / (al * al * rden * rden);
        cin = 1.0 / (al * rden);
        break;
    }
    case SCORE_OUTPUT_SCORE_OVER_SIGMA:
        ca = 1.0 / si;
        break;
    default:
        return score__error(SCORE_E_RANGE, fn, "output kind %d not in [1, 6]", output_kind);
    }
    if (ckind == SCORE_COND_DEFAULT)
        ckind = output_kind == SCORE_OUTPUT_EDM ? SCORE_COND_LOG_SIGMA_4 : SCORE_COND_T;
    switch (ckind) {
    case SCORE_COND_T_SCALED:
        cc = par_f(sde, SCORE_SDE_PARAM_COND_SCALE) * t;
        break;
    case SCORE_COND_SIGMA:
        cc = si / al;
        break;
    case SCORE_COND_LOG_SIGMA_4:
        cc = 0.25 * (log(si) - log(al));
        break;
    default:
        cc = t;
        break;
    }
    if (!isfinite(ca) || !isfinite(ck) || !isfinite(cin) || !isfinite(cc))
        return score__error(SCORE_E_RANGE, fn,
                            "t[%zu] = %g: coefficients overflow (alpha = %g, sigma = %g)", row, t,
                            al, si);
    if (alpha) *alpha = al;
    if (sigma) *sigma = si;
    if (a) *a = ca;
    if (k) *k = ck;
    if (in_scale) *in_scale = cin;
    if (cond) *cond = cc;
    return SCORE_OK;
}

int score_sde_coefs(const score_sde *sde, size_t n, const double *t, double *a, double *k,
                    double *in_scale, double *cond)
{
    int kind;
    if (sde == NULL || (n > 0 && t == NULL))
        return score__error(SCORE_E_INVAL, __func__, "sde or t is NULL");
    kind = (int)par_i(sde, SCORE_SDE_PARAM_OUTPUT);
    for (size_t b = 0; b < n; b++) {
        int rc = score__sde_row_coefs(sde, __func__, b, kind, t[b], NULL, NULL, a ? a + b : NULL,
                                      k ? k + b : NULL, in_scale ? in_scale + b : NULL,
                                      cond ? cond + b : NULL);
        if (rc != SCORE_OK)
            return rc;
    }
    return SCORE_OK;
}

/* ---- lifecycle and parameters -------------------------------------------------------- */

static void free_workspace(score_sde *sde)
{
    score__free(sde->al);
    score__free(sde->si);
    score__free(sde->a);
    score__free(sde->k);
    score__free(sde->in);
    score__free(sde->cond);
    score__free(sde->fc);
    score__free(sde->g2);
    score__free(sde->tr);
    score__free(sde->xin);
    score__free(sde->fout);
    sde->al = sde->si = sde->a = sde->k = sde->in = sde->cond = sde->fc = sde->g2 = NULL;
    sde->tr = NULL;
    sde->xin = sde->fout = NULL;
    sde->cap_n = 0;
}

/* A classifier's outputs are K logits, not a field on the data: it guides a score model
 * (score_sde_set_classifier()) and is never one. */
static int not_a_score(const char *fn)
{
    return score__error(SCORE_E_UNSUPPORTED, fn, "the model is a classifier, not a score model: "
                        "attach it to the sde of a score model with score_sde_set_classifier()");
}

int score_sde_new(score_sde **out, const score_schedule *sched, score_model *model,
                  int output_kind)
{
    score_sde *sde;
    int rc;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (sched == NULL || model == NULL)
        return score__error(SCORE_E_INVAL, __func__, "sched or model is NULL");
    if (output_kind < SCORE_OUTPUT_SCORE || output_kind > SCORE_OUTPUT_SCORE_OVER_SIGMA)
        return score__error(SCORE_E_RANGE, __func__, "output kind %d not in [1, 6]", output_kind);
    if (score_model_kind(model) == SCORE_MODEL_CLASSIFIER)
        return not_a_score(__func__);
    sde = score__calloc(1, sizeof *sde);
    if (sde == NULL)
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    if (score__model_ws_new(&sde->mws) != SCORE_OK) {
        score__free(sde);
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    }
    rc = score_schedule_clone(&sde->sched, sched);
    if (rc == SCORE_OK && (rc = score_schedule_prepare(sde->sched)) != SCORE_OK)
        rc = rewrap(__func__, rc, "preparing the schedule");
    else if (rc != SCORE_OK)
        rc = rewrap(__func__, rc, "copying the schedule");
    if (rc != SCORE_OK) {
        score_schedule_free(sde->sched);
        score__model_ws_free(sde->mws);
        score__free(sde);
        return rc;
    }
    sde->model = model;
    sde->dim = score_model_dim(model);
    sde->label = SCORE_LABEL_NULL;
    if ((sde->trow = score__calloc(2 * sde->dim, sizeof(double))) == NULL) {
        score_sde_free(sde);
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    }
    score__param_defaults(sde_params, SCORE__SDE_NPARAMS, sde->params);
    sde->params[score__param_index(sde_params, SCORE__SDE_NPARAMS, SCORE_SDE_PARAM_OUTPUT)].i =
        output_kind;
    *out = sde;
    return SCORE_OK;
}

void score_sde_free(score_sde *sde)
{
    if (sde == NULL)
        return;
    free_workspace(sde);
    score__free(sde->pout);
    score__free(sde->basis);
    score__free(sde->ctx);
    score__free(sde->glab);
    score__free(sde->gprobes);
    score__sde_classifier_free(sde);
    score__sde_threshold_free(sde);
    score__sde_observation_free(sde);
    score__sde_f64_free(sde);
    score__model_ws_free(sde->mws);
    score_schedule_free(sde->sched);
    score__free(sde);
}

SCORE__DEFINE_PARAM_ACCESSORS(score_sde, score_sde, "sde", sde_params, SCORE__SDE_NPARAMS)

int score_sde_set_model(score_sde *sde, score_model *model)
{
    if (sde == NULL || model == NULL)
        return score__error(SCORE_E_INVAL, __func__, "sde or model is NULL");
    if (score_model_kind(model) == SCORE_MODEL_CLASSIFIER)
        return not_a_score(__func__);
    if (score_model_dim(model) != sde->dim)
        return score__error(SCORE_E_SHAPE, __func__, "the new model has dim %zu, the sde has %zu",
                            score_model_dim(model), sde->dim);
    sde->model = model;
    return SCORE_OK;
}

score_model *score_sde_model(const score_sde *sde)
{
    return sde ? sde->model : NULL;
}

const score_schedule *score_sde_schedule(const score_sde *sde)
{
    return sde ? sde->sched : NULL;
}

size_t score_sde_dim(const score_sde *sde)
{
    return sde ? sde->dim : 0;
}

uint64_t score_sde_nfe(const score_sde *sde)
{
    return sde ? sde->nfe : 0;
}

void score_sde_reset_nfe(score_sde *sde)
{
    if (sde)
        sde->nfe = 0;
}

int score_sde_last_callback_status(const score_sde *sde)
{
    return sde ? sde->mws->cb_status : 0;
}

/* ---- workspace ---------------------------------------------------------------------- */

static int grow_rows(const char *fn, score_sde *sde, size_t n)
{
    size_t nd;
    double **rows[] = {&sde->al, &sde->si, &sde->a, &sde->k, &sde->in, &sde->cond, &sde->fc,
                       &sde->g2, &sde->tr};
    if (n <= sde->cap_n)
        return SCORE_OK;
    free_workspace(sde);
    if (score__mul_size(n, sde->dim, &nd) != 0)
        return score__error(SCORE_E_NOMEM, fn, "batch of %zu rows is too large", n);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if ((*rows[i] = score__calloc(n, sizeof(double))) == NULL)
            goto fail;
    if ((sde->xin = score__calloc(nd, sizeof(float))) == NULL ||
        (sde->fout = score__calloc(nd, sizeof(float))) == NULL)
        goto fail;
    sde->cap_n = n;
    return SCORE_OK;
fail:
    free_workspace(sde);
    return score__error(SCORE_E_NOMEM, fn, "workspace allocation for %zu rows failed", n);
}

/* ---- evaluation core ---------------------------------------------------------------- */

int score__sde_check_args(const char *fn, const score_sde *sde, size_t n, const double *t,
                          const void *x, const void *out)
{
    if (sde == NULL)
        return score__error(SCORE_E_INVAL, fn, "sde is NULL");
    if (n > 0 && (t == NULL || x == NULL || out == NULL))
        return score__error(SCORE_E_INVAL, fn, "t, x or an output is NULL");
    if (n > 0 && x == out)
        return score__error(SCORE_E_INVAL, fn, "the output must not alias x");
    return SCORE_OK;
}

/* Coefficients of all rows into the workspace; want_fg also fills f_coef and g^2. Builds the
 * model input (sde->xin, or x itself when every in_scale is 1) in *xm. */
static int prepare_rows(const char *fn, score_sde *sde, size_t n, const double *t,
                        const float *x, int want_fg, const float **xm)
{
    size_t d = sde->dim;
    int kind = (int)par_i(sde, SCORE_SDE_PARAM_OUTPUT), rc, scaled = 0;
    if ((rc = grow_rows(fn, sde, n)) != SCORE_OK)
        return rc;
    for (size_t b = 0; b < n; b++) {
        if (b > 0 && t[b] == t[b - 1]) {
            /* a pure function of t: rows at the same time (every sampler step) share it */
            sde->al[b] = sde->al[b - 1];
            sde->si[b] = sde->si[b - 1];
            sde->a[b] = sde->a[b - 1];
            sde->k[b] = sde->k[b - 1];
            sde->in[b] = sde->in[b - 1];
            sde->cond[b] = sde->cond[b - 1];
            continue;
        }
        rc = score__sde_row_coefs(sde, fn, b, kind, t[b], &sde->al[b], &sde->si[b], &sde->a[b],
                                  &sde->k[b], &sde->in[b], &sde->cond[b]);
        if (rc != SCORE_OK)
            return rc;
        if (sde->in[b] != 1.0)
            scaled = 1;
    }
    if (want_fg) {
        rc = score_schedule_sde_coefs(sde->sched, n, t, sde->fc, sde->g2);
        if (rc != SCORE_OK)
            return rewrap(fn, rc, "the schedule's SDE coefficients");
        for (size_t b = 0; b < n; b++)
            sde->g2[b] *= sde->g2[b];
    }
    if (scaled) {
        for (size_t b = 0; b < n; b++)
            for (size_t j = 0; j < d; j++)
                sde->xin[b * d + j] = (float)(sde->in[b] * (double)x[b * d + j]);
        *xm = sde->xin;
    } else {
        *xm = x;
    }
    return SCORE_OK;
}

/* The n rows of xm and their conditioning values a second time (rows n..2n-1 of sde->xin and
 * sde->cond): the null-label half of a guided batch. */
static const float *guided_input(score_sde *sde, size_t n, const float *xm)
{
    size_t nd = n * sde->dim;
    if (xm != sde->xin)
        memcpy(sde->xin, xm, nd * sizeof(float));
    memcpy(sde->xin + nd, sde->xin, nd * sizeof(float));
    memcpy(sde->cond + n, sde->cond, n * sizeof(double));
    return sde->xin;
}

/* Everything before the model evaluation of a call on n rows: the conditions (label, context,
 * guidance weight *w), the per-row coefficients and the model input *xm of the
 * score__sde_model_rows(n, *w) rows to evaluate. */
int score__sde_open_call(const char *fn, score_sde *sde, size_t n, const double *t,
                         const float *x, int want_fg, const float **xm, double *w)
{
    int rc = score__sde_bind_labels(fn, sde, n, w);
    if (rc == SCORE_OK)
        rc = score__sde_bind_context(fn, sde);
    if (rc == SCORE_OK && *w != 0.0)
        rc = grow_rows(fn, sde, 2 * n);
    if (rc == SCORE_OK)
        rc = prepare_rows(fn, sde, n, t, x, want_fg, xm);
    if (rc == SCORE_OK && *w != 0.0)
        *xm = guided_input(sde, n, *xm);
    return rc;
}

/* Rows of the model evaluation of a call on n rows: 2n for a guided call. */
size_t score__sde_model_rows(size_t n, double w)
{
    return w != 0.0 ? 2 * n : n;
}

void score__sde_set_input(score_sde *sde, score__sde_input_fn fn, void *ud)
{
    sde->input_fn = fn;
    sde->input_ud = fn != NULL ? ud : NULL;
}

void score__sde_set_rows(score_sde *sde, size_t n, size_t row0, const size_t *idx)
{
    sde->mws->row_n = n;
    sde->mws->row0 = row0;
    sde->mws->row_idx = n > 0 ? idx : NULL;
}

int score__sde_model_call_failed(const char *fn, int rc)
{
    return rewrap(fn, rc, "the model evaluation");
}


void score__sde_row_map(const score_sde *sde, int want, size_t b, double *P, double *Q)
{
    switch (want) {
    case SCORE__SDE_WANT_EPS: *P = -sde->si[b]; *Q = 0.0; break;
    case SCORE__SDE_WANT_X0: *P = sde->si[b] * sde->si[b] / sde->al[b]; *Q = 1.0 / sde->al[b]; break;
    case SCORE__SDE_WANT_REVERSE: *P = -sde->g2[b]; *Q = sde->fc[b]; break;
    case SCORE__SDE_WANT_PF: *P = -0.5 * sde->g2[b]; *Q = sde->fc[b]; break;
    default: *P = 1.0; *Q = 0.0; break;
    }
}

static int non_finite(const char *fn, size_t b, const double *t, size_t j, double f)
{
    return score__error(SCORE_E_NUMERIC, fn, "non-finite value in row %zu (t = %g, component "
                        "%zu; model output %g)", b, t[b], j, f);
}

/* A thresholded row: the score s of the row (in x0u, d values) becomes x0, is thresholded,
 * and out = x0' (want X0) or P s' + Q x with the implied score s' = (alpha x0' - x) / sigma^2. */
static int threshold_out(const char *fn, const score_sde *sde, int want, size_t b,
                         const double *t, const float *x, const float *F, double *x0u,
                         float *out)
{
    size_t d = sde->dim;
    double P, Q, al = sde->al[b], s2 = sde->si[b] * sde->si[b];
    score__sde_row_map(sde, want, b, &P, &Q);
    for (size_t j = 0; j < d; j++) {
        x0u[j] = ((double)x[b * d + j] + s2 * x0u[j]) / al;
        if (!isfinite(x0u[j]))
            return non_finite(fn, b, t, j, (double)F[b * d + j]);
    }
    score__sde_threshold_row(sde, x0u);
    for (size_t j = 0; j < d; j++) {
        double xv = (double)x[b * d + j];
        float v;
        if (want == SCORE__SDE_WANT_X0) {
            v = (float)x0u[j];
            if (sde->clip_lof != NULL) /* exactly inside the box, also after the rounding */
                v = fminf(fmaxf(v, sde->clip_lof[j]), sde->clip_hif[j]);
        } else {
            v = (float)(P * ((al * x0u[j] - xv) / s2) + Q * xv);
        }
        if (!isfinite(v))
            return non_finite(fn, b, t, j, (double)F[b * d + j]);
        out[b * d + j] = v;
    }
    return SCORE_OK;
}

/* out = P s + Q x from the model output F (sde->fout) with s = a F + k x; for a guided call
 * (w != 0) s = (1 + w) s_y - w s_null with s_null from rows n..2n-1 of F; then the classifier
 * and observation terms; then, with a threshold, the map through the thresholded x0 (see
 * threshold_out). Checks finiteness. */
int score__sde_combine(const char *fn, const score_sde *sde, int want, size_t n, const double *t,
                       const float *x, const float *F, double w, float *out)
{
    size_t d = sde->dim;
    const float *Fn = F + n * d; /* read only when w != 0 (F then has 2n rows) */
    int thr = score__sde_threshold_active(sde);
    for (size_t b = 0; b < n; b++) {
        double P, Q, a = sde->a[b], k = sde->k[b];
        score__sde_row_map(sde, want, b, &P, &Q);
        for (size_t j = 0; j < d; j++) {
            double xv = (double)x[b * d + j];
            double s = a * (double)F[b * d + j] + k * xv;
            float v;
            if (w != 0.0)
                s = (1.0 + w) * s - w * (a * (double)Fn[b * d + j] + k * xv);
            if (sde->cg != NULL) /* classifier guidance, already in score units */
                s += sde->clf_w * (double)sde->cg[b * d + j];
            if (sde->og != NULL) /* the observation's likelihood gradient, in score units */
                s += (double)sde->og[b * d + j];
            if (thr) {
                sde->trow[j] = s;
                continue;
            }
            v = (float)(P * s + Q * xv);
            if (!isfinite(v))
                return non_finite(fn, b, t, j, (double)F[b * d + j]);
            out[b * d + j] = v;
        }
        if (thr) {
            int rc = threshold_out(fn, sde, want, b, t, x, F, sde->trow, out);
            if (rc != SCORE_OK)
                return rc;
        }
    }
    return SCORE_OK;
}

static int evaluate(const char *fn, score_sde *sde, int want, size_t n, const double *t,
                    const float *x, float *out)
{
    const float *xm;
    double w;
    int rc = score__sde_check_args(fn, sde, n, t, x, out);
    if (rc != SCORE_OK || n == 0)
        return rc;
    if (sde->input_fn != NULL) {
        const struct score__model_ws *mw = sde->mws;
        const float *xe = x;
        int has_rows = mw->row_n == n;
        rc = sde->input_fn(sde->input_ud, fn, n, has_rows, has_rows ? mw->row0 : 0,
                           has_rows ? mw->row_idx : NULL, t, x, &xe);
        if (rc != SCORE_OK)
            return rc;
        x = xe;
    }
    rc = score__sde_open_call(fn, sde, n, t, x, want == SCORE__SDE_WANT_REVERSE || want == SCORE__SDE_WANT_PF, &xm, &w);
    if (rc != SCORE_OK)
        return rc;
    sde->nfe++;
    /* No backward follows an sde evaluation: the model needs no cache (bounded memory). */
    rc = score__model_infer_ws(sde->model, sde->mws, score__sde_model_rows(n, w), xm, sde->cond, sde->fout);
    if (rc != SCORE_OK)
        return score__sde_model_call_failed(fn, rc);
    if ((rc = score__sde_classifier_term(fn, sde, n, t, x)) != SCORE_OK)
        return rc;
    if ((rc = score__sde_observation_term(fn, sde, n, t, x, xm, w)) != SCORE_OK) {
        sde->cg = NULL;
        return rc;
    }
    rc = score__sde_combine(fn, sde, want, n, t, x, sde->fout, w, out);
    sde->cg = NULL;
    sde->og = NULL;
    return rc;
}

int score_sde_score(score_sde *sde, size_t n, const double *t, const float *x, float *out)
{
    return evaluate(__func__, sde, SCORE__SDE_WANT_SCORE, n, t, x, out);
}

int score_sde_eps(score_sde *sde, size_t n, const double *t, const float *x, float *out)
{
    return evaluate(__func__, sde, SCORE__SDE_WANT_EPS, n, t, x, out);
}

int score_sde_x0(score_sde *sde, size_t n, const double *t, const float *x, float *out)
{
    return evaluate(__func__, sde, SCORE__SDE_WANT_X0, n, t, x, out);
}

int score_sde_reverse_drift(score_sde *sde, size_t n, const double *t, const float *x, float *out)
{
    return evaluate(__func__, sde, SCORE__SDE_WANT_REVERSE, n, t, x, out);
}

int score_sde_pf_drift(score_sde *sde, size_t n, const double *t, const float *x, float *out)
{
    return evaluate(__func__, sde, SCORE__SDE_WANT_PF, n, t, x, out);
}

/* ---- conversion --------------------------------------------------------------------- */

int score_sde_convert(score_sde *sde, int from_kind, int to_kind, size_t n, const double *t,
                      const float *x, const float *in, float *out)
{
    size_t d;
    int rc = score__sde_check_args(__func__, sde, n, t, x, out);
    if (rc != SCORE_OK)
        return rc;
    if (n > 0 && in == NULL)
        return score__error(SCORE_E_INVAL, __func__, "in is NULL");
    if (from_kind < SCORE_OUTPUT_SCORE || from_kind > SCORE_OUTPUT_SCORE_OVER_SIGMA ||
        to_kind < SCORE_OUTPUT_SCORE || to_kind > SCORE_OUTPUT_SCORE_OVER_SIGMA)
        return score__error(SCORE_E_RANGE, __func__, "output kinds %d -> %d not in [1, 6]",
                            from_kind, to_kind);
    if (n > 0 && in == x)
        return score__error(SCORE_E_INVAL, __func__, "in must not alias x");
    d = sde->dim;
    for (size_t b = 0; b < n; b++) {
        double af, kf, at, kt;
        if ((rc = score__sde_row_coefs(sde, __func__, b, from_kind, t[b], NULL, NULL, &af, &kf,
                                       NULL, NULL)) != SCORE_OK ||
            (rc = score__sde_row_coefs(sde, __func__, b, to_kind, t[b], NULL, NULL, &at, &kt,
                                       NULL, NULL)) != SCORE_OK)
            return rc;
        for (size_t j = 0; j < d; j++) {
            double xv = (double)x[b * d + j];
            double s = af * (double)in[b * d + j] + kf * xv;
            float v = (float)((s - kt * xv) / at);
            if (!isfinite(v))
                return score__error(SCORE_E_NUMERIC, __func__,
                                    "non-finite value in row %zu (t = %g, component %zu)", b,
                                    t[b], j);
            out[b * d + j] = v;
        }
    }
    return SCORE_OK;
}
