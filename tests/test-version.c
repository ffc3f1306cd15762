/* Version macros, run-time version and build information agree. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* The value of "key=" in a score_blas_check() line ("" when absent). */
static void line_value(const char *line, const char *key, char *out, size_t size)
{
    char pat[32];
    size_t n = 0;
    int klen = snprintf(pat, sizeof pat, " %s=", key);
    const char *p = strstr(line, pat);
    if (p != NULL)
        p += klen;
    else if (strncmp(line, pat + 1, (size_t)klen - 1) == 0)
        p = line + klen - 1;
    if (p != NULL)
        for (; p[n] != '\0' && p[n] != ' ' && n + 1 < size; n++)
            out[n] = p[n];
    out[n] = '\0';
}

/* 0..3 for sse, avx, avx2, avx512; -1 otherwise */
static int isa_rank(const char *isa)
{
    static const char *const names[] = {"sse", "avx", "avx2", "avx512"};
    for (int i = 0; i < 4; i++)
        if (strcmp(isa, names[i]) == 0)
            return i;
    return -1;
}

START_TEST(blas_check_line)
{
    char line[256], v[64], core_isa[16], cpu_isa[16], fit_s[16], hint[64];
    int fit = -1;
    ck_assert_int_eq(score_blas_check(line, sizeof line, &fit), SCORE_OK);
    line_value(line, "blas", v, sizeof v);
    ck_assert_str_eq(v, score_build_blas());
    ck_assert(strncmp(line, "blas=", 5) == 0);
    line_value(line, "blas_version", v, sizeof v);
    ck_assert_uint_gt(strlen(v), 0);
    line_value(line, "core", v, sizeof v);
    ck_assert_uint_gt(strlen(v), 0);
    line_value(line, "core_isa", core_isa, sizeof core_isa);
    line_value(line, "cpu_isa", cpu_isa, sizeof cpu_isa);
    line_value(line, "fit", fit_s, sizeof fit_s);
    line_value(line, "hint", hint, sizeof hint);
    ck_assert(isa_rank(core_isa) >= 0 || strcmp(core_isa, "unknown") == 0);
    ck_assert(isa_rank(cpu_isa) >= 0 || strcmp(cpu_isa, "unknown") == 0);
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    ck_assert_int_ge(isa_rank(cpu_isa), 0); /* every x86-64 processor has SSE2 */
#endif
    /* the verdict follows from the two levels; a hint comes with "narrow" only */
    if (isa_rank(core_isa) < 0 || isa_rank(cpu_isa) < 0) {
        ck_assert_int_eq(fit, SCORE_BLAS_FIT_UNKNOWN);
        ck_assert_str_eq(fit_s, "unknown");
    } else if (isa_rank(core_isa) < isa_rank(cpu_isa)) {
        ck_assert_int_eq(fit, SCORE_BLAS_FIT_NARROW);
        ck_assert_str_eq(fit_s, "narrow");
    } else {
        ck_assert_int_eq(fit, SCORE_BLAS_FIT_MATCH);
        ck_assert_str_eq(fit_s, "match");
    }
    if (fit == SCORE_BLAS_FIT_NARROW && strcmp(score_build_blas(), "openblas") == 0)
        ck_assert(strncmp(hint, "OPENBLAS_CORETYPE=", 18) == 0);
    else
        ck_assert_str_eq(hint, "");
    if (strcmp(score_build_blas(), "netlib") == 0) /* the reference CBLAS names no kernels */
        ck_assert_int_eq(fit, SCORE_BLAS_FIT_UNKNOWN);

    /* without a buffer, without the fit, into buffers of every length around the line's */
    size_t len = strlen(line);
    int fit2 = -1;
    ck_assert_int_eq(score_blas_check(NULL, 0, &fit2), SCORE_OK);
    ck_assert_int_eq(fit2, fit);
    ck_assert_int_eq(score_blas_check(v, 0, NULL), SCORE_OK);
    for (size_t size = 1; size <= len + 1; size++) {
        char out[256];
        memset(out, 'x', sizeof out);
        fit2 = -1;
        int rc = score_blas_check(out, size, &fit2);
        ck_assert_int_eq(rc, size == len + 1 ? SCORE_OK : SCORE_E_RANGE);
        ck_assert_int_eq(fit2, fit);
        ck_assert_uint_eq(strlen(out), size - 1);
        ck_assert(strncmp(out, line, size - 1) == 0);
        ck_assert_int_eq(out[size], 'x'); /* nothing written past size bytes */
        if (rc != SCORE_OK)
            ck_assert_ptr_nonnull(strstr(score_last_error_message(), "score_blas_check"));
    }
    ck_assert_int_eq(score_blas_check(NULL, 1, NULL), SCORE_E_INVAL);
}
END_TEST

