/* Energy-based models (energy.h): the energy MLP's score = -grad_x E, its Hessian-vector
 * products, exact Laplacian and double-back-propagated parameter gradients against finite
 * differences of the energy / score; the gradients of the losses through it; save / load and
 * clone bit for bit; the analytic models' exact energies and the energies of sums. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers/test-helpers.h"

/* Finite differences of the float32 network: Richardson-extrapolated central differences with
 * steps h and h/2 (the step actually taken after rounding to float), truncation O(h^4), round-off
 * ~ eps_f32 |f| / h ~ 1e-5 |f| for h = 1e-2. A wrong term (a missing phi'' or residual path, a
 * sign) gives errors of 1e-2 .. 1 of the largest component. */
#define TOL_FD_REL 1e-3

enum { N = 7, D = 3 };

static score_rng *new_rng(uint64_t seed)
{
    score_rng *r;
    ck_assert_ok(score_rng_new(&r, SCORE_RNG_PHILOX4X32_10, seed));
    return r;
}

static float *normal_data(size_t n, size_t dim, uint64_t seed, double scale)
{
    float *x = malloc(n * dim * sizeof *x);
    score_rng *r = new_rng(seed);
    ck_assert_ok(score_rng_fill_normal(r, 0, n, 0, dim, x));
    for (size_t i = 0; i < n * dim; i++)
        x[i] = (float)(scale * x[i]);
    score_rng_free(r);
    return x;
}

/* An energy MLP of the given width and depth (residual hidden blocks when residual = 1). */
static score_model *energy_net(size_t dim, size_t hidden, size_t depth, int act, int residual,
                               uint64_t seed)
{
    score_model *m;
    ck_assert_ok(score_model_new_energy(&m, dim));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_HIDDEN, (int64_t)hidden));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_DEPTH, (int64_t)depth));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_ACTIVATION, act));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_RESIDUAL, residual));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_SEED, (int64_t)seed));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_EMBED_DIM, 4));
    ck_assert_ok(score_model_set_f64(m, SCORE_MODEL_PARAM_FOURIER_SCALE, 1.0));
    ck_assert_ok(score_model_prepare(m));
    return m;
}

/* A small energy MLP: widths 8, 8 (residual second block when residual = 1). */
static score_model *tiny_energy(size_t dim, int act, int residual, uint64_t seed)
{
    return energy_net(dim, 8, 2, act, residual, seed);
}

static double max_abs(size_t n, const float *a)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)a[i]));
    return m;
}

/* f(x + s v) for the row functions below: E of one row, or a component of a score. */
typedef double (*row_fn)(score_model *m, const float *x, double c, void *ctx);

static double energy_row(score_model *m, const float *x, double c, void *ctx)
{
    double e;
    (void)ctx;
    ck_assert_ok(score_model_energy(m, 1, x, &c, &e));
    return e;
}

typedef struct {
    const float *w; /* weights of the score's components */
} dot_ctx;

static double score_dot(score_model *m, const float *x, double c, void *ctx)
{
    const dot_ctx *d = ctx;
    size_t dim = score_model_dim(m);
    float s[16];
    double acc = 0.0;
    ck_assert_ok(score_model_forward(m, 1, x, &c, s));
    for (size_t j = 0; j < dim; j++)
        acc += (double)d->w[j] * (double)s[j];
    return acc;
}

/* Richardson-extrapolated directional derivative of f at row x in direction v. */
static double fd_dir(score_model *m, row_fn f, void *ctx, const float *x, double c, const float *v)
{
    size_t dim = score_model_dim(m);
    float xp[16], xm[16];
    double fd[2];
    for (int s = 0; s < 2; s++) {
        double h = s == 0 ? 1e-2 : 5e-3, span;
        size_t big = 0;
        for (size_t j = 0; j < dim; j++) {
            xp[j] = (float)((double)x[j] + h * (double)v[j]);
            xm[j] = (float)((double)x[j] - h * (double)v[j]);
            if (fabs((double)v[j]) > fabs((double)v[big]))
                big = j;
        }
        /* the step actually taken, along the largest coordinate of v (least rounding) */
        span = ((double)xp[big] - (double)xm[big]) / (double)v[big];
        fd[s] = (f(m, xp, c, ctx) - f(m, xm, c, ctx)) / span;
    }
    return (4.0 * fd[1] - fd[0]) / 3.0;
}

START_TEST(score_is_minus_grad_energy)
{
    const int acts[] = {SCORE_ACT_SILU, SCORE_ACT_TANH, SCORE_ACT_GELU, SCORE_ACT_SOFTPLUS,
                        SCORE_ACT_ELU};
    score_model *m = tiny_energy(D, acts[_i % 5], _i % 2, 11 + (uint64_t)_i);
    float *x = normal_data(N, D, 5, 1.0), s[N * D];
    double c[N], err = 0.0;
    for (size_t b = 0; b < N; b++)
        c[b] = 0.1 * (double)b;
    ck_assert_int_eq(score_model_kind(m), SCORE_MODEL_ENERGY);
    ck_assert_int_eq(score_model_has_energy(m), 1);
    ck_assert_ok(score_model_forward(m, N, x, c, s));
    for (size_t b = 0; b < N; b++)
        for (size_t j = 0; j < D; j++) {
            float e[D] = {0};
            e[j] = 1.0f;
            err = fmax(err, fabs(-fd_dir(m, energy_row, NULL, x + b * D, c[b], e) - s[b * D + j]));
        }
    printf("score vs -grad E (act %d, residual %d): max error %.2e of %.2e\n", acts[_i % 5],
           _i % 2, err, max_abs(N * D, s));
    ck_assert_double_le(err, TOL_FD_REL * max_abs(N * D, s));
    free(x);
    score_model_free(m);
}
END_TEST

/* JVP = VJP = -H v against differences of the score; the trace against the sum of the
 * diagonal of the JVPs with unit vectors and against differences. */
START_TEST(hessian_products_and_laplacian)
{
    score_model *m = tiny_energy(D, _i == 0 ? SCORE_ACT_SILU : SCORE_ACT_TANH, _i, 21);
    float *x = normal_data(N, D, 6, 1.0), *v = normal_data(N, D, 7, 1.0);
    float jv[N * D], vj[N * D], fx[N * D], s[N * D], unit[N * D];
    double c[N], tr[N], err = 0.0, terr = 0.0;
    for (size_t b = 0; b < N; b++)
        c[b] = 0.05 + 0.1 * (double)b;
    ck_assert_ok(score_model_jvp(m, N, x, c, 1, v, jv, fx));
    ck_assert_ok(score_model_vjp(m, N, x, c, 1, v, vj));
    ck_assert_ok(score_model_forward(m, N, x, c, s));
    ck_assert_int_eq(memcmp(fx, s, sizeof s), 0);
    ck_assert_int_eq(memcmp(jv, vj, sizeof jv), 0);
    for (size_t b = 0; b < N; b++)
        for (size_t j = 0; j < D; j++) {
            float w[D] = {0};
            dot_ctx d = {w};
            w[j] = 1.0f;
            err = fmax(err, fabs(fd_dir(m, score_dot, &d, x + b * D, c[b], v + b * D) -
                                 jv[b * D + j]));
        }
    printf("JVP vs differences of the score: max error %.2e of %.2e\n", err, max_abs(N * D, jv));
    ck_assert_double_le(err, TOL_FD_REL * max_abs(N * D, jv));
    ck_assert_ok(score_model_trace(m, N, x, c, tr, NULL));
    for (size_t b = 0; b < N; b++) {
        double sum = 0.0, fsum = 0.0;
        for (size_t j = 0; j < D; j++) {
            float e[D] = {0}, w[D] = {0};
            dot_ctx d = {w};
            e[j] = 1.0f;
            w[j] = 1.0f;
            memset(unit, 0, sizeof unit);
            for (size_t r = 0; r < N; r++)
                unit[r * D + j] = 1.0f;
            ck_assert_ok(score_model_jvp(m, N, x, c, 1, unit, jv, NULL));
            sum += (double)jv[b * D + j];
            fsum += fd_dir(m, score_dot, &d, x + b * D, c[b], e);
        }
        /* the trace is the sum of the same Hessian-vector products, in double */
        ck_assert_double_le(fabs(sum - tr[b]), 1e-6 * fmax(1.0, fabs(tr[b])));
        terr = fmax(terr, fabs(fsum - tr[b]) / fmax(1.0, fabs(tr[b])));
    }
    printf("trace (Laplacian) vs differences: max relative error %.2e\n", terr);
    ck_assert_double_le(terr, TOL_FD_REL);
    free(x);
    free(v);
    score_model_free(m);
}
END_TEST

