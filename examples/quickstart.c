/* The smallest full libscore program: make data, train a score model, sample, print.
 *
 * Data: 4000 points of the "ring8" toy set (8 Gaussian blobs on a circle of radius 2.83).
 * Model: an MLP that predicts the noise (eps) of the variance-preserving SDE (score_sde's VP).
 * Training: 1500 Adam steps of the continuous-time denoising score-matching loss.
 * Sampling: DPM-Solver++(2M), 20 steps, with the EMA weights.
 * The program checks that most samples landed near one of the 8 blobs and exits with status 1
 * otherwise, so that it runs as a test. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <libscore/libscore.h>

/* On failure: print the status and the library's message, and stop. */
#define CHECK(call)                                                                          \
    do {                                                                                     \
        int rc_ = (call);                                                                    \
        if (rc_ != SCORE_OK) {                                                               \
            fprintf(stderr, "%s failed: %s (%s)\n", #call, score_status_name(rc_),           \
                    score_last_error_message());                                             \
            exit(1);                                                                         \
        }                                                                                    \
    } while (0)

enum { N_DATA = 4000, N_SAMPLES = 1000, STEPS = 1500 };

static int on_progress(size_t step, size_t total, double loss, double lr, void *user_data)
{
    (void)lr;
    (void)user_data;
    if (step % 500 == 0 || step == total)
        printf("  step %4zu / %zu  loss %.4f\n", step, total, loss);
    return 0; /* non-zero would stop training */
}

int main(void)
{
    static float data[N_DATA * 2], samples[N_SAMPLES * 2];

    /* 1. data: a counter-based generator makes the same points on every machine */
    score_rng *rng;
    CHECK(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 2024));
    CHECK(score_dataset_toy("ring8", rng, N_DATA, data));

    /* 2. the noise schedule, the network and the parameterization tying them together */
    score_schedule *vp;
    score_model *mlp;
    score_sde *sde;
    CHECK(score_schedule_new_preset(&vp, "vp"));
    CHECK(score_model_new_mlp(&mlp, 2, 64, 2, SCORE_ACT_SILU, 0));
    CHECK(score_sde_new(&sde, vp, mlp, SCORE_OUTPUT_EPS)); /* the MLP predicts the noise */

    /* 3. loss and trainer */
    score_loss *loss;
    score_trainer *trainer;
    CHECK(score_loss_new(&loss, SCORE_LOSS_SDE));
    CHECK(score_trainer_new(&trainer, mlp, sde, loss, SCORE_OPTIMIZER_ADAM));
    CHECK(score_optimizer_set_f64(score_trainer_optimizer(trainer), SCORE_OPTIMIZER_PARAM_LR, 3e-3));
    CHECK(score_trainer_set_i64(trainer, SCORE_TRAINER_PARAM_BATCH_SIZE, 256));
    CHECK(score_trainer_set_data(trainer, N_DATA, 2, data));
    printf("training an MLP with %zu parameters:\n", score_model_param_count(mlp));
    CHECK(score_trainer_run(trainer, STEPS, on_progress, NULL));

    /* 4. sample with the EMA weights and DPM-Solver++(2M) */
    score_model *ema;
    score_sampler *sampler;
    CHECK(score_trainer_ema_model(trainer, &ema)); /* owned by the trainer */
    CHECK(score_sde_set_model(sde, ema));
    CHECK(score_sampler_new_preset(&sampler, SCORE_SAMPLER_PRESET_DPMPP_2M, 2));
    CHECK(score_sampler_run(sampler, sde, N_SAMPLES, NULL, samples, rng, NULL, NULL));

    /* 5. print a few samples, and how many lie within 1.2 of a blob centre */
    printf("first samples (%llu model evaluations each):\n",
           (unsigned long long)score_sampler_get_nfe(sampler));
    for (int i = 0; i < 5; i++)
        printf("  % .3f % .3f\n", samples[2 * i], samples[2 * i + 1]);
    int near = 0;
    const double r = 2.0 * sqrt(2.0), pi = 3.14159265358979323846;
    for (int i = 0; i < N_SAMPLES; i++) {
        double best = INFINITY;
        for (int k = 0; k < 8; k++) {
            double dx = samples[2 * i] - r * cos(2 * pi * k / 8);
            double dy = samples[2 * i + 1] - r * sin(2 * pi * k / 8);
            best = fmin(best, hypot(dx, dy));
        }
        near += best < 1.2;
    }
    printf("%d of %d samples within 1.2 of a blob centre (blob std 0.35)\n", near, N_SAMPLES);

    score_sampler_free(sampler);
    score_trainer_free(trainer);
    score_loss_free(loss);
    score_sde_free(sde);
    score_model_free(mlp);
    score_schedule_free(vp);
    score_rng_free(rng);
    /* 1.2 is 3.4 blob standard deviations: almost all exact samples are that close */
    return near >= N_SAMPLES * 8 / 10 ? 0 : 1;
}
