/* Pointwise evaluation of a prepared schedule: log alpha, sigma, lambda, the SDE coefficients
 * f and g, and the inverse of lambda; the discrete kinds through their continuous-time view
 * (piecewise-linear interpolation of the level tables). */
#include <math.h>

#include "schedule-priv.h"

/* ---- continuous-time view of the discrete tables ----------------------------------------- */

/* Node values: VE-type lv[0..L-1] (log sigma); DDPM-type node -1 is log alpha = 0. */
double score__sched_node(const score_schedule *s, size_t k_plus_1)
{
    return k_plus_1 == 0 ? 0.0 : s->lv[k_plus_1 - 1];
}

/* Piece containing t: value v = log sigma (VE-type) or log alpha (DDPM-type) and its slope. */
static void piece_eval(const score_schedule *s, double t, double *v, double *slope)
{
    double L = (double)s->L, p = t * L / s->T, v0, v1, w;
    size_t k;
    if (score__sched_is_ve_type(s->kind)) {
        /* pieces between nodes k-1 and k, k in [1, L-1]; below t_0 the first piece extends */
        double fl = floor(p);
        k = fl < 1.0 ? 1 : (fl > L - 1.0 ? s->L - 1 : (size_t)fl);
        v0 = s->lv[k - 1];
        v1 = s->lv[k];
    } else {
        double fl = floor(p);
        k = fl > L - 1.0 ? s->L - 1 : (size_t)fl;
        v0 = score__sched_node(s, k);
        v1 = score__sched_node(s, k + 1);
    }
    w = p - (double)k;
    *v = v0 + w * (v1 - v0);
    if (slope)
        *slope = (v1 - v0) * L / s->T;
}

/* ---- pointwise evaluation ---------------------------------------------------------------- */

double score__sched_vp_log_alpha(const score_schedule *s, double t)
{
    return -t * (0.25 * s->c_b * t + 0.5 * s->c_a);
}

/* sigma and lambda of DDPM-type schedules from log alpha */
static void vp_from_la(double la, double *sig, double *lam)
{
    double e = -expm1(2.0 * la); /* 1 - alpha^2 */
    *sig = sqrt(e);
    *lam = e > 0.0 ? la - 0.5 * log(e) : INFINITY;
}

void score__sched_eval(const score_schedule *s, double t, double *la, double *sig, double *lam)
{
    double v;
    switch (s->kind) {
    case SCORE_SCHEDULE_VE:
        v = s->c_a + t * s->c_b;
        *la = 0.0;
        *sig = exp(v);
        *lam = -v;
        return;
    case SCORE_SCHEDULE_VP:
        *la = score__sched_vp_log_alpha(s, t);
        vp_from_la(*la, sig, lam);
        return;
    case SCORE_SCHEDULE_SUBVP: {
        double e;
        *la = score__sched_vp_log_alpha(s, t);
        e = -expm1(2.0 * *la);
        *sig = e;
        *lam = e > 0.0 ? *la - log(e) : INFINITY;
        return;
    }
    default:
        piece_eval(s, t, &v, NULL);
        if (score__sched_is_ve_type(s->kind)) {
            *la = 0.0;
            *sig = exp(v);
            *lam = -v;
        } else {
            *la = v;
            vp_from_la(v, sig, lam);
        }
        return;
    }
}

