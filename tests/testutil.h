/* Minimal test harness: a test program exits 0 (pass), 1 (fail) or 77 (skip), like liburing's
 * and automake's. CHECK* record a failure and go on; tests/run.sh prints the summary. */
#ifndef PF_TESTUTIL_H
#define PF_TESTUTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

extern int tu_failures;

#define CHECK(cond) do { if (!(cond)) { tu_failures++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define CHECKF(cond, ...) do { if (!(cond)) { tu_failures++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)
#define TEST_SKIP(...) do { printf("SKIP: "); printf(__VA_ARGS__); printf("\n"); exit(77); } while (0)
#define TEST_DONE() return tu_failures ? 1 : 0

/* Path of the shared test material (../shared relative to the repository root), taken from
 * $PINFER_SHARED or found from the current directory; NULL if absent. */
const char *tu_shared_dir(void);
/* Joins tu_shared_dir() with rel into a static buffer; NULL if the shared dir is absent. */
const char *tu_shared_path(const char *rel);
/* Reads a whole file (NUL-terminated); NULL on failure. Caller frees. */
char *tu_read_file(const char *path, size_t *len);
/* A fresh temp directory for this test (removed by nobody: lives under build/tmp). */
const char *tu_tmpdir(void);
/* tu_tmpdir()/name in one of 8 rotating static buffers. */
const char *tu_tmp(const char *name);
/* Deterministic xorshift random numbers for test data. */
unsigned long long tu_rand(unsigned long long *state);
float tu_randf(unsigned long long *state); /* uniform in [-1, 1) */

/* Writes a synthetic model (sp) to raw and its prepared form to prep (n_tokens calibration
 * tokens, steps Adam steps, 2 threads); 0, or -1 after printing why. */
struct pinfer_synth_params;
int tu_make_prepared(const char *raw, const char *prep, const struct pinfer_synth_params *sp, int n_tokens, int steps);
/* A small Mixtral-layout model (2 layers, 4 heads / 2 kv, vocab 384, ctx 256) of n_expert experts,
 * n_used per token, n_embd dim, n_ff ffn; sparsity 0: synth's default. 0, or the synth error
 * after a failed CHECK. */
int tu_synth_moe(const char *path, int act, int type, int n_expert, int n_used, int dim, int ffn, unsigned seed,
                 float sparsity);

/* Copies the GGUF file in to out with edits: the key `drop` (if not NULL) left out; the key
 * `key` (if not NULL) set (the writer replaces a copied value in place) to the u32 array u32[0..n_u32), or with
 * scalar to the u32 u32[0]; the tensor drop_tensor left out; the tensor `shape` declared with
 * n_dims, ne (its data cut or zero-padded to that size); with split_experts each merged expert
 * tensor blk.N.ffn_P_exps {a, b, X} written as X tensors blk.N.ffn_P.E.weight {a, b} (the older
 * MoE layout); every other tensor for which retype(name) returns a type >= 0 converted to that
 * type (dequantized and re-quantized row by row along ne[0], with the reference kernels). 0, or
 * -1 after printing why. */
struct tu_gguf_edit {
    const char *drop;
    const char *key;
    const uint32_t *u32;
    int n_u32;
    bool scalar;
    int (*retype)(const char *name);
    const char *drop_tensor;
    const char *shape;
    int n_dims;
    int64_t ne[4];
    bool split_experts;
};
int tu_gguf_edit(const char *in, const char *out, const struct tu_gguf_edit *e);

/* A tiny K-quant model (act, Q4_K, n_embd 256, n_ff 512, seed) to raw; with mixed, the
 * ffn_down of every odd layer re-quantized to Q6_K (as llama.cpp's Q4_K_M does in some
 * layers); and its prepared form to prep (n_tokens calibration tokens, steps Adam steps).
 * 0, or -1 after printing why. */
int tu_make_kquant(const char *raw, const char *prep, int act, unsigned seed, bool mixed, int n_tokens, int steps);

#endif
