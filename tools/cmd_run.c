/* pinfer run: prompt -> streamed continuation, then timings and peak memory (llama-cli's
 * flags and defaults where they exist). */
#include "args.h"
#include "cmds.h"
#include "pinfer.h"
#include "sparse_flags.h"
#include "budget_flags.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *C = "run";

static void help(void)
{
    printf("usage: pinfer run -m MODEL [-p PROMPT | -f FILE] [options]\n"
           "  -m, --model FILE        GGUF model\n"
           "  -p, --prompt TEXT       prompt (default: empty, BOS only)\n"
           "  -f, --file FILE         read the prompt from a file\n"
           "  -n, --n-predict N       tokens to generate (default -1: until EOS or the context is full)\n"
           "  -t, --threads N         threads (default: all cores)\n"
           "  -c, --ctx-size N        context length (default: the model's, at most 4096)\n"
           "  -b, --batch-size N      prompt batch size (default 512)\n"
           "  -s, --seed N            random seed (default: from the clock)\n"
           "      --temp T            temperature (default 0.8; 0 = greedy)\n"
           "      --top-k N           (default 40; 0 = off)\n"
           "      --top-p P           (default 0.95; 1 = off)\n"
           "      --min-p P           (default 0.05; 0 = off)\n"
           "      --repeat-penalty R  (default 1.0 = off)\n"
           "      --repeat-last-n N   (default 64; 0 = off, -1 = context)\n"
           "      --ignore-eos        keep generating after end-of-sequence\n"
           "      --mmap              run from the file mapping instead of copying weights to memory\n"
           SPARSE_FLAGS_HELP BUDGET_FLAGS_HELP);
}

int cmd_run(int argc, char **argv)
{
    const char *model_path = NULL, *prompt = NULL, *prompt_file = NULL;
    long n_predict = -1, n_threads = 0, n_ctx = 0, n_batch = 512;
    bool ignore_eos = false, use_mmap = false;
    struct pinfer_sampler_params sp = pinfer_sampler_default_params();
    long lv;
    const char *v;
    struct sparse_flags sfl;
    sparse_flags_init(&sfl);
    struct budget_flags bfl;
    budget_flags_init(&bfl);

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        v = i + 1 < argc ? argv[i + 1] : NULL;
        int sf = sparse_flags_parse(C, argc, argv, &i, &sfl);
        if (sf == 0) sf = budget_flags_parse(C, argc, argv, &i, &bfl);
        if (sf < 0) return 2;
        if (sf > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { help(); return 0; }
        else if (!strcmp(a, "--ignore-eos")) ignore_eos = true;
        else if (!strcmp(a, "--mmap")) use_mmap = true;
        else if (!strcmp(a, "--no-mmap")) use_mmap = false;
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) { ARGS_TAKE(); model_path = v; }
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) { ARGS_TAKE(); prompt = v; }
        else if (!strcmp(a, "-f") || !strcmp(a, "--file")) { ARGS_TAKE(); prompt_file = v; }
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) { ARGS_TAKE(); if (!args_int(C, a, v, -1, 1L << 30, &n_predict)) return 2; }
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) { ARGS_TAKE(); if (!args_int(C, a, v, 1, 1024, &n_threads)) return 2; }
        else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) { ARGS_TAKE(); if (!args_int(C, a, v, 0, 1 << 22, &n_ctx)) return 2; }
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
    if (!model_path) return args_usage_error(C, "no model given (-m FILE)");
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

    double t0 = pinfer_now();
    struct pinfer_model_params mp = pinfer_model_default_params();
    mp.use_mmap = use_mmap;
    struct pinfer_ctx_params cp = pinfer_ctx_default_params();
    if (budget_flags_apply(C, &bfl, model_path, &mp, &cp)) { rc = 2; goto out; }
    if (pinfer_model_load(&model, model_path, &mp)) { args_pinfer_error(C); goto out; }
    cp.n_ctx = (int)n_ctx;
    cp.n_threads = (int)n_threads;
    cp.n_batch = (int)n_batch;
    sparse_flags_apply(&sfl, &cp);
    if (pinfer_ctx_new(&ctx, model, &cp)) { args_pinfer_error(C); goto out; }
    if (sparse_flags_calibrate(C, &sfl, model, ctx)) goto out;
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
    char piece[256];
    while (n_predict < 0 || n_gen < n_predict) {
        int32_t tok = pinfer_sampler_sample(smp, pinfer_ctx_logits(ctx, -1));
        pinfer_sampler_accept(smp, tok);
        n_gen++;
        if (tok == eos && !ignore_eos) break;
        int np = pinfer_token_to_piece(model, tok, piece, sizeof piece);
        if (np > 0) { fwrite(piece, 1, (size_t)(np < (int)sizeof piece ? np : (int)sizeof piece), stdout); fflush(stdout); }
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
    sparse_flags_report(stderr, &sfl, model, ctx);
    if (has_cache) {
        struct pinfer_cache_stats cs1;
        pinfer_ctx_cache_stats(ctx, &cs1);
        if (cs1.prefill_bytes)
            fprintf(stderr, "pinfer: prompt streamed %.1f MB of FFN from storage (%.2f GB/s, I/O wait %.0f%% of prompt time)\n",
                    cs1.prefill_bytes / 1e6, t_prompt > 0 ? cs1.prefill_bytes / 1e9 / t_prompt : 0.0,
                    t_prompt > 0 ? 100 * cs1.prefill_wait_s / t_prompt : 0.0);
        budget_flags_report(stderr, ctx, (uint64_t)(n_gen > 1 ? n_gen - 1 : 0), t_gen);
    }
    rc = 0;
out:
    pinfer_sampler_free(smp);
    pinfer_ctx_free(ctx);
    pinfer_model_free(model);
    free(ids);
    free(file_text);
    return rc;
}
