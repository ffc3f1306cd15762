/* Internal declarations of the `score` command-line tool (not part of the library). */
#ifndef SCORE_CLI_H
#define SCORE_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <libscore/libscore.h>
/* the module headers, in case the umbrella header does not list them all yet */
#include <libscore/likelihood.h>
#include <libscore/loss.h>
#include <libscore/model.h>
#include <libscore/sampler.h>
#include <libscore/schedule.h>
#include <libscore/sde.h>
#include <libscore/step.h>
#include <libscore/train.h>

/* ---- errors -------------------------------------------------------------------------------
 * The tool reports every failure as one line on stderr, "score <cmd>: <message>", and exits
 * with CLI_EXIT_USAGE (bad command line, unknown names) or CLI_EXIT_FAILURE (files, data,
 * library failures). */
enum { CLI_EXIT_OK = 0, CLI_EXIT_FAILURE = 1, CLI_EXIT_USAGE = 2 };

extern const char *cli_command;   /* "train", "sample", ... for messages ("" before dispatch) */

/* the subcommands: argv[1] is the command name, options start at argv[2] */
int cli_cmd_train(int argc, char **argv);
int cli_cmd_sample(int argc, char **argv);
int cli_cmd_loglik(int argc, char **argv);
int cli_cmd_energy(int argc, char **argv);
int cli_cmd_encode(int argc, char **argv);
int cli_cmd_decode(int argc, char **argv);
int cli_cmd_info(int argc, char **argv);
int cli_cmd_datasets(int argc, char **argv);
int cli_cmd_distance(int argc, char **argv);
int cli_cmd_convert(int argc, char **argv);
int cli_cmd_train_classifier(int argc, char **argv);
/* score sample --classifier FILE: loads the classifier's generative model, attaches it to sde
 * (made from gm) with weight w through score_genmodel_set_classifier() (the library checks
 * dimension, schedule, data transform, column names and classes) and sets the label of class
 * cls (a class name stored in the classifier, else an index). *clf_out must outlive sde.
 * 0 or a failure code after printing one line. */
int cli_classifier_attach(const char *path, const score_genmodel *gm, score_sde *sde,
                          const char *cls, double w, score_genmodel **clf_out);

#if defined(__GNUC__)
#  define CLI_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#  define CLI_PRINTF(a, b)
#endif

/* Prints "score <cmd>: <message>\n" to stderr. Returns CLI_EXIT_FAILURE / CLI_EXIT_USAGE. */
int cli_fail(const char *fmt, ...) CLI_PRINTF(1, 2);
int cli_usage_error(const char *fmt, ...) CLI_PRINTF(1, 2);
/* Reports a failed library call: "score <cmd>: <what>: <last-error message>". */
int cli_lib_fail(int status, const char *what);
/* When score_blas_check() finds the BLAS running kernels of an older processor, prints one
 * "note:" line saying so, with the setting that fixes it, to stderr (for the summaries of the
 * commands whose speed depends on the BLAS). */
void cli_note_blas(void);
/* Refuses '-' as the path of a binary file to write (a model, a checkpoint): those are files,
 * never standard output. Returns 0 or CLI_EXIT_USAGE. */
int cli_binary_output_check(const char *option, const char *path);

/* ---- option parsing -----------------------------------------------------------------------
 * GNU-style options, scanned by glibc getopt_long(): long options "--name VALUE" or
 * "--name=VALUE", abbreviated to any unambiguous prefix ("--hid 64" for "--hidden 64"), and a
 * few one-letter aliases that combine ("-qn 500", "-n500"); flags take no value; "--" ends the
 * options. Positional arguments (anywhere among the options) are collected in order. */
typedef struct cli_opt {
    const char *name;     /* long name without "--" */
    char alias;           /* one-letter alias or 0 */
    int takes_value;      /* 1 = needs a value, 0 = flag */
    const char *metavar;  /* for the help text, e.g. "FILE" */
    const char *help;     /* one line */
    const char *value;    /* parsed value (or "1" for a set flag); NULL if absent */
} cli_opt;

/* Parses argv[first..argc) against opts (terminated by a {NULL} entry, at most 62 entries).
 * Positional arguments are stored in pos[0..*npos) (at most max_pos). Returns 0, or
 * CLI_EXIT_USAGE after printing one line (unknown option, ambiguous abbreviation with its
 * candidates, missing value, value given to a flag, extra argument). "--help"/"-h" sets
 * *want_help. The values of the output options ("output", "plot";
 * "-" aside) are checked with cli_output_check(): CLI_EXIT_FAILURE after printing the error. */
