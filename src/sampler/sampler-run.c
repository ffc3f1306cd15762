/* Sampling drivers: the grid of a run and the runs themselves, fixed-grid predictor(-corrector)
 * runs and adaptive PF-ODE solves, split over the ranks of a communicator. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rng/rng-priv.h"
#include "sampler-priv.h"
#include "sde/sde-priv.h"

void score__sampler_free_ws(score_sampler *s)
{
    score__free(s->ta);
    score__free(s->tb);
    score__free(s->zbuf);
    score__free(s->xd);
    s->ta = s->tb = s->zbuf = s->xd = NULL;
    s->cap = 0;
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

/* ---- DPM-Solver's order sequence (SCORE_SAMPLER_PARAM_ORDER_SEQUENCE) -------------------- */

/* The largest order k of the sequence: the predictor's, capped by SCORE_SAMPLER_PARAM_ORDER. */
static int seq_max_order(const score_sampler *s)
{
    int k = s->pred->type.order;
    int64_t cap = PI(s, SCORE_SAMPLER_PARAM_ORDER);
    return (cap > 0 && cap < k) ? (int)cap : k;
}

/* Number of steps K for a budget of B >= 1 evaluations and order k. */
static size_t seq_steps(int k, size_t B)
{
    return k >= 3 ? B / 3 + 1 : k == 2 ? B / 2 + B % 2 : B;
}

/* Order of step j (0 .. K - 1): k = 3: (K - 2) x 3 then 2, 1 when 3 | B, else (K - 1) x 3 then
 * B mod 3; k = 2: 2 but a last 1 for odd B; k = 1: 1. */
static int seq_order(int k, size_t B, size_t j)
{
    if (k >= 3) {
        size_t q = B / 3, r = B % 3;
        if (r != 0)
            return j < q ? 3 : (int)r;
        return j + 1 < q ? 3 : j + 1 == q ? 2 : 1;
    }
    if (k == 2)
        return j < B / 2 ? 2 : 1;
    return 1;
}

/* The step ends of an order-sequence run of budget B into out (K + 1 times, then 0 with the
 * final denoise): the grid of K steps, or (mode 2) the points of the grid of B steps at the
 * cumulative orders. */
static int seq_grid(const char *fn, const score_sampler *s, const score_schedule *sched,
                    size_t B, int denoise, double *out)
{
    int kind = (int)PI(s, SCORE_SAMPLER_PARAM_GRID), k = seq_max_order(s);
    size_t K = seq_steps(k, B), c = 0;
    double *fine;
    int rc;
    if (PIX(s, SCORE_SAMPLER_PARAM_ORDER_SEQUENCE) == 1) {
        rc = score_schedule_time_grid(sched, kind, K + 1, 0, out);
    } else {
        fine = score__calloc(B + 1, sizeof *fine);
        if (fine == NULL)
            return score__error(SCORE_E_NOMEM, fn, "grid of %zu times", B + 1);
        rc = score_schedule_time_grid(sched, kind, B + 1, 0, fine);
        if (rc == SCORE_OK) {
            out[0] = fine[0];
            for (size_t j = 0; j < K; j++) {
                c += (size_t)seq_order(k, B, j);
                out[j + 1] = fine[c];
            }
        }
        score__free(fine);
    }
    if (rc == SCORE_OK && denoise)
        out[K + 1] = 0.0;
    return rc;
}

/* The run's number of steps N (the budget of an order-sequence run): num_steps, or with 0 the
 * schedule's levels; 0 when there are none. */
static size_t run_steps(const score_sampler *s, const score_schedule *sched)
{
    size_t N = (size_t)PI(s, SCORE_SAMPLER_PARAM_NUM_STEPS), L;
    if (N > 0)
        return N;
    L = score_schedule_num_levels(sched);
    if (L == 0)
        return 0;
    return PI(s, SCORE_SAMPLER_PARAM_FINAL_DENOISE) == 1 ? L : (L > 1 ? L - 1 : 1);
}

