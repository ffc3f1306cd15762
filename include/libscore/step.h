/**
 * @file step.h
 * @brief Sampler step types: one step of a sampler from time t to time t_next on a batch
 * (the `gsl_odeiv2_step` layer of the GSL-odeiv2-like split, STYLE C.11).
 *
 * A step *type* (::score_step_type) is an algorithm descriptor obtained by id
 * (score_step_type_get()) or by name (score_step_type_find(), k-diffusion / diffusers-style
 * names), or defined by the user (score_step_type_new() plus setters). A *step*
 * (::score_step) is an instance of a type for one data dimension: it owns the workspace and
 * the multistep history, grown when the batch grows (never during a call with a batch no
 * larger than before). score_step_apply() advances n rows from t to t_next through a
 * ::score_sde (schedule + model).
 *
 * Notation: `x_t = alpha(t) x_0 + sigma(t) eps`; the EDM noise level is
 * `s = sigma / alpha = exp(-lambda)`; the data prediction is `D(x, t) = x0_hat`
 * (score_sde_x0()); the noise prediction `eps_hat = (x - alpha D) / sigma`. The deterministic
 * solvers integrate the probability-flow ODE in the scaled variable `y = x / alpha` as a
 * function of `s`, where it reads `dy/ds = (y - D) / s` (Karras et al. 2022); exponential
 * integrators (DDIM, DPM-Solver) work in lambda. Intermediate stage times are mapped back to
 * t with score_schedule_t_of_lambda(). Scalar coefficients are computed in double and every
 * element update is evaluated in double before rounding to float. With
 * ::SCORE_STEP_PARAM_PRECISION = 64 the state, the stage values and the multistep history stay
 * in double (score_step_apply_f64(); the types listed there).
 *
 * Built-in types (id, name, order, model evaluations per step):
 * | id | name | order | NFE | what |
 * |----|------|-------|-----|------|
 * | ::SCORE_STEP_EULER | "euler" | 1 | 1 | PF-ODE Euler in s (= DDIM with eta = 0) |
 * | ::SCORE_STEP_HEUN | "heun" | 2 | 2 | EDM Algorithm 2 (optional churn) |
 * | ::SCORE_STEP_MIDPOINT | "midpoint" | 2 | 2 | explicit midpoint rule in s |
 * | ::SCORE_STEP_RK4 | "rk4" | 4 | 4 | classical Runge-Kutta in s |
 * | ::SCORE_STEP_DOPRI5 | "dopri5" | 5 | 6 (+1) | Dormand-Prince 5(4) with error estimate, FSAL |
 * | ::SCORE_STEP_EULER_MARUYAMA | "em" | 1 | 1 | reverse-SDE Euler-Maruyama in t |
 * | ::SCORE_STEP_REVERSE_DIFFUSION | "reverse-diffusion" | 1 | 1 | score_sde reverse-diffusion predictor |
 * | ::SCORE_STEP_ANCESTRAL | "ancestral" | 1 | 1 | score_sde ancestral sampling (VE / VP forms) |
 * | ::SCORE_STEP_EULER_ANCESTRAL | "euler-ancestral" | 1 | 1 | k-diffusion Euler ancestral, eta in s |
 * | ::SCORE_STEP_LANGEVIN | "langevin" | 1 | 1 | unadjusted Langevin corrector (fixed or SNR step) |
 * | ::SCORE_STEP_ALD | "ald" | 1 | 1 | annealed Langevin corrector (NCSN step sizing) |
 * | ::SCORE_STEP_DDIM | "ddim" | 1 | 1 | DDIM with eta >= 0 |
 * | ::SCORE_STEP_DPM_SOLVER_1 | "dpm-solver-1" | 1 | 1 | DPM-Solver-1 (noise prediction) |
 * | ::SCORE_STEP_DPM_SOLVER_2 | "dpm-solver-2" | 2 | 2 | DPM-Solver-2 singlestep, r1 = 1/2 |
 * | ::SCORE_STEP_DPM_SOLVER_3 | "dpm-solver-3" | 3 | 3 | DPM-Solver-3 singlestep, r1 = 1/3, r2 = 2/3 |
 * | ::SCORE_STEP_DPMPP_2M | "dpmpp-2m" | 2 | 1 | DPM-Solver++(2M), data prediction, multistep |
 * | ::SCORE_STEP_DPMPP_3M | "dpmpp-3m" | 3 | 1 | DPM-Solver++(3M), third order (see below) |
 * | ::SCORE_STEP_DPMPP_2M_SDE | "dpmpp-2m-sde" | 2 | 1 | DPM-Solver++(2M) SDE (midpoint form), eta |
 * | ::SCORE_STEP_DPM_SOLVER_12 | "dpm-solver-12" | 2 | 2 | adaptive pair DPM-Solver-1/2 with error estimate |
 * | ::SCORE_STEP_DPM_SOLVER_23 | "dpm-solver-23" (alias "dpm-adaptive") | 3 | 3 | adaptive pair DPM-Solver-2/3 with error estimate |
 * | ::SCORE_STEP_NONE | "none" | 0 | 0 | identity (annealed-Langevin drivers) |
 * | ::SCORE_STEP_DPMPP_2S | "dpmpp-2s" | 2 | 2 | singlestep DPM-Solver++(2S), data prediction |
 * | ::SCORE_STEP_DPMPP_3S | "dpmpp-3s" | 3 | 3 | singlestep DPM-Solver++(3S), data prediction |
 * | ::SCORE_STEP_LMS | "lms" | 4 | 1 | linear multistep in s (k-diffusion's LMS), orders 1-4 |
 * | ::SCORE_STEP_DEIS | "deis" | 3 | 1 | DEIS multistep (noise prediction, exponential integrator) |
 * | ::SCORE_STEP_UNIPC | "unipc" | 3 (+1) | 1 | UniPC multistep, B(h) = expm1(h) ("bh2"), UniC corrector |
 * | ::SCORE_STEP_UNIPC_BH1 | "unipc-bh1" | 3 (+1) | 1 | UniPC multistep, B(h) = h ("bh1"), UniC corrector |
 * | ::SCORE_STEP_DPM2_ANCESTRAL | "dpm-2-ancestral" | 2 | 2 | DPM-Solver-2 to s_down + ancestral noise, eta |
 * | ::SCORE_STEP_DPMPP_2S_ANCESTRAL | "dpmpp-2s-ancestral" | 2 | 2 | DPM-Solver++(2S) to s_down + ancestral noise, eta |
 * | ::SCORE_STEP_DPMPP_SDE | "dpmpp-sde" | 2 | 2 | stochastic DPM-Solver++, r = 1/2, eta |
 * | ::SCORE_STEP_DPMPP_3M_SDE | "dpmpp-3m-sde" | 2 | 1 | DPM-Solver++(3M) SDE (published form), multistep, eta |
 * | ::SCORE_STEP_RESTART | "restart" | 2 | 2 (+ restarts) | Heun + Restart cycles (Xu et al. 2023) |
 *
 * Conventions shared by every built-in type:
 * - A step to `t_next = 0` (the "data" entry of ::SCORE_GRID_APPEND_ZERO) returns the data
 *   prediction `D(x, t)` with one model evaluation and no noise (the Tweedie denoise:
 *   `x + sigma^2 s` for VE, `(x + sigma^2 s) / alpha` in general); the model is never
 *   evaluated at t = 0. This final step is first order in s; its error is O(s(t)^2).
 * - `t_next = t` leaves the rows unchanged for predictors (no model evaluation).
 * - Deterministic types accept both directions (t_next > t integrates the PF-ODE forward,
 *   e.g. to encode data); stochastic predictors require `t_next <= t`.
 * - Correctors (langevin, ald) update at time t and read t_next only for the discrete
 *   alpha_i = alpha(t)^2 / alpha(t_next)^2 of score_sde's step-size rule (1 when t_next >= t or
 *   t_next = 0).
 * - Noise: the standard normal for row `row0 + i` of a step called with @p counter is
 *   `normal(counter = rng counter + counter, row = row0 + i, columns b * dim .. b * dim + dim - 1)`
 *   of the generator (block b = 0 for the only draw of most built-in types; dpmpp-sde draws
 *   blocks 0 and 1, restart blocks 0 .. K - 1), see score_step_noise(). So a row's trajectory
 *   depends only on (seed, stream, row, counter), never on the batch it is computed in. With
 *   ::SCORE_STEP_PARAM_BROWNIAN = 1 the noise over the step is instead the increment of the
 *   row's Brownian path, which does not depend on the counter. The generator is only read.
 * - Multistep history (dpmpp-2m, dpmpp-3m, dpmpp-2m-sde, dpmpp-3m-sde, lms, deis, unipc,
 *   unipc-bh1) and the FSAL stage of dopri5 are
 *   kept in the step and used only when the call continues the previous one: same n and row0,
 *   and every row's t equal to its t_next of the previous call (for FSAL also the same x,
 *   bit for bit). Otherwise the step starts afresh at first order. Call score_step_reset()
 *   when a new trajectory happens to start exactly where the previous one ended.
 * - DPM-Solver++(3M) uses coefficients derived from the exponential-integrator expansion of
 *   the data prediction in lambda (the exact integral of the quadratic interpolant through the
 *   last three data predictions on the non-uniform lambda grid): third order. The form
 *   published with dpm-solver / k-diffusion weights the second-difference term by one half
 *   and converges at second order only. DPM-Solver++(2M) uses the published (k-diffusion)
 *   form. See doc/samplers.md.
 * - ::SCORE_STEP_PARAM_ORDER caps the order used by one call (singlestep DPM-Solver and
 *   DPM-Solver++, multistep DPM-Solver++, LMS, DEIS, UniPC); the sampler driver uses it for
 *   `lower_order_final` of the multistep types only.
 * - LMS (Karras et al. 2022's k-diffusion sampler; DEIS' "rho-AB"): y' = y + sum_j c_j eps_j
 *   with the noise predictions eps_j of the last k calls (k = 4, or the order cap) and c_j the
 *   exact integral over [s, s'] of the Lagrange basis polynomials in s; order k.
 * - DEIS (Zhang and Chen 2023, the form of diffusers' DEISMultistepScheduler): the exponential
 *   integrator of the noise prediction interpolated by a polynomial in lambda (= Lagrange in
 *   log rho) through the last k noise predictions (k = 3 or the cap), integrated exactly;
 *   order k. (The paper's t-AB, interpolation in t with a numerically integrated kernel, is
 *   not provided; LMS is its rho-AB.)
 * - UniPC (Zhao et al. 2023, data prediction, the form of the reference code and diffusers):
 *   the UniP-k predictor (k = 3 or the cap, rho = 1/2 for k = 2) and the UniC-k corrector.
 *   The corrector of the state a call produced is applied at the start of the next call, with
 *   the model output evaluated there (no extra evaluation), and only when that call continues
 *   the previous one with x bit-identical to its result (otherwise the step predicts only; a
 *   state changed between calls, e.g. by a hook or a Langevin corrector, is never corrected
 *   back). The state returned by the last call of a run is not corrected (as published).
 *   With the corrector the global order is k + 1 (measured: 2, 3 and 4 for k = 1, 2, 3).
 *   UniP-3 equals libscore's third-order dpmpp-3m (both integrate the quadratic interpolant
 *   exactly); B(h) matters for k <= 2 and in the corrector.
 * - Singlestep DPM-Solver++ (dpmpp-2s, dpmpp-3s) is the data-prediction counterpart of
 *   dpm-solver-2/3 (Lu et al. 2022, DPM-Solver++(2S) and the 3S form of the reference code);
 *   ::SCORE_STEP_PARAM_SUBSTEP chooses its intermediate points.
 *
 * Every failing call sets the thread's last-error message; on failure the content of @p x is
 * unspecified (a driver keeps its own copy when it needs to retry).
 */
