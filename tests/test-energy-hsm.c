/* The energy MLP's third-order machinery: the Hyvärinen, sliced (SSM) and SM-VR losses through
 * E (score_model_trace_grad / score_model_vjv_grad by a second-order forward pass and one
 * reverse pass), phi''' of every activation, a closed form on a one-layer energy; and the
 * energy kind's label and context inputs (gradients, save / load, guidance, sums). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "helpers/test-helpers.h"
#include "kernel/kernel-priv.h"
#include "model/mlp-kind-priv.h"

/* Richardson-extrapolated central differences of the float32 losses (steps h = 1e-2 and h / 2,
 * the step actually taken after rounding to float): truncation O(h^4), round-off about
 * 1e-7 |L| / h. A missing third-order term or a wrong sign gives errors of 1e-2 .. 1 of the
 * largest component. */
#define TOL_FD_REL 1e-3

enum { D = 3, K = 3, M = 2 };

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

/* An energy MLP of depth hidden layers of width hidden (residual blocks after the first when
 * residual = 1), with K labels and a context of width m when given. */
static score_model *energy_net_w(size_t hidden, size_t depth, int act, int residual,
                                 int64_t classes, int64_t m, uint64_t seed)
{
    score_model *e;
    ck_assert_ok(score_model_new_energy(&e, D));
    ck_assert_ok(score_model_set_i64(e, SCORE_MODEL_PARAM_HIDDEN, (int64_t)hidden));
    ck_assert_ok(score_model_set_i64(e, SCORE_MODEL_PARAM_DEPTH, (int64_t)depth));
    ck_assert_ok(score_model_set_i64(e, SCORE_MODEL_PARAM_ACTIVATION, act));
    ck_assert_ok(score_model_set_i64(e, SCORE_MODEL_PARAM_RESIDUAL, residual));
    ck_assert_ok(score_model_set_i64(e, SCORE_MODEL_PARAM_SEED, (int64_t)seed));
    ck_assert_ok(score_model_set_i64(e, SCORE_MODEL_PARAM_EMBED_DIM, 4));
    ck_assert_ok(score_model_set_f64(e, SCORE_MODEL_PARAM_FOURIER_SCALE, 1.0));
    ck_assert_ok(score_model_set_i64(e, SCORE_MODEL_PARAM_NUM_CLASSES, classes));
    ck_assert_ok(score_model_set_i64(e, SCORE_MODEL_PARAM_CONTEXT_DIM, m));
    ck_assert_ok(score_model_prepare(e));
    return e;
}

/* Widths 8, 8. */
static score_model *energy_net(int act, int residual, int64_t classes, int64_t m, uint64_t seed)
{
    return energy_net_w(8, 2, act, residual, classes, m, seed);
}

static double max_abs(size_t n, const float *a)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)a[i]));
    return m;
}

/* ---- phi''' ---- */

/* phi''' of every activation against central differences of phi'' (double, h = 1e-4:
 * truncation h^2 phi^(5) / 6 < 1e-8, round-off 1e-16 / h); ELU away from its kink. */
START_TEST(act_third_derivatives)
{
    const int acts[] = {SCORE_ACT_SILU, SCORE_ACT_SOFTPLUS, SCORE_ACT_TANH, SCORE_ACT_GELU,
                        SCORE_ACT_ELU};
    const double h = 1e-4;
    for (size_t a = 0; a < 5; a++) {
        double worst = 0.0;
        for (int i = -40; i <= 40; i++) {
            double z = 0.1 * i + 0.013, d3 = score__energy_act_d3(acts[a], z);
            double fd = (score__act_d2(acts[a], z + h) - score__act_d2(acts[a], z - h)) / (2 * h);
            worst = fmax(worst, fabs(d3 - fd) / fmax(1.0, fabs(fd)));
        }
        printf("phi''' of activation %d vs differences of phi'': max error %.2e\n", acts[a],
               worst);
        ck_assert_double_le(worst, 1e-7);
    }
    /* closed values: tanh'''(0) = -2, softplus'''(0) = 0, silu'''(0) = 0, gelu'''(0) = 0 */
    ck_assert_double_eq_tol(score__energy_act_d3(SCORE_ACT_TANH, 0.0), -2.0, 1e-15);
    ck_assert_double_eq_tol(score__energy_act_d3(SCORE_ACT_SOFTPLUS, 0.0), 0.0, 1e-15);
    ck_assert_double_eq_tol(score__energy_act_d3(SCORE_ACT_SILU, 0.0), 0.0, 1e-15);
    ck_assert_double_eq_tol(score__energy_act_d3(SCORE_ACT_GELU, 0.0), 0.0, 1e-15);
}
END_TEST

/* ---- closed form: one hidden layer ---- */

