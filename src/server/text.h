/* Generated text on its way to a client: stop strings, the part of a stream that is safe to
 * send, and UTF-8 that JSON can carry. Pure functions. */
#ifndef PF_SERVER_TEXT_H
#define PF_SERVER_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* The first occurrence of any of stop[0..n) in text[0..len) that ends after `from` (the text
 * before it was searched already); its offset, or -1. */
long srv_stop_find(const char *text, size_t len, size_t from, char *const *stop, int n);

/* How much of text[0..len) a stream may send now: all of it but a tail that could still grow
 * into a stop string (a proper prefix of one), and but an incomplete UTF-8 sequence at the end. */
size_t srv_stream_ready(const char *text, size_t len, char *const *stop, int n);

/* Copies text[0..len) into out (room for 3 * len + 1 bytes) with every invalid UTF-8 sequence
 * replaced by U+FFFD, NUL-terminated; returns the length written. A model's byte tokens can
 * form invalid UTF-8, which JSON strings cannot hold. */
size_t srv_utf8_sanitize(const char *text, size_t len, char *out);

#endif
