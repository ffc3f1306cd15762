/* Analytic models: the exact score of Gaussian or Gaussian-mixture data noised by a schedule.
 *
 * Every component j is N(mu_j, Q diag(l_j) Q^T) with one orthonormal basis Q shared by all
 * components (the eigenvectors of a full covariance for the single-Gaussian kind, the identity
 * otherwise). At time t the noised component is N(alpha mu_j, Q diag(d_j) Q^T) with
 * d_j = alpha^2 l_j + sigma^2, so all the work happens in the basis Q with diagonal matrices:
 *
 *   y_j = Q^T x - alpha Q^T mu_j,   s_j = -y_j / d_j   (component score, in the basis),
 *   log p = logsumexp_j [log pi_j - 1/2 sum_m (y_jm^2 / d_jm + log(2 pi d_jm))],
 *   r_j = responsibilities,  s = sum_j r_j s_j,
 *   Hessian H = sum_j r_j (-diag(1/d_j) + s_j s_j^T) - s s^T
 *             = -sum_j r_j diag(1/d_j) + sum_j r_j (s_j - s)(s_j - s)^T   (no cancellation),
 *   Laplacian = -sum_j r_j sum_m 1/d_jm + sum_j r_j |s_j - s|^2.
 *
 * Everything is evaluated in double, one row at a time, in a scratch of O(k dim) doubles that
 * belongs to the caller's workspace (score__model_ws; its size does not depend on the batch):
 * the model itself is only read. */
#include <math.h>
#include <string.h>

#include <stdio.h>

#include "io/safetensors-priv.h"
#include "model-priv.h"
#include "schedule-io-priv.h"

#define ANALYTIC_MAX_DIM 4096
#define ANALYTIC_MAX_K 65536
#define LOG_2PI 1.8378770664093454835606594728112

typedef struct analytic {
    score_schedule *sched;
    size_t dim, k;
    double *q;     /* dim * dim row-major (column m = eigenvector m), or NULL = identity */
    double *mu;    /* k * dim means in the basis */
    double *lam;   /* k * dim variances in the basis */
    double *logw;  /* k normalised log weights */
    double *cumw;  /* k cumulative normalised weights (sampling) */
} analytic;

/* Scratch for one row (the kind part of a workspace), for dim and k. */
typedef struct an_scratch {
    size_t dim, k;
    double *xb;    /* dim: the point in the basis */
    double *vb;    /* dim: a tangent in the basis */
    double *hv;    /* dim */
    double *s;     /* dim: total score in the basis */
    double *sk;    /* k * dim: component scores in the basis */
    double *lt;    /* k: log terms, then responsibilities */
    double *trinv; /* k: sum_m 1 / d_jm */
} an_scratch;

static void scratch_release(an_scratch *S)
{
    score__free(S->xb);
    score__free(S->vb);
    score__free(S->hv);
    score__free(S->s);
    score__free(S->sk);
    score__free(S->lt);
    score__free(S->trinv);
    memset(S, 0, sizeof *S);
}

/* Sizes S for A (kept when it already fits); SCORE_E_NOMEM without a message. */
static int scratch_fit(an_scratch *S, const analytic *A)
{
    size_t kd;
    if (S->xb != NULL && S->dim == A->dim && S->k == A->k)
        return SCORE_OK;
    scratch_release(S);
    if (score__mul_size(A->k, A->dim, &kd) != 0)
        return SCORE_E_NOMEM;
    S->xb = score__calloc(A->dim, sizeof(double));
    S->vb = score__calloc(A->dim, sizeof(double));
    S->hv = score__calloc(A->dim, sizeof(double));
    S->s = score__calloc(A->dim, sizeof(double));
    S->sk = score__calloc(kd, sizeof(double));
    S->lt = score__calloc(A->k, sizeof(double));
    S->trinv = score__calloc(A->k, sizeof(double));
    if (!S->xb || !S->vb || !S->hv || !S->s || !S->sk || !S->lt || !S->trinv) {
        scratch_release(S);
        return SCORE_E_NOMEM;
    }
    S->dim = A->dim;
    S->k = A->k;
    return SCORE_OK;
}

