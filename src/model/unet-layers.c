/* Layers of the U-Net (see unet-priv.h for the conventions): convolutions and dense layers as
 * GEMMs through the kernel layer, GroupNorm, SiLU, resampling and concatenation.
 *
 * A 3x3 convolution is a GEMM over an im2col matrix: with col the (ci * 9) x (pixels) matrix
 * of shifted input planes, y = W col + b, where W is the weight [co, ci, 3, 3] read as a
 * co x (ci * 9) row-major matrix. Its backward is two more GEMMs: dW += gy col^T and
 * dcol = W^T gy, then col2im (the adjoint of im2col) adds dcol into dx.
 *
 * An image's forward values must not depend on the other images of its call (see unet.c),
 * and a BLAS rounds a column of a product according to where it falls in the product
 * (measured with OpenBLAS 0.3.21's Haswell kernels: the same image's columns at columns
 * 384 .. 511 of a 512-column product get other bits than at columns 0 .. 63, even with the
 * same shape). So the forwards' products go through the kernel layer's column-invariant GEMM
 * (score__gemm_cols: every output is one fma chain over k in order, whatever its column's
 * position), which lets the 3x3 convolution run over panels of images (the columns of col are
 * the pixels of all images of the panel; at most FWD_PANEL_PIXELS of them) and still give every
 * image the bits it gets alone.
 * The 1x1 convolution multiplies each image's NCHW planes in place (no copies): one call per
 * image, the same bits as a panel would give.
 *
 * Planes of up to SCORE__CONV3_MAX_HW pixels skip im2col in the forward: the kernel layer's
 * direct convolutions (score__conv3_forward) read the shifted input planes in place, with the
 * forward's bits of im2col + score__gemm_cols (planes of fewer than 16 pixels, 2 x 2 and 1 x 1:
 * output channels in the vector lanes and only the taps inside the plane, the same bits for
 * finite weights, see conv3.c). The backward is direct on those planes too:
 *   gx += score__conv3_input_grad (the direct forward of gy with the flipped weight),
 *   gw += score__conv3_wgrad (a sum over the call's images in a fixed order of blocks and
 *         chunks of (image, pixel) pairs, output channels in the vector lanes, conv3-wgrad.c),
 * with no BLAS; its results depend on the block of images of the call only, as below.
 *
 * The whole backward of planes of more than SCORE__CONV3_MAX_HW pixels keeps the panels: the
 * products run over panels of score__unet_panel(hw) images: the columns of gy and col are the
 * pixels of all images of the panel (image j at columns j * hw ..), so that the weight is packed
 * once per panel, not once per image. Images are stored in NCHW order, so the panels are
 * gathered (im2col writes straight into the panel's columns) and input gradients scattered
 * back. Its results are sums over the images of a block anyway, whose composition the model
 * fixes (unet.c), so the thread count does not change them; they keep the BLAS. */
#include <math.h>
#include <string.h>

#include "kernel/kernel-priv.h"
#include "unet-priv.h"

/* Columns of a panel's matrices are a multiple of this (aligned rows). */
#define PANEL_ALIGN 32
/* Pixels of a panel: more images only while their pixels stay below this. */
#define PANEL_PIXELS 512
#define PANEL_MAX 8
/* Pixels of a forward panel: its im2col matrix stays in the second-level cache. */
#define FWD_PANEL_PIXELS 128

size_t score__unet_panel(size_t hw)
{
    size_t p = PANEL_MAX;
    while (p > 1 && p * hw > PANEL_PIXELS)
        p /= 2;
    return p;
}

size_t score__unet_panel_ld(size_t hw)
{
    size_t c = score__unet_panel(hw) * hw;
    return (c + PANEL_ALIGN - 1) / PANEL_ALIGN * PANEL_ALIGN;
}

/* Whether the 3x3 convolutions of planes of hw pixels run the kernel layer's direct forward and
 * input gradient (no im2col): up to SCORE__CONV3_MAX_HW pixels (larger ones would get its
 * portable version only); planes of fewer than 16 pixels run its kernels with output channels in
 * the vector lanes. */
static int conv3_direct(size_t hw)
{
    return hw >= 1 && hw <= SCORE__CONV3_MAX_HW;
}

/* Whether their weight gradient is direct too: on the same planes (output channels in the
 * vector lanes, only the taps inside the plane: the 2 x 2 and 1 x 1 planes as well). */
static int conv3_wgrad_direct(size_t hw)
{
    return conv3_direct(hw);
}

size_t score__unet_conv3_scratch_floats(size_t ci, size_t co, size_t hw)
{
    if (conv3_wgrad_direct(hw))
        return 0;
    return (9 * ci + co) * score__unet_panel_ld(hw); /* forward and backward: col, a panel */
}

