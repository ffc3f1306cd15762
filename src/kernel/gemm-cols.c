/* A GEMM whose every output element is computed by the same sequence of float operations
 * whatever its column's position in the product, the number of columns or the blocking:
 *   c = acc ? C[m, n] : 0;  for k = 0 .. K - 1 in order: c = fma(A[m, k], B[k, n], c)
 * so that a column block of B (one image's pixels among several images') gets the same bits in
 * any product. A BLAS gives no such promise (its kernels round a column according to where it
 * falls in its blocking), which is why the U-Net forward used to call it once per image.
 *
 * Three versions with the same arithmetic (the FMA is correctly rounded, so a vector lane, the
 * hardware scalar FMA and C's fmaf() agree bit for bit): AVX-512 (16 columns per vector), AVX2
 * with FMA (8), and portable C (fmaf). The vector versions keep a block of rows x two vectors of
 * accumulators in registers over the whole k loop (A broadcast, B loaded), and read a partial
 * last vector with masked loads (masked-off lanes are zero and never stored). The version is
 * picked per call from the processor's features, at most the build's 'simd' level; sanitizer
 * builds and builds for other compilers or processors have the portable version only (on
 * x86-64 processors with FMA, its loops on whole vectors: gemm_portable_fma). */
#include <math.h>
#include <stddef.h>

#include "kernel-priv.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__) && SCORE__SIMD_LEVEL >= 1
#define GEMM_X86 1
#include <immintrin.h>
#else
#define GEMM_X86 0
#endif

/* Columns of one block of the vector versions: two vectors. */
#define NB512 32
#define NB256 16

/* ---- Portable version -------------------------------------------------------------------- */

/* Row by row, k outer: C's row holds the running sums (float stores are exact, so this is the
 * same chain of fmaf per element). */
#define GEMM_PORTABLE_BODY                                                                        \
    for (size_t m = 0; m < M; m++) {                                                              \
        float *c = C + m * ldc;                                                                   \
        const float *a = A + m * lda;                                                             \
        if (!acc)                                                                                 \
            for (size_t n = 0; n < N; n++)                                                        \
                c[n] = 0.0f;                                                                      \
        for (size_t k = 0; k < K; k++) {                                                          \
            const float *b = B + k * ldb;                                                         \
            float ak = a[k];                                                                      \
            for (size_t n = 0; n < N; n++)                                                        \
                c[n] = fmaf(ak, b[n], c[n]);                                                      \
        }                                                                                         \
    }

static void gemm_portable(size_t M, size_t N, size_t K, const float *A, size_t lda,
                          const float *B, size_t ldb, float *C, size_t ldc, int acc)
{
    GEMM_PORTABLE_BODY
}

/* The portable version for processors with FMA where the intrinsics versions below are not
 * built (sanitizer builds: their masked loads read past the ends of rows, which the sanitizers
 * cannot model). There fmaf() is a call to the C library's (some 60 times slower than the
 * instruction), and GCC vectorizes no loop that the sanitizers instrument, which made the
 * MLP's training tests, whose products run here, take many minutes under AddressSanitizer.
 * So: gemm_portable's loops with whole 8-float vectors inside the row (unmasked loads and
 * stores, which the sanitizers check like any access) and the last N mod 8 columns one at a
 * time, each with the FMA instruction: the same fma chains, the same bits (the FMA is
 * correctly rounded). */
#if !GEMM_X86 && defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    SCORE__SIMD_LEVEL >= 1
#define GEMM_FMA_C 1
#include <immintrin.h>
__attribute__((target("avx2,fma"))) static void gemm_portable_fma(size_t M, size_t N, size_t K,
                                                                 const float *A, size_t lda,
                                                                 const float *B, size_t ldb,
                                                                 float *C, size_t ldc, int acc)
{
    size_t nv = N / 8 * 8;
    for (size_t m = 0; m < M; m++) {
        float *c = C + m * ldc;
        const float *a = A + m * lda;
        if (!acc)
            for (size_t n = 0; n < N; n++)
                c[n] = 0.0f;
        for (size_t k = 0; k < K; k++) {
            const float *b = B + k * ldb;
            __m256 ak = _mm256_set1_ps(a[k]);
            for (size_t n = 0; n < nv; n += 8)
                _mm256_storeu_ps(c + n, _mm256_fmadd_ps(ak, _mm256_loadu_ps(b + n),
                                                        _mm256_loadu_ps(c + n)));
            for (size_t n = nv; n < N; n++)
                c[n] = _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(a[k]), _mm_set_ss(b[n]),
                                                  _mm_set_ss(c[n])));
        }
    }
}
#else
#define GEMM_FMA_C 0
#endif
#undef GEMM_PORTABLE_BODY

