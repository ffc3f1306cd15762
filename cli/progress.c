/* Progress bar on stderr: only on a terminal, redrawn at most ~10 times a second. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <math.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_format_duration(double s, char *buf, size_t len)
{
    if (!isfinite(s) || s < 0)
        snprintf(buf, len, "?");
    else if (s < 10)
        snprintf(buf, len, "%.1fs", s);
    else if (s < 60)
        snprintf(buf, len, "%.0fs", s);
    else if (s < 3600)
        snprintf(buf, len, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60.0));
    else
        snprintf(buf, len, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60.0));
}

void cli_progress_start(cli_progress *p, const char *label, uint64_t total, int quiet)
{
    memset(p, 0, sizeof *p);
    p->label = label;
    p->total = total;
    p->enabled = !quiet && isatty(STDERR_FILENO);
    p->t_start = cli_now();
    p->t_last = -1.0;
}

static void draw(cli_progress *p, uint64_t step, const char *value_name, double value, double now)
{
    enum { WIDTH = 24 };
    char bar[WIDTH + 1];
    double frac = p->total ? (double)step / (double)p->total : 1.0;
    if (frac > 1.0)
        frac = 1.0;
    int fill = (int)(frac * WIDTH + 0.5);
    for (int i = 0; i < WIDTH; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[WIDTH] = '\0';
    double el = now - p->t_start;
    double rate = el > 0 ? (double)step / el : 0.0;
    char eta[32], val[64] = "";
    if (step >= p->total)
        cli_format_duration(el, eta, sizeof eta);
    else
        cli_format_duration(rate > 0 ? (double)(p->total - step) / rate : -1.0, eta, sizeof eta);
    if (value_name != NULL)
        snprintf(val, sizeof val, "  %s %.4g", value_name, value);
    fprintf(stderr, "\r%s [%s] %llu/%llu%s  %.0f it/s  %s %s\033[K", p->label, bar,
            (unsigned long long)step, (unsigned long long)p->total, val, rate,
            step >= p->total ? "took" : "ETA", eta);
    fflush(stderr);
    p->drawn = 1;
}

void cli_progress_update(cli_progress *p, uint64_t step, const char *value_name, double value)
{
    p->last_step = step;
    if (!p->enabled)
        return;
    double now = cli_now();
    if (p->t_last >= 0 && now - p->t_last < 0.1 && step < p->total)
        return;
    p->t_last = now;
    draw(p, step, value_name, value, now);
}

void cli_progress_finish(cli_progress *p)
{
    if (p->enabled && p->drawn) {
        fputc('\n', stderr);
        fflush(stderr);
    }
}