#ifndef LIBSCORE_STEP_H
#define LIBSCORE_STEP_H

#include "common.h"
#include "rng.h"
#include "sde.h"

SCORE_BEGIN_DECLS

/** @brief Opaque step-type descriptor (built-in: static, never freed; user: see score_step_type_new()). */
typedef struct score_step_type score_step_type;

/** @brief Opaque step instance (workspace and multistep history for one dimension). */
typedef struct score_step score_step;

/** @brief Built-in step types (pinned ids for score_step_type_get()). */
enum score_step_kind {
    SCORE_STEP_EULER = 1,              /**< "euler": PF-ODE Euler step in s, y' = y + (s' - s)(y - D)/s. */
    SCORE_STEP_HEUN = 2,               /**< "heun": EDM Algorithm 2; Euler for the step to s' = 0; churn by ::SCORE_STEP_PARAM_CHURN. */
    SCORE_STEP_MIDPOINT = 3,           /**< "midpoint": explicit midpoint rule in s. */
    SCORE_STEP_RK4 = 4,                /**< "rk4": classical fourth-order Runge-Kutta in s. */
    SCORE_STEP_DOPRI5 = 5,             /**< "dopri5": Dormand-Prince 5(4) in s with embedded error estimate (first same as last). */
    SCORE_STEP_EULER_MARUYAMA = 6,     /**< "em": x' = x + (f - g^2 s) dt + g sqrt(|dt|) z, dt = t' - t. */
    SCORE_STEP_REVERSE_DIFFUSION = 7,  /**< "reverse-diffusion": x' = x - f_i x + G_i^2 s + G_i z. */
    SCORE_STEP_ANCESTRAL = 8,          /**< "ancestral": VE form for variance-exploding schedules, VP form otherwise. */
    SCORE_STEP_EULER_ANCESTRAL = 9,    /**< "euler-ancestral": Euler in s to sigma_down, then sigma_up noise (eta, default 1). */
    SCORE_STEP_LANGEVIN = 10,          /**< "langevin": x' = x + e s + sqrt(2 e) z with a fixed e or the SNR rule. */
    SCORE_STEP_ALD = 11,               /**< "ald": Langevin with e = step_lr sigma^2 / sigma_L^2 (NCSN) or 2 alpha_i (snr sigma)^2 (score_sde). */
    SCORE_STEP_DDIM = 12,              /**< "ddim": DDIM (Song et al. 2021) with eta (default 0). */
    SCORE_STEP_DPM_SOLVER_1 = 13,      /**< "dpm-solver-1": first-order DPM-Solver (noise prediction; = DDIM). */
    SCORE_STEP_DPM_SOLVER_2 = 14,      /**< "dpm-solver-2": singlestep DPM-Solver-2, r1 = 1/2. */
    SCORE_STEP_DPM_SOLVER_3 = 15,      /**< "dpm-solver-3": singlestep DPM-Solver-3, r1 = 1/3, r2 = 2/3. */
    SCORE_STEP_DPMPP_2M = 16,          /**< "dpmpp-2m": multistep DPM-Solver++(2M) (data prediction). */
    SCORE_STEP_DPMPP_3M = 17,          /**< "dpmpp-3m": multistep DPM-Solver++(3M), third-order coefficients. */
    SCORE_STEP_DPMPP_2M_SDE = 18,      /**< "dpmpp-2m-sde": DPM-Solver++(2M) SDE, midpoint form, eta (default 1). */
    SCORE_STEP_DPM_SOLVER_12 = 19,     /**< "dpm-solver-12": DPM-Solver-2 (r1 = 1/2) with the DPM-Solver-1 error estimate. */
    SCORE_STEP_DPM_SOLVER_23 = 20,     /**< "dpm-solver-23" / "dpm-adaptive": DPM-Solver-3 with the DPM-Solver-2 (r1 = 1/3) error estimate. */
    SCORE_STEP_NONE = 21,              /**< "none": identity (data prediction for t_next = 0). */
    SCORE_STEP_DPMPP_2S = 22,          /**< "dpmpp-2s": singlestep DPM-Solver++(2S), data prediction, 2 evaluations. @since 0.2 */
    SCORE_STEP_DPMPP_3S = 23,          /**< "dpmpp-3s": singlestep DPM-Solver++(3S), data prediction, 3 evaluations. @since 0.2 */
    SCORE_STEP_LMS = 24,               /**< "lms": linear multistep in s with integrated Lagrange coefficients, orders 1-4 (k-diffusion's LMS). @since 0.2 */
    SCORE_STEP_DEIS = 25,              /**< "deis": DEIS multistep, noise prediction interpolated in lambda, orders 1-3 (diffusers' DEIS). @since 0.2 */
    SCORE_STEP_UNIPC = 26,             /**< "unipc": UniPC multistep with the UniC corrector, data prediction, B(h) = expm1(h) ("bh2"), orders 1-3. @since 0.2 */
    SCORE_STEP_UNIPC_BH1 = 27,         /**< "unipc-bh1": UniPC as ::SCORE_STEP_UNIPC with B(h) = h ("bh1"). @since 0.2 */
    SCORE_STEP_DPM2_ANCESTRAL = 28,    /**< "dpm-2-ancestral": DPM-Solver-2 (midpoint in log s) to the ancestral s_down, then noise s_up (k-diffusion's sample_dpm_2_ancestral), 2 evaluations. @since 0.2 */
    SCORE_STEP_DPMPP_2S_ANCESTRAL = 29, /**< "dpmpp-2s-ancestral": DPM-Solver++(2S) to s_down, then noise s_up, 2 evaluations. @since 0.2 */
    SCORE_STEP_DPMPP_SDE = 30,         /**< "dpmpp-sde": stochastic DPM-Solver++ with r = 1/2 (ancestral half steps; k-diffusion's sample_dpmpp_sde), 2 evaluations, two noise draws. @since 0.2 */
    SCORE_STEP_DPMPP_3M_SDE = 31,      /**< "dpmpp-3m-sde": DPM-Solver++(3M) SDE, data prediction, multistep, eta. @since 0.2 */
    SCORE_STEP_RESTART = 32,           /**< "restart": Heun steps in s plus Restart's forward-noise / ODE-back cycles (Xu et al. 2023), see ::SCORE_STEP_PARAM_RESTART_SMIN. @since 0.2 */
    SCORE_STEP_MALA = 33               /**< "mala": Metropolis-adjusted Langevin at fixed t (corrector; needs a model with an energy, energy.h). @since 0.2 */
};

