/**
 * @file sampler.h
 * @brief Sampling drivers: predictor-corrector, annealed Langevin, probability-flow ODE with a
 * fixed grid or adaptive control, and "step type X on grid G" for Euler / Heun / DDIM /
 * DPM-Solver(++) (the `gsl_odeiv2_driver` layer, STYLE C.11).
 *
 * A sampler holds a predictor step type, an optional corrector step type and parameters
 * (::score_sampler_param). score_sampler_run() draws n samples through a ::score_sde:
 *
 * 1. **Grid.** A user grid (score_sampler_set_grid()) or the schedule's grid of kind
 *    ::SCORE_SAMPLER_PARAM_GRID with N = ::SCORE_SAMPLER_PARAM_NUM_STEPS steps:
 *    `score_schedule_time_grid(kind, N + 1)` (N + 1 times from T down to t_eps), or with
 *    ::SCORE_SAMPLER_PARAM_FINAL_DENOISE `score_schedule_time_grid(kind, N,
 *    SCORE_GRID_APPEND_ZERO)` (N times from T to t_eps, then 0): the last of the N steps is then
 *    the Tweedie denoise to the data, `x0_hat(x, t_eps)` (k-diffusion's and EDM's convention:
 *    EDM's 18-step Heun is N = 18 with 35 model evaluations).
 * 2. **Start.** From @p x_init at the grid's first time (with ::SCORE_SAMPLER_PARAM_STRENGTH:
 *    from @p x_init as data, noised by the forward process, on the last part of the grid), or
 *    from a prior draw there: standard
 *    normals of the generator at its current counter (rows row0.., columns 0..dim-1, drawn in
 *    double) times `std(t0)` = the schedule's prior std when t0 = T, otherwise `sigma(t0)` for
 *    variance-exploding and `sqrt(alpha(t0)^2 + sigma(t0)^2)` for other schedules.
 * 3. **Steps.** For grid point k = 0 .. N-1: the corrector (if any, ::SCORE_SAMPLER_PARAM_CORRECTOR_STEPS
 *    times) at t_k, then the predictor from t_k to t_{k+1} (score_sde's order), then the
 *    per-step hook. The corrector also runs at the last grid time when it is > 0. With the
 *    predictor "none" this is annealed Langevin dynamics over the grid's noise levels (NCSN).
 *    Noise of predictor step k uses counter offset `1 + k (m + 1)` and corrector sweep j
 *    uses `2 + k (m + 1) + j` (m corrector steps), relative to the generator's counter: a
 *    row's sample is a pure function of (seed, stream, counter, global row) and does not
 *    depend on the batch size or on how the rows are split into calls (run_ex's row0) —
 *    except with the Langevin corrector's batch-mean SNR rule (score_sde's rule,
 *    ::SCORE_SAMPLER_PARAM_SNR_NORM = 0; not the default). The model evaluations of the
 *    built-in steps pass the rows' global numbers to the model, so that an MLP rounds a row
 *    the same way in any split (doc/samplers.md, "Batch-split invariance").
 * 4. **Adaptive.** With a predictor that has an error estimate (dopri5, dpm-solver-12/23) and
 *    ::SCORE_SAMPLER_PARAM_ADAPTIVE = 1, the driver ignores the grid's interior and solves
 *    from its first time to its last positive time with score_evolve and a score_control
 *    (rtol, atol, h_init, h_min, max_steps; per-row step sizes in lambda), then the optional
 *    final denoise.
 *
 * Lower-order final steps (::SCORE_SAMPLER_PARAM_LOWER_ORDER_FINAL, default on): when the run
 * has fewer than 10 steps, the multistep predictors (dpmpp-2m, dpmpp-3m, dpmpp-2m-sde, lms,
 * deis, unipc, unipc-bh1) use order min(order, steps left) for their final steps (DPM-Solver's rule, for
 * stability with few steps). Singlestep predictors (dpm-solver-2/3, dpmpp-2s/3s) are
 * self-starting and keep their order on every step (tested); their lower-order final steps
 * are DPM-Solver's order sequence for a budget, ::SCORE_SAMPLER_PARAM_ORDER_SEQUENCE.
 * dpmpp-3m-sde keeps its order (k-diffusion's form has no such rule). A step to t = 0 is
 * always the data prediction (first order, error O(s^2)) and counts as one of the steps left.
 *
 * Guidance: give the sde a combination model (score_model_new_cfg(), score_model_new_sum(),
 * score_sde_set_model()); the driver needs nothing else. Imputation / inpainting:
 * score_sampler_set_known(); partial sampling from data (SDEdit):
 * ::SCORE_SAMPLER_PARAM_STRENGTH. Other custom logic goes in the per-step hook, which may
 * modify x in place after each predictor step.
 *
 * Precision (::SCORE_SAMPLER_PARAM_PRECISION, score_sampler_run_f64()): by default the state
 * x, the multistep history and the stage values are float, so a sample cannot be more accurate
 * than float rounding accumulated over the steps (about 1e-7 relative per step; measured on a
 * Gaussian's closed form: dpmpp-3m at 1000 steps stays above 1e-7 from the exact ODE
 * solution). With a double state they are double for the whole run; the model evaluates the
 * unrounded state in double when it can (analytic Gaussian / GMM models and combinations of
 * them: then dpmpp-3m at 1000 steps is within 4e-9 of the closed form, 1.2e-9 with
 * ::SCORE_SAMPLER_PARAM_START_CORRECTION, and unipc within 1e-9) and otherwise evaluates
 * the state rounded to float (MLP, energy and callback models: float32 networks; the sde's
 * guidance on one network, classifier guidance, observations and thresholding), so that only
 * the solver's own arithmetic gains. Every built-in predictor and corrector has a double
 * state except mala (the ODE, DPM-Solver, multistep and stochastic types, restart, langevin,
 * ald and none); a run with a double state refuses (::SCORE_E_UNSUPPORTED, naming it) a user
 * step type, the mala corrector with steps, known coordinates and a per-step hook (float
 * rows). Noise (the float normals, or the float increments of the Brownian path, widened),
 * grids and row numbering are those of a float run, so both states agree to float precision.
 *
 * Twisted SMC (::SCORE_SAMPLER_PARAM_PARTICLES = K > 1; doc/controllable-generation.md): an
 * asymptotically exact conditional sampler for known coordinates (score_sampler_set_known())
 * or an observation of the sde (score_sde_set_observation()), after the Twisted Diffusion
 * Sampler (Wu et al. 2023). Each output row runs K particles through the predictor's
 * transition with the twisted score (the sde's observation term: the moment method's, or DPS /
 * PiGDM for an observation with ::SCORE_OBS_METHOD_DEFAULT; known coordinates always use the
 * moment method's term, which needs the model's input VJP), weighted by the ratio of the
 * model's and the proposal's Gaussian transition densities times the ratio of the sde's
 * Gaussian likelihood approximations p~(y | x_t) (the twists) at the step's ends; a row
 * resamples (systematic) when its effective sample size falls below
 * ::SCORE_SAMPLER_PARAM_ESS_THRESHOLD K, and returns one particle drawn by the final weights.
 * The target is the model's chain conditioned on the data: for known coordinates, on the known
 * coordinates at the last positive grid time being exactly the known values (then the final
 * denoise, if any, and the values set exactly); for an observation, reweighted by the twist at
 * the last positive time, which tends to the exact likelihood N(y; A x0_hat, sigma_n^2 I) as
 * that time tends to 0. As K grows the output approaches this target (for any prior, mixtures
 * included), up to the grid's discretisation of the model's chain. Predictors: em,
 * reverse-diffusion and ancestral (Gaussian transitions of known density); any other, a
 * corrector with steps, a per-step hook, partial sampling, thresholding and a double state
 * are refused with ::SCORE_E_UNSUPPORTED naming them. The noise of particle j of row r at step
 * k is normal(counter 1 + k, row r, columns j dim .. j dim + dim - 1) (the prior draw: counter
 * 0), the resampling uniforms are at (counter 1 + k, row r, column 2^34) and the final draw at
 * counter 1 + L (L positive-time steps), so results do not depend on the batch split, and
 * particle j of row r is evaluated as global row r K + j. score_sampler_get_ess() reports the
 * weights' effective sample sizes; score_sampler_get_nfe() counts the evaluations of one
 * batch of particles (the model work is K times that of a plain run).
 *
 * Multistep history and workspaces live in the sampler's step objects and are reset at the
 * start of every run: reusing a sampler needs no manual reset. Workspaces grow only when the
 * batch grows. A sampler is object-exclusive; the generator is only read.
 */
