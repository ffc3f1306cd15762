/* SCORE_MODEL_PARAM_THREADS: the parameter's contract (range, any kind, any phase, clone) and
 * bit-identical results for every thread count, through the cache-free evaluation (score_sde_*),
 * a guidance combination and whole sampler runs. */
#include <math.h>
#include <stdint.h>

#include "helpers/test-helpers.h"
#include "model/model-priv.h" /* score__model_infer */

#define DIM 3
/* Enough rows for several evaluation blocks of a hidden-width-64 MLP, so that the threaded
 * path really runs: blocks hold about 1 MiB of activations (~1600 rows here) with a
 * single-threaded BLAS and 8 MiB (~12900 rows) with a multi-threaded one. */
#define NROWS 40001

static score_model *new_mlp(uint64_t seed)
{
    score_model *m = NULL;
    ck_assert_ok(score_model_new_mlp(&m, DIM, 64, 3, SCORE_ACT_SILU, seed));
    return m;
}

static score_schedule *new_vp(void)
{
    score_schedule *s = NULL;
    ck_assert_ok(score_schedule_new_preset(&s, "vp"));
    return s;
}

static void fill_inputs(float *x, double *t, size_t n)
{
    uint64_t u = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < n * DIM; i++) {
        u = u * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i] = (float)((double)(u >> 11) / 9007199254740992.0 * 6.0 - 3.0);
    }
    for (size_t i = 0; i < n; i++)
        t[i] = 1e-3 + 0.999 * (double)(i % 97) / 96.0; /* runs of equal and distinct times */
}

START_TEST(test_param_contract)
{
    score_model *m = new_mlp(1), *c = NULL;
    score_schedule *s = new_vp();
    score_model *g = NULL;
    double mean[DIM] = {0, 0, 0}, var[DIM] = {1, 2, 3};
    int64_t v = 0;
    ck_assert_ok(score_model_get_i64(m, SCORE_MODEL_PARAM_THREADS, &v));
    ck_assert_int_eq(v, 1); /* default */
    ck_assert_str_eq(score_param_name(SCORE_OBJECT_MODEL, SCORE_MODEL_PARAM_THREADS), "threads");
    ck_assert_fails_with(score_model_set_i64(m, SCORE_MODEL_PARAM_THREADS, 0), SCORE_E_RANGE);
    ck_assert_fails_with(score_model_set_i64(m, SCORE_MODEL_PARAM_THREADS, 1025), SCORE_E_RANGE);
    ck_assert_fails_with(score_model_set_i64(m, SCORE_MODEL_PARAM_THREADS, -3), SCORE_E_RANGE);
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_THREADS, 4));
    ck_assert_ok(score_model_prepare(m));
    /* a run-time setting: allowed after prepare, unlike the architecture */
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_THREADS, 3));
    ck_assert_fails_with(score_model_set_i64(m, SCORE_MODEL_PARAM_HIDDEN, 32), SCORE_E_STAGE);
    ck_assert_ok(score_model_clone(&c, m));
    ck_assert_ok(score_model_get_i64(c, SCORE_MODEL_PARAM_THREADS, &v));
    ck_assert_int_eq(v, 3);
    /* any kind accepts it */
    ck_assert_ok(score_model_new_gaussian(&g, s, DIM, mean, NULL, var));
    ck_assert_ok(score_model_set_i64(g, SCORE_MODEL_PARAM_THREADS, 2));
    ck_assert_ok(score_model_get_i64(g, SCORE_MODEL_PARAM_THREADS, &v));
    ck_assert_int_eq(v, 2);
    ck_assert_fails_with(score_model_set_i64(NULL, SCORE_MODEL_PARAM_THREADS, 2), SCORE_E_INVAL);
    score_model_free(g);
    score_model_free(c);
    score_model_free(m);
    score_schedule_free(s);
}
END_TEST

/* Scores of NROWS rows with the given thread count (set on `eval`, the model the sde holds). */
static void scores_with(score_sde *sde, score_model *eval, int64_t threads, const double *t,
                        const float *x, float *out)
{
    ck_assert_ok(score_model_set_i64(eval, SCORE_MODEL_PARAM_THREADS, threads));
    ck_assert_ok(score_sde_score(sde, NROWS, t, x, out));
}