/* score_model_backward(): the parameter gradient of gout . F (double back-propagation) and
 * gx = (dF/dx)^T gout against differences. */
START_TEST(backward_double_backprop)
{
    score_model *m = tiny_energy(D, _i == 0 ? SCORE_ACT_SILU : SCORE_ACT_SOFTPLUS, _i, 31);
    float *x = normal_data(N, D, 8, 1.0), *g = normal_data(N, D, 9, 1.0), s[N * D], gx[N * D];
    size_t np = score_model_param_count(m);
    float *p0 = malloc(np * sizeof *p0), *p = malloc(np * sizeof *p), *grad = calloc(np, sizeof *grad);
    double c[N], err = 0.0, xerr = 0.0;
    for (size_t b = 0; b < N; b++)
        c[b] = 0.2 * (double)b;
    ck_assert_ok(score_model_params_get(m, p0, np));
    ck_assert_ok(score_model_forward(m, N, x, c, s));
    ck_assert_ok(score_model_backward(m, N, g, grad, gx));
    for (size_t i = 0; i < np; i++) {
        double fd[2];
        for (int k = 0; k < 2; k++) {
            double h = k == 0 ? 1e-2 : 5e-3, val[2];
            float up = (float)(p0[i] + h), dn = (float)(p0[i] - h);
            for (int sgn = 0; sgn < 2; sgn++) {
                memcpy(p, p0, np * sizeof *p);
                p[i] = sgn == 0 ? up : dn;
                ck_assert_ok(score_model_params_set(m, p, np));
                ck_assert_ok(score_model_forward(m, N, x, c, s));
                val[sgn] = 0.0;
                for (size_t q = 0; q < N * D; q++)
                    val[sgn] += (double)g[q] * (double)s[q];
            }
            fd[k] = (val[0] - val[1]) / ((double)up - (double)dn);
        }
        err = fmax(err, fabs((4.0 * fd[1] - fd[0]) / 3.0 - grad[i]));
    }
    ck_assert_ok(score_model_params_set(m, p0, np));
    for (size_t b = 0; b < N; b++)
        for (size_t j = 0; j < D; j++) {
            float e[D] = {0};
            dot_ctx d = {g + b * D};
            e[j] = 1.0f;
            xerr = fmax(xerr, fabs(fd_dir(m, score_dot, &d, x + b * D, c[b], e) - gx[b * D + j]));
        }
    printf("backward: parameter gradient error %.2e of %.2e, input gradient %.2e of %.2e\n",
           err, max_abs(np, grad), xerr, max_abs(N * D, gx));
    ck_assert_double_gt(max_abs(np, grad), 0.0);
    ck_assert_double_le(err, TOL_FD_REL * max_abs(np, grad));
    ck_assert_double_le(xerr, TOL_FD_REL * max_abs(N * D, gx));
    free(p0);
    free(p);
    free(grad);
    free(x);
    free(g);
    score_model_free(m);
}
END_TEST

/* max |a - b| / max |b| */
static double rel_diff(size_t n, const float *a, const float *b)
{
    double d = 0.0;
    for (size_t i = 0; i < n; i++)
        d = fmax(d, fabs((double)a[i] - (double)b[i]));
    return d / max_abs(n, b);
}

/* The training pair's backward (activations kept by the forward, row blocks, weight-gradient
 * chunks) against the panels' double back-propagation of the same gout (score_model_vjv_grad
 * with zero weights: only its gout . F term) and gx against the VJP, equal to float rounding,
 * on a network wide enough for two weight-gradient chunks per layer and a batch of three row
 * blocks; bit for bit the same for 1, 2 and 3 threads; then a smaller batch through the same
 * (larger) cache. */
START_TEST(backward_blocks_match_panels)
{
    enum { NB = 600, DB = 5, NS = 37 };
    score_model *m = energy_net(DB, 40, 3, _i == 0 ? SCORE_ACT_SILU : SCORE_ACT_TANH, _i, 51);
    float *x = normal_data(NB, DB, 41, 1.0), *g = normal_data(NB, DB, 42, 1.0);
    float *s = malloc(NB * DB * sizeof *s), *vref = malloc(NB * DB * sizeof *vref);
    float *gx[3], *gr[3], *ref;
    size_t np = score_model_param_count(m);
    double c[NB], w[NB] = {0}, eg, ex;
    for (size_t b = 0; b < NB; b++)
        c[b] = 0.01 * (double)b;
    for (int t = 0; t < 3; t++) {
        gx[t] = malloc(NB * DB * sizeof(float));
        gr[t] = calloc(np, sizeof(float));
        ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_THREADS, t + 1));
        ck_assert_ok(score_model_forward(m, NB, x, c, s));
        ck_assert_ok(score_model_backward(m, NB, g, gr[t], gx[t]));
    }
    for (int t = 1; t < 3; t++) {
        ck_assert_int_eq(memcmp(gr[0], gr[t], np * sizeof(float)), 0);
        ck_assert_int_eq(memcmp(gx[0], gx[t], NB * DB * sizeof(float)), 0);
    }
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_THREADS, 1));
    ref = calloc(np, sizeof *ref);
    ck_assert_ok(score_model_vjv_grad(m, NB, x, c, 1, g, w, g, ref, NULL, NULL));
    ck_assert_ok(score_model_vjp(m, NB, x, c, 1, g, vref));
    eg = rel_diff(np, gr[0], ref);
    ex = rel_diff(NB * DB, gx[0], vref);
    printf("backward (act %d, residual %d) vs panels: parameter gradient %.2e, gx %.2e "
           "(relative to the largest entry)\n", _i == 0 ? SCORE_ACT_SILU : SCORE_ACT_TANH, _i,
           eg, ex);
    ck_assert_double_gt(max_abs(np, ref), 0.0);
    ck_assert_double_le(eg, 5e-6);
    ck_assert_double_le(ex, 5e-6);
    /* a smaller batch after a larger one (the cache keeps its capacity) */
    memset(gr[1], 0, np * sizeof(float));
    memset(ref, 0, np * sizeof *ref);
    ck_assert_ok(score_model_forward(m, NS, x, c, s));
    ck_assert_ok(score_model_backward(m, NS, g, gr[1], gx[1]));
    ck_assert_ok(score_model_vjv_grad(m, NS, x, c, 1, g, w, g, ref, NULL, NULL));
    ck_assert_ok(score_model_vjp(m, NS, x, c, 1, g, vref));
    ck_assert_double_le(rel_diff(np, gr[1], ref), 5e-6);
    ck_assert_double_le(rel_diff(NS * DB, gx[1], vref), 5e-6);
    for (int t = 0; t < 3; t++) {
        free(gx[t]);
        free(gr[t]);
    }
    free(ref);
    free(s);
    free(vref);
    free(x);
    free(g);
    score_model_free(m);
}
END_TEST

/* ---- against a reference network in double ---- */

