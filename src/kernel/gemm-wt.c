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
 * The weight is packed first (score__gemm_wt_pack): W^T, the columns padded with zeros to
 * ldp = N rounded up to 16, so that the kernels load whole vectors of W^T and broadcast A, in
 * panels of WT_PW = 64 columns stored one after the other, each k-major (a k slice of a panel,
 * what a tile reads, is one contiguous block: rows of ldp floats put a 512-column weight's
 * panel rows 2 KiB apart, in few sets of the first-level cache, which cost the product ~15%). The product runs in blocks of WT_EPI rows: a block's every column, then
 * the epilogue (score__bias_act_inplace: the bias, the activation and the residual, with its
 * per-level SiLU rows) on the block while it is in the cache, then the next block. No memset,
 * no separate activation pass. Packing costs about as much as the product of a few rows, so
 * calls of at most SCORE__GEMM_WT_SMALL rows can skip it (score__gemm_wt_small: W read in
 * 16 x 16 blocks transposed in registers, AVX-512 only). score__gemm_wt_from starts the chains
 * from other values than C's (a row vector: the MLP's folded first-layer bias; a matrix: the
 * energy model's residual cotangents), loaded by the tiles in place of C: the bits of copying
 * them into C first, without that pass.
 *
 * Versions (the FMA is correctly rounded, so they agree bit for bit): AVX-512 with a tile of
 * 6 rows x 4 vectors (64 columns: 24 accumulators, the widest tile of 32 registers for the
 * MLP's N = 128), AVX2 + FMA with a tile of 6 rows x 2 vectors (16 columns: 12 accumulators of
 * 16 registers), both in k slices that keep a panel's slice near the core and loading whole
 * vectors of the padded weight, and the portable score__gemm_cols_at() on the packed weight
 * (fmaf), which computes the same chains. Picked like score__gemm_cols_level(). The packing
 * and the blocking never change a bit. */
#include <stddef.h>
#include <string.h>

#include "kernel-priv.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__) && SCORE__SIMD_LEVEL >= 2
#define WT_AVX512 1
#include <immintrin.h>

#include "simd-priv.h"
#else
#define WT_AVX512 0
#endif
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__) && SCORE__SIMD_LEVEL >= 1
#define WT_AVX2 1
#include <immintrin.h>

#include "simd-priv.h"
#else
#define WT_AVX2 0
#endif

/* Rows of a block (the epilogue's unit) and of the AVX-512 tile. */
#define WT_MR 6
/* Most rows of the unpacked product (score__gemm_wt_small), and of its register tile. */
#define WT_SMALL SCORE__GEMM_WT_SMALL
#define WT_SMALL_MR 8
/* Rows of the epilogue's blocks. */
#ifndef WT_EPI
#define WT_EPI 48
#endif
/* k per slice of the AVX-512 version: a slice of a panel of the packed weight (WT_KC x 64
 * floats) stays in the first-level cache while the block's tiles pass over it. */
#ifndef WT_KC
#define WT_KC 128
#endif
/* Vectors of 16 columns of the AVX-512 tile. */
#define WT_NV 4
/* Columns of a panel of the packed weight: the AVX-512 tile's width. */
#define WT_PW 64
_Static_assert(WT_PW == 16 * WT_NV, "an AVX-512 tile spans one panel");
/* Rows and vectors of 8 columns of the AVX2 tile: 12 accumulators, 2 vectors of the weight
 * and a broadcast of A in the 16 ymm registers (4 rows x 3 vectors, the other tile of 12, was
 * slower), and its k per slice (a slice of a panel of the packed weight, WT2_KC x 16 floats). */
#define WT2_MR 6
#define WT2_NV 2
#ifndef WT2_KC
#define WT2_KC 128
#endif
_Static_assert(WT_MR == 6 && WT2_MR == 6, "WT_PANEL's tiles have 1 .. 6 rows");

size_t score__gemm_wt_ld(size_t N)
{
    return (N + 15) / 16 * 16;
}

/* Width of the panel of the packed weight that starts at column p0 (a multiple of WT_PW):
 * WT_PW, or what is left of the ldp columns for the last one. */
static size_t wt_panel_width(size_t ldp, size_t p0)
{
    return ldp - p0 < WT_PW ? ldp - p0 : WT_PW;
}

#if WT_AVX512
/* w[kk] = [W[r0][k0 + kk], .., W[r0 + nr - 1][k0 + kk], 0 ..] for kk < kc (nr, kc <= 16; W row
 * stride ldw): a block of W read with masked loads (nothing outside it) and transposed. */