#if GEMM_X86

/* ---- AVX-512 ----------------------------------------------------------------------------- */
#if SCORE__SIMD_LEVEL >= 2

/* mr rows (at most 8) x nv vectors (1 or 2) of columns; m0 / m1: the lanes of each vector. */
__attribute__((target("avx512f"), always_inline)) static inline void
tile512(size_t mr, size_t nv, size_t K, const float *A, size_t lda, const float *B, size_t ldb,
        float *C, size_t ldc, __mmask16 m0, __mmask16 m1, int acc)
{
    __m512 c0[8], c1[8];
#pragma GCC unroll 8
    for (size_t r = 0; r < mr; r++) {
        c0[r] = acc ? _mm512_maskz_loadu_ps(m0, C + r * ldc) : _mm512_setzero_ps();
        c1[r] = acc && nv > 1 ? _mm512_maskz_loadu_ps(m1, C + r * ldc + 16)
                              : _mm512_setzero_ps();
    }
    for (size_t k = 0; k < K; k++) {
        const float *b = B + k * ldb;
        __m512 b0 = _mm512_maskz_loadu_ps(m0, b);
        __m512 b1 = nv > 1 ? _mm512_maskz_loadu_ps(m1, b + 16) : b0;
#pragma GCC unroll 8
        for (size_t r = 0; r < mr; r++) {
            __m512 a = _mm512_set1_ps(A[r * lda + k]);
            c0[r] = _mm512_fmadd_ps(a, b0, c0[r]);
            if (nv > 1)
                c1[r] = _mm512_fmadd_ps(a, b1, c1[r]);
        }
    }
#pragma GCC unroll 8
    for (size_t r = 0; r < mr; r++) {
        _mm512_mask_storeu_ps(C + r * ldc, m0, c0[r]);
        if (nv > 1)
            _mm512_mask_storeu_ps(C + r * ldc + 16, m1, c1[r]);
    }
}

__attribute__((target("avx512f"), always_inline)) static inline void
rows512(size_t nv, size_t M, size_t K, const float *A, size_t lda, const float *B, size_t ldb,
        float *C, size_t ldc, __mmask16 m0, __mmask16 m1, int acc)
{
    size_t m = 0;
    for (; m + 8 <= M; m += 8)
        tile512(8, nv, K, A + m * lda, lda, B, ldb, C + m * ldc, ldc, m0, m1, acc);
    for (; m + 4 <= M; m += 4)
        tile512(4, nv, K, A + m * lda, lda, B, ldb, C + m * ldc, ldc, m0, m1, acc);
    for (; m + 2 <= M; m += 2)
        tile512(2, nv, K, A + m * lda, lda, B, ldb, C + m * ldc, ldc, m0, m1, acc);
    for (; m < M; m++)
        tile512(1, nv, K, A + m * lda, lda, B, ldb, C + m * ldc, ldc, m0, m1, acc);
}

__attribute__((target("avx512f"))) static __mmask16 mask16(size_t cols)
{
    return cols >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << cols) - 1u);
}

/* Column blocks outer: a block's K x 32 floats of B stay in the first-level cache while every
 * row block of A passes over them. */
__attribute__((target("avx512f"))) static void
gemm_avx512(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B,
            size_t ldb, float *C, size_t ldc, int acc)
{
    for (size_t n0 = 0; n0 < N; n0 += NB512) {
        size_t nc = N - n0 < NB512 ? N - n0 : NB512;
        __mmask16 m0 = mask16(nc), m1 = mask16(nc > 16 ? nc - 16 : 0);
        if (nc > 16)
            rows512(2, M, K, A, lda, B + n0, ldb, C + n0, ldc, m0, m1, acc);
        else
            rows512(1, M, K, A, lda, B + n0, ldb, C + n0, ldc, m0, m1, acc);
    }
}
#endif /* SCORE__SIMD_LEVEL >= 2 */

/* ---- AVX2 with FMA ----------------------------------------------------------------------- */