size_t score__unet_conv1_scratch_floats(size_t ci, size_t co, size_t hw)
{
    return (2 * ci + co) * score__unet_panel_ld(hw);
}

/* ---- im2col ------------------------------------------------------------------------------ */

/* Valid output positions [lo, hi) for tap d (input position p + d - 1 inside 0 .. len - 1). */
static void tap_range(size_t d, size_t len, size_t *lo, size_t *hi)
{
    *lo = d == 0 ? 1 : 0;
    *hi = d == 2 ? len - 1 : len; /* len = 1: empty for d != 1 */
}

void score__unet_im2col(size_t c, size_t h, size_t w, const float *x, float *col, size_t ld)
{
    size_t hw = h * w;
    for (size_t k = 0; k < c; k++) {
        const float *plane = x + k * hw;
        for (size_t dy = 0; dy < 3; dy++) {
            size_t ylo, yhi;
            tap_range(dy, h, &ylo, &yhi);
            for (size_t dx = 0; dx < 3; dx++) {
                float *row = col + (k * 9 + dy * 3 + dx) * ld;
                if (ylo >= yhi || (w == 1 && dx != 1)) {
                    memset(row, 0, hw * sizeof *row);
                    continue;
                }
                if (ylo > 0)
                    memset(row, 0, w * sizeof *row);
                if (yhi < h)
                    memset(row + (h - 1) * w, 0, w * sizeof *row);
                /* rows ylo .. yhi - 1 read input rows ylo + dy - 1 ..: one shifted copy of
                 * the block, then the column that fell outside zeroed per row */
                const float *src = plane + (ylo + dy - 1) * w + dx - 1;
                float *dst = row + ylo * w;
                size_t len = (yhi - ylo) * w;
                if (dx == 0) {
                    /* dst[0] reads before the block: start one later */
                    memcpy(dst + 1, src + 1, (len - 1) * sizeof *dst);
                    for (size_t py = 0; py < yhi - ylo; py++)
                        dst[py * w] = 0.0f;
                } else if (dx == 2) {
                    memcpy(dst, src, (len - 1) * sizeof *dst);
                    for (size_t py = 0; py < yhi - ylo; py++)
                        dst[py * w + w - 1] = 0.0f;
                } else {
                    memcpy(dst, src, len * sizeof *dst);
                }
            }
        }
    }
}

/* im2col of np consecutive images into a panel (image j at columns j * h * w): the kernel
 * layer's vectorised copy for small planes, else image by image. */
static void lower(size_t np, size_t c, size_t h, size_t w, const float *x, float *col,
                  size_t ld)
{
    if (score__im2col3_vec(np, c, h, w, x, col, ld))
        return;
    for (size_t j = 0; j < np; j++)
        score__unet_im2col(c, h, w, x + j * c * h * w, col + j * h * w, ld);
}

void score__unet_col2im_acc(size_t c, size_t h, size_t w, const float *col, size_t ld,
                            float *gx)
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
                const float *row = col + (k * 9 + dy * 3 + dx) * ld;
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

/* ---- Panels ------------------------------------------------------------------------------ */

/* dst[q] = src[q] for q < hw: the coarse levels' planes (2 x 2, 4 x 4, 8 x 8) as copies of a
 * fixed size, which the compiler writes as a few vector moves (a call of memcpy per plane of
 * 16 to 256 bytes cost more than the copy: several per cent of the U-Net's training step). */
static inline void copy_plane(float *dst, const float *src, size_t hw)
{
    switch (hw) {
    case 4: memcpy(dst, src, 4 * sizeof *dst); break;
    case 16: memcpy(dst, src, 16 * sizeof *dst); break;
    case 64: memcpy(dst, src, 64 * sizeof *dst); break;
    default: memcpy(dst, src, hw * sizeof *dst); break;
    }
}

/* p[k * ld + j * hw + q] = x[(j * c + k) * hw + q] for np images of c planes of hw. */
static void gather(size_t np, size_t c, size_t hw, const float *x, float *p, size_t ld)
{
    for (size_t j = 0; j < np; j++)
        for (size_t k = 0; k < c; k++)
            copy_plane(p + k * ld + j * hw, x + (j * c + k) * hw, hw);
}

/* The inverse of gather, added: y[(j * c + k) * hw + q] += p[k * ld + j * hw + q]. */
SCORE__VEC_CLONES
static void scatter_acc(size_t np, size_t c, size_t hw, const float *p, size_t ld, float *y)
{
    for (size_t j = 0; j < np; j++)
        for (size_t k = 0; k < c; k++) {
            const float *src = p + k * ld + j * hw;
            float *dst = y + (j * c + k) * hw;
            for (size_t q = 0; q < hw; q++)
                dst[q] += src[q];
        }
}

