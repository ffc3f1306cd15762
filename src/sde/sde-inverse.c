/* Posterior sampling for a linear observation y = A x0 + n, n ~ N(0, sigma_n^2 I) (see
 * "Inverse problems" in sde.h): every evaluation adds grad_x log p(y | x_t) to the score, with
 * p(y | x_t) = N(y; A x0_hat(x_t), sigma_n^2 I + r_t^2 A A^T).
 *
 * With s = a F(in x, c) + k x and x0_hat = (x + sigma^2 s) / alpha, the Jacobian of x0_hat is
 * (I (1 + sigma^2 k) + sigma^2 a in J_F) / alpha, so the gradient is
 *     ((1 + sigma^2 k) g + sigma^2 a in J_F^T g) / alpha,   g = A^T C^{-1} (y - A x0_hat),
 * one input VJP of the model with the cotangent g per row. C = sigma_n^2 I + r_t^2 A A^T is
 * inverted through the eigen-decomposition of A A^T made once when the observation is set.
 * The moment method (SCORE_OBS_METHOD_MOMENT, below) replaces r_t^2 A A^T by A C_t A^T with
 * the Tweedie covariance C_t = (sigma^2 / alpha) dx0_hat/dx, for an observation or for the
 * known coordinates of a sampling run. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "model/model-priv.h"
#include "sde-priv.h"

void score__sde_observation_free(score_sde *sde)
{
    score__free(sde->obs_A);
    score__free(sde->obs_y);
    score__free(sde->obs_U);
    score__free(sde->obs_ev);
    score__free(sde->obs_r);
    score__free(sde->ogx);
    score__free(sde->ogv);
    score__free(sde->mu);
    score__free(sde->mv);
    score__free(sde->mrow);
    score__free(sde->midx);
    sde->obs_A = sde->obs_y = sde->obs_U = sde->obs_ev = sde->obs_r = NULL;
    sde->ogx = sde->ogv = sde->mu = sde->mv = NULL;
    sde->mrow = NULL;
    sde->midx = NULL;
    sde->cap_og = sde->cap_mu = sde->cap_mrow = 0;
    sde->obs_m = 0;
    sde->og = NULL;
}

/* Eigen-decomposition of the symmetric m x m matrix S (destroyed) by cyclic Jacobi rotations:
 * S = U diag(ev) U^T, U's columns the eigenvectors. */
static void jacobi_eigen(size_t m, double *S, double *U, double *ev)
{
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < m; j++)
            U[i * m + j] = i == j ? 1.0 : 0.0;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0.0, tot = 0.0;
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < m; j++) {
                tot += S[i * m + j] * S[i * m + j];
                if (i != j)
                    off += S[i * m + j] * S[i * m + j];
            }
        if (off <= 1e-30 * tot || off == 0.0)
            break;
        for (size_t p = 0; p + 1 < m; p++)
            for (size_t q = p + 1; q < m; q++) {
                double apq = S[p * m + q], th, t, c, s;
                if (apq == 0.0)
                    continue;
                th = (S[q * m + q] - S[p * m + p]) / (2.0 * apq);
                t = (th >= 0.0 ? 1.0 : -1.0) / (fabs(th) + sqrt(th * th + 1.0));
                c = 1.0 / sqrt(t * t + 1.0);
                s = t * c;
                for (size_t k = 0; k < m; k++) { /* columns p, q */
                    double skp = S[k * m + p], skq = S[k * m + q];
                    S[k * m + p] = c * skp - s * skq;
                    S[k * m + q] = s * skp + c * skq;
                }
                for (size_t k = 0; k < m; k++) { /* rows p, q */
                    double spk = S[p * m + k], sqk = S[q * m + k];
                    S[p * m + k] = c * spk - s * sqk;
                    S[q * m + k] = s * spk + c * sqk;
                }
                for (size_t k = 0; k < m; k++) {
                    double ukp = U[k * m + p], ukq = U[k * m + q];
                    U[k * m + p] = c * ukp - s * ukq;
                    U[k * m + q] = s * ukp + c * ukq;
                }
            }
    }
    for (size_t i = 0; i < m; i++)
        ev[i] = fmax(S[i * m + i], 0.0); /* A A^T is positive semi-definite */
}

