/* The weight gradient of the direct 3x3 convolutions (stride 1, zero padding 1, NCHW images):
 * gw[o, c, t] += the sum over the images i and pixels p of gy[i, o, p] * x[i, c, p + shift(t)]
 * for the taps t that read inside the plane (kernel-priv.h gives the order of the sums).
 *
 * The output channels are in the vector lanes: a chunk's gy is transposed once per block of 16
 * output channels (gt[pair * 16 + l] = gy[i, o0 + l, p] for the chunk's pairs (i, p)), then a
 * tile of 2 vectors of output channels x the 9 taps of one input channel (18 accumulators) runs
 * over the pairs: per pair 2 loads of gt and, for each tap inside the plane, one broadcast of x
 * and 2 FMAs. No horizontal sums (each lane is one output channel's own chain), no taps of the
 * padding, no masks; every lane's chain is the same whatever the vector width, so the three
 * versions (AVX-512, AVX2 with FMA, portable C with fmaf) give the same bits. The 8 x 8, 4 x 4,
 * 2 x 2 and 1 x 1 planes have the pixel loop unrolled with the taps inside the plane known at
 * compile time; other planes test the taps pair by pair. Calls with fewer output channels than
 * lanes (and more input channels than output ones, planes up to 128 wide) run the narrow tile
 * below instead: input channels in the lanes, the same chains. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernel-priv.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__) && SCORE__SIMD_LEVEL >= 1
#define WG_X86 1
#include <immintrin.h>

#include "simd-priv.h"
#else
#define WG_X86 0
#endif

/* (image, pixel) pairs of a block (one fma chain from +0) and of a chunk (4 blocks: its sum
 * is added to gw). */
#define WG_BLOCK 64
#define WG_CHUNK 256
/* Input channels whose chunk sums are added to gw at once (AVX-512: 16 x 16 transposes, AVX2:
 * 8 x 8). */
#define WG_FLUSH_C 16

/* Whether tap t (dy = t / 3 - 1, dx = t % 3 - 1) of pixel (py, px) reads inside an h x w
 * plane. */
static inline int wg_inside(size_t h, size_t w, size_t py, size_t px, size_t t)
{
    size_t ry = py + t / 3, rx = px + t % 3; /* the input position + 1 */
    return ry >= 1 && ry <= h && rx >= 1 && rx <= w;
}

/* Offset of tap t's input from its pixel in a plane of width w: dy * w + dx. */
static inline ptrdiff_t wg_shift(size_t w, size_t t)
{
    return ((ptrdiff_t)(t / 3) - 1) * (ptrdiff_t)w + ((ptrdiff_t)(t % 3) - 1);
}

/* ---- Portable version -------------------------------------------------------------------- */

/* Per (output, input channel, tap): the documented chains, one element at a time. */
static void wgrad_portable(size_t n, size_t ci, size_t co, size_t h, size_t w, const float *gy,
                           const float *x, float *gw)
{
    size_t hw = h * w, np = n * hw;
    for (size_t o = 0; o < co; o++)
        for (size_t c = 0; c < ci; c++)
            for (size_t t = 0; t < 9; t++) {
                ptrdiff_t sh = wg_shift(w, t);
                float *g = gw + (o * ci + c) * 9 + t;
                for (size_t j0 = 0; j0 < np; j0 += WG_CHUNK) {
                    size_t je = np - j0 < WG_CHUNK ? np : j0 + WG_CHUNK;
                    float tot = 0.0f;
                    for (size_t b0 = j0; b0 < je; b0 += WG_BLOCK) {
                        size_t be = je - b0 < WG_BLOCK ? je : b0 + WG_BLOCK;
                        float s = 0.0f;
                        for (size_t j = b0; j < be; j++) {
                            size_t i = j / hw, p = j % hw;
                            if (!wg_inside(h, w, p / w, p % w, t))
                                continue;
                            s = fmaf(gy[(i * co + o) * hw + p],
                                     x[(i * ci + c) * hw + (size_t)((ptrdiff_t)p + sh)], s);
                        }
                        tot = b0 == j0 ? s : tot + s;
                    }
                    *g = *g + tot;
                }
            }
}

#if WG_X86

