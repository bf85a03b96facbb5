/* h2.c - the HTTP/2 connection state machine (RFC 9113), server and client
 * roles (see h2.h): framing, SETTINGS, PING, GOAWAY, RST_STREAM, flow control
 * both ways, CONTINUATION, stream states and limits, and the checks on
 * request and response headers that RFC 9113 section 8 makes the transport's
 * job.
 *
 * Not here: HPACK (hpack.c), sockets and TLS (the caller moves the bytes),
 * gRPC and what headers mean beyond being well-formed (grpc.c), priorities
 * (parsed and ignored, as RFC 9113 allows), server push (never sent, refused
 * when received).
 *
 * Memory: a stream is a small struct from a free list, found through a
 * chained hash table keyed by stream id; it is freed as soon as both
 * sides have ended it or it is reset.  Of closed streams only the highest
 * peer stream id and a short ring of ids we reset are remembered, enough to
 * answer late frames correctly.  Received header blocks decode into a
 * per-connection arena reset on every h2_conn_feed call; DATA payloads are
 * handed out in place.  Frames are written straight into one output buffer
 * that is consumed by moving an offset, not by memmove.  DATA bytes that
 * live in a shared blob (h2_piece) are not copied there: the output is then
 * a list of segments, runs of the buffer between references to blobs, and
 * the caller writes it with one writev (h2_conn_outputv).  A stream held
 * back by flow control copies what it cannot send yet into its own queue,
 * so blobs are only ever referenced from the output.
 */
#include "h2.h"

#include <string.h>

#include "hpack.h"

/* ---- protocol constants ---- */

enum {
    H2_FT_DATA = 0x0,
    H2_FT_HEADERS = 0x1,
    H2_FT_PRIORITY = 0x2,
    H2_FT_RST_STREAM = 0x3,
    H2_FT_SETTINGS = 0x4,
    H2_FT_PUSH_PROMISE = 0x5,
    H2_FT_PING = 0x6,
    H2_FT_GOAWAY = 0x7,
    H2_FT_WINDOW_UPDATE = 0x8,
    H2_FT_CONTINUATION = 0x9,
};

enum {
    H2_FL_END_STREAM = 0x1,
    H2_FL_ACK = 0x1,
    H2_FL_END_HEADERS = 0x4,
    H2_FL_PADDED = 0x8,
    H2_FL_PRIORITY = 0x20,
};

enum {
    H2_SET_HEADER_TABLE_SIZE = 0x1,
    H2_SET_ENABLE_PUSH = 0x2,
    H2_SET_MAX_CONCURRENT_STREAMS = 0x3,
    H2_SET_INITIAL_WINDOW_SIZE = 0x4,
    H2_SET_MAX_FRAME_SIZE = 0x5,
    H2_SET_MAX_HEADER_LIST_SIZE = 0x6,
};

#define H2_FRAME_HDR 9
#define H2_WINDOW_MAX 0x7fffffff
#define H2_DEFAULT_WINDOW 65535
#define H2_MIN_FRAME 16384
#define H2_MAX_FRAME 0xffffff
#define H2_STREAM_ID_MAX 0x7fffffffu
/* Ids of streams we reset that are remembered, so that frames the peer sent
 * before it saw the reset are dropped quietly. */
#define H2_RESET_RING 32
/* Stream structs kept for reuse. */
#define H2_FREE_STREAMS 64
/* Frames we queue in answer to the peer (PING and SETTINGS acks, resets)
 * while the caller has not drained the output: past this the peer is
 * flooding us faster than it reads. */
#define H2_MAX_QUEUED_CONTROL 10000
/* An output buffer this large is released once drained, unless it was a
 * quarter full or more: a connection that keeps sending that much reuses
 * its buffer instead of paging a fresh one in every time. */
#define H2_OUT_KEEP (256 * 1024)
/* A drained stream queue keeps its buffer up to this size. */
#define H2_QUEUE_KEEP (16 * 1024)
/* Blob bytes shorter than this are copied: a reference costs an iovec. */
#define H2_REF_MIN 128
/* DATA stays in its stream's queue while this much output is unsent: a peer
 * that opens huge windows but does not read cannot make the connection's
 * output buffer grow without bound (the stream queues are what callers
 * watch for backpressure, h2_stream_queued). */
#define H2_OUT_CAP (1024 * 1024)

/* ---- types ---- */

struct h2_stream {
    uint32_t id;
    bool got_headers;   /* final (non-1xx) headers received: more HEADERS are trailers */
    bool remote_closed; /* the peer sent END_STREAM */
    bool local_end;     /* END_STREAM submitted, maybe still queued */
    bool local_closed;  /* END_STREAM written to the output */
    bool closed;        /* reset or both sides closed; kept until the next feed */
    bool pending;       /* on the connection's send queue */
    bool trailers;      /* st_block waits behind the queued data */
    int64_t send_window;
    int64_t recv_window;     /* what the peer may still send */
    uint32_t recv_unacked;   /* delivered bytes not yet credited back */
    int64_t content_length;  /* request body bytes still expected; -1 = unknown */
    struct mem_buf st_queue; /* owned: DATA not yet sent, from st_queue_off */
    size_t st_queue_off;
    struct mem_buf st_block; /* owned: the waiting (static-only) trailers block */
    struct h2_stream *pend_prev, *pend_next;
    struct h2_stream *hash_next;
    struct h2_stream *free_next;
    void *data; /* the caller's */
};

struct h2_conn {
    enum h2_role role;
    uint32_t failed; /* sticky connection error code; 0 = none */
    size_t queued;   /* bytes in all streams' st_queue, not yet sent */
    bool preface_done;
    bool got_settings;     /* the peer's first frame (its SETTINGS) arrived */
    bool settings_unacked; /* our SETTINGS awaits its ACK */
    bool goaway_sent;
    bool goaway_received;
    struct h2_config cfg; /* defaults filled in */

    uint32_t local_initial; /* the stream window the peer believes we give */
    uint32_t peer_initial;
    uint32_t peer_max_frame;
    uint32_t peer_max_streams;
    int64_t conn_send_window;
    int64_t conn_recv_window;
    uint32_t conn_recv_unacked;

    uint32_t last_peer_id;  /* highest stream id the peer opened */
    uint32_t gap_lo, gap_hi; /* the latest ids the peer skipped (never opened) */
    uint32_t next_local_id; /* next stream id we open */
    uint32_t n_peer_streams, n_local_streams;

    struct h2_stream **buckets; /* owned; chained through hash_next */
    size_t n_buckets, n_streams; /* n_streams: in the table, zombie included */
    struct h2_stream *free_streams; /* owned list */
    size_t n_free;
    struct h2_stream *pend_head, *pend_tail;
    struct h2_stream *zombie; /* closed by the last event; freed at the next feed */
    uint32_t reset_ring[H2_RESET_RING];
    unsigned reset_next;

    uint32_t cont_stream; /* header block in progress on this stream; 0 = none */
    bool cont_end_stream;
    bool cont_self_dep;
    size_t block_cap;      /* largest header block we buffer across CONTINUATION */
    struct mem_buf hdr_buf; /* owned: the block in progress */

    struct hpack_decoder dec;
    struct hpack_encoder enc;
    struct mem_arena arena;  /* decoded headers of the current event */
    struct mem_buf scratch;  /* owned: header blocks being framed */
    struct mem_buf out;      /* owned: bytes to write, from out_off */
    size_t out_off;
    /* The output in order: segments from seg_head, then the bytes of out
     * that no segment covers.  A run segment stands for its length of out's
     * bytes (the next ones from out_off); a blob segment for bytes of a
     * blob.  Without blobs there are no segments at all. */
    struct h2_seg *segs; /* owned; each blob segment holds a reference */
    size_t seg_head, n_segs, cap_segs;
    size_t out_mark; /* out's bytes before max(out_mark, out_off) are covered */
    size_t ref_bytes; /* unsent bytes in blob segments */
    uint32_t control_queued;
};

/* A stretch of the output: blob NULL for a run of out's bytes, else bytes
 * of the blob. */
struct h2_seg {
    struct h2_blob *blob;
    const uint8_t *p;
    size_t len;
};

