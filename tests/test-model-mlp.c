/* MLP score model: forward against an independent double-precision reference written here from
 * the documented flat parameter layout; every derivative (input and parameter gradients, JVP,
 * VJP, exact trace, gradient of the trace, gradient of v^T J v) against central finite
 * differences of that reference, for every activation, with and without residual blocks and
 * for each embedding; batch invariance, blocking of large tangent batches, initialisation,
 * lifecycle and argument checks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "helpers/test-helpers.h"
#include "model/mlp-priv.h"

/* ---- tolerances -------------------------------------------------------------------------
 * Errors are measured as max |lib - ref| / (1 + |ref|). The library computes in float32, the
 * reference in double. A K-term float dot product has a relative error of about K * 2^-24
 * (6e-8 per term) of the sum of |terms|; with K <= 8 per layer and 4 layers the forward
 * differs from the double reference by ~1e-7 (observed 7e-8). */
#define TOL_FWD 1e-6
/* First derivatives (input and parameter gradients, JVP, VJP, trace, v^T J v): the central
 * differences of the double reference (h = 1e-5) are exact to ~1e-10 (truncation h^2 |f'''| / 6,
 * round-off 1e-16 / h), so the comparison measures the float32 rounding of the library's
 * forward and derivative sweeps: observed <= 1.5e-7. A bound of 2e-6 is 10x that and still
 * 30x below what a missing term (e.g. a residual path or a bias) would produce. */
#define TOL_DERIV 2e-6
/* Gradients of the trace and of v^T J v: second-order quantities summed over the dim tangents
 * and the rows; the reference is a nested difference (inner h_x = 1e-4: round-off
 * 1e-16 / 1e-4 = 1e-12; outer h = 1e-4: 1e-12 / 1e-4 = 1e-8, truncation ~1e-8). Observed
 * <= 3.6e-7; a missing phi'' term is O(1e-1). */
#define TOL_DERIV2 5e-6
/* Two float computations of the same quantity in different summation orders. */
#define TOL_REORDER 1e-5

#define TEST_TWO_PI 6.283185307179586476925
#define H_FD 1e-5
#define H_FD_OUTER 1e-4
#define H_FD_INNER 1e-4

/* ---- the double-precision reference ----------------------------------------------------- */
#define RMAXL 8
#define RMAXW 300

typedef struct ref {
    score_model *m;
    size_t dim, L, n[RMAXL + 1], E, half, np;
    int res[RMAXL + 1], act, emb;
    double freq[64];
    double *theta;
} ref;

static double sigm(double z) { return 1.0 / (1.0 + exp(-z)); }

static double act_f(int act, double z)
{
    switch (act) {
    case SCORE_ACT_SILU: return z * sigm(z);
    case SCORE_ACT_SOFTPLUS: return z > 30 ? z : log1p(exp(z));
    case SCORE_ACT_TANH: return tanh(z);
    case SCORE_ACT_ELU: return z > 0 ? z : exp(z) - 1.0;
    case SCORE_ACT_GELU: return 0.5 * z * (1.0 + erf(z / sqrt(2.0)));
    default: return z;
    }
}

/* Builds the reference from the public API and the documented construction. */
static void ref_init(ref *r, score_model *m)
{
    int64_t v, seed;
    double scale;
    float *buf;
    r->m = m;
    r->dim = score_model_dim(m);
    ck_assert_ok(score_model_prepare(m));
    ck_assert_ok(score_model_get_i64(m, SCORE_MODEL_PARAM_ACTIVATION, &v));
    r->act = (int)v;
    ck_assert_ok(score_model_get_i64(m, SCORE_MODEL_PARAM_EMBEDDING, &v));
    r->emb = (int)v;
    ck_assert_ok(score_model_get_i64(m, SCORE_MODEL_PARAM_EMBED_DIM, &v));
    r->E = r->emb == SCORE_EMBED_NONE ? 1 : (size_t)v;
    r->half = r->emb == SCORE_EMBED_NONE ? 0 : r->E / 2;
    ck_assert_ok(score_model_get_i64(m, SCORE_MODEL_PARAM_SEED, &seed));
    ck_assert_ok(score_model_get_f64(m, SCORE_MODEL_PARAM_FOURIER_SCALE, &scale));
    {
        score__mlp_info info;
        ck_assert_ok(score__mlp_info_get(m, &info));
        ck_assert_uint_le(info.n_layers, RMAXL);
        r->L = info.n_layers;
        for (size_t l = 0; l <= r->L; l++) {
            r->n[l] = info.width[l];
            ck_assert_uint_le(r->n[l], RMAXW);
        }
        ck_assert_int_eq(info.embed_in, r->E);
    }
    ck_assert_ok(score_model_get_i64(m, SCORE_MODEL_PARAM_RESIDUAL, &v));
    for (size_t l = 0; l <= r->L; l++)
        r->res[l] = v && l >= 2 && l < r->L && r->n[l] == r->n[l - 1];
    ck_assert_uint_eq(r->n[0], r->dim + r->E);
    if (r->emb == SCORE_EMBED_FOURIER) {
        /* Documented: W_i = scale * N(0,1) from Philox (seed, stream 3, counter 0, row 0, col i). */
        score_rng *g;
        float z[64];
        ck_assert_ok(score_rng_new(&g, SCORE_RNG_PHILOX4X32_10, (uint64_t)seed));
        ck_assert_ok(score_rng_set_stream(g, 3));
        ck_assert_ok(score_rng_fill_normal(g, 0, 1, 0, r->half, z));
        for (size_t i = 0; i < r->half; i++)
            r->freq[i] = TEST_TWO_PI * (double)(float)(scale * (double)z[i]);
        score_rng_free(g);
    } else if (r->emb == SCORE_EMBED_SINUSOIDAL) {
        double den = r->half > 1 ? (double)(r->half - 1) : 1.0;
        for (size_t i = 0; i < r->half; i++)
            r->freq[i] = exp(-log(10000.0) * (double)i / den);
    }
    r->np = score_model_param_count(m);
    buf = malloc(r->np * sizeof *buf);
    r->theta = malloc(r->np * sizeof *r->theta);
    ck_assert_ok(score_model_params_get(m, buf, r->np));
    for (size_t i = 0; i < r->np; i++)
        r->theta[i] = buf[i];
    free(buf);
}

static void ref_free(ref *r)
{
    free(r->theta);
    r->theta = NULL;
}

/* F(x, c) for one row, in double, from flat parameters th (the documented layout). The
 * embedding features are rounded to float like the library's documented float input. */
