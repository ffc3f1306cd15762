/* One model shared by several threads: models are only read by their compute calls, so
 * THREADS threads sampling from one model (an MLP with and without its own row threads, a
 * classifier-free-guidance combination of two MLPs, an analytic mixture), each through its
 * own sde, sampler and rng, give bit for bit what one thread gives; so do concurrent public
 * read-only calls (score_model_jvp, score_model_trace) and losses evaluated on one model.
 * Also the per-object callback status of sdes and losses. This test also runs under
 * ThreadSanitizer in CI (tools/test.sh). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "core/pool-priv.h" /* the library's thread pool */
#include "helpers/test-helpers.h"

#define THREADS 4
#define ROUNDS 2
#define DIM 3
/* Two evaluation blocks of the MLP below, so that its own row threads have work. */
#define NROWS 2500
#define STEPS 4

/* ---- a group of threads started together ------------------------------------------------ */

typedef struct group {
    pthread_barrier_t start;
    void *(*body)(void *arg);
} group;

typedef struct worker {
    group *g;
    size_t index;
    void *ctx;
    int failed; /* a call returned an error status */
} worker;

static void *trampoline(void *arg)
{
    worker *w = arg;
    pthread_barrier_wait(&w->g->start); /* all threads call at the same time */
    return w->g->body(w);
}

/* Runs body on THREADS threads at once; ctx[i] is thread i's argument. */
static void run_group(void *(*body)(void *), void **ctx, worker *ws)
{
    group g;
    pthread_t th[THREADS];
    g.body = body;
    ck_assert_int_eq(pthread_barrier_init(&g.start, NULL, THREADS), 0);
    for (size_t i = 0; i < THREADS; i++) {
        ws[i].g = &g;
        ws[i].index = i;
        ws[i].ctx = ctx[i];
        ws[i].failed = 0;
        ck_assert_int_eq(pthread_create(&th[i], NULL, trampoline, &ws[i]), 0);
    }
    for (size_t i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    pthread_barrier_destroy(&g.start);
    for (size_t i = 0; i < THREADS; i++)
        ck_assert_msg(!ws[i].failed, "thread %zu: a call failed: %s", i,
                      score_last_error_message());
}

/* ---- models ------------------------------------------------------------------------------ */

enum { M_MLP, M_MLP_THREADED, M_CFG, M_GMM, M_COUNT };

typedef struct shared {
    score_schedule *sched;
    score_model *model;
    score_model *parts[2]; /* members of the combination */
    int output;            /* the sde's output kind */
} shared;

static score_model *new_mlp(uint64_t seed)
{
    score_model *m = NULL;
    ck_assert_ok(score_model_new_mlp(&m, DIM, 64, 3, SCORE_ACT_SILU, seed));
    ck_assert_ok(score_model_prepare(m)); /* a model is shared once prepared */
    return m;
}

static void shared_new(shared *S, int which)
{
    memset(S, 0, sizeof *S);
    ck_assert_ok(score_schedule_new_preset(&S->sched, "vp"));
    S->output = SCORE_OUTPUT_EPS;
    switch (which) {
    case M_MLP:
        S->model = new_mlp(7);
        break;
    case M_MLP_THREADED:
        S->model = new_mlp(8);
        /* every sde then runs the model's row blocks on its own pool of 2 threads */
        ck_assert_ok(score_model_set_i64(S->model, SCORE_MODEL_PARAM_THREADS, 2));
        break;
    case M_CFG:
        S->parts[0] = new_mlp(9);
        S->parts[1] = new_mlp(10);
        ck_assert_ok(score_model_new_cfg(&S->model, S->parts[0], S->parts[1], 2.0));
        break;
    default: {
        const double w[3] = {0.5, 0.3, 0.2};
        const double mu[3 * DIM] = {1, 0, -1, -2, 0.5, 0, 0, 2, 1};
        const double var[3 * DIM] = {0.3, 0.5, 0.2, 0.4, 0.4, 0.4, 0.1, 0.6, 0.3};
        ck_assert_ok(score_model_new_gmm(&S->model, S->sched, DIM, 3, w, mu, var));
        S->output = SCORE_OUTPUT_SCORE;
        break;
    }
    }
}

static void shared_free(shared *S)
{
    score_model_free(S->model);
    score_model_free(S->parts[0]);
    score_model_free(S->parts[1]);
    score_schedule_free(S->sched);
}

/* ---- sampling ---------------------------------------------------------------------------- */

typedef struct sample_job {
    const shared *S;
    int preset;
    uint64_t seed;
    float *out; /* NROWS * DIM */
} sample_job;

/* One sampler run on the shared model through an sde, sampler and rng of this call. */
static int sample_once(const sample_job *j)
{
    score_sde *sde = NULL;
    score_sampler *smp = NULL;
    score_rng *rng = NULL;
    int rc = score_sde_new(&sde, j->S->sched, j->S->model, j->S->output);
    if (rc == SCORE_OK)
        rc = score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, j->seed);
    if (rc == SCORE_OK)
        rc = score_sampler_new_preset(&smp, j->preset, DIM);
    if (rc == SCORE_OK)
        rc = score_sampler_set_i64(smp, SCORE_SAMPLER_PARAM_NUM_STEPS, STEPS);
    if (rc == SCORE_OK)
        rc = score_sampler_run(smp, sde, NROWS, NULL, j->out, rng, NULL, NULL);
    score_sampler_free(smp);
    score_rng_free(rng);
    score_sde_free(sde);
    return rc;
}