enum h2_block_kind { H2_BLOCK_REQUEST, H2_BLOCK_RESPONSE, H2_BLOCK_TRAILERS };

/* h2_fail and h2_oom always return the connection error; the rest return 0
 * or a negative connection error unless said otherwise. */
static int h2_fail(struct h2_conn *c, uint32_t code);
static int h2_oom(struct h2_conn *c);
static int h2_write_rst(struct h2_conn *c, uint32_t id, uint32_t code);
static int h2_write_u32_frame(struct h2_conn *c, uint8_t type, uint32_t id,
                              uint32_t v) MEM_MUST_CHECK;
static int h2_count_control(struct h2_conn *c) MEM_MUST_CHECK;
static int h2_write_block(struct h2_conn *c, uint32_t id, const uint8_t *b, size_t n,
                          bool end_stream) MEM_MUST_CHECK;
static int h2_send_headers(struct h2_conn *c, uint32_t id, const struct h2_header *h, size_t n,
                           bool end_stream) MEM_MUST_CHECK;
static int h2_table_insert(struct h2_conn *c, struct h2_stream *s) MEM_MUST_CHECK;
static void h2_stream_close(struct h2_conn *c, struct h2_stream *s, bool deferred);
static long h2_frame_data(struct h2_conn *c, struct h2_stream *s, const struct h2_piece *pc,
                          size_t n, bool end) MEM_MUST_CHECK;
static int h2_flush_stream(struct h2_conn *c, struct h2_stream *s) MEM_MUST_CHECK;
static int h2_flush_pending(struct h2_conn *c) MEM_MUST_CHECK;
static int h2_credit_conn(struct h2_conn *c, uint32_t n) MEM_MUST_CHECK;
static int h2_credit_stream(struct h2_conn *c, struct h2_stream *s, uint32_t n) MEM_MUST_CHECK;
static int h2_check_headers(const struct h2_header *h, size_t n, enum h2_block_kind kind,
                            int64_t *content_length) MEM_MUST_CHECK;
static int h2_stream_error(struct h2_conn *c, uint32_t id, struct h2_stream *s, uint32_t code,
                           struct h2_event *ev) MEM_MUST_CHECK;
static int h2_on_block(struct h2_conn *c, uint32_t id, const uint8_t *b, size_t n, bool end,
                       bool self_dep, struct h2_event *ev) MEM_MUST_CHECK;
static int h2_apply_setting(struct h2_conn *c, uint16_t key, uint32_t v) MEM_MUST_CHECK;

/* ---- byte helpers ---- */

static uint32_t h2_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void h2_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* ---- output ---- */

/* Room for n more bytes at out.data + out.len, or NULL on OOM.  The consumed
 * prefix is reclaimed only when the buffer would otherwise have to grow. */
static uint8_t *h2_out_space(struct h2_conn *c, size_t n)
{
    struct mem_buf *o = &c->out;
    if (c->out_off && n > o->cap - o->len) {
        memmove(o->data, o->data + c->out_off, o->len - c->out_off);
        o->len -= c->out_off;
        c->out_mark = c->out_mark > c->out_off ? c->out_mark - c->out_off : 0;
        c->out_off = 0;
    }
    if (mem_buf_reserve(o, n) < 0)
        return NULL;
    return o->data + o->len;
}

/* 0 or -1 on OOM. */
static int h2_seg_push(struct h2_conn *c, struct h2_blob *b, const uint8_t *p, size_t len)
{
    if (c->n_segs == c->cap_segs) {
        if (c->seg_head) {
            c->n_segs -= c->seg_head;
            memmove(c->segs, c->segs + c->seg_head, c->n_segs * sizeof *c->segs);
            c->seg_head = 0;
        } else {
            size_t cap = c->cap_segs ? c->cap_segs * 2 : 64;
            struct h2_seg *g = cap <= SIZE_MAX / sizeof *g ? mem_realloc(c->segs, cap * sizeof *g)
                                                           : NULL;
            if (!g)
                return -1;
            c->segs = g;
            c->cap_segs = cap;
        }
    }
    c->segs[c->n_segs++] = (struct h2_seg){b, p, len};
    return 0;
}

/* Appends len bytes of blob b at p to the output by reference.  0 or -1
 * on OOM. */
static int h2_out_ref(struct h2_conn *c, struct h2_blob *b, const uint8_t *p, size_t len)
{
    size_t from = c->out_mark > c->out_off ? c->out_mark : c->out_off;
    if (c->out.len > from) {
        if (h2_seg_push(c, NULL, NULL, c->out.len - from) < 0)
            return -1;
        c->out_mark = c->out.len;
    }
    if (h2_seg_push(c, b, p, len) < 0)
        return -1;
    b->b_refs++;
    c->ref_bytes += len;
    return 0;
}

size_t h2_conn_unsent(const struct h2_conn *c)
{
    return c->out.len - c->out_off + c->ref_bytes;
}

/* Appends a frame header announcing payload bytes and reserves the first
 * room of them (the caller appends the rest); returns where the payload
 * goes, or NULL on OOM. */
static uint8_t *h2_frame_room(struct h2_conn *c, uint8_t type, uint8_t flags, uint32_t id,
                              size_t payload, size_t room)
{
    uint8_t *p = h2_out_space(c, H2_FRAME_HDR + room);
    if (!p)
        return NULL;
    p[0] = (uint8_t)(payload >> 16);
    p[1] = (uint8_t)(payload >> 8);
    p[2] = (uint8_t)payload;
    p[3] = type;
    p[4] = flags;
    h2_put32(p + 5, id);
    c->out.len += H2_FRAME_HDR + room;
    return p + H2_FRAME_HDR;
}

/* Appends a frame header and reserves payload bytes; returns where the
 * payload goes, or NULL on OOM. */
static uint8_t *h2_frame(struct h2_conn *c, uint8_t type, uint8_t flags, uint32_t id,
                         size_t payload)
{
    return h2_frame_room(c, type, flags, id, payload, payload);
}

static int h2_write_u32_frame(struct h2_conn *c, uint8_t type, uint32_t id, uint32_t v)
{
    uint8_t *p = h2_frame(c, type, 0, id, 4);
    if (!p)
        return h2_oom(c);
    h2_put32(p, v);
    return 0;
}

/* Counts a frame sent in answer to the peer; a connection error when the
 * peer makes us queue too many without reading them. */
static int h2_count_control(struct h2_conn *c)
{
    if (++c->control_queued > H2_MAX_QUEUED_CONTROL)
        return h2_fail(c, H2_ENHANCE_YOUR_CALM);
    return 0;
}

static bool h2_write_goaway(struct h2_conn *c, uint32_t code)
{
    uint8_t *p = h2_frame(c, H2_FT_GOAWAY, 0, 0, 8);
    if (!p)
        return false;
    h2_put32(p, c->last_peer_id);
    h2_put32(p + 4, code);
    c->goaway_sent = true;
    return true;
}

/* Connection error: GOAWAY is queued once (if memory allows: the caller
 * closes anyway) and every later feed fails. */
static int h2_fail(struct h2_conn *c, uint32_t code)
{
    if (!c->failed) {
        c->failed = code;
        (void)h2_write_goaway(c, code);
    }
    return -(int)c->failed;
}

/* Out of memory: a partial frame may sit in the output, so the connection
 * cannot go on. */
static int h2_oom(struct h2_conn *c)
{
    return h2_fail(c, H2_INTERNAL_ERROR);
}

static int h2_write_rst(struct h2_conn *c, uint32_t id, uint32_t code)
{
    int r = h2_write_u32_frame(c, H2_FT_RST_STREAM, id, code);
    if (r < 0)
        return r;
    c->reset_ring[c->reset_next++ % H2_RESET_RING] = id;
    return 0;
}

static bool h2_recently_reset(const struct h2_conn *c, uint32_t id)
{
    for (unsigned k = 0; k < H2_RESET_RING; k++)
        if (c->reset_ring[k] == id)
            return true;
    return false;
}

/* Frames a complete header block: HEADERS, then CONTINUATION frames when it
 * is larger than the peer's frame size. */
