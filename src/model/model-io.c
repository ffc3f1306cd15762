/* Model files: the generic part of score_model_save/load (safetensors container, format and
 * kind metadata, user metadata as "user.<key>"); each kind stores its own architecture and tensors through the save/load
 * hooks of its ops table. */
#include <stdio.h>
#include <string.h>

#include "io/safetensors-priv.h"
#include "libscore/version.h"
#include "classifier-priv.h"
#include "mlp-priv.h"

#define FORMAT_NAME "libscore"
#define FORMAT_VERSION "1"

/* Kinds that can be loaded, matched on the "kind" metadata against ops->name. */
static const score__model_ops *const loadable[] = {
    &score__mlp_ops,
    &score__classifier_ops,
    &score__energy_ops,
    &score__gaussian_ops,
    &score__gmm_ops,
    &score__unet_ops,
};

int score__model_save_to_writer(const char *fn, const score_model *m, score__st_writer *w)
{
    int rc;
    if (m->ops->save == NULL)
        return score__error(SCORE_E_UNSUPPORTED, fn, "%s models cannot be saved", m->ops->name);
    if (!m->prepared) {
        /* A configuring model is saved as it will be once prepared (its deterministic
         * initialisation), without changing the caller's const model: prepare a copy. */
        score_model *tmp = NULL;
        if ((rc = score_model_clone(&tmp, m)) == SCORE_OK &&
            (rc = score_model_prepare(tmp)) == SCORE_OK)
            rc = score__model_save_to_writer(fn, tmp, w);
        score_model_free(tmp);
        return rc;
    }
    rc = score__st_writer_meta(fn, w, "format", FORMAT_NAME);
    if (rc == SCORE_OK)
        rc = score__st_writer_meta(fn, w, "version", FORMAT_VERSION);
    if (rc == SCORE_OK)
        rc = score__st_writer_meta(fn, w, "kind", m->ops->name);
    if (rc == SCORE_OK)
        rc = score__st_writer_meta(fn, w, "library", SCORE_VERSION_STRING);
    if (rc == SCORE_OK)
        rc = m->ops->save(m, w);
    /* user metadata (score_model_set_metadata()), as "user.<key>" */
    for (size_t i = 0; rc == SCORE_OK && i < score_model_metadata_count(m); i++) {
        const char *key, *value;
        char name[sizeof SCORE__META_FILE_PREFIX + SCORE__META_MAX_KEY];
        if (score__model_meta_at(m, i, &key, &value) != SCORE_OK)
            break;
        memcpy(name, SCORE__META_FILE_PREFIX, sizeof SCORE__META_FILE_PREFIX - 1);
        strcpy(name + sizeof SCORE__META_FILE_PREFIX - 1, key); /* key <= 128 bytes, checked */
        rc = score__st_writer_meta(fn, w, name, value);
    }
    return rc;
}

static int save_to_buffer(const char *fn, const score_model *m, void **buf, size_t *len)
{
    score__st_writer *w = NULL;
    int rc;
    if ((rc = score__st_writer_new(fn, &w)) != SCORE_OK)
        return rc;
    if ((rc = score__model_save_to_writer(fn, m, w)) == SCORE_OK)
        rc = score__st_writer_finish(fn, w, buf, len);
    score__st_writer_free(w);
    return rc;
}

int score_model_save_buffer(const score_model *model, void **buf_out, size_t *len_out)
{
    if (buf_out != NULL)
        *buf_out = NULL;
    if (len_out != NULL)
        *len_out = 0;
    if (model == NULL || buf_out == NULL || len_out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "model, buf_out or len_out is NULL");
    return save_to_buffer(__func__, model, buf_out, len_out);
}

int score__save_file_via_buffer(const char *fn, const char *path, const void *obj,
                                score__to_buffer_fn to_buffer)
{
    void *buf = NULL;
    size_t len = 0;
    int rc;
    if (path[0] == '\0')
        return score__error(SCORE_E_INVAL, fn, "path is empty");
    if ((rc = to_buffer(fn, obj, &buf, &len)) != SCORE_OK)
        return rc;
    rc = score__st_save_file(fn, path, buf, len);
    score__free(buf);
    return rc;
}

static int model_to_buffer(const char *fn, const void *obj, void **buf, size_t *len)
{
    return save_to_buffer(fn, obj, buf, len);
}

int score_model_save(const score_model *model, const char *path)
{
    if (model == NULL || path == NULL)
        return score__error(SCORE_E_INVAL, __func__, "model or path is NULL");
    return score__save_file_via_buffer(__func__, path, model, model_to_buffer);
}

/* Restores the "user.<key>" entries: hostile input, validated like the setter's arguments
 * (SCORE_E_FORMAT). */
static int load_user_meta(const char *fn, score_model *m, const score__st_reader *r)
{
    const size_t pl = sizeof SCORE__META_FILE_PREFIX - 1;
    for (size_t i = 0; i < score__st_meta_count(r); i++) {
        const char *key, *value;
        int rc;
        if (score__st_meta_at(r, i, &key, &value) != SCORE_OK || key == NULL || value == NULL)
            return score__error(SCORE_E_FORMAT, fn, "unreadable metadata entry %zu", i);
        if (strncmp(key, SCORE__META_FILE_PREFIX, pl) != 0)
            continue;
        if ((rc = score__model_meta_set(fn, SCORE_E_FORMAT, m, key + pl, value)) != SCORE_OK)
            return rc;
    }
    return SCORE_OK;
}

/* score__model_infer() with a zero context vector (one for all rows) when the model has a
 * context input. */
