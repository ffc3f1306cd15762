/* Trainer checkpoints: save the whole training state (model, optimizer, EMA, generator,
 * counters) and resume it bit for bit; read a model out of a checkpoint. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/comm-priv.h"
#include "core/param-registry.h"
#include "io/safetensors-priv.h"
#include "loss/loss-priv.h"
#include "libscore/version.h"
#include "model/model-priv.h"
#include "train-priv.h"

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
 *   config.schedule.array  F64 [L]  the levels of a user-array schedule of the trainer's sde
 *                                (checkpoint-inputs.c)
 * metadata: checkpoint = "libscore-trainer", checkpoint_version = "1", library, model_kind,
 * optimizer, loss, lr, batch_size, step, and the configuration (below): one key
 * "config.<group>.<name>" per parameter that decides the continuation (checked by the load; the
 * other keys are informational except the first two, optimizer and loss), and the inputs
 * (the sde, its schedule and the dataset's fingerprint: checkpoint-inputs.c). */

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

/* ---- the configuration ----------------------------------------------------------------------
 * Every parameter of the optimizer, the EMA, the trainer and the trainer's loss that changes
 * what the next steps compute, as metadata "config.<group>.<name>" with the value as text:
 * integers in decimal, doubles in the shortest "%.Ng" that reads back to the same double (so
 * that the comparison is exact). Not part of it: the trainer's SEED (restored from the
 * generator's state, as before), PROGRESS_EVERY and MAX_SKIPS (they change no value) and
 * REDUCE_ROWS, replaced by "config.trainer.reduce_blocks": the
 * number of reduction blocks of a minibatch (ceil(BATCH_SIZE / REDUCE_ROWS) with a
 * communicator, 1 without), which is what decides the bits. A checkpoint without any "config."
 * key was written before the configuration was recorded: only its lr and batch_size are
 * compared. A key that is absent from a checkpoint that has others stands for the parameter's
 * default (a parameter added later behaves by default as before it existed); a "config." key
 * this library does not know is refused (the checkpoint is from a newer library). */

#define CFG_PREFIX "config."
#define CFG_VALUE_LEN 48

typedef struct cfg_group {
    const char *name;
    const score__param_desc *tab;
    size_t n;
    const score__param_val *vals;
} cfg_group;

enum { CFG_GROUPS = 4 };

static void cfg_groups(const score_trainer *tr, cfg_group g[CFG_GROUPS])
{
    g[0] = (cfg_group){"optimizer", NULL, 0, tr->opt->params};
    g[0].tab = score__optimizer_param_table(&g[0].n);
    g[1] = (cfg_group){"ema", NULL, 0, tr->ema->params};
    g[1].tab = score__ema_param_table(&g[1].n);
    g[2] = (cfg_group){"trainer", NULL, 0, tr->params};
    g[2].tab = score__trainer_param_table(&g[2].n);
    g[3] = (cfg_group){"loss", NULL, 0, tr->loss->params};
    g[3].tab = score__loss_param_table(&g[3].n);
}

/* Trainer parameters that change no result, that are recorded as reduce_blocks, or that the
 * checkpoint restores (the seed, with the generator's state). */
static int cfg_skipped(const cfg_group *g, const score__param_desc *d)
{
    return strcmp(g->name, "trainer") == 0 &&
           (d->id == SCORE_TRAINER_PARAM_SEED || d->id == SCORE_TRAINER_PARAM_PROGRESS_EVERY ||
            d->id == SCORE_TRAINER_PARAM_MAX_SKIPS || d->id == SCORE_TRAINER_PARAM_REDUCE_ROWS);
}

/* The shortest decimal form of v that reads back to v. */
static void fmt_f64(char *buf, size_t len, double v)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

void score__ckpt_fmt_val(char *buf, size_t len, const score__param_desc *d, score__param_val v)
{
    if (d->type == SCORE_PARAM_F64)
        fmt_f64(buf, len, v.f);
    else
        snprintf(buf, len, "%lld", (long long)v.i);
}

/* Reduction blocks per minibatch (see above). */
static uint64_t reduce_blocks(const score_trainer *tr)
{
    uint64_t b = (uint64_t)score__trainer_i64(tr, TRAINER_IX_BATCH);
    uint64_t r = (uint64_t)score__trainer_i64(tr, TRAINER_IX_REDUCE_ROWS);
    return tr->comm != NULL ? (b + r - 1) / r : 1;
}

