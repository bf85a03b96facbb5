/* grpc.c - gRPC server calls on top of h2.c (grpc.h).
 *
 * Owns the calls of one connection: their request buffers, arenas and
 * response framing.  It does not own the h2 connection or the socket, and it
 * knows nothing about etcd: handlers come from a method table.
 */
#include "grpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

#define GRPC_ARENA_LIMIT (64u << 20) /* per call: decoded request + response */
#define GRPC_LOCAL_PIECES 8

struct grpc_call {
    struct grpc_conn *gc; /* NULL once the connection is gone */
    const struct grpc_method *m;
    uint32_t sid;
    bool dead;         /* the client can no longer receive */
    bool ended;        /* the handler ended the call */
    bool in_handler;   /* on_message is running (unary ends inside are fine) */
    bool headers_sent; /* response HEADERS went out */
    bool got_message;  /* unary: the one request message arrived */
    struct mem_buf in; /* request bytes not yet framed into messages; owned */
    struct mem_arena arena;
    void *data;
    char token[256];
    char authorization[256];
    struct grpc_call *prev, *next; /* the conn's list of live calls */
};

struct grpc_conn {
    struct h2_conn *h2;
    const struct grpc_method *methods;
    struct grpc_limits lim;
    void *ctx;
    grpc_wake_fn wake;
    void *owner;
    bool in_event;         /* inside grpc_conn_event: the owner flushes itself */
    struct grpc_call *calls; /* owned list */
    size_t n_calls;
    struct mem_buf scratch; /* response encoding; owned */
};

static void call_free(struct grpc_call *call);
static void call_unlink(struct grpc_call *call);

/* ---- connection ---- */

struct grpc_conn *grpc_conn_new(struct h2_conn *h2, const struct grpc_method *methods,
                                const struct grpc_limits *lim, void *ctx, grpc_wake_fn wake,
                                void *owner)
{
    struct grpc_conn *gc = mem_calloc(1, sizeof *gc);
    if (!gc)
        return NULL;
    gc->h2 = h2;
    gc->methods = methods;
    gc->lim = *lim;
    gc->ctx = ctx;
    gc->wake = wake;
    gc->owner = owner;
    return gc;
}

void grpc_conn_free(struct grpc_conn *gc)
{
    if (!gc)
        return;
    while (gc->calls) {
        struct grpc_call *call = gc->calls;
        call_unlink(call);
        call->dead = true;
        if (call->m->streaming) {
            if (!call->ended && call->m->on_end)
                call->m->on_end(call, true);
            call_free(call);
        } else if (call->ended || !call->got_message) {
            call_free(call);
        }
        /* else: a unary handler still holds it and frees it by ending it */
    }
    mem_buf_free(&gc->scratch);
    mem_free(gc);
}

size_t grpc_conn_calls(const struct grpc_conn *gc)
{
    return gc->n_calls;
}

static void conn_wake(struct grpc_conn *gc)
{
    if (gc && !gc->in_event && gc->wake)
        gc->wake(gc->owner);
}

/* ---- calls ---- */

static void call_unlink(struct grpc_call *call)
{
    struct grpc_conn *gc = call->gc;
    if (!gc)
        return;
    if (call->prev)
        call->prev->next = call->next;
    else
        gc->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    gc->n_calls--;
    h2_stream_set_data(gc->h2, call->sid, NULL);
    call->gc = NULL;
    call->prev = call->next = NULL;
}

static void call_free(struct grpc_call *call)
{
    call_unlink(call);
    mem_buf_free(&call->in);
    mem_arena_free(&call->arena);
    mem_free(call);
}

void *grpc_call_ctx(const struct grpc_call *call)
{
    return call->gc ? call->gc->ctx : NULL;
}

struct mem_arena *grpc_call_arena(struct grpc_call *call)
{
    return &call->arena;
}

void grpc_call_set_data(struct grpc_call *call, void *data)
{
    call->data = data;
}

