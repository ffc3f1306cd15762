/* Score-matching losses: object, parameters and the value / gradient of every kind (the per-row
 * times, levels and coefficients are drawn in loss-setup.c). Definitions and reductions in include/libscore/loss.h. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "libscore/schedule.h"
#include "loss-priv.h"
#include "model/model-priv.h"
#include "sde/sde-priv.h"

static const score__param_desc loss_params[SCORE__LOSS_NPARAMS] = {
    {SCORE_LOSS_PARAM_SIGMA, "sigma", SCORE_PARAM_F64, 1e-6, 1e6, 0.1,
     "noise level of DSM on a bare model"},
    {SCORE_LOSS_PARAM_ANNEAL_POWER, "anneal_power", SCORE_PARAM_F64, -8.0, 8.0, 2.0,
     "exponent p of the NCSN weight sigma^p"},
    {SCORE_LOSS_PARAM_PROJECTIONS, "projections", SCORE_PARAM_I64, 1, 4096, 1,
     "probes per row of sliced score matching"},
    {SCORE_LOSS_PARAM_PROBE, "probe", SCORE_PARAM_I64, 1, 3, SCORE_LOSS_PROBE_RADEMACHER,
     "probe distribution: 1 Rademacher, 2 Gaussian, 3 sphere of radius sqrt(dim)"},
    {SCORE_LOSS_PARAM_WEIGHTING, "weighting", SCORE_PARAM_I64, 1, 2, SCORE_LOSS_WEIGHT_SIGMA2,
     "SDE loss weighting: 1 sigma^2, 2 likelihood g^2"},
    {SCORE_LOSS_PARAM_REDUCE, "reduce", SCORE_PARAM_I64, 0, 2, SCORE_LOSS_REDUCE_DEFAULT,
     "reduction over coordinates: 0 reference default, 1 half-sum, 2 mean"},
    {SCORE_LOSS_PARAM_T_EPS, "t_eps", SCORE_PARAM_F64, 1e-12, 1e6, 1e-5,
     "smallest training time of the SDE loss"},
    {SCORE_LOSS_PARAM_IMPORTANCE, "importance", SCORE_PARAM_I64, 0, 1, 0,
     "1: importance-sampled time (likelihood weighting) for the SDE loss"},
    {SCORE_LOSS_PARAM_COND, "cond", SCORE_PARAM_F64, -1e12, 1e12, 0.0,
     "conditioning value of a bare model for the time-free losses"},
    {SCORE_LOSS_PARAM_TIME, "time", SCORE_PARAM_F64, 0.0, 1e6, 0.0,
     "time of the time-free losses evaluated through an sde; 0 = unset"},
};

const score__param_desc *score__loss_param_table(size_t *n_out)
{
    *n_out = SCORE__LOSS_NPARAMS;
    return loss_params;
}

/* Kinds each parameter applies to (same order as the table). */
static const unsigned applies[SCORE__LOSS_NPARAMS] = {
    K(SCORE_LOSS_DSM), K(SCORE_LOSS_NCSN), SLICED, SLICED, K(SCORE_LOSS_SDE), DENOISING,
    K(SCORE_LOSS_SDE) | K(SCORE_LOSS_CLASSIFIER), K(SCORE_LOSS_SDE), TIME_FREE, TIME_FREE,
};

const char *score__loss_kind_name(int kind)
{
    switch (kind) {
    case SCORE_LOSS_HYVARINEN: return "hyvarinen";
    case SCORE_LOSS_SSM: return "ssm";
    case SCORE_LOSS_SSM_VR: return "ssm-vr";
    case SCORE_LOSS_DSM: return "dsm";
    case SCORE_LOSS_NCSN: return "ncsn";
    case SCORE_LOSS_DDPM: return "ddpm";
    case SCORE_LOSS_SDE: return "sde";
    case SCORE_LOSS_CLASSIFIER: return "classifier";
    default: return NULL;
    }
}

/* ---- lifecycle and parameters ---------------------------------------------------------- */

static void free_workspace(score_loss *L)
{
    double **d[] = {&L->t, &L->al, &L->si, &L->a, &L->k, &L->in, &L->c, &L->w, &L->u,
                    &L->vw, &L->vjv, &L->pvs, &L->pv2};
    float **f[] = {&L->xt, &L->xm, &L->z, &L->f, &L->gout, &L->v, &L->jv};
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
        score__free(*d[i]);
        *d[i] = NULL;
    }
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        score__free(*f[i]);
        *f[i] = NULL;
    }
    score__free(L->idx);
    L->idx = NULL;
    L->cap_n = L->cap_dim = L->cap_nk = 0;
}

