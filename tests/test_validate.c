/* The load-time check of tensor data (tensor/validate.c) and what a model does with corrupt
 * weights.
 *  - pf_validate_data against the reference dequantizer as the oracle: blocks of random bytes
 *    that are finite as any float field, one poisoned 4-byte window slid over every 2-byte
 *    position of the middle block; the check must fail exactly when dequantizing the data gives a
 *    non-finite weight, and then name the middle block.
 *  - a synthetic K-quant model with a NaN block scale in one FFN row, an infinite value in a
 *    norm weight, a NaN scale in the Q6_K head: load fails and names tensor and row; with the
 *    check off, decoding fails where the NaN reaches the residual stream or the logits instead
 *    of sampling from them. */
#include "gguf/gguf.h"
#include "pinfer.h"
#include "tensor/kernels.h"
#include "tensor/types.h"
#include "tensor/validate.h"
#include "testutil.h"

#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint8_t rnd_byte(void)
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (uint8_t)rng;
}

static void test_type(int type)
{
    const struct pf_type_info *ti = pf_type_get(type);
    if (!ti || !pf_kernels_ref.dequant[type]) return;
    const int per = ti->blck > 1 ? 1 : 8; /* float types: 8 elements per "block" */
    const size_t bs = ti->size * (size_t)per;
    const int64_t ne = (int64_t)ti->blck * per; /* elements per block */
    uint8_t *buf = malloc(3 * bs);
    float *deq = malloc(3 * (size_t)ne * sizeof *deq);
    int flagged = 0, windows = 0;
    for (size_t o = 0; o + 2 <= bs; o += 2) {
        /* 0x3b masks every f16/bf16/f32 exponent off all-ones: random but finite */
        for (size_t i = 0; i < 3 * bs; i++) buf[i] = rnd_byte() & 0x3b;
        size_t bad = 7;
        CHECKF(pf_validate_data(type, buf, 3 * bs, &bad), "%s: clean data flagged (block %zu)", ti->name, bad);
        for (size_t k = o; k < o + 4 && k < bs; k++) buf[bs + k] = 0xff;
        pf_kernels_ref.dequant[type](buf, deq, 3 * ne);
        bool finite = true;
        for (int64_t i = 0; i < 3 * ne; i++) finite = finite && isfinite(deq[i]);
        bool ok = pf_validate_data(type, buf, 3 * bs, &bad);
        CHECKF(ok == finite, "%s: poison at byte %zu: check says %s, dequantized weights are %s", ti->name, o,
               ok ? "fine" : "bad", finite ? "finite" : "not");
        if (!ok) CHECKF(bad == (size_t)per * 1 + (per > 1 ? o / ti->size : 0) || (per == 1 && bad == 1),
                        "%s: poison at byte %zu reported at %zu", ti->name, o, bad);
        flagged += !ok;
        windows++;
    }
    printf("%-7s %3d of %3d poisoned windows make non-finite weights; all of them flagged\n", ti->name, flagged, windows);
    CHECKF(flagged > 0, "%s: no window made a non-finite weight", ti->name);
    size_t bad;
    CHECK(!pf_validate_data(type, buf, 3 * bs - 1, &bad)); /* not whole blocks */
    free(buf);
    free(deq);
}

/* ==== Models ==== */

static int tensor_at(const char *path, const char *name, uint64_t *off, size_t *row)
{
    struct gguf_file *f = NULL;
    if (gguf_open(&f, path)) return -1;
    int i = gguf_find_tensor(f, name);
    if (i >= 0) {
        *off = f->tensors[i].file_offset;
        pf_row_size(f->tensors[i].type, f->tensors[i].ne[0], row);
    }
    gguf_close(f);
    return i < 0 ? -1 : 0;
}

static int copy_file(const char *from, const char *to)
{
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, to);
    return system(cmd);
}

static void poke(const char *path, uint64_t off, const void *b, size_t n)
{
    int fd = open(path, O_WRONLY);
    CHECK(fd >= 0 && pwrite(fd, b, n, (off_t)off) == (ssize_t)n);
    close(fd);
}

/* Loads path (check on) expecting a failure naming `tensor` and `row`; then with the check off
 * decodes: when `seen` the NaN reaches the residual stream or the logits and decode fails; else
 * (a NaN that only reaches activations that are quantized next: quantizing drops NaNs, as ggml
 * does) decode runs on, and only the load-time check protects the user. */
