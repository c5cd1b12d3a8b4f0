/* Named shapes of pinfer synth (published hyper-parameters) and the checks every resolved
 * configuration must pass before anything is written. */
#include "synth/synth_internal.h"

#include "core/error.h"
#include "tensor/types.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

struct shape_def {
    const char *name;
    int n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, n_ctx, n_expert, n_expert_used;
    float rope_base, norm_eps;
};

/* Llama 2 from its config.json (7B, 13B); Mistral-7B v0.2 (rope theta 1e6, no sliding window);
 * Mixtral-8x7B v0.1 (Mistral's dimensions, 8 experts, 2 used per token). `tiny` is a few MB. */
static const struct shape_def shapes[] = {
    { "tiny",         256,  4,  8, 4,   768,   512,   256, 0, 0, 10000.0f,   1e-5f },
    { "llama2-7b",   4096, 32, 32, 32, 11008, 32000,  4096, 0, 0, 10000.0f,   1e-5f },
    { "llama2-13b",  5120, 40, 40, 40, 13824, 32000,  4096, 0, 0, 10000.0f,   1e-5f },
    { "mistral-7b",  4096, 32, 32, 8,  14336, 32000, 32768, 0, 0, 1000000.0f, 1e-5f },
    { "mixtral-8x7b", 4096, 32, 32, 8, 14336, 32000, 32768, 8, 2, 1000000.0f, 1e-5f },
};

struct pinfer_synth_params pinfer_synth_default_params(void)
{
    struct pinfer_synth_params p;
    memset(&p, 0, sizeof p);
    p.shape = "tiny";
    p.type = PF_TYPE_Q4_0;
    p.act = PINFER_ACT_SILU;
    p.sparsity = 0.9f;
    p.hot_frac = 0.3f;
    p.hot_share = 0.8f;
    p.seed = 42;
    p.progress = false;
    p.rank_structure = SYNTH_RANK_DEFAULT;
    return p;
}

int synth_file_type(int type)
{
    switch (type) {
    case PF_TYPE_F32: return 0;  /* LLAMA_FTYPE_ALL_F32 */
    case PF_TYPE_F16: return 1;  /* LLAMA_FTYPE_MOSTLY_F16 */
    case PF_TYPE_Q4_0: return 2; /* LLAMA_FTYPE_MOSTLY_Q4_0 */
    case PF_TYPE_Q8_0: return 7; /* LLAMA_FTYPE_MOSTLY_Q8_0 */
    case PF_TYPE_Q4_1: return 3; /* LLAMA_FTYPE_MOSTLY_Q4_1 */
    case PF_TYPE_Q5_0: return 8; /* LLAMA_FTYPE_MOSTLY_Q5_0 */
    case PF_TYPE_Q5_1: return 9; /* LLAMA_FTYPE_MOSTLY_Q5_1 */
    case PF_TYPE_IQ4_NL: return 25; /* LLAMA_FTYPE_MOSTLY_IQ4_NL */
    case PF_TYPE_BF16: return 32; /* LLAMA_FTYPE_MOSTLY_BF16 */
    /* K-quant files as llama.cpp's "S" variants (one type for every matrix but output.weight) */
    case PF_TYPE_Q2_K: return 10; /* LLAMA_FTYPE_MOSTLY_Q2_K */
    case PF_TYPE_Q3_K: return 11; /* LLAMA_FTYPE_MOSTLY_Q3_K_S */
    case PF_TYPE_Q4_K: return 14; /* LLAMA_FTYPE_MOSTLY_Q4_K_S */
    case PF_TYPE_Q5_K: return 16; /* LLAMA_FTYPE_MOSTLY_Q5_K_S */
    case PF_TYPE_Q6_K: return 18; /* LLAMA_FTYPE_MOSTLY_Q6_K */
    }
    return 0;
}

static int check_range(const char *what, int v, int lo, int hi)
{
    if (v < lo || v > hi) return pf_fail(PINFER_EINVAL, "%s = %d is out of range %d..%d", what, v, lo, hi);
    return 0;
}

