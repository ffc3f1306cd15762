/* Suite 'slow': error-vs-NFE tables and convergence slopes of every deterministic sampler on
 * 2-D Gaussian data (exact PF-ODE map in closed form) and a 2-D Gaussian mixture (reference:
 * RK4 with 4000 steps), VP / uniform-lambda and VE / Karras grids, plus the adaptive solvers'
 * error against the requested tolerance. Also measures the published DPM-Solver++(3M) form
 * (implemented here as a user step type) to show that it is only second order.
 *
 * The budget tables (doc/choosing-a-sampler.md): every deterministic type at 5, 8, 10, 15, 20,
 * 50 and 100 model evaluations (counted by the sde and checked for every run) on a 2-D
 * Gaussian, a 64-D Gaussian (non-diagonal covariance, eigenvalues 0.05 .. 5) and a 2-D
 * three-component mixture, VP schedule, on the uniform-lambda, time-uniform and Karras grids.
 * Each type runs in each of its options (lower-order final steps on / off, order caps, the
 * published 3M form, the singlestep types' intermediate points and DPM-Solver's order sequence
 * for a budget, SCORE_SAMPLER_PARAM_ORDER_SEQUENCE); a cell is the type's best option. The
 * error is to the exact PF-ODE endpoint from the same prior draws: closed form for the
 * Gaussians, and for the mixture RK4 in lambda in double with the mixture's closed-form score (16000 steps, which 8000 steps
 * match to 1e-9 or the program stops).
 *
 * Prints the tables; exits with status 1 when a measured slope (least squares over the step
 * counts where the error is above 1e-5, the float32 floor being about 2e-6) falls below the
 * sampler's order minus 0.3. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libscore/libscore.h>

#define CK(call)                                                                              \
    do {                                                                                      \
        int rc__ = (call);                                                                    \
        if (rc__ != SCORE_OK) {                                                               \
            fprintf(stderr, "%s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #call,               \
                    score_status_name(rc__), score_last_error_message());                     \
            exit(2);                                                                          \
        }                                                                                     \
    } while (0)

enum { NR = 64 };

static const double g_mean[2] = {1.0, -0.5}, g_cov[4] = {1.0, 0.3, 0.3, 0.5};
static const double m_w[3] = {0.5, 0.3, 0.2}, m_mu[6] = {-2.0, 0.0, 2.0, 0.0, 0.0, 2.5},
                    m_var[6] = {0.1, 0.1, 0.2, 0.05, 0.05, 0.2};

typedef struct sys {
    score_schedule *sc;
    score_model *m;
    score_sde *sde;
    double T, teps;
    float x0[2 * NR], ref[2 * NR];
} sys;

/* ---- the published DPM-Solver++(3M) update as a user step type ------------------------- */

typedef struct pub3m {
    int count;
    size_t n;
    double tend, lam[2];
    float *d[2], *cur;
} pub3m;

static int pub_alloc(void **state, size_t dim, void *ud)
{
    pub3m *p = calloc(1, sizeof *p);
    (void)dim;
    (void)ud;
    *state = p;
    return p == NULL ? -1 : 0;
}

static void pub_reset(void *state, void *ud)
{
    (void)ud;
    ((pub3m *)state)->count = 0;
}

static void pub_free(void *state, void *ud)
{
    pub3m *p = state;
    (void)ud;
    if (p != NULL) {
        free(p->d[0]);
        free(p->d[1]);
        free(p->cur);
        free(p);
    }
}

/* dpm-solver's multistep_dpm_solver_third_update ('dpmsolver++'), the published form:
 * D1 = D1_0 + r0/(r0+r1) (D1_0 - D1_1), D2 = (D1_0 - D1_1)/(r0+r1),
 * x_t = (s_t/s_s) x_s - a_t phi1 x0 + a_t phi2 D1 - a_t phi3 D2 (same time for all rows). */
static int pub_apply(void *state, score_sde *sde, size_t n, size_t dim, const double *t,
                     const double *tn, size_t row0, float *x, float *xerr, const score_rng *rng,
                     uint64_t counter, void *ud)
{
    pub3m *p = state;
    const score_schedule *sc = score_sde_schedule(sde);
    double a, sg, an, sgn, lam, lamn, h;
    int order;
    (void)row0;
    (void)xerr;
    (void)rng;
    (void)counter;
    (void)ud;
    if (p->n != n) {
        for (int k = 0; k < 2; k++) {
            free(p->d[k]);
            p->d[k] = malloc(n * dim * sizeof(float));
        }
        free(p->cur);
        p->cur = malloc(n * dim * sizeof(float));
        p->n = n;
        p->count = 0;
    }
    if (p->count > 0 && p->tend != t[0])
        p->count = 0;
    if (score_schedule_alpha_sigma(sc, 1, t, &a, &sg) != SCORE_OK ||
        score_schedule_alpha_sigma(sc, 1, tn, &an, &sgn) != SCORE_OK ||
        score_sde_x0(sde, n, t, x, p->cur) != SCORE_OK)
        return -1;
    lam = log(a / sg);
    lamn = log(an / sgn);
    h = lamn - lam;
    order = p->count + 1 > 3 ? 3 : p->count + 1;
    for (size_t q = 0; q < n * dim; q++) {
        double x0 = p->cur[q], phi1 = expm1(-h), v;
        v = (sgn / sg) * x[q] - an * phi1 * x0;
        if (order == 2) {
            double r0 = (lam - p->lam[0]) / h, d10 = (x0 - p->d[0][q]) / r0;
            v += -0.5 * an * phi1 * d10;
        } else if (order == 3) {
            double h0 = lam - p->lam[0], h1 = p->lam[0] - p->lam[1];
            double r0 = h0 / h, r1 = h1 / h;
            double d10 = (x0 - p->d[0][q]) / r0, d11 = (p->d[0][q] - p->d[1][q]) / r1;
            double D1 = d10 + r0 / (r0 + r1) * (d10 - d11), D2 = (d10 - d11) / (r0 + r1);
            double phi2 = phi1 / h + 1.0, phi3 = phi2 / h - 0.5;
            v += an * phi2 * D1 - an * phi3 * D2;
        }
        x[q] = (float)v;
    }
    {
        float *tmp = p->d[1];
        p->d[1] = p->d[0];
        p->d[0] = tmp;
        memcpy(p->d[0], p->cur, n * dim * sizeof(float));
        p->lam[1] = p->lam[0];
        p->lam[0] = lam;
    }
    p->tend = tn[0];
    p->count = p->count + 1 > 2 ? 2 : p->count + 1;
    return 0;
}

