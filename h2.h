/* h2.h - HTTP/2 connection state machine (RFC 9113), server and client roles.
 *
 * Transport-agnostic and syscall-free: the caller feeds bytes read from the
 * socket and gets events back one at a time; it submits headers and data and
 * drains the bytes to write from h2_conn_output().  HPACK lives in hpack.c.
 *
 * Handled inside: the connection preface, SETTINGS (+ACK), PING (+ACK),
 * WINDOW_UPDATE and flow control in both directions (connection and stream
 * windows; queued DATA goes out as the peer opens its windows), PRIORITY
 * (parsed and ignored), padding, CONTINUATION, RST_STREAM, GOAWAY, stream
 * states and limits (max concurrent streams, max frame size, max header list
 * size).  A connection error queues GOAWAY with the right code and makes
 * h2_conn_feed return it; the caller flushes the output and closes.  A stream
 * error queues RST_STREAM and reports H2_EV_RESET for that stream.
 *
 * Receive flow control: a stream's and the connection's windows are credited
 * back (WINDOW_UPDATE) as DATA is delivered to the caller, so the caller must
 * bound what it buffers per stream itself (gRPC caps a message's size).
 */
#ifndef ETCD_H2_H
#define ETCD_H2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "mem.h"

/* RFC 9113 section 7 error codes */
enum h2_error {
    H2_NO_ERROR = 0x0,
    H2_PROTOCOL_ERROR = 0x1,
    H2_INTERNAL_ERROR = 0x2,
    H2_FLOW_CONTROL_ERROR = 0x3,
    H2_SETTINGS_TIMEOUT = 0x4,
    H2_STREAM_CLOSED = 0x5,
    H2_FRAME_SIZE_ERROR = 0x6,
    H2_REFUSED_STREAM = 0x7,
    H2_CANCEL = 0x8,
    H2_COMPRESSION_ERROR = 0x9,
    H2_CONNECT_ERROR = 0xa,
    H2_ENHANCE_YOUR_CALM = 0xb,
    H2_INADEQUATE_SECURITY = 0xc,
    H2_HTTP_1_1_REQUIRED = 0xd,
};

/* The 24-byte client connection preface. */
#define H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN 24

enum h2_role { H2_SERVER, H2_CLIENT };

struct h2_config {
    uint32_t max_concurrent_streams; /* we advertise and enforce; 0 -> 1000 */
    uint32_t initial_window_size;    /* our stream receive window; 0 -> 1 MiB */
    uint32_t conn_window_size;       /* our connection receive window; 0 -> 16 MiB */
    uint32_t max_frame_size;         /* largest frame we accept; 0 -> 16384 */
    uint32_t max_header_list_size;   /* decoded header bytes per block; 0 -> 64 KiB */
};

struct h2_header {
    const char *name; /* lowercase; not NUL-terminated */
    size_t name_len;
    const char *value;
    size_t value_len;
};

enum h2_event_type {
    H2_EV_NONE = 0,
    H2_EV_HEADERS, /* a complete header block: request or response headers, or trailers */
    H2_EV_DATA,    /* payload bytes of a DATA frame (padding removed); may be empty with end_stream */
    H2_EV_RESET,   /* the stream is gone: peer RST_STREAM, or we reset it (stream error) */
    H2_EV_GOAWAY,  /* the peer sent GOAWAY: no new streams; last_stream_id, error_code set */
};

/* Pointers inside an event stay valid until the next h2_conn_feed call; DATA
 * payloads and some header strings point into the bytes that were fed, so
 * those must not be moved or overwritten before the event is handled either.
 * The stream's h2_stream_data stays readable during an event that closes or
 * resets it.  After H2_EV_GOAWAY, streams this side opened above
 * last_stream_id will get no answer: the caller retries or resets them. */
struct h2_event {
    enum h2_event_type type;
    uint32_t stream_id;
    bool end_stream;                 /* HEADERS/DATA: the peer finished sending on this stream */
    const struct h2_header *headers; /* HEADERS */
    size_t n_headers;
    const uint8_t *data; /* DATA */
    size_t len;
    uint32_t error_code;     /* RESET, GOAWAY: enum h2_error */
    uint32_t last_stream_id; /* GOAWAY */
};

struct h2_conn;

/* NULL on OOM.  A server expects the client preface first; a client queues
 * its preface and SETTINGS in the output at once. */
struct h2_conn *h2_conn_new(enum h2_role role, const struct h2_config *cfg);
void h2_conn_free(struct h2_conn *c);

/* Feeds received bytes.  Processes at most one frame and reports at most one
 * event in *ev (type H2_EV_NONE if the frame produced none).  Returns:
 *   > 0  bytes consumed (the caller advances and calls again),
 *   0    p[0..n) holds no complete frame yet: read more, call again with the
 *        unconsumed bytes plus the new ones (never more than
 *        max_frame_size + 9 bytes are needed),
 *   < 0  -(enum h2_error) of a connection error: GOAWAY is queued; flush the
 *        output and close.  Every later call returns the same error. */
