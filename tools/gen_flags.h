/* The generation flags run, chat and serve share (llama-cli's spellings and defaults), parsed
 * into one struct so that a flag means the same in each command:
 *
 *   -n, --n-predict N        GEN_FLAGS_PREDICT: tokens to generate (-1: until EOS or the
 *                            context is full); serve: the default of a request's max_tokens
 *   --ignore-eos             GEN_FLAGS_PREDICT
 *   -s, --seed N             GEN_FLAGS_SAMPLING, and --temp, --top-k, --top-p, --min-p,
 *                            --repeat-penalty, --repeat-last-n (pinfer_sampler_params)
 *   --chat-template NAME     GEN_FLAGS_CHAT: a built-in template instead of the model's
 *   --system TEXT            GEN_FLAGS_SYSTEM: a system message before the conversation
 *
 * A command names the groups it takes; other flags stay unknown to it. */
#ifndef PF_TOOLS_GEN_FLAGS_H
#define PF_TOOLS_GEN_FLAGS_H

#include "pinfer.h"

#include <stdbool.h>

enum gen_flags_group {
    GEN_FLAGS_PREDICT = 1 << 0,
    GEN_FLAGS_SAMPLING = 1 << 1,
    GEN_FLAGS_CHAT = 1 << 2,
    GEN_FLAGS_SYSTEM = 1 << 3,
};

struct gen_flags {
    unsigned groups;
    long n_predict;                  /* -1 */
    bool ignore_eos;
    struct pinfer_sampler_params sp; /* pinfer_sampler_default_params() plus the flags */
    const char *chat_tmpl;           /* --chat-template; NULL = the model's */
    const char *system;              /* --system; NULL = none */
};

void gen_flags_init(struct gen_flags *f, unsigned groups);
/* As model_flags_parse: 1 if argv[*i] was one of f's flags (consumed with its value), 0 if not,
 * -1 after printing a usage error. */
int gen_flags_parse(const char *cmd, int argc, char **argv, int *i, struct gen_flags *f);
/* After the flag loop: checks --chat-template's name before any model loads. 0, or 2 after a
 * usage error. */
int gen_flags_check(const char *cmd, const struct gen_flags *f);
/* The help lines of f's flags, to stdout (with the built-in template names for GEN_FLAGS_CHAT). */
void gen_flags_help(const struct gen_flags *f);

#endif
