/* Chat templates (src/chat/, pinfer_chat_apply) against llama.cpp's llama_chat_apply_template:
 * the fixed conversation of llama.cpp's tests/test-chat-template.cpp (commit c392e5094) rendered
 * with each real model's Jinja template (recognised by substrings) and with each template's
 * name must give llama.cpp's expected text (tests/data/chat_cases.h); llama.cpp's single-message
 * checks of that file; the default when a model has none (stories260K, and copies of it with a
 * template); unknown names; short buffers; hostile input. */
#include "testutil.h"

#include "chat/template.h"
#include "data/chat_cases.h"
#include "gguf/gguf.h"
#include "pinfer.h"

#include <limits.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#define N_CASES ((int)(sizeof chat_cases / sizeof chat_cases[0]))

/* The conversation of llama.cpp's tests/test-chat-template.cpp */
static const struct pinfer_chat_msg conv[] = {
    { "system", "You are a helpful assistant" },
    { "user", "Hello" },
    { "assistant", "Hi there" },
    { "user", "Who are you" },
    { "assistant", "   I am an assistant   " },
    { "user", "Another question" },
};
#define N_CONV 6

/* The template llama.cpp's rules recognise in each test case's Jinja (chat_cases[].model). */
static const struct { const char *model, *tmpl; } case_tmpl[] = {
    { "teknium/OpenHermes-2.5-Mistral-7B", "chatml" },
    { "mistralai/Mistral-7B-Instruct-v0.2 (NOTE: Old pre-v1 without a system prompt)", "llama2" },
    { "TheBloke/FusionNet_34Bx2_MoE-AWQ", "llama2-sys-bos" },
    { "bofenghuang/vigogne-2-70b-chat", "llama2-sys-strip" },
    { "mlabonne/AlphaMonarch-7B", "monarch" },
    { "google/gemma-7b-it", "gemma" },
    { "OrionStarAI/Orion-14B-Chat", "orion" },
    { "openchat/openchat-3.5-0106", "openchat" },
    { "deepseek-ai/deepseek-coder-33b-instruct", "deepseek" },
    { "eachadea/vicuna-13b-1.1", "vicuna" },
    { "Orca-Vicuna", "vicuna-orca" },
    { "CohereForAI/c4ai-command-r-plus", "command-r" },
    { "Llama-3", "llama3" },
    { "Phi-3-mini", "phi3" },
    { "Phi-3-small", "phi3" },
    { "Phi-3-medium", "phi3" },
    { "Phi-3-vision", "phi3" },
    { "ChatGLM3", "chatglm3" },
    { "ChatGLM4", "chatglm4" },
    { "GLMEdge", "glmedge" },
    { "MiniCPM-3B-OpenHermes-2.5-v2-GGUF", "minicpm" },
    { "DeepSeek-V2", "deepseek2" },
    { "ibm-granite/granite-3.0-8b-instruct", "granite" },
    { "mistralai/Mistral-7B-Instruct-v0.2 (mistralai 'v1' template with a system prompt)", "mistral-v1" },
    { "Mistral-Large-Instruct-2407 (mistralai 'v3' template; modified to have system prompt at start)", "mistral-v3" },
    { "Mistral-Nemo-Instruct-2407 (mistralai 'v3-tekken' template; modified to have system prompt at start)", "mistral-v3-tekken" },
    { "mistralai/Mistral-Large-Instruct-2411 (mistralai 'v7' template)", "mistral-v7" },
    { "ai-sage/GigaChat-20B-A3B-instruct", "gigachat" },
    { "Infinigence/Megrez-3B-Instruct", "megrez" },
    { "phi-4", "phi4" },
};

/* Templates llama.cpp's test has no case for: the conversation's text worked out by hand from
 * llm_chat_apply_template (src/llama-chat.cpp at c392e5094), and a minimal Jinja-like string
 * with the substrings its detection looks for. scripts/llama-ref/chat_diff.c compares them (and
 * random conversations in every template) with llama.cpp itself. */
