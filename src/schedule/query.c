/* Batched queries of a schedule: marginals, log-SNR and its inverse, SDE coefficients, prior,
 * score_sde-style discretization and level tables. None of these allocate. */
#include <math.h>

#include "schedule-priv.h"

int score__sched_check_times(const score_schedule *s, const char *fn, size_t n, const double *t)
{
    if (n > 0 && t == NULL)
        return score__error(SCORE_E_INVAL, fn, "t is NULL");
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(t[i]))
            return score__error(SCORE_E_NUMERIC, fn, "t[%zu] = %g is not finite", i, t[i]);
        if (t[i] < 0.0 || t[i] > s->T)
            return score__error(SCORE_E_RANGE, fn, "t[%zu] = %.17g outside [0, T = %.17g]", i, t[i], s->T);
    }
    return SCORE_OK;
}

static int begin(const score_schedule *s, const char *fn, size_t n, const double *t)
{
    int rc = score__sched_ensure(s, fn);
    if (rc != SCORE_OK)
        return rc;
    return score__sched_check_times(s, fn, n, t);
}

int score_schedule_alpha_sigma(const score_schedule *s, size_t n, const double *t,
                               double *alpha_out, double *sigma_out)
{
    int rc = begin(s, __func__, n, t);
    if (rc != SCORE_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        double la, sig, lam;
        score__sched_eval(s, t[i], &la, &sig, &lam);
        if (alpha_out)
            alpha_out[i] = la == 0.0 ? 1.0 : exp(la); /* VE kinds: no libm call */
        if (sigma_out)
            sigma_out[i] = sig;
    }
    return SCORE_OK;
}

int score_schedule_lambda(const score_schedule *s, size_t n, const double *t, double *out)
{
    int rc = begin(s, __func__, n, t);
    if (rc != SCORE_OK)
        return rc;
    if (n > 0 && out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    for (size_t i = 0; i < n; i++) {
        double la, sig;
        score__sched_eval(s, t[i], &la, &sig, &out[i]);
    }
    return SCORE_OK;
}

int score_schedule_t_of_lambda(const score_schedule *s, size_t n, const double *lambda, double *out)
{
    int rc = score__sched_ensure(s, __func__);
    double lo, hi;
    if (rc != SCORE_OK)
        return rc;
    if (n > 0 && (lambda == NULL || out == NULL))
        return score__error(SCORE_E_INVAL, __func__, "lambda or out is NULL");
    lo = s->lam_T - 1e-12 * fmax(1.0, fabs(s->lam_T));
    hi = isfinite(s->lam_0) ? s->lam_0 + 1e-12 * fmax(1.0, fabs(s->lam_0)) : INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(lambda[i]))
            return score__error(SCORE_E_NUMERIC, __func__, "lambda[%zu] = %g is not finite", i, lambda[i]);
        if (lambda[i] < lo || lambda[i] > hi)
            return score__error(SCORE_E_RANGE, __func__,
                                "lambda[%zu] = %.17g outside [lambda(T) = %.17g, lambda(0) = %.17g]", i,
                                lambda[i], s->lam_T, s->lam_0);
    }
    for (size_t i = 0; i < n; i++) {
        double l = lambda[i];
        if (l < s->lam_T)
            l = s->lam_T;
        if (l > s->lam_0)
            l = s->lam_0;
        out[i] = score__sched_t_of_lambda(s, l);
    }
    return SCORE_OK;
}

int score_schedule_sde_coefs(const score_schedule *s, size_t n, const double *t,
                             double *f_coef_out, double *g_out)
{
    int rc = begin(s, __func__, n, t);
    if (rc != SCORE_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        double f, g;
        score__sched_coefs(s, t[i], &f, &g);
        if (f_coef_out)
            f_coef_out[i] = f;
        if (g_out)
            g_out[i] = g;
    }
    return SCORE_OK;
}

/* ---- prior ------------------------------------------------------------------------------- */

static double prior_std(const score_schedule *s)
{
    double la, sig, lam;
    if (!score__sched_is_ve_type(s->kind))
        return 1.0;
    if (s->kind == SCORE_SCHEDULE_VE && s->T == 1.0)
        return score__sched_f(s, SCORE_SCHEDULE_PARAM_SIGMA_MAX); /* score_sde: exactly sigma_max */
    if (score__sched_is_discrete(s->kind))
        return s->aux[s->L - 1];
    score__sched_eval(s, s->T, &la, &sig, &lam);
    return sig;
}

int score_schedule_prior_std(const score_schedule *s, double *out)
{
    int rc = score__sched_ensure(s, __func__);
    if (rc != SCORE_OK)
        return rc;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = prior_std(s);
    return SCORE_OK;
}