/* The inverse of gather, written: y[(j * c + k) * hw + q] = p[k * ld + j * hw + q]. */
static void scatter(size_t np, size_t c, size_t hw, const float *p, size_t ld, float *y)
{
    for (size_t j = 0; j < np; j++)
        for (size_t k = 0; k < c; k++)
            copy_plane(y + (j * c + k) * hw, p + k * ld + j * hw, hw);
}

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

/* y[(j * co + k) * hw + q] = p[k * ld + j * hw + q] + b[k] (b NULL: + nothing) for np images:
 * a forward panel's output back in NCHW order, with the bias. */
SCORE__VEC_CLONES
static void scatter_bias(size_t np, size_t co, size_t hw, const float *p, size_t ld,
                         const float *b, float *y)
{
    for (size_t j = 0; j < np; j++)
        for (size_t k = 0; k < co; k++) {
            const float *src = p + k * ld + j * hw;
            float *dst = y + (j * co + k) * hw;
            if (b == NULL) {
                copy_plane(dst, src, hw);
                continue;
            }
            float bk = b[k];
            for (size_t q = 0; q < hw; q++)
                dst[q] = src[q] + bk;
        }
}

/* Planes whose sums one call of score__sum_runs / score__gn_plane_sums returns (on the stack). */
#define SUMS_CHUNK 64

/* dsum[k] += sum of plane k of gy (in double, score__sum_runs' order) for co planes of hw. */
static void plane_sums(size_t co, size_t hw, const float *gy, double *dsum)
{
    double s[SUMS_CHUNK];
    for (size_t k0 = 0; k0 < co; k0 += SUMS_CHUNK) {
        size_t nk = co - k0 < SUMS_CHUNK ? co - k0 : SUMS_CHUNK;
        score__sum_runs(nk, hw, gy + k0 * hw, hw, NULL, s);
        for (size_t k = 0; k < nk; k++)
            dsum[k0 + k] += s[k];
    }
}

/* ---- Convolutions ------------------------------------------------------------------------ */

size_t score__unet_conv3_packed_floats(size_t ci, size_t co, size_t h, size_t w)
{
    return conv3_direct(h * w) ? score__conv3_packed_floats(ci, co, h, w) : 0;
}

void score__unet_conv3_pack(size_t ci, size_t co, size_t h, size_t w, const float *wt,
                            float *wp)
{
    if (score__unet_conv3_packed_floats(ci, co, h, w) > 0)
        score__conv3_pack(ci, co, h, w, wt, wp);
}

void score__unet_conv3_forward(size_t n, size_t ci, size_t co, size_t h, size_t w,
                               const float *wt, const float *b, const float *x, float *y,
                               int acc, float *scratch)
{
    score__unet_conv3_forward_packed(n, ci, co, h, w, wt, NULL, b, x, y, acc, scratch);
}

void score__unet_conv3_forward_packed(size_t n, size_t ci, size_t co, size_t h, size_t w,
                                      const float *wt, const float *wp, const float *b,
                                      const float *x, float *y, int acc, float *scratch)
{
    size_t hw = h * w, kk = ci * 9, P = score__unet_panel(hw), ld = score__unet_panel_ld(hw);
    if (conv3_direct(hw)) {
        score__conv3_forward_packed(n, ci, co, h, w, wt, wp, b, x, y, acc);
        return;
    }
    float *col = scratch, *yp = col + kk * ld;
    while (P > 1 && P * hw > FWD_PANEL_PIXELS)
        P /= 2;
    for (size_t i0 = 0; i0 < n; i0 += P) {
        size_t np = n - i0 < P ? n - i0 : P;
        float *yi = y + i0 * co * hw;
        lower(np, ci, h, w, x + i0 * ci * hw, col, ld);
        if (acc)
            gather(np, co, hw, yi, yp, ld);
        score__gemm_cols(co, np * hw, kk, wt, kk, col, ld, yp, ld, acc);
        scatter_bias(np, co, hw, yp, ld, b, yi);
    }
}

size_t score__unet_conv3_igrad_packed_floats(size_t ci, size_t co, size_t h, size_t w)
{
    return conv3_direct(h * w) ? score__conv3_igrad_packed_floats(ci, co, h, w) : 0;
}

void score__unet_conv3_igrad_pack(size_t ci, size_t co, size_t h, size_t w, const float *wt,
                                  float *wp)
{
    if (score__unet_conv3_igrad_packed_floats(ci, co, h, w) > 0)
        score__conv3_igrad_pack(ci, co, h, w, wt, wp);
}

void score__unet_conv3_backward(size_t n, size_t ci, size_t co, size_t h, size_t w,
                                const float *wt, const float *x, const float *gy, float *gw,
                                float *gb, float *gx, float *scratch, double *dsum)
{
    score__unet_conv3_backward_packed(n, ci, co, h, w, wt, NULL, x, gy, gw, gb, gx, scratch,
                                      dsum, 1);
}

