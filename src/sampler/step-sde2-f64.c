/* The double-state build of step-sde2.c (step-real.h). */
#define SCORE__STEP_REAL64 1
#include "step-sde2.c"
