/* The pre-tokenizer of a byte-level BPE vocabulary: the regexes llama.cpp applies for each
 * tokenizer.ggml.pre value, run with PCRE2 (pretok.c says why and how it matches llama.cpp). */
#ifndef PF_TOKENIZER_PRETOK_H
#define PF_TOKENIZER_PRETOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pf_pretok;
struct pf_pretok_scratch;

/* What a pre-tokenizer name implies for the vocabulary, as llama.cpp's loader sets it before
 * the metadata may override add_bos. */
struct pf_pretok_flags {
    bool ignore_merges;     /* a pre-token that is a token as a whole is that token */
    bool add_bos;           /* default of tokenizer.ggml.add_bos_token */
    bool no_bos;            /* no default BOS id (chatglm) */
};

/* Compiles the regexes of pre-tokenizer `name` (tokenizer.ggml.pre; NULL = absent, which is
 * "default" as in llama.cpp). PINFER_EUNSUPPORTED naming it when unknown. *out is owned by the
 * caller (pf_pretok_free); *flags is filled in. */
int pf_pretok_new(struct pf_pretok **out, const char *name, struct pf_pretok_flags *flags);
void pf_pretok_free(struct pf_pretok *p);
/* The name it was made for ("default" when absent). */
const char *pf_pretok_name(const struct pf_pretok *p);

/* Called for each pre-token in order: its UTF-8 bytes (invalid input already replaced the way
 * llama.cpp does). Returns 0 or a negative code, which stops the split. */
typedef int (*pf_pretok_word_fn)(void *arg, const char *word, size_t n);

/* Splits text[0..len) into pre-tokens and calls fn for each. *sc is scratch memory made on
 * first use and kept for the next call (pf_pretok_scratch_free). 0 or a negative code: fn's,
 * PINFER_ENOMEM, or PINFER_ERANGE when a regex hits PCRE2's match limit. */
int pf_pretok_split(const struct pf_pretok *p, struct pf_pretok_scratch **sc, const char *text,
                    size_t len, pf_pretok_word_fn fn, void *arg);
void pf_pretok_scratch_free(struct pf_pretok_scratch *sc);

/* Code point of the UTF-8 character at s[0..n) (n >= 1) decoded as llama.cpp's
 * unicode_cpts_from_utf8 does: a sequence with a bad lead byte, missing or bad continuation
 * bytes, or a value above U+10FFFF is U+FFFD for its first byte alone (*len = 1); overlong
 * forms and surrogates decode to their value. *len is the bytes consumed. */
uint32_t pf_utf8_next(const unsigned char *s, size_t n, size_t *len);
/* Writes cp as UTF-8 (1 to 4 bytes, cp <= 0x10FFFF; surrogates too) and returns the length. */
size_t pf_utf8_put(uint32_t cp, char *out);

#endif
