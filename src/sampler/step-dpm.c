/* DPM-Solver family in the EDM variables y = x / alpha, s = sigma / alpha = exp(-lambda):
 * singlestep DPM-Solver-1/2/3 (noise prediction), multistep DPM-Solver++(2M) / (3M) / (2M) SDE
 * (data prediction) and the adaptive pairs DPM-Solver-12 / -23 (error estimates).
 *
 * In these variables the exact solution of the PF-ODE over [lambda, lambda + h] is
 *   y' = e^-h y + integral_0^h e^(u - h) D(lambda + u) du          (data prediction)
 *   y' = y - integral_{s'}^{s} eps(s~) ds~                          (noise prediction)
 * DPM-Solver++(kM) replaces D by its interpolant through the last k data predictions
 * (Taylor terms at lambda, weights I0, I1, I2 below). */
#include <math.h>
#include <string.h>

#include "step-real.h"

/* per-row arrays (indices into st->dbl; NDBL - 2 and NDBL - 1 are reserved by step.c) */
enum { R_A, R_SG, R_AN, R_SGN, R_S, R_SN, R_LAM, R_H, R_T1, R_A1, R_SG1, R_S1, R_T2, R_A2,
       R_SG2, R_S2, R_N1, R_N2 };

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

/* Intermediate point at lambda + r h: time, alpha and s. */
static int midpoint_at(score_step *st, const score__step_call *c, double r, double *t_out,
                       double *a_out, double *sg_out, double *s_out)
{
    score__step_memo_slot m_exp;
    int rc;
    score__step_memo_init(&m_exp, exp);
    for (size_t i = 0; i < c->n; i++) {
        double lam = st->dbl[R_LAM][i] + r * st->dbl[R_H][i];
        s_out[i] = score__step_memo(&m_exp, -lam);
        t_out[i] = lam;
    }
    rc = score__step_t_of_lambda(c, c->n, t_out, t_out);
    if (rc == SCORE_OK)
        rc = score__step_alpha_sigma(c, c->n, t_out, a_out, sg_out);
    return rc;
}

/* u = alpha_1 (y - (s - s1) eps0) at the first intermediate point t1, then the noise
 * prediction there into e1 (d is scratch). */
static int first_stage(score_step *st, const score__step_call *c, const double *t1,
                       const double *a1, const double *s1, const score__real *e0, score__real *xu,
                       score__real *d, score__real *e1)
{
    size_t dim = c->dim;
    for (size_t i = 0; i < c->n; i++) {
        double ia = 1.0 / st->dbl[R_A][i], ds = st->dbl[R_S][i] - s1[i];
        for (size_t j = 0; j < dim; j++) {
            size_t q = i * dim + j;
            xu[q] = (score__real)(a1[i] * ((double)SCORE__CX(c)[q] * ia - ds * (double)e0[q]));
        }
    }
    return SCORE__R(score__step_k)(st, c, t1, a1, s1, xu, d, e1);
}

/* Singlestep DPM-Solver of order 1, 2 (r1 = 1/2) or 3 (r1 = 1/3, r2 = 2/3). With lo != NULL
 * (adaptive pairs) also the lower-order solution that reuses the same evaluations:
 * order 2 -> DPM-Solver-1, order 3 -> DPM-Solver-2 with r1 = 1/3. Results in y-space are
 * written as x' = alpha' y'. */
