/* The neuron cache: segment plan, hot slots, cold LRU, reads of missing slots (cache.h). */
#include "cache/cache.h"

#include "core/checked.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/lru.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define PAGE PF_IO_ALIGN

static uint64_t round_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }
#define STAGE_MAX (16u << 20)

struct pf_cache {
    int n_units, n_ff;          /* units (a layer, or a (layer, expert) of a mixture: model.h) and slots per unit */
    size_t stride;              /* bytes of a cold entry: the largest layer's slot rounded up to 64
                                   (layers' bundles may differ in type, so in slot size) */
    const struct pf_bundles *b; /* the model's bundles (n_units) */
    struct pf_io *io;

    /* hot segment */
    int *n_hot;                 /* per layer */
    uint8_t **hot;              /* per layer: slot j < n_hot[l] at hot[l] + j * (layer's slot size) */
    void *hot_mem;
    size_t hot_bytes;

    /* cold segment: one recency list per (unit, bucket of slots), most recently asked for at
       the head; the victim is the tail least likely to be asked for at the next token
       (pf_cache_hazard), found with a tournament tree over the lists' tails */
    int n_cold;
    uint8_t *cold;              /* n_cold entries of stride bytes */
    int32_t *entry_of;          /* (n_units * n_ff): cold entry holding slot, or -1 */
    int32_t *key;               /* entry -> layer * n_ff + slot, or -1 when free */
    int n_lists;                /* n_units * PF_CACHE_BUCKETS */
    struct pf_lru_list *lists, free_list; /* links shared: an entry is in one list */
    uint32_t *stamp;            /* entry -> token it was last asked for */
    uint32_t *rstamp;           /* entry -> read round it was last asked for in */
    uint32_t tok, round_id;     /* tokens decoded; read rounds begun (both from 1) */
    float (*haz)[PF_CACHE_BUCKETS][PF_CACHE_AGES]; /* per unit: bucket x age in tokens -> P(asked
                                                      for at the next token); NULL: all 0 */
    int32_t *tree;              /* (2 * tree_n) node -> the list of its subtree whose tail goes
                                   first (-1: none eligible); leaves at tree_n + list */
    int tree_n;                 /* leaves: n_lists rounded up to a power of two */
    uint32_t tree_tok;          /* the token the tree was built for (0: not yet) */
    size_t cold_bytes;

    /* staging area for the reads of one step, and (predictor mode) a second one for the
       next layer's read-ahead */
    uint8_t *stage, *pre;
    size_t stage_cap, stage_alloc;
    int chunk_slots;            /* batches stream in multiples of this many slots */

    /* the read round in progress (pf_cache_round_*) */
    int r_layer, r_i0, r_i1, r_miss, r_got;
    uint64_t r_hits_cold;     /* hits_cold when the round began */
    bool r_claimed;           /* the round's reads have their cold entries (round_wait's dst) */
    const int *r_cand;
    const uint8_t **r_slotp;
    int *miss;                  /* (n_ff) slots the round reads */
    const uint8_t **mptr;       /* (n_ff) where they land in the staging area */
    uint8_t **mdst;             /* (n_ff) the cold entries they are copied into (round_end) */

    /* read-ahead */
    int pre_layer;              /* layer whose slots are read ahead, -1 if none */
    const uint8_t **pre_ptr;    /* (n_ff) where a read-ahead slot of pre_layer is, else NULL */
    int *pre_list, n_pre;       /* the slots read ahead */
    uint64_t pre_reads, pre_bytes, pre_slots, pre_used;

    /* what the plan decided (for the reports) */
    uint64_t budget, fixed_bytes, meta_bytes;

    /* counters (single-token steps and batches alike) */
    uint64_t hits_hot, hits_cold, misses, reads, bytes_read, evictions, rounds;
    double io_wait_s;
    uint64_t prefill_reads, prefill_bytes; /* batches stream the layer instead */
    double prefill_wait_s;
};

/* Bytes of one slot of layer l. */
static size_t slot(const struct pf_cache *c, int l) { return c->b[l].slot_size; }

/* The largest slot of any layer. */
static uint64_t max_slot(const struct pinfer_model *m)
{
    uint64_t s = 0;
    for (int l = 0; l < m->n_units; l++)
        if (m->bundles[l].slot_size > s) s = m->bundles[l].slot_size;
    return s;
}

/* Hot bytes for n_hot slots in every layer: a page-rounded block per layer. */
static uint64_t hot_bytes(const struct pinfer_model *m, uint64_t n_hot)
{
    uint64_t t = 0;
    for (int l = 0; l < m->n_units; l++) t += round_up(n_hot * m->bundles[l].slot_size, PF_IO_ALIGN);
    return t;
}

/* The file pages [*a, *e) that cover slots [j0, j1) of layer l (a direct read of them). */
static void cache_pages(const struct pf_cache *c, int l, int j0, int j1, uint64_t *a, uint64_t *e)
{
    const uint64_t base = c->b[l].file_off, S = slot(c, l);
    *a = (base + (uint64_t)j0 * S) / PF_IO_ALIGN * PF_IO_ALIGN;
    *e = (base + (uint64_t)j1 * S + PF_IO_ALIGN - 1) / PF_IO_ALIGN * PF_IO_ALIGN;
}


/* Staging bytes: a whole layer's FFN if small, else up to 16 MiB (a round of reads); the
 * configuration may set it (tests force several rounds per layer with it). Never less than
 * one cluster's pages (a decode round) and two chunks of chunk_slots slots (the halves of
 * the prefill double buffer). */
static uint64_t stage_bytes(const struct pinfer_model *m, const struct pf_cache_config *cfg)
{
    const struct pf_bundles *b = &m->bundles[0];
    const uint64_t S = max_slot(m);
    const int cs = m->info.cluster_size > 0 ? m->info.cluster_size : 16;
    uint64_t layer = round_up((uint64_t)b->n_ff * S, PAGE) + PAGE, s = layer < STAGE_MAX ? layer : STAGE_MAX;
    if (cfg->stage_bytes) s = cfg->stage_bytes;
    uint64_t min = round_up((uint64_t)cs * S, PAGE) + 2 * PAGE, pre = 2 * (round_up((uint64_t)cfg->chunk_slots * S, PAGE) + 2 * PAGE);
    if (min < pre) min = pre;
    if (s < min) s = min;
    return round_up(s, PAGE);
}

/* Per cold entry: key, two links, two stamps. */
#define ENTRY_META (5 * sizeof(int32_t))

