/* Loading a vocabulary from GGUF metadata, the text -> id hash, and token -> text pieces.
 * Tokenization itself is in tokenize.c (entry points, special tokens), spm.c (SentencePiece,
 * tokenizer.ggml.model "llama") and bpe.c / pretok.c (byte-level BPE, "gpt2").
 *
 * Nothing read from the file is trusted: the arrays must agree on n_vocab, texts are capped,
 * special ids must be in range, SentencePiece byte tokens must look like "<0xNN>", duplicate
 * texts are rejected (llama.cpp asserts on them), and every BPE merge must be two tokens
 * separated by a space, all as PINFER_EFORMAT. Defaults follow llama.cpp's loader: for
 * SentencePiece bos 1, eos 2, unk 0, add_bos true, add_space_prefix true; for BPE bos = eos = 11,
 * no unk, add_bos only for the pre-tokenizers that say so (llama3); add_eos false, scores 0 and
 * types NORMAL when those arrays are absent, and an empty text becomes "[EMPTY_<id>]". */
#include "tokenizer/vocab_impl.h"

#include "tokenizer/pretok.h"

#include "core/checked.h"
#include "core/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ==== Hash ==== */

/* FNV-1a: token texts are short, so a simple byte-wise hash is as fast as anything fancier. */
static uint64_t text_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    /* fold the high bits in: the table index uses only the low ones */
    return h ^ (h >> 29);
}

int32_t pf_vocab_find(const struct pf_vocab *v, const char *s, size_t n)
{
    size_t i = (size_t)text_hash(s, n) & v->mask;
    for (;;) {
        int32_t id = v->slots[i];
        if (id < 0) return -1;
        if (v->len[id] == n && memcmp(v->text + v->off[id], s, n) == 0) return id;
        i = (i + 1) & v->mask;
    }
}

/* Builds the hash; PINFER_EFORMAT on a duplicate text. */
static int build_hash(struct pf_vocab *v)
{
    size_t cap = 16;
    while (cap < (size_t)v->n * 2) cap *= 2;
    v->slots = malloc(cap * sizeof *v->slots);
    if (!v->slots) return pf_fail(PINFER_ENOMEM, "vocab: out of memory for the token hash");
    memset(v->slots, 0xff, cap * sizeof *v->slots);
    v->mask = cap - 1;
    for (int32_t id = 0; id < v->n; id++) {
        const char *s = v->text + v->off[id];
        size_t i = (size_t)text_hash(s, v->len[id]) & v->mask;
        while (v->slots[i] >= 0) {
            int32_t o = v->slots[i];
            if (v->len[o] == v->len[id] && memcmp(v->text + v->off[o], s, v->len[id]) == 0)
                return pf_fail(PINFER_EFORMAT, "vocab: tokens %d and %d have the same text", o, id);
            i = (i + 1) & v->mask;
        }
        v->slots[i] = id;
    }
    return 0;
}

/* ==== Loading ==== */

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Finds an optional numeric array of n elements of type t: *kv = NULL when absent. */
static int find_array(const struct gguf_file *f, const char *key, enum gguf_vtype t, uint64_t n,
                      const struct gguf_kv **kv)
{
    *kv = gguf_find(f, key);
    if (!*kv) return 0;
    if ((*kv)->type != GGUF_ARRAY || (*kv)->arr_type != t)
        return pf_fail(PINFER_EFORMAT, "vocab: %s must be an array of %s", key, gguf_vtype_name(t));
    if ((*kv)->arr_n != n)
        return pf_fail(PINFER_EFORMAT, "vocab: %s has %llu entries, tokenizer.ggml.tokens has %llu",
                       key, (unsigned long long)(*kv)->arr_n, (unsigned long long)n);
    if (n && !(*kv)->arr_data) return pf_fail(PINFER_EFORMAT, "vocab: %s has no data", key);
    return 0;
}

