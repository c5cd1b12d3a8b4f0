/* Temporal reuse of a unit's slots (reuse.h). */
#include "prepare/reuse.h"

#include "core/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

const uint32_t pf_reuse_windows[PF_REUSE_WINDOWS] = { 1,  2,  3,   4,   6,   8,   11,  16,  23,   32,   45,
                                                      64, 91, 128, 181, 256, 362, 512, 724, 1024, 1448, 2048 };

/* One slot's request steps r[0..m) (ascending) over a trace of n steps, window w: adds its
 * occupancy (steps t in [w - 1, n) with a request in (t - w, t], as a fraction of those steps),
 * its requests at t >= w and those among them whose previous request is at most w back. */
static void one_window(const int *r, int m, int n, int w, double *occ, uint64_t *req, uint64_t *hits)
{
    int64_t covered = 0, end = -1; /* union of [r_i, r_i + w - 1] clipped to [w - 1, n - 1] */
    for (int i = 0; i < m; i++) {
        int64_t a = r[i] > w - 1 ? r[i] : w - 1, b = (int64_t)r[i] + w - 1 < n - 1 ? (int64_t)r[i] + w - 1 : n - 1;
        if (a <= end) a = end + 1;
        if (a <= b) { covered += b - a + 1; end = b; }
        if (r[i] >= w) {
            (*req)++;
            if (i > 0 && r[i] - r[i - 1] <= w) (*hits)++;
        }
    }
    *occ += (double)covered / (double)(n - w + 1);
}

int pf_reuse_measure(const uint64_t *bits, int n_tok, const int32_t *perm, int n_ff, float *occ, float *hit)
{
    const size_t words = ((size_t)n_tok + 63) / 64;
    int *r = malloc((size_t)(n_tok > 0 ? n_tok : 1) * sizeof *r);
    if (!r) return pf_fail(PINFER_ENOMEM, "out of memory");
    for (int b = 0; b < PF_REUSE_BUCKETS; b++) {
        const int j0 = (int)((int64_t)b * n_ff / PF_REUSE_BUCKETS), j1 = (int)((int64_t)(b + 1) * n_ff / PF_REUSE_BUCKETS);
        double oc[PF_REUSE_WINDOWS] = { 0 };
        uint64_t req[PF_REUSE_WINDOWS] = { 0 }, hits[PF_REUSE_WINDOWS] = { 0 };
        for (int j = j0; j < j1; j++) {
            const uint64_t *row = bits + (size_t)perm[j] * words;
            int m = 0;
            for (size_t q = 0; q < words; q++)
                for (uint64_t x = row[q]; x; x &= x - 1) r[m++] = (int)(q * 64 + (size_t)__builtin_ctzll(x));
            for (int k = 0; k < PF_REUSE_WINDOWS && 4 * (int64_t)pf_reuse_windows[k] <= n_tok; k++)
                one_window(r, m, n_tok, (int)pf_reuse_windows[k], &oc[k], &req[k], &hits[k]);
        }
        for (int k = 0; k < PF_REUSE_WINDOWS; k++) {
            const size_t at = (size_t)b * PF_REUSE_WINDOWS + (size_t)k;
            const bool seen = 4 * (int64_t)pf_reuse_windows[k] <= n_tok;
            occ[at] = seen ? (float)oc[k] : -1.0f;
            hit[at] = !seen ? -1.0f : req[k] ? (float)((double)hits[k] / (double)req[k]) : 0.0f;
        }
    }
    free(r);
    return 0;
}
