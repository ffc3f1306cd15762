/* Kernel layer against naive double-precision loops. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers/test-helpers.h"
#include "kernel/kernel-priv.h"

static float frand(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

/* Sizes that are not multiples of any vector width, and a few larger ones. */
static const size_t sizes[][3] = {
    {1, 1, 1}, {3, 5, 7}, {17, 13, 9}, {33, 65, 31}, {128, 2, 129}, {7, 300, 250}, {0, 4, 4},
    {4, 0, 4}, {4, 4, 0},
};

START_TEST(sgemm_against_naive)
{
    unsigned seed = 1;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        size_t M = sizes[si][0], N = sizes[si][1], K = sizes[si][2];
        for (int ta = 0; ta < 2; ta++) {
            for (int tb = 0; tb < 2; tb++) {
                for (int bi = 0; bi < 3; bi++) {
                    float beta = bi == 0 ? 0.0f : bi == 1 ? 1.0f : -0.5f;
                    size_t lda = (ta ? M : K) + 2, ldb = (tb ? K : N) + 1, ldc = N + 3;
                    size_t arows = ta ? K : M, brows = tb ? N : K;
                    float *A = malloc((arows * lda + 1) * sizeof *A);
                    float *B = malloc((brows * ldb + 1) * sizeof *B);
                    float *C = malloc((M * ldc + 1) * sizeof *C);
                    double *C0 = malloc((M * ldc + 1) * sizeof *C0);
                    for (size_t i = 0; i < arows * lda; i++) A[i] = frand(&seed);
                    for (size_t i = 0; i < brows * ldb; i++) B[i] = frand(&seed);
                    for (size_t i = 0; i < M * ldc; i++) {
                        /* beta = 0 must not read C: fill it with NaN (a classic BLAS pitfall). */
                        C[i] = bi == 0 ? NAN : frand(&seed);
                        C0[i] = C[i];
                    }
                    score__sgemm(ta, tb, M, N, K, 1.5f, A, lda, B, ldb, beta, C, ldc);
                    for (size_t i = 0; i < M; i++) {
                        for (size_t j = 0; j < N; j++) {
                            double s = 0.0, mag = 0.0;
                            for (size_t k = 0; k < K; k++) {
                                double a = ta ? A[k * lda + i] : A[i * lda + k];
                                double b = tb ? B[j * ldb + k] : B[k * ldb + j];
                                s += a * b;
                                mag += fabs(a * b);
                            }
                            double ref = 1.5 * s + (bi == 0 ? 0.0 : beta * C0[i * ldc + j]);
                            double scale = 1.5 * mag + fabs(bi == 0 ? 0.0 : beta * C0[i * ldc + j]) + 1e-30;
                            ck_assert_msg(isfinite(C[i * ldc + j]), "non-finite C at %zu,%zu", i, j);
                            ck_assert_double_le(fabs(C[i * ldc + j] - ref), TOL_GEMM_REL * scale + 1e-6);
                        }
                        /* padding between rows is untouched */
                        for (size_t j = N; j < ldc && i + 1 < M; j++)
                        {
                            float orig = (float)C0[i * ldc + j];
                            ck_assert(isnan(orig) ? isnan(C[i * ldc + j]) : C[i * ldc + j] == orig);
                        }
                    }
                    free(A); free(B); free(C); free(C0);
                }
            }
        }
    }
}
END_TEST

START_TEST(sgemv_against_naive)
{
    unsigned seed = 3;
    const size_t M = 13, N = 7, lda = 9;
    float A[13 * 9], x[13], y[13];
    for (size_t i = 0; i < M * lda; i++) A[i] = frand(&seed);
    for (int t = 0; t < 2; t++) {
        size_t nx = t ? M : N, ny = t ? N : M;
        for (size_t i = 0; i < nx; i++) x[i] = frand(&seed);
        for (size_t i = 0; i < ny; i++) y[i] = NAN;
        score__sgemv(t, M, N, 2.0f, A, lda, x, 0.0f, y);
        for (size_t i = 0; i < ny; i++) {
            double s = 0.0;
            for (size_t k = 0; k < nx; k++)
                s += (double)(t ? A[k * lda + i] : A[i * lda + k]) * x[k];
            ck_assert_double_le(fabs(y[i] - 2.0 * s), 1e-5);
        }
    }
}
END_TEST

static const int acts[] = {SCORE__ACT_SILU, SCORE__ACT_SOFTPLUS, SCORE__ACT_TANH, SCORE__ACT_ELU,
                           SCORE__ACT_GELU, SCORE__ACT_IDENTITY};

START_TEST(activation_derivatives_fd)
{
    /* First and second derivatives against central differences of the double-precision
     * functions (h = 1e-5; see TOL_FD_DOUBLE). ELU is not twice differentiable at 0: the
     * grid avoids 0. */
    const double h = 1e-5;
    for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++) {
        for (double z = -7.9; z <= 8.0; z += 0.37) {
            int act = acts[a];
            double f1 = (score__act_f(act, z + h) - score__act_f(act, z - h)) / (2 * h);
            double f2 = (score__act_d1(act, z + h) - score__act_d1(act, z - h)) / (2 * h);
            ck_assert_double_le(fabs(f1 - score__act_d1(act, z)), TOL_FD_DOUBLE);
            ck_assert_double_le(fabs(f2 - score__act_d2(act, z)), TOL_FD_DOUBLE);
        }
        ck_assert_ptr_nonnull(score__act_name(acts[a]));
        ck_assert_int_eq(score__act_from_name(score__act_name(acts[a])), acts[a]);
    }
    ck_assert_int_eq(score__act_from_name("relu"), -1);
    ck_assert_ptr_null(score__act_name(99));
}
END_TEST

START_TEST(fused_bias_activation)
{
    /* float kernel vs the double reference; rows x cols with an odd column count, extreme z. */
    enum { R = 5, C = 19 };
    unsigned seed = 11;
    float z[R * C], z0[R * C], b[C], h[R * C], d1[R * C], d2[R * C], e1[R * C], e2[R * C];
    for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++) {
        for (int i = 0; i < R * C; i++) z0[i] = z[i] = 6.0f * frand(&seed);
        z0[0] = z[0] = -200.0f; /* overflow-prone inputs stay finite */
        z0[1] = z[1] = 200.0f;
        for (int i = 0; i < C; i++) b[i] = frand(&seed);
        score__bias_act_forward(R, C, z, b, acts[a], h, d1, d2);
        score__act_derivs(R * C, z, acts[a], e1, e2);
        for (int r = 0; r < R; r++) {
            for (int c = 0; c < C; c++) {
                int i = r * C + c;
                double zz = (double)z0[i] + b[c];
                ck_assert_double_le(fabs(z[i] - zz), 1e-5 * (1 + fabs(zz)));
                ck_assert(isfinite(h[i]) && isfinite(d1[i]) && isfinite(d2[i]));
                ck_assert_double_le(fabs(h[i] - score__act_f(acts[a], z[i])), 2e-6 * (1 + fabs(zz)));
                ck_assert_double_le(fabs(d1[i] - score__act_d1(acts[a], z[i])), 2e-6);
                ck_assert_double_le(fabs(d2[i] - score__act_d2(acts[a], z[i])), 2e-6);
                ck_assert_float_eq(d1[i], e1[i]);
                ck_assert_float_eq(d2[i], e2[i]);
            }
        }
    }
}
END_TEST

START_TEST(fused_bias_activation_residual)
{
    /* The residual variant is the plain kernel plus res, bit for bit (same float operations),
     * including in place (h == z) and without a bias; 37 columns cover full vectors and a
     * remainder for every vector width. */
    enum { R = 3, C = 37 };
    unsigned seed = 5;
    float z0[R * C], z1[R * C], z2[R * C], b[C], res[R * C];
    float h1[R * C], h2[R * C], d1a[R * C], d1b[R * C], d2a[R * C], d2b[R * C];
    for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++) {
        for (int i = 0; i < R * C; i++) {
            z0[i] = 8.0f * frand(&seed);
            res[i] = frand(&seed);
        }
        z0[2] = -120.0f; /* far into the saturated range of every activation */
        z0[3] = 120.0f;
        for (int i = 0; i < C; i++) b[i] = frand(&seed);
        memcpy(z1, z0, sizeof z0);
        memcpy(z2, z0, sizeof z0);
        score__bias_act_forward(R, C, z1, b, acts[a], h1, d1a, d2a);
        score__bias_act_forward_res(R, C, z2, b, acts[a], res, h2, d1b, d2b);
        for (int i = 0; i < R * C; i++) {
            ck_assert_float_eq(z2[i], z1[i]);
            ck_assert_float_eq(h2[i], h1[i] + res[i]);
            ck_assert_float_eq(d1b[i], d1a[i]);
            ck_assert_float_eq(d2b[i], d2a[i]);
        }
        /* in place, values only */
        memcpy(z2, z0, sizeof z0);
        score__bias_act_forward_res(R, C, z2, b, acts[a], res, z2, NULL, NULL);
        for (int i = 0; i < R * C; i++)
            ck_assert_float_eq(z2[i], h1[i] + res[i]);
        /* no bias, no residual: the scalar reference on z itself */
        memcpy(z2, z0, sizeof z0);
        score__bias_act_forward_res(R, C, z2, NULL, acts[a], NULL, h2, NULL, NULL);
        for (int i = 0; i < R * C; i++) {
            ck_assert_float_eq(z2[i], z0[i]);
            ck_assert_double_le(fabs(h2[i] - score__act_f(acts[a], z0[i])), 2e-6 * (1 + fabs(z0[i])));
        }
    }
}
END_TEST

/* The in-place kernel gives bit for bit the values of the two-buffer kernel (h = res + phi(z +
 * bias), phi'), for every combination of bias, residual and phi' output, every activation, and
 * row widths of 1, an odd and an even count (the SiLU loop takes the two halves of a row
 * together, the odd column alone). */
