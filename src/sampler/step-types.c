/* Step types: the built-in descriptors (one row per type) and user-defined types. */
#include <string.h>

#include "step-priv.h"

/* ---- built-in descriptors -------------------------------------------------------------- */

#define ST_S SCORE_STEP_FLAG_STOCHASTIC
#define ST_E SCORE_STEP_FLAG_ERROR_ESTIMATE
#define ST_C SCORE_STEP_FLAG_CORRECTOR

/* A built-in row: kind, name, order (designated initialisers; the rest is zero). */
#define TYPE(k, nm, ord) .kind = (k), .builtin = 1, .name = nm, .order = (ord)

static const score_step_type builtin_types[] = {
    {TYPE(SCORE_STEP_EULER, "euler", 1), .impl = score__step_euler,
     .impl_f64 = score__step_euler_f64},
    {TYPE(SCORE_STEP_HEUN, "heun", 2), .impl = score__step_heun, .impl_f64 = score__step_heun_f64},
    {TYPE(SCORE_STEP_MIDPOINT, "midpoint", 2), .impl = score__step_midpoint,
     .impl_f64 = score__step_midpoint_f64},
    {TYPE(SCORE_STEP_RK4, "rk4", 4), .impl = score__step_rk4, .impl_f64 = score__step_rk4_f64},
    {TYPE(SCORE_STEP_DOPRI5, "dopri5", 5), .err_order = 4, .flags = ST_E,
     .impl = score__step_dopri5, .impl_f64 = score__step_dopri5_f64},
    {TYPE(SCORE_STEP_EULER_MARUYAMA, "em", 1), .flags = ST_S, .impl = score__step_em,
     .impl_f64 = score__step_em_f64},
    {TYPE(SCORE_STEP_REVERSE_DIFFUSION, "reverse-diffusion", 1), .flags = ST_S,
     .impl = score__step_reverse_diffusion,
     .impl_f64 = score__step_reverse_diffusion_f64},
    {TYPE(SCORE_STEP_ANCESTRAL, "ancestral", 1), .flags = ST_S, .impl = score__step_ancestral,
     .impl_f64 = score__step_ancestral_f64},
    {TYPE(SCORE_STEP_EULER_ANCESTRAL, "euler-ancestral", 1), .flags = ST_S,
     .impl = score__step_euler_ancestral,
     .impl_f64 = score__step_euler_ancestral_f64},
    {TYPE(SCORE_STEP_LANGEVIN, "langevin", 1), .flags = ST_S | ST_C, .impl = score__step_langevin,
     .impl_f64 = score__step_langevin_f64},
    {TYPE(SCORE_STEP_ALD, "ald", 1), .flags = ST_S | ST_C, .impl = score__step_ald,
     .impl_f64 = score__step_ald_f64},
    {TYPE(SCORE_STEP_DDIM, "ddim", 1), .impl = score__step_ddim,
     .impl_f64 = score__step_ddim_f64},
    {TYPE(SCORE_STEP_DPM_SOLVER_1, "dpm-solver-1", 1), .impl = score__step_dpm_single,
     .impl_f64 = score__step_dpm_single_f64},
    {TYPE(SCORE_STEP_DPM_SOLVER_2, "dpm-solver-2", 2), .impl = score__step_dpm_single,
     .impl_f64 = score__step_dpm_single_f64},
    {TYPE(SCORE_STEP_DPM_SOLVER_3, "dpm-solver-3", 3), .impl = score__step_dpm_single,
     .impl_f64 = score__step_dpm_single_f64},
    {TYPE(SCORE_STEP_DPMPP_2M, "dpmpp-2m", 2), .impl = score__step_dpmpp_multi,
     .impl_f64 = score__step_dpmpp_multi_f64},
    {TYPE(SCORE_STEP_DPMPP_3M, "dpmpp-3m", 3), .impl = score__step_dpmpp_multi,
     .impl_f64 = score__step_dpmpp_multi_f64},
    {TYPE(SCORE_STEP_DPMPP_2M_SDE, "dpmpp-2m-sde", 2), .flags = ST_S,
     .impl = score__step_dpmpp_multi, .impl_f64 = score__step_dpmpp_multi_f64},
    {TYPE(SCORE_STEP_DPM_SOLVER_12, "dpm-solver-12", 2), .err_order = 1, .flags = ST_E,
     .impl = score__step_dpm_adaptive, .impl_f64 = score__step_dpm_adaptive_f64},
    {TYPE(SCORE_STEP_DPM_SOLVER_23, "dpm-solver-23", 3), .err_order = 2, .flags = ST_E,
     .impl = score__step_dpm_adaptive, .impl_f64 = score__step_dpm_adaptive_f64},
    {TYPE(SCORE_STEP_NONE, "none", 0), .impl = score__step_none, .impl_f64 = score__step_none_f64},
    {TYPE(SCORE_STEP_DPMPP_2S, "dpmpp-2s", 2), .impl = score__step_dpmpp_single,
     .impl_f64 = score__step_dpmpp_single_f64},
    {TYPE(SCORE_STEP_DPMPP_3S, "dpmpp-3s", 3), .impl = score__step_dpmpp_single,
     .impl_f64 = score__step_dpmpp_single_f64},
    {TYPE(SCORE_STEP_LMS, "lms", 4), .impl = score__step_lms, .impl_f64 = score__step_lms_f64},
    {TYPE(SCORE_STEP_DEIS, "deis", 3), .impl = score__step_deis, .impl_f64 = score__step_deis_f64},
    {TYPE(SCORE_STEP_UNIPC, "unipc", 3), .impl = score__step_unipc,
     .impl_f64 = score__step_unipc_f64},
    {TYPE(SCORE_STEP_UNIPC_BH1, "unipc-bh1", 3), .impl = score__step_unipc,
     .impl_f64 = score__step_unipc_f64},
    {TYPE(SCORE_STEP_DPM2_ANCESTRAL, "dpm-2-ancestral", 2), .flags = ST_S,
     .impl = score__step_dpm2_ancestral,
     .impl_f64 = score__step_dpm2_ancestral_f64},
    {TYPE(SCORE_STEP_DPMPP_2S_ANCESTRAL, "dpmpp-2s-ancestral", 2), .flags = ST_S,
     .impl = score__step_dpmpp_2s_ancestral,
     .impl_f64 = score__step_dpmpp_2s_ancestral_f64},
    {TYPE(SCORE_STEP_DPMPP_SDE, "dpmpp-sde", 2), .flags = ST_S, .impl = score__step_dpmpp_sde,
     .impl_f64 = score__step_dpmpp_sde_f64},
    {TYPE(SCORE_STEP_DPMPP_3M_SDE, "dpmpp-3m-sde", 2), .flags = ST_S,
     .impl = score__step_dpmpp_3m_sde,
     .impl_f64 = score__step_dpmpp_3m_sde_f64},
    {TYPE(SCORE_STEP_RESTART, "restart", 2), .flags = ST_S, .impl = score__step_restart,
     .impl_f64 = score__step_restart_f64},
    {TYPE(SCORE_STEP_MALA, "mala", 1), .flags = ST_S | ST_C, .impl = score__step_mala},
};

