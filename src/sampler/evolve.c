/* Evolve: per-row adaptive stepping in lambda with an embedded error estimate, and fixed
 * stepping over a grid. */
#include <math.h>
#include <string.h>

#include "step-priv.h"
#include "libscore/evolve.h"

#define SCORE__MAX_DIM ((size_t)1 << 24)
#define H_DEFAULT 0.05

struct score_evolve {
    size_t dim, cap, n, row0;
    int ready;
    double h0;
    double *t, *h;
    uint64_t *row_steps;
    unsigned char *done;
    uint64_t failed, nfe, fixed_steps;
    /* scratch */
    size_t *idx;
    double *ta, *tna, *lam, *lamn, *err, *tmp;
    float *xw, *xerr;
};

int score_evolve_new(score_evolve **out, size_t dim)
{
    score_evolve *e;
    if (out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "out is NULL");
    *out = NULL;
    if (dim == 0 || dim > SCORE__MAX_DIM)
        return score__error(SCORE_E_RANGE, __func__, "dim %zu not in [1, 2^24]", dim);
    e = score__calloc(1, sizeof *e);
    if (e == NULL)
        return score__error(SCORE_E_NOMEM, __func__, "allocation failed");
    e->dim = dim;
    *out = e;
    return SCORE_OK;
}

static void free_ws(score_evolve *e)
{
    score__free(e->t);
    score__free(e->h);
    score__free(e->row_steps);
    score__free(e->done);
    score__free(e->idx);
    score__free(e->ta);
    score__free(e->tna);
    score__free(e->lam);
    score__free(e->lamn);
    score__free(e->err);
    score__free(e->tmp);
    score__free(e->xw);
    score__free(e->xerr);
    e->t = e->h = e->ta = e->tna = e->lam = e->lamn = e->err = e->tmp = NULL;
    e->row_steps = NULL;
    e->done = NULL;
    e->idx = NULL;
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
    if (n <= e->cap)
        return SCORE_OK;
    if (score__mul_size(n, e->dim, &nd) != 0)
        return score__error(SCORE_E_NOMEM, "score_evolve_init", "%zu rows overflow", n);
    free_ws(e);
    e->t = score__calloc(n, sizeof(double));
    e->h = score__calloc(n, sizeof(double));
    e->row_steps = score__calloc(n, sizeof(uint64_t));
    e->done = score__calloc(n, 1);
    e->idx = score__calloc(n, sizeof(size_t));
    e->ta = score__calloc(n, sizeof(double));
    e->tna = score__calloc(n, sizeof(double));
    e->lam = score__calloc(n, sizeof(double));
    e->lamn = score__calloc(n, sizeof(double));
    e->err = score__calloc(n, sizeof(double));
    e->tmp = score__calloc(n, sizeof(double));
    e->xw = score__calloc(nd, sizeof(float));
    e->xerr = score__calloc(nd, sizeof(float));
    if (!e->t || !e->h || !e->row_steps || !e->done || !e->idx || !e->ta || !e->tna ||
        !e->lam || !e->lamn || !e->err || !e->tmp || !e->xw || !e->xerr) {
        free_ws(e);
        return score__error(SCORE_E_NOMEM, "score_evolve_init", "workspace for %zu rows", n);
    }
    e->cap = n;
    return SCORE_OK;
}

int score_evolve_init_ex(score_evolve *e, size_t n, const double *t0, double h0, size_t row0)
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
    e->n = n;
    e->row0 = row0;
    e->h0 = h0 > 0.0 ? h0 : H_DEFAULT;
    for (size_t i = 0; i < n; i++) {
        e->t[i] = t0[i];
        e->h[i] = e->h0;
        e->row_steps[i] = 0;
        e->done[i] = 0;
    }
    e->failed = e->nfe = e->fixed_steps = 0;
    e->ready = 1;
    return SCORE_OK;
}

int score_evolve_init(score_evolve *e, size_t n, double t0, double h0)
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
        e->tmp[i] = t0;
    return score_evolve_init_ex(e, n, e->tmp, h0, 0);
}

int score_evolve_reset(score_evolve *e)
{
    if (e == NULL)
        return score__error(SCORE_E_INVAL, __func__, "e is NULL");
    e->ready = 0;
    e->n = 0;
    e->failed = e->nfe = e->fixed_steps = 0;
    return SCORE_OK;
}

