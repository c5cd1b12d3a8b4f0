/* The neuron cache's eviction law (pf_cache_hazard, src/cache/cache.c) against closed forms.
 *
 * If the gaps between requests for a slot are geometric with parameter p (a slot asked for
 * independently at each token with probability p), the fraction of requests whose previous
 * one is at most w tokens back is G(w) = 1 - (1 - p)^w, and the chance that a slot last asked
 * for a tokens ago is asked for at the next token is p whatever a (no memory). Persistent
 * requests (a mixture of a fast and a slow geometric law) give a hazard that falls with age.
 * The law is fed as prepare stores it: per bucket, G at the windows of prepare/reuse.c, -1
 * where not measured. */
#include "cache/cache.h"
#include "prepare/reuse.h"
#include "testutil.h"

#include <math.h>
#include <string.h>

static float haz[PF_CACHE_BUCKETS][PF_CACHE_AGES];

int main(void)
{
    double win[PF_REUSE_WINDOWS];
    for (int k = 0; k < PF_REUSE_WINDOWS; k++) win[k] = pf_reuse_windows[k];
    CHECK(win[0] == 1 && win[1] == 2 && win[2] == 3 && win[3] == 4);
    const int last = 13; /* windows 0..13 measured (up to 128 tokens), the rest -1 */
    CHECK(win[last] == 128);
    CHECK(PF_CACHE_BUCKETS == PF_REUSE_BUCKETS);

    /* bucket 0: geometric p = 0.3; 1: p = 0.05; 2: every request follows the previous token's
       (G = 1 from w = 1); 3: persistent, 0.6 geometric(0.5) + 0.4 geometric(0.01) */
    const double p[2] = { 0.3, 0.05 };
    float hit[4 * PF_REUSE_WINDOWS];
    for (int k = 0; k < PF_REUSE_WINDOWS; k++) {
        const bool m = k <= last;
        for (int b = 0; b < 2; b++) hit[b * PF_REUSE_WINDOWS + k] = m ? (float)(1 - pow(1 - p[b], win[k])) : -1.0f;
        hit[2 * PF_REUSE_WINDOWS + k] = m ? 1.0f : -1.0f;
        hit[3 * PF_REUSE_WINDOWS + k] = m ? (float)(0.6 * (1 - pow(0.5, win[k])) + 0.4 * (1 - pow(0.99, win[k]))) : -1.0f;
    }
    memset(haz, 0x7f, sizeof haz); /* every entry must be written */
    pf_cache_hazard(win, PF_REUSE_WINDOWS, hit, 4, haz);

    /* geometric: p at every measured age (log survival is interpolated, exact for this law) while
       the survival 1 - G is well above the float resolution of G, 0 once G is flat past the
       last window */
    for (int b = 0; b < 2; b++) {
        for (int a = 0; a < 128 && pow(1 - p[b], a + 1) > 1e-3; a++)
            CHECKF(fabs(haz[b][a] - p[b]) < (a <= 3 ? 1e-5 : 0.02 * p[b]), "bucket %d age %d: %g, expected %g", b, a,
                   (double)haz[b][a], p[b]);
        CHECKF(haz[b][128] == 0, "bucket %d: hazard %g past the last measured window", b, (double)haz[b][128]);
    }
    /* the likelier slot is the likelier while its survival is measurable */
    for (int a = 0; a < 16; a++) CHECKF(haz[0][a] > haz[1][a], "age %d: %g <= %g", a, (double)haz[0][a], (double)haz[1][a]);
    /* always asked for again at the next token, else never */
    CHECKF(haz[2][0] == 1, "gap-1 bucket, age 0: %g", (double)haz[2][0]);
    for (int a = 1; a < PF_CACHE_AGES; a++) CHECKF(haz[2][a] == 0, "gap-1 bucket, age %d: %g", a, (double)haz[2][a]);
    /* persistent: hazard at age 0 is the mixture's, 0.6 * 0.5 + 0.4 * 0.01, and it falls with age
       towards the slow law's 0.01 */
    CHECKF(fabs(haz[3][0] - 0.304) < 1e-5, "persistent, age 0: %g", (double)haz[3][0]);
    CHECKF(haz[3][1] < haz[3][0] && haz[3][3] < haz[3][1], "persistent: %g %g %g", (double)haz[3][0], (double)haz[3][1],
           (double)haz[3][3]);
    CHECKF(fabs(haz[3][100] - 0.01) < 0.004, "persistent, age 100: %g", (double)haz[3][100]);
    /* buckets without a law: 0 (least recently used decides) */
    for (int b = 4; b < PF_CACHE_BUCKETS; b++)
        for (int a = 0; a < PF_CACHE_AGES; a++) CHECK(haz[b][a] == 0);
    printf("eviction law: geometric 0.3 / 0.05 -> %.3f / %.3f at age 0, %.3f / %.3f at age 50; persistent %.3f at age 0, "
           "%.3f at 100\n", (double)haz[0][0], (double)haz[1][0], (double)haz[0][50], (double)haz[1][50], (double)haz[3][0],
           (double)haz[3][100]);
    pf_cache_hazard(win, PF_REUSE_WINDOWS, hit, 0, haz);
    for (int a = 0; a < PF_CACHE_AGES; a++) CHECK(haz[0][a] == 0);
    TEST_DONE();
}
