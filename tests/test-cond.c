/* Conditions (class labels, context vectors) through the sde, the loss and the trainer; label
 * dropout; classifier-free guidance on one network. The exact oracle is the analytic
 * Gaussian mixture, whose components are its classes. The end-to-end case trains a
 * class-conditional MLP on ring8 (two independent trainings, against an unconditional MLP);
 * built with COND_E2E_FULL=1 (the "slow" suite) it runs at larger sizes (2000 steps for the
 * unconditional model, 6000 for the conditional one, 2000 samples per class). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers/test-helpers.h"
#include "helpers/ring8.h"
#include "loss/loss-priv.h"
#include "train/train-priv.h"


/* The ring of 8 Gaussians (score_dataset_toy_mixture "ring8") as an analytic model. */
typedef struct ring {
    score_schedule *sched;
    score_model *gmm;
    double w[K8], mu[2 * K8], var[2 * K8];
} ring;

static void ring_make(ring *r)
{
    size_t k = 0;
    ck_assert_ok(score_schedule_new(&r->sched, SCORE_SCHEDULE_VP));
    ck_assert_ok(score_schedule_prepare(r->sched));
    ck_assert_ok(score_dataset_toy_mixture("ring8", K8, &k, r->w, r->mu, r->var));
    ck_assert_uint_eq(k, K8);
    ck_assert_ok(score_model_new_gmm(&r->gmm, r->sched, 2, K8, r->w, r->mu, r->var));
}

static void ring_free(ring *r)
{
    score_model_free(r->gmm);
    score_schedule_free(r->sched);
}

