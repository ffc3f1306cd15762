/* User metadata of a model: a small string map kept sorted by key (byte order), copied by
 * score_model_clone() and stored in model files as "user.<key>" entries of the safetensors
 * "__metadata__" object (model-io.c). */
#include <string.h>

#include "model-priv.h"

struct score__model_meta {
    size_t n;
    char *keys[SCORE__META_MAX_ENTRIES];
    char *values[SCORE__META_MAX_ENTRIES];
};

static char *dup_str(const char *s, size_t len)
{
    char *d = score__calloc(len + 1, 1);
    if (d != NULL)
        memcpy(d, s, len);
    return d;
}

int score__model_meta_check_key(const char *fn, int status, const char *key)
{
    size_t len = 0;
    for (const char *p = key; *p != '\0'; p++, len++) {
        unsigned char ch = (unsigned char)*p;
        if (len >= SCORE__META_MAX_KEY)
            return score__error(status, fn, "metadata key longer than %d bytes",
                                SCORE__META_MAX_KEY);
        if (ch < 0x20 || ch > 0x7e || ch == '"' || ch == '\\')
            return score__error(status, fn,
                                "metadata key has a character 0x%02x that is not printable "
                                "ASCII or is '\"' or '\\'", (unsigned)ch);
    }
    if (len == 0)
        return score__error(status, fn, "metadata key is empty");
    return SCORE_OK;
}

