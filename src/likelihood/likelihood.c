/* log p(x) through the probability-flow ODE: a system on the per-row adaptive engine
 * (adapt.c), integrated in lambda with the Dormand-Prince 5(4) pair on the augmented state
 * (x, delta), state in double. The sde supplies the ODE per unit of lambda (sde-ode.c). */
#include <math.h>
#include <string.h>

#include "core/comm-priv.h"
#include "core/core-priv.h"
#include "libscore/likelihood.h"
#include "rng/rng-priv.h"
#include "sampler/adapt-priv.h"
#include "sde/sde-ode-priv.h"

#define NPARAMS 12
/* Value of a parameter of an evaluator. */
#define PF(lk, id) SCORE__PARAM_F64((lk)->params, SCORE_LIKELIHOOD_PARAM_RTOL, id)
#define PI(lk, id) SCORE__PARAM_I64((lk)->params, SCORE_LIKELIHOOD_PARAM_RTOL, id)
#define AUTO_EXACT_MAX_DIM 32
#define N_STAGES 7

struct score_likelihood {
    size_t dim;
    score__param_val params[NPARAMS];
    uint64_t nfe, steps;
    score__adapt rows; /* per-row lambda, step size, counters */
    /* workspace (rows n, probes k) */
    size_t cap, cap_k;
    double *y, *k1, *ya, *ys, *ks[N_STAGES], *ynew; /* n x (dim + 1) */
    double *lam_s;
    score__sde_ode_ws ws;
    unsigned char *k1ok;
    float *xin, *probes, *probes_a;
    /* the current solve */
    score_sde *sde;
    size_t kp; /* probes per row; 0 = exact divergence */
    int nodiv; /* 1: the map x <-> z alone (encode / decode), delta stays 0 */
    double teps, tend;
    const char *fn; /* the public function running */
    score__control_vals ctl;
    score_comm *comm; /* borrowed, or NULL (score_likelihood_set_comm()) */
};

static const score__param_desc lk_params[NPARAMS] = {
    SCORE__PARAM_ROW_RTOL(SCORE_LIKELIHOOD_PARAM_RTOL, "relative tolerance"),
    SCORE__PARAM_ROW_ATOL(SCORE_LIKELIHOOD_PARAM_ATOL, "absolute tolerance"),
    {SCORE_LIKELIHOOD_PARAM_DIVERGENCE, "divergence", SCORE_PARAM_I64, 0, 2, 0,
     "0 auto, 1 exact, 2 Hutchinson"},
    {SCORE_LIKELIHOOD_PARAM_PROBE, "probe", SCORE_PARAM_I64, 1, 2, 1, "1 Rademacher, 2 Gaussian"},
    {SCORE_LIKELIHOOD_PARAM_N_PROBES, "n_probes", SCORE_PARAM_I64, 1, 4096, 1, "probes per row"},
    {SCORE_LIKELIHOOD_PARAM_T_EPS, "t_eps", SCORE_PARAM_F64, 0, 1e6, 0,
     "start time; 0 = the schedule's t_eps"},
    {SCORE_LIKELIHOOD_PARAM_T_END, "t_end", SCORE_PARAM_F64, 0, 1e6, 0,
     "end time; 0 = the schedule's T"},
    {SCORE_LIKELIHOOD_PARAM_DEQUANT_OFFSET, "dequant_offset", SCORE_PARAM_F64, -1000, 1000, 0,
     "bits/dim offset (log2(K / W) for K-level data of width W)"},
    SCORE__PARAM_ROW_H_INIT(SCORE_LIKELIHOOD_PARAM_H_INIT),
    SCORE__PARAM_ROW_H_MIN(SCORE_LIKELIHOOD_PARAM_H_MIN),
    SCORE__PARAM_ROW_MAX_STEPS(SCORE_LIKELIHOOD_PARAM_MAX_STEPS, "largest number of attempts"),
    SCORE__PARAM_ROW_NORM(SCORE_LIKELIHOOD_PARAM_ERROR_NORM),
};

