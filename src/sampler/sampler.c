/* Sampling drivers: fixed-grid predictor(-corrector) runs and adaptive PF-ODE solves. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/comm-priv.h"
#include "evolve-priv.h"
#include "known-priv.h"
#include "rng/rng-priv.h"
#include "sde/sde-priv.h"
#include "step-priv.h"
#include "libscore/evolve.h"
#include "libscore/sampler.h"

#define NPARAMS 31
/* Value of a parameter of a sampler (an lvalue). */
#define PF(s, id) SCORE__PARAM_F64((s)->params, SCORE_SAMPLER_PARAM_NUM_STEPS, id)
#define PI(s, id) SCORE__PARAM_I64((s)->params, SCORE_SAMPLER_PARAM_NUM_STEPS, id)
#define LOWER_ORDER_FINAL_BELOW 10

struct score_sampler {
    size_t dim;
    score_step *pred, *corr;
    score__param_val params[NPARAMS];
    double *ugrid;
    size_t ugrid_n;
    score_sampler_hook_fn hook;
    void *hook_ud;
    score__known known;   /* known coordinates (score_sampler_set_known()) */
    uint64_t nfe, steps, failed;
    /* workspace */
    size_t cap, grid_cap;
    double *grid, *ta, *tb, *zbuf;
    score_evolve *ev;
    score_control *ctrl;
    score_comm *comm; /* borrowed, or NULL (score_sampler_set_comm()) */
};

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
};


