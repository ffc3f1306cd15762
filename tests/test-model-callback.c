/* Callback and combination models: forwarding, user_data, failure propagation, optional jvp /
 * divergence, NaN detection at the sde level, weighted sums, classifier-free guidance. */
#include <math.h>
#include <stdlib.h>

#include "helpers/test-helpers.h"

/* Elementwise float products of exactly representable inputs: only float rounding. */
#define TOL_F32_REL 2e-6

/* F(x, c) = scale * c * x (linear: Jacobian scale * c * I). */
typedef struct lin {
    double scale;
    int calls;
    int fail;       /* value to return instead of 0 */
    int nan_row;    /* row to poison with NaN, or -1 */
} lin;

static int lin_fn(size_t n, size_t dim, const float *x, const double *c, float *out, void *ud)
{
    lin *L = ud;
    L->calls++;
    if (L->fail)
        return L->fail;
    for (size_t b = 0; b < n; b++)
        for (size_t j = 0; j < dim; j++)
            out[b * dim + j] = (float)(L->scale * c[b] * x[b * dim + j]);
    if (L->nan_row >= 0 && (size_t)L->nan_row < n)
        out[(size_t)L->nan_row * dim] = NAN;
    return 0;
}

static int lin_jvp(size_t n, size_t dim, const float *x, const double *c, size_t k,
                   const float *v, float *out, void *ud)
{
    lin *L = ud;
    (void)x;
    for (size_t b = 0; b < n; b++)
        for (size_t p = 0; p < k; p++)
            for (size_t j = 0; j < dim; j++)
                out[(b * k + p) * dim + j] = (float)(L->scale * c[b] * v[(b * k + p) * dim + j]);
    return L->fail;
}

static int lin_div(size_t n, size_t dim, const float *x, const double *c, double *div, void *ud)
{
    lin *L = ud;
    (void)x;
    for (size_t b = 0; b < n; b++)
        div[b] = L->scale * c[b] * (double)dim;
    return L->fail;
}

enum { D = 3 };

START_TEST(forward_and_user_data)
{
    lin L = {2.0, 0, 0, -1};
    score_model *m;
    const float x[2 * D] = {1, 2, 3, -1, 0.5f, 0.25f};
    const double c[2] = {0.5, 4.0};
    float out[2 * D];
    ck_assert_ok(score_model_new_callback(&m, D, lin_fn, &L));
    ck_assert_int_eq(score_model_kind(m), SCORE_MODEL_CALLBACK);
    ck_assert_uint_eq(score_model_dim(m), D);
    ck_assert_ok(score_model_forward(m, 2, x, c, out));
    ck_assert_int_eq(L.calls, 1);
    for (int b = 0; b < 2; b++)
        for (int j = 0; j < D; j++)
            ck_assert_float_eq(out[b * D + j], (float)(2.0 * c[b] * x[b * D + j]));
    ck_assert_ok(score_model_forward(m, 0, NULL, NULL, NULL)); /* n = 0: no call */
    ck_assert_int_eq(L.calls, 1);
    ck_assert_int_eq(score_model_last_callback_status(m), 0);
    score_model_free(m);
}
END_TEST

START_TEST(failure_propagates_with_status)
{
    lin L = {1.0, 0, -7, -1};
    score_model *m;
    const float x[D] = {1, 2, 3};
    const double c = 1.0;
    float out[D];
    ck_assert_ok(score_model_new_callback(&m, D, lin_fn, &L));
    ck_assert_fails_with(score_model_forward(m, 1, x, &c, out), SCORE_E_CALLBACK);
    ck_assert_int_eq(score_model_last_callback_status(m), -7);
    L.fail = 3; /* recoverable is still a failure of this call */
    ck_assert_fails_with(score_model_forward(m, 1, x, &c, out), SCORE_E_CALLBACK);
    ck_assert_int_eq(score_model_last_callback_status(m), 3);
    L.fail = 0;
    ck_assert_ok(score_model_forward(m, 1, x, &c, out));
    ck_assert_int_eq(score_model_last_callback_status(m), 0);
    ck_assert_int_eq(score_model_last_callback_status(NULL), 0);
    score_model_free(m);
}
END_TEST

