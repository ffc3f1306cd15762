/* Preparation of a schedule: checks of the parameters against each other, the level tables
 * of the discrete kinds (the ladders of sigmas or betas and their logarithms) and the
 * finiteness of every value on [t_eps, T]. */
#include <math.h>
#include <stdint.h>

#include "schedule-priv.h"

/* ---- tables and prepare ------------------------------------------------------------------ */

static int fill_tables(score_schedule *s, const char *fn)
{
    size_t L = s->L;
    double acc = 0.0;
    switch (s->kind) {
    case SCORE_SCHEDULE_NCSN: {
        double a = log(score__sched_f(s, SCORE_SCHEDULE_PARAM_SIGMA_MIN));
        double b = log(score__sched_f(s, SCORE_SCHEDULE_PARAM_SIGMA_MAX));
        for (size_t i = 0; i < L; i++) {
            s->lv[i] = i + 1 == L ? b : a + (b - a) * ((double)i / (double)(L - 1));
            s->aux[i] = exp(s->lv[i]);
        }
        break;
    }
    case SCORE_SCHEDULE_SIGMAS:
        for (size_t i = 0; i < L; i++) {
            s->lv[i] = log(s->user[i]);
            s->aux[i] = s->user[i];
        }
        break;
    case SCORE_SCHEDULE_DDPM_LINEAR:
    case SCORE_SCHEDULE_DDPM_SCALED_LINEAR: {
        double b0 = score__sched_f(s, SCORE_SCHEDULE_PARAM_BETA_START);
        double b1 = score__sched_f(s, SCORE_SCHEDULE_PARAM_BETA_END);
        int sq = s->kind == SCORE_SCHEDULE_DDPM_SCALED_LINEAR;
        if (sq) {
            b0 = sqrt(b0);
            b1 = sqrt(b1);
        }
        for (size_t i = 0; i < L; i++) {
            double r = L == 1 ? 0.0 : (double)i / (double)(L - 1);
            double b = i + 1 == L && L > 1 ? b1 : b0 + (b1 - b0) * r;
            s->aux[i] = sq ? b * b : b;
        }
        break;
    }
    case SCORE_SCHEDULE_DDPM_COSINE: {
        /* alpha_bar(u) = cos(phi(u))^2, phi(u) = (u + s) / (1 + s) pi / 2; beta_i = min(1 -
         * alpha_bar((i+1)/L) / alpha_bar(i/L), max_beta), with 1 - cos^2 b / cos^2 a =
         * sin(b - a) sin(b + a) / cos^2 a (no cancellation). */
        double cs = score__sched_f(s, SCORE_SCHEDULE_PARAM_COSINE_S);
        double mb = score__sched_f(s, SCORE_SCHEDULE_PARAM_COSINE_MAX_BETA);
        const double half_pi = 1.57079632679489661923;
        for (size_t i = 0; i < L; i++) {
            double a = ((double)i / (double)L + cs) / (1.0 + cs) * half_pi;
            double b = ((double)(i + 1) / (double)L + cs) / (1.0 + cs) * half_pi;
            double ca = cos(a);
            double beta = sin(b - a) * sin(b + a) / (ca * ca);
            s->aux[i] = beta < mb ? beta : mb;
        }
        break;
    }
    case SCORE_SCHEDULE_BETAS:
        for (size_t i = 0; i < L; i++)
            s->aux[i] = s->user[i];
        break;
    default:
        return SCORE_OK;
    }
    if (!score__sched_is_ve_type(s->kind)) {
        for (size_t i = 0; i < L; i++) {
            if (!(s->aux[i] > 0.0 && s->aux[i] < 1.0))
                return score__error(SCORE_E_INVAL, fn, "beta_%zu = %g is not in (0, 1)", i, s->aux[i]);
            acc += 0.5 * log1p(-s->aux[i]);
            s->lv[i] = acc;
        }
        for (size_t i = 0; i < L; i++)
            if (!(score__sched_node(s, i + 1) < score__sched_node(s, i)))
                return score__error(SCORE_E_INVAL, fn,
                                    "alpha_bar does not decrease at level %zu in double precision", i);
    } else {
        for (size_t i = 1; i < L; i++)
            if (!(s->lv[i] > s->lv[i - 1]))
                return score__error(SCORE_E_INVAL, fn,
                                    "sigma levels %zu and %zu are equal in double precision", i - 1, i);
    }
    return SCORE_OK;
}

