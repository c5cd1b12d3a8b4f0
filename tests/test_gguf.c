/* GGUF writer + reader: round trips of every value type and several tensor types, the writer's
 * guarantees (atomic output, exact byte counts, clean failures), and real files from
 * /work/shared (stories260K, the llama SentencePiece vocabulary). Broken inputs are in
 * test_gguf_broken.c. */
#include "gguf/gguf.h"
#include "gguf_bytes.h"
#include "pinfer.h"
#include "tensor/types.h"
#include "testutil.h"

#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char *tmp_path(const char *name)
{
    static char bufs[4][512];
    static int k;
    char *p = bufs[k++ % 4];
    snprintf(p, 512, "%s/%s", tu_tmpdir(), name);
    return p;
}

static bool err_has(const char *s)
{
    return strstr(pinfer_last_error(), s) != NULL;
}

/* true if any file in the test dir has ".pinfer-tmp." in its name (a leaked temp file) */
static bool temp_left(void)
{
    DIR *d = opendir(tu_tmpdir());
    bool found = false;
    for (struct dirent *e; d && (e = readdir(d));)
        if (strstr(e->d_name, ".pinfer-tmp.")) found = true;
    if (d) closedir(d);
    return found;
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static bool str_eq(struct gguf_str s, const char *c)
{
    return s.len == strlen(c) && memcmp(s.s, c, s.len) == 0;
}

/* ==== Round trip ==== */

struct ttensor { const char *name; int type, n_dims; int64_t ne[4]; uint8_t *data; size_t n; };

static struct ttensor tensors[] = {
    { "tok_embd.weight", PF_TYPE_F32, 2, { 8, 5, 1, 1 }, NULL, 0 },
    { "a.f16", PF_TYPE_F16, 1, { 7, 1, 1, 1 }, NULL, 0 },
    { "b.q4_0", PF_TYPE_Q4_0, 3, { 64, 3, 2, 1 }, NULL, 0 },
    { "c.q8_0", PF_TYPE_Q8_0, 4, { 32, 1, 2, 3 }, NULL, 0 },
    { "d.bf16", PF_TYPE_BF16, 2, { 3, 3, 1, 1 }, NULL, 0 },
    { "e.scalar", PF_TYPE_F32, 1, { 1, 1, 1, 1 }, NULL, 0 },
};
#define N_TENSORS (sizeof tensors / sizeof *tensors)

static void make_tensor_data(void)
{
    unsigned long long seed = 42;
    for (size_t i = 0; i < N_TENSORS; i++) {
        struct ttensor *t = &tensors[i];
        size_t row;
        CHECK(pf_row_size(t->type, t->ne[0], &row));
        t->n = row * (size_t)(t->ne[1] * t->ne[2] * t->ne[3]);
        t->data = malloc(t->n);
        for (size_t j = 0; j < t->n; j++) t->data[j] = (uint8_t)tu_rand(&seed);
    }
}

static const uint8_t a_u8[] = { 0, 1, 255 };
static const int8_t a_i8[] = { -128, 0, 127 };
static const uint16_t a_u16[] = { 0, 65535 };
static const int16_t a_i16[] = { -32768, 32767, -1 };
static const uint32_t a_u32[] = { 0, 4000000000u };
static const int32_t a_i32[] = { INT32_MIN, -1, INT32_MAX, 7 };
static const float a_f32[] = { 1.5f, -0.0f, 3e38f };
static const uint8_t a_bool[] = { 1, 0, 1, 1 };
static const uint64_t a_u64[] = { UINT64_MAX, 0 };
static const int64_t a_i64[] = { INT64_MIN, INT64_MAX };
static const double a_f64[] = { 3.141592653589793, -1e300 };
static const char *const a_str[] = { "hello", "", "\xe2\x96\x81world", "<0xFF>" };

static const struct { const char *key; enum gguf_vtype t; const void *d; uint64_t n; } arrays[] = {
    { "arr.u8", GGUF_U8, a_u8, 3 }, { "arr.i8", GGUF_I8, a_i8, 3 },
    { "arr.u16", GGUF_U16, a_u16, 2 }, { "arr.i16", GGUF_I16, a_i16, 3 },
    { "arr.u32", GGUF_U32, a_u32, 2 }, { "arr.i32", GGUF_I32, a_i32, 4 },
    { "arr.f32", GGUF_F32, a_f32, 3 }, { "arr.bool", GGUF_BOOL, a_bool, 4 },
    { "arr.u64", GGUF_U64, a_u64, 2 }, { "arr.i64", GGUF_I64, a_i64, 2 },
    { "arr.f64", GGUF_F64, a_f64, 2 }, { "arr.empty", GGUF_F32, NULL, 0 },
};
#define N_ARRAYS (sizeof arrays / sizeof *arrays)

/* Writes the round-trip file; each tensor's data goes in pieces of `piece` bytes. */
static int write_roundtrip(const char *path, uint32_t alignment, size_t piece)
{
    struct gguf_writer *w;
    int rc = gguf_writer_new(&w);
    if (rc) return rc;
    if (alignment) rc = gguf_writer_set_u32(w, "general.alignment", alignment);
    if (!rc) rc = gguf_writer_set_str(w, "general.architecture", "llama");
    if (!rc) rc = gguf_writer_set_u32(w, "s.u32", 4000000000u);
    if (!rc) rc = gguf_writer_set_i32(w, "s.i32", -7);
    if (!rc) rc = gguf_writer_set_u64(w, "s.u64", 1ull << 40);
    if (!rc) rc = gguf_writer_set_f32(w, "s.f32", 1e-5f);
    if (!rc) rc = gguf_writer_set_bool(w, "s.bool", true);
    if (!rc) rc = gguf_writer_set_str(w, "s.str", "a \"quoted\" string\n");
    if (!rc) rc = gguf_writer_set_str(w, "s.empty", "");
    if (!rc) rc = gguf_writer_set_u32(w, "s.override", 1);
    if (!rc) rc = gguf_writer_set_u32(w, "s.override", 2); /* replaces, keeps its position */
    for (size_t i = 0; !rc && i < N_ARRAYS; i++)
        rc = gguf_writer_set_arr(w, arrays[i].key, arrays[i].t, arrays[i].d, arrays[i].n);
    if (!rc) rc = gguf_writer_set_arr_str(w, "arr.str", a_str, 4);
    if (!rc) rc = gguf_writer_set_arr_str(w, "arr.str_empty", NULL, 0);
    for (size_t i = 0; !rc && i < N_TENSORS; i++)
        rc = gguf_writer_add_tensor(w, tensors[i].name, tensors[i].type, tensors[i].n_dims,
                                    tensors[i].ne);
    uint64_t total = gguf_writer_total_size(w);
    if (!rc) rc = gguf_writer_begin(w, path);
    for (size_t i = 0; !rc && i < N_TENSORS; i++)
        for (size_t off = 0; !rc && off < tensors[i].n; off += piece)
            rc = gguf_writer_write(w, tensors[i].data + off,
                                   tensors[i].n - off < piece ? tensors[i].n - off : piece);
    if (!rc) rc = gguf_writer_finish(w);
    gguf_writer_free(w);
    if (!rc) CHECKF(file_size(path) == (long)total, "size %ld, total_size said %llu",
                    file_size(path), (unsigned long long)total);
    return rc;
}

static void check_roundtrip(const struct gguf_file *f, uint32_t alignment)
{
    CHECK(f->version == 3);
    CHECK(f->alignment == alignment);
    CHECK(f->n_tensors == N_TENSORS);
    /* arch + 9 scalars (override counted once) + arrays + 2 string arrays (+ alignment) */
    CHECKF(f->n_kv == 1 + 8 + N_ARRAYS + 2 + (alignment != GGUF_DEFAULT_ALIGNMENT),
           "n_kv %llu", (unsigned long long)f->n_kv);

    uint32_t u32 = 0;
    int64_t i64 = 0;
    float f32 = 0;
    bool b = false;
    char buf[64];
    CHECK(gguf_get_u32(f, "s.u32", &u32) == 0 && u32 == 4000000000u);
    CHECK(gguf_get_i64(f, "s.u32", &i64) == 0 && i64 == 4000000000);
    CHECK(gguf_get_i64(f, "s.i32", &i64) == 0 && i64 == -7);
    CHECK(gguf_get_i64(f, "s.u64", &i64) == 0 && i64 == 1ll << 40);
    CHECK(gguf_get_f32(f, "s.f32", &f32) == 0 && f32 == 1e-5f);
    CHECK(gguf_get_bool(f, "s.bool", &b) == 0 && b);
    CHECK(gguf_get_str(f, "s.str", buf, sizeof buf) == 0 && strcmp(buf, "a \"quoted\" string\n") == 0);
    CHECK(gguf_get_str(f, "s.empty", buf, sizeof buf) == 0 && buf[0] == 0);
    CHECK(gguf_get_str(f, "s.str", buf, 4) == 0 && strcmp(buf, "a \"") == 0); /* truncated */
    CHECK(gguf_get_u32(f, "s.override", &u32) == 0 && u32 == 2);
    /* declaration order kept; a replaced key keeps its first position */
    uint64_t base = alignment != GGUF_DEFAULT_ALIGNMENT;
    CHECK(str_eq(f->kv[base + 2].key, "s.i32") && str_eq(f->kv[base + 8].key, "s.override"));

    /* conversions and refusals */
    CHECK(gguf_get_u32(f, "s.i32", &u32) == PINFER_EFORMAT && err_has("does not fit u32"));
    CHECK(gguf_get_u32(f, "s.u64", &u32) == PINFER_EFORMAT && err_has("does not fit"));
    CHECK(gguf_get_u32(f, "s.str", &u32) == PINFER_EFORMAT && err_has("has type string, expected u32"));
    CHECK(gguf_get_f32(f, "s.u32", &f32) == PINFER_EFORMAT);
    CHECK(gguf_get_bool(f, "s.u32", &b) == PINFER_EFORMAT);
    CHECK(gguf_get_str(f, "s.u32", buf, sizeof buf) == PINFER_EFORMAT);
    u32 = 99;
    CHECK(gguf_get_u32(f, "no.such.key", &u32) == 1 && u32 == 99);
    CHECK(gguf_find(f, "no.such.key") == NULL);
    CHECK(gguf_find(f, "s.u3") == NULL && gguf_find(f, "s.u32x") == NULL);

    for (size_t i = 0; i < N_ARRAYS; i++) {
        const struct gguf_kv *kv = gguf_find(f, arrays[i].key);
        CHECKF(kv && kv->type == GGUF_ARRAY && kv->arr_type == arrays[i].t &&
               kv->arr_n == arrays[i].n, "%s", arrays[i].key);
        if (kv && arrays[i].n)
            CHECKF(memcmp(kv->arr_data, arrays[i].d,
                          arrays[i].n * (arrays[i].t == GGUF_BOOL ? 1 :
                                         arrays[i].t <= GGUF_I8 ? 1 :
                                         arrays[i].t <= GGUF_I16 ? 2 :
                                         arrays[i].t <= GGUF_F32 ? 4 : 8)) == 0,
                   "%s data", arrays[i].key);
    }
    const struct gguf_kv *kv = gguf_find(f, "arr.str");
    CHECK(kv && kv->type == GGUF_ARRAY && kv->arr_type == GGUF_STRING && kv->arr_n == 4);
    if (kv && kv->arr_str)
        for (int i = 0; i < 4; i++) CHECKF(str_eq(kv->arr_str[i], a_str[i]), "arr.str[%d]", i);
    kv = gguf_find(f, "arr.str_empty");
    CHECK(kv && kv->arr_type == GGUF_STRING && kv->arr_n == 0);

    uint64_t prev_end = 0;
    for (size_t i = 0; i < N_TENSORS; i++) {
        int ti = gguf_find_tensor(f, tensors[i].name);
        CHECKF(ti == (int)i, "tensor %s at %d", tensors[i].name, ti);
        if (ti < 0) continue;
        const struct gguf_tensor *t = &f->tensors[ti];
        CHECK(t->type == tensors[i].type && t->n_dims == tensors[i].n_dims);
        CHECK(memcmp(t->ne, tensors[i].ne, sizeof t->ne) == 0);
        CHECK(t->nbytes == tensors[i].n);
        CHECK(t->offset % alignment == 0 && t->file_offset % alignment == 0);
        CHECK(t->file_offset == f->data_offset + t->offset && t->offset >= prev_end);
        prev_end = t->offset + t->nbytes;
        CHECKF(memcmp(f->data + t->file_offset, tensors[i].data, tensors[i].n) == 0,
               "tensor %s data", t->name);
    }
    CHECK(gguf_find_tensor(f, "nope") == -1);
    CHECK(gguf_find_tensor(f, "") == -1);
}

static void test_roundtrip(void)
{
    static const uint32_t aligns[] = { 0, 1, 64, 4096 };
    static const size_t pieces[] = { 1u << 20, 1, 5, 1u << 20 };
    for (int k = 0; k < 4; k++) {
        const char *path = tmp_path("rt.gguf");
        int rc = write_roundtrip(path, aligns[k], pieces[k]);
        CHECKF(rc == 0, "write (align %u): %s", aligns[k], pinfer_last_error());
        struct gguf_file *f = NULL;
        rc = gguf_open(&f, path);
        CHECKF(rc == 0, "open: %s", pinfer_last_error());
        if (!f) continue;
        CHECK(f->mapped && f->fd >= 0);
        check_roundtrip(f, aligns[k] ? aligns[k] : GGUF_DEFAULT_ALIGNMENT);

        /* copy every key into a new file (keeps types, including general.alignment), and the
         * tensors, and compare again: exercises gguf_writer_copy_kv for every value type */
        const char *path2 = tmp_path("rt2.gguf");
        struct gguf_writer *w;
        CHECK(gguf_writer_new(&w) == 0);
        for (uint64_t i = 0; i < f->n_kv; i++)
            CHECKF(gguf_writer_copy_kv(w, &f->kv[i]) == 0, "copy: %s", pinfer_last_error());
        for (uint64_t i = 0; i < f->n_tensors; i++) {
            const struct gguf_tensor *t = &f->tensors[i];
            CHECK(gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne) == 0);
        }
        CHECK(gguf_writer_begin(w, path2) == 0);
        for (uint64_t i = 0; i < f->n_tensors; i++)
            CHECK(gguf_writer_write(w, f->data + f->tensors[i].file_offset, f->tensors[i].nbytes) == 0);
        CHECKF(gguf_writer_finish(w) == 0, "%s", pinfer_last_error());
        gguf_writer_free(w);
        size_t n1, n2;
        char *b1 = tu_read_file(path, &n1), *b2 = tu_read_file(path2, &n2);
        CHECK(b1 && b2 && n1 == n2 && memcmp(b1, b2, n1) == 0); /* byte-identical */
        free(b1);
        free(b2);
        gguf_close(f);
    }
}

