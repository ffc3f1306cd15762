/* The list of parameter tables, one line per configurable object kind. Each module defines
 * `const score__param_desc *score__<module>_param_table(size_t *n_out)` (ids sorted ascending)
 * and adds one SCORE__PARAM_TABLE line here. */
#ifndef LIBSCORE_PARAM_REGISTRY_H
#define LIBSCORE_PARAM_REGISTRY_H

#include "core-priv.h"

const score__param_desc *score__model_param_table(size_t *n_out);
const score__param_desc *score__schedule_param_table(size_t *n_out);
const score__param_desc *score__sde_param_table(size_t *n_out);
const score__param_desc *score__loss_param_table(size_t *n_out);
const score__param_desc *score__optimizer_param_table(size_t *n_out);
const score__param_desc *score__trainer_param_table(size_t *n_out);
const score__param_desc *score__ema_param_table(size_t *n_out);
const score__param_desc *score__sampler_param_table(size_t *n_out);
const score__param_desc *score__likelihood_param_table(size_t *n_out);
const score__param_desc *score__control_param_table(size_t *n_out);
const score__param_desc *score__step_param_table(size_t *n_out);

#define SCORE__PARAM_TABLES /* SCORE__PARAM_TABLE(SCORE_OBJECT_X, score__x_param_table) */ \
    SCORE__PARAM_TABLE(SCORE_OBJECT_MODEL, score__model_param_table) \
    SCORE__PARAM_TABLE(SCORE_OBJECT_SCHEDULE, score__schedule_param_table) \
    SCORE__PARAM_TABLE(SCORE_OBJECT_SDE, score__sde_param_table) \
    SCORE__PARAM_TABLE(SCORE_OBJECT_LOSS, score__loss_param_table) \
    SCORE__PARAM_TABLE(SCORE_OBJECT_OPTIMIZER, score__optimizer_param_table) \
    SCORE__PARAM_TABLE(SCORE_OBJECT_TRAINER, score__trainer_param_table) \
    SCORE__PARAM_TABLE(SCORE_OBJECT_EMA, score__ema_param_table) \
    SCORE__PARAM_TABLE(SCORE_OBJECT_SAMPLER, score__sampler_param_table) \
    SCORE__PARAM_TABLE(SCORE_OBJECT_LIKELIHOOD, score__likelihood_param_table) \
    SCORE__PARAM_TABLE(SCORE_OBJECT_CONTROL, score__control_param_table) \
    SCORE__PARAM_TABLE(SCORE_OBJECT_STEP, score__step_param_table)

#endif
