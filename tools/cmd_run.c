/* pinfer run: prompt -> streamed continuation, then timings and peak memory (llama-cli's
 * flags and defaults where they exist). With --chat the prompt is one user message (after an
 * optional --system message) rendered through the model's chat template or --chat-template,
 * ending with the assistant's opening, and tokenized with its special tokens recognised. */
#include "args.h"
#include "cmds.h"
#include "gen_flags.h"
#include "model_flags.h"
#include "pinfer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *C = "run";

static void help(const struct model_flags *mf, const struct gen_flags *gf)
{
    printf("usage: pinfer run -m MODEL [-p PROMPT | -f FILE] [options]\n");
    model_flags_help(mf);
    printf("  -p, --prompt TEXT       prompt (default: empty, BOS only)\n"
           "  -f, --file FILE         read the prompt from a file\n");
    gen_flags_help(gf);
    printf("      --chat              the prompt is a user message: render it with the chat template,\n"
           "                          ending with the assistant's turn (--chat-template and --system\n"
           "                          imply it)\n");
}

/* --chat: the prompt as a user message (after the system message, if any) in the chat
 * template; NULL after printing an error. *len is the text's length. Caller frees. */
static char *chat_prompt(const struct pinfer_model *model, const char *tmpl, const char *system,
                         const char *prompt, size_t *len)
{
    struct pinfer_chat_msg msgs[2];
    int n = 0;
    if (system) msgs[n++] = (struct pinfer_chat_msg){ "system", system };
    msgs[n++] = (struct pinfer_chat_msg){ "user", prompt };
    const char *name = NULL;
    bool is_default = false;
    int rc = pinfer_chat_template_name(model, tmpl, &name, &is_default);
    int need = rc ? rc : pinfer_chat_apply(model, tmpl, msgs, n, true, NULL, 0); /* measure */
    if (need < 0) {
        if (tmpl) args_pinfer_error(C);
        else args_error(C, "%s (or pass --chat-template NAME)", pinfer_last_error());
        return NULL;
    }
    char *text = malloc((size_t)need + 1);
    if (!text) { args_error(C, "out of memory for a chat prompt of %d bytes", need); return NULL; }
    if (pinfer_chat_apply(model, tmpl, msgs, n, true, text, need + 1) != need) {
        args_pinfer_error(C);
        free(text);
        return NULL;
    }
    fprintf(stderr, "pinfer run: chat template %s%s\n", name,
            is_default ? " (the model has none: the default)" : tmpl ? "" : " (the model's)");
    *len = (size_t)need;
    return text;
}