static int h2_write_block(struct h2_conn *c, uint32_t id, const uint8_t *b, size_t n,
                          bool end_stream)
{
    uint8_t type = H2_FT_HEADERS;
    uint8_t flags = end_stream ? H2_FL_END_STREAM : 0;
    do {
        size_t chunk = n < c->peer_max_frame ? n : c->peer_max_frame;
        uint8_t f = (uint8_t)(flags | (chunk == n ? H2_FL_END_HEADERS : 0));
        uint8_t *p = h2_frame(c, type, f, id, chunk);
        if (!p)
            return h2_oom(c);
        if (chunk)
            memcpy(p, b, chunk);
        b += chunk;
        n -= chunk;
        type = H2_FT_CONTINUATION;
        flags = 0;
    } while (n);
    return 0;
}

/* Encodes and frames a header block that goes out now. */
static int h2_send_headers(struct h2_conn *c, uint32_t id, const struct h2_header *h, size_t n,
                           bool end_stream)
{
    c->scratch.len = 0;
    if (hpack_encode(&c->enc, h, n, 0, &c->scratch) < 0)
        return h2_oom(c);
    return h2_write_block(c, id, c->scratch.data, c->scratch.len, end_stream);
}

/* ---- stream table ---- */

static size_t h2_bucket(const struct h2_conn *c, uint32_t id)
{
    /* ids of one side go up by two: id / 2 spreads them without collisions */
    return (id >> 1) & (c->n_buckets - 1);
}

static struct h2_stream *h2_find(const struct h2_conn *c, uint32_t id)
{
    if (!c->n_streams)
        return NULL;
    struct h2_stream *s = c->buckets[h2_bucket(c, id)];
    while (s && s->id != id)
        s = s->hash_next;
    return s;
}

static int h2_table_insert(struct h2_conn *c, struct h2_stream *s)
{
    if (c->n_streams >= c->n_buckets) {
        size_t n = c->n_buckets ? c->n_buckets * 2 : 16;
        struct h2_stream **b = mem_calloc(n, sizeof *b);
        if (!b)
            return -1;
        struct h2_stream **old = c->buckets;
        size_t old_n = c->n_buckets;
        c->buckets = b;
        c->n_buckets = n;
        for (size_t k = 0; k < old_n; k++) {
            while (old[k]) {
                struct h2_stream *t = old[k];
                old[k] = t->hash_next;
                t->hash_next = b[h2_bucket(c, t->id)];
                b[h2_bucket(c, t->id)] = t;
            }
        }
        mem_free(old);
    }
    struct h2_stream **head = &c->buckets[h2_bucket(c, s->id)];
    s->hash_next = *head;
    *head = s;
    c->n_streams++;
    return 0;
}

static void h2_table_remove(struct h2_conn *c, const struct h2_stream *s)
{
    struct h2_stream **pp = &c->buckets[h2_bucket(c, s->id)];
    while (*pp != s)
        pp = &(*pp)->hash_next;
    *pp = s->hash_next;
    c->n_streams--;
}

static struct h2_stream *h2_stream_new(struct h2_conn *c, uint32_t id)
{
    struct h2_stream *s = c->free_streams;
    if (s) {
        c->free_streams = s->free_next;
        c->n_free--;
    } else if (!(s = mem_alloc(sizeof *s))) {
        return NULL;
    }
    memset(s, 0, sizeof *s);
    s->id = id;
    s->send_window = c->peer_initial;
    s->recv_window = c->local_initial;
    s->content_length = -1;
    if (h2_table_insert(c, s) < 0) {
        mem_free(s);
        return NULL;
    }
    return s;
}

static void h2_stream_destroy(struct h2_conn *c, struct h2_stream *s)
{
    h2_table_remove(c, s);
    c->queued -= s->st_queue.len - s->st_queue_off;
    mem_buf_free(&s->st_queue);
    mem_buf_free(&s->st_block);
    if (c->n_free < H2_FREE_STREAMS) {
        s->free_next = c->free_streams;
        c->free_streams = s;
        c->n_free++;
    } else {
        mem_free(s);
    }
}

static void h2_pending_add(struct h2_conn *c, struct h2_stream *s)
{
    if (s->pending)
        return;
    s->pending = true;
    s->pend_next = NULL;
    s->pend_prev = c->pend_tail;
    if (c->pend_tail)
        c->pend_tail->pend_next = s;
    else
        c->pend_head = s;
    c->pend_tail = s;
}

static void h2_pending_remove(struct h2_conn *c, struct h2_stream *s)
{
    if (!s->pending)
        return;
    s->pending = false;
    if (s->pend_prev)
        s->pend_prev->pend_next = s->pend_next;
    else
        c->pend_head = s->pend_next;
    if (s->pend_next)
        s->pend_next->pend_prev = s->pend_prev;
    else
        c->pend_tail = s->pend_prev;
}

static bool h2_is_local_id(const struct h2_conn *c, uint32_t id)
{
    return (id & 1) == (c->role == H2_CLIENT);
}

/* A stream id nobody has used yet. */
static bool h2_is_idle(const struct h2_conn *c, uint32_t id)
{
    return h2_is_local_id(c, id) ? id >= c->next_local_id : id > c->last_peer_id;
}

/* The stream is finished.  deferred: it is the subject of the event being
 * returned, so the caller may still look at its data until the next feed. */
static void h2_stream_close(struct h2_conn *c, struct h2_stream *s, bool deferred)
{
    if (s->closed)
        return;
    s->closed = true;
    h2_pending_remove(c, s);
    if (h2_is_local_id(c, s->id))
        c->n_local_streams--;
    else
        c->n_peer_streams--;
    if (!deferred) {
        h2_stream_destroy(c, s);
        return;
    }
    if (c->zombie)
        h2_stream_destroy(c, c->zombie);
    c->zombie = s;
}

static void h2_stream_maybe_close(struct h2_conn *c, struct h2_stream *s, bool deferred)
{
    if (s->local_closed && s->remote_closed)
        h2_stream_close(c, s, deferred);
}

/* ---- sending DATA ---- */

/* Frames as much of the first n bytes of the pieces at pc as the windows
 * allow, in frames of at most the peer's frame size; blob bytes of
 * H2_REF_MIN or more go by reference.  END_STREAM goes on the last frame
 * when end is set and everything fit.  Returns the bytes sent, or a
 * negative connection error. */
static long h2_frame_data(struct h2_conn *c, struct h2_stream *s, const struct h2_piece *pc,
                          size_t n, bool end)
{
    size_t sent = 0, off = 0; /* off: into *pc */
    for (;;) {
        int64_t win = c->conn_send_window < s->send_window ? c->conn_send_window : s->send_window;
        size_t unsent = h2_conn_unsent(c);
        int64_t room = unsent < H2_OUT_CAP ? (int64_t)(H2_OUT_CAP - unsent) : 0;
        if (win > room)
            win = room;
        size_t chunk = n - sent;
        if (chunk > c->peer_max_frame)
            chunk = c->peer_max_frame;
        if ((int64_t)chunk > win)
            chunk = win > 0 ? (size_t)win : 0;
        bool fin = end && sent + chunk == n;
        if (chunk == 0 && !fin)
            break;
        if (!h2_frame_room(c, H2_FT_DATA, fin ? H2_FL_END_STREAM : 0, s->id, chunk, 0))
            return h2_oom(c);
        for (size_t left = chunk; left;) {
            while (off == pc->len) { /* the pieces hold n bytes: never past them */
                pc++;
                off = 0;
            }
            size_t k = pc->len - off < left ? pc->len - off : left;
            if (pc->blob && k >= H2_REF_MIN) {
                if (h2_out_ref(c, pc->blob, pc->p + off, k) < 0)
                    return h2_oom(c);
            } else {
                uint8_t *d = h2_out_space(c, k);
                if (!d)
                    return h2_oom(c);
                memcpy(d, pc->p + off, k);
                c->out.len += k;
            }
            off += k;
            left -= k;
        }
        sent += chunk;
        c->conn_send_window -= (int64_t)chunk;
        s->send_window -= (int64_t)chunk;
        if (fin) {
            s->local_closed = true;
            break;
        }
        if (sent == n)
            break;
    }
    return (long)sent;
}

/* Moves what the windows allow of a pending stream to the output: queued
 * data, then the END_STREAM or trailers waiting behind it.  Returns 1 if the
 * stream is still blocked, 0 if it is done (it may then have been closed
 * and freed), or a negative connection error. */
