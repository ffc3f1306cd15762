/* Twisted sequential Monte Carlo (SMC) for conditional sampling: score_sampler_run() with
 * SCORE_SAMPLER_PARAM_PARTICLES = K > 1 (doc/controllable-generation.md, "Twisted SMC"; the
 * method of the Twisted Diffusion Sampler, Wu et al. 2023).
 *
 * Every output row has K particles. On the grid t_0 > ... > t_L > 0 (optionally followed by
 * t = 0) the model's reverse chain is p(x_0) prod_k p(x_{k+1} | x_k): the prior draw at t_0 and
 * the Gaussian transition N(mu_p, amp^2 I) of the predictor's type (em, reverse-diffusion,
 * ancestral) with the model's score, mu_p = ax x + cs s(x). The twist p~_k(y | x_k) is the
 * sde's Gaussian approximation of p(y | x_t) (the value of the likelihood whose gradient the
 * sde's observation term adds to the score; known coordinates use the moment method's). The
 * proposal q is the same transition with the twisted score s + grad, so mu_q = mu_p + cs grad,
 * and with x' = mu_q + amp z
 *
 *     log p(x' | x) - log q(x' | x) = -(cs / amp) z . grad - cs^2 |grad|^2 / (2 amp^2).
 *
 * Weights: p~_0(y | x_0) at the start, then per step p q^-1 p~_{k+1}(y | x_{k+1}) /
 * p~_k(y | x_k), so the intermediate twists cancel and the target is
 * - an observation: p(x_{0:L}) p~_L(y | x_L), with p~_L -> N(y; A x0_hat(x_L), R) as t_L -> 0;
 * - known coordinates: p(x_{0:L}) with the known coordinates of x_L equal to y. On the last
 *   step they are set to y instead of sampled; their factor is the chain's own density there,
 *   N(y_j; mu_p_j, amp^2), the ratio p / q runs over the other coordinates, and p~_L is not
 *   used. The target is then the model's p_{t_L}(x_unknown | x_known = y) exactly.
 * A row whose effective sample size falls below ESS_THRESHOLD K resamples its particles
 * (systematic resampling, weights reset); at the end one particle per row is drawn by its
 * weight, then the optional final denoise (t_L -> 0, x0_hat of the sde) and the known values.
 *
 * Noise, as pure functions of (seed, stream, counter, output row) so that results do not depend
 * on the batch split: with c0 the generator's counter, the prior draw at counter c0 and the
 * proposal of step k at counter c0 + 1 + k, output row r, columns j dim .. j dim + dim - 1 for
 * particle j; the resampling uniform of step k at counter c0 + 1 + k (the one after the start:
 * c0), row r, column 2^34; the final draw at counter c0 + 1 + L. Particle j of row r is
 * evaluated as global row r K + j (the MLP's row panels; the known coordinates' mask row r). */
#include <math.h>
#include <string.h>

#include "rng/rng-priv.h"
#include "sampler-priv.h"
#include "sde/sde-priv.h"

/* Particles evaluated per batch: a block holds max(1, SMC_BLOCK / K) output rows. */
#define SMC_BLOCK 4096
/* Column of the resampling uniforms, far from the particles' noise columns. */
#define SMC_COL_U ((size_t)1 << 34)
#define LOG_2PI 1.8378770664093454836

void score__smc_free(score__smc *w)
{
    score__free(w->x);
    score__free(w->s);
    score__free(w->g);
    score__free(w->x2);
    score__free(w->s2);
    score__free(w->g2);
    score__free(w->z);
    score__free(w->lt);
    score__free(w->lt2);
    score__free(w->lw);
    score__free(w->t);
    score__free(w->anc);
    memset(w, 0, sizeof *w);
}

