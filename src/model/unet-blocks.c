/* The composite layers of the U-Net (see unet-priv.h): the residual block with its embedding
 * projection and single-head self-attention, forward and backward from the layers of
 * unet-layers.c. */
#include <math.h>
#include <string.h>

#include "kernel/kernel-priv.h"
#include "unet-priv.h"

/* 1 / sqrt(2): the skip rescaling of DDPM++ residual and attention blocks. */
#define INV_SQRT2 0.70710678118654752440f

static size_t max2(size_t a, size_t b)
{
    return a > b ? a : b;
}

static void scale_to(size_t len, float a, const float *x, float *y)
{
    for (size_t j = 0; j < len; j++)
        y[j] = a * x[j];
}

/* g = x / sqrt(2) and, when gx is not NULL, gx += g (acc = 1) or gx = g (acc = 0), in one
 * pass (the bits of scale_to then score__saxpy with alpha = 1): the skip connection's share of
 * a block's backward. */
SCORE__VEC_CLONES
static void rescale_skip(size_t len, const float *restrict x, float *restrict g,
                         float *restrict gx, int acc)
{
    if (gx == NULL) {
        for (size_t j = 0; j < len; j++)
            g[j] = INV_SQRT2 * x[j];
        return;
    }
    if (!acc) {
        for (size_t j = 0; j < len; j++) {
            float v = INV_SQRT2 * x[j];
            g[j] = v;
            gx[j] = v;
        }
        return;
    }
    for (size_t j = 0; j < len; j++) {
        float v = INV_SQRT2 * x[j];
        g[j] = v;
        gx[j] += v;
    }
}

/* y = (y + x) / sqrt(2) elementwise: the identity skip and the rescaling in one pass (the bits
 * of y += 1 * x, then y *= 1 / sqrt(2)). */
SCORE__VEC_CLONES
static void add_rescale(size_t len, const float *restrict x, float *restrict y)
{
    for (size_t j = 0; j < len; j++)
        y[j] = (y[j] + x[j]) * INV_SQRT2;
}

/* ---- Residual block ---------------------------------------------------------------------- */

size_t score__unet_res_layout(score__unet_res *r, size_t ci, size_t co, size_t h, size_t w,
                              size_t ne, size_t g1, size_t g2, size_t off)
{
    size_t o = off;
    r->ci = ci;
    r->co = co;
    r->h = h;
    r->w = w;
    r->ne = ne;
    r->g1 = g1;
    r->g2 = g2;
    r->gn1_g = o;
    o += ci;
    r->gn1_b = o;
    o += ci;
    r->c1_w = o;
    o += co * ci * 9;
    r->c1_b = o;
    o += co;
    r->d_w = o;
    o += co * ne;
    r->d_b = o;
    o += ne > 0 ? co : 0;
    r->gn2_g = o;
    o += co;
    r->gn2_b = o;
    o += co;
    r->c2_w = o;
    o += co * co * 9;
    r->c2_b = o;
    o += co;
    r->sk_w = o;
    o += ci != co ? co * ci : 0;
    r->sk_b = o;
    o += ci != co ? co : 0;
    r->n_params = o - off;
    return o;
}

/* Cache: d1, s1 [n, ci, hw]; h1, d2, s2 [n, co, hw]; t [n, co] (d1, d2: silu' at the GroupNorm
 * outputs a1, a2; s1, s2: silu(a1), silu(a2)). */
size_t score__unet_res_cache_floats(const score__unet_res *r, size_t n)
{
    size_t hw = r->h * r->w;
    return n * (2 * r->ci * hw + 3 * r->co * hw + r->co);
}

/* Scratch: two gradient buffers of n * max(ci, co) * hw and the projection's gradient. */
size_t score__unet_res_scratch_floats(const score__unet_res *r, size_t n)
{
    return 2 * n * max2(r->ci, r->co) * r->h * r->w + n * r->co;
}

