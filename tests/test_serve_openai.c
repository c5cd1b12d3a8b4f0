/* pinfer serve driven by OpenAI's official client: the `openai` npm package (installed with npm
 * into build/npm, once) runs tests/serve_openai.mjs against a server on stories260K: the model
 * list, chat and text completions whole and streamed, greedy text equal to `pinfer run`'s for
 * the same prompt, usage counts, finish reasons, KV-prefix reuse, and the errors the package
 * raises (401, 400). Skips when node or npm is absent, or ../shared is. */
#include "serve_util.h"

#include <limits.h>
#include <sys/stat.h>

static const char *bin;

/* `pinfer run args`: the text generated after `after` (run prints the prompt first, and a
 * newline last), and the prompt's token count from its report; malloc'd text or NULL. */
static char *run_text(const char *args, const char *after, int *n_prompt)
{
    char cmd[4096], po[1100], pe[1100];
    snprintf(po, sizeof po, "%s/run.out", tu_tmpdir());
    snprintf(pe, sizeof pe, "%s/run.err", tu_tmpdir());
    snprintf(cmd, sizeof cmd, "%s run %s >%s 2>%s", bin, args, po, pe);
    if (system(cmd) != 0) return NULL;
    char *out = tu_read_file(po, NULL), *err = tu_read_file(pe, NULL);
    const char *p = out ? strstr(out, after) : NULL, *q = err ? strstr(err, "| prompt ") : NULL;
    char *text = NULL;
    if (p && q) {
        p += strlen(after);
        size_t n = strlen(p);
        if (n > 0 && p[n - 1] == '\n') n--;
        text = strndup(p, n);
        *n_prompt = atoi(q + 9);
    }
    free(out);
    free(err);
    return text;
}

int main(void)
{
    bin = getenv("PINFER_BIN");
    if (!bin) bin = "build/pinfer";
    const char *p = tu_shared_path("models/stories260K/stories260K.gguf");
    if (!p) TEST_SKIP("../shared is absent: no model for the server tests");
    if (system("node --version >/dev/null 2>&1") != 0 || system("npm --version >/dev/null 2>&1") != 0)
        TEST_SKIP("node or npm is absent: the openai npm package cannot run");
    char model[1024], cmd[3 * PATH_MAX + 256], npm[PATH_MAX];
    snprintf(model, sizeof model, "%s", p);

    /* the package, installed once under the build directory (beside build/tmp) */
    const char *tmp = getenv("PINFER_TEST_TMP");
    snprintf(npm, sizeof npm, "%s/../npm", tmp ? tmp : "build/tmp");
    char probe[PATH_MAX + 64];
    snprintf(probe, sizeof probe, "%s/node_modules/openai/package.json", npm);
    struct stat st;
    if (stat(probe, &st) != 0) {
        snprintf(cmd, sizeof cmd, "mkdir -p %s && npm install --prefix %s --no-audit --no-fund --loglevel=error openai@^6 >%s/npm.log 2>&1",
                 npm, npm, tu_tmpdir());
        int rc = system(cmd);
        CHECKF(rc == 0 && stat(probe, &st) == 0, "npm install openai failed (log in %s/npm.log)", tu_tmpdir());
        if (tu_failures) TEST_DONE();
    }

    /* what pinfer run generates, greedy */
    char args[4096];
    int n_cmpl = 0, n_chat = 0;
    snprintf(args, sizeof args, "-m %s -p 'Once upon a time' -n 20 --temp 0 -s 1", model);
    char *cmpl = run_text(args, "Once upon a time", &n_cmpl);
    snprintf(args, sizeof args, "-m %s --chat -p Hello -n 20 --temp 0 -s 1", model);
    char *chat = run_text(args, "<|im_start|>assistant\n", &n_chat);
    CHECKF(cmpl && chat && n_cmpl > 0 && n_chat > 0, "pinfer run failed");
    if (tu_failures) TEST_DONE();

    struct tserver s;
    snprintf(args, sizeof args, "-m %s --api-key sekrit --alias stories260K --parallel 2 -t 1", model);
    if (ts_start(&s, "serve-openai", "", args, NULL)) {
        char *e = tu_read_file(s.err, NULL);
        CHECKF(0, "the server did not start: %s", e ? e : "");
        free(e);
        TEST_DONE();
    }
    char url[128], num[32];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", s.port);
    char abs_npm[PATH_MAX];
    setenv("NPM_PREFIX", realpath(npm, abs_npm) ? abs_npm : npm, 1);
    setenv("PINFER_URL", url, 1);
    setenv("PINFER_KEY", "sekrit", 1);
    setenv("PINFER_MODEL", "stories260K", 1);
    setenv("EXPECT_COMPLETION", cmpl, 1);
    setenv("EXPECT_CHAT", chat, 1);
    snprintf(num, sizeof num, "%d", n_cmpl);
    setenv("EXPECT_COMPLETION_PROMPT", num, 1);
    snprintf(num, sizeof num, "%d", n_chat);
    setenv("EXPECT_CHAT_PROMPT", num, 1);
    int rc = system("node tests/serve_openai.mjs");
    CHECKF(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "the openai client's checks failed (status %d)", rc);
    rc = ts_stop(&s, SIGTERM, 20);
    CHECKF(rc == 0, "exit status after SIGTERM: %d", rc);
    free(cmpl);
    free(chat);
    TEST_DONE();
}
