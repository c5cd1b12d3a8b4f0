/* Atomic output files: write to a fresh temp file in the destination's directory (same
 * filesystem, so rename is atomic; pf_tmpfile_create), fsync, then rename over the destination. */
#include "pinfer.h"

#include "core/checked.h"
#include "core/error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

struct pinfer_outfile {
    FILE *fp;
    char *path, *tmp;
};

int pf_check_output_path(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0 || S_ISREG(st.st_mode)) return 0;
    if (S_ISLNK(st.st_mode) && stat(path, &st) == 0 && S_ISREG(st.st_mode)) return 0;
    return pf_fail(PINFER_EINVAL, "%s exists and is not a regular file: outputs are written to a temp file and renamed "
                   "over the destination, which would replace it (give a file path)", path);
}

#define TMP_TAG ".pinfer-tmp."

/* Removes "<base>.pinfer-tmp.<pid>.XXXXXX" files in dir whose pid is gone (a killed run's). */
static void remove_stale(const char *dir, const char *base)
{
    DIR *d = opendir(dir);
    if (!d) return;
    const size_t bl = strlen(base), tl = strlen(TMP_TAG);
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        if (strncmp(n, base, bl) != 0 || strncmp(n + bl, TMP_TAG, tl) != 0) continue;
        char *end;
        long pid = strtol(n + bl + tl, &end, 10);
        if (end == n + bl + tl || *end != '.' || strlen(end + 1) != 6 || pid <= 0) continue;
        if (pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive or unknown */
        char full[4096];
        struct stat st;
        if (snprintf(full, sizeof full, "%s/%s", dir, n) >= (int)sizeof full) continue;
        if (lstat(full, &st) == 0 && S_ISREG(st.st_mode)) unlink(full);
    }
    closedir(d);
}

int pf_tmpfile_create(const char *path, char **tmp)
{
    *tmp = NULL;
    char *d1 = strdup(path), *d2 = strdup(path);
    size_t n = strlen(path) + sizeof TMP_TAG + 32;
    char *t = malloc(n);
    if (!d1 || !d2 || !t) {
        free(d1); free(d2); free(t);
        return pf_fail(PINFER_ENOMEM, "out of memory");
    }
    remove_stale(dirname(d1), basename(d2));
    free(d1); free(d2);
    snprintf(t, n, "%s" TMP_TAG "%ld.XXXXXX", path, (long)getpid());
    int fd = mkostemp(t, O_CLOEXEC); /* O_CREAT | O_EXCL: never an existing file or symlink */
    if (fd < 0) {
        int e = errno;
        free(t);
        return pf_fail(e == ENOSPC || e == EDQUOT ? PINFER_ENOSPC : PINFER_EIO, "cannot create a temp file beside %s: %s",
                       path, strerror(e));
    }
    mode_t um = umask(0);
    umask(um);
    if (fchmod(fd, 0666 & ~um) != 0) { /* mkostemp makes 0600; outputs get the usual mode */
        int e = errno;
        close(fd); unlink(t); free(t);
        return pf_fail(PINFER_EIO, "cannot set the mode of a temp file beside %s: %s", path, strerror(e));
    }
    *tmp = t;
    return fd;
}

int pinfer_outfile_open(struct pinfer_outfile **out, const char *path)
{
    *out = NULL;
    int rc = pf_check_output_path(path);
    if (rc) return rc;
    struct pinfer_outfile *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return pf_fail(PINFER_ENOMEM, "out of memory");
    }
    int fd = pf_tmpfile_create(path, &f->tmp);
    if (fd < 0) { free(f->path); free(f); return fd; }
    f->fp = fdopen(fd, "wb");
    if (!f->fp) {
        int e = errno;
        close(fd); unlink(f->tmp);
        free(f->tmp); free(f->path); free(f);
        return pf_fail(PINFER_ENOMEM, "cannot open a stream on a temp file beside %s: %s", path, strerror(e));
    }
    *out = f;
    return 0;
}

FILE *pinfer_outfile_stream(struct pinfer_outfile *f) { return f->fp; }

static void outfile_release(struct pinfer_outfile *f)
{
    free(f->tmp);
    free(f->path);
    free(f);
}

int pinfer_outfile_commit(struct pinfer_outfile *f)
{
    int rc = 0, e = 0;
    if (fflush(f->fp) != 0 || ferror(f->fp)) e = errno ? errno : EIO;
    if (!e && fsync(fileno(f->fp)) != 0) e = errno;
    if (fclose(f->fp) != 0 && !e) e = errno;
    if (!e && rename(f->tmp, f->path) != 0) e = errno;
    if (e) {
        unlink(f->tmp);
        rc = pf_fail(e == ENOSPC || e == EDQUOT ? PINFER_ENOSPC : PINFER_EIO, "cannot write %s: %s", f->path, strerror(e));
    }
    outfile_release(f);
    return rc;
}

void pinfer_outfile_abort(struct pinfer_outfile *f)
{
    if (!f) return;
    fclose(f->fp);
    unlink(f->tmp);
    outfile_release(f);
}

int pf_check_space(const char *path, uint64_t need, uint64_t margin)
{
    char *copy = strdup(path);
    if (!copy) return pf_fail(PINFER_ENOMEM, "out of memory");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", dirname(copy));
    free(copy);
    struct statvfs st;
    if (statvfs(dir, &st) != 0)
        return pf_fail(PINFER_EIO, "cannot write %s: %s: %s", path, dir, strerror(errno));
    if (st.f_flag & ST_RDONLY)
        return pf_fail(PINFER_EIO, "cannot write %s: '%s' is on a read-only file system", path, dir);
    uint64_t avail, want;
    const char *fake = getenv("PINFER_FAKE_FREE_BYTES");
    if (fake && *fake) avail = strtoull(fake, NULL, 10);
    else if (ck_mul_u64((uint64_t)st.f_bavail, (uint64_t)st.f_frsize, &avail)) avail = UINT64_MAX;
    if (ck_add_u64(need, margin, &want) || want > avail)
        return pf_fail(PINFER_ENOSPC, "not enough disk space in '%s': %s needs %.2f GiB (+%llu MiB margin), %.2f GiB are free",
                       dir, path, (double)need / (1ull << 30), (unsigned long long)(margin >> 20), (double)avail / (1ull << 30));
    return 0;
}