int score_schedule_prior_sample(const score_schedule *s, const score_rng *rng, size_t n,
                                size_t dim, float *out)
{
    enum { CHUNK = 256 };
    double buf[CHUNK], sd;
    int rc = score__sched_ensure(s, __func__);
    if (rc != SCORE_OK)
        return rc;
    if (rng == NULL || (n > 0 && dim > 0 && out == NULL))
        return score__error(SCORE_E_INVAL, __func__, "rng or out is NULL");
    if (n == 0 || dim == 0)
        return SCORE_OK;
    /* The generator's limits: rows < 2^32, columns <= 2^34 (rng.h). */
    if ((uint64_t)n > UINT64_C(4294967296) || (uint64_t)dim > (UINT64_C(1) << 34))
        return score__error(SCORE_E_RANGE, __func__, "n = %zu or dim = %zu exceeds the generator's limits",
                            n, dim);
    sd = prior_std(s);
    for (size_t i = 0; i < n; i++) {
        for (size_t c0 = 0; c0 < dim; c0 += CHUNK) {
            size_t m = dim - c0 < CHUNK ? dim - c0 : CHUNK;
            rc = score_rng_fill_normal_f64(rng, i, 1, c0, m, buf);
            if (rc != SCORE_OK)
                return rc;
            for (size_t j = 0; j < m; j++)
                out[i * dim + c0 + j] = (float)(sd * buf[j]);
        }
    }
    return SCORE_OK;
}

int score_schedule_prior_logp(const score_schedule *s, size_t n, size_t dim, const float *z,
                              double *out)
{
    const double log2pi = 1.8378770664093454836;
    double sd, c;
    int rc = score__sched_ensure(s, __func__);
    if (rc != SCORE_OK)
        return rc;
    if (dim == 0)
        return score__error(SCORE_E_INVAL, __func__, "dim is 0");
    if (n > 0 && (z == NULL || out == NULL))
        return score__error(SCORE_E_INVAL, __func__, "z or out is NULL");
    if (n > SIZE_MAX / dim)
        return score__error(SCORE_E_RANGE, __func__, "%zu rows of %zu values is too large", n, dim);
    for (size_t i = 0; i < n * dim; i++)
        if (!isfinite(z[i]))
            return score__error(SCORE_E_NUMERIC, __func__, "z[%zu] is not finite", i);
    sd = prior_std(s);
    c = -0.5 * (double)dim * (log2pi + 2.0 * log(sd));
    for (size_t i = 0; i < n; i++) {
        double ss = 0.0;
        for (size_t j = 0; j < dim; j++) {
            double v = (double)z[i * dim + j];
            ss += v * v;
        }
        out[i] = c - 0.5 * ss / (sd * sd);
    }
    return SCORE_OK;
}

/* ---- discretization ---------------------------------------------------------------------- */

static int use_score_sde(const score_schedule *s)
{
    return (s->kind == SCORE_SCHEDULE_VP || s->kind == SCORE_SCHEDULE_SUBVP) &&
           score__sched_i(s, SCORE_SCHEDULE_PARAM_DISCRETIZATION) == SCORE_SCHEDULE_DISC_SCORE_SDE;
}

/* score_sde VP: beta_i = beta(i T / (N - 1)) T / N */
static double sde_beta(const score_schedule *s, size_t N, size_t i)
{
    double tau = N > 1 ? (double)i * s->T / (double)(N - 1) : 0.0;
    return (s->c_a + tau * s->c_b) * s->T / (double)N;
}

static int check_sde_beta(const score_schedule *s, size_t N, const char *fn)
{
    double bmax = sde_beta(s, N, N - 1);
    if (!(bmax < 1.0))
        return score__error(SCORE_E_RANGE, fn,
                            "score_sde VP discretization with N = %zu has beta_%zu = %g >= 1 (NaN in "
                            "score_sde); use more steps or SCORE_SCHEDULE_DISC_EXACT",
                            N, N - 1, bmax);
    return SCORE_OK;
}

/* log alpha and sigma of level i (i = -1 encoded as ip1 = 0) at level time T ip1 / N, with the
 * clean data below level 0. */
static void level_state(const score_schedule *s, size_t N, size_t ip1, double *la, double *sig)
{
    double lam;
    if (s->kind == SCORE_SCHEDULE_VE) {
        /* score_sde discrete_sigmas: sigma(i T / (N - 1)), i = ip1 - 1 */
        if (ip1 == 0) {
            *la = 0.0;
            *sig = 0.0;
            return;
        }
        double tau = N > 1 ? (double)(ip1 - 1) * s->T / (double)(N - 1) : 0.0;
        *la = 0.0;
        *sig = exp(s->c_a + tau * s->c_b);
        return;
    }
    if (ip1 == 0) {
        *la = 0.0;
        *sig = 0.0;
        return;
    }
    if (score__sched_is_discrete(s->kind) && N == s->L) {
        if (score__sched_is_ve_type(s->kind)) {
            *la = 0.0;
            *sig = s->aux[ip1 - 1];
        } else {
            *la = s->lv[ip1 - 1];
            *sig = sqrt(-expm1(2.0 * *la));
        }
        return;
    }
    score__sched_eval(s, s->T * (double)ip1 / (double)N, la, sig, &lam);
}

