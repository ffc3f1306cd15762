/* Check suite of the command-line tool's own pieces: CSV parsing and its error messages, the
 * sliced Wasserstein-2 metric (closed forms), the SVG writer and option parsing. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"

/* ---- CSV -------------------------------------------------------------------------------- */

static int parse(const char *text, cli_table *t, char *err)
{
    return cli_csv_parse(text, strlen(text), "t.csv", t, err, 256);
}

START_TEST(csv_plain_and_header)
{
    cli_table t;
    char err[256] = "";
    ck_assert_int_eq(parse("# comment\n\nx, y\n1,2\r\n 3 ,-4.5e1\n\n-0.25,7\n", &t, err), 0);
    ck_assert_uint_eq(t.rows, 3);
    ck_assert_uint_eq(t.cols, 2);
    ck_assert_ptr_nonnull(t.names);
    ck_assert_str_eq(t.names[0], "x");
    ck_assert_str_eq(t.names[1], "y");
    ck_assert_float_eq(t.data[0], 1.0f);
    ck_assert_float_eq(t.data[3], -45.0f);
    ck_assert_float_eq(t.data[4], -0.25f);
    cli_table_free(&t);

    ck_assert_int_eq(parse("1\n2\n3", &t, err), 0);   /* no final newline, one column */
    ck_assert_uint_eq(t.rows, 3);
    ck_assert_uint_eq(t.cols, 1);
    ck_assert_ptr_null(t.names);
    ck_assert_float_eq(t.data[2], 3.0f);
    cli_table_free(&t);
}
END_TEST

/* A text column (a class label) chosen by its header name: taken out of the numbers. */
START_TEST(csv_text_column)
{
    cli_table t;
    char err[256] = "";
    const char *text = "x, cls ,y\n1,left,2\n3, right ,4\n# c\n5,7,6\n";
    ck_assert_int_eq(cli_csv_parse_ex(text, strlen(text), "t.csv", "cls", &t, err, sizeof err), 0);
    ck_assert_uint_eq(t.rows, 3);
    ck_assert_uint_eq(t.cols, 2);
    ck_assert_str_eq(t.names[0], "x");
    ck_assert_str_eq(t.names[1], "y");
    ck_assert_ptr_nonnull(t.text);
    ck_assert_str_eq(t.text[0], "left");
    ck_assert_str_eq(t.text[1], "right");
    ck_assert_str_eq(t.text[2], "7");
    ck_assert_float_eq(t.data[0], 1.0f);
    ck_assert_float_eq(t.data[1], 2.0f);
    ck_assert_float_eq(t.data[2], 3.0f);
    ck_assert_float_eq(t.data[5], 6.0f);
    cli_table_free(&t);
    /* the label column first and last */
    text = "c,a\n0,1.5\n1,2.5\n";
    ck_assert_int_eq(cli_csv_parse_ex(text, strlen(text), "t.csv", "c", &t, err, sizeof err), 0);
    ck_assert_uint_eq(t.cols, 1);
    ck_assert_str_eq(t.names[0], "a");
    ck_assert_str_eq(t.text[1], "1");
    ck_assert_float_eq(t.data[1], 2.5f);
    cli_table_free(&t);
    /* without a text column, a text field is still an error */
    ck_assert_int_eq(parse("x,cls\n1,left\n", &t, err), -1);
    ck_assert_str_eq(err, "t.csv:2:3: column 2: 'left' is not a number");
    ck_assert_ptr_null(t.text);

#define PARSE_EX(txt, col) cli_csv_parse_ex(txt, strlen(txt), "t.csv", col, &t, err, sizeof err)
    ck_assert_int_eq(PARSE_EX("x,y\n1,2\n", "cls"), -1);
    ck_assert_str_eq(err, "t.csv: no column named 'cls' in the header");
    ck_assert_int_eq(PARSE_EX("1,2\n3,4\n", "cls"), -1);
    ck_assert_str_eq(err, "t.csv: no header line naming the columns (looked for column 'cls')");
    ck_assert_int_eq(PARSE_EX("x,cls\n1,a\n2,\n", "cls"), -1);
    ck_assert_str_eq(err, "t.csv:3:3: column 2 is empty");
    ck_assert_int_eq(PARSE_EX("x,cls\n1,a\nz,b\n", "cls"), -1);
    ck_assert_str_eq(err, "t.csv:3:1: column 1: 'z' is not a number");
    ck_assert_int_eq(PARSE_EX("cls\na\nb\n", "cls"), -1);
    ck_assert_str_eq(err, "t.csv: no data columns besides 'cls'");
    ck_assert_ptr_null(t.text);
#undef PARSE_EX
}
END_TEST

