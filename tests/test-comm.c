/* Communicators without MPI: ranks are threads of this process, joined by an in-process
 * all-gather and broadcast (a barrier and shared pointers). Checks the contract helpers and
 * that 1, 2 and 3 ranks give bit-identical training, sampling and likelihood results, that a
 * checkpoint resumes on another rank count, and that a failing rank stops every rank. */
#define _POSIX_C_SOURCE 200809L /* pthread barriers */

#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include "helpers/comm-workload.h"
#include "helpers/test-helpers.h"

#define MAX_RANKS 3

/* ---- ranks as threads ------------------------------------------------------------------ */

typedef struct group {
    int size;
    pthread_barrier_t bar;
    const void *send[MAX_RANKS];
    void *buf[MAX_RANKS];
} group;

typedef struct rank_ctx {
    group *g;
    int rank;
} rank_ctx;

static int thr_allgather(const void *send, const size_t *counts, void *recv, void *ud)
{
    rank_ctx *rc = ud;
    group *g = rc->g;
    size_t off = 0;
    g->send[rc->rank] = send;
    pthread_barrier_wait(&g->bar);
    for (int r = 0; r < g->size; r++) {
        unsigned char *dst = (unsigned char *)recv + off;
        if (counts[r] > 0 && g->send[r] != dst)
            memcpy(dst, g->send[r], counts[r]);
        off += counts[r];
    }
    pthread_barrier_wait(&g->bar); /* nobody changes its send buffer before all copied it */
    return 0;
}

static int thr_bcast(void *buf, size_t bytes, int root, void *ud)
{
    rank_ctx *rc = ud;
    group *g = rc->g;
    g->buf[rc->rank] = buf;
    pthread_barrier_wait(&g->bar);
    if (rc->rank != root && bytes > 0)
        memcpy(buf, g->buf[root], bytes);
    pthread_barrier_wait(&g->bar);
    return 0;
}

/* A job run by every rank: returns its status, may write into a per-rank slot. */
typedef int (*rank_job)(score_comm *comm, int rank, void *slot);

typedef struct thread_arg {
    rank_ctx ctx;
    rank_job job;
    void *slot;
    int status;
} thread_arg;

static void *thread_main(void *p)
{
    thread_arg *a = p;
    score_comm *c = NULL;
    a->status = score_comm_new(&c, a->ctx.rank, a->ctx.g->size, thr_allgather, thr_bcast,
                               &a->ctx);
    if (a->status == SCORE_OK)
        a->status = a->job(c, a->ctx.rank, a->slot);
    score_comm_free(c);
    return NULL;
}

/* Runs job on n ranks (threads); slots[r] for rank r; statuses into st. */
static void run_ranks(int n, rank_job job, void **slots, int *st)
{
    group g;
    pthread_t th[MAX_RANKS];
    thread_arg args[MAX_RANKS];
    memset(&g, 0, sizeof g);
    g.size = n;
    ck_assert_int_eq(pthread_barrier_init(&g.bar, NULL, (unsigned)n), 0);
    for (int r = 0; r < n; r++) {
        args[r].ctx.g = &g;
        args[r].ctx.rank = r;
        args[r].job = job;
        args[r].slot = slots ? slots[r] : NULL;
        args[r].status = -999;
        ck_assert_int_eq(pthread_create(&th[r], NULL, thread_main, &args[r]), 0);
    }
    for (int r = 0; r < n; r++) {
        pthread_join(th[r], NULL);
        st[r] = args[r].status;
    }
    pthread_barrier_destroy(&g.bar);
}

/* ---- contract ---------------------------------------------------------------------------- */

