/* Trainable callback models (score_model_new_callback_params()): a user network whose
 * parameters the library holds. The plumbing is checked exactly (what backward, vjp and the
 * parameter accessors return is what the user functions compute on the same inputs), the
 * denoising loss's parameter gradient against central differences, the refusals of what the
 * kind cannot do, clones and checkpoints, and a training run against the data's moments. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "helpers/test-helpers.h"

/* The user network: out = W2 tanh(W1 [x ; c] + b1) + b2, hidden width H, computed in double.
 * Layout of theta: W1 (H x (dim + 1), row-major), b1 (H), W2 (dim x H), b2 (dim). */
enum { H = 32, DIM = 2 };

typedef struct net {
    size_t dim;
    int fail; /* returned instead of 0 when set */
} net;

static size_t net_params(size_t dim)
{
    return H * (dim + 1) + H + dim * H + dim;
}

static void hidden(size_t dim, const float *x, double c, const float *th, double *h)
{
    const float *W1 = th, *b1 = th + H * (dim + 1);
    for (size_t i = 0; i < H; i++) {
        double z = b1[i] + W1[i * (dim + 1) + dim] * c;
        for (size_t j = 0; j < dim; j++)
            z += (double)W1[i * (dim + 1) + j] * x[j];
        h[i] = tanh(z);
    }
}

static int net_fn(size_t n, size_t dim, const float *x, const double *c, const float *th,
                  size_t np, float *out, void *ud)
{
    const net *N = ud;
    const float *W2 = th + H * (dim + 1) + H, *b2 = W2 + dim * H;
    if (N->fail)
        return N->fail;
    if (np != net_params(dim) || dim != N->dim)
        return -99;
    for (size_t b = 0; b < n; b++) {
        double h[H];
        hidden(dim, x + b * dim, c[b], th, h);
        for (size_t k = 0; k < dim; k++) {
            double o = b2[k];
            for (size_t i = 0; i < H; i++)
                o += (double)W2[k * H + i] * h[i];
            out[b * dim + k] = (float)o;
        }
    }
    return 0;
}

static int net_vjp(size_t n, size_t dim, const float *x, const double *c, const float *th,
                   size_t np, const float *g, float *grad, float *gx, void *ud)
{
    const net *N = ud;
    const float *W1 = th, *W2 = th + H * (dim + 1) + H;
    size_t o_b1 = H * (dim + 1), o_W2 = o_b1 + H, o_b2 = o_W2 + dim * H;
    if (N->fail)
        return N->fail;
    if (np != net_params(dim) || (grad == NULL && gx == NULL))
        return -99;
    for (size_t b = 0; b < n; b++) {
        double h[H], dz[H];
        const float *gb = g + b * dim, *xb = x + b * dim;
        hidden(dim, xb, c[b], th, h);
        for (size_t i = 0; i < H; i++) {
            double dh = 0.0;
            for (size_t k = 0; k < dim; k++)
                dh += (double)W2[k * H + i] * gb[k];
            dz[i] = dh * (1.0 - h[i] * h[i]);
        }
        if (grad != NULL) {
            for (size_t k = 0; k < dim; k++) {
                grad[o_b2 + k] += gb[k];
                for (size_t i = 0; i < H; i++)
                    grad[o_W2 + k * H + i] += (float)(gb[k] * h[i]);
            }
            for (size_t i = 0; i < H; i++) {
                grad[o_b1 + i] += (float)dz[i];
                for (size_t j = 0; j < dim; j++)
                    grad[i * (dim + 1) + j] += (float)(dz[i] * xb[j]);
                grad[i * (dim + 1) + dim] += (float)(dz[i] * c[b]);
            }
        }
        if (gx != NULL)
            for (size_t j = 0; j < dim; j++) {
                double s = 0.0;
                for (size_t i = 0; i < H; i++)
                    s += dz[i] * W1[i * (dim + 1) + j];
                gx[b * dim + j] = (float)s;
            }
    }
    return 0;
}

/* theta with entries in [-scale, scale) from the library's generator */
static void init_params(size_t np, float *th, double scale, uint64_t seed)
{
    score_rng *rng;
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, seed));
    ck_assert_ok(score_rng_fill_uniform(rng, 0, 1, 0, np, th));
    for (size_t i = 0; i < np; i++)
        th[i] = (float)(scale * (2.0 * th[i] - 1.0));
    score_rng_free(rng);
}

