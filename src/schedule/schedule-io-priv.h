/* Internal serialisation of a schedule into a model file (analytic models embed theirs),
 * written only with the public schedule API. Never installed.
 *
 * Layout, with a caller-chosen prefix P (e.g. "schedule"):
 *   metadata "P.kind"     the ::score_schedule_kind as a decimal integer;
 *   metadata "P.<name>"   every parameter of the ::SCORE_OBJECT_SCHEDULE table the kind answers
 *                         (score_param_name()), f64 as "%.17g" (round-trips exactly), i64 as a
 *                         decimal integer; NUM_LEVELS is omitted for the user-array kinds;
 *   tensor "P.array"      F64 [L], the user array of ::SCORE_SCHEDULE_SIGMAS (the sigmas, in
 *                         increasing order) or ::SCORE_SCHEDULE_BETAS (the betas, recovered
 *                         from the level table: equal to the original to within a few ulps, so
 *                         only these two kinds may not round-trip bit for bit). */
#ifndef LIBSCORE_SCHEDULE_IO_PRIV_H
#define LIBSCORE_SCHEDULE_IO_PRIV_H

#include "io/safetensors-priv.h"
#include "libscore/schedule.h"

int score__schedule_save(const char *fn, const score_schedule *s, score__st_writer *w,
                         const char *prefix);
/* Builds a prepared schedule from the entries; any problem -> SCORE_E_FORMAT with a message
 * (SCORE_E_NOMEM for allocation failures). */
int score__schedule_load(const char *fn, const score__st_reader *r, const char *prefix,
                         score_schedule **out);

#endif