const score__param_desc *score__sampler_param_table(size_t *n_out);
const score__param_desc *score__sampler_param_table(size_t *n_out)
{
    *n_out = NPARAMS;
    return sampler_params;
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

static void free_ws(score_sampler *s)
{
    score__free(s->ta);
    score__free(s->tb);
    score__free(s->zbuf);
    s->ta = s->tb = s->zbuf = NULL;
    s->cap = 0;
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
    free_ws(s);
    score__free(s);
}

/* ---- parameters ------------------------------------------------------------------------ */

SCORE__DEFINE_PARAM_ACCESSORS(score_sampler, score_sampler, "sampler", sampler_params, NPARAMS)

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

/* ---- grid ------------------------------------------------------------------------------ */

/* Leading times of a grid of npts times that a partial run (strength s >= 0) drops: it keeps
 * the last floor(s K) of the K steps (a product within 1e-9 of an integer counts as it). */
static size_t strength_drop(const score_sampler *s, size_t npts)
{
    double st = PF(s, SCORE_SAMPLER_PARAM_STRENGTH);
    size_t K = npts - 1, keep;
    if (st < 0.0)
        return 0;
    keep = (size_t)floor(st * (double)K + 1e-9);
    return keep >= K ? 0 : K - keep;
}

/* Number of grid times and (when out != NULL, cap large enough) the times. */
static int build_grid(const char *fn, const score_sampler *s, const score_schedule *sched,
                      size_t cap, double *out, size_t *n_out)
{
    int denoise = PI(s, SCORE_SAMPLER_PARAM_FINAL_DENOISE) == 1;
    size_t N, npts;
    int rc;
    if (s->ugrid_n > 0) {
        rc = score_schedule_check_grid(sched, s->ugrid_n, s->ugrid);
        if (rc != SCORE_OK)
            return rc;
        *n_out = s->ugrid_n;
        if (out != NULL) {
            if (cap < s->ugrid_n)
                return score__error(SCORE_E_SHAPE, fn, "grid buffer of %zu < %zu", cap,
                                    s->ugrid_n);
            memcpy(out, s->ugrid, s->ugrid_n * sizeof(double));
        }
        return SCORE_OK;
    }
    N = (size_t)PI(s, SCORE_SAMPLER_PARAM_NUM_STEPS);
    if (N == 0) {
        size_t L = score_schedule_num_levels(sched);
        if (L == 0)
            return score__error(SCORE_E_INVAL, fn, "num_steps = 0 but the schedule has no levels");
        N = denoise ? L : (L > 1 ? L - 1 : 1);
    }
    npts = N + 1;
    *n_out = npts;
    if (out == NULL)
        return SCORE_OK;
    if (cap < npts)
        return score__error(SCORE_E_SHAPE, fn, "grid buffer of %zu < %zu", cap, npts);
    if (denoise)
        return score_schedule_time_grid(sched, (int)PI(s, SCORE_SAMPLER_PARAM_GRID), N,
                                        SCORE_GRID_APPEND_ZERO, out);
    return score_schedule_time_grid(sched, (int)PI(s, SCORE_SAMPLER_PARAM_GRID), npts, 0, out);
}

int score_sampler_get_grid(const score_sampler *s, const score_sde *sde, size_t len, double *out,
                           size_t *n_out)
{
    const score_schedule *sched;
    size_t full, drop;
    double *tmp;
    int rc;
    if (s == NULL || sde == NULL || n_out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "NULL argument");
    sched = score_sde_schedule(sde);
    rc = build_grid(__func__, s, sched, 0, NULL, &full);
    if (rc != SCORE_OK)
        return rc;
    drop = strength_drop(s, full);
    *n_out = full - drop;
    if (out == NULL)
        return SCORE_OK;
    if (drop == 0)
        return build_grid(__func__, s, sched, len, out, n_out);
    if (len < full - drop)
        return score__error(SCORE_E_SHAPE, __func__, "grid buffer of %zu < %zu", len,
                            full - drop);
    tmp = score__calloc(full, sizeof *tmp);
    if (tmp == NULL)
        return score__error(SCORE_E_NOMEM, __func__, "grid of %zu times", full);
    rc = build_grid(__func__, s, sched, full, tmp, &full);
    if (rc == SCORE_OK)
        memcpy(out, tmp + drop, (full - drop) * sizeof *out);
    score__free(tmp);
    return rc;
}

/* ---- run ------------------------------------------------------------------------------- */

static int ensure(score_sampler *s, size_t n, size_t npts)
{
    size_t nd;
    if (npts > s->grid_cap) {
        double *g = score__calloc(npts, sizeof(double));
        if (g == NULL)
            return score__error(SCORE_E_NOMEM, "score_sampler_run", "grid of %zu times", npts);
        score__free(s->grid);
        s->grid = g;
        s->grid_cap = npts;
    }
    if (n <= s->cap)
        return SCORE_OK;
    if (score__mul_size(n, s->dim, &nd) != 0)
        return score__error(SCORE_E_NOMEM, "score_sampler_run", "%zu rows overflow", n);
    free_ws(s);
    s->ta = score__calloc(n, sizeof(double));
    s->tb = score__calloc(n, sizeof(double));
    s->zbuf = score__calloc(nd, sizeof(double));
    if (s->ta == NULL || s->tb == NULL || s->zbuf == NULL) {
        free_ws(s);
        return score__error(SCORE_E_NOMEM, "score_sampler_run", "workspace for %zu rows", n);
    }
    s->cap = n;
    return SCORE_OK;
}

/* Pushes the driver's parameters to its steps. */
static int configure_steps(score_sampler *s, size_t nsteps, double sigma_last)
{
    score_step *steps[2] = {s->pred, s->corr};
    double gamma = nsteps > 0 ? PF(s, SCORE_SAMPLER_PARAM_CHURN) / (double)nsteps : 0.0;
    if (gamma > 0.41421356237309515)
        gamma = 0.41421356237309515;
    for (int k = 0; k < 2; k++) {
        score_step *st = steps[k];
        if (st == NULL)
            continue;
        SCORE__STEP_F64(st, SCORE_STEP_PARAM_ETA) = PF(s, SCORE_SAMPLER_PARAM_ETA);
        SCORE__STEP_F64(st, SCORE_STEP_PARAM_CHURN) = gamma;
        SCORE__STEP_F64(st, SCORE_STEP_PARAM_S_TMIN) = PF(s, SCORE_SAMPLER_PARAM_S_TMIN);
        SCORE__STEP_F64(st, SCORE_STEP_PARAM_S_TMAX) = PF(s, SCORE_SAMPLER_PARAM_S_TMAX);
        SCORE__STEP_F64(st, SCORE_STEP_PARAM_S_NOISE) = PF(s, SCORE_SAMPLER_PARAM_S_NOISE);
        SCORE__STEP_F64(st, SCORE_STEP_PARAM_SNR) = PF(s, SCORE_SAMPLER_PARAM_SNR);
        SCORE__STEP_F64(st, SCORE_STEP_PARAM_STEP_SIZE) = PF(s, SCORE_SAMPLER_PARAM_STEP_SIZE);
        SCORE__STEP_F64(st, SCORE_STEP_PARAM_STEP_LR) = PF(s, SCORE_SAMPLER_PARAM_STEP_LR);
        SCORE__STEP_F64(st, SCORE_STEP_PARAM_SIGMA_REF) = sigma_last;
        SCORE__STEP_I64(st, SCORE_STEP_PARAM_ORDER) = k == 0 ? PI(s, SCORE_SAMPLER_PARAM_ORDER) : 0;
        SCORE__STEP_I64(st, SCORE_STEP_PARAM_SNR_NORM) = PI(s, SCORE_SAMPLER_PARAM_SNR_NORM);
        SCORE__STEP_I64(st, SCORE_STEP_PARAM_DISC_N) = PI(s, SCORE_SAMPLER_PARAM_DISC_N);
        SCORE__STEP_I64(st, SCORE_STEP_PARAM_SUBSTEP) = PI(s, SCORE_SAMPLER_PARAM_SUBSTEP);
        SCORE__STEP_I64(st, SCORE_STEP_PARAM_DPMPP_3M_FORM) =
            PI(s, SCORE_SAMPLER_PARAM_DPMPP_3M_FORM);
        SCORE__STEP_I64(st, SCORE_STEP_PARAM_BROWNIAN) =
            k == 0 ? PI(s, SCORE_SAMPLER_PARAM_BROWNIAN) : 0;
        SCORE__STEP_F64(st, SCORE_STEP_PARAM_RESTART_SMIN) =
            PF(s, SCORE_SAMPLER_PARAM_RESTART_SMIN);
        SCORE__STEP_F64(st, SCORE_STEP_PARAM_RESTART_SMAX) =
            PF(s, SCORE_SAMPLER_PARAM_RESTART_SMAX);
        SCORE__STEP_I64(st, SCORE_STEP_PARAM_RESTART_K) = PI(s, SCORE_SAMPLER_PARAM_RESTART_K);
        SCORE__STEP_I64(st, SCORE_STEP_PARAM_RESTART_STEPS) =
            PI(s, SCORE_SAMPLER_PARAM_RESTART_STEPS);
        if (score_step_reset(st) != SCORE_OK)
            return SCORE_E_INVAL;
    }
    return SCORE_OK;
}

/* Re-raises the current error with the step context in front. */
static int step_error(int rc, const char *fn, size_t k, double t, double tn, const char *what)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s", score_last_error_message());
    return score__error(rc, fn, "%s at step %zu (t = %.9g -> %.9g): %s", what, k, t, tn, msg);
}

