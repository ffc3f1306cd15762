/* The fork-join pool of pool-priv.h.
 *
 * Workers wait for a new generation number. They first spin on it for a short while (a phase
 * of a backward pass follows the previous one within microseconds, and waking a sleeping
 * thread costs tens of microseconds), then sleep on a condition variable. The caller publishes
 * the job, bumps the generation under the mutex (so that no sleeper misses it), runs part 0
 * itself and waits, the same way, for the count of unfinished workers to reach 0. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>

#include "core-priv.h"
#include "pool-priv.h"

/* Polls of the spin phase before sleeping (each poll is a relaxed load and a pause:
 * some tens of microseconds in all). */
#define SCORE__POOL_SPIN 4000
#define SCORE__POOL_MAX 1024

struct score__pool;

typedef struct pool_worker {
    struct score__pool *pool;
    size_t index;
    pthread_t thread;
} pool_worker;

struct score__pool {
    size_t n;             /* threads in all, the caller included */
    size_t started;       /* workers running */
    pool_worker *workers; /* n - 1 */
    pthread_mutex_t mu;
    pthread_cond_t wake;  /* generation changed */
    pthread_cond_t done;  /* pending reached 0 */
    atomic_uint gen;      /* bumped by every run (and by stop) */
    atomic_size_t pending; /* workers still running the current job */
    int stop;             /* written before the last bump, read after seeing it */
    score__pool_fn fn;    /* the current job, written before its bump */
    void *ctx;
};

static void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static unsigned wait_gen(score__pool *p, unsigned seen)
{
    unsigned g;
    for (int i = 0; i < SCORE__POOL_SPIN; i++) {
        if ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) != seen)
            return g;
        relax();
    }
    pthread_mutex_lock(&p->mu);
    while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen)
        pthread_cond_wait(&p->wake, &p->mu);
    pthread_mutex_unlock(&p->mu);
    return g;
}

static void *worker_main(void *arg)
{
    pool_worker *w = arg;
    score__pool *p = w->pool;
    unsigned seen = 0;
    for (;;) {
        seen = wait_gen(p, seen);
        if (p->stop)
            break;
        p->fn(p->ctx, w->index, p->n);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

static void bump(score__pool *p)
{
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
}

static void stop_workers(score__pool *p)
{
    p->stop = 1;
    bump(p);
    for (size_t i = 0; i < p->started; i++)
        pthread_join(p->workers[i].thread, NULL);
    p->started = 0;
}

int score__pool_new(score__pool **out, size_t n)
{
    score__pool *p;
    *out = NULL;
    if (n < 2 || n > SCORE__POOL_MAX)
        return SCORE_E_RANGE;
    if ((p = score__calloc(1, sizeof *p)) == NULL)
        return SCORE_E_NOMEM;
    if ((p->workers = score__calloc(n - 1, sizeof *p->workers)) == NULL) {
        score__free(p);
        return SCORE_E_NOMEM;
    }
    p->n = n;
    atomic_init(&p->gen, 0u);
    atomic_init(&p->pending, (size_t)0);
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        score__free(p->workers);
        score__free(p);
        return SCORE_E_NOMEM;
    }
    if (pthread_cond_init(&p->wake, NULL) != 0) {
        pthread_mutex_destroy(&p->mu);
        score__free(p->workers);
        score__free(p);
        return SCORE_E_NOMEM;
    }
    if (pthread_cond_init(&p->done, NULL) != 0) {
        pthread_cond_destroy(&p->wake);
        pthread_mutex_destroy(&p->mu);
        score__free(p->workers);
        score__free(p);
        return SCORE_E_NOMEM;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        p->workers[i].pool = p;
        p->workers[i].index = i + 1;
        if (pthread_create(&p->workers[i].thread, NULL, worker_main, &p->workers[i]) != 0) {
            score__pool_free(p);
            return SCORE_E_NOMEM;
        }
        p->started++;
    }
    *out = p;
    return SCORE_OK;
}

void score__pool_free(score__pool *p)
{
    if (p == NULL)
        return;
    stop_workers(p);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    score__free(p->workers);
    score__free(p);
}

size_t score__pool_threads(const score__pool *p)
{
    return p ? p->n : 1;
}

void score__pool_run(score__pool *p, score__pool_fn fn, void *ctx)
{
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
    bump(p);
    fn(ctx, 0, p->n);
    for (int i = 0; i < SCORE__POOL_SPIN; i++) {
        if (atomic_load_explicit(&p->pending, memory_order_acquire) == 0)
            return;
        relax();
    }
    pthread_mutex_lock(&p->mu);
    while (atomic_load_explicit(&p->pending, memory_order_acquire) != 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

score__pool *score__pool_for(score__pool **slot, size_t *failed, size_t threads)
{
    if (threads > SCORE__POOL_MAX)
        threads = SCORE__POOL_MAX;
    if (threads <= 1)
        return NULL;
    if (*slot != NULL && (*slot)->n == threads)
        return *slot;
    if (*failed == threads)
        return NULL;
    score__pool_free(*slot);
    *slot = NULL;
    if (score__pool_new(slot, threads) != SCORE_OK) {
        *failed = threads;
        return NULL;
    }
    *failed = 0;
    return *slot;
}

typedef struct for_each_job {
    size_t parts;
    score__pool_part_fn fn;
    void *ctx;
} for_each_job;

static void for_each_range(void *arg, size_t t, size_t n)
{
    const for_each_job *j = arg;
    size_t base = j->parts / n, extra = j->parts % n;
    size_t lo = t * base + (t < extra ? t : extra), hi = lo + base + (t < extra ? 1 : 0);
    for (size_t i = lo; i < hi; i++)
        j->fn(j->ctx, i, t);
}

void score__pool_for_each(score__pool *pool, size_t parts, score__pool_part_fn fn, void *ctx)
{
    for_each_job j = {parts, fn, ctx};
    if (pool == NULL || parts <= 1) {
        for (size_t i = 0; i < parts; i++)
            fn(ctx, i, 0);
        return;
    }
    score__pool_run(pool, for_each_range, &j);
}
