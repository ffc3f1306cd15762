/* Files damaged in meaning, and allocation failures while loading.
 *
 * The meaning-check corpus: each hostile file is generated from a valid one (saved by the
 * library or written by hand) with one defect, and must be refused with the exact status and
 * a message that names the defect; a few valid variants (escapes, white space, surrogate
 * pairs) must still load. Every file is also written to $SCORE_HOSTILE_DIR when that is set
 * (to refresh the fuzzing seeds in tests/fuzz/corpus, named hostile-<case>.safetensors), and
 * the seeds there are replayed with the same expectations.
 *
 * Allocation failures: this executable is linked with -Wl,--wrap=malloc,calloc,realloc (see
 * tests/meson.build), so the library objects linked into it allocate through the wrappers
 * below, which can fail the N-th allocation. Every N from 1 until the load succeeds must give
 * SCORE_E_NOMEM (never SCORE_E_FORMAT) for model files of every kind and for checkpoints. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "helpers/test-helpers.h"
#include "io/safetensors-priv.h"

/* ---- allocation wrappers ---------------------------------------------------------------- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);

/* 0: off; otherwise the allocation that fails, counted down (tests run single-threaded) */
static unsigned long fail_at;
static unsigned long n_calls;

static int should_fail(void)
{
    if (fail_at == 0)
        return 0;
    return ++n_calls == fail_at;
}

void *__wrap_malloc(size_t n)
{
    return should_fail() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return should_fail() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : __real_realloc(p, n);
}

static void arm(unsigned long n)
{
    n_calls = 0;
    fail_at = n;
}

/* ---- file helpers ----------------------------------------------------------------------- */

typedef struct file {
    unsigned char *p;
    size_t len;
} file;