int h2_conn_feed(struct h2_conn *c, const uint8_t *p, size_t n, struct h2_event *ev);

/* Server: response headers (or trailers, with end_stream) on a peer stream.
 * Client: see h2_conn_request.  Headers are HPACK-encoded at once; if DATA is
 * still queued on the stream, the block waits behind it (only trailers may:
 * without end_stream that is -2).
 * 0, -1 on OOM (connection then unusable), -2 if the stream is not open. */
int h2_conn_submit_headers(struct h2_conn *c, uint32_t stream_id, const struct h2_header *h,
                           size_t n, bool end_stream) MEM_MUST_CHECK;

/* Queues DATA; it is framed and moved to the output as windows allow.
 * 0, -1 on OOM, -2 if the stream is not open for sending. */
int h2_conn_submit_data(struct h2_conn *c, uint32_t stream_id, const uint8_t *p, size_t n,
                        bool end_stream) MEM_MUST_CHECK;

/* Immutable bytes shared by many streams and connections (one watch
 * event's encoding sent to every watcher): DATA may reference them instead
 * of copying them, and the output holds a reference until they are
 * written.  Owned by its references; single-threaded. */
struct h2_blob {
    size_t b_refs;
    size_t b_len;
    uint8_t b_data[];
};

/* A copy of p[0..n) with one reference, the caller's.  NULL on OOM. */
struct h2_blob *h2_blob_new(const uint8_t *p, size_t n) MEM_MUST_CHECK;
/* Drops a reference; the last one frees it.  NULL is fine. */
void h2_blob_put(struct h2_blob *b);

/* Part of a DATA payload: len bytes at p, which lie inside blob when it is
 * set (they may then go out by reference: the blob must stay unchanged). */
struct h2_piece {
    const uint8_t *p;
    size_t len;
    struct h2_blob *blob;
};

/* h2_conn_submit_data of the concatenation of pc[0..npc).  Blob bytes the
 * windows let out at once are referenced from the output; what flow
 * control holds back is copied into the stream's queue.  Same returns. */
int h2_conn_submit_datav(struct h2_conn *c, uint32_t stream_id, const struct h2_piece *pc,
                         size_t npc, bool end_stream) MEM_MUST_CHECK;

/* Client: opens a new stream with request headers; returns its id (> 0),
 * -1 on OOM, -2 when no more streams may be opened (limit or GOAWAY). */
int64_t h2_conn_request(struct h2_conn *c, const struct h2_header *h, size_t n,
                        bool end_stream) MEM_MUST_CHECK;

/* Resets a stream (RST_STREAM with code) and forgets it; queued data dropped. */
void h2_conn_reset_stream(struct h2_conn *c, uint32_t stream_id, enum h2_error code);

/* Sends GOAWAY (last peer stream seen, code); new peer streams are refused. */
void h2_conn_goaway(struct h2_conn *c, enum h2_error code);

/* Sends a PING that the peer must acknowledge (client keepalive). */
void h2_conn_ping(struct h2_conn *c, uint64_t opaque);

/* Bytes ready to write, the first contiguous stretch of them (the output
 * is in several when it references blobs); *len = 0 when nothing is
 * pending.  The pointer stays valid until the next call into the
 * connection. */
const uint8_t *h2_conn_output(struct h2_conn *c, size_t *len);
/* The pending output as up to max iovecs, in order, for writev; returns
 * how many were filled (0: nothing pending).  Valid as h2_conn_output's. */
size_t h2_conn_outputv(struct h2_conn *c, struct iovec *iov, size_t max);
/* Bytes of output pending, in all. */
size_t h2_conn_unsent(const struct h2_conn *c);
/* The caller wrote the first n bytes of the pending output. */
void h2_conn_output_done(struct h2_conn *c, size_t n);

/* Bytes queued on a stream that flow control has not let out yet (for
 * backpressure: a slow reader's queue grows here). */
size_t h2_stream_queued(const struct h2_conn *c, uint32_t stream_id);
/* The same summed over the connection's streams. */
size_t h2_conn_queued(const struct h2_conn *c);

/* Number of streams currently open (not closed or reset). */
size_t h2_conn_open_streams(const struct h2_conn *c);

/* One opaque pointer per stream for the caller (e.g. its gRPC call); NULL if
 * unset or the stream is unknown.  Cleared when the stream closes. */
void h2_stream_set_data(struct h2_conn *c, uint32_t stream_id, void *data);
void *h2_stream_data(const struct h2_conn *c, uint32_t stream_id);

#endif
