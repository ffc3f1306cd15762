/* Image data of the score tool: NumPy .npy arrays, directories of PNG files and PNG grids of
 * samples (see images.h). PNG goes through libpng when the tool is built with it
 * (SCORE_CLI_PNG); without it the PNG functions refuse with a message. */
#define _POSIX_C_SOURCE 200809L
#include "images.h"

#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifdef SCORE_CLI_PNG
#include <png.h>
#include <setjmp.h>
#endif

CLI_PRINTF(3, 4)
static int fail(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    if (err != NULL && len > 0) {
        va_start(ap, fmt);
        vsnprintf(err, len, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void cli_text_free(char **text, size_t rows)
{
    for (size_t i = 0; text != NULL && i < rows; i++)
        free(text[i]);
    free(text);
}

void cli_images_free(cli_images *im)
{
    if (im == NULL)
        return;
    free(im->data);
    cli_text_free(im->text, im->rows);
    memset(im, 0, sizeof *im);
}

int cli_parse_image_shape(const char *s, size_t *c, size_t *h, size_t *w)
{
    size_t v[3], k = 0;
    const char *p = s;
    if (s == NULL)
        return -1;
    for (;;) {
        char *end;
        if (*p < '0' || *p > '9' || k == 3)
            return -1;
        errno = 0;
        unsigned long long x = strtoull(p, &end, 10);
        if (errno != 0 || x == 0 || x > ((size_t)1 << 24))
            return -1;
        v[k++] = (size_t)x;
        p = end;
        if (*p == '\0')
            break;
        if (*p != 'x' && *p != 'X')
            return -1;
        p++;
    }
    if (k < 2)
        return -1;
    *c = k == 3 ? v[0] : 1;
    *h = v[k - 2];
    *w = v[k - 1];
    if (*h > SIZE_MAX / *w || *c > ((size_t)1 << 24) / (*h * *w))
        return -1;
    return 0;
}

/* ---- .npy ------------------------------------------------------------------------------- */

static const unsigned char npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

/* The cursor of the header parser over [p, e). */
typedef struct hdr_cur {
    const char *p, *e;
} hdr_cur;

static void skip_space(hdr_cur *c)
{
    while (c->p < c->e && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

/* A quoted string ('...' or "...", no escapes) into buf (at most len - 1 bytes). 0 or -1. */
static int take_string(hdr_cur *c, char *buf, size_t len)
{
    if (c->p >= c->e || (*c->p != '\'' && *c->p != '"'))
        return -1;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->e && *c->p != q) {
        if (*c->p == '\\' || n + 1 >= len)
            return -1;
        buf[n++] = *c->p++;
    }
    if (c->p >= c->e)
        return -1;
    c->p++;
    buf[n] = '\0';
    return 0;
}

static int take_word(hdr_cur *c, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(c->e - c->p) < n || memcmp(c->p, w, n) != 0)
        return -1;
    c->p += n;
    return 0;
}

/* A shape tuple "(a, b, )" into a->shape / ndim. 0, or -1 with err. */
static int take_shape(hdr_cur *c, cli_npy *a, const char *name, char *err, size_t len)
{
    if (c->p >= c->e || *c->p != '(')
        return fail(err, len, "%s: the header's 'shape' is not a tuple", name);
    c->p++;
    a->ndim = 0;
    for (;;) {
        skip_space(c);
        if (c->p < c->e && *c->p == ')')
            break;
        if (c->p >= c->e || *c->p < '0' || *c->p > '9')
            return fail(err, len, "%s: the header's 'shape' holds something other than "
                        "non-negative integers", name);
        size_t v = 0;
        while (c->p < c->e && *c->p >= '0' && *c->p <= '9') {
            size_t d = (size_t)(*c->p - '0');
            if (v > (SIZE_MAX - d) / 10)
                return fail(err, len, "%s: a dimension of the header's 'shape' is too large",
                            name);
            v = v * 10 + d;
            c->p++;
        }
        if (c->p < c->e && *c->p == 'L')   /* written by Python 2 */
            c->p++;
        if (a->ndim == CLI_NPY_MAX_DIMS)
            return fail(err, len, "%s: more than %d dimensions", name, CLI_NPY_MAX_DIMS);
        a->shape[a->ndim++] = v;
        skip_space(c);
        if (c->p < c->e && *c->p == ',') {
            c->p++;
            continue;
        }
        if (c->p < c->e && *c->p == ')')
            break;
        return fail(err, len, "%s: the header's 'shape' is not a tuple of integers", name);
    }
    c->p++;
    return 0;
}

/* The dtype string: '<f4', '<f8', '|u1', '<i8', ... */
static int take_descr(const char *d, cli_npy *a, const char *name, char *err, size_t len)
{
    char order = d[0], kind = order ? d[1] : 0;
    char *end;
    if (order == '\0' || kind == '\0' || d[2] < '1' || d[2] > '9')
        return fail(err, len, "%s: the dtype '%s' is not supported (float32 '<f4', float64 "
                    "'<f8', uint8 '|u1')", name, d);
    unsigned long size = strtoul(d + 2, &end, 10);
    if (*end != '\0' || (kind != 'f' && kind != 'u' && kind != 'i') ||
        (kind == 'f' && size != 4 && size != 8) ||
        (kind != 'f' && size != 1 && size != 2 && size != 4 && size != 8))
        return fail(err, len, "%s: the dtype '%s' is not supported (float32 '<f4', float64 "
                    "'<f8', uint8 '|u1')", name, d);
    if (order == '>' && size > 1)
        return fail(err, len, "%s: the dtype '%s' is big-endian: convert the array with "
                    "astype('<%c%lu')", name, d, kind, size);
    if (order != '<' && order != '|' && !(order == '>' && size == 1))
        return fail(err, len, "%s: the dtype '%s' has no explicit byte order", name, d);
    a->kind = kind;
    a->itemsize = size;
    return 0;
}

int cli_npy_parse(const unsigned char *buf, size_t len, const char *name, cli_npy *out,
                  char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    if (len < 10 || memcmp(buf, npy_magic, sizeof npy_magic) != 0)
        return fail(err, err_len, "%s: not a NumPy .npy file (no \\x93NUMPY magic)", name);
    unsigned major = buf[6], minor = buf[7];
    size_t hlen, off;
    if (major == 1 && minor == 0) {
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8;
        off = 10;
    } else if (major == 2 && minor == 0) {
        if (len < 12)
            return fail(err, err_len, "%s: truncated .npy header", name);
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 |
               (size_t)buf[11] << 24;
        off = 12;
    } else {
        return fail(err, err_len, "%s: .npy format version %u.%u is not supported (1.0, 2.0)",
                    name, major, minor);
    }
    if (hlen > len - off)
        return fail(err, err_len, "%s: truncated .npy header (%zu bytes announced, %zu in the "
                    "file)", name, hlen, len - off);
    hdr_cur c = {(const char *)buf + off, (const char *)buf + off + hlen};
    int have_descr = 0, have_order = 0, have_shape = 0, fortran = 0;
    char key[32], descr[32];
    skip_space(&c);
    if (c.p >= c.e || *c.p != '{')
        return fail(err, err_len, "%s: the .npy header is not a dict", name);
    c.p++;
    for (;;) {
        skip_space(&c);
        if (c.p < c.e && *c.p == '}')
            break;
        if (take_string(&c, key, sizeof key) != 0)
            return fail(err, err_len, "%s: malformed .npy header (a key is not a short quoted "
                        "string)", name);
        skip_space(&c);
        if (c.p >= c.e || *c.p != ':')
            return fail(err, err_len, "%s: malformed .npy header (no ':' after '%s')", name,
                        key);
        c.p++;
        skip_space(&c);
        if (strcmp(key, "descr") == 0 && !have_descr) {
            if (take_string(&c, descr, sizeof descr) != 0)
                return fail(err, err_len, "%s: the dtype is not a simple type (structured "
                            "arrays are not supported)", name);
            if (take_descr(descr, out, name, err, err_len) != 0)
                return -1;
            have_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0 && !have_order) {
            if (take_word(&c, "True") == 0)
                fortran = 1;
            else if (take_word(&c, "False") != 0)
                return fail(err, err_len, "%s: 'fortran_order' is neither True nor False",
                            name);
            have_order = 1;
        } else if (strcmp(key, "shape") == 0 && !have_shape) {
            if (take_shape(&c, out, name, err, err_len) != 0)
                return -1;
            have_shape = 1;
        } else {
            return fail(err, err_len, "%s: unexpected or repeated key '%s' in the .npy header",
                        name, key);
        }
        skip_space(&c);
        if (c.p < c.e && *c.p == ',') {
            c.p++;
            continue;
        }
        if (c.p < c.e && *c.p == '}')
            break;
        return fail(err, err_len, "%s: malformed .npy header (expected ',' or '}')", name);
    }
    c.p++;
    skip_space(&c);
    if (c.p != c.e)
        return fail(err, err_len, "%s: malformed .npy header (text after the dict)", name);
    if (!have_descr || !have_order || !have_shape)
        return fail(err, err_len, "%s: the .npy header lacks '%s'", name,
                    !have_descr ? "descr" : !have_order ? "fortran_order" : "shape");
    if (fortran)
        return fail(err, err_len, "%s: the array is in Fortran order: save it in C order "
                    "(np.ascontiguousarray)", name);
    size_t count = 1;
    for (size_t k = 0; k < out->ndim; k++) {
        if (out->shape[k] != 0 && count > SIZE_MAX / out->shape[k])
            return fail(err, err_len, "%s: the shape's size overflows", name);
        count *= out->shape[k];
    }
    size_t have = len - off - hlen, most = SIZE_MAX / out->itemsize;
    if (count > most || count * out->itemsize != have)
        return fail(err, err_len, "%s: the shape needs %s%zu values of %zu bytes, the file "
                    "holds %zu bytes of data", name, count > most ? "more than " : "",
                    count > most ? most : count, out->itemsize, have);
    out->count = count;
    out->data = buf + off + hlen;
    return 0;
}

double cli_npy_value(const cli_npy *a, size_t i)
{
    const unsigned char *b = a->data + i * a->itemsize;
    uint64_t u = 0;
    for (size_t k = 0; k < a->itemsize; k++)
        u |= (uint64_t)b[k] << (8 * k);
    if (a->kind == 'f' && a->itemsize == 4) {
        uint32_t u32 = (uint32_t)u;
        float f;
        memcpy(&f, &u32, sizeof f);
        return f;
    }
    if (a->kind == 'f') {
        double d;
        memcpy(&d, &u, sizeof d);
        return d;
    }
    if (a->kind == 'u')
        return (double)u;
    /* signed: sign-extend from itemsize bytes */
    if (a->itemsize < 8 && (u >> (8 * a->itemsize - 1)) & 1)
        u |= ~(uint64_t)0 << (8 * a->itemsize);
    int64_t s;
    memcpy(&s, &u, sizeof s);
    return (double)s;
}

static int npy_load(const char *path, unsigned char **buf, cli_npy *a, char *err, size_t len)
{
    size_t n;
    if (cli_read_input(path, "", cli_input_limit(CLI_CSV_INPUT_LIMIT), buf, &n, err, len) != 0)
        return -1;
    if (cli_npy_parse(*buf, n, path, a, err, len) != 0) {
        free(*buf);
        *buf = NULL;
        return -1;
    }
    return 0;
}

int cli_npy_read_images(const char *path, cli_images *out, char *err, size_t err_len)
{
    unsigned char *buf = NULL;
    cli_npy a;
    memset(out, 0, sizeof *out);
    if (npy_load(path, &buf, &a, err, err_len) != 0)
        return -1;
    int rc = -1;
    if (a.ndim == 0 || a.shape[0] == 0 || a.count == 0) {
        fail(err, err_len, "%s: the array holds no rows (shape (N, ...) with N >= 1 and no "
             "zero dimension)", path);
        goto out;
    }
    if (a.kind == 'i' || (a.kind == 'u' && a.itemsize != 1)) {
        fail(err, err_len, "%s: integer data of dtype %c%zu are not read as images (float32, "
             "float64 or uint8)", path, a.kind, a.itemsize);
        goto out;
    }
    out->rows = a.shape[0];
    out->dim = a.count / a.shape[0];
    if (a.ndim == 3)
        out->c = 1, out->h = a.shape[1], out->w = a.shape[2];
    else if (a.ndim == 4)
        out->c = a.shape[1], out->h = a.shape[2], out->w = a.shape[3];
    out->pixels = a.kind == 'u';
    out->maxval = out->pixels ? 255.0 : 0.0;
    if ((out->data = malloc(a.count * sizeof *out->data)) == NULL) {
        fail(err, err_len, "%s: out of memory (%zu values)", path, a.count);
        goto out;
    }
    for (size_t i = 0; i < a.count; i++) {
        double v = cli_npy_value(&a, i);
        if (!isfinite(v) || fabs(v) > 3.4028234663852886e38) {
            fail(err, err_len, "%s: value %zu (row %zu) is %g: not a finite float", path,
                 i % out->dim + 1, i / out->dim + 1, v);
            goto out;
        }
        out->data[i] = (float)v;
    }
    rc = 0;
out:
    free(buf);
    if (rc != 0)
        cli_images_free(out);
    return rc;
}

int cli_npy_read_labels(const char *path, size_t rows, char ***text, char *err, size_t err_len)
{
    unsigned char *buf = NULL;
    cli_npy a;
    *text = NULL;
    if (npy_load(path, &buf, &a, err, err_len) != 0)
        return -1;
    int rc = -1;
    if (a.kind == 'f') {
        fail(err, err_len, "%s: labels must be integers, the dtype is float%zu", path,
             8 * a.itemsize);
    } else if (!(a.ndim == 1 || (a.ndim == 2 && a.shape[1] == 1)) || a.shape[0] != rows) {
        fail(err, err_len, "%s: labels must have shape (%zu,), one per data row; the shape "
             "has %zu dimension%s and %zu value%s", path, rows, a.ndim, a.ndim == 1 ? "" : "s",
             a.count, a.count == 1 ? "" : "s");
    } else if ((*text = calloc(rows ? rows : 1, sizeof **text)) == NULL) {
        fail(err, err_len, "out of memory");
    } else {
        rc = 0;
        for (size_t i = 0; i < rows && rc == 0; i++) {
            char v[32];
            const unsigned char *b = a.data + i * a.itemsize;
            uint64_t u = 0;
            for (size_t k = 0; k < a.itemsize; k++)
                u |= (uint64_t)b[k] << (8 * k);
            if (a.kind == 'u')
                snprintf(v, sizeof v, "%llu", (unsigned long long)u);
            else
                snprintf(v, sizeof v, "%lld", (long long)cli_npy_value(&a, i));
            if (a.kind == 'i' && a.itemsize == 8) {   /* exact, beyond 2^53 too */
                int64_t s;
                memcpy(&s, &u, sizeof s);
                snprintf(v, sizeof v, "%lld", (long long)s);
            }
            if (((*text)[i] = malloc(strlen(v) + 1)) == NULL)
                rc = fail(err, err_len, "out of memory");
            else
                memcpy((*text)[i], v, strlen(v) + 1);
        }
    }
    free(buf);
    if (rc != 0) {
        cli_text_free(*text, rows);
        *text = NULL;
    }
    return rc;
}

/* ---- PNG -------------------------------------------------------------------------------- */

#define NO_PNG "PNG support is not built into this score tool (build it with libpng: meson " \
               "option -Dpng=enabled)"

/* Values per image at most (decompression bombs are refused before any pixel is stored). */
#define MAX_IMAGE_VALUES ((size_t)1 << 24)

#ifdef SCORE_CLI_PNG

int cli_png_available(void) { return 1; }

/* libpng's errors longjmp back to the call with their message here. */
typedef struct png_ctx {
    const unsigned char *buf;
    size_t len, pos;
    char msg[200];
} png_ctx;

static void on_png_error(png_structp png, png_const_charp msg)
{
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;   /* warnings (an unknown chunk, a bad CRC of an ancillary chunk) are not fatal */
}

static void on_png_read(png_structp png, png_bytep out, size_t n)
{
    png_ctx *c = png_get_io_ptr(png);
    if (n > c->len - c->pos)
        png_error(png, "the file is truncated");
    memcpy(out, c->buf + c->pos, n);
    c->pos += n;
}

int cli_png_decode(const unsigned char *buf, size_t len, const char *name, float **pix,
                   size_t *c_out, size_t *h_out, size_t *w_out, int *bits_out, char *err,
                   size_t err_len)
{
    png_ctx ctx = {buf, len, 0, ""};
    *pix = NULL;
    if (len < 8 || png_sig_cmp(buf, 0, 8) != 0)
        return fail(err, err_len, "%s: not a PNG file", name);
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, on_png_error,
                                             on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (info == NULL) {
        png_destroy_read_struct(&png, NULL, NULL);
        return fail(err, err_len, "%s: out of memory", name);
    }
    unsigned char *volatile raw = NULL;
    png_bytep *volatile rowp = NULL;
    float *volatile values = NULL;
    int rc = -1;
    if (setjmp(png_jmpbuf(png))) {
        fail(err, err_len, "%s: %s", name, ctx.msg[0] ? ctx.msg : "a libpng error");
        goto out;
    }
    png_set_read_fn(png, &ctx, on_png_read);
    png_set_user_limits(png, 1u << 16, 1u << 16);
    png_set_chunk_malloc_max(png, (png_alloc_size_t)1 << 24);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int depth = png_get_bit_depth(png, info), type = png_get_color_type(png, info);
    size_t c;
    if (type & PNG_COLOR_MASK_ALPHA) {
        fail(err, err_len, "%s: the image has an alpha channel (grayscale or RGB images only)",
             name);
        goto out;
    }
    if (type == PNG_COLOR_TYPE_PALETTE) {
        if (png_get_valid(png, info, PNG_INFO_tRNS)) {
            fail(err, err_len, "%s: the palette image has transparency (grayscale or RGB "
                 "images only)", name);
            goto out;
        }
        png_set_palette_to_rgb(png);
        c = 3;
        depth = 8;
    } else if (type == PNG_COLOR_TYPE_GRAY) {
        if (depth < 8) {
            png_set_expand_gray_1_2_4_to_8(png);
            depth = 8;
        }
        c = 1;
    } else {
        c = 3;
    }
    (void)png_set_interlace_handling(png);
    png_read_update_info(png, info);
    size_t bytes = (size_t)depth / 8, rowbytes = png_get_rowbytes(png, info);
    if ((size_t)w * h > MAX_IMAGE_VALUES / c) {
        fail(err, err_len, "%s: %lux%lu pixels: more than %zu values", name, (unsigned long)w,
             (unsigned long)h, MAX_IMAGE_VALUES);
        goto out;
    }
    if (rowbytes != (size_t)w * c * bytes) {
        fail(err, err_len, "%s: unexpected row size after decoding", name);
        goto out;
    }
    raw = malloc((size_t)h * rowbytes);
    rowp = malloc((size_t)h * sizeof *rowp);
    values = malloc((size_t)h * w * c * sizeof *values);
    if (raw == NULL || rowp == NULL || values == NULL) {
        fail(err, err_len, "%s: out of memory", name);
        goto out;
    }
    for (size_t y = 0; y < h; y++)
        rowp[y] = raw + y * rowbytes;
    png_read_image(png, rowp);
    png_read_end(png, NULL);
    for (size_t y = 0; y < h; y++)
        for (size_t x = 0; x < w; x++)
            for (size_t k = 0; k < c; k++) {
                const unsigned char *p = raw + y * rowbytes + (x * c + k) * bytes;
                values[(k * h + y) * w + x] = bytes == 2 ? (float)(p[0] << 8 | p[1]) : p[0];
            }
    *pix = values;
    values = NULL;
    *c_out = c;
    *h_out = h;
    *w_out = w;
    *bits_out = depth;
    rc = 0;
out:
    png_destroy_read_struct(&png, &info, NULL);
    free(raw);
    free(rowp);
    free(values);
    return rc;
}

int cli_png_write_grid(const char *path, const float *x, size_t n, size_t c, size_t h, size_t w,
                       size_t rows, size_t cols, size_t zoom, double lo, double hi, int bits,
                       char *err, size_t err_len)
{
    if ((c != 1 && c != 3) || h == 0 || w == 0 || rows == 0 || cols == 0 || zoom == 0 ||
        (bits != 8 && bits != 16) || !(lo < hi) || !isfinite(lo) || !isfinite(hi))
        return fail(err, err_len, "cannot write '%s': the grid needs 1 or 3 channels, a "
                    "range LO < HI and positive sizes", path);
    size_t tw = w * zoom + 1, th = h * zoom + 1;
    if (tw > (1u << 16) / cols || th > (1u << 16) / rows)
        return fail(err, err_len, "cannot write '%s': a grid of %zu x %zu tiles of %zux%zu "
                    "pixels is wider than 65535 pixels", path, rows, cols, h * zoom, w * zoom);
    size_t gw = cols * tw + 1, gh = rows * th + 1, bytes = (size_t)bits / 8;
    size_t dim = c * h * w, shown = n < rows * cols ? n : rows * cols;
    for (size_t i = 0; i < shown * dim; i++)
        if (!isfinite(x[i]))
            return fail(err, err_len, "cannot write '%s': sample %zu holds a non-finite value",
                        path, i / dim + 1);
    double m = bits == 8 ? 255.0 : 65535.0;
    unsigned grey = bits == 8 ? 128u : 32768u;
    size_t rowbytes = gw * c * bytes;
    unsigned char *img = malloc(gh * rowbytes);
    png_bytep *rowp = malloc(gh * sizeof *rowp);
    if (img == NULL || rowp == NULL) {
        free(img);
        free(rowp);
        return fail(err, err_len, "cannot write '%s': out of memory", path);
    }
    for (size_t i = 0; i < gh * gw * c; i++) {
        if (bytes == 2)
            img[2 * i] = (unsigned char)(grey >> 8), img[2 * i + 1] = (unsigned char)grey;
        else
            img[i] = (unsigned char)grey;
    }
    for (size_t s = 0; s < shown; s++) {
        size_t r0 = (s / cols) * th + 1, c0 = (s % cols) * tw + 1;
        for (size_t y = 0; y < h * zoom; y++)
            for (size_t xx = 0; xx < w * zoom; xx++)
                for (size_t k = 0; k < c; k++) {
                    double v = (x[s * dim + (k * h + y / zoom) * w + xx / zoom] - lo) / (hi - lo);
                    double q = floor(v * m + 0.5);
                    unsigned u = q <= 0 ? 0u : q >= m ? (unsigned)m : (unsigned)q;
                    unsigned char *p = img + (r0 + y) * rowbytes + ((c0 + xx) * c + k) * bytes;
                    if (bytes == 2)
                        p[0] = (unsigned char)(u >> 8), p[1] = (unsigned char)u;
                    else
                        p[0] = (unsigned char)u;
                }
    }
    for (size_t y = 0; y < gh; y++)
        rowp[y] = img + y * rowbytes;
    FILE *volatile f = cli_output_open(path, err, err_len);
    if (f == NULL) {
        free(img);
        free(rowp);
        return -1;
    }
    png_ctx ctx = {NULL, 0, 0, ""};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, on_png_error,
                                              on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    int rc = -1;
    if (info == NULL) {
        fail(err, err_len, "cannot write '%s': out of memory", path);
    } else if (setjmp(png_jmpbuf(png))) {
        fail(err, err_len, "cannot write '%s': %s", path, ctx.msg);
    } else {
        png_init_io(png, f);
        png_set_IHDR(png, info, (png_uint_32)gw, (png_uint_32)gh, bits,
                     c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                     PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
        png_write_info(png, info);
        png_write_image(png, rowp);
        png_write_end(png, NULL);
        rc = 0;
    }
    png_destroy_write_struct(&png, &info);
    if (fclose(f) != 0 && rc == 0)
        rc = fail(err, err_len, "cannot write '%s': %s", path, strerror(errno));
    free(img);
    free(rowp);
    return rc;
}

#else /* no libpng */

int cli_png_available(void) { return 0; }


int cli_png_decode(const unsigned char *buf, size_t len, const char *name, float **pix,
                   size_t *c, size_t *h, size_t *w, int *bits, char *err, size_t err_len)
{
    (void)buf, (void)len, (void)c, (void)h, (void)w, (void)bits;
    *pix = NULL;
    return fail(err, err_len, "%s: %s", name, NO_PNG);
}

int cli_png_write_grid(const char *path, const float *x, size_t n, size_t c, size_t h, size_t w,
                       size_t rows, size_t cols, size_t zoom, double lo, double hi, int bits,
                       char *err, size_t err_len)
{
    (void)x, (void)n, (void)c, (void)h, (void)w, (void)rows, (void)cols, (void)zoom, (void)lo;
    (void)hi, (void)bits;
    return fail(err, err_len, "cannot write '%s': %s", path, NO_PNG);
}

#endif

/* ---- a directory of PNG files ----------------------------------------------------------- */

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int ends_png(const char *s)
{
    size_t n = strlen(s);
    return n > 4 && s[n - 4] == '.' && (s[n - 3] | 0x20) == 'p' && (s[n - 2] | 0x20) == 'n' &&
           (s[n - 1] | 0x20) == 'g';
}

/* A malloc'd "a/b". */
static char *join(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    int slash = na > 0 && a[na - 1] == '/';
    char *s = malloc(na + nb + 2);
    if (s != NULL)
        snprintf(s, na + nb + 2, "%s%s%s", a, slash ? "" : "/", b);
    return s;
}

/* The sorted names of the entries of dir that are PNG files (want_dirs 0) or directories
 * (want_dirs 1), names starting with '.' skipped. *other counts directories when PNG files are
 * wanted. 0 or -1 with err. */
static int list_dir(const char *dir, int want_dirs, char ***names, size_t *n, size_t *other,
                    char *err, size_t err_len)
{
    DIR *d = opendir(dir);
    size_t cap = 0;
    *names = NULL;
    *n = 0;
    *other = 0;
    if (d == NULL)
        return fail(err, err_len, "cannot read the directory '%s': %s", dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        struct stat st;
        if (e->d_name[0] == '.')
            continue;
        char *full = join(dir, e->d_name);
        if (full == NULL || stat(full, &st) != 0) {
            rc = fail(err, err_len, "cannot read '%s': %s", full ? full : e->d_name,
                      full ? strerror(errno) : "out of memory");
            free(full);
            break;
        }
        free(full);
        int is_dir = S_ISDIR(st.st_mode);
        if (!want_dirs && is_dir)
            (*other)++;
        if (want_dirs ? !is_dir : !(S_ISREG(st.st_mode) && ends_png(e->d_name)))
            continue;
        if (*n == cap) {
            size_t nc = cap ? 2 * cap : 64;
            char **g = realloc(*names, nc * sizeof *g);
            if (g == NULL) {
                rc = fail(err, err_len, "out of memory");
                break;
            }
            *names = g;
            cap = nc;
        }
        if (((*names)[*n] = malloc(strlen(e->d_name) + 1)) == NULL) {
            rc = fail(err, err_len, "out of memory");
            break;
        }
        memcpy((*names)[*n], e->d_name, strlen(e->d_name) + 1);
        (*n)++;
    }
    closedir(d);
    if (rc != 0) {
        cli_text_free(*names, *n);
        *names = NULL;
        *n = 0;
        return -1;
    }
    if (*n > 1)
        qsort(*names, *n, sizeof **names, cmp_name);
    return 0;
}

/* Appends one decoded image (the first sets the shape) to out; label (or NULL) is copied. */
static int add_image(cli_images *out, size_t *cap, const char *path, const char *label,
                     char *err, size_t err_len)
{
    unsigned char *buf;
    size_t len, c, h, w;
    float *pix;
    int bits;
    if (cli_read_input(path, "", cli_input_limit(CLI_CSV_INPUT_LIMIT), &buf, &len, err,
                       err_len) != 0)
        return -1;
    int rc = cli_png_decode(buf, len, path, &pix, &c, &h, &w, &bits, err, err_len);
    free(buf);
    if (rc != 0)
        return -1;
    if (out->rows == 0) {
        out->c = c, out->h = h, out->w = w, out->dim = c * h * w;
        out->pixels = 1;
        out->maxval = bits == 16 ? 65535.0 : 255.0;
    } else if (c != out->c || h != out->h || w != out->w ||
               (bits == 16) != (out->maxval > 255.0)) {
        free(pix);
        return fail(err, err_len, "%s: %zux%zux%zu pixels of %d bits, but the first image has "
                    "%zux%zux%zu of %d bits (every image must have the same size, channels and "
                    "bit depth)", path, c, h, w, bits, out->c, out->h, out->w,
                    out->maxval > 255.0 ? 16 : 8);
    }
    if (out->rows == *cap) {
        size_t nc = *cap ? 2 * *cap : 64;
        float *g = nc <= SIZE_MAX / sizeof(float) / out->dim
                       ? realloc(out->data, nc * out->dim * sizeof *g) : NULL;
        char **t = label != NULL ? realloc(out->text, nc * sizeof *t) : out->text;
        if (g != NULL)
            out->data = g;
        if (t != NULL)
            out->text = t;
        if (g == NULL || (label != NULL && t == NULL)) {
            free(pix);
            return fail(err, err_len, "out of memory (%zu images)", nc);
        }
        *cap = nc;
    }
    memcpy(out->data + out->rows * out->dim, pix, out->dim * sizeof *pix);
    free(pix);
    if (label != NULL) {
        if ((out->text[out->rows] = malloc(strlen(label) + 1)) == NULL)
            return fail(err, err_len, "out of memory");
        memcpy(out->text[out->rows], label, strlen(label) + 1);
    }
    out->rows++;
    return 0;
}

/* The PNG files of one directory, in name order. */
static int read_flat(const char *dir, const char *label, cli_images *out, size_t *cap,
                     char *err, size_t err_len)
{
    char **names;
    size_t n, subdirs;
    if (list_dir(dir, 0, &names, &n, &subdirs, err, err_len) != 0)
        return -1;
    int rc = 0;
    if (label == NULL && subdirs > 0)
        rc = fail(err, err_len, "%s holds %zu sub-director%s: give --class-dirs to read "
                  "DIR/<class>/*.png with the directory names as class labels", dir, subdirs,
                  subdirs == 1 ? "y" : "ies");
    else if (subdirs > 0)
        rc = fail(err, err_len, "%s holds sub-directories: --class-dirs reads one level, "
                  "DIR/<class>/*.png", dir);
    else if (n == 0)
        rc = fail(err, err_len, "%s holds no PNG files (*.png)", dir);
    for (size_t i = 0; i < n && rc == 0; i++) {
        char *path = join(dir, names[i]);
        rc = path != NULL ? add_image(out, cap, path, label, err, err_len)
                          : fail(err, err_len, "out of memory");
        free(path);
    }
    cli_text_free(names, n);
    return rc;
}

int cli_png_read_dir(const char *dir, int class_dirs, cli_images *out, char *err,
                     size_t err_len)
{
    size_t cap = 0;
    int rc;
    memset(out, 0, sizeof *out);
    if (!cli_png_available())
        return fail(err, err_len, "%s: %s", dir, NO_PNG);
    if (!class_dirs) {
        rc = read_flat(dir, NULL, out, &cap, err, err_len);
    } else {
        char **names;
        size_t n, unused;
        if (list_dir(dir, 1, &names, &n, &unused, err, err_len) != 0)
            return -1;
        rc = n == 0 ? fail(err, err_len, "%s holds no sub-directories (--class-dirs reads "
                           "DIR/<class>/*.png)", dir) : 0;
        for (size_t i = 0; i < n && rc == 0; i++) {
            char *sub = join(dir, names[i]);
            rc = sub != NULL ? read_flat(sub, names[i], out, &cap, err, err_len)
                             : fail(err, err_len, "out of memory");
            free(sub);
        }
        cli_text_free(names, n);
    }
    if (rc != 0)
        cli_images_free(out);
    return rc;
}
