/* test_grpc.c - gRPC calls over a real pair of h2 connections (client and
 * server, bytes shuttled in memory): framing, statuses, limits, streaming
 * and call lifetimes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "api.h"
#include "err.h"
#include "grpc.h"

/* ---- handlers under test ---- */

static struct grpc_call *pending;   /* unary call held for a later reply */
static int stream_msgs, stream_end_clean, stream_end_reset;

/* Range: echoes the key back as the value of one kv */
static void echo(struct grpc_call *call, void *reqp)
{
    struct api_range_req *req = reqp;
    if (req->limit == 99) { /* reply later */
        pending = call;
        return;
    }
    if (req->limit == 7)
        return grpc_call_fail(call, GRPC_OUT_OF_RANGE, "etcdserver: 100% done\n");
    struct api_kv *kv = mem_arena_zalloc(grpc_call_arena(call), sizeof *kv);
    assert_non_null(kv);
    kv->key = req->key;
    kv->value = req->key;
    struct api_range_resp resp = {.kvs = kv, .n_kvs = 1, .count = 1};
    grpc_call_reply(call, &api_range_resp_desc, &resp);
}

/* A response sent as an already encoded message in one-byte pieces (more
 * than fit on grpc.c's stack), the last few from a blob. */
static void send_in_pieces(struct grpc_call *call, const struct api_range_resp *resp)
{
    struct mem_buf b = {0};
    assert_int_equal(pb_encode(&api_range_resp_desc, resp, &b), 0);
    assert_true(b.len > 12);
    struct h2_blob *blob = h2_blob_new(b.data, b.len);
    assert_non_null(blob);
    struct h2_piece pc[64];
    assert_true(b.len <= 64);
    for (size_t i = 0; i < b.len; i++)
        pc[i] = i < b.len - 4 ? (struct h2_piece){b.data + i, 1, NULL}
                              : (struct h2_piece){blob->b_data + i, 1, blob};
    assert_int_equal(grpc_call_send_pieces(call, pc, b.len), 0);
    h2_blob_put(blob);
    mem_buf_free(&b);
}

static void stream_msg(struct grpc_call *call, void *reqp)
{
    struct api_range_req *req = reqp;
    stream_msgs++;
    struct api_range_resp resp = {.count = req->limit};
    if (req->limit == 43) {
        struct api_kv kv = {.key = req->key, .value = req->key};
        resp.kvs = &kv;
        resp.n_kvs = 1;
        send_in_pieces(call, &resp);
        return;
    }
    assert_int_equal(grpc_call_send(call, &api_range_resp_desc, &resp), 0);
    if (req->limit == 42)
        grpc_call_fail(call, GRPC_OK, NULL);
}

static void stream_end(struct grpc_call *call, bool reset)
{
    if (reset) {
        stream_end_reset++;
        return;
    }
    stream_end_clean++;
    grpc_call_fail(call, GRPC_OK, NULL);
}

static const struct grpc_method methods[] = {
    {"/t.S/Echo", &api_range_req_desc, false, echo, NULL},
    {"/t.S/Stream", &api_range_req_desc, true, stream_msg, stream_end},
    {0},
};

/* ---- a client/server pair ---- */

struct pair {
    struct h2_conn *cli, *srv;
    struct grpc_conn *gc;
    /* what the client saw, per stream (one stream at a time in these tests) */
    char status[8];
    char message[256];
    char resp_status[8];
    uint8_t data[1 << 16];
    size_t data_len;
    bool ended, reset;
};

static void shuttle(struct pair *p);

static void pair_init(struct pair *p, size_t max_msg)
{
    memset(p, 0, sizeof *p);
    struct h2_config cfg = {0};
    p->cli = h2_conn_new(H2_CLIENT, &cfg);
    p->srv = h2_conn_new(H2_SERVER, &cfg);
    assert_non_null(p->cli);
    assert_non_null(p->srv);
    struct grpc_limits lim = {.max_recv_msg = max_msg};
    p->gc = grpc_conn_new(p->srv, methods, &lim, NULL, NULL, NULL);
    assert_non_null(p->gc);
    shuttle(p);
}

static void pair_free(struct pair *p)
{
    grpc_conn_free(p->gc);
    h2_conn_free(p->srv);
    h2_conn_free(p->cli);
}

static void hcopy(char *dst, size_t cap, const struct h2_header *h)
{
    size_t n = h->value_len < cap - 1 ? h->value_len : cap - 1;
    memcpy(dst, h->value, n);
    dst[n] = 0;
}

