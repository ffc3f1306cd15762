/* An energy MLP trained on ring8 (slow suite): the quality of its samples (sliced W2 to exact
 * ring8 points within 1.3 times the floor of exact samples of the same size) and its energy as
 * an anomaly score (AUROC of held-out ring8 points against uniform outliers within 0.01 of the
 * exact density's AUROC, and >= 0.95 in the box [-8, 8]^2).
 *
 * What the training needs (measured with the command line's default job, 4000 steps of 256
 * rows, Fourier scale 16: the energy MLP and the plain eps MLP of the same widths are both
 * about 1.8 times the floor at 2000 points, so the energy parameterization is not the cause):
 * a Fourier time embedding of scale 1 instead of 16 (the high-frequency features make the
 * score rough in t: the adaptive ODE sampler takes many more steps and the blobs come out
 * wider), larger batches and a learning rate lowered for the last quarter. The E_* macros are
 * the job's settings. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "helpers/test-helpers.h"

/* The training job. Data in the model's units: ring8 points times DATA_SCALE (the per-column
 * standard deviation of ring8 is 2.03, so the model sees roughly unit-variance data). */
#ifndef E_STEPS
#define E_STEPS 6000
#endif
#ifndef E_HIDDEN
#define E_HIDDEN 128
#endif
#ifndef E_DEPTH
#define E_DEPTH 3
#endif
#ifndef E_BATCH
#define E_BATCH 512
#endif
#ifndef E_LR
#define E_LR 2e-3
#endif
#ifndef E_LR_LATE
#define E_LR_LATE 2e-4
#endif
#ifndef E_EMA
#define E_EMA 0.999
#endif
#ifndef E_FSCALE
#define E_FSCALE 1.0
#endif
#ifndef E_SAMPLER
#define E_SAMPLER SCORE_SAMPLER_PRESET_ODE
#endif
#define DATA_SCALE 0.5
#define ROWS 20000
/* points of every sliced-W2 sample, and the number of sample sets averaged (the distance of
 * two finite ring8 samples is dominated by the fluctuation of the blobs' counts, which falls
 * only as n^(-1/4): averaging several sets makes the ratio a property of the model) */
#define SW_N 4000
#define SW_SETS 4

static int cmp_double(const void *a, const void *b)
{
    double u = *(const double *)a, v = *(const double *)b;
    return (u > v) - (u < v);
}

/* Sliced Wasserstein-2 distance between two 2-D samples of n points: the root mean over 64
 * evenly spaced directions of the 1-D W2^2 of the sorted projections. */
static double sliced_w2(size_t n, const float *a, const float *b)
{
    double *pa = malloc(n * sizeof(double)), *pb = malloc(n * sizeof(double)), acc = 0.0;
    ck_assert_ptr_nonnull(pa);
    ck_assert_ptr_nonnull(pb);
    for (int d = 0; d < 64; d++) {
        const double pi = 3.14159265358979323846;
        double c = cos(pi * d / 64), s = sin(pi * d / 64);
        for (size_t i = 0; i < n; i++) {
            pa[i] = c * a[2 * i] + s * a[2 * i + 1];
            pb[i] = c * b[2 * i] + s * b[2 * i + 1];
        }
        qsort(pa, n, sizeof(double), cmp_double);
        qsort(pb, n, sizeof(double), cmp_double);
        for (size_t i = 0; i < n; i++)
            acc += (pa[i] - pb[i]) * (pa[i] - pb[i]) / (double)n / 64.0;
    }
    free(pa);
    free(pb);
    return sqrt(acc);
}

/* n exact ring8 points of the generator seeded with seed (data units). */
static void ring8_points(uint64_t seed, size_t n, float *out)
{
    score_rng *rng;
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, seed));
    ck_assert_ok(score_dataset_toy("ring8", rng, n, out));
    score_rng_free(rng);
}

typedef struct trained {
    score_schedule *sched;
    score_model *m, *ema;
    score_sde *sde;
    score_loss *loss;
    score_trainer *tr;
} trained;

/* A network (energy MLP, or the plain MLP predicting eps, of the same widths) trained with the
 * continuous-time DSM loss (sigma^2 weighting) on VP: Adam at E_LR for 3/4 of the steps and
 * E_LR_LATE for the rest, EMA E_EMA; the sde of its EMA weights in t->sde. */
