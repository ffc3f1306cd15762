/* Numeric CSV reading (with line/column error messages) and writing. */
#include "cli.h"

#include <errno.h>
#include <stdint.h>
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
    if (t->text != NULL) {
        for (size_t i = 0; i < t->rows; i++)
            free(t->text[i]);
        free(t->text);
    }
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

/* The state of one parse: the table being filled and where the text stands. */
typedef struct csv_parser {
    const char *name;         /* the file's name, for messages */
    char *err;
    size_t err_len;
    cli_table *out;           /* names (header) go here at once, data at the end */
    float *data;
    size_t rows, cap_rows, cols;  /* cols: fields per line (the text column included) */
    const char *text_name;    /* the text column's header name, or NULL */
    size_t text_col;          /* its field index (SIZE_MAX: none) */
    char **text;              /* its value on each row */
    field *fields;            /* the fields of the current line */
    size_t fields_cap;
    size_t line_no;
    size_t first_line;        /* line number of the first data line */
    int seen_first;           /* a header or data line has been seen */
} csv_parser;

/* The next line of [*p, end) starts at *lb: returns its length without its CR LF or LF, and
 * advances *p past it. */
static size_t next_line(const char **p, const char *end, const char **lb)
{
    const char *le = memchr(*p, '\n', (size_t)(end - *p));
    size_t len = le != NULL ? (size_t)(le - *p) : (size_t)(end - *p);
    *lb = *p;
    *p = le != NULL ? le + 1 : end;
    if (len > 0 && (*lb)[len - 1] == '\r')
        len--;
    return len;
}

/* Splits the line into ps->fields (grown as needed): the number of fields, or 0 on failure. */
static size_t line_fields(csv_parser *ps, const char *lb, const char *le)
{
    size_t nf = split_fields(lb, le, ps->fields, ps->fields_cap);
    if (nf > ps->fields_cap) {
        field *nfld = realloc(ps->fields, nf * sizeof *nfld);
        if (nfld == NULL) {
            set_err(ps->err, ps->err_len, "%s: out of memory", ps->name);
            return 0;
        }
        ps->fields = nfld;
        ps->fields_cap = nf;
        split_fields(lb, le, ps->fields, ps->fields_cap);
    }
    return nf;
}

/* A header line: no field looks like a number (even one out of range). */
static int is_header(const field *f, size_t nf)
{
    for (size_t c = 0; c < nf; c++) {
        float v;
        int rc = parse_number(&f[c], &v);
        if (rc == 0 || rc == 3)
            return 0;
    }
    return 1;
}

/* Keeps the header's nf names as the column names. 0 or -1. */
static int take_header(csv_parser *ps, size_t nf)
{
    cli_table *out = ps->out;
    out->names = calloc(nf, sizeof *out->names);
    if (out->names == NULL)
        goto nomem;
    ps->cols = nf;
    out->cols = nf;
    for (size_t c = 0; c < nf; c++) {
        size_t n = (size_t)(ps->fields[c].e - ps->fields[c].b);
        out->names[c] = malloc(n + 1);
        if (out->names[c] == NULL)
            goto nomem;
        memcpy(out->names[c], ps->fields[c].b, n);
        out->names[c][n] = '\0';
    }
    if (ps->text_name == NULL)
        return 0;
    for (size_t c = 0; c < nf; c++)
        if (strcmp(out->names[c], ps->text_name) == 0) {
            ps->text_col = c;
            free(out->names[c]);
            memmove(out->names + c, out->names + c + 1, (nf - c - 1) * sizeof *out->names);
            out->cols = nf - 1;
            return 0;
        }
    set_err(ps->err, ps->err_len, "%s: no column named '%s' in the header", ps->name,
            ps->text_name);
    return -1;
nomem:
    set_err(ps->err, ps->err_len, "%s: out of memory", ps->name);
    return -1;
}

/* Every data line has as many fields as the header, or as the first data line. 0 or -1. */
static int check_columns(csv_parser *ps, size_t nf)
{
    if (ps->cols == 0)
        ps->cols = nf;
    if (ps->first_line == 0)
        ps->first_line = ps->line_no;
    if (nf == ps->cols)
        return 0;
    if (ps->out->names != NULL)
        set_err(ps->err, ps->err_len, "%s:%zu: %zu column%s, but the header names %zu", ps->name,
                ps->line_no, nf, nf == 1 ? "" : "s", ps->cols);
    else
        set_err(ps->err, ps->err_len, "%s:%zu: %zu column%s, but line %zu has %zu", ps->name,
                ps->line_no, nf, nf == 1 ? "" : "s", ps->first_line, ps->cols);
    return -1;
}

/* Appends the current line's fields as a row of numbers. 0 or -1 (message names line and
 * column). */
