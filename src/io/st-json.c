/* The safetensors header parser.
 *
 * The JSON header is read by the small parser below, written for the safetensors header only,
 * rather than by a general JSON library. The reasons:
 *   - out of memory must be told apart from malformed input. cJSON returns NULL for both, and
 *     its allocator hooks (cJSON_InitHooks) are process-global, so installing them would change
 *     the allocator of every other cJSON user in the application. This parser allocates with
 *     malloc/realloc only (one block for the decoded strings, two growing arrays), so an
 *     allocation failure is always SCORE_E_NOMEM and everything else SCORE_E_FORMAT;
 *   - the container's own rules are checked where the bytes are read: the header begins with
 *     '{' (a byte order mark or anything else is refused); keys are unique at every level
 *     (top level, tensor entries, __metadata__); strings are valid UTF-8 and hold no NUL (a raw
 *     control character or "\u0000" is refused instead of cutting a name short); shapes and
 *     offsets are JSON integers written with digits only (no sign, fraction or exponent: "6.0"
 *     and "6e0" are refused) and within range;
 *   - the structure is fixed: the top level is an object of tensor entries and at most one
 *     "__metadata__" object of strings; a tensor entry is an object with exactly the members
 *     "dtype" (a string), "shape" (an array of integers) and "data_offsets" (two integers).
 *     No other value kind (true, null, nested objects) can occur, so the parser never recurses
 *     and its work is linear in the header length.
 * Decoded strings never need more bytes than their quoted form, so one block of header-length
 * bytes holds them all and the pointers into it stay valid for the reader's lifetime. */
#include <string.h>

#include "core/core-priv.h"
#include "st-json-priv.h"

typedef struct jp {
    const char *fn;
    const unsigned char *p, *begin, *end; /* cursor and the header bytes */
    char *out;                            /* next free byte of the string block */
} jp;

/* A syntax or rule violation at the cursor: SCORE_E_FORMAT naming the byte offset. */
static int jp_fail(jp *j, const char *what)
{
    return score__error(SCORE_E_FORMAT, j->fn, "the header is not valid: %s at byte %zu", what,
                        (size_t)(j->p - j->begin));
}

static void jp_ws(jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

/* Skips white space and consumes byte c; -1 if the next byte is something else. */
static int jp_eat(jp *j, unsigned char c)
{
    jp_ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return 0;
    }
    return -1;
}

static int hex4(const unsigned char *p, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return -1;
        v = v * 16 + d;
    }
    *out = v;
    return 0;
}

static void put_utf8(jp *j, uint32_t cp)
{
    if (cp < 0x80) {
        *j->out++ = (char)cp;
    } else if (cp < 0x800) {
        *j->out++ = (char)(0xc0 | (cp >> 6));
        *j->out++ = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *j->out++ = (char)(0xe0 | (cp >> 12));
        *j->out++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *j->out++ = (char)(0x80 | (cp & 0x3f));
    } else {
        *j->out++ = (char)(0xf0 | (cp >> 18));
        *j->out++ = (char)(0x80 | ((cp >> 12) & 0x3f));
        *j->out++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *j->out++ = (char)(0x80 | (cp & 0x3f));
    }
}

/* Length of the valid UTF-8 sequence at p (strict: no overlong form, no surrogate, at most
 * U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n;
    uint32_t cp, min;
    if (c < 0x80) return 1;
    if ((c & 0xe0) == 0xc0) n = 2, cp = c & 0x1f, min = 0x80;
    else if ((c & 0xf0) == 0xe0) n = 3, cp = c & 0x0f, min = 0x800;
    else if ((c & 0xf8) == 0xf0) n = 4, cp = c & 0x07, min = 0x10000;
    else return 0;
    if ((size_t)(end - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* A JSON string, decoded into the string block (*out points at it). */
