/* Noise schedules: lifecycle, parameters, presets, level tables and pointwise evaluation.
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

static int is_user_kind(int kind)
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
    if (score__sched_is_discrete(kind) && !is_user_kind(kind)) {
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
    if (for_set && param == SCORE_SCHEDULE_PARAM_NUM_LEVELS && is_user_kind(s->kind))
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

static double effective_t_eps(const score_schedule *s)
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
        *out = effective_t_eps(s);
    return rc;
}

int score_schedule_get_i64(const score_schedule *s, int param, int64_t *out)
{
    int rc = param_check(s, param, __func__, 0);
    if (rc != SCORE_OK)
        return rc;
    rc = score__param_get_i64(__func__, param_table, SCORE__SCHED_NPARAM, s->vals, param, out);
    if (rc == SCORE_OK && param == SCORE_SCHEDULE_PARAM_NUM_LEVELS && is_user_kind(s->kind))
        *out = (int64_t)s->L;
    return rc;
}

int score_schedule_set_array(score_schedule *s, size_t n, const double *values)
{
    size_t nmin;
    int incr = 1, rc;
    if (s == NULL || values == NULL)
        return score__error(SCORE_E_INVAL, __func__, "s or values is NULL");
    if (!is_user_kind(s->kind))
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

/* ---- continuous-time view of the discrete tables ----------------------------------------- */

/* Node values: VE-type lv[0..L-1] (log sigma); DDPM-type node -1 is log alpha = 0. */
static double node(const score_schedule *s, size_t k_plus_1)
{
    return k_plus_1 == 0 ? 0.0 : s->lv[k_plus_1 - 1];
}

/* Piece containing t: value v = log sigma (VE-type) or log alpha (DDPM-type) and its slope. */
static void piece_eval(const score_schedule *s, double t, double *v, double *slope)
{
    double L = (double)s->L, p = t * L / s->T, v0, v1, w;
    size_t k;
    if (score__sched_is_ve_type(s->kind)) {
        /* pieces between nodes k-1 and k, k in [1, L-1]; below t_0 the first piece extends */
        double fl = floor(p);
        k = fl < 1.0 ? 1 : (fl > L - 1.0 ? s->L - 1 : (size_t)fl);
        v0 = s->lv[k - 1];
        v1 = s->lv[k];
    } else {
        double fl = floor(p);
        k = fl > L - 1.0 ? s->L - 1 : (size_t)fl;
        v0 = node(s, k);
        v1 = node(s, k + 1);
    }
    w = p - (double)k;
    *v = v0 + w * (v1 - v0);
    if (slope)
        *slope = (v1 - v0) * L / s->T;
}

/* ---- pointwise evaluation ---------------------------------------------------------------- */

static double vp_log_alpha(const score_schedule *s, double t)
{
    return -t * (0.25 * s->c_b * t + 0.5 * s->c_a);
}

/* sigma and lambda of DDPM-type schedules from log alpha */
static void vp_from_la(double la, double *sig, double *lam)
{
    double e = -expm1(2.0 * la); /* 1 - alpha^2 */
    *sig = sqrt(e);
    *lam = e > 0.0 ? la - 0.5 * log(e) : INFINITY;
}

void score__sched_eval(const score_schedule *s, double t, double *la, double *sig, double *lam)
{
    double v;
    switch (s->kind) {
    case SCORE_SCHEDULE_VE:
        v = s->c_a + t * s->c_b;
        *la = 0.0;
        *sig = exp(v);
        *lam = -v;
        return;
    case SCORE_SCHEDULE_VP:
        *la = vp_log_alpha(s, t);
        vp_from_la(*la, sig, lam);
        return;
    case SCORE_SCHEDULE_SUBVP: {
        double e;
        *la = vp_log_alpha(s, t);
        e = -expm1(2.0 * *la);
        *sig = e;
        *lam = e > 0.0 ? *la - log(e) : INFINITY;
        return;
    }
    default:
        piece_eval(s, t, &v, NULL);
        if (score__sched_is_ve_type(s->kind)) {
            *la = 0.0;
            *sig = exp(v);
            *lam = -v;
        } else {
            *la = v;
            vp_from_la(v, sig, lam);
        }
        return;
    }
}