void *grpc_call_data(const struct grpc_call *call)
{
    return call->data;
}

const char *grpc_call_metadata(const struct grpc_call *call, const char *name)
{
    if (!strcmp(name, "token"))
        return call->token[0] ? call->token : NULL;
    if (!strcmp(name, "authorization"))
        return call->authorization[0] ? call->authorization : NULL;
    return NULL;
}

bool grpc_call_dead(const struct grpc_call *call)
{
    return call->dead || !call->gc;
}

size_t grpc_call_queued(const struct grpc_call *call)
{
    return call->gc ? h2_stream_queued(call->gc->h2, call->sid) : 0;
}

size_t grpc_call_conn_queued(const struct grpc_call *call)
{
    return call->gc ? h2_conn_queued(call->gc->h2) : 0;
}

/* ---- sending ---- */

size_t grpc_percent_encode(const char *s, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        /* grpc: printable ASCII except '%' goes as is */
        if (c >= 0x20 && c <= 0x7e && c != '%')
            out[o++] = (char)c;
        else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = 0;
    return o;
}

#define HDR(n, v) {n, sizeof n - 1, v, sizeof v - 1}

static int send_response_headers(struct grpc_call *call)
{
    static const struct h2_header hdrs[] = {
        HDR(":status", "200"),
        HDR("content-type", "application/grpc"),
    };
    if (call->headers_sent)
        return 0;
    call->headers_sent = true;
    return h2_conn_submit_headers(call->gc->h2, call->sid, hdrs, 2, false) == -1 ? -1 : 0;
}

/* Trailers (or, before any message, a trailers-only response). */
static void send_status(struct grpc_call *call, int code, const char *msg)
{
    struct h2_header h[4];
    size_t n = 0;
    char codebuf[16];
    char *enc = NULL;
    if (!call->headers_sent) {
        h[n++] = (struct h2_header)HDR(":status", "200");
        h[n++] = (struct h2_header)HDR("content-type", "application/grpc");
        call->headers_sent = true;
    }
    int cl = snprintf(codebuf, sizeof codebuf, "%d", code);
    h[n++] = (struct h2_header){"grpc-status", 11, codebuf, (size_t)cl};
    if (msg && *msg) {
        enc = mem_alloc(strlen(msg) * 3 + 1);
        if (enc) {
            size_t el = grpc_percent_encode(msg, enc);
            h[n++] = (struct h2_header){"grpc-message", 12, enc, el};
        }
    }
    if (h2_conn_submit_headers(call->gc->h2, call->sid, h, n, true) == -1)
        h2_conn_reset_stream(call->gc->h2, call->sid, H2_INTERNAL_ERROR);
    mem_free(enc);
}

/* Encodes msg with its 5-byte prefix into the conn's scratch buffer and
 * queues it on the stream. */
static int send_message(struct grpc_call *call, const struct pb_msgdesc *d, const void *msg)
{
    struct grpc_conn *gc = call->gc;
    gc->scratch.len = 0;
    if (mem_buf_reserve(&gc->scratch, 5) < 0)
        return -1;
    gc->scratch.len = 5;
    if (pb_encode(d, msg, &gc->scratch) < 0)
        return -1;
    size_t n = gc->scratch.len - 5;
    if (n > 0xffffffffu)
        return -1;
    uint8_t *p = gc->scratch.data;
    p[0] = 0;
    p[1] = (uint8_t)(n >> 24);
    p[2] = (uint8_t)(n >> 16);
    p[3] = (uint8_t)(n >> 8);
    p[4] = (uint8_t)n;
    if (send_response_headers(call) < 0)
        return -1;
    return h2_conn_submit_data(gc->h2, call->sid, p, gc->scratch.len, false) == 0 ? 0 : -1;
}

/* The handler is done with the call: free it now unless its on_message is
 * still running (then process_message frees it on return). */