void score__unet_conv3_backward_packed(size_t n, size_t ci, size_t co, size_t h, size_t w,
                                       const float *wt, const float *wpi, const float *x,
                                       const float *gy, float *gw, float *gb, float *gx,
                                       float *scratch, double *dsum, int acc)
{
    size_t hw = h * w, kk = ci * 9, P = score__unet_panel(hw), ld = score__unet_panel_ld(hw);
    int direct = conv3_direct(hw), wdirect = conv3_wgrad_direct(hw);
    if (gx != NULL && !acc && !direct) /* col2im adds */
        memset(gx, 0, n * ci * hw * sizeof *gx);
    float *col = scratch, *gp = wdirect ? NULL : col + kk * ld; /* no scratch when direct */
    if (gb != NULL)
        for (size_t k = 0; k < co; k++)
            dsum[k] = 0.0;
    if (wdirect) {
        score__conv3_wgrad(n, ci, co, h, w, gy, x, gw);
        if (gb != NULL)
            for (size_t i = 0; i < n; i++)
                plane_sums(co, hw, gy + i * co * hw, dsum);
    }
    for (size_t i0 = 0; !wdirect && i0 < n; i0 += P) { /* the panels of small or large planes */
        size_t np = n - i0 < P ? n - i0 : P, nc = np * hw;
        const float *gyi = gy + i0 * co * hw;
        lower(np, ci, h, w, x + i0 * ci * hw, col, ld);
        gather(np, co, hw, gyi, gp, ld);
        score__sgemm(0, 1, co, kk, nc, 1.0f, gp, ld, col, ld, 1.0f, gw, kk);
        if (gb != NULL)
            for (size_t j = 0; j < np; j++)
                plane_sums(co, hw, gyi + j * co * hw, dsum);
        if (gx != NULL && !direct) {
            score__sgemm(1, 0, kk, nc, co, 1.0f, wt, kk, gp, ld, 0.0f, col, ld);
            if (!score__col2im3_vec(np, ci, h, w, col, ld, gx + i0 * ci * hw))
                for (size_t j = 0; j < np; j++)
                    score__unet_col2im_acc(ci, h, w, col + j * hw, ld,
                                           gx + (i0 + j) * ci * hw);
        }
    }
    if (gx != NULL && direct)
        score__conv3_input_grad_packed(n, ci, co, h, w, wt, wpi, gy, gx, acc);
    if (gb != NULL)
        for (size_t k = 0; k < co; k++)
            gb[k] += (float)dsum[k];
}

void score__unet_conv1_forward(size_t n, size_t ci, size_t co, size_t hw, const float *wt,
                               const float *b, const float *x, float *y, int acc)
{
    for (size_t i = 0; i < n; i++) {
        float *yi = y + i * co * hw;
        score__gemm_cols(co, hw, ci, wt, ci, x + i * ci * hw, hw, yi, hw, acc);
        if (b != NULL)
            add_plane_bias(co, hw, b, yi);
    }
}

void score__unet_conv1_backward(size_t n, size_t ci, size_t co, size_t hw, const float *wt,
                                const float *x, const float *gy, float *gw, float *gb,
                                float *gx, float *scratch, double *dsum)
{
    score__unet_conv1_backward_to(n, ci, co, hw, wt, x, gy, gw, gb, gx, scratch, dsum, 1);
}

void score__unet_conv1_backward_to(size_t n, size_t ci, size_t co, size_t hw, const float *wt,
                                   const float *x, const float *gy, float *gw, float *gb,
                                   float *gx, float *scratch, double *dsum, int acc)
{
    size_t P = score__unet_panel(hw), ld = score__unet_panel_ld(hw);
    float *xp = scratch, *gp = xp + ci * ld, *gxp = gp + co * ld;
    if (gb != NULL)
        for (size_t k = 0; k < co; k++)
            dsum[k] = 0.0;
    for (size_t i0 = 0; i0 < n; i0 += P) {
        size_t np = n - i0 < P ? n - i0 : P, nc = np * hw;
        const float *gyi = gy + i0 * co * hw;
        gather(np, ci, hw, x + i0 * ci * hw, xp, ld);
        gather(np, co, hw, gyi, gp, ld);
        score__sgemm(0, 1, co, ci, nc, 1.0f, gp, ld, xp, ld, 1.0f, gw, ci);
        if (gb != NULL)
            for (size_t j = 0; j < np; j++)
                plane_sums(co, hw, gyi + j * co * hw, dsum);
        if (gx != NULL) {
            score__sgemm(1, 0, ci, nc, co, 1.0f, wt, ci, gp, ld, 0.0f, gxp, ld);
            if (acc)
                scatter_acc(np, ci, hw, gxp, ld, gx + i0 * ci * hw);
            else
                scatter(np, ci, hw, gxp, ld, gx + i0 * ci * hw);
        }
    }
    if (gb != NULL)
        for (size_t k = 0; k < co; k++)
            gb[k] += (float)dsum[k];
}