static score_model *new_net(net *N, float *th)
{
    score_model *m;
    size_t np = net_params(DIM);
    N->dim = DIM;
    N->fail = 0;
    ck_assert_ok(score_model_new_callback_params(&m, DIM, np, net_fn, net_vjp, N));
    init_params(np, th, 0.5, 11);
    ck_assert_ok(score_model_params_set(m, th, np));
    return m;
}

enum { NR = 5, NP_MAX = 512 };

static const float X5[NR * DIM] = {0.3f, -1.2f, 1.5f, 0.25f, -0.7f, 0.8f, 2.0f, -0.1f, 0.0f, 0.6f};
static const double C5[NR] = {0.1, 0.5, 0.9, 0.05, 1.0};

START_TEST(backward_and_vjp_are_the_users_products)
{
    net N;
    float th[NP_MAX], g[NR * DIM], out[NR * DIM], ref_out[NR * DIM];
    float grad[NP_MAX] = {0}, ref_grad[NP_MAX] = {0}, gx[NR * DIM], ref_gx[NR * DIM];
    float u[NR * 3 * DIM], vj[NR * 3 * DIM], one[NR * DIM], ref1[NR * DIM];
    size_t np = net_params(DIM);
    score_model *m = new_net(&N, th);
    uint32_t caps = score_model_capabilities(m);
    ck_assert(caps & SCORE_MODEL_CAP_PARAMS);
    ck_assert(caps & SCORE_MODEL_CAP_BACKWARD);
    ck_assert(caps & SCORE_MODEL_CAP_VJP);
    ck_assert(!(caps & (SCORE_MODEL_CAP_JVP | SCORE_MODEL_CAP_TRACE | SCORE_MODEL_CAP_TRACE_GRAD |
                        SCORE_MODEL_CAP_VJV_GRAD | SCORE_MODEL_CAP_SAVE)));
    ck_assert_uint_eq(score_model_param_count(m), np);
    for (size_t i = 0; i < NR * DIM; i++)
        g[i] = (float)(0.25 * (double)i - 1.0);

    /* forward, then backward: exactly the user's forward and vjp at the cached rows */
    ck_assert_ok(score_model_forward(m, NR, X5, C5, out));
    ck_assert_int_eq(net_fn(NR, DIM, X5, C5, th, np, ref_out, &N), 0);
    ck_assert_mem_eq(out, ref_out, sizeof out);
    ck_assert_ok(score_model_backward(m, NR, g, grad, gx));
    ck_assert_int_eq(net_vjp(NR, DIM, X5, C5, th, np, g, ref_grad, ref_gx, &N), 0);
    ck_assert_mem_eq(grad, ref_grad, np * sizeof *grad);
    ck_assert_mem_eq(gx, ref_gx, sizeof gx);
    /* gradients accumulate: a second pass adds to what the first left */
    ck_assert_ok(score_model_forward(m, NR, X5, C5, out));
    ck_assert_ok(score_model_backward(m, NR, g, grad, NULL));
    ck_assert_int_eq(net_vjp(NR, DIM, X5, C5, th, np, g, ref_grad, NULL, &N), 0);
    ck_assert_mem_eq(grad, ref_grad, np * sizeof *grad);

    /* vjp with 3 probes per row: each probe is the user's input VJP of that probe */
    for (size_t i = 0; i < NR * 3 * DIM; i++)
        u[i] = (float)sin(0.7 * (double)i);
    ck_assert_ok(score_model_vjp(m, NR, X5, C5, 3, u, vj));
    for (size_t p = 0; p < 3; p++) {
        for (size_t b = 0; b < NR; b++)
            memcpy(one + b * DIM, u + (b * 3 + p) * DIM, DIM * sizeof *one);
        ck_assert_int_eq(net_vjp(NR, DIM, X5, C5, th, np, one, NULL, ref1, &N), 0);
        for (size_t b = 0; b < NR; b++)
            ck_assert_mem_eq(vj + (b * 3 + p) * DIM, ref1 + b * DIM, DIM * sizeof *vj);
    }
    score_model_free(m);
}
END_TEST

/* d loss / d theta of the SDE loss (VP, eps output) against central differences of the loss,
 * which is a deterministic function of theta for a fixed generator (counter-based noise). */
