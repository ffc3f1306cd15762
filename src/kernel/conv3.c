/* Direct 3x3 convolutions (stride 1, zero padding 1) of NCHW images: the forward product, the
 * input gradient (the forward with the weight read transposed and tap-flipped) and the weight
 * gradient read the shifted input planes in place, with no im2col matrix (kernel-priv.h gives
 * each one's order of operations).
 *
 * A tap t = 3 (dy + 1) + (dx + 1) (dy, dx in -1 .. 1) of pixel p = (py, px) reads the plane at
 * p + dy * w + dx when (py + dy, px + dx) is inside the plane, else a zero. The vector versions
 * load a vector of pixels of the plane shifted by dy * w + dx with a lane mask per (tap, vector
 * position): masked-off lanes read nothing (no fault even outside the buffer) and give +0, as
 * the padding of an im2col matrix does.
 *
 * Three versions with the same arithmetic (AVX-512, AVX2 with FMA, portable C with fmaf), picked
 * as score__gemm_cols picks its version; planes of more than SCORE__CONV3_MAX_HW pixels always
 * use the portable one (the same bits, slower). The AVX-512 and AVX2 forwards have tiles
 * specialised for the U-Net's 8 x 8 and 4 x 4 planes and for each weight layout (shifts, masks
 * and weight offsets are constants: no address arithmetic or mask loads in the inner loop). The
 * weight gradient (score__conv3_wgrad) is in conv3-wgrad.c. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernel-priv.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__) && SCORE__SIMD_LEVEL >= 1
#define CONV_X86 1
#include <immintrin.h>

#include "simd-priv.h"
#else
#define CONV_X86 0
#endif

/* Pixels of a mask vector: masks are computed for 16 lanes (the AVX2 versions use halves). */
#define LANES 16
#define MAX_VEC (SCORE__CONV3_MAX_HW / LANES)

/* ---- Portable version -------------------------------------------------------------------- */

/* Whether tap t of pixel (py, px) reads inside an h x w plane. */
static int tap_inside(size_t h, size_t w, size_t py, size_t px, size_t t)
{
    size_t ry = py + t / 3, rx = px + t % 3; /* the input position + 1 */
    return ry >= 1 && ry <= h && rx >= 1 && rx <= w;
}

/* Offset of tap t's input from its pixel: dy * w + dx. */
static ptrdiff_t tap_shift(size_t w, size_t t)
{
    return ((ptrdiff_t)(t / 3) - 1) * (ptrdiff_t)w + ((ptrdiff_t)(t % 3) - 1);
}

/* Where the convolution's weights are: output channel r, input channel c, tap t at
 * wt[r * rs + c * cs + toff[t]]. The forward reads [co, ci, 3, 3] (rs = 9 ci, cs = 9, toff[t]
 * = t); the input gradient the transposed, tap-flipped weight in place (rs = 9, cs = 9 ci of the
 * forward, toff[t] = 8 - t). */
typedef struct wlayout {
    const float *wt;
    size_t rs, cs;
    ptrdiff_t toff[9];
    int flip; /* 0: the forward's layout, 1: the input gradient's */
} wlayout;

/* Output plane by output plane, k = (input channel, tap) outer: the plane holds the running
 * sums (float stores are exact, so this is the fma chain of each element). */
static void fwd_portable(size_t n, size_t ci, size_t co, size_t h, size_t w, const wlayout *L,
                         const float *b, const float *x, float *y, int acc)
{
    size_t hw = h * w;
    for (size_t i = 0; i < n; i++)
        for (size_t o = 0; o < co; o++) {
            float *yo = y + (i * co + o) * hw;
            if (!acc)
                for (size_t p = 0; p < hw; p++)
                    yo[p] = 0.0f;
            for (size_t c = 0; c < ci; c++) {
                const float *xc = x + (i * ci + c) * hw;
                for (size_t t = 0; t < 9; t++) {
                    float a = L->wt[o * L->rs + c * L->cs + L->toff[t]];
                    ptrdiff_t s = tap_shift(w, t);
                    for (size_t p = 0; p < hw; p++) {
                        float v = tap_inside(h, w, p / w, p % w, t) ? xc[(ptrdiff_t)p + s]
                                                                    : 0.0f;
                        yo[p] = fmaf(a, v, yo[p]);
                    }
                }
            }
            if (b != NULL)
                for (size_t p = 0; p < hw; p++)
                    yo[p] = yo[p] + b[o];
        }
}

#if CONV_X86

/* Lane masks of the plane's 16-pixel vectors: m[q * 10 + t] (t < 9) has bit l set when pixel
 * q * 16 + l exists and tap t reads inside the plane; m[q * 10 + 9] when the pixel exists. */
static void vec_masks(size_t h, size_t w, size_t nv, uint16_t *m)
{
    size_t hw = h * w;
    for (size_t q = 0; q < nv; q++)
        for (size_t l = 0; l < LANES; l++) {
            size_t p = q * LANES + l;
            if (l == 0)
                for (size_t t = 0; t < 10; t++)
                    m[q * 10 + t] = 0;
            if (p >= hw)
                continue;
            m[q * 10 + 9] |= (uint16_t)(1u << l);
            for (size_t t = 0; t < 9; t++)
                if (tap_inside(h, w, p / w, p % w, t))
                    m[q * 10 + t] |= (uint16_t)(1u << l);
        }
}

/* Lane mask of tap t (dy = t / 3 - 1, dx = t % 3 - 1) for vector v of a pw x pw plane, pw = 8
 * (vector v: rows 2 v and 2 v + 1) or 4 (one vector: the plane); vec_masks' bits, a constant
 * once inlined with constant arguments. */
static inline unsigned plane_mask(size_t pw, size_t t, size_t v)
{
    size_t dy = t / 3, dx = t % 3;
    unsigned col = dx == 0 ? (pw == 8 ? 0xFEFEu : 0xEEEEu)
                           : dx == 2 ? (pw == 8 ? 0x7F7Fu : 0x7777u) : 0xFFFFu;
    unsigned row = 0xFFFFu;
    if (dy == 0 && (pw == 4 || v == 0))
        row = pw == 8 ? 0xFF00u : 0xFFF0u;
    if (dy == 2 && (pw == 4 || v == 3))
        row = pw == 8 ? 0x00FFu : 0x0FFFu;
    return col & row;
}

/* ---- AVX-512 ----------------------------------------------------------------------------- */
#if SCORE__SIMD_LEVEL >= 2

/* Rows and vectors of a forward tile: 6 x 4 accumulators. */
#define FR512 6
#define FV512 4

/* mr output channels (the layout L, from wt) x nv vectors of pixels: vector v reads the
 * input planes at xb[v] (+ c * hw + shift) and writes the output planes at yb[v] (+ r * hw);
 * mk[t * FV512 + v]: its tap masks, ms[v]: its pixels. */
__attribute__((target("avx512f"), always_inline)) static inline void
fwd_tile512(size_t mr, size_t nv, size_t ci, size_t hw, const ptrdiff_t *sh, const float *wt,
            const wlayout *L, const float *const *xb, float *const *yb, size_t yo, const __mmask16 *mk,
            const __mmask16 *ms, const float *b, int acc)
{
    __m512 c[FR512][FV512];
#pragma GCC unroll 6
    for (size_t r = 0; r < mr; r++)
#pragma GCC unroll 4
        for (size_t v = 0; v < nv; v++)
            c[r][v] = acc ? _mm512_maskz_loadu_ps(ms[v], yb[v] + yo + r * hw) : _mm512_setzero_ps();
    for (size_t ch = 0; ch < ci; ch++) {
        const float *a = wt + ch * L->cs;
#pragma GCC unroll 9
        for (size_t t = 0; t < 9; t++) {
            __m512 bv[FV512];
#pragma GCC unroll 4
            for (size_t v = 0; v < nv; v++)
                bv[v] = _mm512_maskz_loadu_ps(mk[t * FV512 + v], xb[v] + ch * hw + sh[t]);
#pragma GCC unroll 6
            for (size_t r = 0; r < mr; r++) {
                __m512 av = _mm512_set1_ps(a[r * L->rs + L->toff[t]]);
#pragma GCC unroll 4
                for (size_t v = 0; v < nv; v++)
                    c[r][v] = _mm512_fmadd_ps(av, bv[v], c[r][v]);
            }
        }
    }
#pragma GCC unroll 6
    for (size_t r = 0; r < mr; r++)
#pragma GCC unroll 4
        for (size_t v = 0; v < nv; v++) {
            __m512 out = c[r][v];
            if (b != NULL)
                out = _mm512_add_ps(out, _mm512_set1_ps(b[r]));
            _mm512_mask_storeu_ps(yb[v] + yo + r * hw, ms[v], out);
        }
}

#define FWD512_CASE(mr, nv)                                                                  \
    case (mr) * 8 + (nv):                                                                    \
        fwd_tile512(mr, nv, ci, hw, sh, L->wt + o0 * L->rs, L, xb, yb, o0 * hw, mk, ms,                    \
                    b != NULL ? b + o0 : NULL, acc);                                          \
        break;

/* Tiles of FV512 consecutive vectors of the images' pixel sequence (image by image, the
 * vectors of a plane in order; a tile may span images) x FR512 output channels: any plane. */