static const struct { const char *tmpl, *jinja, *expected; } extra[] = {
    { "llama2-sys", "{{ '[INST] <<SYS>>\\n' + system + '\\n<</SYS>>\\n\\n' }}",
      "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>[INST] Who are you [/INST]"
      "   I am an assistant   </s>[INST] Another question [/INST]" },
    { "zephyr", "{{ '<|user|>\\n' + message['content'] + eos_token }}{# eos_token = <|endoftext|> #}",
      "<|system|>\nYou are a helpful assistant<|endoftext|>\n<|user|>\nHello<|endoftext|>\n<|assistant|>\nHi there"
      "<|endoftext|>\n<|user|>\nWho are you<|endoftext|>\n<|assistant|>\n   I am an assistant   <|endoftext|>\n"
      "<|user|>\nAnother question<|endoftext|>\n<|assistant|>\n" },
    { "falcon3", "{{ '<|user|>\\n' }}{{ '<|assistant|>\\n' + content + '</s>' }}",
      "<|system|>\nYou are a helpful assistant\n<|user|>\nHello\n<|assistant|>\nHi there\n<|user|>\nWho are you\n"
      "<|assistant|>\n   I am an assistant   \n<|user|>\nAnother question\n<|assistant|>\n" },
    { "deepseek3", u8"{{'<｜User｜>' + content}}{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}",
      u8"You are a helpful assistant\n\n<｜User｜>Hello<｜Assistant｜>Hi there<｜end▁of▁sentence｜><｜User｜>Who are you"
      u8"<｜Assistant｜>   I am an assistant   <｜end▁of▁sentence｜><｜User｜>Another question<｜Assistant｜>" },
    { "exaone3", "[|system|]{{ s }}[|endofturn|]\\n[|user|]{{ u }}\\n[|assistant|]{{ a }}[|endofturn|]",
      "[|system|]You are a helpful assistant[|endofturn|]\n[|user|]Hello\n[|assistant|]Hi there[|endofturn|]\n"
      "[|user|]Who are you\n[|assistant|]I am an assistant[|endofturn|]\n[|user|]Another question\n[|assistant|]" },
    { "rwkv-world", "rwkv-world-like: {{ 'User: ' + content + '\\n\\nAssistant:' }}",
      "You are a helpful assistant\n\nUser: Hello\n\nAssistant:Hi there\n\nUser: Who are you\n\nAssistant:"
      "   I am an assistant   \n\nUser: Another question\n\nAssistant:" },
};

/* Renders with template t into a fresh buffer (measure, then write); NULL after a CHECK fails. */
static char *render(enum pf_chat_tmpl t, const struct pinfer_chat_msg *m, int n, bool add_ass)
{
    int len = pf_chat_tmpl_apply(t, m, n, add_ass, NULL, 0);
    CHECKF(len >= 0, "%s: %s", pf_chat_tmpl_name(t), pinfer_last_error());
    if (len < 0) return NULL;
    char *buf = malloc((size_t)len + 1);
    if (!buf) return NULL;
    int len2 = pf_chat_tmpl_apply(t, m, n, add_ass, buf, len + 1);
    CHECK(len2 == len && strlen(buf) == (size_t)len);
    return buf;
}

static enum pf_chat_tmpl by_name(const char *name)
{
    enum pf_chat_tmpl t = PF_CHAT_TMPL_COUNT;
    int rc = pf_chat_tmpl_from_name(name, strlen(name), &t);
    CHECKF(rc == 0, "from_name(%s): %s", name, pinfer_last_error());
    return t;
}

/* Checks that text equals want; prints both on a mismatch. */
static void check_text(const char *what, const char *got, const char *want)
{
    bool ok = got && !strcmp(got, want);
    CHECKF(ok, "%s:\n  want: '%s'\n  got:  '%s'", what, want, got ? got : "(null)");
}

/* ==== llama.cpp's cases: detection from the Jinja and selection by name ==== */