/* A reference of the energy network without embedding (EMBED_NONE: h_0 = [x, c]), from the
 * documented parameter layout (model.h), in double: E and the score -grad_x E of one row with
 * label y (K: the null label; K = 0: no label input). */
typedef struct {
    const float *th;   /* parameters */
    size_t dim, hid, depth, K;
    int act, residual;
} ref_net;

static double ref_phi(int act, double z, double *d1)
{
    double s, cdf;
    switch (act) {
    case SCORE_ACT_SILU:
        s = 1.0 / (1.0 + exp(-z));
        *d1 = s + z * s * (1.0 - s);
        return z * s;
    case SCORE_ACT_TANH:
        s = tanh(z);
        *d1 = 1.0 - s * s;
        return s;
    default: /* gelu */
        cdf = 0.5 * (1.0 + erf(z / sqrt(2.0)));
        *d1 = cdf + z * exp(-0.5 * z * z) * 0.3989422804014327; /* the normal density */
        return z * cdf;
    }
}

enum { RMAXW = 96, RMAXL = 4 };

static double ref_energy(const ref_net *r, const double *x, double c, size_t y, double *score)
{
    double h[RMAXL][RMAXW], d1[RMAXL][RMAXW], a[RMAXW], an[RMAXW], e;
    size_t n[RMAXL + 1], off = 0, wo[RMAXL + 1], bo[RMAXL + 1], L = r->depth + 1;
    n[0] = r->dim + 1;
    for (size_t l = 1; l < L; l++)
        n[l] = r->hid;
    n[L] = 1;
    for (size_t l = 1; l <= L; l++) {
        wo[l] = off;
        bo[l] = off + n[l] * n[l - 1];
        off = bo[l] + n[l];
    }
    for (size_t j = 0; j < r->dim; j++)
        h[0][j] = x[j];
    h[0][r->dim] = c;
    for (size_t l = 1; l < L; l++)
        for (size_t i = 0; i < n[l]; i++) {
            double z = r->th[bo[l] + i];
            for (size_t j = 0; j < n[l - 1]; j++)
                z += (double)r->th[wo[l] + i * n[l - 1] + j] * h[l - 1][j];
            if (l == 1 && r->K > 0)
                z += r->th[off + y * n[1] + i];
            h[l][i] = ref_phi(r->act, z, &d1[l][i]);
            if (r->residual && l >= 2)
                h[l][i] += h[l - 1][i];
        }
    e = r->th[bo[L]];
    for (size_t i = 0; i < n[L - 1]; i++) {
        e += (double)r->th[wo[L] + i] * h[L - 1][i];
        a[i] = r->th[wo[L] + i];
    }
    for (size_t l = L - 1; l >= 1; l--) {
        for (size_t j = 0; j < n[l - 1]; j++)
            an[j] = r->residual && l >= 2 ? a[j] : 0.0;
        for (size_t i = 0; i < n[l]; i++)
            for (size_t j = 0; j < n[l - 1]; j++)
                an[j] += a[i] * d1[l][i] * (double)r->th[wo[l] + i * n[l - 1] + j];
        memcpy(a, an, n[l - 1] * sizeof *a);
    }
    for (size_t j = 0; j < r->dim; j++)
        score[j] = -a[j];
    return e;
}

/* Central difference in double of the reference score along v: the JVP -H v. */
static void ref_hv(const ref_net *r, const float *x, double c, size_t y, const float *v,
                   double *out)
{
    double xp[RMAXW] = {0}, xm[RMAXW] = {0}, sp[RMAXW], sm[RMAXW], h = 1e-4;
    for (size_t j = 0; j < r->dim; j++) {
        xp[j] = (double)x[j] + h * (double)v[j];
        xm[j] = (double)x[j] - h * (double)v[j];
    }
    (void)ref_energy(r, xp, c, y, sp);
    (void)ref_energy(r, xm, c, y, sm);
    for (size_t j = 0; j < r->dim; j++)
        out[j] = (sp[j] - sm[j]) / (2.0 * h);
}

/* max |a - ref| / max |ref| */
static double ref_err(size_t n, const float *a, const double *ref)
{
    double d = 0.0, big = 0.0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - ref[i]));
        big = fmax(big, fabs(ref[i]));
    }
    ck_assert_double_gt(big, 0.0);
    return d / big;
}

/* The energy network on widths and a dim that pad the packed weights (hidden 80: two panels of
 * the packed layout, the second partly zero; dim 5 and 17) against the reference in double:
 * the score of the fused inference path (jvp's fx), of the training forward (with labels:
 * layer 1's separate epilogue), the JVP, the training backward's gx (the packs of the tangent
 * forward and of the x columns) and the energies (forward only). Then a row's score and gx do
 * not depend on its place in the call: the rows from 7 on, called alone, give the same bits
 * (every product row-invariant), and the backward gives the same parameter gradient with and
 * without gx. */