/* Row by row (one matrix-vector product of a fixed shape each): a BLAS rounds a row of a GEMM
 * according to where it falls in the product's row blocking, and a row's result must not
 * depend on the other rows of its call. A row equal to the previous one bit for bit (the
 * embedding of every row of a sampler's step) gets a copy of its output: the same bits. */
void score__unet_dense_forward(size_t n, size_t in, size_t out, const float *wt, const float *b,
                               const float *x, float *y, int acc)
{
    for (size_t r = 0; r < n; r++) {
        if (!acc && r > 0 && memcmp(x + r * in, x + (r - 1) * in, in * sizeof *x) == 0) {
            memcpy(y + r * out, y + (r - 1) * out, out * sizeof *y);
            continue;
        }
        score__sgemv(0, out, in, 1.0f, wt, in, x + r * in, acc ? 1.0f : 0.0f, y + r * out);
        if (b != NULL)
            score__saxpy(out, 1.0f, b, y + r * out);
    }
}

void score__unet_dense_backward(size_t n, size_t in, size_t out, const float *wt,
                                const float *x, const float *gy, float *gw, float *gb,
                                float *gx)
{
    score__unet_dense_backward_to(n, in, out, wt, x, gy, gw, gb, gx, 1);
}

void score__unet_dense_backward_to(size_t n, size_t in, size_t out, const float *wt,
                                   const float *x, const float *gy, float *gw, float *gb,
                                   float *gx, int acc)
{
    score__sgemm(1, 0, out, in, n, 1.0f, gy, out, x, in, 1.0f, gw, in);
    if (gb != NULL)
        score__col_sum_acc(n, out, gy, gb);
    if (gx != NULL)
        score__sgemm(0, 0, n, in, out, 1.0f, gy, out, wt, in, acc ? 1.0f : 0.0f, gx, in);
}

/* ---- GroupNorm --------------------------------------------------------------------------- */

/* y[k * hw + j] = (float)((x[k * hw + j] - mean) * rstd) * gamma[k] + beta[k] for the cg planes
 * of hw values of one group: the normalisation (difference and product in double, rounded to
 * float, then a float product and a float sum; ISO C mode contracts nothing into an FMA, so
 * every version gives the same bits). For images of more than GN_EXPAND values (gn_norm_flat
 * otherwise). */
SCORE__VEC_CLONES
static void gn_norm_group(size_t cg, size_t hw, const float *restrict x, double mean,
                          double rstd, const float *gamma, const float *beta, float *restrict y)
{
    for (size_t k = 0; k < cg; k++) {
        const float *xp = x + k * hw;
        float *yp = y + k * hw, gk = gamma[k], bk = beta[k];
        for (size_t j = 0; j < hw; j++)
            yp[j] = (float)(((double)xp[j] - mean) * rstd) * gk + bk;
    }
}

/* gn_norm_group over a group's m values at once, with gamma and beta given per value (ge[j],
 * be[j]: the planes' gamma and beta repeated hw times): the same bits, one loop over whole
 * vectors however small the planes (gn_norm_group's loop over planes of 4 or 16 pixels is
 * mostly remainders and loop overhead). */
SCORE__VEC_CLONES
static void gn_norm_flat(size_t m, const float *restrict x, double mean, double rstd,
                         const float *restrict ge, const float *restrict be,
                         float *restrict y)
{
    for (size_t j = 0; j < m; j++)
        y[j] = (float)(((double)x[j] - mean) * rstd) * ge[j] + be[j];
}

/* Groups whose statistics are computed at once (score__sum_runs interleaves their sums). */
#define GN_BATCH 16
/* Values of an image up to which gamma and beta are expanded per value (gn_norm_flat; two float
 * arrays of this length on the stack). */
#define GN_EXPAND 1024
/* Values of the GroupNorm's output that the SiLU runs over at once at most (whole groups, 8 KiB:
 * still in the first-level cache when the SiLU reads them). */
#define GN_SILU_SPAN 2048

/* score__unet_gn_forward, and with silu = 1 the output replaced by its SiLU (and d, if not NULL,
 * given its derivative) right after it is normalised, while it is in cache. The n * g groups are
 * consecutive runs of m = (c / g) * hw values (group b = i * g + q of image i at b * m); their
 * sums and then their sums of squared deviations from the mean are computed GN_BATCH groups at a
 * time (each group's sums in score__sum_runs' order: the bits do not depend on the batches). The
 * SiLU (elementwise: the same bits whatever the span of a call) runs over spans of consecutive
 * groups of up to GN_SILU_SPAN values (at least one group): one call per group would give the
 * 2 x 2 planes' groups of 32 values two vectors, too few for the kernel's four interleaved
 * vectors. */