__attribute__((target("avx512f"), always_inline)) static inline void
load_t16(const float *W, size_t ldw, size_t r0, size_t nr, size_t k0, size_t kc, __m512 w[16])
{
    __mmask16 mk = kc >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << kc) - 1u);
    for (size_t j = 0; j < 16; j++)
        w[j] = j < nr ? _mm512_maskz_loadu_ps(mk, W + (r0 + j) * ldw + k0) : _mm512_setzero_ps();
    score__transpose16_regs(w, w);
}

__attribute__((target("avx512f"))) static void pack512(size_t N, size_t K, const float *W,
                                                      size_t ldw, float *Wp, size_t ldp)
{
    for (size_t n0 = 0; n0 < ldp; n0 += 16) {
        size_t p0 = n0 / WT_PW * WT_PW, pw = wt_panel_width(ldp, p0);
        float *d = Wp + p0 * K + (n0 - p0);
        for (size_t k0 = 0; k0 < K; k0 += 16) {
            size_t kc = K - k0 < 16 ? K - k0 : 16;
            __m512 r[16];
            load_t16(W, ldw, n0, N - n0 < 16 ? N - n0 : 16, k0, kc, r);
            for (size_t k = 0; k < kc; k++)
                _mm512_storeu_ps(d + (k0 + k) * pw, r[k]);
        }
    }
}

__attribute__((target("avx512f"))) void score__transpose16_avx512(const float *W, size_t ldw,
                                                                  size_t nr, size_t K, float *out)
{
    for (size_t k0 = 0; k0 < K; k0 += 16) {
        size_t kc = K - k0 < 16 ? K - k0 : 16;
        __m512 r[16];
        load_t16(W, ldw, 0, nr, k0, kc, r);
        for (size_t k = 0; k < kc; k++)
            _mm512_storeu_ps(out + (k0 + k) * 16, r[k]);
    }
}
#else
void score__transpose16_avx512(const float *W, size_t ldw, size_t nr, size_t K, float *out)
{
    for (size_t k = 0; k < K; k++)
        for (size_t j = 0; j < 16; j++)
            out[k * 16 + j] = j < nr ? W[j * ldw + k] : 0.0f;
}
#endif

void score__gemm_wt_pack(size_t N, size_t K, const float *W, size_t ldw, float *Wp)
{
    size_t ldp = score__gemm_wt_ld(N);
#if WT_AVX512
    if (score__gemm_wt_level() >= 2) {
        pack512(N, K, W, ldw, Wp, ldp);
        return;
    }
#endif
    /* blocks of 16 rows of W: each reads 16 rows' cache lines once per 16 k, writes whole
     * lines of Wp */
    for (size_t n0 = 0; n0 < ldp; n0 += 16) {
        size_t nc = N > n0 ? (N - n0 < 16 ? N - n0 : 16) : 0;
        size_t p0 = n0 / WT_PW * WT_PW, pw = wt_panel_width(ldp, p0);
        for (size_t k = 0; k < K; k++) {
            float *d = Wp + p0 * K + k * pw + (n0 - p0);
            for (size_t j = 0; j < nc; j++)
                d[j] = W[(n0 + j) * ldw + k];
            for (size_t j = nc; j < 16; j++)
                d[j] = 0.0f;
        }
    }
}

void score__gemm_wt_pack_kn(size_t N, size_t K, const float *B, size_t ldb, float *Wp)
{
    size_t ldp = score__gemm_wt_ld(N);
    for (size_t p0 = 0; p0 < ldp; p0 += WT_PW) {
        size_t pw = wt_panel_width(ldp, p0), nc = N - p0 < pw ? N - p0 : pw;
        float *d = Wp + p0 * K;
        for (size_t k = 0; k < K; k++, d += pw) {
            memcpy(d, B + k * ldb + p0, nc * sizeof *d);
            for (size_t j = nc; j < pw; j++)
                d[j] = 0.0f;
        }
    }
}

