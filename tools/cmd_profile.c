/* pinfer profile: per-layer FFN activation statistics of a model, as a table and as JSON. */
#include "args.h"
#include "cmds.h"
#include "pinfer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *C = "profile";

static void usage(void)
{
    printf("usage: pinfer profile -m MODEL [-f TEXT | --tokens N [--random]] [options]\n"
           "  -f FILE           run over the tokens of this text (BOS first; all of them unless\n"
           "                    --tokens caps it; windows of the training context)\n"
           "  --tokens N        tokens to run (128); without -f the model samples its own text\n"
           "                    one token at a time (temperature 1, repeat penalty 1.1)\n"
           "  --random          uniform random token ids instead, decoded in batches (faster)\n"
           "  --json OUT.json   also write the statistics as JSON ('-' = stdout)\n"
           "  --json-neurons    include every neuron's activation frequency in the JSON\n"
           "  --hot-share F     the share of activations that defines the hot set (0.8)\n"
           "  -t N              threads (all CPUs)\n"
           "  -b N              tokens per batch for text and random ids (64)\n"
           "  --seed N          sampling / random ids (1)\n"
           "\n"
           "Per layer: sparsity = fraction of FFN neurons that are exactly zero per token (mean,\n"
           "then min..max over tokens); hot = smallest fraction of neurons carrying the hot share\n"
           "of all activations, counting activations (|a|: weighting them by magnitude);\n"
           "overlap = |A_t & A_t-1| / |A_t| for consecutive tokens' active sets; new5 =\n"
           "new_vs_window5, the share of a token's active neurons not active in the 5 tokens\n"
           "before; lru50 = lru_hit_at_50, the hit rate of an LRU cache of single neurons\n"
           "holding half the layer (first touches not counted); up|g = up_given_gate, dReLU's\n"
           "P(up > 0 | gate > 0) (nan for other activations); |a| quantiles over all\n"
           "activations (zeros included).\n"
           "\n"
           "Mixtures of experts: the figures above are over all (token, chosen expert) rows (hot:\n"
           "the mean of the experts' own; the temporal ones and up|g are not measured), and a\n"
           "second table gives per layer repeat = fraction of consecutive tokens with the same\n"
           "first-choice expert, each expert's share of the (token, choice) pairs, and each\n"
           "expert's sparsity over the tokens routed to it.\n");
}

/* Routing and per-expert sparsity: every expert's figure when they fit a line, else min..max. */
static void print_experts(const struct pinfer_profile *prof, const struct pinfer_profile_overall *o)
{
    const int X = prof->n_expert;
    const bool each = X <= 16;
    printf("\n# %d experts, %d per token; repeat = same first choice as the previous token (random: %.3f)\n", X,
           prof->n_expert_used, 1.0 / X);
    printf("%5s %7s  %s  |  %s\n", "layer", "repeat", each ? "share of each expert" : "share min..max",
           each ? "sparsity of each expert" : "sparsity min..max");
    for (int l = 0; l < prof->n_layer; l++) {
        const struct pinfer_profile_layer *L = &prof->layers[l];
        printf("%5d %7.4f ", l, L->expert_repeat);
        double smin = 1, smax = 0, pmin = 1, pmax = 0;
        for (int e = 0; e < X; e++) {
            smin = fmin(smin, L->expert_share[e]);
            smax = fmax(smax, L->expert_share[e]);
            pmin = fmin(pmin, L->expert_sparsity[e]);
            pmax = fmax(pmax, L->expert_sparsity[e]);
        }
        if (each) {
            for (int e = 0; e < X; e++) printf(" %.3f", L->expert_share[e]);
            printf("  | ");
            for (int e = 0; e < X; e++) printf(" %.3f", L->expert_sparsity[e]);
        } else {
            printf(" %.4f..%.4f  |  %.4f..%.4f", smin, smax, pmin, pmax);
        }
        printf("\n");
    }
    printf("%5s %7.4f  share %.4f..%.4f, repeat %.4f..%.4f, expert sparsity %.4f..%.4f (over layers and experts)\n",
           "mean", o->expert_repeat, o->expert_share_min, o->expert_share_max, o->expert_repeat_min,
           o->expert_repeat_max, o->expert_sparsity_min, o->expert_sparsity_max);
}

