/* Model files (safetensors): save -> load round trips bit for bit, a hand-written file in the
 * documented layout computes the expected function, every truncation and a sweep of single-bit
 * flips are rejected or load a working model, corrupt headers are rejected with
 * SCORE_E_FORMAT, file errors give SCORE_E_IO, and the internal container API used by
 * checkpoints (metadata, F32/I64/U8 tensors) round-trips. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers/test-helpers.h"
#include "io/safetensors-priv.h"
#include "model/mlp-priv.h"

/* A scratch directory per test process. */
static char tmpdir[256];

static void make_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/score-io-XXXXXX", base && base[0] ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    char p[512];
    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
        remove(p);
    }
    closedir(d);
    rmdir(tmpdir);
}

static size_t count_dir_entries(void)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    size_t n = 0;
    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static score_model *make_model(int emb, int residual, int act, uint64_t seed)
{
    score_model *m;
    size_t widths[3] = {8, 8, 6};
    ck_assert_ok(score_model_new(&m, SCORE_MODEL_MLP, 3));
    ck_assert_ok(score_model_set_hidden_widths(m, 3, widths));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_EMBEDDING, emb));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_EMBED_DIM, 6));
    ck_assert_ok(score_model_set_f64(m, SCORE_MODEL_PARAM_FOURIER_SCALE, 0.1));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_RESIDUAL, residual));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_ACTIVATION, act));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_SEED, (int64_t)seed));
    ck_assert_ok(score_model_prepare(m));
    return m;
}

enum { NR = 5, DIM = 3 };
static const float xs[NR * DIM] = {0.1f, -0.5f, 1.2f, 2.0f, 0.0f, -1.0f, -0.3f, 0.7f, 0.2f,
                                    1.5f, -1.5f, 0.5f, 0.0f, 0.0f, 0.0f};
static const double cs[NR] = {0.01, 0.3, 0.5, 0.99, 1.0};

/* Every output of two models must agree bit for bit. */
static void assert_same_function(score_model *a, score_model *b)
{
    float oa[NR * DIM], ob[NR * DIM], ja[NR * DIM * 2], jb[NR * DIM * 2], v[NR * DIM * 2];
    double ta[NR], tb[NR];
    for (size_t i = 0; i < NR * DIM * 2; i++)
        v[i] = (float)((int)(i % 7) - 3) * 0.25f;
    ck_assert_ok(score_model_forward(a, NR, xs, cs, oa));
    ck_assert_ok(score_model_forward(b, NR, xs, cs, ob));
    ck_assert_mem_eq(oa, ob, sizeof oa);
    ck_assert_ok(score_model_trace(a, NR, xs, cs, ta, NULL));
    ck_assert_ok(score_model_trace(b, NR, xs, cs, tb, NULL));
    ck_assert_mem_eq(ta, tb, sizeof ta);
    ck_assert_ok(score_model_jvp(a, NR, xs, cs, 2, v, ja, NULL));
    ck_assert_ok(score_model_jvp(b, NR, xs, cs, 2, v, jb, NULL));
    ck_assert_mem_eq(ja, jb, sizeof ja);
}

static void assert_same_settings(score_model *a, score_model *b)
{
    static const int i64s[] = {SCORE_MODEL_PARAM_HIDDEN, SCORE_MODEL_PARAM_DEPTH,
                               SCORE_MODEL_PARAM_ACTIVATION, SCORE_MODEL_PARAM_EMBEDDING,
                               SCORE_MODEL_PARAM_EMBED_DIM, SCORE_MODEL_PARAM_RESIDUAL,
                               SCORE_MODEL_PARAM_SEED};
    int64_t va, vb;
    double fa, fb;
    size_t np = score_model_param_count(a);
    float *pa = malloc(np * sizeof *pa), *pb = malloc(np * sizeof *pb);
    ck_assert_int_eq(score_model_kind(b), SCORE_MODEL_MLP);
    ck_assert_uint_eq(score_model_dim(a), score_model_dim(b));
    for (size_t i = 0; i < sizeof i64s / sizeof i64s[0]; i++) {
        ck_assert_ok(score_model_get_i64(a, i64s[i], &va));
        ck_assert_ok(score_model_get_i64(b, i64s[i], &vb));
        ck_assert_int_eq(va, vb);
    }
    ck_assert_ok(score_model_get_f64(a, SCORE_MODEL_PARAM_FOURIER_SCALE, &fa));
    ck_assert_ok(score_model_get_f64(b, SCORE_MODEL_PARAM_FOURIER_SCALE, &fb));
    ck_assert_double_eq(fa, fb);
    ck_assert_uint_eq(score_model_param_count(b), np);
    ck_assert_ok(score_model_params_get(a, pa, np));
    ck_assert_ok(score_model_params_get(b, pb, np));
    ck_assert_mem_eq(pa, pb, np * sizeof *pa);
    free(pa);
    free(pb);
}

