/* 2-D toy datasets (FFJORD-style definitions; exact formulas in include/libscore/train.h). */
#include <math.h>
#include <string.h>

#include "train-priv.h"

#define PI 3.14159265358979323846
#define RING_K 8
#define RING_RADIUS 2.8284271247461900976 /* 2 sqrt(2) */
#define RING_STD 0.35355339059327376220   /* sqrt(2) / 4 */
#define CHUNK 256

enum { TOY_RING8, TOY_MOONS, TOY_SWISSROLL, TOY_CHECKERBOARD, TOY_GAUSSIAN, TOY_COUNT };

static const char *const toy_names[TOY_COUNT] = {"ring8", "moons", "swissroll", "checkerboard",
                                                 "gaussian"};

static int toy_index(const char *name)
{
    for (int i = 0; i < TOY_COUNT; i++)
        if (strcmp(name, toy_names[i]) == 0)
            return i;
    return -1;
}

size_t score_dataset_toy_dim(const char *name)
{
    return name != NULL && toy_index(name) >= 0 ? 2 : 0;
}

size_t score_dataset_toy_count(void)
{
    return TOY_COUNT;
}

const char *score_dataset_toy_name(size_t i)
{
    return i < TOY_COUNT ? toy_names[i] : NULL;
}

/* One point from four uniforms u and four normals z (columns 0-3 and 4-7 of its row). */
static void toy_point(int toy, const double *u, const double *z, float *out)
{
    double x = 0.0, y = 0.0;
    switch (toy) {
    case TOY_RING8: {
        int k = (int)(u[0] * RING_K);
        double ang;
        if (k >= RING_K)
            k = RING_K - 1;
        ang = 2.0 * PI * k / RING_K;
        x = RING_RADIUS * cos(ang) + RING_STD * z[0];
        y = RING_RADIUS * sin(ang) + RING_STD * z[1];
        break;
    }
    case TOY_MOONS: {
        double a = PI * u[0];
        if (u[1] < 0.5) {
            x = cos(a);
            y = sin(a);
        } else {
            x = 1.0 - cos(a);
            y = 0.5 - sin(a);
        }
        x = 2.0 * (x + 0.1 * z[0]) - 1.0;
        y = 2.0 * (y + 0.1 * z[1]) - 0.2;
        break;
    }
    case TOY_SWISSROLL: {
        double r = 1.5 * PI * (1.0 + 2.0 * u[0]);
        x = (r * cos(r) + z[0]) / 5.0;
        y = (r * sin(r) + z[1]) / 5.0;
        break;
    }
    case TOY_CHECKERBOARD: {
        double x1 = 4.0 * u[0] - 2.0, fl = floor(x1);
        double parity = fl - 2.0 * floor(fl / 2.0); /* floor(x1) mod 2, in {0, 1} */
        double bit = u[2] < 0.5 ? 1.0 : 0.0;
        x = 2.0 * x1;
        y = 2.0 * (u[1] - 2.0 * bit + parity);
        break;
    }
    default: /* TOY_GAUSSIAN */
        x = z[0];
        y = z[1];
        break;
    }
    out[0] = (float)x;
    out[1] = (float)y;
}

int score_dataset_toy(const char *name, const score_rng *rng, size_t n, float *out)
{
    double u[CHUNK * 4], z[CHUNK * 4];
    int toy;
    if (name == NULL || rng == NULL || (out == NULL && n > 0))
        return score__error(SCORE_E_INVAL, __func__, "name, rng or out is NULL");
    toy = toy_index(name);
    if (toy < 0)
        return score__error(SCORE_E_UNSUPPORTED, __func__,
                            "unknown toy dataset '%.40s' (ring8, moons, swissroll, checkerboard, "
                            "gaussian)", name);
    if ((uint64_t)n >= ((uint64_t)1 << 32))
        return score__error(SCORE_E_RANGE, __func__, "n = %zu exceeds 2^32 - 1", n);
    for (size_t r0 = 0; r0 < n; r0 += CHUNK) {
        size_t m = n - r0 < CHUNK ? n - r0 : CHUNK;
        int rc = score_rng_fill_uniform_f64(rng, r0, m, 0, 4, u);
        if (rc == SCORE_OK)
            rc = score_rng_fill_normal_f64(rng, r0, m, 4, 4, z);
        if (rc != SCORE_OK)
            return rc;
        for (size_t i = 0; i < m; i++)
            toy_point(toy, u + 4 * i, z + 4 * i, out + 2 * (r0 + i));
    }
    return SCORE_OK;
}

int score_dataset_toy_mixture(const char *name, size_t max_components, size_t *k_out,
                              double *weights, double *means, double *vars)
{
    int toy;
    size_t k;
    if (name == NULL || k_out == NULL)
        return score__error(SCORE_E_INVAL, __func__, "name or k_out is NULL");
    toy = toy_index(name);
    if (toy < 0)
        return score__error(SCORE_E_UNSUPPORTED, __func__, "unknown toy dataset '%.40s'", name);
    if (toy != TOY_RING8 && toy != TOY_GAUSSIAN)
        return score__error(SCORE_E_UNSUPPORTED, __func__,
                            "'%s' is not a Gaussian mixture (ring8 and gaussian are)", name);
    k = toy == TOY_RING8 ? RING_K : 1;
    *k_out = k;
    if (max_components < k)
        return score__error(SCORE_E_SHAPE, __func__, "'%s' has %zu components, capacity %zu", name,
                            k, max_components);
    for (size_t j = 0; j < k; j++) {
        double ang = 2.0 * PI * (double)j / RING_K;
        if (weights)
            weights[j] = 1.0 / (double)k;
        if (means) {
            means[2 * j] = toy == TOY_RING8 ? RING_RADIUS * cos(ang) : 0.0;
            means[2 * j + 1] = toy == TOY_RING8 ? RING_RADIUS * sin(ang) : 0.0;
        }
        if (vars) {
            double v = toy == TOY_RING8 ? RING_STD * RING_STD : 1.0;
            vars[2 * j] = v;
            vars[2 * j + 1] = v;
        }
    }
    return SCORE_OK;
}
