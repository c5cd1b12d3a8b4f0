/* Errors as values: library functions return 0 (or a count) on success and a negative
 * PINFER_E* code on failure, after leaving a one-line message with pf_fail(). The message is
 * thread-local and read back with pinfer_last_error(). Nothing in the library exits or aborts
 * on bad input. */
#ifndef PF_CORE_ERROR_H
#define PF_CORE_ERROR_H

#include "pinfer.h"

#include <stdint.h>

/* Records a printf-style message for the calling thread and returns `code` (a PINFER_E* value),
 * so callers write `return pf_fail(PINFER_EFORMAT, "bad magic %08x", m);`. */
int pf_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes the current message with "prefix: " (for adding context on the way up). Returns code. */
int pf_fail_context(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Outputs are written atomically (temp file + rename over the destination). Returns 0 if path
 * may be replaced that way (absent, or a regular file), else PINFER_EINVAL naming it (a device
 * such as /dev/null, a directory, a fifo: renaming over it would destroy it). */
int pf_check_output_path(const char *path);
/* Creates the temp file an output is written to before it is renamed over path: in path's
 * directory (same filesystem, so the rename is atomic), named "<path>.pinfer-tmp.<pid>.XXXXXX"
 * with an unpredictable suffix, opened O_CREAT|O_EXCL (a planted file or symlink is never
 * opened or followed), mode 0666 less the umask. First removes stale temps of the same output
 * left by killed runs (their pid no longer exists). Returns the fd (write-only, close-on-exec)
 * and *tmp (owned by the caller), or a negative code with a message. */
int pf_tmpfile_create(const char *path, char **tmp);
/* Before writing an output of need bytes to path: PINFER_EIO naming the cause when its directory
 * is missing or on a read-only file system; PINFER_ENOSPC when need + margin bytes do not fit
 * in the space free there. The environment variable PINFER_FAKE_FREE_BYTES replaces the measured
 * free space: a test hook (a full disk cannot be made without root), read by nothing else. */
int pf_check_space(const char *path, uint64_t need, uint64_t margin);

#endif
