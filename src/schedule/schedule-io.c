/* Schedule serialisation for model files (see schedule-io-priv.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core-priv.h"
#include "libscore/param.h"
#include "schedule/schedule-io-priv.h"

#define KEY_MAX 160

static int key_of(char *buf, const char *prefix, const char *name)
{
    int n = snprintf(buf, KEY_MAX, "%s.%s", prefix, name);
    return n > 0 && n < KEY_MAX ? 0 : -1;
}

static int is_user_array_kind(int kind)
{
    return kind == SCORE_SCHEDULE_SIGMAS || kind == SCORE_SCHEDULE_BETAS;
}

/* The user array from the level table. */
static int user_array(const char *fn, const score_schedule *s, int kind, size_t L, double *out)
{
    int rc;
    if (kind == SCORE_SCHEDULE_SIGMAS)
        return score_schedule_levels(s, L, out, NULL);
    /* BETAS: alpha_i = sqrt(alpha_bar_i), 1 - beta_i = alpha_bar_i / alpha_bar_{i-1}
     * (alpha_bar_{-1} = 1): beta_i = -expm1(2 (log alpha_i - log alpha_{i-1})). */
    if ((rc = score_schedule_levels(s, L, NULL, out)) != SCORE_OK)
        return rc;
    double prev = 0.0;
    for (size_t i = 0; i < L; i++) {
        double la = log(out[i]);
        out[i] = -expm1(2.0 * (la - prev));
        prev = la;
        if (!(out[i] > 0.0 && out[i] < 1.0))
            return score__error(SCORE_E_GENERIC, fn, "cannot recover beta %zu of the schedule", i);
    }
    return SCORE_OK;
}

int score__schedule_save(const char *fn, const score_schedule *s, score__st_writer *w,
                         const char *prefix)
{
    char key[KEY_MAX], val[64];
    int kind = score_schedule_kind(s), rc;
    size_t np = score_param_count(SCORE_OBJECT_SCHEDULE);
    if (key_of(key, prefix, "kind") != 0)
        return score__error(SCORE_E_GENERIC, fn, "schedule key too long");
    snprintf(val, sizeof val, "%d", kind);
    if ((rc = score__st_writer_meta(fn, w, key, val)) != SCORE_OK)
        return rc;
    for (size_t i = 0; i < np; i++) {
        int id, type;
        const char *name;
        if (score_param_id_at(SCORE_OBJECT_SCHEDULE, i, &id) != SCORE_OK ||
            score_param_info(SCORE_OBJECT_SCHEDULE, id, &type, NULL, NULL, NULL) != SCORE_OK ||
            (name = score_param_name(SCORE_OBJECT_SCHEDULE, id)) == NULL)
            return score__error(SCORE_E_GENERIC, fn, "schedule parameter table entry %zu", i);
        if (is_user_array_kind(kind) && id == SCORE_SCHEDULE_PARAM_NUM_LEVELS)
            continue; /* read-only: the array length */
        if (type == SCORE_PARAM_F64) {
            double v;
            if (score_schedule_get_f64(s, id, &v) != SCORE_OK)
                continue; /* not a parameter of this kind */
            snprintf(val, sizeof val, "%.17g", v);
        } else {
            int64_t v;
            if (score_schedule_get_i64(s, id, &v) != SCORE_OK)
                continue;
            snprintf(val, sizeof val, "%lld", (long long)v);
        }
        if (key_of(key, prefix, name) != 0)
            return score__error(SCORE_E_GENERIC, fn, "schedule key too long");
        if ((rc = score__st_writer_meta(fn, w, key, val)) != SCORE_OK)
            return rc;
    }
    score_last_error_clear(); /* the probing above leaves messages of inapplicable ids */
    if (is_user_array_kind(kind)) {
        size_t L = score_schedule_num_levels(s);
        double *arr = score__calloc(L ? L : 1, sizeof(double));
        uint64_t shape[1] = {L};
        if (arr == NULL)
            return score__error(SCORE_E_NOMEM, fn, "allocation failed");
        rc = user_array(fn, s, kind, L, arr);
        if (rc == SCORE_OK && key_of(key, prefix, "array") != 0)
            rc = score__error(SCORE_E_GENERIC, fn, "schedule key too long");
        if (rc == SCORE_OK)
            rc = score__st_writer_add(fn, w, key, SCORE__ST_F64, 1, shape, arr);
        score__free(arr);
        if (rc != SCORE_OK)
            return rc;
    }
    return SCORE_OK;
}

