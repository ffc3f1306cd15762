/* User metadata of models (set/get/count/key, limits, clone, save/load round trip, hostile
 * files) and model files of the analytic kinds: save -> load gives bit-identical outputs
 * (forward, jvp, trace, logp) for Gaussian (diagonal and full covariance) and GMM models under
 * VE, VP and sub-VP schedules (and the discrete user-array kinds), the schedule travels with
 * the model, and corrupt files are rejected with SCORE_E_FORMAT without a crash. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers/test-helpers.h"
#include "core/core-priv.h"
#include "io/safetensors-priv.h"

#define DIM 3
#define NR 5

static const float xs[NR * DIM] = {0.3f, -1.2f, 0.7f, 2.0f, 0.1f, -0.4f, -0.9f, 0.5f, 1.5f,
                                   0.0f, 0.0f,  0.0f, -3.0f, 2.5f, 1.0f};
static const double ts[NR] = {1e-3, 0.1, 0.37, 0.8, 1.0};

static score_model *make_mlp(void)
{
    score_model *m;
    ck_assert_ok(score_model_new_mlp(&m, DIM, 8, 2, SCORE_ACT_SILU, 7));
    return m;
}

static score_schedule *make_schedule(int kind)
{
    score_schedule *s;
    ck_assert_ok(score_schedule_new(&s, kind));
    if (kind == SCORE_SCHEDULE_VE) {
        ck_assert_ok(score_schedule_set_f64(s, SCORE_SCHEDULE_PARAM_SIGMA_MIN, 0.02));
        ck_assert_ok(score_schedule_set_f64(s, SCORE_SCHEDULE_PARAM_SIGMA_MAX, 7.5));
    } else if (kind == SCORE_SCHEDULE_VP || kind == SCORE_SCHEDULE_SUBVP) {
        ck_assert_ok(score_schedule_set_f64(s, SCORE_SCHEDULE_PARAM_BETA_MAX, 13.25));
        ck_assert_ok(score_schedule_set_f64(s, SCORE_SCHEDULE_PARAM_T_EPS, 1e-3));
    } else if (kind == SCORE_SCHEDULE_SIGMAS) {
        const double sig[4] = {0.05, 0.3, 1.1, 4.0};
        ck_assert_ok(score_schedule_set_array(s, 4, sig));
    } else if (kind == SCORE_SCHEDULE_BETAS) {
        const double b[5] = {0.01, 0.05, 0.1, 0.2, 0.3};
        ck_assert_ok(score_schedule_set_array(s, 5, b));
    }
    ck_assert_ok(score_schedule_set_f64(s, SCORE_SCHEDULE_PARAM_RHO, 5.5));
    return s;
}

/* 0: Gaussian diag, 1: Gaussian full, 2: GMM (tests/helpers/test-helpers.h) */
static score_model *make_analytic(int which, int sched_kind)
{
    score_schedule *s = make_schedule(sched_kind);
    score_model *m = test_analytic3(which, s);
    score_schedule_free(s);
    return m;
}

/* ---- metadata API ----------------------------------------------------------------------- */

