/* Values of the command-line tool's pieces that its other tests leave open: a CSV number with
 * trailing characters is refused (not read as its numeric prefix). */
#include <check.h>
#include <string.h>

#include "cli.h"

START_TEST(csv_number_with_trailing_characters)
{
    static const struct {
        const char *text, *msg;
    } cases[] = {
        {"1,2x\n", "t.csv:1:3: column 2: '2x' is not a number"},
        {"1.5e3e,2\n", "t.csv:1:1: column 1: '1.5e3e' is not a number"},
        {"x,y\n1,2\n3,4 5\n", "t.csv:3:3: column 2: '4 5' is not a number"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        cli_table t;
        char err[256] = "";
        ck_assert_int_eq(cli_csv_parse(cases[k].text, strlen(cases[k].text), "t.csv", &t, err,
                                       sizeof err),
                         -1);
        ck_assert_str_eq(err, cases[k].msg);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cli-values");
    TCase *tc = tcase_create("csv");
    SRunner *sr;
    int failed;
    tcase_add_test(tc, csv_number_with_trailing_characters);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
