/* A row-invariant GEMM against a packed weight, with the bias, residual and activation fused
 * (the MLP's inference path, mlp-infer.c):
 *   C[M x N] = epilogue(A[M x K] W^T), W the layer's N x K weight (row-major, row stride ldw),
 * where every element is one chain of fused multiply-adds over k = 0 .. K - 1 in order,
 *   c = acc ? C[m, n] : 0;  for k: c = fma(A[m, k], W[n, k], c)
 * (the arithmetic of score__gemm_cols with B = W^T), so a row's bits depend on its own row of
 * A only: not on M, its position, the blocking or the thread. A BLAS promises none of this
 * (OpenBLAS rounds a row according to its place in its blocking), which is what the MLP's row
 * panels (mlp-panel.c) were for.
 *
 * The weight is packed first (score__gemm_wt_pack): Wp[k * ldp + n] = W[n, k], the columns
 * padded with zeros to ldp = N rounded up to 16, so that the kernels load whole vectors of W^T
 * and broadcast A. The product runs in row blocks of at most six rows: a block's every column,
 * then the epilogue (score__bias_act_inplace: the bias, the activation and the residual) on
 * the block while it is in the first-level cache, then the next block. No memset, no separate
 * activation pass.
 *
 * Versions (the FMA is correctly rounded, so they agree bit for bit): AVX-512 with a tile of
 * 6 rows x 4 vectors (64 columns: 24 accumulators, the widest tile of 32 registers for the
 * MLP's N = 128), and below it score__gemm_cols_at() on the packed weight (AVX2 + FMA, portable
 * fmaf), which computes the same chains. Picked like score__gemm_cols_level(). */
#include <stddef.h>

#include "kernel-priv.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__) && SCORE__SIMD_LEVEL >= 2
#define WT_AVX512 1
#include <immintrin.h>
#else
#define WT_AVX512 0
#endif

/* Rows of a block (the epilogue's unit) and of the AVX-512 tile. */
#define WT_MR 6
/* Rows of the epilogue's blocks. */
#ifndef WT_EPI
#define WT_EPI 24
#endif
/* Vectors of 16 columns of the AVX-512 tile. */
#define WT_NV 4

size_t score__gemm_wt_ld(size_t N)
{
    return (N + 15) / 16 * 16;
}

void score__gemm_wt_pack(size_t N, size_t K, const float *W, size_t ldw, float *Wp)
{
    size_t ldp = score__gemm_wt_ld(N);
    /* blocks of 16 rows of W: each reads 16 rows' cache lines once per 16 k, writes whole
     * lines of Wp */
    for (size_t n0 = 0; n0 < ldp; n0 += 16) {
        size_t nc = N > n0 ? (N - n0 < 16 ? N - n0 : 16) : 0;
        for (size_t k = 0; k < K; k++) {
            float *d = Wp + k * ldp + n0;
            for (size_t j = 0; j < nc; j++)
                d[j] = W[(n0 + j) * ldw + k];
            for (size_t j = nc; j < 16; j++)
                d[j] = 0.0f;
        }
    }
}

#if WT_AVX512
/* mr rows x nv vectors of C = [C +] A Wp; `last`: the lanes of the last vector that exist in C
 * (the others are the packing's zero columns: computed, never stored). */
__attribute__((target("avx512f"), always_inline)) static inline void
tile512(size_t mr, size_t nv, size_t K, const float *A, size_t lda, const float *Wp, size_t ldp,
        float *C, size_t ldc, __mmask16 last, int acc)
{
    __m512 c[WT_MR][WT_NV];
#pragma GCC unroll 6
    for (size_t r = 0; r < mr; r++)
#pragma GCC unroll 4
        for (size_t v = 0; v < nv; v++)
            c[r][v] = acc ? _mm512_maskz_loadu_ps(v + 1 < nv ? (__mmask16)0xFFFF : last,
                                                  C + r * ldc + 16 * v)
                          : _mm512_setzero_ps();
    for (size_t k = 0; k < K; k++) {
        const float *b = Wp + k * ldp;
        __m512 w[WT_NV];
#pragma GCC unroll 4
        for (size_t v = 0; v < nv; v++)
            w[v] = _mm512_loadu_ps(b + 16 * v);
#pragma GCC unroll 6
        for (size_t r = 0; r < mr; r++) {
            __m512 a = _mm512_set1_ps(A[r * lda + k]);
#pragma GCC unroll 4
            for (size_t v = 0; v < nv; v++)
                c[r][v] = _mm512_fmadd_ps(a, w[v], c[r][v]);
        }
    }
#pragma GCC unroll 6
    for (size_t r = 0; r < mr; r++)
#pragma GCC unroll 4
        for (size_t v = 0; v < nv; v++)
            _mm512_mask_storeu_ps(C + r * ldc + 16 * v, v + 1 < nv ? (__mmask16)0xFFFF : last,
                                  c[r][v]);
}