__attribute__((target("avx512f"))) static void
fwd_any512(size_t n, size_t ci, size_t co, size_t h, size_t w, const wlayout *L, const float *b,
           const float *x, float *y, int acc)
{
    size_t hw = h * w, nvp = (hw + LANES - 1) / LANES, total = n * nvp;
    uint16_t m[MAX_VEC * 10];
    ptrdiff_t sh[9];
    vec_masks(h, w, nvp, m);
    for (size_t t = 0; t < 9; t++)
        sh[t] = tap_shift(w, t);
    for (size_t j0 = 0; j0 < total; j0 += FV512) {
        size_t nv = total - j0 < FV512 ? total - j0 : FV512;
        const float *xb[FV512];
        float *yb[FV512];
        __mmask16 mk[9 * FV512], ms[FV512];
        for (size_t v = 0; v < nv; v++) {
            size_t i = (j0 + v) / nvp, q = (j0 + v) % nvp;
            xb[v] = x + i * ci * hw + q * LANES;
            yb[v] = y + i * co * hw + q * LANES;
            for (size_t t = 0; t < 9; t++)
                mk[t * FV512 + v] = (__mmask16)m[q * 10 + t];
            ms[v] = (__mmask16)m[q * 10 + 9];
        }
        for (size_t o0 = 0; o0 < co; o0 += FR512) {
            size_t mr = co - o0 < FR512 ? co - o0 : FR512;
            switch (mr * 8 + nv) {
                FWD512_CASE(1, 1) FWD512_CASE(1, 2) FWD512_CASE(1, 3) FWD512_CASE(1, 4)
                FWD512_CASE(2, 1) FWD512_CASE(2, 2) FWD512_CASE(2, 3) FWD512_CASE(2, 4)
                FWD512_CASE(3, 1) FWD512_CASE(3, 2) FWD512_CASE(3, 3) FWD512_CASE(3, 4)
                FWD512_CASE(4, 1) FWD512_CASE(4, 2) FWD512_CASE(4, 3) FWD512_CASE(4, 4)
                FWD512_CASE(5, 1) FWD512_CASE(5, 2) FWD512_CASE(5, 3) FWD512_CASE(5, 4)
                FWD512_CASE(6, 1) FWD512_CASE(6, 2) FWD512_CASE(6, 3) FWD512_CASE(6, 4)
            default:
                break;
            }
        }
    }
}

/* A load of the 16 floats at p under the lane mask m (all lanes: a plain load). */
__attribute__((target("avx512f"), always_inline)) static inline __m512
load_m512(unsigned m, const float *p)
{
    return m == 0xFFFFu ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps((__mmask16)m, p);
}

/* fwd_tile512 for FV512 vectors of pw x pw planes with the plane's shape and the weight's layout
 * known at compile time (the same operations in the same order): pw = 8, one image (vector v
 * at x + 16 v, y + 16 v); pw = 4, FV512 images (image v at x + v * xs, y + v * ys). flip = 0:
 * the forward's layout (row stride rs, channel stride 9, tap t at t); flip = 1: the input
 * gradient's (row stride 9, channel stride cs, tap t at 8 - t). Shifts and masks are immediates,
 * the weights a broadcast from a row pointer plus a constant. */
__attribute__((target("avx512f"), always_inline)) static inline void
fwd_plane512(size_t mr, size_t pw, int flip, size_t ci, size_t rs, size_t cs, const float *wt,
             const float *x, size_t xs, float *y, size_t ys, const float *b, int acc)
{
    size_t hw = pw * pw, rstride = flip ? 9 : rs, cstride = flip ? cs : 9;
    __m512 c[FR512][FV512];
    const float *xv[FV512];
    float *yv[FV512];
#pragma GCC unroll 4
    for (size_t v = 0; v < FV512; v++) {
        xv[v] = pw == 8 ? x + v * LANES : x + v * xs;
        yv[v] = pw == 8 ? y + v * LANES : y + v * ys;
    }
#pragma GCC unroll 6
    for (size_t r = 0; r < mr; r++)
#pragma GCC unroll 4
        for (size_t v = 0; v < FV512; v++)
            c[r][v] = acc ? _mm512_loadu_ps(yv[v] + r * hw) : _mm512_setzero_ps();
    for (size_t ch = 0; ch < ci; ch++) {
        const float *a = wt + ch * cstride;
        size_t rsv = rstride;
        if (!flip) /* opaque: the rows as a + r * rs in the channel, not 6 pointers (spills) */
            __asm__("" : "+r"(a), "+r"(rsv));
#pragma GCC unroll 9
        for (size_t t = 0; t < 9; t++) {
            ptrdiff_t sh = ((ptrdiff_t)(t / 3) - 1) * (ptrdiff_t)pw + ((ptrdiff_t)(t % 3) - 1);
            __m512 bv[FV512];
            const float *xt = xv[0] + ch * hw + sh;
            if (pw == 8) /* opaque: GCC would keep the same loads of other taps alive, and spill */
                __asm__("" : "+r"(xt));
#pragma GCC unroll 4
            for (size_t v = 0; v < FV512; v++)
                bv[v] = load_m512(plane_mask(pw, t, v), pw == 8 ? xt + v * LANES
                                                                : xv[v] + ch * hw + sh);
#pragma GCC unroll 6
            for (size_t r = 0; r < mr; r++) {
                __m512 av = _mm512_set1_ps(a[r * rsv + (flip ? 8 - t : t)]);
#pragma GCC unroll 4
                for (size_t v = 0; v < FV512; v++)
                    c[r][v] = _mm512_fmadd_ps(av, bv[v], c[r][v]);
            }
        }
    }
#pragma GCC unroll 6
    for (size_t r = 0; r < mr; r++)
#pragma GCC unroll 4
        for (size_t v = 0; v < FV512; v++) {
            __m512 out = c[r][v];
            if (b != NULL)
                out = _mm512_add_ps(out, _mm512_set1_ps(b[r]));
            _mm512_storeu_ps(yv[v] + r * hw, out);
        }
}

#define PLANE512_CASE(mr)                                                                    \
    case mr:                                                                                 \
        fwd_plane512(mr, pw, flip, ci, L->rs, L->cs, L->wt + o0 * L->rs, xj, ci * hw,        \
                     yj + o0 * hw, co * hw, b != NULL ? b + o0 : NULL, acc);                  \
        break;

/* The forward on pw x pw planes (pw = 8 or 4) with the layout flip (fwd_plane512): tiles of one
 * 8 x 8 image or of FV512 4 x 4 images x FR512 output channels; the images left over (4 x 4:
 * n % FV512) go to fwd_any512. */
__attribute__((target("avx512f"), always_inline)) static inline void
fwd_planes512(size_t pw, int flip, size_t n, size_t ci, size_t co, const wlayout *L,
              const float *b, const float *x, float *y, int acc)
{
    size_t hw = pw * pw, per = pw == 8 ? 1 : FV512, nt = n / per; /* images per tile, tiles */
    for (size_t j = 0; j < nt; j++) {
        const float *xj = x + j * per * ci * hw;
        float *yj = y + j * per * co * hw;
        for (size_t o0 = 0; o0 < co; o0 += FR512)
            switch (co - o0 < FR512 ? co - o0 : FR512) {
                PLANE512_CASE(1) PLANE512_CASE(2) PLANE512_CASE(3) PLANE512_CASE(4)
                PLANE512_CASE(5) PLANE512_CASE(6)
            default:
                break;
            }
    }
    if (nt * per < n)
        fwd_any512(n - nt * per, ci, co, pw, pw, L, b, x + nt * per * ci * hw,
                   y + nt * per * co * hw, acc);
}

/* fwd_planes512 instantiated as a function for one plane width and weight layout. */
#define PLANES512_FN(name, pw, flip)                                                         \
    __attribute__((target("avx512f"))) static void name(                                     \
        size_t n, size_t ci, size_t co, const wlayout *L, const float *b, const float *x,     \
        float *y, int acc)                                                                   \
    {                                                                                        \
        fwd_planes512(pw, flip, n, ci, co, L, b, x, y, acc);                                 \
    }

PLANES512_FN(fwd8_fwd512, 8, 0)
PLANES512_FN(fwd8_flip512, 8, 1)
PLANES512_FN(fwd4_fwd512, 4, 0)
PLANES512_FN(fwd4_flip512, 4, 1)

/* The AVX-512 forward: the 8 x 8 and 4 x 4 planes by their specialised tiles, others by
 * fwd_any512 (the same bits). */
__attribute__((target("avx512f"))) static void
fwd_avx512(size_t n, size_t ci, size_t co, size_t h, size_t w, const wlayout *L, const float *b,
           const float *x, float *y, int acc)
{
    if (h == 8 && w == 8)
        (L->flip ? fwd8_flip512 : fwd8_fwd512)(n, ci, co, L, b, x, y, acc);
    else if (h == 4 && w == 4)
        (L->flip ? fwd4_flip512 : fwd4_fwd512)(n, ci, co, L, b, x, y, acc);
    else
        fwd_any512(n, ci, co, h, w, L, b, x, y, acc);
}

#endif /* SCORE__SIMD_LEVEL >= 2 */

/* ---- AVX2 with FMA ----------------------------------------------------------------------- *
 * 8-lane vectors: vector j of a plane is the half j % 2 of the 16-pixel mask vector j / 2. */

#define FR256 6
#define FV256 2

/* All lanes of an 8-lane mask vector from 8 mask bits. */
__attribute__((target("avx2,fma"))) static __m256i mask_bits8(unsigned bits)
{
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32((int)bits), bit), bit);
}