/* Copies the token texts, scores and types. */
static int load_tokens(struct pf_vocab *v, const struct gguf_file *f)
{
    const struct gguf_kv *tok = gguf_find(f, "tokenizer.ggml.tokens");
    if (!tok) return pf_fail(PINFER_EFORMAT, "vocab: missing tokenizer.ggml.tokens");
    if (tok->type != GGUF_ARRAY || tok->arr_type != GGUF_STRING || (tok->arr_n && !tok->arr_str))
        return pf_fail(PINFER_EFORMAT, "vocab: tokenizer.ggml.tokens must be an array of strings");
    if (tok->arr_n == 0) return pf_fail(PINFER_EFORMAT, "vocab: tokenizer.ggml.tokens is empty");
    if (tok->arr_n > PF_VOCAB_MAX_TOKENS)
        return pf_fail(PINFER_EFORMAT, "vocab: %llu tokens (cap %d)",
                       (unsigned long long)tok->arr_n, PF_VOCAB_MAX_TOKENS);
    int n = (int)tok->arr_n;
    v->n = n;

    const struct gguf_kv *sc, *ty;
    int rc = find_array(f, "tokenizer.ggml.scores", GGUF_F32, tok->arr_n, &sc);
    if (rc) return rc;
    rc = find_array(f, "tokenizer.ggml.token_type", GGUF_I32, tok->arr_n, &ty);
    if (rc) return rc;

    /* an empty text is replaced by "[EMPTY_<id>]" (at most 20 bytes) */
    char empty[32];
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        uint64_t len = tok->arr_str[i].len;
        if (len > PF_VOCAB_MAX_TOKEN_LEN)
            return pf_fail(PINFER_EFORMAT, "vocab: token %d is %llu bytes long (cap %d)", i,
                           (unsigned long long)len, PF_VOCAB_MAX_TOKEN_LEN);
        if (len && !tok->arr_str[i].s) return pf_fail(PINFER_EFORMAT, "vocab: token %d has no text", i);
        if (len == 0) len = (uint64_t)snprintf(empty, sizeof empty, "[EMPTY_%d]", i);
        if (ck_add(total, (size_t)len + 1, &total))
            return pf_fail(PINFER_EFORMAT, "vocab: token texts too large");
    }

    v->text = malloc(total);
    v->off = malloc((size_t)n * sizeof *v->off);
    v->len = malloc((size_t)n * sizeof *v->len);
    v->score = malloc((size_t)n * sizeof *v->score);
    v->type = malloc((size_t)n);
    v->byte = calloc((size_t)n, 1);
    if (!v->text || !v->off || !v->len || !v->score || !v->type || !v->byte)
        return pf_fail(PINFER_ENOMEM, "vocab: out of memory for %d tokens", n);

    size_t pos = 0;
    bool in_long[128] = { false };
    for (int i = 0; i < n; i++) {
        const char *s = tok->arr_str[i].s;
        size_t len = (size_t)tok->arr_str[i].len;
        if (len == 0) {
            len = (size_t)snprintf(empty, sizeof empty, "[EMPTY_%d]", i);
            s = empty;
        }
        memcpy(v->text + pos, s, len);
        v->text[pos + len] = 0;
        v->off[i] = pos;
        v->len[i] = (uint32_t)len;
        if (len > v->max_len) v->max_len = (uint32_t)len;
        for (size_t j = 0; len >= 2 && j < len; j++)
            if ((unsigned char)s[j] < 128) in_long[(unsigned char)s[j]] = true;
        pos += len + 1;

        float score = 0.0f;
        if (sc) memcpy(&score, (const char *)sc->arr_data + (size_t)i * 4, 4);
        if (isnan(score)) return pf_fail(PINFER_EFORMAT, "vocab: token %d has a NaN score", i);
        v->score[i] = score;

        int32_t t = PF_TOKEN_NORMAL;
        if (ty) memcpy(&t, (const char *)ty->arr_data + (size_t)i * 4, 4);
        if (t < PF_TOKEN_UNDEFINED || t > PF_TOKEN_BYTE) t = PF_TOKEN_UNDEFINED;
        v->type[i] = (uint8_t)t;

        if (t == PF_TOKEN_BYTE && v->kind == PF_VOCAB_SPM) {
            const char *x = v->text + v->off[i];
            int hi = len == 6 ? hexval(x[3]) : -1, lo = len == 6 ? hexval(x[4]) : -1;
            if (len != 6 || memcmp(x, "<0x", 3) != 0 || x[5] != '>' || hi < 0 || lo < 0)
                return pf_fail(PINFER_EFORMAT, "vocab: byte token %d is not of the form <0xNN>", i);
            v->byte[i] = (uint8_t)(hi * 16 + lo);
        }
    }
    for (int b = 0; b < 128; b++) v->cut_after[b] = !in_long[b];
    v->cut_after[' '] = false; /* the tokenizer sees a space as "\xe2\x96\x81", which tokens hold */
    return 0;
}