int score_loss_new(score_loss **out, int kind)
{
    score_loss *L;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (score__loss_kind_name(kind) == NULL)
        return score__error(SCORE_E_UNSUPPORTED, __func__, "unknown loss kind %d (1..8)", kind);
    L = score__calloc(1, sizeof *L);
    if (L == NULL)
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    if (score__model_ws_new(&L->mws) != SCORE_OK) {
        score__free(L);
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    }
    L->kind = kind;
    score__param_defaults(loss_params, SCORE__LOSS_NPARAMS, L->params);
    *out = L;
    return SCORE_OK;
}

void score_loss_free(score_loss *loss)
{
    if (loss == NULL)
        return;
    free_workspace(loss);
    score__free(loss->labels);
    score__free(loss->mlabels);
    score__free(loss->ctx);
    score__model_ws_free(loss->mws);
    score__loss_classifier_free(loss);
    score__free(loss);
}

int score_loss_clone(score_loss **out, const score_loss *loss)
{
    int rc;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (loss == NULL)
        return score__error(SCORE_E_INVAL, __func__, "loss is NULL");
    rc = score_loss_new(out, loss->kind);
    if (rc == SCORE_OK)
        memcpy((*out)->params, loss->params, sizeof loss->params);
    return rc;
}

int score_loss_last_callback_status(const score_loss *loss)
{
    return loss ? loss->mws->cb_status : 0;
}

int score_loss_kind(const score_loss *loss)
{
    return loss ? loss->kind : 0;
}

const char *score_loss_name(const score_loss *loss)
{
    return loss ? score__loss_kind_name(loss->kind) : "(null)";
}

static int check_applies(const char *fn, const score_loss *L, int param)
{
    int idx = score__param_index(loss_params, SCORE__LOSS_NPARAMS, param);
    if (idx < 0)
        return score__error(SCORE_E_UNSUPPORTED, fn, "unknown loss parameter %d", param);
    if (!(applies[idx] & K(L->kind)))
        return score__error(SCORE_E_UNSUPPORTED, fn, "parameter '%s' does not apply to %s losses",
                            loss_params[idx].name, score__loss_kind_name(L->kind));
    return SCORE_OK;
}

int score_loss_set_f64(score_loss *loss, int param, double value)
{
    int rc;
    if (loss == NULL)
        return score__error(SCORE_E_INVAL, __func__, "loss is NULL");
    if ((rc = check_applies(__func__, loss, param)) != SCORE_OK)
        return rc;
    return score__param_set_f64(__func__, loss_params, SCORE__LOSS_NPARAMS, loss->params, param, value);
}

int score_loss_set_i64(score_loss *loss, int param, int64_t value)
{
    int rc;
    if (loss == NULL)
        return score__error(SCORE_E_INVAL, __func__, "loss is NULL");
    if ((rc = check_applies(__func__, loss, param)) != SCORE_OK)
        return rc;
    return score__param_set_i64(__func__, loss_params, SCORE__LOSS_NPARAMS, loss->params, param, value);
}

int score_loss_get_f64(const score_loss *loss, int param, double *out)
{
    int rc;
    if (loss == NULL)
        return score__error(SCORE_E_INVAL, __func__, "loss is NULL");
    if ((rc = check_applies(__func__, loss, param)) != SCORE_OK)
        return rc;
    return score__param_get_f64(__func__, loss_params, SCORE__LOSS_NPARAMS, loss->params, param, out);
}

int score_loss_get_i64(const score_loss *loss, int param, int64_t *out)
{
    int rc;
    if (loss == NULL)
        return score__error(SCORE_E_INVAL, __func__, "loss is NULL");
    if ((rc = check_applies(__func__, loss, param)) != SCORE_OK)
        return rc;
    return score__param_get_i64(__func__, loss_params, SCORE__LOSS_NPARAMS, loss->params, param, out);
}

/* ---- helpers --------------------------------------------------------------------------- */

int score__loss_wrap(const char *fn, int rc, const char *what)
{
    char msg[384];
    snprintf(msg, sizeof msg, "%s", score_last_error_message());
    return score__error(rc, fn, "%s: %s", what, msg);
}