/* Moves bytes both ways until neither side has anything to say. */
static void shuttle(struct pair *p)
{
    static uint8_t buf[1 << 20];
    for (int round = 0; round < 1000; round++) {
        bool moved = false;
        size_t n;
        const uint8_t *o = h2_conn_output(p->cli, &n);
        if (n) {
            assert_true(n <= sizeof buf);
            memcpy(buf, o, n);
            h2_conn_output_done(p->cli, n);
            size_t off = 0;
            while (off < n) {
                struct h2_event ev;
                int r = h2_conn_feed(p->srv, buf + off, n - off, &ev);
                assert_true(r > 0);
                off += (size_t)r;
                if (ev.type != H2_EV_NONE)
                    assert_int_equal(grpc_conn_event(p->gc, &ev), 0);
            }
            moved = true;
        }
        o = h2_conn_output(p->srv, &n);
        if (n) {
            assert_true(n <= sizeof buf);
            memcpy(buf, o, n);
            h2_conn_output_done(p->srv, n);
            size_t off = 0;
            while (off < n) {
                struct h2_event ev;
                int r = h2_conn_feed(p->cli, buf + off, n - off, &ev);
                assert_true(r > 0);
                off += (size_t)r;
                if (ev.type == H2_EV_HEADERS) {
                    for (size_t i = 0; i < ev.n_headers; i++) {
                        const struct h2_header *h = &ev.headers[i];
                        if (h->name_len == 11 && !memcmp(h->name, "grpc-status", 11))
                            hcopy(p->status, sizeof p->status, h);
                        else if (h->name_len == 12 && !memcmp(h->name, "grpc-message", 12))
                            hcopy(p->message, sizeof p->message, h);
                        else if (h->name_len == 7 && !memcmp(h->name, ":status", 7))
                            hcopy(p->resp_status, sizeof p->resp_status, h);
                    }
                } else if (ev.type == H2_EV_DATA) {
                    assert_true(p->data_len + ev.len <= sizeof p->data);
                    memcpy(p->data + p->data_len, ev.data, ev.len);
                    p->data_len += ev.len;
                } else if (ev.type == H2_EV_RESET) {
                    p->reset = true;
                }
                if (ev.end_stream)
                    p->ended = true;
            }
            moved = true;
        }
        if (!moved)
            return;
    }
    fail_msg("shuttle did not settle");
}

#define HDR(n, v) {n, sizeof n - 1, v, sizeof v - 1}

static uint32_t open_call(struct pair *p, const char *path, const char *ctype)
{
    struct h2_header h[] = {
        HDR(":method", "POST"), HDR(":scheme", "http"), {":path", 5, path, strlen(path)},
        HDR(":authority", "x"), {"content-type", 12, ctype, strlen(ctype)}, HDR("te", "trailers"),
    };
    p->status[0] = p->message[0] = p->resp_status[0] = 0;
    p->data_len = 0;
    p->ended = p->reset = false;
    int64_t sid = h2_conn_request(p->cli, h, 6, false);
    assert_true(sid > 0);
    return (uint32_t)sid;
}

static void send_msg(struct pair *p, uint32_t sid, const struct api_range_req *req, uint8_t flag,
                     bool end)
{
    struct mem_buf b = {0};
    assert_int_equal(mem_buf_reserve(&b, 5), 0);
    b.len = 5;
    assert_int_equal(pb_encode(&api_range_req_desc, req, &b), 0);
    size_t n = b.len - 5;
    b.data[0] = flag;
    b.data[1] = (uint8_t)(n >> 24);
    b.data[2] = (uint8_t)(n >> 16);
    b.data[3] = (uint8_t)(n >> 8);
    b.data[4] = (uint8_t)n;
    assert_int_equal(h2_conn_submit_data(p->cli, sid, b.data, b.len, end), 0);
    mem_buf_free(&b);
    shuttle(p);
}

static struct api_range_req key_req(const char *k, int64_t limit)
{
    struct api_range_req r = {.key = {(const uint8_t *)k, strlen(k)}, .limit = limit};
    return r;
}

/* decodes the n-th response message of the stream */
static struct api_range_resp nth_resp(struct pair *p, int nth, struct mem_arena *a)
{
    size_t off = 0;
    for (;;) {
        assert_true(off + 5 <= p->data_len);
        size_t len = (size_t)p->data[off + 1] << 24 | (size_t)p->data[off + 2] << 16 |
                     (size_t)p->data[off + 3] << 8 | p->data[off + 4];
        if (nth-- == 0) {
            struct api_range_resp r;
            assert_int_equal(pb_decode(&api_range_resp_desc, p->data + off + 5, len, &r, a), 0);
            return r;
        }
        off += 5 + len;
    }
}

/* ---- tests ---- */