START_TEST(optional_jvp_and_divergence)
{
    lin L = {3.0, 0, 0, -1};
    score_model *m, *c2;
    const float x[D] = {1, 2, 3}, v[2 * D] = {1, 0, 0, 0.5f, 0.5f, -1};
    const double c = 0.5;
    float out[2 * D], fx[D];
    double tr;
    ck_assert_ok(score_model_new_callback(&m, D, lin_fn, &L));
    ck_assert(!(score_model_capabilities(m) & SCORE_MODEL_CAP_JVP));
    ck_assert(!(score_model_capabilities(m) & SCORE_MODEL_CAP_TRACE));
    ck_assert(!(score_model_capabilities(m) & SCORE_MODEL_CAP_PARAMS));
    ck_assert_fails_with(score_model_jvp(m, 1, x, &c, 2, v, out, NULL), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_model_trace(m, 1, x, &c, &tr, NULL), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_model_vjp(m, 1, x, &c, 2, v, out), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_model_backward(m, 1, x, NULL, out), SCORE_E_UNSUPPORTED);

    ck_assert_ok(score_model_callback_set_jvp(m, lin_jvp, &L));
    ck_assert_ok(score_model_callback_set_divergence(m, lin_div, &L));
    ck_assert(score_model_capabilities(m) & SCORE_MODEL_CAP_JVP);
    ck_assert(score_model_capabilities(m) & SCORE_MODEL_CAP_TRACE);
    ck_assert_ok(score_model_jvp(m, 1, x, &c, 2, v, out, fx));
    for (int i = 0; i < 2 * D; i++)
        ck_assert_float_eq(out[i], (float)(1.5 * v[i]));
    for (int i = 0; i < D; i++)
        ck_assert_float_eq(fx[i], (float)(1.5 * x[i]));
    ck_assert_ok(score_model_trace(m, 1, x, &c, &tr, fx));
    ck_assert_double_eq(tr, 1.5 * D);

    /* clone keeps the registered functions and its own ops */
    ck_assert_ok(score_model_clone(&c2, m));
    ck_assert_ok(score_model_callback_set_jvp(m, NULL, NULL));
    ck_assert(!(score_model_capabilities(m) & SCORE_MODEL_CAP_JVP));
    ck_assert(score_model_capabilities(c2) & SCORE_MODEL_CAP_JVP);
    score_model_free(m);
    ck_assert_ok(score_model_jvp(c2, 1, x, &c, 1, v, out, NULL));
    ck_assert_float_eq(out[0], 1.5f);
    /* failures of the optional functions */
    L.fail = -2;
    ck_assert_fails_with(score_model_jvp(c2, 1, x, &c, 1, v, out, NULL), SCORE_E_CALLBACK);
    ck_assert_int_eq(score_model_last_callback_status(c2), -2);
    ck_assert_fails_with(score_model_trace(c2, 1, x, &c, &tr, NULL), SCORE_E_CALLBACK);
    score_model_free(c2);
}
END_TEST