START_TEST(sde_loss_gradient_matches_central_differences)
{
    net N;
    float th[NP_MAX], grad[NP_MAX] = {0}, x[64 * DIM];
    size_t np = net_params(DIM);
    score_model *m = new_net(&N, th);
    score_schedule *vp;
    score_sde *sde;
    score_loss *loss;
    score_rng *rng;
    double L0, gmax = 0.0, errmax = 0.0;
    ck_assert_ok(score_schedule_new_preset(&vp, "vp"));
    ck_assert_ok(score_sde_new(&sde, vp, m, SCORE_OUTPUT_EPS));
    ck_assert_ok(score_loss_new(&loss, SCORE_LOSS_SDE));
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 5));
    ck_assert_ok(score_dataset_toy("ring8", rng, 64, x));
    ck_assert_ok(score_loss_compute(loss, sde, m, rng, 64, x, &L0, grad));
    ck_assert(L0 > 0.1);
    for (size_t i = 0; i < np; i++)
        gmax = fmax(gmax, fabs(grad[i]));
    for (size_t i = 0; i < np; i += 3) {
        /* the step is a power of two so theta +- h is exact in float; the float32 outputs put
         * a noise of about 1e-7 * L / h on the difference quotient */
        const float h = 0x1p-8f;
        float keep = th[i];
        double lp, lm, fd;
        th[i] = keep + h;
        ck_assert_ok(score_model_params_set(m, th, np));
        ck_assert_ok(score_loss_compute(loss, sde, m, rng, 64, x, &lp, NULL));
        th[i] = keep - h;
        ck_assert_ok(score_model_params_set(m, th, np));
        ck_assert_ok(score_loss_compute(loss, sde, m, rng, 64, x, &lm, NULL));
        th[i] = keep;
        fd = (lp - lm) / (2.0 * h);
        errmax = fmax(errmax, fabs(fd - grad[i]));
    }
    /* central differences of a tanh network at h = 2^-8: O(h^2) ~ 1e-5 relative, plus the
     * float32 noise above: 2e-3 of the largest gradient entry bounds both with margin */
    ck_assert_msg(errmax < 2e-3 * gmax, "max |fd - grad| = %g, max |grad| = %g", errmax, gmax);
    score_rng_free(rng);
    score_loss_free(loss);
    score_sde_free(sde);
    score_schedule_free(vp);
    score_model_free(m);
}
END_TEST

START_TEST(refusals_name_what_is_missing)
{
    net N;
    float th[NP_MAX], x[8 * DIM], grad[NP_MAX] = {0};
    score_model *m = new_net(&N, th);
    score_schedule *vp;
    score_sde *sde;
    score_loss *loss;
    score_rng *rng;
    void *buf = NULL;
    size_t len = 0;
    double L;
    static const int refused[] = {SCORE_LOSS_HYVARINEN, SCORE_LOSS_SSM, SCORE_LOSS_SSM_VR};
    ck_assert_ok(score_schedule_new_preset(&vp, "vp"));
    ck_assert_ok(score_sde_new(&sde, vp, m, SCORE_OUTPUT_EPS));
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 1));
    ck_assert_ok(score_dataset_toy("ring8", rng, 8, x));
    for (size_t k = 0; k < sizeof refused / sizeof *refused; k++) {
        ck_assert_ok(score_loss_new(&loss, refused[k]));
        ck_assert_fails_with(score_loss_compute(loss, sde, m, rng, 8, x, &L, grad),
                             SCORE_E_UNSUPPORTED);
        ck_assert_ptr_nonnull(strstr(score_last_error_message(), "score_model_"));
        score_loss_free(loss);
    }
    /* the parameter-free callback setters do not apply */
    ck_assert_fails_with(score_model_callback_set_jvp(m, NULL, NULL), SCORE_E_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(score_last_error_message(), "vjp"));
    ck_assert_fails_with(score_model_callback_set_divergence(m, NULL, NULL), SCORE_E_UNSUPPORTED);
    /* no file format */
    ck_assert_fails_with(score_model_save_buffer(m, &buf, &len), SCORE_E_UNSUPPORTED);
    /* the user's failure code comes back through the model */
    N.fail = 3;
    ck_assert_ok(score_loss_new(&loss, SCORE_LOSS_SDE));
    ck_assert_fails_with(score_loss_compute(loss, sde, m, rng, 8, x, &L, grad), SCORE_E_CALLBACK);
    ck_assert_int_eq(score_model_last_callback_status(m), 3);
    score_loss_free(loss);
    /* constructor arguments */
    {
        score_model *bad = (score_model *)&N;
        ck_assert_fails_with(score_model_new_callback_params(&bad, DIM, 0, net_fn, net_vjp, &N),
                             SCORE_E_RANGE);
        ck_assert_ptr_null(bad);
        ck_assert_fails_with(score_model_new_callback_params(&bad, 0, 5, net_fn, net_vjp, &N),
                             SCORE_E_RANGE);
        ck_assert_fails_with(score_model_new_callback_params(&bad, DIM, 5, NULL, net_vjp, &N),
                             SCORE_E_INVAL);
        ck_assert_fails_with(score_model_new_callback_params(&bad, DIM, 5, net_fn, NULL, &N),
                             SCORE_E_INVAL);
        ck_assert_fails_with(score_model_new_callback_params(NULL, DIM, 5, net_fn, net_vjp, &N),
                             SCORE_E_INVAL);
    }
    score_rng_free(rng);
    score_sde_free(sde);
    score_schedule_free(vp);
    score_model_free(m);
}
END_TEST

