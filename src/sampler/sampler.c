/* Sampling drivers: the object, its parameters, hook, known coordinates and counters (the
 * grid and the runs are in sampler-run.c). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sampler-priv.h"

static const score__param_desc sampler_params[NPARAMS] = {
    {SCORE_SAMPLER_PARAM_NUM_STEPS, "num_steps", SCORE_PARAM_I64, 0, 1e8, 20,
     "number of steps; 0 = the schedule's levels"},
    {SCORE_SAMPLER_PARAM_GRID, "grid", SCORE_PARAM_I64, 1, 6, SCORE_GRID_UNIFORM_T,
     "time-grid kind (SCORE_GRID_*)"},
    {SCORE_SAMPLER_PARAM_FINAL_DENOISE, "final_denoise", SCORE_PARAM_I64, 0, 1, 0,
     "1 = the last step goes to t = 0 (data prediction)"},
    {SCORE_SAMPLER_PARAM_LOWER_ORDER_FINAL, "lower_order_final", SCORE_PARAM_I64, 0, 1, 1,
     "lower-order final multistep steps for runs of fewer than 10 steps"},
    {SCORE_SAMPLER_PARAM_CORRECTOR_STEPS, "corrector_steps", SCORE_PARAM_I64, 0, 1e6, 1,
     "corrector steps per grid point"},
    {SCORE_SAMPLER_PARAM_SNR, "snr", SCORE_PARAM_F64, 1e-12, 1e6, 0.16,
     "Langevin / ALD signal-to-noise ratio"},
    {SCORE_SAMPLER_PARAM_ETA, "eta", SCORE_PARAM_F64, -1, 1000, -1,
     "eta of ddim / euler-ancestral / dpmpp-2m-sde; -1 = type default"},
    {SCORE_SAMPLER_PARAM_CHURN, "churn", SCORE_PARAM_F64, 0, 1e6, 0, "EDM S_churn"},
    {SCORE_SAMPLER_PARAM_S_TMIN, "s_tmin", SCORE_PARAM_F64, 0, 1e30, 0, "EDM S_tmin"},
    {SCORE_SAMPLER_PARAM_S_TMAX, "s_tmax", SCORE_PARAM_F64, 0, 1e30, 1e30, "EDM S_tmax"},
    {SCORE_SAMPLER_PARAM_S_NOISE, "s_noise", SCORE_PARAM_F64, 0, 100, 1, "S_noise"},
    {SCORE_SAMPLER_PARAM_STEP_SIZE, "step_size", SCORE_PARAM_F64, 0, 1e12, 0,
     "fixed Langevin step size; 0 = SNR rule"},
    {SCORE_SAMPLER_PARAM_STEP_LR, "step_lr", SCORE_PARAM_F64, 0, 1e12, 0,
     "ALD epsilon; 0 = score_sde rule"},
    SCORE__PARAM_ROW_RTOL(SCORE_SAMPLER_PARAM_RTOL, "adaptive relative tolerance"),
    SCORE__PARAM_ROW_ATOL(SCORE_SAMPLER_PARAM_ATOL, "adaptive absolute tolerance"),
    SCORE__PARAM_ROW_H_INIT(SCORE_SAMPLER_PARAM_H_INIT),
    SCORE__PARAM_ROW_H_MIN(SCORE_SAMPLER_PARAM_H_MIN),
    SCORE__PARAM_ROW_MAX_STEPS(SCORE_SAMPLER_PARAM_MAX_STEPS,
                               "largest number of adaptive attempts"),
    {SCORE_SAMPLER_PARAM_ADAPTIVE, "adaptive", SCORE_PARAM_I64, 0, 1, 1,
     "1 = adaptive solve for predictors with an error estimate"},
    {SCORE_SAMPLER_PARAM_SNR_NORM, "snr_norm", SCORE_PARAM_I64, 0, 2, 2,
     "Langevin SNR rule: 0 batch-mean norms (score_sde), 1 row norms, 2 noise level"},
    {SCORE_SAMPLER_PARAM_DISC_N, "disc_n", SCORE_PARAM_I64, 0, 1e6, 0,
     "discretization N of reverse-diffusion / ancestral; 0 = exact"},
    {SCORE_SAMPLER_PARAM_ORDER, "order", SCORE_PARAM_I64, 0, 3, 0,
     "order cap of the predictor; 0 = the type's order"},
    {SCORE_SAMPLER_PARAM_SUBSTEP, "substep", SCORE_PARAM_I64, 0, 1, 0,
     "intermediate points of dpmpp-2s / dpmpp-3s: 0 uniform in lambda, 1 uniform in t"},
    {SCORE_SAMPLER_PARAM_DPMPP_3M_FORM, "dpmpp_3m_form", SCORE_PARAM_I64, 0, 1, 0,
     "dpmpp-3m coefficients: 0 third order, 1 the published form"},
    {SCORE_SAMPLER_PARAM_STRENGTH, "strength", SCORE_PARAM_F64, -1, 1, -1,
     "SDEdit: x_init is data, noised to the grid's last floor(strength N) steps; -1 = off"},
    {SCORE_SAMPLER_PARAM_BROWNIAN, "brownian", SCORE_PARAM_I64, 0, 1, 0,
     "1 = the predictor's noise as increments of one Brownian path per (seed, row)"},
    {SCORE_SAMPLER_PARAM_RESTART_SMIN, "restart_smin", SCORE_PARAM_F64, 1e-12, 1e30, 0.1,
     "restart interval lower end in s = sigma / alpha"},
    {SCORE_SAMPLER_PARAM_RESTART_SMAX, "restart_smax", SCORE_PARAM_F64, 1e-12, 1e30, 2.0,
     "restart interval upper end in s"},
    {SCORE_SAMPLER_PARAM_RESTART_K, "restart_k", SCORE_PARAM_I64, 0, 100, 2,
     "number of restart cycles"},
    {SCORE_SAMPLER_PARAM_RESTART_STEPS, "restart_steps", SCORE_PARAM_I64, 1, 10000, 9,
     "Heun steps of one restart cycle"},
    SCORE__PARAM_ROW_NORM(SCORE_SAMPLER_PARAM_ERROR_NORM),
    {SCORE_SAMPLER_PARAM_PRECISION, "precision", SCORE_PARAM_I64, 32, 64, 32,
     "state precision of the runs: 32 float, 64 double (score_sampler_run_f64: always 64)"},
    {SCORE_SAMPLER_PARAM_PARTICLES, "particles", SCORE_PARAM_I64, 1, 1e6, 1,
     "particles per row of twisted sequential Monte Carlo; 1 = off"},
    {SCORE_SAMPLER_PARAM_ESS_THRESHOLD, "ess_threshold", SCORE_PARAM_F64, 0, 1, 0.5,
     "SMC: a row resamples when its effective sample size < threshold * particles"},
    {SCORE_SAMPLER_PARAM_ORDER_SEQUENCE, "order_sequence", SCORE_PARAM_I64, 0, 2, 0,
     "singlestep DPM-Solver order sequence for a budget of num_steps evaluations: 0 off, "
     "1 ends on the grid of K steps, 2 on the grid of num_steps steps"},
    {SCORE_SAMPLER_PARAM_START_CORRECTION, "start_correction", SCORE_PARAM_I64, 0, 1, 0,
     "dpmpp-2m / dpmpp-3m: 1 = the first step corrected at the second (no extra evaluation)"},
};


const score__param_desc *score__sampler_param_table(size_t *n_out);
const score__param_desc *score__sampler_param_table(size_t *n_out)
{
    *n_out = NPARAMS;
    return sampler_params;
}

int64_t *score__sampler_pi(score_sampler *s, int id)
{
    int idx = score__param_index(sampler_params, NPARAMS, id);
    return &s->params[idx < 0 ? 0 : idx].i;
}

int score__sampler_singlestep(const score_step *st)
{
    int k = st->type.kind;
    return k == SCORE_STEP_DPM_SOLVER_1 || k == SCORE_STEP_DPM_SOLVER_2 ||
           k == SCORE_STEP_DPM_SOLVER_3 || k == SCORE_STEP_DPMPP_2S || k == SCORE_STEP_DPMPP_3S;
}

/* ---- lifecycle ------------------------------------------------------------------------- */

