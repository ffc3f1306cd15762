/* The per-row adaptive engine: active-row compaction, proposals in lambda clipped to land on
 * the target, the system's attempt, per-row accept / reject with the step-size control, and
 * the h_min / no-progress checks. Used by score_evolve and by the likelihood. */
#include <math.h>
#include <string.h>

#include "adapt-priv.h"
#include "sde/sde-ode-priv.h"

/* The per-row double arrays of the workspace. */
#define ROW_ARRAYS(a)                                                                         \
    {&(a)->pos, &(a)->h, &(a)->t, &(a)->tn, &(a)->lam, &(a)->lamn, &(a)->hstep, &(a)->dir,   \
     &(a)->err, &(a)->tmp}

void score__adapt_release(score__adapt *a)
{
    double **d[] = ROW_ARRAYS(a);
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
        score__free(*d[i]);
        *d[i] = NULL;
    }
    score__free(a->steps);
    score__free(a->done);
    score__free(a->idx);
    a->steps = NULL;
    a->done = NULL;
    a->idx = NULL;
    a->cap = 0;
}

int score__adapt_reserve(score__adapt *a, const char *fn, size_t n)
{
    double **d[] = ROW_ARRAYS(a);
    if (n <= a->cap)
        return SCORE_OK;
    score__adapt_release(a);
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++)
        if ((*d[i] = score__calloc(n, sizeof(double))) == NULL)
            goto nomem;
    a->steps = score__calloc(n, sizeof(uint64_t));
    a->done = score__calloc(n, 1);
    a->idx = score__calloc(n, sizeof(size_t));
    if (a->steps == NULL || a->done == NULL || a->idx == NULL)
        goto nomem;
    a->cap = n;
    return SCORE_OK;
nomem:
    score__adapt_release(a);
    return score__error(SCORE_E_NOMEM, fn, "workspace for %zu rows", n);
}

void score__adapt_start(score__adapt *a, int track, size_t n, size_t row0, const double *pos0,
                        double h0)
{
    a->track = track;
    a->n = n;
    a->row0 = row0;
    a->failed = 0;
    a->m = 0;
    for (size_t i = 0; i < n; i++) {
        a->pos[i] = pos0[i];
        a->h[i] = h0;
        a->steps[i] = 0;
        a->done[i] = 0;
    }
}

uint64_t score__adapt_max_steps(const score__adapt *a)
{
    uint64_t mx = 0;
    for (size_t i = 0; i < a->n; i++)
        if (a->steps[i] > mx)
            mx = a->steps[i];
    return mx;
}

/* Proposals of the active rows: lamn = lam +- h, clipped to land exactly on lam1. With
 * TRACK_T the step taken is the realised |lamn - lam| and the interior end times come from
 * t(lambda); with TRACK_LAMBDA it is h itself. */
static int propose(score__adapt *a, const score_sde *sde, double lam1, double t1)
{
    size_t nt = 0;
    for (size_t k = 0; k < a->m; k++) {
        size_t i = a->idx[k];
        double dir = lam1 > a->lam[k] ? 1.0 : -1.0;
        double ln = a->lam[k] + dir * a->h[i];
        int clipped = (dir > 0.0 && ln >= lam1) || (dir < 0.0 && ln <= lam1);
        a->dir[k] = dir;
        a->lamn[k] = clipped ? lam1 : ln;
        if (a->track == SCORE__ADAPT_TRACK_T) {
            a->hstep[k] = fabs(a->lamn[k] - a->lam[k]);
            a->tn[k] = clipped ? t1 : NAN;
            if (!clipped)
                a->tmp[nt++] = ln; /* compacted list of interior proposals */
        } else if (clipped) {
            /* the last step is lam - lam1; it lands on lam1 unless rounding leaves it short
             * (then the row takes one more, tiny, step) */
            double hs = fabs(a->lam[k] - lam1), l2 = a->lam[k] + dir * hs;
            a->hstep[k] = hs;
            a->lamn[k] = (dir > 0.0 && l2 >= lam1) || (dir < 0.0 && l2 <= lam1) ? lam1 : l2;
        } else {
            a->hstep[k] = a->h[i];
        }
    }
    if (nt > 0) {
        int rc = score__sde_t_of_lambda(sde, nt, a->tmp, a->tmp);
        if (rc != SCORE_OK)
            return rc;
        nt = 0;
        for (size_t k = 0; k < a->m; k++)
            if (isnan(a->tn[k]))
                a->tn[k] = a->tmp[nt++];
    }
    return SCORE_OK;
}

