/* score train: the objects of a run. The schedule, the network (or --init MODEL's), its sde
 * and generative model, the loss, and the trainer (or --resume CHECKPOINT's state). */
#include "images.h"
#include "train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define opts cli_train_opts

/* The time at which the model has EDM noise level sigma (clamped to [t_eps, T]). */
double train_time_of_sigma(const score_schedule *s, double sigma)
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

/* The schedule: a name or preset, the overrides (--sigma-min, ...), --levels; checked against
 * the loss. */
int train_set_up_schedule(const train_opts *o, train_job *j)
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
                               "schedule use --loss sde", cli_name_of(cli_train_losses, o->loss_kind),
                               score_schedule_name(j->sched));
    return 0;
}

/* --init MODEL: the generative model whose network starts the training (read before the
 * standardization, which keeps its transform). */
int train_load_init(const train_opts *o, train_job *j)
{
    cli_model_file f;
    char err[700];
    if (o->init == NULL)
        return 0;
    if (cli_model_file_read(o->init, 0, &f, err, sizeof err) != 0)
        return cli_fail("--init: %s", err);
    const char *shape = cli_meta_get(&f.meta, "score.train.image.shape");
    if (shape != NULL &&
        cli_parse_image_shape(shape, &j->init_img[0], &j->init_img[1], &j->init_img[2]) != 0)
        j->init_img[0] = j->init_img[1] = j->init_img[2] = 0;
    j->init_gm = f.gm;
    f.gm = NULL;
    cli_model_file_free(&f);
    return 0;
}

/* The network kinds --model trains, by name (messages). */
static const char *net_kind_name(int kind)
{
    switch (kind) {
    case SCORE_MODEL_MLP: return "an MLP";
    case SCORE_MODEL_ENERGY: return "an energy MLP";
    case SCORE_MODEL_UNET: return "a U-Net";
    default: return "not a network 'score train' makes";
    }
}

/* "m1,m2,..." of a U-Net's width multipliers into buf ("?" when it has none to give). */
static void fmt_mults(const score_model *m, char *buf, size_t len)
{
    size_t levels = 0, mults[16], at = 0;
    snprintf(buf, len, "?");
    if (score_model_get_unet_widths(m, &levels, mults, 16) != SCORE_OK || levels > 16)
        return;
    for (size_t k = 0; k < levels && at < len; k++)
        at += (size_t)snprintf(buf + at, len - at, "%s%zu", k ? "," : "", mults[k]);
}

/* The U-Net parts of take_init_network(): the image shape (when the file stores it: a U-Net's
 * parameters do not depend on H and W, so the shape is compared here) and the multipliers. */
static int same_unet_layout(const train_opts *o, const train_job *j, const score_model *init)
{
    char a[128], b[128];
    if (j->init_img[0] == 0)
        return cli_fail("--init %s: the file stores no image shape, so its U-Net cannot be "
                        "checked against the data's %zux%zux%zu images", o->init, j->img_c,
                        j->img_h, j->img_w);
    if (j->init_img[0] != j->img_c || j->init_img[1] != j->img_h || j->init_img[2] != j->img_w)
        return cli_fail("--init %s: its U-Net takes %zux%zux%zu images, the data are %zux%zux%zu",
                        o->init, j->init_img[0], j->init_img[1], j->init_img[2], j->img_c,
                        j->img_h, j->img_w);
    fmt_mults(init, a, sizeof a);
    fmt_mults(j->model, b, sizeof b);
    if (strcmp(a, "?") == 0 || strcmp(a, b) != 0)
        return cli_fail("--init %s: its network has --unet-mults %s, this run asks for %s "
                        "(give the options it was trained with)", o->init, a, b);
    return 0;
}

/* The network of --init MODEL replaces the freshly initialised one, after checking that it is
 * the network these options describe (kind, dimension, a U-Net's image shape and multipliers,
 * every architecture parameter of its kind, the parameter count (which also covers the
 * resolved defaults, like a U-Net's time-embedding width), the output kind): a different
 * shape is refused with both values, never reshaped. The clone keeps MODEL's seed, so its
 * fixed Fourier projection stays that of its weights. */
