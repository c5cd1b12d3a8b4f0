/* A vocabulary and its tokenizer, built from a GGUF's tokenizer.ggml.* keys: model ("llama":
 * SentencePiece; "gpt2": byte-level BPE), tokens (string array), scores (f32 array), token_type
 * (i32 array: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte), for BPE merges
 * (string array "A B") and pre (the pre-tokenizer's name), bos/eos/unknown/padding ids,
 * add_bos_token, add_eos_token, add_space_prefix. Tokenization follows llama.cpp:
 *   - SentencePiece (llm_tokenizer_spm): spaces become U+2581 "▁", a leading "▁" is added when
 *     add_space_prefix (default true), symbols are merged greedily by best score, and pieces not
 *     in the vocabulary fall back to <0xNN> tokens (spm.c).
 *   - byte-level BPE (llm_tokenizer_bpe): the text is split by the pre-tokenizer's regexes
 *     (pretok.c, PCRE2), each pre-token's bytes are spelt in GPT-2's printable alphabet and
 *     merged by rank (bpe.c). docs/tokenizer.md. */
#ifndef PF_TOKENIZER_VOCAB_H
#define PF_TOKENIZER_VOCAB_H

#include "gguf/gguf.h"

#include <stdbool.h>
#include <stdint.h>

struct pf_vocab;

/* tokenizer.ggml.token_type values (llama.cpp's LLAMA_TOKEN_TYPE_*); anything else loads as
 * UNDEFINED, as llama.cpp does. */
enum pf_token_type {
    PF_TOKEN_UNDEFINED = 0, PF_TOKEN_NORMAL = 1, PF_TOKEN_UNKNOWN = 2, PF_TOKEN_CONTROL = 3,
    PF_TOKEN_USER_DEFINED = 4, PF_TOKEN_UNUSED = 5, PF_TOKEN_BYTE = 6,
};

/* Caps on what a file may declare (checked at load, PINFER_EFORMAT beyond them). */
#define PF_VOCAB_MAX_TOKENS (1 << 24)
#define PF_VOCAB_MAX_TOKEN_LEN 1024
#define PF_VOCAB_MAX_MERGES (1 << 24)
/* Longest text pf_vocab_tokenize accepts, in bytes (PINFER_ERANGE beyond it). */
#define PF_VOCAB_MAX_TEXT PINFER_MAX_TEXT_BYTES

/* Builds a vocabulary from f (copies everything it needs; f may be closed afterwards).
 * PINFER_EUNSUPPORTED if tokenizer.ggml.model is neither "llama" nor "gpt2", or names a
 * pre-tokenizer this build does not know; PINFER_EFORMAT for malformed keys (a merge that is
 * not two tokens separated by a space ...). *out is owned by the caller. */
int pf_vocab_load(struct pf_vocab **out, const struct gguf_file *f);
void pf_vocab_free(struct pf_vocab *v);

int pf_vocab_n(const struct pf_vocab *v);
int32_t pf_vocab_bos(const struct pf_vocab *v);
int32_t pf_vocab_eos(const struct pf_vocab *v);
bool pf_vocab_add_bos(const struct pf_vocab *v);
int32_t pf_vocab_unk(const struct pf_vocab *v); /* -1 if none */
/* enum pf_token_type of a token; PF_TOKEN_UNDEFINED if out of range. */
int pf_vocab_type(const struct pf_vocab *v, int32_t token);

/* Same contract as pinfer_tokenize (add_bos is honoured only when the vocab adds BOS). As in
 * llama.cpp, add_bos is really "add special": it also appends EOS when the vocab says
 * add_eos_token. Control tokens written in the text ("<s>") are not recognised: they are
 * tokenized as plain text (llama.cpp's parse_special = false); user-defined tokens are. */
int pf_vocab_tokenize(const struct pf_vocab *v, const char *text, size_t len, bool add_bos,
                      int32_t *out, int cap);
/* pf_vocab_tokenize with parse_special: when true, control and unknown tokens written in the
 * text ("<s>", "</s>", "<unk>") become those tokens, as llama.cpp's parse_special = true. */
int pf_vocab_tokenize_ex(const struct pf_vocab *v, const char *text, size_t len, bool add_bos,
                         bool parse_special, int32_t *out, int cap);
/* Same contract as pinfer_token_to_piece (BPE: the token's bytes, GPT-2's alphabet read back). */
int pf_vocab_piece(const struct pf_vocab *v, int32_t token, char *buf, int cap);
/* Raw piece text as stored (e.g. "▁the", "<0x0A>"); NULL if out of range. */
const char *pf_vocab_text(const struct pf_vocab *v, int32_t token);

#endif
