/* The state type of the step implementations written once over `score__real` and compiled
 * twice: as they are (float state, the names of step-priv.h) and from the *-f64.c wrappers
 * with SCORE__STEP_REAL64 defined (double state, every external name suffixed _f64). A double
 * state keeps x, the stage values, the multistep history and the FSAL cache in double; the
 * model is evaluated through score__sde_eval_f64() (in double for analytic models). Scalar
 * coefficients are double in both. Never installed. */
#ifndef LIBSCORE_STEP_REAL_H
#define LIBSCORE_STEP_REAL_H

#include "step-priv.h"

#ifdef SCORE__STEP_REAL64
typedef double score__real;
#define SCORE__R(name) name##_f64
#define SCORE__CX(c) ((c)->xd)
#define SCORE__CXERR(c) ((c)->xerrd)
#else
typedef float score__real;
#define SCORE__R(name) name
#define SCORE__CX(c) ((c)->x)
#define SCORE__CXERR(c) ((c)->xerr)
#endif

/* The step's n*dim buffers as arrays of the state type. */
#define SCORE__BUF(st, k) ((score__real *)(st)->buf[k])
#define SCORE__HD(st, k) ((score__real *)(st)->hist_d[k])
#define SCORE__HX(st, k) ((score__real *)(st)->hist_x[k])
#define SCORE__FX(st, k) ((score__real *)(st)->fsal_x[k])
#define SCORE__FK(st, k) ((score__real *)(st)->fsal_k[k])

#endif /* LIBSCORE_STEP_REAL_H */