static void call_end(struct grpc_call *call)
{
    call->ended = true;
    struct grpc_conn *gc = call->gc;
    if (!call->in_handler)
        call_free(call);
    conn_wake(gc);
}

void grpc_call_reply(struct grpc_call *call, const struct pb_msgdesc *d, const void *msg)
{
    if (!grpc_call_dead(call)) {
        if (send_message(call, d, msg) < 0)
            send_status(call, GRPC_INTERNAL, "grpc: error while marshaling: out of memory");
        else
            send_status(call, GRPC_OK, NULL);
    }
    call_end(call);
}

void grpc_call_fail(struct grpc_call *call, int code, const char *msg)
{
    if (!grpc_call_dead(call))
        send_status(call, code, msg);
    call_end(call);
}

int grpc_call_send(struct grpc_call *call, const struct pb_msgdesc *d, const void *msg)
{
    if (grpc_call_dead(call) || call->ended)
        return -1;
    int r = send_message(call, d, msg);
    conn_wake(call->gc);
    return r;
}

int grpc_call_send_pieces(struct grpc_call *call, const struct h2_piece *pc, size_t n)
{
    if (grpc_call_dead(call) || call->ended)
        return -1;
    /* the prefix is one more piece in front: on the stack for the usual
     * few pieces */
    struct h2_piece local[GRPC_LOCAL_PIECES];
    struct h2_piece *all = local;
    if (n >= GRPC_LOCAL_PIECES) {
        all = n < SIZE_MAX / sizeof *all ? mem_alloc((n + 1) * sizeof *all) : NULL;
        if (!all)
            return -1;
    }
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        len += pc[i].len;
        all[i + 1] = pc[i];
    }
    uint8_t prefix[5] = {0, (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                         (uint8_t)len};
    all[0] = (struct h2_piece){prefix, 5, NULL};
    struct grpc_conn *gc = call->gc;
    int r = -1;
    if (len <= 0xffffffffu && send_response_headers(call) == 0 &&
        h2_conn_submit_datav(gc->h2, call->sid, all, n + 1, false) == 0)
        r = 0;
    if (all != local)
        mem_free(all);
    conn_wake(gc);
    return r;
}

/* ---- receiving ---- */

static const struct grpc_method *find_method(const struct grpc_conn *gc, const char *path,
                                             size_t len)
{
    for (const struct grpc_method *m = gc->methods; m->path; m++)
        if (strlen(m->path) == len && !memcmp(m->path, path, len))
            return m;
    return NULL;
}

static bool hdr_is(const struct h2_header *h, const char *name)
{
    size_t n = strlen(name);
    return h->name_len == n && !memcmp(h->name, name, n);
}

static void keep_value(char *dst, size_t cap, const struct h2_header *h)
{
    size_t n = h->value_len < cap - 1 ? h->value_len : cap - 1;
    memcpy(dst, h->value, n);
    dst[n] = 0;
}

/* Answers a stream that never becomes a call. */
static void reject_stream(struct grpc_conn *gc, uint32_t sid, int code, const char *msg)
{
    struct grpc_call tmp = {.gc = gc, .sid = sid};
    send_status(&tmp, code, msg);
}

static void unimplemented(struct grpc_conn *gc, uint32_t sid, const char *path, size_t len)
{
    /* grpc-go's texts: "unknown service X" / "unknown method M for service S" */
    char msg[512];
    char p[400];
    size_t n = len < sizeof p - 1 ? len : sizeof p - 1;
    memcpy(p, path, n);
    p[n] = 0;
    const char *svc = p[0] == '/' ? p + 1 : p;
    char *slash = strchr(svc, '/');
    if (!slash) {
        snprintf(msg, sizeof msg, "malformed method name: \"%s\"", p);
    } else {
        *slash = 0;
        bool known = false;
        size_t sl = strlen(svc);
        for (const struct grpc_method *m = gc->methods; m->path; m++)
            if (!strncmp(m->path + 1, svc, sl) && m->path[1 + sl] == '/')
                known = true;
        if (known)
            snprintf(msg, sizeof msg, "unknown method %s for service %s", slash + 1, svc);
        else
            snprintf(msg, sizeof msg, "unknown service %s", svc);
    }
    reject_stream(gc, sid, GRPC_UNIMPLEMENTED, msg);
}