__attribute__((target("avx2,fma"), always_inline)) static inline void
fwd_tile256(size_t mr, size_t nv, size_t ci, size_t hw, const ptrdiff_t *sh, const float *wt,
            const wlayout *L, const float *const *xb, float *const *yb, size_t yo, const __m256i *mk,
            const __m256i *ms, const float *b, int acc)
{
    __m256 c[FR256][FV256];
#pragma GCC unroll 6
    for (size_t r = 0; r < mr; r++)
#pragma GCC unroll 2
        for (size_t v = 0; v < nv; v++)
            c[r][v] = acc ? _mm256_maskload_ps(yb[v] + yo + r * hw, ms[v]) : _mm256_setzero_ps();
    for (size_t ch = 0; ch < ci; ch++) {
        const float *a = wt + ch * L->cs;
#pragma GCC unroll 9
        for (size_t t = 0; t < 9; t++) {
            __m256 bv[FV256];
#pragma GCC unroll 2
            for (size_t v = 0; v < nv; v++)
                bv[v] = _mm256_maskload_ps(xb[v] + ch * hw + sh[t], mk[t * FV256 + v]);
#pragma GCC unroll 6
            for (size_t r = 0; r < mr; r++) {
                __m256 av = _mm256_broadcast_ss(a + r * L->rs + L->toff[t]);
#pragma GCC unroll 2
                for (size_t v = 0; v < nv; v++)
                    c[r][v] = _mm256_fmadd_ps(av, bv[v], c[r][v]);
            }
        }
    }
#pragma GCC unroll 6
    for (size_t r = 0; r < mr; r++)
#pragma GCC unroll 2
        for (size_t v = 0; v < nv; v++) {
            __m256 out = c[r][v];
            if (b != NULL)
                out = _mm256_add_ps(out, _mm256_set1_ps(b[r]));
            _mm256_maskstore_ps(yb[v] + yo + r * hw, ms[v], out);
        }
}

#define FWD256_CASE(mr, nv)                                                                  \
    case (mr) * 8 + (nv):                                                                    \
        fwd_tile256(mr, nv, ci, hw, sh, L->wt + o0 * L->rs, L, xb, yb, o0 * hw, mk, ms,                    \
                    b != NULL ? b + o0 : NULL, acc);                                          \
        break;

/* As fwd_any512 with 8-lane vectors, FV256 of them x FR256 output channels per tile: any
 * plane. */
__attribute__((target("avx2,fma"))) static void
fwd_any256(size_t n, size_t ci, size_t co, size_t h, size_t w, const wlayout *L, const float *b,
         const float *x, float *y, int acc)
{
    size_t hw = h * w, nvp = (hw + 7) / 8, total = n * nvp;
    uint16_t m[MAX_VEC * 10];
    ptrdiff_t sh[9];
    vec_masks(h, w, (hw + LANES - 1) / LANES, m);
    for (size_t t = 0; t < 9; t++)
        sh[t] = tap_shift(w, t);
    for (size_t j0 = 0; j0 < total; j0 += FV256) {
        size_t nv = total - j0 < FV256 ? total - j0 : FV256;
        const float *xb[FV256];
        float *yb[FV256];
        __m256i mk[9 * FV256], ms[FV256];
        for (size_t v = 0; v < nv; v++) {
            size_t i = (j0 + v) / nvp, q = (j0 + v) % nvp;
            const uint16_t *mq = m + q / 2 * 10;
            unsigned half = (unsigned)(q % 2) * 8;
            xb[v] = x + i * ci * hw + q * 8;
            yb[v] = y + i * co * hw + q * 8;
            for (size_t t = 0; t < 9; t++)
                mk[t * FV256 + v] = mask_bits8((mq[t] >> half) & 0xFFu);
            ms[v] = mask_bits8((mq[9] >> half) & 0xFFu);
        }
        for (size_t o0 = 0; o0 < co; o0 += FR256) {
            size_t mr = co - o0 < FR256 ? co - o0 : FR256;
            switch (mr * 8 + nv) {
                FWD256_CASE(1, 1) FWD256_CASE(1, 2) FWD256_CASE(2, 1) FWD256_CASE(2, 2)
                FWD256_CASE(3, 1) FWD256_CASE(3, 2) FWD256_CASE(4, 1) FWD256_CASE(4, 2)
                FWD256_CASE(5, 1) FWD256_CASE(5, 2) FWD256_CASE(6, 1) FWD256_CASE(6, 2)
            default:
                break;
            }
        }
    }
}

/* Lane mask (8 bits) of tap t for the 8-lane vector j of a pw x pw plane (pw = 8: row j; pw = 4:
 * rows 2 j and 2 j + 1): the half j % 2 of plane_mask's vector j / 2. */
static inline unsigned plane_mask8(size_t pw, size_t t, size_t j)
{
    return (plane_mask(pw, t, j / 2) >> (j % 2 * 8)) & 0xFFu;
}

/* A load of the 8 floats at p under the 8-bit lane mask m: all lanes a plain load, none a zero
 * vector (what the masked load gives), others a masked load with a constant mask. */
__attribute__((target("avx2,fma"), always_inline)) static inline __m256
load_m256(unsigned m, const float *p)
{
    if (m == 0xFFu)
        return _mm256_loadu_ps(p);
    if (m == 0)
        return _mm256_setzero_ps();
    const __m256i mv = _mm256_setr_epi32(-(int)(m & 1), -(int)(m >> 1 & 1), -(int)(m >> 2 & 1),
                                         -(int)(m >> 3 & 1), -(int)(m >> 4 & 1),
                                         -(int)(m >> 5 & 1), -(int)(m >> 6 & 1),
                                         -(int)(m >> 7 & 1));
    return _mm256_maskload_ps(p, mv);
}

/* fwd_tile256 for the FV256 vectors at x + 8 v (input channel planes at + c * pw^2) and y + 8 v
 * (output planes at + r * pw^2) of pw x pw planes, shape, weight layout (fwd_plane512's flip,
 * rs, cs) and vector position known at compile time (the same operations in the same order):
 * pw = 8, the rows 2 k and 2 k + 1 of an image (k = 1 also stands for 2: the same masks);
 * pw = 4, k = 0, one image. Shifts and masks are constants, the weights a broadcast from a row
 * pointer plus a constant. */
__attribute__((target("avx2,fma"), always_inline)) static inline void
fwd_plane256(size_t mr, size_t pw, size_t k, int flip, size_t ci, size_t rs, size_t cs,
             const float *wt, const float *x, float *y, const float *b, int acc)
{
    size_t hw = pw * pw, rstride = flip ? 9 : rs, cstride = flip ? cs : 9;
    __m256 c[FR256][FV256];
#pragma GCC unroll 6
    for (size_t r = 0; r < mr; r++)
#pragma GCC unroll 2
        for (size_t v = 0; v < FV256; v++)
            c[r][v] = acc ? _mm256_loadu_ps(y + v * 8 + r * hw) : _mm256_setzero_ps();
    for (size_t ch = 0; ch < ci; ch++) {
        const float *a = wt + ch * cstride;
        size_t rsv = rstride;
        if (!flip) /* opaque: the rows as a + r * rs in the channel, not 6 pointers (spills) */
            __asm__("" : "+r"(a), "+r"(rsv));
#pragma GCC unroll 9
        for (size_t t = 0; t < 9; t++) {
            ptrdiff_t sh = ((ptrdiff_t)(t / 3) - 1) * (ptrdiff_t)pw + ((ptrdiff_t)(t % 3) - 1);
            const float *xt = x + ch * hw + sh;
            if (pw == 8) /* opaque: GCC would keep the same loads of other taps alive, and spill */
                __asm__("" : "+r"(xt));
            __m256 bv[FV256];
#pragma GCC unroll 2
            for (size_t v = 0; v < FV256; v++)
                bv[v] = load_m256(plane_mask8(pw, t, 2 * k + v), xt + v * 8);
#pragma GCC unroll 6
            for (size_t r = 0; r < mr; r++) {
                __m256 av = _mm256_broadcast_ss(a + r * rsv + (flip ? 8 - t : t));
#pragma GCC unroll 2
                for (size_t v = 0; v < FV256; v++)
                    c[r][v] = _mm256_fmadd_ps(av, bv[v], c[r][v]);
            }
        }
    }
#pragma GCC unroll 6
    for (size_t r = 0; r < mr; r++)
#pragma GCC unroll 2
        for (size_t v = 0; v < FV256; v++) {
            __m256 out = c[r][v];
            if (b != NULL)
                out = _mm256_add_ps(out, _mm256_set1_ps(b[r]));
            _mm256_storeu_ps(y + v * 8 + r * hw, out);
        }
}

#define PLANE256_CASE(mr)                                                                    \
    case mr:                                                                                 \
        fwd_plane256(mr, pw, k, flip, ci, L->rs, L->cs, L->wt + o0 * L->rs, xk,              \
                     yk + o0 * hw, b != NULL ? b + o0 : NULL, acc);                           \
        break;

/* The tiles of FR256 output channels at the vectors 2 k and 2 k + 1 (fwd_plane256's k) of the
 * planes at x and y (the image's first planes), for row pair kk (the same as k but for the
 * middle row pairs of an 8 x 8 plane). */
__attribute__((target("avx2,fma"), always_inline)) static inline void
fwd_pair256(size_t pw, size_t k, size_t kk, int flip, size_t ci, size_t co, const wlayout *L,
            const float *b, const float *x, float *y, int acc)
{
    size_t hw = pw * pw;
    const float *xk = x + kk * 16;
    float *yk = y + kk * 16;
    for (size_t o0 = 0; o0 < co; o0 += FR256)
        switch (co - o0 < FR256 ? co - o0 : FR256) {
            PLANE256_CASE(1) PLANE256_CASE(2) PLANE256_CASE(3) PLANE256_CASE(4)
            PLANE256_CASE(5) PLANE256_CASE(6)
        default:
            break;
        }
}

/* fwd_plane256's tiles as a function for one plane width (8 or 4) and weight layout: image by
 * image, its row pairs in order (8 x 8) or the plane (4 x 4), then FR256 output channels. */
