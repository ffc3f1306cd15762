/* score energy: the energy of every row of a CSV under an energy model file (or an analytic
 * one), in the data's units: E(x) = U(x_model, t) + sum_j log scale_j, U the sde's energy at
 * time t (score_sde_energy()) and x_model the model's transform of the row, i.e. -log p_t(x)
 * up to the model's normalising constant. High energy = unlikely row (anomaly scores). */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static cli_opt e_opts[] = {
    {"output", 'o', 1, "FILE", "per-row CSV (energy); '-' = stdout", NULL},
    {"t", 0, 1, "T", "time (noise level) of the energy [the schedule's t_eps, or the model's fixed time]", NULL},
    {"delimiter", 0, 1, "C", "CSV field delimiter: ',', ';' or 'tab' [,]", NULL},
    {"batch", 0, 1, "N", "rows per library call [1024]", NULL},
    {"threads", 0, 1, "N", "threads of the network (results do not depend on it) [1]", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

int cli_cmd_energy(int argc, char **argv)
{
    static const char text[] =
        "usage: score energy MODEL.safetensors DATA.csv [options]\n\n"
        "The energy of every row: for a model trained with --model energy (or an analytic\n"
        "model), E(x) = -log p_t(x) up to the model's normalising constant, in the data's\n"
        "units (the model's data transform included), at the time --t (default: the\n"
        "smallest time the model was trained at). Rows the model finds unlikely have a high\n"
        "energy: a score for anomaly detection. Prints the mean and the quantiles.\n"
        "MODEL or DATA may be '-' (stdin).\n\n"
        "options:\n";
    static const char *hdr[1] = {"energy"};
    const char *pos[2];
    cli_model_file file;
    cli_table tab;
    score_sde *sde = NULL;
    char err[512], delim = ',';
    size_t batch = 1024, dim, rows;
    double t = 0, logdet = 0, mean = 0;
    double *shift = NULL, *scale = NULL, *E = NULL, *tt = NULL;
    float *xm = NULL, *out = NULL;
    int npos, help, rc;
    cli_csv_opts co;
    if ((rc = cli_parse_command(argc, argv, e_opts, text, NULL, pos, 2, 2, &npos, &help)) != 0 ||
        help)
        return rc;
    if ((rc = cli_opt_size(e_opts, "batch", 1, (size_t)1 << 24, &batch)) ||
        (rc = cli_opt_double(e_opts, "t", 0, 1e30, &t)) ||
        (rc = cli_csv_delimiter(cli_opt_get(e_opts, "delimiter"), &delim)) ||
        (rc = cli_stdin_once(pos, 2)))
        return rc;
    memset(&tab, 0, sizeof tab);
    if ((rc = cli_model_file_load(pos[0], e_opts, &file)) != 0)
        return rc;
    dim = score_genmodel_dim(file.gm);
    co = (cli_csv_opts){.delimiter = delim};
    if (!score_model_has_energy(score_genmodel_model(file.gm))) {
        rc = cli_fail("%s: its %s network has no energy (train one with --model energy)",
                      pos[0], score_model_kind(score_genmodel_model(file.gm)) == SCORE_MODEL_MLP
                                  ? "MLP" : "");
        goto done;
    }
    if (cli_csv_read_opts(pos[1], &co, &tab, err, sizeof err) != 0) {
        rc = cli_fail("%s", err);
        goto done;
    }
    if (tab.cols != dim) {
        rc = cli_fail("%s has %zu columns but the model's dimension is %zu", pos[1], tab.cols, dim);
        goto done;
    }
    if (cli_opt_get(e_opts, "t") == NULL) {
        t = score_genmodel_fixed_t(file.gm);
        if (!(t > 0) && score_schedule_get_f64(score_genmodel_schedule(file.gm),
                                               SCORE_SCHEDULE_PARAM_T_EPS, &t) != SCORE_OK) {
            rc = cli_fail("%s: no default time", pos[0]);
            goto done;
        }
    }
    rows = tab.rows;
    shift = malloc(dim * sizeof *shift);
    scale = malloc(dim * sizeof *scale);
    E = malloc((rows ? rows : 1) * sizeof *E);
    tt = malloc(batch * sizeof *tt);
    xm = malloc(batch * dim * sizeof *xm);
    out = malloc((rows ? rows : 1) * sizeof *out);
    if (shift == NULL || scale == NULL || E == NULL || tt == NULL || xm == NULL || out == NULL) {
        rc = cli_fail("out of memory");
        goto done;
    }
    (void)score_genmodel_get_transform(file.gm, shift, scale);
    for (size_t j = 0; j < dim; j++)
        logdet += log(scale[j]);
    for (size_t b = 0; b < batch; b++)
        tt[b] = t;
    if ((rc = score_genmodel_sde(file.gm, &sde)) != SCORE_OK) {
        rc = cli_lib_fail(rc, "sde");
        goto done;
    }
    for (size_t r0 = 0; r0 < rows; r0 += batch) {
        size_t m = rows - r0 < batch ? rows - r0 : batch;
        for (size_t q = 0; q < m * dim; q++) {
            size_t j = q % dim;
            xm[q] = (float)(((double)tab.data[r0 * dim + q] - shift[j]) / scale[j]);
        }
        if ((rc = score_sde_energy(sde, m, tt, xm, E + r0)) != SCORE_OK) {
            rc = cli_lib_fail(rc, "energy");
            goto done;
        }
    }
    for (size_t i = 0; i < rows; i++) {
        E[i] += logdet;
        out[i] = (float)E[i];
        mean += E[i] / (double)rows;
    }
    if (cli_opt_get(e_opts, "output") != NULL &&
        cli_csv_write(cli_opt_get(e_opts, "output"), out, rows, 1, hdr, err, sizeof err) != 0) {
        rc = cli_fail("%s", err);
        goto done;
    }
    {
        const char *o = cli_opt_get(e_opts, "output");
        FILE *sf = o != NULL && strcmp(o, "-") == 0 ? stderr : stdout;
        fprintf(sf, "mean energy %.6g (%zu rows, dim %zu, t = %g)\n", mean, rows, dim, t);
    }
    rc = 0;
done:
    score_sde_free(sde);
    cli_model_file_free(&file);
    cli_table_free(&tab);
    free(shift);
    free(scale);
    free(E);
    free(tt);
    free(xm);
    free(out);
    return rc;
}
