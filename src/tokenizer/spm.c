/* SentencePiece (BPE-by-score) tokenization, reproducing llama.cpp's llm_tokenizer_spm and the
 * SPM branch of llama_vocab::tokenize:
 *
 *   1. The text is split at verbatim occurrences of user-defined tokens (and, with
 *      parse_special, control/unknown tokens), longest token text first. Those become their
 *      token directly; the raw fragments in between are tokenized one by one.
 *   2. A raw fragment that is first or follows a special token gets a leading space when the
 *      vocabulary says add_space_prefix; then every ' ' becomes U+2581 "▁".
 *   3. The fragment is split into UTF-8 characters (a stray byte is its own symbol), and
 *      adjacent symbols whose concatenation is a token are merged, always the pair whose token
 *      has the highest score first (ties: the left-most pair), until no pair is a token.
 *   4. Each final symbol is its token; a single character that is not in the vocabulary falls
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

#include "core/checked.h"
#include "core/error.h"

#include <limits.h>
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

struct frag {
    size_t off, len;
    int32_t tok;           /* -1: raw text to tokenize */
};

struct scratch {
    char *esc;
    size_t esc_cap;
    struct sym *sym;
    size_t sym_cap;
    struct bigram *heap;
    size_t heap_n, heap_cap;
    struct frag *frags[2];
    size_t frag_cap[2];
};

struct emit {
    int32_t *out;
    int cap;
    size_t n;              /* ids produced so far (may exceed cap) */
};

static void emit_tok(struct emit *e, int32_t id)
{
    if (e->n < (size_t)e->cap) e->out[e->n] = id;
    e->n++;
}

/* Grows *p to hold n elements of size sz. */
static int reserve(void **p, size_t *cap, size_t n, size_t sz)
{
    if (n <= *cap) return 0;
    size_t c = *cap ? *cap : 16, bytes;
    while (c < n) c *= 2;
    if (ck_mul(c, sz, &bytes)) return pf_fail(PINFER_ENOMEM, "tokenize: text too large");
    void *q = realloc(*p, bytes);
    if (!q) return pf_fail(PINFER_ENOMEM, "tokenize: out of memory");
    *p = q;
    *cap = c;
    return 0;
}

/* ==== Bigram heap (max-heap on score, then left-most) ==== */

static bool bigram_before(const struct bigram *a, const struct bigram *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void heap_push(struct scratch *sc, struct bigram b)
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

static struct bigram heap_pop(struct scratch *sc)
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

static void try_bigram(const struct pf_vocab *v, struct scratch *sc, int left, int right)
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
static int emit_symbol(const struct pf_vocab *v, const struct scratch *sc, const struct sym *s,
                       struct emit *e)
{
    const char *t = sc->esc + s->off;
    int32_t tok = s->tok >= 0 ? s->tok : pf_vocab_find(v, t, s->n);
    if (tok >= 0) {
        emit_tok(e, tok);
        return 0;
    }
    bool all_bytes = true;
    for (uint32_t j = 0; j < s->n; j++) all_bytes &= v->byte_tok[(unsigned char)t[j]] >= 0;
    if (!all_bytes) {
        if (v->unk < 0)
            return pf_fail(PINFER_EFORMAT, "tokenize: byte 0x%02x has no token and the vocabulary "
                           "has no unknown token", (unsigned char)t[0]);
        emit_tok(e, v->unk);
        return 0;
    }
    for (uint32_t j = 0; j < s->n; j++) emit_tok(e, v->byte_tok[(unsigned char)t[j]]);
    return 0;
}

static size_t utf8_len(unsigned char c)
{
    /* by the high nibble of the lead byte, as llama.cpp's unicode_len_utf8: continuation and
     * invalid bytes count as one-byte characters */
    static const unsigned char len[16] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4 };
    return len[c >> 4];
}

