/* The machine as the planner sees it (docs/planner.md): what `pinfer probe` measures once per
 * machine and disk, and the look-ups the cost model makes in it.
 *
 *   memory    streaming reads by 1..cores threads; scattered rows of 1-32 KiB (a sparse FFN
 *             step's access) by the same thread counts;
 *   kernels   per weight type: a dense matrix-vector product over an L2-resident matrix (the
 *             compute roof of decode, in weight GB/s per thread) and a 64-token product (the
 *             compute roof of prefill, in multiply-adds per second per thread);
 *   storage   direct reads of the disk that holds the file: IOPS and GB/s per backend (io_uring,
 *             pread pool), request size (4 KiB .. 1 MiB) and queue depth (1 .. 64).
 *
 * Figures between the measured points are interpolated (log-linear in size and depth). */
#ifndef PF_PLAN_MACHINE_H
#define PF_PLAN_MACHINE_H

#include "tensor/types.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PF_MACH_MAX_T 8   /* thread counts measured: 1 .. min(cores, 8) */
#define PF_MACH_ROWS 6    /* scattered row sizes: 1, 2, 4, 8, 16, 32 KiB */
#define PF_MACH_BS 8      /* request sizes: 4, 8, 16, 32, 64, 128, 256, 1024 KiB */
#define PF_MACH_QD 4      /* queue depths: 1, 8, 32, 64 */
#define PF_MACH_BE 2      /* backends: uring, pread */

extern const size_t pf_mach_rows[PF_MACH_ROWS];
extern const size_t pf_mach_bs[PF_MACH_BS];
extern const int pf_mach_qd[PF_MACH_QD];
extern const char *const pf_mach_be[PF_MACH_BE];

struct pf_machine {
    char cpu[128], kernel[96], disk[96]; /* the cache key: CPU model, kernel release, st_dev of the disk */
    int cores, n_t;                      /* n_t thread counts measured: 1..n_t */
    double stream_gbs[PF_MACH_MAX_T];    /* [t-1] */
    double scatter_gbs[PF_MACH_MAX_T][PF_MACH_ROWS];
    bool type_done[PF_TYPE_COUNT];       /* the kernel figures below were measured for this type */
    double matvec_gbs[PF_TYPE_COUNT];    /* one thread, L2-resident weights: weight bytes/s / 1e9 */
    double gemm_gmacs[PF_TYPE_COUNT];    /* one thread, 64 tokens: multiply-adds/s / 1e9 */
    bool be_ok[PF_MACH_BE];
    double iops[PF_MACH_BE][PF_MACH_BS][PF_MACH_QD];
    double io_gbs[PF_MACH_BE][PF_MACH_BS][PF_MACH_QD];
};

struct pf_probe_params {
    const char *file;      /* a file on the disk to measure (read only); NULL: a temporary one in dir */
    const char *dir;       /* where the temporary file goes (default "."); it is deleted after */
    const int *types;      /* weight types whose kernels to measure (n_types), e.g. the model's */
    int n_types;
    double io_secs;        /* per storage figure (default 0.3) */
    bool progress;         /* a progress line on stderr */
};

/* The cache key of this machine for the disk holding path (CPU, kernel, device). */
int pf_machine_identify(struct pf_machine *mc, const char *path);
/* Measures this machine (about a minute). 0 or a negative code with a message. */
int pf_machine_probe(struct pf_machine *mc, const struct pf_probe_params *p);

/* Look-ups (threads clamped to what was measured; sizes and depths interpolated). */
double pf_machine_stream(const struct pf_machine *mc, int threads);
double pf_machine_scatter(const struct pf_machine *mc, int threads, size_t row_bytes);
/* The better backend's figures for reads of bs bytes at queue depth qd; *be its index. */
double pf_machine_iops(const struct pf_machine *mc, int be, size_t bs, int qd);
int pf_machine_best_backend(const struct pf_machine *mc, size_t bs, int qd);

#endif