static uint64_t get_u64le(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* A file from a header string and data bytes. */
static file make(const char *header, size_t hlen, const unsigned char *data, size_t dlen)
{
    file f;
    f.len = 8 + hlen + dlen;
    f.p = malloc(f.len ? f.len : 1);
    for (int i = 0; i < 8; i++)
        f.p[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    memcpy(f.p + 8, header, hlen);
    if (dlen)
        memcpy(f.p + 8 + hlen, data, dlen);
    return f;
}

/* The header of a file as a NUL-terminated string (the library writes no NUL into it). */
static char *header_of(const file *f)
{
    size_t h = (size_t)get_u64le(f->p);
    char *s = malloc(h + 1);
    memcpy(s, f->p + 8, h);
    s[h] = '\0';
    return s;
}

/* f with the first occurrence of `from` in its header replaced by `to` (to_len bytes, which
 * may hold NUL or any other byte); the data section is kept. */
static file edit(const file *f, const char *from, const char *to, size_t to_len)
{
    char *h = header_of(f), *at = strstr(h, from), *nh;
    size_t hl = strlen(h), fl = strlen(from), pre;
    size_t dl = f->len - 8 - hl;
    file out;
    ck_assert_msg(at != NULL, "'%s' not in the header", from);
    pre = (size_t)(at - h);
    nh = malloc(hl - fl + to_len + 1);
    memcpy(nh, h, pre);
    memcpy(nh + pre, to, to_len);
    memcpy(nh + pre + to_len, at + fl, hl - pre - fl);
    out = make(nh, hl - fl + to_len, f->p + 8 + hl, dl);
    free(nh);
    free(h);
    return out;
}

static file edit_s(const file *f, const char *from, const char *to)
{
    return edit(f, from, to, strlen(to));
}

/* Rebuilds a saved file through the container API with one change: metadata `key` set to
 * `value` (NULL: removed), tensor `tensor` (F64 or F32) with element `idx` set to `x` (or every
 * element when idx < 0), and an extra F64 tensor `extra` of one value when not NULL. */
static file rebuild(const file *f, const char *key, const char *value, const char *tensor,
                    long idx, double x, const char *extra)
{
    score__st_reader *r;
    score__st_writer *w;
    file out;
    void *buf;
    ck_assert_ok(score__st_reader_open("test", &r, f->p, f->len, 0));
    ck_assert_ok(score__st_writer_new("test", &w));
    for (size_t i = 0; i < score__st_meta_count(r); i++) {
        const char *k, *v;
        ck_assert_ok(score__st_meta_at(r, i, &k, &v));
        if (key != NULL && strcmp(k, key) == 0)
            continue;
        ck_assert_ok(score__st_writer_meta("test", w, k, v));
    }
    if (key != NULL && value != NULL)
        ck_assert_ok(score__st_writer_meta("test", w, key, value));
    for (size_t i = 0; i < score__st_count(r); i++) {
        const score__st_tensor *t = score__st_tensor_at(r, i);
        void *data = malloc(t->nbytes ? t->nbytes : 1);
        ck_assert_ok(score__st_get("test", r, t->name, t->dtype, t->ndim, t->shape, data));
        if (tensor != NULL && strcmp(t->name, tensor) == 0) {
            ck_assert(t->dtype == SCORE__ST_F64 || t->dtype == SCORE__ST_F32);
            for (size_t e = 0; e < t->count; e++) {
                if (idx >= 0 && (size_t)idx != e)
                    continue;
                if (t->dtype == SCORE__ST_F64)
                    ((double *)data)[e] = x;
                else
                    ((float *)data)[e] = (float)x;
            }
        }
        ck_assert_ok(score__st_writer_add("test", w, t->name, t->dtype, t->ndim, t->shape, data));
        free(data);
    }
    if (extra != NULL) {
        const uint64_t one = 1;
        const double v = 1.0;
        ck_assert_ok(score__st_writer_add("test", w, extra, SCORE__ST_F64, 1, &one, &v));
    }
    ck_assert_ok(score__st_writer_finish("test", w, &buf, &out.len));
    out.p = malloc(out.len);
    memcpy(out.p, buf, out.len);
    score_free(buf);
    score__st_writer_free(w);
    score__st_reader_free(r);
    return out;
}

static file saved(const score_model *m)
{
    file f;
    void *buf;
    ck_assert_ok(score_model_save_buffer(m, &buf, &f.len));
    f.p = malloc(f.len);
    memcpy(f.p, buf, f.len);
    score_free(buf);
    return f;
}

/* Writes a corpus file when SCORE_HOSTILE_DIR is set. */
static void dump(const char *name, const file *f)
{
    const char *dir = getenv("SCORE_HOSTILE_DIR");
    char path[512];
    FILE *o;
    if (dir == NULL || dir[0] == '\0')
        return;
    snprintf(path, sizeof path, "%s/%s.safetensors", dir, name);
    o = fopen(path, "wb");
    if (o != NULL) {
        fwrite(f->p, 1, f->len, o);
        fclose(o);
    }
}

/* Loads f: the status must be `status`, and on failure the message must contain `needle`. */
static void expect(const char *name, file f, int status, const char *needle)
{
    score_model *m = (score_model *)1;
    int rc;
    dump(name, &f);
    score_last_error_clear();
    rc = score_model_load_buffer(&m, f.p, f.len);
    ck_assert_msg(rc == status, "%s: status %d, expected %d (%s)", name, rc, status,
                  score_last_error_message());
    if (status != SCORE_OK) {
        ck_assert_ptr_null(m);
        ck_assert_msg(strstr(score_last_error_message(), needle) != NULL,
                      "%s: message '%s' does not name '%s'", name, score_last_error_message(),
                      needle);
    } else {
        score_model_free(m);
    }
    free(f.p);
}

/* ---- models ------------------------------------------------------------------------------ */

enum { DIM = 3 };

static score_model *make_mlp(void)
{
    score_model *m;
    ck_assert_ok(score_model_new_mlp(&m, DIM, 8, 2, SCORE_ACT_SILU, 5));
    ck_assert_ok(score_model_prepare(m));
    return m;
}

static score_schedule *make_vp(void)
{
    score_schedule *s;
    ck_assert_ok(score_schedule_new(&s, SCORE_SCHEDULE_VP));
    ck_assert_ok(score_schedule_prepare(s));
    return s;
}

/* 0: diagonal Gaussian, 1: full Gaussian, 2: mixture of 3 (tests/helpers/test-helpers.h) */
static score_model *make_analytic(int which)
{
    score_schedule *s = make_vp();
    score_model *m = test_analytic3(which, s);
    score_schedule_free(s);
    return m;
}

/* The smallest U-Net with every kind of tensor (attention, a label table, the Fourier
 * projection; 1 x 2 x 2 images, one level of 2 channels): a few kB, a fuzzing seed. */
static score_model *make_unet(void)
{
    score_model *m;
    const size_t mults[1] = {1};
    ck_assert_ok(score_model_new_unet(&m, 1, 2, 2));
    ck_assert_ok(score_model_set_unet_widths(m, 1, mults));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_UNET_BASE_WIDTH, 2));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_UNET_BLOCKS, 1));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_UNET_GROUPS, 1));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_UNET_TEMB_DIM, 2));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_EMBED_DIM, 2));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_NUM_CLASSES, 2));
    ck_assert_ok(score_model_prepare(m));
    return m;
}

