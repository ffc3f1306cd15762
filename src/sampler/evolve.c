/* Evolve: per-row adaptive stepping in lambda with an embedded error estimate, and fixed
 * stepping over a grid. */
#include <math.h>
#include <string.h>

#include "adapt-priv.h"
#include "evolve-priv.h"
#include "step-priv.h"
#include "libscore/evolve.h"

struct score_evolve {
    size_t dim, cap;
    int ready;
    double h0;
    score__adapt rows;        /* per-row times, step sizes and counters */
    uint64_t nfe, fixed_steps;
    uint64_t noise_base, noise_stride; /* noise counter of fixed step k, slot j:
                                          base + k * stride + j */
    /* scratch of the adaptive system */
    const score__control_vals *ctl;
    score_step *step;
    score_sde *sde;
    const score_rng *rng;
    int f64;                  /* the call's state: 0 float, 1 double */
    void *x;                  /* the caller's state */
    void *xw, *xerr;          /* compacted rows and their error estimates (room for doubles) */
};

int score_evolve_new(score_evolve **out, size_t dim)
{
    score_evolve *e;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (score__check_dim(__func__, dim) != SCORE_OK)
        return SCORE_E_RANGE;
    e = score__calloc(1, sizeof *e);
    if (e == NULL)
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    e->dim = dim;
    *out = e;
    return SCORE_OK;
}

static void free_ws(score_evolve *e)
{
    score__adapt_release(&e->rows);
    score__free(e->xw);
    score__free(e->xerr);
    e->xw = e->xerr = NULL;
    e->cap = 0;
}

void score_evolve_free(score_evolve *e)
{
    if (e == NULL)
        return;
    free_ws(e);
    score__free(e);
}

static int ensure(score_evolve *e, size_t n)
{
    size_t nd;
    int rc;
    if (n <= e->cap)
        return SCORE_OK;
    if (score__mul_size(n, e->dim, &nd) != 0)
        return score__error(SCORE_E_NOMEM, "score_evolve_init", "%zu rows overflow", n);
    free_ws(e);
    rc = score__adapt_reserve(&e->rows, "score_evolve_init", n);
    if (rc != SCORE_OK)
        return rc;
    e->xw = score__calloc(nd, sizeof(double));
    e->xerr = score__calloc(nd, sizeof(double));
    if (e->xw == NULL || e->xerr == NULL) {
        free_ws(e);
        return score__error(SCORE_E_NOMEM, "score_evolve_init", "workspace for %zu rows", n);
    }
    e->cap = n;
    return SCORE_OK;
}

int score_evolve_init_ex(score_evolve *e, double h0, size_t row0, size_t n, const double *t0)
{
    int rc;
    if (e == NULL || t0 == NULL)
        return score__error(SCORE_E_INVAL, __func__, "e or t0 is NULL");
    if (n == 0)
        return score__error(SCORE_E_INVAL, __func__, "n is 0");
    if (!isfinite(h0) || h0 < 0.0)
        return score__error(SCORE_E_RANGE, __func__, "h0 = %g must be finite and >= 0", h0);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(t0[i]) || !(t0[i] > 0.0))
            return score__error(SCORE_E_RANGE, __func__, "t0[%zu] = %g must be finite and > 0", i,
                                t0[i]);
    rc = ensure(e, n);
    if (rc != SCORE_OK)
        return rc;
    e->h0 = h0 > 0.0 ? h0 : SCORE__H_INIT_DEFAULT;
    score__adapt_start(&e->rows, SCORE__ADAPT_TRACK_T, n, row0, t0, e->h0);
    e->nfe = e->fixed_steps = 0;
    e->noise_base = 0;
    e->noise_stride = 1;
    e->ready = 1;
    return SCORE_OK;
}

int score_evolve_init(score_evolve *e, double t0, double h0, size_t n)
{
    int rc;
    if (e == NULL)
        return score__error(SCORE_E_INVAL, __func__, "e is NULL");
    if (n == 0)
        return score__error(SCORE_E_INVAL, __func__, "n is 0");
    if (!isfinite(t0) || !(t0 > 0.0))
        return score__error(SCORE_E_RANGE, __func__, "t0 = %g must be finite and > 0", t0);
    rc = ensure(e, n);
    if (rc != SCORE_OK)
        return rc;
    for (size_t i = 0; i < n; i++)
        e->rows.tmp[i] = t0;
    return score_evolve_init_ex(e, h0, 0, n, e->rows.tmp);
}

int score_evolve_reset(score_evolve *e)
{
    if (e == NULL)
        return score__error(SCORE_E_INVAL, __func__, "e is NULL");
    e->ready = 0;
    e->rows.n = 0;
    e->rows.failed = e->nfe = e->fixed_steps = 0;
    return SCORE_OK;
}

