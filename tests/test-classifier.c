/* Noise-conditional classifiers (classifier.h): the input gradient and the parameter gradient
 * against finite differences, the log-softmax against its closed form, save / load bit for
 * bit, the classifier loss against the public call on the same draws, the refusals of the sde,
 * and classifier guidance end to end: the exact (unconditional) score of the ring of 8
 * Gaussians plus a trained classifier puts the samples of each requested class in its
 * component. Built with CLF_E2E_FULL=1 (the "slow" suite) the end-to-end case runs 2000
 * samples per class with every sampler; the default build runs fewer. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers/test-helpers.h"
#include "helpers/ring8.h"

#ifndef CLF_E2E_FULL
#define CLF_E2E_FULL 0
#endif


/* Finite differences of the float32 network evaluated in double: central differences with
 * h = 1e-2 have a truncation error ~h^2 |f'''| / 6 ~ 1e-5 here and a rounding error of about
 * 1e-7 / h ~ 1e-5 (logits rounded to float); 2e-3 absolute plus 1e-2 relative leaves a
 * margin while a wrong term (a missing layer, a sign) is off by O(|g|). */
#define FD_H 1e-2
#define TOL_FD_ABS 2e-3
#define TOL_FD_REL 1e-2

static score_schedule *vp_schedule(double beta_max)
{
    score_schedule *s;
    ck_assert_ok(score_schedule_new(&s, SCORE_SCHEDULE_VP));
    if (beta_max > 0.0)
        ck_assert_ok(score_schedule_set_f64(s, SCORE_SCHEDULE_PARAM_BETA_MAX, beta_max));
    ck_assert_ok(score_schedule_prepare(s));
    return s;
}

/* A small classifier with smooth activations and non-trivial weights. */
static score_model *small_classifier(const score_schedule *s, size_t dim, size_t K, int act)
{
    score_model *m;
    ck_assert_ok(score_model_new_classifier(&m, s, dim, K));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_HIDDEN, 16));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_DEPTH, 2));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_ACTIVATION, act));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_EMBED_DIM, 8));
    ck_assert_ok(score_model_set_f64(m, SCORE_MODEL_PARAM_FOURIER_SCALE, 1.0));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_SEED, 7));
    ck_assert_ok(score_model_prepare(m));
    {
        /* scale the initial weights up so that the logits differ by O(1) */
        size_t P = score_model_param_count(m);
        float *p = malloc(P * sizeof *p);
        ck_assert_ptr_nonnull(p);
        ck_assert_ok(score_model_params_get(m, p, P));
        for (size_t i = 0; i < P; i++)
            p[i] *= 2.0f;
        ck_assert_ok(score_model_params_set(m, p, P));
        free(p);
    }
    return m;
}

static void inputs(size_t n, size_t dim, float *x, double *t, int32_t *y, size_t K)
{
    for (size_t b = 0; b < n; b++) {
        for (size_t j = 0; j < dim; j++)
            x[b * dim + j] = (float)(0.9 * sin(1.3 * (double)(b * dim + j) + 0.4));
        t[b] = 0.05 + 0.9 * (double)b / (double)(n > 1 ? n - 1 : 1);
        y[b] = (int32_t)((b * 5 + 1) % K);
    }
}

/* ---- closed forms and gradients -------------------------------------------------------- */

START_TEST(log_softmax_closed_form)
{
    enum { N = 6, D = 3, K = 4 };
    score_schedule *s = vp_schedule(0.0);
    score_model *m = small_classifier(s, D, K, SCORE_ACT_TANH);
    float x[N * D], lg[N * K], ls[N * K], gx[N * D];
    double t[N], logp[N];
    int32_t y[N];
    inputs(N, D, x, t, y, K);
    ck_assert_ok(score_classifier_logits(m, N, t, x, lg));
    ck_assert_ok(score_classifier_log_softmax(m, N, t, x, ls));
    ck_assert_ok(score_classifier_grad_x(m, N, t, x, y, logp, gx));
    for (size_t b = 0; b < N; b++) {
        double mx = -INFINITY, sum = 0.0, lse, spread = 0.0;
        for (size_t k = 0; k < K; k++)
            mx = fmax(mx, (double)lg[b * K + k]);
        for (size_t k = 0; k < K; k++)
            sum += exp((double)lg[b * K + k] - mx);
        lse = mx + log(sum);
        for (size_t k = 0; k < K; k++) {
            ck_assert_double_eq_tol(ls[b * K + k], (double)lg[b * K + k] - lse, 1e-6);
            spread = fmax(spread, fabs((double)lg[b * K + k] - (double)lg[b * K]));
        }
        /* the logp of the gradient call is the log-softmax at the label, in double */
        ck_assert_double_eq_tol(logp[b], (double)lg[b * K + y[b]] - lse, 1e-6);
        /* non-trivial classifier: the logits of a row differ */
        ck_assert(spread > 1e-2);
    }
    score_model_free(m);
    score_schedule_free(s);
}
END_TEST