static int take_init_network(const train_opts *o, train_job *j)
{
    static const struct { int id; const char *name; int f64; } arch[] = {
        {SCORE_MODEL_PARAM_HIDDEN, "--hidden", 0}, {SCORE_MODEL_PARAM_DEPTH, "--depth", 0},
        {SCORE_MODEL_PARAM_ACTIVATION, "--activation", 0},
        {SCORE_MODEL_PARAM_EMBEDDING, "--embedding", 0},
        {SCORE_MODEL_PARAM_EMBED_DIM, "--embed-dim", 0},
        {SCORE_MODEL_PARAM_FOURIER_SCALE, "--fourier-scale", 1},
        {SCORE_MODEL_PARAM_RESIDUAL, "residual blocks", 0},
        {SCORE_MODEL_PARAM_NUM_CLASSES, "classes (--label-column)", 0},
        {SCORE_MODEL_PARAM_CONTEXT_DIM, "condition columns (--condition-columns)", 0},
        {SCORE_MODEL_PARAM_UNET_BASE_WIDTH, "--unet-width", 0},
        {SCORE_MODEL_PARAM_UNET_BLOCKS, "--unet-blocks", 0},
        {SCORE_MODEL_PARAM_UNET_GROUPS, "--unet-groups", 0},
        {SCORE_MODEL_PARAM_UNET_ATTENTION, "--unet-attention", 0},
    };
    score_model *init = score_genmodel_model(j->init_gm), *copy = NULL;
    int64_t kind_out;
    int kind = score_model_kind(init), rc;
    if (kind != score_model_kind(j->model))
        return cli_fail("--init %s: its network is %s, this run trains %s (--model)", o->init,
                        net_kind_name(kind), net_kind_name(score_model_kind(j->model)));
    if (score_model_dim(init) != j->dim)
        return cli_fail("--init %s: its network has dimension %zu, the data have %zu columns",
                        o->init, score_model_dim(init), j->dim);
    if (kind == SCORE_MODEL_UNET && (rc = same_unet_layout(o, j, init)) != 0)
        return rc;
    for (size_t k = 0; k < sizeof arch / sizeof arch[0]; k++) {
        int64_t a = 0, b = 0;
        double x = 0, y = 0;
        int ra, rb;
        if (arch[k].f64) {
            ra = score_model_get_f64(init, arch[k].id, &x);
            rb = score_model_get_f64(j->model, arch[k].id, &y);
        } else {
            ra = score_model_get_i64(init, arch[k].id, &a);
            rb = score_model_get_i64(j->model, arch[k].id, &b);
        }
        if (ra == SCORE_E_UNSUPPORTED && rb == SCORE_E_UNSUPPORTED)
            continue; /* not a parameter of this kind */
        if (ra != SCORE_OK || rb != SCORE_OK || (arch[k].f64 ? x != y : a != b))
            return arch[k].f64
                       ? cli_fail("--init %s: its network has %s %g, this run asks for %g (give "
                                  "the options it was trained with)", o->init, arch[k].name, x, y)
                       : cli_fail("--init %s: its network has %s %lld, this run asks for %lld "
                                  "(give the options it was trained with)", o->init,
                                  arch[k].name, (long long)a, (long long)b);
    }
    if (score_model_param_count(init) != score_model_param_count(j->model))
        return cli_fail("--init %s: its network has %zu parameters, this run's has %zu", o->init,
                        score_model_param_count(init), score_model_param_count(j->model));
    if (score_genmodel_get_i64(j->init_gm, SCORE_SDE_PARAM_OUTPUT, &kind_out) != SCORE_OK ||
        kind_out != o->predict)
        return cli_fail("--init %s: its network predicts '%s', this run '%s' (--predict)",
                        o->init, cli_name_of(cli_outputs, (int)kind_out),
                        cli_name_of(cli_outputs, o->predict));
    rc = score_model_clone(&copy, init);
    if (rc != SCORE_OK)
        return cli_lib_fail(rc, "--init");
    score_model_free(j->model);
    j->model = copy;
    return 0;
}

/* The MLP (width, depth, activation, time embedding, conditions, threads), the U-Net
 * (--model unet, on the image shape), or the network of --init; its sde and generative model;
 * the points in its units. */