static int check_call(const char *fn, const score_evolve *e, const score_step *step,
                      const score_sde *sde, size_t n, const void *x)
{
    if (e == NULL || step == NULL || sde == NULL || x == NULL)
        return score__error(SCORE_E_INVAL, fn, "NULL argument");
    if (!e->ready)
        return score__error(SCORE_E_INVAL, fn, "evolve not initialised (call score_evolve_init)");
    if (n != e->rows.n)
        return score__error(SCORE_E_SHAPE, fn, "n = %zu but the solve was initialised with %zu",
                            n, e->rows.n);
    if (score_step_dim(step) != e->dim || score_sde_dim(sde) != e->dim)
        return score__error(SCORE_E_SHAPE, fn, "dimensions differ: evolve %zu, step %zu, sde %zu",
                            e->dim, score_step_dim(step), score_sde_dim(sde));
    return SCORE_OK;
}

/* The adaptive system: the step on the sde, rows compacted into xw, error estimate in xerr
 * (float or double as the state). */
static int sys_attempt(void *ctx, const score__adapt *a)
{
    score_evolve *e = ctx;
    size_t dim = e->dim, elem = e->f64 ? sizeof(double) : sizeof(float);
    uint64_t nfe0;
    int rc;
    for (size_t k = 0; k < a->m; k++)
        memcpy((char *)e->xw + k * dim * elem, (const char *)e->x + a->idx[k] * dim * elem,
               dim * elem);
    nfe0 = score_sde_nfe(e->sde);
    rc = e->f64 ? score__step_apply_idx_f64(e->step, e->sde, a->row0, a->idx, a->m, a->t, a->tn,
                                            e->xw, e->xerr, e->rng, 0)
                : score__step_apply_idx(e->step, e->sde, a->row0, a->idx, a->m, a->t, a->tn,
                                        e->xw, e->xerr, e->rng, 0);
    e->nfe += score_sde_nfe(e->sde) - nfe0;
    if (rc != SCORE_OK)
        return rc;
    for (size_t k = 0; k < a->m; k++) {
        size_t o = a->idx[k] * dim, w = k * dim;
        double acc = 0.0;
        for (size_t j = 0; j < dim; j++) {
            if (e->f64) {
                const double *xo = e->x, *xn = e->xw, *xe = e->xerr;
                acc += score__control_term(e->ctl, xo[o + j], xn[w + j], xe[w + j]);
            } else {
                const float *xo = e->x, *xn = e->xw, *xe = e->xerr;
                acc += score__control_term(e->ctl, (double)xo[o + j], (double)xn[w + j],
                                           (double)xe[w + j]);
            }
        }
        a->err[k] = score__control_norm(acc, dim);
    }
    return SCORE_OK;
}

static void sys_accept(void *ctx, const score__adapt *a, size_t k)
{
    score_evolve *e = ctx;
    size_t elem = e->f64 ? sizeof(double) : sizeof(float), row = e->dim * elem;
    memcpy((char *)e->x + a->idx[k] * row, (const char *)e->xw + k * row, row);
}

static void sys_reject(void *ctx, const score__adapt *a, size_t k)
{
    (void)ctx;
    (void)a;
    (void)k;
}

/* One adaptive attempt on a float (f64 = 0) or double state. */
static int adaptive(const char *fn, score_evolve *e, const score_control *c, score_step *step,
                    score_sde *sde, double t1, size_t n, int f64, void *x, const score_rng *rng)
{
    score__control_vals v;
    score__adapt_sys sys = {sys_attempt, sys_accept, sys_reject, NULL, 0};
    int rc = check_call(fn, e, step, sde, n, x);
    if (rc != SCORE_OK)
        return rc;
    if (c == NULL)
        return score__error(SCORE_E_INVAL, fn, "control is NULL");
    if (!(step->type.flags & SCORE_STEP_FLAG_ERROR_ESTIMATE) || step->type.err_order < 1)
        return score__error(SCORE_E_INVAL, fn,
                            "step '%s' has no error estimate: use score_evolve_apply_fixed",
                            step->type.name);
    if (score__step_needs_noise(step))
        return score__error(SCORE_E_INVAL, fn,
                            "adaptive stepping needs a deterministic step ('%s' draws noise)",
                            step->type.name);
    if (!isfinite(t1) || !(t1 > 0.0))
        return score__error(SCORE_E_RANGE, fn, "t1 = %g must be finite and > 0", t1);
    score__control_get(c, &v);
    e->ctl = &v;
    e->step = step;
    e->sde = sde;
    e->rng = rng;
    e->x = x;
    e->f64 = f64;
    sys.ctx = e;
    sys.error_order = step->type.err_order;
    rc = score__adapt_attempt(&e->rows, &sys, &v, sde, t1, fn);
    e->ctl = NULL;
    e->x = NULL;
    return rc;
}

