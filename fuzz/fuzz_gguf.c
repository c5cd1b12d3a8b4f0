/* libFuzzer target for the GGUF reader: parses the input as a whole file image and, when it
 * parses, walks everything a model loader would touch (every getter on every key, every tensor
 * lookup, every tensor's bytes), so a bound the parser forgot shows as an ASan report.
 * Build: make fuzz. Run: scripts/fuzz.sh (smoke | long SECONDS) */
#include "gguf/gguf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact-size copy: libFuzzer's buffer is exact too, but this keeps the contract that
     * the image outlives the parse explicit */
    uint8_t *img = malloc(size ? size : 1);
    if (!img) return 0;
    if (size) memcpy(img, data, size);
    struct gguf_file *f = NULL;
    if (gguf_parse(&f, img, size) == 0) {
        volatile uint64_t sink = 0;
        for (uint64_t i = 0; i < f->n_kv; i++) {
            const struct gguf_kv *kv = &f->kv[i];
            char key[256], buf[32];
            snprintf(key, sizeof key, "%.*s", (int)(kv->key.len < 255 ? kv->key.len : 255), kv->key.s);
            uint32_t u; int64_t v; float x; bool b;
            gguf_get_u32(f, key, &u);
            gguf_get_i64(f, key, &v);
            gguf_get_f32(f, key, &x);
            gguf_get_bool(f, key, &b);
            gguf_get_str(f, key, buf, sizeof buf);
            sink += gguf_find(f, key) != NULL;
            sink += (uint64_t)strlen(gguf_vtype_name(kv->type));
            if (kv->type == GGUF_STRING && kv->str.len) sink += (uint8_t)kv->str.s[kv->str.len - 1];
            if (kv->type == GGUF_ARRAY && kv->arr_type == GGUF_STRING)
                for (uint64_t j = 0; j < kv->arr_n; j++)
                    if (kv->arr_str[j].len) sink += (uint8_t)kv->arr_str[j].s[kv->arr_str[j].len - 1];
        }
        for (uint64_t i = 0; i < f->n_tensors; i++) {
            const struct gguf_tensor *t = &f->tensors[i];
            if (gguf_find_tensor(f, t->name) != (int)i) __builtin_trap();
            if (t->file_offset + t->nbytes > f->size) __builtin_trap();
            sink += f->data[t->file_offset] + f->data[t->file_offset + t->nbytes - 1];
        }
        (void)sink;
        gguf_close(f);
    }
    free(img);
    return 0;
}