/* Every scalar type as a plain value (the writer has setters for some only; copy_kv takes
 * all): handcrafted file -> parse -> copy into a writer -> parse -> compare. */
static void test_all_scalar_types(void)
{
    struct bytes b = { 0 };
    by_hdr(&b, 2, 0, 12);
    by_key(&b, "u8", GGUF_U8); by_u8(&b, 200);
    by_key(&b, "i8", GGUF_I8); by_u8(&b, 0x80);
    by_key(&b, "u16", GGUF_U16); by_put(&b, &(uint16_t){ 65000 }, 2);
    by_key(&b, "i16", GGUF_I16); by_put(&b, &(int16_t){ -300 }, 2);
    by_key(&b, "u32", GGUF_U32); by_u32(&b, 123456);
    by_key(&b, "i32", GGUF_I32); by_put(&b, &(int32_t){ -123456 }, 4);
    by_key(&b, "f32", GGUF_F32); by_put(&b, &(float){ 0.25f }, 4);
    by_key(&b, "bool", GGUF_BOOL); by_u8(&b, 1);
    by_key(&b, "str", GGUF_STRING); by_str(&b, "x");
    by_key(&b, "u64", GGUF_U64); by_u64(&b, 1ull << 63);
    by_key(&b, "i64", GGUF_I64); by_u64(&b, (uint64_t)-5);
    by_key(&b, "f64", GGUF_F64); by_put(&b, &(double){ 1e300 }, 8);

    struct gguf_file *f = NULL, *g = NULL;
    CHECKF(gguf_parse(&f, b.p, b.n) == 0, "%s", pinfer_last_error());
    if (!f) { by_free(&b); return; }
    CHECK(f->version == 2);
    CHECK(f->data_offset % 32 == 0 && f->data_offset >= b.n);
    const char *path = tmp_path("scalars.gguf");
    struct gguf_writer *w;
    CHECK(gguf_writer_new(&w) == 0);
    for (uint64_t i = 0; i < f->n_kv; i++) CHECK(gguf_writer_copy_kv(w, &f->kv[i]) == 0);
    CHECK(gguf_writer_begin(w, path) == 0);
    CHECK(gguf_writer_finish(w) == 0);
    gguf_writer_free(w);
    CHECKF(gguf_open(&g, path) == 0, "%s", pinfer_last_error());
    if (g) {
        CHECK(g->version == 3 && g->n_kv == 12);
        for (uint64_t i = 0; i < 12 && i < g->n_kv; i++) {
            CHECK(f->kv[i].type == g->kv[i].type && f->kv[i].type != GGUF_ARRAY);
            if (f->kv[i].type == GGUF_STRING) CHECK(str_eq(g->kv[i].str, "x"));
            else CHECKF(memcmp(&f->kv[i].v, &g->kv[i].v, sizeof f->kv[i].v) == 0, "kv %d", (int)i);
        }
        int64_t v;
        uint32_t u;
        float x;
        CHECK(gguf_get_i64(g, "i8", &v) == 0 && v == -128);
        CHECK(gguf_get_i64(g, "i16", &v) == 0 && v == -300);
        CHECK(gguf_get_u32(g, "u16", &u) == 0 && u == 65000);
        CHECK(gguf_get_u32(g, "u8", &u) == 0 && u == 200);
        CHECK(gguf_get_i64(g, "i64", &v) == 0 && v == -5);
        CHECK(gguf_get_i64(g, "u64", &v) == PINFER_EFORMAT && err_has("does not fit i64"));
        CHECK(gguf_get_f32(g, "f32", &x) == 0 && x == 0.25f);
        CHECK(gguf_get_f32(g, "f64", &x) == PINFER_EFORMAT && err_has("does not fit f32"));
        CHECK(gguf_get_u32(g, "bool", &u) == PINFER_EFORMAT);
    }
    gguf_close(g);
    gguf_close(f);
    by_free(&b);
}