static void ref_forward(const ref *r, const double *th, const double *x, double c, double *out)
{
    double buf[2][RMAXW], *hp = buf[0], *hn = buf[1];
    size_t off = 0, dim = r->dim;
    for (size_t j = 0; j < dim; j++)
        hp[j] = x[j];
    if (r->emb == SCORE_EMBED_NONE) {
        hp[dim] = (float)c;
    } else {
        for (size_t i = 0; i < r->half; i++) {
            hp[dim + i] = (float)sin(r->freq[i] * c);
            hp[dim + r->half + i] = (float)cos(r->freq[i] * c);
        }
    }
    for (size_t l = 1; l <= r->L; l++) {
        size_t nl = r->n[l], np = r->n[l - 1];
        const double *w = th + off, *b = th + off + nl * np;
        off += nl * np + nl;
        for (size_t i = 0; i < nl; i++) {
            double z = b[i];
            for (size_t j = 0; j < np; j++)
                z += w[i * np + j] * hp[j];
            if (l == r->L)
                out[i] = z;
            else
                hn[i] = act_f(r->act, z) + (r->res[l] ? hp[i] : 0.0);
        }
        {
            double *t = hp; hp = hn; hn = t;
        }
    }
}

/* Directional derivative of F along v at x (central differences, step h). */
static void ref_jvp(const ref *r, const double *th, const double *x, double c, const double *v,
                    double h, double *out)
{
    double xp[RMAXW] = {0}, xm[RMAXW] = {0}, fp[RMAXW], fm[RMAXW];
    for (size_t j = 0; j < r->dim; j++) {
        xp[j] = x[j] + h * v[j];
        xm[j] = x[j] - h * v[j];
    }
    ref_forward(r, th, xp, c, fp);
    ref_forward(r, th, xm, c, fm);
    for (size_t j = 0; j < r->dim; j++)
        out[j] = (fp[j] - fm[j]) / (2.0 * h);
}

static double ref_trace(const ref *r, const double *th, const double *x, double c, double h)
{
    double e[RMAXW] = {0}, jv[RMAXW], s = 0.0;
    for (size_t j = 0; j < r->dim; j++) {
        e[j] = 1.0;
        ref_jvp(r, th, x, c, e, h, jv);
        s += jv[j];
        e[j] = 0.0;
    }
    return s;
}

/* ---- problem data --------------------------------------------------------------------- */

enum { NB = 3, KP = 2 };

typedef struct problem {
    size_t n, k, dim;
    float *x, *v, *gout;
    double *xd, *vd, *c, *w, *wv;
} problem;

static double urand(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return ((*s >> 8) + 0.5) / 16777216.0;
}

static double nrand(unsigned *s)
{
    double u1 = urand(s), u2 = urand(s);
    return sqrt(-2.0 * log(u1)) * cos(TEST_TWO_PI * u2);
}

static void problem_init(problem *p, size_t n, size_t k, size_t dim, unsigned seed)
{
    p->n = n; p->k = k; p->dim = dim;
    p->x = malloc(n * dim * sizeof *p->x);
    p->xd = malloc(n * dim * sizeof *p->xd);
    p->v = malloc(n * k * dim * sizeof *p->v);
    p->vd = malloc(n * k * dim * sizeof *p->vd);
    p->gout = malloc(n * dim * sizeof *p->gout);
    p->c = malloc(n * sizeof *p->c);
    p->w = malloc(n * sizeof *p->w);
    p->wv = malloc(n * k * sizeof *p->wv);
    for (size_t i = 0; i < n * dim; i++) {
        p->x[i] = (float)nrand(&seed);
        p->xd[i] = p->x[i];
        p->gout[i] = (float)nrand(&seed);
    }
    for (size_t i = 0; i < n * k * dim; i++) {
        p->v[i] = (float)nrand(&seed);
        p->vd[i] = p->v[i];
    }
    for (size_t i = 0; i < n; i++) {
        p->c[i] = urand(&seed);
        p->w[i] = 0.5 + urand(&seed);
    }
    for (size_t i = 0; i < n * k; i++)
        p->wv[i] = 0.5 + urand(&seed);
}

static void problem_free(problem *p)
{
    free(p->x); free(p->xd); free(p->v); free(p->vd); free(p->gout);
    free(p->c); free(p->w); free(p->wv);
}

/* ---- error bookkeeping: max |a - b| / (1 + |b|) ---------------------------------------- */
typedef struct errstat {
    double max_rel;
} errstat;

static void err_add(errstat *e, double a, double b)
{
    double d = fabs(a - b) / (1.0 + fabs(b));
    if (!(d <= e->max_rel))
        e->max_rel = isnan(d) ? INFINITY : (d > e->max_rel ? d : e->max_rel);
}

/* Measured errors, printed per configuration when SCORE_TEST_VERBOSE is set. */
static void report(const char *what, int cfg, const errstat *e)
{
    if (getenv("SCORE_TEST_VERBOSE") != NULL)
        fprintf(stderr, "ERR %-24s cfg %2d max rel err %.3e\n", what, cfg, e->max_rel);
}

/* ---- configurations: activation x residual x embedding x depth -------------------------- */
enum { N_CFG = 5 * 2 * 3 * 2 };

static score_model *make_cfg(int i, size_t dim)
{
    int act = 1 + i % 5, residual = (i / 5) % 2, emb = (i / 10) % 3, shallow = i / 30;
    score_model *m;
    /* Widths 6, 6, 5: layer 2 is a residual block (when enabled), layer 3 is not; or a single
     * hidden layer of 6 (the tangent passes have special cases for the first layer). */
    size_t widths[3] = {6, 6, 5};
    ck_assert_ok(score_model_new(&m, SCORE_MODEL_MLP, dim));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_ACTIVATION, act));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_RESIDUAL, residual));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_EMBEDDING, emb));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_EMBED_DIM, 4));
    ck_assert_ok(score_model_set_f64(m, SCORE_MODEL_PARAM_FOURIER_SCALE, 1.5));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_SEED, 1000 + i));
    ck_assert_ok(score_model_set_hidden_widths(m, shallow ? 1 : 3, widths));
    ck_assert_ok(score_model_prepare(m));
    return m;
}

static void check_errs(const char *what, const errstat *e, double tol)
{
    ck_assert_msg(e->max_rel <= tol, "%s: max relative error %.3e > %.1e", what, e->max_rel, tol);
}

START_TEST(forward_matches_reference)
{
    ref r;
    problem p;
    errstat e = {0};
    float out[NB * 3];
    score_model *m = make_cfg(_i, 3);
    ref_init(&r, m);
    problem_init(&p, NB, KP, 3, 11u + (unsigned)_i);
    ck_assert_ok(score_model_forward(m, NB, p.x, p.c, out));
    for (size_t b = 0; b < NB; b++) {
        double f[8];
        ref_forward(&r, r.theta, p.xd + b * 3, p.c[b], f);
        for (size_t j = 0; j < 3; j++)
            err_add(&e, out[b * 3 + j], f[j]);
    }
    check_errs("forward", &e, TOL_FWD);
    report("forward", _i, &e);
    problem_free(&p);
    ref_free(&r);
    score_model_free(m);
}
END_TEST