#define PLANES256_FN(name, pw, flip)                                                         \
    __attribute__((target("avx2,fma"))) static void name(                                    \
        size_t n, size_t ci, size_t co, const wlayout *L, const float *b, const float *x,     \
        float *y, int acc)                                                                   \
    {                                                                                        \
        size_t hw = (pw) * (pw);                                                             \
        for (size_t i = 0; i < n; i++) {                                                     \
            const float *xi = x + i * ci * hw;                                               \
            float *yi = y + i * co * hw;                                                     \
            if ((pw) == 4) {                                                                 \
                fwd_pair256(pw, 0, 0, flip, ci, co, L, b, xi, yi, acc);                      \
                continue;                                                                    \
            }                                                                                \
            fwd_pair256(pw, 0, 0, flip, ci, co, L, b, xi, yi, acc);                          \
            fwd_pair256(pw, 1, 1, flip, ci, co, L, b, xi, yi, acc);                          \
            fwd_pair256(pw, 1, 2, flip, ci, co, L, b, xi, yi, acc);                          \
            fwd_pair256(pw, 3, 3, flip, ci, co, L, b, xi, yi, acc);                          \
        }                                                                                    \
    }

PLANES256_FN(fwd8_fwd256, 8, 0)
PLANES256_FN(fwd8_flip256, 8, 1)
PLANES256_FN(fwd4_fwd256, 4, 0)
PLANES256_FN(fwd4_flip256, 4, 1)

/* The AVX2 forward: the 8 x 8 and 4 x 4 planes by their specialised tiles, others by fwd_any256
 * (the same bits). */
__attribute__((target("avx2,fma"))) static void
fwd_avx2(size_t n, size_t ci, size_t co, size_t h, size_t w, const wlayout *L, const float *b,
         const float *x, float *y, int acc)
{
    if (h == 8 && w == 8)
        (L->flip ? fwd8_flip256 : fwd8_fwd256)(n, ci, co, L, b, x, y, acc);
    else if (h == 4 && w == 4)
        (L->flip ? fwd4_flip256 : fwd4_fwd256)(n, ci, co, L, b, x, y, acc);
    else
        fwd_any256(n, ci, co, h, w, L, b, x, y, acc);
}

#endif /* CONV_X86 */

/* ---- Planes of fewer than 16 pixels (2 x 2, 1 x 1, ...) ---------------------------------- */

/* A plane of fewer than 16 pixels would leave most lanes of a vector of pixels empty, and most of
 * its taps read the zero padding (a 2 x 2 pixel sees 4 of its 9 taps, a 1 x 1 pixel 1). Here the
 * lanes hold SM_LANES output channels instead: the weight of a block of SM_LANES output channels
 * is packed so that a tap of an input channel is one vector (wp[(c * 9 + t) * SM_LANES + l]),
 * the input pixels are broadcast, and a tile of (images x pixels) accumulators runs over the
 * input channels and, for each pixel, only the taps that fall inside the plane.
 *
 * Each output element is the forward's fma chain over k = c * 9 + t in order with the terms of
 * the padding left out. A left-out term is fma(w, +0, s): w * (+0) is an exact zero for a finite
 * w, and s + (+-0) = s except for s = -0 (then -0 + +0 = +0). From s = +0 (acc = 0) a chain never
 * reaches -0 (an exact zero sum rounds to +0, and the terms of the padding are the only zero
 * products that could add -0 to -0), so the bits are those of the chain with every term; with
 * acc = 1 they differ only in the sign of an exact zero when y holds -0 and every term is zero.
 * A non-finite weight would make the padding's terms NaN, but the library keeps no such weight
 * (score_model_params_set and the loaders refuse non-finite parameters, the optimizer skips a step
 * with a non-finite gradient), so the two agree on every model the library runs.
 *
 * The driver (plain C) packs SM_CHUNK input channels of a block of output channels at a time (or
 * reads that chunk from a whole pack made beforehand by score__conv3_pack: the same floats) and
 * runs the tiles over a block of SM_IMAGES images. A tile's chains start from y (acc, or the
 * partial sums of the previous chunk: float stores are exact) or +0 and go back to y after each
 * chunk, with the bias added (a separate float addition) after the last one. The tile functions
 * of the three levels compute the same chains, so the same bits. */
#define SM_LANES 16
/* Input channels packed at once: 36 KiB of weights on the stack. */
#define SM_CHUNK 64
/* Images per outer block (their inputs stay in the second-level cache while every block of output
 * channels runs over them; the weight is packed once per block unless packed beforehand). */
#define SM_IMAGES 256
/* Accumulators of a tile at most (images x pixels). */
#define SM_TILE 16

/* One tile of ni images x the h x w pixels x nl <= SM_LANES output channels: the element (j, l,
 * p) at y[j * ys + l * hw + p] is s = (zero ? +0 : its value), then s = fma(wp[(c * 9 + t) *
 * SM_LANES + l], x[j * xs + c * hw + p + shift(t)], s) over the cc packed input channels c, then
 * the taps t inside the plane, in order; then s + b[l] (b NULL: none) stored back. */
typedef void (*small_tile_fn)(size_t h, size_t w, size_t ni, size_t cc, const float *wp,
                              const float *x, size_t xs, float *y, size_t ys, size_t nl,
                              int zero, const float *b);

/* Bit t set when tap t reads inside an h x w plane for some pixel. */
static unsigned taps_used(size_t h, size_t w)
{
    unsigned m = 0;
    for (size_t p = 0; p < h * w; p++)
        for (size_t t = 0; t < 9; t++)
            if (tap_inside(h, w, p / w, p % w, t))
                m |= 1u << t;
    return m;
}

/* The portable tile. */
static void tile_portable(size_t h, size_t w, size_t ni, size_t cc, const float *wp,
                          const float *x, size_t xs, float *y, size_t ys, size_t nl, int zero,
                          const float *b)
{
    size_t hw = h * w;
    for (size_t j = 0; j < ni; j++)
        for (size_t l = 0; l < nl; l++)
            for (size_t p = 0; p < hw; p++) {
                float *yp = y + j * ys + l * hw + p, a = zero ? 0.0f : *yp;
                for (size_t c = 0; c < cc; c++)
                    for (size_t t = 0; t < 9; t++)
                        if (tap_inside(h, w, p / w, p % w, t))
                            a = fmaf(wp[(c * 9 + t) * SM_LANES + l],
                                     x[(ptrdiff_t)(j * xs + c * hw + p) + tap_shift(w, t)], a);
                *yp = b != NULL ? a + b[l] : a;
            }
}

/* Packs lanes l < nl of wp[(c * 9 + t) * SM_LANES + l] = the weight of output channel o0 + l,
 * input channel c0 + c, tap t of layout L for c < cc and the taps t of `used` (lanes nl ..: +0). */
typedef void (*small_pack_fn)(const wlayout *L, size_t o0, size_t nl, size_t c0, size_t cc,
                              unsigned used, float *wp);

/* The portable pack. */
static void pack_portable(const wlayout *L, size_t o0, size_t nl, size_t c0, size_t cc,
                          unsigned used, float *wp)
{
    for (size_t l = 0; l < SM_LANES; l++) {
        const float *wl = L->wt + (o0 + l) * L->rs + c0 * L->cs;
        for (size_t c = 0; c < cc; c++)
            for (size_t t = 0; t < 9; t++)
                if (used >> t & 1u)
                    wp[(c * 9 + t) * SM_LANES + l] =
                        l < nl ? wl[c * L->cs + (size_t)L->toff[t]] : 0.0f;
    }
}

/* The forward (layout L, as conv_at) of n images of h x w < 16 pixels through tiles of at most
 * ni_max images (pack, tile: one level's functions). ci > 0. pk: NULL (each chunk packed here,
 * once per block of SM_IMAGES images) or the whole weight packed beforehand by pack_all (the
 * same values: the chunk of output channels o0 .. and input channels c0 .. at
 * pk + o0 * ci * 9 + c0 * 9 * SM_LANES). */
static void fwd_small(small_pack_fn pack, small_tile_fn tile, size_t ni_max, size_t n, size_t ci,
                      size_t co, size_t h, size_t w, const wlayout *L, const float *pk,
                      const float *b, const float *x, float *y, int acc)
{
    _Alignas(64) float buf[SM_CHUNK * 9 * SM_LANES];
    size_t hw = h * w;
    unsigned used = taps_used(h, w);
    for (size_t i0 = 0; i0 < n; i0 += SM_IMAGES) {
        size_t ib = n - i0 < SM_IMAGES ? n - i0 : SM_IMAGES;
        for (size_t o0 = 0; o0 < co; o0 += SM_LANES) {
            size_t nl = co - o0 < SM_LANES ? co - o0 : SM_LANES;
            for (size_t c0 = 0; c0 < ci; c0 += SM_CHUNK) {
                size_t cc = ci - c0 < SM_CHUNK ? ci - c0 : SM_CHUNK;
                const float *wp = buf;
                if (pk != NULL)
                    wp = pk + o0 * ci * 9 + c0 * 9 * SM_LANES;
                else
                    pack(L, o0, nl, c0, cc, used, buf);
                for (size_t j0 = 0; j0 < ib; j0 += ni_max)
                    tile(h, w, ib - j0 < ni_max ? ib - j0 : ni_max, cc, wp,
                         x + (i0 + j0) * ci * hw + c0 * hw, ci * hw,
                         y + ((i0 + j0) * co + o0) * hw, co * hw, nl, c0 == 0 && !acc,
                         c0 + cc == ci && b != NULL ? b + o0 : NULL);
            }
        }
    }
}