static void train(trained *t, int energy, const float *x, uint64_t seed)
{
    score_optimizer *opt;
    ck_assert_ok(score_schedule_new(&t->sched, SCORE_SCHEDULE_VP));
    ck_assert_ok(score_schedule_prepare(t->sched));
    if (energy)
        ck_assert_ok(score_model_new_energy(&t->m, 2));
    else
        ck_assert_ok(score_model_new_mlp(&t->m, 2, E_HIDDEN, E_DEPTH, SCORE_ACT_SILU, seed));
    ck_assert_ok(score_model_set_i64(t->m, SCORE_MODEL_PARAM_HIDDEN, E_HIDDEN));
    ck_assert_ok(score_model_set_i64(t->m, SCORE_MODEL_PARAM_DEPTH, E_DEPTH));
    ck_assert_ok(score_model_set_i64(t->m, SCORE_MODEL_PARAM_ACTIVATION, SCORE_ACT_SILU));
    ck_assert_ok(score_model_set_i64(t->m, SCORE_MODEL_PARAM_SEED, (int64_t)seed));
    ck_assert_ok(score_model_set_f64(t->m, SCORE_MODEL_PARAM_FOURIER_SCALE, E_FSCALE));
    ck_assert_ok(score_model_prepare(t->m));
    ck_assert_ok(score_sde_new(&t->sde, t->sched, t->m,
                               energy ? SCORE_OUTPUT_SCORE : SCORE_OUTPUT_EPS));
    ck_assert_ok(score_loss_new(&t->loss, SCORE_LOSS_SDE));
    ck_assert_ok(score_trainer_new(&t->tr, t->m, t->sde, t->loss, SCORE_OPTIMIZER_ADAM));
    ck_assert_ok(score_trainer_set_i64(t->tr, SCORE_TRAINER_PARAM_BATCH_SIZE, E_BATCH));
    ck_assert_ok(score_trainer_set_i64(t->tr, SCORE_TRAINER_PARAM_SEED, (int64_t)seed));
    ck_assert_ok(score_ema_set_f64(score_trainer_ema(t->tr), SCORE_EMA_PARAM_DECAY, E_EMA));
    ck_assert_ok(score_trainer_set_data(t->tr, ROWS, 2, x));
    opt = score_trainer_optimizer(t->tr);
    ck_assert_ok(score_optimizer_set_f64(opt, SCORE_OPTIMIZER_PARAM_LR, E_LR));
    ck_assert_ok(score_optimizer_set_i64(opt, SCORE_OPTIMIZER_PARAM_WARMUP, 100));
    ck_assert_ok(score_optimizer_set_f64(opt, SCORE_OPTIMIZER_PARAM_GRAD_CLIP, 1.0));
    ck_assert_ok(score_trainer_run(t->tr, (size_t)E_STEPS * 3 / 4, NULL, NULL));
    ck_assert_ok(score_optimizer_set_f64(opt, SCORE_OPTIMIZER_PARAM_LR, E_LR_LATE));
    ck_assert_ok(score_trainer_run(t->tr, (size_t)(E_STEPS - E_STEPS * 3 / 4), NULL, NULL));
    ck_assert_ok(score_trainer_ema_model(t->tr, &t->ema));
    ck_assert_ok(score_sde_set_model(t->sde, t->ema));
}

static void trained_free(trained *t)
{
    score_trainer_free(t->tr); /* frees the EMA model */
    score_loss_free(t->loss);
    score_sde_free(t->sde);
    score_model_free(t->m);
    score_schedule_free(t->sched);
}

/* n samples of the sde (data units) with the sampler preset E_SAMPLER and the seed. */
static void sample(score_sde *sde, uint64_t seed, size_t n, float *out)
{
    score_sampler *smp;
    score_rng *rng;
    ck_assert_ok(score_sampler_new_preset(&smp, E_SAMPLER, 2));
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, seed));
    ck_assert_ok(score_sampler_run(smp, sde, n, NULL, out, rng, NULL, NULL));
    for (size_t i = 0; i < 2 * n; i++)
        out[i] = (float)(out[i] / DATA_SCALE);
    score_rng_free(rng);
    score_sampler_free(smp);
}

/* Mean sliced W2 of SW_SETS sample sets (sampler seeds 300 + k) to the reference. */
static double model_w2(score_sde *sde, const float *ref, float *buf)
{
    double acc = 0.0;
    for (int k = 0; k < SW_SETS; k++) {
        sample(sde, 300 + (uint64_t)k, SW_N, buf);
        acc += sliced_w2(SW_N, buf, ref);
    }
    return acc / SW_SETS;
}

/* AUROC of the scores of positives above those of negatives: the probability that a random
 * negative's score is below a random positive's, ties counted half. */
static double auroc(size_t np, const double *pos, size_t nn, const double *neg)
{
    double acc = 0.0;
    for (size_t i = 0; i < np; i++)
        for (size_t j = 0; j < nn; j++)
            acc += pos[i] > neg[j] ? 1.0 : pos[i] == neg[j] ? 0.5 : 0.0;
    return acc / ((double)np * (double)nn);
}

/* -log of the exact ring8 density (up to a constant) of n points (data units). */
static void ring8_exact_energy(size_t n, const float *x, double *E)
{
    enum { K = 8 };
    double w[K], mu[2 * K], var[2 * K];
    size_t k = K;
    ck_assert_ok(score_dataset_toy_mixture("ring8", K, &k, w, mu, var));
    ck_assert_uint_eq(k, K);
    for (size_t i = 0; i < n; i++) {
        double p = 0.0;
        for (size_t c = 0; c < K; c++) {
            double q = 0.0;
            for (int m = 0; m < 2; m++) {
                double d = (double)x[2 * i + m] - mu[2 * c + m];
                q += d * d / var[2 * c + m] + log(var[2 * c + m]);
            }
            p += w[c] * exp(-0.5 * q);
        }
        E[i] = -log(p);
    }
}

