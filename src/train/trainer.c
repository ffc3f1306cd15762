/* The trainer: minibatch steps over an in-memory dataset (loss + gradient, non-finite guard,
 * optimizer, EMA) and runs with a progress callback; checkpoint.c saves and resumes it bit for
 * bit. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/comm-priv.h"
#include "loss/loss-priv.h"
#include "model/model-priv.h"
#include "train-priv.h"

static const score__param_desc trainer_params[SCORE__TRAINER_NPARAMS] = {
    {SCORE_TRAINER_PARAM_BATCH_SIZE, "batch_size", SCORE_PARAM_I64, 1, 16777216.0, 128,
     "minibatch size"},
    {SCORE_TRAINER_PARAM_SEED, "seed", SCORE_PARAM_I64, 0, 4611686018427387904.0, 0,
     "seed of the shuffling and of the loss noise"},
    {SCORE_TRAINER_PARAM_SHUFFLE, "shuffle", SCORE_PARAM_I64, 0, 1, 1,
     "1: a fresh permutation of the rows per epoch"},
    {SCORE_TRAINER_PARAM_USE_EMA, "use_ema", SCORE_PARAM_I64, 0, 1, 1,
     "1: maintain the EMA of the weights"},
    {SCORE_TRAINER_PARAM_PROGRESS_EVERY, "progress_every", SCORE_PARAM_I64, 1, 1099511627776.0, 1,
     "progress callback period in steps"},
    {SCORE_TRAINER_PARAM_MAX_SKIPS, "max_skips", SCORE_PARAM_I64, 1, 1099511627776.0, 10,
     "consecutive skipped steps that stop a run"},
    {SCORE_TRAINER_PARAM_P_UNCOND, "p_uncond", SCORE_PARAM_F64, 0.0, 1.0, 0.1,
     "probability that a minibatch row's label is replaced by the null label (label dropout)"},
    {SCORE_TRAINER_PARAM_REDUCE_ROWS, "reduce_rows", SCORE_PARAM_I64, 1, 16777216.0, 64,
     "rows per reduction block of a trainer with a communicator"},
};

const score__param_desc *score__trainer_param_table(size_t *n_out)
{
    *n_out = SCORE__TRAINER_NPARAMS;
    return trainer_params;
}

/* ---- lifecycle and parameters ---------------------------------------------------------- */

int score_trainer_new(score_trainer **out, score_model *model, const score_sde *sde,
                      const score_loss *loss, int optimizer_kind)
{
    score_trainer *tr;
    int rc;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (model == NULL || loss == NULL)
        return score__error(SCORE_E_INVAL, __func__, "model or loss is NULL");
    if (!(score_model_capabilities(model) & SCORE_MODEL_CAP_PARAMS))
        return score__error(SCORE_E_UNSUPPORTED, __func__, "the model has no trainable parameters");
    if (optimizer_kind < SCORE_OPTIMIZER_SGD || optimizer_kind > SCORE_OPTIMIZER_ADAMW)
        return score__error(SCORE_E_UNSUPPORTED, __func__,
                            "unknown optimizer kind %d (1 sgd, 2 adam, 3 adamw)", optimizer_kind);
    if (sde == NULL && (score_loss_kind(loss) == SCORE_LOSS_NCSN ||
                        score_loss_kind(loss) == SCORE_LOSS_DDPM ||
                        score_loss_kind(loss) == SCORE_LOSS_SDE))
        return score__error(SCORE_E_INVAL, __func__, "a %s loss needs an sde (schedule)",
                            score_loss_name(loss));
    if (sde != NULL && score_sde_dim(sde) != score_model_dim(model))
        return score__error(SCORE_E_SHAPE, __func__, "the sde has dimension %zu, the model %zu",
                            score_sde_dim(sde), score_model_dim(model));
    if ((rc = score_model_prepare(model)) != SCORE_OK)
        return rc;
    if (score__model_params_data(model) == NULL)
        return score__error(SCORE_E_UNSUPPORTED, __func__,
                            "%s models keep no contiguous parameter array to train",
                            model->ops->name);
    tr = score__calloc(1, sizeof *tr);
    if (tr == NULL)
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    score__param_defaults(trainer_params, SCORE__TRAINER_NPARAMS, tr->params);
    tr->model = model;
    tr->sde = sde;
    tr->dim = score_model_dim(model);
    tr->np = score_model_param_count(model);
    tr->last_loss = NAN;
    tr->p = score__calloc(tr->np, sizeof(float));
    tr->g = score__calloc(tr->np, sizeof(float));
    tr->spare = score__calloc(tr->np, sizeof(float));
    if (tr->np == 0 || tr->p == NULL || tr->g == NULL || tr->spare == NULL) {
        /* the status is decided before the free: tr must not be read after it */
        rc = tr->np == 0 ? SCORE_E_UNSUPPORTED : SCORE_E_NOMEM;
        score_trainer_free(tr);
        return score__error(rc, __func__, rc == SCORE_E_NOMEM ? "cannot allocate the parameter buffers"
                                                              : "the model has no parameters");
    }
    if ((rc = score_model_params_get(model, tr->p, tr->np)) != SCORE_OK ||
        (rc = score_loss_clone(&tr->loss, loss)) != SCORE_OK ||
        (rc = score_optimizer_new(&tr->opt, optimizer_kind, tr->np)) != SCORE_OK ||
        (rc = score_ema_new(&tr->ema, tr->np, tr->p)) != SCORE_OK ||
        (rc = score_rng_new(&tr->rng, SCORE_RNG_PHILOX4X32_10, 0)) != SCORE_OK) {
        score_trainer_free(tr);
        return rc;
    }
    *out = tr;
    return SCORE_OK;
}

