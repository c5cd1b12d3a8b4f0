/* Token sampling with llama.cpp's common defaults and order: repetition penalty -> top-k ->
 * top-p -> min-p -> temperature -> a draw from the softmax (common/sampling.cpp builds that
 * chain; src/llama-sampling.cpp defines each step). temp <= 0 is greedy: the argmax after the
 * penalty, which top-k/top-p/min-p never remove.
 *
 * What each step keeps, over the candidates the previous step left (sorted by logit, highest
 * first; ties by lower id, where llama.cpp's order is unspecified):
 *   top-k  the k best;
 *   top-p  the shortest prefix whose softmax probabilities (over the current candidates, before
 *          temperature) sum to >= p;
 *   min-p  those with p_i >= min_p * p_max, i.e. logit >= max + log(min_p) (at least the best);
 * then the draw is from softmax(logit / temp) over what is left.
 *
 * Cost per call is O(n_vocab) plus the sorting the enabled steps need: a size-k heap for top-k;
 * without top-k, min-p's survivors are cut out in O(n) before anything is sorted, and nothing is
 * sorted at all when top-p is off. NaN logits count as -inf, +inf as the largest float. */
#include "pinfer.h"

#include "core/checked.h"
#include "core/error.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_SEED 0xFFFFFFFFu /* LLAMA_DEFAULT_SEED: pick one from the clock */

struct cand {
    float logit;
    int32_t id;
};

struct pinfer_sampler {
    int n_vocab;
    struct pinfer_sampler_params p;
    uint64_t rng[4];        /* xoshiro256** state */
    int32_t *count;         /* (n_vocab) occurrences of each token in the penalty window */
    int32_t *ring;          /* (repeat_last_n) the window, when repeat_last_n > 0 */
    int ring_n, ring_pos;
    struct cand *cand;      /* (n_vocab) scratch */
    struct cand *tmp;       /* (n_vocab) radix sort buffer */
    float *w;               /* (n_vocab) unnormalised probabilities of the final candidates */
};

struct pinfer_sampler_params pinfer_sampler_default_params(void)
{
    struct pinfer_sampler_params p = {
        .temp = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .repeat_last_n = 64,
        .seed = DEFAULT_SEED,
    };
    return p;
}

/* ==== Random numbers: xoshiro256** seeded through splitmix64 ==== */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(uint64_t s[4])
{
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

/* Uniform in [0, 1) with 53 random bits. */
static double rng_uniform(uint64_t s[4]) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; }

static void rng_seed(uint64_t s[4], uint64_t seed)
{
    if (seed == DEFAULT_SEED) {
        /* two samplers created in the same nanosecond by one process still differ: the
         * address of the state and the pid are mixed in */
        struct timespec a, b;
        clock_gettime(CLOCK_REALTIME, &a);
        clock_gettime(CLOCK_MONOTONIC, &b);
        seed = (uint64_t)a.tv_sec * 1000000007ULL ^ (uint64_t)a.tv_nsec ^
               ((uint64_t)b.tv_nsec << 32) ^ (uint64_t)getpid() << 16 ^ (uint64_t)(uintptr_t)s;
    }
    for (int i = 0; i < 4; i++) s[i] = splitmix64(&seed);
}

/* ==== Life cycle ==== */

