/* The generative model's file (doc/model-format.md, "Generative models"): the network as
 * score_model_save() writes it plus "genmodel.*" metadata entries; and the reading of files
 * written by the `score` tool of libscore 0.1, whose meaning is in "user.score.*" entries. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "genmodel-priv.h"
#include "io/safetensors-priv.h"
#include "libscore/param.h"
#include "model/model-priv.h"
#include "schedule/schedule-io-priv.h"

#define GM_VERSION "1"
#define PREFIX "genmodel."
#define SCHED_PREFIX "genmodel.schedule"
#define KEY_LEN 64

static const char *const list_key[SCORE__GENMODEL_LISTS] = {"genmodel.column.",
                                                            "genmodel.label.",
                                                            "genmodel.context."};

/* ---- writing -------------------------------------------------------------------------- */

static int meta_f64(const char *fn, score__st_writer *w, const char *key, double v)
{
    char val[32];
    snprintf(val, sizeof val, "%.17g", v);
    return score__st_writer_meta(fn, w, key, val);
}

static int meta_int(const char *fn, score__st_writer *w, const char *key, long long v)
{
    char val[32];
    snprintf(val, sizeof val, "%lld", v);
    return score__st_writer_meta(fn, w, key, val);
}

/* dim values "%.17g" separated by commas. */
static int meta_vec(const char *fn, score__st_writer *w, const char *key, const double *v,
                    size_t n)
{
    size_t cap, used = 0;
    char *s;
    int rc;
    if (score__mul_size(n, 26, &cap) != 0 || (s = score__calloc(cap + 1, 1)) == NULL)
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    for (size_t i = 0; i < n; i++)
        used += (size_t)snprintf(s + used, cap + 1 - used, "%s%.17g", i ? "," : "", v[i]);
    rc = score__st_writer_meta(fn, w, key, s);
    score__free(s);
    return rc;
}

static int write_meaning(const char *fn, const score_genmodel *gm, score__st_writer *w)
{
    char key[KEY_LEN];
    int rc;
    if ((rc = score__st_writer_meta(fn, w, PREFIX "version", GM_VERSION)) != SCORE_OK ||
        (rc = score__schedule_save(fn, gm->sched, w, SCHED_PREFIX)) != SCORE_OK ||
        (rc = meta_int(fn, w, PREFIX "output", gm->output)) != SCORE_OK ||
        (rc = meta_int(fn, w, PREFIX "cond", gm->cond)) != SCORE_OK ||
        (rc = meta_f64(fn, w, PREFIX "cond_scale", gm->cond_scale)) != SCORE_OK ||
        (rc = meta_f64(fn, w, PREFIX "sigma_data", gm->sigma_data)) != SCORE_OK ||
        (rc = meta_f64(fn, w, PREFIX "fixed_t", gm->fixed_t)) != SCORE_OK ||
        (rc = meta_int(fn, w, PREFIX "dequant", gm->dequant)) != SCORE_OK ||
        (rc = meta_f64(fn, w, PREFIX "dequant_bin", gm->bin)) != SCORE_OK ||
        (rc = meta_int(fn, w, PREFIX "num_classes", (long long)gm->num_classes)) != SCORE_OK ||
        (rc = meta_int(fn, w, PREFIX "context_dim", (long long)gm->context_dim)) != SCORE_OK)
        return rc;
    if (gm->shift != NULL &&
        ((rc = meta_vec(fn, w, PREFIX "shift", gm->shift, gm->dim)) != SCORE_OK ||
         (rc = meta_vec(fn, w, PREFIX "scale", gm->scale, gm->dim)) != SCORE_OK))
        return rc;
    for (int li = 0; li < SCORE__GENMODEL_LISTS; li++)
        for (size_t i = 0; i < gm->n_names[li]; i++) {
            snprintf(key, sizeof key, "%s%zu", list_key[li], i);
            if ((rc = score__st_writer_meta(fn, w, key, gm->names[li][i])) != SCORE_OK)
                return rc;
        }
    return SCORE_OK;
}