static int check_call(const char *fn, const score_evolve *e, const score_step *step,
                      const score_sde *sde, size_t n, const float *x)
{
    if (e == NULL || step == NULL || sde == NULL || x == NULL)
        return score__error(SCORE_E_INVAL, fn, "NULL argument");
    if (!e->ready)
        return score__error(SCORE_E_INVAL, fn, "evolve not initialised (call score_evolve_init)");
    if (n != e->n)
        return score__error(SCORE_E_SHAPE, fn, "n = %zu but the solve was initialised with %zu",
                            n, e->n);
    if (score_step_dim(step) != e->dim || score_sde_dim(sde) != e->dim)
        return score__error(SCORE_E_SHAPE, fn, "dimensions differ: evolve %zu, step %zu, sde %zu",
                            e->dim, score_step_dim(step), score_sde_dim(sde));
    return SCORE_OK;
}

int score_evolve_apply(score_evolve *e, const score_control *c, score_step *step, score_sde *sde,
                       double t1, size_t n, float *x, const score_rng *rng)
{
    const score_schedule *sched;
    score__control_vals v;
    size_t m = 0, nt = 0, dim;
    uint64_t nfe0;
    int rc, q, all_done = 1;
    rc = check_call(__func__, e, step, sde, n, x);
    if (rc != SCORE_OK)
        return rc;
    if (c == NULL)
        return score__error(SCORE_E_INVAL, __func__, "control is NULL");
    if (!(step->type.flags & SCORE_STEP_FLAG_ERROR_ESTIMATE) || step->type.err_order < 1)
        return score__error(SCORE_E_INVAL, __func__,
                            "step '%s' has no error estimate: use score_evolve_apply_fixed",
                            step->type.name);
    if (score__step_needs_noise(step))
        return score__error(SCORE_E_INVAL, __func__,
                            "adaptive stepping needs a deterministic step ('%s' draws noise)",
                            step->type.name);
    if (!isfinite(t1) || !(t1 > 0.0))
        return score__error(SCORE_E_RANGE, __func__, "t1 = %g must be finite and > 0", t1);
    dim = e->dim;
    sched = score_sde_schedule(sde);
    score__control_get(c, &v);
    q = step->type.err_order;
    /* active rows */
    for (size_t i = 0; i < n; i++) {
        if (e->done[i] || e->t[i] == t1) {
            e->done[i] = 1;
            continue;
        }
        e->idx[m] = i;
        e->ta[m] = e->t[i];
        m++;
    }
    if (m == 0)
        return SCORE_DONE;
    /* proposals in lambda */
    {
        double lam1;
        rc = score_schedule_lambda(sched, 1, &t1, &lam1);
        if (rc == SCORE_OK)
            rc = score_schedule_lambda(sched, m, e->ta, e->lam);
        if (rc != SCORE_OK)
            return rc;
        for (size_t k = 0; k < m; k++) {
            size_t i = e->idx[k];
            double dir = lam1 > e->lam[k] ? 1.0 : -1.0;
            double ln = e->lam[k] + dir * e->h[i];
            if ((dir > 0.0 && ln >= lam1) || (dir < 0.0 && ln <= lam1)) {
                e->lamn[k] = lam1;
                e->tna[k] = t1;
            } else {
                e->lamn[k] = ln;
                e->tmp[nt++] = ln; /* compacted list of interior proposals */
                e->tna[k] = NAN;
            }
        }
        if (nt > 0) {
            rc = score_schedule_t_of_lambda(sched, nt, e->tmp, e->tmp);
            if (rc != SCORE_OK)
                return rc;
            nt = 0;
            for (size_t k = 0; k < m; k++)
                if (isnan(e->tna[k]))
                    e->tna[k] = e->tmp[nt++];
        }
    }
    for (size_t k = 0; k < m; k++)
        memcpy(e->xw + k * dim, x + e->idx[k] * dim, dim * sizeof(float));
    nfe0 = score_sde_nfe(sde);
    rc = score_step_apply_ex(step, sde, m, e->ta, e->tna, e->row0, e->xw, e->xerr, rng, 0);
    e->nfe += score_sde_nfe(sde) - nfe0;
    if (rc != SCORE_OK)
        return rc;
    for (size_t k = 0; k < m; k++) {
        size_t i = e->idx[k];
        const float *xo = x + i * dim, *xn = e->xw + k * dim, *xe = e->xerr + k * dim;
        double acc = 0.0, err, hused = fabs(e->lamn[k] - e->lam[k]);
        int accept;
        for (size_t j = 0; j < dim; j++) {
            double sc = v.atol + v.rtol * fmax(fabs((double)xo[j]), fabs((double)xn[j]));
            double r = (double)xe[j] / sc;
            acc += r * r;
        }
        err = isfinite(acc) ? sqrt(acc / (double)dim) : INFINITY;
        if (!(hused > 0.0) || e->tna[k] == e->ta[k]) {
            /* the step is below the resolution of t */
            return score__error(SCORE_E_NOPROGRESS, "score_evolve_apply",
                                "row %zu: step %g in lambda at t = %.17g does not move t", i,
                                hused, e->ta[k]);
        }
        accept = score__control_propose(&v, q, err, &hused);
        e->h[i] = hused;
        if (accept) {
            memcpy(x + i * dim, xn, dim * sizeof(float));
            e->t[i] = e->tna[k];
            e->row_steps[i]++;
            if (e->t[i] == t1)
                e->done[i] = 1;
        } else {
            e->failed++;
            if (e->h[i] < v.h_min)
                return score__error(SCORE_E_NOPROGRESS, "score_evolve_apply",
                                    "row %zu: step size %g below h_min = %g at t = %.17g", i,
                                    e->h[i], v.h_min, e->t[i]);
        }
        if (!e->done[i])
            all_done = 0;
    }
    for (size_t i = 0; i < n && all_done; i++)
        if (!e->done[i])
            all_done = 0;
    return all_done ? SCORE_DONE : SCORE_OK;
}