static score_sde *make_sde(const ring *r, score_model *m, int64_t label, double w)
{
    score_sde *sde;
    ck_assert_ok(score_sde_new(&sde, r->sched, m, SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_sde_set_label(sde, label));
    ck_assert_ok(score_sde_set_f64(sde, SCORE_SDE_PARAM_GUIDANCE, w));
    return sde;
}

/* n test points spread over the plane (a fixed pattern, some near and some far from the
 * components). */
static void points(size_t n, float *x)
{
    for (size_t b = 0; b < n; b++) {
        double a = 0.7 * (double)b, rad = 0.3 + 0.45 * (double)(b % 11);
        x[2 * b] = (float)(rad * cos(a));
        x[2 * b + 1] = (float)(rad * sin(a) - 0.2);
    }
}

/* ---- the label-aware GMM ---------------------------------------------------------------- */

START_TEST(gmm_reports_its_classes)
{
    ring r;
    score_model *g, *c, *sum;
    void *buf = NULL;
    size_t len = 0;
    int64_t v = -1;
    const double one = 1.0, mu[2] = {0, 0}, var[2] = {1, 1};
    ring_make(&r);
    ck_assert_ok(score_model_get_i64(r.gmm, SCORE_MODEL_PARAM_NUM_CLASSES, &v));
    ck_assert_int_eq(v, K8);
    ck_assert_ok(score_model_get_i64(r.gmm, SCORE_MODEL_PARAM_CONTEXT_DIM, &v));
    ck_assert_int_eq(v, 0);
    /* fixed by the mixture: not settable */
    ck_assert_fails_with(score_model_set_i64(r.gmm, SCORE_MODEL_PARAM_NUM_CLASSES, K8),
                         SCORE_E_UNSUPPORTED);
    /* copies and files keep it */
    ck_assert_ok(score_model_clone(&c, r.gmm));
    ck_assert_ok(score_model_get_i64(c, SCORE_MODEL_PARAM_NUM_CLASSES, &v));
    ck_assert_int_eq(v, K8);
    score_model_free(c);
    ck_assert_ok(score_model_save_buffer(r.gmm, &buf, &len));
    ck_assert_ok(score_model_load_buffer(&c, buf, len));
    ck_assert_ok(score_model_get_i64(c, SCORE_MODEL_PARAM_NUM_CLASSES, &v));
    ck_assert_int_eq(v, K8);
    score_model_free(c);
    score_free(buf);
    /* a single Gaussian takes no labels */
    ck_assert_ok(score_model_new_gaussian(&g, r.sched, 2, mu, NULL, var));
    ck_assert_ok(score_model_get_i64(g, SCORE_MODEL_PARAM_NUM_CLASSES, &v));
    ck_assert_int_eq(v, 0);
    /* a combination takes its members' common labels */
    ck_assert_ok(score_model_new_sum(&sum, 1, &r.gmm, &one));
    ck_assert_ok(score_model_get_i64(sum, SCORE_MODEL_PARAM_NUM_CLASSES, &v));
    ck_assert_int_eq(v, K8);
    score_model_free(sum);
    {
        score_model *pair[2] = {r.gmm, g};
        ck_assert_ok(score_model_new_sum(&sum, 2, pair, NULL));
        ck_assert_ok(score_model_get_i64(sum, SCORE_MODEL_PARAM_NUM_CLASSES, &v));
        ck_assert_int_eq(v, K8); /* the Gaussian has no label input: it ignores them */
        score_model_free(sum);
    }
    score_model_free(g);
    ring_free(&r);
}
END_TEST

/* With label y the sde's score, divergence and Hutchinson divergence are those of component
 * y alone: s = -(x - alpha mu_y) / d, d = alpha^2 v_y + sigma^2, tr = -sum_m 1 / d_m. The
 * model evaluates the closed form in double and rounds once to float, so each score is
 * within one float ulp of the double value computed here. */
START_TEST(label_gives_component_score)
{
    enum { N = 40 };
    ring r;
    float x[2 * N], s[2 * N];
    double t[N], div[N], pdiv[N], hdiv[N];
    const double times[3] = {0.05, 0.3, 0.9};
    float probes[2 * N];
    double max_ulp = 0.0, max_tr = 0.0;
    ring_make(&r);
    points(N, x);
    for (size_t i = 0; i < 2 * N; i++)
        probes[i] = 1.0f; /* v = (1, 1): v^T H v = tr H for a diagonal Hessian */
    for (int y = 0; y < K8; y++) {
        score_sde *sde = make_sde(&r, r.gmm, y, 0.0);
        for (int ti = 0; ti < 3; ti++) {
            double al, si, f, g;
            for (size_t b = 0; b < N; b++)
                t[b] = times[ti];
            ck_assert_ok(score_schedule_alpha_sigma(r.sched, 1, &t[0], &al, &si));
            ck_assert_ok(score_schedule_sde_coefs(r.sched, 1, &t[0], &f, &g));
            ck_assert_ok(score_sde_score(sde, N, t, x, s));
            ck_assert_ok(score_sde_divergence(sde, N, t, x, div, NULL));
            ck_assert_ok(score_sde_pf_divergence(sde, N, t, x, 0, NULL, pdiv, NULL));
            ck_assert_ok(score_sde_pf_divergence(sde, N, t, x, 1, probes, hdiv, NULL));
            for (size_t b = 0; b < N; b++) {
                double tr = 0.0;
                for (int m = 0; m < 2; m++) {
                    double d = al * al * r.var[2 * y + m] + si * si;
                    double ref = -((double)x[2 * b + m] - al * r.mu[2 * y + m]) / d;
                    double ulp = ldexp(1.0, ilogb(ref) - 23);
                    double e = fabs((double)s[2 * b + m] - ref) / ulp;
                    ck_assert_msg(e <= 1.0, "y %d t %g row %zu: score %.9g, closed form %.17g",
                                  y, t[b], b, (double)s[2 * b + m], ref);
                    if (e > max_ulp)
                        max_ulp = e;
                    tr -= 1.0 / d;
                }
                ck_assert_msg(fabs(div[b] - tr) <= 1e-12 * fabs(tr), "divergence %.17g vs %.17g",
                              div[b], tr);
                /* the jvp returns H v rounded to float32: a few 2^-24 relative to the terms
                 * f dim and g^2 tr / 2 of the PF divergence */
                ck_assert_msg(fabs(hdiv[b] - pdiv[b]) <= 1e-6 * (2 * fabs(f) + 0.5 * g * g * fabs(tr)),
                              "Hutchinson (jvp) %.17g vs exact %.17g", hdiv[b], pdiv[b]);
                if (fabs(div[b] - tr) / fabs(tr) > max_tr)
                    max_tr = fabs(div[b] - tr) / fabs(tr);
            }
        }
        score_sde_free(sde);
    }
    printf("cond: label y score vs closed form: max %.3g ulp; divergence rel. error %.3g\n",
           max_ulp, max_tr);
    ring_free(&r);
}
END_TEST

/* The null label, no label, and a combination that passes the labels on. */
START_TEST(null_label_is_the_mixture)
{
    enum { N = 16 };
    ring r;
    score_model *sum;
    const double one = 1.0;
    float x[2 * N], a[2 * N], b[2 * N], c[2 * N];
    double t[N];
    score_sde *plain, *sde, *csde;
    ring_make(&r);
    points(N, x);
    for (size_t i = 0; i < N; i++)
        t[i] = 0.2 + 0.04 * (double)i;
    ck_assert_ok(score_sde_new(&plain, r.sched, r.gmm, SCORE_OUTPUT_SCORE));
    sde = make_sde(&r, r.gmm, 3, 0.0);
    ck_assert_ok(score_sde_score(plain, N, t, x, a));
    ck_assert_ok(score_sde_set_label(sde, SCORE_LABEL_NULL));
    ck_assert_ok(score_sde_score(sde, N, t, x, b));
    ck_assert_mem_eq(a, b, sizeof a);
    /* the label through a combination: member workspaces get it */
    ck_assert_ok(score_model_new_sum(&sum, 1, &r.gmm, &one));
    csde = make_sde(&r, sum, 5, 0.0);
    ck_assert_ok(score_sde_set_label(sde, 5));
    ck_assert_ok(score_sde_score(sde, N, t, x, b));
    ck_assert_ok(score_sde_score(csde, N, t, x, c));
    ck_assert_mem_eq(b, c, sizeof b);
    ck_assert(memcmp(a, b, sizeof a) != 0);
    score_sde_free(csde);
    score_model_free(sum);
    score_sde_free(sde);
    score_sde_free(plain);
    ring_free(&r);
}
END_TEST

START_TEST(sde_condition_refusals)
{
    ring r;
    score_model *g;
    score_sde *sde;
    float x[2] = {0.5f, 0.5f}, s[2];
    double t = 0.5;
    const double mu[2] = {0, 0}, var[2] = {1, 1};
    const float ctx[2] = {1, 2};
    ring_make(&r);
    ck_assert_ok(score_sde_new(&sde, r.sched, r.gmm, SCORE_OUTPUT_SCORE));
    ck_assert_fails_with(score_sde_set_label(sde, K8), SCORE_E_RANGE);
    ck_assert_fails_with(score_sde_set_label(sde, -2), SCORE_E_RANGE);
    ck_assert_fails_with(score_sde_set_label(NULL, 0), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_set_context(sde, 2, ctx), SCORE_E_UNSUPPORTED);
    ck_assert_ok(score_sde_set_context(sde, 0, NULL));
    /* guidance without a label is refused at the evaluation */
    ck_assert_ok(score_sde_set_f64(sde, SCORE_SDE_PARAM_GUIDANCE, 1.0));
    ck_assert_fails_with(score_sde_score(sde, 1, &t, x, s), SCORE_E_INVAL);
    ck_assert_ok(score_sde_set_label(sde, 2));
    ck_assert_ok(score_sde_score(sde, 1, &t, x, s));
    /* a label kept across a model without labels is refused at the evaluation */
    ck_assert_ok(score_model_new_gaussian(&g, r.sched, 2, mu, NULL, var));
    ck_assert_ok(score_sde_set_model(sde, g));
    ck_assert_fails_with(score_sde_score(sde, 1, &t, x, s), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_sde_set_label(sde, 0), SCORE_E_UNSUPPORTED);
    ck_assert_ok(score_sde_set_label(sde, SCORE_LABEL_NULL));
    ck_assert_fails_with(score_sde_score(sde, 1, &t, x, s), SCORE_E_INVAL); /* w = 1 */
    ck_assert_ok(score_sde_set_f64(sde, SCORE_SDE_PARAM_GUIDANCE, 0.0));
    ck_assert_ok(score_sde_score(sde, 1, &t, x, s));
    score_sde_free(sde);
    score_model_free(g);
    ring_free(&r);
}
END_TEST

/* ---- classifier-free guidance in one pass --------------------------------------------------- */

/* One guided call (2n rows through the model at once) against two separate evaluations
 * combined as (1 + w) s_y - w s_null in double. With the score output kind the sde's score of
 * each half is the model's float output itself (a = 1, k = 0), the analytic model evaluates
 * each row on its own whatever the batch, and the sde combines the two halves in double
 * exactly as done here: bit-identical. The divergences likewise (tr_y, tr_null are the
 * model's double traces); the PF divergence f dim - g^2/2 tr is linear in tr, so the two ways
 * differ only by double rounding (relative 1e-13). */
START_TEST(guidance_one_pass_equals_two_evaluations)
{
    enum { N = 24 };
    ring r;
    const double ws[4] = {0.5, 1.0, 3.0, -0.5};
    float x[2 * N], sg[2 * N], sy[2 * N], sn[2 * N], dg[2 * N], dy[2 * N], dn[2 * N];
    double t[N], div_g[N], div_y[N], div_n[N], pg[N], py[N], pn[N];
    ring_make(&r);
    points(N, x);
    for (size_t i = 0; i < N; i++)
        t[i] = 0.02 + 0.04 * (double)i;
    for (int wi = 0; wi < 4; wi++) {
        double w = ws[wi];
        int y = 1 + wi;
        score_sde *g = make_sde(&r, r.gmm, y, w), *cy = make_sde(&r, r.gmm, y, 0.0),
                  *cn = make_sde(&r, r.gmm, SCORE_LABEL_NULL, 0.0);
        ck_assert_ok(score_sde_score(g, N, t, x, sg));
        ck_assert_uint_eq(score_sde_nfe(g), 1);
        ck_assert_ok(score_sde_score(cy, N, t, x, sy));
        ck_assert_ok(score_sde_score(cn, N, t, x, sn));
        for (size_t i = 0; i < 2 * N; i++) {
            float ref = (float)((1.0 + w) * (double)sy[i] - w * (double)sn[i]);
            ck_assert_msg(sg[i] == ref, "w %g element %zu: one pass %.9g, two evaluations %.9g",
                          w, i, (double)sg[i], (double)ref);
        }
        ck_assert_ok(score_sde_divergence(g, N, t, x, div_g, NULL));
        ck_assert_ok(score_sde_divergence(cy, N, t, x, div_y, NULL));
        ck_assert_ok(score_sde_divergence(cn, N, t, x, div_n, NULL));
        ck_assert_ok(score_sde_pf_divergence(g, N, t, x, 0, NULL, pg, dg));
        ck_assert_ok(score_sde_pf_divergence(cy, N, t, x, 0, NULL, py, dy));
        ck_assert_ok(score_sde_pf_divergence(cn, N, t, x, 0, NULL, pn, dn));
        for (size_t b = 0; b < N; b++) {
            double ref = (1.0 + w) * div_y[b] - w * div_n[b];
            double pref = (1.0 + w) * py[b] - w * pn[b], f, gt, scale;
            ck_assert_msg(div_g[b] == ref, "divergence %.17g vs %.17g", div_g[b], ref);
            /* f dim and g^2 tr / 2 nearly cancel: the rounding is relative to their sizes */
            ck_assert_ok(score_schedule_sde_coefs(r.sched, 1, &t[b], &f, &gt));
            scale = (1 + 2 * fabs(w)) * (2 * fabs(f) + 0.5 * gt * gt * (fabs(div_y[b]) + fabs(div_n[b])));
            ck_assert_msg(fabs(pg[b] - pref) <= 1e-14 * scale, "pf divergence %.17g vs %.17g",
                          pg[b], pref);
        }
        /* the drifts are those of the guided score: f x - g^2 s / 2, per element in double */
        for (size_t i = 0; i < 2 * N; i++) {
            double ref = (1.0 + w) * (double)dy[i] - w * (double)dn[i];
            ck_assert_msg(fabs((double)dg[i] - ref) <= 2e-6 * (fabs((double)dy[i]) +
                                                               fabs((double)dn[i])) * (1 + fabs(w)),
                          "drift %.9g vs %.9g", (double)dg[i], ref);
        }
        score_sde_free(g);
        score_sde_free(cy);
        score_sde_free(cn);
    }
    ring_free(&r);
}
END_TEST

/* Per-class sampling of the ring with DPM-Solver++(2M) (20 steps) on the exact conditional
 * score, with and without guidance: fraction of 2000 samples nearest to the requested mean. */
static double class_fraction(const ring *r, score_sampler *smp, int y, double w, size_t n,
                             float *out)
{
    score_rng *rng;
    score_sde *sde = make_sde(r, r->gmm, y, w);
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 100 + (uint64_t)y));
    ck_assert_ok(score_sampler_run(smp, sde, n, NULL, out, rng, NULL, NULL));
    score_rng_free(rng);
    score_sde_free(sde);
    return ring8_nearest_fraction(r->mu, y, n, out);
}

