/* Built-in chat templates: recognising one (by name or by substrings of a Jinja template) and
 * rendering a conversation with it, byte for byte as llama.cpp's llm_chat_detect_template and
 * llm_chat_apply_template do at commit c392e5094 (src/llama-chat.cpp). pinfer's own code; the
 * expected texts in tests/test_chat_template.c come from llama.cpp's test. */
#include "chat/template.h"

#include "core/error.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>

/* ==== Names ==== */

static const char *const tmpl_names[PF_CHAT_TMPL_COUNT] = {
    [PF_CHAT_CHATML] = "chatml",
    [PF_CHAT_LLAMA2] = "llama2",
    [PF_CHAT_LLAMA2_SYS] = "llama2-sys",
    [PF_CHAT_LLAMA2_SYS_BOS] = "llama2-sys-bos",
    [PF_CHAT_LLAMA2_SYS_STRIP] = "llama2-sys-strip",
    [PF_CHAT_MISTRAL_V1] = "mistral-v1",
    [PF_CHAT_MISTRAL_V3] = "mistral-v3",
    [PF_CHAT_MISTRAL_V3_TEKKEN] = "mistral-v3-tekken",
    [PF_CHAT_MISTRAL_V7] = "mistral-v7",
    [PF_CHAT_PHI3] = "phi3",
    [PF_CHAT_PHI4] = "phi4",
    [PF_CHAT_FALCON3] = "falcon3",
    [PF_CHAT_ZEPHYR] = "zephyr",
    [PF_CHAT_MONARCH] = "monarch",
    [PF_CHAT_GEMMA] = "gemma",
    [PF_CHAT_ORION] = "orion",
    [PF_CHAT_OPENCHAT] = "openchat",
    [PF_CHAT_VICUNA] = "vicuna",
    [PF_CHAT_VICUNA_ORCA] = "vicuna-orca",
    [PF_CHAT_DEEPSEEK] = "deepseek",
    [PF_CHAT_DEEPSEEK2] = "deepseek2",
    [PF_CHAT_DEEPSEEK3] = "deepseek3",
    [PF_CHAT_COMMAND_R] = "command-r",
    [PF_CHAT_LLAMA3] = "llama3",
    [PF_CHAT_CHATGLM3] = "chatglm3",
    [PF_CHAT_CHATGLM4] = "chatglm4",
    [PF_CHAT_GLMEDGE] = "glmedge",
    [PF_CHAT_MINICPM] = "minicpm",
    [PF_CHAT_EXAONE3] = "exaone3",
    [PF_CHAT_RWKV_WORLD] = "rwkv-world",
    [PF_CHAT_GRANITE] = "granite",
    [PF_CHAT_GIGACHAT] = "gigachat",
    [PF_CHAT_MEGREZ] = "megrez",
};

const char *pf_chat_tmpl_name(enum pf_chat_tmpl t)
{
    return (unsigned)t < PF_CHAT_TMPL_COUNT ? tmpl_names[t] : NULL;
}

const char *pf_chat_tmpl_list(char *buf, size_t cap)
{
    if (!cap) return buf;
    size_t n = 0;
    buf[0] = 0;
    for (int t = 0; t < PF_CHAT_TMPL_COUNT && n + 1 < cap; t++) {
        int w = snprintf(buf + n, cap - n, "%s%s", t ? ", " : "", tmpl_names[t]);
        if (w < 0) break;
        n += (size_t)w;
    }
    return buf;
}

static bool name_match(const char *s, size_t len, enum pf_chat_tmpl *out)
{
    for (int t = 0; t < PF_CHAT_TMPL_COUNT; t++)
        if (strlen(tmpl_names[t]) == len && !memcmp(tmpl_names[t], s, len)) {
            *out = (enum pf_chat_tmpl)t;
            return true;
        }
    return false;
}

int pf_chat_tmpl_from_name(const char *name, size_t len, enum pf_chat_tmpl *out)
{
    char list[PF_CHAT_TMPL_LIST_MAX];
    if (!name) return pf_fail(PINFER_EINVAL, "no chat template name given; supported: %s", pf_chat_tmpl_list(list, sizeof list));
    if (name_match(name, len, out)) return 0;
    return pf_fail(PINFER_EINVAL, "unknown chat template '%.*s'; supported: %s",
                   len > 40 ? 40 : (int)len, name, pf_chat_tmpl_list(list, sizeof list));
}

