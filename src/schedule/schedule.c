/* Noise schedules: kinds, the parameter table, lifecycle, parameters, presets and
 * introspection (preparation and level tables: prepare.c; pointwise evaluation: eval.c).
 * Formulas: doc/schedules.md (score_sde sde_lib, NCSN, DDPM, improved DDPM, DPM-Solver). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "schedule-priv.h"

/* ---- kinds ------------------------------------------------------------------------------- */

#define KBIT(k) (1u << (k))
#define K_VE KBIT(SCORE_SCHEDULE_VE)
#define K_VP KBIT(SCORE_SCHEDULE_VP)
#define K_SUBVP KBIT(SCORE_SCHEDULE_SUBVP)
#define K_NCSN KBIT(SCORE_SCHEDULE_NCSN)
#define K_LIN KBIT(SCORE_SCHEDULE_DDPM_LINEAR)
#define K_SCL KBIT(SCORE_SCHEDULE_DDPM_SCALED_LINEAR)
#define K_COS KBIT(SCORE_SCHEDULE_DDPM_COSINE)
#define K_SIG KBIT(SCORE_SCHEDULE_SIGMAS)
#define K_BET KBIT(SCORE_SCHEDULE_BETAS)
#define K_ALL (K_VE | K_VP | K_SUBVP | K_NCSN | K_LIN | K_SCL | K_COS | K_SIG | K_BET)

static const char *const kind_names[] = {
    NULL, "ve", "vp", "subvp", "ncsn", "ddpm-linear", "ddpm-scaled-linear", "ddpm-cosine",
    "sigmas", "betas",
};

static int kind_valid(int kind)
{
    return kind >= SCORE_SCHEDULE_VE && kind <= SCORE_SCHEDULE_BETAS;
}

int score__sched_is_ve_type(int kind)
{
    return kind == SCORE_SCHEDULE_VE || kind == SCORE_SCHEDULE_NCSN || kind == SCORE_SCHEDULE_SIGMAS;
}

int score__sched_is_discrete(int kind)
{
    return kind >= SCORE_SCHEDULE_NCSN;
}

int score__sched_is_user_kind(int kind)
{
    return kind == SCORE_SCHEDULE_SIGMAS || kind == SCORE_SCHEDULE_BETAS;
}

/* ---- parameter table (STYLE C.6); ids 200 .. 215, index = id - 200 -------------------------- */

static const score__param_desc param_table[SCORE__SCHED_NPARAM] = {
    {SCORE_SCHEDULE_PARAM_SIGMA_MIN, "sigma_min", SCORE_PARAM_F64, 1e-10, 1e10, 0.01,
     "VE / NCSN: smallest noise standard deviation sigma_min (< sigma_max)"},
    {SCORE_SCHEDULE_PARAM_SIGMA_MAX, "sigma_max", SCORE_PARAM_F64, 1e-10, 1e10, 50.0,
     "VE / NCSN: largest noise standard deviation sigma_max"},
    {SCORE_SCHEDULE_PARAM_BETA_MIN, "beta_min", SCORE_PARAM_F64, 1e-10, 1e4, 0.1,
     "VP / sub-VP: beta(0) of beta(t) = beta_min + t (beta_max - beta_min) (< beta_max)"},
    {SCORE_SCHEDULE_PARAM_BETA_MAX, "beta_max", SCORE_PARAM_F64, 1e-10, 1e4, 20.0,
     "VP / sub-VP: beta(1)"},
    {SCORE_SCHEDULE_PARAM_T, "T", SCORE_PARAM_F64, 1e-6, 1e6, 1.0,
     "end time T of the forward process"},
    {SCORE_SCHEDULE_PARAM_T_EPS, "t_eps", SCORE_PARAM_F64, 1e-12, 1e6, 1e-5,
     "small end time of sampler grids (< T); discrete kinds default to T / L"},
    {SCORE_SCHEDULE_PARAM_NUM_LEVELS, "num_levels", SCORE_PARAM_I64, 1, SCORE__SCHED_MAX_LEVELS,
     1000, "number of levels L (discrete) or score_sde discretization steps N (continuous)"},
    {SCORE_SCHEDULE_PARAM_BETA_START, "beta_start", SCORE_PARAM_F64, 1e-10, 0.999, 1e-4,
     "DDPM linear / scaled-linear: first per-step beta"},
    {SCORE_SCHEDULE_PARAM_BETA_END, "beta_end", SCORE_PARAM_F64, 1e-10, 0.999, 0.02,
     "DDPM linear / scaled-linear: last per-step beta (>= beta_start)"},
    {SCORE_SCHEDULE_PARAM_COSINE_S, "cosine_s", SCORE_PARAM_F64, 0.0, 1.0, 0.008,
     "DDPM cosine: offset s of alpha_bar(t) = cos((t + s) / (1 + s) pi / 2)^2"},
    {SCORE_SCHEDULE_PARAM_COSINE_MAX_BETA, "cosine_max_beta", SCORE_PARAM_F64, 1e-6, 0.9999,
     0.999, "DDPM cosine: upper clip of the per-step betas"},
    {SCORE_SCHEDULE_PARAM_RHO, "rho", SCORE_PARAM_F64, 0.01, 1000.0, 7.0,
     "exponent rho of the Karras sigma grid"},
    {SCORE_SCHEDULE_PARAM_POLY_RHO, "poly_rho", SCORE_PARAM_F64, 0.01, 1000.0, 1.0,
     "exponent rho of the polyexponential sigma grid"},
    {SCORE_SCHEDULE_PARAM_GRID_SIGMA_MIN, "grid_sigma_min", SCORE_PARAM_F64, 0.0, 1e10, 0.0,
     "smallest EDM sigma (sigma / alpha) of sigma-space grids; 0 = sigma_edm(t_eps)"},
    {SCORE_SCHEDULE_PARAM_GRID_SIGMA_MAX, "grid_sigma_max", SCORE_PARAM_F64, 0.0, 1e10, 0.0,
     "largest EDM sigma of sigma-space grids; 0 = sigma_edm(T)"},
    {SCORE_SCHEDULE_PARAM_DISCRETIZATION, "discretization", SCORE_PARAM_I64, 1, 2, 1,
     "VP / sub-VP discretization: 1 = exact alpha-bar ratios, 2 = score_sde's rule"},
};

