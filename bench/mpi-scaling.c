/* score-bench-mpi: the scaling of a data-parallel training step (doc/scaling.md). The DSM
 * workload of score-bench (d=64, h=512, depth 3, Fourier embedding, VE schedule, Adam) trained
 * with the communicator of MPI_COMM_WORLD; run under mpirun -np N.
 *   --batch B        global batch (strong scaling: the same B for every N)      [1024]
 *   --per-rank       B rows per rank (weak scaling: a global batch of N * B)
 *   --reduce-rows R  SCORE_TRAINER_PARAM_REDUCE_ROWS                            [64]
 *   --steps S        timed steps after 2 warm-up steps                          [10]
 * Rank 0 prints one JSON line: ranks, global batch, median / min step time (s), the time of
 * the step's all-gather alone (the same bytes gathered S times) and the parameter count. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libscore/libscore.h>
#include <libscore/mpi.h>

#define D 64
#define H 512

static double now(void)
{
    return MPI_Wtime();
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define CHECK(call)                                                                          \
    do {                                                                                     \
        int rc__ = (call);                                                                   \
        if (rc__ != SCORE_OK) {                                                              \
            fprintf(stderr, "score-bench-mpi: %s: %s\n", #call, score_last_error_message()); \
            MPI_Abort(MPI_COMM_WORLD, 1);                                                    \
        }                                                                                    \
    } while (0)

int main(int argc, char **argv)
{
    size_t batch = 1024, steps = 10, reduce = 64, np, rows;
    int per_rank = 0, rank, size;
    score_comm *comm = NULL;
    score_schedule *sch = NULL;
    score_model *m = NULL;
    score_sde *sde = NULL;
    score_loss *loss = NULL;
    score_trainer *tr = NULL;
    score_rng *rng = NULL;
    float *x;
    double *t, t_gather = 0.0;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--per-rank") == 0)
            per_rank = 1;
        else if (i + 1 < argc && strcmp(argv[i], "--batch") == 0)
            batch = (size_t)strtoul(argv[++i], NULL, 10);
        else if (i + 1 < argc && strcmp(argv[i], "--steps") == 0)
            steps = (size_t)strtoul(argv[++i], NULL, 10);
        else if (i + 1 < argc && strcmp(argv[i], "--reduce-rows") == 0)
            reduce = (size_t)strtoul(argv[++i], NULL, 10);
        else {
            if (rank == 0)
                fprintf(stderr, "usage: score-bench-mpi [--batch B] [--per-rank] "
                                "[--reduce-rows R] [--steps S]\n");
            MPI_Finalize();
            return 2;
        }
    }
    if (per_rank)
        batch *= (size_t)size;
    rows = batch;
    CHECK(score_mpi_comm_new(&comm, MPI_COMM_WORLD));
    CHECK(score_schedule_new(&sch, SCORE_SCHEDULE_VE));
    CHECK(score_model_new_mlp(&m, D, H, 3, SCORE_ACT_SILU, 0));
    CHECK(score_model_set_i64(m, SCORE_MODEL_PARAM_EMBEDDING, SCORE_EMBED_FOURIER));
    CHECK(score_model_set_i64(m, SCORE_MODEL_PARAM_EMBED_DIM, 32));
    CHECK(score_model_set_f64(m, SCORE_MODEL_PARAM_FOURIER_SCALE, 16.0));
    CHECK(score_model_set_i64(m, SCORE_MODEL_PARAM_RESIDUAL, 1));
    CHECK(score_model_prepare(m));
    CHECK(score_sde_new(&sde, sch, m, SCORE_OUTPUT_SCORE));
    CHECK(score_sde_set_i64(sde, SCORE_SDE_PARAM_COND, SCORE_COND_T));
    CHECK(score_loss_new(&loss, SCORE_LOSS_SDE));
    CHECK(score_trainer_new(&tr, m, sde, loss, SCORE_OPTIMIZER_ADAM));
    CHECK(score_trainer_set_i64(tr, SCORE_TRAINER_PARAM_BATCH_SIZE, (int64_t)batch));
    CHECK(score_trainer_set_i64(tr, SCORE_TRAINER_PARAM_REDUCE_ROWS, (int64_t)reduce));
    x = malloc(rows * D * sizeof *x);
    t = malloc((steps > 0 ? steps : 1) * sizeof *t);
    if (x == NULL || t == NULL)
        MPI_Abort(MPI_COMM_WORLD, 1);
    CHECK(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 12345));
    CHECK(score_rng_fill_normal(rng, 0, rows, 0, D, x));
    CHECK(score_trainer_set_data(tr, rows, D, x));
    CHECK(score_trainer_set_comm(tr, comm));
    np = score_model_param_count(m);
    for (size_t i = 0; i < 2 + steps; i++) {
        double t0;
        MPI_Barrier(MPI_COMM_WORLD);
        t0 = now();
        CHECK(score_trainer_step(tr, NULL));
        if (i >= 2)
            t[i - 2] = now() - t0;
    }
    {
        /* the step's collective alone: every block's gradient record to every rank */
        size_t nblk = (batch + reduce - 1) / reduce, rec = 16 + (np * 4 + 7) / 8 * 8;
        size_t *counts = calloc((size_t)size, sizeof *counts), total = 0, off = 0;
        unsigned char *buf;
        for (int r = 0; r < size; r++) {
            size_t lo, hi;
            CHECK(score_comm_share(nblk, r, size, &lo, &hi));
            counts[r] = 8 + (hi - lo) * rec;
            if (r == rank)
                off = total;
            total += counts[r];
        }
        buf = calloc(total, 1);
        if (counts == NULL || buf == NULL)
            MPI_Abort(MPI_COMM_WORLD, 1);
        MPI_Barrier(MPI_COMM_WORLD);
        {
            double t0 = now();
            for (size_t i = 0; i < steps; i++)
                CHECK(score_comm_allgather(comm, buf + off, counts, buf)); /* in place */
            t_gather = (now() - t0) / (double)(steps > 0 ? steps : 1);
        }
        free(buf);
        free(counts);
    }
    if (rank == 0) {
        qsort(t, steps, sizeof *t, cmp_d);
        printf("{\"ranks\": %d, \"global_batch\": %zu, \"reduce_rows\": %zu, \"params\": %zu, "
               "\"step_median_s\": %.6f, \"step_min_s\": %.6f, \"allgather_s\": %.6f}\n",
               size, batch, reduce, np, steps ? t[steps / 2] : NAN, steps ? t[0] : NAN,
               t_gather);
    }
    score_trainer_free(tr);
    score_loss_free(loss);
    score_sde_free(sde);
    score_model_free(m);
    score_schedule_free(sch);
    score_rng_free(rng);
    free(x);
    free(t);
    score_mpi_comm_free(comm);
    MPI_Finalize();
    return 0;
}