static void disc_one(const score_schedule *s, size_t N, double t, double *f, double *G)
{
    double fl = floor(t * (double)(N - 1) / s->T);
    size_t i = fl <= 0.0 ? 0 : (fl >= (double)(N - 1) ? N - 1 : (size_t)fl);
    double la1, s1, la0, s0, d;

    if (use_score_sde(s)) {
        if (s->kind == SCORE_SCHEDULE_VP) {
            double b = sde_beta(s, N, i);
            *f = expm1(0.5 * log1p(-b));
            *G = sqrt(b);
        } else {
            /* sub-VP: score_sde's default Euler-Maruyama discretization at t, dt = T / N */
            double fc, g, dt = s->T / (double)N;
            score__sched_coefs(s, t, &fc, &g);
            *f = fc * dt;
            *G = g * sqrt(dt);
        }
        return;
    }
    if (score__sched_is_discrete(s->kind) && !score__sched_is_ve_type(s->kind) && N == s->L) {
        double b = s->aux[i]; /* the table's own beta */
        *f = expm1(0.5 * log1p(-b));
        *G = sqrt(b);
        return;
    }
    level_state(s, N, i + 1, &la1, &s1);
    level_state(s, N, i, &la0, &s0);
    if (score__sched_is_ve_type(s->kind)) {
        /* SMLD: G_i = sqrt(sigma_i^2 - sigma_{i-1}^2) */
        *f = 0.0;
        *G = sqrt((s1 - s0) * (s1 + s0));
        return;
    }
    d = la1 - la0; /* log(alpha_i / alpha_{i-1}) <= 0 */
    *f = expm1(d);
    if (s->kind == SCORE_SCHEDULE_SUBVP) {
        /* G^2 = sigma_i^2 - r^2 sigma_{i-1}^2 with sigma = 1 - alpha^2, r = alpha_i / alpha_{i-1}:
         * sigma_i - r sigma_{i-1} = (alpha_{i-1} - alpha_i) (1 / alpha_{i-1} + alpha_i). */
        double a0 = exp(la0), a1 = exp(la1), r = exp(d);
        double diff = -a0 * expm1(d);
        double g2 = diff * (1.0 / a0 + a1) * (s1 + r * s0);
        *G = sqrt(g2 > 0.0 ? g2 : 0.0);
    } else {
        /* sigma^2 = 1 - alpha^2: G^2 = 1 - r^2 = beta_i */
        *G = sqrt(-expm1(2.0 * d));
    }
}

int score_schedule_discretize(const score_schedule *s, size_t N, size_t n, const double *t,
                              double *f_coef_out, double *G_out)
{
    int rc = begin(s, __func__, n, t);
    if (rc != SCORE_OK)
        return rc;
    if (N == 0)
        N = score_schedule_num_levels(s);
    if (N > SCORE__SCHED_MAX_LEVELS)
        return score__error(SCORE_E_RANGE, __func__, "N = %zu exceeds %d", N, SCORE__SCHED_MAX_LEVELS);
    if (use_score_sde(s) && s->kind == SCORE_SCHEDULE_VP && (rc = check_sde_beta(s, N, __func__)) != SCORE_OK)
        return rc;
    for (size_t k = 0; k < n; k++) {
        double f, G;
        disc_one(s, N, t[k], &f, &G);
        if (f_coef_out)
            f_coef_out[k] = f;
        if (G_out)
            G_out[k] = G;
    }
    return SCORE_OK;
}

int score_schedule_levels(const score_schedule *s, size_t n, double *sigmas_out, double *alphas_out)
{
    int rc = score__sched_ensure(s, __func__);
    size_t L;
    if (rc != SCORE_OK)
        return rc;
    L = score_schedule_num_levels(s);
    if (n != L)
        return score__error(SCORE_E_SHAPE, __func__, "n = %zu but the schedule has %zu levels", n, L);
    if (s->kind == SCORE_SCHEDULE_VP && use_score_sde(s)) {
        double acc = 0.0;
        if ((rc = check_sde_beta(s, L, __func__)) != SCORE_OK)
            return rc;
        for (size_t i = 0; i < L; i++) {
            acc += 0.5 * log1p(-sde_beta(s, L, i)); /* log sqrt(alphas_cumprod) */
            if (alphas_out)
                alphas_out[i] = exp(acc);
            if (sigmas_out)
                sigmas_out[i] = sqrt(-expm1(2.0 * acc));
        }
        return SCORE_OK;
    }
    for (size_t i = 0; i < L; i++) {
        double la, sig;
        level_state(s, L, i + 1, &la, &sig);
        if (alphas_out)
            alphas_out[i] = exp(la);
        if (sigmas_out)
            sigmas_out[i] = sig;
    }
    return SCORE_OK;
}
