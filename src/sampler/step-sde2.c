/* Stochastic steps of the k-diffusion family and Restart, in the EDM variables y = x / alpha,
 * s = sigma / alpha (k-diffusion's x and sigma):
 * - dpm-2-ancestral, dpmpp-2s-ancestral: a second-order deterministic step from s to the
 *   ancestral s_down, then fresh noise of std s_up, where for eta the pair is
 *   s_up = min(s', eta s' sqrt(s^2 - s'^2) / s), s_down = sqrt(s'^2 - s_up^2);
 * - dpmpp-sde: DPM-Solver++ with r = 1/2 whose two sub-steps (to the midpoint in lambda and to
 *   the end) are each ancestral steps from s; the end point uses the midpoint's prediction;
 * - dpmpp-3m-sde: the published DPM-Solver++(3M) SDE: exponential integrator of the SDE with
 *   noise amount eta (decay e^-(1 + eta) h), the first and second divided differences of the
 *   last three data predictions, and noise of std s' sqrt(1 - e^(-2 eta h));
 * - restart: Heun steps in s, and at the first end point at or below s_min, K cycles of a
 *   forward jump to s_max with fresh noise followed by Heun steps back (Xu et al. 2023).
 *
 * In y every ancestral-type update has the form y' = (q / s) y + (1 - q / s) D for a target
 * level q (the exact exponential-integrator step with a constant data prediction D), which is
 * what the expm1 forms of the reference code compute. A step to t_next = 0 never reaches these
 * functions: it is the data prediction (step.c). Written over the state type of step-real.h:
 * compiled for a float state and, from step-sde2-f64.c, for a double state. */
#include <math.h>
#include <string.h>

#include "step-real.h"

/* per-row arrays (indices into st->dbl; NDBL - 2 and NDBL - 1 are reserved by step.c) */
enum { R_A, R_SG, R_AN, R_SGN, R_S, R_SN, R_LAM, R_H, R_T1, R_A1, R_SG1, R_S1, R_DOWN, R_UP,
       R_DOWN2, R_UP2, R_TA, R_TB, R_AA, R_AB, R_SA, R_SB, R_FLAG };

/* the slots score__step_endpoints() fills come first */
_Static_assert((int)R_A == (int)SCORE__EP_A && (int)R_SG == (int)SCORE__EP_SG &&
                   (int)R_AN == (int)SCORE__EP_AN && (int)R_SGN == (int)SCORE__EP_SGN &&
                   (int)R_S == (int)SCORE__EP_S && (int)R_SN == (int)SCORE__EP_SN &&
                   (int)R_LAM == (int)SCORE__EP_LAM && (int)R_H == (int)SCORE__EP_H,
               "per-row slots of the end points");

static int endpoints(score_step *st, const score__step_call *c)
{
    return score__step_endpoints(st, c);
}

/* k-diffusion's ancestral split of a step from s to s' < s with noise amount eta. */
static void ancestral_split(double s, double sn, double eta, double *down, double *up)
{
    double u = 0.0;
    if (eta > 0.0) {
        u = eta * sqrt(fmax(sn * sn * (s * s - sn * sn), 0.0)) / s;
        if (u > sn)
            u = sn;
    }
    *up = u;
    *down = sqrt(fmax(sn * sn - u * u, 0.0));
}

/* The intermediate point of each row at level s_mid[i] (> 0): time, alpha, sigma. Rows with
 * flag[i] == 0 are evaluated at their start time instead (their result is not used). */
static int point_at_s(score_step *st, const score__step_call *c, const double *smid,
                      const double *flag)
{
    double *t1 = st->dbl[R_T1];
    int rc;
    for (size_t i = 0; i < c->n; i++)
        st->dbl[R_S1][i] = flag[i] != 0.0 ? smid[i] : st->dbl[R_S][i];
    rc = score__step_t_of_s(c, c->n, st->dbl[R_S1], t1);
    if (rc != SCORE_OK)
        return rc;
    for (size_t i = 0; i < c->n; i++)
        if (flag[i] == 0.0)
            t1[i] = c->t[i];
    return score__step_alpha_sigma(c, c->n, t1, st->dbl[R_A1], st->dbl[R_SG1]);
}

/* dpm-2-ancestral (plus = 0: Euler half step and DPM-Solver-2 end) and dpmpp-2s-ancestral
 * (plus = 1: DPM-Solver++(2S)). */