#ifndef LIBSCORE_SAMPLER_H
#define LIBSCORE_SAMPLER_H

#include "comm.h"
#include "common.h"
#include "rng.h"
#include "sde.h"
#include "step.h"

SCORE_BEGIN_DECLS

/** @brief Opaque sampling driver. */
typedef struct score_sampler score_sampler;

/**
 * @brief Sampler parameters (pinned ids; object kind ::SCORE_OBJECT_SAMPLER, 100-199).
 *
 * They may be changed between runs and take effect at the next run. Step parameters are
 * pushed to the sampler's steps at the start of every run.
 */
enum score_sampler_param {
    /** i64: number of steps N, 0..100000000, default 20; 0 = as many grid times in (0, T] as
     *  the schedule has levels (score_schedule_num_levels(); N = L with FINAL_DENOISE, L - 1
     *  without), which with ::SCORE_GRID_UNIFORM_T visits a discrete schedule's levels. */
    SCORE_SAMPLER_PARAM_NUM_STEPS = 100,
    /** i64: a ::score_grid_kind, 1..6, default ::SCORE_GRID_UNIFORM_T. */
    SCORE_SAMPLER_PARAM_GRID = 101,
    /** i64: 1 = the last step goes to t = 0 and returns the data prediction (Tweedie denoise),
     *  0 = stop at t_eps; default 0. A user grid decides by itself (last value 0 or not). */
    SCORE_SAMPLER_PARAM_FINAL_DENOISE = 102,
    /** i64: 1 = lower-order final steps of the multistep predictors (dpmpp-2m, dpmpp-3m,
     *  dpmpp-2m-sde, lms, deis, unipc, unipc-bh1) for runs of fewer than 10 steps, 0 = never;
     *  default 1. Singlestep predictors are not affected. */
    SCORE_SAMPLER_PARAM_LOWER_ORDER_FINAL = 103,
    /** i64: corrector steps per grid point m, 0..1000000, default 1 (ignored without corrector). */
    SCORE_SAMPLER_PARAM_CORRECTOR_STEPS = 104,
    /** f64: Langevin / ALD signal-to-noise ratio, [1e-12, 1e6], default 0.16. */
    SCORE_SAMPLER_PARAM_SNR = 105,
    /** f64: eta of ddim / euler-ancestral / dpmpp-2m-sde, [-1, 1000], default -1 = the type's default. */
    SCORE_SAMPLER_PARAM_ETA = 106,
    /** f64: EDM S_churn (heun): gamma = min(S_churn / N, sqrt(2) - 1), [0, 1e6], default 0. */
    SCORE_SAMPLER_PARAM_CHURN = 107,
    /** f64: EDM S_tmin, [0, 1e30], default 0. */
    SCORE_SAMPLER_PARAM_S_TMIN = 108,
    /** f64: EDM S_tmax, [0, 1e30], default 1e30. */
    SCORE_SAMPLER_PARAM_S_TMAX = 109,
    /** f64: S_noise, [0, 100], default 1. */
    SCORE_SAMPLER_PARAM_S_NOISE = 110,
    /** f64: fixed Langevin step size, [0, 1e12], default 0 = SNR rule. */
    SCORE_SAMPLER_PARAM_STEP_SIZE = 111,
    /** f64: ALD step_lr epsilon (step e_i = epsilon sigma_i^2 / sigma_L^2 with sigma_L the
     *  marginal std at the last positive grid time), [0, 1e12], default 0 = score_sde's ALD
     *  rule. */
    SCORE_SAMPLER_PARAM_STEP_LR = 112,
    /** f64: relative tolerance of adaptive solves, [0, 1], default 1e-5 (score_sde). */
    SCORE_SAMPLER_PARAM_RTOL = 113,
    /** f64: absolute tolerance of adaptive solves, [0, 1e6], default 1e-5. */
    SCORE_SAMPLER_PARAM_ATOL = 114,
    /** f64: initial step size in lambda, [0, 1e3], default 0 = 0.05. */
    SCORE_SAMPLER_PARAM_H_INIT = 115,
    /** f64: smallest step size in lambda, [0, 1e3], default 1e-10. */
    SCORE_SAMPLER_PARAM_H_MIN = 116,
    /** i64: largest number of adaptive attempts, 1..1000000000, default 100000. */
    SCORE_SAMPLER_PARAM_MAX_STEPS = 117,
    /** i64: 1 = adaptive solve when the predictor has an error estimate, 0 = fixed grid;
     *  default 1. */
    SCORE_SAMPLER_PARAM_ADAPTIVE = 118,
    /** i64: Langevin step-size rule of the corrector, 0..2, default 2 = noise-level ratio
     *  (batch-invariant; a step made alone defaults to 0); 0 = batch means of the norms
     *  (score_sde; results then depend on the batch), 1 = row norms (see
     *  ::SCORE_STEP_PARAM_SNR_NORM). */
    SCORE_SAMPLER_PARAM_SNR_NORM = 119,
    /** i64: discretization N of reverse-diffusion / ancestral, 0..1000000, default 0 = exact
     *  transitions between grid points (see ::SCORE_STEP_PARAM_DISC_N). */
    SCORE_SAMPLER_PARAM_DISC_N = 120,
    /** i64: order cap of the predictor, 0..3, default 0 = the type's order. */
    SCORE_SAMPLER_PARAM_ORDER = 121,
    /** i64: intermediate points of the singlestep DPM-Solver++ predictors, 0..1, default 0
     *  (see ::SCORE_STEP_PARAM_SUBSTEP). @since 0.2 */
    SCORE_SAMPLER_PARAM_SUBSTEP = 122,
    /** i64: coefficients of a dpmpp-3m predictor, 0..1, default 0 = third order, 1 = the
     *  published DPM-Solver++(3M) (see ::SCORE_STEP_PARAM_DPMPP_3M_FORM). @since 0.2 */
    SCORE_SAMPLER_PARAM_DPMPP_3M_FORM = 123,
    /** f64: partial sampling (SDEdit), [-1, 1], default -1 = off. With a strength s in [0, 1]
     *  the run's @p x_init is *data*: of the K steps of the grid the run keeps the last
     *  floor(s K) (a product within 1e-9 of an integer counts as that integer), starts at the
     *  first kept time t0 from `alpha(t0) x_init + sigma(t0) z` (z: the prior draw's normals,
     *  counter offset 0) and samples to the grid's end. s = 0 (no step kept) returns @p x_init
     *  unchanged; s = 1 (every step kept) is unconditional sampling: the prior draw at the
     *  grid's first time, bit-identical to a run without @p x_init, the data unused. The
     *  adaptive solver integrates from t0. x_init is required (::SCORE_E_INVAL otherwise).
     *  doc/controllable-generation.md. @since 0.2 */
    SCORE_SAMPLER_PARAM_STRENGTH = 124,
    /** i64: Brownian-consistent noise of the predictor, 0..1, default 0 (see
     *  ::SCORE_STEP_PARAM_BROWNIAN; the corrector keeps its counter-keyed noise). @since 0.2 */
    SCORE_SAMPLER_PARAM_BROWNIAN = 125,
    /** f64: restart interval lower end s_min (::SCORE_STEP_PARAM_RESTART_SMIN), default 0.1.
     *  @since 0.2 */
    SCORE_SAMPLER_PARAM_RESTART_SMIN = 126,
    /** f64: restart interval upper end s_max (::SCORE_STEP_PARAM_RESTART_SMAX), default 2.
     *  @since 0.2 */
    SCORE_SAMPLER_PARAM_RESTART_SMAX = 127,
    /** i64: restart cycles K (::SCORE_STEP_PARAM_RESTART_K), default 2. @since 0.2 */
    SCORE_SAMPLER_PARAM_RESTART_K = 128,
    /** i64: Heun steps per restart cycle (::SCORE_STEP_PARAM_RESTART_STEPS), default 9.
     *  @since 0.2 */
    SCORE_SAMPLER_PARAM_RESTART_STEPS = 129,
    /** i64: a ::score_control_norm of the adaptive mode (::SCORE_SAMPLER_PARAM_ADAPTIVE = 1),
     *  0..1, default 0 = per row (a row's sample does not depend on the other rows); 1 = the
     *  error over the whole batch, as scipy's solve_ivp and score_sde's ODE sampler measure
     *  it (doc/samplers.md, "Evolve and control"). @since 0.2 */
    SCORE_SAMPLER_PARAM_ERROR_NORM = 130,
    /** i64: precision of the run's state, 32 or 64, default 32. 64: x, the multistep history
     *  and the step's stage values are kept in double for the whole run, also by
     *  score_sampler_run() (its float x_init is widened, the result rounded once at the end);
     *  score_sampler_run_f64() always runs with a double state. See "Precision" in the file
     *  comment. Setting 64 fails with ::SCORE_E_UNSUPPORTED (the message names the type) when
     *  the predictor has no double state (::SCORE_STEP_PARAM_PRECISION). @since 0.2 */
    SCORE_SAMPLER_PARAM_PRECISION = 131,
    /** i64: particles K per output row of twisted sequential Monte Carlo, 1..1000000,
     *  default 1 = off (see "Twisted SMC" in the file comment). K > 1 needs something to
     *  condition on (known coordinates or an sde observation; else ::SCORE_E_INVAL) and costs
     *  K times the model evaluations of a plain run. @since 0.2 */
    SCORE_SAMPLER_PARAM_PARTICLES = 132,
    /** f64: resampling threshold of twisted SMC, [0, 1], default 0.5: after a step, the
     *  particles of a row are resampled when their effective sample size is below threshold
     *  times K (0 = never, 1 = whenever the weights are not all equal). @since 0.2 */
    SCORE_SAMPLER_PARAM_ESS_THRESHOLD = 133,
    /** i64: DPM-Solver's order sequence for a budget ("DPM-Solver-fast"), 0..2, default 0 =
     *  off. For the singlestep predictors (dpm-solver-1/2/3, dpmpp-2s, dpmpp-3s; setting 1 or
     *  2 with another predictor fails with ::SCORE_E_UNSUPPORTED)
     *  ::SCORE_SAMPLER_PARAM_NUM_STEPS is then the budget B of model evaluations, and the run
     *  takes K steps whose orders sum to B, with k the predictor's order (capped by
     *  ::SCORE_SAMPLER_PARAM_ORDER): k = 3: K = floor(B / 3) + 1 steps of order 3, the last
     *  two of order 2 and 1 when 3 divides B, the last of order B mod 3 otherwise; k = 2: K =
     *  ceil(B / 2) steps of order 2, the last of order 1 when B is odd; k = 1: B steps of
     *  order 1. The K steps end at: 1 = the points of the grid of K steps of the grid kind
     *  (the reference's rule for its log-SNR spacing); 2 = the points of the grid of B steps
     *  at the cumulative orders (its rule for the other spacings). With
     *  ::SCORE_SAMPLER_PARAM_FINAL_DENOISE a step to t = 0 follows (B + 1 evaluations). A user
     *  grid (score_sampler_set_grid()) and partial sampling (::SCORE_SAMPLER_PARAM_STRENGTH)
     *  are refused with ::SCORE_E_UNSUPPORTED. score_sampler_get_grid() returns the K + 1
     *  step ends. A run equals stepping by hand over those ends with score_step_apply() and
     *  ::SCORE_STEP_PARAM_ORDER set to each step's order (bit for bit, tested). @since 0.2 */
    SCORE_SAMPLER_PARAM_ORDER_SEQUENCE = 134,
    /** i64: start correction of a dpmpp-2m / dpmpp-3m predictor
     *  (::SCORE_STEP_PARAM_START_CORRECTION), 0..1, default 0 = off (the published first-order
     *  start); 1 = the first step made second order at no extra evaluation, so dpmpp-3m
     *  converges at third order from the start. @since 0.2 */
    SCORE_SAMPLER_PARAM_START_CORRECTION = 135
};

