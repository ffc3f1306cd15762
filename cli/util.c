/* Error reporting, option parsing and name tables of the `score` tool. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <libscore/libscore.h>

const char *cli_command = "";

static void vreport(const char *fmt, va_list ap)
{
    fprintf(stderr, "score%s%s: ", *cli_command ? " " : "", cli_command);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(fmt, ap);
    va_end(ap);
    return CLI_EXIT_FAILURE;
}

int cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(fmt, ap);
    va_end(ap);
    return CLI_EXIT_USAGE;
}

int cli_binary_output_check(const char *option, const char *path)
{
    if (path != NULL && strcmp(path, "-") == 0)
        return cli_usage_error("%s -: this file cannot go to standard output; give a file name "
                               "(./- for a file named '-')",
                               option);
    return 0;
}

void cli_note_blas(void)
{
    char line[256], core[32] = "", cpu[16] = "", hint[64] = "";
    int fit = SCORE_BLAS_FIT_UNKNOWN;
    if (score_blas_check(line, sizeof line, &fit) != SCORE_OK || fit != SCORE_BLAS_FIT_NARROW)
        return;
    const char *p;
    if ((p = strstr(line, " core=")) != NULL)
        sscanf(p + 6, "%31s", core);
    if ((p = strstr(line, " cpu_isa=")) != NULL)
        sscanf(p + 9, "%15s", cpu);
    if ((p = strstr(line, " hint=")) != NULL)
        sscanf(p + 6, "%63s", hint);
    fprintf(stderr, "note: the BLAS runs its %s kernels, made for older processors (this one has "
            "%s): the products it computes run slower than they could%s%s%s (see 'score "
            "--version')\n", core, cpu, hint[0] ? "; set " : "", hint,
            hint[0] ? " before starting" : "");
}

int cli_lib_fail(int status, const char *what)
{
    const char *msg = score_last_error_message();
    if (msg == NULL || *msg == '\0')
        msg = score_strerror(status);
    return cli_fail("%s: %s", what, msg);
}

/* ---- option parsing ------------------------------------------------------------------------
 * glibc getopt_long() does the scanning (abbreviated long options, combined short options,
 * "--name=value" and "--name value", "--" ending the options); this layer builds its tables from
 * the cli_opt array and turns its error returns into the tool's one-line messages. */

#define CLI_MAX_OPTS 64
#define CLI_HELP_VAL 0x10000   /* getopt value of --help / -h */
#define CLI_LONG_VAL 0x100     /* getopt value of opts[i] without alias: CLI_LONG_VAL + i */

/* The name part of a long-option argument "--name[=value]": its length. */
static size_t long_name_len(const char *arg)
{
    const char *eq = strchr(arg + 2, '=');
    return eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
}

/* getopt_long() reports unknown and ambiguous long options alike: tell them apart, and name the
 * candidates of an ambiguous abbreviation. */
static int bad_long_option(const cli_opt *opts, const char *arg)
{
    size_t len = long_name_len(arg);
    char list[512] = "";
    size_t used = 0, matches = 0;
    for (const cli_opt *o = opts; o->name != NULL; o++) {
        if (strncmp(o->name, arg + 2, len) != 0)
            continue;
        int w = snprintf(list + used, sizeof list - used, "%s--%s", matches ? ", " : "",
                         o->name);
        if (w > 0 && (size_t)w < sizeof list - used)
            used += (size_t)w;
        matches++;
    }
    if (strncmp("help", arg + 2, len) == 0 && matches > 0)
        snprintf(list + used, sizeof list - used, ", --help");
    if (matches > 0)
        return cli_usage_error("option '%.*s' is ambiguous (could be %s)", (int)(len + 2), arg,
                               list);
    return cli_usage_error("unknown option '%.*s' (see 'score %s --help')", (int)(len + 2), arg,
                           cli_command);
}

/* The cli_opt that getopt_long() returned as val, or NULL. */
static cli_opt *opt_of_val(cli_opt *opts, int val)
{
    for (int i = 0; opts[i].name != NULL; i++)
        if ((opts[i].alias ? (unsigned char)opts[i].alias : CLI_LONG_VAL + i) == val)
            return &opts[i];
    return NULL;
}

/* Fills the getopt_long() tables: optstring (return non-options in order, report missing
 * values with ':', then the aliases) and the long options with --help last. */
