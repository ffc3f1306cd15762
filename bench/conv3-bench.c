/* Micro-benchmark of the kernel layer's direct 3x3 convolutions (not installed, not a test):
 * score__conv3_forward, _forward_packed (fwdp: the weight packed beforehand by
 * score__conv3_pack, as the U-Net's sampling calls it; the pack not timed), _input_grad and
 * _wgrad on the U-Net's shapes (bench.c's unet_net: 8 x 8
 * planes with 32 channels, 4 x 4 and 2 x 2 planes with 64, skip concatenations 64 / 96 / 128
 * wide, the last convolution 32 -> 1 or 3 channels also on 32 x 32 planes), for n = 8 and 16 images
 * (the U-Net's blocks of rows for sampling and training: its real calls), 128 and 1000 (up to
 * MAX_PAIRS image pixels per call), at the SIMD level picked at run time (or --level L). Prints
 * each call's best time over the repetitions (a repetition: enough calls for about 50 MFLOP) as
 * GFLOP/s (2 * 9 * ci * co * hw * n flops) and as a percentage of the machine's single-thread
 * sgemm throughput (2048^3 through score__sgemm, best of 5), which runs at about the FMA peak.
 *
 *   conv3-bench [--reps R] [--level L] [--only fwd|fwdp|igrad|igradw|wgrad]
 *
 * igradw: the input gradient written (acc = 0) instead of added. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernel/kernel-priv.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Single-thread sgemm GFLOP/s: best of 5 products of 2048 x 2048 matrices. */