size_t score__unet_res_col_floats(const score__unet_res *r)
{
    size_t hw = r->h * r->w;
    size_t c = max2(score__unet_conv3_scratch_floats(r->ci, r->co, hw),
                    score__unet_conv3_scratch_floats(r->co, r->co, hw));
    return max2(c, score__unet_conv1_scratch_floats(r->ci, r->co, hw));
}

/* Doubles: GN_1 and GN_2 statistics, then bias sums. */
size_t score__unet_res_dbl(const score__unet_res *r, size_t n)
{
    return 2 * n * (r->g1 + r->g2) + max2(r->ci, r->co);
}

/* Floats of the pack of ci -> co channels on the block's planes: the forward's (igrad = 0) or
 * the input gradient's (1). */
static size_t conv_packed(const score__unet_res *r, size_t ci, size_t co, int igrad)
{
    return igrad ? score__unet_conv3_igrad_packed_floats(ci, co, r->h, r->w)
                 : score__unet_conv3_packed_floats(ci, co, r->h, r->w);
}

size_t score__unet_res_packed_floats(const score__unet_res *r, int igrad)
{
    return conv_packed(r, r->ci, r->co, igrad) + conv_packed(r, r->co, r->co, igrad);
}

void score__unet_res_pack(const score__unet_res *r, const float *theta, float *pk, int igrad)
{
    float *pk2 = pk + conv_packed(r, r->ci, r->co, igrad);
    if (igrad) {
        score__unet_conv3_igrad_pack(r->ci, r->co, r->h, r->w, theta + r->c1_w, pk);
        score__unet_conv3_igrad_pack(r->co, r->co, r->h, r->w, theta + r->c2_w, pk2);
    } else {
        score__unet_conv3_pack(r->ci, r->co, r->h, r->w, theta + r->c1_w, pk);
        score__unet_conv3_pack(r->co, r->co, r->h, r->w, theta + r->c2_w, pk2);
    }
}

/* score__unet_res_forward; keep = 0: silu' (d1, d2) not computed (score__unet_res_infer); pk as
 * score__unet_res_infer's. */
static void res_forward(const score__unet_res *r, size_t n, const float *theta, const float *x,
                        const float *e, float *y, float *cache, double *dbl, float *col,
                        int keep, const float *pk)
{
    const float *pk1 = pk, *pk2 = NULL;
    if (pk != NULL)
        pk2 = pk + conv_packed(r, r->ci, r->co, 0);
    size_t ci = r->ci, co = r->co, hw = r->h * r->w;
    float *d1 = cache, *s1 = d1 + n * ci * hw, *h1 = s1 + n * ci * hw, *d2 = h1 + n * co * hw;
    float *s2 = d2 + n * co * hw, *t = s2 + n * co * hw;
    double *st1 = dbl, *st2 = dbl + 2 * n * r->g1;

    /* s1 = silu(a1) and d1 = silu'(a1) (keep only), a1 = GN_1(x), in one pass */
    score__unet_gn_silu_forward(n, ci, hw, r->g1, theta + r->gn1_g, theta + r->gn1_b, x, s1,
                                keep ? d1 : NULL, st1);
    score__unet_conv3_forward_packed(n, ci, co, r->h, r->w, theta + r->c1_w, pk1,
                                     theta + r->c1_b, s1, h1, 0, col);
    if (r->ne > 0) {
        score__unet_dense_forward(n, r->ne, co, theta + r->d_w, theta + r->d_b, e, t, 0);
        for (size_t i = 0; i < n; i++)
            for (size_t k = 0; k < co; k++) {
                float tk = t[i * co + k];
                float *p = h1 + (i * co + k) * hw;
                for (size_t j = 0; j < hw; j++)
                    p[j] += tk;
            }
    }
    score__unet_gn_silu_forward(n, co, hw, r->g2, theta + r->gn2_g, theta + r->gn2_b, h1, s2,
                                keep ? d2 : NULL, st2);
    score__unet_conv3_forward_packed(n, co, co, r->h, r->w, theta + r->c2_w, pk2,
                                     theta + r->c2_b, s2, y, 0, col);
    if (ci == co) {
        add_rescale(n * co * hw, x, y);
    } else {
        score__unet_conv1_forward(n, ci, co, hw, theta + r->sk_w, theta + r->sk_b, x, y, 1);
        scale_to(n * co * hw, INV_SQRT2, y, y);
    }
}

