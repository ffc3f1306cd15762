/**
 * @file schedule.h
 * @brief Noise schedules and linear SDEs: VE, VP, sub-VP (continuous), NCSN sigma ladders and
 * DDPM beta tables (discrete), user sigma / beta arrays, and time grids for samplers.
 *
 * Every schedule describes the forward (noising) process
 * `x_t = alpha(t) * x_0 + sigma(t) * eps`, `eps ~ N(0, I)`, for `t` in `[0, T]`, together with
 * the linear SDE `dx = f_coef(t) x dt + g(t) dw` whose marginals these are. The half log-SNR is
 * `lambda(t) = log alpha(t) - log sigma(t)`, strictly decreasing in `t`; the EDM noise level is
 * `sigma_edm(t) = sigma(t) / alpha(t) = exp(-lambda(t))`.
 *
 * Kinds (definitions of score_sde, NCSN, DDPM, improved DDPM; see doc/schedules.md):
 * - ::SCORE_SCHEDULE_VE: `alpha = 1`, `sigma(t) = sigma_min (sigma_max / sigma_min)^t`,
 *   `f = 0`, `g = sigma(t) sqrt(2 ln(sigma_max / sigma_min))`; prior `N(0, sigma(T)^2 I)`.
 * - ::SCORE_SCHEDULE_VP: `beta(t) = beta_min + t (beta_max - beta_min)`,
 *   `log alpha = -t^2 (beta_max - beta_min) / 4 - t beta_min / 2`, `sigma = sqrt(1 - alpha^2)`,
 *   `f = -beta(t) / 2`, `g = sqrt(beta(t))`; prior `N(0, I)`.
 * - ::SCORE_SCHEDULE_SUBVP: alpha as VP, `sigma = 1 - alpha^2` (no square root),
 *   `g = sqrt(beta(t) (1 - alpha^4))`; prior `N(0, I)`.
 * - Discrete kinds (::SCORE_SCHEDULE_NCSN, ::SCORE_SCHEDULE_DDPM_LINEAR,
 *   ::SCORE_SCHEDULE_DDPM_SCALED_LINEAR, ::SCORE_SCHEDULE_DDPM_COSINE, ::SCORE_SCHEDULE_SIGMAS,
 *   ::SCORE_SCHEDULE_BETAS) have `L` levels `i = 0 .. L-1` in order of increasing noise
 *   (level 0 is the least noisy). Level `i` sits at time `t_i = T (i + 1) / L` (as DPM-Solver's
 *   discrete `NoiseScheduleVP`), and the continuous-time view between levels is piecewise
 *   linear in `log alpha` (DDPM-type, `alpha = sqrt(alpha_bar)`, `sigma = sqrt(1 - alpha_bar)`,
 *   with the extra point `log alpha(0) = 0`) or in `log sigma` (VE-type, `alpha = 1`, extended
 *   below `t_0` with the slope of the first piece). Within each piece `f_coef = d log alpha / dt`
 *   and `g^2 = d sigma^2 / dt - 2 f_coef sigma^2`, so the Fokker-Planck relation
 *   `d sigma^2 / dt = 2 f_coef sigma^2 + g^2` holds piecewise.
 *
 * Lifecycle: a schedule is *configuring* after score_schedule_new() /
 * score_schedule_new_preset(); parameters are set with the typed setters (ids in
 * ::score_schedule_param). score_schedule_prepare(), or the first query, validates parameter
 * combinations and makes the schedule *prepared* (immutable); setters then fail with
 * ::SCORE_E_STAGE. Preparing never allocates (tables are allocated by the setters that size
 * them), and queries never allocate.
 *
 * Thread-safety: a prepared schedule is immutable and may be queried from several threads at
 * once. The first query of an unprepared schedule prepares it and is therefore
 * object-exclusive: call score_schedule_prepare() before sharing a schedule.
 *
 * Argument conventions of the batched queries: `t` holds `n` times in `[0, T]`; a NaN or
 * infinite time gives ::SCORE_E_NUMERIC and a finite time outside `[0, T]` gives
 * ::SCORE_E_RANGE, before any output is written. On `[t_eps, T]` every result is finite.
 * Outputs must not alias inputs unless stated.
 */
#ifndef LIBSCORE_SCHEDULE_H
#define LIBSCORE_SCHEDULE_H

#include "common.h"
#include "rng.h"

SCORE_BEGIN_DECLS

/** @brief Opaque noise-schedule handle. */
typedef struct score_schedule score_schedule;

