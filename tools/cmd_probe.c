/* pinfer probe: measures this machine once for the planner (docs/planner.md; plan/machine.h):
 * memory bandwidth (streaming and scattered rows), kernel throughput for the weight types,
 * direct-I/O IOPS and throughput by request size and queue depth on the disk that holds FILE.
 * The result is cached per machine and disk (CPU model, kernel, device) and reused by pinfer
 * plan until --refresh. */
#include "args.h"
#include "cmds.h"
#include "plan_file.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *C = "probe";

/* The types measured by default: those of the files people have. */
static const int default_types[] = { PF_TYPE_Q4_0, PF_TYPE_Q8_0, PF_TYPE_F16, PF_TYPE_Q4_K, PF_TYPE_Q6_K };

static void usage(void)
{
    printf("usage: pinfer probe [-f FILE_ON_TARGET_DISK] [-o MACHINE.json] [--refresh] [--io-seconds S]\n"
           "  -f FILE         a file on the disk models are read from (read only; default: a 256 MiB\n"
           "                  temporary file in the current directory, deleted after)\n"
           "  -o FILE         also write the profile there\n"
           "  --refresh       measure again even if this machine and disk have a cached profile\n"
           "  --io-seconds S  time per storage figure (default 0.3; 64 figures)\n"
           "The profile is cached in $XDG_CACHE_HOME/pinfer (~/.cache/pinfer) per CPU, kernel and disk.\n");
}

void probe_print(const struct pf_machine *mc)
{
    printf("machine: %s, %d cores, kernel %s, disk %s\n", mc->cpu, mc->cores, mc->kernel, mc->disk);
    printf("\n| threads | streaming GB/s | scattered 2 KiB | 8 KiB | 32 KiB |\n| ---: | ---: | ---: | ---: | ---: |\n");
    for (int t = 0; t < mc->n_t; t++)
        printf("| %d | %.1f | %.1f | %.1f | %.1f |\n", t + 1, mc->stream_gbs[t], mc->scatter_gbs[t][1], mc->scatter_gbs[t][3],
               mc->scatter_gbs[t][5]);
    printf("\n| type | matvec GB/s per thread (in L2) | 64-token product GMAC/s per thread |\n| --- | ---: | ---: |\n");
    for (int ty = 0; ty < PF_TYPE_COUNT; ty++)
        if (mc->type_done[ty]) printf("| %s | %.1f | %.1f |\n", pf_type_name(ty), mc->matvec_gbs[ty], mc->gemm_gmacs[ty]);
    printf("\n| backend | request | IOPS depth 1 | 8 | 32 | 64 | GB/s at 64 |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (int be = 0; be < PF_MACH_BE; be++) {
        if (!mc->be_ok[be]) continue;
        for (int b = 0; b < PF_MACH_BS; b++)
            printf("| %s | %zu KiB | %.0f | %.0f | %.0f | %.0f | %.2f |\n", pf_mach_be[be], pf_mach_bs[b] >> 10,
                   mc->iops[be][b][0], mc->iops[be][b][1], mc->iops[be][b][2], mc->iops[be][b][3], mc->io_gbs[be][b][3]);
    }
}

int probe_get(const char *cmd, const char *file, bool refresh, double io_secs, struct pf_machine *mc, char *used, size_t cap)
{
    struct pf_machine id;
    memset(&id, 0, sizeof id);
    if (pf_machine_identify(&id, file ? file : ".")) return args_pinfer_error(cmd);
    char cache[4096];
    bool have_cache = machine_cache_path(&id, cache, sizeof cache) == 0;
    if (!refresh && have_cache && access(cache, R_OK) == 0) {
        if (machine_load(cmd, cache, mc) == 0 && !strcmp(mc->cpu, id.cpu) && !strcmp(mc->kernel, id.kernel) &&
            !strcmp(mc->disk, id.disk)) {
            if (used) snprintf(used, cap, "%s", cache);
            return 0;
        }
        fprintf(stderr, "pinfer %s: the cached profile %s does not fit: measuring again\n", cmd, cache);
    }
    const struct pf_probe_params pp = {
        .file = file, .dir = ".", .types = default_types, .n_types = (int)(sizeof default_types / sizeof *default_types),
        .io_secs = io_secs, .progress = true,
    };
    fprintf(stderr, "pinfer %s: measuring this machine (about a minute)\n", cmd);
    if (pf_machine_probe(mc, &pp)) return args_pinfer_error(cmd);
    if (have_cache) {
        int rc = machine_save(cmd, cache, mc);
        if (rc) return rc;
        if (used) snprintf(used, cap, "%s", cache);
    } else if (used) {
        snprintf(used, cap, "(not cached: no cache directory)");
    }
    return 0;
}

int cmd_probe(int argc, char **argv)
{
    const char *file = NULL, *out = NULL;
    bool refresh = false;
    float secs = 0.3f;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); return 0; }
        else if (!strcmp(a, "-f")) { ARGS_TAKE(); file = v; }
        else if (!strcmp(a, "-o")) { ARGS_TAKE(); out = v; }
        else if (!strcmp(a, "--refresh")) refresh = true;
        else if (!strcmp(a, "--io-seconds")) { ARGS_TAKE(); if (!args_float(C, a, v, 0.01, 60, &secs)) return 2; }
        else return args_usage_error(C, "unknown flag '%s'", a);
    }
    if (file && access(file, R_OK) != 0) return args_error(C, "-f %s: cannot read it", file);
    struct pf_machine mc;
    char used[4096];
    int rc = probe_get(C, file, refresh, secs, &mc, used, sizeof used);
    if (rc) return rc;
    probe_print(&mc);
    printf("\nprofile: %s\n", used);
    if (out && (rc = machine_save(C, out, &mc))) return rc;
    return 0;
}