/* Copies the thread's last message before it is overwritten. */
static int wrap(const char *fn, const char *what, const char *key)
{
    char msg[256];
    snprintf(msg, sizeof msg, "%s", score_last_error_message());
    return score__error(SCORE_E_FORMAT, fn, "%s '%.60s': %s", what, key, msg);
}

/* The "<prefix>.kind" entry: a schedule kind, or SCORE_E_FORMAT. */
static int read_kind(const char *fn, const score__st_reader *r, const char *prefix, long *kind)
{
    char key[KEY_MAX], *end;
    const char *v;
    if (key_of(key, prefix, "kind") != 0)
        return score__error(SCORE_E_GENERIC, fn, "schedule key too long");
    if ((v = score__st_meta(r, key)) == NULL)
        return score__error(SCORE_E_FORMAT, fn, "metadata '%s' is missing", key);
    errno = 0;
    *kind = strtol(v, &end, 10);
    if (v[0] == '\0' || *end != '\0' || errno != 0 || *kind < 1 || *kind > 1000)
        return score__error(SCORE_E_FORMAT, fn, "metadata '%s' = '%.20s' is not a schedule kind",
                            key, v);
    return SCORE_OK;
}

/* Every parameter the kind answers must be present: a file without one would silently give
 * the default, i.e. another model (the saver writes them all). A parameter added to the
 * schedule table in a later version must be made optional here for the files written before
 * it (absent = the value its absence meant), or old files stop loading. */
static int require_all(const char *fn, const score__st_reader *r, const char *prefix,
                       const score_schedule *s, int kind)
{
    char key[KEY_MAX];
    size_t np = score_param_count(SCORE_OBJECT_SCHEDULE);
    const char *missing = NULL;
    for (size_t i = 0; i < np && missing == NULL; i++) {
        int id, type;
        const char *name;
        double f;
        int64_t iv;
        if (score_param_id_at(SCORE_OBJECT_SCHEDULE, i, &id) != SCORE_OK ||
            score_param_info(SCORE_OBJECT_SCHEDULE, id, &type, NULL, NULL, NULL) != SCORE_OK ||
            (name = score_param_name(SCORE_OBJECT_SCHEDULE, id)) == NULL)
            return score__error(SCORE_E_GENERIC, fn, "schedule parameter table entry %zu", i);
        if (is_user_array_kind(kind) && id == SCORE_SCHEDULE_PARAM_NUM_LEVELS)
            continue;
        if ((type == SCORE_PARAM_F64 ? score_schedule_get_f64(s, id, &f)
                                     : score_schedule_get_i64(s, id, &iv)) != SCORE_OK)
            continue; /* not a parameter of this kind */
        if (key_of(key, prefix, name) != 0)
            return score__error(SCORE_E_GENERIC, fn, "schedule key too long");
        if (score__st_meta(r, key) == NULL)
            missing = name;
    }
    score_last_error_clear(); /* the probing leaves messages of inapplicable ids */
    if (missing != NULL)
        return score__error(SCORE_E_FORMAT, fn, "metadata '%s' is missing (a saved schedule "
                            "stores every parameter of its kind)", key);
    return SCORE_OK;
}