START_TEST(test_sde_bit_identical)
{
    score_model *m = new_mlp(7);
    score_schedule *s = new_vp();
    score_sde *sde = NULL;
    float *x = malloc(NROWS * DIM * sizeof *x), *ref = malloc(NROWS * DIM * sizeof *ref);
    float *got = malloc(NROWS * DIM * sizeof *got);
    double *t = malloc(NROWS * sizeof *t);
    static const int64_t counts[] = {2, 3, 1024};
    ck_assert_ptr_nonnull(x);
    ck_assert_ptr_nonnull(ref);
    ck_assert_ptr_nonnull(got);
    ck_assert_ptr_nonnull(t);
    fill_inputs(x, t, NROWS);
    ck_assert_ok(score_model_prepare(m));
    ck_assert_ok(score_sde_new(&sde, s, m, SCORE_OUTPUT_EPS));
    scores_with(sde, m, 1, t, x, ref);
    for (size_t i = 0; i < NROWS * DIM; i++)
        ck_assert_msg(isfinite(ref[i]), "non-finite score at %zu", i);
    for (size_t j = 0; j < sizeof counts / sizeof counts[0]; j++) {
        scores_with(sde, m, counts[j], t, x, got);
        ck_assert_msg(memcmp(ref, got, NROWS * DIM * sizeof *got) == 0,
                      "threads = %lld changed the scores", (long long)counts[j]);
    }
    /* fewer rows than one block, and back to 1 thread after a threaded call */
    scores_with(sde, m, 2, t, x, got);
    ck_assert_ok(score_sde_score(sde, 5, t, x, got));
    scores_with(sde, m, 1, t, x, got);
    ck_assert_int_eq(memcmp(ref, got, NROWS * DIM * sizeof *got), 0);
    score_sde_free(sde);
    score_model_free(m);
    score_schedule_free(s);
    free(x);
    free(ref);
    free(got);
    free(t);
}
END_TEST

START_TEST(test_guidance_combination)
{
    score_model *a = new_mlp(11), *b = new_mlp(12), *cfg = NULL;
    score_schedule *s = new_vp();
    score_sde *sde = NULL;
    float *x = malloc(NROWS * DIM * sizeof *x), *ref = malloc(NROWS * DIM * sizeof *ref);
    float *got = malloc(NROWS * DIM * sizeof *got);
    double *t = malloc(NROWS * sizeof *t);
    int64_t v = 0;
    ck_assert_ptr_nonnull(x);
    ck_assert_ptr_nonnull(ref);
    ck_assert_ptr_nonnull(got);
    ck_assert_ptr_nonnull(t);
    fill_inputs(x, t, NROWS);
    ck_assert_ok(score_model_prepare(a));
    ck_assert_ok(score_model_prepare(b));
    ck_assert_ok(score_model_new_cfg(&cfg, a, b, 1.5));
    ck_assert_ok(score_sde_new(&sde, s, cfg, SCORE_OUTPUT_EPS));
    scores_with(sde, cfg, 1, t, x, ref);
    scores_with(sde, cfg, 3, t, x, got);
    ck_assert_int_eq(memcmp(ref, got, NROWS * DIM * sizeof *got), 0);
    /* the members' own settings are restored after the call */
    ck_assert_ok(score_model_get_i64(a, SCORE_MODEL_PARAM_THREADS, &v));
    ck_assert_int_eq(v, 1);
    ck_assert_ok(score_model_get_i64(b, SCORE_MODEL_PARAM_THREADS, &v));
    ck_assert_int_eq(v, 1);
    /* the combination equals (1 + w) F_a - w F_b evaluated member by member */
    {
        score_sde *sa = NULL, *sb = NULL;
        float *fa = malloc(NROWS * DIM * sizeof *fa), *fb = malloc(NROWS * DIM * sizeof *fb);
        ck_assert_ptr_nonnull(fa);
        ck_assert_ptr_nonnull(fb);
        ck_assert_ok(score_sde_new(&sa, s, a, SCORE_OUTPUT_EPS));
        ck_assert_ok(score_sde_new(&sb, s, b, SCORE_OUTPUT_EPS));
        ck_assert_ok(score_sde_eps(sa, NROWS, t, x, fa));
        ck_assert_ok(score_sde_eps(sb, NROWS, t, x, fb));
        ck_assert_ok(score_sde_eps(sde, NROWS, t, x, got));
        for (size_t i = 0; i < NROWS * DIM; i++) {
            double want = 2.5 * (double)fa[i] - 1.5 * (double)fb[i];
            /* float rounding of three float32 values combined in double */
            ck_assert_double_le(fabs((double)got[i] - want), 1e-6 * (1.0 + fabs(want)));
        }
        score_sde_free(sa);
        score_sde_free(sb);
        free(fa);
        free(fb);
    }
    score_sde_free(sde);
    score_model_free(cfg);
    score_model_free(a);
    score_model_free(b);
    score_schedule_free(s);
    free(x);
    free(ref);
    free(got);
    free(t);
}
END_TEST

