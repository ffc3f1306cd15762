/* Step types: registry of the built-in descriptors, user types, step lifecycle, parameters,
 * argument validation and the helpers shared by the implementations. */
#include <math.h>
#include <string.h>

#include "rng/rng-priv.h"
#include "step-priv.h"

#define SCORE__2POW32 ((uint64_t)1 << 32)

/* ---- built-in descriptors -------------------------------------------------------------- */

#define ST_S SCORE_STEP_FLAG_STOCHASTIC
#define ST_E SCORE_STEP_FLAG_ERROR_ESTIMATE
#define ST_C SCORE_STEP_FLAG_CORRECTOR

static const score_step_type builtin_types[] = {
    {SCORE_STEP_EULER, 1, "euler", 1, 0, 0, score__step_euler, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL},
    {SCORE_STEP_HEUN, 1, "heun", 2, 0, 0, score__step_heun, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL},
    {SCORE_STEP_MIDPOINT, 1, "midpoint", 2, 0, 0, score__step_midpoint, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL},
    {SCORE_STEP_RK4, 1, "rk4", 4, 0, 0, score__step_rk4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL},
    {SCORE_STEP_DOPRI5, 1, "dopri5", 5, 4, ST_E, score__step_dopri5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL},
    {SCORE_STEP_EULER_MARUYAMA, 1, "em", 1, 0, ST_S, score__step_em, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL},
    {SCORE_STEP_REVERSE_DIFFUSION, 1, "reverse-diffusion", 1, 0, ST_S, score__step_reverse_diffusion, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL},
    {SCORE_STEP_ANCESTRAL, 1, "ancestral", 1, 0, ST_S, score__step_ancestral, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL},
    {SCORE_STEP_EULER_ANCESTRAL, 1, "euler-ancestral", 1, 0, ST_S, score__step_euler_ancestral, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL},
    {SCORE_STEP_LANGEVIN, 1, "langevin", 1, 0, ST_S | ST_C, score__step_langevin, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL},
    {SCORE_STEP_ALD, 1, "ald", 1, 0, ST_S | ST_C, score__step_ald, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL},
    {SCORE_STEP_DDIM, 1, "ddim", 1, 0, 0, score__step_ddim, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL},
    {SCORE_STEP_DPM_SOLVER_1, 1, "dpm-solver-1", 1, 0, 0, score__step_dpm_single, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL},
    {SCORE_STEP_DPM_SOLVER_2, 1, "dpm-solver-2", 2, 0, 0, score__step_dpm_single, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL},
    {SCORE_STEP_DPM_SOLVER_3, 1, "dpm-solver-3", 3, 0, 0, score__step_dpm_single, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL},
    {SCORE_STEP_DPMPP_2M, 1, "dpmpp-2m", 2, 0, 0, score__step_dpmpp_multi, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL},
    {SCORE_STEP_DPMPP_3M, 1, "dpmpp-3m", 3, 0, 0, score__step_dpmpp_multi, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL},
    {SCORE_STEP_DPMPP_2M_SDE, 1, "dpmpp-2m-sde", 2, 0, ST_S, score__step_dpmpp_multi, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL},
    {SCORE_STEP_DPM_SOLVER_12, 1, "dpm-solver-12", 2, 1, ST_E, score__step_dpm_adaptive, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL},
    {SCORE_STEP_DPM_SOLVER_23, 1, "dpm-solver-23", 3, 2, ST_E, score__step_dpm_adaptive, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL},
    {SCORE_STEP_NONE, 1, "none", 0, 0, 0, score__step_none, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL},
};

#define N_BUILTIN (sizeof builtin_types / sizeof builtin_types[0])

const score_step_type *score_step_type_get(int kind)
{
    for (size_t i = 0; i < N_BUILTIN; i++)
        if (builtin_types[i].kind == kind)
            return &builtin_types[i];
    return NULL;
}