const score__param_desc *score__likelihood_param_table(size_t *n_out);
const score__param_desc *score__likelihood_param_table(size_t *n_out)
{
    *n_out = NPARAMS;
    return lk_params;
}

int score_likelihood_new(score_likelihood **out, size_t dim)
{
    score_likelihood *lk;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (score__check_dim(__func__, dim) != SCORE_OK)
        return SCORE_E_RANGE;
    lk = score__calloc(1, sizeof *lk);
    if (lk == NULL)
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    lk->dim = dim;
    score__param_defaults(lk_params, NPARAMS, lk->params);
    *out = lk;
    return SCORE_OK;
}

/* The n x (dim + 1) double arrays and the per-row double arrays of the workspace. */
#define STATE_ARRAYS(lk)                                                                      \
    {&(lk)->y, &(lk)->k1, &(lk)->ya, &(lk)->ys, &(lk)->ynew, &(lk)->ks[0], &(lk)->ks[1],      \
     &(lk)->ks[2], &(lk)->ks[3], &(lk)->ks[4], &(lk)->ks[5], &(lk)->ks[6]}
#define ROW_ARRAYS(lk)                                                                        \
    {&(lk)->lam_s, &(lk)->ws.t, &(lk)->ws.alpha, &(lk)->ws.sigma, &(lk)->ws.f, &(lk)->ws.g,   \
     &(lk)->ws.div}
#define FLOAT_ARRAYS(lk) {&(lk)->xin, &(lk)->ws.drift, &(lk)->probes, &(lk)->probes_a}

static void free_ws(score_likelihood *lk)
{
    double **dd[] = STATE_ARRAYS(lk), **dn[] = ROW_ARRAYS(lk);
    float **ff[] = FLOAT_ARRAYS(lk);
    for (size_t i = 0; i < sizeof dd / sizeof dd[0]; i++) {
        score__free(*dd[i]);
        *dd[i] = NULL;
    }
    for (size_t i = 0; i < sizeof dn / sizeof dn[0]; i++) {
        score__free(*dn[i]);
        *dn[i] = NULL;
    }
    for (size_t i = 0; i < sizeof ff / sizeof ff[0]; i++) {
        score__free(*ff[i]);
        *ff[i] = NULL;
    }
    score__free(lk->k1ok);
    lk->k1ok = NULL;
    score__adapt_release(&lk->rows);
    lk->cap = lk->cap_k = 0;
}

void score_likelihood_free(score_likelihood *lk)
{
    if (lk == NULL)
        return;
    free_ws(lk);
    score__free(lk);
}

static int ensure(score_likelihood *lk, const char *fn, size_t n, size_t kp)
{
    size_t d1 = lk->dim + 1, nd1, nd, ndk;
    if (n <= lk->cap && kp <= lk->cap_k)
        return SCORE_OK;
    if (n < lk->cap)
        n = lk->cap;
    if (kp < lk->cap_k)
        kp = lk->cap_k;
    if (score__mul_size(n, d1, &nd1) != 0 || score__mul_size(n, lk->dim, &nd) != 0 ||
        score__mul_size(nd, kp, &ndk) != 0)
        return score__error(SCORE_E_NOMEM, fn, "workspace overflows");
    free_ws(lk);
    {
        double **dd[] = STATE_ARRAYS(lk), **dn[] = ROW_ARRAYS(lk);
        float **ff[] = FLOAT_ARRAYS(lk);
        size_t fl[] = {nd, nd, ndk, ndk};
        for (size_t i = 0; i < sizeof dd / sizeof dd[0]; i++)
            if ((*dd[i] = score__calloc(nd1, sizeof(double))) == NULL)
                goto nomem;
        for (size_t i = 0; i < sizeof dn / sizeof dn[0]; i++)
            if ((*dn[i] = score__calloc(n, sizeof(double))) == NULL)
                goto nomem;
        for (size_t i = 0; i < sizeof ff / sizeof ff[0]; i++)
            if ((*ff[i] = score__calloc(fl[i], sizeof(float))) == NULL)
                goto nomem;
    }
    if ((lk->k1ok = score__calloc(n, 1)) == NULL ||
        score__adapt_reserve(&lk->rows, fn, n) != SCORE_OK)
        goto nomem;
    lk->cap = n;
    lk->cap_k = kp;
    return SCORE_OK;
nomem:
    free_ws(lk);
    return score__error(SCORE_E_NOMEM, fn, "workspace for %zu rows", n);
}

