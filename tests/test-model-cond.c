/* The MLP's label and context inputs: the forward pass against an independent double-precision
 * reference written here from the documented parameter layout (model.h: the label table after
 * the layers, the context as the last columns of W_1); every derivative (parameter gradients
 * including the label table and the context weights, input gradient, JVP, VJP, exact trace,
 * gradients of the trace and of v^T J v, with the array and the function cotangents) against
 * central finite differences of that reference; the null label; the documented
 * initialisation; save / load and clone; thread-count invariance with per-row labels; the
 * refusals with their exact status codes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "helpers/test-helpers.h"
#include "model/mlp-priv.h"

/* Tolerances (max |lib - ref| / (1 + |ref|)), as in test-model-mlp.c: the library computes in
 * float32, the reference in double; a K-term float dot product errs by about K * 6e-8 of the
 * sum of |terms|. Forward: ~1e-7 observed. First derivatives against central differences of
 * the double reference (h = 1e-5, exact to ~1e-10): the float rounding of the library's
 * sweeps, observed below 3e-7. Second-order quantities (gradients of the trace and of v^T J v)
 * against nested differences (h = 1e-4 both, ~1e-8): observed below 5e-7. A missing term (a
 * label row, a context column, a phi'' term) is O(1e-2) or more. */
#define TOL_FWD 1e-6
#define TOL_DERIV 2e-6
#define TOL_DERIV2 5e-6
/* Two float computations of the same value in different summation orders. */
#define TOL_REORDER 1e-5

#define H_FD 1e-5
#define H_FD_OUTER 1e-4
#define H_FD_INNER 1e-4

#define RMAXL 6
#define RMAXW 64

/* ---- the double-precision reference ----------------------------------------------------- */
typedef struct cref {
    size_t dim, L, n[RMAXL + 1], E, half, K, m, np, loff;
    int res[RMAXL + 1], act, emb;
    double freq[16];
    double *theta;
} cref;

static double act_f(int act, double z)
{
    switch (act) {
    case SCORE_ACT_SILU: return z / (1.0 + exp(-z));
    case SCORE_ACT_TANH: return tanh(z);
    case SCORE_ACT_GELU: return 0.5 * z * (1.0 + erf(z / sqrt(2.0)));
    case SCORE_ACT_SOFTPLUS: return z > 30 ? z : log1p(exp(z));
    default: return z > 0 ? z : exp(z) - 1.0; /* ELU */
    }
}

/* From the public parameters and the documented construction (the widths from the model). */
static void ref_init(cref *r, score_model *m)
{
    int64_t v;
    score__mlp_info info;
    float *buf;
    ck_assert_ok(score_model_prepare(m));
    ck_assert_ok(score__mlp_info_get(m, &info));
    r->dim = score_model_dim(m);
    r->L = info.n_layers;
    ck_assert_uint_le(r->L, RMAXL);
    ck_assert_ok(score_model_get_i64(m, SCORE_MODEL_PARAM_ACTIVATION, &v));
    r->act = (int)v;
    ck_assert_ok(score_model_get_i64(m, SCORE_MODEL_PARAM_EMBEDDING, &v));
    r->emb = (int)v;
    ck_assert_ok(score_model_get_i64(m, SCORE_MODEL_PARAM_EMBED_DIM, &v));
    r->E = r->emb == SCORE_EMBED_NONE ? 1 : (size_t)v;
    r->half = r->emb == SCORE_EMBED_NONE ? 0 : r->E / 2;
    ck_assert_int_ne(r->emb, SCORE_EMBED_FOURIER); /* the reference knows the other two */
    ck_assert_ok(score_model_get_i64(m, SCORE_MODEL_PARAM_NUM_CLASSES, &v));
    r->K = (size_t)v;
    ck_assert_ok(score_model_get_i64(m, SCORE_MODEL_PARAM_CONTEXT_DIM, &v));
    r->m = (size_t)v;
    ck_assert_ok(score_model_get_i64(m, SCORE_MODEL_PARAM_RESIDUAL, &v));
    for (size_t l = 0; l <= r->L; l++) {
        r->n[l] = info.width[l];
        ck_assert_uint_le(r->n[l], RMAXW);
        r->res[l] = v && l >= 2 && l < r->L && r->n[l] == r->n[l - 1];
    }
    /* documented: n_0 = dim + E + m; the label table follows the L layers */
    ck_assert_uint_eq(r->n[0], r->dim + r->E + r->m);
    r->loff = 0;
    for (size_t l = 1; l <= r->L; l++)
        r->loff += r->n[l] * r->n[l - 1] + r->n[l];
    r->np = score_model_param_count(m);
    ck_assert_uint_eq(r->np, r->loff + (r->K > 0 ? (r->K + 1) * r->n[1] : 0));
    ck_assert_uint_eq(info.label_offset, r->loff);
    for (size_t i = 0; i < r->half; i++)
        r->freq[i] = exp(-log(10000.0) * (double)i / (r->half > 1 ? (double)(r->half - 1) : 1.0));
    buf = malloc(r->np * sizeof *buf);
    r->theta = malloc(r->np * sizeof *r->theta);
    ck_assert_ok(score_model_params_get(m, buf, r->np));
    for (size_t i = 0; i < r->np; i++)
        r->theta[i] = buf[i];
    free(buf);
}

/* F(x, c, y, u) of one row from flat parameters th; y = label (ignored when K = 0), u = the
 * context (m values). The embedding features are rounded to float like the library's. */