/* Whole sampler runs: stochastic PC (noise from the counter RNG) and DPM-Solver++(2M); with
 * split > 0 as two calls (rows 0 .. split - 1, then the rest, with their global row numbers). */
static void run_sampler_split(int preset, int64_t threads, size_t split, float *out)
{
    score_model *m = new_mlp(5);
    score_schedule *s = new_vp();
    score_sde *sde = NULL;
    score_sampler *smp = NULL;
    score_rng *rng = NULL;
    ck_assert_ok(score_model_prepare(m));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_THREADS, threads));
    ck_assert_ok(score_sde_new(&sde, s, m, SCORE_OUTPUT_EPS));
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 99));
    ck_assert_ok(score_sampler_new_preset(&smp, preset, DIM));
    ck_assert_ok(score_sampler_set_i64(smp, SCORE_SAMPLER_PARAM_NUM_STEPS, 3));
    if (split == 0) {
        ck_assert_ok(score_sampler_run(smp, sde, NROWS, NULL, out, rng, NULL, NULL));
    } else {
        ck_assert_ok(score_sampler_run_ex(smp, sde, 0, split, NULL, out, rng, NULL, NULL));
        ck_assert_ok(score_sampler_run_ex(smp, sde, split, NROWS - split, NULL, out + split * DIM,
                                          rng, NULL, NULL));
    }
    score_sampler_free(smp);
    score_rng_free(rng);
    score_sde_free(sde);
    score_model_free(m);
    score_schedule_free(s);
}

static void run_sampler(int preset, int64_t threads, float *out)
{
    run_sampler_split(preset, threads, 0, out);
}

START_TEST(test_sampler_bit_identical)
{
    static const int presets[] = {SCORE_SAMPLER_PRESET_PC, SCORE_SAMPLER_PRESET_DPMPP_2M};
    float *ref = malloc(NROWS * DIM * sizeof *ref), *got = malloc(NROWS * DIM * sizeof *got);
    ck_assert_ptr_nonnull(ref);
    ck_assert_ptr_nonnull(got);
    for (size_t p = 0; p < 2; p++) {
        run_sampler(presets[p], 1, ref);
        for (size_t i = 0; i < NROWS * DIM; i++)
            ck_assert_msg(isfinite(ref[i]), "non-finite sample");
        run_sampler(presets[p], 2, got);
        ck_assert_msg(memcmp(ref, got, NROWS * DIM * sizeof *got) == 0,
                      "preset %d: 2 threads changed the samples", presets[p]);
        /* the evaluation blocks follow each call's rows (cut evenly for the threads), not a
         * fixed grid: calls that split the rows elsewhere give the same rows, at 1, 2 and 3
         * threads (a split inside a panel, and one at an odd row far from any block edge) */
        run_sampler_split(presets[p], 2, 20000, got);
        ck_assert_msg(memcmp(ref, got, NROWS * DIM * sizeof *got) == 0,
                      "preset %d: two calls, 2 threads changed the samples", presets[p]);
        run_sampler_split(presets[p], 3, 7777, got);
        ck_assert_msg(memcmp(ref, got, NROWS * DIM * sizeof *got) == 0,
                      "preset %d: two calls, 3 threads changed the samples", presets[p]);
        run_sampler_split(presets[p], 1, 7777, got);
        ck_assert_msg(memcmp(ref, got, NROWS * DIM * sizeof *got) == 0,
                      "preset %d: two calls, 1 thread changed the samples", presets[p]);
    }
    free(ref);
    free(got);
}
END_TEST