/** @brief Schedule kinds (pinned values). */
enum score_schedule_kind {
    SCORE_SCHEDULE_VE = 1,                 /**< Variance-exploding SDE (Song et al. 2021), continuous. */
    SCORE_SCHEDULE_VP = 2,                 /**< Variance-preserving SDE, linear beta(t) (Song et al. 2021), continuous. */
    SCORE_SCHEDULE_SUBVP = 3,              /**< Sub-VP SDE (Song et al. 2021), continuous. */
    SCORE_SCHEDULE_NCSN = 4,               /**< Geometric sigma ladder (Song & Ermon 2019/2020), VE-type, discrete. */
    SCORE_SCHEDULE_DDPM_LINEAR = 5,        /**< DDPM betas linspace(beta_start, beta_end, L) (Ho et al. 2020), discrete. */
    SCORE_SCHEDULE_DDPM_SCALED_LINEAR = 6, /**< Betas linspace(sqrt(beta_start), sqrt(beta_end), L)^2 (Stable Diffusion), discrete. */
    SCORE_SCHEDULE_DDPM_COSINE = 7,        /**< Cosine alpha-bar with offset s (Nichol & Dhariwal 2021), discrete. */
    SCORE_SCHEDULE_SIGMAS = 8,             /**< User sigma array (VE-type, alpha = 1), discrete; see score_schedule_set_array(). */
    SCORE_SCHEDULE_BETAS = 9               /**< User beta array (DDPM-type), discrete; see score_schedule_set_array(). */
};

/**
 * @brief Schedule parameter ids (pinned; object kind ::SCORE_OBJECT_SCHEDULE, ids 200-299).
 *
 * Setting or getting a parameter that does not apply to the schedule's kind gives
 * ::SCORE_E_UNSUPPORTED. Bounds are inclusive and checked by the setter (::SCORE_E_RANGE);
 * relations between parameters (e.g. `sigma_min < sigma_max`) are checked by
 * score_schedule_prepare() (::SCORE_E_INVAL). The defaults are those of score_sde
 * (VE, VP, sub-VP with N = 1000) and of DDPM; presets change them.
 */
enum score_schedule_param {
    /** f64: smallest noise level sigma_min, [1e-10, 1e10], default 0.01. VE, NCSN. */
    SCORE_SCHEDULE_PARAM_SIGMA_MIN = 200,
    /** f64: largest noise level sigma_max, [1e-10, 1e10], default 50. VE, NCSN. */
    SCORE_SCHEDULE_PARAM_SIGMA_MAX = 201,
    /** f64: beta(0) of the continuous beta(t), [1e-10, 1e4], default 0.1. VP, sub-VP. */
    SCORE_SCHEDULE_PARAM_BETA_MIN = 202,
    /** f64: beta(1) of the continuous beta(t), [1e-10, 1e4], default 20. VP, sub-VP. */
    SCORE_SCHEDULE_PARAM_BETA_MAX = 203,
    /** f64: end time T, [1e-6, 1e6], default 1. All kinds (discrete levels sit at T (i+1)/L). */
    SCORE_SCHEDULE_PARAM_T = 204,
    /** f64: small end time t_eps of sampler grids, [1e-12, 1e6], default 1e-5 (score_sde);
     *  must be < T. For discrete kinds, when never set, T / L (the first level, as DPM-Solver);
     *  get returns the value in effect. Presets "vp" and "subvp" use 1e-3 (score_sde sampling). */
    SCORE_SCHEDULE_PARAM_T_EPS = 205,
    /** i64: number of levels L (discrete kinds) or of score_sde discretization steps N
     *  (continuous kinds: size of score_schedule_levels() and the N used by
     *  score_schedule_discretize() when it is given N = 0), [1, 1000000], default 1000.
     *  VE-type discrete kinds need L >= 2. Read-only (::SCORE_E_UNSUPPORTED on set) for
     *  ::SCORE_SCHEDULE_SIGMAS and ::SCORE_SCHEDULE_BETAS, whose L is the array length. */
    SCORE_SCHEDULE_PARAM_NUM_LEVELS = 206,
    /** f64: first per-step beta of DDPM tables, [1e-10, 0.999], default 1e-4. DDPM linear and
     *  scaled-linear. */
    SCORE_SCHEDULE_PARAM_BETA_START = 207,
    /** f64: last per-step beta of DDPM tables, [1e-10, 0.999], default 0.02; must be >= beta_start.
     *  DDPM linear and scaled-linear. */
    SCORE_SCHEDULE_PARAM_BETA_END = 208,
    /** f64: offset s of the cosine schedule, [0, 1], default 0.008. DDPM cosine. */
    SCORE_SCHEDULE_PARAM_COSINE_S = 209,
    /** f64: upper clip of the cosine schedule's betas, [1e-6, 0.9999], default 0.999. DDPM cosine. */
    SCORE_SCHEDULE_PARAM_COSINE_MAX_BETA = 210,
    /** f64: exponent rho of ::SCORE_GRID_KARRAS, [0.01, 1000], default 7. All kinds. */
    SCORE_SCHEDULE_PARAM_RHO = 211,
    /** f64: exponent rho of ::SCORE_GRID_POLYEXPONENTIAL, [0.01, 1000], default 1
     *  (k-diffusion's default; rho = 1 is the exponential grid). All kinds. */
    SCORE_SCHEDULE_PARAM_POLY_RHO = 212,
    /** f64: smallest EDM sigma (= sigma / alpha) of the sigma-space grids (Karras, exponential,
     *  polyexponential), [0, 1e10], default 0 = sigma_edm(t_eps). Must map to a time in
     *  [t_eps, T]. All kinds. */
    SCORE_SCHEDULE_PARAM_GRID_SIGMA_MIN = 213,
    /** f64: largest EDM sigma of the sigma-space grids, [0, 1e10], default 0 = sigma_edm(T).
     *  Must map to a time in [t_eps, T]; the grid then starts at that time instead of T.
     *  All kinds. */
    SCORE_SCHEDULE_PARAM_GRID_SIGMA_MAX = 214,
    /** i64: a ::score_schedule_discretization, default ::SCORE_SCHEDULE_DISC_EXACT.
     *  VP and sub-VP (other kinds have one discretization). */
    SCORE_SCHEDULE_PARAM_DISCRETIZATION = 215
};

