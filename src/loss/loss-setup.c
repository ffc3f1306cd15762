/* Per-row setup of a loss evaluation: the time, noise level or discrete level of every row, the
 * sde's coefficients there and the row weights, for each kind (see include/libscore/loss.h). */
#include <math.h>

#include "libscore/schedule.h"
#include "loss-priv.h"
#include "sde/sde-priv.h"

/* Rows of the time-free kinds: constants a, k, in, c (and alpha, sigma for DSM). */
static int setup_fixed(const char *fn, score_loss *L, const score_sde *sde, size_t n)
{
    double a = 1.0, k = 0.0, in = 1.0, c = score__loss_f(L, IX_COND), al = 1.0, si = score__loss_f(L, IX_SIGMA);
    double t = score__loss_f(L, IX_TIME);
    if (sde != NULL) {
        int rc;
        if (!(t > 0.0))
            return score__error(SCORE_E_INVAL, fn,
                                "a %s loss evaluated through an sde needs SCORE_LOSS_PARAM_TIME "
                                "(the fixed time t > 0)", score__loss_kind_name(L->kind));
        rc = score_sde_coefs(sde, 1, &t, &a, &k, &in, &c);
        if (rc != SCORE_OK)
            return score__loss_wrap(fn, rc, "coefficients at the loss's TIME");
        rc = score_schedule_alpha_sigma(score_sde_schedule(sde), 1, &t, &al, &si);
        if (rc != SCORE_OK)
            return score__loss_wrap(fn, rc, "schedule at the loss's TIME");
    }
    for (size_t b = 0; b < n; b++) {
        L->t[b] = t;
        L->a[b] = a;
        L->k[b] = k;
        L->in[b] = in;
        L->c[b] = c;
        L->al[b] = al;
        L->si[b] = si;
        L->w[b] = 1.0;
    }
    return SCORE_OK;
}

/* Per-row coefficients of the sde at the times L->t (already filled). */
static int row_coefs(const char *fn, score_loss *L, const score_sde *sde, size_t n)
{
    /* one schedule evaluation per row gives alpha and sigma together with the coefficients
     * (the same values as score_sde_coefs() and score_schedule_alpha_sigma()) */
    int64_t kind;
    int rc = score_sde_get_i64(sde, SCORE_SDE_PARAM_OUTPUT, &kind);
    if (rc != SCORE_OK)
        return score__loss_wrap(fn, rc, "sde output kind");
    for (size_t b = 0; b < n; b++) {
        rc = score__sde_row_coefs(sde, fn, b, (int)kind, L->t[b], &L->al[b], &L->si[b], &L->a[b],
                                  &L->k[b], &L->in[b], &L->c[b]);
        if (rc != SCORE_OK)
            return rc;
    }
    return SCORE_OK;
}

/* NCSN / DDPM: a level per row of a discrete schedule. */
static int setup_levels(const char *fn, score_loss *L, const score_sde *sde,
                        const score_rng *rng, size_t n, size_t dim)
{
    const score_schedule *sch = score_sde_schedule(sde);
    size_t nl = score_schedule_num_levels(sch);
    double T;
    int rc;
    if (score_schedule_is_discrete(sch) != 1)
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "%s losses need a discrete schedule (NCSN, DDPM, sigmas, betas); "
                            "use SCORE_LOSS_SDE for the continuous %s schedule",
                            score__loss_kind_name(L->kind), score_schedule_name(sch));
    if ((rc = score_schedule_get_f64(sch, SCORE_SCHEDULE_PARAM_T, &T)) != SCORE_OK)
        return score__loss_wrap(fn, rc, "schedule T");
    if (nl == 0)
        return score__error(SCORE_E_INVAL, fn, "the schedule has no levels");
    rc = score_rng_fill_index(rng, L->row0, n, score__loss_round4(dim), 1, (uint64_t)nl, L->idx);
    if (rc != SCORE_OK)
        return score__loss_wrap(fn, rc, "level draw");
    for (size_t b = 0; b < n; b++)
        L->t[b] = T * ((double)L->idx[b] + 1.0) / (double)nl;
    if ((rc = row_coefs(fn, L, sde, n)) != SCORE_OK)
        return rc;
    for (size_t b = 0; b < n; b++) {
        double si = L->si[b];
        if (L->kind == SCORE_LOSS_NCSN)
            L->w[b] = pow(si, score__loss_f(L, IX_ANNEAL) - 2.0);
        else
            L->w[b] = 1.0;
    }
    return SCORE_OK;
}

