/* The generative model (genmodel.h): files written by the `score` tool of libscore 0.1 load
 * with the same meaning (samples and likelihoods bit for bit against the tool's recorded
 * outputs in tests/data), save -> load round trips, the loader's refusals, the transform in
 * both directions, dequantized likelihoods, compatibility checks with their messages, and
 * guidance. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "genmodel/genmodel-priv.h"
#include "helpers/test-helpers.h"
#include "io/safetensors-priv.h"
#include "model/model-priv.h"

static char path_buf[1024];

/* A file of tests/data (SCORE_TEST_DATA is that folder). */
static const char *data_path(const char *name)
{
    const char *dir = getenv("SCORE_TEST_DATA");
    ck_assert_ptr_nonnull(dir);
    snprintf(path_buf, sizeof path_buf, "%s/%s", dir, name);
    return path_buf;
}

/* Reads a CSV with a header line into floats (at most cap values); returns the count. */
static size_t read_csv_path(const char *path, float *v, size_t cap)
{
    FILE *f = fopen(path, "r");
    char line[512];
    size_t n = 0;
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f)); /* header */
    while (fgets(line, sizeof line, f) != NULL) {
        char *p = line, *end;
        for (;;) {
            double x = strtod(p, &end);
            if (end == p)
                break;
            ck_assert_uint_lt(n, cap);
            v[n++] = (float)x;
            p = end;
            if (*p != ',')
                break;
            p++;
        }
    }
    fclose(f);
    return n;
}

static size_t read_csv(const char *name, float *v, size_t cap)
{
    return read_csv_path(data_path(name), v, cap);
}

/* The sampler the tool builds for `score sample --sampler NAME --steps 10` (grid and SNR). */
static score_sampler *tool_sampler(const char *step, int grid, size_t dim)
{
    score_sampler *s = NULL;
    ck_assert_ok(score_sampler_new(&s, score_step_type_find(step), NULL, dim));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_NUM_STEPS, 10));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_GRID, grid));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_FINAL_DENOISE, 1));
    ck_assert_ok(score_sampler_set_f64(s, SCORE_SAMPLER_PARAM_SNR, 0.16));
    return s;
}

/* The files and outputs of the 0.1 tool (tests/data/cli-0.1-*) were written with OpenBLAS.
 * With another CBLAS (-Dblas=blis) the network's products round differently, so those values
 * are compared to 1e-5 relative instead of bit for bit; a change of meaning (units, schedule,
 * parameterization) moves them by far more. Outputs of this build's own tool are always
 * compared bit for bit. */
/* Samples of the 0.1 tool's files: its sampler evaluated the network on the call's rows as
 * they came, so the BLAS rounded the rows of a small call (6 rows: a remainder of the GEMM
 * kernels' row groups) other than those of a larger one. The samplers now evaluate an MLP in
 * row panels aligned to the global row number (batch-split invariance), which rounds these
 * rows as a batch of any size does: the 0.1 tool's samples are compared to 1e-5 relative, as
 * with another CBLAS. So are its likelihoods: the likelihood's trace is evaluated in the same
 * panels, and the adaptive solve (rtol = atol = 1e-5) turns the last-bit differences into
 * differences of the order of its tolerance (measured: at most 4.4e-6 relative). */
static int fixture_samples_exact(void)
{
    return 0;
}

static int same_value(int exact, float got, float want)
{
    if (exact)
        return memcmp(&got, &want, sizeof got) == 0;
    return fabs((double)got - (double)want) <= 1e-5 * fmax(1.0, fabs((double)want));
}

static void check_samples_exact(score_genmodel *gm, const char *step, int grid, const char *csv,
                                int exact)
{
    float want[256], got[256];
    size_t n = read_csv_path(csv, want, 256), dim = score_genmodel_dim(gm);
    ck_assert_uint_gt(n, 0);
    score_sampler *smp = tool_sampler(step, grid, dim);
    score_sde *sde = NULL;
    score_rng *rng = NULL;
    ck_assert_ok(score_genmodel_sde(gm, &sde));
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 7));
    ck_assert_ok(score_genmodel_sample(gm, smp, sde, 0, n / dim, got, rng, NULL, NULL));
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(same_value(exact, got[i], want[i]),
                      "%s: value %zu is %.9g, the tool wrote %.9g", csv, i, got[i], want[i]);
    score_rng_free(rng);
    score_sde_free(sde);
    score_sampler_free(smp);
}

static void check_samples_path(score_genmodel *gm, const char *step, int grid, const char *csv)
{
    check_samples_exact(gm, step, grid, csv, 1);
}

static void check_samples(score_genmodel *gm, const char *step, int grid, const char *csv)
{
    check_samples_exact(gm, step, grid, data_path(csv), fixture_samples_exact());
}

