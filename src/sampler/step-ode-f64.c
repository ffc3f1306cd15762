/* The double-state build of step-ode.c (step-real.h). */
#define SCORE__STEP_REAL64 1
#include "step-ode.c"
