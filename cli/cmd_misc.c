/* score datasets, score info, score distance. */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const cli_name cli_datasets[] = {
    {"ring8", 1, "8 Gaussians on a circle of radius 2.83, std 0.35 (exact mixture known)"},
    {"moons", 2, "two interleaved half circles with noise"},
    {"swissroll", 3, "2-D swiss roll"},
    {"checkerboard", 4, "uniform on 8 of the 16 squares of a 4 x 4 board"},
    {"gaussian", 5, "standard normal N(0, I)"},
    {NULL, 0, NULL},
};

int cli_toy_points(const char *name, size_t n, uint64_t seed, uint64_t stream, float **out)
{
    size_t dim = score_dataset_toy_dim(name);
    score_rng *rng = NULL;
    float *x = dim ? malloc(n * dim * sizeof *x) : NULL;
    int rc = SCORE_E_NOMEM;
    *out = NULL;
    if (x != NULL && score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, seed) == SCORE_OK &&
        score_rng_set_stream(rng, stream) == SCORE_OK)
        rc = score_dataset_toy(name, rng, n, x);
    score_rng_free(rng);
    if (rc != SCORE_OK) {
        free(x);
        return rc;
    }
    *out = x;
    return SCORE_OK;
}

/* ---- datasets ------------------------------------------------------------------------- */

