/* The tool's two pictures: samples over data, and (after training) the learned score field
 * over the data next to the loss curve. */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DATA_COLOR "#8c8c8c"
#define SAMPLE_COLOR "#d62728"
#define ARROW_COLOR "#1f4e9c"
#define LOSS_COLOR "#1f77b4"
#define SMOOTH_COLOR "#d62728"
#define VALID_COLOR "#2ca02c"   /* the held-out loss */

/* Point clouds are thinned to at most this many points per layer (every k-th row), which keeps
 * a picture of 100k samples a few hundred kB. */
enum { MAX_POINTS = 4000 };

static void draw_cloud(cli_svg *svg, const cli_panel *p, const float *x, size_t n, size_t dim,
                       size_t cx, size_t cy, const char *color, double radius, double opacity)
{
    size_t stride = n > MAX_POINTS ? (n + MAX_POINTS - 1) / MAX_POINTS : 1;
    cli_svg_points(svg, p, x, (n + stride - 1) / stride, dim * stride, cx, cy, color, radius,
                   opacity);
}

static void axis_label(char *buf, size_t len, const char *const *names, size_t c)
{
    if (names != NULL)
        snprintf(buf, len, "%s", names[c]);
    else
        snprintf(buf, len, "x%zu", c + 1);
}

int cli_plot_samples(const char *path, const float *data, size_t nd, const float *samples,
                     size_t ns, size_t dim, size_t cx, size_t cy, const char *const *names,
                     const char *title, const char *sample_label, char *err, size_t err_len)
{
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    if (data != NULL)
        cli_bbox(data, nd, dim, cx, cy, &x0, &x1, &y0, &y1);
    else
        cli_bbox(samples, ns, dim, cx, cy, &x0, &x1, &y0, &y1);
    cli_bbox_square(&x0, &x1, &y0, &y1, 0.08);
    cli_svg *svg = cli_svg_begin(path, 560, 590, title, err, err_len);
    if (svg == NULL)
        return -1;
    cli_panel p;
    char xl[64], yl[64];
    axis_label(xl, sizeof xl, names, cx);
    axis_label(yl, sizeof yl, names, cy);
    cli_svg_panel(svg, &p, 0, 0, 560, 590, x0, x1, y0, y1, 0, title, xl, yl);
    if (data != NULL)
        draw_cloud(svg, &p, data, nd, dim, cx, cy, DATA_COLOR, 1.6, 0.45);
    draw_cloud(svg, &p, samples, ns, dim, cx, cy, SAMPLE_COLOR, 1.6, 0.55);
    int slot = 0;
    if (data != NULL)
        cli_svg_legend(svg, &p, slot++, DATA_COLOR, "data");
    cli_svg_legend(svg, &p, slot, SAMPLE_COLOR, sample_label);
    return cli_svg_end(svg, err, err_len);
}

/* The q-quantile (0 <= q <= 1, lower order statistic) of x[0..n), n >= 1; fallback when there
 * is no memory. */
static double quantile(const double *x, size_t n, double q, double fallback)
{
    double *sorted = malloc(n * sizeof *sorted);
    if (sorted == NULL)
        return fallback;
    memcpy(sorted, x, n * sizeof *sorted);
    for (size_t i = 1; i < n; i++) {   /* insertion sort: n is a few hundred */
        double key = sorted[i];
        size_t j = i;
        for (; j > 0 && sorted[j - 1] > key; j--)
            sorted[j] = sorted[j - 1];
        sorted[j] = key;
    }
    double r = sorted[(size_t)(q * (double)(n - 1))];
    free(sorted);
    return r;
}

