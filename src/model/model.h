/* Internal view of a loaded model (the public handle struct pinfer_model): weights only, never
 * state. A context (src/runtime/) holds everything a run changes. Weight matrices are reached
 * through struct pf_weight; a prepared model's FFN through struct pf_bundles, whose slots come
 * from the arena or, under a memory budget, from the neuron cache (src/cache/). */
#ifndef PF_MODEL_MODEL_H
#define PF_MODEL_MODEL_H

#include "pinfer.h"
#include "gguf/gguf.h"
#include "tokenizer/vocab.h"

/* A 2-D weight: n_out rows of n_in elements of `type`, row_size bytes per row. */
struct pf_weight {
    const void *data;
    int type;
    int64_t n_in, n_out;
    size_t row_size;
    const char *name; /* tensor name in the file */
};

/* Bytes of all of w's rows (what a product with it reads). */
static inline double pf_weight_bytes(const struct pf_weight *w) { return (double)w->row_size * (double)w->n_out; }

/* The three parts of a bundle slot, in slot order. */
enum { PF_PART_GATE = 0, PF_PART_UP = 1, PF_PART_DOWN = 2 };

/* One layer's FFN in bundle layout (docs/sparse-format.md). */
struct pf_bundles {
    const void *data;      /* n_ff slots of slot_size bytes, each 3 rows of n_embd elements:
                              gate row, up row, down column (transposed), part p of type[p] at
                              byte off[p]; NULL when offloaded (a memory budget: src/cache/
                              serves the slots) */
    uint64_t file_off;     /* absolute offset of the bundle tensor in the file */
    int type[3];           /* per part (PF_PART_*): gate and up as in the source model, down as
                              prepare re-quantized it */
    int n_embd, n_ff;
    size_t row[3];         /* bytes of each part (n_embd elements of its type) */
    size_t off[3];         /* byte offset of each part in a slot: 0, row[0], row[0] + row[1] */
    size_t slot_size;      /* row[0] + row[1] + row[2] */
    int32_t *perm;         /* slot -> original neuron index (n_ff); owned by the model */
    float *freq;           /* slot activation frequency, hottest first (n_ff); owned */
    float share;           /* fraction of tokens that run this unit: 1 for a dense layer, an
                              expert's share of the calibration tokens (pinfer.bundle.N.E.share;
                              experts used / experts when absent) */
    struct pf_weight fc1;  /* predictor: n_embd -> r (n_out = r); data NULL if none */
    struct pf_weight fc2;  /* r -> n_ff, rows in slot order */
    float pred_threshold;
};

/* Units of a prepared model: one set of bundles (and predictor) per layer of a dense model, per
 * (layer, expert) of a mixture, unit u = l * pf_model_experts(m) + e. Their names in the file
 * (docs/sparse-format.md): tensors blk.L.<what>.weight (dense) or blk.L.<what>.E.weight (an
 * expert, as llama.cpp's split expert tensors blk.L.ffn_gate.E.weight); keys <prefix>.L.<what>
 * or <prefix>.L.E.<what>. e < 0: the dense form. */
void pf_unit_tensor_name(char *buf, size_t n, int l, int e, const char *what);
void pf_unit_key(char *buf, size_t n, const char *prefix, int l, int e, const char *what);
/* "layer L" or "layer L expert E", for messages. */
void pf_unit_name(char *buf, size_t n, int l, int e);

/* The reuse prepare measured (docs/sparse-format.md, "Reuse"), read from a prepared model's
 * file g (as parsed; m for its units): the windows pinfer.prepare.reuse_windows into win (at
 * most max; each >= 1, ascending), returning their count, or 0 when absent or malformed; and
 * unit u's curve pinfer.bundle.N[.E].<what> (reuse_occ, reuse_hit), K windows per bucket,
 * each value -1 (not measured) or in [0, hi]: its f32 data (unaligned: copy it) and *n, or
 * NULL when absent or malformed. */
int pf_model_reuse_windows(const struct gguf_file *g, double *win, int max);
const void *pf_model_reuse_curve(const struct gguf_file *g, const struct pinfer_model *m, int u, const char *what, int K, float hi,
                           uint64_t *n);

/* One expert's FFN in a mixture of experts: its three matrices, each a slice of the layer's
 * merged 3-D tensor (ffn_*_exps, expert e at e * n_out rows) or a 2-D tensor of its own (the
 * older split layout, blk.N.ffn_gate.E.weight). */
struct pf_expert {
    struct pf_weight gate;           /* n_embd -> n_ff */
    struct pf_weight up;             /* n_embd -> n_ff */
    struct pf_weight down;           /* n_ff -> n_embd */
};