/* ---- the corpus: the JSON container ------------------------------------------------------ */

START_TEST(container_rules)
{
    score_model *m = make_mlp();
    file f = saved(m);
    static const char bom[] = "\xef\xbb\xbf{";
    static const char nul_name[] = "\"layers.0.bias\\u0000x\":";
    /* still valid */
    expect("valid-as-saved", edit_s(&f, "{", "{"), SCORE_OK, NULL);
    expect("valid-white-space", edit_s(&f, "\"layers.0.bias\":{", "\n\t\"layers.0.bias\" : {\r\n"),
           SCORE_OK, NULL);
    expect("valid-escapes", edit_s(&f, "\"kind\":\"mlp\"", "\"k\\u0069nd\":\"\\u006dlp\""),
           SCORE_OK, NULL);
    expect("valid-surrogate-pair", edit_s(&f, "\"format\"", "\"user.x\":\"\\ud83d\\ude00 \\u00e9\",\"format\""),
           SCORE_OK, NULL);
    expect("valid-padding", edit_s(&f, "}}", "}}        "), SCORE_OK, NULL);
    /* duplicate keys at every level */
    expect("dup-key-in-tensor", edit_s(&f, "\"shape\":[8,", "\"shape\":[8,4],\"shape\":[8,"),
           SCORE_E_FORMAT, "duplicate key 'shape'");
    expect("dup-dtype-in-tensor", edit_s(&f, "\"dtype\":\"F32\"", "\"dtype\":\"F32\",\"dtype\":\"F64\""),
           SCORE_E_FORMAT, "duplicate key 'dtype'");
    expect("dup-offsets-in-tensor", edit_s(&f, "\"data_offsets\":[0,", "\"data_offsets\":[0,0],\"data_offsets\":[0,"),
           SCORE_E_FORMAT, "duplicate key 'data_offsets'");
    expect("dup-metadata-key", edit_s(&f, "\"kind\":\"mlp\"", "\"kind\":\"mlp\",\"kind\":\"gmm\""),
           SCORE_E_FORMAT, "duplicate metadata key 'kind'");
    expect("dup-metadata-object", edit_s(&f, "}}", "},\"__metadata__\":{}}"),
           SCORE_E_FORMAT, "more than one __metadata__");
    expect("dup-tensor", edit_s(&f, "\"layers.1.bias\"", "\"layers.0.bias\""),
           SCORE_E_FORMAT, "duplicate tensor name 'layers.0.bias'");
    /* NUL and other bad strings */
    expect("nul-in-tensor-name", edit_s(&f, "\"layers.0.bias\":", nul_name),
           SCORE_E_FORMAT, "NUL character");
    expect("nul-in-metadata", edit_s(&f, "\"kind\":\"mlp\"", "\"kind\":\"mlp\\u0000gmm\""),
           SCORE_E_FORMAT, "NUL character");
    expect("raw-nul", edit(&f, "\"kind\":\"mlp\"", "\"kind\":\"mlp\0\"", 13),
           SCORE_E_FORMAT, "raw control character");
    expect("raw-tab", edit_s(&f, "\"kind\":\"mlp\"", "\"kind\":\"ml\tp\""),
           SCORE_E_FORMAT, "raw control character");
    expect("bad-utf8", edit_s(&f, "\"kind\":\"mlp\"", "\"kind\":\"ml\xc3\x28\""),
           SCORE_E_FORMAT, "invalid UTF-8");
    expect("overlong-utf8", edit_s(&f, "\"kind\":\"mlp\"", "\"kind\":\"\xc0\xaf\""),
           SCORE_E_FORMAT, "invalid UTF-8");
    expect("lone-surrogate", edit_s(&f, "\"kind\":\"mlp\"", "\"kind\":\"\\ud800\""),
           SCORE_E_FORMAT, "unpaired UTF-16 surrogate");
    expect("bad-escape", edit_s(&f, "\"kind\":\"mlp\"", "\"kind\":\"\\x41\""),
           SCORE_E_FORMAT, "invalid escape");
    /* the header begins with '{' */
    expect("bom", edit_s(&f, "{", bom), SCORE_E_FORMAT, "byte order mark");
    expect("leading-space", edit_s(&f, "{", " {"), SCORE_E_FORMAT, "does not begin with '{'");
    /* integers only */
    expect("shape-fraction", edit_s(&f, "\"shape\":[8,", "\"shape\":[8.0,"),
           SCORE_E_FORMAT, "not a non-negative integer");
    expect("shape-exponent", edit_s(&f, "\"shape\":[8,", "\"shape\":[8e0,"),
           SCORE_E_FORMAT, "not a non-negative integer");
    expect("shape-negative-zero", edit_s(&f, "\"shape\":[8,", "\"shape\":[-0,"),
           SCORE_E_FORMAT, "not a non-negative integer");
    expect("shape-leading-zero", edit_s(&f, "\"shape\":[8,", "\"shape\":[08,"),
           SCORE_E_FORMAT, "not a non-negative integer");
    expect("shape-huge", edit_s(&f, "\"shape\":[8,", "\"shape\":[99999999999999999999,"),
           SCORE_E_FORMAT, "is larger than");
    expect("offset-fraction", edit_s(&f, "\"data_offsets\":[0,", "\"data_offsets\":[0.0,"),
           SCORE_E_FORMAT, "not a non-negative integer");
    expect("offset-string", edit_s(&f, "\"data_offsets\":[0,", "\"data_offsets\":[\"0\","),
           SCORE_E_FORMAT, "not a non-negative integer");
    /* tensor entries: no unknown key, nothing missing */
    expect("unknown-tensor-key", edit_s(&f, "\"dtype\":\"F32\"", "\"dtype\":\"F32\",\"zzz\":1"),
           SCORE_E_FORMAT, "unknown key 'zzz'");
    expect("tensor-null", edit_s(&f, "\"layers.0.bias\":{", "\"x\":null,\"layers.0.bias\":{"),
           SCORE_E_FORMAT, "tensor 'x' is not a JSON object");
    expect("metadata-number", edit_s(&f, "\"kind\":\"mlp\"", "\"kind\":\"mlp\",\"n\":1"),
           SCORE_E_FORMAT, "metadata values must be strings");
    expect("trailing-garbage", edit_s(&f, "}}", "}} x"), SCORE_E_FORMAT, "trailing bytes");
    free(f.p);
    score_model_free(m);
}
END_TEST

