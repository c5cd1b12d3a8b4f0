/* Stop strings and UTF-8 for streamed text (text.h). */
#include "server/text.h"

#include <string.h>

long srv_stop_find(const char *text, size_t len, size_t from, char *const *stop, int n)
{
    long best = -1;
    for (int i = 0; i < n; i++) {
        size_t sl = strlen(stop[i]);
        if (sl == 0 || sl > len) continue;
        /* a match must end after `from`, so it starts at from - sl + 1 at the earliest */
        size_t start = from >= sl ? from - sl + 1 : 0;
        const char *hit = memmem(text + start, len - start, stop[i], sl);
        if (hit && (best < 0 || hit - text < best)) best = hit - text;
    }
    return best;
}

/* Length of a valid UTF-8 sequence starting with byte b: 1..4, or 0 for a byte that cannot
 * start one. */
static int seq_len(unsigned char b)
{
    if (b < 0x80) return 1;
    if (b >= 0xC2 && b <= 0xDF) return 2;
    if (b >= 0xE0 && b <= 0xEF) return 3;
    if (b >= 0xF0 && b <= 0xF4) return 4;
    return 0;
}

/* Whether s[0..n) (n = seq_len(s[0]) <= avail) is a valid sequence: continuation bytes, no
 * overlong forms, no surrogates, nothing past U+10FFFF. */
static bool seq_valid(const unsigned char *s, int n)
{
    for (int k = 1; k < n; k++)
        if ((s[k] & 0xC0) != 0x80) return false;
    if (n == 3 && s[0] == 0xE0 && s[1] < 0xA0) return false;
    if (n == 3 && s[0] == 0xED && s[1] >= 0xA0) return false;
    if (n == 4 && s[0] == 0xF0 && s[1] < 0x90) return false;
    if (n == 4 && s[0] == 0xF4 && s[1] >= 0x90) return false;
    return true;
}

size_t srv_stream_ready(const char *text, size_t len, char *const *stop, int n)
{
    size_t ready = len;
    /* hold back the longest tail that is a proper prefix of a stop string */
    for (int i = 0; i < n; i++) {
        size_t sl = strlen(stop[i]);
        for (size_t k = sl - 1 < len ? sl - 1 : len; k > 0; k--)
            if (!memcmp(text + len - k, stop[i], k)) {
                if (len - k < ready) ready = len - k;
                break;
            }
    }
    /* and an incomplete UTF-8 sequence at the end: a lead byte less than its length from it */
    const unsigned char *u = (const unsigned char *)text;
    for (size_t back = 1; back <= 3 && back <= ready; back++) {
        unsigned char b = u[ready - back];
        if ((b & 0xC0) == 0x80) continue; /* a continuation byte: look further back */
        int need = seq_len(b);
        if (need > (int)back) ready -= back;
        break;
    }
    return ready;
}

size_t srv_utf8_sanitize(const char *text, size_t len, char *out)
{
    const unsigned char *u = (const unsigned char *)text;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        int n = seq_len(u[i]);
        if (n > 0 && i + (size_t)n <= len && seq_valid(u + i, n)) {
            memcpy(out + o, u + i, (size_t)n);
            o += (size_t)n;
            i += (size_t)n;
        } else { /* one bad byte becomes one replacement character */
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    out[o] = 0;
    return o;
}
