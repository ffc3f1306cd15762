/* Parameter machinery: the typed, range-checked table access every object uses, and the
 * public introspection functions. */
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
 * read their values that way hold consecutive ids. */
START_TEST(consecutive_ids)
{
    static const int kinds[] = {SCORE_OBJECT_CONTROL, SCORE_OBJECT_STEP, SCORE_OBJECT_SAMPLER,
                                SCORE_OBJECT_LIKELIHOOD};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        size_t n = score_param_count(kinds[k]);
        int first, id;
        ck_assert_uint_gt(n, 0);
        ck_assert_ok(score_param_id_at(kinds[k], 0, &first));
        for (size_t i = 1; i < n; i++) {
            ck_assert_ok(score_param_id_at(kinds[k], i, &id));
            ck_assert_int_eq(id, first + (int)i);
        }
    }
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
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