/* ---- the corpus: model meaning --------------------------------------------------------- */

START_TEST(unknown_tensors)
{
    for (int which = 0; which < 3; which++) {
        score_model *m = make_analytic(which);
        file f = saved(m);
        char name[64];
        snprintf(name, sizeof name, "extra-tensor-analytic-%d", which);
        expect(name, rebuild(&f, NULL, NULL, NULL, 0, 0, "extra"), SCORE_E_FORMAT,
               "unexpected tensor 'extra'");
        snprintf(name, sizeof name, "valid-analytic-%d", which);
        expect(name, rebuild(&f, NULL, NULL, NULL, 0, 0, NULL), SCORE_OK, NULL);
        if (which != 1) {
            snprintf(name, sizeof name, "basis-in-diag-%d", which);
            expect(name, rebuild(&f, NULL, NULL, NULL, 0, 0, "basis"), SCORE_E_FORMAT,
                   "unexpected tensor 'basis'");
        }
        free(f.p);
        score_model_free(m);
    }
    {
        score_model *m = make_mlp();
        file f = saved(m);
        expect("extra-tensor-mlp", rebuild(&f, NULL, NULL, NULL, 0, 0, "extra"), SCORE_E_FORMAT,
               "tensors, the architecture has");
        free(f.p);
        score_model_free(m);
    }
}
END_TEST