static int an_ws_new(void **out)
{
    *out = score__calloc(1, sizeof(an_scratch));
    return *out ? SCORE_OK : SCORE_E_NOMEM;
}

static void an_ws_free(void *kind)
{
    if (kind != NULL)
        scratch_release(kind);
    score__free(kind);
}

/* The scratch of the workspace, sized for A. */
static int scratch_of(const char *fn, const analytic *A, score__model_ws *ws, an_scratch **out)
{
    *out = ws->kind;
    if (scratch_fit(*out, A) != SCORE_OK)
        return score__error(SCORE_E_NOMEM, fn, "workspace allocation failed");
    return SCORE_OK;
}

/* ---- small dense helpers ------------------------------------------------------------- */

/* out = Q^T in (or a copy when Q is the identity); in and out must differ. */
static void to_basis(const analytic *A, const double *in, double *out)
{
    size_t d = A->dim;
    if (A->q == NULL) {
        memcpy(out, in, d * sizeof *out);
        return;
    }
    for (size_t m = 0; m < d; m++)
        out[m] = 0.0;
    for (size_t i = 0; i < d; i++) {
        const double *qi = A->q + i * d;
        double xi = in[i];
        for (size_t m = 0; m < d; m++)
            out[m] += qi[m] * xi;
    }
}

/* out (float) = Q in. */
static void from_basis_f(const analytic *A, const double *in, float *out)
{
    size_t d = A->dim;
    for (size_t i = 0; i < d; i++) {
        double acc;
        if (A->q == NULL) {
            acc = in[i];
        } else {
            const double *qi = A->q + i * d;
            acc = 0.0;
            for (size_t m = 0; m < d; m++)
                acc += qi[m] * in[m];
        }
        out[i] = (float)acc;
    }
}

static void load_row(const float *x, size_t d, double *out)
{
    for (size_t i = 0; i < d; i++)
        out[i] = (double)x[i];
}

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

/* ---- per-row evaluation ------------------------------------------------------------ */

static int alpha_sigma(const char *fn, const analytic *A, double t, double *al, double *si)
{
    int rc;
    if (!isfinite(t))
        return score__error(SCORE_E_NUMERIC, fn, "conditioning value (time) %g is not finite", t);
    rc = score_schedule_alpha_sigma(A->sched, 1, &t, al, si);
    if (rc != SCORE_OK) {
        char msg[256]; /* the schedule's message, copied before it is overwritten */
        strncpy(msg, score_last_error_message(), sizeof msg - 1);
        msg[sizeof msg - 1] = '\0';
        return score__error(rc, fn, "time %g rejected by the schedule (%s)", t, msg);
    }
    return SCORE_OK;
}

/* Evaluates the component scores (S->sk), responsibilities (S->lt), sum of inverse variances
 * (S->trinv) and total score (S->s) at the point S->xb (in the basis); returns log p. */
static double eval_row(const analytic *A, an_scratch *S, double al, double si)
{
    size_t d = A->dim, K = A->k;
    double mx = -INFINITY, sum = 0.0, lse;
    double s2 = si * si, a2 = al * al;
    for (size_t j = 0; j < K; j++) {
        const double *mu = A->mu + j * d, *l = A->lam + j * d;
        double *sj = S->sk + j * d;
        double q = 0.0, ld = 0.0, ti = 0.0;
        for (size_t m = 0; m < d; m++) {
            double dm = a2 * l[m] + s2;
            double y = S->xb[m] - al * mu[m];
            double inv = 1.0 / dm;
            sj[m] = -y * inv;
            q += y * y * inv;
            ld += log(dm);
            ti += inv;
        }
        S->trinv[j] = ti;
        S->lt[j] = A->logw[j] - 0.5 * (q + ld + (double)d * LOG_2PI);
        if (S->lt[j] > mx)
            mx = S->lt[j];
    }
    for (size_t j = 0; j < K; j++)
        sum += exp(S->lt[j] - mx);
    lse = mx + log(sum);
    for (size_t m = 0; m < d; m++)
        S->s[m] = 0.0;
    for (size_t j = 0; j < K; j++) {
        double r = exp(S->lt[j] - lse);
        const double *sj = S->sk + j * d;
        S->lt[j] = r;
        if (r == 0.0)
            continue;
        for (size_t m = 0; m < d; m++)
            S->s[m] += r * sj[m];
    }
    return lse;
}

