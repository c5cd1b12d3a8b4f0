/* Reading the file that was parsed, not whatever now has its name. A model is parsed from one
 * open descriptor; the weight loader, the neuron cache and prepare read it again later, often
 * with other flags (O_DIRECT). pf_reopen opens the same file (the same inode, even if it was
 * renamed, replaced or deleted since) and refuses one that changed size. */
#ifndef PF_CORE_FILE_H
#define PF_CORE_FILE_H

#include <stdint.h>

/* Opens the file behind descriptor fd again with flags (O_RDONLY | extra, close-on-exec added):
 * through /proc/self/fd/N where /proc is mounted, else through path. Returns the new descriptor
 * if it is the same file (device and inode) and its size is still expect_size; else a negative
 * PINFER_EIO with a message naming path ("was replaced", "changed size: X bytes, was Y"), errno ESTALE), or the
 * open's own error (errno left set, so a caller can retry without O_DIRECT on EINVAL). */
int pf_reopen(int fd, const char *path, int flags, uint64_t expect_size);

#endif
