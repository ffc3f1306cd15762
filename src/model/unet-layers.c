/* Layers of the U-Net (see unet-priv.h for the conventions): convolutions and dense layers as
 * GEMMs through the kernel layer, GroupNorm, SiLU, resampling and concatenation.
 *
 * A 3x3 convolution of one image is one GEMM over its im2col matrix: with col the
 * (ci * 9) x (h * w) matrix of shifted input planes, y = W col + b, where W is the weight
 * [co, ci, 3, 3] read as a co x (ci * 9) row-major matrix. Its backward is two more GEMMs:
 * dW += gy col^T and dcol = W^T gy, then col2im (the adjoint of im2col) adds dcol into dx. The
 * images of a batch are processed one after the other (the GEMM's N dimension is h * w), so an
 * image's result does not depend on the batch it is in. */
#include <math.h>
#include <string.h>

#include "kernel/kernel-priv.h"
#include "unet-priv.h"

/* ---- im2col ------------------------------------------------------------------------------ */

/* Valid output columns [lo, hi) for tap dx (input column px + dx - 1 inside 0 .. w - 1). */
static void tap_range(size_t d, size_t len, size_t *lo, size_t *hi)
{
    *lo = d == 0 ? 1 : 0;
    *hi = d == 2 ? len - 1 : len; /* len = 1: empty for d != 1 */
}

void score__unet_im2col(size_t c, size_t h, size_t w, const float *x, float *col)
{
    size_t hw = h * w;
    for (size_t k = 0; k < c; k++) {
        const float *plane = x + k * hw;
        for (size_t dy = 0; dy < 3; dy++) {
            size_t ylo, yhi;
            tap_range(dy, h, &ylo, &yhi);
            for (size_t dx = 0; dx < 3; dx++) {
                size_t xlo, xhi;
                tap_range(dx, w, &xlo, &xhi);
                float *row = col + (k * 9 + dy * 3 + dx) * hw;
                for (size_t py = 0; py < h; py++) {
                    float *dst = row + py * w;
                    if (py < ylo || py >= yhi || xlo >= xhi) {
                        memset(dst, 0, w * sizeof *dst);
                        continue;
                    }
                    const float *src = plane + (py + dy - 1) * w;
                    for (size_t px = 0; px < xlo; px++)
                        dst[px] = 0.0f;
                    memcpy(dst + xlo, src + xlo + dx - 1, (xhi - xlo) * sizeof *dst);
                    for (size_t px = xhi; px < w; px++)
                        dst[px] = 0.0f;
                }
            }
        }
    }
}

void score__unet_col2im_acc(size_t c, size_t h, size_t w, const float *col, float *gx)
{
    size_t hw = h * w;
    for (size_t k = 0; k < c; k++) {
        float *plane = gx + k * hw;
        for (size_t dy = 0; dy < 3; dy++) {
            size_t ylo, yhi;
            tap_range(dy, h, &ylo, &yhi);
            for (size_t dx = 0; dx < 3; dx++) {
                size_t xlo, xhi;
                tap_range(dx, w, &xlo, &xhi);
                const float *row = col + (k * 9 + dy * 3 + dx) * hw;
                for (size_t py = ylo; py < yhi; py++) {
                    const float *src = row + py * w;
                    float *dst = plane + (py + dy - 1) * w + dx - 1;
                    for (size_t px = xlo; px < xhi; px++)
                        dst[px] += src[px];
                }
            }
        }
    }
}

/* ---- Bias helpers ------------------------------------------------------------------------ */

/* y[k, :] += b[k] for co planes of hw values. */
static void add_plane_bias(size_t co, size_t hw, const float *b, float *y)
{
    for (size_t k = 0; k < co; k++) {
        float bk = b[k];
        float *p = y + k * hw;
        for (size_t j = 0; j < hw; j++)
            p[j] += bk;
    }
}

