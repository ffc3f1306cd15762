/* log p(x) through the probability-flow ODE, integrated in lambda with a per-row adaptive
 * Dormand-Prince 5(4) pair on the augmented state (x, delta), state in double. */
#include <math.h>
#include <string.h>

#include "core/core-priv.h"
#include "libscore/likelihood.h"
#include "rng/rng-priv.h"
#include "sampler/step-priv.h"

#define SCORE__MAX_DIM ((size_t)1 << 24)
#define NPARAMS 11
#define P(id) ((id) - SCORE_LIKELIHOOD_PARAM_RTOL)
#define AUTO_EXACT_MAX_DIM 32
#define H_DEFAULT 0.05

struct score_likelihood {
    size_t dim;
    score__param_val params[NPARAMS];
    uint64_t nfe, steps;
    /* workspace (rows n, probes k) */
    size_t cap, cap_k;
    double *y, *k1, *ya, *ys, *ks[7], *ynew;
    double *lam, *h, *lam_a, *h_a, *lam_s, *t_s, *al_s, *sg_s, *f_s, *g_s, *div, *err;
    size_t *idx;
    uint64_t *row_steps;
    unsigned char *done, *k1ok;
    float *xin, *drift, *probes, *probes_a;
};

static const score__param_desc lk_params[NPARAMS] = {
    {SCORE_LIKELIHOOD_PARAM_RTOL, "rtol", SCORE_PARAM_F64, 0, 1, 1e-5, "relative tolerance"},
    {SCORE_LIKELIHOOD_PARAM_ATOL, "atol", SCORE_PARAM_F64, 0, 1e6, 1e-5, "absolute tolerance"},
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
    {SCORE_LIKELIHOOD_PARAM_H_INIT, "h_init", SCORE_PARAM_F64, 0, 1e3, 0,
     "initial step in lambda; 0 = 0.05"},
    {SCORE_LIKELIHOOD_PARAM_H_MIN, "h_min", SCORE_PARAM_F64, 0, 1e3, 1e-10,
     "smallest step in lambda"},
    {SCORE_LIKELIHOOD_PARAM_MAX_STEPS, "max_steps", SCORE_PARAM_I64, 1, 1e9, 100000,
     "largest number of attempts"},
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
    if (dim == 0 || dim > SCORE__MAX_DIM)
        return score__error(SCORE_E_RANGE, __func__, "dim %zu not in [1, 2^24]", dim);
    lk = score__calloc(1, sizeof *lk);
    if (lk == NULL)
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    lk->dim = dim;
    score__param_defaults(lk_params, NPARAMS, lk->params);
    *out = lk;
    return SCORE_OK;
}

static void free_ws(score_likelihood *lk)
{
    double **d[] = {&lk->y, &lk->k1, &lk->ya, &lk->ys, &lk->ynew, &lk->lam, &lk->h, &lk->lam_a,
                    &lk->h_a, &lk->lam_s, &lk->t_s, &lk->al_s, &lk->sg_s, &lk->f_s, &lk->g_s,
                    &lk->div, &lk->err};
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
        score__free(*d[i]);
        *d[i] = NULL;
    }
    for (int i = 0; i < 7; i++) {
        score__free(lk->ks[i]);
        lk->ks[i] = NULL;
    }
    score__free(lk->idx);
    score__free(lk->row_steps);
    score__free(lk->done);
    score__free(lk->k1ok);
    score__free(lk->xin);
    score__free(lk->drift);
    score__free(lk->probes);
    score__free(lk->probes_a);
    lk->idx = NULL;
    lk->row_steps = NULL;
    lk->done = lk->k1ok = NULL;
    lk->xin = lk->drift = lk->probes = lk->probes_a = NULL;
    lk->cap = lk->cap_k = 0;
}

void score_likelihood_free(score_likelihood *lk)
{
    if (lk == NULL)
        return;
    free_ws(lk);
    score__free(lk);
}

