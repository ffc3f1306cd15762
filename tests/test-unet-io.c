/* U-Net model files (src/model/unet-io.c): save -> load is bit-exact (parameters, the Fourier
 * projection, outputs); the tensors carry the PyTorch names and shapes of doc/unet.md, in the
 * flat layout's order; the generative model file carries a U-Net; a file whose tensors do not
 * match its metadata is refused with a message naming the tensor. (Hostile variants and
 * allocation failures: test-model-hostile.c; the PyTorch module: tests/python.) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers/test-helpers.h"
#include "io/safetensors-priv.h"
#include "model/model-priv.h"

static float frand(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

/* 2 x 4 x 4 images, base 4, widths {1, 2}, 1 block, 2 groups, embedding 4 -> T = 8. */
static score_model *small_unet(int64_t K, int attention, int emb)
{
    score_model *m;
    const size_t mults[2] = {1, 2};
    ck_assert_ok(score_model_new_unet(&m, 2, 4, 4));
    ck_assert_ok(score_model_set_unet_widths(m, 2, mults));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_UNET_BASE_WIDTH, 4));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_UNET_BLOCKS, 1));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_UNET_GROUPS, 2));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_UNET_ATTENTION, attention));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_UNET_TEMB_DIM, 8));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_EMBEDDING, emb));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_EMBED_DIM, 4));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_NUM_CLASSES, K));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_SEED, 7));
    return m;
}

/* Random parameters (GroupNorm scales near 1): a network whose output is not 0. */
static void randomize(score_model *m, unsigned seed)
{
    size_t np;
    float *p;
    ck_assert_ok(score_model_prepare(m));
    np = score_model_param_count(m);
    p = malloc(np * sizeof *p);
    ck_assert_ok(score_model_params_get(m, p, np));
    for (size_t i = 0; i < np; i++)
        p[i] = (p[i] == 1.0f ? 1.0f : 0.0f) + 0.3f * frand(&seed);
    ck_assert_ok(score_model_params_set(m, p, np));
    free(p);
}

/* Parameters, outputs (labels and the null label) and architecture bit for bit. */
static void assert_same(score_model *a, score_model *b)
{
    enum { N = 3, DIM = 32 };
    size_t np = score_model_param_count(a), la = 0, lb = 0, ma[6], mb[6];
    float *pa, *pb, x[N * DIM], ya[N * DIM], yb[N * DIM];
    double c[N] = {0.05, 0.4, 0.9};
    int64_t k = 0;
    int32_t lab[N] = {0, 1, 0};
    unsigned s = 3;
    ck_assert_int_eq(score_model_kind(b), SCORE_MODEL_UNET);
    ck_assert_uint_eq(score_model_dim(b), DIM);
    ck_assert_uint_eq(score_model_param_count(b), np);
    ck_assert_int_eq(score__model_same_architecture(a, b), 1);
    ck_assert_ok(score_model_get_unet_widths(a, &la, ma, 6));
    ck_assert_ok(score_model_get_unet_widths(b, &lb, mb, 6));
    ck_assert_uint_eq(la, lb);
    ck_assert_int_eq(memcmp(ma, mb, la * sizeof *ma), 0);
    for (int id = SCORE_MODEL_PARAM_UNET_BASE_WIDTH; id <= SCORE_MODEL_PARAM_UNET_ATTENTION; id++) {
        int64_t va, vb;
        ck_assert_ok(score_model_get_i64(a, id, &va));
        ck_assert_ok(score_model_get_i64(b, id, &vb));
        ck_assert_int_eq(va, vb);
    }
    pa = malloc(np * sizeof *pa);
    pb = malloc(np * sizeof *pb);
    ck_assert_ok(score_model_params_get(a, pa, np));
    ck_assert_ok(score_model_params_get(b, pb, np));
    ck_assert_int_eq(memcmp(pa, pb, np * sizeof *pa), 0);
    for (size_t i = 0; i < N * DIM; i++)
        x[i] = 2.0f * frand(&s);
    ck_assert_ok(score_model_get_i64(a, SCORE_MODEL_PARAM_NUM_CLASSES, &k));
    ck_assert_ok(score_model_forward_cond(a, N, x, c, k > 0 ? lab : NULL, NULL, ya));
    ck_assert_ok(score_model_forward_cond(b, N, x, c, k > 0 ? lab : NULL, NULL, yb));
    ck_assert_int_eq(memcmp(ya, yb, sizeof ya), 0);
    ck_assert_ok(score_model_forward(a, N, x, c, ya)); /* the null label */
    ck_assert_ok(score_model_forward(b, N, x, c, yb));
    ck_assert_int_eq(memcmp(ya, yb, sizeof ya), 0);
    {
        double norm = 0.0;
        for (size_t i = 0; i < N * DIM; i++)
            norm += fabs((double)ya[i]);
        ck_assert(norm > 1.0); /* a real network, not the zero initial one */
    }
    free(pa);
    free(pb);
}

