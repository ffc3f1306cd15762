/* Writes, for every layer type of the U-Net (src/model/unet-*.c) and for whole networks, what
 * a float64 PyTorch implementation needs to recompute the forward values and the gradients of
 * L = sum gy . y: the sizes, the parameters, the inputs, the output cotangent gy, and
 * libscore's float32 output y, input gradient gx, parameter gradient gp (and, for residual
 * blocks, the embedding gradient ge). Whole networks are saved as model files in the directory
 * given as the first argument (read by examples/python/unet_torch.py) and evaluated through the
 * public API (score_model_forward_cond(), score_model_backward()). Read by check_unet.py.
 *
 * Output: text lines "key value..." (floats as %.9g, which round-trip float32); one block per
 * case between "case <name> <type>" and "end". */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libscore/libscore.h>

#include "model/unet-priv.h"

#define CK(call)                                                                          \
    do {                                                                                  \
        int rc_ = (call);                                                                 \
        if (rc_ != SCORE_OK) {                                                            \
            fprintf(stderr, "%s:%d: %s failed: %s (%s)\n", __FILE__, __LINE__, #call,     \
                    score_status_name(rc_), score_last_error_message());                  \
            exit(1);                                                                      \
        }                                                                                 \
    } while (0)

static unsigned rng_state = 12345u;

