/* The kernel layer: CBLAS wrappers and fused elementwise kernels. This is the only file in the
 * library that includes cblas.h. */
/* BLIS's cblas.h pulls in POSIX thread types that strict -std=c11 hides. */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <cblas.h>

#include "kernel-priv.h"

/* Largest row count handed to one CBLAS call (CBLAS takes int sizes). */
#define SCORE__BLAS_MAX_ROWS ((size_t)INT_MAX / 2)

static void scale_rows(size_t M, size_t N, float beta, float *C, size_t ldc)
{
    for (size_t i = 0; i < M; i++) {
        float *c = C + i * ldc;
        if (beta == 0.0f)
            memset(c, 0, N * sizeof *c);
        else if (beta != 1.0f)
            for (size_t j = 0; j < N; j++)
                c[j] *= beta;
    }
}

void score__sgemm(int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha,
                  const float *A, size_t lda, const float *B, size_t ldb, float beta, float *C,
                  size_t ldc)
{
    if (M == 0 || N == 0)
        return;
    if (K == 0 || alpha == 0.0f) {
        scale_rows(M, N, beta, C, ldc);
        return;
    }
    /* Chunk over rows of C so that every size fits CBLAS's int arguments. */
    for (size_t r0 = 0; r0 < M; r0 += SCORE__BLAS_MAX_ROWS) {
        size_t m = M - r0 < SCORE__BLAS_MAX_ROWS ? M - r0 : SCORE__BLAS_MAX_ROWS;
        const float *a = trans_a ? A + r0 : A + r0 * lda;
        /* beta == 0: the BLAS contract is that C "need not be set on input" (reference BLAS,
         * OpenBLAS and BLIS overwrite it without reading, so NaN does not propagate; the
         * kernel test checks this with NaN-filled C). No clearing pass is needed. */
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                    trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)N, (int)K, alpha, a,
                    (int)lda, B, (int)ldb, beta, C + r0 * ldc, (int)ldc);
    }
}

int score__blas_threads(void)
{
#if defined(OPENBLAS_VERSION)
    int n = openblas_get_num_threads();
    return n > 0 ? n : 1;
#else
    return 1; /* unknown: callers assume a single-threaded BLAS */
#endif
}

void score__sgemv(int trans_a, size_t M, size_t N, float alpha, const float *A, size_t lda,
                  const float *x, float beta, float *y)
{
    size_t ny = trans_a ? N : M;
    if (ny == 0)
        return;
    if (beta == 0.0f)
        memset(y, 0, ny * sizeof *y);
    if ((trans_a ? M : N) == 0 || alpha == 0.0f) {
        if (beta != 0.0f && beta != 1.0f)
            for (size_t i = 0; i < ny; i++)
                y[i] *= beta;
        return;
    }
    cblas_sgemv(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, (int)M, (int)N, alpha, A,
                (int)lda, x, 1, beta, y, 1);
}

SCORE__VEC_CLONES
void score__saxpy(size_t n, float alpha, const float *x, float *y)
{
    for (size_t i = 0; i < n; i++)
        y[i] += alpha * x[i];
}

SCORE__VEC_CLONES
void score__add_clear(size_t n, float *restrict x, float *restrict y)
{
    for (size_t i = 0; i < n; i++) {
        y[i] += x[i];
        x[i] = 0.0f;
    }
}

/* ---- sine and cosine features ---- */

/* sin and cos of a double a with |a| < 2^30, written so that a loop over it vectorizes:
 * q = round(2 a / pi) by the 1.5 * 2^52 shift (q's low bits then sit in the low mantissa bits
 * of the shifted value), r = a - q pi/2 in three parts (Cody-Waite: the first two parts have
 * 22 bits, so q * part is exact for |q| < 2^31; the reduction error is below 1e-21), |r| <=
 * pi/4, then the Taylor series of sin and cos on r to degree 17 and 18 (truncation below
 * 5e-17), and the quadrant's sign and swap. */
SCORE__INLINE void sincos_vec(double a, double *s_out, double *c_out)
{
    const double shift = 6755399441055744.0; /* 1.5 * 2^52 */
    double qs = a * 0.63661977236758134308 + shift, q = qs - shift, r, r2, sp, cp, s, c;
    uint64_t bits;
    unsigned quad;
    memcpy(&bits, &qs, sizeof bits);
    quad = (unsigned)(bits & 3u);
    r = a - q * 1.5707964897155762;        /* pi/2 rounded to 22 bits */
    r = r - q * -1.6292068494294654e-07;   /* the next 22 bits */
    r = r - q * 5.390302858158119e-15;     /* the rest, to double */
    r2 = r * r;
    sp = 1.0 / 355687428096000.0;          /* 1/17! */
    sp = sp * r2 - 1.0 / 1307674368000.0;  /* 1/15! */
    sp = sp * r2 + 1.0 / 6227020800.0;
    sp = sp * r2 - 1.0 / 39916800.0;
    sp = sp * r2 + 1.0 / 362880.0;
    sp = sp * r2 - 1.0 / 5040.0;
    sp = sp * r2 + 1.0 / 120.0;
    sp = sp * r2 - 1.0 / 6.0;
    s = r + r * r2 * sp;
    cp = 1.0 / 6402373705728000.0;         /* 1/18! */
    cp = cp * r2 - 1.0 / 20922789888000.0; /* 1/16! */
    cp = cp * r2 + 1.0 / 87178291200.0;
    cp = cp * r2 - 1.0 / 479001600.0;
    cp = cp * r2 + 1.0 / 3628800.0;
    cp = cp * r2 - 1.0 / 40320.0;
    cp = cp * r2 + 1.0 / 720.0;
    cp = cp * r2 - 1.0 / 24.0;
    cp = cp * r2 + 0.5;
    c = 1.0 - r2 * cp;
    /* quadrant k: sin(r + k pi/2) = (s, c, -s, -c)[k], cos = (c, -s, -c, s)[k] */
    *s_out = (quad & 1u) ? c : s;
    *c_out = (quad & 1u) ? s : c;
    *s_out = (quad & 2u) ? -*s_out : *s_out;
    *c_out = ((quad + 1u) & 2u) ? -*c_out : *c_out;
}

SCORE__VEC_CLONES
void score__sincos_features(size_t n, const double *freq, double c, float *sin_out,
                            float *cos_out)
{
    int big = 0;
    for (size_t i = 0; i < n; i++)
        big |= !(fabs(freq[i] * c) < 1073741824.0); /* also catches NaN */
    if (big) {
        for (size_t i = 0; i < n; i++) {
            sin_out[i] = (float)sin(freq[i] * c);
            cos_out[i] = (float)cos(freq[i] * c);
        }
        return;
    }
    for (size_t i = 0; i < n; i++) {
        double s, co;
        sincos_vec(freq[i] * c, &s, &co);
        sin_out[i] = (float)s;
        cos_out[i] = (float)co;
    }
}

/* ---- activations ---- */

static const char *const act_names[SCORE__ACT_COUNT] = {
    "identity", "silu", "softplus", "tanh", "elu", "gelu"
};

const char *score__act_name(int act)
{
    return act >= 0 && act < SCORE__ACT_COUNT ? act_names[act] : NULL;
}

int score__act_from_name(const char *name)
{
    if (name == NULL)
        return -1;
    for (int i = 0; i < SCORE__ACT_COUNT; i++)
        if (strcmp(act_names[i], name) == 0)
            return i;
    return -1;
}

#define SCORE__INV_SQRT2 0.70710678118654752440
#define SCORE__INV_SQRT2PI 0.39894228040143267794

static double sigmoid_d(double z)
{
    return z >= 0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z));
}

double score__act_f(int act, double z)
{
    switch (act) {
    case SCORE__ACT_SILU: return z * sigmoid_d(z);
    case SCORE__ACT_SOFTPLUS: return z > 0 ? z + log1p(exp(-z)) : log1p(exp(z));
    case SCORE__ACT_TANH: return tanh(z);
    case SCORE__ACT_ELU: return z > 0 ? z : expm1(z);
    case SCORE__ACT_GELU: return 0.5 * z * (1.0 + erf(z * SCORE__INV_SQRT2));
    default: return z;
    }
}

double score__act_d1(int act, double z)
{
    double s, t;
    switch (act) {
    case SCORE__ACT_SILU: s = sigmoid_d(z); return s * (1.0 + z * (1.0 - s));
    case SCORE__ACT_SOFTPLUS: return sigmoid_d(z);
    case SCORE__ACT_TANH: t = tanh(z); return 1.0 - t * t;
    case SCORE__ACT_ELU: return z > 0 ? 1.0 : exp(z);
    case SCORE__ACT_GELU:
        return 0.5 * (1.0 + erf(z * SCORE__INV_SQRT2)) + z * SCORE__INV_SQRT2PI * exp(-0.5 * z * z);
    default: return 1.0;
    }
}

