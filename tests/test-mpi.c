/* The distributed workloads over MPI (run by the mpi suite under mpirun -np 1, 2 and 3): every
 * rank compares the results of MPI_COMM_WORLD with those of one process (a one-rank
 * communicator, or none) bit for bit (training; sampling and likelihood of an analytic model;
 * an MLP's likelihood with the exact and the Hutchinson divergence); resumes a checkpoint
 * across rank counts; and checks that a failing rank makes every rank return the same error.
 * A plain program (no forking test runner under MPI): prints each failure and exits 1 when any
 * check failed on any rank. */
#include <stdio.h>
#include <unistd.h>

#include <libscore/mpi.h>

#include "helpers/comm-workload.h"

static int failures;

enum { MLP_ROWS = 40 };

/* log p and latents of MLP_ROWS rows under an untrained MLP (noise prediction, VP), divergence
 * 1 (exact) or 2 (Hutchinson, 2 Rademacher probes a row), over comm (NULL: one process). The
 * MLP's trace and tangents are evaluated in row panels aligned to the global row numbers, so a
 * rank's share of the rows gives the bits of a one-process solve. */
static int mlp_loglik(score_comm *comm, int div, double *logp, float *z)
{
    score_schedule *sch = NULL;
    score_model *m = NULL;
    score_sde *sde = NULL;
    score_likelihood *lk = NULL;
    score_rng *rng = NULL;
    float x[MLP_ROWS * 2];
    int rc = score_schedule_new(&sch, SCORE_SCHEDULE_VP);
    if (rc == SCORE_OK) rc = score_schedule_set_f64(sch, SCORE_SCHEDULE_PARAM_T_EPS, 1e-3);
    if (rc == SCORE_OK) rc = score_schedule_prepare(sch);
    if (rc == SCORE_OK) rc = score_model_new_mlp(&m, 2, 32, 2, SCORE_ACT_SILU, 21);
    if (rc == SCORE_OK) rc = score_model_prepare(m);
    if (rc == SCORE_OK) rc = score_sde_new(&sde, sch, m, SCORE_OUTPUT_EPS);
    if (rc == SCORE_OK) rc = score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 4);
    if (rc == SCORE_OK) rc = score_rng_fill_normal(rng, 0, MLP_ROWS, 0, 2, x);
    if (rc == SCORE_OK) rc = score_likelihood_new(&lk, 2);
    if (rc == SCORE_OK) rc = score_likelihood_set_i64(lk, SCORE_LIKELIHOOD_PARAM_DIVERGENCE, div);
    if (rc == SCORE_OK) rc = score_likelihood_set_i64(lk, SCORE_LIKELIHOOD_PARAM_N_PROBES, 2);
    if (rc == SCORE_OK) rc = score_likelihood_set_f64(lk, SCORE_LIKELIHOOD_PARAM_RTOL, 1e-3);
    if (rc == SCORE_OK) rc = score_likelihood_set_f64(lk, SCORE_LIKELIHOOD_PARAM_ATOL, 1e-3);
    if (rc == SCORE_OK) rc = score_likelihood_set_comm(lk, comm);
    if (rc == SCORE_OK)
        rc = score_likelihood_logp_ex(lk, sde, 0, MLP_ROWS, x, logp, NULL, z, NULL, rng);
    score_likelihood_free(lk);
    score_rng_free(rng);
    score_sde_free(sde);
    score_model_free(m);
    score_schedule_free(sch);
    return rc;
}

#define CHECK(cond, ...)                                                                     \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "test-mpi rank %d: %s:%d: ", rank, __FILE__, __LINE__);          \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fputc('\n', stderr);                                                             \
            failures++;                                                                      \
        }                                                                                    \
    } while (0)

#define STEPS 6