START_TEST(nan_output_is_numeric_at_sde_level)
{
    lin L = {1.0, 0, 0, 2};
    score_model *m;
    score_schedule *s;
    score_sde *sde;
    float x[4 * D], out[4 * D];
    double t[4] = {0.1, 0.2, 0.3, 0.4};
    for (int i = 0; i < 4 * D; i++) x[i] = 0.1f * (float)i;
    ck_assert_ok(score_schedule_new(&s, SCORE_SCHEDULE_VP));
    ck_assert_ok(score_model_new_callback(&m, D, lin_fn, &L));
    /* the public compute call reports the non-finite output (finite inputs) */
    ck_assert_fails_with(score_model_forward(m, 4, x, t, out), SCORE_E_NUMERIC);
    ck_assert_ptr_nonnull(strstr(score_last_error_message(), "row 2 from finite inputs"));
    ck_assert(isnan(out[2 * D]));
    ck_assert_ok(score_sde_new(&sde, s, m, SCORE_OUTPUT_EPS));
    ck_assert_fails_with(score_sde_score(sde, 4, t, x, out), SCORE_E_NUMERIC);
    ck_assert_ptr_nonnull(strstr(score_last_error_message(), "row 2"));
    ck_assert_fails_with(score_sde_pf_drift(sde, 4, t, x, out), SCORE_E_NUMERIC);
    L.nan_row = -1;
    ck_assert_ok(score_sde_score(sde, 4, t, x, out));
    L.fail = -5;
    ck_assert_fails_with(score_sde_score(sde, 4, t, x, out), SCORE_E_CALLBACK);
    ck_assert_int_eq(score_model_last_callback_status(m), -5);
    score_sde_free(sde);
    score_model_free(m);
    score_schedule_free(s);
}
END_TEST

START_TEST(callback_bad_arguments)
{
    lin L = {1.0, 0, 0, -1};
    score_model *m = NULL, *g;
    score_schedule *s;
    const double one = 1.0, mu = 0.0, var = 1.0;
    ck_assert_fails_with(score_model_new_callback(NULL, D, lin_fn, &L), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_new_callback(&m, D, NULL, &L), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_new_callback(&m, 0, lin_fn, &L), SCORE_E_RANGE);
    ck_assert_fails_with(score_model_new_callback(&m, ((size_t)1 << 20) + 1, lin_fn, &L), SCORE_E_RANGE);
    ck_assert_ptr_null(m);
    ck_assert_fails_with(score_model_callback_set_jvp(NULL, lin_jvp, &L), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_callback_set_divergence(NULL, lin_div, &L), SCORE_E_INVAL);
    ck_assert_ok(score_schedule_new(&s, SCORE_SCHEDULE_VE));
    ck_assert_ok(score_model_new_gmm(&g, s, 1, 1, &one, &mu, &var));
    ck_assert_fails_with(score_model_callback_set_jvp(g, lin_jvp, &L), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_model_callback_set_divergence(g, lin_div, &L), SCORE_E_UNSUPPORTED);
    ck_assert_ok(score_model_new_callback(&m, D, lin_fn, &L));
    ck_assert_fails_with(score_model_set_f64(m, SCORE_MODEL_PARAM_GUIDANCE, 1.0), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_model_params_get(m, (float[1]){0}, 1), SCORE_E_UNSUPPORTED);
    score_model_free(m);
    score_model_free(g);
    score_schedule_free(s);
    score_model_free(NULL);
}
END_TEST

/* ---- combinations ------------------------------------------------------------------- */

enum { CD = 2 };
static const double cw[2] = {0.6, 0.4};
static const double cmu[4] = {-1.0, 0.5, 1.0, -0.5};
static const double cvar[4] = {0.3, 0.5, 0.4, 0.2};

