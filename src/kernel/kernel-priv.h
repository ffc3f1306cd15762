/* The kernel layer: the only code that calls CBLAS, plus fused elementwise kernels and row
 * reductions. Row-major float32 throughout. Never installed. */
#ifndef LIBSCORE_KERNEL_PRIV_H
#define LIBSCORE_KERNEL_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* Threads for a parallel loop over `units` independent pieces: the requested count (a
 * SCORE_MODEL_PARAM_THREADS value), at most `units`, at least 1. */
static inline int score__par_threads(int64_t requested, size_t units)
{
    size_t t = requested > 1 ? (size_t)requested : 1;
    return (int)(t < units ? t : (units ? units : 1));
}

/* Elementwise loops that take most of the non-GEMM time are compiled for several x86-64
 * levels and picked at load time (GCC function multi-versioning); elsewhere they are plain C.
 * The arithmetic is the same in every version (ISO C mode: no contraction into FMA), so the
 * results are bit-identical whatever version runs. Also used by other modules' hot loops
 * (the optimizer). Not in sanitizer builds: the load-time resolvers run before the sanitizer's
 * run-time is set up (under ThreadSanitizer they crash the program at start). */
#ifndef SCORE__SIMD_LEVEL /* the build's 'simd' option: 2 = up to AVX-512, 1 = up to AVX2, 0 = none */
#define SCORE__SIMD_LEVEL 2
#endif
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    defined(__OPTIMIZE__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__) && \
    SCORE__SIMD_LEVEL >= 2
#define SCORE__VEC_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#elif defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    defined(__OPTIMIZE__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__) && \
    SCORE__SIMD_LEVEL == 1
#define SCORE__VEC_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define SCORE__VEC_CLONES
#endif
/* Helpers of the multi-versioned loops must be inlined into every version (GCC does not inline
 * a function built for another -march unless told to). */
#if defined(__GNUC__)
#define SCORE__INLINE static inline __attribute__((always_inline))
#else
#define SCORE__INLINE static inline
#endif

/* Activation ids: the same pinned values as the public SCORE_ACT_* constants. */
enum {
    SCORE__ACT_IDENTITY = 0,
    SCORE__ACT_SILU = 1,
    SCORE__ACT_SOFTPLUS = 2,
    SCORE__ACT_TANH = 3,
    SCORE__ACT_ELU = 4,
    SCORE__ACT_GELU = 5, /* exact (erf) form */
    SCORE__ACT_COUNT = 6
};

/* C[M x N] = alpha * op(A) op(B) + beta * C, row-major. op(A) is M x K (A is K x M when
 * trans_a), op(B) is K x N (B is N x K when trans_b). lda/ldb/ldc are row strides.
 * beta == 0 overwrites C without reading it (NaN in C does not propagate).
 * M, N or K == 0 is allowed (K == 0 gives C = beta * C). */
void score__sgemm(int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha,
                  const float *A, size_t lda, const float *B, size_t ldb, float beta, float *C,
                  size_t ldc);

/* Column-invariant GEMM (gemm-cols.c): C[M x N] = A[M x K] B[K x N] (acc = 0) or C += A B
 * (acc = 1), row-major, with row strides lda, ldb, ldc. Every element is computed as
 * c = (acc ? C[m, n] : 0), then c = fma(A[m, k], B[k, n], c) for k = 0 .. K - 1 in order, so its
 * bits depend on its row of A and column of B only: not on its column's position, N or M, nor on
 * the processor's vector width (the AVX-512, AVX2 + FMA and portable versions agree bit for bit).
 * Single-threaded; no BLAS. K == 0 gives C = 0 (acc = 0) or leaves C. C must not overlap A, B. */
void score__gemm_cols(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B,
                      size_t ldb, float *C, size_t ldc, int acc);
/* The widest version this build and processor run: 2 = AVX-512, 1 = AVX2 + FMA, 0 = portable
 * (score__gemm_cols and the SiLU kernels use it). */
