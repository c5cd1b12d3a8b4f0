/* pinfer plan: the configuration for a memory budget or a decode speed, from the machine's
 * profile (pinfer probe) and the model's activation statistics (pinfer prepare), with the
 * predicted speed and the curve budget -> predicted decode speed (docs/planner.md). */
#include "args.h"
#include "cmds.h"
#include "model_flags.h"
#include "plan_file.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const char *C = "plan";

static void usage(void)
{
    printf("usage: pinfer plan -m MODEL [--mem-budget SIZE | --target-tps X] [--machine MACHINE.json]\n"
           "                   [-o PLAN.json] [--plot CURVE.svg] [-t N] [-c N] [--refresh]\n"
           "  -m FILE            the model (prepared by pinfer prepare for budgets below its size)\n"
           "  --mem-budget SIZE  plan for this budget (bytes, K/M/G, or P%% of the file)\n"
           "  --target-tps X     the smallest budget predicted to decode X tokens/s\n"
           "  --machine FILE     a profile from pinfer probe (default: this machine's cached one for the\n"
           "                     model's disk, measured now if there is none)\n"
           "  -o FILE            write the plan (pinfer run|bench|eval|perplexity|serve --plan FILE)\n"
           "  --plot FILE        the budget -> predicted decode speed curve as an SVG chart\n"
           "  -t N, -c N, -b N   threads (default: all cores), context size (default 4096 or the model's),\n"
           "                     prompt batch (default 512, as run, chat and serve: its buffers count)\n"
           "  --refresh          measure the machine again\n");
}

static double mib(uint64_t b) { return (double)b / (1 << 20); }

/* The curve as an SVG line chart: budget (MiB) -> predicted decode tok/s, the chosen point marked. */
static int plot(const char *path, const struct pf_plan_result *r, const char *model)
{
    struct pinfer_outfile *of = NULL;
    if (pinfer_outfile_open(&of, path)) return args_pinfer_error(C);
    FILE *f = pinfer_outfile_stream(of);
    const double W = 640, H = 400, x0 = 70, y0 = 340, pw = 540, ph = 290;
    double bmax = 0, tmax = 0;
    for (int i = 0; i < r->n_curve; i++) {
        uint64_t b = r->curve[i].budget ? r->curve[i].budget : r->in_memory;
        if (mib(b) > bmax) bmax = mib(b);
        if (r->curve[i].pr.decode_tps > tmax) tmax = r->curve[i].pr.decode_tps;
    }
    if (bmax <= 0 || tmax <= 0) { pinfer_outfile_abort(of); return args_error(C, "nothing to plot"); }
    tmax *= 1.1;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%.0f\" y=\"24\" font-size=\"14\">pinfer plan: predicted decode speed by memory budget</text>\n", x0);
    fprintf(f, "<text x=\"%.0f\" y=\"40\" fill=\"#555\">", x0);
    for (const char *p = model; *p; p++) /* the file name, XML-escaped */
        if (*p == '<') fputs("&lt;", f); else if (*p == '&') fputs("&amp;", f); else if (*p == '>') fputs("&gt;", f); else fputc(*p, f);
    fprintf(f, "</text>\n");
    fprintf(f, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n", x0, y0, x0 + pw, y0);
    fprintf(f, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n", x0, y0, x0, y0 - ph);
    for (int k = 0; k <= 4; k++) {
        double bx = bmax * k / 4, ty = tmax * k / 4;
        fprintf(f, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%.0f</text>\n", x0 + pw * k / 4, y0 + 18, bx);
        fprintf(f, "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%.1f</text>\n", x0 - 6, y0 - ph * k / 4 + 4, ty);
    }
    fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">memory budget (MiB)</text>\n", x0 + pw / 2, y0 + 40);
    fprintf(f, "<text transform=\"translate(18 %.0f) rotate(-90)\" text-anchor=\"middle\">decode tokens/s</text>\n", y0 - ph / 2);
    fprintf(f, "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"");
    for (int i = 0; i < r->n_curve; i++) {
        uint64_t b = r->curve[i].budget ? r->curve[i].budget : r->in_memory;
        fprintf(f, "%.1f,%.1f ", x0 + pw * mib(b) / bmax, y0 - ph * r->curve[i].pr.decode_tps / tmax);
    }
    fprintf(f, "\"/>\n");
    if (r->chosen.budget) {
        double cx = x0 + pw * mib(r->chosen.budget) / bmax, cy = y0 - ph * r->chosen.pr.decode_tps / tmax;
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"#d62728\"/>\n", cx, cy);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">plan: %.0f MiB, %.2f tok/s</text>\n", cx + 8, cy - 8, mib(r->chosen.budget),
                r->chosen.pr.decode_tps);
    }
    fprintf(f, "</svg>\n");
    return pinfer_outfile_commit(of) ? args_pinfer_error(C) : 0;
}

