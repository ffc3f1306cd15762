/* A minimal SVG plot writer: panels with axes, point clouds, arrows, polylines, legends.
 *
 * Why it is written by hand: the tool's dependencies are the library's own (a CBLAS, cJSON,
 * libm) and no plotting library is among them; a C plotting library (PLplot, cairo, gnuplot
 * through a pipe) would add a large dependency, with its own fonts and output drivers, for what
 * is here a handful of primitives (rectangles, circles, lines, text) written as text. The output
 * is checked by tests (test-cli-internals.c: the document's structure and escaping;
 * tests/test-cli.sh: the plots of train and sample). */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

struct cli_svg {
    FILE *f;
    char *path;
    int clip_id;
};

/* margins of a panel inside its box, in pixels */
enum { M_LEFT = 62, M_RIGHT = 14, M_TOP = 30, M_BOTTOM = 44 };

static void put_escaped(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

cli_svg *cli_svg_begin(const char *path, double width, double height, const char *title,
                       char *err, size_t err_len)
{
    cli_svg *svg = calloc(1, sizeof *svg);
    if (svg == NULL) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    svg->f = cli_output_open(path, err, err_len);
    if (svg->f == NULL) {
        free(svg);
        return NULL;
    }
    svg->path = malloc(strlen(path) + 1);
    if (svg->path != NULL)
        strcpy(svg->path, path);
    fprintf(svg->f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
            "viewBox=\"0 0 %.0f %.0f\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n",
            width, height, width, height);
    fprintf(svg->f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    if (title != NULL && *title) {
        fputs("<title>", svg->f);
        put_escaped(svg->f, title);
        fputs("</title>\n", svg->f);
    }
    return svg;
}

int cli_svg_end(cli_svg *svg, char *err, size_t err_len)
{
    if (svg == NULL)
        return -1;
    fputs("</svg>\n", svg->f);
    int bad = ferror(svg->f);
    bad |= fclose(svg->f) != 0;
    if (bad)
        snprintf(err, err_len, "error writing '%s'", svg->path ? svg->path : "svg");
    free(svg->path);
    free(svg);
    return bad ? -1 : 0;
}

void cli_svg_text(cli_svg *svg, double x, double y, double size, const char *anchor,
                  const char *text)
{
    fprintf(svg->f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%.1f\" text-anchor=\"%s\">", x, y,
            size, anchor);
    put_escaped(svg->f, text);
    fputs("</text>\n", svg->f);
}

static double map_x(const cli_panel *p, double x)
{
    return p->px + (x - p->x0) / (p->x1 - p->x0) * p->pw;
}

static double map_y(const cli_panel *p, double y)
{
    if (p->log_y)
        y = y > 0 ? log10(y) : -300.0;
    return p->py + p->ph - (y - p->y0) / (p->y1 - p->y0) * p->ph;
}

/* "Nice" tick step for a range with about n ticks: 1, 2 or 5 times a power of ten. */
static double nice_step(double range, int n)
{
    double raw = range / n;
    double mag = pow(10.0, floor(log10(raw)));
    double r = raw / mag;
    double m = r < 1.5 ? 1.0 : r < 3.5 ? 2.0 : r < 7.5 ? 5.0 : 10.0;
    return m * mag;
}

static void format_tick(double v, double step, char *buf, size_t len)
{
    if (fabs(v) < step * 1e-9)
        v = 0.0;
    int dec = step >= 1.0 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (dec > 6)
        snprintf(buf, len, "%.2g", v);
    else
        snprintf(buf, len, "%.*f", dec, v);
}

void cli_svg_panel(cli_svg *svg, cli_panel *p, double px, double py, double pw, double ph,
                   double x0, double x1, double y0, double y1, int log_y, const char *title,
                   const char *xlabel, const char *ylabel)
{
    FILE *f = svg->f;
    p->px = px + M_LEFT;
    p->py = py + M_TOP;
    p->pw = pw - M_LEFT - M_RIGHT;
    p->ph = ph - M_TOP - M_BOTTOM;
    p->log_y = log_y;
    if (log_y) {
        y0 = log10(y0 > 0 ? y0 : 1e-300);
        y1 = log10(y1 > 0 ? y1 : 1e-300);
        if (y1 - y0 < 1e-9) {
            y0 -= 0.5;
            y1 += 0.5;
        }
    }
    p->x0 = x0;
    p->x1 = x1;
    p->y0 = y0;
    p->y1 = y1;
    svg->clip_id++;
    fprintf(f, "<clipPath id=\"c%d\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
            "height=\"%.1f\"/></clipPath>\n", svg->clip_id, p->px, p->py, p->pw, p->ph);
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#fbfbfb\" "
            "stroke=\"#444\" stroke-width=\"1\"/>\n", p->px, p->py, p->pw, p->ph);
    /* x ticks */
    double st = nice_step(x1 - x0, 6);
    char buf[64];
    for (double v = ceil(x0 / st) * st; v <= x1 + st * 1e-9; v += st) {
        double X = map_x(p, v);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e2e2e2\"/>\n",
                X, p->py, X, p->py + p->ph);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\"/>\n",
                X, p->py + p->ph, X, p->py + p->ph + 4);
        format_tick(v, st, buf, sizeof buf);
        cli_svg_text(svg, X, p->py + p->ph + 16, 11, "middle", buf);
    }
    /* y ticks (in log10 units when log_y) */
    st = log_y ? fmax(1.0, nice_step(y1 - y0, 5)) : nice_step(y1 - y0, 6);
    if (log_y && y1 - y0 < 1.0)
        st = nice_step(y1 - y0, 4);
    for (double v = ceil(y0 / st) * st; v <= y1 + st * 1e-9; v += st) {
        double Y = p->py + p->ph - (v - y0) / (y1 - y0) * p->ph;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e2e2e2\"/>\n",
                p->px, Y, p->px + p->pw, Y);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\"/>\n",
                p->px - 4, Y, p->px, Y);
        if (log_y)
            snprintf(buf, sizeof buf, "%.3g", pow(10.0, v));
        else
            format_tick(v, st, buf, sizeof buf);
        cli_svg_text(svg, p->px - 7, Y + 4, 11, "end", buf);
    }
    if (title != NULL)
        cli_svg_text(svg, p->px + p->pw / 2, py + 19, 14, "middle", title);
    if (xlabel != NULL)
        cli_svg_text(svg, p->px + p->pw / 2, p->py + p->ph + 34, 12, "middle", xlabel);
    if (ylabel != NULL) {
        double X = px + 14, Y = p->py + p->ph / 2;
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"middle\" "
                "transform=\"rotate(-90 %.1f %.1f)\">", X, Y, X, Y);
        put_escaped(f, ylabel);
        fputs("</text>\n", f);
    }
}