static int on_headers(struct grpc_conn *gc, const struct h2_event *ev)
{
    struct grpc_call *call = h2_stream_data(gc->h2, ev->stream_id);
    if (call) /* trailers from the client: only end_stream matters */
        return 0;
    const struct h2_header *path = NULL, *ctype = NULL;
    for (size_t i = 0; i < ev->n_headers; i++) {
        const struct h2_header *h = &ev->headers[i];
        if (hdr_is(h, ":path"))
            path = h;
        else if (hdr_is(h, "content-type"))
            ctype = h;
    }
    if (!ctype || ctype->value_len < 16 || memcmp(ctype->value, "application/grpc", 16) ||
        (ctype->value_len > 16 && ctype->value[16] != '+' && ctype->value[16] != ';')) {
        static const struct h2_header h415[] = {
            HDR(":status", "415"),
            HDR("content-type", "text/plain"),
        };
        if (h2_conn_submit_headers(gc->h2, ev->stream_id, h415, 2, false) == -1)
            return -1;
        static const char body[] = "invalid gRPC request content-type";
        if (h2_conn_submit_data(gc->h2, ev->stream_id, (const uint8_t *)body, sizeof body - 1,
                                true) == -1)
            return -1;
        return 0;
    }
    const struct grpc_method *m = path ? find_method(gc, path->value, path->value_len) : NULL;
    if (!m) {
        unimplemented(gc, ev->stream_id, path ? path->value : "", path ? path->value_len : 0);
        return 0;
    }
    call = mem_calloc(1, sizeof *call);
    if (!call)
        return -1;
    call->gc = gc;
    call->m = m;
    call->sid = ev->stream_id;
    mem_arena_init(&call->arena, GRPC_ARENA_LIMIT);
    for (size_t i = 0; i < ev->n_headers; i++) {
        const struct h2_header *h = &ev->headers[i];
        if (hdr_is(h, "token"))
            keep_value(call->token, sizeof call->token, h);
        else if (hdr_is(h, "authorization"))
            keep_value(call->authorization, sizeof call->authorization, h);
    }
    call->next = gc->calls;
    if (gc->calls)
        gc->calls->prev = call;
    gc->calls = call;
    gc->n_calls++;
    h2_stream_set_data(gc->h2, ev->stream_id, call);
    return 0;
}

/* Runs the handler on one complete message p[0..n).  Returns false if the
 * call ended (freed or detached) and must not be touched again. */
static bool process_message(struct grpc_call *call, const uint8_t *p, size_t n)
{
    void *req = mem_arena_alloc(&call->arena, call->m->req_desc->size);
    if (!req) {
        grpc_call_fail(call, GRPC_RESOURCE_EXHAUSTED, "grpc: out of memory decoding request");
        return false;
    }
    int r = pb_decode(call->m->req_desc, p, n, req, &call->arena);
    if (r < 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "grpc: error unmarshalling request: %s",
                 r == PB_ERR_NOMEM ? "out of memory" : "unexpected EOF");
        grpc_call_fail(call, GRPC_INTERNAL, msg);
        return false;
    }
    call->in_handler = true;
    call->m->on_message(call, req);
    call->in_handler = false;
    if (call->ended) {
        call_free(call);
        return false;
    }
    if (call->m->streaming)
        mem_arena_reset(&call->arena);
    return true;
}

