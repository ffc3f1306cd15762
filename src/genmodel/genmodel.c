/* The generative model (genmodel.h): the object, its settings, data and model units, sampling
 * and likelihood in data units. The file is in genmodel-io.c; compatibility and guidance in
 * genmodel-compat.c. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "genmodel-priv.h"
#include "schedule/schedule-priv.h"

static const char *const list_what[SCORE__GENMODEL_LISTS] = {"column", "label", "context"};

static void free_names(score_genmodel *gm, int li)
{
    for (size_t i = 0; i < gm->n_names[li]; i++)
        score__free(gm->names[li][i]);
    score__free(gm->names[li]);
    gm->names[li] = NULL;
    gm->n_names[li] = 0;
}

void score_genmodel_free(score_genmodel *gm)
{
    if (gm == NULL)
        return;
    score_model_free(gm->model);
    score_model_free(gm->members[0]);
    score_model_free(gm->members[1]);
    score_schedule_free(gm->sched);
    score__free(gm->shift); /* scale lives in the same block */
    for (int li = 0; li < SCORE__GENMODEL_LISTS; li++)
        free_names(gm, li);
    score__free(gm);
}

/* A non-negative integer model parameter, 0 when the model has no such parameter. */
static size_t model_count(const score_model *m, int id)
{
    int64_t v = 0;
    if (score_model_get_i64(m, id, &v) != SCORE_OK || v < 0)
        return 0;
    return (size_t)v;
}

int score__genmodel_wrap(const char *fn, score_model *model, score_schedule *sched, int output,
                         score_genmodel **out)
{
    score_genmodel *gm = score__calloc(1, sizeof *gm);
    *out = NULL;
    if (gm == NULL) {
        score_model_free(model);
        score_schedule_free(sched);
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    }
    gm->dim = score_model_dim(model);
    gm->model = model;
    gm->sched = sched;
    gm->output = output;
    gm->cond = SCORE_COND_DEFAULT;
    gm->cond_scale = 999.0;
    gm->sigma_data = 0.5;
    gm->dequant = SCORE_GENMODEL_DEQUANT_NONE;
    gm->bin = 1.0;
    gm->num_classes = model_count(model, SCORE_MODEL_PARAM_NUM_CLASSES);
    gm->context_dim = model_count(model, SCORE_MODEL_PARAM_CONTEXT_DIM);
    *out = gm;
    return SCORE_OK;
}

int score_genmodel_new(score_genmodel **out, const score_sde *sde)
{
    score_model *model = NULL;
    score_schedule *sched = NULL;
    score_genmodel *gm = NULL;
    int64_t output = 0, cond = 0;
    double cond_scale = 0, sigma_data = 0;
    int rc;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (sde == NULL)
        return score__error(SCORE_E_INVAL, __func__, "sde is NULL");
    const score_schedule *s = score_sde_schedule(sde);
    int kind = score_schedule_kind(s);
    if (kind == SCORE_SCHEDULE_SIGMAS || kind == SCORE_SCHEDULE_BETAS)
        return score__error(SCORE_E_UNSUPPORTED, __func__, "a schedule of a user array (%s) "
                            "cannot be stored bit for bit in a generative model file",
                            score_schedule_name(s));
    if ((rc = score_sde_get_i64(sde, SCORE_SDE_PARAM_OUTPUT, &output)) != SCORE_OK ||
        (rc = score_sde_get_i64(sde, SCORE_SDE_PARAM_COND, &cond)) != SCORE_OK ||
        (rc = score_sde_get_f64(sde, SCORE_SDE_PARAM_COND_SCALE, &cond_scale)) != SCORE_OK ||
        (rc = score_sde_get_f64(sde, SCORE_SDE_PARAM_SIGMA_DATA, &sigma_data)) != SCORE_OK)
        return rc;
    if ((rc = score_model_clone(&model, score_sde_model(sde))) != SCORE_OK)
        return rc;
    if ((rc = score_model_prepare(model)) != SCORE_OK ||
        (rc = score_schedule_clone(&sched, s)) != SCORE_OK ||
        (rc = score_schedule_prepare(sched)) != SCORE_OK) {
        score_model_free(model);
        score_schedule_free(sched);
        return rc;
    }
    if ((rc = score__genmodel_wrap(__func__, model, sched, (int)output, &gm)) != SCORE_OK)
        return rc;
    gm->cond = (int)cond;
    gm->cond_scale = cond_scale;
    gm->sigma_data = sigma_data;
    *out = gm;
    return SCORE_OK;
}

