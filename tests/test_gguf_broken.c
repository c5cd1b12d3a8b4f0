/* Broken GGUF files, one handcrafted per failure class (the classes of llama.cpp's
 * tests/test-gguf.cpp and more), each checked for its error code and message; every prefix of
 * valid files; and a few thousand seeded byte mutations. Each image is parsed from an
 * exact-size heap copy so that AddressSanitizer (make SAN=1) sees any read past the end. */
#include "gguf/gguf.h"
#include "gguf_bytes.h"
#include "pinfer.h"
#include "tensor/types.h"
#include "testutil.h"

#include <string.h>

/* Parses b; returns the code and the parsed file (closed by the caller) or NULL. */
static int parse_copy(const struct bytes *b, size_t n, struct gguf_file **out)
{
    uint8_t *copy = malloc(n ? n : 1);
    if (n) memcpy(copy, b->p, n);
    struct gguf_file *f = (struct gguf_file *)1; /* must be reset to NULL on failure */
    int rc = gguf_parse(&f, copy, n);
    if (rc) CHECKF(f == NULL, "failed parse left *out set");
    if (!rc && out) {
        *out = f; /* the caller frees f->data (the copy) after gguf_close */
        return rc;
    }
    gguf_close(rc ? NULL : f);
    free(copy);
    return rc;
}

/* Closes a file parse_copy returned, and its image. */
static void close_copy(struct gguf_file *f)
{
    void *image = (void *)f->data;
    gguf_close(f);
    free(image);
}

/* Expects parsing b to fail with code and a message containing msg. Frees b. */
static void expect_fail_at(int line, struct bytes *b, int code, const char *msg)
{
    int rc = parse_copy(b, b->n, NULL);
    const char *err = pinfer_last_error();
    if (rc != code || !strstr(err, msg)) {
        tu_failures++;
        fprintf(stderr, "%s:%d: expected %d with \"%s\", got %d: %s\n", __FILE__, line, code, msg,
                rc, rc ? err : "(success)");
    }
    by_free(b);
}
#define expect_fail(b, code, msg) expect_fail_at(__LINE__, b, code, msg)

static void expect_ok_at(int line, struct bytes *b)
{
    int rc = parse_copy(b, b->n, NULL);
    if (rc) {
        tu_failures++;
        fprintf(stderr, "%s:%d: expected success, got %d: %s\n", __FILE__, line, rc,
                pinfer_last_error());
    }
    by_free(b);
}
#define expect_ok(b) expect_ok_at(__LINE__, b)

static const int64_t ne_4[1] = { 4 };    /* f32 x4 = 16 bytes */

/* Header with no kv and one 16-byte f32 tensor "t" described by (n_dims, ne, type, offset);
 * data_bytes bytes of data after the padding. */
static void one_tensor(struct bytes *b, uint32_t n_dims, const int64_t *ne, uint32_t type,
                       uint64_t offset, size_t data_bytes)
{
    by_hdr(b, 3, 1, 0);
    by_tensor(b, "t", n_dims, ne, type, offset);
    by_pad(b, 32);
    by_fill(b, data_bytes, 1);
}

/* ==== Header ==== */

static void test_header(void)
{
    struct bytes b = { 0 };
    expect_fail(&b, PINFER_EFORMAT, "too short");

    by_put(&b, "GGU", 3);
    expect_fail(&b, PINFER_EFORMAT, "too short");

    by_put(&b, "FUGG", 4); by_u32(&b, 3); by_u64(&b, 0); by_u64(&b, 0);
    expect_fail(&b, PINFER_EFORMAT, "bad magic");

    by_hdr(&b, 1, 0, 0);
    expect_fail(&b, PINFER_EUNSUPPORTED, "version 1 is not supported");
    by_hdr(&b, 4, 0, 0);
    expect_fail(&b, PINFER_EUNSUPPORTED, "unsupported GGUF version 4");
    by_hdr(&b, 0, 0, 0);
    expect_fail(&b, PINFER_EUNSUPPORTED, "unsupported GGUF version 0");
    by_hdr(&b, 0x03000000, 0, 0);
    expect_fail(&b, PINFER_EUNSUPPORTED, "big-endian");

    /* counts larger than the file could hold, and over the caps (llama.cpp's -1) */
    by_hdr(&b, 3, 1000, 0); by_pad(&b, 32);
    expect_fail(&b, PINFER_EFORMAT, "n_tensors 1000 needs at least");
    by_hdr(&b, 3, UINT64_MAX, 0);
    expect_fail(&b, PINFER_EFORMAT, "n_tensors 18446744073709551615 is over the cap");
    by_hdr(&b, 3, 0, 1000); by_pad(&b, 32);
    expect_fail(&b, PINFER_EFORMAT, "n_kv 1000 needs at least");
    by_hdr(&b, 3, 0, UINT64_MAX);
    expect_fail(&b, PINFER_EFORMAT, "n_kv 18446744073709551615 is over the cap");
    by_hdr(&b, 3, 2, 3); by_fill(&b, 80, 0); /* each fits alone, not both */
    expect_fail(&b, PINFER_EFORMAT, "n_tensors 2 and n_kv 3 need at least");

    /* empty but valid: v2 and v3, with and without the padding */
    by_hdr(&b, 3, 0, 0); by_pad(&b, 32);
    expect_ok(&b);
    by_hdr(&b, 2, 0, 0);
    expect_ok(&b);
}