/* hv = H vb in the basis, after eval_row (needs al, si for the diagonal part). */
static void hess_vec(const analytic *A, const an_scratch *S, double al, double si,
                     const double *vb, double *hv)
{
    size_t d = A->dim, K = A->k;
    double s2 = si * si, a2 = al * al;
    for (size_t m = 0; m < d; m++)
        hv[m] = 0.0;
    for (size_t j = 0; j < K; j++) {
        double r = S->lt[j], dot = 0.0;
        const double *l = A->lam + j * d, *sj = S->sk + j * d;
        if (r == 0.0)
            continue;
        if (K > 1)
            for (size_t m = 0; m < d; m++)
                dot += (sj[m] - S->s[m]) * vb[m];
        for (size_t m = 0; m < d; m++) {
            double c = -vb[m] / (a2 * l[m] + s2);
            if (K > 1)
                c += (sj[m] - S->s[m]) * dot;
            hv[m] += r * c;
        }
    }
}

static double laplacian(const analytic *A, const an_scratch *S)
{
    size_t d = A->dim, K = A->k;
    double tr = 0.0;
    for (size_t j = 0; j < K; j++) {
        double r = S->lt[j], sq = 0.0;
        const double *sj = S->sk + j * d;
        if (r == 0.0)
            continue;
        if (K > 1)
            for (size_t m = 0; m < d; m++) {
                double e = sj[m] - S->s[m];
                sq += e * e;
            }
        tr += r * (sq - S->trinv[j]);
    }
    return tr;
}

/* ---- ops --------------------------------------------------------------------------- */

/* alpha, sigma at time t and the score of row xr (S->xb, S->s, as eval_row() leaves them). */
static int score_at_row(const analytic *A, an_scratch *S, const char *fn, const float *xr,
                        double t, double *al, double *si)
{
    int rc = alpha_sigma(fn, A, t, al, si);
    if (rc != SCORE_OK)
        return rc;
    load_row(xr, A->dim, S->hv);
    to_basis(A, S->hv, S->xb);
    (void)eval_row(A, S, *al, *si);
    return SCORE_OK;
}

static int an_forward(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                      const double *c, float *out)
{
    const analytic *A = m->impl;
    size_t d = A->dim;
    an_scratch *S;
    int rc = scratch_of("score_model_forward", A, ws, &S);
    if (rc != SCORE_OK)
        return rc;
    for (size_t b = 0; b < n; b++) {
        double al, si;
        rc = score_at_row(A, S, "score_model_forward", x + b * d, c[b], &al, &si);
        if (rc != SCORE_OK)
            return rc;
        from_basis_f(A, S->s, out + b * d);
    }
    return SCORE_OK;
}

static int an_jvp(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                  const double *c, size_t k, const float *v, float *out, float *fx)
{
    const analytic *A = m->impl;
    size_t d = A->dim;
    an_scratch *S;
    int rc = scratch_of("score_model_jvp", A, ws, &S);
    if (rc != SCORE_OK)
        return rc;
    for (size_t b = 0; b < n; b++) {
        double al, si;
        rc = score_at_row(A, S, "score_model_jvp", x + b * d, c[b], &al, &si);
        if (rc != SCORE_OK)
            return rc;
        if (fx != NULL)
            from_basis_f(A, S->s, fx + b * d);
        for (size_t p = 0; p < k; p++) {
            const float *vp = v + (b * k + p) * d;
            load_row(vp, d, S->hv);
            to_basis(A, S->hv, S->vb);
            hess_vec(A, S, al, si, S->vb, S->hv);
            from_basis_f(A, S->hv, out + (b * k + p) * d);
        }
    }
    return SCORE_OK;
}

/* The Jacobian of a score is the (symmetric) Hessian of log p_t. */
static int an_vjp(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                  const double *c, size_t k, const float *u, float *out)
{
    return an_jvp(m, ws, n, x, c, k, u, out, NULL);
}