/* Training path: forward + backward of a batch of several row blocks (1000 rows: 8 blocks of
 * 125) with a residual MLP of width 128 (2 weight-gradient chunks per layer; 75 MFLOP per
 * forward, above the size where the model starts using its threads). Bit-identical for 1, 2,
 * 3 threads; and equal, to float rounding, to the sum of the gradients of the four quarter
 * batches computed one at a time (other blocks, other GEMM sizes): the partition adds up. */
#define TRAIN_N 1000
START_TEST(test_train_path)
{
    score_model *m = NULL;
    size_t P, nq = TRAIN_N / 4;
    float *x = malloc(TRAIN_N * DIM * sizeof *x), *gout = malloc(TRAIN_N * DIM * sizeof *gout);
    float *f1 = malloc(TRAIN_N * DIM * sizeof *f1), *f2 = malloc(TRAIN_N * DIM * sizeof *f2);
    float *gx1 = malloc(TRAIN_N * DIM * sizeof *gx1), *gx2 = malloc(TRAIN_N * DIM * sizeof *gx2);
    float *g1, *g2, *gq;
    double *t = malloc(TRAIN_N * sizeof *t);
    ck_assert_ok(score_model_new_mlp(&m, DIM, 128, 3, SCORE_ACT_SILU, 3));
    ck_assert_ok(score_model_prepare(m));
    P = score_model_param_count(m);
    g1 = calloc(P, sizeof *g1);
    g2 = calloc(P, sizeof *g2);
    gq = calloc(P, sizeof *gq);
    ck_assert(x && gout && f1 && f2 && gx1 && gx2 && g1 && g2 && gq && t);
    fill_inputs(x, t, TRAIN_N);
    for (size_t i = 0; i < TRAIN_N * DIM; i++)
        gout[i] = (float)(0.5 * sin(0.37 * (double)i));
    ck_assert_ok(score_model_forward(m, TRAIN_N, x, t, f1));
    ck_assert_ok(score_model_backward(m, TRAIN_N, gout, g1, gx1));
    for (int64_t th = 2; th <= 3; th++) {
        memset(g2, 0, P * sizeof *g2);
        ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_THREADS, th));
        ck_assert_ok(score_model_forward(m, TRAIN_N, x, t, f2));
        ck_assert_ok(score_model_backward(m, TRAIN_N, gout, g2, gx2));
        ck_assert_msg(memcmp(f1, f2, TRAIN_N * DIM * sizeof *f1) == 0, "forward, %d threads", (int)th);
        ck_assert_msg(memcmp(g1, g2, P * sizeof *g1) == 0, "parameter gradient, %d threads", (int)th);
        ck_assert_msg(memcmp(gx1, gx2, TRAIN_N * DIM * sizeof *gx1) == 0, "input gradient, %d threads",
                      (int)th);
    }
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_THREADS, 1));
    for (size_t q = 0; q < 4; q++) {
        ck_assert_ok(score_model_forward(m, nq, x + q * nq * DIM, t + q * nq, f2 + q * nq * DIM));
        ck_assert_ok(score_model_backward(m, nq, gout + q * nq * DIM, gq, gx2 + q * nq * DIM));
    }
    {
        /* rows are independent: the outputs agree to the rounding of K-term float dot products
         * (K <= 128 here, TOL_GEMM_REL); the gradients are sums over 1000 rows accumulated in a
         * different grouping (one GEMM over all rows vs four GEMMs): relative 1e-4 of the
         * gradient's scale. */
        double scale = 0.0;
        for (size_t i = 0; i < TRAIN_N * DIM; i++) {
            ck_assert_double_le(fabs((double)f1[i] - f2[i]), TOL_GEMM_REL * (1.0 + fabs((double)f1[i])));
            ck_assert_double_le(fabs((double)gx1[i] - gx2[i]), TOL_GEMM_REL * (1.0 + fabs((double)gx1[i])));
        }
        for (size_t i = 0; i < P; i++)
            scale = fmax(scale, fabs((double)g1[i]));
        ck_assert_double_gt(scale, 0.0);
        for (size_t i = 0; i < P; i++)
            ck_assert_msg(fabs((double)g1[i] - gq[i]) <= 1e-4 * scale, "gradient %zu: %g vs %g", i,
                          (double)g1[i], (double)gq[i]);
    }
    score_model_free(m);
    free(x); free(gout); free(f1); free(f2); free(gx1); free(gx2); free(g1); free(g2); free(gq);
    free(t);
}
END_TEST

