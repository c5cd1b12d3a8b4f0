/* Threaded matrix products: converts the activations once into the weight type's dot format,
 * then hands each thread a contiguous range of output rows (each weight row is read by one
 * thread only, so decode streams the matrix once at full bandwidth).
 *
 * Decode calls this a few hundred times per token, so the common path takes no lock, allocates
 * nothing and runs one pool task. Q4_0 weights take the kernel table's fast path when it has one
 * (activations in the q8x layout, tensor/q8x.h). */
#include "tensor/matmul.h"

#include "core/checked.h"
#include "tensor/q8x.h"

#include <stdint.h>
#include <string.h>

/* Rows per work unit: a multiple of every kernel's row tile (4 for matvec, 16 for the Q4_0
 * gemm panels), so no thread gets a ragged tile except at the very end of the matrix. */
#define ROW_GRAIN 16
/* Generic batched products: row and token blocking around the gemm kernel, so a block of
 * weights is reused for many tokens while it sits in L2. */
#define ROW_BLOCK 64
#define TOK_BLOCK 64
/* Q4_0: from this many tokens on, the repacking gemm beats matvecs over L2-resident rows. */
#define Q4_GEMM_MIN_TOK 4
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

static void fast_q4(const struct mm_task *t, int64_t r0, int64_t r1)
{
    const struct pf_kernels *k = t->k;
    if (t->n_tok >= Q4_GEMM_MIN_TOK) {
        k->q4_gemm(t->n_in, (int)(r1 - r0), t->n_tok, t->w + (size_t)r0 * t->w_row, t->w_row, t->xq,
                   t->xq_row, t->y + r0, (size_t)t->n_out);
        return;
    }
    if (t->n_tok == 1) {
        /* one call for the whole range: the kernel prefetches its next rows, and would start
         * cold at every block boundary */
        k->q4_matvec(t->n_in, (int)(r1 - r0), t->w + (size_t)r0 * t->w_row, t->w_row, t->xq, t->y + r0);
        return;
    }
    /* a few tokens: one matvec per token over a block of rows small enough to stay in L2 */
    for (int64_t rb = r0; rb < r1; rb += ROW_BLOCK) {
        int nr = (int)(r1 - rb < ROW_BLOCK ? r1 - rb : ROW_BLOCK);
        for (int i = 0; i < t->n_tok; i++)
            k->q4_matvec(t->n_in, nr, t->w + (size_t)rb * t->w_row, t->w_row,
                         t->xq + (size_t)i * t->xq_row, t->y + (size_t)i * t->n_out + rb);
    }
}

static void matmul_task(void *arg, int ith, int nth)
{
    struct mm_task *t = arg;
    int64_t r0, r1;
    row_range(t->n_out, ith, nth, &r0, &r1);
    if (r0 >= r1) return;
    if (t->fast) { fast_q4(t, r0, r1); return; }
    pf_gemm_fn gemm = t->k->gemm[t->wtype];
    if (t->n_tok == 1) {
        gemm(t->n_in, (int)(r1 - r0), 1, t->w + (size_t)r0 * t->w_row, t->w_row, t->xq, t->xq_row,
             t->y + r0, (size_t)t->n_out);
        return;
    }
    for (int64_t rb = r0; rb < r1; rb += ROW_BLOCK) {
        int nr = (int)(r1 - rb < ROW_BLOCK ? r1 - rb : ROW_BLOCK);
        for (int tb = 0; tb < t->n_tok; tb += TOK_BLOCK) {
            int nt = t->n_tok - tb < TOK_BLOCK ? t->n_tok - tb : TOK_BLOCK;
            gemm(t->n_in, nr, nt, t->w + (size_t)rb * t->w_row, t->w_row,
                 t->xq + (size_t)tb * t->xq_row, t->xq_row, t->y + (size_t)tb * t->n_out + rb,
                 (size_t)t->n_out);
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
    if (wtype == PF_TYPE_F32) {
        t.xq = (char *)(uintptr_t)x; /* read only: F32 needs no conversion */
    } else {
        t.xq = (char *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
        if (n_tok >= PAR_QUANT_MIN_TOK) pf_pool_run(pool, convert_task, &t);
        else convert_task(&t, 0, 1);
    }
    pf_pool_run(pool, matmul_task, &t);
}