static uint64_t meta_bytes(const struct pinfer_model *m, uint64_t n_cold)
{
    const uint64_t L = (uint64_t)m->n_units, F = (uint64_t)m->info.n_ff;
    uint64_t leaves = 1;
    while (leaves < L * PF_CACHE_BUCKETS) leaves *= 2;
    const uint64_t lists = L * PF_CACHE_BUCKETS * (sizeof(struct pf_lru_list) + PF_CACHE_AGES * sizeof(float)) +
                           2 * leaves * sizeof(int32_t); /* recency lists, eviction laws, tree */
    return L * F * sizeof(int32_t) + n_cold * ENTRY_META + L * (sizeof(int) + sizeof(void *)) +
           F * (sizeof(int) + 2 * sizeof(void *)) + lists + sizeof(struct pf_cache);
}

int pf_cache_plan(const struct pinfer_model *m, uint64_t ctx_bytes, const struct pf_cache_config *cfg, struct pf_cache_plan *p)
{
    const bool prefetch = cfg->prefetch;
    float hot_frac = cfg->hot_frac;
    memset(p, 0, sizeof *p);
    const uint64_t L = (uint64_t)m->n_units, F = (uint64_t)m->info.n_ff;
    const uint64_t S = max_slot(m), stride = round_up(S, 64);
    p->budget = m->mem_budget;
    p->weights = m->resident_bytes;
    /* the weights are held once, whatever shares the budget; the rest is split evenly, so the
       contexts together stay within it */
    const uint64_t shares = cfg->shares > 1 ? (uint64_t)cfg->shares : 1;
    if (shares > 1 && p->budget > p->weights) p->budget = p->weights + (p->budget - p->weights) / shares;
    p->ctx = ctx_bytes;
    p->stage = stage_bytes(m, cfg) * (prefetch ? 2 : 1); /* the second half: next layer's prefetch */
    p->prefetch = prefetch;
    p->meta = meta_bytes(m, 0);
    const uint64_t fixed = p->weights + p->ctx + p->stage + p->meta;
    if (fixed > p->budget) {
        if (shares > 1) {
            const uint64_t each = fixed - p->weights;
            return pf_fail(PINFER_ENOMEM,
                           "memory budget of %.1f MiB is too small for %d contexts: each needs %.1f MiB (context %.1f, "
                           "I/O staging %.1f, cache tables %.1f) besides the %.1f MiB of weights kept in memory once; the "
                           "smallest workable budget is %.0f MiB",
                           (double)m->mem_budget / (1 << 20), (int)shares, (double)each / (1 << 20),
                           (double)p->ctx / (1 << 20), (double)p->stage / (1 << 20), (double)p->meta / (1 << 20),
                           (double)p->weights / (1 << 20), (double)((p->weights + shares * each + (1 << 20) - 1) >> 20));
        }
        return pf_fail(PINFER_ENOMEM,
                       "memory budget of %.1f MiB is too small: the fixed segment needs %.1f MiB (weights kept in memory "
                       "%.1f, context %.1f, I/O staging %.1f, cache tables %.1f); the smallest workable budget is %.0f MiB",
                       (double)p->budget / (1 << 20), (double)fixed / (1 << 20), (double)p->weights / (1 << 20),
                       (double)p->ctx / (1 << 20), (double)p->stage / (1 << 20), (double)p->meta / (1 << 20),
                       (double)((fixed + (1 << 20) - 1) >> 20));
    }
    uint64_t avail = p->budget - fixed;
    if (hot_frac < 0) hot_frac = 0.9f; /* measured best on the 7B shape (bench/RESULTS.md) */
    if (hot_frac > 1) hot_frac = 1;
    /* hot: a page-rounded block per layer */
    uint64_t n_hot = (uint64_t)((double)avail * hot_frac) / hot_bytes(m, 1);
    if (n_hot > F) n_hot = F;
    while (n_hot > 0 && hot_bytes(m, n_hot) > avail) n_hot--;
    if (n_hot < F) n_hot = n_hot / (uint64_t)cfg->chunk_slots * (uint64_t)cfg->chunk_slots; /* whole prefill chunks */
    p->n_hot = (int)n_hot;
    p->hot = n_hot ? hot_bytes(m, n_hot) : 0;
    avail -= p->hot;
    /* cold: entries plus their LRU links */
    uint64_t n_cold = avail / (stride + ENTRY_META);
    if (n_cold > L * (F - n_hot)) n_cold = L * (F - n_hot);
    if (n_cold > INT32_MAX / 2) n_cold = INT32_MAX / 2;
    p->n_cold = (int)n_cold;
    p->cold = n_cold * stride;
    p->meta = meta_bytes(m, n_cold);
    return 0;
}

/* Huge pages for a segment of at least 2 MiB: the step reads scattered rows of a few KiB from
 * it, and with 4 KiB pages each row costs a TLB miss too. bench/scatter, 2 threads, 2.3 KiB rows
 * (bench/RESULTS.md): 3.7 GB/s in 4 KiB pages, 8.6 in 2 MiB ones, without software prefetching
 * (the offloaded step has none); 18.3 and 19.6 with the rows 4 ahead prefetched. The model's own
 * arena has them (model/load.c); a hint, so a refusal changes nothing but speed. */
static void want_huge(void *p, size_t n)
{
    if (n >= (2u << 20)) madvise(p, n, MADV_HUGEPAGE);
}

/* The cold segment, its pages faulted in now: the budget counts them anyway, and faulting them
 * one by one as entries are first filled cost a 7B step ~5 ms/token for its first few hundred
 * tokens (the kernel zeroing pages inside the copy of each slot read). Populated after the
 * huge-page hint (MAP_POPULATE would fault 4 KiB pages before it); kernels older than 5.14 lack
 * MADV_POPULATE_WRITE (EINVAL) and get the pages touched instead. */
static void *map_anon(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    want_huge(p, n);
#ifdef MADV_POPULATE_WRITE
    if (madvise(p, n, MADV_POPULATE_WRITE) != 0 && errno == EINVAL) memset(p, 0, n);
#else
    memset(p, 0, n);
#endif
    return p;
}

static int cache_wait(struct pf_cache *c);
static void hazard_load(struct pf_cache *c, const struct pinfer_model *m);

/* Hot slots of unit u whose frequency per token (slot frequency per routed token x the unit's
 * share) is at least tau: its prefix up to the first slot below (slots are in hotness order),
 * whole prefill chunks unless the whole unit. */
static int hot_prefix(const struct pf_bundles *b, int chunk, double tau)
{
    int n = 0;
    while (n < b->n_ff && (double)b->freq[n] * b->share >= tau) n++;
    if (n < b->n_ff) n = n / chunk * chunk;
    return n;
}