static int dpm_single(score_step *st, const score__step_call *c, int order, score__real *lo)
{
    size_t n = c->n, dim = c->dim;
    score__real *e0 = SCORE__BUF(st, 0), *e1 = SCORE__BUF(st, 1), *e2 = SCORE__BUF(st, 2),
                *xu = SCORE__BUF(st, 3), *d = SCORE__BUF(st, 4);
    double *a = st->dbl[R_A], *an = st->dbl[R_AN], *s = st->dbl[R_S], *sn = st->dbl[R_SN],
           *h = st->dbl[R_H];
    int rc = endpoints(st, c);
    if (rc != SCORE_OK)
        return rc;
    rc = SCORE__R(score__step_k)(st, c, c->t, a, s, SCORE__CX(c), d, e0);
    if (rc != SCORE_OK)
        return rc;
    if (order == 1) {
        for (size_t i = 0; i < n; i++) {
            double ia = 1.0 / a[i], ds = s[i] - sn[i];
            for (size_t j = 0; j < dim; j++) {
                size_t q = i * dim + j;
                SCORE__CX(c)[q] =
                    (score__real)(an[i] * ((double)SCORE__CX(c)[q] * ia - ds * (double)e0[q]));
            }
        }
        return SCORE_OK;
    }
    if (order == 2) {
        double *t1 = st->dbl[R_T1], *a1 = st->dbl[R_A1], *s1 = st->dbl[R_S1];
        rc = midpoint_at(st, c, 0.5, t1, a1, st->dbl[R_SG1], s1);
        if (rc != SCORE_OK)
            return rc;
        rc = first_stage(st, c, t1, a1, s1, e0, xu, d, e1);
        if (rc != SCORE_OK)
            return rc;
        for (size_t i = 0; i < n; i++) {
            double ia = 1.0 / a[i], ds = s[i] - sn[i];
            for (size_t j = 0; j < dim; j++) {
                size_t q = i * dim + j;
                double y = (double)SCORE__CX(c)[q] * ia;
                if (lo != NULL)
                    lo[q] = (score__real)(an[i] * (y - ds * (double)e0[q]));
                SCORE__CX(c)[q] = (score__real)(an[i] * (y - ds * (double)e1[q]));
            }
        }
        return SCORE_OK;
    }
    {
        const double r1 = 1.0 / 3.0, r2 = 2.0 / 3.0;
        double *t1 = st->dbl[R_T1], *a1 = st->dbl[R_A1], *s1 = st->dbl[R_S1];
        double *t2 = st->dbl[R_T2], *a2 = st->dbl[R_A2], *s2 = st->dbl[R_S2];
        rc = midpoint_at(st, c, r1, t1, a1, st->dbl[R_SG1], s1);
        if (rc == SCORE_OK)
            rc = midpoint_at(st, c, r2, t2, a2, st->dbl[R_SG2], s2);
        if (rc != SCORE_OK)
            return rc;
        rc = first_stage(st, c, t1, a1, s1, e0, xu, d, e1);
        if (rc != SCORE_OK)
            return rc;
        score__step_memo_slot m_phi;
        score__step_memo_init(&m_phi, score__phi1m1);
        /* u2 = y - (s - s2) e0 - (r2/r1) s2 phi1m1(r2 h) (e1 - e0) */
        for (size_t i = 0; i < n; i++) {
            double ia = 1.0 / a[i], ds = s[i] - s2[i];
            double k = (r2 / r1) * s2[i] * score__step_memo(&m_phi, r2 * h[i]);
            for (size_t j = 0; j < dim; j++) {
                size_t q = i * dim + j;
                double e0v = e0[q];
                xu[q] = (score__real)(a2[i] * ((double)SCORE__CX(c)[q] * ia - ds * e0v -
                                         k * ((double)e1[q] - e0v)));
            }
        }
        rc = SCORE__R(score__step_k)(st, c, t2, a2, s2, xu, d, e2);
        if (rc != SCORE_OK)
            return rc;
        /* y' = y - (s - s') e0 - (s'/r2) phi1m1(h) (e2 - e0); lower: DPM-Solver-2 with r1:
         * y - (s - s') e0 - (s - s') / (2 r1) (e1 - e0) */
        score__step_memo_init(&m_phi, score__phi1m1);
        for (size_t i = 0; i < n; i++) {
            double ia = 1.0 / a[i], ds = s[i] - sn[i];
            double k = sn[i] / r2 * score__step_memo(&m_phi, h[i]), kl = ds / (2.0 * r1);
            for (size_t j = 0; j < dim; j++) {
                size_t q = i * dim + j;
                double y = (double)SCORE__CX(c)[q] * ia, e0v = e0[q];
                if (lo != NULL)
                    lo[q] = (score__real)(an[i] * (y - ds * e0v - kl * ((double)e1[q] - e0v)));
                SCORE__CX(c)[q] = (score__real)(an[i] * (y - ds * e0v - k * ((double)e2[q] - e0v)));
            }
        }
        return SCORE_OK;
    }
}

/* Offsets r (fractions of h in lambda) of the k - 1 intermediate points of a singlestep
 * DPM-Solver++ step of order k: lambda-uniform (1/2; 1/3, 2/3: DPM-Solver's rule) or, with
 * SCORE_STEP_PARAM_SUBSTEP = 1, the points that cut [t, t'] into k equal parts in t (the fine
 * grid of a time-uniform run, as a scheduler that takes its intermediate points from the
 * grid); r is then computed per row from their lambda. Times, alpha and s of the points go to
 * (t, a, s) of each point. */
