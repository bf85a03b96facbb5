/* client.h - a blocking gRPC client for etcdctl: one HTTP/2 connection to
 * the first reachable endpoint, plain TCP or TLS, unary and bidirectional
 * streaming calls with deadlines, and the auth token.
 *
 * Blocking and single-threaded on purpose: etcdctl runs one command and
 * exits.  All waiting is poll() with a deadline; a streaming caller may pass
 * an extra fd (stdin) to be woken when it becomes readable.
 *
 * Connecting is lazy and happens inside the first call, within that call's
 * deadline, as grpc-go's non-blocking dial does: every endpoint is tried in
 * order (each attempt bounded by the dial timeout); when all fail the round
 * is repeated after a short backoff until the deadline, which then reports
 * "context deadline exceeded".
 *
 * Times are milliseconds of CLOCK_MONOTONIC (client_now_ms); a deadline of 0
 * means none.
 */
#ifndef ETCD_CLIENT_H
#define ETCD_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mem.h"
#include "pb.h"

struct client_opts {
    char **endpoints; /* "host:port", "http://host:port", "https://host:port", "unix://path" */
    size_t n_endpoints;
    int64_t dial_timeout_ms;   /* one connection attempt; 0 = bounded by the deadline only */
    /* keepalive while a call is open: PING after this long without hearing
     * from the server, give the connection up when the PING goes unanswered
     * for keepalive_timeout_ms; 0 = never */
    int64_t keepalive_time_ms, keepalive_timeout_ms;
    /* TLS: used for https:// endpoints, and for endpoints without a scheme
     * when use_tls is set (etcdctl: a TLS flag was given, or
     * --insecure-transport=false) */
    bool use_tls;
    bool insecure_skip_verify;
    const char *cacert, *cert, *key; /* NULL = not given */
    const char *server_name;         /* NULL: the endpoint's host */
    /* auth: both set = Authenticate before the first call */
    const char *user, *password;
    const char *target; /* the caller's name for this client in diagnostics */
};

/* The outcome of a failed call, as clientv3 reports it. */
enum client_code {
    CLIENT_DEADLINE = -1, /* our deadline passed: "context deadline exceeded" */
    CLIENT_CONN = -2,     /* transport failure after connecting; msg says what */
    /* >= 0: a gRPC status code from the server (grpc/codes) */
};

struct client_err {
    int code;      /* enum client_code or a gRPC status code (never 0 on failure) */
    char msg[512]; /* grpc-message (percent-decoded) or our description; for
                    * CLIENT_DEADLINE before any connection, the last dial
                    * error ("dial tcp 127.0.0.1:1: connect: connection refused") */
};

struct client;
struct client_stream;

/* No I/O yet; o (and the strings it points to) must outlive the client.
 * The TLS files are loaded now when any endpoint will use TLS.  NULL on
 * OOM or when they cannot be loaded, with the reason in err. */
struct client *client_new(const struct client_opts *o, char *err, size_t errlen);
/* Closes the connection (GOAWAY is not sent: we just go). */
void client_free(struct client *c);

int64_t client_now_ms(void);

/* Connects now if not connected.  0, or -1 with err filled (deadline, TLS
 * failure, auth failure).  Calls connect by themselves; this is for
 * commands that want the connection error before doing anything else. */
int client_connect(struct client *c, int64_t deadline, struct client_err *err)
    MEM_MUST_CHECK;

/* The endpoint we are connected to (as given), or NULL. */
const char *client_endpoint(const struct client *c);
/* The options the client was made with. */
const struct client_opts *client_opts(const struct client *c);

/* One unary call: encodes req, waits for the response and the status,
 * decodes the response into *resp with memory (and the bytes it points
 * into) from a.  0 on status OK, -1 with err filled otherwise. */
int client_unary(struct client *c, const char *path, const struct pb_msgdesc *req_desc,
                 const void *req, const struct pb_msgdesc *resp_desc, void *resp,
                 struct mem_arena *a, int64_t deadline, struct client_err *err) MEM_MUST_CHECK;

/* ---- streaming calls ---- */

/* Opens a streaming call, connecting within deadline (the call itself has
 * none: it lives until closed).  md: extra request metadata as name, value
 * pairs ending with NULL (e.g. "hasleader", "true"), or NULL.  NULL with
 * err filled on failure. */
struct client_stream *client_stream_open(struct client *c, const char *path,
                                         const char *const *md, int64_t deadline,
                                         struct client_err *err);
/* Sends one message.  0, or -1 with err filled. */
int client_stream_send(struct client_stream *s, const struct pb_msgdesc *d, const void *msg,
                       struct client_err *err) MEM_MUST_CHECK;
/* Half-closes our side (END_STREAM). */
void client_stream_close_send(struct client_stream *s);

enum client_recv {
    CLIENT_RECV_MSG = 1,     /* *msg decoded (memory from a) */
    CLIENT_RECV_WAKE = 2,    /* wake_fd became readable; nothing consumed */
    CLIENT_RECV_TIMEOUT = 3, /* deadline passed; the stream is still usable */
    CLIENT_RECV_END = 0,     /* the server ended the stream with status OK */
    CLIENT_RECV_ERR = -1,    /* ended with an error status or transport failure: err */
};

/* Waits for the next message on s until deadline (0 = forever), also waking
 * when wake_fd (>= 0) is readable. */
enum client_recv client_stream_recv(struct client_stream *s, const struct pb_msgdesc *d,
                                    void *msg, struct mem_arena *a, int64_t deadline,
                                    int wake_fd, struct client_err *err);
/* Resets the stream (CANCEL) and frees it. */
void client_stream_free(struct client_stream *s);

/* "rpc error: code = NotFound desc = ..." as grpc-go formats a status. */
const char *client_code_name(int code);

#endif