#if WT_AVX512 || WT_AVX2
/* The tiles of a vector version, TILE_1 .. TILE_6 (6 rows at most, the number in the name):
 *   void TILE_r(size_t nv, size_t K, const float *A, size_t lda, const float *Wp, size_t ldp,
 *               float *C, size_t ldc, size_t rem, int acc, const float *c0, size_t ldc0)
 * r rows x nv vectors of C = [C +] A Wp over K, or with c0 (not NULL) every row's chains
 * started from c0's row instead (row r at c0 + r ldc0; ldc0 = 0: one row vector for all; C
 * not read); rem: the columns of the last vector
 * that exist in C (1 .. the vector's width; the others are the packing's zero columns:
 * computed, never stored). WT_PANEL(NAME, TARGET, TILE, KSLICE) defines
 *   void NAME(size_t mr, size_t nv, size_t rem, size_t N, size_t K, const float *A,
 *             size_t lda, const float *Wp, size_t ldp, float *C, int acc, const float *c0,
 *             size_t ldc0)
 * rows [0, mr) of an epilogue block, one panel of nv vectors (Wp and C at its first column):
 * k in slices of KSLICE outer, tiles of 6 rows (the last ones smaller) inner, so that a slice
 * of the panel of the packed weight stays near the core while the block's tiles pass over it
 * (a 512 x 512 weight does not fit in the second-level cache). A slice's chains continue from
 * the values the previous one stored (float stores are exact: the same chains). A macro, not
 * a function taking the tiles: the version's target lets the compiler inline its tiles. c0 (the
 * start values at the panel's first column, row stride ldc0, or NULL) starts the first slice's
 * chains. */