int score__gemm_cols_level(void);
/* score__gemm_cols with the version of `level` (at most score__gemm_cols_level(); for tests). */
void score__gemm_cols_at(int level, size_t M, size_t N, size_t K, const float *A, size_t lda,
                         const float *B, size_t ldb, float *C, size_t ldc, int acc);

/* ---- Row-invariant GEMM against a packed weight (gemm-wt.c): the MLP's inference path ---- */
/* Row stride of a packed weight of N columns: N rounded up to 16. */
size_t score__gemm_wt_ld(size_t N);
/* Packs W (N x K, row-major, row stride ldw >= K) transposed, in panels of 64 columns: with
 * ldp = score__gemm_wt_ld(N), p0 = 64 floor(n / 64) and pw = min(64, ldp - p0),
 * Wp[p0 K + k pw + (n - p0)] = W[n * ldw + k] for n < N, 0 for N <= n < ldp; Wp holds K * ldp
 * floats. (A panel's rows are consecutive: a k slice of it is one contiguous block, whatever
 * N; with rows of ldp floats, a 512-column weight's panel rows fell 2 KiB apart, into a few
 * sets of the first-level cache.) */
void score__gemm_wt_pack(size_t N, size_t K, const float *W, size_t ldw, float *Wp);
/* out[k * 16 + j] = W[j * ldw + k] for j < nr, +0 for nr <= j < 16, k < K (nr <= 16): rows of
 * W transposed into vectors of 16 lanes, 16 x 16 blocks in registers. Where this build has
 * score__gemm_wt's AVX-512 version, callable only on processors with AVX-512F (level 2: the
 * conv3.c pack of the small planes); elsewhere a portable loop with the same result. */
void score__transpose16_avx512(const float *W, size_t ldw, size_t nr, size_t K, float *out);
/* C[M x N] (rows of N floats, consecutive) = epilogue(z), z = A W^T with Wp the packed W and A
 * M x K with row stride lda: every z[m, n] is c = (acc ? C[m, n] : 0), then
 * c = fma(A[m, k], W[n, k], c) for k = 0 .. K - 1 in order, so a row's bits depend on its own
 * row of A only (not on M, its position or the vector width: the versions agree bit for bit).
 * The epilogue is score__bias_act_inplace(rows, N, z, bias, act, res, NULL) on blocks of rows
 * (bias: N floats or NULL; res: M x N, consecutive rows, or NULL; act SCORE__ACT_IDENTITY with
 * neither: none): its bits, row by row. C must not overlap A, Wp, bias or res. K == 0 gives
 * z = 0 (acc = 0) or C's values. Single-threaded; no BLAS; no allocation. */
void score__gemm_wt(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *Wp,
                    float *C, int acc, const float *bias, int act, const float *res);
/* score__gemm_wt whose epilogue also writes d1 (M x N, consecutive rows, or NULL) =
 * phi'(z + bias), as score__bias_act_inplace(..., d1) does (the MLP's training forward, which
 * keeps phi' for the backward). d1 must not overlap C or the inputs. */
void score__gemm_wt_d1(size_t M, size_t N, size_t K, const float *A, size_t lda,
                       const float *Wp, float *C, int acc, const float *bias, int act,
                       const float *res, float *d1);
/* score__gemm_wt with every row's chains started from other values than C's or 0: z[m, n] is
 * c = c0[m ldc0 + n], then the same fma chain, so the bits of C filled with those rows and
 * acc = 1, without that pass over C (C is only written). ldc0 = 0: one row vector c0 for every
 * row (the MLP's inference path starts its first layer's product from the folded bias this
 * way); ldc0 >= N: a matrix (the energy model's reverse pass makes a residual layer's
 * cotangent from the next one's this way, each kept in the training cache). c0 must not
 * overlap C. The _at form runs the version of `level` (for tests). */
void score__gemm_wt_from(size_t M, size_t N, size_t K, const float *A, size_t lda,
                         const float *Wp, float *C, const float *c0, size_t ldc0,
                         const float *bias, int act, const float *res);
void score__gemm_wt_from_at(int level, size_t M, size_t N, size_t K, const float *A,
                            size_t lda, const float *Wp, float *C, const float *c0, size_t ldc0,
                            const float *bias, int act, const float *res);