static int put_config(const char *fn, score__st_writer *w, const score_trainer *tr)
{
    cfg_group g[CFG_GROUPS];
    char key[96], val[CFG_VALUE_LEN];
    int rc = SCORE_OK;
    cfg_groups(tr, g);
    for (size_t k = 0; k < CFG_GROUPS && rc == SCORE_OK; k++) {
        for (size_t i = 0; i < g[k].n && rc == SCORE_OK; i++) {
            if (cfg_skipped(&g[k], &g[k].tab[i]))
                continue;
            snprintf(key, sizeof key, CFG_PREFIX "%s.%s", g[k].name, g[k].tab[i].name);
            score__ckpt_fmt_val(val, sizeof val, &g[k].tab[i], g[k].vals[i]);
            rc = score__st_writer_meta(fn, w, key, val);
        }
    }
    if (rc == SCORE_OK) {
        snprintf(val, sizeof val, "%llu", (unsigned long long)reduce_blocks(tr));
        rc = score__st_writer_meta(fn, w, CFG_PREFIX "trainer.reduce_blocks", val);
    }
    return rc == SCORE_OK ? score__ckpt_put_inputs(fn, w, tr) : rc;
}

/* The refusal of a parameter that differs. */
int score__ckpt_mismatch(const char *fn, const char *group, const char *name, const char *stored,
                         const char *mine)
{
    return score__error(SCORE_E_FORMAT, fn,
                        "the checkpoint was written with %s parameter '%s' = %s, this trainer "
                        "has '%s' = %s (continuing with another value would not continue that "
                        "run)", group, name, stored, name, mine);
}

/* A checkpoint from before the configuration was recorded: its informational lr and
 * batch_size. */
static int check_legacy_config(const char *fn, const score_trainer *tr, const score__st_reader *r)
{
    const char *lr = score__st_meta(r, "lr"), *bs = score__st_meta(r, "batch_size");
    char mine[CFG_VALUE_LEN];
    double my_lr = 0;
    if (score_optimizer_get_f64(tr->opt, SCORE_OPTIMIZER_PARAM_LR, &my_lr) != SCORE_OK)
        return SCORE_E_GENERIC; /* not reached: every optimizer has a learning rate */
    if (lr != NULL && strtod(lr, NULL) != my_lr) {
        fmt_f64(mine, sizeof mine, my_lr);
        return score__ckpt_mismatch(fn, "optimizer", "lr", lr, mine);
    }
    snprintf(mine, sizeof mine, "%lld", (long long)score__trainer_i64(tr, TRAINER_IX_BATCH));
    if (bs != NULL && strcmp(bs, mine) != 0)
        return score__ckpt_mismatch(fn, "trainer", "batch_size", bs, mine);
    return SCORE_OK;
}

