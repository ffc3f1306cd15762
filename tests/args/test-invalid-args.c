/* The invalid-argument table: every export of src/libscore.map is called with NULL for each of
 * its pointer arguments and with the range edges of its numeric arguments, every other argument
 * being valid, and must return the status (or value) its header documents.
 *
 * The rows live in tests/args/invalid-args.rows (one line per export); gen-invalid-args.py turns
 * them into invalid-args-rows.h (built into this test) and, run as the test
 * "invalid-args-table", fails when an export has no row. Each call gets fresh fixtures (fx_new),
 * so a call that succeeds or changes an object cannot affect the next one. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libscore/libscore.h>
#include <libscore/likelihood.h>

/* ---- fixtures: one valid object of every kind ------------------------------------------- */
#define FX_N 8192 /* floats / doubles in the scratch buffers: enough for every call below */

typedef struct fx {
    score_schedule *schedule;     /* VP, prepared */
    score_schedule *cschedule;    /* VP, still configuring */
    score_model *model;          /* MLP, dim 2, prepared */
    score_model *cmodel;         /* MLP, dim 2, still configuring */
    score_model *models[2];      /* {model, model} */
    score_model *gauss;          /* analytic Gaussian, dim 2, var_diag 0.5 */
    score_model *cb;             /* callback model, dim 2 */
    score_model *sum;            /* sum combination of {model, model} */
    score_model *clf;            /* classifier, dim 2, 3 classes, VP, hidden 8, prepared */
    score_model *unet;           /* U-Net, 1 x 4 x 4 images, still configuring */
    score_schedule *sigmas;      /* a user sigma table schedule, still configuring */
    double grid[4];              /* a strictly decreasing time grid */
    score_sde *sde;
    score_rng *rng;
    score_loss *loss;
    score_optimizer *optimizer;
    score_ema *ema;
    score_trainer *trainer;
    score_comm *comm;            /* a communicator of one rank (fx_comm_ag, fx_comm_bc) */
    const score_step_type *stype; /* built-in Euler */
    score_step_type *utype;       /* a user step type */
    score_step *step;             /* Euler, dim 2 */
    score_step *astep;            /* DOPRI5 (with an error estimate), dim 2 */
    score_control *control;
    score_evolve *evolve;
    score_sampler *sampler;
    score_likelihood *likelihood;
    score_genmodel *genmodel;     /* of sde (dim 2, identity transform) */
    score_sde *gsde;              /* score_genmodel_sde() of genmodel */
    score_genmodel *cgenmodel;    /* score_genmodel_new_classifier() of clf for genmodel */
    size_t P;                    /* parameter count of model */
    /* outputs of constructors that succeed (freed by fx_free) */
    score_schedule *o_schedule;
    score_model *o_model;
    score_sde *o_sde;
    score_rng *o_rng;
    score_loss *o_loss;
    score_optimizer *o_optimizer;
    score_ema *o_ema;
    score_trainer *o_trainer;
    score_comm *o_comm;
    score_step_type *o_step_type;
    score_step *o_step;
    score_control *o_control;
    score_evolve *o_evolve;
    score_sampler *o_sampler;
    score_likelihood *o_likelihood;
    score_genmodel *o_genmodel;
    void *vb;                    /* buffers returned by *_save_buffer */
    score_model *bmodel;         /* a borrowed model (score_trainer_ema_model), not freed */
    /* scalars for out-pointers */
    size_t z;
    int i;
    int64_t i64;
    uint64_t u64;
    uint32_t u32[16];
    double dd;
    const char *s;
    size_t widths[4];
    /* a saved model (buffer and file) for the loaders */
    void *mbuf;
    size_t mlen;
    void *gbuf;                  /* a saved generative model (buffer and file gpath) */
    size_t glen;
    char gpath[64];
    void *tbuf;                  /* a saved trainer checkpoint */
    size_t tlen;
    char path[64];               /* a model file */
    char tpath[64];              /* a checkpoint file */
    char opath[64];              /* a writable path */
    float f[FX_N];
    double d[FX_N];
    unsigned char b[1 << 16];
} fx;