int cmd_run(int argc, char **argv)
{
    const char *prompt = NULL, *prompt_file = NULL;
    bool chat = false;
    struct model_flags mf;
    struct gen_flags gf;
    model_flags_init(&mf, MODEL_FLAGS_THREADS | MODEL_FLAGS_CTX | MODEL_FLAGS_MMAP | MODEL_FLAGS_BUDGET | MODEL_FLAGS_BATCH);
    gen_flags_init(&gf, GEN_FLAGS_PREDICT | GEN_FLAGS_SAMPLING | GEN_FLAGS_CHAT | GEN_FLAGS_SYSTEM);

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int took = model_flags_parse(C, argc, argv, &i, &mf);
        if (!took) took = gen_flags_parse(C, argc, argv, &i, &gf);
        if (took < 0) return 2;
        if (took) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { help(&mf, &gf); return 0; }
        else if (!strcmp(a, "--chat")) chat = true;
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) { ARGS_TAKE(); prompt = v; }
        else if (!strcmp(a, "-f") || !strcmp(a, "--file")) { ARGS_TAKE(); prompt_file = v; }
        else return args_usage_error(C, "unknown flag '%s'", a);
    }
    if (model_flags_check(C, &mf) || gen_flags_check(C, &gf)) return 2;
    if (prompt && prompt_file) return args_usage_error(C, "give either -p or -f, not both");
    if (gf.chat_tmpl || gf.system) chat = true;
    const char *chat_tmpl = gf.chat_tmpl, *system = gf.system;
    const long n_predict = gf.n_predict;
    const bool ignore_eos = gf.ignore_eos;
    const struct pinfer_sampler_params sp = gf.sp;

    int rc = 1;
    char *file_text = NULL, *chat_text = NULL;
    int32_t *ids = NULL;
    struct pinfer_model *model = NULL;
    struct pinfer_ctx *ctx = NULL;
    struct pinfer_sampler *smp = NULL;
    size_t plen = prompt ? strlen(prompt) : 0;
    if (prompt_file) {
        if (!(file_text = args_read_file(C, prompt_file, &plen))) return 1;
        prompt = file_text;
    }
    if (!prompt) prompt = "";

    char *piece = NULL; /* a generated token's text */
    size_t piece_cap = 0;
    double t0 = pinfer_now();
    int lrc = model_flags_load(C, &mf, &model);
    if (!lrc) lrc = model_flags_ctx_new(C, &mf, model, &ctx);
    if (lrc) { rc = lrc; goto out; }
    double t_load = pinfer_now() - t0;
    int ctx_len = pinfer_ctx_n_ctx(ctx);

    /* chat text carries the template's special tokens ("<|im_start|>"): they are parsed as such,
       as llama-cli does; a plain prompt is tokenized as plain text */
    if (chat) {
        if (!(chat_text = chat_prompt(model, chat_tmpl, system, prompt, &plen))) goto out;
        prompt = chat_text;
    }
    int n_ids = pinfer_tokenize_ex(model, prompt, plen, true, chat, NULL, 0);
    if (n_ids < 0) { args_pinfer_error(C); goto out; }
    ids = malloc(sizeof *ids * (size_t)(n_ids > 0 ? n_ids : 1));
    if (!ids) { args_error(C, "out of memory"); goto out; }
    n_ids = pinfer_tokenize_ex(model, prompt, plen, true, chat, ids, n_ids);
    if (n_ids == 0) { ids[0] = pinfer_token_bos(model) >= 0 ? pinfer_token_bos(model) : 0; n_ids = 1; }
    if (n_ids >= ctx_len) {
        args_error(C, "the prompt is %d tokens but the context holds %d (raise -c)", n_ids, ctx_len);
        goto out;
    }
    if (pinfer_sampler_new(&smp, pinfer_n_vocab(model), &sp)) { args_pinfer_error(C); goto out; }

    /* the prompt, as typed (with --chat: as rendered), then the prompt batch */
    fwrite(prompt, 1, plen, stdout);
    fflush(stdout);
    double t1 = pinfer_now();
    int bs = mf.cp.n_batch;
    for (int i = 0; i < n_ids; i += bs) {
        int n = n_ids - i < bs ? n_ids - i : bs;
        if (pinfer_decode(ctx, ids + i, n, i, false)) { args_pinfer_error(C); goto out; }
    }
    for (int i = 0; i < n_ids; i++) pinfer_sampler_accept(smp, ids[i]);
    double t_prompt = pinfer_now() - t1;
    struct pinfer_cache_stats cs0;
    bool has_cache = pinfer_ctx_cache_stats(ctx, &cs0) == 0;

    int pos = n_ids, n_gen = 0;
    const int32_t eos = pinfer_token_eos(model);
    double t2 = pinfer_now();
    piece_cap = 256;
    if (!(piece = malloc(piece_cap))) { args_error(C, "out of memory"); goto out; }
    while (n_predict < 0 || n_gen < n_predict) {
        int32_t tok = pinfer_sampler_sample(smp, pinfer_ctx_logits(ctx, -1));
        pinfer_sampler_accept(smp, tok);
        n_gen++;
        if (tok == eos && !ignore_eos) break;
        int np = pinfer_token_to_piece(model, tok, piece, (int)piece_cap);
        if (np > (int)piece_cap) { /* a long piece (the vocabulary allows 1 KiB): grow and ask again */
            char *bigger = realloc(piece, (size_t)np);
            if (!bigger) { args_error(C, "out of memory for a token of %d bytes", np); goto out; }
            piece = bigger;
            piece_cap = (size_t)np;
            np = pinfer_token_to_piece(model, tok, piece, (int)piece_cap);
        }
        if (np > 0) { fwrite(piece, 1, (size_t)np, stdout); fflush(stdout); }
        if (pos >= ctx_len) break;
        if (pinfer_decode(ctx, &tok, 1, pos, false)) { args_pinfer_error(C); goto out; }
        pos++;
    }
    double t_gen = pinfer_now() - t2;
    printf("\n");
    fflush(stdout);
    fprintf(stderr, "\npinfer: load %.2f s | prompt %d tokens, %.2f tok/s | generated %d tokens, %.2f tok/s | peak memory %.1f MiB\n",
            t_load, n_ids, n_ids / (t_prompt > 0 ? t_prompt : 1e-9), n_gen,
            n_gen / (t_gen > 0 ? t_gen : 1e-9), (double)pinfer_peak_rss() / (1 << 20));
    model_flags_sparse_report(stderr, &mf, model, ctx);
    if (has_cache) {
        struct pinfer_cache_stats cs1;
        pinfer_ctx_cache_stats(ctx, &cs1);
        if (cs1.prefill_bytes)
            fprintf(stderr, "pinfer: prompt streamed %.1f MB of FFN from storage (%.2f GB/s, I/O wait %.0f%% of prompt time)\n",
                    cs1.prefill_bytes / 1e6, t_prompt > 0 ? cs1.prefill_bytes / 1e9 / t_prompt : 0.0,
                    t_prompt > 0 ? 100 * cs1.prefill_wait_s / t_prompt : 0.0);
        model_flags_budget_report(stderr, model, ctx, (uint64_t)(n_gen > 1 ? n_gen - 1 : 0), t_gen);
    }
    rc = 0;
out:
    pinfer_sampler_free(smp);
    pinfer_ctx_free(ctx);
    pinfer_model_free(model);
    free(ids);
    free(piece);
    free(file_text);
    free(chat_text);
    return rc;
}
