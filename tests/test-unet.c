/* U-Net layers (src/model/unet-*.c): forward against double-precision references where the
 * layer has a closed form, and every backward (input and parameter gradients) against finite
 * differences of the float32 forward.
 *
 * Gradient checks: the scalar L = sum_j r_j y_j (r fixed, L summed in double) is differentiated
 * by the fourth-order central stencil (8 (L(+h) - L(-h)) - (L(+2h) - L(-2h))) / (12 h) with
 * h = 1e-2 along every input and parameter coordinate, and compared with the backward's
 * gradient for gy = r. The error reported is max |fd - analytic| / max |analytic| over the
 * coordinates of one array. Sources of error: truncation O(h^4 L^(5)) ~ 1e-8, and the float32
 * rounding of the forward, about 2^-24 * sqrt(#outputs) * |r y| / h ~ 1e-5 for these sizes;
 * TOL_UNET_FD = 1e-3 is 30 times the largest error observed (3.4e-5, residual block).
 * Linear layers (convolutions, dense, pooling, up-sampling, concatenation) have no truncation
 * error. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers/test-helpers.h"
#include "model/model-priv.h"
#include "kernel/kernel-priv.h"
#include "model/unet-priv.h"

#define TOL_UNET_FD 1e-3

static float frand(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static void fill(unsigned *s, size_t n, float scale, float *a)
{
    for (size_t i = 0; i < n; i++)
        a[i] = scale * frand(s);
}

/* ---- The generic gradient check ---------------------------------------------------------- */

typedef struct layer_case layer_case;
struct layer_case {
    const char *name;
    size_t np, nx, ny; /* parameter, input and output floats */
    float pscale;      /* range of the random parameters */
    /* y = f(theta, x) */
    void (*fwd)(layer_case *lc, const float *th, const float *x, float *y);
    /* gth += , gx += the gradients for gy, right after fwd at (th, x) */
    void (*bwd)(layer_case *lc, const float *th, const float *x, const float *gy, float *gth,
                float *gx);
    size_t dims[8];   /* layer sizes */
    void *layout;     /* block layout (res / attn) */
    float *cache, *scratch, *col;
    double *dbl;
    void (*param_init)(layer_case *lc, float *th); /* optional: GN gammas near 1 */
};

static double loss_of(layer_case *lc, const float *th, const float *x, const float *r, float *y)
{
    lc->fwd(lc, th, x, y);
    double L = 0.0;
    for (size_t j = 0; j < lc->ny; j++)
        L += (double)r[j] * y[j];
    return L;
}

/* Fourth-order central difference of L along coordinate v[i]. */
static double fd_coord(layer_case *lc, float *th, float *x, float *v, size_t i, const float *r,
                       float *y)
{
    const float h = 1e-2f;
    float v0 = v[i];
    double Lp[2], Lm[2];
    for (int s = 0; s < 2; s++) {
        v[i] = v0 + (float)(s + 1) * h;
        Lp[s] = loss_of(lc, th, x, r, y);
        v[i] = v0 - (float)(s + 1) * h;
        Lm[s] = loss_of(lc, th, x, r, y);
    }
    v[i] = v0;
    return (8.0 * (Lp[0] - Lm[0]) - (Lp[1] - Lm[1])) / (12.0 * (double)h);
}

static double rel_err(size_t n, const double *fd, const float *an)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(fd[i] - an[i]);
        num = d > num ? d : num;
        den = fabs((double)an[i]) > den ? fabs((double)an[i]) : den;
    }
    ck_assert_msg(den > 1e-3, "gradient vanishes: the check would be void");
    return num / den;
}

/* Runs the check; returns the errors of the input and parameter gradients. */
static void grad_check(layer_case *lc, unsigned seed, double *err_x, double *err_p)
{
    float *th = malloc((lc->np + 1) * sizeof *th), *x = malloc(lc->nx * sizeof *x);
    float *y = malloc(lc->ny * sizeof *y), *r = malloc(lc->ny * sizeof *r);
    float *gth = calloc(lc->np + 1, sizeof *gth), *gx = calloc(lc->nx, sizeof *gx);
    size_t nmax = lc->np > lc->nx ? lc->np : lc->nx;
    double *fd = malloc((nmax + 1) * sizeof *fd);
    fill(&seed, lc->np, lc->pscale, th);
    if (lc->param_init != NULL)
        lc->param_init(lc, th);
    fill(&seed, lc->nx, 1.0f, x);
    fill(&seed, lc->ny, 1.0f, r);
    lc->fwd(lc, th, x, y);
    /* the backward adds: start from a non-zero gradient and subtract it afterwards */
    for (size_t i = 0; i < lc->np; i++)
        gth[i] = 0.25f;
    for (size_t i = 0; i < lc->nx; i++)
        gx[i] = -0.5f;
    lc->bwd(lc, th, x, r, gth, gx);
    for (size_t i = 0; i < lc->np; i++)
        gth[i] -= 0.25f;
    for (size_t i = 0; i < lc->nx; i++)
        gx[i] += 0.5f;
    for (size_t i = 0; i < lc->nx; i++)
        fd[i] = fd_coord(lc, th, x, x, i, r, y);
    *err_x = rel_err(lc->nx, fd, gx);
    *err_p = 0.0;
    if (lc->np > 0) {
        for (size_t i = 0; i < lc->np; i++)
            fd[i] = fd_coord(lc, th, x, th, i, r, y);
        *err_p = rel_err(lc->np, fd, gth);
    }
    printf("gradient check %-22s input %.2e  params %.2e  (%zu + %zu coordinates)\n", lc->name,
           *err_x, *err_p, lc->nx, lc->np);
    free(th);
    free(x);
    free(y);
    free(r);
    free(gth);
    free(gx);
    free(fd);
}

static void check_case(layer_case *lc, unsigned seed)
{
    double ex, ep;
    grad_check(lc, seed, &ex, &ep);
    ck_assert_msg(ex < TOL_UNET_FD, "%s: input gradient error %g", lc->name, ex);
    ck_assert_msg(ep < TOL_UNET_FD, "%s: parameter gradient error %g", lc->name, ep);
}

/* ---- Layer adaptors ---------------------------------------------------------------------- */

/* conv3: dims n, ci, co, h, w; params weight then bias */
static void conv3_fwd(layer_case *lc, const float *th, const float *x, float *y)
{
    size_t *d = lc->dims;
    score__unet_conv3_forward(d[0], d[1], d[2], d[3], d[4], th, th + d[2] * d[1] * 9, x, y, 0,
                              lc->col);
}

static void conv3_bwd(layer_case *lc, const float *th, const float *x, const float *gy,
                      float *gth, float *gx)
{
    size_t *d = lc->dims;
    score__unet_conv3_backward(d[0], d[1], d[2], d[3], d[4], th, x, gy, gth,
                               gth + d[2] * d[1] * 9, gx, lc->col, lc->dbl);
}

static void conv1_fwd(layer_case *lc, const float *th, const float *x, float *y)
{
    size_t *d = lc->dims;
    score__unet_conv1_forward(d[0], d[1], d[2], d[3], th, th + d[2] * d[1], x, y, 0);
}

static void conv1_bwd(layer_case *lc, const float *th, const float *x, const float *gy,
                      float *gth, float *gx)
{
    size_t *d = lc->dims;
    score__unet_conv1_backward(d[0], d[1], d[2], d[3], th, x, gy, gth, gth + d[2] * d[1], gx,
                               lc->col, lc->dbl);
}

static void dense_fwd(layer_case *lc, const float *th, const float *x, float *y)
{
    size_t *d = lc->dims;
    score__unet_dense_forward(d[0], d[1], d[2], th, th + d[2] * d[1], x, y, 0);
}

static void dense_bwd(layer_case *lc, const float *th, const float *x, const float *gy,
                      float *gth, float *gx)
{
    size_t *d = lc->dims;
    score__unet_dense_backward(d[0], d[1], d[2], th, x, gy, gth, gth + d[2] * d[1], gx);
}

/* gn: dims n, c, hw, g; params gamma then beta */
static void gn_fwd(layer_case *lc, const float *th, const float *x, float *y)
{
    size_t *d = lc->dims;
    score__unet_gn_forward(d[0], d[1], d[2], d[3], th, th + d[1], x, y, lc->dbl);
}

static void gn_bwd(layer_case *lc, const float *th, const float *x, const float *gy,
                   float *gth, float *gx)
{
    size_t *d = lc->dims;
    score__unet_gn_backward(d[0], d[1], d[2], d[3], th, x, lc->dbl, gy, gth, gth + d[1], gx);
}

static void gn_init(layer_case *lc, float *th)
{
    for (size_t k = 0; k < lc->dims[1]; k++)
        th[k] += 1.0f;
}

static void silu_fwd(layer_case *lc, const float *th, const float *x, float *y)
{
    (void)th;
    for (size_t i = 0; i < lc->nx; i++)
        y[i] = 3.0f * x[i]; /* cover the range [-3, 3] of the activation */
    score__unet_silu_forward(lc->nx, y, y);
}

static void silu_bwd(layer_case *lc, const float *th, const float *x, const float *gy,
                     float *gth, float *gx)
{
    (void)th;
    (void)gth;
    float *z = lc->cache, *g = lc->scratch;
    for (size_t i = 0; i < lc->nx; i++) {
        z[i] = 3.0f * x[i];
        g[i] = 0.0f;
    }
    score__unet_silu_backward(lc->nx, z, gy, g);
    for (size_t i = 0; i < lc->nx; i++)
        gx[i] += 3.0f * g[i];
}

/* down / up: dims nc, h, w (of the input) */
static void down_fwd(layer_case *lc, const float *th, const float *x, float *y)
{
    (void)th;
    score__unet_down_forward(lc->dims[0], lc->dims[1], lc->dims[2], x, y);
}

static void down_bwd(layer_case *lc, const float *th, const float *x, const float *gy,
                     float *gth, float *gx)
{
    (void)th;
    (void)x;
    (void)gth;
    score__unet_down_backward(lc->dims[0], lc->dims[1], lc->dims[2], gy, gx);
}

static void up_fwd(layer_case *lc, const float *th, const float *x, float *y)
{
    (void)th;
    score__unet_up_forward(lc->dims[0], lc->dims[1], lc->dims[2], x, y);
}

static void up_bwd(layer_case *lc, const float *th, const float *x, const float *gy, float *gth,
                   float *gx)
{
    (void)th;
    (void)x;
    (void)gth;
    score__unet_up_backward(lc->dims[0], lc->dims[1], lc->dims[2], gy, gx);
}

