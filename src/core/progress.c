/* The progress bar of pinfer prepare and pinfer synth (core/progress.h). */
#include "core/progress.h"

#include "core/clock.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define FRAC_CELLS 40
#define BYTES_CELLS 30
#define BYTES_INTERVAL 0.2 /* seconds between redraws of the bytes form */
#define LINE_INTERVAL 5.0  /* seconds between progress lines when stderr is not a terminal */

static void bar(char *out, int cells, int fill, char todo)
{
    for (int i = 0; i < cells; i++) out[i] = i < fill ? '#' : todo;
    out[cells] = 0;
}

/* stderr is not a terminal (a log file): a whole line every LINE_INTERVAL seconds, and at the
 * end, instead of a bar redrawn in place. */
static void line(struct pf_progress *pg, double f, double t, bool last)
{
    if (!last && t - pg->last < LINE_INTERVAL) return;
    pg->last = t;
    const double el = t - pg->t0, eta = f > 0.001 ? el * (1 - f) / f : 0;
    if (pg->bytes)
        fprintf(stderr, "%.2f/%.2f GiB %5.1f%%, %.0f s elapsed", (double)pg->done / (1ull << 30), (double)pg->total / (1ull << 30),
                f * 100, el);
    else
        fprintf(stderr, "%s%5.1f%%, %.0f s elapsed", pg->label, f * 100, el);
    if (!last) fprintf(stderr, ", ~%.0f s left", eta);
    fputc('\n', stderr);
    fflush(stderr);
}

static void draw_frac(const struct pf_progress *pg, int pm)
{
    char b[FRAC_CELLS + 1];
    bar(b, FRAC_CELLS, pm * FRAC_CELLS / 1000, '.');
    fprintf(stderr, "\r%s[%s] %5.1f%%", pg->label, b, pm / 10.0);
    fflush(stderr);
}

static void draw_bytes(struct pf_progress *pg, double t)
{
    pg->last = t;
    double f = pg->total ? (double)pg->done / (double)pg->total : 1;
    char b[BYTES_CELLS + 1];
    bar(b, BYTES_CELLS, (int)(f * BYTES_CELLS), ' ');
    double el = t - pg->t0, eta = f > 0.001 ? el * (1 - f) / f : 0;
    fprintf(stderr, "\r[%s] %3.0f%% %.2f/%.2f GiB  %.0fs elapsed, %.0fs left ", b, f * 100,
            (double)pg->done / (1ull << 30), (double)pg->total / (1ull << 30), el, eta);
    fflush(stderr);
}

void pf_progress_start(struct pf_progress *pg, bool on, const char *fmt, ...)
{
    memset(pg, 0, sizeof *pg);
    pg->on = on;
    pg->shown = -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pg->label, sizeof pg->label, fmt, ap);
    va_end(ap);
    pg->lines = !isatty(STDERR_FILENO);
    pg->t0 = pg->last = pf_now();
    if (!pg->lines) pf_progress_update(pg, 0);
}

void pf_progress_update(struct pf_progress *pg, double frac)
{
    if (!pg || !pg->on) return;
    int pm = (int)(frac * 1000 + 0.5);
    if (pm < 0) pm = 0;
    if (pm > 1000) pm = 1000;
    if (pm == pg->shown) return;
    pg->shown = pm;
    if (pg->lines) line(pg, pm / 1000.0, pf_now(), false);
    else draw_frac(pg, pm);
}

void pf_progress_start_bytes(struct pf_progress *pg, bool on, uint64_t total)
{
    memset(pg, 0, sizeof *pg);
    pg->on = on;
    pg->bytes = true;
    pg->total = total;
    pg->shown = -1;
    pg->t0 = pg->last = pf_now();
    pg->lines = !isatty(STDERR_FILENO);
}

void pf_progress_bytes(struct pf_progress *pg, uint64_t done)
{
    if (!pg || !pg->on) return;
    pg->done = done;
    double t = pf_now();
    if (pg->lines) line(pg, pg->total ? (double)done / (double)pg->total : 1, t, false);
    else if (t - pg->last >= BYTES_INTERVAL) draw_bytes(pg, t);
}

void pf_progress_end(struct pf_progress *pg)
{
    if (!pg->on) return;
    if (pg->lines) {
        pg->done = pg->total;
        line(pg, 1, pf_now(), true);
        return;
    }
    if (pg->bytes) {
        pg->done = pg->total;
        draw_bytes(pg, pf_now());
    } else {
        draw_frac(pg, 1000);
    }
    fputc('\n', stderr);
}

void pf_progress_abort(struct pf_progress *pg)
{
    if (pg->on && !pg->lines) fputc('\n', stderr);
}