/* Kinds each parameter applies to (same order as param_table). */
static const unsigned param_kinds[SCORE__SCHED_NPARAM] = {
    K_VE | K_NCSN, K_VE | K_NCSN, K_VP | K_SUBVP, K_VP | K_SUBVP, K_ALL, K_ALL, K_ALL,
    K_LIN | K_SCL, K_LIN | K_SCL, K_COS, K_COS, K_ALL, K_ALL, K_ALL, K_ALL, K_VP | K_SUBVP,
};

const score__param_desc *score__schedule_param_table(size_t *n_out);
const score__param_desc *score__schedule_param_table(size_t *n_out)
{
    *n_out = SCORE__SCHED_NPARAM;
    return param_table;
}

static int pidx(int id)
{
    return id - SCORE_SCHEDULE_PARAM_SIGMA_MIN;
}

double score__sched_f(const score_schedule *s, int id)
{
    return s->vals[pidx(id)].f;
}

int64_t score__sched_i(const score_schedule *s, int id)
{
    return s->vals[pidx(id)].i;
}

/* ---- lifecycle --------------------------------------------------------------------------- */

/* Makes room for L levels (3 * L doubles); keeps the old block on failure. */
static int reserve_levels(score_schedule *s, size_t L, const char *fn)
{
    double *blk;
    if (L <= s->cap && s->block != NULL)
        return SCORE_OK;
    blk = score__calloc(3 * L, sizeof *blk);
    if (blk == NULL)
        return score__error(SCORE_E_NOMEM, fn, "cannot allocate a table of %zu levels", L);
    score__free(s->block);
    s->block = blk;
    s->cap = L;
    s->user = blk;
    s->lv = blk + L;
    s->aux = blk + 2 * L;
    return SCORE_OK;
}

int score_schedule_new(score_schedule **out, int kind)
{
    score_schedule *s;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (!kind_valid(kind))
        return score__error(SCORE_E_UNSUPPORTED, __func__, "unknown schedule kind %d", kind);
    s = score__calloc(1, sizeof *s);
    if (s == NULL)
        return score__error(SCORE_E_NOMEM, __func__, "cannot allocate a schedule");
    s->kind = kind;
    score__param_defaults(param_table, SCORE__SCHED_NPARAM, s->vals);
    if (score__sched_is_discrete(kind) && !score__sched_is_user_kind(kind)) {
        size_t L = (size_t)score__sched_i(s, SCORE_SCHEDULE_PARAM_NUM_LEVELS);
        int rc = reserve_levels(s, L, __func__);
        if (rc != SCORE_OK) {
            score__free(s);
            return rc;
        }
        s->L = L;
    }
    *out = s;
    return SCORE_OK;
}