/** @brief Flags of a step type (score_step_type_flags(), score_step_type_set_flags()). */
enum score_step_type_flag {
    SCORE_STEP_FLAG_STOCHASTIC = 1u,     /**< The step draws noise (needs a generator). */
    SCORE_STEP_FLAG_ERROR_ESTIMATE = 2u, /**< The step writes an error estimate to xerr (adaptive control). */
    SCORE_STEP_FLAG_CORRECTOR = 4u       /**< The step updates at fixed time t (Langevin-type corrector). */
};

/**
 * @brief Step parameters (pinned ids; object kind ::SCORE_OBJECT_STEP, 1100-1199).
 *
 * Parameters may be changed at any time and take effect at the next call. A parameter that a
 * type does not use is accepted and ignored.
 */
enum score_step_param {
    /** f64: eta, the amount of noise of ddim, euler-ancestral and dpmpp-2m-sde, [-1, 1000];
     *  default -1 = the type's default (0 for ddim, 1 for euler-ancestral and dpmpp-2m-sde). */
    SCORE_STEP_PARAM_ETA = 1100,
    /** f64: EDM churn gamma of one heun step (the driver sets gamma = min(S_churn / N,
     *  sqrt(2) - 1)), [0, 0.41421356237309515], default 0. */
    SCORE_STEP_PARAM_CHURN = 1101,
    /** f64: S_tmin, churn only where s >= S_tmin, [0, 1e30], default 0. */
    SCORE_STEP_PARAM_S_TMIN = 1102,
    /** f64: S_tmax, churn only where s <= S_tmax, [0, 1e30], default 1e30. */
    SCORE_STEP_PARAM_S_TMAX = 1103,
    /** f64: S_noise, scale of the churn and dpmpp-2m-sde noise, [0, 100], default 1. */
    SCORE_STEP_PARAM_S_NOISE = 1104,
    /** f64: signal-to-noise ratio r of the Langevin SNR rule e = 2 alpha_i (r |z| / |s|)^2 and of
     *  score_sde's ALD rule, [1e-12, 1e6], default 0.16 (score_sde). */
    SCORE_STEP_PARAM_SNR = 1105,
    /** f64: fixed Langevin step size e, [0, 1e12], default 0 = use the SNR rule. */
    SCORE_STEP_PARAM_STEP_SIZE = 1106,
    /** f64: ALD base step size (NCSN's step_lr), [0, 1e12], default 0 = score_sde's ALD rule
     *  e = 2 alpha_i (snr sigma(t))^2. */
    SCORE_STEP_PARAM_STEP_LR = 1107,
    /** f64: ALD reference noise level sigma_L (marginal standard deviation) of
     *  e = step_lr sigma(t)^2 / sigma_L^2, [0, 1e30], default 0 = sigma(t_eps) of the schedule. */
    SCORE_STEP_PARAM_SIGMA_REF = 1108,
    /** i64: largest order used by one call, 0..3, default 0 = the type's order (singlestep
     *  DPM-Solver and DPM-Solver++, multistep DPM-Solver++ (dpmpp-2m, dpmpp-3m,
     *  dpmpp-2m-sde), lms, deis, unipc and unipc-bh1; ignored by the others, among them the
     *  adaptive pairs and dpmpp-3m-sde). */
    SCORE_STEP_PARAM_ORDER = 1109,
    /** i64: step-size rule of the Langevin corrector without a fixed step size,
     *  e = 2 alpha_i (snr r)^2, 0..2. 0 = r = mean |z| / mean |s| over the rows of the call
     *  (score_sde's rule; the step's default, as published): the step size of a row then
     *  depends on the other rows of the call, so results depend on how rows are batched;
     *  1 = r = |z| / |s| of the row (batch-invariant, but heavy-tailed in low dimension: huge
     *  steps where the score nearly vanishes); 2 = r = sigma(t), the noise-level estimate of
     *  the norm ratio (the ald type's rule): a function of the row's time only, so
     *  batch-invariant; the default of the sampler driver (::SCORE_SAMPLER_PARAM_SNR_NORM),
     *  which sets it on its corrector. Measured in doc/samplers.md: rules 2 and 0 give the
     *  same sample quality within the measurement's spread, rule 1 is several times worse in
     *  2-D. */
    SCORE_STEP_PARAM_SNR_NORM = 1110,
    /** i64: N of the schedule discretization used by reverse-diffusion and ancestral,
     *  0..1000000; default 0 = the exact transition between the step's own end points
     *  (1 + f_i = alpha(t) / alpha(t'), G_i^2 = sigma(t)^2 - (1 + f_i)^2 sigma(t')^2, valid for
     *  every grid); N > 0 uses score_schedule_discretize() with N (score_sde's index rule). */
    SCORE_STEP_PARAM_DISC_N = 1111,
    /** i64: intermediate points of the singlestep DPM-Solver++ types (dpmpp-2s, dpmpp-3s),
     *  0..1; default 0 = uniform in lambda (r = 1/2; r = 1/3, 2/3: DPM-Solver's rule);
     *  1 = uniform in t (the step [t, t'] cut into 2 or 3 equal parts in t: a run of N
     *  steps then evaluates the model exactly on the time-uniform grid of 2N or 3N steps, as
     *  schedulers that take the intermediate points from the grid do), with the coefficients
     *  of each row's resulting offsets in lambda (3S: the quadratic interpolant of the three
     *  data predictions; still third order). @since 0.2 */
    SCORE_STEP_PARAM_SUBSTEP = 1112,
    /** i64: coefficients of dpmpp-3m, 0..1; default 0 = third order (the exact integral of the
     *  quadratic interpolant of the last three data predictions); 1 = the published
     *  DPM-Solver++(3M) of dpm-solver and k-diffusion (k-diffusion's dpmpp_3m_sde with eta = 0),
     *  whose second-difference term has half that weight: second order, but measured more
     *  accurate at very few steps (doc/samplers.md). Ignored by the other types. @since 0.2 */
    SCORE_STEP_PARAM_DPMPP_3M_FORM = 1113,
    /** i64: Brownian-consistent noise, 0..1, default 0. With 1 the noise a step draws over
     *  [t_next, t] is the standardised increment (W(t_next) - W(t)) / sqrt(t - t_next) of one
     *  Brownian path W per (generator key, stream, generator counter, global row, column) on
     *  the schedule's [0, T], whatever the step's counter: a run with 20 steps and one with 200
     *  steps follow the same path, and the strong error of an SDE solver can be measured. The
     *  path is built by Brownian-bridge bisection keyed by the position of each dyadic node,
     *  exact at the 2^24 + 1 points k T / 2^24 and linear between them (each query costs 25
     *  normal draws per value). Accepted by em, reverse-diffusion, ancestral,
     *  euler-ancestral, ddim, dpmpp-2m-sde, dpm-2-ancestral, dpmpp-2s-ancestral, dpmpp-sde and
     *  dpmpp-3m-sde (dpmpp-sde draws its two noises over [t, t_mid] and [t, t_next] of the
     *  same path, as k-diffusion's Brownian tree does); a step whose noise is not an interval
     *  increment (heun churn, langevin, ald, restart) refuses it with ::SCORE_E_UNSUPPORTED
     *  when it would draw noise. @since 0.2 */
    SCORE_STEP_PARAM_BROWNIAN = 1114,
    /** f64: restart: the restart interval's lower end s_min = sigma / alpha, > 0, default
     *  0.1. A restart step whose end point is the first one at or below s_min (s(t) > s_min >=
     *  s(t_next)) then runs ::SCORE_STEP_PARAM_RESTART_K cycles: a forward jump from s(t_next) to
     *  s_max with fresh noise, y += sqrt(s_max^2 - s(t_next)^2) z (times s_noise), and
     *  ::SCORE_STEP_PARAM_RESTART_STEPS Heun steps back to t_next on the Karras (rho = 7) grid
     *  in s. Defaults: the interval [0.1, 2] (in s) with K = 2 restarts of 9 Heun steps, the
     *  authors' Stable-Diffusion setting. @since 0.2 */
    SCORE_STEP_PARAM_RESTART_SMIN = 1115,
    /** f64: restart: the interval's upper end s_max, > s_min, default 2. @since 0.2 */
    SCORE_STEP_PARAM_RESTART_SMAX = 1116,
    /** i64: restart: number K of restart cycles, 0..100, default 2 (0 = plain heun).
     *  @since 0.2 */
    SCORE_STEP_PARAM_RESTART_K = 1117,
    /** i64: restart: Heun steps of one cycle's ODE pass from s_max back, 1..10000, default 9.
     *  @since 0.2 */
    SCORE_STEP_PARAM_RESTART_STEPS = 1118,
    /** i64: precision of the step's state, 32 or 64, default 32. 32: x, the stage values and
     *  the multistep history are float and the step runs through score_step_apply() /
     *  score_step_apply_ex(); 64: they are double and it runs through score_step_apply_f64() /
     *  score_step_apply_ex_f64() (a call through the other entry fails with
     *  ::SCORE_E_MISUSE). With 64 the model evaluates the unrounded state in double when it can
     *  (analytic Gaussian / GMM models and combinations of them, score_sde_* conversions in
     *  double); other models (MLP, energy, callback) and the sde's extras (guidance on one
     *  network, classifier guidance, observations, thresholding) evaluate the state rounded to
     *  float, with the result widened. Setting 64 on a type without a double state fails with
     *  ::SCORE_E_UNSUPPORTED (the message names the type): user types and mala; every other
     *  built-in type has one (the stochastic types draw the float normals of a float state,
     *  widened to double). @since 0.2 */
    SCORE_STEP_PARAM_PRECISION = 1119,
    /** i64: start correction of dpmpp-2m and dpmpp-3m (both forms), 0..1, default 0 = off (as
     *  published: the first step of a trajectory is first order, y1 = e^-h0 y0 + I0(h0) D0,
     *  a local error O(h^2) that bounds the global error of dpmpp-3m at O(h^2) however many
     *  steps follow). 1 = the second call corrects the first step's result with the data
     *  prediction D1 it evaluates at its start, before its own update: y1 += I1(h0) (D1 -
     *  D0) / h0 (the exponential integrator of the linear interpolant of D over the first
     *  step, I1(h) = h - 1 + e^-h), no extra evaluation; the first step's local error becomes
     *  O(h^3) and dpmpp-3m converges at third order from the first step on (measured on the
     *  Gaussian closed form with a double state, doc/choosing-a-sampler.md). Like UniPC's
     *  corrector it is applied only when the second call continues the first with x
     *  bit-identical to its result (a state changed between the calls is not corrected).
     *  Ignored by the other types and by dpmpp-2m-sde. @since 0.2 */
    SCORE_STEP_PARAM_START_CORRECTION = 1120
};