/* Packs B (K x N, row-major, row stride ldb >= N) as score__gemm_wt_pack packs a W with
 * W[n, k] = B[k * ldb + n]: the layout score__gemm_wt reads, so that score__gemm_wt computes
 * C = A B (the MLP's training backward: dh = dz W_l with W_l n_l x n_{l-1}, B = W_l itself). */
void score__gemm_wt_pack_kn(size_t N, size_t K, const float *B, size_t ldb, float *Wp);
/* out[j] = (float)(b[j] + sum_i W[j * ldw + i] e[i]) for j < N, i < K: each sum in double, the
 * exact products added in i order, so every version (AVX-512 and AVX2: 16 or 8 outputs in
 * vector lanes; portable) gives the same bits; the _at form runs the version of `level` (at most
 * score__gemm_wt_level(); for tests). out must not overlap the inputs. The MLP's inference
 * path folds the time embedding into the first layer's bias with it. */
void score__fold_bias(size_t N, size_t K, const float *W, size_t ldw, const float *b,
                      const float *e, float *out);
void score__fold_bias_at(int level, size_t N, size_t K, const float *W, size_t ldw,
                         const float *b, const float *e, float *out);
/* score__gemm_wt for a few rows without packing: C = epilogue(A W^T) with W unpacked (N x K,
 * row stride ldw), the same bits as score__gemm_wt on the packed W. For calls of at most
 * SCORE__GEMM_WT_SMALL rows, where packing would cost more than the product (W read once):
 * AVX-512 only (16 x 16 blocks of W transposed in registers); returns 0 without writing
 * anything when no version applies (then the caller packs), 1 when done. */
#define SCORE__GEMM_WT_SMALL 16
int score__gemm_wt_small(size_t M, size_t N, size_t K, const float *A, size_t lda,
                         const float *W, size_t ldw, float *C, int acc, const float *bias,
                         int act, const float *res);
int score__gemm_wt_small_at(int level, size_t M, size_t N, size_t K, const float *A,
                            size_t lda, const float *W, size_t ldw, float *C, int acc,
                            const float *bias, int act, const float *res);
/* The widest version this build and processor run (2 = AVX-512, 1 = AVX2 + FMA, 0 = portable)
 * and score__gemm_wt with the version of `level` (at most that; for tests). */
int score__gemm_wt_level(void);
void score__gemm_wt_at(int level, size_t M, size_t N, size_t K, const float *A, size_t lda,
                       const float *Wp, float *C, int acc, const float *bias, int act,
                       const float *res, float *d1);

/* im2col of np images (c planes of h x w each, NCHW, consecutive) for a 3x3 convolution with
 * stride 1 and zero padding 1: col[(k * 9 + 3 dy + dx) * ld + j * h * w + p] = image j's
 * x[k, py + dy - 1, px + dx - 1] (0 outside), p = py * w + px; writes only those columns.
 * Vectorised for planes of at most 256 pixels on AVX2 / AVX-512; returns 0 without writing
 * anything when no vector version applies (then the caller copies). */
int score__im2col3_vec(size_t np, size_t c, size_t h, size_t w, const float *x, float *col,
                       size_t ld);
/* The same with the version of `level` (as score__gemm_cols_at; level 0: returns 0). */
int score__im2col3_vec_at(int level, size_t np, size_t c, size_t h, size_t w, const float *x,
                          float *col, size_t ld);
/* Its adjoint: image j's gx (c planes of h x w, consecutive images) += col2im of the panel's
 * columns j * h * w ..; per element the taps' values are added in tap order (3 dy + dx), as a
 * loop over taps and pixels does. Returns 0 without writing when no vector version applies. */
int score__col2im3_vec(size_t np, size_t c, size_t h, size_t w, const float *col, size_t ld,
                       float *gx);
int score__col2im3_vec_at(int level, size_t np, size_t c, size_t h, size_t w, const float *col,
                          size_t ld, float *gx);

