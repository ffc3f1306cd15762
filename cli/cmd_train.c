/* score train: CSV or a toy dataset -> trained model file (+ optional SVG). This file holds the
 * options and the order of the steps of a run; the steps are in train_*.c (see train.h). */
#include "train.h"

#include "images.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const cli_name cli_train_losses[] = {
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

const cli_name cli_train_weightings[] = {
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

const cli_name cli_train_optimizers[] = {
    {"adam", SCORE_OPTIMIZER_ADAM, NULL}, {"adamw", SCORE_OPTIMIZER_ADAMW, NULL},
    {"sgd", SCORE_OPTIMIZER_SGD, NULL}, {NULL, 0, NULL},
};

static const cli_name dequantizations[] = {
    {"none", SCORE_GENMODEL_DEQUANT_NONE, NULL}, {"uniform", SCORE_GENMODEL_DEQUANT_UNIFORM, NULL},
    {NULL, 0, NULL},
};

cli_opt cli_train_opts[] = {
    {"dataset", 0, 1, "NAME", "built-in toy dataset (see 'score datasets')", NULL},
    {"data", 0, 1, "FILE", "training data: CSV with one point per line ('-' = stdin), a directory of PNG images, or a NumPy FILE.npy (one image or point per row)", NULL},
    {"class-dirs", 0, 0, NULL, "--data DIR: read DIR/<class>/*.png, the sub-directory names being the class labels (a class-conditional model)", NULL},
    {"labels", 0, 1, "FILE.npy", "--data FILE.npy: integer class labels, one per row (a class-conditional model)", NULL},
    {"image", 0, 1, "CxHxW", "the image shape of each row (C*H*W values, channel first), stored in the model for 'score sample --png' [read from the PNG files or the .npy shape]", NULL},
    {"n", 'n', 1, "N", "points drawn from a toy dataset [20000]", NULL},
    {"label-column", 0, 1, "NAME", "CSV column (by header name) holding each row's class label, integer or text; trains a class-conditional model", NULL},
    {"p-uncond", 0, 1, "P", "with --label-column: probability that a row's label is dropped (trains the unconditional model too) [0.1]", NULL},
    {"condition-columns", 0, 1, "A,B", "CSV columns (by header name) holding each row's condition vector, numbers used as they are (not standardized, not part of the data); trains a conditional model ('score sample --condition')", NULL},
    {"delimiter", 0, 1, "C", "CSV field delimiter: ',', ';' or 'tab' (never guessed) [,]", NULL},
    {"dequantize", 0, 1, "KIND", "none, or uniform: integer data get offsets uniform in [0,1) (new each epoch), and the model stores it, so 'score loglik' gives the probability of each integer cell [none]", NULL},
    {"valid-fraction", 0, 1, "F", "hold out this fraction of the rows (chosen by --seed) and report their loss [0]", NULL},
    {"valid-every", 0, 1, "N", "steps between held-out evaluations [steps/50, at least 1]", NULL},
    {"early-stop", 0, 1, "N", "stop after N held-out evaluations without a new best, and save the weights of the best one [off]", NULL},
    {"checkpoint", 0, 1, "FILE", "write the trainer's state (weights, optimizer, EMA, step, seed, the options that decide the steps) at the end, for --resume; with held-out evaluations also FILE.valid (the evaluations so far, the best weights of --early-stop)", NULL},
    {"resume", 0, 1, "FILE", "continue the run of that checkpoint bit for bit (same options and data, a different one is refused; --steps counts all steps)", NULL},
    {"init", 0, 1, "MODEL", "start from the network of a saved model of the same --model kind (same architecture options; its data transform is kept)", NULL},
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
    {"model", 0, 1, "KIND", "network: mlp (outputs the prediction), energy (a scalar energy E whose -grad_x E is the score; --predict score, losses dsm / ncsn / sde), unet (a convolutional U-Net on image data, doc/unet.md; losses sde, dsm, ncsn, ddpm) [mlp]", NULL},
    {"unet-width", 0, 1, "N", "--model unet: channels of the first level [32]", NULL},
    {"unet-mults", 0, 1, "M,M,...", "--model unet: one width multiplier per level (levels of H x W, H/2 x W/2, ...; H and W divisible by 2^(levels-1)) [1,2,2]", NULL},
    {"unet-blocks", 0, 1, "N", "--model unet: residual blocks per level [2]", NULL},
    {"unet-groups", 0, 1, "N", "--model unet: GroupNorm groups (dividing every width) [8]", NULL},
    {"unet-attention", 0, 1, "0|1", "--model unet: self-attention at the lowest resolution [1]", NULL},
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
    "usage: score train (--dataset NAME | --data FILE.csv|DIR|FILE.npy) -o MODEL.safetensors\n"
    "                   [options]\n\n"
    "Trains a score model (an MLP, or with --model unet a convolutional U-Net on images) and\n"
    "saves it with its schedule and parameterization.\n"
    "With --label-column NAME the model is class-conditional: that CSV column (integer or text\n"
    "labels; not standardized, not part of the data) gives each row's class, the sorted distinct\n"
    "values are the classes (stored in the model), and 'score sample --class' picks one.\n"
    "With --condition-columns A,B the model takes a continuous condition vector read from\n"
    "those columns, and 'score sample --condition a,b' samples for one value of it.\n\n"
    "Image data: --data DIR reads the PNG files of DIR (grayscale or RGB, 8 or 16 bits, all\n"
    "of one size; sorted by name) and --data FILE.npy a NumPy array of shape (N, ...) (float32,\n"
    "float64 or uint8); each image is one row of C*H*W values. Integer pixels 0..M (M = 255,\n"
    "or 65535 for 16-bit PNG) are mapped to [-1, 1] by the model's data transform, so samples\n"
    "come back in pixel units; 'score sample --png' draws them as a grid.\n\n"
    "Held-out rows (--valid-fraction) are chosen by --seed; their loss, with the same noise at\n"
    "every evaluation, is printed with the training loss and drawn by --plot. --early-stop N\n"
    "stops after N evaluations without a new best and saves the best evaluation's weights.\n"
    "--checkpoint FILE keeps the evaluations in FILE.valid: 'train --steps N --checkpoint c;\n"
    "train --resume c --steps M' evaluates, stops early and saves as one run of M steps.\n"
    "Integer-valued columns draw a warning unless --dequantize uniform is given.\n\n"
    "options:\n";

/* The help after the options: losses and schedules. */
static void help_names(FILE *f)
{
    fputc('\n', f);
    cli_print_names(f, "losses (--loss)", cli_train_losses);
    fputc('\n', f);
    cli_print_schedules(f);
}

/* ---- the command line ------------------------------------------------------------------- */

static int read_train_numbers(train_opts *o)
{
    int rc;
    if ((rc = cli_opt_size(cli_train_opts, "n", 1, (size_t)1 << 31, &o->n_points)) ||
        (rc = cli_opt_size(cli_train_opts, "hidden", 1, 65536, &o->hidden)) ||
        (rc = cli_opt_size(cli_train_opts, "depth", 1, 64, &o->depth)) ||
        (rc = cli_opt_size(cli_train_opts, "embed-dim", 2, 4096, &o->embed_dim)) ||
        (rc = cli_opt_size(cli_train_opts, "steps", 1, (size_t)1 << 40, &o->steps)) ||
        (rc = cli_opt_size(cli_train_opts, "batch", 1, (size_t)1 << 24, &o->batch)) ||
        (rc = cli_opt_size(cli_train_opts, "warmup", 0, (size_t)1 << 40, &o->warmup)) ||
        (rc = cli_opt_size(cli_train_opts, "projections", 1, 4096, &o->projections)) ||
        (rc = cli_opt_size(cli_train_opts, "levels", 2, 1000000, &o->levels)) ||
        (rc = cli_opt_u64(cli_train_opts, "seed", &o->seed)) ||
        (rc = cli_opt_double(cli_train_opts, "lr", 0, 1e6, &o->lr)) ||
        (rc = cli_opt_double(cli_train_opts, "clip", 0, 1e30, &o->clip)) ||
        (rc = cli_opt_double(cli_train_opts, "weight-decay", 0, 1e6, &o->wd)) ||
        (rc = cli_opt_double(cli_train_opts, "ema", 0, 1, &o->ema)) ||
        (rc = cli_opt_double(cli_train_opts, "fourier-scale", 1e-6, 1e4, &o->fscale)) ||
        (rc = cli_opt_double(cli_train_opts, "sigma", 1e-6, 1e6, &o->sigma)) ||
        (rc = cli_opt_double(cli_train_opts, "p-uncond", 0, 1, &o->p_uncond)) ||
        (rc = cli_opt_double(cli_train_opts, "valid-fraction", 0, 0.9, &o->valid_fraction)) ||
        (rc = cli_opt_size(cli_train_opts, "valid-every", 1, (size_t)1 << 40, &o->valid_every)) ||
        (rc = cli_opt_size(cli_train_opts, "early-stop", 1, 1000000, &o->early_stop)) ||
        (rc = cli_opt_size(cli_train_opts, "unet-width", 1, 4096, &o->unet_width)) ||
        (rc = cli_opt_size(cli_train_opts, "unet-blocks", 1, 8, &o->unet_blocks)) ||
        (rc = cli_opt_size(cli_train_opts, "unet-groups", 1, 1024, &o->unet_groups)) ||
        (rc = cli_opt_size(cli_train_opts, "unet-attention", 0, 1, &o->unet_attention)))
        return rc;
    return 0;
}

/* --unet-mults M,M,...: 1 to 6 multipliers in [1, 64]. */
static int read_unet_mults(train_opts *o)
{
    const char *s = cli_opt_get(cli_train_opts, "unet-mults");
    if (s == NULL)
        return 0;
    o->unet_levels = 0;
    for (;;) {
        char *end;
        unsigned long v;
        if (*s < '0' || *s > '9' || o->unet_levels == sizeof o->unet_mults / sizeof o->unet_mults[0])
            break;
        v = strtoul(s, &end, 10);
        if (v < 1 || v > 64 || (*end != ',' && *end != '\0'))
            break;
        o->unet_mults[o->unet_levels++] = (size_t)v;
        if (*end == '\0')
            return 0;
        s = end + 1;
    }
    return cli_usage_error("--unet-mults '%s': give 1 to 6 comma-separated multipliers in "
                           "[1, 64], e.g. 1,2,2", cli_opt_get(cli_train_opts, "unet-mults"));
}

static int read_train_names(train_opts *o)
{
    int rc;
    if ((rc = cli_opt_lookup(cli_train_opts, "loss", cli_train_losses, "loss", &o->loss_kind)) ||
        (rc = cli_opt_lookup(cli_train_opts, "weighting", cli_train_weightings, "weighting", &o->weighting)) ||
        (rc = cli_opt_lookup(cli_train_opts, "activation", activations, "activation", &o->act)) ||
        (rc = cli_opt_lookup(cli_train_opts, "embedding", embeddings, "embedding", &o->embed)) ||
        (rc = cli_opt_lookup(cli_train_opts, "optimizer", cli_train_optimizers, "optimizer", &o->opt_kind)) ||
        (rc = cli_opt_lookup(cli_train_opts, "predict", cli_outputs, "output kind (--predict)",
                             &o->predict)) ||
        (rc = cli_opt_lookup(cli_train_opts, "cond", cli_conds, "conditioning (--cond)", &o->cond)) ||
        (rc = cli_opt_lookup(cli_train_opts, "dequantize", dequantizations, "dequantization",
                             &o->dequantize)) ||
        (rc = cli_csv_delimiter(cli_opt_get(cli_train_opts, "delimiter"), &o->delimiter)))
        return rc;
    return 0;
}

/* Parses the command line into o; prints the help (and sets *help) for --help. */
static int read_train_options(int argc, char **argv, train_opts *o, int *help)
{
    const char *pos[1];
    int npos, rc;
    if ((rc = cli_parse_command(argc, argv, cli_train_opts, help_text, help_names, pos, 0, 0, &npos,
                                help)) != 0 || *help)
        return rc;
    *o = (train_opts){
        .dataset = cli_opt_get(cli_train_opts, "dataset"), .datafile = cli_opt_get(cli_train_opts, "data"),
        .output = cli_opt_get(cli_train_opts, "output"), .plot = cli_opt_get(cli_train_opts, "plot"),
        .n_points = 20000, .hidden = 128, .depth = 3, .embed_dim = 32, .steps = 4000,
        .batch = 256, .warmup = 100, .projections = 1, .levels = 0, .seed = 0,
        .lr = 2e-3, .clip = 1.0, .wd = 0.0, .ema = 0.999, .fscale = 16.0, .sigma = 0.0,
        .loss_kind = SCORE_LOSS_SDE, .weighting = 1, .act = SCORE_ACT_SILU,
        .embed = SCORE_EMBED_FOURIER, .opt_kind = SCORE_OPTIMIZER_ADAM,
        .predict = SCORE_OUTPUT_EPS, .cond = SCORE_COND_DEFAULT, .p_uncond = -1,
        .label_column = cli_opt_get(cli_train_opts, "label-column"),
        .condition_columns = cli_opt_get(cli_train_opts, "condition-columns"),
        .delimiter = ',', .checkpoint = cli_opt_get(cli_train_opts, "checkpoint"),
        .resume = cli_opt_get(cli_train_opts, "resume"),
        .init = cli_opt_get(cli_train_opts, "init"),
        .dequantize = SCORE_GENMODEL_DEQUANT_NONE,
        .class_dirs = cli_opt_flag(cli_train_opts, "class-dirs"),
        .labels_file = cli_opt_get(cli_train_opts, "labels"),
        .image = cli_opt_get(cli_train_opts, "image"),
        .unet_width = 32, .unet_blocks = 2, .unet_groups = 8, .unet_attention = 1,
        .unet_levels = 3, .unet_mults = {1, 2, 2},
    };
    if ((o->dataset == NULL) == (o->datafile == NULL))
        return cli_usage_error("give exactly one of --dataset NAME and --data FILE.csv "
                               "(see 'score train --help')");
    if (o->output == NULL)
        return cli_usage_error("missing -o MODEL.safetensors (the model file to write)");
    if ((rc = cli_binary_output_check("-o", o->output)) != 0 ||
        (rc = cli_binary_output_check("--checkpoint", o->checkpoint)) != 0)
        return rc;
    if ((rc = read_train_numbers(o)) != 0 || (rc = read_train_names(o)) != 0 ||
        (rc = read_unet_mults(o)) != 0)
        return rc;
    int images = o->datafile != NULL && train_data_is_images(o->datafile);
    if (o->label_column == NULL && !o->class_dirs && o->labels_file == NULL &&
        cli_opt_get(cli_train_opts, "p-uncond") != NULL)
        return cli_usage_error("--p-uncond applies to class-conditional training only (give "
                               "%s)", images ? "--class-dirs or --labels FILE.npy"
                                             : "--label-column NAME");
    if ((o->class_dirs || o->labels_file != NULL) && !images)
        return cli_usage_error("--class-dirs and --labels are for image data (--data DIR or "
                               "--data FILE.npy); CSV data take --label-column NAME");
    if (images && (o->label_column != NULL || o->condition_columns != NULL))
        return cli_usage_error("--label-column and --condition-columns are for CSV data; "
                               "images take --class-dirs (PNG directory) or --labels FILE.npy");
    if (o->image != NULL && !images) {
        size_t c, h, w;
        if (cli_parse_image_shape(o->image, &c, &h, &w) != 0)
            return cli_usage_error("--image '%s': expected CxHxW (or HxW), positive sizes",
                                   o->image);
    }
    if (o->label_column != NULL && o->datafile == NULL)
        return cli_usage_error("--label-column needs --data FILE.csv with a header line");
    if (o->condition_columns != NULL && o->datafile == NULL)
        return cli_usage_error("--condition-columns needs --data FILE.csv with a header line");
    if (o->valid_fraction <= 0 && (cli_opt_get(cli_train_opts, "valid-every") != NULL ||
                                   o->early_stop > 0))
        return cli_usage_error("--valid-every and --early-stop need held-out rows "
                               "(--valid-fraction F)");
    if (o->valid_every == 0)
        o->valid_every = o->steps / 50 > 1 ? o->steps / 50 : 1;
    if (o->resume != NULL && o->init != NULL)
        return cli_usage_error("--resume continues a run and --init starts one: give one of "
                               "them");
    const char *inputs[4] = {o->datafile, o->resume, o->init, o->labels_file};
    if ((rc = cli_stdin_once(inputs, 4)) != 0)
        return rc;
    o->quiet = cli_opt_flag(cli_train_opts, "quiet");
    o->time_free = o->loss_kind == SCORE_LOSS_DSM || o->loss_kind == SCORE_LOSS_HYVARINEN ||
                   o->loss_kind == SCORE_LOSS_SSM || o->loss_kind == SCORE_LOSS_SSM_VR;
    if (o->time_free && cli_opt_get(cli_train_opts, "predict") == NULL)
        o->predict = SCORE_OUTPUT_SCORE;
    {
        const char *kind = cli_opt_get(cli_train_opts, "model");
        if (kind != NULL && strcmp(kind, "energy") != 0 && strcmp(kind, "mlp") != 0 &&
            strcmp(kind, "unet") != 0)
            return cli_usage_error("--model %s: give mlp, energy or unet", kind);
        o->energy = kind != NULL && strcmp(kind, "energy") == 0;
        o->unet = kind != NULL && strcmp(kind, "unet") == 0;
    }
    if (!o->unet) {
        static const char *const unet_only[] = {"unet-width", "unet-mults", "unet-blocks",
                                                "unet-groups", "unet-attention"};
        for (size_t k = 0; k < sizeof unet_only / sizeof unet_only[0]; k++)
            if (cli_opt_get(cli_train_opts, unet_only[k]) != NULL)
                return cli_usage_error("--%s applies to --model unet only", unet_only[k]);
    } else {
        static const char *const mlp_only[] = {"hidden", "depth", "activation"};
        for (size_t k = 0; k < sizeof mlp_only / sizeof mlp_only[0]; k++)
            if (cli_opt_get(cli_train_opts, mlp_only[k]) != NULL)
                return cli_usage_error("--%s applies to the MLP; a U-Net takes --unet-width, "
                                       "--unet-mults, --unet-blocks, --unet-groups and "
                                       "--unet-attention", mlp_only[k]);
        if (o->loss_kind != SCORE_LOSS_SDE && o->loss_kind != SCORE_LOSS_DSM &&
            o->loss_kind != SCORE_LOSS_NCSN && o->loss_kind != SCORE_LOSS_DDPM)
            return cli_usage_error("--model unet trains with the denoising losses (sde, dsm, "
                                   "ncsn, ddpm): --loss %s needs the Jacobian of the network",
                                   cli_name_of(cli_train_losses, o->loss_kind));
        if (o->condition_columns != NULL)
            return cli_usage_error("--model unet takes no --condition-columns");
    }
    if (o->energy) {
        if (cli_opt_get(cli_train_opts, "predict") == NULL)
            o->predict = SCORE_OUTPUT_SCORE;
        if (o->predict != SCORE_OUTPUT_SCORE)
            return cli_usage_error("--model energy outputs the score -grad_x E: --predict score");
        if (o->label_column != NULL || o->condition_columns != NULL || o->class_dirs ||
            o->labels_file != NULL)
            return cli_usage_error("--model energy takes no --label-column, "
                                   "--condition-columns, --class-dirs or --labels");
    }
    return 0;
}

/* ---- one run ---------------------------------------------------------------------------- */

void train_job_free(train_job *j)
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
    free(j->order);
    free(j->plain_x);
    free(j->context);
    for (size_t k = 0; j->context_names != NULL && k < j->context_dim; k++)
        free(j->context_names[k]);
    free(j->context_names);
    free(j->evals);
    free(j->prior_evals);
    free(j->prior_losses);
    score_model_free(j->best);
    score_loss_free(j->valid_loss);
    score_genmodel_free(j->init_gm);
    for (size_t k = 0; j->class_names != NULL && k < j->num_classes; k++)
        free(j->class_names[k]);
    free(j->class_names);
    cli_text_free(j->image_text, j->rows);
    if (j->table.data != NULL)
        cli_table_free(&j->table);
    else
        free(j->data);
}

int cli_cmd_train(int argc, char **argv)
{
    train_opts o;
    train_job j;
    int help, rc;
    if ((rc = read_train_options(argc, argv, &o, &help)) != 0 || help)
        return rc;
    memset(&j, 0, sizeof j);
    /* under mpirun every rank reads the data and trains (train_setup.c gives the trainer the
     * communicator); rank 0 alone prints and writes the model file and the plot */
    if (cli_mpi_rank() != 0)
        o.quiet = 1;
    if ((rc = train_set_up_schedule(&o, &j)) == 0 && (rc = train_load_data(&o, &j)) == 0 &&
        (rc = train_make_labels(&o, &j)) == 0 && (rc = train_split(&o, &j)) == 0 &&
        (rc = train_check_integers(&o, &j)) == 0 && (rc = train_load_init(&o, &j)) == 0 &&
        (rc = train_standardize(&o, &j)) == 0 && (rc = train_set_up_model(&o, &j)) == 0 &&
        (rc = train_set_up_loss(&o, &j)) == 0)
        rc = train_set_up_trainer(&o, &j);
    if ((rc = cli_mpi_agree(rc)) == 0 && (rc = train_run(&o, &j)) == 0 && cli_mpi_rank() == 0 &&
        (rc = train_save_model(&o, &j)) == 0 && (rc = train_plot(&o, &j)) == 0)
        train_print_summary(&o, &j);
    train_job_free(&j);
    return rc;
}
