/* pinfer prepare: turns a dense GGUF model into a prepared one (docs/sparse-format.md).
 *
 *   1. checks the request before any expensive work (output directory, input != output);
 *   2. loads the model and profiles it over calibration tokens (prepare_calib.c);
 *   3. per unit (a layer, or an expert of a mixture's layer, on the tokens routed to it): orders
 *      neurons hottest first; for the ReLU family trains a predictor (predictor.c), choosing its
 *      rank unless one was given, or imports PowerInfer's;
 *   4. writes the file (prepare_write.c).
 *
 * Rank choice (--rank auto), per layer: candidates 32, 64, 128, 256, ... up to a cap; each is
 * initialised from the weights (not fine-tuned) and given the threshold that reaches the recall
 * target on held-out tokens, and its cost per decode token is estimated as predictor bytes +
 * predicted fraction x bundle bytes. The cheapest wins; the search stops at the first rank that
 * costs more than the best so far (a larger predictor that does not cut enough FFN reads is not
 * worth its own reads). Only the winner is fine-tuned: with a few hundred calibration tokens
 * fine-tuning rarely beats the initialisation (predictor.c), so ranking candidates on it cost
 * most of prepare's time and changed no choice (bench/RESULTS.md "Prepare time"). The cap
 * keeps predictor bytes within 10% of what a decode token touches in that layer at the measured
 * activity (its share of attention, norms and head, its predictor, its active bundles): the
 * issue's budget for a 7B dReLU model at 90% sparsity. */
#include "prepare/prepare_internal.h"

#include "core/error.h"
#include "core/threadpool.h"
#include "gguf/gguf.h"
#include "prepare/lowrank.h"
#include "tensor/kernels.h"
#include "tensor/types.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PRED_BUDGET 0.10     /* predictor share of the bytes a token touches */
#define MIN_CLUSTER 16
/* Rows a unit's predictor needs: training rows (predictor.c's minimum) and held-out rows to set
 * its threshold on. A mixture's expert sees only the tokens routed to it. */
#define PF_MIN_UNIT_TRAIN 16
#define PF_MIN_UNIT_HELDOUT 8
#define PHASE "pinfer prepare: %-11s " /* the progress bar's label */

struct pinfer_prepare_params pinfer_prepare_default_params(void)
{
    struct pinfer_prepare_params p;
    memset(&p, 0, sizeof p);
    p.n_tokens = 512;
    p.seed = 1;
    p.recall_target = 0.99f;
    return p;
}

void pinfer_prepare_result_free(struct pinfer_prepare_result *r)
{
    if (!r) return;
    free(r->layers);
    free(r);
}

/* ==== Checks ==== */

static int check_paths(const char *in, const char *out)
{
    char *dup = strdup(out);
    if (!dup) return pf_fail(PINFER_ENOMEM, "out of memory");
    const char *dir = dirname(dup);
    struct stat st;
    int rc = 0;
    if (stat(dir, &st) != 0)
        rc = pf_fail(PINFER_EIO, "cannot write %s: directory %s: %s", out, dir, strerror(errno));
    else if (!S_ISDIR(st.st_mode))
        rc = pf_fail(PINFER_EIO, "cannot write %s: %s is not a directory", out, dir);
    else if (access(dir, W_OK) != 0)
        rc = pf_fail(PINFER_EIO, "cannot write %s: directory %s is not writable%s", out, dir,
                     errno == EROFS ? " (a read-only file system)" : "");
    free(dup);
    if (rc) return rc;
    struct stat si, so;
    if (stat(in, &si) == 0 && stat(out, &so) == 0 && si.st_dev == so.st_dev && si.st_ino == so.st_ino)
        return pf_fail(PINFER_EINVAL, "the output %s is the input file; write the prepared model elsewhere", out);
    return 0;
}

/* What the loader would refuse less clearly, or accept: another architecture (the loader reads
 * the vocabulary first), a file that is already prepared (it would fail on a missing ffn_gate). */