int cli_parse(int argc, char **argv, int first, cli_opt *opts, const char **pos, int max_pos,
              int *npos, int *want_help);
/* cli_parse() of a command's options (from argv[2]), then its help when asked for or needed:
 * text, the options, and extra(f) unless NULL; on stdout for --help (*help set, returns 0), on
 * stderr when fewer than min_pos positional arguments are given (returns CLI_EXIT_USAGE). */
int cli_parse_command(int argc, char **argv, cli_opt *opts, const char *text,
                      void (*extra)(FILE *), const char **pos, int min_pos, int max_pos,
                      int *npos, int *help);
const char *cli_opt_get(const cli_opt *opts, const char *name);   /* value or NULL */
/* Standard input can be read once: refuses (CLI_EXIT_USAGE, one line) when more than one of the
 * n inputs (NULL entries skipped) is "-". */
int cli_stdin_once(const char *const *inputs, size_t n);
int cli_opt_flag(const cli_opt *opts, const char *name);          /* 1 if given */
/* Typed getters: leave *out unchanged when the option is absent; return 0 or CLI_EXIT_USAGE. */
int cli_opt_size(const cli_opt *opts, const char *name, size_t min, size_t max, size_t *out);
/* Applies --threads N (1..1024, when given) to the model's SCORE_MODEL_PARAM_THREADS. */
int cli_model_threads(const cli_opt *opts, score_model *model);
int cli_opt_u64(const cli_opt *opts, const char *name, uint64_t *out);
int cli_opt_double(const cli_opt *opts, const char *name, double min, double max, double *out);
void cli_print_options(FILE *f, const cli_opt *opts);

/* A table of user-visible names for an enumeration ("euler" -> SCORE_STEP_EULER). */
typedef struct cli_name {
    const char *name;
    int value;
    const char *help;
} cli_name;
/* Looks name up in table (terminated by {NULL}); on failure prints "unknown <what> 'x' (valid:
 * a, b, c)" and returns CLI_EXIT_USAGE. */
int cli_lookup(const cli_name *table, const char *what, const char *name, int *out);
/* cli_lookup() of the value of option `name` when it is given (else *out is unchanged). */
int cli_opt_lookup(const cli_opt *opts, const char *name, const cli_name *table,
                   const char *what, int *out);
const char *cli_name_of(const cli_name *table, int value);   /* NULL if absent */
/* Writes "a, b, c" into list (truncated to len): the names of a table whose entries, stride
 * bytes apart, begin with a `const char *name`, up to the entry whose name is NULL. */
void cli_join_names(const void *table, size_t stride, char *list, size_t len);
void cli_print_names(FILE *f, const char *title, const cli_name *table);

/* ---- files (files.c) ---------------------------------------------------------------------
 * Inputs: read whole through cli_read_input(): a regular file (devices, FIFOs, sockets and
 * directories are refused before anything is read) or "-" for stdin, of at most `limit` bytes
 * (the file's size is checked before reading, stdin while reading). The environment variable
 * SCORE_CLI_INPUT_LIMIT (bytes) replaces the default limits below. */
#define CLI_MODEL_INPUT_LIMIT ((size_t)1 << 30)   /* model files: 1 GiB */
#define CLI_CSV_INPUT_LIMIT ((size_t)1 << 31)     /* CSV data: 2 GiB */
size_t cli_input_limit(size_t default_limit);   /* the limit in effect */
/* Reads path into a malloc'd buffer (one extra NUL byte after *len_out bytes). what ("" or
 * "model file ") is put before the name in messages. 0, or -1 with one line in err. */
int cli_read_input(const char *path, const char *what, size_t limit, unsigned char **buf_out,
                   size_t *len_out, char *err, size_t err_len);
/* Outputs are regular files only: a path that is a device, FIFO, socket or directory, or a
 * symbolic link to anything but an existing regular file, is refused; a symbolic link to a
 * regular file is written through (the target is replaced, the link stays). 0 or -1 + err. */
int cli_output_check(const char *path, char *err, size_t err_len);
/* Opens path for writing (created or truncated) after the same checks, verified again on the
 * opened file. NULL with err on failure. */
FILE *cli_output_open(const char *path, char *err, size_t err_len);

