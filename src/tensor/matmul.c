/* Threaded matrix products: converts the activations once into the weight type's dot format,
 * then gives each thread a contiguous range of output rows, walked in chunks that an idle
 * thread may steal (each weight row is read by one thread only, so decode streams the matrix
 * once at full bandwidth, and a descheduled thread does not stall the others for long).
 *
 * Decode calls this a few hundred times per token, so the common path takes no lock, allocates
 * nothing and runs one pool task (batches: one more to convert the activations in parallel).
 * Q4_0 weights take the kernel table's fast path when it has one (activations in the q8x
 * layout, tensor/q8x.h). */
#include "tensor/matmul.h"

#include "core/checked.h"
#include "tensor/q8x.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

/* Rows per work unit: a multiple of every kernel's row tile (4 for matvec, 16 for the Q4_0
 * gemm panels), so no thread gets a ragged tile except at the very end of the matrix. */
#define ROW_GRAIN 16
/* Rows per claimed chunk (a multiple of ROW_GRAIN): small enough to balance threads when one
 * is descheduled, large enough that the claims cost nothing (decode: ~7 us of work per chunk of
 * a 4096-wide Q4_0 matrix). In batched products the chunk is also the row block that stays in
 * L2 while TOK_BLOCK tokens use it. */
#define CHUNK_ROWS 64
#define TOK_BLOCK 64
#define MAX_CURSORS 64
/* Q4_0: from this many tokens on, the repacking gemm beats matvecs over L2-resident rows. With 4
 * it made 4 sequences decoded together (pinfer_decode_multi) slower than 2 (0.98x against 1.15x
 * one sequence's rate, ~1B Q4_0, 2 threads, Zen 5; 8: 1.15x at 4, 1.46x at 8; bench/RESULTS.md). */
#define Q4_GEMM_MIN_TOK 8
/* Below this many tokens the caller converts activations itself (a pool task costs more). */
#define PAR_QUANT_MIN_TOK 4

/* Bytes per converted activation row, or 0 for an unusable shape. */
static size_t act_row(const struct pf_kernels *k, int wtype, int64_t n_in)
{
    const struct pf_type_info *ti = pf_type_get(wtype);
    size_t r;
    if (!ti || n_in <= 0 || !pf_row_size(ti->vec_dot_type, n_in, &r)) return 0;
    if (wtype == PF_TYPE_Q4_0) {
        size_t x = q8x_row_size(n_in);
        if (!k) return x > r ? x : r; /* sizing scratch for any table */
        if (k->q4_matvec) return x;
    }
    return r;
}

size_t pf_matmul_scratch_size(int wtype, int64_t n_in, int n_tok)
{
    size_t row = act_row(NULL, wtype, n_in), total; /* NULL: the largest layout of any table */
    if (n_tok < 0 || row == 0) return SIZE_MAX;
    if (wtype == PF_TYPE_F32) return 64; /* dots read x directly */
    if (ck_mul(row, (size_t)n_tok, &total) || ck_add(total, 64, &total)) return SIZE_MAX;
    return total;
}

/* Next unclaimed row of a thread's range; one cache line each so the owner's claims do not
 * bounce a line between cores. */
struct mm_cursor {
    _Alignas(64) _Atomic int64_t next;
    int64_t end;
};

struct mm_task {
    const struct pf_kernels *k;
    float *y;
    const char *w;
    int wtype;
    bool fast; /* Q4_0 fast path */
    int64_t n_in, n_out;
    size_t w_row; /* bytes per weight row */
    const float *x;
    int n_tok;
    char *xq;      /* converted activations */
    size_t xq_row; /* bytes per converted row */
    struct mm_cursor *cur; /* one per thread, NULL above MAX_CURSORS threads */
};

static void convert_task(void *arg, int ith, int nth)
{
    struct mm_task *t = arg;
    long lo, hi;
    pf_split(t->n_tok, ith, nth, &lo, &hi);
    pf_from_f32_fn conv = t->fast ? t->k->q4_act : t->k->from_f32[pf_type_get(t->wtype)->vec_dot_type];
    for (long i = lo; i < hi; i++) conv(t->x + i * t->n_in, t->xq + (size_t)i * t->xq_row, t->n_in);
}

/* Contiguous row range of thread ith, in units of ROW_GRAIN rows. */
static void row_range(int64_t n_out, int ith, int nth, int64_t *r0, int64_t *r1)
{
    long units = (long)((n_out + ROW_GRAIN - 1) / ROW_GRAIN), lo, hi;
    pf_split(units, ith, nth, &lo, &hi);
    *r0 = (int64_t)lo * ROW_GRAIN;
    *r1 = (int64_t)hi * ROW_GRAIN;
    if (*r1 > n_out) *r1 = n_out;
    if (*r0 > *r1) *r0 = *r1;
}

