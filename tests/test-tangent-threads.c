/* The MLP's parameter gradients of the Jacobian trace and of v^T J v (the Hyvärinen and sliced
 * losses) on the model's threads (SCORE_MODEL_PARAM_THREADS): values, outputs and parameter
 * gradients bit for bit the same for 1, 2, 3 and 64 threads, through the losses (with labels),
 * through score_model_trace_grad / score_model_vjv_grad (several waves of pieces, a ragged last
 * piece) and through a few trainer steps; and the same sums as with one-row pieces to rounding. */
#include <math.h>
#include <stdint.h>

#include "helpers/test-helpers.h"
#include "model/mlp-priv.h" /* score__mlp_set_tangent_budget */

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
    tcase_add_test(tc, direct_bit_identical);
    tcase_add_test(tc, trainer_steps);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(tangent_threads_suite());
}
