/* Sampler time grids (uniform t, uniform lambda, Karras, exponential, polyexponential,
 * quadratic) and validation of user grids. Sigma-space grids are built in EDM sigma
 * (sigma / alpha = exp(-lambda)) and mapped to t through the inverse of lambda. */
#include <math.h>

#include "schedule-priv.h"

#define MAX_GRID 100000000u

static double lambda_at(const score_schedule *s, double t)
{
    double la, sig, lam;
    score__sched_eval(s, t, &la, &sig, &lam);
    return lam;
}

static double clamp_lambda(const score_schedule *s, double lam)
{
    if (lam < s->lam_T)
        return s->lam_T;
    if (lam > s->lam_0)
        return s->lam_0;
    return lam;
}

/* Resolves an EDM-sigma grid end: 0 means the schedule's own end; otherwise the sigma must map
 * to a time in [t_eps, T]. Writes the sigma and its time. */
static int grid_end(const score_schedule *s, const char *fn, const char *what, double req,
                    double t_default, double lam_lo, double lam_hi, double *sig_out, double *t_out)
{
    double lam, slack;
    if (req == 0.0) {
        *t_out = t_default;
        *sig_out = exp(-lambda_at(s, t_default));
        return SCORE_OK;
    }
    lam = -log(req);
    slack = 1e-12 * fmax(1.0, fmax(fabs(lam_lo), fabs(lam_hi)));
    if (lam < lam_lo - slack || lam > lam_hi + slack)
        return score__error(SCORE_E_RANGE, fn,
                            "%s = %.17g maps outside [t_eps, T]: the schedule's EDM sigma range is [%.17g, %.17g]",
                            what, req, exp(-lam_hi), exp(-lam_lo));
    *sig_out = req;
    lam = lam < lam_lo ? lam_lo : (lam > lam_hi ? lam_hi : lam);
    *t_out = score__sched_t_of_lambda(s, lam);
    return SCORE_OK;
}

