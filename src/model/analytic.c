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
 * Labels: a GMM of k <= 65535 components takes labels (SCORE_MODEL_PARAM_NUM_CLASSES = k,
 * fixed by the mixture, not settable): a row with label y in 0..k-1 gets the exact score of
 * component y alone, N(alpha mu_y, Q diag(d_y) Q^T) (the class-conditional density p_t(x | y)),
 * and the null label k, or no labels, the whole mixture. Every operation honours the labels.
 *
 * Everything is evaluated in double, one row at a time, in a scratch of O(k dim) doubles that
 * belongs to the caller's workspace (score__model_ws; its size does not depend on the batch):
 *
 * This file holds the per-row evaluation, the compute operations, the lifecycle and the
 * extra functions (log density, sampling, probability-flow map); analytic-new.c the
 * constructors (with the eigendecomposition of a full covariance) and analytic-io.c the
 * model files. */
#include <math.h>
#include <string.h>

#include "analytic-priv.h"

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
void score__analytic_to_basis(const analytic *A, const double *in, double *out)
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

/* Component i of Q in. */
static double from_basis_at(const analytic *A, const double *in, size_t i)
{
    size_t d = A->dim;
    const double *qi;
    double acc = 0.0;
    if (A->q == NULL)
        return in[i];
    qi = A->q + i * d;
    for (size_t m = 0; m < d; m++)
        acc += qi[m] * in[m];
    return acc;
}

/* out (float) = Q in. */
static void from_basis_f(const analytic *A, const double *in, float *out)
{
    for (size_t i = 0; i < A->dim; i++)
        out[i] = (float)from_basis_at(A, in, i);
}

