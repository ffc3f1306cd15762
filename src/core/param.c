/* Parameter introspection over the per-module tables, and typed, range-checked access. */
#include <math.h>
#include <string.h>

#include "core-priv.h"
#include "param-registry.h"

typedef const score__param_desc *(*table_fn)(size_t *n_out);

static const struct {
    int kind;
    table_fn table;
} registry[] = {
#define SCORE__PARAM_TABLE(kind, fn) {kind, fn},
    SCORE__PARAM_TABLES
#undef SCORE__PARAM_TABLE
    {0, NULL}
};

const score__param_desc *score__param_table(int kind, size_t *n_out)
{
    for (size_t i = 0; registry[i].table != NULL; i++) {
        if (registry[i].kind == kind)
            return registry[i].table(n_out);
    }
    *n_out = 0;
    return NULL;
}

int score__param_index(const score__param_desc *tab, size_t n, int id)
{
    for (size_t i = 0; i < n; i++)
        if (tab[i].id == id)
            return (int)i;
    return -1;
}

void score__param_defaults(const score__param_desc *tab, size_t n, score__param_val *vals)
{
    for (size_t i = 0; i < n; i++) {
        if (tab[i].type == SCORE_PARAM_I64)
            vals[i].i = (int64_t)tab[i].def;
        else
            vals[i].f = tab[i].def;
    }
}

static int lookup(const char *fn, const score__param_desc *tab, size_t n, int id, int type,
                  int *idx_out)
{
    int idx = score__param_index(tab, n, id);
    if (idx < 0)
        return score__error(SCORE_E_UNSUPPORTED, fn, "unknown parameter id %d", id);
    if (tab[idx].type != type)
        return score__error(SCORE_E_INVAL, fn, "parameter '%s' (%d) is %s, not %s",
                            tab[idx].name, id,
                            tab[idx].type == SCORE_PARAM_F64 ? "f64" : "i64",
                            type == SCORE_PARAM_F64 ? "f64" : "i64");
    *idx_out = idx;
    return SCORE_OK;
}

int score__param_set_f64(const char *fn, const score__param_desc *tab, size_t n,
                         score__param_val *vals, int id, double value)
{
    int idx, rc = lookup(fn, tab, n, id, SCORE_PARAM_F64, &idx);
    if (rc != SCORE_OK)
        return rc;
    if (isnan(value) || !(value >= tab[idx].min && value <= tab[idx].max))
        return score__error(SCORE_E_RANGE, fn, "parameter '%s'=%.17g out of range [%.17g, %.17g]",
                            tab[idx].name, value, tab[idx].min, tab[idx].max);
    vals[idx].f = value;
    return SCORE_OK;
}

int score__param_set_i64(const char *fn, const score__param_desc *tab, size_t n,
                         score__param_val *vals, int id, int64_t value)
{
    int idx, rc = lookup(fn, tab, n, id, SCORE_PARAM_I64, &idx);
    if (rc != SCORE_OK)
        return rc;
    if (!((double)value >= tab[idx].min && (double)value <= tab[idx].max))
        return score__error(SCORE_E_RANGE, fn, "parameter '%s'=%lld out of range [%.17g, %.17g]",
                            tab[idx].name, (long long)value, tab[idx].min, tab[idx].max);
    vals[idx].i = value;
    return SCORE_OK;
}

int score__param_get_f64(const char *fn, const score__param_desc *tab, size_t n,
                         const score__param_val *vals, int id, double *out)
{
    int idx, rc;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, fn, "out is NULL");
    rc = lookup(fn, tab, n, id, SCORE_PARAM_F64, &idx);
    if (rc != SCORE_OK)
        return rc;
    *out = vals[idx].f;
    return SCORE_OK;
}

int score__param_get_i64(const char *fn, const score__param_desc *tab, size_t n,
                         const score__param_val *vals, int id, int64_t *out)
{
    int idx, rc;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, fn, "out is NULL");
    rc = lookup(fn, tab, n, id, SCORE_PARAM_I64, &idx);
    if (rc != SCORE_OK)
        return rc;
    *out = vals[idx].i;
    return SCORE_OK;
}

/* ---- public introspection ---- */

size_t score_param_count(int kind)
{
    size_t n;
    (void)score__param_table(kind, &n);
    return n;
}

int score_param_id_at(int kind, size_t index, int *out)
{
    size_t n;
    const score__param_desc *tab;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    tab = score__param_table(kind, &n);
    if (tab == NULL)
        return score__error(SCORE_E_UNSUPPORTED, __func__, "unknown or parameterless object kind %d", kind);
    if (index >= n)
        return score__error(SCORE_E_RANGE, __func__, "index %zu >= parameter count %zu", index, n);
    *out = tab[index].id;
    return SCORE_OK;
}

static const score__param_desc *find(int kind, int param)
{
    size_t n;
    const score__param_desc *tab = score__param_table(kind, &n);
    int idx = tab ? score__param_index(tab, n, param) : -1;
    return idx < 0 ? NULL : &tab[idx];
}

int score_param_info(int kind, int param, int *type_out, double *min_out, double *max_out,
                     double *default_out)
{
    const score__param_desc *d = find(kind, param);
    if (d == NULL)
        return score__error(SCORE_E_UNSUPPORTED, __func__, "unknown parameter %d of object kind %d", param, kind);
    if (type_out) *type_out = d->type;
    if (min_out) *min_out = d->min;
    if (max_out) *max_out = d->max;
    if (default_out) *default_out = d->def;
    return SCORE_OK;
}

const char *score_param_name(int kind, int param)
{
    const score__param_desc *d = find(kind, param);
    return d ? d->name : NULL;
}

const char *score_param_doc(int kind, int param)
{
    const score__param_desc *d = find(kind, param);
    return d ? d->doc : NULL;
}

int score_param_from_name(int kind, const char *name, int *out)
{
    size_t n;
    const score__param_desc *tab;
    if (name == NULL || out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "name or out is NULL");
    tab = score__param_table(kind, &n);
    if (tab == NULL)
        return score__error(SCORE_E_UNSUPPORTED, __func__, "unknown or parameterless object kind %d", kind);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(tab[i].name, name) == 0) {
            *out = tab[i].id;
            return SCORE_OK;
        }
    }
    return score__error(SCORE_E_UNSUPPORTED, __func__, "object kind %d has no parameter named '%s'", kind, name);
}
