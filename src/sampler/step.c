/* Steps: lifecycle, parameters, accessors, the public noise helper and argument validation of
 * score_step_apply(). The type table is in step-types.c, the numerics shared by the built-in
 * implementations in step-num.c. */
#include <math.h>
#include <string.h>

#include "rng/rng-priv.h"
#include "step-priv.h"

#define SCORE__2POW32 ((uint64_t)1 << 32)

/* ---- parameters ------------------------------------------------------------------------ */

static const score__param_desc step_params[SCORE__STEP_NPARAMS] = {
    {SCORE_STEP_PARAM_ETA, "eta", SCORE_PARAM_F64, -1, 1000, -1,
     "noise amount of ddim / euler-ancestral / dpmpp-2m-sde; -1 = the type's default"},
    {SCORE_STEP_PARAM_CHURN, "churn", SCORE_PARAM_F64, 0, 0.41421356237309515, 0,
     "EDM churn gamma of one heun step"},
    {SCORE_STEP_PARAM_S_TMIN, "s_tmin", SCORE_PARAM_F64, 0, 1e30, 0,
     "churn only where sigma/alpha >= s_tmin"},
    {SCORE_STEP_PARAM_S_TMAX, "s_tmax", SCORE_PARAM_F64, 0, 1e30, 1e30,
     "churn only where sigma/alpha <= s_tmax"},
    {SCORE_STEP_PARAM_S_NOISE, "s_noise", SCORE_PARAM_F64, 0, 100, 1,
     "scale of churn / SDE noise"},
    {SCORE_STEP_PARAM_SNR, "snr", SCORE_PARAM_F64, 1e-12, 1e6, 0.16,
     "signal-to-noise ratio of the Langevin / ALD step-size rules"},
    {SCORE_STEP_PARAM_STEP_SIZE, "step_size", SCORE_PARAM_F64, 0, 1e12, 0,
     "fixed Langevin step size; 0 = SNR rule"},
    {SCORE_STEP_PARAM_STEP_LR, "step_lr", SCORE_PARAM_F64, 0, 1e12, 0,
     "ALD epsilon (step = eps sigma^2 / sigma_L^2); 0 = score_sde rule"},
    {SCORE_STEP_PARAM_SIGMA_REF, "sigma_ref", SCORE_PARAM_F64, 0, 1e30, 0,
     "ALD reference sigma_L; 0 = sigma(t_eps)"},
    {SCORE_STEP_PARAM_ORDER, "order", SCORE_PARAM_I64, 0, 3, 0,
     "order cap of one call (DPM-Solver, DPM-Solver++, lms, deis, unipc); 0 = the type's order"},
    {SCORE_STEP_PARAM_SNR_NORM, "snr_norm", SCORE_PARAM_I64, 0, 2, 0,
     "Langevin SNR rule: 0 batch-mean norms (score_sde), 1 row norms, 2 noise level"},
    {SCORE_STEP_PARAM_DISC_N, "disc_n", SCORE_PARAM_I64, 0, 1000000, 0,
     "discretization N of reverse-diffusion / ancestral; 0 = exact transition between end points"},
    {SCORE_STEP_PARAM_SUBSTEP, "substep", SCORE_PARAM_I64, 0, 1, 0,
     "intermediate points of dpmpp-2s / dpmpp-3s: 0 uniform in lambda, 1 uniform in t"},
    {SCORE_STEP_PARAM_DPMPP_3M_FORM, "dpmpp_3m_form", SCORE_PARAM_I64, 0, 1, 0,
     "dpmpp-3m coefficients: 0 third order, 1 the published form (second-difference weight 1/2)"},
    {SCORE_STEP_PARAM_BROWNIAN, "brownian", SCORE_PARAM_I64, 0, 1, 0,
     "1 = noise as increments of one Brownian path per (seed, row)"},
    {SCORE_STEP_PARAM_RESTART_SMIN, "restart_smin", SCORE_PARAM_F64, 1e-12, 1e30, 0.1,
     "restart interval lower end in s = sigma / alpha"},
    {SCORE_STEP_PARAM_RESTART_SMAX, "restart_smax", SCORE_PARAM_F64, 1e-12, 1e30, 2.0,
     "restart interval upper end in s"},
    {SCORE_STEP_PARAM_RESTART_K, "restart_k", SCORE_PARAM_I64, 0, 100, 2,
     "number of restart cycles"},
    {SCORE_STEP_PARAM_RESTART_STEPS, "restart_steps", SCORE_PARAM_I64, 1, 10000, 9,
     "Heun steps of one restart cycle"},
    {SCORE_STEP_PARAM_PRECISION, "precision", SCORE_PARAM_I64, 32, 64, 32,
     "state precision: 32 float (score_step_apply), 64 double (score_step_apply_f64)"},
    {SCORE_STEP_PARAM_START_CORRECTION, "start_correction", SCORE_PARAM_I64, 0, 1, 0,
     "dpmpp-2m / dpmpp-3m: 1 = the first step's result corrected at the second call"},
};