/* Continuous-time SDE loss: t ~ U(t_eps, T) or importance-sampled. */
static int setup_sde(const char *fn, score_loss *L, const score_sde *sde, const score_rng *rng,
                     size_t n, size_t dim)
{
    const score_schedule *sch = score_sde_schedule(sde);
    double T, te = score__loss_f(L, IX_TEPS);
    int rc;
    if ((rc = score_schedule_get_f64(sch, SCORE_SCHEDULE_PARAM_T, &T)) != SCORE_OK)
        return score__loss_wrap(fn, rc, "schedule T");
    if (!(te < T))
        return score__error(SCORE_E_INVAL, fn, "t_eps = %g is not below the schedule's T = %g", te, T);
    rc = score_rng_fill_uniform_f64(rng, L->row0, n, score__loss_round4(dim), 1, L->u);
    if (rc != SCORE_OK)
        return score__loss_wrap(fn, rc, "time draw");
    if (score__loss_i(L, IX_IMPORT)) {
        double ends[2] = {T, te}, lam[2], Z, wgt;
        if ((rc = score_schedule_lambda(sch, 2, ends, lam)) != SCORE_OK)
            return score__loss_wrap(fn, rc, "lambda at T and t_eps");
        if (!isfinite(lam[0]) || !isfinite(lam[1]))
            return score__error(SCORE_E_NUMERIC, fn, "lambda(T) or lambda(t_eps) is not finite");
        for (size_t b = 0; b < n; b++)
            L->t[b] = lam[1] - L->u[b] * (lam[1] - lam[0]);
        if ((rc = score_schedule_t_of_lambda(sch, n, L->t, L->t)) != SCORE_OK)
            return score__loss_wrap(fn, rc, "time of lambda");
        Z = 2.0 * (lam[1] - lam[0]);
        wgt = Z / (T - te);
        for (size_t b = 0; b < n; b++) {
            if (L->t[b] < te) L->t[b] = te;
            if (L->t[b] > T) L->t[b] = T;
            L->w[b] = wgt;
        }
        return row_coefs(fn, L, sde, n);
    }
    for (size_t b = 0; b < n; b++) {
        double t = te + L->u[b] * (T - te);
        L->t[b] = t > T ? T : t;
    }
    if ((rc = row_coefs(fn, L, sde, n)) != SCORE_OK)
        return rc;
    if (score__loss_i(L, IX_WEIGHT) == SCORE_LOSS_WEIGHT_LIKELIHOOD) {
        /* g^2 red((s + z / sigma)^2) = (g / sigma)^2 red((sigma s + z)^2); u holds g */
        if ((rc = score_schedule_sde_coefs(sch, n, L->t, NULL, L->u)) != SCORE_OK)
            return score__loss_wrap(fn, rc, "diffusion coefficient g(t)");
        for (size_t b = 0; b < n; b++) {
            double r = L->u[b] / L->si[b];
            L->w[b] = r * r;
        }
    } else {
        for (size_t b = 0; b < n; b++)
            L->w[b] = 1.0;
    }
    return SCORE_OK;
}

int score__loss_setup_rows(const char *fn, score_loss *L, const score_sde *sde,
                           const score_rng *rng, size_t n, size_t dim)
{
    int rc;
    if (K(L->kind) & TIME_FREE)
        rc = setup_fixed(fn, L, sde, n);
    else if (L->kind == SCORE_LOSS_SDE)
        rc = setup_sde(fn, L, sde, rng, n, dim);
    else
        rc = setup_levels(fn, L, sde, rng, n, dim);
    if (rc != SCORE_OK)
        return rc;
    if (L->kind == SCORE_LOSS_DSM)
        for (size_t b = 0; b < n; b++)
            L->w[b] = 1.0 / (L->si[b] * L->si[b]);
    return SCORE_OK;
}