/* concat: dims n, ca, cb, hw; the input is a then b */
static void cat_fwd(layer_case *lc, const float *th, const float *x, float *y)
{
    (void)th;
    size_t *d = lc->dims;
    score__unet_concat_forward(d[0], d[1], d[2], d[3], x, x + d[0] * d[1] * d[3], y);
}

static void cat_bwd(layer_case *lc, const float *th, const float *x, const float *gy,
                    float *gth, float *gx)
{
    (void)th;
    (void)x;
    (void)gth;
    size_t *d = lc->dims;
    score__unet_concat_backward(d[0], d[1], d[2], d[3], gy, gx, gx + d[0] * d[1] * d[3]);
}

/* res: dims n; the input is x [n, ci, h, w] then e [n, ne] */
static void res_fwd(layer_case *lc, const float *th, const float *x, float *y)
{
    const score__unet_res *r = lc->layout;
    size_t n = lc->dims[0];
    score__unet_res_forward(r, n, th, x, x + n * r->ci * r->h * r->w, y, lc->cache, lc->dbl,
                            lc->col);
}

static void res_bwd(layer_case *lc, const float *th, const float *x, const float *gy,
                    float *gth, float *gx)
{
    const score__unet_res *r = lc->layout;
    size_t n = lc->dims[0], nx = n * r->ci * r->h * r->w;
    score__unet_res_backward(r, n, th, x, x + nx, lc->cache, lc->dbl, gy, gth, gx,
                             r->ne > 0 ? gx + nx : NULL, lc->scratch, lc->col);
}

static void res_init(layer_case *lc, float *th)
{
    const score__unet_res *r = lc->layout;
    for (size_t k = 0; k < r->ci; k++)
        th[r->gn1_g + k] += 1.0f;
    for (size_t k = 0; k < r->co; k++)
        th[r->gn2_g + k] += 1.0f;
}

static void attn_fwd(layer_case *lc, const float *th, const float *x, float *y)
{
    score__unet_attn_forward(lc->layout, lc->dims[0], th, x, y, lc->cache, lc->dbl);
}

static void attn_bwd(layer_case *lc, const float *th, const float *x, const float *gy,
                     float *gth, float *gx)
{
    score__unet_attn_backward(lc->layout, lc->dims[0], th, x, lc->cache, lc->dbl, gy, gth, gx,
                              lc->scratch, lc->col);
}

static void attn_init(layer_case *lc, float *th)
{
    const score__unet_attn *a = lc->layout;
    for (size_t k = 0; k < a->c; k++)
        th[a->gn_g + k] += 1.0f;
}

static layer_case make_case(const char *name, size_t np, size_t nx, size_t ny)
{
    layer_case lc;
    memset(&lc, 0, sizeof lc);
    lc.name = name;
    lc.np = np;
    lc.nx = nx;
    lc.ny = ny;
    lc.pscale = 0.5f;
    return lc;
}

static void free_case(layer_case *lc)
{
    free(lc->cache);
    free(lc->scratch);
    free(lc->col);
    free(lc->dbl);
}

/* ---- Forward against references ---------------------------------------------------------- */

START_TEST(conv3_forward_reference)
{
    /* sizes with 1-pixel planes and non-square images (the padding taps) */
    static const size_t shapes[][5] = {{2, 3, 4, 5, 6}, {1, 2, 3, 1, 1}, {1, 1, 2, 1, 4},
                                       {2, 5, 1, 3, 2}};
    unsigned seed = 11;
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        size_t n = shapes[si][0], ci = shapes[si][1], co = shapes[si][2], h = shapes[si][3],
               w = shapes[si][4], hw = h * w;
        float *x = malloc(n * ci * hw * sizeof *x), *wt = malloc(co * ci * 9 * sizeof *wt);
        float *b = malloc(co * sizeof *b), *y = malloc(n * co * hw * sizeof *y);
        float *col = malloc(score__unet_conv3_scratch_floats(ci, co, hw) * sizeof *col);
        fill(&seed, n * ci * hw, 1.0f, x);
        fill(&seed, co * ci * 9, 1.0f, wt);
        fill(&seed, co, 1.0f, b);
        for (int acc = 0; acc < 2; acc++) {
            for (size_t i = 0; i < n * co * hw; i++)
                y[i] = acc ? 2.0f : NAN;
            score__unet_conv3_forward(n, ci, co, h, w, wt, b, x, y, acc, col);
            for (size_t i = 0; i < n; i++)
                for (size_t o = 0; o < co; o++)
                    for (size_t py = 0; py < h; py++)
                        for (size_t px = 0; px < w; px++) {
                            double s = b[o] + (acc ? 2.0 : 0.0), mag = fabs(s);
                            for (size_t k = 0; k < ci; k++)
                                for (int dy = -1; dy <= 1; dy++)
                                    for (int dx = -1; dx <= 1; dx++) {
                                        long yy = (long)py + dy, xx = (long)px + dx;
                                        if (yy < 0 || xx < 0 || yy >= (long)h || xx >= (long)w)
                                            continue;
                                        double t = (double)wt[(o * ci + k) * 9 +
                                                              (size_t)(dy + 1) * 3 +
                                                              (size_t)(dx + 1)] *
                                                   x[(i * ci + k) * hw + (size_t)yy * w +
                                                     (size_t)xx];
                                        s += t;
                                        mag += fabs(t);
                                    }
                            double got = y[(i * co + o) * hw + py * w + px];
                            ck_assert_double_le(fabs(got - s), TOL_GEMM_REL * mag + 1e-7);
                        }
        }
        free(x);
        free(wt);
        free(b);
        free(y);
        free(col);
    }
}
END_TEST

/* The forwards' panels: an image's output is the same bits whether it is computed alone or
 * at any position of a panel of several images (calls of 1, 3, 8 and 11 images at several
 * offsets; 8 x 8, 4 x 4, 3 x 5, 2 x 2 and 1 x 1 planes), with acc = 0 and 1, for the 3x3 and
 * the 1x1 convolution. */
START_TEST(conv_panel_positions)
{
    enum { NI = 11 };
    static const size_t shapes[][4] = {{5, 7, 8, 8}, {6, 9, 4, 4}, {3, 4, 3, 5}, {7, 5, 2, 2},
                                       {4, 3, 1, 1}};
    static const size_t counts[4] = {1, 3, 8, 11};
    unsigned seed = 19;
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        size_t ci = shapes[si][0], co = shapes[si][1], h = shapes[si][2], w = shapes[si][3];
        size_t hw = h * w, ny = NI * co * hw;
        float *x = malloc(NI * ci * hw * sizeof *x), *wt = malloc(co * ci * 9 * sizeof *wt);
        float *b = malloc(co * sizeof *b), *y0 = malloc(ny * sizeof *y0);
        float *y = malloc(ny * sizeof *y), *init = malloc(ny * sizeof *init);
        float *col = malloc(score__unet_conv3_scratch_floats(ci, co, hw) * sizeof *col);
        fill(&seed, NI * ci * hw, 1.0f, x);
        fill(&seed, co * ci * 9, 1.0f, wt);
        fill(&seed, co, 1.0f, b);
        fill(&seed, ny, 1.0f, init);
        for (int kind = 0; kind < 2; kind++)
            for (int acc = 0; acc < 2; acc++) {
                /* every image alone */
                memcpy(y0, init, ny * sizeof *y0);
                for (size_t i = 0; i < NI; i++) {
                    if (kind == 0)
                        score__unet_conv3_forward(1, ci, co, h, w, wt, b, x + i * ci * hw,
                                                  y0 + i * co * hw, acc, col);
                    else
                        score__unet_conv1_forward(1, ci, co, hw, wt, b, x + i * ci * hw,
                                                  y0 + i * co * hw, acc);
                }
                for (size_t ni = 0; ni < 4; ni++) {
                    size_t n = counts[ni];
                    size_t step = n == NI ? NI : n > 3 ? NI - n : 2;
                    for (size_t off = 0; off + n <= NI; off += step) {
                        memcpy(y, init, ny * sizeof *y);
                        if (kind == 0)
                            score__unet_conv3_forward(n, ci, co, h, w, wt, b, x + off * ci * hw,
                                                      y + off * co * hw, acc, col);
                        else
                            score__unet_conv1_forward(n, ci, co, hw, wt, b, x + off * ci * hw,
                                                      y + off * co * hw, acc);
                        ck_assert_msg(memcmp(y + off * co * hw, y0 + off * co * hw,
                                             n * co * hw * sizeof *y) == 0,
                                      "kind %d acc %d shape %zu: %zu images at %zu differ",
                                      kind, acc, si, n, off);
                        /* images outside the call untouched */
                        ck_assert(memcmp(y, init, off * co * hw * sizeof *y) == 0);
                        ck_assert(memcmp(y + (off + n) * co * hw, init + (off + n) * co * hw,
                                         (NI - off - n) * co * hw * sizeof *y) == 0);
                    }
                }
            }
        free(x);
        free(wt);
        free(b);
        free(y0);
        free(y);
        free(init);
        free(col);
    }
}
END_TEST

/* The kernel layer's vectorised im2col of a panel (every version this machine runs) gives the
 * bits of score__unet_im2col image by image and writes nothing else of the panel; its col2im
 * the bits of score__unet_col2im_acc. */
START_TEST(im2col_vector_versions)
{
    static const size_t shapes[][4] = {{8, 8, 3, 8}, {4, 4, 2, 8}, {3, 5, 3, 3}, {2, 2, 5, 8},
                                       {1, 1, 2, 5}, {16, 16, 2, 2}, {1, 7, 2, 3}, {6, 1, 1, 2}};
    unsigned seed = 29;
    int top = score__gemm_cols_level();
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        size_t h = shapes[si][0], w = shapes[si][1], c = shapes[si][2], np = shapes[si][3];
        size_t hw = h * w, ld = np * hw + 5, rows = 9 * c + 1;
        float *x = malloc(np * c * hw * sizeof *x);
        float *ref = malloc(rows * ld * sizeof *ref), *got = malloc(rows * ld * sizeof *got);
        fill(&seed, np * c * hw, 1.0f, x);
        for (size_t i = 0; i < rows * ld; i++)
            ref[i] = -7.0f;
        for (size_t j = 0; j < np; j++)
            score__unet_im2col(c, h, w, x + j * c * hw, ref + j * hw, ld);
        ck_assert_int_eq(score__im2col3_vec_at(0, np, c, h, w, x, got, ld), 0);
        for (int lv = 1; lv <= top; lv++) {
            for (size_t i = 0; i < rows * ld; i++)
                got[i] = -7.0f;
            ck_assert_int_eq(score__im2col3_vec_at(lv, np, c, h, w, x, got, ld), 1);
            ck_assert_msg(memcmp(got, ref, rows * ld * sizeof *got) == 0,
                          "level %d, shape %zu", lv, si);
        }
        /* the adjoint, added to a non-zero gradient: the same sums in the same order */
        float *gref = malloc(np * c * hw * sizeof *gref);
        float *ggot = malloc(np * c * hw * sizeof *ggot);
        fill(&seed, rows * ld, 1.0f, ref);
        fill(&seed, np * c * hw, 1.0f, gref);
        memcpy(ggot, gref, np * c * hw * sizeof *ggot);
        for (size_t j = 0; j < np; j++)
            score__unet_col2im_acc(c, h, w, ref + j * hw, ld, gref + j * c * hw);
        ck_assert_int_eq(score__col2im3_vec_at(0, np, c, h, w, ref, ld, ggot), 0);
        float *g0 = malloc(np * c * hw * sizeof *g0);
        memcpy(g0, ggot, np * c * hw * sizeof *g0);
        for (int lv = 1; lv <= top; lv++) {
            memcpy(ggot, g0, np * c * hw * sizeof *ggot);
            ck_assert_int_eq(score__col2im3_vec_at(lv, np, c, h, w, ref, ld, ggot), 1);
            ck_assert_msg(memcmp(ggot, gref, np * c * hw * sizeof *ggot) == 0,
                          "col2im level %d, shape %zu", lv, si);
        }
        free(gref);
        free(ggot);
        free(g0);
        free(x);
        free(ref);
        free(got);
    }
}
END_TEST