/* The block loop of both levels: P the intrinsics' prefix, V the vector type, LN its lanes.
 * acc[t * nv + v] = the chains of vector v (nv = 1 or 2) of output channels x tap t over the
 * pairs [b0, be) of the chunk that starts at pair j0: gt holds the chunk's transposed gy (vector
 * v at gt + v * WG_CHUNK * LN), x is input channel c of image 0 (images ci * hw apart). pw = 8,
 * 4, 2 or 1: pw x pw planes, block and chunk made of whole images, the taps known at compile
 * time; pw = 0: any h x w plane. */
#define WG_BLOCK_FN(name, tgt, V, P, LN)                                                          \
    __attribute__((target(tgt), always_inline)) static inline void name(                          \
        size_t nv, size_t pw, size_t h, size_t w, size_t ci, size_t j0, size_t b0, size_t be,    \
        const float *gt, const float *x, V *acc)                                                  \
    {                                                                                             \
        size_t hw = pw != 0 ? pw * pw : h * w;                                                    \
        _Pragma("GCC unroll 18") for (size_t k = 0; k < 9 * nv; k++) acc[k] = P##_setzero_ps();   \
        if (pw != 0) {                                                                            \
            for (size_t i = b0 / hw; i < be / hw; i++) {                                          \
                const float *xc = x + i * ci * hw, *g = gt + (i * hw - j0) * LN;                  \
                _Pragma("GCC unroll 64") for (size_t p = 0; p < hw; p++)                          \
                {                                                                                 \
                    V g0 = P##_load_ps(g + p * LN);                                               \
                    V g1 = nv > 1 ? P##_load_ps(g + WG_CHUNK * LN + p * LN) : g0;                 \
                    _Pragma("GCC unroll 9") for (size_t t = 0; t < 9; t++)                        \
                    {                                                                             \
                        if (!wg_inside(pw, pw, p / pw, p % pw, t))                                \
                            continue;                                                             \
                        V xv = P##_set1_ps(xc[(ptrdiff_t)p + wg_shift(pw, t)]);                   \
                        acc[t * nv] = P##_fmadd_ps(g0, xv, acc[t * nv]);                          \
                        if (nv > 1)                                                               \
                            acc[t * nv + 1] = P##_fmadd_ps(g1, xv, acc[t * nv + 1]);              \
                    }                                                                             \
                }                                                                                 \
            }                                                                                     \
            return;                                                                               \
        }                                                                                         \
        for (size_t j = b0; j < be; j++) {                                                        \
            size_t i = j / hw, p = j % hw, py = p / w, px = p % w;                                \
            const float *xp = x + i * ci * hw + p, *g = gt + (j - j0) * LN;                       \
            V g0 = P##_load_ps(g);                                                                \
            V g1 = nv > 1 ? P##_load_ps(g + WG_CHUNK * LN) : g0;                                  \
            _Pragma("GCC unroll 9") for (size_t t = 0; t < 9; t++)                                \
            {                                                                                     \
                if (!wg_inside(h, w, py, px, t))                                                  \
                    continue;                                                                     \
                V xv = P##_set1_ps(xp[wg_shift(w, t)]);                                           \
                acc[t * nv] = P##_fmadd_ps(g0, xv, acc[t * nv]);                                  \
                if (nv > 1)                                                                       \
                    acc[t * nv + 1] = P##_fmadd_ps(g1, xv, acc[t * nv + 1]);                      \
            }                                                                                     \
        }                                                                                         \
    }

/* A tile's chunk sums: tot[k] (k < nk) = the sum in order of acc[k] over the blocks [b0, be) of
 * the chunk [j0, je), blockcall filling acc with one block's chains. */
#define WG_CHUNK_SUMS(P, nk, blockcall)                                                           \
    for (size_t b0 = j0; b0 < je; b0 += WG_BLOCK) {                                               \
        size_t be = je - b0 < WG_BLOCK ? je : b0 + WG_BLOCK;                                      \
        blockcall;                                                                                \
        _Pragma("GCC unroll 27") for (size_t k = 0; k < (nk); k++) tot[k] =                       \
            b0 == j0 ? acc[k] : P##_add_ps(tot[k], acc[k]);                                       \
    }

/* The tile of both levels (block: the level's WG_BLOCK_FN, TS >= nv * LN):
 * tb[t * TS + LN * v + l] (t < 9, v < nv) = the chunk's sums of its pairs [j0, je) for output
 * channel LN * v + l of the tile (block's chains per block of pairs, their sums added in
 * order). */
