/* The CLI's contract on bad input: a one-line error on stderr and a non-zero exit, never a
 * crash (a signal) or a hang; and the happy paths of tokenize/eval/run on stories260K, checked
 * against the reference files. Runs the binary named by $PINFER_BIN (tests/run.sh sets it). */
#include "testutil.h"

#include <sys/stat.h>

#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <sys/wait.h>

static const char *bin;
static char model[1024];

/* Runs a shell command with a timeout; returns its exit status, or 128+signal, and the first
 * stderr line / stdout in the given buffers. */
static int run(const char *args, char *out, size_t out_cap, char *err, size_t err_cap)
{
    char cmd[8192];
    const char *tmp = tu_tmpdir();
    snprintf(cmd, sizeof cmd, "timeout 60 %s %s >%s/out.txt 2>%s/err.txt", bin, args, tmp, tmp);
    int st = system(cmd);
    int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    char p[4200];
    snprintf(p, sizeof p, "%s/out.txt", tmp);
    char *o = tu_read_file(p, NULL);
    snprintf(p, sizeof p, "%s/err.txt", tmp);
    char *e = tu_read_file(p, NULL);
    if (out) snprintf(out, out_cap, "%s", o ? o : "");
    if (err) snprintf(err, err_cap, "%s", e ? e : "");
    free(o);
    free(e);
    return rc;
}

/* Expects the command line fmt, ... to fail with a clear message: exit 1 or 2 (not a signal,
 * not 124 = timeout), and a stderr that starts with "pinfer" and contains `needle`. */
