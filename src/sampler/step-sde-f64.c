/* The double-state build of step-sde.c (step-real.h). */
#define SCORE__STEP_REAL64 1
#include "step-sde.c"