START_TEST(comm_basics)
{
    score_comm *c = NULL;
    size_t lo, hi, prev = 0;
    int agreed, who;
    ck_assert_fails_with(score_comm_new(NULL, 0, 1, wl_self_allgather, wl_self_bcast, NULL),
                         SCORE_E_INVAL);
    ck_assert_fails_with(score_comm_new(&c, 0, 1, NULL, wl_self_bcast, NULL), SCORE_E_INVAL);
    ck_assert_ptr_null(c);
    ck_assert_fails_with(score_comm_new(&c, 1, 1, wl_self_allgather, wl_self_bcast, NULL),
                         SCORE_E_RANGE);
    ck_assert_fails_with(score_comm_new(&c, 0, 0, wl_self_allgather, wl_self_bcast, NULL),
                         SCORE_E_RANGE);
    ck_assert_int_eq(score_comm_rank(NULL), 0);
    ck_assert_int_eq(score_comm_size(NULL), 1);
    ck_assert_ok(wl_self_comm(&c));
    ck_assert_int_eq(score_comm_rank(c), 0);
    ck_assert_int_eq(score_comm_size(c), 1);
    ck_assert_ok(score_comm_agree(c, SCORE_E_NUMERIC, &agreed, &who));
    ck_assert_int_eq(agreed, SCORE_E_NUMERIC);
    ck_assert_int_eq(who, 0);
    ck_assert_ok(score_comm_agree(c, SCORE_DONE, &agreed, &who));
    ck_assert_int_eq(agreed, SCORE_OK);
    ck_assert_int_eq(who, -1);
    ck_assert_fails_with(score_comm_bcast(c, &agreed, sizeof agreed, 1), SCORE_E_RANGE);
    ck_assert_fails_with(score_comm_agree(NULL, 0, &agreed, NULL), SCORE_E_INVAL);
    score_comm_free(c);
    score_comm_free(NULL);
    /* the split: contiguous, complete, sizes differ by at most one; 7 over 3 = 2, 2, 3 */
    for (int r = 0; r < 3; r++) {
        ck_assert_ok(score_comm_share(7, r, 3, &lo, &hi));
        ck_assert_uint_eq(lo, prev);
        ck_assert_uint_eq(hi - lo, r < 2 ? 2u : 3u);
        prev = hi;
    }
    ck_assert_uint_eq(prev, 7);
    ck_assert_ok(score_comm_share(SIZE_MAX, 2, 3, &lo, &hi));
    ck_assert_uint_eq(hi, SIZE_MAX);
    ck_assert_fails_with(score_comm_share(7, 3, 3, &lo, &hi), SCORE_E_RANGE);
    ck_assert_fails_with(score_comm_share(7, 0, 3, NULL, &hi), SCORE_E_INVAL);
}
END_TEST

/* every rank passes its rank's status; the verdict is that of the lowest failing rank */
static int job_agree(score_comm *c, int rank, void *slot)
{
    int agreed, who, rc;
    int *out = slot;
    rc = score_comm_agree(c, rank == 0 ? SCORE_OK : (rank == 1 ? SCORE_E_IO : SCORE_E_NUMERIC),
                          &agreed, &who);
    out[0] = agreed;
    out[1] = who;
    if (rc == SCORE_OK) {
        /* in-place all-gather of one int per rank, and a broadcast from the last rank */
        int all[MAX_RANKS] = {0}, v = 100 + rank;
        size_t counts[MAX_RANKS];
        for (int r = 0; r < score_comm_size(c); r++)
            counts[r] = sizeof(int);
        all[rank] = 10 + rank;
        rc = score_comm_allgather(c, &all[rank], counts, all);
        for (int r = 0; rc == SCORE_OK && r < score_comm_size(c); r++)
            if (all[r] != 10 + r)
                rc = SCORE_E_GENERIC;
        if (rc == SCORE_OK)
            rc = score_comm_bcast(c, &v, sizeof v, score_comm_size(c) - 1);
        if (rc == SCORE_OK && v != 100 + score_comm_size(c) - 1)
            rc = SCORE_E_GENERIC;
    }
    return rc;
}

START_TEST(comm_agree_threads)
{
    int res[MAX_RANKS][2], st[MAX_RANKS];
    void *slots[MAX_RANKS] = {res[0], res[1], res[2]};
    run_ranks(3, job_agree, slots, st);
    for (int r = 0; r < 3; r++) {
        ck_assert_int_eq(st[r], SCORE_OK);
        ck_assert_int_eq(res[r][0], SCORE_E_IO);
        ck_assert_int_eq(res[r][1], 1);
    }
}
END_TEST

/* ---- training ---------------------------------------------------------------------------- */

#define STEPS 6

static int job_train(score_comm *c, int rank, void *slot)
{
    (void)rank;
    return wl_train(c, STEPS, slot);
}