/* The training path of a model with a label input (the label table's gradient) and residual
 * blocks: parameter and input gradients bit-identical for 1 thread (where the backward takes the
 * bias sums and the table's rows in its dz passes) and 2 threads (where the weight-gradient
 * phase takes them). */
START_TEST(test_train_path_labels)
{
    enum { K = 5 };
    score_model *m = NULL;
    size_t P;
    float *x = malloc(TRAIN_N * DIM * sizeof *x), *gout = malloc(TRAIN_N * DIM * sizeof *gout);
    float *f = malloc(TRAIN_N * DIM * sizeof *f), *gx1 = malloc(TRAIN_N * DIM * sizeof *gx1);
    float *gx2 = malloc(TRAIN_N * DIM * sizeof *gx2), *g1, *g2;
    int32_t *lab = malloc(TRAIN_N * sizeof *lab);
    double *t = malloc(TRAIN_N * sizeof *t), scale = 0.0;
    const size_t widths[3] = {128, 128, 96}; /* a residual block, then a width change */
    ck_assert_ok(score_model_new_mlp(&m, DIM, 128, 3, SCORE_ACT_SILU, 5));
    ck_assert_ok(score_model_set_hidden_widths(m, 3, widths));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_NUM_CLASSES, K));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_RESIDUAL, 1));
    ck_assert_ok(score_model_prepare(m));
    P = score_model_param_count(m);
    g1 = calloc(P, sizeof *g1);
    g2 = calloc(P, sizeof *g2);
    ck_assert(x && gout && f && gx1 && gx2 && g1 && g2 && lab && t);
    fill_inputs(x, t, TRAIN_N);
    for (size_t i = 0; i < TRAIN_N; i++)
        lab[i] = (int32_t)((i * 7) % (K + 1)); /* every class and the null label */
    for (size_t i = 0; i < TRAIN_N * DIM; i++)
        gout[i] = (float)(0.5 * cos(0.29 * (double)i));
    ck_assert_ok(score_model_forward_cond(m, TRAIN_N, x, t, lab, NULL, f));
    ck_assert_ok(score_model_backward(m, TRAIN_N, gout, g1, gx1));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_THREADS, 2));
    ck_assert_ok(score_model_forward_cond(m, TRAIN_N, x, t, lab, NULL, f));
    ck_assert_ok(score_model_backward(m, TRAIN_N, gout, g2, gx2));
    ck_assert_mem_eq(g1, g2, P * sizeof *g1);
    ck_assert_mem_eq(gx1, gx2, TRAIN_N * DIM * sizeof *gx1);
    for (size_t i = 0; i < P; i++)
        scale = fmax(scale, fabs((double)g1[i]));
    ck_assert_double_gt(scale, 0.0);
    score_model_free(m);
    free(x); free(gout); free(f); free(gx1); free(gx2); free(g1); free(g2); free(lab); free(t);
}
END_TEST

/* The threaded backward runs a layer's weight-gradient chunks and its dh GEMMs in one phase,
 * with the next layer's dz in a second buffer: plain (non-residual) layers of equal widths,
 * whose dh alternates between two buffers, with and without each gradient. Bit-identical for
 * 1, 2 and 3 threads. */