static int save_to_buffer(const char *fn, const void *obj, void **buf, size_t *len)
{
    const score_genmodel *gm = obj;
    score__st_writer *w = NULL;
    int rc;
    if (gm->members[0] != NULL)
        return score__error(SCORE_E_UNSUPPORTED, fn, "a guidance combination cannot be saved; "
                            "save its members");
    if ((rc = score__st_writer_new(fn, &w)) != SCORE_OK)
        return rc;
    if ((rc = score__model_save_to_writer(fn, gm->model, w)) == SCORE_OK &&
        (rc = write_meaning(fn, gm, w)) == SCORE_OK)
        rc = score__st_writer_finish(fn, w, buf, len);
    score__st_writer_free(w);
    return rc;
}

int score_genmodel_save_buffer(const score_genmodel *gm, void **buf_out, size_t *len_out)
{
    if (buf_out != NULL)
        *buf_out = NULL;
    if (len_out != NULL)
        *len_out = 0;
    if (gm == NULL || buf_out == NULL || len_out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "gm, buf_out or len_out is NULL");
    return save_to_buffer(__func__, gm, buf_out, len_out);
}

int score_genmodel_save(const score_genmodel *gm, const char *path)
{
    if (gm == NULL || path == NULL)
        return score__error(SCORE_E_INVAL, __func__, "gm or path is NULL");
    return score__save_file_via_buffer(__func__, path, gm, save_to_buffer);
}

/* ---- reading: strict numbers ----------------------------------------------------------- */

/* A finite double written as a whole string (no space, nothing after). */
static int parse_f64(const char *s, double *out)
{
    char *end;
    if (s == NULL || *s == '\0' || *s == ' ' || *s == '\t' || *s == '\n')
        return -1;
    errno = 0;
    *out = strtod(s, &end);
    return *end == '\0' && isfinite(*out) ? 0 : -1;
}

/* A decimal integer in [lo, hi]: an optional '-', then digits. */
static int parse_int(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    if (s == NULL || !((*s >= '0' && *s <= '9') || (*s == '-' && s[1] >= '0' && s[1] <= '9')))
        return -1;
    errno = 0;
    *out = strtoll(s, &end, 10);
    return *end == '\0' && errno == 0 && *out >= lo && *out <= hi ? 0 : -1;
}

/* n comma-separated finite doubles. */
static int parse_vec(const char *s, double *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char *end;
        if (*s == '\0' || *s == ' ' || *s == ',')
            return -1;
        v[i] = strtod(s, &end);
        if (end == s || !isfinite(v[i]))
            return -1;
        s = end;
        if (i + 1 < n) {
            if (*s != ',')
                return -1;
            s++;
        }
    }
    return *s == '\0' ? 0 : -1;
}

/* The transform from two entries (both or neither). */
static int load_transform(const char *fn, score_genmodel *gm, const char *ksh, const char *sh,
                          const char *ksc, const char *sc)
{
    double *v;
    int rc;
    if (sh == NULL && sc == NULL)
        return SCORE_OK;
    if (sh == NULL || sc == NULL)
        return score__error(SCORE_E_FORMAT, fn, "metadata '%s' is present without '%s'",
                            sh ? ksh : ksc, sh ? ksc : ksh);
    if ((v = score__calloc(2 * gm->dim, sizeof *v)) == NULL)
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    if (parse_vec(sh, v, gm->dim) != 0 || parse_vec(sc, v + gm->dim, gm->dim) != 0)
        rc = score__error(SCORE_E_FORMAT, fn, "metadata '%s' and '%s' must each hold %zu "
                          "comma-separated finite numbers", ksh, ksc, gm->dim);
    else
        rc = score__genmodel_set_transform(fn, SCORE_E_FORMAT, gm, v, v + gm->dim);
    score__free(v);
    return rc;
}

/* The sde settings must make a valid sde: checked by making one. */
static int check_settings(const char *fn, const score_genmodel *gm)
{
    score_sde *sde = NULL;
    char msg[256];
    int rc;
    if (score_model_kind(gm->model) == SCORE_MODEL_CLASSIFIER)
        return SCORE_OK; /* a classifier's sde settings are its target's, and unused */
    rc = score_genmodel_sde(gm, &sde);
    score_sde_free(sde);
    if (rc == SCORE_OK || rc == SCORE_E_NOMEM)
        return rc;
    snprintf(msg, sizeof msg, "%s", score_last_error_message());
    return score__error(SCORE_E_FORMAT, fn, "the file's sde settings are invalid: %s", msg);
}