const score__param_desc *score__step_param_table(size_t *n_out)
{
    *n_out = SCORE__STEP_NPARAMS;
    return step_params;
}

SCORE__DEFINE_PARAM_ACCESSORS(score__step_par, score_step, "step", step_params,
                              SCORE__STEP_NPARAMS)

int score__step_check_precision(const char *fn, const score_step_type *type, int64_t bits)
{
    if (bits != 32 && bits != 64)
        return score__error(SCORE_E_RANGE, fn, "precision = %lld: 32 or 64", (long long)bits);
    if (bits == 64 && type->impl_f64 == NULL)
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "step type '%s' has no double-precision state (precision = 64)",
                            type->name);
    return SCORE_OK;
}

int score_step_set_f64(score_step *step, int param, double value)
{
    return score__step_par_set_f64(step, param, value);
}

/* precision: 32 or 64, and 64 only for a type with a double state (the old value stays). */
int score_step_set_i64(score_step *step, int param, int64_t value)
{
    int rc;
    if (step != NULL && param == SCORE_STEP_PARAM_PRECISION &&
        (rc = score__step_check_precision(__func__, &step->type, value)) != SCORE_OK)
        return rc;
    return score__step_par_set_i64(step, param, value);
}

int score_step_get_f64(const score_step *step, int param, double *out)
{
    return score__step_par_get_f64(step, param, out);
}

int score_step_get_i64(const score_step *step, int param, int64_t *out)
{
    return score__step_par_get_i64(step, param, out);
}

/* ---- lifecycle ------------------------------------------------------------------------- */

int score_step_new(score_step **out, const score_step_type *type, size_t dim)
{
    score_step *st;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (type == NULL)
        return score__error(SCORE_E_INVAL, __func__, "type is NULL");
    if (!type->builtin && type->apply == NULL)
        return score__error(SCORE_E_INVAL, __func__, "user step type '%s' has no apply function",
                            type->name);
    if (score__check_dim(__func__, dim) != SCORE_OK)
        return SCORE_E_RANGE;
    st = score__calloc(1, sizeof *st);
    if (st == NULL)
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    st->type = *type;
    st->type.builtin = 0; /* the copy is owned by the step */
    st->dim = dim;
    st->mala_scale = 1.0;
    st->mala_target = 0.574;
    score__param_defaults(step_params, SCORE__STEP_NPARAMS, st->params);
    if (st->type.alloc != NULL) {
        int rc = st->type.alloc(&st->user_state, dim, st->type.alloc_ud);
        if (rc != 0) {
            score__free(st);
            return score__error(SCORE_E_CALLBACK, __func__, "user state allocator returned %d", rc);
        }
    }
    *out = st;
    return SCORE_OK;
}

static void free_workspace(score_step *st)
{
    for (int i = 0; i < SCORE__STEP_NBUF; i++) {
        score__free(st->buf[i]);
        st->buf[i] = NULL;
    }
    for (int i = 0; i < SCORE__STEP_NDBL; i++) {
        score__free(st->dbl[i]);
        st->dbl[i] = NULL;
    }
    score__free(st->hist_tend);
    score__free(st->hist_t0);
    st->hist_tend = NULL;
    st->hist_t0 = NULL;
    for (int i = 0; i < SCORE__STEP_NHIST; i++) {
        score__free(st->hist_lam[i]);
        score__free(st->hist_d[i]);
        st->hist_lam[i] = NULL;
        st->hist_d[i] = NULL;
    }
    for (int i = 0; i < 2; i++) {
        score__free(st->hist_x[i]);
        st->hist_x[i] = NULL;
        score__free(st->fsal_t[i]);
        score__free(st->fsal_x[i]);
        score__free(st->fsal_k[i]);
        st->fsal_t[i] = NULL;
        st->fsal_x[i] = NULL;
        st->fsal_k[i] = NULL;
    }
    st->cap = 0;
    st->elem = 0;
}