int score_evolve_apply(score_evolve *e, const score_control *c, score_step *step, score_sde *sde,
                       double t1, size_t n, float *x, const score_rng *rng)
{
    return adaptive(__func__, e, c, step, sde, t1, n, 0, x, rng);
}

int score_evolve_apply_f64(score_evolve *e, const score_control *c, score_step *step,
                           score_sde *sde, double t1, size_t n, double *x, const score_rng *rng)
{
    return adaptive(__func__, e, c, step, sde, t1, n, 1, x, rng);
}

int score__evolve_set_noise(score_evolve *e, uint64_t base, uint64_t stride)
{
    if (e == NULL || !e->ready)
        return score__error(SCORE_E_INVAL, __func__, "evolve not initialised");
    e->noise_base = base;
    e->noise_stride = stride;
    return SCORE_OK;
}

int score__evolve_step(score_evolve *e, score_step *step, score_sde *sde, double t_next,
                       size_t n, int f64, void *x, const score_rng *rng, uint64_t slot,
                       int advance)
{
    const char *fn = advance ? (f64 ? "score_evolve_apply_fixed_f64" : "score_evolve_apply_fixed")
                             : "score_evolve_correct";
    uint64_t nfe0, counter;
    int rc = check_call(fn, e, step, sde, n, x);
    if (rc != SCORE_OK)
        return rc;
    if (!isfinite(t_next) || t_next < 0.0)
        return score__error(SCORE_E_RANGE, fn, "t_next = %g must be finite and >= 0", t_next);
    for (size_t i = 0; i < n; i++)
        e->rows.tn[i] = t_next;
    nfe0 = score_sde_nfe(sde);
    counter = e->noise_base + e->fixed_steps * e->noise_stride + slot;
    rc = f64 ? score_step_apply_ex_f64(step, sde, e->rows.row0, n, e->rows.pos, e->rows.tn, x,
                                       NULL, rng, counter)
             : score_step_apply_ex(step, sde, e->rows.row0, n, e->rows.pos, e->rows.tn, x, NULL,
                                   rng, counter);
    e->nfe += score_sde_nfe(sde) - nfe0;
    if (rc != SCORE_OK || !advance)
        return rc;
    for (size_t i = 0; i < n; i++)
        e->rows.pos[i] = t_next;
    e->fixed_steps++;
    return SCORE_OK;
}

int score_evolve_apply_fixed(score_evolve *e, score_step *step, score_sde *sde, double t_next,
                             size_t n, float *x, const score_rng *rng)
{
    return score__evolve_step(e, step, sde, t_next, n, 0, x, rng, 0, 1);
}

int score_evolve_apply_fixed_f64(score_evolve *e, score_step *step, score_sde *sde,
                                 double t_next, size_t n, double *x, const score_rng *rng)
{
    return score__evolve_step(e, step, sde, t_next, n, 1, x, rng, 0, 1);
}

int score_evolve_get_t(const score_evolve *e, size_t n, double *t_out)
{
    if (e == NULL || t_out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "e or t_out is NULL");
    if (!e->ready)
        return score__error(SCORE_E_INVAL, __func__, "evolve not initialised");
    if (n != e->rows.n)
        return score__error(SCORE_E_SHAPE, __func__, "n = %zu, solve has %zu rows", n,
                            e->rows.n);
    memcpy(t_out, e->rows.pos, n * sizeof(double));
    return SCORE_OK;
}

int score_evolve_get_h(const score_evolve *e, size_t n, double *h_out)
{
    if (e == NULL || h_out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "e or h_out is NULL");
    if (!e->ready)
        return score__error(SCORE_E_INVAL, __func__, "evolve not initialised");
    if (n != e->rows.n)
        return score__error(SCORE_E_SHAPE, __func__, "n = %zu, solve has %zu rows", n,
                            e->rows.n);
    memcpy(h_out, e->rows.h, n * sizeof(double));
    return SCORE_OK;
}

uint64_t score_evolve_get_steps(const score_evolve *e)
{
    if (e == NULL || !e->ready)
        return 0;
    return score__adapt_max_steps(&e->rows) + e->fixed_steps;
}

uint64_t score_evolve_get_failed_steps(const score_evolve *e)
{
    return e == NULL ? 0 : e->rows.failed;
}

uint64_t score_evolve_get_nfe(const score_evolve *e)
{
    return e == NULL ? 0 : e->nfe;
}
