/* grpc.h - gRPC over HTTP/2, server side: routing by :path, the 5-byte
 * message framing, request decoding through pb.c, response headers, messages
 * and trailers (grpc-status, percent-encoded grpc-message), unary and
 * bidirectional streaming calls.
 *
 * A struct grpc_conn sits on one struct h2_conn: the owner feeds it every
 * h2 event and writes out what h2 produces.  Handlers never see HTTP/2.
 *
 * Call lifetime.  Unary: on_message(call, req) runs once; the handler must
 * end the call exactly once with grpc_call_reply or grpc_call_fail, now or
 * later (a call whose stream died meanwhile is still ended this way; the
 * reply is then dropped).  Streaming: on_message runs per request message,
 * grpc_call_send sends any number of responses, grpc_call_fail ends the call
 * (code 0 = OK); on_end(call, reset) reports that the client half-closed
 * (reset false: the call stays usable for sending until ended) or that the
 * stream or connection is gone (reset true: the call is freed right after
 * on_end returns, and must not be ended by the handler).
 */
#ifndef ETCD_GRPC_H
#define ETCD_GRPC_H

#include <stdbool.h>
#include <stddef.h>

#include "h2.h"
#include "mem.h"
#include "pb.h"

struct grpc_call;
struct grpc_conn;

struct grpc_method {
    const char *path;                  /* "/etcdserverpb.KV/Range" */
    const struct pb_msgdesc *req_desc; /* decoded into the call's arena */
    bool streaming;
    void (*on_message)(struct grpc_call *call, void *req);
    void (*on_end)(struct grpc_call *call, bool reset); /* streaming only */
};

struct grpc_limits {
    size_t max_recv_msg; /* larger messages -> RESOURCE_EXHAUSTED */
};

/* Called when the conn has produced output outside of grpc_conn_event (an
 * asynchronous reply), so the owner can schedule a write. */
typedef void (*grpc_wake_fn)(void *owner);

/* methods: a table ending with a zeroed entry; ctx is handed to handlers via
 * grpc_call_ctx.  NULL on OOM. */
struct grpc_conn *grpc_conn_new(struct h2_conn *h2, const struct grpc_method *methods,
                                const struct grpc_limits *lim, void *ctx, grpc_wake_fn wake,
                                void *owner);
/* Ends every call (streaming handlers get on_end(reset=true); pending unary
 * calls are detached and freed when their handler ends them).  Does not free
 * the h2 connection. */
void grpc_conn_free(struct grpc_conn *gc);

/* Handles one h2 event.  0, or -1 when the connection must be closed (OOM). */
int grpc_conn_event(struct grpc_conn *gc, const struct h2_event *ev)
    __attribute__((warn_unused_result));

/* Number of calls (unary pending or streaming) alive on the connection. */
size_t grpc_conn_calls(const struct grpc_conn *gc);

void *grpc_call_ctx(const struct grpc_call *call);
/* The call's arena: request and response memory, freed when the call ends
 * (streaming: reset after each on_message returns). */
struct mem_arena *grpc_call_arena(struct grpc_call *call);
/* Handler state for streaming calls. */
void grpc_call_set_data(struct grpc_call *call, void *data);
void *grpc_call_data(const struct grpc_call *call);
/* Value of request header (metadata) name, NUL-terminated, or NULL.  Only
 * "token" and "authorization" are kept. */
const char *grpc_call_metadata(const struct grpc_call *call, const char *name);
/* True when the client can no longer receive (stream reset, conn closed). */
bool grpc_call_dead(const struct grpc_call *call);
/* Bytes queued on the call's stream that flow control holds back. */
size_t grpc_call_queued(const struct grpc_call *call);
/* The same over all the streams of the call's connection. */
size_t grpc_call_conn_queued(const struct grpc_call *call);

/* Unary: sends msg and status OK, and ends the call. */
void grpc_call_reply(struct grpc_call *call, const struct pb_msgdesc *d, const void *msg);
/* Ends the call with a status (code 0 = OK) and message (may be NULL). */
void grpc_call_fail(struct grpc_call *call, int code, const char *msg);
/* Streaming: sends one message.  0, -1 on OOM or if the call is dead. */
int grpc_call_send(struct grpc_call *call, const struct pb_msgdesc *d, const void *msg)
    __attribute__((warn_unused_result));

/* Streaming: sends one message already encoded, the concatenation of
 * pc[0..n); blob pieces may go out by reference (see h2_piece).  0, -1 on
 * OOM or if the call is dead. */
int grpc_call_send_pieces(struct grpc_call *call, const struct h2_piece *pc, size_t n)
    __attribute__((warn_unused_result));

/* Percent-encodes s for grpc-message into out (NUL-terminated);
 * returns the length.  out must hold 3*strlen(s)+1 bytes. */
size_t grpc_percent_encode(const char *s, char *out);

#endif
