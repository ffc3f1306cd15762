/* Parameter machinery: the typed, range-checked table access every object uses, and the
 * public introspection functions. */
#include <limits.h>
#include <math.h>

#include "helpers/test-helpers.h"
#include "core/core-priv.h"

static const score__param_desc tab[] = {
    {9901, "eps", SCORE_PARAM_F64, 1e-12, 1.0, 1e-3, "step size"},
    {9902, "num_steps", SCORE_PARAM_I64, 1, 100000, 1000, "number of steps"},
};
#define NTAB (sizeof tab / sizeof tab[0])

START_TEST(defaults_and_set_get)
{
    score__param_val v[NTAB];
    double f;
    int64_t i;
    score__param_defaults(tab, NTAB, v);
    ck_assert_ok(score__param_get_f64("t", tab, NTAB, v, 9901, &f));
    ck_assert_double_eq(f, 1e-3);
    ck_assert_ok(score__param_get_i64("t", tab, NTAB, v, 9902, &i));
    ck_assert_int_eq(i, 1000);
    ck_assert_ok(score__param_set_f64("t", tab, NTAB, v, 9901, 1.0));   /* max inclusive */
    ck_assert_ok(score__param_set_f64("t", tab, NTAB, v, 9901, 1e-12)); /* min inclusive */
    ck_assert_ok(score__param_get_f64("t", tab, NTAB, v, 9901, &f));
    ck_assert_double_eq(f, 1e-12);
    ck_assert_ok(score__param_set_i64("t", tab, NTAB, v, 9902, 7));
    ck_assert_ok(score__param_get_i64("t", tab, NTAB, v, 9902, &i));
    ck_assert_int_eq(i, 7);
}
END_TEST

START_TEST(errors)
{
    score__param_val v[NTAB];
    double f;
    score__param_defaults(tab, NTAB, v);
    /* one ulp outside either bound */
    ck_assert_fails_with(score__param_set_f64("t", tab, NTAB, v, 9901, nextafter(1.0, 2.0)), SCORE_E_RANGE);
    ck_assert_fails_with(score__param_set_f64("t", tab, NTAB, v, 9901, nextafter(1e-12, 0.0)), SCORE_E_RANGE);
    ck_assert_fails_with(score__param_set_f64("t", tab, NTAB, v, 9901, NAN), SCORE_E_RANGE);
    ck_assert_fails_with(score__param_set_f64("t", tab, NTAB, v, 9901, INFINITY), SCORE_E_RANGE);
    ck_assert_fails_with(score__param_set_i64("t", tab, NTAB, v, 9902, 0), SCORE_E_RANGE);
    ck_assert_fails_with(score__param_set_i64("t", tab, NTAB, v, 9902, 100001), SCORE_E_RANGE);
    /* wrong type is an error, not a conversion */
    ck_assert_fails_with(score__param_set_i64("t", tab, NTAB, v, 9901, 1), SCORE_E_INVAL);
    ck_assert_fails_with(score__param_set_f64("t", tab, NTAB, v, 9902, 5.0), SCORE_E_INVAL);
    ck_assert_fails_with(score__param_set_f64("t", tab, NTAB, v, 1234, 5.0), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score__param_get_f64("t", tab, NTAB, v, 9901, NULL), SCORE_E_INVAL);
    ck_assert_ptr_nonnull(strstr(score_last_error_message(), "t: "));
    /* failed sets leave the value unchanged */
    ck_assert_ok(score__param_get_f64("t", tab, NTAB, v, 9901, &f));
    ck_assert_double_eq(f, 1e-3);
}
END_TEST

