/* Numeric CSV reading (with line/column error messages) and writing. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

CLI_PRINTF(3, 4)
static void set_err(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL || len == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

void cli_table_free(cli_table *t)
{
    if (t == NULL)
        return;
    if (t->names != NULL) {
        for (size_t j = 0; j < t->cols; j++)
            free(t->names[j]);
        free(t->names);
    }
    free(t->data);
    memset(t, 0, sizeof *t);
}

static int is_blank(char c) { return c == ' ' || c == '\t'; }

/* One field of a line: [b, e) after trimming blanks. */
typedef struct field { const char *b, *e; } field;

/* Splits line [b, e) at commas into fields (stored while there is room); returns the count. */
static size_t split_fields(const char *b, const char *e, field *f, size_t cap)
{
    size_t n = 0;
    const char *s = b;
    for (;;) {
        const char *c = s;
        while (c < e && *c != ',')
            c++;
        const char *fb = s, *fe = c;
        while (fb < fe && is_blank(*fb))
            fb++;
        while (fe > fb && is_blank(fe[-1]))
            fe--;
        if (n < cap) {
            f[n].b = fb;
            f[n].e = fe;
        }
        n++;
        if (c >= e)
            break;
        s = c + 1;
    }
    return n;
}

/* Parses one field as a finite number. Returns 0 ok, 1 empty, 2 not a number, 3 not finite. */
static int parse_number(const field *f, float *out)
{
    char buf[128];
    size_t len = (size_t)(f->e - f->b);
    if (len == 0)
        return 1;
    if (len >= sizeof buf)
        return 2;
    memcpy(buf, f->b, len);
    buf[len] = '\0';
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (end != buf + len || end == buf)
        return 2;
    if (!isfinite(v) || fabs(v) > 3.4028234663852886e38)
        return 3;
    *out = (float)v;
    return 0;
}

static void quote_field(const field *f, char *buf, size_t len)
{
    size_t n = (size_t)(f->e - f->b);
    if (n > 24) {
        snprintf(buf, len, "%.21s...", f->b);
        return;
    }
    snprintf(buf, len, "%.*s", (int)n, f->b);
}

