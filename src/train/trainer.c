/* The trainer: minibatch steps over an in-memory dataset (loss + gradient, non-finite guard,
 * optimizer, EMA), runs with a progress callback, and checkpoints that resume bit for bit. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "io/safetensors-priv.h"
#include "libscore/version.h"
#include "model/mlp-priv.h"
#include "train-priv.h"

enum { IX_BATCH, IX_SEED, IX_SHUFFLE, IX_USE_EMA, IX_EVERY, IX_MAX_SKIPS };

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
};

const score__param_desc *score__trainer_param_table(size_t *n_out)
{
    *n_out = SCORE__TRAINER_NPARAMS;
    return trainer_params;
}

struct score_trainer {
    score__param_val params[SCORE__TRAINER_NPARAMS];
    score_model *model;      /* borrowed */
    const score_sde *sde;    /* borrowed, may be NULL */
    score_loss *loss;        /* owned copy */
    score_optimizer *opt;    /* owned */
    score_ema *ema;          /* owned */
    score_rng *rng;          /* owned: seed = SEED; stream 0 = loss noise, 1 = permutations */
    score_model *ema_model;  /* owned clone, created on demand */
    size_t np;
    float *p, *g;            /* parameters and gradient (np) */
    float *spare;            /* np: the optimizer's output, swapped with the model's array */
    float *data;             /* rows x dim, owned copy */
    size_t rows, dim;
    size_t *perm;            /* rows */
    double *u;               /* rows: uniforms of the permutation */
    uint64_t perm_epoch;
    int perm_valid;
    float *batch;            /* cap_batch x dim */
    size_t cap_batch;
    uint64_t step, skipped;
    double last_loss, last_lr;
    int ema_init;            /* the EMA shadow has been (re)started from the weights */
};

static int64_t ti(const score_trainer *tr, int ix)
{
    return tr->params[ix].i;
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
    score__free(tr);
}

/* The generator with the trainer's seed; stream and counter set by the caller. */
static int rng_at(score_trainer *tr, uint64_t stream, uint64_t counter, const char *fn)
{
    score_rng *r;
    int rc;
    uint64_t seed = (uint64_t)ti(tr, IX_SEED), cur;
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
    return SCORE_OK;
}

/* ---- steps ----------------------------------------------------------------------------- */