/* Number of grid times and (when out != NULL, cap large enough) the times. */
static int build_grid(const char *fn, const score_sampler *s, const score_schedule *sched,
                      size_t cap, double *out, size_t *n_out)
{
    int denoise = PI(s, SCORE_SAMPLER_PARAM_FINAL_DENOISE) == 1;
    int seq = PIX(s, SCORE_SAMPLER_PARAM_ORDER_SEQUENCE) != 0;
    size_t N, npts;
    int rc;
    if (seq && !score__sampler_singlestep(s->pred))
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "order_sequence needs a singlestep predictor, not '%s'",
                            s->pred->type.name);
    if (seq && PF(s, SCORE_SAMPLER_PARAM_STRENGTH) >= 0.0)
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "order_sequence is not supported with partial sampling (strength)");
    if (seq && s->ugrid_n > 0)
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "order_sequence takes its steps from the schedule's grid: not "
                            "supported with a user grid (score_sampler_set_grid)");
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
    N = run_steps(s, sched);
    if (N == 0)
        return score__error(SCORE_E_INVAL, fn, "num_steps = 0 but the schedule has no levels");
    npts = seq ? seq_steps(seq_max_order(s), N) + 1 + (size_t)denoise : N + 1;
    *n_out = npts;
    if (out == NULL)
        return SCORE_OK;
    if (cap < npts)
        return score__error(SCORE_E_SHAPE, fn, "grid buffer of %zu < %zu", cap, npts);
    if (seq)
        return seq_grid(fn, s, sched, N, denoise, out);
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

static int ensure(score_sampler *s, size_t n, size_t npts, int want_xd)
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
    if (n <= s->cap && (!want_xd || s->xd != NULL))
        return SCORE_OK;
    if (n < s->cap)
        n = s->cap;
    if (score__mul_size(n, s->dim, &nd) != 0)
        return score__error(SCORE_E_NOMEM, "score_sampler_run", "%zu rows overflow", n);
    score__sampler_free_ws(s);
    s->ta = score__calloc(n, sizeof(double));
    s->tb = score__calloc(n, sizeof(double));
    s->zbuf = score__calloc(nd, sizeof(double));
    if (want_xd)
        s->xd = score__calloc(nd, sizeof(double));
    if (s->ta == NULL || s->tb == NULL || s->zbuf == NULL || (want_xd && s->xd == NULL)) {
        score__sampler_free_ws(s);
        return score__error(SCORE_E_NOMEM, "score_sampler_run", "workspace for %zu rows", n);
    }
    s->cap = n;
    return SCORE_OK;
}

