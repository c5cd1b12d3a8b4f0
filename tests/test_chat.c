/* pinfer chat on stories260K (../shared), fed lines on stdin:
 *   - the second turn decodes only its new tokens: the tokens of the text the chatml template
 *     adds for it (end of the answer, the user's turn, the assistant's opening), counted here
 *     with `pinfer tokenize`; all that turn 1 left in the KV cache is reused;
 *   - the first answer is `pinfer run --chat`'s for the same prompt (greedy);
 *   - a full context ends the session with a message, or with --context-shift goes on;
 *   - Ctrl-C (SIGINT) stops the answer being generated and the session goes on with the cut
 *     answer in its KV cache; at the prompt it ends the session, exit 0. */
#include "serve_util.h"

#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

static const char *bin;
static char model[1024];

/* Runs a shell command line; its exit status, stdout and stderr (malloc'd). */
static int sh(const char *cmd, char **out, char **err)
{
    char full[8192], po[1100], pe[1100];
    snprintf(po, sizeof po, "%s/sh.out", tu_tmpdir());
    snprintf(pe, sizeof pe, "%s/sh.err", tu_tmpdir());
    snprintf(full, sizeof full, "%s >%s 2>%s", cmd, po, pe);
    int st = system(full);
    if (out) *out = tu_read_file(po, NULL);
    if (err) *err = tu_read_file(pe, NULL);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

struct turn { int decoded, reused, generated; };

/* The --stats line of turn t in err; false if absent. */
static bool turn_stats(const char *err, int t, struct turn *ts)
{
    char key[64];
    snprintf(key, sizeof key, "pinfer chat: turn %d: ", t);
    const char *p = err ? strstr(err, key) : NULL;
    return p && sscanf(p + strlen(key), "prompt %d tokens decoded, %d reused from the KV cache | generated %d", &ts->decoded,
                       &ts->reused, &ts->generated) == 3;
}

/* Number of tokens `pinfer tokenize --no-bos` gives for text. */
static int count_tokens(const char *text)
{
    char path[1100], cmd[4096];
    snprintf(path, sizeof path, "%s/delta.txt", tu_tmpdir());
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(text, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s tokenize -m %s --no-bos -f %s", bin, model, path);
    char *out = NULL;
    int n = -1;
    if (sh(cmd, &out, NULL) == 0 && out) {
        n = 0;
        for (char *p = strtok(out, " \n"); p; p = strtok(NULL, " \n")) n++;
    }
    free(out);
    return n;
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* Waits (up to timeout_ms) until the file at path is larger than size. */
static bool grows_past(const char *path, long size, int timeout_ms)
{
    for (int t = 0; t < timeout_ms; t += 10) {
        if (file_size(path) > size) return true;
        ts_sleep_ms(10);
    }
    return false;
}

/* Ctrl-C on a session fed through a pipe: a model with a long context and answers of up to 3000
 * tokens (seconds each), so that the signal comes while an answer runs. */
static void ctrl_c(void)
{
    char m[1100], out[1100], err[1100], cmd[4096];
    snprintf(m, sizeof m, "%s/chat-long.gguf", tu_tmpdir());
    snprintf(out, sizeof out, "%s/chat-c.out", tu_tmpdir());
    snprintf(err, sizeof err, "%s/chat-c.err", tu_tmpdir());
    snprintf(cmd, sizeof cmd, "%s synth -o %s --dim 1024 --layers 8 --heads 16 --kv-heads 2 --ffn 2816 --ctx 4096 "
                              "--type q4_0", bin, m);
    if (sh(cmd, NULL, NULL) != 0) { CHECKF(0, "synth of the Ctrl-C model failed"); return; }
    int in[2];
    if (pipe(in)) { CHECK(0); return; }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], 0);
        close(in[0]);
        close(in[1]);
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644), fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0) _exit(127);
        dup2(fo, 1);
        dup2(fe, 2);
        execl(bin, bin, "chat", "-m", m, "-c", "4096", "-n", "3000", "--ignore-eos", "--temp", "0", "--stats", "-t", "2",
              (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    struct turn t1 = { -1, -1, -1 }, t2 = { -1, -1, -1 };
    char *e = NULL;
    /* turn 1: interrupted once its answer streams */
    CHECK(write(in[1], "Hello\n", 6) == 6);
    CHECKF(grows_past(out, 16, 30000), "turn 1's answer did not start");
    kill(pid, SIGINT);
    CHECKF(ts_file_wait(err, "pinfer chat: turn 1: ", 30000), "turn 1 did not end after Ctrl-C");
    e = tu_read_file(err, NULL);
    CHECKF(turn_stats(e, 1, &t1) && t1.generated > 0 && t1.generated < 3000 && strstr(e, "| interrupted"),
           "turn 1 after Ctrl-C: %s", e ? e : "");
    free(e);
    /* turn 2: the session went on, with the cut answer kept; interrupted too */
    long sz = file_size(out);
    CHECK(write(in[1], "Again\n", 6) == 6);
    CHECKF(grows_past(out, sz + 16, 30000), "turn 2's answer did not start");
    kill(pid, SIGINT);
    CHECKF(ts_file_wait(err, "pinfer chat: turn 2: ", 30000), "turn 2 did not end after Ctrl-C");
    e = tu_read_file(err, NULL);
    CHECKF(turn_stats(e, 2, &t2) && t2.generated < 3000 && t2.reused == t1.decoded + t1.generated,
           "turn 2 after an interrupted turn 1 (%d decoded + %d generated): %s", t1.decoded, t1.generated, e ? e : "");
    free(e);
    /* at the prompt: the session ends, exit 0 (a Ctrl-C that lands between the answer's end
       and the read of the next line is not seen: send it again, as a user would) */
    int st = -1;
    for (int i = 0; i < 100 && waitpid(pid, &st, WNOHANG) == 0; i++) {
        kill(pid, SIGINT);
        ts_sleep_ms(100);
    }
    if (st == -1) { kill(pid, SIGKILL); waitpid(pid, &st, 0); }
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "Ctrl-C at the prompt: status %d", st);
    close(in[1]);
    printf("Ctrl-C: turn 1 cut after %d tokens, turn 2 reused %d and was cut after %d, Ctrl-C at the prompt: exit %d\n",
           t1.generated, t2.reused, t2.generated, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    remove(m);
}

int main(void)
{
    bin = getenv("PINFER_BIN");
    if (!bin) bin = "build/pinfer";
    const char *p = tu_shared_path("models/stories260K/stories260K.gguf");
    if (!p) TEST_SKIP("../shared is absent: no model for the chat tests");
    snprintf(model, sizeof model, "%s", p);
    char cmd[8192];
    char *out = NULL, *err = NULL;

    /* two turns: the second decodes only what it adds */
    snprintf(cmd, sizeof cmd, "printf 'Hello\\nTell me a story\\n' | %s chat -m %s --temp 0 -n 10 --stats", bin, model);
    int rc = sh(cmd, &out, &err);
    CHECKF(rc == 0, "two turns: exit %d: %s", rc, err ? err : "");
    struct turn t1 = { -1, -1, -1 }, t2 = { -1, -1, -1 };
    CHECKF(turn_stats(err, 1, &t1) && turn_stats(err, 2, &t2), "no --stats lines: %s", err ? err : "");
    int delta = count_tokens("<|im_end|>\n<|im_start|>user\nTell me a story<|im_end|>\n<|im_start|>assistant\n");
    printf("turn 1: %d decoded, %d reused, %d generated\nturn 2: %d decoded, %d reused (the new text: %d tokens)\n",
           t1.decoded, t1.reused, t1.generated, t2.decoded, t2.reused, delta);
    CHECK(t1.reused == 0 && t1.decoded > 0 && t1.generated == 10);
    CHECKF(t2.reused == t1.decoded + t1.generated, "turn 2 reused %d of the %d tokens turn 1 left", t2.reused,
           t1.decoded + t1.generated);
    CHECKF(delta > 0 && t2.decoded == delta, "turn 2 decoded %d tokens; its new text has %d", t2.decoded, delta);

    /* turn 1's answer is run --chat's (greedy, same template) */
    char *run_out = NULL;
    snprintf(cmd, sizeof cmd, "%s run -m %s --chat -p Hello --temp 0 -n 10", bin, model);
    CHECK(sh(cmd, &run_out, NULL) == 0);
    const char *opening = "<|im_start|>assistant\n";
    const char *gen = run_out ? strstr(run_out, opening) : NULL;
    if (gen) gen += strlen(opening);
    CHECKF(gen && out && strlen(gen) > 1 && !strncmp(out, gen, strlen(gen) - 1),
           "chat's first answer differs from run's:\nchat: %s\nrun:  %s", out ? out : "", gen ? gen : "");
    free(run_out);
    free(out);
    free(err);

    /* a full context (128 tokens) ends the session with a message ... */
    snprintf(cmd, sizeof cmd, "printf 'Hello\\nTell me a story\\nMore\\n' | %s chat -m %s --temp 0 -n 30 --stats", bin, model);
    rc = sh(cmd, &out, &err);
    CHECKF(rc == 1 && err && strstr(err, "the context is full (128 tokens)") && strstr(err, "--context-shift"),
           "a full context: exit %d: %s", rc, err ? err : "");
    free(out);
    free(err);
    /* ... or, with --context-shift, drops the oldest turns and goes on */
    snprintf(cmd, sizeof cmd, "printf 'Hello\\nTell me a story\\nMore\\n' | %s chat -m %s --temp 0 -n 30 --stats --context-shift "
                              "--system 'You tell stories'", bin, model);
    rc = sh(cmd, &out, &err);
    struct turn t3 = { -1, -1, -1 };
    CHECKF(rc == 0 && err && strstr(err, "context full: dropped") && turn_stats(err, 3, &t3) && t3.generated == 30,
           "--context-shift: exit %d: %s", rc, err ? err : "");
    free(out);
    free(err);

    /* usage errors */
    snprintf(cmd, sizeof cmd, "%s chat", bin);
    rc = sh(cmd, NULL, &err);
    CHECKF(rc == 2 && err && strstr(err, "no model given"), "no -m: %d %s", rc, err ? err : "");
    free(err);
    snprintf(cmd, sizeof cmd, "%s chat -m %s --chat-template nonesuch </dev/null", bin, model);
    rc = sh(cmd, NULL, &err);
    CHECKF(rc == 2 && err && strstr(err, "--chat-template"), "a bad template: %d %s", rc, err ? err : "");
    free(err);
    /* end of input at once: a clean exit */
    snprintf(cmd, sizeof cmd, "%s chat -m %s </dev/null", bin, model);
    CHECK(sh(cmd, NULL, NULL) == 0);
    ctrl_c();
    TEST_DONE();
}