START_TEST(matches_reference_network)
{
    enum { NR = 60, K = 3, OFF = 7 };
    const int acts[3] = {SCORE_ACT_SILU, SCORE_ACT_TANH, SCORE_ACT_GELU};
    const size_t dims[3] = {5, 5, 17}, KS[3] = {0, K, 0};
    const size_t dim = dims[_i], nk = KS[_i];
    ref_net r = {NULL, dim, 80, 3, nk, acts[_i], _i > 0};
    score_model *m;
    float *x = normal_data(NR, dim, 70 + (uint64_t)_i, 1.0), *v = normal_data(NR, dim, 80, 1.0);
    float *s = malloc(NR * dim * sizeof *s), *fx = malloc(NR * dim * sizeof *fx);
    float *s0 = malloc(NR * dim * sizeof *s0), *jv = malloc(NR * dim * sizeof *jv);
    float *gx = malloc(NR * dim * sizeof *gx), *gx2 = malloc(NR * dim * sizeof *gx2);
    double *rs = malloc(NR * dim * sizeof *rs), *rs0 = malloc(NR * dim * sizeof *rs0);
    double *rj = malloc(NR * dim * sizeof *rj), *rg = malloc(NR * dim * sizeof *rg);
    double c[NR], E[NR], rE[NR], xd[RMAXW];
    int32_t lab[NR];
    float *th, *g1, *g2;
    size_t np;
    ck_assert_ok(score_model_new_energy(&m, dim));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_HIDDEN, 80));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_DEPTH, 3));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_ACTIVATION, acts[_i]));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_RESIDUAL, _i > 0));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_EMBEDDING, SCORE_EMBED_NONE));
    if (nk > 0)
        ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_NUM_CLASSES, (int64_t)nk));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_SEED, 90 + (uint64_t)_i));
    ck_assert_ok(score_model_prepare(m));
    np = score_model_param_count(m);
    th = malloc(np * sizeof *th);
    g1 = calloc(np, sizeof *g1);
    g2 = calloc(np, sizeof *g2);
    ck_assert_ok(score_model_params_get(m, th, np));
    for (size_t i = 0; i < np; i++) /* biases and labels away from their initial values */
        th[i] += 0.02f * (float)((i * 5) % 7) - 0.06f;
    ck_assert_ok(score_model_params_set(m, th, np));
    r.th = th;
    for (size_t b = 0; b < NR; b++) {
        c[b] = 0.05 * (double)b - 1.0;
        lab[b] = (int32_t)(b % (K + 1));
    }
    /* the library */
    ck_assert_ok(score_model_jvp(m, NR, x, c, 1, v, jv, fx));
    ck_assert_ok(score_model_forward(m, NR, x, c, s0));
    ck_assert_ok(score_model_energy_cond(m, NR, x, c, nk ? lab : NULL, NULL, E));
    ck_assert_ok(score_model_forward_cond(m, NR, x, c, nk ? lab : NULL, NULL, s));
    ck_assert_ok(score_model_backward(m, NR, v, g1, gx));
    ck_assert_ok(score_model_forward_cond(m, NR, x, c, nk ? lab : NULL, NULL, s));
    ck_assert_ok(score_model_backward(m, NR, v, g2, NULL));
    ck_assert_int_eq(memcmp(g1, g2, np * sizeof *g1), 0);
    ck_assert_int_eq(memcmp(fx, s0, NR * dim * sizeof *fx), 0); /* fused = separate epilogue */
    /* the reference */
    for (size_t b = 0; b < NR; b++) {
        size_t y = nk ? (size_t)lab[b] : 0;
        for (size_t j = 0; j < dim; j++)
            xd[j] = x[b * dim + j];
        rE[b] = ref_energy(&r, xd, c[b], y, rs + b * dim);
        (void)ref_energy(&r, xd, c[b], nk, rs0 + b * dim);
        ref_hv(&r, x + b * dim, c[b], nk, v + b * dim, rj + b * dim);
        ref_hv(&r, x + b * dim, c[b], y, v + b * dim, rg + b * dim);
    }
    {
        double es = ref_err(NR * dim, s, rs), es0 = ref_err(NR * dim, s0, rs0);
        double ej = ref_err(NR * dim, jv, rj), eg = ref_err(NR * dim, gx, rg), ee = 0.0, be = 0.0;
        for (size_t b = 0; b < NR; b++) {
            ee = fmax(ee, fabs(E[b] - rE[b]));
            be = fmax(be, fabs(rE[b]));
        }
        printf("reference network (act %d, residual %d, labels %zu, dim %zu): score %.2e, "
               "null-label score %.2e, jvp %.2e, backward gx %.2e, energy %.2e\n", acts[_i],
               _i > 0, nk, dim, es, es0, ej, eg, ee / be);
        ck_assert_double_le(es, 1e-5);
        ck_assert_double_le(es0, 1e-5);
        ck_assert_double_le(ej, 1e-5);
        ck_assert_double_le(eg, 1e-5);
        ck_assert_double_le(ee / be, 1e-5);
    }
    /* rows OFF .. in a call of their own: other panel positions, other row blocks */
    ck_assert_ok(score_model_forward_cond(m, NR - OFF, x + OFF * dim, c + OFF,
                                          nk ? lab + OFF : NULL, NULL, s0));
    ck_assert_ok(score_model_backward(m, NR - OFF, v + OFF * dim, g2, gx2));
    ck_assert_int_eq(memcmp(s0, s + OFF * dim, (NR - OFF) * dim * sizeof *s), 0);
    ck_assert_int_eq(memcmp(gx2, gx + OFF * dim, (NR - OFF) * dim * sizeof *gx), 0);
    ck_assert_ok(score_model_jvp(m, NR - OFF, x + OFF * dim, c + OFF, 1, v + OFF * dim, s0, gx2));
    ck_assert_int_eq(memcmp(s0, jv + OFF * dim, (NR - OFF) * dim * sizeof *s), 0);
    ck_assert_int_eq(memcmp(gx2, fx + OFF * dim, (NR - OFF) * dim * sizeof *s), 0);
    free(th);
    free(g1);
    free(g2);
    free(x);
    free(v);
    free(s);
    free(fx);
    free(s0);
    free(jv);
    free(gx);
    free(gx2);
    free(rs);
    free(rs0);
    free(rj);
    free(rg);
    score_model_free(m);
}
END_TEST

/* ---- losses through the energy model ---- */

static double loss_value(score_loss *l, const score_sde *sde, score_model *m, const score_rng *r,
                         size_t n, const float *x)
{
    double v;
    ck_assert_ok(score_loss_compute(l, sde, m, r, n, x, &v, NULL));
    return v;
}

static double loss_grad_check(score_loss *l, const score_sde *sde, score_model *m,
                              const score_rng *r, size_t n, const float *x)
{
    size_t np = score_model_param_count(m);
    float *p0 = malloc(np * sizeof *p0), *p = malloc(np * sizeof *p), *g = calloc(np, sizeof *g);
    double lv, gmax, emax = 0.0;
    ck_assert_ok(score_model_params_get(m, p0, np));
    ck_assert_ok(score_loss_compute(l, sde, m, r, n, x, &lv, g));
    gmax = max_abs(np, g);
    for (size_t i = 0; i < np; i++) {
        double fd[2];
        for (int s = 0; s < 2; s++) {
            double h = s == 0 ? 1e-2 : 5e-3, lp, lm;
            float up = (float)(p0[i] + h), dn = (float)(p0[i] - h);
            memcpy(p, p0, np * sizeof *p);
            p[i] = up;
            ck_assert_ok(score_model_params_set(m, p, np));
            lp = loss_value(l, sde, m, r, n, x);
            p[i] = dn;
            ck_assert_ok(score_model_params_set(m, p, np));
            lm = loss_value(l, sde, m, r, n, x);
            fd[s] = (lp - lm) / ((double)up - (double)dn);
        }
        emax = fmax(emax, fabs((4.0 * fd[1] - fd[0]) / 3.0 - g[i]));
    }
    ck_assert_ok(score_model_params_set(m, p0, np));
    ck_assert_double_gt(gmax, 0.0);
    free(p0);
    free(p);
    free(g);
    return emax / gmax;
}

typedef struct {
    const char *name;
    int loss_kind, sched_kind, output, cond;
    double time;
} lc_case;

static const lc_case lc_cases[] = {
    {"dsm bare", SCORE_LOSS_DSM, 0, 0, 0, 0},
    {"dsm score/vp", SCORE_LOSS_DSM, SCORE_SCHEDULE_VP, SCORE_OUTPUT_SCORE, 0, 0.4},
    {"ncsn score/sigma", SCORE_LOSS_NCSN, SCORE_SCHEDULE_NCSN, SCORE_OUTPUT_SCORE, SCORE_COND_SIGMA, 0},
    {"sde ve sigma^2", SCORE_LOSS_SDE, SCORE_SCHEDULE_VE, SCORE_OUTPUT_SCORE, 0, 0},
    {"sde vp likelihood", SCORE_LOSS_SDE, SCORE_SCHEDULE_VP, SCORE_OUTPUT_SCORE, 0, 0},
};

START_TEST(loss_gradients)
{
    const lc_case *lc = &lc_cases[_i];
    score_model *m = tiny_energy(D, SCORE_ACT_SILU, 1, 41 + (uint64_t)_i);
    score_schedule *s = NULL;
    score_sde *sde = NULL;
    score_loss *l;
    score_rng *r = new_rng(50 + (uint64_t)_i);
    float *x = normal_data(12, D, 60 + (uint64_t)_i, 1.0);
    double err;
    ck_assert_ok(score_loss_new(&l, lc->loss_kind));
    if (lc->sched_kind) {
        ck_assert_ok(score_schedule_new(&s, lc->sched_kind));
        if (lc->sched_kind == SCORE_SCHEDULE_NCSN) {
            ck_assert_ok(score_schedule_set_f64(s, SCORE_SCHEDULE_PARAM_SIGMA_MAX, 1.0));
            ck_assert_ok(score_schedule_set_i64(s, SCORE_SCHEDULE_PARAM_NUM_LEVELS, 10));
        }
        ck_assert_ok(score_sde_new(&sde, s, m, lc->output));
        if (lc->cond)
            ck_assert_ok(score_sde_set_i64(sde, SCORE_SDE_PARAM_COND, lc->cond));
        if (lc->time > 0)
            ck_assert_ok(score_loss_set_f64(l, SCORE_LOSS_PARAM_TIME, lc->time));
        if (_i == 4)
            ck_assert_ok(score_loss_set_i64(l, SCORE_LOSS_PARAM_WEIGHTING,
                                            SCORE_LOSS_WEIGHT_LIKELIHOOD));
    } else {
        ck_assert_ok(score_loss_set_f64(l, SCORE_LOSS_PARAM_SIGMA, 0.5));
    }
    err = loss_grad_check(l, sde, m, r, 12, x);
    printf("loss gradient through the energy model, %-20s max |g - fd| / max |g| = %.2e\n",
           lc->name, err);
    ck_assert_double_le(err, TOL_FD_REL);
    score_loss_free(l);
    score_sde_free(sde);
    score_schedule_free(s);
    score_rng_free(r);
    free(x);
    score_model_free(m);
}
END_TEST