/* dsum[k] += sum of plane k of gy (in double, pixel order). */
static void plane_sums(size_t co, size_t hw, const float *gy, double *dsum)
{
    for (size_t k = 0; k < co; k++) {
        const float *p = gy + k * hw;
        double s = 0.0;
        for (size_t j = 0; j < hw; j++)
            s += p[j];
        dsum[k] += s;
    }
}

/* ---- Convolutions ------------------------------------------------------------------------ */

void score__unet_conv3_forward(size_t n, size_t ci, size_t co, size_t h, size_t w,
                               const float *wt, const float *b, const float *x, float *y,
                               int acc, float *col)
{
    size_t hw = h * w, kk = ci * 9;
    for (size_t i = 0; i < n; i++) {
        float *yi = y + i * co * hw;
        score__unet_im2col(ci, h, w, x + i * ci * hw, col);
        score__sgemm(0, 0, co, hw, kk, 1.0f, wt, kk, col, hw, acc ? 1.0f : 0.0f, yi, hw);
        if (b != NULL)
            add_plane_bias(co, hw, b, yi);
    }
}

void score__unet_conv3_backward(size_t n, size_t ci, size_t co, size_t h, size_t w,
                                const float *wt, const float *x, const float *gy, float *gw,
                                float *gb, float *gx, float *col, double *dsum)
{
    size_t hw = h * w, kk = ci * 9;
    if (gb != NULL)
        for (size_t k = 0; k < co; k++)
            dsum[k] = 0.0;
    for (size_t i = 0; i < n; i++) {
        const float *gyi = gy + i * co * hw;
        score__unet_im2col(ci, h, w, x + i * ci * hw, col);
        score__sgemm(0, 1, co, kk, hw, 1.0f, gyi, hw, col, hw, 1.0f, gw, kk);
        if (gb != NULL)
            plane_sums(co, hw, gyi, dsum);
        if (gx != NULL) {
            score__sgemm(1, 0, kk, hw, co, 1.0f, wt, kk, gyi, hw, 0.0f, col, hw);
            score__unet_col2im_acc(ci, h, w, col, gx + i * ci * hw);
        }
    }
    if (gb != NULL)
        for (size_t k = 0; k < co; k++)
            gb[k] += (float)dsum[k];
}

void score__unet_conv1_forward(size_t n, size_t ci, size_t co, size_t hw, const float *wt,
                               const float *b, const float *x, float *y, int acc)
{
    for (size_t i = 0; i < n; i++) {
        float *yi = y + i * co * hw;
        score__sgemm(0, 0, co, hw, ci, 1.0f, wt, ci, x + i * ci * hw, hw, acc ? 1.0f : 0.0f,
                     yi, hw);
        if (b != NULL)
            add_plane_bias(co, hw, b, yi);
    }
}

void score__unet_conv1_backward(size_t n, size_t ci, size_t co, size_t hw, const float *wt,
                                const float *x, const float *gy, float *gw, float *gb,
                                float *gx, double *dsum)
{
    if (gb != NULL)
        for (size_t k = 0; k < co; k++)
            dsum[k] = 0.0;
    for (size_t i = 0; i < n; i++) {
        const float *gyi = gy + i * co * hw;
        score__sgemm(0, 1, co, ci, hw, 1.0f, gyi, hw, x + i * ci * hw, hw, 1.0f, gw, ci);
        if (gb != NULL)
            plane_sums(co, hw, gyi, dsum);
        if (gx != NULL)
            score__sgemm(1, 0, ci, hw, co, 1.0f, wt, ci, gyi, hw, 1.0f, gx + i * ci * hw, hw);
    }
    if (gb != NULL)
        for (size_t k = 0; k < co; k++)
            gb[k] += (float)dsum[k];
}

/* Row by row (one matrix-vector product of a fixed shape each): a BLAS rounds a row of a GEMM
 * according to where it falls in the product's row blocking, and a row's result must not
 * depend on the other rows of its call. */
void score__unet_dense_forward(size_t n, size_t in, size_t out, const float *wt, const float *b,
                               const float *x, float *y, int acc)
{
    for (size_t r = 0; r < n; r++) {
        score__sgemv(0, out, in, 1.0f, wt, in, x + r * in, acc ? 1.0f : 0.0f, y + r * out);
        if (b != NULL)
            score__saxpy(out, 1.0f, b, y + r * out);
    }
}