static void test_cases(bool covered[PF_CHAT_TMPL_COUNT])
{
    CHECK(N_CASES == (int)(sizeof case_tmpl / sizeof case_tmpl[0]));
    for (int i = 0; i < N_CASES; i++) {
        const struct chat_case *c = &chat_cases[i];
        const char *want = NULL;
        for (size_t k = 0; k < sizeof case_tmpl / sizeof case_tmpl[0]; k++)
            if (!strcmp(case_tmpl[k].model, c->model)) want = case_tmpl[k].tmpl;
        CHECKF(want, "no expected template for case '%s'", c->model);
        if (!want) continue;

        enum pf_chat_tmpl t = PF_CHAT_TMPL_COUNT;
        int rc = pf_chat_tmpl_detect(c->jinja, strlen(c->jinja), &t);
        CHECKF(rc == 0 && !strcmp(pf_chat_tmpl_name(t), want), "%s: detected %s, want %s (%s)", c->model,
               rc ? "nothing" : pf_chat_tmpl_name(t), want, rc ? pinfer_last_error() : "");
        char what[300];
        snprintf(what, sizeof what, "%s (detected from its Jinja)", c->model);
        char *got = rc ? NULL : render(t, conv, N_CONV, true);
        check_text(what, got, c->expected);
        free(got);

        /* by name, and both through the public API (no model) */
        enum pf_chat_tmpl tn = by_name(want);
        covered[tn] = true;
        snprintf(what, sizeof what, "%s (by name %s)", c->model, want);
        got = render(tn, conv, N_CONV, true);
        check_text(what, got, c->expected);
        free(got);
        const char *via[2] = { want, c->jinja };
        for (int v = 0; v < 2; v++) {
            char buf[2048];
            int len = pinfer_chat_apply(NULL, via[v], conv, N_CONV, true, buf, sizeof buf);
            CHECKF(len == (int)strlen(c->expected) && !strcmp(buf, c->expected), "%s: pinfer_chat_apply(%s) -> %d: %s",
                   c->model, v ? "jinja" : want, len, len < 0 ? pinfer_last_error() : buf);
        }
    }
    printf("%d llama.cpp cases: detected and rendered\n", N_CASES);
}

static void test_extra(bool covered[PF_CHAT_TMPL_COUNT])
{
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) {
        enum pf_chat_tmpl t = by_name(extra[i].tmpl), d = PF_CHAT_TMPL_COUNT;
        covered[t] = true;
        char *got = render(t, conv, N_CONV, true);
        check_text(extra[i].tmpl, got, extra[i].expected);
        free(got);
        int rc = pf_chat_tmpl_detect(extra[i].jinja, strlen(extra[i].jinja), &d);
        CHECKF(rc == 0 && d == t, "detect '%s': %s, want %s", extra[i].jinja, rc ? pinfer_last_error() : pf_chat_tmpl_name(d),
               extra[i].tmpl);
    }
    for (int t = 0; t < PF_CHAT_TMPL_COUNT; t++)
        CHECKF(covered[t], "template %s has no expected text", pf_chat_tmpl_name((enum pf_chat_tmpl)t));
}

/* ==== llama.cpp's single-message checks (fmt_sys, fmt_single in its test) ==== */

/* What llama.cpp's common_chat_format_single returns: the text new_msg adds to the rendering
 * of past[0..n_past) (with a "\n" first when add_ass and that rendering ends with one). */
static char *format_single(const char *name, const struct pinfer_chat_msg *past, int n_past,
                           struct pinfer_chat_msg new_msg, bool add_ass)
{
    struct pinfer_chat_msg all[8];
    char before[1024] = "", after[1024];
    if (n_past > 7) return NULL;
    if (n_past) memcpy(all, past, sizeof *past * (size_t)n_past);
    all[n_past] = new_msg;
    if (n_past && pinfer_chat_apply(NULL, name, past, n_past, false, before, sizeof before) < 0) return NULL;
    if (pinfer_chat_apply(NULL, name, all, n_past + 1, add_ass, after, sizeof after) < 0) return NULL;
    size_t nb = strlen(before);
    if (strncmp(after, before, nb)) return NULL;
    char *out = malloc(strlen(after) - nb + 2);
    if (!out) return NULL;
    snprintf(out, strlen(after) - nb + 2, "%s%s", add_ass && nb && before[nb - 1] == '\n' ? "\n" : "", after + nb);
    return out;
}