/* grad_x log p(y | x, t) against central differences of log p, per row and coordinate. */
START_TEST(input_gradient_fd)
{
    enum { N = 5, D = 3, K = 4 };
    score_schedule *s = vp_schedule(0.0);
    score_model *m = small_classifier(s, D, K, _i == 0 ? SCORE_ACT_TANH : SCORE_ACT_SILU);
    float x[N * D], gx[N * D], xp[N * D], scratch[N * D];
    double t[N], logp[N], lp[N], lm[N], worst = 0.0;
    int32_t y[N];
    inputs(N, D, x, t, y, K);
    ck_assert_ok(score_classifier_grad_x(m, N, t, x, y, logp, gx));
    for (size_t j = 0; j < D; j++) {
        memcpy(xp, x, sizeof xp);
        for (size_t b = 0; b < N; b++)
            xp[b * D + j] = x[b * D + j] + (float)FD_H;
        ck_assert_ok(score_classifier_grad_x(m, N, t, xp, y, lp, scratch));
        for (size_t b = 0; b < N; b++)
            xp[b * D + j] = x[b * D + j] - (float)FD_H;
        ck_assert_ok(score_classifier_grad_x(m, N, t, xp, y, lm, scratch));
        for (size_t b = 0; b < N; b++) {
            double h2 = (double)(x[b * D + j] + (float)FD_H) - (double)(x[b * D + j] - (float)FD_H);
            double fd = (lp[b] - lm[b]) / h2, g = (double)gx[b * D + j];
            ck_assert_msg(fabs(fd - g) <= TOL_FD_ABS + TOL_FD_REL * fabs(fd),
                          "row %zu coordinate %zu: gradient %g, finite difference %g", b, j, g, fd);
            worst = fmax(worst, fabs(fd - g));
            ck_assert(fabs(g) > 0.0);
        }
    }
    printf("classifier: input gradient vs finite differences (%s): largest difference %.2e\n",
           _i == 0 ? "tanh" : "silu", worst);
    score_model_free(m);
    score_schedule_free(s);
}
END_TEST

/* The mean cross-entropy's parameter gradient against central differences of the loss, on
 * parameters of every layer (weights, biases, the output layer). */
START_TEST(parameter_gradient_fd)
{
    enum { N = 7, D = 2, K = 3 };
    score_schedule *s = vp_schedule(0.0);
    score_model *m = small_classifier(s, D, K, SCORE_ACT_TANH);
    size_t P = score_model_param_count(m), checked = 0;
    float *p = malloc(P * sizeof *p), *g = calloc(P, sizeof *g), *g2 = calloc(P, sizeof *g2);
    float x[N * D];
    double t[N], loss, lp, lm, ref = 0.0, worst = 0.0;
    float ls[N * K];
    int32_t y[N];
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(g);
    ck_assert_ptr_nonnull(g2);
    inputs(N, D, x, t, y, K);
    ck_assert_ok(score_model_params_get(m, p, P));
    ck_assert_ok(score_classifier_loss_grad(m, N, t, x, y, &loss, g));
    /* the value is the mean of -log p(y_b) */
    ck_assert_ok(score_classifier_log_softmax(m, N, t, x, ls));
    for (size_t b = 0; b < N; b++)
        ref -= (double)ls[b * K + y[b]] / N;
    ck_assert_double_eq_tol(loss, ref, 1e-6);
    /* accumulated, not overwritten */
    ck_assert_ok(score_classifier_loss_grad(m, N, t, x, y, NULL, g2));
    ck_assert_ok(score_classifier_loss_grad(m, N, t, x, y, NULL, g2));
    for (size_t i = 0; i < P; i++)
        ck_assert_float_eq_tol(g2[i], 2.0f * g[i], 1e-6f + 1e-5f * fabsf(g[i]));
    for (size_t i = 0; i < P; i += 1 + P / 60) {
        float saved = p[i];
        p[i] = saved + (float)FD_H;
        ck_assert_ok(score_model_params_set(m, p, P));
        ck_assert_ok(score_classifier_loss_grad(m, N, t, x, y, &lp, NULL));
        p[i] = saved - (float)FD_H;
        ck_assert_ok(score_model_params_set(m, p, P));
        ck_assert_ok(score_classifier_loss_grad(m, N, t, x, y, &lm, NULL));
        p[i] = saved;
        {
            double h2 = (double)(saved + (float)FD_H) - (double)(saved - (float)FD_H);
            double fd = (lp - lm) / h2;
            ck_assert_msg(fabs(fd - (double)g[i]) <= TOL_FD_ABS + TOL_FD_REL * fabs(fd),
                          "parameter %zu of %zu: gradient %g, finite difference %g", i, P,
                          (double)g[i], fd);
            worst = fmax(worst, fabs(fd - (double)g[i]));
        }
        checked++;
    }
    /* the last parameters: the output layer's bias */
    for (size_t i = P - K; i < P; i++) {
        double sm = 0.0;
        for (size_t b = 0; b < N; b++)
            sm += (exp((double)ls[b * K + (i - (P - K))]) - (y[b] == (int32_t)(i - (P - K)))) / N;
        ck_assert_double_eq_tol((double)g[i], sm, 1e-5);
    }
    ck_assert_ok(score_model_params_set(m, p, P));
    printf("classifier: parameter gradient vs finite differences: %zu of %zu parameters, "
           "largest difference %.2e\n", checked, P, worst);
    free(p);
    free(g);
    free(g2);
    score_model_free(m);
    score_schedule_free(s);
}
END_TEST

/* ---- files -------------------------------------------------------------------------------- */