START_TEST(old_file_same_meaning)
{
    score_genmodel *gm = NULL;
    double shift[2], scale[2], bm;
    int64_t out;
    ck_assert_ok(score_genmodel_load(&gm, data_path("cli-0.1-vp.safetensors")));
    ck_assert_uint_eq(score_genmodel_dim(gm), 2);
    ck_assert_ok(score_genmodel_get_i64(gm, SCORE_SDE_PARAM_OUTPUT, &out));
    ck_assert_int_eq(out, SCORE_OUTPUT_EPS);
    ck_assert_ok(score_schedule_get_f64(score_genmodel_schedule(gm),
                                        SCORE_SCHEDULE_PARAM_BETA_MAX, &bm));
    ck_assert_double_eq(bm, 15.0);
    ck_assert_int_eq(score_genmodel_get_transform(gm, shift, scale), 1);
    ck_assert_double_eq(shift[0], strtod("4.78761168", NULL));
    ck_assert_double_eq(scale[1], strtod("0.499932117", NULL));
    ck_assert_double_eq(score_genmodel_fixed_t(gm), 0.0);
    /* the tool's meaning entries are gone from the user metadata, its training record stays */
    const char *v = NULL;
    ck_assert_ok(score_model_get_metadata(score_genmodel_model(gm), "score.schedule", &v));
    ck_assert_ptr_null(v);
    ck_assert_ok(score_model_get_metadata(score_genmodel_model(gm), "score.train.loss", &v));
    ck_assert_str_eq(v, "sde");
    check_samples(gm, "euler", SCORE_GRID_KARRAS, "cli-0.1-vp-euler.csv");
    check_samples(gm, "em", SCORE_GRID_UNIFORM_T, "cli-0.1-vp-em.csv");
    score_genmodel_free(gm);
}
END_TEST

START_TEST(old_file_likelihood)
{
    score_genmodel *gm = NULL;
    score_sde *sde = NULL;
    score_likelihood *lk = NULL;
    score_rng *rng = NULL;
    float x[16], want[16];
    double lp[8], bpd[8];
    size_t nx = read_csv("cli-0.1-rows.csv", x, 16), nw = read_csv("cli-0.1-vp-loglik.csv", want, 16);
    ck_assert_uint_eq(nx, 10);
    ck_assert_uint_eq(nw, 10);
    ck_assert_ok(score_genmodel_load(&gm, data_path("cli-0.1-vp.safetensors")));
    ck_assert_ok(score_genmodel_sde(gm, &sde));
    ck_assert_ok(score_likelihood_new(&lk, 2));
    ck_assert_ok(score_likelihood_set_i64(lk, SCORE_LIKELIHOOD_PARAM_DIVERGENCE,
                                          SCORE_LIKELIHOOD_DIV_EXACT));
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 0));
    ck_assert_ok(score_genmodel_logp(gm, lk, sde, 0, 5, x, lp, bpd, rng));
    for (size_t i = 0; i < 5; i++) {
        float l = (float)lp[i], b = (float)bpd[i];
        ck_assert_msg(same_value(fixture_samples_exact(), l, want[2 * i]), "row %zu: %.9g vs %.9g",
                      i, l, want[2 * i]);
        ck_assert_msg(same_value(fixture_samples_exact(), b, want[2 * i + 1]), "row %zu bpd", i);
    }
    score_rng_free(rng);
    score_likelihood_free(lk);
    score_sde_free(sde);
    score_genmodel_free(gm);
}
END_TEST

START_TEST(old_file_fixed_time)
{
    score_genmodel *gm = NULL;
    score_sde *sde = NULL;
    score_step *st = NULL;
    score_rng *rng = NULL;
    score_sampler *smp = tool_sampler("euler", SCORE_GRID_KARRAS, 2);
    score_likelihood *lk = NULL;
    float want[16], got[16];
    double lp[1];
    size_t n = read_csv("cli-0.1-dsm-langevin.csv", want, 16);
    ck_assert_ok(score_genmodel_load(&gm, data_path("cli-0.1-dsm.safetensors")));
    ck_assert_double_eq(score_genmodel_fixed_t(gm), strtod("0.27034552830322406", NULL));
    ck_assert_int_eq(score_genmodel_get_transform(gm, NULL, NULL), 0);
    ck_assert_ok(score_genmodel_sde(gm, &sde));
    ck_assert_ok(score_step_new(&st, score_step_type_get(SCORE_STEP_LANGEVIN), 2));
    ck_assert_ok(score_step_set_f64(st, SCORE_STEP_PARAM_SNR, 0.16));
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 7));
    ck_assert_ok(score_genmodel_sample_langevin(gm, st, sde, 10, 0, n / 2, got, rng));
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(same_value(fixture_samples_exact(), got[i], want[i]), "value %zu: %.9g vs %.9g",
                      i, got[i], want[i]);
    /* a one-level model has neither a sampler path nor a likelihood */
    ck_assert_fails_with(score_genmodel_sample(gm, smp, sde, 0, 1, got, rng, NULL, NULL),
                         SCORE_E_UNSUPPORTED);
    ck_assert_ok(score_likelihood_new(&lk, 2));
    ck_assert_fails_with(score_genmodel_logp(gm, lk, sde, 0, 1, got, lp, NULL, rng),
                         SCORE_E_UNSUPPORTED);
    score_likelihood_free(lk);
    score_sampler_free(smp);
    score_rng_free(rng);
    score_step_free(st);
    score_sde_free(sde);
    score_genmodel_free(gm);
}
END_TEST

