/* A software prefetch queue for the sparse decode step. The rows a thread will read next are
 * scattered (a neuron's slot here and there), so neither the hardware stream prefetchers nor a
 * burst of prefetches at each row start keeps enough misses in flight: a burst of a whole row (36
 * lines for Q4_0 at n_embd 4096) fills the core's miss buffers and stalls it (measured: 2x slower
 * than no prefetching). Instead the kernels issue a few lines per step, about as many as the step
 * consumes, from two lists of byte ranges: `urgent` (rows needed soon: the down rows of the
 * cluster just decided) before `ahead` (the next cluster's gate and up rows).
 *
 * Prefetches are hints: a full queue drops ranges, and nothing here affects results. */
#ifndef PF_TENSOR_PREFETCH_H
#define PF_TENSOR_PREFETCH_H

#include <stddef.h>
#include <stdint.h>

#define PF_PQ_CAP 1024 /* ranges per list (a power of two) */

struct pf_pq_list {
    const char *p[PF_PQ_CAP];
    uint32_t lines[PF_PQ_CAP];
    uint32_t head, tail;  /* ring indices (free-running) */
};

struct pf_pq {
    struct pf_pq_list urgent, ahead;
};

static inline void pf_pq_reset(struct pf_pq *q)
{
    q->urgent.head = q->urgent.tail = q->ahead.head = q->ahead.tail = 0;
}

static inline void pf_pq_list_push(struct pf_pq_list *l, const void *p, size_t bytes)
{
    if (l->tail - l->head >= PF_PQ_CAP || bytes == 0) return;
    uintptr_t a = (uintptr_t)p & ~(uintptr_t)63, e = ((uintptr_t)p + bytes + 63) & ~(uintptr_t)63;
    l->p[l->tail % PF_PQ_CAP] = (const char *)a;
    l->lines[l->tail % PF_PQ_CAP] = (uint32_t)((e - a) / 64);
    l->tail++;
}

static inline void pf_pq_push_urgent(struct pf_pq *q, const void *p, size_t bytes) { if (q) pf_pq_list_push(&q->urgent, p, bytes); }
static inline void pf_pq_push_ahead(struct pf_pq *q, const void *p, size_t bytes) { if (q) pf_pq_list_push(&q->ahead, p, bytes); }

/* Issues up to n line prefetches (into L2: the lines are used within microseconds, and L1 is
 * busy with the rows being computed); returns how many were left to issue. */
static inline int pf_pq_list_issue(struct pf_pq_list *l, int n)
{
    while (n > 0 && l->head != l->tail) {
        uint32_t i = l->head % PF_PQ_CAP;
        __builtin_prefetch(l->p[i], 0, 2);
        l->p[i] += 64;
        n--;
        if (--l->lines[i] == 0) l->head++;
    }
    return n;
}

static inline void pf_pq_issue(struct pf_pq *q, int n)
{
    if (!q) return;
    n = pf_pq_list_issue(&q->urgent, n);
    if (n > 0) pf_pq_list_issue(&q->ahead, n);
}

#endif
