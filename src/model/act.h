/* The FFN activation's names and families: the one table that the loader, prepare, profile
 * and synth read and write pinfer.ffn_act with. */
#ifndef PF_MODEL_ACT_H
#define PF_MODEL_ACT_H

#include "pinfer.h"

#include <stdbool.h>

/* The name stored in pinfer.ffn_act and shown in reports ("silu", "relu", ...); "?" for a
 * value outside the enum. The string is static. */
const char *pf_act_name(enum pinfer_act act);

/* Reads a name as pf_act_name writes it, case-insensitively; "swiglu" is accepted for silu.
 * Returns 0 with *out set, or PINFER_EINVAL with a message (*out untouched). */
int pf_act_parse(const char *name, enum pinfer_act *out);

/* relu(gate) * up and relu(gate) * relu(up): activations that are exactly zero for most
 * neurons, so the sparse FFN can skip them and prepare trains predictors for them. */
static inline bool pf_act_is_relu_family(enum pinfer_act act)
{
    return act == PINFER_ACT_RELU || act == PINFER_ACT_REGLU || act == PINFER_ACT_DRELU;
}

#endif