void score__sched_coefs(const score_schedule *s, double t, double *f, double *g)
{
    double b, v, k;
    switch (s->kind) {
    case SCORE_SCHEDULE_VE:
        *f = 0.0;
        *g = exp(s->c_a + t * s->c_b) * sqrt(2.0 * s->c_b);
        return;
    case SCORE_SCHEDULE_VP:
        b = s->c_a + t * s->c_b;
        *f = -0.5 * b;
        *g = sqrt(b);
        return;
    case SCORE_SCHEDULE_SUBVP:
        b = s->c_a + t * s->c_b;
        *f = -0.5 * b;
        /* g^2 = beta(t) (1 - exp(-2 beta_min t - (beta_max - beta_min) t^2)) = beta (1 - alpha^4) */
        *g = sqrt(b * -expm1(4.0 * score__sched_vp_log_alpha(s, t)));
        return;
    default:
        piece_eval(s, t, &v, &k);
        if (score__sched_is_ve_type(s->kind)) {
            /* sigma = exp(v), d sigma^2/dt = 2 k sigma^2 = g^2 */
            *f = 0.0;
            *g = exp(v) * sqrt(2.0 * k);
        } else {
            /* f = d log alpha / dt = k; g^2 = d sigma^2/dt - 2 f sigma^2 = -2 k */
            *f = k;
            *g = sqrt(-2.0 * k);
        }
        return;
    }
}

/* log(1 + e^x) without overflow */
static double softplus(double x)
{
    return x > 0.0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

/* VP / sub-VP: the t >= 0 with -2 log alpha(t) = beta_d t^2 / 2 + beta_0 t = Lv, written without
 * cancellation (the rationalised root of DPM-Solver's inverse_lambda). */
static double vp_t_of_minus2la(const score_schedule *s, double Lv)
{
    double b0 = s->c_a;
    return 2.0 * Lv / (b0 + sqrt(b0 * b0 + 2.0 * s->c_b * Lv));
}

double score__sched_t_of_lambda(const score_schedule *s, double lam)
{
    double t;
    switch (s->kind) {
    case SCORE_SCHEDULE_VE:
        t = (-lam - s->c_a) / s->c_b;
        break;
    case SCORE_SCHEDULE_VP:
        /* 1 / alpha^2 = 1 + exp(-2 lambda) */
        t = vp_t_of_minus2la(s, softplus(-2.0 * lam));
        break;
    case SCORE_SCHEDULE_SUBVP: {
        /* alpha / (1 - alpha^2) = e^lambda  =>  alpha = 2 / (E + sqrt(E^2 + 4)), E = e^-lambda */
        double lu;
        if (lam > 0.0) {
            double E = exp(-lam), h = hypot(E, 2.0);
            double one_minus_u = (E + E * E / (h + 2.0)) / (E + h);
            lu = log1p(-one_minus_u);
        } else {
            double e2 = exp(2.0 * lam);
            lu = lam - log(0.5 * (1.0 + sqrt(1.0 + 4.0 * e2)));
        }
        t = vp_t_of_minus2la(s, -2.0 * lu);
        break;
    }
    default: {
        double L = (double)s->L, target, v0, v1, w;
        size_t lo, hi, k;
        if (score__sched_is_ve_type(s->kind)) {
            /* log sigma = -lambda, increasing in t; piece k in [1, L-1] with lv[k-1] <= target <= lv[k] */
            target = -lam;
            lo = 1;
            hi = s->L - 1;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (s->lv[mid] >= target)
                    hi = mid;
                else
                    lo = mid + 1;
            }
            k = lo;
            v0 = s->lv[k - 1];
            v1 = s->lv[k];
        } else {
            /* log alpha = -softplus(-2 lambda) / 2, decreasing in t; nodes node(0) = 0 (t = 0),
             * node(m) = lv[m - 1]; piece k in [0, L-1] joins node(k) and node(k + 1) */
            target = -0.5 * softplus(-2.0 * lam);
            lo = 0;
            hi = s->L - 1;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (score__sched_node(s, mid + 1) <= target)
                    hi = mid;
                else
                    lo = mid + 1;
            }
            k = lo;
            v0 = score__sched_node(s, k);
            v1 = score__sched_node(s, k + 1);
        }
        w = (target - v0) / (v1 - v0);
        t = ((double)k + w) * s->T / L;
        break;
    }
    }
    if (!(t >= 0.0))
        t = 0.0;
    if (t > s->T)
        t = s->T;
    return t;
}
