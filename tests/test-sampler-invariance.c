/* Batch-split invariance of every built-in step type: a run over all rows and runs over chunks
 * of 64, 7 and 1 rows (score_sampler_run_ex with the chunk's first global row), with the model's
 * thread count 1 and 2, give bit-identical rows, for an analytic model (Gaussian mixture), an
 * MLP (its inference products are the kernel layer's row-invariant GEMM, its tangents BLAS
 * products in panels aligned to the global row numbers), a weighted sum of two MLPs and a
 * class-conditional MLP with classifier-free guidance (2n rows per evaluation) and an energy MLP
 * (score -grad E by reverse mode in aligned row panels). The mala corrector needs an energy: on
 * the MLP systems it must refuse (SCORE_E_UNSUPPORTED). Stochastic
 * types run with noise (eta 0.8, churn), correctors behind the reverse-diffusion predictor, the
 * adaptive types adaptively (per-row step sizes: rows reach different times and the solve
 * evaluates compacted rows). The Langevin corrector runs with its batch-invariant step-size
 * rule (SNR_NORM 2); score_sde's batch-mean rule is checked to depend on the split.
 *
 * Registered twice: with a one-thread BLAS (every case), and with a two-thread OpenBLAS
 * (SCORE_TEST_MT_BLAS=1: three types, the MLP systems and the larger chunks, as each small
 * call evaluates a whole block of the MLP there; the pc default). */
#include <stdio.h>
#include <stdlib.h>

#include "helpers/sampler-fixture.h"

enum { NROWS = 100, DIM = 2, STEPS = 6, NSYS = 5 };

typedef struct sys {
    fx_system f;
    score_model *m2, *sum; /* the sum's second member and the sum */
} sys;

static const char *const sys_name[NSYS] = {"gmm", "mlp", "mlp-sum", "mlp-guided", "energy"};

static void make_mlp(score_model **m, uint64_t seed, int64_t classes)
{
    ck_assert_ok(score_model_new_mlp(m, DIM, 48, 2, SCORE_ACT_SILU, seed));
    if (classes > 0)
        ck_assert_ok(score_model_set_i64(*m, SCORE_MODEL_PARAM_NUM_CLASSES, classes));
    ck_assert_ok(score_model_prepare(*m));
}

/* kind 0: analytic mixture (score output); 1: MLP; 2: sum of two MLPs; 3: class-conditional
 * MLP, label 1, guidance 1.5 (noise-prediction outputs); 4: energy MLP (score output). */
static void make_system(sys *s, int kind)
{
    memset(s, 0, sizeof *s);
    if (kind == 0) {
        fx_make(&s->f, SCORE_SCHEDULE_VP, 1, 1e-3);
        return;
    }
    ck_assert_ok(score_schedule_new(&s->f.sched, SCORE_SCHEDULE_VP));
    ck_assert_ok(score_schedule_set_f64(s->f.sched, SCORE_SCHEDULE_PARAM_T_EPS, 1e-3));
    ck_assert_ok(score_schedule_prepare(s->f.sched));
    if (kind == 4) {
        ck_assert_ok(score_model_new_energy(&s->f.model, DIM));
        ck_assert_ok(score_model_set_i64(s->f.model, SCORE_MODEL_PARAM_HIDDEN, 48));
        ck_assert_ok(score_model_set_i64(s->f.model, SCORE_MODEL_PARAM_DEPTH, 2));
        ck_assert_ok(score_model_set_i64(s->f.model, SCORE_MODEL_PARAM_SEED, 13));
        ck_assert_ok(score_model_prepare(s->f.model));
        ck_assert_ok(score_sde_new(&s->f.sde, s->f.sched, s->f.model, SCORE_OUTPUT_SCORE));
        return;
    }
    make_mlp(&s->f.model, 11, kind == 3 ? 3 : 0);
    if (kind == 2) {
        score_model *pair[2];
        const double w[2] = {0.7, 0.3};
        make_mlp(&s->m2, 12, 0);
        pair[0] = s->f.model;
        pair[1] = s->m2;
        ck_assert_ok(score_model_new_sum(&s->sum, 2, pair, w));
    }
    ck_assert_ok(score_sde_new(&s->f.sde, s->f.sched, s->sum ? s->sum : s->f.model,
                               SCORE_OUTPUT_EPS));
    if (kind == 3) {
        ck_assert_ok(score_sde_set_label(s->f.sde, 1));
        ck_assert_ok(score_sde_set_f64(s->f.sde, SCORE_SDE_PARAM_GUIDANCE, 1.5));
    }
}

