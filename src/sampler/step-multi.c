/* Multistep solvers beside DPM-Solver++, in the EDM variables y = x / alpha,
 * s = sigma / alpha = exp(-lambda), where the PF-ODE reads dy/ds = eps = (y - D) / s:
 *
 * - LMS (k-diffusion's linear multistep): y' = y + sum_j c_j eps_{i-j}, with c_j the integral
 *   over [s, s'] of the j-th Lagrange basis polynomial through the last k noise levels
 *   (integrated exactly by 3-point Gauss-Legendre; k <= 4). This is DEIS' "rho-AB" form.
 * - DEIS (diffusers' "deis" form of the DEIS paper): the exponential integrator
 *   y' = y - s int_0^h e^-v P(v) dv with P the polynomial in v = lambda - lambda_i through the
 *   last k noise predictions (Lagrange interpolation in log rho, rho = s, integrated exactly;
 *   k <= 3).
 * - UniPC (Zhao et al. 2023, data prediction): the UniP-k predictor from the state at t, and
 *   the UniC corrector applied at the start of the next call to the state the previous call
 *   reached, with the model output already evaluated there (no extra evaluation). B(h) = h
 *   ("bh1") or expm1(h) ("bh2").
 *
 * The history (model outputs and lambdas of the previous calls) is the DPM-Solver++ one of the
 * step object, three deep, and is used only when a call continues the previous one (step.h). */
#include <math.h>
#include <string.h>

#include "step-real.h"

/* per-row arrays (indices into st->dbl; NDBL - 2 and NDBL - 1 are reserved by step.c) */
enum { R_A, R_SG, R_AN, R_SGN, R_S, R_SN, R_LAM, R_H, R_AP, R_SGP };

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

static int capped_order(const score_step *st)
{
    int64_t cap = SCORE__STEP_I64(st, SCORE_STEP_PARAM_ORDER);
    return (cap > 0 && cap < st->type.order) ? (int)cap : st->type.order;
}

/* The largest k <= kmax such that lam and the first k - 1 history lambdas of row i are pairwise
 * distinct (interpolation nodes). */
static int distinct_nodes(const score_step *st, size_t i, double lam, int kmax)
{
    double node[SCORE__STEP_NHIST + 1];
    int k = 1;
    node[0] = lam;
    while (k < kmax) {
        double v = st->hist_lam[k - 1][i];
        for (int j = 0; j < k; j++)
            if (!(v != node[j]))
                return k;
        node[k++] = v;
    }
    return k;
}

/* ---- LMS ------------------------------------------------------------------------------- */

/* c[j] = integral over [a, b] of the j-th Lagrange basis polynomial through node[0..k-1]
 * (degree <= 3: the 3-point Gauss-Legendre rule is exact). */
static void lms_coefs(int k, const double *node, double a, double b, double *coef)
{
    static const double xi[3] = {-0.7745966692414834, 0.0, 0.7745966692414834};
    static const double w[3] = {5.0 / 9.0, 8.0 / 9.0, 5.0 / 9.0};
    double mid = 0.5 * (a + b), half = 0.5 * (b - a);
    for (int j = 0; j < k; j++) {
        double sum = 0.0;
        for (int g = 0; g < 3; g++) {
            double tau = mid + half * xi[g], l = 1.0;
            for (int m = 0; m < k; m++)
                if (m != j)
                    l *= (tau - node[m]) / (node[j] - node[m]);
            sum += w[g] * l;
        }
        coef[j] = half * sum;
    }
}

/* The start of an LMS / DEIS call: the end points, the usable history and the noise
 * prediction e at the start (dsc: scratch of SCORE__R(score__step_k)()). */
static int noise_begin(score_step *st, const score__step_call *c, score__real *dsc, score__real *e,
                       int *avail)
{
    int rc = endpoints(st, c);
    if (rc != SCORE_OK)
        return rc;
    *avail = score__step_history_avail(st, c);
    return SCORE__R(score__step_k)(st, c, c->t, st->dbl[R_A], st->dbl[R_S], SCORE__CX(c), dsc, e);
}