void score_step_free(score_step *step)
{
    if (step == NULL)
        return;
    if (step->type.free_state != NULL)
        step->type.free_state(step->user_state, step->type.free_ud);
    free_workspace(step);
    score__free(step->brown_ws);
    score__free(step->mala_lev);
    score__free(step);
}

int score_step_reset(score_step *step)
{
    if (step == NULL)
        return score__error(SCORE_E_INVAL, __func__, "step is NULL");
    step->hist_count = 0;
    step->hist_n = 0;
    step->fsal_valid = 0;
    step->fsal_n = 0;
    step->nfe = 0;
    step->last_callback_status = 0;
    score__step_mala_reset(step);
    if (step->type.reset != NULL)
        step->type.reset(step->user_state, step->type.reset_ud);
    return SCORE_OK;
}

/* Grows the workspace to n rows of the state precision's values (only built-in types use
 * it). Keeps the history and FSAL contents valid only when nothing was reallocated. */
static int ensure_workspace(score_step *st, size_t n)
{
    size_t nd;
    size_t elem = SCORE__STEP_I64(st, SCORE_STEP_PARAM_PRECISION) == 64 ? sizeof(double)
                                                                         : sizeof(float);
    if (n <= st->cap && elem == st->elem)
        return SCORE_OK;
    if (n < st->cap)
        n = st->cap;
    if (score__mul_size(n, st->dim, &nd) != 0)
        return score__error(SCORE_E_NOMEM, "score_step_apply", "workspace of %zu x %zu overflows",
                            n, st->dim);
    free_workspace(st);
    st->hist_count = 0;
    st->fsal_valid = 0;
    for (int i = 0; i < SCORE__STEP_NBUF; i++)
        if ((st->buf[i] = score__calloc(nd, elem)) == NULL)
            goto nomem;
    for (int i = 0; i < SCORE__STEP_NDBL; i++)
        if ((st->dbl[i] = score__calloc(n, sizeof(double))) == NULL)
            goto nomem;
    if ((st->hist_tend = score__calloc(n, sizeof(double))) == NULL ||
        (st->hist_t0 = score__calloc(n, sizeof(double))) == NULL)
        goto nomem;
    for (int i = 0; i < SCORE__STEP_NHIST; i++)
        if ((st->hist_lam[i] = score__calloc(n, sizeof(double))) == NULL ||
            (st->hist_d[i] = score__calloc(nd, elem)) == NULL)
            goto nomem;
    for (int i = 0; i < 2; i++) {
        if ((st->hist_x[i] = score__calloc(nd, elem)) == NULL ||
            (st->fsal_t[i] = score__calloc(n, sizeof(double))) == NULL ||
            (st->fsal_x[i] = score__calloc(nd, elem)) == NULL ||
            (st->fsal_k[i] = score__calloc(nd, elem)) == NULL)
            goto nomem;
    }
    st->cap = n;
    st->elem = elem;
    return SCORE_OK;
nomem:
    free_workspace(st);
    return score__error(SCORE_E_NOMEM, "score_step_apply", "workspace for %zu rows", n);
}

/* ---- accessors ------------------------------------------------------------------------- */

const char *score_step_name(const score_step *step)
{
    return step == NULL ? "(null)" : step->type.name;
}

int score_step_order(const score_step *step)
{
    return step == NULL ? 0 : step->type.order;
}

int score_step_is_stochastic(const score_step *step)
{
    return step != NULL && score__step_needs_noise(step);
}

int score_step_error_order(const score_step *step)
{
    return step == NULL ? 0 : step->type.err_order;
}

size_t score_step_dim(const score_step *step)
{
    return step == NULL ? 0 : step->dim;
}

uint64_t score_step_nfe(const score_step *step)
{
    return step == NULL ? 0 : step->nfe;
}

int score_step_last_callback_status(const score_step *step)
{
    return step == NULL ? 0 : step->last_callback_status;
}

/* ---- noise ----------------------------------------------------------------------------- */

static int check_noise_range(const char *fn, const score_rng *rng, uint64_t counter, size_t row0,
                             size_t n, size_t dim, size_t blocks)
{
    uint64_t base = rng->counter;
    if (counter >= SCORE__2POW32 || base + counter >= SCORE__2POW32)
        return score__error(SCORE_E_RANGE, fn, "noise counter %llu + offset %llu reaches 2^32",
                            (unsigned long long)base, (unsigned long long)counter);
    if ((uint64_t)row0 > SCORE__2POW32 || (uint64_t)n > SCORE__2POW32 - (uint64_t)row0)
        return score__error(SCORE_E_RANGE, fn, "rows %zu + %zu exceed 2^32", row0, n);
    if (blocks > ((uint64_t)1 << 34) / dim)
        return score__error(SCORE_E_RANGE, fn, "noise columns %zu x %zu exceed 2^34", blocks, dim);
    return SCORE_OK;
}