static int check_input(const char *in)
{
    struct gguf_file *f = NULL;
    int rc = gguf_open(&f, in);
    if (rc) return rc;
    char arch[64] = "";
    rc = gguf_get_str(f, "general.architecture", arch, sizeof arch);
    if (rc == 1) rc = pf_fail(PINFER_EFORMAT, "%s has no general.architecture key: not a model", in);
    else if (rc == 0 && strcmp(arch, "llama") != 0)
        rc = pf_fail(PINFER_EUNSUPPORTED, "%s: architecture '%s' is not supported (prepare reads llama-architecture models)", in, arch);
    else if (rc == 0 && gguf_find(f, "pinfer.prepared"))
        rc = pf_fail(PINFER_EINVAL, "%s is already a prepared model", in);
    gguf_close(f);
    return rc;
}

static int gcd(int a, int b)
{
    while (b) { int t = a % b; a = b; b = t; }
    return a;
}

/* Neurons whose slots of `slot` bytes fill whole 4 KiB pages (a power of two). */
static int page_unit(size_t slot)
{
    int rem = (int)(slot % PF_PREPARE_ALIGN);
    return PF_PREPARE_ALIGN / gcd(rem ? rem : PF_PREPARE_ALIGN, PF_PREPARE_ALIGN);
}

/* Neurons per cluster: a multiple of the smallest count whose slots fill whole 4 KiB pages in
 * every layer (layers may differ in slot size; each count is a power of two, so the largest is
 * a multiple of the others), and at most n_ff (a layer narrower than that count is one cluster,
 * aligned as the tensor is). */
static int cluster_size(const struct pf_prep *P, int requested, int *out)
{
    int unit = 1, n_ff = P->n_ff;
    size_t slot = P->layers[0].lay.slot_size;
    for (int l = 0; l < P->n_units; l++)
        if (page_unit(P->layers[l].lay.slot_size) > unit) {
            unit = page_unit(P->layers[l].lay.slot_size);
            slot = P->layers[l].lay.slot_size;
        }
    if (requested > 0) {
        if (requested > n_ff)
            return pf_fail(PINFER_EINVAL, "cluster size %d exceeds the %d neurons of a layer", requested, n_ff);
        if (requested % unit && requested != n_ff)
            return pf_fail(PINFER_EINVAL, "cluster size %d: slots of %zu bytes fill whole 4 KiB pages only in multiples of %d neurons",
                           requested, slot, unit);
        *out = requested;
        return 0;
    }
    int k = (MIN_CLUSTER + unit - 1) / unit * unit;
    *out = k < n_ff ? k : n_ff;
    return 0;
}

/* ==== Per-layer work ==== */

struct okey { uint32_t count; double abs; int32_t idx; };

static int cmp_okey(const void *a, const void *b)
{
    const struct okey *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    if (x->abs != y->abs) return x->abs > y->abs ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* Hottest first: by count of tokens on, then mean |act|, then index (a total order, so the
 * permutation is reproducible). Frequencies over the unit's N rows (a mixture's expert: the
 * tokens routed to it). */
static int order_layer(struct pf_prep_layer *L, const struct pf_calib_layer *C, int F)
{
    const double N = C->n_rows > 0 ? C->n_rows : 1;
    struct okey *k = malloc((size_t)F * sizeof *k);
    L->perm = malloc((size_t)F * sizeof *L->perm);
    L->freq = malloc((size_t)F * sizeof *L->freq);
    L->act_mean = malloc((size_t)F * sizeof *L->act_mean);
    if (!k || !L->perm || !L->freq || !L->act_mean) { free(k); return pf_fail(PINFER_ENOMEM, "out of memory"); }
    for (int i = 0; i < F; i++) k[i] = (struct okey){ C->count[i], C->abs_sum[i], i };
    qsort(k, (size_t)F, sizeof *k, cmp_okey);
    for (int j = 0; j < F; j++) {
        L->perm[j] = k[j].idx;
        L->freq[j] = (float)((double)k[j].count / N);
        L->act_mean[j] = (float)(k[j].abs / N);
    }
    free(k);
    return 0;
}

