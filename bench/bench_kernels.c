/* Kernel benchmark: the matrix products of a Llama-2-7B-shaped Q4_0 model (32 layers of
 * wq wk wv wo 4096x4096, gate up 4096->11008, down 11008->4096, plus the 32000-row output
 * matrix), in anonymous huge-page-backed memory like the loader's, timed through pf_matmul:
 *
 *   decode  (n_tok = 1):   one pass over every matrix = one token; prints tok/s, GB/s streamed
 *                          and the fraction of the memory-bandwidth roof
 *   prefill (n_tok = 128): a few layers, extrapolated to the whole model; prints tok/s and GOPS
 *
 * for each kernel table and thread count. Only matmuls are timed (no attention, norms, ...), so
 * these are upper bounds for the forward pass. Random weights with sane scales.
 *
 *   bench_kernels [-v ref,avx2,avx512] [-t 1,2] [-r reps] [-l prefill_layers] [-m decode|prefill|all]
 *                 [-n n_tok] */
#include "core/threadpool.h"
#include "tensor/matmul.h"

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
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-v")) nv = parse_list(argv[i + 1], variants, 4);
        else if (!strcmp(argv[i], "-t")) nthr = parse_list(argv[i + 1], threads_s, 4);
        else if (!strcmp(argv[i], "-r")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-l")) pre_layers = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-m")) mode = argv[i + 1];
        else if (!strcmp(argv[i], "-n")) n_tok_pre = atoi(argv[i + 1]);
        else { fprintf(stderr, "unknown option %s\n", argv[i]); return 2; }
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
    printf("weights: %d Q4_0 matrices, %.3f GiB (%.2f GB), filled in %.1f s\n", nm,
           bytes_all / 1073741824.0, bytes_all / 1e9, now() - t0);

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
                double best = 1e9, sum = 0;
                for (int r = 0; r < r_dec; r++) {
                    double s = now();
                    for (int i = 0; i < nm; i++)
                        pf_matmul_k(k, pool, y, mats[i].w, PF_TYPE_Q4_0, mats[i].n_in, mats[i].n_out, x, 1, scratch);
                    double dt = now() - s;
                    sum += dt;
                    if (dt < best) best = dt;
                }
                double gbs = bytes_all / best / 1e9;
                printf("%-7s decode  %d thr: %7.2f tok/s best (%6.2f mean)  %6.1f GB/s  %3.0f%% of %.0f GB/s roof  (%d matmuls/token)\n",
                       variants[v], nt, 1.0 / best, r_dec / sum, gbs, 100.0 * gbs / roof, roof, nm);
                fflush(stdout);
            }
            if (!strcmp(mode, "prefill") || !strcmp(mode, "all")) {
                int r_pre = strcmp(variants[v], "ref") == 0 ? 1 : (reps < 2 ? reps : 2);
                int layers = strcmp(variants[v], "ref") == 0 ? 1 : pre_layers;
                double best = 1e9;
                double ops = 0;
                for (int i = 0; i < layers * 7; i++) ops += 2.0 * mats[i].n_in * mats[i].n_out * n_tok_pre;
                for (int r = 0; r < r_pre; r++) {
                    double s = now();
                    for (int i = 0; i < layers * 7; i++)
                        pf_matmul_k(k, pool, y, mats[i].w, PF_TYPE_Q4_0, mats[i].n_in, mats[i].n_out, x, n_tok_pre, scratch);
                    double dt = now() - s;
                    if (dt < best) best = dt;
                }
                /* the output matrix is computed for the last prompt token only */
                double per_model = best * N_LAYER / layers;
                printf("%-7s prefill %d thr: %7.2f tok/s (%d tokens, %d layers timed, x%d)  %6.1f GOPS  %5.1f GOPS/thread\n",
                       variants[v], nt, n_tok_pre / per_model, n_tok_pre, layers, N_LAYER / layers,
                       ops / best / 1e9, ops / best / 1e9 / nt);
                fflush(stdout);
            }
            pf_pool_free(pool);
        }
    }
    free(x); free(y); free(scratch);
    munmap(arena, total);
    return 0;
}
