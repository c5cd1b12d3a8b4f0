/* BPE pre-tokenization: the text is split into pre-tokens ("words") by the regexes llama.cpp's
 * llm_tokenizer_bpe applies for the vocabulary's tokenizer.ggml.pre, and each word is then
 * merged on its own (bpe.c).
 *
 * The regexes need Unicode categories (\p{L}, \p{N}, \p{P}, \s) and lookahead (?!\S). They run
 * on PCRE2 (Debian's libpcre2-dev, compiled with PCRE2_UTF | PCRE2_UCP): a maintained library
 * with Unicode property tables generated from the Unicode database, a JIT, and match limits,
 * that runs the regexes as written, instead of category tables typed in here or a regex
 * engine of our own. llama.cpp itself runs the GPT-2 and Llama 3 regexes through hand-written
 * equivalents and the others through std::regex on a "collapsed" text (every code point above
 * U+007F replaced by one byte naming its category); the results are those of the regexes, with
 * these details reproduced here:
 *
 *   - The text is decoded the way llama.cpp decodes it (pf_utf8_next): an invalid byte becomes
 *     U+FFFD, overlong forms their value, and the words are the re-encoded code points.
 *   - Each regex applies to each fragment the previous one left (matches and the gaps between
 *     them), as a subject of its own: (?!\S) and $ see the fragment's end.
 *   - Whitespace is llama.cpp's set (its unicode_set_whitespace), which PCRE2's \s matches plus
 *     U+180E, so U+180E is matched as U+200B (both format characters, class C for llama.cpp).
 *     Surrogates (which PCRE2 refuses in UTF-8) are matched as U+E000 (class C as well). The
 *     words keep the original code points.
 *   - llama.cpp replaces non-ASCII whitespace with U+000B before matching, so it never falls in
 *     a literal code point range: the DeepSeek ranges that contain some (U+0800-U+4E00,
 *     U+3000-U+3002) are guarded with (?!\s).
 *   - $ is the end of the fragment only (PCRE2_DOLLAR_ENDONLY, as std::regex's $).
 *
 * What differs: PCRE2 10.42 knows Unicode 14, llama.cpp's tables a later version, so code
 * points assigned since (e.g. CJK extension H) are letters there and unassigned here; and
 * llama.cpp throws on a 4-byte sequence above U+10FFFF, which is invalid (U+FFFD) here.
 *
 * Safe cuts: every pre-tokenizer in the table splits "Y\nX" (Y and X ASCII, not whitespace)
 * after the newline whether or not the text ends there, which bpe.c uses to tokenize long
 * texts in pieces. A new entry must keep that true (test_tokenizer_bpe checks the shipped
 * vocabularies in pieces against whole texts). */
#include "tokenizer/pretok.h"
#include "tokenizer/vocab_impl.h"

#include "core/checked.h"
#include "core/error.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdlib.h>
#include <string.h>

/* ==== The regexes (llama.cpp src/llama-vocab.cpp, llm_tokenizer_bpe) ==== */

#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
/* the Llama 3 regex with (?i:'s|...) spelt out case by case, as llama.cpp adapts it */
#define RE_LLAMA3_HEAD "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
#define RE_LLAMA3_TAIL "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_LLAMA3 RE_LLAMA3_HEAD "\\p{N}{1,3}" RE_LLAMA3_TAIL
#define RE_QWEN2 RE_LLAMA3_HEAD "\\p{N}" RE_LLAMA3_TAIL
#define RE_CJK "(?:(?!\\s)[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}])+"
#define RE_PORO " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{0964}\\x{06D4}\\x{060C})]+"