#if CONV_X86
/* A level's tile function (small_tile_fn) over its tile `stile` (target `tgt`): 2 x 2 planes n4
 * images at a time, 1 x 1 planes n1 (the images left over one by one), other planes by the
 * portable tile (the same chains). */
#define SMALL_TILE_FN(name, tgt, stile, n4, n1)                                              \
    __attribute__((target(tgt))) static void name(                                           \
        size_t h, size_t w, size_t ni, size_t cc, const float *wp, const float *x, size_t xs, \
        float *y, size_t ys, size_t nl, int zero, const float *b)                            \
    {                                                                                        \
        int p4 = h == 2 && w == 2, p1 = h * w == 1;                                          \
        if (p4 && ni == (n4))                                                                \
            stile(2, 2, n4, cc, wp, x, xs, y, ys, nl, zero, b);                              \
        else if (p1 && ni == (n1))                                                           \
            stile(1, 1, n1, cc, wp, x, xs, y, ys, nl, zero, b);                              \
        else if (p4 || p1)                                                                   \
            for (size_t j = 0; j < ni; j++) {                                                \
                if (p4)                                                                      \
                    stile(2, 2, 1, cc, wp, x + j * xs, xs, y + j * ys, ys, nl, zero, b);     \
                else                                                                         \
                    stile(1, 1, 1, cc, wp, x + j * xs, xs, y + j * ys, ys, nl, zero, b);     \
            }                                                                                \
        else                                                                                 \
            tile_portable(h, w, ni, cc, wp, x, xs, y, ys, nl, zero, b);                      \
    }

#if SCORE__SIMD_LEVEL >= 2
/* The AVX-512 tile for h x w = 2 x 2 or 1 x 1 with ni known at compile time once inlined: one
 * vector of the block's 16 output channels per (image, pixel), the input pixels broadcast once
 * per channel, y read and written with a gather / scatter of stride hw (1 x 1: masked loads and
 * stores). */
__attribute__((target("avx512f"), always_inline)) static inline void
stile512(size_t h, size_t w, size_t ni, size_t cc, const float *wp, const float *x, size_t xs,
         float *y, size_t ys, size_t nl, int zero, const float *b)
{
    size_t hw = h * w;
    __mmask16 m = (__mmask16)((1u << nl) - 1u);
    __m512i idx = _mm512_mullo_epi32(
        _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
        _mm512_set1_epi32((int)hw));
    __m512 c[SM_TILE];
#pragma GCC unroll 16
    for (size_t j = 0; j < ni; j++)
#pragma GCC unroll 16
        for (size_t p = 0; p < hw; p++) {
            float *yp = y + j * ys + p;
            c[j * hw + p] = zero      ? _mm512_setzero_ps()
                            : hw == 1 ? _mm512_maskz_loadu_ps(m, yp)
                                      : _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx,
                                                                 yp, 4);
        }
    for (size_t ch = 0; ch < cc; ch++) {
        __m512 xv[SM_TILE];
#pragma GCC unroll 16
        for (size_t j = 0; j < ni; j++)
#pragma GCC unroll 16
            for (size_t q = 0; q < hw; q++)
                xv[j * hw + q] = _mm512_set1_ps(x[j * xs + ch * hw + q]);
#pragma GCC unroll 9
        for (size_t t = 0; t < 9; t++) {
            if (!(taps_used(h, w) >> t & 1u))
                continue;
            __m512 wv = _mm512_load_ps(wp + (ch * 9 + t) * SM_LANES);
#pragma GCC unroll 16
            for (size_t j = 0; j < ni; j++)
#pragma GCC unroll 16
                for (size_t p = 0; p < hw; p++)
                    if (tap_inside(h, w, p / w, p % w, t))
                        c[j * hw + p] = _mm512_fmadd_ps(
                            wv, xv[(ptrdiff_t)(j * hw + p) + tap_shift(w, t)], c[j * hw + p]);
        }
    }
    __m512 bv = b != NULL ? _mm512_maskz_loadu_ps(m, b) : _mm512_setzero_ps();
#pragma GCC unroll 16
    for (size_t j = 0; j < ni; j++)
#pragma GCC unroll 16
        for (size_t p = 0; p < hw; p++) {
            __m512 v = c[j * hw + p];
            float *yp = y + j * ys + p;
            if (b != NULL)
                v = _mm512_add_ps(v, bv);
            if (hw == 1)
                _mm512_mask_storeu_ps(yp, m, v);
            else
                _mm512_mask_i32scatter_ps(yp, m, idx, v, 4);
        }
}

/* The AVX-512 pack: in the forward's layout with every tap used (2 x 2 planes), the rows'
 * cc * 9 consecutive weights transposed in 16 x 16 blocks (score__transpose16_avx512: one
 * load per row and block; in the U-Net's sampling profile 4.1% against the gathers' 4.8%);
 * otherwise a gather of the 16 lanes (stride rs) per (input channel, tap). The same values
 * either way. */
__attribute__((target("avx512f"))) static void pack512(const wlayout *L, size_t o0, size_t nl,
                                                      size_t c0, size_t cc, unsigned used,
                                                      float *wp)
{
    if (!L->flip && used == 0x1FFu && L->cs == 9) {
        score__transpose16_avx512(L->wt + o0 * L->rs + c0 * 9, L->rs, nl, cc * 9, wp);
        return;
    }
    __mmask16 m = (__mmask16)((1u << nl) - 1u);
    __m512i idx = _mm512_mullo_epi32(
        _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
        _mm512_set1_epi32((int)L->rs));
    const float *wo = L->wt + o0 * L->rs + c0 * L->cs;
    for (size_t c = 0; c < cc; c++)
        for (size_t t = 0; t < 9; t++)
            if (used >> t & 1u)
                _mm512_store_ps(wp + (c * 9 + t) * SM_LANES,
                                _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx,
                                                         wo + c * L->cs + L->toff[t], 4));
}

/* The AVX-512 tile: 2 x 2 planes two images at a time, 1 x 1 planes eight; other planes (not in
 * the U-Net) by the portable tile (the same chains). */
SMALL_TILE_FN(tile512, "avx512f", stile512, 2, 8)
#endif /* SCORE__SIMD_LEVEL >= 2 */

/* ---- 8 x 8 and 4 x 4 planes with output channels in the lanes (AVX-512, AVX2) ------------ *
 * The pixel-lane tiles (fwd_plane512) multiply the zero padding too: 16% of the (pixel, tap)
 * pairs of an 8 x 8 plane read it, 31% of a 4 x 4 one. Here, as in stile512, the lanes hold 16
 * output channels of the weight packed by pack512 (wp[(c * 9 + t) * SM_LANES + l]: an (input
 * channel, tap) is one vector; the same floats as score__conv3_pack's), the input pixels are
 * broadcast, and each pixel runs only the taps inside the plane: the tile's rows and columns
 * are compile-time constants, so its tap sets are too. Each output element is the chain of
 * fwd_small (the forward's fma chain over (input channel, tap) in order, the padding's terms
 * left out: the same bits for finite weights, see the comment above SM_LANES), then + bias.
 *
 * A tile is 8 pixels (a row of an 8 x 8 plane, two rows of a 4 x 4 one) x nv <= 2 vectors of 16
 * output channels: 16 accumulators; per (input channel, tap) nv weight vectors, and per pixel
 * one broadcast shared by the nv FMAs. Between the tiles' passes (OC_PASS input channels each,
 * so that their weights stay in the first-level cache) an image's running sums wait in a
 * pixel-major scratch T (T[(v * hw + p) * 16 + l]: vector v, pixel p, lane l; float stores are
 * exact); they start from +0 or from y transposed into T, and go back to y transposed 16 x 16
 * in registers, the bias added after the last input channel. The AVX2 version (oc_tile256 ..,
 * after the AVX2 pack) runs tiles of 4 pixels x 16 output channels over the same driver
 * (OC_PLANES_FN) and layouts: the same chains, so the same bits. */

/* Input channels packed at once when the weight is not packed beforehand: 2 blocks of 16 output
 * channels, 36 KiB on the stack (as fwd_small's buffer). */
#define OC_CHUNK 32
/* Input channels per pass of the tiles over an image (their weights: 18 KiB). */
#define OC_PASS 16

/* OC_PLANES_FN(name, tgt, NVMAX, pack, pass, move) defines name(pw, n, ci, co, L, pk, b, x, y,
 * acc): the forward (layout L, as conv_at) of n images of pw x pw planes (pw = 8 or 4),
 * ci > 0, by a level's tiles: blocks of NVMAX x 16 output channels (fewer at the end) x chunks
 * of input channels (pk NULL: OC_CHUNK, packed here once per call and chunk; else the whole
 * weight packed beforehand by score__conv3_pack, one chunk) x the images. An image's chains
 * start from +0 (first chunk, acc = 0), from y (acc) or from the previous chunk's sums. Between
 * chunks those wait in y's planes of the block: in T's layout when that fills them exactly (a
 * block of 16 or 32 output channels: the tiles read and write them there, no transposition),
 * else transposed back to NCHW. pack: the level's small_pack_fn; pass, move: oc_pass512 and
 * oc_move512 or their AVX2 counterparts. */
