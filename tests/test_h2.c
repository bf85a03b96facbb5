/* test_h2.c - HTTP/2: a client and a server connection talking through
 * buffers (whole and byte by byte), flow control both ways, and hand-made
 * frames fed to a server to check the exact GOAWAY/RST_STREAM codes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../h2.c"

/* ---- recording events ---- */

struct rec {
    enum h2_event_type type;
    uint32_t id;
    bool end;
    uint32_t code, last;
    char hdrs[512]; /* "name: value\n"... */
    size_t len;
    void *sdata; /* h2_stream_data at the time of the event */
};

#define MAX_EV 8192

struct side {
    struct h2_conn *c;
    struct mem_buf in; /* received, not yet consumed */
    size_t avail;      /* bytewise: how much of in has "arrived" */
    bool bytewise;
    struct rec *ev; /* MAX_EV of them */
    size_t n_ev;
    struct mem_buf data; /* every DATA payload, in order */
    int err;
};

static void record(struct side *s, const struct h2_event *ev)
{
    assert_true(s->n_ev < MAX_EV);
    struct rec *r = &s->ev[s->n_ev++];
    memset(r, 0, sizeof *r);
    r->type = ev->type;
    r->id = ev->stream_id;
    r->end = ev->end_stream;
    r->code = ev->error_code;
    r->last = ev->last_stream_id;
    r->len = ev->len;
    r->sdata = h2_stream_data(s->c, ev->stream_id);
    size_t o = 0;
    for (size_t k = 0; k < ev->n_headers; k++) {
        const struct h2_header *h = &ev->headers[k];
        int n = snprintf(r->hdrs + o, sizeof r->hdrs - o, "%.*s: %.*s\n", (int)h->name_len,
                         h->name, (int)h->value_len, h->value);
        assert_true(n > 0);
        if ((size_t)n >= sizeof r->hdrs - o)
            break; /* truncated */
        o += (size_t)n;
    }
    if (ev->type == H2_EV_DATA)
        assert_int_equal(mem_buf_append(&s->data, ev->data, ev->len), 0);
}

/* Feeds what has arrived until it stops making progress. */
static void process(struct side *s)
{
    for (;;) {
        if (s->err)
            return;
        size_t n = s->bytewise ? s->avail : s->in.len;
        if (n == 0 && !(s->bytewise && s->in.len))
            return;
        struct h2_event ev;
        int r = h2_conn_feed(s->c, s->in.data, n, &ev);
        if (r < 0) {
            s->err = r;
            return;
        }
        if (r == 0) {
            if (!s->bytewise || s->avail == s->in.len)
                return;
            s->avail++;
            continue;
        }
        if (ev.type != H2_EV_NONE)
            record(s, &ev);
        mem_buf_consume(&s->in, (size_t)r);
        if (s->bytewise)
            s->avail -= (size_t)r;
    }
}

/* Moves from's output to to's input; true if anything moved. */
static bool deliver(struct side *from, struct side *to)
{
    size_t len;
    const uint8_t *p = h2_conn_output(from->c, &len);
    if (!len)
        return false;
    assert_int_equal(mem_buf_append(&to->in, p, len), 0);
    h2_conn_output_done(from->c, len);
    return true;
}

static void run(struct side *a, struct side *b)
{
    for (int k = 0; k < 100000; k++) {
        bool moved = deliver(a, b);
        process(b);
        moved |= deliver(b, a);
        process(a);
        if (!moved)
            return;
    }
    fail_msg("connections never went quiet");
}

static void side_init(struct side *s, enum h2_role role, const struct h2_config *cfg)
{
    memset(s, 0, sizeof *s);
    s->c = h2_conn_new(role, cfg);
    assert_non_null(s->c);
    s->ev = calloc(MAX_EV, sizeof *s->ev);
    assert_non_null(s->ev);
}

static void side_free(struct side *s)
{
    h2_conn_free(s->c);
    free(s->ev);
    mem_buf_free(&s->in);
    mem_buf_free(&s->data);
}

static const struct rec *find_ev(const struct side *s, enum h2_event_type type, uint32_t id,
                                 size_t from)
{
    for (size_t k = from; k < s->n_ev; k++)
        if (s->ev[k].type == type && s->ev[k].id == id)
            return &s->ev[k];
    return NULL;
}

#define HDR(n, v) {n, sizeof n - 1, v, sizeof v - 1}

static const struct h2_header req_hdrs[] = {
    HDR(":method", "POST"),
    HDR(":scheme", "http"),
    HDR(":path", "/etcdserverpb.KV/Range"),
    HDR(":authority", "localhost:2379"),
    HDR("content-type", "application/grpc"),
    HDR("te", "trailers"),
};
#define N_REQ (sizeof req_hdrs / sizeof req_hdrs[0])

static const struct h2_header resp_hdrs[] = {
    HDR(":status", "200"),
    HDR("content-type", "application/grpc"),
};
static const struct h2_header trailers[] = {
    HDR("grpc-status", "0"),
    HDR("grpc-message", ""),
};

/* ---- client and server together ---- */

static void exchange(bool bytewise)
{
    struct side cl, sv;
    side_init(&cl, H2_CLIENT, NULL);
    side_init(&sv, H2_SERVER, NULL);
    cl.bytewise = sv.bytewise = bytewise;
    uint8_t body[300];
    for (size_t k = 0; k < sizeof body; k++)
        body[k] = (uint8_t)k;
    for (int round = 0; round < 3; round++) {
        size_t cev = cl.n_ev, sev = sv.n_ev;
        int64_t id = h2_conn_request(cl.c, req_hdrs, N_REQ, false);
        assert_true(id > 0);
        assert_int_equal(id, 1 + 2 * round);
        int dummy;
        h2_stream_set_data(cl.c, (uint32_t)id, &dummy);
        assert_int_equal(h2_conn_submit_data(cl.c, (uint32_t)id, body, sizeof body, true), 0);
        run(&cl, &sv);
        const struct rec *r = find_ev(&sv, H2_EV_HEADERS, (uint32_t)id, sev);
        assert_non_null(r);
        assert_false(r->end);
        assert_string_equal(r->hdrs, ":method: POST\n:scheme: http\n:path: /etcdserverpb.KV/Range\n"
                                     ":authority: localhost:2379\ncontent-type: "
                                     "application/grpc\nte: trailers\n");
        r = find_ev(&sv, H2_EV_DATA, (uint32_t)id, sev);
        assert_non_null(r);
        assert_true(r->end);
        assert_int_equal(r->len, sizeof body);
        assert_int_equal(h2_conn_open_streams(sv.c), 1);
        assert_int_equal(h2_conn_submit_headers(sv.c, (uint32_t)id, resp_hdrs, 2, false), 0);
        assert_int_equal(h2_conn_submit_data(sv.c, (uint32_t)id, body, 100, false), 0);
        assert_int_equal(h2_conn_submit_headers(sv.c, (uint32_t)id, trailers, 2, true), 0);
        assert_int_equal(h2_conn_open_streams(sv.c), 0);
        assert_int_equal(h2_conn_submit_data(sv.c, (uint32_t)id, body, 1, false), -2);
        run(&cl, &sv);
        r = find_ev(&cl, H2_EV_HEADERS, (uint32_t)id, cev);
        assert_non_null(r);
        assert_string_equal(r->hdrs, ":status: 200\ncontent-type: application/grpc\n");
        assert_ptr_equal(r->sdata, &dummy);
        r = find_ev(&cl, H2_EV_DATA, (uint32_t)id, cev);
        assert_non_null(r);
        assert_int_equal(r->len, 100);
        assert_false(r->end);
        r = find_ev(&cl, H2_EV_HEADERS, (uint32_t)id, (size_t)(r - cl.ev));
        assert_non_null(r);
        assert_true(r->end);
        assert_string_equal(r->hdrs, "grpc-status: 0\ngrpc-message: \n");
        assert_ptr_equal(r->sdata, &dummy); /* still readable during the last event */
        assert_int_equal(h2_conn_open_streams(cl.c), 0);
    }
    assert_int_equal(cl.data.len, 300);
    assert_int_equal(sv.data.len, 900);
    assert_memory_equal(sv.data.data, body, sizeof body);
    assert_int_equal(cl.err, 0);
    assert_int_equal(sv.err, 0);
    /* all closed streams are gone from the table */
    struct h2_event ev;
    assert_int_equal(h2_conn_feed(cl.c, NULL, 0, &ev), 0);
    assert_int_equal(h2_conn_feed(cl.c, (const uint8_t *)"", 1, &ev), 0);
    assert_int_equal(cl.c->n_streams, 0);
    assert_null(h2_stream_data(cl.c, 5));
    side_free(&cl);
    side_free(&sv);
}

static void test_exchange(void **state)
{
    (void)state;
    exchange(false);
}

static void test_exchange_bytewise(void **state)
{
    (void)state;
    exchange(true);
}