/**
 * @brief User step function (see score_step_type_set_apply()).
 *
 * Must advance the @p n rows of @p x from `t[i]` to `t_next[i]` in place, optionally write an
 * error estimate (n * dim floats) to @p xerr when it is not NULL, and draw noise only through
 * (rng, counter, row0) (e.g. with score_step_noise()) so that results do not depend on
 * batching. It may call any score_sde function on @p sde.
 * @param state the per-step state from the alloc callback (NULL if none was set).
 * @param sde the system. @param n rows. @param dim dimension.
 * @param t n start times. @param t_next n end times. @param row0 global index of row 0.
 * @param x n * dim values, in/out. @param xerr n * dim error estimates, or NULL.
 * @param rng the generator (NULL for deterministic calls). @param counter noise counter.
 * @param user_data the pointer given to the setter.
 * @return 0 on success; any other value makes score_step_apply() fail with ::SCORE_E_CALLBACK
 *         (the value is kept, see score_step_last_callback_status()).
 * @since 0.1
 */
typedef int SCORE_CALLBACK(score_step_apply_fn)(void *state, score_sde *sde, size_t n,
                                                size_t dim, const double *t,
                                                const double *t_next, size_t row0, float *x,
                                                float *xerr, const score_rng *rng,
                                                uint64_t counter, void *user_data);