static int smc_grow(const char *fn, score__smc *w, size_t P, size_t d)
{
    size_t pd;
    if (P <= w->cap)
        return SCORE_OK;
    if (score__mul_size(P, d, &pd) != 0)
        return score__error(SCORE_E_NOMEM, fn, "%zu particles overflow", P);
    score__smc_free(w);
    w->x = score__calloc(pd, sizeof(float));
    w->s = score__calloc(pd, sizeof(float));
    w->g = score__calloc(pd, sizeof(float));
    w->x2 = score__calloc(pd, sizeof(float));
    w->s2 = score__calloc(pd, sizeof(float));
    w->g2 = score__calloc(pd, sizeof(float));
    w->z = score__calloc(pd, sizeof(float));
    w->lt = score__calloc(P, sizeof(double));
    w->lt2 = score__calloc(P, sizeof(double));
    w->lw = score__calloc(P, sizeof(double));
    w->t = score__calloc(P, sizeof(double));
    w->anc = score__calloc(P, sizeof(size_t));
    if (w->x == NULL || w->s == NULL || w->g == NULL || w->x2 == NULL || w->s2 == NULL ||
        w->g2 == NULL || w->z == NULL || w->lt == NULL || w->lt2 == NULL || w->lw == NULL ||
        w->t == NULL || w->anc == NULL) {
        score__smc_free(w);
        return score__error(SCORE_E_NOMEM, fn, "workspace of %zu particles", P);
    }
    w->cap = P;
    return SCORE_OK;
}

/* The proposal of one step: mean ax x + cs s, standard deviation amp. */
typedef struct smc_coef {
    double ax, cs, amp;
} smc_coef;

/* The coefficients of the predictor's transition from t to tn (both > 0), as its step type
 * forms them (step-sde.c). */
static int step_coefs(const char *fn, const score_sampler *s, const score_schedule *sched,
                      double t, double tn, smc_coef *c)
{
    int kind = s->pred->type.kind, rc;
    if (kind == SCORE_STEP_EULER_MARUYAMA) {
        double f, g, dt = tn - t;
        if ((rc = score_schedule_sde_coefs(sched, 1, &t, &f, &g)) != SCORE_OK)
            return rc;
        c->ax = 1.0 + f * dt;
        c->cs = -g * g * dt;
        c->amp = g * sqrt(-dt);
    } else {
        double a, sg, an, sgn, f, G;
        int64_t N = PI(s, SCORE_SAMPLER_PARAM_DISC_N);
        rc = score_schedule_alpha_sigma(sched, 1, &t, &a, &sg);
        if (rc == SCORE_OK)
            rc = score_schedule_alpha_sigma(sched, 1, &tn, &an, &sgn);
        if (rc == SCORE_OK && N > 0)
            rc = score_schedule_discretize(sched, (size_t)N, 1, &t, &f, &G);
        if (rc != SCORE_OK)
            return rc;
        if (N <= 0) {
            double r = a / an;
            f = r - 1.0;
            G = sqrt(fmax(sg * sg - r * r * sgn * sgn, 0.0));
        }
        if (kind == SCORE_STEP_REVERSE_DIFFUSION) {
            c->ax = 1.0 - f;
            c->cs = G * G;
            c->amp = G;
        } else if (score_schedule_is_variance_exploding(sched) == 1) {
            c->ax = 1.0;
            c->cs = G * G;
            c->amp = sqrt(fmax(sg * sg - G * G, 0.0) * G * G) / sg;
        } else {
            c->ax = 1.0 / (1.0 + f);
            c->cs = c->ax * G * G;
            c->amp = G;
        }
    }
    if (!(c->amp > 0.0) || !isfinite(c->amp) || !isfinite(c->ax) || !isfinite(c->cs))
        return score__error(SCORE_E_NUMERIC, fn,
                            "twisted SMC: the '%s' transition from t = %.9g to %.9g has noise std "
                            "%g: its density (the weights) is not defined", s->pred->type.name,
                            t, tn, c->amp);
    return SCORE_OK;
}

/* The twisted scores of the P particles x at time t into S, their log twists into w->lt and
 * the twist terms into w->g (the sde's observation term writes them). */
static int eval(const char *fn, score_sde *sde, score__smc *w, size_t P, double t,
                const float *x, float *S)
{
    int rc;
    for (size_t p = 0; p < P; p++)
        w->t[p] = t;
    score__sde_set_twist(sde, w->lt, w->g);
    if ((rc = score_sde_score(sde, P, w->t, x, S)) != SCORE_OK)
        return rc;
    for (size_t p = 0; p < P; p++)
        if (!isfinite(w->lt[p]))
            return score__error(SCORE_E_NUMERIC, fn,
                                "twisted SMC: the log twist of particle %zu at t = %g is %g", p,
                                t, w->lt[p]);
    return SCORE_OK;
}

