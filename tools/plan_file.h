/* The planner's files (docs/planner.md), in JSON through jansson:
 *   MACHINE.json  what `pinfer probe` measured (plan/machine.h), cached per machine and disk in
 *                 $XDG_CACHE_HOME/pinfer (or ~/.cache/pinfer) as machine-<key>.json;
 *   PLAN.json     what `pinfer plan` chose and predicts; `--plan` reads the settings back. */
#ifndef PF_TOOLS_PLAN_FILE_H
#define PF_TOOLS_PLAN_FILE_H

#include "pinfer.h"
#include "plan/machine.h"
#include "plan/plan.h"

#include <stdbool.h>
#include <stddef.h>

/* The cache file of the machine identified in mc (cpu, kernel, disk): 0 and the path in buf
 * (its directory created), or -1 when no cache directory can be had. */
int machine_cache_path(const struct pf_machine *mc, char *buf, size_t cap);
/* Writes mc to path atomically. 0 or the exit code after printing the error. */
int machine_save(const char *cmd, const char *path, const struct pf_machine *mc);
/* Reads path into mc. 0, or the exit code after printing the error (missing file, not a
 * machine profile, a field out of range). */
int machine_load(const char *cmd, const char *path, struct pf_machine *mc);

/* What --plan applies, and the predictions `pinfer bench --plan` sets beside its figures. */
struct plan_file {
    uint64_t mem_budget;          /* 0: none */
    enum pinfer_sparse_mode sparse;
    float cache_hot;
    enum pinfer_io_backend io_backend;
    int threads, ctx_size, batch_size, io_depth; /* io_depth 0: absent (the default) */
    bool prefetch;
    double decode_tps, prefill_tps, hit_rate, storage_mb_per_token;
};
int plan_save(const char *cmd, const char *path, const char *model, const struct pf_machine *mc,
              const struct pf_plan_result *r);
int plan_load(const char *cmd, const char *path, struct plan_file *pf);

/* The machine profile for the disk holding file (NULL: the current directory): the cached one
 * unless refresh, else measured (and cached). 0 or the exit code after printing the error; the
 * profile's path into used. */
int probe_get(const char *cmd, const char *file, bool refresh, double io_secs, struct pf_machine *mc, char *used,
              size_t cap);
void probe_print(const struct pf_machine *mc);

#endif
