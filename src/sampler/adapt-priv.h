/* The per-row adaptive engine shared by score_evolve (systems: a step on the sde) and the
 * likelihood (system: the probability-flow ODE with its log-density increment), the step-size
 * control values it uses, the parameter rows shared by the objects that configure it, and the
 * Dormand-Prince 5(4) tableau. Never installed. */
#ifndef LIBSCORE_ADAPT_PRIV_H
#define LIBSCORE_ADAPT_PRIV_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core-priv.h"
#include "libscore/control.h"
#include "libscore/sde.h"

/* Initial step size in lambda when the caller gives none (DPM-Solver's h_init). */
#define SCORE__H_INIT_DEFAULT 0.05

/* Parameter rows shared by the objects that run the engine (control, sampler, likelihood):
 * each takes its own pinned id. */
#define SCORE__PARAM_ROW_RTOL(id, doc) {(id), "rtol", SCORE_PARAM_F64, 0, 1, 1e-5, doc}
#define SCORE__PARAM_ROW_ATOL(id, doc) {(id), "atol", SCORE_PARAM_F64, 0, 1e6, 1e-5, doc}
#define SCORE__PARAM_ROW_H_INIT(id)                                                           \
    {(id), "h_init", SCORE_PARAM_F64, 0, 1e3, 0, "initial step in lambda; 0 = 0.05"}
#define SCORE__PARAM_ROW_H_MIN(id)                                                            \
    {(id), "h_min", SCORE_PARAM_F64, 0, 1e3, 1e-10, "smallest step in lambda"}
#define SCORE__PARAM_ROW_MAX_STEPS(id, doc)                                                   \
    {(id), "max_steps", SCORE_PARAM_I64, 1, 1e9, 100000, doc}
#define SCORE__PARAM_ROW_NORM(id)                                                             \
    {(id), "error_norm", SCORE_PARAM_I64, 0, 1, SCORE_CONTROL_NORM_ROW,                      \
     "error measured per row (0) or over the whole batch (1)"}

/* ---- step-size control (control.c) ----------------------------------------------------- */
typedef struct score__control_vals {
    double rtol, atol, safety, fac_min, fac_max, h_min, h_max;
    int batch_norm; /* SCORE_CONTROL_NORM_BATCH: one error over all active rows */
} score__control_vals;
/* The defaults of score_control's table. */
void score__control_defaults(score__control_vals *v);
void score__control_get(const score_control *c, score__control_vals *v);
/* Proposal h' from err, returns 1 when accepted (err <= 1). */
int score__control_propose(const score__control_vals *v, int error_order, double err,
                           double *h);
/* Squared scaled error of one value: (e / (atol + rtol max(|y0|, |y1|)))^2. */
static inline double score__control_term(const score__control_vals *v, double y0, double y1,
                                         double e)
{
    double sc = v->atol + v->rtol * fmax(fabs(y0), fabs(y1));
    double r = e / sc;
    return r * r;
}
/* The RMS error of a row from its sum of squared scaled terms over width values. */
double score__control_norm(double acc, size_t width);

/* ---- the engine (adapt.c) -------------------------------------------------------------- */

/* What the engine keeps per row: the time t (sampler: steps take times) or the half log-SNR
 * lambda (likelihood: its system works in lambda). The step size is in lambda either way. */
enum { SCORE__ADAPT_TRACK_T = 0, SCORE__ADAPT_TRACK_LAMBDA = 1 };

typedef struct score__adapt score__adapt;

/* A system advanced by the engine. attempt() advances the active rows k = 0 .. a->m - 1
 * (caller rows a->idx[k]) from a->lam[k] to a->lamn[k] (step a->hstep[k] > 0 in direction
 * a->dir[k]; with TRACK_T also times a->t[k] -> a->tn[k]) into its own scratch and writes the
 * scaled RMS error a->err[k]. accept() / reject() then settle each active row. */
typedef struct score__adapt_sys {
    int (*attempt)(void *ctx, const score__adapt *a);
    void (*accept)(void *ctx, const score__adapt *a, size_t k);
    void (*reject)(void *ctx, const score__adapt *a, size_t k);
    void *ctx;
    int error_order;
} score__adapt_sys;

struct score__adapt {
    int track;          /* SCORE__ADAPT_TRACK_* */
    size_t n, cap, row0;
    double *pos, *h;    /* per row: t or lambda, step size in lambda */
    uint64_t *steps;    /* per row: accepted steps */
    unsigned char *done;
    uint64_t failed;
    /* the active rows of the current attempt */
    size_t m;
    size_t *idx;
    double *t, *tn, *lam, *lamn, *hstep, *dir, *err, *tmp;
};

void score__adapt_release(score__adapt *a);
/* Workspace for n rows (kept when large enough). fn names the caller in messages. */
int score__adapt_reserve(score__adapt *a, const char *fn, size_t n);
/* Starts n rows at pos0[i] (t or lambda) with step size h0 > 0. */
void score__adapt_start(score__adapt *a, int track, size_t n, size_t row0, const double *pos0,
                        double h0);
/* One attempt of every row not yet at target (a time with TRACK_T, else a lambda):
 * SCORE_OK (progress), SCORE_DONE (every row is at target) or an error (the message names
 * fn, the global row and its position). */
int score__adapt_attempt(score__adapt *a, const score__adapt_sys *sys,
                         const score__control_vals *v, const score_sde *sde, double target,
                         const char *fn);
/* Largest accepted step count over the rows. */
uint64_t score__adapt_max_steps(const score__adapt *a);

/* ---- Dormand-Prince 5(4) tableau (step-ode.c; the dopri5 step and the likelihood) ------- */
extern const double score__dp5_c[7];
extern const double score__dp5_a[7][6];
extern const double score__dp5_b[7];
extern const double score__dp5_e[7]; /* b5 - b4 */

#endif /* LIBSCORE_ADAPT_PRIV_H */
