/* The MLP's parameter gradients of the Jacobian trace and of v^T J v (the Hyvärinen and sliced
 * losses) on the model's threads (SCORE_MODEL_PARAM_THREADS): values, outputs and parameter
 * gradients bit for bit the same for 1, 2, 3 and 64 threads, through the losses (with labels;
 * the sliced kinds with each probe distribution, in 1, 2 and 4 lanes, their data terms
 * computed on the lanes), through score_model_trace_grad / score_model_vjv_grad (several waves
 * of pieces, a ragged last piece) and through a few trainer steps; and the same sums as with
 * one-row pieces to rounding. */
#include <math.h>
#include <stdint.h>

#include "helpers/test-helpers.h"
#include "model/mlp-priv.h" /* score__mlp_set_tangent_budget, score__mlp_set_tangent_lane_flops */

#define D 12
#define K_CLASSES 3

static const int64_t thread_counts[4] = {1, 2, 3, 64};

/* A residual MLP of width 96 and three hidden layers with a Fourier embedding (and a label
 * input when classes > 0). */
static score_model *net(size_t classes)
{
    score_model *m = NULL;
    ck_assert_ok(score_model_new_mlp(&m, D, 96, 3, SCORE_ACT_SILU, 21));
    if (classes > 0)
        ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_NUM_CLASSES, (int64_t)classes));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_EMBEDDING, SCORE_EMBED_FOURIER));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_RESIDUAL, 1));
    ck_assert_ok(score_model_prepare(m));
    return m;
}

static float *wave(size_t n, double f, double ph)
{
    float *a = malloc(n * sizeof *a);
    ck_assert(a != NULL);
    for (size_t i = 0; i < n; i++)
        a[i] = (float)sin(f * (double)i + ph);
    return a;
}

static double max_abs(size_t n, const float *a)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s = fmax(s, fabs((double)a[i]));
    return s;
}

/* The Hyvärinen and sliced losses (4 probes) with labels on 203 rows (pieces of 51 and 50
 * rows): loss values and gradients for every thread count equal those of one thread. */
START_TEST(losses_bit_identical)
{
    enum { NR = 203 };
    const int kinds[2] = {SCORE_LOSS_HYVARINEN, SCORE_LOSS_SSM};
    float *x = wave(NR * D, 0.37, 0.1);
    int32_t lab[NR];
    for (size_t b = 0; b < NR; b++)
        lab[b] = b % 4 == 3 ? SCORE_LABEL_NULL : (int32_t)(b % 4);
    for (int kk = 0; kk < 2; kk++) {
        float *g[4];
        double lv[4];
        size_t np = 0;
        for (int t = 0; t < 4; t++) {
            score_loss *l = NULL;
            score_rng *r = NULL;
            score_model *m = net(K_CLASSES);
            ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_THREADS, thread_counts[t]));
            np = score_model_param_count(m);
            g[t] = calloc(np, sizeof(float));
            ck_assert(g[t] != NULL);
            ck_assert_ok(score_rng_new(&r, SCORE_RNG_PHILOX4X32_10, 5));
            ck_assert_ok(score_loss_new(&l, kinds[kk]));
            if (kinds[kk] == SCORE_LOSS_SSM)
                ck_assert_ok(score_loss_set_i64(l, SCORE_LOSS_PARAM_PROJECTIONS, 4));
            ck_assert_ok(score_loss_set_labels(l, NR, lab));
            /* twice: the second call reuses the loss's workspace and pool */
            ck_assert_ok(score_loss_compute(l, NULL, m, r, NR, x, &lv[t], g[t]));
            ck_assert_ok(score_loss_compute(l, NULL, m, r, NR, x, &lv[t], g[t]));
            score_loss_free(l);
            score_rng_free(r);
            score_model_free(m);
        }
        ck_assert_double_gt(max_abs(np, g[0]), 0.0);
        for (int t = 1; t < 4; t++) {
            ck_assert_msg(lv[0] == lv[t], "loss %d, %d threads", kk, (int)thread_counts[t]);
            ck_assert_msg(memcmp(g[0], g[t], np * sizeof(float)) == 0, "gradient %d, %d threads",
                          kk, (int)thread_counts[t]);
        }
        for (int t = 0; t < 4; t++)
            free(g[t]);
    }
    free(x);
}
END_TEST

/* The sliced loss of a bare model recomputed from its definition: probes drawn as the loss
 * draws them (row b's probes from the noise counters after its first round4(D) + 4 columns;
 * the sphere's scaled to radius sqrt(D)), F and J v by score_model_jvp(), sums in double. */
