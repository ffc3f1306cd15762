/* Writes, for a set of loss configurations on a small MLP, everything an independent PyTorch
 * implementation needs to recompute the loss and its parameter gradient: the architecture
 * (widths, residual flags, activation, Fourier projection), the flat parameters, the data,
 * the noise / times / probes drawn with the layout documented in loss.h, the level tables of
 * discrete schedules, and libscore's loss value and gradient. Read by check_losses.py.
 *
 * Output: text lines "key value..." with doubles printed as %.17g; one block per case between
 * "case <name>" and "end". */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libscore/libscore.h>

#include "kernel/kernel-priv.h"
#include "model/mlp-priv.h"

#define CK(call)                                                                          \
    do {                                                                                  \
        int rc_ = (call);                                                                 \
        if (rc_ != SCORE_OK) {                                                            \
            fprintf(stderr, "%s:%d: %s failed: %s (%s)\n", __FILE__, __LINE__, #call,     \
                    score_status_name(rc_), score_last_error_message());                  \
            exit(1);                                                                      \
        }                                                                                 \
    } while (0)

enum { N = 10, DIM = 3 };

typedef struct {
    const char *name;
    int loss, sched, output, cond, act;
    int reduce, weighting, importance, probe, M;
    double time, cond_value, sigma, p;
    int K, m; /* labels 0..K-1 (and the null label) / a context of width m; 0: none */
    int energy; /* 1: the energy MLP (score = -grad_x E), whose energy and score are dumped too */
} dump_case;

