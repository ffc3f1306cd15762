/* Controls of the data prediction in the sde layer: static clipping and dynamic thresholding
 * (every output of an evaluation, every sampler's final sample, the closed computation of the
 * percentile rule, the genmodel's conversion of a box in data units) and posterior sampling
 * for a linear observation y = A x + n (closed-form posterior score and samples of a Gaussian
 * prior, an anisotropic prior where the method is approximate, argument checks). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "helpers/test-helpers.h"

/* ---- thresholding ------------------------------------------------------------------- */

enum { TD = 6 };

/* A callback model in x0 output: F = 3 x + off_j, i.e. a data prediction far outside any box
 * of width ~1 for most inputs. */
static const float toff[TD] = {2.0f, -3.0f, 0.5f, 0.0f, 5.0f, -0.25f};

static int wild_x0(size_t n, size_t dim, const float *x, const double *c, float *out, void *ud)
{
    (void)c;
    (void)ud;
    for (size_t b = 0; b < n; b++)
        for (size_t j = 0; j < dim; j++)
            out[b * dim + j] = 3.0f * x[b * dim + j] + toff[j];
    return 0;
}

static score_schedule *vp(void)
{
    score_schedule *s;
    ck_assert_ok(score_schedule_new(&s, SCORE_SCHEDULE_VP));
    ck_assert_ok(score_schedule_prepare(s));
    return s;
}

static void fill_points(size_t n, size_t d, float *x, double *t, unsigned seed)
{
    srand(seed);
    for (size_t i = 0; i < n * d; i++)
        x[i] = (float)(4.0 * rand() / RAND_MAX - 2.0);
    for (size_t b = 0; b < n; b++)
        t[b] = 0.02 + 0.96 * (double)b / (double)(n > 1 ? n - 1 : 1);
}

/* numpy.quantile(v, p) (method "linear") of d values, computed independently of the library:
 * insertion sort, then interpolation at position p (d - 1). */
static double np_quantile(const double *v, size_t d, double p)
{
    double w[64], pos;
    size_t i;
    for (size_t a = 0; a < d; a++) {
        size_t c = a;
        while (c > 0 && w[c - 1] > v[a]) {
            w[c] = w[c - 1];
            c--;
        }
        w[c] = v[a];
    }
    pos = p * (double)(d - 1);
    i = (size_t)pos;
    if (i + 1 >= d)
        return w[d - 1];
    return w[i] + (pos - (double)i) * (w[i + 1] - w[i]);
}

/* The data prediction implied by each output kind lies in the box [lo, hi]: score_sde_x0()
 * exactly, the others up to the float rounding of the map (relative 1e-5 of the terms). */
START_TEST(every_output_sees_the_clipped_x0)
{
    enum { N = 9 };
    score_schedule *sc = vp();
    score_model *m;
    score_sde *sde;
    float x[N * TD], o[N * TD];
    double t[N], lo[TD] = {-1, -0.5, 0, -2, 0.25, -1}, hi[TD] = {1, 0.5, 1, 2, 0.75, 3};
    ck_assert_ok(score_model_new_callback(&m, TD, wild_x0, NULL));
    ck_assert_ok(score_sde_new(&sde, sc, m, SCORE_OUTPUT_X0));
    ck_assert_ok(score_sde_set_clip(sde, TD, lo, hi));
    fill_points(N, TD, x, t, 7);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) /* dynamic thresholding relative to the box */
            ck_assert_ok(score_sde_set_f64(sde, SCORE_SDE_PARAM_THRESHOLD, 0.9));
        for (int want = 0; want < 5; want++) {
            switch (want) {
            case 0: ck_assert_ok(score_sde_x0(sde, N, t, x, o)); break;
            case 1: ck_assert_ok(score_sde_score(sde, N, t, x, o)); break;
            case 2: ck_assert_ok(score_sde_eps(sde, N, t, x, o)); break;
            case 3: ck_assert_ok(score_sde_reverse_drift(sde, N, t, x, o)); break;
            default: ck_assert_ok(score_sde_pf_drift(sde, N, t, x, o)); break;
            }
            for (size_t b = 0; b < N; b++) {
                double al, si, f, g;
                ck_assert_ok(score_schedule_alpha_sigma(sc, 1, &t[b], &al, &si));
                ck_assert_ok(score_schedule_sde_coefs(sc, 1, &t[b], &f, &g));
                for (size_t j = 0; j < TD; j++) {
                    double xv = x[b * TD + j], v = o[b * TD + j], s, x0, tol;
                    switch (want) {
                    case 0: s = (al * v - xv) / (si * si); break;
                    case 1: s = v; break;
                    case 2: s = -v / si; break;
                    case 3: s = (f * xv - v) / (g * g); break;
                    default: s = 2.0 * (f * xv - v) / (g * g); break;
                    }
                    x0 = want == 0 ? v : (xv + si * si * s) / al;
                    tol = want == 0 ? 0.0 : 1e-5 * (fabs(xv) + si * si * fabs(s) + 1.0) / al;
                    ck_assert_msg(x0 >= lo[j] - tol && x0 <= hi[j] + tol,
                                  "pass %d want %d row %zu dim %zu: x0 = %.9g not in [%g, %g]",
                                  pass, want, b, j, x0, lo[j], hi[j]);
                }
            }
        }
    }
    score_sde_free(sde);
    score_model_free(m);
    score_schedule_free(sc);
}
END_TEST

