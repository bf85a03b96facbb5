/* test_watch.c - watch.c through real gRPC streams: a client h2 connection
 * per simulated client, bytes shuttled in memory to a server h2 + grpc.c
 * connection whose Watch method is the hub's, against a real mvcc store.
 * A client that "stops reading" simply gets no bytes moved to it, so the
 * server's flow control and queues behave as with a real slow peer.
 *
 * Directed tests follow etcd 3.4's v3rpc/watch.go and mvcc/watchable_store.go
 * (create, ids, errors, cancel, progress, filters, prev_kv, compaction,
 * fragments, slow streams, missed notifies, allocation failures); a random
 * test runs puts, deletes, txns and compactions with watches of random
 * ranges, start revisions, filters and speeds, and checks every watch got
 * exactly the events a model of etcd says it should, in order.  Time is an
 * input (watch_run's now): nothing sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../watch.c"

/* ---- the fixture: a store, a hub and simulated clients ---- */

#define CLUSTER 0xcdf818194e3a8c32ull
#define MEMBER 0x8e9e05c52164694dull
#define TERM 2

#define MAX_CONNS 6
#define MAX_STREAMS 12
#define MAX_WATCHES 400

enum { TW_PENDING, TW_LIVE, TW_FAILED, TW_CANCELED, TW_COMPACTED };

/* A watch as its client sees it. */
struct twatch {
    int conn, stream;
    uint8_t key[8], end[8];
    size_t klen, elen;
    int64_t start;
    bool prev_kv, noput, nodelete, fragment, progress;
    bool expect_fail;
    int64_t want_id; /* 0 = auto */
    int state;
    int64_t id;
    int64_t created_rev;
    int64_t compact_rev;
    int64_t last_hdr_rev;
    size_t n_progress;
    size_t n_msgs, n_frag_msgs; /* responses with events, of them fragments */
    struct api_event *evs; /* received, fragments joined; malloc'd array */
    size_t n_evs, cap_evs;
    size_t n_frag; /* events of an unfinished fragmented response at the end of evs */
    bool in_frag;
    bool cancel_sent;
};

struct tstream {
    uint32_t sid;
    bool open, ended;
    char status[8];
    struct mem_buf in;
    struct twatch *pending[MAX_WATCHES]; /* creates awaiting their response, FIFO */
    size_t n_pending, pending_head;
    size_t n_progress_req; /* answers to progress requests */
    int64_t last_progress_req_rev;
};

struct tconn {
    struct h2_conn *cli, *srv;
    struct grpc_conn *gc;
    bool paused; /* the client reads nothing */
    struct tstream st[MAX_STREAMS];
    size_t n_st;
};

static struct loop *lp;
static struct mvcc *m;
static struct watch_hub *hub;
static struct tconn conns[MAX_CONNS];
static size_t n_conns;
static struct twatch watches[MAX_WATCHES];
static size_t n_watches;
static struct mem_arena keep; /* copies of everything received */
static struct mem_arena scratch;
static uint64_t now;
static long fail_msg_at = -1; /* the n-th allocation of the next on_message fails */
static bool nomem_ok;         /* a create may be refused for lack of memory */

static void t_watch_msg(struct grpc_call *call, void *req)
{
    if (fail_msg_at >= 0)
        mem_fail_after(fail_msg_at, 0);
    fail_msg_at = -1;
    watch_on_message(grpc_call_ctx(call), call, req);
    mem_fail_after(-1, 0);
}

static void ident(void *ctx, struct api_header *hdr)
{
    assert_ptr_equal(ctx, &conns);
    hdr->cluster_id = CLUSTER;
    hdr->member_id = MEMBER;
    hdr->raft_term = TERM;
}

/* What the hub holds with no watch left: its (empty) bucket array. */
static size_t idle_bytes(void)
{
    return hub->h_n_buckets * sizeof *hub->h_buckets;
}

static const struct grpc_method methods[] = {
    {"/etcdserverpb.Watch/Watch", &api_watch_req_desc, true, t_watch_msg, watch_on_end},
    {0},
};

static void fixture(size_t max_resp, uint64_t progress_ms, size_t queue_max)
{
    lp = loop_new();
    assert_non_null(lp);
    m = mvcc_new();
    assert_non_null(m);
    struct watch_config cfg = {.max_resp_bytes = max_resp, .progress_ms = progress_ms,
                               .queue_max = queue_max, .ident = ident, .ident_ctx = &conns};
    hub = watch_hub_new(lp, m, &cfg);
    assert_non_null(hub);
    memset(conns, 0, sizeof conns);
    memset(watches, 0, sizeof watches);
    n_conns = n_watches = 0;
    mem_arena_init(&keep, 0);
    mem_arena_init(&scratch, 0);
    now = loop_now_ms(lp);
}

static void conn_close(struct tconn *c)
{
    for (size_t i = 0; i < c->n_st; i++)
        mem_buf_free(&c->st[i].in);
    grpc_conn_free(c->gc);
    h2_conn_free(c->srv);
    h2_conn_free(c->cli);
    c->gc = NULL;
}

static void fixture_free(void)
{
    for (size_t i = 0; i < n_conns; i++)
        if (conns[i].gc)
            conn_close(&conns[i]);
    assert_int_equal(watch_hub_watchers(hub), 0);
    assert_int_equal(watch_hub_bytes(hub), idle_bytes());
    watch_hub_free(hub);
    mvcc_free(m);
    loop_free(lp);
    for (size_t i = 0; i < n_watches; i++)
        free(watches[i].evs);
    mem_arena_free(&keep);
    mem_arena_free(&scratch);
}

/* A client whose windows are small (64 KiB), so a client that stops
 * reading soon leaves the server queueing. */
static struct tconn *conn_new(void)
{
    assert_true(n_conns < MAX_CONNS);
    struct tconn *c = &conns[n_conns++];
    struct h2_config cc = {.initial_window_size = 65535, .conn_window_size = 65535};
    struct h2_config sc = {0};
    c->cli = h2_conn_new(H2_CLIENT, &cc);
    c->srv = h2_conn_new(H2_SERVER, &sc);
    assert_non_null(c->cli);
    assert_non_null(c->srv);
    struct grpc_limits lim = {.max_recv_msg = 4 << 20};
    c->gc = grpc_conn_new(c->srv, methods, &lim, hub, NULL, NULL);
    assert_non_null(c->gc);
    return c;
}

#define HDR(n, v) {n, sizeof n - 1, v, sizeof v - 1}

static struct tstream *stream_open(struct tconn *c)
{
    static const struct h2_header h[] = {
        HDR(":method", "POST"), HDR(":scheme", "http"), HDR(":path", "/etcdserverpb.Watch/Watch"),
        HDR(":authority", "x"), HDR("content-type", "application/grpc"), HDR("te", "trailers"),
    };
    assert_true(c->n_st < MAX_STREAMS);
    struct tstream *s = &c->st[c->n_st++];
    int64_t sid = h2_conn_request(c->cli, h, 6, false);
    assert_true(sid > 0);
    s->sid = (uint32_t)sid;
    s->open = true;
    return s;
}