START_TEST(fused_bias_activation_inplace)
{
    enum { R = 3, CMAX = 37 };
    static const size_t widths[] = {1, 2, 37, 36};
    unsigned seed = 21;
    float z0[R * CMAX], z1[R * CMAX], zh[R * CMAX], b[CMAX], res[R * CMAX], h[R * CMAX];
    float d1a[R * CMAX], d1b[R * CMAX];
    for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++) {
        for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++) {
            const size_t C = widths[wi];
            for (size_t i = 0; i < R * C; i++) {
                z0[i] = 9.0f * frand(&seed);
                res[i] = frand(&seed);
            }
            z0[0] = -150.0f; /* saturated ranges, and a non-finite input that must propagate */
            if (R * C > 2) {
                z0[1] = 150.0f;
                z0[2] = NAN;
            }
            for (size_t i = 0; i < C; i++)
                b[i] = frand(&seed);
            for (int code = 0; code < 8; code++) {
                const float *bias = code & 1 ? b : NULL, *rr = code & 2 ? res : NULL;
                float *e1 = code & 4 ? d1b : NULL;
                memcpy(z1, z0, R * C * sizeof *z0);
                memcpy(zh, z0, R * C * sizeof *z0);
                score__bias_act_forward_res(R, C, z1, bias, acts[a], rr, h, code & 4 ? d1a : NULL,
                                            NULL);
                score__bias_act_inplace(R, C, zh, bias, acts[a], rr, e1);
                ck_assert_mem_eq(zh, h, R * C * sizeof *h);
                if (e1 != NULL)
                    ck_assert_mem_eq(d1b, d1a, R * C * sizeof *d1a);
                if (R * C > 2)
                    ck_assert(isnan(zh[2]));
            }
        }
    }
}
END_TEST

/* out = a * b and the double column sums: out bit for bit score__mul's, the sums those of
 * score__col_sum_acc over the same rows (row counts not multiples of the four-row step, and
 * sums carried over from a previous call, as the training backward does block after block). */
START_TEST(mul_col_sum_matches)
{
    enum { RMAX = 11, C = 19 };
    unsigned seed = 4;
    float a[RMAX * C], b[RMAX * C], o1[RMAX * C], o2[RMAX * C], g1[C], g2[C];
    double acc[C];
    for (size_t i = 0; i < RMAX * C; i++) {
        a[i] = frand(&seed) * (i % 3 == 0 ? 1e6f : 1.0f);
        b[i] = frand(&seed) * (i % 5 == 0 ? 1e-6f : 1.0f);
    }
    for (size_t r1 = 0; r1 <= RMAX; r1++) {
        /* rows 0 .. r1 - 1 in one call, then r1 .. RMAX - 1 in a second one */
        for (size_t c = 0; c < C; c++) {
            acc[c] = 0.0;
            g1[c] = g2[c] = 0.25f;
        }
        score__mul_col_sum(r1, C, a, b, o1, acc);
        score__mul_col_sum(RMAX - r1, C, a + r1 * C, b + r1 * C, o1 + r1 * C, acc);
        for (size_t c = 0; c < C; c++)
            g1[c] += (float)acc[c];
        score__mul(RMAX * C, a, b, o2);
        score__col_sum_acc(RMAX, C, o2, g2);
        ck_assert_mem_eq(o1, o2, sizeof o1);
        ck_assert_mem_eq(g1, g2, sizeof g1);
    }
}
END_TEST

/* The in-place product and column sums (the consuming backward's dz over phi'): the bits of
 * score__mul_col_sum / score__mul, sums split between calls at every row. */
START_TEST(mul_col_sum_ip_matches)
{
    enum { RMAX = 11, C = 19 };
    unsigned seed = 6;
    float a[RMAX * C], b[RMAX * C], o1[RMAX * C], o2[RMAX * C];
    double acc1[C], acc2[C];
    for (size_t i = 0; i < RMAX * C; i++) {
        a[i] = frand(&seed) * (i % 3 == 0 ? 1e6f : 1.0f);
        b[i] = frand(&seed) * (i % 5 == 0 ? 1e-6f : 1.0f);
    }
    for (size_t r1 = 0; r1 <= RMAX; r1++) {
        for (size_t c = 0; c < C; c++)
            acc1[c] = acc2[c] = 0.5;
        memcpy(o1, b, sizeof b);
        score__mul_col_sum_ip(r1, C, a, o1, acc1);
        score__mul_col_sum_ip(RMAX - r1, C, a + r1 * C, o1 + r1 * C, acc1);
        score__mul_col_sum(RMAX, C, a, b, o2, acc2);
        ck_assert_mem_eq(o1, o2, sizeof o1);
        ck_assert_mem_eq(acc1, acc2, sizeof acc1);
        memcpy(o1, b, sizeof b);
        score__mul_ip(r1 * C, a, o1);
        score__mul_ip((RMAX - r1) * C, a + r1 * C, o1 + r1 * C);
        ck_assert_mem_eq(o1, o2, sizeof o1);
    }
}
END_TEST

START_TEST(elementwise_mul_add)
{
    float a[21], b[21], c[21], out[21];
    unsigned seed = 9;
    for (int i = 0; i < 21; i++) {
        a[i] = frand(&seed);
        b[i] = frand(&seed);
        c[i] = frand(&seed);
    }
    score__mul_add(21, a, b, c, out);
    for (int i = 0; i < 21; i++)
        ck_assert_float_eq(out[i], a[i] * b[i] + c[i]);
    score__mul_add(21, a, b, c, a); /* out may alias a */
    for (int i = 0; i < 21; i++)
        ck_assert_float_eq(a[i], out[i]);
}
END_TEST

/* ---- the SiLU's sigmoid (division-free, fused multiply-adds) ---- */

static double sigmoid_ref(double z)
{
    return z >= 0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z));
}

/* The arguments of the SiLU tests: every stride-th float in [-100, 100] (both signs, by bit
 * pattern) and special values (zeros, subnormals, the clamping bounds and their neighbours,
 * infinities and NaN). Returns their count; z NULL: only counts. */
static size_t silu_args(uint32_t stride, float *z)
{
    static const float special[] = {0.0f, -0.0f, 1e-45f, -1e-45f, 1e-38f, -1e-38f, 80.0f,
                                    -80.0f, 86.0f, -86.0f, 87.5f, -87.5f, 88.7f, -88.7f,
                                    1e30f, -1e30f, FLT_MAX, -FLT_MAX, INFINITY, -INFINITY, NAN,
                                    -NAN};
    size_t n = 0;
    uint32_t top;
    float hundred = 100.0f;
    memcpy(&top, &hundred, sizeof top);
    for (uint32_t u = 0; u <= top; u += stride)
        for (int sg = 0; sg < 2; sg++) {
            uint32_t b = u | (uint32_t)sg << 31;
            if (z)
                memcpy(&z[n], &b, sizeof b);
            n++;
        }
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++, n++)
        if (z)
            z[n] = special[i];
    return n;
}

/* Units in the last place of the float nearest to the double ref (normal range). */
static double ulp_of(double ref)
{
    return ldexp(1.0, ilogb((float)ref) - 23);
}

START_TEST(silu_sigmoid_accuracy)
{
    /* Against the double sigmoid and z * sigmoid(z): within 2.5 ulp wherever the argument is
     * not clamped (z > -80; measured: 2.22 and 2.31 ulp, the values of the former division,
     * dominated by the rounding of 1 + e^-z; an error of one ulp of 1 + e^-z just above 2 is
     * two ulp of a sigmoid just below 1 / 2); below, the sigmoid is under 2e-35 and so is its
     * absolute error; large z gives exactly 1 and z; NaN propagates. */
    size_t n = silu_args(1000, NULL);
    float *z = malloc(n * sizeof *z), *s = malloc(n * sizeof *s), *h = malloc(n * sizeof *h);
    double max_s = 0.0, max_f = 0.0, max_abs = 0.0;
    ck_assert_ptr_nonnull(z);
    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_nonnull(h);
    silu_args(1000, z);
    score__silu_sigmoid(n, z, s);
    score__silu_rows_at(0, 1, n, z, NULL, NULL, h, NULL, NULL, 0);
    for (size_t i = 0; i < n; i++) {
        double zz = z[i], rs = sigmoid_ref(zz), rf = zz * rs;
        if (isnan(zz)) {
            ck_assert(isnan(s[i]) || (s[i] >= 0.0f && s[i] <= 1.0f));
            ck_assert(isnan(h[i]));
            continue;
        }
        ck_assert(s[i] >= 0.0f && s[i] <= 1.0f);
        if (zz > -80.0) {
            double es = fabs(s[i] - rs) / ulp_of(rs);
            max_s = es > max_s ? es : max_s;
            if (rf != 0.0 && isfinite(rf) && fabs(rf) >= FLT_MIN) {
                double ef = fabs(h[i] - rf) / ulp_of(rf);
                max_f = ef > max_f ? ef : max_f;
            } else {
                ck_assert(h[i] == (float)rf || fabs(h[i] - rf) < 1e-44);
            }
        } else {
            double ea = fabs(s[i] - rs);
            max_abs = ea > max_abs ? ea : max_abs;
            /* (the clamp: s stays near 1.8e-35, so z s only vanishes for moderate z) */
            ck_assert(zz >= -100.0 ? fabs(h[i]) <= 1e-30f : h[i] < 0.0f);
        }
        if (zz >= 17.0) /* e^-17 < 2^-24 / 2 */
            ck_assert(s[i] == 1.0f && h[i] == z[i]);
    }
    printf("silu sigmoid over %zu values: max %.3f ulp (SiLU value %.3f ulp); clamped "
           "(z <= -80): max |error| %.3g\n", n, max_s, max_f, max_abs);
    ck_assert_double_le(max_s, 2.5);
    ck_assert_double_le(max_f, 2.5);
    ck_assert_double_le(max_abs, 2e-35);
    free(z);
    free(s);
    free(h);
}
END_TEST

/* Every version of the SiLU rows (AVX-512, AVX2 + FMA, portable) gives the bits of the portable
 * one, in place or not, with and without bias, residual, phi' and phi'', on every 20011th float
 * of silu_args laid out in rows of 37 columns (full vectors, a partial one and the odd column) and
 * of 157 (the explicit loops' groups of four vectors, a single vector and a scalar tail at every
 * level). */