#define N_BUILTIN (sizeof builtin_types / sizeof builtin_types[0])

const score_step_type *score_step_type_get(int kind)
{
    for (size_t i = 0; i < N_BUILTIN; i++)
        if (builtin_types[i].kind == kind)
            return &builtin_types[i];
    return NULL;
}

/* Other spellings of built-in names (k-diffusion / web-UI / diffusers), after '_' -> '-' and
 * without a leading "k-" (the k_ prefix of the k-diffusion samplers in Stable Diffusion's
 * scripts: k_lms, k_euler_a, k_dpm_2_a, ...); then diffusers' scheduler classes whose default
 * configuration is one of the built-in algorithms. */
static const struct {
    const char *alias, *name;
} aliases[] = {
    {"dpm-adaptive", "dpm-solver-23"},
    {"euler-a", "euler-ancestral"},
    {"dpm-2", "dpm-solver-2"},
    {"euler-maruyama", "em"},
    {"uni-pc", "unipc-bh1"},
    {"uni-pc-bh2", "unipc"},
    {"unipc-bh2", "unipc"},
    {"dpm-2-a", "dpm-2-ancestral"},
    {"dpmpp-2s-a", "dpmpp-2s-ancestral"},
    {"EulerDiscreteScheduler", "euler"},
    {"EulerAncestralDiscreteScheduler", "euler-ancestral"},
    {"HeunDiscreteScheduler", "heun"},
    {"LMSDiscreteScheduler", "lms"},
    {"DDIMScheduler", "ddim"},
    {"DEISMultistepScheduler", "deis"},
    {"UniPCMultistepScheduler", "unipc"},
    {"KDPM2DiscreteScheduler", "dpm-solver-2"},
    {"KDPM2AncestralDiscreteScheduler", "dpm-2-ancestral"},
    {"DPMSolverMultistepScheduler", "dpmpp-2m"},
    {"DPMSolverSDEScheduler", "dpmpp-sde"},
};

