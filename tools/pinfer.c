/* pinfer: the command-line tool. Dispatches to sub-commands (tools/cmd_*.c). */
#include "cmds.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} cmds[] = {
    { "run", cmd_run, "generate text from a prompt" },
    { "chat", cmd_chat, "an interactive conversation, the KV cache kept across turns" },
    { "serve", cmd_serve, "an OpenAI-compatible HTTP server (chat and text completions)" },
    { "tokenize", cmd_tokenize, "print the token ids of a text" },
    { "eval", cmd_eval, "teacher-forced evaluation: logits for given token ids" },
    { "bench", cmd_bench, "prompt and generation speed, llama-bench style" },
    { "synth", cmd_synth, "write a synthetic model of a published shape" },
    { "profile", cmd_profile, "measure FFN activation sparsity of a model" },
    { "prepare", cmd_prepare, "re-lay a model as neuron bundles with activation predictors" },
    { "perplexity", cmd_perplexity, "perplexity of a text, and its change under a sparse FFN mode" },
    { "iobench", cmd_iobench, "direct-I/O read throughput of this machine's storage (the roof)" },
    { "probe", cmd_probe, "measure this machine for the planner (memory, kernels, storage); cached" },
    { "plan", cmd_plan, "choose the configuration for a memory budget or a speed, and predict the speed" },
};

static void usage(FILE *fp)
{
    fprintf(fp, "usage: pinfer <command> [options]   (pinfer <command> --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++)
        fprintf(fp, "  %-10s %s\n", cmds[i].name, cmds[i].help);
}

/* A model file is mapped while it is parsed (always) and while it runs with --mmap. If the file
 * is truncated or its disk fails meanwhile, touching the lost pages raises SIGBUS: say so and
 * exit 1 instead of dying by the signal (only async-signal-safe calls here). */
static void on_sigbus(int sig)
{
    (void)sig;
    static const char msg[] = "pinfer: error: a model file in use was truncated or could not be read "
                              "(SIGBUS on its mapping): stopping\n";
    ssize_t n = write(2, msg, sizeof msg - 1);
    (void)n;
    _exit(1);
}

int main(int argc, char **argv)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigbus;
    sigaction(SIGBUS, &sa, NULL);
    if (argc < 2) { usage(stderr); return 2; }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) { usage(stdout); return 0; }
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++)
        if (!strcmp(argv[1], cmds[i].name)) return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "pinfer: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
