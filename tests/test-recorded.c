/* Recorded outputs: samples (every built-in step type as predictor, presets, correctors, fixed
 * grids and adaptive solves, stochastic and deterministic, several batch sizes and row
 * offsets, analytic Gaussian mixture and a seeded MLP), evolve and step calls with per-row
 * times, and likelihoods (exact divergence, Hutchinson with both probe kinds) compared bit for
 * bit with the values in tests/data/recorded-outputs.txt.
 *
 * The file was written by this program (`SCORE_RECORD=1 OPENBLAS_NUM_THREADS=1
 * OPENBLAS_CORETYPE=Haswell test-recorded > file`, the environment of its test in
 * tests/meson.build) from a build of
 * the library before its sampler layer was restructured; a restructuring that changes no
 * arithmetic reproduces every byte. The values depend on the build (compiler flags, libm, BLAS
 * kernels of the MLP's products): on another platform, record again from a known-good
 * revision before comparing. The file names the CBLAS it was recorded with ("# blas NAME");
 * with another CBLAS (e.g. -Dblas=blis), the MLP's outputs cannot be bit-identical (other
 * GEMM kernels), so only the analytic-model outputs, which use no BLAS, are compared and the
 * number of MLP outputs left out is printed. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers/test-helpers.h"

enum { SYS_GMM_VP, SYS_GMM_VE, SYS_MLP_VP, SYS_COUNT };
static const char *const sys_name[SYS_COUNT] = {"gmm-vp", "gmm-ve", "mlp-vp"};

static const double w3[3] = {0.5, 0.3, 0.2};
static const double mu3[6] = {-2.0, 0.0, 2.0, 0.0, 0.0, 2.5};
static const double var3[6] = {0.1, 0.1, 0.2, 0.05, 0.05, 0.2};

typedef struct sys {
    score_schedule *sched;
    score_model *model;
    score_sde *sde;
} sys;

static void sys_make(sys *s, int which)
{
    int kind = which == SYS_GMM_VE ? SCORE_SCHEDULE_VE : SCORE_SCHEDULE_VP;
    ck_assert_ok(score_schedule_new(&s->sched, kind));
    if (kind == SCORE_SCHEDULE_VE)
        ck_assert_ok(score_schedule_set_f64(s->sched, SCORE_SCHEDULE_PARAM_SIGMA_MAX, 20.0));
    ck_assert_ok(score_schedule_prepare(s->sched));
    if (which == SYS_MLP_VP) {
        ck_assert_ok(score_model_new_mlp(&s->model, 2, 16, 2, SCORE_ACT_SILU, 7));
        ck_assert_ok(score_model_prepare(s->model));
        ck_assert_ok(score_sde_new(&s->sde, s->sched, s->model, SCORE_OUTPUT_EPS));
    } else {
        ck_assert_ok(score_model_new_gmm(&s->model, s->sched, 2, 3, w3, mu3, var3));
        ck_assert_ok(score_sde_new(&s->sde, s->sched, s->model, SCORE_OUTPUT_SCORE));
    }
}

static void sys_free(sys *s)
{
    score_sde_free(s->sde);
    score_model_free(s->model);
    score_schedule_free(s->sched);
}

/* ---- output blobs ---------------------------------------------------------------------- */

typedef struct blob {
    unsigned char b[8192];
    size_t len;
} blob;

static void put(blob *o, const void *p, size_t len)
{
    ck_assert_uint_le(o->len + len, sizeof o->b);
    memcpy(o->b + o->len, p, len);
    o->len += len;
}

static void put_u64(blob *o, uint64_t v)
{
    put(o, &v, sizeof v);
}

typedef struct recorder {
    int record;   /* 1: print the lines; 0: compare */
    char **names; /* recorded table (compare mode) */
    char **hex;
    size_t count;
    size_t cases, mismatches;
    char blas[64];       /* CBLAS named by the recorded file ("" = not named) */
    size_t other_blas;   /* MLP outputs not compared: recorded with another CBLAS */
} recorder;

static void to_hex(const blob *o, char *out)
{
    static const char dig[] = "0123456789abcdef";
    for (size_t i = 0; i < o->len; i++) {
        out[2 * i] = dig[o->b[i] >> 4];
        out[2 * i + 1] = dig[o->b[i] & 15];
    }
    out[2 * o->len] = '\0';
}