/* DEF(1) .. DEF(6): the tiles of a version. */
#define WT_ROWS_1_TO_6(DEF) DEF(1) DEF(2) DEF(3) DEF(4) DEF(5) DEF(6)
#define WT_PANEL(NAME, TARGET, TILE, KSLICE)                                                      \
    __attribute__((target(TARGET))) static void NAME(                                            \
        size_t mr, size_t nv, size_t rem, size_t N, size_t K, const float *A, size_t lda,        \
        const float *Wp, size_t ldp, float *C, int acc, const float *c0, size_t ldc0)             \
    {                                                                                             \
        for (size_t k0 = 0; k0 == 0 || k0 < K; k0 += KSLICE) {                                    \
            size_t kc = K - k0 < KSLICE ? K - k0 : KSLICE;                                        \
            const float *w = Wp + k0 * ldp, *i0 = k0 == 0 ? c0 : NULL;                            \
            size_t l0 = ldc0;                                                                     \
            int ac = acc || k0 > 0;                                                               \
            for (size_t i = 0; i < mr; i += 6) {                                                  \
                const float *a = A + i * lda + k0, *s0 = i0 != NULL ? i0 + i * l0 : NULL;         \
                float *c = C + i * N;                                                             \
                switch (mr - i < 6 ? mr - i : 6) {                                                \
                case 1: TILE##_1(nv, kc, a, lda, w, ldp, c, N, rem, ac, s0, l0); break;           \
                case 2: TILE##_2(nv, kc, a, lda, w, ldp, c, N, rem, ac, s0, l0); break;           \
                case 3: TILE##_3(nv, kc, a, lda, w, ldp, c, N, rem, ac, s0, l0); break;           \
                case 4: TILE##_4(nv, kc, a, lda, w, ldp, c, N, rem, ac, s0, l0); break;           \
                case 5: TILE##_5(nv, kc, a, lda, w, ldp, c, N, rem, ac, s0, l0); break;           \
                default: TILE##_6(nv, kc, a, lda, w, ldp, c, N, rem, ac, s0, l0); break;          \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
    }
#endif

#if WT_AVX512
/* mr rows x nv vectors of C = [C +] A Wp, or c0 + A Wp (c0 not NULL: row r at c0 + r ldc0, one
 * row vector loaded once for ldc0 = 0); `last`:
 * the lanes of the last vector that exist in C (the others are the packing's zero columns:
 * computed, never stored). */
__attribute__((target("avx512f"), always_inline)) static inline void
tile512(size_t mr, size_t nv, size_t K, const float *A, size_t lda, const float *Wp, size_t ldp,
        float *C, size_t ldc, __mmask16 last, int acc, const float *c0, size_t ldc0)
{
    __m512 c[WT_MR][WT_NV];
    if (c0 != NULL && ldc0 != 0) {
#pragma GCC unroll 6
        for (size_t r = 0; r < mr; r++)
#pragma GCC unroll 4
            for (size_t v = 0; v < nv; v++)
                c[r][v] = _mm512_maskz_loadu_ps(v + 1 < nv ? (__mmask16)0xFFFF : last,
                                                c0 + r * ldc0 + 16 * v);
    } else if (c0 != NULL) {
#pragma GCC unroll 4
        for (size_t v = 0; v < nv; v++) {
            __m512 s = _mm512_maskz_loadu_ps(v + 1 < nv ? (__mmask16)0xFFFF : last, c0 + 16 * v);
#pragma GCC unroll 6
            for (size_t r = 0; r < mr; r++)
                c[r][v] = s;
        }
    } else {
#pragma GCC unroll 6
        for (size_t r = 0; r < mr; r++)
#pragma GCC unroll 4
            for (size_t v = 0; v < nv; v++)
                c[r][v] = acc ? _mm512_maskz_loadu_ps(v + 1 < nv ? (__mmask16)0xFFFF : last,
                                                      C + r * ldc + 16 * v)
                              : _mm512_setzero_ps();
    }
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

/* One tile (see WT_PANEL) with nv a constant (1 .. WT_NV) for the compiler. */
#define WT_TILE_NV(MR)                                                                            \
    __attribute__((target("avx512f"))) static void tile512_##MR(                                 \
        size_t nv, size_t K, const float *A, size_t lda, const float *Wp, size_t ldp, float *C,  \
        size_t ldc, size_t rem, int acc, const float *c0, size_t ldc0)                            \
    {                                                                                             \
        __mmask16 last = rem >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << rem) - 1u);          \
        switch (nv) {                                                                             \
        case 1: tile512(MR, 1, K, A, lda, Wp, ldp, C, ldc, last, acc, c0, ldc0); break;           \
        case 2: tile512(MR, 2, K, A, lda, Wp, ldp, C, ldc, last, acc, c0, ldc0); break;           \
        case 3: tile512(MR, 3, K, A, lda, Wp, ldp, C, ldc, last, acc, c0, ldc0); break;           \
        default: tile512(MR, 4, K, A, lda, Wp, ldp, C, ldc, last, acc, c0, ldc0); break;          \
        }                                                                                         \
    }
WT_ROWS_1_TO_6(WT_TILE_NV)
#undef WT_TILE_NV
WT_PANEL(panel512, "avx512f", tile512, WT_KC)

/* Rows [0, mr) of an epilogue block (mr <= WT_EPI), every column: panels of WT_NV vectors
 * (the last one narrower) outer, each in k slices of WT_KC with tiles of WT_MR rows inner
 * (panel512); c0: the start values (row stride ldc0; 0: one row vector), or NULL. */
__attribute__((target("avx512f"))) static void block512(size_t mr, size_t N, size_t K,
                                                       const float *A, size_t lda,
                                                       const float *Wp, float *C, int acc,
                                                       const float *c0, size_t ldc0)
{
    size_t ldp = score__gemm_wt_ld(N);
    for (size_t n0 = 0; n0 < N; n0 += WT_PW) {
        size_t nc = N - n0 < WT_PW ? N - n0 : WT_PW, nv = (nc + 15) / 16;
        panel512(mr, nv, nc - 16 * (nv - 1), N, K, A, lda, Wp + n0 * K, wt_panel_width(ldp, n0),
                 C + n0, acc, c0 != NULL ? c0 + n0 : NULL, ldc0);
    }
}
#endif /* WT_AVX512 */

#if WT_AVX2
/* mr rows x nv vectors of 8 columns of C = [C +] A Wp (Wp: a slice of a panel of the packed
 * weight, row stride ldp, every vector whole: no masks in the k loop); `last`: the lanes of
 * the last vector that exist in C (all bits set: lane used; the others are the packing's zero
 * columns: computed, never loaded from or stored to C); c0 (not NULL): the values every row's
 * chains start from instead of C or 0 (row r at c0 + r ldc0; ldc0 = 0: one row vector). */
__attribute__((target("avx2,fma"), always_inline)) static inline void
tile256(size_t mr, size_t nv, size_t K, const float *A, size_t lda, const float *Wp, size_t ldp,
        float *C, size_t ldc, __m256i last, int acc, const float *c0, size_t ldc0)
{
    __m256 c[WT2_MR][WT2_NV];
    __m256i all = _mm256_set1_epi32(-1);
    if (c0 != NULL && ldc0 != 0) {
#pragma GCC unroll 6
        for (size_t r = 0; r < mr; r++)
#pragma GCC unroll 2
            for (size_t v = 0; v < nv; v++)
                c[r][v] = _mm256_maskload_ps(c0 + r * ldc0 + 8 * v, v + 1 < nv ? all : last);
    } else if (c0 != NULL) {
#pragma GCC unroll 2
        for (size_t v = 0; v < nv; v++) {
            __m256 s = _mm256_maskload_ps(c0 + 8 * v, v + 1 < nv ? all : last);
#pragma GCC unroll 6
            for (size_t r = 0; r < mr; r++)
                c[r][v] = s;
        }
    } else {
#pragma GCC unroll 6
        for (size_t r = 0; r < mr; r++)
#pragma GCC unroll 2
            for (size_t v = 0; v < nv; v++)
                c[r][v] = acc ? _mm256_maskload_ps(C + r * ldc + 8 * v, v + 1 < nv ? all : last)
                              : _mm256_setzero_ps();
    }
    /* unrolled: the loop's own instructions cost ~8% on 12 FMAs per k */
#pragma GCC unroll 4
    for (size_t k = 0; k < K; k++) {
        const float *b = Wp + k * ldp;
        __m256 w[WT2_NV];
#pragma GCC unroll 2
        for (size_t v = 0; v < nv; v++)
            w[v] = _mm256_loadu_ps(b + 8 * v);
#pragma GCC unroll 6
        for (size_t r = 0; r < mr; r++) {
            __m256 a = _mm256_broadcast_ss(A + r * lda + k);
#pragma GCC unroll 2
            for (size_t v = 0; v < nv; v++)
                c[r][v] = _mm256_fmadd_ps(a, w[v], c[r][v]);
        }
    }
#pragma GCC unroll 6
    for (size_t r = 0; r < mr; r++)
#pragma GCC unroll 2
        for (size_t v = 0; v < nv; v++) {
            if (v + 1 < nv)
                _mm256_storeu_ps(C + r * ldc + 8 * v, c[r][v]);
            else
                _mm256_maskstore_ps(C + r * ldc + 8 * v, last, c[r][v]);
        }
}

/* One AVX2 tile (see WT_PANEL) with nv a constant (1 or 2) for the compiler. */
#define WT2_TILE_NV(MR)                                                                           \
    __attribute__((target("avx2,fma"))) static void tile256_##MR(                                \
        size_t nv, size_t K, const float *A, size_t lda, const float *Wp, size_t ldp, float *C,  \
        size_t ldc, size_t rem, int acc, const float *c0, size_t ldc0)                            \
    {                                                                                             \
        __m256i last = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)rem),                            \
                                          _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));             \
        if (nv <= 1)                                                                              \
            tile256(MR, 1, K, A, lda, Wp, ldp, C, ldc, last, acc, c0, ldc0);                      \
        else                                                                                      \
            tile256(MR, 2, K, A, lda, Wp, ldp, C, ldc, last, acc, c0, ldc0);                      \
    }