/* A small MLP generative model on a VP schedule with beta_max bm and output kind out. */
static score_genmodel *make_gm(size_t dim, double bm, int out, uint64_t seed)
{
    score_model *m = NULL;
    score_schedule *s = NULL;
    score_sde *sde = NULL;
    score_genmodel *gm = NULL;
    ck_assert_ok(score_model_new_mlp(&m, dim, 16, 2, SCORE_ACT_SILU, seed));
    ck_assert_ok(score_model_prepare(m));
    ck_assert_ok(score_schedule_new(&s, SCORE_SCHEDULE_VP));
    ck_assert_ok(score_schedule_set_f64(s, SCORE_SCHEDULE_PARAM_BETA_MAX, bm));
    ck_assert_ok(score_sde_new(&sde, s, m, out));
    ck_assert_ok(score_genmodel_new(&gm, sde));
    score_sde_free(sde);
    score_schedule_free(s);
    score_model_free(m); /* the generative model holds its own copy */
    return gm;
}

START_TEST(plain_network_refused)
{
    score_model *m = NULL;
    score_genmodel *gm = (score_genmodel *)1;
    void *buf = NULL;
    size_t len = 0;
    ck_assert_ok(score_model_new_mlp(&m, 2, 8, 1, SCORE_ACT_SILU, 1));
    ck_assert_ok(score_model_save_buffer(m, &buf, &len));
    ck_assert_fails_with(score_genmodel_load_buffer(&gm, buf, len), SCORE_E_FORMAT);
    ck_assert_ptr_null(gm);
    ck_assert_ptr_nonnull(strstr(score_last_error_message(), "plain network file"));
    ck_assert_ptr_nonnull(strstr(score_last_error_message(), "score_genmodel_new()"));
    score_free(buf);
    score_model_free(m);
}
END_TEST

START_TEST(round_trip)
{
    score_genmodel *a = make_gm(3, 12.5, SCORE_OUTPUT_V, 5), *b = NULL;
    const double shift[3] = {1.5, -2.25, 1e-3}, scale[3] = {0.1, 3.0, 1.0 / 3.0};
    const char *cols[3] = {"height", "weight", "\xc3\xa2ge"};
    double sh[3], sc[3], bin;
    int kind;
    void *buf = NULL, *buf2 = NULL;
    size_t len = 0, len2 = 0;
    ck_assert_ok(score_genmodel_set_transform(a, shift, scale));
    ck_assert_ok(score_genmodel_set_names(a, SCORE_GENMODEL_NAMES_COLUMNS, 3, cols));
    ck_assert_ok(score_genmodel_set_dequant(a, SCORE_GENMODEL_DEQUANT_UNIFORM, 0.5));
    ck_assert_ok(score_model_set_metadata(score_genmodel_model(a), "note", "kept"));
    ck_assert_ok(score_genmodel_save_buffer(a, &buf, &len));
    ck_assert_ok(score_genmodel_load_buffer(&b, buf, len));
    ck_assert_int_eq(score_genmodel_get_transform(b, sh, sc), 1);
    ck_assert_mem_eq(sh, shift, sizeof sh);
    ck_assert_mem_eq(sc, scale, sizeof sc);
    ck_assert_str_eq(score_genmodel_name(b, SCORE_GENMODEL_NAMES_COLUMNS, 2), "\xc3\xa2ge");
    ck_assert_ptr_null(score_genmodel_name(b, SCORE_GENMODEL_NAMES_COLUMNS, 3));
    ck_assert_ptr_null(score_genmodel_name(b, SCORE_GENMODEL_NAMES_LABELS, 0));
    ck_assert_ok(score_genmodel_get_dequant(b, &kind, &bin));
    ck_assert_int_eq(kind, SCORE_GENMODEL_DEQUANT_UNIFORM);
    ck_assert_double_eq(bin, 0.5);
    ck_assert_ok(score_genmodel_check_compatible(a, b));
    /* saving the loaded model gives the same bytes */
    ck_assert_ok(score_genmodel_save_buffer(b, &buf2, &len2));
    ck_assert_uint_eq(len, len2);
    ck_assert_mem_eq(buf, buf2, len);
    /* the network alone is still readable by score_model_load_buffer() */
    score_model *m = NULL;
    const char *v = NULL;
    ck_assert_ok(score_model_load_buffer(&m, buf, len));
    ck_assert_ok(score_model_get_metadata(m, "note", &v));
    ck_assert_str_eq(v, "kept");
    score_model_free(m);
    score_free(buf);
    score_free(buf2);
    score_genmodel_free(a);
    score_genmodel_free(b);
}
END_TEST