static const char *const re_default[] = { "[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]", NULL };
static const char *const re_gpt2[] = { RE_GPT2, NULL };
static const char *const re_llama3[] = { RE_LLAMA3, NULL };
static const char *const re_qwen2[] = { RE_QWEN2, NULL };
static const char *const re_starcoder[] = { "\\p{N}", RE_GPT2, NULL };
static const char *const re_falcon[] = { "[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]", NULL };
static const char *const re_deepseek_coder[] = { "[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RE_CJK, "\\p{N}", NULL };
static const char *const re_deepseek_llm[] = {
    "[\\r\\n]",
    "\\s?[A-Za-z\\x{00B5}\\x{00C0}-\\x{00D6}\\x{00D8}-\\x{00F6}\\x{00F8}-\\x{01BA}\\x{01BC}-\\x{01BF}"
    "\\x{01C4}-\\x{0293}\\x{0295}-\\x{02AF}\\x{0370}-\\x{0373}\\x{0376}\\x{0377}\\x{037B}-\\x{037D}"
    "\\x{037F}\\x{0386}\\x{0388}-\\x{038A}\\x{038C}\\x{038E}-\\x{03A1}\\x{03A3}-\\x{03F5}"
    "\\x{03F7}-\\x{0481}\\x{048A}-\\x{052F}\\x{0531}-\\x{0556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}"
    "\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}"
    "\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}"
    "\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}"
    "\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}"
    "\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}"
    "\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}"
    "\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}"
    "\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}"
    "\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}"
    "\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}"
    "\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}"
    "\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+",
    "\\s?(?:(?!\\s)[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}])+",
    "\\s+$",
    RE_CJK,
    "\\p{N}+",
    NULL,
};
/* llama.cpp's collapsed text gives \p{S} only the ASCII symbols $+<=>^`| (not ~): spelt out */
static const char *const re_deepseek_v3[] = {
    "\\p{N}{1,3}",
    "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|(?:[^\\r\\n\\p{L}\\p{P}\\p{S}]|~)?[\\p{L}\\p{M}]+"
    "| ?(?:(?!~)[\\p{P}\\p{S}])+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL,
};
static const char *const re_poro[] = { RE_PORO, NULL };
static const char *const re_viking[] = { RE_PORO, "\\p{N}", NULL };
static const char *const re_tekken[] = {
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+"
    "|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*"
    "|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL,
};

enum { F_IGNORE_MERGES = 1, F_ADD_BOS = 2, F_NO_BOS = 4 };

/* tokenizer.ggml.pre names, as llama.cpp's loader maps them. Left out on purpose: names whose
 * llama.cpp behaviour needs more than the regexes (chameleon's image tokens, jina-v2-*'s
 * lstrip "<mask>"): they are refused by name, not tokenized almost right. */
static const struct pre {
    const char *name;
    const char *const *re;
    int flags;
} pres[] = {
    { "default", re_default, 0 },
    { "llama3", re_llama3, F_IGNORE_MERGES | F_ADD_BOS },
    { "llama-v3", re_llama3, F_IGNORE_MERGES | F_ADD_BOS },
    { "llama-bpe", re_llama3, F_IGNORE_MERGES | F_ADD_BOS },
    { "falcon3", re_llama3, F_IGNORE_MERGES | F_ADD_BOS },
    { "dbrx", re_llama3, 0 },
    { "smaug-bpe", re_llama3, 0 },
    { "chatglm-bpe", re_llama3, F_NO_BOS },
    { "deepseek-llm", re_deepseek_llm, 0 },
    { "deepseek-coder", re_deepseek_coder, 0 },
    { "deepseek-v3", re_deepseek_v3, 0 },
    { "falcon", re_falcon, 0 },
    { "gpt-2", re_gpt2, 0 },
    { "mpt", re_gpt2, 0 },
    { "olmo", re_gpt2, 0 },
    { "jais", re_gpt2, 0 },
    { "phi-2", re_gpt2, 0 },
    { "jina-es", re_gpt2, 0 },
    { "jina-de", re_gpt2, 0 },
    { "jina-v1-en", re_gpt2, 0 },
    { "gigachat", re_gpt2, 0 },
    { "roberta-bpe", re_gpt2, 0 },
    { "starcoder", re_starcoder, 0 },
    { "refact", re_starcoder, 0 },
    { "command-r", re_starcoder, 0 },
    { "smollm", re_starcoder, 0 },
    { "codeshell", re_starcoder, 0 },
    { "exaone", re_starcoder, 0 },
    { "minerva-7b", re_starcoder, 0 },
    { "qwen2", re_qwen2, 0 },
    { "deepseek-r1-qwen", re_qwen2, 0 },
    { "megrez", re_qwen2, 0 },
    { "stablelm2", re_qwen2, 0 },
    { "poro-chat", re_poro, 0 },
    { "bloom", re_poro, 0 },
    { "gpt3-finnish", re_poro, 0 },
    { "viking", re_viking, 0 },
    { "tekken", re_tekken, F_IGNORE_MERGES | F_ADD_BOS },
};

enum { MAX_RE = 8 };

struct pf_pretok {
    const struct pre *pre;
    int n_re;
    pcre2_code *re[MAX_RE];
};

struct pf_pretok_scratch {
    char *subj, *word;      /* the subject the regexes see; the words' bytes when they differ */
    size_t subj_cap, word_cap;
    pcre2_match_data *md;
};

/* ==== UTF-8 as llama.cpp reads it ==== */

uint32_t pf_utf8_next(const unsigned char *s, size_t n, size_t *len)
{
    unsigned char c = s[0];
    *len = 1;
    if (c < 0x80) return c;
    size_t k = (c & 0x40) == 0 ? 0 : (c & 0x20) == 0 ? 2 : (c & 0x10) == 0 ? 3 : (c & 0x08) == 0 ? 4 : 0;
    if (k == 0 || k > n) return 0xFFFD;
    uint32_t cp = c & (0x7F >> k);
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0xFFFD;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp > 0x10FFFF) return 0xFFFD;
    *len = k;
    return cp;
}