WT_ROWS_1_TO_6(WT2_TILE_NV)
#undef WT2_TILE_NV
WT_PANEL(panel256, "avx2,fma", tile256, WT2_KC)

/* The AVX2 version of block512: rows [0, mr) of an epilogue block, every column, in panels of
 * WT2_NV vectors of 8 columns (only the vectors holding columns < N; the last one's padding
 * lanes are masked at the load and store of C only), k in slices of WT2_KC, tiles of WT2_MR
 * rows (the last ones smaller) inner; c0 as block512. */
__attribute__((target("avx2,fma"))) static void block256(size_t mr, size_t N, size_t K,
                                                        const float *A, size_t lda,
                                                        const float *Wp, float *C, int acc,
                                                        const float *c0, size_t ldc0)
{
    size_t ldp = score__gemm_wt_ld(N), nvec = (N + 7) / 8;
    for (size_t v0 = 0; v0 < nvec; v0 += WT2_NV) {
        size_t nv = nvec - v0 < WT2_NV ? nvec - v0 : WT2_NV;
        size_t rem = v0 + nv < nvec ? 8 : N - 8 * (nvec - 1);
        size_t n0 = 8 * v0, p0 = n0 / WT_PW * WT_PW;
        panel256(mr, nv, rem, N, K, A, lda, Wp + p0 * K + (n0 - p0), wt_panel_width(ldp, p0),
                 C + n0, acc, c0 != NULL ? c0 + n0 : NULL, ldc0);
    }
}
#endif /* WT_AVX2 */

#if WT_AVX512
/* Rows [0, mr) (mr <= WT_SMALL_MR) of the unpacked product: per 16 columns, the accumulators of
 * the mr rows in registers over k, W read in 16 x 16 blocks transposed in registers. */
__attribute__((target("avx512f"), always_inline)) static inline void
small512_body(size_t mr, size_t N, size_t K, const float *A, size_t lda, const float *W,
              size_t ldw, float *C, int acc)
{
    for (size_t n0 = 0; n0 < N; n0 += 16) {
        size_t nc = N - n0 < 16 ? N - n0 : 16;
        __mmask16 mn = nc >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nc) - 1u);
        __m512 c[WT_SMALL_MR];