/* Reads an optional token id key into *id (left alone when absent). Out of range is an error
 * for the ids the tokenizer relies on (required) and means "none" for the others. */
static int load_id(const struct gguf_file *f, const char *key, int n, bool required, int32_t *id)
{
    int64_t x;
    int rc = gguf_get_i64(f, key, &x);
    if (rc < 0) return pf_fail_context(rc, "vocab: %s", key);
    if (rc == 1) return 0;
    if (x < 0 || x >= n) {
        if (required)
            return pf_fail(PINFER_EFORMAT, "vocab: %s = %lld is out of range (%d tokens)", key,
                           (long long)x, n);
        *id = -1;
        return 0;
    }
    *id = (int32_t)x;
    return 0;
}

static int load_bool(const struct gguf_file *f, const char *key, bool *b)
{
    int rc = gguf_get_bool(f, key, b);
    if (rc < 0) return pf_fail_context(rc, "vocab: %s", key);
    return 0;
}

/* ==== Byte-level BPE ==== */

/* tokenizer.ggml.merges: "A B" with A and B token texts, split at the first space after the
 * first byte (so A may begin with a space, as in llama.cpp). Rank = index; a pair listed twice
 * keeps its first rank (llama.cpp's map keeps the first). */
static int load_merges(struct pf_vocab *v, const struct gguf_file *f)
{
    const struct gguf_kv *kv = gguf_find(f, "tokenizer.ggml.merges");
    if (!kv) return pf_fail(PINFER_EFORMAT, "vocab: missing tokenizer.ggml.merges (a BPE vocabulary needs them)");
    if (kv->type != GGUF_ARRAY || kv->arr_type != GGUF_STRING || (kv->arr_n && !kv->arr_str))
        return pf_fail(PINFER_EFORMAT, "vocab: tokenizer.ggml.merges must be an array of strings");
    if (kv->arr_n > PF_VOCAB_MAX_MERGES)
        return pf_fail(PINFER_EFORMAT, "vocab: %llu merges (cap %d)", (unsigned long long)kv->arr_n,
                       PF_VOCAB_MAX_MERGES);
    int n = (int)kv->arr_n;
    v->n_merges = n;
    if (n == 0) return 0;
    size_t cap = 16;
    while (cap < (size_t)n * 2) cap *= 2;
    v->merges = malloc(cap * sizeof *v->merges);
    if (!v->merges) return pf_fail(PINFER_ENOMEM, "vocab: out of memory for %d merges", n);
    for (size_t i = 0; i < cap; i++) v->merges[i].left = -1;
    v->merge_mask = cap - 1;

    char both[2 * PF_VOCAB_MAX_TOKEN_LEN];
    for (int i = 0; i < n; i++) {
        const char *s = kv->arr_str[i].s;
        size_t len = (size_t)kv->arr_str[i].len;
        if (len && !s) return pf_fail(PINFER_EFORMAT, "vocab: merge %d has no text", i);
        int show = len < 64 ? (int)len : 64;
        const char *sp = len >= 2 ? memchr(s + 1, ' ', len - 1) : NULL;
        if (!sp || sp == s + len - 1)
            return pf_fail(PINFER_EFORMAT, "vocab: merge %d ('%.*s') is not two tokens separated by a "
                           "space", i, show, s ? s : "");
        size_t ln = (size_t)(sp - s), rn = len - ln - 1;
        int32_t left = pf_vocab_find(v, s, ln), right = pf_vocab_find(v, sp + 1, rn);
        if (left < 0 || right < 0) {
            const char *bad = left < 0 ? s : sp + 1;
            size_t bn = left < 0 ? ln : rn;
            return pf_fail(PINFER_EFORMAT, "vocab: merge %d ('%.*s') names '%.*s', which is not a token",
                           i, show, s, bn < 64 ? (int)bn : 64, bad);
        }
        /* both halves are tokens, so each is at most PF_VOCAB_MAX_TOKEN_LEN bytes */
        memcpy(both, s, ln);
        memcpy(both + ln, sp + 1, rn);
        int32_t result = ln + rn <= v->max_len ? pf_vocab_find(v, both, ln + rn) : -1;
        size_t k = pf_merge_slot(left, right, v->merge_mask);
        while (v->merges[k].left >= 0 && !(v->merges[k].left == left && v->merges[k].right == right))
            k = (k + 1) & v->merge_mask;
        if (v->merges[k].left < 0) v->merges[k] = (struct pf_merge){ left, right, i, result };
    }
    return 0;
}