/* Dynamic thresholding against the closed computation (Imagen's rule with numpy's quantile),
 * without a box ([-1, 1]) and relative to a box; rows already in the box are unchanged. */
START_TEST(dynamic_threshold_closed_form)
{
    enum { N = 7 };
    score_schedule *sc = vp();
    score_model *m;
    score_sde *sde;
    float x[N * TD], o[N * TD], F[N * TD];
    double t[N], lo[1] = {-0.5}, hi[1] = {1.5};
    const double ps[3] = {0.995, 0.5, 1.0};
    ck_assert_ok(score_model_new_callback(&m, TD, wild_x0, NULL));
    ck_assert_ok(score_sde_new(&sde, sc, m, SCORE_OUTPUT_X0));
    fill_points(N, TD, x, t, 11);
    for (size_t b = 0; b < N; b++) /* row 0: a prediction inside [-1, 1] and the box */
        for (size_t j = 0; j < TD; j++)
            x[b * TD + j] = b == 0 ? (float)((0.1 * (double)j - toff[j] + 0.2) / 3.0) : x[b * TD + j];
    ck_assert_ok(wild_x0(N, TD, x, NULL, F, NULL));
    for (int box = 0; box < 2; box++) {
        if (box)
            ck_assert_ok(score_sde_set_clip(sde, 1, lo, hi));
        for (int ip = 0; ip < 3; ip++) {
            ck_assert_ok(score_sde_set_f64(sde, SCORE_SDE_PARAM_THRESHOLD, ps[ip]));
            ck_assert_ok(score_sde_x0(sde, N, t, x, o));
            for (size_t b = 0; b < N; b++) {
                double z[TD], az[TD], s, c = box ? 0.5 : 0.0, h = box ? 1.0 : 1.0;
                for (size_t j = 0; j < TD; j++) {
                    z[j] = ((double)F[b * TD + j] - c) / h;
                    az[j] = fabs(z[j]);
                }
                s = np_quantile(az, TD, ps[ip]);
                if (s < 1.0)
                    s = 1.0;
                for (size_t j = 0; j < TD; j++) {
                    double zz = z[j] < -s ? -s : (z[j] > s ? s : z[j]);
                    double want = c + h * zz / s;
                    ck_assert_msg(fabs(o[b * TD + j] - want) <= 2e-6 * (1.0 + fabs(want)),
                                  "box %d p %g row %zu dim %zu: %.9g vs %.9g", box, ps[ip], b,
                                  j, (double)o[b * TD + j], want);
                    if (b == 0 && !box)
                        ck_assert_msg(o[j] == F[j], "in-range row changed");
                }
            }
        }
    }
    score_sde_free(sde);
    score_model_free(m);
    score_schedule_free(sc);
}
END_TEST

/* Every predictor type with a final step to t = 0: all samples lie in the box, bit-exactly
 * (the final step returns the clipped data prediction). */
START_TEST(every_sampler_ends_in_the_box)
{
    enum { N = 16 };
    score_schedule *sc = vp();
    score_model *m;
    score_sde *sde;
    score_rng *rng;
    float out[N * TD];
    double lo[1] = {0.0}, hi[1] = {1.0};
    size_t ntypes = score_step_type_count(), tested = 0;
    ck_assert_ok(score_model_new_callback(&m, TD, wild_x0, NULL));
    ck_assert_ok(score_sde_new(&sde, sc, m, SCORE_OUTPUT_X0));
    ck_assert_ok(score_sde_set_clip(sde, 1, lo, hi));
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, 5));
    for (size_t i = 0; i < ntypes; i++) {
        const score_step_type *ty = score_step_type_at(i);
        score_sampler *smp;
        int kind = score_step_type_kind(ty);
        if ((score_step_type_flags(ty) & SCORE_STEP_FLAG_CORRECTOR) || kind == SCORE_STEP_NONE)
            continue;
        ck_assert_ok(score_sampler_new(&smp, ty, NULL, TD));
        ck_assert_ok(score_sampler_set_i64(smp, SCORE_SAMPLER_PARAM_NUM_STEPS, 8));
        ck_assert_ok(score_sampler_set_i64(smp, SCORE_SAMPLER_PARAM_FINAL_DENOISE, 1));
        ck_assert_ok(score_sampler_run(smp, sde, N, NULL, out, rng, NULL, NULL));
        for (size_t k = 0; k < N * TD; k++)
            ck_assert_msg(out[k] >= 0.0f && out[k] <= 1.0f, "%s: sample %g out of [0, 1]",
                          score_step_type_name(ty), (double)out[k]);
        score_sampler_free(smp);
        tested++;
    }
    ck_assert_uint_ge(tested, 15);
    score_rng_free(rng);
    score_sde_free(sde);
    score_model_free(m);
    score_schedule_free(sc);
}
END_TEST