static score_step_type *published_3m(void)
{
    score_step_type *T;
    CK(score_step_type_new(&T, "published-dpmpp-3m", 3));
    CK(score_step_type_set_apply(T, pub_apply, NULL));
    CK(score_step_type_set_alloc_state(T, pub_alloc, NULL));
    CK(score_step_type_set_reset(T, pub_reset, NULL));
    CK(score_step_type_set_free_state(T, pub_free, NULL));
    return T;
}

/* ---- systems ---------------------------------------------------------------------------- */

static void run(sys *S, const score_step_type *T, int grid, size_t steps, float *x,
                uint64_t *nfe)
{
    score_sampler *s;
    CK(score_sampler_new(&s, T, NULL, 2));
    CK(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_NUM_STEPS, (int64_t)steps));
    CK(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_GRID, grid));
    CK(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_ADAPTIVE, 0));
    CK(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_LOWER_ORDER_FINAL, 0));
    CK(score_sampler_run(s, S->sde, NR, S->x0, x, NULL, NULL, NULL));
    if (nfe != NULL)
        *nfe = score_sampler_get_nfe(s);
    score_sampler_free(s);
}

static void make(sys *S, int kind, int gmm)
{
    score_rng *r;
    CK(score_schedule_new(&S->sc, kind));
    CK(score_schedule_set_f64(S->sc, SCORE_SCHEDULE_PARAM_T_EPS, 1e-3));
    if (kind == SCORE_SCHEDULE_VE)
        CK(score_schedule_set_f64(S->sc, SCORE_SCHEDULE_PARAM_SIGMA_MAX, 20.0));
    if (gmm)
        CK(score_model_new_gmm(&S->m, S->sc, 2, 3, m_w, m_mu, m_var));
    else
        CK(score_model_new_gaussian(&S->m, S->sc, 2, g_mean, g_cov, NULL));
    CK(score_sde_new(&S->sde, S->sc, S->m, SCORE_OUTPUT_SCORE));
    CK(score_schedule_get_f64(S->sc, SCORE_SCHEDULE_PARAM_T, &S->T));
    CK(score_schedule_get_f64(S->sc, SCORE_SCHEDULE_PARAM_T_EPS, &S->teps));
    CK(score_rng_new(&r, SCORE_RNG_PHILOX4X32_10, 1));
    CK(score_schedule_prior_sample(S->sc, r, NR, 2, S->x0));
    score_rng_free(r);
    if (gmm)
        run(S, score_step_type_find("rk4"), SCORE_GRID_UNIFORM_LAMBDA, 4000, S->ref, NULL);
    else
        CK(score_model_analytic_pf_map(S->m, S->T, S->teps, NR, S->x0, S->ref));
}

static void unmake(sys *S)
{
    score_sde_free(S->sde);
    score_model_free(S->m);
    score_schedule_free(S->sc);
}

static double err_of(const float *x, const float *ref)
{
    double e = 0.0;
    for (size_t q = 0; q < 2 * NR; q++)
        e = fmax(e, fabs((double)x[q] - (double)ref[q]));
    return e;
}

/* check = 0: not in the least-squares slope check (its pre-asymptotic range reaches the float32
 * floor; the order is checked by the default suite, test-step-multi.c) */
static const struct {
    const char *name;
    int order, nfe_per_step, check;
} solvers[] = {
    {"euler", 1, 1, 1},     {"ddim", 1, 1, 1},         {"dpm-solver-1", 1, 1, 1},
    {"heun", 2, 2, 1},      {"midpoint", 2, 2, 1},     {"dpm-solver-2", 2, 2, 1},
    {"dpmpp-2m", 2, 1, 1},  {"dpm-solver-3", 3, 3, 1}, {"dpmpp-3m", 3, 1, 1},
    {"rk4", 4, 4, 1},       {"dopri5", 5, 7, 1},       {"lms", 4, 1, 0},
    {"deis", 3, 1, 0},      {"unipc", 4, 1, 0},        {"unipc-bh1", 4, 1, 0},
    {"published-3m", 2, 1, 1},
};
#define NSOLV (sizeof solvers / sizeof solvers[0])

static const int nfes[6] = {5, 10, 20, 50, 100, 1000};