static void gn_forward(size_t n, size_t c, size_t hw, size_t g, const float *gamma,
                       const float *beta, const float *x, float *y, float *d, double *stats,
                       int silu)
{
    size_t cg = c / g, m = cg * hw, nb = n * g, b0 = 0; /* b0: the first group not activated */
    float ge[GN_EXPAND], be[GN_EXPAND];
    double sum[GN_BATCH], mean[GN_BATCH], sq[GN_BATCH];
    int flat = c * hw <= GN_EXPAND;
    if (flat)
        for (size_t k = 0; k < c; k++)
            for (size_t j = 0; j < hw; j++) {
                ge[k * hw + j] = gamma[k];
                be[k * hw + j] = beta[k];
            }
    for (size_t b1 = 0, q = 0; b1 < nb; b1 += GN_BATCH) {
        size_t nr = nb - b1 < GN_BATCH ? nb - b1 : GN_BATCH;
        score__sum_runs(nr, m, x + b1 * m, m, NULL, sum);
        for (size_t r = 0; r < nr; r++)
            mean[r] = sum[r] / (double)m;
        score__sum_runs(nr, m, x + b1 * m, m, mean, sq);
        for (size_t r = 0; r < nr; r++, q = q + 1 == g ? 0 : q + 1) { /* q = b % g */
            size_t b = b1 + r;
            const float *xs = x + b * m;
            double rstd = 1.0 / sqrt(sq[r] / (double)m + SCORE__UNET_GN_EPS);
            stats[2 * b] = mean[r];
            stats[2 * b + 1] = rstd;
            if (flat)
                gn_norm_flat(m, xs, mean[r], rstd, ge + q * m, be + q * m, y + b * m);
            else
                gn_norm_group(cg, hw, xs, mean[r], rstd, gamma + q * cg, beta + q * cg,
                              y + b * m);
            if (silu && (b + 1 == nb || (b + 2 - b0) * m > GN_SILU_SPAN)) {
                score__bias_act_inplace(1, (b + 1 - b0) * m, y + b0 * m, NULL, SCORE__ACT_SILU,
                                        NULL, d != NULL ? d + b0 * m : NULL);
                b0 = b + 1;
            }
        }
    }
}

void score__unet_gn_forward(size_t n, size_t c, size_t hw, size_t g, const float *gamma,
                            const float *beta, const float *x, float *y, double *stats)
{
    gn_forward(n, c, hw, g, gamma, beta, x, y, NULL, stats, 0);
}

void score__unet_gn_silu_forward(size_t n, size_t c, size_t hw, size_t g, const float *gamma,
                                 const float *beta, const float *x, float *y, float *d,
                                 double *stats)
{
    gn_forward(n, c, hw, g, gamma, beta, x, y, d, stats, 1);
}

/* The output gradient of a GroupNorm value: gp[j], or with silu = 1 the float product
 * gp[j] * ds[j] (a SiLU's backward folded in: the bits of score__mul's output). */
SCORE__INLINE float gn_grad_at(const float *gp, const float *ds, size_t j, int silu)
{
    return silu ? gp[j] * ds[j] : gp[j];
}

/* v = (float)(rstd * (gv * gk - a1 - (xp - mean) * rstd * a2)) in double over m values
 * (gv = gn_grad_at(gp, ds, j, silu); gk = the plane's gamma, or with ex = 1 (double)ge[j], the
 * gamma of value j); dp += v, or with acc = 0 dp = 0 + v (the bits of adding to a zeroed dp: -0
 * becomes +0). silu, ex, acc: constants after inlining. */
SCORE__INLINE void gn_input_grad_body(size_t m, const float *restrict xp,
                                      const float *restrict gp, const float *restrict ds,
                                      int silu, double mean, double rstd, double gk,
                                      const float *restrict ge, int ex, double a1, double a2,
                                      float *restrict dp, int acc)
{
    for (size_t j = 0; j < m; j++) {
        double xh = ((double)xp[j] - mean) * rstd, gj = ex ? (double)ge[j] : gk;
        float v = (float)(rstd * ((double)gn_grad_at(gp, ds, j, silu) * gj - a1 - xh * a2));
        dp[j] = (acc ? dp[j] : 0.0f) + v;
    }
}

/* gn_input_grad_body for gy (ds NULL: adding to dp) or gy * ds (adding, acc = 1, or writing), with
 * the plane's gamma gk (ge NULL) or a gamma per value ge[j] (a whole group of small planes at
 * once: one loop of whole vectors, not one of remainders per plane). */
