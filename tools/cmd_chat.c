/* pinfer chat: an interactive multi-turn conversation on a terminal (or on piped lines: one
 * line is one user message). Answers stream as they are generated; Ctrl-C stops the current
 * answer, Ctrl-D (or Ctrl-C at the prompt) ends the session.
 *
 * The KV cache is kept across turns, so each turn decodes only its new tokens: the conversation
 * is rendered in full through the chat template every turn (templates are not incremental), and
 * when the rendering starts with the text already in the cache (the previous prompt and the
 * answer as generated) only the rest is tokenized and decoded, as llama.cpp's simple-chat
 * does. A template that rewrites earlier turns (one that trims answers, say) falls back to
 * tokenizing the whole rendering and reusing the longest common token prefix.
 *
 * When the context fills: without --context-shift the answer stops and the session ends with a
 * message; with it, the oldest half of the turns after the kept prefix (BOS and the system
 * message) is dropped and the rest decoded again at its new positions (the runtime has no
 * KV-cache shift, so the cost is a prompt of half the context). */
#include "args.h"
#include "cmds.h"
#include "gen_flags.h"
#include "model_flags.h"
#include "pinfer.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *C = "chat";

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void help(const struct model_flags *mf, const struct gen_flags *gf)
{
    printf("usage: pinfer chat -m MODEL [--system TEXT] [options]\n"
           "An interactive conversation: each line read is a user message, answered as it is generated.\n"
           "Ctrl-C stops the current answer; Ctrl-D, or Ctrl-C at the prompt, ends the session.\n");
    model_flags_help(mf);
    gen_flags_help(gf);
    printf("      --context-shift     when the context is full, drop the oldest half of the turns (after BOS\n"
           "                          and the system message) and go on; default: stop the session\n"
           "      --stats             after each turn, a line on stderr: prompt tokens decoded and reused\n"
           "                          from the KV cache, tokens generated\n");
}

/* ==== The token history: what the KV cache holds ==== */

struct session {
    struct pinfer_model *model;
    struct pinfer_ctx *ctx;
    int n_ctx, n_batch;
    int32_t *toks;  /* (n_ctx) the tokens in the KV cache, at positions 0..n_past */
    int n_past;
    int n_keep;     /* a context shift keeps these: BOS and the system message */
    bool shift;     /* --context-shift */
    int n_again;    /* tokens decoded again after context shifts (for --stats) */
};

/* Decodes toks[from..to) at their positions, in batches. 0 or 1 (error printed). */
static int sess_decode(struct session *s, int from, int to)
{
    for (int i = from; i < to; i += s->n_batch) {
        int n = to - i < s->n_batch ? to - i : s->n_batch;
        if (pinfer_decode(s->ctx, s->toks + i, n, i, false)) return args_pinfer_error(C);
    }
    return 0;
}

/* Makes room for `need` more tokens. Without --context-shift that is an error once the context
 * is full (1, message printed); with it, the oldest half of the tokens after n_keep is dropped
 * and the rest decoded again at its new positions, as often as needed. */
static int sess_room(struct session *s, int need)
{
    if (s->n_past + need <= s->n_ctx) return 0;
    if (!s->shift) {
        fprintf(stderr, "\npinfer chat: the context is full (%d tokens): the session ends here (start pinfer chat "
                        "with a larger -c, or with --context-shift to drop the oldest turns)\n", s->n_ctx);
        return 1;
    }
    if (s->n_keep + need > s->n_ctx) {
        fprintf(stderr, "\npinfer chat: %d new tokens do not fit in the context of %d tokens (%d are kept)\n", need,
                s->n_ctx, s->n_keep);
        return 1;
    }
    while (s->n_past + need > s->n_ctx) {
        int left = s->n_past - s->n_keep, drop = left / 2 > 0 ? left / 2 : left;
        memmove(s->toks + s->n_keep, s->toks + s->n_keep + drop, sizeof *s->toks * (size_t)(left - drop));
        s->n_past -= drop;
        fprintf(stderr, "\npinfer chat: context full: dropped %d tokens of the oldest turns, decoding the %d after them "
                        "again\n", drop, s->n_past - s->n_keep);
        if (sess_decode(s, s->n_keep, s->n_past)) return 1;
        s->n_again += s->n_past - s->n_keep;
    }
    return 0;
}