START_TEST(csv_errors_name_line_and_column)
{
    cli_table t;
    char err[256];
    ck_assert_int_eq(parse("1,2\n3,abc\n", &t, err), -1);
    ck_assert_str_eq(err, "t.csv:2:3: column 2: 'abc' is not a number");
    ck_assert_ptr_null(t.data);

    ck_assert_int_eq(parse("a,b\n1,2\n3,4,5\n", &t, err), -1);
    ck_assert_str_eq(err, "t.csv:3: 3 columns, but the header names 2");

    ck_assert_int_eq(parse("# c\n1,2\n\n3\n", &t, err), -1);
    ck_assert_str_eq(err, "t.csv:4: 1 column, but line 2 has 2");

    ck_assert_int_eq(parse("1,,2\n", &t, err), -1);
    ck_assert_str_eq(err, "t.csv:1:3: column 2 is empty");

    ck_assert_int_eq(parse("1,nan\n", &t, err), -1);
    ck_assert_str_eq(err, "t.csv:1:3: column 2: 'nan' is not a finite float32 number");

    ck_assert_int_eq(parse("1e39\n", &t, err), -1);   /* overflows float32 */
    ck_assert_str_eq(err, "t.csv:1:1: column 1: '1e39' is not a finite float32 number");

    ck_assert_int_eq(parse("x,y\n# only a header\n", &t, err), -1);
    ck_assert_str_eq(err, "t.csv: no data rows");

    ck_assert_int_eq(parse("", &t, err), -1);
    ck_assert_str_eq(err, "t.csv: no data rows");

    ck_assert_int_eq(cli_csv_parse("1,2\n\0\n", 6, "b.bin", &t, err, sizeof err), -1);
    ck_assert_str_eq(err, "b.bin:2: binary data (a NUL byte): not a CSV text file");

    ck_assert_int_eq(cli_csv_read("/nonexistent/dir/x.csv", &t, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "cannot open '/nonexistent/dir/x.csv'"));
}
END_TEST

START_TEST(csv_write_read_round_trip)
{
    char path[] = "/tmp/score-cli-test-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    const float v[6] = {1.5f, -2.0f, 3.1415927f, 1e-7f, 0.0f, 123456.78f};
    const char *hdr[2] = {"a", "b"};
    char err[256];
    ck_assert_int_eq(cli_csv_write(path, v, 3, 2, hdr, err, sizeof err), 0);
    cli_table t;
    ck_assert_int_eq(cli_csv_read(path, &t, err, sizeof err), 0);
    ck_assert_uint_eq(t.rows, 3);
    ck_assert_str_eq(t.names[1], "b");
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq(t.data[i], v[i]);   /* %.9g round-trips float32 exactly */
    cli_table_free(&t);
    remove(path);
}
END_TEST

/* ---- sliced W2 -------------------------------------------------------------------------- */

START_TEST(w2_1d_closed_forms)
{
    /* equal sizes: mean squared difference of sorted values */
    const double a[3] = {0, 1, 2}, b[3] = {1, 2, 3};
    ck_assert_double_eq_tol(cli_w2_sq_sorted_1d(a, 3, b, 3), 1.0, 1e-15);
    /* {0} vs {0, 1}: half the mass moves by 1 -> W2^2 = 0.5 */
    const double c[1] = {0}, d[2] = {0, 1};
    ck_assert_double_eq_tol(cli_w2_sq_sorted_1d(c, 1, d, 2), 0.5, 1e-15);
    /* {0, 1} vs {0, 1, 2}: quantiles on (0,1/3]: 0-0, (1/3,1/2]: 0-1, (1/2,2/3]: 1-1,
     * (2/3,1]: 1-2 -> 1/6 + 1/3 = 0.5 */
    const double e[2] = {0, 1}, f[3] = {0, 1, 2};
    ck_assert_double_eq_tol(cli_w2_sq_sorted_1d(e, 2, f, 3), 0.5, 1e-15);
    ck_assert_double_eq_tol(cli_w2_sq_sorted_1d(f, 3, e, 2), 0.5, 1e-15);
}
END_TEST