/** @brief Presets of score_sampler_new_preset() (pinned values). */
enum score_sampler_preset {
    /** score_sde PC sampler: reverse-diffusion predictor + Langevin corrector, snr 0.16, one
     *  corrector step, N = 1000, uniform t, final denoise. */
    SCORE_SAMPLER_PRESET_PC = 1,
    /** score_sde probability-flow sampler: dopri5, adaptive, rtol = atol = 1e-5, no denoise. */
    SCORE_SAMPLER_PRESET_ODE = 2,
    /** NCSN annealed Langevin (Song & Ermon 2019): predictor none, corrector ald,
     *  step_lr 2e-5, 100 steps per level, every level of the schedule, no final denoise. */
    SCORE_SAMPLER_PRESET_NCSN = 3,
    /** NCSNv2 (Song & Ermon 2020): as NCSN with step_lr 6.2e-6, 5 steps per level, final
     *  denoise. */
    SCORE_SAMPLER_PRESET_NCSNV2 = 4,
    /** EDM (Karras et al. 2022): heun, Karras grid, N = 18 with the final step to 0 (35 NFE). */
    SCORE_SAMPLER_PRESET_EDM = 5,
    /** DPM-Solver++(2M), 20 steps, uniform lambda, lower-order final steps. */
    SCORE_SAMPLER_PRESET_DPMPP_2M = 6
};