/* Many concurrent streams, interleaved, byte by byte. */
static void test_many_streams_bytewise(void **state)
{
    (void)state;
    struct side cl, sv;
    side_init(&cl, H2_CLIENT, NULL);
    side_init(&sv, H2_SERVER, NULL);
    cl.bytewise = sv.bytewise = true;
    int64_t ids[40];
    for (int k = 0; k < 40; k++) {
        ids[k] = h2_conn_request(cl.c, req_hdrs, N_REQ, k % 2 == 0);
        assert_true(ids[k] > 0);
    }
    for (int k = 1; k < 40; k += 2)
        assert_int_equal(h2_conn_submit_data(cl.c, (uint32_t)ids[k], (const uint8_t *)"hello", 5,
                                             true),
                         0);
    run(&cl, &sv);
    assert_int_equal(h2_conn_open_streams(sv.c), 40);
    for (int k = 39; k >= 0; k--) {
        char v[8];
        int vl = snprintf(v, sizeof v, "%d", k);
        struct h2_header t[] = {{"grpc-status", 11, v, (size_t)vl}};
        assert_int_equal(h2_conn_submit_headers(sv.c, (uint32_t)ids[k], resp_hdrs, 2, false), 0);
        assert_int_equal(h2_conn_submit_headers(sv.c, (uint32_t)ids[k], t, 1, true), 0);
    }
    run(&cl, &sv);
    assert_int_equal(h2_conn_open_streams(sv.c), 0);
    assert_int_equal(h2_conn_open_streams(cl.c), 0);
    for (int k = 0; k < 40; k++) {
        const struct rec *r = find_ev(&cl, H2_EV_HEADERS, (uint32_t)ids[k], 0);
        assert_non_null(r);
        r = find_ev(&cl, H2_EV_HEADERS, (uint32_t)ids[k], (size_t)(r - cl.ev) + 1);
        assert_non_null(r);
        char want[32];
        snprintf(want, sizeof want, "grpc-status: %d\n", k);
        assert_string_equal(r->hdrs, want);
    }
    assert_int_equal(cl.err, 0);
    assert_int_equal(sv.err, 0);
    side_free(&cl);
    side_free(&sv);
}

/* Server -> client: the client's stream window (100) holds the response
 * back; the client's WINDOW_UPDATEs release it; trailers wait behind it. */
static void test_flow_control_to_client(void **state)
{
    (void)state;
    struct side cl, sv;
    struct h2_config ccfg = {.initial_window_size = 100};
    side_init(&cl, H2_CLIENT, &ccfg);
    side_init(&sv, H2_SERVER, NULL);
    int64_t id = h2_conn_request(cl.c, req_hdrs, N_REQ, true);
    run(&cl, &sv);
    uint8_t body[1000];
    for (size_t k = 0; k < sizeof body; k++)
        body[k] = (uint8_t)(k * 3);
    assert_int_equal(h2_conn_submit_headers(sv.c, (uint32_t)id, resp_hdrs, 2, false), 0);
    assert_int_equal(h2_conn_submit_data(sv.c, (uint32_t)id, body, sizeof body, false), 0);
    assert_int_equal(h2_stream_queued(sv.c, (uint32_t)id), 900);
    assert_int_equal(h2_conn_submit_headers(sv.c, (uint32_t)id, resp_hdrs, 2, false), -2);
    assert_int_equal(h2_conn_submit_headers(sv.c, (uint32_t)id, trailers, 2, true), 0);
    assert_int_equal(h2_conn_submit_data(sv.c, (uint32_t)id, body, 1, false), -2);
    deliver(&sv, &cl);
    process(&cl);
    assert_int_equal(cl.data.len, 100); /* exactly one window */
    assert_null(find_ev(&cl, H2_EV_HEADERS, (uint32_t)id, 1));
    run(&cl, &sv);
    assert_int_equal(cl.data.len, 1000);
    assert_memory_equal(cl.data.data, body, sizeof body);
    assert_int_equal(h2_stream_queued(sv.c, (uint32_t)id), 0);
    const struct rec *r = find_ev(&cl, H2_EV_HEADERS, (uint32_t)id, 1);
    assert_non_null(r);
    assert_true(r->end);
    assert_string_equal(r->hdrs, "grpc-status: 0\ngrpc-message: \n");
    assert_int_equal(h2_conn_open_streams(sv.c), 0);
    assert_int_equal(h2_conn_open_streams(cl.c), 0);
    side_free(&cl);
    side_free(&sv);
}

/* DATA from pieces, some in shared blobs: blob bytes go out by reference
 * (the output holds the blob until written, in several stretches that
 * writev takes in order), small ones and what flow control holds back are
 * copied; frames split inside pieces; the peer gets the bytes in order. */
static void test_blob_pieces(void **state)
{
    (void)state;
    struct side cl, sv;
    struct h2_config ccfg = {.initial_window_size = 30000};
    side_init(&cl, H2_CLIENT, &ccfg);
    side_init(&sv, H2_SERVER, NULL);
    int64_t id = h2_conn_request(cl.c, req_hdrs, N_REQ, true);
    run(&cl, &sv);
    uint8_t raw[40000];
    for (size_t k = 0; k < sizeof raw; k++)
        raw[k] = (uint8_t)(k * 7 + k / 251);
    struct h2_blob *b = h2_blob_new(raw, sizeof raw);
    assert_non_null(b);
    assert_int_equal(b->b_refs, 1);
    uint8_t head[5] = {1, 2, 3, 4, 5};
    /* 5 copied, 300 by reference, 10 of a blob copied (short), 20000 by
     * reference across two frames, then 10000 of which the stream window
     * (30000) lets 9685 out and the stream queues the other 315 */
    const struct h2_piece pc[] = {
        {head, 5, NULL},
        {b->b_data, 300, b},
        {b->b_data + 300, 10, b},
        {b->b_data + 1000, 20000, b},
        {b->b_data + 30000, 10000, b},
    };
    assert_int_equal(h2_conn_submit_headers(sv.c, (uint32_t)id, resp_hdrs, 2, false), 0);
    assert_int_equal(h2_conn_submit_datav(sv.c, (uint32_t)id, pc, 5, false), 0);
    assert_int_equal(h2_stream_queued(sv.c, (uint32_t)id), 315);
    assert_true(b->b_refs > 1);
    size_t unsent = h2_conn_unsent(sv.c);
    struct iovec iov[64];
    size_t k = h2_conn_outputv(sv.c, iov, 64), total = 0;
    assert_true(k > 3);
    for (size_t i = 0; i < k; i++)
        total += iov[i].iov_len;
    assert_int_equal(total, unsent);
    /* the same bytes through h2_conn_output, taken in odd bits */
    uint8_t *all = malloc(unsent);
    assert_non_null(all);
    for (size_t i = 0, o = 0; i < k; o += iov[i].iov_len, i++)
        memcpy(all + o, iov[i].iov_base, iov[i].iov_len);
    for (size_t got = 0; got < unsent;) {
        size_t n;
        const uint8_t *p = h2_conn_output(sv.c, &n);
        n = n < 777 ? n : 777;
        assert_memory_equal(p, all + got, n);
        h2_conn_output_done(sv.c, n);
        got += n;
    }
    assert_int_equal(mem_buf_append(&cl.in, all, unsent), 0);
    free(all);
    assert_int_equal(b->b_refs, 1); /* written: the output let go */
    process(&cl);
    assert_int_equal(cl.data.len, 30000);
    run(&cl, &sv);
    assert_int_equal(cl.data.len, 30315);
    assert_memory_equal(cl.data.data, head, 5);
    assert_memory_equal(cl.data.data + 5, raw, 310);
    assert_memory_equal(cl.data.data + 315, raw + 1000, 20000);
    assert_memory_equal(cl.data.data + 20315, raw + 30000, 10000);
    assert_int_equal(cl.err, 0);
    /* a connection freed with references in its output drops them */
    assert_int_equal(h2_conn_submit_datav(sv.c, (uint32_t)id, pc + 3, 1, false), 0);
    assert_true(b->b_refs > 1);
    side_free(&sv);
    assert_int_equal(b->b_refs, 1);
    h2_blob_put(b);
    side_free(&cl);
}

/* What flow control holds back, summed over the connection's streams:
 * it goes as the windows open, and with a reset stream. */
static void test_conn_queued(void **state)
{
    (void)state;
    struct side cl, sv;
    struct h2_config ccfg = {.initial_window_size = 1000};
    side_init(&cl, H2_CLIENT, &ccfg);
    side_init(&sv, H2_SERVER, NULL);
    int64_t a = h2_conn_request(cl.c, req_hdrs, N_REQ, true);
    int64_t b = h2_conn_request(cl.c, req_hdrs, N_REQ, true);
    run(&cl, &sv);
    static uint8_t buf[3000];
    for (int64_t id = a; id <= b; id += b - a) {
        assert_int_equal(h2_conn_submit_headers(sv.c, (uint32_t)id, resp_hdrs, 2, false), 0);
        assert_int_equal(h2_conn_submit_data(sv.c, (uint32_t)id, buf, sizeof buf, false), 0);
        assert_int_equal(h2_stream_queued(sv.c, (uint32_t)id), 2000);
    }
    assert_int_equal(h2_conn_queued(sv.c), 4000);
    h2_conn_reset_stream(sv.c, (uint32_t)b, H2_CANCEL);
    assert_int_equal(h2_conn_queued(sv.c), 2000);
    run(&cl, &sv);
    assert_int_equal(h2_conn_queued(sv.c), 0);
    assert_int_equal(cl.data.len, sizeof buf + 1000); /* a's, and what b sent before */
    side_free(&sv);
    side_free(&cl);
}

/* Client -> server with the connection window: the server's connection
 * window is the protocol's 65535 (no initial raise), streams are big. */