void cli_svg_points(cli_svg *svg, const cli_panel *p, const float *xy, size_t n, size_t stride,
                    size_t cx, size_t cy, const char *color, double radius, double opacity)
{
    FILE *f = svg->f;
    fprintf(f, "<g fill=\"%s\" fill-opacity=\"%.2f\" clip-path=\"url(#c%d)\">\n", color, opacity,
            svg->clip_id);
    for (size_t i = 0; i < n; i++) {
        double x = xy[i * stride + cx], y = xy[i * stride + cy];
        if (!isfinite(x) || !isfinite(y))
            continue;
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\"/>\n", map_x(p, x), map_y(p, y),
                radius);
    }
    fputs("</g>\n", f);
}

void cli_svg_arrows(cli_svg *svg, const cli_panel *p, const double *x, const double *y,
                    const double *u, const double *v, size_t n, const char *color,
                    double width)
{
    FILE *f = svg->f;
    fprintf(f, "<g stroke=\"%s\" stroke-width=\"%.2f\" fill=\"%s\" stroke-linecap=\"round\">\n",
            color, width, color);
    for (size_t i = 0; i < n; i++) {
        double X0 = map_x(p, x[i]), Y0 = map_y(p, y[i]);
        double X1 = map_x(p, x[i] + u[i]), Y1 = map_y(p, y[i] + v[i]);
        double dx = X1 - X0, dy = Y1 - Y0, len = sqrt(dx * dx + dy * dy);
        if (!isfinite(len))
            continue;
        if (len < 0.5) {
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.2f\" stroke=\"none\"/>\n", X0, Y0,
                    width);
            continue;
        }
        double head = fmin(0.4 * len, 3.0 + 2.0 * width);
        double ux = dx / len, uy = dy / len;
        double bx = X1 - head * ux, by = Y1 - head * uy;   /* base of the head */
        double hw = 0.5 * head;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", X0, Y0, bx, by);
        fprintf(f, "<path d=\"M%.1f %.1fL%.1f %.1fL%.1f %.1fZ\" stroke=\"none\"/>\n", X1, Y1,
                bx - hw * uy, by + hw * ux, bx + hw * uy, by - hw * ux);
    }
    fputs("</g>\n", f);
}