/* _i: embedding (0..2) x residual (0..1) */
START_TEST(roundtrip_bitwise)
{
    score_model *m = make_model(_i % 3, _i / 3, 1 + _i % 5, 12345 + (uint64_t)_i), *l, *l2;
    void *buf, *buf2;
    size_t len, len2;
    char path[300];
    ck_assert_ok(score_model_save_buffer(m, &buf, &len));
    ck_assert_ok(score_model_load_buffer(&l, buf, len));
    assert_same_settings(m, l);
    assert_same_function(m, l);
    /* saving the loaded model gives the same bytes */
    ck_assert_ok(score_model_save_buffer(l, &buf2, &len2));
    ck_assert_uint_eq(len, len2);
    ck_assert_mem_eq(buf, buf2, len);
    score_free(buf2);
    /* through a file; overwriting an existing file */
    make_tmpdir();
    snprintf(path, sizeof path, "%s/model.safetensors", tmpdir);
    ck_assert_ok(score_model_save(l, path));
    ck_assert_ok(score_model_save(m, path));
    ck_assert_ok(score_model_load(&l2, path));
    assert_same_settings(m, l2);
    assert_same_function(m, l2);
    ck_assert_uint_eq(count_dir_entries(), 1); /* no temporary file left behind */
    remove_tmpdir();
    score_free(buf);
    score_model_free(l);
    score_model_free(l2);
    score_model_free(m);
}
END_TEST

/* ---- hand-written files ------------------------------------------------------------------ */

/* A tiny network written by hand in the documented layout: dim 1, one hidden layer of 2 tanh
 * units, embedding "none" (h_0 = [x, c]). */
static const char good_header[] =
    "{\"__metadata__\":{\"format\":\"libscore\",\"version\":\"1\",\"kind\":\"mlp\",\"dim\":\"1\","
    "\"widths\":\"2\",\"activation\":\"tanh\",\"embedding\":\"none\",\"embed_dim\":\"2\","
    "\"fourier_scale\":\"16\",\"residual\":\"1\",\"seed\":\"0\"},"
    "\"layers.0.weight\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
    "\"layers.0.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]},"
    "\"layers.1.weight\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[24,32]},"
    "\"layers.1.bias\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[32,36]}}";
/* W1 = [[0.5, -1], [2, 0.25]], b1 = [0.1, -0.2], W2 = [[1.5, -0.5]], b2 = [0.3] */
static const float good_data[9] = {0.5f, -1.0f, 2.0f, 0.25f, 0.1f, -0.2f, 1.5f, -0.5f, 0.3f};

/* header (string, with an 8-byte length prefix) followed by data bytes; hlen_override != 0
 * replaces the length field. */
static unsigned char *make_file(const char *header, const void *data, size_t dlen,
                                uint64_t hlen_override, size_t *len_out)
{
    size_t h = strlen(header);
    unsigned char *b = malloc(8 + h + dlen + 1);
    uint64_t hl = hlen_override ? hlen_override : h;
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(hl >> (8 * i));
    memcpy(b + 8, header, h);
    if (dlen)
        memcpy(b + 8 + h, data, dlen);
    *len_out = 8 + h + dlen;
    return b;
}

/* Little-endian bytes of good_data (the test runs on little- and big-endian hosts alike). */
static void good_bytes(unsigned char *out, size_t n_floats, const float *vals)
{
    for (size_t i = 0; i < n_floats; i++) {
        uint32_t u;
        memcpy(&u, &vals[i], 4);
        for (int k = 0; k < 4; k++)
            out[4 * i + k] = (unsigned char)(u >> (8 * k));
    }
}

static char *replace(const char *s, const char *from, const char *to)
{
    const char *p = strstr(s, from);
    char *r;
    ck_assert_ptr_nonnull(p);
    r = malloc(strlen(s) - strlen(from) + strlen(to) + 1);
    memcpy(r, s, (size_t)(p - s));
    strcpy(r + (p - s), to);
    strcat(r, p + strlen(from));
    return r;
}