static int probe_infer(const char *fn, score_model *m, size_t rows, const float *x, const double *c, float *out)
{
    const size_t mc = (size_t)score__model_i64(m, SCORE_MODEL_PARAM_CONTEXT_DIM);
    score__model_ws *ws;
    float *zero;
    int rc;
    if (mc == 0)
        return score__model_infer(m, rows, x, c, out);
    zero = score__calloc(mc, sizeof *zero);
    if (zero == NULL || score__model_ws_new(&ws) != SCORE_OK) {
        score__free(zero);
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    }
    ws->context = zero;
    rc = score__model_infer_ws(m, ws, rows, x, c, out);
    score__model_ws_free(ws);
    score__free(zero);
    return rc;
}

/* The probe batch every loaded model is evaluated on: 3 rows, x = 0, x = (+1, -1, +1, ...)
 * and x_j = 2 (j + 1) / dim - 1 ramping up to 1, each with a conditioning value c: 0, 0.5
 * and 1 for MLPs and U-Nets (their embeddings are bounded functions of c), 0 for the analytic kinds
 * (c is the time t; t = 0, the data's own score, has the smallest variances). A model whose
 * outputs are not all finite there is refused: huge but finite weights (e.g. 3e38) overflow
 * the first products and would otherwise load and compute NaN or infinity. */
int score__model_probe(const char *fn, score_model *m)
{
    enum { ROWS = 3 };
    const size_t d = score_model_dim(m);
    const int analytic = m->kind != SCORE_MODEL_MLP && m->kind != SCORE_MODEL_ENERGY &&
                         m->kind != SCORE_MODEL_UNET;
    double c[ROWS];
    float *x, *out;
    int rc;
    if (m->kind == SCORE_MODEL_CLASSIFIER)
        return score__classifier_probe(fn, m);
    x = score__calloc(2 * ROWS * d, sizeof *x);
    if (x == NULL)
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    out = x + ROWS * d;
    for (size_t j = 0; j < d; j++) {
        x[d + j] = j % 2 == 0 ? 1.0f : -1.0f;
        x[2 * d + j] = (float)(2.0 * (double)(j + 1) / (double)d - 1.0);
    }
    for (int b = 0; b < ROWS; b++)
        c[b] = analytic ? 0.0 : 0.5 * b;
    /* the cache-free evaluation in a workspace of this call: nothing stays in the model; the
     * null label, and a zero context vector for a model with a context input */
    rc = probe_infer(fn, m, ROWS, x, c, out);
    if (rc == SCORE_OK && !score__all_finite_f32(ROWS * d, out))
        rc = score__error(SCORE_E_NUMERIC, fn, "an output holds NaN or infinity");
    score__free(x);
    if (rc == SCORE_OK || rc == SCORE_E_NOMEM)
        return rc;
    {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", score_last_error_message());
        return score__error(SCORE_E_FORMAT, fn, "the model does not evaluate to finite values on "
                            "the probe batch (doc/model-format.md): %s", msg);
    }
}

int score__model_load_from_reader(const char *fn, score_model **out, const score__st_reader *r)
{
    const char *format = score__st_meta(r, "format");
    const char *version = score__st_meta(r, "version");
    const char *kind = score__st_meta(r, "kind");
    if (format == NULL || strcmp(format, FORMAT_NAME) != 0)
        return score__error(SCORE_E_FORMAT, fn, "not a libscore model file (metadata 'format')");
    if (version == NULL || strcmp(version, FORMAT_VERSION) != 0)
        return score__error(SCORE_E_FORMAT, fn, "unsupported format version '%.20s' (this library reads %s)",
                            version ? version : "(missing)", FORMAT_VERSION);
    if (kind == NULL)
        return score__error(SCORE_E_FORMAT, fn, "metadata 'kind' is missing");
    for (size_t i = 0; i < sizeof loadable / sizeof loadable[0]; i++) {
        if (loadable[i]->load != NULL && strcmp(loadable[i]->name, kind) == 0) {
            int rc = loadable[i]->load(out, r);
            if (rc == SCORE_OK && *out == NULL)
                return score__error(SCORE_E_GENERIC, fn, "the %s loader returned no model", kind);
            if (rc == SCORE_OK &&
                ((rc = score__model_probe(fn, *out)) != SCORE_OK || (rc = load_user_meta(fn, *out, r)) != SCORE_OK)) {
                score_model_free(*out);
                *out = NULL;
            }
            return rc;
        }
    }
    return score__error(SCORE_E_FORMAT, fn, "unknown or unloadable model kind '%.40s'", kind);
}

static int load_model_cb(const char *fn, const score__st_reader *r, void *out)
{
    return score__model_load_from_reader(fn, (score_model **)out, r);
}

int score_model_load_buffer(score_model **out, const void *buf, size_t len)
{
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (buf == NULL)
        return score__error(SCORE_E_INVAL, __func__, "buf is NULL");
    return score__st_load(__func__, NULL, buf, len, load_model_cb, out);
}

int score_model_load(score_model **out, const char *path)
{
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (path == NULL)
        return score__error(SCORE_E_INVAL, __func__, "path is NULL");
    return score__st_load(__func__, path, NULL, 0, load_model_cb, out);
}

int score__st_arch_refused(const char *fn, score_model *m, int rc)
{
    char msg[256];
    score_model_free(m);
    if (rc == SCORE_E_NOMEM)
        return rc;
    snprintf(msg, sizeof msg, "%s", score_last_error_message());
    return score__error(SCORE_E_FORMAT, fn, "the architecture in the metadata is invalid: %s",
                        msg);
}