static int fx_model_fn(size_t n, size_t dim, const float *x, const double *c, float *out, void *u)
{
    (void)c;
    (void)u;
    for (size_t i = 0; i < n * dim; i++)
        out[i] = -x[i];
    return 0;
}
static int fx_param_fn(size_t n, size_t dim, const float *x, const double *c, const float *th,
                       size_t np, float *out, void *u)
{
    (void)c;
    (void)np;
    (void)u;
    for (size_t i = 0; i < n * dim; i++)
        out[i] = th[0] * x[i];
    return 0;
}
static int fx_param_vjp_fn(size_t n, size_t dim, const float *x, const double *c,
                           const float *th, size_t np, const float *g, float *grad, float *gx,
                           void *u)
{
    (void)c;
    (void)np;
    (void)u;
    for (size_t i = 0; i < n * dim; i++) {
        if (grad != NULL)
            grad[0] += g[i] * x[i];
        if (gx != NULL)
            gx[i] = th[0] * g[i];
    }
    return 0;
}
static int fx_jvp_fn(size_t n, size_t dim, const float *x, const double *c, size_t k,
                     const float *v, float *out, void *u)
{
    (void)x;
    (void)c;
    (void)u;
    for (size_t i = 0; i < n * k * dim; i++)
        out[i] = -v[i];
    return 0;
}
static int fx_div_fn(size_t n, size_t dim, const float *x, const double *c, double *div, void *u)
{
    (void)x;
    (void)c;
    (void)u;
    for (size_t i = 0; i < n; i++)
        div[i] = -(double)dim;
    return 0;
}
static int fx_sprog(size_t step, size_t total, double t, void *u)
{
    (void)step, (void)total, (void)t, (void)u;
    return 0;
}
static int fx_hook(size_t step, double t, double t_next, size_t row0, size_t n, size_t dim,
                   float *x, void *u)
{
    (void)step, (void)t, (void)t_next, (void)row0, (void)n, (void)dim, (void)x, (void)u;
    return 0;
}
static int fx_apply(void *state, score_sde *sde, size_t n, size_t dim, const double *t,
                    const double *t_next, size_t row0, float *x, float *xerr,
                    const score_rng *rng, uint64_t counter, void *u)
{
    (void)state, (void)sde, (void)n, (void)dim, (void)t, (void)t_next, (void)row0, (void)x;
    (void)xerr, (void)rng, (void)counter, (void)u;
    return 0;
}
static int fx_alloc(void **state_out, size_t dim, void *u)
{
    (void)dim, (void)u;
    *state_out = NULL;
    return 0;
}
static void fx_reset(void *state, void *u)
{
    (void)state, (void)u;
}
static void fx_sfree(void *state, void *u)
{
    (void)state, (void)u;
}
static int fx_tprog(size_t step, size_t total, double loss, double lr, void *u)
{
    (void)step, (void)total, (void)loss, (void)lr, (void)u;
    return 0;
}

static int fx_comm_ag(const void *send, const size_t *counts, void *recv, void *u)
{
    (void)u;
    if (counts[0] > 0 && send != recv)
        memmove(recv, send, counts[0]);
    return 0;
}
static int fx_comm_bc(void *buf, size_t bytes, int root, void *u)
{
    (void)buf, (void)bytes, (void)root, (void)u;
    return 0;
}

static void fx_free(fx *F)
{
    if (F == NULL)
        return;
    score_sde_free(F->gsde);
    score_genmodel_free(F->cgenmodel);
    score_genmodel_free(F->genmodel);
    score_genmodel_free(F->o_genmodel);
    score_free(F->gbuf);
    if (F->gpath[0])
        unlink(F->gpath);
    score_likelihood_free(F->likelihood);
    score_sampler_free(F->sampler);
    score_evolve_free(F->evolve);
    score_control_free(F->control);
    score_step_free(F->step);
    score_step_free(F->astep);
    score_step_type_free(F->utype);
    score_trainer_free(F->trainer);
    score_ema_free(F->ema);
    score_optimizer_free(F->optimizer);
    score_loss_free(F->loss);
    score_rng_free(F->rng);
    score_sde_free(F->sde);
    score_model_free(F->cmodel);
    score_model_free(F->unet);
    score_model_free(F->gauss);
    score_model_free(F->clf);
    score_model_free(F->cb);
    score_model_free(F->sum);
    score_schedule_free(F->sigmas);
    score_model_free(F->model);
    score_schedule_free(F->schedule);
    score_schedule_free(F->cschedule);
    score_likelihood_free(F->o_likelihood);
    score_sampler_free(F->o_sampler);
    score_evolve_free(F->o_evolve);
    score_control_free(F->o_control);
    score_step_free(F->o_step);
    score_step_type_free(F->o_step_type);
    score_trainer_free(F->o_trainer);
    score_ema_free(F->o_ema);
    score_optimizer_free(F->o_optimizer);
    score_loss_free(F->o_loss);
    score_rng_free(F->o_rng);
    score_sde_free(F->o_sde);
    score_model_free(F->o_model);
    score_schedule_free(F->o_schedule);
    score_comm_free(F->comm);
    score_comm_free(F->o_comm);
    score_free(F->vb);
    score_free(F->mbuf);
    score_free(F->tbuf);
    if (F->path[0])
        unlink(F->path);
    if (F->tpath[0])
        unlink(F->tpath);
    if (F->opath[0])
        unlink(F->opath);
    free(F);
}