START_TEST(handwritten_file_layout)
{
    unsigned char data[36], *f;
    size_t len;
    score_model *m;
    float x[2] = {0.7f, -1.3f}, out[2];
    double c[2] = {0.25, 0.9};
    good_bytes(data, 9, good_data);
    f = make_file(good_header, data, sizeof data, 0, &len);
    ck_assert_ok(score_model_load_buffer(&m, f, len));
    ck_assert_ok(score_model_forward(m, 2, x, c, out));
    for (int b = 0; b < 2; b++) {
        double h0 = tanh(0.5 * x[b] - 1.0 * (float)c[b] + 0.1);
        double h1 = tanh(2.0 * x[b] + 0.25 * (float)c[b] - 0.2);
        /* float32 forward of a 2-term network: relative error ~1e-7 */
        ck_assert_double_eq_tol(out[b], 1.5 * h0 - 0.5 * h1 + 0.3, 1e-6);
    }
    score_model_free(m);
    free(f);
}
END_TEST

/* Each variant must fail with SCORE_E_FORMAT and a message. */
START_TEST(corrupt_headers_rejected)
{
    static const char *const subst[][2] = {
        /* JSON structure */
        {"{\"__metadata__\"", "[\"__metadata__\""},
        {"\"seed\":\"0\"}", "\"seed\":0}"},                           /* non-string metadata */
        {"\"format\":\"libscore\"", "\"format\":\"other\""},
        {"\"version\":\"1\"", "\"version\":\"2\""},
        {"\"kind\":\"mlp\"", "\"kind\":\"gaussian-x\""},
        {"\"kind\":\"mlp\",", ""},
        {"\"kind\":\"mlp\"", "\"kind\":\"callback\""},
        {"\"format\":\"libscore\",", "\"format\":\"libscore\",\"format\":\"libscore\","}, /* duplicate key */
        /* architecture */
        {"\"dim\":\"1\"", "\"dim\":\"0\""},
        {"\"dim\":\"1\"", "\"dim\":\"-1\""},
        {"\"dim\":\"1\"", "\"dim\":\"1x\""},
        {"\"dim\":\"1\"", "\"dim\":\"99999999999999999999999\""},
        {"\"widths\":\"2\"", "\"widths\":\"2,\""},
        {"\"widths\":\"2\"", "\"widths\":\"\""},
        {"\"widths\":\"2\"", "\"widths\":\"0\""},
        {"\"widths\":\"2\"", "\"widths\":\"70000\""},
        {"\"widths\":\"2\"", "\"widths\":\"2,2\""},
        {"\"activation\":\"tanh\"", "\"activation\":\"relu\""},
        {"\"activation\":\"tanh\"", "\"activation\":\"identity\""},
        {"\"embedding\":\"none\"", "\"embedding\":\"fourier\""},
        {"\"embedding\":\"none\"", "\"embedding\":\"sinus\""},
        {"\"embed_dim\":\"2\"", "\"embed_dim\":\"1\""},
        {"\"fourier_scale\":\"16\"", "\"fourier_scale\":\"nan\""},
        {"\"fourier_scale\":\"16\"", "\"fourier_scale\":\"-1\""},
        {"\"fourier_scale\":\"16\"", "\"fourier_scale\":\"16 x\""},
        {"\"residual\":\"1\"", "\"residual\":\"2\""},
        {"\"seed\":\"0\"", "\"seed\":\"4611686018427387905\""},
        /* tensors */
        {"\"dtype\":\"F32\",\"shape\":[2,2]", "\"dtype\":\"F64\",\"shape\":[2,2]"},
        {"\"dtype\":\"F32\",\"shape\":[2,2]", "\"dtype\":\"Q7\",\"shape\":[2,2]"},
        {"\"shape\":[2,2],\"data_offsets\":[0,16]", "\"shape\":[4],\"data_offsets\":[0,16]"},
        {"\"shape\":[2,2],\"data_offsets\":[0,16]", "\"shape\":[2,1],\"data_offsets\":[0,16]"},
        {"\"shape\":[2,2],\"data_offsets\":[0,16]", "\"shape\":[2,2,1,1,1,1,1,1,1],\"data_offsets\":[0,16]"},
        {"\"shape\":[2,2],", "\"shape\":[4294967296,4294967296],"},
        {"\"shape\":[2,2],", "\"shape\":[2.5,2],"},
        {"\"shape\":[2,2],", "\"shape\":[-2,-2],"},
        {"\"shape\":[2,2],", "\"shape\":2,"},
        {"\"data_offsets\":[0,16]", "\"data_offsets\":[0,12]"},
        {"\"data_offsets\":[0,16]", "\"data_offsets\":[4,20]"},     /* overlap with bias */
        {"\"data_offsets\":[32,36]", "\"data_offsets\":[36,40]"},   /* outside the data */
        {"\"data_offsets\":[32,36]", "\"data_offsets\":[28,32]"},   /* overlap */
        {"\"data_offsets\":[0,16]", "\"data_offsets\":[16,0]"},
        {"\"data_offsets\":[0,16]", "\"data_offsets\":[0]"},
        {"\"data_offsets\":[0,16]", "\"data_offsets\":[0,16,17]"},
        {"\"data_offsets\":[0,16]", "\"data_offsets\":[0,1e300]"},
        {"\"layers.1.bias\"", "\"layers.1.bias2\""},                 /* missing tensor */
        {"\"layers.1.bias\"", "\"layers.0.bias\""},                  /* duplicate name */
        {"\"layers.0.weight\":{\"dtype\"", "\"layers.0.weight\":[{\"dtype\""},
        {"}}", "}"},                                                 /* truncated JSON */
        {"}}", "}} x"},                                              /* trailing garbage */
    };
    unsigned char data[40], *f;
    size_t len;
    score_model *m = (score_model *)1;
    good_bytes(data, 9, good_data);
    for (size_t i = 0; i < sizeof subst / sizeof subst[0]; i++) {
        char *h = replace(good_header, subst[i][0], subst[i][1]);
        f = make_file(h, data, 36, 0, &len);
        score_last_error_clear();
        ck_assert_msg(score_model_load_buffer(&m, f, len) == SCORE_E_FORMAT,
                      "variant %zu (%s) not rejected", i, subst[i][1]);
        ck_assert_msg(score_last_error_message()[0] != '\0', "variant %zu: no message", i);
        ck_assert_ptr_null(m);
        free(f);
        free(h);
    }
    /* extra tensor (tiles the data correctly but is not part of the architecture) */
    {
        char *h = replace(good_header, "}}",
                          "},\"extra\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[36,40]}}");
        f = make_file(h, data, 40, 0, &len);
        ck_assert_fails_with(score_model_load_buffer(&m, f, len), SCORE_E_FORMAT);
        free(f);
        free(h);
    }
    /* header length fields: huge, past the end, above the 100 MiB limit, zero */
    {
        static const uint64_t bad_len[] = {UINT64_MAX, (uint64_t)1 << 40, 100 * 1024 * 1024 + 1,
                                           2000, 0, 1};
        for (size_t i = 0; i < sizeof bad_len / sizeof bad_len[0]; i++) {
            f = make_file(good_header, data, 36, bad_len[i], &len);
            if (bad_len[i] == 0) /* 0 means "no override" in make_file: write it by hand */
                memset(f, 0, 8);
            ck_assert_fails_with(score_model_load_buffer(&m, f, len), SCORE_E_FORMAT);
            free(f);
        }
    }
    /* trailing data bytes, missing data bytes */
    f = make_file(good_header, data, 40, 0, &len);
    ck_assert_fails_with(score_model_load_buffer(&m, f, len), SCORE_E_FORMAT);
    free(f);
    f = make_file(good_header, data, 32, 0, &len);
    ck_assert_fails_with(score_model_load_buffer(&m, f, len), SCORE_E_FORMAT);
    free(f);
    /* NaN and infinity in the weights */
    {
        float bad[9];
        memcpy(bad, good_data, sizeof bad);
        bad[2] = NAN;
        good_bytes(data, 9, bad);
        f = make_file(good_header, data, 36, 0, &len);
        ck_assert_fails_with(score_model_load_buffer(&m, f, len), SCORE_E_FORMAT);
        free(f);
        bad[2] = INFINITY;
        good_bytes(data, 9, bad);
        f = make_file(good_header, data, 36, 0, &len);
        ck_assert_fails_with(score_model_load_buffer(&m, f, len), SCORE_E_FORMAT);
        free(f);
    }
    /* empty and tiny buffers */
    ck_assert_fails_with(score_model_load_buffer(&m, "", 0), SCORE_E_FORMAT);
    ck_assert_fails_with(score_model_load_buffer(&m, "\x02\0\0\0\0\0\0\0{}", 10), SCORE_E_FORMAT);
}
END_TEST

