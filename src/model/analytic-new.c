/* Constructors of the analytic kinds (see analytic.c): the parameters are checked, a full
 * covariance is eigendecomposed (cyclic Jacobi) into the basis Q and its eigenvalues. */
#include <math.h>
#include <string.h>

#include "analytic-priv.h"

/* Cyclic Jacobi eigendecomposition of the symmetric matrix a (n x n, destroyed): eigenvalues
 * in w, eigenvectors in the columns of v. Returns 0, or -1 if it did not converge. */
static int jacobi_eig(size_t n, double *a, double *w, double *v)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            v[i * n + j] = (i == j) ? 1.0 : 0.0;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0.0, diag = 0.0;
        for (size_t i = 0; i < n; i++) {
            diag += a[i * n + i] * a[i * n + i];
            for (size_t j = i + 1; j < n; j++)
                off += a[i * n + j] * a[i * n + j];
        }
        if (off <= 1e-32 * diag || off == 0.0)
            break;
        if (sweep == 99)
            return -1;
        for (size_t p = 0; p + 1 < n; p++) {
            for (size_t q = p + 1; q < n; q++) {
                double apq = a[p * n + q], theta, t, c, s;
                if (apq == 0.0)
                    continue;
                theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                t = (theta >= 0.0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
                c = 1.0 / sqrt(t * t + 1.0);
                s = t * c;
                for (size_t k = 0; k < n; k++) { /* columns: A J */
                    double akp = a[k * n + p], akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for (size_t k = 0; k < n; k++) { /* rows: J^T (A J) */
                    double apk = a[p * n + k], aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                a[p * n + q] = a[q * n + p] = 0.0;
                for (size_t k = 0; k < n; k++) {
                    double vkp = v[k * n + p], vkq = v[k * n + q];
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        w[i] = a[i * n + i];
    return 0;
}
/* ---- constructors ------------------------------------------------------------------ */

static int check_finite_arr(const char *fn, const char *what, size_t n, const double *v,
                            int positive)
{
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(v[i]))
            return score__error(SCORE_E_RANGE, fn, "%s[%zu] = %g is not finite", what, i, v[i]);
        if (positive && !(v[i] > 0.0))
            return score__error(SCORE_E_RANGE, fn, "%s[%zu] = %g is not positive", what, i, v[i]);
    }
    return SCORE_OK;
}

/* Wraps a filled impl into a model (takes ownership of A in every case). */
static int finish(const char *fn, score_model **out, analytic *A, int kind,
                  const score_schedule *sched)
{
    int rc = score_schedule_clone(&A->sched, sched);
    if (rc == SCORE_OK)
        rc = score_schedule_prepare(A->sched);
    if (rc != SCORE_OK) {
        char msg[256];
        strncpy(msg, score_last_error_message(), sizeof msg - 1);
        msg[sizeof msg - 1] = '\0';
        score__analytic_destroy(A);
        return score__error(rc, fn, "copying or preparing the schedule failed (%s)", msg);
    }
    rc = score__model_alloc(out, kind, A->dim, kind == SCORE_MODEL_GAUSSIAN ? &score__gaussian_ops : &score__gmm_ops);
    if (rc != SCORE_OK) {
        score__analytic_destroy(A);
        return score__error(rc, fn, "allocation failed");
    }
    score__analytic_attach(*out, A);
    return SCORE_OK;
}

int score_model_new_gaussian(score_model **out, const score_schedule *sched, size_t dim,
                             const double *mean, const double *cov, const double *var_diag)
{
    analytic *A;
    int rc;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (sched == NULL || mean == NULL)
        return score__error(SCORE_E_INVAL, __func__, "sched or mean is NULL");
    if ((cov == NULL) == (var_diag == NULL))
        return score__error(SCORE_E_INVAL, __func__, "give exactly one of cov and var_diag");
    if (dim == 0 || dim > ANALYTIC_MAX_DIM)
        return score__error(SCORE_E_RANGE, __func__, "dim %zu not in [1, %d]", dim, ANALYTIC_MAX_DIM);
    if ((rc = check_finite_arr(__func__, "mean", dim, mean, 0)) != SCORE_OK)
        return rc;
    if (var_diag != NULL && (rc = check_finite_arr(__func__, "var_diag", dim, var_diag, 1)) != SCORE_OK)
        return rc;
    if (cov != NULL && (rc = check_finite_arr(__func__, "cov", dim * dim, cov, 0)) != SCORE_OK)
        return rc;
    A = score__analytic_alloc(dim, 1, cov != NULL);
    if (A == NULL)
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    A->logw[0] = 0.0;
    A->cumw[0] = 1.0;
    if (var_diag != NULL) {
        memcpy(A->mu, mean, dim * sizeof(double));
        memcpy(A->lam, var_diag, dim * sizeof(double));
    } else {
        double *a = score__calloc(dim * dim, sizeof(double));
        double dmax = 0.0, wmax = 0.0, wmin = INFINITY;
        if (a == NULL) {
            score__analytic_destroy(A);
            return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
        }
        for (size_t i = 0; i < dim; i++)
            if (fabs(cov[i * dim + i]) > dmax)
                dmax = fabs(cov[i * dim + i]);
        for (size_t i = 0; i < dim; i++) {
            for (size_t j = 0; j < dim; j++) {
                double u = cov[i * dim + j], l = cov[j * dim + i];
                if (fabs(u - l) > 1e-9 * dmax) {
                    score__free(a);
                    score__analytic_destroy(A);
                    return score__error(SCORE_E_RANGE, __func__,
                                        "cov is not symmetric: cov[%zu,%zu] = %g, cov[%zu,%zu] = %g",
                                        i, j, u, j, i, l);
                }
                a[i * dim + j] = 0.5 * (u + l);
            }
        }
        if (jacobi_eig(dim, a, A->lam, A->q) != 0) {
            score__free(a);
            score__analytic_destroy(A);
            return score__error(SCORE_E_RANGE, __func__, "eigendecomposition of cov did not converge");
        }
        score__free(a);
        for (size_t i = 0; i < dim; i++) {
            if (A->lam[i] > wmax) wmax = A->lam[i];
            if (A->lam[i] < wmin) wmin = A->lam[i];
        }
        if (!(wmax > 0.0) || !(wmin > 1e-13 * wmax)) {
            score__analytic_destroy(A);
            return score__error(SCORE_E_RANGE, __func__,
                                "cov is not positive definite (eigenvalues in [%g, %g])", wmin, wmax);
        }
        score__analytic_to_basis(A, mean, A->mu);
    }
    return finish(__func__, out, A, SCORE_MODEL_GAUSSIAN, sched);
}

int score_model_new_gmm(score_model **out, const score_schedule *sched, size_t dim, size_t k,
                        const double *weights, const double *means, const double *vars)
{
    analytic *A;
    int rc;
    double wsum = 0.0, acc = 0.0;
    size_t kd;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (sched == NULL || weights == NULL || means == NULL || vars == NULL)
        return score__error(SCORE_E_INVAL, __func__, "sched, weights, means or vars is NULL");
    if (dim == 0 || dim > ANALYTIC_MAX_DIM)
        return score__error(SCORE_E_RANGE, __func__, "dim %zu not in [1, %d]", dim, ANALYTIC_MAX_DIM);
    if (k == 0 || k > ANALYTIC_MAX_K)
        return score__error(SCORE_E_RANGE, __func__, "k %zu not in [1, %d]", k, ANALYTIC_MAX_K);
    kd = k * dim;
    if ((rc = check_finite_arr(__func__, "weights", k, weights, 1)) != SCORE_OK ||
        (rc = check_finite_arr(__func__, "means", kd, means, 0)) != SCORE_OK ||
        (rc = check_finite_arr(__func__, "vars", kd, vars, 1)) != SCORE_OK)
        return rc;
    for (size_t j = 0; j < k; j++)
        wsum += weights[j];
    if (!isfinite(wsum))
        return score__error(SCORE_E_RANGE, __func__, "the sum of the weights overflows");
    A = score__analytic_alloc(dim, k, 0);
    if (A == NULL)
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    for (size_t j = 0; j < k; j++) {
        A->logw[j] = log(weights[j]) - log(wsum);
        acc += weights[j] / wsum;
        A->cumw[j] = acc;
    }
    A->cumw[k - 1] = 1.0;
    memcpy(A->mu, means, kd * sizeof(double));
    memcpy(A->lam, vars, kd * sizeof(double));
    return finish(__func__, out, A, SCORE_MODEL_GMM, sched);
}