void pf_cache_hot_split(const struct pinfer_model *m, int n_hot, int chunk_slots, int *out)
{
    for (int u = 0; u < m->n_units; u++) out[u] = n_hot;
    if (!m->info.n_expert || n_hot <= 0) return;
    /* a mixture: the same bytes to the slots most often used per token over all experts
       (frequency x the expert's share), instead of the same prefix in every expert: the largest
       set (a threshold on that product) whose page-rounded blocks fit */
    const uint64_t bytes = hot_bytes(m, (uint64_t)n_hot);
    double lo = 0, hi = 1.0; /* nothing is used more often than every token */
    for (int it = 0; it < 40; it++) {
        const double mid = 0.5 * (lo + hi);
        uint64_t t = 0;
        for (int u = 0; u < m->n_units; u++)
            t += round_up((uint64_t)hot_prefix(&m->bundles[u], chunk_slots, mid) * m->bundles[u].slot_size, PAGE);
        if (t <= bytes) hi = mid;
        else lo = mid;
    }
    for (int u = 0; u < m->n_units; u++) out[u] = hot_prefix(&m->bundles[u], chunk_slots, hi);
}

/* Non-hot slots used at least tau times per token (slot frequency x the unit's share). */
static uint64_t n_warm(const struct pf_cache *c, double tau)
{
    uint64_t n = 0;
    for (int u = 0; u < c->n_units; u++) {
        const struct pf_bundles *b = &c->b[u];
        for (int j = c->n_hot[u]; j < b->n_ff; j++) n += (double)b->freq[j] * b->share >= tau;
    }
    return n;
}

/* Reads slots [j0, j1) of unit u through the staging area, in pieces of at most its size (4 MiB
 * reads, several in flight), and puts each into a cold entry. */
static int warm_run(struct pf_cache *c, int u, int j0, int j1)
{
    const uint64_t S = slot(c, u), base = c->b[u].file_off, fend = round_up(pf_io_file_size(c->io), PAGE);
    const int per = (int)((c->stage_cap - 2 * PAGE) / S); /* slots per piece, whatever their alignment */
    if (per < 1) return 0;
    for (int a = j0; a < j1; a += per) {
        const int z = a + per < j1 ? a + per : j1;
        uint64_t lo, hi;
        cache_pages(c, u, a, z, &lo, &hi);
        if (hi > fend) return pf_fail(PINFER_EFORMAT, "unit %d's bundles run past the end of the file", u);
        for (uint64_t o = lo; o < hi; o += 4u << 20) {
            const uint64_t n = hi - o < (4u << 20) ? hi - o : (4u << 20);
            int rc = pf_io_read(c->io, o, (size_t)n, c->stage + (o - lo), 0);
            if (rc) return rc;
        }
        int rc = pf_io_submit(c->io);
        if (rc || (rc = cache_wait(c)) < 0) return rc;
        for (int j = a; j < z; j++) pf_cache_insert(c, u, j, c->stage + (base + (uint64_t)j * S - lo));
    }
    return 0;
}

/* Fills the cold segment at creation with the slots a step is likeliest to need after the hot
 * ones: those used most often per token (frequency x share, the order of the hot split), as many
 * as it holds, read in long pieces. Without it the cold segment started empty and every slot's
 * first use was a random read of a few KiB during decode: a budget that holds 98% of the slots
 * missed 2% of them over the first 128 tokens (bench/RESULTS.md), when one sequential pass over
 * those bytes at creation costs seconds. (The LRU order they start in is the order they were
 * read in; the first steps reorder it.) */
static int warm_cold(struct pf_cache *c)
{
    if (c->n_cold == 0) return 0;
    double tau = 0; /* every non-hot slot fits */
    if (n_warm(c, 0) > (uint64_t)c->n_cold) {
        double lo = 0, hi = 1.0 + 1e-6; /* nothing is used more often than every token */
        for (int it = 0; it < 40; it++) {
            const double mid = 0.5 * (lo + hi);
            if (n_warm(c, mid) <= (uint64_t)c->n_cold) hi = mid;
            else lo = mid;
        }
        tau = hi;
    }
    /* per unit, runs of adjacent chosen slots: slots are in hotness order, so a unit's chosen
       slots are (nearly) one run after its hot prefix */
    for (int u = c->n_units - 1; u >= 0; u--) {
        const struct pf_bundles *b = &c->b[u];
        int j = b->n_ff;
        while (j > c->n_hot[u]) {
            while (j > c->n_hot[u] && !((double)b->freq[j - 1] * b->share >= tau)) j--;
            const int z = j;
            while (j > c->n_hot[u] && (double)b->freq[j - 1] * b->share >= tau) j--;
            if (z > j) {
                int rc = warm_run(c, u, j, z);
                if (rc) return rc;
            }
        }
    }
    return 0;
}

/* Reads the hot slots of every layer, in 4 MiB pieces so several are in flight. */
static int read_hot(struct pf_cache *c)
{
    const size_t piece = 4u << 20;
    const uint64_t fsz = pf_io_file_size(c->io);
    for (int l = 0; l < c->n_units; l++) {
        uint64_t len = round_up((uint64_t)c->n_hot[l] * slot(c, l), PAGE);
        for (uint64_t o = 0; o < len; o += piece) {
            uint64_t n = len - o < piece ? len - o : piece;
            if (c->b[l].file_off + o + n > round_up(fsz, PAGE))
                return pf_fail(PINFER_EFORMAT, "unit %d's bundles run past the end of the file", l);
            int rc = pf_io_read(c->io, c->b[l].file_off + o, (size_t)n, c->hot[l] + o, 0);
            if (rc) return rc;
            if (pf_io_pending(c->io) >= 16 && (rc = cache_wait(c)) < 0) return rc;
        }
    }
    int rc = cache_wait(c);
    return rc < 0 ? rc : 0;
}

