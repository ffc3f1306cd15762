/* Check suite of the tool's image data (images.c): the .npy reader for every dtype and its
 * refusals of hostile headers, class labels from .npy, the image-shape option, and PNG: a grid
 * written and read back pixel for pixel, 16-bit grids, a directory of PNG files with class
 * directories, and truncated or mismatched files. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "images.h"

static char tmpdir[64];

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/score-img-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

static void path_of(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", tmpdir, name);
}

/* An .npy file in memory: version major.0, the dict text as given, padded with spaces to a
 * multiple of 64 bytes and ended by a newline, then nbytes of data. Returns its length. */
static size_t make_npy(unsigned char *out, int major, const char *dict, const void *data,
                       size_t nbytes)
{
    size_t pre = major == 1 ? 10 : 12, n = strlen(dict);
    size_t hlen = ((pre + n + 1 + 63) / 64) * 64 - pre;
    memcpy(out, "\x93NUMPY", 6);
    out[6] = (unsigned char)major;
    out[7] = 0;
    out[8] = (unsigned char)(hlen & 0xff);
    out[9] = (unsigned char)(hlen >> 8);
    if (major == 2)
        out[10] = 0, out[11] = 0;
    memcpy(out + pre, dict, n);
    memset(out + pre + n, ' ', hlen - n - 1);
    out[pre + hlen - 1] = '\n';
    memcpy(out + pre + hlen, data, nbytes);
    return pre + hlen + nbytes;
}

static void write_file(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(buf, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

/* float32, float64 and uint8 arrays, versions 1.0 and 2.0: values bit for bit, rows, shape. */
START_TEST(npy_dtypes)
{
    static unsigned char buf[4096];
    char err[256], path[128];
    cli_images im;
    const float f4[6] = {0.5f, -1.25f, 3.0f, 1e-3f, -7.0f, 65504.0f};
    const double f8[6] = {0.1, -2.5, 1e30, 4.0, -0.0, 123456.789};
    const unsigned char u1[8] = {0, 1, 127, 128, 200, 254, 255, 17};
    path_of(path, sizeof path, "a.npy");

    size_t n = make_npy(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
                        f4, sizeof f4);
    write_file(path, buf, n);
    ck_assert_int_eq(cli_npy_read_images(path, &im, err, sizeof err), 0);
    ck_assert_uint_eq(im.rows, 2);
    ck_assert_uint_eq(im.dim, 3);
    ck_assert_uint_eq(im.c, 0);   /* 2-D: no image shape */
    ck_assert_int_eq(im.pixels, 0);
    ck_assert_mem_eq(im.data, f4, sizeof f4);
    cli_images_free(&im);

    n = make_npy(buf, 2, "{\"descr\": \"<f8\", \"fortran_order\": False, \"shape\": (3, 2)}",
                 f8, sizeof f8);
    write_file(path, buf, n);
    ck_assert_int_eq(cli_npy_read_images(path, &im, err, sizeof err), 0);
    ck_assert_uint_eq(im.rows, 3);
    ck_assert_uint_eq(im.dim, 2);
    for (size_t i = 0; i < 6; i++)
        ck_assert_float_eq(im.data[i], (float)f8[i]);
    cli_images_free(&im);

    /* uint8 (N, C, H, W) = (2, 1, 2, 2): pixels, shape 1x2x2, max 255 */
    n = make_npy(buf, 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 1, 2, 2), }",
                 u1, sizeof u1);
    write_file(path, buf, n);
    ck_assert_int_eq(cli_npy_read_images(path, &im, err, sizeof err), 0);
    ck_assert_uint_eq(im.rows, 2);
    ck_assert_uint_eq(im.dim, 4);
    ck_assert_uint_eq(im.c, 1);
    ck_assert_uint_eq(im.h, 2);
    ck_assert_uint_eq(im.w, 2);
    ck_assert_int_eq(im.pixels, 1);
    ck_assert_double_eq(im.maxval, 255.0);
    for (size_t i = 0; i < 8; i++)
        ck_assert_float_eq(im.data[i], (float)u1[i]);
    cli_images_free(&im);

    /* (N, H, W): one channel */
    n = make_npy(buf, 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (1, 2, 4), }",
                 u1, sizeof u1);
    write_file(path, buf, n);
    ck_assert_int_eq(cli_npy_read_images(path, &im, err, sizeof err), 0);
    ck_assert_uint_eq(im.c * 100 + im.h * 10 + im.w, 124);
    cli_images_free(&im);
}
END_TEST

