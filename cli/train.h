/* Internal declarations of `score train`, split by responsibility:
 *   cmd_train.c   the options, their help and the order of the steps of a run;
 *   train_data.c  the data: CSV, images or toy points, labels, condition columns, the held-out
 *                 split, integer columns and dequantization, standardization;
 *   train_setup.c the schedule, the network (or --init), the loss and the trainer (--resume);
 *   train_loop.c  the training loop: progress, held-out evaluations, early stopping,
 *                 dequantization offsets per epoch, the checkpoint;
 *   train_save.c  the saved generative model, the training record, the plot and the summary. */
#ifndef SCORE_CLI_TRAIN_H
#define SCORE_CLI_TRAIN_H

#include "cli.h"

extern cli_opt cli_train_opts[];
extern const cli_name cli_train_losses[], cli_train_weightings[], cli_train_optimizers[];

/* The options of one run, read and range-checked (defaults in brackets in the help). */
typedef struct train_opts {
    const char *dataset, *datafile, *output, *plot;
    size_t n_points, hidden, depth, embed_dim, steps, batch, warmup, projections, levels;
    uint64_t seed;
    double lr, clip, wd, ema, fscale, sigma, p_uncond;
    const char *label_column;
    const char *condition_columns;   /* --condition-columns A,B or NULL */
    char delimiter;                  /* of the CSV */
    double valid_fraction;           /* 0 = no held-out rows */
    size_t valid_every;              /* steps between held-out evaluations */
    size_t early_stop;               /* patience in evaluations, 0 = off */
    const char *checkpoint, *resume, *init;
    int dequantize;                  /* a score_genmodel_dequant */
    int loss_kind, weighting, act, embed, opt_kind, predict, cond;
    int energy;              /* --model energy: the energy MLP */
    int unet;                /* --model unet: the U-Net (unet.h) on the image shape */
    size_t unet_width, unet_blocks, unet_groups, unet_attention, unet_levels, unet_mults[6];
    int quiet, time_free;
    /* image data (images.h): --data DIR/ or FILE.npy */
    int class_dirs;                  /* --class-dirs: DIR/<class>/ holds the PNGs */
    const char *labels_file;         /* --labels FILE.npy or NULL */
    const char *image;               /* --image CxHxW or NULL */
} train_opts;

typedef struct train_ctx {
    cli_progress bar;
    double *losses;         /* the training loss of each step of this run (index step - first - 1) */
    size_t first, total;    /* the trainer's step counter at the start of the run, and its goal */
} train_ctx;

/* One held-out evaluation: the step and the loss on the held-out rows. */
typedef struct train_eval {
    size_t step;
    double loss;
} train_eval;

/* What a run holds; train_job_free() releases it. */
typedef struct train_job {
    score_schedule *sched;
    double *shift, *scale;  /* the standardization (x - shift) / scale, NULL with --no-standardize */
    double fixed_t;         /* > 0: the one time a one-noise-level loss trains */
    score_genmodel *gm;     /* the meaning of the model as trained (its network: the initial one) */
    score_genmodel *init_gm;/* --init MODEL */
    size_t init_img[3];     /* the image shape C, H, W stored with --init MODEL (0: none) */
    cli_table table;        /* the CSV data (--data) */
    float *data;            /* the data in its own units: table.data (data columns), or toy points */
    size_t rows, dim;       /* all rows (training + held-out) and the data columns */
    /* the rows as trained: the training rows first, then the held-out rows */
    size_t *order;          /* row order[i] of the data is row i of the split, or NULL */
    size_t n_train, n_valid;
    float *train_x;         /* n_train + n_valid rows in model units (standardized) */
    float *plain_x;         /* with --dequantize: the same rows before the offsets, data units */
    int valid_done;         /* the held-out rows of train_x hold their fixed offsets */
    int32_t *labels;        /* the class of each row of the split (--label-column), or NULL */
    char **class_names;     /* the K sorted distinct label values */
    size_t num_classes;
    float *context;         /* --condition-columns: rows x m values of the split, or NULL */
    size_t context_dim;
    char **context_names;   /* their m header names */
    score_model *model;
    score_model *final;     /* the saved weights: model, the EMA model, or the best held-out */
    score_model *best;      /* --early-stop: a copy of the weights of the best evaluation */
    score_sde *sde;
    score_loss *loss;
    score_loss *valid_loss; /* a copy of the loss for the held-out rows */
    score_trainer *tr;
    train_ctx ctx;          /* progress bar and loss history */
    train_eval *evals;      /* the held-out evaluations of this run */
    size_t n_evals, best_eval;
    /* image data: a PNG directory or a .npy array instead of the CSV table */
    int images;             /* 1: j->data came from images (no table) */
    int pixels;             /* integer pixels in [0, pixel_max], mapped to [-1, 1] */
    double pixel_max;
    size_t img_c, img_h, img_w;    /* the image shape, 0 when unknown */
    double range_lo, range_hi;     /* the values' range recorded for PNG grids */
    char **image_text;      /* each row's class (--class-dirs, --labels), or NULL */
    const char *label_source;      /* where the labels came from, for messages */
    int stopped_early;
    /* --resume with held-out evaluations: the state the checkpoint's run left (train_loop.c) */
    train_eval *prior_evals;       /* its evaluations (n_prior of them), or NULL */
    size_t n_prior, prior_best;
    double *prior_losses;          /* the training losses of its last n_prior_losses steps */
    size_t n_prior_losses;
    size_t start_step, end_step;   /* the trainer's step counter before and after this run */
    double elapsed;
    uint64_t skipped;
} train_job;

void train_job_free(train_job *j);

/* train_data.c */
int train_data_is_images(const char *path);
int train_load_data(const train_opts *o, train_job *j);
int train_make_labels(const train_opts *o, train_job *j);
int train_split(const train_opts *o, train_job *j);
int train_check_integers(const train_opts *o, train_job *j);
int train_standardize(const train_opts *o, train_job *j);
int train_dequantize_epoch(const train_opts *o, train_job *j, uint64_t epoch);

/* train_setup.c */
int train_load_init(const train_opts *o, train_job *j);
int train_set_up_schedule(const train_opts *o, train_job *j);
int train_set_up_model(const train_opts *o, train_job *j);
int train_set_up_loss(const train_opts *o, train_job *j);
int train_set_up_trainer(const train_opts *o, train_job *j);
double train_time_of_sigma(const score_schedule *s, double sigma);

/* train_loop.c */
int train_run(const train_opts *o, train_job *j);
/* --resume: reads the held-out evaluation state stored next to the checkpoint (when the run
 * evaluates held-out rows) and checks that it belongs to the restored trainer and options. */
int train_load_valid_state(const train_opts *o, train_job *j);

/* train_save.c */
int train_save_model(const train_opts *o, const train_job *j);
int train_plot(const train_opts *o, train_job *j);
void train_print_summary(const train_opts *o, const train_job *j);

#endif /* SCORE_CLI_TRAIN_H */
