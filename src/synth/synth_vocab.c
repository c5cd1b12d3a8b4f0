/* The generated SentencePiece-style vocabulary of a synthetic model.
 *
 * Layout, as in Llama's tokenizer.model: <unk> <s> </s>, the 256 byte-fallback tokens <0x00> ..
 * <0xFF>, then pieces in merge order with descending scores, single characters last. Pieces
 * come from byte-pair merges learned over a short built-in English text (so common words
 * tokenize into few pieces and pinfer's SPM tokenizer round-trips any text), then, when the
 * requested size is larger, from longer pieces made by joining learned ones. Every string is
 * unique; the result depends on the size only. */
#include "synth/synth_internal.h"

#include "core/error.h"
#include "core/rng.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPACE "\xe2\x96\x81" /* U+2581, SentencePiece's word-start marker */

/* Written for this file: plain English with the most frequent words of the language. */
static const char corpus[] =
    "Once upon a time there was a little girl who lived in a small house near the river . "
    "Every morning she would walk to the water and look at the birds . One day she saw a big "
    "boat with a red sail , and a man was standing on it . He said that he had come from a far "
    "away place where the trees were tall and the people were kind . The girl wanted to go with "
    "him , but her mother told her that it was not safe . So she stayed at home and thought about "
    "the boat for a long time . When the sun went down , the man came back and gave her a book "
    "about the sea . She read it every night before she went to sleep , and she learned about "
    "ships , stars and the wind . The next year she was old enough to sail , and her father made "
    "her a boat of her own . They worked on it together in the evening , and it was the best time "
    "of the day . People in the town said the boat was beautiful . She named it after her "
    "grandmother , because she had always been brave and happy . Now the girl could go where she "
    "wanted . She found new places , met other children and heard many stories . Some of them "
    "were funny and some were sad , but all of them were true . In the end she came home again , "
    "because home is where the people you love are waiting for you . It is important to be "
    "curious , to ask questions and to listen when someone answers . What would you do if you "
    "had your own boat ? Would you go north or south , would you stay near the land or find an "
    "island in the middle of the ocean ? There are no wrong answers , only different ways to "
    "think about the world . The first thing you need is a good plan , then a little luck , "
    "and friends who help you when the weather turns bad . This is how it works : you try , "
    "you learn , you try again . Numbers like 1 , 2 , 10 and 2024 are words too , and so are "
    "names such as Tom , Lily , Sam and Anna . The quick brown fox jumps over the lazy dog .";

/* ==== A string set (open addressing) ==== */

struct strset { char **s; size_t cap; };

static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static bool strset_has(const struct strset *t, const char *s)
{
    for (size_t i = str_hash(s) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        if (!t->s[i]) return false;
        if (strcmp(t->s[i], s) == 0) return true;
    }
}

/* s must stay valid (points into the pieces table); the table never fills (cap > 2 n). */
static void strset_put(struct strset *t, char *s)
{
    size_t i = str_hash(s) & (t->cap - 1);
    while (t->s[i]) i = (i + 1) & (t->cap - 1);
    t->s[i] = s;
}

/* ==== Building ==== */

struct builder {
    char **piece;    /* learned and generated pieces, in vocabulary order (no specials) */
    int n_piece, cap_piece;
    struct strset set;
};

static int add_piece(struct builder *b, const char *s)
{
    if (strset_has(&b->set, s)) return 0;
    if (b->n_piece >= b->cap_piece) return 0;
    char *d = strdup(s);
    if (!d) return -1;
    b->piece[b->n_piece] = d;
    strset_put(&b->set, d);
    b->n_piece++;
    return 1;
}

struct pair { int a, b, n; };

static int pair_cmp(const void *x, const void *y)
{
    const struct pair *p = x, *q = y;
    if (p->a != q->a) return p->a < q->a ? -1 : 1;
    if (p->b != q->b) return p->b < q->b ? -1 : 1;
    return 0;
}

/* Byte-pair merges over the corpus words (each word "▁" + word) until `budget` pieces exist or
 * every word is one piece. Symbols are indexes into sym[] (strings owned here). */