static double sliced_reference(score_model *m, const score_rng *r, int kind, int probe, size_t n,
                               size_t M, const float *x)
{
    const size_t col0 = (D + 3) / 4 * 4 + 4;
    float *v = malloc(n * M * D * sizeof *v), *jv = malloc(n * M * D * sizeof *jv);
    float *f = malloc(n * D * sizeof *f);
    double *c = calloc(n, sizeof *c), total = 0.0;
    ck_assert(v && jv && f && c);
    if (probe == SCORE_LOSS_PROBE_RADEMACHER)
        ck_assert_ok(score_rng_fill_rademacher(r, 0, n, col0, M * D, v));
    else
        ck_assert_ok(score_rng_fill_normal(r, 0, n, col0, M * D, v));
    if (probe == SCORE_LOSS_PROBE_SPHERE)
        for (size_t q = 0; q < n * M; q++) {
            double s2 = 0.0;
            for (size_t j = 0; j < D; j++)
                s2 += (double)v[q * D + j] * v[q * D + j];
            for (size_t j = 0; j < D; j++)
                v[q * D + j] = (float)(sqrt((double)D / s2) * v[q * D + j]);
        }
    ck_assert_ok(score_model_jvp(m, n, x, c, M, v, jv, f));
    for (size_t b = 0; b < n; b++) {
        double row = 0.0, f2 = 0.0;
        for (size_t j = 0; j < D; j++)
            f2 += (double)f[b * D + j] * f[b * D + j];
        for (size_t p = 0; p < M; p++) {
            const float *vp = v + (b * M + p) * D, *jp = jv + (b * M + p) * D;
            double vjv = 0.0, vf = 0.0;
            for (size_t j = 0; j < D; j++) {
                vjv += (double)vp[j] * jp[j];
                vf += (double)vp[j] * f[b * D + j];
            }
            row += vjv + (kind == SCORE_LOSS_SSM ? 0.5 * vf * vf : 0.0);
        }
        row /= (double)M;
        total += row + (kind == SCORE_LOSS_SSM_VR ? 0.5 * f2 : 0.0);
    }
    free(v);
    free(jv);
    free(f);
    free(c);
    return total / (double)n;
}

/* SSM and SSM-VR with each probe distribution, 3 probes on 203 rows (blocks that do not divide
 * the batch), in the lanes the call's work gives (2) and, through the test hook, in 4 lanes:
 * the value and gradient (after a call of other blocks; repeated on lane buffers left clear by
 * the previous sum, and after a value-only call) and the value alone equal for 1, 2, 3 and 64
 * threads; the value matches the definition to rounding. */