/* backward: input gradient (J^T gout) and parameter gradient of sum_b gout_b . F_b. */
START_TEST(backward_vs_fd)
{
    enum { D = 3 };
    ref r;
    problem p;
    errstat ex = {0}, ep = {0};
    float out[NB * D], gx[NB * D], *grad;
    double *th;
    score_model *m = make_cfg(_i, D);
    ref_init(&r, m);
    problem_init(&p, NB, KP, D, 21u + (unsigned)_i);
    grad = calloc(r.np, sizeof *grad);
    th = malloc(r.np * sizeof *th);
    ck_assert_ok(score_model_forward(m, NB, p.x, p.c, out));
    ck_assert_ok(score_model_backward(m, NB, p.gout, grad, gx));
    for (size_t b = 0; b < NB; b++) {
        for (size_t i = 0; i < D; i++) {
            double e[D] = {0}, jv[D], s = 0;
            e[i] = 1.0;
            ref_jvp(&r, r.theta, p.xd + b * D, p.c[b], e, H_FD, jv);
            for (size_t j = 0; j < D; j++)
                s += p.gout[b * D + j] * jv[j];
            err_add(&ex, gx[b * D + i], s);
        }
    }
    memcpy(th, r.theta, r.np * sizeof *th);
    for (size_t q = 0; q < r.np; q++) {
        double lp = 0, lm = 0, f[D];
        for (int sgn = -1; sgn <= 1; sgn += 2) {
            double acc = 0;
            th[q] = r.theta[q] + sgn * H_FD;
            for (size_t b = 0; b < NB; b++) {
                ref_forward(&r, th, p.xd + b * D, p.c[b], f);
                for (size_t j = 0; j < D; j++)
                    acc += p.gout[b * D + j] * f[j];
            }
            if (sgn < 0) lm = acc; else lp = acc;
        }
        th[q] = r.theta[q];
        err_add(&ep, grad[q], (lp - lm) / (2 * H_FD));
    }
    check_errs("input gradient", &ex, TOL_DERIV);
    check_errs("parameter gradient", &ep, TOL_DERIV);
    report("backward input grad", _i, &ex);
    report("backward param grad", _i, &ep);
    /* Gradients accumulate: a second backward doubles them. */
    {
        float *g2 = malloc(r.np * sizeof *g2);
        memcpy(g2, grad, r.np * sizeof *g2);
        ck_assert_ok(score_model_backward(m, NB, p.gout, grad, NULL));
        for (size_t q = 0; q < r.np; q++)
            ck_assert_float_eq_tol(grad[q], 2 * g2[q], 1e-6f * (1 + fabsf(g2[q])));
        free(g2);
    }
    free(th);
    free(grad);
    problem_free(&p);
    ref_free(&r);
    score_model_free(m);
}
END_TEST

START_TEST(jvp_vjp_vs_fd)
{
    enum { D = 3 };
    ref r;
    problem p;
    errstat ej = {0}, ev = {0}, ef = {0};
    float out[NB * KP * D], fx[NB * D], fwd[NB * D];
    score_model *m = make_cfg(_i, D);
    ref_init(&r, m);
    problem_init(&p, NB, KP, D, 31u + (unsigned)_i);
    ck_assert_ok(score_model_jvp(m, NB, p.x, p.c, KP, p.v, out, fx));
    ck_assert_ok(score_model_forward(m, NB, p.x, p.c, fwd));
    for (size_t i = 0; i < NB * D; i++)
        err_add(&ef, fx[i], fwd[i]);
    for (size_t b = 0; b < NB; b++)
        for (size_t q = 0; q < KP; q++) {
            double jv[D];
            ref_jvp(&r, r.theta, p.xd + b * D, p.c[b], p.vd + (b * KP + q) * D, H_FD, jv);
            for (size_t j = 0; j < D; j++)
                err_add(&ej, out[(b * KP + q) * D + j], jv[j]);
        }
    /* vjp: (J^T u)_i = d/dx_i (u . F) */
    ck_assert_ok(score_model_vjp(m, NB, p.x, p.c, KP, p.v, out));
    for (size_t b = 0; b < NB; b++)
        for (size_t q = 0; q < KP; q++)
            for (size_t i = 0; i < D; i++) {
                double e[D] = {0}, jv[D], s = 0;
                e[i] = 1.0;
                ref_jvp(&r, r.theta, p.xd + b * D, p.c[b], e, H_FD, jv);
                for (size_t j = 0; j < D; j++)
                    s += p.vd[(b * KP + q) * D + j] * jv[j];
                err_add(&ev, out[(b * KP + q) * D + i], s);
            }
    ck_assert_double_eq(ef.max_rel, 0.0); /* same float computation */
    check_errs("jvp", &ej, TOL_DERIV);
    check_errs("vjp", &ev, TOL_DERIV);
    report("jvp", _i, &ej);
    report("vjp", _i, &ev);
    problem_free(&p);
    ref_free(&r);
    score_model_free(m);
}
END_TEST

START_TEST(trace_vs_fd_and_jvps)
{
    enum { D = 3 };
    ref r;
    problem p;
    errstat et = {0}, ej = {0};
    double tr[NB];
    float fx[NB * D], fwd[NB * D], e[NB * D * D], jv[NB * D * D];
    score_model *m = make_cfg(_i, D);
    ref_init(&r, m);
    problem_init(&p, NB, KP, D, 41u + (unsigned)_i);
    ck_assert_ok(score_model_trace(m, NB, p.x, p.c, tr, fx));
    ck_assert_ok(score_model_forward(m, NB, p.x, p.c, fwd));
    for (size_t i = 0; i < NB * D; i++)
        ck_assert_float_eq(fx[i], fwd[i]);
    /* Against the dim JVPs with unit vectors (library vs library, two GEMM orders). */
    memset(e, 0, sizeof e);
    for (size_t b = 0; b < NB; b++)
        for (size_t j = 0; j < D; j++)
            e[(b * D + j) * D + j] = 1.0f;
    ck_assert_ok(score_model_jvp(m, NB, p.x, p.c, D, e, jv, NULL));
    for (size_t b = 0; b < NB; b++) {
        double s = 0;
        for (size_t j = 0; j < D; j++)
            s += jv[(b * D + j) * D + j];
        err_add(&ej, tr[b], s);
        err_add(&et, tr[b], ref_trace(&r, r.theta, p.xd + b * D, p.c[b], H_FD));
    }
    check_errs("trace vs jvps", &ej, TOL_REORDER);
    check_errs("trace", &et, TOL_DERIV);
    report("trace", _i, &et);
    problem_free(&p);
    ref_free(&r);
    score_model_free(m);
}
END_TEST