START_TEST(groupnorm_forward_reference)
{
    enum { N = 2, C = 6, HW = 7, G = 3 };
    unsigned seed = 5;
    float x[N * C * HW], y[N * C * HW], gamma[C], beta[C];
    double stats[2 * N * G];
    fill(&seed, N * C * HW, 3.0f, x);
    for (size_t i = 0; i < N * C * HW; i++)
        x[i] += 10.0f; /* a large mean: the two-pass variance must not cancel */
    fill(&seed, C, 1.0f, gamma);
    fill(&seed, C, 1.0f, beta);
    score__unet_gn_forward(N, C, HW, G, gamma, beta, x, y, stats);
    for (size_t i = 0; i < N; i++)
        for (size_t q = 0; q < G; q++) {
            const size_t m = (C / G) * HW;
            const float *xs = x + i * C * HW + q * m;
            double mean = 0.0, var = 0.0;
            for (size_t j = 0; j < m; j++)
                mean += xs[j] / (double)m;
            for (size_t j = 0; j < m; j++)
                var += (xs[j] - mean) * (xs[j] - mean) / (double)m;
            ck_assert_double_eq_tol(stats[2 * (i * G + q)], mean, 1e-12);
            ck_assert_double_eq_tol(stats[2 * (i * G + q) + 1], 1.0 / sqrt(var + 1e-6), 1e-9);
            /* normalised values have mean 0 and variance var / (var + eps) in each group */
            for (size_t j = 0; j < m; j++) {
                size_t k = q * (C / G) + j / HW;
                double ref = (xs[j] - mean) / sqrt(var + 1e-6) * gamma[k] + beta[k];
                ck_assert_double_eq_tol(y[i * C * HW + q * m + j], ref, 4e-6);
            }
        }
}
END_TEST

/* The statistics' bits: per group, the sum in double of eight interleaved partial sums (value j
 * into sum j % 8, the tail past the last multiple of 8 into sum 0, then ((s0 + s1) + (s2 + s3))
 * + ((s4 + s5) + (s6 + s7))), the mean = sum / m, then the squared deviations summed the same
 * way. The normalisation's bits: (float)((x - mean) * rstd) * gamma + beta, in that order with no
 * contraction, whatever vector version runs; GroupNorm + SiLU in one pass gives the bits of the
 * two layers (score__bias_act_inplace over the whole output), with and without silu'. */
START_TEST(groupnorm_silu_fused_bits)
{
    /* the last ones: the SiLU over spans of groups (of up to 2048 values): many small groups in
     * one span, spans of 2 groups with one left over, groups larger than a span */
    static const size_t shapes[][4] = {{2, 6, 7, 3},   {3, 8, 64, 2},   {1, 4, 1, 4},
                                       {2, 32, 17, 8}, {5, 64, 4, 8},   {3, 16, 100, 2},
                                       {5, 2, 700, 1}, {2, 4, 1100, 2}, {2, 10, 4, 5},
                                       {1, 9, 16, 9},  {3, 7, 1, 7}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const size_t N = shapes[si][0], C = shapes[si][1], HW = shapes[si][2], G = shapes[si][3];
        size_t len = N * C * HW, m = (C / G) * HW;
        unsigned seed = 41 + (unsigned)si;
        float *x = malloc(len * sizeof *x), *y = malloc(len * sizeof *y);
        float *f = malloc(len * sizeof *f), *d = malloc(len * sizeof *d);
        float *d0 = malloc(len * sizeof *d0), *gamma = malloc(C * sizeof *gamma);
        float *beta = malloc(C * sizeof *beta);
        double *st = malloc(2 * N * G * sizeof *st), *st2 = malloc(2 * N * G * sizeof *st2);
        fill(&seed, len, 4.0f, x);
        fill(&seed, C, 1.5f, gamma);
        fill(&seed, C, 1.0f, beta);
        score__unet_gn_forward(N, C, HW, G, gamma, beta, x, y, st);
        for (size_t b = 0; b < N * G; b++) {
            const float *xs = x + b * m;
            double s8[8] = {0}, q8[8] = {0};
            for (size_t j = 0; j < m; j++)
                s8[j < m / 8 * 8 ? j % 8 : 0] += (double)xs[j];
            double mean = (((s8[0] + s8[1]) + (s8[2] + s8[3])) +
                           ((s8[4] + s8[5]) + (s8[6] + s8[7]))) /
                          (double)m;
            for (size_t j = 0; j < m; j++) {
                double dv = (double)xs[j] - mean;
                q8[j < m / 8 * 8 ? j % 8 : 0] += dv * dv;
            }
            double ss =
                ((q8[0] + q8[1]) + (q8[2] + q8[3])) + ((q8[4] + q8[5]) + (q8[6] + q8[7]));
            double rstd = 1.0 / sqrt(ss / (double)m + 1e-6);
            ck_assert_msg(st[2 * b] == mean && st[2 * b + 1] == rstd, "shape %zu group %zu", si,
                          b);
        }
        for (size_t i = 0; i < len; i++) {
            size_t b = i / m, k = (i % (C * HW)) / HW;
            float ref = (float)(((double)x[i] - st[2 * b]) * st[2 * b + 1]) * gamma[k] + beta[k];
            ck_assert_msg(memcmp(&ref, &y[i], sizeof ref) == 0, "shape %zu value %zu", si, i);
        }
        score__bias_act_inplace(1, len, y, NULL, SCORE__ACT_SILU, NULL, d0);
        score__unet_gn_silu_forward(N, C, HW, G, gamma, beta, x, f, d, st2);
        ck_assert_mem_eq(f, y, len * sizeof *f);
        ck_assert_mem_eq(d, d0, len * sizeof *d);
        ck_assert_mem_eq(st2, st, 2 * N * G * sizeof *st);
        score__unet_gn_silu_forward(N, C, HW, G, gamma, beta, x, f, NULL, st2);
        ck_assert_mem_eq(f, y, len * sizeof *f);
        free(x), free(y), free(f), free(d), free(d0), free(gamma), free(beta), free(st);
        free(st2);
    }
}
END_TEST

/* The backward with the SiLU folded in gives the bits of score__mul then the GroupNorm's
 * backward: adding to gx (acc = 1) and writing it (acc = 0, as into a zeroed gx). */
START_TEST(groupnorm_silu_backward_bits)
{
    static const size_t shapes[][4] = {{2, 6, 7, 3}, {3, 8, 64, 2}, {2, 32, 17, 8}};
    for (size_t si = 0; si < 3; si++) {
        const size_t N = shapes[si][0], C = shapes[si][1], HW = shapes[si][2], G = shapes[si][3];
        size_t len = N * C * HW;
        unsigned seed = 61 + (unsigned)si;
        float *x = malloc(len * sizeof *x), *y = malloc(len * sizeof *y);
        float *d = malloc(len * sizeof *d), *gs = malloc(len * sizeof *gs);
        float *ga = malloc(len * sizeof *ga), *gx0 = malloc(len * sizeof *gx0);
        float *gx1 = malloc(len * sizeof *gx1), *gx2 = malloc(len * sizeof *gx2);
        float *gamma = malloc(C * sizeof *gamma), *beta = malloc(C * sizeof *beta);
        float *gp1 = calloc(2 * C, sizeof *gp1), *gp2 = calloc(2 * C, sizeof *gp2);
        double *st = malloc(2 * N * G * sizeof *st);
        fill(&seed, len, 3.0f, x);
        fill(&seed, C, 1.5f, gamma);
        fill(&seed, C, 1.0f, beta);
        fill(&seed, len, 1.0f, gs);
        fill(&seed, len, 1.0f, gx0);
        score__unet_gn_silu_forward(N, C, HW, G, gamma, beta, x, y, d, st);
        for (int acc = 0; acc <= 1; acc++) {
            for (size_t i = 0; i < len; i++)
                gx1[i] = gx2[i] = acc ? gx0[i] : 0.0f;
            if (!acc)
                gx2[1] = -0.0f; /* overwritten, not read */
            score__mul(len, gs, d, ga);
            score__unet_gn_backward(N, C, HW, G, gamma, x, st, ga, gp1, gp1 + C, gx1);
            score__unet_gn_silu_backward(N, C, HW, G, gamma, x, st, gs, d, gp2, gp2 + C, gx2,
                                         acc);
            ck_assert_mem_eq(gx2, gx1, len * sizeof *gx1);
            ck_assert_mem_eq(gp2, gp1, 2 * C * sizeof *gp1);
        }
        /* no input gradient */
        score__unet_gn_backward(N, C, HW, G, gamma, x, st, ga, gp1, gp1 + C, NULL);
        score__unet_gn_silu_backward(N, C, HW, G, gamma, x, st, gs, d, gp2, gp2 + C, NULL, 1);
        ck_assert_mem_eq(gp2, gp1, 2 * C * sizeof *gp1);
        free(x), free(y), free(d), free(gs), free(ga), free(gx0), free(gx1), free(gx2);
        free(gamma), free(beta), free(gp1), free(gp2), free(st);
    }
}
END_TEST

/* ---- The GroupNorm of round 12 as the reference (one group's sums at a time) ------------ */