static int ancestral2(score_step *st, const score__step_call *c, int plus)
{
    size_t n = c->n, dim = c->dim;
    score__real *D = SCORE__BUF(st, 0), *D2 = SCORE__BUF(st, 1), *xu = SCORE__BUF(st, 2),
                *z = SCORE__BUF(st, 3);
    double *a = st->dbl[R_A], *an = st->dbl[R_AN], *s = st->dbl[R_S], *sn = st->dbl[R_SN];
    double *down = st->dbl[R_DOWN], *up = st->dbl[R_UP], *mid = st->dbl[R_SB],
           *flag = st->dbl[R_FLAG];
    double eta = score__step_eta(st), snoise = SCORE__STEP_F64(st, SCORE_STEP_PARAM_S_NOISE);
    int rc = endpoints(st, c);
    if (rc == SCORE_OK)
        rc = SCORE__R(score__step_x0)(st, c, c->t, SCORE__CX(c), D);
    if (rc != SCORE_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        ancestral_split(s[i], sn[i], eta, &down[i], &up[i]);
        flag[i] = down[i] > 0.0 ? 1.0 : 0.0;
        /* the midpoint in log s between s and s_down */
        mid[i] = flag[i] != 0.0 ? sqrt(s[i]) * sqrt(down[i]) : s[i];
    }
    rc = point_at_s(st, c, mid, flag);
    if (rc != SCORE_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        double ia = 1.0 / a[i], a1 = st->dbl[R_A1][i], r = mid[i] / s[i];
        for (size_t j = 0; j < dim; j++) {
            size_t q = i * dim + j;
            double y = (double)SCORE__CX(c)[q] * ia, dv = D[q], v;
            if (plus) /* DPM-Solver++ half step: exponential integrator to the midpoint */
                v = r * y + (1.0 - r) * dv;
            else      /* Euler in s to the midpoint */
                v = y + (mid[i] - s[i]) * (y - dv) / s[i];
            xu[q] = (score__real)(a1 * v);
        }
    }
    rc = SCORE__R(score__step_x0)(st, c, st->dbl[R_T1], xu, D2);
    if (rc != SCORE_OK)
        return rc;
    if (eta > 0.0)
        SCORE__R(score__step_noise)(c, 0, z);
    for (size_t i = 0; i < n; i++) {
        double ia = 1.0 / a[i], ia1 = 1.0 / st->dbl[R_A1][i], r = down[i] / s[i];
        double amp = up[i] * snoise;
        for (size_t j = 0; j < dim; j++) {
            size_t q = i * dim + j;
            double y = (double)SCORE__CX(c)[q] * ia, v;
            if (flag[i] == 0.0) {
                v = (double)D[q]; /* s_down = 0: the Euler step to 0 is the prediction */
            } else if (plus) {
                v = r * y + (1.0 - r) * (double)D2[q];
            } else {
                double y2 = (double)xu[q] * ia1;
                v = y + (down[i] - s[i]) * (y2 - (double)D2[q]) / mid[i];
            }
            if (eta > 0.0)
                v += amp * (double)z[q];
            SCORE__CX(c)[q] = (score__real)(an[i] * v);
        }
    }
    return SCORE_OK;
}

int SCORE__R(score__step_dpm2_ancestral)(score_step *st, const score__step_call *c)
{
    return ancestral2(st, c, 0);
}

int SCORE__R(score__step_dpmpp_2s_ancestral)(score_step *st, const score__step_call *c)
{
    return ancestral2(st, c, 1);
}