/**
 * @brief Progress / cancel callback, called before each grid step (adaptive: before each
 *        attempt).
 * @param step steps done so far. @param total steps of the run (0 when unknown: adaptive).
 * @param t current time (adaptive: of the slowest row). @param user_data from the run call.
 * @return 0 to continue; non-zero stops the run with ::SCORE_E_CANCELLED.
 * @since 0.1
 */
typedef int SCORE_CALLBACK(score_sampler_progress_fn)(size_t step, size_t total, double t,
                                                      void *user_data);

/**
 * @brief Per-step hook, called after each predictor step of a fixed-grid run with the rows at
 *        @p t_next (and once after an adaptive solve). It may modify @p x in place
 *        (thresholding, inpainting masks, ...).
 * @param step index k of the step just taken. @param t its start time. @param t_next its end time.
 * @param row0 global index of row 0. @param n rows. @param dim dimension.
 * @param x n * dim values (in/out). @param user_data from score_sampler_set_hook().
 * @return 0 to continue; non-zero stops the run with ::SCORE_E_CALLBACK.
 * @since 0.1
 */
typedef int SCORE_CALLBACK(score_sampler_hook_fn)(size_t step, double t, double t_next,
                                                  size_t row0, size_t n, size_t dim, float *x,
                                                  void *user_data);

