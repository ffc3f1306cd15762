/* Suite 'slow': error-vs-NFE tables and convergence slopes of every deterministic sampler on
 * 2-D Gaussian data (exact PF-ODE map in closed form) and a 2-D Gaussian mixture (reference:
 * RK4 with 4000 steps), VP / uniform-lambda and VE / Karras grids, plus the adaptive solvers'
 * error against the requested tolerance. Also measures the published DPM-Solver++(3M) form
 * (implemented here as a user step type) to show that it is only second order.
 *
 * The budget tables: every deterministic type with the driver's defaults (lower-order final
 * steps below 10 steps; the multistep types also without them, "lof 0") at 5, 8, 10, 15, 20, 50 and 100 evaluations on the 2-D Gaussian, VP,
 * on the uniform-lambda, time-uniform and Karras grids (doc/choosing-a-sampler.md).
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

/* Every deterministic type at a fixed budget of evaluations, with the driver's defaults. */
static const struct {
    const char *label, *name;
    int64_t form, lof;
    int nfe_per_step;
} budget_types[] = {
    {"euler", "euler", 0, 1, 1},          {"heun", "heun", 0, 1, 2},
    {"midpoint", "midpoint", 0, 1, 2},    {"rk4", "rk4", 0, 1, 4},
    {"ddim", "ddim", 0, 1, 1},            {"dpm-solver-2", "dpm-solver-2", 0, 1, 2},
    {"dpm-solver-3", "dpm-solver-3", 0, 1, 3}, {"dpmpp-2s", "dpmpp-2s", 0, 1, 2},
    {"dpmpp-3s", "dpmpp-3s", 0, 1, 3},    {"dpmpp-2m", "dpmpp-2m", 0, 1, 1},
    {"dpmpp-3m", "dpmpp-3m", 0, 1, 1},    {"dpmpp-3m (published)", "dpmpp-3m", 1, 1, 1},
    {"lms", "lms", 0, 1, 1},              {"deis", "deis", 0, 1, 1},
    {"unipc", "unipc", 0, 1, 1},          {"unipc-bh1", "unipc-bh1", 0, 1, 1},
    {"dpmpp-2m, lof 0", "dpmpp-2m", 0, 0, 1}, {"dpmpp-3m, lof 0", "dpmpp-3m", 0, 0, 1},
    {"deis, lof 0", "deis", 0, 0, 1},     {"unipc, lof 0", "unipc", 0, 0, 1},
};
#define NBUDGET (sizeof budget_types / sizeof budget_types[0])

static void budget_tables(void)
{
    static const int budgets[7] = {5, 8, 10, 15, 20, 50, 100};
    static const struct {
        int grid;
        const char *label;
    } grids[3] = {{SCORE_GRID_UNIFORM_LAMBDA, "uniform-lambda"},
                  {SCORE_GRID_UNIFORM_T, "uniform-t"},
                  {SCORE_GRID_KARRAS, "karras"}};
    sys S;
    make(&S, SCORE_SCHEDULE_VP, 0);
    for (int g = 0; g < 3; g++) {
        const char *best[7] = {0};
        double beste[7];
        printf("\n### Budget table: Gaussian 2-D, VP, %s grid, driver defaults\n"
               "max |x - x_exact| over 64 prior draws at t_eps = 1e-3 (no final denoise); "
               "'-' = the budget is not a multiple of the type's evaluations per step\n\n",
               grids[g].label);
        printf("| sampler |");
        for (int k = 0; k < 7; k++)
            printf(" NFE %d |", budgets[k]);
        printf("\n|---|---|---|---|---|---|---|---|\n");
        for (size_t b = 0; b < NBUDGET; b++) {
            const char *label = budget_types[b].label;
            printf("| %s |", label);
            for (int k = 0; k < 7; k++) {
                score_sampler *s;
                float x[2 * NR];
                double e;
                int per = budget_types[b].nfe_per_step;
                if (budgets[k] % per != 0 || budgets[k] / per < 1) {
                    printf(" - |");
                    continue;
                }
                CK(score_sampler_new(&s, score_step_type_find(budget_types[b].name), NULL, 2));
                CK(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_NUM_STEPS, budgets[k] / per));
                CK(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_GRID, grids[g].grid));
                CK(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_ADAPTIVE, 0));
                CK(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_DPMPP_3M_FORM,
                                         budget_types[b].form));
                CK(score_sampler_set_i64(s, SCORE_SAMPLER_PARAM_LOWER_ORDER_FINAL,
                                         budget_types[b].lof));
                CK(score_sampler_run(s, S.sde, NR, S.x0, x, NULL, NULL, NULL));
                if (score_sampler_get_nfe(s) != (uint64_t)budgets[k]) {
                    fprintf(stderr, "%s: NFE %llu != %d\n", label,
                            (unsigned long long)score_sampler_get_nfe(s), budgets[k]);
                    exit(2);
                }
                score_sampler_free(s);
                e = err_of(x, S.ref);
                printf(" %.2e |", e);
                if (best[k] == NULL || e < beste[k]) {
                    best[k] = label;
                    beste[k] = e;
                }
            }
            printf("\n");
        }
        printf("| **best** |");
        for (int k = 0; k < 7; k++)
            printf(" %s |", best[k]);
        printf("\n");
    }
    unmake(&S);
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