static void free_system(sys *s)
{
    score_sde_free(s->f.sde);
    s->f.sde = NULL;
    score_model_free(s->sum);
    score_model_free(s->m2);
    fx_free(&s->f);
}

static void set_threads(sys *s, int64_t threads)
{
    ck_assert_ok(score_model_set_i64(s->f.model, SCORE_MODEL_PARAM_THREADS, threads));
    if (s->sum != NULL)
        ck_assert_ok(score_model_set_i64(s->sum, SCORE_MODEL_PARAM_THREADS, threads));
}

static score_sampler *make_sampler(const score_step_type *type)
{
    score_sampler *s;
    uint32_t flags = score_step_type_flags(type);
    if (flags & SCORE_STEP_FLAG_CORRECTOR)
        ck_assert_ok(score_sampler_new(&s, score_step_type_find("reverse-diffusion"), type, DIM));
    else
        ck_assert_ok(score_sampler_new(&s, type, NULL, DIM));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_NUM_STEPS, STEPS));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_GRID, SCORE_GRID_UNIFORM_LAMBDA));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_FINAL_DENOISE, 1));
    ck_assert_ok(score_sampler_set_f64(s, SCORE_SAMPLER_PARAM_ETA, 0.8));
    ck_assert_ok(score_sampler_set_f64(s, SCORE_SAMPLER_PARAM_CHURN, 10.0));
    ck_assert_ok(score_sampler_set_f64(s, SCORE_SAMPLER_PARAM_RTOL, 1e-3));
    ck_assert_ok(score_sampler_set_f64(s, SCORE_SAMPLER_PARAM_ATOL, 1e-3));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_SNR_NORM, 2));
    return s;
}

static void run_chunks(score_sampler *s, score_sde *sde, const score_rng *rng, size_t chunk,
                       float *out)
{
    for (size_t r0 = 0; r0 < NROWS; r0 += chunk) {
        size_t n = NROWS - r0 < chunk ? NROWS - r0 : chunk;
        ck_assert_ok(score_sampler_run_ex(s, sde, r0, n, NULL, out + r0 * DIM, rng, NULL, NULL));
    }
}

static int mt_blas(void)
{
    const char *v = getenv("SCORE_TEST_MT_BLAS");
    return v != NULL && v[0] == '1';
}