/* Gradient of sum_b w_b tr_b + gout . F, with and without gout. */
START_TEST(trace_grad_vs_fd)
{
    enum { D = 3 };
    ref r;
    problem p;
    errstat eg = {0}, et = {0}, eg0 = {0};
    double tr[NB], tr2[NB], *th;
    float fx[NB * D], fwd[NB * D], *grad, *grad0;
    score_model *m = make_cfg(_i, D);
    ref_init(&r, m);
    problem_init(&p, NB, KP, D, 51u + (unsigned)_i);
    grad = calloc(r.np, sizeof *grad);
    grad0 = calloc(r.np, sizeof *grad0);
    th = malloc(r.np * sizeof *th);
    ck_assert_ok(score_model_trace_grad(m, NB, p.x, p.c, p.w, p.gout, grad, tr, fx));
    ck_assert_ok(score_model_trace_grad(m, NB, p.x, p.c, p.w, NULL, grad0, NULL, NULL));
    ck_assert_ok(score_model_trace(m, NB, p.x, p.c, tr2, fwd));
    for (size_t b = 0; b < NB; b++)
        err_add(&et, tr[b], tr2[b]);
    for (size_t i = 0; i < NB * D; i++)
        ck_assert_float_eq(fx[i], fwd[i]);
    memcpy(th, r.theta, r.np * sizeof *th);
    for (size_t q = 0; q < r.np; q++) {
        double l[2] = {0, 0}, l0[2] = {0, 0};
        for (int s = 0; s < 2; s++) {
            double f[D];
            th[q] = r.theta[q] + (s ? H_FD_OUTER : -H_FD_OUTER);
            for (size_t b = 0; b < NB; b++) {
                double t = p.w[b] * ref_trace(&r, th, p.xd + b * D, p.c[b], H_FD_INNER);
                ref_forward(&r, th, p.xd + b * D, p.c[b], f);
                l0[s] += t;
                l[s] += t;
                for (size_t j = 0; j < D; j++)
                    l[s] += p.gout[b * D + j] * f[j];
            }
        }
        th[q] = r.theta[q];
        err_add(&eg, grad[q], (l[1] - l[0]) / (2 * H_FD_OUTER));
        err_add(&eg0, grad0[q], (l0[1] - l0[0]) / (2 * H_FD_OUTER));
    }
    check_errs("trace from trace_grad", &et, TOL_REORDER);
    check_errs("trace_grad", &eg, TOL_DERIV2);
    check_errs("trace_grad (gout NULL)", &eg0, TOL_DERIV2);
    report("trace_grad", _i, &eg);
    report("trace_grad gout=NULL", _i, &eg0);
    free(th);
    free(grad);
    free(grad0);
    problem_free(&p);
    ref_free(&r);
    score_model_free(m);
}
END_TEST

/* Gradient of sum_{b,q} w_bq v^T J v + gout . F; also with w = NULL (all ones). */
START_TEST(vjv_grad_vs_fd)
{
    enum { D = 3 };
    ref r;
    problem p;
    errstat eg = {0}, ev = {0}, eg1 = {0};
    double vjv[NB * KP], *th;
    float *grad, *grad1;
    score_model *m = make_cfg(_i, D);
    ref_init(&r, m);
    problem_init(&p, NB, KP, D, 61u + (unsigned)_i);
    grad = calloc(r.np, sizeof *grad);
    grad1 = calloc(r.np, sizeof *grad1);
    th = malloc(r.np * sizeof *th);
    ck_assert_ok(score_model_vjv_grad(m, NB, p.x, p.c, KP, p.v, p.wv, p.gout, grad, vjv, NULL));
    ck_assert_ok(score_model_vjv_grad(m, NB, p.x, p.c, KP, p.v, NULL, NULL, grad1, NULL, NULL));
    for (size_t b = 0; b < NB; b++)
        for (size_t q = 0; q < KP; q++) {
            double jv[D], s = 0;
            const double *vq = p.vd + (b * KP + q) * D;
            ref_jvp(&r, r.theta, p.xd + b * D, p.c[b], vq, H_FD, jv);
            for (size_t j = 0; j < D; j++)
                s += vq[j] * jv[j];
            err_add(&ev, vjv[b * KP + q], s);
        }
    memcpy(th, r.theta, r.np * sizeof *th);
    for (size_t q = 0; q < r.np; q++) {
        double l[2] = {0, 0}, l1[2] = {0, 0};
        for (int s = 0; s < 2; s++) {
            double f[D], jv[D];
            th[q] = r.theta[q] + (s ? H_FD_OUTER : -H_FD_OUTER);
            for (size_t b = 0; b < NB; b++) {
                for (size_t k = 0; k < KP; k++) {
                    const double *vq = p.vd + (b * KP + k) * D;
                    double t = 0;
                    ref_jvp(&r, th, p.xd + b * D, p.c[b], vq, H_FD_INNER, jv);
                    for (size_t j = 0; j < D; j++)
                        t += vq[j] * jv[j];
                    l[s] += p.wv[b * KP + k] * t;
                    l1[s] += t;
                }
                ref_forward(&r, th, p.xd + b * D, p.c[b], f);
                for (size_t j = 0; j < D; j++)
                    l[s] += p.gout[b * D + j] * f[j];
            }
        }
        th[q] = r.theta[q];
        err_add(&eg, grad[q], (l[1] - l[0]) / (2 * H_FD_OUTER));
        err_add(&eg1, grad1[q], (l1[1] - l1[0]) / (2 * H_FD_OUTER));
    }
    check_errs("vjv", &ev, TOL_DERIV);
    check_errs("vjv_grad", &eg, TOL_DERIV2);
    check_errs("vjv_grad (w, gout NULL)", &eg1, TOL_DERIV2);
    report("v^T J v", _i, &ev);
    report("vjv_grad", _i, &eg);
    free(th);
    free(grad);
    free(grad1);
    problem_free(&p);
    ref_free(&r);
    score_model_free(m);
}
END_TEST

/* Row results do not depend on the batch size or on the tangent blocking; parameter
 * gradients (sums over rows) agree to float rounding. */
