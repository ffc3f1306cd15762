/* Model files of the analytic kinds (see analytic.c). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "analytic-priv.h"
#include "io/safetensors-priv.h"
#include "schedule/schedule-io-priv.h"

/* ---- model files --------------------------------------------------------------------
 * Metadata "dim", "components" (k), "covariance" ("diag" or "full", Gaussian only) and the
 * schedule under "schedule.*" (schedule-io-priv.h); F64 tensors of the internal representation
 * (so that a loaded model computes bit for bit what the saved one did): "mean" [k, dim] and
 * "var" [k, dim] (means and variances in the basis), "log_weight" [k], "cum_weight" [k], and
 * for a full covariance "basis" [dim, dim] (row-major, column m = eigenvector m). */

int score__analytic_save(const score_model *m, score__st_writer *w)
{
    static const char fn[] = "score_model_save";
    const analytic *A = m->impl;
    char buf[32];
    uint64_t kd[2] = {A->k, A->dim}, k1[1] = {A->k}, dd[2] = {A->dim, A->dim};
    int rc;
    snprintf(buf, sizeof buf, "%zu", A->dim);
    if ((rc = score__st_writer_meta(fn, w, "dim", buf)) != SCORE_OK)
        return rc;
    snprintf(buf, sizeof buf, "%zu", A->k);
    if ((rc = score__st_writer_meta(fn, w, "components", buf)) != SCORE_OK)
        return rc;
    if (m->kind == SCORE_MODEL_GAUSSIAN &&
        (rc = score__st_writer_meta(fn, w, "covariance", A->q ? "full" : "diag")) != SCORE_OK)
        return rc;
    if ((rc = score__schedule_save(fn, A->sched, w, "schedule")) != SCORE_OK ||
        (rc = score__st_writer_add(fn, w, "mean", SCORE__ST_F64, 2, kd, A->mu)) != SCORE_OK ||
        (rc = score__st_writer_add(fn, w, "var", SCORE__ST_F64, 2, kd, A->lam)) != SCORE_OK ||
        (rc = score__st_writer_add(fn, w, "log_weight", SCORE__ST_F64, 1, k1, A->logw)) != SCORE_OK ||
        (rc = score__st_writer_add(fn, w, "cum_weight", SCORE__ST_F64, 1, k1, A->cumw)) != SCORE_OK)
        return rc;
    if (A->q != NULL &&
        (rc = score__st_writer_add(fn, w, "basis", SCORE__ST_F64, 2, dd, A->q)) != SCORE_OK)
        return rc;
    return SCORE_OK;
}

static int meta_size(const char *fn, const score__st_reader *r, const char *key, size_t lo,
                     size_t hi, size_t *out)
{
    const char *v = score__st_meta(r, key);
    size_t x = 0;
    if (v == NULL || v[0] == '\0')
        return score__error(SCORE_E_FORMAT, fn, "metadata '%s' is missing", key);
    for (const char *p = v; *p != '\0'; p++) {
        if (*p < '0' || *p > '9' || x > hi)
            return score__error(SCORE_E_FORMAT, fn, "metadata '%s' = '%.20s' is not an integer "
                                "in [%zu, %zu]", key, v, lo, hi);
        x = x * 10 + (size_t)(*p - '0');
    }
    if (x < lo || x > hi)
        return score__error(SCORE_E_FORMAT, fn, "metadata '%s' = %zu not in [%zu, %zu]", key, x,
                            lo, hi);
    *out = x;
    return SCORE_OK;
}

/* Decodes F64 tensor `name` of the given shape into out and checks every value is finite. */
static int get_f64(const char *fn, const score__st_reader *r, const char *name, size_t ndim,
                   const uint64_t *shape, double *out, size_t count)
{
    int rc = score__st_get(fn, r, name, SCORE__ST_F64, ndim, shape, out);
    if (rc != SCORE_OK)
        return rc;
    for (size_t i = 0; i < count; i++)
        if (!isfinite(out[i]))
            return score__error(SCORE_E_FORMAT, fn, "tensor '%s'[%zu] is not finite", name, i);
    return SCORE_OK;
}

/* Tolerances of the loader's checks of the representation (the constructors produce values
 * far inside them: rounding errors of order k * 1e-16 for the weights, dim * 1e-16 for the
 * basis of the Jacobi eigendecomposition). */
#define WEIGHT_TOL 1e-9
#define BASIS_TOL 1e-9
/* The smallest log weight a constructor can produce: log(smallest positive double) -
 * log(largest double), about -1454.3. */
#define LOGW_MIN -1500.0