static void ref_forward(const cref *r, const double *th, const double *x, double c, size_t y,
                        const double *u, double *out)
{
    double buf[2][RMAXW], *hp = buf[0], *hn = buf[1];
    size_t off = 0, dim = r->dim;
    for (size_t j = 0; j < dim; j++)
        hp[j] = x[j];
    if (r->emb == SCORE_EMBED_NONE)
        hp[dim] = (float)c;
    for (size_t i = 0; i < r->half; i++) {
        hp[dim + i] = (float)sin(r->freq[i] * c);
        hp[dim + r->half + i] = (float)cos(r->freq[i] * c);
    }
    for (size_t i = 0; i < r->m; i++)
        hp[dim + r->E + i] = u[i];
    for (size_t l = 1; l <= r->L; l++) {
        size_t nl = r->n[l], np = r->n[l - 1];
        const double *w = th + off, *b = th + off + nl * np;
        off += nl * np + nl;
        for (size_t i = 0; i < nl; i++) {
            double z = b[i] + (l == 1 && r->K > 0 ? th[r->loff + y * nl + i] : 0.0);
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

/* ---- a problem: rows with labels (every label, the null one included) and contexts ------ */
enum { NB = 4, KP = 2 };

typedef struct problem {
    size_t n, k, dim, m;
    float *x, *v, *gout, *ctx;
    double *xd, *vd, *ctxd, *c, *w, *wv;
    int32_t lab[NB];
} problem;

static double urand(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return ((*s >> 8) + 0.5) / 16777216.0;
}

static void fill(unsigned *seed, size_t n, float *f, double *d)
{
    for (size_t i = 0; i < n; i++) {
        f[i] = (float)(2.0 * urand(seed) - 1.0);
        if (d != NULL)
            d[i] = f[i];
    }
}

static void problem_init(problem *p, const cref *r, unsigned seed)
{
    size_t n = NB, dim = r->dim, k = KP, m = r->m ? r->m : 1;
    p->n = n; p->k = k; p->dim = dim; p->m = r->m;
    p->x = malloc(n * dim * sizeof *p->x);
    p->xd = malloc(n * dim * sizeof *p->xd);
    p->v = malloc(n * k * dim * sizeof *p->v);
    p->vd = malloc(n * k * dim * sizeof *p->vd);
    p->gout = malloc(n * dim * sizeof *p->gout);
    p->ctx = malloc(n * m * sizeof *p->ctx);
    p->ctxd = malloc(n * m * sizeof *p->ctxd);
    p->c = malloc(n * sizeof *p->c);
    p->w = malloc(n * sizeof *p->w);
    p->wv = malloc(n * k * sizeof *p->wv);
    fill(&seed, n * dim, p->x, p->xd);
    fill(&seed, n * k * dim, p->v, p->vd);
    fill(&seed, n * dim, p->gout, NULL);
    fill(&seed, n * m, p->ctx, p->ctxd);
    for (size_t i = 0; i < n; i++) {
        p->c[i] = urand(&seed);
        p->w[i] = 0.5 + urand(&seed);
        /* rows 0 and 3 share label 0 (the sum over rows), row 1 the null label K */
        p->lab[i] = r->K == 0 ? 0 : (int32_t)(i == 1 ? r->K : i == 2 ? r->K - 1 : 0);
    }
    for (size_t i = 0; i < n * k; i++)
        p->wv[i] = 0.5 + urand(&seed);
}

static void problem_free(problem *p)
{
    free(p->x); free(p->xd); free(p->v); free(p->vd); free(p->gout); free(p->ctx);
    free(p->ctxd); free(p->c); free(p->w); free(p->wv);
}

/* The labels and context of the problem as score_model_forward_cond() takes them. */
static const int32_t *labels_of(const cref *r, const problem *p)
{
    return r->K > 0 ? p->lab : NULL;
}

static const float *context_of(const cref *r, const problem *p)
{
    return r->m > 0 ? p->ctx : NULL;
}

/* A workspace that carries the problem's labels and contexts, one per row. */
static score__model_ws *ws_for(const cref *r, const problem *p)
{
    score__model_ws *ws;
    ck_assert_ok(score__model_ws_new(&ws));
    ws->labels = labels_of(r, p);
    ws->labels_per_row = 1;
    ws->context = context_of(r, p);
    ws->context_per_row = 1;
    return ws;
}

static void ref_row(const cref *r, const double *th, const problem *p, size_t b, const double *x,
                    double *out)
{
    ref_forward(r, th, x, p->c[b], (size_t)p->lab[b], p->ctxd + b * (p->m ? p->m : 1), out);
}

/* Directional derivative of row b's F along v at x (central differences). */
static void ref_jvp(const cref *r, const double *th, const problem *p, size_t b, const double *x,
                    const double *v, double h, double *out)
{
    double xp[RMAXW] = {0}, xm[RMAXW] = {0}, fp[RMAXW], fm[RMAXW];
    for (size_t j = 0; j < r->dim; j++) {
        xp[j] = x[j] + h * v[j];
        xm[j] = x[j] - h * v[j];
    }
    ref_row(r, th, p, b, xp, fp);
    ref_row(r, th, p, b, xm, fm);
    for (size_t j = 0; j < r->dim; j++)
        out[j] = (fp[j] - fm[j]) / (2.0 * h);
}

static double ref_trace(const cref *r, const double *th, const problem *p, size_t b, double h)
{
    double e[RMAXW] = {0}, jv[RMAXW], s = 0.0;
    for (size_t j = 0; j < r->dim; j++) {
        e[j] = 1.0;
        ref_jvp(r, th, p, b, p->xd + b * r->dim, e, h, jv);
        s += jv[j];
        e[j] = 0.0;
    }
    return s;
}

/* The objectives whose parameter gradients the library computes. */
enum { OBJ_OUT, OBJ_TRACE, OBJ_VJV };

static double objective(const cref *r, const double *th, const problem *p, int kind)
{
    double s = 0.0, f[RMAXW], jv[RMAXW];
    for (size_t b = 0; b < p->n; b++) {
        ref_row(r, th, p, b, p->xd + b * r->dim, f);
        for (size_t j = 0; j < r->dim; j++)
            s += (double)p->gout[b * r->dim + j] * f[j];
        if (kind == OBJ_TRACE)
            s += p->w[b] * ref_trace(r, th, p, b, H_FD_INNER);
        for (size_t q = 0; kind == OBJ_VJV && q < p->k; q++) {
            const double *v = p->vd + (b * p->k + q) * r->dim;
            double d = 0.0;
            ref_jvp(r, th, p, b, p->xd + b * r->dim, v, H_FD_INNER, jv);
            for (size_t j = 0; j < r->dim; j++)
                d += v[j] * jv[j];
            s += p->wv[b * p->k + q] * d;
        }
    }
    return s;
}

/* Max relative error of grad against central differences of the objective over every
 * parameter; *lab_err and *ctx_err get the part over the label table and the context columns. */
static double grad_err(cref *r, const problem *p, int kind, const float *grad, double h,
                       double *lab_err, double *ctx_err)
{
    double e = 0.0;
    *lab_err = 0.0;
    *ctx_err = 0.0;
    for (size_t i = 0; i < r->np; i++) {
        double t = r->theta[i], fp, fm, fd, d;
        r->theta[i] = t + h;
        fp = objective(r, r->theta, p, kind);
        r->theta[i] = t - h;
        fm = objective(r, r->theta, p, kind);
        r->theta[i] = t;
        fd = (fp - fm) / (2.0 * h);
        d = fabs((double)grad[i] - fd) / (1.0 + fabs(fd));
        e = d > e ? d : e;
        if (i >= r->loff && d > *lab_err)
            *lab_err = d;
        if (i < r->n[1] * r->n[0] && i % r->n[0] >= r->dim + r->E && d > *ctx_err)
            *ctx_err = d;
    }
    return e;
}

static void report(const char *what, int cfg, double e)
{
    if (getenv("SCORE_TEST_VERBOSE") != NULL)
        fprintf(stderr, "ERR %-28s cfg %d max rel err %.3e\n", what, cfg, e);
}

static void check_err(const char *what, int cfg, double e, double tol)
{
    report(what, cfg, e);
    ck_assert_msg(e <= tol, "%s (cfg %d): max relative error %.3e > %.1e", what, cfg, e, tol);
}

/* ---- configurations ------------------------------------------------------------------- */
enum { N_CFG = 4 };

/* K classes, m context values, activation, embedding; widths 6, 6, 5 (layer 2 a residual
 * block) or a single hidden layer (the tangent passes special-case the first layer). */
static score_model *make_cfg(int i, size_t dim)
{
    static const int K[N_CFG] = {3, 2, 0, 4}, M[N_CFG] = {2, 0, 3, 1};
    static const int act[N_CFG] = {SCORE_ACT_TANH, SCORE_ACT_SILU, SCORE_ACT_GELU, SCORE_ACT_ELU};
    size_t widths[3] = {6, 6, 5};
    score_model *m;
    ck_assert_ok(score_model_new(&m, SCORE_MODEL_MLP, dim));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_ACTIVATION, act[i]));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_EMBEDDING,
                                     i == 1 ? SCORE_EMBED_NONE : SCORE_EMBED_SINUSOIDAL));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_EMBED_DIM, 4));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_SEED, 500 + i));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_NUM_CLASSES, K[i]));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_CONTEXT_DIM, M[i]));
    ck_assert_ok(score_model_set_hidden_widths(m, i == 3 ? 1 : 3, widths));
    ck_assert_ok(score_model_prepare(m));
    return m;
}