/**
 * @brief User state allocator, called once by score_step_new().
 * @param state_out receives the state pointer. @param dim data dimension.
 * @param user_data the pointer given to the setter.
 * @return 0 on success; non-zero makes score_step_new() fail with ::SCORE_E_CALLBACK.
 * @since 0.1
 */
typedef int SCORE_CALLBACK(score_step_alloc_fn)(void **state_out, size_t dim, void *user_data);

/**
 * @brief User state reset (score_step_reset()), e.g. to forget multistep history.
 * @param state the state. @param user_data the pointer given to the setter.
 * @since 0.1
 */
typedef void SCORE_CALLBACK(score_step_reset_fn)(void *state, void *user_data);

/**
 * @brief User state destructor (score_step_free()).
 * @param state the state. @param user_data the pointer given to the setter.
 * @since 0.1
 */
typedef void SCORE_CALLBACK(score_step_free_fn)(void *state, void *user_data);

/**
 * @brief The built-in step type with the given id.
 * @param[in] kind a ::score_step_kind.
 * @return a static descriptor; NULL for an unknown id (no error message is set).
 * Ownership: static; never free it (score_step_type_free() ignores built-in types).
 * Thread-safety: safe.
 * @since 0.1
 * @see score_step_type_find
 */
SCORE_API const score_step_type *score_step_type_get(int kind);

