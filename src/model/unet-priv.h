/* Layers of the image score network (U-Net): convolutions as GEMMs through the kernel layer,
 * GroupNorm, SiLU, 2x2 average pooling, nearest up-sampling, channel concatenation, dense
 * layers, the residual block with its time-embedding projection and single-head
 * self-attention. Shared by the layer files (unet-layers.c, unet-blocks.c) and the tests
 * (through the internal static library). Never installed. doc/unet.md describes the
 * architecture and the sources of each choice.
 *
 * Conventions of every function here:
 * - Images are float32 in NCHW order: n images of c channels of h x w pixels, image i at
 *   x + i * c * h * w, channel k of it at + k * h * w, row-major pixels.
 * - Weights use PyTorch's layouts: a 3x3 convolution's weight is [out, in, 3, 3] (row-major, so
 *   the out x (in * 9) matrix of the GEMM), a 1x1 convolution's [out, in], a dense layer's
 *   [out, in], every bias [out].
 * - Forward functions overwrite their output unless they take `acc` (then acc = 1 adds to it).
 * - Backward functions ADD to every gradient they write (parameter gradients and the input
 *   gradient alike), so gradients of a graph with branches accumulate without copies; the
 *   caller zeroes them first. A NULL input gradient is skipped. Their `_to` versions take
 *   `acc`: acc = 1 adds to the input gradient as well, acc = 0 writes it (the first of its
 *   producers in the backward's order, no zeroing beforehand). A written value is the added
 *   one's except that an exact zero may keep a -0 that adding to +0 turns into +0: an
 *   activation gradient then differs in the sign of some zeros only, which changes no
 *   nonzero result downstream (sums, products, no comparisons), and the gradients that leave
 *   the network are sums into zeroed buffers, which never hold -0.
 * - Scratch arrays are the caller's (sizes given per function): nothing allocates.
 * - Sums that reduce over many values (bias gradients, GroupNorm statistics) are accumulated
 *   in double in a fixed order: results do not depend on anything but the inputs. */
#ifndef LIBSCORE_UNET_PRIV_H
#define LIBSCORE_UNET_PRIV_H

#include <stddef.h>

/* Levels of a U-Net model (score_model_set_unet_widths()). */
#define SCORE__UNET_MAX_LEVELS 6

/* GroupNorm's epsilon (score_sde's DDPM++ / NCSN++ layers use 1e-6). */
#define SCORE__UNET_GN_EPS 1e-6

/* ---- Convolutions ------------------------------------------------------------------------ *
 * An image's forward values must not depend on the other images of its call, and a BLAS
 * rounds a column according to where it falls in a product: the forwards use the kernel
 * layer's column-invariant GEMM (score__gemm_cols), the 3x3 convolution over panels of images
 * (at most score__unet_panel(hw) images and 128 pixels), the 1x1 convolution image by image.
 * Every output value is the fma chain c = (acc ? y : 0), c = fma(W[o, k], col[k, p], c) over
 * k in order, then c + b[o] (a separate float addition), whatever the panel, the call's n or
 * the processor's vector width. Planes of up to SCORE__CONV3_MAX_HW pixels run the kernel
 * layer's direct convolutions (no im2col, the same forward bits; below 16 pixels only the taps
 * inside the plane, the left-out terms being fma(w, +0, c) = c), and their backward adds the
 * input gradient as an fma chain over (output channel, tap) from gx's value
 * (score__conv3_input_grad), and the weight gradient summed over the call's n images in the
 * fixed order of score__conv3_wgrad, without BLAS. Larger planes run im2col + BLAS per panel
 * of images: the panel's pixels are the GEMM's columns (image j of the panel at columns
 * j * hw .. j * hw + hw - 1 of a matrix of score__unet_panel_ld(hw) columns). Either way the
 * backward's
 * results are sums over a block of images whose composition the model fixes (unet.c), not over
 * a thread's share. */

/* Images per panel of the backward's convolutions at hw pixels per image (a power of two, at
 * most 8: 8 for hw <= 64, one image from 512 pixels on) and the row stride of a panel's
 * matrices (panel * hw rounded up to a multiple of 32; the forward's panels are no wider). */
size_t score__unet_panel(size_t hw);
size_t score__unet_panel_ld(size_t hw);

/* im2col of one c x h x w image for a 3x3 convolution with stride 1 and zero padding 1 into
 * the columns of a matrix with ld columns: col[(k * 9 + 3 * dy + dx) * ld + p] =
 * x[k, py + dy - 1, px + dx - 1] (0 outside), p = py * w + px. */
