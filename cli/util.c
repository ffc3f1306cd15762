/* Error reporting, option parsing and name tables of the `score` tool. */
#include "cli.h"

#include <errno.h>
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

int cli_lib_fail(int status, const char *what)
{
    const char *msg = score_last_error_message();
    if (msg == NULL || *msg == '\0')
        msg = score_strerror(status);
    return cli_fail("%s: %s", what, msg);
}

static cli_opt *find_long(cli_opt *opts, const char *name, size_t len)
{
    for (cli_opt *o = opts; o->name != NULL; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
            return o;
    return NULL;
}

static cli_opt *find_short(cli_opt *opts, char c)
{
    for (cli_opt *o = opts; o->name != NULL; o++)
        if (o->alias == c)
            return o;
    return NULL;
}

int cli_parse(int argc, char **argv, int first, cli_opt *opts, const char **pos, int max_pos,
              int *npos, int *want_help)
{
    int only_pos = 0;
    *npos = 0;
    *want_help = 0;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        cli_opt *o = NULL;
        const char *val = NULL;
        if (!only_pos && strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (!only_pos && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)) {
            *want_help = 1;
            continue;
        }
        if (!only_pos && a[0] == '-' && a[1] == '-') {
            const char *eq = strchr(a + 2, '=');
            size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
            o = find_long(opts, a + 2, len);
            if (o == NULL)
                return cli_usage_error("unknown option '%.*s' (see 'score %s --help')",
                                       (int)(len + 2), a, cli_command);
            if (eq != NULL) {
                if (!o->takes_value)
                    return cli_usage_error("option '--%s' takes no value", o->name);
                val = eq + 1;
            }
        } else if (!only_pos && a[0] == '-' && a[1] != '\0' && a[2] == '\0' &&
                   !(a[1] >= '0' && a[1] <= '9')) {
            o = find_short(opts, a[1]);
            if (o == NULL)
                return cli_usage_error("unknown option '%s' (see 'score %s --help')", a,
                                       cli_command);
        } else {
            if (*npos >= max_pos)
                return cli_usage_error("unexpected argument '%s' (see 'score %s --help')", a,
                                       cli_command);
            pos[(*npos)++] = a;
            continue;
        }
        if (o->takes_value && val == NULL) {
            if (i + 1 >= argc)
                return cli_usage_error("option '--%s' needs a value (%s)", o->name,
                                       o->metavar ? o->metavar : "VALUE");
            val = argv[++i];
        }
        o->value = o->takes_value ? val : "1";
    }
    /* Refuse unusable output files before any work is done (they are checked again when
     * opened). */
    for (cli_opt *o = opts; !*want_help && o->name != NULL; o++) {
        char err[512];
        if ((strcmp(o->name, "output") == 0 || strcmp(o->name, "plot") == 0) &&
            o->value != NULL && strcmp(o->value, "-") != 0 &&
            cli_output_check(o->value, err, sizeof err) != 0)
            return cli_fail("%s", err);
    }
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

int cli_lookup(const cli_name *table, const char *what, const char *name, int *out)
{
    for (const cli_name *t = table; t->name != NULL; t++) {
        if (strcmp(t->name, name) == 0) {
            *out = t->value;
            return 0;
        }
    }
    char list[1024] = "";
    size_t used = 0;
    for (const cli_name *t = table; t->name != NULL && used + 1 < sizeof list; t++) {
        int w = snprintf(list + used, sizeof list - used, "%s%s", t == table ? "" : ", ",
                         t->name);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    return cli_usage_error("unknown %s '%s' (valid: %s)", what, name, list);
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