/* Appends ids[0..n) to the cache (decoding them) after keeping its first `keep` tokens. */
static int sess_feed(struct session *s, int keep, const int32_t *ids, int n)
{
    s->n_past = keep;
    if (sess_room(s, n)) return 1;
    memcpy(s->toks + s->n_past, ids, sizeof *ids * (size_t)n);
    s->n_past += n;
    return sess_decode(s, s->n_past - n, s->n_past);
}

/* ==== Text ==== */

/* Tokens of text[0..len) into *out (caller frees); the count, or -1 after printing. */
static int tokenize(const struct pinfer_model *m, const char *text, size_t len, bool add_bos, int32_t **out)
{
    *out = NULL;
    int n = pinfer_tokenize_ex(m, text, len, add_bos, true, NULL, 0);
    if (n < 0) { args_pinfer_error(C); return -1; }
    if (!(*out = malloc(sizeof **out * (size_t)(n > 0 ? n : 1)))) { args_error(C, "out of memory"); return -1; }
    return pinfer_tokenize_ex(m, text, len, add_bos, true, *out, n);
}

/* The conversation msgs[0..n) rendered by the template (malloc'd, *len bytes); NULL after
 * printing. */
static char *render(const struct pinfer_model *m, const char *tmpl, const struct pinfer_chat_msg *msgs, int n,
                    bool add_ass, size_t *len)
{
    int need = pinfer_chat_apply(m, tmpl, msgs, n, add_ass, NULL, 0);
    char *text = need >= 0 ? malloc((size_t)need + 1) : NULL;
    if (need < 0 || !text || pinfer_chat_apply(m, tmpl, msgs, n, add_ass, text, need + 1) != need) {
        free(text);
        if (need < 0) args_pinfer_error(C);
        else args_error(C, "out of memory for a conversation of %d bytes", need);
        return NULL;
    }
    *len = (size_t)need;
    return text;
}

/* Appends a token's text to *buf (grown as needed) and prints it. 0 or 1. */
static int put_piece(const struct pinfer_model *m, int32_t tok, char **buf, size_t *len, size_t *cap)
{
    char small[256];
    int np = pinfer_token_to_piece(m, tok, small, (int)sizeof small);
    if (np <= 0) return np < 0 ? args_pinfer_error(C) : 0;
    if (*len + (size_t)np + 1 > *cap) {
        size_t nc = (*cap ? *cap * 2 : 256) + (size_t)np;
        char *nb = realloc(*buf, nc);
        if (!nb) return args_error(C, "out of memory");
        *buf = nb;
        *cap = nc;
    }
    if (np > (int)sizeof small) pinfer_token_to_piece(m, tok, *buf + *len, np);
    else memcpy(*buf + *len, small, (size_t)np);
    fwrite(*buf + *len, 1, (size_t)np, stdout);
    fflush(stdout);
    *len += (size_t)np;
    (*buf)[*len] = 0;
    return 0;
}

/* ==== The session ==== */

struct convo {
    struct pinfer_chat_msg *msgs; /* contents owned (strdup) */
    int n, cap;
    char *cached;                 /* the text whose tokens the cache holds, in order: the last
                                     rendering up to the assistant's opening, then the answer */
    size_t cached_len;
};

static int convo_push(struct convo *cv, const char *role, const char *content)
{
    if (cv->n == cv->cap) {
        int nc = cv->cap ? cv->cap * 2 : 8;
        struct pinfer_chat_msg *nm = realloc(cv->msgs, sizeof *nm * (size_t)nc);
        if (!nm) return args_error(C, "out of memory");
        cv->msgs = nm;
        cv->cap = nc;
    }
    char *c = strdup(content);
    if (!c) return args_error(C, "out of memory");
    cv->msgs[cv->n++] = (struct pinfer_chat_msg){ role, c };
    return 0;
}

static void convo_free(struct convo *cv)
{
    for (int i = 0; i < cv->n; i++) free((char *)cv->msgs[i].content);
    free(cv->msgs);
    free(cv->cached);
}

struct turn_stats {
    int decoded, reused, generated;
    double gen_s;
};

/* Feeds the conversation, ending with a new user message, into the cache: only what follows
 * the cached text when the rendering extends it, else what follows the common token prefix.
 * Leaves the rendering in *full. 0 or 1. */