START_TEST(clones_own_their_parameters)
{
    net N;
    float th[NP_MAX], th2[NP_MAX], a[NR * DIM], b[NR * DIM];
    size_t np = net_params(DIM);
    score_model *m = new_net(&N, th), *c;
    ck_assert_ok(score_model_clone(&c, m));
    ck_assert_ok(score_model_forward(m, NR, X5, C5, a));
    ck_assert_ok(score_model_forward(c, NR, X5, C5, b));
    ck_assert_mem_eq(a, b, sizeof a);
    for (size_t i = 0; i < np; i++)
        th2[i] = 0.5f * th[i];
    ck_assert_ok(score_model_params_set(c, th2, np));
    ck_assert_ok(score_model_forward(m, NR, X5, C5, b));
    ck_assert_mem_eq(a, b, sizeof a); /* the original is unchanged */
    ck_assert_ok(score_model_params_get(m, th2, np));
    ck_assert_mem_eq(th, th2, np * sizeof *th);
    ck_assert_fails_with(score_model_params_set(m, th, np - 1), SCORE_E_SHAPE);
    score_model_free(c);
    score_model_free(m);
}
END_TEST

/* Training with Adam: the loss falls; a checkpoint taken half-way resumes to bit-identical
 * weights in a second model of the same network. */
enum { N_DATA = 2048, STEPS = 600 };

static void gaussian_data(float *data)
{
    static const double mu[DIM] = {1.0, -2.0}, sd[DIM] = {0.5, 1.0};
    static float z[N_DATA * DIM];
    score_rng *rng;
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 21));
    ck_assert_ok(score_rng_fill_normal(rng, 0, N_DATA, 0, DIM, z));
    for (size_t i = 0; i < N_DATA * DIM; i++)
        data[i] = (float)(mu[i % DIM] + sd[i % DIM] * z[i]);
    score_rng_free(rng);
}

static score_trainer *new_trainer(score_model *m, score_schedule *vp, score_loss *loss,
                                  score_sde **sde_out, const float *data)
{
    score_trainer *tr;
    ck_assert_ok(score_sde_new(sde_out, vp, m, SCORE_OUTPUT_EPS));
    ck_assert_ok(score_trainer_new(&tr, m, *sde_out, loss, SCORE_OPTIMIZER_ADAM));
    ck_assert_ok(score_optimizer_set_f64(score_trainer_optimizer(tr), SCORE_OPTIMIZER_PARAM_LR,
                                         1e-2));
    ck_assert_ok(score_trainer_set_data(tr, N_DATA, DIM, data));
    return tr;
}