/* ---- budget tables ------------------------------------------------------------------------
 * Three data sets under the VP schedule (t_eps = 1e-3), three grids, budgets of 5 .. 100 model
 * evaluations. Every deterministic type runs in each of its option variants; a table cell is
 * the type's best variant at that budget (the variant's tag in brackets when it is not the
 * default). The budget is the model evaluations counted by the sde, checked for every run. */

enum { BNR = 64, NBUDGETS = 7, D64 = 64 };

static const int budgets[NBUDGETS] = {5, 8, 10, 15, 20, 50, 100};

typedef struct bsys {
    const char *label;
    size_t dim;
    score_schedule *sc;
    score_model *m;
    score_sde *sde;
    double T, teps;
    float *x0, *ref;
} bsys;

/* how a variant runs: the sampler on the grid of N steps, or a singlestep type with
 * DPM-Solver's order sequence for the budget (SCORE_SAMPLER_PARAM_ORDER_SEQUENCE; outer grid:
 * the grid of K steps, or the points of the grid of `budget` steps at the cumulative orders),
 * checked against stepping by hand */
enum { RUN_SAMPLER = 0, RUN_MIX_OUTER = 1, RUN_MIX_FINE = 2 };

typedef struct variant {
    const char *type, *name, *tag;
    int64_t lof, form, order, substep;
    int how;
} variant;

static const variant variants[] = {
    {"euler", "euler", "", 1, 0, 0, 0, RUN_SAMPLER},
    {"heun", "heun", "", 1, 0, 0, 0, RUN_SAMPLER},
    {"midpoint", "midpoint", "", 1, 0, 0, 0, RUN_SAMPLER},
    {"rk4", "rk4", "", 1, 0, 0, 0, RUN_SAMPLER},
    {"ddim", "ddim", "", 1, 0, 0, 0, RUN_SAMPLER},
    {"dpm-solver-2", "dpm-solver-2", "", 1, 0, 0, 0, RUN_SAMPLER},
    {"dpm-solver-2", "dpm-solver-2", "mix", 1, 0, 2, 0, RUN_MIX_OUTER},
    {"dpm-solver-2", "dpm-solver-2", "mix fine", 1, 0, 2, 0, RUN_MIX_FINE},
    {"dpm-solver-3", "dpm-solver-3", "", 1, 0, 0, 0, RUN_SAMPLER},
    {"dpm-solver-3", "dpm-solver-3", "mix", 1, 0, 3, 0, RUN_MIX_OUTER},
    {"dpm-solver-3", "dpm-solver-3", "mix fine", 1, 0, 3, 0, RUN_MIX_FINE},
    {"dpmpp-2s", "dpmpp-2s", "", 1, 0, 0, 0, RUN_SAMPLER},
    {"dpmpp-2s", "dpmpp-2s", "sub-t", 1, 0, 0, 1, RUN_SAMPLER},
    {"dpmpp-2s", "dpmpp-2s", "mix", 1, 0, 2, 0, RUN_MIX_OUTER},
    {"dpmpp-2s", "dpmpp-2s", "mix fine", 1, 0, 2, 0, RUN_MIX_FINE},
    {"dpmpp-2s", "dpmpp-2s", "mix fine, sub-t", 1, 0, 2, 1, RUN_MIX_FINE},
    {"dpmpp-3s", "dpmpp-3s", "", 1, 0, 0, 0, RUN_SAMPLER},
    {"dpmpp-3s", "dpmpp-3s", "sub-t", 1, 0, 0, 1, RUN_SAMPLER},
    {"dpmpp-3s", "dpmpp-3s", "mix", 1, 0, 3, 0, RUN_MIX_OUTER},
    {"dpmpp-3s", "dpmpp-3s", "mix fine", 1, 0, 3, 0, RUN_MIX_FINE},
    {"dpmpp-3s", "dpmpp-3s", "mix fine, sub-t", 1, 0, 3, 1, RUN_MIX_FINE},
    {"dpmpp-2m", "dpmpp-2m", "", 1, 0, 0, 0, RUN_SAMPLER},
    {"dpmpp-2m", "dpmpp-2m", "lof 0", 0, 0, 0, 0, RUN_SAMPLER},
    {"dpmpp-3m", "dpmpp-3m", "", 1, 0, 0, 0, RUN_SAMPLER},
    {"dpmpp-3m", "dpmpp-3m", "lof 0", 0, 0, 0, 0, RUN_SAMPLER},
    {"dpmpp-3m", "dpmpp-3m", "pub", 1, 1, 0, 0, RUN_SAMPLER},
    {"dpmpp-3m", "dpmpp-3m", "pub, lof 0", 0, 1, 0, 0, RUN_SAMPLER},
    {"lms", "lms", "", 1, 0, 0, 0, RUN_SAMPLER},
    {"lms", "lms", "lof 0", 0, 0, 0, 0, RUN_SAMPLER},
    {"lms", "lms", "o3", 1, 0, 3, 0, RUN_SAMPLER},
    {"lms", "lms", "o3, lof 0", 0, 0, 3, 0, RUN_SAMPLER},
    {"lms", "lms", "o2", 1, 0, 2, 0, RUN_SAMPLER},
    {"deis", "deis", "", 1, 0, 0, 0, RUN_SAMPLER},
    {"deis", "deis", "lof 0", 0, 0, 0, 0, RUN_SAMPLER},
    {"deis", "deis", "o2", 1, 0, 2, 0, RUN_SAMPLER},
    {"unipc", "unipc", "", 1, 0, 0, 0, RUN_SAMPLER},
    {"unipc", "unipc", "lof 0", 0, 0, 0, 0, RUN_SAMPLER},
    {"unipc", "unipc", "o2", 1, 0, 2, 0, RUN_SAMPLER},
    {"unipc", "unipc", "o2, lof 0", 0, 0, 2, 0, RUN_SAMPLER},
    {"unipc", "unipc", "o1", 1, 0, 1, 0, RUN_SAMPLER},
    {"unipc-bh1", "unipc-bh1", "", 1, 0, 0, 0, RUN_SAMPLER},
    {"unipc-bh1", "unipc-bh1", "lof 0", 0, 0, 0, 0, RUN_SAMPLER},
    {"unipc-bh1", "unipc-bh1", "o2", 1, 0, 2, 0, RUN_SAMPLER},
    {"unipc-bh1", "unipc-bh1", "o2, lof 0", 0, 0, 2, 0, RUN_SAMPLER},
    {"unipc-bh1", "unipc-bh1", "o1", 1, 0, 1, 0, RUN_SAMPLER},
};
#define NVARIANTS (sizeof variants / sizeof variants[0])