/* Co-activation placement (--placement coact; docs/sparse-format.md, "Placement"), after
 * Ripple (arXiv 2410.19274): neurons that fire on the same calibration tokens are stored next
 * to each other, so the misses of one decode step form longer runs and the neuron cache reads
 * them in fewer requests. The hotness order is kept at the granularity of buckets of
 * PLACE_BUCKET slots (a multiple of 64, as the runtime's pinned prefixes are), so the slots a
 * budget pins are still the hottest up to a bucket; inside a bucket a greedy chain starts at its
 * hottest neuron and appends, each time, the unplaced neuron that fired together with the last
 * one on the most tokens (ties: the hotter). Deterministic. */
#define PLACE_BUCKET 512

static int place_coact(struct pf_prep_layer *L, const struct pf_calib *c, int l, int F)
{
    const struct pf_calib_layer *C = &c->layers[l];
    if (!C->mask || C->n_rows == 0) return 0; /* SiLU family: no masks, the hotness order stays */
    const int N = C->n_rows, W = (N + 63) / 64;
    uint64_t *bits = calloc((size_t)F * (size_t)W, sizeof *bits);
    int32_t *perm = malloc((size_t)F * sizeof *perm);
    float *freq = malloc((size_t)F * sizeof *freq), *am = malloc((size_t)F * sizeof *am);
    int *pos = malloc((size_t)F * sizeof *pos);
    char *done = calloc(PLACE_BUCKET, 1);
    if (!bits || !perm || !freq || !am || !pos || !done) {
        free(bits); free(perm); free(freq); free(am); free(pos); free(done);
        return pf_fail(PINFER_ENOMEM, "out of memory");
    }
    const struct pf_pred_data d = pf_calib_data(c, l);
    for (int t = 0; t < N; t++)
        for (int i = 0; i < F; i++)
            if (pf_pred_bit(&d, t, i)) bits[(size_t)i * W + (size_t)(t >> 6)] |= 1ull << (t & 63);
    for (int b0 = 0; b0 < F; b0 += PLACE_BUCKET) {
        const int n = F - b0 < PLACE_BUCKET ? F - b0 : PLACE_BUCKET;
        memset(done, 0, (size_t)n);
        int cur = 0; /* position in the bucket, hotness order */
        for (int k = 0; k < n; k++) {
            done[cur] = 1;
            pos[b0 + k] = b0 + cur;
            const uint64_t *a = bits + (size_t)L->perm[b0 + cur] * W;
            int best = -1, best_n = -1;
            for (int j = 0; j < n; j++) {
                if (done[j]) continue;
                const uint64_t *o = bits + (size_t)L->perm[b0 + j] * W;
                int m = 0;
                for (int w = 0; w < W; w++) m += __builtin_popcountll(a[w] & o[w]);
                if (m > best_n) { best_n = m; best = j; }
            }
            cur = best;
        }
    }
    for (int j = 0; j < F; j++) {
        perm[j] = L->perm[pos[j]];
        freq[j] = L->freq[pos[j]];
        am[j] = L->act_mean[pos[j]];
    }
    memcpy(L->perm, perm, (size_t)F * sizeof *perm);
    memcpy(L->freq, freq, (size_t)F * sizeof *freq);
    memcpy(L->act_mean, am, (size_t)F * sizeof *am);
    free(bits); free(perm); free(freq); free(am); free(pos); free(done);
    return 0;
}

/* L->pred_freq in slot order: how often the layer's predictor selects each slot over d's tokens
 * (the statistics run: pinfer.bundle.N.pred_freq), and how soon it selects a slot again
 * (L->reuse_occ, reuse_hit: prepare/reuse.h), for the planner. */