size_t score_genmodel_dim(const score_genmodel *gm)
{
    return gm != NULL ? gm->dim : 0;
}

score_model *score_genmodel_model(const score_genmodel *gm)
{
    return gm != NULL ? gm->model : NULL;
}

const score_schedule *score_genmodel_schedule(const score_genmodel *gm)
{
    return gm != NULL ? gm->sched : NULL;
}

int score_genmodel_get_i64(const score_genmodel *gm, int param, int64_t *out)
{
    if (gm == NULL || out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "gm or out is NULL");
    if (param == SCORE_SDE_PARAM_OUTPUT)
        *out = gm->output;
    else if (param == SCORE_SDE_PARAM_COND)
        *out = gm->cond;
    else
        return score__error(SCORE_E_UNSUPPORTED, __func__, "parameter %d is not an integer sde "
                            "setting (SCORE_SDE_PARAM_OUTPUT or SCORE_SDE_PARAM_COND)", param);
    return SCORE_OK;
}

int score_genmodel_get_f64(const score_genmodel *gm, int param, double *out)
{
    if (gm == NULL || out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "gm or out is NULL");
    if (param == SCORE_SDE_PARAM_COND_SCALE)
        *out = gm->cond_scale;
    else if (param == SCORE_SDE_PARAM_SIGMA_DATA)
        *out = gm->sigma_data;
    else
        return score__error(SCORE_E_UNSUPPORTED, __func__, "parameter %d is not a floating-point "
                            "sde setting (SCORE_SDE_PARAM_COND_SCALE or "
                            "SCORE_SDE_PARAM_SIGMA_DATA)", param);
    return SCORE_OK;
}

int score_genmodel_set_fixed_t(score_genmodel *gm, double t)
{
    double te, T;
    if (gm == NULL)
        return score__error(SCORE_E_INVAL, __func__, "gm is NULL");
    if (t == 0.0) {
        gm->fixed_t = 0.0;
        return SCORE_OK;
    }
    if (score_schedule_get_f64(gm->sched, SCORE_SCHEDULE_PARAM_T_EPS, &te) != SCORE_OK ||
        score_schedule_get_f64(gm->sched, SCORE_SCHEDULE_PARAM_T, &T) != SCORE_OK)
        return score__error(SCORE_E_GENERIC, __func__, "the schedule has no time range");
    if (!(t >= te && t <= T))
        return score__error(SCORE_E_RANGE, __func__, "fixed time %g is neither 0 nor in the "
                            "schedule's [t_eps, T] = [%g, %g]", t, te, T);
    gm->fixed_t = t;
    return SCORE_OK;
}

double score_genmodel_fixed_t(const score_genmodel *gm)
{
    return gm != NULL ? gm->fixed_t : 0.0;
}

int score__genmodel_set_transform(const char *fn, int status, score_genmodel *gm,
                                  const double *shift, const double *scale)
{
    size_t d = gm->dim;
    for (size_t j = 0; j < d; j++) {
        if (!isfinite(shift[j]))
            return score__error(status, fn, "shift %zu is not finite", j);
        if (!(isfinite(scale[j]) && scale[j] > 0.0))
            return score__error(status, fn, "scale %zu = %g is not a finite positive number", j,
                                scale[j]);
    }
    double *sh = score__calloc(2 * d, sizeof *sh);
    if (sh == NULL)
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    memcpy(sh, shift, d * sizeof *sh);
    memcpy(sh + d, scale, d * sizeof *sh);
    score__free(gm->shift);
    gm->shift = sh;
    gm->scale = sh + d; /* one block: scale is never freed on its own */
    return SCORE_OK;
}