START_TEST(save_load_bit_identical)
{
    enum { N = 5, D = 3, K = 4 };
    score_schedule *s = vp_schedule(12.5);
    score_model *m = small_classifier(s, D, K, SCORE_ACT_SILU), *l = NULL, *c = NULL;
    size_t P = score_model_param_count(m);
    float *p = malloc(P * sizeof *p), *q = malloc(P * sizeof *q);
    float x[N * D], a[N * K], b2[N * K], ga[N * D], gb[N * D];
    double t[N], bm, out[N];
    int32_t y[N];
    void *buf = NULL;
    size_t len = 0;
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(q);
    inputs(N, D, x, t, y, K);
    ck_assert_ok(score_model_save_buffer(m, &buf, &len));
    ck_assert_ok(score_model_load_buffer(&l, buf, len));
    ck_assert_int_eq(score_model_kind(l), SCORE_MODEL_CLASSIFIER);
    ck_assert_uint_eq(score_model_dim(l), D);
    ck_assert_uint_eq(score_model_param_count(l), P);
    ck_assert_ok(score_model_params_get(m, p, P));
    ck_assert_ok(score_model_params_get(l, q, P));
    ck_assert_mem_eq(p, q, P * sizeof *p);
    ck_assert_ok(score_classifier_logits(m, N, t, x, a));
    ck_assert_ok(score_classifier_logits(l, N, t, x, b2));
    ck_assert_mem_eq(a, b2, sizeof a);
    ck_assert_ok(score_classifier_grad_x(m, N, t, x, y, NULL, ga));
    ck_assert_ok(score_classifier_grad_x(l, N, t, x, y, NULL, gb));
    ck_assert_mem_eq(ga, gb, sizeof ga);
    /* the schedule travels with the classifier */
    ck_assert_ok(score_schedule_get_f64(score_classifier_schedule(l), SCORE_SCHEDULE_PARAM_BETA_MAX, &bm));
    ck_assert_double_eq(bm, 12.5);
    ck_assert_int_eq(score_schedule_kind(score_classifier_schedule(l)), SCORE_SCHEDULE_VP);
    /* a clone too */
    ck_assert_ok(score_model_clone(&c, l));
    ck_assert_ok(score_classifier_logits(c, N, t, x, b2));
    ck_assert_mem_eq(a, b2, sizeof a);
    /* the generic compute calls refuse a classifier (dim outputs per row do not apply) */
    ck_assert_fails_with(score_model_forward(l, N, x, t, ga), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_classifier_logits(NULL, N, t, x, a), SCORE_E_INVAL);
    ck_assert_ptr_null(score_classifier_schedule(NULL));
    /* architecture setters: refused after prepare, a context input refused */
    ck_assert_fails_with(score_model_set_i64(l, SCORE_MODEL_PARAM_HIDDEN, 8), SCORE_E_STAGE);
    {
        score_model *fresh;
        ck_assert_ok(score_model_new_classifier(&fresh, s, D, K));
        ck_assert_fails_with(score_model_set_i64(fresh, SCORE_MODEL_PARAM_CONTEXT_DIM, 2),
                             SCORE_E_UNSUPPORTED);
        ck_assert_fails_with(score_model_set_i64(fresh, SCORE_MODEL_PARAM_NUM_CLASSES, 1),
                             SCORE_E_RANGE);
        score_model_free(fresh);
    }
    /* times outside the schedule's range */
    t[2] = 1.5;
    ck_assert_fails_with(score_classifier_logits(l, N, t, x, a), SCORE_E_RANGE);
    t[2] = NAN;
    ck_assert_fails_with(score_classifier_logits(l, N, t, x, a), SCORE_E_NUMERIC);
    t[2] = 0.5;
    y[1] = K;
    ck_assert_fails_with(score_classifier_grad_x(l, N, t, x, y, out, ga), SCORE_E_RANGE);
    /* a model of another kind */
    {
        score_model *mlp;
        ck_assert_ok(score_model_new_mlp(&mlp, D, 8, 1, SCORE_ACT_SILU, 1));
        ck_assert_fails_with(score_classifier_logits(mlp, N, t, x, a), SCORE_E_UNSUPPORTED);
        ck_assert_ptr_null(score_classifier_schedule(mlp));
        score_model_free(mlp);
    }
    score_free(buf);
    score_model_free(c);
    score_model_free(l);
    score_model_free(m);
    score_schedule_free(s);
    free(p);
    free(q);
}
END_TEST

/* ---- the loss ------------------------------------------------------------------------------ */

/* SCORE_LOSS_CLASSIFIER equals score_classifier_loss_grad() on the rows noised with the
 * documented draws (time uniform in column 4 ceil(dim / 4), noise in columns 0..dim-1), bit for
 * bit, value and gradient; and its refusals. */
