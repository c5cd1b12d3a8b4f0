/* Reference logits from llama.cpp, for pinfer's test data: teacher-forced logits of a token
 * sequence, in the format of ../shared/models/stories260K/reference/*.logits.txt (one line per
 * position: pos, input id, argmax id, then n_vocab logits). pinfer's own program against
 * llama.cpp's public API (llama.h); llama.cpp itself is built beside pinfer, never committed.
 *
 *   git clone <llama.cpp snapshot> /work/llama.cpp && cd /work/llama.cpp
 *   cmake -B build -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DGGML_OPENMP=OFF -DBUILD_SHARED_LIBS=OFF
 *   cmake --build build -j2 --target llama llama-quantize
 *   cc -O2 scripts/llama-ref/ref_logits.c -I/work/llama.cpp/include -I/work/llama.cpp/ggml/include \
 *      /work/llama.cpp/build/src/libllama.a /work/llama.cpp/build/ggml/src/libggml*.a \
 *      -lstdc++ -lm -pthread -o /work/ref_logits        (library order as the linker needs)
 *   /work/ref_logits MODEL.gguf OUT.logits.txt ID ID ID ...
 *
 * One thread, all positions in one batch, every position's logits requested. */
#include "llama.h"

#include <stdio.h>
#include <stdlib.h>

static void quiet(enum ggml_log_level level, const char *text, void *user)
{
    (void)user;
    if (level >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: ref_logits MODEL.gguf OUT.txt ID...\n");
        return 2;
    }
    const int n = argc - 3;
    llama_log_set(quiet, NULL);
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    struct llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)(n < 64 ? 64 : n);
    cp.n_batch = cp.n_ubatch = (uint32_t)n;
    cp.n_threads = cp.n_threads_batch = 1;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) { fprintf(stderr, "cannot create a context\n"); return 1; }
    const int nv = llama_vocab_n_tokens(llama_model_get_vocab(model));
    struct llama_batch b = llama_batch_init(n, 0, 1);
    for (int i = 0; i < n; i++) {
        b.token[i] = atoi(argv[3 + i]);
        b.pos[i] = i;
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = 0;
        b.logits[i] = 1;
    }
    b.n_tokens = n;
    if (llama_decode(ctx, b) != 0) { fprintf(stderr, "decode failed\n"); return 1; }
    FILE *fp = fopen(argv[2], "w");
    if (!fp) { perror(argv[2]); return 1; }
    fprintf(fp, "# n_vocab=%d; one line per forward step: pos, input id, argmax id, then n_vocab logits (llama.cpp)\n", nv);
    for (int i = 0; i < n; i++) {
        const float *l = llama_get_logits_ith(ctx, i);
        int a = 0;
        for (int k = 1; k < nv; k++) if (l[k] > l[a]) a = k;
        fprintf(fp, "%d %d %d", i, b.token[i], a);
        for (int k = 0; k < nv; k++) fprintf(fp, " %.5f", l[k]);
        fputc('\n', fp);
    }
    if (fclose(fp) != 0) { perror(argv[2]); return 1; }
    llama_batch_free(b);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