int pinfer_sampler_new(struct pinfer_sampler **out, int n_vocab,
                       const struct pinfer_sampler_params *params)
{
    *out = NULL;
    struct pinfer_sampler_params p = params ? *params : pinfer_sampler_default_params();
    if (n_vocab <= 0) return pf_fail(PINFER_EINVAL, "sampler: n_vocab %d", n_vocab);
    if (isnan(p.temp) || isinf(p.temp) || isnan(p.top_p) || isnan(p.min_p) || p.min_p < 0)
        return pf_fail(PINFER_EINVAL, "sampler: temp, top_p and min_p must be finite (min_p >= 0)");
    if (!(p.repeat_penalty > 0) || isinf(p.repeat_penalty))
        return pf_fail(PINFER_EINVAL, "sampler: repeat_penalty %g must be positive", p.repeat_penalty);
    if (p.repeat_last_n < -1)
        return pf_fail(PINFER_EINVAL, "sampler: repeat_last_n %d (-1 = all, 0 = off)", p.repeat_last_n);

    struct pinfer_sampler *s = calloc(1, sizeof *s);
    if (!s) return pf_fail(PINFER_ENOMEM, "sampler: out of memory");
    s->n_vocab = n_vocab;
    s->p = p;
    size_t bytes;
    if (ck_mul((size_t)n_vocab, sizeof *s->cand, &bytes) || !(s->cand = malloc(bytes)) ||
        !(s->tmp = malloc(bytes)) || !(s->w = malloc((size_t)n_vocab * sizeof *s->w)) ||
        !(s->count = calloc((size_t)n_vocab, sizeof *s->count)) ||
        (p.repeat_last_n > 0 && !(s->ring = malloc((size_t)p.repeat_last_n * sizeof *s->ring)))) {
        pinfer_sampler_free(s);
        return pf_fail(PINFER_ENOMEM, "sampler: out of memory for %d tokens", n_vocab);
    }
    rng_seed(s->rng, p.seed);
    *out = s;
    return 0;
}

void pinfer_sampler_free(struct pinfer_sampler *s)
{
    if (!s) return;
    free(s->cand);
    free(s->tmp);
    free(s->w);
    free(s->count);
    free(s->ring);
    free(s);
}

void pinfer_sampler_accept(struct pinfer_sampler *s, int32_t token)
{
    if (!s || s->p.repeat_last_n == 0 || token < 0 || token >= s->n_vocab) return;
    if (s->p.repeat_last_n < 0) { /* the whole context: nothing ever leaves the window */
        if (s->count[token] < INT32_MAX) s->count[token]++;
        return;
    }
    if (s->ring_n == s->p.repeat_last_n) s->count[s->ring[s->ring_pos]]--;
    else s->ring_n++;
    s->ring[s->ring_pos] = token;
    s->count[token]++;
    s->ring_pos = (s->ring_pos + 1) % s->p.repeat_last_n;
}

/* ==== Candidate selection ==== */