START_TEST(units)
{
    score_genmodel *gm = make_gm(2, 20, SCORE_OUTPUT_EPS, 1);
    const double shift[2] = {4.0, -1.0}, scale[2] = {2.0, 0.25};
    const float x[4] = {5.0f, -1.5f, 4.0f, 0.0f};
    float m[4], back[4];
    ck_assert_ok(score_genmodel_encode(gm, 2, x, m)); /* identity */
    ck_assert_mem_eq(m, x, sizeof m);
    ck_assert_ok(score_genmodel_set_transform(gm, shift, scale));
    ck_assert_ok(score_genmodel_encode(gm, 2, x, m));
    ck_assert_float_eq(m[0], 0.5f);
    ck_assert_float_eq(m[1], -2.0f);
    ck_assert_float_eq(m[2], 0.0f);
    ck_assert_float_eq(m[3], 4.0f);
    ck_assert_ok(score_genmodel_decode(gm, 2, m, back));
    ck_assert_mem_eq(back, x, sizeof back);
    const double bad_scale[2] = {1.0, 0.0};
    ck_assert_fails_with(score_genmodel_set_transform(gm, shift, bad_scale), SCORE_E_RANGE);
    ck_assert_fails_with(score_genmodel_set_transform(gm, shift, NULL), SCORE_E_INVAL);
    ck_assert_ok(score_genmodel_set_transform(gm, NULL, NULL));
    ck_assert_int_eq(score_genmodel_get_transform(gm, NULL, NULL), 0);
    ck_assert_fails_with(score_genmodel_set_fixed_t(gm, 2.0), SCORE_E_RANGE);
    ck_assert_ok(score_genmodel_set_fixed_t(gm, 0.5));
    ck_assert_double_eq(score_genmodel_fixed_t(gm), 0.5);
    const char *dup[2] = {"a", "a"}, *ctl[2] = {"a", "b\n"};
    ck_assert_ok(score_genmodel_set_names(gm, SCORE_GENMODEL_NAMES_COLUMNS, 2, dup));
    ck_assert_fails_with(score_genmodel_set_names(gm, SCORE_GENMODEL_NAMES_COLUMNS, 2, ctl),
                         SCORE_E_INVAL);
    ck_assert_fails_with(score_genmodel_set_names(gm, SCORE_GENMODEL_NAMES_COLUMNS, 1, dup),
                         SCORE_E_SHAPE);
    ck_assert_fails_with(score_genmodel_set_names(gm, SCORE_GENMODEL_NAMES_LABELS, 2, dup),
                         SCORE_E_SHAPE);
    score_genmodel_free(gm);
}
END_TEST

/* log p_data = log p_model(encode(x)) - sum log scale, and dequantization adds dim log(bin)
 * at x + bin u. */
START_TEST(likelihood_units)
{
    score_genmodel *gm = make_gm(2, 20, SCORE_OUTPUT_EPS, 2);
    score_sde *sde = NULL;
    score_likelihood *lk = NULL;
    score_rng *rng = NULL, *r2 = NULL;
    const double shift[2] = {3.0, -1.0}, scale[2] = {2.0, 0.5};
    float x[4] = {3.5f, -1.25f, 2.0f, 0.0f}, xm[4], xq[4];
    double lp_id[2], lp[2], bpd[2], lp_q[2], u[4];
    ck_assert_ok(score_genmodel_sde(gm, &sde));
    ck_assert_ok(score_likelihood_new(&lk, 2));
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 9));
    ck_assert_ok(score_genmodel_set_transform(gm, shift, scale));
    ck_assert_ok(score_genmodel_encode(gm, 2, x, xm));
    ck_assert_ok(score_genmodel_logp(gm, lk, sde, 0, 2, x, lp, bpd, rng));
    ck_assert_ok(score_genmodel_set_transform(gm, NULL, NULL));
    ck_assert_ok(score_genmodel_logp(gm, lk, sde, 0, 2, xm, lp_id, NULL, rng));
    for (int i = 0; i < 2; i++) {
        ck_assert_double_eq(lp[i], lp_id[i] - (log(2.0) + log(0.5)));
        ck_assert_double_eq(bpd[i], -lp[i] / (2 * log(2.0)));
    }
    /* dequantization, identity transform: the offsets are the flipped stream's uniforms */
    ck_assert_ok(score_genmodel_set_dequant(gm, SCORE_GENMODEL_DEQUANT_UNIFORM, 0.25));
    ck_assert_ok(score_genmodel_logp(gm, lk, sde, 3, 2, x, lp_q, NULL, rng));
    ck_assert_fails_with(score_genmodel_logp(gm, lk, sde, 3, 2, x, lp_q, NULL, NULL),
                         SCORE_E_INVAL);
    ck_assert_ok(score_rng_clone(&r2, rng));
    ck_assert_ok(score_rng_set_stream(r2, (uint64_t)1 << 31));
    ck_assert_ok(score_rng_fill_uniform_f64(r2, 3, 2, 0, 2, u));
    for (int k = 0; k < 4; k++) {
        ck_assert(u[k] > 0 && u[k] < 1);
        xq[k] = (float)((double)x[k] + 0.25 * u[k]);
    }
    ck_assert_ok(score_genmodel_set_dequant(gm, SCORE_GENMODEL_DEQUANT_NONE, 1));
    ck_assert_ok(score_genmodel_logp(gm, lk, sde, 3, 2, xq, lp_id, NULL, rng));
    for (int i = 0; i < 2; i++)
        ck_assert_double_eq(lp_q[i], lp_id[i] + 2 * log(0.25));
    score_rng_free(r2);
    score_rng_free(rng);
    score_likelihood_free(lk);
    score_sde_free(sde);
    score_genmodel_free(gm);
}
END_TEST

