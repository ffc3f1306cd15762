/* Model evaluations, the multistep history and the finiteness check of the built-in steps,
 * over the state type of step-real.h (compiled for a float state and, from step-eval-f64.c,
 * for a double state). */
#include <string.h>

#include "rng/rng-priv.h"
#include "sde/sde-priv.h"
#include "step-real.h"

int SCORE__R(score__step_finite)(size_t n, const score__real *x)
{
#ifdef SCORE__STEP_REAL64
    return score__all_finite_f64(n, x);
#else
    return score__all_finite_f32(n, x);
#endif
}

/* One model evaluation of the call's rows (data prediction or score), with the rows' global
 * numbers given to the model: a model whose row results depend on the shape of its BLAS
 * products (the MLP) then evaluates them in panels aligned to these numbers, so that a row's
 * result does not depend on how the rows are split into calls (model/mlp.c). A double state
 * is evaluated by score__sde_eval_f64() (in double when the model can). */
static int evaluate(score_step *st, const score__step_call *c, int want_x0, const double *t,
                    const score__real *x, score__real *out)
{
    int rc;
    score__sde_set_rows(c->sde, c->n, c->row0, c->idx);
#ifdef SCORE__STEP_REAL64
    rc = score__sde_eval_f64(c->sde, want_x0 ? SCORE__SDE_WANT_X0 : SCORE__SDE_WANT_SCORE, c->n,
                             t, x, out);
#else
    rc = want_x0 ? score_sde_x0(c->sde, c->n, t, x, out)
                 : score_sde_score(c->sde, c->n, t, x, out);
#endif
    score__sde_set_rows(c->sde, 0, 0, NULL);
    st->nfe++;
    return rc;
}

int SCORE__R(score__step_x0)(score_step *st, const score__step_call *c, const double *t,
                             const score__real *x, score__real *out)
{
    return evaluate(st, c, 1, t, x, out);
}

int SCORE__R(score__step_k)(score_step *st, const score__step_call *c, const double *t,
                            const double *a, const double *s, const score__real *x,
                            score__real *d_scratch, score__real *k)
{
    size_t dim = c->dim;
    int rc = SCORE__R(score__step_x0)(st, c, t, x, d_scratch);
    if (rc != SCORE_OK)
        return rc;
    for (size_t i = 0; i < c->n; i++) {
        double ia = 1.0 / a[i], is = 1.0 / s[i];
        const score__real *xr = x + i * dim, *dr = d_scratch + i * dim;
        score__real *kr = k + i * dim;
        for (size_t j = 0; j < dim; j++)
            kr[j] = (score__real)(((double)xr[j] * ia - (double)dr[j]) * is);
    }
    return SCORE_OK;
}

/* The output m (n*dim values) and lambda of this call become the newest of the step's
 * `depth` (<= SCORE__STEP_NHIST) history entries; avail entries were usable before. */
void SCORE__R(score__step_push_history)(score_step *st, const score__step_call *c,
                                        const score__real *m, const double *lam, int avail,
                                        int depth)
{
    void *d = st->hist_d[depth - 1];
    double *l = st->hist_lam[depth - 1];
    for (int k = depth - 1; k > 0; k--) {
        st->hist_d[k] = st->hist_d[k - 1];
        st->hist_lam[k] = st->hist_lam[k - 1];
    }
    st->hist_d[0] = d;
    st->hist_lam[0] = l;
    memcpy(d, m, c->n * c->dim * sizeof(score__real));
    memcpy(l, lam, c->n * sizeof(double));
    memcpy(st->hist_tend, c->tn, c->n * sizeof(double));
    st->hist_count = avail + 1 < depth ? avail + 1 : depth;
    st->hist_n = c->n;
    st->hist_row0 = c->row0;
}

int SCORE__R(score__step_score)(score_step *st, const score__step_call *c, const double *t,
                                const score__real *x, score__real *out)
{
    return evaluate(st, c, 0, t, x, out);
}

#ifdef SCORE__STEP_REAL64
/* The float normals of score__step_noise() widened in place: the floats are drawn into the
 * front of out and widened from the last one down (value i is read before the double written
 * at i overwrites floats 2i and 2i + 1, which lie at or above i). */
static void widen(size_t nd, double *out)
{
    const float *f = (const float *)(const void *)out;
    for (size_t q = nd; q-- > 0;)
        out[q] = (double)f[q];
}

void score__step_noise_f64(const score__step_call *c, size_t block, double *out)
{
    score__step_noise(c, block, (float *)(void *)out);
    widen(c->n * c->dim, out);
}

void score__step_noise_iv_f64(const score__step_call *c, size_t block, const double *t0,
                              const double *t1, double *out)
{
    score__step_noise_iv(c, block, t0, t1, (float *)(void *)out);
    widen(c->n * c->dim, out);
}

int score__step_none_f64(score_step *st, const score__step_call *c)
{
    (void)st;
    (void)c;
    return SCORE_OK;
}
#endif