static int grow_d(double **p, size_t n)
{
    score__free(*p);
    *p = score__calloc(n, sizeof(double));
    return *p == NULL ? -1 : 0;
}

static int grow_f(float **p, size_t n)
{
    score__free(*p);
    *p = score__calloc(n, sizeof(float));
    return *p == NULL ? -1 : 0;
}

/* Makes room for n rows of dim values and nk = n * probes probe rows. Grows only. */
static int reserve(const char *fn, score_loss *L, size_t n, size_t dim, size_t nk)
{
    int bad = 0;
    size_t nd, nkd;
    if (score__mul_size(n, dim, &nd) != 0 || score__mul_size(nk, dim, &nkd) != 0)
        return score__error(SCORE_E_RANGE, fn, "batch of %zu x %zu values overflows", n, dim);
    if (n > L->cap_n || dim > L->cap_dim) {
        size_t cn = n > L->cap_n ? n : L->cap_n, cd = dim > L->cap_dim ? dim : L->cap_dim;
        size_t cnd = cn * cd;
        bad |= grow_d(&L->t, cn) | grow_d(&L->al, cn) | grow_d(&L->si, cn) | grow_d(&L->a, cn) |
               grow_d(&L->k, cn) | grow_d(&L->in, cn) | grow_d(&L->c, cn) | grow_d(&L->w, cn) |
               grow_d(&L->u, cn);
        score__free(L->idx);
        L->idx = score__calloc(cn, sizeof(size_t));
        bad |= L->idx == NULL;
        bad |= grow_f(&L->xt, cnd) | grow_f(&L->xm, cnd) | grow_f(&L->z, cnd) |
               grow_f(&L->f, cnd) | grow_f(&L->gout, cnd);
        if (bad) {
            free_workspace(L);
            return score__error(SCORE_E_NOMEM, fn, "workspace for %zu rows failed", n);
        }
        L->cap_n = cn;
        L->cap_dim = cd;
        /* the probe buffers depend on dim too: force their reallocation */
        score__free(L->v);
        score__free(L->jv);
        score__free(L->vw);
        score__free(L->vjv);
        score__free(L->pvs);
        score__free(L->pv2);
        L->v = L->jv = NULL;
        L->vw = L->vjv = L->pvs = L->pv2 = NULL;
        L->cap_nk = 0;
    }
    if (nk > L->cap_nk) {
        size_t ck = nk, ckd = ck * L->cap_dim;
        (void)nkd;
        bad |= grow_f(&L->v, ckd) | grow_f(&L->jv, ckd) | grow_d(&L->vw, ck) | grow_d(&L->vjv, ck) |
               grow_d(&L->pvs, ck) | grow_d(&L->pv2, ck);
        if (bad) {
            free_workspace(L);
            return score__error(SCORE_E_NOMEM, fn, "workspace for %zu probe rows failed", nk);
        }
        L->cap_nk = ck;
    }
    return SCORE_OK;
}

int score__loss_reserve(const char *fn, score_loss *L, size_t n, size_t dim)
{
    return reserve(fn, L, n, dim, 0);
}

/* 1 / the rows of the batch whose mean the loss is (n, or n_norm for a block of a batch). */
static double batch_inv(const score_loss *L, size_t n)
{
    return 1.0 / (double)(L->n_norm ? L->n_norm : n);
}

/* Factor rho of the reduction red(u) = rho sum_j u_j. */
static double reduce_factor(const score_loss *L, size_t dim)
{
    int64_t r = score__loss_i(L, IX_REDUCE);
    if (r == SCORE_LOSS_REDUCE_DEFAULT)
        r = L->kind == SCORE_LOSS_DDPM ? SCORE_LOSS_REDUCE_MEAN : SCORE_LOSS_REDUCE_HALF_SUM;
    return r == SCORE_LOSS_REDUCE_MEAN ? 1.0 / (double)dim : 0.5;
}

static int model_failed(const char *fn, int rc, const char *op)
{
    return score__loss_wrap(fn, rc, op);
}

static int need(const char *fn, score_model *m, uint32_t caps, uint32_t flag, const char *op,
                const char *kind)
{
    if (!(caps & flag))
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "%s loss needs %s, which this model (kind %d) does not provide",
                            kind, op, score_model_kind(m));
    return SCORE_OK;
}