static void silu_versions_cols(size_t C)
{
    size_t n = silu_args(20011, NULL), R = (n + C - 1) / C, N = R * C;
    int top = score__silu_level();
    unsigned seed = 3;
    float *z0 = calloc(N, sizeof *z0), *res = malloc(N * sizeof *res), *b = malloc(C * sizeof *b);
    float *ref[4], *out[4]; /* z, h, d1, d2 */
    ck_assert_ptr_nonnull(z0);
    ck_assert_ptr_nonnull(res);
    ck_assert_ptr_nonnull(b);
    silu_args(20011, z0);
    for (size_t i = 0; i < N; i++) res[i] = frand(&seed);
    for (size_t i = 0; i < C; i++) b[i] = 0.25f * frand(&seed);
    for (int k = 0; k < 4; k++) {
        ref[k] = malloc(N * sizeof *ref[k]);
        out[k] = malloc(N * sizeof *out[k]);
        ck_assert_ptr_nonnull(ref[k]);
        ck_assert_ptr_nonnull(out[k]);
    }
    for (int code = 0; code < 32; code++) {
        int has_b = code & 1, has_r = code >> 1 & 1, w1 = code >> 2 & 1, w2 = code >> 3 & 1;
        int ip = code >> 4 & 1;
        if (ip && w2)
            continue;
        for (int lv = 0; lv <= top; lv++) {
            float **o = lv == 0 ? ref : out;
            memcpy(o[0], z0, N * sizeof *z0);
            for (int k = 1; k < 4; k++)
                memset(o[k], 0, N * sizeof *o[k]);
            score__silu_rows_at(lv, R, C, o[0], has_b ? b : NULL, has_r ? res : NULL,
                                ip ? o[0] : o[1], w1 ? o[2] : NULL, w2 ? o[3] : NULL, ip);
            if (lv == 0)
                continue;
            for (int k = 0; k < 4; k++)
                ck_assert_msg(memcmp(out[k], ref[k], N * sizeof *out[k]) == 0,
                              "level %d, case %d: output %d differs", lv, code, k);
        }
        /* the entry points (the processor's version) give the same bits */
        memcpy(out[0], z0, N * sizeof *z0);
        if (ip)
            score__bias_act_inplace(R, C, out[0], has_b ? b : NULL, SCORE__ACT_SILU,
                                    has_r ? res : NULL, w1 ? out[2] : NULL);
        else
            score__bias_act_forward_res(R, C, out[0], has_b ? b : NULL, SCORE__ACT_SILU,
                                        has_r ? res : NULL, out[1], w1 ? out[2] : NULL,
                                        w2 ? out[3] : NULL);
        ck_assert(memcmp(out[0], ref[0], N * sizeof *out[0]) == 0);
        if (!ip)
            ck_assert(memcmp(out[1], ref[1], N * sizeof *out[1]) == 0);
        if (w1)
            ck_assert(memcmp(out[2], ref[2], N * sizeof *out[2]) == 0);
    }
    for (int k = 0; k < 4; k++) {
        free(ref[k]);
        free(out[k]);
    }
    free(z0);
    free(res);
    free(b);
}

START_TEST(silu_versions_agree)
{
    silu_versions_cols(37);
    silu_versions_cols(157);
}
END_TEST

START_TEST(silu_derivatives_consistent)
{
    /* The float phi' and phi'' against central differences of the float phi and phi' (step
     * 2^-6: truncation below 3e-5, rounding below 1e-4 for |z| <= 20), and against the double
     * derivatives (2e-6), on a grid over [-20, 20]. */
    enum { N = 801 };
    const float h = 0.015625f;
    float z[3 * N], f[3 * N], d1[3 * N], d2[3 * N];
    for (int i = 0; i < N; i++) {
        float zz = -20.0f + 0.05f * (float)i;
        z[3 * i] = zz - h;
        z[3 * i + 1] = zz;
        z[3 * i + 2] = zz + h;
    }
    score__bias_act_forward(1, 3 * N, z, NULL, SCORE__ACT_SILU, f, d1, d2);
    for (int i = 0; i < N; i++) {
        int c = 3 * i + 1;
        double fd1 = ((double)f[c + 1] - f[c - 1]) / (2.0 * h);
        double fd2 = ((double)d1[c + 1] - d1[c - 1]) / (2.0 * h);
        ck_assert_double_le(fabs(d1[c] - fd1), 1e-4);
        ck_assert_double_le(fabs(d2[c] - fd2), 1e-4);
        ck_assert_double_le(fabs(d1[c] - score__act_d1(SCORE__ACT_SILU, z[c])), 2e-6);
        ck_assert_double_le(fabs(d2[c] - score__act_d2(SCORE__ACT_SILU, z[c])), 2e-6);
    }
}
END_TEST

/* Distance in units in the last place between two finite floats of the same sign region. */
static double ulp_distance(float x, float y)
{
    if (x == y)
        return 0.0;
    return fabs((double)x - (double)y) / fabs((double)nextafterf(x, INFINITY) - (double)x);
}

START_TEST(sincos_features)
{
    /* Against libm in double rounded to float. The vector path computes in double with a
     * relative error near 1e-16, so the rounded float can differ from libm's rounding only
     * when the exact value lies within ~1e-16 of a rounding midpoint: at most 1 ulp (in
     * practice the results are identical). c = 1e12 takes the libm fallback (|arg| >= 2^30). */
    enum { N = 37 };
    static const double cs[] = {0.0, 1e-5, 0.5, 1.0, -3.7, 999.0, 1e4, 1e12};
    double freq[N];
    float s[N], co[N];
    unsigned seed = 3;
    for (int i = 0; i < N; i++)
        freq[i] = 6.283185307179586 * 16.0 * (double)frand(&seed) * (i % 3 == 0 ? 10.0 : 1.0);
    freq[0] = 0.0;
    freq[1] = 1.5707963267948966; /* arguments near multiples of pi / 2 */
    freq[2] = -3.141592653589793;
    for (size_t k = 0; k < sizeof cs / sizeof cs[0]; k++) {
        score__sincos_features(N, freq, cs[k], s, co);
        for (int i = 0; i < N; i++) {
            double a = freq[i] * cs[k];
            float rs = (float)sin(a), rc = (float)cos(a);
            ck_assert_msg(ulp_distance(s[i], rs) <= 1.0 || fabs(s[i] - rs) < 1e-30,
                          "sin(%.17g): %.9g vs %.9g", a, s[i], rs);
            ck_assert_msg(ulp_distance(co[i], rc) <= 1.0 || fabs(co[i] - rc) < 1e-30,
                          "cos(%.17g): %.9g vs %.9g", a, co[i], rc);
        }
    }
}
END_TEST

/* Statistics of score__sincos_features() against libm in double rounded to float. */
typedef struct {
    double max_ulp, max_abs, max_arg;
    long differ, total;
} sincos_stats;

static void sincos_check(size_t n, const double *freq, double c, sincos_stats *st)
{
    float s[64], co[64];
    ck_assert_uint_le(n, 64);
    score__sincos_features(n, freq, c, s, co);
    for (size_t i = 0; i < n; i++) {
        double a = freq[i] * c;
        float rs = (float)sin(a), rc = (float)cos(a);
        double us = ulp_distance(s[i], rs), uc = ulp_distance(co[i], rc);
        double es = fabs((double)s[i] - rs), ec = fabs((double)co[i] - rc);
        st->max_arg = fabs(a) > st->max_arg ? fabs(a) : st->max_arg;
        st->max_ulp = us > st->max_ulp ? us : st->max_ulp;
        st->max_ulp = uc > st->max_ulp ? uc : st->max_ulp;
        st->max_abs = es > st->max_abs ? es : st->max_abs;
        st->max_abs = ec > st->max_abs ? ec : st->max_abs;
        st->differ += (s[i] != rs) + (co[i] != rc);
        st->total += 2;
    }
}

/* The vector sine / cosine over a wide, dense range of arguments f c as an MLP's Fourier
 * embedding produces them (|f| up to 2 pi 16 x 4 standard deviations, |c| up to 60, so |f c|
 * up to ~2.4e4; 16 x 2 pi x 50 = 5027 among them), plus large arguments up to the 2^30 limit
 * of the vector path: every result is within 1 ulp of libm's (rounded to float) and all but a
 * tiny fraction are identical. */
START_TEST(sincos_features_wide_range)
{
    enum { NF = 16, NC = 40000 };
    const double two_pi = 6.283185307179586;
    double freq[NF];
    sincos_stats dense = {0}, large = {0};
    unsigned seed = 11;
    for (int i = 0; i < NF; i++)
        freq[i] = two_pi * 16.0 * 4.0 * (double)frand(&seed);
    freq[0] = two_pi * 16.0 * 4.0;
    freq[1] = two_pi * 16.0;
    for (int k = 0; k < NC; k++)
        sincos_check(NF, freq, -60.0 + 120.0 * ((double)k + 0.5 + 0.5 * (double)frand(&seed)) / NC,
                     &dense);
    sincos_check(NF, freq, 50.0, &dense);
    /* large arguments: |f c| log-spaced from 1e4 to just below 2^30 */
    for (int k = 0; k < 20000; k++) {
        double f2[2] = {1.0, -1.0 - 0.25 * (double)frand(&seed)};
        double c = 1e4 * pow(8.5e8 / 1e4, (double)k / 19999.0) * (1.0 + 1e-3 * (double)frand(&seed));
        sincos_check(2, f2, c, &large);
    }
    printf("sincos, %ld values with |f c| <= %.0f: max %.2f ulp, max |error| %.3g, %ld differ "
           "from libm's rounding; %ld values up to %.3g: max %.2f ulp, %ld differ\n",
           dense.total, dense.max_arg, dense.max_ulp, dense.max_abs, dense.differ, large.total,
           large.max_arg, large.max_ulp, large.differ);
    ck_assert(dense.max_arg > 16.0 * two_pi * 50.0);
    ck_assert(large.max_arg > 1e9);
    ck_assert_double_le(dense.max_ulp, 1.0);
    ck_assert_double_le(large.max_ulp, 1.0);
    ck_assert_int_le(dense.differ, dense.total / 100000);
    ck_assert_int_le(large.differ, large.total / 10000);
}
END_TEST