int pf_cache_new(struct pf_cache **out, const struct pinfer_model *m, const struct pf_cache_plan *p,
                 const struct pf_cache_config *cfg)
{
    *out = NULL;
    struct pf_cache *c = calloc(1, sizeof *c);
    if (!c) return pf_fail(PINFER_ENOMEM, "out of memory");
    const int L = m->n_units, F = m->info.n_ff; /* units */
    c->n_units = L;
    c->n_ff = F;
    c->b = m->bundles;
    c->stride = (size_t)round_up(max_slot(m), 64);
    c->budget = p->budget;
    c->fixed_bytes = p->weights + p->ctx + p->stage + p->meta;
    c->meta_bytes = p->meta;
    c->free_list.head = c->free_list.tail = -1;
    c->tok = c->round_id = 1;
    struct pf_io_params iop = pf_io_default_params();
    iop.backend = cfg->backend;
    if (cfg->io_depth > 0) iop.queue_depth = cfg->io_depth;
    iop.same_as_fd = m->gguf->fd; /* the file that was parsed, whatever now has its name */
    iop.same_size = m->gguf->size;
    c->chunk_slots = cfg->chunk_slots;
    int rc = pf_io_open(&c->io, m->path, &iop);
    if (rc == PINFER_EUNSUPPORTED && iop.direct) { /* tmpfs and the like: their pages are memory anyway */
        iop.direct = false;
        rc = pf_io_open(&c->io, m->path, &iop);
    }
    if (rc) { free(c); return rc; }
    c->n_hot = calloc((size_t)L, sizeof *c->n_hot);
    c->hot = calloc((size_t)L, sizeof *c->hot);
    c->entry_of = malloc((size_t)L * (size_t)F * sizeof *c->entry_of);
    c->stage_cap = (size_t)(p->prefetch ? p->stage / 2 : p->stage);
    c->stage = pf_io_alloc((size_t)p->stage);
    c->stage_alloc = (size_t)p->stage;
    if (c->stage && p->prefetch) {
        c->pre = c->stage + c->stage_cap;
        c->pre_ptr = calloc((size_t)F, sizeof *c->pre_ptr);
        c->pre_list = malloc((size_t)F * sizeof *c->pre_list);
        if (!c->pre_ptr || !c->pre_list) goto nomem;
    }
    c->pre_layer = -1;
    c->miss = malloc((size_t)F * sizeof *c->miss);
    c->mptr = malloc((size_t)F * sizeof *c->mptr);
    c->mdst = malloc((size_t)F * sizeof *c->mdst);
    if (!c->n_hot || !c->hot || !c->entry_of || !c->stage || !c->miss || !c->mptr || !c->mdst) goto nomem;
    memset(c->entry_of, 0xff, (size_t)L * (size_t)F * sizeof *c->entry_of);
    if (p->n_hot > 0) {
        c->hot_bytes = (size_t)hot_bytes(m, (uint64_t)p->n_hot);
        if (!(c->hot_mem = pf_io_alloc(c->hot_bytes))) goto nomem;
        want_huge(c->hot_mem, c->hot_bytes); /* before the reads that fill it fault its pages */
        pf_cache_hot_split(m, p->n_hot, c->chunk_slots, c->n_hot);
        size_t at = 0;
        for (int l = 0; l < L; l++) {
            c->hot[l] = (uint8_t *)c->hot_mem + at;
            at += (size_t)round_up((uint64_t)c->n_hot[l] * slot(c, l), PAGE);
        }
    }
    if (p->n_cold > 0) {
        c->n_cold = p->n_cold;
        c->cold_bytes = (size_t)p->n_cold * c->stride;
        c->cold = map_anon(c->cold_bytes);
        c->key = malloc((size_t)p->n_cold * sizeof *c->key);
        c->free_list.prev = malloc((size_t)p->n_cold * sizeof *c->free_list.prev);
        c->free_list.next = malloc((size_t)p->n_cold * sizeof *c->free_list.next);
        c->stamp = calloc((size_t)p->n_cold, sizeof *c->stamp);
        c->rstamp = calloc((size_t)p->n_cold, sizeof *c->rstamp);
        c->n_lists = L * PF_CACHE_BUCKETS;
        c->lists = malloc((size_t)c->n_lists * sizeof *c->lists);
        for (c->tree_n = 1; c->tree_n < c->n_lists; c->tree_n *= 2) {}
        c->tree = malloc(2 * (size_t)c->tree_n * sizeof *c->tree);
        if (!c->cold || !c->key || !c->free_list.prev || !c->free_list.next || !c->stamp || !c->rstamp || !c->lists ||
            !c->tree)
            goto nomem;
        for (int i = 0; i < c->n_lists; i++) { /* the lists share the links */
            c->lists[i].prev = c->free_list.prev;
            c->lists[i].next = c->free_list.next;
            c->lists[i].head = c->lists[i].tail = -1;
        }
        hazard_load(c, m); /* NULL on failure too: least recently used */
        for (int e = 0; e < c->n_cold; e++) {
            c->key[e] = -1;
            c->free_list.prev[e] = e - 1;
            c->free_list.next[e] = e + 1 < c->n_cold ? e + 1 : -1;
        }
        c->free_list.head = 0;
        c->free_list.tail = c->n_cold - 1;
    }
    if ((rc = read_hot(c))) { pf_cache_free(c); return pf_fail_context(rc, "reading the hot neurons"); }
    if ((rc = warm_cold(c))) { pf_cache_free(c); return pf_fail_context(rc, "filling the neuron cache"); }
    c->io_wait_s = 0; /* creation (hot reads, cold fill) is not decode time */
    c->reads = c->bytes_read = c->evictions = 0;
    *out = c;
    return 0;
nomem:
    pf_cache_free(c);
    return pf_fail(PINFER_ENOMEM, "out of memory for the neuron cache");
}

void pf_cache_free(struct pf_cache *c)
{
    if (!c) return;
    if (c->io) pf_io_close(c->io);
    if (c->hot_mem) pf_io_free(c->hot_mem, c->hot_bytes);
    if (c->stage) pf_io_free(c->stage, c->stage_alloc);
    free(c->pre_ptr); free(c->pre_list); free(c->miss); free(c->mptr); free(c->mdst);
    if (c->cold) munmap(c->cold, c->cold_bytes);
    free(c->n_hot); free(c->hot); free(c->entry_of); free(c->key); free(c->free_list.prev); free(c->free_list.next);
    free(c->stamp); free(c->rstamp); free(c->lists); free(c->tree); free(c->haz);
    free(c);
}

/* ==== cold segment ==== */

