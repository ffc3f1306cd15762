/* The program of doc/tutorial-c.md: train a score model on data in their own units, save it as
 * a generative model, load it back (as another program would) and sample it.
 *
 * The data: 3000 measurements of two quantities in very different units ("length_mm" around
 * 250 with a spread of 40, "mass_g" around 1200 with a spread of 300), drawn from two clusters.
 * The network is trained on the standardized data; the generative model file keeps the
 * standardization, so the program that loads it gets samples in millimetres and grams.
 *
 * Checks (exit status 1 otherwise): the samples' means and standard deviations are within 10%
 * of the data's, and the loaded model's samples are bit-identical to those of the model that
 * was saved. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libscore/libscore.h>

#define CHECK(call)                                                                          \
    do {                                                                                     \
        int rc_ = (call);                                                                    \
        if (rc_ != SCORE_OK) {                                                               \
            fprintf(stderr, "%s failed: %s (%s)\n", #call, score_status_name(rc_),           \
                    score_last_error_message());                                             \
            exit(1);                                                                         \
        }                                                                                    \
    } while (0)

enum { DIM = 2, N_DATA = 3000, N_SAMPLES = 2000, STEPS = 2000 };

/* ---- the data, in their units ------------------------------------------------------------ */

/* Two clusters: (220 mm, 950 g) and (290 mm, 1500 g), each with its own spread. The normals
 * come from the library's counter-based generator, so the data are the same everywhere. */
static void make_data(float *x)
{
    static float z[N_DATA * DIM];
    score_rng *rng;
    CHECK(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 7));
    CHECK(score_rng_fill_normal(rng, 0, N_DATA, 0, DIM, z));
    for (size_t i = 0; i < N_DATA; i++) {
        int c = i % 3 == 0; /* a third in the second cluster */
        x[i * DIM + 0] = (float)((c ? 290.0 : 220.0) + (c ? 15.0 : 20.0) * z[i * DIM + 0]);
        x[i * DIM + 1] = (float)((c ? 1500.0 : 950.0) + (c ? 120.0 : 90.0) * z[i * DIM + 1]);
    }
    score_rng_free(rng);
}

static void moments(const float *x, size_t n, double *mean, double *sd)
{
    for (size_t j = 0; j < DIM; j++) {
        double m = 0.0, v = 0.0;
        for (size_t i = 0; i < n; i++)
            m += x[i * DIM + j];
        m /= (double)n;
        for (size_t i = 0; i < n; i++)
            v += (x[i * DIM + j] - m) * (x[i * DIM + j] - m);
        mean[j] = m;
        sd[j] = sqrt(v / (double)n);
    }
}

/* ---- part 1: train and save ---------------------------------------------------------------- */

