/* Private parts of pinfer prepare, shared by its files:
 *   prepare_calib.c  calibration tokens, the forward pass's FFN hook, per-neuron statistics and
 *                    the (input, active mask) pairs for predictors
 *   prepare_write.c  the output file: keys, tensor list, bundles streamed layer by layer
 *   prepare.c        pinfer_prepare: checks, ordering, predictors, report
 * The format is documented in docs/sparse-format.md. */
#ifndef PF_PREPARE_INTERNAL_H
#define PF_PREPARE_INTERNAL_H

#include "pinfer.h"
#include "core/clock.h"
#include "core/progress.h"
#include "model/act.h"
#include "prepare/predictor.h"
#include "prepare/reuse.h"
#include "runtime/ctx.h"

#include <stdbool.h>
#include <stdint.h>

/* 2: per-layer part types (pinfer.bundle.N.types); mixed-type bundles stored as I8 bytes */
#define PF_PREPARED_VERSION 2
#define PF_PREPARE_ALIGN 4096
/* Held-out tokens: blocks of 16 consecutive tokens, every fifth block (tokens 64..79, 144..159,
 * ...), so neighbours of a held-out token, which the previous-token head correlates with it, are
 * mostly held out too. */
#define PF_HELDOUT_BLOCK 16
#define PF_HELDOUT_EVERY 5
#define PF_MIN_CALIB_TOKENS 80

static inline bool pf_prepare_heldout(int t) { return (t / PF_HELDOUT_BLOCK) % PF_HELDOUT_EVERY == PF_HELDOUT_EVERY - 1; }

/* ==== Calibration ==== */

/* One unit's calibration (a dense layer's FFN, or one expert of a mixture's layer: model.h).
 * Its rows are the tokens that ran it, in token order: every token for a dense layer, the
 * tokens routed to the expert for a mixture. */
struct pf_calib_layer {
    int n_rows;       /* tokens that ran the unit */
    int cap;          /* rows x and mask have room for (gathering) */
    float *x;         /* (cap, n_embd) FFN inputs; NULL unless gathering or after release */
    uint8_t *mask;    /* (cap, mask_stride) active bits */
    uint8_t *heldout; /* (cap) mixtures: held-out flag of each row's token; NULL: dense, the
                         rows are the tokens (pf_calib.heldout) */
    uint32_t *count;  /* (n_ff) rows the neuron was "on": act != 0 (ReLU family), or in the
                         row's upper half by |act| (SiLU, GeLU) */
    double *abs_sum;  /* (n_ff) sum of |act| */
};

struct pf_calib {
    int n_layer, n_embd, n_ff, n_tok;
    int n_expert, n_expert_used; /* 0, 0 for a dense model */
    int n_units;              /* n_layer x max(1, n_expert) */
    size_t mask_stride;
    bool relu_family, gather;
    const char *source;       /* "text" or "sample" */
    uint8_t *heldout;         /* (n_tok) */
    struct pf_calib_layer *layers; /* (n_units) */
    /* while running */
    int cur;                  /* token index of the batch being decoded */
    float *tmp;               /* (n_ff) */
    int bad_layer;
    bool oom;                 /* a mixture's unit could not grow */
};

/* Runs the model over the calibration tokens params ask for. stats: over as many other tokens
 * instead, on which the planner's request statistics are measured (pred_freq, reuse_*): slots
 * ranked by their frequency on the calibration tokens look hotter there than they are on any
 * other tokens (the coldest tenth of a 7B's slots were asked for 1.5-2.7x as often in decode as
 * on the tokens that ranked them), so the statistics come from tokens that ranked nothing: a
 * text's next tokens (samples when it has no more), or samples or random ids of another seed.
 * gather: keep inputs and masks for predictor training. On success *out is owned by the caller
 * (pf_calib_free). */
int pf_calib_run(struct pf_calib **out, struct pinfer_model *m, const struct pinfer_prepare_params *p, bool stats,
                 bool gather, struct pf_progress *pg);
void pf_calib_release_layer(struct pf_calib *c, int unit); /* frees x and mask */
void pf_calib_free(struct pf_calib *c);
/* View of one unit's pairs for the predictor code. */
struct pf_pred_data pf_calib_data(const struct pf_calib *c, int unit);

/* ==== Output ==== */

/* What prepare decided for one unit (a layer, or an expert of a mixture's layer). */
struct pf_prep_layer {
    int32_t *perm;            /* (n_ff) slot -> original neuron */
    float *freq, *act_mean;   /* (n_ff) per slot */
    float *pred_freq;         /* (n_ff) per slot: how often the predictor selects it; NULL without one */
    float *reuse_occ, *reuse_hit; /* (PF_REUSE_BUCKETS x PF_REUSE_WINDOWS) with pred_freq: prepare/reuse.h */
    bool has_pred;
    struct pf_predictor pred; /* fc2 rows in original order */
    struct pf_bundles lay;    /* the slot layout: part types, rows, offsets, slot size */
};

struct pf_prep {
    struct pinfer_model *m;
    const char *in_path;
    int n_layer, n_embd, n_ff;
    int n_expert;             /* 0: dense; else units are (layer, expert) */
    int n_units;              /* entries of layers: n_layer x max(1, n_expert) */
    int cluster_size;
    const char *pred_source;  /* "trained", "powerinfer", "none" */
    const struct pf_calib *calib;
    int stat_tokens;          /* tokens of the statistics run (pf_calib_run, stats) */
    uint64_t seed;
    const char *placement;    /* "freq" or "coact" (pinfer.prepare.placement) */
    struct pf_prep_layer *layers; /* (n_units) unit u = layer u / X, expert u % X */
};

/* Layer and expert (-1 for a dense model) of unit u. */
static inline int pf_prep_layer_of(const struct pf_prep *P, int u) { return P->n_expert ? u / P->n_expert : u; }
static inline int pf_prep_expert_of(const struct pf_prep *P, int u) { return P->n_expert ? u % P->n_expert : -1; }

/* The source FFN's matrices of unit u: a dense layer's, or an expert's. */
void pf_prep_unit_weights(const struct pf_prep *P, int u, const struct pf_weight **gate, const struct pf_weight **up,
                          const struct pf_weight **down);

/* The type a layer's down columns are re-quantized to, for a down matrix of type `down`. */
int pf_prepare_down_type(int down, int n_embd);

/* Writes the prepared file (temp + rename). Returns the file size through *bytes. */
int pf_prepare_write(const struct pf_prep *P, const char *out_path, struct pf_progress *pg, uint64_t *bytes);

#endif