static double ref_sum8(size_t m, const float *x, int sq, double mean)
{
    double s[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    size_t j = 0;
    for (; j + 8 <= m; j += 8)
        for (size_t l = 0; l < 8; l++) {
            double d = (double)x[j + l] - (sq ? mean : 0.0);
            s[l] += sq ? d * d : (double)x[j + l];
        }
    for (; j < m; j++) {
        double d = (double)x[j] - mean;
        s[0] += sq ? d * d : (double)x[j];
    }
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

static void ref_gn_forward(size_t n, size_t c, size_t hw, size_t g, const float *gamma,
                           const float *beta, const float *x, float *y, double *stats)
{
    size_t cg = c / g, m = cg * hw;
    for (size_t b = 0; b < n * g; b++) {
        size_t q = b % g;
        const float *xs = x + b * m;
        double mean = ref_sum8(m, xs, 0, 0.0) / (double)m;
        double rstd = 1.0 / sqrt(ref_sum8(m, xs, 1, mean) / (double)m + SCORE__UNET_GN_EPS);
        stats[2 * b] = mean;
        stats[2 * b + 1] = rstd;
        for (size_t k = 0; k < cg; k++)
            for (size_t j = 0; j < hw; j++)
                y[b * m + k * hw + j] =
                    (float)(((double)xs[k * hw + j] - mean) * rstd) * gamma[q * cg + k] +
                    beta[q * cg + k];
    }
}

/* sums of gv and gv * xh over a plane of hw values, gv = gy or gy * ds (float product) */
static void ref_plane_sums(size_t hw, const float *x, const float *gy, const float *ds,
                           double mean, double rstd, double *a, double *b)
{
    double sg[8] = {0}, sgx[8] = {0};
    for (size_t j = 0; j < hw; j++) {
        size_t l = j < hw / 8 * 8 ? j % 8 : 0;
        double gv = (double)(ds ? gy[j] * ds[j] : gy[j]);
        sg[l] += gv;
        sgx[l] += gv * (((double)x[j] - mean) * rstd);
    }
    *a = ((sg[0] + sg[1]) + (sg[2] + sg[3])) + ((sg[4] + sg[5]) + (sg[6] + sg[7]));
    *b = ((sgx[0] + sgx[1]) + (sgx[2] + sgx[3])) + ((sgx[4] + sgx[5]) + (sgx[6] + sgx[7]));
}

/* the backward for gy (ds NULL) or gy * ds; gx += (acc = 1) or = 0 + (acc = 0), or NULL */
static void ref_gn_backward(size_t n, size_t c, size_t hw, size_t g, const float *gamma,
                            const float *x, const double *stats, const float *gy,
                            const float *ds, float *ggamma, float *gbeta, float *gx, int acc)
{
    size_t cg = c / g, m = cg * hw;
    for (size_t i = 0; i < n; i++)
        for (size_t q = 0; q < g; q++) {
            size_t base = i * c * hw + q * m;
            double mean = stats[2 * (i * g + q)], rstd = stats[2 * (i * g + q) + 1];
            double s1 = 0.0, s2 = 0.0;
            for (size_t kc = 0; kc < cg; kc++) {
                size_t k = q * cg + kc, o = base + kc * hw;
                double a, b;
                ref_plane_sums(hw, x + o, gy + o, ds ? ds + o : NULL, mean, rstd, &a, &b);
                ggamma[k] += (float)b;
                gbeta[k] += (float)a;
                s1 += a * gamma[k];
                s2 += b * gamma[k];
            }
            if (gx == NULL)
                continue;
            double a1 = s1 / (double)m, a2 = s2 / (double)m;
            for (size_t kc = 0; kc < cg; kc++) {
                size_t k = q * cg + kc, o = base + kc * hw;
                for (size_t j = 0; j < hw; j++) {
                    double xh = ((double)x[o + j] - mean) * rstd;
                    double gv = (double)(ds ? gy[o + j] * ds[o + j] : gy[o + j]);
                    float v = (float)(rstd * (gv * (double)gamma[k] - a1 - xh * a2));
                    gx[o + j] = (acc ? gx[o + j] : 0.0f) + v;
                }
            }
        }
}

/* Bits equal, or both NaN (the payload of a NaN made inside the sums is not promised). */
static int same_f(float a, float b)
{
    return memcmp(&a, &b, sizeof a) == 0 || (isnan(a) && isnan(b));
}

static int same_d(double a, double b)
{
    return memcmp(&a, &b, sizeof a) == 0 || (isnan(a) && isnan(b));
}

/* The GroupNorm forward (alone and with the SiLU) and backward (alone and with the SiLU, gx
 * added, written and not computed) give the reference's bits on n = 1 .. 17 images, groups of
 * 1 .. 64 channels, planes of 1 .. 256 pixels (statistics of many groups at once, gamma and
 * beta expanded per value on small images), and with infinite and NaN inputs. */
START_TEST(groupnorm_batched_bits)
{
    static const size_t hws[] = {1, 4, 5, 16, 64, 256};
    static const size_t cgs[] = {1, 2, 3, 4, 8, 13, 64};
    size_t si = 0;
    for (size_t hi = 0; hi < sizeof hws / sizeof hws[0]; hi++)
        for (size_t ci = 0; ci < sizeof cgs / sizeof cgs[0]; ci++, si++) {
            const size_t HW = hws[hi], CG = cgs[ci], G = 1 + si % 4, C = CG * G;
            const size_t N = 1 + (si * 5) % 17;
            size_t len = N * C * HW, ns = 2 * N * G;
            unsigned seed = 301 + (unsigned)si;
            /* x, y, yr, d, dr, gs, gx, gxr, gx0 (len each), gamma, beta (C), gp, gpr (2 C) */
            float *buf = malloc((9 * len + 6 * C) * sizeof *buf);
            float *x = buf, *y = x + len, *yr = y + len, *d = yr + len, *dr = d + len;
            float *gs = dr + len, *gx = gs + len, *gxr = gx + len, *gx0 = gxr + len;
            float *gamma = gx0 + len, *beta = gamma + C, *gp = beta + C, *gpr = gp + 2 * C;
            double *st = malloc(2 * ns * sizeof *st), *str = st + ns;
            fill(&seed, len, 4.0f, x);
            for (size_t i = 0; i < len; i++)
                x[i] += 3.0f;
            if (si % 5 == 4) { /* a NaN, an infinity and a -infinity somewhere */
                x[len / 3] = NAN;
                x[len / 2] = INFINITY;
                x[len - 1] = -INFINITY;
            }
            fill(&seed, C, 1.5f, gamma);
            fill(&seed, C, 1.0f, beta);
            fill(&seed, len, 1.0f, gs);
            fill(&seed, len, 1.0f, gx0);
            ref_gn_forward(N, C, HW, G, gamma, beta, x, yr, str);
            score__unet_gn_forward(N, C, HW, G, gamma, beta, x, y, st);
            for (size_t i = 0; i < ns; i++)
                ck_assert_msg(same_d(st[i], str[i]), "stats: shape %zu (%zu %zu %zu %zu) %zu",
                              si, N, C, HW, G, i);
            for (size_t i = 0; i < len; i++)
                ck_assert_msg(same_f(y[i], yr[i]), "forward: shape %zu value %zu", si, i);
            score__bias_act_inplace(1, len, yr, NULL, SCORE__ACT_SILU, NULL, dr);
            score__unet_gn_silu_forward(N, C, HW, G, gamma, beta, x, y, d, st);
            for (size_t i = 0; i < len; i++)
                ck_assert_msg(same_f(y[i], yr[i]) && same_f(d[i], dr[i]),
                              "silu forward: shape %zu value %zu", si, i);
            for (int mode = 0; mode < 5; mode++) { /* plain; silu acc 1, 0; no gx: plain, silu */
                const float *ds = mode == 1 || mode == 2 || mode == 4 ? d : NULL;
                int acc = mode != 2, with_gx = mode < 3;
                fill(&seed, 2 * C, 1.0f, gp);
                memcpy(gpr, gp, 2 * C * sizeof *gp);
                memcpy(gx, gx0, len * sizeof *gx);
                memcpy(gxr, gx0, len * sizeof *gx);
                ref_gn_backward(N, C, HW, G, gamma, x, st, gs, ds, gpr, gpr + C,
                                with_gx ? gxr : NULL, acc);
                if (ds == NULL)
                    score__unet_gn_backward(N, C, HW, G, gamma, x, st, gs, gp, gp + C,
                                            with_gx ? gx : NULL);
                else
                    score__unet_gn_silu_backward(N, C, HW, G, gamma, x, st, gs, ds, gp, gp + C,
                                                 with_gx ? gx : NULL, acc);
                for (size_t k = 0; k < 2 * C; k++)
                    ck_assert_msg(same_f(gp[k], gpr[k]), "backward %d: shape %zu param %zu",
                                  mode, si, k);
                for (size_t i = 0; i < len; i++)
                    ck_assert_msg(same_f(gx[i], gxr[i]), "backward %d: shape %zu value %zu",
                                  mode, si, i);
            }
            free(buf);
            free(st);
        }
}
END_TEST

/* The kernels of those sums at every level this build and processor run: score__sum_runs (sums
 * and sums of squared deviations of runs at a row stride) and score__gn_plane_sums (with and
 * without the SiLU derivative) give the bits of one run summed alone in their order, for 1 .. 9
 * runs (batches of the vector versions with runs left over) of 0 .. 70 values. */
START_TEST(sum_runs_levels)
{
    enum { NR = 9, LD = 75 };
    float x[NR * LD], gy[NR * LD], ds[NR * LD];
    double mean[NR], out[NR], sg[NR], sgx[NR];
    unsigned seed = 77;
    fill(&seed, NR * LD, 5.0f, x);
    fill(&seed, NR * LD, 1.0f, gy);
    fill(&seed, NR * LD, 1.0f, ds);
    for (size_t r = 0; r < NR; r++)
        mean[r] = 0.3 * (double)r - 1.0;
    for (int lv = 0; lv <= score__silu_level(); lv++)
        for (size_t m = 0; m <= 70; m += (m < 20 ? 1 : 7))
            for (size_t nb = 1; nb <= NR; nb++) {
                for (int sq = 0; sq <= 1; sq++) {
                    score__sum_runs_at(lv, nb, m, x, LD, sq ? mean : NULL, out);
                    for (size_t r = 0; r < nb; r++) {
                        double want = ref_sum8(m, x + r * LD, sq, mean[r]);
                        ck_assert_msg(same_d(out[r], want), "level %d m %zu nb %zu sq %d run %zu",
                                      lv, m, nb, sq, r);
                    }
                }
                if (nb * m > NR * LD)
                    continue;
                for (int silu = 0; silu <= 1; silu++) {
                    /* the planes of one group, consecutive (hw = m) */
                    score__gn_plane_sums_at(lv, nb, m, x, gy, silu ? ds : NULL, 0.25, 1.5, sg,
                                            sgx);
                    for (size_t p = 0; p < nb; p++) {
                        double a, c;
                        ref_plane_sums(m, x + p * m, gy + p * m, silu ? ds + p * m : NULL, 0.25,
                                       1.5, &a, &c);
                        ck_assert_msg(same_d(sg[p], a) && same_d(sgx[p], c),
                                      "plane sums level %d m %zu nb %zu plane %zu", lv, m, nb,
                                      p);
                    }
                }
            }
}
END_TEST

/* score__add_clear: the bits of score__saxpy with alpha = 1, and the source left zero. */
START_TEST(add_clear_bits)
{
    enum { L = 37 };
    float a[L], b[L], c[L];
    unsigned seed = 9;
    fill(&seed, L, 100.0f, a);
    fill(&seed, L, 1e-3f, b);
    memcpy(c, b, sizeof c);
    score__saxpy(L, 1.0f, a, b);
    score__add_clear(L, a, c);
    ck_assert_mem_eq(c, b, sizeof c);
    for (size_t i = 0; i < L; i++)
        ck_assert_msg(a[i] == 0.0f && !signbit(a[i]), "value %zu not cleared", i);
}
END_TEST

START_TEST(resampling_values)
{
    /* one 2 x 4 plane: pooling averages 2 x 2 blocks, up-sampling repeats each pixel */
    const float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    float y[2], u[32];
    score__unet_down_forward(1, 2, 4, x, y);
    ck_assert_float_eq(y[0], 3.5f);
    ck_assert_float_eq(y[1], 5.5f);
    score__unet_up_forward(1, 2, 4, x, u);
    for (size_t r = 0; r < 4; r++)
        for (size_t c = 0; c < 8; c++)
            ck_assert_float_eq(u[r * 8 + c], x[(r / 2) * 4 + c / 2]);
    /* two images of 1 + 1 planes of 2 pixels */
    const float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8};
    float o2[8];
    score__unet_concat_forward(2, 1, 1, 2, a, b, o2);
    const float want[8] = {1, 2, 5, 6, 3, 4, 7, 8};
    for (size_t i = 0; i < 8; i++)
        ck_assert_float_eq(o2[i], want[i]);
}
END_TEST

START_TEST(silu_values)
{
    const float x[3] = {0.0f, 1.0f, -2.0f};
    float y[3];
    score__unet_silu_forward(3, x, y);
    ck_assert_float_eq(y[0], 0.0f);
    ck_assert_double_eq_tol(y[1], 1.0 / (1.0 + exp(-1.0)), 1e-7);
    ck_assert_double_eq_tol(y[2], -2.0 / (1.0 + exp(2.0)), 1e-7);
}
END_TEST

/* A residual block at its initial state: GroupNorm of a constant-per-group input is beta, so
 * with zero convolution weights the output is (x + b2) / sqrt(2) exactly computable. */
START_TEST(res_block_closed_form)
{
    score__unet_res r;
    size_t np = score__unet_res_layout(&r, 4, 4, 2, 3, 0, 2, 2, 0);
    ck_assert_uint_eq(np, 2 * 4 + 4 * 4 * 9 + 4 + 2 * 4 + 4 * 4 * 9 + 4);
    float *th = calloc(np, sizeof *th);
    for (size_t k = 0; k < 4; k++)
        th[r.c2_b + k] = (float)k;
    float x[4 * 6], y[4 * 6];
    unsigned seed = 3;
    fill(&seed, 24, 1.0f, x);
    float *cache = malloc(score__unet_res_cache_floats(&r, 1) * sizeof *cache);
    double *dbl = malloc(score__unet_res_dbl(&r, 1) * sizeof *dbl);
    float *col = malloc(score__unet_res_col_floats(&r) * sizeof *col);
    score__unet_res_forward(&r, 1, th, x, NULL, y, cache, dbl, col);
    for (size_t k = 0; k < 4; k++)
        for (size_t j = 0; j < 6; j++)
            ck_assert_double_eq_tol(y[k * 6 + j], (x[k * 6 + j] + (double)k) / sqrt(2.0), 1e-6);
    /* the forward without a backward: the same bits */
    float y2[4 * 6];
    score__unet_res_infer(&r, 1, th, x, NULL, y2, cache, dbl, col, NULL);
    ck_assert_mem_eq(y2, y, sizeof y);
    free(th);
    free(cache);
    free(dbl);
    free(col);
}
END_TEST

/* ---- Gradient checks --------------------------------------------------------------------- */

START_TEST(grad_conv3)
{
    static const size_t shapes[][5] = {{2, 3, 4, 5, 6}, {1, 2, 3, 1, 3}};
    for (size_t si = 0; si < 2; si++) {
        const size_t *s = shapes[si];
        size_t hw = s[3] * s[4];
        layer_case lc = make_case(si == 0 ? "conv3x3" : "conv3x3 (1 x 3)",
                                  s[2] * s[1] * 9 + s[2], s[0] * s[1] * hw, s[0] * s[2] * hw);
        memcpy(lc.dims, s, 5 * sizeof *s);
        lc.fwd = conv3_fwd;
        lc.bwd = conv3_bwd;
        lc.col = malloc(score__unet_conv3_scratch_floats(s[1], s[2], hw) * sizeof *lc.col);
        lc.dbl = malloc(s[2] * sizeof *lc.dbl);
        check_case(&lc, 21 + (unsigned)si);
        free_case(&lc);
    }
}
END_TEST

START_TEST(grad_conv1_dense)
{
    layer_case lc = make_case("conv1x1", 5 * 3 + 5, 2 * 3 * 7, 2 * 5 * 7);
    lc.dims[0] = 2, lc.dims[1] = 3, lc.dims[2] = 5, lc.dims[3] = 7;
    lc.fwd = conv1_fwd;
    lc.bwd = conv1_bwd;
    lc.col = malloc(score__unet_conv1_scratch_floats(3, 5, 7) * sizeof *lc.col);
    lc.dbl = malloc(5 * sizeof *lc.dbl);
    check_case(&lc, 31);
    free_case(&lc);

    layer_case ld = make_case("dense", 5 * 4 + 5, 3 * 4, 3 * 5);
    ld.dims[0] = 3, ld.dims[1] = 4, ld.dims[2] = 5;
    ld.fwd = dense_fwd;
    ld.bwd = dense_bwd;
    check_case(&ld, 32);
}
END_TEST

START_TEST(grad_groupnorm)
{
    layer_case lc = make_case("groupnorm", 2 * 6, 2 * 6 * 5, 2 * 6 * 5);
    lc.dims[0] = 2, lc.dims[1] = 6, lc.dims[2] = 5, lc.dims[3] = 3;
    lc.fwd = gn_fwd;
    lc.bwd = gn_bwd;
    lc.param_init = gn_init;
    lc.dbl = malloc(2 * 2 * 3 * sizeof *lc.dbl);
    check_case(&lc, 41);
    free_case(&lc);
}
END_TEST

START_TEST(grad_silu_resampling_concat)
{
    layer_case ls = make_case("silu", 0, 24, 24);
    ls.fwd = silu_fwd;
    ls.bwd = silu_bwd;
    ls.cache = malloc(24 * sizeof *ls.cache);
    ls.scratch = malloc(24 * sizeof *ls.scratch);
    check_case(&ls, 51);
    free_case(&ls);

    layer_case ld = make_case("avgpool2x2", 0, 3 * 4 * 6, 3 * 2 * 3);
    ld.dims[0] = 3, ld.dims[1] = 4, ld.dims[2] = 6;
    ld.fwd = down_fwd;
    ld.bwd = down_bwd;
    check_case(&ld, 52);

    layer_case lu = make_case("nearest2x", 0, 3 * 2 * 3, 3 * 4 * 6);
    lu.dims[0] = 3, lu.dims[1] = 2, lu.dims[2] = 3;
    lu.fwd = up_fwd;
    lu.bwd = up_bwd;
    check_case(&lu, 53);

    layer_case lcat = make_case("concat", 0, 2 * (2 + 3) * 4, 2 * (2 + 3) * 4);
    lcat.dims[0] = 2, lcat.dims[1] = 2, lcat.dims[2] = 3, lcat.dims[3] = 4;
    lcat.fwd = cat_fwd;
    lcat.bwd = cat_bwd;
    check_case(&lcat, 54);
}
END_TEST

static void res_case(const char *name, size_t n, size_t ci, size_t co, size_t h, size_t w,
                     size_t ne, size_t g1, size_t g2, unsigned seed)
{
    score__unet_res r;
    size_t np = score__unet_res_layout(&r, ci, co, h, w, ne, g1, g2, 0);
    layer_case lc = make_case(name, np, n * (ci * h * w + ne), n * co * h * w);
    lc.dims[0] = n;
    lc.layout = &r;
    lc.fwd = res_fwd;
    lc.bwd = res_bwd;
    lc.param_init = res_init;
    lc.pscale = 0.3f;
    lc.cache = malloc(score__unet_res_cache_floats(&r, n) * sizeof *lc.cache);
    lc.scratch = malloc(score__unet_res_scratch_floats(&r, n) * sizeof *lc.scratch);
    lc.col = malloc(score__unet_res_col_floats(&r) * sizeof *lc.col);
    lc.dbl = malloc(score__unet_res_dbl(&r, n) * sizeof *lc.dbl);
    check_case(&lc, seed);
    free_case(&lc);
}

START_TEST(grad_res_block)
{
    /* channel change (1x1 skip) with the embedding projection; identity skip without */
    res_case("resblock 4->8 +emb", 2, 4, 8, 4, 4, 6, 2, 4, 61);
    res_case("resblock 4->4", 2, 4, 4, 3, 2, 0, 1, 2, 62);
}
END_TEST

START_TEST(grad_attention)
{
    score__unet_attn a;
    size_t n = 2, c = 4, hw = 9;
    size_t np = score__unet_attn_layout(&a, c, hw, 2, 0);
    ck_assert_uint_eq(np, 2 * c + 4 * (c * c + c));
    layer_case lc = make_case("attention", np, n * c * hw, n * c * hw);
    lc.dims[0] = n;
    lc.layout = &a;
    lc.fwd = attn_fwd;
    lc.bwd = attn_bwd;
    lc.param_init = attn_init;
    lc.cache = malloc(score__unet_attn_cache_floats(&a, n) * sizeof *lc.cache);
    lc.scratch = malloc(score__unet_attn_scratch_floats(&a, n) * sizeof *lc.scratch);
    lc.dbl = malloc(score__unet_attn_dbl(&a, n) * sizeof *lc.dbl);
    lc.col = malloc(score__unet_attn_col_floats(&a) * sizeof *lc.col);
    lc.pscale = 0.8f; /* attention weights far from uniform */
    check_case(&lc, 71);
    free_case(&lc);
}
END_TEST


/* ---- The model kind ---------------------------------------------------------------------- */

/* A small U-Net: 2 x 4 x 4 images, base 4, widths {1, 2}, 1 block, 2 groups, attention,
 * embedding 4 -> T = 8, K classes. */
static score_model *small_unet(int64_t K, int attention)
{
    score_model *m;
    const size_t mults[2] = {1, 2};
    ck_assert_ok(score_model_new_unet(&m, 2, 4, 4));
    ck_assert_ok(score_model_set_unet_widths(m, 2, mults));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_UNET_BASE_WIDTH, 4));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_UNET_BLOCKS, 1));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_UNET_GROUPS, 2));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_UNET_ATTENTION, attention));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_UNET_TEMB_DIM, 8));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_EMBED_DIM, 4));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_NUM_CLASSES, K));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_SEED, 7));
    return m;
}

