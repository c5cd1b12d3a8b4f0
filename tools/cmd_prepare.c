/* pinfer prepare: profiles a model, trains activation predictors and writes the model with its
 * FFN re-laid as neuron bundles (docs/sparse-format.md). Prints a per-layer table. */
#include "args.h"
#include "cmds.h"
#include "pinfer.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *C = "prepare";

static void usage(void)
{
    printf("usage: pinfer prepare -m IN.gguf -o OUT.gguf [-f CALIB.txt | --tokens N [--random]] [options]\n"
           "  -f FILE            calibrate on this text's tokens (BOS first)\n"
           "  --tokens N         without -f: tokens the model samples from BOS (temperature 1,\n"
           "                     repeat penalty 1.1, seeded; 512); with -f: a cap (default: all)\n"
           "  --random           without -f: uniform random token ids, decoded in batches, instead\n"
           "                     of the model's samples one at a time (fast on a model larger than\n"
           "                     memory; the token law of synthetic models and pinfer bench)\n"
           "  --seed N           sampling, predictor initialisation, minibatch order (1); the same\n"
           "                     seed and flags give the same file, byte for byte\n"
           "  --cluster-size K   neurons per cluster (default: the smallest page-aligned multiple >= 16)\n"
           "  --placement P      slot order: freq (hottest first) or coact (hotness by buckets of\n"
           "                     512, neurons that fire together next to each other: fewer,\n"
           "                     longer reads under --mem-budget) (freq)\n"
           "  --rank R|auto      predictor rank for every layer, or chosen per layer (auto)\n"
           "  --recall F         held-out recall each predictor must reach (0.99)\n"
           "  --steps N          most Adam steps per predictor (300; training stops early when\n"
           "                     held-aside tokens stop improving; 0 = keep the initialisation)\n"
           "  -t N               threads (all CPUs)\n"
           "\n"
           "ReLU-family models (relu, reglu, drelu) get a trained low-rank predictor per layer (or\n"
           "keep PowerInfer's blk.N.fc1/fc2 when the input has them); SiLU models get bundles,\n"
           "permutation and statistics only (threshold mode is calibrated at run time).\n"
           "Every 5th block of 16 calibration tokens is held out to measure recall and precision.\n");
}

static void print_report(const struct pinfer_prepare_result *r)
{
    printf("# %d calibration tokens (%s), %d held out; predictors: %s; cluster %d neurons\n", r->n_tokens, r->source,
           r->n_heldout, r->predictor, r->cluster_size);
    const bool moe = r->n_expert > 0;
    if (moe) printf("# %d experts per layer: one predictor each, trained on the tokens routed to it (share)\n", r->n_expert);
    printf("%5s %s%5s %5s %10s %8s %9s %8s %9s %10s\n", "layer", moe ? "expert share " : "", "rank", "steps", "threshold",
           "recall", "precision", "active", "predicted", "pred KiB");
    double min_recall = 1, sr = 0, sp = 0, sa = 0, spf = 0;
    int np = 0;
    for (int l = 0; l < r->n_units; l++) {
        const struct pinfer_prepare_layer *L = &r->layers[l];
        if (L->rank == 0) continue;
        printf("%5d ", L->layer);
        if (moe) printf("%6d %5.3f ", L->expert, L->share);
        printf("%5d %5d %10.4g %8.4f %9.4f %8.4f %9.4f %10.1f\n", L->rank, L->steps, (double)L->threshold, (double)L->recall,
               (double)L->precision, L->active_frac, L->pred_frac, (double)L->pred_bytes / 1024);
        if (L->recall < min_recall) min_recall = L->recall;
        sr += L->recall; sp += L->precision; sa += L->active_frac; spf += L->pred_frac;
        np++;
    }
    if (np)
        printf("%5s %s%5s %5s %10s %8.4f %9.4f %8.4f %9.4f   (min recall %.4f)\n", "mean", moe ? "             " : "", "", "", "",
               sr / np, sp / np, sa / np, spf / np, min_recall);
    if (np && spf / np > 0.5)
        printf("# note: the predictors keep %.0f%% of the neurons to reach the recall target: their inputs\n"
               "#   carry little low-rank information about which neurons fire (more calibration tokens or\n"
               "#   a larger --rank may help)\n", 100 * spf / np);
    double mib = 1024.0 * 1024.0;
    printf("# weight bytes per decode token: dense %.1f MiB; sparse with predicted sets %.1f MiB (%.2fx fewer),\n"
           "#   of which predictors %.2f MiB = %.1f%% of the bytes touched\n",
           (double)r->bytes_dense / mib, (double)r->bytes_sparse / mib,
           r->bytes_sparse ? (double)r->bytes_dense / (double)r->bytes_sparse : 0, (double)r->bytes_pred / mib,
           r->bytes_sparse ? 100.0 * (double)r->bytes_pred / (double)r->bytes_sparse : 0);
    printf("# time: profile %.1f s, predictors %.1f s, write %.1f s\n", r->seconds_profile, r->seconds_train,
           r->seconds_write);
}