double score__act_d2(int act, double z)
{
    double s, t;
    switch (act) {
    case SCORE__ACT_SILU: s = sigmoid_d(z); return s * (1.0 - s) * (2.0 + z * (1.0 - 2.0 * s));
    case SCORE__ACT_SOFTPLUS: s = sigmoid_d(z); return s * (1.0 - s);
    case SCORE__ACT_TANH: t = tanh(z); return -2.0 * t * (1.0 - t * t);
    case SCORE__ACT_ELU: return z > 0 ? 0.0 : exp(z);
    case SCORE__ACT_GELU: return SCORE__INV_SQRT2PI * exp(-0.5 * z * z) * (2.0 - z * z);
    default: return 0.0;
    }
}

/* The versions of the SiLU loops (see score__silu_rows_at): an AVX-512 and an AVX2 + FMA version
 * on x86-64 with GCC or clang, and the portable one. Unlike the GEMM of gemm-cols.c (whose
 * masked loads read past the ends of rows, which the sanitizers cannot model) they also serve
 * sanitizer builds: there the portable version's fmaf() is a library call on x86-64, some 60
 * times slower, and the sanitizers still see that version through the tests of every level. */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && SCORE__SIMD_LEVEL >= 1
#define SILU_X86 1
#else
#define SILU_X86 0
#endif

/* The SiLU loops below use fused multiply-adds, fmaf(a, b, c) = a * b + c rounded once, which
 * gives the same bits on every machine (the build never contracts a * b + c by itself: ISO C
 * mode). In the versions compiled with FMA instructions fmaf() is one vfmadd; in the portable
 * version on x86-64 it is a call to the C library's fmaf (exact; glibc's runs the FMA
 * instruction when the processor has it): about 60 times slower than the vector versions, the
 * price of identical bits where the portable version runs (-Dsimd=baseline, processors without
 * AVX2 + FMA, other processor families; an emulation in double with rounding to odd was slower
 * still: a long chain of dependent operations that did not vectorize). Where FMA is in the base
 * instruction set (FP_FAST_FMAF, e.g. AArch64) the portable version inlines and vectorizes it. */

/* Range of the argument x of exp_neg_vec (see there). The vector loops read the bounds from this
 * volatile table, not as constants: with constants GCC splits every loop into clamped and
 * unclamped lanes (constant-folding e^bound) under masks, which doubles the work. */
#define SCORE__EXP_LO -86.0f
#define SCORE__EXP_HI 80.0f
static const volatile float exp_bounds[2] = {SCORE__EXP_LO, SCORE__EXP_HI};

/* e^-z in float without library calls or divisions, so that loops over it vectorize, with the
 * same bits in every version (fused multiply-adds): x = -z is clamped to [lo, hi] = [-86, 80]
 * so that the result and 1 / (1 + result) are finite normal numbers (e^-86 = 4e-38 stands for
 * anything smaller, e^80 = 6e34 for anything larger: as an addend of 1, or in a sigmoid that is
 * then below 2e-35, the difference is far below float resolution; a NaN z becomes lo, and the
 * callers multiply by z, so a NaN still propagates). Then x = n ln2 + r with |r| <= ln2 / 2
 * (n = x log2(e) rounded to nearest by the 1.5 * 2^23 shift, whose low mantissa bits then hold
 * n; ln2 in Cephes's two parts), e^r - 1 = r + r^2 P(r) with the Cephes expf polynomial P in
 * Horner form, and the result 2^n + 2^n (e^r - 1) in one rounding, 2^n through the exponent
 * bits. Relative error about 1e-7 (the Cephes polynomial's); test-kernel.c measures the
 * sigmoid built on it. */
SCORE__INLINE float exp_neg_vec(float z, float lo, float hi)
{
    float x = -z, qs, n, r, r2, a, p, scale;
    uint32_t bits;
    x = x > lo ? x : lo; /* maxps / minps as x86 reads them: a NaN x becomes lo */
    x = x < hi ? x : hi;
    qs = fmaf(x, 1.44269504088896341f, 12582912.0f);
    n = qs - 12582912.0f;
    r = fmaf(n, -0.693359375f, x);
    r = fmaf(n, 2.12194440e-4f, r);
    r2 = r * r;
    a = fmaf(1.9875691500e-4f, r, 1.3981999507e-3f);
    a = fmaf(a, r, 8.3334519073e-3f);
    a = fmaf(a, r, 4.1665795894e-2f);
    a = fmaf(a, r, 1.6666665459e-1f);
    a = fmaf(a, r, 5.0000001201e-1f);
    p = fmaf(a, r2, r); /* e^r - 1 */
    memcpy(&bits, &qs, sizeof bits);
    bits = (bits + (127u - 0x4B400000u)) << 23; /* (n + 127) << 23; 0x4B400000 = 1.5 * 2^23 */
    memcpy(&scale, &bits, sizeof scale);
    return fmaf(p, scale, scale);
}

/* The logistic sigmoid 1 / (1 + e^-z) of SiLU without a division (a vector division costs more
 * than the rest of the sigmoid; a hardware reciprocal estimate differs between processors):
 * d = 1 + e^-z lies in [1, 6e34]; a first guess of 1 / d from the bits (0x7EF311C3 minus the
 * bits of d: relative error below 0.051) and three Newton steps r += r (1 - d r) with fused
 * multiply-adds (error 0.051^8 = 5e-11 before rounding, then within 0.51 ulp of 1 / d, the
 * correctly rounded quotient for all but 0.02% of d). Over every 1000th float in [-80, 100],
 * within 2.3 ulp of the exact sigmoid, as the division was (the rounding of d dominates; 99% of
 * the results have the division's bits); test-kernel.c measures it. lo, hi as exp_neg_vec. */
SCORE__INLINE float silu_sig(float z, float lo, float hi)
{
    float d = 1.0f + exp_neg_vec(z, lo, hi), r, e;
    uint32_t bits;
    memcpy(&bits, &d, sizeof bits);
    bits = 0x7EF311C3u - bits;
    memcpy(&r, &bits, sizeof r);
    e = fmaf(-d, r, 1.0f);
    r = fmaf(r, e, r);
    e = fmaf(-d, r, 1.0f);
    r = fmaf(r, e, r);
    e = fmaf(-d, r, 1.0f);
    return fmaf(r, e, r);
}

/* SiLU's derivatives from z, f = z s and s = sigmoid(z): phi' = s (1 + z (1 - s)) = s + f (1 - s)
 * and phi'' = s (1 - s) (2 + z (1 - 2 s)). */
SCORE__INLINE float silu_d1(float s, float f)
{
    return fmaf(f, 1.0f - s, s);
}

SCORE__INLINE float silu_d2(float z, float s)
{
    return (s * (1.0f - s)) * fmaf(z, fmaf(-2.0f, s, 1.0f), 2.0f);
}

static inline float sigmoid_f(float z)
{
    /* expf(-z) may overflow to +inf for z << 0; 1 / inf = 0 is the right limit. */
    return 1.0f / (1.0f + expf(-z));
}

/* One element: value, first and second derivative (float). SiLU: the portable arithmetic of the
 * vector loops (the same bits). */
static inline void act_eval(int act, float z, float *f, float *d1, float *d2)
{
    float s, t, e, p;
    switch (act) {
    case SCORE__ACT_SILU:
        s = silu_sig(z, SCORE__EXP_LO, SCORE__EXP_HI);
        *f = z * s;
        *d1 = silu_d1(s, *f);
        *d2 = silu_d2(z, s);
        break;
    case SCORE__ACT_SOFTPLUS:
        s = sigmoid_f(z);
        *f = z > 0.0f ? z + log1pf(expf(-z)) : log1pf(expf(z));
        *d1 = s;
        *d2 = s * (1.0f - s);
        break;
    case SCORE__ACT_TANH:
        t = tanhf(z);
        *f = t;
        *d1 = 1.0f - t * t;
        *d2 = -2.0f * t * (1.0f - t * t);
        break;
    case SCORE__ACT_ELU:
        if (z > 0.0f) {
            *f = z; *d1 = 1.0f; *d2 = 0.0f;
        } else {
            e = expf(z);
            *f = expm1f(z); *d1 = e; *d2 = e;
        }
        break;
    case SCORE__ACT_GELU:
        p = (float)SCORE__INV_SQRT2PI * expf(-0.5f * z * z);
        s = 0.5f * (1.0f + erff(z * (float)SCORE__INV_SQRT2));
        *f = z * s;
        *d1 = s + z * p;
        *d2 = p * (2.0f - z * z);
        break;
    default:
        *f = z; *d1 = 1.0f; *d2 = 0.0f;
        break;
    }
}