static void send_req(struct tconn *c, struct tstream *s, const struct api_watch_req *req)
{
    struct mem_buf b = {0};
    assert_int_equal(mem_buf_reserve(&b, 5), 0);
    b.len = 5;
    assert_int_equal(pb_encode(&api_watch_req_desc, req, &b), 0);
    size_t n = b.len - 5;
    b.data[0] = 0;
    b.data[1] = (uint8_t)(n >> 24);
    b.data[2] = (uint8_t)(n >> 16);
    b.data[3] = (uint8_t)(n >> 8);
    b.data[4] = (uint8_t)n;
    assert_int_equal(h2_conn_submit_data(c->cli, s->sid, b.data, b.len, false), 0);
    mem_buf_free(&b);
}

/* ---- what the client does with responses ---- */

static struct pb_bytes keep_bytes(struct pb_bytes b)
{
    struct pb_bytes r = {NULL, b.len};
    if (b.len) {
        r.p = mem_arena_dup(&keep, b.p, b.len);
        assert_non_null(r.p);
    }
    return r;
}

static struct api_kv *keep_kv(const struct api_kv *kv)
{
    if (!kv)
        return NULL;
    struct api_kv *k = mem_arena_dup(&keep, kv, sizeof *kv);
    assert_non_null(k);
    k->key = keep_bytes(kv->key);
    k->value = keep_bytes(kv->value);
    return k;
}

static struct twatch *find_watch(int ci, int si, int64_t id)
{
    for (size_t i = 0; i < n_watches; i++) {
        struct twatch *w = &watches[i];
        if (w->conn == ci && w->stream == si && w->id == id &&
            (w->state == TW_LIVE || w->state == TW_COMPACTED))
            return w;
    }
    return NULL;
}

static void add_event(struct twatch *w, const struct api_event *e)
{
    if (w->n_evs == w->cap_evs) {
        w->cap_evs = w->cap_evs ? w->cap_evs * 2 : 16;
        w->evs = realloc(w->evs, w->cap_evs * sizeof *w->evs);
        assert_non_null(w->evs);
    }
    struct api_event *d = &w->evs[w->n_evs++];
    d->type = e->type;
    d->kv = keep_kv(e->kv);
    d->prev_kv = keep_kv(e->prev_kv);
    assert_non_null(d->kv);
}

static void on_response(int ci, int si, const struct api_watch_resp *r)
{
    struct tstream *s = &conns[ci].st[si];
    assert_non_null(r->header);
    assert_int_equal(r->header->cluster_id, CLUSTER);
    assert_int_equal(r->header->member_id, MEMBER);
    assert_int_equal(r->header->raft_term, TERM);
    if (r->created) {
        assert_true(s->pending_head < s->n_pending);
        struct twatch *w = s->pending[s->pending_head++];
        assert_int_equal(w->state, TW_PENDING);
        assert_int_equal(r->n_events, 0);
        assert_true(r->header->revision <= mvcc_rev(m));
        if (!w->expect_fail && r->canceled && nomem_ok &&
            r->cancel_reason.len == strlen(err_msg(ERR_NOMEM)) &&
            !memcmp(r->cancel_reason.p, err_msg(ERR_NOMEM), r->cancel_reason.len))
            w->expect_fail = true;
        if (w->expect_fail) {
            assert_true(r->canceled);
            assert_int_equal(r->watch_id, -1);
            assert_true(r->cancel_reason.len > 0);
            w->state = TW_FAILED;
            return;
        }
        assert_false(r->canceled);
        if (w->want_id)
            assert_int_equal(r->watch_id, w->want_id);
        w->id = r->watch_id;
        w->created_rev = r->header->revision;
        w->last_hdr_rev = r->header->revision;
        w->state = TW_LIVE;
        return;
    }
    if (r->watch_id == -1) { /* a progress request's answer */
        assert_int_equal(r->n_events, 0);
        assert_false(r->canceled);
        s->n_progress_req++;
        s->last_progress_req_rev = r->header->revision;
        return;
    }
    struct twatch *w = find_watch(ci, si, r->watch_id);
    assert_non_null(w);
    if (w->state == TW_COMPACTED) {
        /* only the answer to a cancel sent before the client saw it */
        assert_true(r->canceled && !r->compact_revision && w->cancel_sent);
        w->state = TW_CANCELED;
        return;
    }
    assert_int_equal(w->state, TW_LIVE);
    if (r->compact_revision) {
        assert_true(r->canceled);
        assert_int_equal(r->header->revision, 0);
        assert_int_equal(r->n_events, 0);
        /* sent when the compaction was done: maybe an older one than now;
         * the watch was behind it */
        assert_true(r->compact_revision <= mvcc_compact_main_rev(m));
        assert_true((w->start ? w->start : w->created_rev + 1) < r->compact_revision);
        if (w->n_evs)
            assert_true(w->evs[w->n_evs - 1].kv->mod_revision < r->compact_revision);
        w->compact_rev = r->compact_revision;
        w->state = TW_COMPACTED;
        return;
    }
    if (r->canceled) {
        assert_int_equal(r->n_events, 0);
        w->state = TW_CANCELED;
        return;
    }
    if (!r->n_events) { /* progress notification */
        assert_true(w->progress);
        assert_false(w->in_frag);
        assert_true(r->header->revision >= w->last_hdr_rev);
        w->last_hdr_rev = r->header->revision;
        w->n_progress++;
        return;
    }
    assert_true(r->fragment ? w->fragment : true);
    /* a part stays below the limit unless it is one event */
    if (w->fragment && hub->h_max_resp && r->n_events > 1)
        assert_true(pb_encoded_size(&api_watch_resp_desc, r) < hub->h_max_resp);
    w->n_msgs++;
    w->n_frag_msgs += r->fragment;
    for (size_t i = 0; i < r->n_events; i++)
        add_event(w, &r->events[i]);
    w->in_frag = r->fragment;
    /* the header is at least the revision of the last event */
    assert_true(r->header->revision >= r->events[r->n_events - 1].kv->mod_revision);
    assert_true(r->header->revision >= w->last_hdr_rev);
    w->last_hdr_rev = r->header->revision;
}