#define WG_TILE_FN(name, tgt, V, P, LN, block, TS)                                                \
    __attribute__((target(tgt), always_inline)) static inline void name(                          \
        size_t nv, size_t pw, size_t h, size_t w, size_t ci, size_t j0, size_t je,               \
        const float *gt, const float *x, float *tb)                                               \
    {                                                                                             \
        V tot[18], acc[18];                                                                       \
        _Pragma("GCC unroll 18") for (size_t k = 0; k < 18; k++) tot[k] = P##_setzero_ps();       \
        WG_CHUNK_SUMS(P, 9 * nv, block(nv, pw, h, w, ci, j0, b0, be, gt, x, acc));              \
        _Pragma("GCC unroll 18") for (size_t k = 0; k < 9 * nv; k++)                              \
            P##_store_ps(tb + (k / nv) * TS + (k % nv) * LN, tot[k]);                             \
    }

/* A level's weight gradient: the pw x pw planes with their taps unrolled (run(pw, ...)), others
 * through run(0, ...). */
#define WG_LEVEL_FN(name, tgt, run)                                                               \
    __attribute__((target(tgt))) static void name(size_t n, size_t ci, size_t co, size_t h,      \
                                                  size_t w, const float *gy, const float *x,     \
                                                  float *gw)                                     \
    {                                                                                             \
        if (h == w && (h == 8 || h == 4 || h == 2 || h == 1)) {                                   \
            if (h == 8)                                                                           \
                run(8, n, ci, co, h, w, gy, x, gw);                                               \
            else if (h == 4)                                                                      \
                run(4, n, ci, co, h, w, gy, x, gw);                                               \
            else if (h == 2)                                                                      \
                run(2, n, ci, co, h, w, gy, x, gw);                                               \
            else                                                                                  \
                run(1, n, ci, co, h, w, gy, x, gw);                                               \
        } else {                                                                                  \
            run(0, n, ci, co, h, w, gy, x, gw);                                                   \
        }                                                                                         \
    }

/* ---- The narrow tile: input channels in the lanes ----------------------------------------- *
 * For co below the lane count (the U-Net's last convolution: 32 -> 1 or 3 channels) the tile
 * above leaves lanes empty. This one transposes a chunk's x once per block of LN input channels
 * to pixel-major (xt[pixel * LN + l] = x[i, c0 + l, p], the chunk's pixels and the rows its taps
 * read around them), then runs NO output channels x the 9 taps (9 * NO accumulators) over the
 * pairs: per pair one broadcast of gy per output channel and, per tap inside the plane, one load
 * of xt and NO FMAs. Lane l is input channel c0 + l's own chain in the documented order, so the
 * bits are those of the other tile. Planes up to WG_NARROW_MAXW wide (the buffer's halo). */
#define WG_NARROW_MAXW 128
/* Pixels of xt: a chunk's pairs, plus w + 1 pixels of halo at each end (whole images inside the
 * chunk need none). */
#define WG_XT_PIX (WG_CHUNK + 2 * (WG_NARROW_MAXW + 1))

/* Whether the narrow tile computes the weight gradient (LN the level's lanes): a rule of the
 * shapes only. */
static inline int wg_narrow(size_t ln, size_t ci, size_t co, size_t w)
{
    return co < ln && co < ci && w <= WG_NARROW_MAXW;
}

/* The narrow tile's block loop of both levels: acc[t * NO + k] = the chains of input channels
 * c0 .. c0 + LN - 1 (lanes) x tap t for output channel o + k over the pairs [b0, be) of the chunk
 * whose first image is i0: gy is output channel o of image 0 (images co * hw apart), pixel p of
 * image i at xt + (off[i - i0] + p) * LN. pw as in WG_BLOCK_FN. */