START_TEST(metadata_basic)
{
    score_model *m = make_mlp(), *c;
    const char *v, *k;
    ck_assert_uint_eq(score_model_metadata_count(m), 0);
    ck_assert_ok(score_model_get_metadata(m, "absent", &v));
    ck_assert_ptr_null(v);
    ck_assert_ok(score_model_set_metadata(m, "zeta", "last"));
    ck_assert_ok(score_model_set_metadata(m, "alpha", "first"));
    ck_assert_ok(score_model_set_metadata(m, "mid", "x"));
    ck_assert_ok(score_model_set_metadata(m, "mid", "replaced \xc3\xa9\xe2\x82\xac"));
    ck_assert_uint_eq(score_model_metadata_count(m), 3);
    /* byte order of the keys */
    ck_assert_ok(score_model_metadata_key(m, 0, &k));
    ck_assert_str_eq(k, "alpha");
    ck_assert_ok(score_model_metadata_key(m, 1, &k));
    ck_assert_str_eq(k, "mid");
    ck_assert_ok(score_model_metadata_key(m, 2, &k));
    ck_assert_str_eq(k, "zeta");
    ck_assert_ok(score_model_get_metadata(m, "mid", &v));
    ck_assert_str_eq(v, "replaced \xc3\xa9\xe2\x82\xac");
    ck_assert_fails_with(score_model_set_metadata(m, "", "x"), SCORE_E_INVAL);

    /* clone copies (deeply) */
    ck_assert_ok(score_model_clone(&c, m));
    ck_assert_ok(score_model_set_metadata(m, "alpha", NULL));
    ck_assert_ok(score_model_set_metadata(m, "alpha", NULL)); /* absent: not an error */
    ck_assert_uint_eq(score_model_metadata_count(m), 2);
    ck_assert_uint_eq(score_model_metadata_count(c), 3);
    ck_assert_ok(score_model_get_metadata(c, "alpha", &v));
    ck_assert_str_eq(v, "first");
    ck_assert_ok(score_model_get_metadata(m, "alpha", &v));
    ck_assert_ptr_null(v);
    ck_assert_ok(score_model_set_metadata(c, "mid", ""));
    ck_assert_ok(score_model_get_metadata(m, "mid", &v));
    ck_assert_str_eq(v, "replaced \xc3\xa9\xe2\x82\xac");
    ck_assert_ok(score_model_get_metadata(c, "mid", &v));
    ck_assert_str_eq(v, "");
    score_model_free(c);
    score_model_free(m);
}
END_TEST

