/* pinfer synth: writes a synthetic model of a published shape (docs/synth.md). */
#include "args.h"
#include "cmds.h"
#include "pinfer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

static const char *C = "synth";

static void usage(void)
{
    printf("usage: pinfer synth -o OUT.gguf [--shape NAME] [options]\n"
           "  --shape NAME        tiny (default), llama2-7b, llama2-13b, mistral-7b, mixtral-8x7b\n"
           "  --dim N --layers N --heads N --kv-heads N --ffn N --vocab N --ctx N\n"
           "  --vocab-from FILE   take the vocabulary (every tokenizer.* key: tokens, merges, special\n"
           "                      tokens, chat template) from another GGUF file, e.g. a real model's\n"
           "  --experts N --experts-used N     override the shape's dimensions\n"
           "  --type T            f32, f16, bf16, q8_0, q4_0 (default), q4_1, q5_0, q5_1, iq4_nl,\n"
           "                      q2_k, q3_k, q4_k, q5_k, q6_k for the big matrices\n"
           "                      (K-quants: --dim and --ffn multiples of 256)\n"
           "  --act A             silu (default), relu, reglu, drelu\n"
           "  --sparsity S        ReLU family: fraction of FFN neurons that are zero per token (0.9)\n"
           "  --hot H:F           ReLU family: a fraction H of the neurons carries F of the\n"
           "                      activations, counted per token (0.3:0.8)\n"
           "  --seed N            (42) same seed and flags give the same file, byte for byte\n"
           "  --rank-structure K  ReLU family: gate rows live mostly in a K-dim subspace per layer,\n"
           "                      so low-rank predictors work as on real models (48; 0 = isotropic)\n"
           "  --law L             ReLU family: basic (default; every layer at the requested sparsity)\n"
           "                      or realistic (calibrated on published real models: per-layer\n"
           "                      sparsity spread, active sets that persist over tokens, dReLU\n"
           "                      gate/up agreement ~0.8; docs/synth.md)\n"
           "  --progress          progress bar on a terminal\n");
}

static int parse_type(const char *s)
{
    static const struct { const char *n; int id; } t[] = {
        { "f32", 0 }, { "f16", 1 }, { "q4_0", 2 }, { "q4_1", 3 }, { "q5_0", 6 }, { "q5_1", 7 },
        { "q8_0", 8 }, { "iq4_nl", 20 }, { "bf16", 30 },
        { "q2_k", 10 }, { "q3_k", 11 }, { "q4_k", 12 }, { "q5_k", 13 }, { "q6_k", 14 },
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++)
        if (!strcasecmp(s, t[i].n)) return t[i].id;
    return -1;
}

int cmd_synth(int argc, char **argv)
{
    struct pinfer_synth_params p = pinfer_synth_default_params();
    const char *out = NULL, *v;
    long n;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); return 0; }
        if (!strcmp(a, "--progress")) { p.progress = true; continue; }
        if (!(v = args_value(C, argc, argv, &i))) return 2;
        if (!strcmp(a, "-o") || !strcmp(a, "--output")) out = v;
        else if (!strcmp(a, "--shape")) p.shape = v;
        else if (!strcmp(a, "--vocab-from")) p.vocab_from = v;
#define INTFLAG(flag, field, lo, hi) \
        else if (!strcmp(a, flag)) { if (!args_int(C, flag, v, lo, hi, &n)) return 2; p.field = (int)n; }
        INTFLAG("--dim", n_embd, 64, 65536)
        INTFLAG("--layers", n_layer, 1, 512)
        INTFLAG("--heads", n_head, 1, 1024)
        INTFLAG("--kv-heads", n_head_kv, 1, 1024)
        INTFLAG("--ffn", n_ff, 32, 1 << 20)
        INTFLAG("--vocab", n_vocab, 384, 1 << 21)
        INTFLAG("--ctx", n_ctx, 8, 1 << 22)
        INTFLAG("--experts", n_expert, 2, 256)
        INTFLAG("--experts-used", n_expert_used, 1, 256)
#undef INTFLAG
        else if (!strcmp(a, "--type")) {
            if ((p.type = parse_type(v)) < 0) return args_usage_error(C, "unknown --type '%s' (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, q2_k, q3_k, q4_k, q5_k, q6_k)", v);
        } else if (!strcmp(a, "--act")) {
            /* the library's one name table; synth writes no GeLU models */
            if (pinfer_act_parse(v, &p.act) || p.act == PINFER_ACT_GELU)
                return args_usage_error(C, "unknown --act '%s' (silu, relu, reglu, drelu)", v);
        } else if (!strcmp(a, "--sparsity")) {
            if (!args_float(C, a, v, 0.0, 1.0, &p.sparsity)) return 2;
        } else if (!strcmp(a, "--hot")) {
            char *end;
            double h = strtod(v, &end), f = *end == ':' ? strtod(end + 1, &end) : -1;
            if (*end || !(h > 0 && h <= 1 && f > 0 && f <= 1))
                return args_usage_error(C, "--hot wants H:F with both in (0, 1], e.g. 0.3:0.8");
            p.hot_frac = (float)h;
            p.hot_share = (float)f;
        } else if (!strcmp(a, "--rank-structure")) {
            uint64_t k;
            if (!args_u64(C, a, v, &k)) return 2;
            if (k > 256) return args_usage_error(C, "--rank-structure wants 0..256");
            p.rank_structure = (int)k;
        } else if (!strcmp(a, "--law")) {
            if (!strcmp(v, "basic")) p.law = PINFER_SYNTH_LAW_BASIC;
            else if (!strcmp(v, "realistic")) p.law = PINFER_SYNTH_LAW_REALISTIC;
            else return args_usage_error(C, "--law wants basic or realistic");
        } else if (!strcmp(a, "--seed")) {
            if (!args_u64(C, a, v, &p.seed)) return 2;
        } else return args_usage_error(C, "unknown flag '%s'", a);
    }
    if (!out) return args_usage_error(C, "no output file given (-o OUT.gguf)");

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (pinfer_synth(out, &p)) return args_pinfer_error(C);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    struct stat st;
    double gib = stat(out, &st) == 0 ? (double)st.st_size / (1 << 30) : 0;
    fprintf(stderr, "pinfer synth: wrote %s (%.3f GiB) in %.1f s\n", out, gib, secs);
    return 0;
}