/* ==== Writer guarantees ==== */

/* A writer with one 16-byte f32 tensor, begun on path. */
static struct gguf_writer *small_writer(const char *path)
{
    struct gguf_writer *w;
    if (gguf_writer_new(&w)) return NULL;
    int64_t ne[1] = { 4 };
    int rc = gguf_writer_set_str(w, "general.architecture", "llama");
    if (!rc) rc = gguf_writer_add_tensor(w, "t", PF_TYPE_F32, 1, ne);
    if (!rc) rc = gguf_writer_begin(w, path);
    if (rc) {
        gguf_writer_free(w);
        return NULL;
    }
    return w;
}

static void write_marker(const char *path)
{
    FILE *fp = fopen(path, "wb");
    CHECK(fp && fputs("old contents", fp) >= 0);
    if (fp) fclose(fp);
}

static bool marker_intact(const char *path)
{
    char *s = tu_read_file(path, NULL);
    bool ok = s && strcmp(s, "old contents") == 0;
    free(s);
    return ok;
}

static void test_writer_atomic(void)
{
    const char *path = tmp_path("atomic.gguf");
    const float data[4] = { 1, 2, 3, 4 };

    /* free before finish: destination untouched, temp file gone */
    write_marker(path);
    struct gguf_writer *w = small_writer(path);
    CHECK(w != NULL);
    CHECK(temp_left()); /* the temp file exists while writing */
    CHECK(gguf_writer_write(w, data, 8) == 0);
    gguf_writer_free(w);
    CHECK(marker_intact(path));
    CHECK(!temp_left());

    /* finish with too few bytes fails the same way */
    w = small_writer(path);
    CHECK(gguf_writer_write(w, data, 12) == 0);
    CHECK(gguf_writer_finish(w) == PINFER_EINVAL && err_has("tensor 't' got 12 of 16 bytes"));
    CHECK(gguf_writer_finish(w) == PINFER_EINVAL); /* stays failed */
    gguf_writer_free(w);
    CHECK(marker_intact(path) && !temp_left());

    /* a write crossing the tensor's end is refused at once, and finish fails after it */
    w = small_writer(path);
    CHECK(gguf_writer_write(w, data, 12) == 0);
    CHECK(gguf_writer_write(w, data, 8) == PINFER_EINVAL && err_has("crosses the end of tensor 't'"));
    CHECK(gguf_writer_write(w, data, 4) == PINFER_EINVAL); /* sticky */
    CHECK(gguf_writer_finish(w) == PINFER_EINVAL);
    gguf_writer_free(w);
    CHECK(marker_intact(path) && !temp_left());

    /* a write past the last tensor */
    w = small_writer(path);
    CHECK(gguf_writer_write(w, data, 16) == 0);
    CHECK(gguf_writer_write(w, data, 1) == PINFER_EINVAL && err_has("past the last tensor"));
    gguf_writer_free(w);
    CHECK(marker_intact(path) && !temp_left());

    /* success replaces the destination */
    w = small_writer(path);
    CHECK(gguf_writer_write(w, data, 16) == 0);
    CHECK(gguf_writer_finish(w) == 0);
    CHECK(gguf_writer_write(w, data, 1) == PINFER_EINVAL); /* after finish */
    gguf_writer_free(w); /* after finish: must not remove anything */
    CHECK(!temp_left());
    struct gguf_file *f = NULL;
    CHECKF(gguf_open(&f, path) == 0, "%s", pinfer_last_error());
    if (f) CHECK(f->n_tensors == 1 && memcmp(f->data + f->tensors[0].file_offset, data, 16) == 0);
    gguf_close(f);

    /* issue 15, defect 3: symlinks planted at the names a temp file used to have (and could be
       guessed from the pid) are neither followed nor replaced, and the output is a regular file */
    {
        const char *victim = tmp_path("victim.txt");
        write_marker(victim);
        char planted[3][700];
        snprintf(planted[0], sizeof planted[0], "%s.tmp.%ld", path, (long)getpid());
        snprintf(planted[1], sizeof planted[1], "%s.pinfer-tmp.%ld", path, (long)getpid());
        snprintf(planted[2], sizeof planted[2], "%s.pinfer-tmp.%ld.XXXXXX", path, (long)getpid());
        for (int i = 0; i < 3; i++) { unlink(planted[i]); CHECK(symlink(victim, planted[i]) == 0); }
        w = small_writer(path);
        CHECK(w && gguf_writer_write(w, data, 16) == 0 && gguf_writer_finish(w) == 0);
        gguf_writer_free(w);
        struct stat st;
        CHECK(marker_intact(victim));
        CHECK(lstat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 16);
        for (int i = 0; i < 3; i++) CHECK(lstat(planted[i], &st) == 0 && S_ISLNK(st.st_mode));
        for (int i = 0; i < 3; i++) unlink(planted[i]);
        /* a killed run's temp (its pid gone) is removed by the next write of the same output; a
           live process's is left alone */
        pid_t child = fork();
        if (child == 0) _exit(0);
        waitpid(child, NULL, 0);
        char stale[700], live[700];
        snprintf(stale, sizeof stale, "%s.pinfer-tmp.%ld.abcdef", path, (long)child);
        snprintf(live, sizeof live, "%s.pinfer-tmp.%ld.abcdef", path, (long)getppid());
        write_marker(stale);
        write_marker(live);
        w = small_writer(path);
        CHECK(w && gguf_writer_write(w, data, 16) == 0 && gguf_writer_finish(w) == 0);
        gguf_writer_free(w);
        CHECKF(lstat(stale, &st) != 0, "stale temp %s was not removed", stale);
        CHECK(lstat(live, &st) == 0);
        unlink(live);
        unlink(victim);
    }

    /* non-existent directory */
    CHECK(gguf_writer_new(&w) == 0);
    CHECK(gguf_writer_begin(w, "/nonexistent-pinfer-dir/x.gguf") == PINFER_EIO);
    CHECK(err_has("/nonexistent-pinfer-dir/x.gguf") && err_has("No such file"));
    CHECK(gguf_writer_write(w, data, 4) != 0);
    CHECK(gguf_writer_finish(w) == PINFER_EIO);
    gguf_writer_free(w);
    gguf_writer_free(NULL);
}