START_TEST(unet_tensors)
{
    score_model *m = make_unet();
    file f = saved(m);
    expect("valid-unet", rebuild(&f, NULL, NULL, NULL, 0, 0, NULL), SCORE_OK, NULL);
    expect("unet-extra-tensor", rebuild(&f, NULL, NULL, NULL, 0, 0, "extra"), SCORE_E_FORMAT,
           "unexpected tensor 'extra'");
    expect("unet-renamed-tensor", edit_s(&f, "\"mid.attn.q.weight\"", "\"mid.attn.Q.weight\""),
           SCORE_E_FORMAT, "tensor 'mid.attn.q.weight' (F32 [2, 2, 1, 1]) is missing");
    expect("unet-reshaped-tensor",
           edit_s(&f, "\"conv_in.weight\":{\"dtype\":\"F32\",\"shape\":[2,1,3,3]",
                  "\"conv_in.weight\":{\"dtype\":\"F32\",\"shape\":[2,1,9]"),
           SCORE_E_FORMAT, "tensor 'conv_in.weight' must be F32 of shape [2, 1, 3, 3]");
    expect("unet-blocks", rebuild(&f, "unet_blocks", "2", NULL, 0, 0, NULL), SCORE_E_FORMAT,
           "tensor 'down.0.res.1.norm1.weight' (F32 [2]) is missing");
    expect("unet-no-attention", rebuild(&f, "unet_attention", "0", NULL, 0, 0, NULL),
           SCORE_E_FORMAT, "unexpected tensor 'mid.attn.");
    expect("unet-mults", rebuild(&f, "unet_mults", "1,,1", NULL, 0, 0, NULL), SCORE_E_FORMAT,
           "metadata 'unet_mults'");
    expect("unet-huge-width", rebuild(&f, "unet_base_width", "4096", NULL, 0, 0, NULL),
           SCORE_E_FORMAT, "tensor 'conv_in.weight' must be F32 of shape [4096, 1, 3, 3]");
    expect("unet-dim", rebuild(&f, "height", "3", NULL, 0, 0, NULL), SCORE_E_FORMAT,
           "is not channels x height x width");
    expect("unet-embedding-none", rebuild(&f, "embedding", "none", NULL, 0, 0, NULL),
           SCORE_E_FORMAT, "metadata 'embedding'");
    expect("unet-no-fourier", rebuild(&f, "embedding", "sinusoidal", NULL, 0, 0, NULL),
           SCORE_E_FORMAT, "unexpected tensor 'embed.W'");
    expect("unet-groups", rebuild(&f, "unet_groups", "3", NULL, 0, 0, NULL), SCORE_E_FORMAT,
           "the architecture in the metadata is invalid");
    expect("unet-temb-missing", rebuild(&f, "unet_temb_dim", NULL, NULL, 0, 0, NULL),
           SCORE_E_FORMAT, "metadata 'unet_temb_dim' is missing");
    expect("unet-nan-weight", rebuild(&f, NULL, NULL, "up.0.res.1.conv1.weight", 3, NAN, NULL),
           SCORE_E_FORMAT, "holds NaN or infinity");
    expect("unet-huge-weights", rebuild(&f, NULL, NULL, "conv_out.weight", -1, 3e38, NULL),
           SCORE_E_FORMAT, "probe batch");
    free(f.p);
    score_model_free(m);
}
END_TEST

