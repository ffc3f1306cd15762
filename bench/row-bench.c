/* Micro-benchmark of few-row evaluations (not installed, not a test): score_sde_score() on the
 * samplers' network of bench.c (dim 2, MLP of width 128 and depth 3, SiLU, a Fourier embedding
 * of 32 features, residual) under the VE schedule, for n rows per call (default 1: a robot's
 * control loop or a user's own sampler asking for one point), and the kernel that folds the
 * embedding into the first layer's bias (score__fold_bias, 128 outputs of 32 terms) at every
 * SIMD level this build and processor run. Prints the median and the best time per call over
 * the repetitions (a repetition: 2000 calls).
 *
 *   row-bench [--rows N] [--reps R] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernel/kernel-priv.h"
#include "libscore/libscore.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median and best of r times (sorts t). */
static void report(const char *what, double *t, int r)
{
    qsort(t, (size_t)r, sizeof *t, cmp_double);
    printf("%-34s median %8.3f us   best %8.3f us\n", what, 1e6 * t[r / 2], 1e6 * t[0]);
}

#define CHECK(x)                                                                                  \
    do {                                                                                          \
        if ((x) != SCORE_OK) {                                                                    \
            fprintf(stderr, "row-bench: %s failed: %s\n", #x, score_last_error_message());               \
            return 1;                                                                             \
        }                                                                                         \
    } while (0)

int main(int argc, char **argv)
{
    enum { CALLS = 2000, MAXREPS = 101, D = 2, N1 = 128, E = 32 };
    size_t rows = 1;
    int reps = 21;
    double times[MAXREPS];
    score_model *m;
    score_schedule *s;
    score_sde *sde;
    float *x, *out, w[N1 * (D + E)], b[N1], e[E], beff[N1];
    double *t;
    char what[64];
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--rows") == 0)
            rows = (size_t)strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--reps") == 0)
            reps = atoi(argv[i + 1]);
    }
    rows = rows < 1 ? 1 : rows;
    reps = reps < 1 ? 1 : reps > MAXREPS ? MAXREPS : reps;
    x = malloc(rows * D * sizeof *x);
    out = malloc(rows * D * sizeof *out);
    t = malloc(rows * sizeof *t);
    if (x == NULL || out == NULL || t == NULL)
        return 1;
    for (size_t i = 0; i < rows * D; i++)
        x[i] = 0.1f * (float)(i % 7) - 0.3f;
    for (size_t i = 0; i < rows; i++)
        t[i] = 0.5;
    CHECK(score_model_new_mlp(&m, D, N1, 3, SCORE_ACT_SILU, 0));
    CHECK(score_model_set_i64(m, SCORE_MODEL_PARAM_EMBEDDING, SCORE_EMBED_FOURIER));
    CHECK(score_model_set_i64(m, SCORE_MODEL_PARAM_EMBED_DIM, E));
    CHECK(score_model_set_f64(m, SCORE_MODEL_PARAM_FOURIER_SCALE, 16.0));
    CHECK(score_model_set_i64(m, SCORE_MODEL_PARAM_RESIDUAL, 1));
    CHECK(score_model_prepare(m));
    CHECK(score_schedule_new(&s, SCORE_SCHEDULE_VE));
    CHECK(score_schedule_prepare(s));
    CHECK(score_sde_new(&sde, s, m, SCORE_OUTPUT_SCORE));
    CHECK(score_sde_score(sde, rows, t, x, out)); /* the workspace */
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        for (int c = 0; c < CALLS; c++)
            CHECK(score_sde_score(sde, rows, t, x, out));
        times[r] = (now() - t0) / CALLS;
    }
    snprintf(what, sizeof what, "score_sde_score, %zu row(s)", rows);
    report(what, times, reps);
    /* the fold alone: the first layer's 128 x (2 + 32) weight, its embedding columns */
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
        w[i] = 0.01f * (float)(i % 13) - 0.06f;
    for (int i = 0; i < N1; i++)
        b[i] = 0.001f * (float)i;
    for (int i = 0; i < E; i++)
        e[i] = 0.03f * (float)i - 0.5f;
    for (int lv = 0; lv <= score__gemm_wt_level(); lv++) {
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            for (int c = 0; c < CALLS; c++) {
                score__fold_bias_at(lv, N1, E, w + D, D + E, b, e, beff);
                e[c % E] += beff[c % N1] * 1e-30f; /* a dependence: no call is left out */
            }
            times[r] = (now() - t0) / CALLS;
        }
        snprintf(what, sizeof what, "score__fold_bias 128 x 32, level %d", lv);
        report(what, times, reps);
    }
    score_sde_free(sde);
    score_schedule_free(s);
    score_model_free(m);
    free(x);
    free(out);
    free(t);
    return 0;
}