void score__unet_dense_backward(size_t n, size_t in, size_t out, const float *wt,
                                const float *x, const float *gy, float *gw, float *gb,
                                float *gx)
{
    score__sgemm(1, 0, out, in, n, 1.0f, gy, out, x, in, 1.0f, gw, in);
    if (gb != NULL)
        score__col_sum_acc(n, out, gy, gb);
    if (gx != NULL)
        score__sgemm(0, 0, n, in, out, 1.0f, gy, out, wt, in, 1.0f, gx, in);
}

/* ---- GroupNorm --------------------------------------------------------------------------- */

void score__unet_gn_forward(size_t n, size_t c, size_t hw, size_t g, const float *gamma,
                            const float *beta, const float *x, float *y, double *stats)
{
    size_t cg = c / g, m = cg * hw;
    for (size_t i = 0; i < n; i++) {
        for (size_t q = 0; q < g; q++) {
            size_t base = i * c * hw + q * m;
            const float *xs = x + base;
            double s = 0.0;
            for (size_t j = 0; j < m; j++)
                s += xs[j];
            double mean = s / (double)m, v = 0.0;
            for (size_t j = 0; j < m; j++) {
                double d = xs[j] - mean;
                v += d * d;
            }
            double rstd = 1.0 / sqrt(v / (double)m + SCORE__UNET_GN_EPS);
            stats[2 * (i * g + q)] = mean;
            stats[2 * (i * g + q) + 1] = rstd;
            for (size_t kc = 0; kc < cg; kc++) {
                size_t k = q * cg + kc;
                const float *xp = xs + kc * hw;
                float *yp = y + base + kc * hw;
                for (size_t j = 0; j < hw; j++)
                    yp[j] = (float)((xp[j] - mean) * rstd) * gamma[k] + beta[k];
            }
        }
    }
}

void score__unet_gn_backward(size_t n, size_t c, size_t hw, size_t g, const float *gamma,
                             const float *x, const double *stats, const float *gy,
                             float *ggamma, float *gbeta, float *gx)
{
    size_t cg = c / g, m = cg * hw;
    for (size_t i = 0; i < n; i++) {
        for (size_t q = 0; q < g; q++) {
            size_t base = i * c * hw + q * m;
            double mean = stats[2 * (i * g + q)], rstd = stats[2 * (i * g + q) + 1];
            double s1 = 0.0, s2 = 0.0; /* sums of gxhat and gxhat * xhat over the group */
            for (size_t kc = 0; kc < cg; kc++) {
                size_t k = q * cg + kc;
                const float *xp = x + base + kc * hw, *gp = gy + base + kc * hw;
                double sg = 0.0, sgx = 0.0;
                for (size_t j = 0; j < hw; j++) {
                    double xh = (xp[j] - mean) * rstd;
                    sg += gp[j];
                    sgx += gp[j] * xh;
                }
                ggamma[k] += (float)sgx;
                gbeta[k] += (float)sg;
                s1 += sg * gamma[k];
                s2 += sgx * gamma[k];
            }
            if (gx == NULL)
                continue;
            double a1 = s1 / (double)m, a2 = s2 / (double)m;
            for (size_t kc = 0; kc < cg; kc++) {
                size_t k = q * cg + kc;
                const float *xp = x + base + kc * hw, *gp = gy + base + kc * hw;
                float *dp = gx + base + kc * hw;
                for (size_t j = 0; j < hw; j++) {
                    double xh = (xp[j] - mean) * rstd;
                    dp[j] += (float)(rstd * ((double)gp[j] * gamma[k] - a1 - xh * a2));
                }
            }
        }
    }
}

/* ---- SiLU -------------------------------------------------------------------------------- */

void score__unet_silu_forward(size_t len, const float *x, float *y)
{
    for (size_t j = 0; j < len; j++) {
        float v = x[j];
        y[j] = v / (1.0f + expf(-v));
    }
}

