/* The double-state build of step-multi.c (step-real.h). */
#define SCORE__STEP_REAL64 1
#include "step-multi.c"
