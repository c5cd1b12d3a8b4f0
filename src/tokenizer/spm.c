/* SentencePiece (BPE-by-score) tokenization of one raw fragment (the text between special
 * tokens, tokenize.c), reproducing llama.cpp's llm_tokenizer_spm and the SPM branch of
 * llama_vocab::tokenize:
 *
 *   1. A raw fragment that is first or follows a special token gets a leading space when the
 *      vocabulary says add_space_prefix; then every ' ' becomes U+2581 "▁".
 *   2. The fragment is split into UTF-8 characters (a stray byte is its own symbol), and
 *      adjacent symbols whose concatenation is a token are merged, always the pair whose token
 *      has the highest score first (ties: the left-most pair), until no pair is a token.
 *   3. Each final symbol is its token; a single character that is not in the vocabulary falls
 *      back to one <0xNN> token per byte.
 *
 * The merge keeps the symbols in a linked list and the candidate pairs in a binary heap, so a
 * fragment of n bytes costs O(n log n). Stale heap entries (one side merged away since the pair
 * was pushed) are recognised by their byte size no longer matching and skipped, as llama.cpp does.
 *
 * llama.cpp also keeps a "rev_merge" map to split a final symbol that is not a token back into
 * its parts; every merge here only ever forms an existing token, so that path cannot be reached
 * and is left out. Where llama.cpp would throw (a byte with no <0xNN> token and no 1-byte token),
 * the whole character becomes the unknown token, as SentencePiece does without byte fallback. */
#include "tokenizer/vocab_impl.h"

#include "core/error.h"

#include <stdlib.h>
#include <string.h>

struct sym {
    int prev, next;        /* neighbours in the list, -1 at the ends */
    uint32_t off, n;       /* bytes [off, off+n) of the escaped fragment; n = 0 once merged away */
    int32_t tok;           /* token of a merged symbol; -1 for an original character */
};

struct bigram {
    int left, right;
    float score;
    uint32_t size;         /* bytes of left + right when pushed; stale if they differ now */
    int32_t tok;
};

struct pf_spm_scratch {
    char *esc;
    size_t esc_cap;
    struct sym *sym;
    size_t sym_cap;
    struct bigram *heap;
    size_t heap_n, heap_cap;
};

void pf_spm_scratch_free(struct pf_spm_scratch *sc)
{
    if (!sc) return;
    free(sc->esc);
    free(sc->sym);
    free(sc->heap);
    free(sc);
}

/* ==== Bigram heap (max-heap on score, then left-most) ==== */

static bool bigram_before(const struct bigram *a, const struct bigram *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void heap_push(struct pf_spm_scratch *sc, struct bigram b)
{
    /* capacity was reserved for the most pushes a fragment can make */
    size_t i = sc->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!bigram_before(&b, &sc->heap[p])) break;
        sc->heap[i] = sc->heap[p];
        i = p;
    }
    sc->heap[i] = b;
}

static struct bigram heap_pop(struct pf_spm_scratch *sc)
{
    struct bigram top = sc->heap[0], last = sc->heap[--sc->heap_n];
    size_t n = sc->heap_n, i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && bigram_before(&sc->heap[c + 1], &sc->heap[c])) c++;
        if (!bigram_before(&sc->heap[c], &last)) break;
        sc->heap[i] = sc->heap[c];
        i = c;
    }
    if (n) sc->heap[i] = last;
    return top;
}

/* ==== One raw fragment ==== */

static void try_bigram(const struct pf_vocab *v, struct pf_spm_scratch *sc, int left, int right)
{
    if (left < 0 || right < 0) return;
    const struct sym *l = &sc->sym[left], *r = &sc->sym[right];
    uint32_t size = l->n + r->n;
    if (size > v->max_len) return;
    /* the two symbols are adjacent in the escaped text, so their concatenation is in place */
    int32_t tok = pf_vocab_find(v, sc->esc + l->off, size);
    if (tok < 0) return;
    struct bigram b = { left, right, v->score[tok], size, tok };
    heap_push(sc, b);
}

/* Output for a final symbol: its token, else its bytes as byte tokens. */
static int emit_symbol(const struct pf_vocab *v, const struct pf_spm_scratch *sc, const struct sym *s,
                       struct pf_emit *e)
{
    const char *t = sc->esc + s->off;
    int32_t tok = s->tok >= 0 ? s->tok : pf_vocab_find(v, t, s->n);
    if (tok >= 0) {
        pf_emit_tok(e, tok);
        return 0;
    }
    bool all_bytes = true;
    for (uint32_t j = 0; j < s->n; j++) all_bytes &= v->byte_tok[(unsigned char)t[j]] >= 0;
    if (!all_bytes) {
        if (v->unk < 0)
            return pf_fail(PINFER_EFORMAT, "tokenize: byte 0x%02x has no token and the vocabulary "
                           "has no unknown token", (unsigned char)t[0]);
        pf_emit_tok(e, v->unk);
        return 0;
    }
    for (uint32_t j = 0; j < s->n; j++) pf_emit_tok(e, v->byte_tok[(unsigned char)t[j]]);
    return 0;
}