START_TEST(per_class_sampling)
{
    enum { N = 2000 };
    ring r;
    score_sampler *smp;
    float *out = malloc(2 * N * sizeof(float));
    const double ws[2] = {0.0, 1.0};
    ck_assert_ptr_nonnull(out);
    ring_make(&r);
    ck_assert_ok(score_sampler_new_preset(&smp, SCORE_SAMPLER_PRESET_DPMPP_2M, 2));
    for (int wi = 0; wi < 2; wi++) {
        double worst = 1.0;
        for (int y = 0; y < K8; y++) {
            double f = class_fraction(&r, smp, y, ws[wi], N, out);
            ck_assert_msg(f >= 0.99, "w %g class %d: %.4f of the samples nearest its mean",
                          ws[wi], y, f);
            if (f < worst)
                worst = f;
        }
        printf("cond: ring8 per-class DPM-Solver++(2M), w = %g: worst class %.4f nearest to "
               "its mean (2000 samples each)\n", ws[wi], worst);
    }
    score_sampler_free(smp);
    ring_free(&r);
    free(out);
}
END_TEST

/* ---- the loss ------------------------------------------------------------------------------ */

/* A DSM loss with every row labelled y equals, bit for bit, the loss of component y as a
 * one-component mixture (the same arithmetic: the other components get responsibility 0). */