/* The losses that need third derivatives of E run through it (test-energy-hsm.c checks their
 * gradients); labels and context are inputs of the energy kind too, and are fixed once
 * prepared. */
START_TEST(third_order_and_condition_inputs)
{
    const int kinds[] = {SCORE_LOSS_HYVARINEN, SCORE_LOSS_SSM, SCORE_LOSS_SSM_VR};
    score_model *m = tiny_energy(D, SCORE_ACT_SILU, 1, 3);
    score_rng *r = new_rng(1);
    float *x = normal_data(4, D, 2, 1.0), *g = calloc(score_model_param_count(m), sizeof *g);
    for (size_t k = 0; k < 3; k++) {
        score_loss *l;
        double v;
        ck_assert_ok(score_loss_new(&l, kinds[k]));
        ck_assert_ok(score_loss_compute(l, NULL, m, r, 4, x, &v, g));
        score_loss_free(l);
    }
    ck_assert_double_gt(max_abs(score_model_param_count(m), g), 0.0);
    ck_assert_uint_eq(score_model_capabilities(m) & (SCORE_MODEL_CAP_TRACE_GRAD | SCORE_MODEL_CAP_VJV_GRAD),
                      SCORE_MODEL_CAP_TRACE_GRAD | SCORE_MODEL_CAP_VJV_GRAD);
    ck_assert_fails_with(score_model_set_i64(m, SCORE_MODEL_PARAM_NUM_CLASSES, 3), SCORE_E_STAGE);
    {
        score_model *e;
        ck_assert_ok(score_model_new_energy(&e, 2));
        ck_assert_ok(score_model_set_i64(e, SCORE_MODEL_PARAM_NUM_CLASSES, 3));
        ck_assert_ok(score_model_set_i64(e, SCORE_MODEL_PARAM_CONTEXT_DIM, 2));
        ck_assert_ok(score_model_prepare(e));
        score_model_free(e);
    }
    free(g);
    free(x);
    score_rng_free(r);
    score_model_free(m);
}
END_TEST

/* score_model_energy_cond(): a row's energy with its label and context; minus its gradient in
 * x (finite differences) is score_model_forward_cond()'s score with the same inputs; the null
 * label and score_model_energy() agree; labels change the energy; a batch gives each row's
 * own energy; the label / context arguments are refused where the model has no such input. */
typedef struct {
    int32_t label;
    const float *context;
} cond_ctx;

static double energy_cond_row(score_model *m, const float *x, double c, void *ctx)
{
    const cond_ctx *q = ctx;
    double e;
    ck_assert_ok(score_model_energy_cond(m, 1, x, &c, &q->label, q->context, &e));
    return e;
}

START_TEST(energy_with_labels_and_context)
{
    enum { K = 3, MC = 2 };
    score_model *m, *plain = tiny_energy(D, SCORE_ACT_SILU, 0, 5), *lab;
    float *x = normal_data(N, D, 8, 1.0), *ctxv = normal_data(N, MC, 9, 1.0);
    float s[N * D];
    double c[N], e[N], e_null[N], e_plain[N], err = 0.0, big = 0.0;
    int32_t labels[N], nulls[N];
    ck_assert_ok(score_model_new_energy(&m, D));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_HIDDEN, 8));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_DEPTH, 2));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_NUM_CLASSES, K));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_CONTEXT_DIM, MC));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_SEED, 21));
    ck_assert_ok(score_model_prepare(m));
    ck_assert_ok(score_model_new_energy(&lab, D));
    ck_assert_ok(score_model_set_i64(lab, SCORE_MODEL_PARAM_NUM_CLASSES, K));
    ck_assert_ok(score_model_prepare(lab));
    /* a label table of zeros would hide a dropped label: move it away from its start */
    {
        size_t np = score_model_param_count(m);
        float *p = malloc(np * sizeof *p);
        ck_assert_ok(score_model_params_get(m, p, np));
        for (size_t i = 0; i < np; i++)
            p[i] += 0.05f * (float)((i * 7) % 11) - 0.25f;
        ck_assert_ok(score_model_params_set(m, p, np));
        free(p);
    }
    for (size_t b = 0; b < N; b++) {
        c[b] = 0.2 + 0.1 * (double)b;
        labels[b] = (int32_t)(b % (K + 1));
        nulls[b] = K;
    }
    ck_assert_ok(score_model_energy_cond(m, N, x, c, labels, ctxv, e));
    ck_assert_ok(score_model_forward_cond(m, N, x, c, labels, ctxv, s));
    for (size_t b = 0; b < N; b++) {
        cond_ctx q = {labels[b], ctxv + b * MC};
        double eb;
        ck_assert_ok(score_model_energy_cond(m, 1, x + b * D, c + b, labels + b, ctxv + b * MC,
                                             &eb));
        ck_assert(eb == e[b]); /* a row's energy is its own */
        for (size_t j = 0; j < D; j++) {
            float v[D] = {0.0f, 0.0f, 0.0f};
            v[j] = 1.0f;
            double g = fd_dir(m, energy_cond_row, &q, x + b * D, c[b], v);
            err = fmax(err, fabs(-g - (double)s[b * D + j]));
            big = fmax(big, fabs((double)s[b * D + j]));
        }
    }
    printf("energy with labels and context: max |-grad E - s| / max |s| = %.2e\n", err / big);
    ck_assert_double_gt(big, 0.0);
    ck_assert_double_le(err / big, TOL_FD_REL);
    /* NULL labels = the null label; the label changes the energy */
    ck_assert_ok(score_model_energy_cond(m, N, x, c, NULL, ctxv, e_null));
    ck_assert_ok(score_model_energy_cond(m, N, x, c, nulls, ctxv, e_plain));
    ck_assert_int_eq(memcmp(e_null, e_plain, sizeof e_null), 0);
    ck_assert(e[0] != e_null[0]); /* row 0 has label 0 */
    /* without label and context, energy_cond is score_model_energy */
    ck_assert_ok(score_model_energy(plain, N, x, c, e_plain));
    ck_assert_ok(score_model_energy_cond(plain, N, x, c, NULL, NULL, e_null));
    ck_assert_int_eq(memcmp(e_null, e_plain, sizeof e_null), 0);
    /* refusals */
    ck_assert_fails_with(score_model_energy(m, N, x, c, e), SCORE_E_INVAL); /* needs a context */
    ck_assert_fails_with(score_model_energy_cond(m, N, x, c, labels, NULL, e), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_energy_cond(plain, N, x, c, labels, NULL, e),
                         SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_model_energy_cond(lab, N, x, c, labels, ctxv, e),
                         SCORE_E_UNSUPPORTED);
    labels[2] = K + 1;
    ck_assert_fails_with(score_model_energy_cond(m, N, x, c, labels, ctxv, e), SCORE_E_RANGE);
    labels[2] = -1;
    ck_assert_fails_with(score_model_energy_cond(lab, N, x, c, labels, NULL, e), SCORE_E_RANGE);
    labels[2] = 0;
    ctxv[3] = NAN;
    ck_assert_fails_with(score_model_energy_cond(m, N, x, c, labels, ctxv, e), SCORE_E_NUMERIC);
    ck_assert_ok(score_model_energy_cond(lab, N, x, c, labels, NULL, e));
    {
        score_model *mlp;
        ck_assert_ok(score_model_new(&mlp, SCORE_MODEL_MLP, D));
        ck_assert_fails_with(score_model_energy_cond(mlp, N, x, c, NULL, NULL, e),
                             SCORE_E_UNSUPPORTED);
        score_model_free(mlp);
    }
    free(x);
    free(ctxv);
    score_model_free(m);
    score_model_free(lab);
    score_model_free(plain);
}
END_TEST