/** @brief How score_schedule_discretize() and score_schedule_levels() discretize the
 *  continuous VP and sub-VP SDEs (pinned values). */
enum score_schedule_discretization {
    /** Exact transitions between levels at times `T (i + 1) / N` (alpha-bar of the continuous
     *  schedule at the level times, level -1 = clean data): `1 - beta_i =
     *  alpha_bar(t_i) / alpha_bar(t_{i-1})`. Agrees with score_sde to first order in 1/N and is
     *  valid (no NaN) for every N >= 1. */
    SCORE_SCHEDULE_DISC_EXACT = 1,
    /** score_sde's rule, to reproduce its numbers: VP `beta_i = beta(i T / (N - 1)) T / N`
     *  (`linspace(beta_min/N, beta_max/N, N)` for T = 1), `f_i = sqrt(1 - beta_i) - 1`,
     *  `G_i = sqrt(beta_i)`; sub-VP Euler-Maruyama `f_i = f_coef(t) T / N`,
     *  `G_i = g(t) sqrt(T / N)`. A VP configuration with some beta_i >= 1 (beta_max T >= N,
     *  e.g. N <= 20 with the defaults) is refused with ::SCORE_E_RANGE. */
    SCORE_SCHEDULE_DISC_SCORE_SDE = 2
};

/** @brief Time-grid kinds for score_schedule_time_grid() and score_schedule_sigma_grid()
 *  (pinned values). Grids in sigma space use the EDM sigma `sigma_edm = sigma / alpha` between
 *  `sigma_lo` and `sigma_hi` (::SCORE_SCHEDULE_PARAM_GRID_SIGMA_MIN / _MAX, by default
 *  `sigma_edm(t_eps)` and `sigma_edm(T)`), with `r_k = k / (n - 1)`, `k = 0 .. n-1`. */
enum score_grid_kind {
    SCORE_GRID_UNIFORM_T = 1,        /**< `t_k = T + r_k (t_eps - T)` (score_sde, DPM-Solver "time_uniform"). */
    SCORE_GRID_UNIFORM_LAMBDA = 2,   /**< lambda uniform between lambda(T) and lambda(t_eps) (DPM-Solver "logSNR"). */
    SCORE_GRID_KARRAS = 3,           /**< `sigma_k = (hi^(1/rho) + r_k (lo^(1/rho) - hi^(1/rho)))^rho` (Karras et al. 2022), rho = ::SCORE_SCHEDULE_PARAM_RHO. */
    SCORE_GRID_EXPONENTIAL = 4,      /**< `sigma_k = exp(ln hi + r_k (ln lo - ln hi))` (k-diffusion). */
    SCORE_GRID_POLYEXPONENTIAL = 5,  /**< `sigma_k = exp((1 - r_k)^rho (ln hi - ln lo) + ln lo)`, rho = ::SCORE_SCHEDULE_PARAM_POLY_RHO (k-diffusion). */
    SCORE_GRID_QUADRATIC = 6         /**< `t_k = (sqrt(T) + r_k (sqrt(t_eps) - sqrt(T)))^2` (DPM-Solver "time_quadratic"). */
};

/** @brief Flags of score_schedule_time_grid() and score_schedule_sigma_grid(). */
enum score_grid_flags {
    /** Append one final entry exactly 0.0 after t_eps (or after sigma_lo), which samplers read
     *  as "sigma = 0, alpha = 1: the data". The output then holds n_steps + 1 values. */
    SCORE_GRID_APPEND_ZERO = 1u
};