int score_genmodel_set_transform(score_genmodel *gm, const double *shift, const double *scale)
{
    if (gm == NULL)
        return score__error(SCORE_E_INVAL, __func__, "gm is NULL");
    if ((shift == NULL) != (scale == NULL))
        return score__error(SCORE_E_INVAL, __func__, "shift and scale must both be given or "
                            "both be NULL (the identity)");
    if (shift == NULL) {
        score__free(gm->shift);
        gm->shift = gm->scale = NULL;
        return SCORE_OK;
    }
    return score__genmodel_set_transform(__func__, SCORE_E_RANGE, gm, shift, scale);
}

int score_genmodel_get_transform(const score_genmodel *gm, double *shift, double *scale)
{
    if (gm == NULL)
        return score__error(SCORE_E_INVAL, __func__, "gm is NULL");
    for (size_t j = 0; j < gm->dim; j++) {
        if (shift != NULL)
            shift[j] = gm->shift != NULL ? gm->shift[j] : 0.0;
        if (scale != NULL)
            scale[j] = gm->shift != NULL ? gm->scale[j] : 1.0;
    }
    return gm->shift != NULL;
}

int score_genmodel_set_dequant(score_genmodel *gm, int kind, double bin)
{
    if (gm == NULL)
        return score__error(SCORE_E_INVAL, __func__, "gm is NULL");
    if (kind != SCORE_GENMODEL_DEQUANT_NONE && kind != SCORE_GENMODEL_DEQUANT_UNIFORM)
        return score__error(SCORE_E_RANGE, __func__, "unknown dequantization kind %d", kind);
    if (!(isfinite(bin) && bin > 0.0))
        return score__error(SCORE_E_RANGE, __func__, "bin width %g is not a finite positive "
                            "number", bin);
    gm->dequant = kind;
    gm->bin = bin;
    return SCORE_OK;
}