static int learn_merges(struct builder *b, int budget)
{
    enum { MAXW = 512, MAXS = 64 };
    char *words[MAXW], *save = NULL;
    int freq[MAXW], n_words = 0;
    char *wbuf = strdup(corpus);
    if (!wbuf) return -1;
    for (char *tok = strtok_r(wbuf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        int k = 0;
        while (k < n_words && strcmp(words[k], tok) != 0) k++;
        if (k == n_words) {
            if (n_words == MAXW) continue;
            words[n_words] = tok;
            freq[n_words++] = 0;
        }
        freq[k]++;
    }
    /* symbols: strings; word symbol sequences */
    int cap_sym = 8192, n_sym = 0;
    char **sym = calloc((size_t)cap_sym, sizeof *sym);
    int (*seq)[MAXS] = calloc((size_t)n_words, sizeof *seq);
    int *len = calloc((size_t)n_words, sizeof *len);
    struct pair *pairs = malloc((size_t)n_words * MAXS * sizeof *pairs);
    int rc = 0;
    if (!sym || !seq || !len || !pairs) { rc = -1; goto out; }
    for (int w = 0; w < n_words; w++) {
        char tmp[256];
        snprintf(tmp, sizeof tmp, SPACE "%s", words[w]);
        /* split into UTF-8 characters */
        for (const char *p = tmp; *p && len[w] < MAXS;) {
            int cl = (*p & 0xe0) == 0xe0 ? 3 : 1;
            char ch[4] = { 0 };
            memcpy(ch, p, (size_t)cl);
            p += cl;
            int id = -1;
            for (int s = 0; s < n_sym; s++) if (strcmp(sym[s], ch) == 0) { id = s; break; }
            if (id < 0) {
                if (!(sym[n_sym] = strdup(ch))) { rc = -1; goto out; }
                id = n_sym++;
            }
            seq[w][len[w]++] = id;
        }
    }
    while (b->n_piece < budget && n_sym < cap_sym) {
        /* most frequent adjacent pair (weighted by word counts); ties go to the lowest (a, b)
         * for determinism */
        size_t np = 0;
        for (int w = 0; w < n_words; w++)
            for (int i = 0; i + 1 < len[w]; i++) {
                pairs[np].a = seq[w][i];
                pairs[np].b = seq[w][i + 1];
                pairs[np++].n = freq[w];
            }
        qsort(pairs, np, sizeof *pairs, pair_cmp);
        int best_a = -1, best_b = -1, best_n = 0;
        for (size_t i = 0; i < np;) {
            size_t j = i;
            int cnt = 0;
            while (j < np && pairs[j].a == pairs[i].a && pairs[j].b == pairs[i].b) cnt += pairs[j++].n;
            if (cnt > best_n) { best_n = cnt; best_a = pairs[i].a; best_b = pairs[i].b; }
            i = j;
        }
        if (best_n == 0) break;
        char m[256];
        snprintf(m, sizeof m, "%s%s", sym[best_a], sym[best_b]);
        int id = -1;
        for (int s = 0; s < n_sym; s++) if (strcmp(sym[s], m) == 0) { id = s; break; }
        if (id < 0) {
            if (!(sym[n_sym] = strdup(m))) { rc = -1; goto out; }
            id = n_sym++;
        }
        if (add_piece(b, m) < 0) { rc = -1; goto out; }
        for (int w = 0; w < n_words; w++) {
            int o = 0;
            for (int i = 0; i < len[w]; i++) {
                if (i + 1 < len[w] && seq[w][i] == best_a && seq[w][i + 1] == best_b) { seq[w][o++] = id; i++; }
                else seq[w][o++] = seq[w][i];
            }
            len[w] = o;
        }
    }
out:
    if (sym) for (int s = 0; s < n_sym; s++) free(sym[s]);
    free(sym);
    free(seq);
    free(len);
    free(pairs);
    free(wbuf);
    return rc;
}

/* Longer pieces: a learned word-start piece joined with a learned continuation, then, when
 * those run out, "▁" + letters counting in base 26. */
static int fill_pieces(struct builder *b, int budget, int n_learned)
{
    struct synth_rng r;
    synth_rng_init(&r, 0x766f636162ull);
    int n_start = 0, n_cont = 0;
    int *start = malloc((size_t)(n_learned + 1) * sizeof *start), *cont = malloc((size_t)(n_learned + 1) * sizeof *cont);
    if (!start || !cont) { free(start); free(cont); return -1; }
    for (int i = 0; i < n_learned; i++) {
        if (strncmp(b->piece[i], SPACE, 3) == 0) start[n_start++] = i; else cont[n_cont++] = i;
    }
    char buf[128];
    for (long tries = 0; b->n_piece < budget && n_start && n_cont && tries < 20L * budget; tries++) {
        const char *a = b->piece[start[synth_rng_below(&r, (uint64_t)n_start)]];
        const char *c = b->piece[cont[synth_rng_below(&r, (uint64_t)n_cont)]];
        if (strlen(a) + strlen(c) > 24) continue;
        snprintf(buf, sizeof buf, "%s%s", a, c);
        if (add_piece(b, buf) < 0) { free(start); free(cont); return -1; }
    }
    free(start);
    free(cont);
    for (uint64_t k = 0; b->n_piece < budget; k++) {
        char letters[16];
        int nl = 0;
        uint64_t x = k;
        do { letters[nl++] = (char)('a' + x % 26); x /= 26; } while (x && nl < 15);
        letters[nl] = 0;
        snprintf(buf, sizeof buf, SPACE "%s", letters);
        if (add_piece(b, buf) < 0) return -1;
    }
    return 0;
}

int synth_vocab_build(struct synth_vocab *v, int n)
{
    memset(v, 0, sizeof *v);
    const int n_special = 3 + 256, n_chars = 1 + 94; /* "▁" and printable ASCII */
    if (n < n_special + n_chars) return pf_fail(PINFER_EINVAL, "vocabulary of %d tokens is too small (at least %d)",
                                                n, n_special + n_chars);
    struct builder b = { 0 };
    int rc = 0;
    b.cap_piece = n;
    b.piece = calloc((size_t)n, sizeof *b.piece);
    b.set.cap = 1;
    while (b.set.cap < (size_t)n * 2 + 16) b.set.cap <<= 1;
    b.set.s = calloc(b.set.cap, sizeof *b.set.s);
    if (!b.piece || !b.set.s) { rc = -1; goto out; }

    /* characters are reserved first so no merge or generated piece can take their strings */
    char chars[95][4];
    snprintf(chars[0], 4, "%s", SPACE);
    for (int c = 33; c <= 126; c++) { chars[c - 32][0] = (char)c; chars[c - 32][1] = 0; }
    for (int c = 0; c < n_chars; c++) strset_put(&b.set, chars[c]);

    int budget = n - n_special - n_chars;
    if (learn_merges(&b, budget) < 0) { rc = -1; goto out; }
    if (fill_pieces(&b, budget, b.n_piece) < 0) { rc = -1; goto out; }

    /* flatten: specials, bytes, pieces, characters */
    size_t bytes = 32 + 256 * 7;
    for (int i = 0; i < b.n_piece; i++) bytes += strlen(b.piece[i]) + 1;
    bytes += (size_t)n_chars * 4;
    v->n = n;
    v->tokens = calloc((size_t)n, sizeof *v->tokens);
    v->scores = calloc((size_t)n, sizeof *v->scores);
    v->types = calloc((size_t)n, sizeof *v->types);
    v->block = malloc(bytes);
    if (!v->tokens || !v->scores || !v->types || !v->block) { rc = -1; goto out; }
    char *w = v->block;
    int k = 0;
#define PUT(str, type, score) do { size_t l_ = strlen(str) + 1; memcpy(w, str, l_); v->tokens[k] = w; \
        v->types[k] = (type); v->scores[k] = (score); w += l_; k++; } while (0)
    PUT("<unk>", 2, 0.0f);
    PUT("<s>", 3, 0.0f);
    PUT("</s>", 3, 0.0f);
    for (int i = 0; i < 256; i++) {
        char t[8];
        snprintf(t, sizeof t, "<0x%02X>", i);
        PUT(t, 6, 0.0f);
    }
    for (int i = 0; i < b.n_piece; i++) PUT(b.piece[i], 1, -(float)i);
    for (int c = 0; c < n_chars; c++) PUT(chars[c], 1, -(float)(b.n_piece + c));
#undef PUT
out:
    for (int i = 0; i < b.n_piece; i++) free(b.piece[i]);
    free(b.piece);
    free(b.set.s);
    if (rc) {
        synth_vocab_free(v);
        return pf_fail(PINFER_ENOMEM, "out of memory building the vocabulary");
    }
    return 0;
}

void synth_vocab_free(struct synth_vocab *v)
{
    if (!v) return;
    free(v->tokens);
    free(v->scores);
    free(v->types);
    free(v->block);
    memset(v, 0, sizeof *v);
}
