/* pinfer plan (docs/planner.md): for a model on a machine (plan/machine.h) and the user's
 * constraint (a memory budget, or a decode speed to reach), the configuration the cost model
 * (plan/cost.h) predicts fastest, and the curve budget -> predicted speed.
 *
 * For each budget the neuron cache's segments are laid out exactly as the runtime will lay them
 * out (pf_cache_plan) for each candidate hot share, and the best kept; the I/O backend is the
 * one with more IOPS for the model's slot reads. Read-ahead stays off (bench/RESULTS.md: on
 * the Mistral-7B shape it cost more than it hid) and the queue depth is the runtime's (64). */
#ifndef PF_PLAN_PLAN_H
#define PF_PLAN_PLAN_H

#include "pinfer.h"
#include "plan/cost.h"

#define PF_PLAN_CURVE 16

struct pf_plan_point {
    uint64_t budget;        /* bytes; 0: no budget, the whole model in memory */
    float cache_hot;        /* share of the FFN memory pinned as hot (budget only) */
    int n_hot, n_cold;      /* the cache's segments: hot slots per layer, cold entries */
    struct pf_prediction pr;
};

struct pf_plan_request {
    const char *model;
    uint64_t budget;        /* 0: none asked */
    double target_tps;      /* 0: none asked */
    int threads;            /* 0: all cores */
    int n_ctx;              /* context the plan holds (0: 4096 or the model's if smaller) */
    int n_batch;            /* largest prompt batch (0: 512, as run, chat and serve) */
};

struct pf_plan_result {
    struct pf_plan_point chosen;
    struct pf_plan_point curve[PF_PLAN_CURVE]; /* ascending budgets; the last is "in memory" */
    int n_curve;
    bool prepared;          /* the model has neuron bundles (a budget is possible) */
    bool sparse;            /* predictor mode (the bundles have predictors) */
    int threads, io_backend, io_depth; /* io_backend: index into pf_mach_be */
    int n_ctx, n_batch;     /* the context and batch planned for */
    uint64_t min_budget;    /* the smallest workable budget */
    uint64_t in_memory;     /* bytes the model and context take without a budget */
    double roof_tps;        /* predicted decode with everything in memory */
    bool reachable;         /* with a target: some budget reaches it */
    struct pf_plan_model pm;
};

/* Plans rq on the machine mc. 0, or a negative code with a message (a budget below the
 * smallest workable one, a budget on a model that is not prepared, ...). */
int pf_plan_make(const struct pf_machine *mc, const struct pf_plan_request *rq, struct pf_plan_result *out);

#endif
