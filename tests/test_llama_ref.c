/* Teacher-forced logits against llama.cpp's, on small files whose reference logits llama.cpp
 * computed (tests/data/llama-ref/README.md: how each file and its logits were made). For every
 * <name>.gguf there is <name>.logits.txt (one line per position: pos, input id, argmax id, then
 * n_vocab logits); pinfer runs the same ids as one batch and as single-token steps.
 *
 * With the reference kernels (PINFER_KERNELS=ref, the arithmetic specification) every logit must
 * agree within 2e-2 (issue 11's bar), and the argmax wherever llama.cpp's top two are apart by
 * more than that. The SIMD kernels sum in another order (tested against the reference per
 * kernel in test_kernels, test_kquants, test_quants_extra); on these tiny, coarse models a
 * difference in the last bit can move one activation across a Q8 rounding boundary, which moves
 * that position's logits by up to ~0.1 (seen on the Q2_K file: one or two positions of 24). So
 * with the machine's kernels a position may exceed 2e-2 only as such a flip: at most n/8 of the
 * positions, each within FLIP, and the argmax must still agree wherever the margin exceeds FLIP.
 * The test runs itself once more with PINFER_KERNELS=ref (the strict pass) unless it is set. */
#include "testutil.h"

#include "pinfer.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIR_REL "tests/data/llama-ref"
#define TOL 2e-2f
#define FLIP 0.25f
#define MAX_POS 256

struct ref {
    int n_vocab, n;
    int32_t ids[MAX_POS];
    float *logits; /* n x n_vocab */
};

static int read_ref(const char *path, struct ref *r)
{
    FILE *fp = fopen(path, "r");
    if (!fp) return -1;
    memset(r, 0, sizeof *r);
    if (fscanf(fp, "# n_vocab=%d", &r->n_vocab) != 1 || r->n_vocab <= 0 || r->n_vocab > 1 << 20) { fclose(fp); return -1; }
    int c;
    while ((c = fgetc(fp)) != '\n' && c != EOF) {}
    r->logits = malloc(sizeof(float) * (size_t)r->n_vocab * MAX_POS);
    int pos, id, am;
    while (r->logits && r->n < MAX_POS && fscanf(fp, "%d %d %d", &pos, &id, &am) == 3) {
        if (pos != r->n) break;
        r->ids[r->n] = id;
        float *row = r->logits + (size_t)r->n * r->n_vocab;
        int k = 0;
        while (k < r->n_vocab && fscanf(fp, "%f", &row[k]) == 1) k++;
        if (k != r->n_vocab) break;
        r->n++;
    }
    fclose(fp);
    return r->n > 0 ? 0 : -1;
}

static int argmax(const float *x, int n)
{
    int a = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[a]) a = i;
    return a;
}

static bool strict;

/* max |pinfer - llama.cpp| over a row; counts argmax disagreements where llama.cpp's margin is clear */
static float compare_row(const float *ours, const float *ref, int nv, int *bad_argmax)
{
    const float clear = strict ? TOL : FLIP;
    float m = 0;
    for (int k = 0; k < nv; k++) {
        float d = fabsf(ours[k] - ref[k]);
        if (!(d <= m)) m = d; /* NaN propagates */
    }
    int a = argmax(ref, nv), b = argmax(ours, nv);
    float second = -INFINITY;
    for (int k = 0; k < nv; k++) if (k != a && ref[k] > second) second = ref[k];
    if (a != b && ref[a] - second > clear) ++*bad_argmax;
    return m;
}