/* Frames and decodes what arrived on stream si of connection ci. */
static void on_data(int ci, int si)
{
    struct tstream *s = &conns[ci].st[si];
    size_t off = 0;
    while (s->in.len - off >= 5) {
        const uint8_t *p = s->in.data + off;
        size_t len = (size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | p[4];
        if (s->in.len - off - 5 < len)
            break;
        uint8_t *copy = mem_arena_dup(&scratch, p + 5, len ? len : 1);
        assert_non_null(copy);
        struct api_watch_resp r;
        assert_int_equal(pb_decode(&api_watch_resp_desc, copy, len, &r, &scratch), 0);
        /* byte for byte what pb.c writes for the response, however the hub
         * put it together (live events are written from shared pieces) */
        struct mem_buf re = {0};
        assert_int_equal(pb_encode(&api_watch_resp_desc, &r, &re), 0);
        assert_int_equal(re.len, len);
        assert_memory_equal(re.data, p + 5, len);
        mem_buf_free(&re);
        on_response(ci, si, &r);
        off += 5 + len;
    }
    mem_buf_consume(&s->in, off);
    mem_arena_reset(&scratch);
}

static int stream_index(struct tconn *c, uint32_t sid)
{
    for (size_t i = 0; i < c->n_st; i++)
        if (c->st[i].sid == sid)
            return (int)i;
    fail_msg("unknown stream %u", sid);
    return -1;
}

static bool hcopy_is(const struct h2_header *h, const char *name)
{
    return h->name_len == strlen(name) && !memcmp(h->name, name, h->name_len);
}

/* Moves bytes both ways (server to client only when the client reads)
 * until nothing moves. */
static void shuttle_conn(int ci)
{
    struct tconn *c = &conns[ci];
    for (int round = 0; round < 100000; round++) {
        bool moved = false;
        size_t n;
        const uint8_t *o = h2_conn_output(c->cli, &n);
        if (n) {
            uint8_t *buf = malloc(n);
            assert_non_null(buf);
            memcpy(buf, o, n);
            h2_conn_output_done(c->cli, n);
            bool dead = false;
            for (size_t off = 0; off < n && !dead;) {
                struct h2_event ev;
                int r = h2_conn_feed(c->srv, buf + off, n - off, &ev);
                /* only an allocation failure may break a connection here */
                dead = r < 0 || (ev.type != H2_EV_NONE && grpc_conn_event(c->gc, &ev) < 0);
                assert_true(!dead || nomem_ok);
                off += r > 0 ? (size_t)r : 0;
            }
            free(buf);
            if (dead) {
                for (size_t i = 0; i < c->n_st; i++)
                    c->st[i].ended = true;
                conn_close(c);
                return;
            }
            moved = true;
        }
        /* the server's output comes in several stretches when it
         * references shared event bytes: frames span them */
        n = c->paused ? 0 : h2_conn_unsent(c->srv);
        if (n) {
            uint8_t *buf = malloc(n);
            assert_non_null(buf);
            for (size_t got = 0, k; got < n; got += k) {
                o = h2_conn_output(c->srv, &k);
                assert_true(k > 0);
                k = k < n - got ? k : n - got; /* output_done may queue more */
                memcpy(buf + got, o, k);
                h2_conn_output_done(c->srv, k);
            }
            for (size_t off = 0; off < n;) {
                struct h2_event ev;
                int r = h2_conn_feed(c->cli, buf + off, n - off, &ev);
                assert_true(r > 0);
                off += (size_t)r;
                if (ev.type == H2_EV_DATA) {
                    int si = stream_index(c, ev.stream_id);
                    assert_int_equal(mem_buf_append(&c->st[si].in, ev.data, ev.len), 0);
                    on_data(ci, si);
                } else if (ev.type == H2_EV_HEADERS) {
                    int si = stream_index(c, ev.stream_id);
                    for (size_t i = 0; i < ev.n_headers; i++)
                        if (hcopy_is(&ev.headers[i], "grpc-status")) {
                            size_t l = ev.headers[i].value_len < 7 ? ev.headers[i].value_len : 7;
                            memcpy(c->st[si].status, ev.headers[i].value, l);
                            c->st[si].status[l] = 0;
                        }
                    if (ev.end_stream)
                        c->st[si].ended = true;
                } else if (ev.type == H2_EV_RESET) {
                    conns[ci].st[stream_index(c, ev.stream_id)].ended = true;
                }
            }
            free(buf);
            moved = true;
        }
        if (!moved)
            return;
    }
    fail_msg("shuttle did not settle");
}

static void shuttle(void)
{
    for (size_t i = 0; i < n_conns; i++)
        if (conns[i].gc)
            shuttle_conn((int)i);
}

/* Whether a watch's stream still serves it. */
static bool stream_alive(const struct twatch *w)
{
    const struct tconn *c = &conns[w->conn];
    return c->gc && !c->st[w->stream].ended;
}

/* Timer runs and shuttles until every watch is synced and quiet. */
static void settle(void)
{
    for (int i = 0; i < 100000; i++) {
        shuttle();
        watch_run(hub, now);
        shuttle();
        if (!watch_hub_unsynced(hub))
            return;
        now += WATCH_RETRY_MS;
    }
    fail_msg("watches did not catch up");
}

/* ---- requests ---- */

struct wopts {
    const char *key, *end; /* end NULL: single key; "\0" is written "" with open */
    bool open;
    int64_t start;
    bool prev_kv, noput, nodelete, fragment, progress;
    int64_t id;
    bool expect_fail;
};

static struct twatch *watch_new(int ci, int si, const struct wopts *o)
{
    assert_true(n_watches < MAX_WATCHES);
    struct twatch *w = &watches[n_watches++];
    memset(w, 0, sizeof *w);
    w->conn = ci;
    w->stream = si;
    w->klen = strlen(o->key);
    assert_true(w->klen < sizeof w->key && (!o->end || strlen(o->end) < sizeof w->end));
    memcpy(w->key, o->key, w->klen);
    if (o->open) {
        w->end[0] = 0;
        w->elen = 1;
    } else if (o->end) {
        w->elen = strlen(o->end);
        memcpy(w->end, o->end, w->elen);
    }
    w->start = o->start;
    w->prev_kv = o->prev_kv;
    w->noput = o->noput;
    w->nodelete = o->nodelete;
    w->fragment = o->fragment;
    w->progress = o->progress;
    w->want_id = o->id;
    w->expect_fail = o->expect_fail;
    w->state = TW_PENDING;

    struct tstream *s = &conns[ci].st[si];
    s->pending[s->n_pending++] = w;
    int32_t filters[2];
    size_t nf = 0;
    if (o->noput)
        filters[nf++] = API_WATCH_NOPUT;
    if (o->nodelete)
        filters[nf++] = API_WATCH_NODELETE;
    struct api_watch_create_req cr = {
        .key = {w->key, w->klen}, .range_end = {w->end, w->elen}, .start_revision = o->start,
        .progress_notify = o->progress, .filters = nf ? filters : NULL, .n_filters = nf,
        .prev_kv = o->prev_kv, .watch_id = o->id, .fragment = o->fragment};
    struct api_watch_req req = {.create_request = &cr};
    send_req(&conns[ci], s, &req);
    return w;
}

static void watch_cancel_req(struct twatch *w)
{
    w->cancel_sent = true;
    struct api_watch_cancel_req cr = {.watch_id = w->id};
    struct api_watch_req req = {.cancel_request = &cr};
    send_req(&conns[w->conn], &conns[w->conn].st[w->stream], &req);
}

/* ---- writes, and the history they make ---- */

struct hev {
    struct mvcc_event ev; /* pointers into keep */
};

static struct hev *hist;
static size_t n_hist, cap_hist;
static int64_t last_compact; /* the largest compaction so far, 0 if none */

static void record_write(void)
{
    for (size_t i = 0; i < mvcc_last_n_events(m); i++) {
        if (n_hist == cap_hist) {
            cap_hist = cap_hist ? cap_hist * 2 : 256;
            hist = realloc(hist, cap_hist * sizeof *hist);
            assert_non_null(hist);
        }
        struct mvcc_event *e = &hist[n_hist++].ev;
        mvcc_last_event(m, i, e);
        e->kv.key = keep_bytes(e->kv.key);
        e->kv.value = keep_bytes(e->kv.value);
        e->prev.key = keep_bytes(e->prev.key);
        e->prev.value = keep_bytes(e->prev.value);
    }
}

static void wput(const char *k, const char *v)
{
    struct api_put_req q = {.key = {(const uint8_t *)k, strlen(k)},
                            .value = {(const uint8_t *)v, strlen(v)}};
    struct api_put_resp r = {0};
    assert_int_equal(mvcc_put(m, &q, &scratch, &r), 0);
    record_write();
    watch_hub_notify(hub);
}

static void wdel(const char *k, const char *end)
{
    struct api_delete_req q = {.key = {(const uint8_t *)k, strlen(k)}};
    if (end)
        q.range_end = (struct pb_bytes){(const uint8_t *)end, end[0] ? strlen(end) : 1};
    struct api_delete_resp r = {0};
    assert_int_equal(mvcc_delete(m, &q, &scratch, &r), 0);
    record_write();
    watch_hub_notify(hub);
}

/* Between tests: the history belongs to one store. */
static int reset_history(void **state)
{
    (void)state;
    free(hist);
    hist = NULL;
    n_hist = cap_hist = 0;
    last_compact = 0;
    return 0;
}

/* ---- checking a watch against the history ---- */

static bool in_span(const struct twatch *w, struct pb_bytes k)
{
    const uint8_t zero = 0;
    const uint8_t *key = w->klen ? w->key : &zero;
    size_t klen = w->klen ? w->klen : 1;
    int c = watch_bcmp(k.p, k.len, key, klen);
    if (!w->elen)
        return c == 0;
    if (c < 0)
        return false;
    if (w->elen == 1 && w->end[0] == 0)
        return true;
    return watch_bcmp(k.p, k.len, w->end, w->elen) < 0;
}

static void same_kv(const struct api_kv *e, const struct api_kv *a)
{
    assert_non_null(a);
    assert_int_equal(a->key.len, e->key.len);
    assert_memory_equal(a->key.p, e->key.p, e->key.len);
    assert_int_equal(a->value.len, e->value.len);
    if (e->value.len)
        assert_memory_equal(a->value.p, e->value.p, e->value.len);
    assert_int_equal(a->create_revision, e->create_revision);
    assert_int_equal(a->mod_revision, e->mod_revision);
    assert_int_equal(a->version, e->version);
    assert_int_equal(a->lease, e->lease);
}

/* The events etcd sends w, from the history: in its span, from its start
 * revision, not filtered; every one of them if the watch is live,
 * a prefix if it was canceled or compacted. */
static void check_watch(const struct twatch *w)
{
    if (w->state == TW_FAILED || w->state == TW_PENDING)
        return;
    int64_t from = w->start ? w->start : w->created_rev + 1;
    size_t got = 0;
    for (size_t i = 0; i < n_hist; i++) {
        const struct mvcc_event *e = &hist[i].ev;
        if (e->kv.mod_revision < from || !in_span(w, e->kv.key))
            continue;
        if ((e->type == API_EVENT_PUT && w->noput) || (e->type == API_EVENT_DELETE && w->nodelete))
            continue;
        if (got == w->n_evs) {
            if (w->state == TW_LIVE && stream_alive(w))
                fail_msg("watch %" PRId64 " missed the event at %" PRId64, w->id,
                         e->kv.mod_revision);
            break;
        }
        const struct api_event *a = &w->evs[got++];
        assert_int_equal(a->type, e->type);
        same_kv(&e->kv, a->kv);
        if (w->prev_kv && e->has_prev) {
            /* a revision read from history at the compacted revision has
             * no readable predecessor, as in etcd */
            if (a->prev_kv || e->kv.mod_revision > last_compact)
                same_kv(&e->prev, a->prev_kv);
        } else {
            assert_null(a->prev_kv);
        }
    }
    assert_int_equal(got, w->n_evs);
    assert_true(!w->in_frag || !stream_alive(w));
}

static void check_all(void)
{
    for (size_t i = 0; i < n_watches; i++)
        check_watch(&watches[i]);
}

/* ---- directed tests ---- */

static void test_create_cancel(void **state)
{
    (void)state;
    fixture(0, 0, 0);
    struct tconn *c = conn_new();
    stream_open(c);
    wput("a", "1"); /* 2 */
    struct twatch *w0 = watch_new(0, 0, &(struct wopts){.key = "a"});
    struct twatch *w1 = watch_new(0, 0, &(struct wopts){.key = "a", .end = "b"});
    struct twatch *w7 = watch_new(0, 0, &(struct wopts){.key = "x", .id = 7});
    /* a duplicate client id, an empty range (etcd checks the range first) */
    watch_new(0, 0, &(struct wopts){.key = "x", .id = 7, .expect_fail = true});
    watch_new(0, 0, &(struct wopts){.key = "b", .end = "a", .id = 7, .expect_fail = true});
    watch_new(0, 0, &(struct wopts){.key = "b", .end = "b", .expect_fail = true});
    shuttle();
    assert_int_equal(w0->id, 0);
    assert_int_equal(w1->id, 1);
    assert_int_equal(w7->id, 7);
    assert_int_equal(w0->created_rev, 2);
    for (size_t i = 3; i < n_watches; i++)
        assert_int_equal(watches[i].state, TW_FAILED);
    assert_int_equal(watch_hub_watchers(hub), 3);

    /* auto ids skip ids in use: 2..6 are free, then 7 is taken */
    struct twatch *ws[6];
    for (int i = 0; i < 6; i++)
        ws[i] = watch_new(0, 0, &(struct wopts){.key = "q"});
    shuttle();
    assert_int_equal(ws[4]->id, 6);
    assert_int_equal(ws[5]->id, 8);

    wput("a", "2"); /* 3 */
    wput("ab", "1"); /* 4 */
    shuttle();
    assert_int_equal(w0->n_evs, 1);
    assert_int_equal(w1->n_evs, 2);

    /* cancel: answered with canceled; an unknown id is not answered */
    watch_cancel_req(w1);
    struct api_watch_cancel_req cr = {.watch_id = 99};
    struct api_watch_req req = {.cancel_request = &cr};
    send_req(c, &c->st[0], &req);
    /* a progress request: watch_id -1 at the current revision */
    struct api_watch_progress_req pr = {0};
    struct api_watch_req preq = {.progress_request = &pr};
    send_req(c, &c->st[0], &preq);
    shuttle();
    assert_int_equal(w1->state, TW_CANCELED);
    assert_int_equal(c->st[0].n_progress_req, 1);
    assert_int_equal(c->st[0].last_progress_req_rev, 4);
    wput("ab", "2");
    shuttle();
    assert_int_equal(w1->n_evs, 2);
    check_all();

    /* a half-close keeps the stream serving; a reset frees its watches */
    assert_int_equal(h2_conn_submit_data(c->cli, c->st[0].sid, NULL, 0, true), 0);
    shuttle();
    wput("a", "3");
    shuttle();
    assert_int_equal(w0->n_evs, 2);
    assert_false(c->st[0].ended);
    h2_conn_reset_stream(c->cli, c->st[0].sid, H2_CANCEL);
    shuttle();
    assert_int_equal(watch_hub_watchers(hub), 0);
    assert_int_equal(watch_hub_bytes(hub), idle_bytes());
    check_all();
    fixture_free();
}

static void test_start_revisions(void **state)
{
    (void)state;
    fixture(0, 0, 0);
    conn_new();
    stream_open(&conns[0]);
    wput("a", "1"); /* 2 */
    wput("b", "1"); /* 3 */
    wdel("a", NULL); /* 4 */
    wput("a", "2"); /* 5 */
    /* from history, from the start, from the next and a future revision */
    watch_new(0, 0, &(struct wopts){.key = "a", .open = true, .start = 1});
    watch_new(0, 0, &(struct wopts){.key = "a", .start = 3, .prev_kv = true});
    watch_new(0, 0, &(struct wopts){.key = "", .open = true, .prev_kv = true});
    struct twatch *fut = watch_new(0, 0, &(struct wopts){.key = "a", .start = 8});
    shuttle();
    assert_int_equal(watch_hub_unsynced(hub), 2);
    settle();
    assert_int_equal(watches[0].n_evs, 4);
    assert_int_equal(watches[1].n_evs, 2);
    assert_int_equal(watches[1].evs[1].type, API_EVENT_PUT);
    assert_null(watches[1].evs[1].prev_kv); /* a create: nothing at 4 */
    wput("a", "3"); /* 6 */
    wput("a", "4"); /* 7 */
    wput("a", "5"); /* 8 */
    shuttle();
    assert_int_equal(fut->n_evs, 1);
    assert_int_equal(fut->evs[0].kv->mod_revision, 8);
    check_all();
    fixture_free();
}

static void test_filters_prev_kv(void **state)
{
    (void)state;
    fixture(0, 0, 0);
    conn_new();
    stream_open(&conns[0]);
    watch_new(0, 0, &(struct wopts){.key = "k", .end = "l", .noput = true, .prev_kv = true});
    watch_new(0, 0, &(struct wopts){.key = "k", .end = "l", .nodelete = true});
    watch_new(0, 0, &(struct wopts){.key = "k", .end = "l", .noput = true, .nodelete = true});
    watch_new(0, 0, &(struct wopts){.key = "k1", .prev_kv = true});
    shuttle();
    wput("k1", "a");
    wput("k2", "b");
    wput("k1", "c");
    wdel("k", "l"); /* both in one revision */
    shuttle();
    assert_int_equal(watches[0].n_evs, 2);
    assert_int_equal(watches[0].evs[0].type, API_EVENT_DELETE);
    assert_int_equal(watches[0].evs[0].kv->mod_revision, 5);
    assert_int_equal(watches[0].evs[0].kv->version, 0);
    assert_int_equal(watches[0].evs[0].prev_kv->value.len, 1);
    assert_int_equal(watches[1].n_evs, 3);
    assert_int_equal(watches[2].n_evs, 0);
    assert_int_equal(watches[3].n_evs, 3);
    assert_null(watches[3].evs[0].prev_kv);
    assert_memory_equal(watches[3].evs[1].prev_kv->value.p, "a", 1);
    check_all();
    fixture_free();
}

static void test_compacted(void **state)
{
    (void)state;
    fixture(0, 0, 0);
    conn_new();
    stream_open(&conns[0]);
    for (int i = 0; i < 6; i++)
        wput("a", "v"); /* 2..7 */
    assert_int_equal(mvcc_compact(m, 5), 0);
    last_compact = 5;
    watch_new(0, 0, &(struct wopts){.key = "a", .start = 4, .id = 10});
    watch_new(0, 0, &(struct wopts){.key = "a", .start = 5, .prev_kv = true});
    shuttle();
    assert_int_equal(watches[0].state, TW_LIVE); /* created first, as etcd */
    settle();
    assert_int_equal(watches[0].state, TW_COMPACTED);
    assert_int_equal(watches[0].compact_rev, 5);
    assert_int_equal(watches[0].n_evs, 0);
    assert_int_equal(watches[1].n_evs, 3);
    assert_null(watches[1].evs[0].prev_kv); /* 4 is compacted */
    assert_non_null(watches[1].evs[1].prev_kv);
    /* the compacted watch keeps its id until canceled */
    watch_new(0, 0, &(struct wopts){.key = "a", .id = 10, .expect_fail = true});
    shuttle();
    watches[0].state = TW_LIVE;
    watch_cancel_req(&watches[0]);
    shuttle();
    assert_int_equal(watches[0].state, TW_CANCELED);
    assert_int_equal(watch_hub_watchers(hub), 1);

    /* a watch that falls behind while its client does not read, past a
     * compaction, is compacted when it would be caught up */
    struct twatch *w = watch_new(0, 0, &(struct wopts){.key = "b"});
    shuttle();
    conns[0].paused = true;
    static char big[20000];
    memset(big, 'x', sizeof big - 1);
    for (int i = 0; i < 200; i++)
        wput("b", big);
    assert_int_equal(w->state, TW_LIVE);
    assert_true(watch_hub_unsynced(hub) >= 1);
    assert_int_equal(mvcc_compact(m, mvcc_rev(m)), 0);
    last_compact = mvcc_rev(m);
    conns[0].paused = false;
    settle();
    assert_int_equal(w->state, TW_COMPACTED);
    assert_true(w->n_evs > 0 && w->n_evs < 200);
    check_all();
    fixture_free();
}

/* etcd's sendFragments over the history events of revision rev, as a watch
 * with (prev) or without prev_kv gets them: how many messages. */
static size_t etcd_parts(int64_t rev, int64_t id, size_t max, bool prev)
{
    struct pb_bytes evs[64];
    size_t offs[64], n = 0;
    struct mem_buf b = {0};
    for (size_t i = 0; i < n_hist; i++) {
        const struct mvcc_event *ev = &hist[i].ev;
        if (ev->kv.mod_revision != rev)
            continue;
        struct api_kv kv = ev->kv, pkv = ev->prev;
        struct api_event e = {.type = ev->type, .kv = &kv,
                              .prev_kv = prev && ev->has_prev ? &pkv : NULL};
        assert_true(n < 64);
        offs[n] = b.len;
        assert_int_equal(pb_encode(&api_event_desc, &e, &b), 0);
        evs[n].len = b.len - offs[n];
        n++;
    }
    for (size_t i = 0; i < n; i++)
        evs[i].p = b.data + offs[i];
    struct api_header hdr = {CLUSTER, MEMBER, rev, TERM};
    struct watch_wire whole = {.header = &hdr, .watch_id = id, .events = evs, .n_events = n};
    size_t parts = 0;
    if (pb_encoded_size(&watch_wire_desc, &whole) < max || n < 2) {
        parts = 1;
    } else {
        for (size_t idx = 0; idx < n;) {
            struct watch_wire cur = {.header = &hdr, .watch_id = id, .fragment = true,
                                     .events = evs + idx, .n_events = 0};
            for (;;) {
                cur.n_events++;
                if (cur.n_events > 1 && pb_encoded_size(&watch_wire_desc, &cur) >= max) {
                    cur.n_events--;
                    break;
                }
                if (idx + cur.n_events == n)
                    break;
            }
            idx += cur.n_events;
            parts++;
        }
    }
    mem_buf_free(&b);
    return parts;
}

/* etcd's sendFragments: parts below max_resp_bytes, each at least one event,
 * fragment set on all but the last, only for watches that asked. */
static void test_fragment(void **state)
{
    (void)state;
    const size_t max = 3000;
    fixture(max, 0, 0);
    conn_new();
    stream_open(&conns[0]);
    struct twatch *f = watch_new(0, 0, &(struct wopts){.key = "k", .end = "l", .fragment = true});
    struct twatch *p = watch_new(0, 0, &(struct wopts){.key = "k", .end = "l"});
    struct twatch *fp =
        watch_new(0, 0, &(struct wopts){.key = "k", .end = "l", .fragment = true, .prev_kv = true});
    struct twatch *one = watch_new(0, 0, &(struct wopts){.key = "k0", .fragment = true});
    shuttle();
    /* txns of 8 puts of (mostly) 1000-byte values: ~8 KB in one revision */
    static char v[1001];
    memset(v, 'v', 1000);
    struct api_request_op ops[8];
    struct api_put_req puts[8];
    char keys[8][4];
    for (int i = 0; i < 8; i++) {
        keys[i][0] = 'k';
        keys[i][1] = (char)('0' + i);
        puts[i] = (struct api_put_req){.key = {(const uint8_t *)keys[i], 2},
                                       .value = {(const uint8_t *)v, i == 3 ? 10 : 1000}};
        ops[i] = (struct api_request_op){.request_put = &puts[i]};
    }
    for (int round = 0; round < 2; round++) {
        struct api_txn_req t = {.success = ops, .n_success = 8};
        struct api_txn_resp tr = {0};
        assert_int_equal(mvcc_txn(m, &t, &scratch, &tr), 0);
        record_write();
        watch_hub_notify(hub);
    }
    shuttle();
    check_all();
    size_t want = etcd_parts(2, f->id, max, false) + etcd_parts(3, f->id, max, false);
    assert_true(want >= 6);
    assert_int_equal(f->n_msgs, want);
    assert_int_equal(f->n_frag_msgs, want - 2);
    want = etcd_parts(2, fp->id, max, true) + etcd_parts(3, fp->id, max, true);
    assert_true(want > f->n_msgs);
    assert_int_equal(fp->n_msgs, want);
    assert_int_equal(p->n_msgs, 2); /* did not ask */
    assert_int_equal(p->n_frag_msgs, 0);
    assert_int_equal(one->n_msgs, 2);

    /* a part that reaches the limit exactly is one event too many (etcd
     * compares with >=): three puts, the limit the size of two */
    for (int i = 0; i < 3; i++)
        puts[i].value.len = 100;
    struct api_txn_req t = {.success = ops, .n_success = 3};
    struct api_txn_resp tr = {0};
    assert_int_equal(mvcc_txn(m, &t, &scratch, &tr), 0);
    record_write();
    struct mem_buf b = {0};
    struct pb_bytes evs[2];
    size_t off1 = 0;
    for (size_t i = 0; i < 2; i++) {
        struct mvcc_event ev;
        mvcc_last_event(m, i, &ev);
        struct api_kv kv = ev.kv;
        struct api_event e = {.type = ev.type, .kv = &kv};
        assert_int_equal(pb_encode(&api_event_desc, &e, &b), 0);
        if (!i)
            off1 = b.len;
    }
    evs[0] = (struct pb_bytes){b.data, off1};
    evs[1] = (struct pb_bytes){b.data + off1, b.len - off1};
    struct api_header hdr = {CLUSTER, MEMBER, mvcc_rev(m), TERM};
    struct watch_wire two = {.header = &hdr, .watch_id = f->id, .fragment = true, .events = evs,
                             .n_events = 2};
    hub->h_max_resp = pb_encoded_size(&watch_wire_desc, &two);
    mem_buf_free(&b);
    size_t before = f->n_msgs;
    watch_hub_notify(hub);
    shuttle();
    assert_int_equal(etcd_parts(mvcc_rev(m), f->id, hub->h_max_resp, false), 3);
    assert_int_equal(f->n_msgs - before, 3);
    check_all();
    fixture_free();
}

static void test_progress(void **state)
{
    (void)state;
    fixture(0, 1000, 0);
    conn_new();
    stream_open(&conns[0]);
    struct twatch *pw = watch_new(0, 0, &(struct wopts){.key = "a", .progress = true});
    struct twatch *qw = watch_new(0, 0, &(struct wopts){.key = "a"});
    shuttle();
    uint64_t t0 = now;
    /* nothing before the period; one per period after (jitter < 10%) */
    watch_run(hub, t0 + 999);
    shuttle();
    assert_int_equal(pw->n_progress, 0);
    watch_run(hub, t0 + 1100);
    shuttle();
    assert_int_equal(pw->n_progress, 1);
    assert_int_equal(pw->last_hdr_rev, 1);
    /* events since the last tick elide the next notification */
    wput("a", "1");
    watch_run(hub, t0 + 2200);
    shuttle();
    assert_int_equal(pw->n_progress, 1);
    watch_run(hub, t0 + 3300);
    shuttle();
    assert_int_equal(pw->n_progress, 2);
    assert_int_equal(pw->last_hdr_rev, 2);
    assert_int_equal(qw->n_progress, 0);
    /* a watch that is not synced gets none */
    conns[0].paused = true;
    static char big[30000];
    memset(big, 'x', sizeof big - 1);
    for (int i = 0; i < 80; i++)
        wput("a", big);
    assert_true(watch_hub_unsynced(hub) > 0);
    watch_run(hub, t0 + 4400);
    watch_run(hub, t0 + 5500);
    conns[0].paused = false;
    shuttle();
    assert_int_equal(pw->n_progress, 2);
    settle();
    check_all();
    fixture_free();
}

/* A client that stops reading: its queue stays bounded, its watch falls
 * back to history, another client on another connection keeps getting
 * every event at once; when it reads again it gets everything, in order. */
/* The i-th of a run of 4,000-byte puts over 100 keys: the hub runs every
 * 7th, and the connections' bytes move. */
static void put_4k(int i)
{
    static char v[4001];
    memset(v, 'v', 4000);
    char k[16];
    snprintf(k, sizeof k, "key%04d", i % 100);
    wput(k, v);
    if (i % 7 == 0)
        watch_run(hub, now += 10);
    shuttle();
}

static void test_slow_stream(void **state)
{
    (void)state;
    const size_t qmax = 64 * 1024;
    fixture(0, 0, qmax);
    conn_new();
    conn_new();
    stream_open(&conns[0]);
    stream_open(&conns[1]);
    struct twatch *slow = watch_new(0, 0, &(struct wopts){.key = "", .open = true, .prev_kv = true});
    struct twatch *fast = watch_new(1, 0, &(struct wopts){.key = "", .open = true});
    shuttle();
    conns[0].paused = true;
    size_t max_queued = 0, max_bytes = 0;
    for (int i = 0; i < 3000; i++) {
        put_4k(i);
        size_t q = h2_stream_queued(conns[0].srv, conns[0].st[0].sid);
        if (q > max_queued)
            max_queued = q;
        if (watch_hub_bytes(hub) > max_bytes)
            max_bytes = watch_hub_bytes(hub);
        assert_int_equal(fast->n_evs, (size_t)i + 1);
    }
    /* bounded: the queue bound plus one response (one write here) */
    assert_true(max_queued <= qmax + 2 * 8192 + 100);
    assert_true(max_bytes < 4096);
    assert_int_equal(watch_hub_unsynced(hub), 1);
    assert_true(slow->n_evs < 100);
    conns[0].paused = false;
    settle();
    assert_int_equal(slow->n_evs, 3000);
    check_all();
    fixture_free();
}

/* Many streams on one connection whose client stopped reading: what they
 * queue is bounded for the connection as a whole, not per stream only. */
static void test_slow_connection(void **state)
{
    (void)state;
    const size_t qmax = 64 * 1024;
    fixture(0, 0, qmax);
    conn_new();
    struct twatch *w[MAX_STREAMS];
    for (int i = 0; i < MAX_STREAMS; i++) {
        stream_open(&conns[0]);
        w[i] = watch_new(0, i, &(struct wopts){.key = "", .open = true});
    }
    shuttle();
    conns[0].paused = true;
    size_t max_queued = 0;
    for (int i = 0; i < 1000; i++) {
        put_4k(i);
        if (h2_conn_queued(conns[0].srv) > max_queued)
            max_queued = h2_conn_queued(conns[0].srv);
    }
    /* the bound plus a response per stream; the streams' own bound alone
     * would let three times as much pile up */
    assert_true(max_queued <= WATCH_CONN_QUEUES * qmax + MAX_STREAMS * 8192);
    assert_int_equal(watch_hub_unsynced(hub), MAX_STREAMS);
    conns[0].paused = false;
    settle();
    for (int i = 0; i < MAX_STREAMS; i++)
        assert_int_equal(w[i]->n_evs, 1000);
    check_all();
    fixture_free();
}

/* A client that keeps sending requests while reading no answers is cut off
 * once its queue passes 8 * queue_max, not buffered for; other clients go
 * on. */
static void test_flood(void **state)
{
    (void)state;
    fixture(0, 0, 1024);
    conn_new();
    conn_new();
    stream_open(&conns[0]);
    stream_open(&conns[1]);
    struct twatch *other = watch_new(1, 0, &(struct wopts){.key = "a"});
    shuttle();
    conns[0].paused = true;
    struct api_watch_progress_req pr = {0};
    struct api_watch_req req = {.progress_request = &pr};
    for (int i = 0; i < 5000; i++) {
        send_req(&conns[0], &conns[0].st[0], &req);
        if (i % 100 == 0)
            shuttle();
    }
    shuttle();
    assert_true(h2_stream_queued(conns[0].srv, conns[0].st[0].sid) <= 8 * 1024 + 100);
    wput("a", "1");
    conns[0].paused = false;
    shuttle();
    assert_true(conns[0].st[0].ended);
    assert_string_equal(conns[0].st[0].status, "8");
    assert_true(conns[0].st[0].n_progress_req > 1000);
    assert_int_equal(other->n_evs, 1);
    check_all();
    fixture_free();
}

/* Writes applied without a notify (or a notify lost to a compaction in
 * between) are caught up from history: nothing lost, nothing twice. */
static void test_missed_notify(void **state)
{
    (void)state;
    fixture(0, 0, 0);
    conn_new();
    stream_open(&conns[0]);
    watch_new(0, 0, &(struct wopts){.key = "a", .end = "z"});
    watch_new(0, 0, &(struct wopts){.key = "b", .start = 6});
    shuttle();
    struct api_put_req q = {.key = {(const uint8_t *)"b", 1}, .value = {(const uint8_t *)"1", 1}};
    struct api_put_resp r = {0};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(mvcc_put(m, &q, &scratch, &r), 0);
        record_write();
    }
    wput("c", "1");
    assert_int_equal(watch_hub_unsynced(hub), 2);
    settle();
    assert_int_equal(watches[0].n_evs, 6);
    assert_int_equal(watches[1].n_evs, 1);
    assert_int_equal(mvcc_put(m, &q, &scratch, &r), 0);
    record_write();
    assert_int_equal(mvcc_compact(m, 2), 0);
    last_compact = 2;
    watch_hub_notify(hub);
    settle();
    assert_int_equal(watches[0].n_evs, 7);
    check_all();
    fixture_free();
}