START_TEST(forward_matches_reference)
{
    cref r;
    problem p;
    float out[NB * 3], out2[NB * 3];
    double e = 0.0, f[RMAXW];
    score_model *m = make_cfg(_i, 3);
    score__model_ws *ws;
    ref_init(&r, m);
    problem_init(&p, &r, 11u + (unsigned)_i);
    ck_assert_ok(score_model_forward_cond(m, NB, p.x, p.c, labels_of(&r, &p), context_of(&r, &p),
                                          out));
    for (size_t b = 0; b < NB; b++) {
        ref_row(&r, r.theta, &p, b, p.xd + b * 3, f);
        for (size_t j = 0; j < 3; j++) {
            double d = fabs(out[b * 3 + j] - f[j]) / (1.0 + fabs(f[j]));
            e = d > e ? d : e;
        }
    }
    check_err("forward", _i, e, TOL_FWD);
    /* the cache-free path (blocks, folded embedding when c is shared) agrees */
    ws = ws_for(&r, &p);
    ck_assert_ok(score__model_infer_ws(m, ws, NB, p.x, p.c, out2));
    for (size_t i = 0; i < NB * 3; i++)
        ck_assert_double_le(fabs(out2[i] - out[i]), TOL_REORDER * (1.0 + fabs(out[i])));
    for (size_t b = 0; b < NB; b++)
        p.c[b] = 0.25;
    ck_assert_ok(score__model_infer_ws(m, ws, NB, p.x, p.c, out2));
    ck_assert_ok(score_model_forward_cond(m, NB, p.x, p.c, labels_of(&r, &p), context_of(&r, &p),
                                          out));
    for (size_t i = 0; i < NB * 3; i++)
        ck_assert_double_le(fabs(out2[i] - out[i]), TOL_REORDER * (1.0 + fabs(out[i])));
    score__model_ws_free(ws);
    problem_free(&p);
    free(r.theta);
    score_model_free(m);
}
END_TEST

/* Parameter gradients (label table and context weights included) and the x-gradient through
 * score_model_forward_cond() / score_model_backward(). */
START_TEST(backward_vs_fd)
{
    cref r;
    problem p;
    float out[NB * 3], gx[NB * 3], *grad;
    double e, el, ec, egx = 0.0;
    score_model *m = make_cfg(_i, 3);
    ref_init(&r, m);
    problem_init(&p, &r, 21u + (unsigned)_i);
    grad = calloc(r.np, sizeof *grad);
    ck_assert_ok(score_model_forward_cond(m, NB, p.x, p.c, labels_of(&r, &p), context_of(&r, &p),
                                          out));
    ck_assert_ok(score_model_backward(m, NB, p.gout, grad, gx));
    e = grad_err(&r, &p, OBJ_OUT, grad, H_FD, &el, &ec);
    check_err("backward params", _i, e, TOL_DERIV);
    check_err("backward label table", _i, el, TOL_DERIV);
    check_err("backward context weights", _i, ec, TOL_DERIV);
    /* labels no row has (1 .. K-2 here) get exactly no gradient */
    for (size_t y = 1; r.K > 2 && y + 1 < r.K; y++)
        for (size_t i = 0; i < r.n[1]; i++)
            ck_assert_float_eq(grad[r.loff + y * r.n[1] + i], 0.0f);
    for (size_t b = 0; b < NB; b++)
        for (size_t j = 0; j < 3; j++) {
            double e1[3] = {0}, jv[RMAXW], fd = 0.0, d;
            e1[j] = 1.0;
            ref_jvp(&r, r.theta, &p, b, p.xd + b * 3, e1, H_FD, jv);
            for (size_t i = 0; i < 3; i++)
                fd += (double)p.gout[b * 3 + i] * jv[i];
            d = fabs(gx[b * 3 + j] - fd) / (1.0 + fabs(fd));
            egx = d > egx ? d : egx;
        }
    check_err("backward gx", _i, egx, TOL_DERIV);
    free(grad);
    problem_free(&p);
    free(r.theta);
    score_model_free(m);
}
END_TEST