static void check_type(const score_step_type *type, int kind, const size_t *chunks, int nchunks)
{
    sys f;
    score_sampler *s;
    score_rng *rng;
    float ref[NROWS * DIM], out[NROWS * DIM];
    double spread = 0.0;
    make_system(&f, kind);
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 1234));
    s = make_sampler(type);
    set_threads(&f, 1);
    if (score_step_type_kind(type) == SCORE_STEP_MALA && !score_model_has_energy(f.f.model)) {
        ck_assert_int_eq(score_sampler_run(s, f.f.sde, NROWS, NULL, ref, rng, NULL, NULL),
                         SCORE_E_UNSUPPORTED);
        score_sampler_free(s);
        score_rng_free(rng);
        free_system(&f);
        return;
    }
    ck_assert_ok(score_sampler_run(s, f.f.sde, NROWS, NULL, ref, rng, NULL, NULL));
    for (size_t q = 0; q < NROWS * DIM; q++) {
        ck_assert(isfinite(ref[q]));
        spread = fmax(spread, fabs((double)ref[q] - (double)ref[q % DIM]));
    }
    ck_assert_double_gt(spread, 1e-3); /* the rows differ: the comparison below means something */
    for (int threads = 1; threads <= 2; threads++) {
        set_threads(&f, threads);
        if (threads == 2) {
            ck_assert_ok(score_sampler_run(s, f.f.sde, NROWS, NULL, out, rng, NULL, NULL));
            ck_assert_msg(memcmp(ref, out, sizeof ref) == 0, "%s (%s): all rows, 2 threads differ",
                          score_step_type_name(type), sys_name[kind]);
        }
        for (int k = 0; k < nchunks; k++) {
            memset(out, 0, sizeof out);
            run_chunks(s, f.f.sde, rng, chunks[k], out);
            for (size_t q = 0; q < NROWS * DIM; q++)
                ck_assert_msg(ref[q] == out[q],
                              "%s (%s): chunks of %zu rows, %d threads: row %zu differs (%.9g "
                              "vs %.9g)",
                              score_step_type_name(type), sys_name[kind], chunks[k], threads,
                              q / DIM, (double)ref[q], (double)out[q]);
        }
    }
    score_sampler_free(s);
    score_rng_free(rng);
    free_system(&f);
}

START_TEST(every_step_type_every_split)
{
    /* single rows for the analytic model and the MLP; the combinations share the MLP's path */
    static const size_t chunks[3] = {64, 7, 1};
    size_t ntypes = score_step_type_count();
    int kind = _i / (int)ntypes;
    check_type(score_step_type_at((size_t)_i % ntypes), kind, chunks,
               kind < 2 || kind == 4 ? 3 : 2);
}
END_TEST

START_TEST(mt_blas_split)
{
    /* a multi-threaded OpenBLAS splits a large product over its threads and a small one not:
     * the MLP then evaluates whole blocks, and rows stay invariant */
    static const char *const types[] = {"euler", "dpmpp-2m", "reverse-diffusion"};
    static const size_t chunks[2] = {64, 7};
    check_type(score_step_type_find(types[_i % 3]), 1 + _i / 3, chunks, 2);
}
END_TEST

START_TEST(pc_default_is_invariant)
{
    /* the CLI's default sampler (reverse diffusion + Langevin, defaults) on the MLP */
    sys f;
    score_sampler *s;
    score_rng *rng;
    float ref[NROWS * DIM], out[NROWS * DIM];
    make_system(&f, 1);
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 9));
    ck_assert_ok(score_sampler_new(&s, score_step_type_find("reverse-diffusion"),
                                   score_step_type_find("langevin"), DIM));
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_NUM_STEPS, 20));
    ck_assert_ok(score_sampler_run(s, f.f.sde, NROWS, NULL, ref, rng, NULL, NULL));
    run_chunks(s, f.f.sde, rng, 7, out);
    ck_assert(memcmp(ref, out, sizeof ref) == 0);
    /* score_sde's batch-mean rule, the documented exception, does depend on the split */
    ck_assert_ok(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_SNR_NORM, 0));
    ck_assert_ok(score_sampler_run(s, f.f.sde, NROWS, NULL, ref, rng, NULL, NULL));
    run_chunks(s, f.f.sde, rng, 7, out);
    ck_assert(memcmp(ref, out, sizeof ref) != 0);
    score_sampler_free(s);
    score_rng_free(rng);
    free_system(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sampler-invariance");
    TCase *tc = tcase_create("split");
    tcase_set_timeout(tc, 240);
    if (mt_blas())
        tcase_add_loop_test(tc, mt_blas_split, 0, 3 * (NSYS - 1));
    else
        tcase_add_loop_test(tc, every_step_type_every_split, 0,
                            NSYS * (int)score_step_type_count());
    tcase_add_test(tc, pc_default_is_invariant);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