START_TEST(loss_labels)
{
    enum { N = 32 };
    ring r;
    score_model *one;
    score_loss *loss;
    score_sde *sde, *sde1;
    score_rng *rng;
    const double w1 = 1.0;
    int32_t lab[N];
    float x[2 * N];
    double L, L1, Lmix;
    const int y = 6;
    ring_make(&r);
    points(N, x);
    ck_assert_ok(score_model_new_gmm(&one, r.sched, 2, 1, &w1, r.mu + 2 * y, r.var + 2 * y));
    ck_assert_ok(score_sde_new(&sde, r.sched, r.gmm, SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_sde_new(&sde1, r.sched, one, SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 9));
    ck_assert_ok(score_loss_new(&loss, SCORE_LOSS_SDE));
    ck_assert_ok(score_loss_compute(loss, sde, r.gmm, rng, N, x, &Lmix, NULL));
    for (size_t b = 0; b < N; b++)
        lab[b] = y;
    ck_assert_ok(score_loss_set_labels(loss, N, lab));
    ck_assert_ok(score_loss_compute(loss, sde, r.gmm, rng, N, x, &L, NULL));
    ck_assert_ok(score_loss_set_labels(loss, 0, NULL));
    ck_assert_ok(score_loss_compute(loss, sde1, one, rng, N, x, &L1, NULL));
    ck_assert_msg(L == L1, "labelled loss %.17g, one-component loss %.17g", L, L1);
    ck_assert(L != Lmix);
    /* SCORE_LABEL_NULL rows are the mixture */
    for (size_t b = 0; b < N; b++)
        lab[b] = SCORE_LABEL_NULL;
    ck_assert_ok(score_loss_set_labels(loss, N, lab));
    ck_assert_ok(score_loss_compute(loss, sde, r.gmm, rng, N, x, &L, NULL));
    ck_assert_msg(L == Lmix, "null-label loss %.17g, unlabelled %.17g", L, Lmix);
    /* refusals */
    ck_assert_fails_with(score_loss_compute(loss, sde, r.gmm, rng, N - 1, x, &L, NULL),
                         SCORE_E_SHAPE);
    for (size_t b = 0; b < N; b++)
        lab[b] = y;
    ck_assert_ok(score_loss_set_labels(loss, N, lab));
    ck_assert_fails_with(score_loss_compute(loss, sde1, one, rng, N, x, &L, NULL),
                         SCORE_E_RANGE); /* label 6 of a one-class model */
    lab[3] = K8;
    ck_assert_ok(score_loss_set_labels(loss, N, lab));
    ck_assert_fails_with(score_loss_compute(loss, sde, r.gmm, rng, N, x, &L, NULL), SCORE_E_RANGE);
    lab[3] = -2;
    ck_assert_fails_with(score_loss_set_labels(loss, N, lab), SCORE_E_RANGE);
    ck_assert_ok(score_loss_set_labels(loss, 0, NULL));
    ck_assert_ok(score_loss_set_context(loss, N, 2, x));
    ck_assert_fails_with(score_loss_compute(loss, sde, r.gmm, rng, N, x, &L, NULL),
                         SCORE_E_UNSUPPORTED);
    x[5] = NAN;
    ck_assert_fails_with(score_loss_set_context(loss, N, 2, x), SCORE_E_NUMERIC);
    ck_assert_ok(score_loss_set_context(loss, 0, 0, NULL));
    x[5] = 0.0f;
    ck_assert_ok(score_loss_compute(loss, sde, r.gmm, rng, N, x, &L, NULL));
    score_loss_free(loss);
    score_rng_free(rng);
    score_sde_free(sde);
    score_sde_free(sde1);
    score_model_free(one);
    ring_free(&r);
}
END_TEST

/* ---- the trainer ---------------------------------------------------------------------------- */

/* An MLP with a K-class label input. */
static score_model *labelled_mlp(int64_t K, int64_t threads)
{
    score_model *m;
    ck_assert_ok(score_model_new_mlp(&m, 2, 16, 2, SCORE_ACT_SILU, 5));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_NUM_CLASSES, K));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_THREADS, threads));
    ck_assert_ok(score_model_prepare(m));
    return m;
}

enum { ROWS = 256 };

/* Data row r = (r / ROWS, (r % 8) / 8) with label r % 8: a minibatch row tells its data row. */
static void labelled_data(float *x, int32_t *lab)
{
    for (int r = 0; r < ROWS; r++) {
        x[2 * r] = (float)r / ROWS;
        x[2 * r + 1] = (float)(r % K8) / K8;
        lab[r] = r % K8;
    }
}