/**
 * @brief Looks a built-in step type up by name ("euler", "heun", "midpoint", "rk4", "dopri5",
 *        "em", "reverse-diffusion", "ancestral", "euler-ancestral", "langevin", "ald", "ddim",
 *        "dpm-solver-1", "dpm-solver-2", "dpm-solver-3", "dpmpp-2m", "dpmpp-3m",
 *        "dpmpp-2m-sde", "dpm-solver-12", "dpm-solver-23", "dpm-adaptive", "none", "dpmpp-2s",
 *        "dpmpp-3s", "lms", "deis", "unipc", "unipc-bh1", "dpm-2-ancestral",
 *        "dpmpp-2s-ancestral", "dpmpp-sde", "dpmpp-3m-sde", "restart"). Every '-' of a name may
 *        also be written '_' (the k-diffusion / diffusers spelling: "dpmpp_2m", "dpmpp_3m",
 *        "dpmpp_2m_sde", "euler_ancestral", "dpm_adaptive", "unipc_bh1", "dpm_2_ancestral",
 *        "dpmpp_2s_ancestral", "dpmpp_sde", "dpmpp_3m_sde", ...), and these k-diffusion /
 *        web-UI aliases name the same algorithms: "euler_a" (euler-ancestral), "dpm_2"
 *        (dpm-solver-2: k-diffusion's DPM-2 is the midpoint rule in log sigma, i.e.
 *        DPM-Solver-2), "euler_maruyama" (em), "uni_pc" (unipc-bh1, the B(h) = h variant),
 *        "uni_pc_bh2" and "unipc_bh2" (unipc), "dpm_2_a" (dpm-2-ancestral) and "dpmpp_2s_a"
 *        (dpmpp-2s-ancestral). A leading "k_" (the k-diffusion samplers of Stable Diffusion's
 *        scripts: "k_lms", "k_euler_a", "k_dpm_2_a", "k_dpmpp_2m", ...) is ignored. diffusers'
 *        scheduler classes name the algorithm of their default configuration:
 *        "EulerDiscreteScheduler" (euler), "EulerAncestralDiscreteScheduler"
 *        (euler-ancestral), "HeunDiscreteScheduler" (heun), "LMSDiscreteScheduler" (lms),
 *        "DDIMScheduler" (ddim), "DEISMultistepScheduler" (deis), "UniPCMultistepScheduler"
 *        (unipc), "KDPM2DiscreteScheduler" (dpm-solver-2), "KDPM2AncestralDiscreteScheduler"
 *        (dpm-2-ancestral), "DPMSolverMultistepScheduler" (dpmpp-2m) and
 *        "DPMSolverSDEScheduler" (dpmpp-sde). Names of samplers libscore does not implement as
 *        a step type give NULL: e.g. "lms_karras" (a sampler with its grid: lms with
 *        ::SCORE_GRID_KARRAS) and "dpm_fast" (a singlestep type with
 *        ::SCORE_SAMPLER_PARAM_ORDER_SEQUENCE).
 * @param[in] name the name (case-sensitive).
 * @return a static descriptor; NULL for NULL or an unknown name (no error message is set).
 * Ownership: static.
 * Thread-safety: safe.
 * @since 0.1 (underscore spellings, aliases and the k_ prefix since 0.2)
 */
SCORE_API const score_step_type *score_step_type_find(const char *name);

