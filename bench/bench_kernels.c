/* Kernel benchmark: the matrix products of a Llama-2-7B-shaped Q4_0 model (32 layers of
 * wq wk wv wo 4096x4096, gate up 4096->11008, down 11008->4096, plus the 32000-row output
 * matrix), in anonymous huge-page-backed memory like the loader's, timed through pf_matmul:
 *
 *   decode  (n_tok = 1):   one pass over every matrix = one token; prints tok/s, GB/s streamed,
 *                          the fraction of the nominal bandwidth roof and of a plain read of
 *                          the same memory by the same threads, timed alternately with the
 *                          decode passes (this VM's bandwidth varies with its neighbours)
 *   prefill (n_tok = 128): a few layers, extrapolated to the whole model by operation count;
 *                          prints tok/s and GOPS
 *
 * for each kernel table and thread count. Only matmuls are timed (no attention, norms, ...), so
 * these are upper bounds for the forward pass. Random weights with sane scales.
 *
 *   bench_kernels [-v ref,avx2,avx512] [-t 1,2] [-r reps] [-l prefill_layers] [-m decode|prefill|all]
 *                 [-n n_tok] */
#include "core/threadpool.h"
#include "tensor/matmul.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define N_EMBD 4096
#define N_FF 11008
#define N_LAYER 32
#define N_VOCAB 32000
#define ROOF_1T 42.0 /* GB/s, STREAM triad on this machine (docs/design.md) */
#define ROOF_2T 48.0

struct mat { const void *w; int64_t n_in, n_out; size_t bytes; };

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static unsigned long long rng = 0x1234567;
static inline unsigned long long xr(void)
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return rng;
}

/* Q4_0 blocks with random nibbles and small positive fp16 scales (no NaN, no subnormals). */
static void fill_q4(uint8_t *p, size_t nblocks)
{
    for (size_t b = 0; b < nblocks; b++, p += 18) {
        uint16_t d = (uint16_t)(0x2000 + (xr() & 0x3ff));
        memcpy(p, &d, 2);
        unsigned long long a = xr(), c = xr();
        memcpy(p + 2, &a, 8);
        memcpy(p + 10, &c, 8);
    }
}

/* AnonHugePages of this process (the arena dominates it), 0 if unknown. */
static size_t huge_bytes(void)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    char line[256];
    size_t kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "AnonHugePages: %zu kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb * 1024;
}

/* ---- a plain read of the weights with the same threads: the bandwidth this VM gives right now
 * (it varies with the neighbours), to set the decode figures against ---- */

struct read_task { const uint8_t *p; size_t n; long long sink[64]; };

typedef long long v4ll __attribute__((vector_size(32)));

__attribute__((target("avx2"))) static void read_task_fn(void *arg, int ith, int nth)
{
    struct read_task *t = arg;
    size_t per = t->n / (size_t)nth / 128 * 128, lo = per * (size_t)ith, hi = ith == nth - 1 ? t->n / 128 * 128 : lo + per;
    v4ll a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 };
    for (size_t i = lo; i < hi; i += 128) {
        v4ll x0, x1, x2, x3;
        memcpy(&x0, t->p + i, 32); memcpy(&x1, t->p + i + 32, 32);
        memcpy(&x2, t->p + i + 64, 32); memcpy(&x3, t->p + i + 96, 32);
        a += x0; b += x1; c += x2; d += x3;
    }
    a += b + c + d;
    t->sink[ith % 64] = a[0] + a[1] + a[2] + a[3];
}

/* One plain read of n bytes at p by the pool's threads; seconds. */
static double read_pass(struct pf_pool *pool, const uint8_t *p, size_t n)
{
    struct read_task t = { .p = p, .n = n };
    double s = now();
    pf_pool_run(pool, read_task_fn, &t);
    return now() - s;
}

static int parse_list(const char *s, char out[][16], int max)
{
    int n = 0;
    while (*s && n < max) {
        size_t len = strcspn(s, ",");
        snprintf(out[n++], 16, "%.*s", (int)len, s);
        s += len + (s[len] == ',');
    }
    return n;
}