START_TEST(public_introspection)
{
    int id, type;
    double lo, hi, def;
    /* Every registered kind: ids lie in [100 k, 100 k + 99], names round-trip, defaults are
     * inside their bounds. */
    for (int kind = 1; kind <= 11; kind++) {
        size_t n = score_param_count(kind);
        for (size_t i = 0; i < n; i++) {
            ck_assert_ok(score_param_id_at(kind, i, &id));
            ck_assert_int_ge(id, 100 * kind);
            ck_assert_int_le(id, 100 * kind + 99);
            ck_assert_ok(score_param_info(kind, id, &type, &lo, &hi, &def));
            ck_assert(type == SCORE_PARAM_F64 || type == SCORE_PARAM_I64);
            ck_assert(lo <= def && def <= hi);
            const char *name = score_param_name(kind, id);
            ck_assert_ptr_nonnull(name);
            ck_assert_ptr_nonnull(score_param_doc(kind, id));
            int back = -1;
            ck_assert_ok(score_param_from_name(kind, name, &back));
            ck_assert_int_eq(back, id);
        }
        if (n > 0)
            ck_assert_fails_with(score_param_id_at(kind, n, &id), SCORE_E_RANGE);
    }
    ck_assert_uint_eq(score_param_count(0), 0);
    ck_assert_uint_eq(score_param_count(999), 0);
    ck_assert_fails_with(score_param_id_at(999, 0, &id), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_param_id_at(999, 0, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_param_info(999, 100, &type, &lo, &hi, &def), SCORE_E_UNSUPPORTED);
    ck_assert_ptr_null(score_param_name(999, 100));
    ck_assert_ptr_null(score_param_doc(999, 100));
    ck_assert_fails_with(score_param_from_name(999, "eps", &id), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_param_from_name(SCORE_OBJECT_SAMPLER, NULL, &id), SCORE_E_INVAL);
    ck_assert_fails_with(score_param_from_name(SCORE_OBJECT_SAMPLER, "eps", NULL), SCORE_E_INVAL);
}
END_TEST

/* SCORE__PARAM_F64 / _I64 index a value array by id - first id: the tables of the objects that
 * read their values that way hold consecutive ids, up to the last id so read (the step's
 * SUBSTEP, the sampler's SUBSTEP); ids of later reserved ranges follow in increasing order and
 * are read by lookup (SCORE__STEP_XF64 / the sampler's XP). */
START_TEST(consecutive_ids)
{
    static const int kinds[] = {SCORE_OBJECT_CONTROL, SCORE_OBJECT_STEP, SCORE_OBJECT_SAMPLER,
                                SCORE_OBJECT_LIKELIHOOD};
    const int last_direct[] = {-1, SCORE_STEP_PARAM_SUBSTEP, SCORE_SAMPLER_PARAM_SUBSTEP, -1};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        size_t n = score_param_count(kinds[k]);
        int first, id, prev;
        ck_assert_uint_gt(n, 0);
        ck_assert_ok(score_param_id_at(kinds[k], 0, &first));
        prev = first;
        for (size_t i = 1; i < n; i++) {
            ck_assert_ok(score_param_id_at(kinds[k], i, &id));
            if (last_direct[k] < 0 || first + (int)i <= last_direct[k])
                ck_assert_int_eq(id, first + (int)i);
            else
                ck_assert_int_gt(id, prev);
            prev = id;
        }
    }
}
END_TEST

/* Parameter ids and kinds are any int a caller passes: the extremes of int must be refused
 * with SCORE_E_UNSUPPORTED (no arithmetic on them overflows; checked under UBSan). */
static const int bad_ids[] = {INT_MIN, INT_MIN + 1, -1, 0, 99, 1200, INT_MAX - 1, INT_MAX};
#define N_BAD_IDS (sizeof bad_ids / sizeof bad_ids[0])

