/* libFuzzer targets for the whole model load: the input is a model file, written to an
 * in-memory file (memfd) and loaded through pinfer_model_load as a user's file would be (GGUF
 * parse, hyper-parameters, tensor shapes and placement, the 64-byte relocation, prepared-model
 * metadata and bundles, the vocabulary), then used: tokenize and detokenize a short text, create a
 * context and decode two tokens. Any bound the loader forgot shows as an ASan/UBSan report or a
 * leak; a load that fails must leave a message.
 *
 * Two targets are built from this file (make fuzz):
 *   fuzz_model     the input is the whole file; seeds are tiny synthetic models (scripts/fuzz.sh);
 *   fuzz_prepared  (FUZZ_PREPARED) the input is the head of a prepared model: keys, tensor infos
 *                  and as much data as it carries; the file is extended with zeros to 4 MiB
 *                  beyond the input (a sparse ftruncate, no cost), so mutations of the keys
 *                  (permutation, frequencies, thresholds, bundle layout) and of the tensor infos
 *                  reach the prepared-model checks instead of stopping at "data out of range".
 *                  The input's length picks how it runs: in memory with the predictor, in
 *                  memory with the oracle, or under a memory budget (the neuron cache). */
#include "core/error.h"
#include "pinfer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#ifdef FUZZ_PREPARED
static const size_t extend = (size_t)4 << 20;
#else
static const size_t extend = 0;
#endif

static void use_model(struct pinfer_model *m, size_t size)
{
    int32_t ids[16];
    int n = pinfer_tokenize(m, "Hi there", 8, true, ids, 16);
    if (n < -100) __builtin_trap(); /* a status code or a count */
    char piece[1100];
    for (int i = 0; i < n && i < 16; i++) {
        if (ids[i] < 0 || ids[i] >= pinfer_n_vocab(m)) __builtin_trap();
        pinfer_token_to_piece(m, ids[i], piece, sizeof piece);
    }
    struct pinfer_ctx_params cp = pinfer_ctx_default_params();
    cp.n_ctx = 8;
    cp.n_batch = 2;
    cp.n_threads = 1;
#ifdef FUZZ_PREPARED
    cp.sparse = size % 3 == 1 ? PINFER_SPARSE_ORACLE : PINFER_SPARSE_PREDICTOR;
#else
    (void)size;
#endif
    struct pinfer_ctx *c = NULL;
    if (pinfer_ctx_new(&c, m, &cp) == 0) {
        int32_t t[2] = { 0, pinfer_n_vocab(m) - 1 };
        if (pinfer_decode(c, t, 2, 0, true) == 0) {
            const float *l = pinfer_ctx_logits(c, 1);
            if (!l) __builtin_trap();
            volatile float sink = l[0] + l[pinfer_n_vocab(m) - 1];
            (void)sink;
            pinfer_decode(c, t, 1, 2, false);
        } else if (!pinfer_last_error()[0]) {
            __builtin_trap();
        }
        pinfer_ctx_free(c);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz-model", MFD_CLOEXEC);
    if (fd < 0) return 0;
    size_t done = 0;
    while (done < size) {
        ssize_t k = write(fd, data + done, size - done);
        if (k <= 0) { close(fd); return 0; }
        done += (size_t)k;
    }
    if (extend > 0 && ftruncate(fd, (off_t)(size + extend)) != 0) { close(fd); return 0; }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    struct pinfer_model_params mp = pinfer_model_default_params();
#ifdef FUZZ_PREPARED
    if (size % 3 == 2) mp.mem_budget = 64u << 20;
#endif
    struct pinfer_model *m = NULL;
    int rc = pinfer_model_load(&m, path, &mp);
    if (rc == 0) {
        use_model(m, size);
        pinfer_model_free(m);
    } else if (rc > 0 || !pinfer_last_error()[0]) {
        __builtin_trap(); /* a failure must be a negative code with a message */
    }
    close(fd);
    return 0;
}