int SCORE__R(score__step_lms)(score_step *st, const score__step_call *c)
{
    size_t n = c->n, dim = c->dim;
    score__real *e = SCORE__BUF(st, 0), *dsc = SCORE__BUF(st, 1);
    double *a = st->dbl[R_A], *an = st->dbl[R_AN], *s = st->dbl[R_S], *sn = st->dbl[R_SN];
    int order = capped_order(st), avail;
    int rc = noise_begin(st, c, dsc, e, &avail);
    if (rc != SCORE_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        int k = distinct_nodes(st, i, st->dbl[R_LAM][i], order < avail + 1 ? order : avail + 1);
        double node[SCORE__STEP_NHIST + 1], coef[SCORE__STEP_NHIST + 1], ia = 1.0 / a[i];
        const score__real *hd[SCORE__STEP_NHIST + 1];
        score__real *xr = SCORE__CX(c) + i * dim;
        node[0] = s[i];
        hd[0] = e + i * dim;
        for (int m = 1; m < k; m++) {
            node[m] = exp(-st->hist_lam[m - 1][i]);
            hd[m] = SCORE__HD(st, m - 1) + i * dim;
        }
        lms_coefs(k, node, s[i], sn[i], coef);
        for (size_t j = 0; j < dim; j++) {
            double y = (double)xr[j] * ia;
            for (int m = 0; m < k; m++)
                y += coef[m] * (double)hd[m][j];
            xr[j] = (score__real)(an[i] * y);
        }
    }
    SCORE__R(score__step_push_history)(st, c, e, st->dbl[R_LAM], avail, SCORE__STEP_NHIST);
    return SCORE_OK;
}

/* ---- DEIS ------------------------------------------------------------------------------ */

int SCORE__R(score__step_deis)(score_step *st, const score__step_call *c)
{
    size_t n = c->n, dim = c->dim;
    score__real *e = SCORE__BUF(st, 0), *dsc = SCORE__BUF(st, 1);
    double *a = st->dbl[R_A], *an = st->dbl[R_AN], *s = st->dbl[R_S], *h = st->dbl[R_H];
    int order = capped_order(st), avail;
    int rc = noise_begin(st, c, dsc, e, &avail);
    if (rc != SCORE_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        int k = distinct_nodes(st, i, st->dbl[R_LAM][i], order < avail + 1 ? order : avail + 1);
        double hh = h[i], ia = 1.0 / a[i], h0 = 0.0, h1 = 0.0;
        /* J_m = int_0^h v^m e^-v dv, from the data-prediction weights I0, I1, I2 */
        double j0 = score__expint_i0(hh), i1 = score__expint_i1(hh), i2 = score__expint_i2(hh);
        double j1 = hh * j0 - i1, j2 = hh * hh * j0 - 2.0 * hh * i1 + 2.0 * i2;
        const score__real *e0 = e + i * dim, *e1 = SCORE__HD(st, 0) + i * dim,
                    *e2 = SCORE__HD(st, 1) + i * dim;
        score__real *xr = SCORE__CX(c) + i * dim;
        if (hh == 0.0)
            continue;
        if (k >= 2)
            h0 = st->dbl[R_LAM][i] - st->hist_lam[0][i];
        if (k >= 3)
            h1 = st->hist_lam[0][i] - st->hist_lam[1][i];
        for (size_t j = 0; j < dim; j++) {
            double v0 = e0[j], integral = j0 * v0;
            if (k == 2) {
                integral += j1 * (v0 - (double)e1[j]) / h0;
            } else if (k >= 3) {
                /* Newton form at v = 0, -h0, -(h0 + h1): P = e0 + f01 v + f012 v (v + h0) */
                double f01 = (v0 - (double)e1[j]) / h0;
                double f12 = ((double)e1[j] - (double)e2[j]) / h1;
                double f012 = (f01 - f12) / (h0 + h1);
                integral += j1 * (f01 + h0 * f012) + j2 * f012;
            }
            xr[j] = (score__real)(an[i] * ((double)xr[j] * ia - s[i] * integral));
        }
    }
    SCORE__R(score__step_push_history)(st, c, e, st->dbl[R_LAM], avail, SCORE__STEP_NHIST);
    return SCORE_OK;
}

/* ---- UniPC ----------------------------------------------------------------------------- */

/* b_j = g_j(z) j! / B(z), j = 1..k, with z = -h, g_j(z) = sum_{m >= 1} z^m / (m + j)!
 * (g_1 = (e^z - 1) / z - 1, g_{j+1} = g_j / z - 1 / (j + 1)!) and B(z) = z (bh1) or
 * expm1(z) (bh2). *B_out receives B(z). */