/* Every proper prefix of a saved file is rejected (in an exactly sized buffer, so that an
 * over-read shows up under AddressSanitizer). */
START_TEST(truncations_rejected)
{
    score_model *m = make_model(SCORE_EMBED_FOURIER, 1, SCORE_ACT_SILU, 3), *l;
    void *buf;
    size_t len;
    ck_assert_ok(score_model_save_buffer(m, &buf, &len));
    for (size_t k = 0; k < len; k++) {
        unsigned char *p = malloc(k ? k : 1);
        memcpy(p, buf, k);
        l = (score_model *)1;
        ck_assert_msg(score_model_load_buffer(&l, p, k) == SCORE_E_FORMAT, "prefix %zu of %zu", k, len);
        ck_assert_ptr_null(l);
        free(p);
    }
    score_free(buf);
    score_model_free(m);
}
END_TEST

/* Single-bit flips: one flip per byte (bit = position mod 8) over the whole file. Each result is
 * SCORE_E_FORMAT or a model that computes (flips in float data or in insignificant places). */
START_TEST(bit_flips_safe)
{
    score_model *m = make_model(SCORE_EMBED_FOURIER, 1, SCORE_ACT_SILU, 4), *l;
    void *buf;
    size_t len, n_ok = 0, n_fmt = 0;
    float out[NR * DIM];
    ck_assert_ok(score_model_save_buffer(m, &buf, &len));
    for (size_t pos = 0; pos < len; pos++) {
        unsigned char *p = malloc(len);
        int rc;
        memcpy(p, buf, len);
        p[pos] ^= (unsigned char)(1u << (pos % 8));
        rc = score_model_load_buffer(&l, p, len);
        ck_assert_msg(rc == SCORE_OK || rc == SCORE_E_FORMAT, "flip at %zu gave %d", pos, rc);
        if (rc == SCORE_OK) {
            n_ok++;
            if (score_model_dim(l) == DIM)
                ck_assert_ok(score_model_forward(l, NR, xs, cs, out));
            score_model_free(l);
        } else {
            n_fmt++;
        }
        free(p);
    }
    /* Both outcomes occur: the header is mostly fragile, float data mostly not. */
    ck_assert_uint_gt(n_ok, 0);
    ck_assert_uint_gt(n_fmt, 0);
    score_free(buf);
    score_model_free(m);
}
END_TEST