/* E(x, c) = sum_k a_k tanh(z_k) + b_L with z = W [x; c] + b (embedding NONE). Then
 *   Laplacian = sum_k a_k t''(z_k) |w_k|^2   (w_k: the x columns of row k of W),
 *   v^T H v   = sum_k a_k t''(z_k) (w_k . v)^2,
 * and the parameter gradients of sum_b wt_b (-v_b^T H v_b) in closed form:
 *   d/da_k = -t'' (w_k.v)^2,  d/db_k = -a_k t''' (w_k.v)^2,
 *   d/dW_kj = -a_k [t''' (w_k.v)^2 h0_j + 2 t'' (w_k.v) v_j (j < dim)],  d/db_L = 0.
 * trace_grad is the sum of this over v = e_1 .. e_dim; both are checked in double. */
static double t2(double z)
{
    double t = tanh(z);
    return -2.0 * t * (1.0 - t * t);
}

static double t3(double z)
{
    double t = tanh(z);
    return (1.0 - t * t) * (6.0 * t * t - 2.0);
}

/* Adds the closed-form gradient and value of sum_b wt_b (-v^T H v) of row b with direction v
 * to g (double, parameter layout W1, b1, W2, b2) and q[b]. */
static void closed_vhv(const float *th, size_t H, const float *x, double c, const float *v,
                       double wt, double *g, double *q)
{
    const size_t n0 = D + 1;
    const float *W1 = th, *b1 = th + H * n0, *a = th + H * n0 + H;
    double h0[D + 1];
    for (size_t j = 0; j < D; j++)
        h0[j] = x[j];
    h0[D] = c;
    for (size_t k = 0; k < H; k++) {
        double z = b1[k], wv = 0.0, d2, d3;
        for (size_t j = 0; j < n0; j++)
            z += (double)W1[k * n0 + j] * h0[j];
        for (size_t j = 0; j < D; j++)
            wv += (double)W1[k * n0 + j] * (double)v[j];
        d2 = t2(z);
        d3 = t3(z);
        *q -= (double)a[k] * d2 * wv * wv;
        g[H * n0 + H + k] -= wt * d2 * wv * wv;
        g[H * n0 + k] -= wt * (double)a[k] * d3 * wv * wv;
        for (size_t j = 0; j < n0; j++)
            g[k * n0 + j] -= wt * (double)a[k] *
                             (d3 * wv * wv * h0[j] + (j < D ? 2.0 * d2 * wv * (double)v[j] : 0.0));
    }
}

START_TEST(closed_form_one_layer)
{
    enum { N = 9, H = 6 };
    score_model *e;
    float *x = normal_data(N, D, 3, 1.0), *v = normal_data(N, D, 4, 1.0);
    size_t np;
    float *th, *g;
    double c[N], wt[N], tr[N], vjv[N], *ref, qref[N], err = 0.0, terr = 0.0;
    ck_assert_ok(score_model_new_energy(&e, D));
    ck_assert_ok(score_model_set_i64(e, SCORE_MODEL_PARAM_HIDDEN, H));
    ck_assert_ok(score_model_set_i64(e, SCORE_MODEL_PARAM_DEPTH, 1));
    ck_assert_ok(score_model_set_i64(e, SCORE_MODEL_PARAM_ACTIVATION, SCORE_ACT_TANH));
    ck_assert_ok(score_model_set_i64(e, SCORE_MODEL_PARAM_EMBEDDING, SCORE_EMBED_NONE));
    ck_assert_ok(score_model_set_i64(e, SCORE_MODEL_PARAM_SEED, 5));
    ck_assert_ok(score_model_prepare(e));
    np = score_model_param_count(e);
    ck_assert_uint_eq(np, H * (D + 1) + H + H + 1);
    th = malloc(np * sizeof *th);
    g = malloc(np * sizeof *g);
    ref = malloc(np * sizeof *ref);
    ck_assert_ok(score_model_params_get(e, th, np));
    for (size_t b = 0; b < N; b++) {
        c[b] = 0.1 * (double)b - 0.3;
        wt[b] = 0.5 + 0.25 * (double)b;
    }
    for (int mode = 0; mode < 2; mode++) {
        memset(g, 0, np * sizeof *g);
        for (size_t i = 0; i < np; i++)
            ref[i] = 0.0;
        for (size_t b = 0; b < N; b++) {
            qref[b] = 0.0;
            if (mode == 0) {
                for (size_t j = 0; j < D; j++) {
                    float u[D] = {0};
                    u[j] = 1.0f;
                    closed_vhv(th, H, x + b * D, c[b], u, wt[b], ref, &qref[b]);
                }
            } else {
                closed_vhv(th, H, x + b * D, c[b], v + b * D, wt[b], ref, &qref[b]);
            }
        }
        if (mode == 0)
            ck_assert_ok(score_model_trace_grad(e, N, x, c, wt, NULL, g, tr, NULL));
        else
            ck_assert_ok(score_model_vjv_grad(e, N, x, c, 1, v, wt, NULL, g, vjv, NULL));
        for (size_t b = 0; b < N; b++)
            terr = fmax(terr, fabs((mode == 0 ? tr[b] : vjv[b]) - qref[b]) /
                                  fmax(1.0, fabs(qref[b])));
        {
            double gm = 0.0;
            for (size_t i = 0; i < np; i++)
                gm = fmax(gm, fabs(ref[i]));
            for (size_t i = 0; i < np; i++)
                err = fmax(err, fabs((double)g[i] - ref[i]) / gm);
            ck_assert_double_gt(gm, 0.1);
        }
        /* the output bias does not enter a second derivative */
        ck_assert(g[np - 1] == 0.0f);
    }
    printf("one-layer closed form: Laplacian / v^T H v max rel error %.2e, parameter gradient "
           "%.2e\n", terr, err);
    ck_assert_double_le(terr, 1e-5);
    ck_assert_double_le(err, 1e-5);
    free(th);
    free(g);
    free(ref);
    free(x);
    free(v);
    score_model_free(e);
}
END_TEST