START_TEST(sum_equals_manual_combination)
{
    score_schedule *s;
    score_model *g1, *g2, *sum, *members[2];
    const double one = 1.0, w[2] = {0.7, -1.3};
    const float x[3 * CD] = {0.1f, 0.2f, -1.0f, 0.5f, 2.0f, -0.3f};
    const float v[3 * CD] = {1, 0, 0.5f, -1, 0.25f, 0.25f};
    const double t[3] = {0.1, 0.5, 0.9};
    float a[3 * CD], b[3 * CD], o[3 * CD], fx[3 * CD];
    double ta[3], tb[3], to[3];
    ck_assert_ok(score_schedule_new(&s, SCORE_SCHEDULE_VP));
    ck_assert_ok(score_model_new_gmm(&g1, s, CD, 2, cw, cmu, cvar));
    ck_assert_ok(score_model_new_gmm(&g2, s, CD, 1, &one, cmu + 2, cvar));
    members[0] = g1;
    members[1] = g2;
    ck_assert_ok(score_model_new_sum(&sum, 2, members, w));
    ck_assert_int_eq(score_model_kind(sum), SCORE_MODEL_COMBINATION);
    ck_assert(score_model_capabilities(sum) & SCORE_MODEL_CAP_JVP);
    ck_assert(score_model_capabilities(sum) & SCORE_MODEL_CAP_VJP);
    ck_assert(score_model_capabilities(sum) & SCORE_MODEL_CAP_TRACE);
    /* forward */
    ck_assert_ok(score_model_forward(g1, 3, x, t, a));
    ck_assert_ok(score_model_forward(g2, 3, x, t, b));
    ck_assert_ok(score_model_forward(sum, 3, x, t, o));
    for (int i = 0; i < 3 * CD; i++)
        ck_assert_float_eq_tol(o[i], w[0] * a[i] + w[1] * b[i], TOL_F32_REL * (1 + fabs(o[i])));
    /* jvp with fx, vjp, trace */
    ck_assert_ok(score_model_jvp(g1, 3, x, t, 1, v, a, NULL));
    ck_assert_ok(score_model_jvp(g2, 3, x, t, 1, v, b, NULL));
    ck_assert_ok(score_model_jvp(sum, 3, x, t, 1, v, o, fx));
    for (int i = 0; i < 3 * CD; i++)
        ck_assert_float_eq_tol(o[i], w[0] * a[i] + w[1] * b[i], TOL_F32_REL * (1 + fabs(o[i])));
    ck_assert_ok(score_model_vjp(sum, 3, x, t, 1, v, a));
    for (int i = 0; i < 3 * CD; i++) /* symmetric members: vjp == jvp */
        ck_assert_float_eq_tol(a[i], o[i], TOL_F32_REL * (1 + fabs(o[i])));
    ck_assert_ok(score_model_forward(sum, 3, x, t, a));
    for (int i = 0; i < 3 * CD; i++)
        ck_assert_float_eq(fx[i], a[i]);
    ck_assert_ok(score_model_trace(g1, 3, x, t, ta, NULL));
    ck_assert_ok(score_model_trace(g2, 3, x, t, tb, NULL));
    ck_assert_ok(score_model_trace(sum, 3, x, t, to, fx));
    for (int i = 0; i < 3; i++)
        ck_assert_double_eq_tol(to[i], w[0] * ta[i] + w[1] * tb[i], 1e-12 * (1 + fabs(to[i])));
    /* weights can change; a zero weight skips the member */
    ck_assert_ok(score_model_combination_set_weight(sum, 1, 0.0));
    ck_assert_ok(score_model_forward(sum, 3, x, t, o));
    ck_assert_ok(score_model_forward(g1, 3, x, t, a));
    for (int i = 0; i < 3 * CD; i++)
        ck_assert_float_eq_tol(o[i], w[0] * a[i], TOL_F32_REL * (1 + fabs(o[i])));
    /* the workspace grows with the batch */
    {
        enum { BIG = 200 };
        float *xb = malloc(sizeof(float) * BIG * CD), *ob = malloc(sizeof(float) * BIG * CD);
        double *tbg = malloc(sizeof(double) * BIG);
        for (int i = 0; i < BIG; i++) {
            tbg[i] = 0.5;
            xb[i * CD] = 0.01f * (float)i;
            xb[i * CD + 1] = -0.02f * (float)i;
        }
        ck_assert_ok(score_model_forward(sum, BIG, xb, tbg, ob));
        ck_assert_ok(score_model_forward(sum, 1, xb + 7 * CD, tbg, a));
        ck_assert_float_eq(a[0], ob[7 * CD]);
        ck_assert_float_eq(a[1], ob[7 * CD + 1]);
        free(xb);
        free(ob);
        free(tbg);
    }
    /* guidance does not apply to a sum */
    ck_assert_fails_with(score_model_set_f64(sum, SCORE_MODEL_PARAM_GUIDANCE, 2.0), SCORE_E_UNSUPPORTED);
    score_model_free(sum);
    score_model_free(g1);
    score_model_free(g2);
    score_schedule_free(s);
}
END_TEST

