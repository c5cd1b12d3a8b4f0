/* Window and LRU statistics of active sets (definitions in act_temporal.h). The LRU order is
 * core/lru.h's list over neuron indices, so an access costs O(1) whatever the layer width: a 7B
 * layer is ~1,400 accesses per token. */
#include "profile/act_temporal.h"

#include "core/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int pf_act_temporal_init(struct pf_act_temporal *t, int n, int cap)
{
    memset(t, 0, sizeof *t);
    if (n <= 0 || cap < 1) return pf_fail(PINFER_EINVAL, "temporal stats: %d neurons, capacity %d", n, cap);
    t->n = n;
    t->cap = cap < n ? cap : n;
    t->last = malloc((size_t)n * sizeof *t->last);
    t->lru.prev = malloc((size_t)n * sizeof *t->lru.prev);
    t->lru.next = malloc((size_t)n * sizeof *t->lru.next);
    t->state = calloc((size_t)n, 1);
    if (!t->last || !t->lru.prev || !t->lru.next || !t->state) {
        pf_act_temporal_free(t);
        return pf_fail(PINFER_ENOMEM, "out of memory for temporal statistics");
    }
    for (int i = 0; i < n; i++) t->last[i] = -1;
    t->lru.head = t->lru.tail = -1;
    return 0;
}

void pf_act_temporal_free(struct pf_act_temporal *t)
{
    free(t->last); free(t->lru.prev); free(t->lru.next); free(t->state);
    memset(t, 0, sizeof *t);
}

/* One access of neuron i: 1 hit, 0 miss (inserted, evicting the least recently used). */
static int lru_access(struct pf_act_temporal *t, int32_t i)
{
    if (t->state[i] == 2) {
        pf_lru_unlink(&t->lru, i);
        pf_lru_push_front(&t->lru, i);
        return 1;
    }
    if (t->count == t->cap) {
        int32_t v = t->lru.tail;
        pf_lru_unlink(&t->lru, v);
        t->state[v] = 1;
        t->count--;
    }
    pf_lru_push_front(&t->lru, i);
    t->state[i] = 2;
    t->count++;
    return 0;
}

void pf_act_temporal_add(struct pf_act_temporal *t, const uint8_t *on)
{
    const int64_t now = t->tok;
    const int full = now - t->seq_start >= PF_ACT_WINDOW;
    for (int32_t i = 0; i < t->n; i++) {
        if (!on[i]) continue;
        if (full) {
            t->new_den++;
            t->new_num += t->last[i] < now - PF_ACT_WINDOW;
        }
        t->last[i] = now;
        int first = t->state[i] == 0;
        int hit = lru_access(t, i);
        if (!first) { t->acc++; t->hit += (uint64_t)hit; }
    }
    t->tok++;
}

void pf_act_temporal_break(struct pf_act_temporal *t) { t->seq_start = t->tok; }

double pf_act_temporal_new_frac(const struct pf_act_temporal *t)
{
    return t->new_den ? (double)t->new_num / (double)t->new_den : NAN;
}

double pf_act_temporal_lru_hit(const struct pf_act_temporal *t)
{
    return t->acc ? (double)t->hit / (double)t->acc : NAN;
}