int SCORE__R(score__step_dpmpp_sde)(score_step *st, const score__step_call *c)
{
    const double r = 0.5, fac = 1.0 / (2.0 * r);
    size_t n = c->n, dim = c->dim;
    score__real *D = SCORE__BUF(st, 0), *D2 = SCORE__BUF(st, 1), *xu = SCORE__BUF(st, 2),
                *z1 = SCORE__BUF(st, 3), *z2 = SCORE__BUF(st, 4);
    double *a = st->dbl[R_A], *an = st->dbl[R_AN], *s = st->dbl[R_S], *sn = st->dbl[R_SN];
    double *mid = st->dbl[R_SB], *flag = st->dbl[R_FLAG];
    double eta = score__step_eta(st), snoise = SCORE__STEP_F64(st, SCORE_STEP_PARAM_S_NOISE);
    int rc = endpoints(st, c);
    if (rc == SCORE_OK)
        rc = SCORE__R(score__step_x0)(st, c, c->t, SCORE__CX(c), D);
    if (rc != SCORE_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        flag[i] = 1.0;
        mid[i] = exp(-(st->dbl[R_LAM][i] + r * st->dbl[R_H][i]));
    }
    rc = point_at_s(st, c, mid, flag);
    if (rc != SCORE_OK)
        return rc;
    if (eta > 0.0) {
        SCORE__R(score__step_noise_iv)(c, 0, c->t, st->dbl[R_T1], z1);
        SCORE__R(score__step_noise_iv)(c, 1, c->t, c->tn, z2);
    }
    for (size_t i = 0; i < n; i++) {
        double ia = 1.0 / a[i], down, up, q;
        ancestral_split(s[i], mid[i], eta, &down, &up);
        q = down / s[i];
        st->dbl[R_UP][i] = up * snoise;
        for (size_t j = 0; j < dim; j++) {
            size_t k = i * dim + j;
            double v = q * (double)SCORE__CX(c)[k] * ia + (1.0 - q) * (double)D[k];
            if (eta > 0.0)
                v += st->dbl[R_UP][i] * (double)z1[k];
            xu[k] = (score__real)(st->dbl[R_A1][i] * v);
        }
    }
    rc = SCORE__R(score__step_x0)(st, c, st->dbl[R_T1], xu, D2);
    if (rc != SCORE_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        double ia = 1.0 / a[i], down, up, q, amp;
        ancestral_split(s[i], sn[i], eta, &down, &up);
        q = down / s[i];
        amp = up * snoise;
        for (size_t j = 0; j < dim; j++) {
            size_t k = i * dim + j;
            double dd = (1.0 - fac) * (double)D[k] + fac * (double)D2[k];
            double v = q * (double)SCORE__CX(c)[k] * ia + (1.0 - q) * dd;
            if (eta > 0.0)
                v += amp * (double)z2[k];
            SCORE__CX(c)[k] = (score__real)(an[i] * v);
        }
    }
    return SCORE_OK;
}

/* DPM-Solver++(3M) SDE, published form, with the multistep history of the step (kept and
 * checked as for dpmpp-2m / dpmpp-3m: same rows, every row continuing at its last end time). */
int SCORE__R(score__step_dpmpp_3m_sde)(score_step *st, const score__step_call *c)
{
    size_t n = c->n, dim = c->dim;
    score__real *D = SCORE__BUF(st, 0), *z = SCORE__BUF(st, 1);
    double *a = st->dbl[R_A], *an = st->dbl[R_AN], *sn = st->dbl[R_SN], *lam = st->dbl[R_LAM],
           *h = st->dbl[R_H];
    double eta = score__step_eta(st), snoise = SCORE__STEP_F64(st, SCORE_STEP_PARAM_S_NOISE);
    int avail = 0;
    int rc = endpoints(st, c);
    if (rc != SCORE_OK)
        return rc;
    avail = score__step_history_avail(st, c);
    rc = SCORE__R(score__step_x0)(st, c, c->t, SCORE__CX(c), D);
    if (rc != SCORE_OK)
        return rc;
    if (eta > 0.0)
        SCORE__R(score__step_noise)(c, 0, z);
    for (size_t i = 0; i < n; i++) {
        double hh = h[i], he = hh * (eta + 1.0), ia = 1.0 / a[i];
        double decay = exp(-he), cd = -expm1(-he);
        /* phi_2 = 1 - (1 - e^-he) / he = I1(he) / he, phi_3 = phi_2 / he - 1/2 = -I2 / he^2 */
        double p2 = he != 0.0 ? score__expint_i1(he) / he : 0.0;
        double p3 = he != 0.0 ? -score__expint_i2(he) / (he * he) : 0.0;
        double amp = eta > 0.0 ? sn[i] * sqrt(fmax(-expm1(-2.0 * hh * eta), 0.0)) * snoise : 0.0;
        double h1 = 0.0, h2 = 0.0;
        int eff = avail;
        const score__real *d1 = SCORE__HD(st, 0) + i * dim,
                    *d2 = SCORE__HD(st, 1) + i * dim;
        const score__real *dr = D + i * dim, *zr = z + i * dim;
        score__real *xr = SCORE__CX(c) + i * dim;
        if (eff >= 1) {
            h1 = lam[i] - st->hist_lam[0][i];
            if (!(h1 != 0.0) || hh == 0.0)
                eff = 0;
        }
        if (eff >= 2) {
            h2 = st->hist_lam[0][i] - st->hist_lam[1][i];
            if (!(h2 != 0.0))
                eff = 1;
        }
        for (size_t j = 0; j < dim; j++) {
            double dv = dr[j], y = decay * (double)xr[j] * ia + cd * dv;
            if (eff >= 2) {
                double r0 = h1 / hh, r1 = h2 / hh;
                double e0 = (dv - (double)d1[j]) / r0, e1 = ((double)d1[j] - (double)d2[j]) / r1;
                double q1 = e0 + (e0 - e1) * r0 / (r0 + r1), q2 = (e0 - e1) / (r0 + r1);
                y += p2 * q1 - p3 * q2;
            } else if (eff == 1) {
                y += p2 * (dv - (double)d1[j]) / (h1 / hh);
            }
            if (eta > 0.0)
                y += amp * (double)zr[j];
            xr[j] = (score__real)(an[i] * y);
        }
    }
    SCORE__R(score__step_push_history)(st, c, D, lam, avail, 2);
    return SCORE_OK;
}