/* JVP, VJP and the exact trace through a workspace carrying labels and contexts. */
START_TEST(tangents_vs_fd)
{
    cref r;
    problem p;
    float jv[NB * KP * 3], vj[NB * KP * 3], fx[NB * 3];
    double tr[NB], ej = 0.0, ev = 0.0, et = 0.0;
    score_model *m = make_cfg(_i, 3);
    score__model_ws *ws;
    ref_init(&r, m);
    problem_init(&p, &r, 31u + (unsigned)_i);
    ws = ws_for(&r, &p);
    ck_assert_ok(score__model_jvp_ws(m, ws, NB, p.x, p.c, KP, p.v, jv, fx));
    ck_assert_ok(score__model_vjp_ws(m, ws, NB, p.x, p.c, KP, p.v, vj));
    ck_assert_ok(score__model_trace_ws(m, ws, NB, p.x, p.c, tr, NULL));
    for (size_t b = 0; b < NB; b++) {
        double J[3][RMAXW], e1[3] = {0}, d; /* J[j] = column j of the Jacobian */
        double ref_tr = ref_trace(&r, r.theta, &p, b, H_FD);
        for (size_t j = 0; j < 3; j++) {
            e1[j] = 1.0;
            ref_jvp(&r, r.theta, &p, b, p.xd + b * 3, e1, H_FD, J[j]);
            e1[j] = 0.0;
        }
        for (size_t q = 0; q < KP; q++) {
            const double *v = p.vd + (b * KP + q) * 3;
            for (size_t i = 0; i < 3; i++) {
                double jvi = 0.0, vji = 0.0; /* (J v)_i and (J^T v)_i */
                for (size_t j = 0; j < 3; j++) {
                    jvi += J[j][i] * v[j];
                    vji += J[i][j] * v[j];
                }
                d = fabs(jv[(b * KP + q) * 3 + i] - jvi) / (1.0 + fabs(jvi));
                ej = d > ej ? d : ej;
                d = fabs(vj[(b * KP + q) * 3 + i] - vji) / (1.0 + fabs(vji));
                ev = d > ev ? d : ev;
            }
        }
        d = fabs(tr[b] - ref_tr) / (1.0 + fabs(ref_tr));
        et = d > et ? d : et;
    }
    check_err("jvp", _i, ej, TOL_DERIV);
    check_err("vjp", _i, ev, TOL_DERIV);
    check_err("trace", _i, et, TOL_DERIV);
    score__model_ws_free(ws);
    problem_free(&p);
    free(r.theta);
    score_model_free(m);
}
END_TEST

static void gout_copy(void *ctx, size_t row0, size_t rows, const float *fx, float *gout)
{
    const problem *p = ctx;
    (void)fx;
    memcpy(gout, p->gout + row0 * p->dim, rows * p->dim * sizeof *gout);
}

/* Gradients of sum w tr + gout . F and of sum w v^T J v + gout . F against differences of the
 * reference; the array variants (the kind's operations) and the function variants give the
 * same bits. */
START_TEST(trace_grad_vjv_grad_vs_fd)
{
    cref r;
    problem p;
    float fx[NB * 3], fx2[NB * 3], gws[NB * 3], *g1, *g2;
    double tr[NB], tr2[NB], vjv[NB * KP], e, el, ec;
    score_model *m = make_cfg(_i, 3);
    score__model_ws *ws;
    ref_init(&r, m);
    problem_init(&p, &r, 41u + (unsigned)_i);
    g1 = calloc(r.np, sizeof *g1);
    g2 = calloc(r.np, sizeof *g2);
    ws = ws_for(&r, &p);
    ck_assert_ok(score__model_trace_grad_fn_ws(m, ws, NB, p.x, p.c, p.w, gout_copy, &p, gws, g1,
                                               tr, fx));
    e = grad_err(&r, &p, OBJ_TRACE, g1, H_FD_OUTER, &el, &ec);
    check_err("trace_grad params", _i, e, TOL_DERIV2);
    check_err("trace_grad label table", _i, el, TOL_DERIV2);
    check_err("trace_grad context weights", _i, ec, TOL_DERIV2);
    ck_assert_ok(m->ops->trace_grad(m, ws, NB, p.x, p.c, p.w, p.gout, g2, tr2, fx2));
    ck_assert_mem_eq(g1, g2, r.np * sizeof *g1);
    ck_assert_mem_eq(tr, tr2, sizeof tr);
    ck_assert_mem_eq(fx, fx2, sizeof fx);
    memset(g1, 0, r.np * sizeof *g1);
    memset(g2, 0, r.np * sizeof *g2);
    ck_assert_ok(score__model_vjv_grad_fn_ws(m, ws, NB, p.x, p.c, KP, p.v, p.wv, gout_copy, &p,
                                             gws, g1, vjv, fx));
    e = grad_err(&r, &p, OBJ_VJV, g1, H_FD_OUTER, &el, &ec);
    check_err("vjv_grad params", _i, e, TOL_DERIV2);
    check_err("vjv_grad label table", _i, el, TOL_DERIV2);
    check_err("vjv_grad context weights", _i, ec, TOL_DERIV2);
    ck_assert_ok(m->ops->vjv_grad(m, ws, NB, p.x, p.c, KP, p.v, p.wv, p.gout, g2, NULL, NULL));
    ck_assert_mem_eq(g1, g2, r.np * sizeof *g1);
    score__model_ws_free(ws);
    free(g1);
    free(g2);
    problem_free(&p);
    free(r.theta);
    score_model_free(m);
}
END_TEST