START_TEST(cfg_equals_manual_and_guidance_param)
{
    score_schedule *s;
    score_model *gc, *gu, *cfg, *cl;
    const double one = 1.0;
    const float x[2 * CD] = {0.1f, 0.2f, -1.0f, 0.5f};
    const double t[2] = {0.3, 0.6};
    float a[2 * CD], b[2 * CD], o[2 * CD];
    double w;
    ck_assert_ok(score_schedule_new(&s, SCORE_SCHEDULE_VE));
    ck_assert_ok(score_model_new_gmm(&gc, s, CD, 1, &one, cmu, cvar));
    ck_assert_ok(score_model_new_gmm(&gu, s, CD, 2, cw, cmu, cvar));
    ck_assert_ok(score_model_new_cfg(&cfg, gc, gu, 3.0));
    ck_assert_ok(score_model_get_f64(cfg, SCORE_MODEL_PARAM_GUIDANCE, &w));
    ck_assert_double_eq(w, 3.0);
    ck_assert_ok(score_model_forward(gc, 2, x, t, a));
    ck_assert_ok(score_model_forward(gu, 2, x, t, b));
    ck_assert_ok(score_model_forward(cfg, 2, x, t, o));
    for (int i = 0; i < 2 * CD; i++)
        ck_assert_float_eq_tol(o[i], 4.0 * a[i] - 3.0 * b[i], TOL_F32_REL * (1 + 4 * fabs(a[i]) + 3 * fabs(b[i])));
    ck_assert_ok(score_model_set_f64(cfg, SCORE_MODEL_PARAM_GUIDANCE, 0.5));
    ck_assert_ok(score_model_forward(cfg, 2, x, t, o));
    for (int i = 0; i < 2 * CD; i++)
        ck_assert_float_eq_tol(o[i], 1.5 * a[i] - 0.5 * b[i], TOL_F32_REL * (1 + fabs(a[i]) + fabs(b[i])));
    ck_assert_ok(score_model_set_f64(cfg, SCORE_MODEL_PARAM_GUIDANCE, 0.0));
    ck_assert_ok(score_model_forward(cfg, 2, x, t, o));
    for (int i = 0; i < 2 * CD; i++)
        ck_assert_float_eq(o[i], a[i]);
    /* the clone carries the guidance weight */
    ck_assert_ok(score_model_set_f64(cfg, SCORE_MODEL_PARAM_GUIDANCE, 2.0));
    ck_assert_ok(score_model_clone(&cl, cfg));
    score_model_free(cfg);
    ck_assert_ok(score_model_forward(cl, 2, x, t, o));
    for (int i = 0; i < 2 * CD; i++)
        ck_assert_float_eq_tol(o[i], 3.0 * a[i] - 2.0 * b[i], TOL_F32_REL * (1 + 3 * fabs(a[i]) + 2 * fabs(b[i])));
    ck_assert_fails_with(score_model_set_f64(cl, SCORE_MODEL_PARAM_GUIDANCE, 2e6), SCORE_E_RANGE);
    ck_assert_fails_with(score_model_set_f64(cl, SCORE_MODEL_PARAM_GUIDANCE, NAN), SCORE_E_RANGE);
    ck_assert_fails_with(score_model_combination_set_weight(cl, 0, 1.0), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_model_set_i64(cl, SCORE_MODEL_PARAM_DEPTH, 2), SCORE_E_UNSUPPORTED);
    score_model_free(cl);
    score_model_free(gc);
    score_model_free(gu);
    score_schedule_free(s);
}
END_TEST

