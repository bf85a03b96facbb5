/* hpack.h - HPACK header compression (RFC 7541): the static and dynamic
 * tables, integer and string coding, Huffman coding, a decoder for blocks
 * that come from the network and an encoder for the blocks we send.
 *
 * HTTP/2 framing (HEADERS/CONTINUATION), SETTINGS and header validation
 * belong to h2.c; this file sees only complete header blocks.
 *
 * One decoder and one encoder per connection, each with its own dynamic
 * table.  Blocks must be decoded in the order they arrived and sent in the
 * order they were encoded, or the two ends' tables drift apart.
 */
#ifndef ETCD_HPACK_H
#define ETCD_HPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "h2.h"
#include "mem.h"

/* The protocol's initial SETTINGS_HEADER_TABLE_SIZE. */
#define HPACK_DEFAULT_TABLE_SIZE 4096
/* The encoder never keeps a larger table than this, whatever the peer allows:
 * a bigger one buys little for gRPC's few repeated headers. */
#define HPACK_ENCODER_MAX_TABLE 4096

enum hpack_error {
    HPACK_ERR_COMPRESSION = -1, /* malformed block: connection error COMPRESSION_ERROR */
    HPACK_ERR_NOMEM = -2,       /* allocation failed: the decoder is out of sync */
    HPACK_ERR_LIST_SIZE = -3,   /* the block was valid and fully processed (the
                                 * table is in sync) but its header list was larger
                                 * than allowed; no headers are returned */
};

/* One entry of the dynamic table: name then value, contiguous in the
 * table's byte buffer at he_off. */
struct hpack_entry {
    uint32_t he_off;
    uint32_t he_name_len;
    uint32_t he_value_len;
};

/* The dynamic table (RFC 7541 section 2.3.2).  Internal to hpack.c; here only
 * so the decoder and encoder can be embedded.  Strings live in one buffer of
 * twice the size limit that is compacted when its end is reached, so an
 * insertion costs no allocation and compaction is amortised O(1). */
struct hpack_table {
    uint8_t *ht_buf;             /* owned; 2 * ht_limit bytes, allocated on first insert */
    size_t ht_start, ht_end;     /* live bytes in ht_buf */
    struct hpack_entry *ht_ents; /* owned ring, oldest at ht_first */
    size_t ht_ents_cap;          /* power of two, >= ht_limit / 32 (the most entries) */
    size_t ht_first, ht_n;
    size_t ht_size;  /* sum of (name + value + 32) over the entries */
    size_t ht_max;   /* current maximum size, set by size updates */
    size_t ht_limit; /* largest ht_max allowed (the SETTINGS value) */
};

struct hpack_decoder {
    struct hpack_table hd_table;
};

struct hpack_encoder {
    struct hpack_table he_table;
    size_t he_update_min; /* smallest size set since the last block; SIZE_MAX if none */
    bool he_update;       /* a size update is owed at the start of the next block */
};

/* Flag for hpack_encode: the block may reach the peer after blocks encoded
 * later (it waits behind queued DATA), so it must not read or change the
 * dynamic table: only the static table and literals without indexing. */
#define HPACK_ENC_STATIC_ONLY 1u

/* ---- decoder ---- */

/* table_limit: our SETTINGS_HEADER_TABLE_SIZE (below 2^31); the table
 * starts at that size.  Allocates nothing. */
void hpack_decoder_init(struct hpack_decoder *d, size_t table_limit);
void hpack_decoder_free(struct hpack_decoder *d);

/* Decodes one complete header block p[0..n).  On success *out points to
 * *n_out headers in arena and 0 is returned.  A name or value points into p
 * (plain literals), into static memory or into the arena (Huffman-coded
 * strings, copies of dynamic table entries, which later insertions evict):
 * keep p and the arena for as long as the headers are used.  Errors:
 * HPACK_ERR_COMPRESSION (bad integer, string, Huffman code, index, size
 * update above the limit or after the first field), HPACK_ERR_NOMEM (also
 * when the arena's limit is reached), HPACK_ERR_LIST_SIZE when the decoded
 * list (RFC 9113 size: name + value + 32 per field) exceeds max_list_size. */
int hpack_decode(struct hpack_decoder *d, const uint8_t *p, size_t n, size_t max_list_size,
                 struct mem_arena *arena, struct h2_header **out, size_t *n_out) MEM_MUST_CHECK;

/* ---- encoder ---- */

/* Starts with the protocol's default table size.  Allocates nothing. */
void hpack_encoder_init(struct hpack_encoder *e);
void hpack_encoder_free(struct hpack_encoder *e);

/* The peer's SETTINGS_HEADER_TABLE_SIZE changed.  The table shrinks at once
 * when needed and the next block starts with the size update(s). */
void hpack_encoder_set_peer_limit(struct hpack_encoder *e, uint32_t settings_value);

/* Appends the block for h[0..n) to out.  Header names must be lowercase.
 * "authorization", "proxy-authorization", "cookie", "set-cookie" and "token"
 * are sent never-indexed; a few per-request headers are sent without
 * indexing; everything else is added to the dynamic table.  flags: 0 or
 * HPACK_ENC_STATIC_ONLY.  0, or -1 on OOM (nothing appended, the table
 * unchanged). */
int hpack_encode(struct hpack_encoder *e, const struct h2_header *h, size_t n, unsigned flags,
                 struct mem_buf *out) MEM_MUST_CHECK;

/* Appends the pending size update(s), if any, and clears them: for a block
 * encoded with HPACK_ENC_STATIC_ONLY that turns out to be the next one sent.
 * 0, or -1 on OOM. */
int hpack_encode_size_update(struct hpack_encoder *e, struct mem_buf *out) MEM_MUST_CHECK;

#endif
