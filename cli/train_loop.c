/* score train: the training loop. The trainer runs in segments that end at the held-out
 * evaluations (--valid-every) and at the epochs of --dequantize (new offsets), with a progress
 * bar and the per-step loss history; --early-stop keeps the best weights; --checkpoint saves
 * the trainer's state at the end. */
#include "train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { STREAM_VALID = 4, VALID_CHUNK = 4096, LOSS_TAIL = 100 };

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

/* ---- the held-out evaluation state of a checkpoint ----------------------------------------
 * With held-out evaluations, --checkpoint FILE also writes FILE.valid, a text file that holds
 * what the evaluations of the run so far left, so that --resume continues them as if the run
 * had never stopped:
 *   score-train-valid 1
 *   step S               the trainer's step of the checkpoint
 *   valid_every V        --valid-every, early_stop E (--early-stop, 0 = off), valid_rows N
 *                        (--resume refuses another --early-stop, another number of held-out
 *                        rows, and with --early-stop another --valid-every)
 *   evals K              then K lines "STEP LOSS" (LOSS as a C99 hexadecimal float)
 *   best B               index of the best evaluation
 *   losses T             then T lines: the training losses of the last T <= 100 steps
 *   weights P            then P lines: the best evaluation's weights (--early-stop), or P = 0
 * It is written to FILE.valid.tmp and renamed over FILE.valid, and it describes the state
 * before an evaluation made only because the run ended off the --valid-every grid (a run that
 * goes on would not make that one). */

static char *valid_state_path(const char *ckpt, const char *suffix)
{
    size_t n = strlen(ckpt);
    char *p = malloc(n + strlen(suffix) + 1);
    if (p != NULL) {
        memcpy(p, ckpt, n);
        strcpy(p + n, suffix);
    }
    return p;
}

/* The training loss of step s (1-based) of this run or of the checkpoint's run. */
static double loss_at(const train_job *j, size_t s)
{
    if (s > j->ctx.first)
        return j->ctx.losses[s - j->ctx.first - 1];
    return j->prior_losses[j->n_prior_losses - (j->ctx.first - s) - 1];
}

static int save_valid_state(const train_opts *o, train_job *j, size_t step)
{
    char *path = valid_state_path(o->checkpoint, ".valid");
    char *tmp = valid_state_path(o->checkpoint, ".valid.tmp");
    float *w = NULL;
    size_t np = j->best != NULL ? score_model_param_count(j->best) : 0;
    size_t avail = step - j->ctx.first + j->n_prior_losses;
    size_t nt = avail < LOSS_TAIL ? avail : LOSS_TAIL;
    FILE *f = NULL;
    int ok = path != NULL && tmp != NULL;
    if (ok && np > 0)
        ok = (w = malloc(np * sizeof *w)) != NULL &&
             score_model_params_get(j->best, w, np) == SCORE_OK;
    if (ok)
        ok = (f = fopen(tmp, "w")) != NULL;
    if (ok) {
        fprintf(f, "score-train-valid 1\nstep %zu\nvalid_every %zu\nearly_stop %zu\n"
                "valid_rows %zu\nevals %zu\n", step, o->valid_every, o->early_stop, j->n_valid, j->n_evals);
        for (size_t k = 0; k < j->n_evals; k++)
            fprintf(f, "%zu %a\n", j->evals[k].step, j->evals[k].loss);
        fprintf(f, "best %zu\nlosses %zu\n", j->n_evals > 0 ? j->best_eval : 0, nt);
        for (size_t s = step - nt + 1; s <= step; s++)
            fprintf(f, "%a\n", loss_at(j, s));
        fprintf(f, "weights %zu\n", np);
        for (size_t i = 0; i < np; i++)
            fprintf(f, "%a\n", (double)w[i]);
        ok = fflush(f) == 0 && !ferror(f);
        ok = fclose(f) == 0 && ok;
        ok = ok && rename(tmp, path) == 0;
        if (!ok)
            remove(tmp);
    }
    free(w);
    if (!ok) {
        int rc = cli_fail("cannot write the held-out evaluation state '%s' of the checkpoint",
                          path ? path : o->checkpoint);
        free(path);
        free(tmp);
        return rc;
    }
    free(path);
    free(tmp);
    return 0;
}

