/* http.c - HTTP/1.1 requests on the client port (http.h): the request line
 * and header parser and the plain endpoints (/health, /version).  It owns no
 * connection state; server.c owns sockets and buffers. */
#include "http.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "version.h"

struct http_req {
    const char *method;
    size_t method_len;
    const char *path;
    size_t path_len;
    int minor; /* HTTP/1.x */
    bool conn_close, conn_keepalive, chunked;
    size_t content_length;
};

static const char *find_crlfcrlf(const uint8_t *p, size_t n)
{
    for (size_t i = 3; i < n; i++)
        if (p[i] == '\n' && p[i - 1] == '\r' && p[i - 2] == '\n' && p[i - 3] == '\r')
            return (const char *)p + i + 1;
    return NULL;
}

static bool token_eq(const char *a, size_t al, const char *b)
{
    return al == strlen(b) && !strncasecmp(a, b, al);
}

/* Parses the request line and the headers we act on; 0 or -1 if malformed. */
static int parse_head(const char *p, const char *end, struct http_req *r)
{
    const char *sp1 = memchr(p, ' ', (size_t)(end - p));
    if (!sp1 || sp1 == p)
        return -1;
    const char *sp2 = memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1));
    if (!sp2 || sp2 == sp1 + 1)
        return -1;
    const char *eol = memchr(sp2, '\r', (size_t)(end - sp2));
    if (!eol || eol - sp2 != 9 || memcmp(sp2 + 1, "HTTP/1.", 7) || !isdigit((unsigned char)sp2[8]))
        return -1;
    r->method = p;
    r->method_len = (size_t)(sp1 - p);
    r->path = sp1 + 1;
    r->path_len = (size_t)(sp2 - sp1 - 1);
    r->minor = sp2[8] - '0';
    const char *line = eol + 2;
    while (line < end) {
        const char *le = memchr(line, '\r', (size_t)(end - line));
        if (!le || le + 1 >= end || le[1] != '\n')
            return -1;
        if (le == line)
            break; /* blank line */
        const char *colon = memchr(line, ':', (size_t)(le - line));
        if (!colon || colon == line)
            return -1;
        const char *v = colon + 1;
        while (v < le && (*v == ' ' || *v == '\t'))
            v++;
        const char *ve = le;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        size_t nl = (size_t)(colon - line), vl = (size_t)(ve - v);
        if (token_eq(line, nl, "content-length")) {
            size_t cl = 0;
            if (vl == 0 || vl > 12)
                return -1;
            for (size_t i = 0; i < vl; i++) {
                if (!isdigit((unsigned char)v[i]))
                    return -1;
                cl = cl * 10 + (size_t)(v[i] - '0');
            }
            r->content_length = cl;
        } else if (token_eq(line, nl, "connection")) {
            if (token_eq(v, vl, "close"))
                r->conn_close = true;
            else if (token_eq(v, vl, "keep-alive"))
                r->conn_keepalive = true;
        } else if (token_eq(line, nl, "transfer-encoding")) {
            r->chunked = true;
        }
        line = le + 2;
    }
    return 0;
}

/* Header order as Go's net/http writes them: handler headers sorted, then
 * Date and Content-Length, then a sniffed Content-Type if the handler set
 * none (sniffed = true). */
static int respond(struct mem_buf *out, int status, const char *reason, const char *ctype,
                   bool sniffed, const char *body, bool close)
{
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    bool nosniff = status == 404;
    return mem_buf_printf(out,
                          "HTTP/1.1 %d %s\r\n"
                          "Access-Control-Allow-Headers: accept, content-type, authorization\r\n"
                          "Access-Control-Allow-Methods: POST, GET, OPTIONS, PUT, DELETE\r\n"
                          "Access-Control-Allow-Origin: *\r\n"
                          "%s%s%s%s"
                          "Date: %s\r\n"
                          "Content-Length: %zu\r\n"
                          "%s%s%s"
                          "%s\r\n%s",
                          status, reason, sniffed ? "" : "Content-Type: ", sniffed ? "" : ctype,
                          sniffed ? "" : "\r\n", nosniff ? "X-Content-Type-Options: nosniff\r\n" : "",
                          date, strlen(body), sniffed ? "Content-Type: " : "", sniffed ? ctype : "",
                          sniffed ? "\r\n" : "", close ? "Connection: close\r\n" : "", body);
}

#define TEXT "text/plain; charset=utf-8"

/* Prometheus' text exposition, as etcd's handler serves it. */
static int respond_metrics(const struct http_limits *lim, struct mem_buf *out, bool close)
{
    struct mem_buf body = {0};
    int rc = lim->metrics(lim->metrics_ctx, &body) < 0 || mem_buf_putc(&body, 0) < 0
                 ? -1
                 : respond(out, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", false,
                           (const char *)body.data, close);
    mem_buf_free(&body);
    return rc;
}

int http_feed(const struct http_limits *lim, const uint8_t *p, size_t n, struct mem_buf *out,
              bool *close)
{
    const char *hend = find_crlfcrlf(p, n < HTTP_MAX_HEADER ? n : HTTP_MAX_HEADER);
    if (!hend) {
        if (n >= HTTP_MAX_HEADER) {
            *close = true;
            return respond(out, 431, "Request Header Fields Too Large", TEXT, false,
                           "431 Request Header Fields Too Large", true) < 0
                       ? -1
                       : (int)n;
        }
        return 0;
    }
    struct http_req r = {0};
    size_t head = (size_t)(hend - (const char *)p);
    if (parse_head((const char *)p, hend, &r) < 0) {
        *close = true;
        return respond(out, 400, "Bad Request", TEXT, false, "400 Bad Request", true) < 0 ? -1 : (int)n;
    }
    if (r.chunked) {
        *close = true;
        return respond(out, 501, "Not Implemented", TEXT, false, "chunked request bodies are not supported",
                       true) < 0
                   ? -1
                   : (int)n;
    }
    if (r.content_length > lim->max_body) {
        *close = true;
        return respond(out, 413, "Request Entity Too Large", TEXT, false, "413 Request Entity Too Large",
                       true) < 0
                   ? -1
                   : (int)n;
    }
    if (n - head < r.content_length)
        return 0;
    bool cl = r.conn_close || (r.minor == 0 && !r.conn_keepalive);
    *close = cl;
    int rc;
    if (token_eq(r.path, r.path_len, "/health"))
        rc = respond(out, 200, "OK", TEXT, true, "{\"health\":\"true\"}", cl);
    else if (token_eq(r.path, r.path_len, "/metrics") && lim->metrics)
        rc = respond_metrics(lim, out, cl);
    else if (token_eq(r.path, r.path_len, "/version"))
        rc = respond(out, 200, "OK", "application/json", false,
                     "{\"etcdserver\":\"" ETCD_SERVER_VERSION "\",\"etcdcluster\":\"" ETCD_CLUSTER_VERSION
                     "\"}",
                     cl);
    else
        rc = respond(out, 404, "Not Found", TEXT, false, "404 page not found\n", cl);
    return rc < 0 ? -1 : (int)(head + r.content_length);
}