static int an_trace(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                    const double *c, double *tr, float *fx)
{
    const analytic *A = m->impl;
    size_t d = A->dim;
    an_scratch *S;
    int rc = scratch_of("score_model_trace", A, ws, &S);
    if (rc != SCORE_OK)
        return rc;
    for (size_t b = 0; b < n; b++) {
        double al, si;
        rc = score_at_row(A, S, "score_model_trace", x + b * d, c[b], &al, &si);
        if (rc != SCORE_OK)
            return rc;
        tr[b] = laplacian(A, S);
        if (fx != NULL)
            from_basis_f(A, S->s, fx + b * d);
    }
    return SCORE_OK;
}

static void analytic_destroy(analytic *A)
{
    if (A == NULL)
        return;
    score_schedule_free(A->sched);
    score__free(A->q);
    score__free(A->mu);
    score__free(A->lam);
    score__free(A->logw);
    score__free(A->cumw);
    score__free(A);
}

static void an_destroy_impl(score_model *m)
{
    analytic_destroy(m->impl);
    m->impl = NULL;
}

/* Allocates an analytic impl with its arrays (q only when full). */
static analytic *analytic_alloc(size_t dim, size_t k, int full)
{
    analytic *A = score__calloc(1, sizeof *A);
    size_t kd;
    if (A == NULL || score__mul_size(k, dim, &kd) != 0) {
        score__free(A);
        return NULL;
    }
    A->dim = dim;
    A->k = k;
    A->mu = score__calloc(kd, sizeof(double));
    A->lam = score__calloc(kd, sizeof(double));
    A->logw = score__calloc(k, sizeof(double));
    A->cumw = score__calloc(k, sizeof(double));
    if (full)
        A->q = score__calloc(dim * dim, sizeof(double));
    if (!A->mu || !A->lam || !A->logw || !A->cumw || (full && !A->q)) {
        analytic_destroy(A);
        return NULL;
    }
    return A;
}

static int an_clone_impl(score_model *dst, const score_model *src)
{
    const analytic *S = src->impl;
    analytic *A = analytic_alloc(S->dim, S->k, S->q != NULL);
    int rc;
    if (A == NULL)
        return SCORE_E_NOMEM;
    rc = score_schedule_clone(&A->sched, S->sched);
    if (rc != SCORE_OK) {
        analytic_destroy(A);
        return rc;
    }
    if (S->q)
        memcpy(A->q, S->q, S->dim * S->dim * sizeof(double));
    memcpy(A->mu, S->mu, S->k * S->dim * sizeof(double));
    memcpy(A->lam, S->lam, S->k * S->dim * sizeof(double));
    memcpy(A->logw, S->logw, S->k * sizeof(double));
    memcpy(A->cumw, S->cumw, S->k * sizeof(double));
    dst->impl = A;
    return SCORE_OK;
}

static int an_save(const score_model *m, score__st_writer *w);
static int gaussian_load(score_model **out, const score__st_reader *r);
static int gmm_load(score_model **out, const score__st_reader *r);

const score__model_ops score__gaussian_ops = {
    .name = "gaussian",
    .forward = an_forward,
    .jvp = an_jvp,
    .vjp = an_vjp,
    .trace = an_trace,
    .ws_new = an_ws_new,
    .ws_free = an_ws_free,
    .clone_impl = an_clone_impl,
    .destroy_impl = an_destroy_impl,
    .save = an_save,
    .load = gaussian_load,
};

const score__model_ops score__gmm_ops = {
    .name = "gmm",
    .forward = an_forward,
    .jvp = an_jvp,
    .vjp = an_vjp,
    .trace = an_trace,
    .ws_new = an_ws_new,
    .ws_free = an_ws_free,
    .clone_impl = an_clone_impl,
    .destroy_impl = an_destroy_impl,
    .save = an_save,
    .load = gmm_load,
};

/* ---- model files --------------------------------------------------------------------
 * Metadata "dim", "components" (k), "covariance" ("diag" or "full", Gaussian only) and the
 * schedule under "schedule.*" (schedule-io-priv.h); F64 tensors of the internal representation
 * (so that a loaded model computes bit for bit what the saved one did): "mean" [k, dim] and
 * "var" [k, dim] (means and variances in the basis), "log_weight" [k], "cum_weight" [k], and
 * for a full covariance "basis" [dim, dim] (row-major, column m = eigenvector m). */