static void fill(double *a, size_t n, double v)
{
    for (size_t i = 0; i < n; i++)
        a[i] = v;
}

static int is_multistep(const score_step *st)
{
    int k = st->type.kind;
    return k == SCORE_STEP_DPMPP_2M || k == SCORE_STEP_DPMPP_3M || k == SCORE_STEP_DPMPP_2M_SDE ||
           k == SCORE_STEP_LMS || k == SCORE_STEP_DEIS || k == SCORE_STEP_UNIPC ||
           k == SCORE_STEP_UNIPC_BH1;
}

static int run_adaptive(score_sampler *s, score_sde *sde, const score_rng *rng, size_t row0,
                        size_t n, float *x, size_t npts, score_sampler_progress_fn progress,
                        void *user_data)
{
    const char *fn = "score_sampler_run";
    double t0 = s->grid[0], t1 = s->grid[npts - 1];
    int denoise = 0, rc;
    uint64_t attempts = 0, max_steps = (uint64_t)PI(s, SCORE_SAMPLER_PARAM_MAX_STEPS);
    if (t1 == 0.0) {
        denoise = 1;
        t1 = s->grid[npts - 2];
    }
    rc = score_control_set_f64(s->ctrl, SCORE_CONTROL_PARAM_RTOL, PF(s, SCORE_SAMPLER_PARAM_RTOL));
    if (rc == SCORE_OK)
        rc = score_control_set_f64(s->ctrl, SCORE_CONTROL_PARAM_ATOL,
                                   PF(s, SCORE_SAMPLER_PARAM_ATOL));
    if (rc == SCORE_OK)
        rc = score_control_set_f64(s->ctrl, SCORE_CONTROL_PARAM_H_MIN,
                                   PF(s, SCORE_SAMPLER_PARAM_H_MIN));
    if (rc == SCORE_OK)
        rc = score_control_set_i64(s->ctrl, SCORE_CONTROL_PARAM_NORM,
                                   PI(s, SCORE_SAMPLER_PARAM_ERROR_NORM));
    if (rc != SCORE_OK)
        return rc;
    fill(s->ta, n, t0);
    rc = score_evolve_init_ex(s->ev, PF(s, SCORE_SAMPLER_PARAM_H_INIT), row0, n, s->ta);
    if (rc != SCORE_OK)
        return rc;
    for (;;) {
        if (progress != NULL) {
            double tmax = 0.0;
            rc = score_evolve_get_t(s->ev, n, s->tb);
            if (rc != SCORE_OK)
                return rc;
            for (size_t i = 0; i < n; i++)
                tmax = fmax(tmax, s->tb[i]);
            if (progress((size_t)attempts, 0, tmax, user_data) != 0)
                return score__error(SCORE_E_CANCELLED, fn, "cancelled by the progress callback");
        }
        if (attempts >= max_steps)
            return score__error(SCORE_E_NOPROGRESS, fn, "max_steps = %llu attempts reached",
                                (unsigned long long)max_steps);
        s->known.counter = 1 + attempts;
        rc = score_evolve_apply(s->ev, s->ctrl, s->pred, sde, t1, n, x, rng);
        attempts++;
        if ((rc == SCORE_DONE || rc == SCORE_OK) && score__known_active(&s->known)) {
            int rk = score_evolve_get_t(s->ev, n, s->tb);
            if (rk == SCORE_OK)
                rk = score__known_impose(&s->known, fn, row0, NULL, n, -1.0, s->tb,
                                         s->known.counter, x);
            if (rk != SCORE_OK)
                return rk;
        }
        if (rc == SCORE_DONE)
            break;
        if (rc != SCORE_OK)
            return step_error(rc, fn, (size_t)attempts - 1, t0, t1, "adaptive solve failed");
    }
    s->steps = score_evolve_get_steps(s->ev);
    s->failed = score_evolve_get_failed_steps(s->ev);
    if (denoise) {
        s->known.counter = 1 + attempts;
        rc = score__evolve_step(s->ev, s->pred, sde, 0.0, n, x, NULL, 0, 1);
        if (rc != SCORE_OK)
            return step_error(rc, fn, (size_t)s->steps, t1, 0.0, "final denoise failed");
        s->steps++;
    }
    if (s->hook != NULL && s->hook((size_t)s->steps, t0, denoise ? 0.0 : t1, row0, n, s->dim, x,
                                   s->hook_ud) != 0)
        return score__error(SCORE_E_CALLBACK, fn, "the per-step hook returned non-zero");
    return SCORE_OK;
}