void pf_cache_hazard(const double *win, int n_win, const float *hit, int n_b, float haz[PF_CACHE_BUCKETS][PF_CACHE_AGES])
{
    memset(haz, 0, sizeof(float) * PF_CACHE_BUCKETS * PF_CACHE_AGES);
    for (int b = 0; b < n_b && b < PF_CACHE_BUCKETS; b++) {
        const float *g = hit + (size_t)b * (size_t)n_win;
        double S[PF_CACHE_AGES + 1]; /* survival 1 - G at ages 0..PF_CACHE_AGES */
        for (int a = 0; a <= PF_CACHE_AGES; a++) {
            double w0 = 0, s0 = 1; /* S(0) = 1 */
            int k = 0;
            for (; k < n_win && g[k] >= 0 && win[k] < a; k++) { w0 = win[k]; s0 = 1.0 - g[k]; }
            double v = s0; /* flat past the last measured window */
            if (a > 0 && k < n_win && g[k] >= 0) {
                const double s1 = 1.0 - g[k], f = (a - w0) / (win[k] - w0);
                v = s0 > 0 && s1 > 0 ? s0 * pow(s1 / s0, f) : s0 + (s1 - s0) * f;
            }
            S[a] = v < 0 ? 0 : v > 1 ? 1 : v;
        }
        for (int a = 0; a < PF_CACHE_AGES; a++) {
            const double h = S[a] > 0 ? 1.0 - S[a + 1] / S[a] : 0.0;
            haz[b][a] = (float)(h < 0 ? 0 : h);
        }
    }
}

/* Each unit's eviction law from its reuse_hit curve (pinfer.bundle.N[.E].reuse_hit over the
 * windows pinfer.prepare.reuse_windows): layers differ (the realistic law spreads sparsity over
 * them), and per unit it evicted better than the mean over units (bench/RESULTS.md). c->haz
 * stays NULL (least recently used) when the file has none, any is malformed, or memory is short. */
static void hazard_load(struct pf_cache *c, const struct pinfer_model *m)
{
    double win[64];
    const int K = pf_model_reuse_windows(m->gguf, win, 64);
    if (!K) return;
    float (*haz)[PF_CACHE_BUCKETS][PF_CACHE_AGES] = malloc((size_t)m->n_units * sizeof *haz);
    if (!haz) return;
    float hit[PF_CACHE_BUCKETS * 64];
    for (int u = 0; u < m->n_units; u++) {
        uint64_t n;
        const void *curve = pf_model_reuse_curve(m->gguf, m, u, "reuse_hit", K, 1.0f, &n);
        if (!curve || n / (uint64_t)K > PF_CACHE_BUCKETS) { free(haz); return; }
        memcpy(hit, curve, n * sizeof *hit);
        pf_cache_hazard(win, K, hit, (int)(n / (uint64_t)K), haz[u]);
        /* a mixture's expert: prepare counts the gaps in the expert's own steps, a share s of the
           tokens; an entry a tokens old is ~a s steps old, and is asked for at the next token only
           if the expert runs then: s times its per-step hazard */
        const float sh = m->bundles[u].share;
        if (sh > 0 && sh < 1)
            for (int b = 0; b < PF_CACHE_BUCKETS; b++) {
                float step[PF_CACHE_AGES];
                memcpy(step, haz[u][b], sizeof step);
                for (int a = 0; a < PF_CACHE_AGES; a++) {
                    const int k = (int)((float)a * sh + 0.5f);
                    haz[u][b][a] = sh * step[k < PF_CACHE_AGES ? k : PF_CACHE_AGES - 1];
                }
            }
    }
    c->haz = haz;
}

/* The list of a cold entry's key: (unit, bucket of its slot). */
static int list_of(const struct pf_cache *c, int32_t key)
{
    return (int)(key / c->n_ff) * PF_CACHE_BUCKETS + (int)((int64_t)(key % c->n_ff) * PF_CACHE_BUCKETS / c->n_ff);
}

/* ==== the tournament over the lists' tails ==== */

/* Whether list a's tail should go before list b's (either may be -1: none, or an empty list):
 * the one least likely to be asked for at the next token, the older on a tie; never an entry
 * the current round asked for. */
static bool goes_first(const struct pf_cache *c, int a, int b)
{
    const int ea = a >= 0 ? c->lists[a].tail : -1, eb = b >= 0 ? c->lists[b].tail : -1;
    const bool oka = ea >= 0 && c->rstamp[ea] != c->round_id, okb = eb >= 0 && c->rstamp[eb] != c->round_id;
    if (!oka || !okb) return oka;
    const uint32_t aa = c->tok - c->stamp[ea], ab = c->tok - c->stamp[eb];
    if (c->haz) {
        const float ha = c->haz[a / PF_CACHE_BUCKETS][a % PF_CACHE_BUCKETS][aa < PF_CACHE_AGES ? aa : PF_CACHE_AGES - 1];
        const float hb = c->haz[b / PF_CACHE_BUCKETS][b % PF_CACHE_BUCKETS][ab < PF_CACHE_AGES ? ab : PF_CACHE_AGES - 1];
        if (ha != hb) return ha < hb;
    }
    return aa > ab;
}

/* The tree ranks the tails with the round's protection as it was when each leaf was last
 * compared: a tail's protection changes only when it is asked for, which moves it (or, alone in
 * its list, updates the list's path), so within a round the tree never offers a protected
 * tail; a later round lifts the protections, and a list excluded by an earlier one comes back
 * when its tail next changes or the tree is rebuilt at the next token. */
static int winner(const struct pf_cache *c, int a, int b) { return goes_first(c, a, b) ? a : b; }

/* Builds the tree for the current token. */
static void tree_build(struct pf_cache *c)
{
    for (int i = 0; i < c->tree_n; i++) c->tree[c->tree_n + i] = i < c->n_lists ? i : -1;
    for (int v = c->tree_n - 1; v >= 1; v--) c->tree[v] = winner(c, c->tree[2 * v], c->tree[2 * v + 1]);
    c->tree_tok = c->tok;
}

/* List i's tail changed: its path to the root, if the tree is current. */
static void tree_update(struct pf_cache *c, int i)
{
    if (c->tree_tok != c->tok) return; /* rebuilt when next needed */
    for (int v = (c->tree_n + i) / 2; v >= 1; v /= 2) c->tree[v] = winner(c, c->tree[2 * v], c->tree[2 * v + 1]);
}

/* Entry e moves to the head of list i (removed from it first when in), keeping the tree. */
static void list_front(struct pf_cache *c, int i, int e, bool in)
{
    struct pf_lru_list *l = &c->lists[i];
    if (in && l->head == e) {
        if (l->tail == e) tree_update(c, i); /* alone in it: its age and protection changed */
        return;
    }
    const int tail = l->tail;
    if (in) pf_lru_unlink(l, e);
    pf_lru_push_front(l, e);
    if (l->tail != tail) tree_update(c, i);
}

int pf_cache_n_hot(const struct pf_cache *c, int l) { return c->n_hot[l]; }
const uint8_t *pf_cache_hot_slot(const struct pf_cache *c, int l, int j) { return c->hot[l] + (size_t)j * slot(c, l); }
void pf_cache_count_hot(struct pf_cache *c, int n) { c->hits_hot += (uint64_t)n; }
void pf_cache_next_tokens(struct pf_cache *c, int n) { c->tok += (uint32_t)n; }