static void fx_tmpname(char *buf, size_t len, const char *what)
{
    const char *dir = getenv("TMPDIR");
    snprintf(buf, len, "%s/score-args-%ld-%s", dir && *dir ? dir : "/tmp", (long)getpid(), what);
}

static fx *fx_new(void)
{
    fx *F = calloc(1, sizeof *F);
    if (F == NULL)
        return NULL;
    for (size_t i = 0; i < FX_N; i++) {
        F->f[i] = 0.125f * (float)((i % 7) + 1);
        F->d[i] = 0.5;
    }
    F->widths[0] = F->widths[1] = 8;
    F->grid[0] = 1.0;
    F->grid[1] = 0.5;
    F->grid[2] = 0.1;
    F->grid[3] = 0.001;
    fx_tmpname(F->path, sizeof F->path, "model");
    fx_tmpname(F->tpath, sizeof F->tpath, "ckpt");
    fx_tmpname(F->opath, sizeof F->opath, "out");
    fx_tmpname(F->gpath, sizeof F->gpath, "genmodel");
    int ok =
        score_schedule_new(&F->schedule, SCORE_SCHEDULE_VP) == SCORE_OK &&
        score_schedule_prepare(F->schedule) == SCORE_OK &&
        score_schedule_new(&F->cschedule, SCORE_SCHEDULE_VP) == SCORE_OK &&
        score_model_new_mlp(&F->model, 2, 8, 1, SCORE_ACT_SILU, 1) == SCORE_OK &&
        score_model_prepare(F->model) == SCORE_OK &&
        score_model_new_mlp(&F->cmodel, 2, 8, 1, SCORE_ACT_SILU, 1) == SCORE_OK &&
        score_model_new_unet(&F->unet, 1, 4, 4) == SCORE_OK &&
        score_model_new_gaussian(&F->gauss, F->schedule, 2, F->d, NULL, F->d) == SCORE_OK &&
        score_model_new_callback(&F->cb, 2, fx_model_fn, NULL) == SCORE_OK &&
        score_model_new_classifier(&F->clf, F->schedule, 2, 3) == SCORE_OK &&
        score_model_set_i64(F->clf, SCORE_MODEL_PARAM_HIDDEN, 8) == SCORE_OK &&
        score_model_set_i64(F->clf, SCORE_MODEL_PARAM_DEPTH, 1) == SCORE_OK &&
        score_model_prepare(F->clf) == SCORE_OK &&
        score_schedule_new(&F->sigmas, SCORE_SCHEDULE_SIGMAS) == SCORE_OK &&
        score_sde_new(&F->sde, F->schedule, F->model, SCORE_OUTPUT_EPS) == SCORE_OK &&
        score_rng_new(&F->rng, SCORE_RNG_PHILOX4X32_10, 1) == SCORE_OK &&
        score_loss_new(&F->loss, SCORE_LOSS_SDE) == SCORE_OK &&
        (F->P = score_model_param_count(F->model)) > 0 &&
        score_optimizer_new(&F->optimizer, SCORE_OPTIMIZER_ADAM, F->P) == SCORE_OK &&
        score_ema_new(&F->ema, F->P, F->f) == SCORE_OK &&
        score_trainer_new(&F->trainer, F->model, F->sde, F->loss, SCORE_OPTIMIZER_ADAM) ==
            SCORE_OK &&
        (F->stype = score_step_type_get(SCORE_STEP_EULER)) != NULL &&
        score_step_type_new(&F->utype, "user", 1) == SCORE_OK &&
        score_step_new(&F->step, F->stype, 2) == SCORE_OK &&
        score_step_new(&F->astep, score_step_type_get(SCORE_STEP_DOPRI5), 2) == SCORE_OK &&
        score_control_new(&F->control) == SCORE_OK &&
        score_evolve_new(&F->evolve, 2) == SCORE_OK &&
        score_sampler_new_preset(&F->sampler, SCORE_SAMPLER_PRESET_PC, 2) == SCORE_OK &&
        score_likelihood_new(&F->likelihood, 2) == SCORE_OK &&
        score_comm_new(&F->comm, 0, 1, fx_comm_ag, fx_comm_bc, NULL) == SCORE_OK &&
        score_model_save_buffer(F->model, &F->mbuf, &F->mlen) == SCORE_OK &&
        score_model_save(F->model, F->path) == SCORE_OK &&
        score_trainer_save_buffer(F->trainer, &F->tbuf, &F->tlen) == SCORE_OK &&
        score_trainer_save(F->trainer, F->tpath) == SCORE_OK &&
        score_genmodel_new(&F->genmodel, F->sde) == SCORE_OK &&
        score_genmodel_sde(F->genmodel, &F->gsde) == SCORE_OK &&
        score_genmodel_new_classifier(&F->cgenmodel, F->clf, F->genmodel) == SCORE_OK &&
        score_genmodel_save_buffer(F->genmodel, &F->gbuf, &F->glen) == SCORE_OK &&
        score_genmodel_save(F->genmodel, F->gpath) == SCORE_OK;
    F->models[0] = F->models[1] = F->model;
    ok = ok && score_model_new_sum(&F->sum, 2, F->models, NULL) == SCORE_OK;
    if (!ok) {
        fprintf(stderr, "fixture: %s\n", score_last_error_message());
        fx_free(F);
        return NULL;
    }
    return F;
}