void score__unet_im2col(size_t c, size_t h, size_t w, const float *x, float *col, size_t ld);
/* The adjoint of score__unet_im2col: gx += col2im(col). */
void score__unet_col2im_acc(size_t c, size_t h, size_t w, const float *col, size_t ld,
                            float *gx);

/* Scratch floats of score__unet_conv3_forward / _backward (planes of 16 to SCORE__CONV3_MAX_HW
 * pixels: none; smaller planes: a panel's im2col and output) and of score__unet_conv1_backward (a panel's input, output and input gradient). */
size_t score__unet_conv3_scratch_floats(size_t ci, size_t co, size_t hw);
size_t score__unet_conv1_scratch_floats(size_t ci, size_t co, size_t hw);

/* y = conv3x3(x) + b (acc: y +=) for n images of ci channels into co channels; wt [co, ci, 3,
 * 3], b [co] or NULL; scratch: score__unet_conv3_scratch_floats(ci, co, h * w) floats (unused
 * by the direct path). */
void score__unet_conv3_forward(size_t n, size_t ci, size_t co, size_t h, size_t w,
                               const float *wt, const float *b, const float *x, float *y,
                               int acc, float *scratch);
/* The same forward with the weight packed beforehand (the same bits): wp NULL (packed per call,
 * as score__unet_conv3_forward does) or score__unet_conv3_pack's pack of wt (64-byte aligned,
 * score__unet_conv3_packed_floats() floats; 0 floats: nothing to pack, wp not read). The U-Net's
 * cache-free forward packs each such weight once per network call (unet.c). */
size_t score__unet_conv3_packed_floats(size_t ci, size_t co, size_t h, size_t w);
void score__unet_conv3_pack(size_t ci, size_t co, size_t h, size_t w, const float *wt,
                            float *wp);
void score__unet_conv3_forward_packed(size_t n, size_t ci, size_t co, size_t h, size_t w,
                                      const float *wt, const float *wp, const float *b,
                                      const float *x, float *y, int acc, float *scratch);
/* Backward of score__unet_conv3_forward at input x for the output gradient gy: gw += dL/dw,
 * gb += dL/db (NULL: none), gx += dL/dx (NULL: none). scratch as for the forward; dsum:
 * scratch of co doubles (for the bias gradient). */
void score__unet_conv3_backward(size_t n, size_t ci, size_t co, size_t h, size_t w,
                                const float *wt, const float *x, const float *gy, float *gw,
                                float *gb, float *gx, float *scratch, double *dsum);
/* The same backward with the input gradient's weight packed beforehand (the same bits): wpi
 * NULL (packed per call) or score__unet_conv3_igrad_pack's pack of wt (64-byte aligned,
 * score__unet_conv3_igrad_packed_floats() floats; 0 floats: nothing to pack, wpi not read). The
 * U-Net's training backward packs each such weight once per call, for all its blocks. acc = 0:
 * gx written, the bits of adding to a zeroed gx (not read). */
size_t score__unet_conv3_igrad_packed_floats(size_t ci, size_t co, size_t h, size_t w);
void score__unet_conv3_igrad_pack(size_t ci, size_t co, size_t h, size_t w, const float *wt,
                                  float *wp);
void score__unet_conv3_backward_packed(size_t n, size_t ci, size_t co, size_t h, size_t w,
                                       const float *wt, const float *wpi, const float *x,
                                       const float *gy, float *gw, float *gb, float *gx,
                                       float *scratch, double *dsum, int acc);

/* y = W x + b per pixel (1x1 convolution; acc: y +=); wt [co, ci], b [co] or NULL. No
 * scratch: the products read x's and write y's planes in place, one image per call. */
void score__unet_conv1_forward(size_t n, size_t ci, size_t co, size_t hw, const float *wt,
                               const float *b, const float *x, float *y, int acc);
/* Its backward (gb, gx may be NULL); dsum: co doubles; scratch:
 * score__unet_conv1_scratch_floats(ci, co, hw) floats. */
void score__unet_conv1_backward(size_t n, size_t ci, size_t co, size_t hw, const float *wt,
                                const float *x, const float *gy, float *gw, float *gb,
                                float *gx, float *scratch, double *dsum);
/* acc = 0: gx = (the input gradient of each panel copied back, not added). */
void score__unet_conv1_backward_to(size_t n, size_t ci, size_t co, size_t hw, const float *wt,
                                   const float *x, const float *gy, float *gw, float *gb,
                                   float *gx, float *scratch, double *dsum, int acc);

/* Dense layer on n rows: y[r, :] = W x[r, :] + b (acc: y +=); wt [out, in], b [out] or NULL.
 * Row by row: a row's result does not depend on the other rows (a row equal to the previous
 * one bit for bit copies its output). */