START_TEST(trains_and_resumes)
{
    static float data[N_DATA * DIM];
    net N, N2;
    float th[NP_MAX], th0[NP_MAX], w_full[NP_MAX], w_resumed[NP_MAX];
    size_t np = net_params(DIM);
    score_model *m = new_net(&N, th), *m2 = new_net(&N2, th0);
    score_schedule *vp;
    score_sde *sde, *sde2;
    score_loss *loss;
    score_trainer *tr, *tr2;
    void *ck = NULL;
    size_t cklen = 0;
    double first = 0.0, last = 0.0, l;
    gaussian_data(data);
    ck_assert_ok(score_schedule_new_preset(&vp, "vp"));
    ck_assert_ok(score_loss_new(&loss, SCORE_LOSS_SDE));
    tr = new_trainer(m, vp, loss, &sde, data);
    for (int k = 0; k < 20; k++) { /* averages over 20 steps: the loss of one batch is noisy */
        ck_assert_ok(score_trainer_step(tr, &l));
        first += l / 20.0;
    }
    ck_assert_ok(score_trainer_run(tr, STEPS / 2 - 20, NULL, NULL));
    ck_assert_ok(score_trainer_save_buffer(tr, &ck, &cklen));
    ck_assert_ok(score_trainer_run(tr, STEPS / 2 - 20, NULL, NULL));
    for (int k = 0; k < 20; k++) {
        ck_assert_ok(score_trainer_step(tr, &l));
        last += l / 20.0;
    }
    ck_assert_ok(score_model_params_get(m, w_full, np));
    ck_assert_msg(last < 0.5 * first, "mean loss %g -> %g", first, last);

    tr2 = new_trainer(m2, vp, loss, &sde2, data);
    ck_assert_ok(score_trainer_load_buffer(tr2, ck, cklen));
    ck_assert_ok(score_trainer_run(tr2, STEPS / 2, NULL, NULL));
    ck_assert_ok(score_model_params_get(m2, w_resumed, np));
    ck_assert_mem_eq(w_full, w_resumed, np * sizeof *w_full);
    free(ck);
    score_trainer_free(tr2);
    score_trainer_free(tr);
    score_loss_free(loss);
    score_sde_free(sde2);
    score_sde_free(sde);
    score_schedule_free(vp);
    score_model_free(m2);
    score_model_free(m);
}
END_TEST

/* The library's own MLP behind the callback interface: training the wrapper must reproduce
 * training the MLP bit for bit (weights, EMA and samples), which checks that the trainer,
 * the loss and the sampler hand the user functions exactly what they hand a built-in kind. */
typedef struct wrapped {
    score_model *mlp;
} wrapped;

static int wrap_fn(size_t n, size_t dim, const float *x, const double *c, const float *th,
                   size_t np, float *out, void *ud)
{
    wrapped *W = ud;
    (void)dim;
    if (score_model_params_set(W->mlp, th, np) != SCORE_OK)
        return -1;
    return score_model_forward(W->mlp, n, x, c, out) == SCORE_OK ? 0 : -2;
}

static int wrap_vjp(size_t n, size_t dim, const float *x, const double *c, const float *th,
                    size_t np, const float *g, float *grad, float *gx, void *ud)
{
    wrapped *W = ud;
    float *out = malloc(n * dim * sizeof *out);
    int rc = out == NULL || wrap_fn(n, dim, x, c, th, np, out, ud) != 0 ||
             score_model_backward(W->mlp, n, g, grad, gx) != SCORE_OK;
    free(out);
    return rc ? -3 : 0;
}