static int add_row(csv_parser *ps, const char *lb)
{
    size_t cols = ps->cols, tc = ps->text_col, dcols = cols - (tc != SIZE_MAX);
    if (ps->rows == ps->cap_rows) {
        size_t nc = ps->cap_rows ? 2 * ps->cap_rows : 1024;
        float *nd = realloc(ps->data, nc * (dcols ? dcols : 1) * sizeof *nd);
        if (nd != NULL)
            ps->data = nd;
        char **nt = tc == SIZE_MAX ? NULL : realloc(ps->text, nc * sizeof *nt);
        if (nt != NULL)
            ps->text = nt;
        if (nd == NULL || (tc != SIZE_MAX && nt == NULL)) {
            set_err(ps->err, ps->err_len, "%s: out of memory", ps->name);
            return -1;
        }
        ps->cap_rows = nc;
    }
    for (size_t c = 0, d = 0; c < cols; c++) {
        const field *f = &ps->fields[c];
        int rc = c == tc ? (f->e == f->b) : parse_number(f, &ps->data[ps->rows * dcols + d++]);
        if (rc == 0)
            continue;
        char q[32];
        quote_field(f, q, sizeof q);
        size_t col_char = (size_t)(f->b - lb) + 1;
        if (rc == 1)
            set_err(ps->err, ps->err_len, "%s:%zu:%zu: column %zu is empty", ps->name,
                    ps->line_no, col_char, c + 1);
        else if (rc == 2)
            set_err(ps->err, ps->err_len, "%s:%zu:%zu: column %zu: '%s' is not a number",
                    ps->name, ps->line_no, col_char, c + 1, q);
        else
            set_err(ps->err, ps->err_len,
                    "%s:%zu:%zu: column %zu: '%s' is not a finite float32 number", ps->name,
                    ps->line_no, col_char, c + 1, q);
        return -1;
    }
    if (tc != SIZE_MAX) {
        const field *f = &ps->fields[tc];
        size_t n = (size_t)(f->e - f->b);
        if ((ps->text[ps->rows] = malloc(n + 1)) == NULL) {
            set_err(ps->err, ps->err_len, "%s: out of memory", ps->name);
            return -1;
        }
        memcpy(ps->text[ps->rows], f->b, n);
        ps->text[ps->rows][n] = '\0';
    }
    ps->rows++;
    return 0;
}

/* One line [lb, lb + len): skipped (blank, comment), the header, or a data row. 0 or -1. */
static int parse_line(csv_parser *ps, const char *lb, size_t len)
{
    const char *le = lb + len;
    if (memchr(lb, '\0', len) != NULL) {
        set_err(ps->err, ps->err_len, "%s:%zu: binary data (a NUL byte): not a CSV text file",
                ps->name, ps->line_no);
        return -1;
    }
    const char *s = lb;
    while (s < le && is_blank(*s))
        s++;
    if (s == le || *s == '#')
        return 0;
    size_t nf = line_fields(ps, lb, le);
    if (nf == 0)
        return -1;
    if (!ps->seen_first) {
        ps->seen_first = 1;
        if (is_header(ps->fields, nf))
            return take_header(ps, nf);
        if (ps->text_name != NULL) {
            set_err(ps->err, ps->err_len, "%s: no header line naming the columns (looked for "
                    "column '%s')", ps->name, ps->text_name);
            return -1;
        }
    }
    if (check_columns(ps, nf) != 0)
        return -1;
    return add_row(ps, lb);
}

int cli_csv_parse(const char *text, size_t len, const char *name, cli_table *out, char *err,
                  size_t err_len)
{
    return cli_csv_parse_ex(text, len, name, NULL, out, err, err_len);
}

int cli_csv_parse_ex(const char *text, size_t len, const char *name, const char *text_column,
                     cli_table *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    csv_parser ps = {.name = name, .err = err, .err_len = err_len, .out = out,
                     .text_name = text_column, .text_col = SIZE_MAX};
    const char *p = text, *end = text + len, *lb;
    int rc = 0;
    while (rc == 0 && p < end) {
        size_t line_len = next_line(&p, end, &lb);
        ps.line_no++;
        rc = parse_line(&ps, lb, line_len);
    }
    if (rc == 0 && ps.rows == 0) {
        set_err(err, err_len, "%s: no data rows", name);
        rc = -1;
    }
    free(ps.fields);
    if (rc == 0 && text_column != NULL && ps.cols == 1) {
        set_err(err, err_len, "%s: no data columns besides '%s'", name, text_column);
        rc = -1;
    }
    if (rc != 0) {
        for (size_t i = 0; ps.text != NULL && i < ps.rows; i++)
            free(ps.text[i]);
        free(ps.text);
        free(ps.data);
        out->data = NULL;
        cli_table_free(out);
        return -1;
    }
    out->rows = ps.rows;
    out->cols = ps.cols - (ps.text_col != SIZE_MAX);
    out->data = ps.data;
    out->text = ps.text;
    return 0;
}

int cli_csv_read(const char *path, cli_table *out, char *err, size_t err_len)
{
    return cli_csv_read_ex(path, NULL, out, err, err_len);
}

int cli_csv_read_ex(const char *path, const char *text_column, cli_table *out, char *err,
                    size_t err_len)
{
    unsigned char *buf;
    size_t len;
    memset(out, 0, sizeof *out);
    if (cli_read_input(path, "", cli_input_limit(CLI_CSV_INPUT_LIMIT), &buf, &len, err,
                       err_len) != 0)
        return -1;
    int rc = cli_csv_parse_ex((const char *)buf, len, strcmp(path, "-") == 0 ? "<stdin>" : path,
                              text_column, out, err, err_len);
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
