/* Helpers shared by the test programs. */
#include "testutil.h"

#include "pinfer.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int tu_failures;

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

const char *tu_shared_dir(void)
{
    static char dir[PATH_MAX];
    static int done;
    if (done) return dir[0] ? dir : NULL;
    done = 1;
    const char *env = getenv("PINFER_SHARED");
    if (env && is_dir(env)) { snprintf(dir, sizeof dir, "%s", env); return dir; }
    /* tests run from the repository root (make test); also try one and two levels up */
    const char *cands[] = { "../shared", "../../shared", "../../../shared" };
    for (size_t i = 0; i < sizeof cands / sizeof *cands; i++)
        if (is_dir(cands[i])) { snprintf(dir, sizeof dir, "%s", cands[i]); return dir; }
    dir[0] = 0;
    return NULL;
}

const char *tu_shared_path(const char *rel)
{
    static char p[PATH_MAX];
    const char *d = tu_shared_dir();
    if (!d) return NULL;
    snprintf(p, sizeof p, "%s/%s", d, rel);
    return p;
}

char *tu_read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    if (fseek(fp, 0, SEEK_END) != 0) { fclose(fp); return NULL; }
    long n = ftell(fp);
    rewind(fp);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!buf || fread(buf, 1, (size_t)n, fp) != (size_t)n) { free(buf); fclose(fp); return NULL; }
    buf[n] = 0;
    fclose(fp);
    if (len) *len = (size_t)n;
    return buf;
}

const char *tu_tmpdir(void)
{
    static char dir[PATH_MAX];
    if (dir[0]) return dir;
    const char *base = getenv("PINFER_TEST_TMP");
    snprintf(dir, sizeof dir, "%s/t%ld", base ? base : "/tmp/pinfer-test", (long)getpid());
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    if (system(cmd) != 0) return "/tmp";
    return dir;
}

unsigned long long tu_rand(unsigned long long *s)
{
    unsigned long long x = *s ? *s : 88172645463325252ULL;
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    return *s = x;
}

float tu_randf(unsigned long long *s)
{
    return (float)((tu_rand(s) >> 40) / (double)(1ULL << 24)) * 2.0f - 1.0f;
}

int tu_make_prepared(const char *raw, const char *prep, const struct pinfer_synth_params *sp, int n_tokens, int steps)
{
    if (pinfer_synth(raw, sp)) { fprintf(stderr, "synth: %s\n", pinfer_last_error()); return -1; }
    struct pinfer_prepare_params pp = pinfer_prepare_default_params();
    pp.n_tokens = n_tokens;
    pp.train_steps = steps;
    pp.n_threads = 2;
    if (pinfer_prepare(raw, prep, &pp, NULL)) { fprintf(stderr, "prepare: %s\n", pinfer_last_error()); return -1; }
    return 0;
}