/* The model's input for the rows x (n x dim): in_b x_b, in L->xm; x itself when every in_b is
 * 1 ((float)(1.0 * x) is x): no copy. */
static const float *model_input(score_loss *L, size_t n, size_t dim, const float *x)
{
    int scaled = 0;
    for (size_t b = 0; b < n; b++)
        scaled |= L->in[b] != 1.0;
    if (!scaled)
        return x;
    for (size_t b = 0; b < n; b++) {
        const double in = L->in[b];
        for (size_t j = 0; j < dim; j++)
            L->xm[b * dim + j] = (float)(in * (double)x[b * dim + j]);
    }
    return L->xm;
}

/* ---- the denoising kinds: loss = mean_b w_b rho |sigma_b s_b + z_b|^2 ---------------------- */

#define DENOISE_ROWS 4

/* Rows b0 .. b0 + nr - 1 (nr <= DENOISE_ROWS) of a denoising loss from the model's output f:
 * e = sigma_b (a_b f + k_b x_t) + z, acc[r] = sum_j e_j^2 in j order and, with want_grad,
 * gout = (float)(2 w_b rho sigma_b a_b / n * e) (inv_n = 1 / n, or the batch's factor). */
static void denoise_rows(score_loss *L, size_t b0, size_t nr, size_t dim, double rho,
                         double inv_n, int want_grad, double *acc)
{
    double si[DENOISE_ROWS], a[DENOISE_ROWS], k[DENOISE_ROWS], gs[DENOISE_ROWS];
    for (size_t r = 0; r < nr; r++) {
        size_t b = b0 + r;
        si[r] = L->si[b];
        a[r] = L->a[b];
        k[r] = L->k[b];
        gs[r] = 2.0 * L->w[b] * rho * si[r] * a[r] * inv_n;
        acc[r] = 0.0;
    }
    for (size_t j = 0; j < dim; j++)
        for (size_t r = 0; r < nr; r++) {
            size_t i = (b0 + r) * dim + j;
            double s = a[r] * (double)L->f[i] + k[r] * (double)L->xt[i];
            double e = si[r] * s + (double)L->z[i];
            acc[r] += e * e;
            if (want_grad)
                L->gout[i] = (float)(gs[r] * e);
        }
}

static int denoising(const char *fn, score_loss *L, score_model *m, const score_rng *rng,
                     size_t n, size_t dim, const float *x, double *total, float *grad)
{
    const double rho = reduce_factor(L, dim), inv_n = batch_inv(L, n);
    double acc_total = 0.0;
    const float *xin;
    int rc = score_rng_fill_normal(rng, L->row0, n, 0, dim, L->z);
    if (rc != SCORE_OK)
        return score__loss_wrap(fn, rc, "noise draw");
    for (size_t b = 0; b < n; b++) {
        const double al = L->al[b], si = L->si[b];
        for (size_t j = 0; j < dim; j++) {
            size_t i = b * dim + j;
            L->xt[i] = (float)(al * (double)x[i] + si * (double)L->z[i]);
        }
    }
    xin = model_input(L, n, dim, L->xt);
    rc = score__model_forward_ws(m, L->mws, n, xin, L->c, L->f);
    if (rc != SCORE_OK)
        return model_failed(fn, rc, "model forward");
    for (size_t b0 = 0; b0 < n; b0 += DENOISE_ROWS) {
        /* DENOISE_ROWS rows side by side: independent sums (each in its row's order), so the
         * additions of one row do not wait for each other's */
        double acc[DENOISE_ROWS];
        size_t nr = n - b0 < DENOISE_ROWS ? n - b0 : DENOISE_ROWS;
        denoise_rows(L, b0, nr, dim, rho, inv_n, grad != NULL, acc);
        for (size_t r = 0; r < nr; r++)
            acc_total += L->w[b0 + r] * rho * acc[r];
    }
    *total = acc_total * inv_n;
    if (grad) {
        rc = score__model_backward_ws(m, L->mws, n, L->gout, grad, NULL);
        if (rc != SCORE_OK)
            return model_failed(fn, rc, "model backward");
    }
    return SCORE_OK;
}

/* ---- output cotangent of the Hyvärinen and sliced losses ------------------------------------ */

