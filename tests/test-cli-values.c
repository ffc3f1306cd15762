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

/* RFC 4180 quoting and the delimiters: the values read, and the names of quoted headers. */
START_TEST(csv_quoted_fields_and_delimiters)
{
    static const struct {
        const char *text;
        char delim;
        size_t rows, cols;
        float v[4];
        const char *name0, *name1;
    } cases[] = {
        {"\"a\",\"b\"\n\"1.5\",2\n3,\" -4 \"\n", ',', 2, 2, {1.5f, 2, 3, -4}, "a", "b"},
        {"\"x, mm\",\"say \"\"hi\"\"\"\n1,2\n", ',', 1, 2, {1, 2}, "x, mm", "say \"hi\""},
        {"\"two\nlines\",y\n1,2\n", ',', 1, 2, {1, 2}, "two\nlines", "y"},
        {"p;q\n1,5;2\n3;4\n", ';', 2, 2, {0, 2, 3, 4}, "p", "q"},
        {"p\tq\n1\t2\n 3 \t4\n", '\t', 2, 2, {1, 2, 3, 4}, "p", "q"},
        {"# a \"comment\n1;2\n", ';', 1, 2, {1, 2}, NULL, NULL},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        cli_table t;
        char err[256] = "";
        cli_csv_opts o = {.delimiter = cases[k].delim};
        int rc = cli_csv_parse_opts(cases[k].text, strlen(cases[k].text), "t.csv", &o, &t, err,
                                    sizeof err);
        if (k == 3) {   /* "1,5" is not a number with ';' as the delimiter */
            ck_assert_int_eq(rc, -1);
            ck_assert_str_eq(err, "t.csv:2:1: column 1: '1,5' is not a number (it holds ',': "
                                  "give --delimiter ',' if that separates the fields)");
            continue;
        }
        ck_assert_msg(rc == 0, "case %zu: %s", k, err);
        ck_assert_uint_eq(t.rows, cases[k].rows);
        ck_assert_uint_eq(t.cols, cases[k].cols);
        for (size_t i = 0; i < t.rows * t.cols; i++)
            ck_assert_float_eq(t.data[i], cases[k].v[i]);
        if (cases[k].name0 != NULL) {
            ck_assert_str_eq(t.names[0], cases[k].name0);
            ck_assert_str_eq(t.names[1], cases[k].name1);
        } else {
            ck_assert_ptr_null(t.names);
        }
        cli_table_free(&t);
    }
}
END_TEST

/* Malformed quoting and a delimiter that is not the file's: one message with line and column. */
START_TEST(csv_quote_errors)
{
    static const struct {
        const char *text, *msg;
        char delim;
    } cases[] = {
        {"a,b\n1,\"2\n3,4\n", "t.csv:2:3: a quoted field is never closed (no matching double "
                                "quote)", ','},
        {"a,b\n1,\"2\"x\n", "t.csv:2:6: text after the closing quote of a quoted field", ','},
        {"a,b\n1,2\"3\n", "t.csv:2:4: a double quote inside an unquoted field (quote the whole "
                           "field, and double the quotes inside it)", ','},
        {"a,b\n1,\"x\"\n", "t.csv:2:3: column 2: 'x' is not a number", ','},
        {"a\n1\t2\n", "t.csv:2:1: column 1: '1\t2' is not a number (it holds a tab: give "
                    "--delimiter tab if that separates the fields)", ','},
        {"\"a\nb\",c\n1,x\n", "t.csv:3:3: column 2: 'x' is not a number", ','},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        cli_table t;
        char err[256] = "";
        cli_csv_opts o = {.delimiter = cases[k].delim};
        ck_assert_int_eq(cli_csv_parse_opts(cases[k].text, strlen(cases[k].text), "t.csv", &o, &t,
                                            err, sizeof err),
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
    tcase_add_test(tc, csv_quoted_fields_and_delimiters);
    tcase_add_test(tc, csv_quote_errors);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
