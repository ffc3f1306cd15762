/* Internal structure of step types and steps, shared by the step implementations, the evolve
 * object and the drivers. Never installed. */
#ifndef LIBSCORE_STEP_PRIV_H
#define LIBSCORE_STEP_PRIV_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "adapt-priv.h"
#include "core/core-priv.h"
#include "libscore/control.h"
#include "libscore/schedule.h"
#include "libscore/sde.h"
#include "libscore/step.h"

/* Number of step parameters (ids 1100..1120). */
#define SCORE__STEP_NPARAMS 21
/* Depth of the multistep history (previous model outputs kept per row). */
#define SCORE__STEP_NHIST 3
/* Workspaces of a step: n*dim float buffers and per-row double arrays. */
#define SCORE__STEP_NBUF 10
#define SCORE__STEP_NDBL 24

/* Everything a built-in implementation needs for one call (already validated). */
typedef struct score__step_call {
    score_sde *sde;
    const score_schedule *sched;
    size_t n, dim, row0;
    const double *t, *tn; /* per-row start / end times */
    float *x;             /* in/out (float state; NULL for a double state) */
    float *xerr;          /* NULL or n*dim */
    double *xd;           /* in/out (double state, SCORE_STEP_PARAM_PRECISION = 64; else NULL) */
    double *xerrd;        /* NULL or n*dim (double state) */
    const score_rng *rng; /* NULL for deterministic calls */
    uint64_t counter;     /* offset added to the generator's counter */
    const size_t *idx;    /* NULL: row i is global row row0 + i; else row0 + idx[i] (idx
                             strictly increasing: the compacted rows of an adaptive solve) */
    int brown;            /* 1: noise over [t, t_next] is the increment of the row's Brownian
                             path (SCORE_STEP_PARAM_BROWNIAN), see score__step_noise_iv() */
    double brown_T;       /* the path's horizon: the schedule's T */
    double *brown_ws;     /* scratch of the path queries */
} score__step_call;

typedef int (*score__step_impl_fn)(score_step *st, const score__step_call *c);

struct score_step_type {
    int kind;      /* score_step_kind; 0 = user */
    int builtin;   /* static descriptor */
    char name[64];
    int order;
    int err_order; /* order of the embedded error estimate, 0 = none */
    uint32_t flags;
    score__step_impl_fn impl; /* built-in implementation */
    score__step_impl_fn impl_f64; /* the same over a double state (step-real.h); NULL = none */
    /* user callbacks */
    score_step_apply_fn apply;
    void *apply_ud;
    score_step_alloc_fn alloc;
    void *alloc_ud;
    score_step_reset_fn reset;
    void *reset_ud;
    score_step_free_fn free_state;
    void *free_ud;
};

struct score_step {
    score_step_type type; /* a copy of the descriptor */
    size_t dim;
    score__param_val params[SCORE__STEP_NPARAMS];
    void *user_state;
    int last_callback_status;
    uint64_t nfe;
    /* workspace, grown with the batch; the n*dim buffers (buf, hist_d, hist_x, fsal_x,
     * fsal_k) hold elem-byte values: float for a float state, double for a double state */
    size_t cap, elem;
    void *buf[SCORE__STEP_NBUF];
    double *dbl[SCORE__STEP_NDBL];
    /* multistep history (DPM-Solver++, LMS, DEIS, UniPC), positions as in the last call */
    size_t hist_n, hist_row0;
    int hist_count;       /* 0..SCORE__STEP_NHIST valid previous model outputs */
    double *hist_tend;    /* per row: t_next of the last call */
    double *hist_lam[SCORE__STEP_NHIST]; /* per row: lambda of D_{i-1}, D_{i-2}, D_{i-3} */
    void *hist_d[SCORE__STEP_NHIST];    /* D_{i-1}, D_{i-2}, D_{i-3} (or noise predictions) */
    /* UniPC's corrector: per row the start time of the last call, its (corrected) start state
     * and its result, and the order its predictor used */
    double *hist_t0;
    void *hist_x[2];
    int hist_order;
    /* mala (step-mala.c): step-size scale, calls, acceptance totals and per level */
    double mala_scale, mala_target;
    uint64_t mala_warmup, mala_calls, mala_acc, mala_prop;
    size_t mala_nlev, mala_caplev;
    struct score__mala_level *mala_lev;
    /* dopri5 FSAL caches: A = start of the last call, B = its end */
    size_t fsal_n;
    int fsal_valid;
    double *fsal_t[2];
    void *fsal_x[2], *fsal_k[2];
    double *brown_ws; /* Brownian-path scratch (6 dim doubles), allocated on first use */
};