static void unipc_b(double h, int bh2, int k, double *b, double *B_out)
{
    double z = -h, g[SCORE__STEP_NHIST + 1], B = bh2 ? expm1(z) : z, fact = 1.0;
    if (fabs(z) < 1.0) {
        for (int j = 1; j <= k; j++) {
            double term = 1.0, sum = 0.0;
            for (int m = 1; m <= j; m++)
                term /= (double)m;
            for (int m = 1; m < 40; m++) {
                term *= z / (double)(m + j);
                sum += term;
            }
            g[j - 1] = sum;
        }
    } else {
        double f = 1.0;
        g[0] = expm1(z) / z - 1.0;
        for (int j = 1; j < k; j++) {
            f *= (double)(j + 1);
            g[j] = g[j - 1] / z - 1.0 / f;
        }
    }
    for (int j = 1; j <= k; j++) {
        fact *= (double)j;
        b[j - 1] = g[j - 1] * fact / B;
    }
    *B_out = B;
}

/* Solves the k x k system A r = b (k <= 4) by Gaussian elimination with partial pivoting;
 * A and b are overwritten. Returns 0, or -1 for a singular matrix. */
static int solve_small(int k, double A[][SCORE__STEP_NHIST + 1], double *b, double *r)
{
    for (int p = 0; p < k; p++) {
        int piv = p;
        for (int q = p + 1; q < k; q++)
            if (fabs(A[q][p]) > fabs(A[piv][p]))
                piv = q;
        if (!(fabs(A[piv][p]) > 0.0))
            return -1;
        if (piv != p) {
            for (int m = 0; m < k; m++) {
                double tmp = A[p][m];
                A[p][m] = A[piv][m];
                A[piv][m] = tmp;
            }
            double tb = b[p];
            b[p] = b[piv];
            b[piv] = tb;
        }
        for (int q = p + 1; q < k; q++) {
            double f = A[q][p] / A[p][p];
            for (int m = p; m < k; m++)
                A[q][m] -= f * A[p][m];
            b[q] -= f * b[p];
        }
    }
    for (int p = k - 1; p >= 0; p--) {
        double v = b[p];
        for (int m = p + 1; m < k; m++)
            v -= A[p][m] * r[m];
        r[p] = v / A[p][p];
    }
    return 0;
}

/* Weights rho of UniPC with the k - 1 offsets rk[0..k-2] (fractions of h in lambda of the
 * older outputs) for the predictor (corrector = 0: k - 1 weights, rho = 1/2 for k = 2) or the
 * corrector (k weights, the last one for the new output at rk = 1; rho = 1/2 for k = 1). */
static int unipc_rho(int k, const double *rk, const double *b, int corrector, double *rho)
{
    double A[SCORE__STEP_NHIST + 1][SCORE__STEP_NHIST + 1], bb[SCORE__STEP_NHIST + 1];
    double nodes[SCORE__STEP_NHIST + 1];
    int m = corrector ? k : k - 1;
    if (m == 1 && (corrector ? k == 1 : k == 2)) {
        rho[0] = 0.5;
        return 0;
    }
    for (int q = 0; q < k - 1; q++)
        nodes[q] = rk[q];
    nodes[k - 1] = 1.0;
    for (int row = 0; row < m; row++) {
        for (int col = 0; col < m; col++)
            A[row][col] = pow(nodes[col], (double)row);
        bb[row] = b[row];
    }
    return solve_small(m, A, bb, rho);
}

/* Offsets rk (k - 1 of them) of the history lambdas hist_lam[first .. first + k - 2] from lam0
 * in units of h, for row i. */
static void unipc_offsets(const score_step *st, size_t i, int first, int k, double lam0,
                          double h, double *rk)
{
    for (int q = 0; q < k - 1; q++)
        rk[q] = (st->hist_lam[first + q][i] - lam0) / h;
}

/* UniC: corrects row i of x (the state the previous call reached at t) with the output D at t
 * of that state; the previous call started from hist_x[0] at hist_t0 with lambda hist_lam[0]. */
