/* score train: CSV or a toy dataset -> trained model file (+ optional SVG). */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const cli_name losses[] = {
    {"sde", SCORE_LOSS_SDE, "continuous-time denoising score matching over t ~ U(t_eps, T) (score_sde)"},
    {"dsm", SCORE_LOSS_DSM, "denoising score matching at one noise level (--sigma)"},
    {"ncsn", SCORE_LOSS_NCSN, "multi-level DSM with sigma^2 weighting (NCSN; discrete schedule)"},
    {"ddpm", SCORE_LOSS_DDPM, "noise-prediction MSE over the levels (DDPM; discrete schedule)"},
    {"hyvarinen", SCORE_LOSS_HYVARINEN, "explicit score matching with the exact Jacobian trace"},
    {"sm", SCORE_LOSS_HYVARINEN, "alias of hyvarinen"},
    {"ssm", SCORE_LOSS_SSM, "sliced score matching (--projections)"},
    {"ssm-vr", SCORE_LOSS_SSM_VR, "sliced score matching, variance reduced"},
    {NULL, 0, NULL},
};

static const cli_name weightings[] = {
    {"sigma2", 1, "lambda(t) = sigma^2 (score_sde default)"},
    {"likelihood", 2, "lambda(t) = g^2 (likelihood weighting)"},
    {"likelihood-is", 3, "likelihood weighting with importance-sampled t"},
    {NULL, 0, NULL},
};

static const cli_name activations[] = {
    {"silu", SCORE_ACT_SILU, NULL}, {"softplus", SCORE_ACT_SOFTPLUS, NULL},
    {"tanh", SCORE_ACT_TANH, NULL}, {"elu", SCORE_ACT_ELU, NULL},
    {"gelu", SCORE_ACT_GELU, NULL}, {NULL, 0, NULL},
};

static const cli_name embeddings[] = {
    {"fourier", SCORE_EMBED_FOURIER, NULL}, {"sinusoidal", SCORE_EMBED_SINUSOIDAL, NULL},
    {"none", SCORE_EMBED_NONE, NULL}, {NULL, 0, NULL},
};

static const cli_name optimizers[] = {
    {"adam", SCORE_OPTIMIZER_ADAM, NULL}, {"adamw", SCORE_OPTIMIZER_ADAMW, NULL},
    {"sgd", SCORE_OPTIMIZER_SGD, NULL}, {NULL, 0, NULL},
};

