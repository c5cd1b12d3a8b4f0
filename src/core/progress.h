/* A one-line progress bar on stderr, redrawn in place with '\r'. The caller decides whether to
 * draw at all (a terminal, a --progress flag); with on == false every call returns at once.
 *
 * Two forms:
 *   fraction  "<label>[################........................]  40.0%"
 *             40 cells, redrawn when the figure (in tenths of a percent) changes;
 *   bytes     "[############                  ]  40% 1.44/3.61 GiB  6s elapsed, 9s left "
 *             30 cells, redrawn at most every 0.2 s (the times move even when the bytes do
 *             not), for outputs of a known size.
 * pinfer prepare draws its phases with the first, pinfer synth its file with the second. When
 * stderr is not a terminal (a log), either prints a plain line every 5 seconds and at the end
 * ("<label> 40.0%, 12 s elapsed, ~18 s left") instead. */
#ifndef PF_CORE_PROGRESS_H
#define PF_CORE_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

struct pf_progress {
    bool on;
    bool bytes;         /* the bytes form */
    char label[64];     /* fraction form: printed before the bar */
    uint64_t total;     /* bytes form: the 100% mark */
    uint64_t done;      /* bytes form: so far */
    int shown;          /* per mille last drawn; -1: nothing yet */
    double t0, last;    /* start, last draw (pf_now seconds) */
    bool lines;         /* stderr is not a terminal: a line every few seconds, no bar */
};

/* Fraction form: draws 0% at once. The label is a printf format. */
void pf_progress_start(struct pf_progress *pg, bool on, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* frac in [0, 1] (clamped). pg may be NULL. */
void pf_progress_update(struct pf_progress *pg, double frac);

/* Bytes form: nothing is drawn until the first pf_progress_bytes. */
void pf_progress_start_bytes(struct pf_progress *pg, bool on, uint64_t total);
/* done bytes of total so far. pg may be NULL. */
void pf_progress_bytes(struct pf_progress *pg, uint64_t done);

/* Either form: draws 100% and ends the line. */
void pf_progress_end(struct pf_progress *pg);
/* Either form: ends the line where the bar stands (after a failure). */
void pf_progress_abort(struct pf_progress *pg);

#endif
