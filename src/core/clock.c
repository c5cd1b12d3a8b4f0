/* Monotonic clock, peak RSS and available memory (core/clock.h), and their public names in pinfer.h. */
#include "core/clock.h"

#include "pinfer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double pf_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The value in kB of the line "<key>: N kB" of a /proc file, in bytes; 0 if absent. */
static uint64_t proc_kb(const char *path, const char *key)
{
    FILE *fp = fopen(path, "r");
    if (!fp) return 0;
    char line[256];
    const size_t n = strlen(key);
    uint64_t kb = 0;
    while (fgets(line, sizeof line, fp))
        if (!strncmp(line, key, n) && line[n] == ':') {
            kb = strtoull(line + n + 1, NULL, 10);
            break;
        }
    fclose(fp);
    return kb * 1024;
}

uint64_t pf_peak_rss(void) { return proc_kb("/proc/self/status", "VmHWM"); }
uint64_t pf_mem_available(void) { return proc_kb("/proc/meminfo", "MemAvailable"); }

double pinfer_now(void) { return pf_now(); }
uint64_t pinfer_peak_rss(void) { return pf_peak_rss(); }