/* The data terms of row b of a sliced loss (M probes in L->v) from its output row fr, with
 * s = a F + k x: |s|^2 into L->u[b], and v_p . s and |v_p|^2 into L->pvs and L->pv2[b M + p].
 * Writes row b's entries only (so rows may be done on several threads at once). */
static void sliced_stats(const score_loss *L, const float *x, size_t dim, size_t M, size_t b,
                         const float *fr)
{
    const double a = L->a[b], k = L->k[b];
    const float *xr = x + b * dim;
    double s2 = 0.0;
    for (size_t j = 0; j < dim; j++) {
        double s = a * (double)fr[j] + k * (double)xr[j];
        s2 += s * s;
    }
    L->u[b] = s2;
    for (size_t p = 0; p < M; p++) {
        const float *v = L->v + (b * M + p) * dim;
        double v2 = 0.0, vs = 0.0;
        for (size_t j = 0; j < dim; j++) {
            double s = a * (double)fr[j] + k * (double)xr[j];
            v2 += (double)v[j] * v[j];
            vs += (double)v[j] * s;
        }
        L->pvs[b * M + p] = vs;
        L->pv2[b * M + p] = v2;
    }
}

/* dL/dF for rows row0 .. row0 + rows - 1 from their outputs f, with s = a F + k x:
 * Hyvärinen and SSM-VR (|s|^2 / 2 per row): a s / n; SSM: a / (n M) sum_p (v_p . s) v_p.
 * For the sliced kinds (stats) it first writes the rows' data terms (sliced_stats()): called
 * from the model's threads, these rows' share of the loss value is computed there too. */
typedef struct gout_ctx {
    const score_loss *L;
    const float *x;
    size_t dim, M;
    double inv_n, inv_m;
    int half_sq; /* the |s|^2 / 2 term: Hyvärinen, SSM-VR */
    int stats;   /* the sliced kinds: sliced_stats() of each row (SSM: needed for gout) */
} gout_ctx;

static void output_cotangent(void *ctx, size_t row0, size_t rows, const float *f, float *gout)
{
    const gout_ctx *G = ctx;
    const score_loss *L = G->L;
    const size_t dim = G->dim, M = G->M;
    for (size_t r = 0; r < rows; r++) {
        const size_t b = row0 + r;
        const double a = L->a[b], k = L->k[b];
        const float *fr = f + r * dim, *xr = G->x + b * dim;
        float *g = gout + r * dim;
        if (G->stats)
            sliced_stats(L, G->x, dim, M, b, fr);
        if (!G->half_sq) {
            memset(g, 0, dim * sizeof *g);
        } else {
            for (size_t j = 0; j < dim; j++) {
                double s = a * (double)fr[j] + k * (double)xr[j];
                g[j] = (float)(a * s * G->inv_n);
            }
            continue;
        }
        for (size_t p = 0; p < M; p++) {
            const float *v = L->v + (b * M + p) * dim;
            double coef = a * L->pvs[b * M + p] * G->inv_n * G->inv_m;
            for (size_t j = 0; j < dim; j++)
                g[j] = (float)((double)g[j] + coef * (double)v[j]);
        }
    }
}

/* ---- Hyvärinen: |s|^2 / 2 + tr(ds/dx) ------------------------------------------------------ */

static int hyvarinen(const char *fn, score_loss *L, score_model *m, size_t n, size_t dim,
                     const float *x, double *total, float *grad)
{
    const double inv_n = batch_inv(L, n);
    double *tr = L->u;
    double acc_total = 0.0;
    const float *xin = model_input(L, n, dim, x);
    int rc;
    if (grad == NULL) {
        rc = score__model_trace_ws(m, L->mws, n, xin, L->c, tr, L->f);
        if (rc != SCORE_OK)
            return model_failed(fn, rc, "model trace");
    } else {
        /* dL/dF = a s / n, built by the model from F right after its own forward */
        gout_ctx g = {L, x, dim, 1, inv_n, 1.0, 1, 0};
        for (size_t b = 0; b < n; b++)
            L->w[b] = L->a[b] * L->in[b] * inv_n;
        rc = score__model_trace_grad_fn_ws(m, L->mws, n, xin, L->c, L->w, output_cotangent, &g,
                                           L->gout, grad, tr, L->f);
        if (rc != SCORE_OK)
            return model_failed(fn, rc, "model trace_grad");
    }
    for (size_t b = 0; b < n; b++) {
        const double a = L->a[b], k = L->k[b];
        double s2 = 0.0;
        for (size_t j = 0; j < dim; j++) {
            size_t i = b * dim + j;
            double s = a * (double)L->f[i] + k * (double)x[i];
            s2 += s * s;
        }
        acc_total += 0.5 * s2 + a * L->in[b] * tr[b] + k * (double)dim;
    }
    *total = acc_total * inv_n;
    return SCORE_OK;
}