int main(int argc, char **argv)
{
    score_comm *world = NULL, *self = NULL;
    wl_train_result ref, res;
    int rank = 0, size = 1, rc, total = 0;
    char path[256];
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    rc = score_mpi_comm_new(&world, MPI_COMM_WORLD);
    CHECK(rc == SCORE_OK, "score_mpi_comm_new: %d", rc);
    CHECK(score_mpi_comm_new(NULL, MPI_COMM_WORLD) == SCORE_E_INVAL, "NULL out accepted");
    CHECK(score_comm_rank(world) == rank && score_comm_size(world) == size, "rank or size");
    CHECK(wl_self_comm(&self) == SCORE_OK, "self communicator");
    {
        long id = rank == 0 ? (long)getpid() : 0;
        MPI_Bcast(&id, 1, MPI_LONG, 0, MPI_COMM_WORLD);
        snprintf(path, sizeof path, "test-mpi-%d-%ld.st", size, id);
    }

    /* training: N ranks = one process, bit for bit */
    rc = wl_train(self, STEPS, &ref);
    CHECK(rc == SCORE_OK && ref.step == STEPS, "reference run: %d", rc);
    rc = wl_train(world, STEPS, &res);
    CHECK(rc == SCORE_OK, "%d-rank run: %s", size, score_last_error_message());
    CHECK(rc == SCORE_OK && wl_same(&ref, &res, STEPS),
          "%d ranks: weights, EMA, optimizer state or losses differ from one process", size);
    wl_train_result_free(&res);

    /* resume on another rank count: 3 steps on N ranks -> checkpoint -> 3 on one rank */
    {
        wl_trainer w;
        rc = wl_trainer_new(&w, world, 0);
        memset(&res, 0, sizeof res);
        if (rc == SCORE_OK) rc = wl_steps(&w, 0, 3, &res);
        if (rc == SCORE_OK) rc = score_trainer_save(w.tr, path);
        wl_trainer_free(&w);
        CHECK(rc == SCORE_OK, "save on %d ranks: %s", size, score_last_error_message());
        rc = wl_trainer_new(&w, self, 0);
        if (rc == SCORE_OK) rc = score_trainer_load(w.tr, path);
        if (rc == SCORE_OK) rc = wl_steps(&w, 3, 3, &res);
        if (rc == SCORE_OK) rc = wl_collect(&w, &res);
        CHECK(rc == SCORE_OK && wl_same(&ref, &res, STEPS),
              "%d ranks -> 1 rank: the continuation differs", size);
        wl_train_result_free(&res);
        wl_trainer_free(&w);
        MPI_Barrier(MPI_COMM_WORLD);
        if (rank == 0)
            remove(path);
        /* ... and 3 steps on one process (a one-rank communicator: the same blocked sums; rank
         * 0 writes) -> 3 on N ranks */
        rc = SCORE_OK;
        memset(&res, 0, sizeof res);
        if (rank == 0) {
            rc = wl_trainer_new(&w, self, 0);
            if (rc == SCORE_OK) rc = wl_steps(&w, 0, 3, &res);
            if (rc == SCORE_OK) rc = score_trainer_save(w.tr, path);
            wl_trainer_free(&w);
        }
        MPI_Barrier(MPI_COMM_WORLD);
        CHECK(rc == SCORE_OK, "one-process save");
        rc = wl_trainer_new(&w, world, 0);
        if (rc == SCORE_OK) rc = score_trainer_load(w.tr, path);
        if (rc == SCORE_OK) rc = wl_steps(&w, 3, 3, &res);
        if (rc == SCORE_OK) rc = wl_collect(&w, &res);
        CHECK(rc == SCORE_OK && wl_same(&ref, &res, 0) &&
                  memcmp(ref.loss + 3, res.loss + 3, 3 * sizeof(double)) == 0,
              "1 process -> %d ranks: the continuation differs", size);
        wl_train_result_free(&res);
        wl_trainer_free(&w);
        MPI_Barrier(MPI_COMM_WORLD);
        if (rank == 0)
            remove(path);
    }
    wl_train_result_free(&ref);

    /* sampling and likelihood: every rank receives all rows, equal to one process */
    {
        float x1[WL_SAMPLES * 2], xn[WL_SAMPLES * 2], z1[WL_SAMPLES * 2], zn[WL_SAMPLES * 2];
        double l1[WL_SAMPLES], ln[WL_SAMPLES];
        rc = wl_sample_loglik(NULL, x1, l1, z1);
        CHECK(rc == SCORE_OK, "one-process sample / loglik: %d", rc);
        rc = wl_sample_loglik(world, xn, ln, zn);
        CHECK(rc == SCORE_OK, "%d-rank sample / loglik: %s", size, score_last_error_message());
        CHECK(memcmp(x1, xn, sizeof x1) == 0, "%d ranks: samples differ", size);
        CHECK(memcmp(l1, ln, sizeof l1) == 0, "%d ranks: log-likelihoods differ", size);
        CHECK(memcmp(z1, zn, sizeof z1) == 0, "%d ranks: latents differ", size);
    }

    /* an MLP's likelihood (exact divergence and Hutchinson): N ranks = one process */
    for (int div = 1; div <= 2; div++) {
        float z1[MLP_ROWS * 2], zn[MLP_ROWS * 2];
        double l1[MLP_ROWS], ln[MLP_ROWS];
        rc = mlp_loglik(NULL, div, l1, z1);
        CHECK(rc == SCORE_OK, "one-process MLP loglik (divergence %d): %d", div, rc);
        rc = mlp_loglik(world, div, ln, zn);
        CHECK(rc == SCORE_OK, "%d-rank MLP loglik (divergence %d): %s", size, div,
              score_last_error_message());
        CHECK(l1[0] != l1[1], "the rows' log-likelihoods are equal: the comparison means nothing");
        CHECK(memcmp(l1, ln, sizeof l1) == 0, "%d ranks: MLP log-likelihoods differ (divergence %d)",
              size, div);
        CHECK(memcmp(z1, zn, sizeof z1) == 0, "%d ranks: MLP latents differ (divergence %d)",
              size, div);
    }

    /* failures: the last rank holds other data -> every rank refuses the first step; a failed
     * write on rank 0 -> every rank reports the I/O error and no file is left */
    if (size > 1) {
        wl_trainer w;
        double L;
        rc = wl_trainer_new(&w, world, rank == size - 1 ? WL_PERTURB : 0);
        if (rc == SCORE_OK) rc = score_trainer_step(w.tr, &L);
        CHECK(rc == SCORE_E_MISUSE, "other data on rank %d: status %d", size - 1, rc);
        wl_trainer_free(&w);
    }
    /* a checkpoint loaded where the last rank holds other data: every rank refuses
     * (SCORE_E_FORMAT) and no trainer changes (all-or-nothing on every rank) */
    if (size > 1) {
        wl_trainer w;
        void *buf = NULL;
        size_t len = 0;
        uint64_t k = 99;
        rc = wl_trainer_new(&w, self, 0);
        if (rc == SCORE_OK) rc = score_trainer_run(w.tr, 3, NULL, NULL);
        if (rc == SCORE_OK) rc = score_trainer_save_buffer(w.tr, &buf, &len);
        wl_trainer_free(&w);
        CHECK(rc == SCORE_OK, "checkpoint for the load test: %s", score_last_error_message());
        rc = wl_trainer_new(&w, world, rank == size - 1 ? WL_PERTURB : 0);
        if (rc == SCORE_OK) rc = score_trainer_load_buffer(w.tr, buf, len);
        CHECK(rc == SCORE_E_FORMAT, "load with other data on rank %d: status %d on rank %d",
              size - 1, rc, rank);
        CHECK(rank != size - 1 || strstr(score_last_error_message(), "data parameter 'hash'"),
              "rank %d: %s", rank, score_last_error_message());
        CHECK(score_trainer_get_step(w.tr, &k) == SCORE_OK && k == 0,
              "rank %d: the refused load changed the step (%llu)", rank, (unsigned long long)k);
        wl_trainer_free(&w);
        /* the same data everywhere: loads on every rank */
        rc = wl_trainer_new(&w, world, 0);
        if (rc == SCORE_OK) rc = score_trainer_load_buffer(w.tr, buf, len);
        CHECK(rc == SCORE_OK && score_trainer_get_step(w.tr, &k) == SCORE_OK && k == 3,
              "rank %d: load with the same data: %s", rank, score_last_error_message());
        wl_trainer_free(&w);
        score_free(buf);
    }
    {
        wl_trainer w;
        double L;
        rc = wl_trainer_new(&w, world, 0);
        if (rc == SCORE_OK) rc = score_trainer_step(w.tr, &L);
        if (rc == SCORE_OK) rc = score_trainer_save(w.tr, "no-such-directory-mpi/ckpt.st");
        CHECK(rc == SCORE_E_IO, "failed save: status %d", rc);
        CHECK(access("no-such-directory-mpi/ckpt.st", F_OK) != 0, "a file was left");
        wl_trainer_free(&w);
    }

    score_comm_free(self);
    score_mpi_comm_free(world);
    MPI_Allreduce(&failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0)
        printf("test-mpi: %d ranks, %d failed checks\n", size, total);
    MPI_Finalize();
    return total == 0 ? 0 : 1;
}
