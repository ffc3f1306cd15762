/* Known coordinates of a sampling run: score_sde's imputation semantics.
 *
 * After every update of x (the start, each corrector and predictor step, each adaptive
 * attempt), the known coordinates are set to the known data brought to the current time by
 * the forward process, alpha(t) y + sigma(t) z, with noise z fresh for every (row, update);
 * at the end to y exactly.
 *
 * A step with inner stages (Heun, RK, dopri5, singlestep DPM-Solver) also evaluates the model
 * at points the driver never sees. Rather than giving every step type (built-in and user) a
 * hook between its stages, the sampler installs an input overlay on the sde for the duration
 * of a run (score__sde_set_input()): every evaluation of the sde's evaluation path, whatever
 * step makes it, sees its rows with the known coordinates at alpha(t_eval) y + sigma(t_eval) z
 * with the noise of the update in progress. Stages thus never see stale known values, one rule
 * covers every step type, and the steps stay unchanged. The noise is a pure function of
 * (seed, stream, counter of the update, global row), so results do not depend on how the rows
 * are split into calls.
 *
 * With the sde's moment method (SCORE_OBS_METHOD_MOMENT) none of this runs: the sampler hands
 * the mask and values to the sde as an observation of each row (score__sde_set_known_obs(),
 * sde-inverse.c) and only score__known_finish() sets the known values at the end. */
#include <math.h>
#include <string.h>

#include "core/core-priv.h"
#include "known-priv.h"
#include "rng/rng-priv.h"

void score__known_free(score__known *k)
{
    score__free(k->mask);
    score__free(k->y);
    score__free(k->xe);
    score__free(k->z);
    k->mask = NULL;
    k->y = k->xe = k->z = NULL;
    k->rows = k->cap = 0;
}

int score__known_active(const score__known *k)
{
    return k->rows > 0;
}

int score__known_replaces(const score__known *k)
{
    return k->rows > 0 && !k->moment;
}

int score__known_set(score__known *k, const char *fn, size_t dim, size_t rows,
                     const uint8_t *mask, const float *values)
{
    size_t nd;
    uint8_t *m;
    float *y;
    if (rows == 0) {
        score__free(k->mask);
        score__free(k->y);
        k->mask = NULL;
        k->y = NULL;
        k->rows = 0;
        return SCORE_OK;
    }
    if (mask == NULL || values == NULL)
        return score__error(SCORE_E_INVAL, fn, "mask or values is NULL with n_rows = %zu", rows);
    if ((uint64_t)rows > ((uint64_t)1 << 32))
        return score__error(SCORE_E_RANGE, fn, "n_rows = %zu exceeds 2^32", rows);
    if (score__mul_size(rows, dim, &nd) != 0)
        return score__error(SCORE_E_NOMEM, fn, "%zu rows overflow", rows);
    for (size_t q = 0; q < nd; q++) {
        if (mask[q] > 1)
            return score__error(SCORE_E_INVAL, fn,
                                "mask[%zu] = %u (row %zu, column %zu) is not 0 or 1", q,
                                (unsigned)mask[q], q / dim, q % dim);
        if (mask[q] == 1 && !isfinite(values[q]))
            return score__error(SCORE_E_NUMERIC, fn,
                                "known value %zu (row %zu, column %zu) is not finite", q,
                                q / dim, q % dim);
    }
    m = score__calloc(nd, sizeof *m);
    y = score__calloc(nd, sizeof *y);
    if (m == NULL || y == NULL) {
        score__free(m);
        score__free(y);
        return score__error(SCORE_E_NOMEM, fn, "mask of %zu rows", rows);
    }
    for (size_t q = 0; q < nd; q++) {
        m[q] = mask[q];
        y[q] = mask[q] == 1 ? values[q] : 0.0f;
    }
    score__free(k->mask);
    score__free(k->y);
    k->mask = m;
    k->y = y;
    k->rows = rows;
    k->dim = dim;
    return SCORE_OK;
}

