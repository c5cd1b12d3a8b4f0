/* The public chat-template API: which built-in template a model uses (the one named by the
 * caller, else the one its tokenizer.chat_template is recognised as, else the default) and the
 * rendering of a conversation with it (src/chat/). The Jinja source is read where it lies in
 * the model's GGUF metadata, never copied: real templates run to several KiB. */
#include "chat/template.h"
#include "core/error.h"
#include "model/model.h"

#include <string.h>

#define CHAT_TEMPLATE_KEY "tokenizer.chat_template"

static int resolve(const struct pinfer_model *m, const char *tmpl, enum pf_chat_tmpl *out, bool *is_default)
{
    char list[PF_CHAT_TMPL_LIST_MAX];
    *is_default = false;
    if (tmpl && *tmpl) return pf_chat_tmpl_detect(tmpl, strlen(tmpl), out);
    const struct gguf_kv *kv = m ? gguf_find(m->gguf, CHAT_TEMPLATE_KEY) : NULL;
    /* no template, or an empty one: llama.cpp's common_chat_templates_init falls back to ChatML */
    if (!kv || (kv->type == GGUF_STRING && kv->str.len == 0)) {
        *out = PF_CHAT_TMPL_DEFAULT;
        *is_default = true;
        return 0;
    }
    if (kv->type != GGUF_STRING)
        return pf_fail(PINFER_EFORMAT, "metadata %s is a %s, not a string", CHAT_TEMPLATE_KEY, gguf_vtype_name(kv->type));
    if (memchr(kv->str.s, 0, (size_t)kv->str.len)) /* as gguf_get_str: a C string in the file */
        return pf_fail(PINFER_EFORMAT, "metadata %s: the string contains a NUL byte", CHAT_TEMPLATE_KEY);
    if (pf_chat_tmpl_detect(kv->str.s, (size_t)kv->str.len, out) == 0) return 0;
    return pf_fail(PINFER_EINVAL, "the model's chat template (%s, %llu bytes) is not one pinfer recognises; "
                   "name a built-in template instead: %s", CHAT_TEMPLATE_KEY, (unsigned long long)kv->str.len,
                   pf_chat_tmpl_list(list, sizeof list));
}

int pinfer_chat_apply(const struct pinfer_model *model, const char *tmpl, const struct pinfer_chat_msg *msgs,
                      int n, bool add_ass, char *buf, int cap)
{
    enum pf_chat_tmpl t;
    bool is_default;
    int rc = resolve(model, tmpl, &t, &is_default);
    if (rc) {
        if (cap > 0 && buf) buf[0] = 0;
        return rc;
    }
    return pf_chat_tmpl_apply(t, msgs, n, add_ass, buf, cap);
}

int pinfer_chat_template_name(const struct pinfer_model *model, const char *tmpl, const char **name, bool *is_default)
{
    enum pf_chat_tmpl t;
    bool dflt;
    int rc = resolve(model, tmpl, &t, &dflt);
    if (rc) return rc;
    *name = pf_chat_tmpl_name(t);
    if (is_default) *is_default = dflt;
    return 0;
}

int pinfer_chat_builtin_templates(const char **out, int cap)
{
    for (int t = 0; t < PF_CHAT_TMPL_COUNT && t < cap; t++) out[t] = pf_chat_tmpl_name((enum pf_chat_tmpl)t);
    return PF_CHAT_TMPL_COUNT;
}