START_TEST(row_reductions)
{
    enum { R = 4, C = 1001 };
    float a[R * C], b[R * C], g[R * C], bias[C];
    double dot[R], nrm[R], sq[R];
    unsigned seed = 5;
    for (int i = 0; i < R * C; i++) { a[i] = frand(&seed); b[i] = frand(&seed); g[i] = frand(&seed); }
    score__row_dot(R, C, a, b, dot);
    score__row_sqnorm(R, C, a, sq);
    score__row_norm(R, C, a, nrm);
    for (int r = 0; r < R; r++) {
        double s = 0, q = 0;
        for (int c = 0; c < C; c++) {
            s += (double)a[r * C + c] * b[r * C + c];
            q += (double)a[r * C + c] * a[r * C + c];
        }
        ck_assert_double_eq_tol(dot[r], s, 1e-12);
        ck_assert_double_eq_tol(sq[r], q, 1e-12);
        ck_assert_double_eq_tol(nrm[r], sqrt(q), 1e-12);
    }
    for (int c = 0; c < C; c++) bias[c] = 1.0f;
    score__col_sum_acc(R, C, g, bias);
    for (int c = 0; c < C; c++) {
        double s = 1.0;
        for (int r = 0; r < R; r++) s += g[r * C + c];
        ck_assert_double_eq_tol(bias[c], s, 1e-6);
    }
    float m[3] = {1, 2, 3}, n[3] = {4, 5, 6}, o[3] = {1, 1, 1};
    score__mul_acc(3, m, n, o);
    ck_assert_float_eq(o[2], 19.0f);
    score__mul(3, m, n, o);
    ck_assert_float_eq(o[1], 10.0f);
    score__saxpy(3, 2.0f, m, o);
    ck_assert_float_eq(o[0], 6.0f);
}
END_TEST

/* The eight-lane dot products agree with the sequential double sums to double rounding, for
 * lengths below, at and above multiples of the lane count. */
START_TEST(row_dot_lanes)
{
    enum { R = 3, C = 1003 };
    float a[R * C], b[R * C];
    double out[R];
    unsigned seed = 9;
    for (int i = 0; i < R * C; i++) { a[i] = frand(&seed); b[i] = frand(&seed); }
    for (int cols = 1; cols <= C; cols += 97) {
        score__row_dot_lanes(R, (size_t)cols, a, b, out);
        for (int r = 0; r < R; r++) {
            double s = 0.0, sa = 0.0;
            for (int c = 0; c < cols; c++) {
                s += (double)a[r * cols + c] * b[r * cols + c];
                sa += fabs((double)a[r * cols + c] * b[r * cols + c]);
            }
            ck_assert_double_eq_tol(out[r], s, 1e-14 * (1.0 + sa));
        }
    }
}
END_TEST

/* The fused reverse step of the tangent pass against its definition, with per-row U blocks and
 * with one shared block (u_stride 0), and for one tangent per row. */
START_TEST(tangent_reverse_step)
{
    enum { NB = 3, K = 4, W = 37 };
    float G[NB * K * W], U[NB * K * W], d1[NB * W], d2[NB * W], dh[NB * W];
    float GU[NB * K * W], dz[NB * W];
    unsigned seed = 13;
    for (int i = 0; i < NB * K * W; i++) { G[i] = frand(&seed); U[i] = frand(&seed); }
    for (int i = 0; i < NB * W; i++) { d1[i] = frand(&seed); d2[i] = frand(&seed); dh[i] = frand(&seed); }
    for (int shared = 0; shared <= 1; shared++)
        for (int k = 1; k <= K; k += K - 1) {
            size_t us = shared ? 0 : (size_t)k * W;
            score__tangent_reverse(NB, (size_t)k, W, G, U, us, d1, d2, dh, GU, dz);
            for (int b = 0; b < NB; b++)
                for (int i = 0; i < W; i++) {
                    float s = 0.0f;
                    for (int q = 0; q < k; q++) {
                        float g = G[(b * k + q) * W + i];
                        s += U[b * us + q * W + i] * g;
                        ck_assert_float_eq(GU[(b * k + q) * W + i], g * d1[b * W + i]);
                    }
                    ck_assert_float_eq_tol(dz[b * W + i], dh[b * W + i] * d1[b * W + i] + d2[b * W + i] * s,
                                           1e-6f);
                }
        }
}
END_TEST

/* The row-invariant GEMM against a packed weight with its fused epilogue: every version gives,
 * bit for bit, the reference "one fmaf chain per element over k in order (from C's value when
 * acc, or from a row vector or a matrix with score__gemm_wt_from), then score__bias_act_inplace on the whole
 * product" for odd shapes (K and N not
 * multiples of 16 or of the tiles' 8 or 64 columns, K = 0, K beyond one or two of the k
 * slices of 128, rows 1 .. 61 (over one epilogue block of 48 rows, not multiples of the
 * tiles' 6), a strided A, a W with a wider row stride) and every
 * epilogue (none, bias + SiLU, bias + SiLU + residual, tanh, identity + bias, SiLU + residual,
 * SiLU alone; bias values beyond the exponential's clamp, huge and NaN); the packing
 * pads with zeros and nothing is stored after the last row's N columns; rows of a product
 * equal the same rows computed in a call of their own; the
 * unpacked version for a few rows (score__gemm_wt_small_at) gives the same bits from W itself
 * or declines (below AVX-512, more than SCORE__GEMM_WT_SMALL rows) without writing. */