static void *sample_body(void *arg)
{
    worker *w = arg;
    w->failed = sample_once(w->ctx) != SCORE_OK;
    return NULL;
}

static void check_shared_sampling(int which, int preset)
{
    shared S;
    sample_job jobs[THREADS];
    void *ctx[THREADS];
    worker ws[THREADS];
    float *ref[THREADS];
    shared_new(&S, which);
    for (size_t i = 0; i < THREADS; i++) {
        /* thread i draws its own samples (seed 100 + i): its reference is a run alone */
        ref[i] = malloc(NROWS * DIM * sizeof(float));
        ck_assert_ptr_nonnull(ref[i]);
        jobs[i].S = &S;
        jobs[i].preset = preset;
        jobs[i].seed = 100 + i;
        jobs[i].out = ref[i];
        ck_assert_ok(sample_once(&jobs[i]));
        for (size_t q = 0; q < NROWS * DIM; q++)
            ck_assert_msg(isfinite(ref[i][q]), "model %d: non-finite sample", which);
        jobs[i].out = malloc(NROWS * DIM * sizeof(float));
        ck_assert_ptr_nonnull(jobs[i].out);
        ctx[i] = &jobs[i];
    }
    ck_assert_int_ne(memcmp(ref[0], ref[1], NROWS * DIM * sizeof(float)), 0);
    for (int r = 0; r < ROUNDS; r++) {
        run_group(sample_body, ctx, ws);
        for (size_t i = 0; i < THREADS; i++)
            ck_assert_msg(memcmp(ref[i], jobs[i].out, NROWS * DIM * sizeof(float)) == 0,
                          "model %d, preset %d, round %d: thread %zu's samples differ from "
                          "its run alone", which, preset, r, i);
    }
    for (size_t i = 0; i < THREADS; i++) {
        free(ref[i]);
        free(jobs[i].out);
    }
    shared_free(&S);
}

/* _i: the model kind; PC (stochastic, noise from the counter RNG) and DPM-Solver++(2M). */
START_TEST(test_sampling_shared_model)
{
    check_shared_sampling(_i, SCORE_SAMPLER_PRESET_PC);
    check_shared_sampling(_i, SCORE_SAMPLER_PRESET_DPMPP_2M);
}
END_TEST

/* ---- public read-only calls -------------------------------------------------------------- */

#define NJ 300
#define KJ 2

typedef struct read_job {
    score_model *model;
    const float *x, *v;
    const double *c;
    float *jv, *fx;
    double *tr;
} read_job;

static int read_once(const read_job *j)
{
    int rc = score_model_jvp(j->model, NJ, j->x, j->c, KJ, j->v, j->jv, j->fx);
    if (rc == SCORE_OK)
        rc = score_model_trace(j->model, NJ, j->x, j->c, j->tr, NULL);
    return rc;
}