START_TEST(train_bit_identical)
{
    wl_train_result ref, one, res[MAX_RANKS];
    score_comm *self;
    int st[MAX_RANKS];
    ck_assert_ok(wl_self_comm(&self));
    ck_assert_ok(wl_train(self, STEPS, &ref));
    score_comm_free(self);
    ck_assert_uint_eq(ref.step, STEPS);
    for (int n = 1; n <= MAX_RANKS; n++) {
        void *slots[MAX_RANKS] = {&res[0], &res[1], &res[2]};
        run_ranks(n, job_train, slots, st);
        for (int r = 0; r < n; r++) {
            ck_assert_int_eq(st[r], SCORE_OK);
            ck_assert_msg(wl_same(&ref, &res[r], STEPS), "%d ranks: rank %d differs", n, r);
            wl_train_result_free(&res[r]);
        }
    }
    /* the blocked loss of the first step is the one-call loss up to rounding (the same rows,
     * noise and weights; the network's float outputs of a row may round differently in a GEMM
     * of 14 rows than of 100) */
    {
        wl_trainer b;
        double Lb;
        ck_assert_ok(wl_trainer_new(&b, NULL, 0));
        ck_assert_ok(score_trainer_step(b.tr, &Lb));
        ck_assert_double_eq_tol(ref.loss[0], Lb, 1e-5 * fabs(Lb));
        ck_assert_double_ne(ref.loss[0], ref.loss[1]);
        wl_trainer_free(&b);
    }
    /* one block (B <= REDUCE_ROWS): the same bits as a trainer without a communicator */
    {
        wl_trainer a, b;
        double La, Lb;
        ck_assert_ok(wl_self_comm(&self));
        ck_assert_ok(wl_trainer_new(&a, self, 0));
        ck_assert_ok(wl_trainer_new(&b, NULL, 0));
        ck_assert_ok(score_trainer_set_i64(a.tr, SCORE_TRAINER_PARAM_REDUCE_ROWS, WL_BATCH));
        for (int s = 0; s < 3; s++) {
            ck_assert_ok(score_trainer_step(a.tr, &La));
            ck_assert_ok(score_trainer_step(b.tr, &Lb));
            ck_assert(memcmp(&La, &Lb, sizeof La) == 0);
        }
        memset(&one, 0, sizeof one);
        memset(&res[0], 0, sizeof res[0]);
        ck_assert_ok(wl_collect(&a, &one));
        ck_assert_ok(wl_collect(&b, &res[0]));
        ck_assert(wl_same(&one, &res[0], 0));
        wl_train_result_free(&one);
        wl_train_result_free(&res[0]);
        wl_trainer_free(&a);
        wl_trainer_free(&b);
        score_comm_free(self);
    }
    wl_train_result_free(&ref);
}
END_TEST

/* with class labels and label dropout (the dropout draws from another stream than the loss) */
static int job_train_labels(score_comm *c, int rank, void *slot)
{
    (void)rank;
    return wl_train_flags(c, STEPS, WL_LABELS, slot);
}

START_TEST(train_labels_bit_identical)
{
    wl_train_result ref, plain, res[MAX_RANKS];
    score_comm *self;
    int st[MAX_RANKS];
    ck_assert_ok(wl_self_comm(&self));
    ck_assert_ok(wl_train_flags(self, STEPS, WL_LABELS, &ref));
    ck_assert_ok(wl_train(self, STEPS, &plain));
    score_comm_free(self);
    ck_assert(!wl_same(&ref, &plain, 0)); /* the labels change the run */
    for (int n = 2; n <= MAX_RANKS; n++) {
        void *slots[MAX_RANKS] = {&res[0], &res[1], &res[2]};
        run_ranks(n, job_train_labels, slots, st);
        for (int r = 0; r < n; r++) {
            ck_assert_int_eq(st[r], SCORE_OK);
            ck_assert_msg(wl_same(&ref, &res[r], STEPS), "%d ranks: rank %d differs", n, r);
            wl_train_result_free(&res[r]);
        }
    }
    /* one block: the same draws and bits as a trainer without a communicator */
    {
        wl_trainer a, b;
        ck_assert_ok(wl_self_comm(&self));
        ck_assert_ok(wl_trainer_new(&a, self, WL_LABELS));
        ck_assert_ok(wl_trainer_new(&b, NULL, WL_LABELS));
        ck_assert_ok(score_trainer_set_i64(a.tr, SCORE_TRAINER_PARAM_REDUCE_ROWS, WL_BATCH));
        wl_train_result_free(&plain);
        memset(&plain, 0, sizeof plain);
        memset(&res[0], 0, sizeof res[0]);
        ck_assert_ok(wl_steps(&a, 0, 3, &plain));
        ck_assert_ok(wl_steps(&b, 0, 3, &res[0]));
        ck_assert_ok(wl_collect(&a, &plain));
        ck_assert_ok(wl_collect(&b, &res[0]));
        ck_assert(wl_same(&plain, &res[0], 3));
        wl_train_result_free(&res[0]);
        wl_trainer_free(&a);
        wl_trainer_free(&b);
        score_comm_free(self);
    }
    wl_train_result_free(&ref);
    wl_train_result_free(&plain);
}
END_TEST