START_TEST(analytic_parameters)
{
    score_model *g = make_analytic(1), *k = make_analytic(2);
    file fg = saved(g), fk = saved(k);
    /* the basis is orthonormal */
    expect("basis-zero", rebuild(&fg, NULL, NULL, "basis", -1, 0.0, NULL), SCORE_E_FORMAT,
           "basis is not orthonormal");
    expect("basis-ones", rebuild(&fg, NULL, NULL, "basis", -1, 1.0, NULL), SCORE_E_FORMAT,
           "basis is not orthonormal");
    expect("basis-perturbed", rebuild(&fg, NULL, NULL, "basis", 4, 0.5, NULL), SCORE_E_FORMAT,
           "basis is not orthonormal");
    /* the variances (the covariance factors) are positive */
    expect("var-zero", rebuild(&fg, NULL, NULL, "var", 1, 0.0, NULL), SCORE_E_FORMAT,
           "is not positive");
    /* the weights are finite, normalised and consistent */
    expect("log-weight-tiny", rebuild(&fk, NULL, NULL, "log_weight", 0, -1e308, NULL),
           SCORE_E_FORMAT, "log_weight[0]");
    expect("log-weight-all-tiny", rebuild(&fk, NULL, NULL, "log_weight", -1, -1e308, NULL),
           SCORE_E_FORMAT, "log_weight[0]");
    expect("log-weight-unnormalised", rebuild(&fk, NULL, NULL, "log_weight", 2, -0.1, NULL),
           SCORE_E_FORMAT, "inconsistent");
    expect("log-weight-zero-all", rebuild(&fk, NULL, NULL, "log_weight", -1, 0.0, NULL),
           SCORE_E_FORMAT, "inconsistent");
    expect("log-weight-nan", rebuild(&fk, NULL, NULL, "log_weight", 1, NAN, NULL),
           SCORE_E_FORMAT, "not finite");
    /* the schedule keys a saved schedule has are required */
    expect("schedule-no-beta-max", rebuild(&fg, "schedule.beta_max", NULL, NULL, 0, 0, NULL),
           SCORE_E_FORMAT, "metadata 'schedule.beta_max' is missing");
    expect("schedule-no-T", rebuild(&fk, "schedule.T", NULL, NULL, 0, 0, NULL),
           SCORE_E_FORMAT, "metadata 'schedule.T' is missing");
    expect("schedule-no-kind", rebuild(&fk, "schedule.kind", NULL, NULL, 0, 0, NULL),
           SCORE_E_FORMAT, "metadata 'schedule.kind' is missing");
    free(fg.p);
    free(fk.p);
    score_model_free(g);
    score_model_free(k);
}
END_TEST

/* Huge finite weights: the loader's probe batch refuses the file; the same model built through
 * the API reports SCORE_E_NUMERIC from the compute calls instead of SCORE_OK with NaN. */
START_TEST(huge_weights)
{
    score_model *m = make_mlp();
    size_t np = score_model_param_count(m);
    float *p = malloc(np * sizeof *p), x[2 * DIM] = {0.1f, -0.2f, 0.3f, 1, 2, 3}, out[2 * DIM];
    float v[2 * DIM] = {1, 0, 0, 0, 1, 0};
    double c[2] = {0.25, 0.75}, tr[2];
    void *buf;
    size_t len;
    file f;
    for (size_t i = 0; i < np; i++)
        p[i] = 3e38f;
    ck_assert_ok(score_model_params_set(m, p, np));
    ck_assert_ok(score_model_save_buffer(m, &buf, &len));
    f.p = malloc(len);
    f.len = len;
    memcpy(f.p, buf, len);
    score_free(buf);
    expect("huge-weights", f, SCORE_E_FORMAT, "probe batch");
    ck_assert_fails_with(score_model_forward(m, 2, x, c, out), SCORE_E_NUMERIC);
    ck_assert_ptr_nonnull(strstr(score_last_error_message(), "out holds NaN or infinity at row 0 "
                                                             "from finite inputs"));
    ck_assert_fails_with(score_model_jvp(m, 2, x, c, 1, v, out, NULL), SCORE_E_NUMERIC);
    ck_assert_fails_with(score_model_vjp(m, 2, x, c, 1, v, out), SCORE_E_NUMERIC);
    ck_assert_fails_with(score_model_trace(m, 2, x, c, tr, NULL), SCORE_E_NUMERIC);
    /* non-finite inputs are named as such */
    x[1] = NAN;
    for (size_t i = 0; i < np; i++)
        p[i] = 0.01f;
    ck_assert_ok(score_model_params_set(m, p, np));
    ck_assert_fails_with(score_model_forward(m, 2, x, c, out), SCORE_E_NUMERIC);
    ck_assert_ptr_nonnull(strstr(score_last_error_message(), "the inputs hold NaN"));
    /* moderate weights still compute (the check does not refuse finite results) */
    x[1] = -0.2f;
    ck_assert_ok(score_model_forward(m, 2, x, c, out));
    ck_assert_ok(score_model_trace(m, 2, x, c, tr, NULL));
    free(p);
    score_model_free(m);
}
END_TEST

