/* Version macros, run-time version and build information agree. */
#include <stdio.h>

#include "helpers/test-helpers.h"

START_TEST(version_consistency)
{
    char buf[64];
    ck_assert_uint_eq(score_version_number(), SCORE_VERSION_NUMBER);
    ck_assert_str_eq(score_version_string(), SCORE_VERSION_STRING);
    snprintf(buf, sizeof buf, "%d.%d.%d", SCORE_VERSION_MAJOR, SCORE_VERSION_MINOR, SCORE_VERSION_PATCH);
    ck_assert_str_eq(buf, SCORE_VERSION_STRING);
    ck_assert_int_eq(SCORE_VERSION_NUMBER,
                     SCORE_VERSION_MAJOR * 1000000 + SCORE_VERSION_MINOR * 1000 + SCORE_VERSION_PATCH);
    ck_assert(SCORE_VERSION_CHECK(0, 1, 0));
    ck_assert(!SCORE_VERSION_CHECK(SCORE_VERSION_MAJOR + 1, 0, 0));
}
END_TEST

START_TEST(build_info_names_blas)
{
    const char *blas = score_build_blas();
    const char *info = score_build_info();
    char key[64];
    ck_assert(strcmp(blas, "openblas") == 0 || strcmp(blas, "blis") == 0 || strcmp(blas, "netlib") == 0);
    snprintf(key, sizeof key, "blas=%s ", blas);
    ck_assert_ptr_nonnull(strstr(info, key));
    ck_assert_ptr_nonnull(strstr(info, "version=" SCORE_VERSION_STRING));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("version");
    TCase *tc = tcase_create("version");
    tcase_add_test(tc, version_consistency);
    tcase_add_test(tc, build_info_names_blas);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
