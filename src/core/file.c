#include "core/file.h"

#include "core/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int pf_reopen(int fd, const char *path, int flags, uint64_t expect_size)
{
    struct stat a, b;
    if (fstat(fd, &a) != 0) return pf_fail(PINFER_EIO, "%s: fstat: %s", path, strerror(errno));
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    int nfd = open(proc, flags | O_RDONLY | O_CLOEXEC);
    if (nfd < 0 && errno == ENOENT) nfd = open(path, flags | O_RDONLY | O_CLOEXEC); /* no /proc */
    if (nfd < 0) {
        int e = errno;
        pf_fail(PINFER_EIO, "cannot open %s again: %s", path, strerror(e));
        errno = e;
        return PINFER_EIO;
    }
    if (fstat(nfd, &b) != 0) {
        int e = errno;
        close(nfd);
        return pf_fail(PINFER_EIO, "%s: fstat: %s", path, strerror(e));
    }
    if (a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
        close(nfd);
        errno = ESTALE;
        return pf_fail(PINFER_EIO, "%s was replaced by another file after it was opened", path);
    }
    if ((uint64_t)b.st_size != expect_size) {
        close(nfd);
        errno = ESTALE;
        return pf_fail(PINFER_EIO, "%s changed size after it was opened: %lld bytes, was %llu",
                       path, (long long)b.st_size, (unsigned long long)expect_size);
    }
    return nfd;
}
