/* An external network plugged in as a callback model and sampled with DPM-Solver++(2M).
 *
 * The "network" here is a plain C function standing in for, say, an ONNX or TorchScript model:
 * it receives a batch of points x and their conditioning values c (the times t) and writes its
 * noise prediction eps(x, t). To keep the example checkable it computes the exact noise
 * prediction of Gaussian data N(mu, diag(v)) under the VP schedule:
 *     x_t = alpha x_0 + sigma z  =>  eps(x, t) = sigma (x - alpha mu) / (alpha^2 v + sigma^2),
 * so the samples must have mean mu and variance v. The program also shows what happens when
 * the external model fails (the callback returns non-zero). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

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

enum { DIM = 2, N = 20000 };

/* What the external model needs: here the schedule and the parameters of the data. */
typedef struct network {
    const score_schedule *sched;
    double mu[DIM], var[DIM];
    double *alpha, *sigma;   /* per-row scratch, grown on demand */
    size_t cap;
    int fail;                /* simulate a failure of the external runtime */
    unsigned long calls;
} network;

static int network_eps(size_t n, size_t dim, const float *x, const double *c, float *out,
                       void *user_data)
{
    network *net = user_data;
    net->calls++;
    if (net->fail)
        return 7; /* any non-zero value: the library reports SCORE_E_CALLBACK */
    if (n > net->cap) {
        double *a = realloc(net->alpha, n * sizeof *a), *s;
        if (a == NULL)
            return -1;
        net->alpha = a;
        s = realloc(net->sigma, n * sizeof *s);
        if (s == NULL)
            return -1;
        net->sigma = s;
        net->cap = n;
    }
    /* c holds the time t of each row (the sde's default conditioning for eps outputs) */
    if (score_schedule_alpha_sigma(net->sched, n, c, net->alpha, net->sigma) != SCORE_OK)
        return -2;
    for (size_t b = 0; b < n; b++) {
        double a = net->alpha[b], s = net->sigma[b];
        for (size_t j = 0; j < dim; j++)
            out[b * dim + j] = (float)(s * (x[b * dim + j] - a * net->mu[j]) /
                                       (a * a * net->var[j] + s * s));
    }
    return 0;
}

int main(void)
{
    static float x[N * DIM];
    score_schedule *vp;
    CHECK(score_schedule_new_preset(&vp, "vp"));
    CHECK(score_schedule_prepare(vp)); /* immutable from here on: safe to share */

    network net = {.sched = vp, .mu = {1.5, -0.5}, .var = {0.25, 2.0}};
    score_model *model;
    score_sde *sde;
    CHECK(score_model_new_callback(&model, DIM, network_eps, &net));
    CHECK(score_sde_new(&sde, vp, model, SCORE_OUTPUT_EPS));

    score_sampler *sampler;
    score_rng *rng;
    CHECK(score_sampler_new(&sampler, score_step_type_find("dpmpp-2m"), NULL, DIM));
    CHECK(score_sampler_set_i64(sampler, SCORE_SAMPLER_PARAM_NUM_STEPS, 40));
    CHECK(score_sampler_set_i64(sampler, SCORE_SAMPLER_PARAM_GRID, SCORE_GRID_UNIFORM_LAMBDA));
    CHECK(score_sampler_set_i64(sampler, SCORE_SAMPLER_PARAM_FINAL_DENOISE, 1));
    CHECK(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 7));
    CHECK(score_sampler_run(sampler, sde, N, NULL, x, rng, NULL, NULL));

    int ok = 1;
    printf("DPM-Solver++(2M), 40 steps: %llu batched calls of the external model\n",
           (unsigned long long)score_sampler_get_nfe(sampler));
    for (int j = 0; j < DIM; j++) {
        double m = 0, q = 0;
        for (int i = 0; i < N; i++)
            m += x[i * DIM + j] / (double)N;
        for (int i = 0; i < N; i++)
            q += (x[i * DIM + j] - m) * (x[i * DIM + j] - m) / (double)(N - 1);
        /* tolerances: 5 standard errors of the sample mean and variance (n = 20000), plus 2 %
         * for the solver's discretization error at 40 steps (about 1 % on this problem; it is
         * 4 % at 20 steps and 0.5 % at 100) */
        double se_m = sqrt(net.var[j] / N), se_v = net.var[j] * sqrt(2.0 / (N - 1));
        int good = fabs(m - net.mu[j]) < 5 * se_m + 0.02 * sqrt(net.var[j]) &&
                   fabs(q - net.var[j]) < 5 * se_v + 0.02 * net.var[j];
        printf("  coordinate %d: mean %.4f (exact %.4f), variance %.4f (exact %.4f) %s\n", j,
               m, net.mu[j], q, net.var[j], good ? "ok" : "WRONG");
        ok &= good;
    }

    /* when the external model fails, the sampler stops with SCORE_E_CALLBACK and says why */
    net.fail = 1;
    int rc = score_sampler_run(sampler, sde, 4, NULL, x, rng, NULL, NULL);
    printf("a failing external model gives %s: %s (its return value: %d)\n",
           score_status_name(rc), score_last_error_message(),
           score_model_last_callback_status(model));
    ok &= rc == SCORE_E_CALLBACK && score_model_last_callback_status(model) == 7;

    score_sampler_free(sampler);
    score_sde_free(sde);
    score_model_free(model);
    score_schedule_free(vp);
    score_rng_free(rng);
    free(net.alpha);
    free(net.sigma);
    return ok ? 0 : 1;
}