/* One run of test_nomem: the n-th allocation fails inside a create
 * (where 0), a write's dispatch (1) or a timer run's catch-up (2). */
static void nomem_case(int where, long n)
{
    fixture(0, 0, 0);
    nomem_ok = true;
    conn_new();
    conn_new();
    stream_open(&conns[0]);
    stream_open(&conns[1]);
    struct twatch *other = watch_new(1, 0, &(struct wopts){.key = "a", .end = "c"});
    watch_new(0, 0, &(struct wopts){.key = "b", .prev_kv = true});
    shuttle();
    wput("a", "0");
    fail_msg_at = where == 0 ? n : -1;
    watch_new(0, 0, &(struct wopts){.key = "a", .end = "b", .start = 1, .prev_kv = true});
    shuttle();
    struct api_put_req q = {.key = {(const uint8_t *)"a", 1}, .value = {(const uint8_t *)"1", 1}};
    struct api_put_resp r = {0};
    assert_int_equal(mvcc_put(m, &q, &scratch, &r), 0);
    record_write();
    if (where == 1)
        mem_fail_after(n, 0);
    watch_hub_notify(hub);
    mem_fail_after(-1, 0);
    wput("b", "1");
    if (where == 2)
        mem_fail_after(n, 0);
    watch_run(hub, now);
    mem_fail_after(-1, 0);
    settle();
    wput("a", "2");
    settle();
    check_all();
    if (stream_alive(other))
        assert_int_equal(other->n_evs, 4);
    for (size_t i = 0; i < n_conns; i++)
        if (conns[i].gc && conns[i].st[0].ended)
            assert_string_equal(conns[i].st[0].status, "8"); /* RESOURCE_EXHAUSTED */
    fixture_free();
    nomem_ok = false;
    reset_history(NULL);
}