void score_schedule_free(score_schedule *s)
{
    if (s == NULL)
        return;
    score__free(s->block);
    score__free(s);
}

int score_schedule_clone(score_schedule **out, const score_schedule *s)
{
    score_schedule *c;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (s == NULL)
        return score__error(SCORE_E_INVAL, __func__, "s is NULL");
    c = score__calloc(1, sizeof *c);
    if (c == NULL)
        return score__error(SCORE_E_NOMEM, __func__, "cannot allocate a schedule");
    c->kind = s->kind;
    c->t_eps_set = s->t_eps_set;
    memcpy(c->vals, s->vals, sizeof c->vals);
    if (s->L > 0) {
        int rc = reserve_levels(c, s->L, __func__);
        if (rc != SCORE_OK) {
            score__free(c);
            return rc;
        }
        memcpy(c->user, s->user, s->L * sizeof *c->user);
    }
    c->L = s->L;
    c->have_user = s->have_user;
    c->prepared = 0;
    *out = c;
    return SCORE_OK;
}

/* ---- parameters -------------------------------------------------------------------------- */

static int param_check(const score_schedule *s, int param, const char *fn, int for_set)
{
    int idx;
    if (s == NULL)
        return score__error(SCORE_E_INVAL, fn, "s is NULL");
    /* Range check before the subtraction: param is any int the caller passes (INT_MIN too). */
    if (param < SCORE_SCHEDULE_PARAM_SIGMA_MIN ||
        param >= SCORE_SCHEDULE_PARAM_SIGMA_MIN + SCORE__SCHED_NPARAM)
        return score__error(SCORE_E_UNSUPPORTED, fn, "unknown schedule parameter id %d", param);
    idx = pidx(param);
    if (!(param_kinds[idx] & KBIT(s->kind)))
        return score__error(SCORE_E_UNSUPPORTED, fn, "parameter '%s' (%d) does not apply to %s schedules",
                            param_table[idx].name, param, kind_names[s->kind]);
    if (for_set && param == SCORE_SCHEDULE_PARAM_NUM_LEVELS && score__sched_is_user_kind(s->kind))
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "num_levels of a %s schedule is the length of its array (score_schedule_set_array)",
                            kind_names[s->kind]);
    if (for_set && s->prepared)
        return score__error(SCORE_E_STAGE, fn,
                            "schedule is prepared; parameters are frozen (use score_schedule_clone for a configurable copy)");
    return SCORE_OK;
}

int score_schedule_set_f64(score_schedule *s, int param, double value)
{
    int rc = param_check(s, param, __func__, 1);
    if (rc != SCORE_OK)
        return rc;
    rc = score__param_set_f64(__func__, param_table, SCORE__SCHED_NPARAM, s->vals, param, value);
    if (rc == SCORE_OK && param == SCORE_SCHEDULE_PARAM_T_EPS)
        s->t_eps_set = 1;
    return rc;
}

int score_schedule_set_i64(score_schedule *s, int param, int64_t value)
{
    int rc = param_check(s, param, __func__, 1);
    score__param_val old;
    if (rc != SCORE_OK)
        return rc;
    old = s->vals[pidx(param)];
    rc = score__param_set_i64(__func__, param_table, SCORE__SCHED_NPARAM, s->vals, param, value);
    if (rc != SCORE_OK)
        return rc;
    if (param == SCORE_SCHEDULE_PARAM_NUM_LEVELS && score__sched_is_discrete(s->kind)) {
        rc = reserve_levels(s, (size_t)value, __func__);
        if (rc != SCORE_OK) {
            s->vals[pidx(param)] = old;
            return rc;
        }
        s->L = (size_t)value;
    }
    return SCORE_OK;
}

double score__sched_t_eps_effective(const score_schedule *s)
{
    if (score__sched_is_discrete(s->kind) && !s->t_eps_set && s->L > 0)
        return score__sched_f(s, SCORE_SCHEDULE_PARAM_T) / (double)s->L;
    return score__sched_f(s, SCORE_SCHEDULE_PARAM_T_EPS);
}

int score_schedule_get_f64(const score_schedule *s, int param, double *out)
{
    int rc = param_check(s, param, __func__, 0);
    if (rc != SCORE_OK)
        return rc;
    rc = score__param_get_f64(__func__, param_table, SCORE__SCHED_NPARAM, s->vals, param, out);
    if (rc == SCORE_OK && param == SCORE_SCHEDULE_PARAM_T_EPS)
        *out = score__sched_t_eps_effective(s);
    return rc;
}