/* ---- labels: distinct outputs, the null label, the documented initialisation ------------ */

static score_model *make_big(size_t dim, size_t width, int K, int mc, uint64_t seed)
{
    score_model *m;
    ck_assert_ok(score_model_new_mlp(&m, dim, width, 3, SCORE_ACT_SILU, seed));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_NUM_CLASSES, K));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_CONTEXT_DIM, mc));
    ck_assert_ok(score_model_prepare(m));
    return m;
}

START_TEST(labels_and_null_label)
{
    enum { N = 5, D = 2, K = 4 };
    score_model *m = make_big(D, 16, K, 0, 9);
    float x[N * D], a[N * D], b[N * D];
    double c[N];
    int32_t lab[N], nul[N];
    for (size_t i = 0; i < N * D; i++)
        x[i] = 0.3f * (float)i - 1.0f;
    for (size_t i = 0; i < N; i++) {
        c[i] = 0.1 * (double)i;
        nul[i] = K;
    }
    /* labels NULL, score_model_forward() and the explicit null label K: the same bits */
    ck_assert_ok(score_model_forward_cond(m, N, x, c, NULL, NULL, a));
    ck_assert_ok(score_model_forward_cond(m, N, x, c, nul, NULL, b));
    ck_assert_mem_eq(a, b, sizeof a);
    ck_assert_ok(score_model_forward(m, N, x, c, b));
    ck_assert_mem_eq(a, b, sizeof a);
    /* every label gives other outputs than every other label */
    for (int32_t y = 0; y <= K; y++) {
        for (int32_t y2 = 0; y2 < y; y2++) {
            double diff = 0.0;
            for (size_t i = 0; i < N; i++) {
                lab[i] = y;
                nul[i] = y2;
            }
            ck_assert_ok(score_model_forward_cond(m, N, x, c, lab, NULL, a));
            ck_assert_ok(score_model_forward_cond(m, N, x, c, nul, NULL, b));
            for (size_t i = 0; i < N * D; i++)
                diff = fmax(diff, fabs(a[i] - b[i]));
            ck_assert_msg(diff > 1e-3, "labels %d and %d: outputs differ by %g only", y, y2, diff);
        }
    }
    score_model_free(m);
}
END_TEST

START_TEST(initialisation_documented)
{
    /* dim 2, Fourier embed_dim 32 (default), context 3: n_0 = 37, widths 8 */
    score_model *u, *lm, *cm;
    score_rng *g;
    size_t nu, nl, nc;
    float *pu, *pl, *pc;
    double v[8];
    const size_t n0 = 2 + 32 + 3;
    ck_assert_ok(score_model_new_mlp(&u, 2, 8, 2, SCORE_ACT_TANH, 77));
    ck_assert_ok(score_model_new_mlp(&lm, 2, 8, 2, SCORE_ACT_TANH, 77));
    ck_assert_ok(score_model_set_i64(lm, SCORE_MODEL_PARAM_NUM_CLASSES, 5));
    ck_assert_ok(score_model_new_mlp(&cm, 2, 8, 2, SCORE_ACT_TANH, 77));
    ck_assert_ok(score_model_set_i64(cm, SCORE_MODEL_PARAM_CONTEXT_DIM, 3));
    nu = score_model_param_count(u);
    nl = score_model_param_count(lm);
    nc = score_model_param_count(cm);
    ck_assert_uint_eq(nu, 8 * 34 + 8 + 8 * 8 + 8 + 2 * 8 + 2);
    ck_assert_uint_eq(nl, nu + 6 * 8);
    ck_assert_uint_eq(nc, nu + 3 * 8);
    pu = malloc(nu * sizeof *pu);
    pl = malloc(nl * sizeof *pl);
    pc = malloc(nc * sizeof *pc);
    ck_assert_ok(score_model_params_get(u, pu, nu));
    ck_assert_ok(score_model_params_get(lm, pl, nl));
    ck_assert_ok(score_model_params_get(cm, pc, nc));
    /* the label input leaves the layers as they are; the table follows them */
    ck_assert_mem_eq(pu, pl, nu * sizeof *pu);
    ck_assert_ok(score_rng_new(&g, SCORE_RNG_PHILOX4X32_10, 77));
    ck_assert_ok(score_rng_set_stream(g, 4));
    ck_assert_ok(score_rng_set_counter(g, 0));
    for (size_t y = 0; y <= 5; y++) {
        ck_assert_ok(score_rng_fill_uniform_f64(g, y, 1, 0, 8, v));
        for (size_t i = 0; i < 8; i++)
            ck_assert_float_eq(pl[nu + y * 8 + i], (float)((2 * v[i] - 1) / sqrt(34.0)));
    }
    /* context columns: W_1 of stream 1, counter 1, with the bound of n_0 = 37 */
    ck_assert_ok(score_rng_set_stream(g, 1));
    ck_assert_ok(score_rng_set_counter(g, 1));
    {
        double w[40]; /* row 4 of W_1, every column */
        ck_assert_ok(score_rng_fill_uniform_f64(g, 4, 1, 0, n0, w));
        for (size_t j = 0; j < n0; j++)
            ck_assert_float_eq(pc[4 * n0 + j], (float)((2 * w[j] - 1) / sqrt((double)n0)));
    }
    score_rng_free(g);
    free(pu);
    free(pl);
    free(pc);
    score_model_free(u);
    score_model_free(lm);
    score_model_free(cm);
}
END_TEST

/* ---- save / load, clone, architecture ------------------------------------------------ */

/* Position of the first occurrence of `what` in a buffer, or NULL. */
static char *find(void *buf, size_t len, const char *what)
{
    size_t n = strlen(what);
    char *s = buf;
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(s + i, what, n) == 0)
            return s + i;
    return NULL;
}

/* Replaces the first occurrence of `from` by `to` (same length); 0 when absent. */
static int patch(void *buf, size_t len, const char *from, const char *to)
{
    char *at = find(buf, len, from);
    if (at != NULL)
        memcpy(at, to, strlen(to));
    return at != NULL;
}