/* ==== Keys and values ==== */

static void test_kv(void)
{
    struct bytes b = { 0 };

    by_hdr(&b, 3, 0, 1); by_kv_u32(&b, "", 1);
    expect_fail(&b, PINFER_EFORMAT, "kv 0 key is empty");
    by_hdr(&b, 3, 0, 1); by_u64(&b, 3); by_put(&b, "a\0b", 3); by_u32(&b, GGUF_U32); by_u32(&b, 1);
    expect_fail(&b, PINFER_EFORMAT, "kv 0 key contains a NUL byte");
    by_hdr(&b, 3, 0, 1); by_u64(&b, UINT64_MAX); by_fill(&b, 40, 0);
    expect_fail(&b, PINFER_EFORMAT, "kv 0 key: string length 18446744073709551615 is over the cap");
    by_hdr(&b, 3, 0, 1); by_u64(&b, 100); by_fill(&b, 40, 0);
    expect_fail(&b, PINFER_EFORMAT, "kv 0 key: string length 100 goes beyond the end of the file");

    /* a string value with an embedded NUL parses, but is refused where it is read as text
       (issue 15: "llama\0junk" is not "llama") */
    {
        by_hdr(&b, 3, 0, 1); by_key(&b, "general.architecture", GGUF_STRING);
        by_u64(&b, 10); by_put(&b, "llama\0junk", 10);
        struct gguf_file *f = NULL;
        CHECK(parse_copy(&b, b.n, &f) == 0);
        char arch[32] = "unset";
        if (f) {
            CHECK(gguf_get_str(f, "general.architecture", arch, sizeof arch) == PINFER_EFORMAT);
            CHECK(strstr(pinfer_last_error(), "NUL byte") != NULL && strcmp(arch, "unset") == 0);
            close_copy(f);
        }
        by_free(&b);
    }
    by_hdr(&b, 3, 0, 2); by_kv_u32(&b, "a", 1); by_kv_u32(&b, "a", 2);
    expect_fail(&b, PINFER_EFORMAT, "duplicate key 'a'");
    by_hdr(&b, 3, 0, 3); by_kv_u32(&b, "a", 1); by_kv_str(&b, "ab", "x"); by_kv_u32(&b, "ab", 2);
    expect_fail(&b, PINFER_EFORMAT, "duplicate key 'ab'");

    by_hdr(&b, 3, 0, 1); by_key(&b, "k", GGUF_VTYPE_COUNT); by_u32(&b, 0);
    expect_fail(&b, PINFER_EFORMAT, "key 'k': unknown value type 13");
    by_hdr(&b, 3, 0, 1); by_key(&b, "k", UINT32_MAX); by_u32(&b, 0);
    expect_fail(&b, PINFER_EFORMAT, "unknown value type 4294967295");

    /* string values */
    by_hdr(&b, 3, 0, 1); by_key(&b, "k", GGUF_STRING); by_u64(&b, 1000); by_fill(&b, 20, 0);
    expect_fail(&b, PINFER_EFORMAT, "key 'k': string length 1000 goes beyond the end of the file");
    by_hdr(&b, 3, 0, 1); by_key(&b, "k", GGUF_STRING); by_u64(&b, GGUF_MAX_STR_LEN + 1); by_fill(&b, 20, 0);
    expect_fail(&b, PINFER_EFORMAT, "key 'k': string length 67108865 is over the cap");

    /* arrays */
    by_hdr(&b, 3, 0, 1); by_key(&b, "k", GGUF_ARRAY); by_u32(&b, GGUF_U32); by_u64(&b, 1000); by_fill(&b, 20, 0);
    expect_fail(&b, PINFER_EFORMAT, "key 'k': array of 1000 u32 needs 4000 bytes, beyond the end");
    by_hdr(&b, 3, 0, 1); by_key(&b, "k", GGUF_ARRAY); by_u32(&b, GGUF_U8); by_u64(&b, GGUF_MAX_ARR_N + 1);
    by_fill(&b, 20, 0);
    expect_fail(&b, PINFER_EFORMAT, "array length 268435457 is over the cap");
    by_hdr(&b, 3, 0, 1); by_key(&b, "k", GGUF_ARRAY); by_u32(&b, GGUF_U64); by_u64(&b, UINT64_MAX);
    expect_fail(&b, PINFER_EFORMAT, "is over the cap");
    by_hdr(&b, 3, 0, 1); by_key(&b, "k", GGUF_ARRAY); by_u32(&b, GGUF_STRING); by_u64(&b, 100); by_fill(&b, 40, 0);
    expect_fail(&b, PINFER_EFORMAT, "array of 100 strings goes beyond the end");
    by_hdr(&b, 3, 0, 1); by_key(&b, "k", GGUF_ARRAY); by_u32(&b, GGUF_STRING); by_u64(&b, 2);
    by_str(&b, "ok"); by_u64(&b, 50); by_fill(&b, 20, 0);
    expect_fail(&b, PINFER_EFORMAT, "element 1: key 'k': string length 50 goes beyond");
    by_hdr(&b, 3, 0, 1); by_key(&b, "k", GGUF_ARRAY); by_u32(&b, GGUF_STRING); by_u64(&b, 2);
    by_str(&b, "ok"); by_u64(&b, GGUF_MAX_STR_LEN + 1); by_fill(&b, 20, 0);
    expect_fail(&b, PINFER_EFORMAT, "element 1: key 'k': string length 67108865 is over the cap");
    by_hdr(&b, 3, 0, 1); by_key(&b, "k", GGUF_ARRAY); by_u32(&b, GGUF_ARRAY); by_u64(&b, 0);
    expect_fail(&b, PINFER_EFORMAT, "key 'k': array of arrays is not supported");
    by_hdr(&b, 3, 0, 1); by_key(&b, "k", GGUF_ARRAY); by_u32(&b, 13); by_u64(&b, 0);
    expect_fail(&b, PINFER_EFORMAT, "key 'k': unknown array element type 13");

    /* a scalar cut short */
    by_hdr(&b, 3, 0, 1); by_key(&b, "k", GGUF_U64); by_u32(&b, 0);
    expect_fail(&b, PINFER_EFORMAT, "key 'k': file ends inside the u64 value");
    /* many valid kinds together */
    by_hdr(&b, 3, 0, 4); by_kv_u32(&b, "a", 1); by_kv_str(&b, "b", "");
    by_key(&b, "c", GGUF_ARRAY); by_u32(&b, GGUF_STRING); by_u64(&b, 0);
    by_key(&b, "d", GGUF_ARRAY); by_u32(&b, GGUF_BOOL); by_u64(&b, 3); by_fill(&b, 3, 0);
    expect_ok(&b);
}

