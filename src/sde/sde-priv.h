/* Internal structure of score_sde and the per-time coefficient helper shared with the losses
 * and samplers. Never installed. */
#ifndef LIBSCORE_SDE_PRIV_H
#define LIBSCORE_SDE_PRIV_H

#include "core/core-priv.h"
#include "libscore/sde.h"
#include "sde-ode-priv.h"

#define SCORE__SDE_NPARAMS 9

struct score__model_ws; /* model/model-priv.h */

/* Input overlay of the evaluations of score_sde_score() .. score_sde_pf_drift() (the evaluation
 * path of every sampler step): called with the n rows x at times t before the model sees them;
 * sets *x_eff to the rows to evaluate instead (n * dim floats owned by the overlay, or x
 * itself). has_rows = 1: row i is the global row row0 + i (idx NULL) or row0 + idx[i] (as told
 * by score__sde_set_rows()); has_rows = 0: the caller did not say. A non-OK status stops the
 * evaluation (the overlay sets the error message). The samplers use it to impose known
 * coordinates (sampler/known.c). */
typedef int (*score__sde_input_fn)(void *ud, const char *fn, size_t n, int has_rows,
                                   size_t row0, const size_t *idx, const double *t,
                                   const float *x, const float **x_eff);

struct score_sde {
    score_schedule *sched; /* owned copy */
    score_model *model;    /* borrowed, only read: one model may serve many sdes at a time */
    struct score__model_ws *mws; /* what the model's evaluations write (owned) */
    size_t dim;
    uint64_t nfe;
    score__param_val params[SCORE__SDE_NPARAMS];
    /* workspace, grown to the largest batch seen */
    size_t cap_n;          /* rows of the per-row arrays and of xin / fout */
    double *al, *si, *a, *k, *in, *cond, *fc, *g2; /* per row */
    double *tr;            /* per row */
    float *xin;            /* cap_n * dim scaled model input */
    float *fout;           /* cap_n * dim model output */
    size_t cap_p;          /* floats of the probe-product buffers */
    float *pout;           /* jvp / vjp products */
    float *basis;          /* unit-vector probes for the trace fallback */
    size_t basis_rows;     /* rows of basis currently filled */
    /* conditions of every evaluation (score_sde_set_label(), score_sde_set_context()) */
    int64_t label;         /* SCORE_LABEL_NULL: none */
    int32_t label32;       /* the label as the model's workspace reads it */
    float *ctx;            /* ctx_m context values, or NULL */
    size_t ctx_m;
    /* a guided batch (SCORE_SDE_PARAM_GUIDANCE != 0) is 2n rows: n with the label, n with the
     * null label; per-row arrays above then hold 2n rows */
    int32_t *glab;         /* cap_g labels */
    size_t cap_g;
    float *gprobes;        /* the caller's Hutchinson probes, twice */
    size_t cap_gp;
    /* classifier guidance (score_sde_set_classifier(), sde-classifier.c): s += clf_w *
     * grad_x log p(y | x_t, t) for the sde's label y */
    score_model *clf;      /* borrowed, only read; NULL: none */
    double clf_w;
    struct score__clf_ws *cws; /* what the classifier's evaluations write (owned) */
    float *cgx;            /* cap_cg floats: the classifier's input gradients of a call */
    size_t cap_cg;
    const float *cg;       /* set by a score evaluation for its combine: cgx, else NULL */
    /* thresholding of the data prediction (score_sde_set_clip(), SCORE_SDE_PARAM_THRESHOLD,
     * sde-threshold.c): the box [clip_lo, clip_hi] per dimension in model units (NULL: none;
     * the dynamic threshold then works in [-1, 1]); trow: dim doubles of row scratch */
    double *clip_lo, *clip_hi;
    float *clip_lof, *clip_hif; /* the box rounded inwards to float */
    double *trow;
    /* observation y = A x + n for posterior sampling (score_sde_set_observation(),
     * sde-inverse.c): A m x dim (row-major, double), y m values, noise sigma_n; the
     * eigen-decomposition A A^T = U diag(ev) U^T (U m x m, columns the eigenvectors) */
    size_t obs_m;
    double *obs_A, *obs_y, *obs_U, *obs_ev;
    double obs_sn;
    double *obs_r;         /* m + m doubles of scratch (residual, its rotation) */
    float *ogx;            /* cap_og floats: the likelihood-gradient cotangents, then terms */
    float *ogv;            /* cap_og floats: the model's VJPs */
    size_t cap_og;
    const float *og;       /* set by a score evaluation for its combine: ogx, else NULL */
    /* the moment method (SCORE_OBS_METHOD_MOMENT, sde-inverse.c): mu the k cotangents of every
     * row (the rows of A), mv their VJPs (cap_mu floats each); mrow the row scratch: the k x k
     * matrix, the residual, the solution and the gathered observed values (k (k + 3) doubles,
     * cap_mrow k), midx the k observed coordinates of a row of known coordinates */
    float *mu, *mv;
    size_t cap_mu;
    double *mrow;
    size_t *midx;
    size_t cap_mrow;
    /* known coordinates as an observation of each row (score__sde_set_known_obs()), borrowed
     * for a sampling run: krows rows of dim mask values (1 = known) and values; krows = 1: one
     * row for all; the run's rows krow0 .. krow0 + kn - 1. kmask NULL: none. */
    const uint8_t *kmask;
    const float *ky;
    size_t krows, krow0, kn;
    size_t kgroup;         /* evaluation rows per mask row (the particles of a sequential Monte
                            * Carlo run: global evaluation row r reads mask row r / kgroup);
                            * 0 or 1: one each */
    /* the twist of a sequential Monte Carlo run (score__sde_set_twist(), borrowed, NULL: none):
     * an evaluation with an observation term also writes each row's log p~(y | x_t) (the
     * Gaussian approximation the term differentiates) and the term itself (n * dim) there */
    double *tw_log;
    float *tw_grad;
    /* double-precision evaluations (sde-f64.c): cap_r rows of scratch: the state rounded to
     * float and the float result (models evaluated in float32), the scaled input and the
     * output of a double model evaluation */
    size_t cap_r;
    float *r32_x, *r32_out;
    double *r64_x, *r64_out;
    /* input overlay of a sampling run (score__sde_set_input()): NULL: none */
    score__sde_input_fn input_fn;
    void *input_ud;
};

