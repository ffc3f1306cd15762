/* libscore benchmark program (issue #8): the workloads of bench/torch_reference.py, timed with
 * warm-up and repetitions, plus the sgemm roofline of the machine measured with the same BLAS.
 *
 * Output: one JSON object per workload on stdout (the same fields as the PyTorch reference plus
 * FLOP counts), and a human-readable table on stderr.
 *
 *   score-bench [--threads N] [--reps R] [--only w1,w2,...] [--quick]
 *               [--sampling-model PATH] [--make-sampling-model PATH] [--list] [--samples N]
 *               [--cpu-time]
 *
 * Threads: OpenBLAS / BLIS / OpenMP read their thread count from the environment when the
 * library is loaded, so the program sets OPENBLAS_NUM_THREADS, OMP_NUM_THREADS,
 * BLIS_NUM_THREADS and GOTO_NUM_THREADS to N and re-executes itself when they differ.
 * libscore itself has no thread parameter (all its parallelism is the BLAS's).
 *
 * FLOP counts are analytic (see bench/README.md): with the layer sizes n_0 = d + 32 (x and the
 * Fourier embedding), n_1 = n_2 = n_3 = h, n_4 = d and a batch of B rows,
 *   F   = 2 B sum_l n_{l-1} n_l                   one forward pass
 *   DSM = 3 F                                     forward + backward (input and weight grads)
 *   Ft  = 2 B k sum_{l >= 2} n_{l-1} n_l          k forward tangents (k = d for the exact trace;
 *                                                 layer 1's tangents are columns of W_1)
 *   HYV = 3 F + 3 Ft (k = d)                      primal fwd/bwd + tangents + reverse through them
 *   SSM = 3 F + 3 Ft' (k = 1, Ft' also counts 2 B d n_1 for the probe product of layer 1)
 *   sampling = NFE F (B = number of samples): PC 200 NFE, DPM-Solver++(2M) 20 NFE.
 * Elementwise work, the optimizer and the embedding are not counted.
 *
 * The U-Net workloads (unet_*) count the GEMM work of the network of unet_forward_flops():
 * per image 2 * 9 ci co h w for a 3x3 convolution, 2 ci co h w for a 1x1 convolution,
 * 2 in out for a dense layer, and for the attention over p positions of c channels the four
 * 1x1 projections plus 2 * 2 p^2 c for the two products; training = 3 F, sampling = NFE F.
 * GroupNorm, SiLU, resampling and im2col are not counted.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>
#include <libscore/libscore.h>

#include "kernel/kernel-priv.h"

#define EMBED_DIM 32
#define FOURIER_SCALE 16.0
#define DEPTH 3
#define N_SAMPLES 10000
#define ROOF_N 2048
#define N_CLASSES_TRAIN 10 /* classes of the class-conditional training workload */
#define N_CLASSES_RING 8   /* classes of the conditional sampling model (the ring's components) */
#define GUIDANCE_W 2.0     /* classifier-free guidance weight of the guided sampling workload */
#define GUIDED_LABEL 3     /* the class the conditional sampling workloads draw */

/* WL_CDSM: DSM with a label input (label dropout to the null label); WL_EDSM: DSM of the
 * energy model; WL_CDPM / WL_CFG: DPM-Solver++(2M) on the conditional sampling model, for one
 * class without / with classifier-free guidance (the same network, the same NFE). */
enum wl_kind { WL_ROOF, WL_DSM, WL_HYV, WL_SSM, WL_PC, WL_DPM, WL_CDSM, WL_EDSM, WL_CDPM, WL_CFG,
               WL_UDSM, WL_UDPM };

typedef struct workload {
    const char *name;
    int kind;
    size_t d, h, b; /* dimension, hidden width, batch (samples for sampling) */
    size_t steps;   /* sampling steps */
} workload;

static const workload workloads[] = {
    {"sgemm_2048", WL_ROOF, 0, 0, 0, 0},
    {"dsm_d2_h128_b256", WL_DSM, 2, 128, 256, 0},
    {"dsm_d64_h512_b1024", WL_DSM, 64, 512, 1024, 0},
    {"hyv_d2_h128_b256", WL_HYV, 2, 128, 256, 0},
    {"hyv_d64_h256_b256", WL_HYV, 64, 256, 256, 0},
    {"ssm_d64_h256_b256", WL_SSM, 64, 256, 256, 0},
    {"pc_ve_d2_h128_n10000_s100", WL_PC, 2, 128, N_SAMPLES, 100},
    {"dpmpp2m_ve_d2_h128_n10000_s20", WL_DPM, 2, 128, N_SAMPLES, 20},
    {"cdsm_d64_h512_b1024_k10", WL_CDSM, 64, 512, 1024, 0},
    {"edsm_d64_h512_b1024", WL_EDSM, 64, 512, 1024, 0},
    {"dpmpp2m_cond_ve_d2_h128_n10000_s20", WL_CDPM, 2, 128, N_SAMPLES, 20},
    {"dpmpp2m_cfg_ve_d2_h128_n10000_s20", WL_CFG, 2, 128, N_SAMPLES, 20},
    /* the U-Net of unet_net(): a DSM training step on 128 images, DPM-Solver++(2M) sampling */
    {"unet_dsm_8x8_w32_b128", WL_UDSM, 64, 32, 128, 0},
    {"unet_dpmpp2m_8x8_w32_n1000_s20", WL_UDPM, 64, 32, 1000, 20},
};
#define N_WORKLOADS (sizeof workloads / sizeof workloads[0])