/* The Fourier projection comes from the file, not from the seed. */
START_TEST(fourier_projection_from_file)
{
    score_model *m = make_model(SCORE_EMBED_FOURIER, 0, SCORE_ACT_GELU, 8), *l;
    score__st_reader *r;
    score__st_writer *w;
    void *buf, *buf2;
    size_t len, len2;
    float wf[3], o1[NR * DIM], o2[NR * DIM];
    uint64_t half = 3;
    ck_assert_ok(score_model_save_buffer(m, &buf, &len));
    ck_assert_ok(score__st_reader_open("t", &r, buf, len, 0));
    ck_assert_ok(score__st_writer_new("t", &w));
    for (size_t i = 0; i < score__st_meta_count(r); i++) {
        const char *k, *v;
        ck_assert_ok(score__st_meta_at(r, i, &k, &v));
        ck_assert_ok(score__st_writer_meta("t", w, k, v));
    }
    for (size_t i = 0; i < score__st_count(r); i++) {
        const score__st_tensor *t = score__st_tensor_at(r, i);
        float *vals = malloc(t->count * sizeof *vals);
        ck_assert_ok(score__st_get_f32("t", r, t->name, t->ndim, t->shape, vals, 1));
        if (strcmp(t->name, "embed.W") == 0) {
            ck_assert_uint_eq(t->count, half);
            for (size_t j = 0; j < half; j++)
                vals[j] *= 2.0f;
            memcpy(wf, vals, sizeof wf);
        }
        ck_assert_ok(score__st_writer_add_f32("t", w, t->name, t->ndim, t->shape, vals));
        free(vals);
    }
    ck_assert_ok(score__st_writer_finish("t", w, &buf2, &len2));
    ck_assert_ok(score_model_load_buffer(&l, buf2, len2));
    {
        score__mlp_info info;
        ck_assert_ok(score__mlp_info_get(l, &info));
        ck_assert_mem_eq(info.fourier, wf, sizeof wf);
    }
    ck_assert_ok(score_model_forward(m, NR, xs, cs, o1));
    ck_assert_ok(score_model_forward(l, NR, xs, cs, o2));
    ck_assert(memcmp(o1, o2, sizeof o1) != 0);
    score__st_writer_free(w);
    score__st_reader_free(r);
    score_free(buf);
    score_free(buf2);
    score_model_free(l);
    score_model_free(m);
}
END_TEST

static int cb_fn(size_t n, size_t dim, const float *x, const double *c, float *out, void *ud)
{
    (void)c;
    (void)ud;
    memcpy(out, x, n * dim * sizeof *out);
    return 0;
}