START_TEST(gemm_wt_versions_agree)
{
    static const size_t Ns[] = {1, 2, 8, 15, 17, 24, 33, 40, 64, 70, 128, 200};
    static const size_t Ks[] = {0, 1, 3, 17, 40, 128, 130, 257};
    unsigned seed = 11;
    int top = score__gemm_wt_level();
    ck_assert_int_ge(top, 0);
    ck_assert_int_le(top, 2);
    for (size_t in = 0; in < sizeof Ns / sizeof Ns[0]; in++)
        for (size_t ik = 0; ik < sizeof Ks / sizeof Ks[0]; ik++) {
            size_t N = Ns[in], K = Ks[ik], M = 1 + (N * 5 + K * 3) % 61, ldp = score__gemm_wt_ld(N);
            size_t lda = K + 1 + K % 3, ldw = K + 2;
            float *A = malloc((M * lda + 1) * sizeof *A), *Wt = malloc((N * ldw + 1) * sizeof *Wt);
            float *Wp = malloc((K * ldp + 1) * sizeof *Wp), *bias = malloc(N * sizeof *bias);
            float *res = malloc(M * N * sizeof *res), *Cin = malloc(M * N * sizeof *Cin);
            /* C with a guard of 16 floats after it: the padding columns are never stored */
            float *R = malloc(M * N * sizeof *R), *C = malloc((M * N + 16) * sizeof *C);
            float *D = malloc(M * N * sizeof *D), *RD = malloc(M * N * sizeof *RD);
            float *Bt = malloc((K * (N + 3) + 1) * sizeof *Bt);
            float *Wq = malloc((K * ldp + 1) * sizeof *Wq), *S = malloc(M * (N + 5) * sizeof *S);
            ck_assert(A && Wt && Wp && bias && res && Cin && R && C && D && RD && Bt && Wq && S);
            ck_assert_uint_eq(ldp % 16, 0);
            ck_assert_uint_ge(ldp, N);
            for (size_t i = 0; i < M * lda; i++) A[i] = 2.0f * frand(&seed);
            for (size_t i = 0; i < N * ldw; i++) Wt[i] = frand(&seed);
            for (size_t i = 0; i < N; i++) bias[i] = frand(&seed);
            for (size_t i = 0; i < M * N; i++) res[i] = frand(&seed);
            for (size_t i = 0; i < M * N; i++) Cin[i] = frand(&seed);
            score__gemm_wt_pack(N, K, Wt, ldw, Wp);
            /* the same layout packed from W^T (K x N, row stride N + 3) */
            for (size_t k = 0; k < K; k++)
                for (size_t j = 0; j < N; j++)
                    Bt[k * (N + 3) + j] = Wt[j * ldw + k];
            for (size_t i = 0; i < K * ldp + 1; i++)
                Wq[i] = NAN;
            score__gemm_wt_pack_kn(N, K, Bt, N + 3, Wq);
            ck_assert(memcmp(Wq, Wp, K * ldp * sizeof *Wq) == 0);
            ck_assert(isnan(Wq[K * ldp]));
            /* panels of 64 columns (the last one what is left of ldp), each k-major */
            for (size_t k = 0; k < K; k++)
                for (size_t j = 0; j < ldp; j++) {
                    size_t p0 = j / 64 * 64, pw = ldp - p0 < 64 ? ldp - p0 : 64;
                    ck_assert(Wp[p0 * K + k * pw + (j - p0)] == (j < N ? Wt[j * ldw + k] : 0.0f));
                }
            /* a bias with values beyond the SiLU kernel's clamp of e^-z (|z| > 80), huge
             * and NaN in some columns */
            if (N > 2) {
                bias[0] = 120.0f;
                bias[1] = -95.0f;
                bias[2] = NAN;
            }
            if (N > 4) {
                bias[3] = 3e37f;
                bias[4] = -3e37f;
            }
            for (int e = 0; e < 7; e++)
                for (int acc = 0; acc < 2; acc++) {
                    const float *b = e == 0 || e == 3 || e >= 5 ? NULL : bias;
                    const float *r = e == 2 || e == 5 ? res : NULL;
                    int act = e == 0 || e == 4 ? SCORE__ACT_IDENTITY
                              : e == 3         ? SCORE__ACT_TANH
                                               : SCORE__ACT_SILU;
                    for (size_t i = 0; i < M; i++)
                        for (size_t j = 0; j < N; j++) {
                            float z = acc ? Cin[i * N + j] : 0.0f;
                            for (size_t k = 0; k < K; k++)
                                z = fmaf(A[i * lda + k], Wt[j * ldw + k], z);
                            R[i * N + j] = z;
                        }
                    score__bias_act_inplace(M, N, R, b, act, r, RD);
                    for (int lv = 0; lv <= top; lv++) {
                        for (size_t i = 0; i < M * N; i++)
                            C[i] = acc ? Cin[i] : NAN;
                        for (size_t i = 0; i < 16; i++)
                            C[M * N + i] = -7.0f;
                        for (size_t i = 0; i < M * N; i++)
                            D[i] = NAN;
                        /* with phi' kept (every other pass: without) */
                        score__gemm_wt_at(lv, M, N, K, A, lda, Wp, C, acc, b, act, r,
                                          (e + acc) % 2 ? D : NULL);
                        for (size_t i = 0; i < 16; i++)
                            ck_assert(C[M * N + i] == -7.0f);
                        for (size_t i = 0; i < M; i++)
                            ck_assert_msg(memcmp(C + i * N, R + i * N, N * sizeof *C) == 0,
                                          "level %d, M %zu N %zu K %zu, epilogue %d acc %d: "
                                          "row %zu differs", lv, M, N, K, e, acc, i);
                        if ((e + acc) % 2)
                            ck_assert_msg(memcmp(D, RD, M * N * sizeof *D) == 0,
                                          "level %d, M %zu N %zu K %zu, epilogue %d acc %d: "
                                          "phi' differs", lv, M, N, K, e, acc);
                        /* the last row alone, and rows 1 .. from another row position */
                        size_t i0 = M - 1;
                        for (size_t i = 0; i < M * N; i++)
                            C[i] = acc ? Cin[i] : NAN;
                        score__gemm_wt_at(lv, 1, N, K, A + i0 * lda, lda, Wp, C + i0 * N, acc, b,
                                          act, r != NULL ? r + i0 * N : NULL, NULL);
                        ck_assert(memcmp(C + i0 * N, R + i0 * N, N * sizeof *C) == 0);
                        if (M > 1) {
                            for (size_t i = 0; i < M * N; i++)
                                C[i] = acc ? Cin[i] : NAN;
                            score__gemm_wt_at(lv, M - 1, N, K, A + lda, lda, Wp, C + N, acc, b,
                                              act, r != NULL ? r + N : NULL, NULL);
                            ck_assert_msg(memcmp(C + N, R + N, (M - 1) * N * sizeof *C) == 0,
                                          "level %d, M %zu N %zu K %zu, epilogue %d acc %d: "
                                          "rows 1 ..", lv, M, N, K, e, acc);
                        }
                    }
                    /* the unpacked version for a few rows (AVX-512), on W itself; it writes
                     * nothing when it does not apply */
                    for (int lv = 0; lv <= top; lv++)
                        for (size_t m0 = 0; m0 < M; m0 += 5) {
                            size_t mm = M - m0 < 17 ? M - m0 : 17;
                            for (size_t i = 0; i < M * N; i++)
                                C[i] = acc ? Cin[i] : NAN;
                            if (score__gemm_wt_small_at(lv, mm, N, K, A + m0 * lda, lda, Wt, ldw,
                                                        C + m0 * N, acc, b, act,
                                                        r != NULL ? r + m0 * N : NULL))
                                ck_assert_msg(memcmp(C + m0 * N, R + m0 * N, mm * N * sizeof *C) == 0,
                                              "unpacked: level %d, rows %zu.. of %zu, N %zu K %zu, "
                                              "epilogue %d acc %d", lv, m0, mm, N, K, e, acc);
                            else {
                                ck_assert(lv < 2 || mm > SCORE__GEMM_WT_SMALL);
                                for (size_t i = 0; acc && i < M * N; i++)
                                    ck_assert(C[i] == Cin[i]);
                            }
                        }
                    /* the default level's entry point */
                    for (size_t i = 0; i < M * N; i++)
                        C[i] = acc ? Cin[i] : NAN;
                    score__gemm_wt(M, N, K, A, lda, Wp, C, acc, b, act, r);
                    ck_assert(memcmp(C, R, M * N * sizeof *C) == 0);
                    for (size_t i = 0; i < M * N; i++)
                        C[i] = acc ? Cin[i] : NAN;
                    score__gemm_wt_d1(M, N, K, A, lda, Wp, C, acc, b, act, r, D);
                    ck_assert(memcmp(C, R, M * N * sizeof *C) == 0);
                    ck_assert(memcmp(D, RD, M * N * sizeof *D) == 0);
                    /* the chains started from other values c0: a row vector (Cin's last row,
                     * ldc0 = 0) or a matrix with a wider row stride (Cin's rows in S): the bits
                     * of every row's chain from its start values, C never read (NaN) and
                     * nothing stored after it; every version, the whole product and its rows
                     * 1 .. */
                    if (acc)
                        continue;
                    for (size_t i = 0; i < M; i++)
                        memcpy(S + i * (N + 5), Cin + i * N, N * sizeof *S);
                    for (int mat = 0; mat < 2; mat++) {
                        const float *c0 = mat ? S : Cin + (M - 1) * N;
                        size_t ldc0 = mat ? N + 5 : 0;
                        for (size_t i = 0; i < M; i++)
                            for (size_t j = 0; j < N; j++) {
                                float z = c0[i * ldc0 + j];
                                for (size_t k = 0; k < K; k++)
                                    z = fmaf(A[i * lda + k], Wt[j * ldw + k], z);
                                R[i * N + j] = z;
                            }
                        score__bias_act_inplace(M, N, R, b, act, r, NULL);
                        for (int lv = 0; lv <= top + 1; lv++) {
                            size_t i0 = lv > top ? 1 : 0; /* last pass: rows 1 .., default */
                            for (size_t i = 0; i < M * N + 16; i++)
                                C[i] = i < M * N ? NAN : -7.0f;
                            if (lv > top)
                                score__gemm_wt_from(M - i0, N, K, A + i0 * lda, lda, Wp,
                                                    C + i0 * N, c0 + i0 * ldc0, ldc0, b, act,
                                                    r != NULL ? r + i0 * N : NULL);
                            else
                                score__gemm_wt_from_at(lv, M, N, K, A, lda, Wp, C, c0, ldc0, b,
                                                       act, r);
                            for (size_t i = 0; i < 16; i++)
                                ck_assert(C[M * N + i] == -7.0f);
                            ck_assert_msg(memcmp(C + i0 * N, R + i0 * N,
                                                 (M - i0) * N * sizeof *C) == 0,
                                          "from %s: level %d, M %zu N %zu K %zu, epilogue %d",
                                          mat ? "a matrix" : "a row", lv, M, N, K, e);
                        }
                    }
                }
            free(A); free(Wt); free(Wp); free(bias); free(res); free(Cin); free(R); free(C);
            free(D); free(RD); free(Bt); free(Wq); free(S);
        }
}
END_TEST

/* score__fold_bias: every version gives the bits of a plain double loop (each output's sum
 * b[j] + sum_i W[j, i] e[i] in i order, then rounded to float), for output counts around the
 * AVX-512 version's groups of 16 and term counts around its 16 x 16 blocks, W with a wider row
 * stride; nothing is written after out[N - 1]. */
START_TEST(fold_bias_versions_agree)
{
    static const size_t Ns[] = {1, 5, 16, 17, 40, 128, 130};
    static const size_t Ks[] = {0, 1, 7, 16, 33, 64, 100};
    unsigned seed = 23;
    int top = score__gemm_wt_level();
    for (size_t in = 0; in < sizeof Ns / sizeof Ns[0]; in++)
        for (size_t ik = 0; ik < sizeof Ks / sizeof Ks[0]; ik++) {
            size_t N = Ns[in], K = Ks[ik], ldw = K + 3;
            float *W = malloc((N * ldw + 1) * sizeof *W), *b = malloc(N * sizeof *b);
            float *e = malloc((K + 1) * sizeof *e), *ref = malloc(N * sizeof *ref);
            float *out = malloc((N + 16) * sizeof *out);
            ck_assert(W && b && e && ref && out);
            for (size_t i = 0; i < N * ldw; i++) W[i] = frand(&seed);
            for (size_t i = 0; i < K; i++) e[i] = frand(&seed);
            for (size_t j = 0; j < N; j++) {
                double acc;
                b[j] = frand(&seed);
                acc = (double)b[j];
                for (size_t i = 0; i < K; i++)
                    acc += (double)W[j * ldw + i] * (double)e[i];
                ref[j] = (float)acc;
            }
            for (int lv = 0; lv <= top; lv++) {
                for (size_t j = 0; j < N + 16; j++) out[j] = -7.0f;
                score__fold_bias_at(lv, N, K, W, ldw, b, e, out);
                ck_assert_msg(memcmp(out, ref, N * sizeof *out) == 0,
                              "level %d, N %zu, K %zu: differs", lv, N, K);
                for (size_t j = N; j < N + 16; j++)
                    ck_assert(out[j] == -7.0f);
            }
            score__fold_bias(N, K, W, ldw, b, e, out);
            ck_assert(memcmp(out, ref, N * sizeof *out) == 0);
            free(W); free(b); free(e); free(ref); free(out);
        }
}
END_TEST

/* The column-invariant GEMM: every version gives the portable version's bits (tails of every
 * length: N = 1 .. 70, K up to 600, padded strides); a column block computed alone or at any
 * offset of a wider product gives the same bits; values within the GEMM bound of a double
 * reference; acc = 1 continues from C, acc = 0 never reads it. */