int train_set_up_model(const train_opts *o, train_job *j)
{
    int rc;
    if (o->energy) { /* the energy MLP: the same architecture options, one output */
        if ((rc = score_model_new_energy(&j->model, j->dim)) != SCORE_OK ||
            (rc = score_model_set_i64(j->model, SCORE_MODEL_PARAM_HIDDEN, (int64_t)o->hidden)) ||
            (rc = score_model_set_i64(j->model, SCORE_MODEL_PARAM_DEPTH, (int64_t)o->depth)) ||
            (rc = score_model_set_i64(j->model, SCORE_MODEL_PARAM_ACTIVATION, o->act)) ||
            (rc = score_model_set_i64(j->model, SCORE_MODEL_PARAM_SEED, (int64_t)o->seed)))
            return cli_lib_fail(rc, "model");
    } else if (o->unet) { /* the U-Net on the data's image shape */
        if (j->img_c == 0)
            return cli_usage_error("--model unet needs image data: a PNG directory, a .npy "
                                   "array of images, or --image CxHxW");
        if ((rc = score_model_new_unet(&j->model, j->img_c, j->img_h, j->img_w)) != SCORE_OK ||
            (rc = score_model_set_unet_widths(j->model, o->unet_levels, o->unet_mults)) ||
            (rc = score_model_set_i64(j->model, SCORE_MODEL_PARAM_UNET_BASE_WIDTH,
                                      (int64_t)o->unet_width)) ||
            (rc = score_model_set_i64(j->model, SCORE_MODEL_PARAM_UNET_BLOCKS,
                                      (int64_t)o->unet_blocks)) ||
            (rc = score_model_set_i64(j->model, SCORE_MODEL_PARAM_UNET_GROUPS,
                                      (int64_t)o->unet_groups)) ||
            (rc = score_model_set_i64(j->model, SCORE_MODEL_PARAM_UNET_ATTENTION,
                                      (int64_t)o->unet_attention)) ||
            (rc = score_model_set_i64(j->model, SCORE_MODEL_PARAM_SEED, (int64_t)o->seed)))
            return cli_lib_fail(rc, "model");
    } else if ((rc = score_model_new_mlp(&j->model, j->dim, o->hidden, o->depth, o->act,
                                         o->seed)) != SCORE_OK) {
        return cli_lib_fail(rc, "model");
    }
    if ((rc = score_model_set_i64(j->model, SCORE_MODEL_PARAM_EMBEDDING, o->embed)) != SCORE_OK ||
        (o->embed != SCORE_EMBED_NONE &&
         (rc = score_model_set_i64(j->model, SCORE_MODEL_PARAM_EMBED_DIM,
                                   (int64_t)o->embed_dim)) != SCORE_OK) ||
        (o->embed == SCORE_EMBED_FOURIER &&
         (rc = score_model_set_f64(j->model, SCORE_MODEL_PARAM_FOURIER_SCALE, o->fscale)) !=
             SCORE_OK) ||
        (j->num_classes > 0 &&
         (rc = score_model_set_i64(j->model, SCORE_MODEL_PARAM_NUM_CLASSES,
                                   (int64_t)j->num_classes)) != SCORE_OK) ||
        (j->context_dim > 0 &&
         (rc = score_model_set_i64(j->model, SCORE_MODEL_PARAM_CONTEXT_DIM,
                                   (int64_t)j->context_dim)) != SCORE_OK) ||
        (rc = score_model_prepare(j->model)) != SCORE_OK)
        return cli_lib_fail(rc, "model");
    if (j->init_gm != NULL && (rc = take_init_network(o, j)) != 0)
        return rc;
    if ((rc = cli_model_threads(opts, j->model)) != 0)
        return rc;
    if ((rc = score_sde_new(&j->sde, j->sched, j->model, o->predict)) != SCORE_OK ||
        (rc = score_sde_set_i64(j->sde, SCORE_SDE_PARAM_COND, o->cond)) != SCORE_OK)
        return cli_lib_fail(rc, "sde");
    /* the meaning of the model (the library's object), and the points in its units */
    if ((rc = score_genmodel_new(&j->gm, j->sde)) != SCORE_OK ||
        (rc = score_genmodel_set_transform(j->gm, j->shift, j->scale)) != SCORE_OK)
        return cli_lib_fail(rc, "generative model");
    return train_dequantize_epoch(o, j, 0);
}

/* The loss and its options; a time-free loss records the one time it trains in j->fixed_t. */
int train_set_up_loss(const train_opts *o, train_job *j)
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
            j->fixed_t = o->sigma > 0 ? train_time_of_sigma(sched, o->sigma)
                                          : (o->loss_kind == SCORE_LOSS_DSM
                                                 ? train_time_of_sigma(sched, 0.1) : te);
            rc = score_loss_set_f64(j->loss, SCORE_LOSS_PARAM_TIME, j->fixed_t);
        }
    } else if (rc == SCORE_OK && cli_opt_get(opts, "sigma") != NULL) {
        return cli_usage_error("--sigma applies to the one-level losses (dsm, hyvarinen, ssm, "
                               "ssm-vr)");
    }
    return rc == SCORE_OK ? 0 : cli_lib_fail(rc, "loss");
}

/* The option behind a configuration the library refused on --resume (its message names the
 * parameter), as "; option --X", or "". */