#define WG_NBLOCK_FN(name, tgt, V, P, LN, NO)                                                     \
    __attribute__((target(tgt), always_inline)) static inline void name(                          \
        size_t pw, size_t h, size_t w, size_t co, size_t i0, size_t b0, size_t be,               \
        const float *gy, const float *xt, const ptrdiff_t *off, V *acc)                           \
    {                                                                                             \
        size_t hw = pw != 0 ? pw * pw : h * w;                                                    \
        _Pragma("GCC unroll 27") for (size_t k = 0; k < 9 * NO; k++) acc[k] = P##_setzero_ps();   \
        if (pw != 0) {                                                                            \
            for (size_t i = b0 / hw; i < be / hw; i++) {                                          \
                const float *xi = xt + off[i - i0] * (ptrdiff_t)LN, *g = gy + i * co * hw;        \
                _Pragma("GCC unroll 64") for (size_t p = 0; p < hw; p++)                          \
                {                                                                                 \
                    V gv[NO];                                                                     \
                    _Pragma("GCC unroll 3") for (size_t k = 0; k < NO; k++)                       \
                        gv[k] = P##_set1_ps(g[k * hw + p]);                                       \
                    _Pragma("GCC unroll 9") for (size_t t = 0; t < 9; t++)                        \
                    {                                                                             \
                        if (!wg_inside(pw, pw, p / pw, p % pw, t))                                \
                            continue;                                                             \
                        V xv = P##_load_ps(xi + ((ptrdiff_t)p + wg_shift(pw, t)) * LN);           \
                        _Pragma("GCC unroll 3") for (size_t k = 0; k < NO; k++)                   \
                            acc[t * NO + k] = P##_fmadd_ps(gv[k], xv, acc[t * NO + k]);           \
                    }                                                                             \
                }                                                                                 \
            }                                                                                     \
            return;                                                                               \
        }                                                                                         \
        size_t i = b0 / hw, p = b0 % hw, py = p / w, px = p % w; /* pair j's, stepped */         \
        for (size_t j = b0; j < be; j++) {                                                        \
            int edge = py - 1 >= h - 2 || px - 1 >= w - 2; /* a tap outside? (h, w < 3 wrap) */ \
            const float *xp = xt + (off[i - i0] + (ptrdiff_t)p) * (ptrdiff_t)LN;                  \
            const float *g = gy + i * co * hw + p;                                                \
            V gv[NO];                                                                             \
            _Pragma("GCC unroll 3") for (size_t k = 0; k < NO; k++)                               \
                gv[k] = P##_set1_ps(g[k * hw]);                                                   \
            _Pragma("GCC unroll 9") for (size_t t = 0; t < 9; t++)                                \
            {                                                                                     \
                if (edge && !wg_inside(h, w, py, px, t))                                          \
                    continue;                                                                     \
                V xv = P##_load_ps(xp + wg_shift(w, t) * (ptrdiff_t)LN);                          \
                _Pragma("GCC unroll 3") for (size_t k = 0; k < NO; k++)                           \
                    acc[t * NO + k] = P##_fmadd_ps(gv[k], xv, acc[t * NO + k]);                   \
            }                                                                                     \
            p++;                                                                                  \
            if (++px == w) {                                                                      \
                px = 0;                                                                           \
                if (++py == h)                                                                    \
                    py = 0, p = 0, i++;                                                           \
            }                                                                                     \
        }                                                                                         \
    }

/* The narrow tile of both levels (block: the level's WG_NBLOCK_FN for NO output channels):
 * tb[(k * 9 + t) * LN + l] = the chunk's sums of its pairs [j0, je) for output channel o + k,
 * input channel c0 + l and tap t. */
#define WG_NTILE_FN(name, tgt, V, P, LN, NO, block)                                               \
    __attribute__((target(tgt), always_inline)) static inline void name(                          \
        size_t pw, size_t h, size_t w, size_t co, size_t j0, size_t je, const float *gy,         \
        const float *xt, const ptrdiff_t *off, float *tb)                                         \
    {                                                                                             \
        size_t i0 = j0 / (pw != 0 ? pw * pw : h * w);                                             \
        V tot[9 * NO], acc[9 * NO];                                                               \
        _Pragma("GCC unroll 27") for (size_t k = 0; k < 9 * NO; k++) tot[k] = P##_setzero_ps();   \
        WG_CHUNK_SUMS(P, 9 * NO, block(pw, h, w, co, i0, b0, be, gy, xt, off, acc));            \
        _Pragma("GCC unroll 27") for (size_t k = 0; k < 9 * NO; k++) {                            \
            size_t ko = k % NO, t = k / NO;                                                       \
            P##_store_ps(tb + (ko * 9 + t) * LN, tot[k]);                                         \
        }                                                                                         \
    }

/* gw[o + k, c0 + l, t] += tb[(k * 9 + t) * LN + l] for k < no, l < nc (gw rows of 9 ci). */
static inline void wg_nflush(size_t ci, size_t o, size_t no, size_t c0, size_t nc, size_t ln,
                             const float *tb, float *gw)
{
    for (size_t k = 0; k < no; k++)
        for (size_t l = 0; l < nc; l++) {
            float *g = gw + ((o + k) * ci + c0 + l) * 9;
            for (size_t t = 0; t < 9; t++)
                g[t] = g[t] + tb[(k * 9 + t) * ln + l];
        }
}