/* Value of a step parameter (an lvalue: drivers set them, implementations read them). */
#define SCORE__STEP_F64(st, id) SCORE__PARAM_F64((st)->params, SCORE_STEP_PARAM_ETA, id)
#define SCORE__STEP_I64(st, id) SCORE__PARAM_I64((st)->params, SCORE_STEP_PARAM_ETA, id)
const score__param_desc *score__step_param_table(size_t *n_out);
/* SCORE_E_RANGE unless bits is 32 or 64, SCORE_E_UNSUPPORTED for 64 on a type without a
 * double state (the message names the type). */
int score__step_check_precision(const char *fn, const score_step_type *type, int64_t bits);
/* The generic parameter accessors behind score_step_set_f64() .. score_step_get_i64(). */
int score__step_par_set_f64(score_step *obj, int param, double value);
int score__step_par_set_i64(score_step *obj, int param, int64_t value);
int score__step_par_get_f64(const score_step *obj, int param, double *out);
int score__step_par_get_i64(const score_step *obj, int param, int64_t *out);

/* Built-in implementations (step-ode.c, step-sde.c, step-dpm.c). */
int score__step_euler(score_step *st, const score__step_call *c);
int score__step_heun(score_step *st, const score__step_call *c);
int score__step_midpoint(score_step *st, const score__step_call *c);
int score__step_rk4(score_step *st, const score__step_call *c);
int score__step_dopri5(score_step *st, const score__step_call *c);
int score__step_em(score_step *st, const score__step_call *c);
int score__step_reverse_diffusion(score_step *st, const score__step_call *c);
int score__step_ancestral(score_step *st, const score__step_call *c);
int score__step_euler_ancestral(score_step *st, const score__step_call *c);
int score__step_langevin(score_step *st, const score__step_call *c);
int score__step_ald(score_step *st, const score__step_call *c);
int score__step_ddim(score_step *st, const score__step_call *c);
int score__step_dpm_single(score_step *st, const score__step_call *c);
int score__step_dpmpp_multi(score_step *st, const score__step_call *c);
int score__step_dpm_adaptive(score_step *st, const score__step_call *c);
int score__step_dpmpp_single(score_step *st, const score__step_call *c);
int score__step_none(score_step *st, const score__step_call *c);
/* Multistep LMS, DEIS and UniPC (step-multi.c). */
int score__step_lms(score_step *st, const score__step_call *c);
int score__step_deis(score_step *st, const score__step_call *c);
int score__step_unipc(score_step *st, const score__step_call *c);
/* step-sde2.c: DPM-2 ancestral, DPM++(2S) ancestral, DPM++ SDE, DPM++(3M) SDE, Restart */
int score__step_dpm2_ancestral(score_step *st, const score__step_call *c);
int score__step_dpmpp_2s_ancestral(score_step *st, const score__step_call *c);
int score__step_dpmpp_sde(score_step *st, const score__step_call *c);
int score__step_dpmpp_3m_sde(score_step *st, const score__step_call *c);
int score__step_restart(score_step *st, const score__step_call *c);
/* Whether a type's noise is a Brownian increment over its step (the types that accept
 * SCORE_STEP_PARAM_BROWNIAN), and how many noise blocks one call of the step draws. */
int score__step_brownian_ok(int kind);
size_t score__step_noise_blocks(const score_step *st);
int score__step_mala(score_step *st, const score__step_call *c);
/* step-mala.c: clears the acceptance statistics and the adapted scale (score_step_reset()). */
void score__step_mala_reset(score_step *st);

/* ---- numerics shared by the implementations (step-num.c) ---------------------------------- */