#define OC_PLANES_FN(name, tgt, NVMAX, pack, pass, move)                                      \
    __attribute__((target(tgt), always_inline)) static inline void name(                      \
        size_t pw, size_t n, size_t ci, size_t co, const wlayout *L, const float *pk,         \
        const float *b, const float *x, float *y, int acc)                                    \
{                                                                                             \
    _Alignas(64) float buf[2 * OC_CHUNK * 9 * SM_LANES];                                      \
    _Alignas(64) float T[2 * 64 * SM_LANES];                                                  \
    size_t hw = pw * pw, chunk = pk != NULL ? ci : OC_CHUNK;                                  \
    for (size_t o0 = 0; o0 < co; o0 += NVMAX * SM_LANES) {                                    \
        size_t mo = co - o0 < NVMAX * SM_LANES ? co - o0 : NVMAX * SM_LANES;                  \
        size_t nv = mo > SM_LANES ? 2 : 1;                                                    \
        for (size_t c0 = 0; c0 < ci; c0 += chunk) {                                           \
            size_t cc = ci - c0 < chunk ? ci - c0 : chunk, wvs = SM_LANES * ci * 9;           \
            const float *wp = pk;                                                             \
            int first = c0 == 0, last = c0 + cc == ci, park = nv * SM_LANES == mo;            \
            if (pk != NULL) {                                                                 \
                wp = pk + o0 * ci * 9; /* c0 = 0: one chunk */                                \
            } else {                                                                          \
                wvs = cc * 9 * SM_LANES;                                                      \
                for (size_t v = 0; v < nv; v++)                                               \
                    pack(L, o0 + v * SM_LANES,                                                \
                         mo - v * SM_LANES < SM_LANES ? mo - v * SM_LANES : SM_LANES, c0, cc, \
                         0x1FFu, buf + v * wvs);                                              \
                wp = buf;                                                                     \
            }                                                                                 \
            for (size_t i = 0; i < n; i++) {                                                  \
                const float *xi = x + (i * ci + c0) * hw, *src = NULL; /* NULL: +0 */         \
                float *yi = y + (i * co + o0) * hw, *dst = last || !park ? T : yi;            \
                if (!first && park) {                                                         \
                    src = yi; /* the previous chunk's sums, in T's layout */                  \
                } else if (!first || acc) {                                                   \
                    move(0, hw, nv, mo, yi, T, NULL);                                         \
                    src = T;                                                                  \
                }                                                                             \
                for (size_t c1 = 0; c1 < cc; c1 += OC_PASS, src = dst) {                      \
                    size_t np = cc - c1 < OC_PASS ? cc - c1 : OC_PASS;                        \
                    const float *wc = wp + c1 * 9 * SM_LANES, *xc = xi + c1 * hw;             \
                    if ((NVMAX) == 2 && nv == 2)                                              \
                        pass(pw, 2, np, wc, wvs, xc, src, dst);                               \
                    else                                                                      \
                        pass(pw, 1, np, wc, wvs, xc, src, dst);                               \
                }                                                                             \
                if (dst == T)                                                                 \
                    move(1, hw, nv, mo, yi, T, last && b != NULL ? b + o0 : NULL);            \
            }                                                                                 \
        }                                                                                     \
    }                                                                                         \
}

/* name(n, ci, co, L, pk, b, x, y, acc): the driver drv (an OC_PLANES_FN) for pw x pw planes, as
 * a function of its own. */
#define OC_PLANE_FN(name, tgt, drv, pw)                                                      \
    __attribute__((target(tgt))) static void name(size_t n, size_t ci, size_t co,             \
                                                  const wlayout *L, const float *pk,          \
                                                  const float *b, const float *x, float *y,   \
                                                  int acc)                                    \
    {                                                                                        \
        drv(pw, n, ci, co, L, pk, b, x, y, acc);                                             \
    }

#if CONV_X86 && SCORE__SIMD_LEVEL >= 2
/* One tile: the 8 pixels from row row0 of a pw x pw plane (pw = 8: one row; pw = 4: two) x nv
 * vectors of output channels. top: row0 is the plane's first row; bot: the tile's last row is
 * the plane's last (constants once inlined, with pw and nv). For the cc input channels at x
 * (channel c at x + c * hw, the image's planes) and their packed weights (vector v of channel c,
 * tap t at wp + v * wvs + (c * 9 + t) * 16): the 8 x nv accumulators start from src's (T's
 * layout; NULL: +0), run the chain over c, then the taps inside the plane in order, and go to
 * dst (T's layout; may be src). */
__attribute__((target("avx512f"), always_inline)) static inline void
oc_tile512(size_t pw, size_t nv, int top, int bot, size_t row0, size_t cc, const float *wp,
           size_t wvs, const float *x, const float *src, float *dst)
{
    size_t hw = pw * pw, nr = 8 / pw, p0 = row0 * pw;
    __m512 c[2][8];
#pragma GCC unroll 2
    for (size_t v = 0; v < nv; v++)
#pragma GCC unroll 8
        for (size_t p = 0; p < 8; p++)
            c[v][p] = src == NULL ? _mm512_setzero_ps()
                                  : _mm512_loadu_ps(src + (v * hw + p0 + p) * 16);
    for (size_t ch = 0; ch < cc; ch++) {
        const float *xc = x + ch * hw + p0;
#pragma GCC unroll 9
        for (size_t t = 0; t < 9; t++) {
            int dy = (int)(t / 3) - 1, dx = (int)(t % 3) - 1;
            __m512 wv[2];
#pragma GCC unroll 2
            for (size_t v = 0; v < nv; v++)
                wv[v] = _mm512_load_ps(wp + v * wvs + (ch * 9 + t) * SM_LANES);
#pragma GCC unroll 8
            for (size_t p = 0; p < 8; p++) {
                size_t rr = p / pw;
                int col = (int)(p % pw) + dx;
                if ((top && rr == 0 && dy < 0) || (bot && rr == nr - 1 && dy > 0) || col < 0 ||
                    col >= (int)pw)
                    continue; /* the padding: no term */
                __m512 xb = _mm512_set1_ps(xc[(ptrdiff_t)p + dy * (ptrdiff_t)pw + dx]);
#pragma GCC unroll 2
                for (size_t v = 0; v < nv; v++)
                    c[v][p] = _mm512_fmadd_ps(wv[v], xb, c[v][p]);
            }
        }
    }
#pragma GCC unroll 2
    for (size_t v = 0; v < nv; v++)
#pragma GCC unroll 8
        for (size_t p = 0; p < 8; p++)
            _mm512_storeu_ps(dst + (v * hw + p0 + p) * 16, c[v][p]);
}

/* One pass of the tiles over an image's pw x pw plane: every row tile, the cc input channels
 * (oc_tile512's wp, wvs, x, src, dst). */
__attribute__((target("avx512f"), always_inline)) static inline void
oc_pass512(size_t pw, size_t nv, size_t cc, const float *wp, size_t wvs, const float *x,
           const float *src, float *dst)
{
    if (pw == 4) {
        oc_tile512(4, nv, 1, 0, 0, cc, wp, wvs, x, src, dst);
        oc_tile512(4, nv, 0, 1, 2, cc, wp, wvs, x, src, dst);
        return;
    }
    oc_tile512(8, nv, 1, 0, 0, cc, wp, wvs, x, src, dst);
    for (size_t r = 1; r < 7; r++)
        oc_tile512(8, nv, 0, 0, r, cc, wp, wvs, x, src, dst);
    oc_tile512(8, nv, 0, 1, 7, cc, wp, wvs, x, src, dst);
}

/* Between the mo <= 32 output planes at y (plane o at y + o * hw) and T (oc_tile512's layout,
 * nv vectors of hw pixels), 16 x 16 blocks transposed in registers. to_y = 0: T = y's planes
 * (lanes from mo on: +0, their planes not read); to_y = 1: y's planes = T's sums (+ b[o] when b
 * is not NULL: a float addition). */
__attribute__((target("avx512f"), always_inline)) static inline void
oc_move512(int to_y, size_t hw, size_t nv, size_t mo, float *y, float *T, const float *b)
{
    for (size_t v = 0; v < nv; v++) {
        size_t nl = mo - v * SM_LANES < SM_LANES ? mo - v * SM_LANES : SM_LANES;
        for (size_t q = 0; q < hw; q += 16) { /* the pixels q .. q + 15 */
            __m512 r[16], out[16];
#pragma GCC unroll 16
            for (size_t k = 0; k < 16; k++) /* T: pixel q + k; y: lane k */
                r[k] = to_y     ? _mm512_load_ps(T + (v * hw + q + k) * SM_LANES)
                       : k < nl ? _mm512_loadu_ps(y + (v * SM_LANES + k) * hw + q)
                                : _mm512_setzero_ps();
            score__transpose16_regs(r, out);
#pragma GCC unroll 16
            for (size_t k = 0; k < 16; k++) {
                if (!to_y) {
                    _mm512_store_ps(T + (v * hw + q + k) * SM_LANES, out[k]);
                } else if (k < nl) {
                    __m512 o = out[k];
                    if (b != NULL)
                        o = _mm512_add_ps(o, _mm512_set1_ps(b[v * SM_LANES + k]));
                    _mm512_storeu_ps(y + (v * SM_LANES + k) * hw + q, o);
                }
            }
        }
    }
}

/* The AVX-512 driver (OC_PLANES_FN). */
OC_PLANES_FN(oc_planes512, "avx512f", 2, pack512, oc_pass512, oc_move512)

/* oc_planes512 for 8 x 8 and for 4 x 4 planes. */
OC_PLANE_FN(oc8_512, "avx512f", oc_planes512, 8)
OC_PLANE_FN(oc4_512, "avx512f", oc_planes512, 4)
#endif /* CONV_X86 && SCORE__SIMD_LEVEL >= 2 */

/* The AVX2 tile for 2 x 2 or 1 x 1 planes (stile512's chains in two 8-lane halves; y read and
 * written through a buffer of the 16 lanes). */