START_TEST(sliced_probes_bit_identical)
{
    enum { NR = 203, MP = 3 };
    const int kinds[2] = {SCORE_LOSS_SSM, SCORE_LOSS_SSM_VR};
    const int probes[3] = {SCORE_LOSS_PROBE_RADEMACHER, SCORE_LOSS_PROBE_GAUSSIAN,
                           SCORE_LOSS_PROBE_SPHERE};
    const double lane_flops[2] = {0.0, 2.5e7}; /* 2 lanes (~1.1e8 flops), 4 lanes */
    float *x = wave(NR * D, 0.53, 0.2);
    for (int kk = 0; kk < 2; kk++)
        for (int pr = 0; pr < 3; pr++)
            for (int lf = 0; lf < 2; lf++) {
                float *g[4], *g2;
                double lv[4], lv_nograd[4], ref = 0.0;
                size_t np = 0;
                for (int t = 0; t < 4; t++) {
                    score_loss *l = NULL;
                    score_rng *r = NULL;
                    score_model *m = net(0);
                    score__mlp_set_tangent_lane_flops(m, lane_flops[lf]);
                    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_THREADS,
                                                     thread_counts[t]));
                    np = score_model_param_count(m);
                    g[t] = calloc(np, sizeof(float));
                    g2 = calloc(np, sizeof(float));
                    ck_assert(g[t] != NULL && g2 != NULL);
                    ck_assert_ok(score_rng_new(&r, SCORE_RNG_PHILOX4X32_10, 9));
                    ck_assert_ok(score_loss_new(&l, kinds[kk]));
                    ck_assert_ok(score_loss_set_i64(l, SCORE_LOSS_PARAM_PROJECTIONS, MP));
                    ck_assert_ok(score_loss_set_i64(l, SCORE_LOSS_PARAM_PROBE, probes[pr]));
                    ck_assert_ok(score_loss_compute(l, NULL, m, r, NR - 50, x, &lv[t], g[t]));
                    memset(g[t], 0, np * sizeof(float));
                    ck_assert_ok(score_loss_compute(l, NULL, m, r, NR, x, &lv[t], g[t]));
                    /* again: the lane buffers were cleared by the last sum; then after a
                     * value-only call (which writes the tangent arena) */
                    for (int again = 0; again < 2; again++) {
                        double lv2 = 0.0;
                        memset(g2, 0, np * sizeof(float));
                        if (again == 1)
                            ck_assert_ok(score_loss_compute(l, NULL, m, r, NR, x,
                                                            &lv_nograd[t], NULL));
                        ck_assert_ok(score_loss_compute(l, NULL, m, r, NR, x, &lv2, g2));
                        ck_assert_msg(lv2 == lv[t] && memcmp(g2, g[t], np * sizeof(float)) == 0,
                                      "kind %d probe %d lanes %d threads %d: call %d differs",
                                      kinds[kk], probes[pr], lf, (int)thread_counts[t],
                                      again + 3);
                    }
                    if (t == 0 && lf == 0)
                        ref = sliced_reference(m, r, kinds[kk], probes[pr], NR, MP, x);
                    score_loss_free(l);
                    score_rng_free(r);
                    score_model_free(m);
                    free(g2);
                }
                ck_assert_double_gt(max_abs(np, g[0]), 0.0);
                if (lf == 0)
                    ck_assert_msg(fabs(lv[0] - ref) <= 1e-5 * (1.0 + fabs(ref)),
                                  "kind %d probe %d: %.17g vs reference %.17g", kinds[kk],
                                  probes[pr], lv[0], ref);
                for (int t = 1; t < 4; t++) {
                    ck_assert_msg(lv[0] == lv[t] && lv_nograd[0] == lv_nograd[t],
                                  "kind %d probe %d lanes %d: loss, %d threads", kinds[kk],
                                  probes[pr], lf, (int)thread_counts[t]);
                    ck_assert_msg(memcmp(g[0], g[t], np * sizeof(float)) == 0,
                                  "kind %d probe %d lanes %d: gradient, %d threads", kinds[kk],
                                  probes[pr], lf, (int)thread_counts[t]);
                }
                for (int t = 0; t < 4; t++)
                    free(g[t]);
            }
    free(x);
}
END_TEST

/* trace_grad and vjv_grad (3 probes, weights, gout) with tangent budgets that give several
 * waves of pieces (one wave, a few, one piece per wave) and a batch that is not a multiple of
 * the piece: values, outputs and gradients for every thread count equal those of one thread;
 * and against one-row pieces (a budget of one byte): equal values, gradients to rounding. */