START_TEST(save_load_clone)
{
    enum { N = 6, D = 3, K = 3, MC = 2 };
    score_model *m = make_big(D, 12, K, MC, 5), *l, *cl, *other;
    void *buf;
    size_t len;
    float x[N * D], ctx[N * MC], a[N * D], b[N * D], *pa, *pb;
    double c[N];
    int32_t lab[N] = {0, 1, 2, 3, 0, 2};
    int64_t v;
    size_t np = score_model_param_count(m);
    for (size_t i = 0; i < N * D; i++)
        x[i] = 0.2f * (float)i - 1.5f;
    for (size_t i = 0; i < N * MC; i++)
        ctx[i] = 0.5f - 0.1f * (float)i;
    for (size_t i = 0; i < N; i++)
        c[i] = 0.15 * (double)i;
    /* trained-looking parameters: every entry moved off its initial value */
    pa = malloc(np * sizeof *pa);
    pb = malloc(np * sizeof *pb);
    ck_assert_ok(score_model_params_get(m, pa, np));
    for (size_t i = 0; i < np; i++)
        pa[i] += 0.01f * (float)((i % 7) + 1);
    ck_assert_ok(score_model_params_set(m, pa, np));
    ck_assert_ok(score_model_forward_cond(m, N, x, c, lab, ctx, a));
    ck_assert_ok(score_model_save_buffer(m, &buf, &len));
    ck_assert_ok(score_model_load_buffer(&l, buf, len));
    ck_assert_ok(score_model_get_i64(l, SCORE_MODEL_PARAM_NUM_CLASSES, &v));
    ck_assert_int_eq(v, K);
    ck_assert_ok(score_model_get_i64(l, SCORE_MODEL_PARAM_CONTEXT_DIM, &v));
    ck_assert_int_eq(v, MC);
    ck_assert_uint_eq(score_model_param_count(l), np);
    ck_assert_ok(score_model_params_get(l, pb, np));
    ck_assert_mem_eq(pa, pb, np * sizeof *pa);
    ck_assert_ok(score_model_forward_cond(l, N, x, c, lab, ctx, b));
    ck_assert_mem_eq(a, b, sizeof a);
    ck_assert_int_eq(score__model_same_architecture(m, l), 1);
    /* clone */
    ck_assert_ok(score_model_clone(&cl, m));
    ck_assert_ok(score_model_forward_cond(cl, N, x, c, lab, ctx, b));
    ck_assert_mem_eq(a, b, sizeof a);
    ck_assert_int_eq(score__model_same_architecture(m, cl), 1);
    score_model_free(cl);
    /* another K or m: another architecture */
    other = make_big(D, 12, K + 1, MC, 5);
    ck_assert_int_eq(score__model_same_architecture(m, other), 0);
    score_model_free(other);
    other = make_big(D, 12, K, MC + 1, 5);
    ck_assert_int_eq(score__model_same_architecture(m, other), 0);
    score_model_free(other);
    other = make_big(D, 12, 0, MC, 5);
    ck_assert_int_eq(score__model_same_architecture(m, other), 0);
    score_model_free(other);
    /* hostile files: architecture values that do not match the tensors */
    {
        static const char *const bad[][2] = {
            {"\"num_classes\":\"3\"", "\"num_classes\":\"2\""},
            {"\"num_classes\":\"3\"", "\"num_classes\":\"0\""},
            {"\"num_classes\":\"3\"", "\"xum_classes\":\"3\""}, /* absent: K = 0 */
            {"\"context_dim\":\"2\"", "\"context_dim\":\"3\""},
            {"\"context_dim\":\"2\"", "\"context_dim\":\"0\""},
            {"\"context_dim\":\"2\"", "\"context_dim\":\"x\""},
            {"label_embedding.weight", "label_embeddinX.weight"},
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            void *cp = malloc(len);
            memcpy(cp, buf, len);
            ck_assert_msg(patch(cp, len, bad[i][0], bad[i][1]), "no '%s' in the file", bad[i][0]);
            ck_assert_fails_with(score_model_load_buffer(&other, cp, len), SCORE_E_FORMAT);
            ck_assert_ptr_null(other);
            free(cp);
        }
    }
    score_free(buf);
    /* an unconditional model's file has neither key nor the label tensor */
    other = make_big(D, 12, 0, 0, 5);
    ck_assert_ok(score_model_save_buffer(other, &buf, &len));
    ck_assert_ptr_null(find(buf, len, "num_classes"));
    ck_assert_ptr_null(find(buf, len, "context_dim"));
    ck_assert_ptr_null(find(buf, len, "label_embedding"));
    score_free(buf);
    score_model_free(other);
    /* only the label input: both keys written */
    other = make_big(D, 12, K, 0, 5);
    ck_assert_ok(score_model_save_buffer(other, &buf, &len));
    ck_assert_ptr_nonnull(find(buf, len, "\"context_dim\":\"0\""));
    ck_assert_ptr_nonnull(find(buf, len, "\"num_classes\":\"3\""));
    score_free(buf);
    score_model_free(other);
    free(pa);
    free(pb);
    score_model_free(l);
    score_model_free(m);
}
END_TEST

/* ---- threads, blocks and broadcast inputs -------------------------------------------- */

