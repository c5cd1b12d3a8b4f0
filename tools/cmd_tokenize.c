/* pinfer tokenize: the ids of a text on one line (BOS included when the model adds one). */
#include "args.h"
#include "cmds.h"
#include "pinfer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *C = "tokenize";

int cmd_tokenize(int argc, char **argv)
{
    const char *model_path = NULL, *text = NULL, *file = NULL, *v;
    bool no_bos = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: pinfer tokenize -m MODEL (-p TEXT | -f FILE) [--no-bos]\n");
            return 0;
        }
        else if (!strcmp(a, "--no-bos")) no_bos = true;
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) { ARGS_TAKE(); model_path = v; }
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) { ARGS_TAKE(); text = v; }
        else if (!strcmp(a, "-f") || !strcmp(a, "--file")) { ARGS_TAKE(); file = v; }
        else return args_usage_error(C, "unknown flag '%s'", a);
    }
    if (!model_path) return args_usage_error(C, "no model given (-m FILE)");
    if (!text == !file) return args_usage_error(C, "give the text with -p TEXT or -f FILE");
    char *buf = NULL;
    size_t len = text ? strlen(text) : 0;
    if (file && !(buf = args_read_file(C, file, &len))) return 1;
    if (buf) text = buf;

    struct pinfer_model *m = NULL;
    struct pinfer_model_params mp = pinfer_model_default_params();
    mp.vocab_only = true;
    int rc = 1;
    int32_t *ids = NULL;
    if (pinfer_model_load(&m, model_path, &mp)) { args_pinfer_error(C); goto out; }
    int n = pinfer_tokenize(m, text, len, !no_bos, NULL, 0);
    if (n < 0 || !(ids = malloc(sizeof *ids * (size_t)(n + 1)))) { args_pinfer_error(C); goto out; }
    n = pinfer_tokenize(m, text, len, !no_bos, ids, n);
    for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
    printf("\n");
    rc = 0;
out:
    free(ids);
    free(buf);
    pinfer_model_free(m);
    return rc;
}