typedef struct opts {
    int threads;
    int model_threads; /* SCORE_MODEL_PARAM_THREADS of the sampling model (see --par) */
    int par;           /* PAR_AUTO, PAR_BLAS, PAR_MODEL */
    int reps;
    int quick;
    const char *only;
    const char *sampling_model;
    const char *make_sampling_model;
    size_t samples; /* 0 = the workload's (10000); --quick: 2000 */
} opts;

typedef struct result {
    const char *name;
    double median, min, max, mad;
    const char *unit;
    double items, flops;
    long rss_kb;
    int ok;
} result;

static result results[N_WORKLOADS];
static size_t n_results;

/* ---- helpers ------------------------------------------------------------------------------ */

/* --cpu-time: time repetitions by process CPU time instead of wall time (for profiling on a
 * shared machine; meaningful at one thread only). */
static int use_cpu_clock;

static double now(void)
{
    struct timespec ts;
    clock_gettime(use_cpu_clock ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU seconds per wall second of the timed repetitions (threads busy; lower than the thread
 * count when the machine is shared or the work is serial). */
static double span_cpu0, span_wall0, span_util;

static void span_begin(void)
{
    span_cpu0 = cpu_now();
    span_wall0 = now();
}

static void span_end(void)
{
    double w = now() - span_wall0;
    span_util = w > 0.0 ? (cpu_now() - span_cpu0) / w : 0.0;
}

static long peak_rss_kb(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return ru.ru_maxrss;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median_of(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void summarize(result *r, const double *t, size_t n)
{
    double tmp[64], dev[64];
    size_t m = n < 64 ? n : 64;
    memcpy(tmp, t, m * sizeof *tmp);
    r->median = median_of(tmp, m);
    r->min = tmp[0];
    r->max = tmp[m - 1];
    for (size_t i = 0; i < m; i++)
        dev[i] = fabs(t[i] - r->median);
    r->mad = median_of(dev, m);
}

static int check(int rc, const char *what)
{
    if (rc != SCORE_OK)
        fprintf(stderr, "score-bench: %s failed: %s (%s)\n", what, score_status_name(rc),
                score_last_error_message());
    return rc;
}

#define CHECK(call)                                                                          \
    do {                                                                                     \
        if (check((call), #call) != SCORE_OK)                                                \
            goto done;                                                                       \
    } while (0)

static int selected(const opts *o, const char *name)
{
    const char *p = o->only;
    size_t len = strlen(name);
    if (p == NULL || *p == '\0')
        return 1;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == len && strncmp(p, name, len) == 0)
            return 1;
        /* a prefix ending in '*' selects every workload starting with it */
        if (l > 0 && p[l - 1] == '*' && strncmp(p, name, l - 1) == 0)
            return 1;
        p += l;
        if (*p == ',')
            p++;
    }
    return 0;
}

/* ---- FLOP counts -------------------------------------------------------------------------- */

static double layer_sum(size_t d, size_t h, int from_layer2)
{
    /* sum over layers of n_in * n_out: (d + E) h + (DEPTH - 1) h^2 + h d */
    double s = (double)(DEPTH - 1) * (double)h * (double)h + (double)h * (double)d;
    if (!from_layer2)
        s += (double)(d + EMBED_DIM) * (double)h;
    return s;
}

static double forward_flops(size_t d, size_t h, size_t b)
{
    return 2.0 * (double)b * layer_sum(d, h, 0);
}

/* One forward of the energy network (the same MLP with one output unit). */
static double energy_forward_flops(size_t d, size_t h, size_t b)
{
    return forward_flops(d, h, b) - 2.0 * (double)b * (double)h * (double)(d - 1);
}

/* ---- The U-Net workloads ----------------------------------------------------------------- *
 * 1 x 8 x 8 images, base width 32 (workload h), widths {1, 2, 2}, 2 residual blocks per
 * level, attention at 2 x 2, GroupNorm in 8 groups, Fourier embedding of 32 features, T = 128:
 * the digits network of doc/unet.md without labels (about 1.5 M parameters). */
#define UNET_HW 8
#define UNET_LEVELS 3
#define UNET_BLOCKS 2
static const size_t unet_mults[UNET_LEVELS] = {1, 2, 2};

static int unet_net(score_model **m, size_t base)
{
    int rc = score_model_new_unet(m, 1, UNET_HW, UNET_HW);
    if (rc == SCORE_OK)
        rc = score_model_set_unet_widths(*m, UNET_LEVELS, unet_mults);
    if (rc == SCORE_OK)
        rc = score_model_set_i64(*m, SCORE_MODEL_PARAM_UNET_BASE_WIDTH, (int64_t)base);
    if (rc == SCORE_OK)
        rc = score_model_set_i64(*m, SCORE_MODEL_PARAM_UNET_BLOCKS, UNET_BLOCKS);
    if (rc == SCORE_OK)
        rc = score_model_set_i64(*m, SCORE_MODEL_PARAM_EMBED_DIM, EMBED_DIM);
    if (rc == SCORE_OK)
        rc = score_model_set_f64(*m, SCORE_MODEL_PARAM_FOURIER_SCALE, FOURIER_SCALE);
    if (rc == SCORE_OK)
        rc = score_model_prepare(*m);
    return rc;
}

static double conv3_flops(size_t ci, size_t co, size_t hw)
{
    return 2.0 * 9.0 * (double)ci * (double)co * (double)hw;
}

static double res_flops(size_t ci, size_t co, size_t hw, size_t T)
{
    return conv3_flops(ci, co, hw) + conv3_flops(co, co, hw) + 2.0 * (double)T * (double)co +
           (ci != co ? 2.0 * (double)ci * (double)co * (double)hw : 0.0);
}

/* One forward of b images through the graph of doc/unet.md ("Architecture"). */
static double unet_forward_flops(size_t base, size_t b)
{
    size_t T = 4 * base, hw = UNET_HW * UNET_HW, ch = base * unet_mults[0], top = 0;
    size_t stack[4 * UNET_LEVELS * (UNET_BLOCKS + 1) + 2];
    double f = 2.0 * EMBED_DIM * (double)T + 2.0 * (double)T * (double)T;
    f += conv3_flops(1, ch, hw);
    stack[top++] = ch;
    for (size_t l = 0; l < UNET_LEVELS; l++) {
        size_t co = base * unet_mults[l];
        for (size_t k = 0; k < UNET_BLOCKS; k++) {
            f += res_flops(ch, co, hw, T);
            ch = co;
            stack[top++] = ch;
        }
        if (l + 1 < UNET_LEVELS) {
            hw /= 4;
            stack[top++] = ch;
        }
    }
    f += 2.0 * res_flops(ch, ch, hw, T);
    f += 4.0 * 2.0 * (double)ch * (double)ch * (double)hw + 2.0 * 2.0 * (double)hw * (double)hw *
                                                            (double)ch;
    for (size_t l = UNET_LEVELS; l-- > 0;) {
        size_t co = base * unet_mults[l];
        for (size_t k = 0; k <= UNET_BLOCKS; k++) {
            f += res_flops(ch + stack[--top], co, hw, T);
            ch = co;
        }
        if (l > 0) {
            hw *= 4;
            f += conv3_flops(ch, ch, hw);
        }
    }
    f += conv3_flops(ch, 1, hw);
    return (double)b * f;
}

static double workload_flops(const workload *w)
{
    double F = forward_flops(w->d, w->h, w->b);
    switch (w->kind) {
    case WL_ROOF: return 2.0 * ROOF_N * (double)ROOF_N * (double)ROOF_N;
    case WL_DSM:
    case WL_CDSM: return 3.0 * F;
    /* the score -grad_x E is a forward and a reverse pass (2 F_E); the parameter gradient of
     * the loss through it costs twice that again */
    case WL_EDSM: return 6.0 * energy_forward_flops(w->d, w->h, w->b);
    case WL_HYV: return 3.0 * F + 3.0 * 2.0 * (double)w->b * (double)w->d * layer_sum(w->d, w->h, 1);
    case WL_SSM:
        return 3.0 * F + 3.0 * 2.0 * (double)w->b *
                             (layer_sum(w->d, w->h, 1) + (double)w->d * (double)w->h);
    case WL_PC: return 2.0 * (double)w->steps * F;
    case WL_DPM:
    case WL_CDPM: return (double)w->steps * F;
    case WL_CFG: return 2.0 * (double)w->steps * F; /* every evaluation runs 2 B rows */
    case WL_UDSM: return 3.0 * unet_forward_flops(w->h, w->b);
    case WL_UDPM: return (double)w->steps * unet_forward_flops(w->h, w->b);
    default: return 0.0;
    }
}

/* ---- output ------------------------------------------------------------------------------- */

static void emit(const opts *o, const workload *w, const double *t, size_t n, const char *unit,
                 double items, const char *extra)
{
    result *r = &results[n_results++];
    r->name = w->name;
    summarize(r, t, n);
    r->unit = unit;
    r->items = items;
    r->flops = workload_flops(w);
    r->rss_kb = peak_rss_kb();
    r->ok = 1;
    printf("{\"impl\": \"libscore\", \"workload\": \"%s\", \"threads\": %d, "
           "\"threads_by\": \"%s\", \"reps\": %zu, \"median_s\": %.9g, \"min_s\": %.9g, \"max_s\": %.9g, \"mad_s\": %.9g, "
           "\"unit\": \"%s\", \"items_per_run\": %.0f, \"flops_per_unit\": %.6g, "
           "\"gflops\": %.6g, \"peak_rss_kb\": %ld, \"cpu_util\": %.3f, \"blas\": \"%s\"%s%s, "
           "\"times_s\": [",
           w->name, o->threads, o->model_threads > 1 ? "model" : "blas", n, r->median, r->min, r->max, r->mad, unit, items, r->flops,
           r->flops / r->median * 1e-9, r->rss_kb, span_util, score_build_blas(), extra ? ", " : "",
           extra ? extra : "");
    for (size_t i = 0; i < n; i++)
        printf("%s%.9g", i ? ", " : "", t[i]);
    printf("]}\n");
    fflush(stdout);
}

static void print_table(const opts *o)
{
    char blas[256];
    fprintf(stderr, "\nlibscore %s, BLAS %s, %d thread(s)\n", score_version_string(),
            score_build_blas(), o->threads);
    if (score_blas_check(blas, sizeof blas, NULL) == SCORE_OK)
        fprintf(stderr, "%s\n", blas);
    fprintf(stderr, "%-32s %12s %12s %8s %14s %10s %10s\n", "workload", "median", "min..max",
            "mad%", "throughput", "GFLOP/s", "peakRSS");
    for (size_t i = 0; i < n_results; i++) {
        const result *r = &results[i];
        char thr[64];
        if (strcmp(r->unit, "run") == 0)
            snprintf(thr, sizeof thr, "%.0f samp/s", r->items / r->median);
        else
            snprintf(thr, sizeof thr, "%.1f %s/s", 1.0 / r->median, r->unit);
        fprintf(stderr, "%-32s %10.3f ms %5.2f..%-5.2f %7.1f%% %14s %10.1f %7.1f MB\n", r->name,
                r->median * 1e3, r->min / r->median, r->max / r->median,
                100.0 * r->mad / r->median, thr, r->flops / r->median * 1e-9,
                (double)r->rss_kb / 1024.0);
    }
}

/* ---- roofline ----------------------------------------------------------------------------- */

static int run_roofline(const opts *o, const workload *w)
{
    /* at least 10 repetitions: the runner takes the fastest as the machine's roofline */
    size_t n = ROOF_N, reps = o->quick ? 3 : (size_t)(o->reps > 10 ? o->reps : 10);
    float *A = malloc(n * n * sizeof *A), *B = malloc(n * n * sizeof *B),
          *C = malloc(n * n * sizeof *C);
    double t[64];
    int rc = SCORE_E_NOMEM;
    if (A == NULL || B == NULL || C == NULL)
        goto done;
    for (size_t i = 0; i < n * n; i++) {
        A[i] = (float)((i * 7u) % 13u) * 0.01f - 0.06f;
        B[i] = (float)((i * 5u) % 11u) * 0.01f - 0.05f;
    }
    score__sgemm(0, 0, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n); /* warm-up */
    span_begin();
    for (size_t r = 0; r < reps; r++) {
        double t0 = now();
        score__sgemm(0, 0, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
        t[r] = now() - t0;
    }
    span_end();
    emit(o, w, t, reps, "call", 1.0, NULL);
    rc = SCORE_OK;
done:
    free(A);
    free(B);
    free(C);
    return rc;
}

/* ---- training steps ----------------------------------------------------------------------- */

/* The benchmark network: the MLP (classes > 0: with a label input of that many classes), or
 * with energy != 0 the energy model of the same architecture. */
static int new_net(score_model **m, size_t d, size_t h, size_t classes, int energy)
{
    int rc;
    if (energy) {
        rc = score_model_new_energy(m, d);
        if (rc == SCORE_OK)
            rc = score_model_set_i64(*m, SCORE_MODEL_PARAM_HIDDEN, (int64_t)h);
        if (rc == SCORE_OK)
            rc = score_model_set_i64(*m, SCORE_MODEL_PARAM_DEPTH, DEPTH);
        if (rc == SCORE_OK)
            rc = score_model_set_i64(*m, SCORE_MODEL_PARAM_ACTIVATION, SCORE_ACT_SILU);
    } else {
        rc = score_model_new_mlp(m, d, h, DEPTH, SCORE_ACT_SILU, 0);
    }
    if (rc == SCORE_OK && classes > 0)
        rc = score_model_set_i64(*m, SCORE_MODEL_PARAM_NUM_CLASSES, (int64_t)classes);
    if (rc == SCORE_OK)
        rc = score_model_set_i64(*m, SCORE_MODEL_PARAM_EMBEDDING, SCORE_EMBED_FOURIER);
    if (rc == SCORE_OK)
        rc = score_model_set_i64(*m, SCORE_MODEL_PARAM_EMBED_DIM, EMBED_DIM);
    if (rc == SCORE_OK)
        rc = score_model_set_f64(*m, SCORE_MODEL_PARAM_FOURIER_SCALE, FOURIER_SCALE);
    if (rc == SCORE_OK)
        rc = score_model_set_i64(*m, SCORE_MODEL_PARAM_RESIDUAL, 1);
    if (rc == SCORE_OK)
        rc = score_model_prepare(*m);
    return rc;
}

static int new_ve(score_schedule **s)
{
    int rc = score_schedule_new(s, SCORE_SCHEDULE_VE);
    if (rc == SCORE_OK)
        rc = score_schedule_set_f64(*s, SCORE_SCHEDULE_PARAM_SIGMA_MIN, 0.01);
    if (rc == SCORE_OK)
        rc = score_schedule_set_f64(*s, SCORE_SCHEDULE_PARAM_SIGMA_MAX, 50.0);
    if (rc == SCORE_OK)
        rc = score_schedule_prepare(*s);
    return rc;
}

/* A trainer on a fixed batch of B standard normal rows (one step per epoch, no shuffling, no
 * EMA: the PyTorch reference steps on one fixed tensor). */
static int make_trainer(score_trainer **tr, score_model *m, const score_sde *sde, int kind,
                        size_t batch, double lr, const float *data, size_t rows)
{
    score_loss *loss = NULL;
    int rc = score_loss_new(&loss, kind);
    if (rc == SCORE_OK && kind == SCORE_LOSS_SSM) {
        rc = score_loss_set_i64(loss, SCORE_LOSS_PARAM_PROJECTIONS, 1);
        if (rc == SCORE_OK)
            rc = score_loss_set_i64(loss, SCORE_LOSS_PARAM_PROBE, SCORE_LOSS_PROBE_RADEMACHER);
    }
    if (rc == SCORE_OK && kind == SCORE_LOSS_SDE) {
        rc = score_loss_set_i64(loss, SCORE_LOSS_PARAM_WEIGHTING, SCORE_LOSS_WEIGHT_SIGMA2);
        if (rc == SCORE_OK)
            rc = score_loss_set_f64(loss, SCORE_LOSS_PARAM_T_EPS, 1e-5);
    }
    if (rc == SCORE_OK)
        rc = score_trainer_new(tr, m, sde, loss, SCORE_OPTIMIZER_ADAM);
    score_loss_free(loss);
    if (rc != SCORE_OK)
        return rc;
    rc = score_optimizer_set_f64(score_trainer_optimizer(*tr), SCORE_OPTIMIZER_PARAM_LR, lr);
    if (rc == SCORE_OK)
        rc = score_trainer_set_i64(*tr, SCORE_TRAINER_PARAM_BATCH_SIZE, (int64_t)batch);
    if (rc == SCORE_OK)
        rc = score_trainer_set_i64(*tr, SCORE_TRAINER_PARAM_SHUFFLE, rows > batch);
    if (rc == SCORE_OK)
        rc = score_trainer_set_i64(*tr, SCORE_TRAINER_PARAM_USE_EMA, 0);
    if (rc == SCORE_OK)
        rc = score_trainer_set_data(*tr, rows, score_model_dim(m), data);
    return rc;
}

static int run_train(const opts *o, const workload *w)
{
    score_model *m = NULL;
    score_schedule *sched = NULL;
    score_sde *sde = NULL;
    score_trainer *tr = NULL;
    score_rng *rng = NULL;
    float *x = NULL;
    int32_t *labels = NULL;
    double t[64];
    size_t inner = o->quick ? 5 : 20, reps = (size_t)o->reps;
    int rc = SCORE_E_NOMEM, loss_kind;
    int dsm = w->kind == WL_DSM || w->kind == WL_CDSM || w->kind == WL_EDSM ||
              w->kind == WL_UDSM;
    if (w->kind == WL_HYV && w->d > 8)
        inner = inner / 10 > 0 ? inner / 10 : 1; /* as the reference: a step takes ~0.1 s */
    loss_kind = dsm ? SCORE_LOSS_SDE : w->kind == WL_HYV ? SCORE_LOSS_HYVARINEN : SCORE_LOSS_SSM;
    if (w->kind == WL_UDSM)
        CHECK(unet_net(&m, w->h));
    else
        CHECK(new_net(&m, w->d, w->h, w->kind == WL_CDSM ? N_CLASSES_TRAIN : 0,
                      w->kind == WL_EDSM));
    CHECK(score_model_set_i64(m, SCORE_MODEL_PARAM_THREADS, o->model_threads));
    if (dsm) {
        CHECK(new_ve(&sched));
        CHECK(score_sde_new(&sde, sched, m, SCORE_OUTPUT_SCORE));
        CHECK(score_sde_set_i64(sde, SCORE_SDE_PARAM_COND, SCORE_COND_T));
    }
    if ((x = malloc(w->b * w->d * sizeof *x)) == NULL)
        goto done;
    CHECK(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 12345));
    CHECK(score_rng_fill_normal(rng, 0, w->b, 0, w->d, x));
    CHECK(make_trainer(&tr, m, sde, loss_kind, w->b, 1e-4, x, w->b));
    if (w->kind == WL_CDSM) {
        /* row i has class i mod K; the trainer's label dropout (default p_uncond 0.1) gives
         * each step's rows the null label at random, as the reference does */
        if ((labels = malloc(w->b * sizeof *labels)) == NULL)
            goto done;
        for (size_t i = 0; i < w->b; i++)
            labels[i] = (int32_t)(i % N_CLASSES_TRAIN);
        CHECK(score_trainer_set_labels(tr, w->b, labels));
    }
    for (size_t r = 0; r <= reps; r++) { /* repetition 0 is the warm-up */
        double t0;
        if (r == 1)
            span_begin();
        t0 = now();
        for (size_t i = 0; i < inner; i++)
            CHECK(score_trainer_step(tr, NULL));
        if (r > 0)
            t[r - 1] = (now() - t0) / (double)inner;
    }
    span_end();
    {
        double L = 0.0;
        char extra[96];
        if (score_trainer_last_loss(tr, &L) != SCORE_OK)
            L = NAN;
        snprintf(extra, sizeof extra, "\"inner_steps\": %zu, \"last_loss\": %.6g", inner, L);
        emit(o, w, t, reps, "step", 1.0, extra);
    }
    rc = SCORE_OK;
done:
    score_trainer_free(tr);
    score_sde_free(sde);
    score_schedule_free(sched);
    score_model_free(m);
    score_rng_free(rng);
    free(x);
    free(labels);
    return rc;
}

/* ---- sampling ----------------------------------------------------------------------------- */

/* The file of the conditional sampling model: the sampling model's path + ".cond". */
static int cond_model_path(char *buf, size_t size, const char *path)
{
    int n = snprintf(buf, size, "%s.cond", path);
    return n > 0 && (size_t)n < size ? SCORE_OK : SCORE_E_RANGE;
}

/* The sampling model (cond != 0: the conditional one, N_CLASSES_RING classes): loaded from
 * o->sampling_model (+ ".cond") when it exists, otherwise a freshly initialised model (random
 * weights; see make_sampling_model()). */
static int sampling_model(const opts *o, score_model **m, int cond)
{
    char path[4096];
    if (o->sampling_model != NULL) {
        if (cond && cond_model_path(path, sizeof path, o->sampling_model) != SCORE_OK)
            return SCORE_E_RANGE;
        if (access(cond ? path : o->sampling_model, R_OK) == 0)
            return score_model_load(m, cond ? path : o->sampling_model);
    }
    return new_net(m, 2, 128, cond ? N_CLASSES_RING : 0, 0);
}

/* The class of a ring8 point: the nearest of the eight component angles. */
static int32_t ring_class(const float *x)
{
    double a = atan2((double)x[1], (double)x[0]) / (2.0 * 3.14159265358979323846 / N_CLASSES_RING);
    long k = lround(a);
    return (int32_t)(((k % N_CLASSES_RING) + N_CLASSES_RING) % N_CLASSES_RING);
}

/* Trains the d = 2, h = 128 sampling model briefly with continuous VE DSM on the ring of
 * eight Gaussians, so that the samplers run on a sane score field (a randomly initialised
 * network makes the VE reverse diffusion overflow), and saves it for both implementations.
 * cond != 0: the conditional model (the ring's components as the classes, label dropout 0.1
 * for the null label of classifier-free guidance). */
static int make_one_sampling_model(const char *path, int quick, int cond)
{
    score_model *m = NULL;
    score_schedule *sched = NULL;
    score_sde *sde = NULL;
    score_trainer *tr = NULL;
    score_rng *rng = NULL;
    size_t rows = 8192, steps = quick ? 300 : 1500;
    float *data = malloc(rows * 2 * sizeof *data);
    double t0 = now(), L = 0.0;
    int rc = SCORE_E_NOMEM;
    if (data == NULL)
        goto done;
    CHECK(new_net(&m, 2, 128, cond ? N_CLASSES_RING : 0, 0));
    CHECK(new_ve(&sched));
    CHECK(score_sde_new(&sde, sched, m, SCORE_OUTPUT_SCORE));
    CHECK(score_sde_set_i64(sde, SCORE_SDE_PARAM_COND, SCORE_COND_T));
    CHECK(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 7));
    CHECK(score_dataset_toy("ring8", rng, rows, data));
    CHECK(make_trainer(&tr, m, sde, SCORE_LOSS_SDE, 512, 2e-3, data, rows));
    if (cond) {
        int32_t labels[8192];
        for (size_t i = 0; i < rows; i++)
            labels[i] = ring_class(data + 2 * i);
        CHECK(score_trainer_set_labels(tr, rows, labels));
    }
    CHECK(score_trainer_run(tr, steps, NULL, NULL));
    CHECK(score_trainer_last_loss(tr, &L));
    CHECK(score_model_save(m, path));
    fprintf(stderr, "score-bench: %ssampling model trained (%zu DSM steps, last loss %.4g, "
            "%.1f s), saved to %s\n", cond ? "conditional " : "", steps, L, now() - t0, path);
    rc = SCORE_OK;
done:
    score_trainer_free(tr);
    score_sde_free(sde);
    score_schedule_free(sched);
    score_model_free(m);
    score_rng_free(rng);
    free(data);
    return rc;
}

/* The sampling model at path and the conditional one at path + ".cond". */
static int make_sampling_model(const char *path, int quick)
{
    char cpath[4096];
    int rc = make_one_sampling_model(path, quick, 0);
    if (rc == SCORE_OK)
        rc = cond_model_path(cpath, sizeof cpath, path);
    return rc == SCORE_OK ? make_one_sampling_model(cpath, quick, 1) : rc;
}

static int run_sampling(const opts *o, const workload *w)
{
    score_model *m = NULL;
    score_schedule *sched = NULL;
    score_sde *sde = NULL;
    score_sampler *s = NULL;
    score_rng *rng = NULL;
    float *out = NULL;
    double t[64];
    size_t reps = o->quick ? 1 : (size_t)(o->reps / 2 > 3 ? o->reps / 2 : 3);
    size_t n = o->samples ? o->samples : o->quick ? (w->b < 2000 ? w->b / 10 : 2000) : w->b;
    int rc = SCORE_E_NOMEM;
    int cond = w->kind == WL_CDPM || w->kind == WL_CFG;
    if (w->kind == WL_UDPM) /* freshly initialised (the PyTorch module: the same distribution) */
        CHECK(unet_net(&m, w->h));
    else
        CHECK(sampling_model(o, &m, cond));
    CHECK(score_model_set_i64(m, SCORE_MODEL_PARAM_THREADS, o->model_threads));
    CHECK(new_ve(&sched));
    CHECK(score_sde_new(&sde, sched, m, SCORE_OUTPUT_SCORE));
    CHECK(score_sde_set_i64(sde, SCORE_SDE_PARAM_COND, SCORE_COND_T));
    if (cond) /* one class; guided: s = (1 + w) s(x, y) - w s(x, null), one 2n-row batch */
        CHECK(score_sde_set_label(sde, GUIDED_LABEL));
    if (w->kind == WL_CFG)
        CHECK(score_sde_set_f64(sde, SCORE_SDE_PARAM_GUIDANCE, GUIDANCE_W));
    if (w->kind == WL_PC) {
        /* score_sde's PC sampler: at each of the 100 times (uniform in t from T to t_eps) one
         * Langevin corrector step (snr 0.16) then one reverse-diffusion step; the last
         * predictor step goes to t = 0 (the denoised mean): 200 model evaluations. */
        CHECK(score_sampler_new(&s, score_step_type_get(SCORE_STEP_REVERSE_DIFFUSION),
                                score_step_type_get(SCORE_STEP_LANGEVIN), w->d));
        CHECK(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_NUM_STEPS, (int64_t)w->steps));
        CHECK(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_GRID, SCORE_GRID_UNIFORM_T));
        CHECK(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_FINAL_DENOISE, 1));
        CHECK(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_CORRECTOR_STEPS, 1));
        CHECK(score_sampler_set_f64(s, SCORE_SAMPLER_PARAM_SNR, 0.16));
        /* score_sde's batch-mean step-size rule, as the PyTorch reference computes it (the
         * library's default is the batch-invariant noise-level rule) */
        CHECK(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_SNR_NORM, 0));
    } else {
        /* DPM-Solver++(2M), 20 steps on the uniform-lambda grid (for VE: geometric in sigma,
         * i.e. uniform in t) from T to t_eps: 20 model evaluations. */
        CHECK(score_sampler_new_preset(&s, SCORE_SAMPLER_PRESET_DPMPP_2M, w->d));
        CHECK(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_NUM_STEPS, (int64_t)w->steps));
        CHECK(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_FINAL_DENOISE, 0));
    }
    CHECK(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 2024));
    if ((out = malloc(n * w->d * sizeof *out)) == NULL)
        goto done;
    for (size_t r = 0; r <= reps; r++) {
        double t0;
        if (r == 1)
            span_begin();
        t0 = now();
        CHECK(score_sampler_run(s, sde, n, NULL, out, rng, NULL, NULL));
        if (r > 0)
            t[r - 1] = now() - t0;
    }
    span_end();
    {
        workload wn = *w;
        char extra[256];
        double mean[2] = {0, 0}, sq[2] = {0, 0}, rad = 0.0;
        for (size_t i = 0; i < n; i++) {
            double r2 = 0.0;
            for (size_t j = 0; j < 2; j++) {
                mean[j] += out[i * w->d + j];
                sq[j] += (double)out[i * w->d + j] * out[i * w->d + j];
                r2 += (double)out[i * w->d + j] * out[i * w->d + j];
            }
            rad += sqrt(r2);
        }
        for (size_t j = 0; j < 2; j++) {
            mean[j] /= (double)n;
            sq[j] = sqrt(sq[j] / (double)n - mean[j] * mean[j]);
        }
        snprintf(extra, sizeof extra,
                 "\"nfe\": %llu, \"sample_mean\": [%.4f, %.4f], \"sample_std\": [%.4f, %.4f], "
                 "\"sample_mean_radius\": %.4f",
                 (unsigned long long)score_sampler_get_nfe(s), mean[0], mean[1], sq[0], sq[1],
                 rad / (double)n);
        wn.b = n;
        emit(o, &wn, t, reps, "run", (double)n, extra);
    }
    rc = SCORE_OK;