static double err_n(size_t n, const float *x, const float *ref)
{
    double e = 0.0;
    for (size_t q = 0; q < n; q++)
        e = fmax(e, fabs((double)x[q] - (double)ref[q]));
    return e;
}

/* 64-D Gaussian: eigenvalues 0.05 .. 5 (two decades, geometric), eigenvectors from a seeded
 * rotation (Gram-Schmidt of a matrix of normals from a fixed splitmix64 / Box-Muller stream) */
static uint64_t sm64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void gauss64(double *mean, double *cov)
{
    static double q[D64 * D64];
    double ev[D64];
    uint64_t s = 14;
    for (int i = 0; i < D64 * D64; i++) {
        double u1 = ((double)(sm64(&s) >> 11) + 0.5) * 0x1p-53;
        double u2 = (double)(sm64(&s) >> 11) * 0x1p-53;
        q[i] = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
    }
    for (int pass = 0; pass < 2; pass++) /* modified Gram-Schmidt on the rows, twice */
        for (int i = 0; i < D64; i++) {
            double nrm = 0.0;
            for (int j = 0; j < i; j++) {
                double d = 0.0;
                for (int k = 0; k < D64; k++)
                    d += q[i * D64 + k] * q[j * D64 + k];
                for (int k = 0; k < D64; k++)
                    q[i * D64 + k] -= d * q[j * D64 + k];
            }
            for (int k = 0; k < D64; k++)
                nrm += q[i * D64 + k] * q[i * D64 + k];
            for (int k = 0; k < D64; k++)
                q[i * D64 + k] /= sqrt(nrm);
        }
    for (int i = 0; i < D64; i++) {
        ev[i] = 0.05 * pow(100.0, (double)i / (D64 - 1));
        mean[i] = 0.8 * cos(0.7 * i);
    }
    for (int i = 0; i < D64; i++)
        for (int j = i; j < D64; j++) {
            double c = 0.0;
            for (int k = 0; k < D64; k++)
                c += q[k * D64 + i] * ev[k] * q[k * D64 + j];
            cov[i * D64 + j] = cov[j * D64 + i] = c;
        }
}

/* The mixture's PF-ODE in double: with lambda = log(alpha / sigma) and alpha^2 + sigma^2 = 1
 * (VP), dx/dlambda = sigma^2 (x + grad log p_lambda(x)), where p_lambda is the mixture of
 * N(alpha mu_j, alpha^2 diag(v_j) + sigma^2 I). Classical RK4 with n uniform steps in lambda. */
static void gmm_rhs(double lam, const double *x, double *out)
{
    double a2 = 1.0 / (1.0 + exp(-2.0 * lam)), s2 = 1.0 / (1.0 + exp(2.0 * lam)), a = sqrt(a2);
    double lw[3], mx = -INFINITY, z = 0.0, sc[2] = {0.0, 0.0};
    for (int j = 0; j < 3; j++) {
        lw[j] = log(m_w[j]);
        for (int d = 0; d < 2; d++) {
            double c = a2 * m_var[2 * j + d] + s2, r = x[d] - a * m_mu[2 * j + d];
            lw[j] -= 0.5 * (log(c) + r * r / c);
        }
        mx = fmax(mx, lw[j]);
    }
    for (int j = 0; j < 3; j++) {
        double w = exp(lw[j] - mx);
        z += w;
        for (int d = 0; d < 2; d++) {
            double c = a2 * m_var[2 * j + d] + s2;
            sc[d] += w * -(x[d] - a * m_mu[2 * j + d]) / c;
        }
    }
    for (int d = 0; d < 2; d++)
        out[d] = s2 * (x[d] + sc[d] / z);
}

static void gmm_flow(double lam0, double lam1, size_t nsteps, const float *x0, double *out)
{
    double h = (lam1 - lam0) / (double)nsteps;
    for (size_t i = 0; i < BNR; i++) {
        double x[2] = {x0[2 * i], x0[2 * i + 1]}, k1[2], k2[2], k3[2], k4[2], y[2];
        for (size_t s = 0; s < nsteps; s++) {
            double l = lam0 + (double)s * h;
            gmm_rhs(l, x, k1);
            for (int d = 0; d < 2; d++)
                y[d] = x[d] + 0.5 * h * k1[d];
            gmm_rhs(l + 0.5 * h, y, k2);
            for (int d = 0; d < 2; d++)
                y[d] = x[d] + 0.5 * h * k2[d];
            gmm_rhs(l + 0.5 * h, y, k3);
            for (int d = 0; d < 2; d++)
                y[d] = x[d] + h * k3[d];
            gmm_rhs(l + h, y, k4);
            for (int d = 0; d < 2; d++)
                x[d] += h / 6.0 * (k1[d] + 2.0 * k2[d] + 2.0 * k3[d] + k4[d]);
        }
        out[2 * i] = x[0];
        out[2 * i + 1] = x[1];
    }
}