START_TEST(errors_and_files)
{
    score_model *m = make_model(SCORE_EMBED_SINUSOIDAL, 1, SCORE_ACT_ELU, 1), *l, *u, *cb;
    void *buf = (void *)1;
    size_t len = 7;
    char path[300];
    ck_assert_fails_with(score_model_save(NULL, "x"), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_save(m, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_save(m, ""), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_save_buffer(NULL, &buf, &len), SCORE_E_INVAL);
    ck_assert_ptr_null(buf);
    ck_assert_uint_eq(len, 0);
    ck_assert_fails_with(score_model_save_buffer(m, NULL, &len), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_save_buffer(m, &buf, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_load(NULL, "x"), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_load(&l, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_load_buffer(NULL, "x", 1), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_load_buffer(&l, NULL, 1), SCORE_E_INVAL);
    /* a configuring model is saved as it will be once prepared, and stays configuring */
    ck_assert_ok(score_model_new(&u, SCORE_MODEL_MLP, DIM));
    ck_assert_ok(score_model_save_buffer(u, &buf, &len));
    ck_assert_ok(score_model_set_i64(u, SCORE_MODEL_PARAM_HIDDEN, 16)); /* not prepared */
    ck_assert_ok(score_model_set_i64(u, SCORE_MODEL_PARAM_HIDDEN, 128));
    ck_assert_ok(score_model_load_buffer(&l, buf, len));
    assert_same_settings(u, l);
    assert_same_function(u, l);
    score_model_free(l);
    score_free(buf);
    score_model_free(u);
    /* kinds without save */
    ck_assert_ok(score_model_new_callback(&cb, 2, cb_fn, NULL));
    ck_assert_int_eq(score_model_capabilities(cb) & SCORE_MODEL_CAP_SAVE, 0);
    ck_assert_fails_with(score_model_save_buffer(cb, &buf, &len), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_model_save(cb, "/nonexistent/x"), SCORE_E_UNSUPPORTED);
    score_model_free(cb);
    /* file errors */
    make_tmpdir();
    snprintf(path, sizeof path, "%s/missing.safetensors", tmpdir);
    ck_assert_fails_with(score_model_load(&l, path), SCORE_E_IO);
    ck_assert_ptr_null(l);
    ck_assert_fails_with(score_model_load(&l, tmpdir), SCORE_E_IO); /* a directory */
    snprintf(path, sizeof path, "%s/no/such/dir/m.safetensors", tmpdir);
    ck_assert_fails_with(score_model_save(m, path), SCORE_E_IO);
    /* a directory in the way of the rename: IO error, nothing left behind, directory intact */
    snprintf(path, sizeof path, "%s/sub", tmpdir);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    ck_assert_fails_with(score_model_save(m, path), SCORE_E_IO);
    ck_assert_uint_eq(count_dir_entries(), 1);
    rmdir(path);
    /* an empty file and a garbage file */
    snprintf(path, sizeof path, "%s/empty", tmpdir);
    {
        FILE *f = fopen(path, "wb");
        ck_assert_ptr_nonnull(f);
        fclose(f);
        ck_assert_fails_with(score_model_load(&l, path), SCORE_E_FORMAT);
        f = fopen(path, "wb");
        fputs("not a safetensors file at all", f);
        fclose(f);
        ck_assert_fails_with(score_model_load(&l, path), SCORE_E_FORMAT);
    }
    remove_tmpdir();
    score_model_free(m);
}
END_TEST

/* The internal container API as trainer checkpoints use it. */
START_TEST(container_api)
{
    score__st_writer *w;
    score__st_reader *r;
    void *buf;
    size_t len;
    float f[6] = {1, 2, 3, 4, 5, 6}, fo[6];
    int64_t i64[3] = {-1, 0, INT64_MAX}, io[3];
    unsigned char u8[5] = {0, 1, 2, 254, 255}, uo[5];
    uint64_t sh[2] = {2, 3}, bad[2] = {3, 2}, n3 = 3, zero = 0;
    const score__st_tensor *t;
    ck_assert_ok(score__st_writer_new("t", &w));
    ck_assert_ok(score__st_writer_meta("t", w, "step", "42"));
    ck_assert_ok(score__st_writer_meta("t", w, "quote\"and\\slash\n", "v\x01"));
    ck_assert_ok(score__st_writer_meta("t", w, "step", "43")); /* replaced */
    ck_assert_ok(score__st_writer_add_f32("t", w, "opt.m", 2, sh, f));
    ck_assert_ok(score__st_writer_add_i64("t", w, "step", 1, &n3, i64));
    ck_assert_ok(score__st_writer_add_u8("t", w, "rng", 5, u8));
    ck_assert_ok(score__st_writer_add_f32("t", w, "empty", 1, &zero, NULL));
    ck_assert_ok(score__st_writer_add_f32("t", w, "scalar", 0, NULL, f));
    ck_assert_fails_with(score__st_writer_add_f32("t", w, "opt.m", 2, sh, f), SCORE_E_INVAL);
    ck_assert_fails_with(score__st_writer_add_f32("t", w, "__metadata__", 2, sh, f), SCORE_E_INVAL);
    ck_assert_fails_with(score__st_writer_add("t", w, "x", 99, 2, sh, f), SCORE_E_INVAL);
    ck_assert_ok(score__st_writer_finish("t", w, &buf, &len));
    ck_assert_uint_eq((8 + score__get_u64le(buf)) % 8, 0); /* data section 8-byte aligned */
    score__st_writer_free(w);
    ck_assert_ok(score__st_reader_open("t", &r, buf, len, 1));
    ck_assert_str_eq(score__st_meta(r, "step"), "43");
    ck_assert_str_eq(score__st_meta(r, "quote\"and\\slash\n"), "v\x01");
    ck_assert_ptr_null(score__st_meta(r, "absent"));
    ck_assert_uint_eq(score__st_meta_count(r), 2);
    ck_assert_uint_eq(score__st_count(r), 5);
    ck_assert_ok(score__st_get_f32("t", r, "opt.m", 2, sh, fo, 1));
    ck_assert_mem_eq(f, fo, sizeof f);
    ck_assert_fails_with(score__st_get_f32("t", r, "opt.m", 2, bad, fo, 1), SCORE_E_FORMAT);
    ck_assert_fails_with(score__st_get_f32("t", r, "opt.m", 1, sh, fo, 1), SCORE_E_FORMAT);
    ck_assert_fails_with(score__st_get_f32("t", r, "step", 1, &n3, fo, 1), SCORE_E_FORMAT);
    ck_assert_fails_with(score__st_get_f32("t", r, "nope", 1, &n3, fo, 1), SCORE_E_FORMAT);
    ck_assert_ok(score__st_get_i64("t", r, "step", 1, &n3, io));
    ck_assert_mem_eq(i64, io, sizeof io);
    ck_assert_ok(score__st_get_u8("t", r, "rng", 5, uo));
    ck_assert_mem_eq(u8, uo, sizeof uo);
    t = score__st_find(r, "empty");
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(t->count, 0);
    t = score__st_find(r, "scalar");
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(t->ndim, 0);
    ck_assert_uint_eq(t->count, 1);
    ck_assert_ok(score__st_get_f32("t", r, "scalar", 0, NULL, fo, 1));
    ck_assert_float_eq(fo[0], 1.0f);
    score__st_reader_free(r); /* owns buf */
    ck_assert_fails_with(score__st_reader_open_file("t", &r, "/nonexistent/file"), SCORE_E_IO);
}
END_TEST

/* The header writer and the header parser are both the library's own: what one writes the
 * other must read back exactly, every field, including names and metadata with JSON escapes
 * and non-ASCII UTF-8 (2-, 3- and 4-byte sequences). */
START_TEST(header_round_trip)
{
    static const char *const names[] = {
        "plain",      "quote\"back\\slash", "ctl\x01\x1f\t\n\r\b\f", "slash/é",
        "euro€",      "emoji\xf0\x9f\x98\x80", "mixed\"€\\\x02\xf0\x9f\x98\x80", "I64"};
    static const int dtypes[] = {SCORE__ST_U8,  SCORE__ST_I8,   SCORE__ST_I32, SCORE__ST_I64,
                                 SCORE__ST_F16, SCORE__ST_BF16, SCORE__ST_F32, SCORE__ST_F64};
    static const char *const meta[][2] = {
        {"k\"ey\\", "v\n\x01\x1f"}, {"ключ", "значение €"}, {"\xf0\x9f\x98\x80", ""}};
    enum { NT = sizeof names / sizeof names[0], NM = sizeof meta / sizeof meta[0] };
    unsigned char data[NT][64];
    uint64_t shapes[NT][3];
    size_t ndims[NT];
    score__st_writer *w;
    score__st_reader *r;
    void *buf;
    size_t len, off = 0;
    ck_assert_ok(score__st_writer_new("t", &w));
    for (size_t m = 0; m < NM; m++)
        ck_assert_ok(score__st_writer_meta("t", w, meta[m][0], meta[m][1]));
    for (size_t i = 0; i < NT; i++) {
        size_t count = 1;
        ndims[i] = i % 4; /* scalar, vector, matrix, 3-d */
        for (size_t d = 0; d < ndims[i]; d++) {
            shapes[i][d] = 1 + (i + d) % 3;
            count *= (size_t)shapes[i][d];
        }
        for (size_t b = 0; b < sizeof data[i]; b++)
            data[i][b] = (unsigned char)(37 * i + 11 * b + 1);
        ck_assert_uint_le(count * score__st_dtype_size(dtypes[i]), sizeof data[i]);
        ck_assert_ok(score__st_writer_add("t", w, names[i], dtypes[i], ndims[i], shapes[i], data[i]));
    }
    ck_assert_ok(score__st_writer_finish("t", w, &buf, &len));
    score__st_writer_free(w);
    ck_assert_ok(score__st_reader_open("t", &r, buf, len, 1));
    ck_assert_uint_eq(score__st_meta_count(r), NM);
    for (size_t m = 0; m < NM; m++) {
        const char *k, *v;
        ck_assert_ok(score__st_meta_at(r, m, &k, &v));
        ck_assert_str_eq(k, meta[m][0]);
        ck_assert_str_eq(v, meta[m][1]);
        ck_assert_str_eq(score__st_meta(r, meta[m][0]), meta[m][1]);
    }
    ck_assert_uint_eq(score__st_count(r), NT);
    for (size_t i = 0; i < NT; i++) {
        const score__st_tensor *t = score__st_tensor_at(r, i);
        size_t count = 1;
        for (size_t d = 0; d < ndims[i]; d++)
            count *= (size_t)shapes[i][d];
        ck_assert_str_eq(t->name, names[i]); /* header order is the order added */
        ck_assert_ptr_eq(score__st_find(r, names[i]), t);
        ck_assert_int_eq(t->dtype, dtypes[i]);
        ck_assert_uint_eq(t->ndim, ndims[i]);
        for (size_t d = 0; d < ndims[i]; d++)
            ck_assert_uint_eq(t->shape[d], shapes[i][d]);
        ck_assert_uint_eq(t->count, count);
        ck_assert_uint_eq(t->nbytes, count * score__st_dtype_size(dtypes[i]));
        /* data offsets: tensors follow one another in the order added */
        ck_assert_ptr_eq(t->data, (const unsigned char *)buf + 8 + score__get_u64le(buf) + off);
        off += t->nbytes;
        {
            unsigned char back[64];
            ck_assert_ok(score__st_get("t", r, names[i], dtypes[i], ndims[i], shapes[i], back));
            ck_assert_mem_eq(back, data[i], t->nbytes);
        }
    }
    ck_assert_uint_eq(8 + score__get_u64le(buf) + off, len);
    score__st_reader_free(r);
}
END_TEST

/* The parser decodes every JSON escape, including \u escapes and UTF-16 surrogate pairs, into
 * the same UTF-8 bytes the writer writes unescaped. */
START_TEST(header_escapes_decoded)
{
    static const char hdr[] =
        "{\"__metadata__\":{\"a\\u00e9\\u20ac\\ud83d\\ude00\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0001\"},"
        "\"t\\u00E9\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}";
    unsigned char file[8 + sizeof hdr];
    score__st_reader *r;
    const char *k, *v;
    score__put_u64le(file, sizeof hdr - 1);
    memcpy(file + 8, hdr, sizeof hdr - 1);
    file[8 + sizeof hdr - 1] = 7; /* the one data byte */
    ck_assert_ok(score__st_reader_open("t", &r, file, sizeof file, 0));
    ck_assert_ok(score__st_meta_at(r, 0, &k, &v));
    ck_assert_str_eq(k, "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    ck_assert_str_eq(v, "\"\\/\b\f\n\r\t\x01");
    ck_assert_str_eq(score__st_tensor_at(r, 0)->name, "t\xc3\xa9");
    ck_assert_uint_eq(score__st_tensor_at(r, 0)->data[0], 7);
    score__st_reader_free(r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("model-io");
    TCase *tc = tcase_create("io");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, roundtrip_bitwise, 0, 6);
    tcase_add_test(tc, handwritten_file_layout);
    tcase_add_test(tc, corrupt_headers_rejected);
    tcase_add_test(tc, truncations_rejected);
    tcase_add_test(tc, bit_flips_safe);
    tcase_add_test(tc, fourier_projection_from_file);
    tcase_add_test(tc, errors_and_files);
    tcase_add_test(tc, container_api);
    tcase_add_test(tc, header_round_trip);
    tcase_add_test(tc, header_escapes_decoded);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