/* The narrow version of a level (transpose: out[k * LN + l] = W[l * ldw + k] for l < nr, +0
 * from nr on, k < K; tile1 / tileN: WG_NTILE_FN for 1 / NO output channels): chunk by chunk,
 * blocks of LN input channels transposed with their halo, then NO output channels at a time. */
#define WG_NRUN_FN(name, tgt, LN, NO, transpose, tile1, tileN)                                    \
    __attribute__((target(tgt), always_inline)) static inline void name(                          \
        size_t pw, size_t n, size_t ci, size_t co, size_t h, size_t w, const float *gy,          \
        const float *x, float *gw)                                                                \
    {                                                                                             \
        float xt[WG_XT_PIX * LN] __attribute__((aligned(64)));                                    \
        float tb[9 * NO * LN] __attribute__((aligned(64)));                                       \
        ptrdiff_t off[WG_CHUNK + 1];                                                              \
        size_t hw = h * w, np = n * hw;                                                           \
        for (size_t j0 = 0; j0 < np; j0 += WG_CHUNK) {                                            \
            size_t je = np - j0 < WG_CHUNK ? np : j0 + WG_CHUNK;                                  \
            size_t i0 = j0 / hw, i1 = (je - 1) / hw;                                              \
            for (size_t c0 = 0; c0 < ci; c0 += LN) {                                              \
                size_t nc = ci - c0 < LN ? ci - c0 : LN, pos = 0;                                 \
                for (size_t i = i0; i <= i1; i++) {                                               \
                    size_t pa = i == i0 ? j0 % hw : 0, pb = i == i1 ? (je - 1) % hw + 1 : hw;     \
                    size_t lo = pa > w + 1 ? pa - w - 1 : 0;                                      \
                    size_t hi = hw - pb > w + 1 ? pb + w + 1 : hw;                                \
                    transpose(x + (i * ci + c0) * hw + lo, hw, nc, hi - lo, xt + pos * LN);       \
                    off[i - i0] = (ptrdiff_t)pos - (ptrdiff_t)lo;                                 \
                    pos += hi - lo;                                                               \
                }                                                                                 \
                size_t o = 0;                                                                     \
                for (; o + NO <= co; o += NO) {                                                   \
                    tileN(pw, h, w, co, j0, je, gy + o * hw, xt, off, tb);                        \
                    wg_nflush(ci, o, NO, c0, nc, LN, tb, gw);                                     \
                }                                                                                 \
                for (; o < co; o++) {                                                             \
                    tile1(pw, h, w, co, j0, je, gy + o * hw, xt, off, tb);                        \
                    wg_nflush(ci, o, 1, c0, nc, LN, tb, gw);                                      \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
    }

/* A level's choice of tile (LN its lanes): nrun (WG_NRUN_FN) where wg_narrow says so, else
 * run (the wide tile). */
#define WG_ANY_FN(name, tgt, LN, nrun, run)                                                       \
    __attribute__((target(tgt), always_inline)) static inline void name(                          \
        size_t pw, size_t n, size_t ci, size_t co, size_t h, size_t w, const float *gy,          \
        const float *x, float *gw)                                                                \
    {                                                                                             \
        if (wg_narrow(LN, ci, co, w))                                                             \
            nrun(pw, n, ci, co, h, w, gy, x, gw);                                                 \
        else                                                                                      \
            run(pw, n, ci, co, h, w, gy, x, gw);                                                  \
    }

/* ---- AVX-512 ----------------------------------------------------------------------------- */
#if SCORE__SIMD_LEVEL >= 2
WG_BLOCK_FN(wg_block512, "avx512f", __m512, _mm512, 16)

WG_TILE_FN(wg_tile512, "avx512f", __m512, _mm512, 16, wg_block512, 32)

/* gw[o, c, t] (rows of 9 ci floats) += tb[(c * 9 + t) * 32 + o] for o < mo, c < nc: the sums
 * of nc consecutive input channels, transposed in 16 x 16 blocks (9 ci contiguous floats per
 * output row). */
__attribute__((target("avx512f"))) static void wg_flush512(size_t ci, size_t mo, size_t nc,
                                                           const float *tb, float *gw)
{
    float out[32 * 16] __attribute__((aligned(64)));
    for (size_t k0 = 0; k0 < nc * 9; k0 += 16) {
        size_t kr = nc * 9 - k0 < 16 ? nc * 9 - k0 : 16;
        __mmask16 m = (__mmask16)((1u << kr) - 1u);
        score__transpose16_avx512(tb + k0 * 32, 32, kr, mo, out); /* out[o * 16 + j] */
        for (size_t o = 0; o < mo; o++) {
            float *gr = gw + o * ci * 9 + k0;
            _mm512_mask_storeu_ps(gr, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, gr),
                                                       _mm512_load_ps(out + o * 16)));
        }
    }
}

/* gt (vector v at gt + v * WG_CHUNK * 16, nv vectors) = gy of output channels o0 .. o0 + mo - 1
 * at the pairs [j0, je), transposed (lanes from mo on: +0). */
__attribute__((target("avx512f"))) static void
wg_transpose512(size_t nv, size_t co, size_t hw, size_t o0, size_t mo, size_t j0, size_t je,
                const float *gy, float *gt)
{
    for (size_t v = 0; v < nv; v++) {
        size_t nr = mo > 16 * v ? (mo - 16 * v < 16 ? mo - 16 * v : 16) : 0;
        float *gv = gt + v * WG_CHUNK * 16;
        if (hw == 1) { /* gy[i, o] rows: the lanes are consecutive already */
            __mmask16 m = (__mmask16)((1u << nr) - 1u);
            for (size_t j = j0; j < je; j++)
                _mm512_store_ps(gv + (j - j0) * 16,
                                _mm512_maskz_loadu_ps(m, gy + j * co + o0 + 16 * v));
            continue;
        }
        for (size_t j = j0; j < je;) {
            size_t i = j / hw, p = j % hw, k = hw - p < je - j ? hw - p : je - j;
            score__transpose16_avx512(gy + (i * co + o0 + 16 * v) * hw + p, hw, nr, k,
                                      gv + (j - j0) * 16);
            j += k;
        }
    }
}

/* The AVX-512 version: chunk by chunk, blocks of 32 output channels (16 at the end) x each input
 * channel (pw: wg_block512's). */
__attribute__((target("avx512f"), always_inline)) static inline void
wgrad_run512(size_t pw, size_t n, size_t ci, size_t co, size_t h, size_t w, const float *gy,
             const float *x, float *gw)
{
    float gt[2 * WG_CHUNK * 16] __attribute__((aligned(64))); /* 32 KiB */
    float tb[WG_FLUSH_C * 9 * 32] __attribute__((aligned(64))); /* 18 KiB */
    size_t hw = h * w, np = n * hw;
    for (size_t j0 = 0; j0 < np; j0 += WG_CHUNK) {
        size_t je = np - j0 < WG_CHUNK ? np : j0 + WG_CHUNK;
        for (size_t o0 = 0; o0 < co; o0 += 32) {
            size_t mo = co - o0 < 32 ? co - o0 : 32;
            wg_transpose512(mo > 16 ? 2 : 1, co, hw, o0, mo, j0, je, gy, gt);
            for (size_t c0 = 0; c0 < ci; c0 += WG_FLUSH_C) {
                size_t nc = ci - c0 < WG_FLUSH_C ? ci - c0 : WG_FLUSH_C;
                for (size_t o = 0; o < mo; o++) /* gw's rows, while the tiles run */
                    for (size_t k = 0; k < nc * 9; k += 16)
                        _mm_prefetch((const char *)(gw + (o0 + o) * ci * 9 + c0 * 9 + k),
                                     _MM_HINT_T0);
                for (size_t c = 0; c < nc; c++) {
                    const float *xc = x + (c0 + c) * hw;
                    if (mo > 16)
                        wg_tile512(2, pw, h, w, ci, j0, je, gt, xc, tb + c * 9 * 32);
                    else
                        wg_tile512(1, pw, h, w, ci, j0, je, gt, xc, tb + c * 9 * 32);
                }
                wg_flush512(ci, mo, nc, tb, gw + (o0 * ci + c0) * 9);
            }
        }
    }
}

WG_NBLOCK_FN(wg_nblock512_1, "avx512f", __m512, _mm512, 16, 1)
WG_NBLOCK_FN(wg_nblock512_2, "avx512f", __m512, _mm512, 16, 2)
WG_NTILE_FN(wg_ntile512_1, "avx512f", __m512, _mm512, 16, 1, wg_nblock512_1)
WG_NTILE_FN(wg_ntile512_2, "avx512f", __m512, _mm512, 16, 2, wg_nblock512_2)
WG_NRUN_FN(wgrad_nrun512, "avx512f", 16, 2, score__transpose16_avx512, wg_ntile512_1,
           wg_ntile512_2)

/* The AVX-512 version: the narrow tile for fewer output channels than lanes, the wide one
 * otherwise. */
WG_ANY_FN(wgrad_any512, "avx512f", 16, wgrad_nrun512, wgrad_run512)

WG_LEVEL_FN(wgrad_avx512, "avx512f", wgrad_any512)
#endif /* SCORE__SIMD_LEVEL >= 2 */

/* ---- AVX2 with FMA ----------------------------------------------------------------------- *
 * One vector of 8 output channels x the 9 taps: 9 accumulators of the 16 registers; the chunk's
 * sums (9 more vectors) wait in memory between blocks. The same chains lane by lane. gy is
 * transposed and the sums go to gw through 8 x 8 transpositions in registers. */

/* One vector of 8 output channels (nv = 1): gt[pair * 8 + l]. */
WG_BLOCK_FN(wg_block256, "avx2,fma", __m256, _mm256, 8)

/* WG_TILE_FN for nv = 1 with the chunk's sums in tb (tb[t * 8 + l], 32-byte aligned) instead of
 * registers: the same float additions in the same order. */
__attribute__((target("avx2,fma"), always_inline)) static inline void
wg_tile256(size_t pw, size_t h, size_t w, size_t ci, size_t j0, size_t je, const float *gt,
           const float *x, float *tb)
{
    __m256 acc[9];
    for (size_t b0 = j0; b0 < je; b0 += WG_BLOCK) {
        size_t be = je - b0 < WG_BLOCK ? je : b0 + WG_BLOCK;
        wg_block256(1, pw, h, w, ci, j0, b0, be, gt, x, acc);
#pragma GCC unroll 9
        for (size_t k = 0; k < 9; k++)
            _mm256_store_ps(tb + k * 8, b0 == j0 ? acc[k]
                                                 : _mm256_add_ps(_mm256_load_ps(tb + k * 8),
                                                                 acc[k]));
    }
}

/* Lanes l < m of an 8-lane mask vector (m <= 8). */
__attribute__((target("avx2,fma"), always_inline)) static inline __m256i wg_lanes256(size_t m)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)m),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* gw[o, c, t] (rows of 9 ci floats) += tb[(c * 9 + t) * 8 + o] for o < mo, c < nc: the sums of
 * nc consecutive input channels, transposed in 8 x 8 blocks (9 nc contiguous floats per output
 * row). */
