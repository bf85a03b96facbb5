/* json.h - JSON encoding and decoding: member records in the backend and in
 * raft conf changes, the HTTP gateway and `etcdctl -w json`.
 *
 * Decoding builds a small tree in the caller's arena; input is hostile:
 * depth, length and number syntax are checked, strings are unescaped and
 * checked to be valid UTF-8 when asked (\u escapes, surrogate pairs).
 * Encoding appends to a mem_buf with Go's encoding/json escaping rules
 * (<, >, & and U+2028/U+2029 escaped), so our bytes match what etcd writes.
 */
#ifndef ETCD_JSON_H
#define ETCD_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mem.h"

#define JSON_MAX_DEPTH 64

enum json_type { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

struct json {
    enum json_type type;
    bool b;           /* JSON_BOOL */
    const char *s;    /* JSON_STRING: unescaped, NUL-terminated; JSON_NUMBER: its text */
    size_t len;       /* string length (may contain NUL bytes) / number text length */
    struct json *kids; /* JSON_ARRAY / JSON_OBJECT: elements (values) */
    const char **keys; /* JSON_OBJECT: keys[i] names kids[i] (NUL-terminated) */
    size_t *key_lens;
    size_t n;
};

/* Parses p[0..n) (one value, surrounding whitespace allowed) into *out,
 * allocating from a.  Returns 0, or -1 with a message in err (cap bytes)
 * saying what and where, e.g. "invalid character 'x' at offset 12". */
int json_parse(const char *p, size_t n, struct mem_arena *a, struct json *out, char *err,
               size_t cap) __attribute__((warn_unused_result));

/* Object member by key, or NULL (also when o is not an object). */
const struct json *json_get(const struct json *o, const char *key);
/* The number as an unsigned/signed 64-bit integer: 0 on success, -1 if it
 * is not an integer in range (or not a number). */
int json_u64(const struct json *v, uint64_t *out) __attribute__((warn_unused_result));
int json_i64(const struct json *v, int64_t *out) __attribute__((warn_unused_result));

/* Writes code point cp as UTF-8 (1 to 4 bytes) at o; returns how many. */
size_t json_put_utf8(char *o, uint32_t cp);

/* ---- encoding: each returns 0, or -1 on OOM ---- */

/* A quoted, escaped string as Go's encoding/json writes it. */
int json_put_str(struct mem_buf *b, const char *s, size_t len) __attribute__((warn_unused_result));
/* Base64 (standard, padded) in quotes: how Go encodes []byte. */
int json_put_b64(struct mem_buf *b, const uint8_t *p, size_t len)
    __attribute__((warn_unused_result));

#endif