/* Entry e was just asked for: stamped, the head of its list. */
static void touch(struct pf_cache *c, int e)
{
    c->stamp[e] = c->tok;
    c->rstamp[e] = c->round_id;
    list_front(c, list_of(c, c->key[e]), e, true);
}

const uint8_t *pf_cache_lookup(struct pf_cache *c, int l, int j)
{
    if (j < c->n_hot[l]) { c->hits_hot++; return pf_cache_hot_slot(c, l, j); }
    int e = c->entry_of[(size_t)l * (size_t)c->n_ff + (size_t)j];
    if (e < 0) return NULL;
    c->hits_cold++;
    touch(c, e);
    return c->cold + (size_t)e * c->stride;
}

/* The entry to reuse: a free one, else the tail the tournament puts first (goes_first); if the
 * tree offers none the round did not ask for (every tail it still ranks was), the first of all
 * tails the round did not ask for; -1 if there is none. */
static int victim(struct pf_cache *c)
{
    if (c->free_list.head >= 0) return c->free_list.head;
    if (c->tree_tok != c->tok) tree_build(c);
    int i = c->tree[1];
    if (i >= 0 && (c->lists[i].tail < 0 || c->rstamp[c->lists[i].tail] == c->round_id)) {
        i = -1;
        for (int j = 0; j < c->n_lists; j++)
            if (goes_first(c, j, i)) i = j;
    }
    return i >= 0 ? c->lists[i].tail : -1;
}

/* The cold entry slot j of layer l goes into (victim(), now the most recently asked for), or
 * NULL when it is not cached cold (hot, already there, no cold segment, no entry free of this
 * round). */
static uint8_t *claim(struct pf_cache *c, int l, int j)
{
    if (c->n_cold == 0 || j < c->n_hot[l]) return NULL;
    const int32_t k = (int32_t)((size_t)l * (size_t)c->n_ff + (size_t)j);
    if (c->entry_of[k] >= 0) return NULL;
    const int e = victim(c);
    if (e < 0) return NULL;
    if (c->key[e] >= 0) {
        const int i = list_of(c, c->key[e]);
        pf_lru_unlink(&c->lists[i], e); /* its tail */
        tree_update(c, i);
        c->entry_of[c->key[e]] = -1;
        c->evictions++;
    } else {
        pf_lru_unlink(&c->free_list, e);
    }
    c->key[e] = k;
    c->entry_of[k] = e;
    c->stamp[e] = c->tok;
    c->rstamp[e] = c->round_id;
    list_front(c, list_of(c, k), e, false);
    return c->cold + (size_t)e * c->stride;
}

void pf_cache_insert(struct pf_cache *c, int l, int j, const uint8_t *src)
{
    uint8_t *d = claim(c, l, j);
    if (d) memcpy(d, src, slot(c, l));
}

/* ==== reads ==== */

/* Reads of the slots js[*done..n) of layer l into area (cap bytes) from *pos on, run by run
 * (slots whose page ranges touch share one read), as many as fit; both advance. With more
 * slots to come (final false) the last run waits, as the next slot may still join it. Submits
 * what it queued. 0, or a negative code. */
static int fetch_runs(struct pf_cache *c, int l, const int *js, int n, bool final, int *done, size_t *pos,
                      const uint8_t **ptr, uint8_t *area, size_t cap, uint64_t *n_reads, uint64_t *n_bytes)
{
    const uint64_t base = c->b[l].file_off, S = slot(c, l);
    int i = *done, queued = 0;
    while (i < n) {
        /* one run: slots whose page ranges touch or overlap */
        uint64_t a, e;
        cache_pages(c, l, js[i], js[i] + 1, &a, &e);
        int k = i + 1;
        while (k < n) {
            uint64_t a2, e2;
            cache_pages(c, l, js[k], js[k] + 1, &a2, &e2);
            if (a2 > e || *pos + (e2 - a) > cap) break;
            e = e2;
            k++;
        }
        if (k == n && !final) break;
        if (*pos + (e - a) > cap) {
            if (*pos == 0) return pf_fail(PINFER_ENOMEM, "I/O staging area of %zu bytes cannot hold one slot", cap);
            break;
        }
        int rc = pf_io_read(c->io, a, (size_t)(e - a), area + *pos, 0);
        if (rc) return rc;
        for (int q = i; q < k; q++) ptr[q] = area + *pos + (base + (uint64_t)js[q] * S - a);
        ++*n_reads;
        *n_bytes += e - a;
        *pos += (size_t)(e - a);
        i = k;
        queued++;
    }
    *done = i;
    return queued ? pf_io_submit(c->io) : 0;
}

/* Reads of the slots js[0..n) of layer l into area (cap bytes): as many as fit (a prefix). */
static int fetch_into(struct pf_cache *c, int l, const int *js, int n, const uint8_t **ptr, uint8_t *area, size_t cap,
                      uint64_t *n_reads, uint64_t *n_bytes)
{
    int done = 0;
    size_t pos = 0;
    int rc = fetch_runs(c, l, js, n, true, &done, &pos, ptr, area, cap, n_reads, n_bytes);
    return rc ? rc : done;
}

static int cache_wait(struct pf_cache *c)
{
    uint64_t tags[64];
    while (pf_io_pending(c->io) > 0) {
        double t0 = pf_now();
        int rc = pf_io_reap(c->io, tags, 64, 1);
        c->io_wait_s += pf_now() - t0;
        if (rc < 0) return rc;
    }
    return 0;
}

bool pf_cache_resident(const struct pf_cache *c, int l, int j)
{
    return j < c->n_hot[l] || c->entry_of[(size_t)l * (size_t)c->n_ff + (size_t)j] >= 0;
}

int pf_cache_read_bytes(struct pf_cache *c, uint64_t off, size_t len, const uint8_t **out)
{
    const uint64_t a = off / PAGE * PAGE, e = round_up(off + len, PAGE);
    if (e - a > c->stage_cap) return pf_fail(PINFER_ENOMEM, "read of %zu bytes exceeds the staging area", len);
    int rc = pf_io_read(c->io, a, (size_t)(e - a), c->stage, 0);
    if (rc || (rc = pf_io_submit(c->io)) || (rc = cache_wait(c)) < 0) return rc;
    *out = c->stage + (off - a);
    return 0;
}

/* ==== read rounds ==== */