/* A failing write (file size limit: EFBIG, the closest to a full disk a test can get without
 * mounting anything) leaves the old destination and no temp file. */
static void test_writer_io_error(void)
{
    const char *path = tmp_path("fsize.gguf");
    write_marker(path);
    struct rlimit old;
    CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
    struct rlimit lim = { 4096, old.rlim_max };
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    struct gguf_writer *w;
    CHECK(gguf_writer_new(&w) == 0);
    int64_t ne[1] = { 1 << 20 };
    CHECK(gguf_writer_add_tensor(w, "big", PF_TYPE_F32, 1, ne) == 0);
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    int rc = gguf_writer_begin(w, path);
    float *buf = calloc(1 << 20, sizeof *buf);
    for (int i = 0; !rc && i < 4; i++) rc = gguf_writer_write(w, buf + i * (1 << 18), 1 << 20);
    if (!rc) rc = gguf_writer_finish(w);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    CHECKF(rc == PINFER_EIO && err_has("fsize.gguf"), "rc %d: %s", rc, pinfer_last_error());
    CHECK(gguf_writer_finish(w) == PINFER_EIO);
    gguf_writer_free(w);
    free(buf);
    CHECK(marker_intact(path) && !temp_left());
}

static void test_writer_refusals(void)
{
    struct gguf_writer *w;
    int64_t ne[4] = { 32, 2, 1, 1 };
    CHECK(gguf_writer_new(&w) == 0);
    CHECK(gguf_writer_set_u32(w, "", 1) == PINFER_EINVAL && err_has("empty key"));
    CHECK(gguf_writer_set_i32(w, "general.alignment", 32) == PINFER_EINVAL && err_has("must be a u32"));
    CHECK(gguf_writer_set_str(w, "general.alignment", "32") == PINFER_EINVAL);
    CHECK(gguf_writer_set_u32(w, "general.alignment", 0) == PINFER_EINVAL && err_has("power of two"));
    CHECK(gguf_writer_set_u32(w, "general.alignment", 48) == PINFER_EINVAL && err_has("power of two"));
    CHECK(gguf_writer_set_arr(w, "k", GGUF_STRING, NULL, 0) == PINFER_EINVAL);
    CHECK(gguf_writer_set_arr(w, "k", GGUF_ARRAY, NULL, 0) == PINFER_EINVAL);
    CHECK(gguf_writer_add_tensor(w, "t", PF_TYPE_F32, 2, ne) == 0);
    CHECK(gguf_writer_add_tensor(w, "t", PF_TYPE_F32, 2, ne) == PINFER_EINVAL && err_has("duplicate"));
    CHECK(gguf_writer_add_tensor(w, "", PF_TYPE_F32, 2, ne) == PINFER_EINVAL);
    CHECK(gguf_writer_add_tensor(w, "0123456789012345678901234567890123456789012345678901234567890123",
                                 PF_TYPE_F32, 2, ne) == PINFER_EINVAL);
    CHECK(gguf_writer_add_tensor(w, "u", 16, 2, ne) == PINFER_EINVAL && err_has("unknown type")); /* iq2_xxs */
    CHECK(gguf_writer_add_tensor(w, "u", PF_TYPE_F32, 0, ne) == PINFER_EINVAL);
    CHECK(gguf_writer_add_tensor(w, "u", PF_TYPE_F32, 5, ne) == PINFER_EINVAL);
    CHECK(gguf_writer_add_tensor(w, "u", PF_TYPE_Q4_0, 1, (int64_t[]){ 33 }) == PINFER_EINVAL &&
          err_has("block size"));
    CHECK(gguf_writer_add_tensor(w, "u", PF_TYPE_F32, 2, (int64_t[]){ 4, 0 }) == PINFER_EINVAL);
    CHECK(gguf_writer_add_tensor(w, "u", PF_TYPE_F32, 2, (int64_t[]){ 4, -1 }) == PINFER_EINVAL);
    CHECK(gguf_writer_add_tensor(w, "u", PF_TYPE_F32, 2, (int64_t[]){ 1ll << 62, 4 }) == PINFER_EINVAL &&
          err_has("overflows"));
    CHECK(gguf_writer_set_u32(w, "general.alignment", 64) == PINFER_EINVAL && err_has("before the first tensor"));
    CHECK(gguf_writer_set_u32(w, "general.alignment", 32) == 0); /* same value: harmless */
    CHECK(gguf_writer_write(w, "x", 1) == PINFER_EINVAL);
    CHECK(gguf_writer_finish(w) == PINFER_EINVAL);
    const char *path = tmp_path("refusals.gguf");
    CHECK(gguf_writer_begin(w, path) == 0);
    CHECK(gguf_writer_set_u32(w, "late", 1) == PINFER_EINVAL && err_has("after gguf_writer_begin"));
    CHECK(gguf_writer_add_tensor(w, "late", PF_TYPE_F32, 1, ne) == PINFER_EINVAL);
    CHECK(gguf_writer_begin(w, path) == PINFER_EINVAL);
    gguf_writer_free(w);
    CHECK(!temp_left() && file_size(path) < 0);
}