/* ---- save / load, clone, batch split ---- */

START_TEST(save_load_clone_bit_exact)
{
    score_model *m = tiny_energy(D, SCORE_ACT_GELU, 1, 77), *l = NULL, *c2 = NULL;
    float *x = normal_data(N, D, 3, 1.0), s0[N * D], s1[N * D], s2[N * D];
    size_t np = score_model_param_count(m), len;
    float *p0 = malloc(np * sizeof *p0), *p1 = malloc(np * sizeof *p1);
    double c[N], e0[N], e1[N], e2[N];
    void *buf;
    for (size_t b = 0; b < N; b++)
        c[b] = 0.3 * (double)b;
    /* changed parameters, so that the initialisation does not hide a loading error */
    ck_assert_ok(score_model_params_get(m, p0, np));
    for (size_t i = 0; i < np; i++)
        p0[i] = p0[i] * 1.5f + 0.01f * (float)(i % 7);
    ck_assert_ok(score_model_params_set(m, p0, np));
    ck_assert_ok(score_model_save_buffer(m, &buf, &len));
    ck_assert_ok(score_model_load_buffer(&l, buf, len));
    score_free(buf);
    ck_assert_ok(score_model_clone(&c2, m));
    ck_assert_int_eq(score_model_kind(l), SCORE_MODEL_ENERGY);
    ck_assert_uint_eq(score_model_param_count(l), np);
    ck_assert_ok(score_model_params_get(l, p1, np));
    ck_assert_int_eq(memcmp(p0, p1, np * sizeof *p0), 0);
    ck_assert_ok(score_model_forward(m, N, x, c, s0));
    ck_assert_ok(score_model_forward(l, N, x, c, s1));
    ck_assert_ok(score_model_forward(c2, N, x, c, s2));
    ck_assert_int_eq(memcmp(s0, s1, sizeof s0), 0);
    ck_assert_int_eq(memcmp(s0, s2, sizeof s0), 0);
    ck_assert_ok(score_model_energy(m, N, x, c, e0));
    ck_assert_ok(score_model_energy(l, N, x, c, e1));
    ck_assert_ok(score_model_energy(c2, N, x, c, e2));
    ck_assert_int_eq(memcmp(e0, e1, sizeof e0), 0);
    ck_assert_int_eq(memcmp(e0, e2, sizeof e0), 0);
    /* a row's score and energy do not depend on the other rows of the call */
    for (size_t b = 0; b < N; b++) {
        float sb[D];
        double eb;
        ck_assert_ok(score_model_forward(m, 1, x + b * D, c + b, sb));
        ck_assert_ok(score_model_energy(m, 1, x + b * D, c + b, &eb));
        ck_assert_int_eq(memcmp(sb, s0 + b * D, sizeof sb), 0);
        ck_assert(eb == e0[b]);
    }
    free(p0);
    free(p1);
    free(x);
    score_model_free(l);
    score_model_free(c2);
    score_model_free(m);
}
END_TEST

/* ---- energies of the analytic models and of sums ---- */

START_TEST(analytic_and_sum_energies)
{
    score_schedule *s;
    score_model *g1, *g2, *sum, *mlp;
    const double mu1[2] = {1.0, -0.5}, v1[2] = {0.5, 2.0}, mu2[2] = {-1.0, 0.0}, v2[2] = {1.0, 1.0};
    const double w[2] = {0.7, 0.3};
    score_model *mem[2];
    float x[4] = {0.3f, -1.2f, 2.0f, 0.5f};
    double t[2] = {0.0, 0.5}, E1[2], E2[2], Es[2], lp[2];
    ck_assert_ok(score_schedule_new(&s, SCORE_SCHEDULE_VE));
    ck_assert_ok(score_schedule_prepare(s));
    ck_assert_ok(score_model_new_gaussian(&g1, s, 2, mu1, NULL, v1));
    ck_assert_ok(score_model_new_gaussian(&g2, s, 2, mu2, NULL, v2));
    ck_assert_ok(score_model_energy(g1, 2, x, t, E1));
    ck_assert_ok(score_model_analytic_logp(g1, 2, t, x, lp));
    for (size_t b = 0; b < 2; b++) {
        /* closed form: VE alpha = 1, variance v + sigma(t)^2 */
        double al, si, q = 0.0, ld = 0.0;
        ck_assert_ok(score_schedule_alpha_sigma(s, 1, &t[b], &al, &si));
        for (size_t j = 0; j < 2; j++) {
            double d = v1[j] + si * si, y = (double)x[2 * b + j] - mu1[j];
            q += y * y / d;
            ld += log(6.283185307179586 * d);
        }
        ck_assert_double_le(fabs(E1[b] - 0.5 * (q + ld)), 1e-12 * fmax(1.0, fabs(E1[b])));
        ck_assert(E1[b] == -lp[b]);
    }
    ck_assert_ok(score_model_energy(g2, 2, x, t, E2));
    /* a mixture's components are its classes: score_model_energy_cond() with label j is the
     * energy of component j alone, without labels the mixture's -log sum_j w_j e^{-E_j} */
    {
        score_model *gmm;
        const double mus[4] = {mu1[0], mu1[1], mu2[0], mu2[1]};
        const double vs[4] = {v1[0], v1[1], v2[0], v2[1]};
        const int32_t lab0[2] = {0, 0}, lab1[2] = {1, 1}, labk[2] = {2, 2};
        double Ec[2], Em[2];
        ck_assert_ok(score_model_new_gmm(&gmm, s, 2, 2, w, mus, vs));
        ck_assert_ok(score_model_energy_cond(gmm, 2, x, t, lab0, NULL, Ec));
        for (size_t b = 0; b < 2; b++)
            ck_assert_double_le(fabs(Ec[b] - E1[b]), 1e-12 * fmax(1.0, fabs(E1[b])));
        ck_assert_ok(score_model_energy_cond(gmm, 2, x, t, lab1, NULL, Ec));
        for (size_t b = 0; b < 2; b++)
            ck_assert_double_le(fabs(Ec[b] - E2[b]), 1e-12 * fmax(1.0, fabs(E2[b])));
        ck_assert_ok(score_model_energy(gmm, 2, x, t, Em));
        ck_assert_ok(score_model_energy_cond(gmm, 2, x, t, labk, NULL, Ec));
        for (size_t b = 0; b < 2; b++) {
            double mix = -log(w[0] * exp(-E1[b]) + w[1] * exp(-E2[b]));
            ck_assert_double_le(fabs(Em[b] - mix), 1e-12 * fmax(1.0, fabs(mix)));
            ck_assert(Ec[b] == Em[b]); /* the null label: the whole mixture */
        }
        ck_assert_fails_with(score_model_energy_cond(gmm, 2, x, t, labk, x, Ec),
                             SCORE_E_UNSUPPORTED); /* no context input */
        score_model_free(gmm);
    }
    mem[0] = g1;
    mem[1] = g2;
    ck_assert_ok(score_model_new_sum(&sum, 2, mem, w));
    ck_assert_int_eq(score_model_has_energy(sum), 1);
    ck_assert_ok(score_model_energy(sum, 2, x, t, Es));
    for (size_t b = 0; b < 2; b++)
        ck_assert_double_le(fabs(Es[b] - (w[0] * E1[b] + w[1] * E2[b])), 1e-12 * fabs(Es[b]));
    /* an MLP has no energy, nor a sum containing one */
    ck_assert_ok(score_model_new_mlp(&mlp, 2, 8, 1, SCORE_ACT_SILU, 1));
    ck_assert_int_eq(score_model_has_energy(mlp), 0);
    ck_assert_fails_with(score_model_energy(mlp, 2, x, t, Es), SCORE_E_UNSUPPORTED);
    score_model_free(sum);
    mem[1] = mlp;
    ck_assert_ok(score_model_new_sum(&sum, 2, mem, w));
    ck_assert_int_eq(score_model_has_energy(sum), 0);
    ck_assert_fails_with(score_model_energy(sum, 2, x, t, Es), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_model_energy(NULL, 2, x, t, Es), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_energy(g1, 2, NULL, t, Es), SCORE_E_INVAL);
    score_model_free(sum);
    score_model_free(mlp);
    score_model_free(g1);
    score_model_free(g2);
    score_schedule_free(s);
}
END_TEST

