/* The double-state build of step-eval.c (step-real.h). */
#define SCORE__STEP_REAL64 1
#include "step-eval.c"