static void test_unary_ok(void **state)
{
    (void)state;
    struct pair p;
    pair_init(&p, 4096);
    for (int i = 0; i < 3; i++) { /* several calls on one connection */
        uint32_t sid = open_call(&p, "/t.S/Echo", "application/grpc");
        struct api_range_req req = key_req("hello", 0);
        send_msg(&p, sid, &req, 0, true);
        assert_string_equal(p.resp_status, "200");
        assert_string_equal(p.status, "0");
        assert_true(p.ended);
        struct mem_arena a;
        mem_arena_init(&a, 0);
        struct api_range_resp r = nth_resp(&p, 0, &a);
        assert_int_equal(r.n_kvs, 1);
        assert_memory_equal(r.kvs[0].value.p, "hello", 5);
        mem_arena_free(&a);
    }
    assert_int_equal(grpc_conn_calls(p.gc), 0);
    pair_free(&p);
}

static void test_status_message_percent_encoded(void **state)
{
    (void)state;
    struct pair p;
    pair_init(&p, 4096);
    uint32_t sid = open_call(&p, "/t.S/Echo", "application/grpc+proto");
    struct api_range_req req = key_req("k", 7);
    send_msg(&p, sid, &req, 0, true);
    assert_string_equal(p.status, "11");
    assert_string_equal(p.message, "etcdserver: 100%25 done%0A");
    assert_int_equal(p.data_len, 0); /* trailers-only */
    char out[64];
    assert_int_equal(grpc_percent_encode("a%b\xff", out), 8);
    assert_string_equal(out, "a%25b%FF");
    pair_free(&p);
}

static void test_unknown_service_and_method(void **state)
{
    (void)state;
    struct pair p;
    pair_init(&p, 4096);
    open_call(&p, "/t.S/Nope", "application/grpc");
    shuttle(&p);
    assert_string_equal(p.status, "12");
    assert_string_equal(p.message, "unknown method Nope for service t.S");
    open_call(&p, "/x.Y/Z", "application/grpc");
    shuttle(&p);
    assert_string_equal(p.status, "12");
    assert_string_equal(p.message, "unknown service x.Y");
    open_call(&p, "/t.S/Echo", "text/plain");
    shuttle(&p);
    assert_string_equal(p.resp_status, "415");
    pair_free(&p);
}

static void test_bad_protobuf_compressed_and_oversized(void **state)
{
    (void)state;
    struct pair p;
    pair_init(&p, 64);
    uint32_t sid = open_call(&p, "/t.S/Echo", "application/grpc");
    static const uint8_t bad[] = {0, 0, 0, 0, 3, 0x0a, 0xff, 0xff};
    assert_int_equal(h2_conn_submit_data(p.cli, sid, bad, sizeof bad, true), 0);
    shuttle(&p);
    assert_string_equal(p.status, "13");
    sid = open_call(&p, "/t.S/Echo", "application/grpc");
    struct api_range_req req = key_req("k", 0);
    send_msg(&p, sid, &req, 1, true);
    assert_string_equal(p.status, "12");
    sid = open_call(&p, "/t.S/Echo", "application/grpc");
    char big[100];
    memset(big, 'x', sizeof big);
    req.key = (struct pb_bytes){(const uint8_t *)big, sizeof big};
    send_msg(&p, sid, &req, 0, true);
    assert_string_equal(p.status, "8");
    assert_string_equal(p.message, "grpc: received message larger than max (102 vs. 64)");
    /* a length prefix announcing a huge message is refused before buffering */
    sid = open_call(&p, "/t.S/Echo", "application/grpc");
    static const uint8_t huge[] = {0, 0x7f, 0xff, 0xff, 0xff, 1, 2, 3};
    assert_int_equal(h2_conn_submit_data(p.cli, sid, huge, sizeof huge, false), 0);
    shuttle(&p);
    assert_string_equal(p.status, "8");
    /* no message at all */
    sid = open_call(&p, "/t.S/Echo", "application/grpc");
    assert_int_equal(h2_conn_submit_data(p.cli, sid, NULL, 0, true), 0);
    shuttle(&p);
    assert_string_equal(p.status, "13");
    assert_int_equal(grpc_conn_calls(p.gc), 0);
    pair_free(&p);
}

static void test_message_split_across_frames(void **state)
{
    (void)state;
    struct pair p;
    pair_init(&p, 4096);
    uint32_t sid = open_call(&p, "/t.S/Echo", "application/grpc");
    struct mem_buf b = {0};
    struct api_range_req req = key_req("split-me", 0);
    assert_int_equal(mem_buf_reserve(&b, 5), 0);
    b.len = 5;
    assert_int_equal(pb_encode(&api_range_req_desc, &req, &b), 0);
    b.data[0] = 0;
    b.data[1] = b.data[2] = b.data[3] = 0;
    b.data[4] = (uint8_t)(b.len - 5);
    for (size_t i = 0; i < b.len; i++) { /* one byte per DATA frame */
        assert_int_equal(h2_conn_submit_data(p.cli, sid, b.data + i, 1, i + 1 == b.len), 0);
        shuttle(&p);
    }
    assert_string_equal(p.status, "0");
    mem_buf_free(&b);
    pair_free(&p);
}