static void emit(recorder *r, const char *name, int rc, const blob *o)
{
    char hex[2 * sizeof o->b + 1];
    const char *full = name;
    to_hex(o, hex);
    r->cases++;
    if (r->record) {
        printf("%s %d %s\n", full, rc, o->len > 0 ? hex : "-");
        return;
    }
    if (strstr(full, "/mlp-") != NULL && strcmp(r->blas, score_build_blas()) != 0) {
        r->other_blas++;
        return;
    }
    for (size_t i = 0; i < r->count; i++) {
        char want[32];
        if (strcmp(r->names[i], full) != 0)
            continue;
        snprintf(want, sizeof want, "%d", rc);
        if (strncmp(r->hex[i], want, strlen(want)) != 0 || r->hex[i][strlen(want)] != ' ' ||
            strcmp(r->hex[i] + strlen(want) + 1, o->len > 0 ? hex : "-") != 0) {
            if (r->mismatches < 20)
                fprintf(stderr, "recorded output differs: %s (status %d)\n", full, rc);
            r->mismatches++;
        }
        return;
    }
    fprintf(stderr, "no recorded output for %s\n", full);
    r->mismatches++;
}

/* ---- cases ----------------------------------------------------------------------------- */

static score_rng *make_rng(uint64_t seed)
{
    score_rng *g;
    ck_assert_ok(score_rng_new(&g, SCORE_RNG_PHILOX4X32_10, seed));
    return g;
}

/* One sampler run of rows row0 .. row0+n-1; x_init NULL = prior draw. */
static void run_sampler(recorder *r, const char *name, score_sampler *s, sys *y, size_t row0,
                        size_t n, int with_init, int with_rng)
{
    float x0[64], out[64];
    blob o = {.len = 0};
    score_rng *g = make_rng(42);
    int rc;
    ck_assert_uint_le(n * 2, 64);
    for (size_t i = 0; i < n * 2; i++)
        x0[i] = (float)(0.37 * (double)(i + row0 * 2) - 1.1);
    memset(out, 0, sizeof out);
    rc = score_sampler_run_ex(s, y->sde, row0, n, with_init ? x0 : NULL, out, with_rng ? g : NULL,
                              NULL, NULL);
    put(&o, out, n * 2 * sizeof(float));
    put_u64(&o, score_sampler_get_nfe(s));
    put_u64(&o, score_sampler_get_steps(s));
    put_u64(&o, score_sampler_get_failed_steps(s));
    emit(r, name, rc, &o);
    score_rng_free(g);
}