/**
 * @brief Creates a schedule of the given kind with its default parameters.
 *
 * Defaults: VE sigma 0.01 .. 50; VP and sub-VP beta 0.1 .. 20; T = 1; t_eps = 1e-5; N = 1000
 * (score_sde); NCSN: the same sigma range with 1000 levels; DDPM linear / scaled-linear betas
 * 1e-4 .. 0.02 with 1000 levels; cosine s = 0.008, beta clip 0.999, 1000 levels.
 * ::SCORE_SCHEDULE_SIGMAS and ::SCORE_SCHEDULE_BETAS need score_schedule_set_array() before use.
 *
 * @param[out] out  the new schedule (configuring); NULL on failure.
 * @param[in]  kind a ::score_schedule_kind.
 * @return ::SCORE_OK; ::SCORE_E_INVAL if @p out is NULL; ::SCORE_E_UNSUPPORTED for an unknown
 *         kind; ::SCORE_E_NOMEM.
 * Ownership: the caller owns the schedule; release it with score_schedule_free().
 * Thread-safety: safe.
 * @since 0.1
 * @see score_schedule_new_preset
 */
SCORE_API SCORE_WARN_UNUSED int score_schedule_new(score_schedule **out, int kind);

/**
 * @brief Creates a schedule from a named preset reproducing a published setting.
 *
 * Presets (see doc/schedules.md for sources):
 * - `"ve-cifar10"`: VE, sigma 0.01 .. 50, N = 1000, t_eps = 1e-5 (score_sde, NCSN++ CIFAR-10);
 * - `"ve-toy"`: VE, sigma 0.01 .. 10, N = 1000, t_eps = 1e-5 (2-D toy data; sigma_max about the
 *   largest pairwise distance, Song & Ermon 2020 technique 1);
 * - `"vp"`: VP, beta 0.1 .. 20, N = 1000, t_eps = 1e-3 (score_sde DDPM++ / VP);
 * - `"subvp"`: sub-VP, beta 0.1 .. 20, N = 1000, t_eps = 1e-3 (score_sde sub-VP);
 * - `"ncsn"`: NCSN ladder 1 .. 0.01, L = 10 (Song & Ermon 2019);
 * - `"ncsnv2-cifar10"`: NCSN ladder 50 .. 0.01, L = 232 (Song & Ermon 2020);
 * - `"edm"`: VE, sigma 0.002 .. 80, t_eps = 1e-12 (so sigma(t_eps) = 0.002 to 1e-11), rho = 7
 *   (Karras et al. 2022);
 * - `"ddpm-linear"`: DDPM linear betas 1e-4 .. 0.02, L = 1000 (Ho et al. 2020);
 * - `"ddpm-cosine"`: cosine, s = 0.008, L = 1000 (Nichol & Dhariwal 2021);
 * - `"sd-scaled-linear"`: scaled-linear betas 0.00085 .. 0.012, L = 1000 (Stable Diffusion).
 *
 * The preset only sets parameters: the result is configuring and can be changed further.
 *
 * @param[out] out  the new schedule; NULL on failure.
 * @param[in]  name a preset name (exact, case-sensitive).
 * @return ::SCORE_OK; ::SCORE_E_INVAL if an argument is NULL; ::SCORE_E_UNSUPPORTED for an
 *         unknown name; ::SCORE_E_NOMEM.
 * Ownership: the caller owns the schedule.
 * Thread-safety: safe.
 * @since 0.1
 * @see score_schedule_preset_count, score_schedule_preset_name
 */
SCORE_API SCORE_WARN_UNUSED int score_schedule_new_preset(score_schedule **out, const char *name);

/**
 * @brief Number of named presets.
 * @return the count (at least 10).
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API size_t score_schedule_preset_count(void);

/**
 * @brief Name of the @p i-th preset, for discovery.
 * @param[in] i 0 .. score_schedule_preset_count() - 1.
 * @return a static string; NULL if @p i is out of range.
 * Ownership: static; do not free.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API const char *score_schedule_preset_name(size_t i);

/**
 * @brief Creates an independent copy of a schedule (kind, parameters, user array).
 *
 * The copy is *configuring* even when @p s is prepared, so its parameters (e.g. grid
 * parameters) can still be changed; it prepares on first use like any new schedule.
 *
 * @param[out] out the copy; NULL on failure.
 * @param[in]  s   the schedule to copy.
 * @return ::SCORE_OK; ::SCORE_E_INVAL if an argument is NULL; ::SCORE_E_NOMEM.
 * Ownership: the caller owns the copy.
 * Thread-safety: safe for a prepared @p s; otherwise object-exclusive on @p s.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_schedule_clone(score_schedule **out, const score_schedule *s);

/**
 * @brief Frees a schedule. NULL is a no-op.
 * @param[in] s the schedule.
 * Ownership: takes ownership of @p s.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API void score_schedule_free(score_schedule *s);

/**
 * @brief Sets a double parameter (::score_schedule_param).
 * @param[in,out] s     the schedule (configuring).
 * @param[in]     param the parameter id.
 * @param[in]     value the value, within the parameter's bounds.
 * @return ::SCORE_OK; ::SCORE_E_INVAL if @p s is NULL or the parameter is an integer;
 *         ::SCORE_E_RANGE if @p value is NaN or outside the bounds (the old value stays);
 *         ::SCORE_E_UNSUPPORTED for an unknown id or one that does not apply to the kind;
 *         ::SCORE_E_STAGE if the schedule is prepared.
 * Thread-safety: object-exclusive.
 * @since 0.1
 * @see score_param_info
 */
