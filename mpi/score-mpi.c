/* libscore-mpi: the all-gather and broadcast of a score_comm (comm.h) over MPI. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "libscore/mpi.h"
#include "libscore/status.h"

typedef struct mpi_ctx {
    MPI_Comm comm; /* the duplicate: the library's own traffic */
    int size;
    int *counts, *displs; /* of MPI_Allgatherv, size each */
} mpi_ctx;

static int mpi_allgather(const void *send, const size_t *counts, void *recv, void *ud)
{
    mpi_ctx *m = ud;
    size_t total = 0;
    int rank;
    if (MPI_Comm_rank(m->comm, &rank) != MPI_SUCCESS)
        return 1;
    for (int r = 0; r < m->size; r++) {
        /* every rank sees the same counts, so every rank refuses alike */
        if (counts[r] > (size_t)INT_MAX || total > (size_t)INT_MAX - counts[r])
            return 1;
        m->counts[r] = (int)counts[r];
        m->displs[r] = (int)total;
        total += counts[r];
    }
    if (send == (const unsigned char *)recv + m->displs[rank])
        send = MPI_IN_PLACE;
    return MPI_Allgatherv(send, m->counts[rank], MPI_BYTE, recv, m->counts, m->displs, MPI_BYTE,
                          m->comm) != MPI_SUCCESS;
}

static int mpi_bcast(void *buf, size_t bytes, int root, void *ud)
{
    mpi_ctx *m = ud;
    unsigned char *p = buf;
    /* in pieces of at most INT_MAX bytes */
    while (bytes > 0) {
        int piece = bytes > (size_t)INT_MAX ? INT_MAX : (int)bytes;
        if (MPI_Bcast(p, piece, MPI_BYTE, root, m->comm) != MPI_SUCCESS)
            return 1;
        p += piece;
        bytes -= (size_t)piece;
    }
    return 0;
}

static void ctx_free(mpi_ctx *m)
{
    if (m == NULL)
        return;
    if (m->comm != MPI_COMM_NULL)
        MPI_Comm_free(&m->comm);
    free(m->counts);
    free(m->displs);
    free(m);
}

int score_mpi_comm_new(score_comm **out, MPI_Comm comm)
{
    mpi_ctx *m;
    int inited = 0, rank, rc;
    if (out == NULL)
        return SCORE_E_INVAL;
    *out = NULL;
    if (MPI_Initialized(&inited) != MPI_SUCCESS || !inited || comm == MPI_COMM_NULL)
        return SCORE_E_INVAL;
    m = calloc(1, sizeof *m);
    if (m == NULL)
        return SCORE_E_NOMEM;
    m->comm = MPI_COMM_NULL;
    if (MPI_Comm_dup(comm, &m->comm) != MPI_SUCCESS ||
        MPI_Comm_size(m->comm, &m->size) != MPI_SUCCESS ||
        MPI_Comm_rank(m->comm, &rank) != MPI_SUCCESS) {
        ctx_free(m);
        return SCORE_E_CALLBACK;
    }
    m->counts = calloc((size_t)m->size, sizeof(int));
    m->displs = calloc((size_t)m->size, sizeof(int));
    if (m->counts == NULL || m->displs == NULL) {
        ctx_free(m);
        return SCORE_E_NOMEM;
    }
    rc = score_comm_new(out, rank, m->size, mpi_allgather, mpi_bcast, m);
    if (rc != SCORE_OK)
        ctx_free(m);
    return rc;
}

void score_mpi_comm_free(score_comm *comm)
{
    if (comm == NULL)
        return;
    ctx_free(score_comm_user_data(comm));
    score_comm_free(comm);
}