size_t pf_utf8_put(uint32_t cp, char *out)
{
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) { o[0] = (unsigned char)(0xC0 | cp >> 6); o[1] = (unsigned char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | cp >> 12);
        o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | cp >> 18);
    o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Code point the regexes see for cp (see the top of the file). */
static uint32_t subject_cp(uint32_t cp)
{
    if (cp >= 0xD800 && cp <= 0xDFFF) return 0xE000;
    if (cp == 0x180E) return 0x200B;
    return cp;
}

/* True when text is already what the regexes and the words need: well-formed UTF-8 (shortest
 * forms, no surrogates) without U+180E. */
static bool text_clean(const unsigned char *s, size_t n)
{
    static const uint32_t min_cp[5] = { 0, 0, 0x80, 0x800, 0x10000 };
    for (size_t i = 0; i < n;) {
        if (s[i] < 0x80) { i++; continue; }
        size_t k;
        uint32_t cp = pf_utf8_next(s + i, n - i, &k);
        if (k == 1 || cp < min_cp[k] || subject_cp(cp) != cp) return false;
        i += k;
    }
    return true;
}

/* ==== Compiling ==== */

int pf_pretok_new(struct pf_pretok **out, const char *name, struct pf_pretok_flags *flags)
{
    *out = NULL;
    if (!name) name = "default";
    const struct pre *pre = NULL;
    for (size_t i = 0; i < sizeof pres / sizeof *pres && !pre; i++)
        if (strcmp(pres[i].name, name) == 0) pre = &pres[i];
    if (!pre)
        return pf_fail(PINFER_EUNSUPPORTED, "vocab: pre-tokenizer '%s' (tokenizer.ggml.pre) is not "
                       "supported", name);
    struct pf_pretok *p = calloc(1, sizeof *p);
    if (!p) return pf_fail(PINFER_ENOMEM, "vocab: out of memory");
    p->pre = pre;
    for (int i = 0; pre->re[i]; i++) {
        int err;
        PCRE2_SIZE at;
        p->re[i] = pcre2_compile((PCRE2_SPTR)pre->re[i], PCRE2_ZERO_TERMINATED,
                                 PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &err, &at, NULL);
        if (!p->re[i]) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(err, msg, sizeof msg);
            pf_pretok_free(p);
            return pf_fail(PINFER_EUNSUPPORTED, "vocab: pre-tokenizer '%s': regex %d does not compile "
                           "at offset %zu: %s", name, i, (size_t)at, (const char *)msg);
        }
        p->n_re = i + 1;
        /* the JIT is only speed: without it (no executable memory) the interpreter runs */
        (void)pcre2_jit_compile(p->re[i], PCRE2_JIT_COMPLETE);
    }
    flags->ignore_merges = pre->flags & F_IGNORE_MERGES;
    flags->add_bos = pre->flags & F_ADD_BOS;
    flags->no_bos = pre->flags & F_NO_BOS;
    *out = p;
    return 0;
}

