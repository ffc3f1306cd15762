/* score train: the data. CSV, images (a PNG directory, a .npy array) or toy points, class
 * labels, condition columns, the held-out split, integer-valued columns and their
 * dequantization, the standardization. */
#define _POSIX_C_SOURCE 200809L
#include "train.h"

#include "images.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Streams of the run's seed used here (the trainer uses 0 and 2 of its own generator, the
 * toy points 1 and 2 of theirs, the generator streams being separate per purpose): */
enum {
    STREAM_SPLIT = 3,        /* the held-out rows: one uniform per row, counter 0 */
    STREAM_DEQ_TRAIN = 5,    /* dequantization offsets of the training rows, counter = epoch */
    STREAM_DEQ_VALID = 6     /* those of the held-out rows, counter 0 (fixed) */
};

/* Takes the --condition-columns out of the table (cli_table_take_columns()): j->context (rows
 * x m, the values as read), j->context_names; the table keeps the other columns. */
static int take_condition_columns(const train_opts *o, train_job *j)
{
    const char *list = o->condition_columns;
    size_t m = 1;
    char err[400];
    for (const char *c = list; *c; c++)
        m += *c == ',';
    if ((j->context_names = calloc(m, sizeof *j->context_names)) == NULL)
        return cli_fail("out of memory");
    const char *s = list;
    for (size_t k = 0; k < m; k++) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len == 0)
            return cli_usage_error("--condition-columns '%s': an empty column name", list);
        if ((j->context_names[k] = malloc(len + 1)) == NULL)
            return cli_fail("out of memory");
        memcpy(j->context_names[k], s, len);
        j->context_names[k][len] = '\0';
        j->context_dim = k + 1;
        s = e ? e + 1 : s + len;
    }
    if (cli_table_take_columns(&j->table, m, (const char *const *)j->context_names, &j->context,
                               err, sizeof err) != 0)
        return cli_fail("--condition-columns of %s: %s", o->datafile, err);
    return 0;
}

