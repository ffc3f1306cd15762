/* The double-state build of step-dpm.c (step-real.h). */
#define SCORE__STEP_REAL64 1
#include "step-dpm.c"