static int substeps(score_step *st, const score__step_call *c, int order, double *r1, double *r2)
{
    int rc = SCORE_OK;
    int tgrid = SCORE__STEP_I64(st, SCORE_STEP_PARAM_SUBSTEP) == 1;
    double *t1 = st->dbl[R_T1], *a1 = st->dbl[R_A1], *s1 = st->dbl[R_S1];
    double *t2 = st->dbl[R_T2], *a2 = st->dbl[R_A2], *s2 = st->dbl[R_S2];
    if (!tgrid) {
        for (size_t i = 0; i < c->n; i++) {
            r1[i] = order == 2 ? 0.5 : 1.0 / 3.0;
            r2[i] = 2.0 / 3.0;
        }
        rc = midpoint_at(st, c, r1[0], t1, a1, st->dbl[R_SG1], s1);
        if (rc == SCORE_OK && order == 3)
            rc = midpoint_at(st, c, r2[0], t2, a2, st->dbl[R_SG2], s2);
        return rc;
    }
    for (size_t i = 0; i < c->n; i++) {
        double dt = c->tn[i] - c->t[i];
        t1[i] = c->t[i] + dt / (double)order;
        t2[i] = c->t[i] + 2.0 * dt / 3.0;
    }
    rc = score__step_alpha_sigma(c, c->n, t1, a1, st->dbl[R_SG1]);
    if (rc == SCORE_OK && order == 3)
        rc = score__step_alpha_sigma(c, c->n, t2, a2, st->dbl[R_SG2]);
    if (rc != SCORE_OK)
        return rc;
    for (size_t i = 0; i < c->n; i++) {
        double h = st->dbl[R_H][i];
        s1[i] = st->dbl[R_SG1][i] / a1[i];
        r1[i] = (-log(s1[i]) - st->dbl[R_LAM][i]) / h;
        if (order == 3) {
            s2[i] = st->dbl[R_SG2][i] / a2[i];
            r2[i] = (-log(s2[i]) - st->dbl[R_LAM][i]) / h;
        }
        if (!(r1[i] > 0.0 && r1[i] < 1.0) || (order == 3 && !(r2[i] > r1[i] && r2[i] < 1.0)))
            return score__error(SCORE_E_RANGE, "score_step_apply",
                                "row %zu: the time-uniform intermediate points are not inside "
                                "the step in lambda (r = %g, %g)", i, r1[i], r2[i]);
    }
    return SCORE_OK;
}

/* Singlestep DPM-Solver++ (data prediction) of order 2 (2S) or 3 (3S), in y = x / alpha:
 *   y_r = e^{-r h} y + I0(r h) D + I1(r h) D'       (stage at lambda + r h)
 *   y'  = e^{-h} y + I0(h) D + I1(h) D' + I2(h) D''  (end point)
 * with D', D'' from the data predictions at the stages. 2S (DPM-Solver++(2S), the published
 * form): y' = e^{-h} y + I0(h) (D + (D1 - D) / (2 r1)), second order for any r1. 3S with
 * lambda-uniform stages (r1 = 1/3, r2 = 2/3): DPM-Solver++(3S): the stage u2 uses
 * D' = (D1 - D) / (r1 h) and the end point y' = e^{-h} y + I0 D + I1(h) (D2 - D) / (r2 h).
 * With time-uniform stages (general r1 < r2) the end point uses the quadratic interpolant of
 * D through the three stages (divided differences), still third order. */