/* ==== Detection ==== */

struct text { const char *s; size_t len; };

static bool has(struct text t, const char *needle)
{
    return memmem(t.s, t.len, needle, strlen(needle)) != NULL;
}

/* The Mistral and Llama 2 family: the template starts with "mistral" or contains "[INST]". */
static enum pf_chat_tmpl detect_inst(struct text t)
{
    if (has(t, "[SYSTEM_PROMPT]")) return PF_CHAT_MISTRAL_V7;
    /* Mistral's official templates: v1 writes "' [INST] ' + system_message", v3 and v3-tekken
       list [AVAILABLE_TOOLS]; v1 has " [INST]" with a space, tekken has "[INST]" quoted */
    if (has(t, "' [INST] ' + system_message") || has(t, "[AVAILABLE_TOOLS]")) {
        if (has(t, " [INST]")) return PF_CHAT_MISTRAL_V1;
        if (has(t, "\"[INST]\"")) return PF_CHAT_MISTRAL_V3_TEKKEN;
        return PF_CHAT_MISTRAL_V3;
    }
    /* Llama 2 and the variants community templates made of it */
    if (has(t, "content.strip()")) return PF_CHAT_LLAMA2_SYS_STRIP;
    if (has(t, "bos_token + '[INST]")) return PF_CHAT_LLAMA2_SYS_BOS;
    if (has(t, "<<SYS>>")) return PF_CHAT_LLAMA2_SYS;
    return PF_CHAT_LLAMA2;
}

/* llama.cpp's substring rules, in its order (the first that matches wins); COUNT if none. */
static enum pf_chat_tmpl detect_jinja(struct text t)
{
    if (has(t, "<|im_start|>")) return has(t, "<|im_sep|>") ? PF_CHAT_PHI4 : PF_CHAT_CHATML;
    if ((t.len >= 7 && !memcmp(t.s, "mistral", 7)) || has(t, "[INST]")) return detect_inst(t);
    if (has(t, "<|assistant|>") && has(t, "<|end|>")) return PF_CHAT_PHI3;
    if (has(t, "<|assistant|>") && has(t, "<|user|>")) return has(t, "</s>") ? PF_CHAT_FALCON3 : PF_CHAT_GLMEDGE;
    if (has(t, "<|user|>") && has(t, "<|endoftext|>")) return PF_CHAT_ZEPHYR;
    if (has(t, "bos_token + message['role']")) return PF_CHAT_MONARCH;
    if (has(t, "<start_of_turn>")) return PF_CHAT_GEMMA;
    if (has(t, "'\\n\\nAssistant: ' + eos_token")) return PF_CHAT_ORION;       /* Orion-14B-Chat */
    if (has(t, "GPT4 Correct ")) return PF_CHAT_OPENCHAT;                      /* openchat-3.5 */
    if (has(t, "USER: ") && has(t, "ASSISTANT: "))                             /* vicuna-13b-1.1 */
        return has(t, "SYSTEM: ") ? PF_CHAT_VICUNA_ORCA : PF_CHAT_VICUNA;
    if (has(t, "### Instruction:") && has(t, "<|EOT|>")) return PF_CHAT_DEEPSEEK; /* deepseek-coder */
    if (has(t, "<|START_OF_TURN_TOKEN|>") && has(t, "<|USER_TOKEN|>")) return PF_CHAT_COMMAND_R;
    if (has(t, "<|start_header_id|>") && has(t, "<|end_header_id|>")) return PF_CHAT_LLAMA3;
    if (has(t, "[gMASK]sop")) return PF_CHAT_CHATGLM3;
    if (has(t, "[gMASK]<sop>")) return PF_CHAT_CHATGLM4;
    if (has(t, u8"<用户>")) return PF_CHAT_MINICPM;
    if (has(t, "'Assistant: ' + message['content'] + eos_token")) return PF_CHAT_DEEPSEEK2;
    if (has(t, u8"<｜Assistant｜>") && has(t, u8"<｜User｜>") && has(t, u8"<｜end▁of▁sentence｜>"))
        return PF_CHAT_DEEPSEEK3;
    if (has(t, "[|system|]") && has(t, "[|assistant|]") && has(t, "[|endofturn|]")) return PF_CHAT_EXAONE3;
    if (has(t, "rwkv-world")) return PF_CHAT_RWKV_WORLD;
    if (has(t, "<|start_of_role|>")) return PF_CHAT_GRANITE;
    if (has(t, "message['role'] + additional_special_tokens[0] + message['content'] + additional_special_tokens[1]"))
        return PF_CHAT_GIGACHAT;
    if (has(t, "<|role_start|>")) return PF_CHAT_MEGREZ;
    return PF_CHAT_TMPL_COUNT;
}

