/**
 * @file comm.h
 * @brief Communicators: the handle through which the trainer, the sampler and the likelihood
 *        split their work over several processes (ranks), with results independent of the
 *        rank count.
 *
 * libscore links no message-passing library. A communicator is a small handle built from two
 * user callbacks (an all-gather and a broadcast of bytes) that the caller implements with
 * whatever transport it has: the optional library libscore-mpi builds one from an MPI
 * communicator (libscore/mpi.h), a test can build one over threads of one process.
 *
 * Contract of the callbacks (every rank of the group calls the same collective in the same
 * order, like MPI collectives):
 * - allgather: rank r contributes counts[r] bytes (its @p send) and every rank receives the
 *   concatenation of all contributions in rank order (rank 0 first) in @p recv, whose length
 *   is the sum of counts[]. counts[] is the same array on every rank. A count may be 0.
 *   @p send may point into @p recv exactly at this rank's offset (the sum of the counts of the
 *   lower ranks): the in-place case, which the callback must accept (MPI_IN_PLACE).
 * - bcast: the @p bytes bytes of @p buf on rank @p root are copied into @p buf on every rank.
 * - Both return 0 on success and nonzero on a transport failure, which the library reports as
 *   ::SCORE_E_CALLBACK. They must not return before the data is in place.
 *
 * What the library builds on them: score_comm_agree() (every rank learns whether any rank
 * failed, and which), and inside the trainer the fixed-order reduction: each rank computes the
 * gradient partials of its fixed row blocks, the partials of all blocks are all-gathered in
 * block order, and every rank sums them in that global order. The block partition depends on
 * the batch size and ::SCORE_TRAINER_PARAM_REDUCE_ROWS only, never on the rank count, so 1, 2
 * or N ranks give the same bits (doc/scaling.md).
 *
 * Failure model: library-detected failures (bad input, a non-finite value, an I/O error) are
 * agreed on at the next collective of the operation, so every rank returns an error status
 * from the same call. A rank that dies or hangs inside a callback cannot be detected here: that
 * is the transport's job (MPI aborts the job).
 */
#ifndef LIBSCORE_COMM_H
#define LIBSCORE_COMM_H

#include "common.h"

SCORE_BEGIN_DECLS

/** @brief A communicator: rank, size and the two collectives (opaque). */
typedef struct score_comm score_comm;

/**
 * @brief All-gather of bytes (see the contract in comm.h).
 * @param[in] send counts[rank] bytes of this rank (may be NULL when that count is 0; may be
 *            recv + this rank's offset: in place).
 * @param[in] counts size byte counts, one per rank, equal on every rank.
 * @param[out] recv the sum of counts bytes: the contributions in rank order.
 * @param[in] user_data as given to score_comm_new().
 * @return 0 on success, nonzero on failure.
 */
typedef int SCORE_CALLBACK(score_comm_allgather_fn)(const void *send, const size_t *counts,
                                                     void *recv, void *user_data);

/**
 * @brief Broadcast of bytes from one rank (see the contract in comm.h).
 * @param[in,out] buf @p bytes bytes: read on @p root, written on the other ranks.
 * @param[in] bytes length. @param[in] root the sending rank.
 * @param[in] user_data as given to score_comm_new().
 * @return 0 on success, nonzero on failure.
 */
typedef int SCORE_CALLBACK(score_comm_bcast_fn)(void *buf, size_t bytes, int root,
                                                 void *user_data);

/**
 * @brief Makes a communicator for rank @p rank of @p size ranks.
 * @param[out] out the new handle (NULL on failure).
 * @param[in] rank this process's rank, 0 .. size - 1. @param[in] size ranks, >= 1.
 * @param[in] allgather the all-gather callback. @param[in] bcast the broadcast callback.
 * @param[in] user_data passed to both callbacks; must outlive the handle.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL out or callback); ::SCORE_E_RANGE (size < 1, rank
 *         outside 0 .. size - 1); ::SCORE_E_NOMEM.
 * Thread-safety: reentrant.
 * @since 0.2
 */
SCORE_API SCORE_WARN_UNUSED int score_comm_new(score_comm **out, int rank, int size,
                                               score_comm_allgather_fn allgather,
                                               score_comm_bcast_fn bcast, void *user_data);