typedef struct trainer_fx {
    ring r;
    score_model *m;
    score_sde *sde;
    score_loss *loss;
    score_trainer *tr;
    float x[2 * ROWS];
    int32_t lab[ROWS];
} trainer_fx;

static void trainer_fx_make(trainer_fx *f, int64_t threads, int with_labels, uint64_t seed)
{
    ring_make(&f->r);
    f->m = labelled_mlp(K8, threads);
    ck_assert_ok(score_sde_new(&f->sde, f->r.sched, f->m, SCORE_OUTPUT_EPS));
    ck_assert_ok(score_loss_new(&f->loss, SCORE_LOSS_SDE));
    ck_assert_ok(score_trainer_new(&f->tr, f->m, f->sde, f->loss, SCORE_OPTIMIZER_ADAM));
    ck_assert_ok(score_trainer_set_i64(f->tr, SCORE_TRAINER_PARAM_BATCH_SIZE, 64));
    ck_assert_ok(score_trainer_set_i64(f->tr, SCORE_TRAINER_PARAM_SEED, (int64_t)seed));
    labelled_data(f->x, f->lab);
    ck_assert_ok(score_trainer_set_data(f->tr, ROWS, 2, f->x));
    if (with_labels)
        ck_assert_ok(score_trainer_set_labels(f->tr, ROWS, f->lab));
}

static void trainer_fx_free(trainer_fx *f)
{
    score_trainer_free(f->tr);
    score_loss_free(f->loss);
    score_sde_free(f->sde);
    score_model_free(f->m);
    ring_free(&f->r);
}

/* Runs steps and records the labels the loss received (null as -1) into got (steps x 64). */
static void record_steps(trainer_fx *f, int steps, int32_t *got)
{
    for (int s = 0; s < steps; s++) {
        const score_loss *L = score_trainer_loss(f->tr);
        ck_assert_ok(score_trainer_step(f->tr, NULL));
        ck_assert_uint_eq(L->lab_n, 64);
        for (int i = 0; i < 64; i++) {
            /* the label goes with its data row (or is dropped) */
            int row = (int)lround(f->tr->batch[2 * i] * ROWS);
            int32_t y = L->labels[i];
            ck_assert_msg(y == SCORE_LABEL_NULL || y == f->lab[row],
                          "step %d row %d: label %d for data row %d (label %d)", s, i, y, row,
                          f->lab[row]);
            got[s * 64 + i] = y;
        }
    }
}

START_TEST(label_dropout)
{
    enum { STEPS = 200 };
    trainer_fx a, b, c;
    int32_t *ga = malloc(STEPS * 64 * sizeof(int32_t)), *gb = malloc(STEPS * 64 * sizeof(int32_t));
    size_t nulls = 0;
    double frac, sd;
    ck_assert_ptr_nonnull(ga);
    ck_assert_ptr_nonnull(gb);
    trainer_fx_make(&a, 1, 1, 3);
    record_steps(&a, STEPS, ga);
    for (size_t i = 0; i < STEPS * 64; i++)
        nulls += ga[i] == SCORE_LABEL_NULL;
    frac = (double)nulls / (STEPS * 64);
    sd = sqrt(0.1 * 0.9 / (STEPS * 64));
    printf("cond: label dropout p = 0.1: null fraction %.4f over %d decisions (sd %.4f)\n", frac,
           STEPS * 64, sd);
    ck_assert_msg(fabs(frac - 0.1) <= 4 * sd, "null fraction %.4f", frac);
    /* deterministic for a seed; the minibatches are those of a run without labels */
    trainer_fx_make(&b, 1, 1, 3);
    trainer_fx_make(&c, 1, 0, 3);
    for (int s = 0; s < 20; s++) {
        ck_assert_ok(score_trainer_step(c.tr, NULL));
        record_steps(&b, 1, gb + s * 64);
        ck_assert_mem_eq(b.tr->batch, c.tr->batch, 64 * 2 * sizeof(float));
        ck_assert_uint_eq(c.tr->loss->lab_n, 0);
    }
    ck_assert_mem_eq(ga, gb, 20 * 64 * sizeof(int32_t));
    trainer_fx_free(&b);
    trainer_fx_free(&c);
    /* p = 0: no null label; p = 1: only null labels */
    trainer_fx_make(&b, 1, 1, 3);
    ck_assert_ok(score_trainer_set_f64(b.tr, SCORE_TRAINER_PARAM_P_UNCOND, 0.0));
    record_steps(&b, 5, gb);
    for (size_t i = 0; i < 5 * 64; i++)
        ck_assert_int_ne(gb[i], SCORE_LABEL_NULL);
    ck_assert_ok(score_trainer_set_f64(b.tr, SCORE_TRAINER_PARAM_P_UNCOND, 1.0));
    record_steps(&b, 5, gb);
    for (size_t i = 0; i < 5 * 64; i++)
        ck_assert_int_eq(gb[i], SCORE_LABEL_NULL);
    ck_assert_fails_with(score_trainer_set_f64(b.tr, SCORE_TRAINER_PARAM_P_UNCOND, 1.5),
                         SCORE_E_RANGE);
    trainer_fx_free(&b);
    trainer_fx_free(&a);
    free(ga);
    free(gb);
}
END_TEST

START_TEST(trainer_labels_threads)
{
    trainer_fx a, b;
    float *pa, *pb;
    size_t np;
    trainer_fx_make(&a, 1, 1, 11);
    trainer_fx_make(&b, 2, 1, 11);
    ck_assert_ok(score_trainer_run(a.tr, 30, NULL, NULL));
    ck_assert_ok(score_trainer_run(b.tr, 30, NULL, NULL));
    np = score_model_param_count(a.m);
    pa = malloc(np * sizeof(float));
    pb = malloc(np * sizeof(float));
    ck_assert_ptr_nonnull(pa);
    ck_assert_ptr_nonnull(pb);
    ck_assert_ok(score_model_params_get(a.m, pa, np));
    ck_assert_ok(score_model_params_get(b.m, pb, np));
    ck_assert_mem_eq(pa, pb, np * sizeof(float));
    free(pa);
    free(pb);
    trainer_fx_free(&a);
    trainer_fx_free(&b);
}
END_TEST