static void test_flow_control_connection_window(void **state)
{
    (void)state;
    struct side cl, sv;
    struct h2_config scfg = {.conn_window_size = 65535, .initial_window_size = 1 << 20};
    side_init(&cl, H2_CLIENT, NULL);
    side_init(&sv, H2_SERVER, &scfg);
    run(&cl, &sv);
    static uint8_t body[200000];
    for (size_t k = 0; k < sizeof body; k++)
        body[k] = (uint8_t)(k % 251);
    int64_t a = h2_conn_request(cl.c, req_hdrs, N_REQ, false);
    int64_t b = h2_conn_request(cl.c, req_hdrs, N_REQ, false);
    assert_int_equal(h2_conn_submit_data(cl.c, (uint32_t)a, body, sizeof body, true), 0);
    assert_int_equal(h2_conn_submit_data(cl.c, (uint32_t)b, body, 1000, true), 0);
    assert_int_equal(h2_stream_queued(cl.c, (uint32_t)a), sizeof body - 65535);
    assert_int_equal(h2_stream_queued(cl.c, (uint32_t)b), 1000);
    deliver(&cl, &sv);
    process(&sv);
    assert_int_equal(sv.data.len, 65535);
    run(&cl, &sv);
    assert_int_equal(sv.data.len, sizeof body + 1000);
    const struct rec *r = find_ev(&sv, H2_EV_DATA, (uint32_t)b, 0);
    assert_non_null(r);
    assert_int_equal(h2_stream_queued(cl.c, (uint32_t)a), 0);
    assert_int_equal(sv.err, 0);
    assert_int_equal(cl.err, 0);
    side_free(&cl);
    side_free(&sv);
}

/* ---- a server fed hand-made frames ---- */

struct raw {
    struct side sv;
    struct hpack_encoder enc;
    struct mem_buf out; /* everything the server wrote */
    size_t out_read;
};

struct frame {
    uint8_t type, flags;
    uint32_t id, len;
    const uint8_t *p;
};

static size_t fr(uint8_t *b, uint8_t type, uint8_t flags, uint32_t id, const void *pl, size_t len)
{
    b[0] = (uint8_t)(len >> 16);
    b[1] = (uint8_t)(len >> 8);
    b[2] = (uint8_t)len;
    b[3] = type;
    b[4] = flags;
    h2_put32(b + 5, id);
    if (len)
        memcpy(b + 9, pl, len);
    return 9 + len;
}

static void raw_collect(struct raw *w)
{
    size_t len;
    const uint8_t *p = h2_conn_output(w->sv.c, &len);
    if (len) {
        assert_int_equal(mem_buf_append(&w->out, p, len), 0);
        h2_conn_output_done(w->sv.c, len);
    }
}

static void raw_feed(struct raw *w, const void *p, size_t n)
{
    assert_int_equal(mem_buf_append(&w->sv.in, p, n), 0);
    process(&w->sv);
    raw_collect(w);
}

static void raw_send(struct raw *w, uint8_t type, uint8_t flags, uint32_t id, const void *pl,
                     size_t len)
{
    uint8_t *b = malloc(9 + len);
    assert_non_null(b);
    raw_feed(w, b, fr(b, type, flags, id, pl, len));
    free(b);
}

static bool raw_next(struct raw *w, struct frame *f)
{
    if (w->out.len - w->out_read < 9)
        return false;
    const uint8_t *p = w->out.data + w->out_read;
    f->len = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
    f->type = p[3];
    f->flags = p[4];
    f->id = h2_get32(p + 5);
    f->p = p + 9;
    assert_true(w->out.len - w->out_read >= 9 + f->len);
    w->out_read += 9 + f->len;
    return true;
}

/* The next frame of this type that the server wrote. */
static struct frame raw_expect(struct raw *w, uint8_t type)
{
    struct frame f;
    while (raw_next(w, &f))
        if (f.type == type)
            return f;
    fail_msg("no frame of type %d", type);
    return f;
}

static bool raw_has(struct raw *w, uint8_t type)
{
    size_t save = w->out_read;
    struct frame f;
    bool found = false;
    while (!found && raw_next(w, &f))
        found = f.type == type;
    w->out_read = save;
    return found;
}

static void raw_skip_output(struct raw *w)
{
    w->out_read = w->out.len;
}

static void raw_init(struct raw *w, const struct h2_config *cfg)
{
    memset(w, 0, sizeof *w);
    side_init(&w->sv, H2_SERVER, cfg);
    hpack_encoder_init(&w->enc);
    raw_feed(w, H2_PREFACE, H2_PREFACE_LEN);
    raw_send(w, H2_FT_SETTINGS, 0, 0, NULL, 0);
    raw_skip_output(w);
    assert_int_equal(w->sv.err, 0);
}

static void raw_free(struct raw *w)
{
    side_free(&w->sv);
    hpack_encoder_free(&w->enc);
    mem_buf_free(&w->out);
}

/* A HEADERS frame with END_HEADERS carrying h (static-only encoding, so the
 * test can drop frames without the tables drifting). */
static void raw_headers(struct raw *w, uint32_t id, uint8_t flags, const struct h2_header *h,
                        size_t n)
{
    struct mem_buf b = {0};
    assert_int_equal(hpack_encode(&w->enc, h, n, HPACK_ENC_STATIC_ONLY, &b), 0);
    raw_send(w, H2_FT_HEADERS, (uint8_t)(flags | H2_FL_END_HEADERS), id, b.data, b.len);
    mem_buf_free(&b);
}

static void raw_request(struct raw *w, uint32_t id, bool end)
{
    raw_headers(w, id, end ? H2_FL_END_STREAM : 0, req_hdrs, N_REQ);
}

static uint32_t goaway_code(struct raw *w)
{
    struct frame f = raw_expect(w, H2_FT_GOAWAY);
    assert_int_equal(f.len, 8);
    return h2_get32(f.p + 4);
}

static uint32_t rst_code(struct raw *w, uint32_t id)
{
    struct frame f = raw_expect(w, H2_FT_RST_STREAM);
    assert_int_equal(f.id, id);
    assert_int_equal(f.len, 4);
    return h2_get32(f.p);
}

static const struct rec *last_ev(struct raw *w)
{
    return w->sv.n_ev ? &w->sv.ev[w->sv.n_ev - 1] : NULL;
}

/* The connection failed with code: GOAWAY sent, feed fails, and keeps
 * failing with the same code. */
static void assert_conn_error(struct raw *w, uint32_t code)
{
    assert_int_equal(w->sv.err, -(int)code);
    assert_int_equal(goaway_code(w), code);
    struct h2_event ev;
    assert_int_equal(h2_conn_feed(w->sv.c, (const uint8_t *)"x", 1, &ev), -(int)code);
}

static void assert_stream_error(struct raw *w, uint32_t id, uint32_t code)
{
    assert_int_equal(w->sv.err, 0);
    assert_int_equal(rst_code(w, id), code);
    const struct rec *r = last_ev(w);
    assert_non_null(r);
    assert_int_equal(r->type, H2_EV_RESET);
    assert_int_equal(r->id, id);
    assert_int_equal(r->code, code);
}

static void test_bad_preface(void **state)
{
    (void)state;
    struct raw w;
    memset(&w, 0, sizeof w);
    side_init(&w.sv, H2_SERVER, NULL);
    raw_feed(&w, "PRI * HTTP/2.0\r\n", 16); /* a correct prefix: wait */
    assert_int_equal(w.sv.err, 0);
    raw_feed(&w, "\r\nXX\r\n\r\n", 8);
    assert_conn_error(&w, H2_PROTOCOL_ERROR);
    raw_free(&w);

    memset(&w, 0, sizeof w);
    side_init(&w.sv, H2_SERVER, NULL);
    raw_feed(&w, "GET / HTTP/1.1\r\n", 16); /* fails on the first byte */
    assert_conn_error(&w, H2_PROTOCOL_ERROR);
    raw_free(&w);

    /* the first frame must be SETTINGS */
    memset(&w, 0, sizeof w);
    side_init(&w.sv, H2_SERVER, NULL);
    raw_feed(&w, H2_PREFACE, H2_PREFACE_LEN);
    raw_send(&w, H2_FT_PING, 0, 0, "12345678", 8);
    assert_conn_error(&w, H2_PROTOCOL_ERROR);
    raw_free(&w);
}

static void test_server_preface_settings(void **state)
{
    (void)state;
    struct raw w;
    struct h2_config cfg = {.max_concurrent_streams = 7, .initial_window_size = 65535};
    memset(&w, 0, sizeof w);
    side_init(&w.sv, H2_SERVER, &cfg);
    raw_collect(&w);
    struct frame f = raw_expect(&w, H2_FT_SETTINGS);
    assert_int_equal(f.flags, 0);
    bool saw_streams = false;
    for (uint32_t i = 0; i < f.len; i += 6) {
        uint16_t key = (uint16_t)(f.p[i] << 8 | f.p[i + 1]);
        assert_int_not_equal(key, H2_SET_INITIAL_WINDOW_SIZE); /* the default is not sent */
        if (key == H2_SET_MAX_CONCURRENT_STREAMS) {
            assert_int_equal(h2_get32(f.p + i + 2), 7);
            saw_streams = true;
        }
    }
    assert_true(saw_streams);
    f = raw_expect(&w, H2_FT_WINDOW_UPDATE);
    assert_int_equal(h2_get32(f.p), (16u << 20) - 65535);
    raw_feed(&w, H2_PREFACE, H2_PREFACE_LEN);
    raw_send(&w, H2_FT_SETTINGS, 0, 0, NULL, 0);
    f = raw_expect(&w, H2_FT_SETTINGS);
    assert_int_equal(f.flags, H2_FL_ACK);
    assert_int_equal(f.len, 0);
    raw_free(&w);
}

