/* Wall-clock seconds for timings and progress: CLOCK_MONOTONIC, so a clock change does not
 * show as negative or huge durations. */
#ifndef PF_CORE_CLOCK_H
#define PF_CORE_CLOCK_H

/* Seconds since an arbitrary fixed point; only differences mean anything. */
double pf_now(void);

#endif