/**
 * @brief Creates a sampler from a predictor and an optional corrector step type.
 * @param[out] out the new sampler; NULL on failure.
 * @param[in] predictor predictor type (any type; "none" for annealed Langevin).
 * @param[in] corrector corrector type (e.g. "langevin", "ald"), or NULL for none.
 * @param[in] dim data dimension, 1 .. 2^24.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p out or @p predictor, a user type without apply
 *         function); ::SCORE_E_RANGE (@p dim); ::SCORE_E_CALLBACK (user state allocation);
 *         ::SCORE_E_NOMEM.
 * Ownership: free with score_sampler_free(); user types are copied.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_sampler_new(score_sampler **out,
                                                  const score_step_type *predictor,
                                                  const score_step_type *corrector, size_t dim);

/**
 * @brief Creates a sampler from a preset (::score_sampler_preset); parameters can be changed
 *        afterwards.
 * @param[out] out the new sampler. @param[in] preset the preset. @param[in] dim dimension.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p out); ::SCORE_E_UNSUPPORTED (unknown preset);
 *         ::SCORE_E_RANGE (@p dim); ::SCORE_E_NOMEM.
 * Ownership: free with score_sampler_free().
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_sampler_new_preset(score_sampler **out, int preset,
                                                         size_t dim);

/**
 * @brief Frees a sampler. NULL is a no-op.
 * @param[in] s the sampler.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API void score_sampler_free(score_sampler *s);

/**
 * @brief Sets a floating-point parameter (::score_sampler_param).
 * @param[in,out] s the sampler. @param[in] param the id. @param[in] value the value.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL, or an integer parameter); ::SCORE_E_RANGE
 *         (out of bounds or NaN; ::SCORE_SAMPLER_PARAM_PRECISION other than 32 and 64);
 *         ::SCORE_E_UNSUPPORTED (unknown id; precision 64 with a predictor without a double
 *         state).
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_sampler_set_f64(score_sampler *s, int param, double value);

/**
 * @brief Sets an integer parameter (::score_sampler_param).
 * @param[in,out] s the sampler. @param[in] param the id. @param[in] value the value.
 * @return as score_sampler_set_f64().
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_sampler_set_i64(score_sampler *s, int param, int64_t value);

/**
 * @brief Reads a floating-point parameter.
 * @param[in] s the sampler. @param[in] param the id. @param[out] out the value.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL, or an integer parameter); ::SCORE_E_UNSUPPORTED.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_sampler_get_f64(const score_sampler *s, int param,
                                                      double *out);

/**
 * @brief Reads an integer parameter.
 * @param[in] s the sampler. @param[in] param the id. @param[out] out the value.
 * @return as score_sampler_get_f64().
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_sampler_get_i64(const score_sampler *s, int param,
                                                      int64_t *out);

/**
 * @brief Uses a caller-supplied time grid instead of the schedule's (or, with n = 0 / NULL,
 *        goes back to the schedule's grid). The grid is checked against the sde's schedule at
 *        run time (score_schedule_check_grid()): strictly decreasing times in [t_eps, T], the
 *        last possibly 0 (then the last step is the data prediction).
 * @param[in,out] s the sampler. @param[in] n number of times (>= 2), or 0.
 * @param[in] grid n times, copied; NULL with n = 0.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p s, NULL @p grid with n > 0, n = 1, a
 *         non-finite or negative time, not strictly decreasing); ::SCORE_E_NOMEM.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_sampler_set_grid(score_sampler *s, size_t n,
                                                       const double *grid);

/**
 * @brief The grid a run with this sampler and @p sde would use.
 * @param[in] s the sampler. @param[in] sde the system (its schedule).
 * @param[in] len capacity of @p out. @param[out] out the times, or NULL to query the size.
 * @param[out] n_out number of times.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer); ::SCORE_E_SHAPE (@p len too small);
 *         errors of score_schedule_time_grid() / score_schedule_check_grid().
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_sampler_get_grid(const score_sampler *s,
                                                       const score_sde *sde, size_t len,
                                                       double *out, size_t *n_out);

/**
 * @brief Sets (or with NULL removes) the per-step hook.
 * @param[in,out] s the sampler. @param[in] fn the hook or NULL.
 * @param[in] user_data passed to @p fn; borrowed: must stay valid during runs.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p s).
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_sampler_set_hook(score_sampler *s, score_sampler_hook_fn fn,
                                                       void *user_data);

/**
 * @brief Sets (or with @p n_rows = 0 removes) known coordinates: imputation / inpainting with
 *        score_sde's replacement semantics.
 *
 * After every update of x in a run — the start values, each corrector step, each predictor
 * step, each adaptive attempt — the known coordinates of a row are set to the known data
 * brought to the current time t by the forward process, `alpha(t) y + sigma(t) z`, and at the
 * end of the run to `y` exactly. Inner stages of a step (Heun, RK, dopri5, singlestep
 * DPM-Solver, ...) evaluate the model with the known coordinates imposed in the same way at
 * the stage's time: for the duration of a run the sampler overlays the sde's evaluations
 * (score_sde_score() .. score_sde_pf_drift()), so every step type, user types included, sees
 * them. The noise z of update c (the counter offset of the corrector or predictor step it
 * accompanies, see the file comment; adaptive attempt a: 1 + a; the start: 0) of global row r
 * is normal(counter c, row r, columns 2^33 .. 2^33 + dim - 1): fresh for every (row, update),
 * independent of the steps' own noise and of the batch split. A run with known coordinates
 * needs a generator. For linear inverse problems with a mask this is the projection
 * (replacement) method (doc/controllable-generation.md).
 *
 * With ::SCORE_SDE_PARAM_OBS_METHOD = ::SCORE_OBS_METHOD_MOMENT on the run's sde, the known
 * coordinates are instead an observation of each row that the sde's moment method conditions
 * on (exact for Gaussian data; see "Inverse problems" in sde.h): nothing is imposed during the
 * run, no noise is drawn for them (a run from given x_T then needs no generator), and they are
 * set to `y` exactly at the end. The model must then provide an input VJP (else the run fails
 * with ::SCORE_E_UNSUPPORTED), and the sde must have no observation and no guidance.
 *
 * With ::SCORE_SAMPLER_PARAM_PARTICLES > 1 (twisted SMC, see the file comment) the known
 * coordinates are conditioned on by the moment method's term and likelihood whatever the sde's
 * ::SCORE_SDE_PARAM_OBS_METHOD (replacement has no likelihood to weight with), with the same
 * requirements, and the particles' weights make the result asymptotically exact.
 *
 * @param[in,out] s the sampler.
 * @param[in] n_rows rows of the mask: 1 = the same mask and values for every row, otherwise
 *            one row per global row 0 .. n_rows - 1 (a run's rows row0 .. row0 + n - 1 must
 *            lie inside, else the run fails with ::SCORE_E_SHAPE); 0 removes the mask.
 * @param[in] mask n_rows * dim values, 1 = known, 0 = to sample; copied.
 * @param[in] values n_rows * dim values; read where the mask is 1 (finite), ignored (may be
 *            NaN) where it is 0; copied.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p s, NULL @p mask or @p values with n_rows > 0, a
 *         mask value other than 0 and 1); ::SCORE_E_NUMERIC (a known value NaN or infinite);
 *         ::SCORE_E_RANGE (n_rows > 2^32); ::SCORE_E_NOMEM. On failure the previous mask stays.
 * Thread-safety: object-exclusive.
 * @since 0.2
 */