#define PF_CACHE_EARLY_READS 24 /* misses a look-up collects before it sends their reads */

int pf_cache_round_begin(struct pf_cache *c, int l, const int *cand, int i0, int n, int cs, const uint8_t **slotp)
{
    const bool pre = c->pre_layer == l;
    c->round_id++; /* claims in this round spare the entries it looks up */
    int n_miss = 0, i1 = i0, done = 0; /* misses found; of them, reads queued (fetch_runs) */
    size_t pos = 0;                    /* staging bytes those take */
    c->r_hits_cold = c->hits_cold;
    uint64_t need = 0, last_end = 0;
    /* the candidates of whole clusters from i0's on, while their misses fit in the staging
       area, counted as fetch_into will place them (runs of touching pages share them) */
    while (i1 < n) {
        const int cl = cand[i1] / cs, m0 = n_miss;
        const uint64_t need0 = need, last0 = last_end, hh = c->hits_hot, hc = c->hits_cold;
        int e = i1;
        for (; e < n && cand[e] / cs == cl; e++) {
            int j = cand[e];
            slotp[j] = pf_cache_lookup(c, l, j);
            if (slotp[j]) continue;
            if (pre && c->pre_ptr[j]) continue; /* read ahead, in flight or landed */
            c->miss[n_miss++] = j;
            uint64_t a, z;
            cache_pages(c, l, j, j + 1, &a, &z);
            if (n_miss > 1 && a <= last_end) { if (z > last_end) need += z - last_end; }
            else need += z - a;
            if (z > last_end) last_end = z;
        }
        if (need > c->stage_cap && i1 > i0) {
            /* does not fit: this cluster starts the next round, where it is looked up again
               (so its look-ups are not counted twice) */
            n_miss = m0;
            need = need0;
            last_end = last0;
            c->hits_hot = hh;
            c->hits_cold = hc;
            break;
        }
        i1 = e;
        /* the runs complete so far go out now, so the disk starts while the look-ups go on */
        if (n_miss - done >= PF_CACHE_EARLY_READS) {
            int rc = fetch_runs(c, l, c->miss, n_miss, false, &done, &pos, c->mptr, c->stage, c->stage_cap, &c->reads,
                                &c->bytes_read);
            if (rc) { cache_wait(c); return rc; }
        }
    }
    c->rounds++;
    c->r_layer = l;
    c->r_i0 = i0;
    c->r_i1 = i1;
    c->r_cand = cand;
    c->r_slotp = slotp;
    c->r_miss = n_miss;
    c->r_got = 0;
    if (!n_miss) return i1;
    int rc = fetch_runs(c, l, c->miss, n_miss, true, &done, &pos, c->mptr, c->stage, c->stage_cap, &c->reads, &c->bytes_read);
    if (rc) { cache_wait(c); return rc; }
    const int got = done;
    c->misses += (uint64_t)got;
    c->r_got = got;
    if (got < n_miss) {
        cache_wait(c);
        return pf_fail(PINFER_ENOMEM, "I/O staging area too small for one cluster of slots");
    }
    return i1;
}

int pf_cache_round_wait(struct pf_cache *c, uint8_t **dst)
{
    int rc = cache_wait(c); /* this round's reads and any read-ahead still in flight */
    if (rc < 0) return rc;
    const uint8_t **slotp = c->r_slotp;
    for (int i = 0; i < c->r_got; i++) slotp[c->miss[i]] = c->mptr[i];
    if (dst) {
        /* claims spare the entries this round asked for (its cold hits and earlier claims), so
           r_got claims all succeed while hits + r_got <= n_cold */
        const uint64_t hits = c->hits_cold - c->r_hits_cold;
        c->r_claimed = c->r_got > 0 && c->n_cold > 0 && hits + (uint64_t)c->r_got <= (uint64_t)c->n_cold;
        for (int i = c->r_i0; i < c->r_i1; i++) dst[c->r_cand[i]] = NULL; /* read ahead, or resident */
        for (int i = 0; c->r_claimed && i < c->r_got; i++) dst[c->miss[i]] = claim(c, c->r_layer, c->miss[i]);
    }
    if (c->pre_layer == c->r_layer)
        for (int i = c->r_i0; i < c->r_i1; i++) {
            int j = c->r_cand[i];
            if (!slotp[j] && c->pre_ptr[j]) { slotp[j] = c->pre_ptr[j]; c->pre_used++; }
        }
    return 0;
}

struct copy_task {
    uint8_t **dst;
    const uint8_t **src;
    int n;
    size_t size;
};

static void copy_fn(void *arg, int ith, int nth)
{
    const struct copy_task *t = arg;
    long lo, hi;
    pf_split(t->n, ith, nth, &lo, &hi);
    for (long i = lo; i < hi; i++) memcpy(t->dst[i], t->src[i], t->size);
}

void pf_cache_round_end(struct pf_cache *c, struct pf_pool *pool)
{
    const int l = c->r_layer;
    if (c->r_claimed) {
        /* entries claimed by round_wait, copied by the caller */
    } else if (c->r_got <= c->n_cold) {
        /* the entries first (a claim spares the round's entries, so the claims are distinct
           entries; one may find none left), then the copies on the pool's threads */
        int n = 0;
        for (int i = 0; i < c->r_got; i++) {
            uint8_t *d = claim(c, l, c->miss[i]);
            if (d) { c->mdst[n] = d; c->mptr[n] = c->mptr[i]; n++; }
        }
        struct copy_task t = { c->mdst, c->mptr, n, slot(c, l) };
        if (n) pf_pool_run(pool, copy_fn, &t);
    } else
        for (int i = 0; i < c->r_got; i++) pf_cache_insert(c, l, c->miss[i], c->mptr[i]);
    if (c->pre_layer == l)
        for (int i = c->r_i0; i < c->r_i1; i++) {
            int j = c->r_cand[i];
            if (c->pre_ptr[j] && c->r_slotp[j] == c->pre_ptr[j]) pf_cache_insert(c, l, j, c->pre_ptr[j]);
        }
    c->r_got = 0;
    c->r_claimed = false;
}

int pf_cache_unit_end(struct pf_cache *c)
{
    /* the read-ahead of the unit just run is spent; one for another unit (a mixture's expert
       that runs next in this layer) stays until pf_cache_read_ahead_drop */
    return c->pre_layer == c->r_layer ? pf_cache_read_ahead_drop(c) : 0;
}