static void expect_difference(const score_genmodel *a, const score_genmodel *b, const char *what)
{
    score_genmodel *c = (score_genmodel *)1;
    ck_assert_fails_with(score_genmodel_check_compatible(a, b), SCORE_E_INVAL);
    ck_assert_msg(strstr(score_last_error_message(), what) != NULL, "'%s' not in '%s'", what,
                  score_last_error_message());
    ck_assert_fails_with(score_genmodel_new_cfg(&c, a, b, 1.0), SCORE_E_INVAL);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(score_last_error_message(), what) != NULL, "cfg: '%s' not in '%s'",
                  what, score_last_error_message());
}

START_TEST(compatibility)
{
    score_genmodel *a = make_gm(2, 20, SCORE_OUTPUT_EPS, 1);
    score_genmodel *b = make_gm(2, 20, SCORE_OUTPUT_EPS, 2);
    score_genmodel *c3 = make_gm(3, 20, SCORE_OUTPUT_EPS, 2);
    score_genmodel *bm = make_gm(2, 19.5, SCORE_OUTPUT_EPS, 2);
    score_genmodel *ok = make_gm(2, 20, SCORE_OUTPUT_X0, 2);
    const double sh[2] = {1, 2}, sc[2] = {1, 2}, sh2[2] = {1, 2.5}, sc2[2] = {1, 2.5};
    ck_assert_ok(score_genmodel_check_compatible(a, b));
    expect_difference(a, c3, "dimension (2 vs 3)");
    expect_difference(a, bm, "schedule parameter beta_max (20 vs 19.5)");
    expect_difference(a, ok, "output kind");
    ck_assert_ok(score_genmodel_set_transform(a, sh, sc));
    expect_difference(a, b, "data transform (standardized vs identity)");
    ck_assert_ok(score_genmodel_set_transform(b, sh2, sc));
    expect_difference(a, b, "shift of dimension 1 (2 vs 2.5)");
    ck_assert_ok(score_genmodel_set_transform(b, sh, sc2));
    expect_difference(a, b, "scale of dimension 1 (2 vs 2.5)");
    ck_assert_ok(score_genmodel_set_transform(b, sh, sc));
    ck_assert_ok(score_genmodel_set_fixed_t(b, 0.5));
    expect_difference(a, b, "fixed time");
    ck_assert_ok(score_genmodel_set_fixed_t(b, 0));
    ck_assert_ok(score_genmodel_check_compatible(a, b));
    /* the condition spec (set here through the internals: the MLP of this version has no
     * label input yet, so the spec is what a conditional network would report) */
    const char *la[3] = {"cat", "dog", "owl"}, *lb[3] = {"cat", "dog", "emu"};
    a->num_classes = b->num_classes = 3;
    ck_assert_ok(score_genmodel_set_names(a, SCORE_GENMODEL_NAMES_LABELS, 3, la));
    expect_difference(a, b, "label names (named vs none)");
    ck_assert_ok(score_genmodel_set_names(b, SCORE_GENMODEL_NAMES_LABELS, 3, lb));
    expect_difference(a, b, "the name of label 2 (owl vs emu)");
    ck_assert_ok(score_genmodel_set_names(b, SCORE_GENMODEL_NAMES_LABELS, 3, la));
    ck_assert_ok(score_genmodel_check_compatible(a, b));
    b->num_classes = 4;
    expect_difference(a, b, "number of classes (3 vs 4)");
    b->num_classes = 3;
    b->context_dim = 2;
    expect_difference(a, b, "context dimension (0 vs 2)");
    score_genmodel_free(a);
    score_genmodel_free(b);
    score_genmodel_free(c3);
    score_genmodel_free(bm);
    score_genmodel_free(ok);
}
END_TEST

/* Guidance: w = 0 samples the conditional model bit for bit; w = 1 differs; the combination
 * cannot be saved. */