int score_sde_set_observation(score_sde *sde, size_t m, const float *A, const float *y,
                              double sigma_n)
{
    size_t d, md, mm;
    double *nA = NULL, *ny = NULL, *U = NULL, *ev = NULL, *r = NULL, *S = NULL;
    if (sde == NULL)
        return score__error(SCORE_E_INVAL, __func__, "sde is NULL");
    if (A == NULL) {
        score__sde_observation_free(sde);
        return SCORE_OK;
    }
    if (y == NULL || m == 0)
        return score__error(SCORE_E_INVAL, __func__, "y is NULL or m = 0");
    if (!isfinite(sigma_n) || !(sigma_n > 0.0))
        return score__error(SCORE_E_RANGE, __func__, "sigma_n = %g: need a finite value > 0",
                            sigma_n);
    if (!(score_model_capabilities(sde->model) & SCORE_MODEL_CAP_VJP))
        return score__error(SCORE_E_UNSUPPORTED, __func__,
                            "the model (kind %d) provides no input vector-Jacobian product "
                            "(SCORE_MODEL_CAP_VJP), which the likelihood gradient needs (a "
                            "callback model: give it a VJP)", score_model_kind(sde->model));
    d = sde->dim;
    if (score__mul_size(m, d, &md) != 0 || score__mul_size(m, m, &mm) != 0)
        return score__error(SCORE_E_RANGE, __func__, "m = %zu: m * dim values overflow the "
                            "address space", m);
    for (size_t i = 0; i < md; i++)
        if (!isfinite(A[i]))
            return score__error(SCORE_E_NUMERIC, __func__, "A[%zu][%zu] is not finite", i / d,
                                i % d);
    for (size_t i = 0; i < m; i++)
        if (!isfinite(y[i]))
            return score__error(SCORE_E_NUMERIC, __func__, "y[%zu] is not finite", i);
    nA = score__calloc(md, sizeof *nA);
    ny = score__calloc(m, sizeof *ny);
    U = score__calloc(mm, sizeof *U);
    S = score__calloc(mm, sizeof *S);
    ev = score__calloc(m, sizeof *ev);
    r = score__calloc(2 * m, sizeof *r);
    if (nA == NULL || ny == NULL || U == NULL || S == NULL || ev == NULL || r == NULL) {
        score__free(nA);
        score__free(ny);
        score__free(U);
        score__free(S);
        score__free(ev);
        score__free(r);
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    }
    for (size_t i = 0; i < md; i++)
        nA[i] = (double)A[i];
    for (size_t i = 0; i < m; i++)
        ny[i] = (double)y[i];
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j <= i; j++) {
            double acc = 0.0;
            for (size_t l = 0; l < d; l++)
                acc += nA[i * d + l] * nA[j * d + l];
            S[i * m + j] = S[j * m + i] = acc;
        }
    jacobi_eigen(m, S, U, ev);
    score__free(S);
    {
        float *keep_x = sde->ogx, *keep_v = sde->ogv;
        size_t keep_cap = sde->cap_og;
        sde->ogx = sde->ogv = NULL;
        score__sde_observation_free(sde);
        sde->ogx = keep_x;
        sde->ogv = keep_v;
        sde->cap_og = keep_cap;
    }
    sde->obs_m = m;
    sde->obs_A = nA;
    sde->obs_y = ny;
    sde->obs_U = U;
    sde->obs_ev = ev;
    sde->obs_r = r;
    sde->obs_sn = sigma_n;
    return SCORE_OK;
}

