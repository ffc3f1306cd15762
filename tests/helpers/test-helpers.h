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

/* Three analytic models of dimension 3 under schedule s (borrowed: the model keeps its own
 * copy): 0 a diagonal Gaussian, 1 a Gaussian with a full covariance, 2 a mixture of three
 * diagonal Gaussians. Used by the model-file tests. */
static inline score_model *test_analytic3(int which, const score_schedule *s)
{
    enum { D = 3 };
    score_model *m = NULL;
    const double mean[D] = {0.5, -1.0, 2.0}, var[D] = {0.3, 1.7, 0.05};
    const double cov[D * D] = {1.0, 0.3, -0.2, 0.3, 0.8, 0.1, -0.2, 0.1, 0.5};
    const double w[3] = {0.2, 0.5, 0.3};
    const double mus[3 * D] = {-1, 0, 1, 2, 2, -2, 0.5, -0.5, 0};
    const double vs[3 * D] = {0.1, 0.2, 0.3, 0.5, 0.05, 1.0, 0.2, 0.2, 0.4};
    if (which == 0)
        ck_assert_ok(score_model_new_gaussian(&m, s, D, mean, NULL, var));
    else if (which == 1)
        ck_assert_ok(score_model_new_gaussian(&m, s, D, mean, cov, NULL));
    else
        ck_assert_ok(score_model_new_gmm(&m, s, D, 3, w, mus, vs));
    return m;
}

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
