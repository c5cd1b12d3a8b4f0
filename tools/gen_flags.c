/* The generation flags of run, chat and serve (gen_flags.h): one table gives each flag's
 * spellings, group and help line. */
#include "gen_flags.h"

#include "args.h"

#include <stdio.h>
#include <string.h>

enum flag_id { F_PREDICT, F_IGNORE_EOS, F_SEED, F_TEMP, F_TOP_K, F_TOP_P, F_MIN_P, F_REPEAT, F_REPEAT_N, F_TMPL, F_SYSTEM };

static const struct flag_spec {
    const char *name, *alias;
    unsigned group;
    bool value;
    const char *help;
} flags[] = {
    [F_PREDICT] = { "--n-predict", "-n", GEN_FLAGS_PREDICT, true,
                    "  -n, --n-predict N       tokens to generate (default -1: until EOS or the context is full)\n" },
    [F_IGNORE_EOS] = { "--ignore-eos", NULL, GEN_FLAGS_PREDICT, false,
                       "      --ignore-eos        keep generating after end-of-sequence\n" },
    [F_SEED] = { "--seed", "-s", GEN_FLAGS_SAMPLING, true, "  -s, --seed N            random seed (default: from the clock)\n" },
    [F_TEMP] = { "--temp", NULL, GEN_FLAGS_SAMPLING, true, "      --temp T            temperature (default 0.8; 0 = greedy)\n" },
    [F_TOP_K] = { "--top-k", NULL, GEN_FLAGS_SAMPLING, true, "      --top-k N           (default 40; 0 = off)\n" },
    [F_TOP_P] = { "--top-p", NULL, GEN_FLAGS_SAMPLING, true, "      --top-p P           (default 0.95; 1 = off)\n" },
    [F_MIN_P] = { "--min-p", NULL, GEN_FLAGS_SAMPLING, true, "      --min-p P           (default 0.05; 0 = off)\n" },
    [F_REPEAT] = { "--repeat-penalty", NULL, GEN_FLAGS_SAMPLING, true, "      --repeat-penalty R  (default 1.0 = off)\n" },
    [F_REPEAT_N] = { "--repeat-last-n", NULL, GEN_FLAGS_SAMPLING, true,
                     "      --repeat-last-n N   (default 64; 0 = off, -1 = context)\n" },
    [F_TMPL] = { "--chat-template", NULL, GEN_FLAGS_CHAT, true, NULL /* gen_flags_help lists the names */ },
    [F_SYSTEM] = { "--system", NULL, GEN_FLAGS_SYSTEM, true, "      --system TEXT       a system message before the conversation\n" },
};
#define N_FLAGS (int)(sizeof flags / sizeof *flags)

void gen_flags_init(struct gen_flags *f, unsigned groups)
{
    memset(f, 0, sizeof *f);
    f->groups = groups;
    f->n_predict = -1;
    f->sp = pinfer_sampler_default_params();
}

static int find(const struct gen_flags *f, const char *a)
{
    for (int id = 0; id < N_FLAGS; id++)
        if ((f->groups & flags[id].group) && (!strcmp(a, flags[id].name) || (flags[id].alias && !strcmp(a, flags[id].alias))))
            return id;
    return -1;
}

int gen_flags_parse(const char *cmd, int argc, char **argv, int *i, struct gen_flags *f)
{
    const char *a = argv[*i], *v = NULL;
    const int id = find(f, a);
    if (id < 0) return 0;
    if (flags[id].value) {
        if (*i + 1 >= argc) { args_usage_error(cmd, "flag %s needs a value", a); return -1; }
        v = argv[++*i];
    }
    long n;
    switch ((enum flag_id)id) {
    case F_PREDICT: if (!args_int(cmd, a, v, -1, 1L << 30, &f->n_predict)) return -1; break;
    case F_IGNORE_EOS: f->ignore_eos = true; break;
    case F_SEED: if (!args_u64(cmd, a, v, &f->sp.seed)) return -1; break;
    case F_TEMP: if (!args_float(cmd, a, v, 0, 1e6, &f->sp.temp)) return -1; break;
    case F_TOP_K: if (!args_int(cmd, a, v, 0, 1 << 30, &n)) return -1; f->sp.top_k = (int)n; break;
    case F_TOP_P: if (!args_float(cmd, a, v, 0, 1, &f->sp.top_p)) return -1; break;
    case F_MIN_P: if (!args_float(cmd, a, v, 0, 1, &f->sp.min_p)) return -1; break;
    case F_REPEAT: if (!args_float(cmd, a, v, 0, 1e6, &f->sp.repeat_penalty)) return -1; break;
    case F_REPEAT_N: if (!args_int(cmd, a, v, -1, 1 << 22, &n)) return -1; f->sp.repeat_last_n = (int)n; break;
    case F_TMPL: f->chat_tmpl = v; break;
    case F_SYSTEM: f->system = v; break;
    }
    return 1;
}

int gen_flags_check(const char *cmd, const struct gen_flags *f)
{
    /* a name (or a Jinja string) is checked before the model loads */
    if (f->chat_tmpl) {
        const char *name;
        if (!*f->chat_tmpl || pinfer_chat_template_name(NULL, f->chat_tmpl, &name, NULL))
            return args_usage_error(cmd, "--chat-template: %s", *f->chat_tmpl ? pinfer_last_error() : "empty name");
    }
    return 0;
}

void gen_flags_help(const struct gen_flags *f)
{
    for (int id = 0; id < N_FLAGS; id++)
        if (flags[id].help && (f->groups & flags[id].group)) fputs(flags[id].help, stdout);
    if (!(f->groups & GEN_FLAGS_CHAT)) return;
    printf("      --chat-template NAME  a built-in chat template instead of the model's (tokenizer.chat_template;\n"
           "                          %s if it has none); NAME is one of:\n",
           PINFER_CHAT_DEFAULT_TEMPLATE);
    const char *names[64];
    int n = pinfer_chat_builtin_templates(names, 64);
    for (int i = 0, col = 0; i < n && i < 64; i++) {
        if (col == 0) printf("                         ");
        col += printf(" %s", names[i]);
        if (col > 60 || i + 1 == n) { printf("\n"); col = 0; }
    }
}
