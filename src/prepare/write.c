/* The prepared file (docs/sparse-format.md): every key of the input, then prepare's keys; every
 * tensor of the input in its order, except that a layer's ffn_gate is replaced by its bundle
 * tensor followed by the predictor (fc1, fc2), and ffn_up / ffn_down (and PowerInfer's fc1, fc2,
 * ffn_down_t) are dropped; a mixture's expert tensors likewise, by each expert's bundle and
 * predictor where ffn_gate_exps (or ffn_gate.0) stood.
 *
 * Memory: tensors copied verbatim are streamed from the input file in 8 MiB pieces (with the
 * page cache told to drop them: a 7B input is read once); a bundle tensor is built from the
 * loaded model's gate and up rows as they are and from its down matrix, dequantized once per
 * layer into an f32 transpose (n_ff x n_embd floats: 235 MB for Mistral-7B) so each neuron's
 * column is a contiguous row to re-quantize. Nothing else of the FFN is copied. */
#include "prepare/prepare_internal.h"

#include "core/checked.h"
#include "core/error.h"
#include "core/file.h"
#include "gguf/gguf.h"
#include "tensor/kernels.h"
#include "tensor/types.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define COPY_CHUNK (8u << 20)
#define SLOT_CHUNK 64
#define TRANSPOSE_ROWS 16

enum job_kind { J_COPY, J_BUNDLE, J_FC1, J_FC2 };
struct job { enum job_kind kind; int idx; /* tensor index (copy) or unit */ };

/* "blk.N.<rest>" -> N and rest; -1 when the name has another form. */
static int block_of(const char *name, const char **rest)
{
    if (strncmp(name, "blk.", 4) != 0) return -1;
    char *end;
    long l = strtol(name + 4, &end, 10);
    if (end == name + 4 || *end != '.' || l < 0 || l > 1 << 20) return -1;
    *rest = end + 1;
    return (int)l;
}

static int set_keys(struct gguf_writer *w, const struct pf_prep *P)
{
    const struct gguf_file *f = P->m->gguf;
    int rc;
    for (uint64_t i = 0; i < f->n_kv; i++)
        if ((rc = gguf_writer_copy_kv(w, &f->kv[i]))) return rc;
    char key[128];
    if ((rc = gguf_writer_set_u32(w, "general.alignment", PF_PREPARE_ALIGN)) ||
        (rc = gguf_writer_set_u32(w, "pinfer.prepared", PF_PREPARED_VERSION)) ||
        (rc = gguf_writer_set_str(w, "pinfer.ffn_act", pf_act_name(P->m->info.act))) ||
        (rc = gguf_writer_set_u32(w, "pinfer.cluster_size", (uint32_t)P->cluster_size)) ||
        (rc = gguf_writer_set_str(w, "pinfer.predictor.source", P->pred_source)) ||
        (rc = gguf_writer_set_str(w, "pinfer.prepare.source", P->calib->source)) ||
        (rc = gguf_writer_set_u32(w, "pinfer.prepare.tokens", (uint32_t)P->calib->n_tok)) ||
        (rc = gguf_writer_set_u64(w, "pinfer.prepare.seed", P->seed)) ||
        (rc = gguf_writer_set_str(w, "pinfer.prepare.placement", P->placement)))
        return rc;
    int nh = 0;
    for (int t = 0; t < P->calib->n_tok; t++) nh += P->calib->heldout[t];
    if ((rc = gguf_writer_set_u32(w, "pinfer.prepare.heldout", (uint32_t)nh))) return rc;
    if (P->stat_tokens > 0 &&
        ((rc = gguf_writer_set_u32(w, "pinfer.prepare.stat_tokens", (uint32_t)P->stat_tokens)) ||
         (rc = gguf_writer_set_arr(w, "pinfer.prepare.reuse_windows", GGUF_U32, pf_reuse_windows, PF_REUSE_WINDOWS))))
        return rc;
    for (int u = 0; u < P->n_units; u++) {
        const struct pf_prep_layer *L = &P->layers[u];
        const int l = pf_prep_layer_of(P, u), e = pf_prep_expert_of(P, u);
#define BKEY(what) (pf_unit_key(key, sizeof key, "pinfer.bundle", l, e, what), key)
#define PKEY(what) (pf_unit_key(key, sizeof key, "pinfer.predictor", l, e, what), key)
        const uint32_t types[3] = { (uint32_t)L->lay.type[0], (uint32_t)L->lay.type[1], (uint32_t)L->lay.type[2] };
        if ((rc = gguf_writer_set_arr(w, BKEY("types"), GGUF_U32, types, 3)) ||
            (rc = gguf_writer_set_arr(w, BKEY("perm"), GGUF_I32, L->perm, (uint64_t)P->n_ff)) ||
            (rc = gguf_writer_set_arr(w, BKEY("freq"), GGUF_F32, L->freq, (uint64_t)P->n_ff)) ||
            (rc = gguf_writer_set_arr(w, BKEY("act_mean"), GGUF_F32, L->act_mean, (uint64_t)P->n_ff)))
            return rc;
        /* a mixture: the fraction of calibration tokens routed to the expert (freq is per routed
           token; freq x share is per token) */
        if (e >= 0 && (rc = gguf_writer_set_f32(w, BKEY("share"), (float)((double)P->calib->layers[u].n_rows / P->calib->n_tok))))
            return rc;
        if (!L->has_pred) continue;
        if (L->pred_freq && (rc = gguf_writer_set_arr(w, BKEY("pred_freq"), GGUF_F32, L->pred_freq, (uint64_t)P->n_ff)))
            return rc;
        if (L->reuse_occ && ((rc = gguf_writer_set_arr(w, BKEY("reuse_occ"), GGUF_F32, L->reuse_occ, PF_REUSE_BUCKETS * PF_REUSE_WINDOWS)) ||
                             (rc = gguf_writer_set_arr(w, BKEY("reuse_hit"), GGUF_F32, L->reuse_hit, PF_REUSE_BUCKETS * PF_REUSE_WINDOWS))))
            return rc;
        const struct pf_predictor *p = &L->pred;
        if ((rc = gguf_writer_set_f32(w, PKEY("threshold"), p->threshold)) ||
            (rc = gguf_writer_set_f32(w, PKEY("recall"), p->recall)) ||
            (rc = gguf_writer_set_f32(w, PKEY("precision"), p->precision)) ||
            (rc = gguf_writer_set_u32(w, PKEY("rank"), (uint32_t)p->rank)) ||
            (rc = gguf_writer_set_u64(w, PKEY("bytes"), (uint64_t)(p->fc1_bytes + p->fc2_bytes))) ||
            (rc = gguf_writer_set_f32(w, PKEY("active"), (float)p->true_frac)) ||
            (rc = gguf_writer_set_f32(w, PKEY("predicted"), (float)p->pred_frac)))
            return rc;
#undef BKEY
#undef PKEY
    }
    return 0;
}