/* Reads "KEY N" (N a size). */
static int read_size(FILE *f, const char *key, size_t *out)
{
    char k[32];
    return fscanf(f, " %31s %zu", k, out) == 2 && strcmp(k, key) == 0 ? 0 : -1;
}

int train_load_valid_state(const train_opts *o, train_job *j)
{
    char *path;
    FILE *f;
    size_t step, every, es, rows, version, np = 0;
    char magic[32];
    int rc = 0, bad = 0;
    if (o->resume == NULL)
        return 0;
    if ((path = valid_state_path(o->resume, ".valid")) == NULL)
        return cli_fail("out of memory");
    f = fopen(path, "r");
    if (f == NULL) {
        if (j->n_valid > 0)
            rc = cli_fail("--resume %s: no held-out evaluation state '%s' next to it (its run "
                          "evaluated no held-out rows, or it was written by an older version): "
                          "the evaluations and --early-stop cannot continue that run's",
                          o->resume, path);
        free(path);
        return rc;
    }
    if (fscanf(f, " %31s %zu", magic, &version) != 2 || strcmp(magic, "score-train-valid") != 0 ||
        version != 1 ||
        read_size(f, "step", &step) || read_size(f, "valid_every", &every) ||
        read_size(f, "early_stop", &es) || read_size(f, "valid_rows", &rows) ||
        read_size(f, "evals", &j->n_prior)) {
        bad = 1;
    } else if (j->n_valid != rows) {
        rc = cli_fail("--resume %s: the checkpoint's run held out %zu rows, this one %zu (give "
                      "the --valid-fraction of that run)", o->resume, rows, j->n_valid);
    } else if (every != o->valid_every && (es > 0 || o->early_stop > 0)) {
        rc = cli_fail("--resume %s: the checkpoint's run evaluated the held-out rows every %zu "
                      "steps, this one every %zu (give --valid-every %zu: its default depends on "
                      "--steps)", o->resume, every, o->valid_every, every);
    } else if (es != o->early_stop) {
        rc = cli_fail("--resume %s: the checkpoint's run had --early-stop %zu, this one %zu "
                      "(give the --early-stop of that run)", o->resume, es, o->early_stop);
    } else if (step != j->start_step) {
        rc = cli_fail("--resume %s: its held-out evaluation state '%s' is of step %zu, the "
                      "checkpoint of step %zu (written by different runs)", o->resume, path, step,
                      j->start_step);
    } else if (j->n_prior > step / every + 1 ||
               (j->prior_evals = calloc(j->n_prior + 1, sizeof *j->prior_evals)) == NULL) {
        bad = 1;
    }
    for (size_t k = 0; !bad && rc == 0 && k < j->n_prior; k++)
        bad = fscanf(f, " %zu %la", &j->prior_evals[k].step, &j->prior_evals[k].loss) != 2 ||
              j->prior_evals[k].step > step ||
              (k > 0 && j->prior_evals[k].step <= j->prior_evals[k - 1].step);
    if (!bad && rc == 0)
        bad = read_size(f, "best", &j->prior_best) ||
              (j->n_prior > 0 && j->prior_best >= j->n_prior) ||
              read_size(f, "losses", &j->n_prior_losses) || j->n_prior_losses > LOSS_TAIL ||
              j->n_prior_losses > step ||
              (j->prior_losses = calloc(j->n_prior_losses + 1, sizeof(double))) == NULL;
    for (size_t i = 0; !bad && rc == 0 && i < j->n_prior_losses; i++)
        bad = fscanf(f, " %la", &j->prior_losses[i]) != 1;
    if (!bad && rc == 0)
        bad = read_size(f, "weights", &np) ||
              np != (o->early_stop > 0 && j->n_prior > 0 ? score_model_param_count(j->model) : 0);
    if (!bad && rc == 0 && np > 0) {
        float *w = malloc(np * sizeof *w);
        bad = w == NULL;
        for (size_t i = 0; !bad && i < np; i++) {
            double v;
            bad = fscanf(f, " %la", &v) != 1 || !isfinite(v);
            if (!bad)
                w[i] = (float)v;
        }
        if (!bad && (score_model_clone(&j->best, j->model) != SCORE_OK ||
                     score_model_params_set(j->best, w, np) != SCORE_OK))
            rc = cli_lib_fail(SCORE_E_NOMEM, "best weights");
        free(w);
    }
    fclose(f);
    if (bad && rc == 0)
        rc = cli_fail("--resume %s: '%s' is not a valid held-out evaluation state", o->resume,
                      path);
    free(path);
    return rc;
}