static int set_fixed_t(const char *fn, score_genmodel *gm, const char *key, const char *v)
{
    double t;
    if (v == NULL)
        return SCORE_OK;
    if (parse_f64(v, &t) != 0)
        return score__error(SCORE_E_FORMAT, fn, "metadata '%s' = '%.40s' is not a number", key, v);
    if (score_genmodel_set_fixed_t(gm, t) != SCORE_OK)
        return score__error(SCORE_E_FORMAT, fn, "metadata '%s' = %g is neither 0 nor a time of "
                            "the schedule", key, t);
    return SCORE_OK;
}

/* ---- reading: the genmodel.* entries ---------------------------------------------------- */

/* Index i of a list key "<prefix><i>" (digits, no leading zero), or -1. */
static long long list_index(const char *key, const char *prefix)
{
    size_t pl = strlen(prefix);
    long long i;
    if (strncmp(key, prefix, pl) != 0 || (key[pl] == '0' && key[pl + 1] != '\0') ||
        key[pl] == '-' || parse_int(key + pl, 0, (long long)1 << 40, &i) != 0)
        return -1;
    return i;
}

/* Every "genmodel.*" key is one this version knows: a newer file's meaning is never dropped. */
static int check_keys(const char *fn, const score_genmodel *gm, const score__st_reader *r)
{
    static const char *const known[] = {
        "version", "output", "cond", "cond_scale", "sigma_data", "fixed_t", "dequant",
        "dequant_bin", "num_classes", "context_dim", "shift", "scale", "schedule.kind",
    };
    const size_t len[SCORE__GENMODEL_LISTS] = {gm->dim, gm->num_classes, gm->context_dim};
    for (size_t i = 0; i < score__st_meta_count(r); i++) {
        const char *key, *value, *rest;
        int ok = 0, id;
        if (score__st_meta_at(r, i, &key, &value) != SCORE_OK || key == NULL)
            return score__error(SCORE_E_FORMAT, fn, "unreadable metadata entry %zu", i);
        if (strncmp(key, PREFIX, sizeof PREFIX - 1) != 0)
            continue;
        rest = key + sizeof PREFIX - 1;
        for (size_t k = 0; k < sizeof known / sizeof known[0] && !ok; k++)
            ok = strcmp(rest, known[k]) == 0;
        if (!ok && strncmp(rest, "schedule.", 9) == 0)
            ok = score_param_from_name(SCORE_OBJECT_SCHEDULE, rest + 9, &id) == SCORE_OK;
        for (int li = 0; li < SCORE__GENMODEL_LISTS && !ok; li++) {
            long long idx = list_index(key, list_key[li]);
            if (idx >= 0 && (size_t)idx >= len[li])
                return score__error(SCORE_E_FORMAT, fn, "metadata '%.80s': index beyond the "
                                    "%zu entries of the list", key, len[li]);
            ok = idx >= 0;
        }
        if (!ok)
            return score__error(SCORE_E_FORMAT, fn, "unknown metadata entry '%.80s' (written "
                                "by a newer library?)", key);
    }
    return SCORE_OK;
}

static int load_names(const char *fn, score_genmodel *gm, const score__st_reader *r)
{
    const size_t len[SCORE__GENMODEL_LISTS] = {gm->dim, gm->num_classes, gm->context_dim};
    char key[KEY_LEN];
    for (int li = 0; li < SCORE__GENMODEL_LISTS; li++) {
        snprintf(key, sizeof key, "%s0", list_key[li]);
        if (len[li] == 0 || score__st_meta(r, key) == NULL)
            continue;
        const char **names = score__calloc(len[li], sizeof *names);
        int rc = SCORE_OK;
        if (names == NULL)
            return score__error(SCORE_E_NOMEM, fn, "allocation failed");
        for (size_t i = 0; i < len[li] && rc == SCORE_OK; i++) {
            snprintf(key, sizeof key, "%s%zu", list_key[li], i);
            if ((names[i] = score__st_meta(r, key)) == NULL)
                rc = score__error(SCORE_E_FORMAT, fn, "metadata '%s' is missing (a list of "
                                  "names has all %zu entries or none)", key, len[li]);
        }
        if (rc == SCORE_OK)
            rc = score__genmodel_set_names(fn, SCORE_E_FORMAT, gm, li + 1, len[li], names);
        score__free(names);
        if (rc != SCORE_OK)
            return rc;
    }
    return SCORE_OK;
}