static int load_bpe(struct pf_vocab *v, const struct gguf_file *f)
{
    char pre[64];
    int rc = gguf_get_str(f, "tokenizer.ggml.pre", pre, sizeof pre);
    if (rc < 0) return pf_fail_context(rc, "vocab: tokenizer.ggml.pre");
    struct pf_pretok_flags fl;
    if ((rc = pf_pretok_new(&v->pretok, rc == 1 ? NULL : pre, &fl))) return rc;
    if ((rc = load_merges(v, f))) return rc;

    pf_bpe_byte_map(v->byte_cp);
    for (size_t c = 0; c < sizeof v->cp_byte / sizeof *v->cp_byte; c++) v->cp_byte[c] = -1;
    for (int b = 0; b < 256; b++) {
        char u[4], raw = (char)b;
        v->cp_byte[v->byte_cp[b]] = (int16_t)b;
        v->byte_sym[b] = pf_vocab_find(v, u, pf_utf8_put(v->byte_cp[b], u));
        v->byte_unit[b] = pf_vocab_find(v, &raw, 1);
    }
    v->ignore_merges = fl.ignore_merges;
    v->bpe_piece = 64u << 10;
    v->bos = fl.no_bos || v->n <= 11 ? -1 : 11;
    v->eos = v->n > 11 ? 11 : -1;
    v->unk = -1;
    v->add_bos = fl.add_bos;
    v->add_space_prefix = false;
    return 0;
}

/* ==== Control-looking tokens ==== */

/* llama.cpp types a few tokens CONTROL by their text whatever the file says (a workaround of
 * its loader for converters that typed them otherwise): the end-of-generation ones always, and
 * per role (end of turn, fill-in-the-middle parts) the first name present when the role has no
 * id in the metadata. llama.cpp takes the first it meets in a hash map; here the first in the
 * list; vocabularies hold at most one per role. */
static const char *const eog_names[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>",
};