/* ==== general.alignment ==== */

static void test_alignment(void)
{
    struct bytes b = { 0 };
    static const uint32_t bad[] = { 0, 13, 48, 0x80000001u };
    for (int i = 0; i < 4; i++) {
        by_hdr(&b, 3, 0, 1); by_kv_u32(&b, "general.alignment", bad[i]);
        expect_fail(&b, PINFER_EFORMAT, "is not a power of two");
    }
    by_hdr(&b, 3, 0, 1); by_key(&b, "general.alignment", GGUF_I32); by_u32(&b, 32);
    expect_fail(&b, PINFER_EFORMAT, "general.alignment has type i32, expected u32");
    by_hdr(&b, 3, 0, 1); by_kv_str(&b, "general.alignment", "32");
    expect_fail(&b, PINFER_EFORMAT, "general.alignment has type string, expected u32");
    by_hdr(&b, 3, 0, 1); by_key(&b, "general.alignment", GGUF_U64); by_u64(&b, 32);
    expect_fail(&b, PINFER_EFORMAT, "has type u64");

    /* custom alignment 1 (llama.cpp's CUSTOM_ALIGN case): tensors packed back to back */
    by_hdr(&b, 3, 2, 1); by_kv_u32(&b, "general.alignment", 1);
    by_tensor(&b, "a", 1, (int64_t[]){ 3 }, PF_TYPE_F16, 0);
    by_tensor(&b, "b", 1, ne_4, PF_TYPE_F32, 6);
    by_fill(&b, 22, 0);
    struct gguf_file *f = NULL;
    CHECKF(parse_copy(&b, b.n, &f) == 0, "%s", pinfer_last_error());
    if (f) {
        CHECK(f->alignment == 1 && f->data_offset == b.n - 22 && f->tensors[1].file_offset == b.n - 16);
        close_copy(f);
    }
    by_free(&b);

    /* alignment 64: the data section starts at a multiple of 64, the offset must be one too */
    by_hdr(&b, 3, 1, 1); by_kv_u32(&b, "general.alignment", 64);
    by_tensor(&b, "t", 1, ne_4, PF_TYPE_F32, 32);
    by_pad(&b, 64); by_fill(&b, 48, 0);
    expect_fail(&b, PINFER_EFORMAT, "offset 32 is not a multiple of the alignment 64");
    by_hdr(&b, 3, 1, 1); by_kv_u32(&b, "general.alignment", 64);
    by_tensor(&b, "t", 1, ne_4, PF_TYPE_F32, 64);
    by_pad(&b, 64); by_fill(&b, 80, 0);
    expect_ok(&b);
}

