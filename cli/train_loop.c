/* score train: the training loop. The trainer runs in segments that end at the held-out
 * evaluations (--valid-every) and at the epochs of --dequantize (new offsets), with a progress
 * bar and the per-step loss history; --early-stop keeps the best weights; --checkpoint saves
 * the trainer's state at the end. */
#include "train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { STREAM_VALID = 4, VALID_CHUNK = 4096 };

static int on_progress(size_t step, size_t total, double loss, double lr, void *ud)
{
    train_ctx *c = ud;
    (void)lr;
    (void)total;
    if (step > c->first && step <= c->total)
        c->losses[step - c->first - 1] = loss;
    cli_progress_update(&c->bar, step - c->first, "loss", loss);
    return 0;
}

/* The weights that would be saved now: the EMA average (or the raw weights without EMA). */
static int current_weights(const train_opts *o, train_job *j, score_model **out)
{
    int rc;
    if (o->ema <= 0) {
        *out = j->model;
        return 0;
    }
    if ((rc = score_trainer_ema_model(j->tr, out)) != SCORE_OK)
        return cli_lib_fail(rc, "EMA weights");
    return 0;
}

/* The loss of the held-out rows (model units) under the weights m: the row-weighted mean over
 * chunks of at most 4096 rows, with the noise of the seed's generator on stream 4, counter =
 * chunk index: the same noise at every evaluation, so evaluations differ only by the weights.
 * Labels and conditions are those of the rows (no label dropout). */
static int held_out_loss(const train_opts *o, train_job *j, score_model *m, double *out)
{
    size_t nv = j->n_valid, dim = j->dim;
    const float *xv = j->train_x + j->n_train * dim;
    score_rng *rng = NULL;
    double sum = 0;
    int rc = SCORE_OK;
    if (j->valid_loss == NULL && (rc = score_loss_clone(&j->valid_loss, j->loss)) != SCORE_OK)
        return cli_lib_fail(rc, "held-out loss");
    if ((rc = score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, o->seed)) == SCORE_OK)
        rc = score_rng_set_stream(rng, STREAM_VALID);
    for (size_t c = 0; rc == SCORE_OK && c * VALID_CHUNK < nv; c++) {
        size_t r0 = c * VALID_CHUNK, n = nv - r0 < VALID_CHUNK ? nv - r0 : VALID_CHUNK;
        double l = 0;
        rc = score_rng_set_counter(rng, c);
        if (rc == SCORE_OK && j->labels != NULL)
            rc = score_loss_set_labels(j->valid_loss, n, j->labels + j->n_train + r0);
        if (rc == SCORE_OK && j->context != NULL)
            rc = score_loss_set_context(j->valid_loss, n, j->context_dim,
                                        j->context + (j->n_train + r0) * j->context_dim);
        if (rc == SCORE_OK)
            rc = score_loss_compute(j->valid_loss, j->sde, m, rng, n, xv + r0 * dim, &l, NULL);
        sum += l * (double)n;
    }
    score_rng_free(rng);
    if (rc != SCORE_OK)
        return cli_lib_fail(rc, "held-out loss");
    *out = sum / (double)nv;
    return 0;
}

/* The mean of the finite training losses of the `win` steps before `step` (NaN if none). */
static double recent_loss(const train_job *j, size_t step, size_t win)
{
    double sum = 0;
    size_t k = 0;
    for (size_t s = step > j->ctx.first + win ? step - win : j->ctx.first; s < step; s++) {
        double l = j->ctx.losses[s - j->ctx.first];
        if (isfinite(l))
            sum += l, k++;
    }
    return k ? sum / (double)k : NAN;
}

/* One held-out evaluation at `step`: recorded, printed, and for --early-stop the best weights
 * kept. Sets *stop when --early-stop's patience is used up. */