/* Parameters of a residual block ci -> co with embedding width T. */
static size_t res_params(size_t ci, size_t co, size_t T)
{
    return 2 * ci + co * ci * 9 + co + co * T + co + 2 * co + co * co * 9 + co +
           (ci != co ? co * ci + co : 0);
}

START_TEST(model_param_count)
{
    const size_t T = 8, E = 4, K = 3;
    score_model *m = small_unet((int64_t)K, 1);
    /* embedding, label table, input conv (2 -> 4); down: res 4->4, pool, res 4->8;
     * middle: res 8->8, attention, res 8->8; up level 1: res (8+8)->8, res (8+4)->8,
     * up conv 8->8; level 0: res (8+4)->4, res (4+4)->4; GN 4, output conv 4 -> 2 */
    size_t want = (T * E + T) + (T * T + T) + (K + 1) * T + (4 * 2 * 9 + 4) +
                  res_params(4, 4, T) + res_params(4, 8, T) + 2 * res_params(8, 8, T) +
                  (2 * 8 + 4 * (8 * 8 + 8)) + res_params(16, 8, T) + res_params(12, 8, T) +
                  (8 * 8 * 9 + 8) + res_params(12, 4, T) + res_params(8, 4, T) + 2 * 4 +
                  (2 * 4 * 9 + 2);
    ck_assert_uint_eq(score_model_param_count(m), want);
    ck_assert_int_eq(score_model_kind(m), SCORE_MODEL_UNET);
    ck_assert_uint_eq(score_model_dim(m), 32);
    uint32_t caps = score_model_capabilities(m);
    ck_assert_uint_eq(caps, SCORE_MODEL_CAP_PARAMS | SCORE_MODEL_CAP_BACKWARD |
                                SCORE_MODEL_CAP_SAVE);
    score_model_free(m);
}
END_TEST

