/* Chat templates: a conversation of {role, content} messages rendered as the prompt text a chat
 * model was trained on, the way llama.cpp's llama_chat_apply_template renders it (its
 * src/llama-chat.cpp at commit c392e5094 is the specification). There is no Jinja interpreter:
 * a fixed list of built-in formats, chosen by name ("chatml") or recognised from a model's Jinja
 * template (tokenizer.chat_template) by the substrings llama.cpp looks for, in its order.
 *
 * Nothing here allocates: pf_chat_tmpl_apply writes into the caller's buffer and reports the
 * length the whole text needs, as snprintf does. Depends on core only. */
#ifndef PF_CHAT_TEMPLATE_H
#define PF_CHAT_TEMPLATE_H

#include "pinfer.h"

#include <stdbool.h>
#include <stddef.h>

/* The built-in templates, in the order of llama.cpp's name table; pf_chat_tmpl_name gives the
 * name llama.cpp gives each. */
enum pf_chat_tmpl {
    PF_CHAT_CHATML,            /* "chatml": <|im_start|>role\ncontent<|im_end|>\n */
    PF_CHAT_LLAMA2,            /* "llama2": [INST] ... [/INST], system text merged into the turn */
    PF_CHAT_LLAMA2_SYS,        /* "llama2-sys": the system message in <<SYS>> ... <</SYS>> */
    PF_CHAT_LLAMA2_SYS_BOS,    /* "llama2-sys-bos": and <s> before every later [INST] */
    PF_CHAT_LLAMA2_SYS_STRIP,  /* "llama2-sys-strip": and every content trimmed */
    PF_CHAT_MISTRAL_V1,        /* "mistral-v1": " [INST] ... [/INST]" */
    PF_CHAT_MISTRAL_V3,        /* "mistral-v3": "[INST] ...[/INST]", replies trimmed */
    PF_CHAT_MISTRAL_V3_TEKKEN, /* "mistral-v3-tekken": "[INST]...[/INST]" */
    PF_CHAT_MISTRAL_V7,        /* "mistral-v7": [SYSTEM_PROMPT] and [INST] blocks */
    PF_CHAT_PHI3,              /* "phi3": <|role|>\ncontent<|end|>\n */
    PF_CHAT_PHI4,              /* "phi4": <|im_start|>role<|im_sep|>content<|im_end|> */
    PF_CHAT_FALCON3,           /* "falcon3": <|role|>\ncontent\n */
    PF_CHAT_ZEPHYR,            /* "zephyr": <|role|>\ncontent<|endoftext|>\n */
    PF_CHAT_MONARCH,           /* "monarch": <s>role\ncontent</s>\n (no <s> on the first) */
    PF_CHAT_GEMMA,             /* "gemma": <start_of_turn>user|model, system merged into the next user turn */
    PF_CHAT_ORION,             /* "orion": Human: ... \n\nAssistant: </s> */
    PF_CHAT_OPENCHAT,          /* "openchat": GPT4 Correct Role: content<|end_of_turn|> */
    PF_CHAT_VICUNA,            /* "vicuna": USER: / ASSISTANT: */
    PF_CHAT_VICUNA_ORCA,       /* "vicuna-orca": and SYSTEM: */
    PF_CHAT_DEEPSEEK,          /* "deepseek": ### Instruction: / ### Response: (deepseek-coder) */
    PF_CHAT_DEEPSEEK2,         /* "deepseek2": User: / Assistant: (DeepSeek-V2) */
    PF_CHAT_DEEPSEEK3,         /* "deepseek3": <｜User｜> / <｜Assistant｜> (DeepSeek-V3, R1) */
    PF_CHAT_COMMAND_R,         /* "command-r": <|START_OF_TURN_TOKEN|><|USER_TOKEN|> ... */
    PF_CHAT_LLAMA3,            /* "llama3": <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|> */
    PF_CHAT_CHATGLM3,          /* "chatglm3": [gMASK]sop<|role|>\n content */
    PF_CHAT_CHATGLM4,          /* "chatglm4": [gMASK]<sop><|role|>\ncontent */
    PF_CHAT_GLMEDGE,           /* "glmedge": <|role|>\ncontent */
    PF_CHAT_MINICPM,           /* "minicpm": <用户>content<AI> */
    PF_CHAT_EXAONE3,           /* "exaone3": [|role|]content[|endofturn|] */
    PF_CHAT_RWKV_WORLD,        /* "rwkv-world": User: ...\n\nAssistant: */
    PF_CHAT_GRANITE,           /* "granite": <|start_of_role|>role<|end_of_role|> */
    PF_CHAT_GIGACHAT,          /* "gigachat": role<|role_sep|>content<|message_sep|> */
    PF_CHAT_MEGREZ,            /* "megrez": <|role_start|>role<|role_end|>content<|turn_end|> */
    PF_CHAT_TMPL_COUNT
};