SCORE_API SCORE_WARN_UNUSED int score_sampler_set_known(score_sampler *s, size_t n_rows,
                                                        const uint8_t *mask,
                                                        const float *values);

/**
 * @brief Draws @p n samples (rows 0 .. n-1).
 *
 * Equivalent to score_sampler_run_ex() with row0 = 0.
 * @param[in,out] s the sampler. @param[in,out] sde the system (dimension = the sampler's).
 * @param[in] n rows (0 is a no-op). @param[in] x_init n * dim start values at the grid's first
 *            time, or NULL for a prior draw (with ::SCORE_SAMPLER_PARAM_STRENGTH >= 0: the data
 *            to start from, required). @param[out] out n * dim samples (may equal
 *            @p x_init).
 * @param[in] rng the generator (only read; its counter selects the noise); may be NULL only
 *            when @p x_init is given and every step is deterministic.
 * @param[in] progress progress / cancel callback or NULL. @param[in] user_data for @p progress.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL pointer, missing generator, invalid grid);
 *         ::SCORE_E_SHAPE (dimension mismatch); ::SCORE_E_RANGE (a grid or counter out of
 *         range); ::SCORE_E_NUMERIC (NaN or infinity in a start value, a model output or a
 *         step result: the message names the step); ::SCORE_E_CALLBACK (model, user step or
 *         hook callback failed); ::SCORE_E_CANCELLED (the progress callback asked to stop;
 *         @p out holds the state reached); ::SCORE_E_NOPROGRESS (adaptive solve failed);
 *         ::SCORE_E_NOMEM.
 * Thread-safety: object-exclusive for @p s and @p sde; the sde's model and @p rng are only
 *         read, so they may be shared with other threads' samplers (each with its own sde).
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_sampler_run(score_sampler *s, score_sde *sde,
                                                  size_t n, const float *x_init,
                                                  float *out, const score_rng *rng,
                                                  score_sampler_progress_fn progress,
                                                  void *user_data);

/**
 * @brief Draws the rows row0 .. row0 + n - 1 of a larger sample: the result equals those rows
 *        of a single run over all rows.
 * @param[in,out] s the sampler. @param[in,out] sde the system.
 * @param[in] row0 global index of the first row (row0 + n <= 2^32). @param[in] n rows.
 * @param[in] x_init start values or NULL. @param[out] out n * dim samples.
 * @param[in] rng the generator.
 * @param[in] progress callback or NULL. @param[in] user_data for @p progress.
 * @return as score_sampler_run().
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_sampler_run_ex(score_sampler *s, score_sde *sde,
                                                     size_t row0, size_t n, const float *x_init,
                                                     float *out, const score_rng *rng,
                                                     score_sampler_progress_fn progress,
                                                     void *user_data);

/**
 * @brief score_sampler_run() with double arrays and a double-precision state (whatever
 *        ::SCORE_SAMPLER_PARAM_PRECISION says): x_init, the state of the whole run and the
 *        result are double (see "Precision" in the file comment).
 * @param[in,out] s the sampler. @param[in,out] sde the system.
 * @param[in] n rows. @param[in] x_init n * dim doubles, or NULL (as in score_sampler_run()).
 * @param[out] out n * dim doubles (may equal @p x_init). @param[in] rng the generator.
 * @param[in] progress callback or NULL. @param[in] user_data for @p progress.
 * @return as score_sampler_run(); ::SCORE_E_UNSUPPORTED (a predictor or corrector without a
 *         double state, known coordinates or a per-step hook; the message names it).
 * Thread-safety: as score_sampler_run().
 * @since 0.2
 */