START_TEST(trainer_condition_refusals)
{
    trainer_fx f;
    score_trainer *tr;
    score_model *plain;
    float ctx[ROWS];
    trainer_fx_make(&f, 1, 0, 1);
    memset(ctx, 0, sizeof ctx);
    ck_assert_fails_with(score_trainer_set_labels(f.tr, ROWS - 1, f.lab), SCORE_E_SHAPE);
    f.lab[7] = K8;
    ck_assert_fails_with(score_trainer_set_labels(f.tr, ROWS, f.lab), SCORE_E_RANGE);
    f.lab[7] = -3;
    ck_assert_fails_with(score_trainer_set_labels(f.tr, ROWS, f.lab), SCORE_E_RANGE);
    f.lab[7] = SCORE_LABEL_NULL; /* a row without a class */
    ck_assert_ok(score_trainer_set_labels(f.tr, ROWS, f.lab));
    ck_assert_fails_with(score_trainer_set_context(f.tr, ROWS, 1, ctx), SCORE_E_UNSUPPORTED);
    ck_assert_ok(score_trainer_set_context(f.tr, 0, 0, NULL));
    /* data replaced by another row count: the next step refuses the stale labels */
    ck_assert_ok(score_trainer_set_data(f.tr, ROWS / 2, 2, f.x));
    ck_assert_fails_with(score_trainer_step(f.tr, NULL), SCORE_E_SHAPE);
    ck_assert_ok(score_trainer_set_labels(f.tr, 0, NULL));
    ck_assert_ok(score_trainer_step(f.tr, NULL));
    /* no data yet; a model without labels */
    ck_assert_ok(score_model_new_mlp(&plain, 2, 8, 1, SCORE_ACT_SILU, 1));
    ck_assert_ok(score_trainer_new(&tr, plain, f.sde, f.loss, SCORE_OPTIMIZER_ADAM));
    ck_assert_fails_with(score_trainer_set_labels(tr, ROWS, f.lab), SCORE_E_STAGE);
    ck_assert_ok(score_trainer_set_data(tr, ROWS, 2, f.x));
    ck_assert_fails_with(score_trainer_set_labels(tr, ROWS, f.lab), SCORE_E_UNSUPPORTED);
    score_trainer_free(tr);
    score_model_free(plain);
    trainer_fx_free(&f);
}
END_TEST

/* ---- end to end: a class-conditional MLP on ring8 ------------------------------------------- */

#ifndef COND_E2E_FULL
#define COND_E2E_FULL 0
#endif
/* Unit version: a shorter training and fewer samples; the slow suite's: the sample
 * counts. E2E_STEPS is the unconditional model's training. */
#define E2E_STEPS (COND_E2E_FULL ? 2000 : 800)
/* The conditional model's steps: see ring8_class_conditional_mlp for why three times as many. */
#define E2E_COND_STEPS (3 * E2E_STEPS)
/* independent trainings whose mean sliced W2 is compared */
#define E2E_RUNS 2
#define E2E_SAMPLES (COND_E2E_FULL ? 2000 : 500)
#define E2E_ROWS 4096
/* points of the sliced-W2 comparison (its sampling noise floor falls as 1 / sqrt(n)) */
#define E2E_SW_N (COND_E2E_FULL ? 8000 : 4000)

/* ring8 points with their blob index as the label: row i from blob i % 8. */
static void ring_labelled_data(const ring *r, float *x, int32_t *lab)
{
    score_rng *rng;
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 5));
    ck_assert_ok(score_rng_fill_normal(rng, 0, E2E_ROWS, 0, 2, x));
    for (int i = 0; i < E2E_ROWS; i++) {
        int y = i % K8;
        lab[i] = y;
        for (int m = 0; m < 2; m++)
            x[2 * i + m] = (float)(r->mu[2 * y + m] + sqrt(r->var[2 * y + m]) * x[2 * i + m]);
    }
    score_rng_free(rng);
}

/* An MLP trained with the SDE loss (VE "ve-toy", EDM output) on the labelled ring, with a label
 * input of 8 classes (p_uncond 0.1) or none; returns its EMA model's sde. */
typedef struct e2e_model {
    score_schedule *sched;
    score_model *m, *ema;
    score_sde *sde;
    score_loss *loss;
    score_trainer *tr;
} e2e_model;