static void sampler_cases(recorder *r, sys *systems)
{
    static const size_t rows[2][2] = {{0, 5}, {7, 3}};
    char name[96];
    for (int sy = 0; sy < SYS_COUNT; sy++) {
        sys *y = &systems[sy];
        for (int kind = 1; kind <= 21; kind++) {
            const score_step_type *ty = score_step_type_get(kind);
            for (int adaptive = 0; adaptive <= 1; adaptive++) {
                if (adaptive && !(score_step_type_flags(ty) & SCORE_STEP_FLAG_ERROR_ESTIMATE))
                    continue;
                for (int denoise = 0; denoise <= 1; denoise++) {
                    score_sampler *s;
                    ck_assert_ok(score_sampler_new(&s, ty, NULL, 2));
                    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_NUM_STEPS, 6));
                    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_ADAPTIVE, adaptive));
                    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_FINAL_DENOISE,
                                                       denoise));
                    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_GRID,
                                                       denoise ? SCORE_GRID_KARRAS
                                                               : SCORE_GRID_UNIFORM_LAMBDA));
                    if (adaptive) {
                        ck_assert_ok(score_sampler_set_f64(s, SCORE_SAMPLER_PARAM_RTOL, 1e-3));
                        ck_assert_ok(score_sampler_set_f64(s, SCORE_SAMPLER_PARAM_ATOL, 1e-3));
                    }
                    for (int b = 0; b < 2; b++) {
                        snprintf(name, sizeof name, "sample/%s/%s/a%d/d%d/r%zu-%zu", sys_name[sy],
                                 score_step_type_name(ty), adaptive, denoise, rows[b][0],
                                 rows[b][1]);
                        run_sampler(r, name, s, y, rows[b][0], rows[b][1], 0, 1);
                    }
                    /* given start values; a generator only for stochastic types */
                    snprintf(name, sizeof name, "sample/%s/%s/a%d/d%d/init", sys_name[sy],
                             score_step_type_name(ty), adaptive, denoise);
                    run_sampler(r, name, s, y, 2, 4, 1,
                                (score_step_type_flags(ty) & SCORE_STEP_FLAG_STOCHASTIC) != 0);
                    score_sampler_free(s);
                }
            }
        }
        /* presets (with their correctors) */
        for (int preset = 1; preset <= 6; preset++) {
            score_sampler *s;
            int rc = score_sampler_new_preset(&s, preset, 2);
            ck_assert_ok(rc);
            if (preset == SCORE_SAMPLER_PRESET_PC)
                ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_NUM_STEPS, 40));
            if (preset == SCORE_SAMPLER_PRESET_NCSN || preset == SCORE_SAMPLER_PRESET_NCSNV2) {
                ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_NUM_STEPS, 8));
                ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_CORRECTOR_STEPS, 3));
            }
            for (int b = 0; b < 2; b++) {
                snprintf(name, sizeof name, "preset/%s/%d/r%zu-%zu", sys_name[sy], preset,
                         rows[b][0], rows[b][1]);
                run_sampler(r, name, s, y, rows[b][0], rows[b][1], 0, 1);
            }
            score_sampler_free(s);
        }
        /* predictor + corrector pairs */
        {
            static const int pc[][2] = {{SCORE_STEP_EULER, SCORE_STEP_LANGEVIN},
                                        {SCORE_STEP_EULER_MARUYAMA, SCORE_STEP_LANGEVIN},
                                        {SCORE_STEP_DDIM, SCORE_STEP_ALD},
                                        {SCORE_STEP_DPMPP_2M, SCORE_STEP_LANGEVIN}};
            for (size_t k = 0; k < sizeof pc / sizeof pc[0]; k++) {
                for (int norm = 0; norm <= 1; norm++) {
                    score_sampler *s;
                    ck_assert_ok(score_sampler_new(&s, score_step_type_get(pc[k][0]),
                                                   score_step_type_get(pc[k][1]), 2));
                    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_NUM_STEPS, 5));
                    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_CORRECTOR_STEPS, 2));
                    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_SNR_NORM, norm));
                    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_FINAL_DENOISE, norm));
                    ck_assert_ok(score_sampler_set_f64(s, SCORE_SAMPLER_PARAM_CHURN, norm * 2.0));
                    for (int b = 0; b < 2; b++) {
                        snprintf(name, sizeof name, "pc/%s/%d-%d/n%d/r%zu-%zu", sys_name[sy],
                                 pc[k][0], pc[k][1], norm, rows[b][0], rows[b][1]);
                        run_sampler(r, name, s, y, rows[b][0], rows[b][1], 0, 1);
                    }
                    score_sampler_free(s);
                }
            }
        }
    }
}

/* evolve with per-row start times (adaptive), then fixed stochastic steps; a step with
 * per-row times. */