/* a ranks before b: higher logit, then lower id */
static bool cand_before(const struct cand *a, const struct cand *b)
{
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static int cmp_cand(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    return cand_before(x, y) ? -1 : cand_before(y, x) ? 1 : 0;
}

/* Moves the k best of c[0..n) to c[0..k), sorted. A min-heap of the best k seen so far (its
 * root is the worst of them): O(n log k), and for the usual k = 40 mostly one compare each. */
static void select_top_k(struct cand *c, int n, int k)
{
    for (int i = k / 2 - 1; i >= 0; i--) { /* heapify c[0..k) */
        struct cand x = c[i];
        int j = i;
        for (int ch; (ch = 2 * j + 1) < k; j = ch) {
            if (ch + 1 < k && cand_before(&c[ch], &c[ch + 1])) ch++;
            if (!cand_before(&x, &c[ch])) break;
            c[j] = c[ch];
        }
        c[j] = x;
    }
    for (int i = k; i < n; i++) {
        if (!cand_before(&c[i], &c[0])) continue;
        struct cand x = c[i];
        int j = 0;
        for (int ch; (ch = 2 * j + 1) < k; j = ch) {
            if (ch + 1 < k && cand_before(&c[ch], &c[ch + 1])) ch++;
            if (!cand_before(&x, &c[ch])) break;
            c[j] = c[ch];
        }
        c[j] = x;
    }
    qsort(c, (size_t)k, sizeof *c, cmp_cand);
}

/* Sorts c[0..n) best first. Large arrays (top-k off) go through an LSD radix sort on the
 * logit's bits, 4 passes of 8 bits, stable, so equal logits keep their (id) order as cmp_cand
 * wants: ~30x faster than qsort for 32000 candidates. */
static uint32_t desc_key(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u = (u & 0x80000000u) ? ~u : u | 0x80000000u; /* ascending order as unsigned */
    return ~u;                                    /* descending */
}

static void sort_cands(struct cand *c, int n, struct cand *tmp)
{
    if (n < 512) {
        qsort(c, (size_t)n, sizeof *c, cmp_cand);
        return;
    }
    struct cand *src = c, *dst = tmp;
    for (int shift = 0; shift < 32; shift += 8) {
        size_t cnt[256] = { 0 };
        for (int i = 0; i < n; i++) cnt[desc_key(src[i].logit) >> shift & 255]++;
        if (cnt[desc_key(src[0].logit) >> shift & 255] == (size_t)n) continue; /* one digit */
        size_t pos = 0;
        for (int d = 0; d < 256; d++) { size_t k = cnt[d]; cnt[d] = pos; pos += k; }
        for (int i = 0; i < n; i++) dst[cnt[desc_key(src[i].logit) >> shift & 255]++] = src[i];
        struct cand *t = src;
        src = dst;
        dst = t;
    }
    if (src != c) memcpy(c, src, (size_t)n * sizeof *c);
}

/* Keeps (in place, order kept) the candidates with logit >= thr; the best one always stays. */
static int keep_above(struct cand *c, int n, float thr)
{
    int m = 0, best = 0;
    for (int i = 1; i < n; i++) if (cand_before(&c[i], &c[best])) best = i;
    struct cand b = c[best];
    for (int i = 0; i < n; i++) if (c[i].logit >= thr) c[m++] = c[i];
    if (m == 0) c[m++] = b;
    return m;
}

int32_t pinfer_sampler_sample(struct pinfer_sampler *s, const float *logits)
{
    if (!s || !logits) return pf_fail(PINFER_EINVAL, "sampler: no sampler or logits");
    const struct pinfer_sampler_params *p = &s->p;
    const int n = s->n_vocab;
    struct cand *c = s->cand;
    bool penalize = p->repeat_last_n != 0 && p->repeat_penalty != 1.0f;

    /* penalty, and the argmax (first of equals) for greedy and the degenerate cases */
    int best = 0;
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) {
        float x = logits[i];
        if (isnan(x)) x = -INFINITY;
        else if (x == INFINITY) x = FLT_MAX; /* keeps x - max finite below */
        if (penalize && s->count[i] > 0) x = x > 0 ? x / p->repeat_penalty : x * p->repeat_penalty;
        c[i].logit = x;
        c[i].id = i;
        if (x > mx) { mx = x; best = i; }
    }
    /* all -inf: every token is equally impossible; take the first */
    if (p->temp <= 0 || p->top_k == 1 || n == 1 || mx == -INFINITY) return best;
    /* the best candidate survives every step, so mx stays the max throughout */

    int m = n;
    bool sorted = false;
    if (p->top_k > 0 && p->top_k < n) {
        select_top_k(c, n, p->top_k);
        m = p->top_k;
        sorted = true;
    }

    if (p->top_p < 1.0f) {
        double z = 0;
        for (int i = 0; i < m; i++) z += expf(c[i].logit - mx);
        if (!sorted) {
            /* min-p keeps a prefix of the sorted order, and so does top-p: cutting min-p's first
             * (with top-p's normaliser already taken over everything) leaves less to sort */
            if (p->min_p > 0) m = keep_above(c, m, mx + logf(p->min_p));
            sort_cands(c, m, s->tmp);
            sorted = true;
        }
        double cum = 0;
        for (int i = 0; i < m; i++) {
            cum += expf(c[i].logit - mx) / z;
            if (cum >= p->top_p) { m = i + 1; break; }
        }
    }

    if (p->min_p > 0) {
        float thr = mx + logf(p->min_p);
        if (sorted) {
            int i = 1;
            while (i < m && c[i].logit >= thr) i++;
            m = i;
        } else {
            m = keep_above(c, m, thr);
        }
    }

    /* draw from softmax(logit / temp) over c[0..m); x - max first, so nothing overflows */
    double w_sum = 0;
    for (int i = 0; i < m; i++) {
        s->w[i] = expf((c[i].logit - mx) / p->temp);
        w_sum += s->w[i];
    }
    double u = rng_uniform(s->rng) * w_sum, acc = 0;
    int last = 0;
    for (int i = 0; i < m; i++) {
        if (s->w[i] <= 0) continue;
        acc += s->w[i];
        last = i;
        if (u < acc) return c[i].id;
    }
    return c[last].id; /* u rounded up to w_sum */
}