static int prompt_turn(struct session *s, struct convo *cv, const char *tmpl, char **full, size_t *full_len,
                       struct turn_stats *ts)
{
    int32_t *ids = NULL;
    int n, keep, rc = 1;
    if (!(*full = render(s->model, tmpl, cv->msgs, cv->n, true, full_len))) return 1;
    if (cv->cached && *full_len > cv->cached_len && !memcmp(*full, cv->cached, cv->cached_len)) {
        keep = s->n_past;
        n = tokenize(s->model, *full + cv->cached_len, *full_len - cv->cached_len, s->n_past == 0, &ids);
    } else {
        n = tokenize(s->model, *full, *full_len, true, &ids);
        keep = 0;
        while (n >= 0 && keep < s->n_past && keep < n && s->toks[keep] == ids[keep]) keep++;
        if (n >= 0) memmove(ids, ids + keep, sizeof *ids * (size_t)(n - keep));
        n -= keep;
    }
    if (n < 0) goto out;
    if (n == 0) { /* nothing new (cannot happen with a new message): decode the last token again for logits */
        if (keep == 0) { args_error(C, "the conversation has no tokens"); goto out; }
        keep--;
        ids[0] = s->toks[keep];
        n = 1;
    }
    ts->reused = keep;
    ts->decoded = n;
    rc = sess_feed(s, keep, ids, n);
out:
    free(ids);
    return rc;
}

/* Generates the answer into *reply (printed as it comes). 0, or 1 when the session cannot go on. */
static int answer_turn(struct session *s, struct pinfer_sampler *smp, const struct gen_flags *gf, char **reply,
                       size_t *reply_len, struct turn_stats *ts)
{
    size_t cap = 0;
    const int32_t eos = pinfer_token_eos(s->model);
    double t0 = pinfer_now();
    *reply = NULL;
    *reply_len = 0;
    if (!(*reply = calloc(1, 1))) return args_error(C, "out of memory");
    cap = 1;
    int rc = 0;
    while (gf->n_predict < 0 || ts->generated < gf->n_predict) {
        if (interrupted) break;
        int32_t tok = pinfer_sampler_sample(smp, pinfer_ctx_logits(s->ctx, -1));
        pinfer_sampler_accept(smp, tok);
        if (tok == eos && !gf->ignore_eos) break;
        if ((rc = sess_room(s, 1))) break;
        if ((rc = put_piece(s->model, tok, reply, reply_len, &cap))) break;
        s->toks[s->n_past] = tok;
        if (pinfer_decode(s->ctx, &tok, 1, s->n_past, false)) { rc = args_pinfer_error(C); break; }
        s->n_past++;
        ts->generated++;
    }
    ts->gen_s = pinfer_now() - t0;
    printf("\n");
    fflush(stdout);
    return rc;
}

/* One line from stdin without its newline (malloc'd), or NULL at the end of input or on
 * Ctrl-C at the prompt. */