int synth_cfg_resolve(struct synth_cfg *c, const struct pinfer_synth_params *p)
{
    memset(c, 0, sizeof *c);
    const struct shape_def *s = NULL;
    const char *name = p->shape ? p->shape : "tiny";
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        if (strcmp(shapes[i].name, name) == 0) s = &shapes[i];
    if (!s) {
        if (p->shape) return pf_fail(PINFER_EINVAL, "unknown shape '%s' (tiny, llama2-7b, llama2-13b, "
                                                    "mistral-7b, mixtral-8x7b)", p->shape);
        s = &shapes[0];
    }
    snprintf(c->shape, sizeof c->shape, "%s", s->name);
    c->n_embd = p->n_embd ? p->n_embd : s->n_embd;
    c->n_layer = p->n_layer ? p->n_layer : s->n_layer;
    c->n_head = p->n_head ? p->n_head : s->n_head;
    c->n_head_kv = p->n_head_kv ? p->n_head_kv : (p->n_head ? p->n_head : s->n_head_kv);
    c->n_ff = p->n_ff ? p->n_ff : s->n_ff;
    c->n_vocab = p->n_vocab ? p->n_vocab : s->n_vocab;
    c->n_ctx = p->n_ctx ? p->n_ctx : s->n_ctx;
    c->n_expert = p->n_expert ? p->n_expert : s->n_expert;
    c->n_expert_used = p->n_expert_used ? p->n_expert_used : (p->n_expert ? 2 : s->n_expert_used);
    c->rope_base = s->rope_base;
    c->norm_eps = s->norm_eps;
    c->act = p->act;
    c->sparsity = p->sparsity;
    c->hot_frac = p->hot_frac;
    c->hot_share = p->hot_share;
    c->seed = p->seed;
    c->rank = 0;

    int rc;
    if ((rc = check_range("n_embd", c->n_embd, 64, 65536)) || (rc = check_range("n_layer", c->n_layer, 1, 512)) ||
        (rc = check_range("n_head", c->n_head, 1, 1024)) || (rc = check_range("n_head_kv", c->n_head_kv, 1, 1024)) ||
        (rc = check_range("n_ff", c->n_ff, 32, 1 << 20)) || (rc = check_range("n_vocab", c->n_vocab, 384, 1 << 21)) ||
        (rc = check_range("n_ctx", c->n_ctx, 8, 1 << 22)) || (rc = check_range("n_expert", c->n_expert, 0, 256)))
        return rc;
    if (c->n_embd % 32) return pf_fail(PINFER_EINVAL, "n_embd %d is not a multiple of 32", c->n_embd);
    if (c->n_ff % 32) return pf_fail(PINFER_EINVAL, "n_ff %d is not a multiple of 32", c->n_ff);
    if (c->n_embd % c->n_head) return pf_fail(PINFER_EINVAL, "n_embd %d is not a multiple of n_head %d", c->n_embd, c->n_head);
    c->head_dim = c->n_embd / c->n_head;
    if (c->head_dim % 2 || c->head_dim < 8)
        return pf_fail(PINFER_EINVAL, "head size %d must be even and at least 8", c->head_dim);
    if (c->n_head % c->n_head_kv)
        return pf_fail(PINFER_EINVAL, "n_head %d is not a multiple of n_head_kv %d", c->n_head, c->n_head_kv);
    if (c->n_expert == 1) return pf_fail(PINFER_EINVAL, "a mixture of experts needs at least 2 experts");
    if (c->n_expert && (c->n_expert_used < 1 || c->n_expert_used > c->n_expert))
        return pf_fail(PINFER_EINVAL, "experts used per token %d must be 1..%d", c->n_expert_used, c->n_expert);
    if (!c->n_expert) c->n_expert_used = 0;

    const bool kquant = p->type >= PF_TYPE_Q2_K && p->type <= PF_TYPE_Q6_K;
    const bool below_8bit = p->type == PF_TYPE_Q4_0 || p->type == PF_TYPE_Q4_1 || p->type == PF_TYPE_Q5_0 ||
                            p->type == PF_TYPE_Q5_1 || p->type == PF_TYPE_IQ4_NL || kquant;
    if (p->type != PF_TYPE_F32 && p->type != PF_TYPE_F16 && p->type != PF_TYPE_Q8_0 && p->type != PF_TYPE_BF16 &&
        !below_8bit)
        return pf_fail(PINFER_EINVAL, "weight type %s is not supported by synth (f32, f16, bf16, q8_0, q4_0, q4_1, "
                       "q5_0, q5_1, iq4_nl, q2_K, q3_K, q4_K, q5_K, q6_K)", pf_type_name(p->type));
    const int blck = pf_type_get(p->type)->blck;
    if (c->n_embd % blck || c->n_ff % blck)
        return pf_fail(PINFER_EINVAL, "weight type %s needs n_embd (%d) and n_ff (%d) to be multiples of %d",
                       pf_type_name(p->type), c->n_embd, c->n_ff, blck);
    c->type = p->type;
    c->embd_type = p->type;
    /* llama.cpp keeps output.weight in Q6_K in files of the types below 8 bits. Q4_0 files keep
     * Q8_0 there, as pinfer wrote them before it had Q6_K (their bytes stay the same); so do the
     * others when n_embd is not a multiple of Q6_K's 256. */
    c->out_type = !below_8bit ? p->type : p->type != PF_TYPE_Q4_0 && c->n_embd % 256 == 0 ? PF_TYPE_Q6_K : PF_TYPE_Q8_0;

    if ((int)c->act < 0 || c->act > PINFER_ACT_GELU) return pf_fail(PINFER_EINVAL, "unknown activation %d", (int)c->act);
    if (c->act == PINFER_ACT_GELU) return pf_fail(PINFER_EINVAL, "synth writes silu, relu, reglu or drelu models");
    if (pf_act_relu_family(c->act)) {
        if (!(c->sparsity > 0.0f && c->sparsity < 1.0f))
            return pf_fail(PINFER_EINVAL, "sparsity %g must be between 0 and 1 (exclusive)", (double)c->sparsity);
        if (!(c->hot_frac > 0.0f && c->hot_frac <= 1.0f && c->hot_share > 0.0f && c->hot_share <= 1.0f))
            return pf_fail(PINFER_EINVAL, "--hot H:F needs 0 < H <= 1 and 0 < F <= 1");
        if (c->hot_share < c->hot_frac)
            return pf_fail(PINFER_EINVAL, "--hot %g:%g: the hottest %g of the neurons carry at least %g of the "
                           "activations by definition", (double)c->hot_frac, (double)c->hot_share,
                           (double)c->hot_frac, (double)c->hot_frac);
    }
    if (p->rank_structure < 0 || p->rank_structure > SYNTH_RANK_MAX)
        return pf_fail(PINFER_EINVAL, "rank structure %d must be 0 (isotropic) .. %d", p->rank_structure, SYNTH_RANK_MAX);
    if (pf_act_relu_family(c->act) && p->rank_structure > 0) {
        /* a subspace of half the free channels or more is no structure worth the name */
        int cap = (c->n_embd - SYNTH_BIAS_CH) / 2;
        c->rank = p->rank_structure < cap ? p->rank_structure : cap;
    }
    if (!isfinite(c->rope_base)) return pf_fail(PINFER_EINVAL, "bad rope base");
    if (p->law != PINFER_SYNTH_LAW_BASIC && p->law != PINFER_SYNTH_LAW_REALISTIC)
        return pf_fail(PINFER_EINVAL, "unknown activation law %d", (int)p->law);
    c->realistic = p->law == PINFER_SYNTH_LAW_REALISTIC;
    /* MoE routing with token-to-token persistence needs the moving-average head (a second kv
     * head as wide as the slow block) and room for the router block; smaller MoE files route
     * on all channels (docs/synth.md) */
    c->moe_route = c->n_expert && c->n_head_kv >= 2 && c->head_dim >= SYNTH_SLOW_CH &&
                   c->n_embd >= SYNTH_ROUTE_LO + SYNTH_ROUTE_CH + c->head_dim;
    if (c->realistic) {
        /* layer 0 needs a kv head for the moving average beside the previous-token one, a
         * head as wide as the slow block, and the slow block's source channels */
        if (!pf_act_relu_family(c->act) || c->n_expert || !c->rank)
            return pf_fail(PINFER_EINVAL, "--law realistic needs a ReLU-family activation, no experts and rank structure");
        if (c->n_head_kv < 2 || c->head_dim < SYNTH_SLOW_CH || c->n_embd < SYNTH_SLOW_SRC + 2 * SYNTH_SLOW_CH)
            return pf_fail(PINFER_EINVAL, "--law realistic needs at least 2 kv heads of %d or more and n_embd >= %d",
                           SYNTH_SLOW_CH, SYNTH_SLOW_SRC + 2 * SYNTH_SLOW_CH);
    }
    return 0;
}