/* ==== Tensor infos ==== */

static void test_tensors(void)
{
    struct bytes b = { 0 };

    /* names */
    by_hdr(&b, 3, 1, 0); by_tensor(&b, "", 1, ne_4, PF_TYPE_F32, 0); by_pad(&b, 32); by_fill(&b, 16, 0);
    expect_fail(&b, PINFER_EFORMAT, "tensor 0 name is empty");
    char name[80];
    memset(name, 'x', 64);
    name[64] = 0; /* 64 bytes: one over the limit (GGML_MAX_NAME counts the NUL) */
    by_hdr(&b, 3, 1, 0); by_tensor(&b, name, 1, ne_4, PF_TYPE_F32, 0); by_pad(&b, 32); by_fill(&b, 16, 0);
    expect_fail(&b, PINFER_EFORMAT, "tensor 0 name is too long: 64 bytes, the limit is 63");
    name[63] = 0;
    by_hdr(&b, 3, 1, 0); by_tensor(&b, name, 1, ne_4, PF_TYPE_F32, 0); by_pad(&b, 32); by_fill(&b, 16, 0);
    expect_ok(&b);
    by_hdr(&b, 3, 1, 0); by_u64(&b, UINT64_MAX); by_fill(&b, 60, 0);
    expect_fail(&b, PINFER_EFORMAT, "tensor 0 name: string length 18446744073709551615 is over the cap");
    by_hdr(&b, 3, 1, 0); by_u64(&b, 3); by_put(&b, "t\0u", 3); by_u32(&b, 1); by_u64(&b, 4);
    by_u32(&b, 0); by_u64(&b, 0); by_pad(&b, 32); by_fill(&b, 16, 0);
    expect_fail(&b, PINFER_EFORMAT, "tensor 0 name contains a NUL byte");
    by_hdr(&b, 3, 2, 0);
    by_tensor(&b, "t", 1, ne_4, PF_TYPE_F32, 0); by_tensor(&b, "t", 1, ne_4, PF_TYPE_F32, 32);
    by_pad(&b, 32); by_fill(&b, 48, 0);
    expect_fail(&b, PINFER_EFORMAT, "duplicate tensor name 't'");

    /* dimensions */
    one_tensor(&b, 0, ne_4, PF_TYPE_F32, 0, 16);
    expect_fail(&b, PINFER_EFORMAT, "tensor 't': n_dims 0 is not in 1..4");
    one_tensor(&b, 5, (int64_t[]){ 4, 1, 1, 1, 1 }, PF_TYPE_F32, 0, 16);
    expect_fail(&b, PINFER_EFORMAT, "tensor 't': n_dims 5 is not in 1..4");
    one_tensor(&b, 2, (int64_t[]){ 4, 0 }, PF_TYPE_F32, 0, 16);
    expect_fail(&b, PINFER_EFORMAT, "tensor 't': dimension 1 is zero");
    one_tensor(&b, 2, (int64_t[]){ -1, -1 }, PF_TYPE_F32, 0, 16);
    expect_fail(&b, PINFER_EFORMAT, "tensor 't': dimension 0 is negative (-1)");
    one_tensor(&b, 3, (int64_t[]){ 4, 1, INT64_MIN }, PF_TYPE_F32, 0, 16);
    expect_fail(&b, PINFER_EFORMAT, "dimension 2 is negative");
    /* llama.cpp's NE_TOO_BIG: 4*INT32_MAX per dimension */
    one_tensor(&b, 2, (int64_t[]){ 4ll * INT32_MAX, 4ll * INT32_MAX }, PF_TYPE_F32, 0, 16);
    expect_fail(&b, PINFER_EFORMAT, "tensor 't': element count overflows");
    one_tensor(&b, 4, (int64_t[]){ 1 << 16, 1 << 16, 1 << 16, 1 << 16 }, PF_TYPE_F32, 0, 16);
    expect_fail(&b, PINFER_EFORMAT, "element count overflows"); /* 2^64 */
    one_tensor(&b, 4, (int64_t[]){ 1 << 16, 1 << 16, 1 << 16, 1 << 15 }, PF_TYPE_F32, 0, 16);
    expect_fail(&b, PINFER_EFORMAT, "element count overflows"); /* 2^63 > INT64_MAX */
    /* fits as an element count, not as bytes */
    one_tensor(&b, 2, (int64_t[]){ 1ll << 40, 1 << 22 }, PF_TYPE_F32, 0, 16);
    expect_fail(&b, PINFER_EFORMAT, "tensor 't': byte size overflows");
    one_tensor(&b, 1, (int64_t[]){ 1ll << 62 }, PF_TYPE_F32, 0, 16);
    expect_fail(&b, PINFER_EFORMAT, "byte size overflows");
    /* huge but representable: caught by the file size */
    one_tensor(&b, 2, (int64_t[]){ 1ll << 30, 1 << 20 }, PF_TYPE_F32, 0, 16);
    expect_fail(&b, PINFER_EFORMAT, "data too short");

    /* types */
    one_tensor(&b, 1, ne_4, PF_TYPE_COUNT, 0, 16);
    expect_fail(&b, PINFER_EFORMAT, "tensor 't': unknown tensor type 40");
    one_tensor(&b, 1, ne_4, UINT32_MAX, 0, 16);
    expect_fail(&b, PINFER_EFORMAT, "unknown tensor type 4294967295");
    one_tensor(&b, 1, ne_4, 4, 0, 16); /* id ggml removed (q4_2) */
    expect_fail(&b, PINFER_EFORMAT, "unknown tensor type 4");
    one_tensor(&b, 1, (int64_t[]){ 256 }, 16, 0, 66);
    expect_fail(&b, PINFER_EUNSUPPORTED, "tensor 't': tensor type 16 (iq2_xxs) is not supported");
    one_tensor(&b, 1, (int64_t[]){ 48 }, PF_TYPE_Q4_0, 0, 64);
    expect_fail(&b, PINFER_EFORMAT, "row of 48 elements is not a multiple of the q4_0 block size 32");
    one_tensor(&b, 1, (int64_t[]){ 16 }, PF_TYPE_Q8_0, 0, 64);
    expect_fail(&b, PINFER_EFORMAT, "not a multiple of the q8_0 block size 32");
    /* K-quant rows hold whole 256-weight super-blocks */
    one_tensor(&b, 2, (int64_t[]){ 384, 2 }, PF_TYPE_Q4_K, 0, 576);
    expect_fail(&b, PINFER_EFORMAT, "row of 384 elements is not a multiple of the q4_K block size 256");
    one_tensor(&b, 1, (int64_t[]){ 128 }, PF_TYPE_Q6_K, 0, 256);
    expect_fail(&b, PINFER_EFORMAT, "not a multiple of the q6_K block size 256");
    one_tensor(&b, 1, (int64_t[]){ 256 + 32 }, PF_TYPE_Q2_K, 0, 256);
    expect_fail(&b, PINFER_EFORMAT, "not a multiple of the q2_K block size 256");
    one_tensor(&b, 2, (int64_t[]){ 256, 2 }, PF_TYPE_Q5_K, 0, 352);
    expect_ok(&b);
    one_tensor(&b, 2, (int64_t[]){ 32, 2 }, PF_TYPE_Q4_0, 0, 36);
    expect_ok(&b);

    /* offsets and data */
    one_tensor(&b, 1, ne_4, PF_TYPE_F32, 4, 64);
    expect_fail(&b, PINFER_EFORMAT, "tensor 't': offset 4 is not a multiple of the alignment 32");
    one_tensor(&b, 1, ne_4, PF_TYPE_F32, UINT64_MAX, 64); /* llama.cpp's BAD_OFFSET */
    expect_fail(&b, PINFER_EFORMAT, "is not a multiple of the alignment");
    one_tensor(&b, 1, ne_4, PF_TYPE_F32, UINT64_MAX - 31, 64);
    expect_fail(&b, PINFER_EFORMAT, "is past the end of the file");
    one_tensor(&b, 1, ne_4, PF_TYPE_F32, 1024, 64);
    expect_fail(&b, PINFER_EFORMAT, "tensor 't': offset 1024 is past the end of the file");
    one_tensor(&b, 1, ne_4, PF_TYPE_F32, 0, 15); /* NOT_ENOUGH_DATA */
    expect_fail(&b, PINFER_EFORMAT, "tensor 't': data too short: needs 16 bytes");
    one_tensor(&b, 1, ne_4, PF_TYPE_F32, 0, 0); /* no data section at all */
    expect_fail(&b, PINFER_EFORMAT, "past the end of the file");
    one_tensor(&b, 1, ne_4, PF_TYPE_F32, 0, 16);
    expect_ok(&b);
    /* llama.cpp's INCONSISTENT_ALIGN: offsets laid out with alignment 1 in a 32-aligned file */
    by_hdr(&b, 3, 2, 0);
    by_tensor(&b, "a", 1, (int64_t[]){ 3 }, PF_TYPE_F32, 0);
    by_tensor(&b, "b", 1, ne_4, PF_TYPE_F32, 12);
    by_pad(&b, 32); by_fill(&b, 64, 0);
    expect_fail(&b, PINFER_EFORMAT, "tensor 'b': offset 12 is not a multiple of the alignment 32");
    /* two tensor infos pointing at the same bytes (issue 15, defect 2), and a partial overlap */
    by_hdr(&b, 3, 2, 0);
    by_tensor(&b, "a", 1, ne_4, PF_TYPE_F32, 0);
    by_tensor(&b, "b", 1, ne_4, PF_TYPE_F32, 0);
    by_pad(&b, 32); by_fill(&b, 64, 0);
    expect_fail(&b, PINFER_EFORMAT, "tensors 'a' and 'b' overlap");
    by_hdr(&b, 3, 2, 0);
    by_tensor(&b, "a", 1, (int64_t[]){ 16 }, PF_TYPE_F32, 0);
    by_tensor(&b, "b", 1, ne_4, PF_TYPE_F32, 32);
    by_pad(&b, 32); by_fill(&b, 64, 0);
    expect_fail(&b, PINFER_EFORMAT, "overlap");
    /* adjacent, in either order of the infos: fine */
    by_hdr(&b, 3, 2, 0);
    by_tensor(&b, "a", 1, ne_4, PF_TYPE_F32, 32);
    by_tensor(&b, "b", 1, ne_4, PF_TYPE_F32, 0);
    by_pad(&b, 32); by_fill(&b, 64, 0);
    expect_ok(&b);
}