done:
    score_sampler_free(s);
    score_sde_free(sde);
    score_schedule_free(sched);
    score_model_free(m);
    score_rng_free(rng);
    free(out);
    return rc;
}

/* ---- main --------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: score-bench [--threads N] [--reps R] [--only W1,W2,...] [--quick]\n"
            "                   [--sampling-model PATH] [--make-sampling-model PATH] [--list]\n"
            "                   [--samples N] [--cpu-time] [--par auto|blas|model]\n"
            "JSON lines on stdout, a table on stderr. W may end in '*' (prefix match).\n"
            "--par: who runs the N threads: the BLAS, or the model (SCORE_MODEL_PARAM_THREADS,\n"
            "the BLAS on one thread); auto (default): the model for training (DSM, Hyvarinen\n"
            "and sliced losses) and sampling, the BLAS for the roofline.\n");
}

enum { PAR_AUTO, PAR_BLAS, PAR_MODEL };

/* Who runs the N threads of a workload: the BLAS (its own pool inside each GEMM), or the model
 * (SCORE_MODEL_PARAM_THREADS: blocks of rows at a time, each on a one-thread BLAS). auto: the
 * model where it parallelises the whole computation (the cache-free evaluation of samplers, the
 * forward / backward of DSM training, the tangent-gradient lanes of the Hyvärinen and sliced
 * losses), the BLAS for the roofline. OpenBLAS's thread count is switched at run time; with
 * another BLAS the model mode relies on its environment (BLIS_NUM_THREADS=1). */
