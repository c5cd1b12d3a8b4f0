/* Internal layout of struct pf_vocab, shared by vocab.c (loading, lookups, pieces), tokenize.c
 * (the entry points and the special-token partition), spm.c (SentencePiece), bpe.c (byte-level
 * BPE) and pretok.c (BPE pre-tokenizer regexes). Nothing outside src/tokenizer/ includes this. */
#ifndef PF_TOKENIZER_VOCAB_IMPL_H
#define PF_TOKENIZER_VOCAB_IMPL_H

#include "tokenizer/vocab.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum pf_vocab_kind {
    PF_VOCAB_SPM = 0,       /* tokenizer.ggml.model = "llama" */
    PF_VOCAB_BPE = 1,       /* tokenizer.ggml.model = "gpt2": byte-level BPE */
};

struct pf_pretok;           /* pretok.c: the compiled regexes of one pre-tokenizer */

/* One merge "A B" of tokenizer.ggml.merges: tokens left A and right B become token result
 * (A's text followed by B's; -1 if that text is not a token, and then it merges no further).
 * Lower rank (the merge's index in the list) merges first. */
struct pf_merge {
    int32_t left, right;    /* -1 = empty slot */
    int32_t rank;
    int32_t result;
};

struct pf_vocab {
    enum pf_vocab_kind kind;
    int n;                  /* number of tokens */
    char *text;             /* all token texts, each followed by a NUL (texts may hold NULs too) */
    size_t *off;            /* (n) start of token i's text in `text` */
    uint32_t *len;          /* (n) byte length of token i's text */
    float *score;           /* (n) merge priority: higher merges first (SPM only) */
    uint8_t *type;          /* (n) enum pf_token_type */
    uint8_t *byte;          /* (n) value of a PF_TOKEN_BYTE token ("<0x41>" -> 0x41; SPM only) */
    uint32_t max_len;       /* longest token text: longer pairs need no lookup */

    /* Open-addressing hash of text -> id: `mask + 1` slots (a power of two, at least twice n so
     * probes stay short), -1 = empty, linear probing. */
    int32_t *slots;
    size_t mask;

    /* ASCII bytes that no token of two or more bytes contains: no merge can join such a byte
     * to a neighbour, so the text can be tokenized in pieces cut after it, exactly as whole
     * (spm.c: bounded memory for long texts) */
    bool cut_after[128];

    int32_t byte_tok[256];  /* token for a raw byte ("<0xNN>", else the 1-byte text), -1 if none */
    int32_t bos, eos, unk, pad; /* -1 when absent */
    bool add_bos, add_eos, add_space_prefix;

    /* Control, unknown and user-defined tokens, longest text first (ties: lower id first), as
     * llama.cpp orders them for matching verbatim in the text before the SPM merge or the BPE
     * pre-tokenizer (user-defined always; control and unknown only when parse_special). */
    int32_t *special;
    int n_special;

    /* ---- byte-level BPE only ---- */
    struct pf_merge *merges; /* open-addressing hash on (left, right): merge_mask + 1 slots */
    size_t merge_mask;
    int n_merges;
    struct pf_pretok *pretok;
    bool ignore_merges;      /* a pre-token that is a token as a whole is that token (llama3) */
    uint16_t byte_cp[256];   /* GPT-2's byte -> printable code point (bpe.c pf_bpe_byte_map) */
    int16_t cp_byte[324];    /* and back: code point (< 256 + 68) -> byte, -1 if none */
    int32_t byte_sym[256];   /* token whose text is byte b's code point, -1 if none */
    int32_t byte_unit[256];  /* token whose text is the single byte b, -1 if none (fallback) */
    /* Texts are tokenized in pieces of about this many bytes cut where every pre-tokenizer
     * splits anyway (bpe.c); tests shrink it to check that pieces change nothing. */
    size_t bpe_piece;
};

/* Id of the token whose text is s[0..n), or -1. */
int32_t pf_vocab_find(const struct pf_vocab *v, const char *s, size_t n);

/* Slot of the merge (left, right) in v->merges: both ids >= 0. */
static inline size_t pf_merge_slot(int32_t left, int32_t right, size_t mask)
{
    uint64_t h = ((uint64_t)(uint32_t)left << 32 | (uint32_t)right) * 0x9E3779B97F4A7C15ULL;
    return (size_t)(h ^ (h >> 31)) & mask;
}

/* ==== Tokenizer internals (tokenize.c, spm.c, bpe.c) ==== */

/* Ids produced by one tokenize call: written while they fit, counted always. */
struct pf_emit {
    int32_t *out;
    int cap;
    size_t n;
};

static inline void pf_emit_tok(struct pf_emit *e, int32_t id)
{
    if (e->n < (size_t)e->cap) e->out[e->n] = id;
    e->n++;
}

/* Grows *p (an array of *cap elements of sz bytes) to hold at least n: 0 or PINFER_ENOMEM. */
int pf_tok_reserve(void **p, size_t *cap, size_t n, size_t sz);

/* Scratch memory of one tokenize call, kept across its fragments; each tokenizer frees its own. */
struct pf_spm_scratch;
struct pf_bpe_scratch;

/* Tokenizes one raw fragment (text between special tokens) into e. prefix: SentencePiece's
 * leading space (add_space_prefix and the fragment first or after a special token). */
int pf_spm_fragment(const struct pf_vocab *v, struct pf_spm_scratch **sc, const char *raw,
                    size_t len, bool prefix, struct pf_emit *e);
void pf_spm_scratch_free(struct pf_spm_scratch *sc);
int pf_bpe_fragment(const struct pf_vocab *v, struct pf_bpe_scratch **sc, const char *raw,
                    size_t len, struct pf_emit *e);
void pf_bpe_scratch_free(struct pf_bpe_scratch *sc);

/* GPT-2's byte -> code point map (bytes that print as themselves keep their value, the others
 * get 256, 257, ... in byte order). */
void pf_bpe_byte_map(uint16_t cp[256]);
/* pf_vocab_piece for a BPE vocabulary (bpe.c). */
int pf_bpe_piece(const struct pf_vocab *v, int32_t token, char *buf, int cap);

#endif