SCORE_API SCORE_WARN_UNUSED int score_sampler_run_f64(score_sampler *s, score_sde *sde,
                                                      size_t n, const double *x_init,
                                                      double *out, const score_rng *rng,
                                                      score_sampler_progress_fn progress,
                                                      void *user_data);

/**
 * @brief score_sampler_run_ex() with double arrays and a double-precision state: the rows
 *        row0 .. row0 + n - 1 of score_sampler_run_f64() over all rows.
 * @param[in,out] s the sampler. @param[in,out] sde the system.
 * @param[in] row0 global index of the first row (row0 + n <= 2^32). @param[in] n rows.
 * @param[in] x_init n * dim doubles or NULL. @param[out] out n * dim doubles.
 * @param[in] rng the generator.
 * @param[in] progress callback or NULL. @param[in] user_data for @p progress.
 * @return as score_sampler_run_f64().
 * Thread-safety: object-exclusive.
 * @since 0.2
 */
SCORE_API SCORE_WARN_UNUSED int score_sampler_run_ex_f64(score_sampler *s, score_sde *sde,
                                                         size_t row0, size_t n,
                                                         const double *x_init, double *out,
                                                         const score_rng *rng,
                                                         score_sampler_progress_fn progress,
                                                         void *user_data);

/**
 * @brief Splits the rows of the sampler's runs over the ranks of @p comm (comm.h).
 *
 * With a communicator, score_sampler_run_ex() (and score_sampler_run(), and
 * score_genmodel_sample() through it) is a collective: every rank calls it with the same
 * arguments; rank r solves its contiguous share of the n rows (score_comm_share()) with their
 * global row numbers, so each row is bit-identical to a one-process run; the ranks agree on the
 * status (an error on any rank is returned on every rank) and every rank receives all n rows
 * in @p out. The step and NFE counters and the progress callback are this rank's.
 * @param[in,out] s the sampler. @param[in] comm the communicator (borrowed: it must outlive its
 *            use), or NULL to run every row in this process.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL s).
 * Thread-safety: object-exclusive.
 * @since 0.2
 */
