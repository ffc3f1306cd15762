/* Internal layout of score_schedule and the evaluation helpers shared by the schedule sources.
 * Never installed. */
#ifndef LIBSCORE_SCHEDULE_PRIV_H
#define LIBSCORE_SCHEDULE_PRIV_H

#include <stddef.h>

#include "core/core-priv.h"
#include "libscore/schedule.h"

/* Number of parameters in the schedule's table (ids 200 .. 200 + SCORE__SCHED_NPARAM - 1). */
#define SCORE__SCHED_NPARAM 16

/* Largest table / discretization size. */
#define SCORE__SCHED_MAX_LEVELS 1000000

struct score_schedule {
    int kind;
    int prepared;
    int t_eps_set;                    /* T_EPS set explicitly (discrete kinds default to T / L) */
    score__param_val vals[SCORE__SCHED_NPARAM];

    /* Discrete kinds: L levels and one block of 3 * cap doubles:
     *   user[L]: the user's array (SIGMAS sorted increasing, BETAS forward order);
     *   lv[L]:   log sigma_i (VE-type) or log alpha_i = log sqrt(alpha_bar_i) (DDPM-type);
     *   aux[L]:  sigma_i (VE-type) or beta_i (DDPM-type). */
    size_t L;
    size_t cap;
    double *block;
    double *user, *lv, *aux;
    int have_user;

    /* Filled by prepare. */
    double T, t_eps;
    double c_a, c_b;                  /* VE: log sigma_min, log(sigma_max / sigma_min);
                                         VP / sub-VP: beta_min, beta_max - beta_min */
    double lam_T, lam_0;              /* lambda(T) and lambda(0) (+inf for DDPM-type) */
};

/* Value of a parameter by id (no checks; the id must be in the table). */
double score__sched_f(const score_schedule *s, int id);
int64_t score__sched_i(const score_schedule *s, int id);

/* Prepares (validating) on first use; fn names the public caller. */
int score__sched_ensure(const score_schedule *s, const char *fn);

/* Type predicates; user kinds (SIGMAS, BETAS) take their levels from an array. */
int score__sched_is_ve_type(int kind);
int score__sched_is_discrete(int kind);
int score__sched_is_user_kind(int kind);

/* T_EPS in effect: the value set, or T / L for a discrete kind whose T_EPS was not set. */
double score__sched_t_eps_effective(const score_schedule *s);

/* Node k_plus_1 - 1 of the level table: log sigma (VE-type) or log alpha (DDPM-type, where
 * node 0 is log alpha = 0 at t = 0). */
double score__sched_node(const score_schedule *s, size_t k_plus_1);
/* log alpha(t) of the VP / sub-VP kinds (c_a, c_b set by prepare). */
double score__sched_vp_log_alpha(const score_schedule *s, double t);

/* Pointwise evaluation at a validated t in [0, T] (prepared schedule).
 * la = log alpha, sig = sigma, lam = lambda; f = f_coef, g = diffusion. */
void score__sched_eval(const score_schedule *s, double t, double *la, double *sig, double *lam);
void score__sched_coefs(const score_schedule *s, double t, double *f, double *g);
/* Inverse of lambda for a value already clamped to [lam_T, lam_0]. */
double score__sched_t_of_lambda(const score_schedule *s, double lam);

/* Validates n times (NULL, finite, in [0, T]). */
int score__sched_check_times(const score_schedule *s, const char *fn, size_t n, const double *t);

/* compare.c: the first difference between two schedules that makes models trained under them
 * incompatible (the kind, then every parameter the kind answers, by name, bit for bit):
 * SCORE_E_INVAL with the message "the models differ in <what> (<a> vs <b>)" for fn; SCORE_OK
 * when none. Used by the generative model's and the sde's compatibility checks. */
int score__schedule_compare(const char *fn, const score_schedule *a, const score_schedule *b);

#endif