static int ensure(score_likelihood *lk, size_t n, size_t kp)
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
        return score__error(SCORE_E_NOMEM, "score_likelihood_logp", "workspace overflows");
    free_ws(lk);
    {
        double **dd[] = {&lk->y, &lk->k1, &lk->ya, &lk->ys, &lk->ynew};
        double **dn[] = {&lk->lam, &lk->h, &lk->lam_a, &lk->h_a, &lk->lam_s, &lk->t_s,
                         &lk->al_s, &lk->sg_s, &lk->f_s, &lk->g_s, &lk->div, &lk->err};
        for (size_t i = 0; i < sizeof dd / sizeof dd[0]; i++)
            if ((*dd[i] = score__calloc(nd1, sizeof(double))) == NULL)
                goto nomem;
        for (size_t i = 0; i < sizeof dn / sizeof dn[0]; i++)
            if ((*dn[i] = score__calloc(n, sizeof(double))) == NULL)
                goto nomem;
    }
    for (int i = 0; i < 7; i++)
        if ((lk->ks[i] = score__calloc(nd1, sizeof(double))) == NULL)
            goto nomem;
    if ((lk->idx = score__calloc(n, sizeof(size_t))) == NULL ||
        (lk->row_steps = score__calloc(n, sizeof(uint64_t))) == NULL ||
        (lk->done = score__calloc(n, 1)) == NULL || (lk->k1ok = score__calloc(n, 1)) == NULL ||
        (lk->xin = score__calloc(nd, sizeof(float))) == NULL ||
        (lk->drift = score__calloc(nd, sizeof(float))) == NULL ||
        (lk->probes = score__calloc(ndk, sizeof(float))) == NULL ||
        (lk->probes_a = score__calloc(ndk, sizeof(float))) == NULL)
        goto nomem;
    lk->cap = n;
    lk->cap_k = kp;
    return SCORE_OK;
nomem:
    free_ws(lk);
    return score__error(SCORE_E_NOMEM, "score_likelihood_logp", "workspace for %zu rows", n);
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

/* Right-hand side d(x, delta)/dlambda for m compacted rows at lambda values lam (m), state
 * ys (m x (dim+1)), probes pa (NULL = exact). */
static int rhs(score_likelihood *lk, score_sde *sde, size_t m, const double *lam,
               const double *ys, size_t kp, const float *pa, double *kout)
{
    const score_schedule *sched = score_sde_schedule(sde);
    size_t dim = lk->dim, d1 = dim + 1;
    int rc;
    rc = score_schedule_t_of_lambda(sched, m, lam, lk->t_s);
    if (rc == SCORE_OK)
        rc = score_schedule_alpha_sigma(sched, m, lk->t_s, lk->al_s, lk->sg_s);
    if (rc == SCORE_OK)
        rc = score_schedule_sde_coefs(sched, m, lk->t_s, lk->f_s, lk->g_s);
    if (rc != SCORE_OK)
        return rc;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < dim; j++)
            lk->xin[i * dim + j] = (float)ys[i * d1 + j];
    rc = score_sde_pf_divergence(sde, m, lk->t_s, lk->xin, pa != NULL ? kp : 0, pa, lk->div,
                                 lk->drift);
    lk->nfe++;
    if (rc != SCORE_OK)
        return rc;
    for (size_t i = 0; i < m; i++) {
        double g2 = lk->g_s[i] * lk->g_s[i], sg = lk->sg_s[i], c;
        if (!(g2 > 0.0))
            return score__error(SCORE_E_RANGE, "score_likelihood_logp",
                                "g(t) = 0 at t = %g: lambda is not a valid time variable there",
                                lk->t_s[i]);
        c = -2.0 * sg * sg / g2; /* dt / dlambda */
        for (size_t j = 0; j < dim; j++)
            kout[i * d1 + j] = c * (double)lk->drift[i * dim + j];
        kout[i * d1 + dim] = c * lk->div[i];
    }
    return SCORE_OK;
}

