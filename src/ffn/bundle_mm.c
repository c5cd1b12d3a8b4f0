/* The dense FFN of a batch (the prompt) on the bundle layout, with no second copy of the
 * weights: a slot's gate and up rows are rows of two matrices whose row stride is the slot (3
 * rows), which the kernel tables' tile kernels take as w_stride; the down columns, stored as
 * rows quantized along n_embd, make the down projection a transposed product computed by the
 * down_panel kernels (tensor/bundle_kernels.h).
 *
 * Threads: gate/up split the slots (each weight row read by one thread); down splits the output
 * columns, so no partial sums are reduced and every output element sums its neurons in slot
 * order whatever the thread count. */
#include "ffn/ffn_internal.h"

#include "core/checked.h"
#include "tensor/kernels.h"
#include "tensor/matmul.h"

#include <stdint.h>
#include <string.h>

/* As tensor/matmul.c: a multiple of every kernel's row tile; Q4_0 tiles beat matvecs from 4
 * tokens on; generic gemm blocks rows and tokens so a block of weights stays in L2. */
#define ROW_GRAIN 16
#define Q4_GEMM_MIN_TOK 4
#define ROW_BLOCK 64
#define TOK_BLOCK 64

/* Bytes between converted activation rows: enough for the layout of any kernel table (the q8x
 * rows of the Q4_0 fast paths are larger than Q8_0 rows), a multiple of 64; 0 for F32 rows,
 * whose dots read the activations as they are. */
size_t pf_bundle_act_stride(int type, int64_t n)
{
    if (type == PF_TYPE_F32) return 0;
    size_t s = pf_matmul_scratch_size(type, n, 1);
    if (s == SIZE_MAX || s < 64) return SIZE_MAX;
    return (s - 64 + 63) & ~(size_t)63;
}

/* The gate rows' conversion, and the up rows' unless they read the same format (the usual case:
 * one type for both). Sized for any kernel table, so a format the table may share is not
 * assumed shared. */
size_t pf_bundle_scratch_size(const struct pf_bundles *b, int n_tok)
{
    size_t g = pf_bundle_act_stride(b->type[PF_PART_GATE], b->n_embd), row = g, total;
    if (b->type[PF_PART_UP] != b->type[PF_PART_GATE]) {
        size_t u = pf_bundle_act_stride(b->type[PF_PART_UP], b->n_embd);
        if (g == SIZE_MAX || u == SIZE_MAX || ck_add(g, u, &row)) return SIZE_MAX;
    }
    if (row == SIZE_MAX || n_tok < 1 || ck_mul(row, (size_t)n_tok, &total) || ck_add(total, 64, &total)) return SIZE_MAX;
    return total;
}

int pf_bundle_act_format(const struct pf_kernels *k, int type, bool decode)
{
    if (type == PF_TYPE_F32) return -1;
    if (type == PF_TYPE_Q4_0 && k->q4_act && k->q4_matvec && (decode || k->q4_gemm)) return -2;
    return pf_type_get(type)->vec_dot_type;
}

/* ==== gate / up ==== */

/* One of the two row sets (gate or up): rows at base + off + j * slot_size, of `type`. */
struct gu_part {
    int type;
    size_t off;
    bool fast;             /* Q4_0 fast path (q8x activations) */
    const char *xa;        /* converted activations, xa_stride bytes apart (or the f32 input) */
    size_t xa_stride;
    float *out;            /* hg or hu */
};

struct gu_task {
    const struct pf_kernels *k;
    const struct pf_bundles *b;
    int n_tok;
    struct gu_part part[2];
};

/* Rows [r0, r1) of part P (row r at data + off + r * slot_size), for every token, into its out
 * (row t at out + t * F). */
static void gu_rows(const struct gu_task *t, const struct gu_part *P, int64_t r0, int64_t r1)
{
    const struct pf_bundles *b = t->b;
    const struct pf_kernels *k = t->k;
    const size_t ws = b->slot_size, F = (size_t)b->n_ff;
    const int64_t n = b->n_embd;
    const char *w = (const char *)b->data + P->off;
    float *out = P->out;
    if (P->fast && t->n_tok >= Q4_GEMM_MIN_TOK) {
        k->q4_gemm(n, (int)(r1 - r0), t->n_tok, w + (size_t)r0 * ws, ws, P->xa, P->xa_stride, out + r0, F);
        return;
    }
    for (int64_t rb = r0; rb < r1; rb += ROW_BLOCK) {
        int nr = (int)(r1 - rb < ROW_BLOCK ? r1 - rb : ROW_BLOCK);
        if (P->fast) {
            for (int i = 0; i < t->n_tok; i++)
                k->q4_matvec(n, nr, w + (size_t)rb * ws, ws, P->xa + (size_t)i * P->xa_stride, out + (size_t)i * F + rb);
            continue;
        }
        for (int tb = 0; tb < t->n_tok; tb += TOK_BLOCK) {
            int nt = t->n_tok - tb < TOK_BLOCK ? t->n_tok - tb : TOK_BLOCK;
            k->gemm[P->type](n, nr, nt, w + (size_t)rb * ws, ws, P->xa + (size_t)tb * P->xa_stride, P->xa_stride,
                             out + (size_t)tb * F + rb, F);
        }
    }
}