int score_schedule_get_i64(const score_schedule *s, int param, int64_t *out)
{
    int rc = param_check(s, param, __func__, 0);
    if (rc != SCORE_OK)
        return rc;
    rc = score__param_get_i64(__func__, param_table, SCORE__SCHED_NPARAM, s->vals, param, out);
    if (rc == SCORE_OK && param == SCORE_SCHEDULE_PARAM_NUM_LEVELS && score__sched_is_user_kind(s->kind))
        *out = (int64_t)s->L;
    return rc;
}

int score_schedule_set_array(score_schedule *s, size_t n, const double *values)
{
    size_t nmin;
    int incr = 1, rc;
    if (s == NULL || values == NULL)
        return score__error(SCORE_E_INVAL, __func__, "s or values is NULL");
    if (!score__sched_is_user_kind(s->kind))
        return score__error(SCORE_E_UNSUPPORTED, __func__,
                            "only sigmas and betas schedules take an array (this one is %s)",
                            kind_names[s->kind]);
    if (s->prepared)
        return score__error(SCORE_E_STAGE, __func__, "schedule is prepared; its array is frozen");
    nmin = s->kind == SCORE_SCHEDULE_SIGMAS ? 2 : 1;
    if (n < nmin || n > SCORE__SCHED_MAX_LEVELS)
        return score__error(SCORE_E_SHAPE, __func__, "array length %zu outside [%zu, %d]", n, nmin,
                            SCORE__SCHED_MAX_LEVELS);
    for (size_t i = 0; i < n; i++) {
        double v = values[i];
        if (!isfinite(v))
            return score__error(SCORE_E_INVAL, __func__, "values[%zu] = %g is not finite", i, v);
        if (s->kind == SCORE_SCHEDULE_SIGMAS && !(v > 0.0))
            return score__error(SCORE_E_INVAL, __func__, "sigma values[%zu] = %g is not positive", i, v);
        if (s->kind == SCORE_SCHEDULE_BETAS && !(v > 0.0 && v < 1.0))
            return score__error(SCORE_E_INVAL, __func__, "beta values[%zu] = %g is not in (0, 1)", i, v);
    }
    if (s->kind == SCORE_SCHEDULE_SIGMAS) {
        incr = values[1] > values[0];
        for (size_t i = 1; i < n; i++) {
            if (incr ? !(values[i] > values[i - 1]) : !(values[i] < values[i - 1]))
                return score__error(SCORE_E_INVAL, __func__,
                                    "sigmas are not strictly monotone at index %zu (%.17g after %.17g)",
                                    i, values[i], values[i - 1]);
        }
    }
    rc = reserve_levels(s, n, __func__);
    if (rc != SCORE_OK)
        return rc;
    for (size_t i = 0; i < n; i++)
        s->user[i] = incr ? values[i] : values[n - 1 - i];
    s->L = n;
    s->have_user = 1;
    return SCORE_OK;
}

/* ---- presets ----------------------------------------------------------------------------- */

typedef struct preset {
    const char *name;
    int kind;
    /* up to 4 f64 settings and one num_levels (0 = keep the default) */
    int ids[4];
    double vals[4];
    int64_t levels;
} preset;

