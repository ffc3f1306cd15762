/* The distributed workloads shared by the communicator tests (test-comm.c: ranks as threads
 * of one process; test-mpi.c: ranks as MPI processes): a training run, a sampling run and a
 * likelihood evaluation whose results every rank count must reproduce bit for bit, and a
 * one-rank communicator (the reference). Functions return a status instead of asserting, so
 * that they can run on threads and on MPI ranks alike. */
#ifndef LIBSCORE_COMM_WORKLOAD_H
#define LIBSCORE_COMM_WORKLOAD_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <libscore/libscore.h>

/* ---- a communicator of one rank -------------------------------------------------------- */

static int wl_self_allgather(const void *send, const size_t *counts, void *recv, void *ud)
{
    (void)ud;
    if (send != recv && counts[0] > 0)
        memmove(recv, send, counts[0]);
    return 0;
}

static int wl_self_bcast(void *buf, size_t bytes, int root, void *ud)
{
    (void)buf;
    (void)bytes;
    (void)ud;
    return root == 0 ? 0 : 1;
}

static inline int wl_self_comm(score_comm **out)
{
    return score_comm_new(out, 0, 1, wl_self_allgather, wl_self_bcast, NULL);
}

/* ---- training -------------------------------------------------------------------------- */

#define WL_ROWS 200
#define WL_BATCH 100
#define WL_REDUCE 16 /* 7 blocks: 4/3 on two ranks, 3/2/2 on three */
#define WL_HIDDEN 32
#define WL_MAX_STEPS 8

/* What a training run leaves: every bit a rank count must not change. */
typedef struct wl_train_result {
    size_t np, nopt;
    float *weights, *ema, *opt_state;
    double loss[WL_MAX_STEPS];
    uint64_t step;
} wl_train_result;

static inline void wl_train_result_free(wl_train_result *r)
{
    free(r->weights);
    free(r->ema);
    free(r->opt_state);
    memset(r, 0, sizeof *r);
}

typedef struct wl_trainer {
    score_schedule *sched;
    score_model *model;
    score_sde *sde;
    score_loss *loss;
    score_trainer *tr;
    float *data;
} wl_trainer;

static inline void wl_trainer_free(wl_trainer *w)
{
    score_trainer_free(w->tr);
    score_loss_free(w->loss);
    score_sde_free(w->sde);
    score_model_free(w->model);
    score_schedule_free(w->sched);
    free(w->data);
    memset(w, 0, sizeof *w);
}

/* Flags of wl_trainer_new(): change one value of the dataset (the failure tests: a rank with
 * other data); class labels (row i has label i mod 8) with label dropout. */
#define WL_PERTURB 1
#define WL_LABELS 2

/* The trainer of the workload on comm (which may be NULL). */
static inline int wl_trainer_new(wl_trainer *w, score_comm *comm, int flags)
{
    int32_t labels[WL_ROWS];
    score_rng *r = NULL;
    int rc;
    memset(w, 0, sizeof *w);
    w->data = malloc(WL_ROWS * 2 * sizeof(float));
    if (w->data == NULL)
        return SCORE_E_NOMEM;
    if ((rc = score_rng_new(&r, SCORE_RNG_PHILOX4X32_10, 5)) != SCORE_OK)
        return rc;
    rc = score_dataset_toy("ring8", r, WL_ROWS, w->data);
    score_rng_free(r);
    if (flags & WL_PERTURB)
        w->data[7] += 0.5f;
    for (int i = 0; i < WL_ROWS; i++)
        labels[i] = i % 8;
    if (rc == SCORE_OK) rc = score_schedule_new_preset(&w->sched, "ve-toy");
    if (rc == SCORE_OK) rc = score_model_new_mlp(&w->model, 2, WL_HIDDEN, 3, SCORE_ACT_SILU, 11);
    if (rc == SCORE_OK && (flags & WL_LABELS))
        rc = score_model_set_i64(w->model, SCORE_MODEL_PARAM_NUM_CLASSES, 8);
    if (rc == SCORE_OK) rc = score_model_prepare(w->model);
    if (rc == SCORE_OK) rc = score_sde_new(&w->sde, w->sched, w->model, SCORE_OUTPUT_EPS);
    if (rc == SCORE_OK) rc = score_loss_new(&w->loss, SCORE_LOSS_SDE);
    if (rc == SCORE_OK)
        rc = score_trainer_new(&w->tr, w->model, w->sde, w->loss, SCORE_OPTIMIZER_ADAM);
    if (rc == SCORE_OK) rc = score_trainer_set_i64(w->tr, SCORE_TRAINER_PARAM_BATCH_SIZE, WL_BATCH);
    if (rc == SCORE_OK) rc = score_trainer_set_i64(w->tr, SCORE_TRAINER_PARAM_SEED, 3);
    if (rc == SCORE_OK)
        rc = score_trainer_set_i64(w->tr, SCORE_TRAINER_PARAM_REDUCE_ROWS, WL_REDUCE);
    if (rc == SCORE_OK) rc = score_optimizer_set_f64(score_trainer_optimizer(w->tr),
                                                     SCORE_OPTIMIZER_PARAM_LR, 3e-3);
    if (rc == SCORE_OK) rc = score_trainer_set_data(w->tr, WL_ROWS, 2, w->data);
    if (rc == SCORE_OK && (flags & WL_LABELS)) {
        rc = score_trainer_set_labels(w->tr, WL_ROWS, labels);
        if (rc == SCORE_OK) rc = score_trainer_set_f64(w->tr, SCORE_TRAINER_PARAM_P_UNCOND, 0.3);
    }
    if (rc == SCORE_OK) rc = score_trainer_set_comm(w->tr, comm);
    return rc;
}