/* One row of the fused bias + SiLU kernel: z += bias (when has_bias), h = [res +] phi(z),
 * d1 = phi'(z), d2 = phi''(z) (when wanted). Always inlined with constant flags, so that every
 * combination is one straight vectorizable sweep over the row. Only z and h may overlap (the
 * restrict qualifiers leave the vectorizer a single run-time alias check, z against h; with
 * more pointer pairs than its limit it would fall back to scalar code).
 *
 * Every loop below takes the two halves of the row together (column c with column half + c):
 * one unit's value is a chain of about 25 dependent operations (the exp polynomial, the
 * Newton steps), and two independent chains in each iteration let the processor overlap them;
 * each column's arithmetic is unchanged. */
SCORE__INLINE void silu_one(size_t c, float *z, const float *bias, const float *res, float *h,
                            float *d1, float *d2, float lo, float hi, int has_bias,
                            int has_res, int want_d1, int want_d2)
{
    float zz = z[c], s, f;
    if (has_bias) {
        zz = zz + bias[c];
        z[c] = zz;
    }
    s = silu_sig(zz, lo, hi);
    f = zz * s;
    h[c] = has_res ? res[c] + f : f;
    if (want_d1)
        d1[c] = silu_d1(s, f);
    if (want_d2)
        d2[c] = silu_d2(zz, s);
}

/* The halves as separate arrays (suffix 0: columns 0 .., 1: columns half ..), so that the
 * vectorizer sees no dependence between them. */
SCORE__INLINE void silu_halves(size_t half, float *z0, float *z1, const float *restrict b0,
                               const float *restrict b1, const float *restrict r0,
                               const float *restrict r1, float *h0, float *h1,
                               float *restrict e0, float *restrict e1, float *restrict f0,
                               float *restrict f1, float lo, float hi, int has_bias,
                               int has_res, int want_d1, int want_d2)
{
    for (size_t c = 0; c < half; c++) {
        silu_one(c, z0, b0, r0, h0, e0, f0, lo, hi, has_bias, has_res, want_d1, want_d2);
        silu_one(c, z1, b1, r1, h1, e1, f1, lo, hi, has_bias, has_res, want_d1, want_d2);
    }
}

SCORE__INLINE void silu_loop(size_t cols, float *z, const float *restrict bias,
                             const float *restrict res, float *h, float *restrict d1,
                             float *restrict d2, float lo, float hi, int has_bias, int has_res,
                             int want_d1, int want_d2)
{
    /* (pointers that may be NULL are offset only when used) */
    size_t half = cols / 2, o = half;
    silu_halves(half, z, z + o, bias, has_bias ? bias + o : bias, res, has_res ? res + o : res,
                h, h + o, d1, want_d1 ? d1 + o : d1, d2, want_d2 ? d2 + o : d2, lo, hi,
                has_bias, has_res, want_d1, want_d2);
    if (cols % 2)
        silu_one(cols - 1, z, bias, res, h, d1, d2, lo, hi, has_bias, has_res, want_d1,
                 want_d2);
}

/* One row: picks the specialised loop. h may alias z when d1 == d2 == NULL; res (the
 * residual input, or NULL) must not alias h, d1 or d2. */
SCORE__INLINE void silu_row(size_t cols, float *z, const float *bias, const float *res, float *h,
                            float *d1, float *d2, float lo, float hi)
{
    int code = (bias != NULL) | (res != NULL) << 1 | (d1 != NULL) << 2 | (d2 != NULL) << 3;
    switch (code) {
    case 0: silu_loop(cols, z, bias, res, h, d1, d2, lo, hi, 0, 0, 0, 0); break;
    case 1: silu_loop(cols, z, bias, res, h, d1, d2, lo, hi, 1, 0, 0, 0); break;
    case 2: silu_loop(cols, z, bias, res, h, d1, d2, lo, hi, 0, 1, 0, 0); break;
    case 3: silu_loop(cols, z, bias, res, h, d1, d2, lo, hi, 1, 1, 0, 0); break;
    case 4: silu_loop(cols, z, bias, res, h, d1, d2, lo, hi, 0, 0, 1, 0); break;
    case 5: silu_loop(cols, z, bias, res, h, d1, d2, lo, hi, 1, 0, 1, 0); break;
    case 6: silu_loop(cols, z, bias, res, h, d1, d2, lo, hi, 0, 1, 1, 0); break;
    case 7: silu_loop(cols, z, bias, res, h, d1, d2, lo, hi, 1, 1, 1, 0); break;
    case 8: silu_loop(cols, z, bias, res, h, d1, d2, lo, hi, 0, 0, 0, 1); break;
    case 9: silu_loop(cols, z, bias, res, h, d1, d2, lo, hi, 1, 0, 0, 1); break;
    case 10: silu_loop(cols, z, bias, res, h, d1, d2, lo, hi, 0, 1, 0, 1); break;
    case 11: silu_loop(cols, z, bias, res, h, d1, d2, lo, hi, 1, 1, 0, 1); break;
    case 12: silu_loop(cols, z, bias, res, h, d1, d2, lo, hi, 0, 0, 1, 1); break;
    case 13: silu_loop(cols, z, bias, res, h, d1, d2, lo, hi, 1, 0, 1, 1); break;
    case 14: silu_loop(cols, z, bias, res, h, d1, d2, lo, hi, 0, 1, 1, 1); break;
    default: silu_loop(cols, z, bias, res, h, d1, d2, lo, hi, 1, 1, 1, 1); break;
    }
}

/* The in-place row of the SiLU kernel: zh = [res +] phi(zh + bias), d1 = phi'(zh + bias) (when
 * wanted), bit for bit silu_loop's values with h = z; the pre-activation is not stored (one
 * store per unit fewer). res and d1 overlap nothing. */
SCORE__INLINE void silu_one_ip(size_t c, float *zh, const float *bias, const float *res,
                               float *d1, float lo, float hi, int has_bias, int has_res,
                               int want_d1)
{
    float zz = has_bias ? zh[c] + bias[c] : zh[c];
    float s = silu_sig(zz, lo, hi), f = zz * s;
    zh[c] = has_res ? res[c] + f : f;
    if (want_d1)
        d1[c] = silu_d1(s, f);
}

SCORE__INLINE void silu_halves_ip(size_t half, float *restrict z0, float *restrict z1,
                                  const float *restrict b0, const float *restrict b1,
                                  const float *restrict r0, const float *restrict r1,
                                  float *restrict e0, float *restrict e1, float lo, float hi,
                                  int has_bias, int has_res, int want_d1)
{
    for (size_t c = 0; c < half; c++) {
        silu_one_ip(c, z0, b0, r0, e0, lo, hi, has_bias, has_res, want_d1);
        silu_one_ip(c, z1, b1, r1, e1, lo, hi, has_bias, has_res, want_d1);
    }
}

SCORE__INLINE void silu_loop_ip(size_t cols, float *zh, const float *bias, const float *res,
                                float *d1, float lo, float hi, int has_bias, int has_res,
                                int want_d1)
{
    size_t half = cols / 2, o = half;
    silu_halves_ip(half, zh, zh + o, bias, has_bias ? bias + o : bias, res,
                   has_res ? res + o : res, d1, want_d1 ? d1 + o : d1, lo, hi, has_bias,
                   has_res, want_d1);
    if (cols % 2)
        silu_one_ip(cols - 1, zh, bias, res, d1, lo, hi, has_bias, has_res, want_d1);
}

SCORE__INLINE void silu_row_ip(size_t cols, float *zh, const float *bias, const float *res,
                               float *d1, float lo, float hi)
{
    int code = (bias != NULL) | (res != NULL) << 1 | (d1 != NULL) << 2;
    switch (code) {
    case 0: silu_loop_ip(cols, zh, bias, res, d1, lo, hi, 0, 0, 0); break;
    case 1: silu_loop_ip(cols, zh, bias, res, d1, lo, hi, 1, 0, 0); break;
    case 2: silu_loop_ip(cols, zh, bias, res, d1, lo, hi, 0, 1, 0); break;
    case 3: silu_loop_ip(cols, zh, bias, res, d1, lo, hi, 1, 1, 0); break;
    case 4: silu_loop_ip(cols, zh, bias, res, d1, lo, hi, 0, 0, 1); break;
    case 5: silu_loop_ip(cols, zh, bias, res, d1, lo, hi, 1, 0, 1); break;
    case 6: silu_loop_ip(cols, zh, bias, res, d1, lo, hi, 0, 1, 1); break;
    default: silu_loop_ip(cols, zh, bias, res, d1, lo, hi, 1, 1, 1); break;
    }
}