/* Every allocation of a create, a dispatch and a catch-up failing in turn:
 * each failure is answered (a create refused, a stream ended with
 * RESOURCE_EXHAUSTED, a connection closed when HTTP/2 itself runs out, or a
 * watch that catches up from history later), never a crash, a leak, or a
 * lost or repeated event on a stream that stays open. */
static void test_nomem(void **state)
{
    (void)state;
    for (int where = 0; where < 3; where++)
        for (long n = 0; n < 40; n++)
            nomem_case(where, n);
}

/* ---- random ---- */

static uint64_t rnd_state;

static uint32_t rnd(uint32_t n)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return (uint32_t)((rnd_state >> 16) % n);
}

static const char *const rkeys[] = {"a", "a/1", "a/2", "ab", "b", "b/x", "c", "d"};
#define NRKEYS (sizeof rkeys / sizeof rkeys[0])

static const char *rnd_value(void)
{
    static char big[3001];
    static const char *small[] = {"", "1", "22", "xyz"};
    if (!big[0])
        memset(big, 'b', 3000);
    return rnd(6) ? small[rnd(4)] : big + rnd(3000);
}

/* Revisions whose events are puts of distinct keys: compacting at one of
 * them loses nothing a watch from it would get (etcd drops a tombstone at
 * the compacted revision itself). */