static float frand(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)((rng_state >> 8) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static float *rnd(size_t n, float scale)
{
    float *a = calloc(n ? n : 1, sizeof *a);
    if (a == NULL)
        exit(1);
    for (size_t i = 0; i < n; i++)
        a[i] = scale * frand();
    return a;
}

static float *zeros(size_t n)
{
    float *a = calloc(n ? n : 1, sizeof *a);
    if (a == NULL)
        exit(1);
    return a;
}

static double *dzeros(size_t n)
{
    double *a = calloc(n ? n : 1, sizeof *a);
    if (a == NULL)
        exit(1);
    return a;
}

static void vec(const char *key, size_t n, const float *v)
{
    printf("%s %zu", key, n);
    for (size_t i = 0; i < n; i++)
        printf(" %.9g", (double)v[i]);
    printf("\n");
}

static void dims(size_t k, const size_t *d)
{
    printf("dims");
    for (size_t i = 0; i < k; i++)
        printf(" %zu", d[i]);
    printf("\n");
}

/* GroupNorm scales near 1 (offsets gamma[0 .. c)). */
static void near_one(size_t c, float *gamma)
{
    for (size_t k = 0; k < c; k++)
        gamma[k] += 1.0f;
}

static void conv3_case(void)
{
    const size_t n = 2, ci = 3, co = 4, h = 5, w = 6, nx = n * ci * h * w, ny = n * co * h * w;
    const size_t np = co * ci * 9 + co, d[5] = {n, ci, co, h, w};
    float *p = rnd(np, 0.5f), *x = rnd(nx, 1.0f), *gy = rnd(ny, 1.0f), *y = zeros(ny);
    float *gx = zeros(nx), *gp = zeros(np);
    float *col = zeros(score__unet_conv3_scratch_floats(ci, co, h * w));
    double *dsum = dzeros(co);
    score__unet_conv3_forward(n, ci, co, h, w, p, p + co * ci * 9, x, y, 0, col);
    score__unet_conv3_backward(n, ci, co, h, w, p, x, gy, gp, gp + co * ci * 9, gx, col, dsum);
    printf("case conv3x3 conv3\n");
    dims(5, d);
    vec("params", np, p), vec("x", nx, x), vec("gy", ny, gy), vec("y", ny, y);
    vec("gx", nx, gx), vec("gp", np, gp);
    printf("end\n");
    free(p), free(x), free(gy), free(y), free(gx), free(gp), free(col), free(dsum);
}

static void conv1_case(void)
{
    const size_t n = 2, ci = 3, co = 5, h = 3, w = 4, nx = n * ci * h * w, ny = n * co * h * w;
    const size_t np = co * ci + co, d[5] = {n, ci, co, h, w};
    float *p = rnd(np, 0.5f), *x = rnd(nx, 1.0f), *gy = rnd(ny, 1.0f), *y = zeros(ny);
    float *gx = zeros(nx), *gp = zeros(np);
    float *col = zeros(score__unet_conv1_scratch_floats(ci, co, h * w));
    double *dsum = dzeros(co);
    score__unet_conv1_forward(n, ci, co, h * w, p, p + co * ci, x, y, 0);
    score__unet_conv1_backward(n, ci, co, h * w, p, x, gy, gp, gp + co * ci, gx, col, dsum);
    printf("case conv1x1 conv1\n");
    dims(5, d);
    vec("params", np, p), vec("x", nx, x), vec("gy", ny, gy), vec("y", ny, y);
    vec("gx", nx, gx), vec("gp", np, gp);
    printf("end\n");
    free(p), free(x), free(gy), free(y), free(gx), free(gp), free(col), free(dsum);
}

static void dense_case(void)
{
    const size_t n = 3, in = 5, out = 4, np = out * in + out, d[3] = {n, in, out};
    float *p = rnd(np, 0.5f), *x = rnd(n * in, 1.0f), *gy = rnd(n * out, 1.0f);
    float *y = zeros(n * out), *gx = zeros(n * in), *gp = zeros(np);
    score__unet_dense_forward(n, in, out, p, p + out * in, x, y, 0);
    score__unet_dense_backward(n, in, out, p, x, gy, gp, gp + out * in, gx);
    printf("case dense dense\n");
    dims(3, d);
    vec("params", np, p), vec("x", n * in, x), vec("gy", n * out, gy), vec("y", n * out, y);
    vec("gx", n * in, gx), vec("gp", np, gp);
    printf("end\n");
    free(p), free(x), free(gy), free(y), free(gx), free(gp);
}

static void gn_case(void)
{
    const size_t n = 2, c = 6, h = 4, w = 4, g = 3, len = n * c * h * w, d[5] = {n, c, h, w, g};
    float *p = rnd(2 * c, 0.3f), *x = rnd(len, 2.0f), *gy = rnd(len, 1.0f), *y = zeros(len);
    float *gx = zeros(len), *gp = zeros(2 * c);
    double *stats = dzeros(2 * n * g);
    near_one(c, p);
    for (size_t i = 0; i < len; i++) /* per-channel offsets: groups of different means */
        x[i] += (float)((i / (h * w)) % c) * 0.5f;
    score__unet_gn_forward(n, c, h * w, g, p, p + c, x, y, stats);
    score__unet_gn_backward(n, c, h * w, g, p, x, stats, gy, gp, gp + c, gx);
    printf("case groupnorm gn\n");
    dims(5, d);
    vec("params", 2 * c, p), vec("x", len, x), vec("gy", len, gy), vec("y", len, y);
    vec("gx", len, gx), vec("gp", 2 * c, gp);
    printf("end\n");
    free(p), free(x), free(gy), free(y), free(gx), free(gp), free(stats);
}

static void silu_case(void)
{
    const size_t len = 40, d[1] = {len};
    float *x = rnd(len, 4.0f), *gy = rnd(len, 1.0f), *y = zeros(len), *gx = zeros(len);
    score__unet_silu_forward(len, x, y);
    score__unet_silu_backward(len, x, gy, gx);
    printf("case silu silu\n");
    dims(1, d);
    vec("params", 0, NULL), vec("x", len, x), vec("gy", len, gy), vec("y", len, y);
    vec("gx", len, gx), vec("gp", 0, NULL);
    printf("end\n");
    free(x), free(gy), free(y), free(gx);
}

/* up = 0: 2x2 average pooling of nc planes of h x w; 1: nearest up-sampling. */
static void resample_case(int up)
{
    const size_t nc = 6, h = up ? 3 : 4, w = up ? 2 : 6, d[3] = {nc, h, w};
    const size_t nx = nc * h * w, ny = up ? 4 * nx : nx / 4;
    float *x = rnd(nx, 1.0f), *gy = rnd(ny, 1.0f), *y = zeros(ny), *gx = zeros(nx);
    if (up) {
        score__unet_up_forward(nc, h, w, x, y);
        score__unet_up_backward(nc, h, w, gy, gx);
    } else {
        score__unet_down_forward(nc, h, w, x, y);
        score__unet_down_backward(nc, h, w, gy, gx);
    }
    printf(up ? "case nearest-up up\n" : "case avgpool2x2 down\n");
    dims(3, d);
    vec("params", 0, NULL), vec("x", nx, x), vec("gy", ny, gy), vec("y", ny, y);
    vec("gx", nx, gx), vec("gp", 0, NULL);
    printf("end\n");
    free(x), free(gy), free(y), free(gx);
}

/* A residual block ci -> co on n images of h x w with an embedding of ne values per image. */
static void res_case(const char *name, size_t n, size_t ci, size_t co, size_t h, size_t w,
                     size_t ne, size_t g1, size_t g2)
{
    score__unet_res r;
    const size_t d[8] = {n, ci, co, h, w, ne, g1, g2};
    size_t np = score__unet_res_layout(&r, ci, co, h, w, ne, g1, g2, 0);
    size_t nx = n * ci * h * w, ny = n * co * h * w;
    float *p = rnd(np, 0.3f), *x = rnd(nx, 1.0f), *e = rnd(n * ne, 1.0f), *gy = rnd(ny, 1.0f);
    float *y = zeros(ny), *gx = zeros(nx), *ge = zeros(n * ne), *gp = zeros(np);
    float *cache = zeros(score__unet_res_cache_floats(&r, n));
    float *scratch = zeros(score__unet_res_scratch_floats(&r, n));
    float *col = zeros(score__unet_res_col_floats(&r));
    double *dbl = dzeros(score__unet_res_dbl(&r, n));
    near_one(ci, p + r.gn1_g);
    near_one(co, p + r.gn2_g);
    score__unet_res_forward(&r, n, p, x, e, y, cache, dbl, col);
    score__unet_res_backward(&r, n, p, x, e, cache, dbl, gy, gp, gx, ge, scratch, col);
    printf("case %s res\n", name);
    dims(8, d);
    vec("params", np, p), vec("x", nx, x), vec("e", n * ne, e), vec("gy", ny, gy);
    vec("y", ny, y), vec("gx", nx, gx), vec("gp", np, gp), vec("ge", n * ne, ge);
    printf("end\n");
    free(p), free(x), free(e), free(gy), free(y), free(gx), free(ge), free(gp);
    free(cache), free(scratch), free(col), free(dbl);
}

static void attn_case(void)
{
    score__unet_attn a;
    const size_t n = 2, c = 4, h = 3, w = 3, g = 2, d[5] = {n, c, h, w, g};
    size_t np = score__unet_attn_layout(&a, c, h * w, g, 0), len = n * c * h * w;
    float *p = rnd(np, 0.5f), *x = rnd(len, 1.0f), *gy = rnd(len, 1.0f), *y = zeros(len);
    float *gx = zeros(len), *gp = zeros(np);
    float *cache = zeros(score__unet_attn_cache_floats(&a, n));
    float *scratch = zeros(score__unet_attn_scratch_floats(&a, n));
    double *dbl = dzeros(score__unet_attn_dbl(&a, n));
    float *col = zeros(score__unet_attn_col_floats(&a));
    near_one(c, p + a.gn_g);
    score__unet_attn_forward(&a, n, p, x, y, cache, dbl);
    score__unet_attn_backward(&a, n, p, x, cache, dbl, gy, gp, gx, scratch, col);
    printf("case attention attn\n");
    dims(5, d);
    vec("params", np, p), vec("x", len, x), vec("gy", len, gy), vec("y", len, y);
    vec("gx", len, gx), vec("gp", np, gp);
    printf("end\n");
    free(p), free(x), free(gy), free(y), free(gx), free(gp), free(cache), free(scratch);
    free(dbl), free(col);
}

/* A whole network through the public API, its file written to dir. */
static void net_case(const char *dir, const char *name, size_t C, size_t H, size_t W,
                     size_t L, const size_t *mults, int64_t base, int64_t blocks,
                     int64_t groups, int64_t attention, int64_t emb, int64_t K)
{
    enum { N = 4 };
    score_model *m;
    char path[1024];
    double c[N] = {0.02, 0.3, 0.65, 1.0};
    int32_t lab[N];
    size_t dim = C * H * W, np;
    float *x, *gy, *y, *gx, *gp, *p;
    CK(score_model_new_unet(&m, C, H, W));
    CK(score_model_set_unet_widths(m, L, mults));
    CK(score_model_set_i64(m, SCORE_MODEL_PARAM_UNET_BASE_WIDTH, base));
    CK(score_model_set_i64(m, SCORE_MODEL_PARAM_UNET_BLOCKS, blocks));
    CK(score_model_set_i64(m, SCORE_MODEL_PARAM_UNET_GROUPS, groups));
    CK(score_model_set_i64(m, SCORE_MODEL_PARAM_UNET_ATTENTION, attention));
    CK(score_model_set_i64(m, SCORE_MODEL_PARAM_EMBEDDING, emb));
    CK(score_model_set_i64(m, SCORE_MODEL_PARAM_EMBED_DIM, 8));
    CK(score_model_set_f64(m, SCORE_MODEL_PARAM_FOURIER_SCALE, 2.0));
    CK(score_model_set_i64(m, SCORE_MODEL_PARAM_NUM_CLASSES, K));
    CK(score_model_set_i64(m, SCORE_MODEL_PARAM_SEED, 5));
    CK(score_model_prepare(m));
    np = score_model_param_count(m);
    p = zeros(np);
    CK(score_model_params_get(m, p, np));
    for (size_t i = 0; i < np; i++) /* random weights; GroupNorm scales near 1 */
        p[i] = (p[i] == 1.0f ? 1.0f : 0.0f) + 0.3f * frand();
    CK(score_model_params_set(m, p, np));
    snprintf(path, sizeof path, "%s/%s.safetensors", dir, name);
    CK(score_model_save(m, path));
    x = rnd(N * dim, 1.0f), gy = rnd(N * dim, 1.0f), y = zeros(N * dim), gx = zeros(N * dim);
    gp = zeros(np);
    for (int b = 0; b < N; b++)
        lab[b] = K > 0 ? (int32_t)(b % (K + 1)) : 0; /* the last row: the null label K */
    CK(score_model_forward_cond(m, N, x, c, K > 0 ? lab : NULL, NULL, y));
    CK(score_model_backward(m, N, gy, gp, gx));
    printf("case %s net\nfile %s\n", name, path);
    printf("c %d %.17g %.17g %.17g %.17g\n", N, c[0], c[1], c[2], c[3]);
    printf("labels %d", K > 0 ? N : 0);
    for (int b = 0; K > 0 && b < N; b++)
        printf(" %d", (int)lab[b]);
    printf("\n");
    vec("params", np, p), vec("x", N * dim, x), vec("gy", N * dim, gy), vec("y", N * dim, y);
    vec("gx", N * dim, gx), vec("gp", np, gp);
    printf("end\n");
    free(p), free(x), free(gy), free(y), free(gx), free(gp);
    score_model_free(m);
}

int main(int argc, char **argv)
{
    const size_t m3[3] = {1, 2, 2}, m2[2] = {1, 2};
    if (argc != 2) {
        fprintf(stderr, "usage: unet-dump DIR (the whole networks' files are written there)\n");
        return 2;
    }
    conv3_case();
    conv1_case();
    dense_case();
    gn_case();
    silu_case();
    resample_case(0);
    resample_case(1);
    res_case("res-skip-temb", 2, 4, 6, 4, 4, 5, 2, 3);
    /* GN_2 with 2 channels per group: with one, it would remove the per-channel embedding
     * term exactly and the embedding gradient would be 0 */
    res_case("res-identity-temb", 2, 4, 4, 3, 5, 3, 2, 2);
    attn_case();
    net_case(argv[1], "net-fourier-classes-attention", 1, 8, 8, 3, m3, 4, 1, 2, 1,
             SCORE_EMBED_FOURIER, 3);
    net_case(argv[1], "net-sinusoidal-rgb", 3, 4, 4, 2, m2, 4, 2, 4, 0,
             SCORE_EMBED_SINUSOIDAL, 0);
    return 0;
}