static void *read_body(void *arg)
{
    worker *w = arg;
    for (int r = 0; r < 3 && !w->failed; r++)
        w->failed = read_once(w->ctx) != SCORE_OK;
    return NULL;
}

static void fill(float *a, size_t len, double phase)
{
    for (size_t i = 0; i < len; i++)
        a[i] = (float)(1.5 * sin(0.37 * (double)i + phase));
}

START_TEST(test_concurrent_jvp_trace)
{
    shared S;
    read_job jobs[THREADS], refs[THREADS];
    void *ctx[THREADS];
    worker ws[THREADS];
    shared_new(&S, _i);
    for (size_t i = 0; i < THREADS; i++) {
        float *x = malloc(NJ * DIM * sizeof *x), *v = malloc(NJ * KJ * DIM * sizeof *v);
        double *c = malloc(NJ * sizeof *c);
        ck_assert(x && v && c);
        fill(x, NJ * DIM, (double)i);
        fill(v, NJ * KJ * DIM, 0.5 + (double)i);
        for (size_t b = 0; b < NJ; b++)
            c[b] = 0.05 + 0.9 * (double)((b + i) % 17) / 16.0;
        for (int k = 0; k < 2; k++) {
            read_job *j = k ? &jobs[i] : &refs[i];
            j->model = S.model;
            j->x = x;
            j->v = v;
            j->c = c;
            j->jv = malloc(NJ * KJ * DIM * sizeof(float));
            j->fx = malloc(NJ * DIM * sizeof(float));
            j->tr = malloc(NJ * sizeof(double));
            ck_assert(j->jv && j->fx && j->tr);
        }
        ck_assert_ok(read_once(&refs[i]));
        ctx[i] = &jobs[i];
    }
    run_group(read_body, ctx, ws);
    for (size_t i = 0; i < THREADS; i++) {
        ck_assert_int_eq(memcmp(refs[i].jv, jobs[i].jv, NJ * KJ * DIM * sizeof(float)), 0);
        ck_assert_int_eq(memcmp(refs[i].fx, jobs[i].fx, NJ * DIM * sizeof(float)), 0);
        ck_assert_int_eq(memcmp(refs[i].tr, jobs[i].tr, NJ * sizeof(double)), 0);
    }
    for (size_t i = 0; i < THREADS; i++) {
        free((void *)refs[i].x);
        free((void *)refs[i].v);
        free((void *)refs[i].c);
        for (int k = 0; k < 2; k++) {
            read_job *j = k ? &jobs[i] : &refs[i];
            free(j->jv);
            free(j->fx);
            free(j->tr);
        }
    }
    shared_free(&S);
}
END_TEST

/* ---- losses on one model (value and gradient: the model is only read) --------------------- */

#define NL 200

typedef struct loss_job {
    const shared *S;
    score_sde *sde;
    int kind;
    uint64_t seed;
    const float *x;
    double value;
    float *grad;
    size_t np;
} loss_job;

static int loss_once(loss_job *j)
{
    score_loss *loss = NULL;
    score_rng *rng = NULL;
    int rc = score_loss_new(&loss, j->kind);
    if (rc == SCORE_OK && j->kind == SCORE_LOSS_HYVARINEN)
        rc = score_loss_set_f64(loss, SCORE_LOSS_PARAM_TIME, 0.3);
    if (rc == SCORE_OK)
        rc = score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, j->seed);
    memset(j->grad, 0, j->np * sizeof *j->grad);
    if (rc == SCORE_OK)
        rc = score_loss_compute(loss, j->sde, j->S->model, rng, NL, j->x, &j->value, j->grad);
    score_rng_free(rng);
    score_loss_free(loss);
    return rc;
}

static void *loss_body(void *arg)
{
    worker *w = arg;
    w->failed = loss_once(w->ctx) != SCORE_OK;
    return NULL;
}