/* ---- the losses' gradients against differences ---- */

static double loss_value(score_loss *l, const score_sde *sde, score_model *m, const score_rng *r,
                         size_t n, const float *x)
{
    double v;
    ck_assert_ok(score_loss_compute(l, sde, m, r, n, x, &v, NULL));
    return v;
}

/* max |g - fd| / max |g| over every parameter. */
static double loss_grad_check(score_loss *l, const score_sde *sde, score_model *m,
                              const score_rng *r, size_t n, const float *x, double *lv)
{
    size_t np = score_model_param_count(m);
    float *p0 = malloc(np * sizeof *p0), *p = malloc(np * sizeof *p), *g = calloc(np, sizeof *g);
    double gmax, emax = 0.0;
    ck_assert_ok(score_model_params_get(m, p0, np));
    ck_assert_ok(score_loss_compute(l, sde, m, r, n, x, lv, g));
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
    int loss_kind, act, residual, sched_kind, output, probe;
    int64_t classes, ctx;
} hc_case;

static const hc_case hc_cases[] = {
    {"hyvarinen bare", SCORE_LOSS_HYVARINEN, SCORE_ACT_SILU, 1, 0, 0, 0, 0, 0},
    {"hyvarinen vp time", SCORE_LOSS_HYVARINEN, SCORE_ACT_TANH, 0, SCORE_SCHEDULE_VP, SCORE_OUTPUT_SCORE, 0, 0, 0},
    {"ssm bare", SCORE_LOSS_SSM, SCORE_ACT_GELU, 1, 0, 0, SCORE_LOSS_PROBE_RADEMACHER, 0, 0},
    {"ssm ve eps time", SCORE_LOSS_SSM, SCORE_ACT_SOFTPLUS, 0, SCORE_SCHEDULE_VE, SCORE_OUTPUT_EPS, SCORE_LOSS_PROBE_GAUSSIAN, 0, 0},
    {"ssm-vr bare", SCORE_LOSS_SSM_VR, SCORE_ACT_SILU, 0, 0, 0, SCORE_LOSS_PROBE_SPHERE, 0, 0},
    {"ssm-vr vp time", SCORE_LOSS_SSM_VR, SCORE_ACT_GELU, 1, SCORE_SCHEDULE_VP, SCORE_OUTPUT_SCORE, SCORE_LOSS_PROBE_RADEMACHER, 0, 0},
    {"hyvarinen labels+ctx", SCORE_LOSS_HYVARINEN, SCORE_ACT_TANH, 1, 0, 0, 0, K, M},
    {"ssm-vr labels", SCORE_LOSS_SSM_VR, SCORE_ACT_SILU, 0, SCORE_SCHEDULE_VP, SCORE_OUTPUT_SCORE, SCORE_LOSS_PROBE_GAUSSIAN, K, 0},
    {"dsm labels+ctx", SCORE_LOSS_DSM, SCORE_ACT_SILU, 1, 0, 0, 0, K, M},
    {"sde vp labels+ctx", SCORE_LOSS_SDE, SCORE_ACT_GELU, 0, SCORE_SCHEDULE_VP, SCORE_OUTPUT_EPS, 0, K, M},
};
enum { N_HC = sizeof hc_cases / sizeof hc_cases[0] };

