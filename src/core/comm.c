/* Communicators: a rank, a size and two user collectives (all-gather and broadcast of bytes),
 * plus what the library builds on them (status agreement, item splits). See comm.h. */
#include <string.h>

#include "comm-priv.h"

int score_comm_new(score_comm **out, int rank, int size, score_comm_allgather_fn allgather,
                   score_comm_bcast_fn bcast, void *user_data)
{
    score_comm *c;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (allgather == NULL || bcast == NULL)
        return score__error(SCORE_E_INVAL, __func__, "allgather or bcast callback is NULL");
    if (size < 1 || rank < 0 || rank >= size)
        return score__error(SCORE_E_RANGE, __func__, "rank %d of size %d: need 0 <= rank < size",
                            rank, size);
    c = score__calloc(1, sizeof *c);
    if (c == NULL)
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    c->counts = score__calloc((size_t)size, sizeof(size_t));
    c->verdict = score__calloc((size_t)size, sizeof(int32_t));
    if (c->counts == NULL || c->verdict == NULL) {
        score_comm_free(c);
        return score__error(SCORE_E_NOMEM, __func__, "allocation for %d ranks failed", size);
    }
    c->rank = rank;
    c->size = size;
    c->allgather = allgather;
    c->bcast = bcast;
    c->user_data = user_data;
    *out = c;
    return SCORE_OK;
}

void score_comm_free(score_comm *comm)
{
    if (comm == NULL)
        return;
    score__free(comm->counts);
    score__free(comm->verdict);
    score__free(comm);
}

int score_comm_rank(const score_comm *comm)
{
    return comm ? comm->rank : 0;
}

int score_comm_size(const score_comm *comm)
{
    return comm ? comm->size : 1;
}

void *score_comm_user_data(const score_comm *comm)
{
    return comm ? comm->user_data : NULL;
}

static int gather(score_comm *comm, const char *fn, const void *send, const size_t *counts,
                  void *recv)
{
    if (comm->allgather(send, counts, recv, comm->user_data) != 0)
        return score__error(SCORE_E_CALLBACK, fn, "the communicator's all-gather failed "
                            "(rank %d of %d)", comm->rank, comm->size);
    return SCORE_OK;
}

int score_comm_allgather(score_comm *comm, const void *send, const size_t *counts, void *recv)
{
    size_t total = 0;
    if (comm == NULL || counts == NULL)
        return score__error(SCORE_E_INVAL, __func__, "comm or counts is NULL");
    for (int r = 0; r < comm->size; r++) {
        if (counts[r] > SIZE_MAX - total)
            return score__error(SCORE_E_RANGE, __func__, "the counts overflow");
        total += counts[r];
    }
    if ((send == NULL && counts[comm->rank] > 0) || (recv == NULL && total > 0))
        return score__error(SCORE_E_INVAL, __func__, "send or recv is NULL");
    return gather(comm, __func__, send, counts, recv);
}

int score_comm_bcast(score_comm *comm, void *buf, size_t bytes, int root)
{
    if (comm == NULL || (buf == NULL && bytes > 0))
        return score__error(SCORE_E_INVAL, __func__, "comm or buf is NULL");
    if (root < 0 || root >= comm->size)
        return score__error(SCORE_E_RANGE, __func__, "root %d not in [0, %d]", root,
                            comm->size - 1);
    if (comm->bcast(buf, bytes, root, comm->user_data) != 0)
        return score__error(SCORE_E_CALLBACK, __func__, "the communicator's broadcast failed "
                            "(rank %d of %d)", comm->rank, comm->size);
    return SCORE_OK;
}

/* The verdict of statuses v[0..size-1]: the first negative one (its rank in *who) or OK. */
static int verdict_of(const score_comm *comm, int *who)
{
    for (int r = 0; r < comm->size; r++)
        if (comm->verdict[r] < 0) {
            *who = r;
            return (int)comm->verdict[r];
        }
    *who = -1;
    return SCORE_OK;
}

int score_comm_agree(score_comm *comm, int status, int *agreed, int *failed_rank)
{
    int32_t mine = status;
    int rc, who;
    if (failed_rank != NULL)
        *failed_rank = -1;
    if (comm == NULL || agreed == NULL)
        return score__error(SCORE_E_INVAL, __func__, "comm or agreed is NULL");
    for (int r = 0; r < comm->size; r++)
        comm->counts[r] = sizeof(int32_t);
    if ((rc = gather(comm, __func__, &mine, comm->counts, comm->verdict)) != SCORE_OK)
        return rc;
    *agreed = verdict_of(comm, &who);
    if (failed_rank != NULL)
        *failed_rank = who;
    return SCORE_OK;
}

int score__comm_conclude(score_comm *comm, int rc, const char *fn)
{
    int agreed, who, trc;
    if (comm == NULL)
        return rc;
    if ((trc = score_comm_agree(comm, rc < 0 ? rc : SCORE_OK, &agreed, &who)) != SCORE_OK)
        return trc;
    if (agreed == SCORE_OK)
        return rc;
    if (rc < 0)
        return rc; /* this rank failed too: its own message stands */
    return score__error(agreed, fn, "rank %d of %d failed with %s; this rank (%d) stops too",
                        who, comm->size, score_status_name(agreed), comm->rank);
}

int score_comm_share(size_t n, int rank, int size, size_t *lo, size_t *hi)
{
    if (lo == NULL || hi == NULL)
        return score__error(SCORE_E_INVAL, __func__, "lo or hi is NULL");
    if (size < 1 || rank < 0 || rank >= size)
        return score__error(SCORE_E_RANGE, __func__, "rank %d of size %d", rank, size);
    score__comm_share(n, rank, size, lo, hi);
    return SCORE_OK;
}

void score__comm_share(size_t n, int rank, int size, size_t *lo, size_t *hi)
{
    /* floor(n * rank / size) without overflow: n = q size + m */
    size_t q = n / (size_t)size, m = n % (size_t)size;
    *lo = q * (size_t)rank + m * (size_t)rank / (size_t)size;
    *hi = q * (size_t)(rank + 1) + m * (size_t)(rank + 1) / (size_t)size;
}

int score__comm_allgather_items(score_comm *comm, const char *fn, size_t n, size_t each,
                                const void *send, void *recv)
{
    for (int r = 0; r < comm->size; r++) {
        size_t lo, hi;
        score__comm_share(n, r, comm->size, &lo, &hi);
        comm->counts[r] = (hi - lo) * each;
    }
    return gather(comm, fn, send, comm->counts, recv);
}

uint64_t score__fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}