/* Direct 3x3 convolutions (conv3.c), stride 1, zero padding 1, of n NCHW images (image i at
 * x + i * c * h * w, planes of hw = h * w pixels) with a weight [co, ci, 3, 3] (tap t = 3 (dy + 1)
 * + (dx + 1) of channel pair (o, c) at wt[(o * ci + c) * 9 + t]; it reads the input at
 * (py + dy, px + dx), zero outside the plane). No im2col: the vector versions load the shifted
 * planes with lane masks. The AVX-512, AVX2 + FMA and portable versions agree bit for bit (the
 * portable one, C fmaf, runs for planes of more than SCORE__CONV3_MAX_HW pixels). Planes of
 * fewer than 16 pixels (2 x 2, 1 x 1, ...) have a forward (and so an input gradient) of their
 * own: output channels in the vector lanes (the weight packed per call, 16 output channels x 64
 * input channels at a time, or once beforehand: score__conv3_pack), input pixels broadcast, and
 * only the taps inside the plane: the terms of the zero padding are left out of the chains
 * below, which changes no bits for finite weights except the sign of an exact zero when acc = 1
 * starts from -0 (conv3.c). The AVX-512 and AVX2 versions have tiles for 2 x 2 and 1 x 1
 * planes; other small planes run the portable tile at every level (the same bits). At the
 * AVX-512 and AVX2 levels the 8 x 8 and 4 x 4 planes with at least 16 input and 16 output
 * channels do the same (tiles of 8 pixels x 32 output channels, AVX2 4 x 16; the weight packed
 * per call, 32 input channels at a time, or once beforehand), with the same chains and so the
 * same bits. */
#define SCORE__CONV3_MAX_HW 4096
/* Forward: y[i, o, p] = (c + b[o]) where c = (acc ? y[i, o, p] : 0), then
 * c = fma(wt[o, k], x[i, k / 9, p + shift(k % 9)] (0 when outside), c) for k = c * 9 + t in
 * order (input channel major, tap minor; the output-channel tiles: the taps outside left out),
 * then b[o] added as a separate float addition (b NULL:
 * none): the bits of im2col + score__gemm_cols + a bias addition, whatever n, the image's place
 * among the n images or the vector width. y must not overlap x, wt or b. */
void score__conv3_forward(size_t n, size_t ci, size_t co, size_t h, size_t w, const float *wt,
                          const float *b, const float *x, float *y, int acc);
void score__conv3_forward_at(int level, size_t n, size_t ci, size_t co, size_t h, size_t w,
                             const float *wt, const float *b, const float *x, float *y, int acc);
/* The forward's weight packed once for the output-channel tiles (planes of fewer than 16
 * pixels; 8 x 8 and 4 x 4 planes with 16 input and 16 output channels or more when the build has
 * the vector versions, whatever the level run; the U-Net packs each such convolution's weight
 * once per network call instead of once per block of images): score__conv3_packed_floats()
 * floats (0 for the other shapes: nothing to pack),
 * 64-byte aligned, written by score__conv3_pack (the same values at every level, so any level's
 * pack serves any level's forward); score__conv3_forward_packed then gives the bits of
 * score__conv3_forward with wt, reading wp instead of packing (wp is ignored, and may be NULL,
 * when score__conv3_packed_floats() is 0). The pack must follow every change of wt. */
size_t score__conv3_packed_floats(size_t ci, size_t co, size_t h, size_t w);
void score__conv3_pack(size_t ci, size_t co, size_t h, size_t w, const float *wt, float *wp);
void score__conv3_pack_at(int level, size_t ci, size_t co, size_t h, size_t w, const float *wt,
                          float *wp);
void score__conv3_forward_packed(size_t n, size_t ci, size_t co, size_t h, size_t w,
                                 const float *wt, const float *wp, const float *b, const float *x,
                                 float *y, int acc);
void score__conv3_forward_packed_at(int level, size_t n, size_t ci, size_t co, size_t h,
                                    size_t w, const float *wt, const float *wp, const float *b,
                                    const float *x, float *y, int acc);
