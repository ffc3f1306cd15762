/* score train: what a run leaves. The saved generative model with its training record, the
 * --plot picture (score field and loss curves) and the summary lines. */
#include "train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define opts cli_train_opts

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
    f->t = train_time_of_sigma(score_genmodel_schedule(gm), sigma_model);
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

/* The mean loss of the first and of the last `tail` steps of this run (at most 100). The last
 * ones continue those of the checkpoint's run after --resume with held-out evaluations (its
 * last losses are in its held-out state), so that the record is that of an uninterrupted run. */
static size_t loss_ends(const train_job *j, double *first, double *last)
{
    size_t n = j->end_step - j->start_step, tail = n < 100 ? n : 100;
    size_t more = 100 - tail < j->n_prior_losses ? 100 - tail : j->n_prior_losses;
    double sum = 0;
    size_t k = 0;
    for (size_t i = j->n_prior_losses - more; i < j->n_prior_losses; i++)
        if (isfinite(j->prior_losses[i]))
            sum += j->prior_losses[i], k++;
    for (size_t i = n - tail; i < n; i++)
        if (isfinite(j->ctx.losses[i]))
            sum += j->ctx.losses[i], k++;
    *last = k ? sum / (double)k : NAN;
    *first = mean_finite(j->ctx.losses, tail);
    return tail;
}

/* The descriptive record of the training run (user metadata: it carries no meaning). It holds
 * no clock time, so that the same training writes the same file. */
static int record_training(const train_opts *o, const train_job *j, score_model *m)
{
    char v[64];
    double first, last;
    loss_ends(j, &first, &last);
    struct { const char *key; const char *value; } e[] = {
        {"score.train.loss", cli_name_of(cli_train_losses, o->loss_kind)},
        {"score.train.data", o->datafile ? o->datafile : o->dataset},
        {"score.train.optimizer", cli_name_of(cli_train_optimizers, o->opt_kind)},
        {"score.train.weighting",
         o->loss_kind == SCORE_LOSS_SDE ? cli_name_of(cli_train_weightings, o->weighting) : NULL},
    };
    for (size_t i = 0; i < sizeof e / sizeof e[0]; i++)
        if (e[i].value != NULL && score_model_set_metadata(m, e[i].key, e[i].value) != SCORE_OK)
            return -1;
#define REC(key, ...) \
    (snprintf(v, sizeof v, __VA_ARGS__), score_model_set_metadata(m, "score.train." key, v))
    if (REC("rows", "%zu", j->n_train) || REC("steps", "%zu", j->end_step) ||
        REC("batch", "%zu", o->batch) || REC("lr", "%g", o->lr) || REC("ema", "%g", o->ema) ||
        REC("seed", "%llu", (unsigned long long)o->seed) || REC("final_loss", "%.6g", last))
        return -1;
    if (j->n_evals > 0) {
        const train_eval *b = &j->evals[j->best_eval];
        if (REC("valid_rows", "%zu", j->n_valid) ||
            REC("valid_loss", "%.6g", j->best != NULL ? b->loss : j->evals[j->n_evals - 1].loss) ||
            (j->best != NULL && REC("best_step", "%zu", b->step)))
            return -1;
    }
    /* the label dropout the class-conditional network was trained with */
    double pu;
    if (j->labels != NULL &&
        score_trainer_get_f64(j->tr, SCORE_TRAINER_PARAM_P_UNCOND, &pu) == SCORE_OK &&
        REC("p_uncond", "%g", pu))
        return -1;
    /* image data: the shape and the value range, for 'score sample --png' */
    if (j->img_c > 0 && REC("image.shape", "%zux%zux%zu", j->img_c, j->img_h, j->img_w))
        return -1;
    if ((j->images || j->img_c > 0) &&
        REC("image.range", "%.9g,%.9g", j->range_lo, j->range_hi))
        return -1;
#undef REC
    return 0;
}

/* The column names stored in the model: the CSV header, x1 .. xd for a toy dataset, none for
 * a CSV without header. */