START_TEST(model_config_errors)
{
    score_model *m = NULL, *mlp = NULL;
    size_t mults[3] = {1, 2, 2}, nl = 0, got[3] = {0, 0, 0};
    score_model_free(NULL);
    ck_assert_fails_with(score_model_new_unet(NULL, 1, 4, 4), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_new_unet(&m, 0, 4, 4), SCORE_E_RANGE);
    ck_assert_ptr_null(m);
    ck_assert_fails_with(score_model_new_unet(&m, 1, 4097, 4), SCORE_E_RANGE);
    ck_assert_fails_with(score_model_new_unet(&m, 256, 256, 32), SCORE_E_RANGE); /* > 2^20 */
    ck_assert_ok(score_model_new_unet(&m, 1, 6, 8));
    ck_assert_ok(score_model_get_unet_widths(m, &nl, got, 3));
    ck_assert_uint_eq(nl, 3);
    ck_assert_uint_eq(got[1], 2);
    ck_assert_fails_with(score_model_set_unet_widths(NULL, 3, mults), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_set_unet_widths(m, 3, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_model_set_unet_widths(m, 0, mults), SCORE_E_RANGE);
    ck_assert_fails_with(score_model_set_unet_widths(m, 7, mults), SCORE_E_RANGE);
    mults[1] = 0;
    ck_assert_fails_with(score_model_set_unet_widths(m, 3, mults), SCORE_E_RANGE);
    mults[1] = 2;
    ck_assert_fails_with(score_model_get_unet_widths(m, NULL, got, 3), SCORE_E_INVAL);
    /* MLP-only parameters are refused, shared ones accepted */
    ck_assert_fails_with(score_model_set_i64(m, SCORE_MODEL_PARAM_HIDDEN, 8), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_model_set_i64(m, SCORE_MODEL_PARAM_CONTEXT_DIM, 2),
                         SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_model_set_i64(m, SCORE_MODEL_PARAM_UNET_BLOCKS, 9), SCORE_E_RANGE);
    ck_assert_fails_with(score_model_set_i64(m, SCORE_MODEL_PARAM_EMBED_DIM, 5), SCORE_E_RANGE);
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_SEED, 3));
    /* 6 pixels are not divisible by 2^2 */
    ck_assert_fails_with(score_model_prepare(m), SCORE_E_SHAPE);
    ck_assert_ok(score_model_set_unet_widths(m, 2, mults));
    /* 3 groups do not divide 32 channels */
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_UNET_GROUPS, 3));
    ck_assert_fails_with(score_model_prepare(m), SCORE_E_SHAPE);
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_UNET_GROUPS, 4));
    ck_assert_ok(score_model_prepare(m));
    ck_assert_fails_with(score_model_set_unet_widths(m, 2, mults), SCORE_E_STAGE);
    ck_assert_fails_with(score_model_set_i64(m, SCORE_MODEL_PARAM_UNET_BLOCKS, 1), SCORE_E_STAGE);
    /* U-Net parameters and setters on an MLP */
    ck_assert_ok(score_model_new_mlp(&mlp, 4, 8, 2, SCORE_ACT_SILU, 0));
    ck_assert_fails_with(score_model_set_i64(mlp, SCORE_MODEL_PARAM_UNET_BLOCKS, 1),
                         SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_model_set_unet_widths(mlp, 2, mults), SCORE_E_UNSUPPORTED);
    score_model_free(mlp);
    score_model_free(m);
}
END_TEST

START_TEST(model_unsupported_ops)
{
    score_model *m = small_unet(0, 1);
    float x[2 * 32], out[2 * 32], v[2 * 32];
    double c[2] = {0.1, 0.5}, tr[2];
    memset(x, 0, sizeof x);
    memset(v, 0, sizeof v);
    ck_assert_fails_with(score_model_trace(m, 2, x, c, tr, out), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_model_jvp(m, 2, x, c, 1, v, out, NULL), SCORE_E_UNSUPPORTED);
    score_loss *l;
    score_rng *r;
    ck_assert_ok(score_rng_new(&r, SCORE_RNG_PHILOX4X32_10, 1));
    ck_assert_ok(score_loss_new(&l, SCORE_LOSS_HYVARINEN));
    ck_assert_fails_with(score_loss_compute(l, NULL, m, r, 2, x, NULL, NULL), SCORE_E_UNSUPPORTED);
    score_loss_free(l);
    score_rng_free(r);
    score_model_free(m);
}
END_TEST

/* Random parameters (GroupNorm scales near 1) through the public setter. */
static void randomize(score_model *m, unsigned seed, float scale)
{
    size_t np = score_model_param_count(m);
    float *p = malloc(np * sizeof *p);
    ck_assert_ok(score_model_params_get(m, p, np));
    for (size_t i = 0; i < np; i++)
        p[i] = (p[i] == 1.0f ? 1.0f : 0.0f) + scale * frand(&seed);
    ck_assert_ok(score_model_params_set(m, p, np));
    free(p);
}

START_TEST(model_initial_output_zero)
{
    /* the output convolution starts at zero: F = 0 exactly, for any input */
    score_model *m = small_unet(3, 1);
    float x[3 * 32], out[3 * 32];
    double c[3] = {0.01, 0.3, 1.0};
    const int32_t lab[3] = {0, 2, 3};
    unsigned seed = 9;
    fill(&seed, 3 * 32, 2.0f, x);
    ck_assert_ok(score_model_forward_cond(m, 3, x, c, lab, NULL, out));
    for (size_t i = 0; i < 3 * 32; i++)
        ck_assert_float_eq(out[i], 0.0f);
    score_model_free(m);
}
END_TEST

static double model_loss(score_model *m, size_t n, const float *x, const double *c,
                         const int32_t *lab, const float *r, float *out)
{
    double L = 0.0;
    ck_assert_ok(score_model_forward_cond(m, n, x, c, lab, NULL, out));
    for (size_t j = 0; j < n * score_model_dim(m); j++)
        L += (double)r[j] * out[j];
    return L;
}

/* The whole network's backward (input and parameter gradients, with labels) against finite
 * differences, the stencil and the error measure of grad_check() above; every input
 * coordinate and every 7th parameter (all kinds of tensors are hit). */
START_TEST(model_gradient_fd)
{
    enum { N = 3, D = 32 };
    score_model *m = small_unet(3, 1);
    size_t np = score_model_param_count(m);
    float x[N * D], out[N * D], r[N * D], gx[N * D];
    double c[N] = {0.05, 0.4, 0.9}, fdx[N * D];
    const int32_t lab[N] = {1, 3, 0};
    unsigned seed = 77;
    const float h = 1e-2f;
    randomize(m, 5, 0.3f);
    fill(&seed, N * D, 1.0f, x);
    fill(&seed, N * D, 1.0f, r);
    float *g = calloc(np, sizeof *g), *p = malloc(np * sizeof *p);
    double *fdp = calloc(np, sizeof *fdp);
    ck_assert_ok(score_model_params_get(m, p, np));
    model_loss(m, N, x, c, lab, r, out);
    ck_assert_ok(score_model_backward(m, N, r, g, gx));
    for (size_t i = 0; i < N * D; i++) {
        float v0 = x[i];
        double Lp[2], Lm[2];
        for (int s = 0; s < 2; s++) {
            x[i] = v0 + (float)(s + 1) * h;
            Lp[s] = model_loss(m, N, x, c, lab, r, out);
            x[i] = v0 - (float)(s + 1) * h;
            Lm[s] = model_loss(m, N, x, c, lab, r, out);
        }
        x[i] = v0;
        fdx[i] = (8.0 * (Lp[0] - Lm[0]) - (Lp[1] - Lm[1])) / (12.0 * (double)h);
    }
    double ex = rel_err(N * D, fdx, gx), num = 0.0, den = 0.0;
    size_t checked = 0;
    for (size_t i = 0; i < np; i += 7, checked++) {
        float v0 = p[i];
        double Lp[2], Lm[2];
        for (int s = 0; s < 2; s++) {
            p[i] = v0 + (float)(s + 1) * h;
            ck_assert_ok(score_model_params_set(m, p, np));
            Lp[s] = model_loss(m, N, x, c, lab, r, out);
            p[i] = v0 - (float)(s + 1) * h;
            ck_assert_ok(score_model_params_set(m, p, np));
            Lm[s] = model_loss(m, N, x, c, lab, r, out);
        }
        p[i] = v0;
        fdp[i] = (8.0 * (Lp[0] - Lm[0]) - (Lp[1] - Lm[1])) / (12.0 * (double)h);
        num = fmax(num, fabs(fdp[i] - g[i]));
        den = fmax(den, fabs((double)g[i]));
    }
    ck_assert_ok(score_model_params_set(m, p, np));
    printf("gradient check %-22s input %.2e  params %.2e  (%d + %zu coordinates)\n",
           "whole U-Net", ex, num / den, N * D, checked);
    ck_assert_msg(ex < TOL_UNET_FD, "input gradient error %g", ex);
    ck_assert_msg(num / den < TOL_UNET_FD, "parameter gradient error %g", num / den);
    /* the label table row of an unused label (2) has a zero gradient */
    free(g);
    free(p);
    free(fdp);
    score_model_free(m);
}
END_TEST

