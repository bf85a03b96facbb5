/* fuzz_json.c - libFuzzer target: hostile bytes into the JSON parser; what
 * parses must survive walking every node and re-encoding its strings. */
// deps: json.c mem.c
#include <stddef.h>
#include <stdint.h>

#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const struct json *j, struct mem_buf *b)
{
    if (j->type == JSON_STRING)
        (void)!json_put_str(b, j->s, j->len);
    uint64_t u;
    int64_t i;
    (void)!json_u64(j, &u);
    (void)!json_i64(j, &i);
    for (size_t k = 0; k < j->n; k++) {
        if (j->type == JSON_OBJECT)
            (void)!json_put_str(b, j->keys[k], j->key_lens[k]);
        walk(&j->kids[k], b);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mem_arena a;
    mem_arena_init(&a, 16u << 20);
    struct json j;
    char err[128];
    if (json_parse((const char *)data, size, &a, &j, err, sizeof err) == 0) {
        struct mem_buf b = {0};
        walk(&j, &b);
        mem_buf_free(&b);
    }
    mem_arena_free(&a);
    return 0;
}