static void test_frame_too_large(void **state)
{
    (void)state;
    struct raw w;
    raw_init(&w, NULL);
    uint8_t hdr[9];
    fr(hdr, H2_FT_DATA, 0, 1, NULL, 0);
    hdr[0] = 0;
    hdr[1] = 0x40;
    hdr[2] = 0x01; /* 16385 */
    raw_feed(&w, hdr, 9); /* rejected before the payload arrives */
    assert_conn_error(&w, H2_FRAME_SIZE_ERROR);
    raw_free(&w);
}

static void test_settings_errors(void **state)
{
    (void)state;
    static const struct {
        uint8_t flags;
        uint32_t id;
        const char *payload;
        size_t len;
        uint32_t code;
    } cases[] = {
        {0, 1, "", 0, H2_PROTOCOL_ERROR},                              /* on a stream */
        {0, 0, "\0\2\0\0\0", 5, H2_FRAME_SIZE_ERROR},                  /* not 6k bytes */
        {H2_FL_ACK, 0, "\0\2\0\0\0\0", 6, H2_FRAME_SIZE_ERROR},        /* ACK with payload */
        {0, 0, "\0\2\0\0\0\2", 6, H2_PROTOCOL_ERROR},                  /* ENABLE_PUSH 2 */
        {0, 0, "\0\4\x80\0\0\0", 6, H2_FLOW_CONTROL_ERROR},            /* window 2^31 */
        {0, 0, "\0\5\0\0\x3f\xff", 6, H2_PROTOCOL_ERROR},              /* frame 16383 */
        {0, 0, "\0\5\1\0\0\0", 6, H2_PROTOCOL_ERROR},                  /* frame 2^24 */
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct raw w;
        raw_init(&w, NULL);
        raw_send(&w, H2_FT_SETTINGS, cases[k].flags, cases[k].id, cases[k].payload,
                 cases[k].len);
        assert_conn_error(&w, cases[k].code);
        raw_free(&w);
    }
    /* fine: the largest values, ENABLE_PUSH 1 from a client, unknown ids */
    struct raw w;
    raw_init(&w, NULL);
    raw_send(&w, H2_FT_SETTINGS, 0, 0,
             "\0\4\x7f\xff\xff\xff\0\5\0\xff\xff\xff\0\2\0\0\0\1\0\x63\0\0\0\1", 24);
    assert_int_equal(w.sv.err, 0);
    struct frame f = raw_expect(&w, H2_FT_SETTINGS);
    assert_int_equal(f.flags, H2_FL_ACK);
    assert_int_equal(w.sv.c->peer_max_frame, 0xffffff);
    assert_int_equal(w.sv.c->peer_initial, 0x7fffffff);
    raw_free(&w);
}

/* A client refuses ENABLE_PUSH=1 from a server. */
static void test_client_rejects_push(void **state)
{
    (void)state;
    struct side cl;
    side_init(&cl, H2_CLIENT, NULL);
    uint8_t b[64];
    size_t n = fr(b, H2_FT_SETTINGS, 0, 0, "\0\2\0\0\0\1", 6);
    assert_int_equal(mem_buf_append(&cl.in, b, n), 0);
    process(&cl);
    assert_int_equal(cl.err, -H2_PROTOCOL_ERROR);
    side_free(&cl);

    /* nor may a server open a stream or push */
    side_init(&cl, H2_CLIENT, NULL);
    n = fr(b, H2_FT_SETTINGS, 0, 0, NULL, 0);
    n += fr(b + n, H2_FT_HEADERS, H2_FL_END_HEADERS, 2, "\x88", 1);
    assert_int_equal(mem_buf_append(&cl.in, b, n), 0);
    process(&cl);
    assert_int_equal(cl.err, -H2_PROTOCOL_ERROR);
    side_free(&cl);

    side_init(&cl, H2_CLIENT, NULL);
    n = fr(b, H2_FT_SETTINGS, 0, 0, NULL, 0);
    n += fr(b + n, H2_FT_PUSH_PROMISE, H2_FL_END_HEADERS, 1, "\0\0\0\2\x82", 5);
    assert_int_equal(mem_buf_append(&cl.in, b, n), 0);
    process(&cl);
    assert_int_equal(cl.err, -H2_PROTOCOL_ERROR);
    side_free(&cl);
}

static void test_ping(void **state)
{
    (void)state;
    struct raw w;
    raw_init(&w, NULL);
    raw_send(&w, H2_FT_PING, 0, 0, "abcdefgh", 8);
    struct frame f = raw_expect(&w, H2_FT_PING);
    assert_int_equal(f.flags, H2_FL_ACK);
    assert_memory_equal(f.p, "abcdefgh", 8);
    raw_send(&w, H2_FT_PING, H2_FL_ACK, 0, "abcdefgh", 8); /* an ACK is not answered */
    assert_false(raw_has(&w, H2_FT_PING));
    h2_conn_ping(w.sv.c, 0x0102030405060708ull);
    raw_collect(&w);
    f = raw_expect(&w, H2_FT_PING);
    assert_int_equal(f.flags, 0);
    assert_memory_equal(f.p, "\1\2\3\4\5\6\7\x8", 8);
    raw_send(&w, H2_FT_PING, 0, 0, "abcdefg", 7);
    assert_conn_error(&w, H2_FRAME_SIZE_ERROR);
    raw_free(&w);

    raw_init(&w, NULL);
    raw_send(&w, H2_FT_PING, 0, 1, "abcdefgh", 8);
    assert_conn_error(&w, H2_PROTOCOL_ERROR);
    raw_free(&w);
}

/* PINGs answered faster than the caller drains them: ENHANCE_YOUR_CALM. */
static void test_ping_flood(void **state)
{
    (void)state;
    struct raw w;
    raw_init(&w, NULL);
    static uint8_t b[17 * (H2_MAX_QUEUED_CONTROL + 1)];
    size_t n = 0;
    for (int k = 0; k <= H2_MAX_QUEUED_CONTROL; k++)
        n += fr(b + n, H2_FT_PING, 0, 0, "abcdefgh", 8);
    assert_int_equal(mem_buf_append(&w.sv.in, b, n), 0);
    process(&w.sv);
    assert_int_equal(w.sv.err, -H2_ENHANCE_YOUR_CALM);
    raw_free(&w);
}

static void test_goaway(void **state)
{
    (void)state;
    struct raw w;
    raw_init(&w, NULL);
    raw_request(&w, 1, true);
    raw_send(&w, H2_FT_GOAWAY, 0, 0, "\0\0\0\0\0\0\0\x0b" "debug", 13);
    const struct rec *r = last_ev(&w);
    assert_int_equal(r->type, H2_EV_GOAWAY);
    assert_int_equal(r->code, H2_ENHANCE_YOUR_CALM);
    assert_int_equal(r->last, 0);
    assert_int_equal(w.sv.err, 0);
    /* we go away: the stream in flight finishes, new ones are refused */
    h2_conn_goaway(w.sv.c, H2_NO_ERROR);
    raw_collect(&w);
    struct frame f = raw_expect(&w, H2_FT_GOAWAY);
    assert_int_equal(h2_get32(f.p), 1);
    assert_int_equal(h2_get32(f.p + 4), H2_NO_ERROR);
    raw_request(&w, 3, true);
    assert_stream_error(&w, 3, H2_REFUSED_STREAM);
    assert_int_equal(h2_conn_submit_headers(w.sv.c, 1, resp_hdrs, 2, true), 0);
    assert_int_equal(h2_conn_open_streams(w.sv.c), 0);
    raw_send(&w, H2_FT_GOAWAY, 0, 0, "\0\0\0\0\0\0\0", 7);
    assert_conn_error(&w, H2_FRAME_SIZE_ERROR);
    raw_free(&w);

    raw_init(&w, NULL);
    raw_send(&w, H2_FT_GOAWAY, 0, 1, "\0\0\0\0\0\0\0\0", 8);
    assert_conn_error(&w, H2_PROTOCOL_ERROR);
    raw_free(&w);
}

/* A client stops opening streams after GOAWAY. */
static void test_client_goaway(void **state)
{
    (void)state;
    struct side cl, sv;
    side_init(&cl, H2_CLIENT, NULL);
    side_init(&sv, H2_SERVER, NULL);
    int64_t id = h2_conn_request(cl.c, req_hdrs, N_REQ, true);
    run(&cl, &sv);
    h2_conn_goaway(sv.c, H2_NO_ERROR);
    run(&cl, &sv);
    const struct rec *r = find_ev(&cl, H2_EV_GOAWAY, 0, 0);
    assert_non_null(r);
    assert_int_equal(r->last, id);
    assert_int_equal(h2_conn_request(cl.c, req_hdrs, N_REQ, true), -2);
    side_free(&cl);
    side_free(&sv);
}