/* Largest log weight, sum of exp(lw - max) and effective sample size of a row's K weights. */
static double row_ess(const double *lw, size_t K, double *mx_out, double *sum_out)
{
    double mx = -INFINITY, sw = 0.0, sw2 = 0.0;
    for (size_t j = 0; j < K; j++)
        mx = fmax(mx, lw[j]);
    for (size_t j = 0; j < K; j++) {
        double e = exp(lw[j] - mx);
        sw += e;
        sw2 += e * e;
    }
    *mx_out = mx;
    *sum_out = sw;
    return sw * sw / sw2;
}

static int check_weights(const char *fn, const double *lw, size_t K, size_t rg, double t)
{
    double mx = -INFINITY;
    for (size_t j = 0; j < K; j++) {
        if (isnan(lw[j]))
            return score__error(SCORE_E_NUMERIC, fn, "twisted SMC: a weight of row %zu is NaN "
                                "at t = %g", rg, t);
        mx = fmax(mx, lw[j]);
    }
    if (!isfinite(mx))
        return score__error(SCORE_E_NUMERIC, fn, "twisted SMC: the weights of row %zu are %s "
                            "at t = %g", rg, mx > 0.0 ? "infinite" : "all zero", t);
    return SCORE_OK;
}

static void swap_f(float **a, float **b)
{
    float *t = *a;
    *a = *b;
    *b = t;
}

/* Systematic resampling of the rows of a block whose ESS is below thr K (uniform at counter
 * ctr, row rg0 + i, column SMC_COL_U); the states, scores, twist terms and log twists follow
 * their ancestors. */
static void resample(score__smc *w, const score_rng *rng, uint32_t ctr, size_t rg0, size_t nb,
                     size_t K, size_t d, double thr)
{
    int any = 0;
    for (size_t i = 0; i < nb; i++) {
        double *lw = w->lw + i * K, mx, sw, ess = row_ess(lw, K, &mx, &sw);
        size_t *anc = w->anc + i * K;
        w->ess_min = fmin(w->ess_min, ess);
        if (ess < thr * (double)K) {
            double u, step = sw / (double)K, pos, acc = exp(lw[0] - mx);
            size_t src = 0;
            score__rng_uniform_f64_at(rng, ctr, rg0 + i, 1, SMC_COL_U, 1, &u);
            pos = u * step;
            for (size_t j = 0; j < K; j++) {
                while (pos > acc && src + 1 < K) {
                    src++;
                    acc += exp(lw[src] - mx);
                }
                anc[j] = i * K + src;
                pos += step;
            }
            for (size_t j = 0; j < K; j++)
                lw[j] = 0.0;
            w->resamples++;
            any = 1;
        } else {
            for (size_t j = 0; j < K; j++)
                anc[j] = i * K + j;
        }
    }
    if (!any)
        return;
    for (size_t p = 0; p < nb * K; p++) {
        size_t a = w->anc[p];
        memcpy(w->x2 + p * d, w->x + a * d, d * sizeof(float));
        memcpy(w->s2 + p * d, w->s + a * d, d * sizeof(float));
        memcpy(w->g2 + p * d, w->g + a * d, d * sizeof(float));
        w->lt2[p] = w->lt[a];
    }
    swap_f(&w->x, &w->x2);
    swap_f(&w->s, &w->s2);
    swap_f(&w->g, &w->g2);
    {
        double *t = w->lt;
        w->lt = w->lt2;
        w->lt2 = t;
    }
}

/* The known mask and values of output row rg, or NULL when there are none. */
static const uint8_t *known_row(const score_sampler *s, size_t rg, const float **y)
{
    size_t mr;
    if (!score__known_active(&s->known))
        return NULL;
    mr = s->known.rows == 1 ? 0 : rg;
    *y = s->known.y + mr * s->dim;
    return s->known.mask + mr * s->dim;
}

