/* Byte-level BPE (tokenizer.ggml.model = "gpt2": GPT-2, Llama 3, Qwen, DeepSeek, Falcon,
 * StarCoder, MPT ...), reproducing llama.cpp's llm_tokenizer_bpe_session for one raw fragment
 * (the text between special tokens, tokenize.c):
 *
 *   1. The fragment is split into pre-tokens by the vocabulary's regexes (pretok.c).
 *   2. Each pre-token's bytes are symbols; a symbol's text is its bytes written in GPT-2's
 *      printable alphabet (byte 0x20 ' ' is "Ġ" U+0120, 0x0A is "Ċ" ...), which is how the
 *      vocabulary spells tokens. With ignore_merges (Llama 3), a pre-token that is a token as
 *      a whole is that token.
 *   3. Adjacent symbols named by a merge of tokenizer.ggml.merges are joined, the merge of
 *      lowest rank first (ties: the left-most pair), until no pair is a merge.
 *   4. Each final symbol is its token; one that is not a token (a merge whose result is not in
 *      the vocabulary, or a byte without a token) becomes the tokens of the single bytes of
 *      its text that are tokens, and nothing for the others, as llama.cpp does.
 *
 * Symbols carry token ids, so a merge is a hash look-up on (left id, right id) (vocab.c checks
 * that both halves of every merge are tokens, so a symbol that is not a token merges no
 * further, as in llama.cpp). The pairs wait in a binary heap; a pair whose symbols changed
 * since it was pushed is stale and skipped. A pre-token of n bytes costs O(n log n).
 *
 * Long texts are tokenized in pieces of about v->bpe_piece bytes cut after a newline between two
 * ASCII characters that are not whitespace, where every pre-tokenizer splits anyway (pretok.c):
 * the same tokens as the whole text, with scratch memory bounded by the piece. */
#include "tokenizer/pretok.h"
#include "tokenizer/vocab_impl.h"

#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pf_bpe_byte_map(uint16_t cp[256])
{
    int next = 256;
    for (int b = 0; b < 256; b++) {
        bool prints = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        cp[b] = (uint16_t)(prints ? b : next++);
    }
}

struct bsym {
    int prev, next;         /* neighbours in the list, -1 at the ends */
    uint32_t n;             /* bytes of the pre-token it covers; 0 once merged away */
    int32_t tok;            /* its token, -1 if its text is not one */
};

struct bpair {
    int left, right;
    int32_t rank, result;
    uint32_t left_n, right_n; /* the symbols' sizes when pushed: stale if either changed */
};

struct pf_bpe_scratch {
    struct pf_pretok_scratch *pt;
    struct bsym *sym;
    size_t sym_cap;
    struct bpair *heap;
    size_t heap_n, heap_cap;
    char *enc;              /* a pre-token in GPT-2's alphabet (ignore_merges look-up) */
    size_t enc_cap;
};

void pf_bpe_scratch_free(struct pf_bpe_scratch *sc)
{
    if (!sc) return;
    pf_pretok_scratch_free(sc->pt);
    free(sc->sym);
    free(sc->heap);
    free(sc->enc);
    free(sc);
}

/* ==== Pair heap (lowest rank first, then left-most) ==== */

static bool pair_before(const struct bpair *a, const struct bpair *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static void heap_push(struct pf_bpe_scratch *sc, struct bpair p)
{
    /* capacity was reserved for the most pushes a pre-token can make */
    size_t i = sc->heap_n++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!pair_before(&p, &sc->heap[up])) break;
        sc->heap[i] = sc->heap[up];
        i = up;
    }
    sc->heap[i] = p;
}

static struct bpair heap_pop(struct pf_bpe_scratch *sc)
{
    struct bpair top = sc->heap[0], last = sc->heap[--sc->heap_n];
    size_t n = sc->heap_n, i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && pair_before(&sc->heap[c + 1], &sc->heap[c])) c++;
        if (!pair_before(&sc->heap[c], &last)) break;
        sc->heap[i] = sc->heap[c];
        i = c;
    }
    if (n) sc->heap[i] = last;
    return top;
}