static int select_freq(struct pf_prep_layer *L, const struct pf_pred_data *d, int F, struct pf_pool *pool)
{
    const size_t words = ((size_t)d->n_tok + 63) / 64, nr = (size_t)PF_REUSE_BUCKETS * PF_REUSE_WINDOWS;
    float *orig = malloc((size_t)F * sizeof *orig);
    uint64_t *bits = malloc((size_t)F * words * sizeof *bits + 1);
    L->pred_freq = malloc((size_t)F * sizeof *L->pred_freq);
    L->reuse_occ = malloc(nr * sizeof *L->reuse_occ);
    L->reuse_hit = malloc(nr * sizeof *L->reuse_hit);
    if (!orig || !bits || !L->pred_freq || !L->reuse_occ || !L->reuse_hit) {
        free(orig); free(bits);
        return pf_fail(PINFER_ENOMEM, "out of memory");
    }
    int rc = pf_pred_select_freq(&L->pred, d, pool, orig, bits);
    if (!rc)
        for (int j = 0; j < F; j++) L->pred_freq[j] = orig[L->perm[j]];
    if (!rc) rc = pf_reuse_measure(bits, d->n_tok, L->perm, F, L->reuse_occ, L->reuse_hit);
    free(orig);
    free(bits);
    return rc;
}

/* Fraction of (row, neuron) pairs of unit u that were on while calibrating. */
static double active_frac(const struct pf_calib *c, int u)
{
    uint64_t on = 0;
    for (int i = 0; i < c->n_ff; i++) on += c->layers[u].count[i];
    return c->layers[u].n_rows ? (double)on / ((double)c->layers[u].n_rows * c->n_ff) : 0;
}

void pf_prep_unit_weights(const struct pf_prep *P, int u, const struct pf_weight **g, const struct pf_weight **up,
                          const struct pf_weight **d)
{
    const struct pf_layer *L = &P->m->layers[pf_prep_layer_of(P, u)];
    const int e = pf_prep_expert_of(P, u);
    *g = e < 0 ? &L->ffn_gate : &L->exp[e].gate;
    *up = e < 0 ? &L->ffn_up : &L->exp[e].up;
    *d = e < 0 ? &L->ffn_down : &L->exp[e].down;
}

/* "layer L" or "layer L expert E", for messages. */
static const char *unit_name(const struct pf_prep *P, int u, char *buf, size_t n)
{
    pf_unit_name(buf, n, pf_prep_layer_of(P, u), pf_prep_expert_of(P, u));
    return buf;
}

/* PowerInfer's predictor of layer l, copied from the input file; threshold 0 (its logit > 0). */
static int import_predictor(struct pf_predictor *p, const struct pinfer_model *m, int l)
{
    const struct gguf_file *f = m->gguf;
    const int E = m->info.n_embd, F = m->info.n_ff;
    char n1[GGUF_MAX_NAME], n2[GGUF_MAX_NAME];
    snprintf(n1, sizeof n1, "blk.%d.fc1.weight", l);
    snprintf(n2, sizeof n2, "blk.%d.fc2.weight", l);
    int i1 = gguf_find_tensor(f, n1), i2 = gguf_find_tensor(f, n2);
    memset(p, 0, sizeof *p);
    if (i1 < 0 || i2 < 0) return pf_fail(PINFER_EFORMAT, "the input has predictor tensors but not %s", i1 < 0 ? n1 : n2);
    const struct gguf_tensor *a = &f->tensors[i1], *b = &f->tensors[i2];
    if (!pf_type_supported(a->type) || !pf_type_supported(b->type))
        return pf_fail(PINFER_EUNSUPPORTED, "predictor tensors of layer %d have types %s/%s", l, pf_type_name(a->type), pf_type_name(b->type));
    int64_t r = a->ne[1];
    if (a->ne[0] != E || r < 1 || r > E || b->ne[0] != r || b->ne[1] != F || a->ne[2] != 1 || b->ne[2] != 1 || a->ne[3] != 1 || b->ne[3] != 1)
        return pf_fail(PINFER_EFORMAT, "%s / %s have shapes [%lld, %lld] / [%lld, %lld], expected [%d, r] / [r, %d]", n1, n2,
                       (long long)a->ne[0], (long long)a->ne[1], (long long)b->ne[0], (long long)b->ne[1], E, F);
    p->rank = (int)r;
    p->type1 = a->type;
    p->type2 = b->type;
    p->fc1_bytes = (size_t)a->nbytes;
    p->fc2_bytes = (size_t)b->nbytes;
    p->fc1 = malloc(p->fc1_bytes);
    p->fc2 = malloc(p->fc2_bytes);
    if (!p->fc1 || !p->fc2) { pf_pred_free(p); return pf_fail(PINFER_ENOMEM, "out of memory"); }
    memcpy(p->fc1, f->data + a->file_offset, p->fc1_bytes);
    memcpy(p->fc2, f->data + b->file_offset, p->fc2_bytes);
    p->threshold = 0.0f;
    return 0;
}