static size_t utf8_len(unsigned char c)
{
    /* by the high nibble of the lead byte, as llama.cpp's unicode_len_utf8: continuation and
     * invalid bytes count as one-byte characters */
    static const unsigned char len[16] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4 };
    return len[c >> 4];
}

static int tokenize_piece(const struct pf_vocab *v, struct pf_spm_scratch *sc, const char *raw,
                          size_t len, bool prefix, struct pf_emit *e)
{
    /* escape: optional leading space, then ' ' -> "▁" (3 bytes) */
    size_t n_esc = prefix ? 3 : 0;
    for (size_t i = 0; i < len; i++) n_esc += raw[i] == ' ' ? 3 : 1;
    int rc = pf_tok_reserve((void **)&sc->esc, &sc->esc_cap, n_esc, 1);
    if (rc) return rc;
    char *esc = sc->esc;
    size_t k = 0;
    if (prefix) { memcpy(esc, "\xe2\x96\x81", 3); k = 3; }
    for (size_t i = 0; i < len; i++) {
        if (raw[i] == ' ') { memcpy(esc + k, "\xe2\x96\x81", 3); k += 3; }
        else esc[k++] = raw[i];
    }

    /* symbols: one per UTF-8 character */
    if ((rc = pf_tok_reserve((void **)&sc->sym, &sc->sym_cap, n_esc, sizeof *sc->sym))) return rc;
    int n_sym = 0;
    for (size_t off = 0; off < n_esc; n_sym++) {
        size_t n = utf8_len((unsigned char)esc[off]);
        if (n > n_esc - off) n = n_esc - off;
        struct sym *s = &sc->sym[n_sym];
        s->prev = n_sym - 1;
        s->off = (uint32_t)off;
        s->n = (uint32_t)n;
        s->tok = -1;
        off += n;
        s->next = off == n_esc ? -1 : n_sym + 1;
    }
    if (n_sym == 0) return 0;

    /* each pop pushes at most two pairs, and there are at most n_sym - 1 merges */
    size_t heap_max = 3 * (size_t)n_sym;
    if ((rc = pf_tok_reserve((void **)&sc->heap, &sc->heap_cap, heap_max, sizeof *sc->heap))) return rc;
    sc->heap_n = 0;
    for (int i = 1; i < n_sym; i++) try_bigram(v, sc, i - 1, i);

    while (sc->heap_n) {
        struct bigram b = heap_pop(sc);
        struct sym *l = &sc->sym[b.left], *r = &sc->sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue;
        l->n += r->n;
        l->tok = b.tok;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sc->sym[r->next].prev = b.left;
        try_bigram(v, sc, l->prev, b.left);
        try_bigram(v, sc, b.left, l->next);
    }

    for (int i = 0; i >= 0; i = sc->sym[i].next)
        if ((rc = emit_symbol(v, sc, &sc->sym[i], e))) return rc;
    return 0;
}

/* A raw fragment in pieces of about PIECE bytes, each cut after a byte no merge can cross
 * (v->cut_after: a newline, in common vocabularies): the same tokens as the whole fragment in
 * one go, with scratch memory bounded by the piece instead of the text (about 80 bytes per
 * byte: symbols, the bigram heap, the escaped copy). A fragment without such bytes is one piece. */
#define PIECE (64u << 10)

int pf_spm_fragment(const struct pf_vocab *v, struct pf_spm_scratch **scp, const char *raw,
                    size_t len, bool prefix, struct pf_emit *e)
{
    struct pf_spm_scratch *sc = *scp;
    if (!sc) {
        if (!(sc = calloc(1, sizeof *sc))) return pf_fail(PINFER_ENOMEM, "tokenize: out of memory");
        *scp = sc;
    }
    size_t at = 0;
    while (at < len) {
        size_t end = len;
        if (len - at > PIECE) {
            size_t k = at + PIECE;
            while (k > at && !((unsigned char)raw[k - 1] < 128 && v->cut_after[(unsigned char)raw[k - 1]])) k--;
            if (k == at) { /* none in this piece: the first one after it */
                k = at + PIECE;
                while (k < len && !((unsigned char)raw[k - 1] < 128 && v->cut_after[(unsigned char)raw[k - 1]])) k++;
            }
            end = k;
        }
        int rc = tokenize_piece(v, sc, raw + at, end - at, prefix && at == 0, e);
        if (rc) return rc;
        at = end;
    }
    return 0;
}