int score_sampler_new(score_sampler **out, const score_step_type *predictor,
                      const score_step_type *corrector, size_t dim)
{
    score_sampler *s;
    int rc;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (predictor == NULL)
        return score__error(SCORE_E_INVAL, __func__, "predictor is NULL");
    if (score__check_dim(__func__, dim) != SCORE_OK)
        return SCORE_E_RANGE;
    s = score__calloc(1, sizeof *s);
    if (s == NULL)
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    s->dim = dim;
    score__param_defaults(sampler_params, NPARAMS, s->params);
    rc = score_step_new(&s->pred, predictor, dim);
    if (rc == SCORE_OK && corrector != NULL)
        rc = score_step_new(&s->corr, corrector, dim);
    if (rc == SCORE_OK)
        rc = score_evolve_new(&s->ev, dim);
    if (rc == SCORE_OK)
        rc = score_control_new(&s->ctrl);
    if (rc != SCORE_OK) {
        score_sampler_free(s);
        return rc;
    }
    *out = s;
    return SCORE_OK;
}

int score_sampler_new_preset(score_sampler **out, int preset, size_t dim)
{
    const score_step_type *p, *c = NULL;
    score_sampler *s;
    int rc;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    switch (preset) {
    case SCORE_SAMPLER_PRESET_PC:
        p = score_step_type_get(SCORE_STEP_REVERSE_DIFFUSION);
        c = score_step_type_get(SCORE_STEP_LANGEVIN);
        break;
    case SCORE_SAMPLER_PRESET_ODE: p = score_step_type_get(SCORE_STEP_DOPRI5); break;
    case SCORE_SAMPLER_PRESET_NCSN:
    case SCORE_SAMPLER_PRESET_NCSNV2:
        p = score_step_type_get(SCORE_STEP_NONE);
        c = score_step_type_get(SCORE_STEP_ALD);
        break;
    case SCORE_SAMPLER_PRESET_EDM: p = score_step_type_get(SCORE_STEP_HEUN); break;
    case SCORE_SAMPLER_PRESET_DPMPP_2M: p = score_step_type_get(SCORE_STEP_DPMPP_2M); break;
    default: return score__error(SCORE_E_UNSUPPORTED, __func__, "unknown preset %d", preset);
    }
    rc = score_sampler_new(&s, p, c, dim);
    if (rc != SCORE_OK)
        return rc;
    switch (preset) {
    case SCORE_SAMPLER_PRESET_PC:
        PI(s, SCORE_SAMPLER_PARAM_NUM_STEPS) = 1000;
        PI(s, SCORE_SAMPLER_PARAM_FINAL_DENOISE) = 1;
        break;
    case SCORE_SAMPLER_PRESET_NCSN:
        PI(s, SCORE_SAMPLER_PARAM_NUM_STEPS) = 0;
        PF(s, SCORE_SAMPLER_PARAM_STEP_LR) = 2e-5;
        PI(s, SCORE_SAMPLER_PARAM_CORRECTOR_STEPS) = 100;
        break;
    case SCORE_SAMPLER_PRESET_NCSNV2:
        PI(s, SCORE_SAMPLER_PARAM_NUM_STEPS) = 0;
        PI(s, SCORE_SAMPLER_PARAM_FINAL_DENOISE) = 1;
        PF(s, SCORE_SAMPLER_PARAM_STEP_LR) = 6.2e-6;
        PI(s, SCORE_SAMPLER_PARAM_CORRECTOR_STEPS) = 5;
        break;
    case SCORE_SAMPLER_PRESET_EDM:
        PI(s, SCORE_SAMPLER_PARAM_NUM_STEPS) = 18;
        PI(s, SCORE_SAMPLER_PARAM_GRID) = SCORE_GRID_KARRAS;
        PI(s, SCORE_SAMPLER_PARAM_FINAL_DENOISE) = 1;
        break;
    case SCORE_SAMPLER_PRESET_DPMPP_2M:
        PI(s, SCORE_SAMPLER_PARAM_NUM_STEPS) = 20;
        PI(s, SCORE_SAMPLER_PARAM_GRID) = SCORE_GRID_UNIFORM_LAMBDA;
        break;
    default: break;
    }
    *out = s;
    return SCORE_OK;
}


