/* Register transpositions shared by the kernel layer's vector versions (gemm-wt.c, conv3.c,
 * conv3-wgrad.c).
 * Include after <immintrin.h>, in a file whose x86 versions are compiled (GCC on x86-64); the
 * functions carry their own target attributes. Internal: not part of the ABI. */
#ifndef SCORE_KERNEL_SIMD_PRIV_H
#define SCORE_KERNEL_SIMD_PRIV_H

/* The first steps of an NR x NR transposition (NR = 8 or 16) of the rows r[0 .. NR - 1] (P:
 * _mm256 or _mm512): 4 x 4 blocks transposed within the 128-bit lanes, so that u[4 g + j]'s
 * 128-bit lane q holds column 4 q + j of the rows 4 g .. 4 g + 3 (t: scratch of NR vectors). */
#define SCORE__T_LANES4(P, NR, r, t, u)                                                      \
    do {                                                                                     \
        for (int i_ = 0; i_ < (NR) / 2; i_++) { /* (a0 b0 a1 b1), (a2 b2 a3 b3) */          \
            (t)[2 * i_] = P##_unpacklo_ps((r)[2 * i_], (r)[2 * i_ + 1]);                     \
            (t)[2 * i_ + 1] = P##_unpackhi_ps((r)[2 * i_], (r)[2 * i_ + 1]);                 \
        }                                                                                    \
        for (int g_ = 0; g_ < (NR) / 4; g_++) {                                              \
            (u)[4 * g_] = P##_shuffle_ps((t)[4 * g_], (t)[4 * g_ + 2], 0x44);                \
            (u)[4 * g_ + 1] = P##_shuffle_ps((t)[4 * g_], (t)[4 * g_ + 2], 0xEE);            \
            (u)[4 * g_ + 2] = P##_shuffle_ps((t)[4 * g_ + 1], (t)[4 * g_ + 3], 0x44);        \
            (u)[4 * g_ + 3] = P##_shuffle_ps((t)[4 * g_ + 1], (t)[4 * g_ + 3], 0xEE);        \
        }                                                                                    \
    } while (0)

/* out[k] lane j = r[j] lane k for j, k < 16: a 16 x 16 transposition in registers (4 x 4 blocks
 * within the 128-bit lanes, then the 128-bit lanes across the vectors). out may be r. */
__attribute__((target("avx512f"), always_inline)) static inline void
score__transpose16_regs(const __m512 *r, __m512 *out)
{
    __m512 t[16], u[16];
    SCORE__T_LANES4(_mm512, 16, r, t, u);
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) { /* out[4 q + j]: the lanes q of u[j], u[4 + j], .. */
        __m512 a0 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x44);
        __m512 a1 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xEE);
        __m512 a2 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x44);
        __m512 a3 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xEE);
        out[j] = _mm512_shuffle_f32x4(a0, a2, 0x88);
        out[4 + j] = _mm512_shuffle_f32x4(a0, a2, 0xDD);
        out[8 + j] = _mm512_shuffle_f32x4(a1, a3, 0x88);
        out[12 + j] = _mm512_shuffle_f32x4(a1, a3, 0xDD);
    }
}

/* out[k] lane j = r[j] lane k for j, k < 8: an 8 x 8 transposition in registers (4 x 4 blocks
 * within the 128-bit lanes, then the 128-bit lanes across the vectors). out must not be r. */
__attribute__((target("avx2,fma"), always_inline)) static inline void
score__transpose8_regs(const __m256 *r, __m256 *out)
{
    __m256 t[8], u[8];
    SCORE__T_LANES4(_mm256, 8, r, t, u);
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        out[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
        out[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
    }
}

#endif
