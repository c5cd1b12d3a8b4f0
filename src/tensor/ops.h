/* Element-wise operations of the forward pass that the attention, the FFN and the offline
 * tools share: RMSNorm and the FFN activations (one definition each, so prepare, profile and
 * the decode step compute a neuron's activation identically). */
#ifndef PF_TENSOR_OPS_H
#define PF_TENSOR_OPS_H

#include "pinfer.h"

#include <stdbool.h>
#include <stddef.h>

/* out = x / rms(x) * w (n elements). out may equal x. */
void pf_rmsnorm(float *out, const float *x, const float *w, int n, float eps);

/* act(gate) alone: silu, relu or gelu of g (the gate part of the model's activation). */
float pf_act_gate(enum pinfer_act act, float g);
/* The full activation of one neuron: act(g) * u, or relu(g) * relu(u) for dReLU. */
float pf_act_full(enum pinfer_act act, float g, float u);
/* g[i] = act(g[i], u[i]) for n neurons (in place). */
void pf_act_apply(float *g, const float *u, size_t n, enum pinfer_act act);
/* ReLU family: the activation is exactly 0 whenever g <= 0. */
bool pf_act_relu_family(enum pinfer_act act);

#endif