__attribute__((target("avx2,fma"), always_inline)) static inline void
stile256(size_t h, size_t w, size_t ni, size_t cc, const float *wp, const float *x, size_t xs,
         float *y, size_t ys, size_t nl, int zero, const float *b)
{
    size_t hw = h * w;
    _Alignas(32) float buf[SM_LANES];
    __m256 c[SM_TILE][2];
#pragma GCC unroll 16
    for (size_t j = 0; j < ni; j++)
#pragma GCC unroll 16
        for (size_t p = 0; p < hw; p++) {
            for (size_t l = 0; l < SM_LANES; l++)
                buf[l] = !zero && l < nl ? y[j * ys + l * hw + p] : 0.0f;
#pragma GCC unroll 2
            for (size_t v = 0; v < 2; v++)
                c[j * hw + p][v] = _mm256_load_ps(buf + v * 8);
        }
    for (size_t ch = 0; ch < cc; ch++) {
#pragma GCC unroll 9
        for (size_t t = 0; t < 9; t++) {
            if (!(taps_used(h, w) >> t & 1u))
                continue;
            __m256 wv[2];
#pragma GCC unroll 2
            for (size_t v = 0; v < 2; v++)
                wv[v] = _mm256_load_ps(wp + (ch * 9 + t) * SM_LANES + v * 8);
#pragma GCC unroll 16
            for (size_t j = 0; j < ni; j++)
#pragma GCC unroll 16
                for (size_t p = 0; p < hw; p++)
                    if (tap_inside(h, w, p / w, p % w, t)) {
                        __m256 xb = _mm256_broadcast_ss(
                            x + (ptrdiff_t)(j * xs + ch * hw + p) + tap_shift(w, t));
#pragma GCC unroll 2
                        for (size_t v = 0; v < 2; v++)
                            c[j * hw + p][v] = _mm256_fmadd_ps(wv[v], xb, c[j * hw + p][v]);
                    }
        }
    }
#pragma GCC unroll 16
    for (size_t j = 0; j < ni; j++)
#pragma GCC unroll 16
        for (size_t p = 0; p < hw; p++) {
#pragma GCC unroll 2
            for (size_t v = 0; v < 2; v++)
                _mm256_store_ps(buf + v * 8, c[j * hw + p][v]);
            for (size_t l = 0; l < nl; l++)
                y[j * ys + l * hw + p] = b != NULL ? buf[l] + b[l] : buf[l];
        }
}

/* The AVX2 pack: gathers of 8 lanes (stride rs) per (input channel, tap). */
__attribute__((target("avx2,fma"))) static void pack256(const wlayout *L, size_t o0, size_t nl,
                                                       size_t c0, size_t cc, unsigned used,
                                                       float *wp)
{
    __m256i lane = _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0);
    __m256i idx = _mm256_mullo_epi32(lane, _mm256_set1_epi32((int)L->rs));
    __m256i step = _mm256_set1_epi32((int)(8 * L->rs));
    const float *wo = L->wt + o0 * L->rs + c0 * L->cs;
    __m256 mk[2];
    for (size_t v = 0; v < 2; v++) /* lanes 8 v + l < nl: sign bits set */
        mk[v] = _mm256_castsi256_ps(
            _mm256_cmpgt_epi32(_mm256_set1_epi32((int)nl - (int)(8 * v)), lane));
    for (size_t c = 0; c < cc; c++)
        for (size_t t = 0; t < 9; t++)
            if (used >> t & 1u)
                for (size_t v = 0; v < 2; v++)
                    _mm256_store_ps(wp + (c * 9 + t) * SM_LANES + v * 8,
                                    _mm256_mask_i32gather_ps(
                                        _mm256_setzero_ps(), wo + c * L->cs + L->toff[t],
                                        v ? _mm256_add_epi32(idx, step) : idx, mk[v], 4));
}

/* The AVX2 tile: 2 x 2 planes one image at a time, 1 x 1 planes four; other planes by the
 * portable tile. */
SMALL_TILE_FN(tile256, "avx2,fma", stile256, 1, 4)

/* The AVX2 counterparts of oc_tile512 .. oc_planes512: 16 ymm registers hold a tile of 4 pixels
 * (half a row of an 8 x 8 plane, a row of a 4 x 4 one) x one block of 16 output channels (two
 * 8-lane halves), 8 accumulators; the same chains (so the same bits), T in the same layout
 * with nv = 1, 8 x 8 transpositions. One tile: the pixels col0 .. col0 + 3 of row `row` of a
 * pw x pw plane (top: the first row, bot: the last; constants once inlined), the rest as
 * oc_tile512 (nv = 1; the weight's vector at wp + (c * 9 + t) * 16). */
__attribute__((target("avx2,fma"), always_inline)) static inline void
oc_tile256(size_t pw, size_t col0, int top, int bot, size_t row, size_t cc, const float *wp,
           const float *x, const float *src, float *dst)
{
    size_t hw = pw * pw, p0 = row * pw + col0;
    __m256 c[4][2];
#pragma GCC unroll 4
    for (size_t p = 0; p < 4; p++)
#pragma GCC unroll 2
        for (size_t h = 0; h < 2; h++)
            c[p][h] = src == NULL ? _mm256_setzero_ps()
                                  : _mm256_loadu_ps(src + (p0 + p) * SM_LANES + h * 8);
    for (size_t ch = 0; ch < cc; ch++) {
        const float *xc = x + ch * hw + p0;
#pragma GCC unroll 9
        for (size_t t = 0; t < 9; t++) {
            int dy = (int)(t / 3) - 1, dx = (int)(t % 3) - 1;
            if ((top && dy < 0) || (bot && dy > 0))
                continue; /* the padding: no term */
            __m256 wv[2];
#pragma GCC unroll 2
            for (size_t h = 0; h < 2; h++)
                wv[h] = _mm256_load_ps(wp + (ch * 9 + t) * SM_LANES + h * 8);
#pragma GCC unroll 4
            for (size_t p = 0; p < 4; p++) {
                int col = (int)(col0 + p) + dx;
                if (col < 0 || col >= (int)pw)
                    continue;
                __m256 xb = _mm256_broadcast_ss(xc + (ptrdiff_t)p + dy * (ptrdiff_t)pw + dx);
#pragma GCC unroll 2
                for (size_t h = 0; h < 2; h++)
                    c[p][h] = _mm256_fmadd_ps(wv[h], xb, c[p][h]);
            }
        }
    }
#pragma GCC unroll 4
    for (size_t p = 0; p < 4; p++)
#pragma GCC unroll 2
        for (size_t h = 0; h < 2; h++)
            _mm256_storeu_ps(dst + (p0 + p) * SM_LANES + h * 8, c[p][h]);
}

/* oc_pass512 for the AVX2 tiles (nv = 1; wvs not read). */
__attribute__((target("avx2,fma"), always_inline)) static inline void
oc_pass256(size_t pw, size_t nv, size_t cc, const float *wp, size_t wvs, const float *x,
           const float *src, float *dst)
{
    (void)nv, (void)wvs;
#pragma GCC unroll 2
    for (size_t col0 = 0; col0 < pw; col0 += 4) {
        oc_tile256(pw, col0, 1, 0, 0, cc, wp, x, src, dst);
        for (size_t r = 1; r + 1 < pw; r++)
            oc_tile256(pw, col0, 0, 0, r, cc, wp, x, src, dst);
        oc_tile256(pw, col0, 0, 1, pw - 1, cc, wp, x, src, dst);
    }
}

/* oc_move512 for T with nv = 1 (mo <= 16), in 8 x 8 blocks (the lanes h * 8 .., pixels q ..). */
__attribute__((target("avx2,fma"), always_inline)) static inline void
oc_move256(int to_y, size_t hw, size_t nv, size_t mo, float *y, float *T, const float *b)
{
    (void)nv;
    for (size_t h = 0; h < 2 && h * 8 < mo; h++)
        for (size_t q = 0; q < hw; q += 8) {
            __m256 r[8], out[8];
            size_t nl = mo - h * 8 < 8 ? mo - h * 8 : 8;
#pragma GCC unroll 8
            for (size_t k = 0; k < 8; k++) /* T: pixel q + k; y: lane h * 8 + k */
                r[k] = to_y     ? _mm256_load_ps(T + (q + k) * SM_LANES + h * 8)
                       : k < nl ? _mm256_loadu_ps(y + (h * 8 + k) * hw + q)
                                : _mm256_setzero_ps();
            score__transpose8_regs(r, out);
#pragma GCC unroll 8
            for (size_t k = 0; k < 8; k++) {
                if (!to_y) {
                    _mm256_store_ps(T + (q + k) * SM_LANES + h * 8, out[k]);
                } else if (k < nl) {
                    __m256 o = out[k];
                    if (b != NULL)
                        o = _mm256_add_ps(o, _mm256_set1_ps(b[h * 8 + k]));
                    _mm256_storeu_ps(y + (h * 8 + k) * hw + q, o);
                }
            }
        }
    if (!to_y && mo <= 8) /* the lanes 8 .. 15: +0 */
        for (size_t p = 0; p < hw; p++)
            _mm256_store_ps(T + p * SM_LANES + 8, _mm256_setzero_ps());
}

/* The AVX2 driver (OC_PLANES_FN), for 8 x 8 and for 4 x 4 planes. */
OC_PLANES_FN(oc_planes256, "avx2,fma", 1, pack256, oc_pass256, oc_move256)

OC_PLANE_FN(oc8_256, "avx2,fma", oc_planes256, 8)
OC_PLANE_FN(oc4_256, "avx2,fma", oc_planes256, 4)
#endif /* CONV_X86 */

/* The pack function of `level`'s version. */
static small_pack_fn pack_at(int level)
{
#if CONV_X86
#if SCORE__SIMD_LEVEL >= 2
    if (level >= 2)
        return pack512;
#endif
    if (level >= 1)
        return pack256;
#else
    (void)level;
#endif
    return pack_portable;
}