START_TEST(sliced_w2_shift)
{
    /* a point cloud and its copy shifted by delta: every projection is shifted by u . delta,
     * so SW2^2 = mean_u (u . delta)^2 -> |delta|^2 / dim for many random directions. With
     * 4000 directions in 2-D the Monte-Carlo error of the mean of cos^2 (variance 1/8) is
     * about sqrt(1/8 / 4000) = 0.0056 relative to 0.5; 5 sigma = 0.028. */
    enum { N = 50, D = 2 };
    float a[N * D], b[N * D];
    for (int i = 0; i < N; i++) {
        a[i * D] = (float)sin(i * 1.7);
        a[i * D + 1] = (float)cos(i * 0.3);
        b[i * D] = a[i * D] + 3.0f;
        b[i * D + 1] = a[i * D + 1] + 4.0f;
    }
    double sw = cli_sliced_w2(a, N, b, N, D, 4000, 1);
    ck_assert_double_eq_tol(sw * sw / 25.0, 0.5, 0.028);
    ck_assert_double_eq_tol(cli_sliced_w2(a, N, a, N, D, 50, 1), 0.0, 1e-12);
    /* 1-D: exact, independent of the directions */
    double sw1 = cli_sliced_w2(a, N * D, b, N * D, 1, 10, 3);
    ck_assert(sw1 > 0);
    ck_assert(cli_sliced_w2(NULL, 1, b, 1, 1, 1, 1) < 0);
}
END_TEST

/* ---- SVG -------------------------------------------------------------------------------- */

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    ck_assert_uint_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

START_TEST(svg_document)
{
    char path[] = "/tmp/score-cli-svg-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    char err[256];
    cli_svg *svg = cli_svg_begin(path, 400, 300, "a <title> & more", err, sizeof err);
    ck_assert_ptr_nonnull(svg);
    cli_panel p;
    cli_svg_panel(svg, &p, 0, 0, 400, 300, -1, 1, -2, 2, 0, "t", "x", "y");
    /* the data rectangle maps onto the plotting area */
    ck_assert_double_eq(p.x0, -1);
    ck_assert_double_eq(p.y1, 2);
    const float pts[4] = {0, 0, 1, 2};
    cli_svg_points(svg, &p, pts, 2, 2, 0, 1, "#123456", 2, 0.5);
    double x = 0, y = 0, u = 0.5, v = 0.5;
    cli_svg_arrows(svg, &p, &x, &y, &u, &v, 1, "black", 1);
    cli_svg_legend(svg, &p, 0, "red", "data");
    cli_panel q;
    cli_svg_panel(svg, &q, 0, 0, 400, 300, 0, 10, 1e-3, 10, 1, NULL, NULL, NULL);
    double lx[3] = {0, 5, 10}, ly[3] = {1, 0.1, 0.01};
    cli_svg_polyline(svg, &q, lx, ly, 3, "blue", 1);
    ck_assert_int_eq(cli_svg_end(svg, err, sizeof err), 0);
    char *s = slurp(path);
    ck_assert_ptr_nonnull(strstr(s, "<title>a &lt;title&gt; &amp; more</title>"));
    ck_assert_ptr_nonnull(strstr(s, "fill=\"#123456\""));
    /* point (1, 2) is the top-right corner of the plotting area */
    char want[64];
    snprintf(want, sizeof want, "cx=\"%.1f\" cy=\"%.1f\"", p.px + p.pw, p.py);
    ck_assert_ptr_nonnull(strstr(s, want));
    ck_assert_ptr_nonnull(strstr(s, "<polyline"));
    ck_assert_ptr_nonnull(strstr(s, "</svg>\n"));
    free(s);
    remove(path);
    ck_assert_ptr_null(cli_svg_begin("/nonexistent/dir/p.svg", 10, 10, NULL, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "cannot write"));
}
END_TEST

/* ---- model files -------------------------------------------------------------------------- */

START_TEST(model_header_errors)
{
    char err[256];
    static const char good[] = "{\"__metadata__\":{\"kind\":\"mlp\"}}";
    void *root = cli_header_parse("m.st", good, strlen(good), err, sizeof err);
    ck_assert_ptr_nonnull(root);
    cJSON_Delete(root);
    /* malformed: the message says so, with where the parser stopped; not "out of memory" */
    static const char bad[] = "{\"__metadata__\":{\"kind\" \"mlp\"}}";
    ck_assert_ptr_null(cli_header_parse("m.st", bad, strlen(bad), err, sizeof err));
    ck_assert_str_eq(err, "'m.st' is not a usable model file: its header is not valid JSON "
                          "(at byte 24 of 31)");
    /* a header cut short */
    ck_assert_ptr_null(cli_header_parse("m.st", good, 10, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "its header is not valid JSON (at byte"));
    ck_assert_ptr_null(strstr(err, "out of memory"));
}
END_TEST

/* ---- options ---------------------------------------------------------------------------- */

