/* score loglik: log-likelihoods of the rows of a CSV under a model file, in the data's units
 * (the generative model's transform and dequantization), with their distribution: mean,
 * median and quantiles of the per-row values. */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- loglik --------------------------------------------------------------------------- */

static cli_opt l_opts[] = {
    {"output", 'o', 1, "FILE", "per-row CSV (log_likelihood_nats,bits_per_dim); '-' = stdout", NULL},
    {"exact", 0, 0, NULL, "exact divergence (default for dim <= 32)", NULL},
    {"hutchinson", 0, 1, "K", "Hutchinson divergence estimate with K probes per row", NULL},
    {"rtol", 0, 1, "X", "ODE relative tolerance [1e-5]", NULL},
    {"atol", 0, 1, "X", "ODE absolute tolerance [1e-5]", NULL},
    {"offset", 0, 1, "BITS", "a constant added to every bits/dim value, e.g. for data on another grid than the model's dequantization [0]", NULL},
    {"delimiter", 0, 1, "C", "CSV field delimiter: ',', ';' or 'tab' [,]", NULL},
    {"seed", 0, 1, "N", "seed of the Hutchinson probes [0]", NULL},
    {"batch", 0, 1, "N", "rows per library call [1024]", NULL},
    {"threads", 0, 1, "N", "threads evaluating blocks of rows at a time (results do not depend on it; set OPENBLAS_NUM_THREADS=1) [1]", NULL},
    {"quiet", 'q', 0, NULL, "no progress bar", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

/* The options of one run, read and range-checked. */
typedef struct loglik_opts {
    const char *model, *data, *output;
    size_t k, batch;          /* k: Hutchinson probes, 0 = exact / automatic */
    double rtol, atol, offset;
    uint64_t seed;
    int exact, quiet;
    char delimiter;
} loglik_opts;

/* Parses the command line into o; prints the help (and sets *help) for --help. */
static int read_loglik_options(int argc, char **argv, loglik_opts *o, int *help)
{
    const char *pos[2];
    int npos, rc;
    static const char text[] =
        "usage: score loglik MODEL.safetensors DATA.csv [options]\n\n"
        "Log-likelihood of every row through the probability-flow ODE, in the data's own units\n"
        "(the model's data transform and, for a model trained with --dequantize uniform, the\n"
        "probability of each row's integer cell), and bits per dimension. Prints the mean, the\n"
        "median and the 5/25/75/95% quantiles (linear between order statistics) of both over\n"
        "the rows. For a model trained with --condition-columns, DATA has those columns too\n"
        "(by header name): each row is evaluated with its own condition vector.\n"
        "MODEL or DATA may be '-' (stdin).\n\n"
        "options:\n";
    if ((rc = cli_parse_command(argc, argv, l_opts, text, NULL, pos, 2, 2, &npos, help)) != 0 ||
        *help)
        return rc;
    *o = (loglik_opts){.model = pos[0], .data = pos[1], .output = cli_opt_get(l_opts, "output"),
                       .k = 0, .batch = 1024, .rtol = 1e-5, .atol = 1e-5, .offset = 0, .seed = 0,
                       .exact = cli_opt_flag(l_opts, "exact"),
                       .quiet = cli_opt_flag(l_opts, "quiet"), .delimiter = ','};
    if ((rc = cli_opt_size(l_opts, "hutchinson", 1, 4096, &o->k)) ||
        (rc = cli_opt_size(l_opts, "batch", 1, (size_t)1 << 24, &o->batch)) ||
        (rc = cli_opt_double(l_opts, "rtol", 0, 1, &o->rtol)) ||
        (rc = cli_opt_double(l_opts, "atol", 0, 1e6, &o->atol)) ||
        (rc = cli_opt_double(l_opts, "offset", -1000, 1000, &o->offset)) ||
        (rc = cli_opt_u64(l_opts, "seed", &o->seed)) ||
        (rc = cli_csv_delimiter(cli_opt_get(l_opts, "delimiter"), &o->delimiter)))
        return rc;
    if (o->k && o->exact)
        return cli_usage_error("--exact and --hutchinson exclude each other");
    return cli_stdin_once(pos, 2);
}

/* What a run holds; loglik_job_free() releases it. */
typedef struct loglik_job {
    cli_model_file file;
    size_t dim;
    cli_table t;              /* the rows, in data units */
    score_sde *sde;
    score_likelihood *lk;
    score_rng *rng;
    double *lp, *bpd;         /* per-row log-likelihood and bits/dim in data units */
    float *context;           /* rows x context_dim condition values, or NULL */
    size_t context_dim;
    double elapsed;
} loglik_job;

static void loglik_job_free(loglik_job *j)
{
    score_likelihood_free(j->lk);
    score_sde_free(j->sde);
    score_rng_free(j->rng);
    cli_model_file_free(&j->file);
    cli_table_free(&j->t);
    free(j->lp);
    free(j->bpd);
    free(j->context);
}

/* The rows of the CSV file, checked against the model. */
static int load_loglik_data(const loglik_opts *o, loglik_job *j)
{
    char err[512];
    cli_csv_opts co = {.delimiter = o->delimiter};
    j->dim = score_genmodel_dim(j->file.gm);
    size_t m = score_genmodel_context_dim(j->file.gm);
    if (cli_csv_read_opts(o->data, &co, &j->t, err, sizeof err) != 0)
        return cli_fail("%s", err);
    if (m > 0) {   /* each row's condition vector: the columns named as at training */
        const char **names = malloc(m * sizeof *names);
        if (names == NULL)
            return cli_fail("out of memory");
        for (size_t k = 0; k < m; k++)
            names[k] = score_genmodel_name(j->file.gm, SCORE_GENMODEL_NAMES_CONTEXT, k);
        int rc = 0;
        for (size_t k = 0; k < m && rc == 0; k++)
            if (names[k] == NULL)
                rc = cli_fail("%s takes a condition vector but does not name its columns",
                              o->model);
        if (rc == 0 && cli_table_take_columns(&j->t, m, names, &j->context, err, sizeof err))
            rc = cli_fail("%s: the condition columns of %s: %s", o->data, o->model, err);
        free(names);
        if (rc != 0)
            return rc;
        j->context_dim = m;
    }
    if (j->t.cols != j->dim)
        return cli_fail("%s has %zu column%s but the model's dimension is %zu", o->data,
                        j->t.cols, j->t.cols == 1 ? "" : "s", j->dim);
    if (score_genmodel_fixed_t(j->file.gm) > 0)
        return cli_fail("%s was trained at one noise level only: it has no likelihood", o->model);
    return 0;
}

/* The sde, the likelihood object with its divergence and tolerances, and the probes' rng. */
static int set_up_likelihood(const loglik_opts *o, loglik_job *j)
{
    int rc;
    int div = o->k ? SCORE_LIKELIHOOD_DIV_HUTCHINSON
                   : (o->exact ? SCORE_LIKELIHOOD_DIV_EXACT : SCORE_LIKELIHOOD_DIV_AUTO);
    if ((rc = score_genmodel_sde(j->file.gm, &j->sde)) != SCORE_OK ||
        (rc = score_likelihood_new(&j->lk, j->dim)) != SCORE_OK ||
        (rc = score_likelihood_set_comm(j->lk, cli_mpi_comm())) != SCORE_OK ||
        (rc = score_likelihood_set_i64(j->lk, SCORE_LIKELIHOOD_PARAM_DIVERGENCE, div)) != SCORE_OK ||
        (o->k && (rc = score_likelihood_set_i64(j->lk, SCORE_LIKELIHOOD_PARAM_N_PROBES,
                                                (int64_t)o->k))) ||
        (rc = score_likelihood_set_f64(j->lk, SCORE_LIKELIHOOD_PARAM_RTOL, o->rtol)) != SCORE_OK ||
        (rc = score_likelihood_set_f64(j->lk, SCORE_LIKELIHOOD_PARAM_ATOL, o->atol)) != SCORE_OK ||
        (rc = score_rng_new(&j->rng, SCORE_RNG_PHILOX4X32_10, o->seed)) != SCORE_OK)
        return cli_lib_fail(rc, "likelihood");
    return 0;
}

/* The log-likelihood of every row in data units (score_genmodel_logp(): the transform's
 * log-determinant and the model's dequantization included), over blocks of --batch rows. */
static int run_likelihood(const loglik_opts *o, loglik_job *j)
{
    size_t rows = j->t.rows, batch = o->batch;
    cli_progress bar;
    if ((j->lp = malloc(rows * sizeof *j->lp)) == NULL ||
        (j->bpd = malloc(rows * sizeof *j->bpd)) == NULL)
        return cli_fail("out of memory");
    cli_progress_start(&bar, "loglik", rows, o->quiet);
    double t0 = cli_now();
    size_t cm = j->context_dim;
    for (size_t row0 = 0; row0 < rows;) {
        /* a block: at most --batch rows, and with conditions, rows of one condition vector */
        size_t m = rows - row0 < batch ? rows - row0 : batch;
        int rc = SCORE_OK;
        if (cm > 0) {
            const float *c0 = j->context + row0 * cm;
            size_t k = 1;
            while (k < m && memcmp(c0, c0 + k * cm, cm * sizeof *c0) == 0)
                k++;
            m = k;
            rc = score_sde_set_context(j->sde, cm, c0);
        }
        if (rc == SCORE_OK)
            rc = score_genmodel_logp(j->file.gm, j->lk, j->sde, row0, m,
                                     j->t.data + row0 * j->dim, j->lp + row0, j->bpd + row0,
                                     j->rng);
        if (rc != SCORE_OK) {
            cli_progress_finish(&bar);
            return cli_lib_fail(rc, "likelihood");
        }
        cli_progress_update(&bar, row0 + m, NULL, 0);
        row0 += m;
    }
    cli_progress_finish(&bar);
    j->elapsed = cli_now() - t0;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The p-quantile of n sorted values, linear between the order statistics at (n - 1) p. */
static double quantile(const double *sorted, size_t n, double p)
{
    double h = (double)(n - 1) * p;
    size_t k = (size_t)h;
    if (k + 1 >= n)
        return sorted[n - 1];
    return sorted[k] + (h - (double)k) * (sorted[k + 1] - sorted[k]);
}

/* One line: the median and quantiles of n values (sorted in place). */
static void print_spread(FILE *f, const char *what, double *v, size_t n)
{
    static const double p[] = {0.05, 0.25, 0.75, 0.95};
    qsort(v, n, sizeof *v, cmp_double);
    fprintf(f, "%s: median %.6g, quantiles", what, quantile(v, n, 0.5));
    for (size_t k = 0; k < sizeof p / sizeof p[0]; k++)
        fprintf(f, " %g%% %.6g%s", 100 * p[k], quantile(v, n, p[k]), k + 1 < 4 ? "," : "");
    fputc('\n', f);
}

/* Per-row results in the data's units (-o), the mean line and the spread of the rows. */
static int report_likelihood(const loglik_opts *o, const loglik_job *j)
{
    static const char *hdr[2] = {"log_likelihood_nats", "bits_per_dim"};
    size_t rows = j->t.rows, dim = j->dim;
    char err[512];
    float *res = malloc(rows * 2 * sizeof *res);
    if (res == NULL)
        return cli_fail("out of memory");
    double mean_lp = 0, mean_bpd = 0;
    for (size_t i = 0; i < rows; i++) {
        double l = j->lp[i];
        double b = j->bpd[i] + o->offset;
        res[2 * i] = (float)l;
        res[2 * i + 1] = (float)b;
        mean_lp += l / (double)rows;
        mean_bpd += b / (double)rows;
    }
    int rc = o->output != NULL && cli_csv_write(o->output, res, rows, 2, hdr, err, sizeof err);
    free(res);
    if (rc != 0)
        return cli_fail("%s", err);
    FILE *sf = o->output != NULL && strcmp(o->output, "-") == 0 ? stderr : stdout;
    int deq = SCORE_GENMODEL_DEQUANT_NONE;
    if (score_genmodel_get_dequant(j->file.gm, &deq, NULL) != SCORE_OK)
        deq = SCORE_GENMODEL_DEQUANT_NONE;
    fprintf(sf, "mean log-likelihood %.6g nats, %.6g bits/dim (%zu rows, dim %zu, %s divergence, "
            "%s, %.2f s)\n", mean_lp, mean_bpd, rows, dim,
            o->k ? "Hutchinson" : (dim <= 32 || o->exact ? "exact" : "Hutchinson"),
            deq == SCORE_GENMODEL_DEQUANT_UNIFORM ? "uniform dequantization (bin 1)"
                                                  : "no dequantization", j->elapsed);
    double *v = malloc(rows * sizeof *v);
    if (v == NULL)
        return cli_fail("out of memory");
    memcpy(v, j->lp, rows * sizeof *v);
    print_spread(sf, "log-likelihood (nats)", v, rows);
    for (size_t i = 0; i < rows; i++)
        v[i] = j->bpd[i] + o->offset;
    print_spread(sf, "bits/dim", v, rows);
    free(v);
    return 0;
}

int cli_cmd_loglik(int argc, char **argv)
{
    loglik_opts o;
    loglik_job j;
    int help, rc;
    if ((rc = read_loglik_options(argc, argv, &o, &help)) != 0 || help)
        return rc;
    memset(&j, 0, sizeof j);
    if (cli_mpi_rank() != 0) /* under mpirun rank 0 alone prints and writes */
        o.quiet = 1;
    if ((rc = cli_model_file_load(o.model, l_opts, &j.file)) == 0 &&
        (rc = load_loglik_data(&o, &j)) == 0)
        rc = set_up_likelihood(&o, &j);
    if ((rc = cli_mpi_agree(rc)) == 0 && (rc = run_likelihood(&o, &j)) == 0 &&
        cli_mpi_rank() == 0)
        rc = report_likelihood(&o, &j);
    loglik_job_free(&j);
    return rc;
}
