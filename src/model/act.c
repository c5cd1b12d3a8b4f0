/* FFN activation names (model/act.h). */
#include "model/act.h"

#include "core/error.h"

#include <stddef.h>
#include <strings.h>

static const struct {
    const char *name;
    enum pinfer_act act;
} act_names[] = {
    /* the first entry of an activation is the name it is written with */
    { "silu", PINFER_ACT_SILU }, { "swiglu", PINFER_ACT_SILU }, { "relu", PINFER_ACT_RELU },
    { "reglu", PINFER_ACT_REGLU }, { "drelu", PINFER_ACT_DRELU }, { "gelu", PINFER_ACT_GELU },
};

const char *pf_act_name(enum pinfer_act act)
{
    for (size_t i = 0; i < sizeof act_names / sizeof *act_names; i++)
        if (act_names[i].act == act) return act_names[i].name;
    return "?";
}

int pf_act_parse(const char *name, enum pinfer_act *out)
{
    for (size_t i = 0; name && i < sizeof act_names / sizeof *act_names; i++)
        if (strcasecmp(name, act_names[i].name) == 0) {
            *out = act_names[i].act;
            return 0;
        }
    return pf_fail(PINFER_EINVAL, "unknown FFN activation '%s' (silu, swiglu, relu, reglu, drelu, gelu)",
                   name ? name : "(null)");
}

const char *pinfer_act_name(enum pinfer_act act) { return pf_act_name(act); }
int pinfer_act_parse(const char *name, enum pinfer_act *out) { return pf_act_parse(name, out); }
