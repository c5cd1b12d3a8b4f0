/* The FFN activation's names and families: the one table that the loader, prepare, profile
 * and synth read and write pinfer.ffn_act with. */
#ifndef PF_MODEL_ACT_H
#define PF_MODEL_ACT_H

#include "pinfer.h"
#include "tensor/ops.h"

#include <stdbool.h>

/* The name stored in pinfer.ffn_act and shown in reports ("silu", "relu", ...); "?" for a
 * value outside the enum. The string is static. */
const char *pf_act_name(enum pinfer_act act);

/* Reads a name as pf_act_name writes it, case-insensitively; "swiglu" is accepted for silu.
 * Returns 0 with *out set, or PINFER_EINVAL with a message (*out untouched). */
int pf_act_parse(const char *name, enum pinfer_act *out);

/* Whether an activation is of the ReLU family (exactly zero when the gate is <= 0): one
 * definition for everyone, pf_act_relu_family in tensor/ops.h. */

#endif