START_TEST(loss_matches_public_call)
{
    enum { N = 9, D = 3, K = 4 };
    score_schedule *s = vp_schedule(0.0), *other = vp_schedule(11.0);
    score_model *m = small_classifier(s, D, K, SCORE_ACT_SILU), *mlp;
    size_t P = score_model_param_count(m);
    float *g1 = calloc(P, sizeof *g1), *g2 = calloc(P, sizeof *g2);
    float x[N * D], z[N * D], xt[N * D];
    double t[N], u[N], al[N], si[N], l1, l2, te = 1e-5;
    int32_t y[N];
    score_loss *loss;
    score_rng *rng;
    score_sde *sde;
    ck_assert_ptr_nonnull(g1);
    ck_assert_ptr_nonnull(g2);
    inputs(N, D, x, t, y, K);
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 42));
    ck_assert_ok(score_loss_new(&loss, SCORE_LOSS_CLASSIFIER));
    ck_assert_str_eq(score_loss_name(loss), "classifier");
    ck_assert_fails_with(score_loss_compute(loss, NULL, m, rng, N, x, &l1, g1), SCORE_E_INVAL);
    ck_assert_ok(score_loss_set_labels(loss, N, y));
    ck_assert_ok(score_loss_compute(loss, NULL, m, rng, N, x, &l1, g1));
    ck_assert_ok(score_rng_fill_uniform_f64(rng, 0, N, 4, 1, u));
    ck_assert_ok(score_rng_fill_normal(rng, 0, N, 0, D, z));
    for (size_t b = 0; b < N; b++)
        t[b] = te + u[b] * (1.0 - te);
    ck_assert_ok(score_schedule_alpha_sigma(s, N, t, al, si));
    for (size_t b = 0; b < N; b++)
        for (size_t j = 0; j < D; j++)
            xt[b * D + j] = (float)(al[b] * (double)x[b * D + j] + si[b] * (double)z[b * D + j]);
    ck_assert_ok(score_classifier_loss_grad(m, N, t, xt, y, &l2, g2));
    ck_assert_double_eq(l1, l2);
    ck_assert_mem_eq(g1, g2, P * sizeof *g1);
    /* through an sde of the same schedule: the same to float rounding (without a gradient the
     * logits come from the inference path, whose products round otherwise than the training
     * forward's); of another: refused, naming beta_max */
    ck_assert_ok(score_model_new_mlp(&mlp, D, 8, 1, SCORE_ACT_SILU, 1));
    ck_assert_ok(score_sde_new(&sde, s, mlp, SCORE_OUTPUT_EPS));
    ck_assert_ok(score_loss_compute(loss, sde, m, rng, N, x, &l2, NULL));
    ck_assert_double_le(fabs(l1 - l2), 1e-5 * fabs(l1));
    score_sde_free(sde);
    ck_assert_ok(score_sde_new(&sde, other, mlp, SCORE_OUTPUT_EPS));
    ck_assert_fails_with(score_loss_compute(loss, sde, m, rng, N, x, &l2, NULL), SCORE_E_INVAL);
    ck_assert_ptr_nonnull(strstr(score_last_error_message(), "beta_max"));
    score_sde_free(sde);
    /* not a classifier; the null label */
    ck_assert_fails_with(score_loss_compute(loss, NULL, mlp, rng, N, x, &l2, NULL),
                         SCORE_E_UNSUPPORTED);
    y[3] = SCORE_LABEL_NULL;
    ck_assert_ok(score_loss_set_labels(loss, N, y));
    ck_assert_fails_with(score_loss_compute(loss, NULL, m, rng, N, x, &l2, NULL), SCORE_E_RANGE);
    score_model_free(mlp);
    score_loss_free(loss);
    score_rng_free(rng);
    score_model_free(m);
    score_schedule_free(s);
    score_schedule_free(other);
    free(g1);
    free(g2);
}
END_TEST

/* ---- guidance in the sde ----------------------------------------------------------------- */

/* The ring of 8 Gaussians under VP: the analytic mixture, and its exact unconditional score as
 * a callback network in the eps parameterization (eps = -sigma s), which takes no labels. */
typedef struct ring {
    score_schedule *sched;
    score_model *gmm, *uncond;
    double w[K8], mu[2 * K8], var[2 * K8];
} ring;

static int uncond_eps(size_t n, size_t dim, const float *x, const double *c, float *out,
                      void *user_data)
{
    ring *r = user_data;
    double al, si;
    if (score_model_forward(r->gmm, n, x, c, out) != SCORE_OK)
        return 1;
    for (size_t b = 0; b < n; b++) {
        if (score_schedule_alpha_sigma(r->sched, 1, &c[b], &al, &si) != SCORE_OK)
            return 2;
        for (size_t j = 0; j < dim; j++)
            out[b * dim + j] = (float)(-si * (double)out[b * dim + j]);
    }
    return 0;
}

static void ring_make(ring *r)
{
    size_t k = 0;
    r->sched = vp_schedule(0.0);
    ck_assert_ok(score_dataset_toy_mixture("ring8", K8, &k, r->w, r->mu, r->var));
    ck_assert_uint_eq(k, K8);
    ck_assert_ok(score_model_new_gmm(&r->gmm, r->sched, 2, K8, r->w, r->mu, r->var));
    ck_assert_ok(score_model_new_callback(&r->uncond, 2, uncond_eps, r));
}

static void ring_free(ring *r)
{
    score_model_free(r->uncond);
    score_model_free(r->gmm);
    score_schedule_free(r->sched);
}

/* score, eps and x0 of a classifier-guided sde are those of s + w grad log p(y | x_t, t), with
 * the model in the eps parameterization; and the refusals. */
