/* fuzz_hpack.c - libFuzzer target: hostile header blocks into an HPACK
 * decoder, and a round trip of whatever decodes through our encoder and a
 * second decoder, which must give back the same headers.
 *
 * Input: one byte choosing the table size, then blocks, each preceded by a
 * two-byte length.
 */
// deps: hpack.c mem.c
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hpack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t limit = (size_t)data[0] * 32;
    data++;
    size--;
    struct hpack_decoder d, d2;
    struct hpack_encoder e;
    struct mem_arena a, a2;
    struct mem_buf out = {0};
    hpack_decoder_init(&d, limit);
    hpack_decoder_init(&d2, HPACK_DEFAULT_TABLE_SIZE);
    hpack_encoder_init(&e);
    mem_arena_init(&a, 1 << 20);
    mem_arena_init(&a2, 1 << 20);
    size_t pos = 0;
    while (pos + 2 <= size) {
        size_t n = (size_t)data[pos] << 8 | data[pos + 1];
        pos += 2;
        if (n > size - pos)
            n = size - pos;
        struct h2_header *h, *h2;
        size_t nh, nh2;
        int r = hpack_decode(&d, data + pos, n, 8192, &a, &h, &nh);
        pos += n;
        if (r == HPACK_ERR_COMPRESSION || r == HPACK_ERR_NOMEM)
            break; /* the connection would be closed */
        if (r < 0)
            continue;
        out.len = 0;
        if (hpack_encode(&e, h, nh, (n & 1) ? HPACK_ENC_STATIC_ONLY : 0, &out) < 0)
            break;
        if (hpack_decode(&d2, out.data, out.len, 1 << 20, &a2, &h2, &nh2) != 0 || nh2 != nh)
            abort();
        for (size_t k = 0; k < nh; k++)
            if (h[k].name_len != h2[k].name_len || h[k].value_len != h2[k].value_len ||
                memcmp(h[k].name, h2[k].name, h[k].name_len) != 0 ||
                memcmp(h[k].value, h2[k].value, h[k].value_len) != 0)
                abort();
        if (e.he_table.ht_n != d2.hd_table.ht_n || e.he_table.ht_size != d2.hd_table.ht_size)
            abort();
        mem_arena_reset(&a);
        mem_arena_reset(&a2);
    }
    mem_buf_free(&out);
    mem_arena_free(&a);
    mem_arena_free(&a2);
    hpack_encoder_free(&e);
    hpack_decoder_free(&d);
    hpack_decoder_free(&d2);
    return 0;
}