/* Pushes the driver's parameters to its steps. */
static int configure_steps(score_sampler *s, size_t nsteps, double sigma_last, int f64)
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
        SCORE__STEP_I64(st, SCORE_STEP_PARAM_PRECISION) =
            f64 && st->type.impl_f64 != NULL ? 64 : 32;
        SCORE__STEP_I64(st, SCORE_STEP_PARAM_START_CORRECTION) =
            k == 0 ? PIX(s, SCORE_SAMPLER_PARAM_START_CORRECTION) : 0;
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
                        size_t n, int f64, void *x, size_t npts,
                        score_sampler_progress_fn progress, void *user_data)
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
        rc = f64 ? score_evolve_apply_f64(s->ev, s->ctrl, s->pred, sde, t1, n, x, rng)
                 : score_evolve_apply(s->ev, s->ctrl, s->pred, sde, t1, n, x, rng);
        attempts++;
        if ((rc == SCORE_DONE || rc == SCORE_OK) && score__known_replaces(&s->known)) {
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
        rc = score__evolve_step(s->ev, s->pred, sde, 0.0, n, f64, x, NULL, 0, 1);
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
                     size_t n, int f64, void *x, size_t npts, score_sampler_progress_fn progress,
                     void *user_data)
{
    const char *fn = "score_sampler_run";
    size_t K = npts - 1;
    size_t m = s->corr != NULL ? (size_t)PI(s, SCORE_SAMPLER_PARAM_CORRECTOR_STEPS) : 0;
    int lof = PI(s, SCORE_SAMPLER_PARAM_LOWER_ORDER_FINAL) == 1 && K < LOWER_ORDER_FINAL_BELOW &&
              is_multistep(s->pred);
    int64_t cap0 = PI(s, SCORE_SAMPLER_PARAM_ORDER);
    int order = s->pred->type.order;
    int known = score__known_replaces(&s->known);
    int seq = PIX(s, SCORE_SAMPLER_PARAM_ORDER_SEQUENCE) != 0;
    size_t budget = 0;
    int rc;
    if (cap0 > 0 && cap0 < order)
        order = (int)cap0;
    if (seq)
        budget = run_steps(s, score_sde_schedule(sde));
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
                rc = score__evolve_step(s->ev, s->corr, sde, tn, n, f64, x, rng,
                                        1 + (uint64_t)j, 0);
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
        if (seq && s->grid[k + 1] > 0.0)
            SCORE__STEP_I64(s->pred, SCORE_STEP_PARAM_ORDER) = seq_order(order, budget, k);
        s->known.counter = 1 + (uint64_t)k * ((uint64_t)m + 1);
        rc = score__evolve_step(s->ev, s->pred, sde, s->grid[k + 1], n, f64, x, rng, 0, 1);
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

/* Arrays of a run: float (f64 = 0) or double values. */
typedef struct run_arr {
    int f64;
    const void *in; /* x_init or NULL */
    void *out;
} run_arr;

static double arr_get(int f64, const void *a, size_t q)
{
    return f64 ? ((const double *)a)[q] : (double)((const float *)a)[q];
}

static void arr_put(int f64, void *a, size_t q, double v)
{
    if (f64)
        ((double *)a)[q] = v;
    else
        ((float *)a)[q] = (float)v;
}

static int arr_finite(int f64, size_t nd, const void *a)
{
    return f64 ? score__all_finite_f64(nd, a) : score__all_finite_f32(nd, a);
}

int score__sampler_start_std(const score_schedule *sched, double t0, double *sd)
{
    double T, a0, s0;
    int rc = score_schedule_get_f64(sched, SCORE_SCHEDULE_PARAM_T, &T);
    if (rc == SCORE_OK)
        rc = score_schedule_alpha_sigma(sched, 1, &t0, &a0, &s0);
    if (rc != SCORE_OK)
        return rc;
    if (t0 == T)
        return score_schedule_prior_std(sched, sd);
    *sd = score_schedule_is_variance_exploding(sched) == 1 ? s0 : sqrt(a0 * a0 + s0 * s0);
    return SCORE_OK;
}

/* The run's start values in the state x (float or double, f64): x_init (checked, copied),
 * x_init noised by the forward process to the grid's first time (noised = 1: SDEdit,
 * alpha(t0) x_init + sigma(t0) z with the prior draw's z) or a prior draw at the grid's first
 * time (std of the prior at T, else of the noised data under a unit-variance assumption). */
static int start_values(score_sampler *s, const score_schedule *sched, size_t row0, size_t n,
                        const run_arr *io, const void *x_init, int noised, int f64, void *x,
                        const score_rng *rng)
{
    const char *fn = "score_sampler_run";
    size_t nd = n * s->dim;
    int rc;
    if (x_init != NULL && !arr_finite(io->f64, nd, x_init))
        return score__error(SCORE_E_NUMERIC, fn, "x_init holds NaN or infinity");
    if (x_init != NULL && noised) {
        double t0 = s->grid[0], a0, s0;
        rc = score_schedule_alpha_sigma(sched, 1, &t0, &a0, &s0);
        if (rc == SCORE_OK)
            rc = score_rng_fill_normal_f64(rng, row0, n, 0, s->dim, s->zbuf);
        if (rc != SCORE_OK)
            return rc;
        for (size_t q = 0; q < nd; q++)
            arr_put(f64, x, q, a0 * arr_get(io->f64, x_init, q) + s0 * s->zbuf[q]);
    } else if (x_init != NULL) {
        if (io->f64 == f64) {
            if (x_init != x)
                memmove(x, x_init, nd * (f64 ? sizeof(double) : sizeof(float)));
        } else {
            for (size_t q = 0; q < nd; q++)
                arr_put(f64, x, q, arr_get(io->f64, x_init, q));
        }
    } else {
        double sd;
        rc = score__sampler_start_std(sched, s->grid[0], &sd);
        if (rc == SCORE_OK)
            rc = score_rng_fill_normal_f64(rng, row0, n, 0, s->dim, s->zbuf);
        if (rc != SCORE_OK)
            return rc;
        for (size_t q = 0; q < nd; q++)
            arr_put(f64, x, q, sd * s->zbuf[q]);
    }
    return SCORE_OK;
}

/* The features a double state does not carry: SCORE_E_UNSUPPORTED naming them. */
static int check_double_state(const char *fn, const score_sampler *s)
{
    const score_step *st = s->pred;
    if (st->type.impl_f64 == NULL)
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "predictor '%s' has no double-precision state (precision = 64)",
                            st->type.name);
    if (s->corr != NULL && PI(s, SCORE_SAMPLER_PARAM_CORRECTOR_STEPS) > 0 &&
        s->corr->type.impl_f64 == NULL)
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "corrector '%s' has no double-precision state (precision = 64)",
                            s->corr->type.name);
    if (score__known_active(&s->known))
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "known coordinates (score_sampler_set_known) are not supported with "
                            "a double-precision state");
    if (s->hook != NULL)
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "the per-step hook takes float rows: not supported with a "
                            "double-precision state");
    return SCORE_OK;
}

