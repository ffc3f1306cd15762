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

/* The lines of 'score info' on the system a model file records: schedule, output, noise level,
 * data scaling. */
static void print_system(const cli_meta *meta, size_t dim)
{
    static const struct { int id; const char *label; } shown[] = {
        {SCORE_SCHEDULE_PARAM_SIGMA_MIN, "sigma_min"}, {SCORE_SCHEDULE_PARAM_SIGMA_MAX, "sigma_max"},
        {SCORE_SCHEDULE_PARAM_BETA_MIN, "beta_min"}, {SCORE_SCHEDULE_PARAM_BETA_MAX, "beta_max"},
        {SCORE_SCHEDULE_PARAM_T, "T"}, {SCORE_SCHEDULE_PARAM_T_EPS, "t_eps"},
    };
    cli_system sys;
    char err[512];
    if (cli_meta_get(meta, "score.schedule") == NULL) {
        printf("schedule:      none recorded (not written by 'score train'): sample it with "
               "--schedule NAME --predict KIND\n");
        return;
    }
    if (cli_system_from_meta(meta, dim, &sys, err, sizeof err) != 0) {
        printf("schedule:      unusable (%s)\n", err);
        return;
    }
    printf("schedule:      %s", score_schedule_name(sys.sched));
    for (size_t i = 0; i < sizeof shown / sizeof shown[0]; i++) {
        double x;
        if (score_schedule_get_f64(sys.sched, shown[i].id, &x) == SCORE_OK)
            printf(", %s %g", shown[i].label, x);
    }
    if (score_schedule_is_discrete(sys.sched) == 1)
        printf(", %zu levels", score_schedule_num_levels(sys.sched));
    printf("\noutput:        %s (conditioning %s)\n", cli_name_of(cli_outputs, sys.output_kind),
           cli_name_of(cli_conds, sys.cond_kind));
    if (sys.fixed_t > 0)
        printf("noise level:   trained at one time t = %g only (sample with --sampler langevin)\n",
               sys.fixed_t);
    if (sys.shift != NULL) {
        printf("data scaling:  x_model = (x - shift) / scale, shift");
        print_values(sys.shift, sys.dim);
        printf(", scale");
        print_values(sys.scale, sys.dim);
        printf("\n");
    }
    cli_system_free(&sys);
}

int cli_cmd_info(int argc, char **argv)
{
    const char *pos[1];
    int npos, help, rc;
    static const char text[] =
        "usage: score info MODEL.safetensors [--all]\n\n"
        "Describes a model file: network, schedule, parameterization, training.\n"
        "MODEL '-' reads the model file from stdin.\n\n";
    if ((rc = cli_parse_command(argc, argv, info_opts, text, NULL, pos, 1, 1, &npos, &help)) !=
            0 || help)
        return rc;
    score_model *model;
    cli_meta meta;
    char err[512];
    if (cli_model_read(pos[0], &model, &meta, err, sizeof err) != 0)
        return cli_fail("%s", err);
#define META(k) meta_or(&meta, k)
    printf("file:          %s\n", pos[0]);
    printf("model:         %s, dim %zu, %zu parameters (written by libscore %s)\n",
           META("kind"), score_model_dim(model), score_model_param_count(model),
           META("library"));
    if (cli_meta_get(&meta, "widths") != NULL)
        printf("network:       hidden widths %s, activation %s, residual %s, embedding %s (%s)\n",
               META("widths"), META("activation"), META("residual"),
               META("embedding"), META("embed_dim"));
    print_system(&meta, score_model_dim(model));
    if (cli_meta_get(&meta, "score.train.loss") != NULL) {
        printf("training:      %s loss", META("score.train.loss"));
        if (cli_meta_get(&meta, "score.train.weighting"))
            printf(" (%s weighting)", META("score.train.weighting"));
        printf(" on %s (%s rows), %s steps of batch %s, %s lr %s, EMA %s, seed %s\n",
               META("score.train.data"), META("score.train.rows"), META("score.train.steps"),
               META("score.train.batch"), META("score.train.optimizer"), META("score.train.lr"),
               META("score.train.ema"), META("score.train.seed"));
        printf("               final loss %s, %s s\n", META("score.train.final_loss"),
               META("score.train.seconds"));
    }
#undef META
    if (cli_opt_flag(info_opts, "all")) {
        printf("metadata:\n");
        for (size_t i = 0; i < meta.n; i++)
            printf("  %-28s %s\n", meta.keys[i], meta.values[i]);
    }
    score_model_free(model);
    cli_meta_free(&meta);
    return 0;
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