SCORE__DEFINE_PARAM_ACCESSORS(score_likelihood, score_likelihood, "likelihood", lk_params, NPARAMS)

uint64_t score_likelihood_get_nfe(const score_likelihood *lk)
{
    return lk == NULL ? 0 : lk->nfe;
}

uint64_t score_likelihood_get_steps(const score_likelihood *lk)
{
    return lk == NULL ? 0 : lk->steps;
}

/* ---- the system: (x, delta) under the probability-flow ODE in lambda ------------------- */

/* d(x, delta)/dlambda for the m active rows of a at lambda values lam, state ys
 * (m x (dim + 1)). The model is given the rows' global numbers, for the map alone (nodiv) and
 * for the divergence (its exact trace or the Hutchinson products), so that a row's latent and
 * log p do not depend on the batch, its split into calls or ranks (the MLP's row panels). */
static int rhs(score_likelihood *lk, const score__adapt *a, size_t m, const double *lam,
               const double *ys, double *kout)
{
    size_t dim = lk->dim, d1 = dim + 1;
    int rc;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < dim; j++)
            lk->xin[i * dim + j] = (float)ys[i * d1 + j];
    score__sde_set_rows(lk->sde, m, a->row0, a->idx);
    rc = score__sde_pf_lambda(lk->sde, lk->fn, m, lam, lk->xin, lk->kp,
                              lk->kp > 0 ? lk->probes_a : NULL, &lk->ws, kout,
                              lk->nodiv ? NULL : kout + dim, d1);
    score__sde_set_rows(lk->sde, 0, 0, NULL);
    if (lk->nodiv)
        for (size_t i = 0; i < m; i++)
            kout[i * d1 + dim] = 0.0;
    lk->nfe++;
    return rc;
}

/* Gathers the active rows' state, cached first stage and probes; 1 if a row lacks its first
 * stage. */
static int gather(score_likelihood *lk, const score__adapt *a)
{
    size_t d1 = lk->dim + 1, pw = lk->kp * lk->dim;
    int need_k1 = 0;
    for (size_t r = 0; r < a->m; r++) {
        size_t i = a->idx[r];
        memcpy(lk->ya + r * d1, lk->y + i * d1, d1 * sizeof(double));
        if (!lk->k1ok[i])
            need_k1 = 1;
        else
            memcpy(lk->ks[0] + r * d1, lk->k1 + i * d1, d1 * sizeof(double));
        if (pw > 0)
            memcpy(lk->probes_a + r * pw, lk->probes + i * pw, pw * sizeof(float));
    }
    return need_k1;
}

/* Scaled RMS error of the embedded pair for active row r. */
static double row_error(const score_likelihood *lk, const score__adapt *a, size_t r)
{
    size_t d1 = lk->dim + 1;
    double hh = a->dir[r] * a->hstep[r], acc = 0.0;
    for (size_t j = 0; j < d1; j++) {
        double e = 0.0;
        for (int l = 0; l < N_STAGES; l++)
            if (score__dp5_e[l] != 0.0)
                e += score__dp5_e[l] * lk->ks[l][r * d1 + j];
        e *= hh;
        acc += score__control_term(&lk->ctl, lk->ya[r * d1 + j], lk->ynew[r * d1 + j], e);
    }
    return score__control_norm(acc, d1);
}