static const dump_case cases[] = {
    {"hyvarinen-bare", SCORE_LOSS_HYVARINEN, 0, 0, 0, SCORE_ACT_TANH, 0, 0, 0, 0, 0, 0, 0.3, 0, 0, 0, 0, 0},
    {"hyvarinen-edm-ve", SCORE_LOSS_HYVARINEN, SCORE_SCHEDULE_VE, SCORE_OUTPUT_EDM, 0, SCORE_ACT_SILU, 0, 0, 0, 0, 0, 0.5, 0, 0, 0, 0, 0, 0},
    {"ssm-bare", SCORE_LOSS_SSM, 0, 0, 0, SCORE_ACT_SILU, 0, 0, 0, SCORE_LOSS_PROBE_RADEMACHER, 2, 0, -0.2, 0, 0, 0, 0, 0},
    {"ssm-vr-bare", SCORE_LOSS_SSM_VR, 0, 0, 0, SCORE_ACT_GELU, 0, 0, 0, SCORE_LOSS_PROBE_GAUSSIAN, 3, 0, 0.1, 0, 0, 0, 0, 0},
    {"ssm-sphere-eps-vp", SCORE_LOSS_SSM, SCORE_SCHEDULE_VP, SCORE_OUTPUT_EPS, 0, SCORE_ACT_SOFTPLUS, 0, 0, 0, SCORE_LOSS_PROBE_SPHERE, 2, 0.3, 0, 0, 0, 0, 0, 0},
    {"dsm-bare", SCORE_LOSS_DSM, 0, 0, 0, SCORE_ACT_ELU, 0, 0, 0, 0, 0, 0, 0.4, 0.5, 0, 0, 0, 0},
    {"ncsn", SCORE_LOSS_NCSN, SCORE_SCHEDULE_NCSN, SCORE_OUTPUT_SCORE_OVER_SIGMA, SCORE_COND_SIGMA, SCORE_ACT_SILU, 0, 0, 0, 0, 0, 0, 0, 0, 2.0, 0, 0, 0},
    {"ddpm", SCORE_LOSS_DDPM, SCORE_SCHEDULE_DDPM_LINEAR, SCORE_OUTPUT_EPS, SCORE_COND_T_SCALED, SCORE_ACT_SILU, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"sde-ve-sigma2", SCORE_LOSS_SDE, SCORE_SCHEDULE_VE, SCORE_OUTPUT_SCORE, SCORE_COND_T, SCORE_ACT_SILU, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"sde-vp-likelihood-mean", SCORE_LOSS_SDE, SCORE_SCHEDULE_VP, SCORE_OUTPUT_EPS, SCORE_COND_T, SCORE_ACT_TANH, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"sde-vp-importance", SCORE_LOSS_SDE, SCORE_SCHEDULE_VP, SCORE_OUTPUT_SCORE, SCORE_COND_T, SCORE_ACT_SILU, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    /* conditional networks: the label table and the context columns in every machinery */
    {"hyvarinen-labels-context", SCORE_LOSS_HYVARINEN, 0, 0, 0, SCORE_ACT_TANH, 0, 0, 0, 0, 0, 0, 0.3, 0, 0, 3, 2, 0},
    {"ssm-vr-labels", SCORE_LOSS_SSM_VR, 0, 0, 0, SCORE_ACT_SILU, 0, 0, 0, SCORE_LOSS_PROBE_RADEMACHER, 2, 0, -0.1, 0, 0, 4, 0, 0},
    {"dsm-context", SCORE_LOSS_DSM, 0, 0, 0, SCORE_ACT_GELU, 0, 0, 0, 0, 0, 0, 0.2, 0.3, 0, 0, 3, 0},
    {"sde-vp-labels-context", SCORE_LOSS_SDE, SCORE_SCHEDULE_VP, SCORE_OUTPUT_EPS, SCORE_COND_T, SCORE_ACT_SILU, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3, 2, 0},
    /* a noise-conditional classifier (K classes): cross-entropy, its gradient and grad_x */
    {"classifier-vp", SCORE_LOSS_CLASSIFIER, SCORE_SCHEDULE_VP, 0, 0, SCORE_ACT_SILU, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0},
    /* the energy MLP: the losses' parameter gradients by double back-propagation */
    {"energy-dsm", SCORE_LOSS_DSM, 0, 0, 0, SCORE_ACT_SILU, 0, 0, 0, 0, 0, 0, 0.4, 0.5, 0, 0, 0, 1},
    {"energy-ncsn", SCORE_LOSS_NCSN, SCORE_SCHEDULE_NCSN, SCORE_OUTPUT_SCORE_OVER_SIGMA, SCORE_COND_SIGMA, SCORE_ACT_GELU, 0, 0, 0, 0, 0, 0, 0, 0, 2.0, 0, 0, 1},
    {"energy-sde-vp-sigma2", SCORE_LOSS_SDE, SCORE_SCHEDULE_VP, SCORE_OUTPUT_SCORE, SCORE_COND_T, SCORE_ACT_SILU, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1},
    {"energy-sde-ve-likelihood", SCORE_LOSS_SDE, SCORE_SCHEDULE_VE, SCORE_OUTPUT_SCORE, SCORE_COND_T, SCORE_ACT_TANH, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1},
    {"energy-sde-vp-eps", SCORE_LOSS_SDE, SCORE_SCHEDULE_VP, SCORE_OUTPUT_EPS, SCORE_COND_T, SCORE_ACT_SOFTPLUS, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1},
    /* the energy MLP: Hyvärinen, SSM and SM-VR (third derivatives of E), labels and context */
    {"energy-hyvarinen-bare", SCORE_LOSS_HYVARINEN, 0, 0, 0, SCORE_ACT_TANH, 0, 0, 0, 0, 0, 0, 0.3, 0, 0, 0, 0, 1},
    {"energy-hyvarinen-vp", SCORE_LOSS_HYVARINEN, SCORE_SCHEDULE_VP, SCORE_OUTPUT_SCORE, 0, SCORE_ACT_SILU, 0, 0, 0, 0, 0, 0.4, 0, 0, 0, 0, 0, 1},
    {"energy-ssm-bare", SCORE_LOSS_SSM, 0, 0, 0, SCORE_ACT_GELU, 0, 0, 0, SCORE_LOSS_PROBE_RADEMACHER, 2, 0, -0.2, 0, 0, 0, 0, 1},
    {"energy-ssm-vr-vp-eps", SCORE_LOSS_SSM_VR, SCORE_SCHEDULE_VP, SCORE_OUTPUT_EPS, 0, SCORE_ACT_SOFTPLUS, 0, 0, 0, SCORE_LOSS_PROBE_GAUSSIAN, 3, 0.3, 0, 0, 0, 0, 0, 1},
    {"energy-hyv-labels-context", SCORE_LOSS_HYVARINEN, 0, 0, 0, SCORE_ACT_TANH, 0, 0, 0, 0, 0, 0, 0.3, 0, 0, 3, 2, 1},
    {"energy-dsm-labels-context", SCORE_LOSS_DSM, 0, 0, 0, SCORE_ACT_GELU, 0, 0, 0, 0, 0, 0, 0.2, 0.3, 0, 3, 2, 1},
};

static void vec_f(const char *key, size_t n, const float *v)
{
    printf("%s %zu", key, n);
    for (size_t i = 0; i < n; i++)
        printf(" %.9g", (double)v[i]);
    printf("\n");
}

static void vec_d(const char *key, size_t n, const double *v)
{
    printf("%s %zu", key, n);
    for (size_t i = 0; i < n; i++)
        printf(" %.17g", v[i]);
    printf("\n");
}

static void run_case(const dump_case *c, uint64_t seed)
{
    score_model *m;
    score_schedule *s = NULL;
    score_sde *sde = NULL;
    score_loss *l;
    score_rng *r;
    score__mlp_info info;
    size_t np, d4 = (DIM + 3) / 4 * 4;
    float *p, *g, x[N * DIM], z[N * DIM];
    double u[N], loss, tmp[N];
    size_t idx[N];

    const int clf = c->loss == SCORE_LOSS_CLASSIFIER;
    int32_t lab[N];
    float ctx[N * 4];
    if (clf) {
        CK(score_schedule_new(&s, c->sched));
        CK(score_schedule_prepare(s));
        CK(score_model_new_classifier(&m, s, DIM, (size_t)c->K));
        CK(score_model_set_i64(m, SCORE_MODEL_PARAM_HIDDEN, 8));
        CK(score_model_set_i64(m, SCORE_MODEL_PARAM_DEPTH, 2));
        CK(score_model_set_i64(m, SCORE_MODEL_PARAM_ACTIVATION, c->act));
        CK(score_model_set_i64(m, SCORE_MODEL_PARAM_SEED, (int64_t)seed));
    } else if (c->energy) {
        CK(score_model_new_energy(&m, DIM));
        CK(score_model_set_i64(m, SCORE_MODEL_PARAM_HIDDEN, 8));
        CK(score_model_set_i64(m, SCORE_MODEL_PARAM_DEPTH, 2));
        CK(score_model_set_i64(m, SCORE_MODEL_PARAM_ACTIVATION, c->act));
        CK(score_model_set_i64(m, SCORE_MODEL_PARAM_SEED, (int64_t)seed));
        if (c->K)
            CK(score_model_set_i64(m, SCORE_MODEL_PARAM_NUM_CLASSES, c->K));
        if (c->m)
            CK(score_model_set_i64(m, SCORE_MODEL_PARAM_CONTEXT_DIM, c->m));
    } else {
        CK(score_model_new_mlp(&m, DIM, 8, 2, c->act, seed));
        if (c->K)
            CK(score_model_set_i64(m, SCORE_MODEL_PARAM_NUM_CLASSES, c->K));
        if (c->m)
            CK(score_model_set_i64(m, SCORE_MODEL_PARAM_CONTEXT_DIM, c->m));
    }
    CK(score_model_set_i64(m, SCORE_MODEL_PARAM_EMBED_DIM, 4));
    CK(score_model_set_f64(m, SCORE_MODEL_PARAM_FOURIER_SCALE, 1.0));
    CK(score_model_prepare(m));
    CK(score_rng_new(&r, SCORE_RNG_PHILOX4X32_10, seed + 100));
    CK(score_rng_fill_normal(r, 0, N, 0, DIM, x));
    CK(score_rng_set_counter(r, 7));
    CK(score_loss_new(&l, c->loss));
    /* labels: every class and (for a score network) the null label; a context per row */
    for (size_t b = 0; b < N; b++) {
        int v = (int)((b * 3 + 1) % (size_t)(c->K + (clf ? 0 : 1)));
        lab[b] = !clf && v == c->K ? SCORE_LABEL_NULL : v;
    }
    for (size_t i = 0; i < (size_t)N * (size_t)c->m; i++)
        ctx[i] = (float)(0.8 * sin(0.7 * (double)i + 0.3));
    if (c->K)
        CK(score_loss_set_labels(l, N, lab));
    if (c->m)
        CK(score_loss_set_context(l, N, (size_t)c->m, ctx));
    if (clf) {
        /* the classifier's own schedule; no sde */
    } else if (c->sched) {
        CK(score_schedule_new(&s, c->sched));
        if (c->sched == SCORE_SCHEDULE_NCSN) {
            CK(score_schedule_set_f64(s, SCORE_SCHEDULE_PARAM_SIGMA_MAX, 1.0));
            CK(score_schedule_set_i64(s, SCORE_SCHEDULE_PARAM_NUM_LEVELS, 10));
        }
        CK(score_schedule_prepare(s));
        CK(score_sde_new(&sde, s, m, c->output));
        if (c->cond)
            CK(score_sde_set_i64(sde, SCORE_SDE_PARAM_COND, c->cond));
        if (c->time > 0)
            CK(score_loss_set_f64(l, SCORE_LOSS_PARAM_TIME, c->time));
    } else {
        CK(score_loss_set_f64(l, SCORE_LOSS_PARAM_COND, c->cond_value));
        if (c->loss == SCORE_LOSS_DSM)
            CK(score_loss_set_f64(l, SCORE_LOSS_PARAM_SIGMA, c->sigma));
    }
    if (c->M) {
        CK(score_loss_set_i64(l, SCORE_LOSS_PARAM_PROJECTIONS, c->M));
        CK(score_loss_set_i64(l, SCORE_LOSS_PARAM_PROBE, c->probe));
    }
    if (c->reduce)
        CK(score_loss_set_i64(l, SCORE_LOSS_PARAM_REDUCE, c->reduce));
    if (c->weighting)
        CK(score_loss_set_i64(l, SCORE_LOSS_PARAM_WEIGHTING, c->weighting));
    if (c->importance)
        CK(score_loss_set_i64(l, SCORE_LOSS_PARAM_IMPORTANCE, 1));
    if (c->p != 0)
        CK(score_loss_set_f64(l, SCORE_LOSS_PARAM_ANNEAL_POWER, c->p));

    np = score_model_param_count(m);
    p = malloc(np * sizeof *p);
    g = calloc(np, sizeof *g);
    CK(score_model_params_get(m, p, np));
    CK(score_loss_compute(l, sde, m, r, N, x, &loss, g));

    printf("case %s\n", c->name);
    printf("loss_kind %s\n", score_loss_name(l));
    printf("sched %s\n", s ? score_schedule_name(s) : "none");
    printf("output %d\ncond %d\nreduce %d\nweighting %d\nimportance %d\nprobe %d\nM %d\n",
           c->output, c->cond, c->reduce, c->weighting, c->importance, c->probe, c->M);
    printf("time %.17g\ncond_value %.17g\nsigma %.17g\nanneal_power %.17g\n", c->time,
           c->cond_value, c->sigma, c->p == 0 ? 2.0 : c->p);
    printf("n %d\ndim %d\n", N, DIM);
    CK(score__mlp_info_get(m, &info) == SCORE_OK ? SCORE_OK : SCORE_E_GENERIC);
    printf("act %s\n", score__act_name(info.activation));
    printf("K %d\nm %d\nlabel_offset %zu\n", c->K, c->m, info.label_offset);
    if (c->K) {
        for (size_t b = 0; b < N; b++) /* as the network reads them: the null label is K */
            tmp[b] = lab[b] == SCORE_LABEL_NULL ? (double)c->K : (double)lab[b];
        vec_d("labels", N, tmp);
    }
    if (c->m)
        vec_f("ctx", (size_t)N * (size_t)c->m, ctx);
    printf("widths %zu", info.n_layers + 1);
    for (size_t i = 0; i <= info.n_layers; i++)
        printf(" %zu", info.width[i]);
    printf("\nresidual %zu", info.n_layers + 1);
    for (size_t i = 0; i <= info.n_layers; i++)
        printf(" %d", info.residual[i]);
    printf("\n");
    vec_f("fourier", info.embed_in / 2, info.fourier);
    vec_f("params", np, p);
    vec_f("x", N * DIM, x);
    CK(score_rng_fill_normal(r, 0, N, 0, DIM, z));
    vec_f("z", N * DIM, z);
    CK(score_rng_fill_uniform_f64(r, 0, N, d4, 1, u));
    vec_d("u", N, u);
    if (s) {
        size_t L = score_schedule_num_levels(s);
        double *sg = malloc(L * sizeof *sg), *al = malloc(L * sizeof *al), T;
        CK(score_schedule_get_f64(s, SCORE_SCHEDULE_PARAM_T, &T));
        printf("T %.17g\n", T);
        if (score_schedule_is_discrete(s) == 1) {
            CK(score_rng_fill_index(r, 0, N, d4, 1, L, idx));
            for (size_t b = 0; b < N; b++)
                tmp[b] = (double)idx[b];
            vec_d("idx", N, tmp);
            CK(score_schedule_levels(s, L, sg, al));
            vec_d("level_sigma", L, sg);
            vec_d("level_alpha", L, al);
        }
        free(sg);
        free(al);
    }
    if (c->M) {
        float *v = malloc((size_t)N * c->M * DIM * sizeof *v);
        if (c->probe == SCORE_LOSS_PROBE_RADEMACHER)
            CK(score_rng_fill_rademacher(r, 0, N, d4 + 4, (size_t)c->M * DIM, v));
        else
            CK(score_rng_fill_normal(r, 0, N, d4 + 4, (size_t)c->M * DIM, v));
        vec_f("v", (size_t)N * c->M * DIM, v);
        free(v);
    }
    if (clf) {
        /* grad_x log p(y | x, t) and log p at the data rows and times u */
        float gx[N * DIM];
        double logp[N], tt[N];
        for (size_t b = 0; b < N; b++)
            tt[b] = 0.05 + 0.9 * u[b];
        CK(score_classifier_grad_x(m, N, tt, x, lab, logp, gx));
        vec_d("gx_t", N, tt);
        vec_d("logp", N, logp);
        vec_f("gx", N * DIM, gx);
    }
    if (c->energy)
        printf("energy 1\n");
    if (c->energy && c->K == 0 && c->m == 0) {
        /* E(x, c) and the score -grad_x E at the data rows and conditions u (the null label,
         * no context: unconditional energies only) */
        float sc[N * DIM];
        double E[N];
        CK(score_model_energy(m, N, x, u, E));
        CK(score_model_forward(m, N, x, u, sc));
        vec_d("E", N, E);
        vec_f("score", N * DIM, sc);
    }
    printf("loss %.17g\n", loss);
    vec_f("grad", np, g);
    printf("end\n");
    free(p);
    free(g);
    score_loss_free(l);
    score_sde_free(sde);
    score_schedule_free(s);
    score_model_free(m);
    score_rng_free(r);
}

int main(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(&cases[i], 3 + i);
    return 0;
}
