/* Monotonic clock and peak RSS (core/clock.h), and their public names in pinfer.h. */
#include "core/clock.h"

#include "pinfer.h"

#include <inttypes.h>
#include <stdio.h>
#include <time.h>

double pf_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint64_t pf_peak_rss(void)
{
    FILE *fp = fopen("/proc/self/status", "r");
    if (!fp) return 0;
    char line[256];
    uint64_t kb = 0;
    while (fgets(line, sizeof line, fp))
        if (sscanf(line, "VmHWM: %" SCNu64, &kb) == 1) break;
    fclose(fp);
    return kb * 1024;
}

uint64_t pf_mem_available(void)
{
    FILE *fp = fopen("/proc/meminfo", "r");
    if (!fp) return 0;
    char line[256];
    uint64_t kb = 0;
    while (fgets(line, sizeof line, fp))
        if (sscanf(line, "MemAvailable: %" SCNu64, &kb) == 1) break;
    fclose(fp);
    return kb * 1024;
}

double pinfer_now(void) { return pf_now(); }
uint64_t pinfer_peak_rss(void) { return pf_peak_rss(); }