START_TEST(sde_guidance_values_and_refusals)
{
    enum { N = 12 };
    ring r;
    score_schedule *other = vp_schedule(14.0);
    score_schedule *ve;
    score_model *clf, *clf3, *clf_ve, *clf1d;
    score_sde *sde, *plain;
    float x[2 * N], s0[2 * N], s1[2 * N], e1[2 * N], x01[2 * N], gx[2 * N];
    double t[N], al[N], si[N], div[N];
    int32_t lab[N];
    const double w = 2.5;
    const int y = 3;
    ring_make(&r);
    ck_assert_ok(score_schedule_new(&ve, SCORE_SCHEDULE_VE));
    ck_assert_ok(score_schedule_prepare(ve));
    clf = small_classifier(r.sched, 2, K8, SCORE_ACT_SILU);
    clf3 = small_classifier(r.sched, 2, 3, SCORE_ACT_SILU);
    clf_ve = small_classifier(ve, 2, K8, SCORE_ACT_SILU);
    clf1d = small_classifier(r.sched, 1, K8, SCORE_ACT_SILU);
    for (size_t b = 0; b < N; b++) {
        x[2 * b] = (float)(2.0 * cos(0.9 * (double)b));
        x[2 * b + 1] = (float)(1.5 * sin(0.7 * (double)b));
        t[b] = 0.02 + 0.08 * (double)b;
        lab[b] = y;
    }
    ck_assert_ok(score_schedule_alpha_sigma(r.sched, N, t, al, si));
    ck_assert_ok(score_sde_new(&plain, r.sched, r.uncond, SCORE_OUTPUT_EPS));
    ck_assert_ok(score_sde_new(&sde, r.sched, r.uncond, SCORE_OUTPUT_EPS));
    /* a label needs a classifier (the model takes none) */
    ck_assert_fails_with(score_sde_set_label(sde, y), SCORE_E_UNSUPPORTED);
    ck_assert_ok(score_sde_set_classifier(sde, clf, w));
    ck_assert_fails_with(score_sde_set_label(sde, K8), SCORE_E_RANGE);
    /* w != 0 without a label */
    ck_assert_fails_with(score_sde_score(sde, N, t, x, s1), SCORE_E_INVAL);
    ck_assert_ok(score_sde_set_label(sde, y));
    ck_assert_ok(score_sde_score(plain, N, t, x, s0));
    ck_assert_ok(score_sde_score(sde, N, t, x, s1));
    ck_assert_ok(score_sde_eps(sde, N, t, x, e1));
    ck_assert_ok(score_sde_x0(sde, N, t, x, x01));
    ck_assert_ok(score_classifier_grad_x(clf, N, t, x, lab, NULL, gx));
    for (size_t b = 0; b < N; b++)
        for (size_t j = 0; j < 2; j++) {
            size_t i = 2 * b + j;
            double s = (double)s0[i] + w * (double)gx[i];
            ck_assert_double_eq_tol(s1[i], s, 1e-5 * (1.0 + fabs(s)));
            ck_assert_double_eq_tol(e1[i], -si[b] * s, 1e-5 * (1.0 + fabs(si[b] * s)));
            ck_assert_double_eq_tol(x01[i], ((double)x[i] + si[b] * si[b] * s) / al[b],
                                    1e-5 * (1.0 + fabs(x01[i])));
            ck_assert(fabs(w * gx[i]) > 1e-4); /* the term is not negligible */
        }
    /* likelihoods need the divergence, which guidance by a classifier does not have */
    ck_assert_fails_with(score_sde_divergence(sde, N, t, x, div, NULL), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_sde_pf_divergence(sde, N, t, x, 0, NULL, div, NULL),
                         SCORE_E_UNSUPPORTED);
    /* refusals, each naming the difference */
    ck_assert_fails_with(score_sde_set_classifier(sde, clf1d, 1.0), SCORE_E_SHAPE);
    ck_assert_fails_with(score_sde_set_classifier(sde, clf_ve, 1.0), SCORE_E_INVAL);
    ck_assert_ptr_nonnull(strstr(score_last_error_message(), "schedule kind"));
    {
        score_model *clf_other = small_classifier(other, 2, K8, SCORE_ACT_SILU);
        ck_assert_fails_with(score_sde_set_classifier(sde, clf_other, 1.0), SCORE_E_INVAL);
        ck_assert_ptr_nonnull(strstr(score_last_error_message(), "beta_max"));
        score_model_free(clf_other);
    }
    ck_assert_fails_with(score_sde_set_classifier(sde, r.gmm, 1.0), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_sde_set_classifier(sde, clf, NAN), SCORE_E_RANGE);
    {
        /* a model with labels: the class counts must agree */
        score_sde *cs;
        ck_assert_ok(score_sde_new(&cs, r.sched, r.gmm, SCORE_OUTPUT_SCORE));
        ck_assert_fails_with(score_sde_set_classifier(cs, clf3, 1.0), SCORE_E_INVAL);
        ck_assert_ptr_nonnull(strstr(score_last_error_message(), "classes"));
        ck_assert_ok(score_sde_set_classifier(cs, clf, 1.0));
        score_sde_free(cs);
    }
    /* removed: the plain score again, bit for bit */
    ck_assert_ok(score_sde_set_classifier(sde, NULL, 0.0));
    ck_assert_ok(score_sde_set_label(sde, SCORE_LABEL_NULL));
    ck_assert_ok(score_sde_score(sde, N, t, x, s1));
    ck_assert_mem_eq(s0, s1, sizeof s0);
    score_sde_free(sde);
    score_sde_free(plain);
    score_model_free(clf);
    score_model_free(clf3);
    score_model_free(clf_ve);
    score_model_free(clf1d);
    score_schedule_free(ve);
    score_schedule_free(other);
    ring_free(&r);
}
END_TEST

/* ---- the classifier's generative model -------------------------------------------------- */

/* The generative model of a score network of the ring: its eps callback under r's schedule,
 * with a data transform and column names. */
