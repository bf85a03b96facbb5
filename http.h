/* http.h - HTTP/1.1 on the client port: /health, /version; anything else is
 * 404.  Pure: request bytes in, response bytes out, no syscalls.
 * server.c sniffs the h2 preface and hands everything else here. */
#ifndef ETCD_HTTP_H
#define ETCD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mem.h"

#define HTTP_MAX_HEADER 16384 /* request line + headers */

struct http_limits {
    size_t max_body; /* Content-Length above this -> 413 and close */
    /* GET /metrics appends its body here (NULL: 404); 0 or -1 */
    int (*metrics)(void *ctx, struct mem_buf *body);
    void *metrics_ctx;
};

/* Parses one request from p[0..n) and appends its response to out.
 * Returns bytes consumed (> 0), 0 if the request is incomplete (read more;
 * never more than HTTP_MAX_HEADER + max_body bytes are needed), or -1 on OOM.
 * *close is set when the connection must be closed after out is written
 * (bad request, "Connection: close", HTTP/1.0 without keep-alive). */
int http_feed(const struct http_limits *lim, const uint8_t *p, size_t n, struct mem_buf *out,
              bool *close) __attribute__((warn_unused_result));

#endif