/* ---- allocation failures ---------------------------------------------------------------- */

/* Fails allocation 1, 2, ... of load(f) until it succeeds; each failure must be
 * SCORE_E_NOMEM with *out NULL. Returns the number of allocation points. */
static unsigned long oom_sweep(const char *what, const file *f)
{
    unsigned long n;
    for (n = 1;; n++) {
        score_model *m = (score_model *)1;
        int rc;
        arm(n);
        rc = score_model_load_buffer(&m, f->p, f->len);
        arm(0);
        if (rc == SCORE_OK) {
            score_model_free(m);
            break;
        }
        ck_assert_msg(rc == SCORE_E_NOMEM, "%s: failing allocation %lu gave %d (%s)", what, n,
                      rc, score_last_error_message());
        ck_assert_ptr_null(m);
        ck_assert_uint_lt(n, 100000);
    }
    return n - 1;
}

START_TEST(oom_model_files)
{
    score_model *models[5];
    const char *names[5] = {"mlp", "gaussian-diag", "gaussian-full", "gmm", "unet"};
    models[0] = make_mlp();
    for (int i = 0; i < 3; i++)
        models[i + 1] = make_analytic(i);
    models[4] = make_unet();
    for (int i = 0; i < 5; i++) {
        file f;
        unsigned long points;
        ck_assert_ok(score_model_set_metadata(models[i], "note", "kept"));
        f = saved(models[i]);
        points = oom_sweep(names[i], &f);
        /* the JSON header alone allocates: the string block and the growing arrays */
        ck_assert_uint_ge(points, 4);
        free(f.p);
        score_model_free(models[i]);
    }
}
END_TEST

/* The safetensors parser on its own: every allocation failure is SCORE_E_NOMEM. */
START_TEST(oom_json_parser)
{
    score_model *m = make_analytic(2);
    file f = saved(m);
    unsigned long n;
    for (n = 1;; n++) {
        score__st_reader *r = NULL;
        int rc;
        arm(n);
        rc = score__st_reader_open("test", &r, f.p, f.len, 0);
        arm(0);
        if (rc == SCORE_OK) {
            score__st_reader_free(r);
            break;
        }
        ck_assert_msg(rc == SCORE_E_NOMEM, "allocation %lu: %d (%s)", n, rc,
                      score_last_error_message());
        ck_assert_ptr_null(r);
    }
    ck_assert_uint_ge(n, 4);
    free(f.p);
    score_model_free(m);
}
END_TEST

static const float ring[16] = {1, 0, 0, 1, -1, 0, 0, -1, 0.7f, 0.7f, -0.7f, 0.7f, 0.7f, -0.7f, -0.7f, -0.7f};