/* ---- checks ----------------------------------------------------------------------------- */
static int n_bad;

static void report(const char *fn, const char *label, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#include <stdarg.h>
static void report(const char *fn, const char *label, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s(%s): ", fn, label);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    n_bad++;
}

static __attribute__((unused)) void chk_int(const char *fn, const char *label, int got, int want)
{
    if (got != want) {
        report(fn, label, "returned %s (%d), the documentation says %s (%d); message: %s",
               score_status_name(got), got, score_status_name(want), want,
               score_last_error_message());
        return;
    }
    if (got < 0 && score_last_error_message()[0] == '\0')
        report(fn, label, "returned %s with no last-error message", score_status_name(got));
}

static __attribute__((unused)) void chk_u64(const char *fn, const char *label, uint64_t got, uint64_t want)
{
    if (got != want)
        report(fn, label, "returned %llu, the documentation says %llu",
               (unsigned long long)got, (unsigned long long)want);
}

static __attribute__((unused)) void chk_str(const char *fn, const char *label, const char *got, const char *want)
{
    if (want == NULL ? got != NULL : got == NULL || strcmp(got, want) != 0)
        report(fn, label, "returned \"%s\", the documentation says \"%s\"",
               got ? got : "(NULL)", want ? want : "(NULL)");
}

static __attribute__((unused)) void chk_ptr(const char *fn, const char *label, const void *got, int want_nonnull)
{
    if ((got != NULL) != want_nonnull)
        report(fn, label, "returned %s, the documentation says %s", got ? "a pointer" : "NULL",
               want_nonnull ? "a pointer" : "NULL");
}

/* While a row is being written ('?' in the table): print what the call gives. */
static __attribute__((unused)) void obs_int(const char *fn, const char *label, int got)
{
    fprintf(stderr, "OBS %s %s %s\n", fn, label, got == SCORE_OK ? "OK" : got == SCORE_DONE ? "DONE" : score_status_name(got) + 8);
}
static __attribute__((unused)) void obs_str(const char *fn, const char *label, const char *got)
{
    fprintf(stderr, "OBS %s %s %s\n", fn, label, got ? got : "NULL");
}
static __attribute__((unused)) void obs_u64(const char *fn, const char *label, uint64_t got)
{
    fprintf(stderr, "OBS %s %s %llu\n", fn, label, (unsigned long long)got);
}

/* A string result that must be a non-empty string (never NULL). */
#define NONEMPTY ((const char *)1)
static __attribute__((unused)) void chk_nonempty(const char *fn, const char *label, const char *got)
{
    if (got == NULL || got[0] == '\0')
        report(fn, label, "returned %s, the documentation says a non-empty string",
               got ? "\"\"" : "NULL");
}

#define FX_BEGIN                                                                               \
    do {                                                                                       \
        fx *F = fx_new();                                                                      \
        ck_assert_msg(F != NULL, "fixture creation failed");                                   \
        score_last_error_clear();
#define FX_END                                                                                 \
        fx_free(F);                                                                            \
    } while (0);

#include "invalid-args-rows.h"

START_TEST(test_row)
{
    n_bad = 0;
    rows[_i].run();
    ck_assert_msg(n_bad == 0, "%s: %d case(s) differ from the documentation (see stderr)",
                  rows[_i].name, n_bad);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("invalid-args");
    TCase *tc = tcase_create("rows");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_row, 0, (int)(sizeof rows / sizeof rows[0]));
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
