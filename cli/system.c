/* The "system" of a model file: schedule, output parameterization, conditioning and data
 * standardization, to and from model-file metadata; name tables of the library's enums. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const cli_name cli_outputs[] = {
    {"eps", SCORE_OUTPUT_EPS, "the network predicts the noise (s = -F / sigma; DDPM)"},
    {"score", SCORE_OUTPUT_SCORE, "the network is the score (NCSN, score_sde)"},
    {"x0", SCORE_OUTPUT_X0, "the network predicts the clean data"},
    {"v", SCORE_OUTPUT_V, "v-prediction (v = alpha eps - sigma x0)"},
    {"edm", SCORE_OUTPUT_EDM, "EDM-preconditioned denoiser (Karras et al. 2022)"},
    {"score-over-sigma", SCORE_OUTPUT_SCORE_OVER_SIGMA, "s = F / sigma (NCSNv2 output scaling)"},
    {NULL, 0, NULL},
};

const cli_name cli_conds[] = {
    {"default", SCORE_COND_DEFAULT, "log-sigma-4 for edm, t otherwise"},
    {"t", SCORE_COND_T, "c = t"},
    {"t-scaled", SCORE_COND_T_SCALED, "c = 999 t (DDPM-style labels)"},
    {"sigma", SCORE_COND_SIGMA, "c = sigma / alpha (NCSN)"},
    {"log-sigma-4", SCORE_COND_LOG_SIGMA_4, "c = ln(sigma / alpha) / 4 (EDM c_noise)"},
    {NULL, 0, NULL},
};

const cli_name cli_schedule_kinds[] = {
    {"ve", SCORE_SCHEDULE_VE, "variance exploding SDE (score_sde SMLD), sigma 0.01..50"},
    {"vp", SCORE_SCHEDULE_VP, "variance preserving SDE (score_sde DDPM), beta 0.1..20"},
    {"subvp", SCORE_SCHEDULE_SUBVP, "sub-VP SDE (score_sde)"},
    {"ncsn", SCORE_SCHEDULE_NCSN, "geometric sigma ladder (NCSN), discrete"},
    {"ddpm-linear", SCORE_SCHEDULE_DDPM_LINEAR, "DDPM linear betas, discrete"},
    {"ddpm-scaled-linear", SCORE_SCHEDULE_DDPM_SCALED_LINEAR, "Stable Diffusion betas, discrete"},
    {"ddpm-cosine", SCORE_SCHEDULE_DDPM_COSINE, "improved-DDPM cosine, discrete"},
    {"sigmas", SCORE_SCHEDULE_SIGMAS, "user sigma table"},
    {"betas", SCORE_SCHEDULE_BETAS, "user beta table"},
    {NULL, 0, NULL},
};

/* Preset names come from the library; kind names that are not presets are added. */
int cli_schedule_from_name(const char *name, score_schedule **out)
{
    *out = NULL;
    for (size_t i = 0; i < score_schedule_preset_count(); i++) {
        const char *p = score_schedule_preset_name(i);
        if (p != NULL && strcmp(p, name) == 0) {
            int rc = score_schedule_new_preset(out, name);
            return rc == SCORE_OK ? 0 : cli_lib_fail(rc, "score_schedule_new_preset");
        }
    }
    for (const cli_name *k = cli_schedule_kinds; k->name != NULL; k++) {
        if (strcmp(k->name, name) == 0 && k->value != SCORE_SCHEDULE_SIGMAS &&
            k->value != SCORE_SCHEDULE_BETAS) {
            int rc = score_schedule_new(out, k->value);
            return rc == SCORE_OK ? 0 : cli_lib_fail(rc, "score_schedule_new");
        }
    }
    char list[1024] = "";
    size_t used = 0;
    for (size_t i = 0; i < score_schedule_preset_count() && used < sizeof list; i++) {
        int w = snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                         score_schedule_preset_name(i));
        used += w > 0 ? (size_t)w : 0;
    }
    for (const cli_name *k = cli_schedule_kinds; k->name != NULL && used < sizeof list; k++) {
        int dup = k->value == SCORE_SCHEDULE_SIGMAS || k->value == SCORE_SCHEDULE_BETAS;
        for (size_t i = 0; !dup && i < score_schedule_preset_count(); i++)
            dup = strcmp(score_schedule_preset_name(i), k->name) == 0;
        if (!dup) {
            int w = snprintf(list + used, sizeof list - used, ", %s", k->name);
            used += w > 0 ? (size_t)w : 0;
        }
    }
    return cli_usage_error("unknown schedule '%s' (valid: %s)", name, list);
}