void score_trainer_free(score_trainer *tr)
{
    if (tr == NULL)
        return;
    score_loss_free(tr->loss);
    score_optimizer_free(tr->opt);
    score_ema_free(tr->ema);
    score_rng_free(tr->rng);
    score_model_free(tr->ema_model);
    score__free(tr->p);
    score__free(tr->g);
    score__free(tr->spare);
    score__free(tr->data);
    score__free(tr->perm);
    score__free(tr->u);
    score__free(tr->batch);
    score__free(tr->labels);
    score__free(tr->ctx);
    score__free(tr->blab);
    score__free(tr->bctx);
    score__free(tr->bu);
    score__free(tr->crec);
    score__free(tr);
}

/* The generator with the trainer's seed; stream and counter set by the caller. */
int score__trainer_rng_at(score_trainer *tr, uint64_t stream, uint64_t counter, const char *fn)
{
    score_rng *r;
    int rc;
    uint64_t seed = (uint64_t)score__trainer_i64(tr, TRAINER_IX_SEED), cur;
    if (score_rng_get_seed(tr->rng, &cur) != SCORE_OK || cur != seed) {
        if ((rc = score_rng_new(&r, SCORE_RNG_PHILOX4X32_10, seed)) != SCORE_OK)
            return rc;
        score_rng_free(tr->rng);
        tr->rng = r;
    }
    if (counter >= ((uint64_t)1 << 32))
        return score__error(SCORE_E_RANGE, fn, "step or epoch %llu exceeds the generator's 2^32 counters",
                            (unsigned long long)counter);
    if ((rc = score_rng_set_stream(tr->rng, stream)) != SCORE_OK ||
        (rc = score_rng_set_counter(tr->rng, counter)) != SCORE_OK)
        return rc;
    return SCORE_OK;
}

int score_trainer_set_f64(score_trainer *tr, int param, double value)
{
    if (tr == NULL)
        return score__error(SCORE_E_INVAL, __func__, "tr is NULL");
    score__trainer_comm_dirty(tr);
    return score__param_set_f64(__func__, trainer_params, SCORE__TRAINER_NPARAMS, tr->params, param, value);
}

int score_trainer_set_i64(score_trainer *tr, int param, int64_t value)
{
    int rc;
    if (tr == NULL)
        return score__error(SCORE_E_INVAL, __func__, "tr is NULL");
    rc = score__param_set_i64(__func__, trainer_params, SCORE__TRAINER_NPARAMS, tr->params, param, value);
    if (rc == SCORE_OK && (param == SCORE_TRAINER_PARAM_SEED || param == SCORE_TRAINER_PARAM_BATCH_SIZE ||
                           param == SCORE_TRAINER_PARAM_SHUFFLE))
        tr->perm_valid = 0;
    score__trainer_comm_dirty(tr);
    return rc;
}

int score_trainer_get_f64(const score_trainer *tr, int param, double *out)
{
    if (tr == NULL)
        return score__error(SCORE_E_INVAL, __func__, "tr is NULL");
    return score__param_get_f64(__func__, trainer_params, SCORE__TRAINER_NPARAMS, tr->params, param, out);
}