/* ---- restart ------------------------------------------------------------------------------ */

/* One Heun step in s of the rows with flag != 0 (or all rows for flag == NULL) from the levels
 * sa (times ta, alpha aa) to sb > 0 (tb, ab); x in x-space, updated in place for those rows. */
static int heun_rows(score_step *st, const score__step_call *c, const double *flag)
{
    size_t n = c->n, dim = c->dim;
    score__real *D = SCORE__BUF(st, 0), *D2 = SCORE__BUF(st, 1), *xe = SCORE__BUF(st, 2);
    const double *ta = st->dbl[R_TA], *tb = st->dbl[R_TB], *aa = st->dbl[R_AA],
                 *ab = st->dbl[R_AB], *sa = st->dbl[R_SA], *sb = st->dbl[R_SB];
    int rc = SCORE__R(score__step_x0)(st, c, ta, SCORE__CX(c), D);
    if (rc != SCORE_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        double ia = 1.0 / aa[i], ds = sb[i] - sa[i];
        for (size_t j = 0; j < dim; j++) {
            size_t q = i * dim + j;
            double y = (double)SCORE__CX(c)[q] * ia;
            xe[q] = (score__real)(ab[i] * (y + ds * (y - (double)D[q]) / sa[i]));
        }
    }
    rc = SCORE__R(score__step_x0)(st, c, tb, xe, D2);
    if (rc != SCORE_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        double ia = 1.0 / aa[i], iab = 1.0 / ab[i], ds = sb[i] - sa[i];
        if (flag != NULL && flag[i] == 0.0)
            continue;
        for (size_t j = 0; j < dim; j++) {
            size_t q = i * dim + j;
            double y = (double)SCORE__CX(c)[q] * ia, ye = (double)xe[q] * iab;
            double d1 = (y - (double)D[q]) / sa[i], d2 = (ye - (double)D2[q]) / sb[i];
            SCORE__CX(c)[q] = (score__real)(ab[i] * (y + 0.5 * ds * (d1 + d2)));
        }
    }
    return SCORE_OK;
}

/* Sets the (a) and (b) ends of the next Heun step: level arrays in R_SA / R_SB are given;
 * times and alpha are computed (rows with flag == 0 keep t_next at both ends). */
static int heun_ends(score_step *st, const score__step_call *c, const double *flag)
{
    double *sig = st->dbl[R_H]; /* scratch: R_H is not used by restart */
    int rc = score__step_t_of_s(c, c->n, st->dbl[R_SA], st->dbl[R_TA]);
    if (rc == SCORE_OK)
        rc = score__step_t_of_s(c, c->n, st->dbl[R_SB], st->dbl[R_TB]);
    if (rc != SCORE_OK)
        return rc;
    for (size_t i = 0; i < c->n; i++)
        if (flag[i] == 0.0)
            st->dbl[R_TA][i] = st->dbl[R_TB][i] = c->tn[i];
    rc = score__step_alpha_sigma(c, c->n, st->dbl[R_TA], st->dbl[R_AA], sig);
    if (rc == SCORE_OK)
        rc = score__step_alpha_sigma(c, c->n, st->dbl[R_TB], st->dbl[R_AB], sig);
    return rc;
}

/* Level j of N on the Karras (rho = 7) grid from hi down to lo. */
static double karras_level(double hi, double lo, int64_t j, int64_t N)
{
    const double rho = 7.0;
    double u = (double)j / (double)N, a = pow(hi, 1.0 / rho), b = pow(lo, 1.0 / rho);
    if (j == N)
        return lo;
    return pow(a + u * (b - a), rho);
}