void score__unet_silu_backward(size_t len, const float *x, const float *gy, float *gx)
{
    for (size_t j = 0; j < len; j++) {
        float v = x[j];
        float s = 1.0f / (1.0f + expf(-v));
        gx[j] += gy[j] * (s * (1.0f + v * (1.0f - s)));
    }
}

/* ---- Resampling -------------------------------------------------------------------------- */

void score__unet_down_forward(size_t nc, size_t h, size_t w, const float *x, float *y)
{
    size_t h2 = h / 2, w2 = w / 2;
    for (size_t p = 0; p < nc; p++) {
        const float *xp = x + p * h * w;
        float *yp = y + p * h2 * w2;
        for (size_t py = 0; py < h2; py++) {
            const float *r0 = xp + 2 * py * w, *r1 = r0 + w;
            for (size_t px = 0; px < w2; px++)
                yp[py * w2 + px] =
                    0.25f * ((r0[2 * px] + r0[2 * px + 1]) + (r1[2 * px] + r1[2 * px + 1]));
        }
    }
}

void score__unet_down_backward(size_t nc, size_t h, size_t w, const float *gy, float *gx)
{
    size_t h2 = h / 2, w2 = w / 2;
    for (size_t p = 0; p < nc; p++) {
        const float *gp = gy + p * h2 * w2;
        float *xp = gx + p * h * w;
        for (size_t py = 0; py < h2; py++) {
            float *r0 = xp + 2 * py * w, *r1 = r0 + w;
            for (size_t px = 0; px < w2; px++) {
                float v = 0.25f * gp[py * w2 + px];
                r0[2 * px] += v;
                r0[2 * px + 1] += v;
                r1[2 * px] += v;
                r1[2 * px + 1] += v;
            }
        }
    }
}

void score__unet_up_forward(size_t nc, size_t h, size_t w, const float *x, float *y)
{
    size_t w2 = 2 * w;
    for (size_t p = 0; p < nc; p++) {
        const float *xp = x + p * h * w;
        float *yp = y + p * 4 * h * w;
        for (size_t py = 0; py < 2 * h; py++) {
            const float *src = xp + (py / 2) * w;
            float *dst = yp + py * w2;
            for (size_t px = 0; px < w2; px++)
                dst[px] = src[px / 2];
        }
    }
}

void score__unet_up_backward(size_t nc, size_t h, size_t w, const float *gy, float *gx)
{
    size_t w2 = 2 * w;
    for (size_t p = 0; p < nc; p++) {
        const float *gp = gy + p * 4 * h * w;
        float *xp = gx + p * h * w;
        for (size_t py = 0; py < h; py++) {
            const float *r0 = gp + 2 * py * w2, *r1 = r0 + w2;
            for (size_t px = 0; px < w; px++)
                xp[py * w + px] += (r0[2 * px] + r0[2 * px + 1]) + (r1[2 * px] + r1[2 * px + 1]);
        }
    }
}

/* ---- Concatenation ----------------------------------------------------------------------- */

void score__unet_concat_forward(size_t n, size_t ca, size_t cb, size_t hw, const float *a,
                                const float *b, float *out)
{
    for (size_t i = 0; i < n; i++) {
        float *o = out + i * (ca + cb) * hw;
        memcpy(o, a + i * ca * hw, ca * hw * sizeof *o);
        memcpy(o + ca * hw, b + i * cb * hw, cb * hw * sizeof *o);
    }
}

void score__unet_concat_backward(size_t n, size_t ca, size_t cb, size_t hw, const float *gout,
                                 float *ga, float *gb)
{
    for (size_t i = 0; i < n; i++) {
        const float *g = gout + i * (ca + cb) * hw;
        if (ga != NULL)
            score__saxpy(ca * hw, 1.0f, g, ga + i * ca * hw);
        if (gb != NULL)
            score__saxpy(cb * hw, 1.0f, g + ca * hw, gb + i * cb * hw);
    }
}