static void bsys_make(bsys *S, int data)
{
    static double mean64[D64], cov64[D64 * D64];
    score_rng *r;
    S->dim = data == 1 ? D64 : 2;
    S->label = data == 0 ? "Gaussian 2-D" : data == 1 ? "Gaussian 64-D" : "2-D mixture";
    CK(score_schedule_new(&S->sc, SCORE_SCHEDULE_VP));
    CK(score_schedule_set_f64(S->sc, SCORE_SCHEDULE_PARAM_T_EPS, 1e-3));
    if (data == 0) {
        CK(score_model_new_gaussian(&S->m, S->sc, 2, g_mean, g_cov, NULL));
    } else if (data == 1) {
        gauss64(mean64, cov64);
        CK(score_model_new_gaussian(&S->m, S->sc, D64, mean64, cov64, NULL));
    } else {
        CK(score_model_new_gmm(&S->m, S->sc, 2, 3, m_w, m_mu, m_var));
    }
    CK(score_sde_new(&S->sde, S->sc, S->m, SCORE_OUTPUT_SCORE));
    CK(score_schedule_get_f64(S->sc, SCORE_SCHEDULE_PARAM_T, &S->T));
    CK(score_schedule_get_f64(S->sc, SCORE_SCHEDULE_PARAM_T_EPS, &S->teps));
    S->x0 = malloc(BNR * S->dim * sizeof(float));
    S->ref = malloc(BNR * S->dim * sizeof(float));
    if (S->x0 == NULL || S->ref == NULL)
        exit(2);
    CK(score_rng_new(&r, SCORE_RNG_PHILOX4X32_10, 1));
    CK(score_schedule_prior_sample(S->sc, r, BNR, S->dim, S->x0));
    score_rng_free(r);
    if (data < 2) {
        CK(score_model_analytic_pf_map(S->m, S->T, S->teps, BNR, S->x0, S->ref));
    } else {
        double tt[2] = {S->T, S->teps}, a[2], sg[2], lam[2], r1[2 * BNR], r2[2 * BNR], dmax = 0.0;
        CK(score_schedule_alpha_sigma(S->sc, 2, tt, a, sg));
        for (int k = 0; k < 2; k++) {
            if (fabs(a[k] * a[k] + sg[k] * sg[k] - 1.0) > 1e-12) {
                fprintf(stderr, "mixture reference: the schedule is not variance preserving\n");
                exit(2);
            }
            lam[k] = log(a[k] / sg[k]);
        }
        gmm_flow(lam[0], lam[1], 8000, S->x0, r1);
        gmm_flow(lam[0], lam[1], 16000, S->x0, r2);
        for (size_t q = 0; q < 2 * BNR; q++) {
            dmax = fmax(dmax, fabs(r1[q] - r2[q]));
            S->ref[q] = (float)r2[q];
        }
        printf("\nmixture reference: RK4 in lambda in double, %.2f .. %.2f; 8000 -> 16000 steps "
               "changes it by %.1e\n", lam[0], lam[1], dmax);
        if (dmax > 1e-9) {
            fprintf(stderr, "mixture reference not converged (%.2e)\n", dmax);
            exit(2);
        }
        { /* the library's own model along the same path: rk4 with 4000 steps in float32 */
            float *y = malloc(2 * BNR * sizeof(float));
            score_sampler *s;
            if (y == NULL)
                exit(2);
            CK(score_sampler_new(&s, score_step_type_find("rk4"), NULL, 2));
            CK(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_NUM_STEPS, 4000));
            CK(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_GRID, SCORE_GRID_UNIFORM_LAMBDA));
            CK(score_sampler_run(s, S->sde, BNR, S->x0, y, NULL, NULL, NULL));
            score_sampler_free(s);
            dmax = err_n(2 * BNR, y, S->ref);
            printf("the model's float32 rk4 with 4000 steps differs from it by %.1e\n", dmax);
            free(y);
            if (dmax > 1e-4) {
                fprintf(stderr, "mixture reference disagrees with the model (%.2e)\n", dmax);
                exit(2);
            }
        }
    }
}

static void bsys_free(bsys *S)
{
    score_sde_free(S->sde);
    score_model_free(S->m);
    score_schedule_free(S->sc);
    free(S->x0);
    free(S->ref);
}

/* The sampler with N steps; returns its NFE. */
static uint64_t bsys_sampler(bsys *S, const variant *v, int grid, int64_t N, float *x)
{
    score_sampler *s;
    uint64_t nfe;
    CK(score_sampler_new(&s, score_step_type_find(v->name), NULL, S->dim));
    CK(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_NUM_STEPS, N));
    CK(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_GRID, grid));
    CK(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_ADAPTIVE, 0));
    CK(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_LOWER_ORDER_FINAL, v->lof));
    CK(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_DPMPP_3M_FORM, v->form));
    CK(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_ORDER, v->order));
    CK(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_SUBSTEP, v->substep));
    score_sde_reset_nfe(S->sde);
    CK(score_sampler_run(s, S->sde, BNR, S->x0, x, NULL, NULL, NULL));
    nfe = score_sde_nfe(S->sde);
    if (nfe != score_sampler_get_nfe(s)) {
        fprintf(stderr, "%s: sampler NFE %llu, sde NFE %llu\n", v->name,
                (unsigned long long)score_sampler_get_nfe(s), (unsigned long long)nfe);
        exit(2);
    }
    score_sampler_free(s);
    return nfe;
}