#pragma GCC unroll 8
        for (size_t r = 0; r < mr; r++)
            c[r] = acc ? _mm512_maskz_loadu_ps(mn, C + r * N + n0) : _mm512_setzero_ps();
        for (size_t k0 = 0; k0 < K; k0 += 16) {
            size_t kc = K - k0 < 16 ? K - k0 : 16;
            __m512 w[16];
            load_t16(W, ldw, n0, nc, k0, kc, w);
            for (size_t kk = 0; kk < kc; kk++)
#pragma GCC unroll 8
                for (size_t r = 0; r < mr; r++)
                    c[r] = _mm512_fmadd_ps(_mm512_set1_ps(A[r * lda + k0 + kk]), w[kk], c[r]);
        }
#pragma GCC unroll 8
        for (size_t r = 0; r < mr; r++)
            _mm512_mask_storeu_ps(C + r * N + n0, mn, c[r]);
    }
}

/* small512_body with mr a constant for the compiler (the accumulators in registers). */
__attribute__((target("avx512f"))) static void small512(size_t mr, size_t N, size_t K,
                                                       const float *A, size_t lda,
                                                       const float *W, size_t ldw, float *C,
                                                       int acc)
{
    switch (mr) {
    case 1: small512_body(1, N, K, A, lda, W, ldw, C, acc); break;
    case 2: small512_body(2, N, K, A, lda, W, ldw, C, acc); break;
    case 3: small512_body(3, N, K, A, lda, W, ldw, C, acc); break;
    case 4: small512_body(4, N, K, A, lda, W, ldw, C, acc); break;
    case 5: small512_body(5, N, K, A, lda, W, ldw, C, acc); break;
    case 6: small512_body(6, N, K, A, lda, W, ldw, C, acc); break;
    case 7: small512_body(7, N, K, A, lda, W, ldw, C, acc); break;
    default: small512_body(8, N, K, A, lda, W, ldw, C, acc); break;
    }
}
#endif

int score__gemm_wt_small_at(int level, size_t M, size_t N, size_t K, const float *A,
                            size_t lda, const float *W, size_t ldw, float *C, int acc,
                            const float *bias, int act, const float *res)
{
#if WT_AVX512
    if (level >= 2 && M <= WT_SMALL) {
        if (M == 0 || N == 0)
            return 1;
        for (size_t m = 0; m < M; m += WT_SMALL_MR)
            small512(M - m < WT_SMALL_MR ? M - m : WT_SMALL_MR, N, K, A + m * lda, lda, W, ldw,
                     C + m * N, acc);
        if (bias != NULL || res != NULL || act != SCORE__ACT_IDENTITY)
            score__bias_act_inplace(M, N, C, bias, act, res, NULL);
        return 1;
    }
#else
    (void)level, (void)M, (void)N, (void)K, (void)A, (void)lda, (void)W, (void)ldw, (void)C;
    (void)acc, (void)bias, (void)act, (void)res;
#endif
    return 0;
}

int score__gemm_wt_small(size_t M, size_t N, size_t K, const float *A, size_t lda,
                         const float *W, size_t ldw, float *C, int acc, const float *bias,
                         int act, const float *res)
{
    return score__gemm_wt_small_at(score__gemm_wt_level(), M, N, K, A, lda, W, ldw, C, acc, bias,
                                   act, res);
}

/* The portable score__fold_bias: four outputs at a time (independent sums, the same
 * arithmetic per output). */
static void fold_portable(size_t N, size_t K, const float *W, size_t ldw, const float *b,
                          const float *e, float *out)
{
    size_t j = 0;
    for (; j + 4 <= N; j += 4) {
        const float *w0 = W + j * ldw, *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw;
        double a0 = (double)b[j], a1 = (double)b[j + 1], a2 = (double)b[j + 2];
        double a3 = (double)b[j + 3];
        for (size_t i = 0; i < K; i++) {
            double ei = (double)e[i];
            a0 += (double)w0[i] * ei;
            a1 += (double)w1[i] * ei;
            a2 += (double)w2[i] * ei;
            a3 += (double)w3[i] * ei;
        }
        out[j] = (float)a0;
        out[j + 1] = (float)a1;
        out[j + 2] = (float)a2;
        out[j + 3] = (float)a3;
    }
    for (; j < N; j++) {
        const float *wr = W + j * ldw;
        double acc = (double)b[j];
        for (size_t i = 0; i < K; i++)
            acc += (double)wr[i] * (double)e[i];
        out[j] = (float)acc;
    }
}