const score_step_type *score_step_type_find(const char *name)
{
    char buf[64];
    size_t len;
    if (name == NULL)
        return NULL;
    len = strlen(name);
    if (len >= sizeof buf)
        return NULL;
    if (len > 2 && (name[0] == 'k') && (name[1] == '_' || name[1] == '-')) {
        name += 2;
        len -= 2;
    }
    for (size_t i = 0; i <= len; i++)
        buf[i] = name[i] == '_' ? '-' : name[i];
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (strcmp(buf, aliases[i].alias) == 0) {
            memcpy(buf, aliases[i].name, strlen(aliases[i].name) + 1);
            break;
        }
    for (size_t i = 0; i < N_BUILTIN; i++)
        if (strcmp(builtin_types[i].name, buf) == 0)
            return &builtin_types[i];
    return NULL;
}

size_t score_step_type_count(void)
{
    return N_BUILTIN;
}

const score_step_type *score_step_type_at(size_t index)
{
    return index < N_BUILTIN ? &builtin_types[index] : NULL;
}

const char *score_step_type_name(const score_step_type *type)
{
    return type == NULL ? "(null)" : type->name;
}

int score_step_type_kind(const score_step_type *type)
{
    return type == NULL ? 0 : type->kind;
}

int score_step_type_order(const score_step_type *type)
{
    return type == NULL ? 0 : type->order;
}

uint32_t score_step_type_flags(const score_step_type *type)
{
    return type == NULL ? 0u : type->flags;
}

/* ---- user types ------------------------------------------------------------------------ */

int score_step_type_new(score_step_type **out, const char *name, int order)
{
    score_step_type *T;
    size_t len;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (name == NULL)
        return score__error(SCORE_E_INVAL, __func__, "name is NULL");
    len = strlen(name);
    if (len == 0 || len > 63)
        return score__error(SCORE_E_RANGE, __func__, "name length %zu not in [1, 63]", len);
    if (order < 0 || order > 16)
        return score__error(SCORE_E_RANGE, __func__, "order %d not in [0, 16]", order);
    T = score__calloc(1, sizeof *T);
    if (T == NULL)
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    memcpy(T->name, name, len + 1);
    T->order = order;
    *out = T;
    return SCORE_OK;
}

void score_step_type_free(score_step_type *type)
{
    if (type != NULL && !type->builtin)
        score__free(type);
}

static int check_user_type(const char *fn, const score_step_type *type)
{
    if (type == NULL)
        return score__error(SCORE_E_INVAL, fn, "type is NULL");
    if (type->builtin)
        return score__error(SCORE_E_MISUSE, fn, "'%s' is a built-in step type", type->name);
    return SCORE_OK;
}

int score_step_type_set_apply(score_step_type *type, score_step_apply_fn fn, void *user_data)
{
    int rc = check_user_type(__func__, type);
    if (rc != SCORE_OK)
        return rc;
    if (fn == NULL)
        return score__error(SCORE_E_INVAL, __func__, "fn is NULL");
    type->apply = fn;
    type->apply_ud = user_data;
    return SCORE_OK;
}

int score_step_type_set_alloc_state(score_step_type *type, score_step_alloc_fn fn,
                                    void *user_data)
{
    int rc = check_user_type(__func__, type);
    if (rc != SCORE_OK)
        return rc;
    type->alloc = fn;
    type->alloc_ud = user_data;
    return SCORE_OK;
}

int score_step_type_set_reset(score_step_type *type, score_step_reset_fn fn, void *user_data)
{
    int rc = check_user_type(__func__, type);
    if (rc != SCORE_OK)
        return rc;
    type->reset = fn;
    type->reset_ud = user_data;
    return SCORE_OK;
}

int score_step_type_set_free_state(score_step_type *type, score_step_free_fn fn,
                                   void *user_data)
{
    int rc = check_user_type(__func__, type);
    if (rc != SCORE_OK)
        return rc;
    type->free_state = fn;
    type->free_ud = user_data;
    return SCORE_OK;
}

int score_step_type_set_flags(score_step_type *type, uint32_t flags)
{
    int rc = check_user_type(__func__, type);
    if (rc != SCORE_OK)
        return rc;
    if (flags & ~(uint32_t)(ST_S | ST_E | ST_C))
        return score__error(SCORE_E_INVAL, __func__, "unknown flag bits 0x%x", (unsigned)flags);
    type->flags = flags;
    type->err_order = (flags & ST_E) ? (type->order > 1 ? type->order - 1 : 1) : 0;
    return SCORE_OK;
}