void score__sched_coefs(const score_schedule *s, double t, double *f, double *g)
{
    double b, v, k;
    switch (s->kind) {
    case SCORE_SCHEDULE_VE:
        *f = 0.0;
        *g = exp(s->c_a + t * s->c_b) * sqrt(2.0 * s->c_b);
        return;
    case SCORE_SCHEDULE_VP:
        b = s->c_a + t * s->c_b;
        *f = -0.5 * b;
        *g = sqrt(b);
        return;
    case SCORE_SCHEDULE_SUBVP:
        b = s->c_a + t * s->c_b;
        *f = -0.5 * b;
        /* g^2 = beta(t) (1 - exp(-2 beta_min t - (beta_max - beta_min) t^2)) = beta (1 - alpha^4) */
        *g = sqrt(b * -expm1(4.0 * vp_log_alpha(s, t)));
        return;
    default:
        piece_eval(s, t, &v, &k);
        if (score__sched_is_ve_type(s->kind)) {
            /* sigma = exp(v), d sigma^2/dt = 2 k sigma^2 = g^2 */
            *f = 0.0;
            *g = exp(v) * sqrt(2.0 * k);
        } else {
            /* f = d log alpha / dt = k; g^2 = d sigma^2/dt - 2 f sigma^2 = -2 k */
            *f = k;
            *g = sqrt(-2.0 * k);
        }
        return;
    }
}

/* log(1 + e^x) without overflow */
static double softplus(double x)
{
    return x > 0.0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

/* VP / sub-VP: the t >= 0 with -2 log alpha(t) = beta_d t^2 / 2 + beta_0 t = Lv, written without
 * cancellation (the rationalised root of DPM-Solver's inverse_lambda). */
static double vp_t_of_minus2la(const score_schedule *s, double Lv)
{
    double b0 = s->c_a;
    return 2.0 * Lv / (b0 + sqrt(b0 * b0 + 2.0 * s->c_b * Lv));
}

double score__sched_t_of_lambda(const score_schedule *s, double lam)
{
    double t;
    switch (s->kind) {
    case SCORE_SCHEDULE_VE:
        t = (-lam - s->c_a) / s->c_b;
        break;
    case SCORE_SCHEDULE_VP:
        /* 1 / alpha^2 = 1 + exp(-2 lambda) */
        t = vp_t_of_minus2la(s, softplus(-2.0 * lam));
        break;
    case SCORE_SCHEDULE_SUBVP: {
        /* alpha / (1 - alpha^2) = e^lambda  =>  alpha = 2 / (E + sqrt(E^2 + 4)), E = e^-lambda */
        double lu;
        if (lam > 0.0) {
            double E = exp(-lam), h = hypot(E, 2.0);
            double one_minus_u = (E + E * E / (h + 2.0)) / (E + h);
            lu = log1p(-one_minus_u);
        } else {
            double e2 = exp(2.0 * lam);
            lu = lam - log(0.5 * (1.0 + sqrt(1.0 + 4.0 * e2)));
        }
        t = vp_t_of_minus2la(s, -2.0 * lu);
        break;
    }
    default: {
        double L = (double)s->L, target, v0, v1, w;
        size_t lo, hi, k;
        if (score__sched_is_ve_type(s->kind)) {
            /* log sigma = -lambda, increasing in t; piece k in [1, L-1] with lv[k-1] <= target <= lv[k] */
            target = -lam;
            lo = 1;
            hi = s->L - 1;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (s->lv[mid] >= target)
                    hi = mid;
                else
                    lo = mid + 1;
            }
            k = lo;
            v0 = s->lv[k - 1];
            v1 = s->lv[k];
        } else {
            /* log alpha = -softplus(-2 lambda) / 2, decreasing in t; nodes node(0) = 0 (t = 0),
             * node(m) = lv[m - 1]; piece k in [0, L-1] joins node(k) and node(k + 1) */
            target = -0.5 * softplus(-2.0 * lam);
            lo = 0;
            hi = s->L - 1;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (node(s, mid + 1) <= target)
                    hi = mid;
                else
                    lo = mid + 1;
            }
            k = lo;
            v0 = node(s, k);
            v1 = node(s, k + 1);
        }
        w = (target - v0) / (v1 - v0);
        t = ((double)k + w) * s->T / L;
        break;
    }
    }
    if (!(t >= 0.0))
        t = 0.0;
    if (t > s->T)
        t = s->T;
    return t;
}

/* ---- tables and prepare ------------------------------------------------------------------ */