static void load_row(const float *x, size_t d, double *out)
{
    for (size_t i = 0; i < d; i++)
        out[i] = (double)x[i];
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
 * (S->trinv) and total score (S->s) at the point S->xb (in the basis); returns log p. With
 * only < k, the density is that of component `only` alone (its label), the class-conditional
 * p_t(x | y) without the mixture weight w_y: the other components get log term -inf, hence
 * responsibility 0 (skipped by hess_vec() and laplacian()), and the component's own
 * responsibility is exactly 1, so s is its score bit for bit. */
static double eval_row(const analytic *A, an_scratch *S, double al, double si, size_t only)
{
    size_t d = A->dim, K = A->k;
    double mx = -INFINITY, sum = 0.0, lse;
    double s2 = si * si, a2 = al * al;
    for (size_t j = 0; j < K; j++) {
        const double *mu = A->mu + j * d, *l = A->lam + j * d;
        double *sj = S->sk + j * d;
        double q = 0.0, ld = 0.0, ti = 0.0;
        if (only < K && j != only) {
            S->lt[j] = -INFINITY;
            continue;
        }
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
        S->lt[j] = (only < K ? 0.0 : A->logw[j]) - 0.5 * (q + ld + (double)d * LOG_2PI);
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

/* The component row b is conditioned on: its label y (ws->labels, validated by the caller in
 * 0..K) when the model takes labels (a GMM: SCORE_MODEL_PARAM_NUM_CLASSES = k), else k (the
 * null label: the whole mixture). */
static size_t row_component(const score_model *m, const score__model_ws *ws, size_t b)
{
    const analytic *A = m->impl;
    int32_t y;
    if (ws->labels == NULL || score__model_i64(m, SCORE_MODEL_PARAM_NUM_CLASSES) == 0)
        return A->k;
    y = ws->labels[ws->labels_per_row ? b : 0];
    return (y >= 0 && (size_t)y < A->k) ? (size_t)y : A->k;
}

/* alpha, sigma at time t and the score of row b of x (S->xb, S->s, as eval_row() leaves
 * them) under the row's label. */
static int score_at_row(const score_model *m, const score__model_ws *ws, an_scratch *S,
                        const char *fn, const float *x, size_t b, double t, double *al,
                        double *si)
{
    const analytic *A = m->impl;
    int rc = alpha_sigma(fn, A, t, al, si);
    if (rc != SCORE_OK)
        return rc;
    load_row(x + b * A->dim, A->dim, S->hv);
    score__analytic_to_basis(A, S->hv, S->xb);
    (void)eval_row(A, S, *al, *si, row_component(m, ws, b));
    return SCORE_OK;
}

/* Evaluates the score of every row (score_at_row()) and hands each to per_row(), which writes
 * what its op returns: the one loop of forward, jvp/vjp and trace. */
typedef void (*an_row_fn)(const analytic *A, an_scratch *S, double al, double si, size_t b,
                          void *ctx);

static int each_row(const score_model *m, score__model_ws *ws, const char *fn, size_t n,
                    const float *x, const double *c, an_row_fn per_row, void *ctx)
{
    an_scratch *S;
    int rc = scratch_of(fn, m->impl, ws, &S);
    if (rc != SCORE_OK)
        return rc;
    for (size_t b = 0; b < n; b++) {
        double al, si;
        rc = score_at_row(m, ws, S, fn, x, b, c[b], &al, &si);
        if (rc != SCORE_OK)
            return rc;
        per_row(m->impl, S, al, si, b, ctx);
    }
    return SCORE_OK;
}

static void row_forward(const analytic *A, an_scratch *S, double al, double si, size_t b,
                        void *ctx)
{
    (void)al;
    (void)si;
    from_basis_f(A, S->s, (float *)ctx + b * A->dim);
}

static int an_forward(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                      const double *c, float *out)
{
    return each_row(m, ws, "score_model_forward", n, x, c, row_forward, out);
}

/* The double-precision forward (samplers with double state): the same per-row evaluation from
 * the unrounded point, the score written in double. */
static int an_infer_f64(const score_model *m, score__model_ws *ws, size_t n, const double *x,
                        const double *c, double *out)
{
    static const char fn[] = "score_model_forward";
    const analytic *A = m->impl;
    size_t d = A->dim;
    an_scratch *S;
    int rc = scratch_of(fn, A, ws, &S);
    if (rc != SCORE_OK)
        return rc;
    for (size_t b = 0; b < n; b++) {
        double al, si;
        rc = alpha_sigma(fn, A, c[b], &al, &si);
        if (rc != SCORE_OK)
            return rc;
        score__analytic_to_basis(A, x + b * d, S->xb);
        (void)eval_row(A, S, al, si, row_component(m, ws, b));
        for (size_t i = 0; i < d; i++)
            out[b * d + i] = from_basis_at(A, S->s, i);
    }
    return SCORE_OK;
}

typedef struct {
    size_t k;
    const float *v;
    float *out, *fx;
} an_jvp_ctx;

static void row_jvp(const analytic *A, an_scratch *S, double al, double si, size_t b, void *ctx)
{
    const an_jvp_ctx *J = ctx;
    size_t d = A->dim;
    if (J->fx != NULL)
        from_basis_f(A, S->s, J->fx + b * d);
    for (size_t p = 0; p < J->k; p++) {
        load_row(J->v + (b * J->k + p) * d, d, S->hv);
        score__analytic_to_basis(A, S->hv, S->vb);
        hess_vec(A, S, al, si, S->vb, S->hv);
        from_basis_f(A, S->hv, J->out + (b * J->k + p) * d);
    }
}

static int an_jvp(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                  const double *c, size_t k, const float *v, float *out, float *fx)
{
    an_jvp_ctx J = {k, v, out, fx};
    return each_row(m, ws, "score_model_jvp", n, x, c, row_jvp, &J);
}

/* The Jacobian of a score is the (symmetric) Hessian of log p_t. */
static int an_vjp(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                  const double *c, size_t k, const float *u, float *out)
{
    return an_jvp(m, ws, n, x, c, k, u, out, NULL);
}

typedef struct {
    double *tr;
    float *fx;
} an_trace_ctx;

static void row_trace(const analytic *A, an_scratch *S, double al, double si, size_t b,
                      void *ctx)
{
    const an_trace_ctx *T = ctx;
    (void)al;
    (void)si;
    T->tr[b] = laplacian(A, S);
    if (T->fx != NULL)
        from_basis_f(A, S->s, T->fx + b * A->dim);
}

static int an_trace(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                    const double *c, double *tr, float *fx)
{
    an_trace_ctx T = {tr, fx};
    return each_row(m, ws, "score_model_trace", n, x, c, row_trace, &T);
}

void score__analytic_destroy(analytic *A)
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
    score__analytic_destroy(m->impl);
    m->impl = NULL;
}

/* Allocates an analytic impl with its arrays (q only when full). */
analytic *score__analytic_alloc(size_t dim, size_t k, int full)
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
        score__analytic_destroy(A);
        return NULL;
    }
    return A;
}