START_TEST(wrapped_mlp_trains_bit_identically)
{
    static float data[N_DATA * DIM], s_ref[500 * DIM], s_cb[500 * DIM];
    float *w_ref, *w_cb, *th;
    score_model *mlp, *inner, *cb, *ema_ref, *ema_cb;
    score_schedule *vp;
    score_sde *sde_ref, *sde_cb;
    score_loss *loss;
    score_trainer *tr_ref, *tr_cb;
    score_sampler *s;
    score_rng *rng;
    wrapped W;
    size_t np;
    gaussian_data(data);
    ck_assert_ok(score_model_new_mlp(&mlp, DIM, 32, 2, SCORE_ACT_SILU, 3));
    ck_assert_ok(score_model_set_i64(mlp, SCORE_MODEL_PARAM_THREADS, 1));
    np = score_model_param_count(mlp);
    ck_assert_ok(score_model_clone(&inner, mlp));
    W.mlp = inner;
    ck_assert_ok(score_model_new_callback_params(&cb, DIM, np, wrap_fn, wrap_vjp, &W));
    th = malloc(np * sizeof *th);
    w_ref = malloc(np * sizeof *w_ref);
    w_cb = malloc(np * sizeof *w_cb);
    ck_assert_ptr_nonnull(th);
    ck_assert_ptr_nonnull(w_ref);
    ck_assert_ptr_nonnull(w_cb);
    ck_assert_ok(score_model_params_get(mlp, th, np));
    ck_assert_ok(score_model_params_set(cb, th, np));

    ck_assert_ok(score_schedule_new_preset(&vp, "vp"));
    ck_assert_ok(score_loss_new(&loss, SCORE_LOSS_SDE));
    tr_ref = new_trainer(mlp, vp, loss, &sde_ref, data);
    tr_cb = new_trainer(cb, vp, loss, &sde_cb, data);
    ck_assert_ok(score_trainer_run(tr_ref, 150, NULL, NULL));
    ck_assert_ok(score_trainer_run(tr_cb, 150, NULL, NULL));
    ck_assert_ok(score_model_params_get(mlp, w_ref, np));
    ck_assert_ok(score_model_params_get(cb, w_cb, np));
    ck_assert_mem_eq(w_ref, w_cb, np * sizeof *w_ref);
    ck_assert_ok(score_trainer_ema_model(tr_ref, &ema_ref));
    ck_assert_ok(score_trainer_ema_model(tr_cb, &ema_cb));
    ck_assert_ok(score_model_params_get(ema_ref, w_ref, np));
    ck_assert_ok(score_model_params_get(ema_cb, w_cb, np));
    ck_assert_mem_eq(w_ref, w_cb, np * sizeof *w_ref);

    /* the sampler through the EMA models: the same samples up to float rounding (the sde
     * evaluates a built-in MLP in its blocked inference, the wrapper calls the public forward
     * on all rows: other GEMM row counts, so other last bits; model.h "Reproducibility") */
    ck_assert_ok(score_sde_set_model(sde_ref, ema_ref));
    ck_assert_ok(score_sde_set_model(sde_cb, ema_cb));
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 4));
    ck_assert_ok(score_sampler_new_preset(&s, SCORE_SAMPLER_PRESET_DPMPP_2M, DIM));
    ck_assert_ok(score_sampler_run(s, sde_ref, 500, NULL, s_ref, rng, NULL, NULL));
    ck_assert_ok(score_sampler_run(s, sde_cb, 500, NULL, s_cb, rng, NULL, NULL));
    for (size_t i = 0; i < 500 * DIM; i++)
        ck_assert_float_eq_tol(s_cb[i], s_ref[i], 1e-5f * (1.0f + fabsf(s_ref[i])));

    /* likelihoods: the exact divergence comes from dim input VJPs of the wrapper, from the
     * MLP's own trace for the MLP; equal up to float rounding of the two paths, which the
     * adaptive solver turns into other steps: tight tolerances keep that below 1e-4 */
    {
        score_likelihood *lk;
        double lp_ref[8], lp_cb[8];
        ck_assert_ok(score_likelihood_new(&lk, DIM));
        ck_assert_ok(score_likelihood_set_f64(lk, SCORE_LIKELIHOOD_PARAM_RTOL, 1e-7));
        ck_assert_ok(score_likelihood_set_f64(lk, SCORE_LIKELIHOOD_PARAM_ATOL, 1e-7));
        ck_assert_ok(score_likelihood_logp(lk, sde_ref, 8, data, lp_ref, NULL, NULL));
        ck_assert_ok(score_likelihood_logp(lk, sde_cb, 8, data, lp_cb, NULL, NULL));
        for (size_t i = 0; i < 8; i++)
            ck_assert_double_eq_tol(lp_cb[i], lp_ref[i], 1e-4 * (1.0 + fabs(lp_ref[i])));
        score_likelihood_free(lk);
    }
    score_sampler_free(s);
    score_rng_free(rng);
    score_trainer_free(tr_cb);
    score_trainer_free(tr_ref);
    score_loss_free(loss);
    score_sde_free(sde_cb);
    score_sde_free(sde_ref);
    score_schedule_free(vp);
    score_model_free(cb);
    score_model_free(inner);
    score_model_free(mlp);
    free(th);
    free(w_ref);
    free(w_cb);
}
END_TEST

static Suite *train_suite(void)
{
    Suite *s = suite_create("model-callback-train");
    TCase *tc = tcase_create("trainable callbacks");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, backward_and_vjp_are_the_users_products);
    tcase_add_test(tc, sde_loss_gradient_matches_central_differences);
    tcase_add_test(tc, refusals_name_what_is_missing);
    tcase_add_test(tc, clones_own_their_parameters);
    tcase_add_test(tc, trains_and_resumes);
    tcase_add_test(tc, wrapped_mlp_trains_bit_identically);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(train_suite());
}