/* ---- MALA on Gaussians with their exact energy ----
 * Data N(0, diag(v)) under VE at a small time t: p_t = N(0, diag(v + sigma(t)^2)), energy exact
 * (the analytic model). NCH independent chains (rows) start from exact samples of p_t and take
 * NSTEP steps of size e = 0.5; the covariance is estimated from the NCH final states, one per
 * chain, so the samples are independent (no autocorrelation correction is needed). Standard
 * errors: var(s_jj) = 2 C_jj^2 / NCH, var(s_ij) = (C_ii C_jj + C_ij^2) / NCH.
 * Unadjusted Langevin x' = x - e x / c + sqrt(2 e) z is an AR(1) process per coordinate with
 * the stationary variance c / (1 - e / (2 c)) (closed form); after NSTEP steps its remaining
 * transient is (1 - e / c)^(2 NSTEP) <= 0.75^120 < 1e-14 of the start. MALA keeps p_t exactly. */
enum { NCH = 4000, NSTEP = 60 };

static void gaussian_chain(size_t d, int mala, double *max_z_diag, double *max_z_off,
                           double *rate)
{
    score_schedule *s;
    score_model *g;
    score_sde *sde;
    score_step *st;
    score_rng *r = new_rng(1234 + d);
    double *mean = calloc(d, sizeof *mean), *var = calloc(d, sizeof *var), c[16];
    double t = 1e-3, al, si, e = 0.5;
    float *x = malloc(NCH * d * sizeof *x);
    double *m1 = calloc(d, sizeof *m1), *m2 = calloc(d * d, sizeof *m2);
    uint64_t acc = 0, prop = 0;
    for (size_t j = 0; j < d; j++)
        var[j] = 1.0 + (double)j / (double)(d > 1 ? d - 1 : 1); /* 1 .. 2 */
    ck_assert_ok(score_schedule_new(&s, SCORE_SCHEDULE_VE));
    ck_assert_ok(score_schedule_prepare(s));
    ck_assert_ok(score_model_new_gaussian(&g, s, d, mean, NULL, var));
    ck_assert_ok(score_sde_new(&sde, s, g, SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_schedule_alpha_sigma(s, 1, &t, &al, &si));
    for (size_t j = 0; j < d; j++)
        c[j] = var[j] + si * si;
    ck_assert_ok(score_model_analytic_sample(g, r, t, NCH, x));
    ck_assert_ok(score_step_new(&st, score_step_type_get(mala ? SCORE_STEP_MALA : SCORE_STEP_LANGEVIN), d));
    ck_assert_ok(score_step_set_f64(st, SCORE_STEP_PARAM_STEP_SIZE, e));
    for (size_t k = 0; k < NSTEP; k++)
        ck_assert_ok(score_step_apply(st, sde, t, t, NCH, x, NULL, r, 100 + k));
    if (mala) {
        double sc;
        ck_assert_ok(score_step_mala_acceptance(st, &acc, &prop, &sc));
        ck_assert_uint_eq(prop, (uint64_t)NCH * NSTEP);
        ck_assert(sc == 1.0);
        ck_assert_uint_eq(score_step_mala_level_count(st), 1);
        *rate = (double)acc / (double)prop;
    }
    for (size_t b = 0; b < NCH; b++)
        for (size_t i = 0; i < d; i++) {
            m1[i] += x[b * d + i];
            for (size_t j = 0; j < d; j++)
                m2[i * d + j] += (double)x[b * d + i] * (double)x[b * d + j];
        }
    *max_z_diag = 0.0;
    *max_z_off = 0.0;
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < d; j++) {
            double cov = (m2[i * d + j] - m1[i] * m1[j] / NCH) / (NCH - 1);
            double ci = c[i], cj = c[j], want;
            if (!mala) { /* the closed-form stationary variance of unadjusted Langevin */
                ci = ci / (1.0 - e / (2.0 * ci));
                cj = cj / (1.0 - e / (2.0 * cj));
            }
            want = i == j ? ci : 0.0;
            if (i == j)
                *max_z_diag = fmax(*max_z_diag, fabs(cov - want) / (sqrt(2.0 / NCH) * ci));
            else
                *max_z_off = fmax(*max_z_off, fabs(cov) / sqrt(ci * cj / NCH));
        }
    score_step_free(st);
    score_sde_free(sde);
    score_model_free(g);
    score_schedule_free(s);
    score_rng_free(r);
    free(mean);
    free(var);
    free(x);
    free(m1);
    free(m2);
}

START_TEST(gaussian_langevin_bias_and_mala)
{
    const size_t d = _i == 0 ? 2 : 16;
    double zd, zo, rate = 0.0, zd_ula, zo_ula, dummy;
    gaussian_chain(d, 0, &zd_ula, &zo_ula, &dummy);
    gaussian_chain(d, 1, &zd, &zo, &rate);
    printf("d = %zu, %d chains x %d steps of 0.5: unadjusted Langevin vs its closed-form "
           "stationary variance max |z| = %.2f (off-diagonal %.2f); MALA vs the true covariance "
           "max |z| = %.2f (off-diagonal %.2f), acceptance %.3f\n",
           d, NCH, NSTEP, zd_ula, zo_ula, zd, zo, rate);
    /* each diagonal entry within 3 standard errors; the d (d - 1) / 2 off-diagonal ones within
     * 4 (a two-sided 4-sigma excursion among 120 entries has probability < 1%) */
    ck_assert_double_le(zd_ula, 3.0);
    ck_assert_double_le(zo_ula, 4.0);
    ck_assert_double_le(zd, 3.0);
    ck_assert_double_le(zo, 4.0);
    ck_assert_double_gt(rate, 0.3);
    ck_assert_double_lt(rate, 1.0);
}
END_TEST

/* Without an energy the mala step refuses and leaves x unchanged; adaptation moves the scale
 * toward the target rate. */