START_TEST(gemm_cols_versions_agree)
{
    unsigned seed = 7;
    int top = score__gemm_cols_level();
    ck_assert_int_ge(top, 0);
    ck_assert_int_le(top, 2);
    for (size_t N = 1; N <= 70; N++) {
        size_t M = 1 + (N * 7) % 19, K = N % 5 == 0 ? 1 + (N * 37) % 600 : 1 + (N * 13) % 97;
        if (N == 64)
            K = 600;
        size_t lda = K + N % 3, ldb = N + N % 4, ldc = N + 1 + N % 2;
        float *A = malloc(M * lda * sizeof *A), *B = malloc(K * ldb * sizeof *B);
        float *C0 = malloc(M * ldc * sizeof *C0), *C = malloc(M * ldc * sizeof *C);
        float *Cin = malloc(M * ldc * sizeof *Cin);
        for (size_t i = 0; i < M * lda; i++) A[i] = frand(&seed);
        for (size_t i = 0; i < K * ldb; i++) B[i] = frand(&seed);
        for (size_t i = 0; i < M * ldc; i++) Cin[i] = frand(&seed);
        for (int acc = 0; acc < 2; acc++) {
            for (size_t i = 0; i < M * ldc; i++)
                C0[i] = acc ? Cin[i] : NAN;
            score__gemm_cols_at(0, M, N, K, A, lda, B, ldb, C0, ldc, acc);
            for (size_t i = 0; i < M; i++)
                for (size_t j = 0; j < N; j++) {
                    double s = acc ? Cin[i * ldc + j] : 0.0, mag = fabs(s);
                    for (size_t k = 0; k < K; k++) {
                        s += (double)A[i * lda + k] * B[k * ldb + j];
                        mag += fabs((double)A[i * lda + k] * B[k * ldb + j]);
                    }
                    ck_assert_double_le(fabs(C0[i * ldc + j] - s), TOL_GEMM_REL * mag + 1e-6);
                }
            for (int lv = 0; lv <= top; lv++) {
                for (size_t i = 0; i < M * ldc; i++)
                    C[i] = acc ? Cin[i] : NAN;
                score__gemm_cols_at(lv, M, N, K, A, lda, B, ldb, C, ldc, acc);
                for (size_t i = 0; i < M; i++) {
                    ck_assert_msg(memcmp(C + i * ldc, C0 + i * ldc, N * sizeof *C) == 0,
                                  "level %d, N %zu, K %zu, row %zu differs", lv, N, K, i);
                    /* the padding after a row is not written */
                    for (size_t j = N; j < ldc; j++)
                        ck_assert(acc ? C[i * ldc + j] == Cin[i * ldc + j]
                                      : isnan(C[i * ldc + j]));
                }
                /* columns j0 .. N - 1 alone (another position in the vectors and blocks) */
                size_t j0 = N / 3;
                for (size_t i = 0; i < M * ldc; i++)
                    C[i] = acc ? Cin[i] : 0.0f;
                score__gemm_cols_at(lv, M, N - j0, K, A, lda, B + j0, ldb, C + j0, ldc, acc);
                for (size_t i = 0; i < M; i++)
                    ck_assert(memcmp(C + i * ldc + j0, C0 + i * ldc + j0,
                                     (N - j0) * sizeof *C) == 0);
            }
        }
        /* K = 0: C = 0 or unchanged */
        for (size_t i = 0; i < M * ldc; i++)
            C[i] = Cin[i];
        score__gemm_cols(M, N, 0, A, lda, B, ldb, C, ldc, 1);
        ck_assert(memcmp(C, Cin, M * ldc * sizeof *C) == 0);
        score__gemm_cols(M, N, 0, A, lda, B, ldb, C, ldc, 0);
        for (size_t i = 0; i < M; i++)
            for (size_t j = 0; j < N; j++)
                ck_assert(C[i * ldc + j] == 0.0f);
        free(A); free(B); free(C0); free(C); free(Cin);
    }
}
END_TEST

/* Shapes {h, w, ci, co, n} of the direct 3x3 convolutions: the U-Net's planes, planes that are
 * not a multiple of any vector width, planes of one or two rows or columns, larger planes. */
static const size_t conv_shapes[][5] = {
    {8, 8, 5, 13, 3}, {4, 4, 3, 7, 5},  {5, 7, 2, 9, 3}, {16, 16, 3, 4, 2}, {1, 1, 4, 3, 3},
    {2, 2, 3, 5, 4},  {3, 1, 2, 3, 2},  {1, 6, 2, 2, 2}, {9, 11, 1, 8, 2},  {3, 3, 2, 6, 7},
    {2, 9, 3, 2, 3},  {33, 3, 2, 3, 2}, {70, 70, 1, 1, 1},
    /* the AVX-512 tiles specialised for 8 x 8 and 4 x 4 planes: every row count of a tile
     * (also as the input gradient's, ci), 4 x 4 images in whole tiles of 4 and with 1 .. 3 left */
    {8, 8, 4, 11, 2}, {8, 8, 6, 3, 1},  {4, 4, 6, 16, 7}, {4, 4, 2, 5, 4}, {4, 4, 5, 2, 10},
    /* the AVX2 ones (tiles of one 4 x 4 image or one 8 x 8 row pair): input gradient tiles of
     * 1 row, and of 3 */
    {8, 8, 1, 2, 2},  {4, 4, 1, 3, 3},  {8, 8, 3, 1, 1},
    /* the weight gradient: 8 x 8 with 16 and 17 images (4 chunks of 256 pairs, and a partial
     * fifth), 4 x 4 with 16 (one chunk) and 65 images (a fifth chunk of one image) */
    {8, 8, 2, 7, 16}, {8, 8, 2, 6, 17}, {4, 4, 6, 8, 16}, {4, 4, 1, 6, 65},
    /* planes of fewer than 16 pixels (output channels in the lanes): more than one packed chunk of
     * 64 input channels, blocks of 16 (8) output channels with some left over, tiles of 2 (2 x 2)
     * and 8 or 4 (1 x 1) images with some left over, more than one block of 64 images, and planes
     * without a specialised tile */
    {2, 2, 70, 21, 5}, {2, 2, 16, 32, 3}, {1, 1, 67, 17, 11}, {1, 1, 5, 3, 70}, {2, 2, 3, 9, 67},
    {2, 3, 5, 9, 3},   {3, 2, 4, 17, 2},  {1, 2, 3, 4, 3},
};

/* Whether tap t of pixel (py, px) reads inside an h x w plane, and where. */
static int conv_src(size_t h, size_t w, size_t py, size_t px, size_t t, size_t *src)
{
    long sy = (long)py + (long)(t / 3) - 1, sx = (long)px + (long)(t % 3) - 1;
    if (sy < 0 || sx < 0 || sy >= (long)h || sx >= (long)w)
        return 0;
    *src = (size_t)sy * w + (size_t)sx;
    return 1;
}

static void conv_fill(unsigned *seed, size_t len, float *a)
{
    for (size_t i = 0; i < len; i++)
        a[i] = frand(seed);
}

/* The direct forward gives, at every level, the bits of im2col (a plain copying loop) +
 * score__gemm_cols + a bias addition, image by image; acc = 0 never reads y. So does the forward
 * with the weight packed beforehand (score__conv3_pack: the same floats at every level, every
 * float written; planes of 16 pixels and more need no pack and read none, wp NULL). */
START_TEST(conv3_direct_forward)
{
    unsigned seed = 11;
    int top = score__gemm_cols_level();
    for (size_t si = 0; si < sizeof conv_shapes / sizeof conv_shapes[0]; si++) {
        size_t h = conv_shapes[si][0], w = conv_shapes[si][1], ci = conv_shapes[si][2];
        size_t co = conv_shapes[si][3], n = conv_shapes[si][4], hw = h * w, kk = 9 * ci;
        float *x = malloc(n * ci * hw * sizeof *x), *wt = malloc(co * kk * sizeof *wt);
        float *b = malloc(co * sizeof *b), *y0 = malloc(n * co * hw * sizeof *y0);
        float *ref = malloc(n * co * hw * sizeof *ref), *y = malloc(n * co * hw * sizeof *y);
        float *col = malloc(kk * hw * sizeof *col);
        size_t np = score__conv3_packed_floats(ci, co, h, w), pb = (np + 16) / 16 * 64;
        float *wp = aligned_alloc(64, pb), *wpl = aligned_alloc(64, pb);
        ck_assert(np == 0 || np == (co + 15) / 16 * 16 * kk);
        ck_assert(hw >= 16 || np > 0);
        conv_fill(&seed, n * ci * hw, x);
        conv_fill(&seed, co * kk, wt);
        conv_fill(&seed, co, b);
        conv_fill(&seed, n * co * hw, y0);
        for (int lv = 0; lv <= top; lv++) {
            for (size_t j = 0; j < np; j++)
                wpl[j] = NAN;
            score__conv3_pack_at(lv, ci, co, h, w, wt, wpl);
            if (lv == 0)
                memcpy(wp, wpl, np * sizeof *wp);
            ck_assert_msg(memcmp(wpl, wp, np * sizeof *wp) == 0, "pack level %d, shape %zu", lv,
                          si);
        }
        for (int acc = 0; acc < 2; acc++)
            for (int bias = 0; bias < 2; bias++) {
                for (size_t i = 0; i < n; i++) {
                    for (size_t k = 0; k < kk; k++)
                        for (size_t p = 0; p < hw; p++) {
                            size_t src;
                            col[k * hw + p] = conv_src(h, w, p / w, p % w, k % 9, &src)
                                                  ? x[(i * ci + k / 9) * hw + src]
                                                  : 0.0f;
                        }
                    float *yi = ref + i * co * hw;
                    memcpy(yi, y0 + i * co * hw, co * hw * sizeof *yi);
                    score__gemm_cols_at(0, co, hw, kk, wt, kk, col, hw, yi, hw, acc);
                    if (bias)
                        for (size_t o = 0; o < co; o++)
                            for (size_t p = 0; p < hw; p++)
                                yi[o * hw + p] = yi[o * hw + p] + b[o];
                }
                for (int lv = 0; lv <= top; lv++) {
                    for (size_t j = 0; j < n * co * hw; j++)
                        y[j] = acc ? y0[j] : NAN;
                    score__conv3_forward_at(lv, n, ci, co, h, w, wt, bias ? b : NULL, x, y,
                                            acc);
                    ck_assert_msg(memcmp(y, ref, n * co * hw * sizeof *y) == 0,
                                  "level %d, shape %zu, acc %d, bias %d", lv, si, acc, bias);
                    for (size_t j = 0; j < n * co * hw; j++)
                        y[j] = acc ? y0[j] : NAN;
                    score__conv3_forward_packed_at(lv, n, ci, co, h, w, wt, np ? wp : NULL,
                                                   bias ? b : NULL, x, y, acc);
                    ck_assert_msg(memcmp(y, ref, n * co * hw * sizeof *y) == 0,
                                  "packed: level %d, shape %zu, acc %d, bias %d", lv, si, acc,
                                  bias);
                }
            }
        free(x); free(wt); free(b); free(y0); free(ref); free(y); free(col); free(wp); free(wpl);
    }
}
END_TEST

/* The forward, the forward with the weight packed beforehand and the input gradient on 8 x 8 and
 * 4 x 4 planes (at the AVX-512 level with 16 channels and more: tiles with output channels in
 * the lanes and the padding's terms left out) give exactly the bits of the portable version:
 * channel counts that are not multiples of 16 (blocks of 32 output channels with 16 or fewer
 * left, chunks of 32 and passes of 16 input channels with a partial last one), too few channels
 * for those tiles (1, 3), n = 1 .. 17 images, acc and bias both ways (all four on the smaller
 * shapes, one in turn on the larger), acc = 0 never reading y. */