int pf_chat_tmpl_detect(const char *s, size_t len, enum pf_chat_tmpl *out)
{
    char list[PF_CHAT_TMPL_LIST_MAX];
    if (!s) return pf_fail(PINFER_EINVAL, "no chat template given; supported: %s", pf_chat_tmpl_list(list, sizeof list));
    const char *nul = memchr(s, 0, len);
    struct text t = { s, nul ? (size_t)(nul - s) : len };
    if (name_match(t.s, t.len, out)) return 0;
    enum pf_chat_tmpl d = detect_jinja(t);
    if (d != PF_CHAT_TMPL_COUNT) {
        *out = d;
        return 0;
    }
    /* the start of a Jinja template on one line: newlines shown as spaces */
    char head[48];
    size_t h = t.len < sizeof head - 1 ? t.len : sizeof head - 1;
    for (size_t i = 0; i < h; i++) head[i] = (t.s[i] == '\n' || t.s[i] == '\r' || t.s[i] == '\t') ? ' ' : t.s[i];
    head[h] = 0;
    return pf_fail(PINFER_EINVAL, "unrecognised chat template '%s%s' (%zu bytes): not a built-in name and not "
                   "like any known model's Jinja template; supported: %s",
                   head, t.len > h ? "..." : "", t.len, pf_chat_tmpl_list(list, sizeof list));
}

/* ==== Rendering ==== */

/* The text is counted whole and written while it fits: room = cap - 1 bytes (the NUL). */
struct out {
    char *buf;
    size_t room;
    size_t len;    /* bytes of the whole text so far */
    bool too_long; /* the text would reach INT_MAX bytes */
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->too_long || n >= (size_t)INT_MAX - o->len) { o->too_long = true; return; }
    if (o->len < o->room) memcpy(o->buf + o->len, s, n < o->room - o->len ? n : o->room - o->len);
    o->len += n;
}

#define PUT(o, lit) put((o), (lit), sizeof(lit) - 1)

static void put_str(struct out *o, const char *s) { put(o, s, strlen(s)); }

/* llama.cpp's trim: ASCII white space (isspace in the C locale) off both ends */
static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

static struct text trimmed(const char *s)
{
    size_t a = 0, b = strlen(s);
    while (a < b && is_space(s[a])) a++;
    while (b > a && is_space(s[b - 1])) b--;
    return (struct text){ s + a, b - a };
}

static void put_trim(struct out *o, const char *s)
{
    struct text t = trimmed(s);
    put(o, t.s, t.len);
}

static bool role_is(const struct pinfer_chat_msg *m, const char *role) { return !strcmp(m->role, role); }

/* [INST] templates of Mistral's v1, v3 and v3-tekken: they differ in the spaces around [INST]
 * and in trimming replies; a system message opens the first turn. */