static void test_rst_stream(void **state)
{
    (void)state;
    struct raw w;
    raw_init(&w, NULL);
    raw_request(&w, 1, false);
    int dummy;
    h2_stream_set_data(w.sv.c, 1, &dummy);
    raw_send(&w, H2_FT_RST_STREAM, 0, 1, "\0\0\0\x08", 4);
    const struct rec *r = last_ev(&w);
    assert_int_equal(r->type, H2_EV_RESET);
    assert_int_equal(r->id, 1);
    assert_int_equal(r->code, H2_CANCEL);
    assert_ptr_equal(r->sdata, &dummy); /* the caller finds its state */
    assert_int_equal(h2_conn_open_streams(w.sv.c), 0);
    assert_int_equal(h2_conn_submit_headers(w.sv.c, 1, resp_hdrs, 2, false), -2);
    /* frames after the peer's RST_STREAM: STREAM_CLOSED */
    raw_send(&w, H2_FT_DATA, 0, 1, "x", 1);
    assert_int_equal(rst_code(&w, 1), H2_STREAM_CLOSED);
    assert_null(h2_stream_data(w.sv.c, 1));
    raw_send(&w, H2_FT_RST_STREAM, 0, 1, "\0\0\0\x08", 4); /* ignored */
    raw_send(&w, H2_FT_WINDOW_UPDATE, 0, 1, "\0\0\0\1", 4); /* ignored */
    raw_send(&w, H2_FT_PRIORITY, 0, 1, "\0\0\0\0\x10", 5); /* ignored */
    assert_false(raw_has(&w, H2_FT_RST_STREAM));
    assert_int_equal(w.sv.err, 0);
    raw_send(&w, H2_FT_RST_STREAM, 0, 3, "\0\0\0\x08", 4); /* idle */
    assert_conn_error(&w, H2_PROTOCOL_ERROR);
    raw_free(&w);

    raw_init(&w, NULL);
    raw_request(&w, 1, false);
    raw_send(&w, H2_FT_RST_STREAM, 0, 1, "\0\0\0", 3);
    assert_conn_error(&w, H2_FRAME_SIZE_ERROR);
    raw_free(&w);

    raw_init(&w, NULL);
    raw_send(&w, H2_FT_RST_STREAM, 0, 0, "\0\0\0\x08", 4);
    assert_conn_error(&w, H2_PROTOCOL_ERROR);
    raw_free(&w);
}

/* We reset a stream: late frames from the peer are dropped quietly, and the
 * connection window still gets their bytes back. */
static void test_reset_by_us(void **state)
{
    (void)state;
    struct raw w;
    struct h2_config cfg = {.conn_window_size = 65535};
    raw_init(&w, &cfg);
    raw_request(&w, 1, false);
    h2_conn_reset_stream(w.sv.c, 1, H2_CANCEL);
    raw_collect(&w);
    assert_int_equal(rst_code(&w, 1), H2_CANCEL);
    assert_int_equal(h2_conn_open_streams(w.sv.c), 0);
    static uint8_t chunk[16384];
    for (int k = 0; k < 4; k++)
        raw_send(&w, H2_FT_DATA, 0, 1, chunk, sizeof chunk);
    raw_headers(&w, 1, H2_FL_END_STREAM, trailers, 2); /* late trailers: ignored too */
    assert_int_equal(w.sv.err, 0);
    assert_false(raw_has(&w, H2_FT_RST_STREAM));
    struct frame f = raw_expect(&w, H2_FT_WINDOW_UPDATE);
    assert_int_equal(f.id, 0);
    assert_int_equal(h2_get32(f.p), 2 * 16384);
    raw_free(&w);
}

static void test_window_update(void **state)
{
    (void)state;
    struct raw w;
    raw_init(&w, NULL);
    raw_send(&w, H2_FT_WINDOW_UPDATE, 0, 0, "\0\0\0\0", 4);
    assert_conn_error(&w, H2_PROTOCOL_ERROR);
    raw_free(&w);

    raw_init(&w, NULL);
    raw_send(&w, H2_FT_WINDOW_UPDATE, 0, 0, "\x7f\xff\0\0", 4); /* 65535 + that: the most */
    assert_int_equal(w.sv.err, 0);
    raw_send(&w, H2_FT_WINDOW_UPDATE, 0, 0, "\0\0\0\1", 4);
    assert_conn_error(&w, H2_FLOW_CONTROL_ERROR);
    raw_free(&w);

    raw_init(&w, NULL);
    raw_send(&w, H2_FT_WINDOW_UPDATE, 0, 0, "\0\0\0", 3);
    assert_conn_error(&w, H2_FRAME_SIZE_ERROR);
    raw_free(&w);

    raw_init(&w, NULL);
    raw_send(&w, H2_FT_WINDOW_UPDATE, 0, 1, "\0\0\0\1", 4); /* idle stream */
    assert_conn_error(&w, H2_PROTOCOL_ERROR);
    raw_free(&w);

    raw_init(&w, NULL);
    raw_request(&w, 1, false);
    raw_send(&w, H2_FT_WINDOW_UPDATE, 0, 1, "\0\0\0\0", 4);
    assert_stream_error(&w, 1, H2_PROTOCOL_ERROR);
    raw_request(&w, 3, false);
    raw_send(&w, H2_FT_WINDOW_UPDATE, 0, 3, "\x7f\xff\0\x01", 4);
    assert_stream_error(&w, 3, H2_FLOW_CONTROL_ERROR);
    raw_send(&w, H2_FT_WINDOW_UPDATE, 0, 0, "\x7f\xff\xff\xff", 4);
    assert_conn_error(&w, H2_FLOW_CONTROL_ERROR);
    raw_free(&w);
}

static size_t data_sent(struct raw *w, uint32_t id)
{
    size_t total = 0;
    struct frame f;
    while (raw_next(w, &f))
        if (f.type == H2_FT_DATA && f.id == id)
            total += f.len;
    return total;
}

/* Server sending: stream window, WINDOW_UPDATE, SETTINGS_INITIAL_WINDOW_SIZE
 * moving open streams' windows both ways, frames split at the peer's size. */
static void test_send_windows(void **state)
{
    (void)state;
    struct raw w;
    raw_init(&w, NULL);
    raw_send(&w, H2_FT_SETTINGS, 0, 0, "\0\4\0\0\0\x64", 6); /* initial window 100 */
    raw_request(&w, 1, true);
    raw_skip_output(&w);
    static uint8_t body[70000];
    assert_int_equal(h2_conn_submit_headers(w.sv.c, 1, resp_hdrs, 2, false), 0);
    assert_int_equal(h2_conn_submit_data(w.sv.c, 1, body, sizeof body, true), 0);
    raw_collect(&w);
    assert_int_equal(data_sent(&w, 1), 100);
    assert_int_equal(h2_stream_queued(w.sv.c, 1), sizeof body - 100);
    raw_send(&w, H2_FT_WINDOW_UPDATE, 0, 1, "\0\0\0\x32", 4);
    assert_int_equal(data_sent(&w, 1), 50);
    /* window 0 now; a larger initial size opens it by the difference */
    raw_send(&w, H2_FT_SETTINGS, 0, 0, "\0\4\0\0\x01\x2c", 6); /* 300: +200 */
    assert_int_equal(data_sent(&w, 1), 200);
    /* a smaller one drives it negative: nothing moves until it is back above 0 */
    raw_send(&w, H2_FT_SETTINGS, 0, 0, "\0\4\0\0\0\0", 6); /* 0: -300 */
    raw_send(&w, H2_FT_WINDOW_UPDATE, 0, 1, "\0\0\x01\x2c", 4);
    assert_int_equal(data_sent(&w, 1), 0);
    raw_send(&w, H2_FT_WINDOW_UPDATE, 0, 1, "\0\x01\0\0", 4);
    /* now the connection window (65535) is the limit: 65535 - 350 */
    assert_int_equal(data_sent(&w, 1), 65535 - 350);
    raw_send(&w, H2_FT_WINDOW_UPDATE, 0, 0, "\0\x01\0\0", 4);
    raw_send(&w, H2_FT_WINDOW_UPDATE, 0, 1, "\0\x01\0\0", 4);
    w.out_read = 0;
    struct frame f;
    bool ended = false;
    size_t total = 0;
    while (raw_next(&w, &f)) {
        if (f.type != H2_FT_DATA)
            continue;
        assert_true(f.len <= 16384);
        total += f.len;
        ended = f.flags & H2_FL_END_STREAM;
    }
    assert_int_equal(total, sizeof body);
    assert_true(ended);
    assert_int_equal(h2_conn_open_streams(w.sv.c), 0);
    raw_free(&w);

    /* a window pushed past 2^31-1 by SETTINGS is a connection error */
    raw_init(&w, NULL);
    raw_request(&w, 1, false);
    raw_send(&w, H2_FT_WINDOW_UPDATE, 0, 1, "\x7f\xff\0\0", 4);
    raw_send(&w, H2_FT_SETTINGS, 0, 0, "\0\4\0\x01\0\0", 6);
    assert_conn_error(&w, H2_FLOW_CONTROL_ERROR);
    raw_free(&w);
}

/* Bigger frames when the peer allows them. */
static void test_peer_max_frame(void **state)
{
    (void)state;
    struct raw w;
    raw_init(&w, NULL);
    raw_send(&w, H2_FT_SETTINGS, 0, 0, "\0\5\0\0\x80\0\0\4\0\x10\0\0", 12);
    raw_send(&w, H2_FT_WINDOW_UPDATE, 0, 0, "\0\x10\0\0", 4);
    raw_request(&w, 1, true);
    raw_skip_output(&w);
    static uint8_t body[40000];
    assert_int_equal(h2_conn_submit_headers(w.sv.c, 1, resp_hdrs, 2, false), 0);
    assert_int_equal(h2_conn_submit_data(w.sv.c, 1, body, sizeof body, true), 0);
    raw_collect(&w);
    struct frame f = raw_expect(&w, H2_FT_DATA);
    assert_int_equal(f.len, 32768);
    f = raw_expect(&w, H2_FT_DATA);
    assert_int_equal(f.len, 40000 - 32768);
    assert_int_equal(f.flags, H2_FL_END_STREAM);
    raw_free(&w);
}

