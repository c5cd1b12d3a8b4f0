/* The CLI's contract on bad input: a one-line error on stderr and a non-zero exit, never a
 * crash (a signal) or a hang; and the happy paths of tokenize/eval/run on stories260K, checked
 * against the reference files. Runs the binary named by $PINFER_BIN (tests/run.sh sets it). */
#include "testutil.h"

#include "gguf/gguf.h"
#include "pinfer.h"

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

/* Writes a copy of model in whose token `id` reads as `text` (issue 15, defect 6: pieces longer
 * than 256 bytes were cut). Weights unchanged, so the model still picks that token. 0 or -1. */
static int write_long_token(const char *in, const char *out, int id, const char *text)
{
    struct gguf_file *f = NULL;
    struct gguf_writer *w = NULL;
    const char **toks = NULL;
    int rc = gguf_open(&f, in);
    if (!rc) rc = gguf_writer_new(&w);
    for (uint64_t i = 0; !rc && i < f->n_kv; i++) {
        const struct gguf_kv *kv = &f->kv[i];
        if (kv->key.len == 21 && !memcmp(kv->key.s, "tokenizer.ggml.tokens", 21) && kv->arr_str && (uint64_t)id < kv->arr_n) {
            toks = calloc(kv->arr_n, sizeof *toks);
            for (uint64_t k = 0; toks && k < kv->arr_n; k++) toks[k] = strndup(kv->arr_str[k].s, kv->arr_str[k].len);
            free((void *)toks[id]);
            toks[id] = strdup(text);
            rc = gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, kv->arr_n);
            for (uint64_t k = 0; k < kv->arr_n; k++) free((void *)toks[k]);
            free(toks);
        } else {
            rc = gguf_writer_copy_kv(w, kv);
        }
    }
    for (uint64_t i = 0; !rc && i < f->n_tensors; i++)
        rc = gguf_writer_add_tensor(w, f->tensors[i].name, f->tensors[i].type, f->tensors[i].n_dims, f->tensors[i].ne);
    if (!rc) rc = gguf_writer_begin(w, out);
    for (uint64_t i = 0; !rc && i < f->n_tensors; i++)
        rc = gguf_writer_write(w, f->data + f->tensors[i].file_offset, f->tensors[i].nbytes);
    if (!rc) rc = gguf_writer_finish(w);
    gguf_writer_free(w);
    gguf_close(f);
    return rc ? -1 : 0;
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
    /* an endless input stops at the tokenizer's cap (it read 2 GiB first) */
    expect_error("larger than 64 MiB", "tokenize -m %s -f /dev/zero", model);
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
    /* --chat: stories260K has no chat template, so the prompt goes out in ChatML (the default) */
    snprintf(args, sizeof args, "run -m %s -p 'Once upon a time' -n 4 --temp 0 --chat", model);
    CHECK(run(args, out, sizeof out, err, sizeof err) == 0);
    CHECKF(!strncmp(out, "<|im_start|>user\nOnce upon a time<|im_end|>\n<|im_start|>assistant\n", 66), "run --chat printed '%s'", out);
    CHECKF(strstr(err, "chat template chatml (the model has none: the default)") != NULL, "run --chat: %s", err);
    snprintf(args, sizeof args, "run -m %s -p hi -n 1 --temp 0 --chat-template llama2-sys --system 'Be kind.'", model);
    CHECK(run(args, out, sizeof out, NULL, 0) == 0);
    CHECKF(!strncmp(out, "[INST] <<SYS>>\nBe kind.\n<</SYS>>\n\nhi [/INST]", 44), "run --chat-template printed '%s'", out);
    expect_error("unrecognised chat template 'llama9'", "run -m %s -p hi --chat-template llama9", model);

    /* a mixture of experts (issue 12): dense runs work; what is later work fails cleanly */
    {
        const char *moe = "tests/data/llama-ref/moe-Q8_0.gguf";
        snprintf(args, sizeof args, "bench -m %s -p 8 -n 4 -r 1", moe);
        int rc = run(args, out, sizeof out, NULL, 0);
        CHECKF(rc == 0 && strstr(out, "tg4"), "'%s' exited %d: %.300s", args, rc, out);
        snprintf(args, sizeof args, "run -m %s -p hi -n 4 --temp 0", moe);
        CHECKF(run(args, NULL, 0, NULL, 0) == 0, "'%s' failed", args);
        expect_error("on a mixture of experts needs a prepared model", "run -m %s -p hi -n 2 --sparse oracle", moe);
        expect_error("on a mixture of experts needs a prepared model", "bench -m %s -p 0 -n 2 --sparse threshold", moe);
        expect_error("a memory budget needs a prepared model", "run -m %s -p hi -n 2 --mem-budget 1G", moe);
        /* profile supports mixtures of experts: the routing table */
        snprintf(args, sizeof args, "profile -m %s --tokens 16 --random", moe);
        rc = run(args, out, sizeof out, NULL, 0);
        CHECKF(rc == 0 && strstr(out, "4 experts, 2 per token"), "'%s' exited %d: %.300s", args, rc, out);
        /* prepared (SiLU: bundles per expert, no predictors), it runs; threshold stays refused */
        snprintf(args, sizeof args, "prepare -m %s -o %s/moe-prepared.gguf --tokens 256", moe, tmp);
        CHECKF(run(args, out, sizeof out, NULL, 0) == 0, "'%s': %.300s", args, out);
        snprintf(args, sizeof args, "run -m %s/moe-prepared.gguf -p hi -n 4 --temp 0 --sparse oracle", tmp);
        CHECKF(run(args, NULL, 0, NULL, 0) == 0, "'%s' failed", args);
        expect_error("threshold on a mixture of experts is not supported", "run -m %s/moe-prepared.gguf -p hi -n 2 --sparse threshold", tmp);
    }
    /* a generated token longer than 256 bytes is printed whole (issue 15, defect 6) */
    {
        struct pinfer_model *m = NULL;
        struct pinfer_ctx *c = NULL;
        int32_t pids[16];
        int first = -1;
        struct pinfer_ctx_params cp = pinfer_ctx_default_params();
        cp.n_ctx = 32;
        cp.n_threads = 1;
        if (pinfer_model_load(&m, model, NULL) == 0 && pinfer_ctx_new(&c, m, &cp) == 0) {
            int n = pinfer_tokenize(m, "Once upon a time", 16, true, pids, 16);
            if (n > 0 && n <= 16 && pinfer_decode(c, pids, n, 0, false) == 0) {
                const float *l = pinfer_ctx_logits(c, -1);
                first = 0;
                for (int k = 1; k < pinfer_n_vocab(m); k++) if (l[k] > l[first]) first = k;
            }
        }
        pinfer_ctx_free(c);
        pinfer_model_free(m);
        CHECK(first > 2);
        char long_model[1200], text[601];
        memset(text, 'x', 600);
        text[600] = 0;
        snprintf(long_model, sizeof long_model, "%s/long-token.gguf", tmp);
        CHECK(first > 2 && write_long_token(model, long_model, first, text) == 0);
        snprintf(args, sizeof args, "run -m %s -p \"Once upon a time\" -n 1 --temp 0", long_model);
        int rc = run(args, out, sizeof out, NULL, 0);
        CHECKF(rc == 0 && strstr(out, text) != NULL, "run with a 600-byte token: exit %d, %zu bytes out", rc, strlen(out));
        printf("600-byte token %d: printed whole: %s\n", first, strstr(out, text) ? "yes" : "no");
    }
    /* --mmap and a model file truncated while it runs (issue 15, defect 4): a clear error and
       exit 1, not death by SIGBUS. The run is stopped once it has printed its prompt, the file
       is cut, and the run continued: its next token touches lost pages. */
    {
        char mm[1200], cmd[8192];
        snprintf(mm, sizeof mm, "%s/mmap-cut.gguf", tmp);
        snprintf(args, sizeof args, "synth -o %s --dim 1024 --layers 4 --heads 8 --ffn 2816 --vocab 512 --ctx 2048", mm);
        CHECK(run(args, NULL, 0, NULL, 0) == 0);
        snprintf(cmd, sizeof cmd,
                 "(%s run --mmap -m %s -p hi -n 1900 --temp 0 -c 2048 >%s/mm.out 2>%s/mm.err & p=$!; i=0; "
                 "while [ ! -s %s/mm.out ] && [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done; "
                 "kill -STOP $p; truncate -s 8192 %s; kill -CONT $p; wait $p; echo $? >%s/mm.rc)",
                 bin, mm, tmp, tmp, tmp, mm, tmp);
        CHECK(system(cmd) == 0);
        char p2[1300];
        snprintf(p2, sizeof p2, "%s/mm.rc", tmp);
        char *rcs = tu_read_file(p2, NULL);
        snprintf(p2, sizeof p2, "%s/mm.err", tmp);
        char *emsg = tu_read_file(p2, NULL);
        CHECKF(rcs && atoi(rcs) == 1 && emsg && strstr(emsg, "pinfer: error: a model file in use was truncated"),
               "--mmap, file cut while running: exit %s, stderr %.300s", rcs ? rcs : "?", emsg ? emsg : "?");
        printf("--mmap, file cut while running: exit %d: %.120s", rcs ? atoi(rcs) : -1, emsg ? emsg : "");
        free(rcs);
        free(emsg);
        unlink(mm);
    }
    /* a read-only file system is named as such, not as a full disk (issue 15): a 4 KiB tmpfs
       mounted read-only in a private mount namespace (unshare; skipped where namespaces are
       not allowed) has no free space and refuses writes */
    {
        char ro[1200], cmd[8192];
        snprintf(ro, sizeof ro, "%s/ro", tmp);
        mkdir(ro, 0755);
        snprintf(cmd, sizeof cmd, "unshare -rm sh -c 'mount -t tmpfs -o ro,size=4k tmpfs %s' 2>/dev/null", ro);
        if (system(cmd) != 0) {
            printf("read-only file system: unshare/mount not allowed here, check skipped\n");
        } else {
            const char *what[2] = { "synth -o %s/x.gguf", "prepare -m %s -o %s/x.gguf" };
            for (int k = 0; k < 2; k++) {
                char sub[2400];
                if (k == 0) snprintf(sub, sizeof sub, what[0], ro);
                else snprintf(sub, sizeof sub, what[1], model, ro);
                snprintf(cmd, sizeof cmd,
                         "unshare -rm sh -c 'mount -t tmpfs -o ro,size=4k tmpfs %s && %s %s' >%s/ro.out 2>%s/ro.err; echo $? >%s/ro.rc",
                         ro, bin, sub, tmp, tmp, tmp);
                CHECK(system(cmd) == 0);
                char p3[1300];
                snprintf(p3, sizeof p3, "%s/ro.rc", tmp);
                char *rcs = tu_read_file(p3, NULL);
                snprintf(p3, sizeof p3, "%s/ro.err", tmp);
                char *emsg = tu_read_file(p3, NULL);
                CHECKF(rcs && atoi(rcs) == 1 && emsg && strstr(emsg, "read-only file system") && !strstr(emsg, "space"),
                       "%s on a read-only file system: exit %s: %.300s", k ? "prepare" : "synth", rcs ? rcs : "?", emsg ? emsg : "?");
                printf("%s on a read-only file system: %.150s", k ? "prepare" : "synth", emsg ? emsg : "");
                free(rcs);
                free(emsg);
            }
        }
    }
    TEST_DONE();
}