static int grow(const char *fn, score_sde *sde, size_t n)
{
    size_t nd;
    float *gx, *gv;
    if (score__mul_size(n, sde->dim, &nd) != 0)
        return score__error(SCORE_E_NOMEM, fn, "batch of %zu rows is too large", n);
    if (nd <= sde->cap_og)
        return SCORE_OK;
    gx = score__calloc(nd, sizeof *gx);
    gv = score__calloc(nd, sizeof *gv);
    if (gx == NULL || gv == NULL) {
        score__free(gx);
        score__free(gv);
        return score__error(SCORE_E_NOMEM, fn, "workspace allocation for %zu rows failed", n);
    }
    score__free(sde->ogx);
    score__free(sde->ogv);
    sde->ogx = gx;
    sde->ogv = gv;
    sde->cap_og = nd;
    return SCORE_OK;
}

/* The cotangent g = A^T C^{-1} r of row b (r = y - A x0_hat) into ogx[b]. */
static void row_cotangent(score_sde *sde, size_t b, const float *x, const float *F)
{
    size_t d = sde->dim, m = sde->obs_m;
    double al = sde->al[b], s2 = sde->si[b] * sde->si[b], a = sde->a[b], k = sde->k[b];
    double v = score__sde_par_f(sde, SCORE_SDE_PARAM_OBS_VAR);
    double zeta = score__sde_par_f(sde, SCORE_SDE_PARAM_OBS_ZETA);
    double sn2 = sde->obs_sn * sde->obs_sn, *r = sde->obs_r, *c = sde->obs_r + m;
    const double *A = sde->obs_A, *U = sde->obs_U;
    float *g = sde->ogx + b * d;
    for (size_t i = 0; i < m; i++) {
        double ax = 0.0;
        for (size_t j = 0; j < d; j++) {
            double xv = (double)x[b * d + j];
            double s = a * (double)F[b * d + j] + k * xv;
            ax += A[i * d + j] * ((xv + s2 * s) / al);
        }
        r[i] = sde->obs_y[i] - ax;
    }
    if (zeta > 0.0) {
        double nr = 0.0;
        for (size_t i = 0; i < m; i++)
            nr += r[i] * r[i];
        nr = sqrt(nr);
        for (size_t i = 0; i < m; i++)
            c[i] = nr > 0.0 ? zeta * r[i] / nr : 0.0;
    } else {
        /* C^{-1} r = U diag(1 / (sn^2 + r_t^2 ev)) U^T r */
        double rt2 = v > 0.0 ? v * s2 / (al * al * v + s2) : 0.0;
        for (size_t i = 0; i < m; i++) {
            double acc = 0.0;
            for (size_t l = 0; l < m; l++)
                acc += U[l * m + i] * r[l];
            c[i] = acc / (sn2 + rt2 * sde->obs_ev[i]);
        }
        for (size_t i = 0; i < m; i++)
            r[i] = c[i];
        for (size_t i = 0; i < m; i++) {
            double acc = 0.0;
            for (size_t l = 0; l < m; l++)
                acc += U[i * m + l] * r[l];
            c[i] = acc;
        }
    }
    for (size_t j = 0; j < d; j++) {
        double acc = 0.0;
        for (size_t i = 0; i < m; i++)
            acc += A[i * d + j] * c[i];
        g[j] = (float)acc;
    }
}

/* ---- the moment method ------------------------------------------------------------------
 *
 * For row b with observed rows a_1 .. a_k of A (k = m; for known coordinates the unit vectors
 * of the row's known coordinates), values y_i and noise covariance R:
 *     w_i = J^T a_i,  J = dx0_hat/dx = ((1 + sigma^2 k) I + sigma^2 a in J_F) / alpha,
 *     M = (sigma^2 / alpha) sym(A J A^T) + R,  (A J A^T)_ij = a_i . w_j,
 *     r_i = y_i - a_i . x0_hat,  c = M^{-1} r (Cholesky),  grad = sum_i c_i w_i.
 * One model VJP with the k cotangents a_i per row gives every w_i: they make both M and the
 * gradient J^T A^T c. Rows with fewer observations than the largest k are padded with zero
 * cotangents (their w are not read). */