/* resume: 3 steps on one rank, checkpoint, 3 more on 2 or 3 ranks (and the other way) */
typedef struct resume_slot {
    const char *path;
    int save; /* 1: 3 steps then save; 0: load then 3 steps */
    wl_train_result res;
} resume_slot;

static int job_resume(score_comm *c, int rank, void *p)
{
    resume_slot *s = p;
    wl_trainer w;
    int rc;
    (void)rank;
    memset(&s->res, 0, sizeof s->res);
    rc = wl_trainer_new(&w, c, 0);
    if (rc == SCORE_OK && s->save) {
        rc = wl_steps(&w, 0, 3, &s->res);
        if (rc == SCORE_OK)
            rc = score_trainer_save(w.tr, s->path);
    } else if (rc == SCORE_OK) {
        rc = score_trainer_load(w.tr, s->path);
        if (rc == SCORE_OK)
            rc = wl_steps(&w, 3, 3, &s->res);
    }
    if (rc == SCORE_OK)
        rc = wl_collect(&w, &s->res);
    wl_trainer_free(&w);
    return rc;
}

START_TEST(train_resume_other_rank_count)
{
    wl_train_result ref;
    score_comm *self;
    char path[64];
    int st[MAX_RANKS];
    snprintf(path, sizeof path, "test-comm-ckpt-%ld.st", (long)getpid());
    ck_assert_ok(wl_self_comm(&self));
    ck_assert_ok(wl_train(self, STEPS, &ref));
    score_comm_free(self);
    for (int dir = 0; dir < 2; dir++) {
        int nsave = dir == 0 ? 1 : 3, nload = dir == 0 ? 3 : 2;
        resume_slot sv[MAX_RANKS], ld[MAX_RANKS];
        void *s1[MAX_RANKS] = {&sv[0], &sv[1], &sv[2]}, *s2[MAX_RANKS] = {&ld[0], &ld[1], &ld[2]};
        for (int r = 0; r < MAX_RANKS; r++) {
            sv[r].path = ld[r].path = path;
            sv[r].save = 1;
            ld[r].save = 0;
        }
        run_ranks(nsave, job_resume, s1, st);
        for (int r = 0; r < nsave; r++) {
            ck_assert_int_eq(st[r], SCORE_OK);
            wl_train_result_free(&sv[r].res);
        }
        run_ranks(nload, job_resume, s2, st);
        for (int r = 0; r < nload; r++) {
            ck_assert_int_eq(st[r], SCORE_OK);
            ck_assert_uint_eq(ld[r].res.step, STEPS);
            ck_assert_msg(wl_same(&ref, &ld[r].res, 0), "resume %d -> %d ranks differs", nsave,
                          nload);
            ck_assert(memcmp(ref.loss + 3, ld[r].res.loss + 3, 3 * sizeof(double)) == 0);
            wl_train_result_free(&ld[r].res);
        }
        remove(path);
    }
    wl_train_result_free(&ref);
}
END_TEST

/* The checkpoint records the reduction blocks per minibatch: a trainer without a communicator
 * (one block) refuses a checkpoint of several blocks, and loads one of a single block */