/* A mixture's expert FFN tensor (merged blk.N.ffn_{gate,up,down}_exps or split
 * blk.N.ffn_{gate,up,down}.E): its bundles replace them all. first: the one that stands for
 * them in the tensor order (ffn_gate_exps, or ffn_gate.0). */
static bool expert_ffn_tensor(const char *rest, bool *first)
{
    static const char *const part[3] = { "gate", "up", "down" };
    *first = false;
    for (int p = 0; p < 3; p++) {
        char nm[32];
        snprintf(nm, sizeof nm, "ffn_%s_exps.weight", part[p]);
        if (!strcmp(rest, nm)) { *first = p == 0; return true; }
        snprintf(nm, sizeof nm, "ffn_%s.", part[p]);
        size_t n = strlen(nm);
        if (strncmp(rest, nm, n)) continue;
        char *end;
        long e = strtol(rest + n, &end, 10);
        if (end != rest + n && !strcmp(end, ".weight")) { *first = p == 0 && e == 0; return true; }
    }
    return false;
}

/* Declares unit u's bundle tensor and predictor, and their jobs. */
static int declare_unit(struct gguf_writer *w, const struct pf_prep *P, int u, struct job *jobs, int *n)
{
    const int l = pf_prep_layer_of(P, u), e = pf_prep_expert_of(P, u);
    char name[GGUF_MAX_NAME];
    int rc;
    /* one type: {n_embd, 3, n_ff} of it; parts of different types: I8 slot bytes */
    const struct pf_bundles *B = &P->layers[u].lay;
    pf_unit_tensor_name(name, sizeof name, l, e, "ffn_bundle");
    if (B->type[0] == B->type[1] && B->type[1] == B->type[2]) {
        int64_t ne[3] = { P->n_embd, 3, P->n_ff };
        rc = gguf_writer_add_tensor(w, name, B->type[0], 3, ne);
    } else {
        int64_t ne[2] = { (int64_t)B->slot_size, P->n_ff };
        rc = gguf_writer_add_tensor(w, name, PF_TYPE_I8, 2, ne);
    }
    if (rc) return rc;
    jobs[(*n)++] = (struct job){ J_BUNDLE, u };
    const struct pf_predictor *p = &P->layers[u].pred;
    if (!P->layers[u].has_pred) return 0;
    int64_t ne1[2] = { P->n_embd, p->rank }, ne2[2] = { p->rank, P->n_ff };
    pf_unit_tensor_name(name, sizeof name, l, e, "fc1");
    if ((rc = gguf_writer_add_tensor(w, name, p->type1, 2, ne1))) return rc;
    jobs[(*n)++] = (struct job){ J_FC1, u };
    pf_unit_tensor_name(name, sizeof name, l, e, "fc2");
    if ((rc = gguf_writer_add_tensor(w, name, p->type2, 2, ne2))) return rc;
    jobs[(*n)++] = (struct job){ J_FC2, u };
    return 0;
}