static void fmt_mistral(struct out *o, enum pf_chat_tmpl t, const struct pinfer_chat_msg *m, int n)
{
    const char *lead = t == PF_CHAT_MISTRAL_V1 ? " " : "";
    const char *trail = t == PF_CHAT_MISTRAL_V3_TEKKEN ? "" : " ";
    bool in_turn = false;
    for (int i = 0; i < n; i++) {
        if (!in_turn) {
            put_str(o, lead); PUT(o, "[INST]"); put_str(o, trail);
            in_turn = true;
        }
        if (role_is(&m[i], "system")) {
            put_str(o, m[i].content); PUT(o, "\n\n");
        } else if (role_is(&m[i], "user")) {
            put_str(o, m[i].content); put_str(o, lead); PUT(o, "[/INST]");
        } else {
            put_str(o, trail);
            if (t == PF_CHAT_MISTRAL_V3) put_trim(o, m[i].content);
            else put_str(o, m[i].content);
            PUT(o, "</s>");
            in_turn = false;
        }
    }
}

/* Llama 2 ([INST] ... [/INST] reply</s>): the first [INST] is written before any message;
 * variants put the system text in <<SYS>>, add <s> before later turns, trim every content. */
static void fmt_llama2(struct out *o, enum pf_chat_tmpl t, const struct pinfer_chat_msg *m, int n)
{
    bool sys_block = t != PF_CHAT_LLAMA2, bos_inside = t == PF_CHAT_LLAMA2_SYS_BOS;
    bool strip = t == PF_CHAT_LLAMA2_SYS_STRIP, in_turn = true;
    PUT(o, "[INST] ");
    for (int i = 0; i < n; i++) {
        struct text c = strip ? trimmed(m[i].content) : (struct text){ m[i].content, strlen(m[i].content) };
        if (!in_turn) {
            in_turn = true;
            if (bos_inside) PUT(o, "<s>[INST] ");
            else PUT(o, "[INST] ");
        }
        if (role_is(&m[i], "system")) {
            if (sys_block) { PUT(o, "<<SYS>>\n"); put(o, c.s, c.len); PUT(o, "\n<</SYS>>\n\n"); }
            else { put(o, c.s, c.len); PUT(o, "\n"); }
        } else if (role_is(&m[i], "user")) {
            put(o, c.s, c.len); PUT(o, " [/INST]");
        } else {
            put(o, c.s, c.len); PUT(o, "</s>");
            in_turn = false;
        }
    }
}

/* Gemma has no system role: the (trimmed) system text opens the next non-model turn; the
 * assistant is called "model" */
static void fmt_gemma(struct out *o, const struct pinfer_chat_msg *m, int n, bool add_ass)
{
    struct text sys = { "", 0 };
    for (int i = 0; i < n; i++) {
        if (role_is(&m[i], "system")) {
            sys = trimmed(m[i].content);
            continue;
        }
        const char *role = role_is(&m[i], "assistant") ? "model" : m[i].role;
        PUT(o, "<start_of_turn>"); put_str(o, role); PUT(o, "\n");
        if (sys.len && strcmp(role, "model")) {
            put(o, sys.s, sys.len); PUT(o, "\n\n");
            sys.len = 0;
        }
        put_trim(o, m[i].content); PUT(o, "<end_of_turn>\n");
    }
    if (add_ass) PUT(o, "<start_of_turn>model\n");
}

/* Orion has no system role either: the system text opens the next user turn */
static void fmt_orion(struct out *o, const struct pinfer_chat_msg *m, int n)
{
    const char *sys = "";
    for (int i = 0; i < n; i++) {
        if (role_is(&m[i], "system")) {
            sys = m[i].content;
        } else if (role_is(&m[i], "user")) {
            PUT(o, "Human: ");
            if (*sys) { put_str(o, sys); PUT(o, "\n\n"); sys = ""; }
            put_str(o, m[i].content); PUT(o, "\n\nAssistant: </s>");
        } else {
            put_str(o, m[i].content); PUT(o, "</s>");
        }
    }
}

/* GigaChat: a leading system message is folded into the <s> that starts the text; later system
 * messages (and other roles) are dropped */