int cmd_prepare(int argc, char **argv)
{
    struct pinfer_prepare_params p = pinfer_prepare_default_params();
    const char *in = NULL, *out = NULL, *file = NULL, *v;
    long n;
    bool capped = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); return 0; }
        if (!strcmp(a, "--random")) { p.random_tokens = true; continue; }
        if (!(v = args_value(C, argc, argv, &i))) return 2;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) in = v;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) out = v;
        else if (!strcmp(a, "-f") || !strcmp(a, "--file")) file = v;
        else if (!strcmp(a, "--tokens") || !strcmp(a, "-n")) {
            if (!args_int(C, a, v, 1, 1 << 20, &n)) return 2;
            p.n_tokens = (int)n;
            capped = true;
        } else if (!strcmp(a, "--seed")) {
            if (!args_u64(C, a, v, &p.seed)) return 2;
        } else if (!strcmp(a, "--cluster-size")) {
            if (!args_int(C, a, v, 1, 1 << 20, &n)) return 2;
            p.cluster_size = (int)n;
        } else if (!strcmp(a, "--placement")) {
            if (!strcmp(v, "freq")) p.placement = PINFER_PLACE_FREQ;
            else if (!strcmp(v, "coact")) p.placement = PINFER_PLACE_COACT;
            else return args_usage_error(C, "--placement expects freq or coact, got '%s'", v);
        } else if (!strcmp(a, "--rank")) {
            if (!strcmp(v, "auto")) p.rank = 0;
            else if (!args_int(C, a, v, 1, 65536, &n)) return 2;
            else p.rank = (int)n;
        } else if (!strcmp(a, "--recall")) {
            if (!args_float(C, a, v, 0.5, 0.9999, &p.recall_target)) return 2;
        } else if (!strcmp(a, "--steps")) {
            if (!args_int(C, a, v, 0, 1 << 20, &n)) return 2;
            p.train_steps = n ? (int)n : -1;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!args_int(C, a, v, 1, 1024, &n)) return 2;
            p.n_threads = (int)n;
        } else return args_usage_error(C, "unknown flag '%s'", a);
    }
    if (!in) return args_usage_error(C, "no input model given (-m FILE)");
    if (!out) return args_usage_error(C, "no output given (-o FILE)");
    if (file && p.random_tokens) return args_usage_error(C, "--random and -f exclude each other (random ids, or the text's)");
    char *text = NULL;
    if (file) {
        if (!(text = args_read_file(C, file, &p.text_len))) return 1;
        p.text = text;
        if (!capped) p.n_tokens = 0; /* all of the text: more pairs make better predictors */
    }
    p.progress = true; /* a bar on a terminal, a line every few seconds in a log */
    struct pinfer_prepare_result *r = NULL;
    double t0 = pinfer_now();
    int rc = pinfer_prepare(in, out, &p, &r);
    free(text);
    if (rc) return args_pinfer_error(C);
    print_report(r);
    fprintf(stderr, "pinfer prepare: wrote %s (%.2f GiB) in %.1f s, peak RSS %.2f GiB\n", out,
            (double)r->file_bytes / (1u << 30), pinfer_now() - t0, (double)pinfer_peak_rss() / (1u << 30));
    pinfer_prepare_result_free(r);
    return 0;
}