START_TEST(options)
{
    cli_opt opts[] = {
        {"steps", 0, 1, "N", "steps", NULL},
        {"output", 'o', 1, "FILE", "out", NULL},
        {"quiet", 'q', 0, NULL, "quiet", NULL},
        {NULL, 0, 0, NULL, NULL, NULL},
    };
    char *argv[] = {"score", "train", "--steps=12", "-o", "m.st", "pos", "-q", NULL};
    const char *pos[2];
    int npos, help;
    ck_assert_int_eq(cli_parse(7, argv, 2, opts, pos, 2, &npos, &help), 0);
    ck_assert_int_eq(npos, 1);
    ck_assert_str_eq(pos[0], "pos");
    ck_assert_str_eq(cli_opt_get(opts, "output"), "m.st");
    ck_assert(cli_opt_flag(opts, "quiet"));
    size_t steps = 0;
    ck_assert_int_eq(cli_opt_size(opts, "steps", 1, 100, &steps), 0);
    ck_assert_uint_eq(steps, 12);
    ck_assert_int_eq(cli_opt_size(opts, "steps", 20, 100, &steps), CLI_EXIT_USAGE);
    char *bad[] = {"score", "train", "--stesp", "3", NULL};
    for (cli_opt *o = opts; o->name; o++)
        o->value = NULL;
    ck_assert_int_eq(cli_parse(4, bad, 2, opts, pos, 2, &npos, &help), CLI_EXIT_USAGE);
    char *miss[] = {"score", "train", "--steps", NULL};
    ck_assert_int_eq(cli_parse(3, miss, 2, opts, pos, 2, &npos, &help), CLI_EXIT_USAGE);
    /* getopt_long(): an unambiguous prefix, combined short options, "--" ending the options */
    cli_opt more[] = {
        {"steps", 0, 1, "N", "steps", NULL},
        {"step-size", 0, 1, "X", "step size", NULL},
        {"n", 'n', 1, "N", "count", NULL},
        {"quiet", 'q', 0, NULL, "quiet", NULL},
        {NULL, 0, 0, NULL, NULL, NULL},
    };
    char *abbr[] = {"score", "sample", "--steps", "7", "--step-s=0.5", "-qn12", "--", "-q", NULL};
    ck_assert_int_eq(cli_parse(8, abbr, 2, more, pos, 2, &npos, &help), 0);
    ck_assert_str_eq(cli_opt_get(more, "steps"), "7");
    ck_assert_str_eq(cli_opt_get(more, "step-size"), "0.5");
    ck_assert_str_eq(cli_opt_get(more, "n"), "12");
    ck_assert(cli_opt_flag(more, "quiet"));
    ck_assert_int_eq(npos, 1);
    ck_assert_str_eq(pos[0], "-q");
    char *ambiguous[] = {"score", "sample", "--ste", "7", NULL};
    ck_assert_int_eq(cli_parse(4, ambiguous, 2, more, pos, 2, &npos, &help), CLI_EXIT_USAGE);
    char *flag_value[] = {"score", "sample", "--quiet=yes", NULL};
    ck_assert_int_eq(cli_parse(3, flag_value, 2, more, pos, 2, &npos, &help), CLI_EXIT_USAGE);
    static const cli_name names[] = {{"euler", 1, ""}, {"heun", 2, ""}, {NULL, 0, NULL}};
    int val = 0;
    ck_assert_int_eq(cli_lookup(names, "sampler", "heun", &val), 0);
    ck_assert_int_eq(val, 2);
    ck_assert_int_eq(cli_lookup(names, "sampler", "hen", &val), CLI_EXIT_USAGE);
    ck_assert_str_eq(cli_name_of(names, 1), "euler");
}
END_TEST

static Suite *cli_suite(void)
{
    Suite *s = suite_create("cli-internals");
    TCase *tc = tcase_create("csv");
    tcase_add_test(tc, csv_plain_and_header);
    tcase_add_test(tc, csv_errors_name_line_and_column);
    tcase_add_test(tc, csv_text_column);
    tcase_add_test(tc, csv_write_read_round_trip);
    suite_add_tcase(s, tc);
    tc = tcase_create("metrics");
    tcase_add_test(tc, w2_1d_closed_forms);
    tcase_add_test(tc, sliced_w2_shift);
    suite_add_tcase(s, tc);
    tc = tcase_create("svg");
    tcase_add_test(tc, svg_document);
    suite_add_tcase(s, tc);
    tc = tcase_create("modelfile");
    tcase_add_test(tc, model_header_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("options");
    tcase_add_test(tc, options);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cli_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