/* Log weights: each in [LOGW_MIN, 0], exp(log_weight) summing to 1 and matching the
 * cumulative weights (nondecreasing, ending exactly at 1) to WEIGHT_TOL. */
static int check_weights(const char *fn, const analytic *A)
{
    double acc = 0.0;
    for (size_t j = 0; j < A->k; j++) {
        double prev = j ? A->cumw[j - 1] : 0.0;
        if (!(A->logw[j] <= 0.0 && A->logw[j] >= LOGW_MIN))
            return score__error(SCORE_E_FORMAT, fn, "log_weight[%zu] = %g is not in [%g, 0]", j,
                                A->logw[j], LOGW_MIN);
        acc += exp(A->logw[j]);
        /* cumulative sums may overshoot 1 by rounding before the last one is pinned to 1 */
        if (!(A->cumw[j] >= prev - WEIGHT_TOL) || !(A->cumw[j] <= 1.0 + WEIGHT_TOL) ||
            !(fabs(A->cumw[j] - acc) <= WEIGHT_TOL))
            return score__error(SCORE_E_FORMAT, fn, "weight %zu is inconsistent (log weight %g, "
                                "cumulative %g, sum of the weights up to it %.17g)", j,
                                A->logw[j], A->cumw[j], acc);
    }
    if (!(fabs(acc - 1.0) <= WEIGHT_TOL))
        return score__error(SCORE_E_FORMAT, fn, "the weights exp(log_weight) sum to %.17g, not 1",
                            acc);
    if (A->cumw[A->k - 1] != 1.0)
        return score__error(SCORE_E_FORMAT, fn, "the cumulative weights do not end at 1");
    return SCORE_OK;
}

/* The basis Q (dim x dim, row-major, columns = eigenvectors) is orthonormal: every entry of
 * Q^T Q - I within BASIS_TOL. The Gram matrix is formed completely for dim <= 512 (at most
 * 6.7e7 multiply-adds); above, the column norms are checked exactly and the off-diagonal part
 * through (Q^T Q - I) v for 4 fixed pseudo-random vectors v (|.|_inf <= BASIS_TOL |v|_2), which
 * any damage that is not crafted to pass them shows. The variances are positive (checked
 * with the tensors), so the covariance Q diag(var) Q^T is then positive definite. */
static int check_basis(const char *fn, const analytic *A)
{
    const size_t d = A->dim;
    const double *q = A->q;
    double *g;
    if (d <= 512) {
        g = score__calloc(d * d, sizeof *g);
        if (g == NULL)
            return score__error(SCORE_E_NOMEM, fn, "allocation failed");
        for (size_t i = 0; i < d; i++) /* G += q_i^T q_i over the rows i of Q */
            for (size_t a = 0; a < d; a++) {
                const double qa = q[i * d + a];
                for (size_t b = 0; b < d; b++)
                    g[a * d + b] += qa * q[i * d + b];
            }
        for (size_t a = 0; a < d; a++)
            for (size_t b = 0; b < d; b++) {
                double e = g[a * d + b] - (a == b ? 1.0 : 0.0);
                if (!(fabs(e) <= BASIS_TOL)) {
                    double v = g[a * d + b];
                    score__free(g);
                    return score__error(SCORE_E_FORMAT, fn,
                                        "the basis is not orthonormal: column %zu . column %zu "
                                        "= %.17g (tolerance %g)", a, b, v, BASIS_TOL);
                }
            }
        score__free(g);
        return SCORE_OK;
    }
    g = score__calloc(3 * d, sizeof *g);
    if (g == NULL)
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    for (size_t a = 0; a < d; a++) {
        double s = 0.0;
        for (size_t i = 0; i < d; i++)
            s += q[i * d + a] * q[i * d + a];
        if (!(fabs(s - 1.0) <= BASIS_TOL)) {
            score__free(g);
            return score__error(SCORE_E_FORMAT, fn, "the basis is not orthonormal: column %zu "
                                "has squared norm %.17g (tolerance %g)", a, s, BASIS_TOL);
        }
    }
    for (unsigned p = 0; p < 4; p++) {
        double *v = g, *w = g + d, *u = g + 2 * d, nv = 0.0;
        uint64_t st = 0x9e3779b97f4a7c15u * (p + 1);
        for (size_t i = 0; i < d; i++) { /* xorshift64: fixed, platform-independent values */
            st ^= st << 13;
            st ^= st >> 7;
            st ^= st << 17;
            v[i] = (double)(st >> 11) / 9007199254740992.0 - 0.5;
            nv += v[i] * v[i];
        }
        for (size_t i = 0; i < d; i++) { /* w = Q v */
            double s = 0.0;
            for (size_t a = 0; a < d; a++)
                s += q[i * d + a] * v[a];
            w[i] = s;
        }
        for (size_t a = 0; a < d; a++)
            u[a] = 0.0;
        for (size_t i = 0; i < d; i++) /* u = Q^T w */
            for (size_t a = 0; a < d; a++)
                u[a] += q[i * d + a] * w[i];
        for (size_t a = 0; a < d; a++) {
            if (!(fabs(u[a] - v[a]) <= BASIS_TOL * sqrt(nv))) {
                score__free(g);
                return score__error(SCORE_E_FORMAT, fn, "the basis is not orthonormal: "
                                    "Q^T Q v differs from v by %g for a probe v", fabs(u[a] - v[a]));
            }
        }
    }
    score__free(g);
    return SCORE_OK;
}

