/* Compatibility of two generative models (everything that gives a model's output its meaning),
 * classifier-free guidance between two compatible models and classifier guidance by a
 * classifier's generative model (genmodel.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "genmodel-priv.h"
#include "libscore/classifier.h"
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

/* The first difference in how a and b see the data (dimension, schedule, data transform,
 * column names): SCORE_E_INVAL with a message for fn. */
static int same_data(const char *fn, const score_genmodel *a, const score_genmodel *b)
{
    int rc;
    char what[64];
    if (a->dim != b->dim)
        return differ_z(fn, "dimension", a->dim, b->dim);
    if ((rc = compare_schedules(fn, a->sched, b->sched)) != SCORE_OK)
        return rc;
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
    /* column names: compared where both models name the columns */
    for (size_t j = 0; a->n_names[0] > 0 && b->n_names[0] > 0 && j < a->dim; j++)
        if (strcmp(a->names[0][j], b->names[0][j]) != 0) {
            snprintf(what, sizeof what, "the name of data column %zu", j);
            return differ(fn, what, a->names[0][j], b->names[0][j]);
        }
    return SCORE_OK;
}

static int is_classifier(const score_genmodel *gm)
{
    return score_model_kind(gm->model) == SCORE_MODEL_CLASSIFIER;
}

/* The first difference that forbids combining a and b: SCORE_E_INVAL with a message for fn. */
static int compatible(const char *fn, const score_genmodel *a, const score_genmodel *b)
{
    int rc;
    char what[64];
    if (is_classifier(a) || is_classifier(b))
        return differ(fn, "kind", is_classifier(a) ? "a classifier" : "a score network",
                      is_classifier(b) ? "a classifier" : "a score network");
    if ((rc = same_data(fn, a, b)) != SCORE_OK)
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

/* ---- classifier guidance ----------------------------------------------------------------- */

int score_genmodel_new_classifier(score_genmodel **out, const score_model *clf,
                                  const score_genmodel *target)
{
    score_model *m = NULL;
    score_schedule *sched = NULL;
    score_genmodel *gm = NULL;
    int rc;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (clf == NULL || target == NULL)
        return score__error(SCORE_E_INVAL, __func__, "clf or target is NULL");
    if (score_model_kind(clf) != SCORE_MODEL_CLASSIFIER)
        return score__error(SCORE_E_UNSUPPORTED, __func__, "clf is not a classifier (kind %d)",
                            score_model_kind(clf));
    if (is_classifier(target))
        return score__error(SCORE_E_INVAL, __func__, "target is a classifier, not a score "
                            "network's generative model");
    if (target->members[0] != NULL)
        return score__error(SCORE_E_INVAL, __func__, "target is a guidance combination; give "
                            "the generative model of its conditional network");
    if (target->fixed_t != 0.0)
        return score__error(SCORE_E_UNSUPPORTED, __func__, "target is a model of one fixed time "
                            "(%g): classifier guidance needs a model of the whole time range",
                            target->fixed_t);
    if (score_model_dim(clf) != target->dim)
        return score__error(SCORE_E_SHAPE, __func__, "the classifier has dimension %zu, the "
                            "target %zu", score_model_dim(clf), target->dim);
    if ((rc = compare_schedules(__func__, score_classifier_schedule(clf), target->sched)) !=
        SCORE_OK)
        return rc;
    if ((rc = score_model_clone(&m, clf)) != SCORE_OK)
        return rc;
    if ((rc = score_model_prepare(m)) != SCORE_OK ||
        (rc = score_schedule_clone(&sched, target->sched)) != SCORE_OK ||
        (rc = score_schedule_prepare(sched)) != SCORE_OK) {
        score_model_free(m);
        score_schedule_free(sched);
        return rc;
    }
    if ((rc = score__genmodel_wrap(__func__, m, sched, target->output, &gm)) != SCORE_OK)
        return rc;
    /* the data side of the target (transform, column names, sde settings); the classes are
     * the classifier's own (names: score_genmodel_set_names()) */
    gm->cond = target->cond;
    gm->cond_scale = target->cond_scale;
    gm->sigma_data = target->sigma_data;
    if (target->shift != NULL)
        rc = score__genmodel_set_transform(__func__, SCORE_E_GENERIC, gm, target->shift,
                                           target->scale);
    if (rc == SCORE_OK)
        rc = score__genmodel_set_names(__func__, SCORE_E_GENERIC, gm,
                                       SCORE_GENMODEL_NAMES_COLUMNS, target->n_names[0],
                                       (const char *const *)target->names[0]);
    if (rc != SCORE_OK) {
        score_genmodel_free(gm);
        return rc;
    }
    *out = gm;
    return SCORE_OK;
}

int score_genmodel_is_classifier(const score_genmodel *gm)
{
    if (gm == NULL)
        return score__error(SCORE_E_INVAL, __func__, "gm is NULL");
    return is_classifier(gm);
}

int score_genmodel_set_classifier(const score_genmodel *gm, score_sde *sde,
                                  const score_genmodel *clf, double w)
{
    int rc;
    if (gm == NULL || sde == NULL)
        return score__error(SCORE_E_INVAL, __func__, "gm or sde is NULL");
    if (score_sde_model(sde) != gm->model)
        return score__error(SCORE_E_INVAL, __func__, "the sde does not evaluate gm's network "
                            "(make it with score_genmodel_sde(gm))");
    if (clf == NULL)
        return score_sde_set_classifier(sde, NULL, 0.0);
    if (!is_classifier(clf))
        return score__error(SCORE_E_UNSUPPORTED, __func__, "clf is not a classifier's generative "
                            "model (make one with score_genmodel_new_classifier())");
    if (is_classifier(gm))
        return score__error(SCORE_E_INVAL, __func__, "gm is a classifier, not a score network");
    if (gm->fixed_t != 0.0)
        return score__error(SCORE_E_UNSUPPORTED, __func__, "gm is a model of one fixed time "
                            "(%g): classifier guidance needs a model of the whole time range",
                            gm->fixed_t);
    if ((rc = same_data(__func__, gm, clf)) != SCORE_OK)
        return rc;
    return score_sde_set_classifier(sde, clf->model, w);
}
