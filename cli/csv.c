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

/* One field of a record: [b, e) after trimming blanks (unquoted) or between the quotes
 * (quoted: a doubled quote inside stands for one quote). */
typedef struct field { const char *b, *e; int quoted; } field;

/* Why a record could not be split, and where (split_fields()). */
enum { SPLIT_OK = 0, SPLIT_UNTERMINATED, SPLIT_AFTER_QUOTE, SPLIT_STRAY_QUOTE };

/* Blanks around a field are ignored: spaces, and tabs unless the tab is the delimiter. */
static int is_blank(char c, char delim) { return c == ' ' || (c == '\t' && delim != '\t'); }

/* Splits the record [b, e) at the delimiter into fields (stored while there is room), RFC 4180
 * quoting: a field that starts with a double quote runs to the matching quote ("" inside is a
 * quote; delimiters and line breaks inside are data). Returns the count, or 0 with *why and *at
 * (where the problem is) set. */
static size_t split_fields(const char *b, const char *e, char delim, field *f, size_t cap,
                           int *why, const char **at)
{
    size_t n = 0;
    const char *s = b;
    for (;;) {
        const char *fb = s, *fe, *c;
        int quoted = 0;
        while (fb < e && is_blank(*fb, delim))
            fb++;
        if (fb < e && *fb == '"') {
            quoted = 1;
            c = ++fb;
            for (;;) {
                if (c >= e) {
                    *why = SPLIT_UNTERMINATED;
                    *at = fb - 1;
                    return 0;
                }
                if (*c == '"' && c + 1 < e && c[1] == '"')
                    c += 2;
                else if (*c == '"')
                    break;
                else
                    c++;
            }
            fe = c++;
            while (c < e && is_blank(*c, delim))
                c++;
            if (c < e && *c != delim) {
                *why = SPLIT_AFTER_QUOTE;
                *at = c;
                return 0;
            }
        } else {
            c = fb;
            while (c < e && *c != delim) {
                if (*c == '"') {
                    *why = SPLIT_STRAY_QUOTE;
                    *at = c;
                    return 0;
                }
                c++;
            }
            fe = c;
            while (fe > fb && is_blank(fe[-1], delim))
                fe--;
        }
        if (n < cap) {
            f[n].b = fb;
            f[n].e = fe;
            f[n].quoted = quoted;
        }
        n++;
        if (c >= e)
            break;
        s = c + 1;
    }
    return n;
}

/* A malloc'd copy of a field's text (a doubled quote of a quoted field becomes one), or NULL. */
static char *copy_field(const field *f)
{
    char *out = malloc((size_t)(f->e - f->b) + 1), *o = out;
    if (out == NULL)
        return NULL;
    for (const char *c = f->b; c < f->e; c++) {
        *o++ = *c;
        if (f->quoted && *c == '"' && c + 1 < f->e && c[1] == '"')
            c++;
    }
    *o = '\0';
    return out;
}