SCORE__VEC_CLONES
static void gn_input_grad(size_t m, const float *xp, const float *gp, const float *ds,
                          double mean, double rstd, double gk, const float *ge, double a1,
                          double a2, float *dp, int acc)
{
    if (ds == NULL) {
        if (ge != NULL)
            gn_input_grad_body(m, xp, gp, NULL, 0, mean, rstd, gk, ge, 1, a1, a2, dp, 1);
        else
            gn_input_grad_body(m, xp, gp, NULL, 0, mean, rstd, gk, NULL, 0, a1, a2, dp, 1);
    } else if (acc) {
        if (ge != NULL)
            gn_input_grad_body(m, xp, gp, ds, 1, mean, rstd, gk, ge, 1, a1, a2, dp, 1);
        else
            gn_input_grad_body(m, xp, gp, ds, 1, mean, rstd, gk, NULL, 0, a1, a2, dp, 1);
    } else {
        if (ge != NULL)
            gn_input_grad_body(m, xp, gp, ds, 1, mean, rstd, gk, ge, 1, a1, a2, dp, 0);
        else
            gn_input_grad_body(m, xp, gp, ds, 1, mean, rstd, gk, NULL, 0, a1, a2, dp, 0);
    }
}

/* The backward of score__unet_gn_forward for the output gradient gy (ds NULL) or gy * ds (a
 * float product per value: the SiLU backward that follows the GroupNorm in the forward); gx
 * added to (acc = 1) or written as if zeroed first (acc = 0; ds not NULL). */
static void gn_backward(size_t n, size_t c, size_t hw, size_t g, const float *gamma,
                        const float *x, const double *stats, const float *gy, const float *ds,
                        float *ggamma, float *gbeta, float *gx, int acc)
{
    size_t cg = c / g, m = cg * hw;
    float ge[GN_EXPAND]; /* gamma per value: planes whose input gradient is not whole vectors */
    int ex = gx != NULL && hw % 16 != 0 && c * hw <= GN_EXPAND;
    if (ex)
        for (size_t k = 0; k < c; k++)
            for (size_t j = 0; j < hw; j++)
                ge[k * hw + j] = gamma[k];
    for (size_t i = 0; i < n; i++) {
        for (size_t q = 0; q < g; q++) {
            size_t base = i * c * hw + q * m;
            double mean = stats[2 * (i * g + q)], rstd = stats[2 * (i * g + q) + 1];
            double s1 = 0.0, s2 = 0.0; /* sums of gxhat and gxhat * xhat over the group */
            for (size_t k0 = 0; k0 < cg; k0 += SUMS_CHUNK) {
                size_t nk = cg - k0 < SUMS_CHUNK ? cg - k0 : SUMS_CHUNK, o = base + k0 * hw;
                double sg[SUMS_CHUNK], sgx[SUMS_CHUNK];
                score__gn_plane_sums(nk, hw, x + o, gy + o, ds != NULL ? ds + o : NULL, mean,
                                     rstd, sg, sgx);
                for (size_t kc = 0; kc < nk; kc++) {
                    size_t k = q * cg + k0 + kc;
                    ggamma[k] += (float)sgx[kc];
                    gbeta[k] += (float)sg[kc];
                    s1 += sg[kc] * gamma[k];
                    s2 += sgx[kc] * gamma[k];
                }
            }
            if (gx == NULL)
                continue;
            double a1 = s1 / (double)m, a2 = s2 / (double)m;
            if (ex) {
                gn_input_grad(m, x + base, gy + base, ds != NULL ? ds + base : NULL, mean, rstd,
                              0.0, ge + q * m, a1, a2, gx + base, acc);
                continue;
            }
            for (size_t kc = 0; kc < cg; kc++) {
                size_t k = q * cg + kc, o = base + kc * hw;
                gn_input_grad(hw, x + o, gy + o, ds != NULL ? ds + o : NULL, mean, rstd,
                              (double)gamma[k], NULL, a1, a2, gx + o, acc);
            }
        }
    }
}

void score__unet_gn_backward(size_t n, size_t c, size_t hw, size_t g, const float *gamma,
                             const float *x, const double *stats, const float *gy,
                             float *ggamma, float *gbeta, float *gx)
{
    gn_backward(n, c, hw, g, gamma, x, stats, gy, NULL, ggamma, gbeta, gx, 1);
}

void score__unet_gn_silu_backward(size_t n, size_t c, size_t hw, size_t g, const float *gamma,
                                  const float *x, const double *stats, const float *gs,
                                  const float *ds, float *ggamma, float *gbeta, float *gx,
                                  int acc)
{
    gn_backward(n, c, hw, g, gamma, x, stats, gs, ds, ggamma, gbeta, gx, acc);
}

/* ---- SiLU -------------------------------------------------------------------------------- */

/* Values per chunk of the backward's derivative buffer (on the stack). */
#define SILU_CHUNK 256