static score_genmodel *ring_genmodel(const ring *r, double shift0)
{
    static const char *const cols[2] = {"x", "y"};
    const double shift[2] = {shift0, -0.25}, scale[2] = {2.0, 0.5};
    score_sde *sde;
    score_genmodel *gm;
    ck_assert_ok(score_sde_new(&sde, r->sched, r->gmm, SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_genmodel_new(&gm, sde));
    ck_assert_ok(score_genmodel_set_transform(gm, shift, scale));
    ck_assert_ok(score_genmodel_set_names(gm, SCORE_GENMODEL_NAMES_COLUMNS, 2, cols));
    score_sde_free(sde);
    return gm;
}

/* A classifier stored with the data side of its target: saved and loaded with its classes, it
 * guides exactly as the network attached by hand; every mismatch is refused by name. */
START_TEST(genmodel_classifier)
{
    enum { N = 10 };
    static const char *const names[K8] = {"a", "b", "c", "d", "e", "f", "g", "h"};
    static const char *const other_cols[2] = {"x", "z"};
    ring r;
    score_schedule *other = vp_schedule(14.0);
    score_model *clf, *clf_other, *clf1d;
    score_genmodel *gm, *gm_moved, *gm_cols, *cg, *cg2, *cg_dup;
    score_sde *sde, *ref, *bare;
    void *buf = NULL;
    size_t len = 0;
    float x[2 * N], s_ref[2 * N], s_got[2 * N];
    double t[N];
    ring_make(&r);
    clf = small_classifier(r.sched, 2, K8, SCORE_ACT_SILU);
    clf_other = small_classifier(other, 2, K8, SCORE_ACT_SILU);
    clf1d = small_classifier(r.sched, 1, K8, SCORE_ACT_SILU);
    gm = ring_genmodel(&r, 0.5);
    gm_moved = ring_genmodel(&r, 0.75);
    gm_cols = ring_genmodel(&r, 0.5);
    ck_assert_ok(score_genmodel_set_names(gm_cols, SCORE_GENMODEL_NAMES_COLUMNS, 2, other_cols));

    /* construction and its refusals */
    ck_assert_fails_with(score_genmodel_new_classifier(NULL, clf, gm), SCORE_E_INVAL);
    ck_assert_fails_with(score_genmodel_new_classifier(&cg, NULL, gm), SCORE_E_INVAL);
    ck_assert_ptr_null(cg);
    ck_assert_fails_with(score_genmodel_new_classifier(&cg, clf, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_genmodel_new_classifier(&cg, r.gmm, gm), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_genmodel_new_classifier(&cg, clf1d, gm), SCORE_E_SHAPE);
    ck_assert_fails_with(score_genmodel_new_classifier(&cg, clf_other, gm), SCORE_E_INVAL);
    ck_assert_ptr_nonnull(strstr(score_last_error_message(), "beta_max"));
    ck_assert_ok(score_genmodel_new_classifier(&cg, clf, gm));
    ck_assert_fails_with(score_genmodel_new_classifier(&cg_dup, clf, cg), SCORE_E_INVAL);
    ck_assert_ok(score_genmodel_set_names(cg, SCORE_GENMODEL_NAMES_LABELS, K8, names));
    ck_assert_int_eq(score_genmodel_is_classifier(cg), 1);
    ck_assert_int_eq(score_genmodel_is_classifier(gm), 0);
    ck_assert_int_eq(score_genmodel_is_classifier(NULL), SCORE_E_INVAL);
    ck_assert_uint_eq(score_genmodel_num_classes(cg), K8);
    /* a classifier is no score model: no sde of its own, no combination with one */
    ck_assert_fails_with(score_genmodel_sde(cg, &bare), SCORE_E_UNSUPPORTED);
    ck_assert_ptr_null(bare);
    ck_assert_fails_with(score_sde_new(&bare, r.sched, clf, SCORE_OUTPUT_EPS), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_genmodel_check_compatible(gm, cg), SCORE_E_INVAL);
    ck_assert_ptr_nonnull(strstr(score_last_error_message(), "kind"));

    /* a bare classifier network file does not say which data units it was trained in */
    ck_assert_ok(score_model_save_buffer(clf, &buf, &len));
    ck_assert_fails_with(score_genmodel_load_buffer(&cg2, buf, len), SCORE_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(score_last_error_message(), "score_genmodel_new_classifier()"));
    score_free(buf);
    buf = NULL;

    /* through a file: classes, transform and columns kept */
    ck_assert_ok(score_genmodel_save_buffer(cg, &buf, &len));
    ck_assert_ok(score_genmodel_load_buffer(&cg2, buf, len));
    score_free(buf);
    ck_assert_int_eq(score_genmodel_is_classifier(cg2), 1);
    for (size_t k = 0; k < K8; k++)
        ck_assert_str_eq(score_genmodel_name(cg2, SCORE_GENMODEL_NAMES_LABELS, k), names[k]);
    ck_assert_str_eq(score_genmodel_name(cg2, SCORE_GENMODEL_NAMES_COLUMNS, 1), "y");
    {
        double sh[2], sc[2];
        ck_assert_int_eq(score_genmodel_get_transform(cg2, sh, sc), 1);
        ck_assert_double_eq(sh[0], 0.5);
        ck_assert_double_eq(sc[1], 0.5);
    }

    /* guidance through the loaded file equals the network attached by hand, bit for bit */
    for (size_t b = 0; b < N; b++) {
        x[2 * b] = (float)(1.7 * cos(1.1 * (double)b));
        x[2 * b + 1] = (float)(1.2 * sin(0.6 * (double)b));
        t[b] = 0.03 + 0.09 * (double)b;
    }
    ck_assert_ok(score_genmodel_sde(gm, &sde));
    ck_assert_ok(score_genmodel_sde(gm, &ref));
    ck_assert_ok(score_sde_set_classifier(ref, clf, 1.5));
    ck_assert_ok(score_sde_set_label(ref, 5));
    ck_assert_ok(score_genmodel_set_classifier(gm, sde, cg2, 1.5));
    ck_assert_ok(score_sde_set_label(sde, 5));
    ck_assert_ok(score_sde_score(ref, N, t, x, s_ref));
    ck_assert_ok(score_sde_score(sde, N, t, x, s_got));
    ck_assert_mem_eq(s_ref, s_got, sizeof s_ref);

    /* refusals of the attachment, each naming the difference */
    ck_assert_fails_with(score_genmodel_set_classifier(NULL, sde, cg2, 1.0), SCORE_E_INVAL);
    ck_assert_fails_with(score_genmodel_set_classifier(gm, NULL, cg2, 1.0), SCORE_E_INVAL);
    ck_assert_fails_with(score_genmodel_set_classifier(gm_moved, sde, cg2, 1.0), SCORE_E_INVAL);
    ck_assert_ptr_nonnull(strstr(score_last_error_message(), "does not evaluate"));
    {
        score_sde *sm, *sc;
        ck_assert_ok(score_genmodel_sde(gm_moved, &sm));
        ck_assert_fails_with(score_genmodel_set_classifier(gm_moved, sm, cg2, 1.0), SCORE_E_INVAL);
        ck_assert_ptr_nonnull(strstr(score_last_error_message(),
                                     "data transform: shift of dimension 0"));
        ck_assert_ok(score_genmodel_sde(gm_cols, &sc));
        ck_assert_fails_with(score_genmodel_set_classifier(gm_cols, sc, cg2, 1.0), SCORE_E_INVAL);
        ck_assert_ptr_nonnull(strstr(score_last_error_message(), "name of data column 1"));
        ck_assert_fails_with(score_genmodel_set_classifier(gm_cols, sc, gm_cols, 1.0),
                             SCORE_E_UNSUPPORTED);
        score_sde_free(sc);
        score_sde_free(sm);
    }
    ck_assert_fails_with(score_genmodel_set_classifier(gm, sde, cg2, NAN), SCORE_E_RANGE);
    /* NULL removes it: the plain score again */
    ck_assert_ok(score_genmodel_set_classifier(gm, sde, NULL, 0.0));
    ck_assert_ok(score_sde_set_label(sde, SCORE_LABEL_NULL));
    ck_assert_ok(score_sde_set_classifier(ref, NULL, 0.0));
    ck_assert_ok(score_sde_set_label(ref, SCORE_LABEL_NULL));
    ck_assert_ok(score_sde_score(ref, N, t, x, s_ref));
    ck_assert_ok(score_sde_score(sde, N, t, x, s_got));
    ck_assert_mem_eq(s_ref, s_got, sizeof s_ref);

    score_sde_free(sde);
    score_sde_free(ref);
    score_genmodel_free(cg2);
    score_genmodel_free(cg);
    score_genmodel_free(gm_cols);
    score_genmodel_free(gm_moved);
    score_genmodel_free(gm);
    score_model_free(clf1d);
    score_model_free(clf_other);
    score_model_free(clf);
    score_schedule_free(other);
    ring_free(&r);
}
END_TEST

/* ---- end to end ---------------------------------------------------------------------------- */

/* Labelled samples of the ring: row i of component i % 8 (normals of a fixed generator). */
static void ring_data(const ring *r, size_t n, float *x, int32_t *y)
{
    score_rng *rng;
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 5));
    ck_assert_ok(score_rng_fill_normal(rng, 0, n, 0, 2, x));
    for (size_t i = 0; i < n; i++) {
        int k = (int)(i % K8);
        y[i] = k;
        for (int j = 0; j < 2; j++)
            x[2 * i + j] = (float)(r->mu[2 * k + j] + sqrt(r->var[2 * k + j]) * (double)x[2 * i + j]);
    }
    score_rng_free(rng);
}