static const char *need(const char *fn, const score__st_reader *r, const char *key, int *rc)
{
    const char *v = score__st_meta(r, key);
    if (v == NULL && *rc == SCORE_OK)
        *rc = score__error(SCORE_E_FORMAT, fn, "metadata '%s' is missing", key);
    return v;
}

static int load_current(const char *fn, score_model *model, const score__st_reader *r,
                        score_genmodel **out)
{
    score_schedule *sched = NULL;
    score_genmodel *gm = NULL;
    long long output, cond, dq, nc, cd;
    double cs, sd, bin;
    int rc = SCORE_OK;
    const char *v_out = need(fn, r, PREFIX "output", &rc), *v_cond = need(fn, r, PREFIX "cond", &rc);
    const char *v_cs = need(fn, r, PREFIX "cond_scale", &rc);
    const char *v_sd = need(fn, r, PREFIX "sigma_data", &rc);
    const char *v_ft = need(fn, r, PREFIX "fixed_t", &rc);
    const char *v_dq = need(fn, r, PREFIX "dequant", &rc);
    const char *v_bin = need(fn, r, PREFIX "dequant_bin", &rc);
    const char *v_nc = need(fn, r, PREFIX "num_classes", &rc);
    const char *v_cd = need(fn, r, PREFIX "context_dim", &rc);
    if (rc != SCORE_OK) {
        score_model_free(model);
        return rc;
    }
    if (parse_int(v_out, 1, 6, &output) != 0 || parse_int(v_cond, 0, 4, &cond) != 0 ||
        parse_f64(v_cs, &cs) != 0 || parse_f64(v_sd, &sd) != 0 || parse_int(v_dq, 0, 1, &dq) != 0 ||
        parse_f64(v_bin, &bin) != 0 || parse_int(v_nc, 0, 1 << 30, &nc) != 0 ||
        parse_int(v_cd, 0, 1 << 30, &cd) != 0) {
        score_model_free(model);
        return score__error(SCORE_E_FORMAT, fn, "a genmodel.* entry (output, cond, cond_scale, "
                            "sigma_data, dequant, dequant_bin, num_classes, context_dim) is not "
                            "a number of its range");
    }
    if ((rc = score__schedule_load(fn, r, SCHED_PREFIX, &sched)) != SCORE_OK) {
        score_model_free(model);
        return rc;
    }
    if ((rc = score__genmodel_wrap(fn, model, sched, (int)output, &gm)) != SCORE_OK)
        return rc;
    gm->cond = (int)cond;
    gm->cond_scale = cs;
    gm->sigma_data = sd;
    if ((size_t)nc != gm->num_classes || (size_t)cd != gm->context_dim)
        rc = score__error(SCORE_E_FORMAT, fn, "the condition spec (%lld classes, context width "
                          "%lld) differs from the network's (%zu, %zu)", nc, cd,
                          gm->num_classes, gm->context_dim);
    if (rc == SCORE_OK && score_genmodel_set_dequant(gm, (int)dq, bin) != SCORE_OK)
        rc = score__error(SCORE_E_FORMAT, fn, "dequantization bin width %g is not positive", bin);
    if (rc == SCORE_OK)
        rc = check_settings(fn, gm);
    if (rc == SCORE_OK)
        rc = set_fixed_t(fn, gm, PREFIX "fixed_t", v_ft);
    if (rc == SCORE_OK)
        rc = check_keys(fn, gm, r);
    if (rc == SCORE_OK)
        rc = load_transform(fn, gm, PREFIX "shift", score__st_meta(r, PREFIX "shift"),
                            PREFIX "scale", score__st_meta(r, PREFIX "scale"));
    if (rc == SCORE_OK)
        rc = load_names(fn, gm, r);
    if (rc != SCORE_OK) {
        score_genmodel_free(gm);
        return rc;
    }
    *out = gm;
    return SCORE_OK;
}

/* ---- reading: files of the score tool of libscore 0.1 ------------------------------------ */

typedef struct named {
    const char *name;
    int value;
} named;

static const named old_outputs[] = {
    {"score", SCORE_OUTPUT_SCORE}, {"eps", SCORE_OUTPUT_EPS}, {"x0", SCORE_OUTPUT_X0},
    {"v", SCORE_OUTPUT_V}, {"edm", SCORE_OUTPUT_EDM},
    {"score-over-sigma", SCORE_OUTPUT_SCORE_OVER_SIGMA}, {NULL, 0},
};
static const named old_conds[] = {
    {"default", SCORE_COND_DEFAULT}, {"t", SCORE_COND_T}, {"t-scaled", SCORE_COND_T_SCALED},
    {"sigma", SCORE_COND_SIGMA}, {"log-sigma-4", SCORE_COND_LOG_SIGMA_4}, {NULL, 0},
};