/* ==== Real files ==== */

static void test_stories(void)
{
    const char *path = tu_shared_path("models/stories260K/stories260K.gguf");
    struct gguf_file *f = NULL;
    if (!path || access(path, R_OK) != 0) {
        printf("stories260K.gguf absent: skipped\n");
        return;
    }
    CHECKF(gguf_open(&f, path) == 0, "%s", pinfer_last_error());
    if (!f) return;
    CHECK(f->version == 3 && f->n_kv == 19 && f->n_tensors == 48 && f->alignment == 32);
    char buf[32];
    uint32_t u;
    float eps;
    CHECK(gguf_get_str(f, "general.architecture", buf, sizeof buf) == 0 && strcmp(buf, "llama") == 0);
    CHECK(gguf_get_u32(f, "llama.embedding_length", &u) == 0 && u == 64);
    CHECK(gguf_get_u32(f, "llama.block_count", &u) == 0 && u == 5);
    CHECK(gguf_get_u32(f, "llama.attention.head_count_kv", &u) == 0 && u == 4);
    CHECK(gguf_get_u32(f, "llama.feed_forward_length", &u) == 0 && u == 172);
    CHECK(gguf_get_u32(f, "tokenizer.ggml.seperator_token_id", &u) == 0 && u == UINT32_MAX);
    CHECK(gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &eps) == 0 && eps == 1e-5f);
    const struct gguf_kv *tok = gguf_find(f, "tokenizer.ggml.tokens");
    CHECK(tok && tok->arr_type == GGUF_STRING && tok->arr_n == 512);
    if (tok && tok->arr_n == 512) CHECK(str_eq(tok->arr_str[1], "<s>") && str_eq(tok->arr_str[2], "</s>"));
    const struct gguf_kv *sc = gguf_find(f, "tokenizer.ggml.scores");
    CHECK(sc && sc->arr_type == GGUF_F32 && sc->arr_n == 512);

    static const char *const per_layer[] = { "attn_q", "attn_k", "attn_v", "attn_output",
        "attn_norm", "ffn_gate", "ffn_down", "ffn_up", "ffn_norm" };
    for (int l = 0; l < 5; l++)
        for (int k = 0; k < 9; k++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, per_layer[k]);
            int i = gguf_find_tensor(f, name);
            CHECKF(i >= 0 && f->tensors[i].type == PF_TYPE_F32, "%s", name);
        }
    int e = gguf_find_tensor(f, "token_embd.weight");
    CHECK(e == 0 && f->tensors[0].ne[0] == 64 && f->tensors[0].ne[1] == 512 && f->tensors[0].n_dims == 2);
    CHECK(gguf_find_tensor(f, "output_norm.weight") >= 0 && gguf_find_tensor(f, "output.weight") >= 0);
    int d = gguf_find_tensor(f, "blk.0.ffn_down.weight");
    CHECK(d >= 0 && f->tensors[d].ne[0] == 172 && f->tensors[d].ne[1] == 64);
    uint64_t bytes = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) bytes += f->tensors[i].nbytes;
    CHECK(f->data_offset + bytes <= f->size && f->data_offset == 14176);
    /* the norm weights are real numbers */
    int n = gguf_find_tensor(f, "output_norm.weight");
    if (n >= 0) {
        float w0;
        memcpy(&w0, f->data + f->tensors[n].file_offset, 4);
        CHECK(isfinite(w0) && w0 != 0);
    }

    /* the same bytes parsed from memory give the same result */
    size_t len;
    char *buf2 = tu_read_file(path, &len);
    struct gguf_file *g = NULL;
    CHECK(buf2 && gguf_parse(&g, buf2, len) == 0);
    if (g) {
        CHECK(g->fd == -1 && !g->mapped && g->n_kv == f->n_kv && g->data_offset == f->data_offset);
        for (uint64_t i = 0; i < g->n_tensors; i++)
            CHECK(g->tensors[i].file_offset == f->tensors[i].file_offset);
    }
    gguf_close(g);
    free(buf2);
    gguf_close(f);
}