START_TEST(conv3_channel_lanes_bits)
{
    static const size_t chans[] = {1, 3, 17, 32, 64, 96, 130};
    size_t nch = sizeof chans / sizeof chans[0], k = 0;
    unsigned seed = 17;
    int top = score__gemm_cols_level();
    for (size_t pw = 4; pw <= 8; pw += 4)
        for (size_t a = 0; a < nch; a++)
            for (size_t c = 0; c < nch; c++, k++) {
                size_t ci = chans[a], co = chans[c], hw = pw * pw, n = 1 + k % 17;
                if (ci * co > 4096) /* the portable reference's time */
                    n = 1 + k % 3;
                size_t nx = n * ci * hw, ny = n * co * hw, nw = co * ci * 9;
                size_t np = score__conv3_packed_floats(ci, co, pw, pw);
                float *x = malloc(nx * sizeof *x), *wt = malloc(nw * sizeof *wt);
                float *b = malloc(co * sizeof *b), *y0 = malloc(ny * sizeof *y0);
                float *ref = malloc(ny * sizeof *ref), *y = malloc(ny * sizeof *y);
                float *gx0 = malloc(nx * sizeof *gx0), *gref = malloc(nx * sizeof *gref);
                float *gx = malloc(nx * sizeof *gx);
                float *wp = aligned_alloc(64, (np * sizeof *wp + 64) / 64 * 64);
                conv_fill(&seed, nx, x);
                conv_fill(&seed, nw, wt);
                conv_fill(&seed, co, b);
                conv_fill(&seed, ny, y0);
                conv_fill(&seed, nx, gx0);
                for (int m = 0; m < 4; m++) {
                    int acc = m & 1, bias = m >> 1 & 1;
                    if (ci * co > 1024 && m != (int)(k % 4))
                        continue;
                    memcpy(ref, y0, ny * sizeof *ref);
                    score__conv3_forward_at(0, n, ci, co, pw, pw, wt, bias ? b : NULL, x, ref,
                                            acc);
                    for (int lv = 1; lv <= top; lv++) {
                        for (size_t j = 0; j < ny; j++)
                            y[j] = acc ? y0[j] : NAN;
                        score__conv3_forward_at(lv, n, ci, co, pw, pw, wt, bias ? b : NULL, x,
                                                y, acc);
                        ck_assert_msg(memcmp(y, ref, ny * sizeof *y) == 0,
                                      "level %d, %zux%zu, %zu -> %zu, n %zu, acc %d, bias %d",
                                      lv, pw, pw, ci, co, n, acc, bias);
                        score__conv3_pack_at(lv, ci, co, pw, pw, wt, wp);
                        for (size_t j = 0; j < ny; j++)
                            y[j] = acc ? y0[j] : NAN;
                        score__conv3_forward_packed_at(lv, n, ci, co, pw, pw, wt,
                                                       np ? wp : NULL, bias ? b : NULL, x, y,
                                                       acc);
                        ck_assert_msg(memcmp(y, ref, ny * sizeof *y) == 0,
                                      "packed: level %d, %zux%zu, %zu -> %zu, n %zu, acc %d, "
                                      "bias %d",
                                      lv, pw, pw, ci, co, n, acc, bias);
                    }
                }
                /* the input gradient: gx (ci channels) += the flipped weight's forward of y0 */
                memcpy(gref, gx0, nx * sizeof *gref);
                score__conv3_input_grad_at(0, n, ci, co, pw, pw, wt, y0, gref);
                for (int lv = 1; lv <= top; lv++) {
                    memcpy(gx, gx0, nx * sizeof *gx);
                    score__conv3_input_grad_at(lv, n, ci, co, pw, pw, wt, y0, gx);
                    ck_assert_msg(memcmp(gx, gref, nx * sizeof *gx) == 0,
                                  "input gradient: level %d, %zux%zu, %zu -> %zu, n %zu", lv,
                                  pw, pw, ci, co, n);
                }
                free(x); free(wt); free(b); free(y0); free(ref); free(y); free(gx0); free(gref);
                free(gx); free(wp);
            }
}
END_TEST

/* The input gradient with its weight packed beforehand (score__conv3_igrad_pack) gives exactly
 * the bits of the portable input gradient at every level, whichever level packed it: 8 x 8 and
 * 4 x 4 planes (the output-channel tiles from 16 channels on, the pixel-lane tiles below: nothing
 * packed), 2 x 2, 1 x 1 and 3 x 3 planes (fewer than 16 pixels: always packed), channel counts
 * that leave partial blocks of 16 lanes and chunks of input channels. */
START_TEST(conv3_igrad_packed_bits)
{
    static const size_t planes[] = {8, 4, 2, 1, 3};
    static const size_t chans[] = {1, 3, 17, 32, 70, 130};
    size_t nch = sizeof chans / sizeof chans[0], k = 0;
    unsigned seed = 23;
    int top = score__gemm_cols_level();
    for (size_t q = 0; q < sizeof planes / sizeof planes[0]; q++)
        for (size_t a = 0; a < nch; a++)
            for (size_t c = 0; c < nch; c++, k++) {
                size_t pw = planes[q], ci = chans[a], co = chans[c], hw = pw * pw;
                size_t n = ci * co > 4096 ? 1 + k % 3 : 1 + k % 9;
                size_t nx = n * ci * hw, ny = n * co * hw, nw = co * ci * 9;
                size_t np = score__conv3_igrad_packed_floats(ci, co, pw, pw);
                float *wt = malloc(nw * sizeof *wt), *gy = malloc(ny * sizeof *gy);
                float *gx0 = malloc(nx * sizeof *gx0), *gref = malloc(nx * sizeof *gref);
                float *gx = malloc(nx * sizeof *gx), *gzero = calloc(nx, sizeof *gzero);
                float *wp = aligned_alloc(64, (np * sizeof *wp + 64) / 64 * 64);
                ck_assert(wt != NULL && gy != NULL && gx0 != NULL && gref != NULL &&
                          gx != NULL && gzero != NULL && wp != NULL);
                ck_assert_uint_eq(np, score__conv3_packed_floats(co, ci, pw, pw));
                conv_fill(&seed, nw, wt);
                conv_fill(&seed, ny, gy);
                conv_fill(&seed, nx, gx0);
                memcpy(gref, gx0, nx * sizeof *gref);
                score__conv3_input_grad_at(0, n, ci, co, pw, pw, wt, gy, gref);
                score__conv3_input_grad_at(0, n, ci, co, pw, pw, wt, gy, gzero);
                for (int lp = 0; lp <= top; lp += top > 0 ? top : 1) { /* portable, top */
                    score__conv3_igrad_pack_at(lp, ci, co, pw, pw, wt, wp);
                    for (int lv = 0; lv <= top; lv++) {
                        memcpy(gx, gx0, nx * sizeof *gx);
                        score__conv3_input_grad_packed_at(lv, n, ci, co, pw, pw, wt,
                                                          np ? wp : NULL, gy, gx, 1);
                        ck_assert_msg(memcmp(gx, gref, nx * sizeof *gx) == 0,
                                      "packed at level %d, run at %d, %zux%zu, %zu -> %zu, "
                                      "n %zu",
                                      lp, lv, pw, pw, ci, co, n);
                        /* acc = 0: the bits of adding to a zeroed gx, gx not read */
                        for (size_t j = 0; j < nx; j++)
                            gx[j] = NAN;
                        score__conv3_input_grad_packed_at(lv, n, ci, co, pw, pw, wt,
                                                          np ? wp : NULL, gy, gx, 0);
                        ck_assert_msg(memcmp(gx, gzero, nx * sizeof *gx) == 0,
                                      "written: packed at level %d, run at %d, %zux%zu, "
                                      "%zu -> %zu, n %zu",
                                      lp, lv, pw, pw, ci, co, n);
                    }
                }
                free(wt); free(gy); free(gx0); free(gref); free(gx); free(gzero); free(wp);
            }
}
END_TEST

/* The gradients in double: rw[(o * ci + c) * 9 + t] += the sum over images and pixels of
 * gy[i, o, p] * x[i, c, p + shift(t)] (taps inside the plane), mw[...] += the sum of the terms'
 * magnitudes (the error bound's scale); with wt != NULL also the input gradient,
 * rx[i, c, p + shift(t)] += wt[o, c, t] * gy[i, o, p], and mx its magnitudes. */
static void conv_grad_ref(size_t n, size_t ci, size_t co, size_t h, size_t w, const float *gy,
                          const float *x, double *rw, double *mw, const float *wt, double *rx,
                          double *mx)
{
    size_t hw = h * w;
    for (size_t i = 0; i < n; i++)
        for (size_t o = 0; o < co; o++)
            for (size_t c = 0; c < ci; c++)
                for (size_t t = 0; t < 9; t++)
                    for (size_t p = 0; p < hw; p++) {
                        size_t src;
                        double g = gy[(i * co + o) * hw + p], d;
                        if (!conv_src(h, w, p / w, p % w, t, &src))
                            continue;
                        d = g * x[(i * ci + c) * hw + src];
                        rw[(o * ci + c) * 9 + t] += d;
                        mw[(o * ci + c) * 9 + t] += fabs(d);
                        if (wt != NULL) {
                            double dx = (double)wt[(o * ci + c) * 9 + t] * g;
                            rx[(i * ci + c) * hw + src] += dx;
                            mx[(i * ci + c) * hw + src] += fabs(dx);
                        }
                    }
}

/* Input gradient (the bits of the forward of the flipped weight, accumulated) and weight
 * gradient: within
 * the GEMM bound of double references (relative to the sum of |terms|), the same bits at every
 * level, added to the gradients' previous values. */