/* Fixed-grid run through evolve: at each grid point k the corrector steps (noise slots
 * 1 .. m), then one predictor step to the next point (slot 0). */
static int run_fixed(score_sampler *s, score_sde *sde, const score_rng *rng, size_t row0,
                     size_t n, float *x, size_t npts, score_sampler_progress_fn progress,
                     void *user_data)
{
    const char *fn = "score_sampler_run";
    size_t K = npts - 1;
    size_t m = s->corr != NULL ? (size_t)PI(s, SCORE_SAMPLER_PARAM_CORRECTOR_STEPS) : 0;
    int lof = PI(s, SCORE_SAMPLER_PARAM_LOWER_ORDER_FINAL) == 1 && K < LOWER_ORDER_FINAL_BELOW &&
              is_multistep(s->pred);
    int64_t cap0 = PI(s, SCORE_SAMPLER_PARAM_ORDER);
    int order = s->pred->type.order;
    int known = score__known_active(&s->known);
    int rc;
    if (cap0 > 0 && cap0 < order)
        order = (int)cap0;
    fill(s->ta, n, s->grid[0]);
    rc = score_evolve_init_ex(s->ev, 0.0, row0, n, s->ta);
    if (rc == SCORE_OK)
        rc = score__evolve_set_noise(s->ev, 1, (uint64_t)m + 1);
    if (rc != SCORE_OK)
        return rc;
    for (size_t k = 0; k <= K; k++) {
        double t = s->grid[k];
        if (m > 0 && t > 0.0) {
            double tn = k < K ? s->grid[k + 1] : t;
            for (size_t j = 0; j < m; j++) {
                /* the update's noise counter, as the step's (evolve-priv.h) */
                s->known.counter = 1 + (uint64_t)k * ((uint64_t)m + 1) + 1 + (uint64_t)j;
                rc = score__evolve_step(s->ev, s->corr, sde, tn, n, x, rng, 1 + (uint64_t)j, 0);
                if (rc != SCORE_OK)
                    return step_error(rc, fn, k, t, t, "corrector failed");
                if (known && (rc = score__known_impose(&s->known, fn, row0, NULL, n, t, NULL,
                                                       s->known.counter, x)) != SCORE_OK)
                    return rc;
            }
        }
        if (k == K)
            break;
        if (progress != NULL && progress(k, K, t, user_data) != 0)
            return score__error(SCORE_E_CANCELLED, fn, "cancelled by the progress callback at step %zu", k);
        if (lof) {
            size_t left = K - k;
            SCORE__STEP_I64(s->pred, SCORE_STEP_PARAM_ORDER) =
                (int64_t)((size_t)order < left ? (size_t)order : left);
        }
        s->known.counter = 1 + (uint64_t)k * ((uint64_t)m + 1);
        rc = score__evolve_step(s->ev, s->pred, sde, s->grid[k + 1], n, x, rng, 0, 1);
        if (rc != SCORE_OK)
            return step_error(rc, fn, k, t, s->grid[k + 1], "predictor failed");
        s->steps++;
        if (known && (rc = score__known_impose(&s->known, fn, row0, NULL, n, s->grid[k + 1],
                                               NULL, s->known.counter, x)) != SCORE_OK)
            return rc;
        if (s->hook != NULL &&
            s->hook(k, t, s->grid[k + 1], row0, n, s->dim, x, s->hook_ud) != 0)
            return score__error(SCORE_E_CALLBACK, fn, "the per-step hook returned non-zero at step %zu", k);
    }
    return SCORE_OK;
}

