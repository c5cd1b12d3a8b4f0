/* The neuron cache: under a memory budget (pinfer_model_params.mem_budget) a prepared model's
 * FFN bundles stay in the file, and this cache, owned by the context, serves their slots
 * (docs/offload.md). Memory is planned in segments:
 *
 *   fixed  what the model loaded (attention, embeddings, output, norms, predictors), the
 *          context's buffers (KV cache, activations, logits, scratch), this cache's tables and
 *          its staging area for reads;
 *   hot    per layer the slots [0, n_hot[l]) (slots are in hotness order), pinned: read once at
 *          creation, contiguous as in the file;
 *   cold   entries of one slot each over all layers, filled from the staging area after a
 *          step that read them; when full, the entry evicted is the one least likely to be
 *          asked for at the next token, by its unit, its bucket of slots and how many tokens
 *          ago it was last asked for (pf_cache_hazard: prepare's measured reuse; without it,
 *          the least recently used).
 *
 * Reads are direct (src/io/): a run of adjacent missing slots becomes one read of the 4 KiB
 * pages that cover it, into the staging area; runs whose pages touch are coalesced.
 *
 * The cache is opaque: the FFN (src/ffn/offload.c) reaches it through the functions below.
 * Slots are keyed by (unit, slot): a unit is a layer's FFN today; a Mixture-of-Experts model
 * makes each (layer, expert) a unit of its own, unit = layer * n_expert + expert. */
#ifndef PF_CACHE_CACHE_H
#define PF_CACHE_CACHE_H

#include "pinfer.h"
#include "core/threadpool.h"
#include "io/io.h"
#include "model/model.h"

#include <stdbool.h>
#include <stdint.h>

struct pf_cache;

#define PF_CACHE_BUCKETS 32  /* buckets of slots, as prepare measures reuse (prepare/reuse.h) */
#define PF_CACHE_AGES 129    /* ages 0..128 tokens; older entries count as 128 */

/* The eviction law from prepare's reuse measurements: hit[b * n_win + k] is the fraction of
 * bucket b's requests whose previous request is at most win[k] tokens earlier (-1: not
 * measured), i.e. the distribution G_b of the gap between requests for a slot. Then an entry of
 * bucket b last asked for a tokens ago is asked for at the next token with probability
 *     haz[b][a] = 1 - S_b(a + 1) / S_b(a),   S_b = 1 - G_b        (0 when S_b(a) = 0),
 * with S_b(0) = 1, log S_b linear between the measured windows (exact for a slot asked for
 * independently at each token, whose hazard is the same at every age; linear where S_b reaches
 * 0), and flat after the last measured one (older entries: 0, evicted first).
 * n_b buckets (<= PF_CACHE_BUCKETS; the others get 0). */
void pf_cache_hazard(const double *win, int n_win, const float *hit, int n_b, float haz[PF_CACHE_BUCKETS][PF_CACHE_AGES]);

/* What the context asks of the cache. */
struct pf_cache_config {
    float hot_frac;         /* share of what is left for the FFN pinned as hot slots; < 0: 0.9 */
    bool prefetch;          /* a second staging area for reading the next layer ahead */
    uint64_t stage_bytes;   /* staging area; 0 = a layer's FFN if small, else 16 MiB */
    int chunk_slots;        /* batches stream a layer in multiples of this many slots (the
                               FFN's panel height); the hot segment is rounded to it */
    enum pf_io_backend backend;
    int io_depth;           /* reads in flight at most; 0 = io/io.h's default */
    int shares;             /* contexts sharing the model's budget (< 2: one): this one plans in
                               an equal share of what the resident weights leave */
};

/* The segments for a budget. */
struct pf_cache_plan {
    uint64_t budget;
    uint64_t weights;   /* the model's resident weights */
    uint64_t ctx;       /* the context's buffers */
    uint64_t meta;      /* cache tables */
    uint64_t stage;     /* staging area (twice the size with prefetch) */
    bool prefetch;      /* prefetch the next layer's slots */
    uint64_t hot, cold; /* the rest, split */
    int n_hot;          /* slots pinned per layer */
    int n_cold;         /* cold entries */
};

/* Plans the segments for the model's budget, given its resident weights and the context's
 * buffer bytes. PINFER_ENOMEM with the smallest workable budget in the message if the fixed
 * segment does not fit. */
int pf_cache_plan(const struct pinfer_model *m, uint64_t ctx_bytes, const struct pf_cache_config *cfg,
                  struct pf_cache_plan *plan);

/* The hot slots of each unit (out: n_units counts) for a plan's n_hot: n_hot in every layer of
 * a dense model; a mixture's experts share the same bytes by frequency x expert share (the
 * most used slots per token over all experts, whole chunks of chunk_slots). */
void pf_cache_hot_split(const struct pinfer_model *m, int n_hot, int chunk_slots, int *out);

/* Creates the cache for plan: opens the file for direct reads, reads the hot slots. On success
 * *out is owned by the caller (pf_cache_free). */
int pf_cache_new(struct pf_cache **out, const struct pinfer_model *m, const struct pf_cache_plan *plan,
                 const struct pf_cache_config *cfg);