START_TEST(loss_gradients)
{
    enum { NR = 12 };
    const hc_case *hc = &hc_cases[_i];
    score_model *m = energy_net(hc->act, hc->residual, hc->classes, hc->ctx, 41 + (uint64_t)_i);
    score_schedule *s = NULL;
    score_sde *sde = NULL;
    score_loss *l;
    score_rng *r = new_rng(50 + (uint64_t)_i);
    float *x = normal_data(NR, D, 60 + (uint64_t)_i, 1.0), ctx[NR * M];
    int32_t lab[NR];
    double err, lv;
    ck_assert_ok(score_loss_new(&l, hc->loss_kind));
    if (hc->sched_kind) {
        ck_assert_ok(score_schedule_new(&s, hc->sched_kind));
        ck_assert_ok(score_sde_new(&sde, s, m, hc->output));
        if (hc->loss_kind != SCORE_LOSS_SDE)
            ck_assert_ok(score_loss_set_f64(l, SCORE_LOSS_PARAM_TIME, 0.3));
    } else if (hc->loss_kind == SCORE_LOSS_DSM) {
        ck_assert_ok(score_loss_set_f64(l, SCORE_LOSS_PARAM_SIGMA, 0.5));
    } else {
        ck_assert_ok(score_loss_set_f64(l, SCORE_LOSS_PARAM_COND, 0.2));
    }
    if (hc->probe) {
        ck_assert_ok(score_loss_set_i64(l, SCORE_LOSS_PARAM_PROBE, hc->probe));
        ck_assert_ok(score_loss_set_i64(l, SCORE_LOSS_PARAM_PROJECTIONS, 2));
    }
    for (size_t b = 0; b < NR; b++) /* every class and the null label */
        lab[b] = (int32_t)(b % (size_t)(hc->classes + 1)) == hc->classes
                     ? SCORE_LABEL_NULL : (int32_t)(b % (size_t)(hc->classes + 1));
    for (size_t i = 0; i < NR * M; i++)
        ctx[i] = (float)(0.7 * sin(0.9 * (double)i + 0.2));
    if (hc->classes)
        ck_assert_ok(score_loss_set_labels(l, NR, lab));
    if (hc->ctx)
        ck_assert_ok(score_loss_set_context(l, NR, (size_t)hc->ctx, ctx));
    err = loss_grad_check(l, sde, m, r, NR, x, &lv);
    printf("loss gradient through the energy, %-22s loss %9.4f, max |g - fd| / max |g| = %.2e\n",
           hc->name, lv, err);
    ck_assert_double_le(err, TOL_FD_REL);
    score_loss_free(l);
    score_sde_free(sde);
    score_schedule_free(s);
    score_rng_free(r);
    free(x);
    score_model_free(m);
}
END_TEST

/* trace_grad's Laplacian (second-order forward) against score_model_trace's (Hessian-vector
 * products), vjv_grad's v^T J v against v . jvp, both to float rounding; each row's values do
 * not depend on the other rows of the call (bit for bit); ELU is refused. */
START_TEST(values_consistent_and_row_independent)
{
    enum { N = 11 };
    score_model *m = energy_net(SCORE_ACT_SILU, 1, 0, 0, 9), *elu = energy_net(SCORE_ACT_ELU, 0, 0, 0, 9);
    float *x = normal_data(N, D, 12, 1.0), *v = normal_data(N * 2, D, 13, 1.0), jv[N * 2 * D];
    size_t np = score_model_param_count(m);
    float *g = calloc(np, sizeof *g);
    double c[N], w[N * 2], tr[N], tr2[N], vjv[N * 2], worst = 0.0;
    for (size_t b = 0; b < N; b++)
        c[b] = 0.07 * (double)b;
    for (size_t i = 0; i < N * 2; i++)
        w[i] = 1.0;
    ck_assert_ok(score_model_trace(m, N, x, c, tr, NULL));
    ck_assert_ok(score_model_trace_grad(m, N, x, c, w, NULL, g, tr2, NULL));
    for (size_t b = 0; b < N; b++)
        worst = fmax(worst, fabs(tr[b] - tr2[b]) / fmax(1.0, fabs(tr[b])));
    ck_assert_ok(score_model_jvp(m, N, x, c, 2, v, jv, NULL));
    ck_assert_ok(score_model_vjv_grad(m, N, x, c, 2, v, NULL, NULL, g, vjv, NULL));
    for (size_t q = 0; q < N * 2; q++) {
        double d = 0.0;
        for (size_t j = 0; j < D; j++)
            d += (double)v[q * D + j] * (double)jv[q * D + j];
        worst = fmax(worst, fabs(d - vjv[q]) / fmax(1.0, fabs(d)));
    }
    printf("second-order values vs Hessian-vector products: max rel difference %.2e\n", worst);
    ck_assert_double_le(worst, 1e-5);
    for (size_t b = 0; b < N; b++) {
        double t1, q1[2];
        ck_assert_ok(score_model_trace_grad(m, 1, x + b * D, c + b, w, NULL, g, &t1, NULL));
        ck_assert(t1 == tr2[b]);
        ck_assert_ok(score_model_vjv_grad(m, 1, x + b * D, c + b, 2, v + b * 2 * D, NULL, NULL,
                                          g, q1, NULL));
        ck_assert(q1[0] == vjv[2 * b] && q1[1] == vjv[2 * b + 1]);
    }
    ck_assert_uint_eq(score_model_capabilities(m) &
                          (SCORE_MODEL_CAP_TRACE_GRAD | SCORE_MODEL_CAP_VJV_GRAD),
                      SCORE_MODEL_CAP_TRACE_GRAD | SCORE_MODEL_CAP_VJV_GRAD);
    {
        score_loss *l;
        score_rng *r = new_rng(1);
        float *ge = calloc(score_model_param_count(elu), sizeof *ge);
        ck_assert_fails_with(score_model_trace_grad(elu, N, x, c, w, NULL, ge, NULL, NULL),
                             SCORE_E_UNSUPPORTED);
        ck_assert_fails_with(score_model_vjv_grad(elu, N, x, c, 1, v, NULL, NULL, ge, NULL, NULL),
                             SCORE_E_UNSUPPORTED);
        ck_assert_ok(score_loss_new(&l, SCORE_LOSS_HYVARINEN));
        ck_assert_fails_with(score_loss_compute(l, NULL, elu, r, N, x, NULL, ge),
                             SCORE_E_UNSUPPORTED);
        score_loss_free(l);
        score_rng_free(r);
        free(ge);
    }
    free(g);
    free(x);
    free(v);
    score_model_free(m);
    score_model_free(elu);
}
END_TEST