__attribute__((target("avx2,fma"))) static void wg_flush256(size_t ci, size_t mo, size_t nc,
                                                            const float *tb, float *gw)
{
    for (size_t k0 = 0; k0 < nc * 9; k0 += 8) {
        size_t kr = nc * 9 - k0 < 8 ? nc * 9 - k0 : 8;
        __m256 r[8], out[8];
        __m256i m = wg_lanes256(kr);
#pragma GCC unroll 8
        for (size_t k = 0; k < 8; k++)
            r[k] = k < kr ? _mm256_load_ps(tb + (k0 + k) * 8) : _mm256_setzero_ps();
        score__transpose8_regs(r, out); /* out[o] lane k: tb[(k0 + k) * 8 + o] */
        for (size_t o = 0; o < mo; o++) {
            float *gr = gw + o * ci * 9 + k0;
            if (kr == 8)
                _mm256_storeu_ps(gr, _mm256_add_ps(_mm256_loadu_ps(gr), out[o]));
            else
                _mm256_maskstore_ps(gr, m, _mm256_add_ps(_mm256_maskload_ps(gr, m), out[o]));
        }
    }
}

/* gt[(j - j0) * 8 + l] = gy[i, o0 + l, p] for the pairs j = i * hw + p in [j0, je) and l < mo
 * (lanes from mo on: +0): 8 x 8 transpositions when hw is a multiple of 8 (then every 8 pairs
 * from j0, a multiple of 8, are in one image), else element by element. */
