/* Model files of the `score` tool: generative model files (score_genmodel_save(); the library
 * reads their whole meaning), with the tool's descriptive training record as user metadata
 * (score.train.*), and their metadata for display. See doc/model-format.md. */
#include "cli.h"

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

/* cJSON's allocator while header_parse() runs: malloc, noting a failure, so that a NULL from
 * the parser can be told apart as out of memory or a malformed header. */
static int header_alloc_failed;

static void *header_malloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL)
        header_alloc_failed = 1;
    return p;
}

void *cli_header_parse(const char *path, const char *text, size_t hlen, char *err,
                       size_t err_len)
{
    cJSON_Hooks hooks = {header_malloc, free};
    header_alloc_failed = 0;
    cJSON_InitHooks(&hooks);
    cJSON *root = cJSON_ParseWithLength(text, hlen);
    cJSON_InitHooks(NULL);
    if (root != NULL)
        return root;
    if (header_alloc_failed) {
        snprintf(err, err_len, "out of memory parsing the header of model file '%s'", path);
    } else {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at != NULL && at >= text && at <= text + hlen ? (size_t)(at - text) : 0;
        snprintf(err, err_len, "'%s' is not a usable model file: its header is not valid JSON "
                 "(at byte %zu of %zu)", path, off, hlen);
    }
    return NULL;
}

/* Adds the model's user metadata, restored by the library, to meta: 0 or -1 (memory). */
static int user_metadata(const score_model *model, cli_meta *meta)
{
    for (size_t i = 0; i < score_model_metadata_count(model); i++) {
        const char *k, *v;
        if (score_model_metadata_key(model, i, &k) != SCORE_OK ||
            score_model_get_metadata(model, k, &v) != SCORE_OK || v == NULL ||
            cli_meta_set(meta, k, v) != 0)
            return -1;
    }
    return 0;
}

/* For display only ('score info'): adds the library's own descriptive keys (kind, library
 * version, architecture) of the header's "__metadata__"; user entries are taken already. 0 or
 * -1 (memory). */
static int library_metadata(const cJSON *root, cli_meta *meta)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "__metadata__");
    const cJSON *it;
    cJSON_ArrayForEach(it, m) {
        if (cJSON_IsString(it) && it->string != NULL && strncmp(it->string, "user.", 5) != 0 &&
            cli_meta_get(meta, it->string) == NULL && cli_meta_set(meta, it->string,
                                                                   it->valuestring) != 0)
            return -1;
    }
    return 0;
}

int cli_model_file_read(const char *path, int allow_plain, cli_model_file *f, char *err,
                        size_t err_len)
{
    memset(f, 0, sizeof *f);
    unsigned char *buf;
    size_t len;
    if (cli_read_input(path, "model file ", cli_input_limit(CLI_MODEL_INPUT_LIMIT), &buf, &len,
                       err, err_len) != 0)
        return -1;
    uint64_t hlen = len >= 8 ? get_le64(buf) : 0;
    if (len < 8 || hlen > len - 8) {
        free(buf);
        snprintf(err, err_len, "'%s' is not a model file (no safetensors header)", path);
        return -1;
    }
    /* the library gives the whole meaning; a plain network is only described ('score info') */
    int rc = score_genmodel_load_buffer(&f->gm, buf, len);
    if (rc != SCORE_OK) {
        snprintf(f->refusal, sizeof f->refusal, "%s", score_last_error_message());
        if (!allow_plain || rc != SCORE_E_FORMAT ||
            score_model_load_buffer(&f->plain, buf, len) != SCORE_OK) {
            free(buf);
            snprintf(err, err_len, "'%s' is not a usable model file: %s", path, f->refusal);
            return -1;
        }
    }
    const score_model *model = f->gm ? score_genmodel_model(f->gm) : f->plain;
    cJSON *root = NULL;
    int ok = user_metadata(model, &f->meta) == 0;
    if (!ok)
        snprintf(err, err_len, "out of memory reading '%s'", path);
    else if ((root = cli_header_parse(path, (const char *)buf + 8, (size_t)hlen, err,
                                       err_len)) == NULL)
        ok = 0;
    else if (library_metadata(root, &f->meta) != 0) {
        snprintf(err, err_len, "out of memory reading '%s'", path);
        ok = 0;
    }
    cJSON_Delete(root);
    free(buf);
    if (!ok) {
        cli_model_file_free(f);
        return -1;
    }
    return 0;
}

int cli_model_file_load(const char *path, const cli_opt *opts, cli_model_file *f)
{
    char err[700];
    int rc;
    if (cli_model_file_read(path, 0, f, err, sizeof err) != 0)
        return cli_fail("%s", err);
    if ((rc = cli_model_threads(opts, score_genmodel_model(f->gm))) != 0)
        cli_model_file_free(f);
    return rc;
}

void cli_model_file_free(cli_model_file *f)
{
    score_genmodel_free(f->gm);
    score_model_free(f->plain);
    cli_meta_free(&f->meta);
    memset(f, 0, sizeof *f);
}