/* The run's start values: x_init (checked, copied to out), x_init noised by the forward
 * process to the grid's first time (noised = 1: SDEdit, alpha(t0) x_init + sigma(t0) z with
 * the prior draw's z) or a prior draw at the grid's first time (std of the prior at T, else of
 * the noised data under a unit-variance assumption). */
static int start_values(score_sampler *s, const score_schedule *sched, size_t row0, size_t n,
                        const float *x_init, int noised, float *out, const score_rng *rng)
{
    const char *fn = "score_sampler_run";
    size_t nd = n * s->dim;
    int rc;
    if (x_init != NULL && !score__all_finite_f32(nd, x_init))
        return score__error(SCORE_E_NUMERIC, fn, "x_init holds NaN or infinity");
    if (x_init != NULL && noised) {
        double t0 = s->grid[0], a0, s0;
        rc = score_schedule_alpha_sigma(sched, 1, &t0, &a0, &s0);
        if (rc == SCORE_OK)
            rc = score_rng_fill_normal_f64(rng, row0, n, 0, s->dim, s->zbuf);
        if (rc != SCORE_OK)
            return rc;
        for (size_t q = 0; q < nd; q++)
            out[q] = (float)(a0 * (double)x_init[q] + s0 * s->zbuf[q]);
    } else if (x_init != NULL) {
        if (x_init != out)
            memmove(out, x_init, nd * sizeof(float));
    } else {
        double t0 = s->grid[0], T, a0, s0, sd;
        rc = score_schedule_get_f64(sched, SCORE_SCHEDULE_PARAM_T, &T);
        if (rc == SCORE_OK)
            rc = score_schedule_alpha_sigma(sched, 1, &t0, &a0, &s0);
        if (rc != SCORE_OK)
            return rc;
        if (t0 == T) {
            rc = score_schedule_prior_std(sched, &sd);
            if (rc != SCORE_OK)
                return rc;
        } else if (score_schedule_is_variance_exploding(sched) == 1) {
            sd = s0;
        } else {
            sd = sqrt(a0 * a0 + s0 * s0);
        }
        rc = score_rng_fill_normal_f64(rng, row0, n, 0, s->dim, s->zbuf);
        if (rc != SCORE_OK)
            return rc;
        for (size_t q = 0; q < nd; q++)
            out[q] = (float)(sd * s->zbuf[q]);
    }
    return SCORE_OK;
}