/* ---- CSV ----------------------------------------------------------------------------------
 * Numeric CSV: one point per line, fields separated by commas (or the delimiter given: ';' or
 * a tab; never guessed), spaces around fields ignored, an optional header line (a first line
 * in which no field is a number), '#' comment lines and blank lines skipped, CRLF accepted.
 * Fields may be quoted as in RFC 4180: "..." with "" for a quote inside; delimiters and line
 * breaks inside quotes are data ("1.5" is the number 1.5). Every data line must have the same
 * number of fields. Errors name the file, the line and the column. */
typedef struct cli_table {
    size_t rows, cols;
    float *data;          /* rows * cols, row-major */
    char **names;         /* cols header names, or NULL when the file has no header */
    char **text;          /* rows values of the text column (cli_csv_read_ex()), else NULL */
} cli_table;

/* Reads path ("-" = stdin). On failure writes one line into err (e.g. "data.csv:7:2: 'x' is
 * not a number") and returns -1; returns 0 on success. */
int cli_csv_read(const char *path, cli_table *out, char *err, size_t err_len);
/* Parses an in-memory text; name is used in messages. */
int cli_csv_parse(const char *text, size_t len, const char *name, cli_table *out, char *err,
                  size_t err_len);
/* As above, and the column whose header name is text_column (NULL: none) is taken out of the
 * numbers: its values are kept as text, one string per row, in out->text (not empty). A file
 * without a header, or whose header lacks the name, is refused. */
int cli_csv_read_ex(const char *path, const char *text_column, cli_table *out, char *err,
                    size_t err_len);
int cli_csv_parse_ex(const char *text, size_t len, const char *name, const char *text_column,
                     cli_table *out, char *err, size_t err_len);
/* How to read a CSV: the delimiter (',' when 0), the text column (as in _ex, or NULL), and
 * missing = 1 to read empty, NaN and NA cells as missing values (NAN) instead of refusing
 * them. */
typedef struct cli_csv_opts {
    char delimiter;
    const char *text_column;
    int missing;
} cli_csv_opts;
int cli_csv_read_opts(const char *path, const cli_csv_opts *o, cli_table *out, char *err,
                      size_t err_len);
int cli_csv_parse_opts(const char *text, size_t len, const char *name, const cli_csv_opts *o,
                       cli_table *out, char *err, size_t err_len);
/* --delimiter VALUE (NULL: *out unchanged): ',' / "comma", ';' / "semicolon", a tab / "\t" /
 * "tab". 0, or CLI_EXIT_USAGE after printing the error. */
int cli_csv_delimiter(const char *s, char *out);
/* Takes the m columns named names[0..m) out of a table with a header: their values go to a
 * malloc'd *values (rows x m, in the order of names), the table keeps the other columns (in
 * order, with their names). 0, or -1 with one line in err (no header, a name missing or given
 * twice, no column left; the table unchanged). */
int cli_table_take_columns(cli_table *t, size_t m, const char *const *names, float **values,
                           char *err, size_t err_len);
void cli_table_free(cli_table *t);

/* ---- class labels (labels.c) ---------------------------------------------------------------
 * The classes of a text column (--label-column): the sorted distinct values (in numeric order
 * when all are integers, else in byte order), K = their count (2..65535), and each row's label
 * the index of its value. */
typedef struct cli_class_labels {
    int32_t *labels;      /* rows labels in 0..K-1 */
    char **names;         /* the K values, as stored in a model (integers normalised) */
    size_t num_classes;
} cli_class_labels;
/* 0, or a failure code after printing one line (column and what, e.g. "a classifier", name
 * the column and the model in messages). */
int cli_class_labels_make(char **text, size_t rows, const char *column, const char *what,
                          cli_class_labels *out);
void cli_class_labels_free(cli_class_labels *c);
/* Writes rows x cols floats (with an optional header, its names quoted as RFC 4180 asks when
 * they hold a comma, a quote or a line break) to path ("-" = stdout), %.9g per value.
 * Returns 0 or -1 with a message in err. */
int cli_csv_write(const char *path, const float *data, size_t rows, size_t cols,
                  const char *const *header, char *err, size_t err_len);

/* ---- SVG ----------------------------------------------------------------------------------
 * A minimal plot writer: a document holds panels; each panel maps a data rectangle onto a pixel
 * rectangle, draws axes with ticks, and takes point clouds, arrows and polylines. */
typedef struct cli_svg cli_svg;
typedef struct cli_panel {
    double px, py, pw, ph;          /* pixel rectangle of the plotting area */
    double x0, x1, y0, y1;          /* data rectangle */
    int log_y;                      /* y axis in log10 */
} cli_panel;