static void set_parallelism(opts *o, const workload *w)
{
    int model = o->par == PAR_MODEL ||
                (o->par == PAR_AUTO && (w->kind == WL_DSM || w->kind == WL_PC || w->kind == WL_DPM ||
                                        w->kind == WL_HYV || w->kind == WL_SSM ||
                                        w->kind == WL_CDSM || w->kind == WL_EDSM ||
                                        w->kind == WL_CDPM ||
                                        w->kind == WL_CFG || w->kind == WL_UDSM ||
                                        w->kind == WL_UDPM));
    if (w->kind == WL_ROOF)
        model = 0;
    o->model_threads = model ? o->threads : 1;
#if defined(OPENBLAS_VERSION)
    openblas_set_num_threads(model ? 1 : o->threads);
#endif
}

/* Makes the BLAS thread count of this process N: the BLAS libraries read it from the
 * environment at load time, so set it and re-execute when it differs. */
static void ensure_threads(int n, char **argv)
{
    static const char *const vars[] = {"OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                       "BLIS_NUM_THREADS", "GOTO_NUM_THREADS"};
    char val[32];
    int same = 1;
    snprintf(val, sizeof val, "%d", n);
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v == NULL || strcmp(v, val) != 0)
            same = 0;
    }
    if (same)
        return;
    if (getenv("SCORE_BENCH_REEXEC") != NULL) {
        fprintf(stderr, "score-bench: could not set the thread environment\n");
        return;
    }
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        setenv(vars[i], val, 1);
    setenv("SCORE_BENCH_REEXEC", "1", 1);
    execv("/proc/self/exe", argv);
    fprintf(stderr, "score-bench: re-exec failed (%s); the BLAS keeps its default threads\n",
            strerror(errno));
}