static void unipc_correct(score_step *st, const score__step_call *c, size_t i, int order,
                          int bh2, const score__real *D)
{
    size_t dim = c->dim;
    double lp = st->hist_lam[0][i], hp = st->dbl[R_LAM][i] - lp;
    double rk[SCORE__STEP_NHIST], b[SCORE__STEP_NHIST + 1], rho[SCORE__STEP_NHIST + 1], B;
    double ep = exp(-hp), i0 = score__expint_i0(hp), iap = 1.0 / st->dbl[R_AP][i];
    int k = order;
    const score__real *xp = SCORE__HX(st, 0) + i * dim, *dn = D + i * dim,
                      *d0 = SCORE__HD(st, 0) + i * dim;
    score__real *xr = SCORE__CX(c) + i * dim;
    if (!(hp != 0.0))
        return;
    /* nodes: lambda_{i-1}, the k - 1 older ones, and lambda_i */
    while (k > 1) {
        int ok = 1;
        for (int q = 1; q < k && ok; q++) {
            double v = st->hist_lam[q][i];
            if (!(v != lp) || !(v != st->dbl[R_LAM][i]))
                ok = 0;
            for (int m = 1; m < q && ok; m++)
                if (!(v != st->hist_lam[m][i]))
                    ok = 0;
        }
        if (ok)
            break;
        k--;
    }
    unipc_offsets(st, i, 1, k, lp, hp, rk);
    unipc_b(hp, bh2, k, b, &B);
    if (unipc_rho(k, rk, b, 1, rho) != 0)
        return;
    for (size_t j = 0; j < dim; j++) {
        double m0 = d0[j], res = rho[k - 1] * ((double)dn[j] - m0);
        for (int q = 0; q < k - 1; q++)
            res += rho[q] * ((double)SCORE__HD(st, q + 1)[i * dim + j] - m0) / rk[q];
        xr[j] = (score__real)(st->dbl[R_A][i] * (ep * (double)xp[j] * iap + i0 * m0 - B * res));
    }
}

int SCORE__R(score__step_unipc)(score_step *st, const score__step_call *c)
{
    size_t n = c->n, dim = c->dim, nd = n * dim;
    score__real *D = SCORE__BUF(st, 0);
    double *a = st->dbl[R_A], *an = st->dbl[R_AN], *h = st->dbl[R_H], *lam = st->dbl[R_LAM];
    int bh2 = st->type.kind == SCORE_STEP_UNIPC, order = capped_order(st), avail, eff;
    int rc = endpoints(st, c);
    if (rc != SCORE_OK)
        return rc;
    avail = score__step_history_avail(st, c);
    rc = SCORE__R(score__step_x0)(st, c, c->t, SCORE__CX(c), D);
    if (rc != SCORE_OK)
        return rc;
    /* UniC, when x is the state the previous call produced (bit for bit) */
    if (avail > 0 && memcmp(SCORE__CX(c), SCORE__HX(st, 1), nd * sizeof(score__real)) == 0) {
        int kc = st->hist_order < avail ? st->hist_order : avail;
        rc = score__step_alpha_sigma(c, n, st->hist_t0, st->dbl[R_AP], st->dbl[R_SGP]);
        if (rc != SCORE_OK)
            return rc;
        for (size_t i = 0; i < n; i++)
            unipc_correct(st, c, i, kc, bh2, D);
    }
    memcpy(SCORE__HX(st, 0), SCORE__CX(c), nd * sizeof(score__real));
    memcpy(st->hist_t0, c->t, n * sizeof(double));
    /* UniP */
    eff = order < avail + 1 ? order : avail + 1;
    for (size_t i = 0; i < n; i++) {
        int k = distinct_nodes(st, i, lam[i], eff);
        double hh = h[i], ia = 1.0 / a[i], e = exp(-hh), i0 = score__expint_i0(hh), B = 0.0;
        double rk[SCORE__STEP_NHIST], b[SCORE__STEP_NHIST + 1], rho[SCORE__STEP_NHIST + 1];
        const score__real *dr = D + i * dim;
        score__real *xr = SCORE__CX(c) + i * dim;
        if (hh == 0.0)
            continue;
        if (k >= 2) {
            unipc_offsets(st, i, 0, k, lam[i], hh, rk);
            unipc_b(hh, bh2, k, b, &B);
            if (unipc_rho(k, rk, b, 0, rho) != 0)
                k = 1;
        }
        for (size_t j = 0; j < dim; j++) {
            double d0 = dr[j], y = e * (double)xr[j] * ia + i0 * d0, res = 0.0;
            for (int q = 0; q < k - 1; q++)
                res += rho[q] * ((double)SCORE__HD(st, q)[i * dim + j] - d0) / rk[q];
            xr[j] = (score__real)(an[i] * (y - B * res));
        }
    }
    memcpy(SCORE__HX(st, 1), SCORE__CX(c), nd * sizeof(score__real));
    st->hist_order = eff;
    SCORE__R(score__step_push_history)(st, c, D, st->dbl[R_LAM], avail, SCORE__STEP_NHIST);
    return SCORE_OK;
}
