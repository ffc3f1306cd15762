/* Name tables of the library's enums (output kinds, conditioning kinds, schedule kinds) and the
 * schedules by name. What a model file means is read and written by the library
 * (score_genmodel_load(), score_genmodel_save()). */
#include "cli.h"

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