static int run_local(score_sampler *s, score_sde *sde, size_t row0, size_t n,
                     const float *x_init, float *out, const score_rng *rng,
                     score_sampler_progress_fn progress, void *user_data)
{
    const char *fn = "score_sampler_run";
    const score_schedule *sched;
    size_t npts = 0, dim;
    double sigma_last = 0.0;
    uint64_t nfe0;
    size_t drop;
    int rc, adaptive, needs_rng, sdedit, known;
    const float *x_start;
    if (s == NULL || sde == NULL)
        return score__error(SCORE_E_INVAL, fn, "sampler or sde is NULL");
    s->nfe = s->steps = s->failed = 0;
    if (n == 0)
        return SCORE_OK;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, fn, "out is NULL");
    dim = s->dim;
    if (score_sde_dim(sde) != dim)
        return score__error(SCORE_E_SHAPE, fn, "sde dimension %zu != sampler dimension %zu",
                            score_sde_dim(sde), dim);
    if ((uint64_t)row0 > ((uint64_t)1 << 32) || (uint64_t)n > ((uint64_t)1 << 32) - (uint64_t)row0)
        return score__error(SCORE_E_RANGE, fn, "rows %zu + %zu exceed 2^32", row0, n);
    sched = score_sde_schedule(sde);
    rc = build_grid(fn, s, sched, 0, NULL, &npts);
    if (rc != SCORE_OK)
        return rc;
    rc = ensure(s, n, npts);
    if (rc != SCORE_OK)
        return rc;
    rc = build_grid(fn, s, sched, s->grid_cap, s->grid, &npts);
    if (rc != SCORE_OK)
        return rc;
    /* partial sampling (SDEdit): the last floor(strength K) steps from the noised x_init */
    sdedit = PF(s, SCORE_SAMPLER_PARAM_STRENGTH) >= 0.0;
    if (sdedit && x_init == NULL)
        return score__error(SCORE_E_INVAL, fn,
                            "strength = %g (partial sampling) needs the data in x_init",
                            PF(s, SCORE_SAMPLER_PARAM_STRENGTH));
    known = score__known_active(&s->known);
    if (known && (rc = score__known_begin(&s->known, fn, rng, sched, row0, n)) != SCORE_OK)
        return rc;
    drop = strength_drop(s, npts);
    if (sdedit && drop == npts - 1) {
        /* no step left: the data itself */
        if (!score__all_finite_f32(n * dim, x_init))
            return score__error(SCORE_E_NUMERIC, fn, "x_init holds NaN or infinity");
        if (x_init != out)
            memmove(out, x_init, n * dim * sizeof(float));
        if (known)
            score__known_finish(&s->known, n, out);
        return SCORE_OK;
    }
    if (drop > 0) {
        memmove(s->grid, s->grid + drop, (npts - drop) * sizeof(double));
        npts -= drop;
    }
    /* strength 1 is unconditional sampling: the prior draw, the data unused */
    x_start = sdedit && drop == 0 ? NULL : x_init;
    {
        /* marginal std at the last positive grid time (ALD's sigma_L) */
        double tl = s->grid[npts - 1] > 0.0 ? s->grid[npts - 1] : s->grid[npts - 2], al;
        rc = score_schedule_alpha_sigma(sched, 1, &tl, &al, &sigma_last);
        if (rc != SCORE_OK)
            return rc;
    }
    rc = configure_steps(s, npts - 1, sigma_last);
    if (rc != SCORE_OK)
        return score__error(rc, fn, "cannot reset the steps");
    adaptive = PI(s, SCORE_SAMPLER_PARAM_ADAPTIVE) == 1 &&
               (s->pred->type.flags & SCORE_STEP_FLAG_ERROR_ESTIMATE) != 0 &&
               s->pred->type.err_order > 0 && !score__step_needs_noise(s->pred) &&
               (npts > 2 || s->grid[npts - 1] > 0.0);
    needs_rng = x_start == NULL || sdedit || known ||
                (!adaptive && (score__step_needs_noise(s->pred) ||
                               (s->corr != NULL && PI(s, SCORE_SAMPLER_PARAM_CORRECTOR_STEPS) > 0 &&
                                score__step_needs_noise(s->corr))));
    if (needs_rng && rng == NULL)
        return score__error(SCORE_E_INVAL, fn, "rng is NULL but the run draws noise%s",
                            x_start == NULL ? " (prior draw)"
                            : sdedit ? " (partial sampling)"
                            : known ? " (forward-process noise of the known coordinates)" : "");
    rc = start_values(s, sched, row0, n, x_start, sdedit, out, rng);
    if (rc == SCORE_OK && known)
        rc = score__known_impose(&s->known, fn, row0, NULL, n, s->grid[0], NULL, 0, out);
    if (rc != SCORE_OK)
        return rc;
    nfe0 = score_sde_nfe(sde);
    if (known)
        score__sde_set_input(sde, score__known_input, &s->known);
    if (adaptive)
        rc = run_adaptive(s, sde, rng, row0, n, out, npts, progress, user_data);
    else
        rc = run_fixed(s, sde, rng, row0, n, out, npts, progress, user_data);
    if (known) {
        score__sde_set_input(sde, NULL, NULL);
        if (rc == SCORE_OK)
            score__known_finish(&s->known, n, out);
    }
    s->nfe = score_sde_nfe(sde) - nfe0;
    return rc;
}