void pf_pretok_free(struct pf_pretok *p)
{
    if (!p) return;
    for (int i = 0; i < p->n_re; i++) pcre2_code_free(p->re[i]);
    free(p);
}

const char *pf_pretok_name(const struct pf_pretok *p) { return p->pre->name; }

void pf_pretok_scratch_free(struct pf_pretok_scratch *sc)
{
    if (!sc) return;
    free(sc->subj);
    free(sc->word);
    pcre2_match_data_free(sc->md);
    free(sc);
}

/* ==== Splitting ==== */

struct split {
    const struct pf_pretok *p;
    pcre2_match_data *md;
    const char *subj;       /* what the regexes see */
    const char *word;       /* the words' bytes: subj, or the same offsets with the real code points */
    pf_pretok_word_fn fn;
    void *arg;
};

/* Applies regex `level` to subj[a, b) and the next levels to every match and gap; past the
 * last regex, [a, b) is a word. Like llama.cpp's sequence of unicode_regex_split passes, done
 * depth first so no list of offsets is kept. */
static int split_level(const struct split *s, int level, size_t a, size_t b)
{
    if (a == b) return 0;
    if (level == s->p->n_re) return s->fn(s->arg, s->word + a, b - a);
    const pcre2_code *re = s->p->re[level];
    size_t last = a, from = a;
    while (from < b) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s->subj + a, b - a, from - a, PCRE2_NO_UTF_CHECK, s->md, NULL);
        /* the JIT's stack is small (32 KiB); the interpreter keeps its backtracking on the heap */
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
            rc = pcre2_match(re, (PCRE2_SPTR)s->subj + a, b - a, from - a, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT,
                             s->md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return pf_fail(rc == PCRE2_ERROR_NOMEMORY ? PINFER_ENOMEM : PINFER_ERANGE,
                           "tokenize: pre-tokenizer '%s', regex %d, on %zu bytes: %s",
                           s->p->pre->name, level, b - a, (const char *)msg);
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->md);
        size_t ms = a + ov[0], me = a + ov[1];
        int r;
        if (ms > last && (r = split_level(s, level + 1, last, ms))) return r;
        if (me > ms) {
            if ((r = split_level(s, level + 1, ms, me))) return r;
            last = from = me;
        } else {
            /* an empty match only marks a cut (none of the table's regexes makes one): search on
               from the next character */
            last = ms;
            from = ms + 1;
            while (from < b && ((unsigned char)s->subj[from] & 0xC0) == 0x80) from++;
        }
    }
    return last < b ? split_level(s, level + 1, last, b) : 0;
}

int pf_pretok_split(const struct pf_pretok *p, struct pf_pretok_scratch **scp, const char *text,
                    size_t len, pf_pretok_word_fn fn, void *arg)
{
    if (len == 0) return 0;
    struct pf_pretok_scratch *sc = *scp;
    if (!sc) {
        if (!(sc = calloc(1, sizeof *sc)) || !(sc->md = pcre2_match_data_create(1, NULL))) {
            free(sc);
            return pf_fail(PINFER_ENOMEM, "tokenize: out of memory");
        }
        *scp = sc;
    }
    struct split s = { p, sc->md, text, text, fn, arg };
    const unsigned char *t = (const unsigned char *)text;
    if (!text_clean(t, len)) {
        /* each input byte becomes at most 3 (a stray byte is U+FFFD) */
        size_t cap;
        if (ck_mul(len, 3, &cap)) return pf_fail(PINFER_ENOMEM, "tokenize: text too large");
        int rc;
        if ((rc = pf_tok_reserve((void **)&sc->subj, &sc->subj_cap, cap, 1)) ||
            (rc = pf_tok_reserve((void **)&sc->word, &sc->word_cap, cap, 1)))
            return rc;
        size_t n = 0;
        bool same = true;
        for (size_t i = 0; i < len;) {
            size_t k;
            uint32_t cp = pf_utf8_next(t + i, len - i, &k), sub = subject_cp(cp);
            i += k;
            pf_utf8_put(sub, sc->subj + n);
            n += pf_utf8_put(cp, sc->word + n); /* the same length: see subject_cp */
            same &= sub == cp;
        }
        s.subj = sc->subj;
        s.word = same ? sc->subj : sc->word;
        len = n;
    }
    return split_level(&s, 0, 0, len);
}