/* The training loop with its progress bar, loss history and held-out evaluations; then the
 * weights to save (the best held-out evaluation's with --early-stop, else the last EMA or raw
 * weights) and the checkpoint. */
int train_run(const train_opts *o, train_job *j)
{
    size_t goal = o->steps, first = j->start_step, step = first, n_run = goal - first;
    size_t every = j->n_valid > 0 ? o->valid_every : 0;
    size_t spe = j->n_train >= o->batch ? j->n_train / o->batch : 1;   /* steps per epoch */
    int deq = o->dequantize != SCORE_GENMODEL_DEQUANT_NONE, rc = 0, stop = 0, valid_saved = 0;
    j->ctx.first = first;
    j->ctx.total = goal;
    j->ctx.losses = malloc(n_run * sizeof *j->ctx.losses);
    if (j->ctx.losses == NULL)
        return cli_fail("out of memory (loss history of %zu steps)", n_run);
    for (size_t i = 0; i < n_run; i++)
        j->ctx.losses[i] = NAN;
    if (every > 0 &&
        (j->evals = malloc((j->n_prior + n_run / every + 2) * sizeof *j->evals)) == NULL)
        return cli_fail("out of memory");
    /* --resume: the evaluations of the checkpoint's run, and its early stop if it came */
    if (every > 0 && j->n_prior > 0) {
        memcpy(j->evals, j->prior_evals, j->n_prior * sizeof *j->evals);
        j->n_evals = j->n_prior;
        j->best_eval = j->prior_best;
        stop = o->early_stop > 0 && j->n_evals - 1 - j->best_eval >= o->early_stop;
    }
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
        if (every > 0 && (step % every == 0 || step == goal)) {
            /* the checkpoint's state is that before an evaluation off the grid */
            if (step % every != 0 && o->checkpoint != NULL && !valid_saved) {
                if ((rc = save_valid_state(o, j, step)) != 0)
                    break;
                valid_saved = 1;
            }
            rc = evaluate(o, j, step, &stop);
        }
    }
    j->elapsed = cli_now() - t0;
    j->end_step = step;
    j->stopped_early = stop;
    cli_progress_finish(&j->ctx.bar);
    if (rc != 0)
        return rc;
    if (score_trainer_get_skipped(j->tr, &j->skipped) != SCORE_OK)
        j->skipped = 0;
    if (o->checkpoint != NULL && every > 0 && !valid_saved &&
        (rc = save_valid_state(o, j, step)) != 0)
        return rc;
    if (o->checkpoint != NULL && every == 0) { /* no evaluations: no state of another run */
        char *stale = valid_state_path(o->checkpoint, ".valid");
        if (stale != NULL)
            remove(stale);
        free(stale);
    }
    /* the checkpoint records a fingerprint of the rows the trainer holds (the library checks
     * it on --resume): with --dequantize those of epoch 0, the ones --resume gives the trainer
     * before loading (it moves to the epoch of the step after) */
    if (o->checkpoint != NULL && deq &&
        ((rc = train_dequantize_epoch(o, j, 0)) != 0 ||
         ((rc = score_trainer_set_data(j->tr, j->n_train, j->dim, j->train_x)) != SCORE_OK &&
          (rc = cli_lib_fail(rc, "trainer")) != 0)))
        return rc;
    if (o->checkpoint != NULL && (rc = score_trainer_save(j->tr, o->checkpoint)) != SCORE_OK)
        return cli_fail("cannot write the checkpoint '%s': %s", o->checkpoint,
                        score_last_error_message());
    if (j->best != NULL) {
        j->final = j->best;
        return 0;
    }
    return current_weights(o, j, &j->final);
}