/* alpha, sigma at n times; t = 0 is "the data": alpha = 1, sigma = 0. */
/* The per-row slots of st->dbl that score__step_endpoints() fills (the exponential
 * integrators' first slots): alpha, sigma at t and t_next, s = sigma / alpha at both,
 * lambda = -log s at t and the step h = lambda(t_next) - lambda(t). */
enum { SCORE__EP_A, SCORE__EP_SG, SCORE__EP_AN, SCORE__EP_SGN, SCORE__EP_S, SCORE__EP_SN,
       SCORE__EP_LAM, SCORE__EP_H };
int score__step_endpoints(score_step *st, const score__step_call *c);
/* The output m (n*dim values) and lambda of this call become the newest of the step's `depth`
 * (<= SCORE__STEP_NHIST) history entries; avail entries were usable before the call. */
/* Number of history entries a call may use: 0 unless it continues the previous call (same n
 * and row0, every row starting where it ended). */
int score__step_history_avail(const score_step *st, const score__step_call *c);
void score__step_push_history(score_step *st, const score__step_call *c, const float *m,
                              const double *lam, int avail, int depth);
int score__step_alpha_sigma(const score__step_call *c, size_t n, const double *t, double *alpha,
                            double *sigma);
/* Times of the given EDM noise levels s = sigma / alpha (> 0), through lambda = -log s. */
int score__step_t_of_s(const score__step_call *c, size_t n, const double *s, double *t_out);
/* t(lambda) and the SDE coefficients, evaluated once when all n arguments are equal. */
int score__step_t_of_lambda(const score__step_call *c, size_t n, const double *lam,
                            double *t_out);
int score__step_sde_coefs(const score__step_call *c, size_t n, const double *t, double *f,
                          double *g);
/* The internal entry of score_step_apply_ex() with compacted rows (idx, see score__step_call;
 * NULL = contiguous rows). */
int score__step_apply_idx(score_step *step, score_sde *sde, size_t row0, const size_t *idx,
                          size_t n, const double *t, const double *t_next, float *x,
                          float *xerr, const score_rng *rng, uint64_t counter);
/* Data prediction D(x, t) for n rows (x in x-space); counts one model evaluation. */
int score__step_x0(score_step *st, const score__step_call *c, const double *t, const float *x,
                   float *out);
/* k = (x / alpha - D(x, t)) / sigma-over-alpha s = (x - alpha D) / sigma: the noise
 * prediction (DPM-Solver) and the PF-ODE slope dy/ds in y = x / alpha (ODE steps), for the
 * call's rows at times t with alpha a and s = sigma / alpha; counts one model evaluation. */
int score__step_k(score_step *st, const score__step_call *c, const double *t, const double *a,
                  const double *s, const float *x, float *d_scratch, float *k);
/* Score s(x, t); counts one model evaluation. */
int score__step_score(score_step *st, const score__step_call *c, const double *t,
                      const float *x, float *out);
/* The double-state entries (step-real.h): x0, k, history and finiteness over doubles, the
 * double-state entry of score_step_apply_ex(), and the implementations that have a double
 * state (their type's impl_f64). */
int score__step_x0_f64(score_step *st, const score__step_call *c, const double *t,
                       const double *x, double *out);
int score__step_k_f64(score_step *st, const score__step_call *c, const double *t,
                      const double *a, const double *s, const double *x, double *d_scratch,
                      double *k);
void score__step_push_history_f64(score_step *st, const score__step_call *c, const double *m,
                                  const double *lam, int avail, int depth);
int score__step_finite_f64(size_t n, const double *x);
void score__step_noise_f64(const score__step_call *c, size_t block, double *out);
int score__step_apply_idx_f64(score_step *step, score_sde *sde, size_t row0, const size_t *idx,
                              size_t n, const double *t, const double *t_next, double *x,
                              double *xerr, const score_rng *rng, uint64_t counter);
