/* Internal helpers of the communicator (comm.c), shared by the trainer, the sampler and the
 * likelihood. Never installed. */
#ifndef LIBSCORE_COMM_PRIV_H
#define LIBSCORE_COMM_PRIV_H

#include "core-priv.h"
#include "libscore/comm.h"

struct score_comm {
    int rank, size;
    score_comm_allgather_fn allgather;
    score_comm_bcast_fn bcast;
    void *user_data;
    size_t *counts;   /* size byte counts of the library's own all-gathers */
    int32_t *verdict; /* size statuses of score_comm_agree() */
};

/* The outcome of a distributed operation: the agreement of every rank's local status rc. When
 * this rank succeeded and another failed, the error is re-raised here under fn naming that
 * rank (this rank's own message is kept when it failed itself). Returns the agreed status, or
 * the transport's failure. */
int score__comm_conclude(score_comm *comm, int rc, const char *fn);

/* score_comm_share() without the argument checks (size >= 1, 0 <= rank < size). */
void score__comm_share(size_t n, int rank, int size, size_t *lo, size_t *hi);

/* All-gather of per-rank arrays of `each` bytes per item, rank r contributing the items
 * lo_r .. hi_r - 1 of a contiguous split of n items (score_comm_share()): recv gets all n
 * items in order. send holds this rank's items. */
int score__comm_allgather_items(score_comm *comm, const char *fn, size_t n, size_t each,
                                const void *send, void *recv);

/* 64-bit FNV-1a of bytes, continued from h (start with SCORE__FNV_INIT). */
#define SCORE__FNV_INIT 0xcbf29ce484222325ULL
uint64_t score__fnv1a(uint64_t h, const void *p, size_t n);

#endif