void score_sampler_free(score_sampler *s)
{
    if (s == NULL)
        return;
    score_step_free(s->pred);
    score_step_free(s->corr);
    score_evolve_free(s->ev);
    score_control_free(s->ctrl);
    score__free(s->ugrid);
    score__free(s->grid);
    score__known_free(&s->known);
    score__smc_free(&s->smc);
    score__sampler_free_ws(s);
    score__free(s);
}

/* ---- parameters ------------------------------------------------------------------------ */

SCORE__DEFINE_PARAM_ACCESSORS(score__sampler_par, score_sampler, "sampler", sampler_params,
                              NPARAMS)

int score_sampler_set_f64(score_sampler *s, int param, double value)
{
    return score__sampler_par_set_f64(s, param, value);
}

/* precision: 32 or 64, and 64 only with a predictor that has a double state; order_sequence
 * only with a singlestep predictor (the old value stays). */
int score_sampler_set_i64(score_sampler *s, int param, int64_t value)
{
    int rc;
    if (s != NULL && param == SCORE_SAMPLER_PARAM_PRECISION &&
        (rc = score__step_check_precision(__func__, &s->pred->type, value)) != SCORE_OK)
        return rc;
    if (s != NULL && param == SCORE_SAMPLER_PARAM_ORDER_SEQUENCE && value != 0 &&
        !score__sampler_singlestep(s->pred))
        return score__error(SCORE_E_UNSUPPORTED, __func__,
                            "order_sequence needs a singlestep predictor (dpm-solver-1/2/3, "
                            "dpmpp-2s, dpmpp-3s), not '%s'", s->pred->type.name);
    return score__sampler_par_set_i64(s, param, value);
}