#if SILU_X86
/* ---- explicit vector loops of the in-place SiLU rows (the inference path) ----
 *
 * The auto-vectorised loops above take two vectors per iteration (the row's halves). One
 * vector's value is a chain of about 25 dependent operations (some 100 cycles of latency); with
 * two chains per iteration the scheduler fills with waiting operations before enough chains are
 * in flight (measured: about 19 cycles per vector where the two vector ports allow about 14).
 * The loops below compute the same values with the same roundings per element (each step of
 * exp_neg_vec and silu_sig as one intrinsic, vfmadd for fmaf, vfnmadd for fmaf(-d, r, 1)) over
 * SILU_NV = 4 independent vectors interleaved step by step, so that every step has four ready
 * operations (2 and 8 vectors were slower: too few chains, spills). Two steps are written in
 * another but exact form, one vector operation fewer each:
 *   - the clamp on z instead of x = -z: y = max(min(z, -lo), -hi) is exactly -x (a NaN z gives
 *     -lo as x = lo: minps returns its second operand), and x enters only as fma(x, log2e, .) =
 *     fma(y, -log2e, .) and fma(n, c, x) = fmsub(n, c, y) (x - y is x + (-y) in IEEE);
 *   - AVX-512: 2^n as vscalefps(1, n) (exact: n = qs - 1.5 * 2^23 is an integer in
 *     [-124, 116]) instead of the integer add and shift on the bits of qs (AVX2 keeps those).
 * The same bits as silu_one_ip (the test silu_versions_agree compares every level with the
 * portable one, on 37 and 157 columns); the columns after the last whole vector go through
 * silu_one_ip.
 *
 * SILU_VEC_IP(SUF, TARGET, V, VI, W, P, BITS, SCALE) defines silu_ip_vecs_SUF (nv <= SILU_NV
 * vectors of the row zh at column c) and silu_rows_ip_SUF (all rows, as silu_rows with
 * inplace = 1): V vectors of W floats (BITS bits), VI their integer vectors, P the intrinsics'
 * prefix, SCALE(qs, n) 2^n. */
#ifndef SILU_NV
#define SILU_NV 4
#endif
#define SILU_VEC_IP(SUF, TARGET, V, VI, W, P, BITS, SCALE)                                         \
    __attribute__((target(TARGET), always_inline)) static inline void silu_ip_vecs_##SUF(          \
        size_t nv, size_t c, float *zh, const float *bias, const float *res, float *d1,            \
        V nlo, V nhi, int has_bias, int has_res, int want_d1)                                      \
    {                                                                                              \
        V z[SILU_NV], x[SILU_NV], q[SILU_NV], n[SILU_NV], r[SILU_NV], r2[SILU_NV];                 \
        V a[SILU_NV], d[SILU_NV], e[SILU_NV];                                                      \
        V one = P##_set1_ps(1.0f), shift = P##_set1_ps(12582912.0f);                               \
        VI magic = P##_set1_epi32(0x7EF311C3);                                                     \
        _Pragma("GCC unroll 8") for (size_t v = 0; v < nv; v++) {                                  \
            z[v] = P##_loadu_ps(zh + c + W * v);                                                   \
            if (has_bias)                                                                          \
                z[v] = P##_add_ps(z[v], P##_loadu_ps(bias + c + W * v));                           \
            x[v] = P##_max_ps(P##_min_ps(z[v], nlo), nhi); /* -x of exp_neg_vec */                 \
            q[v] = P##_fmadd_ps(x[v], P##_set1_ps(-1.44269504088896341f), shift);                  \
        }                                                                                          \
        _Pragma("GCC unroll 8") for (size_t v = 0; v < nv; v++) {                                  \
            n[v] = P##_sub_ps(q[v], shift);                                                        \
            r[v] = P##_fmsub_ps(n[v], P##_set1_ps(-0.693359375f), x[v]);                           \
        }                                                                                          \
        _Pragma("GCC unroll 8") for (size_t v = 0; v < nv; v++) {                                  \
            r[v] = P##_fmadd_ps(n[v], P##_set1_ps(2.12194440e-4f), r[v]);                          \
            r2[v] = P##_mul_ps(r[v], r[v]);                                                        \
            a[v] = P##_fmadd_ps(P##_set1_ps(1.9875691500e-4f), r[v],                               \
                                P##_set1_ps(1.3981999507e-3f));                                    \
        }                                                                                          \
        _Pragma("GCC unroll 8") for (size_t v = 0; v < nv; v++)                                    \
            a[v] = P##_fmadd_ps(a[v], r[v], P##_set1_ps(8.3334519073e-3f));                        \
        _Pragma("GCC unroll 8") for (size_t v = 0; v < nv; v++)                                    \
            a[v] = P##_fmadd_ps(a[v], r[v], P##_set1_ps(4.1665795894e-2f));                        \
        _Pragma("GCC unroll 8") for (size_t v = 0; v < nv; v++)                                    \
            a[v] = P##_fmadd_ps(a[v], r[v], P##_set1_ps(1.6666665459e-1f));                        \
        _Pragma("GCC unroll 8") for (size_t v = 0; v < nv; v++)                                    \
            a[v] = P##_fmadd_ps(a[v], r[v], P##_set1_ps(5.0000001201e-1f));                        \
        _Pragma("GCC unroll 8") for (size_t v = 0; v < nv; v++) {                                  \
            V scale = SCALE(q[v], n[v]);                                                           \
            a[v] = P##_fmadd_ps(a[v], r2[v], r[v]); /* e^r - 1 */                                  \
            d[v] = P##_add_ps(one, P##_fmadd_ps(a[v], scale, scale));                              \
            r[v] = P##_castsi##BITS##_ps(P##_sub_epi32(magic, P##_castps_si##BITS(d[v])));         \
        }                                                                                          \
        _Pragma("GCC unroll 3") for (int k = 0; k < 3; k++) {                                      \
            _Pragma("GCC unroll 8") for (size_t v = 0; v < nv; v++)                                \
                e[v] = P##_fnmadd_ps(d[v], r[v], one);                                             \
            _Pragma("GCC unroll 8") for (size_t v = 0; v < nv; v++)                                \
                r[v] = P##_fmadd_ps(r[v], e[v], r[v]);                                             \
        }                                                                                          \
        _Pragma("GCC unroll 8") for (size_t v = 0; v < nv; v++) {                                  \
            V f = P##_mul_ps(z[v], r[v]);                                                          \
            if (has_res)                                                                           \
                P##_storeu_ps(zh + c + W * v, P##_add_ps(P##_loadu_ps(res + c + W * v), f));       \
            else                                                                                   \
                P##_storeu_ps(zh + c + W * v, f);                                                  \
            if (want_d1)                                                                           \
                P##_storeu_ps(d1 + c + W * v,                                                      \
                              P##_fmadd_ps(f, P##_sub_ps(one, r[v]), r[v]));                       \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    __attribute__((target(TARGET), always_inline)) static inline void silu_ip_row_##SUF(           \
        size_t cols, float *zh, const float *bias, const float *res, float *d1, float lo,          \
        float hi, int has_bias, int has_res, int want_d1)                                          \
    {                                                                                              \
        V nlo = P##_set1_ps(-lo), nhi = P##_set1_ps(-hi);                                          \
        size_t c = 0;                                                                              \
        for (; c + SILU_NV * W <= cols; c += SILU_NV * W)                                          \
            silu_ip_vecs_##SUF(SILU_NV, c, zh, bias, res, d1, nlo, nhi, has_bias, has_res,         \
                               want_d1);                                                           \
        for (; c + W <= cols; c += W)                                                              \
            silu_ip_vecs_##SUF(1, c, zh, bias, res, d1, nlo, nhi, has_bias, has_res, want_d1);     \
        for (; c < cols; c++)                                                                      \
            silu_one_ip(c, zh, bias, res, d1, lo, hi, has_bias, has_res, want_d1);                 \
    }                                                                                              \
                                                                                                   \
    __attribute__((target(TARGET), always_inline)) static inline void silu_ip_rows_##SUF(          \
        size_t rows, size_t cols, float *zh, const float *bias, const float *res, float *d1,       \
        int has_bias, int has_res, int want_d1)                                                    \
    {                                                                                              \
        float lo = exp_bounds[0], hi = exp_bounds[1];                                              \
        for (size_t i = 0; i < rows; i++)                                                          \
            silu_ip_row_##SUF(cols, zh + i * cols, bias, has_res ? res + i * cols : res,           \
                              want_d1 ? d1 + i * cols : d1, lo, hi, has_bias, has_res,             \
                              want_d1);                                                            \
    }                                                                                              \
                                                                                                   \
    __attribute__((target(TARGET))) static void silu_rows_ip_##SUF(                                \
        size_t rows, size_t cols, float *zh, const float *bias, const float *res, float *d1)       \
    {                                                                                              \
        int code = (bias != NULL) | (res != NULL) << 1 | (d1 != NULL) << 2;                        \
        switch (code) {                                                                            \
        case 0: silu_ip_rows_##SUF(rows, cols, zh, bias, res, d1, 0, 0, 0); break;                 \
        case 1: silu_ip_rows_##SUF(rows, cols, zh, bias, res, d1, 1, 0, 0); break;                 \
        case 2: silu_ip_rows_##SUF(rows, cols, zh, bias, res, d1, 0, 1, 0); break;                 \
        case 3: silu_ip_rows_##SUF(rows, cols, zh, bias, res, d1, 1, 1, 0); break;                 \
        case 4: silu_ip_rows_##SUF(rows, cols, zh, bias, res, d1, 0, 0, 1); break;                 \
        case 5: silu_ip_rows_##SUF(rows, cols, zh, bias, res, d1, 1, 0, 1); break;                 \
        case 6: silu_ip_rows_##SUF(rows, cols, zh, bias, res, d1, 0, 1, 1); break;                 \
        default: silu_ip_rows_##SUF(rows, cols, zh, bias, res, d1, 1, 1, 1); break;                \
        }                                                                                          \
    }

