/* Atomic output files: write to "<path>.tmp.<pid>" in the destination's directory (same
 * filesystem, so rename is atomic), fsync, then rename over the destination. */
#include "pinfer.h"

#include "core/error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

int pinfer_outfile_open(struct pinfer_outfile **out, const char *path)
{
    *out = NULL;
    int rc = pf_check_output_path(path);
    if (rc) return rc;
    struct pinfer_outfile *f = calloc(1, sizeof *f);
    size_t n = strlen(path) + 32;
    if (!f || !(f->path = strdup(path)) || !(f->tmp = malloc(n))) {
        if (f) { free(f->path); free(f); }
        return pf_fail(PINFER_ENOMEM, "out of memory");
    }
    snprintf(f->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    f->fp = fopen(f->tmp, "wb");
    if (!f->fp) {
        int e = errno;
        free(f->tmp); free(f->path); free(f);
        return pf_fail(e == ENOSPC ? PINFER_ENOSPC : PINFER_EIO, "cannot create %s: %s", path, strerror(e));
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