/* Largest rank (a multiple of 32) whose predictor stays within the budget, at least 32. */
static int rank_cap(int E, int F, double base_layer, double ffn_layer, double active)
{
    int best = E < 32 ? E : 32;
    for (int r = 64; r <= E; r += 32) {
        double pb = (double)pf_pred_bytes(E, F, r);
        if (pb > PRED_BUDGET * (base_layer + pb + active * ffn_layer)) break;
        best = r;
    }
    return best;
}

static int fit_predictor(struct pf_predictor *best, const struct pf_pred_data *d, const struct pf_weight *gate,
                         const struct pf_weight *up, int rank, int cap, double ffn_layer, const struct pf_pred_cfg *cfg0)
{
    int cands[32], nc = 0;
    if (rank > 0) cands[nc++] = rank;
    else {
        for (int r = 32; r <= cap && nc < 30; r *= 2) cands[nc++] = r;
        if (nc == 0) cands[nc++] = cap;
        else if (cands[nc - 1] < cap) cands[nc++] = cap;
    }
    double best_cost = 0;
    struct pf_pred_fit *win = NULL;
    memset(best, 0, sizeof *best);
    for (int c = 0; c < nc; c++) {
        struct pf_pred_fit *f;
        struct pf_pred_cfg cfg = *cfg0;
        cfg.seed = pf_mix64(cfg0->seed ^ (uint64_t)cands[c]);
        int rc = pf_pred_fit_init(&f, d, gate, up, cands[c], &cfg);
        if (rc) { pf_pred_fit_free(win); return rc; }
        const struct pf_predictor *p = pf_pred_fit_result(f);
        double cost = (double)(p->fc1_bytes + p->fc2_bytes) + p->pred_frac * ffn_layer;
        if (c == 0 || cost < best_cost) {
            pf_pred_fit_free(win);
            win = f;
            best_cost = cost;
        } else {
            pf_pred_fit_free(f);
            break;
        }
    }
    struct pf_pred_cfg cfg = *cfg0;
    cfg.seed = pf_mix64(cfg0->seed ^ (uint64_t)pf_pred_fit_result(win)->rank);
    int rc = pf_pred_fit_finish(win, &cfg, best);
    pf_pred_fit_free(win);
    return rc;
}

/* ==== pinfer_prepare ==== */

static void prep_free(struct pf_prep *P)
{
    if (P->layers)
        for (int l = 0; l < P->n_units; l++) {
            free(P->layers[l].perm);
            free(P->layers[l].freq);
            free(P->layers[l].act_mean);
            free(P->layers[l].pred_freq);
            free(P->layers[l].reuse_occ);
            free(P->layers[l].reuse_hit);
            pf_pred_free(&P->layers[l].pred);
        }
    free(P->layers);
}

/* The type layer's down columns are stored in (docs/sparse-format.md): the down matrix's own
 * type when a row of n_embd is a whole number of its blocks and it has down kernels (a K-quant
 * needs n_embd % 256 == 0), else Q8_0 when n_embd % 32 == 0, else F16. */
int pf_prepare_down_type(int down, int n_embd)
{
    const struct pf_type_info *ti = pf_type_get(down);
    if (ti && pf_type_supported(down) && n_embd % ti->blck == 0 && pf_kernels_ref.down_accum[down] &&
        pf_kernels_ref.down_panel[down] && pf_kernels_ref.from_f32[down])
        return down;
    return n_embd % QK8_0 == 0 ? PF_TYPE_Q8_0 : PF_TYPE_F16;
}