/* n steps, their losses into res->loss[from ..]. */
static inline int wl_steps(wl_trainer *w, size_t from, size_t n, wl_train_result *res)
{
    for (size_t i = 0; i < n; i++) {
        double L = NAN;
        int rc = score_trainer_step(w->tr, &L);
        if (rc != SCORE_OK)
            return rc;
        if (from + i < WL_MAX_STEPS)
            res->loss[from + i] = L;
    }
    return SCORE_OK;
}

/* The state a run leaves, into res (allocated). */
static inline int wl_collect(wl_trainer *w, wl_train_result *res)
{
    score_optimizer *opt = score_trainer_optimizer(w->tr);
    int rc;
    res->np = score_model_param_count(w->model);
    res->nopt = score_optimizer_state_size(opt);
    res->weights = malloc(res->np * sizeof(float));
    res->ema = malloc(res->np * sizeof(float));
    res->opt_state = malloc(res->nopt);
    if (res->weights == NULL || res->ema == NULL || res->opt_state == NULL)
        return SCORE_E_NOMEM;
    if ((rc = score_model_params_get(w->model, res->weights, res->np)) != SCORE_OK ||
        (rc = score_ema_get(score_trainer_ema(w->tr), res->ema, res->np)) != SCORE_OK ||
        (rc = score_optimizer_state_get(opt, res->opt_state, res->nopt)) != SCORE_OK ||
        (rc = score_trainer_get_step(w->tr, &res->step)) != SCORE_OK)
        return rc;
    return SCORE_OK;
}

/* A run of n steps on comm (flags of wl_trainer_new()). */
static inline int wl_train_flags(score_comm *comm, size_t n, int flags, wl_train_result *res)
{
    wl_trainer w;
    int rc;
    memset(res, 0, sizeof *res);
    rc = wl_trainer_new(&w, comm, flags);
    if (rc == SCORE_OK) rc = wl_steps(&w, 0, n, res);
    if (rc == SCORE_OK) rc = wl_collect(&w, res);
    wl_trainer_free(&w);
    return rc;
}

static inline int wl_train(score_comm *comm, size_t n, wl_train_result *res)
{
    return wl_train_flags(comm, n, 0, res);
}

/* Two results bit-identical (weights, EMA, optimizer state, step, n losses)? */
static inline int wl_same(const wl_train_result *a, const wl_train_result *b, size_t n)
{
    return a->np == b->np && a->nopt == b->nopt && a->step == b->step &&
           memcmp(a->weights, b->weights, a->np * sizeof(float)) == 0 &&
           memcmp(a->ema, b->ema, a->np * sizeof(float)) == 0 &&
           memcmp(a->opt_state, b->opt_state, a->nopt) == 0 &&
           memcmp(a->loss, b->loss, n * sizeof(double)) == 0;
}

/* ---- sampling and likelihood ----------------------------------------------------------- */

#define WL_SAMPLES 23 /* not a multiple of 2 or 3 */

/* A sample of WL_SAMPLES rows (PC sampler, 30 steps, noise drawn) and their log-likelihoods
 * (Hutchinson probes) of the analytic 2-d mixture, on comm. */
static inline int wl_sample_loglik(score_comm *comm, float *x, double *logp, float *z)
{
    const double w[2] = {0.3, 0.7}, mu[4] = {-1.0, 0.5, 1.5, -0.5}, var[4] = {0.2, 0.3, 0.4, 0.1};
    score_schedule *sch = NULL;
    score_model *m = NULL;
    score_sde *sde = NULL;
    score_sampler *smp = NULL;
    score_likelihood *lk = NULL;
    score_rng *rng = NULL;
    int rc = score_schedule_new_preset(&sch, "ve-toy");
    if (rc == SCORE_OK) rc = score_model_new_gmm(&m, sch, 2, 2, w, mu, var);
    if (rc == SCORE_OK) rc = score_sde_new(&sde, sch, m, SCORE_OUTPUT_SCORE);
    if (rc == SCORE_OK) rc = score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 9);
    if (rc == SCORE_OK) rc = score_sampler_new_preset(&smp, SCORE_SAMPLER_PRESET_PC, 2);
    if (rc == SCORE_OK) rc = score_sampler_set_i64(smp, SCORE_SAMPLER_PARAM_NUM_STEPS, 30);
    if (rc == SCORE_OK) rc = score_sampler_set_comm(smp, comm);
    if (rc == SCORE_OK) rc = score_sampler_run(smp, sde, WL_SAMPLES, NULL, x, rng, NULL, NULL);
    if (rc == SCORE_OK) rc = score_likelihood_new(&lk, 2);
    if (rc == SCORE_OK) rc = score_likelihood_set_i64(lk, SCORE_LIKELIHOOD_PARAM_DIVERGENCE, 2);
    if (rc == SCORE_OK) rc = score_likelihood_set_comm(lk, comm);
    if (rc == SCORE_OK)
        rc = score_likelihood_logp_ex(lk, sde, 0, WL_SAMPLES, x, logp, NULL, z, NULL, rng);
    score_likelihood_free(lk);
    score_sampler_free(smp);
    score_rng_free(rng);
    score_sde_free(sde);
    score_model_free(m);
    score_schedule_free(sch);
    return rc;
}

#endif