/**
 * @brief Number of built-in step types.
 * @return the count (33 since 0.2; 21 in 0.1).
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API size_t score_step_type_count(void);

/**
 * @brief The @p index-th built-in step type (for listing).
 * @param[in] index 0 .. score_step_type_count() - 1.
 * @return a static descriptor; NULL if @p index is out of range.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API const score_step_type *score_step_type_at(size_t index);

/**
 * @brief Name of a step type.
 * @param[in] type the type.
 * @return the name (owned by the type); "(null)" for NULL.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API const char *score_step_type_name(const score_step_type *type);

/**
 * @brief Id of a step type: a ::score_step_kind, or 0 for user types and NULL.
 * @param[in] type the type.
 * @return the id.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API int score_step_type_kind(const score_step_type *type);

/**
 * @brief Order of accuracy of a step type (global order of the deterministic solvers; 1 for
 *        the stochastic ones; 0 for "none").
 * @param[in] type the type.
 * @return the order; 0 for NULL.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API int score_step_type_order(const score_step_type *type);

/**
 * @brief Flags of a step type (::score_step_type_flag bits).
 * @param[in] type the type.
 * @return the flags; 0 for NULL.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API uint32_t score_step_type_flags(const score_step_type *type);

/**
 * @brief Creates a user step type (an ops table allocated inside the library, STYLE C.11).
 *
 * The type needs an apply function (score_step_type_set_apply()) before steps can be made
 * from it; the state callbacks are optional.
 * @param[out] out the new type; NULL on failure.
 * @param[in] name its name (copied, 1..63 characters).
 * @param[in] order its order of accuracy, 0..16 (reported by score_step_order()).
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer); ::SCORE_E_RANGE (empty or too long name,
 *         order); ::SCORE_E_NOMEM.
 * Ownership: the caller frees the type with score_step_type_free(); steps made from it copy
 * the table, so the type may be freed while they live.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_step_type_new(score_step_type **out, const char *name,
                                                    int order);

/**
 * @brief Frees a user step type. NULL and built-in types are ignored.
 * @param[in] type the type.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API void score_step_type_free(score_step_type *type);

/**
 * @brief Sets the apply function of a user step type.
 * @param[in,out] type a user type. @param[in] fn the function (not NULL).
 * @param[in] user_data passed to @p fn; borrowed: must outlive every step made from the type.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL); ::SCORE_E_MISUSE (a built-in type).
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_step_type_set_apply(score_step_type *type,
                                                          score_step_apply_fn fn,
                                                          void *user_data);

/**
 * @brief Sets (or with NULL removes) the state allocator of a user step type.
 * @param[in,out] type a user type. @param[in] fn the function or NULL.
 * @param[in] user_data passed to @p fn; must outlive every step made from the type.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL type); ::SCORE_E_MISUSE (a built-in type).
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_step_type_set_alloc_state(score_step_type *type,
                                                                score_step_alloc_fn fn,
                                                                void *user_data);

/**
 * @brief Sets (or with NULL removes) the state reset of a user step type.
 * @param[in,out] type a user type. @param[in] fn the function or NULL.
 * @param[in] user_data passed to @p fn; must outlive every step made from the type.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL type); ::SCORE_E_MISUSE (a built-in type).
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_step_type_set_reset(score_step_type *type,
                                                          score_step_reset_fn fn,
                                                          void *user_data);

/**
 * @brief Sets (or with NULL removes) the state destructor of a user step type.
 * @param[in,out] type a user type. @param[in] fn the function or NULL.
 * @param[in] user_data passed to @p fn; must outlive every step made from the type.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL type); ::SCORE_E_MISUSE (a built-in type).
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_step_type_set_free_state(score_step_type *type,
                                                               score_step_free_fn fn,
                                                               void *user_data);

/**
 * @brief Sets the flags of a user step type (::score_step_type_flag bits; default 0).
 * @param[in,out] type a user type. @param[in] flags the flags.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL type or unknown bits); ::SCORE_E_MISUSE (built-in).
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_step_type_set_flags(score_step_type *type, uint32_t flags);

/**
 * @brief Creates a step of a type for data of dimension @p dim.
 * @param[out] out the new step; NULL on failure.
 * @param[in] type the type (built-in or user; a user type's table is copied).
 * @param[in] dim data dimension, 1 .. 2^24.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer, or a user type without apply function);
 *         ::SCORE_E_RANGE (@p dim); ::SCORE_E_CALLBACK (the user allocator failed);
 *         ::SCORE_E_NOMEM.
 * Ownership: the caller frees the step with score_step_free().
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_step_new(score_step **out, const score_step_type *type,
                                               size_t dim);

/**
 * @brief Frees a step (and a user state through the type's destructor). NULL is a no-op.
 * @param[in] step the step.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API void score_step_free(score_step *step);

/**
 * @brief Forgets the multistep history and FSAL cache (and calls a user type's reset), and
 *        sets the evaluation counter to 0. Parameters are kept.
 * @param[in,out] step the step.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL).
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_step_reset(score_step *step);

/**
 * @brief Advances @p n rows from time @p t to @p t_next (same times for every row).
 *
 * Equivalent to score_step_apply_ex() with constant time arrays and row0 = 0.
 * @param[in,out] step the step. @param[in,out] sde the system (model evaluations).
 * @param[in] t start time (> 0, a valid time of the schedule).
 * @param[in] t_next end time (0 = the data, or a valid time).
 * @param[in] n rows (0 is a no-op). @param[in,out] x n * dim values.
 * @param[out] xerr n * dim error estimates (types with ::SCORE_STEP_FLAG_ERROR_ESTIMATE), or
 *             NULL; types without an estimate fill it with zeros.
 * @param[in] rng the generator (only read); may be NULL for deterministic types.
 * @param[in] counter noise counter offset added to the generator's counter (< 2^32 in sum).
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer, a stochastic type without generator, a
 *         stochastic predictor asked to go forward in time); ::SCORE_E_SHAPE (the sde's
 *         dimension differs from the step's); ::SCORE_E_RANGE (a time outside the schedule or
 *         the counter too large); ::SCORE_E_NUMERIC (NaN or infinity in @p x on entry, in a
 *         model output or in the result); ::SCORE_E_CALLBACK (a model or user step callback
 *         failed); ::SCORE_E_UNSUPPORTED (a time map the schedule cannot invert);
 *         ::SCORE_E_NOMEM.
 * Thread-safety: object-exclusive (step and sde).
 * @since 0.1
 * @see score_step_apply_ex
 */
SCORE_API SCORE_WARN_UNUSED int score_step_apply(score_step *step, score_sde *sde, double t,
                                                 double t_next, size_t n, float *x,
                                                 float *xerr, const score_rng *rng,
                                                 uint64_t counter);