__attribute__((target("avx2,fma"))) static void wg_transpose256(size_t co, size_t hw, size_t o0,
                                                                size_t mo, size_t j0, size_t je,
                                                                const float *gy, float *gt)
{
    if (hw % 8 != 0) {
        for (size_t j = j0; j < je; j++) {
            size_t i = j / hw, p = j % hw;
            for (size_t l = 0; l < 8; l++)
                gt[(j - j0) * 8 + l] = l < mo ? gy[(i * co + o0 + l) * hw + p] : 0.0f;
        }
        return;
    }
    for (size_t j = j0; j < je; j += 8) {
        size_t i = j / hw, p = j % hw;
        const float *g = gy + (i * co + o0) * hw + p;
        __m256 r[8], out[8];
#pragma GCC unroll 8
        for (size_t l = 0; l < 8; l++)
            r[l] = l < mo ? _mm256_loadu_ps(g + l * hw) : _mm256_setzero_ps();
        score__transpose8_regs(r, out);
#pragma GCC unroll 8
        for (size_t k = 0; k < 8; k++)
            _mm256_store_ps(gt + (j - j0 + k) * 8, out[k]);
    }
}

/* The AVX2 version: chunk by chunk, blocks of 8 output channels x each input channel (pw:
 * wg_block256's), the sums of WG_FLUSH_C input channels added to gw at once. */
