/* Differential check of pinfer's chat templates (src/chat/template.c) against llama.cpp's
 * llama_chat_apply_template: the conversation of llama.cpp's own test and random conversations
 * (odd roles, white space to trim, UTF-8, empty contents) rendered with every built-in name, with
 * and without add_ass, and template strings built from the substrings detection looks for, must
 * give the same bytes (or both be refused).
 * pinfer's own program against llama.cpp's public API (llama.h); llama.cpp is built beside
 * pinfer as scripts/llama-ref/ref_logits.c says, never committed. From the repository root:
 *
 *   cc -std=c11 -D_GNU_SOURCE -O1 -Iinclude -Isrc -I/work/llama.cpp/include -I/work/llama.cpp/ggml/include \
 *      scripts/llama-ref/chat_diff.c src/chat/template.c src/core/error.c \
 *      /work/llama.cpp/build/src/libllama.a /work/llama.cpp/build/ggml/src/libggml.a \
 *      /work/llama.cpp/build/ggml/src/libggml-cpu.a /work/llama.cpp/build/ggml/src/libggml-base.a \
 *      -lstdc++ -lm -pthread -o /tmp/chat_diff
 *   /tmp/chat_diff [ROUNDS]          (default 20000; prints the first differences, exits 1 on any) */
#include "chat/template.h"
#include "llama.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned long long rng = 0x9e3779b97f4a7c15ull;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static const char *const roles[] = { "system", "user", "assistant", "tool", "", "assistant_tool_call", "model",
                                     "User", "\xc3\xa9lan" };
static const char *const bits[] = { "", " ", "  x ", "\n", "Hello", "\xc3\xa9", "\t\v\f\r", "[INST]", "<s>", "a b",
                                    "\n\n", "</s>", "  ", "\xe2\x96\x81" };
/* substrings llama.cpp's detection looks for, and some noise */
static const char *const needles[] = {
    "<|im_start|>", "<|im_sep|>", "mistral", "[INST]", "[SYSTEM_PROMPT]", "' [INST] ' + system_message",
    "[AVAILABLE_TOOLS]", " [INST]", "\"[INST]\"", "<<SYS>>", "bos_token + '[INST]", "content.strip()",
    "<|assistant|>", "<|end|>", "<|user|>", "</s>", "<|endoftext|>", "bos_token + message['role']",
    "<start_of_turn>", "'\\n\\nAssistant: ' + eos_token", "GPT4 Correct ", "USER: ", "ASSISTANT: ", "SYSTEM: ",
    "### Instruction:", "<|EOT|>", "<|START_OF_TURN_TOKEN|>", "<|USER_TOKEN|>", "<|start_header_id|>",
    "<|end_header_id|>", "[gMASK]sop", "[gMASK]<sop>", u8"<用户>",
    "'Assistant: ' + message['content'] + eos_token", u8"<｜Assistant｜>", u8"<｜User｜>",
    u8"<｜end▁of▁sentence｜>", "[|system|]", "[|assistant|]", "[|endofturn|]", "rwkv-world",
    "<|start_of_role|>",
    "message['role'] + additional_special_tokens[0] + message['content'] + additional_special_tokens[1]",
    "<|role_start|>", "{{ x }}", " ", "\n", "chatml", "llama3",
};
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static char ref[1 << 16], got[1 << 16];
static int n_diff;

static void report(const char *what, const char *tmpl, int a, int b)
{
    if (++n_diff > 10) return;
    printf("DIFF %s '%.80s': llama.cpp %d '%s'\n                     pinfer   %d '%s'\n", what, tmpl, a,
           a >= 0 ? ref : "", b, b >= 0 ? got : "");
}

/* llama.cpp's answer for template string s, and pinfer's (name or detection, as there) */
static void compare(const char *what, const char *s, const struct llama_chat_message *lm,
                    const struct pinfer_chat_msg *pm, int n, bool add_ass)
{
    memset(ref, 0, sizeof ref);
    int a = llama_chat_apply_template(s, lm, (size_t)n, add_ass, ref, (int32_t)sizeof ref - 1);
    enum pf_chat_tmpl t;
    int b = pf_chat_tmpl_detect(s, strlen(s), &t);
    if (b == 0) b = pf_chat_tmpl_apply(t, pm, n, add_ass, got, (int)sizeof got);
    bool same = (a < 0 && b < 0) || (a == b && a >= 0 && !memcmp(ref, got, (size_t)a));
    if (!same) report(what, s, a, b);
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 20000;
    char content[8][64], jinja[512];
    struct llama_chat_message lm[8];
    struct pinfer_chat_msg pm[8];
    long compared = 0;
    /* the conversation of llama.cpp's test-chat-template.cpp, in every template */
    static const char *const fixed[6][2] = {
        { "system", "You are a helpful assistant" }, { "user", "Hello" }, { "assistant", "Hi there" },
        { "user", "Who are you" }, { "assistant", "   I am an assistant   " }, { "user", "Another question" },
    };
    for (int i = 0; i < 6; i++) {
        lm[i].role = pm[i].role = fixed[i][0];
        lm[i].content = pm[i].content = fixed[i][1];
    }
    for (int t = 0; t < PF_CHAT_TMPL_COUNT; t++, compared += 2) {
        compare("fixed", pf_chat_tmpl_name((enum pf_chat_tmpl)t), lm, pm, 6, true);
        compare("fixed", pf_chat_tmpl_name((enum pf_chat_tmpl)t), lm, pm, 6, false);
    }
    for (long r = 0; r < rounds; r++) {
        int n = (int)rnd(7);
        for (int i = 0; i < n; i++) {
            content[i][0] = 0;
            for (unsigned k = rnd(4); k > 0; k--) strcat(content[i], bits[rnd(COUNT(bits))]);
            lm[i].role = pm[i].role = roles[rnd(COUNT(roles))];
            lm[i].content = pm[i].content = content[i];
        }
        bool add_ass = rnd(2);
        for (int t = 0; t < PF_CHAT_TMPL_COUNT; t++, compared++)
            compare("name", pf_chat_tmpl_name((enum pf_chat_tmpl)t), lm, pm, n, add_ass);
        /* a template string made of 1..4 needles */
        jinja[0] = 0;
        for (unsigned k = 1 + rnd(4); k > 0; k--) strcat(jinja, needles[rnd(COUNT(needles))]);
        compare("detect", jinja, lm, pm, n, add_ass);
        compared++;
    }
    printf("%ld comparisons, %d differences\n", compared, n_diff);
    return n_diff ? 1 : 0;
}