static bool rev_safe(int64_t rev)
{
    bool any = false;
    for (size_t i = 0; i < n_hist; i++)
        if (hist[i].ev.kv.mod_revision == rev) {
            if (hist[i].ev.type != API_EVENT_PUT)
                return false;
            for (size_t j = i + 1; j < n_hist && hist[j].ev.kv.mod_revision == rev; j++)
                if (!watch_bcmp(hist[j].ev.kv.key.p, hist[j].ev.kv.key.len, hist[i].ev.kv.key.p,
                                hist[i].ev.kv.key.len))
                    return false;
            any = true;
        }
    return any;
}

static void rnd_write(void)
{
    uint32_t r = rnd(10);
    if (r < 5) {
        wput(rkeys[rnd(NRKEYS)], rnd_value());
    } else if (r < 7) {
        const char *k = rkeys[rnd(NRKEYS)];
        uint32_t e = rnd(3);
        wdel(k, e == 0 ? NULL : e == 1 ? "" : rkeys[rnd(NRKEYS)]);
    } else {
        struct api_request_op ops[4];
        struct api_put_req puts[4];
        struct api_delete_req dels[4];
        size_t n = 1 + rnd(4);
        for (size_t i = 0; i < n; i++) {
            const char *k = rkeys[rnd(NRKEYS)];
            if (rnd(3)) {
                const char *v = rnd_value();
                puts[i] = (struct api_put_req){.key = {(const uint8_t *)k, strlen(k)},
                                               .value = {(const uint8_t *)v, strlen(v)},
                                               .lease = rnd(2)};
                ops[i] = (struct api_request_op){.request_put = &puts[i]};
            } else {
                dels[i] = (struct api_delete_req){.key = {(const uint8_t *)k, strlen(k)}};
                ops[i] = (struct api_request_op){.request_delete_range = &dels[i]};
            }
        }
        struct api_txn_req t = {.success = ops, .n_success = n};
        if (mvcc_txn_check(&t, 128))
            return;
        struct api_txn_resp tr = {0};
        assert_int_equal(mvcc_txn(m, &t, &scratch, &tr), 0);
        record_write();
        watch_hub_notify(hub);
    }
}