int score__step_euler_f64(score_step *st, const score__step_call *c);
int score__step_heun_f64(score_step *st, const score__step_call *c);
int score__step_midpoint_f64(score_step *st, const score__step_call *c);
int score__step_rk4_f64(score_step *st, const score__step_call *c);
int score__step_dopri5_f64(score_step *st, const score__step_call *c);
int score__step_dpm_single_f64(score_step *st, const score__step_call *c);
int score__step_dpmpp_multi_f64(score_step *st, const score__step_call *c);
int score__step_dpm_adaptive_f64(score_step *st, const score__step_call *c);
int score__step_dpmpp_single_f64(score_step *st, const score__step_call *c);
int score__step_lms_f64(score_step *st, const score__step_call *c);
int score__step_deis_f64(score_step *st, const score__step_call *c);
int score__step_unipc_f64(score_step *st, const score__step_call *c);
int score__step_none_f64(score_step *st, const score__step_call *c);
int score__step_score_f64(score_step *st, const score__step_call *c, const double *t,
                          const double *x, double *out);
void score__step_noise_iv_f64(const score__step_call *c, size_t block, const double *t0,
                              const double *t1, double *out);
/* step-sde.c and step-sde2.c over a double state */
int score__step_em_f64(score_step *st, const score__step_call *c);
int score__step_reverse_diffusion_f64(score_step *st, const score__step_call *c);
int score__step_ancestral_f64(score_step *st, const score__step_call *c);
int score__step_euler_ancestral_f64(score_step *st, const score__step_call *c);
int score__step_langevin_f64(score_step *st, const score__step_call *c);
int score__step_ald_f64(score_step *st, const score__step_call *c);
int score__step_ddim_f64(score_step *st, const score__step_call *c);
int score__step_dpm2_ancestral_f64(score_step *st, const score__step_call *c);
int score__step_dpmpp_2s_ancestral_f64(score_step *st, const score__step_call *c);
int score__step_dpmpp_sde_f64(score_step *st, const score__step_call *c);
int score__step_dpmpp_3m_sde_f64(score_step *st, const score__step_call *c);
int score__step_restart_f64(score_step *st, const score__step_call *c);
/* Standard normals of block b for the call's rows: with c->brown the standardised increment
 * of each row's Brownian path over [t, t_next] (block 0 only: the one draw of the interval);
 * else the counter-keyed block. */
void score__step_noise(const score__step_call *c, size_t block, float *out);
/* The same over per-row intervals [t0, t1] (t0 != t1 when c->brown). */
void score__step_noise_iv(const score__step_call *c, size_t block, const double *t0,
                          const double *t1, float *out);
/* Effective eta (the type's default for -1) and whether the step draws noise with its
 * current parameters. */
double score__step_eta(const score_step *st);
int score__step_needs_noise(const score_step *st);
/* 1 if every element is finite. */
int score__step_finite(size_t n, const float *x);

/* Numerically stable phi-type functions of the exponential integrators (double):
 * I0(h) = 1 - e^-h, I1(h) = h - 1 + e^-h, I2(h) = h^2/2 - h + 1 - e^-h, and
 * phi1m1(z) = (e^z - 1)/z - 1. */
double score__expint_i0(double h);
double score__expint_i1(double h);
double score__expint_i2(double h);
double score__phi1m1(double z);

/* A one-entry cache of a scalar function of one double for the per-row loops of the steps:
 * the rows of a driver's call share their times, so the per-row coefficients (exp, log,
 * the expint functions: about 0.2 ms per step of 10 000 rows, 3% of a DPM-Solver++(2M) run of
 * a small MLP) would be computed n times from the same argument. score__step_memo() returns
 * the previous value when the argument has the bits of the previous call's, else calls f: the
 * results are those of calling f every time. Lives on the caller's stack for one loop (no
 * shared state). */
typedef struct score__step_memo_slot {
    double (*f)(double);
    uint64_t bits;
    double val;
    int valid;
} score__step_memo_slot;

static inline void score__step_memo_init(score__step_memo_slot *m, double (*f)(double))
{
    m->f = f;
    m->bits = 0;
    m->val = 0.0;
    m->valid = 0;
}

static inline double score__step_memo(score__step_memo_slot *m, double x)
{
    uint64_t b;
    memcpy(&b, &x, sizeof b);
    if (!m->valid || b != m->bits) {
        m->val = m->f(x);
        m->bits = b;
        m->valid = 1;
    }
    return m->val;
}

#endif /* LIBSCORE_STEP_PRIV_H */
