/* The tokenize entry points, for both kinds of vocabulary, as llama.cpp's
 * llama_vocab::impl::tokenize:
 *
 *   1. The text is split at verbatim occurrences of user-defined tokens (and, with
 *      parse_special, control/unknown tokens), longest token text first (tokenizer_st_partition).
 *      Those become their token directly; the raw fragments in between are tokenized one by one,
 *      by spm.c (SentencePiece) or bpe.c (byte-level BPE).
 *   2. With add_special, BOS first when the vocabulary adds one, EOS last when it adds one. */
#include "tokenizer/vocab_impl.h"

#include "core/checked.h"
#include "core/error.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

int pf_tok_reserve(void **p, size_t *cap, size_t n, size_t sz)
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

/* ==== Special-token partition ==== */

struct frag {
    size_t off, len;
    int32_t tok;           /* -1: raw text to tokenize */
};

struct frags {
    struct frag *f[2];     /* the current list and the one being built */
    size_t cap[2];
};

/* Splits the raw fragments of fr->f[0] (n of them, *n updated) at every occurrence of token
 * id's text. */
static int split_at(const struct pf_vocab *v, struct frags *fr, const char *text, size_t *n, int32_t id)
{
    const char *st = v->text + v->off[id];
    size_t sl = v->len[id], m = 0;
    struct frag *in = fr->f[0];
    for (size_t i = 0; i < *n; i++) {
        struct frag f = in[i];
        /* at most 2 * occurrences + 1 pieces, and the occurrences do not overlap */
        size_t need = m + (f.tok < 0 && f.len >= sl ? 2 * (f.len / sl) + 1 : 1);
        int rc = pf_tok_reserve((void **)&fr->f[1], &fr->cap[1], need, sizeof *fr->f[1]);
        if (rc) return rc;
        struct frag *out = fr->f[1];
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
    struct frag *t = fr->f[0];
    size_t tc = fr->cap[0];
    fr->f[0] = fr->f[1];
    fr->cap[0] = fr->cap[1];
    fr->f[1] = t;
    fr->cap[1] = tc;
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

    struct frags fr = { { NULL, NULL }, { 0, 0 } };
    struct pf_spm_scratch *spm = NULL;
    struct pf_bpe_scratch *bpe = NULL;
    struct pf_emit e = { out, cap, 0 };
    size_t n_frag = 0;
    int rc = 0;
    if (len) {
        if ((rc = pf_tok_reserve((void **)&fr.f[0], &fr.cap[0], 1, sizeof *fr.f[0]))) goto done;
        fr.f[0][0] = (struct frag){ 0, len, -1 };
        n_frag = 1;
        for (int i = 0; i < v->n_special; i++) {
            int32_t id = v->special[i];
            if (!parse_special && v->type[id] != PF_TOKEN_USER_DEFINED) continue;
            if ((rc = split_at(v, &fr, text, &n_frag, id))) goto done;
        }
    }

    /* add_bos is really "add special" (llama.cpp's add_special). OG SentencePiece: "" with it
     * gives [BOS], without it [] */
    bool add_special = add_bos;
    if (add_special && v->add_bos) pf_emit_tok(&e, v->bos);
    bool prev_special = true;
    for (size_t i = 0; i < n_frag; i++) {
        const struct frag *f = &fr.f[0][i];
        if (f->tok >= 0) {
            pf_emit_tok(&e, f->tok);
            prev_special = true;
            continue;
        }
        if (v->kind == PF_VOCAB_BPE)
            rc = pf_bpe_fragment(v, &bpe, text + f->off, f->len, &e);
        else
            rc = pf_spm_fragment(v, &spm, text + f->off, f->len, v->add_space_prefix && prev_special, &e);
        if (rc) goto done;
        prev_special = false;
    }
    if (add_special && v->add_eos) pf_emit_tok(&e, v->eos);

    if (e.n > INT_MAX) rc = pf_fail(PINFER_ERANGE, "tokenize: %zu tokens is too many", e.n);
    else rc = (int)e.n;
done:
    pf_spm_scratch_free(spm);
    pf_bpe_scratch_free(bpe);
    free(fr.f[0]);
    free(fr.f[1]);
    return rc;
}

int pf_vocab_tokenize(const struct pf_vocab *v, const char *text, size_t len, bool add_bos,
                      int32_t *out, int cap)
{
    return pf_vocab_tokenize_ex(v, text, len, add_bos, false, out, cap);
}