/* Receiving: windows enforced, credited back in batches. */
static void test_receive_windows(void **state)
{
    (void)state;
    struct raw w;
    struct h2_config cfg = {.initial_window_size = 1000, .conn_window_size = 100000};
    raw_init(&w, &cfg);
    raw_send(&w, H2_FT_SETTINGS, H2_FL_ACK, 0, NULL, 0); /* our 1000 is in force */
    raw_request(&w, 1, false);
    static uint8_t b[2000];
    raw_send(&w, H2_FT_DATA, 0, 1, b, 400);
    assert_false(raw_has(&w, H2_FT_WINDOW_UPDATE)); /* under half: no update yet */
    raw_send(&w, H2_FT_DATA, 0, 1, b, 200);
    struct frame f = raw_expect(&w, H2_FT_WINDOW_UPDATE);
    assert_int_equal(f.id, 1);
    assert_int_equal(h2_get32(f.p), 600);
    raw_send(&w, H2_FT_DATA, 0, 1, b, 1000); /* exactly the window, credited on delivery */
    assert_int_equal(w.sv.err, 0);
    f = raw_expect(&w, H2_FT_WINDOW_UPDATE);
    assert_int_equal(h2_get32(f.p), 1000);
    raw_send(&w, H2_FT_DATA, 0, 1, b, 1001);
    assert_stream_error(&w, 1, H2_FLOW_CONTROL_ERROR);
    raw_free(&w);

    /* before our SETTINGS is acknowledged the peer may use 65535 */
    raw_init(&w, &cfg);
    raw_request(&w, 1, false);
    raw_send(&w, H2_FT_DATA, 0, 1, b, 2000);
    assert_int_equal(w.sv.err, 0);
    assert_false(raw_has(&w, H2_FT_RST_STREAM));
    raw_free(&w);

    /* the connection window: one frame larger than all of it */
    struct h2_config small = {
        .initial_window_size = 1 << 20, .conn_window_size = 65535, .max_frame_size = 100000};
    raw_init(&w, &small);
    raw_send(&w, H2_FT_SETTINGS, H2_FL_ACK, 0, NULL, 0);
    raw_request(&w, 1, false);
    static uint8_t big[65536];
    raw_send(&w, H2_FT_DATA, 0, 1, big, 40000);
    f = raw_expect(&w, H2_FT_WINDOW_UPDATE);
    assert_int_equal(f.id, 0);
    assert_int_equal(h2_get32(f.p), 40000);
    raw_send(&w, H2_FT_DATA, 0, 1, big, 65535); /* exactly the window again */
    assert_int_equal(w.sv.err, 0);
    raw_skip_output(&w);
    raw_send(&w, H2_FT_DATA, 0, 1, big, 65536);
    assert_conn_error(&w, H2_FLOW_CONTROL_ERROR);
    raw_free(&w);
}

static void test_padding(void **state)
{
    (void)state;
    struct raw w;
    struct h2_config cfg = {.conn_window_size = 65535, .initial_window_size = 65535};
    raw_init(&w, &cfg);
    /* HEADERS padded and with priority */
    struct mem_buf blk = {0};
    assert_int_equal(hpack_encode(&w.enc, req_hdrs, N_REQ, HPACK_ENC_STATIC_ONLY, &blk), 0);
    uint8_t p[512];
    size_t n = 0;
    p[n++] = 10; /* pad length */
    memcpy(p + n, "\x80\0\0\0\x10", 5); /* exclusive, depends on 0 */
    n += 5;
    memcpy(p + n, blk.data, blk.len);
    n += blk.len;
    memset(p + n, 0, 10);
    n += 10;
    raw_send(&w, H2_FT_HEADERS, H2_FL_PADDED | H2_FL_PRIORITY | H2_FL_END_HEADERS, 1, p, n);
    const struct rec *r = last_ev(&w);
    assert_int_equal(r->type, H2_EV_HEADERS);
    assert_non_null(strstr(r->hdrs, ":path: /etcdserverpb.KV/Range\n"));
    /* DATA padded: the payload without padding, the window charged for all */
    raw_send(&w, H2_FT_DATA, H2_FL_PADDED, 1, "\x05hello\0\0\0\0\0", 11);
    r = last_ev(&w);
    assert_int_equal(r->type, H2_EV_DATA);
    assert_int_equal(r->len, 5);
    assert_memory_equal(w.sv.data.data, "hello", 5);
    assert_int_equal(w.sv.c->conn_recv_window, 65535 - 11);
    raw_send(&w, H2_FT_DATA, H2_FL_PADDED | H2_FL_END_STREAM, 1, "\x00", 1); /* empty */
    r = last_ev(&w);
    assert_int_equal(r->type, H2_EV_DATA);
    assert_int_equal(r->len, 0);
    assert_true(r->end);
    raw_free(&w);

    raw_init(&w, NULL);
    raw_request(&w, 1, false);
    raw_send(&w, H2_FT_DATA, H2_FL_PADDED, 1, "\x06hello", 6); /* pad > what is left */
    assert_conn_error(&w, H2_PROTOCOL_ERROR);
    raw_free(&w);

    raw_init(&w, NULL);
    raw_request(&w, 1, false);
    raw_send(&w, H2_FT_DATA, H2_FL_PADDED, 1, "\x01", 1); /* pad = payload */
    assert_conn_error(&w, H2_PROTOCOL_ERROR);
    raw_free(&w);

    raw_init(&w, NULL);
    raw_send(&w, H2_FT_HEADERS, H2_FL_PADDED | H2_FL_END_HEADERS, 1, "\x03\x82\0", 3);
    assert_conn_error(&w, H2_PROTOCOL_ERROR);
    raw_free(&w);

    raw_init(&w, NULL);
    raw_send(&w, H2_FT_HEADERS, H2_FL_PRIORITY | H2_FL_END_HEADERS, 1, "\0\0\0", 3);
    assert_conn_error(&w, H2_FRAME_SIZE_ERROR);
    raw_free(&w);
    mem_buf_free(&blk);
}

static void test_continuation(void **state)
{
    (void)state;
    struct raw w;
    raw_init(&w, NULL);
    struct mem_buf blk = {0};
    assert_int_equal(hpack_encode(&w.enc, req_hdrs, N_REQ, HPACK_ENC_STATIC_ONLY, &blk), 0);
    assert_true(blk.len > 10);
    raw_send(&w, H2_FT_HEADERS, H2_FL_END_STREAM, 1, blk.data, 4);
    assert_int_equal(w.sv.n_ev, 0);
    raw_send(&w, H2_FT_CONTINUATION, 0, 1, blk.data + 4, 0);
    raw_send(&w, H2_FT_CONTINUATION, 0, 1, blk.data + 4, 3);
    assert_int_equal(w.sv.n_ev, 0);
    raw_send(&w, H2_FT_CONTINUATION, H2_FL_END_HEADERS, 1, blk.data + 7, blk.len - 7);
    const struct rec *r = last_ev(&w);
    assert_non_null(r);
    assert_int_equal(r->type, H2_EV_HEADERS);
    assert_true(r->end);
    assert_non_null(strstr(r->hdrs, ":authority: localhost:2379\n"));
    raw_free(&w);

    /* anything else in between */
    raw_init(&w, NULL);
    raw_send(&w, H2_FT_HEADERS, 0, 1, blk.data, 4);
    raw_send(&w, H2_FT_PING, 0, 0, "abcdefgh", 8);
    assert_conn_error(&w, H2_PROTOCOL_ERROR);
    raw_free(&w);

    raw_init(&w, NULL);
    raw_send(&w, H2_FT_HEADERS, 0, 1, blk.data, 4);
    raw_send(&w, 0x42, 0, 0, "abc", 3); /* even an unknown type */
    assert_conn_error(&w, H2_PROTOCOL_ERROR);
    raw_free(&w);

    raw_init(&w, NULL);
    raw_send(&w, H2_FT_HEADERS, 0, 1, blk.data, 4);
    raw_send(&w, H2_FT_CONTINUATION, H2_FL_END_HEADERS, 3, blk.data + 4, blk.len - 4);
    assert_conn_error(&w, H2_PROTOCOL_ERROR);
    raw_free(&w);

    raw_init(&w, NULL);
    raw_send(&w, H2_FT_CONTINUATION, H2_FL_END_HEADERS, 1, blk.data, blk.len);
    assert_conn_error(&w, H2_PROTOCOL_ERROR);
    raw_free(&w);

    /* a block that never ends is bounded */
    struct h2_config cfg = {.max_header_list_size = 4096};
    raw_init(&w, &cfg);
    static uint8_t junk[4096];
    raw_send(&w, H2_FT_HEADERS, 0, 1, junk, sizeof junk);
    raw_send(&w, H2_FT_CONTINUATION, 0, 1, junk, sizeof junk);
    assert_int_equal(w.sv.err, 0);
    raw_send(&w, H2_FT_CONTINUATION, 0, 1, junk, 1);
    assert_conn_error(&w, H2_ENHANCE_YOUR_CALM);
    raw_free(&w);
    mem_buf_free(&blk);
}