int score_likelihood_logp_ex(score_likelihood *lk, score_sde *sde, const score_rng *rng,
                             size_t row0, size_t n, const float *x, double *logp_nats,
                             double *bpd, float *z_out, double *delta_out)
{
    const char *fn = "score_likelihood_logp";
    const score_schedule *sched;
    score__control_vals v;
    size_t dim, d1, kp = 0;
    double teps, tend, lam0, lam1, hinit;
    uint64_t attempts = 0, max_steps;
    int rc, divmode, exact;
    if (lk == NULL || sde == NULL)
        return score__error(SCORE_E_INVAL, fn, "likelihood or sde is NULL");
    lk->nfe = lk->steps = 0;
    if (n == 0)
        return SCORE_OK;
    if (x == NULL || logp_nats == NULL)
        return score__error(SCORE_E_INVAL, fn, "x or logp_nats is NULL");
    dim = lk->dim;
    d1 = dim + 1;
    if (score_sde_dim(sde) != dim)
        return score__error(SCORE_E_SHAPE, fn, "sde dimension %zu != likelihood dimension %zu",
                            score_sde_dim(sde), dim);
    if (!score__all_finite_f32(n * dim, x))
        return score__error(SCORE_E_NUMERIC, fn, "x holds NaN or infinity");
    sched = score_sde_schedule(sde);
    teps = lk->params[P(SCORE_LIKELIHOOD_PARAM_T_EPS)].f;
    tend = lk->params[P(SCORE_LIKELIHOOD_PARAM_T_END)].f;
    if (teps == 0.0 && (rc = score_schedule_get_f64(sched, SCORE_SCHEDULE_PARAM_T_EPS, &teps)) != SCORE_OK)
        return rc;
    if (tend == 0.0 && (rc = score_schedule_get_f64(sched, SCORE_SCHEDULE_PARAM_T, &tend)) != SCORE_OK)
        return rc;
    if (!(teps < tend))
        return score__error(SCORE_E_INVAL, fn, "t_eps = %g must be < t_end = %g", teps, tend);
    divmode = (int)lk->params[P(SCORE_LIKELIHOOD_PARAM_DIVERGENCE)].i;
    exact = divmode == SCORE_LIKELIHOOD_DIV_EXACT ||
            (divmode == SCORE_LIKELIHOOD_DIV_AUTO && dim <= AUTO_EXACT_MAX_DIM);
    if (!exact) {
        kp = (size_t)lk->params[P(SCORE_LIKELIHOOD_PARAM_N_PROBES)].i;
        if (rng == NULL)
            return score__error(SCORE_E_INVAL, fn, "rng is NULL but the Hutchinson estimate needs probes");
        if ((uint64_t)row0 > ((uint64_t)1 << 32) || (uint64_t)n > ((uint64_t)1 << 32) - row0)
            return score__error(SCORE_E_RANGE, fn, "rows %zu + %zu exceed 2^32", row0, n);
        if ((uint64_t)kp * dim > ((uint64_t)1 << 34))
            return score__error(SCORE_E_RANGE, fn, "%zu probes x %zu values exceed 2^34 columns", kp, dim);
    }
    rc = ensure(lk, n, kp > 0 ? kp : 1);
    if (rc != SCORE_OK)
        return rc;
    if (!exact) {
        if (lk->params[P(SCORE_LIKELIHOOD_PARAM_PROBE)].i == SCORE_LIKELIHOOD_PROBE_GAUSSIAN)
            score__rng_normal_at(rng, rng->counter, row0, n, 0, kp * dim, lk->probes);
        else
            score__rng_rademacher_at(rng, rng->counter, row0, n, 0, kp * dim, lk->probes);
    }
    rc = score_schedule_lambda(sched, 1, &teps, &lam0);
    if (rc == SCORE_OK)
        rc = score_schedule_lambda(sched, 1, &tend, &lam1);
    if (rc != SCORE_OK)
        return rc;
    score__control_defaults(&v);
    v.rtol = lk->params[P(SCORE_LIKELIHOOD_PARAM_RTOL)].f;
    v.atol = lk->params[P(SCORE_LIKELIHOOD_PARAM_ATOL)].f;
    v.h_min = lk->params[P(SCORE_LIKELIHOOD_PARAM_H_MIN)].f;
    if (!(v.rtol + v.atol > 0.0))
        return score__error(SCORE_E_INVAL, fn, "rtol and atol are both 0");
    hinit = lk->params[P(SCORE_LIKELIHOOD_PARAM_H_INIT)].f;
    if (!(hinit > 0.0))
        hinit = H_DEFAULT;
    max_steps = (uint64_t)lk->params[P(SCORE_LIKELIHOOD_PARAM_MAX_STEPS)].i;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < dim; j++)
            lk->y[i * d1 + j] = (double)x[i * dim + j];
        lk->y[i * d1 + dim] = 0.0;
        lk->lam[i] = lam0;
        lk->h[i] = hinit;
        lk->done[i] = 0;
        lk->k1ok[i] = 0;
        lk->row_steps[i] = 0;
    }
    /* adaptive loop: lambda decreases from lambda(t_eps) to lambda(t_end) */
    for (;;) {
        size_t m = 0;
        int need_k1 = 0;
        for (size_t i = 0; i < n; i++) {
            if (lk->done[i])
                continue;
            lk->idx[m] = i;
            lk->lam_a[m] = lk->lam[i];
            lk->h_a[m] = lk->lam[i] - lk->h[i] <= lam1 ? lk->lam[i] - lam1 : lk->h[i];
            memcpy(lk->ya + m * d1, lk->y + i * d1, d1 * sizeof(double));
            if (!lk->k1ok[i])
                need_k1 = 1;
            else
                memcpy(lk->ks[0] + m * d1, lk->k1 + i * d1, d1 * sizeof(double));
            if (!exact)
                memcpy(lk->probes_a + m * kp * dim, lk->probes + i * kp * dim,
                       kp * dim * sizeof(float));
            m++;
        }
        if (m == 0)
            break;
        if (attempts >= max_steps)
            return score__error(SCORE_E_NOPROGRESS, fn, "max_steps = %llu attempts reached",
                                (unsigned long long)max_steps);
        attempts++;
        if (need_k1) {
            rc = rhs(lk, sde, m, lk->lam_a, lk->ya, kp, exact ? NULL : lk->probes_a, lk->ks[0]);
            if (rc != SCORE_OK)
                return rc;
        }
        for (int q = 1; q < 7; q++) {
            for (size_t r = 0; r < m; r++) {
                double hh = -lk->h_a[r];
                lk->lam_s[r] = score__dp5_c[q] == 1.0 ? lk->lam_a[r] + hh
                                                      : lk->lam_a[r] + score__dp5_c[q] * hh;
                if (score__dp5_c[q] == 1.0 && lk->lam_a[r] - lk->h_a[r] <= lam1)
                    lk->lam_s[r] = lam1;
                for (size_t j = 0; j < d1; j++) {
                    double acc = 0.0;
                    for (int l = 0; l < q; l++)
                        if (score__dp5_a[q][l] != 0.0)
                            acc += score__dp5_a[q][l] * lk->ks[l][r * d1 + j];
                    lk->ys[r * d1 + j] = lk->ya[r * d1 + j] + hh * acc;
                }
            }
            if (q == 6)
                memcpy(lk->ynew, lk->ys, m * d1 * sizeof(double));
            rc = rhs(lk, sde, m, lk->lam_s, lk->ys, kp, exact ? NULL : lk->probes_a, lk->ks[q]);
            if (rc != SCORE_OK)
                return rc;
        }
        for (size_t r = 0; r < m; r++) {
            size_t i = lk->idx[r];
            double hh = -lk->h_a[r], acc = 0.0, err, hp = lk->h_a[r];
            int accept;
            for (size_t j = 0; j < d1; j++) {
                double e = 0.0, sc;
                for (int l = 0; l < 7; l++)
                    if (score__dp5_e[l] != 0.0)
                        e += score__dp5_e[l] * lk->ks[l][r * d1 + j];
                e *= hh;
                sc = v.atol + v.rtol * fmax(fabs(lk->ya[r * d1 + j]), fabs(lk->ynew[r * d1 + j]));
                acc += (e / sc) * (e / sc);
            }
            err = isfinite(acc) ? sqrt(acc / (double)d1) : INFINITY;
            accept = score__control_propose(&v, 4, err, &hp);
            lk->h[i] = hp;
            if (accept) {
                memcpy(lk->y + i * d1, lk->ynew + r * d1, d1 * sizeof(double));
                memcpy(lk->k1 + i * d1, lk->ks[6] + r * d1, d1 * sizeof(double));
                lk->k1ok[i] = 1;
                lk->row_steps[i]++;
                if (lk->lam[i] - lk->h_a[r] <= lam1) {
                    lk->lam[i] = lam1;
                    lk->done[i] = 1;
                } else {
                    lk->lam[i] -= lk->h_a[r];
                }
            } else {
                memcpy(lk->k1 + i * d1, lk->ks[0] + r * d1, d1 * sizeof(double));
                lk->k1ok[i] = 1;
                if (lk->h[i] < v.h_min)
                    return score__error(SCORE_E_NOPROGRESS, fn,
                                        "row %zu: step %g below h_min = %g at lambda = %g",
                                        row0 + i, lk->h[i], v.h_min, lk->lam[i]);
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        if (lk->row_steps[i] > lk->steps)
            lk->steps = lk->row_steps[i];
    /* log p = log p_T(z) + delta */
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < dim; j++)
            lk->xin[i * dim + j] = (float)lk->y[i * d1 + j];
    rc = score_schedule_prior_logp(sched, n, dim, lk->xin, logp_nats);
    if (rc != SCORE_OK)
        return rc;
    {
        double off = lk->params[P(SCORE_LIKELIHOOD_PARAM_DEQUANT_OFFSET)].f;
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
    }
    if (z_out != NULL)
        memcpy(z_out, lk->xin, n * dim * sizeof(float));
    return SCORE_OK;
}

int score_likelihood_logp(score_likelihood *lk, score_sde *sde, const score_rng *rng, size_t n,
                          const float *x, double *logp_nats, double *bpd)
{
    return score_likelihood_logp_ex(lk, sde, rng, 0, n, x, logp_nats, bpd, NULL, NULL);
}