/* One block of nb output rows (global rows rg0 ..), K particles each, into out (nb rows). */
static int run_block(score_sampler *s, score_sde *sde, const score_rng *rng, size_t rg0,
                     size_t nb, size_t K, const float *x_init, float *out, size_t L,
                     int denoise, double sd, score_sampler_progress_fn progress,
                     void *user_data)
{
    const char *fn = "score_sampler_run";
    const score_schedule *sched = score_sde_schedule(sde);
    score__smc *w = &s->smc;
    size_t d = s->dim, P = nb * K;
    uint32_t c0 = rng->counter;
    double thr = PF(s, SCORE_SAMPLER_PARAM_ESS_THRESHOLD);
    int rc;
    score__sde_set_rows(sde, P, rg0 * K, NULL);
    /* start: the prior draw (or x_init) of every particle, the twist there */
    for (size_t i = 0; i < nb; i++) {
        float *xr = w->x + i * K * d;
        if (x_init != NULL) {
            for (size_t j = 0; j < K; j++)
                memcpy(xr + j * d, x_init + i * d, d * sizeof(float));
        } else {
            score__rng_normal_at(rng, c0, rg0 + i, 1, 0, K * d, xr);
            for (size_t q = 0; q < K * d; q++)
                xr[q] = (float)(sd * (double)xr[q]);
        }
    }
    if ((rc = eval(fn, sde, w, P, s->grid[0], w->x, w->s)) != SCORE_OK)
        return rc;
    for (size_t p = 0; p < P; p++)
        w->lw[p] = w->lt[p];
    resample(w, rng, c0, rg0, nb, K, d, thr);
    for (size_t k = 0; k < L; k++) {
        double t = s->grid[k], tn = s->grid[k + 1];
        int last = k + 1 == L;
        smc_coef c;
        if (progress != NULL && progress(k, L, t, user_data) != 0)
            return score__error(SCORE_E_CANCELLED, fn,
                                "cancelled by the progress callback at step %zu", k);
        if ((rc = step_coefs(fn, s, sched, t, tn, &c)) != SCORE_OK)
            return rc;
        for (size_t i = 0; i < nb; i++)
            score__rng_normal_at(rng, c0 + 1 + (uint32_t)k, rg0 + i, 1, 0, K * d,
                                 w->z + i * K * d);
        for (size_t i = 0; i < nb; i++) {
            const float *yk = NULL;
            const uint8_t *mk = last ? known_row(s, rg0 + i, &yk) : NULL;
            for (size_t j = 0; j < K; j++) {
                size_t p = i * K + j;
                float *xp = w->x + p * d;
                const float *sp = w->s + p * d, *gp = w->g + p * d, *zp = w->z + p * d;
                double lr = 0.0, iv = 1.0 / (c.amp * c.amp);
                for (size_t q = 0; q < d; q++) {
                    double mu = c.ax * (double)xp[q] + c.cs * (double)sp[q], gq = gp[q];
                    if (mk != NULL && mk[q] == 1) {
                        /* the chain's density of x_L's known coordinate at y */
                        double e = (double)yk[q] - (mu - c.cs * gq);
                        lr -= 0.5 * (e * e * iv + log(c.amp * c.amp) + LOG_2PI);
                        xp[q] = yk[q];
                    } else {
                        double zq = zp[q];
                        lr -= c.cs / c.amp * zq * gq + 0.5 * c.cs * c.cs * gq * gq * iv;
                        xp[q] = (float)(mu + c.amp * zq);
                    }
                }
                w->lw[p] += lr - w->lt[p];
            }
        }
        if (!last || !score__known_active(&s->known)) {
            if ((rc = eval(fn, sde, w, P, tn, w->x, w->s)) != SCORE_OK)
                return rc;
            for (size_t p = 0; p < P; p++)
                w->lw[p] += w->lt[p];
        }
        for (size_t i = 0; i < nb; i++)
            if ((rc = check_weights(fn, w->lw + i * K, K, rg0 + i, tn)) != SCORE_OK)
                return rc;
        if (!last)
            resample(w, rng, c0 + 1 + (uint32_t)k, rg0, nb, K, d, thr);
        s->steps++;
    }
    /* one particle per row by its final weight */
    for (size_t i = 0; i < nb; i++) {
        double mx, sw, ess = row_ess(w->lw + i * K, K, &mx, &sw), u, acc = 0.0;
        size_t j = 0;
        w->ess_min = fmin(w->ess_min, ess);
        w->ess_sum += ess;
        w->ess_rows++;
        score__rng_uniform_f64_at(rng, c0 + 1 + (uint32_t)L, rg0 + i, 1, SMC_COL_U, 1, &u);
        for (j = 0; j < K; j++) {
            acc += exp(w->lw[i * K + j] - mx);
            if (acc >= u * sw)
                break;
        }
        if (j == K)
            j = K - 1;
        w->anc[i] = i * K + j;
        memcpy(out + i * d, w->x + (i * K + j) * d, d * sizeof(float));
    }
    if (denoise) {
        /* the Tweedie denoise t_L -> 0 of the chosen particles (named as themselves) */
        memcpy(w->x2, out, nb * d * sizeof(float));
        for (size_t i = 0; i < nb; i++)
            w->t[i] = s->grid[L];
        score__sde_set_rows(sde, nb, rg0 * K, w->anc);
        score__sde_set_twist(sde, w->lt, w->g);
        if ((rc = score_sde_x0(sde, nb, w->t, w->x2, out)) != SCORE_OK)
            return rc;
    }
    return SCORE_OK;
}