static void fmt_gigachat(struct out *o, const struct pinfer_chat_msg *m, int n, bool add_ass)
{
    bool has_sys = n > 0 && role_is(&m[0], "system");
    PUT(o, "<s>");
    if (has_sys) { put_str(o, m[0].content); PUT(o, "<|message_sep|>"); }
    for (int i = has_sys ? 1 : 0; i < n; i++) {
        if (role_is(&m[i], "user")) {
            PUT(o, "user<|role_sep|>"); put_str(o, m[i].content);
            PUT(o, "<|message_sep|>available functions<|role_sep|>[]<|message_sep|>");
        } else if (role_is(&m[i], "assistant")) {
            PUT(o, "assistant<|role_sep|>"); put_str(o, m[i].content); PUT(o, "<|message_sep|>");
        }
    }
    if (add_ass) PUT(o, "assistant<|role_sep|>");
}

/* The templates that write each message as one fixed pattern of role and content. */
static void fmt_simple(struct out *o, enum pf_chat_tmpl t, const struct pinfer_chat_msg *m, int n, bool add_ass)
{
    if (t == PF_CHAT_CHATGLM3) PUT(o, "[gMASK]sop");
    if (t == PF_CHAT_CHATGLM4) PUT(o, "[gMASK]<sop>");
    for (int i = 0; i < n; i++) {
        const char *role = m[i].role, *c = m[i].content;
        bool sys = role_is(&m[i], "system"), user = role_is(&m[i], "user"), ass = role_is(&m[i], "assistant");
        switch (t) {
        case PF_CHAT_CHATML:
            PUT(o, "<|im_start|>"); put_str(o, role); PUT(o, "\n"); put_str(o, c); PUT(o, "<|im_end|>\n");
            break;
        case PF_CHAT_MISTRAL_V7:
            if (sys) { PUT(o, "[SYSTEM_PROMPT] "); put_str(o, c); PUT(o, "[/SYSTEM_PROMPT]"); }
            else if (user) { PUT(o, "[INST] "); put_str(o, c); PUT(o, "[/INST]"); }
            else { PUT(o, " "); put_str(o, c); PUT(o, "</s>"); }
            break;
        case PF_CHAT_PHI3:
            PUT(o, "<|"); put_str(o, role); PUT(o, "|>\n"); put_str(o, c); PUT(o, "<|end|>\n");
            break;
        case PF_CHAT_PHI4:
            PUT(o, "<|im_start|>"); put_str(o, role); PUT(o, "<|im_sep|>"); put_str(o, c); PUT(o, "<|im_end|>");
            break;
        case PF_CHAT_FALCON3:
            PUT(o, "<|"); put_str(o, role); PUT(o, "|>\n"); put_str(o, c); PUT(o, "\n");
            break;
        case PF_CHAT_ZEPHYR:
            PUT(o, "<|"); put_str(o, role); PUT(o, "|>\n"); put_str(o, c); PUT(o, "<|endoftext|>\n");
            break;
        case PF_CHAT_MONARCH: /* <s> inside the history, not before the first message */
            if (i) PUT(o, "<s>");
            put_str(o, role); PUT(o, "\n"); put_str(o, c); PUT(o, "</s>\n");
            break;
        case PF_CHAT_OPENCHAT:
            if (sys) { put_str(o, c); PUT(o, "<|end_of_turn|>"); break; }
            PUT(o, "GPT4 Correct ");
            if (*role) { /* the role capitalised, as llama.cpp's toupper in the C locale: ASCII only */
                char first = role[0] >= 'a' && role[0] <= 'z' ? (char)(role[0] - 'a' + 'A') : role[0];
                put(o, &first, 1); put_str(o, role + 1);
            }
            PUT(o, ": "); put_str(o, c); PUT(o, "<|end_of_turn|>");
            break;
        case PF_CHAT_VICUNA:
        case PF_CHAT_VICUNA_ORCA:
            if (sys && t == PF_CHAT_VICUNA_ORCA) { PUT(o, "SYSTEM: "); put_str(o, c); PUT(o, "\n"); }
            else if (sys) { put_str(o, c); PUT(o, "\n\n"); }
            else if (user) { PUT(o, "USER: "); put_str(o, c); PUT(o, "\n"); }
            else if (ass) { PUT(o, "ASSISTANT: "); put_str(o, c); PUT(o, "</s>\n"); }
            break;
        case PF_CHAT_DEEPSEEK:
            if (sys) put_str(o, c);
            else if (user) { PUT(o, "### Instruction:\n"); put_str(o, c); PUT(o, "\n"); }
            else if (ass) { PUT(o, "### Response:\n"); put_str(o, c); PUT(o, "\n<|EOT|>\n"); }
            break;
        case PF_CHAT_DEEPSEEK2:
            if (sys) { put_str(o, c); PUT(o, "\n\n"); }
            else if (user) { PUT(o, "User: "); put_str(o, c); PUT(o, "\n\n"); }
            else if (ass) { PUT(o, "Assistant: "); put_str(o, c); PUT(o, u8"<｜end▁of▁sentence｜>"); }
            break;
        case PF_CHAT_DEEPSEEK3:
            if (sys) { put_str(o, c); PUT(o, "\n\n"); }
            else if (user) { PUT(o, u8"<｜User｜>"); put_str(o, c); }
            else if (ass) { PUT(o, u8"<｜Assistant｜>"); put_str(o, c); PUT(o, u8"<｜end▁of▁sentence｜>"); }
            break;
        case PF_CHAT_COMMAND_R:
            if (!sys && !user && !ass) break;
            PUT(o, "<|START_OF_TURN_TOKEN|>");
            if (sys) PUT(o, "<|SYSTEM_TOKEN|>");
            else if (user) PUT(o, "<|USER_TOKEN|>");
            else PUT(o, "<|CHATBOT_TOKEN|>");
            put_trim(o, c); PUT(o, "<|END_OF_TURN_TOKEN|>");
            break;
        case PF_CHAT_LLAMA3:
            PUT(o, "<|start_header_id|>"); put_str(o, role); PUT(o, "<|end_header_id|>\n\n");
            put_trim(o, c); PUT(o, "<|eot_id|>");
            break;
        case PF_CHAT_CHATGLM3:
            PUT(o, "<|"); put_str(o, role); PUT(o, "|>\n "); put_str(o, c);
            break;
        case PF_CHAT_CHATGLM4:
        case PF_CHAT_GLMEDGE:
            PUT(o, "<|"); put_str(o, role); PUT(o, "|>\n"); put_str(o, c);
            break;
        case PF_CHAT_MINICPM:
            if (user) { PUT(o, u8"<用户>"); put_trim(o, c); PUT(o, "<AI>"); }
            else put_trim(o, c);
            break;
        case PF_CHAT_EXAONE3:
            if (sys) { PUT(o, "[|system|]"); put_trim(o, c); PUT(o, "[|endofturn|]\n"); }
            else if (user) { PUT(o, "[|user|]"); put_trim(o, c); PUT(o, "\n"); }
            else if (ass) { PUT(o, "[|assistant|]"); put_trim(o, c); PUT(o, "[|endofturn|]\n"); }
            break;
        case PF_CHAT_RWKV_WORLD: /* the model must have "\n\n" as its end-of-turn token */
            if (user) { PUT(o, "User: "); put_str(o, c); PUT(o, "\n\nAssistant:"); }
            else { put_str(o, c); PUT(o, "\n\n"); }
            break;
        case PF_CHAT_GRANITE:
            PUT(o, "<|start_of_role|>"); put_str(o, role); PUT(o, "<|end_of_role|>");
            if (!strcmp(role, "assistant_tool_call")) PUT(o, "<|tool_call|>");
            put_str(o, c); PUT(o, "<|end_of_text|>\n");
            break;
        case PF_CHAT_MEGREZ:
            PUT(o, "<|role_start|>"); put_str(o, role); PUT(o, "<|role_end|>"); put_str(o, c); PUT(o, "<|turn_end|>");
            break;
        default:
            break;
        }
    }
    if (!add_ass) return;
    switch (t) {
    case PF_CHAT_CHATML: PUT(o, "<|im_start|>assistant\n"); break;
    case PF_CHAT_PHI3:
    case PF_CHAT_FALCON3:
    case PF_CHAT_ZEPHYR: PUT(o, "<|assistant|>\n"); break;
    case PF_CHAT_PHI4: PUT(o, "<|im_start|>assistant<|im_sep|>"); break;
    case PF_CHAT_MONARCH: PUT(o, "<s>assistant\n"); break;
    case PF_CHAT_OPENCHAT: PUT(o, "GPT4 Correct Assistant:"); break;
    case PF_CHAT_VICUNA:
    case PF_CHAT_VICUNA_ORCA: PUT(o, "ASSISTANT:"); break;
    case PF_CHAT_DEEPSEEK: PUT(o, "### Response:\n"); break;
    case PF_CHAT_DEEPSEEK2: PUT(o, "Assistant:"); break;
    case PF_CHAT_DEEPSEEK3: PUT(o, u8"<｜Assistant｜>"); break;
    case PF_CHAT_COMMAND_R: PUT(o, "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>"); break;
    case PF_CHAT_LLAMA3: PUT(o, "<|start_header_id|>assistant<|end_header_id|>\n\n"); break;
    case PF_CHAT_CHATGLM3:
    case PF_CHAT_CHATGLM4:
    case PF_CHAT_GLMEDGE: PUT(o, "<|assistant|>"); break;
    case PF_CHAT_EXAONE3: PUT(o, "[|assistant|]"); break;
    case PF_CHAT_GRANITE: PUT(o, "<|start_of_role|>assistant<|end_of_role|>\n"); break;
    case PF_CHAT_MEGREZ: PUT(o, "<|role_start|>assistant<|role_end|>"); break;
    default: break; /* mistral-v7, minicpm, rwkv-world: no assistant opening (as llama.cpp) */
    }
}