int score_sampler_set_comm(score_sampler *s, score_comm *comm)
{
    if (s == NULL)
        return score__error(SCORE_E_INVAL, __func__, "s is NULL");
    s->comm = comm;
    return SCORE_OK;
}

/* With a communicator: this rank's contiguous share of the rows (run with their global row
 * numbers, so they are those rows of a one-process run), the status agreed, then every rank
 * receives all n rows. */
int score_sampler_run_ex(score_sampler *s, score_sde *sde, size_t row0, size_t n,
                         const float *x_init, float *out, const score_rng *rng,
                         score_sampler_progress_fn progress, void *user_data)
{
    const char *fn = "score_sampler_run";
    size_t lo = 0, hi = 0, dim;
    int rc;
    if (s == NULL || s->comm == NULL || n == 0)
        return run_local(s, sde, row0, n, x_init, out, rng, progress, user_data);
    dim = s->dim;
    if (out == NULL)
        rc = score__error(SCORE_E_INVAL, fn, "out is NULL");
    else {
        score__comm_share(n, s->comm->rank, s->comm->size, &lo, &hi);
        rc = run_local(s, sde, row0 + lo, hi - lo, x_init ? x_init + lo * dim : NULL,
                       out + lo * dim, rng, progress, user_data);
    }
    if ((rc = score__comm_conclude(s->comm, rc, fn)) != SCORE_OK)
        return rc;
    return score__comm_allgather_items(s->comm, fn, n, dim * sizeof(float), out + lo * dim, out);
}

int score_sampler_run(score_sampler *s, score_sde *sde, size_t n, const float *x_init,
                      float *out, const score_rng *rng, score_sampler_progress_fn progress,
                      void *user_data)
{
    return score_sampler_run_ex(s, sde, 0, n, x_init, out, rng, progress, user_data);
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