static void evolve_cases(recorder *r, sys *systems)
{
    char name[96];
    for (int sy = 0; sy < SYS_COUNT; sy++) {
        sys *y = &systems[sy];
        double t0[4] = {0.9, 0.7, 0.5, 0.8}, tt[4], tn[4] = {0.3, 0.2, 0.45, 0.1};
        float x[8] = {0.3f, -1.2f, 0.8f, 0.1f, -0.5f, 0.9f, 1.4f, -0.2f};
        score_evolve *e;
        score_control *c;
        score_step *st;
        score_rng *g = make_rng(9);
        blob o = {.len = 0};
        int rc = SCORE_OK;
        ck_assert_ok(score_evolve_new(&e, 2));
        ck_assert_ok(score_control_new_tol(&c, 1e-4, 1e-4));
        ck_assert_ok(score_step_new(&st, score_step_type_get(SCORE_STEP_DOPRI5), 2));
        ck_assert_ok(score_evolve_init_ex(e, 0.0, 3, 4, t0));
        for (int k = 0; k < 10000 && rc == SCORE_OK; k++)
            rc = score_evolve_apply(e, c, st, y->sde, 0.05, 4, x, NULL);
        ck_assert_int_eq(rc, SCORE_DONE);
        put(&o, x, sizeof x);
        ck_assert_ok(score_evolve_get_h(e, 4, tt));
        put(&o, tt, sizeof tt);
        put_u64(&o, score_evolve_get_steps(e));
        put_u64(&o, score_evolve_get_failed_steps(e));
        put_u64(&o, score_evolve_get_nfe(e));
        score_step_free(st);
        /* fixed stochastic steps through evolve */
        ck_assert_ok(score_step_new(&st, score_step_type_get(SCORE_STEP_EULER_MARUYAMA), 2));
        ck_assert_ok(score_evolve_init_ex(e, 0.0, 5, 4, t0));
        for (int k = 1; k <= 4 && rc >= 0; k++)
            rc = score_evolve_apply_fixed(e, st, y->sde, 0.45 - 0.1 * k, 4, x, g);
        ck_assert_ok(rc);
        put(&o, x, sizeof x);
        put_u64(&o, score_evolve_get_steps(e));
        score_step_free(st);
        /* per-row times in one step call */
        ck_assert_ok(score_step_new(&st, score_step_type_get(SCORE_STEP_EULER_ANCESTRAL), 2));
        ck_assert_ok(score_step_apply_ex(st, y->sde, 11, 4, t0, tn, x, NULL, g, 3));
        put(&o, x, sizeof x);
        score_step_free(st);
        snprintf(name, sizeof name, "evolve/%s", sys_name[sy]);
        emit(r, name, rc, &o);
        score_control_free(c);
        score_evolve_free(e);
        score_rng_free(g);
    }
}

static void set_lk_i64(score_likelihood *lk, int id, int64_t v)
{
    ck_assert_ok(score_likelihood_set_i64(lk, id, v));
}

static void set_lk_f64(score_likelihood *lk, int id, double v)
{
    ck_assert_ok(score_likelihood_set_f64(lk, id, v));
}

static void likelihood_cases(recorder *r, sys *systems)
{
    enum { EXACT = SCORE_LIKELIHOOD_DIV_EXACT, HUTCH = SCORE_LIKELIHOOD_DIV_HUTCHINSON };
    static const int div[3][3] = {{EXACT, 1, 1},
                                  {HUTCH, SCORE_LIKELIHOOD_PROBE_RADEMACHER, 1},
                                  {HUTCH, SCORE_LIKELIHOOD_PROBE_GAUSSIAN, 3}};
    static const size_t rows[2][2] = {{0, 5}, {4, 3}};
    char name[96];
    for (int sy = 0; sy < SYS_COUNT; sy++) {
        for (int d = 0; d < 3; d++) {
            for (int tol = 0; tol <= 1; tol++) {
                score_likelihood *lk;
                ck_assert_ok(score_likelihood_new(&lk, 2));
                set_lk_i64(lk, SCORE_LIKELIHOOD_PARAM_DIVERGENCE, div[d][0]);
                set_lk_i64(lk, SCORE_LIKELIHOOD_PARAM_PROBE, div[d][1]);
                set_lk_i64(lk, SCORE_LIKELIHOOD_PARAM_N_PROBES, div[d][2]);
                if (tol) {
                    set_lk_f64(lk, SCORE_LIKELIHOOD_PARAM_RTOL, 1e-3);
                    set_lk_f64(lk, SCORE_LIKELIHOOD_PARAM_ATOL, 1e-4);
                    set_lk_f64(lk, SCORE_LIKELIHOOD_PARAM_DEQUANT_OFFSET, 8.0);
                    set_lk_f64(lk, SCORE_LIKELIHOOD_PARAM_H_INIT, 0.2);
                }
                for (int b = 0; b < 2; b++) {
                    size_t row0 = rows[b][0], n = rows[b][1];
                    float x[16], z[16];
                    double lp[8], bpd[8], delta[8];
                    score_rng *g = make_rng(5);
                    blob o = {.len = 0};
                    int rc;
                    for (size_t i = 0; i < 2 * n; i++)
                        x[i] = (float)(0.61 * (double)(i + 2 * row0) - 2.3);
                    rc = score_likelihood_logp_ex(lk, systems[sy].sde, row0, n, x, lp, bpd, z, delta,
                                                  g);
                    put(&o, lp, n * sizeof(double));
                    put(&o, bpd, n * sizeof(double));
                    put(&o, z, 2 * n * sizeof(float));
                    put(&o, delta, n * sizeof(double));
                    put_u64(&o, score_likelihood_get_nfe(lk));
                    put_u64(&o, score_likelihood_get_steps(lk));
                    snprintf(name, sizeof name, "logp/%s/div%d/tol%d/r%zu-%zu", sys_name[sy], d,
                             tol, row0, n);
                    emit(r, name, rc, &o);
                    score_rng_free(g);
                }
                score_likelihood_free(lk);
            }
        }
    }
}