/* Each unit's slot layout: gate and up rows in their own types, the down column in
 * pf_prepare_down_type's. Refuses types the sparse FFN cannot compute, saying which. */
static int plan_layouts(struct pf_prep *P)
{
    for (int l = 0; l < P->n_units; l++) {
        const struct pf_weight *g, *u, *d;
        pf_prep_unit_weights(P, l, &g, &u, &d);
        const int types[3] = { g->type, u->type, pf_prepare_down_type(d->type, P->n_embd) };
        char what[96], un[48];
        snprintf(what, sizeof what, "%s's FFN (gate %s, up %s, down %s)", unit_name(P, l, un, sizeof un), pf_type_name(g->type),
                 pf_type_name(u->type), pf_type_name(d->type));
        int rc = pf_bundle_layout(&P->layers[l].lay, types, P->n_embd, what);
        if (rc) return pf_fail_context(rc, "pinfer cannot prepare it");
        P->layers[l].lay.n_ff = P->n_ff;
    }
    return 0;
}

int pinfer_prepare(const char *in_path, const char *out_path, const struct pinfer_prepare_params *params,
                   struct pinfer_prepare_result **out)
{
    struct pinfer_prepare_params p = params ? *params : pinfer_prepare_default_params();
    if (out) *out = NULL;
    if (!in_path || !*in_path) return pf_fail(PINFER_EINVAL, "no input model given");
    if (!out_path || !*out_path) return pf_fail(PINFER_EINVAL, "no output path given");
    if (p.n_tokens < 0 || p.n_tokens > (1 << 20)) return pf_fail(PINFER_EINVAL, "token count %d is out of range", p.n_tokens);
    if (p.rank < 0 || p.rank > 65536) return pf_fail(PINFER_EINVAL, "rank %d is out of range", p.rank);
    if (!(p.recall_target >= 0.5f && p.recall_target < 1.0f))
        return pf_fail(PINFER_EINVAL, "recall target %g must be in [0.5, 1)", (double)p.recall_target);
    if (p.cluster_size < 0 || p.train_steps < -1 || p.n_threads < 0) return pf_fail(PINFER_EINVAL, "negative parameter");
    if (p.placement != PINFER_PLACE_FREQ && p.placement != PINFER_PLACE_COACT)
        return pf_fail(PINFER_EINVAL, "placement %d is not freq or coact", (int)p.placement);
    int rc = check_paths(in_path, out_path);
    if (rc || (rc = check_input(in_path))) return rc;

    struct pinfer_model *m = NULL;
    struct pf_calib *calib = NULL, *stats = NULL;
    struct pf_pool *pool = NULL;
    struct pf_prep P = { .in_path = in_path, .seed = p.seed,
                      .placement = p.placement == PINFER_PLACE_COACT ? "coact" : "freq" };
    struct pinfer_prepare_result *res = NULL;
    struct pf_progress pg;
    double t0 = pf_now(), t1, t2;
    /* a model larger than the memory available (a Mixtral-8x7B is ~24.5 GiB) stays in the file
       mapping, read through the page cache as calibration, predictors and the writer need it;
       one that fits is copied in (its huge pages stream ~13x faster than a file mapping's 4 KiB
       pages on this project's VMs: 7.3 against 0.55 tok/s on an 8-layer Mixtral shape) */
    struct pinfer_model_params mp = pinfer_model_default_params();
    struct stat ist;
    const uint64_t avail = pf_mem_available();
    mp.use_mmap = stat(in_path, &ist) == 0 && avail > 0 && (uint64_t)ist.st_size + (1ull << 30) > avail;
    if ((rc = pinfer_model_load(&m, in_path, &mp))) return rc;
    P.m = m;
    const struct pinfer_model_info *h = &m->info;
    if (p.rank > h->n_embd) {
        rc = pf_fail(PINFER_EINVAL, "rank %d exceeds n_embd %d", p.rank, h->n_embd);
        goto out;
    }
    P.n_layer = h->n_layer;
    P.n_embd = h->n_embd;
    P.n_ff = h->n_ff;
    P.n_expert = h->n_expert;
    P.n_units = h->n_layer * (h->n_expert ? h->n_expert : 1);
    const bool relu = pf_act_relu_family(h->act);
    const bool import = relu && !h->n_expert && gguf_find_tensor(m->gguf, "blk.0.fc1.weight") >= 0;
    P.pred_source = !relu ? "none" : import ? "powerinfer" : "trained";
    if (!(P.layers = calloc((size_t)P.n_units, sizeof *P.layers))) { rc = pf_fail(PINFER_ENOMEM, "out of memory"); goto out; }
    if ((rc = plan_layouts(&P)) || (rc = cluster_size(&P, p.cluster_size, &P.cluster_size))) goto out;