/* The samplers' cache-free evaluation (blocks of 8 rows) against the training forward, and a
 * clone against the original. */
START_TEST(model_infer_clone)
{
    enum { N = 11, D = 32 };
    score_model *m = small_unet(0, 1), *cl = NULL;
    float x[N * D], a[N * D], b[N * D], cc[N * D];
    double c[N];
    unsigned seed = 4;
    randomize(m, 6, 0.3f);
    fill(&seed, N * D, 1.0f, x);
    for (size_t i = 0; i < N; i++)
        c[i] = 0.1 * (double)i;
    ck_assert_ok(score_model_forward(m, N, x, c, a));
    ck_assert_ok(score__model_infer(m, N, x, c, b));
    /* the first block has the same shapes as the forward's first 8 rows */
    ck_assert_ok(score_model_forward(m, 8, x, c, cc));
    for (size_t i = 0; i < 8 * D; i++)
        ck_assert_float_eq(b[i], cc[i]);
    /* every row is evaluated on its own: the same bits as the training forward */
    ck_assert_mem_eq(b, a, sizeof a);
    ck_assert_ok(score_model_clone(&cl, m));
    ck_assert_ok(score_model_forward(cl, N, x, c, cc));
    ck_assert_mem_eq(cc, a, sizeof a);
    score_model_free(cl);
    score_model_free(m);
}
END_TEST

/* The samplers' forward (which packs the weights of some convolutions once per call into its
 * workspace) after new parameters (the same workspace): it follows them, with the bits of the
 * training forward (which packs per block), on 1 and 2 threads; m's rows of D floats. */
static void check_infer_follows_params(score_model *m, size_t D)
{
    enum { N = 19 };
    float *x = malloc(N * D * sizeof *x), *a = malloc(N * D * sizeof *a);
    float *b = malloc(N * D * sizeof *b), *b0 = malloc(N * D * sizeof *b0);
    double c[N];
    unsigned seed = 8;
    ck_assert(x != NULL && a != NULL && b != NULL && b0 != NULL);
    fill(&seed, N * D, 1.0f, x);
    for (size_t i = 0; i < N; i++)
        c[i] = 0.05 * (double)i;
    for (int64_t t = 1; t <= 2; t++) {
        ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_THREADS, t));
        for (unsigned round = 0; round < 3; round++) {
            randomize(m, 40 + round, 0.3f);
            ck_assert_ok(score_model_forward(m, N, x, c, a));
            ck_assert_ok(score__model_infer(m, N, x, c, b));
            ck_assert_mem_eq(b, a, N * D * sizeof *a);
            if (round > 0) /* the parameters changed the output */
                ck_assert(memcmp(b, b0, N * D * sizeof *b) != 0);
            memcpy(b0, b, N * D * sizeof *b);
        }
    }
    free(x); free(a); free(b); free(b0);
}

/* The packed convolutions of the 2 x 2 planes. */
START_TEST(model_infer_follows_params)
{
    score_model *m = small_unet(0, 1);
    check_infer_follows_params(m, 32);
    score_model_free(m);
}
END_TEST

static score_model *mid_unet(void);

/* Those of 8 x 8 and 4 x 4 planes with 16 and 32 channels (mid_unet; with the vector versions,
 * the tiles with output channels in the lanes: packed too). */
START_TEST(model_infer_follows_params_wide)
{
    score_model *m = mid_unet();
    check_infer_follows_params(m, 64);
    score_model_free(m);
}
END_TEST

/* The DSM loss through the loss layer: its parameter gradient against finite differences of
 * its value (the noise is a function of the rng's counter: the same draw in every call). */
START_TEST(model_dsm_loss_gradient)
{
    enum { N = 4, D = 32 };
    score_model *m = small_unet(0, 0);
    score_loss *l;
    score_rng *r;
    float x[N * D];
    unsigned seed = 8;
    randomize(m, 12, 0.3f);
    fill(&seed, N * D, 1.0f, x);
    ck_assert_ok(score_rng_new(&r, SCORE_RNG_PHILOX4X32_10, 3));
    ck_assert_ok(score_loss_new(&l, SCORE_LOSS_DSM));
    ck_assert_ok(score_loss_set_f64(l, SCORE_LOSS_PARAM_SIGMA, 0.5));
    ck_assert_ok(score_loss_set_f64(l, SCORE_LOSS_PARAM_COND, 0.5));
    size_t np = score_model_param_count(m);
    float *g = calloc(np, sizeof *g), *p = malloc(np * sizeof *p);
    double v, num = 0.0, den = 0.0;
    ck_assert_ok(score_model_params_get(m, p, np));
    ck_assert_ok(score_loss_compute(l, NULL, m, r, N, x, &v, g));
    ck_assert(v > 0.0);
    const float h = 1e-2f;
    for (size_t i = 3; i < np; i += 29) {
        float v0 = p[i];
        double Lp[2], Lm[2];
        for (int s = 0; s < 2; s++) {
            p[i] = v0 + (float)(s + 1) * h;
            ck_assert_ok(score_model_params_set(m, p, np));
            ck_assert_ok(score_loss_compute(l, NULL, m, r, N, x, &Lp[s], NULL));
            p[i] = v0 - (float)(s + 1) * h;
            ck_assert_ok(score_model_params_set(m, p, np));
            ck_assert_ok(score_loss_compute(l, NULL, m, r, N, x, &Lm[s], NULL));
        }
        p[i] = v0;
        double fd = (8.0 * (Lp[0] - Lm[0]) - (Lp[1] - Lm[1])) / (12.0 * (double)h);
        num = fmax(num, fabs(fd - g[i]));
        den = fmax(den, fabs((double)g[i]));
    }
    printf("gradient check %-22s params %.2e\n", "DSM loss", num / den);
    ck_assert_msg(num / den < TOL_UNET_FD, "DSM loss gradient error %g", num / den);
    free(g);
    free(p);
    score_loss_free(l);
    score_rng_free(r);
    score_model_free(m);
}
END_TEST

/* ---- Threads and row splits -------------------------------------------------------------- */

/* A U-Net of more realistic GEMM shapes: 1 x 8 x 8 images, base 16, widths {1, 2}, 1 block, 4
 * groups, attention, embedding 16 -> T = 32, 10 classes. */
static score_model *mid_unet(void)
{
    score_model *m;
    const size_t mults[2] = {1, 2};
    ck_assert_ok(score_model_new_unet(&m, 1, 8, 8));
    ck_assert_ok(score_model_set_unet_widths(m, 2, mults));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_UNET_BASE_WIDTH, 16));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_UNET_BLOCKS, 1));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_UNET_GROUPS, 4));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_UNET_TEMB_DIM, 32));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_EMBED_DIM, 16));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_NUM_CLASSES, 10));
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_SEED, 11));
    ck_assert_ok(score_model_prepare(m));
    return m;
}

enum { TN = 37, TD = 64 }; /* rows: 3 training blocks (16, 16, 5), 5 blocks of the samplers */

typedef struct thread_run {
    float out[TN * TD], inf[TN * TD], gx[TN * TD];
    float *grad, *lgrad;
    double loss;
} thread_run;

/* Forward, backward, the samplers' forward and a DSM loss gradient of mid_unet() at `threads`
 * threads (same inputs every time). */
static void run_at(score_model *m, int64_t threads, thread_run *r)
{
    size_t np = score_model_param_count(m);
    float x[TN * TD], gout[TN * TD];
    double c[TN];
    int32_t lab[TN];
    unsigned seed = 21;
    score_loss *l;
    score_rng *rng;
    fill(&seed, TN * TD, 1.0f, x);
    fill(&seed, TN * TD, 1.0f, gout);
    for (size_t i = 0; i < TN; i++) {
        c[i] = 0.02 + 0.025 * (double)i;
        lab[i] = (int32_t)(i % 11); /* 10 = the null label */
    }
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_THREADS, threads));
    r->grad = calloc(np, sizeof *r->grad);
    r->lgrad = calloc(np, sizeof *r->lgrad);
    ck_assert_ok(score_model_forward_cond(m, TN, x, c, lab, NULL, r->out));
    ck_assert_ok(score_model_backward(m, TN, gout, r->grad, r->gx));
    ck_assert_ok(score__model_infer(m, TN, x, c, r->inf));
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 3));
    ck_assert_ok(score_loss_new(&l, SCORE_LOSS_DSM));
    ck_assert_ok(score_loss_set_f64(l, SCORE_LOSS_PARAM_SIGMA, 0.5));
    ck_assert_ok(score_loss_set_f64(l, SCORE_LOSS_PARAM_COND, 0.5));
    ck_assert_ok(score_loss_compute(l, NULL, m, rng, TN, x, &r->loss, r->lgrad));
    score_loss_free(l);
    score_rng_free(rng);
}

/* 1, 2 and 3 threads give the same bits: forward, input and parameter gradients, the samplers'
 * forward and the loss value and gradient (the gradient of every parameter is a sum over three
 * blocks, so the order of the block sums is exercised). */