static void test_vocab(void)
{
    const char *path = tu_shared_path("testdata/tokenizer/ggml-vocab-llama-spm.gguf");
    struct gguf_file *f = NULL;
    if (!path || access(path, R_OK) != 0) {
        printf("ggml-vocab-llama-spm.gguf absent: skipped\n");
        return;
    }
    CHECKF(gguf_open(&f, path) == 0, "%s", pinfer_last_error());
    if (!f) return;
    CHECK(f->n_kv == 22 && f->n_tensors == 0);
    char buf[32];
    bool b = false;
    uint32_t u = 0;
    CHECK(gguf_get_str(f, "tokenizer.ggml.model", buf, sizeof buf) == 0 && strcmp(buf, "llama") == 0);
    CHECK(gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &b) == 0 && b);
    CHECK(gguf_get_u32(f, "tokenizer.ggml.eos_token_id", &u) == 0 && u == 2);
    const struct gguf_kv *tok = gguf_find(f, "tokenizer.ggml.tokens");
    CHECK(tok && tok->arr_type == GGUF_STRING && tok->arr_n == 32000);
    if (tok && tok->arr_n == 32000) CHECK(str_eq(tok->arr_str[0], "<unk>"));
    const struct gguf_kv *tt = gguf_find(f, "tokenizer.ggml.token_type");
    CHECK(tt && tt->arr_type == GGUF_I32 && tt->arr_n == 32000);
    gguf_close(f);
}