static int build_tables(const cli_opt *opts, char *shorts, size_t shorts_len,
                        struct option *longs)
{
    size_t s = 0, i;
    shorts[s++] = '-';
    shorts[s++] = ':';
    for (i = 0; opts[i].name != NULL; i++) {
        if (i + 2 > CLI_MAX_OPTS || s + 3 >= shorts_len)
            return -1;
        longs[i].name = opts[i].name;
        longs[i].has_arg = opts[i].takes_value ? required_argument : no_argument;
        longs[i].flag = NULL;
        longs[i].val = opts[i].alias ? (unsigned char)opts[i].alias : CLI_LONG_VAL + (int)i;
        if (opts[i].alias) {
            shorts[s++] = opts[i].alias;
            if (opts[i].takes_value)
                shorts[s++] = ':';
        }
    }
    shorts[s++] = 'h';
    shorts[s] = '\0';
    longs[i] = (struct option){"help", no_argument, NULL, CLI_HELP_VAL};
    longs[i + 1] = (struct option){NULL, 0, NULL, 0};
    return 0;
}

/* One error return of getopt_long() (c is '?' or ':') as the tool's message. glibc sets optopt
 * to 0 for an unknown or ambiguous long option (then argv[optind - 1] is that option), to the
 * option's value for a missing value or a value given to a flag, and to the character of an
 * unknown short option. */
static int option_error(cli_opt *opts, int c, const char *arg)
{
    cli_opt *o = opt_of_val(opts, optopt);
    if (optopt == 0)
        return bad_long_option(opts, arg);
    if (c == ':')
        return cli_usage_error("option '--%s' needs a value (%s)", o ? o->name : "help",
                               o && o->metavar ? o->metavar : "VALUE");
    if (o != NULL || optopt == CLI_HELP_VAL)
        return cli_usage_error("option '--%s' takes no value", o ? o->name : "help");
    return cli_usage_error("unknown option '-%c' (see 'score %s --help')", optopt, cli_command);
}

/* Refuses unusable output files before any work is done (they are checked again when
 * opened). */
static int check_outputs(const cli_opt *opts)
{
    char err[512];
    for (const cli_opt *o = opts; o->name != NULL; o++)
        if ((strcmp(o->name, "output") == 0 || strcmp(o->name, "plot") == 0) &&
            o->value != NULL && strcmp(o->value, "-") != 0 &&
            cli_output_check(o->value, err, sizeof err) != 0)
            return cli_fail("%s", err);
    return 0;
}

static int add_positional(const char *a, const char **pos, int max_pos, int *npos)
{
    if (*npos >= max_pos)
        return cli_usage_error("unexpected argument '%s' (see 'score %s --help')", a,
                               cli_command);
    pos[(*npos)++] = a;
    return 0;
}

int cli_parse(int argc, char **argv, int first, cli_opt *opts, const char **pos, int max_pos,
              int *npos, int *want_help)
{
    char shorts[2 * CLI_MAX_OPTS + 4];
    struct option longs[CLI_MAX_OPTS];
    *npos = 0;
    *want_help = 0;
    if (build_tables(opts, shorts, sizeof shorts, longs) != 0)
        return cli_fail("internal error: too many options");
    /* getopt_long() scans from argv[1]: let it see argv[first - 1..argc) */
    int gc = argc - first + 1, c, rc;
    char **gv = argv + first - 1;
    optind = 0;   /* glibc: start afresh (a new argument vector) */
    opterr = 0;   /* the messages are ours */
    while ((c = getopt_long(gc, gv, shorts, longs, NULL)) != -1) {
        if (c == 1) {
            if ((rc = add_positional(optarg, pos, max_pos, npos)) != 0)
                return rc;
        } else if (c == '?' || c == ':') {
            return option_error(opts, c, gv[optind - 1]);
        } else if (c == 'h' || c == CLI_HELP_VAL) {
            *want_help = 1;
        } else {
            cli_opt *o = opt_of_val(opts, c);
            o->value = o->takes_value ? optarg : "1";
        }
    }
    for (int i = optind; i < gc; i++)   /* the arguments after "--" */
        if ((rc = add_positional(gv[i], pos, max_pos, npos)) != 0)
            return rc;
    return *want_help ? 0 : check_outputs(opts);
}

int cli_parse_command(int argc, char **argv, cli_opt *opts, const char *text,
                      void (*extra)(FILE *), const char **pos, int min_pos, int max_pos,
                      int *npos, int *help)
{
    int rc = cli_parse(argc, argv, 2, opts, pos, max_pos, npos, help);
    if (rc != 0 || (!*help && *npos >= min_pos))
        return rc;
    FILE *f = *help ? stdout : stderr;
    fputs(text, f);
    cli_print_options(f, opts);
    if (extra != NULL)
        extra(f);
    return *help ? 0 : CLI_EXIT_USAGE;
}

int cli_stdin_once(const char *const *inputs, size_t n)
{
    size_t dashes = 0;
    for (size_t i = 0; i < n; i++)
        dashes += inputs[i] != NULL && strcmp(inputs[i], "-") == 0;
    if (dashes > 1)
        return cli_usage_error("only one input can be '-' (stdin)");
    return 0;
}