/* Our own blocks larger than a frame go out as HEADERS + CONTINUATION. */
static void test_send_continuation(void **state)
{
    (void)state;
    struct side cl, sv;
    side_init(&cl, H2_CLIENT, NULL);
    side_init(&sv, H2_SERVER, NULL);
    cl.bytewise = true;
    static char big[40000];
    memset(big, 'q', sizeof big);
    struct h2_header h[N_REQ + 1];
    memcpy(h, req_hdrs, sizeof req_hdrs);
    h[N_REQ] = (struct h2_header){"x-big", 5, big, sizeof big};
    int64_t id = h2_conn_request(cl.c, h, N_REQ + 1, true);
    run(&cl, &sv);
    const struct rec *r = find_ev(&sv, H2_EV_HEADERS, (uint32_t)id, 0);
    assert_non_null(r);
    assert_true(r->end);
    struct h2_header t[] = {{"x-big", 5, big, 20000}};
    assert_int_equal(h2_conn_submit_headers(sv.c, (uint32_t)id, resp_hdrs, 2, false), 0);
    assert_int_equal(h2_conn_submit_headers(sv.c, (uint32_t)id, t, 1, true), 0);
    run(&cl, &sv);
    r = find_ev(&cl, H2_EV_HEADERS, (uint32_t)id, 1);
    assert_non_null(r);
    assert_true(r->end);
    assert_int_equal(cl.err, 0);
    assert_int_equal(sv.err, 0);
    side_free(&cl);
    side_free(&sv);
}

static void test_stream_states(void **state)
{
    (void)state;
    struct raw w;
    raw_init(&w, NULL);
    raw_send(&w, H2_FT_DATA, 0, 0, "x", 1);
    assert_conn_error(&w, H2_PROTOCOL_ERROR);
    raw_free(&w);

    raw_init(&w, NULL);
    raw_send(&w, H2_FT_DATA, 0, 1, "x", 1); /* idle */
    assert_conn_error(&w, H2_PROTOCOL_ERROR);
    raw_free(&w);

    raw_init(&w, NULL);
    raw_request(&w, 2, true); /* even id from a client */
    assert_conn_error(&w, H2_PROTOCOL_ERROR);
    raw_free(&w);

    raw_init(&w, NULL);
    raw_request(&w, 0, true);
    assert_conn_error(&w, H2_PROTOCOL_ERROR);
    raw_free(&w);

    /* half-closed (remote): DATA and HEADERS are stream errors */
    raw_init(&w, NULL);
    raw_request(&w, 1, true);
    raw_send(&w, H2_FT_DATA, 0, 1, "x", 1);
    assert_stream_error(&w, 1, H2_STREAM_CLOSED);
    raw_request(&w, 3, true);
    raw_headers(&w, 3, H2_FL_END_STREAM, trailers, 2);
    assert_stream_error(&w, 3, H2_STREAM_CLOSED);
    raw_free(&w);

    /* closed after both sides ended: DATA -> RST, HEADERS -> GOAWAY */
    raw_init(&w, NULL);
    raw_request(&w, 1, true);
    assert_int_equal(h2_conn_submit_headers(w.sv.c, 1, resp_hdrs, 2, true), 0);
    raw_skip_output(&w);
    raw_send(&w, H2_FT_DATA, 0, 1, "x", 1);
    assert_int_equal(rst_code(&w, 1), H2_STREAM_CLOSED);
    assert_int_equal(w.sv.err, 0);
    raw_request(&w, 1, true); /* we reset it just now: dropped */
    assert_int_equal(w.sv.err, 0);
    raw_request(&w, 3, true);
    assert_int_equal(h2_conn_submit_headers(w.sv.c, 3, resp_hdrs, 2, true), 0);
    raw_request(&w, 3, true);
    assert_conn_error(&w, H2_STREAM_CLOSED);
    raw_free(&w);

    /* a lower id that was never opened */
    raw_init(&w, NULL);
    raw_request(&w, 5, true);
    raw_request(&w, 3, true);
    assert_conn_error(&w, H2_PROTOCOL_ERROR);
    raw_free(&w);

    /* trailers must end the stream; unknown frame types are ignored */
    raw_init(&w, NULL);
    raw_request(&w, 1, false);
    raw_send(&w, 0xfa, 0xff, 1, "whatever", 8);
    raw_send(&w, 0xfa, 0, 0, NULL, 0);
    assert_int_equal(w.sv.err, 0);
    raw_headers(&w, 1, 0, trailers, 2);
    assert_stream_error(&w, 1, H2_PROTOCOL_ERROR);
    raw_free(&w);

    /* trailers with END_STREAM are delivered */
    raw_init(&w, NULL);
    raw_request(&w, 1, false);
    raw_send(&w, H2_FT_DATA, 0, 1, "abc", 3);
    raw_headers(&w, 1, H2_FL_END_STREAM, trailers, 2);
    const struct rec *r = last_ev(&w);
    assert_int_equal(r->type, H2_EV_HEADERS);
    assert_true(r->end);
    assert_string_equal(r->hdrs, "grpc-status: 0\ngrpc-message: \n");
    assert_int_equal(w.sv.err, 0);
    /* PUSH_PROMISE from a client */
    raw_send(&w, H2_FT_PUSH_PROMISE, H2_FL_END_HEADERS, 1, "\0\0\0\2\x82", 5);
    assert_conn_error(&w, H2_PROTOCOL_ERROR);
    raw_free(&w);
}

static void test_priority(void **state)
{
    (void)state;
    struct raw w;
    raw_init(&w, NULL);
    raw_send(&w, H2_FT_PRIORITY, 0, 1, "\0\0\0\0\x10", 5); /* idle: fine, not opened */
    raw_send(&w, H2_FT_PRIORITY, 0, 9, "\0\0\0\x01\x10", 5);
    assert_int_equal(w.sv.err, 0);
    assert_false(raw_has(&w, H2_FT_RST_STREAM));
    raw_request(&w, 1, false);
    raw_send(&w, H2_FT_PRIORITY, 0, 1, "\0\0\0\x01\x10", 5);
    assert_stream_error(&w, 1, H2_PROTOCOL_ERROR);
    raw_request(&w, 3, false);
    raw_send(&w, H2_FT_PRIORITY, 0, 3, "\0\0\0\x01", 4);
    assert_stream_error(&w, 3, H2_FRAME_SIZE_ERROR);
    /* HEADERS depending on its own stream */
    struct mem_buf blk = {0};
    assert_int_equal(hpack_encode(&w.enc, req_hdrs, N_REQ, HPACK_ENC_STATIC_ONLY, &blk), 0);
    uint8_t p[256];
    memcpy(p, "\0\0\0\x05\x10", 5);
    memcpy(p + 5, blk.data, blk.len);
    raw_send(&w, H2_FT_HEADERS, H2_FL_PRIORITY | H2_FL_END_HEADERS, 5, p, 5 + blk.len);
    assert_stream_error(&w, 5, H2_PROTOCOL_ERROR);
    raw_send(&w, H2_FT_PRIORITY, 0, 0, "\0\0\0\x01\x10", 5);
    assert_conn_error(&w, H2_PROTOCOL_ERROR);
    raw_free(&w);
    mem_buf_free(&blk);
}

static void test_bad_hpack(void **state)
{
    (void)state;
    struct raw w;
    raw_init(&w, NULL);
    raw_send(&w, H2_FT_HEADERS, H2_FL_END_HEADERS, 1, "\x80", 1);
    assert_conn_error(&w, H2_COMPRESSION_ERROR);
    raw_free(&w);
}

/* Malformed requests are stream errors; the connection lives on. */
static void test_request_validation(void **state)
{
    (void)state;
    static const struct h2_header bad[][5] = {
        {HDR(":method", "GET"), HDR(":scheme", "http"), HDR(":path", "/"), HDR("Upper", "x")},
        {HDR(":method", "GET"), HDR(":scheme", "http")},
        {HDR(":method", "GET"), HDR("x", "y"), HDR(":scheme", "http"), HDR(":path", "/")},
        {HDR(":method", "GET"), HDR(":scheme", "http"), HDR(":path", "/"), HDR("connection", "x")},
        {HDR(":method", "GET"), HDR(":scheme", "http"), HDR(":path", "/"), HDR("te", "gzip")},
        {HDR(":method", "GET"), HDR(":scheme", "http"), HDR(":path", "/"),
         HDR("transfer-encoding", "chunked")},
        {HDR(":method", "GET"), HDR(":scheme", "http"), HDR(":path", "/"), HDR(":foo", "x")},
        {HDR(":method", "GET"), HDR(":method", "GET"), HDR(":scheme", "http"), HDR(":path", "/")},
        {HDR(":method", "GET"), HDR(":scheme", "http"), HDR(":path", "")},
        {HDR(":method", "GET"), HDR(":scheme", "http"), HDR(":path", "/"), HDR(":status", "200")},
        {HDR(":method", "GET"), HDR(":scheme", "http"), HDR(":path", "/"), HDR("x", " lead")},
        {HDR(":method", "GET"), HDR(":scheme", "http"), HDR(":path", "/"), HDR("x", "a\nb")},
        {HDR(":method", "GET"), HDR(":scheme", "http"), HDR(":path", "/"), HDR("a:b", "x")},
        {HDR(":method", "CONNECT"), HDR(":scheme", "http"), HDR(":path", "/"),
         HDR(":authority", "a")},
        {HDR(":method", "GET"), HDR(":scheme", "http"), HDR(":path", "/"),
         HDR("keep-alive", "1")},
    };
    static const size_t nbad[] = {4, 2, 4, 4, 4, 4, 4, 4, 3, 4, 4, 4, 4, 4, 4};
    struct raw w;
    raw_init(&w, NULL);
    uint32_t id = 1;
    for (size_t k = 0; k < sizeof nbad / sizeof nbad[0]; k++, id += 2) {
        raw_headers(&w, id, H2_FL_END_STREAM, bad[k], nbad[k]);
        assert_stream_error(&w, id, H2_PROTOCOL_ERROR);
    }
    static const struct h2_header good[] = {
        HDR(":method", "CONNECT"), HDR(":authority", "a:1"), HDR("te", "trailers"),
    };
    raw_headers(&w, id, H2_FL_END_STREAM, good, 3);
    assert_int_equal(last_ev(&w)->type, H2_EV_HEADERS);
    assert_int_equal(h2_conn_open_streams(w.sv.c), 1);
    raw_free(&w);
}