START_TEST(model_threads_bit_identical)
{
    score_model *m = mid_unet();
    size_t np = score_model_param_count(m);
    thread_run *r1 = calloc(1, sizeof *r1), *rt = calloc(1, sizeof *rt);
    double gsum = 0.0;
    randomize(m, 31, 0.2f);
    run_at(m, 1, r1);
    for (size_t i = 0; i < np; i++)
        gsum += fabs((double)r1->grad[i]);
    ck_assert(gsum > 0.0);
    for (int64_t t = 2; t <= 3; t++) {
        run_at(m, t, rt);
        ck_assert_mem_eq(rt->out, r1->out, sizeof r1->out);
        ck_assert_mem_eq(rt->inf, r1->inf, sizeof r1->inf);
        ck_assert_mem_eq(rt->gx, r1->gx, sizeof r1->gx);
        ck_assert_mem_eq(rt->grad, r1->grad, np * sizeof *r1->grad);
        ck_assert_mem_eq(rt->lgrad, r1->lgrad, np * sizeof *r1->lgrad);
        ck_assert_double_eq(rt->loss, r1->loss);
        free(rt->grad);
        free(rt->lgrad);
    }
    free(r1->grad);
    free(r1->lgrad);
    free(r1);
    free(rt);
    score_model_free(m);
}
END_TEST

/* A row's output does not depend on how the rows are split into calls: calls of 1, 7 and all
 * rows (training forward and samplers' forward, 2 threads) give the same bits. */
START_TEST(model_row_splits)
{
    score_model *m = mid_unet();
    float x[TN * TD], all[TN * TD], part[TN * TD], inf[TN * TD];
    double c[TN];
    int32_t lab[TN];
    unsigned seed = 5;
    const size_t splits[2] = {1, 7};
    randomize(m, 41, 0.2f);
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_THREADS, 2));
    fill(&seed, TN * TD, 1.0f, x);
    for (size_t i = 0; i < TN; i++) {
        c[i] = 0.9 - 0.02 * (double)i;
        lab[i] = (int32_t)((3 * i) % 11);
    }
    ck_assert_ok(score_model_forward_cond(m, TN, x, c, lab, NULL, all));
    for (size_t s = 0; s < 2; s++) {
        for (size_t r0 = 0; r0 < TN; r0 += splits[s]) {
            size_t k = TN - r0 < splits[s] ? TN - r0 : splits[s];
            ck_assert_ok(score_model_forward_cond(m, k, x + r0 * TD, c + r0, lab + r0, NULL,
                                                  part + r0 * TD));
        }
        ck_assert_mem_eq(part, all, sizeof all);
    }
    /* the samplers' forward (null label for every row: K = 10) against the training forward */
    for (size_t i = 0; i < TN; i++)
        lab[i] = 10;
    ck_assert_ok(score_model_forward_cond(m, TN, x, c, lab, NULL, all));
    for (size_t s = 0; s < 2; s++) {
        for (size_t r0 = 0; r0 < TN; r0 += splits[s]) {
            size_t k = TN - r0 < splits[s] ? TN - r0 : splits[s];
            ck_assert_ok(score__model_infer(m, k, x + r0 * TD, c + r0, inf + r0 * TD));
        }
        ck_assert_mem_eq(inf, all, sizeof all);
    }
    score_model_free(m);
}
END_TEST

/* The same through the whole network: rows evaluated in calls of 1, 3, 8 and 11 rows starting
 * at different rows (so a row sits at other positions of the convolutions' panels) give the
 * bits of the call of all rows, in the training forward and the samplers' forward. */
START_TEST(model_panel_positions)
{
    enum { PN = 13 };
    score_model *m = mid_unet();
    float x[PN * TD], all[PN * TD], inf_all[PN * TD], part[PN * TD];
    double c[PN];
    unsigned seed = 23;
    static const size_t counts[4] = {1, 3, 8, 11};
    randomize(m, 43, 0.2f);
    fill(&seed, PN * TD, 1.0f, x);
    for (size_t i = 0; i < PN; i++)
        c[i] = 0.1 + 0.05 * (double)i;
    ck_assert_ok(score_model_forward_cond(m, PN, x, c, NULL, NULL, all));
    ck_assert_ok(score__model_infer(m, PN, x, c, inf_all));
    ck_assert_mem_eq(inf_all, all, sizeof all);
    for (size_t ni = 0; ni < 4; ni++) {
        size_t n = counts[ni];
        for (size_t off = 0; off + n <= PN; off += 2) {
            ck_assert_ok(score_model_forward_cond(m, n, x + off * TD, c + off, NULL, NULL,
                                                  part));
            ck_assert_mem_eq(part, all + off * TD, n * TD * sizeof *part);
            ck_assert_ok(score__model_infer(m, n, x + off * TD, c + off, part));
            ck_assert_mem_eq(part, all + off * TD, n * TD * sizeof *part);
        }
    }
    score_model_free(m);
}
END_TEST

/* ---- The backward's writes ----------------------------------------------------------------- */

enum { RN = 37 }; /* rows: 3 training blocks */

/* Forward and backward of the first n of RN rows at `threads` threads, the reference way
 * (score__unet_set_reference_backward) or not: grad starts from g0 (+=), gx written. */
static void backward_of(score_model *m, int ref, int64_t threads, size_t n, const float *x,
                        const double *c, const int32_t *lab, const float *gout,
                        const float *g0, float *grad, float *gx)
{
    size_t np = score_model_param_count(m);
    score__unet_set_reference_backward(m, ref);
    ck_assert_ok(score_model_set_i64(m, SCORE_MODEL_PARAM_THREADS, threads));
    memcpy(grad, g0, np * sizeof *grad);
    ck_assert_ok(score_model_forward_cond(m, n, x, c, lab, NULL, gx));
    ck_assert_ok(score_model_backward(m, n, gout, grad, gx));
    score__unet_set_reference_backward(m, 0);
}

/* The backward that writes each activation gradient with its first producer and, at one
 * thread, adds each layer's part of a block's parameter gradient to the gradient right after
 * the layer gives the bits of the way that zeroes every buffer first and adds (the first
 * version's), parameter and input gradients alike: attention on and off, labels on and off
 * (small_unet: planes of 16 and 4 pixels, 1x1 skips; mid_unet: 8 x 8 images), 3 and 37 rows,
 * 1 and 2 threads, a gradient that starts from values and -0, an output gradient with +0 and
 * -0 (the layers' writes may keep a -0 that an addition to +0 turns into +0: nothing that
 * leaves the network may show it). */
START_TEST(model_backward_reference_bits)
{
    float x[RN * 64], gout[RN * 64], gx[RN * 64], gxr[RN * 64];
    double c[RN];
    int32_t lab[RN];
    unsigned seed = 41;
    fill(&seed, RN * 64, 1.0f, x);
    fill(&seed, RN * 64, 1.0f, gout);
    for (size_t i = 0; i < RN * 64; i += 7)
        gout[i] = i % 2 ? -0.0f : 0.0f;
    for (size_t i = 0; i < RN; i++) {
        c[i] = 0.03 + 0.02 * (double)i;
        lab[i] = (int32_t)(i % 3); /* of 3 or 10 labels: the table's other rows get nothing */
    }
    for (int mi = 0; mi < 5; mi++) {
        score_model *m = mi < 4 ? small_unet(mi / 2 * 3, mi % 2) : mid_unet();
        if (mi < 4)
            ck_assert_ok(score_model_prepare(m));
        size_t np = score_model_param_count(m), d = score_model_dim(m);
        const int32_t *lb = mi / 2 > 0 ? lab : NULL;
        float *g0 = malloc(np * sizeof *g0), *grad = malloc(np * sizeof *grad);
        float *gref = malloc(np * sizeof *gref);
        randomize(m, 17 + (unsigned)mi, 0.2f);
        fill(&seed, np, 0.1f, g0);
        for (size_t i = 0; i < np; i += 3)
            g0[i] = -0.0f;
        for (size_t ni = 0; ni < 2; ni++) {
            size_t n = ni == 0 ? 3 : RN;
            for (int64_t t = 1; t <= 2; t++) {
                backward_of(m, 1, t, n, x, c, lb, gout, g0, gref, gxr);
                backward_of(m, 0, t, n, x, c, lb, gout, g0, grad, gx);
                ck_assert_mem_eq(grad, gref, np * sizeof *grad);
                ck_assert_mem_eq(gx, gxr, n * d * sizeof *gx);
            }
        }
        /* the gradient buffers stay clear between calls: a second call adds the same */
        backward_of(m, 0, 1, RN, x, c, lb, gout, g0, grad, gx);
        backward_of(m, 0, 1, RN, x, c, lb, gout, grad, gref, gxr);
        backward_of(m, 1, 1, RN, x, c, lb, gout, g0, grad, gx);
        backward_of(m, 1, 1, RN, x, c, lb, gout, grad, g0, gx);
        ck_assert_mem_eq(gref, g0, np * sizeof *g0);
        free(g0);
        free(grad);
        free(gref);
        score_model_free(m);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("unet");
    TCase *tc = tcase_create("layers");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, conv3_forward_reference);
    tcase_add_test(tc, conv_panel_positions);
    tcase_add_test(tc, im2col_vector_versions);
    tcase_add_test(tc, groupnorm_forward_reference);
    tcase_add_test(tc, groupnorm_silu_fused_bits);
    tcase_add_test(tc, groupnorm_silu_backward_bits);
    tcase_add_test(tc, groupnorm_batched_bits);
    tcase_add_test(tc, sum_runs_levels);
    tcase_add_test(tc, add_clear_bits);
    tcase_add_test(tc, resampling_values);
    tcase_add_test(tc, silu_values);
    tcase_add_test(tc, res_block_closed_form);
    tcase_add_test(tc, grad_conv3);
    tcase_add_test(tc, grad_conv1_dense);
    tcase_add_test(tc, grad_groupnorm);
    tcase_add_test(tc, grad_silu_resampling_concat);
    tcase_add_test(tc, grad_res_block);
    tcase_add_test(tc, grad_attention);
    suite_add_tcase(s, tc);
    TCase *tm = tcase_create("model");
    tcase_set_timeout(tm, 120);
    tcase_add_test(tm, model_param_count);
    tcase_add_test(tm, model_config_errors);
    tcase_add_test(tm, model_unsupported_ops);
    tcase_add_test(tm, model_initial_output_zero);
    tcase_add_test(tm, model_gradient_fd);
    tcase_add_test(tm, model_infer_clone);
    tcase_add_test(tm, model_infer_follows_params);
    tcase_add_test(tm, model_infer_follows_params_wide);
    tcase_add_test(tm, model_dsm_loss_gradient);
    tcase_add_test(tm, model_threads_bit_identical);
    tcase_add_test(tm, model_row_splits);
    tcase_add_test(tm, model_panel_positions);
    tcase_add_test(tm, model_backward_reference_bits);
    suite_add_tcase(s, tm);
    return test_run_suite(s);
}