START_TEST(thread_count_invariance)
{
    enum { N = 4000, D = 6, K = 7, MC = 3, W = 96 };
    score_model *m = make_big(D, W, K, MC, 3);
    score__model_ws *ws;
    float *x = malloc(N * D * sizeof *x), *ctx = malloc(N * MC * sizeof *ctx);
    float *ref = malloc(N * D * sizeof *ref), *out = malloc(N * D * sizeof *out);
    float *gref, *g, *gxr = malloc(N * D * sizeof *gxr), *gx = malloc(N * D * sizeof *gx);
    double *c = malloc(N * sizeof *c);
    int32_t *lab = malloc(N * sizeof *lab);
    size_t np = score_model_param_count(m);
    unsigned s = 5;
    gref = calloc(np, sizeof *gref);
    g = calloc(np, sizeof *g);
    for (size_t i = 0; i < N * D; i++)
        x[i] = (float)(2.0 * urand(&s) - 1.0);
    for (size_t i = 0; i < N * MC; i++)
        ctx[i] = (float)(2.0 * urand(&s) - 1.0);
    for (size_t i = 0; i < N; i++) {
        lab[i] = (int32_t)(i % (K + 1));
        c[i] = 0.7;
    }
    ck_assert_ok(score__model_ws_new(&ws));
    ws->labels = lab;
    ws->labels_per_row = 1;
    ws->context = ctx;
    ws->context_per_row = 1;
    for (int pass = 0; pass < 2; pass++) {
        /* pass 0: one c for all rows (the folded first layer); pass 1: a c per row */
        for (size_t i = 0; pass == 1 && i < N; i++)
            c[i] = urand(&s);
        for (int64_t t = 1; t <= 4; t++) {
            ws->threads = t;
            ck_assert_ok(score__model_infer_ws(m, ws, N, x, c, t == 1 ? ref : out));
            if (t > 1)
                ck_assert_mem_eq(ref, out, N * D * sizeof *out);
        }
    }
    score__model_ws_free(ws);
    /* the training pair: outputs, parameter and input gradients (gout = x) */
    for (int64_t t = 1; t <= 3; t++) {
        float *gp = t == 1 ? gref : g;
        ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_THREADS, t));
        memset(gp, 0, np * sizeof *gp);
        ck_assert_ok(score_model_forward_cond(m, N, x, c, lab, ctx, t == 1 ? ref : out));
        ck_assert_ok(score_model_backward(m, N, x, gp, t == 1 ? gxr : gx));
        if (t > 1) {
            ck_assert_mem_eq(ref, out, N * D * sizeof *out);
            ck_assert_mem_eq(gref, g, np * sizeof *g);
            ck_assert_mem_eq(gxr, gx, N * D * sizeof *gx);
        }
    }
    free(x); free(ctx); free(ref); free(out); free(gref); free(g); free(gxr); free(gx);
    free(c); free(lab);
    score_model_free(m);
}
END_TEST

/* The cache-free path's folded first layer: a batch whose rows come in runs of one c and one
 * label (a guided sampler's batch: the rows with their label, then with the null label) starts
 * each run's product from the folded bias plus the label's vector; every row gets the bits it
 * gets alone (a call of one row fills its row with that vector instead), with and without a
 * per-row context, runs split by c and by label, labels of every row (null included), a
 * parameter vector without zeros (the label table's rows too). */
START_TEST(folded_label_runs_bits)
{
    enum { N = 100, D = 4, K = 3, MC = 2 };
    static const size_t run_lab[2][4] = {{40, 80, 100, 100}, {25, 50, 75, 100}};
    score_model *m[2] = {make_big(D, 40, K, MC, 12), make_big(D, 40, K, 0, 13)};
    score__model_ws *ws;
    float x[N * D], ctx[N * MC], out[N * D], one[D];
    double c[N];
    int32_t lab[N];
    unsigned s = 31;
    for (int k = 0; k < 2; k++) {
        size_t np = score_model_param_count(m[k]);
        float *theta = malloc(np * sizeof *theta);
        ck_assert_ptr_nonnull(theta);
        for (size_t q = 0; q < np; q++)
            theta[q] = (float)(0.6 * urand(&s) - 0.3);
        ck_assert_ok(score_model_params_set(m[k], theta, np));
        free(theta);
    }
    for (size_t i = 0; i < N * D; i++)
        x[i] = (float)(2.0 * urand(&s) - 1.0);
    for (size_t i = 0; i < N * MC; i++)
        ctx[i] = (float)(2.0 * urand(&s) - 1.0);
    ck_assert_ok(score__model_ws_new(&ws));
    for (int k = 0; k < 2; k++)
        for (int layout = 0; layout < 2; layout++) {
            /* layout 0: one c, label runs 1 | null | 2; layout 1: c 0.2 then 0.6 (at row 50),
             * label runs of 25 (0 | null | 3 | 0) */
            static const int32_t labs[2][4] = {{1, K, 2, 2}, {0, K, 3, 0}};
            for (size_t i = 0, r = 0; i < N; i++) {
                while (i >= run_lab[layout][r])
                    r++;
                lab[i] = labs[layout][r];
                c[i] = layout == 0 ? 0.45 : (i < 50 ? 0.2 : 0.6);
            }
            ws->labels = lab;
            ws->labels_per_row = 1;
            ws->context = k == 0 ? ctx : NULL;
            ws->context_per_row = k == 0;
            ck_assert_ok(score__model_infer_ws(m[k], ws, N, x, c, out));
            for (size_t b = 0; b < N; b++) {
                ws->labels = lab + b;
                ws->context = k == 0 ? ctx + b * MC : NULL;
                ck_assert_ok(score__model_infer_ws(m[k], ws, 1, x + b * D, c + b, one));
                ck_assert_msg(memcmp(one, out + b * D, sizeof one) == 0,
                              "context %d, layout %d: row %zu differs", k == 0, layout, b);
            }
        }
    score__model_ws_free(ws);
    score_model_free(m[0]);
    score_model_free(m[1]);
}
END_TEST

/* One label and one context vector for all rows (per_row = 0) equal the same values repeated
 * per row; tangent batches cut into blocks give the values of one block. */