static int make_grid(const score_schedule *s, const char *fn, int grid_kind, size_t n,
                     uint32_t flags, double *out, int want_sigma)
{
    int rc = score__sched_ensure(s, fn);
    double T, te, lam_T, lam_e;
    if (rc != SCORE_OK)
        return rc;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, fn, "out is NULL");
    if (flags & ~(uint32_t)SCORE_GRID_APPEND_ZERO)
        return score__error(SCORE_E_INVAL, fn, "unknown grid flags 0x%x", (unsigned)flags);
    if (grid_kind < SCORE_GRID_UNIFORM_T || grid_kind > SCORE_GRID_QUADRATIC)
        return score__error(SCORE_E_UNSUPPORTED, fn, "unknown grid kind %d", grid_kind);
    if (n == 0 || n > MAX_GRID)
        return score__error(SCORE_E_RANGE, fn, "n_steps = %zu outside [1, %u]", n, MAX_GRID);
    T = s->T;
    te = s->t_eps;
    lam_T = s->lam_T;
    lam_e = lambda_at(s, te);

    if (grid_kind == SCORE_GRID_KARRAS || grid_kind == SCORE_GRID_EXPONENTIAL ||
        grid_kind == SCORE_GRID_POLYEXPONENTIAL) {
        double hi, lo, t_start, t_end;
        double rho = score__sched_f(s, grid_kind == SCORE_GRID_KARRAS ? SCORE_SCHEDULE_PARAM_RHO
                                                                      : SCORE_SCHEDULE_PARAM_POLY_RHO);
        rc = grid_end(s, fn, "grid_sigma_max", score__sched_f(s, SCORE_SCHEDULE_PARAM_GRID_SIGMA_MAX), T,
                      lam_T, lam_e, &hi, &t_start);
        if (rc != SCORE_OK)
            return rc;
        rc = grid_end(s, fn, "grid_sigma_min", score__sched_f(s, SCORE_SCHEDULE_PARAM_GRID_SIGMA_MIN), te,
                      lam_T, lam_e, &lo, &t_end);
        if (rc != SCORE_OK)
            return rc;
        if (!(lo < hi))
            return score__error(SCORE_E_INVAL, fn, "grid sigma range is empty: sigma_lo = %.17g >= sigma_hi = %.17g",
                                lo, hi);
        for (size_t k = 0; k < n; k++) {
            double r = n == 1 ? 0.0 : (double)k / (double)(n - 1), sig;
            if (k == 0)
                sig = hi;
            else if (k == n - 1)
                sig = lo;
            else if (grid_kind == SCORE_GRID_KARRAS) {
                double a = pow(hi, 1.0 / rho), b = pow(lo, 1.0 / rho);
                sig = pow(a + r * (b - a), rho);
            } else if (grid_kind == SCORE_GRID_EXPONENTIAL) {
                sig = exp(log(hi) + r * (log(lo) - log(hi)));
            } else {
                sig = exp(pow(1.0 - r, rho) * (log(hi) - log(lo)) + log(lo));
            }
            if (want_sigma)
                out[k] = sig;
            else if (k == 0)
                out[k] = t_start;
            else if (k == n - 1)
                out[k] = t_end;
            else
                out[k] = score__sched_t_of_lambda(s, clamp_lambda(s, -log(sig)));
        }
    } else {
        for (size_t k = 0; k < n; k++) {
            double r = n == 1 ? 0.0 : (double)k / (double)(n - 1), t;
            if (k == 0)
                t = T;
            else if (k == n - 1)
                t = te;
            else if (grid_kind == SCORE_GRID_UNIFORM_T)
                t = T + r * (te - T);
            else if (grid_kind == SCORE_GRID_QUADRATIC) {
                double a = sqrt(T), b = sqrt(te), u = a + r * (b - a);
                t = u * u;
            } else {
                t = score__sched_t_of_lambda(s, clamp_lambda(s, lam_T + r * (lam_e - lam_T)));
            }
            out[k] = want_sigma ? exp(-lambda_at(s, t)) : t;
        }
    }
    for (size_t k = 1; k < n; k++)
        if (!(out[k] < out[k - 1]))
            return score__error(SCORE_E_NUMERIC, fn,
                                "grid of %zu steps is not strictly decreasing at index %zu (%.17g, %.17g): too fine for double precision",
                                n, k, out[k - 1], out[k]);
    if (flags & SCORE_GRID_APPEND_ZERO)
        out[n] = 0.0;
    return SCORE_OK;
}

int score_schedule_time_grid(const score_schedule *s, int grid_kind, size_t n_steps,
                             uint32_t flags, double *out)
{
    return make_grid(s, __func__, grid_kind, n_steps, flags, out, 0);
}

int score_schedule_sigma_grid(const score_schedule *s, int grid_kind, size_t n_steps,
                              uint32_t flags, double *out)
{
    return make_grid(s, __func__, grid_kind, n_steps, flags, out, 1);
}

int score_schedule_check_grid(const score_schedule *s, size_t n, const double *grid)
{
    int rc = score__sched_ensure(s, __func__);
    if (rc != SCORE_OK)
        return rc;
    if (grid == NULL)
        return score__error(SCORE_E_INVAL, __func__, "grid is NULL");
    if (n == 0)
        return score__error(SCORE_E_INVAL, __func__, "grid is empty");
    for (size_t k = 0; k < n; k++) {
        double v = grid[k];
        int final_zero = k + 1 == n && k > 0 && v == 0.0;
        if (!isfinite(v))
            return score__error(SCORE_E_INVAL, __func__, "grid[%zu] = %g is not finite", k, v);
        if (!final_zero && (v < s->t_eps || v > s->T))
            return score__error(SCORE_E_INVAL, __func__,
                                "grid[%zu] = %.17g outside [t_eps = %.17g, T = %.17g] (only a final 0 may lie below)",
                                k, v, s->t_eps, s->T);
        if (k > 0 && !(v < grid[k - 1]))
            return score__error(SCORE_E_INVAL, __func__,
                                "grid is not strictly decreasing at index %zu (%.17g after %.17g)", k, v,
                                grid[k - 1]);
    }
    return SCORE_OK;
}