/* Parameter table of the sde kind (registered in param-registry.h). */
const score__param_desc *score__sde_param_table(size_t *n_out);

/* Coefficients of the universal form s = a F(in x, cond) + k x for one time and an explicit
 * output kind (the sde's COND/COND_SCALE/SIGMA_DATA are used). Validates t (finite, > 0,
 * accepted by the schedule, sigma > 0) and reports failures as fn with the row index. Any
 * output pointer may be NULL. */
int score__sde_row_coefs(const score_sde *sde, const char *fn, size_t row, int output_kind,
                         double t, double *alpha, double *sigma, double *a, double *k,
                         double *in_scale, double *cond);

/* The evaluation core of sde.c, shared with the divergences (sde-div.c). check_args: the
 * common argument checks of a compute call. open_call: everything before the model evaluation
 * of n rows (conditions, guidance weight *w, coefficients, the model input *xm of
 * model_rows(n, *w) rows: 2n under guidance). model_call_failed: the status of a failed model
 * call, with the callback status recorded. combine: out = P s + Q x from the model output F
 * (want: a SCORE__SDE_WANT_*), the two guided halves combined
 * first; checks finiteness. */
/* What to produce from the score s: out = P s + Q x per row. */
enum { SCORE__SDE_WANT_SCORE, SCORE__SDE_WANT_EPS, SCORE__SDE_WANT_X0, SCORE__SDE_WANT_REVERSE,
       SCORE__SDE_WANT_PF };
int score__sde_check_args(const char *fn, const score_sde *sde, size_t n, const double *t,
                          const void *x, const void *out);
int score__sde_open_call(const char *fn, score_sde *sde, size_t n, const double *t,
                         const float *x, int want_fg, const float **xm, double *w);
size_t score__sde_model_rows(size_t n, double w);
int score__sde_model_call_failed(const char *fn, int rc);
int score__sde_combine(const char *fn, const score_sde *sde, int want, size_t n, const double *t,
                       const float *x, const float *F, double w, float *out);
/* score__sde_set_rows(): in sde-ode-priv.h (the solvers in lambda use it too). */

/* Installs (fn != NULL) or removes (fn = NULL) the input overlay. */
void score__sde_set_input(score_sde *sde, score__sde_input_fn fn, void *ud);

/* sde-classifier.c. classifier_term: with a classifier and a weight != 0, computes
 * grad_x log p(y | x_b, t_b) of the n rows into sde->cgx and points sde->cg at it (combine
 * then adds clf_w times it to the score); otherwise sets sde->cg to NULL. refuse_classifier:
 * SCORE_E_UNSUPPORTED for fn (a divergence) when classifier guidance is on. free: the
 * classifier part of the sde. */
int score__sde_classifier_term(const char *fn, score_sde *sde, size_t n, const double *t,
                               const float *x);