START_TEST(round_trip_bit_exact)
{
    const struct { int64_t K; int att, emb; } cfg[3] = {
        {3, 1, SCORE_EMBED_FOURIER}, {0, 0, SCORE_EMBED_SINUSOIDAL}, {1, 1, SCORE_EMBED_SINUSOIDAL}};
    for (int i = 0; i < 3; i++) {
        score_model *m = small_unet(cfg[i].K, cfg[i].att, cfg[i].emb), *back = NULL;
        void *buf = NULL;
        size_t len = 0;
        randomize(m, 10u + (unsigned)i);
        ck_assert_uint_ne(score_model_capabilities(m) & SCORE_MODEL_CAP_SAVE, 0);
        ck_assert_ok(score_model_set_metadata(m, "note", "kept"));
        ck_assert_ok(score_model_save_buffer(m, &buf, &len));
        ck_assert_ok(score_model_load_buffer(&back, buf, len));
        assert_same(m, back);
        {
            const char *v = NULL;
            ck_assert_ok(score_model_get_metadata(back, "note", &v));
            ck_assert_str_eq(v, "kept");
        }
        /* saved again: the same bytes */
        {
            void *buf2 = NULL;
            size_t len2 = 0;
            ck_assert_ok(score_model_save_buffer(back, &buf2, &len2));
            ck_assert_uint_eq(len2, len);
            ck_assert_int_eq(memcmp(buf, buf2, len), 0);
            score_free(buf2);
        }
        score_free(buf);
        score_model_free(back);
        score_model_free(m);
    }
}
END_TEST

START_TEST(round_trip_file_and_unprepared)
{
    /* a configuring model is saved as it will be once prepared */
    score_model *m = small_unet(2, 1, SCORE_EMBED_FOURIER), *back = NULL, *ref = NULL;
    const char *path = "test-unet-io.safetensors"; /* in the test's working directory */
    ck_assert_ok(score_model_save(m, path));
    ck_assert_ok(score_model_load(&back, path));
    ck_assert_ok(score_model_clone(&ref, m));
    ck_assert_ok(score_model_prepare(ref));
    {
        size_t np = score_model_param_count(ref);
        float *a = malloc(np * sizeof *a), *b = malloc(np * sizeof *b);
        ck_assert_ok(score_model_params_get(ref, a, np));
        ck_assert_ok(score_model_params_get(back, b, np));
        ck_assert_int_eq(memcmp(a, b, np * sizeof *a), 0);
        ck_assert_int_eq(score__model_same_architecture(ref, back), 1);
        free(a);
        free(b);
    }
    remove(path);
    score_model_free(back);
    score_model_free(ref);
    score_model_free(m);
}
END_TEST

/* A tensor of the file: present, F32, of this shape. */
static void has(const score__st_reader *r, const char *name, size_t ndim, uint64_t d0,
                uint64_t d1, uint64_t d2, uint64_t d3)
{
    const score__st_tensor *t = score__st_find(r, name);
    const uint64_t d[4] = {d0, d1, d2, d3};
    ck_assert_msg(t != NULL, "tensor %s is missing", name);
    ck_assert_int_eq(t->dtype, SCORE__ST_F32);
    ck_assert_uint_eq(t->ndim, ndim);
    for (size_t i = 0; i < ndim; i++)
        ck_assert_msg(t->shape[i] == d[i], "%s: dimension %zu is %llu, not %llu", name, i,
                      (unsigned long long)t->shape[i], (unsigned long long)d[i]);
}