int score_trainer_get_i64(const score_trainer *tr, int param, int64_t *out)
{
    if (tr == NULL)
        return score__error(SCORE_E_INVAL, __func__, "tr is NULL");
    return score__param_get_i64(__func__, trainer_params, SCORE__TRAINER_NPARAMS, tr->params, param, out);
}

int score_trainer_set_data(score_trainer *tr, size_t n_rows, size_t dim, const float *data)
{
    size_t nd;
    float *copy;
    size_t *perm;
    double *u;
    if (tr == NULL || data == NULL)
        return score__error(SCORE_E_INVAL, __func__, "tr or data is NULL");
    if (n_rows == 0)
        return score__error(SCORE_E_INVAL, __func__, "the dataset has no rows");
    if (dim != tr->dim)
        return score__error(SCORE_E_SHAPE, __func__, "rows of %zu values, the model has dimension %zu",
                            dim, tr->dim);
    if ((uint64_t)n_rows >= ((uint64_t)1 << 32) || score__mul_size(n_rows, dim, &nd) != 0)
        return score__error(SCORE_E_RANGE, __func__, "%zu rows is too many (limit 2^32 - 1)", n_rows);
    for (size_t r = 0; r < n_rows; r++)
        if (!score__all_finite_f32(dim, data + r * dim))
            return score__error(SCORE_E_NUMERIC, __func__, "row %zu contains NaN or infinity", r);
    copy = score__calloc(nd, sizeof(float));
    perm = score__calloc(n_rows, sizeof(size_t));
    u = score__calloc(n_rows, sizeof(double));
    if (copy == NULL || perm == NULL || u == NULL) {
        score__free(copy);
        score__free(perm);
        score__free(u);
        return score__error(SCORE_E_NOMEM, __func__, "copy of %zu rows failed", n_rows);
    }
    memcpy(copy, data, nd * sizeof(float));
    score__free(tr->data);
    score__free(tr->perm);
    score__free(tr->u);
    tr->data = copy;
    tr->perm = perm;
    tr->u = u;
    tr->rows = n_rows;
    tr->perm_valid = 0;
    score__trainer_comm_dirty(tr);
    return SCORE_OK;
}

/* ---- per-row conditions ------------------------------------------------------------------ */

/* Drops the minibatch buffers of the conditions (remade by the next step for its sizes). */
static void drop_cond_buffers(score_trainer *tr)
{
    score__free(tr->blab);
    score__free(tr->bctx);
    score__free(tr->bu);
    tr->blab = NULL;
    tr->bctx = NULL;
    tr->bu = NULL;
    tr->cap_cond = 0;
}

/* *dst = a new copy of the bytes at src (the previous array freed); SCORE_E_NOMEM. */
static int replace_copy(void **dst, const void *src, size_t bytes)
{
    void *c = score__calloc(bytes, 1);
    if (c == NULL)
        return SCORE_E_NOMEM;
    memcpy(c, src, bytes);
    score__free(*dst);
    *dst = c;
    return SCORE_OK;
}

/* The checks shared by score_trainer_set_labels / _set_context: a dataset of n_rows rows and a
 * model with the input (its size in *size). */
static int check_cond_target(const char *fn, const score_trainer *tr, size_t n_rows, int param,
                             const char *what, int64_t *size)
{
    if (tr->data == NULL)
        return score__error(SCORE_E_STAGE, fn, "no dataset: call score_trainer_set_data() first");
    if (n_rows != tr->rows)
        return score__error(SCORE_E_SHAPE, fn, "%s for %zu rows, the dataset has %zu", what,
                            n_rows, tr->rows);
    *size = score__model_i64(tr->model, param);
    if (*size == 0)
        return score__error(SCORE_E_UNSUPPORTED, fn, "the model takes no %s", what);
    return SCORE_OK;
}