/* The forward of planes of fewer than 16 pixels in the version of `level` (pk as fwd_small). */
static void fwd_small_at(int level, size_t n, size_t ci, size_t co, size_t h, size_t w,
                         const wlayout *L, const float *pk, const float *b, const float *x,
                         float *y, int acc)
{
    int one = h * w == 1;
    if (ci == 0) { /* no terms: y = (acc ? y : 0) + b */
        fwd_portable(n, ci, co, h, w, L, b, x, y, acc);
        return;
    }
#if CONV_X86
#if SCORE__SIMD_LEVEL >= 2
    if (level >= 2) {
        fwd_small(pack512, tile512, one ? 8 : h == 2 && w == 2 ? 2 : 1, n, ci, co, h, w, L, pk,
                  b, x, y, acc);
        return;
    }
#endif
    if (level >= 1) {
        fwd_small(pack256, tile256, one ? 4 : 1, n, ci, co, h, w, L, pk, b, x, y, acc);
        return;
    }
#else
    (void)level;
#endif
    fwd_small(pack_portable, tile_portable, one ? 8 : 1, n, ci, co, h, w, L, pk, b, x, y, acc);
}

/* Whether the forward of ci input into co output channels on h x w planes runs oc_planes512 or
 * oc_planes256 at the AVX-512 and AVX2 levels (and so whether score__conv3_pack packs its
 * weight, whatever the level): 8 x 8 and 4 x 4 planes with at least OC_MIN_CO output channels
 * (fewer would leave most lanes empty) and OC_MIN_CI input channels (with fewer the
 * transpositions in and out of T cost more than the padding's FMAs: conv3-bench's 1 -> 32
 * forward and 32 -> 1, 32 -> 3 input gradients are faster on the pixel-lane tiles). */
#define OC_MIN_CO 16
#define OC_MIN_CI 16
static int oc_path(size_t h, size_t w, size_t ci, size_t co)
{
#if CONV_X86
    return ((h == 8 && w == 8) || (h == 4 && w == 4)) && ci >= OC_MIN_CI && co >= OC_MIN_CO;
#else
    (void)h, (void)w, (void)ci, (void)co;
    return 0;
#endif
}

size_t score__conv3_packed_floats(size_t ci, size_t co, size_t h, size_t w)
{
    size_t hw = h * w;
    if (hw == 0 || (hw >= 16 && !oc_path(h, w, ci, co)))
        return 0;
    return (co + SM_LANES - 1) / SM_LANES * SM_LANES * ci * 9;
}

/* The whole weight of layout L (ci input, co output channels of the convolution it runs) packed
 * into wp by `level`'s pack: the chunk of output channels o0 .. at wp + o0 * ci * 9 (fwd_small's
 * and the OC_PLANES_FN drivers' pk). Nothing for the shapes score__conv3_packed_floats gives 0. */
static void pack_whole(int level, size_t ci, size_t co, size_t h, size_t w, const wlayout *L,
                       float *wp)
{
    small_pack_fn pack = pack_at(level);
    unsigned used = taps_used(h, w);
    if (score__conv3_packed_floats(ci, co, h, w) == 0)
        return;
    /* the taps no tile reads: +0, so that every float of the pack is defined */
    memset(wp, 0, score__conv3_packed_floats(ci, co, h, w) * sizeof *wp);
    for (size_t o0 = 0; o0 < co; o0 += SM_LANES)
        pack(L, o0, co - o0 < SM_LANES ? co - o0 : SM_LANES, 0, ci, used, wp + o0 * ci * 9);
}

void score__conv3_pack_at(int level, size_t ci, size_t co, size_t h, size_t w, const float *wt,
                          float *wp)
{
    wlayout L = {wt, 9 * ci, 9, {0, 1, 2, 3, 4, 5, 6, 7, 8}, 0};
    pack_whole(level, ci, co, h, w, &L, wp);
}

void score__conv3_pack(size_t ci, size_t co, size_t h, size_t w, const float *wt, float *wp)
{
    score__conv3_pack_at(score__gemm_cols_level(), ci, co, h, w, wt, wp);
}

/* ---- Dispatch ---------------------------------------------------------------------------- */

/* The forward's loops over the weight of L (ci input, co output channels; pk: NULL or, for
 * planes below 16 pixels and those of oc_path, L's weight packed by score__conv3_pack). */
static void conv_at(int level, size_t n, size_t ci, size_t co, size_t h, size_t w,
                    const wlayout *L, const float *pk, const float *b, const float *x, float *y,
                    int acc)
{
    size_t hw = h * w;
    if (n == 0 || co == 0 || hw == 0)
        return;
    if (hw < 16) {
        fwd_small_at(level, n, ci, co, h, w, L, pk, b, x, y, acc);
        return;
    }
#if CONV_X86
    if (hw <= SCORE__CONV3_MAX_HW) {
#if SCORE__SIMD_LEVEL >= 2
        if (level >= 2 && oc_path(h, w, ci, co)) {
            (h == 8 ? oc8_512 : oc4_512)(n, ci, co, L, pk, b, x, y, acc);
            return;
        }
        if (level >= 2) {
            fwd_avx512(n, ci, co, h, w, L, b, x, y, acc);
            return;
        }
#endif
        if (level == 1 && oc_path(h, w, ci, co)) {
            (h == 8 ? oc8_256 : oc4_256)(n, ci, co, L, pk, b, x, y, acc);
            return;
        }
        if (level >= 1) {
            fwd_avx2(n, ci, co, h, w, L, b, x, y, acc);
            return;
        }
    }
#else
    (void)level;
#endif
    fwd_portable(n, ci, co, h, w, L, b, x, y, acc);
}

void score__conv3_forward_at(int level, size_t n, size_t ci, size_t co, size_t h, size_t w,
                             const float *wt, const float *b, const float *x, float *y, int acc)
{
    wlayout L = {wt, 9 * ci, 9, {0, 1, 2, 3, 4, 5, 6, 7, 8}, 0};
    conv_at(level, n, ci, co, h, w, &L, NULL, b, x, y, acc);
}

void score__conv3_forward(size_t n, size_t ci, size_t co, size_t h, size_t w, const float *wt,
                          const float *b, const float *x, float *y, int acc)
{
    score__conv3_forward_at(score__gemm_cols_level(), n, ci, co, h, w, wt, b, x, y, acc);
}

void score__conv3_forward_packed_at(int level, size_t n, size_t ci, size_t co, size_t h,
                                    size_t w, const float *wt, const float *wp, const float *b,
                                    const float *x, float *y, int acc)
{
    wlayout L = {wt, 9 * ci, 9, {0, 1, 2, 3, 4, 5, 6, 7, 8}, 0};
    conv_at(level, n, ci, co, h, w, &L, score__conv3_packed_floats(ci, co, h, w) ? wp : NULL, b,
            x, y, acc);
}

void score__conv3_forward_packed(size_t n, size_t ci, size_t co, size_t h, size_t w,
                                 const float *wt, const float *wp, const float *b, const float *x,
                                 float *y, int acc)
{
    score__conv3_forward_packed_at(score__gemm_cols_level(), n, ci, co, h, w, wt, wp, b, x, y,
                                   acc);
}

void score__conv3_input_grad_at(int level, size_t n, size_t ci, size_t co, size_t h, size_t w,
                                const float *wt, const float *gy, float *gx)
{
    wlayout L = {wt, 9, 9 * ci, {8, 7, 6, 5, 4, 3, 2, 1, 0}, 1};
    conv_at(level, n, co, ci, h, w, &L, NULL, NULL, gy, gx, 1);
}

void score__conv3_input_grad(size_t n, size_t ci, size_t co, size_t h, size_t w,
                             const float *wt, const float *gy, float *gx)
{
    score__conv3_input_grad_at(score__gemm_cols_level(), n, ci, co, h, w, wt, gy, gx);
}

/* The input gradient runs the forward of co into ci channels: its pack is that forward's. */
size_t score__conv3_igrad_packed_floats(size_t ci, size_t co, size_t h, size_t w)
{
    return score__conv3_packed_floats(co, ci, h, w);
}

void score__conv3_igrad_pack_at(int level, size_t ci, size_t co, size_t h, size_t w,
                                const float *wt, float *wp)
{
    wlayout L = {wt, 9, 9 * ci, {8, 7, 6, 5, 4, 3, 2, 1, 0}, 1};
    pack_whole(level, co, ci, h, w, &L, wp);
}

void score__conv3_igrad_pack(size_t ci, size_t co, size_t h, size_t w, const float *wt,
                             float *wp)
{
    score__conv3_igrad_pack_at(score__gemm_cols_level(), ci, co, h, w, wt, wp);
}

void score__conv3_input_grad_packed_at(int level, size_t n, size_t ci, size_t co, size_t h,
                                       size_t w, const float *wt, const float *wp,
                                       const float *gy, float *gx, int acc)
{
    wlayout L = {wt, 9, 9 * ci, {8, 7, 6, 5, 4, 3, 2, 1, 0}, 1};
    conv_at(level, n, co, ci, h, w, &L, score__conv3_igrad_packed_floats(ci, co, h, w) ? wp : NULL,
            NULL, gy, gx, acc);
}

void score__conv3_input_grad_packed(size_t n, size_t ci, size_t co, size_t h, size_t w,
                                    const float *wt, const float *wp, const float *gy, float *gx,
                                    int acc)
{
    score__conv3_input_grad_packed_at(score__gemm_cols_level(), n, ci, co, h, w, wt, wp, gy, gx,
                                      acc);
}
