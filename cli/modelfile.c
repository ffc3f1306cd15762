/* Model files of the `score` tool: a libscore model file (score_model_save_buffer()) whose
 * safetensors `__metadata__` additionally records how the model was trained and how to sample
 * it (schedule, output parameterization, data standardization), under keys that the library's
 * loader ignores. See doc/model-format.md. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <libscore/libscore.h>

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

int cli_meta_set(cli_meta *m, const char *key, const char *value)
{
    for (size_t i = 0; i < m->n; i++) {
        if (strcmp(m->keys[i], key) == 0) {
            char *v = dup_str(value);
            if (v == NULL)
                return -1;
            free(m->values[i]);
            m->values[i] = v;
            return 0;
        }
    }
    char **nk = realloc(m->keys, (m->n + 1) * sizeof *nk);
    if (nk == NULL)
        return -1;
    m->keys = nk;
    char **nv = realloc(m->values, (m->n + 1) * sizeof *nv);
    if (nv == NULL)
        return -1;
    m->values = nv;
    m->keys[m->n] = dup_str(key);
    m->values[m->n] = dup_str(value);
    if (m->keys[m->n] == NULL || m->values[m->n] == NULL) {
        free(m->keys[m->n]);
        free(m->values[m->n]);
        return -1;
    }
    m->n++;
    return 0;
}

int cli_meta_setf(cli_meta *m, const char *key, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= sizeof buf)
        return -1;
    return cli_meta_set(m, key, buf);
}

const char *cli_meta_get(const cli_meta *m, const char *key)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->keys[i], key) == 0)
            return m->values[i];
    return NULL;
}

void cli_meta_free(cli_meta *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->keys[i]);
        free(m->values[i]);
    }
    free(m->keys);
    free(m->values);
    memset(m, 0, sizeof *m);
}

static uint64_t get_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

int cli_model_write(const char *path, const score_model *model, const cli_meta *extra, char *err,
                    size_t err_len)
{
    void *buf = NULL;
    size_t len = 0;
    int rc = score_model_save_buffer(model, &buf, &len);
    if (rc != SCORE_OK) {
        snprintf(err, err_len, "cannot serialise the model: %s", score_last_error_message());
        return -1;
    }
    const unsigned char *b = buf;
    uint64_t hlen = get_le64(b);
    cJSON *root = cJSON_ParseWithLength((const char *)b + 8, (size_t)hlen);
    cJSON *meta = root ? cJSON_GetObjectItemCaseSensitive(root, "__metadata__") : NULL;
    if (meta == NULL) {
        meta = cJSON_CreateObject();
        if (root != NULL && meta != NULL)
            cJSON_AddItemToObject(root, "__metadata__", meta);
    }
    char *json = NULL;
    int ok = root != NULL && meta != NULL;
    for (size_t i = 0; ok && i < extra->n; i++) {
        cJSON_DeleteItemFromObjectCaseSensitive(meta, extra->keys[i]);
        ok = cJSON_AddStringToObject(meta, extra->keys[i], extra->values[i]) != NULL;
    }
    if (ok)
        json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (json == NULL) {
        score_free(buf);
        snprintf(err, err_len, "cannot build the file header (out of memory?)");
        return -1;
    }
    size_t jlen = strlen(json), padded = (jlen + 7) / 8 * 8;
    size_t data_len = len - 8 - (size_t)hlen;

    /* write to a temporary file next to the destination, then rename over it */
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    FILE *f = NULL;
    if (tmp != NULL) {
        snprintf(tmp, plen + 16, "%s.tmp%ld", path, (long)(cli_now() * 1000) % 100000);
        f = fopen(tmp, "wb");
    }
    if (f == NULL) {
        snprintf(err, err_len, "cannot write '%s': %s", path, strerror(errno));
        free(tmp);
        free(json);
        score_free(buf);
        return -1;
    }
    unsigned char head[8];
    put_le64(head, padded);
    int bad = fwrite(head, 1, 8, f) != 8;
    bad |= fwrite(json, 1, jlen, f) != jlen;
    for (size_t i = jlen; i < padded && !bad; i++)
        bad |= fputc(' ', f) == EOF;
    bad |= fwrite(b + 8 + hlen, 1, data_len, f) != data_len;
    bad |= fclose(f) != 0;
    free(json);
    score_free(buf);
    if (bad || rename(tmp, path) != 0) {
        snprintf(err, err_len, "cannot write '%s': %s", path, strerror(errno ? errno : EIO));
        remove(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

int cli_model_read(const char *path, score_model **model, cli_meta *meta, char *err,
                   size_t err_len)
{
    *model = NULL;
    memset(meta, 0, sizeof *meta);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, err_len, "cannot open model file '%s': %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = malloc(cap);
    while (buf != NULL) {
        if (len == cap) {
            unsigned char *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    int rerr = ferror(f);
    fclose(f);
    if (buf == NULL || rerr) {
        free(buf);
        snprintf(err, err_len, "cannot read model file '%s'%s", path,
                 rerr ? " (is it a directory?)" : ": out of memory");
        return -1;
    }
    uint64_t hlen = len >= 8 ? get_le64(buf) : 0;
    if (len < 8 || hlen > len - 8) {
        free(buf);
        snprintf(err, err_len, "'%s' is not a model file (no safetensors header)", path);
        return -1;
    }
    int rc = score_model_load_buffer(model, buf, len);
    if (rc != SCORE_OK) {
        free(buf);
        snprintf(err, err_len, "'%s' is not a usable model file: %s", path,
                 score_last_error_message());
        return -1;
    }
    cJSON *root = cJSON_ParseWithLength((const char *)buf + 8, (size_t)hlen);
    free(buf);
    const cJSON *m = root ? cJSON_GetObjectItemCaseSensitive(root, "__metadata__") : NULL;
    const cJSON *it;
    int ok = 1;
    cJSON_ArrayForEach(it, m) {
        if (cJSON_IsString(it) && it->string != NULL)
            ok &= cli_meta_set(meta, it->string, it->valuestring) == 0;
    }
    cJSON_Delete(root);
    if (!ok) {
        score_model_free(*model);
        *model = NULL;
        cli_meta_free(meta);
        snprintf(err, err_len, "out of memory reading '%s'", path);
        return -1;
    }
    return 0;
}