static int an_save(const score_model *m, score__st_writer *w)
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
    A = analytic_alloc(dim, k, full);
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
    (*out)->impl = A;
    (*out)->prepared = 1;
    return SCORE_OK;
fail:
    analytic_destroy(A);
    return rc;
}

static int gaussian_load(score_model **out, const score__st_reader *r)
{
    return an_load(out, r, SCORE_MODEL_GAUSSIAN);
}

static int gmm_load(score_model **out, const score__st_reader *r)
{
    return an_load(out, r, SCORE_MODEL_GMM);
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
        analytic_destroy(A);
        return score__error(rc, fn, "copying or preparing the schedule failed (%s)", msg);
    }
    rc = score__model_alloc(out, kind, A->dim, kind == SCORE_MODEL_GAUSSIAN ? &score__gaussian_ops : &score__gmm_ops);
    if (rc != SCORE_OK) {
        analytic_destroy(A);
        return score__error(rc, fn, "allocation failed");
    }
    (*out)->impl = A;
    (*out)->prepared = 1;
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
    A = analytic_alloc(dim, 1, cov != NULL);
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
            analytic_destroy(A);
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
                    analytic_destroy(A);
                    return score__error(SCORE_E_RANGE, __func__,
                                        "cov is not symmetric: cov[%zu,%zu] = %g, cov[%zu,%zu] = %g",
                                        i, j, u, j, i, l);
                }
                a[i * dim + j] = 0.5 * (u + l);
            }
        }
        if (jacobi_eig(dim, a, A->lam, A->q) != 0) {
            score__free(a);
            analytic_destroy(A);
            return score__error(SCORE_E_RANGE, __func__, "eigendecomposition of cov did not converge");
        }
        score__free(a);
        for (size_t i = 0; i < dim; i++) {
            if (A->lam[i] > wmax) wmax = A->lam[i];
            if (A->lam[i] < wmin) wmin = A->lam[i];
        }
        if (!(wmax > 0.0) || !(wmin > 1e-13 * wmax)) {
            analytic_destroy(A);
            return score__error(SCORE_E_RANGE, __func__,
                                "cov is not positive definite (eigenvalues in [%g, %g])", wmin, wmax);
        }
        to_basis(A, mean, A->mu);
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
    A = analytic_alloc(dim, k, 0);
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

/* ---- extra functions --------------------------------------------------------------- */

static int get_analytic(const char *fn, score_model *m, analytic **out)
{
    if (m == NULL)
        return score__error(SCORE_E_INVAL, fn, "model is NULL");
    if (m->kind != SCORE_MODEL_GAUSSIAN && m->kind != SCORE_MODEL_GMM)
        return score__error(SCORE_E_UNSUPPORTED, fn, "%s models are not analytic", m->ops->name);
    *out = m->impl;
    return SCORE_OK;
}

/* The extra functions below are read-only like the compute calls: their scratch is their own
 * (made and freed by each call). */
static int local_scratch(const char *fn, const analytic *A, an_scratch *S)
{
    memset(S, 0, sizeof *S);
    if (scratch_fit(S, A) != SCORE_OK)
        return score__error(SCORE_E_NOMEM, fn, "workspace allocation failed");
    return SCORE_OK;
}

int score_model_analytic_logp(score_model *model, size_t n, const double *t, const float *x,
                              double *out)
{
    analytic *A = NULL;
    an_scratch S;
    int rc = get_analytic(__func__, model, &A);
    if (rc != SCORE_OK)
        return rc;
    if (n > 0 && (t == NULL || x == NULL || out == NULL))
        return score__error(SCORE_E_INVAL, __func__, "t, x or out is NULL");
    if (n > SIZE_MAX / A->dim)
        return score__error(SCORE_E_RANGE, __func__, "batch of %zu rows is too large", n);
    if (n == 0)
        return SCORE_OK;
    if ((rc = local_scratch(__func__, A, &S)) != SCORE_OK)
        return rc;
    for (size_t b = 0; b < n; b++) {
        double al, si;
        if ((rc = alpha_sigma(__func__, A, t[b], &al, &si)) != SCORE_OK)
            break;
        load_row(x + b * A->dim, A->dim, S.hv);
        to_basis(A, S.hv, S.xb);
        out[b] = eval_row(A, &S, al, si);
    }
    scratch_release(&S);
    return rc;
}

