/* A least-recently-used order over the indices of a table, as a doubly linked list kept in two
 * arrays the caller allocates (-1 = none; head = most recent): O(1) unlink and push to the
 * front, whatever the table's size. The neuron cache's cold segment (cache/cache.c) and the LRU
 * simulation of `pinfer profile` (profile/act_temporal.c) both keep their order in one. */
#ifndef PF_CORE_LRU_H
#define PF_CORE_LRU_H

#include <stdint.h>

struct pf_lru_list {
    int32_t *prev, *next; /* (n) links */
    int32_t head, tail;   /* most and least recently used; -1 when empty */
};

static inline void pf_lru_unlink(struct pf_lru_list *l, int32_t e)
{
    if (l->prev[e] >= 0) l->next[l->prev[e]] = l->next[e]; else l->head = l->next[e];
    if (l->next[e] >= 0) l->prev[l->next[e]] = l->prev[e]; else l->tail = l->prev[e];
}

static inline void pf_lru_push_front(struct pf_lru_list *l, int32_t e)
{
    l->prev[e] = -1;
    l->next[e] = l->head;
    if (l->head >= 0) l->prev[l->head] = e; else l->tail = e;
    l->head = e;
}

#endif