int pf_cache_read_ahead_drop(struct pf_cache *c)
{
    if (c->pre_layer < 0) return 0;
    /* forget it; the reads are done (waited in the rounds, or now) */
    int rc = cache_wait(c) < 0 ? PINFER_EIO : 0;
    for (int i = 0; i < c->n_pre; i++) c->pre_ptr[c->pre_list[i]] = NULL;
    c->n_pre = 0;
    c->pre_layer = -1;
    return rc;
}

/* ==== read-ahead ==== */

bool pf_cache_read_ahead_ready(const struct pf_cache *c) { return c->pre && c->pre_layer < 0; }

int pf_cache_read_ahead(struct pf_cache *c, int l, const int *js, int n)
{
    if (!pf_cache_read_ahead_ready(c)) return 0;
    const uint8_t **ptr = c->mptr;
    int got = fetch_into(c, l, js, n, ptr, c->pre, c->stage_cap, &c->pre_reads, &c->pre_bytes);
    if (got < 0) return got;
    for (int i = 0; i < got; i++) {
        c->pre_list[i] = js[i];
        c->pre_ptr[js[i]] = ptr[i];
    }
    c->n_pre = got;
    c->pre_slots += (uint64_t)got;
    c->pre_layer = l;
    return got;
}

/* ==== streaming a layer for a batch ==== */

/* Queues the read of slots [j0, j1) of layer l into half h of the staging area; returns where
 * slot j0 will be. Pieces of at most 1 MiB, tagged h. */
static const uint8_t *read_chunk(struct pf_cache *c, int l, int j0, int j1, int h, int *pending)
{
    const size_t half = c->stage_cap / 2 / PAGE * PAGE;
    const uint64_t base = c->b[l].file_off, S = slot(c, l);
    uint64_t a, e;
    cache_pages(c, l, j0, j1, &a, &e);
    uint8_t *dst = c->stage + (size_t)h * half;
    for (uint64_t o = a; o < e; o += 1u << 20) {
        size_t len = (size_t)(e - o < (1u << 20) ? e - o : (1u << 20));
        if (pf_io_read(c->io, o, len, dst + (o - a), (uint64_t)h)) return NULL;
        pending[h]++;
        c->prefill_reads++;
        c->prefill_bytes += len;
    }
    if (pf_io_submit(c->io)) return NULL;
    return dst + (base + (uint64_t)j0 * S - a);
}

/* Waits until half h's reads are all in. */
static int wait_half(struct pf_cache *c, int h, int *pending)
{
    uint64_t tags[16];
    while (pending[h] > 0) {
        double t0 = pf_now();
        int n = pf_io_reap(c->io, tags, 16, 1);
        c->prefill_wait_s += pf_now() - t0;
        if (n < 0) return n;
        for (int i = 0; i < n; i++) pending[tags[i] & 1]--;
    }
    return 0;
}

void pf_cache_stream_begin(struct pf_cache *c, int l, struct pf_cache_stream *s)
{
    const size_t half = c->stage_cap / 2 / PAGE * PAGE;
    const int cs = c->chunk_slots;
    memset(s, 0, sizeof *s);
    s->l = l;
    s->chunk = (int)((half - 2 * PAGE) / slot(c, l)) / cs * cs;
    if (s->chunk < cs) s->chunk = cs; /* the plan gives the staging area room for it */
    s->n_hot = c->n_hot[l] / cs * cs;
}

int pf_cache_stream_next(struct pf_cache *c, struct pf_cache_stream *s, const uint8_t **p, int *j0, int *n)
{
    const int F = c->n_ff, ch = s->chunk, l = s->l;
    if (s->j < s->n_hot) {
        /* the hot slots first, straight from memory, in whole chunks */
        *j0 = s->j;
        *n = s->n_hot - s->j < ch ? s->n_hot - s->j : ch;
        *p = c->hot[l] + (size_t)s->j * slot(c, l);
        s->j += *n;
        return 1;
    }
    if (s->j >= F) return 0;
    if (s->j == s->n_hot && s->k == 0 && !s->cur) {
        int j1 = s->j + ch < F ? s->j + ch : F;
        if (!(s->cur = read_chunk(c, l, s->j, j1, 0, s->pending))) goto io_fail;
    }
    int j1 = s->j + ch < F ? s->j + ch : F;
    const uint8_t *next = NULL;
    if (j1 < F) {
        int j2 = j1 + ch < F ? j1 + ch : F;
        if (!(next = read_chunk(c, l, j1, j2, (s->k + 1) & 1, s->pending))) goto io_fail;
    }
    int rc = wait_half(c, s->k & 1, s->pending);
    if (rc < 0) { cache_wait(c); return rc; }
    *p = s->cur;
    *j0 = s->j;
    *n = j1 - s->j;
    s->cur = next;
    s->j = j1;
    s->k++;
    return 1;
io_fail:
    cache_wait(c);
    return PINFER_EIO;
}

/* ==== statistics ==== */

void pf_cache_get_stats(const struct pf_cache *c, struct pinfer_cache_stats *st)
{
    memset(st, 0, sizeof *st);
    st->budget = c->budget;
    st->fixed_bytes = c->fixed_bytes;
    st->hot_bytes = c->hot_bytes;
    st->cold_bytes = c->cold_bytes;
    uint64_t hs = 0; /* a mixture's experts pin different counts (share_hot): their mean */
    for (int u = 0; u < c->n_units; u++) hs += (uint64_t)c->n_hot[u];
    st->hot_slots = c->n_units ? (int)(hs / (uint64_t)c->n_units) : 0;
    st->cold_entries = c->n_cold;
    st->io_backend = pf_io_backend_name(c->io);
    st->io_depth = pf_io_queue_depth(c->io);
    st->hits = c->hits_hot + c->hits_cold;
    st->misses = c->misses;
    st->reads = c->reads;
    st->bytes_read = c->bytes_read;
    st->io_wait_s = c->io_wait_s;
    st->evictions = c->evictions;
    st->rounds = c->rounds;
    st->prefetch_reads = c->pre_reads;
    st->prefetch_bytes = c->pre_bytes;
    st->prefetch_slots = c->pre_slots;
    st->prefetch_used = c->pre_used;
    st->prefill_reads = c->prefill_reads;
    st->prefill_bytes = c->prefill_bytes;
    st->prefill_wait_s = c->prefill_wait_s;
}

void pf_cache_stats_reset(struct pf_cache *c)
{
    c->hits_hot = c->hits_cold = c->misses = c->reads = c->bytes_read = c->evictions = c->rounds = 0;
    c->prefill_reads = c->prefill_bytes = 0;
    c->pre_reads = c->pre_bytes = c->pre_slots = c->pre_used = 0;
    c->io_wait_s = c->prefill_wait_s = 0;
}