void cli_print_schedules(FILE *f)
{
    fprintf(f, "schedules (--schedule): a kind or a preset\n");
    for (const cli_name *k = cli_schedule_kinds; k->name != NULL; k++)
        if (k->value != SCORE_SCHEDULE_SIGMAS && k->value != SCORE_SCHEDULE_BETAS)
            fprintf(f, "  %-18s %s\n", k->name, k->help);
    fprintf(f, "  presets:");
    for (size_t i = 0; i < score_schedule_preset_count(); i++)
        fprintf(f, " %s", score_schedule_preset_name(i));
    fputc('\n', f);
}

/* Every parameter the schedule's kind answers, as "schedule.<name>" = value. */
static int schedule_to_meta(const score_schedule *s, cli_meta *m)
{
    if (cli_meta_set(m, "score.schedule", score_schedule_name(s)) != 0)
        return -1;
    size_t np = score_param_count(SCORE_OBJECT_SCHEDULE);
    for (size_t i = 0; i < np; i++) {
        int id, type;
        if (score_param_id_at(SCORE_OBJECT_SCHEDULE, i, &id) != SCORE_OK ||
            score_param_info(SCORE_OBJECT_SCHEDULE, id, &type, NULL, NULL, NULL) != SCORE_OK)
            continue;
        const char *name = score_param_name(SCORE_OBJECT_SCHEDULE, id);
        char key[128];
        snprintf(key, sizeof key, "score.schedule.%s", name);
        if (type == SCORE_PARAM_F64) {
            double v;
            if (score_schedule_get_f64(s, id, &v) == SCORE_OK && cli_meta_setf(m, key, "%.17g", v))
                return -1;
        } else {
            int64_t v;
            if (score_schedule_get_i64(s, id, &v) == SCORE_OK &&
                cli_meta_setf(m, key, "%lld", (long long)v))
                return -1;
        }
    }
    return 0;
}