int main(int argc, char **argv)
{
    opts o = {1, 1, PAR_AUTO, 5, 0, NULL, NULL, NULL, 0};
    int failed = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--threads") == 0 && i + 1 < argc)
            o.threads = atoi(argv[++i]);
        else if (strcmp(a, "--reps") == 0 && i + 1 < argc)
            o.reps = atoi(argv[++i]);
        else if (strcmp(a, "--only") == 0 && i + 1 < argc)
            o.only = argv[++i];
        else if (strcmp(a, "--quick") == 0)
            o.quick = 1;
        else if (strcmp(a, "--par") == 0 && i + 1 < argc) {
            const char *v = argv[++i];
            o.par = strcmp(v, "blas") == 0 ? PAR_BLAS : strcmp(v, "model") == 0 ? PAR_MODEL
                  : strcmp(v, "auto") == 0 ? PAR_AUTO : -1;
            if (o.par < 0) {
                usage(stderr);
                return 2;
            }
        }
        else if (strcmp(a, "--cpu-time") == 0)
            use_cpu_clock = 1;
        else if (strcmp(a, "--sampling-model") == 0 && i + 1 < argc)
            o.sampling_model = argv[++i];
        else if (strcmp(a, "--samples") == 0 && i + 1 < argc)
            o.samples = (size_t)strtoull(argv[++i], NULL, 10);
        else if (strcmp(a, "--make-sampling-model") == 0 && i + 1 < argc)
            o.make_sampling_model = argv[++i];
        else if (strcmp(a, "--list") == 0) {
            for (size_t k = 0; k < N_WORKLOADS; k++)
                printf("%s\n", workloads[k].name);
            return 0;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (o.threads < 1 || o.threads > 1024 || o.reps < 1 || o.reps > 60) {
        usage(stderr);
        return 2;
    }
    if (o.quick && o.reps > 3)
        o.reps = 3;
    ensure_threads(o.threads, argv);

    if (o.make_sampling_model != NULL)
        return make_sampling_model(o.make_sampling_model, o.quick) == SCORE_OK ? 0 : 1;

    for (size_t k = 0; k < N_WORKLOADS; k++) {
        const workload *w = &workloads[k];
        int rc;
        if (!selected(&o, w->name))
            continue;
        set_parallelism(&o, w);
        switch (w->kind) {
        case WL_ROOF: rc = run_roofline(&o, w); break;
        case WL_PC:
        case WL_DPM:
        case WL_CDPM:
        case WL_CFG:
        case WL_UDPM: rc = run_sampling(&o, w); break;
        default: rc = run_train(&o, w); break;
        }
        if (rc != SCORE_OK) {
            fprintf(stderr, "score-bench: workload %s failed\n", w->name);
            printf("{\"impl\": \"libscore\", \"workload\": \"%s\", \"threads\": %d, "
                   "\"error\": \"%s\"}\n", w->name, o.threads, score_status_name(rc));
            fflush(stdout);
            failed = 1;
        }
    }
    if (n_results > 0)
        print_table(&o);
    return failed;
}