START_TEST(guidance)
{
    score_genmodel *a = make_gm(2, 20, SCORE_OUTPUT_EPS, 1);
    score_genmodel *b = make_gm(2, 20, SCORE_OUTPUT_EPS, 2), *g0 = NULL, *g1 = NULL;
    score_sampler *smp = tool_sampler("heun", SCORE_GRID_KARRAS, 2);
    score_sde *sa = NULL, *s0 = NULL, *s1 = NULL;
    score_rng *rng = NULL;
    float xa[8], x0[8], x1[8];
    void *buf = NULL;
    size_t len = 0;
    const double sh[2] = {10, -10}, sc[2] = {3, 0.5};
    ck_assert_ok(score_genmodel_set_transform(a, sh, sc));
    ck_assert_ok(score_genmodel_set_transform(b, sh, sc));
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 4));
    ck_assert_ok(score_genmodel_new_cfg(&g0, a, b, 0.0));
    ck_assert_fails_with(score_genmodel_new_cfg(&g1, a, b, NAN), SCORE_E_RANGE);
    ck_assert_ptr_null(g1);
    ck_assert_ok(score_genmodel_new_cfg(&g1, a, b, 1.0));
    ck_assert_ok(score_genmodel_sde(a, &sa));
    ck_assert_ok(score_genmodel_sde(g0, &s0));
    ck_assert_ok(score_genmodel_sde(g1, &s1));
    ck_assert_ok(score_genmodel_sample(a, smp, sa, 0, 4, xa, rng, NULL, NULL));
    ck_assert_ok(score_genmodel_sample(g0, smp, s0, 0, 4, x0, rng, NULL, NULL));
    ck_assert_ok(score_genmodel_sample(g1, smp, s1, 0, 4, x1, rng, NULL, NULL));
    ck_assert_mem_eq(xa, x0, sizeof xa);
    ck_assert_int_ne(memcmp(xa, x1, sizeof xa), 0);
    /* an sde of another generative model is refused */
    ck_assert_fails_with(score_genmodel_sample(g1, smp, sa, 0, 4, x1, rng, NULL, NULL),
                         SCORE_E_INVAL);
    ck_assert_fails_with(score_genmodel_save_buffer(g1, &buf, &len), SCORE_E_UNSUPPORTED);
    score_sde_free(sa);
    score_sde_free(s0);
    score_sde_free(s1);
    score_rng_free(rng);
    score_sampler_free(smp);
    score_genmodel_free(g0);
    score_genmodel_free(g1);
    score_genmodel_free(a);
    score_genmodel_free(b);
}
END_TEST

/* A generative model file with the network of m and the entries of a correct file, where
 * entry `key` is replaced by `value` (NULL: left out; a new key: added). */
static void write_variant(const score_genmodel *gm, const char *key, const char *value,
                          void **buf, size_t *len)
{
    void *good = NULL;
    size_t glen = 0;
    score__st_reader *r = NULL;
    score__st_writer *w = NULL;
    int seen = 0;
    ck_assert_ok(score_genmodel_save_buffer(gm, &good, &glen));
    ck_assert_ok(score__st_reader_open("t", &r, good, glen, 0));
    ck_assert_ok(score__st_writer_new("t", &w));
    ck_assert_ok(score__model_save_to_writer("t", score_genmodel_model(gm), w));
    for (size_t i = 0; i < score__st_meta_count(r); i++) {
        const char *k, *v;
        ck_assert_ok(score__st_meta_at(r, i, &k, &v));
        if (strncmp(k, "genmodel.", 9) != 0)
            continue;
        if (strcmp(k, key) == 0) {
            seen = 1;
            if (value == NULL)
                continue;
            v = value;
        }
        ck_assert_ok(score__st_writer_meta("t", w, k, v));
    }
    if (!seen && value != NULL)
        ck_assert_ok(score__st_writer_meta("t", w, key, value));
    ck_assert_ok(score__st_writer_finish("t", w, buf, len));
    score__st_writer_free(w);
    score__st_reader_free(r);
    score_free(good);
}

