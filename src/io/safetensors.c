/* Safetensors container: a hostile-input-safe reader and a simple writer (see
 * safetensors-priv.h for the format and the checks). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/core-priv.h"
#include "safetensors-priv.h"

static const struct {
    int dtype;
    const char *name;
    size_t size;
} dtypes[] = {
    {SCORE__ST_U8, "U8", 1},   {SCORE__ST_I8, "I8", 1},     {SCORE__ST_I32, "I32", 4},
    {SCORE__ST_I64, "I64", 8}, {SCORE__ST_F16, "F16", 2},   {SCORE__ST_BF16, "BF16", 2},
    {SCORE__ST_F32, "F32", 4}, {SCORE__ST_F64, "F64", 8},
};
#define N_DTYPES (sizeof dtypes / sizeof dtypes[0])

const char *score__st_dtype_name(int dtype)
{
    for (size_t i = 0; i < N_DTYPES; i++)
        if (dtypes[i].dtype == dtype)
            return dtypes[i].name;
    return NULL;
}

size_t score__st_dtype_size(int dtype)
{
    for (size_t i = 0; i < N_DTYPES; i++)
        if (dtypes[i].dtype == dtype)
            return dtypes[i].size;
    return 0;
}

static int dtype_from_name(const char *s)
{
    for (size_t i = 0; i < N_DTYPES; i++)
        if (strcmp(dtypes[i].name, s) == 0)
            return dtypes[i].dtype;
    return 0;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p != NULL)
        memcpy(p, s, n);
    return p;
}

/* Grows *p (elements of `size`) to hold at least `need`; 0 on success. */
static int grow(void **p, size_t *cap, size_t need, size_t size)
{
    size_t ncap, bytes;
    void *q;
    if (need <= *cap)
        return 0;
    ncap = *cap ? *cap : 8;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2)
            return -1;
        ncap *= 2;
    }
    if (score__mul_size(ncap, size, &bytes) != 0)
        return -1;
    q = realloc(*p, bytes);
    if (q == NULL)
        return -1;
    *p = q;
    *cap = ncap;
    return 0;
}