/* Output rows [r0, r1) for every token. */
static void run_rows(const struct mm_task *t, int64_t r0, int64_t r1)
{
    const struct pf_kernels *k = t->k;
    const char *w = t->w + (size_t)r0 * t->w_row;
    int nr = (int)(r1 - r0);
    if (t->fast) {
        if (t->n_tok >= Q4_GEMM_MIN_TOK)
            k->q4_gemm(t->n_in, nr, t->n_tok, w, t->w_row, t->xq, t->xq_row, t->y + r0, (size_t)t->n_out);
        else /* a few tokens: the chunk's rows stay in L2 from one token to the next */
            for (int i = 0; i < t->n_tok; i++)
                k->q4_matvec(t->n_in, nr, w, t->w_row, t->xq + (size_t)i * t->xq_row,
                             t->y + (size_t)i * t->n_out + r0);
        return;
    }
    pf_gemm_fn gemm = k->gemm[t->wtype];
    for (int tb = 0; tb < t->n_tok; tb += TOK_BLOCK) {
        int nt = t->n_tok - tb < TOK_BLOCK ? t->n_tok - tb : TOK_BLOCK;
        gemm(t->n_in, nr, nt, w, t->w_row, t->xq + (size_t)tb * t->xq_row, t->xq_row,
             t->y + (size_t)tb * t->n_out + r0, (size_t)t->n_out);
    }
}

/* Each thread owns a contiguous range and walks it in CHUNK_ROWS chunks through its cursor; a
 * thread that is done takes chunks from the others' cursors. On a quiet machine every thread
 * just streams its own range; on a shared one (other processes, or the hypervisor stealing
 * the vCPU), a descheduled thread no longer holds everybody up for its whole range. */
static void matmul_task(void *arg, int ith, int nth)
{
    struct mm_task *t = arg;
    if (!t->cur) { /* more threads than cursors: static ranges */
        int64_t r0, r1;
        row_range(t->n_out, ith, nth, &r0, &r1);
        for (int64_t r = r0; r < r1; r += CHUNK_ROWS) run_rows(t, r, r + CHUNK_ROWS < r1 ? r + CHUNK_ROWS : r1);
        return;
    }
    for (int v = 0; v < nth; v++) {
        struct mm_cursor *c = &t->cur[(ith + v) % nth];
        for (;;) {
            int64_t r0 = atomic_fetch_add_explicit(&c->next, CHUNK_ROWS, memory_order_relaxed);
            if (r0 >= c->end) break;
            run_rows(t, r0, r0 + CHUNK_ROWS < c->end ? r0 + CHUNK_ROWS : c->end);
        }
    }
}

void pf_matmul(struct pf_pool *pool, float *y, const void *w, int wtype, int64_t n_in,
               int64_t n_out, const float *x, int n_tok, void *scratch)
{
    pf_matmul_k(pf_kernels(), pool, y, w, wtype, n_in, n_out, x, n_tok, scratch);
}

void pf_matmul_k(const struct pf_kernels *k, struct pf_pool *pool, float *y, const void *w,
                 int wtype, int64_t n_in, int64_t n_out, const float *x, int n_tok, void *scratch)
{
    size_t xq_row = act_row(k, wtype, n_in), w_row;
    if (n_tok <= 0 || n_out <= 0 || xq_row == 0 || !pf_row_size(wtype, n_in, &w_row))
        return; /* programmer error: shapes are validated when the model is loaded */
    struct mm_task t = {
        .k = k, .y = y, .w = w, .wtype = wtype, .n_in = n_in, .n_out = n_out, .w_row = w_row,
        .x = x, .n_tok = n_tok, .xq_row = xq_row,
        .fast = wtype == PF_TYPE_Q4_0 && k->q4_matvec && k->q4_gemm && k->q4_act,
    };
    int nth = pf_pool_size(pool);
    struct mm_cursor cur[MAX_CURSORS];
    if (nth <= MAX_CURSORS) {
        for (int i = 0; i < nth; i++) {
            int64_t r0, r1;
            row_range(n_out, i, nth, &r0, &r1);
            atomic_init(&cur[i].next, r0);
            cur[i].end = r1;
        }
        t.cur = cur;
    }
    if (wtype == PF_TYPE_F32) {
        t.xq = (char *)(uintptr_t)x; /* read only: F32 needs no conversion */
    } else {
        t.xq = (char *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
        if (n_tok >= PAR_QUANT_MIN_TOK) pf_pool_run(pool, convert_task, &t);
        else convert_task(&t, 0, 1);
    }
    pf_pool_run(pool, matmul_task, &t);
}