static int dpmpp_single(score_step *st, const score__step_call *c, int order)
{
    size_t n = c->n, dim = c->dim;
    score__real *D0 = SCORE__BUF(st, 0), *D1 = SCORE__BUF(st, 1), *D2 = SCORE__BUF(st, 2),
                *xu = SCORE__BUF(st, 3);
    double *a = st->dbl[R_A], *an = st->dbl[R_AN], *h = st->dbl[R_H];
    double *r1 = st->dbl[R_N1], *r2 = st->dbl[R_N2];
    int tgrid = SCORE__STEP_I64(st, SCORE_STEP_PARAM_SUBSTEP) == 1;
    score__step_memo_slot m_exp, m_i0, m_i1, m_i2;
    int rc = endpoints(st, c);
    if (rc == SCORE_OK)
        rc = SCORE__R(score__step_x0)(st, c, c->t, SCORE__CX(c), D0);
    if (rc != SCORE_OK)
        return rc;
    /* the per-row functions of h, evaluated once for the rows that share their argument */
    score__step_memo_init(&m_exp, exp);
    score__step_memo_init(&m_i0, score__expint_i0);
    score__step_memo_init(&m_i1, score__expint_i1);
    score__step_memo_init(&m_i2, score__expint_i2);
    if (order == 1) {
        for (size_t i = 0; i < n; i++) {
            double ia = 1.0 / a[i], e = score__step_memo(&m_exp, -h[i]);
            double i0 = score__step_memo(&m_i0, h[i]);
            for (size_t j = 0; j < dim; j++) {
                size_t q = i * dim + j;
                double xv = (double)SCORE__CX(c)[q];
                SCORE__CX(c)[q] = (score__real)(an[i] * (e * xv * ia + i0 * (double)D0[q]));
            }
        }
        return SCORE_OK;
    }
    rc = substeps(st, c, order, r1, r2);
    if (rc != SCORE_OK)
        return rc;
    /* stage 1: y_1 = e^{-r1 h} y + I0(r1 h) D */
    for (size_t i = 0; i < n; i++) {
        double rh = r1[i] * h[i], ia = 1.0 / a[i], e = score__step_memo(&m_exp, -rh);
        double i0 = score__step_memo(&m_i0, rh);
        for (size_t j = 0; j < dim; j++) {
            size_t q = i * dim + j;
            xu[q] = (score__real)(st->dbl[R_A1][i] *
                                  (e * (double)SCORE__CX(c)[q] * ia + i0 * (double)D0[q]));
        }
    }
    rc = SCORE__R(score__step_x0)(st, c, st->dbl[R_T1], xu, D1);
    if (rc != SCORE_OK)
        return rc;
    if (order == 2) {
        for (size_t i = 0; i < n; i++) {
            double ia = 1.0 / a[i], e = score__step_memo(&m_exp, -h[i]);
            double i0 = score__step_memo(&m_i0, h[i]), k = i0 / (2.0 * r1[i]);
            for (size_t j = 0; j < dim; j++) {
                size_t q = i * dim + j;
                double d0 = D0[q];
                SCORE__CX(c)[q] =
                    (score__real)(an[i] * (e * (double)SCORE__CX(c)[q] * ia + i0 * d0 +
                                             k * ((double)D1[q] - d0)));
            }
        }
        return SCORE_OK;
    }
    /* stage 2: y_2 = e^{-r2 h} y + I0(r2 h) D + I1(r2 h) (D1 - D) / (r1 h) */
    for (size_t i = 0; i < n; i++) {
        double rh = r2[i] * h[i], ia = 1.0 / a[i], e = score__step_memo(&m_exp, -rh);
        double i0 = score__step_memo(&m_i0, rh), k = score__step_memo(&m_i1, rh) / (r1[i] * h[i]);
        for (size_t j = 0; j < dim; j++) {
            size_t q = i * dim + j;
            double d0 = D0[q];
            xu[q] = (score__real)(st->dbl[R_A2][i] * (e * (double)SCORE__CX(c)[q] * ia + i0 * d0 +
                                                      k * ((double)D1[q] - d0)));
        }
    }
    rc = SCORE__R(score__step_x0)(st, c, st->dbl[R_T2], xu, D2);
    if (rc != SCORE_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        double hh = h[i], ia = 1.0 / a[i], e = score__step_memo(&m_exp, -hh);
        double i0 = score__step_memo(&m_i0, hh), i1 = score__step_memo(&m_i1, hh);
        double i2 = score__step_memo(&m_i2, hh), u1 = r1[i] * hh, u2 = r2[i] * hh;
        for (size_t j = 0; j < dim; j++) {
            size_t q = i * dim + j;
            double d0 = D0[q], y = e * (double)SCORE__CX(c)[q] * ia + i0 * d0;
            if (!tgrid) {
                y += i1 * ((double)D2[q] - d0) / u2;
            } else {
                /* Newton form at 0, u1, u2: D' = f01 - u1 f012, D'' = 2 f012 */
                double f01 = ((double)D1[q] - d0) / u1, f02 = ((double)D2[q] - d0) / u2;
                double f012 = (f02 - f01) / (u2 - u1);
                y += i1 * (f01 - u1 * f012) + i2 * 2.0 * f012;
            }
            SCORE__CX(c)[q] = (score__real)(an[i] * y);
        }
    }
    return SCORE_OK;
}