/* Encodes n elements of `size` bytes from native order to little-endian. */
static void encode_le(unsigned char *dst, const void *src, size_t n, size_t size)
{
    const unsigned char *s = src;
    if (size == 1) {
        memcpy(dst, src, n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t v = 0;
        if (size == 2) { uint16_t t; memcpy(&t, s + 2 * i, 2); v = t; }
        else if (size == 4) { uint32_t t; memcpy(&t, s + 4 * i, 4); v = t; }
        else { memcpy(&v, s + 8 * i, 8); }
        for (size_t b = 0; b < size; b++)
            dst[i * size + b] = (unsigned char)(v >> (8 * b));
    }
}

/* Decodes n little-endian elements of `size` bytes into native order. */
static void decode_le(void *dst, const unsigned char *src, size_t n, size_t size)
{
    unsigned char *d = dst;
    if (size == 1) {
        memcpy(dst, src, n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t v = 0;
        for (size_t b = 0; b < size; b++)
            v |= (uint64_t)src[i * size + b] << (8 * b);
        if (size == 2) { uint16_t t = (uint16_t)v; memcpy(d + 2 * i, &t, 2); }
        else if (size == 4) { uint32_t t = (uint32_t)v; memcpy(d + 4 * i, &t, 4); }
        else { memcpy(d + 8 * i, &v, 8); }
    }
}

/* ======================================================================================== */
/* writer                                                                                   */

typedef struct st_wentry {
    char *name;
    int dtype;
    size_t ndim;
    uint64_t shape[SCORE__ST_MAX_DIMS];
    size_t begin, end;
} st_wentry;

typedef struct st_kv {
    char *key, *value;
} st_kv;

struct score__st_writer {
    st_kv *meta;
    size_t n_meta, cap_meta;
    st_wentry *ent;
    size_t n_ent, cap_ent;
    unsigned char *data;
    size_t data_len, data_cap;
};

int score__st_writer_new(const char *fn, score__st_writer **out)
{
    *out = score__calloc(1, sizeof **out);
    if (*out == NULL)
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    return SCORE_OK;
}

void score__st_writer_free(score__st_writer *w)
{
    if (w == NULL)
        return;
    for (size_t i = 0; i < w->n_meta; i++) {
        free(w->meta[i].key);
        free(w->meta[i].value);
    }
    for (size_t i = 0; i < w->n_ent; i++)
        free(w->ent[i].name);
    free(w->meta);
    free(w->ent);
    free(w->data);
    score__free(w);
}

int score__st_writer_meta(const char *fn, score__st_writer *w, const char *key, const char *value)
{
    char *v;
    if (key == NULL || value == NULL || key[0] == '\0' || strlen(key) > SCORE__ST_MAX_NAME)
        return score__error(SCORE_E_INVAL, fn, "bad metadata key or value");
    v = dup_str(value);
    if (v == NULL)
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    for (size_t i = 0; i < w->n_meta; i++) {
        if (strcmp(w->meta[i].key, key) == 0) {
            free(w->meta[i].value);
            w->meta[i].value = v;
            return SCORE_OK;
        }
    }
    if (grow((void **)&w->meta, &w->cap_meta, w->n_meta + 1, sizeof *w->meta) != 0 ||
        (w->meta[w->n_meta].key = dup_str(key)) == NULL) {
        free(v);
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    }
    w->meta[w->n_meta++].value = v;
    return SCORE_OK;
}

int score__st_writer_add(const char *fn, score__st_writer *w, const char *name, int dtype,
                         size_t ndim, const uint64_t *shape, const void *data)
{
    size_t esize = score__st_dtype_size(dtype), count = 1, nbytes;
    st_wentry *e;
    if (name == NULL || name[0] == '\0' || strlen(name) > SCORE__ST_MAX_NAME ||
        strcmp(name, "__metadata__") == 0)
        return score__error(SCORE_E_INVAL, fn, "bad tensor name");
    if (esize == 0)
        return score__error(SCORE_E_INVAL, fn, "unknown dtype %d", dtype);
    if (ndim > SCORE__ST_MAX_DIMS || (ndim > 0 && shape == NULL))
        return score__error(SCORE_E_INVAL, fn, "tensor '%s': bad shape", name);
    if (w->n_ent >= SCORE__ST_MAX_TENSORS)
        return score__error(SCORE_E_RANGE, fn, "more than %d tensors", SCORE__ST_MAX_TENSORS);
    for (size_t i = 0; i < ndim; i++) {
        if (shape[i] > SIZE_MAX || score__mul_size(count, (size_t)shape[i], &count) != 0)
            return score__error(SCORE_E_RANGE, fn, "tensor '%s' is too large", name);
    }
    if (score__mul_size(count, esize, &nbytes) != 0 || nbytes > SIZE_MAX - w->data_len ||
        (nbytes > 0 && data == NULL))
        return score__error(nbytes > 0 && data == NULL ? SCORE_E_INVAL : SCORE_E_RANGE, fn,
                            "tensor '%s': no data or too large", name);
    for (size_t i = 0; i < w->n_ent; i++)
        if (strcmp(w->ent[i].name, name) == 0)
            return score__error(SCORE_E_INVAL, fn, "duplicate tensor name '%s'", name);
    if (grow((void **)&w->ent, &w->cap_ent, w->n_ent + 1, sizeof *w->ent) != 0 ||
        grow((void **)&w->data, &w->data_cap, w->data_len + nbytes, 1) != 0)
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    e = &w->ent[w->n_ent];
    memset(e, 0, sizeof *e);
    if ((e->name = dup_str(name)) == NULL)
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    e->dtype = dtype;
    e->ndim = ndim;
    for (size_t i = 0; i < ndim; i++)
        e->shape[i] = shape[i];
    e->begin = w->data_len;
    e->end = w->data_len + nbytes;
    if (nbytes > 0)
        encode_le(w->data + w->data_len, data, count, esize);
    w->data_len += nbytes;
    w->n_ent++;
    return SCORE_OK;
}

int score__st_writer_add_f32(const char *fn, score__st_writer *w, const char *name, size_t ndim,
                             const uint64_t *shape, const float *data)
{
    return score__st_writer_add(fn, w, name, SCORE__ST_F32, ndim, shape, data);
}

int score__st_writer_add_i64(const char *fn, score__st_writer *w, const char *name, size_t ndim,
                             const uint64_t *shape, const int64_t *data)
{
    return score__st_writer_add(fn, w, name, SCORE__ST_I64, ndim, shape, data);
}

int score__st_writer_add_u8(const char *fn, score__st_writer *w, const char *name, size_t n,
                            const unsigned char *data)
{
    uint64_t shape = n;
    return score__st_writer_add(fn, w, name, SCORE__ST_U8, 1, &shape, data);
}

/* Growing string for the JSON header. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
    int failed;
} sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (n > SIZE_MAX - b->len - 1 || grow((void **)&b->p, &b->cap, b->len + n + 1, 1) != 0) {
        b->failed = 1;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s)
{
    sb_putn(b, s, strlen(s));
}

static void sb_u64(sbuf *b, uint64_t v)
{
    char tmp[24];
    snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    sb_puts(b, tmp);
}

/* A JSON string literal: quotes, backslash and control characters escaped; other bytes are
 * copied (UTF-8 passes through). */
static void sb_json_str(sbuf *b, const char *s)
{
    sb_putn(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            sb_putn(b, esc, 2);
        } else if (*p < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", (unsigned)*p);
            sb_puts(b, esc);
        } else {
            sb_putn(b, (const char *)p, 1);
        }
    }
    sb_putn(b, "\"", 1);
}

int score__st_writer_finish(const char *fn, const score__st_writer *w, void **buf_out,
                            size_t *len_out)
{
    sbuf h = {NULL, 0, 0, 0};
    unsigned char *buf;
    size_t hlen, total;
    *buf_out = NULL;
    *len_out = 0;
    sb_puts(&h, "{");
    if (w->n_meta > 0) {
        sb_puts(&h, "\"__metadata__\":{");
        for (size_t i = 0; i < w->n_meta; i++) {
            if (i > 0)
                sb_puts(&h, ",");
            sb_json_str(&h, w->meta[i].key);
            sb_puts(&h, ":");
            sb_json_str(&h, w->meta[i].value);
        }
        sb_puts(&h, "}");
    }
    for (size_t i = 0; i < w->n_ent; i++) {
        const st_wentry *e = &w->ent[i];
        if (i > 0 || w->n_meta > 0)
            sb_puts(&h, ",");
        sb_json_str(&h, e->name);
        sb_puts(&h, ":{\"dtype\":\"");
        sb_puts(&h, score__st_dtype_name(e->dtype));
        sb_puts(&h, "\",\"shape\":[");
        for (size_t d = 0; d < e->ndim; d++) {
            if (d > 0)
                sb_puts(&h, ",");
            sb_u64(&h, e->shape[d]);
        }
        sb_puts(&h, "],\"data_offsets\":[");
        sb_u64(&h, e->begin);
        sb_puts(&h, ",");
        sb_u64(&h, e->end);
        sb_puts(&h, "]}");
    }
    sb_puts(&h, "}");
    /* Pad with spaces so that the data section starts 8-byte aligned. */
    while (!h.failed && (8 + h.len) % 8 != 0)
        sb_puts(&h, " ");
    if (h.failed) {
        free(h.p);
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    }
    hlen = h.len;
    if ((uint64_t)hlen > SCORE__ST_MAX_HEADER) {
        free(h.p);
        return score__error(SCORE_E_RANGE, fn, "header of %zu bytes exceeds the limit", hlen);
    }
    if (w->data_len > SIZE_MAX - 8 - hlen) {
        free(h.p);
        return score__error(SCORE_E_NOMEM, fn, "file too large");
    }
    total = 8 + hlen + w->data_len;
    buf = malloc(total);
    if (buf == NULL) {
        free(h.p);
        return score__error(SCORE_E_NOMEM, fn, "allocation of %zu bytes failed", total);
    }
    score__put_u64le(buf, (uint64_t)hlen);
    memcpy(buf + 8, h.p, hlen);
    if (w->data_len > 0)
        memcpy(buf + 8 + hlen, w->data, w->data_len);
    free(h.p);
    *buf_out = buf;
    *len_out = total;
    return SCORE_OK;
}

/* ---- crash-safe file store ---- */

static int write_all(int fd, const unsigned char *p, size_t len)
{
    while (len > 0) {
        size_t chunk = len > ((size_t)1 << 30) ? ((size_t)1 << 30) : len;
        ssize_t k = write(fd, p, chunk);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += k;
        len -= (size_t)k;
    }
    return 0;
}

static void sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    int fd;
    size_t n;
    if (slash == NULL) {
        dir = dup_str(".");
    } else {
        n = (size_t)(slash - path);
        if (n == 0)
            n = 1; /* "/file" */
        dir = malloc(n + 1);
        if (dir != NULL) {
            memcpy(dir, path, n);
            dir[n] = '\0';
        }
    }
    if (dir == NULL)
        return;
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd); /* best effort: some file systems refuse fsync on directories */
        close(fd);
    }
    free(dir);
}

