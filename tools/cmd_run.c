/* pinfer run: prompt -> streamed continuation, then timings and peak memory (llama-cli's
 * flags and defaults where they exist). */
#include "args.h"
#include "cmds.h"
#include "model_flags.h"
#include "pinfer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *C = "run";

static void help(const struct model_flags *mf)
{
    printf("usage: pinfer run -m MODEL [-p PROMPT | -f FILE] [options]\n");
    model_flags_help(mf);
    printf("  -p, --prompt TEXT       prompt (default: empty, BOS only)\n"
           "  -f, --file FILE         read the prompt from a file\n"
           "  -n, --n-predict N       tokens to generate (default -1: until EOS or the context is full)\n"
           "  -b, --batch-size N      prompt batch size (default 512)\n"
           "  -s, --seed N            random seed (default: from the clock)\n"
           "      --temp T            temperature (default 0.8; 0 = greedy)\n"
           "      --top-k N           (default 40; 0 = off)\n"
           "      --top-p P           (default 0.95; 1 = off)\n"
           "      --min-p P           (default 0.05; 0 = off)\n"
           "      --repeat-penalty R  (default 1.0 = off)\n"
           "      --repeat-last-n N   (default 64; 0 = off, -1 = context)\n"
           "      --ignore-eos        keep generating after end-of-sequence\n");
}

int cmd_run(int argc, char **argv)
{
    const char *prompt = NULL, *prompt_file = NULL;
    long n_predict = -1, n_batch = 512;
    bool ignore_eos = false;
    struct pinfer_sampler_params sp = pinfer_sampler_default_params();
    long lv;
    struct model_flags mf;
    model_flags_init(&mf, MODEL_FLAGS_THREADS | MODEL_FLAGS_CTX | MODEL_FLAGS_MMAP | MODEL_FLAGS_BUDGET);

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int took = model_flags_parse(C, argc, argv, &i, &mf);
        if (took < 0) return 2;
        if (took) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { help(&mf); return 0; }
        else if (!strcmp(a, "--ignore-eos")) ignore_eos = true;
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) { ARGS_TAKE(); prompt = v; }
        else if (!strcmp(a, "-f") || !strcmp(a, "--file")) { ARGS_TAKE(); prompt_file = v; }
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) { ARGS_TAKE(); if (!args_int(C, a, v, -1, 1L << 30, &n_predict)) return 2; }
        else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size")) { ARGS_TAKE(); if (!args_int(C, a, v, 1, 1 << 16, &n_batch)) return 2; }
        else if (!strcmp(a, "-s") || !strcmp(a, "--seed")) { ARGS_TAKE(); if (!args_u64(C, a, v, &sp.seed)) return 2; }
        else if (!strcmp(a, "--temp")) { ARGS_TAKE(); if (!args_float(C, a, v, 0, 1e6, &sp.temp)) return 2; }
        else if (!strcmp(a, "--top-k")) { ARGS_TAKE(); if (!args_int(C, a, v, 0, 1 << 30, &lv)) return 2; sp.top_k = (int)lv; }
        else if (!strcmp(a, "--top-p")) { ARGS_TAKE(); if (!args_float(C, a, v, 0, 1, &sp.top_p)) return 2; }
        else if (!strcmp(a, "--min-p")) { ARGS_TAKE(); if (!args_float(C, a, v, 0, 1, &sp.min_p)) return 2; }
        else if (!strcmp(a, "--repeat-penalty")) { ARGS_TAKE(); if (!args_float(C, a, v, 0, 1e6, &sp.repeat_penalty)) return 2; }
        else if (!strcmp(a, "--repeat-last-n")) { ARGS_TAKE(); if (!args_int(C, a, v, -1, 1 << 22, &lv)) return 2; sp.repeat_last_n = (int)lv; }
        else return args_usage_error(C, "unknown flag '%s'", a);
    }
    if (model_flags_check(C, &mf)) return 2;
    if (prompt && prompt_file) return args_usage_error(C, "give either -p or -f, not both");

    int rc = 1;
    char *file_text = NULL;
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
    mf.cp.n_batch = (int)n_batch;
    int lrc = model_flags_load(C, &mf, &model);
    if (!lrc) lrc = model_flags_ctx_new(C, &mf, model, &ctx);
    if (lrc) { rc = lrc; goto out; }
    double t_load = pinfer_now() - t0;
    int ctx_len = pinfer_ctx_n_ctx(ctx);

    int n_ids = pinfer_tokenize(model, prompt, plen, true, NULL, 0);
    if (n_ids < 0) { args_pinfer_error(C); goto out; }
    ids = malloc(sizeof *ids * (size_t)(n_ids > 0 ? n_ids : 1));
    if (!ids) { args_error(C, "out of memory"); goto out; }
    n_ids = pinfer_tokenize(model, prompt, plen, true, ids, n_ids);
    if (n_ids == 0) { ids[0] = pinfer_token_bos(model) >= 0 ? pinfer_token_bos(model) : 0; n_ids = 1; }
    if (n_ids >= ctx_len) {
        args_error(C, "the prompt is %d tokens but the context holds %d (raise -c)", n_ids, ctx_len);
        goto out;
    }
    if (pinfer_sampler_new(&smp, pinfer_n_vocab(model), &sp)) { args_pinfer_error(C); goto out; }

    /* the prompt, as typed, then the prompt batch */
    fwrite(prompt, 1, plen, stdout);
    fflush(stdout);
    double t1 = pinfer_now();
    int bs = (int)n_batch;
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
        model_flags_budget_report(stderr, ctx, (uint64_t)(n_gen > 1 ? n_gen - 1 : 0), t_gen);
    }
    rc = 0;
out:
    pinfer_sampler_free(smp);
    pinfer_ctx_free(ctx);
    pinfer_model_free(model);
    free(ids);
    free(piece);
    free(file_text);
    return rc;
}