/**
 * @brief Frees a communicator (NULL is a no-op). Objects it was given to must not use it
 *        afterwards: give them NULL first or free them before.
 * @param[in] comm the handle.
 * Thread-safety: object-exclusive.
 * @since 0.2
 */
SCORE_API void score_comm_free(score_comm *comm);

/**
 * @brief This process's rank.
 * @param[in] comm the handle.
 * @return the rank; 0 for NULL (a missing communicator is one process of rank 0).
 * Thread-safety: safe for concurrent readers.
 * @since 0.2
 */
SCORE_API int score_comm_rank(const score_comm *comm);

/**
 * @brief Number of ranks.
 * @param[in] comm the handle.
 * @return the size; 1 for NULL.
 * Thread-safety: safe for concurrent readers.
 * @since 0.2
 */
SCORE_API int score_comm_size(const score_comm *comm);

/**
 * @brief The user_data given to score_comm_new() (for the code that made the communicator,
 *        e.g. to release its transport before score_comm_free()).
 * @param[in] comm the handle.
 * @return the pointer; NULL for NULL.
 * Thread-safety: safe for concurrent readers.
 * @since 0.2
 */
SCORE_API void *score_comm_user_data(const score_comm *comm);

/**
 * @brief All-gather of bytes through the communicator's callback (a collective).
 * @param[in] comm the handle. @param[in] send counts[rank] bytes.
 * @param[in] counts score_comm_size() counts. @param[out] recv the sum of counts bytes.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL comm, counts, or a NULL buffer with a nonzero
 *         length); ::SCORE_E_CALLBACK (the callback failed).
 * Thread-safety: object-exclusive (one collective at a time per communicator).
 * @since 0.2
 */
SCORE_API SCORE_WARN_UNUSED int score_comm_allgather(score_comm *comm, const void *send,
                                                     const size_t *counts, void *recv);

/**
 * @brief Broadcast of @p bytes bytes from rank @p root (a collective).
 * @param[in] comm the handle. @param[in,out] buf the bytes. @param[in] bytes length.
 * @param[in] root the sending rank.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL comm, or NULL buf with bytes > 0);
 *         ::SCORE_E_RANGE (root outside 0 .. size - 1); ::SCORE_E_CALLBACK.
 * Thread-safety: object-exclusive.
 * @since 0.2
 */
SCORE_API SCORE_WARN_UNUSED int score_comm_bcast(score_comm *comm, void *buf, size_t bytes,
                                                 int root);

/**
 * @brief Status agreement (a collective): every rank passes its local status and receives the
 *        same verdict.
 *
 * *@p agreed is ::SCORE_OK when every rank passed ::SCORE_OK or a positive value; otherwise
 * the status of the lowest-numbered rank that passed a negative one, and *@p failed_rank is
 * that rank (-1 when all succeeded). Equal on every rank. A barrier when every rank passes
 * ::SCORE_OK.
 * @param[in] comm the handle. @param[in] status this rank's status.
 * @param[out] agreed the verdict. @param[out] failed_rank the failing rank or -1 (may be NULL).
 * @return ::SCORE_OK (the agreement itself succeeded); ::SCORE_E_INVAL (NULL comm or agreed);
 *         ::SCORE_E_CALLBACK (the transport failed).
 * Thread-safety: object-exclusive.
 * @since 0.2
 */
SCORE_API SCORE_WARN_UNUSED int score_comm_agree(score_comm *comm, int status, int *agreed,
                                                 int *failed_rank);

/**
 * @brief The share of rank @p rank when @p n items are split over @p size ranks in contiguous
 *        ranges: items *lo .. *hi - 1, with lo = floor(n * rank / size) (the split the sampler
 *        and the likelihood use for rows, and the trainer for reduction blocks).
 * @param[in] n items. @param[in] rank the rank. @param[in] size ranks (>= 1).
 * @param[out] lo first item. @param[out] hi one past the last item.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL lo or hi); ::SCORE_E_RANGE (size < 1 or rank
 *         outside 0 .. size - 1).
 * Thread-safety: reentrant.
 * @since 0.2
 */
SCORE_API SCORE_WARN_UNUSED int score_comm_share(size_t n, int rank, int size, size_t *lo,
                                                 size_t *hi);

SCORE_END_DECLS

#endif