int score_genmodel_get_dequant(const score_genmodel *gm, int *kind, double *bin)
{
    if (gm == NULL)
        return score__error(SCORE_E_INVAL, __func__, "gm is NULL");
    if (kind != NULL)
        *kind = gm->dequant;
    if (bin != NULL)
        *bin = gm->bin;
    return SCORE_OK;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0. */
static size_t utf8_len(const unsigned char *s)
{
    size_t n;
    uint32_t c;
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF)
        n = 2, c = s[0] & 0x1Fu;
    else if (s[0] >= 0xE0 && s[0] <= 0xEF)
        n = 3, c = s[0] & 0x0Fu;
    else if (s[0] >= 0xF0 && s[0] <= 0xF4)
        n = 4, c = s[0] & 0x07u;
    else
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3Fu);
    }
    if ((n == 3 && c < 0x800) || (n == 4 && (c < 0x10000 || c > 0x10FFFF)) ||
        (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    return n;
}

int score__genmodel_check_name(const char *fn, int status, const char *what, size_t i,
                               const char *name)
{
    size_t len;
    if (name == NULL)
        return score__error(status, fn, "%s name %zu is NULL", what, i);
    len = strlen(name);
    if (len == 0 || len > SCORE__GENMODEL_NAME_MAX)
        return score__error(status, fn, "%s name %zu has %zu bytes (1 to %d allowed)", what, i,
                            len, SCORE__GENMODEL_NAME_MAX);
    for (size_t k = 0; k < len;) {
        const unsigned char *p = (const unsigned char *)name + k;
        size_t n = utf8_len(p);
        if (n == 0)
            return score__error(status, fn, "%s name %zu is not valid UTF-8 (byte %zu)", what,
                                i, k);
        if (n == 1 && (p[0] < 0x20 || p[0] == 0x7F))
            return score__error(status, fn, "%s name %zu holds a control character (byte %zu)",
                                what, i, k);
        k += n;
    }
    return SCORE_OK;
}

int score__genmodel_set_names(const char *fn, int bad_status, score_genmodel *gm, int which,
                              size_t n, const char *const *names)
{
    int li;
    size_t want;
    char **copy;
    if (which < SCORE_GENMODEL_NAMES_COLUMNS || which > SCORE_GENMODEL_NAMES_CONTEXT)
        return score__error(SCORE_E_RANGE, fn, "unknown list of names %d", which);
    li = which - 1;
    want = which == SCORE_GENMODEL_NAMES_COLUMNS ? gm->dim
           : which == SCORE_GENMODEL_NAMES_LABELS ? gm->num_classes : gm->context_dim;
    if (n == 0) {
        free_names(gm, li);
        return SCORE_OK;
    }
    if (names == NULL)
        return score__error(SCORE_E_INVAL, fn, "names is NULL");
    if (n != want)
        return score__error(SCORE_E_SHAPE, fn, "%zu %s names given, the model has %zu", n,
                            list_what[li], want);
    for (size_t i = 0; i < n; i++) {
        int rc = score__genmodel_check_name(fn, bad_status, list_what[li], i, names[i]);
        if (rc != SCORE_OK)
            return rc;
        for (size_t k = 0; which == SCORE_GENMODEL_NAMES_LABELS && k < i; k++)
            if (strcmp(names[k], names[i]) == 0)
                return score__error(bad_status, fn, "label names %zu and %zu are both '%s'", k,
                                    i, names[i]);
    }
    if ((copy = score__calloc(n, sizeof *copy)) == NULL)
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(names[i]) + 1;
        if ((copy[i] = score__calloc(len, 1)) == NULL) {
            for (size_t k = 0; k < i; k++)
                score__free(copy[k]);
            score__free(copy);
            return score__error(SCORE_E_NOMEM, fn, "allocation failed");
        }
        memcpy(copy[i], names[i], len);
    }
    free_names(gm, li);
    gm->names[li] = copy;
    gm->n_names[li] = n;
    return SCORE_OK;
}

int score_genmodel_set_names(score_genmodel *gm, int which, size_t n, const char *const *names)
{
    if (gm == NULL)
        return score__error(SCORE_E_INVAL, __func__, "gm is NULL");
    return score__genmodel_set_names(__func__, SCORE_E_INVAL, gm, which, n, names);
}

const char *score_genmodel_name(const score_genmodel *gm, int which, size_t i)
{
    if (gm == NULL || which < SCORE_GENMODEL_NAMES_COLUMNS ||
        which > SCORE_GENMODEL_NAMES_CONTEXT || i >= gm->n_names[which - 1])
        return NULL;
    return gm->names[which - 1][i];
}

size_t score_genmodel_num_classes(const score_genmodel *gm)
{
    return gm != NULL ? gm->num_classes : 0;
}

size_t score_genmodel_context_dim(const score_genmodel *gm)
{
    return gm != NULL ? gm->context_dim : 0;
}

int score_genmodel_sde(const score_genmodel *gm, score_sde **out)
{
    int rc;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (gm == NULL)
        return score__error(SCORE_E_INVAL, __func__, "gm is NULL");
    if (score_model_kind(gm->model) == SCORE_MODEL_CLASSIFIER)
        return score__error(SCORE_E_UNSUPPORTED, __func__, "gm is a classifier: it guides the "
                            "sde of a score model (score_genmodel_set_classifier()) and has no "
                            "sde of its own");
    if ((rc = score_sde_new(out, gm->sched, gm->model, gm->output)) != SCORE_OK)
        return rc;
    if ((rc = score_sde_set_i64(*out, SCORE_SDE_PARAM_COND, gm->cond)) != SCORE_OK ||
        (rc = score_sde_set_f64(*out, SCORE_SDE_PARAM_COND_SCALE, gm->cond_scale)) != SCORE_OK ||
        (rc = score_sde_set_f64(*out, SCORE_SDE_PARAM_SIGMA_DATA, gm->sigma_data)) != SCORE_OK) {
        score_sde_free(*out);
        *out = NULL;
    }
    return rc;
}