    pf_progress_start(&pg, p.progress, PHASE, "profiling");
    rc = pf_calib_run(&calib, m, &p, false, relu, &pg);
    pf_progress_end(&pg);
    if (rc) goto out;
    P.calib = calib;
    t1 = pf_now();

    int nth = p.n_threads > 0 ? p.n_threads : pf_cpu_count();
    if ((rc = pf_pool_new(&pool, nth))) goto out;
    /* what a decode token reads besides the FFN, per unit it runs (a mixture runs
       n_expert_used units per layer, a dense model one): the predictors' byte budget */
    const double fan = h->n_expert ? h->n_expert_used : 1, X = h->n_expert ? h->n_expert : 1;
    double ffn_all = 0; /* bytes of every unit's bundles a decode token may read, on average */
    for (int l = 0; l < P.n_units; l++) ffn_all += (double)P.layers[l].lay.slot_size * P.n_ff * fan / X;
    const double base_layer = ((double)h->decode_bytes - ffn_all) / (P.n_layer * fan);
    struct pf_pred_cfg cfg = { .recall_target = p.recall_target, .steps = p.train_steps, .pool = pool };
    pf_progress_start(&pg, p.progress && relu, PHASE, "predictors");
    char un[48];
    for (int l = 0; l < P.n_units; l++) {
        struct pf_prep_layer *L = &P.layers[l];
        const double ffn_layer = (double)L->lay.slot_size * P.n_ff;
        if ((rc = order_layer(L, &calib->layers[l], P.n_ff))) break;
        if (p.placement == PINFER_PLACE_COACT && (rc = place_coact(L, calib, l, P.n_ff))) break;
        if (!relu) continue;
        struct pf_pred_data d = pf_calib_data(calib, l);
        int nt = 0, nh = 0;
        for (int t = 0; t < d.n_tok; t++) { nt += !d.heldout[t]; nh += d.heldout[t] != 0; }
        if (nt < PF_MIN_UNIT_TRAIN || nh < PF_MIN_UNIT_HELDOUT) {
            rc = pf_fail(PINFER_EINVAL, "%s ran on %d calibration tokens (%d held out); its predictor needs at least %d and %d: "
                         "raise --tokens%s", unit_name(&P, l, un, sizeof un), d.n_tok, nh, PF_MIN_UNIT_TRAIN + PF_MIN_UNIT_HELDOUT,
                         PF_MIN_UNIT_HELDOUT, P.n_expert ? " (a mixture's experts each see only the tokens routed to them)" : "");
            break;
        }
        cfg.seed = pf_mix64(p.seed + 0x9E37u * (uint64_t)(l + 1));
        if (import) {
            if ((rc = import_predictor(&L->pred, m, l)) || (rc = pf_pred_eval(&L->pred, &d, false, &cfg))) break;
        } else {
            const struct pf_weight *wg, *wu, *wd;
            pf_prep_unit_weights(&P, l, &wg, &wu, &wd);
            int cap = rank_cap(P.n_embd, P.n_ff, base_layer, ffn_layer, active_frac(calib, l));
            if ((rc = fit_predictor(&L->pred, &d, wg, h->act == PINFER_ACT_DRELU ? wu : NULL, p.rank, cap, ffn_layer, &cfg)))
                break;
        }
        L->has_pred = true;
        pf_calib_release_layer(calib, l);
        pf_progress_update(&pg, (double)(l + 1) / P.n_units);
    }
    pf_progress_end(&pg);
    if (rc) {
        pf_fail_context(rc, "%s predictors", P.n_expert ? "expert" : "layer");
        goto out;
    }
    /* what the stored predictors ask for on tokens that ranked nothing (the planner's request
       law and its reuse, pf_calib_run) */
    if (relu) {
        pf_progress_start(&pg, p.progress, PHASE, "statistics");
        rc = pf_calib_run(&stats, m, &p, true, true, &pg);
        for (int l = 0; l < P.n_units && !rc; l++) {
            struct pf_pred_data d = pf_calib_data(stats, l);
            if (P.layers[l].has_pred && d.n_tok > 0) rc = select_freq(&P.layers[l], &d, P.n_ff, pool);
            pf_calib_release_layer(stats, l);
        }
        pf_progress_end(&pg);
        if (rc) {
            pf_fail_context(rc, "request statistics");
            goto out;
        }
        P.stat_tokens = stats->n_tok;
    }
    t2 = pf_now();

