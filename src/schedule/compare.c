/* Compatibility of schedules: the first difference between two of them, for the checks of
 * every combination of models trained under a schedule (generative models, classifier
 * guidance). */
#include <stdio.h>
#include <string.h>

#include "libscore/param.h"
#include "schedule-priv.h"

static int differ(const char *fn, const char *what, const char *va, const char *vb)
{
    return score__error(SCORE_E_INVAL, fn, "the models differ in %s (%s vs %s)", what, va, vb);
}

int score__schedule_compare(const char *fn, const score_schedule *a, const score_schedule *b)
{
    char what[96], va[32], vb[32];
    if (score_schedule_kind(a) != score_schedule_kind(b))
        return differ(fn, "schedule kind", score_schedule_name(a), score_schedule_name(b));
    for (size_t i = 0; i < score_param_count(SCORE_OBJECT_SCHEDULE); i++) {
        int id, type;
        if (score_param_id_at(SCORE_OBJECT_SCHEDULE, i, &id) != SCORE_OK ||
            score_param_info(SCORE_OBJECT_SCHEDULE, id, &type, NULL, NULL, NULL) != SCORE_OK)
            continue;
        snprintf(what, sizeof what, "schedule parameter %s",
                 score_param_name(SCORE_OBJECT_SCHEDULE, id));
        if (type == SCORE_PARAM_F64) {
            double fa, fb;
            int ra = score_schedule_get_f64(a, id, &fa), rb = score_schedule_get_f64(b, id, &fb);
            if (ra == SCORE_OK && rb == SCORE_OK && memcmp(&fa, &fb, sizeof fa) != 0) {
                snprintf(va, sizeof va, "%.17g", fa);
                snprintf(vb, sizeof vb, "%.17g", fb);
                return differ(fn, what, va, vb);
            }
        } else {
            int64_t ia, ib;
            int ra = score_schedule_get_i64(a, id, &ia), rb = score_schedule_get_i64(b, id, &ib);
            if (ra == SCORE_OK && rb == SCORE_OK && ia != ib) {
                snprintf(va, sizeof va, "%zu", (size_t)ia);
                snprintf(vb, sizeof vb, "%zu", (size_t)ib);
                return differ(fn, what, va, vb);
            }
        }
    }
    return SCORE_OK;
}