int main(int argc, char **argv)
{
    char variants[4][16] = { "ref", "avx2", "avx512" }, threads_s[4][16] = { "1", "2" };
    int nv = 3, nthr = 2, reps = 3, pre_layers = 2, n_tok_pre = 128;
    const char *mode = "all";
    int ai = 1;
    for (; ai + 1 < argc; ai += 2) {
        if (!strcmp(argv[ai], "-v")) nv = parse_list(argv[ai + 1], variants, 4);
        else if (!strcmp(argv[ai], "-t")) nthr = parse_list(argv[ai + 1], threads_s, 4);
        else if (!strcmp(argv[ai], "-r")) reps = atoi(argv[ai + 1]);
        else if (!strcmp(argv[ai], "-l")) pre_layers = atoi(argv[ai + 1]);
        else if (!strcmp(argv[ai], "-m")) mode = argv[ai + 1];
        else if (!strcmp(argv[ai], "-n")) n_tok_pre = atoi(argv[ai + 1]);
        else break;
    }
    if (ai != argc) {
        fprintf(stderr, "usage: %s [-v ref,avx2,avx512] [-t 1,2] [-r reps] [-l prefill_layers] "
                        "[-m decode|prefill|all] [-n n_tok]\n", argv[0]);
        return 2;
    }
    if (reps < 1 || pre_layers < 1 || pre_layers > N_LAYER || n_tok_pre < 1) { fprintf(stderr, "bad option value\n"); return 2; }

    /* ---- the weights ---- */
    struct mat mats[N_LAYER * 7 + 1];
    int nm = 0;
    size_t total = 0;
    for (int l = 0; l < N_LAYER; l++) {
        int64_t shapes[7][2] = { { N_EMBD, N_EMBD }, { N_EMBD, N_EMBD }, { N_EMBD, N_EMBD }, { N_EMBD, N_EMBD },
                                 { N_EMBD, N_FF }, { N_EMBD, N_FF }, { N_FF, N_EMBD } };
        for (int k = 0; k < 7; k++) {
            mats[nm] = (struct mat){ NULL, shapes[k][0], shapes[k][1], 0 };
            size_t row;
            pf_row_size(PF_TYPE_Q4_0, shapes[k][0], &row);
            mats[nm].bytes = row * (size_t)shapes[k][1];
            total += (mats[nm].bytes + 4095) & ~(size_t)4095;
            nm++;
        }
    }
    {
        size_t row;
        pf_row_size(PF_TYPE_Q4_0, N_EMBD, &row);
        mats[nm] = (struct mat){ NULL, N_EMBD, N_VOCAB, row * N_VOCAB };
        total += (mats[nm].bytes + 4095) & ~(size_t)4095;
        nm++;
    }
    uint8_t *arena = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (arena == MAP_FAILED) { perror("mmap"); return 1; }
    madvise(arena, total, MADV_HUGEPAGE);
    size_t off = 0, bytes_all = 0;
    double t0 = now();
    for (int i = 0; i < nm; i++) {
        fill_q4(arena + off, mats[i].bytes / 18);
        mats[i].w = arena + off;
        off += (mats[i].bytes + 4095) & ~(size_t)4095;
        bytes_all += mats[i].bytes;
    }
    printf("weights: %d Q4_0 matrices, %.3f GiB (%.2f GB), filled in %.1f s, %.0f%% in huge pages\n", nm,
           bytes_all / 1073741824.0, bytes_all / 1e9, now() - t0, 100.0 * huge_bytes() / (double)total);

    /* ---- activations, outputs, scratch ---- */
    int max_tok = n_tok_pre;
    float *x = malloc(sizeof(float) * (size_t)N_FF * (size_t)max_tok);
    float *y = malloc(sizeof(float) * (size_t)N_VOCAB * (size_t)max_tok);
    for (size_t i = 0; i < (size_t)N_FF * (size_t)max_tok; i++) x[i] = (float)((int)(xr() % 2001) - 1000) / 1000.0f;
    void *scratch = malloc(pf_matmul_scratch_size(PF_TYPE_Q4_0, N_FF, max_tok));

    for (int v = 0; v < nv; v++) {
        const struct pf_kernels *k = pf_kernels_get(variants[v]);
        if (!k) { printf("%-7s not available on this CPU\n", variants[v]); continue; }
        for (int ti = 0; ti < nthr; ti++) {
            int nt = atoi(threads_s[ti]);
            struct pf_pool *pool;
            if (pf_pool_new(&pool, nt) != 0) { fprintf(stderr, "pool\n"); return 1; }
            double roof = nt == 1 ? ROOF_1T : ROOF_2T;
            if (!strcmp(mode, "decode") || !strcmp(mode, "all")) {
                int r_dec = strcmp(variants[v], "ref") == 0 ? 1 : reps;
                /* decode passes alternate with plain reads so both see the same conditions */
                double best = 1e9, sum = 0, best_rd = 1e9;
                for (int r = 0; r < r_dec; r++) {
                    for (int q = 0; q < (r_dec == 1 ? 2 : 1); q++) {
                        double rd = read_pass(pool, arena, total);
                        if (rd < best_rd) best_rd = rd;
                    }
                    double s = now();
                    for (int i = 0; i < nm; i++)
                        pf_matmul_k(k, pool, y, mats[i].w, PF_TYPE_Q4_0, mats[i].n_in, mats[i].n_out, x, 1, scratch);
                    double dt = now() - s;
                    sum += dt;
                    if (dt < best) best = dt;
                }
                double gbs = bytes_all / best / 1e9, rd = total / best_rd / 1e9;
                printf("%-7s decode  %d thr: %7.2f tok/s best (%6.2f mean)  %6.1f GB/s  %3.0f%% of %.0f GB/s roof, "
                       "%3.0f%% of a plain read (%.1f GB/s)\n",
                       variants[v], nt, 1.0 / best, r_dec / sum, gbs, 100.0 * gbs / roof, roof, 100.0 * gbs / rd, rd);
                fflush(stdout);
            }
            if (!strcmp(mode, "prefill") || !strcmp(mode, "all")) {
                /* time the first few layers' matrices (ref: only wq, it is slow) and extrapolate
                 * by operation count; the output matrix only sees the last prompt token */
                bool is_ref = strcmp(variants[v], "ref") == 0;
                int n_timed = is_ref ? 1 : pre_layers * 7, r_pre = is_ref ? 1 : (reps < 2 ? reps : 2);
                double best = 1e9, ops = 0, ops_model = 2.0 * N_EMBD * N_VOCAB;
                for (int i = 0; i < n_timed; i++) ops += 2.0 * mats[i].n_in * mats[i].n_out * n_tok_pre;
                for (int i = 0; i < N_LAYER * 7; i++) ops_model += 2.0 * mats[i].n_in * mats[i].n_out * n_tok_pre;
                for (int r = 0; r < r_pre; r++) {
                    double s = now();
                    for (int i = 0; i < n_timed; i++)
                        pf_matmul_k(k, pool, y, mats[i].w, PF_TYPE_Q4_0, mats[i].n_in, mats[i].n_out, x, n_tok_pre, scratch);
                    double dt = now() - s;
                    if (dt < best) best = dt;
                }
                double gops = ops / best / 1e9;
                printf("%-7s prefill %d thr: %7.2f tok/s (%d tokens, %d matrices timed)  %6.1f GOPS  %5.1f GOPS/thread\n",
                       variants[v], nt, n_tok_pre / (ops_model / (gops * 1e9)), n_tok_pre, n_timed, gops, gops / nt);
                fflush(stdout);
            }
            pf_pool_free(pool);
        }
    }
    free(x); free(y); free(scratch);
    munmap(arena, total);
    return 0;
}