static void test_single(void)
{
    static const struct { const char *tmpl, *want; } sys[] = {
        { "chatml", "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n" },
        { "mistral-v1", " [INST] You are a helpful assistant\n\n" },
        { "mistral-v3", "[INST] You are a helpful assistant\n\n" },
        { "mistral-v3-tekken", "[INST]You are a helpful assistant\n\n" },
        { "mistral-v7", "[SYSTEM_PROMPT] You are a helpful assistant[/SYSTEM_PROMPT]" },
        { "llama2", "[INST] You are a helpful assistant\n" },
        { "llama2-sys", "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\n" },
        { "mistral", "[INST] You are a helpful assistant\n" }, /* pre-v1 Mistral: llama2 */
        { "gemma", "" },
        { "llama3", "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|>" },
        { "gigachat", "<s>You are a helpful assistant<|message_sep|>" },
    };
    static const struct { const char *tmpl, *want; } single[] = {
        { "chatml", "\n<|im_start|>user\nHow are you<|im_end|>\n<|im_start|>assistant\n" },
        { "mistral-v1", " [INST] How are you [/INST]" },
        { "mistral-v3", "[INST] How are you[/INST]" },
        { "mistral-v3-tekken", "[INST]How are you[/INST]" },
        { "mistral-v7", "[INST] How are you[/INST]" },
        { "llama2", "[INST] How are you [/INST]" },
        { "mistral", "[INST] How are you [/INST]" },
        { "gemma", "\n<start_of_turn>user\nHow are you<end_of_turn>\n<start_of_turn>model\n" },
        { "llama3", "<|start_header_id|>user<|end_header_id|>\n\nHow are you<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n" },
        { "gigachat", "user<|role_sep|>How are you<|message_sep|>available functions<|role_sep|>[]<|message_sep|>assistant<|role_sep|>" },
    };
    const struct pinfer_chat_msg sys_msg = { "system", "You are a helpful assistant" };
    const struct pinfer_chat_msg past[] = {
        { "system", "You are a helpful assistant" }, { "user", "Hello" }, { "assistant", "I am assistant" },
    };
    const struct pinfer_chat_msg new_msg = { "user", "How are you" };
    for (size_t i = 0; i < sizeof sys / sizeof sys[0]; i++) {
        char *got = format_single(sys[i].tmpl, NULL, 0, sys_msg, false), what[64];
        snprintf(what, sizeof what, "fmt_sys(%s)", sys[i].tmpl);
        check_text(what, got, sys[i].want);
        free(got);
    }
    for (size_t i = 0; i < sizeof single / sizeof single[0]; i++) {
        char *got = format_single(single[i].tmpl, past, 3, new_msg, true), what[64];
        snprintf(what, sizeof what, "fmt_single(%s)", single[i].tmpl);
        check_text(what, got, single[i].want);
        free(got);
    }
    printf("llama.cpp's fmt_sys and fmt_single checks: done\n");
}

/* ==== Detection details ==== */