#include <immintrin.h>
/* 2^n from qs = 1.5 * 2^23 + n (exp_neg_vec's scale): AVX-512 by vscalefps on n (exact:
 * n in [-124, 116]), AVX2 through the exponent bits as exp_neg_vec. */
#define SILU_SCALE512(qs, n) _mm512_scalef_ps(_mm512_set1_ps(1.0f), n)
#define SILU_SCALE256(qs, n)                                                                       \
    _mm256_castsi256_ps(_mm256_slli_epi32(                                                         \
        _mm256_add_epi32(_mm256_castps_si256(qs), _mm256_set1_epi32((int)(127u - 0x4B400000u))),   \
        23))
#if SCORE__SIMD_LEVEL >= 2
SILU_VEC_IP(avx512, "avx512f,avx2,fma", __m512, __m512i, 16, _mm512, 512, SILU_SCALE512)
#endif
SILU_VEC_IP(avx2, "avx2,fma", __m256, __m256i, 8, _mm256, 256, SILU_SCALE256)
#endif

/* All rows of the SiLU kernel, in place (inplace = 1: silu_row_ip with zh = z, h, d2 unused) or
 * not (silu_row); always inlined into each version (silu_rows_avx512, ...). */
SCORE__INLINE void silu_rows(size_t rows, size_t cols, float *z, const float *bias,
                             const float *res, float *h, float *d1, float *d2, int inplace)
{
    float lo = exp_bounds[0], hi = exp_bounds[1];
    for (size_t r = 0; r < rows; r++) {
        const float *rr = res ? res + r * cols : NULL;
        float *e1 = d1 ? d1 + r * cols : NULL;
        if (inplace)
            silu_row_ip(cols, z + r * cols, bias, rr, e1, lo, hi);
        else
            silu_row(cols, z + r * cols, bias, rr, h + r * cols, e1, d2 ? d2 + r * cols : NULL,
                     lo, hi);
    }
}

#if SILU_X86
#if SCORE__SIMD_LEVEL >= 2
__attribute__((target("avx512f,avx2,fma"))) static void
silu_rows_avx512(size_t rows, size_t cols, float *z, const float *bias, const float *res,
                 float *h, float *d1, float *d2, int inplace)
{
    silu_rows(rows, cols, z, bias, res, h, d1, d2, inplace);
}
#endif

__attribute__((target("avx2,fma"))) static void
silu_rows_avx2(size_t rows, size_t cols, float *z, const float *bias, const float *res,
               float *h, float *d1, float *d2, int inplace)
{
    silu_rows(rows, cols, z, bias, res, h, d1, d2, inplace);
}
#endif

static void silu_rows_portable(size_t rows, size_t cols, float *z, const float *bias,
                               const float *res, float *h, float *d1, float *d2, int inplace)
{
    silu_rows(rows, cols, z, bias, res, h, d1, d2, inplace);
}

int score__cpu_simd_level(void)
{
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && SCORE__SIMD_LEVEL >= 1
#if SCORE__SIMD_LEVEL >= 2
    if (__builtin_cpu_supports("avx512f"))
        return 2;
#endif
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return 1;
#endif
    return 0;
}

int score__silu_level(void)
{
    return SILU_X86 ? score__cpu_simd_level() : 0;
}

void score__silu_rows_at(int level, size_t rows, size_t cols, float *z, const float *bias,
                         const float *res, float *h, float *d1, float *d2, int inplace)
{
#if SILU_X86
#if SCORE__SIMD_LEVEL >= 2
    if (level >= 2) {
        if (inplace)
            silu_rows_ip_avx512(rows, cols, z, bias, res, d1);
        else
            silu_rows_avx512(rows, cols, z, bias, res, h, d1, d2, inplace);
        return;
    }
#endif
    if (level >= 1) {
        if (inplace)
            silu_rows_ip_avx2(rows, cols, z, bias, res, d1);
        else
            silu_rows_avx2(rows, cols, z, bias, res, h, d1, d2, inplace);
        return;
    }
#else
    (void)level;
#endif
    silu_rows_portable(rows, cols, z, bias, res, h, d1, d2, inplace);
}

void score__silu_sigmoid(size_t n, const float *z, float *s)
{
    for (size_t i = 0; i < n; i++)
        s[i] = silu_sig(z[i], SCORE__EXP_LO, SCORE__EXP_HI);
}

/* score__saxpy without the multiplication, vectorized: y += x. */
SCORE__VEC_CLONES
static void add_row(size_t n, const float *x, float *y)
{
    for (size_t i = 0; i < n; i++)
        y[i] += x[i];
}

void score__bias_act_forward_res(size_t rows, size_t cols, float *z, const float *bias, int act,
                                 const float *res, float *h, float *d1, float *d2)
{
    if (act == SCORE__ACT_SILU) {
        score__silu_rows_at(score__silu_level(), rows, cols, z, bias, res, h, d1, d2, 0);
        return;
    }
    score__bias_act_forward(rows, cols, z, bias, act, h, d1, d2);
    if (res != NULL)
        for (size_t r = 0; r < rows; r++)
            add_row(cols, res + r * cols, h + r * cols);
}

void score__bias_act_inplace(size_t rows, size_t cols, float *zh, const float *bias, int act,
                             const float *res, float *d1)
{
    if (act == SCORE__ACT_SILU) {
        score__silu_rows_at(score__silu_level(), rows, cols, zh, bias, res, zh, d1, NULL,
                            1);
        return;
    }
    /* the generic loop reads z[c] before it writes h[c]: in place is fine there */
    score__bias_act_forward_res(rows, cols, zh, bias, act, res, zh, d1, NULL);
}

/* The identity's rows of score__bias_act_forward (act_eval's default case) as one sweep without
 * the per-element switch: z += bias (bias NULL: z as it is), h = z (h may be z), d1 = 1 and
 * d2 = 0 when wanted. The output layers' epilogue (a sampler's 2-column rows: 9 ns a row
 * through the generic loop). */
SCORE__VEC_CLONES
static void identity_rows(size_t rows, size_t cols, float *z, const float *bias, float *h,
                          float *d1, float *d2)
{
    size_t n = rows * cols;
    if (bias != NULL)
        for (size_t r = 0; r < rows; r++) {
            float *zr = z + r * cols, *hr = h + r * cols;
            for (size_t c = 0; c < cols; c++) {
                float zz = zr[c] + bias[c];
                zr[c] = zz;
                hr[c] = zz;
            }
        }
    else if (h != z)
        memcpy(h, z, n * sizeof *h);
    for (size_t i = 0; d1 != NULL && i < n; i++)
        d1[i] = 1.0f;
    for (size_t i = 0; d2 != NULL && i < n; i++)
        d2[i] = 0.0f;
}