/* Compares the checkpoint's configuration with the trainer's (see above). */
static int check_config(const char *fn, const score_trainer *tr, const score__st_reader *r)
{
    cfg_group g[CFG_GROUPS];
    char key[96], mine[CFG_VALUE_LEN], def[CFG_VALUE_LEN];
    const char *ln = score__st_meta(r, "loss");
    size_t nmeta = score__st_meta_count(r), nconf = 0;
    if (ln == NULL || strcmp(ln, score_loss_name(tr->loss)) != 0)
        return score__error(SCORE_E_FORMAT, fn,
                            "the checkpoint's loss is '%.20s', this trainer's '%s'",
                            ln ? ln : "(missing)", score_loss_name(tr->loss));
    cfg_groups(tr, g);
    /* every "config." key is one this library knows */
    for (size_t m = 0; m < nmeta; m++) {
        const char *mk = NULL, *mv = NULL;
        int known = 0;
        if (score__st_meta_at(r, m, &mk, &mv) != SCORE_OK ||
            strncmp(mk, CFG_PREFIX, strlen(CFG_PREFIX)) != 0)
            continue;
        nconf++;
        known = strcmp(mk, CFG_PREFIX "trainer.reduce_blocks") == 0 ||
                score__ckpt_input_key(mk);
        for (size_t k = 0; k < CFG_GROUPS && !known; k++) {
            for (size_t i = 0; i < g[k].n && !known; i++) {
                snprintf(key, sizeof key, CFG_PREFIX "%s.%s", g[k].name, g[k].tab[i].name);
                known = !cfg_skipped(&g[k], &g[k].tab[i]) && strcmp(mk, key) == 0;
            }
        }
        if (!known)
            return score__error(SCORE_E_FORMAT, fn,
                                "the checkpoint records parameter '%.60s', unknown to this "
                                "library (written by a newer version)", mk + strlen(CFG_PREFIX));
    }
    if (nconf == 0)
        return check_legacy_config(fn, tr, r);
    for (size_t k = 0; k < CFG_GROUPS; k++) {
        for (size_t i = 0; i < g[k].n; i++) {
            const score__param_desc *d = &g[k].tab[i];
            const char *stored;
            score__param_val dv;
            if (cfg_skipped(&g[k], d))
                continue;
            snprintf(key, sizeof key, CFG_PREFIX "%s.%s", g[k].name, d->name);
            score__ckpt_fmt_val(mine, sizeof mine, d, g[k].vals[i]);
            if ((stored = score__st_meta(r, key)) == NULL) {
                if (d->type == SCORE_PARAM_F64)
                    dv.f = d->def;
                else
                    dv.i = (int64_t)d->def;
                score__ckpt_fmt_val(def, sizeof def, d, dv);
                stored = def;
            }
            if (strcmp(stored, mine) != 0)
                return score__ckpt_mismatch(fn, g[k].name, d->name, stored, mine);
        }
    }
    {
        const char *stored = score__st_meta(r, CFG_PREFIX "trainer.reduce_blocks");
        snprintf(mine, sizeof mine, "%llu", (unsigned long long)reduce_blocks(tr));
        if (stored != NULL && strcmp(stored, mine) != 0)
            return score__error(SCORE_E_FORMAT, fn,
                                "the checkpoint was written with %.20s reduction block(s) per "
                                "minibatch, this trainer makes %s (%s): the gradient sums "
                                "would differ (see SCORE_TRAINER_PARAM_REDUCE_ROWS)", stored,
                                mine, tr->comm != NULL ? "a communicator" : "no communicator");
    }
    return SCORE_OK;
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
    if ((rc = score__trainer_rng_at(tr, 0, 0, fn)) != SCORE_OK)
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
    if (rc == SCORE_OK) rc = put_meta_u64(fn, w, "batch_size", (uint64_t)score__trainer_i64(tr, TRAINER_IX_BATCH));
    if (rc == SCORE_OK) rc = put_meta_u64(fn, w, "step", tr->step);
    if (rc == SCORE_OK) rc = put_config(fn, w, tr);
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

/* save_buffer() for score__save_file_via_buffer(): the trainer is passed as a const pointer
 * there, but saving reseeds its generator (rng state written into the file), so it is the
 * caller's non-const trainer. */
static int trainer_to_buffer(const char *fn, const void *obj, void **buf, size_t *len)
{
    return save_buffer(fn, (score_trainer *)obj, buf, len);
}

int score_trainer_save(score_trainer *tr, const char *path)
{
    int rc = SCORE_OK;
    if (tr == NULL || path == NULL)
        return score__error(SCORE_E_INVAL, __func__, "tr or path is NULL");
    /* with a communicator rank 0 writes (atomically) and every rank returns its status */
    if (score_comm_rank(tr->comm) == 0)
        rc = score__save_file_via_buffer(__func__, path, tr, trainer_to_buffer);
    return tr->comm != NULL ? score__comm_conclude(tr->comm, rc, __func__) : rc;
}

static int check_header(const char *fn, const score__st_reader *r)
{
    static const char *const known[] = {"model.file", "trainer.params", "trainer.counters",
                                        "optimizer.m", "optimizer.v", "optimizer.counters",
                                        "ema.shadow", "ema.counters", "rng.state",
                                        "config.schedule.array"};
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

/* Same kind and architecture (for MLPs: widths, activation, embedding and the Fourier
 * projection of the seed; score__model_same_architecture()). */
static int same_architecture(const char *fn, const score_model *a, score_model *b)
{
    if (score_model_kind(a) != score_model_kind(b))
        return score__error(SCORE_E_FORMAT, fn, "the checkpoint's model is of another kind");
    if (!score__model_same_architecture(a, b))
        return score__error(SCORE_E_FORMAT, fn,
                            "the checkpoint's %s has another architecture (widths, activation, "
                            "embedding or the Fourier projection of its seed)",
                            score_model_kind(a) == SCORE_MODEL_MLP ? "MLP" : "model");
    return SCORE_OK;
}

/* A checkpoint's state read and validated, not yet in the trainer (load_reader() fills it,
 * commit() installs it). */
typedef struct staged {
    int64_t tcnt[2], ocnt[2], ecnt[2];
    float *params, *m, *v, *shadow;
    score_rng *rng;
    uint64_t seed;
} staged;

static void staged_free(staged *st)
{
    score_rng_free(st->rng);
    score__free(st->params);
    score__free(st->m);
    score__free(st->v);
    score__free(st->shadow);
}

/* Everything is read and validated into the temporaries of st (freed by the caller); the
 * trainer does not change. About 100 lines: one sequence of reads, each checked against the
 * trainer. */
static int load_reader(const char *fn, score_trainer *tr, const score__st_reader *r, staged *st)
{
    const char *on = score__st_meta(r, "optimizer");
    const uint64_t shp[1] = {tr->np}, two[1] = {2};
    const size_t P = tr->np;
    int64_t *tcnt = st->tcnt, *ocnt = st->ocnt, *ecnt = st->ecnt;
    unsigned char rs[64];
    float *params, *m, *v = NULL, *shadow;
    int rc;
    if ((rc = check_header(fn, r)) != SCORE_OK)
        return rc;
    if (on == NULL || strcmp(on, score_optimizer_name(tr->opt)) != 0)
        return score__error(SCORE_E_FORMAT, fn, "the checkpoint's optimizer is '%.20s', this trainer's '%s'",
                            on ? on : "(missing)", score_optimizer_name(tr->opt));
    if ((rc = check_config(fn, tr, r)) != SCORE_OK ||
        (rc = score__ckpt_check_inputs(fn, tr, r)) != SCORE_OK)
        return rc;
    if (score_rng_state_size() > sizeof rs)
        return score__error(SCORE_E_GENERIC, fn, "generator state too large");
    if (tr->opt->v == NULL && score__st_find(r, "optimizer.v") != NULL)
        return score__error(SCORE_E_FORMAT, fn, "unexpected tensor 'optimizer.v' for the '%s' optimizer",
                            score_optimizer_name(tr->opt));
    params = st->params = score__calloc(P, sizeof(float));
    m = st->m = score__calloc(P, sizeof(float));
    shadow = st->shadow = score__calloc(P, sizeof(float));
    if (tr->opt->v)
        v = st->v = score__calloc(P, sizeof(float));
    if (params == NULL || m == NULL || shadow == NULL || (tr->opt->v && v == NULL))
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
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
        return rc;
    if ((rc = score__st_get_i64(fn, r, "trainer.counters", 1, two, tcnt)) != SCORE_OK ||
        (rc = score__st_get_f32(fn, r, "optimizer.m", 1, shp, m, 1)) != SCORE_OK ||
        (v && (rc = score__st_get_f32(fn, r, "optimizer.v", 1, shp, v, 1)) != SCORE_OK) ||
        (rc = score__st_get_i64(fn, r, "optimizer.counters", 1, two, ocnt)) != SCORE_OK ||
        (rc = score__st_get_f32(fn, r, "ema.shadow", 1, shp, shadow, 1)) != SCORE_OK ||
        (rc = score__st_get_i64(fn, r, "ema.counters", 1, two, ecnt)) != SCORE_OK ||
        (rc = score__st_get_u8(fn, r, "rng.state", score_rng_state_size(), rs)) != SCORE_OK)
        return rc;
    if (tcnt[0] < 0 || tcnt[1] < 0 || tcnt[1] > tcnt[0] || tcnt[0] >= ((int64_t)1 << 32) ||
        ocnt[0] < 0 || ocnt[1] < 0 || ecnt[0] < 0 || (ecnt[1] != 0 && ecnt[1] != 1))
        return score__error(SCORE_E_FORMAT, fn, "inconsistent counters in the checkpoint");
    for (size_t i = 0; v && i < P; i++)
        if (v[i] < 0.0f)
            return score__error(SCORE_E_FORMAT, fn, "optimizer.v holds a negative second moment");
    if ((rc = score_rng_new(&st->rng, SCORE_RNG_PHILOX4X32_10, 0)) != SCORE_OK)
        return rc;
    if (score_rng_state_set(st->rng, rs, score_rng_state_size()) != SCORE_OK ||
        score_rng_get_seed(st->rng, &st->seed) != SCORE_OK || st->seed > ((uint64_t)1 << 62))
        return score__error(SCORE_E_FORMAT, fn, "rng.state is not a valid generator state for a trainer");
    return SCORE_OK;
}

/* Installs a validated state into the trainer (its generator moves from st). Does not fail
 * after load_reader() (the parameters are finite and of the model's count): with a
 * communicator, every rank that agreed commits. */
static int commit(score_trainer *tr, staged *st)
{
    const size_t P = tr->np;
    int rc;
    if ((rc = score_model_params_set(tr->model, st->params, P)) != SCORE_OK)
        return rc;
    memcpy(tr->p, st->params, P * sizeof(float));
    memcpy(tr->opt->m, st->m, P * sizeof(float));
    if (st->v)
        memcpy(tr->opt->v, st->v, P * sizeof(float));
    score__optimizer_moments_changed(tr->opt);
    tr->opt->step = (uint64_t)st->ocnt[0];
    tr->opt->skipped = (uint64_t)st->ocnt[1];
    memcpy(tr->ema->shadow, st->shadow, P * sizeof(float));
    tr->ema->num_updates = (uint64_t)st->ecnt[0];
    tr->ema_init = (int)st->ecnt[1];
    tr->step = (uint64_t)st->tcnt[0];
    tr->skipped = (uint64_t)st->tcnt[1];
    tr->params[TRAINER_IX_SEED].i = (int64_t)st->seed;
    score_rng_free(tr->rng);
    tr->rng = st->rng;
    st->rng = NULL;
    tr->perm_valid = 0;
    tr->last_loss = NAN;
    score__trainer_comm_dirty(tr);
    return SCORE_OK;
}

typedef struct load_ctx {
    score_trainer *tr;
    staged st;
} load_ctx;

static int load_trainer_cb(const char *fn, const score__st_reader *r, void *ctx)
{
    load_ctx *c = ctx;
    return load_reader(fn, c->tr, r, &c->st);
}

/* score_trainer_load*(): read and validate; with a communicator every rank agrees on the
 * outcome (a rank whose checkpoint, configuration or data was refused makes every rank
 * refuse); then the commit, on every rank or none. */
static int load_common(const char *fn, score_trainer *tr, const char *path, const void *buf,
                       size_t len)
{
    load_ctx c;
    int rc;
    memset(&c, 0, sizeof c);
    c.tr = tr;
    rc = score__st_load(fn, path, buf, len, load_trainer_cb, &c);
    if (tr->comm != NULL)
        rc = score__comm_conclude(tr->comm, rc, fn);
    if (rc == SCORE_OK)
        rc = commit(tr, &c.st);
    staged_free(&c.st);
    return rc;
}

int score_trainer_load_buffer(score_trainer *tr, const void *buf, size_t len)
{
    if (tr == NULL || buf == NULL)
        return score__error(SCORE_E_INVAL, __func__, "tr or buf is NULL");
    return load_common(__func__, tr, NULL, buf, len);
}

int score_trainer_load(score_trainer *tr, const char *path)
{
    if (tr == NULL || path == NULL)
        return score__error(SCORE_E_INVAL, __func__, "tr or path is NULL");
    return load_common(__func__, tr, path, NULL, 0);
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

/* score_trainer_checkpoint_model*(): the checks, then the stored model through the reader. */
typedef struct ckpt_model_ctx {
    int use_ema;
    score_model **out;
} ckpt_model_ctx;

static int ckpt_model_cb(const char *fn, const score__st_reader *r, void *ctx)
{
    ckpt_model_ctx *c = ctx;
    return model_from_reader(fn, r, c->use_ema, c->out);
}

static int checkpoint_model(const char *fn, score_model **out, int from_file, const void *src,
                            size_t len, int use_ema)
{
    ckpt_model_ctx c = {use_ema, out};
    if (out == NULL)
        return score__error(SCORE_E_INVAL, fn, "out is NULL");
    *out = NULL;
    if (src == NULL)
        return score__error(SCORE_E_INVAL, fn, "%s is NULL", from_file ? "path" : "buf");
    if (use_ema != 0 && use_ema != 1)
        return score__error(SCORE_E_INVAL, fn, "use_ema = %d is neither 0 nor 1", use_ema);
    return score__st_load(fn, from_file ? (const char *)src : NULL, from_file ? NULL : src, len,
                          ckpt_model_cb, &c);
}

int score_trainer_checkpoint_model_buffer(score_model **out, const void *buf, size_t len,
                                          int use_ema)
{
    return checkpoint_model(__func__, out, 0, buf, len, use_ema);
}

int score_trainer_checkpoint_model(score_model **out, const char *path, int use_ema)
{
    return checkpoint_model(__func__, out, 1, path, 0, use_ema);
}