static const preset presets[] = {
    {"ve-cifar10", SCORE_SCHEDULE_VE,
     {SCORE_SCHEDULE_PARAM_SIGMA_MIN, SCORE_SCHEDULE_PARAM_SIGMA_MAX, SCORE_SCHEDULE_PARAM_T_EPS, 0},
     {0.01, 50.0, 1e-5, 0}, 1000},
    {"ve-toy", SCORE_SCHEDULE_VE,
     {SCORE_SCHEDULE_PARAM_SIGMA_MIN, SCORE_SCHEDULE_PARAM_SIGMA_MAX, SCORE_SCHEDULE_PARAM_T_EPS, 0},
     {0.01, 10.0, 1e-5, 0}, 1000},
    {"vp", SCORE_SCHEDULE_VP,
     {SCORE_SCHEDULE_PARAM_BETA_MIN, SCORE_SCHEDULE_PARAM_BETA_MAX, SCORE_SCHEDULE_PARAM_T_EPS, 0},
     {0.1, 20.0, 1e-3, 0}, 1000},
    {"subvp", SCORE_SCHEDULE_SUBVP,
     {SCORE_SCHEDULE_PARAM_BETA_MIN, SCORE_SCHEDULE_PARAM_BETA_MAX, SCORE_SCHEDULE_PARAM_T_EPS, 0},
     {0.1, 20.0, 1e-3, 0}, 1000},
    {"ncsn", SCORE_SCHEDULE_NCSN,
     {SCORE_SCHEDULE_PARAM_SIGMA_MIN, SCORE_SCHEDULE_PARAM_SIGMA_MAX, 0, 0}, {0.01, 1.0, 0, 0}, 10},
    {"ncsnv2-cifar10", SCORE_SCHEDULE_NCSN,
     {SCORE_SCHEDULE_PARAM_SIGMA_MIN, SCORE_SCHEDULE_PARAM_SIGMA_MAX, 0, 0}, {0.01, 50.0, 0, 0}, 232},
    {"edm", SCORE_SCHEDULE_VE,
     {SCORE_SCHEDULE_PARAM_SIGMA_MIN, SCORE_SCHEDULE_PARAM_SIGMA_MAX, SCORE_SCHEDULE_PARAM_T_EPS,
      SCORE_SCHEDULE_PARAM_RHO},
     {0.002, 80.0, 1e-12, 7.0}, 0},
    {"ddpm-linear", SCORE_SCHEDULE_DDPM_LINEAR,
     {SCORE_SCHEDULE_PARAM_BETA_START, SCORE_SCHEDULE_PARAM_BETA_END, 0, 0}, {1e-4, 0.02, 0, 0}, 1000},
    {"ddpm-cosine", SCORE_SCHEDULE_DDPM_COSINE,
     {SCORE_SCHEDULE_PARAM_COSINE_S, SCORE_SCHEDULE_PARAM_COSINE_MAX_BETA, 0, 0}, {0.008, 0.999, 0, 0}, 1000},
    {"sd-scaled-linear", SCORE_SCHEDULE_DDPM_SCALED_LINEAR,
     {SCORE_SCHEDULE_PARAM_BETA_START, SCORE_SCHEDULE_PARAM_BETA_END, 0, 0}, {0.00085, 0.012, 0, 0}, 1000},
};

#define N_PRESETS (sizeof presets / sizeof presets[0])

size_t score_schedule_preset_count(void)
{
    return N_PRESETS;
}

const char *score_schedule_preset_name(size_t i)
{
    return i < N_PRESETS ? presets[i].name : NULL;
}

int score_schedule_new_preset(score_schedule **out, const char *name)
{
    const preset *p = NULL;
    score_schedule *s;
    int rc;
    if (out == NULL || name == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out or name is NULL");
    *out = NULL;
    for (size_t i = 0; i < N_PRESETS; i++)
        if (strcmp(presets[i].name, name) == 0)
            p = &presets[i];
    if (p == NULL)
        return score__error(SCORE_E_UNSUPPORTED, __func__, "unknown schedule preset '%s'", name);
    rc = score_schedule_new(&s, p->kind);
    if (rc != SCORE_OK)
        return rc;
    for (int j = 0; j < 4 && rc == SCORE_OK; j++)
        if (p->ids[j] != 0)
            rc = score_schedule_set_f64(s, p->ids[j], p->vals[j]);
    if (rc == SCORE_OK && p->levels > 0)
        rc = score_schedule_set_i64(s, SCORE_SCHEDULE_PARAM_NUM_LEVELS, p->levels);
    if (rc != SCORE_OK) {
        score_schedule_free(s);
        return rc;
    }
    *out = s;
    return SCORE_OK;
}

/* ---- introspection ----------------------------------------------------------------------- */

int score_schedule_kind(const score_schedule *s)
{
    if (s == NULL)
        return score__error(SCORE_E_INVAL, __func__, "s is NULL");
    return s->kind;
}

const char *score_schedule_name(const score_schedule *s)
{
    return s == NULL ? "(null)" : kind_names[s->kind];
}

int score_schedule_is_variance_exploding(const score_schedule *s)
{
    if (s == NULL)
        return score__error(SCORE_E_INVAL, __func__, "s is NULL");
    return score__sched_is_ve_type(s->kind);
}

int score_schedule_is_discrete(const score_schedule *s)
{
    if (s == NULL)
        return score__error(SCORE_E_INVAL, __func__, "s is NULL");
    return score__sched_is_discrete(s->kind);
}

size_t score_schedule_num_levels(const score_schedule *s)
{
    if (s == NULL)
        return 0;
    if (score__sched_is_discrete(s->kind))
        return s->L;
    return (size_t)score__sched_i(s, SCORE_SCHEDULE_PARAM_NUM_LEVELS);
}
