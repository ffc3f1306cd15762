/**
 * @file mpi.h
 * @brief libscore-mpi: a communicator (comm.h) over an MPI communicator.
 *
 * An optional companion library (pkg-config `libscore-mpi`), built when meson finds MPI
 * (`-Dmpi=auto|enabled|disabled`). libscore itself links no MPI; this library implements the
 * two collectives of a ::score_comm with MPI_Allgatherv and MPI_Bcast on a duplicate of the
 * given MPI communicator (so the library's traffic never matches the caller's messages).
 *
 * Usage: after MPI_Init(), score_mpi_comm_new(&c, MPI_COMM_WORLD), then give @c c to
 * score_trainer_set_comm(), score_sampler_set_comm() or score_likelihood_set_comm(); free it
 * with score_mpi_comm_free() before MPI_Finalize().
 *
 * Errors inside MPI follow the communicator's MPI error handler (by default MPI aborts the job,
 * which is how a dead or failing transport ends every rank); libscore's own failures are
 * agreed on by the collectives as comm.h describes.
 */
#ifndef LIBSCORE_MPI_H
#define LIBSCORE_MPI_H

#include <mpi.h>

#include "comm.h"

SCORE_BEGIN_DECLS

/**
 * @brief Makes a ::score_comm of the ranks of @p comm (a collective over @p comm: it
 *        duplicates it).
 * @param[out] out the new communicator (NULL on failure); free it with score_mpi_comm_free().
 * @param[in] comm an intra-communicator, e.g. MPI_COMM_WORLD.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL out, MPI not initialised, MPI_COMM_NULL);
 *         ::SCORE_E_CALLBACK (an MPI call failed); ::SCORE_E_NOMEM.
 * Thread-safety: as the MPI library's collectives (one thread per communicator).
 * @since 0.2
 */
SCORE_API SCORE_WARN_UNUSED int score_mpi_comm_new(score_comm **out, MPI_Comm comm);

/**
 * @brief Frees a communicator made by score_mpi_comm_new() (NULL is a no-op; must be called
 *        before MPI_Finalize(); a collective: it frees the duplicate MPI communicator).
 * @param[in] comm the communicator.
 * Thread-safety: object-exclusive.
 * @since 0.2
 */
SCORE_API void score_mpi_comm_free(score_comm *comm);

SCORE_END_DECLS

#endif