int score_trainer_set_labels(score_trainer *tr, size_t n_rows, const int32_t *labels)
{
    int64_t K;
    void *copy = NULL;
    int rc;
    if (tr == NULL)
        return score__error(SCORE_E_INVAL, __func__, "tr is NULL");
    if (labels != NULL) {
        if ((rc = check_cond_target(__func__, tr, n_rows, SCORE_MODEL_PARAM_NUM_CLASSES, "labels",
                                    &K)) != SCORE_OK ||
            (rc = score__loss_labels_check(__func__, n_rows, labels, K)) != SCORE_OK)
            return rc;
        if (replace_copy(&copy, labels, n_rows * sizeof(int32_t)) != SCORE_OK)
            return score__error(SCORE_E_NOMEM, __func__, "copy of %zu labels failed", n_rows);
    }
    score__free(tr->labels);
    tr->labels = copy;
    tr->label_rows = labels != NULL ? n_rows : 0;
    drop_cond_buffers(tr);
    score__trainer_comm_dirty(tr);
    return SCORE_OK;
}

int score_trainer_set_context(score_trainer *tr, size_t n_rows, size_t m, const float *values)
{
    int64_t M;
    void *copy = NULL;
    int rc;
    if (tr == NULL)
        return score__error(SCORE_E_INVAL, __func__, "tr is NULL");
    if (values != NULL) {
        if ((rc = check_cond_target(__func__, tr, n_rows, SCORE_MODEL_PARAM_CONTEXT_DIM,
                                    "context vectors", &M)) != SCORE_OK)
            return rc;
        if (m != (size_t)M)
            return score__error(SCORE_E_SHAPE, __func__, "context vectors of %zu values, the "
                                "model takes %lld", m, (long long)M);
        if (n_rows > SIZE_MAX / sizeof(float) / m)
            return score__error(SCORE_E_RANGE, __func__, "%zu x %zu values overflow", n_rows, m);
        if (!score__all_finite_f32(n_rows * m, values))
            return score__error(SCORE_E_NUMERIC, __func__, "the context contains NaN or infinity");
        if (replace_copy(&copy, values, n_rows * m * sizeof(float)) != SCORE_OK)
            return score__error(SCORE_E_NOMEM, __func__, "copy of %zu x %zu values failed",
                                n_rows, m);
    }
    score__free(tr->ctx);
    tr->ctx = copy;
    tr->ctx_rows = values != NULL ? n_rows : 0;
    tr->ctx_m = values != NULL ? m : 0;
    drop_cond_buffers(tr);
    score__trainer_comm_dirty(tr);
    return SCORE_OK;
}

/* ---- steps ----------------------------------------------------------------------------- */

/* Permutation of epoch e: Fisher-Yates driven by uniforms of stream 1, counter e, row i. */
static int make_perm(score_trainer *tr, uint64_t epoch, const char *fn)
{
    int rc = score__trainer_rng_at(tr, 1, epoch, fn);
    if (rc != SCORE_OK)
        return rc;
    if ((rc = score_rng_fill_uniform_f64(tr->rng, 0, tr->rows, 0, 1, tr->u)) != SCORE_OK)
        return rc;
    for (size_t i = 0; i < tr->rows; i++)
        tr->perm[i] = i;
    for (size_t i = tr->rows; i-- > 1;) {
        size_t j = (size_t)(tr->u[i] * (double)(i + 1));
        size_t tmp;
        if (j > i)
            j = i;
        tmp = tr->perm[i];
        tr->perm[i] = tr->perm[j];
        tr->perm[j] = tmp;
    }
    tr->perm_epoch = epoch;
    tr->perm_valid = 1;
    return SCORE_OK;
}

/* Label dropout: each row of the minibatch of this step gets the null label with probability
 * P_UNCOND, decided by the uniform of (SEED, stream 2, counter = step, row = position); the
 * B rows are the minibatch positions off .. off + B - 1. */
static int label_dropout(score_trainer *tr, size_t off, size_t B, const char *fn)
{
    double p = tr->params[TRAINER_IX_P_UNCOND].f;
    int rc;
    /* a classifier learns the classes themselves: no null label to train */
    if (p == 0.0 || score_loss_kind(tr->loss) == SCORE_LOSS_CLASSIFIER)
        return SCORE_OK;
    if ((rc = score__trainer_rng_at(tr, 2, tr->step, fn)) != SCORE_OK ||
        (rc = score_rng_fill_uniform_f64(tr->rng, off, B, 0, 1, tr->bu)) != SCORE_OK)
        return rc;
    for (size_t i = 0; i < B; i++)
        if (tr->bu[i] < p)
            tr->blab[i] = SCORE_LABEL_NULL;
    return SCORE_OK;
}

