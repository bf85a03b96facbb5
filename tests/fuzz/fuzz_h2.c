/* fuzz_h2.c - libFuzzer target: hostile bytes into an h2_conn.
 *
 * The first input byte picks the role (server: the preface and an empty
 * SETTINGS are fed first so the fuzzer starts past them; client: a request
 * is opened first), smaller windows, and how the rest is cut into reads.  The connection is
 * driven the way the server and client drive it: every request is answered
 * with headers, data and trailers, some streams are reset, the output is
 * drained every few frames.
 */
// deps: h2.c hpack.c mem.c
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "h2.h"
#include "mem.h"

static const struct h2_header fz_req[] = {
    {":method", 7, "POST", 4},         {":scheme", 7, "http", 4},
    {":path", 5, "/etcdserverpb.KV/Put", 20}, {":authority", 10, "x", 1},
    {"te", 2, "trailers", 8},
};
static const struct h2_header fz_resp[] = {
    {":status", 7, "200", 3},
    {"content-type", 12, "application/grpc", 16},
};
static const struct h2_header fz_trailers[] = {{"grpc-status", 11, "0", 1}};

/* Writes all of the output, or only part of it, like a full socket. */
static void fz_drain(struct h2_conn *c, bool all)
{
    size_t len;
    h2_conn_output(c, &len);
    h2_conn_output_done(c, all ? len : len / 2);
}

static void fz_react(struct h2_conn *c, const struct h2_event *ev, unsigned k)
{
    static uint8_t body[40000];
    if (ev->type == H2_EV_HEADERS && (k % 5) != 4) {
        h2_stream_set_data(c, ev->stream_id, (void *)body);
        if (h2_conn_submit_headers(c, ev->stream_id, fz_resp, 2, false) == 0 &&
            h2_conn_submit_data(c, ev->stream_id, body, (k * 977u) % sizeof body, false) == 0 &&
            h2_conn_submit_headers(c, ev->stream_id, fz_trailers, 1, true) == 0)
            return;
    }
    if (ev->type == H2_EV_DATA && k % 7 == 3)
        h2_conn_reset_stream(c, ev->stream_id, H2_CANCEL);
    if (ev->type == H2_EV_DATA && k % 11 == 5 && h2_stream_data(c, ev->stream_id)) {
        if (h2_conn_submit_data(c, ev->stream_id, body, 100, true) < 0)
            return;
    }
    if (k % 97 == 13)
        h2_conn_ping(c, k);
    if (k % 131 == 17) {
        int64_t id = h2_conn_request(c, fz_req, 5, k & 1);
        (void)id;
    }
    (void)h2_stream_queued(c, ev->stream_id);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    struct h2_config cfg = {.max_concurrent_streams = 8,
                            .initial_window_size = (mode & 2) ? 100 : 0,
                            .max_header_list_size = 4096};
    bool client = mode & 1;
    struct h2_conn *c = h2_conn_new(client ? H2_CLIENT : H2_SERVER, &cfg);
    if (!c)
        return 0;
    struct mem_buf in = {0};
    if (client) {
        int64_t id = h2_conn_request(c, fz_req, 5, mode & 4);
        (void)id;
    } else if (mem_buf_append(&in, H2_PREFACE "\0\0\0\4\0\0\0\0\0\0\0\0\4\1\0\0\0\0",
                              H2_PREFACE_LEN + 18) < 0) {
        goto out; /* preface, SETTINGS and the ACK of ours, so our windows apply */
    }
    size_t chunk = (mode >> 3) ? (size_t)(mode >> 3) * 7 : size + 1;
    size_t pos = 0;
    unsigned k = 0;
    while (pos < size || in.len) {
        size_t take = size - pos < chunk ? size - pos : chunk;
        if (mem_buf_append(&in, data + pos, take) < 0)
            goto out;
        pos += take;
        for (;;) {
            struct h2_event ev;
            int r = h2_conn_feed(c, in.data, in.len, &ev);
            if (r < 0)
                goto out;
            if (r == 0)
                break;
            if (ev.type != H2_EV_NONE)
                fz_react(c, &ev, k);
            mem_buf_consume(&in, (size_t)r);
            if (++k % 4 == 0)
                fz_drain(c, k % 8 == 0);
        }
        if (take == 0)
            break;
    }
out:
    fz_drain(c, true);
    h2_conn_free(c);
    mem_buf_free(&in);
    return 0;
}