cli_svg *cli_svg_begin(const char *path, double width, double height, const char *title,
                       char *err, size_t err_len);
/* Closes the document; returns 0 or -1 (write error, message in err). */
int cli_svg_end(cli_svg *svg, char *err, size_t err_len);
/* Sets up a panel at pixel (px, py) of size (pw, ph) including its margins, draws the frame,
 * ticks, labels and the title. */
void cli_svg_panel(cli_svg *svg, cli_panel *p, double px, double py, double pw, double ph,
                   double x0, double x1, double y0, double y1, int log_y, const char *title,
                   const char *xlabel, const char *ylabel);
void cli_svg_points(cli_svg *svg, const cli_panel *p, const float *xy, size_t n, size_t stride,
                    size_t cx, size_t cy, const char *color, double radius, double opacity);
/* Arrows from (x, y) by (u, v) in data units. */
void cli_svg_arrows(cli_svg *svg, const cli_panel *p, const double *x, const double *y,
                    const double *u, const double *v, size_t n, const char *color,
                    double width);
void cli_svg_polyline(cli_svg *svg, const cli_panel *p, const double *x, const double *y,
                      size_t n, const char *color, double width);
void cli_svg_legend(cli_svg *svg, const cli_panel *p, int slot, const char *color,
                    const char *label);
void cli_svg_text(cli_svg *svg, double x, double y, double size, const char *anchor,
                  const char *text);
/* Bounding box of columns cx, cy of n rows (stride floats per row), padded by 5 %;
 * accumulates into the given extents (initialise with +inf / -inf). */
void cli_bbox(const float *xy, size_t n, size_t stride, size_t cx, size_t cy, double *x0,
              double *x1, double *y0, double *y1);
/* Pads a box by frac of its size and makes degenerate extents non-zero. */
void cli_bbox_pad(double *x0, double *x1, double *y0, double *y1, double frac);
/* cli_bbox_pad(), then widens the shorter side (about its centre) to a square. */
void cli_bbox_square(double *x0, double *x1, double *y0, double *y1, double frac);

/* ---- progress bar -------------------------------------------------------------------------
 * Drawn on stderr, at most ~10 times a second, only when stderr is a terminal and the tool is
 * not --quiet: "label [#####.....]  1200/4000  loss 0.812  1534 it/s  ETA 2s". */
typedef struct cli_progress {
    const char *label;
    uint64_t total;
    int enabled;
    double t_start, t_last;
    uint64_t last_step;
    int drawn;
} cli_progress;

double cli_now(void);  /* monotonic seconds */
void cli_progress_start(cli_progress *p, const char *label, uint64_t total, int quiet);
/* value_name may be NULL (no value shown). */
void cli_progress_update(cli_progress *p, uint64_t step, const char *value_name, double value);
void cli_progress_finish(cli_progress *p);
/* Formats seconds as "12s", "3m04s", "1h02m". */
void cli_format_duration(double seconds, char *buf, size_t len);

/* ---- metrics ------------------------------------------------------------------------------ */
/* Sliced Wasserstein-2 distance between the empirical distributions of a (na x dim) and
 * b (nb x dim): sqrt of the mean, over n_proj random unit directions (seeded), of the exact 1-D
 * squared W2 distance between the projections (quantile functions; na and nb may differ).
 * Returns a negative value on allocation failure or bad arguments. */
double cli_sliced_w2(const float *a, size_t na, const float *b, size_t nb, size_t dim,
                     size_t n_proj, uint64_t seed);
/* The exact squared W2 distance between two 1-D empirical distributions given as SORTED
 * arrays. */
double cli_w2_sq_sorted_1d(const double *a, size_t na, const double *b, size_t nb);

/* ---- model files (modelfile.c) -----------------------------------------------------------
 * String metadata for display: the network's user metadata (the training record score.train.*)
 * and the library's own descriptive and meaning keys of the header (kind, widths, genmodel.*). */
typedef struct cli_meta {
    size_t n;
    char **keys, **values;
} cli_meta;

int cli_meta_set(cli_meta *m, const char *key, const char *value);   /* 0 or -1 (memory) */
const char *cli_meta_get(const cli_meta *m, const char *key);        /* NULL if absent */
void cli_meta_free(cli_meta *m);
/* Parses a model file's JSON header (hlen bytes at text) with cJSON: the cJSON tree, or NULL
 * with one line in err that tells "out of memory parsing the header of model file 'path'" from
 * "'path' is not a usable model file: its header is not valid JSON (at byte N of M)". */