/* Relative jitter R = KNOWN_JITTER max_i M_ii of a row of known coordinates (R = 0 is the
 * exact observation; the jitter only guards the factorisation). */
#define KNOWN_JITTER 1e-6

void score__sde_set_known_obs(score_sde *sde, size_t rows, const uint8_t *mask, const float *y,
                              size_t row0, size_t n)
{
    sde->kmask = mask;
    sde->ky = mask != NULL ? y : NULL;
    sde->krows = mask != NULL ? rows : 0;
    sde->krow0 = row0;
    sde->kn = n;
}

/* Workspace of a moment evaluation of n rows with k observations per row. */
static int grow_moment(const char *fn, score_sde *sde, size_t n, size_t k)
{
    size_t nkd, kk;
    int rc = grow(fn, sde, n);
    if (rc != SCORE_OK)
        return rc;
    if (score__mul_size(n, k, &nkd) != 0 || score__mul_size(nkd, sde->dim, &nkd) != 0 ||
        score__mul_size(k, k + 3, &kk) != 0)
        return score__error(SCORE_E_NOMEM, fn, "%zu rows with %zu observations overflow", n, k);
    if (nkd > sde->cap_mu) {
        float *u = score__calloc(nkd, sizeof *u), *v = score__calloc(nkd, sizeof *v);
        if (u == NULL || v == NULL) {
            score__free(u);
            score__free(v);
            return score__error(SCORE_E_NOMEM, fn, "workspace of %zu rows x %zu cotangents", n,
                                k);
        }
        score__free(sde->mu);
        score__free(sde->mv);
        sde->mu = u;
        sde->mv = v;
        sde->cap_mu = nkd;
    }
    if (k > sde->cap_mrow) {
        double *r = score__calloc(kk, sizeof *r);
        size_t *ix = score__calloc(k, sizeof *ix);
        if (r == NULL || ix == NULL) {
            score__free(r);
            score__free(ix);
            return score__error(SCORE_E_NOMEM, fn, "row workspace of %zu observations", k);
        }
        score__free(sde->mrow);
        score__free(sde->midx);
        sde->mrow = r;
        sde->midx = ix;
        sde->cap_mrow = k;
    }
    return SCORE_OK;
}

/* The global row of evaluation row i, or SIZE_MAX when the evaluation did not name its rows
 * and is not the whole run. */
static size_t known_row(const score_sde *sde, size_t n, size_t i)
{
    const struct score__model_ws *mw = sde->mws;
    if (mw->row_n == n)
        return mw->row0 + (mw->row_idx != NULL ? mw->row_idx[i] : i);
    return n == sde->kn ? sde->krow0 + i : SIZE_MAX;
}

/* The known coordinates of global row r: their count, indices into midx-like ix (may be
 * NULL), and values into yv (may be NULL). */
static size_t known_of_row(const score_sde *sde, size_t r, size_t *ix, double *yv)
{
    size_t d = sde->dim, mr = sde->krows == 1 ? 0 : r, k = 0;
    const uint8_t *msk = sde->kmask + mr * d;
    for (size_t j = 0; j < d; j++)
        if (msk[j] == 1) {
            if (ix != NULL)
                ix[k] = j;
            if (yv != NULL)
                yv[k] = (double)sde->ky[mr * d + j];
            k++;
        }
    return k;
}

/* In-place Cholesky factorisation M = L L^T (lower triangle) and the solve of L L^T c = r
 * (r overwritten by c); 0 when M is not numerically positive definite. */