static int fill_tables(score_schedule *s, const char *fn)
{
    size_t L = s->L;
    double acc = 0.0;
    switch (s->kind) {
    case SCORE_SCHEDULE_NCSN: {
        double a = log(score__sched_f(s, SCORE_SCHEDULE_PARAM_SIGMA_MIN));
        double b = log(score__sched_f(s, SCORE_SCHEDULE_PARAM_SIGMA_MAX));
        for (size_t i = 0; i < L; i++) {
            s->lv[i] = i + 1 == L ? b : a + (b - a) * ((double)i / (double)(L - 1));
            s->aux[i] = exp(s->lv[i]);
        }
        break;
    }
    case SCORE_SCHEDULE_SIGMAS:
        for (size_t i = 0; i < L; i++) {
            s->lv[i] = log(s->user[i]);
            s->aux[i] = s->user[i];
        }
        break;
    case SCORE_SCHEDULE_DDPM_LINEAR:
    case SCORE_SCHEDULE_DDPM_SCALED_LINEAR: {
        double b0 = score__sched_f(s, SCORE_SCHEDULE_PARAM_BETA_START);
        double b1 = score__sched_f(s, SCORE_SCHEDULE_PARAM_BETA_END);
        int sq = s->kind == SCORE_SCHEDULE_DDPM_SCALED_LINEAR;
        if (sq) {
            b0 = sqrt(b0);
            b1 = sqrt(b1);
        }
        for (size_t i = 0; i < L; i++) {
            double r = L == 1 ? 0.0 : (double)i / (double)(L - 1);
            double b = i + 1 == L && L > 1 ? b1 : b0 + (b1 - b0) * r;
            s->aux[i] = sq ? b * b : b;
        }
        break;
    }
    case SCORE_SCHEDULE_DDPM_COSINE: {
        /* alpha_bar(u) = cos(phi(u))^2, phi(u) = (u + s) / (1 + s) pi / 2; beta_i = min(1 -
         * alpha_bar((i+1)/L) / alpha_bar(i/L), max_beta), with 1 - cos^2 b / cos^2 a =
         * sin(b - a) sin(b + a) / cos^2 a (no cancellation). */
        double cs = score__sched_f(s, SCORE_SCHEDULE_PARAM_COSINE_S);
        double mb = score__sched_f(s, SCORE_SCHEDULE_PARAM_COSINE_MAX_BETA);
        const double half_pi = 1.57079632679489661923;
        for (size_t i = 0; i < L; i++) {
            double a = ((double)i / (double)L + cs) / (1.0 + cs) * half_pi;
            double b = ((double)(i + 1) / (double)L + cs) / (1.0 + cs) * half_pi;
            double ca = cos(a);
            double beta = sin(b - a) * sin(b + a) / (ca * ca);
            s->aux[i] = beta < mb ? beta : mb;
        }
        break;
    }
    case SCORE_SCHEDULE_BETAS:
        for (size_t i = 0; i < L; i++)
            s->aux[i] = s->user[i];
        break;
    default:
        return SCORE_OK;
    }
    if (!score__sched_is_ve_type(s->kind)) {
        for (size_t i = 0; i < L; i++) {
            if (!(s->aux[i] > 0.0 && s->aux[i] < 1.0))
                return score__error(SCORE_E_INVAL, fn, "beta_%zu = %g is not in (0, 1)", i, s->aux[i]);
            acc += 0.5 * log1p(-s->aux[i]);
            s->lv[i] = acc;
        }
        for (size_t i = 0; i < L; i++)
            if (!(node(s, i + 1) < node(s, i)))
                return score__error(SCORE_E_INVAL, fn,
                                    "alpha_bar does not decrease at level %zu in double precision", i);
    } else {
        for (size_t i = 1; i < L; i++)
            if (!(s->lv[i] > s->lv[i - 1]))
                return score__error(SCORE_E_INVAL, fn,
                                    "sigma levels %zu and %zu are equal in double precision", i - 1, i);
    }
    return SCORE_OK;
}

