/* libFuzzer target: score_model_load_buffer() and score_genmodel_load_buffer() on arbitrary
 * bytes must never crash, over-read or leak; a model that loads must compute (SCORE_OK, or
 * SCORE_E_NUMERIC when an output overflows outside the loader's probe batch), save and load
 * again to the same bytes; a generative model that loads must save and load again to the same
 * bytes (files of the score tool of 0.1 after one save).
 * The seeds in corpus/ are saved models and, as hostile-*.safetensors, the meaning-check
 * corpus of tests/test-model-hostile.c (regenerate them with SCORE_HOSTILE_DIR set).
 * Built with -Dfuzz=true (clang, -fsanitize=fuzzer,address); see tests/fuzz/meson.build. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libscore/libscore.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The generative model loader on the same bytes. */
static void genmodel_load(const uint8_t *data, size_t size)
{
    score_genmodel *g = NULL, *g2 = NULL, *g3 = NULL;
    void *b1 = NULL, *b2 = NULL;
    size_t l1 = 0, l2 = 0;
    if (score_genmodel_load_buffer(&g, data, size) != SCORE_OK) {
        if (g != NULL)
            abort();
        return;
    }
    if (score_genmodel_save_buffer(g, &b1, &l1) != SCORE_OK ||
        score_genmodel_load_buffer(&g2, b1, l1) != SCORE_OK ||
        score_genmodel_check_compatible(g, g2) != SCORE_OK ||
        score_genmodel_save_buffer(g2, &b2, &l2) != SCORE_OK || l1 != l2 ||
        memcmp(b1, b2, l1) != 0 || score_genmodel_load_buffer(&g3, b2, l2) != SCORE_OK)
        abort();
    score_free(b1);
    score_free(b2);
    score_genmodel_free(g3);
    score_genmodel_free(g2);
    score_genmodel_free(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    score_model *m = NULL, *m2 = NULL;
    genmodel_load(data, size);
    void *buf = NULL, *buf2 = NULL;
    size_t len = 0, len2 = 0;
    if (score_model_load_buffer(&m, data, size) != SCORE_OK) {
        if (m != NULL)
            abort(); /* a failed load must leave *out NULL */
        return 0;
    }
    {
        enum { N = 2, MAXD = 64 };
        size_t dim = score_model_dim(m);
        float x[N * MAXD], out[N * MAXD];
        double c[N] = {0.125, 0.875}, tr[N];
        if (dim <= MAXD) {
            for (size_t i = 0; i < N * dim; i++)
                x[i] = (float)((int)(i % 5) - 2) * 0.5f;
            int64_t cdim = 0;
            if (score_model_get_i64(m, SCORE_MODEL_PARAM_CONTEXT_DIM, &cdim) != SCORE_OK)
                cdim = 0; /* kinds without the parameter take no context */
            if (cdim > 0) {
                /* a context model computes with its context; the plain calls refuse it */
                float *ctx = calloc((size_t)cdim * N, sizeof(float));
                if (ctx == NULL)
                    abort();
                int rf = score_model_forward_cond(m, N, x, c, NULL, ctx, out);
                int rt = score_model_trace(m, N, x, c, tr, NULL);
                free(ctx);
                if ((rf != SCORE_OK && rf != SCORE_E_NUMERIC) || rt != SCORE_E_INVAL)
                    abort();
            } else {
                /* a kind without the exact trace (U-Net) refuses it as unsupported */
                int has_trace = (score_model_capabilities(m) & SCORE_MODEL_CAP_TRACE) != 0;
                int rf = score_model_forward(m, N, x, c, out);
                int rt = score_model_trace(m, N, x, c, tr, NULL);
                if ((rf != SCORE_OK && rf != SCORE_E_NUMERIC) ||
                    (has_trace && rt != SCORE_OK && rt != SCORE_E_NUMERIC) ||
                    (!has_trace && rt != SCORE_E_UNSUPPORTED))
                    abort();
            }
        }
    }
    /* A loaded model re-serialises to a file that loads to the same bytes again. */
    if (score_model_save_buffer(m, &buf, &len) != SCORE_OK ||
        score_model_load_buffer(&m2, buf, len) != SCORE_OK ||
        score_model_save_buffer(m2, &buf2, &len2) != SCORE_OK || len != len2 ||
        memcmp(buf, buf2, len) != 0)
        abort();
    score_free(buf);
    score_free(buf2);
    score_model_free(m2);
    score_model_free(m);
    return 0;
}
