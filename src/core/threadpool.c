/* Spin-then-sleep thread pool. One task at a time: pf_pool_run publishes (fn, arg) and bumps
 * `gen`; each worker runs its share and increments `done`; the caller runs share 0 and then waits
 * for done == nth-1. Sleeping workers are woken through a condition variable only when they
 * announced they were going to sleep, so the common (spinning) path takes no lock. */
#include "core/threadpool.h"
#include "pinfer.h"

#include "core/error.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#define SPIN_ITERS 200000

struct pf_pool {
    int nth;
    pthread_t *threads;
    pf_task_fn fn;
    void *arg;
    _Atomic unsigned gen;
    _Atomic int done;
    _Atomic int sleepers;
    _Atomic int stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

struct worker_arg { struct pf_pool *pool; int ith; };

static void *worker_main(void *p)
{
    struct worker_arg wa = *(struct worker_arg *)p;
    free(p);
    struct pf_pool *pool = wa.pool;
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&pool->gen, memory_order_acquire)) == seen &&
               !atomic_load_explicit(&pool->stop, memory_order_acquire)) {
            if (++spins < SPIN_ITERS) {
                if ((spins & 1023) == 1023) sched_yield();
                else pf_cpu_relax();
                continue;
            }
            pthread_mutex_lock(&pool->mu);
            atomic_fetch_add(&pool->sleepers, 1);
            while (atomic_load(&pool->gen) == seen && !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->cv, &pool->mu);
            atomic_fetch_sub(&pool->sleepers, 1);
            pthread_mutex_unlock(&pool->mu);
            spins = 0;
        }
        if (atomic_load_explicit(&pool->stop, memory_order_acquire)) return NULL;
        seen = g;
        pool->fn(pool->arg, wa.ith, pool->nth);
        atomic_fetch_add_explicit(&pool->done, 1, memory_order_release);
    }
}

int pf_pool_new(struct pf_pool **out, int n_threads)
{
    *out = NULL;
    if (n_threads < 1 || n_threads > 1024) return pf_fail(PINFER_EINVAL, "thread count %d out of range 1..1024", n_threads);
    struct pf_pool *pool = calloc(1, sizeof *pool);
    if (!pool) return pf_fail(PINFER_ENOMEM, "out of memory for thread pool");
    pool->nth = n_threads;
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->cv, NULL);
    if (n_threads > 1) {
        pool->threads = calloc((size_t)n_threads - 1, sizeof *pool->threads);
        if (!pool->threads) { free(pool); return pf_fail(PINFER_ENOMEM, "out of memory for thread pool"); }
    }
    for (int i = 1; i < n_threads; i++) {
        struct worker_arg *wa = malloc(sizeof *wa);
        if (wa) { wa->pool = pool; wa->ith = i; }
        if (!wa || pthread_create(&pool->threads[i - 1], NULL, worker_main, wa) != 0) {
            free(wa);
            pool->nth = i; /* join only what started */
            pf_pool_free(pool);
            return pf_fail(PINFER_ENOMEM, "cannot start worker thread %d", i);
        }
    }
    *out = pool;
    return 0;
}

void pf_pool_free(struct pf_pool *pool)
{
    if (!pool) return;
    pthread_mutex_lock(&pool->mu);
    atomic_store(&pool->stop, 1);
    pthread_cond_broadcast(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 1; i < pool->nth; i++) pthread_join(pool->threads[i - 1], NULL);
    pthread_mutex_destroy(&pool->mu);
    pthread_cond_destroy(&pool->cv);
    free(pool->threads);
    free(pool);
}

int pf_pool_size(const struct pf_pool *pool) { return pool ? pool->nth : 1; }

void pf_pool_run(struct pf_pool *pool, pf_task_fn fn, void *arg)
{
    if (!pool || pool->nth == 1) { fn(arg, 0, 1); return; }
    pool->fn = fn;
    pool->arg = arg;
    atomic_store_explicit(&pool->done, 0, memory_order_relaxed);
    /* seq_cst on both sides: a worker increments `sleepers` and then re-reads `gen` under the
     * mutex, we bump `gen` and then read `sleepers`; one of us must see the other's write. */
    atomic_fetch_add(&pool->gen, 1);
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->mu);
        pthread_cond_broadcast(&pool->cv);
        pthread_mutex_unlock(&pool->mu);
    }
    fn(arg, 0, pool->nth);
    /* yield now and then: with more threads than free cores, a worker we wait for may be
     * descheduled, and pure spinning would burn our whole time slice */
    for (unsigned spins = 0; atomic_load_explicit(&pool->done, memory_order_acquire) < pool->nth - 1; spins++) {
        if ((spins & 1023) == 1023) sched_yield();
        else pf_cpu_relax();
    }
}

int pf_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

int pinfer_cpu_count(void) { return pf_cpu_count(); }