/* Sizes the minibatch buffers of the conditions for B rows. */
static int grow_cond_buffers(score_trainer *tr, size_t B, const char *fn)
{
    if (B <= tr->cap_cond)
        return SCORE_OK;
    drop_cond_buffers(tr);
    tr->blab = score__calloc(B, sizeof(int32_t));
    tr->bu = score__calloc(B, sizeof(double));
    tr->bctx = score__calloc(tr->ctx_m > 0 ? B * tr->ctx_m : 1, sizeof(float));
    if (tr->blab == NULL || tr->bu == NULL || tr->bctx == NULL) {
        drop_cond_buffers(tr);
        return score__error(SCORE_E_NOMEM, fn, "minibatch labels of %zu rows", B);
    }
    tr->cap_cond = B;
    return SCORE_OK;
}

/* The labels (after dropout) and context vectors of the minibatch rows (data rows rows[i],
 * minibatch positions off ..) given to the loss; without them the loss's are cleared. */
static int gather_conditions(score_trainer *tr, const size_t *rows, size_t pos, size_t off,
                             size_t B, const char *fn)
{
    int rc;
    if ((tr->labels != NULL && tr->label_rows != tr->rows) ||
        (tr->ctx != NULL && tr->ctx_rows != tr->rows))
        return score__error(SCORE_E_SHAPE, fn, "the labels or context vectors are for other "
                            "rows than the dataset's %zu: set them again after "
                            "score_trainer_set_data()", tr->rows);
    if (tr->labels == NULL && tr->ctx == NULL) {
        rc = score_loss_set_labels(tr->loss, 0, NULL);
        return rc == SCORE_OK ? score_loss_set_context(tr->loss, 0, 0, NULL) : rc;
    }
    if ((rc = grow_cond_buffers(tr, B, fn)) != SCORE_OK)
        return rc;
    for (size_t i = 0; i < B; i++) {
        size_t r = rows != NULL ? rows[pos + i] : pos + i;
        if (tr->labels != NULL)
            tr->blab[i] = tr->labels[r];
        if (tr->ctx != NULL)
            memcpy(tr->bctx + i * tr->ctx_m, tr->ctx + r * tr->ctx_m, tr->ctx_m * sizeof(float));
    }
    if (tr->labels != NULL && (rc = label_dropout(tr, off, B, fn)) != SCORE_OK)
        return rc;
    if ((rc = score_loss_set_labels(tr->loss, B, tr->labels ? tr->blab : NULL)) != SCORE_OK)
        return rc;
    return score_loss_set_context(tr->loss, B, tr->ctx_m, tr->ctx ? tr->bctx : NULL);
}

/* The B rows of the current step's minibatch into tr->batch (tr->step_pos: their position in
 * the epoch's order). */
int score__trainer_gather_rows(score_trainer *tr, size_t *bsz_out, const char *fn)
{
    size_t B = (size_t)score__trainer_i64(tr, TRAINER_IX_BATCH), spe, pos;
    uint64_t epoch;
    int rc;
    if (B > tr->rows)
        B = tr->rows;
    spe = tr->rows / B;
    epoch = tr->step / spe;
    pos = (size_t)(tr->step % spe) * B;
    if (B > tr->cap_batch) {
        float *nb = score__calloc(B * tr->dim, sizeof(float));
        if (nb == NULL)
            return score__error(SCORE_E_NOMEM, fn, "minibatch buffer of %zu rows", B);
        score__free(tr->batch);
        tr->batch = nb;
        tr->cap_batch = B;
    }
    if (score__trainer_i64(tr, TRAINER_IX_SHUFFLE)) {
        if (!tr->perm_valid || tr->perm_epoch != epoch)
            if ((rc = make_perm(tr, epoch, fn)) != SCORE_OK)
                return rc;
        for (size_t i = 0; i < B; i++)
            memcpy(tr->batch + i * tr->dim, tr->data + tr->perm[pos + i] * tr->dim,
                   tr->dim * sizeof(float));
    } else {
        memcpy(tr->batch, tr->data + pos * tr->dim, B * tr->dim * sizeof(float));
    }
    *bsz_out = B;
    tr->step_pos = pos;
    return SCORE_OK;
}

int score__trainer_conditions(score_trainer *tr, size_t off, size_t n, const char *fn)
{
    return gather_conditions(tr, score__trainer_i64(tr, TRAINER_IX_SHUFFLE) ? tr->perm : NULL,
                             tr->step_pos + off, off, n, fn);
}