static int capped_order(const score_step *st, int order)
{
    int64_t cap = SCORE__STEP_I64(st, SCORE_STEP_PARAM_ORDER);
    return (cap > 0 && cap < order) ? (int)cap : order;
}

int SCORE__R(score__step_dpm_single)(score_step *st, const score__step_call *c)
{
    return dpm_single(st, c, capped_order(st, st->type.order), NULL);
}

int SCORE__R(score__step_dpmpp_single)(score_step *st, const score__step_call *c)
{
    return dpmpp_single(st, c, capped_order(st, st->type.order));
}

int SCORE__R(score__step_dpm_adaptive)(score_step *st, const score__step_call *c)
{
    size_t nd = c->n * c->dim;
    score__real *lo = SCORE__BUF(st, 5);
    int rc = dpm_single(st, c, st->type.order, lo);
    if (rc != SCORE_OK)
        return rc;
    if (SCORE__CXERR(c) != NULL)
        for (size_t q = 0; q < nd; q++)
            SCORE__CXERR(c)[q] = (score__real)((double)SCORE__CX(c)[q] - (double)lo[q]);
    return SCORE_OK;
}

/* The start correction (SCORE_STEP_PARAM_START_CORRECTION) at the second call of a
 * trajectory: the first call's first-order result y1 = e^-h0 y0 + I0(h0) D0 becomes the
 * exponential integrator of the linear interpolant of D through D0 and D1 (the data prediction
 * just evaluated at y1), y1 + I1(h0) (D1 - D0) / h0; D1 is then used as the prediction at the
 * corrected state (an O(h^2) difference, weighted by O(h) in the update). Rows whose x is not
 * bit for bit the first call's result are left as they are. */
static void start_correction(score_step *st, const score__step_call *c, const score__real *D)
{
    size_t dim = c->dim;
    for (size_t i = 0; i < c->n; i++) {
        double h0 = st->dbl[R_LAM][i] - st->hist_lam[0][i];
        const score__real *d0 = SCORE__HD(st, 0) + i * dim, *dr = D + i * dim;
        score__real *xr = SCORE__CX(c) + i * dim;
        double k;
        if (!(h0 != 0.0) || memcmp(xr, SCORE__HX(st, 1) + i * dim, dim * sizeof *xr) != 0)
            continue;
        k = st->dbl[R_A][i] * score__expint_i1(h0) / h0;
        for (size_t j = 0; j < dim; j++)
            xr[j] = (score__real)((double)xr[j] + k * ((double)dr[j] - (double)d0[j]));
    }
}

/* Multistep DPM-Solver++ (2M, 3M, 2M SDE). Kept as one function of about 100 lines on
 * purpose: the history check, the order actually available and the per-row update read the
 * same per-row arrays in one pass, and split apart they would only pass those arrays around. */