/* Trains a classifier on the ring with the trainer and SCORE_LOSS_CLASSIFIER. */
static score_model *train_classifier(const ring *r, int steps, double *final_loss)
{
    enum { ROWS = 4000 };
    score_model *clf;
    score_loss *loss;
    score_trainer *tr;
    float *x = malloc(2 * ROWS * sizeof *x);
    int32_t *y = malloc(ROWS * sizeof *y);
    double acc = 0.0, l;
    ck_assert_ptr_nonnull(x);
    ck_assert_ptr_nonnull(y);
    ring_data(r, ROWS, x, y);
    ck_assert_ok(score_model_new_classifier(&clf, r->sched, 2, K8));
    ck_assert_ok(score_model_set_i64(clf, SCORE_MODEL_PARAM_HIDDEN, 64));
    ck_assert_ok(score_model_set_i64(clf, SCORE_MODEL_PARAM_DEPTH, 2));
    ck_assert_ok(score_model_set_i64(clf, SCORE_MODEL_PARAM_EMBED_DIM, 16));
    ck_assert_ok(score_model_set_f64(clf, SCORE_MODEL_PARAM_FOURIER_SCALE, 2.0));
    ck_assert_ok(score_loss_new(&loss, SCORE_LOSS_CLASSIFIER));
    ck_assert_ok(score_trainer_new(&tr, clf, NULL, loss, SCORE_OPTIMIZER_ADAM));
    ck_assert_ok(score_trainer_set_i64(tr, SCORE_TRAINER_PARAM_BATCH_SIZE, 256));
    ck_assert_ok(score_optimizer_set_f64(score_trainer_optimizer(tr), SCORE_OPTIMIZER_PARAM_LR, 3e-3));
    ck_assert_ok(score_trainer_set_data(tr, ROWS, 2, x));
    ck_assert_ok(score_trainer_set_labels(tr, ROWS, y));
    for (int s = 0; s < steps; s++) {
        ck_assert_ok(score_trainer_step(tr, &l));
        if (s >= steps - 100)
            acc += l / 100.0;
    }
    *final_loss = acc;
    score_trainer_free(tr);
    score_loss_free(loss);
    free(x);
    free(y);
    return clf;
}

static double guided_fraction(const ring *r, score_model *clf, score_sampler *smp, int y,
                              double w, size_t n, float *out)
{
    score_rng *rng;
    score_sde *sde;
    ck_assert_ok(score_sde_new(&sde, r->sched, r->uncond, SCORE_OUTPUT_EPS));
    ck_assert_ok(score_sde_set_classifier(sde, clf, w));
    ck_assert_ok(score_sde_set_label(sde, y));
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 300 + (uint64_t)y));
    ck_assert_ok(score_sampler_run(smp, sde, n, NULL, out, rng, NULL, NULL));
    score_rng_free(rng);
    score_sde_free(sde);
    return ring8_nearest_fraction(r->mu, y, n, out);
}