/* Weight gradient (conv3-wgrad.c): gw[o, c, t] += the sum over the n images and their pixels p
 * of gy[i, o, p] * x[i, c, p + shift(t)] over the taps that read inside the plane, in a fixed
 * order: the call's n * h * w (image, pixel) pairs in order (images, then pixels row-major) are
 * cut into blocks of 64 pairs and chunks of 4 blocks (the last ones may be shorter); a block's sum
 * is the chain s = fma(gy, x, s) from s = +0 over its pairs (taps outside the plane left out), a
 * chunk's sum is its first block's sum plus the others in order (float additions), and each
 * chunk's sum is added to gw in order (gw = gw + sum). The same bits at every level and on any
 * tiling of the channels. gw must not overlap gy or x. */
void score__conv3_wgrad(size_t n, size_t ci, size_t co, size_t h, size_t w, const float *gy,
                        const float *x, float *gw);
void score__conv3_wgrad_at(int level, size_t n, size_t ci, size_t co, size_t h, size_t w,
                           const float *gy, const float *x, float *gw);
/* Input gradient: gx[i, c, p] += sum over (o, t) of wt[o, c, t] * gy[i, o, p - shift(t)] (0
 * outside): the forward of gy (co channels into ci) with the transposed, tap-flipped weight
 * wf[c, o, 8 - t] = wt[o, c, t], read in place (the output-channel tiles: packed per call): per
 * element the fma chain from gx's value over (o, t') in order, o major, t' = 8 - t minor. gx
 * must not overlap gy or wt. */
void score__conv3_input_grad(size_t n, size_t ci, size_t co, size_t h, size_t w,
                             const float *wt, const float *gy, float *gx);
void score__conv3_input_grad_at(int level, size_t n, size_t ci, size_t co, size_t h, size_t w,
                                const float *wt, const float *gy, float *gx);
/* The input gradient's weight packed once (as score__conv3_pack's for the forward it runs, co
 * into ci channels with the flipped weight: the U-Net packs it once per backward call instead of
 * once per block of images): score__conv3_igrad_packed_floats() floats (0: nothing to pack),
 * 64-byte aligned, written by score__conv3_igrad_pack (the same values at every level);
 * score__conv3_input_grad_packed then gives the bits of score__conv3_input_grad, reading wp
 * instead of packing (wp ignored, may be NULL, when there is nothing to pack); with acc = 0 the
 * bits of score__conv3_input_grad on a zeroed gx (the chains start from +0), gx not read. */
size_t score__conv3_igrad_packed_floats(size_t ci, size_t co, size_t h, size_t w);
void score__conv3_igrad_pack(size_t ci, size_t co, size_t h, size_t w, const float *wt,
                             float *wp);
void score__conv3_igrad_pack_at(int level, size_t ci, size_t co, size_t h, size_t w,
                                const float *wt, float *wp);
void score__conv3_input_grad_packed(size_t n, size_t ci, size_t co, size_t h, size_t w,
                                    const float *wt, const float *wp, const float *gy, float *gx,
                                    int acc);
void score__conv3_input_grad_packed_at(int level, size_t n, size_t ci, size_t co, size_t h,
                                       size_t w, const float *wt, const float *wp,
                                       const float *gy, float *gx, int acc);

/* Number of threads the BLAS uses for one call (OpenBLAS: openblas_get_num_threads(); 1 when
 * the BLAS does not tell). For choosing block sizes only: results never depend on it. */
int score__blas_threads(void);

/* y[M] = alpha * op(A) x + beta * y, A row-major M x N (op(A) = A^T: y has N entries).
 * beta == 0 overwrites y without reading it. */
void score__sgemv(int trans_a, size_t M, size_t N, float alpha, const float *A, size_t lda,
                  const float *x, float beta, float *y);

/* y += alpha * x (n floats). */
void score__saxpy(size_t n, float alpha, const float *x, float *y);
/* y += x, then x = 0 (n floats; the bits of score__saxpy with alpha = 1): a partial sum
 * added and its buffer cleared for the next one in one pass. x must not overlap y. */
void score__add_clear(size_t n, float *x, float *y);

