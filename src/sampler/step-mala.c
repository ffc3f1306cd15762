/* The "mala" step: Metropolis-adjusted Langevin at the fixed time t of the call (a corrector),
 * for an sde whose score has an energy U (score_sde_energy(): energy models, analytic models,
 * weighted sums of them). Per row, with step e:
 *   y = x + e s(x) + sqrt(2 e) z,                        z: the step's normals (block 0)
 *   log a = U(x) - U(y) + (|y - x - e s(x)|^2 - |x - y - e s(y)|^2) / (4 e),
 *   x' = y when log u < log a, else x,                   u: the uniform of the row's column
 *                                                           after the normals' Philox blocks,
 * so the chain's invariant law is exp(-U) exactly, whatever e (unadjusted Langevin is biased by
 * O(e)). Every random number is a function of (seed, counter, global row): rows are independent
 * of the batch split. e = STEP_SIZE when it is > 0, else 2 alpha_i (snr sigma(t))^2 (alpha_i =
 * alpha(t)^2 / alpha(t')^2 for the next grid time 0 < t' < t, else 1: the rule of the langevin
 * and ald correctors), times the step's scale (1 unless adapted: score_step_mala_set_adaptation()). The step counts accepted and proposed
 * moves, in total and per level (consecutive calls at the same time t of the first row). */
#include <math.h>
#include <string.h>

#include "libscore/energy.h"
#include "rng/rng-priv.h"
#include "sde/sde-priv.h"
#include "step-priv.h"

struct score__mala_level {
    double t;
    uint64_t acc, prop;
};

/* per-row arrays (indices into st->dbl) */
enum { M_A, M_SG, M_EPS, M_EX, M_EY, M_U, M_AN, M_SGN };

void score__step_mala_reset(score_step *st)
{
    st->mala_scale = 1.0;
    st->mala_calls = 0;
    st->mala_acc = 0;
    st->mala_prop = 0;
    st->mala_nlev = 0;
}

/* The energy of the call's rows at their times, through the sde with the rows' global numbers. */
static int energy(score_step *st, const score__step_call *c, const float *x, double *E)
{
    int rc;
    score__sde_set_rows(c->sde, c->n, c->row0, c->idx);
    rc = score_sde_energy(c->sde, c->n, c->t, x, E);
    score__sde_set_rows(c->sde, 0, 0, NULL);
    st->nfe++;
    if (rc == SCORE_E_UNSUPPORTED) {
        char msg[256];
        strncpy(msg, score_last_error_message(), sizeof msg - 1);
        msg[sizeof msg - 1] = '\0';
        return score__error(rc, "score_step_apply", "the mala step needs the energy of the "
                            "score to accept or reject its moves: %s", msg);
    }
    return rc;
}

/* Records the call's counts under its level (a new level when t differs from the last one's). */
static int record(score_step *st, double t, uint64_t acc, uint64_t prop)
{
    struct score__mala_level *L;
    if (st->mala_nlev == 0 || st->mala_lev[st->mala_nlev - 1].t != t) {
        if (st->mala_nlev == st->mala_caplev) {
            size_t cap = st->mala_caplev ? 2 * st->mala_caplev : 64;
            struct score__mala_level *q = score__calloc(cap, sizeof *q);
            if (q == NULL)
                return score__error(SCORE_E_NOMEM, "score_step_apply", "allocation failed");
            if (st->mala_nlev > 0)
                memcpy(q, st->mala_lev, st->mala_nlev * sizeof *q);
            score__free(st->mala_lev);
            st->mala_lev = q;
            st->mala_caplev = cap;
        }
        L = &st->mala_lev[st->mala_nlev++];
        L->t = t;
        L->acc = 0;
        L->prop = 0;
    }
    L = &st->mala_lev[st->mala_nlev - 1];
    L->acc += acc;
    L->prop += prop;
    st->mala_acc += acc;
    st->mala_prop += prop;
    return SCORE_OK;
}