void score__unet_res_forward(const score__unet_res *r, size_t n, const float *theta,
                             const float *x, const float *e, float *y, float *cache,
                             double *dbl, float *col)
{
    res_forward(r, n, theta, x, e, y, cache, dbl, col, 1, NULL);
}

void score__unet_res_forward_packed(const score__unet_res *r, size_t n, const float *theta,
                                    const float *x, const float *e, float *y, float *cache,
                                    double *dbl, float *col, const float *pk)
{
    res_forward(r, n, theta, x, e, y, cache, dbl, col, 1, pk);
}

void score__unet_res_infer(const score__unet_res *r, size_t n, const float *theta,
                           const float *x, const float *e, float *y, float *cache, double *dbl,
                           float *col, const float *pk)
{
    res_forward(r, n, theta, x, e, y, cache, dbl, col, 0, pk);
}

void score__unet_res_backward(const score__unet_res *r, size_t n, const float *theta,
                              const float *x, const float *e, const float *cache, double *dbl,
                              const float *gy, float *grad, float *gx, float *ge,
                              float *scratch, float *col)
{
    score__unet_res_backward_to(r, n, theta, x, e, cache, dbl, gy, grad, gx, ge, scratch, col,
                                1, 1, NULL);
}

void score__unet_res_backward_to(const score__unet_res *r, size_t n, const float *theta,
                                 const float *x, const float *e, const float *cache,
                                 double *dbl, const float *gy, float *grad, float *gx,
                                 float *ge, float *scratch, float *col, int acc, int acc_e,
                                 const float *pki)
{
    const float *pk1 = pki, *pk2 = NULL;
    if (pki != NULL)
        pk2 = pki + conv_packed(r, r->ci, r->co, 1);
    size_t ci = r->ci, co = r->co, hw = r->h * r->w;
    const float *d1 = cache, *s1 = d1 + n * ci * hw, *h1 = s1 + n * ci * hw;
    const float *d2 = h1 + n * co * hw, *s2 = d2 + n * co * hw;
    const double *st1 = dbl, *st2 = dbl + 2 * n * r->g1;
    double *dsum = dbl + 2 * n * (r->g1 + r->g2);
    float *A = scratch, *B = A + n * max2(ci, co) * hw, *gt = B + n * max2(ci, co) * hw;

    /* A = dL/d(skip(x) + h2) */
    if (ci == co) {
        rescale_skip(n * co * hw, gy, A, gx, acc);
    } else {
        scale_to(n * co * hw, INV_SQRT2, gy, A);
        score__unet_conv1_backward_to(n, ci, co, hw, theta + r->sk_w, x, A, grad + r->sk_w,
                                      grad + r->sk_b, gx, col, dsum, acc);
    }
    /* B = dL/ds2 (written) */
    score__unet_conv3_backward_packed(n, co, co, r->h, r->w, theta + r->c2_w, pk2, s2, A,
                                      grad + r->c2_w, grad + r->c2_b, B, col, dsum, 0);
    /* A = dL/dh1 (written), through dL/da2 = B * d2 computed on the fly */
    score__unet_gn_silu_backward(n, co, hw, r->g2, theta + r->gn2_g, h1, st2, B, d2,
                                 grad + r->gn2_g, grad + r->gn2_b, A, 0);
    if (r->ne > 0) {
        for (size_t i = 0; i < n; i++)
            for (size_t k = 0; k < co; k++) {
                const float *p = A + (i * co + k) * hw;
                double s = 0.0;
                for (size_t j = 0; j < hw; j++)
                    s += p[j];
                gt[i * co + k] = (float)s;
            }
        score__unet_dense_backward_to(n, r->ne, co, theta + r->d_w, e, gt, grad + r->d_w,
                                      grad + r->d_b, ge, acc_e);
    }
    /* B = dL/ds1 (written) */
    score__unet_conv3_backward_packed(n, ci, co, r->h, r->w, theta + r->c1_w, pk1, s1, A,
                                      grad + r->c1_w, grad + r->c1_b, B, col, dsum, 0);
    /* gx += dL/dx, through dL/da1 = B * d1 */
    score__unet_gn_silu_backward(n, ci, hw, r->g1, theta + r->gn1_g, x, st1, B, d1,
                                 grad + r->gn1_g, grad + r->gn1_b, gx, 1);
}

