/* MLP save/load hooks (safetensors layout documented in model.h, score_model_save()).
 *
 * Metadata (all strings): dim, widths ("64,64,64": the hidden widths), activation ("silu",
 * "softplus", "tanh", "elu", "gelu"), embedding ("none", "fourier", "sinusoidal"), embed_dim,
 * fourier_scale (a JSON number), residual ("0"/"1"), seed; for a conditional network (a label
 * or a context input) also num_classes and context_dim (both written when either is not 0,
 * neither for an unconditional one, whose files stay as they were; absent = 0).
 * Tensors (F32): layers.<i>.weight [n_{i+1}, n_i] and layers.<i>.bias [n_{i+1}] for
 * i = 0..L-1 (like torch nn.Linear; the context weights are the last context_dim columns of
 * layers.0.weight), embed.W [embed_dim / 2] for the Fourier embedding, and
 * label_embedding.weight [num_classes + 1, n_1] (row y is added to the first hidden layer's
 * pre-activation for label y; the last row is the null label's) with a label input.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "io/safetensors-priv.h"
#include "kernel/kernel-priv.h"
#include "libscore/classifier.h"
#include "mlp-priv.h"
#include "schedule/schedule-io-priv.h"

static const char *const embed_names[] = {"none", "fourier", "sinusoidal"};
static const char label_tensor[] = "label_embedding.weight";

int score__mlp_save(const score_model *m, struct score__st_writer *w)
{
    static const char fn[] = "score_model_save";
    score__mlp_info info;
    char *widths, *num;
    size_t pos = 0, cap;
    cJSON *jn;
    int rc;
    if (score__mlp_info_get(m, &info) != SCORE_OK)
        return score__error(SCORE_E_STAGE, fn, "the model is not prepared");
    cap = 8 * info.n_layers + 1;
    widths = calloc(cap, 1);
    if (widths == NULL)
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    for (size_t l = 1; l < info.n_layers; l++)
        pos += (size_t)snprintf(widths + pos, cap - pos, l > 1 ? ",%zu" : "%zu", info.width[l]);
    jn = cJSON_CreateNumber(score__model_f64(m, SCORE_MODEL_PARAM_FOURIER_SCALE));
    num = jn ? cJSON_PrintUnformatted(jn) : NULL;
    cJSON_Delete(jn);
    if (num == NULL) {
        free(widths);
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    }
    rc = score__st_writer_meta_u64(fn, w, "dim", m->dim);
    if (rc == SCORE_OK)
        rc = score__st_writer_meta(fn, w, "widths", widths);
    if (rc == SCORE_OK)
        rc = score__st_writer_meta(fn, w, "activation", score__act_name(info.activation));
    if (rc == SCORE_OK)
        rc = score__st_writer_meta(fn, w, "embedding", embed_names[info.embedding]);
    if (rc == SCORE_OK)
        rc = score__st_writer_meta_u64(fn, w, "embed_dim", (uint64_t)score__model_i64(m, SCORE_MODEL_PARAM_EMBED_DIM));
    if (rc == SCORE_OK)
        rc = score__st_writer_meta(fn, w, "fourier_scale", num);
    if (rc == SCORE_OK)
        rc = score__st_writer_meta_u64(fn, w, "residual", (uint64_t)score__model_i64(m, SCORE_MODEL_PARAM_RESIDUAL));
    if (rc == SCORE_OK)
        rc = score__st_writer_meta_u64(fn, w, "seed", (uint64_t)score__model_i64(m, SCORE_MODEL_PARAM_SEED));
    if (rc == SCORE_OK && (info.num_classes > 0 || info.context_dim > 0)) {
        rc = score__st_writer_meta_u64(fn, w, "num_classes", info.num_classes);
        if (rc == SCORE_OK)
            rc = score__st_writer_meta_u64(fn, w, "context_dim", info.context_dim);
    }
    free(widths);
    cJSON_free(num);
    for (size_t l = 1; l <= info.n_layers && rc == SCORE_OK; l++) {
        char name[48];
        uint64_t shape[2] = {info.width[l], info.width[l - 1]};
        const float *wl = info.params;
        size_t off = 0;
        for (size_t j = 1; j < l; j++)
            off += info.width[j] * info.width[j - 1] + info.width[j];
        snprintf(name, sizeof name, "layers.%zu.weight", l - 1);
        rc = score__st_writer_add_f32(fn, w, name, 2, shape, wl + off);
        if (rc == SCORE_OK) {
            snprintf(name, sizeof name, "layers.%zu.bias", l - 1);
            rc = score__st_writer_add_f32(fn, w, name, 1, shape, wl + off + shape[0] * shape[1]);
        }
    }
    if (rc == SCORE_OK && info.fourier != NULL) {
        uint64_t half = info.embed_in / 2;
        rc = score__st_writer_add_f32(fn, w, "embed.W", 1, &half, info.fourier);
    }
    if (rc == SCORE_OK && info.num_classes > 0) {
        uint64_t shape[2] = {info.num_classes + 1, info.width[1]};
        rc = score__st_writer_add_f32(fn, w, label_tensor, 2, shape,
                                      info.params + info.label_offset);
    }
    return rc;
}

/* ---- load ---- */