int score_model_analytic_sample(score_model *model, const score_rng *rng, double t, size_t n,
                                float *out)
{
    analytic *A = NULL;
    an_scratch S;
    double al, si;
    size_t d, ucol;
    int rc = get_analytic(__func__, model, &A);
    if (rc != SCORE_OK)
        return rc;
    if (rng == NULL || (n > 0 && out == NULL))
        return score__error(SCORE_E_INVAL, __func__, "rng or out is NULL");
    if ((uint64_t)n > ((uint64_t)1 << 32))
        return score__error(SCORE_E_RANGE, __func__, "n %zu exceeds 2^32 rows", n);
    if ((rc = alpha_sigma(__func__, A, t, &al, &si)) != SCORE_OK)
        return rc;
    if (n == 0)
        return SCORE_OK;
    if ((rc = local_scratch(__func__, A, &S)) != SCORE_OK)
        return rc;
    d = A->dim;
    ucol = (d + 3) / 4 * 4; /* a Philox block of its own */
    for (size_t b = 0; b < n; b++) {
        size_t j = 0;
        const double *mu, *l;
        if ((rc = score_rng_fill_normal_f64(rng, b, 1, 0, d, S.vb)) != SCORE_OK)
            break;
        if (A->k > 1) {
            double u;
            size_t lo = 0, hi = A->k - 1;
            if ((rc = score_rng_fill_uniform_f64(rng, b, 1, ucol, 1, &u)) != SCORE_OK)
                break;
            while (lo < hi) { /* first j with cumw[j] >= u */
                size_t mid = lo + (hi - lo) / 2;
                if (A->cumw[mid] >= u)
                    hi = mid;
                else
                    lo = mid + 1;
            }
            j = lo;
        }
        mu = A->mu + j * d;
        l = A->lam + j * d;
        for (size_t m = 0; m < d; m++)
            S.xb[m] = al * mu[m] + sqrt(al * al * l[m] + si * si) * S.vb[m];
        from_basis_f(A, S.xb, out + b * d);
    }
    scratch_release(&S);
    return rc;
}

int score_model_analytic_pf_map(score_model *model, double t_from, double t_to, size_t n,
                                const float *x, float *out)
{
    analytic *A = NULL;
    an_scratch S;
    double a0, s0, a1, s1;
    size_t d;
    int rc = get_analytic(__func__, model, &A);
    if (rc != SCORE_OK)
        return rc;
    if (model->kind != SCORE_MODEL_GAUSSIAN)
        return score__error(SCORE_E_UNSUPPORTED, __func__,
                            "the probability-flow map has a closed form for a single Gaussian only");
    if (n > 0 && (x == NULL || out == NULL))
        return score__error(SCORE_E_INVAL, __func__, "x or out is NULL");
    if (n > SIZE_MAX / A->dim)
        return score__error(SCORE_E_RANGE, __func__, "batch of %zu rows is too large", n);
    if ((rc = alpha_sigma(__func__, A, t_from, &a0, &s0)) != SCORE_OK ||
        (rc = alpha_sigma(__func__, A, t_to, &a1, &s1)) != SCORE_OK)
        return rc;
    if (n == 0)
        return SCORE_OK;
    if ((rc = local_scratch(__func__, A, &S)) != SCORE_OK)
        return rc;
    d = A->dim;
    for (size_t b = 0; b < n; b++) {
        load_row(x + b * d, d, S.hv);
        to_basis(A, S.hv, S.xb);
        for (size_t m = 0; m < d; m++) {
            double l = A->lam[m];
            double r = sqrt((a1 * a1 * l + s1 * s1) / (a0 * a0 * l + s0 * s0));
            S.xb[m] = a1 * A->mu[m] + r * (S.xb[m] - a0 * A->mu[m]);
        }
        from_basis_f(A, S.xb, out + b * d);
    }
    scratch_release(&S);
    return SCORE_OK;
}