START_TEST(conv3_direct_gradients)
{
    unsigned seed = 13;
    int top = score__gemm_cols_level();
    for (size_t si = 0; si < sizeof conv_shapes / sizeof conv_shapes[0]; si++) {
        size_t h = conv_shapes[si][0], w = conv_shapes[si][1], ci = conv_shapes[si][2];
        size_t co = conv_shapes[si][3], n = conv_shapes[si][4], hw = h * w, kk = 9 * ci;
        size_t nx = n * ci * hw, ny = n * co * hw;
        float *x = malloc(nx * sizeof *x), *wt = malloc(co * kk * sizeof *wt);
        float *wf = malloc(co * kk * sizeof *wf), *gy = malloc(ny * sizeof *gy);
        float *gx0 = malloc(nx * sizeof *gx0), *gx = malloc(nx * sizeof *gx);
        float *gxl = malloc(nx * sizeof *gxl), *gxf = malloc(nx * sizeof *gxf);
        float *gw0 = malloc(co * kk * sizeof *gw0);
        float *gw = malloc(co * kk * sizeof *gw), *gwl = malloc(co * kk * sizeof *gwl);
        double *rx = malloc(nx * sizeof *rx), *mx = malloc(nx * sizeof *mx);
        double *rw = malloc(co * kk * sizeof *rw), *mw = malloc(co * kk * sizeof *mw);
        conv_fill(&seed, nx, x);
        conv_fill(&seed, co * kk, wt);
        conv_fill(&seed, ny, gy);
        conv_fill(&seed, nx, gx0);
        conv_fill(&seed, co * kk, gw0);
        for (size_t j = 0; j < nx; j++)
            rx[j] = gx0[j], mx[j] = fabs(gx0[j]);
        for (size_t j = 0; j < co * kk; j++)
            rw[j] = gw0[j], mw[j] = fabs(gw0[j]);
        conv_grad_ref(n, ci, co, h, w, gy, x, rw, mw, wt, rx, mx);
        /* the transposed, tap-flipped weight: the input gradient is its forward, bit for bit */
        for (size_t o = 0; o < co; o++)
            for (size_t c = 0; c < ci; c++)
                for (size_t t = 0; t < 9; t++)
                    wf[(c * co + o) * 9 + 8 - t] = wt[(o * ci + c) * 9 + t];
        for (int lv = 0; lv <= top; lv++) {
            memcpy(gx, gx0, nx * sizeof *gx);
            score__conv3_input_grad_at(lv, n, ci, co, h, w, wt, gy, gx);
            memcpy(gxf, gx0, nx * sizeof *gxf);
            score__conv3_forward_at(lv, n, co, ci, h, w, wf, NULL, gy, gxf, 1);
            ck_assert_msg(memcmp(gx, gxf, nx * sizeof *gx) == 0, "dx = flipped forward, level %d",
                          lv);
            memcpy(gw, gw0, co * kk * sizeof *gw);
            score__conv3_wgrad_at(lv, n, ci, co, h, w, gy, x, gw);
            if (lv == 0) {
                for (size_t j = 0; j < nx; j++)
                    ck_assert_double_le(fabs(gx[j] - rx[j]), TOL_GEMM_REL * mx[j] + 1e-6);
                for (size_t j = 0; j < co * kk; j++)
                    ck_assert_double_le(fabs(gw[j] - rw[j]), TOL_GEMM_REL * mw[j] + 1e-6);
                memcpy(gxl, gx, nx * sizeof *gx);
                memcpy(gwl, gw, co * kk * sizeof *gw);
            } else {
                ck_assert_msg(memcmp(gx, gxl, nx * sizeof *gx) == 0, "dx level %d, shape %zu",
                              lv, si);
                ck_assert_msg(memcmp(gw, gwl, co * kk * sizeof *gw) == 0,
                              "dw level %d, shape %zu", lv, si);
            }
        }
        free(x); free(wt); free(wf); free(gy); free(gx0); free(gx); free(gxl); free(gxf);
        free(gw0); free(gw); free(gwl); free(rx); free(mx); free(rw); free(mw);
    }
}
END_TEST

/* The weight gradient's documented order (kernel-priv.h), written out element by element in
 * float: blocks of 64 (image, pixel) pairs summed by an fma chain from +0 over the taps inside the
 * plane, 4 blocks to a chunk, each chunk's sum added to gw. */
static void wgrad_order_ref(size_t n, size_t ci, size_t co, size_t h, size_t w, const float *gy,
                            const float *x, float *gw)
{
    size_t hw = h * w, np = n * hw;
    for (size_t o = 0; o < co; o++)
        for (size_t c = 0; c < ci; c++)
            for (size_t t = 0; t < 9; t++) {
                float *g = &gw[(o * ci + c) * 9 + t];
                for (size_t j0 = 0; j0 < np; j0 += 256) {
                    float tot = 0.0f;
                    for (size_t b0 = j0; b0 < np && b0 < j0 + 256; b0 += 64) {
                        float s = 0.0f;
                        for (size_t j = b0; j < np && j < b0 + 64; j++) {
                            size_t i = j / hw, p = j % hw, src;
                            if (conv_src(h, w, p / w, p % w, t, &src))
                                s = fmaf(gy[(i * co + o) * hw + p], x[(i * ci + c) * hw + src], s);
                        }
                        tot = b0 == j0 ? s : tot + s;
                    }
                    *g = *g + tot;
                }
            }
}

/* The weight gradient bit for bit against its documented order at every level, and within the
 * GEMM bound of a double reference, on shapes that cross its blocks: several tiles of 32 output
 * channels and ones of 16 and fewer, more than one chunk of 256 pairs with a partial last one,
 * blocks and chunks that split an image (5 x 7, 9 x 11, 16 x 16), the 8 x 8 .. 1 x 1 planes with
 * their taps unrolled; fewer output channels than lanes (the narrow tile), up to its widest
 * plane (3 x 128: its buffer filled exactly) and past it (3 x 130: the wide tile), and on planes
 * less than 3 pixels high or wide. Values spanning many magnitudes, so another order gives other
 * bits. */
START_TEST(conv3_wgrad_order)
{
    static const size_t shapes[][5] = {
        {8, 8, 3, 40, 9},  {8, 8, 2, 17, 5},  {4, 4, 2, 33, 20}, {4, 4, 3, 64, 16},
        {2, 2, 3, 20, 70}, {1, 1, 3, 17, 300}, {5, 7, 2, 18, 9}, {9, 11, 2, 5, 3},
        {16, 16, 1, 3, 2}, {3, 3, 2, 48, 40}, {8, 8, 1, 1, 16},
        /* few output channels (the narrow tile: input channels in the lanes), ci not a multiple
         * of 16 or 8, chunks that split images (halo rows) and hold many */
        {8, 8, 32, 1, 16}, {8, 8, 32, 3, 9},  {8, 8, 20, 2, 5},   {8, 8, 37, 5, 6},
        {8, 8, 40, 15, 5}, {4, 4, 32, 3, 21}, {4, 4, 19, 1, 17},  {2, 2, 32, 1, 70},
        {2, 2, 21, 5, 67}, {1, 1, 32, 3, 300}, {1, 1, 17, 2, 259}, {5, 7, 32, 3, 9},
        {5, 7, 9, 2, 15},  {16, 16, 33, 1, 3}, {16, 16, 24, 15, 2}, {32, 32, 32, 1, 2},
        {32, 32, 32, 3, 1}, {32, 32, 18, 5, 2}, {3, 128, 20, 1, 2}, {3, 130, 20, 1, 2},
        /* the narrow tile on planes less than 3 high or wide (every pixel on the edge) */
        {2, 3, 20, 1, 30}, {1, 5, 18, 2, 40}, {3, 1, 17, 3, 50}, {2, 5, 33, 2, 21},
    };
    unsigned seed = 31;
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        size_t h = shapes[si][0], w = shapes[si][1], ci = shapes[si][2], co = shapes[si][3];
        size_t n = shapes[si][4], hw = h * w, nx = n * ci * hw, ny = n * co * hw, nw = co * ci * 9;
        float *x = malloc(nx * sizeof *x), *gy = malloc(ny * sizeof *gy);
        float *gw0 = malloc(nw * sizeof *gw0), *gw = malloc(nw * sizeof *gw);
        float *want = malloc(nw * sizeof *want);
        double *rw = malloc(nw * sizeof *rw), *mw = malloc(nw * sizeof *mw);
        conv_fill(&seed, nx, x);
        conv_fill(&seed, ny, gy);
        for (size_t j = 0; j < ny; j++)
            gy[j] = ldexpf(gy[j], (int)(j * 7 % 23) - 11);
        conv_fill(&seed, nw, gw0);
        memcpy(want, gw0, nw * sizeof *want);
        wgrad_order_ref(n, ci, co, h, w, gy, x, want);
        for (size_t j = 0; j < nw; j++)
            rw[j] = gw0[j], mw[j] = fabs(gw0[j]);
        conv_grad_ref(n, ci, co, h, w, gy, x, rw, mw, NULL, NULL, NULL);
        for (size_t j = 0; j < nw; j++)
            ck_assert_double_le(fabs(want[j] - rw[j]), TOL_GEMM_REL * mw[j] + 1e-6);
        for (int lv = 0; lv <= score__gemm_cols_level(); lv++) {
            memcpy(gw, gw0, nw * sizeof *gw);
            score__conv3_wgrad_at(lv, n, ci, co, h, w, gy, x, gw);
            for (size_t j = 0; j < nw; j++)
                ck_assert_msg(memcmp(&gw[j], &want[j], sizeof *gw) == 0,
                              "level %d, shape %zu, element %zu: %a, want %a", lv, si, j,
                              (double)gw[j], (double)want[j]);
        }
        free(x); free(gy); free(gw0); free(gw); free(want); free(rw); free(mw);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("kernel");
    TCase *tc = tcase_create("kernel");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, sgemm_against_naive);
    tcase_add_test(tc, sgemv_against_naive);
    tcase_add_test(tc, activation_derivatives_fd);
    tcase_add_test(tc, fused_bias_activation);
    tcase_add_test(tc, fused_bias_activation_residual);
    tcase_add_test(tc, fused_bias_activation_inplace);
    tcase_add_test(tc, silu_sigmoid_accuracy);
    tcase_add_test(tc, silu_versions_agree);
    tcase_add_test(tc, silu_derivatives_consistent);
    tcase_add_test(tc, mul_col_sum_matches);
    tcase_add_test(tc, mul_col_sum_ip_matches);
    tcase_add_test(tc, elementwise_mul_add);
    tcase_add_test(tc, sincos_features);
    tcase_add_test(tc, sincos_features_wide_range);
    tcase_add_test(tc, row_reductions);
    tcase_add_test(tc, row_dot_lanes);
    tcase_add_test(tc, tangent_reverse_step);
    tcase_add_test(tc, gemm_cols_versions_agree);
    tcase_add_test(tc, gemm_wt_versions_agree);
    tcase_add_test(tc, fold_bias_versions_agree);
    tcase_add_test(tc, conv3_direct_forward);
    tcase_add_test(tc, conv3_channel_lanes_bits);
    tcase_add_test(tc, conv3_direct_gradients);
    tcase_add_test(tc, conv3_igrad_packed_bits);
    tcase_add_test(tc, conv3_wgrad_order);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