static int h2_flush_stream(struct h2_conn *c, struct h2_stream *s)
{
    size_t qn = s->st_queue.len - s->st_queue_off;
    if (qn || (s->local_end && !s->local_closed && !s->trailers)) {
        struct h2_piece q = {s->st_queue.data + s->st_queue_off, qn, NULL};
        long r = h2_frame_data(c, s, &q, qn, s->local_end && !s->trailers);
        if (r < 0)
            return (int)r;
        s->st_queue_off += (size_t)r;
        c->queued -= (size_t)r;
        if (s->st_queue_off == s->st_queue.len) {
            s->st_queue_off = s->st_queue.len = 0;
            /* thousands of idle streams must not each keep the room their
             * biggest backlog took */
            if (s->st_queue.cap > H2_QUEUE_KEEP)
                mem_buf_free(&s->st_queue);
        }
        if ((size_t)r < qn)
            return 1;
    }
    if (s->trailers) {
        /* a size update owed by the encoder goes in front of whichever block
         * reaches the peer first */
        c->scratch.len = 0;
        if (hpack_encode_size_update(&c->enc, &c->scratch) < 0 ||
            mem_buf_append(&c->scratch, s->st_block.data, s->st_block.len) < 0)
            return h2_oom(c);
        int r = h2_write_block(c, s->id, c->scratch.data, c->scratch.len, true);
        if (r < 0)
            return r;
        s->trailers = false;
        s->local_closed = true;
        mem_buf_free(&s->st_block);
    }
    h2_pending_remove(c, s);
    h2_stream_maybe_close(c, s, false);
    return 0;
}

/* Round-robin over the blocked streams after a window opened: a stream that
 * is still blocked goes to the back of the queue. */
static int h2_flush_pending(struct h2_conn *c)
{
    size_t n = 0;
    for (struct h2_stream *s = c->pend_head; s; s = s->pend_next)
        n++;
    while (n-- && c->pend_head) {
        struct h2_stream *s = c->pend_head;
        int r = h2_flush_stream(c, s);
        if (r < 0)
            return r;
        if (r == 1) {
            h2_pending_remove(c, s);
            h2_pending_add(c, s);
        }
    }
    return 0;
}

/* ---- receive flow control ---- */

/* The peer's DATA bytes n were consumed: give them back in batches. */
static int h2_credit_conn(struct h2_conn *c, uint32_t n)
{
    c->conn_recv_unacked += n;
    if (c->conn_recv_unacked < c->cfg.conn_window_size / 2)
        return 0;
    int r = h2_write_u32_frame(c, H2_FT_WINDOW_UPDATE, 0, c->conn_recv_unacked);
    if (r < 0)
        return r;
    c->conn_recv_window += c->conn_recv_unacked;
    c->conn_recv_unacked = 0;
    return 0;
}

static int h2_credit_stream(struct h2_conn *c, struct h2_stream *s, uint32_t n)
{
    if (s->remote_closed)
        return 0; /* the peer sends no more on it */
    s->recv_unacked += n;
    if (s->recv_unacked < c->local_initial / 2 || s->recv_unacked == 0)
        return 0;
    int r = h2_write_u32_frame(c, H2_FT_WINDOW_UPDATE, s->id, s->recv_unacked);
    if (r < 0)
        return r;
    s->recv_window += s->recv_unacked;
    s->recv_unacked = 0;
    return 0;
}

/* ---- header validation (RFC 9113 section 8) ---- */

static bool h2_name_is(const struct h2_header *h, const char *name, size_t len)
{
    return h->name_len == len && memcmp(h->name, name, len) == 0;
}

#define H2_NAME_IS(h, lit) h2_name_is(h, lit, sizeof lit - 1)

/* Field names: visible ASCII without uppercase or colon (8.2.1). */
static bool h2_name_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch >= 0x7f || (ch >= 'A' && ch <= 'Z') || ch == ':')
            return false;
    }
    return true;
}

/* Field values: no NUL, CR or LF, no whitespace at either end (8.2.1). */
static bool h2_value_ok(const char *s, size_t n)
{
    if (n && (s[0] == ' ' || s[0] == '\t' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= '\r' && (ch == 0 || ch == '\n' || ch == '\r'))
            return false;
    }
    return true;
}

enum {
    H2_PS_METHOD = 1,
    H2_PS_SCHEME = 2,
    H2_PS_PATH = 4,
    H2_PS_AUTHORITY = 8,
    H2_PS_STATUS = 16,
};

/* 0 if well-formed; *content_length gets the content-length header (-1 if
 * absent).  Returns -1 for a malformed block (a stream error). */
static int h2_check_headers(const struct h2_header *h, size_t n, enum h2_block_kind kind,
                            int64_t *content_length)
{
    unsigned seen = 0;
    bool regular = false, connect = false;
    *content_length = -1;
    for (size_t i = 0; i < n; i++) {
        const struct h2_header *f = &h[i];
        if (!h2_value_ok(f->value, f->value_len))
            return -1;
        if (f->name_len && f->name[0] == ':') {
            unsigned bit;
            if (regular || kind == H2_BLOCK_TRAILERS)
                return -1;
            if (kind == H2_BLOCK_RESPONSE)
                bit = H2_NAME_IS(f, ":status") ? H2_PS_STATUS : 0;
            else if (H2_NAME_IS(f, ":method"))
                bit = H2_PS_METHOD, connect = f->value_len == 7 && !memcmp(f->value, "CONNECT", 7);
            else if (H2_NAME_IS(f, ":scheme"))
                bit = H2_PS_SCHEME;
            else if (H2_NAME_IS(f, ":path"))
                bit = f->value_len ? H2_PS_PATH : 0;
            else if (H2_NAME_IS(f, ":authority"))
                bit = H2_PS_AUTHORITY;
            else
                bit = 0;
            if (!bit || (seen & bit))
                return -1;
            seen |= bit;
            continue;
        }
        regular = true;
        if (!h2_name_ok(f->name, f->name_len))
            return -1;
        switch (f->name[0]) { /* only these letters start a name checked below */
        case 'c':
        case 'k':
        case 'p':
        case 't':
        case 'u':
            break;
        default:
            continue;
        }
        if (H2_NAME_IS(f, "connection") || H2_NAME_IS(f, "keep-alive") ||
            H2_NAME_IS(f, "proxy-connection") || H2_NAME_IS(f, "transfer-encoding") ||
            H2_NAME_IS(f, "upgrade"))
            return -1;
        if (H2_NAME_IS(f, "te") && !(f->value_len == 8 && !memcmp(f->value, "trailers", 8)))
            return -1;
        if (H2_NAME_IS(f, "content-length")) {
            int64_t v = 0;
            if (f->value_len == 0 || f->value_len > 15)
                return -1;
            for (size_t k = 0; k < f->value_len; k++) {
                if (f->value[k] < '0' || f->value[k] > '9')
                    return -1;
                v = v * 10 + (f->value[k] - '0');
            }
            if (*content_length >= 0 && *content_length != v)
                return -1;
            *content_length = v;
        }
    }
    if (kind == H2_BLOCK_REQUEST) {
        if (connect) /* RFC 9113 8.5: authority only */
            return seen == (H2_PS_METHOD | H2_PS_AUTHORITY) ? 0 : -1;
        unsigned need = H2_PS_METHOD | H2_PS_SCHEME | H2_PS_PATH;
        return (seen & need) == need ? 0 : -1;
    }
    if (kind == H2_BLOCK_RESPONSE)
        return seen ? 0 : -1;
    return 0;
}

static bool h2_informational(const struct h2_header *h, size_t n)
{
    return n && H2_NAME_IS(&h[0], ":status") && h[0].value_len == 3 && h[0].value[0] == '1';
}

/* ---- receiving frames ---- */

/* Stream error: RST_STREAM, and H2_EV_RESET so the caller drops its state. */
static int h2_stream_error(struct h2_conn *c, uint32_t id, struct h2_stream *s, uint32_t code,
                           struct h2_event *ev)
{
    int r = h2_write_rst(c, id, code);
    if (r < 0 || (r = h2_count_control(c)) < 0)
        return r;
    if (s)
        h2_stream_close(c, s, true);
    ev->type = H2_EV_RESET;
    ev->stream_id = id;
    ev->error_code = code;
    return 0;
}