/* Declares the tensors and fills jobs[] (capacity n_tensors + 3 * n_units) in the same order. */
static int declare(struct gguf_writer *w, const struct pf_prep *P, struct job *jobs, int *n_jobs)
{
    const struct gguf_file *f = P->m->gguf;
    int n = 0, rc;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        const char *rest;
        int l = block_of(t->name, &rest);
        bool first;
        if (l >= 0 && l < P->n_layer && P->n_expert && expert_ffn_tensor(rest, &first)) {
            for (int e = 0; first && e < P->n_expert; e++)
                if ((rc = declare_unit(w, P, l * P->n_expert + e, jobs, &n))) return rc;
            continue;
        }
        if (l >= 0 && l < P->n_layer) {
            if (!strcmp(rest, "ffn_gate.weight") && !P->n_expert) {
                if ((rc = declare_unit(w, P, l, jobs, &n))) return rc;
                continue;
            }
            if (!strcmp(rest, "ffn_up.weight") || !strcmp(rest, "ffn_down.weight") || !strcmp(rest, "fc1.weight") ||
                !strcmp(rest, "fc2.weight") || !strcmp(rest, "ffn_down_t.weight"))
                continue;
        }
        if ((rc = gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne))) return rc;
        jobs[n++] = (struct job){ J_COPY, (int)i };
    }
    *n_jobs = n;
    return 0;
}

struct wstate {
    struct gguf_writer *w;
    struct pf_progress *pg;
    uint64_t done, total;
    int fd;                 /* input file */
    uint8_t *buf;           /* COPY_CHUNK bytes */
    float *dt;              /* n_ff x n_embd: down transposed */
    float *rows;            /* TRANSPOSE_ROWS x n_ff */
};

static int put(struct wstate *S, const void *data, size_t n)
{
    int rc = gguf_writer_write(S->w, data, n);
    S->done += n;
    pf_progress_update(S->pg, S->total ? (double)S->done / (double)S->total : 1.0);
    return rc;
}

static int copy_tensor(struct wstate *S, const struct gguf_tensor *t, const char *path)
{
    uint64_t off = t->file_offset, left = t->nbytes;
    while (left > 0) {
        size_t want = left > COPY_CHUNK ? COPY_CHUNK : (size_t)left, got = 0;
        while (got < want) {
            ssize_t r = pread(S->fd, S->buf + got, want - got, (off_t)(off + got));
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0)
                return pf_fail(PINFER_EIO, "reading tensor %s from %s: %s", t->name, path, r < 0 ? strerror(errno) : "file ends early");
            got += (size_t)r;
        }
        posix_fadvise(S->fd, (off_t)off, (off_t)want, POSIX_FADV_DONTNEED);
        int rc = put(S, S->buf, want);
        if (rc) return rc;
        off += want;
        left -= want;
    }
    return 0;
}

static int write_bundle(struct wstate *S, const struct pf_prep *P, int l)
{
    const struct pf_weight *gate, *up, *down;
    pf_prep_unit_weights(P, l, &gate, &up, &down);
    const struct pf_bundles *B = &P->layers[l].lay;
    const int E = P->n_embd, F = P->n_ff;
    const size_t gs = B->row[PF_PART_GATE], us = B->row[PF_PART_UP];
    /* down is E rows of F: dequantize a few rows at a time and scatter into dt[i][e] */
    for (int e0 = 0; e0 < E; e0 += TRANSPOSE_ROWS) {
        int ne = E - e0 < TRANSPOSE_ROWS ? E - e0 : TRANSPOSE_ROWS;
        for (int k = 0; k < ne; k++)
            pf_kernels_ref.dequant[down->type]((const char *)down->data + (size_t)(e0 + k) * down->row_size,
                                                     S->rows + (size_t)k * F, F);
        for (int i = 0; i < F; i++) {
            float *d = S->dt + (size_t)i * E + e0;
            for (int k = 0; k < ne; k++) d[k] = S->rows[(size_t)k * F + i];
        }
    }
    const int32_t *perm = P->layers[l].perm;
    for (int j0 = 0; j0 < F; j0 += SLOT_CHUNK) {
        int nj = F - j0 < SLOT_CHUNK ? F - j0 : SLOT_CHUNK;
        for (int k = 0; k < nj; k++) {
            int i = perm[j0 + k];
            uint8_t *slot = S->buf + (size_t)k * B->slot_size;
            memcpy(slot + B->off[PF_PART_GATE], (const char *)gate->data + (size_t)i * gs, gs);
            memcpy(slot + B->off[PF_PART_UP], (const char *)up->data + (size_t)i * us, us);
            pf_kernels_ref.from_f32[B->type[PF_PART_DOWN]](S->dt + (size_t)i * E, slot + B->off[PF_PART_DOWN], E);
        }
        int rc = put(S, S->buf, (size_t)nj * B->slot_size);
        if (rc) return rc;
    }
    return 0;
}