static int set_column_names(const train_job *j, score_genmodel *gm)
{
    if (j->images)   /* pixels have no names */
        return SCORE_OK;
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
int train_save_model(const train_opts *o, const train_job *j)
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
    if (rc == SCORE_OK && j->context_dim > 0)
        rc = score_genmodel_set_names(gm, SCORE_GENMODEL_NAMES_CONTEXT, j->context_dim,
                                      (const char *const *)j->context_names);
    if (rc == SCORE_OK)   /* uniform offsets of one integer unit: bin 1 in data units */
        rc = score_genmodel_set_dequant(gm, o->dequantize, 1.0);
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
int train_plot(const train_opts *o, train_job *j)
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
             o->datafile ? o->datafile : o->dataset, cli_name_of(cli_train_losses, o->loss_kind),
             score_schedule_name(j->sched), j->end_step);
    double *vs = NULL, *vl = NULL;
    if (j->n_evals > 0) {
        vs = malloc(j->n_evals * sizeof *vs);
        vl = malloc(j->n_evals * sizeof *vl);
        if (vs == NULL || vl == NULL) {
            free(vs);
            free(vl);
            free_field(&field);
            return cli_fail("out of memory");
        }
        for (size_t k = 0; k < j->n_evals; k++)
            vs[k] = (double)j->evals[k].step, vl[k] = j->evals[k].loss;
    }
    cli_loss_curves curves = {.loss = j->ctx.losses, .steps = j->end_step - j->start_step,
                              .first_step = j->start_step, .valid_step = vs, .valid_loss = vl,
                              .n_valid = j->n_evals};
    rc = cli_plot_training(o->plot, j->data, j->rows, j->dim, cx, cy,
                           (const char *const *)j->table.names, &field, &curves, title, err,
                           sizeof err);
    free(vs);
    free(vl);
    free_field(&field);
    return rc != 0 ? cli_fail("%s", err) : 0;
}

/* The two summary lines on stderr (unless --quiet). */
void train_print_summary(const train_opts *o, const train_job *j)
{
    double first, last;
    size_t tail = loss_ends(j, &first, &last);
    if (o->quiet)
        return;
    fprintf(stderr,
            "trained %zu steps (batch %zu, %zu rows, dim %zu) in %.1f s: loss %.4g -> %.4g "
            "(mean of first/last %zu steps)%s\n",
            j->end_step - j->start_step, o->batch, j->n_train, j->dim, j->elapsed, first, last,
            tail, j->skipped ? " [some steps skipped: non-finite loss]" : "");
    if (j->start_step > 0)
        fprintf(stderr, "resumed from %s at step %zu; now at step %zu\n", o->resume,
                j->start_step, j->end_step);
    if (j->n_evals > 0) {
        const train_eval *b = &j->evals[j->best_eval], *e = &j->evals[j->n_evals - 1];
        fprintf(stderr, "held-out loss (%zu rows): %.5g at step %zu, best %.5g at step %zu",
                j->n_valid, e->loss, e->step, b->loss, b->step);
        if (j->stopped_early)
            fprintf(stderr, "; stopped early: no new best in %zu evaluations (--early-stop)",
                    o->early_stop);
        fputc('\n', stderr);
    }
    if (j->context_dim > 0)
        fprintf(stderr, "condition columns: %zu (%s%s)\n", j->context_dim, j->context_names[0],
                j->context_dim > 1 ? ", ..." : "");
    if (j->num_classes > 0)
        fprintf(stderr, "class labels from %s%s%s: %zu classes (%s, %s%s)\n",
                o->label_column ? "column '" : "",
                o->label_column ? o->label_column : j->label_source,
                o->label_column ? "'" : "", j->num_classes, j->class_names[0],
                j->num_classes > 2 ? "..., " : "",
                j->class_names[j->num_classes - 1]);
    fprintf(stderr, "saved %s (%s%s weights, %zu parameters)%s%s\n", o->output,
            j->best != NULL ? "best held-out, " : "", o->ema > 0 ? "EMA" : "raw",
            score_model_param_count(j->final),
            o->plot ? "; plot " : "", o->plot ? o->plot : "");
    cli_note_blas();
}