int score_step_noise(const score_rng *rng, uint64_t counter, size_t row0, size_t n, size_t dim,
                     size_t block, float *out)
{
    int rc;
    if (rng == NULL || (out == NULL && n > 0))
        return score__error(SCORE_E_INVAL, __func__, "rng or out is NULL");
    if (dim == 0)
        return score__error(SCORE_E_INVAL, __func__, "dim is 0");
    if (block >= ((size_t)1 << 34))
        return score__error(SCORE_E_RANGE, __func__, "block %zu too large", block);
    rc = check_noise_range(__func__, rng, counter, row0, n, dim, block + 1);
    if (rc != SCORE_OK)
        return rc;
    score__rng_normal_at(rng, (uint32_t)(rng->counter + counter), row0, n, block * dim, dim, out);
    return SCORE_OK;
}

/* ---- apply ----------------------------------------------------------------------------- */

/* What the end times of a call do (check_times). */
enum { ENDS_ZERO = 1u, ENDS_NONZERO = 2u, ENDS_MOVE = 4u };

/* Checks the per-row times (start finite and > 0, end finite and >= 0, a step that draws noise
 * only backwards in time) and reports in *ends whether rows go to t = 0, to t > 0 and whether
 * any row moves. */
static int check_times(const char *fn, const score_step *step, size_t n, const double *t,
                       const double *t_next, int backward_only, unsigned *ends)
{
    *ends = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(t[i]) || !(t[i] > 0.0))
            return score__error(isnan(t[i]) || isinf(t[i]) ? SCORE_E_NUMERIC : SCORE_E_RANGE, fn,
                                "t[%zu] = %g: a start time must be finite and > 0", i, t[i]);
        if (!isfinite(t_next[i]) || t_next[i] < 0.0)
            return score__error(isnan(t_next[i]) || isinf(t_next[i]) ? SCORE_E_NUMERIC
                                                                      : SCORE_E_RANGE,
                                fn, "t_next[%zu] = %g: an end time must be finite and >= 0", i,
                                t_next[i]);
        *ends |= t_next[i] == 0.0 ? ENDS_ZERO : ENDS_NONZERO;
        if (t_next[i] != t[i])
            *ends |= ENDS_MOVE;
        if (backward_only && t_next[i] > t[i])
            return score__error(SCORE_E_INVAL, fn,
                                "stochastic step '%s' cannot go forward in time (t[%zu] = %g < "
                                "t_next = %g)",
                                step->type.name, i, t[i], t_next[i]);
    }
    return SCORE_OK;
}

/* A user type's apply callback, with the finiteness checks around it. */
static int apply_user(const char *fn, score_step *step, score_sde *sde, size_t row0, size_t n,
                      const double *t, const double *t_next, float *x, float *xerr,
                      const score_rng *rng, uint64_t counter)
{
    int rc;
    if (!score__step_finite(n * step->dim, x))
        return score__error(SCORE_E_NUMERIC, fn, "x holds NaN or infinity on entry");
    rc = step->type.apply(step->user_state, sde, n, step->dim, t, t_next, row0, x, xerr, rng,
                          counter, step->type.apply_ud);
    if (rc != 0) {
        step->last_callback_status = rc;
        return score__error(SCORE_E_CALLBACK, fn, "user step '%s' returned %d", step->type.name,
                            rc);
    }
    step->last_callback_status = 0;
    if (!score__step_finite(n * step->dim, x))
        return score__error(SCORE_E_NUMERIC, fn, "user step '%s' produced NaN or infinity",
                            step->type.name);
    return SCORE_OK;
}

/* 1 if the n * dim values of a float (f64 = 0) or double state are finite. */
static int state_finite(int f64, size_t nd, const void *x)
{
    return f64 ? score__step_finite_f64(nd, x) : score__step_finite(nd, x);
}

/* The checks and the call of a built-in or user step on a float state (f64 = 0: x, xerr are
 * float arrays) or a double state (f64 = 1: double arrays; the step's precision must be 64). */