static void expect_corrupt(const char *path, const char *tensor, const char *row, bool seen)
{
    struct pinfer_model *m = (struct pinfer_model *)1;
    int rc = pinfer_model_load(&m, path, NULL);
    CHECKF(rc == PINFER_EFORMAT, "%s: load gave %d (%s)", tensor, rc, pinfer_last_error());
    CHECKF(strstr(pinfer_last_error(), tensor) && strstr(pinfer_last_error(), row), "%s: message '%s'", tensor,
           pinfer_last_error());
    printf("%s\n", pinfer_last_error());
    struct pinfer_model_params mp = pinfer_model_default_params();
    mp.check_tensors = false;
    m = NULL;
    rc = pinfer_model_load(&m, path, &mp);
    CHECKF(rc == 0, "unchecked load: %s", pinfer_last_error());
    if (rc) return;
    struct pinfer_ctx *c = NULL;
    struct pinfer_ctx_params cp = pinfer_ctx_default_params();
    cp.n_ctx = 16;
    cp.n_threads = 1;
    CHECK(pinfer_ctx_new(&c, m, &cp) == 0);
    int32_t toks[4] = { 1, 5, 9, 200 };
    rc = 0;
    for (int t = 0; t < 4 && !rc; t++) rc = pinfer_decode(c, &toks[t], 1, t, false);
    if (seen) {
        CHECKF(rc == PINFER_EFORMAT && strstr(pinfer_last_error(), "non-finite values"), "%s unchecked: decode gave %d (%s)",
               tensor, rc, pinfer_last_error());
        printf("unchecked: %s\n", pinfer_last_error());
    } else {
        CHECKF(rc == 0, "%s unchecked: decode gave %d (%s)", tensor, rc, pinfer_last_error());
        printf("unchecked: runs (NaN activations quantize to 0)\n");
    }
    pinfer_ctx_free(c);
    pinfer_model_free(m);
}

static void test_models(void)
{
    struct pinfer_synth_params sp = pinfer_synth_default_params();
    sp.shape = "tiny";
    sp.n_embd = 256;
    sp.n_ff = 512;
    sp.n_vocab = 512;
    sp.n_layer = 2;
    sp.type = PF_TYPE_Q4_K;
    const char *good = tu_tmp("good.gguf"), *bad = tu_tmp("bad.gguf");
    int rc = pinfer_synth(good, &sp);
    CHECKF(rc == 0, "synth: %s", pinfer_last_error());
    if (rc) return;
    struct pinfer_model *m = NULL;
    CHECKF(pinfer_model_load(&m, good, NULL) == 0, "clean model: %s", pinfer_last_error());
    pinfer_model_free(m);

    uint64_t off;
    size_t row;
    const uint16_t nan16 = 0x7e00;
    /* Q4_K: d is the block's first field; row 3 (one block per row) */
    CHECK(copy_file(good, bad) == 0 && tensor_at(bad, "blk.1.ffn_gate.weight", &off, &row) == 0);
    poke(bad, off + 3 * row, &nan16, 2);
    expect_corrupt(bad, "blk.1.ffn_gate.weight", "row 3", false);
    /* Q4_K dmin */
    CHECK(copy_file(good, bad) == 0 && tensor_at(bad, "blk.0.ffn_down.weight", &off, &row) == 0);
    poke(bad, off + 5 * row + 2, &nan16, 2);
    expect_corrupt(bad, "blk.0.ffn_down.weight", "row 5", true);
    /* Q6_K head: d is the block's last field */
    CHECK(copy_file(good, bad) == 0 && tensor_at(bad, "output.weight", &off, &row) == 0);
    poke(bad, off + 7 * row + 210 - 2, &nan16, 2);
    expect_corrupt(bad, "output.weight", "row 7", true);
    /* F32 norm */
    const float inf = INFINITY;
    CHECK(copy_file(good, bad) == 0 && tensor_at(bad, "blk.0.attn_norm.weight", &off, &row) == 0);
    poke(bad, off + 4 * 9, &inf, 4);
    expect_corrupt(bad, "blk.0.attn_norm.weight", "element 9", false);
}

int main(void)
{
    for (int t = 0; t < PF_TYPE_COUNT; t++)
        if (pf_type_supported(t)) test_type(t);
    test_models();
    TEST_DONE();
}