int SCORE__R(score__step_dpmpp_multi)(score_step *st, const score__step_call *c)
{
    size_t n = c->n, dim = c->dim;
    score__real *D = SCORE__BUF(st, 0), *z = SCORE__BUF(st, 1);
    double *a = st->dbl[R_A], *an = st->dbl[R_AN], *sn = st->dbl[R_SN], *lam = st->dbl[R_LAM],
           *h = st->dbl[R_H];
    int kind = st->type.kind, order = capped_order(st, st->type.order), avail = 0;
    int sde = kind == SCORE_STEP_DPMPP_2M_SDE;
    double eta = sde ? score__step_eta(st) : 0.0;
    double snoise = SCORE__STEP_F64(st, SCORE_STEP_PARAM_S_NOISE);
    /* start correction: kept result of the first call (hist_x[1]), corrected in the second */
    int start = !sde && order >= 2 &&
                SCORE__STEP_I64(st, SCORE_STEP_PARAM_START_CORRECTION) == 1;
    score__step_memo_slot m_exp, m_exp2, m_em1, m_em2, m_i0, m_i1, m_i2;
    int rc = endpoints(st, c);
    if (rc != SCORE_OK)
        return rc;
    avail = score__step_history_avail(st, c);
    rc = SCORE__R(score__step_x0)(st, c, c->t, SCORE__CX(c), D);
    if (rc != SCORE_OK)
        return rc;
    if (start && avail == 1)
        start_correction(st, c, D);
    if (sde && eta > 0.0)
        SCORE__R(score__step_noise)(c, 0, z);
    /* the per-row functions of h, evaluated once for the rows that share a step size */
    score__step_memo_init(&m_exp, exp);
    score__step_memo_init(&m_exp2, exp);
    score__step_memo_init(&m_em1, expm1);
    score__step_memo_init(&m_em2, expm1);
    score__step_memo_init(&m_i0, score__expint_i0);
    score__step_memo_init(&m_i1, score__expint_i1);
    score__step_memo_init(&m_i2, score__expint_i2);
    for (size_t i = 0; i < n; i++) {
        double hh = h[i], ia = 1.0 / a[i];
        int eff = order < avail + 1 ? order : avail + 1;
        double h0 = 0.0, h1 = 0.0;
        const score__real *d1 = SCORE__HD(st, 0) + i * dim, *d2 = SCORE__HD(st, 1) + i * dim;
        const score__real *dr = D + i * dim, *zr = z + i * dim;
        score__real *xr = SCORE__CX(c) + i * dim;
        if (eff >= 2) {
            h0 = lam[i] - st->hist_lam[0][i];
            if (!(h0 != 0.0) || hh == 0.0)
                eff = 1;
        }
        if (eff >= 3) {
            h1 = st->hist_lam[0][i] - st->hist_lam[1][i];
            if (!(h1 != 0.0))
                eff = 2;
        }
        if (sde) {
            /* k-diffusion's dpmpp_2m_sde, midpoint form */
            double decay = score__step_memo(&m_exp, -hh) * score__step_memo(&m_exp2, -eta * hh);
            double cd = -score__step_memo(&m_em1, -(1.0 + eta) * hh);
            double amp = sn[i] * sqrt(fmax(-score__step_memo(&m_em2, -2.0 * eta * hh), 0.0)) *
                         snoise;
            double c1 = eff >= 2 ? 0.5 * cd * hh / h0 : 0.0;
            for (size_t j = 0; j < dim; j++) {
                double dv = dr[j];
                double y = decay * (double)xr[j] * ia + cd * dv;
                if (eff >= 2)
                    y += c1 * (dv - (double)d1[j]);
                if (eta > 0.0)
                    y += amp * (double)zr[j];
                xr[j] = (score__real)(an[i] * y);
            }
        } else if (kind == SCORE_STEP_DPMPP_2M && eff >= 2) {
            /* published 2M: D~ = D + (h / (2 h0)) (D - D1) */
            double ratio = score__step_memo(&m_exp, -hh), i0 = score__step_memo(&m_i0, hh);
            double k = 0.5 * hh / h0;
            for (size_t j = 0; j < dim; j++) {
                double dv = dr[j];
                double y = ratio * (double)xr[j] * ia + i0 * (dv + k * (dv - (double)d1[j]));
                xr[j] = (score__real)(an[i] * y);
            }
        } else {
            /* exponential integrator with the Taylor terms of the interpolant of D; the
             * published 3M form weights the second-difference term by I2 instead of 2 I2 */
            double ratio = score__step_memo(&m_exp, -hh), i0 = score__step_memo(&m_i0, hh);
            double i1 = eff >= 2 ? score__step_memo(&m_i1, hh) : 0.0;
            double i2 = eff >= 3 ? score__step_memo(&m_i2, hh) : 0.0;
            if (SCORE__STEP_I64(st, SCORE_STEP_PARAM_DPMPP_3M_FORM) == 1)
                i2 *= 0.5;
            for (size_t j = 0; j < dim; j++) {
                double dv = dr[j], y = ratio * (double)xr[j] * ia + i0 * dv;
                if (eff == 2) {
                    y += i1 * (dv - (double)d1[j]) / h0;
                } else if (eff >= 3) {
                    double f01 = (dv - (double)d1[j]) / h0;
                    double f12 = ((double)d1[j] - (double)d2[j]) / h1;
                    double f012 = (f01 - f12) / (h0 + h1);
                    y += i1 * (f01 + h0 * f012) + i2 * 2.0 * f012;
                }
                xr[j] = (score__real)(an[i] * y);
            }
        }
    }
    /* history: D becomes D_{i-1} */
    SCORE__R(score__step_push_history)(st, c, D, lam, avail, 2);
    if (start && avail == 0)
        memcpy(SCORE__HX(st, 1), SCORE__CX(c), n * dim * sizeof(score__real));
    return SCORE_OK;
}