static int apply_common(const char *fn, score_step *step, score_sde *sde, size_t n,
                        const double *t, const double *t_next, size_t row0, const size_t *idx,
                        int f64, void *x, void *xerr, const score_rng *rng, uint64_t counter)
{
    score__step_call c;
    int rc, stochastic, corrector, needs_noise = 0, to_zero, nonzero, all_same;
    size_t elem = f64 ? sizeof(double) : sizeof(float);
    unsigned ends;
    if (step == NULL || sde == NULL)
        return score__error(SCORE_E_INVAL, fn, "step or sde is NULL");
    if (n == 0)
        return SCORE_OK;
    if (t == NULL || t_next == NULL || x == NULL)
        return score__error(SCORE_E_INVAL, fn, "t, t_next or x is NULL");
    if (score_sde_dim(sde) != step->dim)
        return score__error(SCORE_E_SHAPE, fn, "sde dimension %zu != step dimension %zu",
                            score_sde_dim(sde), step->dim);
    if (f64 != (SCORE__STEP_I64(step, SCORE_STEP_PARAM_PRECISION) == 64))
        return score__error(SCORE_E_MISUSE, fn,
                            f64 ? "step '%s' has precision 32: set SCORE_STEP_PARAM_PRECISION = "
                                  "64 for a double state"
                                : "step '%s' has precision 64: use score_step_apply_f64",
                            step->type.name);
    stochastic = (step->type.flags & SCORE_STEP_FLAG_STOCHASTIC) != 0;
    corrector = (step->type.flags & SCORE_STEP_FLAG_CORRECTOR) != 0;
    if ((uint64_t)row0 > SCORE__2POW32 || (uint64_t)n > SCORE__2POW32 - (uint64_t)row0)
        return score__error(SCORE_E_RANGE, fn, "rows %zu + %zu exceed 2^32", row0, n);
    if (score__step_needs_noise(step)) {
        needs_noise = 1;
        if (rng == NULL)
            return score__error(SCORE_E_INVAL, fn, "step type '%s' draws noise: rng is NULL",
                                step->type.name);
        rc = check_noise_range(fn, rng, counter, row0, n, step->dim,
                               score__step_noise_blocks(step));
        if (rc != SCORE_OK)
            return rc;
    }
    rc = check_times(fn, step, n, t, t_next, (stochastic || needs_noise) && !corrector, &ends);
    if (rc != SCORE_OK)
        return rc;
    to_zero = (ends & ENDS_ZERO) != 0;
    nonzero = (ends & ENDS_NONZERO) != 0;
    all_same = (ends & ENDS_MOVE) == 0;
    if (step->type.builtin == 0 && step->type.impl == NULL)
        return apply_user(fn, step, sde, row0, n, t, t_next, x, xerr, rng, counter);
    if (f64 && step->type.impl_f64 == NULL) /* a type changed under a precision-64 step */
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "step type '%s' has no double-precision state", step->type.name);
    if (!corrector && to_zero && nonzero)
        return score__error(SCORE_E_INVAL, fn,
                            "some rows go to t = 0 (the data) and others do not: split the call");
    if (!state_finite(f64, n * step->dim, x))
        return score__error(SCORE_E_NUMERIC, fn, "x holds NaN or infinity on entry");
    rc = ensure_workspace(step, n);
    if (rc != SCORE_OK)
        return rc;
    c.sde = sde;
    c.sched = score_sde_schedule(sde);
    c.n = n;
    c.dim = step->dim;
    c.row0 = row0;
    c.t = t;
    c.tn = t_next;
    c.x = f64 ? NULL : x;
    c.xerr = f64 ? NULL : xerr;
    c.xd = f64 ? x : NULL;
    c.xerrd = f64 ? xerr : NULL;
    c.rng = needs_noise ? rng : NULL;
    c.counter = counter;
    c.idx = idx;
    c.brown = 0;
    c.brown_T = 0.0;
    c.brown_ws = NULL;
    if (needs_noise && SCORE__STEP_I64(step, SCORE_STEP_PARAM_BROWNIAN) == 1) {
        if (!score__step_brownian_ok(step->type.kind))
            return score__error(SCORE_E_UNSUPPORTED, fn,
                                "step type '%s' does not draw its noise as a Brownian increment "
                                "over the step: brownian = 1 is not supported",
                                step->type.name);
        rc = score_schedule_get_f64(c.sched, SCORE_SCHEDULE_PARAM_T, &c.brown_T);
        if (rc != SCORE_OK)
            return rc;
        if (step->brown_ws == NULL &&
            (step->brown_ws = score__calloc(6 * step->dim, sizeof(double))) == NULL)
            return score__error(SCORE_E_NOMEM, fn, "Brownian-path scratch");
        c.brown = 1;
        c.brown_ws = step->brown_ws;
    }
    if (xerr != NULL && !(step->type.flags & SCORE_STEP_FLAG_ERROR_ESTIMATE))
        memset(xerr, 0, n * step->dim * elem);
    if (all_same && !corrector)
        return SCORE_OK;
    if (!corrector && to_zero) {
        /* the data prediction: x' = D(x, t) */
        void *d = step->buf[0];
        step->hist_count = 0;
        step->fsal_valid = 0;
        rc = f64 ? score__step_x0_f64(step, &c, t, x, d) : score__step_x0(step, &c, t, x, d);
        if (rc != SCORE_OK)
            return rc;
        memcpy(x, d, n * step->dim * elem);
        if (xerr != NULL)
            memset(xerr, 0, n * step->dim * elem);
    } else {
        rc = f64 ? step->type.impl_f64(step, &c) : step->type.impl(step, &c);
        if (rc != SCORE_OK)
            return rc;
    }
    if (!state_finite(f64, n * step->dim, x))
        return score__error(SCORE_E_NUMERIC, fn, "step '%s' produced NaN or infinity",
                            step->type.name);
    return SCORE_OK;
}

