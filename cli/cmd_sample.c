/* score sample (model -> CSV of samples, or a PNG grid of image samples) and score loglik
 * (model + CSV -> log-likelihoods). */
#include "cli.h"

#include "images.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Samplers by the names users know from score_sde / k-diffusion / diffusers: a predictor step
 * type, an optional corrector and a default grid (the library's presets are these too). */
typedef struct sampler_def {
    const char *name;
    const char *predictor;   /* step type name (NULL: the one-level Langevin loop) */
    const char *corrector;   /* step type name or NULL */
    size_t steps;            /* default --steps */
    int grid;                /* default grid */
    const char *help;
} sampler_def;

static const sampler_def samplers[] = {
    {"pc", "reverse-diffusion", "langevin", 1000, SCORE_GRID_UNIFORM_T,
     "predictor-corrector: reverse diffusion + Langevin, snr 0.16 (score_sde)"},
    {"ode", "dopri5", NULL, 1000, SCORE_GRID_UNIFORM_T,
     "probability-flow ODE, adaptive Dormand-Prince 5(4), rtol = atol = 1e-5 (score_sde)"},
    {"ald", "none", "ald", 200, SCORE_GRID_UNIFORM_LAMBDA,
     "annealed Langevin dynamics over geometric noise levels (NCSN), 2 steps per level"},
    {"edm", "heun", NULL, 18, SCORE_GRID_KARRAS,
     "EDM: Heun on the Karras grid, 18 steps (Karras et al. 2022)"},
    {"euler", "euler", NULL, 100, SCORE_GRID_KARRAS, "probability-flow ODE, Euler (k-diffusion)"},
    {"heun", "heun", NULL, 40, SCORE_GRID_KARRAS, "probability-flow ODE, Heun (EDM Algorithm 2)"},
    {"midpoint", "midpoint", NULL, 40, SCORE_GRID_KARRAS, "probability-flow ODE, midpoint rule"},
    {"rk4", "rk4", NULL, 25, SCORE_GRID_KARRAS, "probability-flow ODE, classical Runge-Kutta"},
    {"dopri5", "dopri5", NULL, 1000, SCORE_GRID_UNIFORM_T,
     "probability-flow ODE, adaptive Dormand-Prince (--rtol, --atol)"},
    {"em", "em", NULL, 1000, SCORE_GRID_UNIFORM_T, "reverse SDE, Euler-Maruyama (score_sde)"},
    {"reverse-diffusion", "reverse-diffusion", NULL, 1000, SCORE_GRID_UNIFORM_T,
     "reverse-diffusion predictor alone (score_sde)"},
    {"ancestral", "ancestral", NULL, 1000, SCORE_GRID_UNIFORM_T,
     "ancestral sampling (DDPM / SMLD forms, score_sde)"},
    {"euler-ancestral", "euler-ancestral", NULL, 100, SCORE_GRID_KARRAS,
     "Euler ancestral, eta = 1 (k-diffusion)"},
    {"ddim", "ddim", NULL, 50, SCORE_GRID_UNIFORM_T, "DDIM, eta = 0 (--eta for stochastic)"},
    {"dpm-solver-1", "dpm-solver-1", NULL, 20, SCORE_GRID_UNIFORM_LAMBDA, "DPM-Solver-1"},
    {"dpm-solver-2", "dpm-solver-2", NULL, 20, SCORE_GRID_UNIFORM_LAMBDA, "DPM-Solver-2, singlestep"},
    {"dpm-solver-3", "dpm-solver-3", NULL, 20, SCORE_GRID_UNIFORM_LAMBDA, "DPM-Solver-3, singlestep"},
    {"dpmpp-2m", "dpmpp-2m", NULL, 20, SCORE_GRID_UNIFORM_LAMBDA, "DPM-Solver++(2M), multistep"},
    {"dpmpp-3m", "dpmpp-3m", NULL, 20, SCORE_GRID_UNIFORM_LAMBDA, "DPM-Solver++(3M), multistep"},
    {"dpmpp-2m-sde", "dpmpp-2m-sde", NULL, 50, SCORE_GRID_UNIFORM_LAMBDA,
     "DPM-Solver++(2M) SDE, eta = 1"},
    {"dpm-adaptive", "dpm-solver-23", NULL, 20, SCORE_GRID_UNIFORM_LAMBDA,
     "adaptive DPM-Solver-2/3 (--rtol, --atol)"},
    {"dpmpp-2s", "dpmpp-2s", NULL, 10, SCORE_GRID_UNIFORM_LAMBDA,
     "DPM-Solver++(2S), singlestep, 2 evaluations per step"},
    {"dpmpp-3s", "dpmpp-3s", NULL, 7, SCORE_GRID_UNIFORM_LAMBDA,
     "DPM-Solver++(3S), singlestep, 3 evaluations per step"},
    {"lms", "lms", NULL, 20, SCORE_GRID_KARRAS, "linear multistep, order 4 (k-diffusion LMS)"},
    {"deis", "deis", NULL, 20, SCORE_GRID_KARRAS, "DEIS multistep, order 3 (diffusers' DEIS)"},
    {"unipc", "unipc", NULL, 20, SCORE_GRID_UNIFORM_LAMBDA,
     "UniPC multistep with the UniC corrector, order 3, B(h) = expm1(h)"},
    {"unipc-bh1", "unipc-bh1", NULL, 20, SCORE_GRID_UNIFORM_LAMBDA,
     "UniPC as unipc with B(h) = h"},
    {"dpm-2-ancestral", "dpm-2-ancestral", NULL, 30, SCORE_GRID_KARRAS,
     "DPM-2 ancestral, eta = 1, 2 evaluations per step (k-diffusion)"},
    {"dpmpp-2s-ancestral", "dpmpp-2s-ancestral", NULL, 30, SCORE_GRID_KARRAS,
     "DPM-Solver++(2S) ancestral, eta = 1, 2 evaluations per step (k-diffusion)"},
    {"dpmpp-sde", "dpmpp-sde", NULL, 30, SCORE_GRID_KARRAS,
     "stochastic DPM-Solver++, r = 1/2, eta = 1, 2 evaluations per step (k-diffusion)"},
    {"dpmpp-3m-sde", "dpmpp-3m-sde", NULL, 50, SCORE_GRID_KARRAS,
     "DPM-Solver++(3M) SDE, eta = 1 (k-diffusion)"},
    {"restart", "restart", NULL, 20, SCORE_GRID_KARRAS,
     "Restart: Heun + 2 restarts of 9 Heun steps over s in [0.1, 2] (Xu et al. 2023)"},
    {"dpm_2_ancestral", "dpm-2-ancestral", NULL, 30, SCORE_GRID_KARRAS,
     "= dpm-2-ancestral (k-diffusion name)"},
    {"dpmpp_2s_ancestral", "dpmpp-2s-ancestral", NULL, 30, SCORE_GRID_KARRAS,
     "= dpmpp-2s-ancestral (k-diffusion name)"},
    {"dpmpp_sde", "dpmpp-sde", NULL, 30, SCORE_GRID_KARRAS, "= dpmpp-sde (k-diffusion name)"},
    {"dpmpp_3m_sde", "dpmpp-3m-sde", NULL, 50, SCORE_GRID_KARRAS,
     "= dpmpp-3m-sde (k-diffusion name)"},
    {"euler_a", "euler-ancestral", NULL, 100, SCORE_GRID_KARRAS, "= euler-ancestral (k-diffusion name)"},
    {"dpmpp_2m", "dpmpp-2m", NULL, 20, SCORE_GRID_UNIFORM_LAMBDA, "= dpmpp-2m (k-diffusion name)"},
    {"dpmpp_2m_sde", "dpmpp-2m-sde", NULL, 50, SCORE_GRID_UNIFORM_LAMBDA,
     "= dpmpp-2m-sde (k-diffusion name)"},
    {"dpm_2", "dpm-solver-2", NULL, 20, SCORE_GRID_UNIFORM_LAMBDA, "= dpm-solver-2 (k-diffusion DPM-2)"},
    {"dpm_adaptive", "dpm-solver-23", NULL, 20, SCORE_GRID_UNIFORM_LAMBDA,
     "= dpm-adaptive (k-diffusion name)"},
    {"dpmpp_3m", "dpmpp-3m", NULL, 20, SCORE_GRID_UNIFORM_LAMBDA, "= dpmpp-3m (k-diffusion name)"},
    {"uni_pc", "unipc-bh1", NULL, 20, SCORE_GRID_UNIFORM_LAMBDA, "= unipc-bh1 (UniPC, B(h) = h)"},
    {"uni_pc_bh2", "unipc", NULL, 20, SCORE_GRID_UNIFORM_LAMBDA, "= unipc (UniPC, B(h) = expm1(h))"},
    {"langevin", NULL, NULL, 1000, 0,
     "Langevin MCMC at one noise level (models trained by dsm/hyvarinen/ssm)"},
    {NULL, NULL, NULL, 0, 0, NULL},
};

static const cli_name grids[] = {
    {"uniform-t", SCORE_GRID_UNIFORM_T, "uniform in t (score_sde)"},
    {"uniform-lambda", SCORE_GRID_UNIFORM_LAMBDA, "uniform in log-SNR (DPM-Solver 'logSNR')"},
    {"karras", SCORE_GRID_KARRAS, "Karras et al. rho = 7"},
    {"exponential", SCORE_GRID_EXPONENTIAL, "uniform in log sigma"},
    {"polyexponential", SCORE_GRID_POLYEXPONENTIAL, "k-diffusion polyexponential"},
    {"quadratic", SCORE_GRID_QUADRATIC, "quadratic in t (DPM-Solver 'time_quadratic')"},
    {NULL, 0, NULL},
};

static const cli_name obs_methods[] = {
    {"replace", SCORE_OBS_METHOD_DEFAULT, "replacement by the noised known values (score_sde)"},
    {"moment", SCORE_OBS_METHOD_MOMENT, "the moment method (Tweedie covariance)"},
    {NULL, 0, NULL},
};

/* --order-sequence: DPM-Solver-fast's order sequence for a budget of evaluations
 * (SCORE_SAMPLER_PARAM_ORDER_SEQUENCE); "auto" is resolved against the grid later. */
#define ORDER_SEQ_AUTO (-1)
static const cli_name order_seqs[] = {
    {"off", 0, "--steps steps of the sampler's order"},
    {"auto", ORDER_SEQ_AUTO, "DPM-Solver's choice: 'steps' on the uniform-lambda grid, 'cumulative' on the others"},
    {"steps", 1, "the K steps end at the points of the grid of K steps"},
    {"cumulative", 2, "the K steps end at the points of the grid of --steps steps at the cumulative orders"},
    {NULL, 0, NULL},
};

static const cli_name correctors[] = {
    {"none", 0, NULL}, {"langevin", SCORE_STEP_LANGEVIN, NULL}, {"ald", SCORE_STEP_ALD, NULL},
    {"mala", SCORE_STEP_MALA, NULL}, {NULL, 0, NULL},
};

/* A name of the table, or any spelling score_step_type_find() accepts (k-diffusion, diffusers)
 * of a step type the table runs as a predictor without corrector. */
static const sampler_def *find_sampler(const char *name)
{
    const score_step_type *t;
    for (const sampler_def *s = samplers; s->name; s++)
        if (strcmp(s->name, name) == 0)
            return s;
    t = score_step_type_find(name);
    if (t == NULL)
        return NULL;
    for (const sampler_def *s = samplers; s->name; s++)
        if (s->predictor != NULL && s->corrector == NULL &&
            strcmp(s->predictor, score_step_type_name(t)) == 0)
            return s;
    return NULL;
}

/* The help after the options: samplers and grids. */
static void print_samplers(FILE *f)
{
    fputc('\n', f);
    fprintf(f, "samplers (--sampler NAME; default steps in brackets):\n");
    for (const sampler_def *s = samplers; s->name; s++)
        fprintf(f, "  %-18s %s [%zu]\n", s->name, s->help, s->steps);
    fputc('\n', f);
    cli_print_names(f, "grids (--grid)", grids);
}

static int unknown_sampler(const char *name)
{
    char list[1024];
    cli_join_names(samplers, sizeof *samplers, list, sizeof list);
    return cli_usage_error("unknown sampler '%s' (valid: %s)", name, list);
}

/* Reference points for --plot and the distance: a CSV, or fresh points of the toy dataset the
 * model was trained on. *label receives a description. */
static int load_reference(const char *ref, const cli_meta *meta, size_t dim, uint64_t seed,
                          cli_table *t, char *label, size_t label_len)
{
    char err[512];
    memset(t, 0, sizeof *t);
    if (ref != NULL) {
        if (cli_csv_read(ref, t, err, sizeof err) != 0)
            return cli_fail("%s", err);
        if (t->cols != dim) {
            cli_fail("%s has %zu columns but the model's dimension is %zu", ref, t->cols, dim);
            cli_table_free(t);
            return CLI_EXIT_FAILURE;
        }
        snprintf(label, label_len, "%s (%zu rows)", ref, t->rows);
        return 0;
    }
    const char *ds = cli_meta_get(meta, "score.train.data");
    if (ds == NULL || score_dataset_toy_dim(ds) != dim)
        return 0;
    size_t n = 5000;
    /* stream 2: independent of the training points (stream 1) */
    if (cli_toy_points(ds, n, seed, 2, &t->data) != SCORE_OK)
        return cli_fail("cannot draw reference points of '%s'", ds);
    t->rows = n;
    t->cols = dim;
    snprintf(label, label_len, "%s (%zu fresh points)", ds, n);
    return 0;
}

/* ---- sample --------------------------------------------------------------------------- */

static cli_opt s_opts[] = {
    {"output", 'o', 1, "FILE", "CSV file for the samples ['-' = stdout, the default]", NULL},
    {"sampler", 0, 1, "NAME", "sampler (list below) [pc]", NULL},
    {"steps", 0, 1, "N", "number of steps [per sampler]", NULL},
    {"n", 'n', 1, "N", "number of samples [1000]", NULL},
    {"seed", 0, 1, "N", "seed of the noise [0]", NULL},
    {"grid", 0, 1, "NAME", "time grid [per sampler]", NULL},
    {"no-denoise", 0, 0, NULL, "stop at t_eps instead of a final denoising step to t = 0", NULL},
    {"order", 0, 1, "K", "cap the predictor's order at K = 1, 2 or 3 [the sampler's order]", NULL},
    {"order-sequence", 0, 1, "NAME", "singlestep DPM-Solver samplers (dpm-solver-1/2/3, dpmpp-2s, dpmpp-3s): --steps is a budget of model evaluations, spent in steps of the predictor's order and a last one or two of lower order so that the orders sum to it (DPM-Solver-fast); NAME = auto (DPM-Solver's choice of step ends for the grid), steps, cumulative, off [off]", NULL},
    {"no-lower-order-final", 0, 0, NULL, "multistep samplers (dpmpp-2m, dpmpp-3m, deis, unipc...): keep the full order on the last steps of a run of fewer than 10 steps", NULL},
    {"corrector", 0, 1, "NAME", "add a corrector: langevin, ald, mala (Metropolis-adjusted; energy models), none", NULL},
    {"corrector-steps", 0, 1, "N", "corrector steps per grid point", NULL},
    {"snr", 0, 1, "X", "Langevin signal-to-noise ratio [0.16]", NULL},
    {"step-size", 0, 1, "X", "fixed Langevin step size (langevin sampler) [SNR rule]", NULL},
    {"eta", 0, 1, "X", "noise of ddim / euler-ancestral / the dpm*-ancestral and dpmpp-*sde samplers", NULL},
    {"brownian", 0, 0, NULL, "SDE samplers: noise as increments of one Brownian path per (seed, row), so runs with different --steps follow the same path", NULL},
    {"churn", 0, 1, "X", "EDM S_churn of heun [0]", NULL},
    {"rtol", 0, 1, "X", "adaptive samplers: relative tolerance", NULL},
    {"atol", 0, 1, "X", "adaptive samplers: absolute tolerance", NULL},
    {"class", 0, 1, "K|NAME", "class of a class-conditional model (trained with --label-column): its label, or its index 0..K-1 if the labels are not integers [none: the unconditional model]", NULL},
    {"guidance", 0, 1, "W", "classifier-free guidance weight: with --class, (1+W) s(x,class) - W s(x,none) on the one model; with --uncond, (1+W) F_model - W F_uncond", NULL},
    {"condition", 0, 1, "A,B", "the condition vector of a model trained with --condition-columns, one number per condition column, in the columns' order and units", NULL},
    {"uncond", 0, 1, "MODEL", "the unconditional model file for --guidance ('-' = stdin); the library checks that it matches MODEL", NULL},
    {"classifier", 0, 1, "FILE", "classifier guidance: a classifier made by 'score train-classifier' for MODEL; with --class K|NAME (one of its classes) the score is s + W grad log p(class | x_t)", NULL},
    {"classifier-scale", 0, 1, "W", "the weight W of --classifier [1]", NULL},
    {"clip", 0, 1, "LO,HI", "clip every data prediction (and so the final samples) to [LO, HI] in data units, every column", NULL},
    {"threshold", 0, 1, "P", "dynamic thresholding of the data predictions at percentile P in (0, 1] (Imagen: 0.995) within the --clip range", NULL},
    {"init", 0, 1, "FILE", "partial sampling (SDEdit): start from the rows of this CSV (data units), noised by the forward process to the time of --strength, and sample to the end; one output row per input row", NULL},
    {"strength", 0, 1, "S", "with --init: the fraction of the grid's steps run, from 0 (the input unchanged) to 1 (unconditional sampling) [0.5]", NULL},
    {"known", 0, 1, "FILE", "imputation / inpainting: rows of a CSV (data units) whose empty, NaN or NA cells are sampled and whose other cells are kept exactly; one output row per input row", NULL},
    {"obs-method", 0, 1, "NAME", "with --known: how the known cells condition the samples: replace (score_sde's replacement of the known cells by the noised values) or moment (the moment method: exact for Gaussian data; needs the network's input gradient) [replace]", NULL},
    {"particles", 0, 1, "K", "with --known: twisted sequential Monte Carlo with K particles per row, an asymptotically exact conditional sampler (uses the moment method's guidance; samplers em, reverse-diffusion, ancestral; K times the model evaluations) [1 = off]", NULL},
    {"batch", 0, 1, "N", "rows per library call [4096]", NULL},
    {"png", 0, 1, "FILE.png", "also write the samples as a grid of images (instead of the CSV on stdout when -o is not given)", NULL},
    {"image", 0, 1, "CxHxW", "--png: the image shape of a row (C = 1 grayscale or 3 RGB; channel first) [stored by 'score train' for image data]", NULL},
    {"rows", 0, 1, "R", "--png: rows of the grid [near-square for -n]", NULL},
    {"cols", 0, 1, "C", "--png: columns of the grid [near-square for -n]", NULL},
    {"zoom", 0, 1, "K", "--png: each pixel drawn as K x K pixels [1]", NULL},
    {"png-range", 0, 1, "LO,HI", "--png: the values drawn black and white (clipped to it) [the range stored by 'score train': 0,255 for 8-bit pixels]", NULL},
    {"ref", 0, 1, "FILE", "reference data (CSV) for --plot and the distance ('-' = stdin)", NULL},
    {"plot", 0, 1, "FILE.svg", "draw the samples over the reference data", NULL},
    {"dims", 0, 1, "I,J", "columns shown by --plot [1,2]", NULL},
    {"threads", 0, 1, "N", "threads evaluating blocks of rows at a time (results do not depend on it; set OPENBLAS_NUM_THREADS=1) [1]", NULL},
    {"quiet", 'q', 0, NULL, "no progress bar and no summary", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

typedef struct sample_ctx {
    cli_progress bar;
    uint64_t done;   /* steps of earlier chunks */
} sample_ctx;

static int on_sample_progress(size_t step, size_t total, double t, void *ud)
{
    sample_ctx *c = ud;
    (void)total;
    cli_progress_update(&c->bar, c->done + step, "t", t);
    return 0;
}

/* Langevin MCMC at the one time a time-free loss trained: x <- x + e s + sqrt(2 e) z, from
 * N(0, I) in model units (score_genmodel_sample_langevin()). */
static int langevin_at(const score_genmodel *gm, score_sde *sde, size_t steps,
                       double step_size, double snr, const score_rng *rng, size_t n, float *x)
{
    score_step *st = NULL;
    int rc = score_step_new(&st, score_step_type_get(SCORE_STEP_LANGEVIN), score_genmodel_dim(gm));
    if (rc == SCORE_OK && step_size > 0)
        rc = score_step_set_f64(st, SCORE_STEP_PARAM_STEP_SIZE, step_size);
    if (rc == SCORE_OK)
        rc = score_step_set_f64(st, SCORE_STEP_PARAM_SNR, snr);
    if (rc == SCORE_OK)
        rc = score_genmodel_sample_langevin(gm, st, sde, steps, 0, n, x, rng);
    score_step_free(st);
    return rc == SCORE_OK ? 0 : cli_lib_fail(rc, "Langevin sampling");
}

/* The options of one run, read and range-checked. */
typedef struct sample_opts {
    const char *model, *uncond, *output, *plot, *cls;
    const sampler_def *def;
    size_t n, steps, batch, csteps, order; /* order: 0 = the sampler's */
    int order_seq;                          /* --order-sequence (ORDER_SEQ_AUTO: by the grid) */
    uint64_t seed;
    double snr, step_size, eta, churn, rtol, atol, w;
    int grid, corrector, quiet;
    const char *png;                  /* --png FILE or NULL */
    size_t grid_rows, grid_cols, zoom;/* 0: near-square */
    size_t img_c, img_h, img_w;       /* --image, 0 when not given */
    double png_lo, png_hi;            /* --png-range when png_range */
    int png_range;
} sample_opts;

static const char sample_help[] =
    "usage: score sample MODEL.safetensors [options]\n\n"
    "Draws samples from a model file written by 'score train' (MODEL '-' = stdin).\n"
    "A class-conditional model (trained with --label-column) is sampled for one class with\n"
    "--class K|NAME, optionally guided with --guidance W; without --class, unconditionally.\n"
    "A model trained with --condition-columns is sampled for one condition vector given\n"
    "by --condition a,b (values in the condition columns' order and units).\n\n"
    "options:\n";

static int read_sample_numbers(sample_opts *o)
{
    int rc;
    if ((rc = cli_opt_size(s_opts, "n", 1, (size_t)1 << 32, &o->n)) ||
        (rc = cli_opt_size(s_opts, "steps", 1, 100000000, &o->steps)) ||
        (rc = cli_opt_size(s_opts, "batch", 1, (size_t)1 << 24, &o->batch)) ||
        (rc = cli_opt_size(s_opts, "corrector-steps", 0, 1000000, &o->csteps)) ||
        (rc = cli_opt_size(s_opts, "order", 1, 3, &o->order)) ||
        (rc = cli_opt_u64(s_opts, "seed", &o->seed)) ||
        (rc = cli_opt_double(s_opts, "snr", 1e-12, 1e6, &o->snr)) ||
        (rc = cli_opt_double(s_opts, "step-size", 0, 1e12, &o->step_size)) ||
        (rc = cli_opt_double(s_opts, "eta", 0, 1000, &o->eta)) ||
        (rc = cli_opt_double(s_opts, "churn", 0, 1e6, &o->churn)) ||
        (rc = cli_opt_double(s_opts, "rtol", 0, 1, &o->rtol)) ||
        (rc = cli_opt_double(s_opts, "atol", 0, 1e6, &o->atol)) ||
        (rc = cli_opt_double(s_opts, "guidance", -1e6, 1e6, &o->w)))
        return rc;
    return 0;
}

/* --png FILE and its options: the grid (rows and columns; 0 = near-square), the zoom, and the
 * shape and range when given (checked against the model later). */
static int read_png_options(sample_opts *o)
{
    static const char *const needs_png[] = {"image", "rows", "cols", "zoom", "png-range"};
    char err[512];
    int rc;
    o->png = cli_opt_get(s_opts, "png");
    o->zoom = 1;
    for (size_t k = 0; o->png == NULL && k < sizeof needs_png / sizeof *needs_png; k++)
        if (cli_opt_get(s_opts, needs_png[k]) != NULL)
            return cli_usage_error("--%s goes with --png FILE.png", needs_png[k]);
    if (o->png == NULL)
        return 0;
    if (cli_output_check(o->png, err, sizeof err) != 0)
        return cli_fail("%s", err);
    if ((rc = cli_opt_size(s_opts, "rows", 1, 65535, &o->grid_rows)) != 0 ||
        (rc = cli_opt_size(s_opts, "cols", 1, 65535, &o->grid_cols)) != 0 ||
        (rc = cli_opt_size(s_opts, "zoom", 1, 64, &o->zoom)) != 0)
        return rc;
    const char *shape = cli_opt_get(s_opts, "image"), *range = cli_opt_get(s_opts, "png-range");
    if (shape != NULL && cli_parse_image_shape(shape, &o->img_c, &o->img_h, &o->img_w) != 0)
        return cli_usage_error("--image '%s': expected CxHxW (or HxW), positive sizes", shape);
    if (range != NULL) {
        char *end;
        o->png_lo = strtod(range, &end);
        if (*end != ',' || (o->png_hi = strtod(end + 1, &end), *end != '\0') ||
            !isfinite(o->png_lo) || !isfinite(o->png_hi) || !(o->png_lo < o->png_hi))
            return cli_usage_error("--png-range '%s': expected two finite numbers LO,HI with "
                                   "LO < HI", range);
        o->png_range = 1;
    }
    return 0;
}

/* Parses the command line into o; prints the help (and sets *help) for --help. */
static int read_sample_options(int argc, char **argv, sample_opts *o, int *help)
{
    const char *pos[1];
    int npos, rc;
    if ((rc = cli_parse_command(argc, argv, s_opts, sample_help, print_samplers, pos, 1, 1,
                                &npos, help)) != 0 || *help)
        return rc;
    const char *sname = cli_opt_get(s_opts, "sampler");
    const sampler_def *def = find_sampler(sname ? sname : "pc");
    if (def == NULL)
        return unknown_sampler(sname);
    *o = (sample_opts){
        .model = pos[0], .uncond = cli_opt_get(s_opts, "uncond"),
        .cls = cli_opt_get(s_opts, "class"),
        .output = cli_opt_get(s_opts, "output"), .plot = cli_opt_get(s_opts, "plot"),
        .def = def, .n = 1000, .steps = def->steps, .batch = 4096, .csteps = 0, .seed = 0,
        .snr = 0.16, .step_size = 0, .eta = -1, .churn = 0, .rtol = 0, .atol = 0, .w = 0,
        .grid = def->grid, .corrector = -1,
    };
    if ((rc = read_sample_numbers(o)) != 0 ||
        (rc = cli_opt_lookup(s_opts, "grid", grids, "grid", &o->grid)) != 0 ||
        (rc = cli_opt_lookup(s_opts, "corrector", correctors, "corrector", &o->corrector)) != 0 ||
        (rc = cli_opt_lookup(s_opts, "order-sequence", order_seqs, "order sequence",
                             &o->order_seq)) != 0)
        return rc;
    if (def->predictor == NULL &&
        (o->order > 0 || o->order_seq != 0 || cli_opt_flag(s_opts, "no-lower-order-final")))
        return cli_usage_error("--order, --order-sequence and --no-lower-order-final set the "
                               "predictor of a sampler: '%s' has none", def->name);
    if (o->order_seq == ORDER_SEQ_AUTO)
        o->order_seq = o->grid == SCORE_GRID_UNIFORM_LAMBDA ? 1 : 2;
    if (o->cls != NULL && o->uncond != NULL)
        return cli_usage_error("--class guides the one class-conditional model: it does not go "
                               "with --uncond MODEL");
    if (cli_opt_get(s_opts, "guidance") != NULL && o->cls == NULL && o->uncond == NULL)
        return cli_usage_error("--guidance W and --uncond MODEL go together (or --guidance W "
                               "with --class K|NAME on a class-conditional model)");
    if (o->uncond != NULL && cli_opt_get(s_opts, "guidance") == NULL)
        return cli_usage_error("--guidance W and --uncond MODEL go together");
    if ((rc = read_png_options(o)) != 0)
        return rc;
    const char *inputs[3] = {o->model, o->uncond, cli_opt_get(s_opts, "ref")};
    if ((rc = cli_stdin_once(inputs, 3)) != 0)
        return rc;
    o->quiet = cli_opt_flag(s_opts, "quiet");
    return 0;
}

/* What a run holds; sample_job_free() releases it. */
typedef struct sample_job {
    cli_model_file file, file2;   /* MODEL and --uncond */
    score_genmodel *cfg;          /* the guidance combination, or NULL */
    const score_genmodel *gm;     /* what is sampled: file.gm or cfg */
    size_t dim;
    score_sde *sde;
    score_sampler *smp;
    score_rng *rng;
    int64_t label;            /* --class, or SCORE_LABEL_NULL */
    score_genmodel *clf;      /* --classifier, or NULL */
    float *x;                 /* n x dim samples */
    float *init;              /* --init rows in model units, or NULL */
    float *init_data;         /* the same in data units */
    double strength;          /* --strength */
    float *known;             /* --known rows in data units (NAN: missing), or NULL */
    float *known_m;           /* the same in model units */
    uint8_t *mask;            /* 1 where --known gives a value */
    int obs_method;           /* --obs-method */
    size_t particles;         /* --particles (1: off) */
    double ess_sum, ess_min;  /* twisted SMC: final ESS summed over the rows, smallest ESS */
    cli_table ref;            /* reference points (may stay empty) */
    char ref_label[600];
    uint64_t nfe;             /* model evaluations per sample */
    double elapsed;
} sample_job;

static void sample_job_free(sample_job *j)
{
    score_sampler_free(j->smp);
    score_sde_free(j->sde);
    score_genmodel_free(j->clf);
    score_genmodel_free(j->cfg);
    cli_model_file_free(&j->file2);
    cli_model_file_free(&j->file);
    score_rng_free(j->rng);
    cli_table_free(&j->ref);
    free(j->x);
    free(j->init);
    free(j->init_data);
    free(j->known);
    free(j->known_m);
    free(j->mask);
}

/* Reads the rows of --init or --known (missing = 1: empty / NaN / NA cells allowed) in data
 * units, checks their width and count (all given row files and -n agree; *n is set), and
 * returns them in *data (malloc'd). */
static int read_rows(const char *opt, const char *path, int missing, size_t dim, size_t *n,
                     int *n_set, float **data)
{
    cli_csv_opts co = {.delimiter = ',', .missing = missing};
    cli_table t;
    char err[512];
    if (cli_csv_read_opts(path, &co, &t, err, sizeof err) != 0)
        return cli_fail("--%s: %s", opt, err);
    if (t.cols != dim || t.rows == 0) {
        size_t c = t.cols, r = t.rows;
        cli_table_free(&t);
        return cli_usage_error("--%s %s: %zu rows of %zu columns; the model has dimension %zu",
                               opt, path, r, c, dim);
    }
    if (*n_set && *n != t.rows) {
        size_t r = t.rows;
        cli_table_free(&t);
        return cli_usage_error("--%s %s has %zu rows, but %zu samples are asked for (-n, or the "
                               "other row file)", opt, path, r, *n);
    }
    *n = t.rows;
    *n_set = 1;
    *data = t.data;
    t.data = NULL;
    cli_table_free(&t);
    return 0;
}

/* --init / --strength and --known: the rows in model units (the saved model's transform), the
 * mask of the known cells; sets o->n to the number of rows. */
static int read_row_inputs(sample_opts *o, sample_job *j)
{
    const char *ip = cli_opt_get(s_opts, "init"), *kp = cli_opt_get(s_opts, "known");
    int n_set = cli_opt_get(s_opts, "n") != NULL, rc;
    size_t dim = score_genmodel_dim(j->file.gm), nd;
    if (cli_opt_get(s_opts, "strength") != NULL && ip == NULL)
        return cli_usage_error("--strength goes with --init FILE");
    j->obs_method = SCORE_OBS_METHOD_DEFAULT;
    j->particles = 1;
    if ((cli_opt_get(s_opts, "obs-method") != NULL || cli_opt_get(s_opts, "particles") != NULL) &&
        kp == NULL)
        return cli_usage_error("--obs-method / --particles go with --known FILE");
    if ((rc = cli_opt_lookup(s_opts, "obs-method", obs_methods, "observation method",
                             &j->obs_method)) != 0 ||
        (rc = cli_opt_size(s_opts, "particles", 1, 1000000, &j->particles)) != 0)
        return rc;
    if (ip == NULL && kp == NULL)
        return 0;
    if (score_genmodel_fixed_t(j->file.gm) > 0)
        return cli_usage_error("--init / --known need a model trained over the whole time "
                               "range; %s was trained at one noise level", o->model);
    if (ip != NULL && (rc = read_rows("init", ip, 0, dim, &o->n, &n_set, &j->init)) != 0)
        return rc;
    if (kp != NULL && (rc = read_rows("known", kp, 1, dim, &o->n, &n_set, &j->known)) != 0)
        return rc;
    nd = o->n * dim;
    j->strength = 0.5;
    if (j->init != NULL) {
        if ((rc = cli_opt_double(s_opts, "strength", 0, 1, &j->strength)) != 0)
            return rc;
        if ((j->init_data = malloc(nd * sizeof *j->init_data)) == NULL)
            return cli_fail("out of memory (%zu rows of dimension %zu)", o->n, dim);
        memcpy(j->init_data, j->init, nd * sizeof *j->init);
        if (score_genmodel_encode(j->file.gm, o->n, j->init, j->init) != SCORE_OK)
            return cli_lib_fail(SCORE_E_INVAL, "--init");
    }
    if (j->known != NULL) {
        if ((j->known_m = malloc(nd * sizeof *j->known_m)) == NULL ||
            (j->mask = malloc(nd)) == NULL)
            return cli_fail("out of memory (%zu rows of dimension %zu)", o->n, dim);
        if (score_genmodel_encode(j->file.gm, o->n, j->known, j->known_m) != SCORE_OK)
            return cli_lib_fail(SCORE_E_INVAL, "--known");
        for (size_t q = 0; q < nd; q++)
            j->mask[q] = isfinite(j->known[q]) ? 1 : 0;
    }
    return 0;
}

/* A model trained at one noise level is sampled by Langevin MCMC only, and only such a model. */
static int check_sampler_fits(const sample_opts *o, const sample_job *j)
{
    int langevin = strcmp(o->def->name, "langevin") == 0;
    double ft = score_genmodel_fixed_t(j->file.gm);
    if (ft > 0 && !langevin)
        return cli_usage_error("%s was trained at one noise level only (t = %g): sample it "
                               "with --sampler langevin", o->model, ft);
    if (ft <= 0 && langevin)
        return cli_usage_error("--sampler langevin is for models trained at one noise level "
                               "(dsm, hyvarinen, ssm losses); try pc or ald");
    return 0;
}

/* Whether s is an integer written in decimal (optional sign). */
static int is_integer_text(const char *s)
{
    s += *s == '-' || *s == '+';
    if (*s == '\0')
        return 0;
    while (*s >= '0' && *s <= '9')
        s++;
    return *s == '\0';
}

/* The index of class `cls` of gm: a stored label name, else an index 0..K-1; -1 if neither.
 * When a stored name is an integer (integer labels: "-5", "10"), only names are accepted, so
 * that a number never means an index by accident. */
static int64_t find_class(const score_genmodel *gm, const char *cls)
{
    size_t k = score_genmodel_num_classes(gm);
    int integer_names = 0;
    for (size_t c = 0; c < k; c++) {
        const char *name = score_genmodel_name(gm, SCORE_GENMODEL_NAMES_LABELS, c);
        if (name != NULL && strcmp(name, cls) == 0)
            return (int64_t)c;
        integer_names |= name != NULL && is_integer_text(name);
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(cls, &end, 10);
    if (!integer_names && *cls >= '0' && *cls <= '9' && *end == '\0' && errno == 0 && v < k)
        return (int64_t)v;
    return -1;
}

/* --class K|NAME [--guidance W] on the one model: the sde's label and guidance weight. Without
 * --class a class-conditional model is sampled with the null label (its unconditional model). */
static int set_class(const sample_opts *o, sample_job *j)
{
    size_t k = score_genmodel_num_classes(j->file.gm);
    int rc;
    j->label = SCORE_LABEL_NULL;
    if (o->cls == NULL || o->uncond != NULL)
        return 0;
    if (k == 0)
        return cli_usage_error("--class: %s is not a class-conditional model (train it with "
                               "--label-column NAME)", o->model);
    j->label = find_class(j->file.gm, o->cls);
    if (j->label < 0) {
        char list[1024];
        size_t used = 0;
        list[0] = '\0';
        for (size_t c = 0; c < k && used + 1 < sizeof list; c++) {
            const char *name = score_genmodel_name(j->file.gm, SCORE_GENMODEL_NAMES_LABELS, c);
            int w = name != NULL ? snprintf(list + used, sizeof list - used, "%s%s", c ? ", " : "", name)
                                 : snprintf(list + used, sizeof list - used, "%s%zu", c ? ", " : "", c);
            if (w < 0)
                break;
            used += (size_t)w;
        }
        if (used >= sizeof list)
            strcpy(list + sizeof list - 5, "...");
        return cli_usage_error("unknown class '%s' (valid: %s)", o->cls, list);
    }
    if ((rc = score_sde_set_label(j->sde, j->label)) != SCORE_OK ||
        (rc = score_sde_set_f64(j->sde, SCORE_SDE_PARAM_GUIDANCE, o->w)) != SCORE_OK)
        return cli_lib_fail(rc, "--class / --guidance");
    return 0;
}

/* --condition "a,b": the context vector of a model trained with --condition-columns (required
 * for such a model, refused for any other), set on the sde for every row. */
static int set_condition(const sample_opts *o, sample_job *j)
{
    const char *s = cli_opt_get(s_opts, "condition");
    size_t m = score_genmodel_context_dim(j->gm), k = 0;
    (void)o;
    if (m == 0 && s == NULL)
        return 0;
    if (m == 0)
        return cli_usage_error("--condition: %s takes no condition vector (train it with "
                               "--condition-columns)", o->model);
    char list[512] = "";
    for (size_t c = 0; c < m; c++) {
        const char *name = score_genmodel_name(j->gm, SCORE_GENMODEL_NAMES_CONTEXT, c);
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s%s", c ? "," : "", name ? name : "?");
    }
    if (s == NULL)
        return cli_usage_error("%s is conditional: give --condition with %zu value%s (%s)",
                               o->model, m, m == 1 ? "" : "s", list);
    float *v = malloc(m * sizeof *v);
    if (v == NULL)
        return cli_fail("out of memory");
    const char *p = s;
    for (;;) {
        char *end;
        errno = 0;
        double x = strtod(p, &end);
        if (end == p || errno != 0 || !isfinite(x) || fabs(x) > 3.4e38 ||
            (*end != ',' && *end != '\0')) {
            free(v);
            return cli_usage_error("--condition '%s': expected %zu number%s separated by commas "
                                   "(%s)", s, m, m == 1 ? "" : "s", list);
        }
        if (k < m)
            v[k] = (float)x;
        k++;
        if (*end == '\0')
            break;
        p = end + 1;
    }
    if (k != m) {
        free(v);
        return cli_usage_error("--condition '%s': %zu value%s, the model takes %zu (%s)", s, k,
                               k == 1 ? "" : "s", m, list);
    }
    int rc = score_sde_set_context(j->sde, m, v);
    free(v);
    return rc == SCORE_OK ? 0 : cli_lib_fail(rc, "--condition");
}

/* --clip LO,HI and --threshold P: the box (data units; the library converts it through the
 * model's data transform) and the percentile of dynamic thresholding within it. */
static int set_thresholding(sample_job *j)
{
    const char *c = cli_opt_get(s_opts, "clip"), *p = cli_opt_get(s_opts, "threshold");
    double lo, hi, pv = 0.0;
    char *end;
    int rc;
    if (c == NULL && p == NULL)
        return 0;
    if (c == NULL)
        return cli_usage_error("--threshold needs --clip LO,HI: the data range that the "
                               "percentile rule rescales into");
    errno = 0;
    lo = strtod(c, &end);
    if (end == c || *end != ',' || errno != 0)
        return cli_usage_error("--clip '%s': expected LO,HI", c);
    c = end + 1;
    hi = strtod(c, &end);
    if (end == c || *end != '\0' || errno != 0 || !isfinite(lo) || !isfinite(hi) || !(hi > lo))
        return cli_usage_error("--clip '%s': expected two finite numbers LO,HI with LO < HI",
                               cli_opt_get(s_opts, "clip"));
    if (p != NULL) {
        if ((rc = cli_opt_double(s_opts, "threshold", 0, 1, &pv)) != 0)
            return rc;
        if (!(pv > 0.0))
            return cli_usage_error("--threshold %s: give a percentile in (0, 1]", p);
    }
    if ((rc = score_genmodel_sde_set_clip(j->gm, j->sde, 1, &lo, &hi)) != SCORE_OK ||
        (rc = score_sde_set_f64(j->sde, SCORE_SDE_PARAM_THRESHOLD, pv)) != SCORE_OK)
        return cli_lib_fail(rc, "--clip / --threshold");
    return 0;
}

/* --guidance W --uncond MODEL: the library checks that the two models can be combined and
 * builds (1+W) F_model - W F_uncond (score_genmodel_new_cfg()); then the sde of what is
 * sampled. */
static int set_up_system(const sample_opts *o, sample_job *j)
{
    int rc;
    j->gm = j->file.gm;
    j->dim = score_genmodel_dim(j->gm);
    if (o->uncond != NULL) {
        if ((rc = cli_model_file_load(o->uncond, s_opts, &j->file2)) != 0)
            return rc;
        if ((rc = score_genmodel_new_cfg(&j->cfg, j->file.gm, j->file2.gm, o->w)) != SCORE_OK)
            return cli_fail("--uncond %s cannot guide %s: %s", o->uncond, o->model,
                            score_last_error_message());
        if ((rc = cli_model_threads(s_opts, score_genmodel_model(j->cfg))) != 0)
            return rc;
        j->gm = j->cfg;
    }
    if ((rc = score_genmodel_sde(j->gm, &j->sde)) != SCORE_OK)
        return cli_lib_fail(rc, "sde");
    if ((rc = set_condition(o, j)) != 0 || (rc = set_thresholding(j)) != 0)
        return rc;
    if (cli_opt_get(s_opts, "classifier") != NULL) {
        double cw = 1.0;
        if (o->uncond != NULL || cli_opt_get(s_opts, "guidance") != NULL)
            return cli_usage_error("--classifier guides with a classifier: it does not go with "
                                   "--guidance / --uncond");
        if ((rc = cli_opt_double(s_opts, "classifier-scale", -1e6, 1e6, &cw)) != 0 ||
            (rc = cli_classifier_attach(cli_opt_get(s_opts, "classifier"), j->gm, j->sde,
                                        o->cls, cw, &j->clf)) != 0)
            return rc;
        j->label = SCORE_LABEL_NULL; /* the class went to the classifier */
        return 0;
    }
    return set_class(o, j);
}

/* The sampler of o->def with the options that change it. */
static int configure_sampler(const sample_opts *o, sample_job *j)
{
    const sampler_def *def = o->def;
    /* --corrector replaces the sampler's own corrector (none = 0 removes it) */
    const score_step_type *corr =
        o->corrector > 0 ? score_step_type_get(o->corrector)
                         : (o->corrector < 0 && def->corrector ? score_step_type_find(def->corrector)
                                                               : NULL);
    int csteps_given = cli_opt_get(s_opts, "corrector-steps") != NULL;
    score_sampler *smp;
    int rc = score_sampler_new(&j->smp, score_step_type_find(def->predictor), corr, j->dim);
    if (rc == SCORE_OK) /* under mpirun: the rows split over the ranks */
        rc = score_sampler_set_comm(j->smp, cli_mpi_comm());
    smp = j->smp;
    if (rc == SCORE_OK)
        rc = score_sampler_set_i64(smp, SCORE_SAMPLER_PARAM_NUM_STEPS, (int64_t)o->steps);
    if (rc == SCORE_OK)
        rc = score_sampler_set_i64(smp, SCORE_SAMPLER_PARAM_GRID, o->grid);
    if (rc == SCORE_OK)
        rc = score_sampler_set_i64(smp, SCORE_SAMPLER_PARAM_FINAL_DENOISE,
                                   !cli_opt_flag(s_opts, "no-denoise"));
    if (rc == SCORE_OK && strcmp(def->name, "ald") == 0 && !csteps_given)
        rc = score_sampler_set_i64(smp, SCORE_SAMPLER_PARAM_CORRECTOR_STEPS, 2);
    if (rc == SCORE_OK && csteps_given)
        rc = score_sampler_set_i64(smp, SCORE_SAMPLER_PARAM_CORRECTOR_STEPS, (int64_t)o->csteps);
    if (rc == SCORE_OK)
        rc = score_sampler_set_f64(smp, SCORE_SAMPLER_PARAM_SNR, o->snr);
    if (rc == SCORE_OK && o->step_size > 0)
        rc = score_sampler_set_f64(smp, SCORE_SAMPLER_PARAM_STEP_SIZE, o->step_size);
    if (rc == SCORE_OK && o->eta >= 0)
        rc = score_sampler_set_f64(smp, SCORE_SAMPLER_PARAM_ETA, o->eta);
    if (rc == SCORE_OK && o->churn > 0)
        rc = score_sampler_set_f64(smp, SCORE_SAMPLER_PARAM_CHURN, o->churn);
    if (rc == SCORE_OK && o->order > 0)
        rc = score_sampler_set_i64(smp, SCORE_SAMPLER_PARAM_ORDER, (int64_t)o->order);
    if (rc == SCORE_OK && o->order_seq > 0)
        rc = score_sampler_set_i64(smp, SCORE_SAMPLER_PARAM_ORDER_SEQUENCE, o->order_seq);
    if (rc == SCORE_OK && cli_opt_flag(s_opts, "no-lower-order-final"))
        rc = score_sampler_set_i64(smp, SCORE_SAMPLER_PARAM_LOWER_ORDER_FINAL, 0);
    if (rc == SCORE_OK && cli_opt_flag(s_opts, "brownian"))
        rc = score_sampler_set_i64(smp, SCORE_SAMPLER_PARAM_BROWNIAN, 1);
    if (rc == SCORE_OK && o->rtol > 0)
        rc = score_sampler_set_f64(smp, SCORE_SAMPLER_PARAM_RTOL, o->rtol);
    if (rc == SCORE_OK && o->atol > 0)
        rc = score_sampler_set_f64(smp, SCORE_SAMPLER_PARAM_ATOL, o->atol);
    if (rc == SCORE_OK && j->init != NULL)
        rc = score_sampler_set_f64(smp, SCORE_SAMPLER_PARAM_STRENGTH, j->strength);
    if (rc == SCORE_OK && j->known != NULL)
        rc = score_sampler_set_known(smp, o->n, j->mask, j->known_m);
    if (rc == SCORE_OK && j->known != NULL)
        rc = score_sde_set_i64(j->sde, SCORE_SDE_PARAM_OBS_METHOD, j->obs_method);
    if (rc == SCORE_OK)
        rc = score_sampler_set_i64(smp, SCORE_SAMPLER_PARAM_PARTICLES, (int64_t)j->particles);
    return rc == SCORE_OK ? 0 : cli_lib_fail(rc, "sampler");
}

/* Runs the sampler over blocks of --batch rows (row0 keeps the noise of each row the same
 * whatever the block size), with one progress bar over all blocks. */
static int run_sampler(const sample_opts *o, sample_job *j)
{
    size_t grid_len = 0, n = o->n, batch = o->batch, dim = j->dim;
    sample_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    int rc = configure_sampler(o, j);
    if (rc != 0)
        return rc;
    if ((rc = score_sampler_get_grid(j->smp, j->sde, 0, NULL, &grid_len)) != SCORE_OK)
        return cli_lib_fail(rc, "sampler grid");
    size_t per_chunk = grid_len > 1 ? grid_len - 1 : 1;
    size_t chunks = (n + batch - 1) / batch;
    cli_progress_start(&ctx.bar, o->def->name, chunks * per_chunk, o->quiet);
    for (size_t c = 0; c < chunks; c++) {
        size_t row0 = c * batch, m = n - row0 < batch ? n - row0 : batch;
        ctx.done = c * per_chunk;
        if (j->init != NULL) {
            /* SDEdit: the sampler from the rows (score_genmodel_sample() starts at the prior) */
            rc = score_sampler_run_ex(j->smp, j->sde, row0, m, j->init + row0 * dim,
                                      j->x + row0 * dim, j->rng, on_sample_progress, &ctx);
            if (rc == SCORE_OK)
                rc = score_genmodel_decode(j->gm, m, j->x + row0 * dim, j->x + row0 * dim);
        } else {
            rc = score_genmodel_sample(j->gm, j->smp, j->sde, row0, m, j->x + row0 * dim,
                                       j->rng, on_sample_progress, &ctx);
        }
        if (rc != SCORE_OK) {
            cli_progress_finish(&ctx.bar);
            return cli_lib_fail(rc, "sampling");
        }
        j->nfe = score_sampler_get_nfe(j->smp);
        if (j->particles > 1) {
            double em = 0, emin = 0;
            if (score_sampler_get_ess(j->smp, &em, &emin, NULL) == SCORE_OK) {
                j->ess_sum += em * (double)m;
                j->ess_min = c == 0 || emin < j->ess_min ? emin : j->ess_min;
            }
        }
    }
    cli_progress_update(&ctx.bar, chunks * per_chunk, NULL, 0);
    cli_progress_finish(&ctx.bar);
    /* the input rows and the known cells are the given numbers exactly (not their round trip
     * through the transform) */
    if (j->init != NULL && j->strength == 0.0)
        memcpy(j->x, j->init_data, n * dim * sizeof *j->x);
    for (size_t q = 0; j->known != NULL && q < n * dim; q++)
        if (j->mask[q])
            j->x[q] = j->known[q];
    return 0;
}

/* Draws the n samples (Langevin at the one trained level, or the sampler), in data units. */
static int draw_samples(const sample_opts *o, sample_job *j)
{
    size_t n = o->n, dim = j->dim;
    int rc;
    if (score_rng_new(&j->rng, SCORE_RNG_PHILOX4X32_10, o->seed) != SCORE_OK ||
        (j->x = malloc(n * dim * sizeof *j->x)) == NULL)
        return cli_fail("out of memory (%zu samples of dimension %zu)", n, dim);
    double t0 = cli_now();
    if (score_genmodel_fixed_t(j->gm) > 0) {
        cli_progress bar;
        cli_progress_start(&bar, "langevin", o->steps, o->quiet);
        rc = langevin_at(j->gm, j->sde, o->steps, o->step_size, o->snr, j->rng, n, j->x);
        cli_progress_update(&bar, o->steps, NULL, 0);
        cli_progress_finish(&bar);
        j->nfe = o->steps;
    } else {
        rc = run_sampler(o, j);
    }
    if (rc != 0)
        return rc;
    j->elapsed = cli_now() - t0;
    return 0;
}

/* --png: the samples as a grid of images. The shape is --image or the one 'score train'
 * stored, and so is the range (--png-range); 16-bit PNG for the range of 16-bit pixels. */
static int write_png(const sample_opts *o, const sample_job *j)
{
    const cli_meta *meta = &j->file.meta;
    size_t c = o->img_c, h = o->img_h, w = o->img_w, n = o->n;
    double lo = o->png_lo, hi = o->png_hi;
    char err[512];
    if (c == 0) {
        const char *s = cli_meta_get(meta, "score.train.image.shape");
        if (s == NULL)
            return cli_fail("--png: the model stores no image shape (it was not trained on "
                            "image data): give --image CxHxW");
        if (cli_parse_image_shape(s, &c, &h, &w) != 0)
            return cli_fail("--png: the model's image shape '%s' is malformed: give --image "
                            "CxHxW", s);
    }
    if (c * h * w != j->dim || (c != 1 && c != 3))
        return cli_fail("--png: images of %zux%zux%zu %s the model's dimension %zu%s", c, h, w,
                        c * h * w != j->dim ? "do not fit" : "fit", j->dim,
                        c * h * w != j->dim ? "" : ", but a PNG grid takes 1 (grayscale) or 3 "
                        "(RGB) channels");
    if (!o->png_range) {
        const char *s = cli_meta_get(meta, "score.train.image.range");
        char *end;
        if (s == NULL)
            return cli_fail("--png: the model stores no value range: give --png-range LO,HI");
        lo = strtod(s, &end);
        if (*end != ',' || (hi = strtod(end + 1, &end), *end != '\0') || !isfinite(lo) ||
            !isfinite(hi))
            return cli_fail("--png: the model's value range '%s' is malformed: give "
                            "--png-range LO,HI", s);
        if (!(lo < hi))   /* constant data: a range around the value */
            lo -= 0.5, hi += 0.5;
    }
    size_t cols = o->grid_cols, rows = o->grid_rows;
    if (cols == 0 && rows == 0) {
        cols = (size_t)ceil(sqrt((double)n));
        rows = (n + cols - 1) / cols;
    } else if (cols == 0) {
        cols = (n + rows - 1) / rows;
    } else if (rows == 0) {
        rows = (n + cols - 1) / cols;
    }
    int bits = !o->png_range && hi - lo == 65535 ? 16 : 8;   /* 16-bit pixels */
    if (cli_png_write_grid(o->png, j->x, n, c, h, w, rows, cols, o->zoom, lo, hi, bits, err,
                           sizeof err) != 0)
        return cli_fail("%s", err);
    return 0;
}

/* The samples as CSV (and --png), then the reference data: distance (*sw, -1 without) and
 * --plot. */
static int write_samples(const sample_opts *o, sample_job *j, double *sw)
{
    static const char *hdr2[2] = {"x1", "x2"};
    size_t n = o->n, dim = j->dim, cx, cy;
    char err[512], title[256], label[128];
    int rc;
    /* the data's column names, stored in the model (x1,x2 for unnamed 2-D data) */
    const char **hdr = score_genmodel_name(j->gm, SCORE_GENMODEL_NAMES_COLUMNS, 0) != NULL
                           ? malloc(dim * sizeof *hdr) : NULL;
    for (size_t c = 0; hdr != NULL && c < dim; c++)
        hdr[c] = score_genmodel_name(j->gm, SCORE_GENMODEL_NAMES_COLUMNS, c);
    rc = o->png != NULL && o->output == NULL
             ? 0 : cli_csv_write(o->output ? o->output : "-", j->x, n, dim,
                                 hdr != NULL ? hdr : dim == 2 ? hdr2 : NULL, err, sizeof err);
    if (rc != 0)
        rc = cli_fail("%s", err);
    else if (o->png != NULL)
        rc = write_png(o, j);
    else if (o->plot != NULL)
        rc = cli_parse_dims(cli_opt_get(s_opts, "dims"), dim, &cx, &cy);
    if (rc != 0) {
        free(hdr);
        return rc;
    }
    if ((rc = load_reference(cli_opt_get(s_opts, "ref"), &j->file.meta, dim, o->seed + 1, &j->ref,
                             j->ref_label, sizeof j->ref_label)) != 0)
        return rc;
    *sw = j->ref.data ? cli_sliced_w2(j->x, n, j->ref.data, j->ref.rows, dim, 256, 12345) : -1;
    if (o->plot == NULL) {
        free(hdr);
        return 0;
    }
    const char *base = strrchr(o->model, '/');
    snprintf(title, sizeof title, "%s: %s, %llu model evaluations", base ? base + 1 : o->model,
             o->def->name, (unsigned long long)j->nfe);
    snprintf(label, sizeof label, "samples (%s)", o->def->name);
    rc = cli_plot_samples(o->plot, j->ref.data, j->ref.rows, j->x, n, dim, cx, cy,
                          j->ref.names ? (const char *const *)j->ref.names : hdr, title, label,
                          err, sizeof err);
    free(hdr);
    return rc != 0 ? cli_fail("%s", err) : 0;
}

int cli_cmd_sample(int argc, char **argv)
{
    sample_opts o;
    sample_job j;
    int help, rc;
    double sw = -1;
    if ((rc = read_sample_options(argc, argv, &o, &help)) != 0 || help)
        return rc;
    memset(&j, 0, sizeof j);
    if (cli_mpi_rank() != 0) /* under mpirun rank 0 alone prints and writes */
        o.quiet = 1;
    if ((rc = cli_model_file_load(o.model, s_opts, &j.file)) == 0 &&
        (rc = check_sampler_fits(&o, &j)) == 0 && (rc = read_row_inputs(&o, &j)) == 0)
        rc = set_up_system(&o, &j);
    if ((rc = cli_mpi_agree(rc)) == 0 && (rc = draw_samples(&o, &j)) == 0 &&
        cli_mpi_rank() == 0 && (rc = write_samples(&o, &j, &sw)) == 0 && !o.quiet) {
        fprintf(stderr, "sampled %zu points with %s: %llu model evaluations per sample, %.2f s",
                o.n, o.def->name, (unsigned long long)j.nfe, j.elapsed);
        if (j.label != SCORE_LABEL_NULL) {
            const char *name = score_genmodel_name(j.file.gm, SCORE_GENMODEL_NAMES_LABELS,
                                                   (size_t)j.label);
            fprintf(stderr, "; class %s", name ? name : o.cls);
            if (o.w != 0)
                fprintf(stderr, ", guidance %g", o.w);
        } else if (o.uncond == NULL && score_genmodel_num_classes(j.file.gm) > 0) {
            fprintf(stderr, "; no --class: the unconditional model (null label)");
        }
        if (j.particles > 1)
            fprintf(stderr, "; twisted SMC with %zu particles per row (%llu evaluations each): "
                    "final effective sample size %.2f on average, smallest %.2f", j.particles,
                    (unsigned long long)j.nfe, j.ess_sum / (double)o.n, j.ess_min);
        if (sw >= 0)
            fprintf(stderr, "; sliced W2 to %s: %.4f", j.ref_label, sw);
        fputc('\n', stderr);
    }
    sample_job_free(&j);
    return rc;
}