/* Compacts the rows not yet at target and computes their lambda (and, with TRACK_T, the
 * target's lambda). */
static int activate(score__adapt *a, const score_sde *sde, double target, double *lam1)
{
    size_t m = 0;
    int rc;
    for (size_t i = 0; i < a->n; i++) {
        if (a->done[i] || a->pos[i] == target) {
            a->done[i] = 1;
            continue;
        }
        a->idx[m++] = i;
    }
    a->m = m;
    if (m == 0)
        return SCORE_OK;
    if (a->track == SCORE__ADAPT_TRACK_LAMBDA) {
        for (size_t k = 0; k < m; k++)
            a->lam[k] = a->pos[a->idx[k]];
        *lam1 = target;
        return SCORE_OK;
    }
    for (size_t k = 0; k < m; k++)
        a->t[k] = a->pos[a->idx[k]];
    rc = score__sde_lambda(sde, 1, &target, lam1);
    if (rc == SCORE_OK)
        rc = score__sde_lambda(sde, m, a->t, a->lam);
    return rc;
}

/* SCORE_CONTROL_NORM_BATCH: every active row gets the RMS over all of them, the RMS over
 * every value of the batch (each row's error is the RMS of its own values, all rows have the
 * same width). */
static void batch_error(score__adapt *a)
{
    double acc = 0.0;
    for (size_t k = 0; k < a->m; k++)
        acc += a->err[k] * a->err[k];
    acc = score__control_norm(acc, a->m);
    for (size_t k = 0; k < a->m; k++)
        a->err[k] = acc;
}

int score__adapt_attempt(score__adapt *a, const score__adapt_sys *sys,
                         const score__control_vals *v, const score_sde *sde, double target,
                         const char *fn)
{
    const char *var = a->track == SCORE__ADAPT_TRACK_T ? "t" : "lambda";
    double lam1 = 0.0;
    int rc, all_done = 1;
    rc = activate(a, sde, target, &lam1);
    if (rc != SCORE_OK)
        return rc;
    if (a->m == 0)
        return SCORE_DONE;
    rc = propose(a, sde, lam1, target);
    if (rc == SCORE_OK)
        rc = sys->attempt(sys->ctx, a);
    if (rc != SCORE_OK)
        return rc;
    if (v->batch_norm)
        batch_error(a);
    for (size_t k = 0; k < a->m; k++) {
        size_t i = a->idx[k];
        double hused = a->hstep[k];
        if (!(hused > 0.0) || (a->track == SCORE__ADAPT_TRACK_T && a->tn[k] == a->t[k]))
            return score__error(SCORE_E_NOPROGRESS, fn,
                                "row %zu: step %g in lambda at %s = %.17g does not move %s",
                                a->row0 + i, hused, var, a->pos[i], var);
        if (score__control_propose(v, sys->error_order, a->err[k], &hused)) {
            a->h[i] = hused;
            sys->accept(sys->ctx, a, k);
            a->pos[i] = a->track == SCORE__ADAPT_TRACK_T ? a->tn[k] : a->lamn[k];
            a->steps[i]++;
            if (a->pos[i] == target)
                a->done[i] = 1;
        } else {
            a->h[i] = hused;
            sys->reject(sys->ctx, a, k);
            a->failed++;
            if (a->h[i] < v->h_min)
                return score__error(SCORE_E_NOPROGRESS, fn,
                                    "row %zu: step size %g below h_min = %g at %s = %.17g",
                                    a->row0 + i, a->h[i], v->h_min, var, a->pos[i]);
        }
        if (!a->done[i])
            all_done = 0;
    }
    for (size_t i = 0; i < a->n && all_done; i++)
        if (!a->done[i])
            all_done = 0;
    return all_done ? SCORE_DONE : SCORE_OK;
}