void score__unet_silu_forward(size_t len, const float *x, float *y)
{
    /* without a bias the kernel only reads z (x): the cast drops no write */
    score__bias_act_forward(1, len, (float *)x, NULL, SCORE__ACT_SILU, y, NULL, NULL);
}

void score__unet_silu_backward(size_t len, const float *x, const float *gy, float *gx)
{
    score__unet_silu_backward_to(len, x, gy, gx, 1);
}

void score__unet_silu_backward_to(size_t len, const float *x, const float *gy, float *gx,
                                  int acc)
{
    float h[SILU_CHUNK], d[SILU_CHUNK];
    for (size_t j = 0; j < len; j += SILU_CHUNK) {
        size_t k = len - j < SILU_CHUNK ? len - j : SILU_CHUNK;
        score__bias_act_forward(1, k, (float *)(x + j), NULL, SCORE__ACT_SILU, h, d, NULL);
        if (acc)
            score__mul_acc(k, gy + j, d, gx + j);
        else
            score__mul(k, gy + j, d, gx + j);
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
    score__unet_down_backward_to(nc, h, w, gy, gx, 1);
}

void score__unet_down_backward_to(size_t nc, size_t h, size_t w, const float *gy, float *gx,
                                  int acc)
{
    size_t h2 = h / 2, w2 = w / 2;
    for (size_t p = 0; p < nc; p++) {
        const float *gp = gy + p * h2 * w2;
        float *xp = gx + p * h * w;
        for (size_t py = 0; py < h2; py++) {
            float *r0 = xp + 2 * py * w, *r1 = r0 + w;
            for (size_t px = 0; px < w2; px++) {
                float v = 0.25f * gp[py * w2 + px];
                if (acc) {
                    r0[2 * px] += v;
                    r0[2 * px + 1] += v;
                    r1[2 * px] += v;
                    r1[2 * px + 1] += v;
                } else {
                    r0[2 * px] = v;
                    r0[2 * px + 1] = v;
                    r1[2 * px] = v;
                    r1[2 * px + 1] = v;
                }
            }
        }
    }
}

/* Each input row written twice into the first output row, which is then copied (vectorised;
 * the rows are short). */
SCORE__VEC_CLONES
void score__unet_up_forward(size_t nc, size_t h, size_t w, const float *x, float *y)
{
    size_t w2 = 2 * w;
    for (size_t p = 0; p < nc; p++) {
        const float *xp = x + p * h * w;
        float *yp = y + p * 4 * h * w;
        for (size_t py = 0; py < h; py++) {
            const float *restrict src = xp + py * w;
            float *restrict d0 = yp + 2 * py * w2, *restrict d1 = d0 + w2;
            for (size_t px = 0; px < w; px++) {
                d0[2 * px] = src[px];
                d0[2 * px + 1] = src[px];
            }
            for (size_t px = 0; px < w2; px++)
                d1[px] = d0[px];
        }
    }
}

void score__unet_up_backward(size_t nc, size_t h, size_t w, const float *gy, float *gx)
{
    score__unet_up_backward_to(nc, h, w, gy, gx, 1);
}

void score__unet_up_backward_to(size_t nc, size_t h, size_t w, const float *gy, float *gx,
                                int acc)
{
    size_t w2 = 2 * w;
    for (size_t p = 0; p < nc; p++) {
        const float *gp = gy + p * 4 * h * w;
        float *xp = gx + p * h * w;
        for (size_t py = 0; py < h; py++) {
            const float *r0 = gp + 2 * py * w2, *r1 = r0 + w2;
            for (size_t px = 0; px < w; px++) {
                float v = (r0[2 * px] + r0[2 * px + 1]) + (r1[2 * px] + r1[2 * px + 1]);
                xp[py * w + px] = acc ? xp[py * w + px] + v : v;
            }
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
    score__unet_concat_backward_to(n, ca, cb, hw, gout, ga, gb, 1, 1);
}

/* One part of an image's gout into its gradient: added (score__saxpy, alpha 1) or copied. */
static void part_to(size_t len, const float *g, float *out, int acc)
{
    if (acc)
        score__saxpy(len, 1.0f, g, out);
    else
        memcpy(out, g, len * sizeof *out);
}

void score__unet_concat_backward_to(size_t n, size_t ca, size_t cb, size_t hw,
                                    const float *gout, float *ga, float *gb, int acc_a,
                                    int acc_b)
{
    for (size_t i = 0; i < n; i++) {
        const float *g = gout + i * (ca + cb) * hw;
        if (ga != NULL)
            part_to(ca * hw, g, ga + i * ca * hw, acc_a);
        if (gb != NULL)
            part_to(cb * hw, g + ca * hw, gb + i * cb * hw, acc_b);
    }
}