static void test_detect(void)
{
    enum pf_chat_tmpl t;
    /* llama.cpp's order: "<|im_start|>" wins over everything after it; with <|im_sep|> it is phi4 */
    CHECK(pf_chat_tmpl_detect("<|im_start|>[INST]<start_of_turn>", 33, &t) == 0 && t == PF_CHAT_CHATML);
    CHECK(pf_chat_tmpl_detect("<|im_start|><|im_sep|>", 22, &t) == 0 && t == PF_CHAT_PHI4);
    /* a name is a name; "mistral" alone is the pre-v1 Llama 2 format */
    CHECK(pf_chat_tmpl_detect("gemma", 5, &t) == 0 && t == PF_CHAT_GEMMA);
    CHECK(pf_chat_tmpl_detect("mistral", 7, &t) == 0 && t == PF_CHAT_LLAMA2);
    CHECK(pf_chat_tmpl_detect("mistral-v7", 10, &t) == 0 && t == PF_CHAT_MISTRAL_V7);
    /* a NUL ends the text (llama.cpp reads a C string); len is honoured without one */
    CHECK(pf_chat_tmpl_detect("chatml\0junk", 11, &t) == 0 && t == PF_CHAT_CHATML);
    CHECK(pf_chat_tmpl_detect("gemmaXYZ", 5, &t) == 0 && t == PF_CHAT_GEMMA);
    /* names are case-sensitive, as in llama.cpp */
    CHECK(pf_chat_tmpl_detect("ChatML", 6, &t) == PINFER_EINVAL);
    /* unrecognised: a clear error with the supported names */
    const char *bad = "{% for m in messages %}{{ m.content }}\n{% endfor %} and a long tail that is cut";
    CHECK(pf_chat_tmpl_detect(bad, strlen(bad), &t) == PINFER_EINVAL);
    const char *msg = pinfer_last_error();
    printf("unrecognised: %s\n", msg);
    CHECK(strstr(msg, "unrecognised chat template") && strstr(msg, "chatml") && strstr(msg, "megrez") &&
          strstr(msg, "mistral-v3-tekken") && !strchr(msg, '\n'));
    CHECK(pf_chat_tmpl_detect("", 0, &t) == PINFER_EINVAL);
    CHECK(pf_chat_tmpl_detect(NULL, 0, &t) == PINFER_EINVAL);
    /* unknown names, by name only and through the public API */
    CHECK(pf_chat_tmpl_from_name("llama4", 6, &t) == PINFER_EINVAL);
    msg = pinfer_last_error();
    printf("unknown name: %s\n", msg);
    CHECK(strstr(msg, "unknown chat template 'llama4'") && strstr(msg, "chatml") && strstr(msg, "megrez"));
    CHECK(pf_chat_tmpl_from_name("chatml-", 6, &t) == 0 && t == PF_CHAT_CHATML);
    char buf[64] = "x";
    CHECK(pinfer_chat_apply(NULL, "INVALID TEMPLATE", conv, N_CONV, true, buf, sizeof buf) == PINFER_EINVAL);
    CHECK(buf[0] == 0);
    CHECK(strstr(pinfer_last_error(), "deepseek3") != NULL);
    /* names round-trip; the public list is the enum */
    const char *names[64];
    int nn = pinfer_chat_builtin_templates(names, 64);
    CHECK(nn == PF_CHAT_TMPL_COUNT);
    for (int i = 0; i < nn && i < 64; i++) {
        CHECK(pf_chat_tmpl_from_name(names[i], strlen(names[i]), &t) == 0 && (int)t == i);
        CHECK(pf_chat_tmpl_detect(names[i], strlen(names[i]), &t) == 0 && (int)t == i);
    }
    CHECK(pinfer_chat_builtin_templates(NULL, 0) == PF_CHAT_TMPL_COUNT);
    CHECK(pf_chat_tmpl_name(PF_CHAT_TMPL_COUNT) == NULL);
    char list[PF_CHAT_TMPL_LIST_MAX];
    pf_chat_tmpl_list(list, sizeof list);
    CHECKF(strlen(list) + 1 < sizeof list && strstr(list, ", megrez"), "list cut: %s", list);
}

/* ==== Buffers, add_ass, empty and odd conversations ==== */