/* ==== One pre-token ==== */

static const struct pf_merge *merge_find(const struct pf_vocab *v, int32_t left, int32_t right)
{
    if (!v->merges) return NULL;
    size_t i = pf_merge_slot(left, right, v->merge_mask);
    for (;;) {
        const struct pf_merge *m = &v->merges[i];
        if (m->left < 0) return NULL;
        if (m->left == left && m->right == right) return m;
        i = (i + 1) & v->merge_mask;
    }
}

static void try_pair(const struct pf_vocab *v, struct pf_bpe_scratch *sc, int left, int right)
{
    if (left < 0 || right < 0) return;
    const struct bsym *l = &sc->sym[left], *r = &sc->sym[right];
    if (l->tok < 0 || r->tok < 0) return;
    const struct pf_merge *m = merge_find(v, l->tok, r->tok);
    if (!m) return;
    heap_push(sc, (struct bpair){ left, right, m->rank, m->result, l->n, r->n });
}

/* The tokens of a symbol that is not a token: those of the single bytes of its text. */
static void emit_fallback(const struct pf_vocab *v, const unsigned char *w, uint32_t n, struct pf_emit *e)
{
    for (uint32_t i = 0; i < n; i++) {
        char u[4];
        size_t k = pf_utf8_put(v->byte_cp[w[i]], u);
        for (size_t j = 0; j < k; j++) {
            int32_t id = v->byte_unit[(unsigned char)u[j]];
            if (id >= 0) pf_emit_tok(e, id);
        }
    }
}

struct word_ctx {
    const struct pf_vocab *v;
    struct pf_bpe_scratch *sc;
    struct pf_emit *e;
};

static int bpe_word(void *arg, const char *word, size_t n)
{
    const struct word_ctx *c = arg;
    const struct pf_vocab *v = c->v;
    struct pf_bpe_scratch *sc = c->sc;
    const unsigned char *w = (const unsigned char *)word;
    int rc;

    if (v->ignore_merges) {
        size_t enc_n = 0;
        for (size_t i = 0; i < n && enc_n <= v->max_len; i++) enc_n += v->byte_cp[w[i]] < 0x80 ? 1 : 2;
        if (enc_n <= v->max_len) {
            if ((rc = pf_tok_reserve((void **)&sc->enc, &sc->enc_cap, enc_n, 1))) return rc;
            size_t k = 0;
            for (size_t i = 0; i < n; i++) k += pf_utf8_put(v->byte_cp[w[i]], sc->enc + k);
            int32_t id = pf_vocab_find(v, sc->enc, k);
            if (id >= 0) {
                pf_emit_tok(c->e, id);
                return 0;
            }
        }
    }

    if (n > (size_t)INT32_MAX / 4) return pf_fail(PINFER_ERANGE, "tokenize: pre-token too long");
    if ((rc = pf_tok_reserve((void **)&sc->sym, &sc->sym_cap, n, sizeof *sc->sym))) return rc;
    /* each merge pushes at most two pairs, and there are at most n - 1 merges */
    if ((rc = pf_tok_reserve((void **)&sc->heap, &sc->heap_cap, 3 * n, sizeof *sc->heap))) return rc;
    int ns = (int)n;
    for (int i = 0; i < ns; i++)
        sc->sym[i] = (struct bsym){ i - 1, i + 1 < ns ? i + 1 : -1, 1, v->byte_sym[w[i]] };
    sc->heap_n = 0;
    for (int i = 1; i < ns; i++) try_pair(v, sc, i - 1, i);

    while (sc->heap_n) {
        struct bpair p = heap_pop(sc);
        struct bsym *l = &sc->sym[p.left], *r = &sc->sym[p.right];
        if (l->n != p.left_n || r->n != p.right_n || r->n == 0) continue;
        l->n += r->n;
        l->tok = p.result;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sc->sym[r->next].prev = p.left;
        try_pair(v, sc, l->prev, p.left);
        try_pair(v, sc, p.left, l->next);
    }

    /* symbols cover the pre-token in order, so a symbol's bytes start where the last ended */
    size_t off = 0;
    for (int i = 0; i >= 0; i = sc->sym[i].next) {
        const struct bsym *s = &sc->sym[i];
        if (s->tok >= 0) pf_emit_tok(c->e, s->tok);
        else emit_fallback(v, w + off, s->n, c->e);
        off += s->n;
    }
    return 0;
}