static int sys_attempt(void *ctx, const score__adapt *a)
{
    score_likelihood *lk = ctx;
    size_t m = a->m, d1 = lk->dim + 1;
    int rc;
    if (gather(lk, a)) {
        rc = rhs(lk, a, m, a->lam, lk->ya, lk->ks[0]);
        if (rc != SCORE_OK)
            return rc;
    }
    for (int q = 1; q < N_STAGES; q++) {
        for (size_t r = 0; r < m; r++) {
            double hh = a->dir[r] * a->hstep[r];
            lk->lam_s[r] = score__dp5_c[q] == 1.0 ? a->lamn[r] : a->lam[r] + score__dp5_c[q] * hh;
            for (size_t j = 0; j < d1; j++) {
                double acc = 0.0;
                for (int l = 0; l < q; l++)
                    if (score__dp5_a[q][l] != 0.0)
                        acc += score__dp5_a[q][l] * lk->ks[l][r * d1 + j];
                lk->ys[r * d1 + j] = lk->ya[r * d1 + j] + hh * acc;
            }
        }
        if (q == N_STAGES - 1)
            memcpy(lk->ynew, lk->ys, m * d1 * sizeof(double));
        rc = rhs(lk, a, m, lk->lam_s, lk->ys, lk->ks[q]);
        if (rc != SCORE_OK)
            return rc;
    }
    for (size_t r = 0; r < m; r++)
        a->err[r] = row_error(lk, a, r);
    return SCORE_OK;
}

/* First same as last: an accepted row keeps its last stage, a rejected one its first. */
static void sys_accept(void *ctx, const score__adapt *a, size_t r)
{
    score_likelihood *lk = ctx;
    size_t i = a->idx[r], d1 = lk->dim + 1;
    memcpy(lk->y + i * d1, lk->ynew + r * d1, d1 * sizeof(double));
    memcpy(lk->k1 + i * d1, lk->ks[N_STAGES - 1] + r * d1, d1 * sizeof(double));
    lk->k1ok[i] = 1;
}

static void sys_reject(void *ctx, const score__adapt *a, size_t r)
{
    score_likelihood *lk = ctx;
    size_t i = a->idx[r], d1 = lk->dim + 1;
    memcpy(lk->k1 + i * d1, lk->ks[0] + r * d1, d1 * sizeof(double));
    lk->k1ok[i] = 1;
}

/* ---- log p ----------------------------------------------------------------------------- */

/* The solve's time range from the parameters (0 = the schedule's). */
static int time_range(const score_likelihood *lk, const char *fn, double *teps, double *tend)
{
    double se, sT;
    int rc = score__sde_time_range(lk->sde, &se, &sT);
    if (rc != SCORE_OK)
        return rc;
    *teps = PF(lk, SCORE_LIKELIHOOD_PARAM_T_EPS);
    *tend = PF(lk, SCORE_LIKELIHOOD_PARAM_T_END);
    if (*teps == 0.0)
        *teps = se;
    if (*tend == 0.0)
        *tend = sT;
    if (!(*teps < *tend))
        return score__error(SCORE_E_INVAL, fn, "t_eps = %g must be < t_end = %g", *teps, *tend);
    return SCORE_OK;
}