static int gather(score_trainer *tr, size_t *bsz_out, const char *fn)
{
    int rc = score__trainer_gather_rows(tr, bsz_out, fn);
    return rc == SCORE_OK ? score__trainer_conditions(tr, 0, *bsz_out, fn) : rc;
}

int score__trainer_skip(score_trainer *tr, const char *fn, const char *why)
{
    char msg[384];
    snprintf(msg, sizeof msg, "%s", score_last_error_message());
    tr->step++;
    tr->skipped++;
    return score__error(SCORE_E_NUMERIC, fn, "step %llu skipped (%s): %s",
                        (unsigned long long)(tr->step - 1), why, msg);
}

/* One step. The weights are updated where the model keeps them (score__model_params_data(),
 * checked at creation). The optimizer commits nothing unless the
 * gradient and the whole update are finite (score__optimizer_step_guarded()), and it updates the
 * EMA only with committed weights, so a skipped step changes no weight, moment or EMA value. */
static int do_step(score_trainer *tr, double *loss_out, const char *fn)
{
    size_t B = 0;
    double L = NAN;
    int rc;
    if (tr->data == NULL)
        return score__error(SCORE_E_STAGE, fn, "no dataset: call score_trainer_set_data() first");
    if ((rc = gather(tr, &B, fn)) != SCORE_OK)
        return rc;
    if ((rc = score__trainer_ema_start(tr)) != SCORE_OK)
        return rc;
    if (!tr->g_zero) /* usually the last update's sweep cleared it */
        memset(tr->g, 0, tr->np * sizeof(float));
    tr->g_zero = 0;
    if ((rc = score__trainer_rng_at(tr, 0, tr->step, fn)) != SCORE_OK)
        return rc;
    rc = score_loss_compute(tr->loss, tr->sde, tr->model, tr->rng, B, tr->batch, &L, tr->g);
    tr->last_loss = L;
    if (loss_out)
        *loss_out = L;
    if (rc == SCORE_E_NUMERIC)
        return score__trainer_skip(tr, fn, "non-finite loss");
    if (rc != SCORE_OK)
        return rc;
    return score__trainer_apply(tr, fn);
}

/* Starts the EMA from the weights before the first step that uses it. */
int score__trainer_ema_start(score_trainer *tr)
{
    int rc;
    if (score__trainer_i64(tr, TRAINER_IX_USE_EMA) && !tr->ema_init) {
        if ((rc = score_ema_reset(tr->ema, tr->np, score__model_params_data(tr->model))) != SCORE_OK)
            return rc;
        tr->ema_init = 1;
    }
    return SCORE_OK;
}

/* The guarded optimizer update with the gradient in tr->g, and the EMA (in the update's sweep
 * when it is made in place); the step counted. */
int score__trainer_apply(score_trainer *tr, const char *fn)
{
    float *theta = score__model_params_data(tr->model);
    int rc, in_spare = 0;
    tr->opt->threads = (int)score__model_i64(tr->model, SCORE_MODEL_PARAM_THREADS);
    /* the sweep runs on the threads of the model's training calls when their count is the
     * sweep's (checked there; a second pool would leave the model's workers spinning while its
     * own wake up) */
    tr->opt->lent = score__model_ws_pool(tr->loss->mws);
    rc = score__optimizer_step_guarded(tr->opt, "score_optimizer_step", theta, tr->g, tr->spare,
                                       &in_spare,
                                       score__trainer_i64(tr, TRAINER_IX_USE_EMA) ? tr->ema : NULL,
                                       &tr->g_zero);
    tr->opt->lent = NULL;
    if (rc == SCORE_E_NUMERIC)
        return score__trainer_skip(tr, fn, isfinite(tr->opt->last_norm) ? "the update overflowed"
                                                               : "non-finite gradient");
    if (rc != SCORE_OK)
        return rc;
    if (in_spare)
        tr->spare = score__model_params_exchange(tr->model, tr->spare);
    else
        score__model_params_changed(tr->model);
    tr->last_lr = tr->opt->last_lr;
    tr->step++;
    return SCORE_OK;
}

int score_trainer_step(score_trainer *tr, double *loss_out)
{
    if (tr == NULL)
        return score__error(SCORE_E_INVAL, __func__, "tr is NULL");
    if (tr->comm != NULL)
        return score__trainer_step_comm(tr, loss_out, __func__);
    return do_step(tr, loss_out, __func__);
}