/* Whether --data names image data: a directory (of PNG files) or a file ending in .npy. */
int train_data_is_images(const char *path)
{
    struct stat st;
    size_t n = path != NULL ? strlen(path) : 0;
    if (n == 0 || strcmp(path, "-") == 0)
        return 0;
    if (n > 4 && strcmp(path + n - 4, ".npy") == 0)
        return 1;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* --image CxHxW (checked against the data and the shape the images have), and the range of
 * the values recorded for PNG grids: the pixel range, else the data's minimum and maximum. */
static int set_image_shape(const train_opts *o, train_job *j)
{
    if (o->image != NULL) {
        size_t c, h, w;
        if (cli_parse_image_shape(o->image, &c, &h, &w) != 0)
            return cli_usage_error("--image '%s': expected CxHxW (or HxW), positive sizes",
                                   o->image);
        if (c * h * w != j->dim || (j->img_c != 0 && (c != j->img_c || h != j->img_h ||
                                                      w != j->img_w)))
            return cli_fail("--image %s does not fit the data (%zu values per row%s)", o->image,
                            j->dim, j->img_c ? ", images of that shape in the file" : "");
        j->img_c = c, j->img_h = h, j->img_w = w;
    }
    if (j->pixels) {
        /* with --dequantize uniform a sample in [p, p + 1) stands for pixel p: the range
         * shifted by half a level draws it as p */
        double half = o->dequantize != SCORE_GENMODEL_DEQUANT_NONE ? 0.5 : 0.0;
        j->range_lo = half;
        j->range_hi = j->pixel_max + half;
    } else {
        j->range_lo = INFINITY, j->range_hi = -INFINITY;
        for (size_t i = 0; i < j->rows * j->dim; i++) {
            j->range_lo = fmin(j->range_lo, j->data[i]);
            j->range_hi = fmax(j->range_hi, j->data[i]);
        }
    }
    return 0;
}

/* --data DIR/ or FILE.npy: the images as rows of C*H*W values (images.h), their shape (or
 * --image CxHxW), the range recorded for PNG grids, and the class names of --class-dirs or
 * --labels FILE.npy. */
static int load_images(const train_opts *o, train_job *j)
{
    char err[512];
    cli_images im;
    size_t n = strlen(o->datafile);
    int npy = n > 4 && strcmp(o->datafile + n - 4, ".npy") == 0;
    if (npy && o->class_dirs)
        return cli_usage_error("--class-dirs is for a directory of PNG files; a .npy array "
                               "takes --labels FILE.npy");
    if (!npy && o->labels_file != NULL)
        return cli_usage_error("--labels FILE.npy is for .npy data; a PNG directory takes "
                               "--class-dirs");
    if ((npy ? cli_npy_read_images(o->datafile, &im, err, sizeof err)
             : cli_png_read_dir(o->datafile, o->class_dirs, &im, err, sizeof err)) != 0)
        return cli_fail("%s", err);
    j->images = 1;
    j->data = im.data;
    j->rows = im.rows;
    j->dim = im.dim;
    j->pixels = im.pixels;
    j->pixel_max = im.maxval;
    j->img_c = im.c, j->img_h = im.h, j->img_w = im.w;
    j->image_text = im.text;
    j->label_source = "the class directories";
    int rc = set_image_shape(o, j);
    if (rc != 0)
        return rc;
    if (o->labels_file != NULL) {
        j->label_source = o->labels_file;
        if (cli_npy_read_labels(o->labels_file, j->rows, &j->image_text, err, sizeof err) != 0)
            return cli_fail("%s", err);
    }
    return 0;
}

/* The training points: the CSV file, the images, or n points of the toy dataset (stream 1 of
 * the seed). */
int train_load_data(const train_opts *o, train_job *j)
{
    char err[512];
    int rc;
    if (o->datafile != NULL && train_data_is_images(o->datafile))
        return load_images(o, j);
    if (o->datafile != NULL) {
        cli_csv_opts co = {.delimiter = o->delimiter, .text_column = o->label_column};
        if (cli_csv_read_opts(o->datafile, &co, &j->table, err, sizeof err) != 0)
            return cli_fail("%s", err);
        if (o->condition_columns != NULL && (rc = take_condition_columns(o, j)) != 0)
            return rc;
        j->rows = j->table.rows;
        j->dim = j->table.cols;
        j->data = j->table.data;
        return o->image != NULL ? set_image_shape(o, j) : 0;
    }
    j->dim = score_dataset_toy_dim(o->dataset);
    if (j->dim == 0) {
        int dummy;
        return cli_lookup(cli_datasets, "dataset", o->dataset, &dummy);
    }
    j->rows = o->n_points;
    if ((rc = cli_toy_points(o->dataset, j->rows, o->seed, 1, &j->data)) != SCORE_OK)
        return rc == SCORE_E_NOMEM ? cli_fail("out of memory")
                                   : cli_lib_fail(rc, "score_dataset_toy");
    return o->image != NULL ? set_image_shape(o, j) : 0;
}

/* --label-column: the classes of the column (cli_class_labels_make(): the sorted distinct
 * values, each row's label the index of its value). */
int train_make_labels(const train_opts *o, train_job *j)
{
    cli_class_labels c;
    int rc;
    if (o->label_column == NULL && j->image_text == NULL)
        return 0;
    if (j->image_text != NULL)
        rc = cli_class_labels_make(j->image_text, j->rows, j->label_source,
                                   "a class-conditional model", &c);
    else
        rc = cli_class_labels_make(j->table.text, j->rows, o->label_column,
                                   "a class-conditional model", &c);
    if (rc != 0)
        return rc;
    j->labels = c.labels;
    j->class_names = c.names;
    j->num_classes = c.num_classes;
    return 0;
}

typedef struct keyed_row {
    double u;
    size_t row;
} keyed_row;

static int cmp_keyed(const void *a, const void *b)
{
    const keyed_row *x = a, *y = b;
    if (x->u != y->u)
        return x->u < y->u ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

/* Reorders the rows of a buffer of `width` values per row by j->order (in place, via a copy). */
static int reorder(const train_job *j, void *buf, size_t width, size_t elem)
{
    size_t row_bytes = width * elem;
    unsigned char *copy = malloc(j->rows * row_bytes), *b = buf;
    if (copy == NULL)
        return -1;
    memcpy(copy, b, j->rows * row_bytes);
    for (size_t i = 0; i < j->rows; i++)
        memcpy(b + i * row_bytes, copy + j->order[i] * row_bytes, row_bytes);
    free(copy);
    return 0;
}

/* --valid-fraction F: round(F * rows) held-out rows (at least 1, leaving at least 1 to train),
 * those whose uniform of the seed's generator (stream 3, counter 0, row i) is smallest, ties
 * by row. The split is a pure function of (seed, rows, F). The rows are then ordered training
 * rows first, then held-out rows, each part in file order; the data, labels and conditions
 * follow. */
int train_split(const train_opts *o, train_job *j)
{
    size_t rows = j->rows;
    j->n_train = rows;
    j->n_valid = 0;
    if (o->valid_fraction <= 0)
        return 0;
    size_t k = (size_t)llround(o->valid_fraction * (double)rows);
    if (k < 1)
        k = 1;
    if (k >= rows)
        return cli_fail("--valid-fraction %g of %zu rows leaves no training rows",
                        o->valid_fraction, rows);
    score_rng *rng = NULL;
    keyed_row *key = malloc(rows * sizeof *key);
    double *u = malloc(rows * sizeof *u);
    j->order = malloc(rows * sizeof *j->order);
    int rc = key && u && j->order ? score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, o->seed)
                                  : SCORE_E_NOMEM;
    if (rc == SCORE_OK)
        rc = score_rng_set_stream(rng, STREAM_SPLIT);
    if (rc == SCORE_OK)
        rc = score_rng_fill_uniform_f64(rng, 0, rows, 0, 1, u);
    score_rng_free(rng);
    if (rc != SCORE_OK) {
        free(key);
        free(u);
        return rc == SCORE_E_NOMEM ? cli_fail("out of memory") : cli_lib_fail(rc, "split");
    }
    for (size_t i = 0; i < rows; i++)
        key[i] = (keyed_row){u[i], i};
    qsort(key, rows, sizeof *key, cmp_keyed);
    /* held-out: key[0 .. k); training: the rest; each part back in file order */
    for (size_t i = 0; i < k; i++)
        j->order[rows - k + i] = key[i].row;
    for (size_t i = k; i < rows; i++)
        j->order[i - k] = key[i].row;
    qsort(j->order, rows - k, sizeof *j->order, cmp_size);
    qsort(j->order + rows - k, k, sizeof *j->order, cmp_size);
    free(key);
    free(u);
    j->n_train = rows - k;
    j->n_valid = k;
    if (reorder(j, j->data, j->dim, sizeof(float)) != 0 ||
        (j->labels != NULL && reorder(j, j->labels, 1, sizeof *j->labels) != 0) ||
        (j->context != NULL && reorder(j, j->context, j->context_dim, sizeof(float)) != 0))
        return cli_fail("out of memory");
    return 0;
}

/* The name of data column c for messages. */
static void column_name(const train_job *j, size_t c, char *buf, size_t len)
{
    if (j->table.names != NULL)
        snprintf(buf, len, "'%s'", j->table.names[c]);
    else
        snprintf(buf, len, "%zu", c + 1);
}

/* Integer-valued columns: with --dequantize uniform every data column must hold integers
 * only (refused otherwise); without it, a warning names the columns that hold only integers. */
int train_check_integers(const train_opts *o, train_job *j)
{
    size_t rows = j->rows, dim = j->dim, n_int = 0;
    char list[512] = "", name[300];
    for (size_t c = 0; c < dim; c++) {
        size_t bad = rows;
        for (size_t i = 0; i < rows && bad == rows; i++) {
            float v = j->data[i * dim + c];
            if (v != floorf(v))
                bad = i;
        }
        column_name(j, c, name, sizeof name);
        if (bad < rows && o->dequantize == SCORE_GENMODEL_DEQUANT_UNIFORM)
            return cli_fail("--dequantize uniform is for integer data, but column %s holds %.9g "
                            "(row %zu of the data)", name, (double)j->data[bad * dim + c],
                            (j->order ? j->order[bad] : bad) + 1);
        if (bad == rows) {
            size_t used = strlen(list);
            if (n_int < 8)
                snprintf(list + used, sizeof list - used, "%s%s", n_int ? ", " : "", name);
            else if (n_int == 8)
                snprintf(list + used, sizeof list - used, ", ...");
            n_int++;
        }
    }
    if (n_int > 0 && o->dequantize == SCORE_GENMODEL_DEQUANT_NONE)
        fprintf(stderr, "score train: warning: %zu of %zu data column%s (%s) hold%s only "
                "integers: a density fitted to values on a grid is not a likelihood of them "
                "(score loglik would report meaningless values); train with --dequantize "
                "uniform\n", n_int, dim, dim == 1 ? "" : "s", list, n_int == 1 ? "s" : "");
    return 0;
}

/* The points as trained: a copy of the data (in split order), and the standardization per
 * column (mean 0, sample standard deviation 1 over the training rows; a constant column keeps
 * scale 1) unless --no-standardize; integer pixels (PNG, uint8 .npy) instead map 0 .. M to
 * [-1, 1] in every column (shift = scale = M / 2). With --init the transform of MODEL is kept
 * instead (its weights were learned in its units). With --dequantize the stored shift includes
 * the mean 1/2 of the offsets (for pixels: 0 .. M + 1 to [-1, 1]). */
int train_standardize(const train_opts *o, train_job *j)
{
    size_t rows = j->rows, dim = j->dim, nt = j->n_train;
    j->train_x = malloc(rows * dim * sizeof *j->train_x);
    if (j->train_x == NULL)
        return cli_fail("out of memory");
    memcpy(j->train_x, j->data, rows * dim * sizeof *j->train_x);
    if (o->dequantize != SCORE_GENMODEL_DEQUANT_NONE) {
        if ((j->plain_x = malloc(rows * dim * sizeof *j->plain_x)) == NULL)
            return cli_fail("out of memory");
        memcpy(j->plain_x, j->data, rows * dim * sizeof *j->plain_x);
    }
    if (cli_opt_flag(cli_train_opts, "no-standardize"))
        return 0;
    j->shift = calloc(dim, sizeof *j->shift);
    j->scale = calloc(dim, sizeof *j->scale);
    if (j->shift == NULL || j->scale == NULL)
        return cli_fail("out of memory");
    if (j->init_gm != NULL) {
        if (score_genmodel_get_transform(j->init_gm, j->shift, j->scale) != 1) {
            free(j->shift);
            free(j->scale);
            j->shift = j->scale = NULL;
        }
        return 0;
    }
    const float *data = j->data;
    double half = o->dequantize != SCORE_GENMODEL_DEQUANT_NONE ? 0.5 : 0.0;
    if (j->pixels) {
        /* pixels 0 .. M (with --dequantize: 0 .. M + 1) map to [-1, 1] in every column */
        double mid = (j->pixel_max + 2 * half) / 2;
        for (size_t c = 0; c < dim; c++)
            j->shift[c] = mid, j->scale[c] = mid;
        return 0;
    }
    for (size_t c = 0; c < dim; c++) {
        double m = 0, q = 0;
        for (size_t i = 0; i < nt; i++)
            m += data[i * dim + c];
        m /= (double)nt;
        for (size_t i = 0; i < nt; i++)
            q += (data[i * dim + c] - m) * (data[i * dim + c] - m);
        double sd = nt > 1 ? sqrt(q / (double)(nt - 1)) : 0.0;
        j->shift[c] = m + half;
        j->scale[c] = sd > 1e-12 * (1.0 + fabs(m)) ? sd : 1.0;   /* constant column */
    }
    return 0;
}

/* Rows [r0, r0 + n) of train_x = encode(plain + u), u the uniforms of (seed, stream, counter)
 * at rows r0 .. r0 + n - 1 of the split, columns 0 .. dim - 1. */
static int dequantize_rows(const train_opts *o, train_job *j, size_t r0, size_t n,
                           uint64_t stream, uint64_t counter)
{
    size_t dim = j->dim;
    score_rng *rng = NULL;
    float *x = j->train_x + r0 * dim;
    const float *p = j->plain_x + r0 * dim;
    int rc = score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, o->seed);
    if (rc == SCORE_OK)
        rc = score_rng_set_stream(rng, stream);
    if (rc == SCORE_OK)
        rc = score_rng_set_counter(rng, counter);
    if (rc == SCORE_OK)
        rc = score_rng_fill_uniform(rng, r0, n, 0, dim, x);
    score_rng_free(rng);
    for (size_t i = 0; rc == SCORE_OK && i < n * dim; i++)
        x[i] = (float)((double)p[i] + (double)x[i]);
    if (rc == SCORE_OK)
        rc = score_genmodel_encode(j->gm, n, x, x);
    return rc == SCORE_OK ? 0 : cli_lib_fail(rc, "dequantization");
}

/* --dequantize uniform: the training rows with the offsets of epoch `epoch` (a pure function
 * of (seed, epoch)); at epoch 0 also the held-out rows, whose offsets are fixed so that every
 * held-out evaluation sees the same points. Without --dequantize, encodes the data once. */
int train_dequantize_epoch(const train_opts *o, train_job *j, uint64_t epoch)
{
    int rc;
    if (o->dequantize == SCORE_GENMODEL_DEQUANT_NONE) {
        rc = epoch == 0 ? score_genmodel_encode(j->gm, j->rows, j->train_x, j->train_x)
                        : SCORE_OK;
        return rc == SCORE_OK ? 0 : cli_lib_fail(rc, "generative model");
    }
    if (j->n_valid > 0 && j->valid_done == 0) {
        if ((rc = dequantize_rows(o, j, j->n_train, j->n_valid, STREAM_DEQ_VALID, 0)) != 0)
            return rc;
        j->valid_done = 1;
    }
    return dequantize_rows(o, j, 0, j->n_train, STREAM_DEQ_TRAIN, epoch);
}