static int apply_fail(char *buf, int cap, int code)
{
    if (cap > 0 && buf) buf[0] = 0;
    return code;
}

int pf_chat_tmpl_apply(enum pf_chat_tmpl t, const struct pinfer_chat_msg *msgs, int n, bool add_ass,
                       char *buf, int cap)
{
    if (cap < 0) return pf_fail(PINFER_EINVAL, "chat template: negative buffer size %d", cap);
    if (!buf && cap > 0) return pf_fail(PINFER_EINVAL, "chat template: no buffer for %d bytes", cap);
    if ((unsigned)t >= PF_CHAT_TMPL_COUNT)
        return apply_fail(buf, cap, pf_fail(PINFER_EINVAL, "chat template: no template %d", (int)t));
    if (n < 0) return apply_fail(buf, cap, pf_fail(PINFER_EINVAL, "chat template: negative message count %d", n));
    if (n > 0 && !msgs) return apply_fail(buf, cap, pf_fail(PINFER_EINVAL, "chat template: %d messages but no array", n));
    for (int i = 0; i < n; i++) {
        if (!msgs[i].role) return apply_fail(buf, cap, pf_fail(PINFER_EINVAL, "chat message %d has no role", i));
        if (!msgs[i].content) return apply_fail(buf, cap, pf_fail(PINFER_EINVAL, "chat message %d (%.32s) has no content", i, msgs[i].role));
    }

    struct out o = { buf, cap > 0 ? (size_t)cap - 1 : 0, 0, false };
    switch (t) {
    case PF_CHAT_LLAMA2:
    case PF_CHAT_LLAMA2_SYS:
    case PF_CHAT_LLAMA2_SYS_BOS:
    case PF_CHAT_LLAMA2_SYS_STRIP: fmt_llama2(&o, t, msgs, n); break;
    case PF_CHAT_MISTRAL_V1:
    case PF_CHAT_MISTRAL_V3:
    case PF_CHAT_MISTRAL_V3_TEKKEN: fmt_mistral(&o, t, msgs, n); break;
    case PF_CHAT_GEMMA: fmt_gemma(&o, msgs, n, add_ass); break;
    case PF_CHAT_ORION: fmt_orion(&o, msgs, n); break;
    case PF_CHAT_GIGACHAT: fmt_gigachat(&o, msgs, n, add_ass); break;
    default: fmt_simple(&o, t, msgs, n, add_ass); break;
    }
    if (o.too_long)
        return apply_fail(buf, cap, pf_fail(PINFER_ERANGE, "chat template %s: the conversation would take 2 GiB or more as text",
                                            tmpl_names[t]));
    if (cap > 0) buf[o.len < o.room ? o.len : o.room] = 0;
    return (int)o.len;
}