/* mr rows (at most 6) x nv vectors (1 or 2); m0 / m1: lane masks (all bits set: lane used). */
__attribute__((target("avx2,fma"), always_inline)) static inline void
tile256(size_t mr, size_t nv, size_t K, const float *A, size_t lda, const float *B, size_t ldb,
        float *C, size_t ldc, __m256i m0, __m256i m1, int acc)
{
    __m256 c0[6], c1[6];
#pragma GCC unroll 6
    for (size_t r = 0; r < mr; r++) {
        c0[r] = acc ? _mm256_maskload_ps(C + r * ldc, m0) : _mm256_setzero_ps();
        c1[r] = acc && nv > 1 ? _mm256_maskload_ps(C + r * ldc + 8, m1) : _mm256_setzero_ps();
    }
    for (size_t k = 0; k < K; k++) {
        const float *b = B + k * ldb;
        __m256 b0 = _mm256_maskload_ps(b, m0);
        __m256 b1 = nv > 1 ? _mm256_maskload_ps(b + 8, m1) : b0;
#pragma GCC unroll 6
        for (size_t r = 0; r < mr; r++) {
            __m256 a = _mm256_broadcast_ss(A + r * lda + k);
            c0[r] = _mm256_fmadd_ps(a, b0, c0[r]);
            if (nv > 1)
                c1[r] = _mm256_fmadd_ps(a, b1, c1[r]);
        }
    }
#pragma GCC unroll 6
    for (size_t r = 0; r < mr; r++) {
        _mm256_maskstore_ps(C + r * ldc, m0, c0[r]);
        if (nv > 1)
            _mm256_maskstore_ps(C + r * ldc + 8, m1, c1[r]);
    }
}

__attribute__((target("avx2,fma"), always_inline)) static inline void
rows256(size_t nv, size_t M, size_t K, const float *A, size_t lda, const float *B, size_t ldb,
        float *C, size_t ldc, __m256i m0, __m256i m1, int acc)
{
    size_t m = 0;
    for (; m + 6 <= M; m += 6)
        tile256(6, nv, K, A + m * lda, lda, B, ldb, C + m * ldc, ldc, m0, m1, acc);
    for (; m + 4 <= M; m += 4)
        tile256(4, nv, K, A + m * lda, lda, B, ldb, C + m * ldc, ldc, m0, m1, acc);
    for (; m + 2 <= M; m += 2)
        tile256(2, nv, K, A + m * lda, lda, B, ldb, C + m * ldc, ldc, m0, m1, acc);
    for (; m < M; m++)
        tile256(1, nv, K, A + m * lda, lda, B, ldb, C + m * ldc, ldc, m0, m1, acc);
}

