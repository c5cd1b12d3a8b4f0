/* Helpers shared by the test programs. */
#include "testutil.h"

#include "pinfer.h"
#include "gguf/gguf.h"
#include "tensor/kernels.h"
#include "tensor/types.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int tu_failures;

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

const char *tu_shared_dir(void)
{
    static char dir[PATH_MAX];
    static int done;
    if (done) return dir[0] ? dir : NULL;
    done = 1;
    const char *env = getenv("PINFER_SHARED");
    if (env && is_dir(env)) { snprintf(dir, sizeof dir, "%s", env); return dir; }
    /* tests run from the repository root (make test); also try one and two levels up */
    const char *cands[] = { "../shared", "../../shared", "../../../shared" };
    for (size_t i = 0; i < sizeof cands / sizeof *cands; i++)
        if (is_dir(cands[i])) { snprintf(dir, sizeof dir, "%s", cands[i]); return dir; }
    dir[0] = 0;
    return NULL;
}

const char *tu_shared_path(const char *rel)
{
    static char p[PATH_MAX];
    const char *d = tu_shared_dir();
    if (!d) return NULL;
    snprintf(p, sizeof p, "%s/%s", d, rel);
    return p;
}

char *tu_read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    if (fseek(fp, 0, SEEK_END) != 0) { fclose(fp); return NULL; }
    long n = ftell(fp);
    rewind(fp);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!buf || fread(buf, 1, (size_t)n, fp) != (size_t)n) { free(buf); fclose(fp); return NULL; }
    buf[n] = 0;
    fclose(fp);
    if (len) *len = (size_t)n;
    return buf;
}

const char *tu_tmpdir(void)
{
    static char dir[PATH_MAX];
    if (dir[0]) return dir;
    const char *base = getenv("PINFER_TEST_TMP");
    snprintf(dir, sizeof dir, "%s/t%ld", base ? base : "/tmp/pinfer-test", (long)getpid());
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    if (system(cmd) != 0) return "/tmp";
    return dir;
}

unsigned long long tu_rand(unsigned long long *s)
{
    unsigned long long x = *s ? *s : 88172645463325252ULL;
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    return *s = x;
}

float tu_randf(unsigned long long *s)
{
    return (float)((tu_rand(s) >> 40) / (double)(1ULL << 24)) * 2.0f - 1.0f;
}

int tu_make_prepared(const char *raw, const char *prep, const struct pinfer_synth_params *sp, int n_tokens, int steps)
{
    if (pinfer_synth(raw, sp)) { fprintf(stderr, "synth: %s\n", pinfer_last_error()); return -1; }
    struct pinfer_prepare_params pp = pinfer_prepare_default_params();
    pp.n_tokens = n_tokens;
    pp.train_steps = steps;
    pp.n_threads = 2;
    if (pinfer_prepare(raw, prep, &pp, NULL)) { fprintf(stderr, "prepare: %s\n", pinfer_last_error()); return -1; }
    return 0;
}

int tu_synth_moe(const char *path, int act, int type, int n_expert, int n_used, int dim, int ffn, unsigned seed,
                 float sparsity)
{
    struct pinfer_synth_params sp = pinfer_synth_default_params();
    sp.n_embd = dim;
    sp.n_layer = 2;
    sp.n_head = 4;
    sp.n_head_kv = 2;
    sp.n_ff = ffn;
    sp.n_vocab = 384;
    sp.n_ctx = 256;
    sp.n_expert = n_expert;
    sp.n_expert_used = n_used;
    sp.type = type;
    sp.act = (enum pinfer_act)act;
    sp.seed = seed;
    if (sparsity > 0) sp.sparsity = sparsity;
    int rc = pinfer_synth(path, &sp);
    CHECKF(rc == 0, "synth %s: %s", path, pinfer_last_error());
    return rc;
}

static bool key_is(const struct gguf_kv *kv, const char *k) { return k && kv->key.len == strlen(k) && !memcmp(kv->key.s, k, kv->key.len); }