/* Checks the call, sizes the workspace and draws the probes of the Hutchinson estimate. */
static int setup(score_likelihood *lk, score_sde *sde, const score_rng *rng, size_t row0,
                 size_t n, const float *x, const char *fn)
{
    size_t dim = lk->dim, kp = 0;
    int divmode, rc;
    if (score_sde_dim(sde) != dim)
        return score__error(SCORE_E_SHAPE, fn, "sde dimension %zu != likelihood dimension %zu",
                            score_sde_dim(sde), dim);
    if (!score__all_finite_f32(n * dim, x))
        return score__error(SCORE_E_NUMERIC, fn, "x holds NaN or infinity");
    rc = time_range(lk, fn, &lk->teps, &lk->tend);
    if (rc != SCORE_OK)
        return rc;
    divmode = (int)PI(lk, SCORE_LIKELIHOOD_PARAM_DIVERGENCE);
    if (!(divmode == SCORE_LIKELIHOOD_DIV_EXACT ||
          (divmode == SCORE_LIKELIHOOD_DIV_AUTO && dim <= AUTO_EXACT_MAX_DIM))) {
        kp = (size_t)PI(lk, SCORE_LIKELIHOOD_PARAM_N_PROBES);
        if (rng == NULL)
            return score__error(SCORE_E_INVAL, fn,
                                "rng is NULL but the Hutchinson estimate needs probes");
        if ((uint64_t)row0 > ((uint64_t)1 << 32) || (uint64_t)n > ((uint64_t)1 << 32) - row0)
            return score__error(SCORE_E_RANGE, fn, "rows %zu + %zu exceed 2^32", row0, n);
        if ((uint64_t)kp * dim > ((uint64_t)1 << 34))
            return score__error(SCORE_E_RANGE, fn, "%zu probes x %zu values exceed 2^34 columns",
                                kp, dim);
    }
    rc = ensure(lk, fn, n, kp > 0 ? kp : 1);
    if (rc != SCORE_OK)
        return rc;
    lk->kp = kp;
    if (kp > 0) {
        if (PI(lk, SCORE_LIKELIHOOD_PARAM_PROBE) == SCORE_LIKELIHOOD_PROBE_GAUSSIAN)
            score__rng_normal_at(rng, rng->counter, row0, n, 0, kp * dim, lk->probes);
        else
            score__rng_rademacher_at(rng, rng->counter, row0, n, 0, kp * dim, lk->probes);
    }
    return SCORE_OK;
}

/* Integrates every row from lambda(t_eps) to lambda(t_end) (backward = 1: the other way). */
static int integrate(score_likelihood *lk, size_t row0, size_t n, const float *x, int backward,
                     const char *fn)
{
    score__adapt_sys sys = {sys_attempt, sys_accept, sys_reject, lk, 4};
    size_t dim = lk->dim, d1 = dim + 1;
    double lam0, lam1, hinit;
    uint64_t attempts = 0, max_steps = (uint64_t)PI(lk, SCORE_LIKELIHOOD_PARAM_MAX_STEPS);
    int rc = score__sde_lambda(lk->sde, 1, &lk->teps, &lam0);
    if (rc == SCORE_OK)
        rc = score__sde_lambda(lk->sde, 1, &lk->tend, &lam1);
    if (rc != SCORE_OK)
        return rc;
    if (backward) {
        double tmp = lam0;
        lam0 = lam1;
        lam1 = tmp;
    }
    score__control_defaults(&lk->ctl);
    lk->ctl.rtol = PF(lk, SCORE_LIKELIHOOD_PARAM_RTOL);
    lk->ctl.atol = PF(lk, SCORE_LIKELIHOOD_PARAM_ATOL);
    lk->ctl.h_min = PF(lk, SCORE_LIKELIHOOD_PARAM_H_MIN);
    lk->ctl.batch_norm = PI(lk, SCORE_LIKELIHOOD_PARAM_ERROR_NORM) == SCORE_CONTROL_NORM_BATCH;
    if (!(lk->ctl.rtol + lk->ctl.atol > 0.0))
        return score__error(SCORE_E_INVAL, fn, "rtol and atol are both 0");
    hinit = PF(lk, SCORE_LIKELIHOOD_PARAM_H_INIT);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < dim; j++)
            lk->y[i * d1 + j] = (double)x[i * dim + j];
        lk->y[i * d1 + dim] = 0.0;
        lk->k1ok[i] = 0;
        lk->lam_s[i] = lam0;
    }
    score__adapt_start(&lk->rows, SCORE__ADAPT_TRACK_LAMBDA, n, row0, lk->lam_s,
                       hinit > 0.0 ? hinit : SCORE__H_INIT_DEFAULT);
    for (;;) {
        if (attempts >= max_steps)
            return score__error(SCORE_E_NOPROGRESS, fn, "max_steps = %llu attempts reached",
                                (unsigned long long)max_steps);
        attempts++;
        rc = score__adapt_attempt(&lk->rows, &sys, &lk->ctl, lk->sde, lam1, fn);
        if (rc == SCORE_DONE)
            break;
        if (rc != SCORE_OK)
            return rc;
    }
    lk->steps = score__adapt_max_steps(&lk->rows);
    return SCORE_OK;
}