int score_evolve_apply_fixed(score_evolve *e, score_step *step, score_sde *sde, double t_next,
                             size_t n, float *x, const score_rng *rng)
{
    uint64_t nfe0;
    int rc = check_call(__func__, e, step, sde, n, x);
    if (rc != SCORE_OK)
        return rc;
    if (!isfinite(t_next) || t_next < 0.0)
        return score__error(SCORE_E_RANGE, __func__, "t_next = %g must be finite and >= 0",
                            t_next);
    for (size_t i = 0; i < n; i++)
        e->tna[i] = t_next;
    nfe0 = score_sde_nfe(sde);
    rc = score_step_apply_ex(step, sde, n, e->t, e->tna, e->row0, x, NULL, rng, e->fixed_steps);
    e->nfe += score_sde_nfe(sde) - nfe0;
    if (rc != SCORE_OK)
        return rc;
    for (size_t i = 0; i < n; i++)
        e->t[i] = t_next;
    e->fixed_steps++;
    return SCORE_OK;
}

int score_evolve_get_t(const score_evolve *e, size_t n, double *t_out)
{
    if (e == NULL || t_out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "e or t_out is NULL");
    if (!e->ready)
        return score__error(SCORE_E_INVAL, __func__, "evolve not initialised");
    if (n != e->n)
        return score__error(SCORE_E_SHAPE, __func__, "n = %zu, solve has %zu rows", n, e->n);
    memcpy(t_out, e->t, n * sizeof(double));
    return SCORE_OK;
}

int score_evolve_get_h(const score_evolve *e, size_t n, double *h_out)
{
    if (e == NULL || h_out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "e or h_out is NULL");
    if (!e->ready)
        return score__error(SCORE_E_INVAL, __func__, "evolve not initialised");
    if (n != e->n)
        return score__error(SCORE_E_SHAPE, __func__, "n = %zu, solve has %zu rows", n, e->n);
    memcpy(h_out, e->h, n * sizeof(double));
    return SCORE_OK;
}

uint64_t score_evolve_get_steps(const score_evolve *e)
{
    uint64_t mx = 0;
    if (e == NULL || !e->ready)
        return 0;
    for (size_t i = 0; i < e->n; i++)
        if (e->row_steps[i] > mx)
            mx = e->row_steps[i];
    return mx + e->fixed_steps;
}

uint64_t score_evolve_get_failed_steps(const score_evolve *e)
{
    return e == NULL ? 0 : e->failed;
}

uint64_t score_evolve_get_nfe(const score_evolve *e)
{
    return e == NULL ? 0 : e->nfe;
}