static void test_async_unary_and_reset(void **state)
{
    (void)state;
    struct pair p;
    pair_init(&p, 4096);
    uint32_t sid = open_call(&p, "/t.S/Echo", "application/grpc");
    struct api_range_req req = key_req("later", 99);
    send_msg(&p, sid, &req, 0, true);
    assert_non_null(pending);
    assert_string_equal(p.status, ""); /* nothing yet */
    struct api_range_resp resp = {.count = 5};
    grpc_call_reply(pending, &api_range_resp_desc, &resp);
    pending = NULL;
    shuttle(&p);
    assert_string_equal(p.status, "0");
    /* the client gives up while the handler still holds the call */
    sid = open_call(&p, "/t.S/Echo", "application/grpc");
    send_msg(&p, sid, &req, 0, true);
    assert_non_null(pending);
    h2_conn_reset_stream(p.cli, sid, H2_CANCEL);
    shuttle(&p);
    assert_true(grpc_call_dead(pending));
    grpc_call_reply(pending, &api_range_resp_desc, &resp); /* dropped, and frees the call */
    pending = NULL;
    /* and the connection goes away while a call is pending */
    sid = open_call(&p, "/t.S/Echo", "application/grpc");
    send_msg(&p, sid, &req, 0, true);
    assert_non_null(pending);
    grpc_conn_free(p.gc);
    p.gc = NULL;
    assert_true(grpc_call_dead(pending));
    grpc_call_fail(pending, GRPC_UNAVAILABLE, "gone");
    pending = NULL;
    h2_conn_free(p.srv);
    h2_conn_free(p.cli);
}

static void test_streaming(void **state)
{
    (void)state;
    struct pair p;
    pair_init(&p, 4096);
    stream_msgs = stream_end_clean = stream_end_reset = 0;
    uint32_t sid = open_call(&p, "/t.S/Stream", "application/grpc");
    for (int i = 1; i <= 3; i++) {
        struct api_range_req req = key_req("s", i);
        send_msg(&p, sid, &req, 0, false);
    }
    assert_int_equal(stream_msgs, 3);
    assert_false(p.ended);
    struct mem_arena a;
    mem_arena_init(&a, 0);
    assert_int_equal(nth_resp(&p, 2, &a).count, 3);
    struct api_range_req pieces = key_req("sent-in-pieces", 43);
    send_msg(&p, sid, &pieces, 0, false);
    struct api_range_resp pr = nth_resp(&p, 3, &a);
    assert_int_equal(pr.count, 43);
    assert_int_equal(pr.n_kvs, 1);
    assert_memory_equal(pr.kvs[0].value.p, "sent-in-pieces", 14);
    assert_int_equal(h2_conn_submit_data(p.cli, sid, NULL, 0, true), 0); /* half-close */
    shuttle(&p);
    assert_int_equal(stream_end_clean, 1);
    assert_string_equal(p.status, "0");
    assert_true(p.ended);
    /* the server ends the stream itself */
    sid = open_call(&p, "/t.S/Stream", "application/grpc");
    struct api_range_req req = key_req("s", 42);
    send_msg(&p, sid, &req, 0, false);
    assert_string_equal(p.status, "0");
    /* the client resets a live stream */
    sid = open_call(&p, "/t.S/Stream", "application/grpc");
    req.limit = 1;
    send_msg(&p, sid, &req, 0, false);
    h2_conn_reset_stream(p.cli, sid, H2_CANCEL);
    shuttle(&p);
    assert_int_equal(stream_end_reset, 1);
    /* a live stream when the connection goes */
    open_call(&p, "/t.S/Stream", "application/grpc");
    shuttle(&p);
    assert_int_equal(grpc_conn_calls(p.gc), 1);
    mem_arena_free(&a);
    pair_free(&p);
    assert_int_equal(stream_end_reset, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unary_ok),
        cmocka_unit_test(test_status_message_percent_encoded),
        cmocka_unit_test(test_unknown_service_and_method),
        cmocka_unit_test(test_bad_protobuf_compressed_and_oversized),
        cmocka_unit_test(test_message_split_across_frames),
        cmocka_unit_test(test_async_unary_and_reset),
        cmocka_unit_test(test_streaming),
    };
    return cmocka_run_group_tests_name("grpc", tests, NULL, NULL);
}
