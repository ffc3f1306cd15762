#include "helpers/test-helpers.h"

static const int all_codes[] = {
    SCORE_OK, SCORE_DONE, SCORE_E_GENERIC, SCORE_E_NOMEM, SCORE_E_INVAL, SCORE_E_SHAPE,
    SCORE_E_RANGE, SCORE_E_UNSUPPORTED, SCORE_E_STAGE, SCORE_E_CALLBACK, SCORE_E_CANCELLED,
    SCORE_E_NUMERIC, SCORE_E_NOPROGRESS, SCORE_E_MISUSE, SCORE_E_BACKEND, SCORE_E_IO,
    SCORE_E_FORMAT,
};

START_TEST(pinned_numbers)
{
    /* These numbers are part of the ABI and must never change. */
    ck_assert_int_eq(SCORE_OK, 0);
    ck_assert_int_eq(SCORE_DONE, 1);
    ck_assert_int_eq(SCORE_E_GENERIC, -1);
    ck_assert_int_eq(SCORE_E_NOMEM, -2);
    ck_assert_int_eq(SCORE_E_INVAL, -3);
    ck_assert_int_eq(SCORE_E_SHAPE, -4);
    ck_assert_int_eq(SCORE_E_RANGE, -5);
    ck_assert_int_eq(SCORE_E_UNSUPPORTED, -6);
    ck_assert_int_eq(SCORE_E_STAGE, -7);
    ck_assert_int_eq(SCORE_E_CALLBACK, -8);
    ck_assert_int_eq(SCORE_E_CANCELLED, -9);
    ck_assert_int_eq(SCORE_E_NUMERIC, -10);
    ck_assert_int_eq(SCORE_E_NOPROGRESS, -11);
    ck_assert_int_eq(SCORE_E_MISUSE, -12);
    ck_assert_int_eq(SCORE_E_BACKEND, -13);
    ck_assert_int_eq(SCORE_E_IO, -14);
    ck_assert_int_eq(SCORE_E_FORMAT, -15);
}
END_TEST

START_TEST(names_and_descriptions)
{
    for (size_t i = 0; i < sizeof all_codes / sizeof all_codes[0]; i++) {
        const char *name = score_status_name(all_codes[i]);
        const char *desc = score_strerror(all_codes[i]);
        ck_assert_ptr_nonnull(name);
        ck_assert_ptr_nonnull(desc);
        ck_assert_int_eq(strncmp(name, "SCORE_", 6), 0);
        ck_assert_str_ne(name, "SCORE_E_UNKNOWN");
        ck_assert_str_ne(desc, "unknown error");
        for (size_t j = 0; j < i; j++)
            ck_assert_str_ne(name, score_status_name(all_codes[j]));
    }
    ck_assert_str_eq(score_status_name(SCORE_E_RANGE), "SCORE_E_RANGE");
}
END_TEST

START_TEST(unknown_codes_never_null)
{
    const int odd[] = {-16, -1000, 2, 77, -2147483647 - 1, 2147483647};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        ck_assert_ptr_nonnull(score_strerror(odd[i]));
        ck_assert_ptr_nonnull(score_status_name(odd[i]));
    }
    ck_assert_str_eq(score_status_name(-1000), "SCORE_E_UNKNOWN");
    ck_assert_str_eq(score_status_name(77), "SCORE_UNKNOWN");
}
END_TEST

START_TEST(last_error_message)
{
    score_rng *r = NULL;
    score_last_error_clear();
    ck_assert_str_eq(score_last_error_message(), "");
    ck_assert_int_eq(score_rng_new(&r, 12345, 1), SCORE_E_UNSUPPORTED);
    ck_assert_ptr_null(r);
    /* The message names the function and the reason. */
    ck_assert_ptr_nonnull(strstr(score_last_error_message(), "score_rng_new"));
    ck_assert_ptr_nonnull(strstr(score_last_error_message(), "12345"));
    score_last_error_clear();
    ck_assert_str_eq(score_last_error_message(), "");
    score_free(NULL);
}
END_TEST

#include <pthread.h>
static void *other_thread(void *arg)
{
    (void)arg;
    /* A fresh thread has no message, whatever the main thread did. */
    return (void *)(size_t)(score_last_error_message()[0] == '\0');
}

START_TEST(last_error_is_thread_local)
{
    pthread_t th;
    void *res = NULL;
    ck_assert_int_eq(score_rng_new(NULL, SCORE_RNG_PHILOX4X32_10, 1), SCORE_E_INVAL);
    ck_assert(score_last_error_message()[0] != '\0');
    ck_assert_int_eq(pthread_create(&th, NULL, other_thread, NULL), 0);
    ck_assert_int_eq(pthread_join(th, &res), 0);
    ck_assert_ptr_eq(res, (void *)(size_t)1);
    ck_assert(score_last_error_message()[0] != '\0');
}
END_TEST

int main(void)
{
    Suite *s = suite_create("status");
    TCase *tc = tcase_create("status");
    tcase_add_test(tc, pinned_numbers);
    tcase_add_test(tc, names_and_descriptions);
    tcase_add_test(tc, unknown_codes_never_null);
    tcase_add_test(tc, last_error_message);
    tcase_add_test(tc, last_error_is_thread_local);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