int score__model_meta_check_value(const char *fn, int status, const char *key, const char *value)
{
    const unsigned char *p = (const unsigned char *)value;
    size_t i = 0;
    while (p[i] != '\0') {
        unsigned char c = p[i];
        size_t extra;
        uint32_t cp, min;
        if (i >= SCORE__META_MAX_VALUE)
            return score__error(status, fn, "metadata value of '%.40s' longer than %d bytes",
                                key, SCORE__META_MAX_VALUE);
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            extra = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            extra = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            extra = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return score__error(status, fn, "metadata value of '%.40s' is not UTF-8 (byte %zu)",
                                key, i);
        }
        for (size_t j = 1; j <= extra; j++) {
            if ((p[i + j] & 0xc0) != 0x80) /* also stops at the terminating NUL */
                return score__error(status, fn,
                                    "metadata value of '%.40s' is not UTF-8 (byte %zu)", key, i);
            cp = (cp << 6) | (p[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return score__error(status, fn,
                                "metadata value of '%.40s' is not UTF-8 (overlong or invalid "
                                "code point at byte %zu)", key, i);
        i += extra + 1;
    }
    if (i > SCORE__META_MAX_VALUE)
        return score__error(status, fn, "metadata value of '%.40s' longer than %d bytes", key,
                            SCORE__META_MAX_VALUE);
    return SCORE_OK;
}

/* Index of key, or of the insertion point (with *found = 0). */
static size_t find(const struct score__model_meta *mm, const char *key, int *found)
{
    size_t lo = 0, hi = mm ? mm->n : 0;
    *found = 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(mm->keys[mid], key);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int score__model_meta_set(const char *fn, int bad_status, score_model *m, const char *key,
                          const char *value)
{
    struct score__model_meta *mm;
    int rc, found;
    size_t i;
    char *k = NULL, *v = NULL;
    if ((rc = score__model_meta_check_key(fn, bad_status, key)) != SCORE_OK)
        return rc;
    if (value != NULL && (rc = score__model_meta_check_value(fn, bad_status, key, value)) != SCORE_OK)
        return rc;
    i = find(m->meta, key, &found);
    if (value == NULL) {
        if (found) {
            mm = m->meta;
            score__free(mm->keys[i]);
            score__free(mm->values[i]);
            memmove(mm->keys + i, mm->keys + i + 1, (mm->n - i - 1) * sizeof(char *));
            memmove(mm->values + i, mm->values + i + 1, (mm->n - i - 1) * sizeof(char *));
            mm->n--;
        }
        return SCORE_OK;
    }
    if (!found && m->meta != NULL && m->meta->n >= SCORE__META_MAX_ENTRIES)
        return score__error(bad_status == SCORE_E_FORMAT ? SCORE_E_FORMAT : SCORE_E_RANGE, fn,
                            "more than %d metadata entries", SCORE__META_MAX_ENTRIES);
    if (m->meta == NULL && (m->meta = score__calloc(1, sizeof *m->meta)) == NULL)
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    mm = m->meta;
    v = dup_str(value, strlen(value));
    if (!found)
        k = dup_str(key, strlen(key));
    if (v == NULL || (!found && k == NULL)) {
        score__free(k);
        score__free(v);
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    }
    if (found) {
        score__free(mm->values[i]);
        mm->values[i] = v;
        return SCORE_OK;
    }
    memmove(mm->keys + i + 1, mm->keys + i, (mm->n - i) * sizeof(char *));
    memmove(mm->values + i + 1, mm->values + i, (mm->n - i) * sizeof(char *));
    mm->keys[i] = k;
    mm->values[i] = v;
    mm->n++;
    return SCORE_OK;
}

void score__model_meta_free(score_model *m)
{
    struct score__model_meta *mm = m->meta;
    if (mm == NULL)
        return;
    for (size_t i = 0; i < mm->n; i++) {
        score__free(mm->keys[i]);
        score__free(mm->values[i]);
    }
    score__free(mm);
    m->meta = NULL;
}

int score__model_meta_copy(score_model *dst, const score_model *src)
{
    const struct score__model_meta *s = src->meta;
    dst->meta = NULL;
    if (s == NULL || s->n == 0)
        return SCORE_OK;
    if ((dst->meta = score__calloc(1, sizeof *dst->meta)) == NULL)
        return SCORE_E_NOMEM;
    for (size_t i = 0; i < s->n; i++) {
        char *k = dup_str(s->keys[i], strlen(s->keys[i]));
        char *v = dup_str(s->values[i], strlen(s->values[i]));
        if (k == NULL || v == NULL) {
            score__free(k);
            score__free(v);
            score__model_meta_free(dst);
            return SCORE_E_NOMEM;
        }
        dst->meta->keys[i] = k;
        dst->meta->values[i] = v;
        dst->meta->n = i + 1;
    }
    return SCORE_OK;
}

int score__model_meta_at(const score_model *m, size_t i, const char **key, const char **value)
{
    if (m->meta == NULL || i >= m->meta->n)
        return SCORE_E_RANGE;
    *key = m->meta->keys[i];
    *value = m->meta->values[i];
    return SCORE_OK;
}

/* ---- public API ---------------------------------------------------------------------- */

int score_model_set_metadata(score_model *model, const char *key, const char *value)
{
    if (model == NULL || key == NULL)
        return score__error(SCORE_E_INVAL, __func__, "model or key is NULL");
    return score__model_meta_set(__func__, SCORE_E_INVAL, model, key, value);
}

int score_model_get_metadata(const score_model *model, const char *key, const char **value_out)
{
    int found;
    size_t i;
    if (value_out != NULL)
        *value_out = NULL;
    if (model == NULL || key == NULL || value_out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "model, key or value_out is NULL");
    i = find(model->meta, key, &found);
    if (found)
        *value_out = model->meta->values[i];
    return SCORE_OK;
}

size_t score_model_metadata_count(const score_model *model)
{
    return model != NULL && model->meta != NULL ? model->meta->n : 0;
}

int score_model_metadata_key(const score_model *model, size_t i, const char **key_out)
{
    if (key_out != NULL)
        *key_out = NULL;
    if (model == NULL || key_out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "model or key_out is NULL");
    if (model->meta == NULL || i >= model->meta->n)
        return score__error(SCORE_E_RANGE, __func__, "index %zu not below the entry count %zu", i,
                            score_model_metadata_count(model));
    *key_out = model->meta->keys[i];
    return SCORE_OK;
}