/* Left panel: the data and the score field as arrows. 0 or -1 (memory). */
static int field_panel(cli_svg *svg, const float *data, size_t nd, size_t dim, size_t cx,
                       size_t cy, const char *const *names, const cli_field *field)
{
    double x0 = field->x0, x1 = field->x1, y0 = field->y0, y1 = field->y1;
    cli_panel p;
    char xl[64], yl[64], ttl[160];
    axis_label(xl, sizeof xl, names, cx);
    axis_label(yl, sizeof yl, names, cy);
    if (field->standardized)
        snprintf(ttl, sizeof ttl, "learned score at t = %.3g (noise %.3g x the data's std)",
                 field->t, field->sigma);
    else
        snprintf(ttl, sizeof ttl, "learned score at t = %.3g (noise level %.3g)", field->t,
                 field->sigma);
    cli_svg_panel(svg, &p, 0, 24, 540, 536, x0, x1, y0, y1, 0, ttl, xl, yl);
    draw_cloud(svg, &p, data, nd, dim, cx, cy, DATA_COLOR, 1.4, 0.35);
    /* arrow lengths: direction of the score, length growing with |s| up to one cell */
    size_t m = field->n * field->n;
    double *u = malloc(m * sizeof *u), *v = malloc(m * sizeof *v);
    double *mag = malloc(m * sizeof *mag);
    int rc = -1;
    if (u == NULL || v == NULL || mag == NULL)
        goto out;
    for (size_t i = 0; i < m; i++)
        mag[i] = hypot(field->u[i], field->v[i]);
    /* reference magnitude: the 90th percentile, so a few huge arrows do not flatten the rest */
    double ref = quantile(mag, m, 0.9, 1.0);
    if (!(ref > 0))
        ref = 1.0;
    double cell = 0.85 * (x1 - x0) / (double)field->n;
    double celly = 0.85 * (y1 - y0) / (double)field->n;
    for (size_t i = 0; i < m; i++) {
        double len = fmin(1.0, mag[i] / ref);
        double dx = mag[i] > 0 ? field->u[i] / mag[i] : 0, dy = mag[i] > 0 ? field->v[i] / mag[i] : 0;
        u[i] = dx * len * cell;
        v[i] = dy * len * celly;
    }
    cli_svg_arrows(svg, &p, field->gx, field->gy, u, v, m, ARROW_COLOR, 1.1);
    cli_svg_legend(svg, &p, 0, DATA_COLOR, "data");
    cli_svg_legend(svg, &p, 1, ARROW_COLOR, "score direction (length ~ |s|, capped)");
    rc = 0;
out:
    free(u);
    free(v);
    free(mag);
    return rc;
}

/* sm[i]: the mean of the finite losses of the window of `win` steps ending at step i; *lo, *hi:
 * the range of the positive finite losses. */
static void moving_average(const double *loss, size_t steps, size_t win, double *sm, double *lo,
                           double *hi)
{
    double acc = 0.0;
    size_t cnt = 0;
    *lo = INFINITY;
    *hi = -INFINITY;
    for (size_t i = 0; i < steps; i++) {
        if (isfinite(loss[i])) {
            acc += loss[i];
            cnt++;
        }
        if (i >= win && isfinite(loss[i - win])) {
            acc -= loss[i - win];
            cnt--;
        }
        sm[i] = cnt ? acc / (double)cnt : NAN;
        if (isfinite(loss[i]) && loss[i] > 0) {
            *lo = fmin(*lo, loss[i]);
            *hi = fmax(*hi, loss[i]);
        }
    }
}

/* Right panel: the loss curve, per step (thin) and smoothed (moving average), and the held-out
 * loss at its evaluations; a log axis when the losses span more than a factor 20. 0 or -1
 * (memory). */
