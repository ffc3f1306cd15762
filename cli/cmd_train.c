/* score train: CSV or a toy dataset -> trained model file (+ optional SVG). */
#include "cli.h"

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

static void usage(FILE *f)
{
    fprintf(f, "usage: score train (--dataset NAME | --data FILE.csv) -o MODEL.safetensors [options]\n\n"
               "Trains an MLP score model and saves it with its schedule and parameterization.\n\n"
               "options:\n");
    cli_print_options(f, opts);
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
static int compute_field(const cli_system *sys, score_sde *sde, const float *data, size_t nd,
                         size_t cx, size_t cy, double sigma_model, cli_field *f)
{
    size_t dim = sys->dim, n = 24, m = n * n;
    memset(f, 0, sizeof *f);
    f->n = n;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    cli_bbox(data, nd, dim, cx, cy, &x0, &x1, &y0, &y1);
    cli_bbox_pad(&x0, &x1, &y0, &y1, 0.08);
    double w = x1 - x0, h = y1 - y0, side = fmax(w, h);
    x0 -= (side - w) / 2, x1 += (side - w) / 2, y0 -= (side - h) / 2, y1 += (side - h) / 2;
    f->x0 = x0, f->x1 = x1, f->y0 = y0, f->y1 = y1;
    f->gx = malloc(m * sizeof *f->gx);
    f->gy = malloc(m * sizeof *f->gy);
    f->u = malloc(m * sizeof *f->u);
    f->v = malloc(m * sizeof *f->v);
    float *x = calloc(m * dim, sizeof *x), *s = malloc(m * dim * sizeof *s);
    double *t = malloc(m * sizeof *t), *mean = calloc(dim, sizeof *mean);
    int rc = -1;
    if (!f->gx || !f->gy || !f->u || !f->v || !x || !s || !t || !mean)
        goto out;
    for (size_t i = 0; i < nd; i++)
        for (size_t j = 0; j < dim; j++)
            mean[j] += data[i * dim + j] / (double)nd;
    f->sigma = sigma_model;
    f->standardized = sys->shift != NULL;
    f->t = time_of_sigma(sys->sched, sigma_model);
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
    cli_standardize(sys, x, m);
    if (score_sde_score(sde, m, t, x, s) != SCORE_OK) {
        cli_lib_fail(SCORE_E_GENERIC, "score field");
        goto out;
    }
    for (size_t k = 0; k < m; k++) {
        double sx = s[k * dim + cx], sy = s[k * dim + cy];
        if (sys->shift != NULL) {
            sx /= sys->scale[cx];
            sy /= sys->scale[cy];
        }
        f->u[k] = sx;
        f->v[k] = sy;
    }
    rc = 0;
out:
    free(x);
    free(s);
    free(t);
    free(mean);
    return rc;
}

static void free_field(cli_field *f)
{
    free(f->gx);
    free(f->gy);
    free(f->u);
    free(f->v);
}

int cli_cmd_train(int argc, char **argv)
{
    const char *pos[1];
    int npos, help, rc;
    if ((rc = cli_parse(argc, argv, 2, opts, pos, 0, &npos, &help)) != 0)
        return rc;
    if (help) {
        usage(stdout);
        return 0;
    }
    const char *dataset = cli_opt_get(opts, "dataset"), *datafile = cli_opt_get(opts, "data");
    const char *output = cli_opt_get(opts, "output");
    if ((dataset == NULL) == (datafile == NULL))
        return cli_usage_error("give exactly one of --dataset NAME and --data FILE.csv "
                               "(see 'score train --help')");
    if (output == NULL)
        return cli_usage_error("missing -o MODEL.safetensors (the model file to write)");

    /* ---- options ---- */
    size_t n_points = 20000, hidden = 128, depth = 3, embed_dim = 32, steps = 4000, batch = 256;
    size_t warmup = 100, projections = 1, levels = 0;
    uint64_t seed = 0;
    double lr = 2e-3, clip = 1.0, wd = 0.0, ema = 0.999, fscale = 16.0, sigma = 0.0;
    int loss_kind = SCORE_LOSS_SDE, weighting = 1, act = SCORE_ACT_SILU;
    int embed = SCORE_EMBED_FOURIER, opt_kind = SCORE_OPTIMIZER_ADAM;
    int predict = SCORE_OUTPUT_EPS, cond = SCORE_COND_DEFAULT;
    const char *v;
    if ((rc = cli_opt_size(opts, "n", 1, (size_t)1 << 31, &n_points)) ||
        (rc = cli_opt_size(opts, "hidden", 1, 65536, &hidden)) ||
        (rc = cli_opt_size(opts, "depth", 1, 64, &depth)) ||
        (rc = cli_opt_size(opts, "embed-dim", 2, 4096, &embed_dim)) ||
        (rc = cli_opt_size(opts, "steps", 1, (size_t)1 << 40, &steps)) ||
        (rc = cli_opt_size(opts, "batch", 1, (size_t)1 << 24, &batch)) ||
        (rc = cli_opt_size(opts, "warmup", 0, (size_t)1 << 40, &warmup)) ||
        (rc = cli_opt_size(opts, "projections", 1, 4096, &projections)) ||
        (rc = cli_opt_size(opts, "levels", 2, 1000000, &levels)) ||
        (rc = cli_opt_u64(opts, "seed", &seed)) ||
        (rc = cli_opt_double(opts, "lr", 0, 1e6, &lr)) ||
        (rc = cli_opt_double(opts, "clip", 0, 1e30, &clip)) ||
        (rc = cli_opt_double(opts, "weight-decay", 0, 1e6, &wd)) ||
        (rc = cli_opt_double(opts, "ema", 0, 1, &ema)) ||
        (rc = cli_opt_double(opts, "fourier-scale", 1e-6, 1e4, &fscale)) ||
        (rc = cli_opt_double(opts, "sigma", 1e-6, 1e6, &sigma)))
        return rc;
    if ((v = cli_opt_get(opts, "loss")) && (rc = cli_lookup(losses, "loss", v, &loss_kind)))
        return rc;
    if ((v = cli_opt_get(opts, "weighting")) &&
        (rc = cli_lookup(weightings, "weighting", v, &weighting)))
        return rc;
    if ((v = cli_opt_get(opts, "activation")) &&
        (rc = cli_lookup(activations, "activation", v, &act)))
        return rc;
    if ((v = cli_opt_get(opts, "embedding")) &&
        (rc = cli_lookup(embeddings, "embedding", v, &embed)))
        return rc;
    if ((v = cli_opt_get(opts, "optimizer")) &&
        (rc = cli_lookup(optimizers, "optimizer", v, &opt_kind)))
        return rc;
    if ((v = cli_opt_get(opts, "predict")) &&
        (rc = cli_lookup(cli_outputs, "output kind (--predict)", v, &predict)))
        return rc;
    if ((v = cli_opt_get(opts, "cond")) &&
        (rc = cli_lookup(cli_conds, "conditioning (--cond)", v, &cond)))
        return rc;
    int quiet = cli_opt_flag(opts, "quiet");
    int time_free = loss_kind == SCORE_LOSS_DSM || loss_kind == SCORE_LOSS_HYVARINEN ||
                    loss_kind == SCORE_LOSS_SSM || loss_kind == SCORE_LOSS_SSM_VR;
    if (time_free && cli_opt_get(opts, "predict") == NULL)
        predict = SCORE_OUTPUT_SCORE;

    cli_system sys;
    memset(&sys, 0, sizeof sys);
    sys.output_kind = predict;
    sys.cond_kind = cond;
    sys.cond_scale = 999.0;
    sys.sigma_data = 0.5;
    if ((rc = cli_schedule_from_name((v = cli_opt_get(opts, "schedule")) ? v : "vp",
                                     &sys.sched)) != 0)
        return rc;

    score_model *model = NULL, *final = NULL;
    score_sde *sde = NULL;
    score_loss *loss = NULL;
    score_trainer *tr = NULL;
    score_rng *rng = NULL;
    cli_table table;
    memset(&table, 0, sizeof table);
    float *data = NULL, *train_x = NULL;
    size_t rows = 0, dim = 0;
    cli_meta meta;
    memset(&meta, 0, sizeof meta);
    train_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    char err[512];
    int status = CLI_EXIT_FAILURE;

    /* schedule overrides */
    static const struct { const char *opt; int id; } ov[] = {
        {"sigma-min", SCORE_SCHEDULE_PARAM_SIGMA_MIN}, {"sigma-max", SCORE_SCHEDULE_PARAM_SIGMA_MAX},
        {"beta-min", SCORE_SCHEDULE_PARAM_BETA_MIN}, {"beta-max", SCORE_SCHEDULE_PARAM_BETA_MAX},
    };
    for (size_t i = 0; i < sizeof ov / sizeof ov[0]; i++) {
        double x;
        if (cli_opt_get(opts, ov[i].opt) == NULL)
            continue;
        if ((rc = cli_opt_double(opts, ov[i].opt, 0, 1e10, &x)) != 0) {
            status = rc;
            goto out;
        }
        if ((rc = score_schedule_set_f64(sys.sched, ov[i].id, x)) != SCORE_OK) {
            status = rc == SCORE_E_UNSUPPORTED
                         ? cli_usage_error("--%s does not apply to the %s schedule", ov[i].opt,
                                           score_schedule_name(sys.sched))
                         : cli_lib_fail(rc, ov[i].opt);
            goto out;
        }
    }
    if (levels && (rc = score_schedule_set_i64(sys.sched, SCORE_SCHEDULE_PARAM_NUM_LEVELS,
                                               (int64_t)levels)) != SCORE_OK) {
        status = cli_lib_fail(rc, "--levels");
        goto out;
    }
    if ((rc = score_schedule_prepare(sys.sched)) != SCORE_OK) {
        status = cli_lib_fail(rc, "schedule");
        goto out;
    }
    if ((loss_kind == SCORE_LOSS_NCSN || loss_kind == SCORE_LOSS_DDPM) &&
        score_schedule_is_discrete(sys.sched) != 1) {
        status = cli_usage_error("--loss %s needs a discrete schedule (--schedule ncsn, "
                                 "ddpm-linear, ddpm-cosine, ...); with the continuous %s "
                                 "schedule use --loss sde", cli_name_of(losses, loss_kind),
                                 score_schedule_name(sys.sched));
        goto out;
    }

    /* ---- data ---- */
    if (datafile != NULL) {
        if (cli_csv_read(datafile, &table, err, sizeof err) != 0) {
            status = cli_fail("%s", err);
            goto out;
        }
        rows = table.rows;
        dim = table.cols;
        data = table.data;
    } else {
        dim = score_dataset_toy_dim(dataset);
        if (dim == 0) {
            int dummy;
            status = cli_lookup(cli_datasets, "dataset", dataset, &dummy);
            goto out;
        }
        rows = n_points;
        data = malloc(rows * dim * sizeof *data);
        if (data == NULL || score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, seed) != SCORE_OK ||
            score_rng_set_stream(rng, 1) != SCORE_OK) {
            status = cli_fail("out of memory");
            goto out;
        }
        if ((rc = score_dataset_toy(dataset, rng, rows, data)) != SCORE_OK) {
            status = cli_lib_fail(rc, "score_dataset_toy");
            goto out;
        }
    }
    sys.dim = dim;
    train_x = malloc(rows * dim * sizeof *train_x);
    if (train_x == NULL) {
        status = cli_fail("out of memory");
        goto out;
    }
    memcpy(train_x, data, rows * dim * sizeof *train_x);
    if (!cli_opt_flag(opts, "no-standardize")) {
        sys.shift = calloc(dim, sizeof *sys.shift);
        sys.scale = calloc(dim, sizeof *sys.scale);
        if (sys.shift == NULL || sys.scale == NULL) {
            status = cli_fail("out of memory");
            goto out;
        }
        for (size_t j = 0; j < dim; j++) {
            double m = 0, q = 0;
            for (size_t i = 0; i < rows; i++)
                m += data[i * dim + j];
            m /= (double)rows;
            for (size_t i = 0; i < rows; i++)
                q += (data[i * dim + j] - m) * (data[i * dim + j] - m);
            double sd = rows > 1 ? sqrt(q / (double)(rows - 1)) : 0.0;
            sys.shift[j] = m;
            sys.scale[j] = sd > 1e-12 * (1.0 + fabs(m)) ? sd : 1.0;   /* constant column */
        }
        cli_standardize(&sys, train_x, rows);
    }

    /* ---- model, sde, loss, trainer ---- */
    if ((rc = score_model_new_mlp(&model, dim, hidden, depth, act, seed)) != SCORE_OK ||
        (rc = score_model_set_i64(model, SCORE_MODEL_PARAM_EMBEDDING, embed)) != SCORE_OK ||
        (embed != SCORE_EMBED_NONE &&
         (rc = score_model_set_i64(model, SCORE_MODEL_PARAM_EMBED_DIM, (int64_t)embed_dim)) != SCORE_OK) ||
        (embed == SCORE_EMBED_FOURIER &&
         (rc = score_model_set_f64(model, SCORE_MODEL_PARAM_FOURIER_SCALE, fscale)) != SCORE_OK) ||
        (rc = score_model_prepare(model)) != SCORE_OK) {
        status = cli_lib_fail(rc, "model");
        goto out;
    }
    if ((rc = cli_model_threads(opts, model)) != 0) {
        status = rc;
        goto out;
    }
    if ((rc = cli_system_sde(&sys, model, &sde)) != 0)
        goto out;
    if ((rc = score_loss_new(&loss, loss_kind)) != SCORE_OK) {
        status = cli_lib_fail(rc, "score_loss_new");
        goto out;
    }
    if (loss_kind == SCORE_LOSS_SDE) {
        rc = weighting == 3
                 ? score_loss_set_i64(loss, SCORE_LOSS_PARAM_IMPORTANCE, 1)
                 : score_loss_set_i64(loss, SCORE_LOSS_PARAM_WEIGHTING, weighting);
        double te;
        if (rc == SCORE_OK &&
            score_schedule_get_f64(sys.sched, SCORE_SCHEDULE_PARAM_T_EPS, &te) == SCORE_OK)
            rc = score_loss_set_f64(loss, SCORE_LOSS_PARAM_T_EPS, fmin(te, 1e-5));
    } else if (cli_opt_get(opts, "weighting") != NULL) {
        status = cli_usage_error("--weighting applies to --loss sde only");
        goto out;
    }
    if (rc == SCORE_OK && (loss_kind == SCORE_LOSS_SSM || loss_kind == SCORE_LOSS_SSM_VR))
        rc = score_loss_set_i64(loss, SCORE_LOSS_PARAM_PROJECTIONS, (int64_t)projections);
    if (rc == SCORE_OK && time_free) {
        double te;
        rc = score_schedule_get_f64(sys.sched, SCORE_SCHEDULE_PARAM_T_EPS, &te);
        if (rc == SCORE_OK) {
            sys.fixed_t = sigma > 0 ? time_of_sigma(sys.sched, sigma)
                                    : (loss_kind == SCORE_LOSS_DSM ? time_of_sigma(sys.sched, 0.1) : te);
            rc = score_loss_set_f64(loss, SCORE_LOSS_PARAM_TIME, sys.fixed_t);
        }
    } else if (rc == SCORE_OK && cli_opt_get(opts, "sigma") != NULL) {
        status = cli_usage_error("--sigma applies to the one-level losses (dsm, hyvarinen, ssm, ssm-vr)");
        goto out;
    }
    if (rc != SCORE_OK) {
        status = cli_lib_fail(rc, "loss");
        goto out;
    }
    if ((rc = score_trainer_new(&tr, model, sde, loss, opt_kind)) != SCORE_OK) {
        status = cli_lib_fail(rc, "score_trainer_new");
        goto out;
    }
    score_optimizer *opt = score_trainer_optimizer(tr);
    if ((rc = score_trainer_set_i64(tr, SCORE_TRAINER_PARAM_BATCH_SIZE, (int64_t)batch)) ||
        (rc = score_trainer_set_i64(tr, SCORE_TRAINER_PARAM_SEED, (int64_t)(seed & ((1ull << 62) - 1)))) ||
        (rc = score_trainer_set_i64(tr, SCORE_TRAINER_PARAM_USE_EMA, ema > 0)) ||
        (ema > 0 && (rc = score_ema_set_f64(score_trainer_ema(tr), SCORE_EMA_PARAM_DECAY, ema))) ||
        (rc = score_optimizer_set_f64(opt, SCORE_OPTIMIZER_PARAM_LR, lr)) ||
        (rc = score_optimizer_set_i64(opt, SCORE_OPTIMIZER_PARAM_WARMUP, (int64_t)warmup)) ||
        (rc = score_optimizer_set_f64(opt, SCORE_OPTIMIZER_PARAM_GRAD_CLIP, clip)) ||
        (rc = score_optimizer_set_f64(opt, SCORE_OPTIMIZER_PARAM_WEIGHT_DECAY, wd)) ||
        (rc = score_trainer_set_data(tr, rows, dim, train_x)) != SCORE_OK) {
        status = cli_lib_fail(rc, "trainer");
        goto out;
    }

    /* ---- train ---- */
    ctx.total = steps;
    ctx.losses = malloc(steps * sizeof *ctx.losses);
    if (ctx.losses == NULL) {
        status = cli_fail("out of memory (loss history of %zu steps)", steps);
        goto out;
    }
    for (size_t i = 0; i < steps; i++)
        ctx.losses[i] = NAN;
    cli_progress_start(&ctx.bar, "train", steps, quiet);
    double t0 = cli_now();
    rc = score_trainer_run(tr, steps, on_progress, &ctx);
    double elapsed = cli_now() - t0;
    cli_progress_finish(&ctx.bar);
    if (rc != SCORE_OK) {
        status = cli_lib_fail(rc, "training");
        goto out;
    }
    uint64_t skipped = 0;
    if (score_trainer_get_skipped(tr, &skipped) != SCORE_OK)
        skipped = 0;
    if (ema > 0) {
        if ((rc = score_trainer_ema_model(tr, &final)) != SCORE_OK) {
            status = cli_lib_fail(rc, "EMA weights");
            goto out;
        }
    } else {
        final = model;
    }

    /* ---- save ---- */
    size_t tail = steps < 100 ? steps : 100;
    double last = 0, first = 0;
    size_t nl = 0, nf = 0;
    for (size_t i = steps - tail; i < steps; i++)
        if (isfinite(ctx.losses[i]))
            last += ctx.losses[i], nl++;
    for (size_t i = 0; i < tail; i++)
        if (isfinite(ctx.losses[i]))
            first += ctx.losses[i], nf++;
    last = nl ? last / (double)nl : NAN;
    first = nf ? first / (double)nf : NAN;
    if (cli_system_to_meta(&sys, &meta) ||
        cli_meta_set(&meta, "score.train.loss", cli_name_of(losses, loss_kind)) ||
        cli_meta_set(&meta, "score.train.data", datafile ? datafile : dataset) ||
        cli_meta_setf(&meta, "score.train.rows", "%zu", rows) ||
        cli_meta_setf(&meta, "score.train.steps", "%zu", steps) ||
        cli_meta_setf(&meta, "score.train.batch", "%zu", batch) ||
        cli_meta_set(&meta, "score.train.optimizer", cli_name_of(optimizers, opt_kind)) ||
        cli_meta_setf(&meta, "score.train.lr", "%g", lr) ||
        cli_meta_setf(&meta, "score.train.ema", "%g", ema) ||
        cli_meta_setf(&meta, "score.train.seed", "%llu", (unsigned long long)seed) ||
        cli_meta_setf(&meta, "score.train.final_loss", "%.6g", last) ||
        cli_meta_setf(&meta, "score.train.seconds", "%.2f", elapsed) ||
        (loss_kind == SCORE_LOSS_SDE &&
         cli_meta_set(&meta, "score.train.weighting", cli_name_of(weightings, weighting)))) {
        status = cli_fail("out of memory");
        goto out;
    }
    if (cli_model_write(output, final, &meta, err, sizeof err) != 0) {
        status = cli_fail("%s", err);
        goto out;
    }

    /* ---- picture ---- */
    const char *plot = cli_opt_get(opts, "plot");
    if (plot != NULL) {
        size_t cx, cy;
        if ((rc = cli_parse_dims(cli_opt_get(opts, "dims"), dim, &cx, &cy)) != 0) {
            status = rc;
            goto out;
        }
        if ((rc = score_sde_set_model(sde, final)) != SCORE_OK) {
            status = cli_lib_fail(rc, "score_sde_set_model");
            goto out;
        }
        cli_field field;
        /* the field at a noise level of a quarter of the (standardized) data scale, or at the
         * one level a time-free loss trained */
        double fs = 0.25, tf = sys.fixed_t;
        if (tf > 0) {
            double a, sg;
            if (score_schedule_alpha_sigma(sys.sched, 1, &tf, &a, &sg) == SCORE_OK)
                fs = sg / a;
        }
        if (compute_field(&sys, sde, data, rows, cx, cy, fs, &field) != 0) {
            free_field(&field);
            status = cli_fail("cannot evaluate the score field for --plot");
            goto out;
        }
        char title[256];
        snprintf(title, sizeof title, "score train: %s, %s loss, %s schedule, %zu steps",
                 datafile ? datafile : dataset, cli_name_of(losses, loss_kind),
                 score_schedule_name(sys.sched), steps);
        rc = cli_plot_training(plot, data, rows, dim, cx, cy,
                               (const char *const *)table.names, &field, ctx.losses, steps,
                               title, err, sizeof err);
        free_field(&field);
        if (rc != 0) {
            status = cli_fail("%s", err);
            goto out;
        }
    }
    if (!quiet) {
        char dur[32];
        cli_format_duration(elapsed, dur, sizeof dur);
        fprintf(stderr,
                "trained %zu steps (batch %zu, %zu rows, dim %zu) in %.1f s: loss %.4g -> %.4g "
                "(mean of first/last %zu steps)%s\n",
                steps, batch, rows, dim, elapsed, first, last, tail,
                skipped ? " [some steps skipped: non-finite loss]" : "");
        fprintf(stderr, "saved %s (%s weights, %zu parameters)%s%s\n", output,
                ema > 0 ? "EMA" : "raw", score_model_param_count(final), plot ? "; plot " : "",
                plot ? plot : "");
    }
    status = 0;
out:
    score_trainer_free(tr);
    score_loss_free(loss);
    score_sde_free(sde);
    score_model_free(model);
    score_rng_free(rng);
    cli_meta_free(&meta);
    cli_system_free(&sys);
    free(ctx.losses);
    free(train_x);
    if (table.data != NULL)
        cli_table_free(&table);
    else
        free(data);
    return status;
}