/* The second-order passes on a network whose packed weights are padded (3 hidden layers of 80:
 * two panels of the packed layout, the second partly zero; a label table) over three panels
 * (a ragged last one): trace_grad's Laplacian against score_model_trace's, vjv_grad's values
 * against v . jvp, the parameter gradient of sum_b w_b tr_b against differences of
 * score_model_trace on a sample of the parameters (every layer, the label table), the rows
 * from 11 on alone give the same bits, and 2 threads the same bits as 1. */
START_TEST(wide_second_order)
{
    enum { NR = 100, OFF = 11, NS = 36, NF = 6 };
    score_model *m = energy_net_w(80, 3, SCORE_ACT_SILU, 1, K, 0, 31);
    float *x = normal_data(NR, D, 32, 1.0), *v = normal_data(NR, D, 33, 1.0);
    float jv[NR * D];
    size_t np = score_model_param_count(m);
    float *g = calloc(np, sizeof *g), *g2 = calloc(np, sizeof *g2), *p0 = malloc(np * sizeof *p0);
    double c[NR], w[NR], tr[NR], tr2[NR], vjv[NR], q[NR], worst = 0.0, err = 0.0;
    for (size_t b = 0; b < NR; b++) {
        c[b] = 0.01 * (double)b;
        w[b] = 0.5 + 0.01 * (double)(b % 7);
    }
    ck_assert_ok(score_model_trace(m, NR, x, c, tr, NULL));
    ck_assert_ok(score_model_trace_grad(m, NR, x, c, w, NULL, g, tr2, NULL));
    ck_assert_ok(score_model_jvp(m, NR, x, c, 1, v, jv, NULL));
    ck_assert_ok(score_model_vjv_grad(m, NR, x, c, 1, v, NULL, NULL, g2, vjv, NULL));
    for (size_t b = 0; b < NR; b++) {
        double d = 0.0;
        for (size_t j = 0; j < D; j++)
            d += (double)v[b * D + j] * (double)jv[b * D + j];
        worst = fmax(worst, fabs(tr[b] - tr2[b]) / fmax(1.0, fabs(tr[b])));
        worst = fmax(worst, fabs(d - vjv[b]) / fmax(1.0, fabs(d)));
    }
    /* rows OFF .. alone */
    ck_assert_ok(score_model_trace_grad(m, NR - OFF, x + OFF * D, c + OFF, w + OFF, NULL, g2, q,
                                        NULL));
    ck_assert_int_eq(memcmp(q, tr2 + OFF, (NR - OFF) * sizeof *q), 0);
    ck_assert_ok(score_model_vjv_grad(m, NR - OFF, x + OFF * D, c + OFF, 1, v + OFF * D, NULL,
                                      NULL, g2, q, NULL));
    ck_assert_int_eq(memcmp(q, vjv + OFF, (NR - OFF) * sizeof *q), 0);
    /* 2 threads */
    memset(g2, 0, np * sizeof *g2);
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_THREADS, 2));
    ck_assert_ok(score_model_trace_grad(m, NR, x, c, w, NULL, g2, q, NULL));
    ck_assert_int_eq(memcmp(g, g2, np * sizeof *g), 0);
    ck_assert_int_eq(memcmp(q, tr2, NR * sizeof *q), 0);
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_THREADS, 1));
    /* the gradient of sum_b w_b tr_b over the first NF rows on NS parameters spread over the
     * vector, against central differences with h = 1e-2 (no extrapolation: with h / 2 the
     * round-off of the float traces, ~1e-7 |tr| / h per row, outweighs the truncation) */
    memset(g, 0, np * sizeof *g);
    ck_assert_ok(score_model_trace_grad(m, NF, x, c, w, NULL, g, NULL, NULL));
    ck_assert_ok(score_model_params_get(m, p0, np));
    for (size_t s = 0; s < NS; s++) {
        size_t i = s * (np - 1) / (NS - 1);
        float orig = p0[i], up = (float)(orig + 1e-2), dn = (float)(orig - 1e-2);
        double val[2];
        for (int sg = 0; sg < 2; sg++) {
            p0[i] = sg == 0 ? up : dn;
            ck_assert_ok(score_model_params_set(m, p0, np));
            ck_assert_ok(score_model_trace(m, NF, x, c, q, NULL));
            val[sg] = 0.0;
            for (size_t b = 0; b < NF; b++)
                val[sg] += w[b] * q[b];
        }
        p0[i] = orig;
        ck_assert_ok(score_model_params_set(m, p0, np));
        err = fmax(err, fabs((val[0] - val[1]) / ((double)up - (double)dn) - g[i]));
    }
    printf("wide second-order: values vs Hessian-vector products %.2e, gradient vs differences "
           "%.2e of %.2e\n", worst, err, max_abs(np, g));
    ck_assert_double_le(worst, 1e-5);
    ck_assert_double_le(err, TOL_FD_REL * max_abs(np, g));
    free(g);
    free(g2);
    free(p0);
    free(x);
    free(v);
    score_model_free(m);
}
END_TEST