START_TEST(direct_bit_identical)
{
    enum { NR = 257, KP = 3 };
    const size_t budgets[3] = {0, (size_t)3 << 20, 1};
    float *x = wave(NR * D, 0.41, 0.3), *v = wave(NR * KP * D, 0.83, 1.1);
    float *gout = wave(NR * D, 0.29, 0.7);
    double c[NR], w[NR], wv[NR * KP];
    for (size_t b = 0; b < NR; b++) {
        c[b] = 0.01 + 0.9 * (double)(b % 13) / 12.0;
        w[b] = 0.5 + 0.01 * (double)(b % 7);
    }
    for (size_t i = 0; i < NR * KP; i++)
        wv[i] = 1.0 - 0.003 * (double)(i % 11);
    for (int op = 0; op < 2; op++) {
        size_t np = 0, nv = op == 0 ? NR : NR * KP;
        float *g[3][4], *fx[3][4];
        double *val[3][4];
        for (int bu = 0; bu < 3; bu++)
            for (int t = 0; t < (bu == 2 ? 1 : 4); t++) {
                score_model *m = net(0);
                np = score_model_param_count(m);
                score__mlp_set_tangent_budget(m, budgets[bu]);
                ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_THREADS, thread_counts[t]));
                g[bu][t] = calloc(np, sizeof(float));
                fx[bu][t] = malloc(NR * D * sizeof(float));
                val[bu][t] = malloc(nv * sizeof(double));
                ck_assert(g[bu][t] && fx[bu][t] && val[bu][t]);
                if (op == 0)
                    ck_assert_ok(score_model_trace_grad(m, NR, x, c, w, gout, g[bu][t],
                                                        val[bu][t], fx[bu][t]));
                else
                    ck_assert_ok(score_model_vjv_grad(m, NR, x, c, KP, v, wv, gout, g[bu][t],
                                                      val[bu][t], fx[bu][t]));
                score_model_free(m);
            }
        for (int bu = 0; bu < 2; bu++)
            for (int t = 1; t < 4; t++) {
                ck_assert_msg(memcmp(g[bu][0], g[bu][t], np * sizeof(float)) == 0,
                              "op %d budget %d: gradient, %d threads", op, bu,
                              (int)thread_counts[t]);
                ck_assert_msg(memcmp(val[bu][0], val[bu][t], nv * sizeof(double)) == 0,
                              "op %d budget %d: values, %d threads", op, bu,
                              (int)thread_counts[t]);
                ck_assert_msg(memcmp(fx[bu][0], fx[bu][t], NR * D * sizeof(float)) == 0,
                              "op %d budget %d: outputs, %d threads", op, bu,
                              (int)thread_counts[t]);
            }
        for (int bu = 1; bu < 3; bu++) {
            double scale = max_abs(np, g[0][0]);
            ck_assert_double_gt(scale, 0.0);
            for (size_t i = 0; i < nv; i++)
                ck_assert_double_eq_tol(val[bu][0][i], val[0][0][i],
                                        1e-5 * (1.0 + fabs(val[0][0][i])));
            for (size_t i = 0; i < np; i++)
                ck_assert_msg(fabs((double)g[bu][0][i] - g[0][0][i]) <= 1e-4 * scale,
                              "op %d budget %d: gradient %zu: %g vs %g", op, bu, i,
                              (double)g[bu][0][i], (double)g[0][0][i]);
        }
        for (int bu = 0; bu < 3; bu++)
            for (int t = 0; t < (bu == 2 ? 1 : 4); t++) {
                free(g[bu][t]);
                free(fx[bu][t]);
                free(val[bu][t]);
            }
    }
    free(x);
    free(v);
    free(gout);
}
END_TEST

/* Three trainer steps of the Hyvärinen loss: weights and losses equal for every thread count. */
START_TEST(trainer_steps)
{
    enum { ROWS = 300, STEPS = 3 };
    float *x = wave(ROWS * D, 0.61, 0.3), *p[4];
    double loss[4][STEPS];
    size_t np = 0;
    for (int t = 0; t < 4; t++) {
        score_model *m = net(0);
        score_loss *ls = NULL;
        score_trainer *tr = NULL;
        ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_THREADS, thread_counts[t]));
        np = score_model_param_count(m);
        ck_assert_ok(score_loss_new(&ls, SCORE_LOSS_HYVARINEN));
        ck_assert_ok(score_trainer_new(&tr, m, NULL, ls, SCORE_OPTIMIZER_ADAM));
        ck_assert_ok(score_trainer_set_i64(tr, SCORE_TRAINER_PARAM_BATCH_SIZE, 150));
        ck_assert_ok(score_trainer_set_i64(tr, SCORE_TRAINER_PARAM_SEED, 5));
        ck_assert_ok(score_trainer_set_data(tr, ROWS, D, x));
        for (int s = 0; s < STEPS; s++)
            ck_assert_ok(score_trainer_step(tr, &loss[t][s]));
        p[t] = malloc(np * sizeof(float));
        ck_assert(p[t] != NULL);
        ck_assert_ok(score_model_params_get(m, p[t], np));
        score_trainer_free(tr);
        score_loss_free(ls);
        score_model_free(m);
    }
    for (int t = 1; t < 4; t++) {
        ck_assert_msg(memcmp(p[0], p[t], np * sizeof(float)) == 0, "weights, %d threads",
                      (int)thread_counts[t]);
        ck_assert_msg(memcmp(loss[0], loss[t], sizeof loss[0]) == 0, "losses, %d threads",
                      (int)thread_counts[t]);
    }
    for (int t = 0; t < 4; t++)
        free(p[t]);
    free(x);
}
END_TEST

static Suite *tangent_threads_suite(void)
{
    Suite *s = suite_create("tangent-threads");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, losses_bit_identical);
    tcase_add_test(tc, sliced_probes_bit_identical);
    tcase_add_test(tc, direct_bit_identical);
    tcase_add_test(tc, trainer_steps);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(tangent_threads_suite());
}