static void e2e_train(e2e_model *E, int K, int steps, uint64_t seed, const float *x,
                      const int32_t *lab)
{
    ck_assert_ok(score_schedule_new_preset(&E->sched, "ve-toy"));
    ck_assert_ok(score_model_new_mlp(&E->m, 2, 64, 3, SCORE_ACT_SILU, 1 + seed));
    ck_assert_ok(score_model_set_i64(E->m, SCORE_MODEL_PARAM_EMBED_DIM, 16));
    ck_assert_ok(score_model_set_f64(E->m, SCORE_MODEL_PARAM_FOURIER_SCALE, 4.0));
    ck_assert_ok(score_model_set_i64(E->m, SCORE_MODEL_PARAM_NUM_CLASSES, K));
    ck_assert_ok(score_model_prepare(E->m));
    ck_assert_ok(score_sde_new(&E->sde, E->sched, E->m, SCORE_OUTPUT_EDM));
    ck_assert_ok(score_loss_new(&E->loss, SCORE_LOSS_SDE));
    ck_assert_ok(score_trainer_new(&E->tr, E->m, E->sde, E->loss, SCORE_OPTIMIZER_ADAM));
    ck_assert_ok(score_trainer_set_i64(E->tr, SCORE_TRAINER_PARAM_BATCH_SIZE, 256));
    ck_assert_ok(score_trainer_set_i64(E->tr, SCORE_TRAINER_PARAM_SEED, (int64_t)seed));
    ck_assert_ok(score_trainer_set_data(E->tr, E2E_ROWS, 2, x));
    if (K > 0)
        ck_assert_ok(score_trainer_set_labels(E->tr, E2E_ROWS, lab));
    ck_assert_ok(score_optimizer_set_f64(score_trainer_optimizer(E->tr), SCORE_OPTIMIZER_PARAM_LR,
                                         1e-2));
    ck_assert_ok(score_trainer_run(E->tr, (size_t)steps * 3 / 4, NULL, NULL));
    ck_assert_ok(score_optimizer_set_f64(score_trainer_optimizer(E->tr), SCORE_OPTIMIZER_PARAM_LR,
                                         2e-3));
    ck_assert_ok(score_trainer_run(E->tr, (size_t)(steps - steps * 3 / 4), NULL, NULL));
    ck_assert_ok(score_trainer_ema_model(E->tr, &E->ema));
    ck_assert_ok(score_sde_set_model(E->sde, E->ema));
}

static void e2e_free(e2e_model *E)
{
    score_trainer_free(E->tr); /* frees the EMA model */
    score_loss_free(E->loss);
    score_sde_free(E->sde);
    score_model_free(E->m);
    score_schedule_free(E->sched);
}

static int cmp_double(const void *a, const void *b)
{
    double u = *(const double *)a, v = *(const double *)b;
    return (u > v) - (u < v);
}

/* Sliced Wasserstein-2 distance between two 2-D samples of n points: the root mean over 64
 * evenly spaced directions of the 1-D W2^2 of the sorted projections. */
static double sliced_w2(size_t n, const float *a, const float *b)
{
    double *pa = malloc(n * sizeof(double)), *pb = malloc(n * sizeof(double)), acc = 0.0;
    ck_assert_ptr_nonnull(pa);
    ck_assert_ptr_nonnull(pb);
    for (int d = 0; d < 64; d++) {
        const double pi = 3.14159265358979323846;
        double c = cos(pi * d / 64), s = sin(pi * d / 64);
        for (size_t i = 0; i < n; i++) {
            pa[i] = c * a[2 * i] + s * a[2 * i + 1];
            pb[i] = c * b[2 * i] + s * b[2 * i + 1];
        }
        qsort(pa, n, sizeof(double), cmp_double);
        qsort(pb, n, sizeof(double), cmp_double);
        for (size_t i = 0; i < n; i++)
            acc += (pa[i] - pb[i]) * (pa[i] - pb[i]) / (double)n / 64.0;
    }
    free(pa);
    free(pb);
    return sqrt(acc);
}

/* n samples of the trained model's sde with DPM-Solver++(2M) (label and guidance as set). */
static void e2e_sample(score_sde *sde, uint64_t seed, size_t n, float *out)
{
    score_sampler *smp;
    score_rng *rng;
    ck_assert_ok(score_sampler_new_preset(&smp, SCORE_SAMPLER_PRESET_DPMPP_2M, 2));
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, seed));
    ck_assert_ok(score_sampler_run(smp, sde, n, NULL, out, rng, NULL, NULL));
    score_rng_free(rng);
    score_sampler_free(smp);
}

/* Per-class sampling of a trained conditional model at w = 0 and w = 1: at least 97 % of the
 * samples of each class nearest to its mean. */
static void e2e_per_class(const ring *r, score_sde *sde, const char *what, int steps, float *out)
{
    for (int wi = 0; wi < 2; wi++) {
        double worst = 1.0;
        ck_assert_ok(score_sde_set_f64(sde, SCORE_SDE_PARAM_GUIDANCE, (double)wi));
        for (int y = 0; y < K8; y++) {
            double f;
            ck_assert_ok(score_sde_set_label(sde, y));
            e2e_sample(sde, 200 + (uint64_t)y, E2E_SAMPLES, out);
            f = ring8_nearest_fraction(r->mu, y, E2E_SAMPLES, out);
            ck_assert_msg(f >= 0.97, "%s, w %d class %d: %.4f of the samples nearest its mean",
                          what, wi, y, f);
            if (f < worst)
                worst = f;
        }
        printf("cond: trained MLP (%s, %d steps), ring8 per class, w = %d: worst class %.4f of %d "
               "samples nearest its mean\n", what, steps, wi, worst, E2E_SAMPLES);
    }
    ck_assert_ok(score_sde_set_f64(sde, SCORE_SDE_PARAM_GUIDANCE, 0.0));
    ck_assert_ok(score_sde_set_label(sde, SCORE_LABEL_NULL));
}

