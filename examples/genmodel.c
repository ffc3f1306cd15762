/* A generative model keeps its meaning: a network that models standardized data, saved with its
 * schedule, parameterization and data transform, loads into another program that samples and
 * evaluates it in the data's own units.
 *
 * The "network" here is the exact score of N(0, I) (the analytic Gaussian model), standing for a
 * network trained on data standardized as x_model = (x - shift) / scale. The data are therefore
 * N(shift, diag(scale^2)); the samples of the loaded model must have that mean and spread, and
 * its log-likelihood must be that density's, to the sampler's and the ODE solver's accuracy. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <libscore/libscore.h>

#define DIM 2
#define N 4000

static int fail(const char *what, int rc)
{
    fprintf(stderr, "%s: %s (%s)\n", what, score_strerror(rc), score_last_error_message());
    return 1;
}

/* Writes the generative model into a buffer (a file with score_genmodel_save() works alike). */
static int make_model(void **buf, size_t *len)
{
    const double zero[DIM] = {0, 0}, one[DIM] = {1, 1};
    const double shift[DIM] = {4.9, -120.0}, scale[DIM] = {0.5, 30.0};
    const char *names[DIM] = {"height", "cost"};
    score_schedule *vp = NULL;
    score_model *net = NULL;
    score_sde *sde = NULL;
    score_genmodel *gm = NULL;
    int rc;
    if ((rc = score_schedule_new_preset(&vp, "vp")) != SCORE_OK ||
        (rc = score_model_new_gaussian(&net, vp, DIM, zero, NULL, one)) != SCORE_OK ||
        (rc = score_sde_new(&sde, vp, net, SCORE_OUTPUT_SCORE)) != SCORE_OK ||
        (rc = score_sde_set_i64(sde, SCORE_SDE_PARAM_COND, SCORE_COND_T)) != SCORE_OK ||
        (rc = score_genmodel_new(&gm, sde)) != SCORE_OK ||
        (rc = score_genmodel_set_transform(gm, shift, scale)) != SCORE_OK ||
        (rc = score_genmodel_set_names(gm, SCORE_GENMODEL_NAMES_COLUMNS, DIM, names)) != SCORE_OK ||
        (rc = score_genmodel_save_buffer(gm, buf, len)) != SCORE_OK)
        fail("making the model", rc);
    score_genmodel_free(gm);
    score_sde_free(sde);
    score_model_free(net);
    score_schedule_free(vp);
    return rc;
}

int main(void)
{
    static float x[N * DIM];
    double mean[DIM] = {0, 0}, sd[DIM] = {0, 0}, lp[3], bpd[3];
    const float pts[3 * DIM] = {4.9f, -120.0f, 5.4f, -60.0f, 4.0f, -150.0f};
    score_genmodel *gm = NULL;
    score_sde *sde = NULL;
    score_sampler *smp = NULL;
    score_likelihood *lk = NULL;
    score_rng *rng = NULL;
    void *buf = NULL;
    size_t len = 0;
    int rc, bad = 0;
    if (make_model(&buf, &len) != SCORE_OK)
        return 1;
    /* ... and in "another program": the file alone says what the network means */
    rc = score_genmodel_load_buffer(&gm, buf, len);
    score_free(buf);
    if (rc != SCORE_OK)
        return fail("score_genmodel_load_buffer", rc);
    if ((rc = score_genmodel_sde(gm, &sde)) != SCORE_OK ||
        (rc = score_sampler_new_preset(&smp, SCORE_SAMPLER_PRESET_DPMPP_2M, DIM)) != SCORE_OK ||
        (rc = score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 7)) != SCORE_OK ||
        (rc = score_genmodel_sample(gm, smp, sde, 0, N, x, rng, NULL, NULL)) != SCORE_OK ||
        (rc = score_likelihood_new(&lk, DIM)) != SCORE_OK ||
        (rc = score_genmodel_logp(gm, lk, sde, 0, 3, pts, lp, bpd, rng)) != SCORE_OK) {
        bad = fail("sampling", rc);
        goto out;
    }
    for (size_t i = 0; i < N; i++)
        for (int j = 0; j < DIM; j++)
            mean[j] += x[i * DIM + j] / (double)N;
    for (size_t i = 0; i < N; i++)
        for (int j = 0; j < DIM; j++)
            sd[j] += (x[i * DIM + j] - mean[j]) * (x[i * DIM + j] - mean[j]) / (double)(N - 1);
    printf("%zu samples in data units:\n", (size_t)N);
    for (int j = 0; j < DIM; j++) {
        double want_m = j == 0 ? 4.9 : -120.0, want_s = j == 0 ? 0.5 : 30.0;
        sd[j] = sqrt(sd[j]);
        printf("  %-6s mean %9.4f (data %9.4f), std %8.4f (data %8.4f)\n",
               score_genmodel_name(gm, SCORE_GENMODEL_NAMES_COLUMNS, (size_t)j), mean[j], want_m,
               sd[j], want_s);
        /* 4 standard errors of the mean; 5 % on the spread: DPM-Solver++(2M) with its 20
         * steps widens it by about 1 to 2 %, and 4000 samples scatter it by about 1 % */
        bad |= fabs(mean[j] - want_m) > 4 * want_s / sqrt((double)N);
        bad |= fabs(sd[j] / want_s - 1) > 0.05;
    }
    printf("log-likelihood in data units (closed form of N(shift, scale^2) in brackets):\n");
    for (int i = 0; i < 3; i++) {
        double exact = 0;
        const double s0[DIM] = {4.9, -120.0}, s1[DIM] = {0.5, 30.0};
        for (int j = 0; j < DIM; j++) {
            double z = (pts[i * DIM + j] - s0[j]) / s1[j];
            exact += -0.5 * z * z - 0.5 * log(2 * 3.14159265358979323846) - log(s1[j]);
        }
        printf("  (%6.2f, %7.1f): %.5f nats (%.5f)\n", pts[i * DIM], pts[i * DIM + 1], lp[i],
               exact);
        /* the probability-flow ODE at rtol = atol = 1e-5, from the data noised to t_eps */
        bad |= fabs(lp[i] - exact) > 5e-3;
    }
out:
    score_likelihood_free(lk);
    score_rng_free(rng);
    score_sampler_free(smp);
    score_sde_free(sde);
    score_genmodel_free(gm);
    if (bad)
        fprintf(stderr, "the loaded model does not reproduce the data's units\n");
    return bad ? 1 : 0;
}