static int h2_on_data(struct h2_conn *c, uint8_t flags, uint32_t id, const uint8_t *p,
                      uint32_t len, struct h2_event *ev)
{
    const uint8_t *d = p;
    uint32_t dl = len;
    if (id == 0)
        return h2_fail(c, H2_PROTOCOL_ERROR);
    if (flags & H2_FL_PADDED) {
        if (len < 1)
            return h2_fail(c, H2_FRAME_SIZE_ERROR);
        if (p[0] >= len)
            return h2_fail(c, H2_PROTOCOL_ERROR);
        d = p + 1;
        dl = len - 1 - p[0];
    }
    /* the whole frame, padding included, counts against the windows */
    if ((int64_t)len > c->conn_recv_window)
        return h2_fail(c, H2_FLOW_CONTROL_ERROR);
    c->conn_recv_window -= len;
    struct h2_stream *s = h2_find(c, id);
    if (!s) {
        if (h2_is_idle(c, id))
            return h2_fail(c, H2_PROTOCOL_ERROR);
        int r = h2_credit_conn(c, len);
        if (r < 0 || h2_recently_reset(c, id))
            return r;
        if ((r = h2_write_rst(c, id, H2_STREAM_CLOSED)) < 0)
            return r;
        return h2_count_control(c);
    }
    /* from here on the stream's bytes are consumed whatever happens to it */
    int r = h2_credit_conn(c, len);
    if (r < 0)
        return r;
    if (s->remote_closed)
        return h2_stream_error(c, id, s, H2_STREAM_CLOSED, ev);
    if (!s->got_headers) /* a response's DATA before its HEADERS */
        return h2_stream_error(c, id, s, H2_PROTOCOL_ERROR, ev);
    if ((int64_t)len > s->recv_window)
        return h2_stream_error(c, id, s, H2_FLOW_CONTROL_ERROR, ev);
    s->recv_window -= len;
    bool end = flags & H2_FL_END_STREAM;
    if (s->content_length >= 0) {
        if (dl > s->content_length || (end && dl != s->content_length))
            return h2_stream_error(c, id, s, H2_PROTOCOL_ERROR, ev);
        s->content_length -= dl;
    }
    if (end)
        s->remote_closed = true;
    else if ((r = h2_credit_stream(c, s, len)) < 0)
        return r;
    ev->type = H2_EV_DATA;
    ev->stream_id = id;
    ev->end_stream = end;
    ev->data = d;
    ev->len = dl;
    h2_stream_maybe_close(c, s, true);
    return 0;
}

/* A complete header block for stream id. */
static int h2_on_block(struct h2_conn *c, uint32_t id, const uint8_t *b, size_t n, bool end,
                       bool self_dep, struct h2_event *ev)
{
    struct h2_header *h;
    size_t nh;
    int64_t cl = -1;
    /* decode first, whatever happens to the stream: the table must follow */
    int hr = hpack_decode(&c->dec, b, n, c->cfg.max_header_list_size, &c->arena, &h, &nh);
    if (hr == HPACK_ERR_COMPRESSION)
        return h2_fail(c, H2_COMPRESSION_ERROR);
    if (hr == HPACK_ERR_NOMEM)
        return h2_oom(c);
    bool too_big = hr == HPACK_ERR_LIST_SIZE;
    struct h2_stream *s = h2_find(c, id);
    if (s) {
        if (s->remote_closed)
            return h2_stream_error(c, id, s, H2_STREAM_CLOSED, ev);
        enum h2_block_kind kind = s->got_headers ? H2_BLOCK_TRAILERS : H2_BLOCK_RESPONSE;
        if (self_dep || too_big || (kind == H2_BLOCK_TRAILERS && !end) ||
            h2_check_headers(h, nh, kind, &cl) < 0)
            return h2_stream_error(c, id, s, H2_PROTOCOL_ERROR, ev);
        if (kind == H2_BLOCK_RESPONSE && h2_informational(h, nh)) {
            if (end)
                return h2_stream_error(c, id, s, H2_PROTOCOL_ERROR, ev);
        } else {
            s->got_headers = true;
        }
        if (end && s->content_length > 0)
            return h2_stream_error(c, id, s, H2_PROTOCOL_ERROR, ev);
    } else {
        if (h2_is_local_id(c, id) || c->role == H2_CLIENT) {
            /* we opened it (a client never gets a stream opened by the
             * server: push is off) */
            if (h2_is_idle(c, id) || !h2_is_local_id(c, id))
                return h2_fail(c, H2_PROTOCOL_ERROR);
            return h2_recently_reset(c, id) ? 0 : h2_fail(c, H2_STREAM_CLOSED);
        }
        if (id <= c->last_peer_id) {
            /* a HEADERS below the highest id: reopening a closed stream, or
             * opening a skipped one out of order (RFC 9113 5.1.1) */
            if (id >= c->gap_lo && id <= c->gap_hi)
                return h2_fail(c, H2_PROTOCOL_ERROR);
            return h2_recently_reset(c, id) ? 0 : h2_fail(c, H2_STREAM_CLOSED);
        }
        uint32_t expect = c->last_peer_id ? c->last_peer_id + 2 : 1;
        if (id > expect) {
            c->gap_lo = expect;
            c->gap_hi = id - 2;
        }
        c->last_peer_id = id;
        uint32_t code = 0;
        if (self_dep || too_big || h2_check_headers(h, nh, H2_BLOCK_REQUEST, &cl) < 0 ||
            (end && cl > 0))
            code = H2_PROTOCOL_ERROR;
        else if (c->goaway_sent || c->n_peer_streams >= c->cfg.max_concurrent_streams)
            code = H2_REFUSED_STREAM;
        else if (!(s = h2_stream_new(c, id)))
            code = H2_REFUSED_STREAM; /* out of memory: the client may retry */
        if (code)
            return h2_stream_error(c, id, NULL, code, ev);
        c->n_peer_streams++;
        s->got_headers = true;
        s->content_length = cl;
    }
    ev->type = H2_EV_HEADERS;
    ev->stream_id = id;
    ev->end_stream = end;
    ev->headers = h;
    ev->n_headers = nh;
    if (end) {
        s->remote_closed = true;
        h2_stream_maybe_close(c, s, true);
    }
    return 0;
}

static int h2_on_headers(struct h2_conn *c, uint8_t flags, uint32_t id, const uint8_t *p,
                         uint32_t len, struct h2_event *ev)
{
    uint32_t off = 0, pad = 0;
    bool self_dep = false;
    if (id == 0)
        return h2_fail(c, H2_PROTOCOL_ERROR);
    if (flags & H2_FL_PADDED) {
        if (len < 1)
            return h2_fail(c, H2_FRAME_SIZE_ERROR);
        pad = p[0];
        off = 1;
    }
    if (flags & H2_FL_PRIORITY) {
        if (len < off + 5)
            return h2_fail(c, H2_FRAME_SIZE_ERROR);
        self_dep = (h2_get32(p + off) & H2_STREAM_ID_MAX) == id;
        off += 5;
    }
    if (pad > len - off)
        return h2_fail(c, H2_PROTOCOL_ERROR);
    const uint8_t *frag = p + off;
    size_t fl = len - off - pad;
    bool end = flags & H2_FL_END_STREAM;
    if (flags & H2_FL_END_HEADERS)
        return h2_on_block(c, id, frag, fl, end, self_dep, ev);
    if (fl > c->block_cap)
        return h2_fail(c, H2_ENHANCE_YOUR_CALM);
    c->hdr_buf.len = 0;
    if (mem_buf_append(&c->hdr_buf, frag, fl) < 0)
        return h2_oom(c);
    c->cont_stream = id;
    c->cont_end_stream = end;
    c->cont_self_dep = self_dep;
    return 0;
}