static void all_cases(recorder *r)
{
    sys systems[SYS_COUNT];
    for (int i = 0; i < SYS_COUNT; i++)
        sys_make(&systems[i], i);
    sampler_cases(r, systems);
    evolve_cases(r, systems);
    likelihood_cases(r, systems);
    for (int i = 0; i < SYS_COUNT; i++)
        sys_free(&systems[i]);
}

/* ---- recorded table -------------------------------------------------------------------- */

static char *dup_str(const char *s)
{
    char *d = malloc(strlen(s) + 1);
    ck_assert_ptr_nonnull(d);
    return strcpy(d, s);
}

static void load(recorder *r, const char *path)
{
    FILE *f = fopen(path, "r");
    static char line[20000];
    size_t cap = 0;
    ck_assert_msg(f != NULL, "cannot open %s", path);
    while (fgets(line, sizeof line, f) != NULL) {
        char *sp = strchr(line, ' ');
        size_t len = strlen(line);
        if (strncmp(line, "# blas ", 7) == 0) {
            snprintf(r->blas, sizeof r->blas, "%.*s", (int)strcspn(line + 7, "\n"), line + 7);
            continue;
        }
        if (line[0] == '#' || sp == NULL)
            continue;
        if (len > 0 && line[len - 1] == '\n')
            line[len - 1] = '\0';
        *sp = '\0';
        if (r->count == cap) {
            cap = cap ? 2 * cap : 256;
            r->names = realloc(r->names, cap * sizeof *r->names);
            r->hex = realloc(r->hex, cap * sizeof *r->hex);
            ck_assert_ptr_nonnull(r->names);
            ck_assert_ptr_nonnull(r->hex);
        }
        r->names[r->count] = dup_str(line);
        r->hex[r->count] = dup_str(sp + 1);
        r->count++;
    }
    fclose(f);
}

START_TEST(bit_identical)
{
    recorder r = {0};
    const char *path = getenv("SCORE_RECORDED_OUTPUTS");
    ck_assert_msg(path != NULL, "SCORE_RECORDED_OUTPUTS is not set");
    load(&r, path);
    all_cases(&r);
    ck_assert_uint_gt(r.count, 300);
    ck_assert_uint_eq(r.cases, r.count);
    ck_assert_msg(r.mismatches == 0, "%zu of %zu outputs differ from the recorded values",
                  r.mismatches, r.cases);
    if (r.other_blas > 0) {
        fprintf(stderr, "recorded outputs: %zu MLP outputs not compared (recorded with %s, this "
                "build uses %s); %zu analytic-model outputs compared\n", r.other_blas,
                r.blas[0] ? r.blas : "an unnamed CBLAS", score_build_blas(),
                r.cases - r.other_blas);
        ck_assert_uint_gt(r.cases - r.other_blas, 300);
    }
    for (size_t i = 0; i < r.count; i++) {
        free(r.names[i]);
        free(r.hex[i]);
    }
    free(r.names);
    free(r.hex);
}
END_TEST

START_TEST(record)
{
    recorder r = {.record = 1};
    printf("# name status bytes (hex): outputs recorded by tests/test-recorded.c\n");
    printf("# blas %s\n", score_build_blas());
    all_cases(&r);
    fflush(stdout);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("recorded");
    TCase *tc = tcase_create("recorded");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, getenv("SCORE_RECORD") != NULL ? record : bit_identical);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