void *cli_header_parse(const char *path, const char *text, size_t hlen, char *err,
                       size_t err_len);

/* A model file as read by the tool: a generative model (score_genmodel_load_buffer()) and the
 * metadata for display. */
typedef struct cli_model_file {
    score_genmodel *gm;     /* NULL only for a plain network file read with allow_plain */
    score_model *plain;     /* the network of such a plain file ('score info'), else NULL */
    char refusal[512];      /* the library's reason when gm is NULL */
    cli_meta meta;
} cli_model_file;
/* Reads path ("-" = stdin) through cli_read_input(): 0, or -1 with one line in err (the
 * library's message for a file that is no usable generative model; with allow_plain a plain
 * network file is accepted with gm NULL). */
int cli_model_file_read(const char *path, int allow_plain, cli_model_file *f, char *err,
                        size_t err_len);
void cli_model_file_free(cli_model_file *f);
/* A generative model file (cli_model_file_read(), no plain networks) with --threads of opts
 * applied to its network: 0, or a failure code after printing one line (f then freed). */
int cli_model_file_load(const char *path, const cli_opt *opts, cli_model_file *f);

extern const cli_name cli_datasets[];   /* toy dataset names with descriptions */
/* n points of the toy dataset `name` (score_dataset_toy()) drawn with the Philox generator of
 * seed on stream `stream` (1: training points, 2: reference points) into a malloc'd *out.
 * SCORE_OK, SCORE_E_NOMEM, or the status of score_dataset_toy() (*out NULL). */
int cli_toy_points(const char *name, size_t n, uint64_t seed, uint64_t stream, float **out);

/* ---- names of the library's enums (system.c) ----------------------------------------------- */
extern const cli_name cli_outputs[], cli_conds[], cli_schedule_kinds[];
/* A preset (score_schedule_new_preset()) or a kind name; prints the error itself. */
int cli_schedule_from_name(const char *name, score_schedule **out);
void cli_print_schedules(FILE *f);

/* ---- pictures (plots.c) ------------------------------------------------------------------ */
/* A score field sampled on an n x n grid (row-major gx, gy, u, v) over a data rectangle. */
typedef struct cli_field {
    size_t n;
    double x0, x1, y0, y1;
    double *gx, *gy, *u, *v;
    double t, sigma;        /* time and EDM noise level sigma / alpha of the field */
    int standardized;       /* sigma is in units of the data's standard deviation */
} cli_field;

/* Samples (red) over data (grey, may be NULL) in columns cx, cy. */
int cli_plot_samples(const char *path, const float *data, size_t nd, const float *samples,
                     size_t ns, size_t dim, size_t cx, size_t cy, const char *const *names,
                     const char *title, const char *sample_label, char *err, size_t err_len);
/* The loss curves of a training run: loss[i] is the training loss of step first_step + i + 1
 * (steps values); the held-out loss valid_loss[k] at step valid_step[k] (n_valid points, 0 for
 * none). */
typedef struct cli_loss_curves {
    const double *loss;
    size_t steps, first_step;
    const double *valid_step, *valid_loss;
    size_t n_valid;
} cli_loss_curves;
/* Score-field arrows over the data, and the loss curves. */
int cli_plot_training(const char *path, const float *data, size_t nd, size_t dim, size_t cx,
                      size_t cy, const char *const *names, const cli_field *field,
                      const cli_loss_curves *curves, const char *title, char *err,
                      size_t err_len);
/* Parses --dims "i,j" (1-based) into 0-based columns; default 1,2. */
int cli_parse_dims(const char *s, size_t dim, size_t *cx, size_t *cy);

/* ---- mpi.c: running under mpirun (with libscore-mpi) ---------------------------------- */
/* Joins MPI when started by an MPI launcher (else nothing); 0 or CLI_EXIT_FAILURE. */
int cli_mpi_begin(int *argc, char ***argv);
/* Agrees on the exit status of every rank and leaves MPI; the status to exit with. */
int cli_mpi_end(int rc);
/* The communicator of the ranks, or NULL for one process; this process's rank (0 alone). */
score_comm *cli_mpi_comm(void);
int cli_mpi_rank(void);
/* Every rank learns whether any rank failed (rc != 0): the status to go on with. */
int cli_mpi_agree(int rc);
/* One line for 'score info': whether the tool can run under mpirun. */
const char *cli_mpi_info(void);

#endif /* SCORE_CLI_H */