int score__sde_refuse_classifier(const char *fn, const score_sde *sde);
void score__sde_classifier_free(score_sde *sde);
/* The number of classes of the attached classifier (0: none). */
int64_t score__sde_classifier_classes(const score_sde *sde);

/* sde-threshold.c. active: a box or a dynamic threshold is set. row: thresholds the data
 * prediction x0 of one row in place (dim doubles; uses sde->trow). free: that part of the sde.
 * The combine (sde.c) maps the row's score to x0, thresholds it and maps back. */
int score__sde_threshold_active(const score_sde *sde);
void score__sde_threshold_row(const score_sde *sde, double *x0);
void score__sde_threshold_free(score_sde *sde);
double score__sde_threshold_p(const score_sde *sde);

/* sde-inverse.c. term: with an observation set, the gradient of log p(y | x_t) of the n rows
 * (the model output F of the call in sde->fout, its input xm) into sde->ogx, and sde->og
 * pointed at it (combine adds it to the score); otherwise sde->og = NULL. free: that part. */
int score__sde_observation_term(const char *fn, score_sde *sde, size_t n, const double *t,
                                const float *x, const float *xm, double w);
void score__sde_observation_free(score_sde *sde);

/* SCORE_E_UNSUPPORTED for fn (a divergence) with a threshold or an observation set (their
 * divergence is not computed). */
int score__sde_refuse_extras(const char *fn, const score_sde *sde);

/* The known coordinates of a sampling run as an observation of every row, for the moment
 * method (sampler/known.c): rows mask and value rows (1: one for every row; the arrays are
 * borrowed and must live until cleared), the run's rows row0 .. row0 + n - 1 (the evaluations
 * name their global rows through score__sde_set_rows(), or evaluate the whole run). mask NULL
 * clears it. */
void score__sde_set_known_obs(score_sde *sde, size_t rows, const uint8_t *mask, const float *y,
                              size_t row0, size_t n);
/* Evaluation rows per mask row of the known coordinates (score__sde_set_known_obs()): global
 * evaluation row r reads mask row r / group (group >= 1; 1 after score__sde_set_known_obs()). */
void score__sde_set_known_group(score_sde *sde, size_t group);
/* Borrowed outputs of the observation term for a sequential Monte Carlo run (sampler/smc.c),
 * NULL to stop: each evaluation of n rows with an observation term (an observation, or known
 * coordinates as one) writes the log of the Gaussian likelihood approximation p~(y | x_t) of
 * row b into log_out[b] (moment method: N(y; A x0_hat, A C_t A^T + R); DPS / PiGDM:
 * N(y; A x0_hat, sigma_n^2 I + r_t^2 A A^T)) and the term added to the score into grad_out
 * (n * dim). The step-size form (SCORE_SDE_PARAM_OBS_ZETA > 0) has no likelihood: log_out is
 * then NaN. The arrays must hold the largest batch evaluated. */
void score__sde_set_twist(score_sde *sde, double *log_out, float *grad_out);
/* sde-inverse.c / sde-moment.c: the workspace ogx / ogv of n rows; the moment method's term. */
int score__sde_obs_grow(const char *fn, score_sde *sde, size_t n);
int score__sde_moment_term(const char *fn, score_sde *sde, size_t n, const double *t,
                           const float *x, const float *xm);
/* out = P s + Q x of row b for a SCORE__SDE_WANT_* (after score__sde_open_call()). */
void score__sde_row_map(const score_sde *sde, int want, size_t b, double *P, double *Q);

/* sde-f64.c: the evaluations of a double-precision state (SCORE__SDE_WANT_SCORE, _EPS or _X0;
 * x, out n * dim doubles). The model evaluates in double when it can (score__model_has_f64()),
 * the call has no guidance on one network, no classifier, observation, threshold or input
 * overlay (score__sde_f64_exact() = 1); otherwise it evaluates the rounded state in float32
 * and the result is widened. free: that scratch. */
int score__sde_eval_f64(score_sde *sde, int want, size_t n, const double *t, const double *x,
                        double *out);
int score__sde_f64_exact(const score_sde *sde);
void score__sde_f64_free(score_sde *sde);

/* Typed parameter values of the sde (sde.c). */
double score__sde_par_f(const score_sde *sde, int id);
int64_t score__sde_par_i(const score_sde *sde, int id);
/* sde-cond.c: binds the sde's context (score__sde_bind_context) or its label for n rows, with
 * *w the guidance weight (score__sde_bind_labels), to the model's workspace for one call. */
int score__sde_bind_context(const char *fn, score_sde *sde);
int score__sde_bind_labels(const char *fn, score_sde *sde, size_t n, double *w);

#endif