int score_trainer_set_comm(score_trainer *tr, score_comm *comm)
{
    if (tr == NULL)
        return score__error(SCORE_E_INVAL, __func__, "tr is NULL");
    tr->comm = comm;
    score__trainer_comm_dirty(tr);
    return SCORE_OK;
}

int score_trainer_run(score_trainer *tr, size_t n_steps, score_trainer_progress_fn progress,
                      void *user_data)
{
    uint64_t consecutive = 0, total;
    if (tr == NULL)
        return score__error(SCORE_E_INVAL, __func__, "tr is NULL");
    if (tr->data == NULL)
        return score__error(SCORE_E_STAGE, __func__, "no dataset: call score_trainer_set_data() first");
    total = tr->step + n_steps;
    for (size_t i = 0; i < n_steps; i++) {
        double L;
        int rc = tr->comm != NULL ? score__trainer_step_comm(tr, &L, __func__)
                                  : do_step(tr, &L, __func__);
        if (rc == SCORE_E_NUMERIC) {
            if (++consecutive >= (uint64_t)score__trainer_i64(tr, TRAINER_IX_MAX_SKIPS))
                return score__error(SCORE_E_NUMERIC, __func__,
                                    "%llu consecutive steps were skipped (non-finite loss or "
                                    "gradient); stopped at step %llu",
                                    (unsigned long long)consecutive, (unsigned long long)tr->step);
        } else if (rc != SCORE_OK) {
            return rc;
        } else {
            consecutive = 0;
        }
        /* with a communicator the agreement runs at these steps on every rank, with or without
         * a callback, so that the ranks' collectives stay in step */
        if ((progress != NULL || tr->comm != NULL) &&
            ((i + 1) % (uint64_t)score__trainer_i64(tr, TRAINER_IX_EVERY) == 0 || i + 1 == n_steps)) {
            int stop = progress != NULL &&
                       progress((size_t)tr->step, (size_t)total, L, tr->last_lr, user_data) != 0;
            int crc = SCORE_OK;
            if (stop)
                crc = score__error(SCORE_E_CANCELLED, __func__, "cancelled by the progress callback at step %llu",
                                   (unsigned long long)tr->step);
            /* with a communicator a cancellation on any rank stops every rank */
            if (tr->comm != NULL)
                crc = score__comm_conclude(tr->comm, crc, __func__);
            if (crc != SCORE_OK)
                return crc;
        }
    }
    return SCORE_OK;
}

/* ---- getters --------------------------------------------------------------------------- */

int score_trainer_get_step(const score_trainer *tr, uint64_t *out)
{
    if (tr == NULL || out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "tr or out is NULL");
    *out = tr->step;
    return SCORE_OK;
}

int score_trainer_get_skipped(const score_trainer *tr, uint64_t *out)
{
    if (tr == NULL || out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "tr or out is NULL");
    *out = tr->skipped;
    return SCORE_OK;
}

int score_trainer_last_loss(const score_trainer *tr, double *out)
{
    if (tr == NULL || out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "tr or out is NULL");
    *out = tr->last_loss;
    return SCORE_OK;
}

score_optimizer *score_trainer_optimizer(score_trainer *tr)
{
    return tr ? tr->opt : NULL;
}

score_ema *score_trainer_ema(score_trainer *tr)
{
    return tr ? tr->ema : NULL;
}

score_loss *score_trainer_loss(score_trainer *tr)
{
    return tr ? tr->loss : NULL;
}

score_model *score_trainer_model(const score_trainer *tr)
{
    return tr ? tr->model : NULL;
}

int score_trainer_ema_model(score_trainer *tr, score_model **out)
{
    int rc;
    if (out != NULL)
        *out = NULL;
    if (tr == NULL || out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "tr or out is NULL");
    if (tr->ema_model == NULL && (rc = score_model_clone(&tr->ema_model, tr->model)) != SCORE_OK)
        return rc;
    if (score__trainer_i64(tr, TRAINER_IX_USE_EMA) && tr->ema_init)
        rc = score_ema_copy_to_model(tr->ema, tr->ema_model);
    else if ((rc = score_model_params_get(tr->model, tr->p, tr->np)) == SCORE_OK)
        rc = score_model_params_set(tr->ema_model, tr->p, tr->np);
    if (rc != SCORE_OK)
        return rc;
    *out = tr->ema_model;
    return SCORE_OK;
}