/* The checks of a particle run: SCORE_E_UNSUPPORTED / SCORE_E_INVAL naming what is refused. */
static int smc_check(const char *fn, const score_sampler *s, const score_sde *sde,
                     const score_rng *rng, size_t row0, size_t n, size_t K, size_t npts,
                     size_t L)
{
    int kind = s->pred->type.kind, known = score__known_active(&s->known);
    size_t kd;
    if (kind != SCORE_STEP_EULER_MARUYAMA && kind != SCORE_STEP_REVERSE_DIFFUSION &&
        kind != SCORE_STEP_ANCESTRAL)
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "twisted SMC (particles = %zu) needs a predictor whose transition is "
                            "a Gaussian of known density: em, reverse-diffusion or ancestral, "
                            "not '%s'", K, s->pred->type.name);
    if (s->corr != NULL && PI(s, SCORE_SAMPLER_PARAM_CORRECTOR_STEPS) > 0)
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "twisted SMC (particles = %zu): the corrector '%s' has no "
                            "transition density; remove it or set its steps to 0", K,
                            s->corr->type.name);
    if (s->hook != NULL)
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "twisted SMC (particles = %zu): a per-step hook would change the "
                            "particles behind the weights' back", K);
    if (PF(s, SCORE_SAMPLER_PARAM_STRENGTH) >= 0.0)
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "twisted SMC (particles = %zu) starts from the prior: partial "
                            "sampling (strength) is not supported", K);
    if (score__sde_threshold_active(sde))
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "twisted SMC (particles = %zu): a thresholded score is not the "
                            "model's, so the chain's density is not known", K);
    if (!known && sde->obs_m == 0)
        return score__error(SCORE_E_INVAL, fn,
                            "twisted SMC (particles = %zu) needs something to condition on: "
                            "known coordinates (score_sampler_set_known()) or an observation "
                            "(score_sde_set_observation())", K);
    if (known && sde->obs_m != 0)
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "known coordinates and an observation at once are not supported: "
                            "fold the known coordinates into the observation's A and y");
    if (sde->obs_m != 0 && score__sde_par_i(sde, SCORE_SDE_PARAM_OBS_METHOD) !=
                               SCORE_OBS_METHOD_MOMENT &&
        score__sde_par_f(sde, SCORE_SDE_PARAM_OBS_ZETA) > 0.0)
        return score__error(SCORE_E_UNSUPPORTED, fn,
                            "twisted SMC (particles = %zu): the step-size form of the "
                            "observation term (SCORE_SDE_PARAM_OBS_ZETA > 0) has no likelihood "
                            "to weight with", K);
    if (rng == NULL)
        return score__error(SCORE_E_INVAL, fn, "twisted SMC: rng is NULL (the particles' noise)");
    if (L == 0)
        return score__error(SCORE_E_INVAL, fn,
                            "twisted SMC: the grid (%zu times) has no step between positive "
                            "times", npts);
    if ((uint64_t)rng->counter + (uint64_t)L + 1 >= ((uint64_t)1 << 32))
        return score__error(SCORE_E_RANGE, fn,
                            "twisted SMC: counter %lu + %zu steps reaches 2^32",
                            (unsigned long)rng->counter, L + 1);
    if (score__mul_size(K, s->dim, &kd) != 0 || kd >= SMC_COL_U ||
        score__mul_size(row0 + n, K, &kd) != 0)
        return score__error(SCORE_E_RANGE, fn, "twisted SMC: %zu particles of dimension %zu "
                            "for rows up to %zu overflow", K, s->dim, row0 + n);
    return SCORE_OK;
}