START_TEST(ring8_class_conditional_mlp)
{
    ring r;
    e2e_model cond, unc;
    float *x = malloc(E2E_ROWS * 2 * sizeof(float)), *out = malloc(E2E_SW_N * 2 * sizeof(float));
    float *ref = malloc(E2E_SW_N * 2 * sizeof(float)), *out_null = malloc(E2E_SW_N * 2 * sizeof(float));
    int32_t *lab = malloc(E2E_ROWS * sizeof(int32_t));
    score_rng *rng;
    double sw_null[E2E_RUNS], sw_unc[E2E_RUNS], mean_null = 0.0, mean_unc = 0.0, sw_floor;
    ck_assert_ptr_nonnull(x);
    ck_assert_ptr_nonnull(out);
    ck_assert_ptr_nonnull(ref);
    ck_assert_ptr_nonnull(out_null);
    ck_assert_ptr_nonnull(lab);
    ring_make(&r);
    ring_labelled_data(&r, x, lab);
    /* exact ring samples: the reference of the sliced W2, and a second set for its floor */
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 77));
    ck_assert_ok(score_dataset_toy("ring8", rng, E2E_SW_N, ref));
    ck_assert_ok(score_rng_set_counter(rng, 1));
    ck_assert_ok(score_dataset_toy("ring8", rng, E2E_SW_N, out));
    sw_floor = sliced_w2(E2E_SW_N, out, ref);
    score_rng_free(rng);
    for (int run = 0; run < E2E_RUNS; run++) {
        char what[32];
        snprintf(what, sizeof what, "run %d", run);
        e2e_train(&cond, K8, E2E_COND_STEPS, (uint64_t)run, x, lab);
        e2e_train(&unc, 0, E2E_STEPS, (uint64_t)run, x, lab);
        e2e_per_class(&r, cond.sde, what, E2E_COND_STEPS, out);
        /* the null label against the unconditional model, both against exact ring samples */
        e2e_sample(cond.sde, 300, E2E_SW_N, out_null);
        sw_null[run] = sliced_w2(E2E_SW_N, out_null, ref);
        e2e_sample(unc.sde, 300, E2E_SW_N, out);
        sw_unc[run] = sliced_w2(E2E_SW_N, out, ref);
        if (run == 0) {
            /* The conditional model at the unconditional model's steps (the seeds of run 0):
             * the per-class criterion holds there too, and its null label stays within the
             * bound measured before (1.7 times at these sizes, 2.3 in the slow version). */
            e2e_model eq;
            double sw_eq;
            e2e_train(&eq, K8, E2E_STEPS, 0, x, lab);
            e2e_per_class(&r, eq.sde, "equal steps", E2E_STEPS, out);
            e2e_sample(eq.sde, 300, E2E_SW_N, out);
            sw_eq = sliced_w2(E2E_SW_N, out, ref);
            printf("cond: at equal steps (%d): null label %.4f, unconditional model %.4f (ratio "
                   "%.3f)\n", E2E_STEPS, sw_eq, sw_unc[0], sw_eq / sw_unc[0]);
            ck_assert_msg(sw_eq <= 3.0 * sw_unc[0], "equal steps: null label %.4f, "
                          "unconditional %.4f", sw_eq, sw_unc[0]);
            e2e_free(&eq);
        }
        printf("cond: run %d: sliced W2 to %d ring8 points: null label %.4f (%d steps), "
               "unconditional model %.4f (%d steps), ratio %.3f; two exact samples %.4f\n", run,
               E2E_SW_N, sw_null[run], E2E_COND_STEPS, sw_unc[run], E2E_STEPS,
               sw_null[run] / sw_unc[run], sw_floor);
        /* the null label samples the whole ring: every blob gets its 1/8 (measured within
         * 0.03) */
        for (int j = 0; j < K8; j++) {
            double f = ring8_nearest_fraction(r.mu, j, E2E_SW_N, out_null);
            ck_assert_msg(fabs(f - 0.125) <= 0.04, "run %d, null label: blob %d holds %.4f of "
                          "the samples", run, j, f);
        }
        mean_null += sw_null[run] / E2E_RUNS;
        mean_unc += sw_unc[run] / E2E_RUNS;
        e2e_free(&cond);
        e2e_free(&unc);
    }
    printf("cond: mean sliced W2 over %d runs: null label %.4f, unconditional model %.4f "
           "(ratio %.3f)\n", E2E_RUNS, mean_null, mean_unc, mean_null / mean_unc);
    /* The criterion: the null label's samples within 1.2 times the unconditional
     * model's sliced W2. Both include the floor of two exact samples (sw_floor), and one
     * training's figure varies by +-25 % with the seed, so the criterion is on the mean of
     * E2E_RUNS independent trainings (seeds of the initialisation, minibatches and noise).
     * The conditional model trains E2E_COND_STEPS = 3 E2E_STEPS steps: its null label sees
     * only p_uncond = 0.1 of the rows, and the null label's samples are limited by the number
     * of rows it saw. Measured over 4 training seeds at 800 / 800 steps: mean ratio 1.47 with
     * p_uncond 0.1; 1.14 with p_uncond 0.2 (but a class then dropped to 0.966 nearest its
     * mean); 1.10 and 1.03 with two and three times the steps for the conditional model; a
     * zero-initialised null row (1.46), EMA decay 0.9999 or none, and three or nine times the
     * loss weight on the null rows (1.30) do not close the gap. */
    ck_assert_msg(mean_null <= 1.2 * mean_unc, "null label %.4f, unconditional %.4f (means of %d "
                  "trainings)", mean_null, mean_unc, E2E_RUNS);
    ring_free(&r);
    free(x);
    free(out);
    free(ref);
    free(out_null);
    free(lab);
}
END_TEST

static Suite *cond_suite(void)
{
    Suite *s = suite_create("cond");
    TCase *tc = tcase_create("gmm");
    tcase_add_test(tc, gmm_reports_its_classes);
    tcase_add_test(tc, label_gives_component_score);
    tcase_add_test(tc, null_label_is_the_mixture);
    tcase_add_test(tc, sde_condition_refusals);
    suite_add_tcase(s, tc);
    tc = tcase_create("guidance");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, guidance_one_pass_equals_two_evaluations);
    tcase_add_test(tc, per_class_sampling);
    suite_add_tcase(s, tc);
    tc = tcase_create("training");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, loss_labels);
    tcase_add_test(tc, label_dropout);
    tcase_add_test(tc, trainer_labels_threads);
    tcase_add_test(tc, trainer_condition_refusals);
    suite_add_tcase(s, tc);
    tc = tcase_create("end_to_end");
    tcase_set_timeout(tc, COND_E2E_FULL ? 1800 : 300);
    tcase_add_test(tc, ring8_class_conditional_mlp);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(cond_suite());
}