START_TEST(tensor_names_and_shapes)
{
    /* C = 2, base 4, widths {1, 2} -> 4, 8; T = 8, E = 4, K = 3 */
    score_model *m = small_unet(3, 1, SCORE_EMBED_FOURIER);
    score__st_reader *r;
    void *buf;
    size_t len, np, off = 0, prev_end = 0;
    float *p;
    randomize(m, 5);
    ck_assert_ok(score_model_save_buffer(m, &buf, &len));
    ck_assert_ok(score__st_reader_open("test", &r, buf, len, 0));
    ck_assert_str_eq(score__st_meta(r, "kind"), "unet");
    ck_assert_str_eq(score__st_meta(r, "unet_mults"), "1,2");
    ck_assert_str_eq(score__st_meta(r, "unet_temb_dim"), "8");
    ck_assert_str_eq(score__st_meta(r, "channels"), "2");
    has(r, "temb.0.weight", 2, 8, 4, 0, 0);
    has(r, "temb.1.weight", 2, 8, 8, 0, 0);
    has(r, "label_emb.weight", 2, 4, 8, 0, 0);
    has(r, "conv_in.weight", 4, 4, 2, 3, 3);
    has(r, "conv_in.bias", 1, 4, 0, 0, 0);
    has(r, "down.0.res.0.norm1.weight", 1, 4, 0, 0, 0);
    has(r, "down.0.res.0.conv1.weight", 4, 4, 4, 3, 3);
    has(r, "down.0.res.0.temb_proj.weight", 2, 4, 8, 0, 0);
    has(r, "down.1.res.0.conv1.weight", 4, 8, 4, 3, 3);
    has(r, "down.1.res.0.skip.weight", 4, 8, 4, 1, 1);
    has(r, "mid.res.0.conv2.weight", 4, 8, 8, 3, 3);
    has(r, "mid.attn.norm.weight", 1, 8, 0, 0, 0);
    has(r, "mid.attn.q.weight", 4, 8, 8, 1, 1);
    has(r, "mid.attn.proj.bias", 1, 8, 0, 0, 0);
    has(r, "mid.res.1.norm2.bias", 1, 8, 0, 0, 0);
    has(r, "up.1.res.0.conv1.weight", 4, 8, 16, 3, 3); /* cat(8, 8) */
    has(r, "up.1.res.1.skip.weight", 4, 8, 12, 1, 1);  /* cat(8, 4): the pooled skip */
    has(r, "up.1.conv.weight", 4, 8, 8, 3, 3);
    has(r, "up.0.res.0.conv1.weight", 4, 4, 12, 3, 3);
    has(r, "up.0.res.1.skip.weight", 4, 4, 8, 1, 1);
    has(r, "norm_out.weight", 1, 4, 0, 0, 0);
    has(r, "conv_out.weight", 4, 2, 4, 3, 3);
    has(r, "conv_out.bias", 1, 2, 0, 0, 0);
    has(r, "embed.W", 1, 2, 0, 0, 0);
    ck_assert_ptr_null(score__st_find(r, "down.0.res.0.skip.weight")); /* 4 -> 4: identity */
    ck_assert_ptr_null(score__st_find(r, "up.0.conv.weight"));
    /* 4 + 1 + 2 + 12 (down.0: 10, down.1: 12) + 10 + 10 + 10 + (12 + 12 + 2) + (12 + 12)
     * + 4 + 1 tensors */
    ck_assert_uint_eq(score__st_count(r), 4 + 1 + 2 + 22 + 30 + 26 + 24 + 4 + 1);
    /* the tensors in data order are the flat parameters, bit for bit */
    np = score_model_param_count(m);
    p = malloc(np * sizeof *p);
    ck_assert_ok(score_model_params_get(m, p, np));
    for (size_t i = 0; i < score__st_count(r); i++) {
        const score__st_tensor *t = score__st_tensor_at(r, i);
        size_t begin = (size_t)(t->data - score__st_tensor_at(r, 0)->data);
        float v;
        ck_assert_uint_eq(begin, prev_end); /* in header order, contiguous */
        prev_end = begin + t->nbytes;
        if (strcmp(t->name, "embed.W") == 0)
            continue;
        for (size_t e = 0; e < t->count; e++) {
            memcpy(&v, t->data + 4 * e, 4);
            ck_assert_msg(memcmp(&v, &p[off + e], 4) == 0, "%s[%zu] is not parameter %zu",
                          t->name, e, off + e);
        }
        off += t->count;
    }
    ck_assert_uint_eq(off, np);
    free(p);
    score__st_reader_free(r);
    score_free(buf);
    score_model_free(m);
}
END_TEST

START_TEST(genmodel_carries_unet)
{
    score_model *m = small_unet(3, 1, SCORE_EMBED_FOURIER);
    score_schedule *s;
    score_sde *sde;
    score_genmodel *gm, *back;
    void *buf;
    size_t len;
    double shift[32], scale[32];
    int64_t v = 0;
    randomize(m, 8);
    ck_assert_ok(score_schedule_new(&s, SCORE_SCHEDULE_VP));
    ck_assert_ok(score_schedule_prepare(s));
    ck_assert_ok(score_sde_new(&sde, s, m, SCORE_OUTPUT_EPS));
    ck_assert_ok(score_genmodel_new(&gm, sde));
    for (int j = 0; j < 32; j++) {
        shift[j] = 127.5;
        scale[j] = 127.5;
    }
    ck_assert_ok(score_genmodel_set_transform(gm, shift, scale));
    ck_assert_ok(score_genmodel_save_buffer(gm, &buf, &len));
    ck_assert_ok(score_genmodel_load_buffer(&back, buf, len));
    ck_assert_uint_eq(score_genmodel_dim(back), 32);
    ck_assert_ok(score_genmodel_get_i64(back, SCORE_SDE_PARAM_OUTPUT, &v));
    ck_assert_int_eq(v, SCORE_OUTPUT_EPS);
    assert_same(m, score_genmodel_model(back));
    score_free(buf);
    score_genmodel_free(back);
    score_genmodel_free(gm);
    score_sde_free(sde);
    score_schedule_free(s);
    score_model_free(m);
}
END_TEST

