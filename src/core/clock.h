/* Time and memory of this process: a monotonic clock for the timers of the decode step and
 * the benchmarks, and the peak resident set for the budget reports. */
#ifndef PF_CORE_CLOCK_H
#define PF_CORE_CLOCK_H

#include <stdint.h>

/* Seconds since an arbitrary start (CLOCK_MONOTONIC). */
double pf_now(void);
/* Peak resident set size of this process in bytes (VmHWM), 0 if unknown. */
uint64_t pf_peak_rss(void);
/* Memory the machine can give without swapping (MemAvailable: free pages plus reclaimable
 * page cache) in bytes, 0 if unknown. */
uint64_t pf_mem_available(void);

#endif