SCORE_API SCORE_WARN_UNUSED int score_schedule_set_f64(score_schedule *s, int param, double value);

/**
 * @brief Sets an integer parameter (::SCORE_SCHEDULE_PARAM_NUM_LEVELS,
 *        ::SCORE_SCHEDULE_PARAM_DISCRETIZATION).
 * @param[in,out] s     the schedule (configuring).
 * @param[in]     param the parameter id.
 * @param[in]     value the value, within the parameter's bounds.
 * @return as score_schedule_set_f64(); also ::SCORE_E_NOMEM when resizing a level table fails
 *         (the old value stays).
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_schedule_set_i64(score_schedule *s, int param, int64_t value);

/**
 * @brief Reads a double parameter.
 * @param[in]  s     the schedule.
 * @param[in]  param the parameter id.
 * @param[out] out   the value (for ::SCORE_SCHEDULE_PARAM_T_EPS, the value in effect).
 * @return ::SCORE_OK; ::SCORE_E_INVAL if a pointer is NULL or the parameter is an integer;
 *         ::SCORE_E_UNSUPPORTED for an unknown or inapplicable id.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_schedule_get_f64(const score_schedule *s, int param, double *out);

/**
 * @brief Reads an integer parameter (::SCORE_SCHEDULE_PARAM_NUM_LEVELS gives L for every kind).
 * @param[in]  s     the schedule.
 * @param[in]  param the parameter id.
 * @param[out] out   the value.
 * @return ::SCORE_OK; ::SCORE_E_INVAL; ::SCORE_E_UNSUPPORTED.
 * Thread-safety: safe for concurrent readers.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_schedule_get_i64(const score_schedule *s, int param, int64_t *out);

/**
 * @brief Sets the user array of a ::SCORE_SCHEDULE_SIGMAS or ::SCORE_SCHEDULE_BETAS schedule.
 *
 * SIGMAS: @p n >= 2 noise levels sigma_i > 0, strictly monotone in either order (they are
 * stored in increasing order: level 0 is the smallest sigma). BETAS: @p n >= 1 per-step betas
 * in (0, 1) in forward order (beta_0 first); `alpha_bar_i = prod_{j <= i} (1 - beta_j)`.
 * The array is copied; L becomes @p n.
 *
 * @param[in,out] s      the schedule (configuring).
 * @param[in]     n      number of values, 1 .. 1000000 (2 .. for SIGMAS).
 * @param[in]     values @p n doubles.
 * @return ::SCORE_OK; ::SCORE_E_INVAL if a pointer is NULL, a value is not finite, not
 *         positive / not in (0, 1), or sigmas are not strictly monotone; ::SCORE_E_SHAPE if
 *         @p n is out of range; ::SCORE_E_UNSUPPORTED for other kinds; ::SCORE_E_STAGE if
 *         prepared; ::SCORE_E_NOMEM.
 * Ownership: @p values stays the caller's.
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_schedule_set_array(score_schedule *s, size_t n,
                                                         const double *values);

/**
 * @brief Validates the parameter combination and makes the schedule immutable.
 *
 * Checks sigma_min < sigma_max, beta_min < beta_max, beta_start <= beta_end, t_eps < T (for
 * discrete kinds with t_eps unset, t_eps = T / L, so a one-level table needs t_eps set), a
 * user array present, L >= 2 for VE-type discrete kinds, that lambda is strictly decreasing
 * over the levels in double precision, and that alpha, sigma, lambda, f and g are finite and
 * alpha, sigma > 0 at t_eps and T (e.g. alpha(T) must not underflow). Calling it again on a
 * prepared schedule is a no-op.
 *
 * @param[in,out] s the schedule.
 * @return ::SCORE_OK; ::SCORE_E_INVAL if @p s is NULL or the combination is invalid (the
 *         message names the conflict; the schedule stays configuring).
 * Thread-safety: object-exclusive.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_schedule_prepare(score_schedule *s);

/**
 * @brief The schedule's kind.
 * @param[in] s the schedule.
 * @return a ::score_schedule_kind; ::SCORE_E_INVAL if @p s is NULL.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API int score_schedule_kind(const score_schedule *s);

/**
 * @brief Short name of the schedule's kind: `"ve"`, `"vp"`, `"subvp"`, `"ncsn"`,
 *        `"ddpm-linear"`, `"ddpm-scaled-linear"`, `"ddpm-cosine"`, `"sigmas"` or `"betas"`.
 * @param[in] s the schedule (NULL gives `"(null)"`).
 * @return a static string; never NULL.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API const char *score_schedule_name(const score_schedule *s);

/**
 * @brief Whether alpha(t) = 1 for all t (VE, NCSN, user sigmas).
 * @param[in] s the schedule.
 * @return 1 or 0; ::SCORE_E_INVAL if @p s is NULL.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API int score_schedule_is_variance_exploding(const score_schedule *s);

/**
 * @brief Whether the schedule is a discrete table (NCSN, DDPM kinds, user arrays).
 * @param[in] s the schedule.
 * @return 1 or 0; ::SCORE_E_INVAL if @p s is NULL.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API int score_schedule_is_discrete(const score_schedule *s);

/**
 * @brief Marginal mean coefficient alpha(t) and standard deviation sigma(t) of x_t | x_0.
 *
 * `x_t | x_0 ~ N(alpha(t) x_0, sigma(t)^2 I)`; for sub-VP sigma = 1 - alpha^2. Computed with
 * expm1 / log1p, so sigma(t) keeps full relative precision as t -> 0.
 *
 * @param[in]  s         the schedule (prepared on first use).
 * @param[in]  n         number of times.
 * @param[in]  t         @p n times in [0, T].
 * @param[out] alpha_out @p n values of alpha(t), or NULL.
 * @param[out] sigma_out @p n values of sigma(t), or NULL.
 * @return ::SCORE_OK; ::SCORE_E_INVAL if @p s or @p t (with n > 0) is NULL, or the schedule's
 *         parameters are inconsistent (see score_schedule_prepare());
 *         ::SCORE_E_NUMERIC for a non-finite time; ::SCORE_E_RANGE for a time outside [0, T].
 * Thread-safety: safe on a prepared schedule.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_schedule_alpha_sigma(const score_schedule *s, size_t n,
                                                           const double *t, double *alpha_out,
                                                           double *sigma_out);

/**
 * @brief Half log-SNR lambda(t) = log alpha(t) - log sigma(t), strictly decreasing in t.
 *
 * Where sigma(t) = 0 (t = 0 for VP, sub-VP and DDPM-type schedules) the value is +infinity.
 *
 * @param[in]  s   the schedule.
 * @param[in]  n   number of times.
 * @param[in]  t   @p n times in [0, T].
 * @param[out] out @p n values.
 * @return as score_schedule_alpha_sigma().
 * Thread-safety: safe on a prepared schedule.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_schedule_lambda(const score_schedule *s, size_t n,
                                                      const double *t, double *out);

/**
 * @brief Inverse of lambda(t): the time with the given half log-SNR.
 *
 * Closed forms for VE, VP (DPM-Solver's formula, written without cancellation) and sub-VP;
 * a search over the level table plus linear interpolation for discrete kinds. Accurate to
 * about 1e-13 relative in t over [t_eps, T].
 *
 * @param[in]  s      the schedule.
 * @param[in]  n      number of values.
 * @param[in]  lambda @p n finite values in [lambda(T), lambda(0)] (a relative slack of 1e-12
 *                    is clamped to the range).
 * @param[out] out    @p n times in [0, T]; may alias @p lambda.
 * @return ::SCORE_OK; ::SCORE_E_INVAL for NULL pointers; ::SCORE_E_NUMERIC for a non-finite
 *         value; ::SCORE_E_RANGE for a value outside the range.
 * Thread-safety: safe on a prepared schedule.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_schedule_t_of_lambda(const score_schedule *s, size_t n,
                                                           const double *lambda, double *out);

/**
 * @brief Coefficients of the linear SDE `dx = f_coef(t) x dt + g(t) dw`.
 *
 * The reverse SDE drift is `f_coef x - g^2 score` and the probability-flow ODE drift
 * `f_coef x - g^2 score / 2`.
 *
 * @param[in]  s          the schedule.
 * @param[in]  n          number of times.
 * @param[in]  t          @p n times in [0, T].
 * @param[out] f_coef_out @p n drift coefficients, or NULL.
 * @param[out] g_out      @p n diffusion coefficients g(t) >= 0, or NULL.
 * @return as score_schedule_alpha_sigma().
 * Thread-safety: safe on a prepared schedule.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_schedule_sde_coefs(const score_schedule *s, size_t n,
                                                         const double *t, double *f_coef_out,
                                                         double *g_out);

/**
 * @brief Standard deviation of the prior p_T = N(0, std^2 I): sigma(T) for VE-type schedules
 *        (sigma_max for score_sde's VE), 1 otherwise.
 * @param[in]  s   the schedule.
 * @param[out] out the standard deviation.
 * @return ::SCORE_OK; ::SCORE_E_INVAL for NULL pointers or inconsistent parameters.
 * Thread-safety: safe on a prepared schedule.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_schedule_prior_std(const score_schedule *s, double *out);

/**
 * @brief Draws @p n rows of @p dim values from the prior N(0, std^2 I).
 *
 * Row i, column j is `std * normal(row i, column j)` of @p rng at its current counter (computed
 * in double, rounded to float), so a row does not depend on how rows are batched. @p rng is
 * not advanced.
 *
 * @param[in]  s   the schedule.
 * @param[in]  rng the generator.
 * @param[in]  n   number of rows (< 2^32).
 * @param[in]  dim values per row.
 * @param[out] out @p n * @p dim floats, row-major.
 * @return ::SCORE_OK; ::SCORE_E_INVAL for NULL pointers or inconsistent parameters;
 *         ::SCORE_E_RANGE if @p n or @p dim exceeds the generator's limits.
 * Thread-safety: safe on a prepared schedule (the generator is only read).
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_schedule_prior_sample(const score_schedule *s,
                                                            const score_rng *rng, size_t n,
                                                            size_t dim, float *out);

/**
 * @brief Log-density of the prior: `-(dim/2) log(2 pi std^2) - |z|^2 / (2 std^2)` per row,
 *        accumulated in double.
 * @param[in]  s   the schedule.
 * @param[in]  n   number of rows.
 * @param[in]  dim values per row (>= 1).
 * @param[in]  z   @p n * @p dim floats.
 * @param[out] out @p n log-densities (nats).
 * @return ::SCORE_OK; ::SCORE_E_INVAL for NULL pointers or dim = 0; ::SCORE_E_NUMERIC if @p z
 *         holds a non-finite value; ::SCORE_E_RANGE if n * dim does not fit in a size_t.
 * Thread-safety: safe on a prepared schedule.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_schedule_prior_logp(const score_schedule *s, size_t n,
                                                          size_t dim, const float *z,
                                                          double *out);

/**
 * @brief Discretization of the forward process used by the reverse-diffusion and ancestral
 *        predictors (score_sde `discretize`).
 *
 * With N steps, time t is mapped to level `i = floor(t (N - 1) / T)` (score_sde's index rule,
 * clamped to [0, N-1]); the forward step from level i - 1 to level i is
 * `x_i = (1 + f_i) x_{i-1} + G_i z`, and the reverse-diffusion predictor is
 * `x_{i-1} = x_i - f_i x_i + G_i^2 score + G_i z`. Per kind:
 * - VE: `sigma_i = sigma(i T / (N - 1))` (score_sde's geometric `discrete_sigmas`),
 *   `f_i = 0`, `G_i = sqrt(sigma_i^2 - sigma_{i-1}^2)`, `sigma_{-1} = 0` (SMLD).
 * - VP and sub-VP: per ::SCORE_SCHEDULE_PARAM_DISCRETIZATION (default exact:
 *   `1 + f_i = alpha(t_i) / alpha(t_{i-1})`, `G_i^2 = sigma(t_i)^2 - (1 + f_i)^2 sigma(t_{i-1})^2`
 *   at level times `t_i = T (i + 1) / N`, `t_{-1} = 0`; for VP `G_i^2 = beta_i`).
 * - Discrete kinds: the same exact transitions between levels at `T (i + 1) / N` of the
 *   continuous-time view; when N = L these are the table's own values (DDPM
 *   `f_i = sqrt(1 - beta_i) - 1`, `G_i = sqrt(beta_i)`; NCSN `G_i = sqrt(sigma_i^2 - sigma_{i-1}^2)`).
 * Every result is finite for every N >= 1.
 *
 * @param[in]  s          the schedule.
 * @param[in]  N          number of discretization steps, 1 .. 1000000; 0 means the schedule's
 *                        ::SCORE_SCHEDULE_PARAM_NUM_LEVELS.
 * @param[in]  n          number of times.
 * @param[in]  t          @p n times in [0, T].
 * @param[out] f_coef_out @p n values f_i (the step adds f_i x), or NULL.
 * @param[out] G_out      @p n values G_i >= 0, or NULL.
 * @return as score_schedule_alpha_sigma(); ::SCORE_E_RANGE also for N > 1000000 or, with
 *         ::SCORE_SCHEDULE_DISC_SCORE_SDE, a VP step with beta_i >= 1.
 * Thread-safety: safe on a prepared schedule.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_schedule_discretize(const score_schedule *s, size_t N,
                                                          size_t n, const double *t,
                                                          double *f_coef_out, double *G_out);

/**
 * @brief Number of levels L of the schedule's table (::SCORE_SCHEDULE_PARAM_NUM_LEVELS, or the
 *        user array's length).
 * @param[in] s the schedule.
 * @return L; 0 if @p s is NULL or a user-array kind has no array yet.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API size_t score_schedule_num_levels(const score_schedule *s);

/**
 * @brief The level table: sigma_i and alpha_i for i = 0 .. L-1 (increasing noise).
 *
 * Discrete kinds: the table itself (DDPM-type: `alpha_i = sqrt(alpha_bar_i)`,
 * `sigma_i = sqrt(1 - alpha_bar_i)`; VE-type: alpha_i = 1). Continuous kinds: the levels that
 * score_schedule_discretize() uses with N = L (VE: score_sde's `discrete_sigmas`; VP with
 * ::SCORE_SCHEDULE_DISC_SCORE_SDE: score_sde's `alphas_cumprod`; otherwise the continuous
 * values at `T (i + 1) / L`).
 *
 * @param[in]  s          the schedule.
 * @param[in]  n          length of the outputs; must equal score_schedule_num_levels().
 * @param[out] sigmas_out @p n values, or NULL.
 * @param[out] alphas_out @p n values, or NULL.
 * @return ::SCORE_OK; ::SCORE_E_INVAL for a NULL @p s or inconsistent parameters;
 *         ::SCORE_E_SHAPE if @p n differs from L; ::SCORE_E_RANGE for a VP score_sde table with
 *         beta_i >= 1.
 * Thread-safety: safe on a prepared schedule.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_schedule_levels(const score_schedule *s, size_t n,
                                                      double *sigmas_out, double *alphas_out);

/**
 * @brief Fills a decreasing time grid for a sampler.
 *
 * @p n_steps values from the start time down to the end time: the start is exactly T (or, for
 * sigma-space grids with ::SCORE_SCHEDULE_PARAM_GRID_SIGMA_MAX set, the time of that sigma)
 * and the end is exactly t_eps (or the time of ::SCORE_SCHEDULE_PARAM_GRID_SIGMA_MIN). Sigma-
 * space grids (Karras, exponential, polyexponential) are computed in EDM sigma and mapped to t
 * through score_schedule_t_of_lambda(). With ::SCORE_GRID_APPEND_ZERO a final 0.0 follows. For
 * @p n_steps = 1 the single value is the start time.
 *
 * @param[in]  s         the schedule.
 * @param[in]  grid_kind a ::score_grid_kind.
 * @param[in]  n_steps   number of grid times, 1 .. 100000000.
 * @param[in]  flags     0 or ::SCORE_GRID_APPEND_ZERO.
 * @param[out] out       @p n_steps (+1 with ::SCORE_GRID_APPEND_ZERO) doubles, strictly
 *                       decreasing.
 * @return ::SCORE_OK; ::SCORE_E_INVAL for NULL pointers, unknown flags or inconsistent
 *         parameters; ::SCORE_E_UNSUPPORTED for an unknown grid kind; ::SCORE_E_RANGE if
 *         @p n_steps is 0 or too large, or a grid sigma maps outside [t_eps, T];
 *         ::SCORE_E_NUMERIC if the grid is too fine to be strictly decreasing in double.
 * Thread-safety: safe on a prepared schedule.
 * @since 0.1
 * @see score_schedule_sigma_grid, score_schedule_check_grid
 */