START_TEST(train_checkpoint_reduce_blocks)
{
    wl_trainer a, b;
    score_comm *self;
    void *buf = NULL;
    size_t len = 0;
    ck_assert_ok(wl_self_comm(&self));
    ck_assert_ok(wl_trainer_new(&a, self, 0));
    ck_assert_ok(wl_trainer_new(&b, NULL, 0));
    ck_assert_int_gt((WL_BATCH + WL_REDUCE - 1) / WL_REDUCE, 1);
    ck_assert_ok(score_trainer_save_buffer(a.tr, &buf, &len));
    ck_assert_int_eq(score_trainer_load_buffer(b.tr, buf, len), SCORE_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(score_last_error_message(), "reduction block(s) per minibatch, "
                                                             "this trainer makes 1 (no communicator)"));
    score_free(buf);
    ck_assert_ok(score_trainer_set_i64(a.tr, SCORE_TRAINER_PARAM_REDUCE_ROWS, WL_BATCH));
    ck_assert_ok(score_trainer_save_buffer(a.tr, &buf, &len));
    ck_assert_ok(score_trainer_load_buffer(b.tr, buf, len));
    score_free(buf);
    wl_trainer_free(&a);
    wl_trainer_free(&b);
    score_comm_free(self);
}
END_TEST

/* A checkpoint loaded where the last rank holds other data: every rank refuses
 * (SCORE_E_FORMAT; the last rank's message names the data hash) and no rank's trainer changes;
 * with the same data every rank loads. */
typedef struct load_slot {
    const void *buf;
    size_t len;
    int perturb_last;
    uint64_t step;
    char msg[256];
} load_slot;

static int job_load(score_comm *c, int rank, void *slot)
{
    load_slot *s = slot;
    wl_trainer w;
    int rc = wl_trainer_new(&w, c, s->perturb_last && rank == score_comm_size(c) - 1 ? WL_PERTURB : 0);
    if (rc == SCORE_OK)
        rc = score_trainer_load_buffer(w.tr, s->buf, s->len);
    snprintf(s->msg, sizeof s->msg, "%s", score_last_error_message());
    s->step = 99;
    if (w.tr != NULL && score_trainer_get_step(w.tr, &s->step) != SCORE_OK)
        s->step = 99;
    wl_trainer_free(&w);
    return rc;
}

START_TEST(train_load_other_data_on_one_rank)
{
    wl_trainer a;
    score_comm *self;
    void *buf = NULL;
    size_t len = 0;
    int st[MAX_RANKS];
    ck_assert_ok(wl_self_comm(&self));
    ck_assert_ok(wl_trainer_new(&a, self, 0));
    ck_assert_ok(score_trainer_run(a.tr, 3, NULL, NULL));
    ck_assert_ok(score_trainer_save_buffer(a.tr, &buf, &len));
    wl_trainer_free(&a);
    score_comm_free(self);
    for (int n = 2; n <= 3; n++)
        for (int perturb = 1; perturb >= 0; perturb--) {
            load_slot ls[MAX_RANKS];
            void *slots[MAX_RANKS] = {&ls[0], &ls[1], &ls[2]};
            for (int r = 0; r < MAX_RANKS; r++)
                ls[r] = (load_slot){buf, len, perturb, 0, ""};
            run_ranks(n, job_load, slots, st);
            for (int r = 0; r < n; r++) {
                ck_assert_msg(st[r] == (perturb ? SCORE_E_FORMAT : SCORE_OK),
                              "%d ranks, perturb %d: rank %d returned %d (%s)", n, perturb, r,
                              st[r], ls[r].msg);
                ck_assert_uint_eq(ls[r].step, perturb ? 0 : 3);
            }
            if (perturb)
                ck_assert_msg(strstr(ls[n - 1].msg, "data parameter 'hash'") != NULL &&
                                  strstr(ls[0].msg, "failed with SCORE_E_FORMAT") != NULL,
                              "messages '%s' / '%s'", ls[n - 1].msg, ls[0].msg);
        }
    score_free(buf);
}
END_TEST

/* ---- failures ---------------------------------------------------------------------------- */

enum { FAIL_OTHER_DATA = 1, FAIL_OTHER_ROWS = 2, FAIL_SAVE_IO = 3, FAIL_CANCEL = 4 };

static int cancel_now(size_t step, size_t total, double loss, double lr, void *ud)
{
    (void)total;
    (void)loss;
    (void)lr;
    (void)ud;
    return step == 2;
}