int score__step_mala(score_step *st, const score__step_call *c)
{
    const size_t n = c->n, dim = c->dim, ucol = (dim + 3) / 4 * 4;
    float *sx = st->buf[0], *z = st->buf[1], *y = st->buf[2], *sy = st->buf[3];
    double *eps = st->dbl[M_EPS], *ex = st->dbl[M_EX], *ey = st->dbl[M_EY], *u = st->dbl[M_U];
    double fixed = SCORE__STEP_F64(st, SCORE_STEP_PARAM_STEP_SIZE);
    double snr = SCORE__STEP_F64(st, SCORE_STEP_PARAM_SNR);
    uint64_t acc = 0;
    int rc = energy(st, c, c->x, ex);
    if (rc == SCORE_OK)
        rc = score__step_alpha_sigma(c, n, c->t, st->dbl[M_A], st->dbl[M_SG]);
    if (rc == SCORE_OK)
        rc = score__step_alpha_sigma(c, n, c->tn, st->dbl[M_AN], st->dbl[M_SGN]);
    if (rc == SCORE_OK)
        rc = score__step_score(st, c, c->t, c->x, sx);
    if (rc != SCORE_OK)
        return rc;
    score__step_noise(c, 0, z);
    score__rng_uniform_f64_at(c->rng, (uint32_t)(c->rng->counter + c->counter), c->row0, n, ucol,
                              1, u);
    for (size_t i = 0; i < n; i++) {
        double q = snr * st->dbl[M_SG][i], ai = 1.0, e, amp;
        if (c->tn[i] > 0.0 && c->tn[i] < c->t[i]) {
            double r = st->dbl[M_A][i] / st->dbl[M_AN][i];
            ai = r * r;
        }
        e = (fixed > 0.0 ? fixed : 2.0 * ai * q * q) * st->mala_scale;
        amp = sqrt(2.0 * e);
        eps[i] = e;
        for (size_t j = 0; j < dim; j++) {
            size_t k = i * dim + j;
            y[k] = (float)((double)c->x[k] + e * (double)sx[k] + amp * (double)z[k]);
        }
    }
    if (!score__step_finite(n * dim, y))
        return score__error(SCORE_E_NUMERIC, "score_step_apply", "a mala proposal is not finite");
    rc = energy(st, c, y, ey);
    if (rc == SCORE_OK)
        rc = score__step_score(st, c, c->t, y, sy);
    if (rc != SCORE_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        double fwd = 0.0, bwd = 0.0, la;
        for (size_t j = 0; j < dim; j++) {
            size_t k = i * dim + j;
            double d = (double)y[k] - (double)c->x[k];
            double a = d - eps[i] * (double)sx[k], b = -d - eps[i] * (double)sy[k];
            fwd += a * a;
            bwd += b * b;
        }
        la = ex[i] - ey[i] + (fwd - bwd) / (4.0 * eps[i]);
        if (log(u[i]) < la) {
            memcpy(c->x + i * dim, y + i * dim, dim * sizeof *y);
            acc++;
        }
    }
    if ((rc = record(st, c->t[0], acc, n)) != SCORE_OK)
        return rc;
    if (st->mala_calls < st->mala_warmup) {
        double rate = (double)acc / (double)n;
        st->mala_scale *= exp((rate - st->mala_target) / sqrt((double)st->mala_calls + 1.0));
    }
    st->mala_calls++;
    return SCORE_OK;
}

/* ---- public setters and getters (energy.h) ---- */

static int check_mala(const char *fn, const score_step *step)
{
    if (step == NULL)
        return score__error(SCORE_E_INVAL, fn, "step is NULL");
    if (step->type.kind != SCORE_STEP_MALA)
        return score__error(SCORE_E_UNSUPPORTED, fn, "'%s' is not a mala step", step->type.name);
    return SCORE_OK;
}

int score_step_mala_set_adaptation(score_step *step, uint64_t warmup_calls, double target)
{
    int rc = check_mala(__func__, step);
    if (rc != SCORE_OK)
        return rc;
    if (!(target >= 0.01 && target <= 0.99))
        return score__error(SCORE_E_RANGE, __func__, "target %g not in [0.01, 0.99]", target);
    if (warmup_calls > (uint64_t)1 << 40)
        return score__error(SCORE_E_RANGE, __func__, "warmup_calls %llu > 2^40",
                            (unsigned long long)warmup_calls);
    step->mala_warmup = warmup_calls;
    step->mala_target = target;
    return SCORE_OK;
}

int score_step_mala_acceptance(const score_step *step, uint64_t *accepted, uint64_t *proposed,
                               double *scale)
{
    int rc = check_mala(__func__, step);
    if (rc != SCORE_OK)
        return rc;
    if (accepted != NULL)
        *accepted = step->mala_acc;
    if (proposed != NULL)
        *proposed = step->mala_prop;
    if (scale != NULL)
        *scale = step->mala_scale;
    return SCORE_OK;
}

size_t score_step_mala_level_count(const score_step *step)
{
    return step != NULL && step->type.kind == SCORE_STEP_MALA ? step->mala_nlev : 0;
}

int score_step_mala_level(const score_step *step, size_t i, double *t, uint64_t *accepted,
                          uint64_t *proposed)
{
    int rc = check_mala(__func__, step);
    if (rc != SCORE_OK)
        return rc;
    if (i >= step->mala_nlev)
        return score__error(SCORE_E_RANGE, __func__, "level %zu of %zu", i, step->mala_nlev);
    if (t != NULL)
        *t = step->mala_lev[i].t;
    if (accepted != NULL)
        *accepted = step->mala_lev[i].acc;
    if (proposed != NULL)
        *proposed = step->mala_lev[i].prop;
    return SCORE_OK;
}