#define CHECK_ACCESSORS(prefix, obj)                                                          \
    do {                                                                                      \
        for (size_t k_ = 0; k_ < N_BAD_IDS; k_++) {                                           \
            double f_ = 7.0;                                                                  \
            ck_assert_fails_with(prefix##_set_f64((obj), bad_ids[k_], 1.0), SCORE_E_UNSUPPORTED); \
            ck_assert_fails_with(prefix##_get_f64((obj), bad_ids[k_], &f_), SCORE_E_UNSUPPORTED); \
            ck_assert_double_eq(f_, 7.0);                                                     \
        }                                                                                     \
        for (size_t k_ = 0; k_ < N_BAD_IDS; k_++) {                                           \
            int64_t i_ = 7;                                                                   \
            ck_assert_fails_with(prefix##_set_i64((obj), bad_ids[k_], 1), SCORE_E_UNSUPPORTED); \
            ck_assert_fails_with(prefix##_get_i64((obj), bad_ids[k_], &i_), SCORE_E_UNSUPPORTED); \
            ck_assert_int_eq(i_, 7);                                                          \
        }                                                                                     \
    } while (0)

START_TEST(ids_and_kinds_at_int_extremes)
{
    score_schedule *sched;
    score_model *model;
    score_sde *sde;
    score_loss *loss;
    score_optimizer *opt;
    score_ema *ema;
    score_trainer *tr;
    score_likelihood *lk;
    score_control *ctl;
    score_step *step;
    score_sampler *smp;
    const float zeros[4] = {0};
    int id, type;
    double lo, hi, def;

    ck_assert_ok(score_schedule_new(&sched, SCORE_SCHEDULE_VP));
    CHECK_ACCESSORS(score_schedule, sched);
    /* one past the last schedule id and one before the first */
    ck_assert_fails_with(score_schedule_set_f64(sched, 199, 1.0), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_schedule_set_f64(sched, 200 + (int)score_param_count(SCORE_OBJECT_SCHEDULE), 1.0),
                         SCORE_E_UNSUPPORTED);
    ck_assert_ok(score_model_new_mlp(&model, 2, 4, 1, SCORE_ACT_SILU, 1));
    CHECK_ACCESSORS(score_model, model);
    ck_assert_ok(score_sde_new(&sde, sched, model, SCORE_OUTPUT_EPS));
    CHECK_ACCESSORS(score_sde, sde);
    ck_assert_ok(score_loss_new(&loss, SCORE_LOSS_DSM));
    CHECK_ACCESSORS(score_loss, loss);
    ck_assert_ok(score_optimizer_new(&opt, SCORE_OPTIMIZER_ADAM, 4));
    CHECK_ACCESSORS(score_optimizer, opt);
    ck_assert_ok(score_ema_new(&ema, 4, zeros));
    CHECK_ACCESSORS(score_ema, ema);
    ck_assert_ok(score_trainer_new(&tr, model, sde, loss, SCORE_OPTIMIZER_ADAM));
    CHECK_ACCESSORS(score_trainer, tr);
    ck_assert_ok(score_likelihood_new(&lk, 2));
    CHECK_ACCESSORS(score_likelihood, lk);
    ck_assert_ok(score_step_new(&step, score_step_type_get(SCORE_STEP_EULER), 2));
    CHECK_ACCESSORS(score_step, step);
    ck_assert_ok(score_sampler_new_preset(&smp, SCORE_SAMPLER_PRESET_ODE, 2));
    CHECK_ACCESSORS(score_sampler, smp);
    ck_assert_ok(score_control_new(&ctl));
    for (size_t k = 0; k < N_BAD_IDS; k++) {
        double f = 7.0;
        ck_assert_fails_with(score_control_set_f64(ctl, bad_ids[k], 1.0), SCORE_E_UNSUPPORTED);
        ck_assert_fails_with(score_control_get_f64(ctl, bad_ids[k], &f), SCORE_E_UNSUPPORTED);
        ck_assert_double_eq(f, 7.0);
    }

    /* kinds, presets, orders */
    for (size_t k = 0; k < N_BAD_IDS; k++) {
        int b = bad_ids[k];
        score_schedule *s2 = NULL;
        score_model *m2 = NULL;
        score_loss *l2 = NULL;
        score_optimizer *o2 = NULL;
        score_sampler *p2 = NULL;
        score_rng *r2 = NULL;
        score_step_type *t2 = NULL;
        double t[1] = {0.5}, grid[8];
        float x[2] = {0.f, 0.f}, y[2];
        ck_assert_uint_eq(score_param_count(b), 0);
        ck_assert_fails_with(score_param_id_at(b, 0, &id), SCORE_E_UNSUPPORTED);
        ck_assert_fails_with(score_param_info(SCORE_OBJECT_SCHEDULE, b, &type, &lo, &hi, &def),
                             SCORE_E_UNSUPPORTED);
        ck_assert_fails_with(score_param_info(b, 200, &type, &lo, &hi, &def), SCORE_E_UNSUPPORTED);
        ck_assert_ptr_null(score_param_name(SCORE_OBJECT_SCHEDULE, b));
        ck_assert_ptr_null(score_param_doc(b, b));
        if (b == 0 || b == -1 || b == 99 || b == 1200 || b < -1 || b > 1200) {
            ck_assert_fails_with(score_schedule_new(&s2, b), SCORE_E_UNSUPPORTED);
            ck_assert_fails_with(score_model_new(&m2, b, 2), SCORE_E_UNSUPPORTED);
            ck_assert_fails_with(score_loss_new(&l2, b), SCORE_E_UNSUPPORTED);
            ck_assert_fails_with(score_optimizer_new(&o2, b, 4), SCORE_E_UNSUPPORTED);
            ck_assert_int_lt(score_sampler_new_preset(&p2, b, 2), 0);
            ck_assert_fails_with(score_rng_new(&r2, b, 1), SCORE_E_UNSUPPORTED);
            ck_assert_ptr_null(score_step_type_get(b));
            ck_assert_fails_with(score_schedule_time_grid(sched, b, 4, 0, grid), SCORE_E_UNSUPPORTED);
            ck_assert_fails_with(score_schedule_sigma_grid(sched, b, 4, 0, grid), SCORE_E_UNSUPPORTED);
            ck_assert_fails_with(score_sde_convert(sde, b, SCORE_OUTPUT_EPS, 1, t, x, x, y),
                                 SCORE_E_RANGE);
            ck_assert_fails_with(score_sde_convert(sde, SCORE_OUTPUT_EPS, b, 1, t, x, x, y),
                                 SCORE_E_RANGE);
            if (b != 0) /* order 0 is valid */
                ck_assert_fails_with(score_step_type_new(&t2, "mine", b), SCORE_E_RANGE);
        }
        ck_assert_ptr_null(s2);
        ck_assert_ptr_null(m2);
        ck_assert_ptr_null(l2);
        ck_assert_ptr_null(o2);
        ck_assert_ptr_null(p2);
        ck_assert_ptr_null(r2);
        ck_assert_ptr_null(t2);
    }

    score_sampler_free(smp);
    score_step_free(step);
    score_control_free(ctl);
    score_likelihood_free(lk);
    score_trainer_free(tr);
    score_ema_free(ema);
    score_optimizer_free(opt);
    score_loss_free(loss);
    score_sde_free(sde);
    score_model_free(model);
    score_schedule_free(sched);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("param");
    TCase *tc = tcase_create("param");
    tcase_add_test(tc, defaults_and_set_get);
    tcase_add_test(tc, errors);
    tcase_add_test(tc, public_introspection);
    tcase_add_test(tc, consecutive_ids);
    tcase_add_test(tc, ids_and_kinds_at_int_extremes);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