static int prepare_impl(score_schedule *s, const char *fn)
{
    int rc;
    double T = score__sched_f(s, SCORE_SCHEDULE_PARAM_T);
    double te = effective_t_eps(s);
    double ends[2], la, sig, lam, f, g;
    int kind = s->kind;

    if (score__sched_is_discrete(kind)) {
        if (is_user_kind(kind) && !s->have_user)
            return score__error(SCORE_E_INVAL, fn, "%s schedule has no array: call score_schedule_set_array first",
                                kind_names[kind]);
        if (score__sched_is_ve_type(kind) && s->L < 2)
            return score__error(SCORE_E_INVAL, fn, "%s schedule needs at least 2 levels (has %zu)",
                                kind_names[kind], s->L);
    }
    if (!(te < T))
        return score__error(SCORE_E_INVAL, fn, "t_eps = %g must be smaller than T = %g", te, T);
    s->T = T;
    s->t_eps = te;
    switch (kind) {
    case SCORE_SCHEDULE_VE:
    case SCORE_SCHEDULE_NCSN: {
        double a = score__sched_f(s, SCORE_SCHEDULE_PARAM_SIGMA_MIN);
        double b = score__sched_f(s, SCORE_SCHEDULE_PARAM_SIGMA_MAX);
        if (!(a < b))
            return score__error(SCORE_E_INVAL, fn, "sigma_min = %g must be smaller than sigma_max = %g", a, b);
        s->c_a = log(a);
        s->c_b = log(b) - log(a);
        break;
    }
    case SCORE_SCHEDULE_VP:
    case SCORE_SCHEDULE_SUBVP: {
        double a = score__sched_f(s, SCORE_SCHEDULE_PARAM_BETA_MIN);
        double b = score__sched_f(s, SCORE_SCHEDULE_PARAM_BETA_MAX);
        if (!(a < b))
            return score__error(SCORE_E_INVAL, fn, "beta_min = %g must be smaller than beta_max = %g", a, b);
        s->c_a = a;
        s->c_b = b - a;
        if (vp_log_alpha(s, T) < -700.0)
            return score__error(SCORE_E_INVAL, fn,
                                "alpha(T) = exp(%g) underflows: beta_max and T are too large", vp_log_alpha(s, T));
        break;
    }
    case SCORE_SCHEDULE_DDPM_LINEAR:
    case SCORE_SCHEDULE_DDPM_SCALED_LINEAR: {
        double a = score__sched_f(s, SCORE_SCHEDULE_PARAM_BETA_START);
        double b = score__sched_f(s, SCORE_SCHEDULE_PARAM_BETA_END);
        if (!(a <= b))
            return score__error(SCORE_E_INVAL, fn, "beta_start = %g must not exceed beta_end = %g", a, b);
        break;
    }
    default:
        break;
    }
    rc = fill_tables(s, fn);
    if (rc != SCORE_OK)
        return rc;
    if (score__sched_is_discrete(kind) && !score__sched_is_ve_type(kind) && s->lv[s->L - 1] < -700.0)
        return score__error(SCORE_E_INVAL, fn, "alpha_bar of the last level underflows (log alpha = %g)",
                            s->lv[s->L - 1]);

    /* Every value must be finite on [t_eps, T]; alpha, sigma, lambda are monotone and g is
     * largest at an end (or bounded by its value at T), so the ends suffice. */
    ends[0] = te;
    ends[1] = T;
    for (int j = 0; j < 2; j++) {
        score__sched_eval(s, ends[j], &la, &sig, &lam);
        score__sched_coefs(s, ends[j], &f, &g);
        if (!(isfinite(la) && exp(la) > 0.0 && sig > 0.0 && isfinite(sig) && isfinite(lam) &&
              isfinite(f) && isfinite(g)))
            return score__error(SCORE_E_INVAL, fn,
                                "schedule is not finite at t = %g (log alpha %g, sigma %g, lambda %g, g %g): parameters too extreme",
                                ends[j], la, sig, lam, g);
    }
    score__sched_eval(s, T, &la, &sig, &s->lam_T);
    score__sched_eval(s, 0.0, &la, &sig, &s->lam_0);
    s->prepared = 1;
    return SCORE_OK;
}

int score_schedule_prepare(score_schedule *s)
{
    if (s == NULL)
        return score__error(SCORE_E_INVAL, __func__, "s is NULL");
    if (s->prepared)
        return SCORE_OK;
    return prepare_impl(s, __func__);
}

int score__sched_ensure(const score_schedule *s, const char *fn)
{
    if (s == NULL)
        return score__error(SCORE_E_INVAL, fn, "s is NULL");
    if (s->prepared)
        return SCORE_OK;
    /* Implicit preparation on first use (documented: object-exclusive until prepared). */
    return prepare_impl((score_schedule *)(uintptr_t)s, fn);
}