static int schedule_from_meta(const cli_meta *m, score_schedule **out, char *err, size_t len)
{
    const char *kname = cli_meta_get(m, "score.schedule");
    int kind = 0;
    *out = NULL;
    for (const cli_name *k = cli_schedule_kinds; kname && k->name != NULL; k++)
        if (strcmp(k->name, kname) == 0)
            kind = k->value;
    if (kind == 0 || kind == SCORE_SCHEDULE_SIGMAS || kind == SCORE_SCHEDULE_BETAS) {
        snprintf(err, len, "the model file names no usable schedule (metadata "
                 "'score.schedule' = '%s'); was it written by 'score train'?",
                 kname ? kname : "(missing)");
        return -1;
    }
    if (score_schedule_new(out, kind) != SCORE_OK) {
        snprintf(err, len, "%s", score_last_error_message());
        return -1;
    }
    const char *prefix = "score.schedule.";
    size_t pl = strlen(prefix);
    for (size_t i = 0; i < m->n; i++) {
        if (strncmp(m->keys[i], prefix, pl) != 0)
            continue;
        const char *pname = m->keys[i] + pl, *val = m->values[i];
        int id, type, rc;
        if (score_param_from_name(SCORE_OBJECT_SCHEDULE, pname, &id) != SCORE_OK ||
            score_param_info(SCORE_OBJECT_SCHEDULE, id, &type, NULL, NULL, NULL) != SCORE_OK) {
            snprintf(err, len, "the model file has an unknown schedule parameter '%s'", pname);
            goto fail;
        }
        char *end;
        errno = 0;
        if (type == SCORE_PARAM_F64) {
            double v = strtod(val, &end);
            if (*val == '\0' || *end != '\0') {
                snprintf(err, len, "schedule parameter %s = '%s' is not a number", pname, val);
                goto fail;
            }
            rc = score_schedule_set_f64(*out, id, v);
        } else {
            long long v = strtoll(val, &end, 10);
            if (*val == '\0' || *end != '\0' || errno) {
                snprintf(err, len, "schedule parameter %s = '%s' is not an integer", pname, val);
                goto fail;
            }
            rc = score_schedule_set_i64(*out, id, v);
        }
        if (rc != SCORE_OK && rc != SCORE_E_UNSUPPORTED) {
            snprintf(err, len, "schedule parameter %s = %s: %s", pname, val,
                     score_last_error_message());
            goto fail;
        }
    }
    if (score_schedule_prepare(*out) != SCORE_OK) {
        snprintf(err, len, "the model file's schedule is inconsistent: %s",
                 score_last_error_message());
        goto fail;
    }
    return 0;
fail:
    score_schedule_free(*out);
    *out = NULL;
    return -1;
}

static int write_vec(cli_meta *m, const char *key, const double *v, size_t n)
{
    size_t cap = n * 26 + 1, used = 0;
    char *s = malloc(cap);
    if (s == NULL)
        return -1;
    s[0] = '\0';
    for (size_t i = 0; i < n; i++)
        used += (size_t)snprintf(s + used, cap - used, "%s%.9g", i ? "," : "", v[i]);
    int rc = cli_meta_set(m, key, s);
    free(s);
    return rc;
}

static int read_vec(const char *s, double *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char *end;
        v[i] = strtod(s, &end);
        if (end == s || !isfinite(v[i]))
            return -1;
        s = end;
        if (i + 1 < n) {
            if (*s != ',')
                return -1;
            s++;
        }
    }
    return *s == '\0' ? 0 : -1;
}

int cli_system_to_meta(const cli_system *sys, cli_meta *m)
{
    if (cli_meta_set(m, "score.tool", "score-cli 1") != 0 || schedule_to_meta(sys->sched, m) ||
        cli_meta_set(m, "score.output", cli_name_of(cli_outputs, sys->output_kind)) ||
        cli_meta_set(m, "score.cond", cli_name_of(cli_conds, sys->cond_kind)) ||
        cli_meta_setf(m, "score.cond_scale", "%.17g", sys->cond_scale) ||
        cli_meta_setf(m, "score.sigma_data", "%.17g", sys->sigma_data))
        return -1;
    if (sys->fixed_t > 0 && cli_meta_setf(m, "score.fixed_t", "%.17g", sys->fixed_t))
        return -1;
    if (sys->shift != NULL && (write_vec(m, "score.data_shift", sys->shift, sys->dim) ||
                               write_vec(m, "score.data_scale", sys->scale, sys->dim)))
        return -1;
    return 0;
}