static int cholesky_solve(size_t k, double *M, double *r)
{
    for (size_t j = 0; j < k; j++) {
        double dj = M[j * k + j];
        for (size_t l = 0; l < j; l++)
            dj -= M[j * k + l] * M[j * k + l];
        if (!(dj > 0.0) || !isfinite(dj))
            return 0;
        dj = sqrt(dj);
        M[j * k + j] = dj;
        for (size_t i = j + 1; i < k; i++) {
            double v = M[i * k + j];
            for (size_t l = 0; l < j; l++)
                v -= M[i * k + l] * M[j * k + l];
            M[i * k + j] = v / dj;
        }
    }
    for (size_t i = 0; i < k; i++) { /* L z = r */
        double v = r[i];
        for (size_t l = 0; l < i; l++)
            v -= M[i * k + l] * r[l];
        r[i] = v / M[i * k + i];
    }
    for (size_t i = k; i-- > 0;) { /* L^T c = z */
        double v = r[i];
        for (size_t l = i + 1; l < k; l++)
            v -= M[l * k + i] * r[l];
        r[i] = v / M[i * k + i];
    }
    return 1;
}

/* The cotangents of every row (the rows a_i of A, zero-padded to k per row) into sde->mu. */
static int moment_cotangents(const char *fn, score_sde *sde, size_t n, size_t k)
{
    size_t d = sde->dim;
    memset(sde->mu, 0, n * k * d * sizeof(float));
    for (size_t b = 0; b < n; b++) {
        float *u = sde->mu + b * k * d;
        if (sde->kmask == NULL) {
            for (size_t i = 0; i < k * d; i++)
                u[i] = (float)sde->obs_A[i];
            continue;
        }
        size_t r = known_row(sde, n, b), kb;
        if (r == SIZE_MAX)
            return score__error(SCORE_E_UNSUPPORTED, fn,
                                "known coordinates (moment method): an evaluation of %zu rows "
                                "of a run of %zu did not name its rows (score_step_apply_ex's "
                                "row0)", n, sde->kn);
        if (sde->krows > 1 && r >= sde->krows)
            return score__error(SCORE_E_SHAPE, fn, "known coordinates: global row %zu has no "
                                "mask row (%zu rows)", r, sde->krows);
        kb = known_of_row(sde, r, sde->midx, NULL);
        for (size_t i = 0; i < kb; i++)
            u[i * d + sde->midx[i]] = 1.0f;
    }
    return SCORE_OK;
}