/* DPM-Solver's order sequence for a singlestep solver of order k (2 or 3) and a budget B:
 * order 3: K = B / 3 + 1 steps, (K - 2) x 3 then 2, 1 when 3 | B; (K - 1) x 3 then 1 when
 * B = 1 mod 3; (K - 1) x 3 then 2 when B = 2 mod 3. Order 2: B / 2 x 2, or B / 2 x 2 then 1. */
static int mix_orders(int k, int B, int *ord)
{
    int K = 0;
    if (k == 3) {
        int q = B / 3;
        for (int i = 0; i < (B % 3 == 0 ? q - 1 : q); i++)
            ord[K++] = 3;
        if (B % 3 == 0) {
            ord[K++] = 2;
            ord[K++] = 1;
        } else {
            ord[K++] = B % 3;
        }
    } else {
        for (int i = 0; i < B / 2; i++)
            ord[K++] = 2;
        if (B % 2)
            ord[K++] = 1;
    }
    return K;
}

static uint64_t bsys_mixed(bsys *S, const variant *v, int grid, int B, float *x)
{
    int ord[128], K = mix_orders((int)v->order, B, ord);
    double tg[128], fine[128];
    score_step *st;
    if (v->how == RUN_MIX_OUTER) {
        CK(score_schedule_time_grid(S->sc, grid, (size_t)K + 1, 0, tg));
    } else {
        int c = 0;
        CK(score_schedule_time_grid(S->sc, grid, (size_t)B + 1, 0, fine));
        tg[0] = fine[0];
        for (int k = 0; k < K; k++) {
            c += ord[k];
            tg[k + 1] = fine[c];
        }
    }
    memcpy(x, S->x0, BNR * S->dim * sizeof(float));
    CK(score_step_new(&st, score_step_type_find(v->name), S->dim));
    CK(score_step_set_i64(st, SCORE_STEP_PARAM_SUBSTEP, v->substep));
    score_sde_reset_nfe(S->sde);
    for (int k = 0; k < K; k++) {
        CK(score_step_set_i64(st, SCORE_STEP_PARAM_ORDER, ord[k]));
        CK(score_step_apply(st, S->sde, tg[k], tg[k + 1], BNR, x, NULL, NULL, 0));
    }
    score_step_free(st);
    return score_sde_nfe(S->sde);
}

/* A singlestep type with DPM-Solver's order sequence for budget B run by the sampler
 * (SCORE_SAMPLER_PARAM_ORDER_SEQUENCE = 1 for the outer grid, 2 for the fine one); the program
 * stops unless it equals stepping by hand (bsys_mixed) bit for bit. Returns its NFE. */
static uint64_t bsys_sequence(bsys *S, const variant *v, int grid, int B, float *x)
{
    score_sampler *s;
    uint64_t nfe;
    float *y = malloc(BNR * S->dim * sizeof(float));
    if (y == NULL)
        exit(2);
    CK(score_sampler_new(&s, score_step_type_find(v->name), NULL, S->dim));
    CK(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_NUM_STEPS, B));
    CK(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_GRID, grid));
    CK(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_ORDER, v->order));
    CK(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_SUBSTEP, v->substep));
    CK(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_ORDER_SEQUENCE,
                             v->how == RUN_MIX_OUTER ? 1 : 2));
    score_sde_reset_nfe(S->sde);
    CK(score_sampler_run(s, S->sde, BNR, S->x0, x, NULL, NULL, NULL));
    nfe = score_sde_nfe(S->sde);
    if (nfe != score_sampler_get_nfe(s) || bsys_mixed(S, v, grid, B, y) != nfe ||
        memcmp(x, y, BNR * S->dim * sizeof(float)) != 0) {
        fprintf(stderr, "%s (%s), budget %d: the sampler's order sequence differs from stepping "
                "by hand\n", v->name, v->tag, B);
        exit(2);
    }
    score_sampler_free(s);
    free(y);
    return nfe;
}

/* Runs variant v at budget B; returns the error, or -1 when the variant cannot spend exactly B
 * evaluations (a fixed-grid type whose NFE(N) = a + b N misses B). */
static double bsys_run(bsys *S, const variant *v, int grid, int B, float *x)
{
    uint64_t nfe;
    int64_t N = 0;
    if (v->how != RUN_SAMPLER) {
        nfe = bsys_sequence(S, v, grid, B, x);
    } else {
        uint64_t n1 = bsys_sampler(S, v, grid, 1, x), n2 = bsys_sampler(S, v, grid, 2, x);
        int64_t b = (int64_t)(n2 - n1), a = (int64_t)n1 - b;
        if (b <= 0 || (B - a) % b != 0 || (B - a) / b < 1)
            return -1.0;
        N = (B - a) / b;
        nfe = bsys_sampler(S, v, grid, N, x);
    }
    if (nfe != (uint64_t)B) {
        fprintf(stderr, "%s (%s): NFE %llu != budget %d (N = %lld)\n", v->name, v->tag,
                (unsigned long long)nfe, B, (long long)N);
        exit(2);
    }
    return err_n(BNR * S->dim, x, S->ref);
}