int score_sampler_get_f64(const score_sampler *s, int param, double *out)
{
    return score__sampler_par_get_f64(s, param, out);
}

int score_sampler_get_i64(const score_sampler *s, int param, int64_t *out)
{
    return score__sampler_par_get_i64(s, param, out);
}

int score_sampler_set_grid(score_sampler *s, size_t n, const double *grid)
{
    double *g;
    if (s == NULL)
        return score__error(SCORE_E_INVAL, __func__, "sampler is NULL");
    if (n == 0) {
        score__free(s->ugrid);
        s->ugrid = NULL;
        s->ugrid_n = 0;
        return SCORE_OK;
    }
    if (grid == NULL)
        return score__error(SCORE_E_INVAL, __func__, "grid is NULL with n = %zu", n);
    if (n < 2)
        return score__error(SCORE_E_INVAL, __func__, "a grid needs at least 2 times");
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(grid[i]) || grid[i] < 0.0)
            return score__error(SCORE_E_INVAL, __func__, "grid[%zu] = %g is not a time >= 0", i,
                                grid[i]);
        if (i > 0 && !(grid[i] < grid[i - 1]))
            return score__error(SCORE_E_INVAL, __func__,
                                "grid not strictly decreasing at %zu (%g after %g)", i, grid[i],
                                grid[i - 1]);
    }
    g = score__calloc(n, sizeof *g);
    if (g == NULL)
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    memcpy(g, grid, n * sizeof *g);
    score__free(s->ugrid);
    s->ugrid = g;
    s->ugrid_n = n;
    return SCORE_OK;
}

int score_sampler_set_hook(score_sampler *s, score_sampler_hook_fn fn, void *user_data)
{
    if (s == NULL)
        return score__error(SCORE_E_INVAL, __func__, "sampler is NULL");
    s->hook = fn;
    s->hook_ud = user_data;
    return SCORE_OK;
}

int score_sampler_set_known(score_sampler *s, size_t n_rows, const uint8_t *mask,
                            const float *values)
{
    if (s == NULL)
        return score__error(SCORE_E_INVAL, __func__, "sampler is NULL");
    return score__known_set(&s->known, __func__, s->dim, n_rows, mask, values);
}

uint64_t score_sampler_get_nfe(const score_sampler *s)
{
    return s == NULL ? 0 : s->nfe;
}

uint64_t score_sampler_get_steps(const score_sampler *s)
{
    return s == NULL ? 0 : s->steps;
}

uint64_t score_sampler_get_failed_steps(const score_sampler *s)
{
    return s == NULL ? 0 : s->failed;
}