/* Labels: every integer dtype, signed values, the row count checked. */
START_TEST(npy_labels)
{
    static unsigned char buf[1024];
    char err[256], path[128], **text;
    const long long i8[3] = {-3, 9007199254740993LL, 7};
    const short i2[3] = {-1, 300, 2};
    const unsigned char u1[3] = {9, 0, 255};
    path_of(path, sizeof path, "l.npy");
    size_t n = make_npy(buf, 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }",
                        i8, sizeof i8);
    write_file(path, buf, n);
    ck_assert_int_eq(cli_npy_read_labels(path, 3, &text, err, sizeof err), 0);
    ck_assert_str_eq(text[0], "-3");
    ck_assert_str_eq(text[1], "9007199254740993");   /* exact beyond 2^53 */
    ck_assert_str_eq(text[2], "7");
    cli_text_free(text, 3);
    n = make_npy(buf, 1, "{'descr': '<i2', 'fortran_order': False, 'shape': (3, 1), }", i2,
                 sizeof i2);
    write_file(path, buf, n);
    ck_assert_int_eq(cli_npy_read_labels(path, 3, &text, err, sizeof err), 0);
    ck_assert_str_eq(text[0], "-1");
    ck_assert_str_eq(text[1], "300");
    cli_text_free(text, 3);
    n = make_npy(buf, 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }", u1,
                 sizeof u1);
    write_file(path, buf, n);
    ck_assert_int_eq(cli_npy_read_labels(path, 3, &text, err, sizeof err), 0);
    ck_assert_str_eq(text[2], "255");
    cli_text_free(text, 3);
    ck_assert_int_eq(cli_npy_read_labels(path, 4, &text, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "shape (4,)"));
    ck_assert_ptr_null(text);
}
END_TEST

/* Hostile headers: each refused with its reason, never read past the buffer. */
START_TEST(npy_refusals)
{
    static unsigned char buf[1024];
    const unsigned char data[64] = {0};
    char err[256];
    cli_npy a;
    static const struct { int major; const char *dict; size_t nbytes; const char *why; } cases[] = {
        {1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8, "big-endian"},
        {1, "{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }", 4, "not supported"},
        {1, "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", 16, "not supported"},
        {1, "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", 16, "not supported"},
        {1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", 8, "structured"},
        {1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 16, "Fortran"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 8, "needs 3 values"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999, 99999999999), }", 8, "overflows"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (999999999999999999999999,), }", 8, "too large"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904,), }", 8, "more than"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", 4, "dimensions"},
        {1, "{'descr': '<f4', 'fortran_order': False, }", 8, "lacks 'shape'"},
        {1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8, "repeated"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", 8, "unexpected"},
        {1, "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,), }", 8, "neither"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", 8, "non-negative"},
        {1, "['descr', '<f4']", 8, "not a dict"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,) } extra", 8, "after the dict"},
        {3, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8, "version 3.0"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        size_t n = make_npy(buf, cases[k].major == 3 ? 2 : cases[k].major, cases[k].dict, data,
                            cases[k].nbytes);
        if (cases[k].major == 3)
            buf[6] = 3;
        err[0] = '\0';
        ck_assert_msg(cli_npy_parse(buf, n, "x.npy", &a, err, sizeof err) == -1, "case %zu", k);
        ck_assert_msg(strstr(err, cases[k].why) != NULL, "case %zu: '%s' lacks '%s'", k, err,
                      cases[k].why);
    }
    /* a header longer than the file, for versions 1 and 2; a short or foreign file */
    size_t n = make_npy(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
                        data, 8);
    for (size_t cut = 0; cut < n - 8; cut++)
        ck_assert_int_eq(cli_npy_parse(buf, cut, "x.npy", &a, err, sizeof err), -1);
    buf[11] = 0x7f;   /* version 2: a 2 GiB header announced */
    buf[6] = 2;
    ck_assert_int_eq(cli_npy_parse(buf, n, "x.npy", &a, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "truncated"));
    ck_assert_int_eq(cli_npy_parse((const unsigned char *)"PK\3\4", 4, "x.npy", &a, err,
                                   sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "not a NumPy"));
}
END_TEST

