/* A small fork-join thread pool (POSIX threads), owned by the object that evaluates (a model
 * workspace, an optimizer): never global. Never installed.
 *
 * score__pool_run(pool, fn, ctx) calls fn(ctx, i, n) once for every i in 0 .. n - 1, where
 * n = score__pool_threads(pool): i = 0 on the calling thread, the others on the pool's
 * workers, and returns when every call has returned. What a call computes must depend on
 * (ctx, i, n) only, so that a fixed partition of the work gives the same bits for any n.
 *
 * Creation failure (memory, or the system refusing a thread) is reported to the owner, who
 * runs the work on the calling thread instead: the library's parallel loops are partitioned
 * so that the result does not depend on the thread count, so the fallback gives the same bits.
 * Nothing here prints, aborts or exits. */
#ifndef LIBSCORE_POOL_PRIV_H
#define LIBSCORE_POOL_PRIV_H

#include <stddef.h>

typedef struct score__pool score__pool;

typedef void (*score__pool_fn)(void *ctx, size_t i, size_t n);

/* A pool of n threads in all (the caller and n - 1 workers), 2 <= n <= 1024. Returns
 * SCORE_OK, or SCORE_E_NOMEM (no message) when memory or a thread could not be had; then
 * *out is NULL and nothing is left running. */
int score__pool_new(score__pool **out, size_t n);
/* Stops and joins the workers. NULL is a no-op. Not while a run is in progress. */
void score__pool_free(score__pool *pool);
size_t score__pool_threads(const score__pool *pool);
/* Fork-join (see above). One run at a time per pool (the pool belongs to one object, used by
 * one thread at a time). */
void score__pool_run(score__pool *pool, score__pool_fn fn, void *ctx);

/* The pool of `*slot` for `threads` threads: reuses *slot when it has that many, otherwise
 * replaces it (freeing the old one). Returns NULL (run serially) when threads <= 1 or when a
 * pool cannot be created; *failed then remembers the refused count so that a later call with
 * the same count does not try again (a new count tries again). */
score__pool *score__pool_for(score__pool **slot, size_t *failed, size_t threads);

/* A loop body: part `part` of a loop, run on thread `thread` (0 = the caller), for work that
 * needs a per-thread scratch slot. */
typedef void (*score__pool_part_fn)(void *ctx, size_t part, size_t thread);

/* Runs fn(ctx, part, thread) for every part in 0 .. parts - 1: with a pool, thread t takes the
 * t-th of score__pool_threads(pool) contiguous, nearly equal ranges of parts, in order;
 * without one (NULL), every part runs on the calling thread (thread 0), in order. */
void score__pool_for_each(score__pool *pool, size_t parts, score__pool_part_fn fn, void *ctx);

#endif /* LIBSCORE_POOL_PRIV_H */