/* Embedding features: sin_out[i] = sin(freq[i] * c), cos_out[i] = cos(freq[i] * c) in double
 * rounded to float, for |freq[i] * c| < 2^30 (larger arguments: libm's sin / cos); within
 * 1 ulp of float of the correctly rounded values (vectorized, not libm). */
void score__sincos_features(size_t n, const double *freq, double c, float *sin_out,
                            float *cos_out);

/* Name of the activation ("silu", ...) or NULL; id from name or -1. */
const char *score__act_name(int act);
int score__act_from_name(const char *name);

/* Scalar activation and its first two derivatives (double, for tests and references). */
double score__act_f(int act, double z);
double score__act_d1(int act, double z);
double score__act_d2(int act, double z);

/* Fused: z[r, :] += bias (if bias != NULL), then h = phi(z); d1/d2 (may be NULL) receive
 * phi'(z) and phi''(z). z is rows x cols; h, d1, d2 likewise (h may alias z only when d1 and
 * d2 are NULL). */
void score__bias_act_forward(size_t rows, size_t cols, float *z, const float *bias, int act,
                             float *h, float *d1, float *d2);

/* The same with a residual input: h = res + phi(z + bias) (res: rows x cols, or NULL for the
 * plain kernel). h may alias z when d1 and d2 are NULL; bias, res, d1 and d2 must not overlap
 * each other, z or h. */
void score__bias_act_forward_res(size_t rows, size_t cols, float *z, const float *bias, int act,
                                 const float *res, float *h, float *d1, float *d2);

/* In place: zh[r, :] = [res[r, :] +] phi(zh[r, :] + bias) (bias and res may be NULL), d1 (may be
 * NULL) = phi'(zh + bias); the pre-activation is not kept. Bit for bit the values of
 * score__bias_act_forward_res(). res and d1 must not overlap zh or each other. */
void score__bias_act_inplace(size_t rows, size_t cols, float *zh, const float *bias, int act,
                             const float *res, float *d1);

/* The widest vector level of the build's 'simd' option that the processor runs: 2 = AVX-512F,
 * 1 = AVX2 + FMA, 0 = none (or not x86-64 with GCC / clang). The kernels' own levels
 * (score__gemm_cols_level(), score__silu_level()) are this or 0. */
int score__cpu_simd_level(void);
/* The widest version of the SiLU rows this build and processor have: 2 = AVX-512, 1 = AVX2 +
 * FMA, 0 = portable (as score__gemm_cols_level(), but also in sanitizer and clang builds). */
int score__silu_level(void);
/* The SiLU rows of score__bias_act_forward_res (inplace = 0) or score__bias_act_inplace
 * (inplace = 1: z is zh, h and d2 are ignored) in the version of `level` (at most
 * score__silu_level()). Every version gives the same bits (fused multiply-adds, no division;
 * kernel.c); the entry points above call it with score__silu_level(). */
void score__silu_rows_at(int level, size_t rows, size_t cols, float *z, const float *bias,
                         const float *res, float *h, float *d1, float *d2, int inplace);
/* s[i] = the sigmoid 1 / (1 + e^-z[i]) that the SiLU kernels use (bit for bit; for tests). */
void score__silu_sigmoid(size_t n, const float *z, float *s);

/* out = phi'(z) and/or phi''(z) elementwise (n values); either output may be NULL. */
void score__act_derivs(size_t n, const float *z, int act, float *d1, float *d2);

/* Elementwise helpers. */
void score__mul(size_t n, const float *a, const float *b, float *out);     /* out = a * b */
void score__mul_acc(size_t n, const float *a, const float *b, float *out); /* out += a * b */
void score__mul_ip(size_t n, const float *a, float *b);                 /* b = a * b */
/* out = a * b + c (out may alias a or b, not c) */
void score__mul_add(size_t n, const float *a, const float *b, const float *c, float *out);
/* out = a * b elementwise (rows x cols) and acc[c] += out[r, c] in double, rows in order: the
 * double sums of score__col_sum_acc() when acc runs over every row from 0 (bias_grad[c] +=
 * (float)acc[c] then gives its bits). out must not overlap a, b or acc. */