/* Threads calling the check at once get the same line (OpenBLAS's configuration string, the
 * source of blas_version, is rebuilt in a static buffer of OpenBLAS's by every call: the check
 * reads it once per process). Run under ThreadSanitizer by .ci/run's TSan stage. */
#define CHECK_THREADS 4
#define CHECK_CALLS 200

static void *check_many(void *arg)
{
    const char *want = arg;
    char line[256];
    for (int i = 0; i < CHECK_CALLS; i++)
        if (score_blas_check(line, sizeof line, NULL) != SCORE_OK || strcmp(line, want) != 0)
            return (void *)1;
    return NULL;
}

START_TEST(blas_check_threads)
{
    char want[256];
    pthread_t t[CHECK_THREADS];
    ck_assert_int_eq(score_blas_check(want, sizeof want, NULL), SCORE_OK);
    for (int i = 0; i < CHECK_THREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, check_many, want), 0);
    for (int i = 0; i < CHECK_THREADS; i++) {
        void *bad = (void *)1;
        ck_assert_int_eq(pthread_join(t[i], &bad), 0);
        ck_assert_ptr_null(bad);
    }
}
END_TEST

/* Run with OpenBLAS's kernels forced to its oldest x86-64 set (tests/meson.build:
 * OPENBLAS_CORETYPE=Prescott, SCORE_TEST_FORCED_CORE=1): the check names that set and calls it
 * narrow on any processor with AVX, with the hint of the processor's own set. (BLIS 0.9 takes
 * its override as a release-dependent index; the reference CBLAS has none.) */
START_TEST(blas_check_forced_core)
{
    const char *forced = getenv("SCORE_TEST_FORCED_CORE");
    char line[256], core[32], core_isa[16], cpu_isa[16], hint[64];
    int fit = -1;
    ck_assert_int_eq(score_blas_check(line, sizeof line, &fit), SCORE_OK);
    line_value(line, "core", core, sizeof core);
    line_value(line, "core_isa", core_isa, sizeof core_isa);
    line_value(line, "cpu_isa", cpu_isa, sizeof cpu_isa);
    line_value(line, "hint", hint, sizeof hint);
#if !defined(__x86_64__)
    forced = NULL; /* OPENBLAS_CORETYPE=Prescott names an x86-64 kernel set only */
#endif
    if (forced == NULL || strcmp(score_build_blas(), "openblas") != 0) {
        /* not forced (the plain run of this file), another backend, or not x86-64 */
        ck_assert(strcmp(score_build_blas(), "netlib") != 0 || strcmp(core, "unknown") == 0);
        return;
    }
    ck_assert_str_eq(core, "Prescott");
    ck_assert_str_eq(core_isa, "sse");
    if (isa_rank(cpu_isa) > 0) {
        static const char *const want[4] = {NULL, "OPENBLAS_CORETYPE=Sandybridge",
                                            "OPENBLAS_CORETYPE=Haswell",
                                            "OPENBLAS_CORETYPE=SkylakeX"};
        ck_assert_int_eq(fit, SCORE_BLAS_FIT_NARROW);
        ck_assert_str_eq(hint, want[isa_rank(cpu_isa)]);
    } else {
        ck_assert_int_eq(fit, isa_rank(cpu_isa) == 0 ? SCORE_BLAS_FIT_MATCH
                                                     : SCORE_BLAS_FIT_UNKNOWN);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("version");
    TCase *tc = tcase_create("version");
    tcase_add_test(tc, version_consistency);
    tcase_add_test(tc, build_info_names_blas);
    tcase_add_test(tc, blas_check_line);
    tcase_add_test(tc, blas_check_forced_core);
    tcase_add_test(tc, blas_check_threads);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