static const struct role {
    const char *key, *old_key;
    const char *names[8];
} roles[] = {
    { "tokenizer.ggml.eot_token_id", NULL, { "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
      "<|endoftext|>", "<EOT>", "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>" } },
    { "tokenizer.ggml.eom_token_id", NULL, { "<|eom_id|>" } },
    { "tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.prefix_token_id", { "<|fim_prefix|>",
      "<fim-prefix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c>", "<PRE>" } },
    { "tokenizer.ggml.fim_suf_token_id", "tokenizer.ggml.suffix_token_id", { "<|fim_suffix|>",
      "<fim-suffix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81hole\xef\xbd\x9c>", "<SUF>" } },
    { "tokenizer.ggml.fim_mid_token_id", "tokenizer.ggml.middle_token_id", { "<|fim_middle|>",
      "<fim-middle>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "end\xef\xbd\x9c>", "<MID>" } },
    { "tokenizer.ggml.fim_pad_token_id", NULL, { "<|fim_pad|>", "<fim-pad>", "<PAD>" } },
    { "tokenizer.ggml.fim_rep_token_id", NULL, { "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>" } },
    { "tokenizer.ggml.fim_sep_token_id", NULL, { "<|file_sep|>" } },
};

static bool has_id(const struct gguf_file *f, const char *key, int n)
{
    int64_t x;
    return key && gguf_get_i64(f, key, &x) == 0 && x >= 0 && x < n;
}

static void mark_control(struct pf_vocab *v, const struct gguf_file *f)
{
    for (size_t r = 0; r < sizeof roles / sizeof *roles; r++) {
        if (has_id(f, roles[r].key, v->n) || has_id(f, roles[r].old_key, v->n)) continue;
        for (int i = 0; i < 8 && roles[r].names[i]; i++) {
            int32_t id = pf_vocab_find(v, roles[r].names[i], strlen(roles[r].names[i]));
            if (id >= 0) {
                v->type[id] = PF_TOKEN_CONTROL;
                break;
            }
        }
    }
    for (size_t i = 0; i < sizeof eog_names / sizeof *eog_names; i++) {
        int32_t id = pf_vocab_find(v, eog_names[i], strlen(eog_names[i]));
        if (id >= 0) v->type[id] = PF_TOKEN_CONTROL;
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static int build_special(struct pf_vocab *v)
{
    int n = 0;
    for (int i = 0; i < v->n; i++) {
        int t = v->type[i];
        n += t == PF_TOKEN_CONTROL || t == PF_TOKEN_UNKNOWN || t == PF_TOKEN_USER_DEFINED;
    }
    v->n_special = n;
    if (n == 0) return 0;
    v->special = malloc((size_t)n * sizeof *v->special);
    uint64_t *key = malloc((size_t)n * sizeof *key);
    if (!v->special || !key) {
        free(key);
        return pf_fail(PINFER_ENOMEM, "vocab: out of memory");
    }
    /* longest text first, ties by id (so the order, and the tokenization, is reproducible):
     * one sortable key per token, (cap - length) above the id */
    n = 0;
    for (int i = 0; i < v->n; i++) {
        int t = v->type[i];
        if (t == PF_TOKEN_CONTROL || t == PF_TOKEN_UNKNOWN || t == PF_TOKEN_USER_DEFINED)
            key[n++] = (uint64_t)(PF_VOCAB_MAX_TOKEN_LEN - v->len[i]) << 32 | (uint32_t)i;
    }
    qsort(key, (size_t)n, sizeof *key, cmp_u64);
    for (int i = 0; i < n; i++) v->special[i] = (int32_t)(uint32_t)key[i];
    free(key);
    return 0;
}

int pf_vocab_load(struct pf_vocab **out, const struct gguf_file *f)
{
    *out = NULL;
    char model[64];
    int rc = gguf_get_str(f, "tokenizer.ggml.model", model, sizeof model);
    if (rc == 1) return pf_fail(PINFER_EFORMAT, "vocab: missing tokenizer.ggml.model");
    if (rc < 0) return pf_fail_context(rc, "vocab: tokenizer.ggml.model");
    enum pf_vocab_kind kind;
    if (strcmp(model, "llama") == 0) kind = PF_VOCAB_SPM;
    else if (strcmp(model, "gpt2") == 0) kind = PF_VOCAB_BPE;
    else
        return pf_fail(PINFER_EUNSUPPORTED, "vocab: tokenizer model '%s' is not supported (only "
                       "SentencePiece 'llama' and byte-level BPE 'gpt2')", model);

    struct pf_vocab *v = calloc(1, sizeof *v);
    if (!v) return pf_fail(PINFER_ENOMEM, "vocab: out of memory");
    v->kind = kind;
    if ((rc = load_tokens(v, f)) || (rc = build_hash(v))) goto err;

    for (int b = 0; b < 256; b++) {
        static const char hex[] = "0123456789ABCDEF";
        char s[7] = { '<', '0', 'x', hex[b >> 4], hex[b & 15], '>', 0 };
        char raw = (char)b;
        v->byte_tok[b] = pf_vocab_find(v, s, 6);
        if (v->byte_tok[b] < 0) v->byte_tok[b] = pf_vocab_find(v, &raw, 1);
    }

    v->pad = -1;
    v->add_eos = false;
    if (kind == PF_VOCAB_BPE) {
        if ((rc = load_bpe(v, f))) goto err;
    } else {
        v->bos = v->n > 1 ? 1 : -1;
        v->eos = v->n > 2 ? 2 : -1;
        v->unk = 0;
        v->add_bos = true;
        v->add_space_prefix = true;
    }
    if ((rc = load_id(f, "tokenizer.ggml.bos_token_id", v->n, true, &v->bos)) ||
        (rc = load_id(f, "tokenizer.ggml.eos_token_id", v->n, true, &v->eos)) ||
        (rc = load_id(f, "tokenizer.ggml.unknown_token_id", v->n, true, &v->unk)) ||
        (rc = load_id(f, "tokenizer.ggml.padding_token_id", v->n, false, &v->pad)) ||
        (rc = load_bool(f, "tokenizer.ggml.add_bos_token", &v->add_bos)) ||
        (rc = load_bool(f, "tokenizer.ggml.add_eos_token", &v->add_eos)) ||
        (rc = load_bool(f, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix)))
        goto err;
    if (v->add_bos && v->bos < 0) v->add_bos = false;
    if (v->add_eos && v->eos < 0) v->add_eos = false;

    mark_control(v, f);
    if ((rc = build_special(v))) goto err;
    *out = v;
    return 0;
err:
    pf_vocab_free(v);
    return rc;
}

void pf_vocab_free(struct pf_vocab *v)
{
    if (!v) return;
    free(v->text);
    free(v->off);
    free(v->len);
    free(v->score);
    free(v->type);
    free(v->byte);
    free(v->slots);
    free(v->special);
    free(v->merges);
    pf_pretok_free(v->pretok);
    free(v);
}

/* ==== Accessors ==== */

int pf_vocab_n(const struct pf_vocab *v) { return v->n; }
int32_t pf_vocab_bos(const struct pf_vocab *v) { return v->bos; }
int32_t pf_vocab_eos(const struct pf_vocab *v) { return v->eos; }
int32_t pf_vocab_unk(const struct pf_vocab *v) { return v->unk; }
bool pf_vocab_add_bos(const struct pf_vocab *v) { return v->add_bos; }

int pf_vocab_type(const struct pf_vocab *v, int32_t token)
{
    return token >= 0 && token < v->n ? v->type[token] : PF_TOKEN_UNDEFINED;
}

const char *pf_vocab_text(const struct pf_vocab *v, int32_t token)
{
    return token >= 0 && token < v->n ? v->text + v->off[token] : NULL;
}

/* ==== Pieces ==== */

/* SentencePiece: as llama.cpp's token_to_piece with special = false: control and unknown tokens (and unused
 * or undefined ones) print nothing, user-defined tokens print their text, byte tokens their
 * byte, and normal tokens their text with every "▁" turned back into a space. */
int pf_vocab_piece(const struct pf_vocab *v, int32_t token, char *buf, int cap)
{
    if (token < 0 || token >= v->n) return pf_fail(PINFER_EINVAL, "token %d out of range", token);
    if (cap < 0 || (cap > 0 && !buf)) return pf_fail(PINFER_EINVAL, "bad piece buffer");
    if (v->kind == PF_VOCAB_BPE) return pf_bpe_piece(v, token, buf, cap);
    const char *s = v->text + v->off[token];
    size_t len = v->len[token];
    size_t n = 0;
    switch (v->type[token]) {
    case PF_TOKEN_BYTE:
        if (cap > 0) buf[0] = (char)v->byte[token];
        return 1;
    case PF_TOKEN_USER_DEFINED:
        if (cap > 0) memcpy(buf, s, len < (size_t)cap ? len : (size_t)cap);
        return (int)len;
    case PF_TOKEN_NORMAL:
        for (size_t i = 0; i < len; n++) {
            char c = s[i];
            if (len - i >= 3 && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
                c = ' ';
                i += 3;
            } else {
                i++;
            }
            if (n < (size_t)cap) buf[n] = c;
        }
        return (int)n;
    default:
        return 0;
    }
}
