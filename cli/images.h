/* Image data of the `score` tool (images.c): NumPy .npy arrays, directories of PNG files
 * (through libpng, when the tool is built with it) and PNG grids of samples.
 *
 * An image is one row of C*H*W values in channel-first order (value (c, y, x) at
 * c*H*W + y*W + x), so that the MLP sees it as a point of dimension C*H*W. */
#ifndef SCORE_CLI_IMAGES_H
#define SCORE_CLI_IMAGES_H

#include <stddef.h>
#include <stdint.h>

/* ---- NumPy .npy ----------------------------------------------------------------------------
 * Format versions 1.0 and 2.0: the magic "\x93NUMPY", the version, the header length (2 or 4
 * bytes, little-endian), a Python dict literal with exactly the keys 'descr', 'fortran_order'
 * and 'shape', then the raw values. Read: little-endian (or one-byte) float32 '<f4', float64
 * '<f8', uint8 '|u1' and, for labels, the signed and unsigned integers of 1 to 8 bytes; C order
 * only; at most CLI_NPY_MAX_DIMS dimensions; the data must be exactly as long as the shape says.
 */
#define CLI_NPY_MAX_DIMS 8

typedef struct cli_npy {
    char kind;                /* 'f' float, 'u' unsigned integer, 'i' signed integer */
    size_t itemsize;          /* bytes per value */
    size_t ndim;
    size_t shape[CLI_NPY_MAX_DIMS];
    size_t count;             /* the product of the shape (1 for shape ()) */
    const unsigned char *data;/* count * itemsize little-endian bytes inside the parsed buffer */
} cli_npy;

/* Parses the header of an .npy file held in buf[0..len) and checks the data length. name is
 * used in messages. 0, or -1 with one line in err (never reads outside the buffer). */
int cli_npy_parse(const unsigned char *buf, size_t len, const char *name, cli_npy *out,
                  char *err, size_t err_len);
/* Value i of a parsed array as a double (exact for every accepted dtype but 64-bit integers
 * beyond 2^53). */
double cli_npy_value(const cli_npy *a, size_t i);

/* ---- image data sets ---------------------------------------------------------------------- */
typedef struct cli_images {
    size_t rows, dim;         /* images, and values per image (C*H*W) */
    float *data;              /* rows * dim values, data units */
    size_t c, h, w;           /* the image shape; 0 when the data do not say it (2-D .npy) */
    int pixels;               /* 1: integer pixel values in [0, maxval] (PNG, uint8 .npy) */
    double maxval;            /* with pixels: 255 (8-bit) or 65535 (16-bit) */
    char **text;              /* with class directories: each row's class (directory name) */
} cli_images;

void cli_images_free(cli_images *im);

/* A .npy array of shape (N, ...) as N rows of the product of the other dimensions: float32,
 * float64 (finite values that fit a float) or uint8 (pixels in [0, 255]). The image shape is
 * (1, H, W) for shape (N, H, W), (C, H, W) for (N, C, H, W), unknown otherwise. 0, or -1 with
 * one line in err. */
int cli_npy_read_images(const char *path, cli_images *out, char *err, size_t err_len);
/* Class labels from a .npy of integers of shape (N,) or (N, 1), N = rows: one decimal string
 * per row in *text (malloc'd, rows entries). 0, or -1 with one line in err. */
int cli_npy_read_labels(const char *path, size_t rows, char ***text, char *err,
                        size_t err_len);
void cli_text_free(char **text, size_t rows);

/* Whether the tool was built with libpng. */
int cli_png_available(void);
/* One PNG image held in buf[0..len): grayscale (1, 2, 4, 8 or 16 bits; the low depths
 * expanded to 8 bits), RGB or palette (expanded to RGB), 8 or 16 bits; an alpha channel is
 * refused. *pix (malloc'd) receives C*H*W values channel-first, *bits 8 or 16. 0, or -1 with
 * one line in err naming `name`. */
int cli_png_decode(const unsigned char *buf, size_t len, const char *name, float **pix,
                   size_t *c, size_t *h, size_t *w, int *bits, char *err, size_t err_len);
/* A directory of PNG files: DIR/ *.png in byte order of their names, or with class_dirs
 * DIR/<class>/ *.png (the sub-directories in byte order, their names the classes in
 * out->text). Every image must have the same shape and bit depth. Names starting with '.' are
 * skipped, and so are other files; a sub-directory is refused without class_dirs. */
int cli_png_read_dir(const char *dir, int class_dirs, cli_images *out, char *err,
                     size_t err_len);
/* Writes n images (rows of C*H*W values, C = 1 grayscale or 3 RGB) as a grid of `rows` x
 * `cols` tiles, row by row, each pixel repeated zoom x zoom times, with a 1-pixel border of
 * mid-grey around and between the tiles; value v maps to round((v - lo) / (hi - lo) * M),
 * clipped to [0, M], M = 255 (bits 8) or 65535 (bits 16). Tiles past n stay grey; images past
 * rows * cols are not drawn. A non-finite value is refused. 0, or -1 with one line in err. */
int cli_png_write_grid(const char *path, const float *x, size_t n, size_t c, size_t h, size_t w,
                       size_t rows, size_t cols, size_t zoom, double lo, double hi, int bits,
                       char *err, size_t err_len);

/* Parses "CxHxW" (or "HxW" for C = 1): 0, or -1 when malformed or a factor is 0 or the
 * product overflows. */
int cli_parse_image_shape(const char *s, size_t *c, size_t *h, size_t *w);

#endif /* SCORE_CLI_IMAGES_H */