static int an_load(score_model **out, const score__st_reader *r, int kind)
{
    static const char fn[] = "score_model_load";
    size_t dim, k;
    int full = 0, rc;
    analytic *A;
    score_schedule *sched = NULL;
    const char *cov;
    *out = NULL;
    if ((rc = meta_size(fn, r, "dim", 1, ANALYTIC_MAX_DIM, &dim)) != SCORE_OK ||
        (rc = meta_size(fn, r, "components", 1, kind == SCORE_MODEL_GAUSSIAN ? 1 : ANALYTIC_MAX_K,
                        &k)) != SCORE_OK)
        return rc;
    if (kind == SCORE_MODEL_GAUSSIAN) {
        cov = score__st_meta(r, "covariance");
        if (cov == NULL || (strcmp(cov, "full") != 0 && strcmp(cov, "diag") != 0))
            return score__error(SCORE_E_FORMAT, fn, "metadata 'covariance' is not 'full' or 'diag'");
        full = strcmp(cov, "full") == 0;
    }
    /* no tensor other than the representation's (and the schedule's array, checked with the
     * schedule): an unknown one would be silently ignored */
    for (size_t i = 0; i < score__st_count(r); i++) {
        const char *name = score__st_tensor_at(r, i)->name;
        if (strcmp(name, "mean") != 0 && strcmp(name, "var") != 0 &&
            strcmp(name, "log_weight") != 0 && strcmp(name, "cum_weight") != 0 &&
            !(full && strcmp(name, "basis") == 0) && strcmp(name, "schedule.array") != 0)
            return score__error(SCORE_E_FORMAT, fn, "unexpected tensor '%.60s' in a %s file",
                                name, kind == SCORE_MODEL_GAUSSIAN ? "gaussian" : "gmm");
    }
    A = score__analytic_alloc(dim, k, full);
    if (A == NULL)
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    {
        uint64_t kd[2] = {k, dim}, k1[1] = {k}, dd[2] = {dim, dim};
        if ((rc = get_f64(fn, r, "mean", 2, kd, A->mu, k * dim)) != SCORE_OK ||
            (rc = get_f64(fn, r, "var", 2, kd, A->lam, k * dim)) != SCORE_OK ||
            (rc = get_f64(fn, r, "log_weight", 1, k1, A->logw, k)) != SCORE_OK ||
            (rc = get_f64(fn, r, "cum_weight", 1, k1, A->cumw, k)) != SCORE_OK ||
            (full && (rc = get_f64(fn, r, "basis", 2, dd, A->q, dim * dim)) != SCORE_OK))
            goto fail;
    }
    for (size_t i = 0; i < k * dim; i++) {
        if (!(A->lam[i] > 0.0)) {
            rc = score__error(SCORE_E_FORMAT, fn, "var[%zu] = %g is not positive", i, A->lam[i]);
            goto fail;
        }
    }
    if ((rc = check_weights(fn, A)) != SCORE_OK)
        goto fail;
    if (full && (rc = check_basis(fn, A)) != SCORE_OK)
        goto fail;
    if ((rc = score__schedule_load(fn, r, "schedule", &sched)) != SCORE_OK)
        goto fail;
    A->sched = sched;
    rc = score__model_alloc(out, kind, dim,
                            kind == SCORE_MODEL_GAUSSIAN ? &score__gaussian_ops : &score__gmm_ops);
    if (rc != SCORE_OK) {
        rc = score__error(rc, fn, "allocation failed");
        goto fail;
    }
    score__analytic_attach(*out, A);
    return SCORE_OK;
fail:
    score__analytic_destroy(A);
    return rc;
}

int score__gaussian_load(score_model **out, const score__st_reader *r)
{
    return an_load(out, r, SCORE_MODEL_GAUSSIAN);
}

int score__gmm_load(score_model **out, const score__st_reader *r)
{
    return an_load(out, r, SCORE_MODEL_GMM);
}