static int h2_on_continuation(struct h2_conn *c, uint8_t flags, uint32_t id, const uint8_t *p,
                              uint32_t len, struct h2_event *ev)
{
    if (!c->cont_stream || id != c->cont_stream)
        return h2_fail(c, H2_PROTOCOL_ERROR);
    if (len > c->block_cap - c->hdr_buf.len)
        return h2_fail(c, H2_ENHANCE_YOUR_CALM);
    if (mem_buf_append(&c->hdr_buf, p, len) < 0)
        return h2_oom(c);
    if (!(flags & H2_FL_END_HEADERS))
        return 0;
    c->cont_stream = 0;
    return h2_on_block(c, id, c->hdr_buf.data, c->hdr_buf.len, c->cont_end_stream,
                       c->cont_self_dep, ev);
}

static int h2_on_priority(struct h2_conn *c, uint32_t id, const uint8_t *p, uint32_t len,
                          struct h2_event *ev)
{
    if (id == 0)
        return h2_fail(c, H2_PROTOCOL_ERROR);
    struct h2_stream *s = h2_find(c, id);
    if (len != 5)
        return h2_stream_error(c, id, s, H2_FRAME_SIZE_ERROR, ev);
    if ((h2_get32(p) & H2_STREAM_ID_MAX) == id)
        return h2_stream_error(c, id, s, H2_PROTOCOL_ERROR, ev);
    return 0;
}

static int h2_on_rst_stream(struct h2_conn *c, uint32_t id, const uint8_t *p, uint32_t len,
                            struct h2_event *ev)
{
    if (id == 0)
        return h2_fail(c, H2_PROTOCOL_ERROR);
    if (len != 4)
        return h2_fail(c, H2_FRAME_SIZE_ERROR);
    struct h2_stream *s = h2_find(c, id);
    if (!s)
        return h2_is_idle(c, id) ? h2_fail(c, H2_PROTOCOL_ERROR) : 0;
    ev->type = H2_EV_RESET;
    ev->stream_id = id;
    ev->error_code = h2_get32(p);
    h2_stream_close(c, s, true);
    return 0;
}

/* Applies one setting from the peer. */
static int h2_apply_setting(struct h2_conn *c, uint16_t key, uint32_t v)
{
    switch (key) {
    case H2_SET_HEADER_TABLE_SIZE:
        hpack_encoder_set_peer_limit(&c->enc, v);
        break;
    case H2_SET_ENABLE_PUSH:
        if (v > 1 || (v == 1 && c->role == H2_CLIENT))
            return h2_fail(c, H2_PROTOCOL_ERROR);
        break;
    case H2_SET_MAX_CONCURRENT_STREAMS:
        c->peer_max_streams = v;
        break;
    case H2_SET_INITIAL_WINDOW_SIZE: {
        if (v > H2_WINDOW_MAX)
            return h2_fail(c, H2_FLOW_CONTROL_ERROR);
        /* RFC 9113 6.9.2: every stream's window moves by the difference,
         * and may go negative */
        int64_t delta = (int64_t)v - c->peer_initial;
        c->peer_initial = v;
        for (size_t k = 0; k < c->n_buckets; k++) {
            for (struct h2_stream *s = c->buckets[k]; s; s = s->hash_next) {
                s->send_window += delta;
                if (s->send_window > H2_WINDOW_MAX)
                    return h2_fail(c, H2_FLOW_CONTROL_ERROR);
            }
        }
        break;
    }
    case H2_SET_MAX_FRAME_SIZE:
        if (v < H2_MIN_FRAME || v > H2_MAX_FRAME)
            return h2_fail(c, H2_PROTOCOL_ERROR);
        c->peer_max_frame = v;
        break;
    default: /* MAX_HEADER_LIST_SIZE is advisory; unknown ones are ignored */
        break;
    }
    return 0;
}

static int h2_on_settings(struct h2_conn *c, uint8_t flags, uint32_t id, const uint8_t *p,
                          uint32_t len)
{
    if (id != 0)
        return h2_fail(c, H2_PROTOCOL_ERROR);
    if (flags & H2_FL_ACK) {
        if (len != 0)
            return h2_fail(c, H2_FRAME_SIZE_ERROR);
        if (c->settings_unacked) {
            /* the peer now uses our window size for its streams */
            int64_t delta = (int64_t)c->cfg.initial_window_size - c->local_initial;
            c->settings_unacked = false;
            c->local_initial = c->cfg.initial_window_size;
            for (size_t k = 0; k < c->n_buckets; k++)
                for (struct h2_stream *s = c->buckets[k]; s; s = s->hash_next)
                    s->recv_window += delta;
        }
        return 0;
    }
    if (len % 6)
        return h2_fail(c, H2_FRAME_SIZE_ERROR);
    for (uint32_t i = 0; i < len; i += 6) {
        int r = h2_apply_setting(c, (uint16_t)(p[i] << 8 | p[i + 1]), h2_get32(p + i + 2));
        if (r < 0)
            return r;
    }
    c->got_settings = true;
    if (!h2_frame(c, H2_FT_SETTINGS, H2_FL_ACK, 0, 0))
        return h2_oom(c);
    int r = h2_count_control(c);
    return r < 0 ? r : h2_flush_pending(c);
}

static int h2_on_ping(struct h2_conn *c, uint8_t flags, uint32_t id, const uint8_t *p,
                      uint32_t len)
{
    if (id != 0)
        return h2_fail(c, H2_PROTOCOL_ERROR);
    if (len != 8)
        return h2_fail(c, H2_FRAME_SIZE_ERROR);
    if (flags & H2_FL_ACK)
        return 0;
    uint8_t *f = h2_frame(c, H2_FT_PING, H2_FL_ACK, 0, 8);
    if (!f)
        return h2_oom(c);
    memcpy(f, p, 8);
    return h2_count_control(c);
}

static int h2_on_goaway(struct h2_conn *c, uint32_t id, const uint8_t *p, uint32_t len,
                        struct h2_event *ev)
{
    if (id != 0)
        return h2_fail(c, H2_PROTOCOL_ERROR);
    if (len < 8)
        return h2_fail(c, H2_FRAME_SIZE_ERROR);
    c->goaway_received = true;
    ev->type = H2_EV_GOAWAY;
    ev->last_stream_id = h2_get32(p) & H2_STREAM_ID_MAX;
    ev->error_code = h2_get32(p + 4);
    return 0;
}

static int h2_on_window_update(struct h2_conn *c, uint32_t id, const uint8_t *p, uint32_t len,
                               struct h2_event *ev)
{
    if (len != 4)
        return h2_fail(c, H2_FRAME_SIZE_ERROR);
    uint32_t inc = h2_get32(p) & H2_WINDOW_MAX;
    if (id == 0) {
        if (inc == 0)
            return h2_fail(c, H2_PROTOCOL_ERROR);
        if (c->conn_send_window + inc > H2_WINDOW_MAX)
            return h2_fail(c, H2_FLOW_CONTROL_ERROR);
        c->conn_send_window += inc;
        return h2_flush_pending(c);
    }
    struct h2_stream *s = h2_find(c, id);
    if (!s)
        return h2_is_idle(c, id) ? h2_fail(c, H2_PROTOCOL_ERROR) : 0;
    if (inc == 0)
        return h2_stream_error(c, id, s, H2_PROTOCOL_ERROR, ev);
    if (s->send_window + inc > H2_WINDOW_MAX)
        return h2_stream_error(c, id, s, H2_FLOW_CONTROL_ERROR, ev);
    s->send_window += inc;
    int r = s->pending ? h2_flush_stream(c, s) : 0;
    return r < 0 ? r : 0;
}

/* ---- public interface ---- */

static uint32_t h2_or(uint32_t v, uint32_t dflt)
{
    return v ? v : dflt;
}