int score__st_save_file(const char *fn, const char *path, const void *buf, size_t len)
{
    size_t plen;
    char *tmp;
    int fd = -1, err;
    if (path == NULL || path[0] == '\0')
        return score__error(SCORE_E_INVAL, fn, "path is NULL or empty");
    plen = strlen(path);
    tmp = malloc(plen + 48);
    if (tmp == NULL)
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    /* A fresh temporary name next to the destination (same file system, so rename is atomic). */
    for (unsigned attempt = 0; attempt < 1000 && fd < 0; attempt++) {
        snprintf(tmp, plen + 48, "%s.tmp-%ld-%u", path, (long)getpid(), attempt);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        err = errno;
        free(tmp);
        return score__error(SCORE_E_IO, fn, "cannot create a temporary file next to '%s': %s",
                            path, strerror(err));
    }
    if (write_all(fd, buf, len) != 0 || fsync(fd) != 0) {
        err = errno;
        close(fd);
        unlink(tmp);
        free(tmp);
        return score__error(SCORE_E_IO, fn, "writing '%s' failed: %s", path, strerror(err));
    }
    if (close(fd) != 0) {
        err = errno;
        unlink(tmp);
        free(tmp);
        return score__error(SCORE_E_IO, fn, "writing '%s' failed: %s", path, strerror(err));
    }
    if (rename(tmp, path) != 0) {
        err = errno;
        unlink(tmp);
        free(tmp);
        return score__error(SCORE_E_IO, fn, "cannot rename the temporary file to '%s': %s",
                            path, strerror(err));
    }
    free(tmp);
    sync_parent_dir(path);
    return SCORE_OK;
}