/* One tile with nv a constant (1 .. WT_NV) for the compiler. */
#define WT_TILE_NV(MR)                                                                            \
    __attribute__((target("avx512f"))) static void tile512_##MR(                                 \
        size_t nv, size_t K, const float *A, size_t lda, const float *Wp, size_t ldp, float *C,  \
        size_t ldc, __mmask16 last, int acc)                                                      \
    {                                                                                             \
        switch (nv) {                                                                             \
        case 1: tile512(MR, 1, K, A, lda, Wp, ldp, C, ldc, last, acc); break;                     \
        case 2: tile512(MR, 2, K, A, lda, Wp, ldp, C, ldc, last, acc); break;                     \
        case 3: tile512(MR, 3, K, A, lda, Wp, ldp, C, ldc, last, acc); break;                     \
        default: tile512(MR, 4, K, A, lda, Wp, ldp, C, ldc, last, acc); break;                    \
        }                                                                                         \
    }
WT_TILE_NV(1)
WT_TILE_NV(2)
WT_TILE_NV(3)
WT_TILE_NV(4)
WT_TILE_NV(5)
WT_TILE_NV(6)
#undef WT_TILE_NV

/* Rows [0, mr) (mr <= WT_MR), every column: tiles of WT_NV vectors, the last one narrower. */
__attribute__((target("avx512f"))) static void block512(size_t mr, size_t N, size_t K,
                                                       const float *A, size_t lda,
                                                       const float *Wp, float *C, int acc)
{
    size_t ldp = score__gemm_wt_ld(N);
    for (size_t n0 = 0; n0 < N; n0 += 16 * WT_NV) {
        size_t nc = N - n0 < 16 * WT_NV ? N - n0 : 16 * WT_NV, nv = (nc + 15) / 16;
        size_t rem = nc - 16 * (nv - 1);
        __mmask16 last = rem >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << rem) - 1u);
        const float *w = Wp + n0;
        float *c = C + n0;
        switch (mr) {
        case 1: tile512_1(nv, K, A, lda, w, ldp, c, N, last, acc); break;
        case 2: tile512_2(nv, K, A, lda, w, ldp, c, N, last, acc); break;
        case 3: tile512_3(nv, K, A, lda, w, ldp, c, N, last, acc); break;
        case 4: tile512_4(nv, K, A, lda, w, ldp, c, N, last, acc); break;
        case 5: tile512_5(nv, K, A, lda, w, ldp, c, N, last, acc); break;
        default: tile512_6(nv, K, A, lda, w, ldp, c, N, last, acc); break;
        }
    }
}
#endif /* WT_AVX512 */

int score__gemm_wt_level(void)
{
    return score__gemm_cols_level();
}

void score__gemm_wt_at(int level, size_t M, size_t N, size_t K, const float *A, size_t lda,
                       const float *Wp, float *C, int acc, const float *bias, int act,
                       const float *res)
{
    int epi = bias != NULL || res != NULL || act != SCORE__ACT_IDENTITY;
    if (M == 0 || N == 0)
        return;
    for (size_t m = 0; m < M; m += WT_EPI) {
        size_t mr = M - m < WT_EPI ? M - m : WT_EPI;
        const float *a = A + m * lda;
        float *c = C + m * N;
#if WT_AVX512
        if (level >= 2)
            for (size_t i = 0; i < mr; i += WT_MR)
                block512(mr - i < WT_MR ? mr - i : WT_MR, N, K, a + i * lda, lda, Wp, c + i * N,
                         acc);
        else
#endif
            score__gemm_cols_at(level, mr, N, K, a, lda, Wp, score__gemm_wt_ld(N), c, N, acc);
        if (epi)
            score__bias_act_inplace(mr, N, c, bias, act, res != NULL ? res + m * N : NULL,
                                    NULL);
    }
}

void score__gemm_wt(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *Wp,
                    float *C, int acc, const float *bias, int act, const float *res)
{
    score__gemm_wt_at(score__gemm_wt_level(), M, N, K, A, lda, Wp, C, acc, bias, act, res);
}