static void check_file(const char *dir, const char *name)
{
    char mpath[1024], rpath[1024];
    snprintf(mpath, sizeof mpath, "%.200s/%.200s.gguf", dir, name);
    snprintf(rpath, sizeof rpath, "%.200s/%.200s.logits.txt", dir, name);
    struct ref r;
    if (read_ref(rpath, &r)) { CHECKF(0, "%s: cannot read the reference", rpath); free(r.logits); return; }
    struct pinfer_model *m = NULL;
    struct pinfer_ctx *c = NULL;
    struct pinfer_model_params mp = pinfer_model_default_params();
    int rc = pinfer_model_load(&m, mpath, &mp);
    CHECKF(rc == 0, "%s: %s", mpath, pinfer_last_error());
    struct pinfer_ctx_params cp = pinfer_ctx_default_params();
    cp.n_ctx = r.n < 64 ? 64 : r.n;
    cp.n_batch = r.n;
    cp.n_threads = 2;
    if (!rc) rc = pinfer_ctx_new(&c, m, &cp);
    CHECKF(rc == 0 && pinfer_n_vocab(m) == r.n_vocab, "%s: context: %s", name, pinfer_last_error());
    if (!rc && pinfer_n_vocab(m) == r.n_vocab) {
        float worst_b = 0, worst_s = 0;
        int bad_b = 0, bad_s = 0, flips_b = 0, flips_s = 0;
        rc = pinfer_decode(c, r.ids, r.n, 0, true);
        CHECKF(rc == 0, "%s: batch: %s", name, pinfer_last_error());
        for (int i = 0; !rc && i < r.n; i++) {
            float d = compare_row(pinfer_ctx_logits(c, i), r.logits + (size_t)i * r.n_vocab, r.n_vocab, &bad_b);
            if (!(d <= worst_b)) worst_b = d;
            flips_b += !(d <= TOL);
        }
        for (int i = 0; !rc && i < r.n; i++) { /* the same ids one at a time (decode kernels) */
            rc = pinfer_decode(c, &r.ids[i], 1, i, false);
            if (rc) break;
            float d = compare_row(pinfer_ctx_logits(c, -1), r.logits + (size_t)i * r.n_vocab, r.n_vocab, &bad_s);
            if (!(d <= worst_s)) worst_s = d;
            flips_s += !(d <= TOL);
        }
        CHECKF(rc == 0, "%s: steps: %s", name, pinfer_last_error());
        const int max_flips = strict ? 0 : (r.n + 7) / 8;
        const float bound = strict ? TOL : FLIP;
        CHECKF(worst_b <= bound && worst_s <= bound && flips_b <= max_flips && flips_s <= max_flips && bad_b == 0 && bad_s == 0,
               "%s (%s kernels): max |dlogit| vs llama.cpp %.4g (batch), %.4g (steps); positions beyond %g: %d, %d (at most %d); "
               "argmax differs at %d, %d clear positions", name, strict ? "reference" : "this machine's", (double)worst_b,
               (double)worst_s, (double)TOL, flips_b, flips_s, max_flips, bad_b, bad_s);
        printf("%-20s %-9s %3d positions: max |dlogit| vs llama.cpp %.2e batch, %.2e steps; beyond 2e-2 (Q8 flips): %d, %d\n",
               name, strict ? "ref" : "machine", r.n, (double)worst_b, (double)worst_s, flips_b, flips_s);
    }
    pinfer_ctx_free(c);
    pinfer_model_free(m);
    free(r.logits);
}

int main(int argc, char **argv)
{
    (void)argc;
    const char *k = getenv("PINFER_KERNELS");
    strict = k && !strcmp(k, "ref");
    if (!k || !*k) { /* the strict pass: this program again with the reference kernels */
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "PINFER_KERNELS=ref '%.4000s'", argv[0]);
        int st = system(cmd);
        CHECKF(st == 0, "the pass with the reference kernels failed (status %d)", st);
    }
    DIR *d = opendir(DIR_REL);
    if (!d) { CHECKF(0, "%s is missing (run from the repository root)", DIR_REL); TEST_DONE(); }
    char names[64][256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 64) {
        size_t l = strlen(e->d_name);
        if (l > 5 && l < 250 && !strcmp(e->d_name + l - 5, ".gguf")) {
            memcpy(names[n], e->d_name, l - 5);
            names[n++][l - 5] = 0;
        }
    }
    closedir(d);
    CHECKF(n > 0, "no models in %s", DIR_REL);
    for (int i = 0; i < n; i++) check_file(DIR_REL, names[i]);
    TEST_DONE();
}
