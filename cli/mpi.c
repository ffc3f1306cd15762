/* The tool under mpirun: with libscore-mpi (SCORE_CLI_MPI), a process started by an MPI
 * launcher joins MPI_COMM_WORLD and hands a communicator to the trainer, the sampler and the
 * likelihood; rank 0 alone writes files and prints. Started any other way (or built without
 * MPI) the tool is one process and MPI is never initialised. */
#include "cli.h"

#include <stdlib.h>

#ifdef SCORE_CLI_MPI
#include <libscore/mpi.h>

static score_comm *world; /* the tool's one communicator (the tool, not the library) */

/* Launched by an MPI launcher (OpenMPI's mpirun, or a PMI/PMIx one)? */
static int under_launcher(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") != NULL || getenv("PMI_SIZE") != NULL ||
           getenv("PMIX_RANK") != NULL;
}

int cli_mpi_begin(int *argc, char ***argv)
{
    int rc;
    if (!under_launcher())
        return 0;
    if (MPI_Init(argc, argv) != MPI_SUCCESS) {
        fprintf(stderr, "score: MPI_Init failed\n");
        return CLI_EXIT_FAILURE;
    }
    if ((rc = score_mpi_comm_new(&world, MPI_COMM_WORLD)) != SCORE_OK) {
        fprintf(stderr, "score: cannot make the MPI communicator: %s\n", score_strerror(rc));
        MPI_Finalize();
        return CLI_EXIT_FAILURE;
    }
    return 0;
}

int cli_mpi_end(int rc)
{
    int inited = 0;
    if (world != NULL) {
        rc = cli_mpi_agree(rc);
        score_mpi_comm_free(world);
        world = NULL;
    }
    if (MPI_Initialized(&inited) == MPI_SUCCESS && inited)
        MPI_Finalize();
    return rc;
}

const char *cli_mpi_info(void)
{
    return "available (libscore-mpi; run under mpirun -np N for data-parallel train, sample "
           "and loglik)";
}
#else
static score_comm *world;

int cli_mpi_begin(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

int cli_mpi_end(int rc)
{
    return rc;
}

const char *cli_mpi_info(void)
{
    return "not available (built without MPI: -Dmpi=enabled with OpenMPI installed)";
}
#endif

score_comm *cli_mpi_comm(void)
{
    return world;
}

int cli_mpi_rank(void)
{
    return score_comm_rank(world);
}

int cli_mpi_agree(int rc)
{
    int agreed = SCORE_OK, who = -1;
    if (world == NULL)
        return rc;
    if (score_comm_agree(world, rc != 0 ? SCORE_E_GENERIC : SCORE_OK, &agreed, &who) != SCORE_OK)
        return rc != 0 ? rc : CLI_EXIT_FAILURE;
    if (rc == 0 && agreed != SCORE_OK) {
        fprintf(stderr, "score %s: rank %d failed; rank %d stops too\n", cli_command, who,
                score_comm_rank(world));
        return CLI_EXIT_FAILURE;
    }
    return rc;
}