#if WT_AVX512
/* The AVX-512 score__fold_bias: 16 outputs in the lanes of two vectors of doubles; W read in
 * 16 x 16 blocks (16 outputs x 16 terms) transposed in registers, so that a vector holds one
 * term i of 16 outputs; each output's sum is the portable one (exact product of two floats in
 * double, one rounded addition per term, in i order). */
__attribute__((target("avx512f"))) static void fold512(size_t N, size_t K, const float *W,
                                                      size_t ldw, const float *b,
                                                      const float *e, float *out)
{
    for (size_t j0 = 0; j0 < N; j0 += 16) {
        size_t nj = N - j0 < 16 ? N - j0 : 16;
        __mmask16 mj = nj >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nj) - 1u);
        __m512 bj = _mm512_maskz_loadu_ps(mj, b + j0);
        __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(bj));
        __m512d hi = _mm512_cvtps_pd(
            _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(bj), 1)));
        for (size_t k0 = 0; k0 < K; k0 += 16) {
            size_t kc = K - k0 < 16 ? K - k0 : 16;
            __m512 w[16];
            load_t16(W, ldw, j0, nj, k0, kc, w);
            for (size_t kk = 0; kk < kc; kk++) {
                __m512d ei = _mm512_set1_pd((double)e[k0 + kk]);
                __m512d wl = _mm512_cvtps_pd(_mm512_castps512_ps256(w[kk]));
                __m512d wh = _mm512_cvtps_pd(
                    _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(w[kk]), 1)));
                lo = _mm512_add_pd(lo, _mm512_mul_pd(wl, ei));
                hi = _mm512_add_pd(hi, _mm512_mul_pd(wh, ei));
            }
        }
        _mm512_mask_storeu_ps(
            out + j0, mj,
            _mm512_castpd_ps(_mm512_insertf64x4(
                _mm512_castps_pd(_mm512_castps256_ps512(_mm512_cvtpd_ps(lo))),
                _mm256_castps_pd(_mm512_cvtpd_ps(hi)), 1)));
    }
}
#endif

#if WT_AVX2
/* The AVX2 score__fold_bias: fold512 with 8 outputs in two vectors of 4 doubles and 8 x 8
 * blocks of W (masked loads, nothing outside W's rows and the K terms read) transposed in
 * registers (unpack and shuffle within 128-bit lanes, then the lanes across registers). */
__attribute__((target("avx2,fma"))) static void fold256(size_t N, size_t K, const float *W,
                                                       size_t ldw, const float *b,
                                                       const float *e, float *out)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (size_t j0 = 0; j0 < N; j0 += 8) {
        size_t nj = N - j0 < 8 ? N - j0 : 8;
        __m256i mj = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)nj), idx);
        __m256 bj = _mm256_maskload_ps(b + j0, mj);
        __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(bj));
        __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(bj, 1));
        for (size_t k0 = 0; k0 < K; k0 += 8) {
            size_t kc = K - k0 < 8 ? K - k0 : 8;
            __m256i mk = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)kc), idx);
            __m256 w[8], t[8], u[8];
            for (size_t j = 0; j < 8; j++)
                w[j] = j < nj ? _mm256_maskload_ps(W + (j0 + j) * ldw + k0, mk)
                              : _mm256_setzero_ps();
            SCORE__T_LANES4(_mm256, 8, w, t, u);
            /* u[4 i + j], 128-bit lane l: rows 4 i .. 4 i + 3 of column 4 l + j */
            for (int j = 0; j < 4; j++) {
                w[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
                w[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
            }
            for (size_t kk = 0; kk < kc; kk++) {
                __m256d ei = _mm256_set1_pd((double)e[k0 + kk]);
                __m256d wl = _mm256_cvtps_pd(_mm256_castps256_ps128(w[kk]));
                __m256d wh = _mm256_cvtps_pd(_mm256_extractf128_ps(w[kk], 1));
                lo = _mm256_add_pd(lo, _mm256_mul_pd(wl, ei));
                hi = _mm256_add_pd(hi, _mm256_mul_pd(wh, ei));
            }
        }
        _mm256_maskstore_ps(out + j0, mj,
                            _mm256_insertf128_ps(_mm256_castps128_ps256(_mm256_cvtpd_ps(lo)),
                                                 _mm256_cvtpd_ps(hi), 1));
    }
}
#endif

