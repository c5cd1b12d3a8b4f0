/* Scattered-row read bandwidth by page size, row size and prefetch distance: the memory side of
 * a sparse FFN step, which reads a few KiB here and there (the rows of the neurons it computes).
 *
 *   scatter [-g GiB] [-r row_bytes] [-e every]
 *
 * Two threads read rows of row_bytes (default 2304: a Q4_0 row of 4096) at one random position
 * in every `every` (default 5: ~20% of the rows, a step's share of gate rows), in ascending order,
 * each thread half the list, with the rows `ahead` places on prefetched into L2 whole; from a
 * buffer of GiB (default 6) in 4 KiB pages, then in 2 MiB pages (MADV_HUGEPAGE), and also reading
 * 2 and 3 neighbouring rows at once (a neuron's gate | up | down slot). Prints GB/s per case. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

typedef unsigned long long v2ll __attribute__((vector_size(16)));

struct task {
    const unsigned char *p;
    size_t slot, row;
    const uint32_t *idx;
    size_t n;
    int ahead, rows;
    unsigned long long sink;
};

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void *reader(void *arg)
{
    struct task *t = arg;
    const size_t lines = t->row * (size_t)t->rows / 64;
    v2ll s = { 0 };
    for (size_t k = 0; k < t->n; k++) {
        if (t->ahead && k + (size_t)t->ahead < t->n) {
            const unsigned char *q = t->p + (size_t)t->idx[k + (size_t)t->ahead] * t->slot;
            for (size_t l = 0; l < lines; l++) __builtin_prefetch(q + 64 * l, 0, 2);
        }
        const unsigned char *b = t->p + (size_t)t->idx[k] * t->slot;
        for (size_t l = 0; l < lines; l++) {
            v2ll x[4];
            memcpy(x, b + 64 * l, sizeof x);
            s += x[0] + x[1] + x[2] + x[3];
        }
    }
    t->sink = s[0] + s[1];
    return NULL;
}

int main(int argc, char **argv)
{
    double gib = 6;
    size_t row = 2304;
    int every = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-g")) gib = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "-r")) row = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "-e")) every = atoi(argv[i + 1]);
        else { fprintf(stderr, "usage: %s [-g GiB] [-r row_bytes] [-e every]\n", argv[0]); return 2; }
    }
    if (gib <= 0 || row == 0 || row % 64 || every < 1) { fprintf(stderr, "scatter: bad option value\n"); return 2; }
    const size_t len = (size_t)(gib * (double)(1u << 30)), slot = 3 * row, n_slots = len / slot;
    if (n_slots < (size_t)every * 2 || n_slots > UINT32_MAX) { fprintf(stderr, "scatter: buffer too small or too large\n"); return 2; }
    uint32_t *idx = malloc(sizeof *idx * (n_slots / (size_t)every + 1));
    if (!idx) { fprintf(stderr, "scatter: out of memory\n"); return 1; }
    size_t n = 0;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t r = 0; r + (size_t)every <= n_slots; r += (size_t)every) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        idx[n++] = (uint32_t)(r + x % (uint64_t)every);
    }
    for (int huge = 0; huge < 2; huge++) {
        unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) { fprintf(stderr, "scatter: cannot map %.1f GiB\n", gib); return 1; }
        madvise(p, len, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
        memset(p, 1, len);
        for (int rows = 1; rows <= 3; rows++)
            for (int ahead = 0; ahead <= 8; ahead += 4) {
                struct task t[2];
                pthread_t th[2];
                double t0 = now();
                for (int i = 0; i < 2; i++) {
                    t[i] = (struct task){ .p = p, .slot = slot, .row = row, .idx = idx + n * (size_t)i / 2,
                                          .n = n * (size_t)(i + 1) / 2 - n * (size_t)i / 2, .ahead = ahead, .rows = rows };
                    pthread_create(&th[i], NULL, reader, &t[i]);
                }
                for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
                double dt = now() - t0;
                printf("%s pages, %d row(s) of %zu B together, prefetch %d ahead: %5.1f GB/s\n", huge ? "2 MiB" : "4 KiB", rows,
                       row, ahead, (double)n * (double)rows * (double)row / dt / 1e9);
            }
        munmap(p, len);
    }
    free(idx);
    return 0;
}