static void test_buffers(void)
{
    const char *want = chat_cases[0].expected; /* chatml */
    const int len = (int)strlen(want);
    char buf[1024];
    for (int cap = 0; cap <= len + 2; cap++) {
        memset(buf, 0x5a, sizeof buf);
        int rc = pinfer_chat_apply(NULL, "chatml", conv, N_CONV, true, cap ? buf : NULL, cap);
        CHECKF(rc == len, "cap %d: returned %d, want %d", cap, rc, len);
        int w = cap == 0 ? 0 : (len < cap ? len : cap - 1); /* text bytes written */
        CHECKF(!memcmp(buf, want, (size_t)w), "cap %d: wrong prefix", cap);
        if (cap) CHECKF(buf[w] == 0, "cap %d: no NUL at %d", cap, w);
        bool clean = true;
        for (int k = cap; k < (int)sizeof buf; k++) clean &= buf[k] == 0x5a;
        CHECKF(clean, "cap %d: bytes written past cap", cap);
    }
    /* cap 0 leaves even buf[0] alone */
    buf[0] = 'q';
    CHECK(pinfer_chat_apply(NULL, "chatml", conv, N_CONV, true, buf, 0) == len && buf[0] == 'q');

    /* add_ass: the assistant opening only where the template has one */
    char a[1024], b[1024];
    CHECK(pinfer_chat_apply(NULL, "chatml", conv, N_CONV, false, a, sizeof a) == len - 22);
    CHECK(!strncmp(a, want, (size_t)len - 22) && strlen(a) == (size_t)len - 22);
    CHECK(pinfer_chat_apply(NULL, "mistral-v7", conv, N_CONV, false, a, sizeof a) > 0);
    CHECK(pinfer_chat_apply(NULL, "mistral-v7", conv, N_CONV, true, b, sizeof b) > 0 && !strcmp(a, b));

    /* an empty conversation */
    static const struct { const char *tmpl; bool add_ass; const char *want; } empty[] = {
        { "chatml", true, "<|im_start|>assistant\n" }, { "chatml", false, "" },
        { "llama2", true, "[INST] " }, { "gigachat", true, "<s>assistant<|role_sep|>" },
        { "chatglm3", true, "[gMASK]sop<|assistant|>" }, { "mistral-v3", true, "" },
    };
    for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++) {
        CHECK(pinfer_chat_apply(NULL, empty[i].tmpl, NULL, 0, empty[i].add_ass, a, sizeof a) == (int)strlen(empty[i].want));
        check_text(empty[i].tmpl, a, empty[i].want);
    }

    /* odd roles: written as given; openchat capitalises the role, even an empty one */
    const struct pinfer_chat_msg odd[] = { { "tool", "42" }, { "", "x" } };
    CHECK(pinfer_chat_apply(NULL, "chatml", odd, 2, false, a, sizeof a) > 0);
    check_text("chatml odd roles", a, "<|im_start|>tool\n42<|im_end|>\n<|im_start|>\nx<|im_end|>\n");
    CHECK(pinfer_chat_apply(NULL, "openchat", odd, 2, true, a, sizeof a) > 0);
    check_text("openchat odd roles", a, "GPT4 Correct Tool: 42<|end_of_turn|>GPT4 Correct : x<|end_of_turn|>GPT4 Correct Assistant:");
    /* contents that are all white space trim to nothing */
    const struct pinfer_chat_msg ws[] = { { "user", " \t\r\n\v\f " } };
    CHECK(pinfer_chat_apply(NULL, "llama3", ws, 1, false, a, sizeof a) > 0);
    check_text("llama3 blank", a, "<|start_header_id|>user<|end_header_id|>\n\n<|eot_id|>");
}

/* ==== Hostile input ==== */

static void test_hostile(void)
{
    char buf[256];
    struct pinfer_chat_msg m[2] = { { "user", "hi" }, { "assistant", NULL } };
    memset(buf, 'x', sizeof buf);
    CHECK(pinfer_chat_apply(NULL, "chatml", m, 2, true, buf, sizeof buf) == PINFER_EINVAL);
    CHECK(buf[0] == 0 && strstr(pinfer_last_error(), "message 1 (assistant) has no content"));
    m[1] = (struct pinfer_chat_msg){ NULL, "x" };
    CHECK(pinfer_chat_apply(NULL, "chatml", m, 2, true, buf, sizeof buf) == PINFER_EINVAL);
    CHECK(strstr(pinfer_last_error(), "message 1 has no role") != NULL);
    CHECK(pinfer_chat_apply(NULL, "chatml", m, -1, true, buf, sizeof buf) == PINFER_EINVAL);
    CHECK(pinfer_chat_apply(NULL, "chatml", NULL, 1, true, buf, sizeof buf) == PINFER_EINVAL);
    CHECK(pinfer_chat_apply(NULL, "chatml", conv, 1, true, buf, -1) == PINFER_EINVAL);
    CHECK(pinfer_chat_apply(NULL, "chatml", conv, 1, true, NULL, 10) == PINFER_EINVAL);
    CHECK(pf_chat_tmpl_apply(PF_CHAT_TMPL_COUNT, conv, 1, true, buf, sizeof buf) == PINFER_EINVAL);
    CHECK(pf_chat_tmpl_apply((enum pf_chat_tmpl)-1, conv, 1, true, buf, sizeof buf) == PINFER_EINVAL);

    /* huge content: 64 MiB renders whole; 33 messages of it (2.06 GiB) are refused, in every
       template, without writing past the buffer */
    const size_t big = 64u << 20;
    char *huge = malloc(big + 1), *out = malloc(big + 64);
    CHECK(huge && out);
    if (!huge || !out) { free(huge); free(out); return; }
    memset(huge, 'a', big);
    huge[0] = huge[big - 1] = ' ';
    huge[big] = 0;
    struct pinfer_chat_msg one = { "user", huge };
    int n = pinfer_chat_apply(NULL, "chatml", &one, 1, true, out, (int)(big + 64));
    CHECK(n == (int)big + 50 && !memcmp(out, "<|im_start|>user\n ", 18) && !strcmp(out + big + 16, " <|im_end|>\n<|im_start|>assistant\n"));
    n = pinfer_chat_apply(NULL, "llama3", &one, 1, false, out, (int)(big + 64)); /* trimmed */
    CHECK(n == (int)big - 2 + 52);
    struct pinfer_chat_msg many[33];
    for (int i = 0; i < 33; i++) many[i] = (struct pinfer_chat_msg){ i % 2 ? "assistant" : "user", huge };
    memset(buf, 'x', sizeof buf);
    for (int t = 0; t < PF_CHAT_TMPL_COUNT; t++) {
        int rc = pf_chat_tmpl_apply((enum pf_chat_tmpl)t, many, 33, true, buf, 16);
        CHECKF(rc == PINFER_ERANGE, "%s: 33 x 64 MiB gave %d", pf_chat_tmpl_name((enum pf_chat_tmpl)t), rc);
        CHECK(buf[0] == 0 && buf[16] == 'x');
    }
    printf("33 x 64 MiB: %s\n", pinfer_last_error());
    free(huge);
    free(out);
}

