/* pinfer_synth: writes a synthetic llama-architecture GGUF.
 *
 * Keys and tensor names are llama.cpp's (compared against a real converted file in
 * tests/test_synth.c). The file streams: tensors are declared up front, then each one is
 * produced in chunks of rows (about CHUNK_BYTES of output at a time, all threads drawing and
 * quantizing rows of the chunk) and handed to the GGUF writer, so memory stays at a few tens
 * of MB whatever the model size. Quantization uses the reference kernels so the bytes are the
 * same on every CPU. */
#include "synth/synth_internal.h"

#include "core/checked.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/threadpool.h"
#include "gguf/gguf.h"
#include "tensor/kernels.h"
#include "tensor/types.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK_BYTES (16u << 20)
#define DISK_MARGIN (64ull << 20) /* beyond the file: metadata blocks, other writers */

/* ==== Tensor list ==== */

static int add_tensor(struct synth_tensor *ts, int *n, const char *name, enum synth_kind kind, int layer,
                      int type, int n_dims, int64_t ne0, int64_t ne1, int64_t ne2)
{
    struct synth_tensor *t = &ts[(*n)++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->kind = kind;
    t->layer = layer;
    t->type = type;
    t->n_dims = n_dims;
    t->ne[0] = ne0;
    t->ne[1] = n_dims > 1 ? ne1 : 1;
    t->ne[2] = n_dims > 2 ? ne2 : 1;
    t->n_rows = t->ne[1] * t->ne[2];
    if (!pf_row_size(type, ne0, &t->row_bytes))
        return pf_fail(PINFER_EINVAL, "tensor %s: rows of %" PRId64 " do not fit type %s", name, ne0, pf_type_name(type));
    return 0;
}

/* llama.cpp's names and ggml dimension order (ne[0] = row length = input size). Within a
 * layer the FFN order is gate, up, down: the gates of layer l+1 read the mean offset the
 * down rows of layer l leave behind (synth_rows.c). */
static int build_tensors(struct synth_tensor *ts, int *n, const struct synth_cfg *c)
{
    const int64_t d = c->n_embd, q = (int64_t)c->n_head * c->head_dim, kv = (int64_t)c->n_head_kv * c->head_dim;
    char nm[64];
    int rc;
    *n = 0;
    if ((rc = add_tensor(ts, n, "token_embd.weight", SK_EMBD, -1, c->embd_type, 2, d, c->n_vocab, 1)) ||
        (rc = add_tensor(ts, n, "output_norm.weight", SK_NORM, -1, PF_TYPE_F32, 1, d, 1, 1)) ||
        (rc = add_tensor(ts, n, "output.weight", SK_OUTPUT, -1, c->out_type, 2, d, c->n_vocab, 1)))
        return rc;
    for (int l = 0; l < c->n_layer; l++) {
#define T(suffix, kind, type, nd, a, b, e) \
        do { snprintf(nm, sizeof nm, "blk.%d.%s", l, suffix); \
             if ((rc = add_tensor(ts, n, nm, kind, l, type, nd, a, b, e))) return rc; } while (0)
        T("attn_norm.weight", SK_NORM, PF_TYPE_F32, 1, d, 1, 1);
        T("attn_q.weight", SK_Q, c->type, 2, d, q, 1);
        T("attn_k.weight", SK_K, c->type, 2, d, kv, 1);
        T("attn_v.weight", SK_V, c->type, 2, d, kv, 1);
        T("attn_output.weight", SK_O, c->type, 2, q, d, 1);
        T("ffn_norm.weight", SK_NORM, PF_TYPE_F32, 1, d, 1, 1);
        if (c->n_expert) {
            /* llama.cpp keeps the router in F32 when quantizing */
            T("ffn_gate_inp.weight", SK_ROUTER, PF_TYPE_F32, 2, d, c->n_expert, 1);
            T("ffn_gate_exps.weight", SK_GATE, c->type, 3, d, c->n_ff, c->n_expert);
            T("ffn_up_exps.weight", SK_UP, c->type, 3, d, c->n_ff, c->n_expert);
            T("ffn_down_exps.weight", SK_DOWN, c->type, 3, c->n_ff, d, c->n_expert);
        } else {
            T("ffn_gate.weight", SK_GATE, c->type, 2, d, c->n_ff, 1);
            T("ffn_up.weight", SK_UP, c->type, 2, d, c->n_ff, 1);
            T("ffn_down.weight", SK_DOWN, c->type, 2, c->n_ff, d, 1);
        }
#undef T
    }
    return 0;
}

/* ==== Metadata ==== */

static int set_keys(struct gguf_writer *w, const struct synth_cfg *c, const struct synth_vocab *v)
{
    char name[128];
    snprintf(name, sizeof name, "pinfer-synth %s %s %s", c->shape, pf_act_name(c->act), pf_type_name(c->type));
    int rc = 0;
    bool quant = pf_type_get(c->type)->blck > 1; /* a block-quantized type */
    if (!rc) rc = gguf_writer_set_str(w, "general.architecture", "llama");
    if (!rc) rc = gguf_writer_set_str(w, "general.name", name);
    if (!rc) rc = gguf_writer_set_u32(w, "llama.vocab_size", (uint32_t)c->n_vocab);
    if (!rc) rc = gguf_writer_set_u32(w, "llama.context_length", (uint32_t)c->n_ctx);
    if (!rc) rc = gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)c->n_embd);
    if (!rc) rc = gguf_writer_set_u32(w, "llama.block_count", (uint32_t)c->n_layer);
    if (!rc) rc = gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)c->n_ff);
    if (!rc) rc = gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)c->head_dim);
    if (!rc) rc = gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)c->n_head);
    if (!rc) rc = gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)c->n_head_kv);
    if (!rc) rc = gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", c->norm_eps);
    if (!rc) rc = gguf_writer_set_f32(w, "llama.rope.freq_base", c->rope_base);
    if (!rc && c->n_expert) rc = gguf_writer_set_u32(w, "llama.expert_count", (uint32_t)c->n_expert);
    if (!rc && c->n_expert) rc = gguf_writer_set_u32(w, "llama.expert_used_count", (uint32_t)c->n_expert_used);
    if (!rc) rc = gguf_writer_set_u32(w, "general.file_type", (uint32_t)synth_file_type(c->type));
    if (!rc && quant) rc = gguf_writer_set_u32(w, "general.quantization_version", 2);
    if (!rc) rc = gguf_writer_set_str(w, "pinfer.ffn_act", pf_act_name(c->act));
    /* version 2: rank-structured gate rows (version 1 files are exactly those of rank 0) */
    if (!rc) rc = gguf_writer_set_u32(w, "pinfer.synth.version", c->rank ? 2 : 1);
    if (!rc) rc = gguf_writer_set_str(w, "pinfer.synth.shape", c->shape);
    if (!rc) rc = gguf_writer_set_u64(w, "pinfer.synth.seed", c->seed);
    if (!rc && pf_act_relu_family(c->act)) {
        rc = gguf_writer_set_f32(w, "pinfer.synth.sparsity", c->sparsity);
        if (!rc) rc = gguf_writer_set_f32(w, "pinfer.synth.hot_frac", c->hot_frac);
        if (!rc) rc = gguf_writer_set_f32(w, "pinfer.synth.hot_share", c->hot_share);
        if (!rc && c->rank) rc = gguf_writer_set_u32(w, "pinfer.synth.rank_structure", (uint32_t)c->rank);
        if (!rc && c->rank) rc = gguf_writer_set_f32(w, "pinfer.synth.rank_share", (float)SYNTH_LR_SHARE);
        /* files of the basic law carry no law key: their bytes are those synth always wrote */
        if (!rc && c->realistic) rc = gguf_writer_set_str(w, "pinfer.synth.law", "realistic");
    }
    if (!rc && c->vocab_src) {
        /* every tokenizer.* key of the source, as it is */
        for (uint64_t i = 0; i < c->vocab_src->n_kv && !rc; i++)
            if (c->vocab_src->kv[i].key.len > 10 && !memcmp(c->vocab_src->kv[i].key.s, "tokenizer.", 10)) rc = gguf_writer_copy_kv(w, &c->vocab_src->kv[i]);
        return rc;
    }
    if (!rc) rc = gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    if (!rc) rc = gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->tokens, (uint64_t)v->n);
    if (!rc) rc = gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_F32, v->scores, (uint64_t)v->n);
    if (!rc) rc = gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_I32, v->types, (uint64_t)v->n);
    if (!rc) rc = gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    if (!rc) rc = gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    if (!rc) rc = gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    if (!rc) rc = gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
    if (!rc) rc = gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", false);
    return rc;
}