struct pf_layer {
    const float *attn_norm;          /* (n_embd) */
    struct pf_weight wq;             /* n_embd -> n_head*head_dim */
    struct pf_weight wk, wv;         /* n_embd -> n_head_kv*head_dim */
    struct pf_weight wo;             /* n_head*head_dim -> n_embd */
    const float *ffn_norm;           /* (n_embd) */
    struct pf_weight ffn_gate;       /* n_embd -> n_ff      (data NULL in prepared models) */
    struct pf_weight ffn_up;         /* n_embd -> n_ff      (data NULL in prepared models) */
    struct pf_weight ffn_down;       /* n_ff -> n_embd      (data NULL in prepared models) */
    struct pf_bundles *ffn_b;        /* prepared models: the FFN as neuron bundles (a mixture: its
                                        n_expert experts' bundles, ffn_b[e]); else NULL */
    /* mixture of experts (info.n_expert > 0; ffn_gate/up/down then have data NULL) */
    struct pf_weight ffn_router;     /* n_embd -> n_expert (ffn_gate_inp), any type */
    struct pf_expert *exp;           /* (n_expert) into pinfer_model.experts; NULL if dense */
};

/* Finds the MoE tensors of layer l (model/moe.c): the router and every expert's gate, up and
 * down, merged or split, each type and shape checked; data holds file offsets until the
 * weights are read. 0 or a negative code naming the tensor. */
int pf_moe_find_layer(struct pinfer_model *m, int l);
/* Bytes of all experts' matrices of layer l. */
double pf_moe_layer_bytes(const struct pinfer_model *m, int l);

/* Fills b's type, row, off and slot_size for slots of the three part types (gate, up, down) and
 * rows of n_embd (model/bundle.c). Checks what the sparse FFN needs: each type computable, with
 * gather dots (gate, up) or down kernels (down), a row a whole number of its blocks, each part at
 * an offset its type's loads may use (F32: 4 bytes; every block type: 2). 0, or
 * PINFER_EUNSUPPORTED (no kernels for a type) / PINFER_EFORMAT, the message naming `what`. */
int pf_bundle_layout(struct pf_bundles *b, const int types[3], int64_t n_embd, const char *what);

/* Test hook (NULL in every real run): called by pinfer_model_load after the file is parsed and
 * before its weights are read, so a test can truncate or replace the file in that window. */
extern void (*pf_model_after_parse_hook)(const char *path);

struct pinfer_model {
    struct pinfer_model_info info;
    int head_dim;
    struct gguf_file *gguf;
    struct pf_vocab *vocab;
    struct pf_weight tok_embd;       /* n_embd x n_vocab rows (row = one token's embedding) */
    const float *output_norm;        /* (n_embd) */
    struct pf_weight output;         /* n_embd -> n_vocab (tok_embd when tied) */
    struct pf_layer *layers;         /* n_layer */
    void *arena;                     /* weights copied out of the file (NULL with use_mmap) */
    size_t arena_size;               /* virtual size (offloaded bundles' room is never touched) */
    size_t resident_bytes;           /* bytes of the arena actually read (resident) */
    uint64_t mem_budget;             /* bytes, 0 = none: FFN bundles offloaded (src/cache/) */
    char *path;                      /* with a budget: the file, for direct reads */
    uint64_t embd_file_off;          /* token_embd.weight's offset in the file (tok_embd.data
                                        is NULL when its rows are read on demand) */
    float *rope_freqs;               /* (n_rot/2) RoPE frequency divisors (rope_freqs.weight), or NULL */
    float *f32_norms;                /* all norm vectors as f32: output, then attn/ffn per layer */
    struct pf_weight *norm_src;      /* during loading only: where each norm lies in the file */
    struct pf_bundles *bundles;      /* prepared models: one per unit (n_layer, or n_layer x
                                        n_expert), pointed to by layers[l].ffn_b */
    int n_units;                     /* prepared models: entries of bundles */
    uint64_t pred_bytes;             /* prepared: all predictor tensors' bytes */
    struct pf_expert *experts;       /* MoE: (n_layer, n_expert), owned; layers[l].exp points in */
};

/* Experts per layer as units count them: n_expert, or 1 for a dense model. */
static inline int pf_model_experts(const struct pinfer_model *m) { return m->info.n_expert > 0 ? m->info.n_expert : 1; }

/* Finds a tensor and checks its type and shape (ne0 = n_in, ne1 = n_out, no more dims); w->data
 * gets its file offset. 0, 1 when optional and absent, or a negative code (model/load.c). */
int pf_model_find_weight(struct pinfer_model *m, const char *name, int64_t n_in, int64_t n_out,
                         struct pf_weight *w, bool optional);

#endif
