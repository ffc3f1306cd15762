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

#include "core/core-priv.h"
#include "st-json-priv.h"

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

int score__st_dtype_from_name(const char *s)
{
    for (size_t i = 0; i < N_DTYPES; i++)
        if (strcmp(dtypes[i].name, s) == 0)
            return dtypes[i].dtype;
    return 0;
}

char *score__st_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p != NULL)
        memcpy(p, s, n);
    return p;
}

int score__st_grow(void **p, size_t *cap, size_t need, size_t size)
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
    v = score__st_strdup(value);
    if (v == NULL)
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    for (size_t i = 0; i < w->n_meta; i++) {
        if (strcmp(w->meta[i].key, key) == 0) {
            free(w->meta[i].value);
            w->meta[i].value = v;
            return SCORE_OK;
        }
    }
    if (score__st_grow((void **)&w->meta, &w->cap_meta, w->n_meta + 1, sizeof *w->meta) != 0 ||
        (w->meta[w->n_meta].key = score__st_strdup(key)) == NULL) {
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
    if (score__st_grow((void **)&w->ent, &w->cap_ent, w->n_ent + 1, sizeof *w->ent) != 0 ||
        score__st_grow((void **)&w->data, &w->data_cap, w->data_len + nbytes, 1) != 0)
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    e = &w->ent[w->n_ent];
    memset(e, 0, sizeof *e);
    if ((e->name = score__st_strdup(name)) == NULL)
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

/* ---- the header writer -------------------------------------------------------------------
 *
 * The header JSON is written by the few functions below rather than through cJSON (which the
 * library links for other purposes). The reasons:
 *   - shapes and data offsets are 64-bit unsigned integers; cJSON keeps every number as a
 *     double, exact only up to 2^53, and prints it with "%1.15g"/"%1.17g", so a large offset
 *     could be written rounded or in exponent form, which the reader (rightly) refuses;
 *   - an allocation failure must be SCORE_E_NOMEM; cJSON's allocator hooks are process-global
 *     (see st-json.c), and building a tree of one node per value only to print it once costs
 *     an allocation per value where one growing buffer suffices;
 *   - the layout is fixed (one object of entries of three known members, string metadata,
 *     space padding to an 8-byte boundary), so the writer is short and its output is exactly
 *     what the reader in st-json.c accepts: keys and strings are escaped by sb_json_str(),
 *     which the round-trip test in tests/test-safetensors.c checks with escapes and UTF-8. */

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
    if (n > SIZE_MAX - b->len - 1 ||
        score__st_grow((void **)&b->p, &b->cap, b->len + n + 1, 1) != 0) {
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

/* ======================================================================================== */
/* reader                                                                                   */

/* The header is read by score__st_json_parse() (st-json.c: the reasons for a parser of this
 * module are at its top); this half checks what spans the whole header: unique names and the
 * tiling of the data section. */

void score__st_reader_free(score__st_reader *r)
{
    if (r == NULL)
        return;
    if (r->own)
        score__free((void *)r->buf);
    free(r->strings);
    free(r->meta_key);
    free(r->meta_val);
    free(r->t);
    free(r->by_name);
    score__free(r);
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

static int parse(const char *fn, score__st_reader *r)
{
    uint64_t hlen, data_len;
    const st_rtensor **order;
    size_t n, i;
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
    r->strings = malloc((size_t)hlen);
    if (r->strings == NULL)
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    if ((rc = score__st_json_parse(fn, r, r->buf + 8, (size_t)hlen, data_len)) != SCORE_OK)
        return rc;

    /* keys are unique: metadata keys, then tensor names */
    if (r->n_meta > 1) {
        const char **sorted = malloc(r->n_meta * sizeof *sorted);
        if (sorted == NULL)
            return score__error(SCORE_E_NOMEM, fn, "allocation failed");
        memcpy(sorted, r->meta_key, r->n_meta * sizeof *sorted);
        qsort(sorted, r->n_meta, sizeof *sorted, cmp_str_ptr);
        for (i = 1; i < r->n_meta; i++) {
            if (strcmp(sorted[i - 1], sorted[i]) == 0) {
                rc = score__error(SCORE_E_FORMAT, fn, "duplicate metadata key '%.60s'", sorted[i]);
                free(sorted);
                return rc;
            }
        }
        free(sorted);
    }
    n = r->n_t;
    if (n == 0) {
        if (data_len != 0)
            return score__error(SCORE_E_FORMAT, fn, "%llu data bytes but no tensors",
                                (unsigned long long)data_len);
        return SCORE_OK;
    }
    r->by_name = malloc(n * sizeof *r->by_name);
    if (r->by_name == NULL)
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    for (i = 0; i < n; i++) {
        r->t[i].pub.data = r->buf + 8 + hlen + r->t[i].begin;
        r->by_name[i] = &r->t[i];
    }
    qsort(r->by_name, n, sizeof *r->by_name, cmp_tensor_name);
    for (i = 1; i < n; i++)
        if (strcmp(r->by_name[i - 1]->pub.name, r->by_name[i]->pub.name) == 0)
            return score__error(SCORE_E_FORMAT, fn, "duplicate tensor name '%s'",
                                r->by_name[i]->pub.name);

    /* The tensors must tile the data section exactly. */
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

int score__st_load(const char *fn, const char *path, const void *buf, size_t len,
                   score__st_load_fn load, void *ctx)
{
    score__st_reader *r = NULL;
    int rc = path != NULL ? score__st_reader_open_file(fn, &r, path)
                          : score__st_reader_open(fn, &r, buf, len, 0);
    if (rc != SCORE_OK)
        return rc;
    rc = load(fn, r, ctx);
    score__st_reader_free(r);
    return rc;
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