/* ---- sliced score matching ------------------------------------------------------------------ */

static int draw_probes(const char *fn, score_loss *L, const score_rng *rng, size_t n, size_t dim,
                       size_t M)
{
    size_t col0 = score__loss_round4(dim) + 4, ncols = M * dim;
    int64_t kind = score__loss_i(L, IX_PROBE);
    int rc;
    if (kind == SCORE_LOSS_PROBE_RADEMACHER)
        rc = score_rng_fill_rademacher(rng, L->row0, n, col0, ncols, L->v);
    else
        rc = score_rng_fill_normal(rng, L->row0, n, col0, ncols, L->v);
    if (rc != SCORE_OK)
        return score__loss_wrap(fn, rc, "probe draw");
    if (kind == SCORE_LOSS_PROBE_SPHERE) {
        const double rad = sqrt((double)dim);
        for (size_t q = 0; q < n * M; q++) {
            float *v = L->v + q * dim;
            double s = 0.0;
            for (size_t j = 0; j < dim; j++)
                s += (double)v[j] * v[j];
            s = s > 0.0 ? rad / sqrt(s) : 0.0;
            for (size_t j = 0; j < dim; j++)
                v[j] = (float)(s * v[j]);
        }
    }
    return SCORE_OK;
}

static int sliced(const char *fn, score_loss *L, score_model *m, const score_rng *rng, size_t n,
                  size_t dim, const float *x, double *total, float *grad)
{
    const size_t M = (size_t)score__loss_i(L, IX_PROJ);
    const int vr = L->kind == SCORE_LOSS_SSM_VR;
    const double inv_n = batch_inv(L, n), inv_m = 1.0 / (double)M;
    double acc_total = 0.0;
    const float *xin;
    int rc = draw_probes(fn, L, rng, n, dim, M);
    if (rc != SCORE_OK)
        return rc;
    xin = model_input(L, n, dim, x);
    if (grad == NULL) {
        rc = score__model_jvp_ws(m, L->mws, n, xin, L->c, M, L->v, L->jv, L->f);
        if (rc != SCORE_OK)
            return model_failed(fn, rc, "model jvp");
        for (size_t q = 0; q < n * M; q++) {
            double d = 0.0;
            for (size_t j = 0; j < dim; j++)
                d += (double)L->v[q * dim + j] * L->jv[q * dim + j];
            L->vjv[q] = d;
        }
        for (size_t b = 0; b < n; b++)
            sliced_stats(L, x, dim, M, b, L->f + b * dim);
    } else {
        /* the output cotangent and the rows' data terms are computed by the model from F right
         * after its own forward (on its threads) */
        gout_ctx g = {L, x, dim, M, inv_n, inv_m, vr, 1};
        for (size_t b = 0; b < n; b++)
            for (size_t p = 0; p < M; p++)
                L->vw[b * M + p] = L->a[b] * L->in[b] * inv_n * inv_m;
        rc = score__model_vjv_grad_fn_ws(m, L->mws, n, xin, L->c, M, L->v, L->vw,
                                         output_cotangent, &g, L->gout, grad, L->vjv, L->f);
        if (rc != SCORE_OK)
            return model_failed(fn, rc, "model vjv_grad");
    }
    /* the rows' losses from their terms, summed in row order */
    for (size_t b = 0; b < n; b++) {
        const double k = L->k[b], ain = L->a[b] * L->in[b];
        double row = 0.0;
        for (size_t p = 0; p < M; p++) {
            const double vs = L->pvs[b * M + p];
            row += ain * L->vjv[b * M + p] + k * L->pv2[b * M + p];
            if (!vr)
                row += 0.5 * vs * vs;
        }
        row *= inv_m;
        if (vr)
            row += 0.5 * L->u[b];
        acc_total += row;
    }
    *total = acc_total * inv_n;
    return SCORE_OK;
}

/* ---- entry point ------------------------------------------------------------------------ */