/* Anomaly scores: held-out ring8 points (positives: low energy) against uniform outliers. */
#define AUC_N 2000
#define AUC_T 0.01

START_TEST(ring8_energy_quality)
{
    float *x = malloc(ROWS * 2 * sizeof(float)), *ref = malloc(SW_N * 2 * sizeof(float));
    float *buf = malloc(SW_N * 2 * sizeof(float)), *held = malloc(AUC_N * 2 * sizeof(float));
    float *out = malloc(AUC_N * 2 * sizeof(float));
    double *e_in = malloc(AUC_N * sizeof(double)), *e_out = malloc(AUC_N * sizeof(double));
    double *tt = malloc(AUC_N * sizeof(double));
    double floor_w2 = 0.0, w_energy, auc, auc_exact;
    score_rng *rng;
    trained te;
    ck_assert_ptr_nonnull(x);
    ck_assert_ptr_nonnull(ref);
    ck_assert_ptr_nonnull(buf);
    ck_assert_ptr_nonnull(held);
    ck_assert_ptr_nonnull(out);
    ck_assert_ptr_nonnull(e_in);
    ck_assert_ptr_nonnull(e_out);
    ck_assert_ptr_nonnull(tt);
    ring8_points(11, ROWS, x);
    for (size_t i = 0; i < 2 * ROWS; i++)
        x[i] = (float)(x[i] * DATA_SCALE);
    ring8_points(77, SW_N, ref);
    for (int k = 0; k < SW_SETS; k++) {
        ring8_points(500 + (uint64_t)k, SW_N, buf);
        floor_w2 += sliced_w2(SW_N, buf, ref) / SW_SETS;
    }
    train(&te, 1, x, 1);
    w_energy = model_w2(te.sde, ref, buf);
    printf("energy: ring8, sliced W2 (mean of %d sets of %d points) energy MLP %.4f, floor %.4f, "
           "ratio %.3f\n", SW_SETS, SW_N, w_energy, floor_w2, w_energy / floor_w2);
    fflush(stdout);
    ck_assert_msg(w_energy <= 1.3 * floor_w2, "energy MLP %.4f, floor %.4f", w_energy, floor_w2);
    /* held-out points (another seed than the training data's) against uniform outliers in the
     * boxes [-b, b]^2 around the ring (radius 2.83), b = 6 and 8: their energies at t = AUC_T in
     * the model's units (the transform's constant log-determinant does not change the ranks).
     * Outliers that fall on the blobs cannot be told from data by any score, so the best AUROC
     * of a box is the exact density's: 0.955 for b = 6, 0.975 for b = 8. Asserted: the energy
     * ranks within 0.01 of that optimum in both boxes, and the AUROC >= 0.95 in the box
     * whose optimum leaves room for it (b = 8). */
    for (int bi = 0; bi < 2; bi++) {
        const double box = bi == 0 ? 6.0 : 8.0;
        ring8_points(999, AUC_N, held);
        ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 1234));
        ck_assert_ok(score_rng_fill_uniform(rng, 0, AUC_N, 0, 2, out));
        score_rng_free(rng);
        for (size_t i = 0; i < 2 * AUC_N; i++)
            out[i] = (float)(box * (2.0 * out[i] - 1.0));
        ring8_exact_energy(AUC_N, held, e_in);
        ring8_exact_energy(AUC_N, out, e_out);
        auc_exact = auroc(AUC_N, e_out, AUC_N, e_in);
        for (size_t i = 0; i < 2 * AUC_N; i++) {
            held[i] = (float)(held[i] * DATA_SCALE);
            out[i] = (float)(out[i] * DATA_SCALE);
        }
        for (size_t i = 0; i < AUC_N; i++)
            tt[i] = AUC_T;
        ck_assert_ok(score_sde_energy(te.sde, AUC_N, tt, held, e_in));
        ck_assert_ok(score_sde_energy(te.sde, AUC_N, tt, out, e_out));
        auc = auroc(AUC_N, e_out, AUC_N, e_in);
        printf("energy: AUROC of the energy at t = %g, %d held-out ring8 points above %d "
               "uniform outliers in [-%g, %g]^2: %.4f (the exact density's: %.4f)\n", AUC_T,
               AUC_N, AUC_N, box, box, auc, auc_exact);
        fflush(stdout);
        ck_assert_double_ge(auc, auc_exact - 0.01);
        if (box >= 8.0)
            ck_assert_double_ge(auc, 0.95);
    }
    trained_free(&te);
    free(x);
    free(ref);
    free(buf);
    free(held);
    free(out);
    free(e_in);
    free(e_out);
    free(tt);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("slow-energy");
    TCase *tc = tcase_create("ring8");
    tcase_set_timeout(tc, 1800);
    tcase_add_test(tc, ring8_energy_quality);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