typedef struct winner {
    const char *type, *tag;
    double err;
} winner;

static void budget_tables(void)
{
    static const struct {
        int grid;
        const char *label;
    } grids[3] = {{SCORE_GRID_UNIFORM_LAMBDA, "uniform-lambda"},
                  {SCORE_GRID_UNIFORM_T, "uniform-t"},
                  {SCORE_GRID_KARRAS, "karras"}};
    static winner wins[3][3][NBUDGETS];
    for (int data = 0; data < 3; data++) {
        bsys S;
        float *x;
        bsys_make(&S, data);
        x = malloc(BNR * S.dim * sizeof(float));
        if (x == NULL)
            exit(2);
        /* stepping by hand (the order sequences below) equals the sampler at equal orders */
        {
            static const variant a = {"", "dpmpp-3s", "", 1, 0, 0, 0, RUN_SAMPLER};
            float *y = malloc(BNR * S.dim * sizeof(float));
            double tg[5];
            score_step *st;
            if (y == NULL || bsys_sampler(&S, &a, SCORE_GRID_UNIFORM_LAMBDA, 4, x) != 12)
                exit(2);
            CK(score_schedule_time_grid(S.sc, SCORE_GRID_UNIFORM_LAMBDA, 5, 0, tg));
            memcpy(y, S.x0, BNR * S.dim * sizeof(float));
            CK(score_step_new(&st, score_step_type_find("dpmpp-3s"), S.dim));
            CK(score_step_set_i64(st, SCORE_STEP_PARAM_ORDER, 3));
            for (int k = 0; k < 4; k++)
                CK(score_step_apply(st, S.sde, tg[k], tg[k + 1], BNR, y, NULL, NULL, 0));
            score_step_free(st);
            if (memcmp(x, y, BNR * S.dim * sizeof(float)) != 0) {
                fprintf(stderr, "singlestep by hand differs from the sampler\n");
                exit(2);
            }
            free(y);
        }
        for (int g = 0; g < 3; g++) {
            printf("\n#### Budget table: %s, VP, %s grid\n"
                   "max |x - x_exact| over %d prior draws at t_eps = 1e-3 (no final denoise); "
                   "each type at its best option (in brackets; none = the driver's defaults); "
                   "'-' = the type cannot spend exactly this many evaluations\n\n",
                   S.label, grids[g].label, BNR);
            printf("| sampler |");
            for (int k = 0; k < NBUDGETS; k++)
                printf(" NFE %d |", budgets[k]);
            printf("\n|---|---|---|---|---|---|---|---|\n");
            for (size_t v0 = 0; v0 < NVARIANTS;) {
                size_t v1 = v0;
                while (v1 < NVARIANTS && strcmp(variants[v1].type, variants[v0].type) == 0)
                    v1++;
                printf("| %s |", variants[v0].type);
                for (int k = 0; k < NBUDGETS; k++) {
                    double be = -1.0;
                    const char *bt = "";
                    for (size_t v = v0; v < v1; v++) {
                        double e = bsys_run(&S, &variants[v], grids[g].grid, budgets[k], x);
                        if (e >= 0.0 && (be < 0.0 || e < be)) {
                            be = e;
                            bt = variants[v].tag;
                        }
                    }
                    if (be < 0.0) {
                        printf(" - |");
                        continue;
                    }
                    printf(" %.2e%s%s%s |", be, bt[0] ? " (" : "", bt, bt[0] ? ")" : "");
                    if (wins[data][g][k].type == NULL || be < wins[data][g][k].err) {
                        wins[data][g][k].type = variants[v0].type;
                        wins[data][g][k].tag = bt;
                        wins[data][g][k].err = be;
                    }
                }
                printf("\n");
                v0 = v1;
            }
            printf("| **best** |");
            for (int k = 0; k < NBUDGETS; k++) {
                const winner *w = &wins[data][g][k];
                printf(" %s%s%s%s |", w->type, w->tag[0] ? " (" : "", w->tag, w->tag[0] ? ")" : "");
            }
            printf("\n");
        }
        free(x);
        bsys_free(&S);
    }
    printf("\n#### Budget tables: the best sampler per budget\n"
           "max error; every cell is a score_sampler_run() ('mix': DPM-Solver's order sequence, "
           "SCORE_SAMPLER_PARAM_ORDER_SEQUENCE)\n\n"
           "| data, grid |");
    for (int k = 0; k < NBUDGETS; k++)
        printf(" NFE %d |", budgets[k]);
    printf("\n|---|---|---|---|---|---|---|---|\n");
    for (int data = 0; data < 3; data++)
        for (int g = 0; g < 3; g++) {
            static const char *names[3] = {"Gaussian 2-D", "Gaussian 64-D", "2-D mixture"};
            printf("| %s, %s |", names[data], grids[g].label);
            for (int k = 0; k < NBUDGETS; k++) {
                const winner *w = &wins[data][g][k];
                printf(" %s%s%s%s %.1e |", w->type, w->tag[0] ? " (" : "", w->tag,
                       w->tag[0] ? ")" : "", w->err);
            }
            printf("\n");
        }
}