static void test_content_length(void **state)
{
    (void)state;
    struct h2_header h[N_REQ + 1];
    memcpy(h, req_hdrs, sizeof req_hdrs);
    h[N_REQ] = (struct h2_header)HDR("content-length", "5");
    struct raw w;
    raw_init(&w, NULL);
    raw_headers(&w, 1, 0, h, N_REQ + 1);
    raw_send(&w, H2_FT_DATA, H2_FL_END_STREAM, 1, "abcd", 4);
    assert_stream_error(&w, 1, H2_PROTOCOL_ERROR);
    raw_headers(&w, 3, 0, h, N_REQ + 1);
    raw_send(&w, H2_FT_DATA, 0, 3, "abcdef", 6);
    assert_stream_error(&w, 3, H2_PROTOCOL_ERROR);
    raw_headers(&w, 5, H2_FL_END_STREAM, h, N_REQ + 1);
    assert_stream_error(&w, 5, H2_PROTOCOL_ERROR);
    raw_headers(&w, 7, 0, h, N_REQ + 1);
    raw_send(&w, H2_FT_DATA, 0, 7, "ab", 2);
    raw_send(&w, H2_FT_DATA, H2_FL_END_STREAM, 7, "cde", 3);
    const struct rec *r = last_ev(&w);
    assert_int_equal(r->type, H2_EV_DATA);
    assert_true(r->end);
    raw_free(&w);
}

static void test_max_concurrent_streams(void **state)
{
    (void)state;
    struct raw w;
    struct h2_config cfg = {.max_concurrent_streams = 2};
    raw_init(&w, &cfg);
    raw_request(&w, 1, true);
    raw_request(&w, 3, false);
    raw_request(&w, 5, true);
    assert_stream_error(&w, 5, H2_REFUSED_STREAM);
    assert_int_equal(h2_conn_open_streams(w.sv.c), 2);
    /* late DATA for the refused stream is dropped quietly */
    raw_send(&w, H2_FT_DATA, 0, 5, "x", 1);
    assert_false(raw_has(&w, H2_FT_RST_STREAM));
    /* finishing one makes room */
    assert_int_equal(h2_conn_submit_headers(w.sv.c, 1, resp_hdrs, 2, true), 0);
    raw_request(&w, 7, true);
    assert_int_equal(last_ev(&w)->type, H2_EV_HEADERS);
    assert_int_equal(h2_conn_open_streams(w.sv.c), 2);
    raw_free(&w);

    /* a client respects the server's limit */
    struct side cl, sv;
    side_init(&cl, H2_CLIENT, NULL);
    side_init(&sv, H2_SERVER, &cfg);
    run(&cl, &sv);
    int64_t a = h2_conn_request(cl.c, req_hdrs, N_REQ, true);
    assert_true(h2_conn_request(cl.c, req_hdrs, N_REQ, true) > 0);
    assert_int_equal(h2_conn_request(cl.c, req_hdrs, N_REQ, true), -2);
    run(&cl, &sv);
    assert_int_equal(h2_conn_submit_headers(sv.c, (uint32_t)a, resp_hdrs, 2, true), 0);
    run(&cl, &sv);
    assert_true(h2_conn_request(cl.c, req_hdrs, N_REQ, true) > 0);
    side_free(&cl);
    side_free(&sv);
}

static void test_header_list_size(void **state)
{
    (void)state;
    struct raw w;
    struct h2_config cfg = {.max_header_list_size = 1024};
    raw_init(&w, &cfg);
    static char big[1000];
    memset(big, 'v', sizeof big);
    struct h2_header h[N_REQ + 1];
    memcpy(h, req_hdrs, sizeof req_hdrs);
    h[N_REQ] = (struct h2_header){"x-big", 5, big, sizeof big};
    raw_headers(&w, 1, H2_FL_END_STREAM, h, N_REQ + 1);
    assert_stream_error(&w, 1, H2_PROTOCOL_ERROR);
    raw_request(&w, 3, true);
    assert_int_equal(last_ev(&w)->type, H2_EV_HEADERS);
    raw_free(&w);
}

/* The stream table keeps working as streams come and go in any order. */
static void test_stream_table(void **state)
{
    (void)state;
    struct raw w;
    raw_init(&w, NULL);
    uint32_t rnd = 7;
    uint32_t open[600];
    size_t n_open = 0;
    uint32_t next = 1;
    for (int step = 0; step < 5000; step++) {
        rnd = rnd * 1103515245u + 12345u;
        if (n_open < 600 && ((rnd >> 16) % 3 != 0 || n_open == 0)) {
            raw_request(&w, next, false);
            h2_stream_set_data(w.sv.c, next, (void *)(uintptr_t)next);
            open[n_open++] = next;
            next += 2;
        } else {
            size_t k = (rnd >> 8) % n_open;
            h2_conn_reset_stream(w.sv.c, open[k], H2_CANCEL);
            open[k] = open[--n_open];
        }
        raw_collect(&w);
        raw_skip_output(&w);
    }
    assert_int_equal(h2_conn_open_streams(w.sv.c), n_open);
    for (size_t k = 0; k < n_open; k++)
        assert_ptr_equal(h2_stream_data(w.sv.c, open[k]), (void *)(uintptr_t)open[k]);
    assert_int_equal(w.sv.err, 0);
    raw_free(&w);
}

/* Every allocation failing in turn: no crash, no leak, errors reported. */
static void test_oom(void **state)
{
    (void)state;
    for (long k = 0; k < 200; k++) {
        mem_fail_after(k, 1);
        struct h2_conn *a = h2_conn_new(H2_CLIENT, NULL);
        struct h2_conn *b = h2_conn_new(H2_SERVER, NULL);
        if (a && b) {
            int64_t id = h2_conn_request(a, req_hdrs, N_REQ, false);
            if (id > 0 && h2_conn_submit_data(a, (uint32_t)id, (const uint8_t *)"abc", 3, true))
                assert_true(a->failed);
            size_t len;
            const uint8_t *p = h2_conn_output(a, &len);
            size_t off = 0;
            struct h2_event ev;
            int r = 1;
            while (off < len && r > 0) {
                r = h2_conn_feed(b, p + off, len - off, &ev);
                if (r > 0)
                    off += (size_t)r;
                if (ev.type == H2_EV_HEADERS &&
                    h2_conn_submit_headers(b, ev.stream_id, resp_hdrs, 2, true) == 0)
                    h2_conn_reset_stream(b, ev.stream_id, H2_NO_ERROR);
            }
            assert_true(r >= 0 || r == -H2_INTERNAL_ERROR || r == -H2_REFUSED_STREAM);
        }
        mem_fail_after(-1, 0);
        h2_conn_free(a);
        h2_conn_free(b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exchange),
        cmocka_unit_test(test_exchange_bytewise),
        cmocka_unit_test(test_many_streams_bytewise),
        cmocka_unit_test(test_flow_control_to_client),
        cmocka_unit_test(test_blob_pieces),
        cmocka_unit_test(test_conn_queued),
        cmocka_unit_test(test_flow_control_connection_window),
        cmocka_unit_test(test_bad_preface),
        cmocka_unit_test(test_server_preface_settings),
        cmocka_unit_test(test_frame_too_large),
        cmocka_unit_test(test_settings_errors),
        cmocka_unit_test(test_client_rejects_push),
        cmocka_unit_test(test_ping),
        cmocka_unit_test(test_ping_flood),
        cmocka_unit_test(test_goaway),
        cmocka_unit_test(test_client_goaway),
        cmocka_unit_test(test_rst_stream),
        cmocka_unit_test(test_reset_by_us),
        cmocka_unit_test(test_window_update),
        cmocka_unit_test(test_send_windows),
        cmocka_unit_test(test_peer_max_frame),
        cmocka_unit_test(test_receive_windows),
        cmocka_unit_test(test_padding),
        cmocka_unit_test(test_continuation),
        cmocka_unit_test(test_send_continuation),
        cmocka_unit_test(test_stream_states),
        cmocka_unit_test(test_priority),
        cmocka_unit_test(test_bad_hpack),
        cmocka_unit_test(test_request_validation),
        cmocka_unit_test(test_content_length),
        cmocka_unit_test(test_max_concurrent_streams),
        cmocka_unit_test(test_header_list_size),
        cmocka_unit_test(test_stream_table),
        cmocka_unit_test(test_oom),
    };
    return cmocka_run_group_tests_name("h2", tests, NULL, NULL);
}