START_TEST(test_train_path_plain)
{
    score_model *m = NULL;
    size_t P;
    float *x = malloc(TRAIN_N * DIM * sizeof *x), *gout = malloc(TRAIN_N * DIM * sizeof *gout);
    float *f = malloc(TRAIN_N * DIM * sizeof *f), *gx[3], *g[3];
    double *t = malloc(TRAIN_N * sizeof *t);
    ck_assert_ok(score_model_new_mlp(&m, DIM, 128, 4, SCORE_ACT_SILU, 7));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_RESIDUAL, 0));
    ck_assert_ok(score_model_prepare(m));
    P = score_model_param_count(m);
    for (int i = 0; i < 3; i++) {
        g[i] = calloc(P, sizeof *g[i]);
        gx[i] = calloc(TRAIN_N * DIM, sizeof *gx[i]);
        ck_assert(g[i] && gx[i]);
    }
    ck_assert(x && gout && f && t);
    fill_inputs(x, t, TRAIN_N);
    for (size_t i = 0; i < TRAIN_N * DIM; i++)
        gout[i] = (float)(0.5 * sin(0.23 * (double)i + 1.0));
    for (int mode = 0; mode < 3; mode++) { /* both gradients, parameters only, input only */
        for (int64_t th = 1; th <= 3; th++) {
            float *gp = mode != 2 ? g[th - 1] : NULL, *gi = mode != 1 ? gx[th - 1] : NULL;
            if (gp)
                memset(gp, 0, P * sizeof *gp);
            ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_THREADS, th));
            ck_assert_ok(score_model_forward(m, TRAIN_N, x, t, f));
            ck_assert_ok(score_model_backward(m, TRAIN_N, gout, gp, gi));
        }
        for (int th = 1; th < 3; th++) {
            if (mode != 2)
                ck_assert_msg(memcmp(g[0], g[th], P * sizeof *g[0]) == 0,
                              "parameter gradient, mode %d, %d threads", mode, th + 1);
            if (mode != 1)
                ck_assert_msg(memcmp(gx[0], gx[th], TRAIN_N * DIM * sizeof *gx[0]) == 0,
                              "input gradient, mode %d, %d threads", mode, th + 1);
        }
    }
    {
        double scale = 0.0;
        for (size_t i = 0; i < P; i++)
            scale = fmax(scale, fabs((double)g[0][i]));
        ck_assert_double_gt(scale, 0.0);
    }
    score_model_free(m);
    for (int i = 0; i < 3; i++) {
        free(g[i]);
        free(gx[i]);
    }
    free(x); free(gout); free(f); free(t);
}
END_TEST

/* Training steps of a model above the sizes where the model's training path and the
 * optimizer's sweep use threads (the sweep then runs on the model's pool, lent by the trainer):
 * weights, the EMA and the losses bit-identical for 1, 2 and 3 threads. */
START_TEST(test_trainer_steps)
{
    enum { ROWS = 1024, STEPS = 3 };
    float *x = malloc(ROWS * DIM * sizeof *x), *p[3] = {NULL}, *e[3] = {NULL};
    double loss[3][STEPS];
    size_t P = 0;
    for (size_t i = 0; i < ROWS * DIM; i++)
        x[i] = (float)sin(0.61 * (double)i + 0.3);
    for (int64_t th = 1; th <= 3; th++) {
        score_schedule *sched = NULL;
        score_model *m = NULL, *em = NULL;
        score_sde *sde = NULL;
        score_loss *ls = NULL;
        score_trainer *tr = NULL;
        ck_assert_ok(score_schedule_new(&sched, SCORE_SCHEDULE_VE));
        ck_assert_ok(score_schedule_prepare(sched));
        ck_assert_ok(score_model_new_mlp(&m, DIM, 384, 3, SCORE_ACT_SILU, 11));
        ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_THREADS, th));
        ck_assert_ok(score_model_prepare(m));
        P = score_model_param_count(m);
        ck_assert_uint_ge(P, (size_t)1 << 18); /* the optimizer's threaded sweep */
        ck_assert_ok(score_sde_new(&sde, sched, m, SCORE_OUTPUT_EPS));
        ck_assert_ok(score_loss_new(&ls, SCORE_LOSS_SDE));
        ck_assert_ok(score_trainer_new(&tr, m, sde, ls, SCORE_OPTIMIZER_ADAM));
        ck_assert_ok(score_trainer_set_i64(tr, SCORE_TRAINER_PARAM_BATCH_SIZE, 512));
        ck_assert_ok(score_trainer_set_i64(tr, SCORE_TRAINER_PARAM_SEED, 5));
        ck_assert_ok(score_trainer_set_data(tr, ROWS, DIM, x));
        for (int s = 0; s < STEPS; s++)
            ck_assert_ok(score_trainer_step(tr, &loss[th - 1][s]));
        p[th - 1] = malloc(P * sizeof(float));
        e[th - 1] = malloc(P * sizeof(float));
        ck_assert(p[th - 1] && e[th - 1]);
        ck_assert_ok(score_model_params_get(m, p[th - 1], P));
        ck_assert_ok(score_trainer_ema_model(tr, &em));
        ck_assert_ok(score_model_params_get(em, e[th - 1], P));
        score_trainer_free(tr);
        score_loss_free(ls);
        score_sde_free(sde);
        score_model_free(m);
        score_schedule_free(sched);
    }
    ck_assert(memcmp(p[0], e[0], P * sizeof(float)) != 0); /* the EMA lags the weights */
    for (int th = 1; th < 3; th++) {
        ck_assert_msg(memcmp(p[0], p[th], P * sizeof(float)) == 0, "weights, %d threads", th + 1);
        ck_assert_msg(memcmp(e[0], e[th], P * sizeof(float)) == 0, "EMA, %d threads", th + 1);
        ck_assert_msg(memcmp(loss[0], loss[th], sizeof loss[0]) == 0, "losses, %d threads", th + 1);
    }
    for (int i = 0; i < 3; i++) {
        free(p[i]);
        free(e[i]);
    }
    free(x);
}
END_TEST

