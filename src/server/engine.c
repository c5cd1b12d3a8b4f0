/* The engine (engine.h): slots, the bounded queue, and the thread that steps the slots. */
#include "server/engine.h"

#include "server/text.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct slot {
    int id;
    struct pinfer_ctx *ctx;
    int32_t *toks;        /* (n_ctx) the tokens in the KV cache, positions 0..n_toks */
    int n_toks;
    struct srv_job *job;  /* NULL: free */
    struct pinfer_sampler *smp;
    uint64_t last_used;   /* engine tick of the last job's end, for LRU */
};

struct srv_engine {
    struct pinfer_model *model;
    struct srv_metrics *metrics;
    int n_slots, n_ctx, n_batch, delay_ms;
    struct slot *slots;
    int32_t eos;
    /* an engine step's decode: the generating slots, their contexts, tokens and positions */
    struct slot **b_slot;
    struct pinfer_ctx **b_ctx;
    int32_t *b_tok;
    int *b_pos;

    pthread_t thread;
    bool started;
    /* under mu: the queue, the counts and the stop flags; the slots are the engine thread's */
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* the engine thread waits on it for work */
    pthread_cond_t idle_cv; /* srv_engine_stop waits on it for busy slots to end */
    struct srv_job **queue; /* ring of n_slots + q_cap: jobs wait here, if only for a moment */
    int q_head, q_len, q_cap;
    int n_busy;
    bool stopping;          /* no new jobs */
    bool cancel_all;        /* stop the running ones too */
    uint64_t tick;
};

/* ==== Jobs ==== */

struct srv_job *srv_job_new(void)
{
    struct srv_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    if (!(j->text = malloc(256))) { free(j); return NULL; }
    j->text[0] = 0;
    j->cap = 256;
    j->max_tokens = -1;
    j->refs = 1;
    j->slot = -1;
    atomic_init(&j->cancel, false);
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    return j;
}

void srv_job_release(struct srv_job *j)
{
    if (!j) return;
    pthread_mutex_lock(&j->mu);
    int left = --j->refs;
    pthread_mutex_unlock(&j->mu);
    if (left > 0) return;
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j->prompt);
    for (int i = 0; i < j->n_stop; i++) free(j->stop[i]);
    free(j->text);
    free(j);
}

