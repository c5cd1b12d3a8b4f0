/* A fixed pool of threads that run one data-parallel task at a time. The caller is thread 0
 * and works too, so a pool of n threads starts n-1 workers. Workers spin briefly on a
 * generation counter (decode issues hundreds of small tasks per token, and a condition-variable
 * wake costs tens of microseconds), then sleep. */
#ifndef PF_CORE_THREADPOOL_H
#define PF_CORE_THREADPOOL_H

struct pf_pool;

typedef void (*pf_task_fn)(void *arg, int ith, int nth);

/* n_threads >= 1 (total, caller included). *out is owned by the caller (pf_pool_free). */
int pf_pool_new(struct pf_pool **out, int n_threads);
void pf_pool_free(struct pf_pool *pool);
int pf_pool_size(const struct pf_pool *pool);
/* Runs fn(arg, ith, nth) for ith = 0..nth-1, the caller taking ith 0; returns when all are done.
 * pool may be NULL: then fn(arg, 0, 1) runs on the caller. Not reentrant. */
void pf_pool_run(struct pf_pool *pool, pf_task_fn fn, void *arg);

/* One step of a spin-wait (the CPU's pause hint). */
static inline void pf_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Splits [0, n) into nth nearly equal ranges; sets [*lo, *hi) for thread ith. */
static inline void pf_split(long n, int ith, int nth, long *lo, long *hi)
{
    long per = n / nth, rem = n % nth;
    *lo = ith * per + (ith < rem ? ith : rem);
    *hi = *lo + per + (ith < rem ? 1 : 0);
}

/* Number of online CPUs (at least 1). */
int pf_cpu_count(void);

#endif