/* The cache-free evaluation folds the embedding into the first layer's bias when every row of a
 * block has the same c (every sampler step). Against the cached forward (one GEMM over
 * [x ; e(c)]): equal to float rounding for each embedding kind, with and without residual
 * blocks, for batches of one c, of mixed c (the general path), 1 row, and d = 1 and 40. */
START_TEST(test_infer_shared_c)
{
    static const int embeds[] = {SCORE_EMBED_FOURIER, SCORE_EMBED_SINUSOIDAL, SCORE_EMBED_NONE};
    static const size_t dims[] = {1, 3, 40};
    const size_t n = 3001;
    for (size_t ie = 0; ie < 3; ie++)
        for (size_t id = 0; id < 3; id++)
            for (int res = 0; res <= 1; res++)
                for (int mixed = 0; mixed <= 1; mixed++) {
                    size_t d = dims[id];
                    score_model *m = NULL;
                    float *x = malloc(n * d * sizeof *x), *f = malloc(n * d * sizeof *f);
                    float *g = malloc(n * d * sizeof *g);
                    double *c = malloc(n * sizeof *c);
                    ck_assert(x && f && g && c);
                    for (size_t i = 0; i < n * d; i++)
                        x[i] = (float)(2.0 * sin(0.71 * (double)i + (double)d));
                    for (size_t i = 0; i < n; i++)
                        c[i] = mixed && i % 5 == 0 ? 0.25 + 1e-3 * (double)i : 0.625;
                    ck_assert_ok(score_model_new_mlp(&m, d, 48, 3, SCORE_ACT_SILU, 9));
                    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_EMBEDDING, embeds[ie]));
                    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_RESIDUAL, res));
                    ck_assert_ok(score_model_prepare(m));
                    ck_assert_ok(score_model_forward(m, n, x, c, f));
                    ck_assert_ok(score__model_infer(m, n, x, c, g));
                    for (size_t i = 0; i < n * d; i++)
                        ck_assert_msg(fabs((double)f[i] - g[i]) <= TOL_GEMM_REL * (1.0 + fabs((double)f[i])),
                                      "embed %d d %zu res %d mixed %d: %g vs %g at %zu", embeds[ie],
                                      d, res, mixed, (double)f[i], (double)g[i], i);
                    /* a single row */
                    ck_assert_ok(score__model_infer(m, 1, x, c, g));
                    for (size_t i = 0; i < d; i++)
                        ck_assert_double_le(fabs((double)f[i] - g[i]), TOL_GEMM_REL * (1.0 + fabs((double)f[i])));
                    score_model_free(m);
                    free(x);
                    free(f);
                    free(g);
                    free(c);
                }
}
END_TEST

static Suite *threads_suite(void)
{
    Suite *s = suite_create("threads");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_param_contract);
    tcase_add_test(tc, test_sde_bit_identical);
    tcase_add_test(tc, test_guidance_combination);
    tcase_add_test(tc, test_sampler_bit_identical);
    tcase_add_test(tc, test_train_path);
    tcase_add_test(tc, test_train_path_labels);
    tcase_add_test(tc, test_train_path_plain);
    tcase_add_test(tc, test_trainer_steps);
    tcase_add_test(tc, test_infer_shared_c);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(threads_suite());
}
