/* The neuron cache: under a memory budget (pinfer_model_params.mem_budget) a prepared model's
 * FFN bundles stay in the file, and this cache, owned by the context, serves their slots
 * (docs/offload.md). Memory is planned in segments:
 *
 *   fixed  what the model loaded (attention, embeddings, output, norms, predictors), the
 *          context's buffers (KV cache, activations, logits, scratch), this cache's tables and
 *          its staging area for reads;
 *   hot    per layer the slots [0, n_hot[l]) (slots are in hotness order), pinned: read once at
 *          creation, contiguous as in the file;
 *   cold   entries of one slot each, LRU over all layers, filled from the staging area after a
 *          step that read them.
 *
 * Reads are direct (src/io/): a run of adjacent missing slots becomes one read of the 4 KiB
 * pages that cover it, into the staging area; runs whose pages touch are coalesced. */
#ifndef PF_CACHE_CACHE_H
#define PF_CACHE_CACHE_H

#include "io/io.h"
#include "model/model.h"
#include "sparse/sparse.h"

struct pf_cache {
    int n_layer, n_ff;
    size_t slot_size, stride;   /* bytes of a slot; of a cold entry (slot rounded up to 64) */
    const struct pf_bundles *b; /* the model's bundles (n_layer) */
    struct pf_io *io;

    /* hot segment */
    int *n_hot;                 /* per layer */
    uint8_t **hot;              /* per layer: slot j < n_hot[l] at hot[l] + j * slot_size */
    void *hot_mem;
    size_t hot_bytes;

    /* cold segment: LRU, most recent at head */
    int n_cold;
    uint8_t *cold;              /* n_cold entries of stride bytes */
    int32_t *entry_of;          /* (n_layer * n_ff): cold entry holding slot, or -1 */
    int32_t *key;               /* entry -> layer * n_ff + slot, or -1 when free */
    int32_t *prev, *next;
    int32_t head, tail;
    size_t cold_bytes;

    /* staging area for the reads of one step, and (predictor mode) a second one for the
       next layer's prefetch */
    uint8_t *stage, *pre;
    size_t stage_cap, stage_alloc;
    int pre_layer;              /* layer whose slots are prefetched, -1 if none */
    const uint8_t **pre_ptr;    /* (n_ff) where a prefetched slot of pre_layer is, else NULL */
    int *pre_list, n_pre;       /* the prefetched slots */
    uint64_t pre_reads, pre_bytes, pre_slots, pre_used;

    /* what the plan decided (for the reports) */
    uint64_t budget, fixed_bytes, meta_bytes;

    /* counters (single-token steps and batches alike) */
    uint64_t hits_hot, hits_cold, misses, reads, bytes_read, evictions, rounds;
    double io_wait_s;
    uint64_t prefill_reads, prefill_bytes; /* batches stream the layer instead */
    double prefill_wait_s;
};

struct pf_cache_plan {
    uint64_t budget;
    uint64_t weights;   /* the model's resident weights */
    uint64_t ctx;       /* the context's buffers */
    uint64_t meta;      /* cache tables */
    uint64_t stage;     /* staging area (twice the size with prefetch) */
    bool prefetch;      /* predictor mode: prefetch the next layer's slots */
    uint64_t hot, cold; /* the rest, split */
    int n_hot;          /* slots pinned per layer */
    int n_cold;         /* cold entries */
};

/* Plans the segments for budget bytes, given the model's resident weights and the context's
 * buffer bytes; hot_frac of what is left for the FFN goes to pinned hot slots (< 0: default).
 * PINFER_ENOMEM with the smallest workable budget in the message if the fixed segment does
 * not fit. */
int pf_cache_plan(const struct pinfer_model *m, uint64_t ctx_bytes, float hot_frac, bool prefetch, struct pf_cache_plan *plan);

/* Creates the cache for plan: opens the file for direct reads with backend, reads the hot
 * slots. */
int pf_cache_new(struct pf_cache **out, const struct pinfer_model *m, const struct pf_cache_plan *plan,
                 enum pf_io_backend backend);
void pf_cache_free(struct pf_cache *c);

/* Where slot j of layer l is resident (hot or cold; a cold hit moves the entry to the head of
 * the LRU and counts), or NULL. */
const uint8_t *pf_cache_lookup(struct pf_cache *c, int l, int j);

/* Copies a slot just read (src) into a cold entry, evicting the least recently used entry
 * when full. No-op without cold entries or if the slot is already resident. */
void pf_cache_insert(struct pf_cache *c, int l, int j, const uint8_t *src);

/* ==== Reads of missing slots (one batch per call, into the staging area) ====
 * pf_cache_fetch queues reads of the slots js[0..n) (ascending) of layer l: every slot's pages,
 * adjacent runs coalesced, placed in the staging area from offset 0; ptr[i] receives the
 * address slot js[i] will have there. Returns how many of the slots fit (a prefix; at least 1
 * when n > 0, unless the staging area is smaller than one slot's pages: PINFER_ENOMEM), and
 * submits the reads. pf_cache_wait reaps them all (I/O wait time is counted). */
int pf_cache_fetch(struct pf_cache *c, int l, const int *js, int n, const uint8_t **ptr);
int pf_cache_wait(struct pf_cache *c);
/* The same into the prefetch area (counted apart; not misses). 0 without a prefetch area. */
int pf_cache_prefetch(struct pf_cache *c, int l, const int *js, int n, const uint8_t **ptr);
/* Whether slot j of layer l is resident (no LRU update, no counting). */
bool pf_cache_resident(const struct pf_cache *c, int l, int j);

/* Reads len bytes at file offset off (any alignment, len <= staging area - 2 pages) into the
 * staging area and waits; *out points at them until the next read. For small on-demand reads
 * (token embedding rows). */
int pf_cache_read_bytes(struct pf_cache *c, uint64_t off, size_t len, const uint8_t **out);

/* The file pages [*a, *e) that cover slots [j0, j1) of layer l (a direct read of them). */
static inline void pf_cache_pages(const struct pf_cache *c, int l, int j0, int j1, uint64_t *a, uint64_t *e)
{
    const uint64_t base = c->b[l].file_off, S = c->slot_size;
    *a = (base + (uint64_t)j0 * S) / PF_IO_ALIGN * PF_IO_ALIGN;
    *e = (base + (uint64_t)j1 * S + PF_IO_ALIGN - 1) / PF_IO_ALIGN * PF_IO_ALIGN;
}

#endif