/* The constant times of score_step_apply() in the last two per-row arrays. */
static int constant_times(score_step *step, size_t n, double t, double t_next)
{
    int rc = ensure_workspace(step, n);
    if (rc != SCORE_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        step->dbl[SCORE__STEP_NDBL - 2][i] = t;
        step->dbl[SCORE__STEP_NDBL - 1][i] = t_next;
    }
    return SCORE_OK;
}

int score_step_apply(score_step *step, score_sde *sde, double t, double t_next, size_t n,
                     float *x, float *xerr, const score_rng *rng, uint64_t counter)
{
    int rc;
    if (step == NULL || sde == NULL)
        return score__error(SCORE_E_INVAL, __func__, "step or sde is NULL");
    if (n == 0)
        return SCORE_OK;
    if ((rc = constant_times(step, n, t, t_next)) != SCORE_OK)
        return rc;
    return apply_common(__func__, step, sde, n, step->dbl[SCORE__STEP_NDBL - 2],
                        step->dbl[SCORE__STEP_NDBL - 1], 0, NULL, 0, x, xerr, rng, counter);
}

int score_step_apply_f64(score_step *step, score_sde *sde, double t, double t_next, size_t n,
                         double *x, double *xerr, const score_rng *rng, uint64_t counter)
{
    int rc;
    if (step == NULL || sde == NULL)
        return score__error(SCORE_E_INVAL, __func__, "step or sde is NULL");
    if (n == 0)
        return SCORE_OK;
    if ((rc = constant_times(step, n, t, t_next)) != SCORE_OK)
        return rc;
    return apply_common(__func__, step, sde, n, step->dbl[SCORE__STEP_NDBL - 2],
                        step->dbl[SCORE__STEP_NDBL - 1], 0, NULL, 1, x, xerr, rng, counter);
}

int score_step_apply_ex(score_step *step, score_sde *sde, size_t row0, size_t n,
                        const double *t, const double *t_next, float *x, float *xerr,
                        const score_rng *rng, uint64_t counter)
{
    return apply_common(__func__, step, sde, n, t, t_next, row0, NULL, 0, x, xerr, rng,
                        counter);
}

int score_step_apply_ex_f64(score_step *step, score_sde *sde, size_t row0, size_t n,
                            const double *t, const double *t_next, double *x, double *xerr,
                            const score_rng *rng, uint64_t counter)
{
    return apply_common(__func__, step, sde, n, t, t_next, row0, NULL, 1, x, xerr, rng,
                        counter);
}

int score__step_apply_idx(score_step *step, score_sde *sde, size_t row0, const size_t *idx,
                          size_t n, const double *t, const double *t_next, float *x,
                          float *xerr, const score_rng *rng, uint64_t counter)
{
    return apply_common("score_step_apply_ex", step, sde, n, t, t_next, row0, idx, 0, x, xerr,
                        rng, counter);
}

int score__step_apply_idx_f64(score_step *step, score_sde *sde, size_t row0, const size_t *idx,
                              size_t n, const double *t, const double *t_next, double *x,
                              double *xerr, const score_rng *rng, uint64_t counter)
{
    return apply_common("score_step_apply_ex_f64", step, sde, n, t, t_next, row0, idx, 1, x,
                        xerr, rng, counter);
}