void score__analytic_attach(score_model *m, analytic *A)
{
    size_t np;
    const score__param_desc *tab = score__model_param_table(&np);
    m->impl = A;
    m->prepared = 1;
    if (m->kind == SCORE_MODEL_GMM && A->k <= ANALYTIC_MAX_CLASSES)
        m->params[score__param_index(tab, np, SCORE_MODEL_PARAM_NUM_CLASSES)].i = (int64_t)A->k;
}

static int an_clone_impl(score_model *dst, const score_model *src)
{
    const analytic *S = src->impl;
    analytic *A = score__analytic_alloc(S->dim, S->k, S->q != NULL);
    int rc;
    if (A == NULL)
        return SCORE_E_NOMEM;
    rc = score_schedule_clone(&A->sched, S->sched);
    if (rc != SCORE_OK) {
        score__analytic_destroy(A);
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

/* The energy -log p_t(x) (the row's component alone under a label), with its normalising
 * constant: the exact negative log-density. */
static int an_energy(const score_model *m, score__model_ws *ws, size_t n, const float *x,
                     const double *c, double *E)
{
    static const char fn[] = "score_model_energy";
    const analytic *A = m->impl;
    an_scratch *S;
    int rc = scratch_of(fn, A, ws, &S);
    for (size_t b = 0; rc == SCORE_OK && b < n; b++) {
        double al, si;
        if ((rc = alpha_sigma(fn, A, c[b], &al, &si)) != SCORE_OK)
            break;
        load_row(x + b * A->dim, A->dim, S->hv);
        score__analytic_to_basis(A, S->hv, S->xb);
        E[b] = -eval_row(A, S, al, si, row_component(m, ws, b));
    }
    return rc;
}

const score__model_ops score__gaussian_ops = {
    .name = "gaussian",
    .forward = an_forward,
    .infer_f64 = an_infer_f64,
    .jvp = an_jvp,
    .vjp = an_vjp,
    .trace = an_trace,
    .energy = an_energy,
    .ws_new = an_ws_new,
    .ws_free = an_ws_free,
    .clone_impl = an_clone_impl,
    .destroy_impl = an_destroy_impl,
    .save = score__analytic_save,
    .load = score__gaussian_load,
};

const score__model_ops score__gmm_ops = {
    .name = "gmm",
    .forward = an_forward,
    .infer_f64 = an_infer_f64,
    .jvp = an_jvp,
    .vjp = an_vjp,
    .trace = an_trace,
    .energy = an_energy,
    .ws_new = an_ws_new,
    .ws_free = an_ws_free,
    .clone_impl = an_clone_impl,
    .destroy_impl = an_destroy_impl,
    .save = score__analytic_save,
    .load = score__gmm_load,
};

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
        score__analytic_to_basis(A, S.hv, S.xb);
        out[b] = eval_row(A, &S, al, si, A->k);
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
        score__analytic_to_basis(A, S.hv, S.xb);
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