/* The moment gradient of row b into ogx[b] (the VJPs of its cotangents in sde->mv). */
static int moment_row(const char *fn, score_sde *sde, size_t n, size_t b, size_t k,
                      const double *t, const float *x, const float *F)
{
    size_t d = sde->dim, kb = k;
    double al = sde->al[b], s2 = sde->si[b] * sde->si[b], a = sde->a[b], kc = sde->k[b];
    double cg = (1.0 + s2 * kc) / al, cv = s2 * a * sde->in[b] / al, c2 = s2 / al;
    double *M = sde->mrow, *r = M + k * k, *yv = r + k;
    const float *u = sde->mu + b * k * d, *v = sde->mv + b * k * d, *xb = x + b * d;
    const float *Fb = F + b * d;
    float *g = sde->ogx + b * d;
    double rjit = 0.0;
    if (sde->kmask != NULL) {
        kb = known_of_row(sde, known_row(sde, n, b), sde->midx, yv);
    } else {
        for (size_t i = 0; i < k; i++)
            yv[i] = sde->obs_y[i];
    }
    memset(g, 0, d * sizeof *g);
    if (kb == 0)
        return SCORE_OK;
    /* w_i = J^T a_i, in place of the VJPs (double on the fly) */
    for (size_t i = 0; i < kb; i++) {
        double ax = 0.0;
        for (size_t j = 0; j < d; j++) {
            double xv = (double)xb[j], s = a * (double)Fb[j] + kc * xv;
            ax += (double)u[i * d + j] * ((xv + s2 * s) / al);
        }
        r[i] = yv[i] - ax;
        for (size_t l = 0; l <= i; l++) {
            double aw = 0.0, wa = 0.0;
            for (size_t j = 0; j < d; j++) {
                double wl = cg * (double)u[l * d + j] + cv * (double)v[l * d + j];
                double wi = cg * (double)u[i * d + j] + cv * (double)v[i * d + j];
                aw += (double)u[i * d + j] * wl;
                wa += (double)u[l * d + j] * wi;
            }
            M[i * kb + l] = M[l * kb + i] = 0.5 * c2 * (aw + wa);
        }
    }
    if (sde->kmask != NULL) {
        for (size_t i = 0; i < kb; i++)
            rjit = fmax(rjit, M[i * kb + i]);
        rjit *= KNOWN_JITTER;
    } else {
        rjit = sde->obs_sn * sde->obs_sn;
    }
    for (size_t i = 0; i < kb; i++)
        M[i * kb + i] += rjit;
    if (!cholesky_solve(kb, M, r))
        return score__error(SCORE_E_NUMERIC, fn,
                            "moment method: the covariance A C_t A^T + R of row %zu (t = %g) "
                            "is not positive definite (the model's Jacobian is far from "
                            "symmetric positive there); use SCORE_OBS_METHOD_DEFAULT%s", b,
                            t[b], sde->kmask != NULL ? "" : " or a larger sigma_n");
    for (size_t j = 0; j < d; j++) {
        double acc = 0.0;
        for (size_t i = 0; i < kb; i++)
            acc += r[i] * (cg * (double)u[i * d + j] + cv * (double)v[i * d + j]);
        g[j] = (float)acc;
    }
    return SCORE_OK;
}

static int moment_term(const char *fn, score_sde *sde, size_t n, const double *t,
                       const float *x, const float *xm)
{
    size_t d = sde->dim, k = 0;
    int rc;
    if (score__sde_par_f(sde, SCORE_SDE_PARAM_OBS_VAR) != 0.0 ||
        score__sde_par_f(sde, SCORE_SDE_PARAM_OBS_ZETA) != 0.0)
        return score__error(SCORE_E_INVAL, fn,
                            "the moment method (SCORE_SDE_PARAM_OBS_METHOD = 1) uses the model's "
                            "own covariance: SCORE_SDE_PARAM_OBS_VAR and SCORE_SDE_PARAM_OBS_ZETA "
                            "(forms of the default method) must be 0");
    if (sde->kmask == NULL) {
        k = sde->obs_m;
    } else {
        for (size_t b = 0; b < n; b++) {
            size_t r = known_row(sde, n, b);
            if (r == SIZE_MAX || (sde->krows > 1 && r >= sde->krows))
                break; /* reported by moment_cotangents */
            size_t kb = known_of_row(sde, r, NULL, NULL);
            if (kb > k)
                k = kb;
        }
        if (k == 0)
            k = 1; /* so that a bad row is still reported */
    }
    if ((rc = grow_moment(fn, sde, n, k)) != SCORE_OK)
        return rc;
    if ((rc = moment_cotangents(fn, sde, n, k)) != SCORE_OK)
        return rc;
    sde->nfe++;
    rc = score__model_vjp_ws(sde->model, sde->mws, n, xm, sde->cond, k, sde->mu, sde->mv);
    if (rc != SCORE_OK)
        return score__sde_model_call_failed(fn, rc);
    for (size_t b = 0; b < n; b++)
        if ((rc = moment_row(fn, sde, n, b, k, t, x, sde->fout)) != SCORE_OK)
            return rc;
    for (size_t i = 0; i < n * d; i++)
        if (!isfinite(sde->ogx[i]))
            return score__error(SCORE_E_NUMERIC, fn, "the likelihood gradient of row %zu "
                                "(t = %g) is not finite", i / d, t[i / d]);
    sde->og = sde->ogx;
    return SCORE_OK;
}