static int loss_panel(cli_svg *svg, const cli_loss_curves *cv)
{
    const double *loss = cv->loss;
    size_t steps = cv->steps > 0 ? cv->steps : 1;
    double x0 = (double)cv->first_step;
    double *xs = malloc(steps * sizeof *xs), *sm = malloc(steps * sizeof *sm), lo, hi;
    size_t win = steps / 50 > 1 ? steps / 50 : 1;
    if (xs == NULL || sm == NULL) {
        free(xs);
        free(sm);
        return -1;
    }
    moving_average(loss, cv->steps, win, sm, &lo, &hi);
    for (size_t k = 0; k < cv->n_valid; k++)
        if (isfinite(cv->valid_loss[k]) && cv->valid_loss[k] > 0) {
            lo = fmin(lo, cv->valid_loss[k]);
            hi = fmax(hi, cv->valid_loss[k]);
        }
    int log_y = lo > 0 && hi / lo > 20.0;
    if (!(lo <= hi))
        lo = 0, hi = 1;
    if (!log_y) {
        double pad = 0.05 * (hi - lo + 1e-12);
        lo -= pad;
        hi += pad;
    }
    cli_panel q;
    cli_svg_panel(svg, &q, 550, 24, 550, 536, x0, x0 + (double)(steps > 1 ? steps : 2), lo, hi,
                  log_y, cv->n_valid ? "training and held-out loss" : "training loss", "step",
                  log_y ? "loss (log scale)" : "loss");
    /* thin the curves to about 2000 vertices */
    size_t stride = cv->steps > 2000 ? cv->steps / 2000 : 1;
    size_t nt = 0;
    for (size_t i = 0; i < cv->steps; i += stride, nt++) {
        xs[nt] = x0 + (double)(i + 1);
        sm[nt] = sm[i];
    }
    double *raw = malloc(nt * sizeof *raw);
    if (raw != NULL) {
        for (size_t k = 0, i = 0; k < nt; k++, i += stride)
            raw[k] = loss[i];
        cli_svg_polyline(svg, &q, xs, raw, nt, "#9ecae1", 0.8);
        free(raw);
    }
    cli_svg_polyline(svg, &q, xs, sm, nt, SMOOTH_COLOR, 1.8);
    cli_svg_legend(svg, &q, 0, "#9ecae1", "per step");
    char lab[64];
    snprintf(lab, sizeof lab, "moving average (%zu steps)", win);
    cli_svg_legend(svg, &q, 1, SMOOTH_COLOR, lab);
    if (cv->n_valid > 0) {
        cli_svg_polyline(svg, &q, cv->valid_step, cv->valid_loss, cv->n_valid, VALID_COLOR, 1.8);
        cli_svg_legend(svg, &q, 2, VALID_COLOR, "held-out loss");
    }
    free(xs);
    free(sm);
    return 0;
}

int cli_plot_training(const char *path, const float *data, size_t nd, size_t dim, size_t cx,
                      size_t cy, const char *const *names, const cli_field *field,
                      const cli_loss_curves *curves, const char *title, char *err,
                      size_t err_len)
{
    cli_svg *svg = cli_svg_begin(path, 1100, 560, title, err, err_len);
    if (svg == NULL)
        return -1;
    cli_svg_text(svg, 550, 20, 15, "middle", title);
    if (field_panel(svg, data, nd, dim, cx, cy, names, field) != 0 ||
        loss_panel(svg, curves) != 0) {
        cli_svg_end(svg, err, err_len);
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    return cli_svg_end(svg, err, err_len);
}

int cli_parse_dims(const char *s, size_t dim, size_t *cx, size_t *cy)
{
    *cx = 0;
    *cy = dim > 1 ? 1 : 0;
    if (s == NULL)
        return 0;
    char *end;
    long a = strtol(s, &end, 10);
    if (end == s || *end != ',')
        return cli_usage_error("--dims: expected two column numbers like '1,2', got '%s'", s);
    const char *s2 = end + 1;
    long b = strtol(s2, &end, 10);
    if (end == s2 || *end != '\0')
        return cli_usage_error("--dims: expected two column numbers like '1,2', got '%s'", s);
    if (a < 1 || b < 1 || (size_t)a > dim || (size_t)b > dim)
        return cli_usage_error("--dims %s: columns must be between 1 and %zu", s, dim);
    *cx = (size_t)a - 1;
    *cy = (size_t)b - 1;
    return 0;
}