static int name_index(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (s != NULL && names[i] != NULL && strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

typedef struct arch {
    uint64_t dim, embed_dim, residual, seed, num_classes, context_dim;
    size_t n_hidden;
    size_t widths[SCORE__MLP_MAX_HIDDEN];
    int act, emb;
    double fourier_scale;
} arch;

static int parse_arch(const char *fn, const score__st_reader *r, arch *a)
{
    const char *s;
    int rc;
    cJSON *num;
    if ((rc = score__st_meta_u64(fn, r, "dim", 1, (uint64_t)1 << 20, &a->dim)) != SCORE_OK ||
        (rc = score__st_meta_u64(fn, r, "embed_dim", 2, 4096, &a->embed_dim)) != SCORE_OK ||
        (rc = score__st_meta_u64(fn, r, "residual", 0, 1, &a->residual)) != SCORE_OK ||
        (rc = score__st_meta_u64(fn, r, "seed", 0, (uint64_t)1 << 62, &a->seed)) != SCORE_OK)
        return rc;
    /* the condition inputs: absent in the files of unconditional networks */
    a->num_classes = 0;
    a->context_dim = 0;
    if ((score__st_meta(r, "num_classes") != NULL &&
         (rc = score__st_meta_u64(fn, r, "num_classes", 0, 65535, &a->num_classes)) != SCORE_OK) ||
        (score__st_meta(r, "context_dim") != NULL &&
         (rc = score__st_meta_u64(fn, r, "context_dim", 0, 4096, &a->context_dim)) != SCORE_OK))
        return rc;
    s = score__st_meta(r, "activation");
    a->act = s ? score__act_from_name(s) : -1;
    if (a->act < SCORE_ACT_SILU || a->act > SCORE_ACT_GELU)
        return score__error(SCORE_E_FORMAT, fn, "metadata 'activation' is missing or unknown");
    a->emb = name_index(score__st_meta(r, "embedding"), embed_names, 3);
    if (a->emb < 0)
        return score__error(SCORE_E_FORMAT, fn, "metadata 'embedding' is missing or unknown");
    if (a->emb != SCORE_EMBED_NONE && a->embed_dim % 2 != 0)
        return score__error(SCORE_E_FORMAT, fn, "metadata 'embed_dim' must be even");
    s = score__st_meta(r, "fourier_scale");
    if (s == NULL)
        return score__error(SCORE_E_FORMAT, fn, "metadata 'fourier_scale' is missing");
    /* The grammar is checked here first, so that a NULL from cJSON on a valid number can only
     * be an allocation failure. */
    if (!score__st_is_json_number(s))
        return score__error(SCORE_E_FORMAT, fn, "metadata 'fourier_scale' is not a number in (0, 1e4]");
    num = cJSON_ParseWithOpts(s, NULL, 1);
    if (num == NULL)
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    if (!cJSON_IsNumber(num) || !(num->valuedouble > 0.0 && num->valuedouble <= 1e4)) {
        cJSON_Delete(num);
        return score__error(SCORE_E_FORMAT, fn, "metadata 'fourier_scale' is not a number in (0, 1e4]");
    }
    a->fourier_scale = num->valuedouble;
    cJSON_Delete(num);
    /* widths: 1..64 comma-separated integers in [1, 65536] */
    s = score__st_meta(r, "widths");
    if (s == NULL)
        return score__error(SCORE_E_FORMAT, fn, "metadata 'widths' is missing");
    a->n_hidden = 0;
    for (;;) {
        char tok[24];
        size_t len = strcspn(s, ",");
        uint64_t v;
        if (len == 0 || len >= sizeof tok || a->n_hidden >= SCORE__MLP_MAX_HIDDEN)
            return score__error(SCORE_E_FORMAT, fn, "metadata 'widths' is malformed");
        memcpy(tok, s, len);
        tok[len] = '\0';
        if (score__st_parse_u64(tok, SCORE__MLP_MAX_WIDTH, &v) != 0 || v == 0)
            return score__error(SCORE_E_FORMAT, fn, "metadata 'widths' has a bad width");
        a->widths[a->n_hidden++] = (size_t)v;
        if (s[len] == '\0')
            break;
        s += len + 1;
    }
    return SCORE_OK;
}

/* Checks every tensor against the architecture before anything is allocated, so that a small
 * hostile file cannot make the loader allocate a huge network. */
static int check_tensors(const char *fn, const score__st_reader *r, const arch *a,
                         size_t n_out, size_t extra)
{
    size_t L = a->n_hidden + 1, E = a->emb == SCORE_EMBED_NONE ? 1 : (size_t)a->embed_dim;
    size_t expected = 2 * L + (a->emb == SCORE_EMBED_FOURIER ? 1 : 0) + (a->num_classes > 0) +
                      extra;
    size_t prev = (size_t)a->dim + E + (size_t)a->context_dim;
    for (size_t l = 1; l <= L; l++) {
        size_t out = l < L ? a->widths[l - 1] : n_out;
        char name[48];
        const score__st_tensor *t;
        for (int bias = 0; bias < 2; bias++) {
            snprintf(name, sizeof name, bias ? "layers.%zu.bias" : "layers.%zu.weight", l - 1);
            t = score__st_find(r, name);
            if (t == NULL)
                return score__error(SCORE_E_FORMAT, fn, "tensor '%s' is missing", name);
            if (t->dtype != SCORE__ST_F32 || t->ndim != (bias ? 1u : 2u) || t->shape[0] != out ||
                (!bias && t->shape[1] != prev))
                return score__error(SCORE_E_FORMAT, fn,
                                    "tensor '%s' must be F32 of shape [%zu%s%zu] for the architecture",
                                    name, out, bias ? "" : ", ", bias ? (size_t)0 : prev);
        }
        prev = out;
    }
    if (a->emb == SCORE_EMBED_FOURIER) {
        const score__st_tensor *t = score__st_find(r, "embed.W");
        if (t == NULL || t->dtype != SCORE__ST_F32 || t->ndim != 1 || t->shape[0] != E / 2)
            return score__error(SCORE_E_FORMAT, fn, "tensor 'embed.W' must be F32 of shape [%zu]", E / 2);
    }
    if (a->num_classes > 0) {
        const score__st_tensor *t = score__st_find(r, label_tensor);
        if (t == NULL || t->dtype != SCORE__ST_F32 || t->ndim != 2 ||
            t->shape[0] != a->num_classes + 1 || t->shape[1] != a->widths[0])
            return score__error(SCORE_E_FORMAT, fn, "tensor '%s' must be F32 of shape [%llu, %zu] "
                                "(num_classes + 1, the first hidden width)", label_tensor,
                                (unsigned long long)(a->num_classes + 1), a->widths[0]);
    }
    if (score__st_count(r) != expected)
        return score__error(SCORE_E_FORMAT, fn, "%zu tensors, the architecture has %zu",
                            score__st_count(r), expected);
    return SCORE_OK;
}

/* The network of an MLP file (classes 0, sched NULL, energy 0), of an energy file (energy 1:
 * one output) or of a classifier file (classes: the head's width, sched: its schedule,
 * copied). */
static int load_net(score_model **out, const struct score__st_reader *r, uint64_t classes,
                    const score_schedule *sched, int energy)
{
    static const char fn[] = "score_model_load";
    arch a;
    score_model *m = NULL;
    score__mlp_info info;
    float *theta = NULL;
    int rc;
    *out = NULL;
    if ((rc = parse_arch(fn, r, &a)) != SCORE_OK)
        return rc;
    if (classes > 0 && (a.num_classes > 0 || a.context_dim > 0))
        return score__error(SCORE_E_FORMAT, fn, "a classifier takes no label or context input "
                            "(metadata 'num_classes' / 'context_dim')");
    /* a classifier's schedule may hold an array (checked by the schedule's loader) */
    if ((rc = check_tensors(fn, r, &a,
                            energy ? 1 : classes > 0 ? (size_t)classes : (size_t)a.dim,
                            classes > 0 && score__st_find(r, "schedule.array") != NULL)) !=
        SCORE_OK)
        return rc;
    if (classes > 0)
        rc = score_model_new_classifier(&m, sched, (size_t)a.dim, (size_t)classes);
    else
        rc = score_model_new(&m, energy ? SCORE_MODEL_ENERGY : SCORE_MODEL_MLP, (size_t)a.dim);
    if (rc == SCORE_OK) rc = score_model_set_i64(m, SCORE_MODEL_PARAM_ACTIVATION, a.act);
    if (rc == SCORE_OK) rc = score_model_set_i64(m, SCORE_MODEL_PARAM_EMBEDDING, a.emb);
    if (rc == SCORE_OK) rc = score_model_set_i64(m, SCORE_MODEL_PARAM_EMBED_DIM, (int64_t)a.embed_dim);
    if (rc == SCORE_OK) rc = score_model_set_f64(m, SCORE_MODEL_PARAM_FOURIER_SCALE, a.fourier_scale);
    if (rc == SCORE_OK) rc = score_model_set_i64(m, SCORE_MODEL_PARAM_RESIDUAL, (int64_t)a.residual);
    if (rc == SCORE_OK) rc = score_model_set_i64(m, SCORE_MODEL_PARAM_SEED, (int64_t)a.seed);
    if (rc == SCORE_OK && classes == 0)
        rc = score_model_set_i64(m, SCORE_MODEL_PARAM_NUM_CLASSES, (int64_t)a.num_classes);
    if (rc == SCORE_OK && classes == 0)
        rc = score_model_set_i64(m, SCORE_MODEL_PARAM_CONTEXT_DIM, (int64_t)a.context_dim);
    if (rc == SCORE_OK) rc = score_model_set_hidden_widths(m, a.n_hidden, a.widths);
    if (rc == SCORE_OK) rc = score_model_prepare(m);
    if (rc != SCORE_OK)
        return score__st_arch_refused(fn, m, rc);
    (void)score__mlp_info_get(m, &info);
    theta = score__calloc(info.n_params, sizeof *theta);
    if (theta == NULL) {
        score_model_free(m);
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    }
    {
        size_t off = 0;
        for (size_t l = 1; l <= info.n_layers && rc == SCORE_OK; l++) {
            char name[48];
            uint64_t shape[2] = {info.width[l], info.width[l - 1]};
            snprintf(name, sizeof name, "layers.%zu.weight", l - 1);
            rc = score__st_get_f32(fn, r, name, 2, shape, theta + off, 1);
            off += info.width[l] * info.width[l - 1];
            if (rc == SCORE_OK) {
                snprintf(name, sizeof name, "layers.%zu.bias", l - 1);
                rc = score__st_get_f32(fn, r, name, 1, shape, theta + off, 1);
                off += info.width[l];
            }
        }
        if (rc == SCORE_OK && info.num_classes > 0) {
            uint64_t shape[2] = {info.num_classes + 1, info.width[1]};
            rc = score__st_get_f32(fn, r, label_tensor, 2, shape, theta + info.label_offset, 1);
        }
    }
    if (rc == SCORE_OK)
        rc = score_model_params_set(m, theta, info.n_params);
    if (rc == SCORE_OK && info.fourier != NULL) {
        uint64_t half = info.embed_in / 2;
        float *wf = score__calloc(half, sizeof *wf);
        if (wf == NULL)
            rc = score__error(SCORE_E_NOMEM, fn, "allocation failed");
        else if ((rc = score__st_get_f32(fn, r, "embed.W", 1, &half, wf, 1)) == SCORE_OK)
            score__mlp_set_fourier(m, wf);
        score__free(wf);
    }
    score__free(theta);
    if (rc != SCORE_OK) {
        score_model_free(m);
        return rc;
    }
    *out = m;
    return SCORE_OK;
}

int score__mlp_load(score_model **out, const struct score__st_reader *r)
{
    return load_net(out, r, 0, NULL, 0);
}

/* ---- the energy kind: the MLP's metadata and tensors, the last layer with one output (the
 * energy), "kind" = "energy" ---- */

int score__energy_save(const score_model *m, struct score__st_writer *w)
{
    return score__mlp_save(m, w);
}

int score__energy_load(score_model **out, const struct score__st_reader *r)
{
    return load_net(out, r, 0, NULL, 1);
}

/* ---- the classifier kind: the MLP's metadata and tensors (the last layer has num_classes
 * outputs), plus "classes" and its schedule under "schedule.*" ---- */

int score__classifier_save(const score_model *m, struct score__st_writer *w)
{
    static const char fn[] = "score_model_save";
    score__mlp_info info;
    int rc;
    if (score__mlp_info_get(m, &info) != SCORE_OK)
        return score__error(SCORE_E_STAGE, fn, "the model is not prepared");
    if ((rc = score__mlp_save(m, w)) != SCORE_OK ||
        (rc = score__st_writer_meta_u64(fn, w, "classes", info.width[info.n_layers])) != SCORE_OK)
        return rc;
    return score__schedule_save(fn, score__classifier_schedule_of(m), w, "schedule");
}

int score__classifier_load(score_model **out, const struct score__st_reader *r)
{
    static const char fn[] = "score_model_load";
    score_schedule *sched = NULL;
    uint64_t classes;
    int rc;
    *out = NULL;
    if ((rc = score__st_meta_u64(fn, r, "classes", 2, 65535, &classes)) != SCORE_OK ||
        (rc = score__schedule_load(fn, r, "schedule", &sched)) != SCORE_OK)
        return rc;
    rc = load_net(out, r, classes, sched, 0);
    score_schedule_free(sched);
    return rc;
}