int score_loss_compute(score_loss *loss, const score_sde *sde, score_model *model,
                       const score_rng *rng, size_t n, const float *x, double *loss_out,
                       float *grad_params)
{
    const char *fn = __func__;
    size_t dim, nd, M = 1;
    uint32_t caps;
    double total = 0.0;
    int rc, kind;
    if (loss == NULL || model == NULL || rng == NULL || x == NULL)
        return score__error(SCORE_E_INVAL, fn, "loss, model, rng or x is NULL");
    kind = loss->kind;
    if (n == 0 || (uint64_t)n >= ((uint64_t)1 << 32))
        return score__error(SCORE_E_RANGE, fn, "n = %zu not in [1, 2^32 - 1]", n);
    dim = score_model_dim(model);
    if (sde != NULL && score_sde_dim(sde) != dim)
        return score__error(SCORE_E_SHAPE, fn, "the sde has dimension %zu, the model %zu",
                            score_sde_dim(sde), dim);
    if (sde == NULL && !(K(kind) & TIME_FREE) && kind != SCORE_LOSS_CLASSIFIER)
        return score__error(SCORE_E_INVAL, fn, "%s losses need an sde (schedule)", score__loss_kind_name(kind));
    if (score__mul_size(n, dim, &nd) != 0)
        return score__error(SCORE_E_RANGE, fn, "n * dim overflows");
    if (!score__all_finite_f32(nd, x))
        return score__error(SCORE_E_NUMERIC, fn, "x contains NaN or infinity");
    caps = score_model_capabilities(model);
    if (grad_params != NULL && !(caps & SCORE_MODEL_CAP_PARAMS))
        return score__error(SCORE_E_UNSUPPORTED, fn, "the model has no trainable parameters");
    if (kind == SCORE_LOSS_CLASSIFIER)
        return score__loss_classifier(fn, loss, sde, model, rng, n, x, loss_out, grad_params);
    switch (kind) {
    case SCORE_LOSS_HYVARINEN:
        rc = need(fn, model, caps, grad_params ? SCORE_MODEL_CAP_TRACE_GRAD : SCORE_MODEL_CAP_TRACE,
                  grad_params ? "score_model_trace_grad" : "score_model_trace", "a Hyvarinen");
        break;
    case SCORE_LOSS_SSM:
    case SCORE_LOSS_SSM_VR:
        M = (size_t)score__loss_i(loss, IX_PROJ);
        rc = need(fn, model, caps, grad_params ? SCORE_MODEL_CAP_VJV_GRAD : SCORE_MODEL_CAP_JVP,
                  grad_params ? "score_model_vjv_grad" : "score_model_jvp (Jacobian-vector products)",
                  "a sliced score-matching");
        break;
    default:
        rc = grad_params ? need(fn, model, caps, SCORE_MODEL_CAP_BACKWARD, "score_model_backward",
                                "a denoising") : SCORE_OK;
        break;
    }
    if (rc != SCORE_OK)
        return rc;
    if ((rc = score__loss_bind_labels(fn, loss, model, n)) != SCORE_OK ||
        (rc = score__loss_bind_context(fn, loss, model, n)) != SCORE_OK)
        return rc;
    if ((rc = reserve(fn, loss, n, dim, (K(kind) & SLICED) ? n * M : 0)) != SCORE_OK)
        return rc;
    if ((rc = score__loss_setup_rows(fn, loss, sde, rng, n, dim)) != SCORE_OK)
        return rc;
    switch (kind) {
    case SCORE_LOSS_HYVARINEN:
        rc = hyvarinen(fn, loss, model, n, dim, x, &total, grad_params);
        break;
    case SCORE_LOSS_SSM:
    case SCORE_LOSS_SSM_VR:
        rc = sliced(fn, loss, model, rng, n, dim, x, &total, grad_params);
        break;
    default:
        rc = denoising(fn, loss, model, rng, n, dim, x, &total, grad_params);
        break;
    }
    if (rc != SCORE_OK) {
        /* the model's compute calls refuse non-finite outputs: the loss is then not finite */
        if (rc == SCORE_E_NUMERIC && loss_out)
            *loss_out = NAN;
        return rc;
    }
    if (loss_out)
        *loss_out = total;
    if (!isfinite(total))
        return score__error(SCORE_E_NUMERIC, fn, "the %s loss is not finite (%g)",
                            score__loss_kind_name(kind), total);
    return SCORE_OK;
}