static int prepare_impl(score_schedule *s, const char *fn)
{
    int rc;
    double T = score__sched_f(s, SCORE_SCHEDULE_PARAM_T);
    double te = score__sched_t_eps_effective(s);
    double ends[2], la, sig, lam, f, g;
    int kind = s->kind;

    if (score__sched_is_discrete(kind)) {
        if (score__sched_is_user_kind(kind) && !s->have_user)
            return score__error(SCORE_E_INVAL, fn, "%s schedule has no array: call score_schedule_set_array first",
                                score_schedule_name(s));
        if (score__sched_is_ve_type(kind) && s->L < 2)
            return score__error(SCORE_E_INVAL, fn, "%s schedule needs at least 2 levels (has %zu)",
                                score_schedule_name(s), s->L);
    }
    if (!(te < T))
        return score__error(SCORE_E_INVAL, fn, "t_eps = %g must be smaller than T = %g", te, T);
    s->T = T;
    s->t_eps = te;
    switch (kind) {
    case SCORE_SCHEDULE_VE:
    case SCORE_SCHEDULE_NCSN: {
        double a = score__sched_f(s, SCORE_SCHEDULE_PARAM_SIGMA_MIN);
        double b = score__sched_f(s, SCORE_SCHEDULE_PARAM_SIGMA_MAX);
        if (!(a < b))
            return score__error(SCORE_E_INVAL, fn, "sigma_min = %g must be smaller than sigma_max = %g", a, b);
        s->c_a = log(a);
        s->c_b = log(b) - log(a);
        break;
    }
    case SCORE_SCHEDULE_VP:
    case SCORE_SCHEDULE_SUBVP: {
        double a = score__sched_f(s, SCORE_SCHEDULE_PARAM_BETA_MIN);
        double b = score__sched_f(s, SCORE_SCHEDULE_PARAM_BETA_MAX);
        if (!(a < b))
            return score__error(SCORE_E_INVAL, fn, "beta_min = %g must be smaller than beta_max = %g", a, b);
        s->c_a = a;
        s->c_b = b - a;
        if (score__sched_vp_log_alpha(s, T) < -700.0)
            return score__error(SCORE_E_INVAL, fn,
                                "alpha(T) = exp(%g) underflows: beta_max and T are too large", score__sched_vp_log_alpha(s, T));
        break;
    }
    case SCORE_SCHEDULE_DDPM_LINEAR:
    case SCORE_SCHEDULE_DDPM_SCALED_LINEAR: {
        double a = score__sched_f(s, SCORE_SCHEDULE_PARAM_BETA_START);
        double b = score__sched_f(s, SCORE_SCHEDULE_PARAM_BETA_END);
        if (!(a <= b))
            return score__error(SCORE_E_INVAL, fn, "beta_start = %g must not exceed beta_end = %g", a, b);
        break;
    }
    default:
        break;
    }
    rc = fill_tables(s, fn);
    if (rc != SCORE_OK)
        return rc;
    if (score__sched_is_discrete(kind) && !score__sched_is_ve_type(kind) && s->lv[s->L - 1] < -700.0)
        return score__error(SCORE_E_INVAL, fn, "alpha_bar of the last level underflows (log alpha = %g)",
                            s->lv[s->L - 1]);

    /* Every value must be finite on [t_eps, T]; alpha, sigma, lambda are monotone and g is
     * largest at an end (or bounded by its value at T), so the ends suffice. */
    ends[0] = te;
    ends[1] = T;
    for (int j = 0; j < 2; j++) {
        score__sched_eval(s, ends[j], &la, &sig, &lam);
        score__sched_coefs(s, ends[j], &f, &g);
        if (!(isfinite(la) && exp(la) > 0.0 && sig > 0.0 && isfinite(sig) && isfinite(lam) &&
              isfinite(f) && isfinite(g)))
            return score__error(SCORE_E_INVAL, fn,
                                "schedule is not finite at t = %g (log alpha %g, sigma %g, lambda %g, g %g): parameters too extreme",
                                ends[j], la, sig, lam, g);
    }
    score__sched_eval(s, T, &la, &sig, &s->lam_T);
    score__sched_eval(s, 0.0, &la, &sig, &s->lam_0);
    s->prepared = 1;
    return SCORE_OK;
}

int score_schedule_prepare(score_schedule *s)
{
    if (s == NULL)
        return score__error(SCORE_E_INVAL, __func__, "s is NULL");
    if (s->prepared)
        return SCORE_OK;
    return prepare_impl(s, __func__);
}

int score__sched_ensure(const score_schedule *s, const char *fn)
{
    if (s == NULL)
        return score__error(SCORE_E_INVAL, fn, "s is NULL");
    if (s->prepared)
        return SCORE_OK;
    /* Implicit preparation on first use (documented: object-exclusive until prepared). */
    return prepare_impl((score_schedule *)(uintptr_t)s, fn);
}