static void test_open_errors(void)
{
    struct gguf_file *f = (struct gguf_file *)1;
    CHECK(gguf_open(&f, "/nonexistent/model.gguf") == PINFER_EIO && f == NULL);
    CHECK(err_has("/nonexistent/model.gguf") && err_has("No such file"));
    CHECK(gguf_open(&f, tu_tmpdir()) == PINFER_EIO && err_has("not a regular file"));
    const char *path = tmp_path("empty.gguf");
    FILE *fp = fopen(path, "wb");
    if (fp) fclose(fp);
    CHECK(gguf_open(&f, path) == PINFER_EFORMAT && err_has("empty.gguf") && err_has("too short"));
    write_marker(path);
    CHECK(gguf_open(&f, path) == PINFER_EFORMAT && err_has("empty.gguf: bad magic"));
    gguf_close(NULL);
}

/* Many keys and tensors (issue 15): the writer's look-ups are hashed (a scan per key took
 * ~45 minutes for 2^20 keys); overriding a key keeps its first position; the file reads back
 * with every value, and a duplicate tensor is still refused. */
static void test_writer_many(void)
{
    const int n_keys = 1 << 18, n_t = 1 << 14;
    const char *path = tmp_path("many.gguf");
    struct gguf_writer *w = NULL;
    int rc = gguf_writer_new(&w);
    char key[64];
    for (int i = 0; !rc && i < n_keys; i++) {
        snprintf(key, sizeof key, "k.%d", i);
        rc = gguf_writer_set_u32(w, key, (uint32_t)i);
    }
    for (int i = 0; !rc && i < n_keys; i += 1000) { /* overrides */
        snprintf(key, sizeof key, "k.%d", i);
        rc = gguf_writer_set_u32(w, key, (uint32_t)i + 7);
    }
    const int64_t ne[1] = { 32 };
    for (int i = 0; !rc && i < n_t; i++) {
        snprintf(key, sizeof key, "t.%d", i);
        rc = gguf_writer_add_tensor(w, key, PF_TYPE_F32, 1, ne);
    }
    CHECKF(rc == 0, "%s", pinfer_last_error());
    CHECK(gguf_writer_add_tensor(w, "t.77", PF_TYPE_F32, 1, ne) == PINFER_EINVAL);
    float row[32] = { 0 };
    if (!rc) rc = gguf_writer_begin(w, path);
    for (int i = 0; !rc && i < n_t; i++) rc = gguf_writer_write(w, row, sizeof row);
    if (!rc) rc = gguf_writer_finish(w);
    CHECKF(rc == 0, "%s", pinfer_last_error());
    gguf_writer_free(w);
    struct gguf_file *f = NULL;
    CHECK(gguf_open(&f, path) == 0);
    if (!f) return;
    CHECKF(f->n_kv == (uint64_t)n_keys && f->n_tensors == (uint64_t)n_t, "%llu keys, %llu tensors", (unsigned long long)f->n_kv, (unsigned long long)f->n_tensors);
    int bad = 0;
    for (int i = 0; i < n_keys; i++) {
        snprintf(key, sizeof key, "k.%d", i);
        uint32_t v = 0;
        if (gguf_get_u32(f, key, &v) != 0 || v != (uint32_t)i + (i % 1000 == 0 ? 7 : 0)) bad++;
        if (i == 1000 && (f->kv[1000].key.len != 6 || memcmp(f->kv[1000].key.s, "k.1000", 6))) bad++;
    }
    CHECKF(bad == 0, "%d keys read back wrong", bad);
    printf("writer: %d keys (%d overridden in place), %d tensors, read back\n", n_keys, n_keys / 1000 + 1, n_t);
    gguf_close(f);
    unlink(path);
}

int main(void)
{
    make_tensor_data();
    test_writer_many();
    test_roundtrip();
    test_all_scalar_types();
    test_writer_atomic();
    test_writer_io_error();
    test_writer_refusals();
    test_open_errors();
    test_stories();
    test_vocab();
    for (size_t i = 0; i < N_TENSORS; i++) free(tensors[i].data);
    TEST_DONE();
}
