/* Internal layout of struct pf_vocab, shared by vocab.c (loading, lookups, pieces) and spm.c
 * (tokenization). Nothing outside src/tokenizer/ includes this. */
#ifndef PF_TOKENIZER_VOCAB_IMPL_H
#define PF_TOKENIZER_VOCAB_IMPL_H

#include "tokenizer/vocab.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pf_vocab {
    int n;                  /* number of tokens */
    char *text;             /* all token texts, each followed by a NUL (texts may hold NULs too) */
    size_t *off;            /* (n) start of token i's text in `text` */
    uint32_t *len;          /* (n) byte length of token i's text */
    float *score;           /* (n) merge priority: higher merges first */
    uint8_t *type;          /* (n) enum pf_token_type */
    uint8_t *byte;          /* (n) value of a PF_TOKEN_BYTE token ("<0x41>" -> 0x41) */
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
     * llama.cpp orders them for matching verbatim in the text before the SPM merge
     * (user-defined always; control and unknown only when parse_special). */
    int32_t *special;
    int n_special;
};

/* Id of the token whose text is s[0..n), or -1. */
int32_t pf_vocab_find(const struct pf_vocab *v, const char *s, size_t n);

#endif