START_TEST(hostile_entries)
{
    static const struct { const char *key, *value, *msg; } cases[] = {
        {"genmodel.version", "2", "version"},
        {"genmodel.output", NULL, "'genmodel.output' is missing"},
        {"genmodel.output", "7", "range"},
        {"genmodel.cond", "1.0", "range"},
        {"genmodel.cond_scale", "0", "sde settings"},
        {"genmodel.sigma_data", "nan", "range"},
        {"genmodel.fixed_t", "5", "neither 0 nor a time"},
        {"genmodel.shift", NULL, "without"},
        {"genmodel.scale", "1,-2", "scale 1"},
        {"genmodel.scale", "1,2,3", "comma-separated"},
        {"genmodel.scale", "1, 2", "comma-separated"},
        {"genmodel.num_classes", "3", "condition spec"},
        {"genmodel.dequant_bin", "0", "bin width"},
        {"genmodel.schedule.beta_max", NULL, "beta_max"},
        {"genmodel.schedule.kind", "8", "schedule"},
        {"genmodel.column.1", NULL, "all 2 entries or none"},
        {"genmodel.column.2", "c", "index beyond"},
        {"genmodel.column.01", "c", "unknown metadata entry"},
        {"genmodel.label.0", "c", "index beyond"},
        {"genmodel.column.0", "a\x01", "control character"},
        {"genmodel.extra", "1", "unknown metadata entry"},
        {"genmodel.schedule.nonsense", "1", "nonsense"},
    };
    score_genmodel *gm = make_gm(2, 20, SCORE_OUTPUT_EPS, 3), *out = NULL;
    const double sh[2] = {1, 2}, sc[2] = {1, 2};
    const char *cols[2] = {"a", "b"};
    ck_assert_ok(score_genmodel_set_transform(gm, sh, sc));
    ck_assert_ok(score_genmodel_set_names(gm, SCORE_GENMODEL_NAMES_COLUMNS, 2, cols));
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        void *buf = NULL;
        size_t len = 0;
        write_variant(gm, cases[i].key, cases[i].value, &buf, &len);
        score_last_error_clear();
        int rc = score_genmodel_load_buffer(&out, buf, len);
        ck_assert_msg(rc == SCORE_E_FORMAT, "case %zu (%s = %s): status %d", i, cases[i].key,
                      cases[i].value ? cases[i].value : "(absent)", rc);
        ck_assert_ptr_null(out);
        ck_assert_msg(strstr(score_last_error_message(), cases[i].msg) != NULL,
                      "case %zu: '%s' not in '%s'", i, cases[i].msg, score_last_error_message());
        score_free(buf);
    }
    /* the unchanged entries load */
    {
        void *buf = NULL;
        size_t len = 0;
        write_variant(gm, "genmodel.none", NULL, &buf, &len);
        ck_assert_ok(score_genmodel_load_buffer(&out, buf, len));
        score_genmodel_free(out);
        score_free(buf);
    }
    score_genmodel_free(gm);
}
END_TEST

START_TEST(file_round_trip)
{
    score_genmodel *a = make_gm(2, 20, SCORE_OUTPUT_EPS, 8), *b = NULL;
    char path[512];
    const char *base = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/score-genmodel-%d.safetensors", base && base[0] ? base : "/tmp",
             (int)getpid());
    ck_assert_ok(score_genmodel_save(a, path));
    ck_assert_ok(score_genmodel_load(&b, path));
    ck_assert_ok(score_genmodel_check_compatible(a, b));
    remove(path);
    score_genmodel_free(b);
    ck_assert_fails_with(score_genmodel_load(&b, path), SCORE_E_IO);
    ck_assert_fails_with(score_genmodel_save(a, ""), SCORE_E_INVAL);
    score_genmodel_free(a);
    score_genmodel_free(b);
}
END_TEST