/* SCORE_OK when sde evaluates gm's network with gm's settings, else SCORE_E_INVAL. */
static int check_sde(const char *fn, const score_genmodel *gm, const score_sde *sde)
{
    int64_t o = 0, c = 0;
    double cs = 0, sd = 0;
    if (score_sde_model(sde) != gm->model)
        return score__error(SCORE_E_INVAL, fn, "the sde does not evaluate this generative "
                            "model's network (make it with score_genmodel_sde())");
    if (score_sde_get_i64(sde, SCORE_SDE_PARAM_OUTPUT, &o) != SCORE_OK ||
        score_sde_get_i64(sde, SCORE_SDE_PARAM_COND, &c) != SCORE_OK ||
        score_sde_get_f64(sde, SCORE_SDE_PARAM_COND_SCALE, &cs) != SCORE_OK ||
        score_sde_get_f64(sde, SCORE_SDE_PARAM_SIGMA_DATA, &sd) != SCORE_OK || o != gm->output ||
        c != gm->cond || cs != gm->cond_scale || sd != gm->sigma_data)
        return score__error(SCORE_E_INVAL, fn, "the sde's settings (output, conditioning, "
                            "cond_scale, sigma_data) were changed from the generative model's");
    return SCORE_OK;
}

/* encode (inverse 0): (x - shift) / scale; decode (inverse 1): x scale + shift; in may equal
 * out. */
static int transform(const char *fn, const score_genmodel *gm, int inverse, size_t n,
                     const float *in, float *out)
{
    size_t d = gm->dim, nd;
    if (score__mul_size(n, d, &nd) != 0 || nd > SIZE_MAX / sizeof(float))
        return score__error(SCORE_E_RANGE, fn, "n * dim overflows");
    if (gm->shift == NULL) {
        if (out != in)
            memmove(out, in, nd * sizeof *out);
        return SCORE_OK;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) {
            double v = in[i * d + j];
            out[i * d + j] = (float)(inverse ? v * gm->scale[j] + gm->shift[j]
                                             : (v - gm->shift[j]) / gm->scale[j]);
        }
    return SCORE_OK;
}

int score_genmodel_encode(const score_genmodel *gm, size_t n, const float *x_data,
                          float *x_model)
{
    if (gm == NULL || x_data == NULL || x_model == NULL)
        return score__error(SCORE_E_INVAL, __func__, "gm, x_data or x_model is NULL");
    return transform(__func__, gm, 0, n, x_data, x_model);
}

int score_genmodel_decode(const score_genmodel *gm, size_t n, const float *x_model,
                          float *x_data)
{
    if (gm == NULL || x_data == NULL || x_model == NULL)
        return score__error(SCORE_E_INVAL, __func__, "gm, x_model or x_data is NULL");
    return transform(__func__, gm, 1, n, x_model, x_data);
}