/* ---- Self-attention ---------------------------------------------------------------------- */

size_t score__unet_attn_layout(score__unet_attn *a, size_t c, size_t hw, size_t g, size_t off)
{
    size_t o = off;
    a->c = c;
    a->hw = hw;
    a->g = g;
    a->gn_g = o;
    o += c;
    a->gn_b = o;
    o += c;
    a->q_w = o;
    o += c * c;
    a->q_b = o;
    o += c;
    a->k_w = o;
    o += c * c;
    a->k_b = o;
    o += c;
    a->v_w = o;
    o += c * c;
    a->v_b = o;
    o += c;
    a->o_w = o;
    o += c * c;
    a->o_b = o;
    o += c;
    a->n_params = o - off;
    return o;
}

/* Cache: a, q, k, v, o [n, c, hw]; W [n, hw, hw]. */
size_t score__unet_attn_cache_floats(const score__unet_attn *a, size_t n)
{
    return n * (5 * a->c * a->hw + a->hw * a->hw);
}

/* Scratch: g, go, gq, gk, gv, ga [n, c, hw]; gW [hw, hw]. */
size_t score__unet_attn_scratch_floats(const score__unet_attn *a, size_t n)
{
    return 6 * n * a->c * a->hw + a->hw * a->hw;
}

size_t score__unet_attn_dbl(const score__unet_attn *a, size_t n)
{
    return 2 * n * a->g + a->c;
}

size_t score__unet_attn_col_floats(const score__unet_attn *a)
{
    return score__unet_conv1_scratch_floats(a->c, a->c, a->hw);
}

/* Row-wise softmax of a p x p matrix in place (max subtracted, sum in double). */
static void softmax_rows(size_t p, float *S)
{
    for (size_t i = 0; i < p; i++) {
        float *row = S + i * p;
        float mx = row[0];
        for (size_t j = 1; j < p; j++)
            mx = row[j] > mx ? row[j] : mx;
        double s = 0.0;
        for (size_t j = 0; j < p; j++) {
            row[j] = expf(row[j] - mx);
            s += row[j];
        }
        float inv = (float)(1.0 / s);
        for (size_t j = 0; j < p; j++)
            row[j] *= inv;
    }
}

void score__unet_attn_forward(const score__unet_attn *a, size_t n, const float *theta,
                              const float *x, float *y, float *cache, double *dbl)
{
    size_t c = a->c, p = a->hw, cp = c * p;
    float *an = cache, *q = an + n * cp, *k = q + n * cp, *v = k + n * cp, *o = v + n * cp;
    float *W = o + n * cp;
    float scale = (float)(1.0 / sqrt((double)c));

    score__unet_gn_forward(n, c, p, a->g, theta + a->gn_g, theta + a->gn_b, x, an, dbl);
    score__unet_conv1_forward(n, c, c, p, theta + a->q_w, theta + a->q_b, an, q, 0);
    score__unet_conv1_forward(n, c, c, p, theta + a->k_w, theta + a->k_b, an, k, 0);
    score__unet_conv1_forward(n, c, c, p, theta + a->v_w, theta + a->v_b, an, v, 0);
    for (size_t i = 0; i < n; i++) {
        float *Wi = W + i * p * p;
        /* S[i, j] = q_i . k_j / sqrt(c): q^T k of the c x p matrices */
        score__sgemm(1, 0, p, p, c, scale, q + i * cp, p, k + i * cp, p, 0.0f, Wi, p);
        softmax_rows(p, Wi);
        /* o[:, i] = sum_j W[i, j] v[:, j]: o = v W^T */
        score__sgemm(0, 1, c, p, p, 1.0f, v + i * cp, p, Wi, p, 0.0f, o + i * cp, p);
    }
    score__unet_conv1_forward(n, c, c, p, theta + a->o_w, theta + a->o_b, o, y, 0);
    add_rescale(n * cp, x, y);
}

