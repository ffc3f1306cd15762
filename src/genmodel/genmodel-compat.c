/* Compatibility of two generative models (everything that gives a model's output its meaning)
 * and classifier-free guidance between two compatible models (genmodel.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "genmodel-priv.h"
#include "schedule/schedule-priv.h"

static int differ(const char *fn, const char *what, const char *va, const char *vb)
{
    return score__error(SCORE_E_INVAL, fn, "the models differ in %s (%s vs %s)", what, va, vb);
}

static int differ_f(const char *fn, const char *what, double a, double b)
{
    char va[32], vb[32];
    snprintf(va, sizeof va, "%.17g", a);
    snprintf(vb, sizeof vb, "%.17g", b);
    return differ(fn, what, va, vb);
}

static int differ_z(const char *fn, const char *what, size_t a, size_t b)
{
    char va[32], vb[32];
    snprintf(va, sizeof va, "%zu", a);
    snprintf(vb, sizeof vb, "%zu", b);
    return differ(fn, what, va, vb);
}

/* Every schedule parameter the kind answers, by name (the schedule layer's comparison). */
static int compare_schedules(const char *fn, const score_schedule *a, const score_schedule *b)
{
    return score__schedule_compare(fn, a, b);
}

/* The first difference that forbids combining a and b: SCORE_E_INVAL with a message for fn. */
static int compatible(const char *fn, const score_genmodel *a, const score_genmodel *b)
{
    int rc;
    char what[64];
    if (a->dim != b->dim)
        return differ_z(fn, "dimension", a->dim, b->dim);
    if ((rc = compare_schedules(fn, a->sched, b->sched)) != SCORE_OK)
        return rc;
    if (a->output != b->output)
        return differ_z(fn, "output kind (SCORE_SDE_PARAM_OUTPUT)", (size_t)a->output,
                        (size_t)b->output);
    if (a->cond != b->cond)
        return differ_z(fn, "conditioning kind (SCORE_SDE_PARAM_COND)", (size_t)a->cond,
                        (size_t)b->cond);
    if (a->cond_scale != b->cond_scale)
        return differ_f(fn, "conditioning scale", a->cond_scale, b->cond_scale);
    if (a->sigma_data != b->sigma_data)
        return differ_f(fn, "sigma_data", a->sigma_data, b->sigma_data);
    if (a->fixed_t != b->fixed_t)
        return differ_f(fn, "fixed time", a->fixed_t, b->fixed_t);
    if ((a->shift == NULL) != (b->shift == NULL))
        return differ(fn, "data transform", a->shift ? "standardized" : "identity",
                      b->shift ? "standardized" : "identity");
    for (size_t j = 0; a->shift != NULL && j < a->dim; j++) {
        if (a->shift[j] != b->shift[j]) {
            snprintf(what, sizeof what, "data transform: shift of dimension %zu", j);
            return differ_f(fn, what, a->shift[j], b->shift[j]);
        }
        if (a->scale[j] != b->scale[j]) {
            snprintf(what, sizeof what, "data transform: scale of dimension %zu", j);
            return differ_f(fn, what, a->scale[j], b->scale[j]);
        }
    }
    if (a->num_classes != b->num_classes)
        return differ_z(fn, "number of classes", a->num_classes, b->num_classes);
    if (a->n_names[1] != b->n_names[1])
        return differ(fn, "label names", a->n_names[1] ? "named" : "none",
                      b->n_names[1] ? "named" : "none");
    for (size_t k = 0; k < a->n_names[1]; k++)
        if (strcmp(a->names[1][k], b->names[1][k]) != 0) {
            snprintf(what, sizeof what, "the name of label %zu", k);
            return differ(fn, what, a->names[1][k], b->names[1][k]);
        }
    if (a->context_dim != b->context_dim)
        return differ_z(fn, "context dimension", a->context_dim, b->context_dim);
    return SCORE_OK;
}

int score_genmodel_check_compatible(const score_genmodel *a, const score_genmodel *b)
{
    if (a == NULL || b == NULL)
        return score__error(SCORE_E_INVAL, __func__, "a or b is NULL");
    return compatible(__func__, a, b);
}

/* Copies of the settings, transform and names of src into dst (same dim). */
static int copy_meaning(const char *fn, score_genmodel *dst, const score_genmodel *src)
{
    int rc = SCORE_OK;
    dst->cond = src->cond;
    dst->cond_scale = src->cond_scale;
    dst->sigma_data = src->sigma_data;
    dst->fixed_t = src->fixed_t;
    dst->dequant = src->dequant;
    dst->bin = src->bin;
    dst->num_classes = src->num_classes;
    dst->context_dim = src->context_dim;
    if (src->shift != NULL)
        rc = score__genmodel_set_transform(fn, SCORE_E_GENERIC, dst, src->shift, src->scale);
    for (int li = 0; rc == SCORE_OK && li < SCORE__GENMODEL_LISTS; li++)
        rc = score__genmodel_set_names(fn, SCORE_E_GENERIC, dst, li + 1, src->n_names[li],
                                       (const char *const *)src->names[li]);
    return rc;
}

int score_genmodel_new_cfg(score_genmodel **out, const score_genmodel *cond,
                           const score_genmodel *uncond, double w)
{
    score_model *m[2] = {NULL, NULL}, *comb = NULL;
    score_schedule *sched = NULL;
    score_genmodel *gm = NULL;
    int rc;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (cond == NULL || uncond == NULL)
        return score__error(SCORE_E_INVAL, __func__, "cond or uncond is NULL");
    if (!(w >= -1e6 && w <= 1e6))
        return score__error(SCORE_E_RANGE, __func__, "guidance weight %g outside [-1e6, 1e6]", w);
    if ((rc = compatible(__func__, cond, uncond)) != SCORE_OK)
        return rc;
    if ((rc = score_model_clone(&m[0], cond->model)) != SCORE_OK ||
        (rc = score_model_clone(&m[1], uncond->model)) != SCORE_OK ||
        (rc = score_model_prepare(m[0])) != SCORE_OK ||
        (rc = score_model_prepare(m[1])) != SCORE_OK ||
        (rc = score_model_new_cfg(&comb, m[0], m[1], w)) != SCORE_OK ||
        (rc = score_schedule_clone(&sched, cond->sched)) != SCORE_OK ||
        (rc = score_schedule_prepare(sched)) != SCORE_OK) {
        score_model_free(comb);
        score_model_free(m[0]);
        score_model_free(m[1]);
        score_schedule_free(sched);
        return rc;
    }
    if ((rc = score__genmodel_wrap(__func__, comb, sched, cond->output, &gm)) != SCORE_OK) {
        score_model_free(m[0]);
        score_model_free(m[1]);
        return rc;
    }
    gm->members[0] = m[0];
    gm->members[1] = m[1];
    if ((rc = copy_meaning(__func__, gm, cond)) != SCORE_OK) {
        score_genmodel_free(gm);
        return rc;
    }
    *out = gm;
    return SCORE_OK;
}