int score_genmodel_sde_set_clip(const score_genmodel *gm, score_sde *sde, size_t n,
                                const double *lo, const double *hi)
{
    size_t d;
    double *b;
    int rc;
    if (gm == NULL || sde == NULL)
        return score__error(SCORE_E_INVAL, __func__, "gm or sde is NULL");
    if ((rc = check_sde(__func__, gm, sde)) != SCORE_OK)
        return rc;
    if ((lo == NULL) != (hi == NULL))
        return score__error(SCORE_E_INVAL, __func__, "only one of lo, hi is NULL");
    if (lo == NULL || gm->shift == NULL)
        return score_sde_set_clip(sde, n, lo, hi);
    d = gm->dim;
    if (n != 1 && n != d)
        return score__error(SCORE_E_SHAPE, __func__, "%zu bounds: give 1 or dim = %zu", n, d);
    if ((b = score__calloc(2 * d, sizeof *b)) == NULL)
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    for (size_t j = 0; j < d; j++) { /* scale > 0: the order of the bounds is kept */
        double l = lo[n == 1 ? 0 : j], h = hi[n == 1 ? 0 : j];
        double sh = gm->shift[j], sc = gm->scale[j];
        float lf = (float)((l - sh) / sc), hf = (float)((h - sh) / sc);
        /* the float bounds in model units whose decoded floats lie within [l, h] (when l, h
         * are finite; score_sde_set_clip() checks them) */
        for (int k = 0; k < 64 && isfinite(lf) && (double)(float)((double)lf * sc + sh) < l; k++)
            lf = nextafterf(lf, INFINITY);
        for (int k = 0; k < 64 && isfinite(hf) && (double)(float)((double)hf * sc + sh) > h; k++)
            hf = nextafterf(hf, -INFINITY);
        b[j] = (double)lf;
        b[d + j] = (double)hf;
    }
    rc = score_sde_set_clip(sde, d, b, b + d);
    score__free(b);
    return rc;
}

int score_genmodel_sample(const score_genmodel *gm, score_sampler *smp, score_sde *sde,
                          size_t row0, size_t n, float *out, const score_rng *rng,
                          score_sampler_progress_fn progress, void *user_data)
{
    int rc;
    if (gm == NULL || smp == NULL || sde == NULL || out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "gm, smp, sde or out is NULL");
    if ((rc = check_sde(__func__, gm, sde)) != SCORE_OK)
        return rc;
    if (gm->fixed_t > 0)
        return score__error(SCORE_E_UNSUPPORTED, __func__, "the model was trained at the one "
                            "time t = %g only: sample it with score_genmodel_sample_langevin()",
                            gm->fixed_t);
    if ((rc = score_sampler_run_ex(smp, sde, row0, n, NULL, out, rng, progress, user_data)) !=
        SCORE_OK)
        return rc;
    return score_genmodel_decode(gm, n, out, out);
}

int score_genmodel_sample_langevin(const score_genmodel *gm, score_step *step, score_sde *sde,
                                   size_t n_steps, size_t row0, size_t n, float *out,
                                   const score_rng *rng)
{
    int rc;
    double *t;
    if (gm == NULL || step == NULL || sde == NULL || out == NULL || rng == NULL)
        return score__error(SCORE_E_INVAL, __func__, "gm, step, sde, out or rng is NULL");
    if ((rc = check_sde(__func__, gm, sde)) != SCORE_OK)
        return rc;
    if (!(gm->fixed_t > 0))
        return score__error(SCORE_E_UNSUPPORTED, __func__, "the model has no fixed time (it "
                            "was trained over the whole time range): use score_genmodel_sample()");
    if (n_steps >= ((size_t)1 << 32) - 1)
        return score__error(SCORE_E_RANGE, __func__, "n_steps %zu: the noise counter offsets "
                            "1 .. n_steps must stay below 2^32", n_steps);
    if (n == 0)
        return SCORE_OK;
    if ((rc = score_rng_fill_normal(rng, row0, n, 0, gm->dim, out)) != SCORE_OK)
        return rc;
    if ((t = score__calloc(n, sizeof *t)) == NULL)
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    for (size_t i = 0; i < n; i++)
        t[i] = gm->fixed_t;
    for (size_t k = 0; k < n_steps && rc == SCORE_OK; k++)
        rc = score_step_apply_ex(step, sde, row0, n, t, t, out, NULL, rng, (uint64_t)k + 1);
    score__free(t);
    return rc == SCORE_OK ? score_genmodel_decode(gm, n, out, out) : rc;
}