int cli_csv_parse(const char *text, size_t len, const char *name, cli_table *out, char *err,
                  size_t err_len)
{
    memset(out, 0, sizeof *out);
    size_t cap_rows = 0, rows = 0, cols = 0;
    float *data = NULL;
    field *fields = NULL;
    size_t fields_cap = 0;
    size_t first_line = 0;    /* line number of the first data line (for messages) */
    int seen_first = 0;       /* a header or data line has been seen */
    const char *p = text, *end = text + len;
    size_t line_no = 0;

    while (p < end) {
        const char *lb = p, *le = memchr(p, '\n', (size_t)(end - p));
        if (le == NULL)
            le = end;
        p = le < end ? le + 1 : end;
        line_no++;
        size_t line_len = (size_t)(le - lb);
        if (line_len > 0 && lb[line_len - 1] == '\r')
            le = lb + --line_len;
        if (memchr(lb, '\0', line_len) != NULL) {
            set_err(err, err_len, "%s:%zu: binary data (a NUL byte): not a CSV text file",
                    name, line_no);
            goto fail;
        }
        const char *s = lb;
        while (s < le && is_blank(*s))
            s++;
        if (s == le || *s == '#')
            continue;
        size_t nf = split_fields(lb, le, fields, fields_cap);
        if (nf > fields_cap) {
            field *nfld = realloc(fields, nf * sizeof *nfld);
            if (nfld == NULL) {
                set_err(err, err_len, "%s: out of memory", name);
                goto fail;
            }
            fields = nfld;
            fields_cap = nf;
            split_fields(lb, le, fields, fields_cap);
        }
        if (!seen_first) {
            /* header: no field of the first line looks like a number */
            int numeric = 0;
            for (size_t j = 0; j < nf; j++) {
                float v;
                int rc = parse_number(&fields[j], &v);
                if (rc == 0 || rc == 3)   /* a number, even if out of range */
                    numeric = 1;
            }
            seen_first = 1;
            if (!numeric) {
                out->names = calloc(nf, sizeof *out->names);
                if (out->names == NULL) {
                    set_err(err, err_len, "%s: out of memory", name);
                    goto fail;
                }
                cols = nf;
                out->cols = nf;
                for (size_t j = 0; j < nf; j++) {
                    size_t n = (size_t)(fields[j].e - fields[j].b);
                    out->names[j] = malloc(n + 1);
                    if (out->names[j] == NULL) {
                        set_err(err, err_len, "%s: out of memory", name);
                        goto fail;
                    }
                    memcpy(out->names[j], fields[j].b, n);
                    out->names[j][n] = '\0';
                }
                continue;
            }
        }
        if (cols == 0)
            cols = nf;
        if (first_line == 0)
            first_line = line_no;
        if (nf != cols) {
            if (out->names != NULL)
                set_err(err, err_len, "%s:%zu: %zu column%s, but the header names %zu", name,
                        line_no, nf, nf == 1 ? "" : "s", cols);
            else
                set_err(err, err_len, "%s:%zu: %zu column%s, but line %zu has %zu", name,
                        line_no, nf, nf == 1 ? "" : "s", first_line, cols);
            goto fail;
        }
        if (rows == cap_rows) {
            size_t nc = cap_rows ? 2 * cap_rows : 1024;
            float *nd = realloc(data, nc * cols * sizeof *nd);
            if (nd == NULL) {
                set_err(err, err_len, "%s: out of memory", name);
                goto fail;
            }
            data = nd;
            cap_rows = nc;
        }
        for (size_t j = 0; j < nf; j++) {
            int rc = parse_number(&fields[j], &data[rows * cols + j]);
            if (rc != 0) {
                char q[32];
                quote_field(&fields[j], q, sizeof q);
                size_t col_char = (size_t)(fields[j].b - lb) + 1;
                if (rc == 1)
                    set_err(err, err_len, "%s:%zu:%zu: column %zu is empty", name, line_no,
                            col_char, j + 1);
                else if (rc == 2)
                    set_err(err, err_len, "%s:%zu:%zu: column %zu: '%s' is not a number",
                            name, line_no, col_char, j + 1, q);
                else
                    set_err(err, err_len,
                            "%s:%zu:%zu: column %zu: '%s' is not a finite float32 number",
                            name, line_no, col_char, j + 1, q);
                goto fail;
            }
        }
        rows++;
    }
    if (rows == 0) {
        set_err(err, err_len, "%s: no data rows", name);
        goto fail;
    }
    free(fields);
    out->rows = rows;
    out->cols = cols;
    out->data = data;
    return 0;
fail:
    free(fields);
    free(data);
    out->data = NULL;
    cli_table_free(out);
    return -1;
}

int cli_csv_read(const char *path, cli_table *out, char *err, size_t err_len)
{
    unsigned char *buf;
    size_t len;
    memset(out, 0, sizeof *out);
    if (cli_read_input(path, "", cli_input_limit(CLI_CSV_INPUT_LIMIT), &buf, &len, err,
                       err_len) != 0)
        return -1;
    int rc = cli_csv_parse((const char *)buf, len, strcmp(path, "-") == 0 ? "<stdin>" : path, out,
                           err, err_len);
    free(buf);
    return rc;
}

int cli_csv_write(const char *path, const float *data, size_t rows, size_t cols,
                  const char *const *header, char *err, size_t err_len)
{
    int is_stdout = strcmp(path, "-") == 0;
    FILE *f = is_stdout ? stdout : cli_output_open(path, err, err_len);
    if (f == NULL)
        return -1;
    if (header != NULL) {
        for (size_t j = 0; j < cols; j++)
            fprintf(f, "%s%s", j ? "," : "", header[j]);
        fputc('\n', f);
    }
    for (size_t i = 0; i < rows; i++) {
        for (size_t j = 0; j < cols; j++)
            fprintf(f, "%s%.9g", j ? "," : "", (double)data[i * cols + j]);
        fputc('\n', f);
    }
    int bad = ferror(f);
    if (is_stdout)
        bad |= fflush(f) != 0;
    else
        bad |= fclose(f) != 0;
    if (bad) {
        set_err(err, err_len, "error writing '%s'", path);
        return -1;
    }
    return 0;
}