static int job_fail(score_comm *c, int rank, void *slot)
{
    int *mode = slot, rc;
    wl_trainer w;
    double L;
    int last = rank == score_comm_size(c) - 1;
    rc = wl_trainer_new(&w, c, *mode == FAIL_OTHER_DATA && last ? WL_PERTURB : 0);
    if (rc == SCORE_OK && *mode == FAIL_OTHER_ROWS && last) {
        /* this rank's dataset is replaced by one of another row count */
        rc = score_trainer_set_data(w.tr, 50, 2, w.data);
    }
    if (rc == SCORE_OK && *mode == FAIL_SAVE_IO) {
        rc = score_trainer_step(w.tr, &L);
        if (rc == SCORE_OK)
            rc = score_trainer_save(w.tr, "no-such-directory-xyz/ckpt.st");
    } else if (rc == SCORE_OK) {
        /* with FAIL_CANCEL only the last rank's callback asks to stop */
        rc = score_trainer_run(w.tr, 3, *mode == FAIL_CANCEL && last ? cancel_now : NULL, NULL);
    }
    wl_trainer_free(&w);
    return rc;
}

START_TEST(train_failing_rank_stops_all)
{
    int st[MAX_RANKS];
    int modes[4] = {FAIL_OTHER_DATA, FAIL_OTHER_ROWS, FAIL_SAVE_IO, FAIL_CANCEL};
    int want[4] = {SCORE_E_MISUSE, SCORE_E_MISUSE, SCORE_E_IO, SCORE_E_CANCELLED};
    for (int q = 0; q < 4; q++)
        for (int n = 2; n <= 3; n++) {
            int m[MAX_RANKS] = {modes[q], modes[q], modes[q]};
            void *slots[MAX_RANKS] = {&m[0], &m[1], &m[2]};
            run_ranks(n, job_fail, slots, st);
            for (int r = 0; r < n; r++)
                ck_assert_msg(st[r] == want[q], "mode %d, %d ranks: rank %d returned %d",
                              modes[q], n, r, st[r]);
        }
    /* no partial file left by the failed save */
    ck_assert_int_ne(access("no-such-directory-xyz/ckpt.st", F_OK), 0);
}
END_TEST

/* ---- sampling and likelihood --------------------------------------------------------------- */

typedef struct sl_slot {
    float x[WL_SAMPLES * 2], z[WL_SAMPLES * 2];
    double logp[WL_SAMPLES];
} sl_slot;

static int job_sample(score_comm *c, int rank, void *p)
{
    sl_slot *s = p;
    (void)rank;
    return wl_sample_loglik(c, s->x, s->logp, s->z);
}

START_TEST(sample_loglik_bit_identical)
{
    static sl_slot ref, res[MAX_RANKS];
    int st[MAX_RANKS];
    ck_assert_ok(wl_sample_loglik(NULL, ref.x, ref.logp, ref.z));
    for (int i = 0; i < WL_SAMPLES; i++)
        ck_assert(isfinite(ref.logp[i]) && ref.logp[i] < 10.0);
    for (int n = 1; n <= MAX_RANKS; n++) {
        void *slots[MAX_RANKS] = {&res[0], &res[1], &res[2]};
        memset(res, 0, sizeof res);
        run_ranks(n, job_sample, slots, st);
        for (int r = 0; r < n; r++) {
            ck_assert_int_eq(st[r], SCORE_OK);
            ck_assert_msg(memcmp(ref.x, res[r].x, sizeof ref.x) == 0, "%d ranks: samples", n);
            ck_assert_msg(memcmp(ref.logp, res[r].logp, sizeof ref.logp) == 0, "%d ranks: logp", n);
            ck_assert_msg(memcmp(ref.z, res[r].z, sizeof ref.z) == 0, "%d ranks: z", n);
        }
    }
}
END_TEST

static Suite *comm_suite(void)
{
    Suite *s = suite_create("comm");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, comm_basics);
    tcase_add_test(tc, comm_agree_threads);
    tcase_add_test(tc, train_bit_identical);
    tcase_add_test(tc, train_labels_bit_identical);
    tcase_add_test(tc, train_resume_other_rank_count);
    tcase_add_test(tc, train_checkpoint_reduce_blocks);
    tcase_add_test(tc, train_load_other_data_on_one_rank);
    tcase_add_test(tc, train_failing_rank_stops_all);
    tcase_add_test(tc, sample_loglik_bit_identical);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(comm_suite());
}