START_TEST(test_concurrent_losses)
{
    static const int kinds[] = {SCORE_LOSS_SDE, SCORE_LOSS_HYVARINEN};
    shared S;
    loss_job jobs[THREADS];
    void *ctx[THREADS];
    worker ws[THREADS];
    float *x = malloc(NL * DIM * sizeof *x), *ref[THREADS];
    double refv[THREADS];
    size_t np;
    ck_assert_ptr_nonnull(x);
    shared_new(&S, _i == 0 ? M_MLP : M_MLP_THREADED);
    np = score_model_param_count(S.model);
    fill(x, NL * DIM, 0.25);
    for (size_t i = 0; i < THREADS; i++) {
        jobs[i].S = &S;
        ck_assert_ok(score_sde_new(&jobs[i].sde, S.sched, S.model, S.output));
        jobs[i].kind = kinds[i % 2];
        jobs[i].seed = 7 + i;
        jobs[i].x = x;
        jobs[i].np = np;
        jobs[i].grad = malloc(np * sizeof(float));
        ref[i] = malloc(np * sizeof(float));
        ck_assert(jobs[i].grad && ref[i]);
        ck_assert_ok(loss_once(&jobs[i]));
        refv[i] = jobs[i].value;
        memcpy(ref[i], jobs[i].grad, np * sizeof(float));
        ctx[i] = &jobs[i];
    }
    run_group(loss_body, ctx, ws);
    for (size_t i = 0; i < THREADS; i++) {
        ck_assert_int_eq(memcmp(&refv[i], &jobs[i].value, sizeof(double)), 0);
        ck_assert_int_eq(memcmp(ref[i], jobs[i].grad, np * sizeof(float)), 0);
        score_sde_free(jobs[i].sde);
        free(jobs[i].grad);
        free(ref[i]);
    }
    free(x);
    shared_free(&S);
}
END_TEST

/* ---- callback status per object ---------------------------------------------------------- */

typedef struct cb_state {
    int fail; /* returned by the model function */
} cb_state;

static int cb_fn(size_t n, size_t dim, const float *x, const double *c, float *out, void *ud)
{
    const cb_state *st = ud;
    (void)c;
    for (size_t i = 0; i < n * dim; i++)
        out[i] = -x[i];
    return st->fail;
}

static int cb_div(size_t n, size_t dim, const float *x, const double *c, double *div, void *ud)
{
    (void)x;
    (void)c;
    (void)ud;
    for (size_t b = 0; b < n; b++)
        div[b] = -(double)dim;
    return 0;
}

START_TEST(test_callback_status_per_object)
{
    cb_state st = {0};
    score_model *m = NULL;
    score_schedule *s = NULL;
    score_sde *a = NULL, *b = NULL;
    score_loss *loss = NULL;
    score_rng *rng = NULL;
    const float x[2 * DIM] = {1, 2, 3, -1, 0.5f, 0};
    const double t[2] = {0.3, 0.6};
    float out[2 * DIM];
    double val;
    ck_assert_ok(score_schedule_new_preset(&s, "vp"));
    ck_assert_ok(score_model_new_callback(&m, DIM, cb_fn, &st));
    ck_assert_ok(score_model_callback_set_divergence(m, cb_div, NULL));
    ck_assert_ok(score_sde_new(&a, s, m, SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_sde_new(&b, s, m, SCORE_OUTPUT_SCORE));
    ck_assert_int_eq(score_sde_last_callback_status(a), 0);
    ck_assert_int_eq(score_sde_last_callback_status(NULL), 0);
    st.fail = -4;
    ck_assert_fails_with(score_sde_score(a, 2, t, x, out), SCORE_E_CALLBACK);
    ck_assert_int_eq(score_sde_last_callback_status(a), -4);
    ck_assert_int_eq(score_model_last_callback_status(m), -4);
    st.fail = 0;
    ck_assert_ok(score_sde_score(b, 2, t, x, out));
    for (size_t i = 0; i < 2 * DIM; i++)
        ck_assert_float_eq(out[i], -x[i]);
    /* the model shows its last caller's value; each sde keeps its own */
    ck_assert_int_eq(score_model_last_callback_status(m), 0);
    ck_assert_int_eq(score_sde_last_callback_status(b), 0);
    ck_assert_int_eq(score_sde_last_callback_status(a), -4);
    /* a loss keeps its own too (Hyvärinen value: the model's trace) */
    ck_assert_ok(score_loss_new(&loss, SCORE_LOSS_HYVARINEN));
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 1));
    ck_assert_int_eq(score_loss_last_callback_status(loss), 0);
    ck_assert_int_eq(score_loss_last_callback_status(NULL), 0);
    st.fail = 6;
    ck_assert_fails_with(score_loss_compute(loss, NULL, m, rng, 2, x, &val, NULL),
                         SCORE_E_CALLBACK);
    ck_assert_int_eq(score_loss_last_callback_status(loss), 6);
    st.fail = 0;
    ck_assert_ok(score_loss_compute(loss, NULL, m, rng, 2, x, &val, NULL));
    /* |s|^2 / 2 + tr(ds/dx) with s = -x: (1 + 4 + 9 + 1 + 0.25) / 2 / 2 - 3 */
    ck_assert_double_eq_tol(val, 15.25 / 4.0 - 3.0, 1e-12);
    ck_assert_int_eq(score_loss_last_callback_status(loss), 0);
    ck_assert_int_eq(score_sde_last_callback_status(a), -4);
    score_rng_free(rng);
    score_loss_free(loss);
    score_sde_free(a);
    score_sde_free(b);
    score_model_free(m);
    score_schedule_free(s);
}
END_TEST

