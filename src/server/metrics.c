/* Counters and their Prometheus text (metrics.h). */
#include "server/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int codes[SRV_METRICS_CODES] = { 200, 400, 401, 404, 405, 413, 500, 503, 408, 429 };

int srv_metrics_init(struct srv_metrics *m, int slots, int queue_cap, uint64_t budget)
{
    memset(m, 0, sizeof *m);
    m->slots = slots;
    m->queue_cap = queue_cap;
    m->budget = budget;
    if (budget && !(m->cache = calloc((size_t)slots, sizeof *m->cache))) return -1;
    pthread_mutex_init(&m->mu, NULL);
    return 0;
}

void srv_metrics_free(struct srv_metrics *m)
{
    if (!m) return;
    free(m->cache);
    pthread_mutex_destroy(&m->mu);
    m->cache = NULL;
}

void srv_metrics_response(struct srv_metrics *m, int status)
{
    int k = 0;
    while (k < SRV_METRICS_CODES && codes[k] != status) k++;
    pthread_mutex_lock(&m->mu);
    m->by_code[k]++;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_completion(struct srv_metrics *m, bool cancelled, int prompt, int processed, int reused, int generated,
                            int steps, double prompt_s, double gen_s)
{
    pthread_mutex_lock(&m->mu);
    if (cancelled) m->cancelled++;
    else m->completions++;
    m->prompt_tokens += (uint64_t)prompt;
    m->prompt_processed += (uint64_t)processed;
    m->prompt_reused += (uint64_t)reused;
    m->completion_tokens += (uint64_t)generated;
    m->decode_steps += (uint64_t)steps;
    m->prompt_s += prompt_s;
    m->gen_s += gen_s;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_rejected(struct srv_metrics *m)
{
    pthread_mutex_lock(&m->mu);
    m->rejected++;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_step(struct srv_metrics *m, int n)
{
    pthread_mutex_lock(&m->mu);
    m->engine_steps++;
    m->engine_step_seqs += (uint64_t)n;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_gauges(struct srv_metrics *m, int queue_len, int slots_busy)
{
    pthread_mutex_lock(&m->mu);
    m->queue_len = queue_len;
    m->slots_busy = slots_busy;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_cache(struct srv_metrics *m, int slot, const struct pinfer_cache_stats *st)
{
    if (!m->cache || slot < 0 || slot >= m->slots) return;
    pthread_mutex_lock(&m->mu);
    m->cache[slot] = *st;
    pthread_mutex_unlock(&m->mu);
}

static void metric(FILE *f, const char *name, const char *type, const char *help, double v)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}

char *srv_metrics_render(struct srv_metrics *m)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    pthread_mutex_lock(&m->mu);
    struct srv_metrics s = *m; /* a consistent copy of the scalars */
    uint64_t hits = 0, need = 0, bytes = 0;
    double io_wait = 0;
    for (int i = 0; m->cache && i < m->slots; i++) {
        const struct pinfer_cache_stats *c = &m->cache[i];
        hits += c->hits;
        need += c->hits + c->misses + c->prefetch_used;
        bytes += c->bytes_read + c->prefetch_bytes + c->prefill_bytes;
        io_wait += c->io_wait_s + c->prefill_wait_s;
    }
    pthread_mutex_unlock(&m->mu);

    fprintf(f, "# HELP pinfer_http_responses_total HTTP responses sent, by status code.\n"
               "# TYPE pinfer_http_responses_total counter\n");
    for (int k = 0; k <= SRV_METRICS_CODES; k++) {
        if (k < SRV_METRICS_CODES) fprintf(f, "pinfer_http_responses_total{code=\"%d\"} %llu\n", codes[k], (unsigned long long)s.by_code[k]);
        else fprintf(f, "pinfer_http_responses_total{code=\"other\"} %llu\n", (unsigned long long)s.by_code[k]);
    }
    metric(f, "pinfer_requests_total", "counter", "Completion requests generated to their end.", (double)s.completions);
    metric(f, "pinfer_requests_cancelled_total", "counter",
           "Completion requests stopped early: the client disconnected or the server stopped.", (double)s.cancelled);
    metric(f, "pinfer_requests_rejected_total", "counter", "Completion requests refused with 503 (queue full, shutting down).",
           (double)s.rejected);
    metric(f, "pinfer_prompt_tokens_total", "counter", "Prompt tokens of completed requests.", (double)s.prompt_tokens);
    metric(f, "pinfer_prompt_tokens_processed_total", "counter", "Prompt tokens decoded.", (double)s.prompt_processed);
    metric(f, "pinfer_prompt_tokens_reused_total", "counter",
           "Prompt tokens reused from a slot's KV cache (a prefix shared with the slot's previous prompt) instead of decoded.",
           (double)s.prompt_reused);
    metric(f, "pinfer_completion_tokens_total", "counter", "Tokens generated.", (double)s.completion_tokens);
    metric(f, "pinfer_prompt_seconds_total", "counter", "Time spent decoding prompts.", s.prompt_s);
    metric(f, "pinfer_generation_seconds_total", "counter", "Time spent generating, summed over requests.", s.gen_s);
    metric(f, "pinfer_prompt_tokens_per_second", "gauge", "Prompt tokens decoded per second of prompt time.",
           s.prompt_s > 0 ? (double)s.prompt_processed / s.prompt_s : 0);
    metric(f, "pinfer_generation_tokens_per_second", "gauge", "Tokens generated per second of a request's generation time.",
           s.gen_s > 0 ? (double)s.completion_tokens / s.gen_s : 0);
    metric(f, "pinfer_decode_passes_total", "counter",
           "Engine steps that decoded the slots' next tokens (generated, or a reused prompt's last) together (one pass over the weights "
           "where that pays: dense, in memory).", (double)s.engine_steps);
    metric(f, "pinfer_decode_pass_sequences_total", "counter",
           "Sequences those steps decoded: divided by pinfer_decode_passes_total, the mean batch of slots.",
           (double)s.engine_step_seqs);
    metric(f, "pinfer_queue_length", "gauge", "Requests waiting for a slot.", s.queue_len);
    metric(f, "pinfer_queue_capacity", "gauge", "Requests that may wait for a slot (--queue-size).", s.queue_cap);
    metric(f, "pinfer_slots", "gauge", "Slots: contexts of their own, serving one request at a time (--parallel).", s.slots);
    metric(f, "pinfer_slots_busy", "gauge", "Slots serving a request.", s.slots_busy);
    if (s.budget) {
        metric(f, "pinfer_memory_budget_bytes", "gauge", "The memory budget (--mem-budget).", (double)s.budget);
        metric(f, "pinfer_cache_hit_ratio", "gauge",
               "Neuron cache: of the slots decode steps needed, the share found resident (hot or cold; not read ahead, not read).",
               need ? (double)hits / (double)need : 0);
        metric(f, "pinfer_storage_bytes_per_token", "gauge", "Bytes read from storage per decode step (prompts included).",
               s.decode_steps ? (double)bytes / (double)s.decode_steps : 0);
        metric(f, "pinfer_storage_read_bytes_total", "counter", "Bytes read from storage by the neuron caches.", (double)bytes);
        metric(f, "pinfer_io_wait_seconds_total", "counter", "Time decode steps and prompts were blocked on storage reads.",
               io_wait);
    }
    if (fclose(f) != 0) { free(buf); return NULL; }
    return buf;
}