/* Files of the 0.1 tool are untrusted too: each bad user.score.* entry is refused. */
START_TEST(old_file_hostile_entries)
{
    static const struct { const char *key, *value, *msg; } cases[] = {
        {"score.schedule", "vpp", "names no schedule kind"},
        {"score.schedule", "sigmas", "names no schedule kind"},
        {"score.schedule.beta_max", "abc", "is not a number"},
        {"score.schedule.beta_max", "-1", "is out of range"},
        {"score.schedule.beta_min", "30", "inconsistent"},
        {"score.schedule.nonsense", "1", "unknown schedule parameter"},
        {"score.output", "noise", "unknown output or conditioning kind"},
        {"score.cond", "time", "unknown output or conditioning kind"},
        {"score.cond_scale", "abc", "cond_scale' is not a number"},
        {"score.sigma_data", "0", "sde settings"},
        {"score.fixed_t", "7", "neither 0 nor a time"},
        {"score.data_shift", NULL, "without"},
        {"score.data_scale", "1,0", "scale 1"},
        {"score.data_scale", "1", "comma-separated"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        score_model *m = NULL;
        score_genmodel *gm = (score_genmodel *)1;
        void *buf = NULL;
        size_t len = 0;
        ck_assert_ok(score_model_load(&m, data_path("cli-0.1-vp.safetensors")));
        ck_assert_ok(score_model_set_metadata(m, cases[i].key, cases[i].value));
        ck_assert_ok(score_model_save_buffer(m, &buf, &len));
        score_last_error_clear();
        ck_assert_msg(score_genmodel_load_buffer(&gm, buf, len) == SCORE_E_FORMAT, "case %zu", i);
        ck_assert_ptr_null(gm);
        ck_assert_msg(strstr(score_last_error_message(), cases[i].msg) != NULL,
                      "case %zu: '%s' not in '%s'", i, cases[i].msg, score_last_error_message());
        score_free(buf);
        score_model_free(m);
    }
}
END_TEST

/* Runs a shell command line, asserting success. */
static void run(const char *cmd)
{
    int st = system(cmd);
    ck_assert_msg(st == 0, "'%s' failed (%d)", cmd, st);
}

/* The acceptance test of the generative model: a model trained by the `score` tool (path in
 * $SCORE_CLI), loaded here, gives samples bit-identical to `score sample` (same seed, sampler
 * and steps: a deterministic and a stochastic sampler) and the same likelihoods as
 * `score loglik` (as the tool writes them, rounded to float). */
START_TEST(cli_trained_model)
{
    const char *cli = getenv("SCORE_CLI"), *base = getenv("TMPDIR");
    char dir[256], cmd[2048], path[512];
    score_genmodel *gm = NULL;
    if (cli == NULL || cli[0] == '\0')
        return; /* run outside meson */
    snprintf(dir, sizeof dir, "%s/score-gm-XXXXXX", base && base[0] ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(cmd, sizeof cmd, "'%s' train --data '%s' -o '%s/m.safetensors' --hidden 16 "
             "--depth 2 --steps 60 --batch 32 --seed 2 -q", cli, data_path("cli-0.1-train.csv"),
             dir);
    run(cmd);
    snprintf(cmd, sizeof cmd, "'%s' sample '%s/m.safetensors' --sampler euler --steps 10 -n 50 "
             "--seed 7 -o '%s/euler.csv' -q && '%s' sample '%s/m.safetensors' --sampler em "
             "--steps 10 -n 50 --seed 7 -o '%s/em.csv' -q && '%s' loglik '%s/m.safetensors' '%s' "
             "--exact -o '%s/ll.csv' -q", cli, dir, dir, cli, dir, dir, cli, dir,
             data_path("cli-0.1-rows.csv"), dir);
    run(cmd);
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    ck_assert_ok(score_genmodel_load(&gm, path));
    ck_assert_str_eq(score_genmodel_name(gm, SCORE_GENMODEL_NAMES_COLUMNS, 0), "a");
    snprintf(path, sizeof path, "%s/euler.csv", dir);
    check_samples_path(gm, "euler", SCORE_GRID_KARRAS, path);
    remove(path);
    snprintf(path, sizeof path, "%s/em.csv", dir);
    check_samples_path(gm, "em", SCORE_GRID_UNIFORM_T, path);
    remove(path);
    {
        score_sde *sde = NULL;
        score_likelihood *lk = NULL;
        score_rng *rng = NULL;
        float x[16], want[16];
        double lp[8], bpd[8];
        ck_assert_uint_eq(read_csv("cli-0.1-rows.csv", x, 16), 10);
        snprintf(path, sizeof path, "%s/ll.csv", dir);
        ck_assert_uint_eq(read_csv_path(path, want, 16), 10);
        remove(path);
        ck_assert_ok(score_genmodel_sde(gm, &sde));
        ck_assert_ok(score_likelihood_new(&lk, 2));
        ck_assert_ok(score_likelihood_set_i64(lk, SCORE_LIKELIHOOD_PARAM_DIVERGENCE,
                                              SCORE_LIKELIHOOD_DIV_EXACT));
        ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 0));
        ck_assert_ok(score_genmodel_logp(gm, lk, sde, 0, 5, x, lp, bpd, rng));
        for (size_t i = 0; i < 5; i++) {
            float l = (float)lp[i], b = (float)bpd[i];
            ck_assert_msg(memcmp(&l, &want[2 * i], sizeof l) == 0, "row %zu: %.9g vs %.9g", i,
                          l, want[2 * i]);
            ck_assert(memcmp(&b, &want[2 * i + 1], sizeof b) == 0);
        }
        score_rng_free(rng);
        score_likelihood_free(lk);
        score_sde_free(sde);
    }
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    remove(path);
    rmdir(dir);
    score_genmodel_free(gm);
}
END_TEST

static Suite *genmodel_suite(void)
{
    Suite *s = suite_create("genmodel");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, old_file_same_meaning);
    tcase_add_test(tc, old_file_likelihood);
    tcase_add_test(tc, old_file_fixed_time);
    tcase_add_test(tc, old_file_hostile_entries);
    tcase_add_test(tc, plain_network_refused);
    tcase_add_test(tc, round_trip);
    tcase_add_test(tc, units);
    tcase_add_test(tc, likelihood_units);
    tcase_add_test(tc, compatibility);
    tcase_add_test(tc, guidance);
    tcase_add_test(tc, hostile_entries);
    tcase_add_test(tc, file_round_trip);
    if (getenv("SCORE_CLI") != NULL && getenv("SCORE_CLI")[0] != '\0')
        tcase_add_test(tc, cli_trained_model);
    else
        fprintf(stderr, "genmodel: SCORE_CLI is not set (a build with -Dcli=false, or a run "
                "outside meson): the comparison with the tool is not run\n");
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(genmodel_suite());
}