void score__fold_bias_at(int level, size_t N, size_t K, const float *W, size_t ldw,
                         const float *b, const float *e, float *out)
{
#if WT_AVX512
    if (level >= 2) {
        fold512(N, K, W, ldw, b, e, out);
        return;
    }
#endif
#if WT_AVX2
    if (level >= 1) {
        fold256(N, K, W, ldw, b, e, out);
        return;
    }
#endif
    (void)level;
    fold_portable(N, K, W, ldw, b, e, out);
}

void score__fold_bias(size_t N, size_t K, const float *W, size_t ldw, const float *b,
                      const float *e, float *out)
{
    score__fold_bias_at(score__gemm_wt_level(), N, K, W, ldw, b, e, out);
}

int score__gemm_wt_level(void)
{
    return score__gemm_cols_level();
}

/* score__gemm_wt_at and score__gemm_wt_from_at: c0 NULL, or the values that start the chains
 * (row m at c0 + m ldc0; the portable version copies them into the block's rows first: the same
 * chains). */
static void gemm_wt_run(int level, size_t M, size_t N, size_t K, const float *A, size_t lda,
                        const float *Wp, float *C, int acc, const float *c0, size_t ldc0,
                        const float *bias, int act, const float *res, float *d1)
{
    int epi = bias != NULL || res != NULL || act != SCORE__ACT_IDENTITY || d1 != NULL;
    if (M == 0 || N == 0)
        return;
    for (size_t m = 0; m < M; m += WT_EPI) {
        size_t mr = M - m < WT_EPI ? M - m : WT_EPI;
        const float *a = A + m * lda, *s0 = c0 != NULL ? c0 + m * ldc0 : NULL;
        float *c = C + m * N;
#if WT_AVX512
        if (level >= 2)
            block512(mr, N, K, a, lda, Wp, c, acc, s0, ldc0);
        else
#endif
#if WT_AVX2
        if (level >= 1)
            block256(mr, N, K, a, lda, Wp, c, acc, s0, ldc0);
        else
#endif
        {
            if (s0 != NULL)
                for (size_t r = 0; r < mr; r++)
                    memcpy(c + r * N, s0 + r * ldc0, N * sizeof *c);
            for (size_t n0 = 0; n0 < N; n0 += WT_PW)
                score__gemm_cols_at(level, mr, N - n0 < WT_PW ? N - n0 : WT_PW, K, a, lda,
                                    Wp + n0 * K, wt_panel_width(score__gemm_wt_ld(N), n0),
                                    c + n0, N, acc || c0 != NULL);
        }
        if (epi)
            score__bias_act_inplace(mr, N, c, bias, act, res != NULL ? res + m * N : NULL,
                                    d1 != NULL ? d1 + m * N : NULL);
    }
}

void score__gemm_wt_at(int level, size_t M, size_t N, size_t K, const float *A, size_t lda,
                       const float *Wp, float *C, int acc, const float *bias, int act,
                       const float *res, float *d1)
{
    gemm_wt_run(level, M, N, K, A, lda, Wp, C, acc, NULL, 0, bias, act, res, d1);
}

void score__gemm_wt_from_at(int level, size_t M, size_t N, size_t K, const float *A,
                            size_t lda, const float *Wp, float *C, const float *c0, size_t ldc0,
                            const float *bias, int act, const float *res)
{
    gemm_wt_run(level, M, N, K, A, lda, Wp, C, 0, c0, ldc0, bias, act, res, NULL);
}

void score__gemm_wt_from(size_t M, size_t N, size_t K, const float *A, size_t lda,
                         const float *Wp, float *C, const float *c0, size_t ldc0,
                         const float *bias, int act, const float *res)
{
    gemm_wt_run(score__gemm_wt_level(), M, N, K, A, lda, Wp, C, 0, c0, ldc0, bias, act, res,
                NULL);
}

void score__gemm_wt(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *Wp,
                    float *C, int acc, const float *bias, int act, const float *res)
{
    score__gemm_wt_at(score__gemm_wt_level(), M, N, K, A, lda, Wp, C, acc, bias, act, res, NULL);
}

void score__gemm_wt_d1(size_t M, size_t N, size_t K, const float *A, size_t lda,
                       const float *Wp, float *C, int acc, const float *bias, int act,
                       const float *res, float *d1)
{
    score__gemm_wt_at(score__gemm_wt_level(), M, N, K, A, lda, Wp, C, acc, bias, act, res, d1);
}