int score__smc_run(score_sampler *s, score_sde *sde, const score_rng *rng, size_t row0,
                   size_t n, const float *x_init, float *out, size_t npts,
                   score_sampler_progress_fn progress, void *user_data)
{
    const char *fn = "score_sampler_run";
    size_t K = (size_t)PI(s, SCORE_SAMPLER_PARAM_PARTICLES), d = s->dim, B, blocks = 0;
    int denoise = s->grid[npts - 1] == 0.0, known = score__known_active(&s->known), rc;
    size_t L = denoise ? npts - 2 : npts - 1;
    uint64_t nfe0 = score_sde_nfe(sde);
    double sd = 1.0;
    if ((rc = smc_check(fn, s, sde, rng, row0, n, K, npts, L)) != SCORE_OK)
        return rc;
    if (x_init == NULL && (rc = score__sampler_start_std(score_sde_schedule(sde), s->grid[0],
                                                         &sd)) != SCORE_OK)
        return rc;
    if (x_init != NULL && !score__all_finite_f32(n * d, x_init))
        return score__error(SCORE_E_NUMERIC, fn, "x_init holds NaN or infinity");
    B = SMC_BLOCK / K > 0 ? SMC_BLOCK / K : 1;
    if (B > n)
        B = n;
    if ((rc = smc_grow(fn, &s->smc, B * K, d)) != SCORE_OK)
        return rc;
    s->smc.ran = 1;
    s->smc.ess_sum = 0.0;
    s->smc.ess_min = INFINITY;
    s->smc.ess_rows = 0;
    s->smc.resamples = 0;
    if (known) {
        score__sde_set_known_obs(sde, s->known.rows, s->known.mask, s->known.y, row0 * K, n * K);
        score__sde_set_known_group(sde, K);
    }
    for (size_t b0 = 0; b0 < n && rc == SCORE_OK; b0 += B) {
        size_t nb = n - b0 < B ? n - b0 : B;
        s->steps = 0;
        rc = run_block(s, sde, rng, row0 + b0, nb, K, x_init != NULL ? x_init + b0 * d : NULL,
                       out + b0 * d, L, denoise, sd, progress, user_data);
        blocks++;
    }
    score__sde_set_twist(sde, NULL, NULL);
    score__sde_set_rows(sde, 0, 0, NULL);
    if (known) {
        score__sde_set_known_obs(sde, 0, NULL, NULL, 0, 0);
        if (rc == SCORE_OK)
            score__known_finish(&s->known, n, out);
    }
    if (rc == SCORE_OK && denoise)
        s->steps++;
    s->nfe = (score_sde_nfe(sde) - nfe0) / (blocks > 0 ? blocks : 1);
    return rc;
}

int score_sampler_get_ess(const score_sampler *s, double *mean_out, double *min_out,
                          uint64_t *resamples_out)
{
    const score__smc *w;
    if (s == NULL)
        return score__error(SCORE_E_INVAL, __func__, "sampler is NULL");
    w = &s->smc;
    if (mean_out != NULL)
        *mean_out = w->ran && w->ess_rows > 0 ? w->ess_sum / (double)w->ess_rows : 0.0;
    if (min_out != NULL)
        *min_out = w->ran && w->ess_rows > 0 ? w->ess_min : 0.0;
    if (resamples_out != NULL)
        *resamples_out = w->ran ? w->resamples : 0;
    return SCORE_OK;
}