static int evaluate(const train_opts *o, train_job *j, size_t step, int *stop)
{
    score_model *m = NULL;
    double v = NAN;
    int rc;
    if ((rc = current_weights(o, j, &m)) != 0 || (rc = held_out_loss(o, j, m, &v)) != 0)
        return rc;
    size_t k = j->n_evals++;
    j->evals[k] = (train_eval){step, v};
    int better = k == 0 || v < j->evals[j->best_eval].loss;
    if (better) {
        j->best_eval = k;
        if (o->early_stop > 0) {
            size_t np = score_model_param_count(m);
            float *p = malloc(np * sizeof *p);
            rc = p == NULL ? SCORE_E_NOMEM : score_model_params_get(m, p, np);
            if (rc == SCORE_OK && j->best == NULL)
                rc = score_model_clone(&j->best, m);
            if (rc == SCORE_OK)
                rc = score_model_params_set(j->best, p, np);
            free(p);
            if (rc != SCORE_OK)
                return cli_lib_fail(rc, "best weights");
        }
    }
    *stop = o->early_stop > 0 && k - j->best_eval >= o->early_stop;
    if (!o->quiet) {
        if (j->ctx.bar.enabled && j->ctx.bar.drawn)
            fputs("\r\033[K", stderr);
        const train_eval *b = &j->evals[j->best_eval];
        fprintf(stderr, "step %zu: training loss %.5g, held-out loss %.5g (best %.5g at step "
                "%zu)%s\n", step, recent_loss(j, step, o->valid_every), v, b->loss, b->step,
                *stop ? "; early stop" : "");
    }
    return 0;
}

/* The training loop with its progress bar, loss history and held-out evaluations; then the
 * weights to save (the best held-out evaluation's with --early-stop, else the last EMA or raw
 * weights) and the checkpoint. */
int train_run(const train_opts *o, train_job *j)
{
    size_t goal = o->steps, first = j->start_step, step = first, n_run = goal - first;
    size_t every = j->n_valid > 0 ? o->valid_every : 0;
    size_t spe = j->n_train >= o->batch ? j->n_train / o->batch : 1;   /* steps per epoch */
    int deq = o->dequantize != SCORE_GENMODEL_DEQUANT_NONE, rc = 0, stop = 0;
    j->ctx.first = first;
    j->ctx.total = goal;
    j->ctx.losses = malloc(n_run * sizeof *j->ctx.losses);
    if (j->ctx.losses == NULL)
        return cli_fail("out of memory (loss history of %zu steps)", n_run);
    for (size_t i = 0; i < n_run; i++)
        j->ctx.losses[i] = NAN;
    if (every > 0 && (j->evals = malloc((n_run / every + 2) * sizeof *j->evals)) == NULL)
        return cli_fail("out of memory");
    if (deq && step / spe > 0 &&
        ((rc = train_dequantize_epoch(o, j, step / spe)) != 0 ||
         (rc = score_trainer_set_data(j->tr, j->n_train, j->dim, j->train_x)) != SCORE_OK))
        return rc > 0 ? rc : cli_lib_fail(rc, "trainer");
    cli_progress_start(&j->ctx.bar, "train", n_run, o->quiet);
    double t0 = cli_now();
    while (step < goal && rc == 0 && !stop) {
        size_t next = goal;
        if (every > 0 && (step / every + 1) * every < next)
            next = (step / every + 1) * every;
        if (deq && (step / spe + 1) * spe < next)
            next = (step / spe + 1) * spe;
        if ((rc = score_trainer_run(j->tr, next - step, on_progress, &j->ctx)) != SCORE_OK) {
            rc = cli_lib_fail(rc, "training");
            break;
        }
        step = next;
        if (deq && step % spe == 0 && step < goal &&
            ((rc = train_dequantize_epoch(o, j, step / spe)) != 0 ||
             ((rc = score_trainer_set_data(j->tr, j->n_train, j->dim, j->train_x)) != SCORE_OK &&
              (rc = cli_lib_fail(rc, "trainer")) != 0)))
            break;
        if (every > 0 && (step % every == 0 || step == goal))
            rc = evaluate(o, j, step, &stop);
    }
    j->elapsed = cli_now() - t0;
    j->end_step = step;
    j->stopped_early = stop;
    cli_progress_finish(&j->ctx.bar);
    if (rc != 0)
        return rc;
    if (score_trainer_get_skipped(j->tr, &j->skipped) != SCORE_OK)
        j->skipped = 0;
    if (o->checkpoint != NULL && (rc = score_trainer_save(j->tr, o->checkpoint)) != SCORE_OK)
        return cli_fail("cannot write the checkpoint '%s': %s", o->checkpoint,
                        score_last_error_message());
    if (j->best != NULL) {
        j->final = j->best;
        return 0;
    }
    return current_weights(o, j, &j->final);
}