int SCORE__R(score__step_restart)(score_step *st, const score__step_call *c)
{
    size_t n = c->n, dim = c->dim;
    score__real *z = SCORE__BUF(st, 3);
    double *s = st->dbl[R_S], *sn = st->dbl[R_SN], *flag = st->dbl[R_FLAG];
    double smin = SCORE__STEP_F64(st, SCORE_STEP_PARAM_RESTART_SMIN);
    double smax = SCORE__STEP_F64(st, SCORE_STEP_PARAM_RESTART_SMAX);
    int64_t K = SCORE__STEP_I64(st, SCORE_STEP_PARAM_RESTART_K);
    int64_t N = SCORE__STEP_I64(st, SCORE_STEP_PARAM_RESTART_STEPS);
    double snoise = SCORE__STEP_F64(st, SCORE_STEP_PARAM_S_NOISE);
    int any = 0, rc;
    if (!(smax > smin))
        return score__error(SCORE_E_RANGE, "score_step_apply",
                            "restart interval [%g, %g]: s_max must exceed s_min", smin, smax);
    rc = endpoints(st, c);
    if (rc == SCORE_OK && K > 0) {
        /* s_max beyond the schedule's horizon is cut to s(T) */
        double T, aT, sgT;
        rc = score_schedule_get_f64(c->sched, SCORE_SCHEDULE_PARAM_T, &T);
        if (rc == SCORE_OK)
            rc = score_schedule_alpha_sigma(c->sched, 1, &T, &aT, &sgT);
        if (rc == SCORE_OK && sgT / aT < smax)
            smax = sgT / aT;
    }
    if (rc != SCORE_OK)
        return rc;
    /* the main Heun step t -> t_next */
    for (size_t i = 0; i < n; i++) {
        st->dbl[R_TA][i] = c->t[i];
        st->dbl[R_TB][i] = c->tn[i];
        st->dbl[R_AA][i] = st->dbl[R_A][i];
        st->dbl[R_AB][i] = st->dbl[R_AN][i];
        st->dbl[R_SA][i] = s[i];
        st->dbl[R_SB][i] = sn[i];
        flag[i] = (K > 0 && s[i] > smin && sn[i] <= smin && sn[i] < smax) ? 1.0 : 0.0;
        if (flag[i] != 0.0)
            any = 1;
    }
    rc = heun_rows(st, c, NULL);
    if (rc != SCORE_OK || !any)
        return rc;
    for (int64_t k = 0; k < K; k++) {
        /* forward jump t_next -> t(s_max): y += sqrt(s_max^2 - s'^2) z */
        for (size_t i = 0; i < n; i++) {
            st->dbl[R_SA][i] = smax;
            st->dbl[R_SB][i] = karras_level(smax, sn[i], 1, N);
        }
        rc = heun_ends(st, c, flag);
        if (rc != SCORE_OK)
            return rc;
        SCORE__R(score__step_noise)(c, (size_t)k, z);
        for (size_t i = 0; i < n; i++) {
            double amp, ia = 1.0 / st->dbl[R_AN][i];
            if (flag[i] == 0.0)
                continue;
            amp = sqrt(smax * smax - sn[i] * sn[i]) * snoise;
            for (size_t j = 0; j < dim; j++) {
                size_t q = i * dim + j;
                SCORE__CX(c)[q] = (score__real)(st->dbl[R_AA][i] *
                                                ((double)SCORE__CX(c)[q] * ia + amp * (double)z[q]));
            }
        }
        /* N Heun steps back to t_next */
        for (int64_t j = 0; j < N; j++) {
            if (j > 0) {
                for (size_t i = 0; i < n; i++) {
                    st->dbl[R_SA][i] = karras_level(smax, sn[i], j, N);
                    st->dbl[R_SB][i] = karras_level(smax, sn[i], j + 1, N);
                }
                rc = heun_ends(st, c, flag);
                if (rc != SCORE_OK)
                    return rc;
            }
            if (j == N - 1)
                for (size_t i = 0; i < n; i++)
                    if (flag[i] != 0.0) {
                        st->dbl[R_TB][i] = c->tn[i];
                        st->dbl[R_AB][i] = st->dbl[R_AN][i];
                    }
            rc = heun_rows(st, c, flag);
            if (rc != SCORE_OK)
                return rc;
        }
    }
    return SCORE_OK;
}