/* The template used when a model has none: chatml, as llama.cpp's llama_chat_apply_template
 * (a NULL template means "chatml") and common_chat_templates_init (a model without
 * tokenizer.chat_template, or with an empty one, gets a ChatML Jinja source) both choose. */
#define PF_CHAT_TMPL_DEFAULT PF_CHAT_CHATML

/* llama.cpp's name of t ("mistral-v3-tekken"): a static string, or NULL outside the enum. */
const char *pf_chat_tmpl_name(enum pf_chat_tmpl t);

/* The names of all templates, comma-separated ("chatml, llama2, ..."), into buf (NUL-terminated,
 * cut at cap; the whole list takes PF_CHAT_TMPL_LIST_MAX bytes at most). Returns buf. */
#define PF_CHAT_TMPL_LIST_MAX 400
const char *pf_chat_tmpl_list(char *buf, size_t cap);

/* The template named name[0..len) exactly (case-sensitive, as llama.cpp): 0 with *out set, or
 * PINFER_EINVAL with a message that lists the supported names. */
int pf_chat_tmpl_from_name(const char *name, size_t len, enum pf_chat_tmpl *out);

/* As llama.cpp's llm_chat_detect_template: s[0..len) is a template name, or else a Jinja
 * template recognised by substrings (checked in llama.cpp's order: "<|im_start|>" means chatml,
 * or phi4 with "<|im_sep|>"; s starting with "mistral" or containing "[INST]" means a Mistral or
 * Llama 2 variant; ...). 0 with *out set, or PINFER_EINVAL naming the start of s and listing the
 * supported names. s need not be NUL-terminated; a NUL inside it ends it (llama.cpp reads it as
 * a C string). */
int pf_chat_tmpl_detect(const char *s, size_t len, enum pf_chat_tmpl *out);

/* Renders msgs[0..n) with template t, followed by the opening of an assistant turn when add_ass
 * and the template has one (templates whose replies are opened by the user turn itself, such
 * as llama2 and mistral-*, ignore it; so does llama.cpp).
 *
 * Returns the length in bytes of the whole text (without a NUL), whatever cap is. Writes at
 * most cap bytes to buf: the text and a NUL when it fits (return value < cap), else its first
 * cap-1 bytes and a NUL; nothing when cap == 0 (buf may then be NULL), so a caller can measure
 * first and call again with return value + 1 bytes. Roles are free text ("system", "user" and
 * "assistant" are the ones templates treat specially; others are written as given where the
 * template writes roles, else treated as llama.cpp treats them); n == 0 is valid.
 *
 * Errors (buf then holds "" when cap > 0): PINFER_EINVAL for n < 0, cap < 0, msgs NULL with
 * n > 0, buf NULL with cap > 0, a message whose role or content is NULL, t outside the enum;
 * PINFER_ERANGE when the text would reach INT_MAX bytes. */
int pf_chat_tmpl_apply(enum pf_chat_tmpl t, const struct pinfer_chat_msg *msgs, int n, bool add_ass,
                       char *buf, int cap);

#endif