SCORE_API SCORE_WARN_UNUSED int score_schedule_time_grid(const score_schedule *s, int grid_kind,
                                                         size_t n_steps, uint32_t flags,
                                                         double *out);

/**
 * @brief The same grid as score_schedule_time_grid(), as EDM sigmas (sigma / alpha).
 *
 * Sigma-space grids are returned exactly as defined (e.g. Karras sigma_k, with the first and
 * last values exactly sigma_hi and sigma_lo); t-space grids give `exp(-lambda(t_k))`. With
 * ::SCORE_GRID_APPEND_ZERO the last value is 0.
 *
 * @param[in]  s         the schedule.
 * @param[in]  grid_kind a ::score_grid_kind.
 * @param[in]  n_steps   number of grid values.
 * @param[in]  flags     0 or ::SCORE_GRID_APPEND_ZERO.
 * @param[out] out       @p n_steps (+1) doubles, strictly decreasing.
 * @return as score_schedule_time_grid().
 * Thread-safety: safe on a prepared schedule.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_schedule_sigma_grid(const score_schedule *s, int grid_kind,
                                                          size_t n_steps, uint32_t flags,
                                                          double *out);

/**
 * @brief Validates a (user-supplied) time grid.
 *
 * A valid grid has @p n >= 1 finite values, strictly decreasing, all in [t_eps, T], except
 * that the last value may be exactly 0 (the "data" step of ::SCORE_GRID_APPEND_ZERO).
 *
 * @param[in] s    the schedule.
 * @param[in] n    number of values.
 * @param[in] grid @p n times.
 * @return ::SCORE_OK; ::SCORE_E_INVAL if a pointer is NULL, @p n is 0, or the grid is invalid
 *         (the message gives the first offending index and value).
 * Thread-safety: safe on a prepared schedule.
 * @since 0.1
 */
SCORE_API SCORE_WARN_UNUSED int score_schedule_check_grid(const score_schedule *s, size_t n,
                                                          const double *grid);

SCORE_END_DECLS

#endif /* LIBSCORE_SCHEDULE_H */