/* ==== Every prefix, and mutations ==== */

/* A small valid file with a bit of everything; *data_end is where the last tensor's data ends. */
static void valid_file(struct bytes *b, uint32_t version, size_t *data_end)
{
    by_hdr(b, version, 3, 5);
    by_kv_str(b, "general.architecture", "llama");
    by_kv_u32(b, "llama.block_count", 1);
    by_key(b, "tokenizer.ggml.tokens", GGUF_ARRAY); by_u32(b, GGUF_STRING); by_u64(b, 3);
    by_str(b, "<unk>"); by_str(b, ""); by_str(b, "\xe2\x96\x81the");
    by_key(b, "tokenizer.ggml.scores", GGUF_ARRAY); by_u32(b, GGUF_F32); by_u64(b, 3); by_fill(b, 12, 0);
    by_key(b, "x.f64", GGUF_F64); by_fill(b, 8, 3);
    by_tensor(b, "token_embd.weight", 2, (int64_t[]){ 32, 3 }, PF_TYPE_Q8_0, 0);
    by_tensor(b, "norm", 1, (int64_t[]){ 5 }, PF_TYPE_F16, 128);
    by_tensor(b, "w", 1, (int64_t[]){ 32 }, PF_TYPE_Q4_0, 160);
    by_pad(b, 32);
    by_fill(b, 160 + 18, 9);
    *data_end = b->n;
}