START_TEST(ring8_classifier_guidance)
{
    const size_t n = CLF_E2E_FULL ? 2000 : 400, n_other = CLF_E2E_FULL ? 2000 : 100;
    const int steps = CLF_E2E_FULL ? 3000 : 1500;
    const double w = 2.0;
    ring r;
    score_model *clf;
    score_sampler *smp;
    float *out = malloc(2 * n * sizeof *out);
    double loss, worst = 1.0, worst1 = 1.0, unguided = 0.0;
    ck_assert_ptr_nonnull(out);
    ring_make(&r);
    clf = train_classifier(&r, steps, &loss);
    {
        /* at a small time the components barely overlap: a trained classifier labels the
         * data almost perfectly (at large times no classifier can: the loss averaged over
         * t ~ U(0, 1) stays well above 0) */
        enum { M = 800 };
        float *xd = malloc(2 * M * sizeof *xd), *ls = malloc(K8 * M * sizeof *ls);
        int32_t *yd = malloc(M * sizeof *yd);
        double *td = malloc(M * sizeof *td);
        size_t right = 0;
        ck_assert(xd && ls && yd && td);
        ring_data(&r, M, xd, yd);
        for (size_t i = 0; i < M; i++)
            td[i] = 0.01;
        ck_assert_ok(score_classifier_log_softmax(clf, M, td, xd, ls));
        for (size_t i = 0; i < M; i++) {
            size_t best = 0;
            for (size_t k = 1; k < K8; k++)
                if (ls[i * K8 + k] > ls[i * K8 + best])
                    best = k;
            right += (int32_t)best == yd[i];
        }
        printf("classifier: %.4f of %d training-distribution rows labelled right at t = 0.01 "
               "(mean loss over t of the last 100 steps %.3f)\n", (double)right / M, M, loss);
        fflush(stdout);
        ck_assert_msg((double)right / M >= 0.97, "accuracy %.4f at t = 0.01", (double)right / M);
        free(xd);
        free(ls);
        free(yd);
        free(td);
    }
    ck_assert_ok(score_sampler_new_preset(&smp, SCORE_SAMPLER_PRESET_DPMPP_2M, 2));
    for (int y = 0; y < K8; y++) {
        double f = guided_fraction(&r, clf, smp, y, w, n, out);
        ck_assert_msg(f >= 0.95, "DPM-Solver++(2M), w %g, class %d: %.4f nearest its mean", w, y,
                      f);
        worst = fmin(worst, f);
        /* w = 1 is exact for a perfect classifier (grad log p(x) + grad log p(y | x) =
         * grad log p(x | y)); a trained one falls short at intermediate noise levels, which a
         * scale above 1 makes up for: reported, not asserted */
        worst1 = fmin(worst1, guided_fraction(&r, clf, smp, y, 1.0, n, out));
        unguided += guided_fraction(&r, clf, smp, y, 0.0, n, out) / K8;
    }
    printf("classifier guidance: ring8, exact unconditional score + trained classifier (%d "
           "steps), DPM-Solver++(2M) 20 steps, w = %g: worst class %.4f of %zu samples nearest "
           "its mean (w = 1: worst %.4f; w = 0: %.4f on average)\n", steps, w, worst, n,
           worst1, unguided);
    ck_assert(unguided < 0.3); /* without guidance the samples spread over the ring */
    score_sampler_free(smp);
    /* the adaptive probability-flow solver and the predictor-corrector sampler */
    {
        const int presets[2] = {SCORE_SAMPLER_PRESET_ODE, SCORE_SAMPLER_PRESET_PC};
        const char *names[2] = {"adaptive dopri5 (rtol 1e-3)", "PC (200 steps)"};
        for (int k = 0; k < 2; k++) {
            double wk = w;
            ck_assert_ok(score_sampler_new_preset(&smp, presets[k], 2));
            if (k == 0) {
                ck_assert_ok(score_sampler_set_f64(smp, SCORE_SAMPLER_PARAM_RTOL, 1e-3));
                ck_assert_ok(score_sampler_set_f64(smp, SCORE_SAMPLER_PARAM_ATOL, 1e-3));
            } else {
                ck_assert_ok(score_sampler_set_i64(smp, SCORE_SAMPLER_PARAM_NUM_STEPS, 200));
            }
            worst = 1.0;
            for (int y = 0; y < K8; y += CLF_E2E_FULL ? 1 : 3) {
                double f = guided_fraction(&r, clf, smp, y, wk, n_other, out);
                ck_assert_msg(f >= 0.95, "%s, class %d: %.4f nearest its mean", names[k], y, f);
                worst = fmin(worst, f);
            }
            printf("classifier guidance: %s, w = %g: worst class %.4f of %zu samples\n",
                   names[k], wk, worst, n_other);
            score_sampler_free(smp);
        }
    }
    score_model_free(clf);
    ring_free(&r);
    free(out);
}
END_TEST

static Suite *classifier_suite(void)
{
    Suite *s = suite_create("classifier");
    TCase *tc = tcase_create("gradients");
    tcase_add_test(tc, log_softmax_closed_form);
    tcase_add_loop_test(tc, input_gradient_fd, 0, 2);
    tcase_add_test(tc, parameter_gradient_fd);
    suite_add_tcase(s, tc);
    tc = tcase_create("files");
    tcase_add_test(tc, save_load_bit_identical);
    suite_add_tcase(s, tc);
    tc = tcase_create("loss");
    tcase_add_test(tc, loss_matches_public_call);
    suite_add_tcase(s, tc);
    tc = tcase_create("sde");
    tcase_add_test(tc, sde_guidance_values_and_refusals);
    tcase_add_test(tc, genmodel_classifier);
    suite_add_tcase(s, tc);
    tc = tcase_create("end_to_end");
    tcase_set_timeout(tc, CLF_E2E_FULL ? 1800 : 300);
    tcase_add_test(tc, ring8_classifier_guidance);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(classifier_suite());
}
