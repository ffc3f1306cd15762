// Training a network of your own with libscore (doc/training.md, "Training a network of your
// own"): a small residual network written by hand in C++ is the score model; libscore holds its
// parameter vector, draws the noise, computes the denoising loss and its output gradient, runs
// Adam with EMA, and samples the trained network with DPM-Solver++(2M).
//
// The network needs two functions: its forward pass and its vector-Jacobian product (the
// gradient of g . F with respect to the parameters and to the input). Both receive the
// parameters from the library, so one network object can serve any number of copies (the
// trainer's EMA copy, samplers in other threads).
//
// Checks (exit status 1 otherwise): the hand-written gradients equal central differences; the
// training loss falls; the samples' sliced Wasserstein-2 distance to fresh ring8 data is below
// 0.2. Measured: 0.167, where the library's MLP (width 48, two residual blocks) reaches 0.150
// on the same data and budget, and two data samples of this size are 0.049 apart.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include <libscore/libscore.h>

namespace {

void check(int status, const char *call)
{
    if (status != SCORE_OK)
        throw std::runtime_error(std::string(call) + ": " + score_status_name(status) + ": " +
                                 score_last_error_message());
}
#define CHECK(call) check((call), #call)

// out = W3 (h2) + b3, h2 = h1 + silu(W2 h1 + b2), h1 = silu(W1 [x ; e(c)] + b1), with the
// time features e(c) = (sin(2^k pi c), cos(2^k pi c)), k = 0..3. Computed in double.
class ResNet {
public:
    static constexpr size_t kFeat = 8;

    ResNet(size_t dim, size_t width) : dim_(dim), w_(width), in_(dim + kFeat)
    {
        o_b1_ = w_ * in_;
        o_w2_ = o_b1_ + w_;
        o_b2_ = o_w2_ + w_ * w_;
        o_w3_ = o_b2_ + w_;
        o_b3_ = o_w3_ + dim_ * w_;
        n_ = o_b3_ + dim_;
    }
    size_t num_params() const { return n_; }

    // Glorot-like initial weights from the library's counter-based generator.
    std::vector<float> initial_params(uint64_t seed) const
    {
        std::vector<float> th(n_, 0.0f), u(n_);
        score_rng *rng = nullptr;
        CHECK(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, seed));
        CHECK(score_rng_fill_uniform(rng, 0, 1, 0, n_, u.data()));
        score_rng_free(rng);
        auto fill = [&](size_t off, size_t count, double fan_in) {
            double a = std::sqrt(3.0 / fan_in);
            for (size_t i = 0; i < count; i++)
                th[off + i] = (float)(a * (2.0 * u[off + i] - 1.0));
        };
        fill(0, w_ * in_, (double)in_);
        fill(o_w2_, w_ * w_, (double)w_);
        fill(o_w3_, dim_ * w_, (double)w_);
        return th;
    }

    // The forward pass of one row; keeps what the backward pass needs.
    struct Row {
        std::vector<double> in, z1, h1, z2, h2;
    };
    void row_forward(const float *x, double c, const float *th, Row &r, double *out) const
    {
        r.in.assign(in_, 0.0);
        r.z1.assign(w_, 0.0);
        r.h1.assign(w_, 0.0);
        r.z2.assign(w_, 0.0);
        r.h2.assign(w_, 0.0);
        for (size_t j = 0; j < dim_; j++)
            r.in[j] = x[j];
        for (size_t k = 0; k < kFeat / 2; k++) {
            double a = std::ldexp(M_PI * c, (int)k);
            r.in[dim_ + 2 * k] = std::sin(a);
            r.in[dim_ + 2 * k + 1] = std::cos(a);
        }
        for (size_t i = 0; i < w_; i++) {
            double z = th[o_b1_ + i];
            for (size_t j = 0; j < in_; j++)
                z += (double)th[i * in_ + j] * r.in[j];
            r.z1[i] = z;
            r.h1[i] = silu(z);
        }
        for (size_t i = 0; i < w_; i++) {
            double z = th[o_b2_ + i];
            for (size_t j = 0; j < w_; j++)
                z += (double)th[o_w2_ + i * w_ + j] * r.h1[j];
            r.z2[i] = z;
            r.h2[i] = r.h1[i] + silu(z);
        }
        for (size_t k = 0; k < dim_; k++) {
            double o = th[o_b3_ + k];
            for (size_t i = 0; i < w_; i++)
                o += (double)th[o_w3_ + k * w_ + i] * r.h2[i];
            out[k] = o;
        }
    }