__attribute__((target("avx2,fma"), always_inline)) static inline void
wgrad_run256(size_t pw, size_t n, size_t ci, size_t co, size_t h, size_t w, const float *gy,
             const float *x, float *gw)
{
    float gt[WG_CHUNK * 8] __attribute__((aligned(32)));          /* 8 KiB */
    float tb[WG_FLUSH_C * 9 * 8] __attribute__((aligned(32)));    /* 4.5 KiB */
    size_t hw = h * w, np = n * hw;
    for (size_t j0 = 0; j0 < np; j0 += WG_CHUNK) {
        size_t je = np - j0 < WG_CHUNK ? np : j0 + WG_CHUNK;
        for (size_t o0 = 0; o0 < co; o0 += 8) {
            size_t mo = co - o0 < 8 ? co - o0 : 8;
            wg_transpose256(co, hw, o0, mo, j0, je, gy, gt);
            for (size_t c0 = 0; c0 < ci; c0 += WG_FLUSH_C) {
                size_t nc = ci - c0 < WG_FLUSH_C ? ci - c0 : WG_FLUSH_C;
                for (size_t c = 0; c < nc; c++)
                    wg_tile256(pw, h, w, ci, j0, je, gt, x + (c0 + c) * hw, tb + c * 9 * 8);
                wg_flush256(ci, mo, nc, tb, gw + (o0 * ci + c0) * 9);
            }
        }
    }
}

/* The narrow tile's transpose at this level: out[k * 8 + l] = W[l * ldw + k] for l < nr, +0 from
 * nr on, k < K. */
__attribute__((target("avx2,fma"))) static void wg_transpose8(const float *W, size_t ldw,
                                                              size_t nr, size_t K, float *out)
{
    for (size_t l = 0; l < 8; l++)
        for (size_t k = 0; k < K; k++)
            out[k * 8 + l] = l < nr ? W[l * ldw + k] : 0.0f;
}

/* One output channel at a time (9 accumulators of the 16 registers). */
WG_NBLOCK_FN(wg_nblock256, "avx2,fma", __m256, _mm256, 8, 1)
WG_NTILE_FN(wg_ntile256, "avx2,fma", __m256, _mm256, 8, 1, wg_nblock256)
WG_NRUN_FN(wgrad_nrun256, "avx2,fma", 8, 1, wg_transpose8, wg_ntile256, wg_ntile256)

/* The AVX2 version: the narrow tile for fewer output channels than lanes, the wide one
 * otherwise. */
WG_ANY_FN(wgrad_any256, "avx2,fma", 8, wgrad_nrun256, wgrad_run256)

WG_LEVEL_FN(wgrad_avx2, "avx2,fma", wgrad_any256)
#endif /* WG_X86 */

void score__conv3_wgrad_at(int level, size_t n, size_t ci, size_t co, size_t h, size_t w,
                           const float *gy, const float *x, float *gw)
{
    if (n == 0 || co == 0 || ci == 0 || h == 0 || w == 0)
        return;
#if WG_X86
#if SCORE__SIMD_LEVEL >= 2
    if (level >= 2) {
        wgrad_avx512(n, ci, co, h, w, gy, x, gw);
        return;
    }
#endif
    if (level >= 1) {
        wgrad_avx2(n, ci, co, h, w, gy, x, gw);
        return;
    }
#else
    (void)level;
#endif
    wgrad_portable(n, ci, co, h, w, gy, x, gw);
}

void score__conv3_wgrad(size_t n, size_t ci, size_t co, size_t h, size_t w, const float *gy,
                        const float *x, float *gw)
{
    score__conv3_wgrad_at(score__gemm_cols_level(), n, ci, co, h, w, gy, x, gw);
}