START_TEST(mala_refusal_and_adaptation)
{
    score_schedule *s;
    score_model *mlp, *g;
    score_sde *sde;
    score_step *st;
    score_rng *r = new_rng(5);
    const double mean[2] = {0, 0}, var[2] = {1, 1};
    float x[8] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f}, x0[8];
    double sc, t = 0.01, rate;
    uint64_t acc, prop, lacc, lprop;
    ck_assert_ok(score_schedule_new(&s, SCORE_SCHEDULE_VE));
    ck_assert_ok(score_schedule_prepare(s));
    ck_assert_ok(score_model_new_mlp(&mlp, 2, 8, 1, SCORE_ACT_SILU, 1));
    ck_assert_ok(score_sde_new(&sde, s, mlp, SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_step_new(&st, score_step_type_find("mala"), 2));
    ck_assert_uint_eq(score_step_type_flags(score_step_type_find("mala")),
                      SCORE_STEP_FLAG_STOCHASTIC | SCORE_STEP_FLAG_CORRECTOR);
    memcpy(x0, x, sizeof x);
    ck_assert_fails_with(score_step_apply(st, sde, t, t, 4, x, NULL, r, 0), SCORE_E_UNSUPPORTED);
    ck_assert_int_eq(memcmp(x, x0, sizeof x), 0);
    ck_assert(strstr(score_last_error_message(), "mala") != NULL);
    score_sde_free(sde);
    ck_assert_ok(score_model_new_gaussian(&g, s, 2, mean, NULL, var));
    ck_assert_ok(score_sde_new(&sde, s, g, SCORE_OUTPUT_SCORE));
    /* a step of 4 is accepted far less often than 0.574: warm-up shrinks it */
    ck_assert_ok(score_step_set_f64(st, SCORE_STEP_PARAM_STEP_SIZE, 4.0));
    ck_assert_fails_with(score_step_mala_set_adaptation(st, 200, 1.0), SCORE_E_RANGE);
    ck_assert_ok(score_step_mala_set_adaptation(st, 200, 0.574));
    {
        enum { R = 500 };
        float *xs = malloc(R * 2 * sizeof *xs);
        ck_assert_ok(score_model_analytic_sample(g, r, t, R, xs));
        for (uint64_t k = 0; k < 300; k++)
            ck_assert_ok(score_step_apply(st, sde, t, t, R, xs, NULL, r, k));
        ck_assert_ok(score_step_mala_level(st, 0, &sc, &lacc, &lprop));
        ck_assert(sc == t);
        ck_assert_uint_eq(lprop, (uint64_t)R * 300);
        ck_assert_ok(score_step_mala_acceptance(st, &acc, &prop, &sc));
        ck_assert_uint_eq(acc, lacc);
        /* the rate of the 100 calls after the warm-up */
        ck_assert_ok(score_step_reset(st));
        ck_assert_ok(score_step_mala_set_adaptation(st, 0, 0.574));
        ck_assert_ok(score_step_set_f64(st, SCORE_STEP_PARAM_STEP_SIZE, 4.0 * sc));
        for (uint64_t k = 0; k < 100; k++)
            ck_assert_ok(score_step_apply(st, sde, t, t, R, xs, NULL, r, 1000 + k));
        ck_assert_ok(score_step_mala_acceptance(st, &acc, &prop, NULL));
        rate = (double)acc / (double)prop;
        printf("mala warm-up: scale %.3f, acceptance after it %.3f (target 0.574)\n", sc, rate);
        ck_assert_double_lt(sc, 1.0);
        ck_assert_double_le(fabs(rate - 0.574), 0.05);
        free(xs);
    }
    ck_assert_fails_with(score_step_mala_level(st, 5, NULL, NULL, NULL), SCORE_E_RANGE);
    score_step_free(st);
    score_sde_free(sde);
    score_model_free(g);
    score_model_free(mlp);
    score_schedule_free(s);
    score_rng_free(r);
}
END_TEST

/* The automatic step size of mala is the langevin / ald corrector's 2 alpha_i (snr sigma(t))^2,
 * alpha_i = alpha(t)^2 / alpha(t')^2 for the next grid time t' < t (VP: alpha_i < 1), 1 at
 * t' = t: bit for bit the step made with that size fixed (same rows, seed and counter), and not
 * the one without alpha_i. */
START_TEST(mala_step_rule_alpha_i)
{
    enum { R = 64 };
    score_schedule *s;
    score_model *g;
    score_sde *sde;
    score_step *st;
    score_rng *r = new_rng(9);
    const double mean[2] = {0.5, -0.5}, var[2] = {1.0, 0.5}, snr = 0.16;
    double tt[2] = {0.5, 0.4}, a[2], sg[2], e_vp, e_flat;
    float *x0 = malloc(R * 2 * sizeof *x0), *xa = malloc(R * 2 * sizeof *xa);
    float *xb = malloc(R * 2 * sizeof *xb);
    uint64_t acc;
    ck_assert_ok(score_schedule_new(&s, SCORE_SCHEDULE_VP));
    ck_assert_ok(score_schedule_prepare(s));
    ck_assert_ok(score_model_new_gaussian(&g, s, 2, mean, NULL, var));
    ck_assert_ok(score_sde_new(&sde, s, g, SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_model_analytic_sample(g, r, tt[0], R, x0));
    ck_assert_ok(score_schedule_alpha_sigma(s, 2, tt, a, sg));
    e_flat = 2.0 * (snr * sg[0]) * (snr * sg[0]);
    e_vp = e_flat * (a[0] / a[1]) * (a[0] / a[1]);
    ck_assert_double_lt(e_vp, 0.95 * e_flat);
    ck_assert_ok(score_step_new(&st, score_step_type_find("mala"), 2));
    ck_assert_ok(score_step_set_f64(st, SCORE_STEP_PARAM_SNR, snr));
    for (int same = 0; same < 2; same++) {
        double tn = same ? tt[0] : tt[1], e = same ? e_flat : e_vp;
        memcpy(xa, x0, R * 2 * sizeof *xa);
        ck_assert_ok(score_step_set_f64(st, SCORE_STEP_PARAM_STEP_SIZE, 0.0));
        ck_assert_ok(score_step_apply(st, sde, tt[0], tn, R, xa, NULL, r, 3));
        ck_assert_ok(score_step_mala_acceptance(st, &acc, NULL, NULL));
        ck_assert_uint_gt(acc, R / 2);
        memcpy(xb, x0, R * 2 * sizeof *xb);
        ck_assert_ok(score_step_set_f64(st, SCORE_STEP_PARAM_STEP_SIZE, e));
        ck_assert_ok(score_step_apply(st, sde, tt[0], tn, R, xb, NULL, r, 3));
        ck_assert_int_eq(memcmp(xa, xb, R * 2 * sizeof *xa), 0);
        if (!same) { /* without alpha_i: other proposals */
            memcpy(xb, x0, R * 2 * sizeof *xb);
            ck_assert_ok(score_step_set_f64(st, SCORE_STEP_PARAM_STEP_SIZE, e_flat));
            ck_assert_ok(score_step_apply(st, sde, tt[0], tn, R, xb, NULL, r, 3));
            ck_assert_int_ne(memcmp(xa, xb, R * 2 * sizeof *xa), 0);
        }
        ck_assert_ok(score_step_reset(st));
    }
    free(x0);
    free(xa);
    free(xb);
    score_step_free(st);
    score_sde_free(sde);
    score_model_free(g);
    score_schedule_free(s);
    score_rng_free(r);
}
END_TEST

static Suite *energy_suite(void)
{
    Suite *s = suite_create("energy");
    TCase *tc = tcase_create("model");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, score_is_minus_grad_energy, 0, 5);
    tcase_add_loop_test(tc, hessian_products_and_laplacian, 0, 2);
    tcase_add_loop_test(tc, backward_double_backprop, 0, 2);
    tcase_add_loop_test(tc, backward_blocks_match_panels, 0, 2);
    tcase_add_loop_test(tc, matches_reference_network, 0, 3);
    tcase_add_loop_test(tc, loss_gradients, 0, 5);
    tcase_add_test(tc, third_order_and_condition_inputs);
    tcase_add_test(tc, energy_with_labels_and_context);
    tcase_add_test(tc, save_load_clone_bit_exact);
    tcase_add_test(tc, analytic_and_sum_energies);
    suite_add_tcase(s, tc);
    tc = tcase_create("mala");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, gaussian_langevin_bias_and_mala, 0, 2);
    tcase_add_test(tc, mala_refusal_and_adaptation);
    tcase_add_test(tc, mala_step_rule_alpha_i);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(energy_suite());
}