/* ---- the thread pool behind SCORE_MODEL_PARAM_THREADS ----------------------------------- */

typedef struct pool_rec {
    int count[64];       /* runs of each part */
    size_t thread[64];   /* thread that ran it */
} pool_rec;

static void record_part(void *ctx, size_t part, size_t thread)
{
    pool_rec *r = ctx;
    r->count[part]++; /* each part belongs to one thread: no two threads write one entry */
    r->thread[part] = thread;
}

/* Every part runs exactly once; thread t takes the t-th contiguous range (so parts run by one
 * thread are in order and the threads' ranges follow each other); a pool is reused for the
 * same thread count and none exists for one thread. */
START_TEST(test_pool_partition)
{
    static const size_t threads[] = {2, 3, 5};
    static const size_t parts[] = {0, 1, 2, 3, 7, 64};
    score__pool *slot = NULL, *p, *q;
    size_t failed = 0;
    ck_assert_ptr_null(score__pool_for(&slot, &failed, 1));
    ck_assert_ptr_null(slot);
    ck_assert_uint_eq(score__pool_threads(NULL), 1);
    for (size_t it = 0; it < 3; it++) {
        p = score__pool_for(&slot, &failed, threads[it]);
        ck_assert_ptr_nonnull(p); /* threads are available here */
        ck_assert_uint_eq(score__pool_threads(p), threads[it]);
        q = score__pool_for(&slot, &failed, threads[it]);
        ck_assert_ptr_eq(p, q);
        for (size_t ip = 0; ip < 6; ip++) {
            pool_rec r;
            size_t np = parts[ip];
            memset(&r, 0, sizeof r);
            for (int rep = 0; rep < 50; rep++) /* many fork-joins: the wake-up paths */
                score__pool_for_each(p, np, record_part, &r);
            for (size_t i = 0; i < np; i++) {
                ck_assert_int_eq(r.count[i], 50);
                ck_assert_uint_lt(r.thread[i], threads[it]);
                if (i > 0)
                    ck_assert_uint_ge(r.thread[i], r.thread[i - 1]);
            }
            if (np >= threads[it]) /* every thread had work */
                ck_assert_uint_eq(r.thread[np - 1], threads[it] - 1);
        }
    }
    /* without a pool: all on the calling thread, in order */
    {
        pool_rec r;
        memset(&r, 0, sizeof r);
        score__pool_for_each(NULL, 7, record_part, &r);
        for (size_t i = 0; i < 7; i++) {
            ck_assert_int_eq(r.count[i], 1);
            ck_assert_uint_eq(r.thread[i], 0);
        }
    }
    score__pool_free(slot);
    score__pool_free(NULL);
}
END_TEST

static Suite *shared_suite(void)
{
    Suite *s = suite_create("shared-model");
    TCase *tc = tcase_create("concurrent readers");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_sampling_shared_model, 0, M_COUNT);
    tcase_add_loop_test(tc, test_concurrent_jvp_trace, M_MLP, M_COUNT);
    tcase_add_loop_test(tc, test_concurrent_losses, 0, 2);
    tcase_add_test(tc, test_callback_status_per_object);
    tcase_add_test(tc, test_pool_partition);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(shared_suite());
}