void score__unet_dense_forward(size_t n, size_t in, size_t out, const float *wt, const float *b,
                               const float *x, float *y, int acc);
/* Its backward (gb, gx may be NULL). */
void score__unet_dense_backward(size_t n, size_t in, size_t out, const float *wt,
                                const float *x, const float *gy, float *gw, float *gb,
                                float *gx);
/* acc = 0: gx = (the BLAS's beta 0) instead of gx +=. */
void score__unet_dense_backward_to(size_t n, size_t in, size_t out, const float *wt,
                                   const float *x, const float *gy, float *gw, float *gb,
                                   float *gx, int acc);

/* ---- Normalisation and activation ---------------------------------------------------------- */

/* GroupNorm over n images of c channels of hw pixels in g groups (g divides c): per image and
 * group, mean and variance (biased, over (c / g) * hw values, in double), then
 * y = (x - mean) / sqrt(var + eps) * gamma[k] + beta[k]. stats receives n * g pairs
 * (mean, 1 / sqrt(var + eps)) for the backward. */
void score__unet_gn_forward(size_t n, size_t c, size_t hw, size_t g, const float *gamma,
                            const float *beta, const float *x, float *y, double *stats);
/* Its backward from the forward's x and stats: ggamma += , gbeta += , gx += . */
void score__unet_gn_backward(size_t n, size_t c, size_t hw, size_t g, const float *gamma,
                             const float *x, const double *stats, const float *gy,
                             float *ggamma, float *gbeta, float *gx);
/* GroupNorm followed by SiLU, a few groups at a time (their values are activated while they are
 * in cache): y = silu(GN(x)), d (NULL: not computed) = silu'(GN(x)), stats as above; the bits
 * of score__unet_gn_forward then score__bias_act_inplace(SiLU, d) over the whole output.
 * y must not overlap x or d. */
void score__unet_gn_silu_forward(size_t n, size_t c, size_t hw, size_t g, const float *gamma,
                                 const float *beta, const float *x, float *y, float *d,
                                 double *stats);
/* The backward of that pair from the forward's x, stats and d = silu'(GN(x)) for the gradient
 * gs of its output: the bits of score__unet_gn_backward for gy = gs * d (float products, as
 * score__mul gives them) with ggamma += , gbeta += and gx += (acc = 1) or gx = (acc = 0: the
 * bits of adding to a zeroed gx; gx not NULL then). gx must not overlap x, gs or d. */
void score__unet_gn_silu_backward(size_t n, size_t c, size_t hw, size_t g, const float *gamma,
                                  const float *x, const double *stats, const float *gs,
                                  const float *ds, float *ggamma, float *gbeta, float *gx,
                                  int acc);

/* y = silu(x) = x * sigmoid(x) elementwise (len values; y may alias x), with the kernel
 * layer's vectorised SiLU (score__bias_act_forward). */
void score__unet_silu_forward(size_t len, const float *x, float *y);
/* gx += silu'(x) * gy (gx must not alias x or gy). */
void score__unet_silu_backward(size_t len, const float *x, const float *gy, float *gx);
/* acc = 0: gx = silu'(x) * gy. */
void score__unet_silu_backward_to(size_t len, const float *x, const float *gy, float *gx,
                                  int acc);

/* ---- Resampling and skip connections ----------------------------------------------------- */

/* 2x2 average pooling of nc planes of h x w (h, w even) into (h / 2) x (w / 2). */
void score__unet_down_forward(size_t nc, size_t h, size_t w, const float *x, float *y);
/* gx (nc x h x w) += its adjoint of gy ((h / 2) x (w / 2) planes). */
void score__unet_down_backward(size_t nc, size_t h, size_t w, const float *gy, float *gx);
/* acc = 0: gx = its adjoint of gy. */
void score__unet_down_backward_to(size_t nc, size_t h, size_t w, const float *gy, float *gx,
                                  int acc);
/* Nearest up-sampling of nc planes of h x w into 2h x 2w. */
void score__unet_up_forward(size_t nc, size_t h, size_t w, const float *x, float *y);
/* gx (nc x h x w) += its adjoint of gy (2h x 2w planes). */
void score__unet_up_backward(size_t nc, size_t h, size_t w, const float *gy, float *gx);
/* acc = 0: gx = its adjoint of gy. */
void score__unet_up_backward_to(size_t nc, size_t h, size_t w, const float *gy, float *gx,
                                int acc);