/* ==== A raw fragment, in pieces ==== */

static bool ascii_solid(unsigned char c)
{
    return c < 0x80 && c != ' ' && !(c >= '\t' && c <= '\r');
}

/* Where the piece starting at `at` ends: after the last "Y\nX" (see the top of the file) within
 * v->bpe_piece bytes, else the first one after, else the end of the text. */
static size_t piece_end(const struct pf_vocab *v, const unsigned char *t, size_t len, size_t at)
{
    if (len - at <= v->bpe_piece) return len;
    size_t lim = at + v->bpe_piece;
    for (size_t k = lim; k >= at + 2; k--) /* cut before t[k] */
        if (t[k - 1] == '\n' && ascii_solid(t[k - 2]) && ascii_solid(t[k])) return k;
    for (size_t k = lim + 1; k < len; k++)
        if (t[k - 1] == '\n' && ascii_solid(t[k - 2]) && ascii_solid(t[k])) return k;
    return len;
}

int pf_bpe_fragment(const struct pf_vocab *v, struct pf_bpe_scratch **scp, const char *raw,
                    size_t len, struct pf_emit *e)
{
    struct pf_bpe_scratch *sc = *scp;
    if (!sc) {
        if (!(sc = calloc(1, sizeof *sc))) return pf_fail(PINFER_ENOMEM, "tokenize: out of memory");
        *scp = sc;
    }
    struct word_ctx c = { v, sc, e };
    for (size_t at = 0; at < len;) {
        size_t end = piece_end(v, (const unsigned char *)raw, len, at);
        int rc = pf_pretok_split(v->pretok, &sc->pt, raw + at, end - at, bpe_word, &c);
        if (rc) return rc;
        at = end;
    }
    return 0;
}

/* ==== Pieces ==== */

struct sink {
    char *buf;
    size_t cap, n;
};

static void put(struct sink *s, const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++, s->n++)
        if (s->n < s->cap) s->buf[s->n] = ((const char *)p)[i];
}

/* As llama.cpp's token_to_piece for BPE with special = false: control and unknown tokens (and
 * byte, unused or undefined ones) print nothing, user-defined tokens their text, and normal
 * tokens their text read back from GPT-2's alphabet to bytes. A character outside that
 * alphabet prints as llama.cpp's llama_decode_text prints it: "[UNK_BYTE_0x" + its UTF-8 in
 * hex + the token's whole text + "]". */
int pf_bpe_piece(const struct pf_vocab *v, int32_t token, char *buf, int cap)
{
    const char *s = v->text + v->off[token];
    size_t len = v->len[token];
    struct sink out = { buf, (size_t)cap, 0 };
    switch (v->type[token]) {
    case PF_TOKEN_USER_DEFINED:
        put(&out, s, len);
        break;
    case PF_TOKEN_NORMAL:
        for (size_t i = 0; i < len;) {
            size_t k;
            uint32_t cp = pf_utf8_next((const unsigned char *)s + i, len - i, &k);
            i += k;
            if (cp < sizeof v->cp_byte / sizeof *v->cp_byte && v->cp_byte[cp] >= 0) {
                unsigned char b = (unsigned char)v->cp_byte[cp];
                put(&out, &b, 1);
                continue;
            }
            char u[4], hex[3];
            size_t un = pf_utf8_put(cp, u);
            put(&out, "[UNK_BYTE_0x", 12);
            for (size_t j = 0; j < un; j++) {
                snprintf(hex, sizeof hex, "%02x", (unsigned char)u[j]);
                put(&out, hex, 2);
            }
            put(&out, s, len);
            put(&out, "]", 1);
        }
        break;
    default:
        break;
    }
    if (out.n > (size_t)INT32_MAX) return pf_fail(PINFER_ERANGE, "piece of token %d too long", token);
    return (int)out.n;
}