SCORE_API SCORE_WARN_UNUSED int score_sampler_set_comm(score_sampler *s, score_comm *comm);

/**
 * @brief Batched model evaluations of the last run (NFE per sample).
 * @param[in] s the sampler.
 * @return the count; 0 for NULL.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API uint64_t score_sampler_get_nfe(const score_sampler *s);

/**
 * @brief Accepted predictor steps of the last run (adaptive: of the slowest row).
 * @param[in] s the sampler.
 * @return the count; 0 for NULL.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API uint64_t score_sampler_get_steps(const score_sampler *s);

/**
 * @brief Effective sample sizes of the last twisted SMC run (::SCORE_SAMPLER_PARAM_PARTICLES
 *        > 1), each between 1 and K: for a run without particles (or one that failed before
 *        its first row) every value is 0. With a communicator, this rank's rows.
 * @param[in] s the sampler.
 * @param[out] mean_out the mean over the rows of the effective sample size of the final
 *             weights (from which the output particle is drawn), or NULL.
 * @param[out] min_out the smallest effective sample size of a row at any step, or NULL.
 * @param[out] resamples_out the number of (row, step) pairs that resampled, or NULL.
 * @return ::SCORE_OK; ::SCORE_E_INVAL (NULL @p s).
 * Thread-safety: safe for concurrent readers.
 * @since 0.2
 */
SCORE_API SCORE_WARN_UNUSED int score_sampler_get_ess(const score_sampler *s, double *mean_out,
                                                      double *min_out,
                                                      uint64_t *resamples_out);

/**
 * @brief Rejected row-steps of the last adaptive run (0 for fixed grids).
 * @param[in] s the sampler.
 * @return the count; 0 for NULL.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API uint64_t score_sampler_get_failed_steps(const score_sampler *s);

SCORE_END_DECLS

#endif /* LIBSCORE_SAMPLER_H */