/* Channel concatenation per image: out[i] = [a[i] (ca planes); b[i] (cb planes)]. */
void score__unet_concat_forward(size_t n, size_t ca, size_t cb, size_t hw, const float *a,
                                const float *b, float *out);
/* ga += the first ca planes of each image of gout, gb += the other cb (either may be NULL). */
void score__unet_concat_backward(size_t n, size_t ca, size_t cb, size_t hw, const float *gout,
                                 float *ga, float *gb);
/* acc_a, acc_b: whether ga, gb are added to (1) or written (0). */
void score__unet_concat_backward_to(size_t n, size_t ca, size_t cb, size_t hw,
                                    const float *gout, float *ga, float *gb, int acc_a,
                                    int acc_b);

/* ---- Residual block ---------------------------------------------------------------------- *
 * DDPM++ residual block (score_sde's ResnetBlockBigGANpp without resampling, dropout 0, skip
 * rescaling on):
 *   a1 = GN_1(x); h1 = conv3_1(silu(a1)) + (Dense(e))[:, :, None, None]
 *   a2 = GN_2(h1); h2 = conv3_2(silu(a2))
 *   y  = (skip(x) + h2) / sqrt(2),  skip = identity (ci == co) or a 1x1 convolution
 * with e the activated embedding (silu of the time + class embedding) of ne values per image
 * (ne = 0: no projection). Parameters at offsets in one flat array, in this order (the layout
 * of doc/unet.md): GN_1 gamma, beta [ci]; conv3_1 weight [co, ci, 3, 3], bias [co]; Dense
 * weight [co, ne], bias [co] (ne > 0); GN_2 gamma, beta [co]; conv3_2 weight [co, co, 3, 3],
 * bias [co]; skip weight [co, ci], bias [co] (ci != co). */
typedef struct score__unet_res {
    size_t ci, co, h, w, ne;
    size_t g1, g2; /* groups of GN_1 (divides ci) and GN_2 (divides co) */
    size_t gn1_g, gn1_b, c1_w, c1_b, d_w, d_b, gn2_g, gn2_b, c2_w, c2_b, sk_w, sk_b;
    size_t n_params;
} score__unet_res;

/* Fills the layout of a block whose parameters start at offset `off`; returns the offset after
 * them. */
size_t score__unet_res_layout(score__unet_res *r, size_t ci, size_t co, size_t h, size_t w,
                              size_t ne, size_t g1, size_t g2, size_t off);
/* Floats of the forward cache for n images, of the backward scratch (two planes sets of
 * n * max(ci, co) * h * w floats), of the convolution scratch (the largest scratch of its
 * convolutions) and doubles of the statistics and sums (GroupNorm stats + bias sums). The
 * cache keeps silu' of both GroupNorm outputs (not the outputs themselves): the backward
 * multiplies by it. */
size_t score__unet_res_cache_floats(const score__unet_res *r, size_t n);
size_t score__unet_res_scratch_floats(const score__unet_res *r, size_t n);
size_t score__unet_res_col_floats(const score__unet_res *r);
size_t score__unet_res_dbl(const score__unet_res *r, size_t n);

/* Forward of n images: x [n, ci, h, w], e [n, ne] (ignored when ne = 0) -> y [n, co, h, w];
 * theta: the flat parameters; cache: score__unet_res_cache_floats() floats, kept for the
 * backward; dbl: score__unet_res_dbl() doubles, also kept; col: the convolution scratch. */
void score__unet_res_forward(const score__unet_res *r, size_t n, const float *theta,
                             const float *x, const float *e, float *y, float *cache,
                             double *dbl, float *col);
/* The same with conv3_1's and conv3_2's weights packed beforehand: pk NULL or as
 * score__unet_res_infer's (the same bits). */
void score__unet_res_forward_packed(const score__unet_res *r, size_t n, const float *theta,
                                    const float *x, const float *e, float *y, float *cache,
                                    double *dbl, float *col, const float *pk);
/* The same forward when no backward follows: the cache is scratch and its silu' parts are not
 * computed; y has the bits of score__unet_res_forward. pk: NULL, or the weights of conv3_1 and
 * conv3_2 packed by score__unet_res_pack (then not packed again here). */
void score__unet_res_infer(const score__unet_res *r, size_t n, const float *theta,
                           const float *x, const float *e, float *y, float *cache, double *dbl,
                           float *col, const float *pk);
/* Floats of the block's packed convolution weights (conv3_1's then conv3_2's, each
 * score__unet_conv3_packed_floats(); 0 when its planes need no pack) and that pack from theta
 * (pk 64-byte aligned); with igrad = 1 the same for the input gradients of the backward
 * (score__unet_conv3_igrad_packed_floats(), score__unet_conv3_igrad_pack). */