int cmd_plan(int argc, char **argv)
{
    const char *model = NULL, *budget_s = NULL, *machine = NULL, *out = NULL, *svg = NULL;
    float target = 0;
    long threads = 0, n_ctx = 0, n_batch = 512;
    bool refresh = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); return 0; }
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) { ARGS_TAKE(); model = v; }
        else if (!strcmp(a, "--mem-budget")) { ARGS_TAKE(); budget_s = v; }
        else if (!strcmp(a, "--target-tps")) { ARGS_TAKE(); if (!args_float(C, a, v, 1e-6, 1e9, &target)) return 2; }
        else if (!strcmp(a, "--machine")) { ARGS_TAKE(); machine = v; }
        else if (!strcmp(a, "-o")) { ARGS_TAKE(); out = v; }
        else if (!strcmp(a, "--plot")) { ARGS_TAKE(); svg = v; }
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) { ARGS_TAKE(); if (!args_int(C, a, v, 1, 1024, &threads)) return 2; }
        else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) { ARGS_TAKE(); if (!args_int(C, a, v, 1, 1 << 22, &n_ctx)) return 2; }
        else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size")) { ARGS_TAKE(); if (!args_int(C, a, v, 1, 1 << 16, &n_batch)) return 2; }
        else if (!strcmp(a, "--refresh")) refresh = true;
        else return args_usage_error(C, "unknown flag '%s'", a);
    }
    if (!model) return args_usage_error(C, "no model given (-m FILE)");
    if (budget_s && target > 0) return args_usage_error(C, "--mem-budget and --target-tps exclude each other: plan for one");
    struct stat st;
    if (stat(model, &st) != 0) return args_error(C, "%s: cannot read it", model);
    uint64_t budget = 0;
    if (budget_s && !model_flags_size(budget_s, (uint64_t)st.st_size, &budget))
        return args_usage_error(C, "--mem-budget '%s' is not a size (examples: 2G, 1500M, 60%%)", budget_s);

    struct pf_machine mc;
    char used[4096];
    int rc = machine ? machine_load(C, machine, &mc) : probe_get(C, model, refresh, 0.3, &mc, used, sizeof used);
    if (rc) return rc;
    if (machine) {
        snprintf(used, sizeof used, "%s", machine);
        struct pf_machine here;
        memset(&here, 0, sizeof here);
        if (pf_machine_identify(&here, model) == 0 &&
            (strcmp(here.cpu, mc.cpu) || strcmp(here.kernel, mc.kernel) || strcmp(here.disk, mc.disk)))
            fprintf(stderr, "pinfer plan: %s was measured on another machine or disk (%s, kernel %s, %s; here: %s, kernel %s, "
                            "%s): the predictions are for that one\n", machine, mc.cpu, mc.kernel, mc.disk, here.cpu,
                    here.kernel, here.disk);
    }
    const struct pf_plan_request rq = { .model = model, .budget = budget, .target_tps = target, .threads = (int)threads,
                                        .n_ctx = (int)n_ctx, .n_batch = (int)n_batch };
    struct pf_plan_result r;
    if (pf_plan_make(&mc, &rq, &r)) return args_pinfer_error(C);

    printf("machine: %s, %d cores (profile %s)\n", mc.cpu, mc.cores, used);
    printf("model: %s: %s; %d threads, context %d, batch %d\n", model,
           !r.prepared ? "not prepared (dense; budgets need pinfer prepare)" : r.sparse ? "prepared, predictors (sparse)" : "prepared, no predictors (dense bundles)",
           r.threads, r.n_ctx, r.n_batch);
    printf("in memory it takes %.0f MiB and is predicted at %.2f tok/s; the smallest workable budget is %.0f MiB\n\n",
           mib(r.in_memory), r.roof_tps, mib(r.min_budget));
    printf("| budget | hot share | decode tok/s | prefill tok/s | hit rate | storage MB/token | reads/token |\n");
    printf("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (int i = 0; i < r.n_curve; i++) {
        const struct pf_plan_point *p = &r.curve[i];
        if (p->budget) printf("| %.0f MiB | %.2f |", mib(p->budget), p->cache_hot);
        else printf("| in memory (%.0f MiB) | - |", mib(r.in_memory));
        printf(" %.2f | %.1f | %.3f | %.2f | %.0f |\n", p->pr.decode_tps, p->pr.prefill_tps, p->pr.hit_rate,
               p->pr.storage_mb_per_token, p->pr.reads_per_token);
    }
    if (target > 0 && !r.reachable) {
        return args_error(C, "no budget reaches %.2f tok/s on this machine: even with the whole model in memory the "
                             "prediction is %.2f tok/s (the roof: the weights a token reads at this machine's bandwidth "
                             "and kernel rates)", target, r.roof_tps);
    }
    const struct pf_plan_point *c = &r.chosen;
    printf("\nplan: ");
    if (c->budget) printf("--mem-budget %.0fM --cache-hot %.2f --io %s", mib(c->budget), c->cache_hot, pf_mach_be[r.io_backend]);
    else printf("no budget (the whole model in memory)");
    printf(" --sparse %s -t %d\n", r.sparse ? "predictor" : "off", r.threads);
    printf("predicted: decode %.2f tok/s, prefill %.1f tok/s, hit rate %.3f, %.2f MB and %.0f reads from storage per token\n",
           c->pr.decode_tps, c->pr.prefill_tps, c->pr.hit_rate, c->pr.storage_mb_per_token, c->pr.reads_per_token);
    if (out && (rc = plan_save(C, out, model, &mc, &r))) return rc;
    if (out) printf("wrote %s\n", out);
    if (svg && (rc = plot(svg, &r, model))) return rc;
    if (svg) printf("wrote %s\n", svg);
    return 0;
}