const char *cli_opt_get(const cli_opt *opts, const char *name)
{
    for (const cli_opt *o = opts; o->name != NULL; o++)
        if (strcmp(o->name, name) == 0)
            return o->value;
    return NULL;
}

int cli_opt_flag(const cli_opt *opts, const char *name)
{
    return cli_opt_get(opts, name) != NULL;
}

int cli_opt_size(const cli_opt *opts, const char *name, size_t min, size_t max, size_t *out)
{
    const char *v = cli_opt_get(opts, name);
    if (v == NULL)
        return 0;
    char *end;
    errno = 0;
    if (*v == '-' || *v == '\0')
        goto bad;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno != 0 || *end != '\0')
        goto bad;
    if (x < min || x > max)
        return cli_usage_error("--%s %s is out of range [%zu, %zu]", name, v, min, max);
    *out = (size_t)x;
    return 0;
bad:
    return cli_usage_error("--%s: '%s' is not a non-negative integer", name, v);
}

int cli_model_threads(const cli_opt *opts, score_model *model)
{
    size_t threads = 0;
    int rc = cli_opt_size(opts, "threads", 1, 1024, &threads);
    if (rc != 0 || threads == 0)
        return rc;
    if ((rc = score_model_set_i64(model, SCORE_MODEL_PARAM_THREADS, (int64_t)threads)) != SCORE_OK)
        return cli_lib_fail(rc, "--threads");
    return 0;
}

int cli_opt_u64(const cli_opt *opts, const char *name, uint64_t *out)
{
    const char *v = cli_opt_get(opts, name);
    if (v == NULL)
        return 0;
    char *end;
    errno = 0;
    unsigned long long x = (*v == '-' || *v == '\0') ? 0 : strtoull(v, &end, 0);
    if (*v == '-' || *v == '\0' || errno != 0 || *end != '\0')
        return cli_usage_error("--%s: '%s' is not a non-negative integer", name, v);
    *out = (uint64_t)x;
    return 0;
}

int cli_opt_double(const cli_opt *opts, const char *name, double min, double max, double *out)
{
    const char *v = cli_opt_get(opts, name);
    if (v == NULL)
        return 0;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (*v == '\0' || *end != '\0' || !isfinite(x))
        return cli_usage_error("--%s: '%s' is not a finite number", name, v);
    if (x < min || x > max)
        return cli_usage_error("--%s %s is out of range [%g, %g]", name, v, min, max);
    *out = x;
    return 0;
}

void cli_print_options(FILE *f, const cli_opt *opts)
{
    for (const cli_opt *o = opts; o->name != NULL; o++) {
        char left[64];
        if (o->alias)
            snprintf(left, sizeof left, "-%c, --%s%s%s", o->alias, o->name,
                     o->takes_value ? " " : "", o->takes_value ? o->metavar : "");
        else
            snprintf(left, sizeof left, "    --%s%s%s", o->name, o->takes_value ? " " : "",
                     o->takes_value ? o->metavar : "");
        fprintf(f, "  %-26s %s\n", left, o->help);
    }
}

void cli_join_names(const void *table, size_t stride, char *list, size_t len)
{
    size_t used = 0;
    list[0] = '\0';
    for (const char *e = table; *(const char *const *)e != NULL; e += stride) {
        int w = snprintf(list + used, len - used, "%s%s", e == table ? "" : ", ",
                         *(const char *const *)e);
        if (w < 0 || (size_t)w >= len - used)
            break;
        used += (size_t)w;
    }
}

int cli_lookup(const cli_name *table, const char *what, const char *name, int *out)
{
    for (const cli_name *t = table; t->name != NULL; t++) {
        if (strcmp(t->name, name) == 0) {
            *out = t->value;
            return 0;
        }
    }
    char list[1024];
    cli_join_names(table, sizeof *table, list, sizeof list);
    return cli_usage_error("unknown %s '%s' (valid: %s)", what, name, list);
}

int cli_opt_lookup(const cli_opt *opts, const char *name, const cli_name *table,
                   const char *what, int *out)
{
    const char *v = cli_opt_get(opts, name);
    return v != NULL ? cli_lookup(table, what, v, out) : 0;
}

const char *cli_name_of(const cli_name *table, int value)
{
    for (const cli_name *t = table; t->name != NULL; t++)
        if (t->value == value)
            return t->name;
    return NULL;
}

void cli_print_names(FILE *f, const char *title, const cli_name *table)
{
    fprintf(f, "%s:\n", title);
    for (const cli_name *t = table; t->name != NULL; t++)
        fprintf(f, "  %-16s %s\n", t->name, t->help ? t->help : "");
}