static int lookup(const named *t, const char *name, int dflt)
{
    if (name == NULL)
        return dflt;
    for (; t->name != NULL; t++)
        if (strcmp(t->name, name) == 0)
            return t->value;
    return -1;
}

/* The user metadata entries of the 0.1 tool that carry meaning (the score.train.* record
 * stays). */
static int is_old_meaning_key(const char *k)
{
    return strncmp(k, "score.", 6) == 0 && strncmp(k, "score.train.", 12) != 0;
}

static const char *old_get(const score_model *m, const char *key)
{
    const char *v = NULL;
    return score_model_get_metadata(m, key, &v) == SCORE_OK ? v : NULL;
}

/* The schedule of "score.schedule" (a kind name) and its "score.schedule.<name>" entries
 * (parameters the kind does not have are skipped, as the tool did). */
static int old_schedule(const char *fn, const score_model *m, score_schedule **out)
{
    const char *kname = old_get(m, "score.schedule");
    score_schedule *s = NULL;
    int rc;
    *out = NULL;
    for (int k = SCORE_SCHEDULE_VE; kname != NULL && k <= SCORE_SCHEDULE_DDPM_COSINE && !s; k++) {
        if ((rc = score_schedule_new(&s, k)) != SCORE_OK)
            return rc;
        if (strcmp(score_schedule_name(s), kname) != 0) {
            score_schedule_free(s);
            s = NULL;
        }
    }
    if (s == NULL)
        return score__error(SCORE_E_FORMAT, fn, "metadata 'user.score.schedule' = '%.40s' names "
                            "no schedule kind", kname ? kname : "");
    for (size_t i = 0; i < score_model_metadata_count(m); i++) {
        const char *key = NULL, *val;
        int id, type;
        if (score_model_metadata_key(m, i, &key) != SCORE_OK ||
            strncmp(key, "score.schedule.", 15) != 0)
            continue;
        val = old_get(m, key);
        if (score_param_from_name(SCORE_OBJECT_SCHEDULE, key + 15, &id) != SCORE_OK ||
            score_param_info(SCORE_OBJECT_SCHEDULE, id, &type, NULL, NULL, NULL) != SCORE_OK) {
            rc = score__error(SCORE_E_FORMAT, fn, "unknown schedule parameter 'user.%.60s'", key);
            goto fail;
        }
        if (type == SCORE_PARAM_F64) {
            double x;
            if (parse_f64(val, &x) != 0) {
                rc = score__error(SCORE_E_FORMAT, fn, "'user.%.60s' is not a number", key);
                goto fail;
            }
            rc = score_schedule_set_f64(s, id, x);
        } else {
            long long x;
            if (parse_int(val, INT64_MIN, INT64_MAX, &x) != 0) {
                rc = score__error(SCORE_E_FORMAT, fn, "'user.%.60s' is not an integer", key);
                goto fail;
            }
            rc = score_schedule_set_i64(s, id, x);
        }
        if (rc != SCORE_OK && rc != SCORE_E_UNSUPPORTED) {
            rc = score__error(SCORE_E_FORMAT, fn, "'user.%.60s' = %.40s is out of range", key, val);
            goto fail;
        }
    }
    if (score_schedule_prepare(s) != SCORE_OK) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", score_last_error_message());
        rc = score__error(SCORE_E_FORMAT, fn, "the file's schedule is inconsistent: %s", msg);
        goto fail;
    }
    *out = s;
    return SCORE_OK;
fail:
    score_schedule_free(s);
    return rc;
}