static void rnd_watch(void)
{
    int ci = (int)rnd((uint32_t)n_conns);
    if (!conns[ci].gc)
        return;
    int si = (int)rnd((uint32_t)conns[ci].n_st);
    struct wopts o = {.key = rnd(8) ? rkeys[rnd(NRKEYS)] : ""};
    uint32_t e = rnd(4);
    if (e == 1) {
        o.open = true;
    } else if (e >= 2) {
        o.end = rkeys[rnd(NRKEYS)];
        o.expect_fail = watch_bcmp((const uint8_t *)(o.key[0] ? o.key : "\0"),
                                   o.key[0] ? strlen(o.key) : 1, (const uint8_t *)o.end,
                                   strlen(o.end)) >= 0;
    }
    int64_t cur = mvcc_rev(m);
    o.start = rnd(2) ? 0 : 1 + (int64_t)rnd((uint32_t)cur + 2);
    o.prev_kv = rnd(2);
    o.noput = !rnd(5);
    o.nodelete = !rnd(5);
    o.fragment = rnd(2);
    o.progress = !rnd(4);
    if (!rnd(5)) {
        o.id = 1000 + (int64_t)n_watches;
        /* now and then a duplicate of a live client-chosen id */
        for (size_t i = 0; i < n_watches && !rnd(3); i++)
            if (watches[i].conn == ci && watches[i].stream == si && watches[i].state == TW_LIVE &&
                watches[i].want_id) {
                o.id = watches[i].id;
                o.expect_fail = true;
                break;
            }
    }
    /* a compacted start gets created, then compacted: nothing to expect */
    watch_new(ci, si, &o);
}