START_TEST(batch_and_block_invariance)
{
    enum { D = 5, N = 37, K = 3 };
    problem p;
    score_model *m, *mb;
    size_t widths[2] = {16, 16}, np;
    float out[N * D], one[D], jv[N * K * D], jvb[N * K * D], *g, *gb;
    double tr[N], trb[N], vjv[N * K], vjvb[N * K];
    ck_assert_ok(score_model_new(&m, SCORE_MODEL_MLP, D));
    ck_assert_ok(score_model_set_hidden_widths(m, 2, widths));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_ACTIVATION, SCORE_ACT_GELU));
    ck_assert_ok(score_model_prepare(m));
    ck_assert_ok(score_model_clone(&mb, m));
    /* A budget of 1 byte forces blocks of one row in every tangent computation. */
    score__mlp_set_tangent_budget(mb, 1);
    problem_init(&p, N, K, D, 99u);
    np = score_model_param_count(m);
    g = calloc(np, sizeof *g);
    gb = calloc(np, sizeof *gb);

    ck_assert_ok(score_model_forward(m, N, p.x, p.c, out));
    for (size_t b = 0; b < N; b++) {
        ck_assert_ok(score_model_forward(m, 1, p.x + b * D, p.c + b, one));
        for (size_t j = 0; j < D; j++)
            ck_assert_float_eq_tol(one[j], out[b * D + j], 1e-6f * (1 + fabsf(out[b * D + j])));
    }
    ck_assert_ok(score_model_jvp(m, N, p.x, p.c, K, p.v, jv, NULL));
    ck_assert_ok(score_model_jvp(mb, N, p.x, p.c, K, p.v, jvb, NULL));
    for (size_t i = 0; i < N * K * D; i++)
        ck_assert_float_eq_tol(jv[i], jvb[i], 1e-6f * (1 + fabsf(jv[i])));
    ck_assert_ok(score_model_vjp(m, N, p.x, p.c, K, p.v, jv));
    ck_assert_ok(score_model_vjp(mb, N, p.x, p.c, K, p.v, jvb));
    for (size_t i = 0; i < N * K * D; i++)
        ck_assert_float_eq_tol(jv[i], jvb[i], 1e-6f * (1 + fabsf(jv[i])));
    ck_assert_ok(score_model_trace(m, N, p.x, p.c, tr, NULL));
    ck_assert_ok(score_model_trace(mb, N, p.x, p.c, trb, NULL));
    for (size_t b = 0; b < N; b++)
        ck_assert_double_eq_tol(tr[b], trb[b], 1e-6 * (1 + fabs(tr[b])));
    ck_assert_ok(score_model_trace_grad(m, N, p.x, p.c, p.w, p.gout, g, tr, NULL));
    ck_assert_ok(score_model_trace_grad(mb, N, p.x, p.c, p.w, p.gout, gb, trb, NULL));
    for (size_t b = 0; b < N; b++)
        ck_assert_double_eq_tol(tr[b], trb[b], 1e-6 * (1 + fabs(tr[b])));
    for (size_t q = 0; q < np; q++)
        ck_assert_float_eq_tol(g[q], gb[q], (float)TOL_REORDER * (1 + fabsf(g[q])));
    memset(g, 0, np * sizeof *g);
    memset(gb, 0, np * sizeof *gb);
    ck_assert_ok(score_model_vjv_grad(m, N, p.x, p.c, K, p.v, p.wv, p.gout, g, vjv, NULL));
    ck_assert_ok(score_model_vjv_grad(mb, N, p.x, p.c, K, p.v, p.wv, p.gout, gb, vjvb, NULL));
    for (size_t i = 0; i < N * K; i++)
        ck_assert_double_eq_tol(vjv[i], vjvb[i], 1e-6 * (1 + fabs(vjv[i])));
    for (size_t q = 0; q < np; q++)
        ck_assert_float_eq_tol(g[q], gb[q], (float)TOL_REORDER * (1 + fabsf(g[q])));
    free(g);
    free(gb);
    problem_free(&p);
    score_model_free(m);
    score_model_free(mb);
}
END_TEST

/* The inference path (score__model_infer_ws: the samplers') gives a row the same bits whether
 * it is evaluated alone or in a batch: a SiLU MLP of the samplers' shape (width 128, three
 * hidden layers, residual), one c for the batch (the embedding folded into the first layer's
 * bias once) and a c per row, batches below and above SCORE__GEMM_WT_SMALL rows (the unpacked
 * small product and the packed one), against calls of one row. */
START_TEST(infer_single_row_bits)
{
    enum { D = 3, N = 70 };
    size_t widths[3] = {128, 128, 128}, np;
    score_model *m;
    score__model_ws *ws;
    float *theta, x[N * D], out[N * D], one[D];
    double c[N];
    unsigned s = 17;
    ck_assert_ok(score_model_new(&m, SCORE_MODEL_MLP, D));
    ck_assert_ok(score_model_set_hidden_widths(m, 3, widths));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_ACTIVATION, SCORE_ACT_SILU));
    ck_assert_ok(score_model_prepare(m));
    np = score_model_param_count(m);
    theta = malloc(np * sizeof *theta);
    ck_assert_ptr_nonnull(theta);
    for (size_t q = 0; q < np; q++) /* biases not zero, weights of a trained network's size */
        theta[q] = (float)(0.2 * nrand(&s));
    ck_assert_ok(score_model_params_set(m, theta, np));
    for (size_t i = 0; i < N * D; i++)
        x[i] = (float)(4.0 * urand(&s) - 2.0);
    ck_assert_ok(score__model_ws_new(&ws));
    for (int pass = 0; pass < 2; pass++)
        for (size_t n = 5; n <= N; n += N - 5) {
            for (size_t i = 0; i < n; i++)
                c[i] = pass == 0 ? 0.37 : urand(&s);
            ck_assert_ok(score__model_infer_ws(m, ws, n, x, c, out));
            for (size_t b = 0; b < n; b++) {
                ck_assert_ok(score__model_infer_ws(m, ws, 1, x + b * D, c + b, one));
                ck_assert_mem_eq(one, out + b * D, sizeof one);
            }
        }
    score__model_ws_free(ws);
    free(theta);
    score_model_free(m);
}
END_TEST

/* A backward through a workspace other than the model's own (a loss's) consumes the forward
 * cache (the cotangents go over the stored activation derivatives): the same bits of the
 * parameter and input gradients as the public pair, which keeps the cache; a second backward
 * through that workspace is refused. Residual layers of equal widths (the fused dz passes) and
 * a change of width (a separate one), class labels, one thread and two (rows and weights large
 * enough for the threaded phases). */
START_TEST(consuming_backward_bits)
{
    enum { D = 3, N = 300, K = 4 };
    size_t widths[2][3] = {{256, 256, 256}, {192, 256, 256}}, np;
    score_model *m;
    score__model_ws *ws;
    float *theta, *g1, *g2, x[N * D], gout[N * D], o1[N * D], o2[N * D], gx1[N * D], gx2[N * D];
    double c[N];
    int32_t lab[N];
    unsigned s = 23;
    ck_assert_ok(score_model_new(&m, SCORE_MODEL_MLP, D));
    ck_assert_ok(score_model_set_hidden_widths(m, 3, widths[_i / 2]));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_ACTIVATION, SCORE_ACT_SILU));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_RESIDUAL, 1));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_NUM_CLASSES, K));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_THREADS, 1 + _i % 2));
    ck_assert_ok(score_model_prepare(m));
    np = score_model_param_count(m);
    theta = malloc(np * sizeof *theta);
    g1 = malloc(np * sizeof *g1);
    g2 = malloc(np * sizeof *g2);
    ck_assert(theta != NULL && g1 != NULL && g2 != NULL);
    for (size_t q = 0; q < np; q++) {
        theta[q] = (float)(0.1 * nrand(&s));
        g1[q] = g2[q] = 0.25f; /* gradients accumulate */
    }
    ck_assert_ok(score_model_params_set(m, theta, np));
    for (size_t i = 0; i < N * D; i++) {
        x[i] = (float)(4.0 * urand(&s) - 2.0);
        gout[i] = (float)nrand(&s);
    }
    for (size_t b = 0; b < N; b++) {
        c[b] = urand(&s);
        lab[b] = (int32_t)(b % (K + 1));
    }
    ck_assert_ok(score_model_forward_cond(m, N, x, c, lab, NULL, o1));
    ck_assert_ok(score_model_backward(m, N, gout, g1, gx1));
    ck_assert_ok(score__model_ws_new(&ws));
    ws->labels = lab;
    ws->labels_per_row = 1;
    ck_assert_ok(score__model_forward_ws(m, ws, N, x, c, o2));
    ck_assert_mem_eq(o1, o2, sizeof o1);
    ck_assert_ok(score__model_backward_ws(m, ws, N, gout, g2, gx2));
    ck_assert_mem_eq(g1, g2, np * sizeof *g1);
    ck_assert_mem_eq(gx1, gx2, sizeof gx1);
    ck_assert_fails_with(score__model_backward_ws(m, ws, N, gout, g2, NULL), SCORE_E_MISUSE);
    /* without gx (the loss's call) */
    for (size_t q = 0; q < np; q++)
        g1[q] = g2[q] = 0.25f;
    ck_assert_ok(score_model_backward(m, N, gout, g1, NULL));
    ck_assert_ok(score__model_forward_ws(m, ws, N, x, c, o2));
    ck_assert_ok(score__model_backward_ws(m, ws, N, gout, g2, NULL));
    ck_assert_mem_eq(g1, g2, np * sizeof *g1);
    score__model_ws_free(ws);
    free(theta);
    free(g1);
    free(g2);
    score_model_free(m);
}
END_TEST