/* Non-finite and out-of-range values, integer data and empty arrays refused as images. */
START_TEST(npy_image_refusals)
{
    static unsigned char buf[1024];
    char err[256], path[128];
    cli_images im;
    const float bad[2] = {1.0f, NAN};
    const double big[1] = {1e300};
    const int i4[2] = {1, 2};
    path_of(path, sizeof path, "b.npy");
    size_t n = make_npy(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }",
                        bad, sizeof bad);
    write_file(path, buf, n);
    ck_assert_int_eq(cli_npy_read_images(path, &im, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "value 2 (row 1)"));
    n = make_npy(buf, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", big,
                 sizeof big);
    write_file(path, buf, n);
    ck_assert_int_eq(cli_npy_read_images(path, &im, err, sizeof err), -1);
    n = make_npy(buf, 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", i4,
                 sizeof i4);
    write_file(path, buf, n);
    ck_assert_int_eq(cli_npy_read_images(path, &im, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "integer data"));
    n = make_npy(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }", i4, 0);
    write_file(path, buf, n);
    ck_assert_int_eq(cli_npy_read_images(path, &im, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "no rows"));
}
END_TEST

START_TEST(image_shape)
{
    size_t c, h, w;
    ck_assert_int_eq(cli_parse_image_shape("3x32x16", &c, &h, &w), 0);
    ck_assert_uint_eq(c * 10000 + h * 100 + w, 33216);
    ck_assert_int_eq(cli_parse_image_shape("8x8", &c, &h, &w), 0);
    ck_assert_uint_eq(c * 10000 + h * 100 + w, 10808);
    const char *bad[] = {"", "8", "0x8", "8x", "x8", "1x2x3x4", "8x8 ", "-1x8", "99999999x99999999",
                         "4096x4096x4096"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
        ck_assert_msg(cli_parse_image_shape(bad[k], &c, &h, &w) == -1, "'%s'", bad[k]);
}
END_TEST

/* Reads a whole file and decodes it as PNG. */
static int decode_file(const char *path, float **pix, size_t *c, size_t *h, size_t *w,
                       int *bits, char *err)
{
    unsigned char *buf;
    size_t len;
    if (cli_read_input(path, "", (size_t)1 << 30, &buf, &len, err, 256) != 0)
        return -1;
    int rc = cli_png_decode(buf, len, path, pix, c, h, w, bits, err, 256);
    free(buf);
    return rc;
}

/* A grid written and read back: borders grey, tiles the quantized values (clipped), empty
 * tiles grey, the zoom; RGB channel order; 16-bit. */
START_TEST(png_grid_round_trip)
{
    char err[256], path[128];
    float *pix;
    size_t c, h, w;
    int bits;
    if (!cli_png_available()) {
        ck_assert_int_eq(cli_png_write_grid("x.png", NULL, 0, 1, 1, 1, 1, 1, 1, 0, 1, 8, err,
                                            sizeof err), -1);
        ck_assert_ptr_nonnull(strstr(err, "libpng"));
        return;
    }
    path_of(path, sizeof path, "grid.png");
    /* 3 grayscale images of 2x3 on a 2 x 2 grid, zoom 2, range [-1, 1] */
    float x[18];
    for (size_t i = 0; i < 18; i++)
        x[i] = -1.5f + (float)i * 0.17f;
    ck_assert_int_eq(cli_png_write_grid(path, x, 3, 1, 2, 3, 2, 2, 2, -1.0, 1.0, 8, err,
                                        sizeof err), 0);
    ck_assert_int_eq(decode_file(path, &pix, &c, &h, &w, &bits, err), 0);
    ck_assert_uint_eq(c, 1);
    ck_assert_uint_eq(bits, 8);
    ck_assert_uint_eq(w, 2 * (3 * 2 + 1) + 1);
    ck_assert_uint_eq(h, 2 * (2 * 2 + 1) + 1);
    for (size_t y = 0; y < h; y++)
        for (size_t xx = 0; xx < w; xx++) {
            size_t ty = y / 5, tx = xx / 7, iy = y % 5, ix = xx % 7, s = ty * 2 + tx;
            float want = 128;
            if (iy != 0 && ix != 0 && s < 3) {
                double v = x[s * 6 + ((iy - 1) / 2) * 3 + (ix - 1) / 2];
                double q = floor((v + 1.0) / 2.0 * 255.0 + 0.5);
                want = (float)(q < 0 ? 0 : q > 255 ? 255 : q);
            }
            ck_assert_msg(pix[y * w + xx] == want, "pixel (%zu, %zu): %g, want %g", y, xx,
                          (double)pix[y * w + xx], (double)want);
        }
    free(pix);

    /* RGB, 16 bits, one image of 1x2: channel-first rows come back channel-first */
    const float rgb[6] = {0, 65535, 1000, 2000, 40000, 12345};
    ck_assert_int_eq(cli_png_write_grid(path, rgb, 1, 3, 1, 2, 1, 1, 1, 0.0, 65535.0, 16, err,
                                        sizeof err), 0);
    ck_assert_int_eq(decode_file(path, &pix, &c, &h, &w, &bits, err), 0);
    ck_assert_uint_eq(c, 3);
    ck_assert_uint_eq(bits, 16);
    ck_assert_uint_eq(w, 4);
    ck_assert_uint_eq(h, 3);
    for (size_t k = 0; k < 3; k++)
        for (size_t xx = 0; xx < 2; xx++)
            ck_assert_float_eq(pix[(k * 3 + 1) * 4 + 1 + xx], rgb[k * 2 + xx]);
    ck_assert_float_eq(pix[0], 32768.0f);
    free(pix);

    /* refusals: a non-finite sample, two channels, an empty range, a grid too wide */
    const float nanx[2] = {0, NAN};
    ck_assert_int_eq(cli_png_write_grid(path, nanx, 1, 1, 1, 2, 1, 1, 1, 0, 1, 8, err,
                                        sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "non-finite"));
    ck_assert_int_eq(cli_png_write_grid(path, rgb, 1, 2, 1, 3, 1, 1, 1, 0, 1, 8, err,
                                        sizeof err), -1);
    ck_assert_int_eq(cli_png_write_grid(path, rgb, 1, 1, 1, 6, 1, 1, 1, 1, 1, 8, err,
                                        sizeof err), -1);
    ck_assert_int_eq(cli_png_write_grid(path, rgb, 1, 1, 1, 6, 1, 20000, 1, 0, 1, 8, err,
                                        sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "65535"));
}
END_TEST

/* A directory of PNG files, flat and with class directories: rows in name order, the labels,
 * and the refusals (different sizes, truncated files, sub-directories, no files). */
START_TEST(png_directory)
{
    char err[512], path[256], dir[160];
    cli_images im;
    if (!cli_png_available()) {
        ck_assert_int_eq(cli_png_read_dir(tmpdir, 0, &im, err, sizeof err), -1);
        ck_assert_ptr_nonnull(strstr(err, "libpng"));
        return;
    }
    /* images 1x2x2 with pixel values 10*k .. 10*k + 3 (k the file's rank), written as 1-tile
     * grids with range [-1, 254] (the border around them is not part of the image, so the
     * files are 4x4: the directory reader then sees 4x4 images) */
    const char *cls[2] = {"b", "a"};
    for (int d = 0; d < 2; d++) {
        snprintf(dir, sizeof dir, "%s/%s", tmpdir, cls[d]);
        ck_assert_int_eq(mkdir(dir, 0700), 0);
        for (int k = 0; k < 2; k++) {
            float x[4];
            for (int i = 0; i < 4; i++)
                x[i] = (float)(40 * d + 10 * k + i);
            snprintf(path, sizeof path, "%s/img%d.png", dir, 1 - k);   /* names reversed */
            ck_assert_int_eq(cli_png_write_grid(path, x, 1, 1, 2, 2, 1, 1, 1, 0.0, 255.0, 8,
                                                err, sizeof err), 0);
        }
    }
    ck_assert_int_eq(cli_png_read_dir(tmpdir, 0, &im, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "--class-dirs"));
    ck_assert_int_eq(cli_png_read_dir(tmpdir, 1, &im, err, sizeof err), 0);
    ck_assert_uint_eq(im.rows, 4);
    ck_assert_uint_eq(im.dim, 16);
    ck_assert_uint_eq(im.c * 100 + im.h * 10 + im.w, 144);
    ck_assert_int_eq(im.pixels, 1);
    ck_assert_double_eq(im.maxval, 255.0);
    /* directory a (d = 1) first; in it img0 (k = 1) then img1 (k = 0) */
    static const float first_inner[4] = {50, 40, 10, 0};
    static const char *labels[4] = {"a", "a", "b", "b"};
    for (size_t r = 0; r < 4; r++) {
        ck_assert_str_eq(im.text[r], labels[r]);
        ck_assert_float_eq(im.data[r * 16 + 0], 128.0f);           /* the border */
        ck_assert_float_eq(im.data[r * 16 + 5], first_inner[r]);   /* pixel (1, 1) */
        ck_assert_float_eq(im.data[r * 16 + 10], first_inner[r] + 3);
    }
    cli_images_free(&im);

    /* one directory alone: no labels */
    snprintf(dir, sizeof dir, "%s/a", tmpdir);
    ck_assert_msg(cli_png_read_dir(dir, 0, &im, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(im.rows, 2);
    ck_assert_ptr_null(im.text);
    cli_images_free(&im);

    /* a truncated copy of a file: every cut refused with the file's name */
    unsigned char *buf;
    size_t len;
    snprintf(path, sizeof path, "%s/a/img0.png", tmpdir);
    ck_assert_int_eq(cli_read_input(path, "", (size_t)1 << 20, &buf, &len, err, sizeof err), 0);
    for (size_t cut = 0; cut < len; cut += 7) {
        float *pix = NULL;
        size_t c, h, w;
        int bits;
        ck_assert_int_eq(cli_png_decode(buf, cut, "t.png", &pix, &c, &h, &w, &bits, err,
                                        sizeof err), -1);
        ck_assert_ptr_null(pix);
        ck_assert_ptr_nonnull(strstr(err, "t.png"));
    }
    snprintf(path, sizeof path, "%s/a/img2.png", tmpdir);
    write_file(path, buf, len - 20);
    ck_assert_int_eq(cli_png_read_dir(dir, 0, &im, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "img2.png"));
    free(buf);

    /* an image of another size */
    const float one[1] = {7};
    ck_assert_int_eq(cli_png_write_grid(path, one, 1, 1, 1, 1, 1, 1, 1, 0.0, 255.0, 8, err,
                                        sizeof err), 0);
    ck_assert_int_eq(cli_png_read_dir(dir, 0, &im, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "same size"));

    /* no PNG files; not a directory */
    snprintf(dir, sizeof dir, "%s/empty", tmpdir);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    ck_assert_int_eq(cli_png_read_dir(dir, 0, &im, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "no PNG files"));
    ck_assert_int_eq(cli_png_read_dir(path, 0, &im, err, sizeof err), -1);
}
END_TEST

static Suite *images_suite(void)
{
    Suite *s = suite_create("cli-images");
    TCase *tc = tcase_create("npy");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, npy_dtypes);
    tcase_add_test(tc, npy_labels);
    tcase_add_test(tc, npy_refusals);
    tcase_add_test(tc, npy_image_refusals);
    tcase_add_test(tc, image_shape);
    suite_add_tcase(s, tc);
    tc = tcase_create("png");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, png_grid_round_trip);
    tcase_add_test(tc, png_directory);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(images_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