START_TEST(combination_capabilities_and_failures)
{
    lin L1 = {1.0, 0, 0, -1}, L2 = {2.0, 0, 0, -1};
    score_model *c1, *c2, *sum, *members[2], *cfg, *odd;
    const float x[D] = {1, 2, 3};
    const double c = 1.0;
    float out[D];
    double tr;
    ck_assert_ok(score_model_new_callback(&c1, D, lin_fn, &L1));
    ck_assert_ok(score_model_new_callback(&c2, D, lin_fn, &L2));
    ck_assert_ok(score_model_callback_set_jvp(c1, lin_jvp, &L1));
    members[0] = c1;
    members[1] = c2;
    ck_assert_ok(score_model_new_sum(&sum, 2, members, NULL));
    /* c2 has no jvp: neither has the sum */
    ck_assert(!(score_model_capabilities(sum) & SCORE_MODEL_CAP_JVP));
    ck_assert_fails_with(score_model_trace(sum, 1, x, &c, &tr, NULL), SCORE_E_UNSUPPORTED);
    ck_assert_ok(score_model_forward(sum, 1, x, &c, out));
    for (int j = 0; j < D; j++)
        ck_assert_float_eq(out[j], 3.0f * x[j]);
    /* a member's callback failure propagates with its status */
    L2.fail = -11;
    ck_assert_fails_with(score_model_forward(sum, 1, x, &c, out), SCORE_E_CALLBACK);
    ck_assert_int_eq(score_model_last_callback_status(sum), -11);
    L2.fail = 0;
    ck_assert_ok(score_model_forward(sum, 1, x, &c, out));
    ck_assert_int_eq(score_model_last_callback_status(sum), 0);
    /* bad arguments */
    ck_assert_fails_with(score_model_new_sum(NULL, 2, members, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_new_sum(&cfg, 2, NULL, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_new_sum(&cfg, 0, members, NULL), SCORE_E_RANGE);
    ck_assert_fails_with(score_model_new_sum(&cfg, 2, members, (double[2]){1, NAN}), SCORE_E_RANGE);
    members[1] = NULL;
    ck_assert_fails_with(score_model_new_sum(&cfg, 2, members, NULL), SCORE_E_INVAL);
    ck_assert_ok(score_model_new_callback(&odd, D + 1, lin_fn, &L1));
    members[1] = odd;
    ck_assert_fails_with(score_model_new_sum(&cfg, 2, members, NULL), SCORE_E_SHAPE);
    ck_assert_fails_with(score_model_new_cfg(&cfg, c1, odd, 1.0), SCORE_E_SHAPE);
    ck_assert_fails_with(score_model_new_cfg(&cfg, NULL, c2, 1.0), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_new_cfg(&cfg, c1, NULL, 1.0), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_new_cfg(NULL, c1, c2, 1.0), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_new_cfg(&cfg, c1, c2, NAN), SCORE_E_RANGE);
    ck_assert_fails_with(score_model_new_cfg(&cfg, c1, c2, 1e7), SCORE_E_RANGE);
    ck_assert_ptr_null(cfg);
    ck_assert_fails_with(score_model_combination_set_weight(NULL, 0, 1.0), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_combination_set_weight(c1, 0, 1.0), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_model_combination_set_weight(sum, 2, 1.0), SCORE_E_RANGE);
    ck_assert_fails_with(score_model_combination_set_weight(sum, 0, INFINITY), SCORE_E_RANGE);
    score_model_free(odd);
    score_model_free(sum);
    score_model_free(c1);
    score_model_free(c2);
}
END_TEST

static Suite *callback_suite(void)
{
    Suite *s = suite_create("model-callback");
    TCase *tc = tcase_create("callback");
    tcase_add_test(tc, forward_and_user_data);
    tcase_add_test(tc, failure_propagates_with_status);
    tcase_add_test(tc, optional_jvp_and_divergence);
    tcase_add_test(tc, nan_output_is_numeric_at_sde_level);
    tcase_add_test(tc, callback_bad_arguments);
    suite_add_tcase(s, tc);
    tc = tcase_create("combination");
    tcase_add_test(tc, sum_equals_manual_combination);
    tcase_add_test(tc, cfg_equals_manual_and_guidance_param);
    tcase_add_test(tc, combination_capabilities_and_failures);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(callback_suite());
}