/* The dequantized points x + bin u in model units (u: uniforms of rng on the flipped
 * stream). */
static int dequantize(const char *fn, const score_genmodel *gm, const score_rng *rng,
                      size_t row0, size_t n, const float *x, float *xm)
{
    score_rng *r2 = NULL;
    uint64_t stream;
    size_t d = gm->dim;
    double *u = score__calloc(n * d, sizeof *u);
    int rc;
    if (u == NULL)
        return score__error(SCORE_E_NOMEM, fn, "allocation failed");
    if ((rc = score_rng_clone(&r2, rng)) == SCORE_OK &&
        (rc = score_rng_get_stream(r2, &stream)) == SCORE_OK &&
        (rc = score_rng_set_stream(r2, stream ^ ((uint64_t)1 << 31))) == SCORE_OK)
        rc = score_rng_fill_uniform_f64(r2, row0, n, 0, d, u);
    score_rng_free(r2);
    for (size_t i = 0; rc == SCORE_OK && i < n; i++)
        for (size_t j = 0; j < d; j++) {
            double v = (double)x[i * d + j] + gm->bin * u[i * d + j];
            if (gm->shift != NULL)
                v = (v - gm->shift[j]) / gm->scale[j];
            xm[i * d + j] = (float)v;
        }
    score__free(u);
    return rc;
}

int score_genmodel_logp(const score_genmodel *gm, score_likelihood *lk, score_sde *sde,
                        size_t row0, size_t n, const float *x, double *logp, double *bpd,
                        const score_rng *rng)
{
    int rc;
    float *xm;
    size_t d, nd;
    if (gm == NULL || lk == NULL || sde == NULL || x == NULL || logp == NULL)
        return score__error(SCORE_E_INVAL, __func__, "gm, lk, sde, x or logp is NULL");
    if ((rc = check_sde(__func__, gm, sde)) != SCORE_OK)
        return rc;
    if (gm->fixed_t > 0)
        return score__error(SCORE_E_UNSUPPORTED, __func__, "the model was trained at the one "
                            "time t = %g only: it has no likelihood", gm->fixed_t);
    if (gm->dequant == SCORE_GENMODEL_DEQUANT_UNIFORM && rng == NULL)
        return score__error(SCORE_E_INVAL, __func__, "uniform dequantization needs a generator");
    if (n == 0)
        return SCORE_OK;
    d = gm->dim;
    if (score__mul_size(n, d, &nd) != 0 || nd > SIZE_MAX / sizeof(float))
        return score__error(SCORE_E_RANGE, __func__, "n * dim overflows");
    if ((xm = score__calloc(nd, sizeof *xm)) == NULL)
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    rc = gm->dequant == SCORE_GENMODEL_DEQUANT_UNIFORM
             ? dequantize(__func__, gm, rng, row0, n, x, xm)
             : score_genmodel_encode(gm, n, x, xm);
    if (rc == SCORE_OK)
        rc = score_likelihood_logp_ex(lk, sde, row0, n, xm, logp, NULL, NULL, NULL, rng);
    score__free(xm);
    if (rc != SCORE_OK)
        return rc;
    /* change of variables to data units, then the dequantization's cell volume */
    double corr = 0.0;
    for (size_t j = 0; gm->shift != NULL && j < d; j++)
        corr += log(gm->scale[j]);
    double cell = gm->dequant == SCORE_GENMODEL_DEQUANT_UNIFORM ? (double)d * log(gm->bin) : 0.0;
    for (size_t i = 0; i < n; i++) {
        logp[i] = logp[i] - corr + cell;
        if (bpd != NULL)
            bpd[i] = -logp[i] / ((double)d * log(2.0));
    }
    return SCORE_OK;
}
