/* The moment method of conditioning (SCORE_OBS_METHOD_MOMENT, see "Inverse problems" in sde.h):
 * an observation y = A x0 + n, or the known coordinates of a sampling run, conditioned on with
 * the Tweedie covariance of x0 given x_t, C_t = (sigma^2 / alpha) dx0_hat/dx. The default
 * forms (DPS, PiGDM) and the observation's setter are in sde-inverse.c. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "model/model-priv.h"
#include "sde-priv.h"

/*
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
#define LOG_2PI 1.8378770664093454836

void score__sde_set_known_obs(score_sde *sde, size_t rows, const uint8_t *mask, const float *y,
                              size_t row0, size_t n)
{
    sde->kmask = mask;
    sde->ky = mask != NULL ? y : NULL;
    sde->krows = mask != NULL ? rows : 0;
    sde->krow0 = row0;
    sde->kn = n;
    sde->kgroup = 1;
}

void score__sde_set_known_group(score_sde *sde, size_t group)
{
    sde->kgroup = group > 1 ? group : 1;
}

/* The mask row of global evaluation row r (r / kgroup). */
static size_t mask_row(const score_sde *sde, size_t r)
{
    return sde->kgroup > 1 ? r / sde->kgroup : r;
}

/* Workspace of a moment evaluation of n rows with k observations per row. */
static int grow_moment(const char *fn, score_sde *sde, size_t n, size_t k)
{
    size_t nkd, kk;
    int rc = score__sde_obs_grow(fn, sde, n);
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
    size_t d = sde->dim, mr = sde->krows == 1 ? 0 : mask_row(sde, r), k = 0;
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
        if (sde->krows > 1 && mask_row(sde, r) >= sde->krows)
            return score__error(SCORE_E_SHAPE, fn, "known coordinates: global row %zu has no "
                                "mask row (%zu rows)", mask_row(sde, r), sde->krows);
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
    if (sde->tw_log != NULL)
        sde->tw_log[b] = 0.0; /* no observation: p~ = 1 */
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
    for (size_t i = 0; i < kb; i++) /* the residual kept for the twist's value (yv is read) */
        yv[i] = r[i];
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
    if (sde->tw_log != NULL) {
        /* log N(y; A x0_hat, M) = -(r^T M^{-1} r + log det M + kb log(2 pi)) / 2 */
        double quad = 0.0, logdet = 0.0;
        for (size_t i = 0; i < kb; i++) {
            quad += r[i] * yv[i];
            logdet += 2.0 * log(M[i * kb + i]);
        }
        sde->tw_log[b] = -0.5 * (quad + logdet + (double)kb * LOG_2PI);
    }
    for (size_t j = 0; j < d; j++) {
        double acc = 0.0;
        for (size_t i = 0; i < kb; i++)
            acc += r[i] * (cg * (double)u[i * d + j] + cv * (double)v[i * d + j]);
        g[j] = (float)acc;
    }
    return SCORE_OK;
}

int score__sde_moment_term(const char *fn, score_sde *sde, size_t n, const double *t,
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
            if (r == SIZE_MAX || (sde->krows > 1 && mask_row(sde, r) >= sde->krows))
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
    if (sde->tw_grad != NULL)
        memcpy(sde->tw_grad, sde->ogx, n * d * sizeof *sde->tw_grad);
    sde->og = sde->ogx;
    return SCORE_OK;
}