int score__sde_observation_term(const char *fn, score_sde *sde, size_t n, const double *t,
                                const float *x, const float *xm, double w)
{
    size_t d = sde->dim;
    int rc, moment = score__sde_par_i(sde, SCORE_SDE_PARAM_OBS_METHOD) == SCORE_OBS_METHOD_MOMENT;
    sde->og = NULL;
    if (sde->kmask != NULL && sde->obs_m != 0)
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "known coordinates with the moment method and an observation "
                            "(score_sde_set_observation()) at once are not supported: fold the "
                            "known coordinates into the observation's A and y");
    if (sde->obs_m == 0 && sde->kmask == NULL)
        return SCORE_OK;
    if (w != 0.0 || (sde->clf != NULL && sde->clf_w != 0.0))
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "an observation term (score_sde_set_observation(), or known "
                            "coordinates with the moment method) together with guidance is not "
                            "supported: set the guidance weights to 0 or clear the observation");
    if (!(score_model_capabilities(sde->model) & SCORE_MODEL_CAP_VJP))
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "the model (kind %d) provides no input vector-Jacobian product, "
                            "which the observation's likelihood gradient needs (the model was "
                            "replaced, or known coordinates use the moment method?)",
                            score_model_kind(sde->model));
    if (moment || sde->kmask != NULL)
        return moment_term(fn, sde, n, t, x, xm);
    if ((rc = grow(fn, sde, n)) != SCORE_OK)
        return rc;
    for (size_t b = 0; b < n; b++)
        row_cotangent(sde, b, x, sde->fout);
    for (size_t i = 0; i < n * d; i++)
        if (!isfinite(sde->ogx[i]))
            return score__error(SCORE_E_NUMERIC, fn, "the likelihood gradient of row %zu "
                                "(t = %g) is not finite", i / d, t[i / d]);
    sde->nfe++;
    rc = score__model_vjp_ws(sde->model, sde->mws, n, xm, sde->cond, 1, sde->ogx, sde->ogv);
    if (rc != SCORE_OK)
        return score__sde_model_call_failed(fn, rc);
    for (size_t b = 0; b < n; b++) {
        double al = sde->al[b], s2 = sde->si[b] * sde->si[b];
        double cg = (1.0 + s2 * sde->k[b]) / al, cv = s2 * sde->a[b] * sde->in[b] / al;
        for (size_t j = 0; j < d; j++) {
            size_t i = b * d + j;
            sde->ogx[i] = (float)(cg * (double)sde->ogx[i] + cv * (double)sde->ogv[i]);
        }
    }
    sde->og = sde->ogx;
    return SCORE_OK;
}

int score__sde_refuse_extras(const char *fn, const score_sde *sde)
{
    if (sde->obs_m != 0 || sde->kmask != NULL)
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "the divergence of a score with an observation term needs the "
                            "model's second derivatives, which are not computed (clear the "
                            "observation for likelihoods)");
    if (score__sde_threshold_active(sde))
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "the divergence of a thresholded score is not computed (clear the "
                            "clip box and set SCORE_SDE_PARAM_THRESHOLD to 0 for likelihoods)");
    return SCORE_OK;
}

int score__sde_refuse_altered_pf(const char *fn, const score_sde *sde)
{
    if (sde->obs_m != 0)
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "the sde has an observation (score_sde_set_observation()): its "
                            "probability-flow drift is the posterior's, not the model's, so the "
                            "map would not be the model's PF-ODE map; clear the observation");
    if (score__sde_threshold_active(sde))
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "the sde thresholds its data prediction (score_sde_set_clip() or "
                            "SCORE_SDE_PARAM_THRESHOLD): its probability-flow drift is not the "
                            "model's, so the map would not be the model's PF-ODE map (nor "
                            "invertible); clear the clip box and set the threshold to 0");
    return SCORE_OK;
}