static int write_fc2(struct wstate *S, const struct pf_prep *P, int l)
{
    const struct pf_prep_layer *L = &P->layers[l];
    size_t row = L->pred.fc2_bytes / (size_t)P->n_ff, per = COPY_CHUNK / row, k = 0;
    for (int j = 0; j < P->n_ff; j++) {
        memcpy(S->buf + k * row, (const char *)L->pred.fc2 + (size_t)L->perm[j] * row, row);
        if (++k == per || j + 1 == P->n_ff) {
            int rc = put(S, S->buf, k * row);
            if (rc) return rc;
            k = 0;
        }
    }
    return 0;
}

int pf_prepare_write(const struct pf_prep *P, const char *out_path, struct pf_progress *pg, uint64_t *bytes)
{
    const struct gguf_file *f = P->m->gguf;
    struct gguf_writer *w = NULL;
    struct job *jobs = malloc(((size_t)f->n_tensors + 3 * (size_t)P->n_units) * sizeof *jobs);
    struct wstate S = { .pg = pg, .fd = -1 };
    size_t dt_n;
    int n_jobs = 0, rc;
    if (!jobs) return pf_fail(PINFER_ENOMEM, "out of memory");
    if (ck_mul((size_t)P->n_ff, (size_t)P->n_embd, &dt_n) || ck_mul(dt_n, sizeof(float), &dt_n)) {
        free(jobs);
        return pf_fail(PINFER_ENOMEM, "FFN size overflows");
    }
    size_t buf_n = COPY_CHUNK;
    for (int l = 0; l < P->n_units; l++)
        if (SLOT_CHUNK * P->layers[l].lay.slot_size > buf_n) buf_n = SLOT_CHUNK * P->layers[l].lay.slot_size;
    S.buf = malloc(buf_n);
    S.dt = malloc(dt_n);
    S.rows = malloc((size_t)TRANSPOSE_ROWS * (size_t)P->n_ff * sizeof *S.rows);
    if (!S.buf || !S.dt || !S.rows) { rc = pf_fail(PINFER_ENOMEM, "out of memory for the bundle writer (%.0f MiB)", (double)dt_n / (1 << 20)); goto out; }
    if ((S.fd = pf_reopen(f->fd, P->in_path, 0, f->size)) < 0) { /* the parsed file, not its name */
        rc = S.fd;
        S.fd = -1;
        goto out;
    }
    if ((rc = gguf_writer_new(&w)) || (rc = set_keys(w, P)) || (rc = declare(w, P, jobs, &n_jobs))) goto out;
    S.w = w;
    S.total = gguf_writer_total_size(w);
    if ((rc = pf_check_space(out_path, S.total, 0))) goto out;
    if ((rc = gguf_writer_begin(w, out_path))) goto out;
    for (int i = 0; i < n_jobs && !rc; i++) {
        const struct job *J = &jobs[i];
        switch (J->kind) {
        case J_COPY: rc = copy_tensor(&S, &f->tensors[J->idx], P->in_path); break;
        case J_BUNDLE: rc = write_bundle(&S, P, J->idx); break;
        case J_FC1: rc = put(&S, P->layers[J->idx].pred.fc1, P->layers[J->idx].pred.fc1_bytes); break;
        case J_FC2: rc = write_fc2(&S, P, J->idx); break;
        }
    }
    if (!rc) rc = gguf_writer_finish(w);
    if (!rc) *bytes = S.total;
out:
    if (rc) pf_fail_context(rc, "writing %s", out_path);
    gguf_writer_free(w);
    if (S.fd >= 0) close(S.fd);
    free(S.buf);
    free(S.dt);
    free(S.rows);
    free(jobs);
    return rc;
}