/* ======================================================================================== */
/* reader                                                                                   */

typedef struct st_rtensor {
    score__st_tensor pub;
    uint64_t begin, end;
} st_rtensor;

struct score__st_reader {
    const unsigned char *buf;
    size_t len;
    int own;
    cJSON *root;
    const char **meta_key, **meta_val;
    size_t n_meta;
    st_rtensor *t;
    size_t n_t;
    const st_rtensor **by_name; /* sorted by name, for lookup */
};

void score__st_reader_free(score__st_reader *r)
{
    if (r == NULL)
        return;
    if (r->own)
        score__free((void *)r->buf);
    cJSON_Delete(r->root);
    free(r->meta_key);
    free(r->meta_val);
    free(r->t);
    free(r->by_name);
    score__free(r);
}

/* A JSON number that is an integer in [0, 2^53]. */
static int json_u64(const cJSON *item, uint64_t *out)
{
    double d;
    if (!cJSON_IsNumber(item))
        return -1;
    d = item->valuedouble;
    if (!(d >= 0.0 && d <= 9007199254740992.0) || d != floor(d))
        return -1;
    *out = (uint64_t)d;
    return 0;
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_tensor_name(const void *a, const void *b)
{
    const st_rtensor *x = *(const st_rtensor *const *)a, *y = *(const st_rtensor *const *)b;
    return strcmp(x->pub.name, y->pub.name);
}

static int cmp_tensor_offset(const void *a, const void *b)
{
    const st_rtensor *x = *(const st_rtensor *const *)a, *y = *(const st_rtensor *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

static int parse_metadata(const char *fn, score__st_reader *r, const cJSON *meta)
{
    size_t n = 0, i = 0;
    const cJSON *it;
    const char **sorted;
    if (!cJSON_IsObject(meta))
        return score__error(SCORE_E_FORMAT, fn, "__metadata__ is not a JSON object");
    cJSON_ArrayForEach(it, meta) n++;
    if (n > SCORE__ST_MAX_TENSORS)
        return score__error(SCORE_E_FORMAT, fn, "too many metadata entries (%zu)", n);
    if (n == 0)
        return SCORE_OK;
    r->meta_key = calloc(n, sizeof *r->meta_key);
    r->meta_val = calloc(n, sizeof *r->meta_val);
    if (r->meta_key == NULL || r->meta_val == NULL)
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    cJSON_ArrayForEach(it, meta) {
        if (it->string == NULL || !cJSON_IsString(it) || it->valuestring == NULL)
            return score__error(SCORE_E_FORMAT, fn, "metadata values must be strings");
        r->meta_key[i] = it->string;
        r->meta_val[i] = it->valuestring;
        i++;
    }
    r->n_meta = n;
    sorted = malloc(n * sizeof *sorted);
    if (sorted == NULL)
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    memcpy(sorted, r->meta_key, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_str_ptr);
    for (i = 1; i < n; i++) {
        if (strcmp(sorted[i - 1], sorted[i]) == 0) {
            free(sorted);
            return score__error(SCORE_E_FORMAT, fn, "duplicate metadata key");
        }
    }
    free(sorted);
    return SCORE_OK;
}

static int parse_tensor(const char *fn, const cJSON *e, st_rtensor *t, uint64_t data_len)
{
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    const cJSON *it;
    size_t esize, count = 1, nbytes, nd = 0;
    const char *name = e->string;
    if (name == NULL || name[0] == '\0' || strlen(name) > SCORE__ST_MAX_NAME)
        return score__error(SCORE_E_FORMAT, fn, "empty or overlong tensor name");
    if (!cJSON_IsObject(e))
        return score__error(SCORE_E_FORMAT, fn, "tensor '%s' is not a JSON object", name);
    if (!cJSON_IsString(dt) || dt->valuestring == NULL ||
        (t->pub.dtype = dtype_from_name(dt->valuestring)) == 0)
        return score__error(SCORE_E_FORMAT, fn, "tensor '%s': missing or unsupported dtype", name);
    esize = score__st_dtype_size(t->pub.dtype);
    if (!cJSON_IsArray(sh))
        return score__error(SCORE_E_FORMAT, fn, "tensor '%s': shape is not an array", name);
    cJSON_ArrayForEach(it, sh) {
        uint64_t d;
        if (nd >= SCORE__ST_MAX_DIMS)
            return score__error(SCORE_E_FORMAT, fn, "tensor '%s' has more than %d dimensions",
                                name, SCORE__ST_MAX_DIMS);
        if (json_u64(it, &d) != 0 || d > SIZE_MAX ||
            score__mul_size(count, (size_t)d, &count) != 0)
            return score__error(SCORE_E_FORMAT, fn, "tensor '%s': bad or too large shape", name);
        t->pub.shape[nd++] = d;
    }
    t->pub.ndim = nd;
    if (score__mul_size(count, esize, &nbytes) != 0)
        return score__error(SCORE_E_FORMAT, fn, "tensor '%s' is too large", name);
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 ||
        json_u64(cJSON_GetArrayItem(off, 0), &t->begin) != 0 ||
        json_u64(cJSON_GetArrayItem(off, 1), &t->end) != 0)
        return score__error(SCORE_E_FORMAT, fn, "tensor '%s': bad data_offsets", name);
    if (t->begin > t->end || t->end > data_len)
        return score__error(SCORE_E_FORMAT, fn,
                            "tensor '%s': data_offsets [%llu, %llu] outside the %llu-byte data",
                            name, (unsigned long long)t->begin, (unsigned long long)t->end,
                            (unsigned long long)data_len);
    if (t->end - t->begin != (uint64_t)nbytes)
        return score__error(SCORE_E_FORMAT, fn,
                            "tensor '%s': %zu bytes for its shape, %llu in data_offsets", name,
                            nbytes, (unsigned long long)(t->end - t->begin));
    t->pub.name = name;
    t->pub.count = count;
    t->pub.nbytes = nbytes;
    return SCORE_OK;
}

static int parse(const char *fn, score__st_reader *r)
{
    uint64_t hlen, data_len;
    const char *hdr, *end = NULL;
    const cJSON *it;
    const st_rtensor **order;
    size_t n = 0, n_meta_obj = 0, i;
    int rc;

    if (r->len < 8)
        return score__error(SCORE_E_FORMAT, fn, "%zu bytes: too short for a safetensors file", r->len);
    hlen = score__get_u64le(r->buf);
    if (hlen < 2 || hlen > SCORE__ST_MAX_HEADER || hlen > (uint64_t)(r->len - 8))
        return score__error(SCORE_E_FORMAT, fn,
                            "header length %llu is invalid for a %zu-byte file (limit %llu)",
                            (unsigned long long)hlen, r->len,
                            (unsigned long long)SCORE__ST_MAX_HEADER);
    data_len = (uint64_t)(r->len - 8) - hlen;
    hdr = (const char *)r->buf + 8;
    r->root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen, &end, 0);
    if (r->root == NULL)
        return score__error(SCORE_E_FORMAT, fn, "the header is not valid JSON");
    if (!cJSON_IsObject(r->root))
        return score__error(SCORE_E_FORMAT, fn, "the header is not a JSON object");
    /* Only white space (the padding) may follow the object. */
    if (end == NULL || end < hdr || end > hdr + hlen)
        return score__error(SCORE_E_FORMAT, fn, "the header is not valid JSON");
    for (const char *p = end; p < hdr + hlen; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            return score__error(SCORE_E_FORMAT, fn, "trailing bytes after the JSON header");

    cJSON_ArrayForEach(it, r->root) {
        if (it->string != NULL && strcmp(it->string, "__metadata__") == 0)
            n_meta_obj++;
        else
            n++;
    }
    if (n_meta_obj > 1)
        return score__error(SCORE_E_FORMAT, fn, "more than one __metadata__ object");
    if (n > SCORE__ST_MAX_TENSORS)
        return score__error(SCORE_E_FORMAT, fn, "%zu tensors exceed the limit of %d", n,
                            SCORE__ST_MAX_TENSORS);
    if (n > 0) {
        r->t = calloc(n, sizeof *r->t);
        r->by_name = calloc(n, sizeof *r->by_name);
        if (r->t == NULL || r->by_name == NULL)
            return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    }
    i = 0;
    cJSON_ArrayForEach(it, r->root) {
        if (it->string != NULL && strcmp(it->string, "__metadata__") == 0) {
            if ((rc = parse_metadata(fn, r, it)) != SCORE_OK)
                return rc;
            continue;
        }
        if ((rc = parse_tensor(fn, it, &r->t[i], data_len)) != SCORE_OK)
            return rc;
        r->t[i].pub.data = r->buf + 8 + hlen + r->t[i].begin;
        r->by_name[i] = &r->t[i];
        i++;
    }
    r->n_t = n;

    if (n > 0)
        qsort(r->by_name, n, sizeof *r->by_name, cmp_tensor_name);
    for (i = 1; i < n; i++)
        if (strcmp(r->by_name[i - 1]->pub.name, r->by_name[i]->pub.name) == 0)
            return score__error(SCORE_E_FORMAT, fn, "duplicate tensor name '%s'",
                                r->by_name[i]->pub.name);

    /* The tensors must tile the data section exactly. */
    if (n == 0) {
        if (data_len != 0)
            return score__error(SCORE_E_FORMAT, fn, "%llu data bytes but no tensors",
                                (unsigned long long)data_len);
        return SCORE_OK;
    }
    order = malloc(n * sizeof *order);
    if (order == NULL)
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    for (i = 0; i < n; i++)
        order[i] = &r->t[i];
    qsort(order, n, sizeof *order, cmp_tensor_offset);
    {
        uint64_t pos = 0;
        for (i = 0; i < n; i++) {
            if (order[i]->begin != pos) {
                const char *nm = order[i]->pub.name;
                int overlap = order[i]->begin < pos;
                free(order);
                return score__error(SCORE_E_FORMAT, fn, "tensor '%s': data %s", nm,
                                    overlap ? "overlaps another tensor" : "leaves a gap");
            }
            pos = order[i]->end;
        }
        free(order);
        if (pos != data_len)
            return score__error(SCORE_E_FORMAT, fn, "%llu trailing data bytes after the tensors",
                                (unsigned long long)(data_len - pos));
    }
    return SCORE_OK;
}

int score__st_reader_open(const char *fn, score__st_reader **out, const void *buf, size_t len,
                          int own)
{
    score__st_reader *r;
    int rc;
    *out = NULL;
    if (buf == NULL && len > 0) {
        return score__error(SCORE_E_INVAL, fn, "buffer is NULL");
    }
    r = score__calloc(1, sizeof *r);
    if (r == NULL) {
        if (own)
            score__free((void *)buf);
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    }
    r->buf = buf;
    r->len = len;
    r->own = own;
    rc = parse(fn, r);
    if (rc != SCORE_OK) {
        score__st_reader_free(r);
        return rc;
    }
    *out = r;
    return SCORE_OK;
}

int score__st_reader_open_file(const char *fn, score__st_reader **out, const char *path)
{
    FILE *f;
    struct stat st;
    unsigned char *buf;
    size_t len, got = 0;
    int err;
    *out = NULL;
    if (path == NULL)
        return score__error(SCORE_E_INVAL, fn, "path is NULL");
    f = fopen(path, "rb");
    if (f == NULL) {
        err = errno; /* ENOMEM: the C library could not allocate the stream */
        return score__error(err == ENOMEM ? SCORE_E_NOMEM : SCORE_E_IO, fn, "cannot open '%s': %s",
                            path, strerror(err));
    }
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return score__error(SCORE_E_IO, fn, "'%s' is not a readable regular file", path);
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > (uint64_t)(SIZE_MAX / 2)) {
        fclose(f);
        return score__error(SCORE_E_IO, fn, "'%s' is too large", path);
    }
    len = (size_t)st.st_size;
    buf = malloc(len > 0 ? len : 1);
    if (buf == NULL) {
        fclose(f);
        return score__error(SCORE_E_NOMEM, fn, "cannot allocate %zu bytes for '%s'", len, path);
    }
    while (got < len) {
        size_t k = fread(buf + got, 1, len - got, f);
        if (k == 0)
            break;
        got += k;
    }
    if (got != len || ferror(f)) {
        fclose(f);
        free(buf);
        return score__error(SCORE_E_IO, fn, "reading '%s' failed", path);
    }
    fclose(f);
    return score__st_reader_open(fn, out, buf, len, 1);
}

const char *score__st_meta(const score__st_reader *r, const char *key)
{
    for (size_t i = 0; i < r->n_meta; i++)
        if (strcmp(r->meta_key[i], key) == 0)
            return r->meta_val[i];
    return NULL;
}

size_t score__st_meta_count(const score__st_reader *r)
{
    return r->n_meta;
}

int score__st_meta_at(const score__st_reader *r, size_t i, const char **key, const char **value)
{
    if (i >= r->n_meta)
        return SCORE_E_RANGE;
    *key = r->meta_key[i];
    *value = r->meta_val[i];
    return SCORE_OK;
}

size_t score__st_count(const score__st_reader *r)
{
    return r->n_t;
}

const score__st_tensor *score__st_tensor_at(const score__st_reader *r, size_t i)
{
    return i < r->n_t ? &r->t[i].pub : NULL;
}

const score__st_tensor *score__st_find(const score__st_reader *r, const char *name)
{
    size_t lo = 0, hi = r->n_t;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(r->by_name[mid]->pub.name, name);
        if (c == 0)
            return &r->by_name[mid]->pub;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

int score__st_get(const char *fn, const score__st_reader *r, const char *name, int dtype,
                  size_t ndim, const uint64_t *shape, void *out)
{
    const score__st_tensor *t = score__st_find(r, name);
    if (t == NULL)
        return score__error(SCORE_E_FORMAT, fn, "tensor '%s' is missing", name);
    if (t->dtype != dtype)
        return score__error(SCORE_E_FORMAT, fn, "tensor '%s' is %s, expected %s", name,
                            score__st_dtype_name(t->dtype), score__st_dtype_name(dtype));
    if (t->ndim != ndim)
        return score__error(SCORE_E_FORMAT, fn, "tensor '%s' has %zu dimensions, expected %zu",
                            name, t->ndim, ndim);
    for (size_t i = 0; i < ndim; i++)
        if (t->shape[i] != shape[i])
            return score__error(SCORE_E_FORMAT, fn,
                                "tensor '%s': dimension %zu is %llu, expected %llu", name, i,
                                (unsigned long long)t->shape[i], (unsigned long long)shape[i]);
    if (t->count > 0)
        decode_le(out, t->data, t->count, score__st_dtype_size(dtype));
    return SCORE_OK;
}

int score__st_get_f32(const char *fn, const score__st_reader *r, const char *name, size_t ndim,
                      const uint64_t *shape, float *out, int require_finite)
{
    int rc = score__st_get(fn, r, name, SCORE__ST_F32, ndim, shape, out);
    if (rc == SCORE_OK && require_finite) {
        const score__st_tensor *t = score__st_find(r, name);
        if (!score__all_finite_f32(t->count, out))
            return score__error(SCORE_E_FORMAT, fn, "tensor '%s' holds NaN or infinity", name);
    }
    return rc;
}

int score__st_get_i64(const char *fn, const score__st_reader *r, const char *name, size_t ndim,
                      const uint64_t *shape, int64_t *out)
{
    return score__st_get(fn, r, name, SCORE__ST_I64, ndim, shape, out);
}

int score__st_get_u8(const char *fn, const score__st_reader *r, const char *name, size_t n,
                     unsigned char *out)
{
    uint64_t shape = n;
    return score__st_get(fn, r, name, SCORE__ST_U8, 1, &shape, out);
}