int cmd_profile(int argc, char **argv)
{
    struct pinfer_profile_params p = pinfer_profile_default_params();
    const char *model_path = NULL, *file = NULL, *json = NULL, *v;
    bool neurons = false, have_n = false;
    long n;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); return 0; }
        if (!strcmp(a, "--random")) { p.random_tokens = true; continue; }
        if (!strcmp(a, "--json-neurons")) { neurons = true; continue; }
        if (!(v = args_value(C, argc, argv, &i))) return 2;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) model_path = v;
        else if (!strcmp(a, "-f") || !strcmp(a, "--file")) file = v;
        else if (!strcmp(a, "--json")) json = v;
        else if (!strcmp(a, "--tokens") || !strcmp(a, "-n")) {
            if (!args_int(C, a, v, 2, 1 << 20, &n)) return 2;
            p.n_tokens = (int)n;
            have_n = true;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!args_int(C, a, v, 1, 1024, &n)) return 2;
            p.n_threads = (int)n;
        } else if (!strcmp(a, "-b") || !strcmp(a, "--batch")) {
            if (!args_int(C, a, v, 1, 4096, &n)) return 2;
            p.n_batch = (int)n;
        } else if (!strcmp(a, "--hot-share")) {
            if (!args_float(C, a, v, 0.01, 1.0, &p.hot_share)) return 2;
        } else if (!strcmp(a, "--seed")) {
            if (!args_u64(C, a, v, &p.seed)) return 2;
        } else return args_usage_error(C, "unknown flag '%s'", a);
    }
    if (!model_path) return args_usage_error(C, "no model given (-m FILE)");
    if (file && p.random_tokens) return args_usage_error(C, "--random and -f exclude each other");

    char *text = NULL;
    if (file) {
        if (!(text = args_read_file(C, file, &p.text_len))) return 1;
        p.text = text;
        if (!have_n) p.n_tokens = 0; /* the whole text */
    }
    struct pinfer_model *m = NULL;
    struct pinfer_profile *prof = NULL;
    int rc = 1;
    if (pinfer_model_load(&m, model_path, NULL)) { args_pinfer_error(C); goto out; }
    char desc[256];
    fprintf(stderr, "pinfer profile: %s\n", pinfer_model_desc(m, desc, sizeof desc));
    if (pinfer_profile_run(&prof, m, &p)) { args_pinfer_error(C); goto out; }

    int hs = (int)(prof->hot_share * 100 + 0.5);
    printf("# %d tokens (%s), %.1f s (%.2f tok/s)\n", prof->n_tokens, prof->source, prof->seconds,
           prof->seconds > 0 ? prof->n_tokens / prof->seconds : 0);
    printf("%5s %8s %15s %7s %7s %8s %7s %7s %7s %10s %10s %10s\n", "layer", "sparsity", "min..max", "hot", "hot|a|",
           "overlap", "new5", "lru50", "up|g", "|a| p50", "|a| p90", "|a| p99");
    for (int l = 0; l < prof->n_layer; l++) {
        const struct pinfer_profile_layer *L = &prof->layers[l];
        printf("%5d %8.4f %7.4f..%-6.4f %7.4f %7.4f %8.4f %7.4f %7.4f %7.4f %10.3g %10.3g %10.3g\n", l,
               1 - L->active_frac, 1 - L->active_frac_max, 1 - L->active_frac_min, L->hot_frac, L->hot_frac_mag,
               L->overlap, L->new_vs_window5, L->lru_hit_at_50, L->up_given_gate, L->abs_q[2], L->abs_q[4], L->abs_q[5]);
    }
    struct pinfer_profile_overall o;
    pinfer_profile_overall(prof, &o);
    printf("%5s %8.4f %7.4f..%-6.4f %7.4f %7s %8.4f %7.4f %7.4f %7.4f\n", "mean", o.sparsity, o.sparsity_min,
           o.sparsity_max, o.hot_frac, "", o.overlap, o.new_vs_window5, o.lru_hit_at_50, o.up_given_gate);
    printf("# hot = fraction of neurons carrying %d%% of the activations; min..max of the mean row = over layers\n", hs);
    if (prof->n_expert) print_experts(prof, &o);
    if (json && pinfer_profile_write_json(prof, m, json, neurons)) { args_pinfer_error(C); goto out; }
    rc = 0;
out:
    pinfer_profile_free(prof);
    pinfer_model_free(m);
    free(text);
    return rc;
}