static int jp_string(jp *j, const char **out)
{
    char *start;
    jp_ws(j);
    if (j->p >= j->end || *j->p != '"')
        return jp_fail(j, "a string was expected");
    j->p++;
    start = j->out;
    for (;;) {
        unsigned c;
        if (j->p >= j->end)
            return jp_fail(j, "unterminated string");
        c = *j->p;
        if (c == '"') {
            j->p++;
            break;
        }
        if (c < 0x20)
            return jp_fail(j, "raw control character in a string");
        if (c == '\\') {
            uint32_t cp, lo;
            if (j->end - j->p < 2)
                return jp_fail(j, "unterminated string");
            c = j->p[1];
            j->p += 2;
            switch (c) {
            case '"': *j->out++ = '"'; continue;
            case '\\': *j->out++ = '\\'; continue;
            case '/': *j->out++ = '/'; continue;
            case 'b': *j->out++ = '\b'; continue;
            case 'f': *j->out++ = '\f'; continue;
            case 'n': *j->out++ = '\n'; continue;
            case 'r': *j->out++ = '\r'; continue;
            case 't': *j->out++ = '\t'; continue;
            case 'u': break;
            default: j->p -= 2; return jp_fail(j, "invalid escape in a string");
            }
            if (j->end - j->p < 4 || hex4(j->p, &cp) != 0) {
                j->p -= 2;
                return jp_fail(j, "invalid \\u escape in a string");
            }
            if (cp == 0) {
                j->p -= 2;
                return jp_fail(j, "NUL character (\\u0000) in a string");
            }
            j->p += 4;
            if (cp >= 0xdc00 && cp <= 0xdfff)
                return jp_fail(j, "unpaired UTF-16 surrogate in a string");
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u' ||
                    hex4(j->p + 2, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
                    return jp_fail(j, "unpaired UTF-16 surrogate in a string");
                j->p += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            put_utf8(j, cp);
            continue;
        }
        {
            size_t n = utf8_len(j->p, j->end);
            if (n == 0)
                return jp_fail(j, "invalid UTF-8 in a string");
            memcpy(j->out, j->p, n);
            j->out += n;
            j->p += n;
        }
    }
    *j->out++ = '\0';
    *out = start;
    return SCORE_OK;
}

/* A non-negative JSON integer written with digits only, at most `max`. */
static int jp_uint(jp *j, uint64_t max, const char *what, const char *tensor, uint64_t *out)
{
    uint64_t v = 0;
    const unsigned char *s;
    jp_ws(j);
    s = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        unsigned d = (unsigned)(*j->p - '0');
        if (v > (max - d) / 10)
            return score__error(SCORE_E_FORMAT, j->fn,
                                "tensor '%s': %s value at byte %zu is larger than %llu", tensor,
                                what, (size_t)(s - j->begin), (unsigned long long)max);
        v = v * 10 + d;
        j->p++;
    }
    if (j->p == s || (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E')) ||
        (j->p - s > 1 && *s == '0'))
        return score__error(SCORE_E_FORMAT, j->fn,
                            "tensor '%s': %s value at byte %zu is not a non-negative integer "
                            "(digits only: no sign, fraction or exponent)",
                            tensor, what, (size_t)(s - j->begin));
    *out = v;
    return SCORE_OK;
}

/* A member's key and the ':' after it. */
static int jp_key(jp *j, const char **key)
{
    int rc = jp_string(j, key);
    if (rc != SCORE_OK)
        return rc;
    if (jp_eat(j, ':') != 0)
        return jp_fail(j, "':' expected");
    return SCORE_OK;
}

/* After a member's value: 1 when another member follows (',' consumed), 0 when the object
 * ends ('}' consumed), a (negative) error status otherwise. */
static int jp_next(jp *j)
{
    if (jp_eat(j, ',') == 0)
        return 1;
    if (jp_eat(j, '}') == 0)
        return 0;
    return jp_fail(j, "',' or '}' expected");
}

/* A tensor's "shape": an array of at most SCORE__ST_MAX_DIMS integers. */
static int jp_shape(jp *j, st_rtensor *t)
{
    const char *name = t->pub.name;
    int rc;
    if (jp_eat(j, '[') != 0)
        return score__error(SCORE_E_FORMAT, j->fn, "tensor '%s': shape is not an array", name);
    if (jp_eat(j, ']') == 0)
        return SCORE_OK;
    do {
        uint64_t d;
        if (t->pub.ndim >= SCORE__ST_MAX_DIMS)
            return score__error(SCORE_E_FORMAT, j->fn, "tensor '%s' has more than %d dimensions",
                                name, SCORE__ST_MAX_DIMS);
        if ((rc = jp_uint(j, SIZE_MAX, "shape", name, &d)) != SCORE_OK)
            return rc;
        t->pub.shape[t->pub.ndim++] = d;
    } while (jp_eat(j, ',') == 0);
    if (jp_eat(j, ']') != 0)
        return jp_fail(j, "',' or ']' expected in a shape");
    return SCORE_OK;
}

/* A tensor's "data_offsets": an array of exactly two integers. */
static int jp_offsets(jp *j, st_rtensor *t)
{
    const char *name = t->pub.name;
    int rc;
    if (jp_eat(j, '[') != 0)
        return score__error(SCORE_E_FORMAT, j->fn, "tensor '%s': data_offsets is not an array",
                            name);
    if ((rc = jp_uint(j, UINT64_MAX, "data_offsets", name, &t->begin)) != SCORE_OK)
        return rc;
    if (jp_eat(j, ',') != 0)
        return score__error(SCORE_E_FORMAT, j->fn,
                            "tensor '%s': data_offsets must hold two integers", name);
    if ((rc = jp_uint(j, UINT64_MAX, "data_offsets", name, &t->end)) != SCORE_OK)
        return rc;
    if (jp_eat(j, ']') != 0)
        return score__error(SCORE_E_FORMAT, j->fn,
                            "tensor '%s': data_offsets must hold two integers", name);
    return SCORE_OK;
}

/* One member of a tensor entry; seen[] counts dtype, shape and data_offsets. */
static int jp_tensor_member(jp *j, st_rtensor *t, const char *key, int seen[3])
{
    static const char *const keys[3] = {"dtype", "shape", "data_offsets"};
    const char *name = t->pub.name, *dt;
    int k = 0, rc;
    while (k < 3 && strcmp(key, keys[k]) != 0)
        k++;
    if (k == 3)
        return score__error(SCORE_E_FORMAT, j->fn, "tensor '%s': unknown key '%.40s'", name,
                            key);
    if (seen[k]++)
        return score__error(SCORE_E_FORMAT, j->fn, "tensor '%s': duplicate key '%s'", name,
                            keys[k]);
    if (k == 1)
        return jp_shape(j, t);
    if (k == 2)
        return jp_offsets(j, t);
    jp_ws(j);
    if (j->p >= j->end || *j->p != '"')
        return score__error(SCORE_E_FORMAT, j->fn, "tensor '%s': dtype is not a string", name);
    if ((rc = jp_string(j, &dt)) != SCORE_OK)
        return rc;
    if ((t->pub.dtype = score__st_dtype_from_name(dt)) == 0)
        return score__error(SCORE_E_FORMAT, j->fn, "tensor '%s': unsupported dtype '%.16s'",
                            name, dt);
    return SCORE_OK;
}

/* Element count and byte size of a parsed entry, checked against its offsets. */
static int tensor_size(jp *j, st_rtensor *t, uint64_t data_len)
{
    const char *name = t->pub.name;
    size_t esize = score__st_dtype_size(t->pub.dtype), count = 1, nbytes;
    for (size_t i = 0; i < t->pub.ndim; i++)
        if (score__mul_size(count, (size_t)t->pub.shape[i], &count) != 0)
            return score__error(SCORE_E_FORMAT, j->fn, "tensor '%s': bad or too large shape", name);
    if (score__mul_size(count, esize, &nbytes) != 0)
        return score__error(SCORE_E_FORMAT, j->fn, "tensor '%s' is too large", name);
    if (t->begin > t->end || t->end > data_len)
        return score__error(SCORE_E_FORMAT, j->fn,
                            "tensor '%s': data_offsets [%llu, %llu] outside the %llu-byte data",
                            name, (unsigned long long)t->begin, (unsigned long long)t->end,
                            (unsigned long long)data_len);
    if (t->end - t->begin != (uint64_t)nbytes)
        return score__error(SCORE_E_FORMAT, j->fn,
                            "tensor '%s': %zu bytes for its shape, %llu in data_offsets", name,
                            nbytes, (unsigned long long)(t->end - t->begin));
    t->pub.count = count;
    t->pub.nbytes = nbytes;
    return SCORE_OK;
}

/* One tensor entry (after its name): an object of exactly dtype, shape and data_offsets. */
static int jp_tensor(jp *j, st_rtensor *t, uint64_t data_len)
{
    int seen[3] = {0, 0, 0}, rc = 0;
    if (jp_eat(j, '{') != 0)
        return score__error(SCORE_E_FORMAT, j->fn, "tensor '%s' is not a JSON object",
                            t->pub.name);
    if (jp_eat(j, '}') != 0) {
        do {
            const char *key;
            if ((rc = jp_key(j, &key)) != SCORE_OK ||
                (rc = jp_tensor_member(j, t, key, seen)) != SCORE_OK)
                return rc;
        } while ((rc = jp_next(j)) == 1);
        if (rc != 0)
            return rc;
    }
    if (!seen[0] || !seen[1] || !seen[2])
        return score__error(SCORE_E_FORMAT, j->fn, "tensor '%s': missing %s", t->pub.name,
                            !seen[0] ? "dtype" : !seen[1] ? "shape" : "data_offsets");
    return tensor_size(j, t, data_len);
}

/* Appends one metadata entry (key and value point into the string block). */
static int add_meta(jp *j, score__st_reader *r, const char *key, const char *val)
{
    if (r->n_meta >= SCORE__ST_MAX_TENSORS)
        return score__error(SCORE_E_FORMAT, j->fn, "more than %d metadata entries",
                            SCORE__ST_MAX_TENSORS);
    if (r->n_meta == r->cap_meta) {
        size_t cap = r->cap_meta;
        if (score__st_grow((void **)&r->meta_key, &cap, r->n_meta + 1, sizeof *r->meta_key) != 0)
            return score__error(SCORE_E_NOMEM, j->fn, "allocation failed");
        cap = r->cap_meta;
        if (score__st_grow((void **)&r->meta_val, &cap, r->n_meta + 1, sizeof *r->meta_val) != 0)
            return score__error(SCORE_E_NOMEM, j->fn, "allocation failed");
        r->cap_meta = cap;
    }
    r->meta_key[r->n_meta] = key;
    r->meta_val[r->n_meta++] = val;
    return SCORE_OK;
}

/* The "__metadata__" object: string values only. */
static int jp_metadata(jp *j, score__st_reader *r)
{
    int rc;
    if (jp_eat(j, '{') != 0)
        return score__error(SCORE_E_FORMAT, j->fn, "__metadata__ is not a JSON object");
    if (jp_eat(j, '}') == 0)
        return SCORE_OK;
    do {
        const char *key, *val;
        if ((rc = jp_key(j, &key)) != SCORE_OK)
            return rc;
        jp_ws(j);
        if (j->p >= j->end || *j->p != '"')
            return score__error(SCORE_E_FORMAT, j->fn,
                                "metadata values must be strings ('%.40s' is not)", key);
        if ((rc = jp_string(j, &val)) != SCORE_OK || (rc = add_meta(j, r, key, val)) != SCORE_OK)
            return rc;
    } while ((rc = jp_next(j)) == 1);
    return rc;
}

/* A top-level member other than "__metadata__": a tensor entry named key. */
static int jp_entry(jp *j, score__st_reader *r, const char *key, uint64_t data_len)
{
    st_rtensor *t;
    int rc;
    if (key[0] == '\0' || strlen(key) > SCORE__ST_MAX_NAME)
        return score__error(SCORE_E_FORMAT, j->fn, "empty or overlong tensor name");
    if (r->n_t >= SCORE__ST_MAX_TENSORS)
        return score__error(SCORE_E_FORMAT, j->fn, "more than %d tensors", SCORE__ST_MAX_TENSORS);
    if (score__st_grow((void **)&r->t, &r->cap_t, r->n_t + 1, sizeof *r->t) != 0)
        return score__error(SCORE_E_NOMEM, j->fn, "allocation failed");
    t = &r->t[r->n_t];
    memset(t, 0, sizeof *t);
    t->pub.name = key;
    if ((rc = jp_tensor(j, t, data_len)) != SCORE_OK)
        return rc;
    r->n_t++;
    return SCORE_OK;
}

/* The whole header: the top-level object, then white space only. */
static int jp_header(jp *j, score__st_reader *r, uint64_t data_len)
{
    int rc = 0, seen_meta = 0;
    if (j->end - j->begin >= 3 && j->begin[0] == 0xef && j->begin[1] == 0xbb && j->begin[2] == 0xbf)
        return score__error(SCORE_E_FORMAT, j->fn,
                            "the header starts with a UTF-8 byte order mark (it must begin with '{')");
    if (*j->p != '{')
        return score__error(SCORE_E_FORMAT, j->fn, "the header does not begin with '{'");
    j->p++;
    if (jp_eat(j, '}') != 0) {
        do {
            const char *key;
            if ((rc = jp_key(j, &key)) != SCORE_OK)
                return rc;
            if (strcmp(key, "__metadata__") != 0)
                rc = jp_entry(j, r, key, data_len);
            else if (seen_meta++)
                rc = score__error(SCORE_E_FORMAT, j->fn, "more than one __metadata__ object");
            else
                rc = jp_metadata(j, r);
            if (rc != SCORE_OK)
                return rc;
        } while ((rc = jp_next(j)) == 1);
        if (rc != 0)
            return rc;
    }
    /* Only white space (the padding) may follow the object. */
    jp_ws(j);
    if (j->p != j->end)
        return jp_fail(j, "trailing bytes after the JSON object");
    return SCORE_OK;
}

int score__st_json_parse(const char *fn, score__st_reader *r, const unsigned char *hdr,
                         size_t hlen, uint64_t data_len)
{
    jp j;
    j.fn = fn;
    j.begin = j.p = hdr;
    j.end = hdr + hlen;
    j.out = r->strings;
    return jp_header(&j, r, data_len);
}
