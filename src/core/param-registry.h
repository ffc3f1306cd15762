/* The list of parameter tables, one line per configurable object kind. Each module defines
 * `const score__param_desc *score__<module>_param_table(size_t *n_out)` (ids sorted ascending)
 * and adds one SCORE__PARAM_TABLE line here. */
#ifndef LIBSCORE_PARAM_REGISTRY_H
#define LIBSCORE_PARAM_REGISTRY_H

#include "core-priv.h"

#define SCORE__PARAM_TABLES /* SCORE__PARAM_TABLE(SCORE_OBJECT_X, score__x_param_table) */

#endif