/* ==== Streaming ==== */

struct chunk_job {
    const struct synth_plan *plan;
    const struct synth_tensor *t;
    int ti;
    int64_t row0, n_rows;
    uint8_t *out;
    float *rowbuf;   /* (n_threads, max row) */
    size_t rowbuf_stride;
    pf_from_f32_fn quant;
};

static void chunk_task(void *arg, int ith, int nth)
{
    struct chunk_job *j = arg;
    long lo, hi;
    pf_split((long)j->n_rows, ith, nth, &lo, &hi);
    float *row = j->rowbuf + (size_t)ith * j->rowbuf_stride;
    for (long r = lo; r < hi; r++) {
        synth_gen_row(j->plan, j->t, j->ti, j->row0 + r, row);
        j->quant(row, j->out + (size_t)r * j->t->row_bytes, j->t->ne[0]);
    }
}

int pinfer_synth(const char *path, const struct pinfer_synth_params *params)
{
    if (!path || !*path) return pf_fail(PINFER_EINVAL, "synth: no output path");
    struct pinfer_synth_params defaults = pinfer_synth_default_params();
    const struct pinfer_synth_params *p = params ? params : &defaults;
    struct synth_cfg cfg;
    struct synth_vocab vocab = { 0 };
    struct synth_plan plan = { 0 };
    struct synth_tensor *ts = NULL;
    struct gguf_writer *w = NULL;
    struct pf_pool *pool = NULL;
    uint8_t *buf = NULL;
    float *rowbuf = NULL;
    int n_t = 0, rc;

    struct pinfer_synth_params pv = *p;
    struct gguf_file *vsrc = NULL;
    if (p->vocab_from) {
        /* the vocabulary of another file: its token count is the model's n_vocab */
        if ((rc = gguf_open(&vsrc, p->vocab_from))) return pf_fail_context(rc, "--vocab-from %s", p->vocab_from);
        const struct gguf_kv *kv = gguf_find(vsrc, "tokenizer.ggml.tokens");
        if (!kv || kv->type != GGUF_ARRAY || kv->arr_type != GGUF_STRING || kv->arr_n < 1 || kv->arr_n > (1u << 21)) {
            gguf_close(vsrc);
            return pf_fail(PINFER_EFORMAT, "--vocab-from %s: no tokenizer.ggml.tokens array of 1 to 2^21 strings", p->vocab_from);
        }
        if (p->n_vocab && (uint64_t)p->n_vocab != kv->arr_n) {
            gguf_close(vsrc);
            return pf_fail(PINFER_EINVAL, "--vocab %d disagrees with the %llu tokens of %s", p->n_vocab,
                           (unsigned long long)kv->arr_n, p->vocab_from);
        }
        pv.n_vocab = (int)kv->arr_n;
    }
    if ((rc = synth_cfg_resolve(&cfg, &pv))) { gguf_close(vsrc); return rc; }
    cfg.vocab_src = vsrc;
    if (!vsrc && (rc = synth_vocab_build(&vocab, cfg.n_vocab))) goto out;
    if ((rc = synth_plan_build(&plan, &cfg))) goto out;
    ts = calloc(3 + (size_t)cfg.n_layer * 10, sizeof *ts);
    if (!ts) { rc = pf_fail(PINFER_ENOMEM, "out of memory"); goto out; }
    if ((rc = build_tensors(ts, &n_t, &cfg))) goto out;

    if ((rc = gguf_writer_new(&w)) || (rc = set_keys(w, &cfg, &vocab))) goto out;
    for (int i = 0; i < n_t; i++)
        if ((rc = gguf_writer_add_tensor(w, ts[i].name, ts[i].type, ts[i].n_dims, ts[i].ne))) goto out;
    uint64_t total = gguf_writer_total_size(w);
    if ((rc = pf_check_space(path, total, DISK_MARGIN))) goto out;

    /* buffers: one chunk of output, one f32 row per thread */
    int nth = pf_cpu_count();
    size_t max_chunk = 0, max_row = 0;
    for (int i = 0; i < n_t; i++) {
        int64_t rows = (int64_t)(CHUNK_BYTES / ts[i].row_bytes);
        if (rows < 1) rows = 1;
        if (rows > ts[i].n_rows) rows = ts[i].n_rows;
        size_t b = (size_t)rows * ts[i].row_bytes;
        if (b > max_chunk) max_chunk = b;
        if ((size_t)ts[i].ne[0] > max_row) max_row = (size_t)ts[i].ne[0];
    }
    buf = malloc(max_chunk);
    rowbuf = malloc((size_t)nth * max_row * sizeof *rowbuf);
    if (!buf || !rowbuf) { rc = pf_fail(PINFER_ENOMEM, "out of memory"); goto out; }
    if ((rc = pf_pool_new(&pool, nth))) goto out;

    if ((rc = gguf_writer_begin(w, path))) goto out;
    struct pf_progress prog;
    pf_progress_start_bytes(&prog, p->progress && isatty(2), total);
    uint64_t done = 0;
    for (int i = 0; i < n_t && !rc; i++) {
        const struct synth_tensor *t = &ts[i];
        int64_t per = (int64_t)(CHUNK_BYTES / t->row_bytes);
        if (per < 1) per = 1;
        struct chunk_job job = { &plan, t, i, 0, 0, buf, rowbuf, max_row, pf_kernels_ref.from_f32[t->type] };
        if (!job.quant) { rc = pf_fail(PINFER_EUNSUPPORTED, "no quantizer for %s", pf_type_name(t->type)); break; }
        for (int64_t r0 = 0; r0 < t->n_rows && !rc; r0 += per) {
            job.row0 = r0;
            job.n_rows = t->n_rows - r0 < per ? t->n_rows - r0 : per;
            pf_pool_run(pool, chunk_task, &job);
            size_t bytes = (size_t)job.n_rows * t->row_bytes;
            rc = gguf_writer_write(w, buf, bytes);
            done += bytes;
            pf_progress_bytes(&prog, done);
        }
    }
    if (!rc) rc = gguf_writer_finish(w);
    if (!rc) pf_progress_end(&prog);
    else pf_progress_abort(&prog);
out:
    gguf_writer_free(w);
    pf_pool_free(pool);
    free(buf);
    free(rowbuf);
    free(ts);
    synth_plan_free(&plan);
    synth_vocab_free(&vocab);
    gguf_close(vsrc);
    return rc;
}