static char *read_line(bool tty)
{
    char *line = NULL;
    size_t cap = 0;
    if (tty) { printf("> "); fflush(stdout); }
    ssize_t n = getline(&line, &cap, stdin);
    if (n < 0) {
        free(line);
        if (tty) printf("\n");
        return NULL;
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
    return line;
}

/* The tokens a context shift keeps: BOS and the system message's rendering, when the first
 * turn starts with them. */
static int keep_count(const struct pinfer_model *m, const char *tmpl, const char *system)
{
    int32_t *ids = NULL;
    int n = 0;
    if (system) {
        struct pinfer_chat_msg sys = { "system", system };
        size_t len;
        char *text = render(m, tmpl, &sys, 1, false, &len);
        n = text ? tokenize(m, text, len, true, &ids) : -1;
        free(text);
    } else {
        n = tokenize(m, "", 0, true, &ids);
    }
    free(ids);
    return n > 0 ? n : 0;
}

int cmd_chat(int argc, char **argv)
{
    bool stats = false, shift = false;
    struct model_flags mf;
    struct gen_flags gf;
    model_flags_init(&mf, MODEL_FLAGS_THREADS | MODEL_FLAGS_CTX | MODEL_FLAGS_MMAP | MODEL_FLAGS_BUDGET | MODEL_FLAGS_BATCH);
    gen_flags_init(&gf, GEN_FLAGS_PREDICT | GEN_FLAGS_SAMPLING | GEN_FLAGS_CHAT | GEN_FLAGS_SYSTEM);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int took = model_flags_parse(C, argc, argv, &i, &mf);
        if (!took) took = gen_flags_parse(C, argc, argv, &i, &gf);
        if (took < 0) return 2;
        if (took) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { help(&mf, &gf); return 0; }
        else if (!strcmp(a, "--context-shift")) shift = true;
        else if (!strcmp(a, "--stats")) stats = true;
        else return args_usage_error(C, "unknown flag '%s'", a);
    }
    if (model_flags_check(C, &mf) || gen_flags_check(C, &gf)) return 2;

    int rc = 1;
    struct session s = { .shift = shift };
    struct convo cv = { 0 };
    struct pinfer_sampler *smp = NULL;
    char *line = NULL, *full = NULL, *reply = NULL;
    const bool tty = isatty(0) && isatty(1);
    int lrc = model_flags_load(C, &mf, &s.model);
    if (!lrc) lrc = model_flags_ctx_new(C, &mf, s.model, &s.ctx);
    if (lrc) { rc = lrc; goto out; }
    s.n_ctx = pinfer_ctx_n_ctx(s.ctx);
    s.n_batch = mf.cp.n_batch < s.n_ctx ? mf.cp.n_batch : s.n_ctx;
    if (!(s.toks = malloc(sizeof *s.toks * (size_t)s.n_ctx))) { args_error(C, "out of memory"); goto out; }
    if (pinfer_sampler_new(&smp, pinfer_n_vocab(s.model), &gf.sp)) { args_pinfer_error(C); goto out; }

    const char *name;
    bool is_default;
    if (pinfer_chat_template_name(s.model, gf.chat_tmpl, &name, &is_default)) {
        args_error(C, "%s (pass --chat-template NAME)", pinfer_last_error());
        goto out;
    }
    fprintf(stderr, "pinfer chat: chat template %s%s; context %d tokens\n", name,
            is_default ? " (the model has none: the default)" : gf.chat_tmpl ? "" : " (the model's)", s.n_ctx);
    if (tty) fprintf(stderr, "pinfer chat: Ctrl-C stops an answer; Ctrl-D, or Ctrl-C at the prompt, ends the session\n");
    s.n_keep = keep_count(s.model, gf.chat_tmpl, gf.system);
    if (s.n_keep > s.n_ctx / 2) s.n_keep = s.n_ctx / 2;
    if (gf.system && convo_push(&cv, "system", gf.system)) goto out;

    /* no SA_RESTART: Ctrl-C at the prompt interrupts the read and ends the session */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);

    for (int turn = 1;; turn++) {
        interrupted = 0;
        free(line);
        if (!(line = read_line(tty))) break;
        if (!*line) { turn--; continue; }
        if (convo_push(&cv, "user", line)) goto out;
        struct turn_stats ts = { 0 };
        s.n_again = 0;
        size_t full_len, reply_len;
        free(full);
        full = NULL;
        if (prompt_turn(&s, &cv, gf.chat_tmpl, &full, &full_len, &ts)) goto out;
        /* the repetition penalty sees the conversation as it goes on, like one long run */
        for (int i = s.n_past - ts.decoded; i < s.n_past; i++) pinfer_sampler_accept(smp, s.toks[i]);
        free(reply);
        int arc = answer_turn(&s, smp, &gf, &reply, &reply_len, &ts);
        if (stats)
            fprintf(stderr, "pinfer chat: turn %d: prompt %d tokens decoded, %d reused from the KV cache | generated %d "
                            "tokens, %.2f tok/s | %d tokens decoded again after context shifts%s\n", turn, ts.decoded,
                    ts.reused, ts.generated, ts.gen_s > 0 ? ts.generated / ts.gen_s : 0.0, s.n_again,
                    interrupted ? " | interrupted" : "");
        if (arc) goto out;
        if (!reply || convo_push(&cv, "assistant", reply)) goto out;
        /* the cache now holds the rendering up to the assistant's opening and the answer */
        char *cached = malloc(full_len + reply_len + 1);
        if (!cached) { args_error(C, "out of memory"); goto out; }
        memcpy(cached, full, full_len);
        memcpy(cached + full_len, reply, reply_len + 1);
        free(cv.cached);
        cv.cached = cached;
        cv.cached_len = full_len + reply_len;
    }
    rc = 0;
out:
    free(line);
    free(full);
    free(reply);
    convo_free(&cv);
    pinfer_sampler_free(smp);
    free(s.toks);
    pinfer_ctx_free(s.ctx);
    pinfer_model_free(s.model);
    return rc;
}