static int tokenize_piece(const struct pf_vocab *v, struct scratch *sc, const char *raw,
                          size_t len, bool prefix, struct emit *e)
{
    /* escape: optional leading space, then ' ' -> "▁" (3 bytes) */
    size_t n_esc = prefix ? 3 : 0;
    for (size_t i = 0; i < len; i++) n_esc += raw[i] == ' ' ? 3 : 1;
    int rc = reserve((void **)&sc->esc, &sc->esc_cap, n_esc, 1);
    if (rc) return rc;
    char *esc = sc->esc;
    size_t k = 0;
    if (prefix) { memcpy(esc, "\xe2\x96\x81", 3); k = 3; }
    for (size_t i = 0; i < len; i++) {
        if (raw[i] == ' ') { memcpy(esc + k, "\xe2\x96\x81", 3); k += 3; }
        else esc[k++] = raw[i];
    }

    /* symbols: one per UTF-8 character */
    if ((rc = reserve((void **)&sc->sym, &sc->sym_cap, n_esc, sizeof *sc->sym))) return rc;
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
    if ((rc = reserve((void **)&sc->heap, &sc->heap_cap, heap_max, sizeof *sc->heap))) return rc;
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

static int tokenize_fragment(const struct pf_vocab *v, struct scratch *sc, const char *raw,
                             size_t len, bool prefix, struct emit *e)
{
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

/* ==== Special-token partition ==== */

/* Splits the raw fragments of sc->frags[0] (n of them, *n updated) at every occurrence of
 * token id's text. */
static int split_at(const struct pf_vocab *v, struct scratch *sc, const char *text, size_t *n,
                    int32_t id)
{
    const char *st = v->text + v->off[id];
    size_t sl = v->len[id], m = 0;
    struct frag *in = sc->frags[0];
    for (size_t i = 0; i < *n; i++) {
        struct frag f = in[i];
        /* at most 2 * occurrences + 1 pieces, and the occurrences do not overlap */
        size_t need = m + (f.tok < 0 && f.len >= sl ? 2 * (f.len / sl) + 1 : 1);
        int rc = reserve((void **)&sc->frags[1], &sc->frag_cap[1], need, sizeof *sc->frags[1]);
        if (rc) return rc;
        struct frag *out = sc->frags[1];
        if (f.tok >= 0 || f.len < sl) {
            out[m++] = f;
            continue;
        }
        size_t pos = f.off, end = f.off + f.len;
        const char *hit;
        while (end - pos >= sl && (hit = memmem(text + pos, end - pos, st, sl)) != NULL) {
            size_t at = (size_t)(hit - text);
            if (at > pos) out[m++] = (struct frag){ pos, at - pos, -1 };
            out[m++] = (struct frag){ at, sl, id };
            pos = at + sl;
        }
        if (pos < end) out[m++] = (struct frag){ pos, end - pos, -1 };
    }
    /* swap buffers: the result becomes the input of the next token */
    struct frag *t = sc->frags[0];
    size_t tc = sc->frag_cap[0];
    sc->frags[0] = sc->frags[1];
    sc->frag_cap[0] = sc->frag_cap[1];
    sc->frags[1] = t;
    sc->frag_cap[1] = tc;
    *n = m;
    return 0;
}

/* ==== Entry points ==== */

int pf_vocab_tokenize_ex(const struct pf_vocab *v, const char *text, size_t len, bool add_bos,
                         bool parse_special, int32_t *out, int cap)
{
    if (!v || (len && !text) || cap < 0 || (cap > 0 && !out))
        return pf_fail(PINFER_EINVAL, "tokenize: bad arguments");
    if (len > PF_VOCAB_MAX_TEXT)
        return pf_fail(PINFER_ERANGE, "tokenize: text of %zu bytes is too long (cap %u)", len,
                       PF_VOCAB_MAX_TEXT);

    struct scratch sc = { 0 };
    struct emit e = { out, cap, 0 };
    size_t n_frag = 0;
    int rc = 0;
    if (len) {
        if ((rc = reserve((void **)&sc.frags[0], &sc.frag_cap[0], 1, sizeof *sc.frags[0])))
            goto done;
        sc.frags[0][0] = (struct frag){ 0, len, -1 };
        n_frag = 1;
        for (int i = 0; i < v->n_special; i++) {
            int32_t id = v->special[i];
            if (!parse_special && v->type[id] != PF_TOKEN_USER_DEFINED) continue;
            if ((rc = split_at(v, &sc, text, &n_frag, id))) goto done;
        }
    }

    /* OG SentencePiece: "" with add_special gives [BOS], without it [] */
    bool add_special = add_bos;
    if (add_special && v->add_bos) emit_tok(&e, v->bos);
    bool prev_special = true;
    for (size_t i = 0; i < n_frag; i++) {
        const struct frag *f = &sc.frags[0][i];
        if (f->tok >= 0) {
            emit_tok(&e, f->tok);
            prev_special = true;
            continue;
        }
        rc = tokenize_fragment(v, &sc, text + f->off, f->len, v->add_space_prefix && prev_special, &e);
        if (rc) goto done;
        prev_special = false;
    }
    if (add_special && v->add_eos) emit_tok(&e, v->eos);

    if (e.n > INT_MAX) rc = pf_fail(PINFER_ERANGE, "tokenize: %zu tokens is too many", e.n);
    else rc = (int)e.n;
done:
    free(sc.esc);
    free(sc.sym);
    free(sc.heap);
    free(sc.frags[0]);
    free(sc.frags[1]);
    return rc;
}

int pf_vocab_tokenize(const struct pf_vocab *v, const char *text, size_t len, bool add_bos,
                      int32_t *out, int cap)
{
    return pf_vocab_tokenize_ex(v, text, len, add_bos, false, out, cap);
}