static cli_opt ds_opts[] = {
    {"n", 'n', 1, "N", "number of points [1000]", NULL},
    {"seed", 0, 1, "N", "seed [0]", NULL},
    {"output", 'o', 1, "FILE", "CSV file to write ['-' = stdout]", NULL},
    {"plot", 0, 1, "FILE.svg", "also draw the points", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

int cli_cmd_datasets(int argc, char **argv)
{
    const char *pos[1];
    int npos, help, rc;
    static const char text[] =
        "usage: score datasets               list the built-in toy datasets\n"
        "       score datasets NAME [options] write points of one of them as CSV\n\n"
        "options:\n";
    if ((rc = cli_parse_command(argc, argv, ds_opts, text, NULL, pos, 0, 1, &npos, &help)) != 0 ||
        help)
        return rc;
    if (npos == 0) {
        printf("%-14s %4s  %s\n", "name", "dim", "description");
        for (const cli_name *d = cli_datasets; d->name; d++)
            printf("%-14s %4zu  %s\n", d->name, score_dataset_toy_dim(d->name), d->help);
        return 0;
    }
    int dummy;
    if (score_dataset_toy_dim(pos[0]) == 0)
        return cli_lookup(cli_datasets, "dataset", pos[0], &dummy);
    size_t n = 1000, dim = score_dataset_toy_dim(pos[0]);
    uint64_t seed = 0;
    if ((rc = cli_opt_size(ds_opts, "n", 1, (size_t)1 << 31, &n)) ||
        (rc = cli_opt_u64(ds_opts, "seed", &seed)))
        return rc;
    float *x;
    if ((rc = cli_toy_points(pos[0], n, seed, 1, &x)) != SCORE_OK)
        return rc == SCORE_E_NOMEM ? cli_fail("out of memory")
                                   : cli_lib_fail(rc, "score_dataset_toy");
    char err[512];
    const char *out = cli_opt_get(ds_opts, "output");
    const char *hdr[2] = {"x1", "x2"};
    int status = 0;
    if (cli_csv_write(out ? out : "-", x, n, dim, dim == 2 ? hdr : NULL, err, sizeof err) != 0)
        status = cli_fail("%s", err);
    const char *plot = cli_opt_get(ds_opts, "plot");
    if (status == 0 && plot != NULL &&
        cli_plot_samples(plot, NULL, 0, x, n, dim, 0, dim > 1 ? 1 : 0, NULL, pos[0], pos[0],
                         err, sizeof err) != 0)
        status = cli_fail("%s", err);
    free(x);
    return status;
}

/* ---- info ----------------------------------------------------------------------------- */

static cli_opt info_opts[] = {
    {"all", 'a', 0, NULL, "also print every metadata entry", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

static const char *meta_or(const cli_meta *m, const char *key)
{
    const char *v = cli_meta_get(m, key);
    return v != NULL ? v : "?";
}

/* Up to 8 values " v1 v2 ..." (then " ..."). */
static void print_values(const double *v, size_t n)
{
    for (size_t c = 0; c < n && c < 8; c++)
        printf(" %.4g", v[c]);
    printf("%s", n > 8 ? " ..." : "");
}

/* A list of names, "a, b, c" (at most 8, then ", ..."). */
static void print_names(const score_genmodel *gm, int which, size_t n)
{
    for (size_t i = 0; i < n && i < 8; i++)
        printf("%s%s", i ? ", " : "", score_genmodel_name(gm, which, i));
    printf("%s", n > 8 ? ", ..." : "");
}

/* The data transform: one line per column (name, shift, scale) up to INFO_COLUMNS columns,
 * beyond that the first 8 values of each. */
#define INFO_COLUMNS 16
static void print_transform(const score_genmodel *gm, size_t dim)
{
    double *shift = malloc(2 * dim * sizeof *shift);
    int has = shift != NULL ? score_genmodel_get_transform(gm, shift, shift + dim) : -1;
    if (has == 1 && dim <= INFO_COLUMNS) {
        printf("data scaling:  x_model = (x - shift) / scale, per column:\n");
        for (size_t c = 0; c < dim; c++) {
            const char *name = score_genmodel_name(gm, SCORE_GENMODEL_NAMES_COLUMNS, c);
            if (name != NULL)
                printf("  %-12s shift %.9g, scale %.9g\n", name, shift[c], shift[dim + c]);
            else
                printf("  column %-5zu shift %.9g, scale %.9g\n", c + 1, shift[c], shift[dim + c]);
        }
    } else if (has == 1) {
        printf("data scaling:  x_model = (x - shift) / scale, shift");
        print_values(shift, dim);
        printf(", scale");
        print_values(shift + dim, dim);
        printf("\n");
    } else if (has == 0) {
        printf("data scaling:  none (the network sees the data as they are)\n");
    }
    free(shift);
}

/* The lines of 'score info' on the meaning of a generative model: schedule, output, noise
 * level, data transform, dequantization, columns and condition spec; p_uncond, the label
 * dropout of the training, from the training record in @p meta when it is there. */
static void print_meaning(const score_genmodel *gm, const cli_meta *meta)
{
    static const struct { int id; const char *label; } shown[] = {
        {SCORE_SCHEDULE_PARAM_SIGMA_MIN, "sigma_min"}, {SCORE_SCHEDULE_PARAM_SIGMA_MAX, "sigma_max"},
        {SCORE_SCHEDULE_PARAM_BETA_MIN, "beta_min"}, {SCORE_SCHEDULE_PARAM_BETA_MAX, "beta_max"},
        {SCORE_SCHEDULE_PARAM_T, "T"}, {SCORE_SCHEDULE_PARAM_T_EPS, "t_eps"},
    };
    const score_schedule *sched = score_genmodel_schedule(gm);
    size_t dim = score_genmodel_dim(gm), nc = score_genmodel_num_classes(gm);
    size_t cd = score_genmodel_context_dim(gm);
    int64_t out = 0, cond = 0;
    double bin = 1;
    int dq = 0;
    printf("schedule:      %s", score_schedule_name(sched));
    for (size_t i = 0; i < sizeof shown / sizeof shown[0]; i++) {
        double x;
        if (score_schedule_get_f64(sched, shown[i].id, &x) == SCORE_OK)
            printf(", %s %g", shown[i].label, x);
    }
    if (score_schedule_is_discrete(sched) == 1)
        printf(", %zu levels", score_schedule_num_levels(sched));
    if (score_genmodel_is_classifier(gm) == 1) {
        /* the sde settings of a classifier's file are its target's and mean nothing here */
        printf("\nclassifier:    %zu classes", nc);
        if (score_genmodel_name(gm, SCORE_GENMODEL_NAMES_LABELS, 0) != NULL) {
            printf(" (");
            print_names(gm, SCORE_GENMODEL_NAMES_LABELS, nc);
            printf(")");
        }
        printf(", schedule %s; guides a generative model of this schedule and data transform "
               "(score sample MODEL --classifier FILE --class K)\n", score_schedule_name(sched));
        print_transform(gm, dim);
        if (score_genmodel_name(gm, SCORE_GENMODEL_NAMES_COLUMNS, 0) != NULL) {
            printf("columns:       ");
            print_names(gm, SCORE_GENMODEL_NAMES_COLUMNS, dim);
            printf("\n");
        }
        return;
    }
    if (score_genmodel_get_i64(gm, SCORE_SDE_PARAM_OUTPUT, &out) != SCORE_OK ||
        score_genmodel_get_i64(gm, SCORE_SDE_PARAM_COND, &cond) != SCORE_OK ||
        score_genmodel_get_dequant(gm, &dq, &bin) != SCORE_OK)
        return;
    printf("\noutput:        %s (conditioning %s)\n", cli_name_of(cli_outputs, (int)out),
           cli_name_of(cli_conds, (int)cond));
    if (score_genmodel_fixed_t(gm) > 0)
        printf("noise level:   trained at one time t = %g only (sample with --sampler langevin)\n",
               score_genmodel_fixed_t(gm));
    print_transform(gm, dim);
    if (dq == SCORE_GENMODEL_DEQUANT_UNIFORM)
        printf("dequantize:    uniform, bin width %g (likelihoods of x + bin u, u in [0, 1)^d)\n",
               bin);
    else
        printf("dequantize:    none (likelihoods are densities of continuous data)\n");
    if (score_genmodel_name(gm, SCORE_GENMODEL_NAMES_COLUMNS, 0) != NULL) {
        printf("columns:       ");
        print_names(gm, SCORE_GENMODEL_NAMES_COLUMNS, dim);
        printf("\n");
    }
    printf("condition:     ");
    if (nc == 0 && cd == 0)
        printf("none (unconditional)");
    if (nc > 0) {
        printf("class label, %zu classes", nc);
        if (score_genmodel_name(gm, SCORE_GENMODEL_NAMES_LABELS, 0) != NULL) {
            printf(" (");
            print_names(gm, SCORE_GENMODEL_NAMES_LABELS, nc);
            printf(")");
        }
        printf(", null label %zu", nc);
    }
    if (cd > 0) {
        printf("%scontext vector of width %zu", nc > 0 ? "; " : "", cd);
        if (score_genmodel_name(gm, SCORE_GENMODEL_NAMES_CONTEXT, 0) != NULL) {
            printf(" (");
            print_names(gm, SCORE_GENMODEL_NAMES_CONTEXT, cd);
            printf(")");
        }
    }
    printf("\n");
    if (nc > 0 && cli_meta_get(meta, "score.train.p_uncond") != NULL)
        printf("               trained with label dropout p_uncond %s\n",
               cli_meta_get(meta, "score.train.p_uncond"));
}

int cli_cmd_info(int argc, char **argv)
{
    const char *pos[1];
    int npos, help, rc;
    static const char text[] =
        "usage: score info MODEL.safetensors [--all]\n\n"
        "Describes a model file: network, schedule, parameterization, data transform,\n"
        "condition spec, training. MODEL '-' reads the model file from stdin.\n\n";
    if ((rc = cli_parse_command(argc, argv, info_opts, text, NULL, pos, 1, 1, &npos, &help)) !=
            0 || help)
        return rc;
    cli_model_file f;
    char err[700];
    if (cli_model_file_read(pos[0], 1, &f, err, sizeof err) != 0)
        return cli_fail("%s", err);
    score_model *model = f.gm ? score_genmodel_model(f.gm) : f.plain;
    const cli_meta *meta = &f.meta;
#define META(k) meta_or(meta, k)
    printf("file:          %s\n", pos[0]);
    printf("model:         %s, dim %zu, %zu parameters (written by libscore %s)\n",
           META("kind"), score_model_dim(model), score_model_param_count(model),
           META("library"));
    if (cli_meta_get(meta, "widths") != NULL)
        printf("network:       hidden widths %s, activation %s, residual %s, embedding %s (%s)\n",
               META("widths"), META("activation"), META("residual"),
               META("embedding"), META("embed_dim"));
    if (cli_meta_get(meta, "unet_mults") != NULL)
        printf("network:       U-Net on %sx%sx%s images, base width %s, multipliers %s, %s blocks "
               "per level, %s groups, attention %s, embedding %s (%s), width T %s\n",
               META("channels"), META("height"), META("width"), META("unet_base_width"),
               META("unet_mults"), META("unet_blocks"), META("unet_groups"),
               META("unet_attention"), META("embedding"), META("embed_dim"),
               META("unet_temb_dim"));
    if (f.gm != NULL)
        print_meaning(f.gm, meta);
    else
        printf("generative:    no, a plain network file (%s)\n", f.refusal);
    if (cli_meta_get(meta, "score.train.loss") != NULL) {
        printf("training:      %s loss", META("score.train.loss"));
        if (cli_meta_get(meta, "score.train.weighting"))
            printf(" (%s weighting)", META("score.train.weighting"));
        printf(" on %s (%s rows), %s steps of batch %s, %s lr %s, EMA %s, seed %s\n",
               META("score.train.data"), META("score.train.rows"), META("score.train.steps"),
               META("score.train.batch"), META("score.train.optimizer"), META("score.train.lr"),
               META("score.train.ema"), META("score.train.seed"));
        printf("               final loss %s", META("score.train.final_loss"));
        if (cli_meta_get(meta, "score.train.seconds"))   /* files of earlier versions */
            printf(", %s s", META("score.train.seconds"));
        if (cli_meta_get(meta, "score.train.valid_loss"))
            printf("; held-out loss %s (%s rows%s%s)", META("score.train.valid_loss"),
                   META("score.train.valid_rows"),
                   cli_meta_get(meta, "score.train.best_step") ? ", best at step " : "",
                   cli_meta_get(meta, "score.train.best_step") ? META("score.train.best_step")
                                                               : "");
        fputc('\n', stdout);
    }
#undef META
    printf("mpi:           %s\n", cli_mpi_info());
    if (cli_opt_flag(info_opts, "all")) {
        printf("metadata:\n");
        for (size_t i = 0; i < meta->n; i++)
            printf("  %-28s %s\n", meta->keys[i], meta->values[i]);
    }
    cli_model_file_free(&f);
    return 0;
}

/* ---- convert -------------------------------------------------------------------------- */

static cli_opt conv_opts[] = {
    {"output", 'o', 1, "FILE", "generative model file to write [required]", NULL},
    {"schedule", 0, 1, "NAME", "the schedule the network was trained with [required]", NULL},
    {"predict", 0, 1, "KIND", "what the network outputs: eps, score, x0, v, edm, score-over-sigma [required]", NULL},
    {"cond", 0, 1, "KIND", "network input c(t): default, t, t-scaled, sigma, log-sigma-4 [default]", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

/* A plain network file (score_model_save(), examples/python/export_torch.py) and the facts it
 * does not record -> a generative model file, through score_genmodel_new(). */
int cli_cmd_convert(int argc, char **argv)
{
    const char *pos[1];
    int npos, help, rc, output = 0, cond = SCORE_COND_DEFAULT;
    static const char text[] =
        "usage: score convert NETWORK.safetensors -o MODEL.safetensors --schedule NAME\n"
        "                     --predict KIND [--cond KIND]\n\n"
        "Makes a generative model file (what 'score sample' and 'score loglik' read) of a\n"
        "plain network file, which does not say how its output becomes a score. The data\n"
        "transform is the identity. NETWORK '-' reads stdin.\n\n";
    if ((rc = cli_parse_command(argc, argv, conv_opts, text, cli_print_schedules, pos, 1, 1,
                                &npos, &help)) != 0 || help)
        return rc;
    const char *out = cli_opt_get(conv_opts, "output"), *sname = cli_opt_get(conv_opts, "schedule");
    if (out == NULL || sname == NULL || cli_opt_get(conv_opts, "predict") == NULL)
        return cli_usage_error("give -o MODEL.safetensors, --schedule NAME and --predict KIND");
    if ((rc = cli_binary_output_check("-o", out)) != 0)
        return rc;
    if ((rc = cli_opt_lookup(conv_opts, "predict", cli_outputs, "output kind (--predict)",
                             &output)) != 0 ||
        (rc = cli_opt_lookup(conv_opts, "cond", cli_conds, "conditioning (--cond)", &cond)) != 0)
        return rc;
    score_schedule *sched = NULL;
    if ((rc = cli_schedule_from_name(sname, &sched)) != 0)
        return rc;
    unsigned char *buf = NULL;
    size_t len = 0;
    char err[512];
    score_model *net = NULL;
    score_sde *sde = NULL;
    score_genmodel *gm = NULL;
    if (cli_read_input(pos[0], "model file ", cli_input_limit(CLI_MODEL_INPUT_LIMIT), &buf, &len,
                       err, sizeof err) != 0)
        rc = cli_fail("%s", err);
    else if (score_model_load_buffer(&net, buf, len) != SCORE_OK)
        rc = cli_fail("'%s' is not a usable model file: %s", pos[0], score_last_error_message());
    else if ((rc = score_sde_new(&sde, sched, net, output)) != SCORE_OK ||
             (rc = score_sde_set_i64(sde, SCORE_SDE_PARAM_COND, cond)) != SCORE_OK ||
             (rc = score_genmodel_new(&gm, sde)) != SCORE_OK)
        rc = cli_lib_fail(rc, "generative model");
    else if ((rc = score_genmodel_save(gm, out)) != SCORE_OK)
        rc = cli_fail("cannot write '%s': %s", out, score_last_error_message());
    free(buf);
    score_genmodel_free(gm);
    score_sde_free(sde);
    score_model_free(net);
    score_schedule_free(sched);
    return rc;
}

/* ---- distance ------------------------------------------------------------------------- */

static cli_opt dist_opts[] = {
    {"projections", 0, 1, "K", "random directions [256]", NULL},
    {"seed", 0, 1, "N", "seed of the directions [0]", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

int cli_cmd_distance(int argc, char **argv)
{
    const char *pos[2];
    int npos, help, rc;
    static const char text[] =
        "usage: score distance A.csv B.csv [options]\n\n"
        "Prints the sliced Wasserstein-2 distance between two point sets ('-' = stdin).\n\n";
    if ((rc = cli_parse_command(argc, argv, dist_opts, text, NULL, pos, 2, 2, &npos, &help)) !=
            0 || help)
        return rc;
    size_t proj = 256;
    uint64_t seed = 0;
    if ((rc = cli_opt_size(dist_opts, "projections", 1, 1000000, &proj)) ||
        (rc = cli_opt_u64(dist_opts, "seed", &seed)) || (rc = cli_stdin_once(pos, 2)))
        return rc;
    cli_table a, b;
    char err[512];
    if (cli_csv_read(pos[0], &a, err, sizeof err) != 0)
        return cli_fail("%s", err);
    if (cli_csv_read(pos[1], &b, err, sizeof err) != 0) {
        cli_table_free(&a);
        return cli_fail("%s", err);
    }
    int status = 0;
    if (a.cols != b.cols) {
        status = cli_fail("dimension mismatch: %s has %zu columns, %s has %zu", pos[0], a.cols,
                          pos[1], b.cols);
    } else {
        double d = cli_sliced_w2(a.data, a.rows, b.data, b.rows, a.cols, proj, seed);
        if (d < 0)
            status = cli_fail("out of memory");
        else
            printf("%.6g\n", d);
    }
    cli_table_free(&a);
    cli_table_free(&b);
    return status;
}