int cli_system_from_meta(const cli_meta *m, size_t dim, cli_system *sys, char *err, size_t len)
{
    memset(sys, 0, sizeof *sys);
    sys->dim = dim;
    sys->cond_scale = 999.0;
    sys->sigma_data = 0.5;
    if (schedule_from_meta(m, &sys->sched, err, len) != 0)
        return -1;
    const char *out = cli_meta_get(m, "score.output"), *cond = cli_meta_get(m, "score.cond");
    sys->output_kind = SCORE_OUTPUT_SCORE;
    sys->cond_kind = SCORE_COND_DEFAULT;
    int out_ok = out == NULL, cond_ok = cond == NULL;
    for (const cli_name *k = cli_outputs; out != NULL && k->name != NULL; k++)
        if (strcmp(k->name, out) == 0) {
            sys->output_kind = k->value;
            out_ok = 1;
        }
    for (const cli_name *k = cli_conds; cond != NULL && k->name != NULL; k++)
        if (strcmp(k->name, cond) == 0) {
            sys->cond_kind = k->value;
            cond_ok = 1;
        }
    if (!out_ok || !cond_ok) {
        snprintf(err, len, "the model file's output or conditioning kind is unknown ('%s', '%s')",
                 out ? out : "", cond ? cond : "");
        goto fail;
    }
    const char *v;
    if ((v = cli_meta_get(m, "score.cond_scale")) != NULL)
        sys->cond_scale = strtod(v, NULL);
    if ((v = cli_meta_get(m, "score.sigma_data")) != NULL)
        sys->sigma_data = strtod(v, NULL);
    if ((v = cli_meta_get(m, "score.fixed_t")) != NULL)
        sys->fixed_t = strtod(v, NULL);
    const char *sh = cli_meta_get(m, "score.data_shift"), *sc = cli_meta_get(m, "score.data_scale");
    if (sh != NULL || sc != NULL) {
        sys->shift = malloc(dim * sizeof *sys->shift);
        sys->scale = malloc(dim * sizeof *sys->scale);
        if (sys->shift == NULL || sys->scale == NULL || sh == NULL || sc == NULL ||
            read_vec(sh, sys->shift, dim) || read_vec(sc, sys->scale, dim)) {
            snprintf(err, len, "the model file's data standardization is malformed (expected "
                     "%zu values in score.data_shift and score.data_scale)", dim);
            goto fail;
        }
        for (size_t j = 0; j < dim; j++)
            if (!(sys->scale[j] > 0)) {
                snprintf(err, len, "the model file's data scale %zu is not positive", j + 1);
                goto fail;
            }
    }
    return 0;
fail:
    cli_system_free(sys);
    return -1;
}

void cli_system_free(cli_system *sys)
{
    score_schedule_free(sys->sched);
    free(sys->shift);
    free(sys->scale);
    memset(sys, 0, sizeof *sys);
}

int cli_system_sde(const cli_system *sys, score_model *model, score_sde **out)
{
    int rc = score_sde_new(out, sys->sched, model, sys->output_kind);
    if (rc != SCORE_OK)
        return cli_lib_fail(rc, "score_sde_new");
    if ((rc = score_sde_set_i64(*out, SCORE_SDE_PARAM_COND, sys->cond_kind)) != SCORE_OK ||
        (rc = score_sde_set_f64(*out, SCORE_SDE_PARAM_COND_SCALE, sys->cond_scale)) != SCORE_OK ||
        (rc = score_sde_set_f64(*out, SCORE_SDE_PARAM_SIGMA_DATA, sys->sigma_data)) != SCORE_OK) {
        score_sde_free(*out);
        *out = NULL;
        return cli_lib_fail(rc, "score_sde_set");
    }
    return 0;
}

void cli_standardize(const cli_system *sys, float *x, size_t n)
{
    if (sys->shift == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < sys->dim; j++)
            x[i * sys->dim + j] =
                (float)(((double)x[i * sys->dim + j] - sys->shift[j]) / sys->scale[j]);
}

void cli_unstandardize(const cli_system *sys, float *x, size_t n)
{
    if (sys->shift == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < sys->dim; j++)
            x[i * sys->dim + j] =
                (float)((double)x[i * sys->dim + j] * sys->scale[j] + sys->shift[j]);
}

double cli_log_scale_sum(const cli_system *sys)
{
    double s = 0.0;
    if (sys->shift != NULL)
        for (size_t j = 0; j < sys->dim; j++)
            s += log(sys->scale[j]);
    return s;
}