/* A wider problem (dim 40, hidden 64) where the default budget is exceeded by the trace
 * tangents of the whole batch, checked row by row against single-row calls. */
START_TEST(large_dim_trace_blocks)
{
    enum { D = 40, N = 50 };
    problem p;
    score_model *m;
    double tr[N], one;
    ck_assert_ok(score_model_new_mlp(&m, D, 64, 2, SCORE_ACT_SILU, 5));
    ck_assert_ok(score_model_prepare(m));
    score__mlp_set_tangent_budget(m, 200 * 1024); /* ~ 5 rows per block */
    problem_init(&p, N, 1, D, 7u);
    ck_assert_ok(score_model_trace(m, N, p.x, p.c, tr, NULL));
    for (size_t b = 0; b < N; b += 7) {
        ck_assert_ok(score_model_trace(m, 1, p.x + b * D, p.c + b, &one, NULL));
        ck_assert_double_eq_tol(one, tr[b], 1e-6 * (1 + fabs(tr[b])));
    }
    problem_free(&p);
    score_model_free(m);
}
END_TEST

/* dim + E == width: the first layer is still not residual; the second is. */
START_TEST(first_layer_never_residual)
{
    ref r;
    problem p;
    errstat e = {0};
    score__mlp_info info;
    float out[NB * 2];
    size_t widths[2] = {3, 3};
    score_model *m;
    ck_assert_ok(score_model_new(&m, SCORE_MODEL_MLP, 2));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_EMBEDDING, SCORE_EMBED_NONE));
    ck_assert_ok(score_model_set_hidden_widths(m, 2, widths));
    ck_assert_ok(score_model_prepare(m));
    ck_assert_ok(score__mlp_info_get(m, &info));
    ck_assert_int_eq(info.width[0], 3);
    ck_assert_int_eq(info.residual[1], 0);
    ck_assert_int_eq(info.residual[2], 1);
    ck_assert_int_eq(info.residual[3], 0);
    ref_init(&r, m);
    problem_init(&p, NB, KP, 2, 5u);
    ck_assert_ok(score_model_forward(m, NB, p.x, p.c, out));
    for (size_t b = 0; b < NB; b++) {
        double f[2];
        ref_forward(&r, r.theta, p.xd + b * 2, p.c[b], f);
        for (size_t j = 0; j < 2; j++)
            err_add(&e, out[b * 2 + j], f[j]);
    }
    check_errs("forward", &e, TOL_FWD);
    problem_free(&p);
    ref_free(&r);
    score_model_free(m);
}
END_TEST

/* The documented initialisation: uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) from Philox
 * (seed, stream 1 for weights / 2 for biases, counter = layer, row = unit, column = input). */
START_TEST(initialisation_documented)
{
    score_model *m, *m2;
    score_rng *g;
    size_t np;
    float *a, *b;
    double u[8];
    const size_t D = 2, H = 8;
    ck_assert_ok(score_model_new_mlp(&m, D, H, 2, SCORE_ACT_TANH, 77));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_EMBED_DIM, 6));
    np = score_model_param_count(m);
    /* layers: (2+6) -> 8 -> 8 -> 2 */
    ck_assert_uint_eq(np, 8 * 8 + 8 + 8 * 8 + 8 + 2 * 8 + 2);
    a = malloc(np * sizeof *a);
    b = malloc(np * sizeof *b);
    ck_assert_ok(score_model_params_get(m, a, np));
    ck_assert_ok(score_rng_new(&g, SCORE_RNG_PHILOX4X32_10, 77));
    /* layer 2, weight row 3 */
    ck_assert_ok(score_rng_set_stream(g, 1));
    ck_assert_ok(score_rng_set_counter(g, 2));
    ck_assert_ok(score_rng_fill_uniform_f64(g, 3, 1, 0, 8, u));
    for (size_t j = 0; j < 8; j++)
        ck_assert_float_eq(a[72 + 3 * 8 + j], (float)((2 * u[j] - 1) / sqrt(8.0)));
    /* layer 3 bias */
    ck_assert_ok(score_rng_set_stream(g, 2));
    ck_assert_ok(score_rng_set_counter(g, 3));
    ck_assert_ok(score_rng_fill_uniform_f64(g, 0, 1, 0, 2, u));
    for (size_t j = 0; j < 2; j++)
        ck_assert_float_eq(a[144 + 16 + j], (float)((2 * u[j] - 1) / sqrt(8.0)));
    score_rng_free(g);
    for (size_t i = 0; i < 64; i++)
        ck_assert(fabsf(a[i]) <= 1.0f / sqrtf(8.0f));
    /* same seed -> same parameters; another seed -> different */
    ck_assert_ok(score_model_new_mlp(&m2, D, H, 2, SCORE_ACT_TANH, 77));
    ck_assert_ok(score_model_set_i64(m2, SCORE_MODEL_PARAM_EMBED_DIM, 6));
    ck_assert_ok(score_model_params_get(m2, b, np));
    ck_assert_mem_eq(a, b, np * sizeof *a);
    score_model_free(m2);
    ck_assert_ok(score_model_new_mlp(&m2, D, H, 2, SCORE_ACT_TANH, 78));
    ck_assert_ok(score_model_set_i64(m2, SCORE_MODEL_PARAM_EMBED_DIM, 6));
    ck_assert_ok(score_model_params_get(m2, b, np));
    ck_assert(memcmp(a, b, np * sizeof *a) != 0);
    score_model_free(m2);
    free(a);
    free(b);
    score_model_free(m);
}
END_TEST