void score__bias_act_forward(size_t rows, size_t cols, float *z, const float *bias, int act,
                             float *h, float *d1, float *d2)
{
    if (act == SCORE__ACT_SILU) {
        score__silu_rows_at(score__silu_level(), rows, cols, z, bias, NULL, h, d1, d2, 0);
        return;
    }
    if (act == SCORE__ACT_IDENTITY) {
        identity_rows(rows, cols, z, bias, h, d1, d2);
        return;
    }
    for (size_t r = 0; r < rows; r++) {
        float *zr = z + r * cols;
        float *hr = h + r * cols;
        float *g1 = d1 ? d1 + r * cols : NULL;
        float *g2 = d2 ? d2 + r * cols : NULL;
        for (size_t c = 0; c < cols; c++) {
            float f, a, b;
            float zz = bias ? zr[c] + bias[c] : zr[c];
            zr[c] = zz;
            act_eval(act, zz, &f, &a, &b);
            hr[c] = f;
            if (g1) g1[c] = a;
            if (g2) g2[c] = b;
        }
    }
}

void score__act_derivs(size_t n, const float *z, int act, float *d1, float *d2)
{
    for (size_t i = 0; i < n; i++) {
        float f, a, b;
        act_eval(act, z[i], &f, &a, &b);
        if (d1) d1[i] = a;
        if (d2) d2[i] = b;
    }
}

SCORE__VEC_CLONES
void score__mul(size_t n, const float *a, const float *b, float *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = a[i] * b[i];
}

SCORE__VEC_CLONES
void score__mul_ip(size_t n, const float *restrict a, float *restrict b)
{
    for (size_t i = 0; i < n; i++)
        b[i] = a[i] * b[i];
}

SCORE__VEC_CLONES
void score__mul_add(size_t n, const float *a, const float *b, const float *c, float *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = a[i] * b[i] + c[i];
}

SCORE__VEC_CLONES
void score__mul_acc(size_t n, const float *a, const float *b, float *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] += a[i] * b[i];
}

/* out = a * b and the column sums into acc, four rows per sweep over the sums, added in row
 * order: the sums are loaded and stored once per four rows instead of once per row. Inlined
 * into score__mul_col_sum (out apart from a, b) and score__mul_col_sum_ip (out = b). */
SCORE__INLINE void mul_col_sum_body(size_t rows, size_t cols, const float *a, const float *b,
                                    float *out, double *acc)
{
    size_t r = 0;
    for (; r + 4 <= rows; r += 4) {
        const float *a0 = a + r * cols, *b0 = b + r * cols;
        float *o0 = out + r * cols;
        for (size_t c = 0; c < cols; c++) {
            float v0 = a0[c] * b0[c], v1 = a0[cols + c] * b0[cols + c];
            float v2 = a0[2 * cols + c] * b0[2 * cols + c], v3 = a0[3 * cols + c] * b0[3 * cols + c];
            o0[c] = v0;
            o0[cols + c] = v1;
            o0[2 * cols + c] = v2;
            o0[3 * cols + c] = v3;
            acc[c] = (((acc[c] + (double)v0) + (double)v1) + (double)v2) + (double)v3;
        }
    }
    for (; r < rows; r++) {
        const float *a0 = a + r * cols, *b0 = b + r * cols;
        float *o0 = out + r * cols;
        for (size_t c = 0; c < cols; c++) {
            float v = a0[c] * b0[c];
            o0[c] = v;
            acc[c] += (double)v;
        }
    }
}

SCORE__VEC_CLONES
void score__mul_col_sum(size_t rows, size_t cols, const float *restrict a,
                        const float *restrict b, float *restrict out, double *restrict acc)
{
    mul_col_sum_body(rows, cols, a, b, out, acc);
}

/* score__mul_col_sum with the product written over b (the same values and sums). */
SCORE__VEC_CLONES
void score__mul_col_sum_ip(size_t rows, size_t cols, const float *restrict a, float *restrict b,
                           double *restrict acc)
{
    mul_col_sum_body(rows, cols, a, b, b, acc);
}

void score__col_sum_acc(size_t rows, size_t cols, const float *g, float *bias_grad)
{
    score__col_sum_acc_ld(rows, cols, cols, g, bias_grad);
}

SCORE__VEC_CLONES
void score__col_sum_acc_ld(size_t rows, size_t cols, size_t ld, const float *g, float *bias_grad)
{
    /* Column sums in double, row order fixed, so the result does not depend on threads or on
     * how the columns are split between calls. */
    enum { CHUNK = 256 };
    double acc[CHUNK];
    for (size_t c0 = 0; c0 < cols; c0 += CHUNK) {
        size_t nc = cols - c0 < CHUNK ? cols - c0 : CHUNK;
        for (size_t c = 0; c < nc; c++)
            acc[c] = 0.0;
        for (size_t r = 0; r < rows; r++) {
            const float *gr = g + r * ld + c0;
            for (size_t c = 0; c < nc; c++)
                acc[c] += (double)gr[c];
        }
        for (size_t c = 0; c < nc; c++)
            bias_grad[c0 + c] += (float)acc[c];
    }
}

SCORE__VEC_CLONES
void score__tangent_reverse(size_t nb, size_t k, size_t w, const float *G, const float *U,
                            size_t u_stride, const float *d1, const float *d2, const float *dh,
                            float *GU, float *dz)
{
    for (size_t b = 0; b < nb; b++) {
        const float *restrict p1 = d1 + b * w, *restrict p2 = d2 + b * w;
        const float *restrict hb = dh + b * w, *ub = U + b * u_stride;
        float *restrict s = dz + b * w;
        for (size_t q = 0; q < k; q++) {
            const float *restrict g = G + (b * k + q) * w, *restrict u = ub + q * w;
            float *restrict gu = GU + (b * k + q) * w;
            if (q == 0) {
                for (size_t i = 0; i < w; i++) {
                    gu[i] = g[i] * p1[i];
                    s[i] = u[i] * g[i];
                }
            } else {
                for (size_t i = 0; i < w; i++) {
                    gu[i] = g[i] * p1[i];
                    s[i] += u[i] * g[i];
                }
            }
        }
        if (k == 0)
            for (size_t i = 0; i < w; i++)
                s[i] = 0.0f;
        for (size_t i = 0; i < w; i++)
            s[i] = hb[i] * p1[i] + p2[i] * s[i];
    }
}

void score__row_dot(size_t rows, size_t cols, const float *a, const float *b, double *out)
{
    for (size_t r = 0; r < rows; r++) {
        const float *ar = a + r * cols, *br = b + r * cols;
        double s = 0.0;
        for (size_t c = 0; c < cols; c++)
            s += (double)ar[c] * (double)br[c];
        out[r] = s;
    }
}

/* Eight partial sums in a fixed order (every compiled version gives the same bits), which lets
 * the compiler vectorise the double accumulation. */
SCORE__VEC_CLONES
void score__row_dot_lanes(size_t rows, size_t cols, const float *a, const float *b, double *out)
{
    enum { LANES = 8 };
    for (size_t r = 0; r < rows; r++) {
        const float *ar = a + r * cols, *br = b + r * cols;
        double acc[LANES] = {0.0}, s;
        size_t c = 0;
        for (; c + LANES <= cols; c += LANES)
            for (size_t i = 0; i < LANES; i++)
                acc[i] += (double)ar[c + i] * (double)br[c + i];
        s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        for (; c < cols; c++)
            s += (double)ar[c] * (double)br[c];
        out[r] = s;
    }
}

void score__row_sqnorm(size_t rows, size_t cols, const float *a, double *out)
{
    score__row_dot(rows, cols, a, a, out);
}

void score__row_norm(size_t rows, size_t cols, const float *a, double *out)
{
    score__row_sqnorm(rows, cols, a, out);
    for (size_t r = 0; r < rows; r++)
        out[r] = sqrt(out[r]);
}

/* ---- Sums of runs of floats, several runs at a time (GroupNorm statistics) -------------- */

/* The last step of one run's sum (score__sum_runs): the values j .. m - 1 added to s[0] in
 * order, then the fixed tree over the eight partial sums. sq: (x - mu)^2 instead of x. */