START_TEST(broadcast_and_blocks)
{
    enum { N = 40, D = 4, K = 3, MC = 2 };
    score_model *m = make_big(D, 10, K, MC, 8);
    score__model_ws *ws;
    float x[N * D], ctx[N * MC], a[N * D], b[N * D];
    double c[N], tra[N], trb[N];
    int32_t lab[N];
    unsigned s = 3;
    for (size_t i = 0; i < N * D; i++)
        x[i] = (float)(2.0 * urand(&s) - 1.0);
    for (size_t i = 0; i < N; i++) {
        lab[i] = 2;
        ctx[i * MC] = 0.25f;
        ctx[i * MC + 1] = -0.5f;
    }
    ck_assert_ok(score__model_ws_new(&ws));
    ws->labels = lab;
    ws->context = ctx;
    for (int pass = 0; pass < 2; pass++) {
        /* pass 0: one c (the folded first layer of the cache-free path); pass 1: a c per row */
        for (size_t i = 0; i < N; i++)
            c[i] = pass == 0 ? 0.3 : urand(&s);
        ws->labels_per_row = 1;
        ws->context_per_row = 1;
        ck_assert_ok(score__model_infer_ws(m, ws, N, x, c, a));
        ck_assert_ok(score__model_trace_ws(m, ws, N, x, c, tra, NULL));
        ws->labels_per_row = 0;
        ws->context_per_row = 0;
        ck_assert_ok(score__model_infer_ws(m, ws, N, x, c, b));
        for (size_t i = 0; i < N * D; i++)
            ck_assert_double_le(fabs(a[i] - b[i]), TOL_REORDER * (1.0 + fabs(a[i])));
        /* blocks of one row in the tangent passes */
        score__mlp_set_tangent_budget(m, 64);
        ck_assert_ok(score__model_trace_ws(m, ws, N, x, c, trb, NULL));
        score__mlp_set_tangent_budget(m, 0);
        for (size_t i = 0; i < N; i++)
            ck_assert_double_le(fabs(tra[i] - trb[i]), TOL_REORDER * (1.0 + fabs(tra[i])));
    }
    score__model_ws_free(ws);
    score_model_free(m);
}
END_TEST

/* ---- refusals ----------------------------------------------------------------------------- */

START_TEST(refusals)
{
    enum { N = 2, D = 2 };
    score_model *plain = make_big(D, 8, 0, 0, 1), *lm = make_big(D, 8, 3, 0, 1);
    score_model *cm = make_big(D, 8, 0, 2, 1);
    score__model_ws *ws;
    float x[N * D] = {0.1f, 0.2f, 0.3f, 0.4f}, out[N * D], ctx[N * 2] = {0};
    float v[N * D] = {1, 0, 0, 1};
    double c[N] = {0.5, 0.5}, tr[N];
    int32_t lab[N] = {0, 3}, bad_hi[N] = {0, 4}, bad_lo[N] = {-1, 0};
    /* labels / context to a model without that input */
    ck_assert_fails_with(score_model_forward_cond(plain, N, x, c, lab, NULL, out), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_model_forward_cond(plain, N, x, c, NULL, ctx, out), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_model_forward_cond(lm, N, x, c, lab, ctx, out), SCORE_E_UNSUPPORTED);
    /* labels out of range */
    ck_assert_ok(score_model_forward_cond(lm, N, x, c, lab, NULL, out));
    ck_assert_fails_with(score_model_forward_cond(lm, N, x, c, bad_hi, NULL, out), SCORE_E_RANGE);
    ck_assert_fails_with(score_model_forward_cond(lm, N, x, c, bad_lo, NULL, out), SCORE_E_RANGE);
    /* a context model without a context */
    ck_assert_fails_with(score_model_forward_cond(cm, N, x, c, NULL, NULL, out), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_forward(cm, N, x, c, out), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_jvp(cm, N, x, c, 1, v, out, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_vjp(cm, N, x, c, 1, v, out), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_trace(cm, N, x, c, tr, NULL), SCORE_E_INVAL);
    ck_assert_ok(score_model_forward_cond(cm, N, x, c, NULL, ctx, out));
    ctx[3] = NAN;
    ck_assert_fails_with(score_model_forward_cond(cm, N, x, c, NULL, ctx, out), SCORE_E_NUMERIC);
    ctx[3] = 0.0f;
    /* a failed forward leaves no pair for backward */
    ck_assert_fails_with(score_model_forward_cond(lm, N, x, c, bad_hi, NULL, out), SCORE_E_RANGE);
    ck_assert_fails_with(score_model_backward(lm, N, x, NULL, out), SCORE_E_MISUSE);
    /* through a workspace: the kind checks what the calling object set */
    ck_assert_ok(score__model_ws_new(&ws));
    ck_assert_fails_with(score__model_infer_ws(cm, ws, N, x, c, out), SCORE_E_INVAL);
    ck_assert_fails_with(score__model_trace_ws(cm, ws, N, x, c, tr, NULL), SCORE_E_INVAL);
    ws->labels = bad_hi;
    ws->labels_per_row = 1;
    ck_assert_fails_with(score__model_infer_ws(lm, ws, N, x, c, out), SCORE_E_RANGE);
    ck_assert_fails_with(score__model_jvp_ws(lm, ws, N, x, c, 1, v, out, NULL), SCORE_E_RANGE);
    ws->labels = lab;
    ck_assert_ok(score__model_infer_ws(lm, ws, N, x, c, out));
    score__model_ws_free(ws);
    /* the architecture values are fixed once prepared */
    ck_assert_fails_with(score_model_set_i64(lm, SCORE_MODEL_PARAM_NUM_CLASSES, 4), SCORE_E_STAGE);
    ck_assert_fails_with(score_model_set_i64(cm, SCORE_MODEL_PARAM_CONTEXT_DIM, 1), SCORE_E_STAGE);
    score_model_free(plain);
    score_model_free(lm);
    score_model_free(cm);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("model-cond");
    TCase *tc = tcase_create("derivatives");
    TCase *tm = tcase_create("misc");
    tcase_set_timeout(tc, 120);
    tcase_set_timeout(tm, 120);
    tcase_add_loop_test(tc, forward_matches_reference, 0, N_CFG);
    tcase_add_loop_test(tc, backward_vs_fd, 0, N_CFG);
    tcase_add_loop_test(tc, tangents_vs_fd, 0, N_CFG);
    tcase_add_loop_test(tc, trace_grad_vjv_grad_vs_fd, 0, N_CFG);
    tcase_add_test(tm, labels_and_null_label);
    tcase_add_test(tm, initialisation_documented);
    tcase_add_test(tm, save_load_clone);
    tcase_add_test(tm, thread_count_invariance);
    tcase_add_test(tm, folded_label_runs_bits);
    tcase_add_test(tm, broadcast_and_blocks);
    tcase_add_test(tm, refusals);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, tm);
    return test_run_suite(s);
}