static void run_random(uint64_t seed, int steps)
{
    rnd_state = seed;
    fixture(2000 + rnd(4000), 1000, 4096 + rnd(16384));
    hub->h_batch_events = 1 + rnd(8);
    for (int i = 0; i < 4; i++) {
        struct tconn *c = conn_new();
        for (uint32_t j = 1 + rnd(2); j--;)
            stream_open(c);
    }
    for (int step = 0; step < steps; step++) {
        uint32_t op = rnd(100);
        if (op < 55) {
            rnd_write();
        } else if (op < 70 && n_watches < MAX_WATCHES - 1) {
            rnd_watch();
        } else if (op < 74) {
            size_t i = rnd((uint32_t)n_watches + 1);
            if (i < n_watches && watches[i].state == TW_LIVE && conns[watches[i].conn].gc)
                watch_cancel_req(&watches[i]);
        } else if (op < 80) {
            struct tconn *c = &conns[rnd((uint32_t)n_conns)];
            c->paused = !c->paused;
        } else if (op < 88) {
            watch_run(hub, now += rnd(300));
        } else if (op < 90) {
            int64_t cur = mvcc_rev(m);
            int64_t c = last_compact + 1 + (int64_t)rnd((uint32_t)(cur - last_compact));
            if (c <= cur && rev_safe(c)) {
                assert_int_equal(mvcc_compact(m, c), 0);
                last_compact = c;
            }
        }
        shuttle();
        for (size_t i = 0; i < n_conns; i++)
            for (size_t j = 0; conns[i].gc && j < conns[i].n_st; j++)
                assert_true(h2_stream_queued(conns[i].srv, conns[i].st[j].sid) <
                            WATCH_HARD_QUEUE_FACTOR * hub->h_queue_max);
    }
    for (size_t i = 0; i < n_conns; i++)
        conns[i].paused = false;
    settle();
    for (size_t i = 0; i < n_conns; i++)
        for (size_t j = 0; j < conns[i].n_st; j++)
            assert_false(conns[i].st[j].ended);
    check_all();
    fixture_free();
    reset_history(NULL);
}

static void test_random(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 12; seed++)
        run_random(seed * 0x9E3779B97F4A7C15ull, 1500);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_create_cancel, reset_history),
        cmocka_unit_test_teardown(test_start_revisions, reset_history),
        cmocka_unit_test_teardown(test_filters_prev_kv, reset_history),
        cmocka_unit_test_teardown(test_compacted, reset_history),
        cmocka_unit_test_teardown(test_fragment, reset_history),
        cmocka_unit_test_teardown(test_progress, reset_history),
        cmocka_unit_test_teardown(test_slow_stream, reset_history),
        cmocka_unit_test_teardown(test_slow_connection, reset_history),
        cmocka_unit_test_teardown(test_flood, reset_history),
        cmocka_unit_test_teardown(test_missed_notify, reset_history),
        cmocka_unit_test_teardown(test_nomem, reset_history),
        cmocka_unit_test_teardown(test_random, reset_history),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