/* Ends a job (finish "stop"/"length", or an error) and wakes its waiter. */
static void job_end(struct srv_job *j, const char *finish, int status, const char *code, const char *msg)
{
    pthread_mutex_lock(&j->mu);
    j->done = true;
    j->finish = finish;
    j->ready = j->len;
    if (!finish) srv_error_set(&j->err, status, "server_error", code, "%s", msg);
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

/* ==== Creation ==== */

static void slot_free(struct slot *s)
{
    pinfer_sampler_free(s->smp);
    pinfer_ctx_free(s->ctx);
    free(s->toks);
}

static void *engine_main(void *arg);

int srv_engine_new(struct srv_engine **out, struct pinfer_model *model, const struct srv_engine_params *p,
                   struct srv_metrics *metrics)
{
    *out = NULL;
    if (p->n_slots < 1 || p->n_slots > 1024 || p->queue_cap < 0 || p->queue_cap > (1 << 20)) return PINFER_EINVAL;
    struct srv_engine *e = calloc(1, sizeof *e);
    if (!e) return PINFER_ENOMEM;
    e->model = model;
    e->metrics = metrics;
    e->delay_ms = p->delay_ms;
    e->eos = pinfer_token_eos(model);
    e->q_cap = p->queue_cap;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    pthread_cond_init(&e->idle_cv, NULL);
    e->slots = calloc((size_t)p->n_slots, sizeof *e->slots);
    e->queue = calloc((size_t)(p->n_slots + p->queue_cap), sizeof *e->queue);
    e->b_slot = calloc((size_t)p->n_slots, sizeof *e->b_slot);
    e->b_ctx = calloc((size_t)p->n_slots, sizeof *e->b_ctx);
    e->b_tok = calloc((size_t)p->n_slots, sizeof *e->b_tok);
    e->b_pos = calloc((size_t)p->n_slots, sizeof *e->b_pos);
    int rc = PINFER_ENOMEM;
    if (!e->slots || !e->queue || !e->b_slot || !e->b_ctx || !e->b_tok || !e->b_pos) goto fail;
    struct pinfer_ctx_params cp = p->cp;
    cp.budget_shares = p->n_slots; /* every slot's KV cache and buffers count against one budget */
    for (int i = 0; i < p->n_slots; i++) {
        struct slot *s = &e->slots[i];
        s->id = i;
        e->n_slots = i + 1;
        if ((rc = pinfer_ctx_new(&s->ctx, model, &cp))) goto fail;
        cp.threads_from = e->slots[0].ctx; /* one pool: the engine thread steps the slots one at a time */
        e->n_ctx = pinfer_ctx_n_ctx(s->ctx);
        rc = PINFER_ENOMEM;
        if (!(s->toks = malloc(sizeof *s->toks * (size_t)e->n_ctx))) goto fail;
    }
    e->n_batch = cp.n_batch > 0 ? cp.n_batch : 512; /* the context's own default */
    if (e->n_batch > e->n_ctx) e->n_batch = e->n_ctx;
    if (pthread_create(&e->thread, NULL, engine_main, e)) { rc = PINFER_ENOMEM; goto fail; }
    e->started = true;
    *out = e;
    return 0;
fail:
    srv_engine_free(e);
    return rc;
}

int srv_engine_n_ctx(const struct srv_engine *e) { return e->n_ctx; }

void srv_engine_free(struct srv_engine *e)
{
    if (!e) return;
    if (e->started) srv_engine_stop(e, 0);
    for (int i = e->n_slots - 1; i >= 0; i--) slot_free(&e->slots[i]); /* slot 0's pool last */
    free(e->slots);
    free(e->queue);
    free(e->b_slot);
    free(e->b_ctx);
    free(e->b_tok);
    free(e->b_pos);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    pthread_cond_destroy(&e->idle_cv);
    free(e);
}

/* ==== The queue (under e->mu) ==== */

static void gauges(struct srv_engine *e)
{
    if (e->metrics) srv_metrics_gauges(e->metrics, e->q_len, e->n_busy);
}

int srv_engine_submit(struct srv_engine *e, struct srv_job *job)
{
    pthread_mutex_lock(&e->mu);
    int rc = 0;
    if (e->stopping) rc = -2;
    /* the busy slots and the waiting jobs: a job may wait when fewer than q_cap do, beyond the
       slots that will take the first ones */
    else if (e->n_busy + e->q_len >= e->n_slots + e->q_cap) rc = -1;
    else {
        pthread_mutex_lock(&job->mu);
        job->refs++;
        pthread_mutex_unlock(&job->mu);
        job->queued = true;
        e->queue[(e->q_head + e->q_len) % (e->n_slots + e->q_cap)] = job;
        e->q_len++;
        gauges(e);
        pthread_cond_signal(&e->cv);
    }
    pthread_mutex_unlock(&e->mu);
    return rc;
}

/* Takes job out of the queue (under e->mu); false if it is not there. */
static bool unqueue(struct srv_engine *e, struct srv_job *job)
{
    const int cap = e->n_slots + e->q_cap;
    for (int i = 0; i < e->q_len; i++) {
        if (e->queue[(e->q_head + i) % cap] != job) continue;
        for (int k = i; k + 1 < e->q_len; k++) e->queue[(e->q_head + k) % cap] = e->queue[(e->q_head + k + 1) % cap];
        e->q_len--;
        job->queued = false;
        return true;
    }
    return false;
}

void srv_engine_cancel(struct srv_engine *e, struct srv_job *job)
{
    atomic_store(&job->cancel, true);
    pthread_mutex_lock(&e->mu);
    bool was_queued = unqueue(e, job);
    if (was_queued) gauges(e);
    pthread_mutex_unlock(&e->mu);
    if (was_queued) {
        job_end(job, NULL, 499, "client_closed", "the client closed the connection");
        srv_job_release(job); /* the engine's reference */
    }
    /* a running job ends at the engine's next step of its slot */
}

void srv_engine_stop(struct srv_engine *e, double grace_s)
{
    pthread_mutex_lock(&e->mu);
    if (!e->started) { pthread_mutex_unlock(&e->mu); return; }
    e->stopping = true;
    /* waiting jobs end now */
    while (e->q_len > 0) {
        struct srv_job *j = e->queue[e->q_head];
        e->q_head = (e->q_head + 1) % (e->n_slots + e->q_cap);
        e->q_len--;
        j->queued = false;
        job_end(j, NULL, 503, "shutting_down", "the server is shutting down");
        if (e->metrics) srv_metrics_rejected(e->metrics);
        srv_job_release(j);
    }
    gauges(e);
    pthread_cond_broadcast(&e->cv);
    /* running ones get the grace period, then are cancelled */
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    long long ns = (long long)(grace_s * 1e9) + dl.tv_nsec;
    dl.tv_sec += (time_t)(ns / 1000000000);
    dl.tv_nsec = (long)(ns % 1000000000);
    while (e->n_busy > 0 && !e->cancel_all)
        if (pthread_cond_timedwait(&e->idle_cv, &e->mu, &dl) == ETIMEDOUT) break;
    e->cancel_all = true;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    e->started = false;
}

/* ==== Slots (the engine thread's) ==== */

static int common_prefix(const int32_t *a, int na, const int32_t *b, int nb)
{
    int n = 0;
    while (n < na && n < nb && a[n] == b[n]) n++;
    return n;
}

/* The free slot for job: the longest prefix shared with what its cache holds, then the least
 * recently used. NULL if none is free. */
static struct slot *pick_slot(struct srv_engine *e, const struct srv_job *job)
{
    struct slot *best = NULL;
    int best_len = -1;
    for (int i = 0; i < e->n_slots; i++) {
        struct slot *s = &e->slots[i];
        if (s->job) continue;
        int len = common_prefix(s->toks, s->n_toks, job->prompt, job->n_prompt);
        if (len > best_len || (len == best_len && s->last_used < best->last_used)) {
            best = s;
            best_len = len;
        }
    }
    return best;
}

/* Ends the slot's job: statistics, the job's end, the slot freed. finish NULL: an error. */
static void slot_end(struct srv_engine *e, struct slot *s, const char *finish, int status, const char *code,
                     const char *msg)
{
    struct srv_job *j = s->job;
    j->t_end = pinfer_now();
    if (j->t_prompt == 0) j->t_prompt = j->t_end;
    if (e->metrics) {
        srv_metrics_completion(e->metrics, finish == NULL, j->n_prompt, j->n_processed, j->n_cached, j->n_gen, j->steps,
                               j->t_prompt - j->t_start, j->t_end - j->t_prompt);
        struct pinfer_cache_stats cs;
        if (pinfer_ctx_cache_stats(s->ctx, &cs) == 0) srv_metrics_cache(e->metrics, s->id, &cs);
    }
    job_end(j, finish, status, code, msg);
    pinfer_sampler_free(s->smp);
    s->smp = NULL;
    s->job = NULL;
    srv_job_release(j);
    pthread_mutex_lock(&e->mu);
    s->last_used = ++e->tick;
    e->n_busy--;
    gauges(e);
    pthread_cond_broadcast(&e->idle_cv);
    pthread_mutex_unlock(&e->mu);
}

/* Starts job in slot s: the prefix the slot's cache shares with the prompt is kept; at least the
 * last prompt token is decoded again, for its logits. */
static void slot_start(struct slot *s, struct srv_job *j)
{
    int keep = common_prefix(s->toks, s->n_toks, j->prompt, j->n_prompt);
    if (keep >= j->n_prompt) keep = j->n_prompt - 1;
    memcpy(s->toks + keep, j->prompt + keep, sizeof *j->prompt * (size_t)(j->n_prompt - keep));
    s->n_toks = keep;
    s->job = j;
    j->slot = s->id;
    j->n_cached = keep;
    j->t_start = pinfer_now();
    pthread_mutex_lock(&j->mu);
    j->n_cached = keep;
    pthread_mutex_unlock(&j->mu);
}

/* Appends a token's text to the job and decides whether it ends: a stop string (the text is
 * cut before it), max_tokens, or the context. Returns the finish reason or NULL. */
static const char *append_token(struct srv_engine *e, struct slot *s, int32_t tok)
{
    struct srv_job *j = s->job;
    char small[256], *piece = small;
    int np = pinfer_token_to_piece(e->model, tok, small, (int)sizeof small);
    if (np > (int)sizeof small && (piece = malloc((size_t)np))) np = pinfer_token_to_piece(e->model, tok, piece, np);
    if (!piece) np = 0;
    const char *finish = NULL;
    pthread_mutex_lock(&j->mu);
    j->n_gen++;
    if (np > 0 && j->len + (size_t)np + 1 > j->cap) {
        size_t nc = 2 * j->cap + (size_t)np;
        char *nt = realloc(j->text, nc);
        if (nt) { j->text = nt; j->cap = nc; }
        else np = 0; /* the text is bounded by n_ctx pieces; a failed growth drops a piece */
    }
    size_t before = j->len;
    if (np > 0) {
        memcpy(j->text + j->len, piece, (size_t)np);
        j->len += (size_t)np;
        j->text[j->len] = 0;
    }
    long at = j->n_stop ? srv_stop_find(j->text, j->len, before, j->stop, j->n_stop) : -1;
    if (at >= 0) {
        j->len = (size_t)at;
        j->text[j->len] = 0;
        finish = "stop";
    } else if (j->max_tokens > 0 && j->n_gen >= j->max_tokens) {
        finish = "length";
    } else if (s->n_toks >= e->n_ctx) {
        finish = "length";
    }
    j->ready = finish ? j->len : srv_stream_ready(j->text, j->len, j->stop, j->n_stop);
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    if (piece != small) free(piece);
    return finish;
}

/* The slot's prompt is in its KV cache: the sampler, primed with the prompt. */
static void prompt_done(struct srv_engine *e, struct slot *s)
{
    struct srv_job *j = s->job;
    j->t_prompt = pinfer_now();
    if (pinfer_sampler_new(&s->smp, pinfer_n_vocab(e->model), &j->sp)) {
        slot_end(e, s, NULL, 500, "sampler_failed", pinfer_last_error());
        return;
    }
    for (int i = 0; i < j->n_prompt; i++) pinfer_sampler_accept(s->smp, j->prompt[i]);
}

/* A busy slot's part of an engine step before the decode: a batch of the prompt, or the next
 * token sampled and appended. Returns the token the slot wants decoded with the other slots'
 * (its next token, or its prompt's last one), or -1 (its prompt goes on, or its job ended). */
static int32_t slot_step(struct srv_engine *e, struct slot *s, bool cancel_all)
{
    struct srv_job *j = s->job;
    if (atomic_load(&j->cancel) || cancel_all) {
        slot_end(e, s, NULL, 503, cancel_all ? "shutting_down" : "client_closed",
                 cancel_all ? "the server stopped before the completion ended" : "the client closed the connection");
        return -1;
    }
    if (s->n_toks < j->n_prompt) {
        /* one token left (a prompt that shares all but its end with the slot's cache): in the
           pass with the generating slots; else a batch of the prompt per step */
        if (j->n_prompt - s->n_toks == 1) return s->toks[s->n_toks];
        int n = j->n_prompt - s->n_toks < e->n_batch ? j->n_prompt - s->n_toks : e->n_batch;
        if (pinfer_decode(s->ctx, s->toks + s->n_toks, n, s->n_toks, false)) {
            s->n_toks = 0; /* what the cache holds is unknown now */
            slot_end(e, s, NULL, 500, "decode_failed", pinfer_last_error());
            return -1;
        }
        s->n_toks += n;
        j->n_processed += n;
        if (s->n_toks == j->n_prompt) prompt_done(e, s);
        return -1;
    }
    /* one token */
    int32_t tok = pinfer_sampler_sample(s->smp, pinfer_ctx_logits(s->ctx, -1));
    pinfer_sampler_accept(s->smp, tok);
    if (tok == e->eos && !j->ignore_eos) {
        slot_end(e, s, "stop", 0, NULL, NULL);
        return -1;
    }
    const char *finish = append_token(e, s, tok);
    if (finish) {
        slot_end(e, s, finish, 0, NULL, NULL);
        return -1;
    }
    return tok;
}

/* One engine step: every busy slot's part, then the tokens the slots want decoded in one
 * pinfer_decode_multi (one pass over the weights where that pays, see include/pinfer.h). */
static void engine_step(struct srv_engine *e, bool cancel_all)
{
    int n = 0;
    for (int i = 0; i < e->n_slots; i++) {
        struct slot *s = &e->slots[i];
        if (!s->job) continue;
        int32_t tok = slot_step(e, s, cancel_all);
        if (tok < 0) continue;
        e->b_slot[n] = s;
        e->b_ctx[n] = s->ctx;
        e->b_tok[n] = tok;
        e->b_pos[n] = s->n_toks;
        n++;
    }
    if (n == 0) return;
    if (pinfer_decode_multi(e->b_ctx, e->b_tok, e->b_pos, n)) {
        for (int i = 0; i < n; i++) {
            e->b_slot[i]->n_toks = 0;
            slot_end(e, e->b_slot[i], NULL, 500, "decode_failed", pinfer_last_error());
        }
        return;
    }
    for (int i = 0; i < n; i++) {
        struct slot *s = e->b_slot[i];
        struct srv_job *j = s->job;
        if (s->n_toks < j->n_prompt) { /* the prompt's last token */
            s->n_toks++;
            j->n_processed++;
            prompt_done(e, s);
        } else {
            s->toks[s->n_toks++] = e->b_tok[i];
            j->steps++;
        }
    }
    if (e->metrics) srv_metrics_step(e->metrics, n);
    if (e->delay_ms > 0) {
        struct timespec ts = { e->delay_ms / 1000, (long)(e->delay_ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
    }
}

/* ==== The engine thread ==== */

static void *engine_main(void *arg)
{
    struct srv_engine *e = arg;
    const int cap = e->n_slots + e->q_cap;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        /* waiting jobs into free slots, in order */
        while (e->q_len > 0 && e->n_busy < e->n_slots && !e->stopping) {
            struct srv_job *j = e->queue[e->q_head];
            e->q_head = (e->q_head + 1) % cap;
            e->q_len--;
            j->queued = false;
            e->n_busy++;
            slot_start(pick_slot(e, j), j);
        }
        gauges(e);
        if (e->n_busy == 0) {
            if (e->stopping) break;
            pthread_cond_wait(&e->cv, &e->mu);
            continue;
        }
        const bool cancel_all = e->cancel_all;
        pthread_mutex_unlock(&e->mu);
        engine_step(e, cancel_all);
        pthread_mutex_lock(&e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}