/* log p = log p_T(z) + delta, bits/dim and the optional outputs. */
static int finish(score_likelihood *lk, size_t row0, size_t n, double *logp_nats, double *bpd,
                  float *z_out, double *delta_out, const char *fn)
{
    size_t dim = lk->dim, d1 = dim + 1;
    double off = PF(lk, SCORE_LIKELIHOOD_PARAM_DEQUANT_OFFSET);
    int rc;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < dim; j++)
            lk->xin[i * dim + j] = (float)lk->y[i * d1 + j];
    rc = score__sde_prior_logp(lk->sde, n, lk->xin, logp_nats);
    if (rc != SCORE_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        double delta = lk->y[i * d1 + dim];
        logp_nats[i] += delta;
        if (!isfinite(logp_nats[i]))
            return score__error(SCORE_E_NUMERIC, fn, "log p of row %zu is not finite", row0 + i);
        if (bpd != NULL)
            bpd[i] = -logp_nats[i] / ((double)dim * log(2.0)) + off;
        if (delta_out != NULL)
            delta_out[i] = delta;
    }
    if (z_out != NULL)
        memcpy(z_out, lk->xin, n * dim * sizeof(float));
    return SCORE_OK;
}

/* The start of every solve: the handles checked, the counters reset, the call recorded.
 * SCORE_DONE for n = 0 (nothing to do). */
static int open_solve(score_likelihood *lk, score_sde *sde, size_t n, const void *in,
                      const void *out, const char *what, int nodiv, const char *fn)
{
    if (lk == NULL || sde == NULL)
        return score__error(SCORE_E_INVAL, fn, "likelihood or sde is NULL");
    lk->nfe = lk->steps = 0;
    if (n == 0)
        return SCORE_DONE;
    if (in == NULL || out == NULL)
        return score__error(SCORE_E_INVAL, fn, "%s is NULL", what);
    lk->sde = sde;
    lk->fn = fn;
    lk->nodiv = nodiv;
    return SCORE_OK;
}

static int logp_local(score_likelihood *lk, score_sde *sde, size_t row0,
                      size_t n, const float *x, double *logp_nats, double *bpd,
                      float *z_out, double *delta_out, const score_rng *rng)
{
    const char *fn = "score_likelihood_logp";
    int rc = open_solve(lk, sde, n, x, logp_nats, "x or logp_nats", 0, fn);
    if (rc != SCORE_OK)
        return rc == SCORE_DONE ? SCORE_OK : rc;
    rc = setup(lk, sde, rng, row0, n, x, fn);
    if (rc == SCORE_OK)
        rc = integrate(lk, row0, n, x, 0, fn);
    if (rc == SCORE_OK)
        rc = finish(lk, row0, n, logp_nats, bpd, z_out, delta_out, fn);
    lk->sde = NULL;
    return rc;
}

int score_likelihood_set_comm(score_likelihood *lk, score_comm *comm)
{
    if (lk == NULL)
        return score__error(SCORE_E_INVAL, __func__, "lk is NULL");
    lk->comm = comm;
    return SCORE_OK;
}

/* With a communicator: this rank's contiguous share of the rows (with their global row numbers,
 * so each row's probes and result are those of a one-process solve), the status agreed, then
 * every rank receives the outputs of all n rows. */