static int load_old(const char *fn, score_model *model, score_genmodel **out)
{
    score_schedule *sched = NULL;
    score_genmodel *gm = NULL;
    double x;
    int rc, output = lookup(old_outputs, old_get(model, "score.output"), SCORE_OUTPUT_SCORE);
    int cond = lookup(old_conds, old_get(model, "score.cond"), SCORE_COND_DEFAULT);
    const char *v;
    if (output < 0 || cond < 0) {
        score_model_free(model);
        return score__error(SCORE_E_FORMAT, fn, "unknown output or conditioning kind in "
                            "'user.score.output' / 'user.score.cond'");
    }
    if ((rc = old_schedule(fn, model, &sched)) != SCORE_OK) {
        score_model_free(model);
        return rc;
    }
    if ((rc = score__genmodel_wrap(fn, model, sched, output, &gm)) != SCORE_OK)
        return rc;
    gm->cond = cond;
    if ((v = old_get(model, "score.cond_scale")) != NULL) {
        if (parse_f64(v, &x) != 0)
            rc = score__error(SCORE_E_FORMAT, fn, "'user.score.cond_scale' is not a number");
        else
            gm->cond_scale = x;
    }
    if (rc == SCORE_OK && (v = old_get(model, "score.sigma_data")) != NULL) {
        if (parse_f64(v, &x) != 0)
            rc = score__error(SCORE_E_FORMAT, fn, "'user.score.sigma_data' is not a number");
        else
            gm->sigma_data = x;
    }
    if (rc == SCORE_OK)
        rc = check_settings(fn, gm);
    if (rc == SCORE_OK)
        rc = set_fixed_t(fn, gm, "user.score.fixed_t", old_get(model, "score.fixed_t"));
    if (rc == SCORE_OK)
        rc = load_transform(fn, gm, "user.score.data_shift", old_get(model, "score.data_shift"),
                            "user.score.data_scale", old_get(model, "score.data_scale"));
    /* the meaning now lives in the object: drop the tool's entries from the network's user
     * metadata (the training record stays) */
    for (size_t i = score_model_metadata_count(model); rc == SCORE_OK && i-- > 0;) {
        const char *key = NULL;
        if (score_model_metadata_key(model, i, &key) == SCORE_OK && is_old_meaning_key(key))
            rc = score_model_set_metadata(model, key, NULL);
    }
    if (rc != SCORE_OK) {
        score_genmodel_free(gm);
        return rc;
    }
    *out = gm;
    return SCORE_OK;
}

static int load_from_reader(const char *fn, const score__st_reader *r, score_genmodel **out)
{
    score_model *model = NULL;
    const char *ver = score__st_meta(r, PREFIX "version");
    int rc;
    if ((rc = score__model_load_from_reader(fn, &model, r)) != SCORE_OK)
        return rc;
    if (ver != NULL) {
        if (strcmp(ver, GM_VERSION) != 0) {
            score_model_free(model);
            return score__error(SCORE_E_FORMAT, fn, "unsupported generative model version "
                                "'%.20s' (this library reads %s)", ver, GM_VERSION);
        }
        return load_current(fn, model, r, out);
    }
    if (old_get(model, "score.schedule") != NULL)
        return load_old(fn, model, out);
    if (score_model_kind(model) == SCORE_MODEL_CLASSIFIER) {
        score_model_free(model);
        return score__error(SCORE_E_FORMAT, fn, "a plain classifier network file: it does not "
                            "say for which data units it was trained. Make the generative model "
                            "of a classifier with score_genmodel_new_classifier() (the model it "
                            "guides gives schedule, data transform and columns) and "
                            "score_genmodel_save(), or train it again with 'score "
                            "train-classifier'");
    }
    score_model_free(model);
    return score__error(SCORE_E_FORMAT, fn, "a plain network file: it does not say how the "
                        "network's output becomes a score or in which units it sees the data. "
                        "Make a generative model of it: score_model_load(), score_sde_new() "
                        "with its schedule and output kind, score_genmodel_new(), "
                        "score_genmodel_set_transform() if the data were standardized, then "
                        "score_genmodel_save() (or 'score convert' with --schedule and "
                        "--predict)");
}

static int load_cb(const char *fn, const score__st_reader *r, void *out)
{
    return load_from_reader(fn, r, (score_genmodel **)out);
}

int score_genmodel_load_buffer(score_genmodel **out, const void *buf, size_t len)
{
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (buf == NULL)
        return score__error(SCORE_E_INVAL, __func__, "buf is NULL");
    return score__st_load(__func__, NULL, buf, len, load_cb, out);
}

int score_genmodel_load(score_genmodel **out, const char *path)
{
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (path == NULL)
        return score__error(SCORE_E_INVAL, __func__, "path is NULL");
    return score__st_load(__func__, path, NULL, 0, load_cb, out);
}