/**
 * @brief Advances @p n rows, row i from `t[i]` to `t_next[i]` (per-row times), with global
 *        row indices starting at @p row0 for the noise.
 *
 * A caller splitting a batch into chunks passes each chunk's first global row as @p row0 and
 * obtains the same result as with the whole batch.
 * @param[in,out] step the step. @param[in,out] sde the system.
 * @param[in] row0 global index of row 0 (row0 + n <= 2^32).
 * @param[in] n rows. @param[in] t n start times. @param[in] t_next n end times.
 * @param[in,out] x n * dim values. @param[out] xerr n * dim error estimates, or NULL.
 * @param[in] rng the generator, or NULL for deterministic types. @param[in] counter noise counter offset.
 * @return as score_step_apply(); ::SCORE_E_RANGE also for row0 + n > 2^32.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_step_apply_ex(score_step *step, score_sde *sde, size_t row0,
                                                    size_t n, const double *t,
                                                    const double *t_next, float *x, float *xerr,
                                                    const score_rng *rng, uint64_t counter);

/**
 * @brief score_step_apply() on a double-precision state (::SCORE_STEP_PARAM_PRECISION = 64).
 * @param[in,out] step the step (precision 64). @param[in,out] sde the system.
 * @param[in] t start time. @param[in] t_next end time. @param[in] n rows.
 * @param[in,out] x n * dim doubles. @param[out] xerr n * dim doubles, or NULL.
 * @param[in] rng the generator or NULL. @param[in] counter noise counter offset.
 * @return as score_step_apply(); ::SCORE_E_MISUSE when the step's precision is 32.
 * Thread-safety: object-exclusive (step and sde).
 * @since 0.2
 */
SCORE_API SCORE_WARN_UNUSED int score_step_apply_f64(score_step *step, score_sde *sde, double t,
                                                     double t_next, size_t n, double *x,
                                                     double *xerr, const score_rng *rng,
                                                     uint64_t counter);

/**
 * @brief score_step_apply_ex() on a double-precision state (::SCORE_STEP_PARAM_PRECISION = 64):
 *        the same rows, times and noise, with x (and xerr) kept in double.
 * @param[in,out] step the step (precision 64). @param[in,out] sde the system.
 * @param[in] row0 global index of row 0. @param[in] n rows. @param[in] t n start times.
 * @param[in] t_next n end times. @param[in,out] x n * dim doubles.
 * @param[out] xerr n * dim doubles, or NULL. @param[in] rng the generator or NULL.
 * @param[in] counter noise counter offset.
 * @return as score_step_apply_ex(); ::SCORE_E_MISUSE when the step's precision is 32.
 * Thread-safety: object-exclusive.
 * @since 0.2
 */
SCORE_API SCORE_WARN_UNUSED int score_step_apply_ex_f64(score_step *step, score_sde *sde,
                                                        size_t row0, size_t n, const double *t,
                                                        const double *t_next, double *x,
                                                        double *xerr, const score_rng *rng,
                                                        uint64_t counter);

/**
 * @brief The standard normals a built-in step draws: block @p block of rows row0 .. row0+n-1,
 *        i.e. columns block * dim .. block * dim + dim - 1 at the generator's counter + @p counter.
 * @param[in] rng the generator (only read). @param[in] counter counter offset.
 * @param[in] row0 first global row. @param[in] n rows. @param[in] dim values per row.
 * @param[in] block block index (0 for the first draw of a step).
 * @param[out] out n * dim floats.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer); ::SCORE_E_RANGE (counter, rows or
 *         columns beyond the generator's limits).
 * Thread-safety: safe (the generator is only read).
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_step_noise(const score_rng *rng, uint64_t counter,
                                                 size_t row0, size_t n, size_t dim,
                                                 size_t block, float *out);

/**
 * @brief Name of the step's type. @param[in] step the step.
 * @return the name; "(null)" for NULL.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API const char *score_step_name(const score_step *step);

/**
 * @brief Order of the step's type. @param[in] step the step.
 * @return the order; 0 for NULL.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API int score_step_order(const score_step *step);

/**
 * @brief Whether the step draws noise with its current parameters (the stochastic types;
 *        heun with churn > 0; ddim, euler-ancestral and dpmpp-2m-sde with eta > 0), i.e.
 *        whether score_step_apply() needs a generator. @param[in] step the step.
 * @return 1 or 0 (0 for NULL).
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API int score_step_is_stochastic(const score_step *step);

/**
 * @brief Order of the step's error estimate: the order of the embedded lower-order solution
 *        (4 for dopri5, 1 for dpm-solver-12, 2 for dpm-solver-23), 0 without estimate.
 *        Adaptive control uses it for the step-size exponent 1 / (order + 1).
 * @param[in] step the step.
 * @return the order; 0 for NULL or no estimate (user types with the flag report their order - 1).
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API int score_step_error_order(const score_step *step);

/**
 * @brief Data dimension of the step. @param[in] step the step.
 * @return dim; 0 for NULL.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API size_t score_step_dim(const score_step *step);

/**
 * @brief Batched model evaluations made by the step since creation or score_step_reset().
 * @param[in] step the step.
 * @return the count; 0 for NULL (user types: not counted).
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API uint64_t score_step_nfe(const score_step *step);

/**
 * @brief Value returned by a user apply function in the last call that failed with
 *        ::SCORE_E_CALLBACK (0 otherwise). @param[in] step the step.
 * @return the value; 0 for NULL.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API int score_step_last_callback_status(const score_step *step);

/**
 * @brief Sets a floating-point parameter (::score_step_param).
 * @param[in,out] step the step. @param[in] param the id. @param[in] value the value.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL, or an integer parameter); ::SCORE_E_RANGE (value
 *         outside the bounds or NaN; ::SCORE_STEP_PARAM_PRECISION other than 32 and 64);
 *         ::SCORE_E_UNSUPPORTED (unknown id; precision 64 for a type without a double state).
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_step_set_f64(score_step *step, int param, double value);

/**
 * @brief Sets an integer parameter (::score_step_param).
 * @param[in,out] step the step. @param[in] param the id. @param[in] value the value.
 * @return as score_step_set_f64().
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_step_set_i64(score_step *step, int param, int64_t value);

/**
 * @brief Reads a floating-point parameter.
 * @param[in] step the step. @param[in] param the id. @param[out] out the value.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL, or an integer parameter); ::SCORE_E_UNSUPPORTED.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_step_get_f64(const score_step *step, int param, double *out);

/**
 * @brief Reads an integer parameter.
 * @param[in] step the step. @param[in] param the id. @param[out] out the value.
 * @return as score_step_get_f64().
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_step_get_i64(const score_step *step, int param, int64_t *out);

SCORE_END_DECLS

#endif /* LIBSCORE_STEP_H */