static cli_opt opts[] = {
    {"dataset", 0, 1, "NAME", "built-in toy dataset (see 'score datasets')", NULL},
    {"data", 0, 1, "FILE", "training data, CSV with one point per line ('-' = stdin)", NULL},
    {"n", 'n', 1, "N", "points drawn from a toy dataset [20000]", NULL},
    {"label-column", 0, 1, "NAME", "CSV column (by header name) holding each row's class label, integer or text; trains a class-conditional model", NULL},
    {"p-uncond", 0, 1, "P", "with --label-column: probability that a row's label is dropped (trains the unconditional model too) [0.1]", NULL},
    {"output", 'o', 1, "FILE", "model file to write (safetensors; a regular file or a link to one) [required]", NULL},
    {"loss", 0, 1, "NAME", "sde, dsm, ncsn, ddpm, hyvarinen (sm), ssm, ssm-vr [sde]", NULL},
    {"weighting", 0, 1, "NAME", "sde loss: sigma2, likelihood, likelihood-is [sigma2]", NULL},
    {"sigma", 0, 1, "X", "dsm/hyvarinen/ssm: the one noise level trained [0.1 / t_eps]", NULL},
    {"projections", 0, 1, "M", "ssm, ssm-vr: probes per point [1]", NULL},
    {"schedule", 0, 1, "NAME", "noise schedule or preset, e.g. vp, ve, subvp, ve-toy [vp]", NULL},
    {"sigma-min", 0, 1, "X", "override the schedule's sigma_min (ve, ncsn)", NULL},
    {"sigma-max", 0, 1, "X", "override the schedule's sigma_max (ve, ncsn)", NULL},
    {"beta-min", 0, 1, "X", "override the schedule's beta_min (vp, subvp)", NULL},
    {"beta-max", 0, 1, "X", "override the schedule's beta_max (vp, subvp)", NULL},
    {"levels", 0, 1, "L", "number of levels of a discrete schedule", NULL},
    {"predict", 0, 1, "KIND", "network output: eps, score, x0, v, edm, score-over-sigma [eps]", NULL},
    {"cond", 0, 1, "KIND", "network input c(t): default, t, t-scaled, sigma, log-sigma-4", NULL},
    {"hidden", 0, 1, "N", "MLP width [128]", NULL},
    {"depth", 0, 1, "N", "MLP hidden layers [3]", NULL},
    {"activation", 0, 1, "NAME", "silu, softplus, tanh, elu, gelu [silu]", NULL},
    {"embedding", 0, 1, "NAME", "time embedding: fourier, sinusoidal, none [fourier]", NULL},
    {"embed-dim", 0, 1, "N", "embedding size [32]", NULL},
    {"fourier-scale", 0, 1, "X", "std of the Fourier frequencies [16]", NULL},
    {"optimizer", 0, 1, "NAME", "adam, adamw, sgd [adam]", NULL},
    {"lr", 0, 1, "X", "learning rate [2e-3]", NULL},
    {"warmup", 0, 1, "N", "linear learning-rate warm-up steps [100]", NULL},
    {"clip", 0, 1, "X", "gradient-norm clipping, 0 = off [1]", NULL},
    {"weight-decay", 0, 1, "X", "weight decay [0]", NULL},
    {"steps", 0, 1, "N", "training steps [4000]", NULL},
    {"batch", 0, 1, "N", "minibatch size [256]", NULL},
    {"seed", 0, 1, "N", "seed of the initialisation, data order and noise [0]", NULL},
    {"ema", 0, 1, "X", "EMA decay of the saved weights, 0 = save the raw weights [0.999]", NULL},
    {"no-standardize", 0, 0, NULL, "train on the raw data (default: per-column mean 0, std 1)", NULL},
    {"plot", 0, 1, "FILE.svg", "write the score field over the data and the loss curve", NULL},
    {"dims", 0, 1, "I,J", "columns shown by --plot [1,2]", NULL},
    {"threads", 0, 1, "N", "threads evaluating blocks of rows at a time (results do not depend on it; set OPENBLAS_NUM_THREADS=1) [1]", NULL},
    {"quiet", 'q', 0, NULL, "no progress bar and no summary", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

static const char help_text[] =
    "usage: score train (--dataset NAME | --data FILE.csv) -o MODEL.safetensors [options]\n\n"
    "Trains an MLP score model and saves it with its schedule and parameterization.\n"
    "With --label-column NAME the model is class-conditional: that CSV column (integer or text\n"
    "labels; not standardized, not part of the data) gives each row's class, the sorted distinct\n"
    "values are the classes (stored in the model), and 'score sample --class' picks one.\n\n"
    "options:\n";

/* The help after the options: losses and schedules. */
static void help_names(FILE *f)
{
    fputc('\n', f);
    cli_print_names(f, "losses (--loss)", losses);
    fputc('\n', f);
    cli_print_schedules(f);
}

typedef struct train_ctx {
    cli_progress bar;
    double *losses;
    size_t total;
} train_ctx;

static int on_progress(size_t step, size_t total, double loss, double lr, void *ud)
{
    train_ctx *c = ud;
    (void)lr;
    if (step >= 1 && step <= c->total)
        c->losses[step - 1] = loss;
    cli_progress_update(&c->bar, step, "loss", loss);
    (void)total;
    return 0;
}

/* The time at which the model has EDM noise level sigma (clamped to [t_eps, T]). */
static double time_of_sigma(const score_schedule *s, double sigma)
{
    double T, te, lam[2], tt[2];
    if (score_schedule_get_f64(s, SCORE_SCHEDULE_PARAM_T, &T) != SCORE_OK ||
        score_schedule_get_f64(s, SCORE_SCHEDULE_PARAM_T_EPS, &te) != SCORE_OK)
        return NAN;
    tt[0] = te;
    tt[1] = T;
    if (score_schedule_lambda(s, 2, tt, lam) != SCORE_OK)
        return NAN;
    double l = -log(sigma);
    if (l >= lam[0])
        return te;
    if (l <= lam[1])
        return T;
    double t;
    if (score_schedule_t_of_lambda(s, 1, &l, &t) != SCORE_OK)
        return NAN;
    return t;
}

/* The learned score on an n x n grid over the data's bounding box (other columns at the data
 * mean), in data units: s_x = s_model / scale. */
static int compute_field(const score_genmodel *gm, score_sde *sde, const float *data,
                         size_t nd, size_t cx, size_t cy, double sigma_model, cli_field *f)
{
    size_t dim = score_genmodel_dim(gm), n = 24, m = n * n;
    memset(f, 0, sizeof *f);
    f->n = n;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    cli_bbox(data, nd, dim, cx, cy, &x0, &x1, &y0, &y1);
    cli_bbox_square(&x0, &x1, &y0, &y1, 0.08);
    f->x0 = x0, f->x1 = x1, f->y0 = y0, f->y1 = y1;
    f->gx = malloc(m * sizeof *f->gx);
    f->gy = malloc(m * sizeof *f->gy);
    f->u = malloc(m * sizeof *f->u);
    f->v = malloc(m * sizeof *f->v);
    float *x = calloc(m * dim, sizeof *x), *s = malloc(m * dim * sizeof *s);
    double *t = malloc(m * sizeof *t), *mean = calloc(dim, sizeof *mean);
    double *scale = malloc(dim * sizeof *scale);
    int rc = -1;
    if (!f->gx || !f->gy || !f->u || !f->v || !x || !s || !t || !mean || !scale)
        goto out;
    for (size_t i = 0; i < nd; i++)
        for (size_t j = 0; j < dim; j++)
            mean[j] += data[i * dim + j] / (double)nd;
    f->sigma = sigma_model;
    f->standardized = score_genmodel_get_transform(gm, NULL, scale) == 1;
    f->t = time_of_sigma(score_genmodel_schedule(gm), sigma_model);
    if (!isfinite(f->t))
        goto out;
    for (size_t a = 0; a < n; a++)
        for (size_t b = 0; b < n; b++) {
            size_t k = a * n + b;
            f->gx[k] = x0 + (x1 - x0) * ((double)b + 0.5) / (double)n;
            f->gy[k] = y0 + (y1 - y0) * ((double)a + 0.5) / (double)n;
            for (size_t j = 0; j < dim; j++)
                x[k * dim + j] = (float)mean[j];
            x[k * dim + cx] = (float)f->gx[k];
            x[k * dim + cy] = (float)f->gy[k];
            t[k] = f->t;
        }
    if (score_genmodel_encode(gm, m, x, x) != SCORE_OK || score_sde_score(sde, m, t, x, s) != SCORE_OK) {
        cli_lib_fail(SCORE_E_GENERIC, "score field");
        goto out;
    }
    for (size_t k = 0; k < m; k++) {
        /* s_x = s_model / scale (1 without a transform) */
        f->u[k] = s[k * dim + cx] / scale[cx];
        f->v[k] = s[k * dim + cy] / scale[cy];
    }
    rc = 0;
out:
    free(x);
    free(s);
    free(t);
    free(mean);
    free(scale);
    return rc;
}

static void free_field(cli_field *f)
{
    free(f->gx);
    free(f->gy);
    free(f->u);
    free(f->v);
}

/* ---- the command line ------------------------------------------------------------------- */

/* The options of one run, read and range-checked (defaults in brackets in the help). */
typedef struct train_opts {
    const char *dataset, *datafile, *output, *plot;
    size_t n_points, hidden, depth, embed_dim, steps, batch, warmup, projections, levels;
    uint64_t seed;
    double lr, clip, wd, ema, fscale, sigma, p_uncond;
    const char *label_column;
    int loss_kind, weighting, act, embed, opt_kind, predict, cond;
    int quiet, time_free;
} train_opts;

static int read_train_numbers(train_opts *o)
{
    int rc;
    if ((rc = cli_opt_size(opts, "n", 1, (size_t)1 << 31, &o->n_points)) ||
        (rc = cli_opt_size(opts, "hidden", 1, 65536, &o->hidden)) ||
        (rc = cli_opt_size(opts, "depth", 1, 64, &o->depth)) ||
        (rc = cli_opt_size(opts, "embed-dim", 2, 4096, &o->embed_dim)) ||
        (rc = cli_opt_size(opts, "steps", 1, (size_t)1 << 40, &o->steps)) ||
        (rc = cli_opt_size(opts, "batch", 1, (size_t)1 << 24, &o->batch)) ||
        (rc = cli_opt_size(opts, "warmup", 0, (size_t)1 << 40, &o->warmup)) ||
        (rc = cli_opt_size(opts, "projections", 1, 4096, &o->projections)) ||
        (rc = cli_opt_size(opts, "levels", 2, 1000000, &o->levels)) ||
        (rc = cli_opt_u64(opts, "seed", &o->seed)) ||
        (rc = cli_opt_double(opts, "lr", 0, 1e6, &o->lr)) ||
        (rc = cli_opt_double(opts, "clip", 0, 1e30, &o->clip)) ||
        (rc = cli_opt_double(opts, "weight-decay", 0, 1e6, &o->wd)) ||
        (rc = cli_opt_double(opts, "ema", 0, 1, &o->ema)) ||
        (rc = cli_opt_double(opts, "fourier-scale", 1e-6, 1e4, &o->fscale)) ||
        (rc = cli_opt_double(opts, "sigma", 1e-6, 1e6, &o->sigma)) ||
        (rc = cli_opt_double(opts, "p-uncond", 0, 1, &o->p_uncond)))
        return rc;
    return 0;
}

static int read_train_names(train_opts *o)
{
    int rc;
    if ((rc = cli_opt_lookup(opts, "loss", losses, "loss", &o->loss_kind)) ||
        (rc = cli_opt_lookup(opts, "weighting", weightings, "weighting", &o->weighting)) ||
        (rc = cli_opt_lookup(opts, "activation", activations, "activation", &o->act)) ||
        (rc = cli_opt_lookup(opts, "embedding", embeddings, "embedding", &o->embed)) ||
        (rc = cli_opt_lookup(opts, "optimizer", optimizers, "optimizer", &o->opt_kind)) ||
        (rc = cli_opt_lookup(opts, "predict", cli_outputs, "output kind (--predict)",
                             &o->predict)) ||
        (rc = cli_opt_lookup(opts, "cond", cli_conds, "conditioning (--cond)", &o->cond)))
        return rc;
    return 0;
}

/* Parses the command line into o; prints the help (and sets *help) for --help. */
static int read_train_options(int argc, char **argv, train_opts *o, int *help)
{
    const char *pos[1];
    int npos, rc;
    if ((rc = cli_parse_command(argc, argv, opts, help_text, help_names, pos, 0, 0, &npos,
                                help)) != 0 || *help)
        return rc;
    *o = (train_opts){
        .dataset = cli_opt_get(opts, "dataset"), .datafile = cli_opt_get(opts, "data"),
        .output = cli_opt_get(opts, "output"), .plot = cli_opt_get(opts, "plot"),
        .n_points = 20000, .hidden = 128, .depth = 3, .embed_dim = 32, .steps = 4000,
        .batch = 256, .warmup = 100, .projections = 1, .levels = 0, .seed = 0,
        .lr = 2e-3, .clip = 1.0, .wd = 0.0, .ema = 0.999, .fscale = 16.0, .sigma = 0.0,
        .loss_kind = SCORE_LOSS_SDE, .weighting = 1, .act = SCORE_ACT_SILU,
        .embed = SCORE_EMBED_FOURIER, .opt_kind = SCORE_OPTIMIZER_ADAM,
        .predict = SCORE_OUTPUT_EPS, .cond = SCORE_COND_DEFAULT, .p_uncond = -1,
        .label_column = cli_opt_get(opts, "label-column"),
    };
    if ((o->dataset == NULL) == (o->datafile == NULL))
        return cli_usage_error("give exactly one of --dataset NAME and --data FILE.csv "
                               "(see 'score train --help')");
    if (o->output == NULL)
        return cli_usage_error("missing -o MODEL.safetensors (the model file to write)");
    if ((rc = read_train_numbers(o)) != 0 || (rc = read_train_names(o)) != 0)
        return rc;
    if (o->label_column == NULL && cli_opt_get(opts, "p-uncond") != NULL)
        return cli_usage_error("--p-uncond applies to class-conditional training only (give "
                               "--label-column NAME)");
    if (o->label_column != NULL && o->datafile == NULL)
        return cli_usage_error("--label-column needs --data FILE.csv with a header line");
    o->quiet = cli_opt_flag(opts, "quiet");
    o->time_free = o->loss_kind == SCORE_LOSS_DSM || o->loss_kind == SCORE_LOSS_HYVARINEN ||
                   o->loss_kind == SCORE_LOSS_SSM || o->loss_kind == SCORE_LOSS_SSM_VR;
    if (o->time_free && cli_opt_get(opts, "predict") == NULL)
        o->predict = SCORE_OUTPUT_SCORE;
    return 0;
}

/* ---- one run ---------------------------------------------------------------------------- */

/* What a run holds; train_job_free() releases it. */
typedef struct train_job {
    score_schedule *sched;
    double *shift, *scale;  /* the standardization (x - shift) / scale, NULL with --no-standardize */
    double fixed_t;         /* > 0: the one time a one-noise-level loss trains */
    score_genmodel *gm;     /* the meaning of the model as trained (its network: the initial one) */
    cli_table table;        /* the CSV data (--data) */
    float *data;            /* the data in its own units: table.data, or toy points */
    float *train_x;         /* the data as trained (standardized unless --no-standardize) */
    size_t rows, dim;
    int32_t *labels;        /* the class of each row (--label-column), or NULL */
    char **class_names;     /* the K sorted distinct label values */
    size_t num_classes;
    score_model *model;
    score_model *final;     /* the saved weights: model, or the trainer's EMA model */
    score_sde *sde;
    score_loss *loss;
    score_trainer *tr;
    train_ctx ctx;          /* progress bar and loss history */
    double elapsed;
    uint64_t skipped;
} train_job;

static void train_job_free(train_job *j)
{
    score_trainer_free(j->tr);
    score_loss_free(j->loss);
    score_sde_free(j->sde);
    score_model_free(j->model);
    score_genmodel_free(j->gm);
    score_schedule_free(j->sched);
    free(j->shift);
    free(j->scale);
    free(j->ctx.losses);
    free(j->train_x);
    free(j->labels);
    for (size_t k = 0; j->class_names != NULL && k < j->num_classes; k++)
        free(j->class_names[k]);
    free(j->class_names);
    if (j->table.data != NULL)
        cli_table_free(&j->table);
    else
        free(j->data);
}

/* The schedule: a name or preset, the overrides (--sigma-min, ...), --levels; checked against
 * the loss. */
static int set_up_schedule(const train_opts *o, train_job *j)
{
    static const struct { const char *opt; int id; } ov[] = {
        {"sigma-min", SCORE_SCHEDULE_PARAM_SIGMA_MIN}, {"sigma-max", SCORE_SCHEDULE_PARAM_SIGMA_MAX},
        {"beta-min", SCORE_SCHEDULE_PARAM_BETA_MIN}, {"beta-max", SCORE_SCHEDULE_PARAM_BETA_MAX},
    };
    const char *name = cli_opt_get(opts, "schedule");
    int rc;
    if ((rc = cli_schedule_from_name(name ? name : "vp", &j->sched)) != 0)
        return rc;
    for (size_t i = 0; i < sizeof ov / sizeof ov[0]; i++) {
        double x;
        if (cli_opt_get(opts, ov[i].opt) == NULL)
            continue;
        if ((rc = cli_opt_double(opts, ov[i].opt, 0, 1e10, &x)) != 0)
            return rc;
        if ((rc = score_schedule_set_f64(j->sched, ov[i].id, x)) != SCORE_OK)
            return rc == SCORE_E_UNSUPPORTED
                       ? cli_usage_error("--%s does not apply to the %s schedule", ov[i].opt,
                                         score_schedule_name(j->sched))
                       : cli_lib_fail(rc, ov[i].opt);
    }
    if (o->levels && (rc = score_schedule_set_i64(j->sched, SCORE_SCHEDULE_PARAM_NUM_LEVELS,
                                                  (int64_t)o->levels)) != SCORE_OK)
        return cli_lib_fail(rc, "--levels");
    if ((rc = score_schedule_prepare(j->sched)) != SCORE_OK)
        return cli_lib_fail(rc, "schedule");
    if ((o->loss_kind == SCORE_LOSS_NCSN || o->loss_kind == SCORE_LOSS_DDPM) &&
        score_schedule_is_discrete(j->sched) != 1)
        return cli_usage_error("--loss %s needs a discrete schedule (--schedule ncsn, "
                               "ddpm-linear, ddpm-cosine, ...); with the continuous %s "
                               "schedule use --loss sde", cli_name_of(losses, o->loss_kind),
                               score_schedule_name(j->sched));
    return 0;
}

/* The training points: the CSV file, or n points of the toy dataset (stream 1 of the seed). */
static int load_training_data(const train_opts *o, train_job *j)
{
    char err[512];
    int rc;
    if (o->datafile != NULL) {
        if (cli_csv_read_ex(o->datafile, o->label_column, &j->table, err, sizeof err) != 0)
            return cli_fail("%s", err);
        j->rows = j->table.rows;
        j->dim = j->table.cols;
        j->data = j->table.data;
        return 0;
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
    return 0;
}

/* --label-column: the classes of the column (cli_class_labels_make()). */
static int make_labels(const train_opts *o, train_job *j)
{
    cli_class_labels c;
    int rc;
    if (o->label_column == NULL)
        return 0;
    if ((rc = cli_class_labels_make(j->table.text, j->rows, o->label_column,
                                    "a class-conditional model", &c)) != 0)
        return rc;
    j->labels = c.labels;
    j->class_names = c.names;
    j->num_classes = c.num_classes;
    return 0;
}

/* The points as trained: a copy of the data, standardized per column (mean 0, sample standard
 * deviation 1; a constant column keeps scale 1) unless --no-standardize. */
static int standardize_data(train_job *j)
{
    size_t rows = j->rows, dim = j->dim;
    j->train_x = malloc(rows * dim * sizeof *j->train_x);
    if (j->train_x == NULL)
        return cli_fail("out of memory");
    memcpy(j->train_x, j->data, rows * dim * sizeof *j->train_x);
    if (cli_opt_flag(opts, "no-standardize"))
        return 0;
    j->shift = calloc(dim, sizeof *j->shift);
    j->scale = calloc(dim, sizeof *j->scale);
    if (j->shift == NULL || j->scale == NULL)
        return cli_fail("out of memory");
    const float *data = j->data;
    for (size_t c = 0; c < dim; c++) {
        double m = 0, q = 0;
        for (size_t i = 0; i < rows; i++)
            m += data[i * dim + c];
        m /= (double)rows;
        for (size_t i = 0; i < rows; i++)
            q += (data[i * dim + c] - m) * (data[i * dim + c] - m);
        double sd = rows > 1 ? sqrt(q / (double)(rows - 1)) : 0.0;
        j->shift[c] = m;
        j->scale[c] = sd > 1e-12 * (1.0 + fabs(m)) ? sd : 1.0;   /* constant column */
    }
    return 0;
}

/* The MLP (width, depth, activation, time embedding, threads) and its sde. */
static int set_up_model(const train_opts *o, train_job *j)
{
    int rc;
    if ((rc = score_model_new_mlp(&j->model, j->dim, o->hidden, o->depth, o->act, o->seed)) !=
            SCORE_OK ||
        (rc = score_model_set_i64(j->model, SCORE_MODEL_PARAM_EMBEDDING, o->embed)) != SCORE_OK ||
        (o->embed != SCORE_EMBED_NONE &&
         (rc = score_model_set_i64(j->model, SCORE_MODEL_PARAM_EMBED_DIM,
                                   (int64_t)o->embed_dim)) != SCORE_OK) ||
        (o->embed == SCORE_EMBED_FOURIER &&
         (rc = score_model_set_f64(j->model, SCORE_MODEL_PARAM_FOURIER_SCALE, o->fscale)) !=
             SCORE_OK) ||
        (j->num_classes > 0 &&
         (rc = score_model_set_i64(j->model, SCORE_MODEL_PARAM_NUM_CLASSES,
                                   (int64_t)j->num_classes)) != SCORE_OK) ||
        (rc = score_model_prepare(j->model)) != SCORE_OK)
        return cli_lib_fail(rc, "model");
    if ((rc = cli_model_threads(opts, j->model)) != 0)
        return rc;
    if ((rc = score_sde_new(&j->sde, j->sched, j->model, o->predict)) != SCORE_OK ||
        (rc = score_sde_set_i64(j->sde, SCORE_SDE_PARAM_COND, o->cond)) != SCORE_OK)
        return cli_lib_fail(rc, "sde");
    /* the meaning of the model (the library's object), and the points in its units */
    if ((rc = score_genmodel_new(&j->gm, j->sde)) != SCORE_OK ||
        (rc = score_genmodel_set_transform(j->gm, j->shift, j->scale)) != SCORE_OK ||
        (rc = score_genmodel_encode(j->gm, j->rows, j->train_x, j->train_x)) != SCORE_OK)
        return cli_lib_fail(rc, "generative model");
    return 0;
}

/* The loss and its options; a time-free loss records the one time it trains in j->fixed_t. */
static int set_up_loss(const train_opts *o, train_job *j)
{
    score_schedule *sched = j->sched;
    double te;
    int rc;
    if ((rc = score_loss_new(&j->loss, o->loss_kind)) != SCORE_OK)
        return cli_lib_fail(rc, "score_loss_new");
    if (o->loss_kind == SCORE_LOSS_SDE) {
        rc = o->weighting == 3
                 ? score_loss_set_i64(j->loss, SCORE_LOSS_PARAM_IMPORTANCE, 1)
                 : score_loss_set_i64(j->loss, SCORE_LOSS_PARAM_WEIGHTING, o->weighting);
        if (rc == SCORE_OK &&
            score_schedule_get_f64(sched, SCORE_SCHEDULE_PARAM_T_EPS, &te) == SCORE_OK)
            rc = score_loss_set_f64(j->loss, SCORE_LOSS_PARAM_T_EPS, fmin(te, 1e-5));
    } else if (cli_opt_get(opts, "weighting") != NULL) {
        return cli_usage_error("--weighting applies to --loss sde only");
    }
    if (rc == SCORE_OK && (o->loss_kind == SCORE_LOSS_SSM || o->loss_kind == SCORE_LOSS_SSM_VR))
        rc = score_loss_set_i64(j->loss, SCORE_LOSS_PARAM_PROJECTIONS, (int64_t)o->projections);
    if (rc == SCORE_OK && o->time_free) {
        rc = score_schedule_get_f64(sched, SCORE_SCHEDULE_PARAM_T_EPS, &te);
        if (rc == SCORE_OK) {
            j->fixed_t = o->sigma > 0 ? time_of_sigma(sched, o->sigma)
                                          : (o->loss_kind == SCORE_LOSS_DSM
                                                 ? time_of_sigma(sched, 0.1) : te);
            rc = score_loss_set_f64(j->loss, SCORE_LOSS_PARAM_TIME, j->fixed_t);
        }
    } else if (rc == SCORE_OK && cli_opt_get(opts, "sigma") != NULL) {
        return cli_usage_error("--sigma applies to the one-level losses (dsm, hyvarinen, ssm, "
                               "ssm-vr)");
    }
    return rc == SCORE_OK ? 0 : cli_lib_fail(rc, "loss");
}

/* The trainer: batch, seed, EMA and the optimizer's options, over the standardized points. */
static int set_up_trainer(const train_opts *o, train_job *j)
{
    int rc;
    if ((rc = score_trainer_new(&j->tr, j->model, j->sde, j->loss, o->opt_kind)) != SCORE_OK)
        return cli_lib_fail(rc, "score_trainer_new");
    score_trainer *tr = j->tr;
    score_optimizer *opt = score_trainer_optimizer(tr);
    int64_t seed = (int64_t)(o->seed & ((1ull << 62) - 1));
    if ((rc = score_trainer_set_i64(tr, SCORE_TRAINER_PARAM_BATCH_SIZE, (int64_t)o->batch)) ||
        (rc = score_trainer_set_i64(tr, SCORE_TRAINER_PARAM_SEED, seed)) ||
        (rc = score_trainer_set_i64(tr, SCORE_TRAINER_PARAM_USE_EMA, o->ema > 0)) ||
        (o->ema > 0 &&
         (rc = score_ema_set_f64(score_trainer_ema(tr), SCORE_EMA_PARAM_DECAY, o->ema))) ||
        (rc = score_optimizer_set_f64(opt, SCORE_OPTIMIZER_PARAM_LR, o->lr)) ||
        (rc = score_optimizer_set_i64(opt, SCORE_OPTIMIZER_PARAM_WARMUP, (int64_t)o->warmup)) ||
        (rc = score_optimizer_set_f64(opt, SCORE_OPTIMIZER_PARAM_GRAD_CLIP, o->clip)) ||
        (rc = score_optimizer_set_f64(opt, SCORE_OPTIMIZER_PARAM_WEIGHT_DECAY, o->wd)) ||
        (rc = score_trainer_set_data(tr, j->rows, j->dim, j->train_x)) != SCORE_OK ||
        (j->labels != NULL &&
         (rc = score_trainer_set_labels(tr, j->rows, j->labels)) != SCORE_OK) ||
        (o->p_uncond >= 0 &&
         (rc = score_trainer_set_f64(tr, SCORE_TRAINER_PARAM_P_UNCOND, o->p_uncond)) != SCORE_OK))
        return cli_lib_fail(rc, "trainer");
    return 0;
}

/* The training loop with its progress bar and loss history; then the weights to save. */
static int run_training(const train_opts *o, train_job *j)
{
    size_t steps = o->steps;
    int rc;
    j->ctx.total = steps;
    j->ctx.losses = malloc(steps * sizeof *j->ctx.losses);
    if (j->ctx.losses == NULL)
        return cli_fail("out of memory (loss history of %zu steps)", steps);
    for (size_t i = 0; i < steps; i++)
        j->ctx.losses[i] = NAN;
    cli_progress_start(&j->ctx.bar, "train", steps, o->quiet);
    double t0 = cli_now();
    rc = score_trainer_run(j->tr, steps, on_progress, &j->ctx);
    j->elapsed = cli_now() - t0;
    cli_progress_finish(&j->ctx.bar);
    if (rc != SCORE_OK)
        return cli_lib_fail(rc, "training");
    if (score_trainer_get_skipped(j->tr, &j->skipped) != SCORE_OK)
        j->skipped = 0;
    if (o->ema <= 0) {
        j->final = j->model;
        return 0;
    }
    if ((rc = score_trainer_ema_model(j->tr, &j->final)) != SCORE_OK)
        return cli_lib_fail(rc, "EMA weights");
    return 0;
}

/* The mean of the finite values of x[0..n) (NaN when there is none). */
static double mean_finite(const double *x, size_t n)
{
    double sum = 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(x[i]))
            sum += x[i], k++;
    return k ? sum / (double)k : NAN;
}

/* The mean loss of the first and of the last `tail` steps (at most 100). */
static size_t loss_ends(const train_opts *o, const train_job *j, double *first, double *last)
{
    size_t tail = o->steps < 100 ? o->steps : 100;
    *last = mean_finite(j->ctx.losses + (o->steps - tail), tail);
    *first = mean_finite(j->ctx.losses, tail);
    return tail;
}

/* The descriptive record of the training run (user metadata: it carries no meaning). */
static int record_training(const train_opts *o, const train_job *j, score_model *m)
{
    char v[64];
    double first, last;
    loss_ends(o, j, &first, &last);
    struct { const char *key; const char *value; } e[] = {
        {"score.train.loss", cli_name_of(losses, o->loss_kind)},
        {"score.train.data", o->datafile ? o->datafile : o->dataset},
        {"score.train.optimizer", cli_name_of(optimizers, o->opt_kind)},
        {"score.train.weighting",
         o->loss_kind == SCORE_LOSS_SDE ? cli_name_of(weightings, o->weighting) : NULL},
    };
    for (size_t i = 0; i < sizeof e / sizeof e[0]; i++)
        if (e[i].value != NULL && score_model_set_metadata(m, e[i].key, e[i].value) != SCORE_OK)
            return -1;
#define REC(key, ...) \
    (snprintf(v, sizeof v, __VA_ARGS__), score_model_set_metadata(m, "score.train." key, v))
    if (REC("rows", "%zu", j->rows) || REC("steps", "%zu", o->steps) ||
        REC("batch", "%zu", o->batch) || REC("lr", "%g", o->lr) || REC("ema", "%g", o->ema) ||
        REC("seed", "%llu", (unsigned long long)o->seed) || REC("final_loss", "%.6g", last) ||
        REC("seconds", "%.2f", j->elapsed))
        return -1;
#undef REC
    return 0;
}

/* The column names stored in the model: the CSV header, x1 .. xd for a toy dataset, none for
 * a CSV without header. */
static int set_column_names(const train_job *j, score_genmodel *gm)
{
    if (j->table.data != NULL)
        return j->table.names == NULL
                   ? SCORE_OK
                   : score_genmodel_set_names(gm, SCORE_GENMODEL_NAMES_COLUMNS, j->dim,
                                              (const char *const *)j->table.names);
    char **names = calloc(j->dim, sizeof *names), *buf = malloc(j->dim * 24);
    int rc = SCORE_E_NOMEM;
    if (names != NULL && buf != NULL) {
        for (size_t c = 0; c < j->dim; c++) {
            names[c] = buf + 24 * c;
            snprintf(names[c], 24, "x%zu", c + 1);
        }
        rc = score_genmodel_set_names(gm, SCORE_GENMODEL_NAMES_COLUMNS, j->dim,
                                      (const char *const *)names);
    }
    free(names);
    free(buf);
    return rc;
}

/* Writes the generative model of the saved weights (score_genmodel_save()): the meaning of
 * j->gm with the final network, the fixed time, the column names and the training record. */
static int save_model(const train_opts *o, const train_job *j)
{
    score_model *net = NULL;
    score_genmodel *gm = NULL;
    int rc;
    if ((rc = score_model_clone(&net, j->final)) != SCORE_OK)
        return cli_lib_fail(rc, "model");
    if (record_training(o, j, net) != 0) {
        score_model_free(net);
        return cli_lib_fail(SCORE_E_NOMEM, "training record");
    }
    if ((rc = score_sde_set_model(j->sde, net)) == SCORE_OK)
        rc = score_genmodel_new(&gm, j->sde);
    if (score_sde_set_model(j->sde, j->final) != SCORE_OK && rc == SCORE_OK)
        rc = SCORE_E_GENERIC;
    score_model_free(net);
    if (rc == SCORE_OK && j->shift != NULL)
        rc = score_genmodel_set_transform(gm, j->shift, j->scale);
    if (rc == SCORE_OK)
        rc = score_genmodel_set_fixed_t(gm, j->fixed_t);
    if (rc == SCORE_OK)
        rc = set_column_names(j, gm);
    if (rc == SCORE_OK && j->num_classes > 0)
        rc = score_genmodel_set_names(gm, SCORE_GENMODEL_NAMES_LABELS, j->num_classes,
                                      (const char *const *)j->class_names);
    if (rc != SCORE_OK) {
        score_genmodel_free(gm);
        return cli_lib_fail(rc, "generative model");
    }
    rc = score_genmodel_save(gm, o->output);
    score_genmodel_free(gm);
    if (rc != SCORE_OK)
        return cli_fail("cannot %s '%s': %s", rc == SCORE_E_IO ? "write" : "save the model to",
                        o->output, score_last_error_message());
    return 0;
}

/* --plot: the learned score field over the data, and the loss curve. */
static int plot_training(const train_opts *o, train_job *j)
{
    char err[512], title[256];
    size_t cx, cy;
    int rc;
    if (o->plot == NULL)
        return 0;
    if ((rc = cli_parse_dims(cli_opt_get(opts, "dims"), j->dim, &cx, &cy)) != 0)
        return rc;
    if ((rc = score_sde_set_model(j->sde, j->final)) != SCORE_OK)
        return cli_lib_fail(rc, "score_sde_set_model");
    /* the field at a noise level of a quarter of the (standardized) data scale, or at the one
     * level a time-free loss trained */
    double fs = 0.25, tf = j->fixed_t;
    if (tf > 0) {
        double a, sg;
        if (score_schedule_alpha_sigma(j->sched, 1, &tf, &a, &sg) == SCORE_OK)
            fs = sg / a;
    }
    cli_field field;
    if (compute_field(j->gm, j->sde, j->data, j->rows, cx, cy, fs, &field) != 0) {
        free_field(&field);
        return cli_fail("cannot evaluate the score field for --plot");
    }
    snprintf(title, sizeof title, "score train: %s, %s loss, %s schedule, %zu steps",
             o->datafile ? o->datafile : o->dataset, cli_name_of(losses, o->loss_kind),
             score_schedule_name(j->sched), o->steps);
    rc = cli_plot_training(o->plot, j->data, j->rows, j->dim, cx, cy,
                           (const char *const *)j->table.names, &field, j->ctx.losses, o->steps,
                           title, err, sizeof err);
    free_field(&field);
    return rc != 0 ? cli_fail("%s", err) : 0;
}

/* The two summary lines on stderr (unless --quiet). */
static void print_summary(const train_opts *o, const train_job *j)
{
    double first, last;
    size_t tail = loss_ends(o, j, &first, &last);
    if (o->quiet)
        return;
    fprintf(stderr,
            "trained %zu steps (batch %zu, %zu rows, dim %zu) in %.1f s: loss %.4g -> %.4g "
            "(mean of first/last %zu steps)%s\n",
            o->steps, o->batch, j->rows, j->dim, j->elapsed, first, last, tail,
            j->skipped ? " [some steps skipped: non-finite loss]" : "");
    if (j->num_classes > 0)
        fprintf(stderr, "class labels from column '%s': %zu classes (%s, %s%s)\n",
                o->label_column, j->num_classes, j->class_names[0],
                j->num_classes > 2 ? "..., " : "",
                j->class_names[j->num_classes - 1]);
    fprintf(stderr, "saved %s (%s weights, %zu parameters)%s%s\n", o->output,
            o->ema > 0 ? "EMA" : "raw", score_model_param_count(j->final),
            o->plot ? "; plot " : "", o->plot ? o->plot : "");
}

int cli_cmd_train(int argc, char **argv)
{
    train_opts o;
    train_job j;
    int help, rc;
    if ((rc = read_train_options(argc, argv, &o, &help)) != 0 || help)
        return rc;
    memset(&j, 0, sizeof j);
    if ((rc = set_up_schedule(&o, &j)) == 0 && (rc = load_training_data(&o, &j)) == 0 &&
        (rc = make_labels(&o, &j)) == 0 &&
        (rc = standardize_data(&j)) == 0 && (rc = set_up_model(&o, &j)) == 0 &&
        (rc = set_up_loss(&o, &j)) == 0 && (rc = set_up_trainer(&o, &j)) == 0 &&
        (rc = run_training(&o, &j)) == 0 && (rc = save_model(&o, &j)) == 0 &&
        (rc = plot_training(&o, &j)) == 0)
        print_summary(&o, &j);
    train_job_free(&j);
    return rc;
}