int main(void)
{
    static const struct {
        int kind, gmm, grid;
        const char *label;
    } cases[4] = {
        {SCORE_SCHEDULE_VP, 0, SCORE_GRID_UNIFORM_LAMBDA, "Gaussian, VP (beta 0.1..20), uniform-lambda grid, T=1 -> 1e-3"},
        {SCORE_SCHEDULE_VE, 0, SCORE_GRID_KARRAS, "Gaussian, VE (sigma 0.01..20), Karras grid (rho 7), T=1 -> 1e-3"},
        {SCORE_SCHEDULE_VP, 1, SCORE_GRID_UNIFORM_LAMBDA, "3-component GMM, VP, uniform-lambda grid (reference: RK4, 4000 steps)"},
        {SCORE_SCHEDULE_VE, 1, SCORE_GRID_KARRAS, "3-component GMM, VE, Karras grid (reference: RK4, 4000 steps)"},
    };
    score_step_type *pub = published_3m();
    int failures = 0;
    for (int c = 0; c < 4; c++) {
        sys S;
        make(&S, cases[c].kind, cases[c].gmm);
        printf("\n### %s\nmax |x - x_ref| over 64 prior draws (achieved NFE in brackets)\n\n", cases[c].label);
        printf("| sampler | order |");
        for (int k = 0; k < 6; k++)
            printf(" NFE %d |", nfes[k]);
        printf(" slope |\n|---|---|---|---|---|---|---|---|---|\n");
        for (size_t s = 0; s < NSOLV; s++) {
            const score_step_type *T = s == NSOLV - 1 ? pub : score_step_type_find(solvers[s].name);
            double lx[6], ly[6], sx = 0, sy = 0, sxx = 0, sxy = 0, slope;
            int m = 0;
            printf("| %s | %d |", solvers[s].name, solvers[s].order);
            for (int k = 0; k < 6; k++) {
                size_t steps = (size_t)floor((double)nfes[k] / solvers[s].nfe_per_step + 0.5);
                float x[2 * NR];
                uint64_t nfe;
                double e;
                if (steps < 1)
                    steps = 1;
                run(&S, T, cases[c].grid, steps, x, &nfe);
                e = err_of(x, S.ref);
                printf(" %.2e [%llu] |", e, (unsigned long long)nfe);
                if (e > 1e-5 && steps >= 4) {
                    lx[m] = log((double)steps);
                    ly[m] = log(e);
                    m++;
                }
            }
            for (int k = 0; k < m; k++) {
                sx += lx[k];
                sy += ly[k];
                sxx += lx[k] * lx[k];
                sxy += lx[k] * ly[k];
            }
            slope = m >= 2 ? -(m * sxy - sx * sy) / (m * sxx - sx * sx) : NAN;
            printf(" %.2f |\n", slope);
            if (m >= 2 && slope < solvers[s].order - 0.3 && !cases[c].gmm && solvers[s].check) {
                fprintf(stderr, "FAIL: %s slope %.2f < order %d - 0.3 (%s)\n", solvers[s].name,
                        slope, solvers[s].order, cases[c].label);
                failures++;
            }
        }
        /* doubling slopes in the asymptotic range for the high-order solvers */
        printf("\nlog2 error ratios per doubling of the step count ((floor): error below 1e-5):\n\n");
        printf("| sampler | N 10->20 | 20->40 | 40->80 | 80->160 | 160->320 |\n|---|---|---|---|---|---|\n");
        for (size_t s = 0; s < NSOLV; s++) {
            const score_step_type *T = s == NSOLV - 1 ? pub : score_step_type_find(solvers[s].name);
            double prev = 0.0;
            printf("| %s |", solvers[s].name);
            for (size_t N = 10; N <= 320; N *= 2) {
                float x[2 * NR];
                double e;
                run(&S, T, cases[c].grid, N, x, NULL);
                e = err_of(x, S.ref);
                if (N > 10)
                    printf(" %s%.2f |", e < 1e-5 ? "(floor) " : "", log2(prev / e));
                prev = e;
            }
            printf("\n");
        }
        /* adaptive solvers */
        printf("\nadaptive (rtol = atol = tol): max error / tol, NFE\n\n");
        printf("| solver | tol 1e-3 | tol 1e-4 | tol 1e-5 | tol 1e-6 |\n|---|---|---|---|---|\n");
        {
            static const char *ad[3] = {"dopri5", "dpm-solver-12", "dpm-solver-23"};
            static const double tols[4] = {1e-3, 1e-4, 1e-5, 1e-6};
            for (int a = 0; a < 3; a++) {
                printf("| %s |", ad[a]);
                for (int k = 0; k < 4; k++) {
                    score_sampler *s;
                    float x[2 * NR];
                    CK(score_sampler_new(&s, score_step_type_find(ad[a]), NULL, 2));
                    CK(score_sampler_set_f64(s, SCORE_SAMPLER_PARAM_RTOL, tols[k]));
                    CK(score_sampler_set_f64(s, SCORE_SAMPLER_PARAM_ATOL, tols[k]));
                    CK(score_sampler_run(s, S.sde, NR, S.x0, x, NULL, NULL, NULL));
                    printf(" %.2f, NFE %llu |", err_of(x, S.ref) / tols[k],
                           (unsigned long long)score_sampler_get_nfe(s));
                    score_sampler_free(s);
                }
                printf("\n");
            }
        }
        unmake(&S);
    }
    score_step_type_free(pub);
    budget_tables();
    if (failures)
        fprintf(stderr, "%d slope check(s) failed\n", failures);
    return failures ? 1 : 0;
}