/* Sets parameter k (its name after the prefix: name) from its text val. */
static int set_one(const char *fn, score_schedule *s, const char *k, const char *name,
                   const char *val)
{
    int id, type, rc;
    char *end;
    if (score_param_from_name(SCORE_OBJECT_SCHEDULE, name, &id) != SCORE_OK ||
        score_param_info(SCORE_OBJECT_SCHEDULE, id, &type, NULL, NULL, NULL) != SCORE_OK)
        return score__error(SCORE_E_FORMAT, fn, "unknown schedule parameter '%.60s'", k);
    errno = 0;
    if (type == SCORE_PARAM_F64) {
        double x = strtod(val, &end);
        if (val[0] == '\0' || *end != '\0' || !isfinite(x))
            return score__error(SCORE_E_FORMAT, fn, "'%.60s' = '%.30s' is not a finite number",
                                k, val);
        rc = score_schedule_set_f64(s, id, x);
    } else {
        long long x = strtoll(val, &end, 10);
        if (val[0] == '\0' || *end != '\0' || errno != 0)
            return score__error(SCORE_E_FORMAT, fn, "'%.60s' = '%.30s' is not an integer", k,
                                val);
        rc = score_schedule_set_i64(s, id, (int64_t)x);
    }
    if (rc != SCORE_OK)
        rc = rc == SCORE_E_NOMEM ? rc : wrap(fn, "schedule parameter", k);
    return rc;
}

/* Every "<prefix>.<name>" entry other than kind must be a parameter the kind accepts. */
static int set_all(const char *fn, const score__st_reader *r, const char *prefix,
                   score_schedule *s)
{
    size_t pl = strlen(prefix);
    for (size_t i = 0; i < score__st_meta_count(r); i++) {
        const char *k, *val;
        int rc;
        if (score__st_meta_at(r, i, &k, &val) != SCORE_OK || k == NULL || val == NULL)
            return score__error(SCORE_E_FORMAT, fn, "unreadable metadata entry %zu", i);
        if (strncmp(k, prefix, pl) != 0 || k[pl] != '.' || strcmp(k + pl + 1, "kind") == 0)
            continue;
        if ((rc = set_one(fn, s, k, k + pl + 1, val)) != SCORE_OK)
            return rc;
    }
    return SCORE_OK;
}

/* The "<prefix>.array" tensor: required by the user-array kinds, refused by the others. */
static int read_array(const char *fn, const score__st_reader *r, const char *prefix,
                      score_schedule *s, int kind)
{
    char key[KEY_MAX];
    int rc;
    if (key_of(key, prefix, "array") != 0)
        return score__error(SCORE_E_GENERIC, fn, "schedule key too long");
    const score__st_tensor *t = score__st_find(r, key);
    if (!is_user_array_kind(kind))
        return t == NULL ? SCORE_OK
                         : score__error(SCORE_E_FORMAT, fn,
                                        "unexpected tensor '%s' for this schedule kind", key);
    if (t == NULL || t->dtype != SCORE__ST_F64 || t->ndim != 1 || t->count == 0 ||
        t->count > 1000000)
        return score__error(SCORE_E_FORMAT, fn,
                            "tensor '%s' (F64, 1 to 1000000 values) missing or malformed", key);
    double *arr = score__calloc(t->count, sizeof(double));
    if (arr == NULL)
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    rc = score__st_get(fn, r, key, SCORE__ST_F64, 1, t->shape, arr);
    if (rc == SCORE_OK && (rc = score_schedule_set_array(s, t->count, arr)) != SCORE_OK)
        rc = rc == SCORE_E_NOMEM ? rc : wrap(fn, "schedule array", key);
    score__free(arr);
    return rc;
}

int score__schedule_load(const char *fn, const score__st_reader *r, const char *prefix,
                         score_schedule **out)
{
    long kind = 0;
    score_schedule *s = NULL;
    int rc;
    *out = NULL;
    if ((rc = read_kind(fn, r, prefix, &kind)) != SCORE_OK)
        return rc;
    if ((rc = score_schedule_new(&s, (int)kind)) != SCORE_OK)
        return rc == SCORE_E_NOMEM ? rc : wrap(fn, "schedule kind of", prefix);
    if ((rc = require_all(fn, r, prefix, s, (int)kind)) == SCORE_OK &&
        (rc = set_all(fn, r, prefix, s)) == SCORE_OK &&
        (rc = read_array(fn, r, prefix, s, (int)kind)) == SCORE_OK &&
        (rc = score_schedule_prepare(s)) != SCORE_OK)
        rc = rc == SCORE_E_NOMEM ? rc : wrap(fn, "inconsistent schedule", prefix);
    if (rc != SCORE_OK) {
        score_schedule_free(s);
        return rc;
    }
    *out = s;
    return SCORE_OK;
}