/* ---- labels and context ---- */

/* Save / load and clone of an energy with labels and context: parameters, scores (with
 * labels and context) and energies (through an sde with a label) bit for bit; the label
 * changes the score; a missing context is refused. */
START_TEST(conditions_save_load)
{
    enum { N = 10 };
    score_model *m = energy_net(SCORE_ACT_GELU, 1, K, M, 77), *l = NULL, *c2 = NULL;
    float *x = normal_data(N, D, 3, 1.0), ctx[N * M], s0[N * D], s1[N * D], s2[N * D];
    size_t np = score_model_param_count(m), len;
    float *p0 = malloc(np * sizeof *p0), *p1 = malloc(np * sizeof *p1);
    int32_t lab[N], lab2[N];
    double c[N];
    void *buf;
    for (size_t b = 0; b < N; b++) {
        c[b] = 0.3 * (double)b;
        lab[b] = (int32_t)(b % K);
        lab2[b] = (int32_t)((b + 1) % K);
    }
    for (size_t i = 0; i < N * M; i++)
        ctx[i] = (float)cos(0.4 * (double)i);
    ck_assert_ok(score_model_params_get(m, p0, np));
    for (size_t i = 0; i < np; i++)
        p0[i] = p0[i] * 1.5f + 0.01f * (float)(i % 7);
    ck_assert_ok(score_model_params_set(m, p0, np));
    ck_assert_ok(score_model_save_buffer(m, &buf, &len));
    ck_assert_ok(score_model_load_buffer(&l, buf, len));
    score_free(buf);
    ck_assert_ok(score_model_clone(&c2, m));
    ck_assert_int_eq(score_model_kind(l), SCORE_MODEL_ENERGY);
    ck_assert_ok(score_model_params_get(l, p1, np));
    ck_assert_int_eq(memcmp(p0, p1, np * sizeof *p0), 0);
    ck_assert_ok(score_model_forward_cond(m, N, x, c, lab, ctx, s0));
    ck_assert_ok(score_model_forward_cond(l, N, x, c, lab, ctx, s1));
    ck_assert_ok(score_model_forward_cond(c2, N, x, c, lab, ctx, s2));
    ck_assert_int_eq(memcmp(s0, s1, sizeof s0), 0);
    ck_assert_int_eq(memcmp(s0, s2, sizeof s0), 0);
    ck_assert_ok(score_model_forward_cond(m, N, x, c, lab2, ctx, s1));
    ck_assert_int_ne(memcmp(s0, s1, sizeof s0), 0);
    /* a row's result does not depend on the other rows */
    for (size_t b = 0; b < N; b++) {
        float sb[D];
        ck_assert_ok(score_model_forward_cond(m, 1, x + b * D, c + b, lab + b, ctx + b * M, sb));
        ck_assert_int_eq(memcmp(sb, s0 + b * D, sizeof sb), 0);
    }
    ck_assert_fails_with(score_model_forward(m, N, x, c, s1), SCORE_E_INVAL);
    free(p0);
    free(p1);
    free(x);
    score_model_free(l);
    score_model_free(c2);
    score_model_free(m);
}
END_TEST

/* Classifier-free guidance on one energy network: the one-pass guided score equals
 * (1 + w) s_y - w s_null of two sdes, bit for bit (each row's value depends on its own inputs
 * only); a guided sampler run (untrained network: only its bits are checked) is bit-identical
 * when split in two and differs from the unguided run of the label; the energy of a weighted sum
 * of energies with a label is the weighted sum of the energies with that label. */