static int run_local(score_sampler *s, score_sde *sde, size_t row0, size_t n, const run_arr *io,
                     const score_rng *rng, score_sampler_progress_fn progress, void *user_data)
{
    const char *fn = io->f64 ? "score_sampler_run_f64" : "score_sampler_run";
    const score_schedule *sched;
    size_t npts = 0, dim, elem;
    double sigma_last = 0.0;
    uint64_t nfe0;
    size_t drop;
    int rc, adaptive, needs_rng, sdedit, known, f64;
    const void *x_init = io->in, *x_start;
    void *x;
    if (s == NULL || sde == NULL)
        return score__error(SCORE_E_INVAL, fn, "sampler or sde is NULL");
    s->nfe = s->steps = s->failed = 0;
    s->smc.ran = 0;
    if (n == 0)
        return SCORE_OK;
    if (io->out == NULL)
        return score__error(SCORE_E_INVAL, fn, "out is NULL");
    dim = s->dim;
    elem = io->f64 ? sizeof(double) : sizeof(float);
    f64 = io->f64 || PI(s, SCORE_SAMPLER_PARAM_PRECISION) == 64;
    if (score_sde_dim(sde) != dim)
        return score__error(SCORE_E_SHAPE, fn, "sde dimension %zu != sampler dimension %zu",
                            score_sde_dim(sde), dim);
    if ((uint64_t)row0 > ((uint64_t)1 << 32) || (uint64_t)n > ((uint64_t)1 << 32) - (uint64_t)row0)
        return score__error(SCORE_E_RANGE, fn, "rows %zu + %zu exceed 2^32", row0, n);
    if (f64 && (rc = check_double_state(fn, s)) != SCORE_OK)
        return rc;
    sched = score_sde_schedule(sde);
    rc = build_grid(fn, s, sched, 0, NULL, &npts);
    if (rc != SCORE_OK)
        return rc;
    rc = ensure(s, n, npts, f64 && !io->f64);
    if (rc != SCORE_OK)
        return rc;
    /* the state: the caller's array, or the double copy of a float-array run */
    x = f64 && !io->f64 ? (void *)s->xd : io->out;
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
    if (known) {
        int64_t method = SCORE_OBS_METHOD_DEFAULT;
        if ((rc = score_sde_get_i64(sde, SCORE_SDE_PARAM_OBS_METHOD, &method)) != SCORE_OK)
            return rc;
        s->known.moment = method == SCORE_OBS_METHOD_MOMENT;
    }
    drop = strength_drop(s, npts);
    if (sdedit && drop == npts - 1) {
        /* no step left: the data itself */
        if (!arr_finite(io->f64, n * dim, x_init))
            return score__error(SCORE_E_NUMERIC, fn, "x_init holds NaN or infinity");
        if (x_init != io->out)
            memmove(io->out, x_init, n * dim * elem);
        if (known)
            score__known_finish(&s->known, n, io->out);
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
    rc = configure_steps(s, npts - 1, sigma_last, f64);
    if (rc != SCORE_OK)
        return score__error(rc, fn, "cannot reset the steps");
    if (PI(s, SCORE_SAMPLER_PARAM_PARTICLES) > 1) {
        /* twisted sequential Monte Carlo (smc.c) */
        if (f64)
            return score__error(SCORE_E_UNSUPPORTED, fn,
                                "twisted SMC (particles > 1) runs a float state: not supported "
                                "with a double-precision state");
        return score__smc_run(s, sde, rng, row0, n, x_start, io->out, npts, progress,
                              user_data);
    }
    adaptive = PI(s, SCORE_SAMPLER_PARAM_ADAPTIVE) == 1 &&
               (s->pred->type.flags & SCORE_STEP_FLAG_ERROR_ESTIMATE) != 0 &&
               s->pred->type.err_order > 0 && !score__step_needs_noise(s->pred) &&
               (npts > 2 || s->grid[npts - 1] > 0.0);
    needs_rng = x_start == NULL || sdedit || score__known_replaces(&s->known) ||
                (!adaptive && (score__step_needs_noise(s->pred) ||
                               (s->corr != NULL && PI(s, SCORE_SAMPLER_PARAM_CORRECTOR_STEPS) > 0 &&
                                score__step_needs_noise(s->corr))));
    if (needs_rng && rng == NULL)
        return score__error(SCORE_E_INVAL, fn, "rng is NULL but the run draws noise%s",
                            x_start == NULL ? " (prior draw)"
                            : sdedit ? " (partial sampling)"
                            : score__known_replaces(&s->known)
                            ? " (forward-process noise of the known coordinates)" : "");
    rc = start_values(s, sched, row0, n, io, x_start, sdedit, f64, x, rng);
    if (rc == SCORE_OK && score__known_replaces(&s->known))
        rc = score__known_impose(&s->known, fn, row0, NULL, n, s->grid[0], NULL, 0, x);
    if (rc != SCORE_OK)
        return rc;
    nfe0 = score_sde_nfe(sde);
    /* known coordinates: imposed on every evaluation (replacement), or an observation of each
     * row that the sde's moment method conditions on */
    if (score__known_replaces(&s->known))
        score__sde_set_input(sde, score__known_input, &s->known);
    else if (known)
        score__sde_set_known_obs(sde, s->known.rows, s->known.mask, s->known.y, row0, n);
    if (adaptive)
        rc = run_adaptive(s, sde, rng, row0, n, f64, x, npts, progress, user_data);
    else
        rc = run_fixed(s, sde, rng, row0, n, f64, x, npts, progress, user_data);
    if (known) {
        score__sde_set_input(sde, NULL, NULL);
        score__sde_set_known_obs(sde, 0, NULL, NULL, 0, 0);
        if (rc == SCORE_OK)
            score__known_finish(&s->known, n, x);
    }
    s->nfe = score_sde_nfe(sde) - nfe0;
    if (x != io->out) /* the double state rounded once (also the state reached on failure) */
        for (size_t q = 0; q < n * dim; q++)
            ((float *)io->out)[q] = (float)s->xd[q];
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
static int run_split(score_sampler *s, score_sde *sde, size_t row0, size_t n, const run_arr *io,
                     const score_rng *rng, score_sampler_progress_fn progress, void *user_data)
{
    const char *fn = io->f64 ? "score_sampler_run_f64" : "score_sampler_run";
    size_t lo = 0, hi = 0, dim, row_bytes;
    int rc;
    if (s == NULL || s->comm == NULL || n == 0)
        return run_local(s, sde, row0, n, io, rng, progress, user_data);
    dim = s->dim;
    row_bytes = dim * (io->f64 ? sizeof(double) : sizeof(float));
    if (io->out == NULL)
        rc = score__error(SCORE_E_INVAL, fn, "out is NULL");
    else {
        run_arr part = *io;
        score__comm_share(n, s->comm->rank, s->comm->size, &lo, &hi);
        part.in = io->in != NULL ? (const char *)io->in + lo * row_bytes : NULL;
        part.out = (char *)io->out + lo * row_bytes;
        rc = run_local(s, sde, row0 + lo, hi - lo, &part, rng, progress, user_data);
    }
    if ((rc = score__comm_conclude(s->comm, rc, fn)) != SCORE_OK)
        return rc;
    return score__comm_allgather_items(s->comm, fn, n, row_bytes,
                                       (char *)io->out + lo * row_bytes, io->out);
}

int score_sampler_run_ex(score_sampler *s, score_sde *sde, size_t row0, size_t n,
                         const float *x_init, float *out, const score_rng *rng,
                         score_sampler_progress_fn progress, void *user_data)
{
    run_arr io = {0, x_init, out};
    return run_split(s, sde, row0, n, &io, rng, progress, user_data);
}

int score_sampler_run(score_sampler *s, score_sde *sde, size_t n, const float *x_init,
                      float *out, const score_rng *rng, score_sampler_progress_fn progress,
                      void *user_data)
{
    return score_sampler_run_ex(s, sde, 0, n, x_init, out, rng, progress, user_data);
}

int score_sampler_run_ex_f64(score_sampler *s, score_sde *sde, size_t row0, size_t n,
                             const double *x_init, double *out, const score_rng *rng,
                             score_sampler_progress_fn progress, void *user_data)
{
    run_arr io = {1, x_init, out};
    return run_split(s, sde, row0, n, &io, rng, progress, user_data);
}

int score_sampler_run_f64(score_sampler *s, score_sde *sde, size_t n, const double *x_init,
                          double *out, const score_rng *rng, score_sampler_progress_fn progress,
                          void *user_data)
{
    return score_sampler_run_ex_f64(s, sde, 0, n, x_init, out, rng, progress, user_data);
}