START_TEST(oom_checkpoints)
{
    score_schedule *s = make_vp();
    score_model *m;
    score_sde *sde;
    score_loss *loss;
    score_trainer *tr;
    void *buf;
    size_t len;
    unsigned long n;
    double v;
    ck_assert_ok(score_model_new_mlp(&m, 2, 8, 1, SCORE_ACT_TANH, 1));
    ck_assert_ok(score_sde_new(&sde, s, m, SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_loss_new(&loss, SCORE_LOSS_SDE));
    ck_assert_ok(score_trainer_new(&tr, m, sde, loss, SCORE_OPTIMIZER_ADAM));
    ck_assert_ok(score_trainer_set_data(tr, 8, 2, ring));
    ck_assert_ok(score_trainer_step(tr, &v));
    ck_assert_ok(score_trainer_save_buffer(tr, &buf, &len));
    for (n = 1;; n++) {
        int rc;
        arm(n);
        rc = score_trainer_load_buffer(tr, buf, len);
        arm(0);
        if (rc == SCORE_OK)
            break;
        ck_assert_msg(rc == SCORE_E_NOMEM, "trainer load, allocation %lu: %d (%s)", n, rc,
                      score_last_error_message());
    }
    ck_assert_uint_ge(n, 4);
    for (n = 1;; n++) {
        score_model *l = (score_model *)1;
        int rc;
        arm(n);
        rc = score_trainer_checkpoint_model_buffer(&l, buf, len, 1);
        arm(0);
        if (rc == SCORE_OK) {
            score_model_free(l);
            break;
        }
        ck_assert_msg(rc == SCORE_E_NOMEM, "checkpoint model, allocation %lu: %d (%s)", n, rc,
                      score_last_error_message());
        ck_assert_ptr_null(l);
    }
    ck_assert_uint_ge(n, 4);
    /* an unknown tensor in a checkpoint is refused */
    {
        file f = {buf, len}, g = rebuild(&f, NULL, NULL, NULL, 0, 0, "optimizer.extra");
        dump("checkpoint-extra-tensor", &g);
        ck_assert_fails_with(score_trainer_load_buffer(tr, g.p, g.len), SCORE_E_FORMAT);
        ck_assert_ptr_nonnull(strstr(score_last_error_message(), "unexpected tensor 'optimizer.extra'"));
        free(g.p);
    }
    /* huge averaged weights: the EMA model of the checkpoint is probed like a model file */
    {
        file f = {buf, len}, g = rebuild(&f, NULL, NULL, "ema.shadow", -1, 3e38, NULL);
        score_model *l = (score_model *)1;
        ck_assert_ok(score_trainer_checkpoint_model_buffer(&l, buf, len, 1));
        score_model_free(l);
        ck_assert_fails_with(score_trainer_checkpoint_model_buffer(&l, g.p, g.len, 1), SCORE_E_FORMAT);
        ck_assert_ptr_null(l);
        ck_assert_ptr_nonnull(strstr(score_last_error_message(), "probe batch"));
        free(g.p);
    }
    score_free(buf);
    score_trainer_free(tr);
    score_loss_free(loss);
    score_sde_free(sde);
    score_model_free(m);
    score_schedule_free(s);
}
END_TEST

/* The fuzzing seeds (tests/fuzz/corpus, path in $SCORE_FUZZ_CORPUS): hostile-valid-* and the
 * saved models load, every other hostile-* file is refused with SCORE_E_FORMAT. */
START_TEST(fuzz_seed_corpus)
{
    const char *dir = getenv("SCORE_FUZZ_CORPUS");
    DIR *d;
    struct dirent *e;
    size_t n_ok = 0, n_bad = 0;
    if (dir == NULL || dir[0] == '\0')
        return; /* run outside meson */
    d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL) {
        char path[1024];
        FILE *in;
        file f;
        long sz;
        int hostile = strncmp(e->d_name, "hostile-", 8) == 0;
        int valid = !hostile || strncmp(e->d_name, "hostile-valid-", 14) == 0;
        score_model *m = (score_model *)1;
        int rc;
        if (strstr(e->d_name, ".safetensors") == NULL)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        in = fopen(path, "rb");
        ck_assert_ptr_nonnull(in);
        ck_assert_int_eq(fseek(in, 0, SEEK_END), 0);
        sz = ftell(in);
        ck_assert_int_ge(sz, 0);
        rewind(in);
        f.len = (size_t)sz;
        f.p = malloc(f.len ? f.len : 1);
        ck_assert_uint_eq(fread(f.p, 1, f.len, in), f.len);
        fclose(in);
        rc = score_model_load_buffer(&m, f.p, f.len);
        ck_assert_msg(rc == (valid ? SCORE_OK : SCORE_E_FORMAT), "%s: status %d (%s)", e->d_name,
                      rc, score_last_error_message());
        if (rc == SCORE_OK)
            score_model_free(m);
        else
            ck_assert_ptr_null(m);
        valid ? n_ok++ : n_bad++;
        free(f.p);
    }
    closedir(d);
    ck_assert_uint_ge(n_ok, 10);
    ck_assert_uint_ge(n_bad, 40);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("model-hostile");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, container_rules);
    tcase_add_test(tc, unknown_tensors);
    tcase_add_test(tc, unet_tensors);
    tcase_add_test(tc, analytic_parameters);
    tcase_add_test(tc, huge_weights);
    tcase_add_test(tc, oom_model_files);
    tcase_add_test(tc, oom_json_parser);
    tcase_add_test(tc, oom_checkpoints);
    tcase_add_test(tc, fuzz_seed_corpus);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
