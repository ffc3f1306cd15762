/* Class labels from a text column (score train --label-column, score train-classifier): the
 * class set is the sorted distinct values, each row's label the index of its value. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A label value that is an integer (optional sign, decimal digits, fits in long long). */
static int is_integer(const char *s, long long *v)
{
    char *end;
    if (*s == '\0')
        return 0;
    errno = 0;
    *v = strtoll(s, &end, 10);
    return *end == '\0' && errno == 0;
}

static int cmp_text(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_integer(const void *a, const void *b)
{
    long long x = strtoll(*(const char *const *)a, NULL, 10);
    long long y = strtoll(*(const char *const *)b, NULL, 10);
    return (x > y) - (x < y);
}

void cli_class_labels_free(cli_class_labels *c)
{
    free(c->labels);
    for (size_t k = 0; c->names != NULL && k < c->num_classes; k++)
        free(c->names[k]);
    free(c->names);
    memset(c, 0, sizeof *c);
}

int cli_class_labels_make(char **text, size_t rows, const char *column, const char *what,
                          cli_class_labels *out)
{
    size_t k = 0;
    long long v;
    int all_int = 1;
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < rows && all_int; i++)
        all_int = is_integer(text[i], &v);
    int (*cmp)(const void *, const void *) = all_int ? cmp_integer : cmp_text;
    const char **sorted = malloc((rows ? rows : 1) * sizeof *sorted);
    out->labels = malloc((rows ? rows : 1) * sizeof *out->labels);
    if (sorted == NULL || out->labels == NULL) {
        free(sorted);
        cli_class_labels_free(out);
        return cli_fail("out of memory");
    }
    memcpy(sorted, text, rows * sizeof *sorted);
    qsort(sorted, rows, sizeof *sorted, cmp);
    for (size_t i = 0; i < rows; i++)
        if (k == 0 || cmp(&sorted[k - 1], &sorted[i]) != 0)
            sorted[k++] = sorted[i];
    if (k < 2 || k > 65535) {
        free(sorted);
        cli_class_labels_free(out);
        return cli_fail("--label-column %s: %zu distinct label%s (%s needs 2 to 65535 "
                        "classes)", column, k, k == 1 ? "" : "s", what);
    }
    for (size_t i = 0; i < rows; i++) {
        const char **hit = bsearch(&text[i], sorted, k, sizeof *sorted, cmp);
        out->labels[i] = (int32_t)(hit - sorted);
    }
    out->names = calloc(k, sizeof *out->names);
    for (size_t c = 0; out->names != NULL && c < k; c++) {
        char buf[32];
        if (all_int)
            snprintf(buf, sizeof buf, "%lld", strtoll(sorted[c], NULL, 10));
        const char *name = all_int ? buf : sorted[c];
        if ((out->names[c] = malloc(strlen(name) + 1)) == NULL)
            break;
        strcpy(out->names[c], name);
        out->num_classes = c + 1;
    }
    free(sorted);
    if (out->num_classes != k) {
        cli_class_labels_free(out);
        return cli_fail("out of memory");
    }
    return 0;
}