void score__unet_attn_backward(const score__unet_attn *a, size_t n, const float *theta,
                               const float *x, const float *cache, double *dbl,
                               const float *gy, float *grad, float *gx, float *scratch,
                               float *col)
{
    score__unet_attn_backward_to(a, n, theta, x, cache, dbl, gy, grad, gx, scratch, col, 1);
}

void score__unet_attn_backward_to(const score__unet_attn *a, size_t n, const float *theta,
                                  const float *x, const float *cache, double *dbl,
                                  const float *gy, float *grad, float *gx, float *scratch,
                                  float *col, int acc)
{
    size_t c = a->c, p = a->hw, cp = c * p;
    const float *an = cache, *q = an + n * cp, *k = q + n * cp, *v = k + n * cp;
    const float *o = v + n * cp, *W = o + n * cp;
    float *g = scratch, *go = g + n * cp, *gq = go + n * cp, *gk = gq + n * cp;
    float *gv = gk + n * cp, *ga = gv + n * cp, *gW = ga + n * cp;
    double *dsum = dbl + 2 * n * a->g;
    float scale = (float)(1.0 / sqrt((double)c));

    rescale_skip(n * cp, gy, g, gx, acc);
    score__unet_conv1_backward_to(n, c, c, p, theta + a->o_w, o, g, grad + a->o_w, grad + a->o_b,
                                  go, col, dsum, 0); /* go written */
    for (size_t i = 0; i < n; i++) {
        const float *Wi = W + i * p * p, *goi = go + i * cp;
        /* dW[i, j] = go[:, i] . v[:, j]; dv = go W */
        score__sgemm(1, 0, p, p, c, 1.0f, goi, p, v + i * cp, p, 0.0f, gW, p);
        score__sgemm(0, 0, c, p, p, 1.0f, goi, p, Wi, p, 0.0f, gv + i * cp, p);
        /* softmax backward: dS[i, j] = W[i, j] (dW[i, j] - sum_l W[i, l] dW[i, l]) */
        for (size_t r = 0; r < p; r++) {
            const float *wr = Wi + r * p;
            float *gr = gW + r * p;
            double s = 0.0;
            for (size_t j = 0; j < p; j++)
                s += (double)wr[j] * gr[j];
            float sf = (float)s;
            for (size_t j = 0; j < p; j++)
                gr[j] = wr[j] * (gr[j] - sf);
        }
        /* dq = scale k dS^T, dk = scale q dS */
        score__sgemm(0, 1, c, p, p, scale, k + i * cp, p, gW, p, 0.0f, gq + i * cp, p);
        score__sgemm(0, 0, c, p, p, scale, q + i * cp, p, gW, p, 0.0f, gk + i * cp, p);
    }
    score__unet_conv1_backward_to(n, c, c, p, theta + a->q_w, an, gq, grad + a->q_w,
                                  grad + a->q_b, ga, col, dsum, 0); /* ga written, then added */
    score__unet_conv1_backward(n, c, c, p, theta + a->k_w, an, gk, grad + a->k_w, grad + a->k_b,
                               ga, col, dsum);
    score__unet_conv1_backward(n, c, c, p, theta + a->v_w, an, gv, grad + a->v_w, grad + a->v_b,
                               ga, col, dsum);
    score__unet_gn_backward(n, c, p, a->g, theta + a->gn_g, x, dbl, ga, grad + a->gn_g,
                            grad + a->gn_b, gx);
}