int score__known_begin(score__known *k, const char *fn, const score_rng *rng,
                       const score_schedule *sched, size_t row0, size_t n)
{
    size_t nd;
    if (k->rows > 1 && (row0 >= k->rows || n > k->rows - row0))
        return score__error(SCORE_E_SHAPE, fn,
                            "the known-coordinate mask has %zu rows; the run has rows %zu .. %zu",
                            k->rows, row0, row0 + n - 1);
    if (n > k->cap) {
        if (score__mul_size(n, k->dim, &nd) != 0)
            return score__error(SCORE_E_NOMEM, fn, "%zu rows overflow", n);
        score__free(k->xe);
        k->xe = score__calloc(nd, sizeof(float));
        k->cap = k->xe != NULL ? n : 0;
        if (k->xe == NULL)
            return score__error(SCORE_E_NOMEM, fn, "workspace for %zu rows", n);
    }
    if (k->z == NULL) {
        k->z = score__calloc(k->dim, sizeof(float));
        if (k->z == NULL)
            return score__error(SCORE_E_NOMEM, fn, "workspace of %zu values", k->dim);
    }
    k->rng = rng;
    k->sched = sched;
    k->row0 = row0;
    k->n = n;
    k->counter = 0;
    k->moment = 0;
    return SCORE_OK;
}

int score__known_impose(score__known *k, const char *fn, size_t row0, const size_t *idx,
                        size_t n, double t_all, const double *t, uint64_t counter, float *x)
{
    size_t d = k->dim;
    double al = 1.0, si = 0.0, tprev = -1.0;
    uint64_t c = k->rng->counter + counter;
    if (c >= ((uint64_t)1 << 32))
        return score__error(SCORE_E_RANGE, fn,
                            "noise counter %llu + offset %llu of the known coordinates reaches "
                            "2^32", (unsigned long long)k->rng->counter,
                            (unsigned long long)counter);
    for (size_t i = 0; i < n; i++) {
        size_t r = row0 + (idx != NULL ? idx[i] : i);
        size_t mr = k->rows == 1 ? 0 : r;
        const uint8_t *m = k->mask + mr * d;
        const float *y = k->y + mr * d;
        double ti = t_all >= 0.0 ? t_all : t[i];
        float *xr = x + i * d;
        if (ti != tprev) {
            if (ti == 0.0) {
                al = 1.0;
                si = 0.0;
            } else {
                int rc = score_schedule_alpha_sigma(k->sched, 1, &ti, &al, &si);
                if (rc != SCORE_OK)
                    return rc;
            }
            tprev = ti;
        }
        if (si > 0.0)
            score__rng_normal_at(k->rng, (uint32_t)c, r, 1, SCORE__KNOWN_COL0, d, k->z);
        for (size_t j = 0; j < d; j++) {
            if (m[j] == 0)
                continue;
            xr[j] = si > 0.0 ? (float)(al * (double)y[j] + si * (double)k->z[j]) : y[j];
        }
    }
    return SCORE_OK;
}

void score__known_finish(const score__known *k, size_t n, float *x)
{
    size_t d = k->dim;
    for (size_t i = 0; i < n; i++) {
        size_t mr = k->rows == 1 ? 0 : k->row0 + i;
        const uint8_t *m = k->mask + mr * d;
        const float *y = k->y + mr * d;
        for (size_t j = 0; j < d; j++)
            if (m[j] == 1)
                x[i * d + j] = y[j];
    }
}

int score__known_input(void *ud, const char *fn, size_t n, int has_rows, size_t row0,
                       const size_t *idx, const double *t, const float *x, const float **x_eff)
{
    score__known *k = ud;
    if (!has_rows) {
        /* an evaluation that did not name its rows (a user step type): only a whole batch of
         * the run can be placed */
        if (n != k->n)
            return score__error(SCORE_E_UNSUPPORTED, fn,
                                "known coordinates: an evaluation of %zu rows of a run of %zu "
                                "did not name its rows (score_step_apply_ex's row0)", n, k->n);
        row0 = k->row0;
        idx = NULL;
    }
    if (n > k->cap)
        return score__error(SCORE_E_SHAPE, fn,
                            "known coordinates: an evaluation of %zu rows in a run of %zu", n,
                            k->cap);
    memcpy(k->xe, x, n * k->dim * sizeof(float));
    *x_eff = k->xe;
    return score__known_impose(k, fn, row0, idx, n, -1.0, t, k->counter, k->xe);
}