void score__mul_col_sum(size_t rows, size_t cols, const float *a, const float *b, float *out,
                        double *acc);
/* score__mul_col_sum in place: b = a * b (rows x cols), acc as there (a must not overlap b). */
void score__mul_col_sum_ip(size_t rows, size_t cols, const float *a, float *b, double *acc);
/* bias_grad[c] += sum_r g[r, c] (accumulated in double per column). */
void score__col_sum_acc(size_t rows, size_t cols, const float *g, float *bias_grad);
/* The same over rows with stride ld (>= cols): columns of a wider matrix. */
void score__col_sum_acc_ld(size_t rows, size_t cols, size_t ld, const float *g, float *bias_grad);

/* One hidden layer of the reverse pass through primal and forward tangents (MLP), for nb rows
 * of k tangents of width w: with G the tangent cotangents ((nb k) x w), U the layer's
 * pre-activation tangents (row b's k x w block at U + b * u_stride; u_stride 0: one block
 * shared by every row), d1 / d2 = phi' / phi'' and dh the primal cotangent (nb x w):
 *   GU[(b, q), :] = G[(b, q), :] * d1[b, :]
 *   dz[b, :] = dh[b, :] * d1[b, :] + d2[b, :] * sum_q U_b[q, :] * G[(b, q), :]
 * (the sum in q order). GU and dz must not overlap the inputs or each other. */
void score__tangent_reverse(size_t nb, size_t k, size_t w, const float *G, const float *U,
                            size_t u_stride, const float *d1, const float *d2, const float *dh,
                            float *GU, float *dz);

/* Row reductions, accumulated in double. */
void score__row_dot(size_t rows, size_t cols, const float *a, const float *b, double *out);
/* The same dot products summed in eight interleaved partial sums (vectorised; differs from
 * score__row_dot in the last bits of the double). */
void score__row_dot_lanes(size_t rows, size_t cols, const float *a, const float *b, double *out);
void score__row_sqnorm(size_t rows, size_t cols, const float *a, double *out);
void score__row_norm(size_t rows, size_t cols, const float *a, double *out);

/* For b < nb: out[b] = the sum in double of v_j over the m floats x[b * ld + j], v_j = x[j]
 * (mean NULL) or the rounded square of the rounded difference ((double)x[j] - mean[b]) (a
 * product then a sum, no FMA): eight partial sums s[j % 8] over the first m / 8 * 8 values, the
 * others added to s[0] in order, then ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)). Each
 * run's bits depend on its own values only (not on nb, ld or the version); the vector versions
 * interleave the chains of several runs (one run's chain of additions is latency-bound). The
 * GroupNorm's statistics and bias-gradient sums. Levels as score__silu_level(); the _at form
 * runs the version of `level` (for tests). */
void score__sum_runs(size_t nb, size_t m, const float *x, size_t ld, const double *mean,
                     double *out);
void score__sum_runs_at(int level, size_t nb, size_t m, const float *x, size_t ld,
                        const double *mean, double *out);
/* For the np planes p of hw values at x + p * hw, gy + p * hw (and ds + p * hw): sg_out[p] and
 * sgx_out[p] = the sums in double of gv_j and gv_j * xh_j, gv_j = (double)gy[j] (ds NULL) or
 * (double)(gy[j] * ds[j]) (a float product), xh_j = ((double)x[j] - mean) * rstd, in the order
 * of score__sum_runs (eight partial sums each, the tail into the first, the same tree). The
 * GroupNorm backward's sums for one group's planes; levels as score__sum_runs. */
void score__gn_plane_sums(size_t np, size_t hw, const float *x, const float *gy,
                          const float *ds, double mean, double rstd, double *sg_out,
                          double *sgx_out);
void score__gn_plane_sums_at(int level, size_t np, size_t hw, const float *x, const float *gy,
                             const float *ds, double mean, double rstd, double *sg_out,
                             double *sgx_out);

#endif /* LIBSCORE_KERNEL_PRIV_H */
