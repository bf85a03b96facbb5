/* tests/fuzz/fuzz_pb.c - libFuzzer target for pb.c's decoder and encoder.
 *
 * data[0] picks a message type (the recursive, repeated and oneof-heavy
 * ones), the rest is decoded as that message under an arena limit.  What
 * decodes must encode to exactly pb_encoded_size bytes, and that encoding must
 * be a fixed point: decoding and re-encoding it gives the same bytes.  It
 * does not check that decoding rejects everything protobuf would reject.
 *
 * Build: clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined
 *        -I. tests/fuzz/fuzz_pb.c pb.c api.c mem.c -o /tmp/fuzz_pb
 * Seeds: /usr/bin/python3 tests/pb_vectors.py --corpus DIR */
// deps: pb.c api.c mem.c
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

/* keep in step with FUZZ_SELECTOR in tests/pb_vectors.py */
static const struct pb_msgdesc *const fuzz_descs[] = {
    &api_txn_req_desc,
    &api_range_resp_desc,
    &api_watch_req_desc,
    &api_watch_resp_desc,
    &api_txn_resp_desc,
    &api_range_req_desc,
    &api_member_list_resp_desc,
    &api_status_resp_desc,
    &api_auth_role_get_resp_desc,
    &api_lease_time_to_live_resp_desc,
};

#define FUZZ_ARENA_LIMIT (4u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Encodes msg into *out (emptied first), checking the size pass. */
static void fuzz_encode(const struct pb_msgdesc *d, const void *msg, struct mem_buf *out)
{
    out->len = 0;
    size_t want = pb_encoded_size(d, msg);
    if (pb_encode(d, msg, out) != 0)
        abort(); /* no allocator failures are injected here */
    if (out->len != want)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const struct pb_msgdesc *d =
        fuzz_descs[data[0] % (sizeof fuzz_descs / sizeof fuzz_descs[0])];
    /* the re-decode gets its own unlimited arena: a canonical encoding can
     * be longer than the input (a 5-byte int32 becomes 10 bytes) */
    struct mem_arena a, a2;
    struct mem_buf e1 = {0}, e2 = {0};
    mem_arena_init(&a, FUZZ_ARENA_LIMIT);
    mem_arena_init(&a2, 0);

    void *m1 = mem_arena_alloc(&a, d->size);
    void *m2 = mem_arena_alloc(&a2, d->size);
    if (!m1 || !m2)
        abort();
    /* a copy of exactly the input's size, so ASan sees any overread */
    uint8_t *in = malloc(size - 1 ? size - 1 : 1);
    if (!in)
        abort();
    memcpy(in, data + 1, size - 1);

    if (pb_decode(d, in, size - 1, m1, &a) == PB_OK) {
        fuzz_encode(d, m1, &e1);
        if (pb_decode(d, e1.data, e1.len, m2, &a2) != PB_OK)
            abort();
        fuzz_encode(d, m2, &e2);
        if (e1.len != e2.len || (e1.len && memcmp(e1.data, e2.data, e1.len) != 0))
            abort();
    }

    free(in);
    mem_buf_free(&e1);
    mem_buf_free(&e2);
    mem_arena_free(&a);
    mem_arena_free(&a2);
    return 0;
}