    uint64_t file_bytes = 0;
    pf_progress_start(&pg, p.progress, PHASE, "writing");
    rc = pf_prepare_write(&P, out_path, &pg, &file_bytes);
    pf_progress_end(&pg);
    if (rc) goto out;

    if (out) {
        res = calloc(1, sizeof *res);
        if (!res || !(res->layers = calloc((size_t)P.n_units, sizeof *res->layers))) {
            rc = pf_fail(PINFER_ENOMEM, "out of memory");
            goto out;
        }
        res->n_layer = P.n_layer;
        res->n_expert = P.n_expert;
        res->n_units = P.n_units;
        res->n_tokens = calib->n_tok;
        for (int t = 0; t < calib->n_tok; t++) res->n_heldout += calib->heldout[t];
        res->cluster_size = P.cluster_size;
        res->source = calib->source;
        res->predictor = P.pred_source;
        res->bytes_dense = h->decode_bytes;
        double sparse = (double)h->decode_bytes - ffn_all, pbytes = 0;
        for (int l = 0; l < P.n_units; l++) {
            struct pinfer_prepare_layer *R = &res->layers[l];
            const struct pf_prep_layer *L = &P.layers[l];
            const double ffn_layer = (double)L->lay.slot_size * P.n_ff;
            R->layer = pf_prep_layer_of(&P, l);
            R->expert = pf_prep_expert_of(&P, l);
            R->rows = calib->layers[l].n_rows;
            /* the tokens that run the unit: all (dense), those routed to the expert (mixture) */
            const double share = (double)R->rows / calib->n_tok;
            R->share = P.n_expert ? share : 1.0;
            R->ffn_bytes = (uint64_t)ffn_layer;
            if (L->has_pred) {
                R->rank = L->pred.rank;
                R->steps = L->pred.steps;
                R->threshold = L->pred.threshold;
                R->recall = L->pred.recall;
                R->precision = L->pred.precision;
                R->active_frac = L->pred.true_frac;
                R->pred_frac = L->pred.pred_frac;
                R->pred_bytes = L->pred.fc1_bytes + L->pred.fc2_bytes;
            } else {
                R->active_frac = active_frac(calib, l);
                R->pred_frac = 1.0; /* no predictor: decode reads every bundle */
            }
            pbytes += R->share * (double)R->pred_bytes;
            sparse += R->share * ((double)R->pred_bytes + (L->has_pred ? R->pred_frac : 1.0) * ffn_layer);
        }
        res->bytes_pred = (uint64_t)pbytes;
        res->bytes_sparse = (uint64_t)sparse;
        res->file_bytes = file_bytes;
        res->seconds_profile = t1 - t0;
        res->seconds_train = t2 - t1;
        res->seconds_write = pf_now() - t2;
        *out = res;
        res = NULL;
    }
out:
    pinfer_prepare_result_free(res);
    prep_free(&P);
    pf_pool_free(pool);
    pf_calib_free(calib);
    pf_calib_free(stats);
    pinfer_model_free(m);
    return rc;
}