/* Frames call->in into messages.  Returns false if the call ended. */
static bool frame_messages(struct grpc_call *call)
{
    struct grpc_conn *gc = call->gc;
    size_t off = 0;
    bool alive = true;
    while (alive && call->in.len - off >= 5) {
        const uint8_t *p = call->in.data + off;
        size_t len = (size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | p[4];
        if (p[0] & 1) {
            grpc_call_fail(call, GRPC_UNIMPLEMENTED,
                           "grpc: Decompressor is not installed for grpc-encoding \"\"");
            return false;
        }
        if (len > gc->lim.max_recv_msg) {
            char msg[128];
            snprintf(msg, sizeof msg, "grpc: received message larger than max (%zu vs. %zu)", len,
                     gc->lim.max_recv_msg);
            grpc_call_fail(call, GRPC_RESOURCE_EXHAUSTED, msg);
            return false;
        }
        if (call->in.len - off - 5 < len)
            break;
        if (!call->m->streaming && call->got_message) {
            grpc_call_fail(call, GRPC_UNIMPLEMENTED,
                           "grpc: more than one message in a unary request");
            return false;
        }
        call->got_message = true;
        off += 5 + len;
        /* the request may point into call->in: keep it until the call ends
         * (unary) or the handler returns (streaming) */
        alive = process_message(call, p + 5, len);
    }
    if (alive && off)
        mem_buf_consume(&call->in, off);
    return alive;
}

static int on_data(struct grpc_conn *gc, const struct h2_event *ev)
{
    struct grpc_call *call = h2_stream_data(gc->h2, ev->stream_id);
    if (!call || call->ended)
        return 0; /* a rejected stream */
    /* a pending unary request points into call->in: never grow it again */
    if (!call->m->streaming && call->got_message)
        return 0;
    if (ev->len) {
        /* bound buffering by the message limit before copying */
        if (call->in.len + ev->len > gc->lim.max_recv_msg + 5 && call->in.len >= 5) {
            const uint8_t *p = call->in.data;
            size_t len = (size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | p[4];
            if (len > gc->lim.max_recv_msg) {
                (void)frame_messages(call); /* reports RESOURCE_EXHAUSTED */
                return 0;
            }
        }
        if (mem_buf_append(&call->in, ev->data, ev->len) < 0) {
            grpc_call_fail(call, GRPC_RESOURCE_EXHAUSTED, "grpc: out of memory");
            return 0;
        }
        if (!frame_messages(call))
            return 0;
    }
    if (ev->end_stream) {
        if (call->m->streaming) {
            if (call->m->on_end)
                call->m->on_end(call, false);
        } else if (!call->got_message) {
            grpc_call_fail(call, GRPC_INTERNAL,
                           call->in.len ? "grpc: error while reading request: unexpected EOF"
                                        : "grpc: no request message");
        }
    }
    return 0;
}

static void on_reset(struct grpc_conn *gc, const struct h2_event *ev)
{
    struct grpc_call *call = h2_stream_data(gc->h2, ev->stream_id);
    if (!call)
        return;
    call->dead = true;
    call_unlink(call);
    if (call->m->streaming) {
        if (!call->ended && call->m->on_end)
            call->m->on_end(call, true);
        call_free(call);
    } else if (!call->got_message || call->ended) {
        call_free(call);
    }
    /* else the unary handler owns it until it ends the call */
}

int grpc_conn_event(struct grpc_conn *gc, const struct h2_event *ev)
{
    int r = 0;
    gc->in_event = true;
    switch (ev->type) {
    case H2_EV_HEADERS:
        r = on_headers(gc, ev);
        if (r == 0 && ev->end_stream) {
            struct h2_event e = *ev;
            e.type = H2_EV_DATA;
            e.len = 0;
            r = on_data(gc, &e);
        }
        break;
    case H2_EV_DATA:
        r = on_data(gc, ev);
        break;
    case H2_EV_RESET:
        on_reset(gc, ev);
        break;
    default:
        break;
    }
    gc->in_event = false;
    return r;
}