static void test_prefixes(void)
{
    for (uint32_t version = 2; version <= 3; version++) {
        struct bytes b = { 0 };
        size_t end;
        valid_file(&b, version, &end);
        struct gguf_file *f = NULL;
        CHECKF(parse_copy(&b, b.n, &f) == 0, "%s", pinfer_last_error());
        if (f) {
            CHECK(f->n_kv == 5 && f->n_tensors == 3 && f->tensors[2].file_offset + 18 == end);
            close_copy(f);
        }
        for (size_t n = 0; n < b.n; n++) {
            int rc = parse_copy(&b, n, NULL);
            CHECKF(rc == PINFER_EFORMAT, "prefix of %zu/%zu bytes: %d %s", n, b.n, rc,
                   rc ? pinfer_last_error() : "parsed");
        }
        by_free(&b);
    }
}

/* Seeded random byte edits of the valid file: any outcome but a crash (ASan/UBSan watch). */
static void test_mutations(void)
{
    struct bytes b = { 0 }, m = { 0 };
    size_t end;
    valid_file(&b, 3, &end);
    unsigned long long seed = 7;
    int ok = 0, failed = 0;
    for (int iter = 0; iter < 20000; iter++) {
        m.n = 0;
        by_put(&m, b.p, b.n);
        int edits = 1 + (int)(tu_rand(&seed) % 4);
        for (int e = 0; e < edits; e++) {
            size_t pos = tu_rand(&seed) % m.n;
            uint64_t r = tu_rand(&seed);
            switch (r % 4) {
            case 0: m.p[pos] ^= (uint8_t)(1u << (r >> 8) % 8); break;
            case 1: m.p[pos] = (uint8_t)(r >> 8); break;
            case 2: m.p[pos] = (r >> 8) & 1 ? 0xff : 0; break;
            default: m.n = pos + 1; break; /* truncate */
            }
        }
        struct gguf_file *f = NULL;
        int rc = parse_copy(&m, m.n, &f);
        if (rc == 0) {
            ok++;
            /* exercise the lookups on whatever parsed */
            for (uint64_t i = 0; i < f->n_kv; i++) {
                char key[128], buf[16];
                uint32_t u; int64_t v; float x; bool bb;
                snprintf(key, sizeof key, "%.*s", (int)f->kv[i].key.len, f->kv[i].key.s);
                gguf_get_u32(f, key, &u); gguf_get_i64(f, key, &v); gguf_get_f32(f, key, &x);
                gguf_get_bool(f, key, &bb); gguf_get_str(f, key, buf, sizeof buf);
            }
            for (uint64_t i = 0; i < f->n_tensors; i++)
                CHECK(gguf_find_tensor(f, f->tensors[i].name) == (int)i &&
                      f->tensors[i].file_offset + f->tensors[i].nbytes <= f->size);
            close_copy(f);
        } else {
            failed++;
            CHECK(rc == PINFER_EFORMAT || rc == PINFER_EUNSUPPORTED);
        }
    }
    printf("mutations: %d parsed, %d rejected\n", ok, failed);
    by_free(&b);
    by_free(&m);
}

int main(void)
{
    test_header();
    test_kv();
    test_alignment();
    test_tensors();
    test_prefixes();
    test_mutations();
    TEST_DONE();
}