SCORE__INLINE double runs_finish(double *s, size_t j, size_t m, const float *x, int sq,
                                 double mu)
{
    for (; j < m; j++) {
        double d = sq ? (double)x[j] - mu : (double)x[j];
        s[0] += sq ? d * d : d;
    }
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/* The same for score__gn_plane_sums: values j .. m - 1 into sg[0] and sgx[0], then the trees. */
SCORE__INLINE void gsums_finish(double *sg, double *sgx, size_t j, size_t m, const float *x,
                                const float *gy, const float *ds, double mean, double rstd,
                                double *sg_out, double *sgx_out)
{
    for (; j < m; j++) {
        double xh = ((double)x[j] - mean) * rstd;
        double gv = (double)(ds != NULL ? gy[j] * ds[j] : gy[j]);
        sg[0] += gv;
        sgx[0] += gv * xh;
    }
    *sg_out = ((sg[0] + sg[1]) + (sg[2] + sg[3])) + ((sg[4] + sg[5]) + (sg[6] + sg[7]));
    *sgx_out = ((sgx[0] + sgx[1]) + (sgx[2] + sgx[3])) + ((sgx[4] + sgx[5]) + (sgx[6] + sgx[7]));
}

/* The portable versions of score__sum_runs and score__gn_plane_sums: one run (plane) at a time,
 * the eight partial sums in an array. */
static void sum_runs_portable(size_t nb, size_t m, const float *x, size_t ld,
                              const double *mean, double *out)
{
    for (size_t b = 0; b < nb; b++) {
        const float *xb = x + b * ld;
        double s[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0}, mu = mean ? mean[b] : 0.0;
        size_t j = 0;
        for (; j + 8 <= m; j += 8)
            for (size_t l = 0; l < 8; l++) {
                double d = mean ? (double)xb[j + l] - mu : (double)xb[j + l];
                s[l] += mean ? d * d : d;
            }
        out[b] = runs_finish(s, j, m, xb, mean != NULL, mu);
    }
}

static void gn_plane_sums_portable(size_t np, size_t hw, const float *x, const float *gy,
                                   const float *ds, double mean, double rstd, double *sg_out,
                                   double *sgx_out)
{
    for (size_t p = 0; p < np; p++) {
        const float *xp = x + p * hw, *gp = gy + p * hw, *dp = ds ? ds + p * hw : NULL;
        double sg[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
        double sgx[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
        size_t j = 0;
        for (; j + 8 <= hw; j += 8)
            for (size_t l = 0; l < 8; l++) {
                double xh = ((double)xp[j + l] - mean) * rstd;
                double gv = (double)(dp ? gp[j + l] * dp[j + l] : gp[j + l]);
                sg[l] += gv;
                sgx[l] += gv * xh;
            }
        gsums_finish(sg, sgx, j, hw, xp, gp, dp, mean, rstd, sg_out + p, sgx_out + p);
    }
}

/* Runs summed at once by the vector versions: their chains of additions interleaved. */
#define RUNS_BATCH 4

#if SILU_X86
/* The vector versions: every run's eight partial sums are the lanes of one AVX-512 vector or
 * two AVX2 vectors (lanes 0 .. 3 and 4 .. 7), RUNS_BATCH runs per pass; a pass with fewer runs
 * repeats its last one (computed, not stored). Separate products and sums, as the portable
 * code (no FMA). V: the vector type; CVT8(f, v): the eight floats of f as doubles in v[0 .. NV);
 * NV: vectors per run (1 or 2). */
#define SUM_RUNS_VEC(SUF, TGT, V, NV, CVT8, ADD, SUB, MUL, SET1, ZERO, STORE)                      \
    __attribute__((target(TGT))) SCORE__INLINE void sum_runs_pass_##SUF(                           \
        size_t nr, size_t m, const float *x, size_t ld, const double *mean, double *out, int sq)   \
    {                                                                                              \
        V acc[RUNS_BATCH][NV], mu[RUNS_BATCH];                                                     \
        const float *xr[RUNS_BATCH];                                                               \
        size_t m8 = m / 8 * 8;                                                                     \
        _Pragma("GCC unroll 4") for (size_t r = 0; r < RUNS_BATCH; r++)                            \
        {                                                                                          \
            size_t b = r < nr ? r : nr - 1;                                                        \
            xr[r] = x + b * ld;                                                                    \
            mu[r] = SET1(sq ? mean[b] : 0.0);                                                      \
            for (size_t h = 0; h < NV; h++)                                                        \
                acc[r][h] = ZERO();                                                                \
        }                                                                                          \
        for (size_t j = 0; j < m8; j += 8) {                                                       \
            _Pragma("GCC unroll 4") for (size_t r = 0; r < RUNS_BATCH; r++)                        \
            {                                                                                      \
                V v[NV];                                                                           \
                CVT8(_mm256_loadu_ps(xr[r] + j), v);                                               \
                for (size_t h = 0; h < NV; h++) {                                                  \
                    if (sq) {                                                                      \
                        v[h] = SUB(v[h], mu[r]);                                                   \
                        v[h] = MUL(v[h], v[h]);                                                    \
                    }                                                                              \
                    acc[r][h] = ADD(acc[r][h], v[h]);                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        for (size_t r = 0; r < nr; r++) {                                                          \
            double s[8];                                                                           \
            for (size_t h = 0; h < NV; h++)                                                        \
                STORE(s + h * (8 / NV), acc[r][h]);                                                \
            out[r] = runs_finish(s, m8, m, xr[r], sq, sq ? mean[r] : 0.0);                         \
        }                                                                                          \
    }                                                                                              \
    __attribute__((target(TGT))) static void sum_runs_##SUF(                                       \
        size_t nb, size_t m, const float *x, size_t ld, const double *mean, double *out)           \
    {                                                                                              \
        for (size_t b = 0; b < nb; b += RUNS_BATCH) {                                              \
            size_t nr = nb - b < RUNS_BATCH ? nb - b : RUNS_BATCH;                                 \
            if (mean != NULL)                                                                      \
                sum_runs_pass_##SUF(nr, m, x + b * ld, ld, mean + b, out + b, 1);                  \
            else                                                                                   \
                sum_runs_pass_##SUF(nr, m, x + b * ld, ld, NULL, out + b, 0);                      \
        }                                                                                          \
    }                                                                                              \
    /* the planes' sums of gv and gv * xh (score__gn_plane_sums), RUNS_BATCH planes per pass */    \
    __attribute__((target(TGT))) SCORE__INLINE void gsums_pass_##SUF(                              \
        size_t nr, size_t hw, const float *x, const float *gy, const float *ds, double mean,       \
        double rstd, double *sg_out, double *sgx_out, int silu)                                    \
    {                                                                                              \
        V sg[RUNS_BATCH][NV], sgx[RUNS_BATCH][NV], vm = SET1(mean), vr = SET1(rstd);               \
        size_t m8 = hw / 8 * 8, off[RUNS_BATCH];                                                   \
        _Pragma("GCC unroll 4") for (size_t r = 0; r < RUNS_BATCH; r++)                            \
        {                                                                                          \
            off[r] = (r < nr ? r : nr - 1) * hw;                                                   \
            for (size_t h = 0; h < NV; h++)                                                        \
                sg[r][h] = sgx[r][h] = ZERO();                                                     \
        }                                                                                          \
        for (size_t j = 0; j < m8; j += 8) {                                                       \
            _Pragma("GCC unroll 4") for (size_t r = 0; r < RUNS_BATCH; r++)                        \
            {                                                                                      \
                V xv[NV], gv[NV];                                                                  \
                const float *gp = gy + off[r] + j;                                                 \
                CVT8(_mm256_loadu_ps(x + off[r] + j), xv);                                         \
                __m256 g8 = _mm256_loadu_ps(gp);                                                   \
                if (silu)                                                                          \
                    g8 = _mm256_mul_ps(g8, _mm256_loadu_ps(ds + off[r] + j));                      \
                CVT8(g8, gv);                                                                      \
                for (size_t h = 0; h < NV; h++) {                                                  \
                    V xh = MUL(SUB(xv[h], vm), vr);                                                \
                    sg[r][h] = ADD(sg[r][h], gv[h]);                                               \
                    sgx[r][h] = ADD(sgx[r][h], MUL(gv[h], xh));                                    \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        for (size_t r = 0; r < nr; r++) {                                                          \
            double a[8], c[8];                                                                     \
            for (size_t h = 0; h < NV; h++) {                                                      \
                STORE(a + h * (8 / NV), sg[r][h]);                                                 \
                STORE(c + h * (8 / NV), sgx[r][h]);                                                \
            }                                                                                      \
            gsums_finish(a, c, m8, hw, x + r * hw, gy + r * hw, silu ? ds + r * hw : NULL, mean,   \
                         rstd, sg_out + r, sgx_out + r);                                           \
        }                                                                                          \
    }                                                                                              \
    __attribute__((target(TGT))) static void gn_plane_sums_##SUF(                                  \
        size_t np, size_t hw, const float *x, const float *gy, const float *ds, double mean,       \
        double rstd, double *sg_out, double *sgx_out)                                              \
    {                                                                                              \
        for (size_t p = 0; p < np; p += RUNS_BATCH) {                                              \
            size_t nr = np - p < RUNS_BATCH ? np - p : RUNS_BATCH, o = p * hw;                     \
            if (ds != NULL)                                                                        \
                gsums_pass_##SUF(nr, hw, x + o, gy + o, ds + o, mean, rstd, sg_out + p,            \
                                 sgx_out + p, 1);                                                  \
            else                                                                                   \
                gsums_pass_##SUF(nr, hw, x + o, gy + o, NULL, mean, rstd, sg_out + p,              \
                                 sgx_out + p, 0);                                                  \
        }                                                                                          \
    }

#define RUNS_CVT8_512(f, v) ((v)[0] = _mm512_cvtps_pd(f))
#define RUNS_CVT8_256(f, v)                                                                        \
    ((v)[0] = _mm256_cvtps_pd(_mm256_castps256_ps128(f)),                                          \
     (v)[1] = _mm256_cvtps_pd(_mm256_extractf128_ps(f, 1)))
#if SCORE__SIMD_LEVEL >= 2
SUM_RUNS_VEC(avx512, "avx512f,avx2,fma", __m512d, 1, RUNS_CVT8_512, _mm512_add_pd,
             _mm512_sub_pd, _mm512_mul_pd, _mm512_set1_pd, _mm512_setzero_pd, _mm512_storeu_pd)
#endif
SUM_RUNS_VEC(avx2, "avx2,fma", __m256d, 2, RUNS_CVT8_256, _mm256_add_pd, _mm256_sub_pd,
             _mm256_mul_pd, _mm256_set1_pd, _mm256_setzero_pd, _mm256_storeu_pd)
#endif

/* Runs the statement of the version of `level`: AVX-512 (V512), AVX2 (V256) or portable (P). */
#if SILU_X86 && SCORE__SIMD_LEVEL >= 2
#define RUNS_BY_LEVEL(level, V512, V256, P)                                                        \
    do {                                                                                           \
        if ((level) >= 2)                                                                          \
            V512;                                                                                  \
        else if ((level) >= 1)                                                                     \
            V256;                                                                                  \
        else                                                                                       \
            P;                                                                                     \
    } while (0)
#elif SILU_X86
#define RUNS_BY_LEVEL(level, V512, V256, P)                                                        \
    do {                                                                                           \
        if ((level) >= 1)                                                                          \
            V256;                                                                                  \
        else                                                                                       \
            P;                                                                                     \
    } while (0)
#else
#define RUNS_BY_LEVEL(level, V512, V256, P)                                                        \
    do {                                                                                           \
        (void)(level);                                                                             \
        P;                                                                                         \
    } while (0)
#endif

void score__sum_runs_at(int level, size_t nb, size_t m, const float *x, size_t ld,
                        const double *mean, double *out)
{
    RUNS_BY_LEVEL(level, sum_runs_avx512(nb, m, x, ld, mean, out),
                  sum_runs_avx2(nb, m, x, ld, mean, out),
                  sum_runs_portable(nb, m, x, ld, mean, out));
}

void score__sum_runs(size_t nb, size_t m, const float *x, size_t ld, const double *mean,
                     double *out)
{
    score__sum_runs_at(score__silu_level(), nb, m, x, ld, mean, out);
}

#if SILU_X86 && SCORE__SIMD_LEVEL >= 2
/* score__gn_plane_sums on planes of at most 4 values (too short for a vector: all of a plane is
 * the scalar tail of gsums_finish) with 8 planes in the lanes of AVX-512 vectors: value j of the
 * 8 planes picked from their 8 * hw consecutive values (two vectors, masked loads of exactly
 * those) by a permutation, added to s[0] in the order j = 0 .. hw - 1, then the tree with its
 * seven zero partial sums, ((s0 + 0) + 0) + 0: each plane's bits of gsums_finish. Returns the
 * planes done (a multiple of 8). */
__attribute__((target("avx512f,avx2,fma"))) static size_t
gsums_small_avx512(size_t np, size_t hw, const float *x, const float *gy, const float *ds,
                   double mean, double rstd, double *sg_out, double *sgx_out)
{
    size_t n = 8 * hw, p = 0;
    __mmask16 k0 = (__mmask16)(n >= 16 ? 0xFFFFu : (1u << n) - 1u);
    __mmask16 k1 = (__mmask16)(n > 16 ? (1u << (n - 16)) - 1u : 0u);
    __m512i base = _mm512_mullo_epi32(_mm512_set_epi32(7, 6, 5, 4, 3, 2, 1, 0, 7, 6, 5, 4, 3,
                                                       2, 1, 0),
                                      _mm512_set1_epi32((int)hw));
    __m512d vm = _mm512_set1_pd(mean), vr = _mm512_set1_pd(rstd), z = _mm512_setzero_pd();
    for (; p + 8 <= np; p += 8) {
        const float *xp = x + p * hw, *gp = gy + p * hw;
        __m512 x0 = _mm512_maskz_loadu_ps(k0, xp), x1 = _mm512_maskz_loadu_ps(k1, xp + 16);
        __m512 g0 = _mm512_maskz_loadu_ps(k0, gp), g1 = _mm512_maskz_loadu_ps(k1, gp + 16);
        if (ds != NULL) {
            g0 = _mm512_mul_ps(g0, _mm512_maskz_loadu_ps(k0, ds + p * hw));
            g1 = _mm512_mul_ps(g1, _mm512_maskz_loadu_ps(k1, ds + p * hw + 16));
        }
        __m512d sg = z, sgx = z;
        for (size_t j = 0; j < hw; j++) {
            __m512i idx = _mm512_add_epi32(base, _mm512_set1_epi32((int)j));
            __m512 xj = _mm512_permutex2var_ps(x0, idx, x1);
            __m512 gj = _mm512_permutex2var_ps(g0, idx, g1);
            __m512d xv = _mm512_cvtps_pd(_mm512_castps512_ps256(xj));
            __m512d gv = _mm512_cvtps_pd(_mm512_castps512_ps256(gj));
            __m512d xh = _mm512_mul_pd(_mm512_sub_pd(xv, vm), vr);
            sg = _mm512_add_pd(sg, gv);
            sgx = _mm512_add_pd(sgx, _mm512_mul_pd(gv, xh));
        }
        sg = _mm512_add_pd(_mm512_add_pd(_mm512_add_pd(sg, z), z), z);
        sgx = _mm512_add_pd(_mm512_add_pd(_mm512_add_pd(sgx, z), z), z);
        _mm512_storeu_pd(sg_out + p, sg);
        _mm512_storeu_pd(sgx_out + p, sgx);
    }
    return p;
}

/* The AVX-512 version of score__gn_plane_sums: planes of at most 4 values 8 at a time, the
 * others (and the last of those) by gn_plane_sums_avx512. */
__attribute__((target("avx512f,avx2,fma"))) static void
gsums_avx512(size_t np, size_t hw, const float *x, const float *gy, const float *ds,
             double mean, double rstd, double *sg_out, double *sgx_out)
{
    size_t p = hw >= 1 && hw <= 4 ? gsums_small_avx512(np, hw, x, gy, ds, mean, rstd, sg_out,
                                                       sgx_out)
                                  : 0;
    gn_plane_sums_avx512(np - p, hw, x + p * hw, gy + p * hw, ds != NULL ? ds + p * hw : NULL,
                         mean, rstd, sg_out + p, sgx_out + p);
}
#endif

void score__gn_plane_sums_at(int level, size_t np, size_t hw, const float *x, const float *gy,
                             const float *ds, double mean, double rstd, double *sg_out,
                             double *sgx_out)
{
    RUNS_BY_LEVEL(level, gsums_avx512(np, hw, x, gy, ds, mean, rstd, sg_out, sgx_out),
                  gn_plane_sums_avx2(np, hw, x, gy, ds, mean, rstd, sg_out, sgx_out),
                  gn_plane_sums_portable(np, hw, x, gy, ds, mean, rstd, sg_out, sgx_out));
}

void score__gn_plane_sums(size_t np, size_t hw, const float *x, const float *gy,
                          const float *ds, double mean, double rstd, double *sg_out,
                          double *sgx_out)
{
    score__gn_plane_sums_at(score__silu_level(), np, hw, x, gy, ds, mean, rstd, sg_out, sgx_out);
}