/* Permutation of epoch e: Fisher-Yates driven by uniforms of stream 1, counter e, row i. */
static int make_perm(score_trainer *tr, uint64_t epoch, const char *fn)
{
    int rc = rng_at(tr, 1, epoch, fn);
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

static int gather(score_trainer *tr, size_t *bsz_out, const char *fn)
{
    size_t B = (size_t)ti(tr, IX_BATCH), spe, pos;
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
    if (ti(tr, IX_SHUFFLE)) {
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
    return SCORE_OK;
}

static int skip_step(score_trainer *tr, const char *fn, const char *why)
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
 * gradient and the whole update are finite (score__optimizer_step_guarded()), and the EMA is
 * updated after it, so a skipped step changes no weight, moment or EMA value. */
static int do_step(score_trainer *tr, double *loss_out, const char *fn)
{
    size_t B = 0;
    double L = NAN;
    float *theta;
    int rc, in_spare = 0;
    if (tr->data == NULL)
        return score__error(SCORE_E_STAGE, fn, "no dataset: call score_trainer_set_data() first");
    if ((rc = gather(tr, &B, fn)) != SCORE_OK)
        return rc;
    theta = score__model_params_data(tr->model);
    if (ti(tr, IX_USE_EMA) && !tr->ema_init) {
        if ((rc = score_ema_reset(tr->ema, tr->np, theta)) != SCORE_OK)
            return rc;
        tr->ema_init = 1;
    }
    memset(tr->g, 0, tr->np * sizeof(float));
    if ((rc = rng_at(tr, 0, tr->step, fn)) != SCORE_OK)
        return rc;
    rc = score_loss_compute(tr->loss, tr->sde, tr->model, tr->rng, B, tr->batch, &L, tr->g);
    tr->last_loss = L;
    if (loss_out)
        *loss_out = L;
    if (rc == SCORE_E_NUMERIC)
        return skip_step(tr, fn, "non-finite loss");
    if (rc != SCORE_OK)
        return rc;
    tr->opt->threads = (int)score__model_i64(tr->model, SCORE_MODEL_PARAM_THREADS);
    rc = score__optimizer_step_guarded(tr->opt, "score_optimizer_step", theta, tr->g, tr->spare,
                                       &in_spare);
    if (rc == SCORE_E_NUMERIC)
        return skip_step(tr, fn, isfinite(tr->opt->last_norm) ? "the update overflowed"
                                                               : "non-finite gradient");
    if (rc != SCORE_OK)
        return rc;
    if (in_spare)
        tr->spare = score__model_params_exchange(tr->model, tr->spare);
    else
        score__model_params_changed(tr->model);
    theta = score__model_params_data(tr->model);
    if (ti(tr, IX_USE_EMA))
        score__ema_update_finite(tr->ema, theta);
    tr->last_lr = tr->opt->last_lr;
    tr->step++;
    return SCORE_OK;
}

int score_trainer_step(score_trainer *tr, double *loss_out)
{
    if (tr == NULL)
        return score__error(SCORE_E_INVAL, __func__, "tr is NULL");
    return do_step(tr, loss_out, __func__);
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
        int rc = do_step(tr, &L, __func__);
        if (rc == SCORE_E_NUMERIC) {
            if (++consecutive >= (uint64_t)ti(tr, IX_MAX_SKIPS))
                return score__error(SCORE_E_NUMERIC, __func__,
                                    "%llu consecutive steps were skipped (non-finite loss or "
                                    "gradient); stopped at step %llu",
                                    (unsigned long long)consecutive, (unsigned long long)tr->step);
        } else if (rc != SCORE_OK) {
            return rc;
        } else {
            consecutive = 0;
        }
        if (progress != NULL &&
            ((i + 1) % (uint64_t)ti(tr, IX_EVERY) == 0 || i + 1 == n_steps)) {
            if (progress((size_t)tr->step, (size_t)total, L, tr->last_lr, user_data) != 0)
                return score__error(SCORE_E_CANCELLED, __func__, "cancelled by the progress callback at step %llu",
                                    (unsigned long long)tr->step);
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
    if (ti(tr, IX_USE_EMA) && tr->ema_init)
        rc = score_ema_copy_to_model(tr->ema, tr->ema_model);
    else if ((rc = score_model_params_get(tr->model, tr->p, tr->np)) == SCORE_OK)
        rc = score_model_params_set(tr->ema_model, tr->p, tr->np);
    if (rc != SCORE_OK)
        return rc;
    *out = tr->ema_model;
    return SCORE_OK;
}

/* ---- checkpoints ------------------------------------------------------------------------
 * A checkpoint is a safetensors file (layout in doc/training.md):
 *   model.file          U8 [*]   the model as a complete libscore model file
 *                                (score_model_save_buffer()), or, for kinds without a file
 *   trainer.params      F32 [P]  format, the flat parameters
 *   trainer.counters    I64 [2]  step, skipped
 *   optimizer.m         F32 [P]  SGD momentum buffer / Adam first moment
 *   optimizer.v         F32 [P]  Adam second moment (Adam and AdamW only)
 *   optimizer.counters  I64 [2]  applied updates, skipped updates
 *   ema.shadow          F32 [P]
 *   ema.counters        I64 [2]  updates, started (0/1)
 *   rng.state           U8 [32]  the trainer's generator (score_rng_state_get())
 * metadata: checkpoint = "libscore-trainer", checkpoint_version = "1", library, model_kind,
 * optimizer, loss, lr, batch_size, step (informational except the first two and optimizer). */

#define CKPT_NAME "libscore-trainer"
#define CKPT_VERSION "1"

static int put_meta_u64(const char *fn, score__st_writer *w, const char *key, uint64_t v)
{
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    return score__st_writer_meta(fn, w, key, tmp);
}

static int put_meta_f64(const char *fn, score__st_writer *w, const char *key, double v)
{
    char tmp[40];
    snprintf(tmp, sizeof tmp, "%.17g", v);
    return score__st_writer_meta(fn, w, key, tmp);
}

static int save_buffer(const char *fn, score_trainer *tr, void **buf, size_t *len)
{
    score__st_writer *w = NULL;
    const uint64_t shp[1] = {tr->np}, two[1] = {2};
    int64_t cnt[2];
    unsigned char rs[64];
    void *mfile = NULL;
    size_t mlen = 0;
    double lr;
    int rc;
    if (score_rng_state_size() > sizeof rs)
        return score__error(SCORE_E_GENERIC, fn, "generator state too large");
    if ((rc = rng_at(tr, 0, 0, fn)) != SCORE_OK)
        return rc;
    if ((rc = score_model_params_get(tr->model, tr->p, tr->np)) != SCORE_OK)
        return rc;
    rc = score_model_save_buffer(tr->model, &mfile, &mlen);
    if (rc != SCORE_OK && rc != SCORE_E_UNSUPPORTED)
        return rc;
    if ((rc = score__st_writer_new(fn, &w)) != SCORE_OK) {
        score_free(mfile);
        return rc;
    }
    rc = score__st_writer_meta(fn, w, "checkpoint", CKPT_NAME);
    if (rc == SCORE_OK) rc = score__st_writer_meta(fn, w, "checkpoint_version", CKPT_VERSION);
    if (rc == SCORE_OK) rc = score__st_writer_meta(fn, w, "library", SCORE_VERSION_STRING);
    if (rc == SCORE_OK) rc = score__st_writer_meta(fn, w, "model_kind", tr->model->ops->name);
    if (rc == SCORE_OK) rc = score__st_writer_meta(fn, w, "optimizer", score_optimizer_name(tr->opt));
    if (rc == SCORE_OK) rc = score__st_writer_meta(fn, w, "loss", score_loss_name(tr->loss));
    if (rc == SCORE_OK && score_optimizer_get_f64(tr->opt, SCORE_OPTIMIZER_PARAM_LR, &lr) == SCORE_OK)
        rc = put_meta_f64(fn, w, "lr", lr);
    if (rc == SCORE_OK) rc = put_meta_u64(fn, w, "batch_size", (uint64_t)ti(tr, IX_BATCH));
    if (rc == SCORE_OK) rc = put_meta_u64(fn, w, "step", tr->step);
    if (rc == SCORE_OK) {
        if (mfile != NULL)
            rc = score__st_writer_add_u8(fn, w, "model.file", mlen, mfile);
        else
            rc = score__st_writer_add_f32(fn, w, "trainer.params", 1, shp, tr->p);
    }
    cnt[0] = (int64_t)tr->step;
    cnt[1] = (int64_t)tr->skipped;
    if (rc == SCORE_OK) rc = score__st_writer_add_i64(fn, w, "trainer.counters", 1, two, cnt);
    if (rc == SCORE_OK) rc = score__st_writer_add_f32(fn, w, "optimizer.m", 1, shp, tr->opt->m);
    if (rc == SCORE_OK && tr->opt->v)
        rc = score__st_writer_add_f32(fn, w, "optimizer.v", 1, shp, tr->opt->v);
    cnt[0] = (int64_t)tr->opt->step;
    cnt[1] = (int64_t)tr->opt->skipped;
    if (rc == SCORE_OK) rc = score__st_writer_add_i64(fn, w, "optimizer.counters", 1, two, cnt);
    if (rc == SCORE_OK) rc = score__st_writer_add_f32(fn, w, "ema.shadow", 1, shp, tr->ema->shadow);
    cnt[0] = (int64_t)tr->ema->num_updates;
    cnt[1] = tr->ema_init;
    if (rc == SCORE_OK) rc = score__st_writer_add_i64(fn, w, "ema.counters", 1, two, cnt);
    if (rc == SCORE_OK && (rc = score_rng_state_get(tr->rng, rs, sizeof rs)) == SCORE_OK)
        rc = score__st_writer_add_u8(fn, w, "rng.state", score_rng_state_size(), rs);
    if (rc == SCORE_OK)
        rc = score__st_writer_finish(fn, w, buf, len);
    score__st_writer_free(w);
    score_free(mfile);
    return rc;
}

int score_trainer_save_buffer(score_trainer *tr, void **buf_out, size_t *len_out)
{
    if (buf_out != NULL)
        *buf_out = NULL;
    if (len_out != NULL)
        *len_out = 0;
    if (tr == NULL || buf_out == NULL || len_out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "tr, buf_out or len_out is NULL");
    return save_buffer(__func__, tr, buf_out, len_out);
}

int score_trainer_save(score_trainer *tr, const char *path)
{
    void *buf = NULL;
    size_t len = 0;
    int rc;
    if (tr == NULL || path == NULL)
        return score__error(SCORE_E_INVAL, __func__, "tr or path is NULL");
    if (path[0] == '\0')
        return score__error(SCORE_E_INVAL, __func__, "path is empty");
    if ((rc = save_buffer(__func__, tr, &buf, &len)) != SCORE_OK)
        return rc;
    rc = score__st_save_file(__func__, path, buf, len);
    score__free(buf);
    return rc;
}

static int check_header(const char *fn, const score__st_reader *r)
{
    static const char *const known[] = {"model.file", "trainer.params", "trainer.counters",
                                        "optimizer.m", "optimizer.v", "optimizer.counters",
                                        "ema.shadow", "ema.counters", "rng.state"};
    const char *ck = score__st_meta(r, "checkpoint"), *cv = score__st_meta(r, "checkpoint_version");
    if (ck == NULL || strcmp(ck, CKPT_NAME) != 0)
        return score__error(SCORE_E_FORMAT, fn, "not a libscore trainer checkpoint (metadata 'checkpoint')");
    if (cv == NULL || strcmp(cv, CKPT_VERSION) != 0)
        return score__error(SCORE_E_FORMAT, fn, "unsupported checkpoint version '%.20s' (this library reads %s)",
                            cv ? cv : "(missing)", CKPT_VERSION);
    /* no unknown tensor (it would be silently ignored), and the model exactly once */
    for (size_t i = 0; i < score__st_count(r); i++) {
        const char *name = score__st_tensor_at(r, i)->name;
        size_t j = 0;
        while (j < sizeof known / sizeof known[0] && strcmp(name, known[j]) != 0)
            j++;
        if (j == sizeof known / sizeof known[0])
            return score__error(SCORE_E_FORMAT, fn, "unexpected tensor '%.60s' in the checkpoint",
                                name);
    }
    if ((score__st_find(r, "model.file") != NULL) == (score__st_find(r, "trainer.params") != NULL))
        return score__error(SCORE_E_FORMAT, fn,
                            "the checkpoint must hold exactly one of 'model.file' and 'trainer.params'");
    return SCORE_OK;
}

/* The model stored in a checkpoint (a new handle), from its embedded model file. */
static int stored_model(const char *fn, const score__st_reader *r, score_model **out)
{
    const score__st_tensor *t = score__st_find(r, "model.file");
    int rc;
    *out = NULL;
    if (t == NULL)
        return score__error(SCORE_E_FORMAT, fn, "the checkpoint holds no model file (tensor 'model.file')");
    if (t->dtype != SCORE__ST_U8 || t->ndim != 1)
        return score__error(SCORE_E_FORMAT, fn, "tensor 'model.file' is not a U8 vector");
    rc = score_model_load_buffer(out, t->data, t->nbytes);
    if (rc == SCORE_OK || rc == SCORE_E_NOMEM)
        return rc;
    {
        char msg[384];
        snprintf(msg, sizeof msg, "%s", score_last_error_message());
        return score__error(SCORE_E_FORMAT, fn, "the embedded model file is invalid: %s", msg);
    }
}

/* Same architecture: parameter count, and for MLPs widths, activation, embedding and the
 * Fourier projection (fixed by the model's seed, not a trainable parameter). */
static int same_architecture(const char *fn, const score_model *a, score_model *b)
{
    score__mlp_info ia, ib;
    if (score_model_kind(a) != score_model_kind(b))
        return score__error(SCORE_E_FORMAT, fn, "the checkpoint's model is of another kind");
    if (score_model_kind(a) == SCORE_MODEL_MLP && score__mlp_info_get(a, &ia) == SCORE_OK &&
        score__mlp_info_get(b, &ib) == SCORE_OK) {
        int same = ia.n_layers == ib.n_layers && ia.activation == ib.activation &&
                   ia.embedding == ib.embedding && ia.embed_in == ib.embed_in &&
                   ia.n_params == ib.n_params;
        for (size_t l = 0; same && l <= ia.n_layers; l++)
            same = ia.width[l] == ib.width[l] && ia.residual[l] == ib.residual[l];
        if (same && ia.fourier != NULL && ib.fourier != NULL)
            same = memcmp(ia.fourier, ib.fourier, ia.embed_in / 2 * sizeof(float)) == 0;
        if (!same)
            return score__error(SCORE_E_FORMAT, fn,
                                "the checkpoint's MLP has another architecture (widths, activation, "
                                "embedding or the Fourier projection of its seed)");
    }
    return SCORE_OK;
}

/* Everything is read and validated into temporaries first; the trainer changes only at the end. */
static int load_reader(const char *fn, score_trainer *tr, const score__st_reader *r)
{
    const char *on = score__st_meta(r, "optimizer");
    const uint64_t shp[1] = {tr->np}, two[1] = {2};
    const size_t P = tr->np;
    int64_t tcnt[2], ocnt[2], ecnt[2];
    unsigned char rs[64];
    float *params = NULL, *m = NULL, *v = NULL, *shadow = NULL;
    score_rng *rng = NULL;
    uint64_t seed;
    int rc;
    if ((rc = check_header(fn, r)) != SCORE_OK)
        return rc;
    if (on == NULL || strcmp(on, score_optimizer_name(tr->opt)) != 0)
        return score__error(SCORE_E_FORMAT, fn, "the checkpoint's optimizer is '%.20s', this trainer's '%s'",
                            on ? on : "(missing)", score_optimizer_name(tr->opt));
    if (score_rng_state_size() > sizeof rs)
        return score__error(SCORE_E_GENERIC, fn, "generator state too large");
    if (tr->opt->v == NULL && score__st_find(r, "optimizer.v") != NULL)
        return score__error(SCORE_E_FORMAT, fn, "unexpected tensor 'optimizer.v' for the '%s' optimizer",
                            score_optimizer_name(tr->opt));
    params = score__calloc(P, sizeof(float));
    m = score__calloc(P, sizeof(float));
    shadow = score__calloc(P, sizeof(float));
    if (tr->opt->v)
        v = score__calloc(P, sizeof(float));
    if (params == NULL || m == NULL || shadow == NULL || (tr->opt->v && v == NULL)) {
        rc = score__error(SCORE_E_NOMEM, fn, "allocation failed");
        goto done;
    }
    if (score__st_find(r, "trainer.params") != NULL) {
        rc = score__st_get_f32(fn, r, "trainer.params", 1, shp, params, 1);
    } else {
        score_model *tmp = NULL;
        rc = stored_model(fn, r, &tmp);
        if (rc == SCORE_OK && score_model_param_count(tmp) != P)
            rc = score__error(SCORE_E_FORMAT, fn, "the checkpoint's model has %zu parameters, this one %zu",
                              score_model_param_count(tmp), P);
        if (rc == SCORE_OK)
            rc = same_architecture(fn, tmp, tr->model);
        if (rc == SCORE_OK)
            rc = score_model_params_get(tmp, params, P);
        score_model_free(tmp);
    }
    if (rc != SCORE_OK)
        goto done;
    if ((rc = score__st_get_i64(fn, r, "trainer.counters", 1, two, tcnt)) != SCORE_OK ||
        (rc = score__st_get_f32(fn, r, "optimizer.m", 1, shp, m, 1)) != SCORE_OK ||
        (v && (rc = score__st_get_f32(fn, r, "optimizer.v", 1, shp, v, 1)) != SCORE_OK) ||
        (rc = score__st_get_i64(fn, r, "optimizer.counters", 1, two, ocnt)) != SCORE_OK ||
        (rc = score__st_get_f32(fn, r, "ema.shadow", 1, shp, shadow, 1)) != SCORE_OK ||
        (rc = score__st_get_i64(fn, r, "ema.counters", 1, two, ecnt)) != SCORE_OK ||
        (rc = score__st_get_u8(fn, r, "rng.state", score_rng_state_size(), rs)) != SCORE_OK)
        goto done;
    if (tcnt[0] < 0 || tcnt[1] < 0 || tcnt[1] > tcnt[0] || tcnt[0] >= ((int64_t)1 << 32) ||
        ocnt[0] < 0 || ocnt[1] < 0 || ecnt[0] < 0 || (ecnt[1] != 0 && ecnt[1] != 1)) {
        rc = score__error(SCORE_E_FORMAT, fn, "inconsistent counters in the checkpoint");
        goto done;
    }
    for (size_t i = 0; v && i < P; i++) {
        if (v[i] < 0.0f) {
            rc = score__error(SCORE_E_FORMAT, fn, "optimizer.v holds a negative second moment");
            goto done;
        }
    }
    if ((rc = score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 0)) != SCORE_OK)
        goto done;
    if (score_rng_state_set(rng, rs, score_rng_state_size()) != SCORE_OK ||
        score_rng_get_seed(rng, &seed) != SCORE_OK || seed > ((uint64_t)1 << 62)) {
        rc = score__error(SCORE_E_FORMAT, fn, "rng.state is not a valid generator state for a trainer");
        goto done;
    }
    /* commit */
    if ((rc = score_model_params_set(tr->model, params, P)) != SCORE_OK)
        goto done;
    memcpy(tr->p, params, P * sizeof(float));
    memcpy(tr->opt->m, m, P * sizeof(float));
    if (v)
        memcpy(tr->opt->v, v, P * sizeof(float));
    score__optimizer_moments_changed(tr->opt);
    tr->opt->step = (uint64_t)ocnt[0];
    tr->opt->skipped = (uint64_t)ocnt[1];
    memcpy(tr->ema->shadow, shadow, P * sizeof(float));
    tr->ema->num_updates = (uint64_t)ecnt[0];
    tr->ema_init = (int)ecnt[1];
    tr->step = (uint64_t)tcnt[0];
    tr->skipped = (uint64_t)tcnt[1];
    tr->params[IX_SEED].i = (int64_t)seed;
    score_rng_free(tr->rng);
    tr->rng = rng;
    rng = NULL;
    tr->perm_valid = 0;
    tr->last_loss = NAN;
    rc = SCORE_OK;
done:
    score_rng_free(rng);
    score__free(params);
    score__free(m);
    score__free(v);
    score__free(shadow);
    return rc;
}

int score_trainer_load_buffer(score_trainer *tr, const void *buf, size_t len)
{
    score__st_reader *r = NULL;
    int rc;
    if (tr == NULL || buf == NULL)
        return score__error(SCORE_E_INVAL, __func__, "tr or buf is NULL");
    if ((rc = score__st_reader_open(__func__, &r, buf, len, 0)) != SCORE_OK)
        return rc;
    rc = load_reader(__func__, tr, r);
    score__st_reader_free(r);
    return rc;
}

int score_trainer_load(score_trainer *tr, const char *path)
{
    score__st_reader *r = NULL;
    int rc;
    if (tr == NULL || path == NULL)
        return score__error(SCORE_E_INVAL, __func__, "tr or path is NULL");
    if ((rc = score__st_reader_open_file(__func__, &r, path)) != SCORE_OK)
        return rc;
    rc = load_reader(__func__, tr, r);
    score__st_reader_free(r);
    return rc;
}

/* The stored model, with the EMA average instead of the weights when use_ema is set. */
static int model_from_reader(const char *fn, const score__st_reader *r, int use_ema,
                             score_model **out)
{
    score_model *m = NULL;
    int rc = check_header(fn, r);
    if (rc == SCORE_OK)
        rc = stored_model(fn, r, &m);
    if (rc == SCORE_OK && use_ema) {
        size_t P = score_model_param_count(m);
        const uint64_t shp[1] = {P}, two[1] = {2};
        int64_t ecnt[2];
        float *shadow = score__calloc(P, sizeof(float));
        if (shadow == NULL)
            rc = score__error(SCORE_E_NOMEM, fn, "allocation failed");
        if (rc == SCORE_OK)
            rc = score__st_get_i64(fn, r, "ema.counters", 1, two, ecnt);
        if (rc == SCORE_OK && ecnt[1] == 1 &&
            (rc = score__st_get_f32(fn, r, "ema.shadow", 1, shp, shadow, 1)) == SCORE_OK &&
            (rc = score_model_params_set(m, shadow, P)) == SCORE_OK)
            rc = score__model_probe(fn, m); /* the averaged weights are checked like a file's */
        score__free(shadow);
    }
    if (rc != SCORE_OK) {
        score_model_free(m);
        return rc;
    }
    *out = m;
    return SCORE_OK;
}

int score_trainer_checkpoint_model_buffer(score_model **out, const void *buf, size_t len,
                                          int use_ema)
{
    score__st_reader *r = NULL;
    int rc;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (buf == NULL)
        return score__error(SCORE_E_INVAL, __func__, "buf is NULL");
    if (use_ema != 0 && use_ema != 1)
        return score__error(SCORE_E_INVAL, __func__, "use_ema = %d is neither 0 nor 1", use_ema);
    if ((rc = score__st_reader_open(__func__, &r, buf, len, 0)) != SCORE_OK)
        return rc;
    rc = model_from_reader(__func__, r, use_ema, out);
    score__st_reader_free(r);
    return rc;
}

int score_trainer_checkpoint_model(score_model **out, const char *path, int use_ema)
{
    score__st_reader *r = NULL;
    int rc;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (path == NULL)
        return score__error(SCORE_E_INVAL, __func__, "path is NULL");
    if (use_ema != 0 && use_ema != 1)
        return score__error(SCORE_E_INVAL, __func__, "use_ema = %d is neither 0 nor 1", use_ema);
    if ((rc = score__st_reader_open_file(__func__, &r, path)) != SCORE_OK)
        return rc;
    rc = model_from_reader(__func__, r, use_ema, out);
    score__st_reader_free(r);
    return rc;
}