/* Declares (pass 0) or writes (pass 1) tensor t of f as e says. */
static int edit_tensor(struct gguf_writer *w, const struct gguf_file *f, const struct gguf_tensor *t, const struct tu_gguf_edit *e, int pass)
{
    const uint8_t *src = f->data + t->file_offset;
    if (e->drop_tensor && !strcmp(t->name, e->drop_tensor)) return 0;
    int l, end = 0;
    char part[16];
    if (e->split_experts && sscanf(t->name, "blk.%d.ffn_%15[a-z]_exps.weight%n", &l, part, &end) == 2 && end > 0 && !t->name[end]) {
        const uint64_t slice = t->nbytes / (uint64_t)t->ne[2];
        int rc = 0;
        for (int64_t x = 0; x < t->ne[2] && !rc; x++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%d.ffn_%s.%lld.weight", l, part, (long long)x);
            rc = pass == 0 ? gguf_writer_add_tensor(w, name, t->type, 2, t->ne) : gguf_writer_write(w, src + x * slice, slice);
        }
        return rc;
    }
    if (e->shape && !strcmp(t->name, e->shape)) {
        if (pass == 0) return gguf_writer_add_tensor(w, t->name, t->type, e->n_dims, e->ne);
        size_t row;
        if (!pf_row_size(t->type, e->ne[0], &row)) return -1;
        uint64_t nb = row;
        for (int d = 1; d < e->n_dims; d++) nb *= (uint64_t)e->ne[d];
        const uint64_t have = nb < t->nbytes ? nb : t->nbytes;
        int rc = gguf_writer_write(w, src, have);
        for (uint64_t z = have; !rc && z < nb; z += 4096) {
            static const uint8_t zero[4096];
            rc = gguf_writer_write(w, zero, nb - z < 4096 ? nb - z : 4096);
        }
        return rc;
    }
    int nt = e->retype ? e->retype(t->name) : -1;
    if (pass == 0) return gguf_writer_add_tensor(w, t->name, nt >= 0 ? nt : t->type, t->n_dims, t->ne);
    if (nt < 0) return gguf_writer_write(w, src, t->nbytes);
    const int64_t n = t->ne[0];
    size_t rs_in = 0, rs_out = 0;
    if (!pf_row_size(t->type, n, &rs_in) || !pf_row_size(nt, n, &rs_out)) return -1;
    float *row = malloc(sizeof(float) * (size_t)n);
    uint8_t *q = malloc(rs_out);
    int rc = 0;
    for (uint64_t r = 0; !rc && r < t->nbytes / rs_in; r++) {
        pf_kernels_ref.dequant[t->type](src + r * rs_in, row, n);
        pf_kernels_ref.from_f32[nt](row, q, n);
        rc = gguf_writer_write(w, q, rs_out);
    }
    free(row);
    free(q);
    return rc;
}

int tu_gguf_edit(const char *in, const char *out, const struct tu_gguf_edit *e)
{
    struct gguf_file *f = NULL;
    struct gguf_writer *w = NULL;
    int rc = gguf_open(&f, in);
    if (!rc) rc = gguf_writer_new(&w);
    for (uint64_t i = 0; !rc && i < f->n_kv; i++)
        if (!key_is(&f->kv[i], e->drop)) rc = gguf_writer_copy_kv(w, &f->kv[i]);
    if (!rc && e->key)
        rc = e->scalar ? gguf_writer_set_u32(w, e->key, e->u32[0]) : gguf_writer_set_arr(w, e->key, GGUF_U32, e->u32, (uint64_t)e->n_u32);
    for (int pass = 0; pass < 2 && !rc; pass++) {
        if (pass == 1) rc = gguf_writer_begin(w, out);
        for (uint64_t i = 0; !rc && i < f->n_tensors; i++) rc = edit_tensor(w, f, &f->tensors[i], e, pass);
    }
    if (!rc) rc = gguf_writer_finish(w);
    if (rc) fprintf(stderr, "tu_gguf_edit %s: %s\n", in, pinfer_last_error());
    gguf_writer_free(w);
    gguf_close(f);
    return rc ? -1 : 0;
}

/* ffn_down of odd layers -> Q6_K */
static int odd_down_q6k(const char *name)
{
    int l;
    char rest[64];
    if (sscanf(name, "blk.%d.%63s", &l, rest) == 2 && l % 2 == 1 && !strcmp(rest, "ffn_down.weight")) return PF_TYPE_Q6_K;
    return -1;
}

int tu_make_kquant(const char *raw, const char *prep, int act, unsigned seed, bool mixed, int n_tokens, int steps)
{
    struct pinfer_synth_params sp = pinfer_synth_default_params();
    sp.act = (enum pinfer_act)act;
    sp.type = PF_TYPE_Q4_K;
    sp.n_embd = 256;
    sp.n_ff = 512;
    sp.seed = seed;
    char uni[PATH_MAX];
    snprintf(uni, sizeof uni, "%s.q4k.gguf", raw);
    if (pinfer_synth(mixed ? uni : raw, &sp)) { fprintf(stderr, "synth: %s\n", pinfer_last_error()); return -1; }
    if (mixed) {
        struct tu_gguf_edit e = { .retype = odd_down_q6k };
        int rc = tu_gguf_edit(uni, raw, &e);
        remove(uni);
        if (rc) return -1;
    }
    struct pinfer_prepare_params pp = pinfer_prepare_default_params();
    pp.n_tokens = n_tokens;
    pp.train_steps = steps;
    pp.n_threads = 2;
    if (pinfer_prepare(raw, prep, &pp, NULL)) { fprintf(stderr, "prepare: %s\n", pinfer_last_error()); return -1; }
    return 0;
}

const char *tu_tmp(const char *name)
{
    static char buf[8][512];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", tu_tmpdir(), name);
    return p;
}