/* Parses one field as a finite number. Returns 0 ok, 1 empty, 2 not a number, 3 not finite. */
static int parse_number(const field *f, float *out)
{
    char buf[128];
    const char *b = f->b, *e = f->e;
    while (b < e && *b == ' ')   /* spaces inside the quotes of a quoted number */
        b++;
    while (e > b && e[-1] == ' ')
        e--;
    size_t len = (size_t)(e - b);
    if (len == 0)
        return 1;
    if (len >= sizeof buf)
        return 2;
    memcpy(buf, b, len);
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

/* Whether a field is the word NaN or NA (any case, spaces around allowed). */
static int is_missing_word(const field *f)
{
    const char *b = f->b, *e = f->e;
    while (b < e && *b == ' ')
        b++;
    while (e > b && e[-1] == ' ')
        e--;
    size_t len = (size_t)(e - b);
    if (len < 2 || len > 3 || (b[0] | 0x20) != 'n' || (b[1] | 0x20) != 'a')
        return 0;
    return len == 2 || (b[2] | 0x20) == 'n';
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
    char delim;               /* the field delimiter */
    char *err;
    size_t err_len;
    cli_table *out;           /* names (header) go here at once, data at the end */
    float *data;
    size_t rows, cap_rows, cols;  /* cols: fields per line (the text column included) */
    const char *text_name;    /* the text column's header name, or NULL */
    int missing;              /* 1: empty, NaN and NA cells are missing values (NAN) */
    size_t text_col;          /* its field index (SIZE_MAX: none) */
    char **text;              /* its value on each row */
    field *fields;            /* the fields of the current line */
    size_t fields_cap;
    size_t line_no;           /* line number of the current record's first line */
    size_t first_line;        /* line number of the first data line */
    int seen_first;           /* a header or data line has been seen */
} csv_parser;

/* The next record of [*p, end) starts at *lb: a line, or several when a quoted field holds
 * line breaks. Returns its length without its final CR LF or LF, advances *p past it and
 * counts its line breaks into *breaks. A quote that is never closed makes the record run to
 * the end of the text (split_fields() then reports it). */
static size_t next_record(const char **p, const char *end, const char **lb, size_t *breaks)
{
    const char *c = *p;
    int in_quotes = 0;
    *breaks = 0;
    while (c < end && (*c == ' ' || *c == '\t'))
        c++;
    if (c < end && *c == '#')   /* a comment line: quotes in it are text */
        in_quotes = -1;
    c = *p;
    while (c < end && (in_quotes > 0 || *c != '\n')) {
        if (*c == '"' && in_quotes >= 0)
            in_quotes = !in_quotes;
        else if (*c == '\n')
            ++*breaks;
        c++;
    }
    size_t len = (size_t)(c - *p);
    *lb = *p;
    if (c < end)
        ++*breaks, c++;
    *p = c;
    if (len > 0 && (*lb)[len - 1] == '\r')
        len--;
    return len;
}

/* Line and column (1-based) of position at of the record starting at lb on line ps->line_no. */
static void position_of(const csv_parser *ps, const char *lb, const char *at, size_t *line,
                        size_t *col)
{
    *line = ps->line_no;
    *col = 1;
    for (const char *c = lb; c < at; c++) {
        if (*c == '\n')
            ++*line, *col = 1;
        else
            ++*col;
    }
}

/* The message of a record split_fields() refused. */
static void split_error(const csv_parser *ps, const char *lb, int why, const char *at)
{
    static const char *const what[] = {
        "", "a quoted field is never closed (no matching double quote)",
        "text after the closing quote of a quoted field",
        "a double quote inside an unquoted field (quote the whole field, and double the "
        "quotes inside it)",
    };
    size_t line, col;
    position_of(ps, lb, at, &line, &col);
    set_err(ps->err, ps->err_len, "%s:%zu:%zu: %s", ps->name, line, col, what[why]);
}

/* Splits the line into ps->fields (grown as needed): the number of fields, or 0 on failure. */
static size_t line_fields(csv_parser *ps, const char *lb, const char *le)
{
    int why = SPLIT_OK;
    const char *at = lb;
    size_t nf = split_fields(lb, le, ps->delim, ps->fields, ps->fields_cap, &why, &at);
    if (nf == 0) {
        split_error(ps, lb, why, at);
        return 0;
    }
    if (nf > ps->fields_cap) {
        field *nfld = realloc(ps->fields, nf * sizeof *nfld);
        if (nfld == NULL) {
            set_err(ps->err, ps->err_len, "%s: out of memory", ps->name);
            return 0;
        }
        ps->fields = nfld;
        ps->fields_cap = nf;
        split_fields(lb, le, ps->delim, ps->fields, ps->fields_cap, &why, &at);
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
    for (size_t c = 0; c < nf; c++)
        if ((out->names[c] = copy_field(&ps->fields[c])) == NULL)
            goto nomem;
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
        float *slot = c == tc ? NULL : &ps->data[ps->rows * dcols + d];
        int rc = c == tc ? (f->e == f->b) : parse_number(f, slot);
        if (c != tc)
            d++;
        if (rc == 0)
            continue;
        if (slot != NULL && ps->missing && (rc == 1 || is_missing_word(f))) {
            *slot = NAN;
            continue;
        }
        char q[32], hint[96] = "";
        size_t line, col_char;
        quote_field(f, q, sizeof q);
        position_of(ps, lb, f->b - f->quoted, &line, &col_char);
        /* no silent guessing of the delimiter, but a hint when the field holds another one */
        static const char others[] = {';', '\t', ','};
        for (size_t k = 0; rc == 2 && k < sizeof others; k++)
            if (others[k] != ps->delim && memchr(f->b, others[k], (size_t)(f->e - f->b))) {
                snprintf(hint, sizeof hint, " (it holds %s: give --delimiter %s if that "
                         "separates the fields)", others[k] == '\t' ? "a tab" : others[k] == ';'
                         ? "';'" : "','", others[k] == '\t' ? "tab" : others[k] == ';' ? "';'"
                         : "','");
                break;
            }
        if (rc == 1)
            set_err(ps->err, ps->err_len, "%s:%zu:%zu: column %zu is empty", ps->name,
                    line, col_char, c + 1);
        else if (rc == 2)
            set_err(ps->err, ps->err_len, "%s:%zu:%zu: column %zu: '%s' is not a number%s",
                    ps->name, line, col_char, c + 1, q, hint);
        else
            set_err(ps->err, ps->err_len,
                    "%s:%zu:%zu: column %zu: '%s' is not a finite float32 number", ps->name,
                    line, col_char, c + 1, q);
        return -1;
    }
    if (tc != SIZE_MAX) {
        if ((ps->text[ps->rows] = copy_field(&ps->fields[tc])) == NULL) {
            set_err(ps->err, ps->err_len, "%s: out of memory", ps->name);
            return -1;
        }
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
    while (s < le && is_blank(*s, ps->delim))
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
    cli_csv_opts o = {.delimiter = ',', .text_column = text_column};
    return cli_csv_parse_opts(text, len, name, &o, out, err, err_len);
}

int cli_csv_parse_opts(const char *text, size_t len, const char *name, const cli_csv_opts *o,
                       cli_table *out, char *err, size_t err_len)
{
    const char *text_column = o->text_column;
    memset(out, 0, sizeof *out);
    csv_parser ps = {.name = name, .delim = o->delimiter ? o->delimiter : ',', .err = err,
                     .err_len = err_len, .out = out, .text_name = text_column,
                     .missing = o->missing, .text_col = SIZE_MAX, .line_no = 1};
    const char *p = text, *end = text + len, *lb;
    int rc = 0;
    while (rc == 0 && p < end) {
        size_t breaks, line_len = next_record(&p, end, &lb, &breaks);
        rc = parse_line(&ps, lb, line_len);
        ps.line_no += breaks;
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
    cli_csv_opts o = {.delimiter = ',', .text_column = text_column};
    return cli_csv_read_opts(path, &o, out, err, err_len);
}

int cli_csv_read_opts(const char *path, const cli_csv_opts *o, cli_table *out, char *err,
                      size_t err_len)
{
    unsigned char *buf;
    size_t len;
    memset(out, 0, sizeof *out);
    if (cli_read_input(path, "", cli_input_limit(CLI_CSV_INPUT_LIMIT), &buf, &len, err,
                       err_len) != 0)
        return -1;
    int rc = cli_csv_parse_opts((const char *)buf, len,
                                strcmp(path, "-") == 0 ? "<stdin>" : path, o, out, err, err_len);
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
        for (size_t j = 0; j < cols; j++) {
            const char *h = header[j];
            size_t n = strlen(h);
            /* RFC 4180: a name with a comma, quote or line break, or with blanks at its ends
             * (which the reader trims), is written quoted, its quotes doubled */
            int quote = strpbrk(h, ",\"\r\n") != NULL ||
                        (n > 0 && (h[0] == ' ' || h[0] == '\t' || h[n - 1] == ' ' ||
                                   h[n - 1] == '\t'));
            if (j)
                fputc(',', f);
            if (!quote) {
                fputs(h, f);
                continue;
            }
            fputc('"', f);
            for (const char *c = h; *c; c++) {
                if (*c == '"')
                    fputc('"', f);
                fputc(*c, f);
            }
            fputc('"', f);
        }
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

int cli_csv_delimiter(const char *s, char *out)
{
    if (s == NULL)
        return 0;
    if (strcmp(s, ",") == 0 || strcmp(s, "comma") == 0)
        *out = ',';
    else if (strcmp(s, ";") == 0 || strcmp(s, "semicolon") == 0)
        *out = ';';
    else if (strcmp(s, "\t") == 0 || strcmp(s, "\\t") == 0 || strcmp(s, "tab") == 0)
        *out = '\t';
    else
        return cli_usage_error("--delimiter '%s' is not supported (valid: ',', ';', 'tab' or "
                               "'\\t')", s);
    return 0;
}

int cli_table_take_columns(cli_table *t, size_t m, const char *const *names, float **values,
                           char *err, size_t err_len)
{
    size_t cols = t->cols, keep = cols - (m < cols ? m : cols);
    *values = NULL;
    if (t->names == NULL) {
        set_err(err, err_len, "no header line naming the columns");
        return -1;
    }
    size_t *idx = malloc((m ? m : 1) * sizeof *idx);
    unsigned char *taken = calloc(cols ? cols : 1, 1);
    float *row = malloc((cols ? cols : 1) * sizeof *row);
    float *v = malloc((t->rows * m != 0 ? t->rows * m : 1) * sizeof *v);
    int rc = idx && taken && row && v ? 0 : -1;
    if (rc != 0)
        set_err(err, err_len, "out of memory");
    for (size_t k = 0; rc == 0 && k < m; k++) {
        size_t c = 0;
        while (c < cols && strcmp(t->names[c], names[k]) != 0)
            c++;
        if (c == cols)
            set_err(err, err_len, "no column named '%s' in the header", names[k]), rc = -1;
        else if (taken[c])
            set_err(err, err_len, "column '%s' is named twice", names[k]), rc = -1;
        else
            taken[c] = 1, idx[k] = c;
    }
    if (rc == 0 && keep == 0) {
        set_err(err, err_len, "no data columns would be left");
        rc = -1;
    }
    if (rc != 0) {
        free(idx);
        free(taken);
        free(row);
        free(v);
        return -1;
    }
    for (size_t i = 0; i < t->rows; i++) {   /* the kept columns move left, in place */
        memcpy(row, t->data + i * cols, cols * sizeof *row);
        for (size_t k = 0; k < m; k++)
            v[i * m + k] = row[idx[k]];
        for (size_t c = 0, d = 0; c < cols; c++)
            if (!taken[c])
                t->data[i * keep + d++] = row[c];
    }
    for (size_t c = 0, d = 0; c < cols; c++) {
        if (taken[c])
            free(t->names[c]);
        else
            t->names[d++] = t->names[c];
    }
    t->cols = keep;
    *values = v;
    free(idx);
    free(taken);
    free(row);
    return 0;
}
