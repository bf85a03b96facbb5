/* pb.h - protobuf wire format, table-driven.
 *
 * A message is a plain C struct described by a struct pb_msgdesc: one
 * struct pb_field per field (number, type, offset into the struct, ...).  One
 * generic decoder fills such a struct from bytes, one generic encoder writes it
 * back.  The tables for etcd's messages live in api.c.
 *
 * C representation of each field type:
 *   PB_BOOL               bool
 *   PB_INT32, PB_ENUM     int32_t
 *   PB_UINT32             uint32_t
 *   PB_INT64              int64_t
 *   PB_UINT64             uint64_t
 *   PB_BYTES (and string) struct pb_bytes  (decoded: points INTO the input buffer,
 *                                           which must outlive the message)
 *   PB_MSG                T *  (NULL = absent; decoded into the arena)
 * A repeated field (PB_REPEATED flag) is `T *items; size_t n;`: items at
 * `offset` (an array of the C type above, for PB_MSG an array of T structs, not
 * pointers) and the count at `count_offset`.  Packed and unpacked encodings are
 * both accepted for repeated scalars; the encoder writes them packed.
 * A scalar or bytes field with PB_ONEOF has a bool at `count_offset` that says
 * whether it is set; it is then encoded even when zero (as gogoproto does for
 * oneof members).  Plain proto3 scalars are encoded only when non-zero.
 *
 * Decoding never recurses deeper than PB_MAX_DEPTH, checks every length
 * against the input, skips unknown fields (wire types 0, 1, 2, 5) and
 * allocates only from the caller's arena.
 *
 * Tables: fields are listed in ascending field-number order (the encoder
 * writes them in table order, as protoc-generated code does) and a table has
 * at most PB_MAX_FIELDS entries.  A run of consecutive PB_ONEOF entries is one
 * oneof group.  PB_ONEOF may also mark a PB_MSG field; presence is then the
 * pointer (count_offset unused).
 *
 * Decoding follows the merge rules of proto3 as etcd's gogoproto code does:
 * a scalar or bytes field seen twice keeps the later value; a repeated field
 * accumulates across non-contiguous occurrences; a singular message field
 * seen twice is merged (its scalars: later wins, its repeated fields:
 * concatenated, recursively); decoding a oneof member clears the other
 * members of its group, and a oneof message member seen twice is replaced,
 * not merged (gogoproto allocates a fresh one).  int32/enum/uint32 values are
 * truncated to 32 bits as protobuf does, so a negative int32 is read from its
 * 10-byte varint.
 *
 * Encoding follows proto3: zero scalars and empty bytes are omitted unless
 * PB_ONEOF with has set; a NULL message pointer is omitted, a non-NULL one is
 * always written, even when empty (tag + length 0); repeated scalars are
 * packed; repeated bytes and message elements are written even when empty.
 *
 * proto2 (raftpb, walpb, snappb, etcdserverpb.InternalRaftRequest...): a
 * field marked PB_PROTO2 follows gogoproto's proto2 rules instead: a scalar
 * (non-nullable) is always written, even when zero; bytes are written iff
 * p != NULL (nil vs empty, as Go's []byte), even when empty; a message
 * (non-nullable) is always written, NULL as an empty message; repeated
 * scalars are written unpacked.
 */
#ifndef ETCD_PB_H
#define ETCD_PB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mem.h"

#define PB_MAX_DEPTH 32  /* nested messages, the outermost one included */
#define PB_MAX_FIELDS 64 /* entries per table; the decoder counts per field */

enum pb_type {
    PB_BOOL = 1,
    PB_INT32,
    PB_ENUM,
    PB_UINT32,
    PB_INT64,
    PB_UINT64,
    PB_BYTES,
    PB_MSG,
};

enum pb_flags {
    PB_REPEATED = 1,
    PB_ONEOF = 2,
    PB_PROTO2 = 4, /* see "proto2" above */
};

struct pb_bytes {
    const uint8_t *p;
    size_t len;
};

struct pb_msgdesc;

struct pb_field {
    uint32_t num;
    uint8_t type;   /* enum pb_type */
    uint8_t flags;  /* enum pb_flags */
    uint16_t offset;
    uint16_t count_offset; /* repeated: size_t count; oneof: bool has */
    const struct pb_msgdesc *sub; /* PB_MSG only */
};

struct pb_msgdesc {
    const char *name;  /* e.g. "etcdserverpb.RangeRequest", for diagnostics */
    size_t size;       /* sizeof the C struct */
    const struct pb_field *fields;
    size_t nfields;
};

enum pb_err {
    PB_OK = 0,
    PB_ERR_TRUNCATED = -1, /* input ends inside a field */
    PB_ERR_WIRETYPE = -2,  /* wire type does not match the field, or is invalid */
    PB_ERR_VARINT = -3,    /* varint longer than 10 bytes */
    PB_ERR_DEPTH = -4,     /* nesting deeper than PB_MAX_DEPTH */
    PB_ERR_NOMEM = -5,     /* arena exhausted */
    PB_ERR_FIELDNUM = -6,  /* field number 0 or > 2^29-1 */
};

/* Zero-fills *msg (d->size bytes) then decodes p[0..n) into it.
 * Returns PB_OK or a negative enum pb_err; on error *msg is partly filled and
 * must not be used. */
int pb_decode(const struct pb_msgdesc *d, const uint8_t *p, size_t n, void *msg,
              struct mem_arena *a) __attribute__((warn_unused_result));

/* Exact encoded size of msg. */
size_t pb_encoded_size(const struct pb_msgdesc *d, const void *msg);

/* Appends the encoding of msg to out.  0, or -1 on OOM (out may then hold a
 * partial encoding past its old length). */
int pb_encode(const struct pb_msgdesc *d, const void *msg, struct mem_buf *out)
    __attribute__((warn_unused_result));

/* Writes the encoding of msg to dst[0..size), where size must be
 * pb_encoded_size(d, msg) computed on the unchanged msg.  For callers that
 * need the length before the bytes (gRPC's 5-byte prefix) without paying
 * for the size pass twice.  Cannot fail. */
void pb_encode_to(const struct pb_msgdesc *d, const void *msg, uint8_t *dst, size_t size);

/* Low-level helpers for code that writes or walks protobuf by hand (WAL
 * records, hot paths).  pb_put_* append to out and return 0 or -1 on OOM. */
int pb_put_varint(struct mem_buf *out, uint64_t v) __attribute__((warn_unused_result));
int pb_put_tag(struct mem_buf *out, uint32_t num, unsigned wiretype)
    __attribute__((warn_unused_result));
size_t pb_varint_size(uint64_t v);
/* Reads a varint at p[0..n); returns bytes used, or 0 if truncated/overlong. */
size_t pb_get_varint(const uint8_t *p, size_t n, uint64_t *v);

#endif