    // Adds d(g . out)/dtheta to grad (if not null) and writes d(g . out)/dx to gx (if not null).
    void row_backward(const Row &r, const float *g, const float *th, float *grad,
                      float *gx) const
    {
        std::vector<double> dh2(w_, 0.0), dz2(w_), dh1(w_), dz1(w_);
        for (size_t k = 0; k < dim_; k++)
            for (size_t i = 0; i < w_; i++)
                dh2[i] += (double)th[o_w3_ + k * w_ + i] * g[k];
        for (size_t i = 0; i < w_; i++) {
            dz2[i] = dh2[i] * dsilu(r.z2[i]);
            dh1[i] = dh2[i];
        }
        for (size_t j = 0; j < w_; j++)
            for (size_t i = 0; i < w_; i++)
                dh1[j] += (double)th[o_w2_ + i * w_ + j] * dz2[i];
        for (size_t i = 0; i < w_; i++)
            dz1[i] = dh1[i] * dsilu(r.z1[i]);
        if (grad != nullptr) {
            for (size_t k = 0; k < dim_; k++) {
                grad[o_b3_ + k] += g[k];
                for (size_t i = 0; i < w_; i++)
                    grad[o_w3_ + k * w_ + i] += (float)(g[k] * r.h2[i]);
            }
            for (size_t i = 0; i < w_; i++) {
                grad[o_b2_ + i] += (float)dz2[i];
                grad[o_b1_ + i] += (float)dz1[i];
                for (size_t j = 0; j < w_; j++)
                    grad[o_w2_ + i * w_ + j] += (float)(dz2[i] * r.h1[j]);
                for (size_t j = 0; j < in_; j++)
                    grad[i * in_ + j] += (float)(dz1[i] * r.in[j]);
            }
        }
        if (gx != nullptr)
            for (size_t j = 0; j < dim_; j++) {
                double s = 0.0;
                for (size_t i = 0; i < w_; i++)
                    s += (double)th[i * in_ + j] * dz1[i];
                gx[j] = (float)s;
            }
    }

    // The two functions libscore calls (score_model_param_fn, score_model_param_vjp_fn).
    static int forward(size_t n, size_t dim, const float *x, const double *c, const float *th,
                       size_t np, float *out, void *user_data)
    {
        const ResNet *net = static_cast<const ResNet *>(user_data);
        if (dim != net->dim_ || np != net->n_)
            return -1;
        Row r;
        std::vector<double> o(dim);
        for (size_t b = 0; b < n; b++) {
            net->row_forward(x + b * dim, c[b], th, r, o.data());
            for (size_t k = 0; k < dim; k++)
                out[b * dim + k] = (float)o[k];
        }
        return 0;
    }
    static int vjp(size_t n, size_t dim, const float *x, const double *c, const float *th,
                   size_t np, const float *g, float *grad, float *gx, void *user_data)
    {
        const ResNet *net = static_cast<const ResNet *>(user_data);
        if (dim != net->dim_ || np != net->n_)
            return -1;
        Row r;
        std::vector<double> o(dim);
        for (size_t b = 0; b < n; b++) {
            net->row_forward(x + b * dim, c[b], th, r, o.data());
            net->row_backward(r, g + b * dim, th, grad, gx ? gx + b * dim : nullptr);
        }
        return 0;
    }

private:
    static double silu(double z) { return z / (1.0 + std::exp(-z)); }
    static double dsilu(double z)
    {
        double s = 1.0 / (1.0 + std::exp(-z));
        return s * (1.0 + z * (1.0 - s));
    }
    size_t dim_, w_, in_, n_;
    size_t o_b1_, o_w2_, o_b2_, o_w3_, o_b3_;
};

// Largest gap between the hand-written parameter and input gradients of g . F and central
// differences, relative to the largest gradient entry.
double gradient_check(const ResNet &net, std::vector<float> th)
{
    const size_t n = 3, dim = 2;
    const float x[n * dim] = {0.5f, -1.0f, 2.0f, 0.3f, -0.4f, 1.2f};
    const double c[n] = {0.1, 0.45, 0.9};
    const float g[n * dim] = {1.0f, -0.5f, 0.25f, 2.0f, -1.0f, 0.75f};
    const size_t np = net.num_params();
    std::vector<float> grad(np, 0.0f), gx(n * dim);
    ResNet::vjp(n, dim, x, c, th.data(), np, g, grad.data(), gx.data(), (void *)&net);
    auto objective = [&](const float *xx, const float *t) {
        ResNet::Row r;
        double o[2], s = 0.0;
        for (size_t b = 0; b < n; b++) {
            net.row_forward(xx + b * dim, c[b], t, r, o);
            s += o[0] * g[b * dim] + o[1] * g[b * dim + 1];
        }
        return s;
    };
    double worst = 0.0, scale = 0.0;
    const float h = 0x1p-10f; // exact in float around these values
    for (size_t i = 0; i < np; i += 7) {
        float keep = th[i];
        th[i] = keep + h;
        double fp = objective(x, th.data());
        th[i] = keep - h;
        double fm = objective(x, th.data());
        th[i] = keep;
        worst = std::max(worst, std::fabs((fp - fm) / (2.0 * h) - grad[i]));
        scale = std::max(scale, (double)std::fabs(grad[i]));
    }
    for (size_t i = 0; i < n * dim; i++) {
        float xx[n * dim];
        std::memcpy(xx, x, sizeof xx);
        xx[i] = x[i] + h;
        double fp = objective(xx, th.data());
        xx[i] = x[i] - h;
        double fm = objective(xx, th.data());
        worst = std::max(worst, std::fabs((fp - fm) / (2.0 * h) - gx[i]));
    }
    return worst / scale;
}