START_TEST(params_clone_lifecycle)
{
    score_model *m, *c;
    size_t np;
    float *a, *b, x[4] = {0.1f, -0.2f, 0.3f, 0.4f}, o1[4], o2[4];
    double cc[2] = {0.3, 0.7};
    int64_t v;
    size_t widths[2] = {5, 7};
    ck_assert_ok(score_model_new(&m, SCORE_MODEL_MLP, 2));
    ck_assert_int_eq(score_model_kind(m), SCORE_MODEL_MLP);
    ck_assert_uint_eq(score_model_dim(m), 2);
    ck_assert_ok(score_model_set_hidden_widths(m, 2, widths));
    ck_assert_ok(score_model_get_i64(m, SCORE_MODEL_PARAM_DEPTH, &v));
    ck_assert_int_eq(v, 2);
    ck_assert_ok(score_model_get_i64(m, SCORE_MODEL_PARAM_HIDDEN, &v));
    ck_assert_int_eq(v, 7);
    /* clone before prepare keeps the custom widths */
    ck_assert_ok(score_model_clone(&c, m));
    np = score_model_param_count(m);
    ck_assert_uint_eq(np, (2 + 32) * 5 + 5 + 5 * 7 + 7 + 7 * 2 + 2);
    ck_assert_uint_eq(score_model_param_count(c), np);
    ck_assert_uint_eq(score_model_capabilities(m),
                      SCORE_MODEL_CAP_PARAMS | SCORE_MODEL_CAP_BACKWARD | SCORE_MODEL_CAP_JVP |
                          SCORE_MODEL_CAP_VJP | SCORE_MODEL_CAP_TRACE | SCORE_MODEL_CAP_TRACE_GRAD |
                          SCORE_MODEL_CAP_VJV_GRAD | SCORE_MODEL_CAP_SAVE);
    a = malloc(np * sizeof *a);
    b = malloc(np * sizeof *b);
    ck_assert_ok(score_model_params_get(m, a, np));
    ck_assert_ok(score_model_params_get(c, b, np));
    ck_assert_mem_eq(a, b, np * sizeof *a);
    /* set -> get round trip; clone after prepare is independent */
    for (size_t i = 0; i < np; i++)
        a[i] = 0.01f * (float)((int)(i % 13) - 6);
    ck_assert_ok(score_model_params_set(m, a, np));
    ck_assert_ok(score_model_params_get(m, b, np));
    ck_assert_mem_eq(a, b, np * sizeof *a);
    score_model_free(c);
    ck_assert_ok(score_model_clone(&c, m));
    ck_assert_ok(score_model_forward(m, 2, x, cc, o1));
    ck_assert_ok(score_model_forward(c, 2, x, cc, o2));
    ck_assert_mem_eq(o1, o2, sizeof o1);
    a[0] = 1.0f;
    ck_assert_ok(score_model_params_set(c, a, np));
    ck_assert_ok(score_model_forward(m, 2, x, cc, o2));
    ck_assert_mem_eq(o1, o2, sizeof o1);
    /* after prepare the architecture is fixed */
    ck_assert_fails_with(score_model_set_i64(m, SCORE_MODEL_PARAM_HIDDEN, 8), SCORE_E_STAGE);
    ck_assert_fails_with(score_model_set_hidden_widths(m, 2, widths), SCORE_E_STAGE);
    /* HIDDEN / DEPTH after custom widths: the latest call wins */
    score_model_free(c);
    ck_assert_ok(score_model_new(&c, SCORE_MODEL_MLP, 2));
    ck_assert_ok(score_model_set_hidden_widths(c, 2, widths));
    ck_assert_ok(score_model_set_i64(c, SCORE_MODEL_PARAM_DEPTH, 1));
    ck_assert_ok(score_model_set_i64(c, SCORE_MODEL_PARAM_HIDDEN, 3));
    ck_assert_uint_eq(score_model_param_count(c), (2 + 32) * 3 + 3 + 3 * 2 + 2);
    score_model_free(c);
    free(a);
    free(b);
    score_model_free(m);
}
END_TEST

/* Output cotangent of the internal *_grad_fn variants for the test below: gout = F / 2 - x / 4,
 * recording that the rows arrive once each, in order. */
typedef struct gout_rec {
    size_t dim, next, calls;
    const float *x;
    int out_of_order;
} gout_rec;

static void gout_from_f(void *ctx, size_t row0, size_t rows, const float *fx, float *gout)
{
    gout_rec *g = ctx;
    if (row0 != g->next)
        g->out_of_order = 1;
    g->next = row0 + rows;
    g->calls++;
    for (size_t i = 0; i < rows * g->dim; i++)
        gout[i] = 0.5f * fx[i] - 0.25f * g->x[row0 * g->dim + i];
}

/* score__model_trace_grad_fn / score__model_vjv_grad_fn (gout built from F after the model's
 * own forward) give what the public array versions give with gout computed from a forward,
 * through the MLP's op (in several blocks) and through the generic fallback of kinds without
 * the op (here the MLP's ops without it: one forward, one call of the function). Networks:
 * residual then plain layer (12, 12, 10), all residual (12, 12, 12), one hidden layer (9). */
START_TEST(grad_fn_variants)
{
    enum { D = 4, N = 23, K = 2 };
    static const size_t widths[3][3] = {{12, 12, 10}, {12, 12, 12}, {9, 0, 0}};
    const size_t nw = _i == 2 ? 1 : 3;
    problem p;
    score_model *m;
    score__model_ops no_fn;
    const score__model_ops *own;
    float fx[N * D], fref[N * D], gref[N * D], ws[N * D], *g, *gr;
    double tr[N], trr[N], vjv[N * K], vjvr[N * K];
    size_t np;
    problem_init(&p, N, K, D, 31u + (unsigned)_i);
    ck_assert_ok(score_model_new(&m, SCORE_MODEL_MLP, D));
    ck_assert_ok(score_model_set_hidden_widths(m, nw, widths[_i]));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_ACTIVATION, SCORE_ACT_TANH));
    ck_assert_ok(score_model_prepare(m));
    score__mlp_set_tangent_budget(m, 4096); /* a few rows per block */
    np = score_model_param_count(m);
    g = malloc(np * sizeof *g);
    gr = malloc(np * sizeof *gr);
    own = m->ops;
    no_fn = *own;
    no_fn.trace_grad_fn = NULL;
    no_fn.vjv_grad_fn = NULL;
    ck_assert_ok(score_model_forward(m, N, p.x, p.c, fref));
    for (size_t i = 0; i < N * D; i++)
        gref[i] = 0.5f * fref[i] - 0.25f * p.x[i];
    for (int fallback = 0; fallback <= 1; fallback++) {
        gout_rec rec = {D, 0, 0, p.x, 0};
        m->ops = fallback ? &no_fn : own;
        /* trace */
        memset(gr, 0, np * sizeof *gr);
        memset(g, 0, np * sizeof *g);
        ck_assert_ok(score_model_trace_grad(m, N, p.x, p.c, p.w, gref, gr, trr, NULL));
        ck_assert_ok(score__model_trace_grad_fn(m, N, p.x, p.c, p.w, gout_from_f, &rec, ws, g, tr,
                                                fx));
        ck_assert_int_eq(rec.out_of_order, 0);
        ck_assert_uint_eq(rec.next, N);
        if (fallback)
            ck_assert_uint_eq(rec.calls, 1);
        else
            ck_assert_uint_gt(rec.calls, 2);
        for (size_t i = 0; i < N * D; i++)
            ck_assert_float_eq_tol(fx[i], fref[i], 1e-6f * (1 + fabsf(fref[i])));
        for (size_t b = 0; b < N; b++)
            ck_assert_double_eq_tol(tr[b], trr[b], 1e-6 * (1 + fabs(trr[b])));
        for (size_t q = 0; q < np; q++)
            ck_assert_float_eq_tol(g[q], gr[q], (float)TOL_REORDER * (1 + fabsf(gr[q])));
        /* v^T J v */
        rec.next = rec.calls = 0;
        memset(gr, 0, np * sizeof *gr);
        memset(g, 0, np * sizeof *g);
        ck_assert_ok(score_model_vjv_grad(m, N, p.x, p.c, K, p.v, p.wv, gref, gr, vjvr, NULL));
        ck_assert_ok(score__model_vjv_grad_fn(m, N, p.x, p.c, K, p.v, p.wv, gout_from_f, &rec, ws,
                                              g, vjv, fx));
        ck_assert_int_eq(rec.out_of_order, 0);
        ck_assert_uint_eq(rec.next, N);
        for (size_t i = 0; i < N * D; i++)
            ck_assert_float_eq_tol(fx[i], fref[i], 1e-6f * (1 + fabsf(fref[i])));
        for (size_t i = 0; i < N * K; i++)
            ck_assert_double_eq_tol(vjv[i], vjvr[i], 1e-6 * (1 + fabs(vjvr[i])));
        for (size_t q = 0; q < np; q++)
            ck_assert_float_eq_tol(g[q], gr[q], (float)TOL_REORDER * (1 + fabsf(gr[q])));
    }
    m->ops = own;
    /* fx and the function are required */
    ck_assert_fails_with(score__model_trace_grad_fn(m, N, p.x, p.c, p.w, gout_from_f, NULL, ws, g,
                                                    tr, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score__model_vjv_grad_fn(m, N, p.x, p.c, K, p.v, NULL, NULL, NULL, ws, g,
                                                  vjv, fx), SCORE_E_INVAL);
    free(g);
    free(gr);
    problem_free(&p);
    score_model_free(m);
}
END_TEST