/* The genmodel converts a box in data units through its transform, per dimension. */
START_TEST(genmodel_box_in_data_units)
{
    enum { N = 5 };
    score_schedule *sc = vp();
    score_model *m;
    score_sde *sde, *gsde;
    score_genmodel *gm;
    float x[N * TD], o[N * TD], od[N * TD];
    double t[N], shift[TD], scale[TD], lo[1] = {0.0}, hi[1] = {16.0};
    for (size_t j = 0; j < TD; j++) {
        shift[j] = 4.0 + (double)j;
        scale[j] = 2.0 + 0.5 * (double)j;
    }
    ck_assert_ok(score_model_new_callback(&m, TD, wild_x0, NULL));
    ck_assert_ok(score_sde_new(&sde, sc, m, SCORE_OUTPUT_X0));
    ck_assert_ok(score_genmodel_new(&gm, sde));
    ck_assert_ok(score_genmodel_set_transform(gm, shift, scale));
    ck_assert_ok(score_genmodel_sde(gm, &gsde));
    ck_assert_ok(score_genmodel_sde_set_clip(gm, gsde, 1, lo, hi));
    fill_points(N, TD, x, t, 3);
    for (size_t i = 0; i < N * TD; i++)
        x[i] *= 4.0f;
    ck_assert_ok(score_sde_x0(gsde, N, t, x, o));
    ck_assert_ok(score_genmodel_decode(gm, N, o, od));
    for (size_t i = 0; i < N * TD; i++) {
        size_t j = i % TD;
        double F = 3.0 * x[i] + toff[j], Fd = F * scale[j] + shift[j];
        double want = Fd < 0.0 ? 0.0 : (Fd > 16.0 ? 16.0 : Fd);
        ck_assert_msg(od[i] >= 0.0f && od[i] <= 16.0f, "decoded %g out of [0, 16]",
                      (double)od[i]);
        ck_assert_msg(fabs(od[i] - want) <= 1e-5 * (1.0 + fabs(want)), "%g vs %g",
                      (double)od[i], want);
    }
    ck_assert_fails_with(score_genmodel_sde_set_clip(gm, sde, 1, lo, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_genmodel_sde_set_clip(gm, gsde, 2, lo, hi), SCORE_E_SHAPE);
    ck_assert_fails_with(score_genmodel_sde_set_clip(NULL, gsde, 1, lo, hi), SCORE_E_INVAL);
    ck_assert_ok(score_genmodel_sde_set_clip(gm, gsde, 1, NULL, NULL));
    ck_assert_ok(score_sde_x0(gsde, N, t, x, o));
    ck_assert_ok(score_sde_x0(sde, N, t, x, od));
    ck_assert_mem_eq(o, od, sizeof o); /* cleared: the plain data prediction again */
    score_sde_free(gsde);
    score_genmodel_free(gm);
    score_sde_free(sde);
    score_model_free(m);
    score_schedule_free(sc);
}
END_TEST

START_TEST(threshold_arguments)
{
    score_schedule *sc = vp();
    score_model *m;
    score_sde *sde;
    double lo[TD] = {0}, hi[TD] = {1, 1, 1, 1, 1, 1}, bad[1] = {NAN}, eq[1] = {0.0};
    double div[1], t[1] = {0.5}, ones[TD] = {1, 1, 1, 1, 1, 1};
    float x[TD] = {0};
    double zeros[TD] = {0};
    ck_assert_ok(score_model_new_gaussian(&m, sc, TD, zeros, NULL, ones));
    ck_assert_ok(score_sde_new(&sde, sc, m, SCORE_OUTPUT_SCORE));
    ck_assert_fails_with(score_sde_set_clip(NULL, 1, lo, hi), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_set_clip(sde, 1, lo, NULL), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_set_clip(sde, 3, lo, hi), SCORE_E_SHAPE);
    ck_assert_fails_with(score_sde_set_clip(sde, 1, bad, hi), SCORE_E_RANGE);
    ck_assert_fails_with(score_sde_set_clip(sde, 1, lo, eq), SCORE_E_RANGE);
    ck_assert_fails_with(score_sde_set_f64(sde, SCORE_SDE_PARAM_THRESHOLD, 1.5), SCORE_E_RANGE);
    ck_assert_fails_with(score_sde_set_f64(sde, SCORE_SDE_PARAM_THRESHOLD, -0.1), SCORE_E_RANGE);
    ck_assert_ok(score_sde_divergence(sde, 1, t, x, div, NULL));
    ck_assert_ok(score_sde_set_clip(sde, TD, lo, hi));
    ck_assert_fails_with(score_sde_divergence(sde, 1, t, x, div, NULL), SCORE_E_UNSUPPORTED);
    ck_assert_fails_with(score_sde_pf_divergence(sde, 1, t, x, 0, NULL, div, NULL),
                         SCORE_E_UNSUPPORTED);
    ck_assert_ok(score_sde_set_clip(sde, 0, NULL, NULL));
    ck_assert_ok(score_sde_divergence(sde, 1, t, x, div, NULL));
    ck_assert_ok(score_sde_set_f64(sde, SCORE_SDE_PARAM_THRESHOLD, 0.995));
    ck_assert_fails_with(score_sde_divergence(sde, 1, t, x, div, NULL), SCORE_E_UNSUPPORTED);
    score_sde_free(sde);
    score_model_free(m);
    score_schedule_free(sc);
}
END_TEST

/* ---- inverse problems --------------------------------------------------------------- */

enum { ID = 4, IM = 2 };
static const float iA[IM * ID] = {0.8f, -0.3f, 0.5f, 0.2f, 0.1f, 0.9f, -0.4f, 0.6f};
static const float iy[IM] = {0.7f, -0.4f};
static const double isn = 0.3;
static const double imu[ID] = {0.3, -0.2, 0.5, 0.1};

/* In-place inverse of a symmetric positive-definite n x n matrix (Gauss-Jordan, n <= 8). */
static void inv_spd(size_t n, double *M)
{
    double aug[8][16];
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < 2 * n; j++)
            aug[i][j] = j < n ? M[i * n + j] : (j - n == i ? 1.0 : 0.0);
    for (size_t c = 0; c < n; c++) {
        double piv = aug[c][c];
        for (size_t j = 0; j < 2 * n; j++)
            aug[c][j] /= piv;
        for (size_t r = 0; r < n; r++) {
            double f = aug[r][c];
            if (r == c)
                continue;
            for (size_t j = 0; j < 2 * n; j++)
                aug[r][j] -= f * aug[c][j];
        }
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            M[i * n + j] = aug[i][n + j];
}

/* Posterior of x ~ N(mu, P), y = A x + N(0, sn^2 I): C = (P^-1 + A^T A / sn^2)^-1,
 * m = C (P^-1 mu + A^T y / sn^2). */
static void gauss_posterior(const double *mu, const double *P, double *m, double *C)
{
    double Pi[ID * ID], h[ID];
    for (size_t i = 0; i < ID * ID; i++)
        Pi[i] = P[i];
    inv_spd(ID, Pi);
    for (size_t i = 0; i < ID; i++) {
        h[i] = 0.0;
        for (size_t j = 0; j < ID; j++) {
            double ata = 0.0;
            for (size_t k = 0; k < IM; k++)
                ata += (double)iA[k * ID + i] * (double)iA[k * ID + j];
            C[i * ID + j] = Pi[i * ID + j] + ata / (isn * isn);
            h[i] += Pi[i * ID + j] * mu[j];
        }
        for (size_t k = 0; k < IM; k++)
            h[i] += (double)iA[k * ID + i] * (double)iy[k] / (isn * isn);
    }
    inv_spd(ID, C);
    for (size_t i = 0; i < ID; i++) {
        m[i] = 0.0;
        for (size_t j = 0; j < ID; j++)
            m[i] += C[i * ID + j] * h[j];
    }
}

static void iso_prior(double v, double *P)
{
    for (size_t i = 0; i < ID * ID; i++)
        P[i] = i % (ID + 1) == 0 ? v : 0.0;
}

/* With an isotropic Gaussian prior N(mu, v I) and the PiGDM form with that v, the sde's score
 * is the closed-form posterior score of x_t | y ~ N(alpha m, alpha^2 C + sigma^2 I) (float
 * evaluation: 1e-4 relative). With r_t = 0 (DPS) it is not, away from t -> 0. */
START_TEST(pigdm_score_is_exact_posterior_score)
{
    enum { N = 6 };
    score_schedule *sc = vp();
    score_model *m;
    score_sde *sde;
    double P[ID * ID], mpost[ID], C[ID * ID], t[N], v = 0.5, var[ID];
    float x[N * ID], o[N * ID];
    double maxdps = 0.0;
    for (size_t j = 0; j < ID; j++)
        var[j] = v;
    iso_prior(v, P);
    gauss_posterior(imu, P, mpost, C);
    ck_assert_ok(score_model_new_gaussian(&m, sc, ID, imu, NULL, var));
    ck_assert_ok(score_sde_new(&sde, sc, m, SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_sde_set_observation(sde, IM, iA, iy, isn));
    fill_points(N, ID, x, t, 17);
    for (int form = 0; form < 2; form++) {
        ck_assert_ok(score_sde_set_f64(sde, SCORE_SDE_PARAM_OBS_VAR, form == 0 ? v : 0.0));
        ck_assert_ok(score_sde_score(sde, N, t, x, o));
        for (size_t b = 0; b < N; b++) {
            double al, si, M[ID * ID], r[ID];
            ck_assert_ok(score_schedule_alpha_sigma(sc, 1, &t[b], &al, &si));
            for (size_t i = 0; i < ID * ID; i++)
                M[i] = al * al * C[i] + (i % (ID + 1) == 0 ? si * si : 0.0);
            inv_spd(ID, M);
            for (size_t i = 0; i < ID; i++)
                r[i] = (double)x[b * ID + i] - al * mpost[i];
            for (size_t i = 0; i < ID; i++) {
                double s = 0.0, scale = 0.0;
                for (size_t j = 0; j < ID; j++) {
                    s -= M[i * ID + j] * r[j];
                    scale += fabs(M[i * ID + j] * r[j]);
                }
                if (form == 0)
                    ck_assert_msg(fabs(o[b * ID + i] - s) <= 1e-4 * (scale + 1.0),
                                  "t = %g dim %zu: %.8g vs posterior score %.8g", t[b], i,
                                  (double)o[b * ID + i], s);
                else
                    maxdps = fmax(maxdps, fabs(o[b * ID + i] - s) / (scale + 1.0));
            }
        }
    }
    ck_assert_msg(maxdps > 1e-2, "the DPS form (r_t = 0) should differ from the exact score "
                  "at large t (max rel. difference %g)", maxdps);
    score_sde_free(sde);
    score_model_free(m);
    score_schedule_free(sc);
}
END_TEST

/* Moments of n samples against the closed form: returns the largest error in units of the
 * standard error (mean: sqrt(C_ii / n); covariance entry: sqrt((C_ii C_jj + C_ij^2) / n), the
 * standard error of a Gaussian sample covariance), and the relative Frobenius errors. */
static double moment_errors(size_t n, const float *xs, const double *m, const double *C,
                            double *mean_err, double *cov_err)
{
    double mu[ID] = {0}, S[ID * ID] = {0}, worst = 0.0, num = 0.0, den = 0.0, me = 0.0;
    for (size_t b = 0; b < n; b++)
        for (size_t i = 0; i < ID; i++)
            mu[i] += xs[b * ID + i];
    for (size_t i = 0; i < ID; i++)
        mu[i] /= (double)n;
    for (size_t b = 0; b < n; b++)
        for (size_t i = 0; i < ID; i++)
            for (size_t j = 0; j < ID; j++)
                S[i * ID + j] += (xs[b * ID + i] - mu[i]) * (xs[b * ID + j] - mu[j]);
    for (size_t i = 0; i < ID; i++) {
        double se = sqrt(C[i * ID + i] / (double)n);
        worst = fmax(worst, fabs(mu[i] - m[i]) / se);
        me += (mu[i] - m[i]) * (mu[i] - m[i]);
        for (size_t j = 0; j < ID; j++) {
            double c = C[i * ID + j], sij = S[i * ID + j] / (double)(n - 1);
            double sec = sqrt((C[i * ID + i] * C[j * ID + j] + c * c) / (double)n);
            worst = fmax(worst, fabs(sij - c) / sec);
            num += (sij - c) * (sij - c);
            den += c * c;
        }
    }
    *mean_err = sqrt(me);
    *cov_err = sqrt(num / den);
    return worst;
}

static void sample_posterior(score_sde *sde, size_t n, float *out, uint64_t seed)
{
    score_sampler *smp;
    score_rng *rng;
    ck_assert_ok(score_sampler_new_preset(&smp, SCORE_SAMPLER_PRESET_ODE, ID));
    ck_assert_ok(score_sampler_set_f64(smp, SCORE_SAMPLER_PARAM_RTOL, 1e-6));
    ck_assert_ok(score_sampler_set_f64(smp, SCORE_SAMPLER_PARAM_ATOL, 1e-6));
    ck_assert_ok(score_rng_new(&rng, SCORE_RNG_PHILOX4X32_10, seed));
    ck_assert_ok(score_sampler_run(smp, sde, n, NULL, out, rng, NULL, NULL));
    score_rng_free(rng);
    score_sampler_free(smp);
}

/* The test: isotropic Gaussian prior, dense A (2 x 4), PiGDM form (exact): 20 000
 * probability-flow samples have the closed-form posterior mean and covariance within 4
 * standard errors (14 moments: a false alarm has probability ~1e-3 for exact samples; the
 * solver's error at rtol 1e-6 and the t_eps / prior-mismatch bias (~1e-4) are far below one
 * standard error, ~0.7% of a standard deviation). */
START_TEST(gaussian_posterior_samples)
{
    enum { N = 20000 };
    score_schedule *sc = vp();
    score_model *m;
    score_sde *sde;
    double P[ID * ID], mpost[ID], C[ID * ID], v = 0.5, var[ID], me, ce, worst;
    float *xs = malloc(N * ID * sizeof *xs);
    ck_assert_ptr_nonnull(xs);
    for (size_t j = 0; j < ID; j++)
        var[j] = v;
    iso_prior(v, P);
    gauss_posterior(imu, P, mpost, C);
    ck_assert_ok(score_model_new_gaussian(&m, sc, ID, imu, NULL, var));
    ck_assert_ok(score_sde_new(&sde, sc, m, SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_sde_set_observation(sde, IM, iA, iy, isn));
    ck_assert_ok(score_sde_set_f64(sde, SCORE_SDE_PARAM_OBS_VAR, v));
    sample_posterior(sde, N, xs, 21);
    worst = moment_errors(N, xs, mpost, C, &me, &ce);
    printf("isotropic prior, PiGDM (exact): worst moment error %.2f SE, |mean err| %.4f, "
           "rel. cov err %.4f\n", worst, me, ce);
    ck_assert_msg(worst < 4.0, "a posterior moment is %.2f standard errors off", worst);
    score_sde_free(sde);
    score_model_free(m);
    score_schedule_free(sc);
    free(xs);
}
END_TEST

/* An anisotropic correlated prior, where neither form is exact. Theory guarantees no figure
 * here; the errors are reported, and the assertions are regression guards with wide margins
 * on what was measured (PiGDM with v = the mean prior variance: mean error 0.04 and relative
 * covariance error 0.09 against the prior's 0.15 and 1.39; DPS: 0.17 and 0.25, i.e. its mean
 * is no better than the prior's, a known bias of r_t = 0, only its covariance contracts). */
START_TEST(anisotropic_prior_is_approximate)
{
    enum { N = 4000 };
    static const double P[ID * ID] = {1.0, 0.3, 0.0, 0.1, 0.3, 0.4, 0.1, 0.0,
                                      0.0, 0.1, 0.2, -0.05, 0.1, 0.0, -0.05, 0.8};
    score_schedule *sc = vp();
    score_model *m;
    score_sde *sde;
    double mpost[ID], C[ID * ID], vbar = (1.0 + 0.4 + 0.2 + 0.8) / 4.0, d0 = 0.0, c0n = 0.0,
           c0d = 0.0;
    float *xs = malloc(N * ID * sizeof *xs);
    ck_assert_ptr_nonnull(xs);
    gauss_posterior(imu, P, mpost, C);
    for (size_t i = 0; i < ID; i++)
        d0 += (imu[i] - mpost[i]) * (imu[i] - mpost[i]);
    d0 = sqrt(d0);
    for (size_t i = 0; i < ID * ID; i++) {
        c0n += (P[i] - C[i]) * (P[i] - C[i]);
        c0d += C[i] * C[i];
    }
    ck_assert_ok(score_model_new_gaussian(&m, sc, ID, imu, P, NULL));
    ck_assert_ok(score_sde_new(&sde, sc, m, SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_sde_set_observation(sde, IM, iA, iy, isn));
    for (int form = 0; form < 2; form++) {
        double me, ce, worst;
        ck_assert_ok(score_sde_set_f64(sde, SCORE_SDE_PARAM_OBS_VAR, form == 0 ? vbar : 0.0));
        sample_posterior(sde, N, xs, 33);
        worst = moment_errors(N, xs, mpost, C, &me, &ce);
        printf("anisotropic prior, %s: |mean err| %.4f (prior %.4f), rel. cov err %.4f "
               "(prior %.4f), worst %.1f SE\n", form == 0 ? "PiGDM v = mean variance" : "DPS",
               me, d0, ce, sqrt(c0n / c0d), worst);
        if (form == 0)
            ck_assert_msg(me < 0.5 * d0, "mean error %g not below half the prior's %g", me, d0);
        ck_assert_msg(ce < 0.5 * sqrt(c0n / c0d),
                      "covariance error %g not below half the prior's %g", ce,
                      sqrt(c0n / c0d));
    }
    score_sde_free(sde);
    score_model_free(m);
    score_schedule_free(sc);
    free(xs);
}
END_TEST

/* The anisotropic correlated prior of the moment tests (and of the approximate forms above). */
static const double aniso_P[ID * ID] = {1.0, 0.3, 0.0, 0.1, 0.3, 0.4, 0.1, 0.0,
                                        0.0, 0.1, 0.2, -0.05, 0.1, 0.0, -0.05, 0.8};

/* The moment method (SCORE_OBS_METHOD_MOMENT) with any Gaussian prior N(mu, P): the sde's
 * score is the closed-form posterior score of x_t | y ~ N(alpha m, alpha^2 C + sigma^2 I) at
 * every t (float evaluation: 1e-4 relative), where the DPS / PiGDM forms are not. */
START_TEST(moment_score_is_exact_posterior_score)
{
    enum { N = 8 };
    score_schedule *sc = vp();
    score_model *m;
    score_sde *sde;
    double mpost[ID], C[ID * ID], t[N];
    float x[N * ID], o[N * ID];
    int64_t method;
    gauss_posterior(imu, aniso_P, mpost, C);
    ck_assert_ok(score_model_new_gaussian(&m, sc, ID, imu, aniso_P, NULL));
    ck_assert_ok(score_sde_new(&sde, sc, m, SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_sde_get_i64(sde, SCORE_SDE_PARAM_OBS_METHOD, &method));
    ck_assert_int_eq(method, SCORE_OBS_METHOD_DEFAULT);
    ck_assert_ok(score_sde_set_observation(sde, IM, iA, iy, isn));
    ck_assert_ok(score_sde_set_i64(sde, SCORE_SDE_PARAM_OBS_METHOD, SCORE_OBS_METHOD_MOMENT));
    fill_points(N, ID, x, t, 23);
    t[0] = 1e-3; /* the sampling range's end, where the term dominates */
    ck_assert_ok(score_sde_score(sde, N, t, x, o));
    for (size_t b = 0; b < N; b++) {
        double al, si, M[ID * ID], r[ID];
        ck_assert_ok(score_schedule_alpha_sigma(sc, 1, &t[b], &al, &si));
        for (size_t i = 0; i < ID * ID; i++)
            M[i] = al * al * C[i] + (i % (ID + 1) == 0 ? si * si : 0.0);
        inv_spd(ID, M);
        for (size_t i = 0; i < ID; i++)
            r[i] = (double)x[b * ID + i] - al * mpost[i];
        for (size_t i = 0; i < ID; i++) {
            double sc_ = 0.0, scale = 0.0;
            for (size_t j = 0; j < ID; j++) {
                sc_ -= M[i * ID + j] * r[j];
                scale += fabs(M[i * ID + j] * r[j]);
            }
            ck_assert_msg(fabs(o[b * ID + i] - sc_) <= 1e-4 * (scale + 1.0),
                          "t = %g dim %zu: %.8g vs posterior score %.8g", t[b], i,
                          (double)o[b * ID + i], sc_);
        }
    }
    score_sde_free(sde);
    score_model_free(m);
    score_schedule_free(sc);
}
END_TEST

/* The test with a dense A and the anisotropic correlated prior, where the DPS and PiGDM
 * forms are biased (anisotropic_prior_is_approximate): with the moment method 20 000
 * probability-flow samples have the closed-form posterior mean and covariance within 4
 * standard errors (the tolerance and its reasoning of gaussian_posterior_samples). */
START_TEST(moment_posterior_samples)
{
    enum { N = 20000 };
    score_schedule *sc = vp();
    score_model *m;
    score_sde *sde;
    double mpost[ID], C[ID * ID], me, ce, worst;
    float *xs = malloc(N * ID * sizeof *xs);
    ck_assert_ptr_nonnull(xs);
    gauss_posterior(imu, aniso_P, mpost, C);
    ck_assert_ok(score_model_new_gaussian(&m, sc, ID, imu, aniso_P, NULL));
    ck_assert_ok(score_sde_new(&sde, sc, m, SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_sde_set_observation(sde, IM, iA, iy, isn));
    ck_assert_ok(score_sde_set_i64(sde, SCORE_SDE_PARAM_OBS_METHOD, SCORE_OBS_METHOD_MOMENT));
    sample_posterior(sde, N, xs, 29);
    worst = moment_errors(N, xs, mpost, C, &me, &ce);
    printf("anisotropic prior, moment method: worst moment error %.2f SE, |mean err| %.4f, "
           "rel. cov err %.4f\n", worst, me, ce);
    ck_assert_msg(worst < 4.0, "a posterior moment is %.2f standard errors off", worst);
    score_sde_free(sde);
    score_model_free(m);
    score_schedule_free(sc);
    free(xs);
}
END_TEST

/* The latent maps integrate the model's probability-flow ODE alone: an sde whose drift an
 * observation or a threshold alters is refused (it would give another, or a non-invertible,
 * map), with a message naming the cause; cleared, the maps work again. */
START_TEST(latent_maps_refuse_altered_drift)
{
    score_schedule *sc = vp();
    score_model *m;
    score_sde *sde;
    score_likelihood *lk;
    float x[2 * ID] = {0.1f, 0.2f, -0.3f, 0.4f, 0.5f, -0.6f, 0.7f, 0.0f}, z[2 * ID];
    double lo = -1.0, hi = 1.0;
    ck_assert_ok(score_model_new_gaussian(&m, sc, ID, imu, aniso_P, NULL));
    ck_assert_ok(score_sde_new(&sde, sc, m, SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_likelihood_new(&lk, ID));
    ck_assert_ok(score_sde_set_observation(sde, IM, iA, iy, isn));
    for (int method = SCORE_OBS_METHOD_DEFAULT; method <= SCORE_OBS_METHOD_MOMENT; method++) {
        ck_assert_ok(score_sde_set_i64(sde, SCORE_SDE_PARAM_OBS_METHOD, method));
        ck_assert_fails_with(score_likelihood_to_latent(lk, sde, 0, 2, x, z),
                             SCORE_E_UNSUPPORTED);
        ck_assert_ptr_nonnull(strstr(score_last_error_message(), "observation"));
        ck_assert_fails_with(score_likelihood_from_latent(lk, sde, 0, 2, x, z),
                             SCORE_E_UNSUPPORTED);
    }
    ck_assert_ok(score_sde_set_observation(sde, 0, NULL, NULL, 0.0));
    ck_assert_ok(score_sde_set_clip(sde, 1, &lo, &hi));
    ck_assert_fails_with(score_likelihood_to_latent(lk, sde, 0, 2, x, z), SCORE_E_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(score_last_error_message(), "threshold"));
    ck_assert_fails_with(score_likelihood_from_latent(lk, sde, 0, 2, x, z), SCORE_E_UNSUPPORTED);
    ck_assert_ok(score_sde_set_clip(sde, 0, NULL, NULL));
    ck_assert_ok(score_sde_set_f64(sde, SCORE_SDE_PARAM_THRESHOLD, 0.995));
    ck_assert_fails_with(score_likelihood_to_latent(lk, sde, 0, 2, x, z), SCORE_E_UNSUPPORTED);
    ck_assert_ok(score_sde_set_f64(sde, SCORE_SDE_PARAM_THRESHOLD, 0.0));
    ck_assert_ok(score_likelihood_to_latent(lk, sde, 0, 2, x, z));
    ck_assert_ok(score_likelihood_from_latent(lk, sde, 0, 2, z, z));
    for (size_t i = 0; i < 2 * ID; i++)
        ck_assert_msg(fabs(z[i] - x[i]) < 1e-3, "round trip %zu: %g vs %g", i, (double)z[i],
                      (double)x[i]);
    score_likelihood_free(lk);
    score_sde_free(sde);
    score_model_free(m);
    score_schedule_free(sc);
}
END_TEST

static int plain_fn(size_t n, size_t dim, const float *x, const double *c, float *out, void *ud)
{
    (void)c;
    (void)ud;
    for (size_t i = 0; i < n * dim; i++)
        out[i] = -x[i];
    return 0;
}

START_TEST(observation_arguments)
{
    score_schedule *sc = vp();
    score_model *m, *cb;
    score_sde *sde, *sde_cb;
    float bad[IM * ID], x[ID] = {0.1f, 0.2f, 0.3f, 0.4f}, o[ID], o2[ID];
    double t[1] = {0.5}, div[1], ones[ID] = {1, 1, 1, 1};
    for (size_t i = 0; i < IM * ID; i++)
        bad[i] = iA[i];
    bad[3] = NAN;
    ck_assert_ok(score_model_new_gaussian(&m, sc, ID, imu, NULL, ones));
    ck_assert_ok(score_sde_new(&sde, sc, m, SCORE_OUTPUT_SCORE));
    ck_assert_ok(score_sde_score(sde, 1, t, x, o));
    ck_assert_fails_with(score_sde_set_observation(NULL, IM, iA, iy, isn), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_set_observation(sde, 0, iA, iy, isn), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_set_observation(sde, IM, iA, NULL, isn), SCORE_E_INVAL);
    ck_assert_fails_with(score_sde_set_observation(sde, IM, iA, iy, 0.0), SCORE_E_RANGE);
    ck_assert_fails_with(score_sde_set_observation(sde, IM, iA, iy, NAN), SCORE_E_RANGE);
    ck_assert_fails_with(score_sde_set_observation(sde, IM, bad, iy, isn), SCORE_E_NUMERIC);
    ck_assert_fails_with(score_sde_set_f64(sde, SCORE_SDE_PARAM_OBS_VAR, -1.0), SCORE_E_RANGE);
    ck_assert_fails_with(score_sde_set_f64(sde, SCORE_SDE_PARAM_OBS_ZETA, -1.0), SCORE_E_RANGE);
    /* failed calls left no observation: the score is unchanged */
    ck_assert_ok(score_sde_score(sde, 1, t, x, o2));
    ck_assert_mem_eq(o, o2, sizeof o);
    ck_assert_ok(score_sde_set_observation(sde, IM, iA, iy, isn));
    ck_assert_ok(score_sde_score(sde, 1, t, x, o2));
    ck_assert_int_ne(memcmp(o, o2, sizeof o), 0);
    ck_assert_fails_with(score_sde_divergence(sde, 1, t, x, div, NULL), SCORE_E_UNSUPPORTED);
    /* the normalised DPS form: the term is zeta J^T A^T r / |r|, whatever sigma_n */
    ck_assert_ok(score_sde_set_f64(sde, SCORE_SDE_PARAM_OBS_ZETA, 0.5));
    ck_assert_ok(score_sde_score(sde, 1, t, x, o2));
    {
        double al, si, x0[ID], r[IM], nr = 0.0, g[ID];
        float s0[ID];
        ck_assert_ok(score_schedule_alpha_sigma(sc, 1, t, &al, &si));
        for (size_t j = 0; j < ID; j++) {
            s0[j] = o[j];
            x0[j] = (x[j] + si * si * s0[j]) / al;
        }
        for (size_t i = 0; i < IM; i++) {
            r[i] = iy[i];
            for (size_t j = 0; j < ID; j++)
                r[i] -= iA[i * ID + j] * x0[j];
            nr += r[i] * r[i];
        }
        nr = sqrt(nr);
        /* prior N(mu, I): dx0/dx = (I + sigma^2 ds/dx) / alpha = (1 - sigma^2 / (alpha^2 +
         * sigma^2)) / alpha I */
        for (size_t j = 0; j < ID; j++) {
            g[j] = 0.0;
            for (size_t i = 0; i < IM; i++)
                g[j] += iA[i * ID + j] * r[i];
            g[j] *= 0.5 / nr * (1.0 - si * si / (al * al + si * si)) / al;
            ck_assert_msg(fabs(o2[j] - (o[j] + g[j])) <= 1e-5 * (1.0 + fabs(o[j])),
                          "dim %zu: %.8g vs %.8g", j, (double)o2[j], o[j] + g[j]);
        }
    }
    ck_assert_ok(score_sde_set_f64(sde, SCORE_SDE_PARAM_OBS_ZETA, 0.0));
    ck_assert_ok(score_sde_set_observation(sde, 0, NULL, NULL, 0.0)); /* cleared */
    ck_assert_ok(score_sde_score(sde, 1, t, x, o2));
    ck_assert_mem_eq(o, o2, sizeof o);
    ck_assert_ok(score_sde_divergence(sde, 1, t, x, div, NULL));
    /* a model without an input VJP is refused with a message naming the capability */
    ck_assert_ok(score_model_new_callback(&cb, ID, plain_fn, NULL));
    ck_assert_ok(score_sde_new(&sde_cb, sc, cb, SCORE_OUTPUT_SCORE));
    ck_assert_fails_with(score_sde_set_observation(sde_cb, IM, iA, iy, isn), SCORE_E_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(score_last_error_message(), "vector-Jacobian"));
    /* ... also when the model is swapped in after the observation was set */
    ck_assert_ok(score_sde_set_observation(sde, IM, iA, iy, isn));
    ck_assert_ok(score_sde_set_model(sde, cb));
    ck_assert_fails_with(score_sde_score(sde, 1, t, x, o2), SCORE_E_UNSUPPORTED);
    score_sde_free(sde_cb);
    score_sde_free(sde);
    score_model_free(cb);
    score_model_free(m);
    score_schedule_free(sc);
}
END_TEST

static Suite *control_suite(void)
{
    Suite *s = suite_create("sde-control");
    TCase *tc = tcase_create("threshold");
    tcase_add_test(tc, every_output_sees_the_clipped_x0);
    tcase_add_test(tc, dynamic_threshold_closed_form);
    tcase_add_test(tc, every_sampler_ends_in_the_box);
    tcase_add_test(tc, genmodel_box_in_data_units);
    tcase_add_test(tc, threshold_arguments);
    suite_add_tcase(s, tc);
    tc = tcase_create("inverse");
    tcase_add_test(tc, pigdm_score_is_exact_posterior_score);
    tcase_add_test(tc, gaussian_posterior_samples);
    tcase_add_test(tc, anisotropic_prior_is_approximate);
    tcase_add_test(tc, observation_arguments);
    tcase_add_test(tc, moment_score_is_exact_posterior_score);
    tcase_add_test(tc, moment_posterior_samples);
    tcase_add_test(tc, latent_maps_refuse_altered_drift);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run_suite(control_suite());
}