void pf_cache_free(struct pf_cache *c);

/* ==== Look-up ==== */

/* Where slot j of unit l is resident (hot or cold; a cold hit makes the entry the most
 * recently asked for and counts), or NULL. */
const uint8_t *pf_cache_lookup(struct pf_cache *c, int l, int j);
/* Unit l's hot slots: [0, n) are always resident, slot j < n at pf_cache_hot_slot (neither
 * touches the cache's state, so other threads may call them during a look-up; their callers
 * count what they used with pf_cache_count_hot). */
int pf_cache_n_hot(const struct pf_cache *c, int l);
const uint8_t *pf_cache_hot_slot(const struct pf_cache *c, int l, int j);
void pf_cache_count_hot(struct pf_cache *c, int n);
/* Whether slot j of unit l is resident (no LRU update, no counting). */
bool pf_cache_resident(const struct pf_cache *c, int l, int j);
/* Copies a slot just read (src) into a cold entry, evicting one when full (never one the
 * current read round asked for). No-op without cold entries, if the slot is already resident,
 * or if every entry was asked for in this round. */
void pf_cache_insert(struct pf_cache *c, int l, int j, const uint8_t *src);

/* The next n tokens begin (the clock the eviction law counts ages in). */
void pf_cache_next_tokens(struct pf_cache *c, int n);

/* ==== Read rounds of a single-token step ====
 * A step's candidate slots cand[0..n) (ascending) of unit l go through rounds:
 *   i1 = pf_cache_round_begin(...)  looks up cand[i0..] in whole clusters while the misses fit
 *                                   the staging area; slotp[cand[i]] = the resident address, or
 *                                   NULL for a slot not resident (read now, or being read
 *                                   ahead); submits the reads; returns the round's end i1
 *   pf_cache_round_wait(c, dst)      waits for the reads (and any read-ahead in flight); then
 *                                   every slotp[cand[i]] of the round is set; with dst (indexed
 *                                   by slot), each slot read gets the cold entry it goes into
 *                                   in dst[j], for the caller to copy it there (from slotp[j],
 *                                   while its rows are in the core's caches for the compute)
 *                                   before pf_cache_round_end, or NULL: left to round_end. The
 *                                   entries are claimed early only when that cannot evict one
 *                                   the round still reads (its cold hits and its reads fit the
 *                                   cold segment together)
 *   pf_cache_round_end(c, pool)      the slots read (or adopted from the read-ahead) that are
 *                                   not copied yet enter the cold segment (copied by the pool's
 *                                   threads); their staging copies are then free again
 * and at the end of the unit's step pf_cache_unit_end drops what was read ahead for it
 * (pf_cache_read_ahead_drop drops a read-ahead for any unit: after a layer, whichever of its
 * experts it was for).
 * cand and slotp (indexed by slot) belong to the caller and must stay valid for the round. */
int pf_cache_round_begin(struct pf_cache *c, int l, const int *cand, int i0, int n, int cluster,
                         const uint8_t **slotp);
int pf_cache_round_wait(struct pf_cache *c, uint8_t **dst);
void pf_cache_round_end(struct pf_cache *c, struct pf_pool *pool);
int pf_cache_unit_end(struct pf_cache *c);
int pf_cache_read_ahead_drop(struct pf_cache *c);

/* ==== Read-ahead (predictor mode, between layers) ==== */

/* Whether a read-ahead can start now (there is a read-ahead area and it is free). */
bool pf_cache_read_ahead_ready(const struct pf_cache *c);
/* Reads slots js[0..n) (ascending, not resident) of unit l into the read-ahead area, as many
 * as fit; a round of unit l adopts them. Returns how many, or a negative code. */
int pf_cache_read_ahead(struct pf_cache *c, int l, const int *js, int n);

/* ==== Streaming a unit for a batch ====
 * The hot slots straight from memory, the rest through the two halves of the staging area:
 * the read of chunk k+1 is in flight while chunk k is computed. Chunks are multiples of the
 * configured chunk_slots, so their sums equal one whole-unit call's. */
struct pf_cache_stream {
    int l, j, n_hot, chunk, k;
    int pending[2];
    const uint8_t *cur;
};
void pf_cache_stream_begin(struct pf_cache *c, int l, struct pf_cache_stream *s);
/* The next chunk: slots [*j0, *j0 + *n) at *p. 1 while there is one, 0 at the end, or a
 * negative code (reads still in flight are drained first). */
int pf_cache_stream_next(struct pf_cache *c, struct pf_cache_stream *s, const uint8_t **p, int *j0, int *n);

/* ==== Other reads ==== */

/* Reads len bytes at file offset off (any alignment, len <= staging area - 2 pages) into the
 * staging area and waits; *out points at them until the next read. For small on-demand reads
 * (token embedding rows). */
int pf_cache_read_bytes(struct pf_cache *c, uint64_t off, size_t len, const uint8_t **out);

/* ==== Statistics ==== */

void pf_cache_get_stats(const struct pf_cache *c, struct pinfer_cache_stats *st);
void pf_cache_stats_reset(struct pf_cache *c);

#endif