START_TEST(bad_arguments)
{
    score_model *m;
    float x[2] = {0, 0}, o[2], g[2], *grad;
    double c[1] = {0.5}, w[1] = {1}, tr[1];
    size_t widths[2] = {4, 4}, np;
    ck_assert_ok(score_model_new_mlp(&m, 2, 4, 2, SCORE_ACT_SILU, 0));
    ck_assert_fails_with(score_model_set_i64(m, SCORE_MODEL_PARAM_EMBED_DIM, 5), SCORE_E_RANGE);
    ck_assert_fails_with(score_model_set_i64(m, SCORE_MODEL_PARAM_ACTIVATION, 6), SCORE_E_RANGE);
    ck_assert_fails_with(score_model_set_i64(m, SCORE_MODEL_PARAM_GUIDANCE, 1), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_model_set_hidden_widths(NULL, 2, widths), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_set_hidden_widths(m, 2, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_set_hidden_widths(m, 0, widths), SCORE_E_RANGE);
    ck_assert_fails_with(score_model_set_hidden_widths(m, 65, widths), SCORE_E_RANGE);
    widths[1] = 0;
    ck_assert_fails_with(score_model_set_hidden_widths(m, 2, widths), SCORE_E_RANGE);
    widths[1] = 65537;
    ck_assert_fails_with(score_model_set_hidden_widths(m, 2, widths), SCORE_E_RANGE);
    score_model_free(m);
    ck_assert_fails_with(score_model_new_mlp(&m, 2, 0, 2, SCORE_ACT_SILU, 0), SCORE_E_RANGE);
    ck_assert_ptr_null(m);
    ck_assert_ok(score_model_new_mlp(&m, 2, 4, 2, SCORE_ACT_SILU, 0));
    ck_assert_fails_with(score_model_backward(m, 1, g, g, NULL), SCORE_E_MISUSE);
    ck_assert_fails_with(score_model_forward(m, 1, NULL, c, o), SCORE_E_INVAL);
    ck_assert_ok(score_model_forward(m, 0, NULL, NULL, NULL));
    np = score_model_param_count(m);
    grad = calloc(np, sizeof *grad);
    ck_assert_ok(score_model_forward(m, 1, x, c, o));
    ck_assert_fails_with(score_model_backward(m, 2, g, grad, NULL), SCORE_E_MISUSE);
    ck_assert_fails_with(score_model_backward(m, 1, g, NULL, NULL), SCORE_E_INVAL);
    ck_assert_ok(score_model_backward(m, 1, o, grad, g));
    /* a tangent computation invalidates the forward cache */
    ck_assert_ok(score_model_trace(m, 1, x, c, tr, NULL));
    ck_assert_fails_with(score_model_backward(m, 1, o, grad, NULL), SCORE_E_MISUSE);
    ck_assert_fails_with(score_model_trace_grad(m, 1, x, c, NULL, NULL, grad, NULL, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_trace_grad(m, 1, x, c, w, NULL, NULL, NULL, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_jvp(m, 1, x, c, 0, x, o, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_vjp(m, 1, x, c, 1, NULL, o), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_vjv_grad(m, 1, x, c, 1, NULL, NULL, NULL, grad, NULL, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_params_get(m, grad, np - 1), SCORE_E_SHAPE);
    grad[3] = NAN;
    ck_assert_fails_with(score_model_params_set(m, grad, np), SCORE_E_NUMERIC);
    c[0] = INFINITY;
    ck_assert_fails_with(score_model_forward(m, 1, x, c, o), SCORE_E_NUMERIC);
    free(grad);
    score_model_free(m);
    score_model_free(NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("model-mlp");
    TCase *tc = tcase_create("derivatives");
    TCase *tm = tcase_create("misc");
    tcase_set_timeout(tc, 120);
    tcase_set_timeout(tm, 60);
    tcase_add_loop_test(tc, forward_matches_reference, 0, N_CFG);
    tcase_add_loop_test(tc, backward_vs_fd, 0, N_CFG);
    tcase_add_loop_test(tc, jvp_vjp_vs_fd, 0, N_CFG);
    tcase_add_loop_test(tc, trace_vs_fd_and_jvps, 0, N_CFG);
    tcase_add_loop_test(tc, trace_grad_vs_fd, 0, N_CFG);
    tcase_add_loop_test(tc, vjv_grad_vs_fd, 0, N_CFG);
    tcase_add_test(tm, first_layer_never_residual);
    tcase_add_test(tm, batch_and_block_invariance);
    tcase_add_test(tm, infer_single_row_bits);
    tcase_add_loop_test(tm, consuming_backward_bits, 0, 4);
    tcase_add_test(tm, large_dim_trace_blocks);
    tcase_add_test(tm, initialisation_documented);
    tcase_add_test(tm, params_clone_lifecycle);
    tcase_add_test(tm, bad_arguments);
    tcase_add_loop_test(tm, grad_fn_variants, 0, 3);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, tm);
    return test_run_suite(s);
}