/* ==== Models: the default, and tokenizer.chat_template read from the file ==== */

/* Copies in to out with key tokenizer.chat_template set to tmpl (a string; NULL: a u32 instead,
 * a malformed value). 0 or -1. */
static int copy_with_template(const char *in, const char *out, const char *tmpl)
{
    struct gguf_file *f = NULL;
    struct gguf_writer *w = NULL;
    int rc = gguf_open(&f, in);
    if (!rc) rc = gguf_writer_new(&w);
    for (uint64_t i = 0; !rc && i < f->n_kv; i++) rc = gguf_writer_copy_kv(w, &f->kv[i]);
    if (!rc) rc = tmpl ? gguf_writer_set_str(w, "tokenizer.chat_template", tmpl) : gguf_writer_set_u32(w, "tokenizer.chat_template", 7);
    for (uint64_t i = 0; !rc && i < f->n_tensors; i++)
        rc = gguf_writer_add_tensor(w, f->tensors[i].name, f->tensors[i].type, f->tensors[i].n_dims, f->tensors[i].ne);
    if (!rc) rc = gguf_writer_begin(w, out);
    for (uint64_t i = 0; !rc && i < f->n_tensors; i++)
        rc = gguf_writer_write(w, f->data + f->tensors[i].file_offset, f->tensors[i].nbytes);
    if (!rc) rc = gguf_writer_finish(w);
    if (rc) fprintf(stderr, "copy_with_template: %s\n", pinfer_last_error());
    gguf_writer_free(w);
    gguf_close(f);
    return rc ? -1 : 0;
}