// Sliced Wasserstein-2 distance of two equal-size 2-D samples over 64 fixed directions.
double sliced_w2(const std::vector<float> &a, const std::vector<float> &b)
{
    const size_t n = a.size() / 2;
    std::vector<double> pa(n), pb(n);
    double total = 0.0;
    for (int k = 0; k < 64; k++) {
        double th = M_PI * (k + 0.5) / 64.0, u = std::cos(th), v = std::sin(th);
        for (size_t i = 0; i < n; i++) {
            pa[i] = u * a[2 * i] + v * a[2 * i + 1];
            pb[i] = u * b[2 * i] + v * b[2 * i + 1];
        }
        std::sort(pa.begin(), pa.end());
        std::sort(pb.begin(), pb.end());
        for (size_t i = 0; i < n; i++)
            total += (pa[i] - pb[i]) * (pa[i] - pb[i]);
    }
    return std::sqrt(total / (64.0 * (double)n));
}

} // namespace

int main()
{
    try {
        const size_t dim = 2, width = 48, n_data = 4096, n_samples = 2000, steps = 2500;
        ResNet net(dim, width);
        std::vector<float> theta = net.initial_params(1);

        double gerr = gradient_check(net, theta);
        std::printf("hand-written gradients vs central differences: max gap %.2e of the largest "
                    "entry\n", gerr);

        // The model: libscore holds theta and calls the network's two functions.
        score_model *model = nullptr;
        CHECK(score_model_new_callback_params(&model, dim, net.num_params(), ResNet::forward,
                                              ResNet::vjp, &net));
        CHECK(score_model_params_set(model, theta.data(), theta.size()));

        // Data, schedule, loss, trainer: the same calls as for the library's own MLP.
        std::vector<float> data(n_data * dim), ref(n_samples * dim), out(n_samples * dim);
        score_rng *rng = nullptr;
        CHECK(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 3));
        CHECK(score_dataset_toy("ring8", rng, n_data, data.data()));
        score_schedule *vp = nullptr;
        score_sde *sde = nullptr;
        score_loss *loss = nullptr;
        score_trainer *tr = nullptr;
        CHECK(score_schedule_new_preset(&vp, "vp"));
        CHECK(score_sde_new(&sde, vp, model, SCORE_OUTPUT_EPS));
        CHECK(score_loss_new(&loss, SCORE_LOSS_SDE));
        CHECK(score_trainer_new(&tr, model, sde, loss, SCORE_OPTIMIZER_ADAM));
        CHECK(score_optimizer_set_f64(score_trainer_optimizer(tr), SCORE_OPTIMIZER_PARAM_LR, 3e-3));
        CHECK(score_trainer_set_data(tr, n_data, dim, data.data()));
        double first = 0.0, last = 0.0, l;
        for (int k = 0; k < 50; k++) {
            CHECK(score_trainer_step(tr, &l));
            first += l / 50.0;
        }
        CHECK(score_trainer_run(tr, steps - 100, nullptr, nullptr));
        for (int k = 0; k < 50; k++) {
            CHECK(score_trainer_step(tr, &l));
            last += l / 50.0;
        }
        std::printf("%zu parameters, %zu steps: mean loss of the first 50 steps %.4f, of the "
                    "last 50 %.4f\n", net.num_params(), steps, first, last);

        // Sample the EMA weights and compare with fresh data.
        score_model *ema = nullptr;
        score_sampler *smp = nullptr;
        score_rng *data_rng = nullptr;
        CHECK(score_trainer_ema_model(tr, &ema));
        CHECK(score_sde_set_model(sde, ema));
        CHECK(score_sampler_new_preset(&smp, SCORE_SAMPLER_PRESET_DPMPP_2M, dim));
        CHECK(score_sampler_run(smp, sde, n_samples, nullptr, out.data(), rng, nullptr, nullptr));
        CHECK(score_rng_new(&data_rng, SCORE_RNG_PHILOX4X32_10, 99));
        CHECK(score_dataset_toy("ring8", data_rng, n_samples, ref.data()));
        std::vector<float> ref2(n_samples * dim);
        CHECK(score_rng_set_stream(data_rng, 1));
        CHECK(score_dataset_toy("ring8", data_rng, n_samples, ref2.data()));
        double sw = sliced_w2(out, ref), floor_sw = sliced_w2(ref2, ref);
        std::printf("sliced W2 to fresh ring8 data: %.4f (two data samples of this size: %.4f)\n",
                    sw, floor_sw);

        score_rng_free(data_rng);
        score_sampler_free(smp);
        score_trainer_free(tr);
        score_loss_free(loss);
        score_sde_free(sde);
        score_schedule_free(vp);
        score_rng_free(rng);
        score_model_free(model);
        bool ok = gerr < 1e-5 && last < 0.7 * first && sw < 0.2;
        std::printf("%s\n", ok ? "ok" : "FAILED");
        return ok ? 0 : 1;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
}