/* Lanes 0 .. cols - 1 of a mask (cols <= 8 used; more: all). */
__attribute__((target("avx2,fma"))) static __m256i mask8(size_t cols)
{
    int n = cols >= 8 ? 8 : (int)cols;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

__attribute__((target("avx2,fma"))) static void
gemm_avx2(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B, size_t ldb,
          float *C, size_t ldc, int acc)
{
    for (size_t n0 = 0; n0 < N; n0 += NB256) {
        size_t nc = N - n0 < NB256 ? N - n0 : NB256;
        __m256i m0 = mask8(nc), m1 = mask8(nc > 8 ? nc - 8 : 0);
        if (nc > 8)
            rows256(2, M, K, A, lda, B + n0, ldb, C + n0, ldc, m0, m1, acc);
        else
            rows256(1, M, K, A, lda, B + n0, ldb, C + n0, ldc, m0, m1, acc);
    }
}
#endif /* GEMM_X86 */

/* ---- Dispatch ---------------------------------------------------------------------------- */

int score__gemm_cols_level(void)
{
    return GEMM_X86 ? score__cpu_simd_level() : 0;
}

void score__gemm_cols_at(int level, size_t M, size_t N, size_t K, const float *A, size_t lda,
                         const float *B, size_t ldb, float *C, size_t ldc, int acc)
{
    if (M == 0 || N == 0)
        return;
#if GEMM_X86
#if SCORE__SIMD_LEVEL >= 2
    if (level >= 2) {
        gemm_avx512(M, N, K, A, lda, B, ldb, C, ldc, acc);
        return;
    }
#endif
    if (level >= 1) {
        gemm_avx2(M, N, K, A, lda, B, ldb, C, ldc, acc);
        return;
    }
#else
    (void)level;
#if GEMM_FMA_C
    if (score__cpu_simd_level() >= 1) {
        gemm_portable_fma(M, N, K, A, lda, B, ldb, C, ldc, acc);
        return;
    }
#endif
#endif
    gemm_portable(M, N, K, A, lda, B, ldb, C, ldc, acc);
}

void score__gemm_cols(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B,
                      size_t ldb, float *C, size_t ldc, int acc)
{
    score__gemm_cols_at(score__gemm_cols_level(), M, N, K, A, lda, B, ldb, C, ldc, acc);
}

/* ---- im2col of small planes -------------------------------------------------------------- *
 * A tap (dy, dx) of a 3x3 convolution with zero padding reads the plane shifted by
 * (dy - 1) w + (dx - 1) floats, where the shifted position stays inside the plane's row and
 * column range: a masked load per vector of the plane (the masks are computed once per call;
 * masked-off lanes read nothing and give zero). Replaces a copy and zeroing per row and tap,
 * which cost about as much as the convolution's product on 8 x 8 planes. */

#define IM2COL_MAX_HW 256

#if GEMM_X86
/* Lane masks of tap t (dy = t / 3, dx = t % 3) for the plane's vectors of `lanes` pixels:
 * bit l of mask[t * nv + v] set when pixel v * lanes + l exists and its tap reads inside. */
static void tap_masks(size_t h, size_t w, size_t lanes, size_t nv, uint32_t *mask)
{
    for (size_t t = 0; t < 9; t++) {
        size_t dy = t / 3, dx = t % 3;
        for (size_t v = 0; v < nv; v++)
            mask[t * nv + v] = 0;
        for (size_t py = 0; py < h; py++) {
            if (py + dy < 1 || py + dy > h)
                continue;
            for (size_t px = 0; px < w; px++) {
                if (px + dx < 1 || px + dx > w)
                    continue;
                size_t p = py * w + px;
                mask[t * nv + p / lanes] |= (uint32_t)1 << (p % lanes);
            }
        }
    }
}

#if SCORE__SIMD_LEVEL >= 2
__attribute__((target("avx512f"))) static void im2col_avx512(size_t np, size_t c, size_t h,
                                                             size_t w, const float *x,
                                                             float *col, size_t ld)
{
    size_t hw = h * w, nv = (hw + 15) / 16;
    uint32_t mask[9 * (IM2COL_MAX_HW / 16)];
    tap_masks(h, w, 16, nv, mask);
    __mmask16 last = (__mmask16)(hw % 16 ? (1u << (hw % 16)) - 1u : 0xFFFFu);
    for (size_t j = 0; j < np; j++)
        for (size_t k = 0; k < c; k++) {
            const float *plane = x + (j * c + k) * hw;
            for (size_t t = 0; t < 9; t++) {
                float *row = col + (k * 9 + t) * ld + j * hw;
                const float *src = plane + ((ptrdiff_t)(t / 3) - 1) * (ptrdiff_t)w +
                                   ((ptrdiff_t)(t % 3) - 1);
                const uint32_t *mt = mask + t * nv;
                for (size_t v = 0; v < nv; v++) {
                    __m512 a = _mm512_maskz_loadu_ps((__mmask16)mt[v], src + 16 * v);
                    _mm512_mask_storeu_ps(row + 16 * v, v + 1 < nv ? (__mmask16)0xFFFF : last,
                                          a);
                }
            }
        }
}

/* The adjoint: gx[p + shift] += col[p] per tap in tap order (the order of the copying loop, so
 * the same sums). */
__attribute__((target("avx512f"))) static void col2im_avx512(size_t np, size_t c, size_t h,
                                                             size_t w, const float *col,
                                                             size_t ld, float *gx)
{
    size_t hw = h * w, nv = (hw + 15) / 16;
    uint32_t mask[9 * (IM2COL_MAX_HW / 16)];
    tap_masks(h, w, 16, nv, mask);
    for (size_t j = 0; j < np; j++)
        for (size_t k = 0; k < c; k++) {
            float *plane = gx + (j * c + k) * hw;
            for (size_t t = 0; t < 9; t++) {
                const float *row = col + (k * 9 + t) * ld + j * hw;
                float *dst = plane + ((ptrdiff_t)(t / 3) - 1) * (ptrdiff_t)w +
                             ((ptrdiff_t)(t % 3) - 1);
                const uint32_t *mt = mask + t * nv;
                for (size_t v = 0; v < nv; v++) {
                    __mmask16 m = (__mmask16)mt[v];
                    __m512 g = _mm512_maskz_loadu_ps(m, dst + 16 * v);
                    g = _mm512_add_ps(g, _mm512_maskz_loadu_ps(m, row + 16 * v));
                    _mm512_mask_storeu_ps(dst + 16 * v, m, g);
                }
            }
        }
}
#endif

__attribute__((target("avx2,fma"))) static void im2col_avx2(size_t np, size_t c, size_t h,
                                                            size_t w, const float *x,
                                                            float *col, size_t ld)
{
    size_t hw = h * w, nv = (hw + 7) / 8;
    uint32_t mask[9 * (IM2COL_MAX_HW / 8)];
    tap_masks(h, w, 8, nv, mask);
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    __m256i last = mask8(hw % 8 ? hw % 8 : 8);
    for (size_t j = 0; j < np; j++)
        for (size_t k = 0; k < c; k++) {
            const float *plane = x + (j * c + k) * hw;
            for (size_t t = 0; t < 9; t++) {
                float *row = col + (k * 9 + t) * ld + j * hw;
                const float *src = plane + ((ptrdiff_t)(t / 3) - 1) * (ptrdiff_t)w +
                                   ((ptrdiff_t)(t % 3) - 1);
                const uint32_t *mt = mask + t * nv;
                for (size_t v = 0; v < nv; v++) {
                    __m256i m = _mm256_cmpeq_epi32(
                        _mm256_and_si256(_mm256_set1_epi32((int)mt[v]), bit), bit);
                    __m256 a = _mm256_maskload_ps(src + 8 * v, m);
                    if (v + 1 < nv)
                        _mm256_storeu_ps(row + 8 * v, a);
                    else
                        _mm256_maskstore_ps(row + 8 * v, last, a);
                }
            }
        }
}

__attribute__((target("avx2,fma"))) static void col2im_avx2(size_t np, size_t c, size_t h,
                                                            size_t w, const float *col,
                                                            size_t ld, float *gx)
{
    size_t hw = h * w, nv = (hw + 7) / 8;
    uint32_t mask[9 * (IM2COL_MAX_HW / 8)];
    tap_masks(h, w, 8, nv, mask);
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    for (size_t j = 0; j < np; j++)
        for (size_t k = 0; k < c; k++) {
            float *plane = gx + (j * c + k) * hw;
            for (size_t t = 0; t < 9; t++) {
                const float *row = col + (k * 9 + t) * ld + j * hw;
                float *dst = plane + ((ptrdiff_t)(t / 3) - 1) * (ptrdiff_t)w +
                             ((ptrdiff_t)(t % 3) - 1);
                const uint32_t *mt = mask + t * nv;
                for (size_t v = 0; v < nv; v++) {
                    __m256i m = _mm256_cmpeq_epi32(
                        _mm256_and_si256(_mm256_set1_epi32((int)mt[v]), bit), bit);
                    __m256 g = _mm256_add_ps(_mm256_maskload_ps(dst + 8 * v, m),
                                             _mm256_maskload_ps(row + 8 * v, m));
                    _mm256_maskstore_ps(dst + 8 * v, m, g);
                }
            }
        }
}
#endif /* GEMM_X86 */

int score__col2im3_vec(size_t np, size_t c, size_t h, size_t w, const float *col, size_t ld,
                       float *gx)
{
    return score__col2im3_vec_at(score__gemm_cols_level(), np, c, h, w, col, ld, gx);
}

int score__col2im3_vec_at(int lv, size_t np, size_t c, size_t h, size_t w, const float *col,
                          size_t ld, float *gx)
{
    size_t hw = h * w;
    if (hw == 0 || hw > IM2COL_MAX_HW)
        return 0;
#if GEMM_X86
#if SCORE__SIMD_LEVEL >= 2
    if (lv >= 2) {
        col2im_avx512(np, c, h, w, col, ld, gx);
        return 1;
    }
#endif
    if (lv >= 1) {
        col2im_avx2(np, c, h, w, col, ld, gx);
        return 1;
    }
#else
    (void)lv, (void)np, (void)c, (void)col, (void)ld, (void)gx;
#endif
    return 0;
}

int score__im2col3_vec(size_t np, size_t c, size_t h, size_t w, const float *x, float *col,
                       size_t ld)
{
    return score__im2col3_vec_at(score__gemm_cols_level(), np, c, h, w, x, col, ld);
}

int score__im2col3_vec_at(int lv, size_t np, size_t c, size_t h, size_t w, const float *x,
                          float *col, size_t ld)
{
    size_t hw = h * w;
    if (hw == 0 || hw > IM2COL_MAX_HW)
        return 0;
#if GEMM_X86
#if SCORE__SIMD_LEVEL >= 2
    if (lv >= 2) {
        im2col_avx512(np, c, h, w, x, col, ld);
        return 1;
    }
#endif
    if (lv >= 1) {
        im2col_avx2(np, c, h, w, x, col, ld);
        return 1;
    }
#else
    (void)lv, (void)np, (void)c, (void)x, (void)col, (void)ld;
#endif
    return 0;
}