static void train_and_save(const char *path, float *samples_before)
{
    static float data[N_DATA * DIM], z[N_DATA * DIM];
    double shift[DIM], scale[DIM];
    make_data(data);
    moments(data, N_DATA, shift, scale);        /* standardize with the data's own moments */
    for (size_t i = 0; i < N_DATA * DIM; i++)
        z[i] = (float)((data[i] - shift[i % DIM]) / scale[i % DIM]);

    score_schedule *vp;
    score_model *mlp, *ema;
    score_sde *sde;
    score_loss *loss;
    score_trainer *trainer;
    CHECK(score_schedule_new_preset(&vp, "vp"));
    CHECK(score_model_new_mlp(&mlp, DIM, 64, 2, SCORE_ACT_SILU, 1));
    CHECK(score_sde_new(&sde, vp, mlp, SCORE_OUTPUT_EPS));
    CHECK(score_loss_new(&loss, SCORE_LOSS_SDE));
    CHECK(score_trainer_new(&trainer, mlp, sde, loss, SCORE_OPTIMIZER_ADAM));
    CHECK(score_optimizer_set_f64(score_trainer_optimizer(trainer), SCORE_OPTIMIZER_PARAM_LR, 3e-3));
    CHECK(score_trainer_set_data(trainer, N_DATA, DIM, z));
    CHECK(score_trainer_run(trainer, STEPS, NULL, NULL));
    CHECK(score_trainer_ema_model(trainer, &ema));
    CHECK(score_sde_set_model(sde, ema));       /* save the EMA weights */

    /* the generative model: copies of the network, the schedule and the parameterization of
     * the sde, plus what the numbers mean */
    score_genmodel *gm;
    const char *columns[DIM] = {"length_mm", "mass_g"};
    CHECK(score_genmodel_new(&gm, sde));
    CHECK(score_genmodel_set_transform(gm, shift, scale));
    CHECK(score_genmodel_set_names(gm, SCORE_GENMODEL_NAMES_COLUMNS, DIM, columns));
    CHECK(score_genmodel_save(gm, path));
    printf("trained %zu parameters for %d steps; saved to %s\n", score_model_param_count(mlp),
           STEPS, path);

    /* samples of the model before saving, for the comparison in part 2 */
    score_sde *gsde;
    score_sampler *smp;
    score_rng *rng;
    CHECK(score_genmodel_sde(gm, &gsde));
    CHECK(score_sampler_new_preset(&smp, SCORE_SAMPLER_PRESET_DPMPP_2M, DIM));
    CHECK(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 2026));
    CHECK(score_genmodel_sample(gm, smp, gsde, 0, N_SAMPLES, samples_before, rng, NULL, NULL));

    score_rng_free(rng);
    score_sampler_free(smp);
    score_sde_free(gsde);
    score_genmodel_free(gm);
    score_trainer_free(trainer);
    score_loss_free(loss);
    score_sde_free(sde);
    score_model_free(mlp);
    score_schedule_free(vp);
}

/* ---- part 2: load and sample (what another program does) ----------------------------------- */

static void load_and_sample(const char *path, float *samples)
{
    score_genmodel *gm;
    score_sde *sde;
    score_sampler *smp;
    score_rng *rng;
    CHECK(score_genmodel_load(&gm, path));
    CHECK(score_genmodel_sde(gm, &sde));        /* schedule, parameterization: from the file */
    CHECK(score_sampler_new_preset(&smp, SCORE_SAMPLER_PRESET_DPMPP_2M, DIM));
    CHECK(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 2026));
    CHECK(score_genmodel_sample(gm, smp, sde, 0, N_SAMPLES, samples, rng, NULL, NULL));
    printf("loaded: columns %s, %s; %llu model evaluations per sample\n",
           score_genmodel_name(gm, SCORE_GENMODEL_NAMES_COLUMNS, 0),
           score_genmodel_name(gm, SCORE_GENMODEL_NAMES_COLUMNS, 1),
           (unsigned long long)score_sampler_get_nfe(smp));
    score_rng_free(rng);
    score_sampler_free(smp);
    score_sde_free(sde);
    score_genmodel_free(gm);
}

int main(void)
{
    static float data[N_DATA * DIM], before[N_SAMPLES * DIM], after[N_SAMPLES * DIM];
    const char *path = "tutorial-c-model.safetensors";   /* in the working directory */
    train_and_save(path, before);
    load_and_sample(path, after);
    remove(path);

    double dm[DIM], ds[DIM], sm[DIM], ss[DIM];
    make_data(data);
    moments(data, N_DATA, dm, ds);
    moments(after, N_SAMPLES, sm, ss);
    int ok = memcmp(before, after, sizeof before) == 0;
    printf("samples of the loaded model %s those of the saved one\n",
           ok ? "are bit-identical to" : "DIFFER from");
    for (size_t j = 0; j < DIM; j++) {
        printf("column %zu: data mean %.1f sd %.1f; samples mean %.1f sd %.1f\n", j, dm[j], ds[j],
               sm[j], ss[j]);
        ok &= fabs(sm[j] - dm[j]) < 0.1 * ds[j] && fabs(ss[j] - ds[j]) < 0.1 * ds[j];
    }
    return ok ? 0 : 1;
}