size_t score__unet_res_packed_floats(const score__unet_res *r, int igrad);
void score__unet_res_pack(const score__unet_res *r, const float *theta, float *pk, int igrad);
/* Backward of that forward (same x, e, cache, dbl): grad (the flat gradient) +=, gx +=, ge +=
 * (gx, ge may be NULL); scratch: score__unet_res_scratch_floats() floats. */
void score__unet_res_backward(const score__unet_res *r, size_t n, const float *theta,
                              const float *x, const float *e, const float *cache, double *dbl,
                              const float *gy, float *grad, float *gx, float *ge,
                              float *scratch, float *col);
/* acc: gx added to (1) or written (0); acc_e: the same for ge; pki: NULL, or the input
 * gradients' weights packed by score__unet_res_pack with igrad = 1 (the same bits). */
void score__unet_res_backward_to(const score__unet_res *r, size_t n, const float *theta,
                                 const float *x, const float *e, const float *cache,
                                 double *dbl, const float *gy, float *grad, float *gx,
                                 float *ge, float *scratch, float *col, int acc, int acc_e,
                                 const float *pki);

/* ---- Self-attention ---------------------------------------------------------------------- *
 * Single-head self-attention over the p = h * w positions (DDPM's AttnBlock, score_sde's
 * AttnBlockpp with skip rescaling):
 *   a = GN(x); q, k, v = 1x1 convolutions of a (c -> c)
 *   W[i, j] = softmax_j(q_i . k_j / sqrt(c)); o_i = sum_j W[i, j] v_j
 *   y = (x + conv1x1_out(o)) / sqrt(2)
 * Parameters in this order: GN gamma, beta [c]; q weight [c, c], bias [c]; k; v; out. */
typedef struct score__unet_attn {
    size_t c, hw, g;
    size_t gn_g, gn_b, q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b;
    size_t n_params;
} score__unet_attn;

size_t score__unet_attn_layout(score__unet_attn *a, size_t c, size_t hw, size_t g, size_t off);
/* Cache floats for n images (a, q, k, v, o and the attention weights), scratch floats of the
 * backward, doubles (GN stats and bias sums). */
size_t score__unet_attn_cache_floats(const score__unet_attn *a, size_t n);
size_t score__unet_attn_scratch_floats(const score__unet_attn *a, size_t n);
size_t score__unet_attn_dbl(const score__unet_attn *a, size_t n);
/* Floats of the 1x1 convolutions' scratch (col of the backward). */
size_t score__unet_attn_col_floats(const score__unet_attn *a);
void score__unet_attn_forward(const score__unet_attn *a, size_t n, const float *theta,
                              const float *x, float *y, float *cache, double *dbl);
void score__unet_attn_backward(const score__unet_attn *a, size_t n, const float *theta,
                               const float *x, const float *cache, double *dbl,
                               const float *gy, float *grad, float *gx, float *scratch,
                               float *col);
/* acc: gx added to (1) or written (0; gx not NULL then). */
void score__unet_attn_backward_to(const score__unet_attn *a, size_t n, const float *theta,
                                  const float *x, const float *cache, double *dbl,
                                  const float *gy, float *grad, float *gx, float *scratch,
                                  float *col, int acc);

/* ---- The model kind's files (unet-io.c) and the accessors they use (unet.c) ---------------- */

struct score_model;
struct score__st_writer;
struct score__st_reader;

/* The save / load hooks of the kind (score__model_ops, model-io.c). */
int score__unet_save(const struct score_model *m, struct score__st_writer *w);
int score__unet_load(struct score_model **out, const struct score__st_reader *r);
/* The image shape C x H x W of a U-Net. */
void score__unet_image_shape(const struct score_model *m, size_t *c, size_t *h, size_t *w);
/* Tests only: on = 1 makes the model's backward take the way of its first version, every
 * gradient added into buffers zeroed beforehand and the blocks' parameter gradients summed
 * after each round of blocks (the same bits as the default way, which writes each activation
 * gradient with its first producer and, at one thread, adds each layer's part of a block's
 * parameter gradient right after the layer); 0: the default. */
void score__unet_set_reference_backward(struct score_model *m, int on);

/* The Fourier projection W (embed_dim / 2 floats) of a prepared U-Net with the Fourier
 * embedding, else NULL. */
const float *score__unet_fourier(const struct score_model *m);
/* Replaces that projection (the frequencies 2 pi W follow), as a loaded file gives it. */
void score__unet_set_fourier(struct score_model *m, const float *w);

#endif /* LIBSCORE_UNET_PRIV_H */
