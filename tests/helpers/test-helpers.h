/* Shared test helpers: suite runner and named tolerances. */
#ifndef LIBSCORE_TEST_HELPERS_H
#define LIBSCORE_TEST_HELPERS_H

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <libscore/libscore.h>

/* float32 GEMM against a double reference: the relative error of a K-term dot product is
 * bounded by about K * 2^-24; 1e-4 relative covers K up to ~1000 with margin. */
#define TOL_GEMM_REL 1e-4
/* Central finite differences of smooth scalar functions in double with h = 1e-5: truncation
 * error O(h^2 f''') ~ 1e-10 and round-off O(eps / h) ~ 1e-11. */
#define TOL_FD_DOUBLE 1e-7

/* Asserts that a call failed with the expected status and left a non-empty message. */
#define ck_assert_fails_with(call, status)                                                   \
    do {                                                                                     \
        score_last_error_clear();                                                            \
        int rc__ = (call);                                                                   \
        ck_assert_int_eq(rc__, (status));                                                    \
        ck_assert_msg(score_last_error_message()[0] != '\0', "no last-error message after %s", \
                      #call);                                                                \
    } while (0)

#define ck_assert_ok(call) ck_assert_int_eq((call), SCORE_OK)

static inline int test_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    int failed;
    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
