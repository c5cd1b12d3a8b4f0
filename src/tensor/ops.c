/* RMSNorm and the FFN activations (tensor/ops.h). Plain C, no fast-math: prepare evaluates
 * predictors with exactly what decode computes, so both must round the same way. */
#include "tensor/ops.h"

#include <math.h>

void pf_rmsnorm(float *out, const float *x, const float *w, int n, float eps)
{
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float scale = 1.0f / sqrtf((float)(ss / n) + eps);
    for (int i = 0; i < n; i++) out[i] = x[i] * scale * w[i];
}

static float act_silu(float x) { return x / (1.0f + expf(-x)); }
static float act_relu(float x) { return x > 0 ? x : 0; }
static float act_gelu(float x)
{
    /* tanh approximation, as ggml_gelu */
    return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * x * (1.0f + 0.044715f * x * x)));
}

bool pf_act_relu_family(enum pinfer_act act)
{
    return act == PINFER_ACT_RELU || act == PINFER_ACT_REGLU || act == PINFER_ACT_DRELU;
}

float pf_act_gate(enum pinfer_act act, float g)
{
    switch (act) {
    case PINFER_ACT_SILU: return act_silu(g);
    case PINFER_ACT_RELU:
    case PINFER_ACT_REGLU:
    case PINFER_ACT_DRELU: return act_relu(g);
    case PINFER_ACT_GELU: return act_gelu(g);
    }
    return act_silu(g);
}

float pf_act_full(enum pinfer_act act, float g, float u)
{
    switch (act) {
    case PINFER_ACT_SILU: return act_silu(g) * u;
    case PINFER_ACT_RELU:
    case PINFER_ACT_REGLU: return act_relu(g) * u;
    case PINFER_ACT_DRELU: return act_relu(g) * act_relu(u);
    case PINFER_ACT_GELU: return act_gelu(g) * u;
    }
    return act_silu(g) * u;
}

void pf_act_apply(float *g, const float *u, size_t n, enum pinfer_act act)
{
    switch (act) {
    case PINFER_ACT_SILU: for (size_t i = 0; i < n; i++) g[i] = act_silu(g[i]) * u[i]; break;
    case PINFER_ACT_RELU:
    case PINFER_ACT_REGLU: for (size_t i = 0; i < n; i++) g[i] = act_relu(g[i]) * u[i]; break;
    case PINFER_ACT_DRELU: for (size_t i = 0; i < n; i++) g[i] = act_relu(g[i]) * act_relu(u[i]); break;
    case PINFER_ACT_GELU: for (size_t i = 0; i < n; i++) g[i] = act_gelu(g[i]) * u[i]; break;
    }
}