struct h2_conn *h2_conn_new(enum h2_role role, const struct h2_config *cfg)
{
    struct h2_conn *c = mem_calloc(1, sizeof *c);
    if (!c)
        return NULL;
    static const struct h2_config none;
    if (!cfg)
        cfg = &none;
    c->role = role;
    c->cfg.max_concurrent_streams = h2_or(cfg->max_concurrent_streams, 1000);
    c->cfg.initial_window_size = h2_or(cfg->initial_window_size, 1u << 20);
    c->cfg.conn_window_size = h2_or(cfg->conn_window_size, 16u << 20);
    c->cfg.max_frame_size = h2_or(cfg->max_frame_size, H2_MIN_FRAME);
    c->cfg.max_header_list_size = h2_or(cfg->max_header_list_size, 64u << 10);
    if (c->cfg.initial_window_size > H2_WINDOW_MAX)
        c->cfg.initial_window_size = H2_WINDOW_MAX;
    if (c->cfg.conn_window_size > H2_WINDOW_MAX)
        c->cfg.conn_window_size = H2_WINDOW_MAX;
    /* the connection window starts at 65535 and can only be raised */
    if (c->cfg.conn_window_size < H2_DEFAULT_WINDOW)
        c->cfg.conn_window_size = H2_DEFAULT_WINDOW;
    if (c->cfg.max_frame_size < H2_MIN_FRAME)
        c->cfg.max_frame_size = H2_MIN_FRAME;
    if (c->cfg.max_frame_size > H2_MAX_FRAME)
        c->cfg.max_frame_size = H2_MAX_FRAME;
    c->local_initial = H2_DEFAULT_WINDOW;
    c->peer_initial = H2_DEFAULT_WINDOW;
    c->peer_max_frame = H2_MIN_FRAME;
    c->peer_max_streams = UINT32_MAX;
    c->conn_send_window = H2_DEFAULT_WINDOW;
    c->conn_recv_window = c->cfg.conn_window_size;
    c->next_local_id = role == H2_CLIENT ? 1 : 2;
    c->preface_done = role == H2_CLIENT;
    /* a block this big (encoded) decodes to at least the list limit anyway */
    c->block_cap = (size_t)c->cfg.max_header_list_size * 2;
    hpack_decoder_init(&c->dec, HPACK_DEFAULT_TABLE_SIZE);
    hpack_encoder_init(&c->enc);
    /* what decoding a block of block_cap bytes can legitimately take: the
     * header array, Huffman output (8/5 of the input), copies of table
     * entries up to the list limit; only a hostile block hits it */
    mem_arena_init(&c->arena, (size_t)c->cfg.max_header_list_size * 8 + 4 * c->block_cap);

    uint8_t settings[6 * 5];
    size_t n = 0;
    const struct {
        uint16_t key;
        uint32_t v;
        bool send;
    } params[] = {
        {H2_SET_ENABLE_PUSH, 0, role == H2_CLIENT},
        {H2_SET_MAX_CONCURRENT_STREAMS, c->cfg.max_concurrent_streams, true},
        {H2_SET_INITIAL_WINDOW_SIZE, c->cfg.initial_window_size,
         c->cfg.initial_window_size != H2_DEFAULT_WINDOW},
        {H2_SET_MAX_FRAME_SIZE, c->cfg.max_frame_size, c->cfg.max_frame_size != H2_MIN_FRAME},
        {H2_SET_MAX_HEADER_LIST_SIZE, c->cfg.max_header_list_size, true},
    };
    for (size_t k = 0; k < sizeof params / sizeof params[0]; k++) {
        if (!params[k].send)
            continue;
        settings[n] = (uint8_t)(params[k].key >> 8);
        settings[n + 1] = (uint8_t)params[k].key;
        h2_put32(settings + n + 2, params[k].v);
        n += 6;
    }
    uint8_t *p;
    if (role == H2_CLIENT) {
        if (!(p = h2_out_space(c, H2_PREFACE_LEN)))
            goto fail;
        memcpy(p, H2_PREFACE, H2_PREFACE_LEN);
        c->out.len += H2_PREFACE_LEN;
    }
    if (!(p = h2_frame(c, H2_FT_SETTINGS, 0, 0, n)))
        goto fail;
    memcpy(p, settings, n);
    c->settings_unacked = true;
    if (c->cfg.conn_window_size > H2_DEFAULT_WINDOW &&
        h2_write_u32_frame(c, H2_FT_WINDOW_UPDATE, 0,
                           c->cfg.conn_window_size - H2_DEFAULT_WINDOW) < 0)
        goto fail;
    return c;
fail:
    h2_conn_free(c);
    return NULL;
}

void h2_conn_free(struct h2_conn *c)
{
    if (!c)
        return;
    for (size_t k = 0; k < c->n_buckets; k++) {
        while (c->buckets[k]) {
            struct h2_stream *s = c->buckets[k];
            c->buckets[k] = s->hash_next;
            mem_buf_free(&s->st_queue);
            mem_buf_free(&s->st_block);
            mem_free(s);
        }
    }
    while (c->free_streams) {
        struct h2_stream *s = c->free_streams;
        c->free_streams = s->free_next;
        mem_free(s);
    }
    for (size_t i = c->seg_head; i < c->n_segs; i++)
        h2_blob_put(c->segs[i].blob);
    mem_free(c->segs);
    mem_free(c->buckets);
    mem_buf_free(&c->hdr_buf);
    mem_buf_free(&c->scratch);
    mem_buf_free(&c->out);
    hpack_decoder_free(&c->dec);
    hpack_encoder_free(&c->enc);
    mem_arena_free(&c->arena);
    mem_free(c);
}

int h2_conn_feed(struct h2_conn *c, const uint8_t *p, size_t n, struct h2_event *ev)
{
    memset(ev, 0, sizeof *ev);
    if (c->failed)
        return -(int)c->failed;
    if (n == 0)
        return 0;
    if (c->zombie) {
        h2_stream_destroy(c, c->zombie);
        c->zombie = NULL;
    }
    if (c->arena.ma_total)
        mem_arena_reset(&c->arena);
    if (!c->preface_done) {
        /* checked as it arrives, so an HTTP/1.1 request fails at once */
        if (memcmp(p, H2_PREFACE, n < H2_PREFACE_LEN ? n : H2_PREFACE_LEN) != 0)
            return h2_fail(c, H2_PROTOCOL_ERROR);
        if (n < H2_PREFACE_LEN)
            return 0;
        c->preface_done = true;
        return H2_PREFACE_LEN;
    }
    if (n < H2_FRAME_HDR)
        return 0;
    uint32_t len = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
    uint8_t type = p[3], flags = p[4];
    uint32_t id = h2_get32(p + 5) & H2_STREAM_ID_MAX;
    if (len > c->cfg.max_frame_size)
        return h2_fail(c, H2_FRAME_SIZE_ERROR);
    if (n - H2_FRAME_HDR < len)
        return 0;
    p += H2_FRAME_HDR;
    if (!c->got_settings && (type != H2_FT_SETTINGS || (flags & H2_FL_ACK)))
        return h2_fail(c, H2_PROTOCOL_ERROR);
    if (c->cont_stream && type != H2_FT_CONTINUATION)
        return h2_fail(c, H2_PROTOCOL_ERROR);
    int r;
    switch (type) {
    case H2_FT_DATA:
        r = h2_on_data(c, flags, id, p, len, ev);
        break;
    case H2_FT_HEADERS:
        r = h2_on_headers(c, flags, id, p, len, ev);
        break;
    case H2_FT_PRIORITY:
        r = h2_on_priority(c, id, p, len, ev);
        break;
    case H2_FT_RST_STREAM:
        r = h2_on_rst_stream(c, id, p, len, ev);
        break;
    case H2_FT_SETTINGS:
        r = h2_on_settings(c, flags, id, p, len);
        break;
    case H2_FT_PUSH_PROMISE: /* we never enable push, and clients cannot push */
        r = h2_fail(c, H2_PROTOCOL_ERROR);
        break;
    case H2_FT_PING:
        r = h2_on_ping(c, flags, id, p, len);
        break;
    case H2_FT_GOAWAY:
        r = h2_on_goaway(c, id, p, len, ev);
        break;
    case H2_FT_WINDOW_UPDATE:
        r = h2_on_window_update(c, id, p, len, ev);
        break;
    case H2_FT_CONTINUATION:
        r = h2_on_continuation(c, flags, id, p, len, ev);
        break;
    default: /* unknown frame types are ignored (RFC 9113 4.1) */
        r = 0;
        break;
    }
    if (r < 0) {
        memset(ev, 0, sizeof *ev);
        return r;
    }
    return (int)(H2_FRAME_HDR + len);
}

/* The stream if we may still send on it. */
static struct h2_stream *h2_sendable(struct h2_conn *c, uint32_t id)
{
    struct h2_stream *s = c->failed ? NULL : h2_find(c, id);
    return s && !s->closed && !s->local_end ? s : NULL;
}