int score_likelihood_logp_ex(score_likelihood *lk, score_sde *sde, size_t row0,
                             size_t n, const float *x, double *logp_nats, double *bpd,
                             float *z_out, double *delta_out, const score_rng *rng)
{
    const char *fn = "score_likelihood_logp";
    size_t lo = 0, hi = 0, dim;
    score_comm *c;
    int rc;
    if (lk == NULL || lk->comm == NULL || n == 0)
        return logp_local(lk, sde, row0, n, x, logp_nats, bpd, z_out, delta_out, rng);
    c = lk->comm;
    dim = lk->dim;
    if (x == NULL || logp_nats == NULL)
        rc = score__error(SCORE_E_INVAL, fn, "x or logp_nats is NULL");
    else {
        score__comm_share(n, c->rank, c->size, &lo, &hi);
        rc = logp_local(lk, sde, row0 + lo, hi - lo, x + lo * dim, logp_nats + lo,
                        bpd ? bpd + lo : NULL, z_out ? z_out + lo * dim : NULL,
                        delta_out ? delta_out + lo : NULL, rng);
    }
    if ((rc = score__comm_conclude(c, rc, fn)) != SCORE_OK)
        return rc;
    rc = score__comm_allgather_items(c, fn, n, sizeof(double), logp_nats + lo, logp_nats);
    if (rc == SCORE_OK && bpd != NULL)
        rc = score__comm_allgather_items(c, fn, n, sizeof(double), bpd + lo, bpd);
    if (rc == SCORE_OK && z_out != NULL)
        rc = score__comm_allgather_items(c, fn, n, dim * sizeof(float), z_out + lo * dim, z_out);
    if (rc == SCORE_OK && delta_out != NULL)
        rc = score__comm_allgather_items(c, fn, n, sizeof(double), delta_out + lo, delta_out);
    return rc;
}

int score_likelihood_logp(score_likelihood *lk, score_sde *sde, size_t n, const float *x,
                          double *logp_nats, double *bpd, const score_rng *rng)
{
    return score_likelihood_logp_ex(lk, sde, 0, n, x, logp_nats, bpd, NULL, NULL, rng);
}

/* ---- the map x <-> z alone ---------------------------------------------------------------- */

static int pf_map(score_likelihood *lk, score_sde *sde, size_t row0, size_t n, const float *in,
                  float *out, int backward, const char *fn)
{
    size_t dim, d1;
    int rc = open_solve(lk, sde, n, in, out, backward ? "z or x_out" : "x or z_out", 1, fn);
    if (rc != SCORE_OK)
        return rc == SCORE_DONE ? SCORE_OK : rc;
    dim = lk->dim;
    d1 = dim + 1;
    if (score_sde_dim(sde) != dim)
        rc = score__error(SCORE_E_SHAPE, fn, "sde dimension %zu != likelihood dimension %zu",
                          score_sde_dim(sde), dim);
    else if ((uint64_t)row0 > ((uint64_t)1 << 32) || (uint64_t)n > ((uint64_t)1 << 32) - row0)
        rc = score__error(SCORE_E_RANGE, fn, "rows %zu + %zu exceed 2^32", row0, n);
    else if (!score__all_finite_f32(n * dim, in))
        rc = score__error(SCORE_E_NUMERIC, fn, "%s holds NaN or infinity", backward ? "z" : "x");
    lk->kp = 0;
    if (rc == SCORE_OK) /* the map of the model's PF ODE: no observation or threshold */
        rc = score__sde_refuse_altered_pf(fn, sde);
    if (rc == SCORE_OK)
        rc = time_range(lk, fn, &lk->teps, &lk->tend);
    if (rc == SCORE_OK)
        rc = ensure(lk, fn, n, 1);
    if (rc == SCORE_OK)
        rc = integrate(lk, row0, n, in, backward, fn);
    if (rc == SCORE_OK)
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < dim; j++)
                out[i * dim + j] = (float)lk->y[i * d1 + j];
    if (rc == SCORE_OK && !score__all_finite_f32(n * dim, out))
        rc = score__error(SCORE_E_NUMERIC, fn, "the solution holds NaN or infinity");
    lk->sde = NULL;
    lk->nodiv = 0;
    return rc;
}

int score_likelihood_to_latent(score_likelihood *lk, score_sde *sde, size_t row0, size_t n,
                               const float *x, float *z_out)
{
    return pf_map(lk, sde, row0, n, x, z_out, 0, __func__);
}

int score_likelihood_from_latent(score_likelihood *lk, score_sde *sde, size_t row0, size_t n,
                                 const float *z, float *x_out)
{
    return pf_map(lk, sde, row0, n, z, x_out, 1, __func__);
}