static void test_models(void)
{
    char buf[2048];
    const char *name = NULL;
    bool dflt = false;
    /* no model, no template: chatml, as llama_chat_apply_template(NULL, ...) */
    CHECK(pinfer_chat_apply(NULL, NULL, conv, N_CONV, true, buf, sizeof buf) == (int)strlen(chat_cases[0].expected));
    check_text("no model, no template", buf, chat_cases[0].expected);
    CHECK(pinfer_chat_template_name(NULL, NULL, &name, &dflt) == 0 && !strcmp(name, "chatml") && dflt);
    CHECK(!strcmp(PINFER_CHAT_DEFAULT_TEMPLATE, pf_chat_tmpl_name(PF_CHAT_TMPL_DEFAULT)));

    const char *path = tu_shared_path("models/stories260K/stories260K.gguf");
    if (!path || access(path, R_OK)) {
        printf("../shared is absent: the model checks are skipped\n");
        return;
    }
    struct pinfer_model_params mp = pinfer_model_default_params();
    mp.vocab_only = true;
    struct pinfer_model *m = NULL;
    CHECK(pinfer_model_load(&m, path, &mp) == 0);
    if (!m) return;
    /* stories260K has no tokenizer.chat_template: the default; a name or Jinja still wins */
    CHECK(pinfer_chat_apply(m, NULL, conv, N_CONV, true, buf, sizeof buf) > 0);
    check_text("stories260K, default", buf, chat_cases[0].expected);
    CHECK(pinfer_chat_template_name(m, NULL, &name, &dflt) == 0 && !strcmp(name, "chatml") && dflt);
    CHECK(pinfer_chat_template_name(m, "", &name, &dflt) == 0 && !strcmp(name, "chatml") && dflt);
    CHECK(pinfer_chat_template_name(m, "llama3", &name, &dflt) == 0 && !strcmp(name, "llama3") && !dflt);
    CHECK(pinfer_chat_template_name(m, "nope", &name, &dflt) == PINFER_EINVAL);
    /* chat text is tokenized with its special tokens parsed: "</s>" is EOS only then */
    int32_t ids[16];
    CHECK(pinfer_tokenize_ex(m, "</s>", 4, false, true, ids, 16) == 1 && ids[0] == pinfer_token_eos(m));
    CHECK(pinfer_tokenize_ex(m, "</s>", 4, false, false, ids, 16) > 1);
    CHECK(pinfer_tokenize(m, "</s>", 4, false, ids, 16) > 1);
    pinfer_model_free(m);

    /* copies with a template in the metadata: the Mistral v3 Jinja (several KiB), an empty one
       (the default), one no rule knows, a u32 */
    const struct chat_case *v3 = NULL;
    for (int i = 0; i < N_CASES; i++)
        if (strstr(chat_cases[i].model, "'v3' template")) v3 = &chat_cases[i];
    CHECK(v3 && strlen(v3->jinja) > 3900);
    if (!v3) return;
    /* and the same after 256 KiB of Jinja comment: no length limit on a model's template */
    size_t nv3 = strlen(v3->jinja), pad = 256u << 10;
    char *long_jinja = malloc(pad + nv3 + 1);
    CHECK(long_jinja != NULL);
    if (!long_jinja) return;
    memcpy(long_jinja, "{#", 2);
    memset(long_jinja + 2, '-', pad - 4);
    memcpy(long_jinja + pad - 2, "#}", 2);
    memcpy(long_jinja + pad, v3->jinja, nv3 + 1);
    static const struct { const char *jinja, *name; int rc; } files[] = {
        { NULL, "mistral-v3", 0 }, /* v3->jinja */
        { NULL, "mistral-v3", 0 }, /* long_jinja */
        { "", "chatml", 0 },
        { "{{ messages }}", NULL, PINFER_EINVAL },
        { NULL, NULL, PINFER_EFORMAT }, /* a u32 */
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char out[1200];
        snprintf(out, sizeof out, "%s/chat-%zu.gguf", tu_tmpdir(), i);
        const char *jinja = i == 0 ? v3->jinja : i == 1 ? long_jinja : files[i].jinja;
        CHECK(copy_with_template(path, out, i == 4 ? NULL : jinja) == 0);
        m = NULL;
        CHECK(pinfer_model_load(&m, out, &mp) == 0);
        if (!m) continue;
        memset(buf, 'x', sizeof buf);
        int rc = pinfer_chat_apply(m, NULL, conv, N_CONV, true, buf, sizeof buf);
        if (files[i].rc) {
            CHECKF(rc == files[i].rc && buf[0] == 0, "file %zu: %d", i, rc);
            printf("model template %zu: %s\n", i, pinfer_last_error());
            if (rc == PINFER_EINVAL) CHECK(strstr(pinfer_last_error(), "tokenizer.chat_template") && strstr(pinfer_last_error(), "megrez"));
            /* a name given by the caller still works */
            CHECK(pinfer_chat_apply(m, "chatml", conv, N_CONV, true, buf, sizeof buf) > 0);
            check_text("named over a bad model template", buf, chat_cases[0].expected);
        } else {
            CHECK(pinfer_chat_template_name(m, NULL, &name, &dflt) == 0 && !strcmp(name, files[i].name) && dflt == (i == 2));
            check_text(files[i].name, rc > 0 ? buf : NULL, i < 2 ? v3->expected : chat_cases[0].expected);
        }
        pinfer_model_free(m);
        unlink(out);
    }
    free(long_jinja);
}

int main(void)
{
    bool covered[PF_CHAT_TMPL_COUNT] = { false };
    test_cases(covered);
    test_extra(covered);
    test_single();
    test_detect();
    test_buffers();
    test_hostile();
    test_models();
    TEST_DONE();
}