static void gu_fn(void *arg, int ith, int nth)
{
    const struct gu_task *t = arg;
    const int64_t F = t->b->n_ff;
    long units = (long)((F + ROW_GRAIN - 1) / ROW_GRAIN), lo, hi;
    pf_split(units, ith, nth, &lo, &hi);
    int64_t r0 = (int64_t)lo * ROW_GRAIN, r1 = (int64_t)hi * ROW_GRAIN;
    if (r1 > F) r1 = F;
    if (r0 >= r1) return;
    gu_rows(t, &t->part[0], r0, r1);
    gu_rows(t, &t->part[1], r0, r1);
}

struct conv_task {
    pf_from_f32_fn conv;
    const float *x;
    int64_t n;
    char *xa;
    size_t stride;
    int n_tok;
};

static void conv_fn(void *arg, int ith, int nth)
{
    const struct conv_task *t = arg;
    long lo, hi;
    pf_split(t->n_tok, ith, nth, &lo, &hi);
    for (long i = lo; i < hi; i++) t->conv(t->x + i * t->n, t->xa + (size_t)i * t->stride, t->n);
}

void pf_bundle_gate_up(struct pf_pool *pool, const struct pf_kernels *k, const struct pf_bundles *b,
                       const float *x, int n_tok, float *hg, float *hu, void *scratch)
{
    struct gu_task t = { .k = k, .b = b, .n_tok = n_tok };
    char *xa = (char *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    for (int p = 0; p < 2; p++) {
        struct gu_part *P = &t.part[p];
        P->type = b->type[p];
        P->off = b->off[p];
        P->out = p == 0 ? hg : hu;
        const int fmt = pf_bundle_act_format(k, P->type, false);
        P->fast = fmt == -2;
        if (p == 1 && fmt == pf_bundle_act_format(k, t.part[0].type, false)) {
            P->xa = t.part[0].xa; /* the gate's conversion serves the up rows too */
            P->xa_stride = t.part[0].xa_stride;
            continue;
        }
        if (fmt == -1) {
            P->xa = (const char *)x; /* f32 dots read the activations as they are */
            P->xa_stride = (size_t)b->n_embd * sizeof(float);
            continue;
        }
        struct conv_task ct = {
            .conv = P->fast ? k->q4_act : k->from_f32[fmt],
            .x = x, .n = b->n_embd, .n_tok = n_tok, .xa = xa,
            .stride = pf_bundle_act_stride(P->type, b->n_embd),
        };
        if (n_tok >= 4) pf_pool_run(pool, conv_fn, &ct);
        else conv_fn(&ct, 0, 1);
        P->xa = ct.xa;
        P->xa_stride = ct.stride;
        xa += ct.stride * (size_t)n_tok;
    }
    pf_pool_run(pool, gu_fn, &t);
}

/* ==== down ==== */

struct down_task {
    const struct pf_kernels *k;
    const struct pf_bundles *b;
    const float *h;
    int n_tok;
    float *out;
    float *panel;
    bool accumulate;
};

static void down_fn(void *arg, int ith, int nth)
{
    const struct down_task *t = arg;
    const struct pf_bundles *b = t->b;
    const int E = b->n_embd, F = b->n_ff;
    /* columns in units of the down type's block (at least 32; a K-quant's is 256, which
       divides PF_PANEL_COLS), split across threads */
    const int blck = pf_type_get(b->type[PF_PART_DOWN])->blck, u = blck > 32 ? blck : 32;
    long units = (E + u - 1) / u, lo, hi;
    pf_split(units, ith, nth, &lo, &hi);
    int c0 = (int)lo * u, c1 = (int)hi * u < E ? (int)hi * u : E;
    if (c0 >= c1) return;
    float *panel = t->panel + (size_t)ith * PF_PANEL_FLOATS;
    pf_down_panel_fn fn = t->k->down_panel[b->type[PF_PART_DOWN]];
    const char *down = (const char *)b->data + b->off[PF_PART_DOWN];
    for (int t0 = 0; t0 < t->n_tok && !t->accumulate; t0++)
        memset(t->out + (size_t)t0 * E + c0, 0, (size_t)(c1 - c0) * sizeof(float));
    for (int e0 = c0; e0 < c1; e0 += PF_PANEL_COLS) {
        int ne = c1 - e0 < PF_PANEL_COLS ? c1 - e0 : PF_PANEL_COLS;
        for (int p0 = 0; p0 < F; p0 += PF_PANEL_ROWS) {
            int np = F - p0 < PF_PANEL_ROWS ? F - p0 : PF_PANEL_ROWS;
            fn(down + (size_t)p0 * b->slot_size, b->slot_size, np, e0, ne, t->h + p0, (size_t)F, t->n_tok,
               t->out + e0, (size_t)E, panel);
        }
    }
}

void pf_bundle_down(struct pf_pool *pool, const struct pf_kernels *k, const struct pf_bundles *b, const float *h,
                    int n_tok, float *out, float *panel, bool accumulate)
{
    struct down_task t = { .k = k, .b = b, .h = h, .n_tok = n_tok, .out = out, .panel = panel,
                           .accumulate = accumulate };
    pf_pool_run(pool, down_fn, &t);
}
