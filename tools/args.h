/* Flag parsing shared by the sub-commands: every value is checked (a number that does not
 * parse or is out of range is a usage error, never a silent zero). */
#ifndef PF_TOOLS_ARGS_H
#define PF_TOOLS_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Prints "pinfer CMD: message" to stderr. Returns 2 (usage) or 1 (error) for `return`. */
int args_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int args_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* args_error with the library's message (pinfer_last_error) for the call that just failed. */
int args_pinfer_error(const char *cmd);

/* In a flag loop with `const char *a = argv[i]` and `v = argv[i + 1]` (or NULL): consumes the
 * value of the matched flag a, or fails with "flag X needs a value". Unknown flags thus reach
 * the loop's final "unknown flag" branch whatever follows them. */
#define ARGS_TAKE() do { if (!v) return args_usage_error(C, "flag %s needs a value", a); i++; } while (0)

/* Takes the value of flag argv[*i] (advancing *i); NULL (after printing) if missing. */
const char *args_value(const char *cmd, int argc, char **argv, int *i);
bool args_int(const char *cmd, const char *flag, const char *s, long lo, long hi, long *out);
bool args_float(const char *cmd, const char *flag, const char *s, double lo, double hi, float *out);
bool args_u64(const char *cmd, const char *flag, const char *s, uint64_t *out);
/* Parses a comma-separated list of ints ("1,2") into out[0..cap); returns count or -1. */
int args_int_list(const char *cmd, const char *flag, const char *s, long lo, long hi, int *out, int cap);
/* Reads a whole text file (NUL-terminated); NULL after printing an error. Caller frees. */
char *args_read_file(const char *cmd, const char *path, size_t *len);

#endif