const score_step_type *score_step_type_find(const char *name)
{
    if (name == NULL)
        return NULL;
    if (strcmp(name, "dpm-adaptive") == 0)
        return score_step_type_get(SCORE_STEP_DPM_SOLVER_23);
    for (size_t i = 0; i < N_BUILTIN; i++)
        if (strcmp(builtin_types[i].name, name) == 0)
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

/* ---- parameters ------------------------------------------------------------------------ */

static const score__param_desc step_params[SCORE__STEP_NPARAMS] = {
    {SCORE_STEP_PARAM_ETA, "eta", SCORE_PARAM_F64, -1, 1000, -1,
     "noise amount of ddim / euler-ancestral / dpmpp-2m-sde; -1 = the type's default"},
    {SCORE_STEP_PARAM_CHURN, "churn", SCORE_PARAM_F64, 0, 0.41421356237309515, 0,
     "EDM churn gamma of one heun step"},
    {SCORE_STEP_PARAM_S_TMIN, "s_tmin", SCORE_PARAM_F64, 0, 1e30, 0,
     "churn only where sigma/alpha >= s_tmin"},
    {SCORE_STEP_PARAM_S_TMAX, "s_tmax", SCORE_PARAM_F64, 0, 1e30, 1e30,
     "churn only where sigma/alpha <= s_tmax"},
    {SCORE_STEP_PARAM_S_NOISE, "s_noise", SCORE_PARAM_F64, 0, 100, 1,
     "scale of churn / SDE noise"},
    {SCORE_STEP_PARAM_SNR, "snr", SCORE_PARAM_F64, 1e-12, 1e6, 0.16,
     "signal-to-noise ratio of the Langevin / ALD step-size rules"},
    {SCORE_STEP_PARAM_STEP_SIZE, "step_size", SCORE_PARAM_F64, 0, 1e12, 0,
     "fixed Langevin step size; 0 = SNR rule"},
    {SCORE_STEP_PARAM_STEP_LR, "step_lr", SCORE_PARAM_F64, 0, 1e12, 0,
     "ALD epsilon (step = eps sigma^2 / sigma_L^2); 0 = score_sde rule"},
    {SCORE_STEP_PARAM_SIGMA_REF, "sigma_ref", SCORE_PARAM_F64, 0, 1e30, 0,
     "ALD reference sigma_L; 0 = sigma(t_eps)"},
    {SCORE_STEP_PARAM_ORDER, "order", SCORE_PARAM_I64, 0, 3, 0,
     "order cap of one call; 0 = the type's order"},
    {SCORE_STEP_PARAM_SNR_NORM, "snr_norm", SCORE_PARAM_I64, 0, 1, 0,
     "Langevin SNR norms: 0 batch mean (score_sde), 1 per row"},
    {SCORE_STEP_PARAM_DISC_N, "disc_n", SCORE_PARAM_I64, 0, 1000000, 0,
     "discretization N of reverse-diffusion / ancestral; 0 = exact transition between end points"},
};

const score__param_desc *score__step_param_table(size_t *n_out)
{
    *n_out = SCORE__STEP_NPARAMS;
    return step_params;
}

SCORE__DEFINE_PARAM_ACCESSORS(score_step, score_step, "step", step_params, SCORE__STEP_NPARAMS)

/* ---- lifecycle ------------------------------------------------------------------------- */

int score_step_new(score_step **out, const score_step_type *type, size_t dim)
{
    score_step *st;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (type == NULL)
        return score__error(SCORE_E_INVAL, __func__, "type is NULL");
    if (!type->builtin && type->apply == NULL)
        return score__error(SCORE_E_INVAL, __func__, "user step type '%s' has no apply function",
                            type->name);
    if (dim == 0 || dim > SCORE__MAX_DIM)
        return score__error(SCORE_E_RANGE, __func__, "dim %zu not in [1, 2^24]", dim);
    st = score__calloc(1, sizeof *st);
    if (st == NULL)
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    st->type = *type;
    st->type.builtin = 0; /* the copy is owned by the step */
    st->dim = dim;
    score__param_defaults(step_params, SCORE__STEP_NPARAMS, st->params);
    if (st->type.alloc != NULL) {
        int rc = st->type.alloc(&st->user_state, dim, st->type.alloc_ud);
        if (rc != 0) {
            score__free(st);
            return score__error(SCORE_E_CALLBACK, __func__, "user state allocator returned %d", rc);
        }
    }
    *out = st;
    return SCORE_OK;
}

static void free_workspace(score_step *st)
{
    for (int i = 0; i < SCORE__STEP_NBUF; i++) {
        score__free(st->buf[i]);
        st->buf[i] = NULL;
    }
    for (int i = 0; i < SCORE__STEP_NDBL; i++) {
        score__free(st->dbl[i]);
        st->dbl[i] = NULL;
    }
    score__free(st->hist_tend);
    st->hist_tend = NULL;
    for (int i = 0; i < 2; i++) {
        score__free(st->hist_lam[i]);
        score__free(st->hist_d[i]);
        score__free(st->fsal_t[i]);
        score__free(st->fsal_x[i]);
        score__free(st->fsal_k[i]);
        st->hist_lam[i] = NULL;
        st->hist_d[i] = NULL;
        st->fsal_t[i] = NULL;
        st->fsal_x[i] = NULL;
        st->fsal_k[i] = NULL;
    }
    st->cap = 0;
}

void score_step_free(score_step *step)
{
    if (step == NULL)
        return;
    if (step->type.free_state != NULL)
        step->type.free_state(step->user_state, step->type.free_ud);
    free_workspace(step);
    score__free(step);
}

int score_step_reset(score_step *step)
{
    if (step == NULL)
        return score__error(SCORE_E_INVAL, __func__, "step is NULL");
    step->hist_count = 0;
    step->hist_n = 0;
    step->fsal_valid = 0;
    step->fsal_n = 0;
    step->nfe = 0;
    step->last_callback_status = 0;
    if (step->type.reset != NULL)
        step->type.reset(step->user_state, step->type.reset_ud);
    return SCORE_OK;
}

/* Grows the workspace to n rows (only built-in types use it). Keeps the history and FSAL
 * contents valid only when nothing was reallocated. */
static int ensure_workspace(score_step *st, size_t n)
{
    size_t nd;
    if (n <= st->cap)
        return SCORE_OK;
    if (score__mul_size(n, st->dim, &nd) != 0)
        return score__error(SCORE_E_NOMEM, "score_step_apply", "workspace of %zu x %zu overflows",
                            n, st->dim);
    free_workspace(st);
    st->hist_count = 0;
    st->fsal_valid = 0;
    for (int i = 0; i < SCORE__STEP_NBUF; i++)
        if ((st->buf[i] = score__calloc(nd, sizeof(float))) == NULL)
            goto nomem;
    for (int i = 0; i < SCORE__STEP_NDBL; i++)
        if ((st->dbl[i] = score__calloc(n, sizeof(double))) == NULL)
            goto nomem;
    if ((st->hist_tend = score__calloc(n, sizeof(double))) == NULL)
        goto nomem;
    for (int i = 0; i < 2; i++) {
        if ((st->hist_lam[i] = score__calloc(n, sizeof(double))) == NULL ||
            (st->hist_d[i] = score__calloc(nd, sizeof(float))) == NULL ||
            (st->fsal_t[i] = score__calloc(n, sizeof(double))) == NULL ||
            (st->fsal_x[i] = score__calloc(nd, sizeof(float))) == NULL ||
            (st->fsal_k[i] = score__calloc(nd, sizeof(float))) == NULL)
            goto nomem;
    }
    st->cap = n;
    return SCORE_OK;
nomem:
    free_workspace(st);
    return score__error(SCORE_E_NOMEM, "score_step_apply", "workspace for %zu rows", n);
}

/* ---- accessors ------------------------------------------------------------------------- */

const char *score_step_name(const score_step *step)
{
    return step == NULL ? "(null)" : step->type.name;
}

int score_step_order(const score_step *step)
{
    return step == NULL ? 0 : step->type.order;
}

int score__step_needs_noise(const score_step *st)
{
    switch (st->type.kind) {
    case SCORE_STEP_HEUN:
        return SCORE__STEP_F64(st, SCORE_STEP_PARAM_CHURN) > 0.0;
    case SCORE_STEP_DDIM:
    case SCORE_STEP_EULER_ANCESTRAL:
    case SCORE_STEP_DPMPP_2M_SDE:
        return score__step_eta(st) > 0.0;
    default:
        return (st->type.flags & ST_S) != 0;
    }
}

int score_step_is_stochastic(const score_step *step)
{
    return step != NULL && score__step_needs_noise(step);
}

int score_step_error_order(const score_step *step)
{
    return step == NULL ? 0 : step->type.err_order;
}

size_t score_step_dim(const score_step *step)
{
    return step == NULL ? 0 : step->dim;
}

uint64_t score_step_nfe(const score_step *step)
{
    return step == NULL ? 0 : step->nfe;
}

int score_step_last_callback_status(const score_step *step)
{
    return step == NULL ? 0 : step->last_callback_status;
}

/* ---- noise ----------------------------------------------------------------------------- */

static int check_noise_range(const char *fn, const score_rng *rng, uint64_t counter, size_t row0,
                             size_t n, size_t dim, size_t blocks)
{
    uint64_t base = rng->counter;
    if (counter >= SCORE__2POW32 || base + counter >= SCORE__2POW32)
        return score__error(SCORE_E_RANGE, fn, "noise counter %llu + offset %llu reaches 2^32",
                            (unsigned long long)base, (unsigned long long)counter);
    if ((uint64_t)row0 > SCORE__2POW32 || (uint64_t)n > SCORE__2POW32 - (uint64_t)row0)
        return score__error(SCORE_E_RANGE, fn, "rows %zu + %zu exceed 2^32", row0, n);
    if (blocks > ((uint64_t)1 << 34) / dim)
        return score__error(SCORE_E_RANGE, fn, "noise columns %zu x %zu exceed 2^34", blocks, dim);
    return SCORE_OK;
}

int score_step_noise(const score_rng *rng, uint64_t counter, size_t row0, size_t n, size_t dim,
                     size_t block, float *out)
{
    int rc;
    if (rng == NULL || (out == NULL && n > 0))
        return score__error(SCORE_E_INVAL, __func__, "rng or out is NULL");
    if (dim == 0)
        return score__error(SCORE_E_INVAL, __func__, "dim is 0");
    if (block >= ((size_t)1 << 34))
        return score__error(SCORE_E_RANGE, __func__, "block %zu too large", block);
    rc = check_noise_range(__func__, rng, counter, row0, n, dim, block + 1);
    if (rc != SCORE_OK)
        return rc;
    score__rng_normal_at(rng, (uint32_t)(rng->counter + counter), row0, n, block * dim, dim, out);
    return SCORE_OK;
}

void score__step_noise(const score__step_call *c, size_t block, float *out)
{
    score__rng_normal_at(c->rng, (uint32_t)(c->rng->counter + c->counter), c->row0, c->n,
                         block * c->dim, c->dim, out);
}

/* ---- helpers --------------------------------------------------------------------------- */

int score__step_finite(size_t n, const float *x)
{
    return score__all_finite_f32(n, x);
}

/* 1 when the n times are all equal (the common case of a driver): the schedule is then
 * evaluated once and the result broadcast. */
static int all_equal(size_t n, const double *t)
{
    for (size_t i = 1; i < n; i++)
        if (t[i] != t[0])
            return 0;
    return 1;
}

int score__step_alpha_sigma(const score__step_call *c, size_t n, const double *t, double *alpha,
                            double *sigma)
{
    int rc;
    if (n > 1 && all_equal(n, t)) {
        rc = score__step_alpha_sigma(c, 1, t, alpha, sigma);
        for (size_t i = 1; i < n && rc == SCORE_OK; i++) {
            alpha[i] = alpha[0];
            sigma[i] = sigma[0];
        }
        return rc;
    }
    rc = score_schedule_alpha_sigma(c->sched, n, t, alpha, sigma);
    if (rc != SCORE_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (t[i] == 0.0) {
            alpha[i] = 1.0;
            sigma[i] = 0.0;
        }
    }
    return SCORE_OK;
}

int score__step_t_of_s(const score__step_call *c, size_t n, const double *s, double *t_out)
{
    int rc;
    if (n > 1 && all_equal(n, s)) {
        rc = score__step_t_of_s(c, 1, s, t_out);
        for (size_t i = 1; i < n && rc == SCORE_OK; i++)
            t_out[i] = t_out[0];
        return rc;
    }
    for (size_t i = 0; i < n; i++)
        t_out[i] = -log(s[i]);
    return score_schedule_t_of_lambda(c->sched, n, t_out, t_out);
}

int score__step_t_of_lambda(const score__step_call *c, size_t n, const double *lam,
                            double *t_out)
{
    int rc;
    if (n > 1 && all_equal(n, lam)) {
        rc = score_schedule_t_of_lambda(c->sched, 1, lam, t_out);
        for (size_t i = 1; i < n && rc == SCORE_OK; i++)
            t_out[i] = t_out[0];
        return rc;
    }
    return score_schedule_t_of_lambda(c->sched, n, lam, t_out);
}

int score__step_sde_coefs(const score__step_call *c, size_t n, const double *t, double *f,
                          double *g)
{
    int rc;
    if (n > 1 && all_equal(n, t)) {
        rc = score_schedule_sde_coefs(c->sched, 1, t, f, g);
        for (size_t i = 1; i < n && rc == SCORE_OK; i++) {
            f[i] = f[0];
            g[i] = g[0];
        }
        return rc;
    }
    return score_schedule_sde_coefs(c->sched, n, t, f, g);
}

int score__step_x0(score_step *st, const score__step_call *c, const double *t, const float *x,
                   float *out)
{
    int rc = score_sde_x0(c->sde, c->n, t, x, out);
    st->nfe++;
    return rc;
}

int score__step_score(score_step *st, const score__step_call *c, const double *t,
                      const float *x, float *out)
{
    int rc = score_sde_score(c->sde, c->n, t, x, out);
    st->nfe++;
    return rc;
}

/* Series sum_{k >= k0} sgn^k... helpers: exp-integrator weights, stable for small |h|. */
double score__expint_i0(double h)
{
    return -expm1(-h);
}

double score__expint_i1(double h)
{
    if (fabs(h) < 0.5) {
        /* sum_{k >= 2} (-h)^k / k! */
        double term = h * h / 2.0, sum = 0.0;
        for (int k = 2; k < 30; k++) {
            sum += term;
            term *= -h / (double)(k + 1);
        }
        return sum;
    }
    return h + expm1(-h);
}

double score__expint_i2(double h)
{
    if (fabs(h) < 0.5) {
        /* -sum_{k >= 3} (-h)^k / k! */
        double term = h * h * h / 6.0, sum = 0.0;
        for (int k = 3; k < 30; k++) {
            sum += term;
            term *= -h / (double)(k + 1);
        }
        return sum;
    }
    return 0.5 * h * h - h - expm1(-h);
}

double score__phi1m1(double z)
{
    if (fabs(z) < 0.5) {
        /* sum_{k >= 1} z^k / (k + 1)! */
        double term = z / 2.0, sum = 0.0;
        for (int k = 1; k < 30; k++) {
            sum += term;
            term *= z / (double)(k + 2);
        }
        return sum;
    }
    return expm1(z) / z - 1.0;
}

/* ---- apply ----------------------------------------------------------------------------- */

static int apply_common(const char *fn, score_step *step, score_sde *sde, size_t n,
                        const double *t, const double *t_next, size_t row0, float *x,
                        float *xerr, const score_rng *rng, uint64_t counter)
{
    score__step_call c;
    int rc, stochastic, corrector, needs_noise = 0, to_zero = 0, nonzero = 0, all_same = 1;
    if (step == NULL || sde == NULL)
        return score__error(SCORE_E_INVAL, fn, "step or sde is NULL");
    if (n == 0)
        return SCORE_OK;
    if (t == NULL || t_next == NULL || x == NULL)
        return score__error(SCORE_E_INVAL, fn, "t, t_next or x is NULL");
    if (score_sde_dim(sde) != step->dim)
        return score__error(SCORE_E_SHAPE, fn, "sde dimension %zu != step dimension %zu",
                            score_sde_dim(sde), step->dim);
    stochastic = (step->type.flags & ST_S) != 0;
    corrector = (step->type.flags & ST_C) != 0;
    if ((uint64_t)row0 > SCORE__2POW32 || (uint64_t)n > SCORE__2POW32 - (uint64_t)row0)
        return score__error(SCORE_E_RANGE, fn, "rows %zu + %zu exceed 2^32", row0, n);
    if (score__step_needs_noise(step)) {
        needs_noise = 1;
        if (rng == NULL)
            return score__error(SCORE_E_INVAL, fn, "step type '%s' draws noise: rng is NULL",
                                step->type.name);
        rc = check_noise_range(fn, rng, counter, row0, n, step->dim, 2);
        if (rc != SCORE_OK)
            return rc;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(t[i]) || !(t[i] > 0.0))
            return score__error(isnan(t[i]) || isinf(t[i]) ? SCORE_E_NUMERIC : SCORE_E_RANGE, fn,
                                "t[%zu] = %g: a start time must be finite and > 0", i, t[i]);
        if (!isfinite(t_next[i]) || t_next[i] < 0.0)
            return score__error(isnan(t_next[i]) || isinf(t_next[i]) ? SCORE_E_NUMERIC : SCORE_E_RANGE,
                                fn, "t_next[%zu] = %g: an end time must be finite and >= 0", i,
                                t_next[i]);
        if (t_next[i] == 0.0)
            to_zero = 1;
        else
            nonzero = 1;
        if (t_next[i] != t[i])
            all_same = 0;
        if ((stochastic || needs_noise) && !corrector && t_next[i] > t[i])
            return score__error(SCORE_E_INVAL, fn,
                                "stochastic step '%s' cannot go forward in time (t[%zu] = %g < t_next = %g)",
                                step->type.name, i, t[i], t_next[i]);
    }
    if (step->type.builtin == 0 && step->type.impl == NULL) {
        /* user type */
        if (!score__step_finite(n * step->dim, x))
            return score__error(SCORE_E_NUMERIC, fn, "x holds NaN or infinity on entry");
        rc = step->type.apply(step->user_state, sde, n, step->dim, t, t_next, row0, x, xerr, rng,
                              counter, step->type.apply_ud);
        if (rc != 0) {
            step->last_callback_status = rc;
            return score__error(SCORE_E_CALLBACK, fn, "user step '%s' returned %d", step->type.name,
                                rc);
        }
        step->last_callback_status = 0;
        if (!score__step_finite(n * step->dim, x))
            return score__error(SCORE_E_NUMERIC, fn, "user step '%s' produced NaN or infinity",
                                step->type.name);
        return SCORE_OK;
    }
    if (!corrector && to_zero && nonzero)
        return score__error(SCORE_E_INVAL, fn,
                            "some rows go to t = 0 (the data) and others do not: split the call");
    if (!score__step_finite(n * step->dim, x))
        return score__error(SCORE_E_NUMERIC, fn, "x holds NaN or infinity on entry");
    rc = ensure_workspace(step, n);
    if (rc != SCORE_OK)
        return rc;
    c.sde = sde;
    c.sched = score_sde_schedule(sde);
    c.n = n;
    c.dim = step->dim;
    c.row0 = row0;
    c.t = t;
    c.tn = t_next;
    c.x = x;
    c.xerr = xerr;
    c.rng = needs_noise ? rng : NULL;
    c.counter = counter;
    if (xerr != NULL && !(step->type.flags & ST_E))
        memset(xerr, 0, n * step->dim * sizeof(float));
    if (all_same && !corrector)
        return SCORE_OK;
    if (!corrector && to_zero) {
        /* the data prediction: x' = D(x, t) */
        float *d = step->buf[0];
        step->hist_count = 0;
        step->fsal_valid = 0;
        rc = score__step_x0(step, &c, t, x, d);
        if (rc != SCORE_OK)
            return rc;
        memcpy(x, d, n * step->dim * sizeof(float));
        if (xerr != NULL)
            memset(xerr, 0, n * step->dim * sizeof(float));
    } else {
        rc = step->type.impl(step, &c);
        if (rc != SCORE_OK)
            return rc;
    }
    if (!score__step_finite(n * step->dim, x))
        return score__error(SCORE_E_NUMERIC, fn, "step '%s' produced NaN or infinity",
                            step->type.name);
    return SCORE_OK;
}

int score_step_apply(score_step *step, score_sde *sde, double t, double t_next, size_t n,
                     float *x, float *xerr, const score_rng *rng, uint64_t counter)
{
    int rc;
    if (step == NULL || sde == NULL)
        return score__error(SCORE_E_INVAL, __func__, "step or sde is NULL");
    if (n == 0)
        return SCORE_OK;
    rc = ensure_workspace(step, n);
    if (rc != SCORE_OK)
        return rc;
    /* the last two per-row arrays hold the constant times */
    for (size_t i = 0; i < n; i++) {
        step->dbl[SCORE__STEP_NDBL - 2][i] = t;
        step->dbl[SCORE__STEP_NDBL - 1][i] = t_next;
    }
    return apply_common(__func__, step, sde, n, step->dbl[SCORE__STEP_NDBL - 2],
                        step->dbl[SCORE__STEP_NDBL - 1], 0, x, xerr, rng, counter);
}

int score_step_apply_ex(score_step *step, score_sde *sde, size_t n, const double *t,
                        const double *t_next, size_t row0, float *x, float *xerr,
                        const score_rng *rng, uint64_t counter)
{
    return apply_common(__func__, step, sde, n, t, t_next, row0, x, xerr, rng, counter);
}