int h2_conn_submit_headers(struct h2_conn *c, uint32_t stream_id, const struct h2_header *h,
                           size_t n, bool end_stream)
{
    struct h2_stream *s = h2_sendable(c, stream_id);
    if (!s)
        return -2;
    if (s->pending) {
        /* trailers behind queued DATA: encoded now, but without the dynamic
         * table, since other blocks may overtake this one */
        if (!end_stream)
            return -2;
        if (hpack_encode(&c->enc, h, n, HPACK_ENC_STATIC_ONLY, &s->st_block) < 0) {
            (void)h2_oom(c);
            return -1;
        }
        s->trailers = true;
        s->local_end = true;
        return 0;
    }
    if (h2_send_headers(c, stream_id, h, n, end_stream) < 0)
        return -1;
    if (end_stream) {
        s->local_end = s->local_closed = true;
        h2_stream_maybe_close(c, s, false);
    }
    return 0;
}

int h2_conn_submit_data(struct h2_conn *c, uint32_t stream_id, const uint8_t *p, size_t n,
                        bool end_stream)
{
    struct h2_piece pc = {p, n, NULL};
    return h2_conn_submit_datav(c, stream_id, &pc, 1, end_stream);
}

int h2_conn_submit_datav(struct h2_conn *c, uint32_t stream_id, const struct h2_piece *pc,
                         size_t npc, bool end_stream)
{
    struct h2_stream *s = h2_sendable(c, stream_id);
    if (!s)
        return -2;
    size_t n = 0, sent = 0;
    for (size_t i = 0; i < npc; i++)
        n += pc[i].len;
    if (!s->pending) {
        long r = h2_frame_data(c, s, pc, n, end_stream);
        if (r < 0)
            return -1;
        sent = (size_t)r;
    }
    if (end_stream)
        s->local_end = true;
    if (sent < n || (end_stream && !s->local_closed)) {
        /* a queue that keeps flowing is never empty: drop the sent prefix
         * once it is half the buffer, or the buffer grows (and is copied
         * as it grows) without bound */
        struct mem_buf *q = &s->st_queue;
        if (s->st_queue_off && s->st_queue_off >= q->len / 2) {
            memmove(q->data, q->data + s->st_queue_off, q->len - s->st_queue_off);
            q->len -= s->st_queue_off;
            s->st_queue_off = 0;
        }
        if (mem_buf_reserve(q, n - sent) < 0) {
            (void)h2_oom(c);
            return -1;
        }
        /* what flow control holds back is copied: blobs are referenced
         * from the output only */
        c->queued += n - sent;
        for (size_t i = 0; i < npc; i++) {
            size_t skip = sent < pc[i].len ? sent : pc[i].len;
            memcpy(q->data + q->len, pc[i].p + skip, pc[i].len - skip);
            q->len += pc[i].len - skip;
            sent -= skip;
        }
        h2_pending_add(c, s);
        return 0;
    }
    h2_stream_maybe_close(c, s, false);
    return 0;
}

int64_t h2_conn_request(struct h2_conn *c, const struct h2_header *h, size_t n, bool end_stream)
{
    if (c->role != H2_CLIENT || c->failed || c->goaway_received || c->goaway_sent ||
        c->n_local_streams >= c->peer_max_streams || c->next_local_id > H2_STREAM_ID_MAX)
        return -2;
    uint32_t id = c->next_local_id;
    struct h2_stream *s = h2_stream_new(c, id);
    if (!s)
        return -1;
    c->next_local_id += 2;
    c->n_local_streams++;
    if (h2_send_headers(c, id, h, n, end_stream) < 0) {
        h2_stream_close(c, s, false);
        return -1;
    }
    if (end_stream)
        s->local_end = s->local_closed = true;
    return id;
}

void h2_conn_reset_stream(struct h2_conn *c, uint32_t stream_id, enum h2_error code)
{
    struct h2_stream *s = h2_find(c, stream_id);
    if (!s || s->closed)
        return;
    if (!c->failed)
        (void)h2_write_rst(c, stream_id, code);
    h2_stream_close(c, s, false);
}

void h2_conn_goaway(struct h2_conn *c, enum h2_error code)
{
    if (!c->failed && !h2_write_goaway(c, code))
        (void)h2_oom(c);
}

void h2_conn_ping(struct h2_conn *c, uint64_t opaque)
{
    if (c->failed)
        return;
    uint8_t *p = h2_frame(c, H2_FT_PING, 0, 0, 8);
    if (!p) {
        (void)h2_oom(c);
        return;
    }
    h2_put32(p, (uint32_t)(opaque >> 32));
    h2_put32(p + 4, (uint32_t)opaque);
}

const uint8_t *h2_conn_output(struct h2_conn *c, size_t *len)
{
    if (c->seg_head < c->n_segs) {
        const struct h2_seg *g = &c->segs[c->seg_head];
        *len = g->len;
        return g->blob ? g->p : c->out.data + c->out_off;
    }
    *len = c->out.len - c->out_off;
    return *len ? c->out.data + c->out_off : NULL;
}

size_t h2_conn_outputv(struct h2_conn *c, struct iovec *iov, size_t max)
{
    size_t k = 0, off = c->out_off;
    for (size_t i = c->seg_head; i < c->n_segs && k < max; i++) {
        const struct h2_seg *g = &c->segs[i];
        iov[k++] = (struct iovec){(void *)(g->blob ? g->p : c->out.data + off), g->len};
        if (!g->blob)
            off += g->len;
    }
    if (k < max && c->out.len > off)
        iov[k++] = (struct iovec){c->out.data + off, c->out.len - off};
    return k;
}

void h2_conn_output_done(struct h2_conn *c, size_t n)
{
    while (n && c->seg_head < c->n_segs) {
        struct h2_seg *g = &c->segs[c->seg_head];
        size_t k = n < g->len ? n : g->len;
        if (g->blob) {
            g->p += k;
            c->ref_bytes -= k;
        } else {
            c->out_off += k;
        }
        g->len -= k;
        n -= k;
        if (g->len)
            break;
        h2_blob_put(g->blob);
        c->seg_head++;
    }
    if (c->seg_head == c->n_segs)
        c->seg_head = c->n_segs = 0;
    c->out_off += n;
    size_t drained = c->out.len;
    /* streams held back by H2_OUT_CAP continue as the output drains; an
     * error here is the connection's and shows on the next feed */
    if (c->pend_head && h2_conn_unsent(c) < H2_OUT_CAP / 2)
        (void)!h2_flush_pending(c);
    if (c->out_off < c->out.len || c->n_segs)
        return;
    c->out_off = c->out.len = c->out_mark = 0;
    c->control_queued = 0;
    if (c->out.cap > H2_OUT_KEEP && drained < c->out.cap / 4)
        mem_buf_free(&c->out);
}

struct h2_blob *h2_blob_new(const uint8_t *p, size_t n)
{
    struct h2_blob *b = n <= SIZE_MAX - sizeof *b ? mem_alloc(sizeof *b + n) : NULL;
    if (!b)
        return NULL;
    b->b_refs = 1;
    b->b_len = n;
    memcpy(b->b_data, p, n);
    return b;
}

void h2_blob_put(struct h2_blob *b)
{
    if (b && !--b->b_refs)
        mem_free(b);
}

size_t h2_stream_queued(const struct h2_conn *c, uint32_t stream_id)
{
    const struct h2_stream *s = h2_find(c, stream_id);
    return s ? s->st_queue.len - s->st_queue_off : 0;
}

size_t h2_conn_queued(const struct h2_conn *c)
{
    return c->queued;
}

size_t h2_conn_open_streams(const struct h2_conn *c)
{
    return (size_t)c->n_peer_streams + c->n_local_streams;
}

void h2_stream_set_data(struct h2_conn *c, uint32_t stream_id, void *data)
{
    struct h2_stream *s = h2_find(c, stream_id);
    if (s)
        s->data = data;
}

void *h2_stream_data(const struct h2_conn *c, uint32_t stream_id)
{
    const struct h2_stream *s = h2_find(c, stream_id);
    return s ? s->data : NULL;
}