static const char *resume_option_hint(const char *msg)
{
    static const struct { const char *text, *hint; } map[] = {
        {"optimizer parameter 'lr'", ": --lr"},
        {"optimizer parameter 'warmup'", ": --warmup"},
        {"optimizer parameter 'grad_clip'", ": --clip"},
        {"optimizer parameter 'weight_decay'", ": --weight-decay"},
        {"ema parameter 'decay'", ": --ema"},
        {"trainer parameter 'use_ema'", ": --ema"},
        {"trainer parameter 'batch_size'", ": --batch"},
        {"trainer parameter 'p_uncond'", ": --p-uncond"},
        {"loss parameter 'weighting'", ": --weighting"},
        {"loss parameter 'importance'", ": --weighting"},
        {"loss parameter 'sigma'", ": --sigma"},
        {"loss parameter 'time'", ": --sigma"},
        {"loss parameter 'projections'", ": --projections"},
        {"loss parameter 't_eps'", ": --schedule"},
        {"schedule kind", ": --schedule"},
        {"schedule parameter", ": --schedule, --sigma-min, --sigma-max, --beta-min, --beta-max, "
                               "--levels"},
        {"schedule (tensor", ": --schedule"},
        {"sde parameter 'output'", ": --predict"},
        {"sde parameter 'sigma_data'", ": --predict"},
        {"sde parameter 'cond", ": --cond"},
        {"data parameter", ": the data of that run: --data or --dataset and -n, --labels, "
                           "--label-column, --condition-columns, --valid-fraction, --seed, "
                           "--no-standardize"},
        {"loss is '", ": --loss"},
        {"optimizer is '", ": --optimizer"},
        {"reduction block", ": the number of processes"},
        {"architecture", ": the network options or --seed"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strstr(msg, map[i].text) != NULL)
            return map[i].hint;
    return "";
}

/* The trainer: batch, seed, EMA and the optimizer's options, over the training rows in model
 * units with their labels and conditions; then --resume. */
int train_set_up_trainer(const train_opts *o, train_job *j)
{
    int rc;
    if ((rc = score_trainer_new(&j->tr, j->model, j->sde, j->loss, o->opt_kind)) != SCORE_OK)
        return cli_lib_fail(rc, "score_trainer_new");
    if ((rc = score_trainer_set_comm(j->tr, cli_mpi_comm())) != SCORE_OK) /* NULL: one process */
        return cli_lib_fail(rc, "score_trainer_set_comm");
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
        (rc = score_trainer_set_data(tr, j->n_train, j->dim, j->train_x)) != SCORE_OK ||
        (j->labels != NULL &&
         (rc = score_trainer_set_labels(tr, j->n_train, j->labels)) != SCORE_OK) ||
        (j->context != NULL &&
         (rc = score_trainer_set_context(tr, j->n_train, j->context_dim, j->context)) !=
             SCORE_OK) ||
        (o->p_uncond >= 0 &&
         (rc = score_trainer_set_f64(tr, SCORE_TRAINER_PARAM_P_UNCOND, o->p_uncond)) != SCORE_OK))
        return cli_lib_fail(rc, "trainer");
    /* --resume: the library restores weights, optimizer, EMA, counters and seed, and refuses a
     * checkpoint of another network, optimizer, loss or configuration */
    if (o->resume != NULL && (rc = score_trainer_load(tr, o->resume)) != SCORE_OK)
        return cli_fail("--resume %s: %s%s%s%s", o->resume, score_last_error_message(),
                        rc == SCORE_E_FORMAT ? " (resume with the options of the run that wrote "
                                               "it" : "",
                        rc == SCORE_E_FORMAT ? resume_option_hint(score_last_error_message()) : "",
                        rc == SCORE_E_FORMAT ? ")" : "");
    uint64_t step = 0;
    int64_t stored_seed = seed;
    if (score_trainer_get_step(tr, &step) != SCORE_OK ||
        score_trainer_get_i64(tr, SCORE_TRAINER_PARAM_SEED, &stored_seed) != SCORE_OK)
        return cli_lib_fail(SCORE_E_GENERIC, "trainer");
    /* the library restores the checkpoint's seed; the held-out split and noise and the
     * dequantization offsets come from --seed: they must be the same */
    if (stored_seed != seed)
        return cli_fail("--resume %s: the checkpoint's run had --seed %lld, this one %lld (resume "
                        "with the options of the run that wrote it: --seed)", o->resume,
                        (long long)stored_seed, (long long)seed);
    if (step >= o->steps)
        return cli_usage_error("--resume %s: the checkpoint is at step %llu already; --steps "
                               "counts all steps of the training, give more than that",
                               o->resume, (unsigned long long)step);
    j->start_step = (size_t)step;
    return train_load_valid_state(o, j);
}