static double sgemm_peak(void)
{
    size_t n = 2048;
    float *A = malloc(n * n * sizeof *A), *B = malloc(n * n * sizeof *B),
          *C = malloc(n * n * sizeof *C);
    double best = 1e30;
    if (A == NULL || B == NULL || C == NULL) {
        free(A), free(B), free(C);
        return 0.0;
    }
    for (size_t i = 0; i < n * n; i++) {
        A[i] = (float)((i * 7u) % 13u) * 0.01f - 0.06f;
        B[i] = (float)((i * 5u) % 11u) * 0.01f - 0.05f;
    }
    for (int r = 0; r < 6; r++) {
        double t0 = now();
        score__sgemm(0, 0, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
        double t = now() - t0;
        if (r > 0 && t < best)
            best = t;
    }
    free(A), free(B), free(C);
    return 2.0 * (double)n * (double)n * (double)n / best * 1e-9;
}

typedef struct shape {
    size_t ci, co, h, w;
} shape;

/* The 3x3 convolutions of the U-Net on 8 x 8 images with base width 32 (the 2 x 2 planes: the
 * output-channel tiles of the small planes). */
static const shape shapes[] = {
    {1, 32, 8, 8},  {32, 32, 8, 8},  {64, 32, 8, 8},   {96, 32, 8, 8},  {32, 1, 8, 8},
    {32, 3, 8, 8},  {32, 64, 4, 4}, {64, 64, 4, 4}, {128, 64, 4, 4}, {96, 64, 4, 4},
    {32, 1, 32, 32}, {32, 3, 32, 32}, {64, 64, 2, 2}, {128, 64, 2, 2},
};
/* Calls above this many (image, pixel) pairs are left out (the large planes: n = 8 and 16). */
#define MAX_PAIRS 16384

enum { OP_FWD, OP_FWDP, OP_IGRAD, OP_IGRADW, OP_WGRAD, OP_COUNT };
static const char *const op_names[OP_COUNT] = {"fwd", "fwdp", "igrad", "igradw", "wgrad"};

/* Best time per call of op on the buffers over reps repetitions of calls calls (wp: wt packed
 * by score__conv3_pack_at, or NULL when nothing is packed). */
static double time_op(int op, int level, size_t reps, size_t calls, size_t n, const shape *s,
                      const float *wt, const float *wp, const float *b, const float *x, float *y,
                      float *gw)
{
    double best = 1e30;
    for (size_t r = 0; r <= reps; r++) { /* the first repetition warms up */
        double t0 = now();
        for (size_t k = 0; k < calls; k++)
            if (op == OP_FWD)
                score__conv3_forward_at(level, n, s->ci, s->co, s->h, s->w, wt, b, x, y, 0);
            else if (op == OP_FWDP)
                score__conv3_forward_packed_at(level, n, s->ci, s->co, s->h, s->w, wt, wp, b, x,
                                               y, 0);
            else if (op == OP_IGRAD) /* x is gx (ci channels), y is gy (co channels) */
                score__conv3_input_grad_at(level, n, s->ci, s->co, s->h, s->w, wt, y,
                                           (float *)x);
            else if (op == OP_IGRADW) /* the same written (acc = 0), its weight packed per call */
                score__conv3_input_grad_packed_at(level, n, s->ci, s->co, s->h, s->w, wt, NULL,
                                                  y, (float *)x, 0);
            else
                score__conv3_wgrad_at(level, n, s->ci, s->co, s->h, s->w, y, x, gw);
        double t = (now() - t0) / (double)calls;
        if (r > 0 && t < best)
            best = t;
    }
    return best;
}

int main(int argc, char **argv)
{
    size_t reps = 20;
    int level = score__gemm_cols_level(), only = -1;
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--reps") == 0 && a + 1 < argc)
            reps = (size_t)strtoul(argv[++a], NULL, 10);
        else if (strcmp(argv[a], "--level") == 0 && a + 1 < argc)
            level = atoi(argv[++a]);
        else if (strcmp(argv[a], "--only") == 0 && a + 1 < argc) {
            const char *name = argv[++a];
            for (int op = 0; op < OP_COUNT; op++)
                if (strcmp(name, op_names[op]) == 0)
                    only = op;
        } else {
            fprintf(stderr,
                    "usage: %s [--reps R] [--level L] [--only fwd|fwdp|igrad|igradw|wgrad]\n",
                    argv[0]);
            return 2;
        }
    }
    if (reps == 0)
        reps = 1;
    double peak = sgemm_peak();
    printf("level %d, sgemm peak %.1f GFLOP/s (1 thread), best of %zu repetitions\n", level, peak,
           reps);
    printf("%-6s %5s %5s %5s %6s %10s %9s %6s\n", "op", "n", "ci", "co", "plane", "time_us",
           "GFLOP/s", "%peak");
    static const size_t ns[] = {8, 16, 128, 1000};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
            const shape *s = &shapes[si];
            size_t n = ns[ni], hw = s->h * s->w, cmax = s->ci > s->co ? s->ci : s->co;
            if (n * hw > MAX_PAIRS)
                continue;
            float *wt = malloc(s->ci * s->co * 9 * sizeof *wt),
                  *b = malloc(s->co * sizeof *b), *x = malloc(n * cmax * hw * sizeof *x),
                  *y = malloc(n * cmax * hw * sizeof *y),
                  *gw = calloc(s->ci * s->co * 9, sizeof *gw);
            size_t np = score__conv3_packed_floats(s->ci, s->co, s->h, s->w);
            float *wp = np > 0 ? aligned_alloc(64, (np * sizeof *wp + 63) / 64 * 64) : NULL;
            if (wt == NULL || b == NULL || x == NULL || y == NULL || gw == NULL ||
                (np > 0 && wp == NULL)) {
                fprintf(stderr, "out of memory\n");
                return 1;
            }
            for (size_t i = 0; i < s->ci * s->co * 9; i++)
                wt[i] = (float)((i * 7u) % 17u) * 0.01f - 0.08f;
            for (size_t i = 0; i < s->co; i++)
                b[i] = 0.01f * (float)i;
            if (wp != NULL)
                score__conv3_pack_at(level, s->ci, s->co, s->h, s->w, wt, wp);
            for (size_t i = 0; i < n * cmax * hw; i++) {
                x[i] = (float)((i * 5u) % 11u) * 0.1f - 0.5f;
                y[i] = (float)((i * 3u) % 7u) * 0.1f - 0.3f;
            }
            double flops = 2.0 * 9.0 * (double)s->ci * (double)s->co * (double)hw * (double)n;
            size_t calls = flops < 5e7 ? (size_t)(5e7 / flops) : 1;
            for (int op = 0; op < OP_COUNT; op++) {
                if (only >= 0 && op != only)
                    continue;
                double t = time_op(op, level, reps, calls, n, s, wt, wp, b, x, y, gw);
                double gf = flops / t * 1e-9;
                printf("%-6s %5zu %5zu %5zu %3zux%-2zu %10.1f %9.1f %5.1f%%\n", op_names[op], n,
                       s->ci, s->co, s->h, s->w, t * 1e6, gf, peak > 0 ? 100.0 * gf / peak : 0.0);
            }
            free(wt), free(b), free(x), free(y), free(gw), free(wp);
        }
    return 0;
}
