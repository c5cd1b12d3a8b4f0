/* Writes the seed corpus for fuzz_gguf into a directory (default fuzz/corpus/gguf): a few small
 * valid files (v2 and v3, every supported tensor type, custom alignments, string arrays, a
 * vocab-only file) made with the writer or by hand, and a few broken ones. Not built by the
 * Makefile; build and run it by hand from the repository root:
 *   make BUILD=build-gguf build-gguf/libpinfer.a
 *   cc -std=c11 -D_GNU_SOURCE -Iinclude -Isrc -Itests fuzz/make_corpus.c build-gguf/libpinfer.a \
 *      -lm -pthread -o build-gguf/make_corpus && build-gguf/make_corpus fuzz/corpus/gguf */
#include "gguf/gguf.h"
#include "gguf_bytes.h"
#include "pinfer.h"
#include "tensor/types.h"

#include <stdio.h>
#include <string.h>

static const char *dir = "fuzz/corpus/gguf";
static int failures;

static void save(const char *name, const void *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(p, 1, n, fp) != n || fclose(fp) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        failures++;
    }
}

static void save_bytes(const char *name, struct bytes *b)
{
    save(name, b->p, b->n);
    by_free(b);
}

/* A file through the writer: a few keys and one tensor of each given type. */
static void write_model(const char *name, uint32_t alignment, const int *types, int n_types)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct gguf_writer *w;
    static const char *const toks[] = { "<unk>", "<s>", "</s>", "\xe2\x96\x81\x61", "" };
    static const float scores[] = { 0, 0, 0, -1.5f, -2 };
    static const int32_t ttype[] = { 2, 3, 3, 1, 1 };
    int rc = gguf_writer_new(&w);
    if (!rc && alignment) rc = gguf_writer_set_u32(w, "general.alignment", alignment);
    if (!rc) rc = gguf_writer_set_str(w, "general.architecture", "llama");
    if (!rc) rc = gguf_writer_set_u32(w, "llama.block_count", 1);
    if (!rc) rc = gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    if (!rc) rc = gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
    if (!rc) rc = gguf_writer_set_i32(w, "x.i32", -1);
    if (!rc) rc = gguf_writer_set_u64(w, "x.u64", 1ull << 33);
    if (!rc) rc = gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 5);
    if (!rc) rc = gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_F32, scores, 5);
    if (!rc) rc = gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_I32, ttype, 5);
    uint8_t data[256];
    size_t sizes[8];
    for (int i = 0; !rc && i < n_types; i++) {
        char tname[32];
        int64_t ne[2] = { 32, 2 };
        snprintf(tname, sizeof tname, "blk.0.t%d.weight", i);
        rc = gguf_writer_add_tensor(w, tname, types[i], 2, ne);
        if (!rc && !pf_row_size(types[i], 32, &sizes[i])) rc = -1;
        sizes[i] *= 2;
    }
    if (!rc) rc = gguf_writer_begin(w, path);
    for (int i = 0; !rc && i < n_types; i++) {
        for (size_t j = 0; j < sizes[i]; j++) data[j] = (uint8_t)(j * 13 + i);
        rc = gguf_writer_write(w, data, sizes[i]);
    }
    if (!rc) rc = gguf_writer_finish(w);
    if (rc) {
        fprintf(stderr, "%s: %s\n", name, pinfer_last_error());
        failures++;
    }
    gguf_writer_free(w);
}

int main(int argc, char **argv)
{
    if (argc > 1) dir = argv[1];
    struct bytes b = { 0 };

    /* valid, through the writer */
    write_model("valid_f32.gguf", 0, (const int[]){ PF_TYPE_F32 }, 1);
    write_model("valid_all_types.gguf", 0,
                (const int[]){ PF_TYPE_F32, PF_TYPE_F16, PF_TYPE_Q4_0, PF_TYPE_Q8_0, PF_TYPE_BF16 }, 5);
    write_model("valid_align64.gguf", 64, (const int[]){ PF_TYPE_Q8_0, PF_TYPE_F16 }, 2);
    write_model("valid_align1.gguf", 1, (const int[]){ PF_TYPE_Q4_0, PF_TYPE_BF16 }, 2);
    write_model("valid_no_tensors.gguf", 0, NULL, 0);

    /* valid, by hand: v2 with every scalar type and 3-4 dimensional tensors */
    by_hdr(&b, 2, 2, 12);
    by_key(&b, "u8", 0); by_u8(&b, 1);
    by_key(&b, "i8", 1); by_u8(&b, 0xff);
    by_key(&b, "u16", 2); by_put(&b, "\x01\x02", 2);
    by_key(&b, "i16", 3); by_put(&b, "\xff\xff", 2);
    by_kv_u32(&b, "u32", 7);
    by_key(&b, "i32", 5); by_u32(&b, 0xfffffff0);
    by_key(&b, "f32", 6); by_put(&b, &(float){ 0.5f }, 4);
    by_key(&b, "bool", 7); by_u8(&b, 1);
    by_kv_str(&b, "str", "hello");
    by_key(&b, "u64", 10); by_u64(&b, 1ull << 40);
    by_key(&b, "i64", 11); by_u64(&b, (uint64_t)-3);
    by_key(&b, "f64", 12); by_put(&b, &(double){ 2.5 }, 8);
    by_tensor(&b, "a", 3, (const int64_t[]){ 2, 3, 4 }, PF_TYPE_F16, 0);
    by_tensor(&b, "b", 4, (const int64_t[]){ 1, 1, 1, 2 }, PF_TYPE_F32, 64);
    by_pad(&b, 32);
    by_fill(&b, 72, 5);
    save_bytes("valid_v2_scalars.gguf", &b);

    /* valid vocab-only file, ending without padding like llama.cpp's vocab files */
    by_hdr(&b, 3, 0, 2);
    by_kv_str(&b, "tokenizer.ggml.model", "llama");
    by_key(&b, "tokenizer.ggml.tokens", 9); by_u32(&b, 8); by_u64(&b, 4);
    by_str(&b, "<unk>"); by_str(&b, "<0x0A>"); by_str(&b, "\xe2\x96\x81"); by_str(&b, "ab");
    save_bytes("valid_vocab.gguf", &b);

    /* broken */
    by_put(&b, "GGML", 4); by_u32(&b, 3); by_u64(&b, 0); by_u64(&b, 0);
    save_bytes("bad_magic.gguf", &b);
    by_hdr(&b, 1, 0, 0);
    save_bytes("bad_version1.gguf", &b);
    by_hdr(&b, 3, 0, 2); by_kv_u32(&b, "k", 1); by_kv_u32(&b, "k", 2);
    save_bytes("bad_dup_key.gguf", &b);
    by_hdr(&b, 3, 1, 0); by_tensor(&b, "t", 1, (const int64_t[]){ 32 }, 12, 0);
    by_pad(&b, 32); by_fill(&b, 64, 0);
    save_bytes("bad_tensor_type.gguf", &b);
    by_hdr(&b, 3, 1, 0); by_tensor(&b, "t", 1, (const int64_t[]){ 4 }, 0, 8);
    by_pad(&b, 32); by_fill(&b, 64, 0);
    save_bytes("bad_offset.gguf", &b);
    by_hdr(&b, 3, 0, 1); by_key(&b, "a", 9); by_u32(&b, 9); by_u64(&b, 1);
    save_bytes("bad_nested_array.gguf", &b);

    if (failures) return 1;
    printf("corpus written to %s\n", dir);
    return 0;
}