/* The saved file with metadata `key` set to `value`. */
static int load_with(const void *buf, size_t len, const char *key, const char *value)
{
    score__st_reader *r;
    score__st_writer *w;
    score_model *m = (score_model *)1;
    void *out;
    size_t olen;
    int rc;
    ck_assert_ok(score__st_reader_open("test", &r, buf, len, 0));
    ck_assert_ok(score__st_writer_new("test", &w));
    for (size_t i = 0; i < score__st_meta_count(r); i++) {
        const char *k, *v;
        ck_assert_ok(score__st_meta_at(r, i, &k, &v));
        ck_assert_ok(score__st_writer_meta("test", w, k, strcmp(k, key) == 0 ? value : v));
    }
    for (size_t i = 0; i < score__st_count(r); i++) {
        const score__st_tensor *t = score__st_tensor_at(r, i);
        float *d = malloc(t->nbytes);
        ck_assert_ok(score__st_get_f32("test", r, t->name, t->ndim, t->shape, d, 0));
        ck_assert_ok(score__st_writer_add_f32("test", w, t->name, t->ndim, t->shape, d));
        free(d);
    }
    ck_assert_ok(score__st_writer_finish("test", w, &out, &olen));
    rc = score_model_load_buffer(&m, out, olen);
    if (rc == SCORE_OK)
        score_model_free(m);
    else
        ck_assert_ptr_null(m);
    score_free(out);
    score__st_writer_free(w);
    score__st_reader_free(r);
    return rc;
}

static void refused(const void *buf, size_t len, const char *key, const char *value,
                    const char *needle)
{
    score_last_error_clear();
    ck_assert_int_eq(load_with(buf, len, key, value), SCORE_E_FORMAT);
    ck_assert_msg(strstr(score_last_error_message(), needle) != NULL,
                  "%s = %s: message '%s' does not name '%s'", key, value,
                  score_last_error_message(), needle);
}

START_TEST(metadata_and_tensors_must_agree)
{
    score_model *m = small_unet(3, 1, SCORE_EMBED_FOURIER);
    void *buf;
    size_t len;
    randomize(m, 6);
    ck_assert_ok(score_model_save_buffer(m, &buf, &len));
    ck_assert_int_eq(load_with(buf, len, "kind", "unet"), SCORE_OK);
    /* an architecture the tensors do not have: the first tensor that differs is named */
    refused(buf, len, "unet_base_width", "5", "tensor 'conv_in.weight' must be F32 of shape "
                                              "[5, 2, 3, 3]");
    refused(buf, len, "unet_blocks", "2", "tensor 'down.0.res.1.norm1.weight' (F32 [4]) is "
                                          "missing");
    refused(buf, len, "unet_attention", "0", "unexpected tensor 'mid.attn.norm.weight'");
    refused(buf, len, "num_classes", "0", "unexpected tensor 'label_emb.weight'");
    refused(buf, len, "num_classes", "4", "tensor 'label_emb.weight' must be F32 of shape [5, 8]");
    refused(buf, len, "unet_temb_dim", "0", "metadata 'unet_temb_dim' = '0' is not an integer "
                                            "in [1, 65536]");
    refused(buf, len, "embedding", "sinusoidal", "unexpected tensor 'embed.W'");
    refused(buf, len, "embedding", "none", "metadata 'embedding'");
    refused(buf, len, "unet_mults", "1,2,2", "tensor 'down.2.res.0.norm1.weight'");
    refused(buf, len, "unet_mults", "1,0", "metadata 'unet_mults'");
    refused(buf, len, "unet_mults", "1,2,", "metadata 'unet_mults'");
    refused(buf, len, "unet_mults", "1,1,1,1,1,1,1", "metadata 'unet_mults'");
    refused(buf, len, "unet_mults", "4096,1", "metadata 'unet_mults'");
    refused(buf, len, "dim", "33", "is not channels x height x width");
    refused(buf, len, "channels", "3", "is not channels x height x width");
    refused(buf, len, "fourier_scale", "-1", "fourier_scale");
    refused(buf, len, "seed", "x", "metadata 'seed'");
    /* tensors that fit, an architecture that does not: the model's own check */
    refused(buf, len, "unet_groups", "3", "the architecture in the metadata is invalid");
    score_free(buf);
    score_model_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("unet-io");
    TCase *tc = tcase_create("files");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, round_trip_bit_exact);
    tcase_add_test(tc, round_trip_file_and_unprepared);
    tcase_add_test(tc, tensor_names_and_shapes);
    tcase_add_test(tc, genmodel_carries_unet);
    tcase_add_test(tc, metadata_and_tensors_must_agree);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