START_TEST(conditions_guidance_and_sums)
{
    enum { N = 40 };
    const double w = 1.5, t[1] = {0.4};
    score_schedule *s;
    score_model *e1 = energy_net(SCORE_ACT_SILU, 0, K, 0, 21), *e2 = energy_net(SCORE_ACT_TANH, 1, K, 0, 22);
    score_model *sum, *mem[2];
    score_sde *g, *cy, *cn, *ss, *s1, *s2;
    score_sampler *smp;
    score_rng *r = new_rng(3);
    float *x = normal_data(N, D, 5, 1.0), sg[N * D], sy[N * D], sn[N * D];
    float *o1 = malloc(N * D * sizeof *o1), *o2 = malloc(N * D * sizeof *o2);
    double tt[N], es[N], ea[N], eb[N];
    const double wts[2] = {0.7, 0.4};
    for (size_t b = 0; b < N; b++)
        tt[b] = 0.1 + 0.02 * (double)b;
    ck_assert_ok(score_schedule_new(&s, SCORE_SCHEDULE_VP));
    ck_assert_ok(score_schedule_prepare(s));
    ck_assert_ok(score_sde_new(&g, s, e1, SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_sde_new(&cy, s, e1, SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_sde_new(&cn, s, e1, SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_sde_set_label(g, 2));
    ck_assert_ok(score_sde_set_f64(g, SCORE_SDE_PARAM_GUIDANCE, w));
    ck_assert_ok(score_sde_set_label(cy, 2));
    ck_assert_ok(score_sde_set_label(cn, SCORE_LABEL_NULL));
    ck_assert_ok(score_sde_score(g, N, tt, x, sg));
    ck_assert_ok(score_sde_score(cy, N, tt, x, sy));
    ck_assert_ok(score_sde_score(cn, N, tt, x, sn));
    for (size_t i = 0; i < N * D; i++) {
        float ref = (float)((1.0 + w) * (double)sy[i] - w * (double)sn[i]);
        ck_assert_msg(sg[i] == ref, "element %zu: guided %.9g, combined %.9g", i, (double)sg[i],
                      (double)ref);
    }
    ck_assert_int_ne(memcmp(sy, sn, sizeof sy), 0);
    /* a guided sampler run: the same rows in one run and in two */
    ck_assert_ok(score_sampler_new_preset(&smp, SCORE_SAMPLER_PRESET_DPMPP_2M, D));
    ck_assert_ok(score_sampler_run(smp, g, N, NULL, o1, r, NULL, NULL));
    ck_assert_ok(score_sampler_run_ex(smp, g, 0, N / 2, NULL, o2, r, NULL, NULL));
    ck_assert_ok(score_sampler_run_ex(smp, g, N / 2, N - N / 2, NULL, o2 + (N / 2) * D, r, NULL,
                                      NULL));
    ck_assert_int_eq(memcmp(o1, o2, N * D * sizeof *o1), 0);
    /* and not the samples of the label without guidance (same seed) */
    ck_assert_ok(score_sampler_run(smp, cy, N, NULL, o2, r, NULL, NULL));
    ck_assert_int_ne(memcmp(o1, o2, N * D * sizeof *o1), 0);
    /* a weighted sum of two energies with labels: energies add */
    mem[0] = e1;
    mem[1] = e2;
    ck_assert_ok(score_model_new_sum(&sum, 2, mem, wts));
    ck_assert_ok(score_sde_new(&ss, s, sum, SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_sde_new(&s1, s, e1, SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_sde_new(&s2, s, e2, SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_sde_set_label(ss, 1));
    ck_assert_ok(score_sde_set_label(s1, 1));
    ck_assert_ok(score_sde_set_label(s2, 1));
    ck_assert_ok(score_sde_energy(ss, N, tt, x, es));
    ck_assert_ok(score_sde_energy(s1, N, tt, x, ea));
    ck_assert_ok(score_sde_energy(s2, N, tt, x, eb));
    for (size_t b = 0; b < N; b++)
        ck_assert_double_le(fabs(es[b] - (wts[0] * ea[b] + wts[1] * eb[b])),
                            1e-12 * (fabs(ea[b]) + fabs(eb[b]) + 1.0));
    /* the label matters for the energy */
    ck_assert_ok(score_sde_set_label(s1, 0));
    ck_assert_ok(score_sde_energy(s1, N, tt, x, eb));
    ck_assert(eb[0] != ea[0]);
    (void)t;
    score_sampler_free(smp);
    score_sde_free(g);
    score_sde_free(cy);
    score_sde_free(cn);
    score_sde_free(ss);
    score_sde_free(s1);
    score_sde_free(s2);
    score_model_free(sum);
    score_model_free(e1);
    score_model_free(e2);
    score_schedule_free(s);
    score_rng_free(r);
    free(x);
    free(o1);
    free(o2);
}
END_TEST

/* The trainer's labels and label dropout on an energy: 10 Adam steps of the SDE loss with
 * p_uncond = 1 (every label dropped to the null one) give bit for bit the parameters of a run
 * without labels (the null label is the unconditional energy, the minibatches are the same);
 * with p_uncond = 0 the labels change the result; the trained energy is finite. */
static void train_energy(score_model *e, const float *x, const int32_t *lab, double p_uncond,
                         float *theta)
{
    enum { ROWS = 128 };
    score_schedule *s;
    score_sde *sde;
    score_loss *l;
    score_trainer *tr;
    ck_assert_ok(score_schedule_new(&s, SCORE_SCHEDULE_VP));
    ck_assert_ok(score_sde_new(&sde, s, e, SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_loss_new(&l, SCORE_LOSS_SDE));
    ck_assert_ok(score_trainer_new(&tr, e, sde, l, SCORE_OPTIMIZER_ADAM));
    ck_assert_ok(score_trainer_set_i64(tr, SCORE_TRAINER_PARAM_BATCH_SIZE, 32));
    ck_assert_ok(score_trainer_set_i64(tr, SCORE_TRAINER_PARAM_SEED, 4));
    ck_assert_ok(score_trainer_set_data(tr, ROWS, D, x));
    if (lab != NULL) {
        ck_assert_ok(score_trainer_set_labels(tr, ROWS, lab));
        ck_assert_ok(score_trainer_set_f64(tr, SCORE_TRAINER_PARAM_P_UNCOND, p_uncond));
    }
    ck_assert_ok(score_trainer_run(tr, 10, NULL, NULL));
    ck_assert_ok(score_model_params_get(e, theta, score_model_param_count(e)));
    score_trainer_free(tr);
    score_loss_free(l);
    score_sde_free(sde);
    score_schedule_free(s);
}

START_TEST(conditions_trainer_dropout)
{
    enum { ROWS = 128 };
    float *x = normal_data(ROWS, D, 31, 1.0);
    int32_t lab[ROWS];
    score_model *e[3];
    size_t np;
    float *th[3];
    for (size_t b = 0; b < ROWS; b++)
        lab[b] = (int32_t)(b % K);
    for (int i = 0; i < 3; i++)
        e[i] = energy_net(SCORE_ACT_SILU, 1, K, 0, 8);
    np = score_model_param_count(e[0]);
    for (int i = 0; i < 3; i++)
        th[i] = malloc(np * sizeof(float));
    train_energy(e[0], x, NULL, 0.0, th[0]);
    train_energy(e[1], x, lab, 1.0, th[1]);
    train_energy(e[2], x, lab, 0.0, th[2]);
    ck_assert_int_eq(memcmp(th[0], th[1], np * sizeof(float)), 0);
    ck_assert_int_ne(memcmp(th[0], th[2], np * sizeof(float)), 0);
    for (size_t i = 0; i < np; i++)
        ck_assert(isfinite(th[2][i]));
    for (int i = 0; i < 3; i++) {
        free(th[i]);
        score_model_free(e[i]);
    }
    free(x);
}
END_TEST

/* ---- threads ---- */

/* SCORE_MODEL_PARAM_THREADS = 2 and 3 against 1: the losses' values and parameter gradients
 * (Hyvärinen: second-order passes; DSM: double back-propagation, with labels), the scores and
 * the energies, bit for bit, on a batch of several waves of panels (and a ragged last panel). */
START_TEST(threads_bit_identical)
{
    enum { NR = 500 };
    const int kinds[2] = {SCORE_LOSS_HYVARINEN, SCORE_LOSS_DSM};
    float *x = normal_data(NR, D, 17, 1.0);
    int32_t lab[NR];
    double c[NR];
    for (size_t b = 0; b < NR; b++) {
        lab[b] = (int32_t)(b % (K + 1)) == K ? SCORE_LABEL_NULL : (int32_t)(b % (K + 1));
        c[b] = 0.001 * (double)b;
    }
    for (int k = 0; k < 2; k++) {
        score_model *m[3];
        float *g[3], *s[3];
        double lv[3], E[3][NR];
        size_t np;
        for (int t = 0; t < 3; t++) {
            score_loss *l;
            score_rng *r = new_rng(5);
            m[t] = energy_net(SCORE_ACT_SILU, 1, K, 0, 12);
            ck_assert_ok(score_model_set_i64(m[t], SCORE_MODEL_PARAM_THREADS, t + 1));
            np = score_model_param_count(m[t]);
            g[t] = calloc(np, sizeof(float));
            s[t] = malloc(NR * D * sizeof(float));
            ck_assert_ok(score_loss_new(&l, kinds[k]));
            ck_assert_ok(score_loss_set_labels(l, NR, lab));
            ck_assert_ok(score_loss_compute(l, NULL, m[t], r, NR, x, &lv[t], g[t]));
            ck_assert_ok(score_model_forward(m[t], NR, x, c, s[t]));
            ck_assert_ok(score_model_energy(m[t], NR, x, c, E[t]));
            score_loss_free(l);
            score_rng_free(r);
        }
        for (int t = 1; t < 3; t++) {
            ck_assert(lv[0] == lv[t]);
            ck_assert_int_eq(memcmp(g[0], g[t], np * sizeof(float)), 0);
            ck_assert_int_eq(memcmp(s[0], s[t], NR * D * sizeof(float)), 0);
            ck_assert_int_eq(memcmp(E[0], E[t], sizeof E[0]), 0);
        }
        ck_assert_double_gt(max_abs(np, g[0]), 0.0);
        for (int t = 0; t < 3; t++) {
            free(g[t]);
            free(s[t]);
            score_model_free(m[t]);
        }
    }
    free(x);
}
END_TEST

static Suite *energy_hsm_suite(void)
{
    Suite *s = suite_create("energy-hsm");
    TCase *tc = tcase_create("third-order");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, act_third_derivatives);
    tcase_add_test(tc, closed_form_one_layer);
    tcase_add_loop_test(tc, loss_gradients, 0, N_HC);
    tcase_add_test(tc, values_consistent_and_row_independent);
    tcase_add_test(tc, wide_second_order);
    suite_add_tcase(s, tc);
    tc = tcase_create("conditions");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, conditions_save_load);
    tcase_add_test(tc, conditions_guidance_and_sums);
    tcase_add_test(tc, conditions_trainer_dropout);
    suite_add_tcase(s, tc);
    tc = tcase_create("threads");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, threads_bit_identical);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(energy_hsm_suite());
}