static void expect_error(const char *needle, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void expect_error(const char *needle, const char *fmt, ...)
{
    char args[8192], err[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    int rc = run(args, NULL, 0, err, sizeof err);
    CHECKF(rc == 1 || rc == 2, "'%s' exited %d", args, rc);
    char *first_nl = strchr(err, '\n');
    if (first_nl) *first_nl = 0;
    CHECKF(strstr(err, "pinfer") != NULL, "'%s': first stderr line does not name pinfer: %.200s", args, err);
    if (first_nl) *first_nl = '\n';
    CHECKF(strstr(err, needle) != NULL, "'%s': stderr lacks '%s': %.300s", args, needle, err);
    char *nl = strchr(err, '\n');
    printf("%-70.70s -> exit %d: %.*s\n", args, rc, nl ? (int)(nl - err) : 200, err);
}

int main(void)
{
    bin = getenv("PINFER_BIN");
    if (!bin) bin = "build/pinfer";
    const char *p = tu_shared_path("models/stories260K/stories260K.gguf");
    if (!p) TEST_SKIP("../shared is absent: no model for the CLI tests");
    if (strlen(p) >= sizeof model) TEST_SKIP("path too long");
    snprintf(model, sizeof model, "%s", p);
    const char *tmp = tu_tmpdir();
    char args[8192], out[1 << 16];

    /* usage errors */
    expect_error("usage", "%s", "");

    /* outputs are renamed over their destination: a non-regular destination is refused, not
       replaced (a fifo and a directory stand in for /dev/null) */
    {
        char fifo[4200];
        snprintf(fifo, sizeof fifo, "%s/a.fifo", tmp);
        CHECK(mkfifo(fifo, 0644) == 0);
        expect_error("not a regular file", "synth -o %s", fifo);
        struct stat st;
        CHECK(lstat(fifo, &st) == 0 && S_ISFIFO(st.st_mode));
        expect_error("not a regular file", "synth -o %s", tmp);
        expect_error("not a regular file", "eval -m %s --ids \"1 2\" --logits %s", model, fifo);
    }

    /* memory-budget flags */
    expect_error("is the model file", "eval -m %s --ids \"1 2\" --logits %s", model, model);
    expect_error("not a size", "run -m %s -p hi -n 2 --mem-budget lots", model);
    expect_error("not a size", "run -m %s -p hi -n 2 --mem-budget 1G --stage-bytes 50%%", model);
    expect_error("0..1", "bench -m %s -p 0 -n 2 --sparse predictor --sparse-ideal 1.5", model);
    expect_error("prepared model", "run -m %s -p hi -n 2 --mem-budget 1G", model);
    expect_error("uring", "bench -m %s --io floppy", model);
    expect_error("unknown command", "frobnicate");
    expect_error("unknown flag", "run -m %s --no-such-flag", model);
    expect_error("-t expects an integer", "run -m %s -t abc", model);
    expect_error("needs a value", "run -m %s -n", model);
    expect_error("--temp expects a number", "run -m %s --temp -1", model);
    expect_error("no model given", "run -p hi");

    /* files */
    expect_error("/nonexistent/model.gguf", "run -m /nonexistent/model.gguf -p hi");
    expect_error("", "run -m %s -p hi", tmp); /* a directory */
    char trunc[1100];
    snprintf(trunc, sizeof trunc, "%s/truncated.gguf", tmp);
    snprintf(args, sizeof args, "head -c 300000 %s > %s", model, trunc);
    CHECK(system(args) == 0);
    expect_error("truncated.gguf", "run -m %s -p hi", trunc);
    snprintf(trunc, sizeof trunc, "%s/garbage.gguf", tmp);
    snprintf(args, sizeof args, "head -c 4096 /dev/urandom > %s", trunc);
    CHECK(system(args) == 0);
    expect_error("magic", "run -m %s -p hi", trunc);

    /* a prompt longer than the context */
    expect_error("context", "run -m %s -c 8 -p 'Once upon a time there was a little girl named Lily who loved to play'", model);
    /* eval: ids out of range, output into a missing directory (nothing written) */
    expect_error("9999", "eval -m %s --ids '1 9999' --logits %s/x.txt", model, tmp);
    expect_error("/nonexistent/dir/x.txt", "eval -m %s --ids '1 2' --logits /nonexistent/dir/x.txt", model);

    /* happy paths against the reference */
    snprintf(args, sizeof args, "tokenize -m %s -p 'Once upon a time'", model);
    CHECK(run(args, out, sizeof out, NULL, 0) == 0);
    CHECKF(!strcmp(out, "1 403 407 261 378\n"), "tokenize printed '%s'", out);

    char *ids = tu_read_file(tu_shared_path("models/stories260K/reference/dev1.ids.txt"), NULL);
    char *ref = tu_read_file(tu_shared_path("models/stories260K/reference/dev1.logits.txt"), NULL);
    CHECK(ids && ref);
    if (ids && ref) {
        /* the teacher-forced inputs are column 2 of the reference logits file */
        char idlist[4096] = "";
        for (char *save = NULL, *line = strtok_r(ref, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            int pos, id;
            if (line[0] != '#' && sscanf(line, "%d %d", &pos, &id) == 2) {
                char b[16];
                snprintf(b, sizeof b, "%s%d", idlist[0] ? " " : "", id);
                strcat(idlist, b);
            }
        }
        for (int batch = 0; batch < 2; batch++) {
            snprintf(args, sizeof args, "eval -m %s --ids '%s' --logits %s/ev.txt %s", model, idlist, tmp, batch ? "--batch" : "");
            CHECK(run(args, NULL, 0, NULL, 0) == 0);
            char path[4200];
            snprintf(path, sizeof path, "%s/ev.txt", tmp);
            char *got = tu_read_file(path, NULL);
            char *want = tu_read_file(tu_shared_path("models/stories260K/reference/dev1.logits.txt"), NULL);
            CHECK(got && want);
            if (got && want) {
                /* same header, same pos/id/argmax columns, logits within 2e-2 */
                char *gs = NULL, *ws = NULL;
                char *g = strtok_r(got, "\n", &gs), *w = strtok_r(want, "\n", &ws);
                CHECKF(g && w && !strcmp(g, w), "header differs: '%s'", g ? g : "");
                int lines = 0;
                float worst = 0;
                while ((g = strtok_r(NULL, "\n", &gs)) && (w = strtok_r(NULL, "\n", &ws))) {
                    char *ge, *we;
                    for (int col = 0; col < 3; col++) {
                        long a = strtol(g, &ge, 10), b = strtol(w, &we, 10);
                        CHECKF(a == b, "line %d column %d: %ld vs %ld", lines, col, a, b);
                        g = ge; w = we;
                    }
                    for (int i = 0; i < 512; i++) {
                        float a = strtof(g, &ge), b = strtof(w, &we);
                        if (ge == g || we == w) { CHECKF(0, "line %d: short", lines); break; }
                        if (!(fabsf(a - b) <= worst)) worst = fabsf(a - b);
                        g = ge; w = we;
                    }
                    lines++;
                }
                printf("eval%s: %d lines, max |diff| %.5f\n", batch ? " --batch" : "", lines, (double)worst);
                CHECK(lines == 124);
                CHECK(worst <= 2e-2f);
            }
            free(got);
            free(want);
        }
    }
    free(ids);
    free(ref);

    /* run: greedy continuation equals the reference text start */
    snprintf(args, sizeof args, "run -m %s -p 'Once upon a time' -n 16 --temp 0", model);
    char err[4096];
    CHECK(run(args, out, sizeof out, err, sizeof err) == 0);
    CHECKF(!strncmp(out, "Once upon a time, there was a li", 32), "run printed '%s'", out);
    CHECKF(strstr(err, "tok/s") && strstr(err, "peak memory"), "run statistics missing: %s", err);
    printf("run: %s", err);
    TEST_DONE();
}