START_TEST(metadata_errors_and_bounds)
{
    score_model *m = make_mlp();
    const char *v = "sentinel", *k = "sentinel";
    char key[200], *big;
    /* NULLs */
    ck_assert_fails_with(score_model_set_metadata(NULL, "a", "b"), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_set_metadata(m, NULL, "b"), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_get_metadata(NULL, "a", &v), SCORE_E_INVAL);
    ck_assert_ptr_null(v);
    ck_assert_fails_with(score_model_get_metadata(m, NULL, &v), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_get_metadata(m, "a", NULL), SCORE_E_INVAL);
    ck_assert_uint_eq(score_model_metadata_count(NULL), 0);
    ck_assert_fails_with(score_model_metadata_key(NULL, 0, &k), SCORE_E_INVAL);
    ck_assert_ptr_null(k);
    ck_assert_fails_with(score_model_metadata_key(m, 0, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_metadata_key(m, 0, &k), SCORE_E_RANGE);
    /* keys: length 1..128, printable ASCII, no quote or backslash */
    ck_assert_fails_with(score_model_set_metadata(m, "", "b"), SCORE_E_INVAL);
    memset(key, 'k', 128);
    key[128] = '\0';
    ck_assert_ok(score_model_set_metadata(m, key, "ok"));
    key[128] = 'k';
    key[129] = '\0';
    ck_assert_fails_with(score_model_set_metadata(m, key, "b"), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_set_metadata(m, "a\"b", "b"), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_set_metadata(m, "a\\b", "b"), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_set_metadata(m, "a\nb", "b"), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_set_metadata(m, "a\x7f", "b"), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_set_metadata(m, "\xc3\xa9", "b"), SCORE_E_INVAL);
    ck_assert_ok(score_model_set_metadata(m, " ~!#$%&'()*+,-./09:;<=>?@AZ[]^_`az{|}", "b"));
    /* values: UTF-8, at most 65536 bytes */
    ck_assert_fails_with(score_model_set_metadata(m, "v", "\xff"), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_set_metadata(m, "v", "\xc3"), SCORE_E_INVAL);       /* truncated */
    ck_assert_fails_with(score_model_set_metadata(m, "v", "\xc0\xaf"), SCORE_E_INVAL);   /* overlong */
    ck_assert_fails_with(score_model_set_metadata(m, "v", "\xed\xa0\x80"), SCORE_E_INVAL); /* surrogate */
    ck_assert_fails_with(score_model_set_metadata(m, "v", "\xf4\x90\x80\x80"), SCORE_E_INVAL); /* > U+10FFFF */
    ck_assert_ok(score_model_set_metadata(m, "v", "\xf0\x9f\x98\x80 \"quoted\" \\ \n\t"));
    big = malloc(65536 + 2);
    memset(big, 'x', 65536);
    big[65536] = '\0';
    ck_assert_ok(score_model_set_metadata(m, "big", big));
    big[65536] = 'x';
    big[65537] = '\0';
    ck_assert_fails_with(score_model_set_metadata(m, "big2", big), SCORE_E_INVAL);
    /* a 2-byte character straddling the limit */
    memset(big, 'x', 65535);
    big[65535] = '\xc3';
    big[65536] = '\xa9';
    big[65537] = '\0';
    ck_assert_fails_with(score_model_set_metadata(m, "big3", big), SCORE_E_INVAL);
    free(big);
    ck_assert_ok(score_model_get_metadata(m, "big3", &v));
    ck_assert_ptr_null(v);
    /* at most 256 entries */
    for (int i = 0; score_model_metadata_count(m) < 256; i++) {
        snprintf(key, sizeof key, "fill%03d", i);
        ck_assert_ok(score_model_set_metadata(m, key, "f"));
    }
    ck_assert_fails_with(score_model_set_metadata(m, "one-too-many", "f"), SCORE_E_RANGE);
    ck_assert_ok(score_model_set_metadata(m, "fill000", "replacing is fine"));
    ck_assert_ok(score_model_metadata_key(m, 255, &k));
    ck_assert_fails_with(score_model_metadata_key(m, 256, &k), SCORE_E_RANGE);
    score_model_free(m);
}
END_TEST

START_TEST(metadata_file_round_trip)
{
    score_model *m = make_mlp(), *l, *c;
    void *buf;
    size_t len;
    const char *v;
    score__st_reader *r;
    char *big = malloc(65537);
    memset(big, 'y', 65536);
    big[65536] = '\0';
    ck_assert_ok(score_model_set_metadata(m, "score.schedule", "vp"));
    ck_assert_ok(score_model_set_metadata(m, "tricky", "\"\\\n\x01 \xe2\x82\xac"));
    ck_assert_ok(score_model_set_metadata(m, "big", big));
    /* a configuring model keeps its metadata through the prepared-copy save path */
    ck_assert_ok(score_model_save_buffer(m, &buf, &len));
    ck_assert_ok(score__st_reader_open("test", &r, buf, len, 0));
    ck_assert_str_eq(score__st_meta(r, "user.score.schedule"), "vp");
    ck_assert_ptr_null(score__st_meta(r, "score.schedule"));
    score__st_reader_free(r);
    ck_assert_ok(score_model_load_buffer(&l, buf, len));
    score_free(buf);
    ck_assert_uint_eq(score_model_metadata_count(l), 3);
    ck_assert_ok(score_model_get_metadata(l, "score.schedule", &v));
    ck_assert_str_eq(v, "vp");
    ck_assert_ok(score_model_get_metadata(l, "tricky", &v));
    ck_assert_str_eq(v, "\"\\\n\x01 \xe2\x82\xac");
    ck_assert_ok(score_model_get_metadata(l, "big", &v));
    ck_assert_str_eq(v, big);
    /* library keys are not user metadata */
    ck_assert_ok(score_model_get_metadata(l, "kind", &v));
    ck_assert_ptr_null(v);
    ck_assert_ok(score_model_clone(&c, l));
    ck_assert_ok(score_model_get_metadata(c, "big", &v));
    ck_assert_str_eq(v, big);
    score_model_free(c);
    score_model_free(l);
    score_model_free(m);
    free(big);
}
END_TEST

/* A file with the given extra metadata entry (written through the container API on top of a
 * valid model file's content). */
static int load_with_extra(const score_model *m, const char *key, const char *value)
{
    void *buf, *buf2;
    size_t len, len2;
    score__st_reader *r;
    score__st_writer *w;
    score_model *l = NULL;
    int rc;
    ck_assert_ok(score_model_save_buffer(m, &buf, &len));
    ck_assert_ok(score__st_reader_open("test", &r, buf, len, 1));
    ck_assert_ok(score__st_writer_new("test", &w));
    for (size_t i = 0; i < score__st_meta_count(r); i++) {
        const char *k, *v;
        ck_assert_ok(score__st_meta_at(r, i, &k, &v));
        ck_assert_ok(score__st_writer_meta("test", w, k, v));
    }
    if (key != NULL)
        ck_assert_ok(score__st_writer_meta("test", w, key, value));
    for (size_t i = 0; i < score__st_count(r); i++) {
        const score__st_tensor *t = score__st_tensor_at(r, i);
        void *d = malloc(t->nbytes ? t->nbytes : 1);
        ck_assert_ok(score__st_get("test", r, t->name, t->dtype, t->ndim, t->shape, d));
        ck_assert_ok(score__st_writer_add("test", w, t->name, t->dtype, t->ndim, t->shape, d));
        free(d);
    }
    ck_assert_ok(score__st_writer_finish("test", w, &buf2, &len2));
    score__st_writer_free(w);
    score__st_reader_free(r);
    rc = score_model_load_buffer(&l, buf2, len2);
    if (rc != SCORE_OK)
        ck_assert_ptr_null(l);
    score_model_free(l);
    score__free(buf2);
    return rc;
}

START_TEST(metadata_hostile_files)
{
    score_model *m = make_mlp();
    char key[300], *big = malloc(65538);
    memset(big, 'z', 65537);
    big[65537] = '\0';
    ck_assert_ok(load_with_extra(m, NULL, NULL));
    ck_assert_ok(load_with_extra(m, "user.fine", "ok"));
    ck_assert_ok(load_with_extra(m, "other.ignored", "\xce\xbb")); /* not ours: ignored */
    /* ... but the header must be UTF-8 JSON (safetensors), whoever's entry it is */
    ck_assert_fails_with(load_with_extra(m, "other.ignored", "\xff"), SCORE_E_FORMAT);
    ck_assert_fails_with(load_with_extra(m, "user.", "x"), SCORE_E_FORMAT);
    ck_assert_fails_with(load_with_extra(m, "user.a\x7f", "x"), SCORE_E_FORMAT);
    ck_assert_fails_with(load_with_extra(m, "user.a\"b", "x"), SCORE_E_FORMAT);
    ck_assert_fails_with(load_with_extra(m, "user.v", "\xc0\xaf"), SCORE_E_FORMAT);
    ck_assert_fails_with(load_with_extra(m, "user.v", big), SCORE_E_FORMAT);
    memset(key, 'q', sizeof key);
    memcpy(key, "user.", 5);
    key[5 + 129] = '\0';
    ck_assert_fails_with(load_with_extra(m, key, "x"), SCORE_E_FORMAT);
    /* more than 256 entries */
    for (int i = 0; i < 256; i++) {
        snprintf(key, sizeof key, "k%03d", i);
        ck_assert_ok(score_model_set_metadata(m, key, "v"));
    }
    ck_assert_ok(load_with_extra(m, NULL, NULL));
    ck_assert_fails_with(load_with_extra(m, "user.k999", "x"), SCORE_E_FORMAT);
    free(big);
    score_model_free(m);
}
END_TEST

/* ---- analytic save / load ---------------------------------------------------------------- */

static const int sched_kinds[] = {SCORE_SCHEDULE_VE, SCORE_SCHEDULE_VP, SCORE_SCHEDULE_SUBVP};

static void check_same_outputs(score_model *a, score_model *b)
{
    float fa[NR * DIM], fb[NR * DIM], ja[NR * DIM], jb[NR * DIM];
    double ta[NR], tb[NR], la[NR], lb[NR];
    const float *v = xs; /* a tangent per row */
    ck_assert_ok(score_model_forward(a, NR, xs, ts, fa));
    ck_assert_ok(score_model_forward(b, NR, xs, ts, fb));
    ck_assert_mem_eq(fa, fb, sizeof fa);
    ck_assert_ok(score_model_jvp(a, NR, xs, ts, 1, v, ja, NULL));
    ck_assert_ok(score_model_jvp(b, NR, xs, ts, 1, v, jb, NULL));
    ck_assert_mem_eq(ja, jb, sizeof ja);
    ck_assert_ok(score_model_trace(a, NR, xs, ts, ta, NULL));
    ck_assert_ok(score_model_trace(b, NR, xs, ts, tb, NULL));
    ck_assert_mem_eq(ta, tb, sizeof ta);
    ck_assert_ok(score_model_analytic_logp(a, NR, ts, xs, la));
    ck_assert_ok(score_model_analytic_logp(b, NR, ts, xs, lb));
    ck_assert_mem_eq(la, lb, sizeof la);
}

/* loop index: model variant (3) x schedule kind (3) */
START_TEST(analytic_round_trip_bitwise)
{
    int which = _i / 3, sk = sched_kinds[_i % 3];
    score_model *m = make_analytic(which, sk), *l, *l2;
    void *buf, *buf2;
    size_t len, len2;
    ck_assert_uint_ne(score_model_capabilities(m) & SCORE_MODEL_CAP_SAVE, 0);
    ck_assert_ok(score_model_set_metadata(m, "note", "oracle"));
    ck_assert_ok(score_model_save_buffer(m, &buf, &len));
    ck_assert_ok(score_model_load_buffer(&l, buf, len));
    ck_assert_int_eq(score_model_kind(l), score_model_kind(m));
    ck_assert_uint_eq(score_model_dim(l), DIM);
    check_same_outputs(m, l);
    {
        const char *v;
        ck_assert_ok(score_model_get_metadata(l, "note", &v));
        ck_assert_str_eq(v, "oracle");
    }
    /* saving the loaded model reproduces the file byte for byte (schedule included) */
    ck_assert_ok(score_model_save_buffer(l, &buf2, &len2));
    ck_assert_uint_eq(len, len2);
    ck_assert_mem_eq(buf, buf2, len);
    /* the loaded schedule is the saved one: a time beyond T = 1 is refused */
    {
        float out[DIM];
        const double tbad = 1.5;
        ck_assert_fails_with(score_model_forward(l, 1, xs, &tbad, out), SCORE_E_RANGE);
    }
    ck_assert_ok(score_model_clone(&l2, l));
    check_same_outputs(m, l2);
    score_model_free(l2);
    score_free(buf);
    score_free(buf2);
    score_model_free(l);
    score_model_free(m);
}
END_TEST

/* The discrete user-array schedules travel too (sigmas exactly; betas to within rounding). */
START_TEST(analytic_user_array_schedules)
{
    const int kinds[2] = {SCORE_SCHEDULE_SIGMAS, SCORE_SCHEDULE_BETAS};
    for (int i = 0; i < 2; i++) {
        score_model *m = make_analytic(2, kinds[i]), *l;
        void *buf;
        size_t len;
        float fa[NR * DIM], fb[NR * DIM];
        ck_assert_ok(score_model_save_buffer(m, &buf, &len));
        ck_assert_ok(score_model_load_buffer(&l, buf, len));
        ck_assert_ok(score_model_forward(m, NR, xs, ts, fa));
        ck_assert_ok(score_model_forward(l, NR, xs, ts, fb));
        if (kinds[i] == SCORE_SCHEDULE_SIGMAS) {
            ck_assert_mem_eq(fa, fb, sizeof fa);
        } else {
            /* betas recovered from alpha_bar ratios carry a few ulps of rounding; the scores
             * (O(10) here) then agree to ~1e-12 relative in double, far below float32's
             * 6e-8: allow 1e-5 relative */
            for (int j = 0; j < NR * DIM; j++)
                ck_assert_float_eq_tol(fa[j], fb[j], 1e-5f * (1.0f + fabsf(fa[j])));
        }
        score_free(buf);
        score_model_free(l);
        score_model_free(m);
    }
}
END_TEST

/* Re-emits a valid analytic file with one metadata entry replaced (value NULL = removed) or
 * one F64 tensor element overwritten. */
static int load_modified(const score_model *m, const char *mkey, const char *mval,
                         const char *tname, size_t tidx, double tval)
{
    void *buf, *buf2;
    size_t len, len2;
    score__st_reader *r;
    score__st_writer *w;
    score_model *l = NULL;
    int rc;
    ck_assert_ok(score_model_save_buffer(m, &buf, &len));
    ck_assert_ok(score__st_reader_open("test", &r, buf, len, 1));
    ck_assert_ok(score__st_writer_new("test", &w));
    for (size_t i = 0; i < score__st_meta_count(r); i++) {
        const char *k, *v;
        ck_assert_ok(score__st_meta_at(r, i, &k, &v));
        if (mkey != NULL && strcmp(k, mkey) == 0) {
            if (mval == NULL)
                continue;
            v = mval;
        }
        ck_assert_ok(score__st_writer_meta("test", w, k, v));
    }
    if (mkey != NULL && mval != NULL && score__st_meta(r, mkey) == NULL)
        ck_assert_ok(score__st_writer_meta("test", w, mkey, mval));
    for (size_t i = 0; i < score__st_count(r); i++) {
        const score__st_tensor *t = score__st_tensor_at(r, i);
        void *d = malloc(t->nbytes ? t->nbytes : 1);
        ck_assert_ok(score__st_get("test", r, t->name, t->dtype, t->ndim, t->shape, d));
        if (tname != NULL && strcmp(t->name, tname) == 0 && tidx < t->count)
            ((double *)d)[tidx] = tval;
        ck_assert_ok(score__st_writer_add("test", w, t->name, t->dtype, t->ndim, t->shape, d));
        free(d);
    }
    ck_assert_ok(score__st_writer_finish("test", w, &buf2, &len2));
    score__st_writer_free(w);
    score__st_reader_free(r);
    rc = score_model_load_buffer(&l, buf2, len2);
    if (rc == SCORE_OK) {
        float out[NR * DIM];
        ck_assert_ok(score_model_forward(l, NR, xs, ts, out));
    } else {
        ck_assert_ptr_null(l);
    }
    score_model_free(l);
    score__free(buf2);
    return rc;
}

START_TEST(analytic_corrupt_files)
{
    score_model *g = make_analytic(1, SCORE_SCHEDULE_VP), *k = make_analytic(2, SCORE_SCHEDULE_VE);
    ck_assert_ok(load_modified(g, NULL, NULL, NULL, 0, 0));
    ck_assert_ok(load_modified(k, NULL, NULL, NULL, 0, 0));
    /* metadata */
    ck_assert_fails_with(load_modified(g, "dim", "0", NULL, 0, 0), SCORE_E_FORMAT);
    ck_assert_fails_with(load_modified(g, "dim", "4", NULL, 0, 0), SCORE_E_FORMAT);
    ck_assert_fails_with(load_modified(g, "dim", "99999999999999999999999", NULL, 0, 0), SCORE_E_FORMAT);
    ck_assert_fails_with(load_modified(g, "dim", "-3", NULL, 0, 0), SCORE_E_FORMAT);
    ck_assert_fails_with(load_modified(g, "dim", NULL, NULL, 0, 0), SCORE_E_FORMAT);
    ck_assert_fails_with(load_modified(g, "components", "2", NULL, 0, 0), SCORE_E_FORMAT);
    ck_assert_fails_with(load_modified(g, "covariance", "diag", NULL, 0, 0), SCORE_E_FORMAT);
    ck_assert_fails_with(load_modified(g, "covariance", "weird", NULL, 0, 0), SCORE_E_FORMAT);
    ck_assert_fails_with(load_modified(k, "components", "4", NULL, 0, 0), SCORE_E_FORMAT);
    ck_assert_fails_with(load_modified(k, "components", "2", NULL, 0, 0), SCORE_E_FORMAT);
    ck_assert_fails_with(load_modified(k, "kind", "gaussian", NULL, 0, 0), SCORE_E_FORMAT);
    /* schedule */
    ck_assert_fails_with(load_modified(g, "schedule.kind", NULL, NULL, 0, 0), SCORE_E_FORMAT);
    ck_assert_fails_with(load_modified(g, "schedule.kind", "77", NULL, 0, 0), SCORE_E_FORMAT);
    ck_assert_fails_with(load_modified(g, "schedule.kind", "vp", NULL, 0, 0), SCORE_E_FORMAT);
    ck_assert_fails_with(load_modified(g, "schedule.kind", "8", NULL, 0, 0), SCORE_E_FORMAT); /* no array */
    ck_assert_fails_with(load_modified(g, "schedule.beta_max", "nan", NULL, 0, 0), SCORE_E_FORMAT);
    ck_assert_fails_with(load_modified(g, "schedule.beta_max", "1e400", NULL, 0, 0), SCORE_E_FORMAT);
    ck_assert_fails_with(load_modified(g, "schedule.beta_max", "-1", NULL, 0, 0), SCORE_E_FORMAT);
    ck_assert_fails_with(load_modified(g, "schedule.beta_max", "0.01", NULL, 0, 0), SCORE_E_FORMAT); /* < beta_min */
    ck_assert_fails_with(load_modified(g, "schedule.beta_max", "12abc", NULL, 0, 0), SCORE_E_FORMAT);
    ck_assert_fails_with(load_modified(g, "schedule.sigma_min", "0.1", NULL, 0, 0), SCORE_E_FORMAT); /* not VP */
    ck_assert_fails_with(load_modified(g, "schedule.bogus", "1", NULL, 0, 0), SCORE_E_FORMAT);
    ck_assert_fails_with(load_modified(g, "schedule.num_levels", "1.5", NULL, 0, 0), SCORE_E_FORMAT);
    ck_assert_fails_with(load_modified(g, "schedule.num_levels", "0", NULL, 0, 0), SCORE_E_FORMAT);
    /* tensors */
    ck_assert_fails_with(load_modified(g, NULL, NULL, "var", 1, 0.0), SCORE_E_FORMAT);
    ck_assert_fails_with(load_modified(g, NULL, NULL, "var", 1, -2.0), SCORE_E_FORMAT);
    ck_assert_fails_with(load_modified(g, NULL, NULL, "mean", 2, NAN), SCORE_E_FORMAT);
    ck_assert_fails_with(load_modified(g, NULL, NULL, "basis", 4, INFINITY), SCORE_E_FORMAT);
    ck_assert_fails_with(load_modified(g, NULL, NULL, "basis", 4, 3.0), SCORE_E_FORMAT);
    ck_assert_fails_with(load_modified(k, NULL, NULL, "log_weight", 0, 0.5), SCORE_E_FORMAT);
    ck_assert_fails_with(load_modified(k, NULL, NULL, "cum_weight", 2, 0.9), SCORE_E_FORMAT);
    ck_assert_fails_with(load_modified(k, NULL, NULL, "cum_weight", 1, 0.0), SCORE_E_FORMAT);
    score_model_free(g);
    score_model_free(k);
}
END_TEST

/* Every truncation and a sweep of single-bit flips: SCORE_OK (a working model) or
 * SCORE_E_FORMAT, never a crash (meaningful under ASan). */
START_TEST(analytic_truncations_and_flips)
{
    score_model *m = make_analytic(1, SCORE_SCHEDULE_SUBVP), *l;
    void *buf;
    size_t len, n_ok = 0, n_fmt = 0;
    float out[NR * DIM];
    ck_assert_ok(score_model_set_metadata(m, "k", "v"));
    ck_assert_ok(score_model_save_buffer(m, &buf, &len));
    for (size_t cut = 0; cut < len; cut++) {
        unsigned char *p = malloc(cut ? cut : 1);
        memcpy(p, buf, cut);
        ck_assert_fails_with(score_model_load_buffer(&l, p, cut), SCORE_E_FORMAT);
        free(p);
    }
    for (size_t pos = 0; pos < len; pos++) {
        unsigned char *p = malloc(len);
        int rc;
        memcpy(p, buf, len);
        p[pos] ^= (unsigned char)(1u << (pos % 8));
        rc = score_model_load_buffer(&l, p, len);
        ck_assert_msg(rc == SCORE_OK || rc == SCORE_E_FORMAT, "flip at %zu gave %d", pos, rc);
        if (rc == SCORE_OK) {
            int frc;
            n_ok++;
            /* a flipped value may still load (e.g. a mean); evaluation must then be safe */
            frc = score_model_dim(l) == DIM ? score_model_forward(l, NR, xs, ts, out) : SCORE_OK;
            ck_assert(frc == SCORE_OK || frc == SCORE_E_RANGE || frc == SCORE_E_NUMERIC);
            score_model_free(l);
        } else {
            n_fmt++;
        }
        free(p);
    }
    ck_assert_uint_gt(n_ok, 0);
    ck_assert_uint_gt(n_fmt, 0);
    score_free(buf);
    score_model_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("model-meta");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, metadata_basic);
    tcase_add_test(tc, metadata_errors_and_bounds);
    tcase_add_test(tc, metadata_file_round_trip);
    tcase_add_test(tc, metadata_hostile_files);
    tcase_add_loop_test(tc, analytic_round_trip_bitwise, 0, 9);
    tcase_add_test(tc, analytic_user_array_schedules);
    tcase_add_test(tc, analytic_corrupt_files);
    tcase_add_test(tc, analytic_truncations_and_flips);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