void cli_svg_polyline(cli_svg *svg, const cli_panel *p, const double *x, const double *y,
                      size_t n, const char *color, double width)
{
    FILE *f = svg->f;
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%.2f\" "
            "stroke-linejoin=\"round\" clip-path=\"url(#c%d)\" points=\"", color, width,
            svg->clip_id);
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i]) || (p->log_y && !(y[i] > 0)))
            continue;
        fprintf(f, "%.1f,%.1f ", map_x(p, x[i]), map_y(p, y[i]));
    }
    fputs("\"/>\n", f);
}

void cli_svg_legend(cli_svg *svg, const cli_panel *p, int slot, const char *color,
                    const char *label)
{
    double X = p->px + 10, Y = p->py + 16 + 17 * slot;
    size_t chars = strlen(label);
    fprintf(svg->f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"16\" fill=\"white\" "
            "fill-opacity=\"0.8\"/>\n", X - 4, Y - 12, 26 + 6.6 * (double)chars);
    fprintf(svg->f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4.5\" fill=\"%s\"/>\n", X + 5, Y - 4,
            color);
    cli_svg_text(svg, X + 15, Y, 11, "start", label);
}

void cli_bbox(const float *xy, size_t n, size_t stride, size_t cx, size_t cy, double *x0,
              double *x1, double *y0, double *y1)
{
    for (size_t i = 0; i < n; i++) {
        double x = xy[i * stride + cx], y = xy[i * stride + cy];
        if (!isfinite(x) || !isfinite(y))
            continue;
        *x0 = fmin(*x0, x);
        *x1 = fmax(*x1, x);
        *y0 = fmin(*y0, y);
        *y1 = fmax(*y1, y);
    }
}

void cli_bbox_pad(double *x0, double *x1, double *y0, double *y1, double frac)
{
    if (!(*x0 <= *x1)) {
        *x0 = -1;
        *x1 = 1;
    }
    if (!(*y0 <= *y1)) {
        *y0 = -1;
        *y1 = 1;
    }
    double w = *x1 - *x0, h = *y1 - *y0;
    if (w < 1e-12)
        w = fmax(1.0, fabs(*x0));
    if (h < 1e-12)
        h = fmax(1.0, fabs(*y0));
    *x0 -= frac * w;
    *x1 += frac * w;
    *y0 -= frac * h;
    *y1 += frac * h;
}

void cli_bbox_square(double *x0, double *x1, double *y0, double *y1, double frac)
{
    cli_bbox_pad(x0, x1, y0, y1, frac);
    double w = *x1 - *x0, h = *y1 - *y0, side = fmax(w, h);
    *x0 -= (side - w) / 2;
    *x1 += (side - w) / 2;
    *y0 -= (side - h) / 2;
    *y1 += (side - h) / 2;
}
