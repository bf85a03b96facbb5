/* watch.c - etcd's Watch service (watch.h).
 *
 * Owns the watch streams, their watches, the index that finds the synced
 * watches of a key, the encoding of watch responses and the catching up of
 * watches from the store's history.  Does not own the store (mvcc.c hands
 * out each write's events and history), gRPC framing (grpc.c), timers
 * (loop.c) or permissions (there is no auth store yet: every watch is
 * allowed).
 *
 * The shape is etcd's watchable_store.go without its goroutines.  Synced
 * watches sit in an interval index (a treap of distinct ranges, augmented
 * with the largest range end below each node) and get each write's events
 * as it is applied.  Unsynced ones wait in a list that the hub's timer
 * serves from history, a bounded batch at a time, while their stream has
 * room.  etcd's "victims" (a batch its channel refused, kept until it can
 * be sent) need no state here: a watch whose stream is full becomes
 * unsynced, and its events are read again from history when the stream
 * drains, so a slow client costs the hub nothing but its watch records.
 *
 * Each write's events are encoded once per form (with and without
 * prev_kv), as WatchResponse's field 11 records, into one shared blob
 * (h2.h) that every watch's response references rather than copies: per
 * watch only the head is written (the header, the same for the whole
 * write, and the watch's id), then the gRPC prefix and the DATA frame
 * header.  The bytes are those pb.c would write for the whole response.
 * History batches, fragmented and control responses are encoded through a
 * private descriptor whose field 11 is repeated bytes, which protobuf
 * writes exactly as it writes the repeated Event messages.
 *
 * A send that fails (out of memory) fails the whole stream, as etcd's send
 * loop ends on a send error; failed streams are ended (reaped) at the end
 * of the entry point that failed them, never while lists are being walked.
 */
#include "watch.h"

#include <assert.h>
#include <stddef.h>
#include <string.h>

#include "api.h"
#include "err.h"

#define WATCH_DEFAULT_PROGRESS_MS (10u * 60 * 1000) /* etcd's progressReportInterval */
#define WATCH_MIN_PROGRESS_MS 100                     /* etcd's minWatchProgressInterval */
#define WATCH_DEFAULT_QUEUE (1u << 20)
/* Control responses (created, canceled) are not held back by queue_max: a
 * client must learn about its watches.  One that keeps creating watches
 * while reading nothing is cut off here instead of growing the queue. */
#define WATCH_HARD_QUEUE_FACTOR 8
/* However many streams share a connection, what its client has not read
 * of all of them is bounded too: at this many streams' queue_max, every
 * watch on it waits for history instead. */
#define WATCH_CONN_QUEUES 4
#define WATCH_BATCH_EVENTS 1000 /* per history batch (etcd's watchBatchMaxRevs: 1000 revisions) */
#define WATCH_BATCH_BYTES (1u << 20)
/* Per timer run, so writes are not starved: history events sent, and
 * batches read (each walks its watch's range of the key index once). */
#define WATCH_RUN_EVENTS 10000
#define WATCH_RUN_BATCHES 64
#define WATCH_RETRY_MS 10      /* a full stream is looked at again after this (etcd's victim loop) */
/* ... or after 1 ms while streams are draining: a client that reads as
 * fast as it can is not held to 10 ms steps.  Runs that serve nobody count
 * down to the slow pace. */
#define WATCH_FAST_RUNS 10
#define WATCH_SCRATCH_KEEP (1u << 20)
#define WATCH_NO_IDX SIZE_MAX
#define WATCH_NEEDED (SIZE_MAX - 1) /* an encoding some watch needs, not made yet */
#define WATCH_HEAD_MAX 80 /* a live response's head: header field (<= 48) and watch_id */
#define WATCH_EVENTS_FIELD 11

/* ---- types ---- */

enum watch_state {
    WATCH_SYNCED,    /* on its range's list: gets each write's events */
    WATCH_UNSYNCED,  /* on the hub's list: caught up from history */
    WATCH_COMPACTED, /* told it fell behind compaction; its id lives until canceled */
};

/* What a watch covers: [key, end), or every key >= key when open.  A single
 * key k is [k, k "\0"), which holds k alone. */
struct watch_span {
    const uint8_t *sp_key;
    size_t sp_klen;
    const uint8_t *sp_end;
    size_t sp_elen;
    bool sp_open;
};

/* One distinct span in the index, shared by every watch on it.  Treap node:
 * ordered by (key, end), heap-ordered by r_prio; r_maxend is the node of
 * this subtree whose end is largest, which lets a stabbing query skip
 * subtrees that end before the key.  Owned by the hub; the bytes of the
 * span follow the struct (key, then end; a single key's "\0" end is the key
 * plus one byte). */
struct watch_range {
    struct watch_range *r_left, *r_right;
    const struct watch_range *r_maxend;
    uint32_t r_prio;
    size_t r_refs;                  /* watches using it, synced or not */
    struct watch_watcher *r_synced; /* its synced watches, via w_next/w_prev */
    size_t r_size;                  /* bytes allocated, for the hub's count */
    struct watch_span r_span;
    uint8_t r_bytes[];
};

struct watch_watcher {
    struct watch_stream *w_stream;
    struct watch_range *w_range; /* a reference; NULL once compacted */
    int64_t w_id;
    int64_t w_min_rev; /* the first revision it has not been sent */
    uint8_t w_state;   /* enum watch_state */
    bool w_prev_kv;
    bool w_fragment;
    bool w_noput;
    bool w_nodelete;
    bool w_progress;     /* progress_notify */
    bool w_progress_due; /* etcd's progress[id]: nothing sent since the last tick */
    struct watch_watcher *w_next, *w_prev;   /* range's synced list or hub's unsynced list */
    struct watch_watcher *w_snext, *w_sprev; /* the stream's watches */
    struct watch_watcher *w_hnext;           /* hash chain */
    /* one write's dispatch: its events, a chain through h_pairs */
    uint64_t w_mark;
    size_t w_first, w_last;
};

struct watch_stream {
    struct watch_hub *s_hub;
    struct grpc_call *s_call;
    struct watch_watcher *s_watchers; /* owned */
    size_t s_n_progress;              /* of them with progress_notify */
    int64_t s_next_id;
    uint64_t s_period; /* progress period, jitter included, fixed as etcd's ticker */
    uint64_t s_due;    /* next progress tick */
    bool s_failed;     /* a send failed: ended at the next reap */
    int s_err;         /* ERR_x it is ended with */
    struct watch_stream *s_next, *s_prev;
};

/* One (event, watch) match of a write, chained per watch in event order. */
struct watch_pair {
    size_t p_ev;
    size_t p_next;
};

/* Where event i's records (field 11: tag, length, Event) are in h_enc, with
 * and without prev_kv. */
struct watch_enc {
    size_t e_off[2];
    size_t e_len[2];
};

struct watch_hub {
    struct loop *h_loop;
    struct mvcc *h_mvcc;
    size_t h_max_resp;
    uint64_t h_progress_ms;
    size_t h_queue_max;
    size_t h_batch_events;
    void (*h_ident)(void *ctx, struct api_header *hdr);
    void *h_ident_ctx;
    int64_t h_rev; /* the store revision every synced watch has been sent */

    struct watch_range *h_ranges; /* treap root */
    struct watch_watcher **h_buckets; /* by (stream, id); owned array */
    size_t h_n_buckets;
    size_t h_n_watchers;
    struct watch_watcher *h_unsynced, *h_unsynced_tail;
    size_t h_n_unsynced;
    struct watch_stream *h_streams; /* owned */
    size_t h_n_failed;
    size_t h_bytes;
    uint64_t h_rand;

    uint64_t h_timer; /* loop timer id, 0 when none */
    uint64_t h_timer_due;
    unsigned h_fast_runs; /* runs left at 1 ms without a catch-up */
    uint64_t h_progress_next; /* earliest progress tick; UINT64_MAX when none */

    /* scratch for one write's dispatch or one history batch; owned */
    uint64_t h_mark;
    bool h_oom;
    struct watch_pair *h_pairs;
    size_t h_n_pairs, h_cap_pairs;
    struct watch_watcher **h_touched;
    size_t h_n_touched, h_cap_touched;
    struct mem_buf h_enc;
    struct mem_arena h_arena;
};

/* WatchResponse with its events already encoded (see the file comment). */
struct watch_wire {
    struct api_header *header;
    int64_t watch_id;
    bool created;
    bool canceled;
    int64_t compact_revision;
    struct pb_bytes cancel_reason;
    bool fragment;
    struct pb_bytes *events;
    size_t n_events;
};

static const struct pb_field watch_wire_fields[] = {
    {.num = 1, .type = PB_MSG, .offset = offsetof(struct watch_wire, header),
     .sub = &api_header_desc},
    {.num = 2, .type = PB_INT64, .offset = offsetof(struct watch_wire, watch_id)},
    {.num = 3, .type = PB_BOOL, .offset = offsetof(struct watch_wire, created)},
    {.num = 4, .type = PB_BOOL, .offset = offsetof(struct watch_wire, canceled)},
    {.num = 5, .type = PB_INT64, .offset = offsetof(struct watch_wire, compact_revision)},
    {.num = 6, .type = PB_BYTES, .offset = offsetof(struct watch_wire, cancel_reason)},
    {.num = 7, .type = PB_BOOL, .offset = offsetof(struct watch_wire, fragment)},
    {.num = 11, .type = PB_BYTES, .flags = PB_REPEATED,
     .offset = offsetof(struct watch_wire, events),
     .count_offset = offsetof(struct watch_wire, n_events)},
};

static const struct pb_msgdesc watch_wire_desc = {
    "etcdserverpb.WatchResponse", sizeof(struct watch_wire), watch_wire_fields,
    sizeof watch_wire_fields / sizeof watch_wire_fields[0]};

/* ---- prototypes ---- */

static void *watch_alloc(struct watch_hub *h, size_t n);
static void watch_release(struct watch_hub *h, void *p, size_t n);
static uint32_t watch_rand(struct watch_hub *h);

static int watch_bcmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn);
static int watch_end_cmp(const struct watch_span *a, const struct watch_span *b);
static int watch_span_cmp(const struct watch_span *a, const struct watch_span *b);
static bool watch_span_ends_after(const struct watch_span *s, const uint8_t *k, size_t kn);

static void watch_range_fix(struct watch_range *r);
static struct watch_range *watch_range_merge(struct watch_range *a, struct watch_range *b);
static void watch_range_split(struct watch_range *t, const struct watch_span *s,
                              struct watch_range **l, struct watch_range **r);
static struct watch_range *watch_range_insert(struct watch_range *t, struct watch_range *n);
static struct watch_range *watch_range_remove(struct watch_range *t, const struct watch_range *n);
static struct watch_range *watch_range_get(struct watch_hub *h, const struct watch_span *s);
static void watch_range_put(struct watch_hub *h, struct watch_range *r);
static void watch_stab(struct watch_hub *h, const struct watch_range *r, const uint8_t *k,
                       size_t kn, size_t ev, int32_t type, int64_t rev);

static size_t watch_hash(const struct watch_stream *s, int64_t id, size_t nb);
static struct watch_watcher *watch_find(const struct watch_hub *h, const struct watch_stream *s,
                                        int64_t id);
static int watch_hash_reserve(struct watch_hub *h);
static void watch_hash_del(struct watch_hub *h, struct watch_watcher *w);

static void watch_list_del(struct watch_watcher **head, struct watch_watcher **tail,
                           struct watch_watcher *w);
static void watch_detach(struct watch_hub *h, struct watch_watcher *w);
static void watch_set_synced(struct watch_watcher *w);
static void watch_set_unsynced(struct watch_hub *h, struct watch_watcher *w, int64_t min_rev);
static void watch_resync_all(struct watch_hub *h, int64_t from_rev);
static void watch_watcher_free(struct watch_hub *h, struct watch_watcher *w);

static void watch_stream_fail(struct watch_stream *s, int err);
static void watch_stream_free(struct watch_stream *s);
static void watch_reap(struct watch_hub *h);

static void watch_header(const struct watch_hub *h, int64_t rev, struct api_header *hdr);
static int watch_send(struct watch_stream *s, const struct watch_wire *resp);
static int watch_send_ctrl(struct watch_stream *s, const struct watch_wire *resp, int64_t rev);
static int watch_send_events(struct watch_hub *h, struct watch_watcher *w, int64_t rev,
                             struct pb_bytes *evs, size_t n);
static bool watch_filtered(const struct watch_watcher *w, int32_t type);
static int watch_encode(struct watch_hub *h, const struct mvcc_event *ev, bool prev, size_t *off,
                        size_t *len);
static void watch_scratch_trim(struct watch_hub *h);

static void watch_pair_add(struct watch_hub *h, struct watch_watcher *w, size_t ev);
static void watch_dispatch(struct watch_hub *h, size_t n, int64_t rev);
static size_t watch_put_varint(uint8_t *p, uint64_t v);
static int watch_encode_record(struct watch_hub *h, const struct mvcc_event *ev, bool prev,
                               size_t *off, size_t *len);
static void watch_deliver(struct watch_hub *h, struct watch_watcher *w,
                          const struct watch_enc *enc, struct h2_blob *blob, const uint8_t *head,
                          size_t head_len, struct h2_piece *pcs, struct pb_bytes *evs,
                          int64_t rev);
static void watch_sync(struct watch_hub *h);

static void watch_compacted(struct watch_hub *h, struct watch_watcher *w, int64_t compact);
static void watch_catch_up(struct watch_hub *h, struct watch_watcher *w, size_t *budget);
static bool watch_catch_up_all(struct watch_hub *h, bool *served);
static void watch_progress(struct watch_hub *h, uint64_t now);
static void watch_arm(struct watch_hub *h, uint64_t delay);
static void watch_run(struct watch_hub *h, uint64_t now);
static void watch_timer_fire(struct loop *l, void *arg);

static void watch_create_fail(struct watch_stream *s, const char *reason);
static void watch_create(struct watch_stream *s, const struct api_watch_create_req *cr,
                         struct mem_arena *a, uint64_t now);
static void watch_cancel(struct watch_stream *s, int64_t id);

/* ---- memory and randomness ---- */

/* Zeroed, counted in h_bytes. */
static void *watch_alloc(struct watch_hub *h, size_t n)
{
    void *p = mem_calloc(1, n);
    if (p)
        h->h_bytes += n;
    return p;
}

static void watch_release(struct watch_hub *h, void *p, size_t n)
{
    if (!p)
        return;
    h->h_bytes -= n;
    mem_free(p);
}

/* xorshift64: treap priorities and progress jitter; deterministic so tests
 * are. */
static uint32_t watch_rand(struct watch_hub *h)
{
    h->h_rand ^= h->h_rand << 13;
    h->h_rand ^= h->h_rand >> 7;
    h->h_rand ^= h->h_rand << 17;
    return (uint32_t)(h->h_rand >> 32);
}

/* ---- spans ---- */

/* bytes.Compare; NULL is fine with zero length. */
static int watch_bcmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c;
    return an < bn ? -1 : an > bn;
}

/* An open end is past every key. */
static int watch_end_cmp(const struct watch_span *a, const struct watch_span *b)
{
    if (a->sp_open || b->sp_open)
        return (int)a->sp_open - (int)b->sp_open;
    return watch_bcmp(a->sp_end, a->sp_elen, b->sp_end, b->sp_elen);
}

static int watch_span_cmp(const struct watch_span *a, const struct watch_span *b)
{
    int c = watch_bcmp(a->sp_key, a->sp_klen, b->sp_key, b->sp_klen);
    return c ? c : watch_end_cmp(a, b);
}

static bool watch_span_ends_after(const struct watch_span *s, const uint8_t *k, size_t kn)
{
    return s->sp_open || watch_bcmp(s->sp_end, s->sp_elen, k, kn) > 0;
}

/* ---- the range index: a treap with the largest end per subtree ---- */

static void watch_range_fix(struct watch_range *r)
{
    const struct watch_range *m = r;
    if (r->r_left && watch_end_cmp(&r->r_left->r_maxend->r_span, &m->r_span) > 0)
        m = r->r_left->r_maxend;
    if (r->r_right && watch_end_cmp(&r->r_right->r_maxend->r_span, &m->r_span) > 0)
        m = r->r_right->r_maxend;
    r->r_maxend = m;
}

/* Every range of a orders before every range of b. */
static struct watch_range *watch_range_merge(struct watch_range *a, struct watch_range *b)
{
    if (!a)
        return b;
    if (!b)
        return a;
    if (a->r_prio > b->r_prio) {
        a->r_right = watch_range_merge(a->r_right, b);
        watch_range_fix(a);
        return a;
    }
    b->r_left = watch_range_merge(a, b->r_left);
    watch_range_fix(b);
    return b;
}

/* Splits t into the ranges ordering before s (*l) and the others (*r). */
static void watch_range_split(struct watch_range *t, const struct watch_span *s,
                              struct watch_range **l, struct watch_range **r)
{
    if (!t) {
        *l = *r = NULL;
        return;
    }
    if (watch_span_cmp(&t->r_span, s) < 0) {
        watch_range_split(t->r_right, s, &t->r_right, r);
        *l = t;
    } else {
        watch_range_split(t->r_left, s, l, &t->r_left);
        *r = t;
    }
    watch_range_fix(t);
}

static struct watch_range *watch_range_insert(struct watch_range *t, struct watch_range *n)
{
    if (!t)
        return n;
    if (n->r_prio > t->r_prio) {
        watch_range_split(t, &n->r_span, &n->r_left, &n->r_right);
        watch_range_fix(n);
        return n;
    }
    if (watch_span_cmp(&n->r_span, &t->r_span) < 0)
        t->r_left = watch_range_insert(t->r_left, n);
    else
        t->r_right = watch_range_insert(t->r_right, n);
    watch_range_fix(t);
    return t;
}

/* Spans in the index are distinct, so the node equal to n is n. */
static struct watch_range *watch_range_remove(struct watch_range *t, const struct watch_range *n)
{
    int c = watch_span_cmp(&n->r_span, &t->r_span);
    if (!c)
        return watch_range_merge(t->r_left, t->r_right);
    if (c < 0)
        t->r_left = watch_range_remove(t->r_left, n);
    else
        t->r_right = watch_range_remove(t->r_right, n);
    watch_range_fix(t);
    return t;
}

/* The index's node for s, made if new; its reference count is raised.
 * NULL on OOM. */
static struct watch_range *watch_range_get(struct watch_hub *h, const struct watch_span *s)
{
    struct watch_range *r = h->h_ranges;
    while (r) {
        int c = watch_span_cmp(s, &r->r_span);
        if (!c) {
            r->r_refs++;
            return r;
        }
        r = c < 0 ? r->r_left : r->r_right;
    }
    size_t elen = s->sp_open ? 0 : s->sp_elen;
    if (s->sp_klen > SIZE_MAX / 2 - sizeof *r || elen > SIZE_MAX / 2)
        return NULL;
    size_t size = sizeof *r + s->sp_klen + elen;
    r = watch_alloc(h, size);
    if (!r)
        return NULL;
    r->r_size = size;
    r->r_prio = watch_rand(h);
    r->r_refs = 1;
    r->r_maxend = r;
    memcpy(r->r_bytes, s->sp_key, s->sp_klen);
    r->r_span.sp_key = r->r_bytes;
    r->r_span.sp_klen = s->sp_klen;
    r->r_span.sp_open = s->sp_open;
    if (!s->sp_open) {
        /* a single key's end is the key and "\0": share the key's bytes */
        bool single = s->sp_elen == s->sp_klen + 1 && s->sp_end[s->sp_klen] == 0 &&
                      !memcmp(s->sp_end, s->sp_key, s->sp_klen);
        if (single) {
            r->r_bytes[s->sp_klen] = 0;
            r->r_span.sp_end = r->r_bytes;
        } else {
            memcpy(r->r_bytes + s->sp_klen, s->sp_end, s->sp_elen);
            r->r_span.sp_end = r->r_bytes + s->sp_klen;
        }
        r->r_span.sp_elen = s->sp_elen;
    }
    h->h_ranges = watch_range_insert(h->h_ranges, r);
    return r;
}

static void watch_range_put(struct watch_hub *h, struct watch_range *r)
{
    assert(r->r_refs > 0);
    if (--r->r_refs)
        return;
    assert(!r->r_synced);
    h->h_ranges = watch_range_remove(h->h_ranges, r);
    watch_release(h, r, r->r_size);
}

/* Visits the synced watches of every range holding key k, adding event ev
 * to those it is for.  A subtree whose largest end is <= k holds none; a
 * node starting after k has only such nodes on its right. */
static void watch_stab(struct watch_hub *h, const struct watch_range *r, const uint8_t *k,
                       size_t kn, size_t ev, int32_t type, int64_t rev)
{
    while (r && watch_span_ends_after(&r->r_maxend->r_span, k, kn)) {
        watch_stab(h, r->r_left, k, kn, ev, type, rev);
        if (watch_bcmp(r->r_span.sp_key, r->r_span.sp_klen, k, kn) > 0)
            return;
        if (watch_span_ends_after(&r->r_span, k, kn))
            for (struct watch_watcher *w = r->r_synced; w; w = w->w_next)
                if (w->w_min_rev <= rev && !w->w_stream->s_failed && !watch_filtered(w, type))
                    watch_pair_add(h, w, ev);
        r = r->r_right;
    }
}

/* ---- watches by (stream, id) ---- */

static size_t watch_hash(const struct watch_stream *s, int64_t id, size_t nb)
{
    uint64_t x = (uint64_t)(uintptr_t)s ^ ((uint64_t)id * 0x9E3779B97F4A7C15ull);
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 32;
    return (size_t)(x & (nb - 1));
}

static struct watch_watcher *watch_find(const struct watch_hub *h, const struct watch_stream *s,
                                        int64_t id)
{
    if (!h->h_n_buckets)
        return NULL;
    struct watch_watcher *w = h->h_buckets[watch_hash(s, id, h->h_n_buckets)];
    while (w && (w->w_stream != s || w->w_id != id))
        w = w->w_hnext;
    return w;
}

/* Room for one more watch: the table doubles when as full as it is long.
 * 0 or -ERR_NOMEM (the table is unchanged). */
static int watch_hash_reserve(struct watch_hub *h)
{
    if (h->h_n_watchers < h->h_n_buckets)
        return 0;
    size_t nb = h->h_n_buckets ? h->h_n_buckets * 2 : 64;
    if (nb > SIZE_MAX / 2 / sizeof *h->h_buckets)
        return -ERR_NOMEM;
    struct watch_watcher **b = watch_alloc(h, nb * sizeof *b);
    if (!b)
        return -ERR_NOMEM;
    for (size_t i = 0; i < h->h_n_buckets; i++)
        while (h->h_buckets[i]) {
            struct watch_watcher *w = h->h_buckets[i];
            h->h_buckets[i] = w->w_hnext;
            size_t j = watch_hash(w->w_stream, w->w_id, nb);
            w->w_hnext = b[j];
            b[j] = w;
        }
    watch_release(h, h->h_buckets, h->h_n_buckets * sizeof *b);
    h->h_buckets = b;
    h->h_n_buckets = nb;
    return 0;
}

static void watch_hash_del(struct watch_hub *h, struct watch_watcher *w)
{
    struct watch_watcher **p = &h->h_buckets[watch_hash(w->w_stream, w->w_id, h->h_n_buckets)];
    while (*p != w)
        p = &(*p)->w_hnext;
    *p = w->w_hnext;
    h->h_n_watchers--;
}

/* ---- watch states ---- */

/* Unlinks w from a w_next/w_prev list (tail may be NULL for lists without). */
static void watch_list_del(struct watch_watcher **head, struct watch_watcher **tail,
                           struct watch_watcher *w)
{
    if (w->w_prev)
        w->w_prev->w_next = w->w_next;
    else
        *head = w->w_next;
    if (w->w_next)
        w->w_next->w_prev = w->w_prev;
    else if (tail)
        *tail = w->w_prev;
    w->w_next = w->w_prev = NULL;
}

/* Takes w off the list its state puts it on. */
static void watch_detach(struct watch_hub *h, struct watch_watcher *w)
{
    if (w->w_state == WATCH_SYNCED) {
        watch_list_del(&w->w_range->r_synced, NULL, w);
    } else if (w->w_state == WATCH_UNSYNCED) {
        watch_list_del(&h->h_unsynced, &h->h_unsynced_tail, w);
        h->h_n_unsynced--;
    }
}

/* w (detached) starts getting live events. */
static void watch_set_synced(struct watch_watcher *w)
{
    struct watch_range *r = w->w_range;
    w->w_state = WATCH_SYNCED;
    w->w_prev = NULL;
    w->w_next = r->r_synced;
    if (r->r_synced)
        r->r_synced->w_prev = w;
    r->r_synced = w;
}

/* w (detached: new, or taken off its list) is caught up from min_rev on
 * by the timer. */
static void watch_set_unsynced(struct watch_hub *h, struct watch_watcher *w, int64_t min_rev)
{
    w->w_state = WATCH_UNSYNCED;
    w->w_min_rev = min_rev;
    w->w_next = NULL;
    w->w_prev = h->h_unsynced_tail;
    if (h->h_unsynced_tail)
        h->h_unsynced_tail->w_next = w;
    else
        h->h_unsynced = w;
    h->h_unsynced_tail = w;
    h->h_n_unsynced++;
}

/* The live feed missed something (revisions applied without a notify, or
 * no memory to dispatch one): every synced watch reads from history from
 * from_rev instead, as etcd moves its synced watchers to unsynced when it
 * restores a snapshot. */
static void watch_resync_all(struct watch_hub *h, int64_t from_rev)
{
    for (struct watch_stream *s = h->h_streams; s; s = s->s_next)
        for (struct watch_watcher *w = s->s_watchers; w; w = w->w_snext)
            if (w->w_state == WATCH_SYNCED) {
                watch_detach(h, w);
                watch_set_unsynced(h, w, w->w_min_rev > from_rev ? w->w_min_rev : from_rev);
            }
}

static void watch_watcher_free(struct watch_hub *h, struct watch_watcher *w)
{
    struct watch_stream *s = w->w_stream;
    watch_detach(h, w);
    watch_hash_del(h, w);
    if (w->w_sprev)
        w->w_sprev->w_snext = w->w_snext;
    else
        s->s_watchers = w->w_snext;
    if (w->w_snext)
        w->w_snext->w_sprev = w->w_sprev;
    if (w->w_progress)
        s->s_n_progress--;
    if (w->w_range)
        watch_range_put(h, w->w_range);
    watch_release(h, w, sizeof *w);
}

/* ---- streams ---- */

/* Sticky: the stream gets nothing more and is ended by the next reap. */
static void watch_stream_fail(struct watch_stream *s, int err)
{
    if (s->s_failed)
        return;
    s->s_failed = true;
    s->s_err = err;
    s->s_hub->h_n_failed++;
}

static void watch_stream_free(struct watch_stream *s)
{
    struct watch_hub *h = s->s_hub;
    while (s->s_watchers)
        watch_watcher_free(h, s->s_watchers);
    if (s->s_failed)
        h->h_n_failed--;
    if (s->s_prev)
        s->s_prev->s_next = s->s_next;
    else
        h->h_streams = s->s_next;
    if (s->s_next)
        s->s_next->s_prev = s->s_prev;
    grpc_call_set_data(s->s_call, NULL);
    watch_release(h, s, sizeof *s);
}

/* Ends the failed streams' calls.  Only at the end of an entry point: the
 * walks over watches and streams never see a stream disappear. */
static void watch_reap(struct watch_hub *h)
{
    struct watch_stream *next;
    for (struct watch_stream *s = h->h_streams; s && h->h_n_failed; s = next) {
        next = s->s_next;
        if (!s->s_failed)
            continue;
        struct grpc_call *call = s->s_call;
        int err = s->s_err;
        watch_stream_free(s);
        grpc_call_fail(call, (int)err_grpc_code(err), err_msg(err));
    }
}

/* ---- responses ---- */

static void watch_header(const struct watch_hub *h, int64_t rev, struct api_header *hdr)
{
    memset(hdr, 0, sizeof *hdr);
    h->h_ident(h->h_ident_ctx, hdr);
    hdr->revision = rev;
}

static int watch_send(struct watch_stream *s, const struct watch_wire *resp)
{
    if (s->s_failed)
        return -1;
    if (grpc_call_send(s->s_call, &watch_wire_desc, resp) < 0) {
        watch_stream_fail(s, ERR_NOMEM);
        return -1;
    }
    return 0;
}

/* Whether s's client reads too slowly to be sent live events: more than
 * queue_max >> shift unread on its stream, or WATCH_CONN_QUEUES times that
 * on its connection.  shift 1: not yet back to half of that, where a
 * catch-up resumes. */
static bool watch_stream_behind(const struct watch_hub *h, const struct watch_stream *s,
                                unsigned shift)
{
    size_t max = h->h_queue_max >> shift;
    return grpc_call_queued(s->s_call) > max ||
           grpc_call_conn_queued(s->s_call) > max * WATCH_CONN_QUEUES;
}

/* A response about the watch itself (created, canceled, compacted, a
 * progress request's answer), with a header at rev. */
static int watch_send_ctrl(struct watch_stream *s, const struct watch_wire *resp, int64_t rev)
{
    struct watch_hub *h = s->s_hub;
    struct api_header hdr;
    if (grpc_call_queued(s->s_call) > h->h_queue_max * WATCH_HARD_QUEUE_FACTOR) {
        watch_stream_fail(s, ERR_TOO_MANY_REQUESTS);
        return -1;
    }
    watch_header(h, rev, &hdr);
    struct watch_wire out = *resp;
    out.header = &hdr;
    return watch_send(s, &out);
}

/* Events for w, split as etcd's sendFragments when w asked for fragments
 * and the response reaches max_resp_bytes: each part takes events while it
 * stays below the limit (its first event always), all but the last say
 * fragment.  0 or -1 (the stream failed). */
static int watch_send_events(struct watch_hub *h, struct watch_watcher *w, int64_t rev,
                             struct pb_bytes *evs, size_t n)
{
    struct api_header hdr;
    watch_header(h, rev, &hdr);
    struct watch_wire resp = {.header = &hdr, .watch_id = w->w_id, .events = evs, .n_events = n};
    size_t max = h->h_max_resp;
    if (!w->w_fragment || !max || n < 2 || pb_encoded_size(&watch_wire_desc, &resp) < max)
        return watch_send(w->w_stream, &resp);
    resp.fragment = true;
    resp.n_events = 0;
    size_t base = pb_encoded_size(&watch_wire_desc, &resp);
    size_t idx = 0;
    for (;;) {
        size_t start = idx, size = base;
        while (idx < n) {
            size_t es = 1 + pb_varint_size(evs[idx].len) + evs[idx].len;
            if (idx > start && size + es >= max)
                break;
            size += es;
            idx++;
        }
        resp.events = evs + start;
        resp.n_events = idx - start;
        resp.fragment = idx < n;
        if (watch_send(w->w_stream, &resp) < 0)
            return -1;
        if (idx == n)
            return 0;
    }
}

/* etcd's filterNoPut / filterNoDelete. */
static bool watch_filtered(const struct watch_watcher *w, int32_t type)
{
    return type == API_EVENT_PUT ? w->w_noput : w->w_nodelete;
}

/* Appends ev's encoding (with prev_kv if asked and there is one) to h_enc.
 * 0 or -1 (h_enc unchanged). */
static int watch_encode(struct watch_hub *h, const struct mvcc_event *ev, bool prev, size_t *off,
                        size_t *len)
{
    struct api_kv kv = ev->kv, pkv = ev->prev;
    struct api_event e = {.type = ev->type, .kv = &kv,
                          .prev_kv = prev && ev->has_prev ? &pkv : NULL};
    size_t start = h->h_enc.len;
    if (pb_encode(&api_event_desc, &e, &h->h_enc) < 0) {
        h->h_enc.len = start;
        return -1;
    }
    *off = start;
    *len = h->h_enc.len - start;
    return 0;
}

/* Scratch that one huge write or batch grew is given back. */
static void watch_scratch_trim(struct watch_hub *h)
{
    h->h_enc.len = 0;
    if (h->h_enc.cap > WATCH_SCRATCH_KEEP)
        mem_buf_free(&h->h_enc);
    if (h->h_cap_pairs * sizeof *h->h_pairs > WATCH_SCRATCH_KEEP) {
        mem_free(h->h_pairs);
        h->h_pairs = NULL;
        h->h_cap_pairs = 0;
    }
    if (h->h_cap_touched * sizeof *h->h_touched > WATCH_SCRATCH_KEEP) {
        mem_free(h->h_touched);
        h->h_touched = NULL;
        h->h_cap_touched = 0;
    }
    mem_arena_reset(&h->h_arena);
}

/* ---- live events ---- */

/* Records that event ev is for w.  On OOM sets h_oom: the dispatch then
 * falls back to history for everyone (nothing has been sent yet). */
static void watch_pair_add(struct watch_hub *h, struct watch_watcher *w, size_t ev)
{
    if (h->h_oom)
        return;
    if (h->h_n_pairs == h->h_cap_pairs) {
        size_t cap = h->h_cap_pairs ? h->h_cap_pairs * 2 : 64;
        struct watch_pair *p = cap <= SIZE_MAX / sizeof *p ? mem_realloc(h->h_pairs, cap * sizeof *p)
                                                           : NULL;
        if (!p) {
            h->h_oom = true;
            return;
        }
        h->h_pairs = p;
        h->h_cap_pairs = cap;
    }
    if (w->w_mark != h->h_mark) {
        if (h->h_n_touched == h->h_cap_touched) {
            size_t cap = h->h_cap_touched ? h->h_cap_touched * 2 : 64;
            struct watch_watcher **t =
                cap <= SIZE_MAX / sizeof *t ? mem_realloc(h->h_touched, cap * sizeof *t) : NULL;
            if (!t) {
                h->h_oom = true;
                return;
            }
            h->h_touched = t;
            h->h_cap_touched = cap;
        }
        h->h_touched[h->h_n_touched++] = w;
        w->w_mark = h->h_mark;
        w->w_first = h->h_n_pairs;
    } else {
        h->h_pairs[w->w_last].p_next = h->h_n_pairs;
    }
    w->w_last = h->h_n_pairs;
    h->h_pairs[h->h_n_pairs++] = (struct watch_pair){ev, WATCH_NO_IDX};
}

/* v as a varint at p; returns its length (at most 10). */
static size_t watch_put_varint(uint8_t *p, uint64_t v)
{
    size_t k = 0;
    for (; v >= 0x80; v >>= 7)
        p[k++] = (uint8_t)(v | 0x80);
    p[k++] = (uint8_t)v;
    return k;
}

/* Appends ev (with prev_kv if asked and there is one) to h_enc as a
 * WatchResponse events field: tag, length, Event.  0 or -1 (h_enc
 * unchanged). */
static int watch_encode_record(struct watch_hub *h, const struct mvcc_event *ev, bool prev,
                               size_t *off, size_t *len)
{
    struct api_kv kv = ev->kv, pkv = ev->prev;
    struct api_event e = {.type = ev->type, .kv = &kv,
                          .prev_kv = prev && ev->has_prev ? &pkv : NULL};
    size_t n = pb_encoded_size(&api_event_desc, &e);
    size_t start = h->h_enc.len;
    if (n > SIZE_MAX - 11 || mem_buf_reserve(&h->h_enc, 11 + n) < 0)
        return -1;
    uint8_t *p = h->h_enc.data + start;
    p[0] = WATCH_EVENTS_FIELD << 3 | 2;
    size_t k = 1 + watch_put_varint(p + 1, n);
    pb_encode_to(&api_event_desc, &e, p + k, n);
    h->h_enc.len = start + k + n;
    *off = start;
    *len = k + n;
    return 0;
}

/* Sends w the events chained from w_first: head (the header field) and
 * w's id, then slices of blob, one per run of events that lie next to each
 * other in it (all of them, for a watch on a key or a range that gets the
 * whole write).  pcs has room for a piece per event and one more, evs for
 * an Event per event (a fragmented response). */
static void watch_deliver(struct watch_hub *h, struct watch_watcher *w,
                          const struct watch_enc *enc, struct h2_blob *blob, const uint8_t *head,
                          size_t head_len, struct h2_piece *pcs, struct pb_bytes *evs,
                          int64_t rev)
{
    struct watch_stream *s = w->w_stream;
    int form = w->w_prev_kv;
    uint8_t hb[WATCH_HEAD_MAX];
    memcpy(hb, head, head_len);
    size_t hl = head_len;
    if (w->w_id) { /* int64 as pb writes it: absent when 0 */
        hb[hl++] = 2 << 3;
        hl += watch_put_varint(hb + hl, (uint64_t)w->w_id);
    }
    pcs[0] = (struct h2_piece){hb, hl, NULL};
    size_t k = 1, n = 0, size = hl;
    for (size_t p = w->w_first; p != WATCH_NO_IDX; p = h->h_pairs[p].p_next) {
        const struct watch_enc *e = &enc[h->h_pairs[p].p_ev];
        const uint8_t *r = blob->b_data + e->e_off[form];
        if (k > 1 && pcs[k - 1].p + pcs[k - 1].len == r)
            pcs[k - 1].len += e->e_len[form];
        else
            pcs[k++] = (struct h2_piece){r, e->e_len[form], blob};
        size += e->e_len[form];
        n++;
    }
    int rc = -1;
    if (w->w_fragment && h->h_max_resp && n >= 2 && size >= h->h_max_resp) {
        n = 0;
        for (size_t p = w->w_first; p != WATCH_NO_IDX; p = h->h_pairs[p].p_next) {
            const struct watch_enc *e = &enc[h->h_pairs[p].p_ev];
            const uint8_t *r = blob->b_data + e->e_off[form];
            uint64_t el; /* the Event itself, past the record's tag and length */
            size_t vl = pb_get_varint(r + 1, e->e_len[form] - 1, &el);
            evs[n++] = (struct pb_bytes){r + 1 + vl, (size_t)el};
        }
        rc = watch_send_events(h, w, rev, evs, n);
    } else if (!s->s_failed) {
        rc = grpc_call_send_pieces(s->s_call, pcs, k);
        if (rc < 0)
            watch_stream_fail(s, ERR_NOMEM);
    }
    if (rc == 0)
        w->w_progress_due = false;
}

/* The n events of revision rev (the store's last write) to every synced
 * watch they are for: first every match is collected, then the events the
 * matched watches need are encoded, each once per form and in order, into
 * one blob, and each watch gets one response referencing it. */
static void watch_dispatch(struct watch_hub *h, size_t n, int64_t rev)
{
    h->h_mark++;
    h->h_n_pairs = 0;
    h->h_n_touched = 0;
    h->h_oom = false;
    for (size_t i = 0; i < n && !h->h_oom; i++) {
        struct mvcc_event ev;
        mvcc_last_event(h->h_mvcc, i, &ev);
        watch_stab(h, h->h_ranges, ev.kv.key.p, ev.kv.key.len, i, ev.type, rev);
    }
    if (!h->h_n_touched && !h->h_oom)
        return;
    struct watch_enc *enc = NULL;
    struct pb_bytes *evs = NULL;
    struct h2_piece *pcs = NULL;
    if (!h->h_oom && n < SIZE_MAX / sizeof *enc) {
        enc = mem_arena_alloc(&h->h_arena, n * sizeof *enc);
        evs = mem_arena_alloc(&h->h_arena, n * sizeof *evs);
        pcs = mem_arena_alloc(&h->h_arena, (n + 1) * sizeof *pcs);
    }
    if (!enc || !evs || !pcs) {
        watch_resync_all(h, rev);
        return;
    }
    for (size_t i = 0; i < n; i++)
        enc[i].e_off[0] = enc[i].e_off[1] = WATCH_NO_IDX;
    for (size_t t = 0; t < h->h_n_touched; t++) {
        const struct watch_watcher *w = h->h_touched[t];
        for (size_t p = w->w_first; p != WATCH_NO_IDX; p = h->h_pairs[p].p_next)
            enc[h->h_pairs[p].p_ev].e_off[w->w_prev_kv] = WATCH_NEEDED;
    }
    h->h_enc.len = 0;
    for (int form = 0; form < 2; form++)
        for (size_t i = 0; i < n; i++) {
            struct watch_enc *e = &enc[i];
            if (e->e_off[form] != WATCH_NEEDED)
                continue;
            struct mvcc_event ev;
            mvcc_last_event(h->h_mvcc, i, &ev);
            if (watch_encode_record(h, &ev, form, &e->e_off[form], &e->e_len[form]) < 0) {
                watch_resync_all(h, rev);
                return;
            }
        }
    struct h2_blob *blob = h2_blob_new(h->h_enc.data, h->h_enc.len);
    if (!blob) {
        watch_resync_all(h, rev);
        return;
    }
    struct api_header hdr;
    watch_header(h, rev, &hdr);
    struct watch_wire hw = {.header = &hdr};
    uint8_t head[WATCH_HEAD_MAX];
    size_t head_len = pb_encoded_size(&watch_wire_desc, &hw);
    assert(head_len + 11 <= sizeof head);
    pb_encode_to(&watch_wire_desc, &hw, head, head_len);
    for (size_t t = 0; t < h->h_n_touched; t++) {
        struct watch_watcher *w = h->h_touched[t];
        if (w->w_stream->s_failed)
            continue;
        /* a client that does not read: history will be its buffer */
        if (watch_stream_behind(h, w->w_stream, 0)) {
            watch_detach(h, w);
            watch_set_unsynced(h, w, rev);
            continue;
        }
        watch_deliver(h, w, enc, blob, head, head_len, pcs, evs, rev);
    }
    h2_blob_put(blob);
}

/* Brings the watches up to the store: the last write's events if it is the
 * one revision they have not seen, history otherwise. */
static void watch_sync(struct watch_hub *h)
{
    int64_t rev = mvcc_rev(h->h_mvcc);
    if (rev == h->h_rev)
        return;
    size_t n = mvcc_last_n_events(h->h_mvcc);
    struct mvcc_event first;
    if (n)
        mvcc_last_event(h->h_mvcc, 0, &first);
    if (rev != h->h_rev + 1 || !n || first.kv.mod_revision != rev) {
        watch_resync_all(h, h->h_rev + 1);
        h->h_rev = rev;
        return;
    }
    h->h_rev = rev;
    if (h->h_ranges)
        watch_dispatch(h, n, rev);
    watch_scratch_trim(h);
}

void watch_hub_notify(struct watch_hub *h)
{
    watch_sync(h);
    watch_reap(h);
    if (h->h_n_unsynced)
        watch_arm(h, WATCH_RETRY_MS);
}

/* ---- history ---- */

/* etcd's chooseAll: a watch behind the compacted revision is told so (with
 * a header at revision 0, as etcd's response carries none) and dropped;
 * etcd's canceled flag is compact_revision != 0. */
static void watch_compacted(struct watch_hub *h, struct watch_watcher *w, int64_t compact)
{
    watch_detach(h, w);
    w->w_state = WATCH_COMPACTED;
    watch_range_put(h, w->w_range);
    w->w_range = NULL;
    struct watch_wire resp = {.watch_id = w->w_id, .compact_revision = compact,
                              .canceled = compact != 0};
    (void)watch_send_ctrl(w->w_stream, &resp, 0);
}

/* One batch of history for w: whole revisions, up to h_batch_events events
 * and about WATCH_BATCH_BYTES encoded, with a header at the current
 * revision as etcd's syncWatchers sends.  w is synced once it has read up
 * to the present. */
static void watch_catch_up(struct watch_hub *h, struct watch_watcher *w, size_t *budget)
{
    int64_t compact = mvcc_compact_main_rev(h->h_mvcc);
    if (w->w_min_rev < compact) {
        watch_compacted(h, w, compact);
        return;
    }
    const struct watch_span *sp = &w->w_range->r_span;
    static const uint8_t open_end = 0;
    struct pb_bytes key = {sp->sp_key, sp->sp_klen};
    struct pb_bytes end = sp->sp_open ? (struct pb_bytes){&open_end, 1}
                                      : (struct pb_bytes){sp->sp_end, sp->sp_elen};
    struct mvcc_event *evs;
    size_t n, k = 0, bytes = 0;
    int64_t next;
    mem_arena_reset(&h->h_arena);
    h->h_enc.len = 0;
    int rc = mvcc_events_since(h->h_mvcc, key, end, w->w_min_rev, h->h_batch_events,
                               WATCH_BATCH_BYTES, &h->h_arena, &evs, &n, &next);
    if (rc < 0) {
        watch_stream_fail(w->w_stream, -rc);
        return;
    }
    size_t *offs = n ? mem_arena_alloc(&h->h_arena, n * sizeof *offs) : NULL;
    struct pb_bytes *out = n ? mem_arena_alloc(&h->h_arena, n * sizeof *out) : NULL;
    if (n && (!offs || !out)) {
        watch_stream_fail(w->w_stream, ERR_NOMEM);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        int64_t r = evs[i].kv.mod_revision;
        if (i && r != evs[i - 1].kv.mod_revision && bytes >= WATCH_BATCH_BYTES) {
            next = r;
            break;
        }
        if (watch_filtered(w, evs[i].type))
            continue;
        if (watch_encode(h, &evs[i], w->w_prev_kv, &offs[k], &out[k].len) < 0) {
            watch_stream_fail(w->w_stream, ERR_NOMEM);
            return;
        }
        bytes += out[k++].len;
    }
    for (size_t i = 0; i < k; i++)
        out[i].p = h->h_enc.data + offs[i];
    if (k) {
        if (watch_send_events(h, w, h->h_rev, out, k) < 0)
            return;
        w->w_progress_due = false;
        *budget = *budget > k ? *budget - k : 0;
    }
    w->w_min_rev = next;
    if (next > h->h_rev) {
        watch_detach(h, w);
        watch_set_synced(w);
    }
}

/* One round over the unsynced watches, round robin, within the run's
 * budget; a watch whose stream is still above half its queue bound waits.
 * Returns whether a watch that could be served is still behind (so the
 * next run should come soon). */
static bool watch_catch_up_all(struct watch_hub *h, bool *served)
{
    size_t budget = WATCH_RUN_EVENTS, batches = WATCH_RUN_BATCHES;
    *served = false;
    size_t rounds = h->h_n_unsynced;
    bool more = false;
    while (rounds-- && h->h_unsynced) {
        struct watch_watcher *w = h->h_unsynced;
        struct watch_stream *s = w->w_stream;
        bool ready = !s->s_failed && !watch_stream_behind(h, s, 1);
        if (ready && (!budget || !batches))
            return true;
        if (ready) {
            batches--;
            *served = true;
            watch_catch_up(h, w, &budget);
            more |= w->w_state == WATCH_UNSYNCED;
        }
        if (w->w_state == WATCH_UNSYNCED && h->h_unsynced == w && w->w_next) {
            /* to the back of the queue */
            watch_list_del(&h->h_unsynced, &h->h_unsynced_tail, w);
            w->w_prev = h->h_unsynced_tail;
            h->h_unsynced_tail->w_next = w;
            h->h_unsynced_tail = w;
        }
    }
    return more;
}

/* ---- timer: catch-up and progress notifications ---- */

/* etcd's progress ticker, per stream: at each tick every progress_notify
 * watch that was sent nothing since the previous tick and is synced gets a
 * response without events at the current revision. */
static void watch_progress(struct watch_hub *h, uint64_t now)
{
    uint64_t next = UINT64_MAX;
    for (struct watch_stream *s = h->h_streams; s; s = s->s_next) {
        if (!s->s_n_progress || s->s_failed)
            continue;
        if (s->s_due <= now) {
            for (struct watch_watcher *w = s->s_watchers; w; w = w->w_snext) {
                if (!w->w_progress)
                    continue;
                /* a full stream is receiving events: etcd's send finds its
                 * channel full and skips the notification too */
                if (w->w_progress_due && w->w_state == WATCH_SYNCED &&
                    !watch_stream_behind(h, s, 0)) {
                    struct api_header hdr;
                    watch_header(h, h->h_rev, &hdr);
                    struct watch_wire resp = {.header = &hdr, .watch_id = w->w_id};
                    if (watch_send(s, &resp) < 0)
                        break;
                }
                w->w_progress_due = true;
            }
            while (s->s_due <= now)
                s->s_due += s->s_period;
        }
        if (s->s_due < next)
            next = s->s_due;
    }
    h->h_progress_next = next;
}

/* The timer fires in delay ms, or earlier if it already does. */
static void watch_arm(struct watch_hub *h, uint64_t delay)
{
    uint64_t due = loop_now_ms(h->h_loop) + delay;
    if (h->h_timer && h->h_timer_due <= due)
        return;
    if (h->h_timer)
        loop_timer_cancel(h->h_loop, h->h_timer);
    /* 0 on OOM: the next notify or request arms it again */
    h->h_timer = loop_timer_add(h->h_loop, delay, watch_timer_fire, h);
    h->h_timer_due = due;
}

static void watch_run(struct watch_hub *h, uint64_t now)
{
    watch_sync(h);
    bool served, more = watch_catch_up_all(h, &served);
    if (served)
        h->h_fast_runs = WATCH_FAST_RUNS;
    else if (h->h_fast_runs)
        h->h_fast_runs--;
    if (now >= h->h_progress_next)
        watch_progress(h, now);
    watch_reap(h);
    watch_scratch_trim(h);
    /* at least 1 ms: a timer added for "now" inside a timer callback would
     * run again in the same loop turn */
    uint64_t delay = UINT64_MAX;
    if (h->h_n_unsynced)
        delay = more || h->h_fast_runs ? 1 : WATCH_RETRY_MS;
    if (h->h_progress_next != UINT64_MAX) {
        uint64_t d = h->h_progress_next > now ? h->h_progress_next - now : 1;
        if (d < delay)
            delay = d;
    }
    if (delay != UINT64_MAX)
        watch_arm(h, delay);
}

static void watch_timer_fire(struct loop *l, void *arg)
{
    struct watch_hub *h = arg;
    h->h_timer = 0;
    watch_run(h, loop_now_ms(l));
}

/* ---- requests ---- */

static void watch_create_fail(struct watch_stream *s, const char *reason)
{
    struct watch_wire resp = {.watch_id = -1, .created = true, .canceled = true,
                              .cancel_reason = {(const uint8_t *)reason, strlen(reason)}};
    (void)watch_send_ctrl(s, &resp, s->s_hub->h_rev);
}

/* recvLoop's create, then watchStream.Watch and watchableStore.watch.
 * Everything that can fail is done before the created response goes out,
 * so a created watch is a working one. */
static void watch_create(struct watch_stream *s, const struct api_watch_create_req *cr,
                         struct mem_arena *a, uint64_t now)
{
    struct watch_hub *h = s->s_hub;
    static const uint8_t zero = 0;
    struct watch_span sp = {cr->key.p, cr->key.len, cr->range_end.p, cr->range_end.len, false};
    if (!sp.sp_klen) { /* "\0" is the smallest key */
        sp.sp_key = &zero;
        sp.sp_klen = 1;
    }
    if (sp.sp_elen == 1 && sp.sp_end[0] == 0) {
        sp.sp_open = true;
    } else if (!sp.sp_elen) {
        uint8_t *e = sp.sp_klen < SIZE_MAX ? mem_arena_alloc(a, sp.sp_klen + 1) : NULL;
        if (!e)
            return watch_create_fail(s, err_msg(ERR_NOMEM));
        memcpy(e, sp.sp_key, sp.sp_klen);
        e[sp.sp_klen] = 0;
        sp.sp_end = e;
        sp.sp_elen = sp.sp_klen + 1;
    } else if (watch_bcmp(sp.sp_key, sp.sp_klen, sp.sp_end, sp.sp_elen) >= 0) {
        return watch_create_fail(s, "mvcc: watcher range is empty");
    }
    int64_t id = cr->watch_id;
    if (id == 0) { /* clientv3.AutoWatchID */
        while (watch_find(h, s, s->s_next_id))
            s->s_next_id++;
        id = s->s_next_id++;
    } else if (watch_find(h, s, id)) {
        return watch_create_fail(s, "mvcc: duplicate watch ID provided on the WatchStream");
    }

    struct watch_watcher *w = watch_alloc(h, sizeof *w);
    struct watch_range *r = w && watch_hash_reserve(h) == 0 ? watch_range_get(h, &sp) : NULL;
    if (!r) {
        watch_release(h, w, sizeof *w);
        return watch_create_fail(s, err_msg(ERR_NOMEM));
    }
    struct watch_wire resp = {.watch_id = id, .created = true};
    int64_t cur = h->h_rev;
    if (watch_send_ctrl(s, &resp, cur) < 0) {
        watch_range_put(h, r);
        watch_release(h, w, sizeof *w);
        return;
    }
    w->w_stream = s;
    w->w_range = r;
    w->w_id = id;
    w->w_prev_kv = cr->prev_kv;
    w->w_fragment = cr->fragment;
    for (size_t i = 0; i < cr->n_filters; i++) {
        if (cr->filters[i] == API_WATCH_NOPUT)
            w->w_noput = true;
        else if (cr->filters[i] == API_WATCH_NODELETE)
            w->w_nodelete = true;
    }
    size_t b = watch_hash(s, id, h->h_n_buckets);
    w->w_hnext = h->h_buckets[b];
    h->h_buckets[b] = w;
    h->h_n_watchers++;
    w->w_snext = s->s_watchers;
    if (s->s_watchers)
        s->s_watchers->w_sprev = w;
    s->s_watchers = w;
    if (cr->progress_notify) {
        w->w_progress = true;
        w->w_progress_due = true;
        if (!s->s_n_progress++) {
            /* the stream's ticker has been running since it opened */
            while (s->s_due <= now)
                s->s_due += s->s_period;
            if (s->s_due < h->h_progress_next) {
                h->h_progress_next = s->s_due;
                watch_arm(h, s->s_due - now);
            }
        }
    }
    /* start 0 means the next revision; a start in the future is synced too
     * and only gets events from it on */
    int64_t start = cr->start_revision ? cr->start_revision : cur + 1;
    if (start > cur) {
        w->w_min_rev = start;
        watch_set_synced(w);
    } else {
        watch_set_unsynced(h, w, start);
        watch_arm(h, 0);
    }
}

/* Canceling an unknown id answers nothing, as etcd. */
static void watch_cancel(struct watch_stream *s, int64_t id)
{
    struct watch_hub *h = s->s_hub;
    struct watch_watcher *w = watch_find(h, s, id);
    if (!w)
        return;
    watch_watcher_free(h, w);
    struct watch_wire resp = {.watch_id = id, .canceled = true};
    (void)watch_send_ctrl(s, &resp, h->h_rev);
}

void watch_on_message(struct watch_hub *h, struct grpc_call *call, void *reqp)
{
    const struct api_watch_req *req = reqp;
    uint64_t now = loop_now_ms(h->h_loop);
    struct watch_stream *s = grpc_call_data(call);
    if (!s) {
        s = watch_alloc(h, sizeof *s);
        if (!s) {
            grpc_call_fail(call, (int)err_grpc_code(ERR_NOMEM), err_msg(ERR_NOMEM));
            return;
        }
        s->s_hub = h;
        s->s_call = call;
        /* etcd adds rand(interval / 10) of jitter per stream */
        s->s_period = h->h_progress_ms + watch_rand(h) % (h->h_progress_ms / 10);
        s->s_due = now + s->s_period;
        s->s_next = h->h_streams;
        if (h->h_streams)
            h->h_streams->s_prev = s;
        h->h_streams = s;
        grpc_call_set_data(call, s);
    }
    /* headers and start revisions must be those of the store as it is */
    watch_sync(h);
    if (!s->s_failed) {
        if (req->create_request)
            watch_create(s, req->create_request, grpc_call_arena(call), now);
        else if (req->cancel_request)
            watch_cancel(s, req->cancel_request->watch_id);
        else if (req->progress_request) {
            /* not about any watch: clientv3 hands it to every one */
            struct watch_wire resp = {.watch_id = -1};
            (void)watch_send_ctrl(s, &resp, h->h_rev);
        }
    }
    watch_reap(h);
    if (h->h_n_unsynced)
        watch_arm(h, WATCH_RETRY_MS);
}

void watch_on_end(struct grpc_call *call, bool reset)
{
    struct watch_stream *s = grpc_call_data(call);
    /* a half-close keeps the stream: etcd serves it until the client
     * cancels the call */
    if (s && reset)
        watch_stream_free(s);
}

/* ---- the hub ---- */

struct watch_hub *watch_hub_new(struct loop *loop, struct mvcc *m, const struct watch_config *cfg)
{
    struct watch_hub *h = mem_calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->h_loop = loop;
    h->h_mvcc = m;
    h->h_max_resp = cfg->max_resp_bytes;
    h->h_progress_ms = cfg->progress_ms ? cfg->progress_ms : WATCH_DEFAULT_PROGRESS_MS;
    if (h->h_progress_ms < WATCH_MIN_PROGRESS_MS)
        h->h_progress_ms = WATCH_MIN_PROGRESS_MS;
    h->h_queue_max = cfg->queue_max ? cfg->queue_max : WATCH_DEFAULT_QUEUE;
    h->h_batch_events = WATCH_BATCH_EVENTS;
    h->h_ident = cfg->ident;
    h->h_ident_ctx = cfg->ident_ctx;
    h->h_rev = mvcc_rev(m);
    h->h_rand = 0x2545F4914F6CDD1Dull;
    h->h_progress_next = UINT64_MAX;
    mem_arena_init(&h->h_arena, 0);
    return h;
}

void watch_hub_free(struct watch_hub *h)
{
    if (!h)
        return;
    while (h->h_streams)
        watch_stream_free(h->h_streams);
    if (h->h_timer)
        loop_timer_cancel(h->h_loop, h->h_timer);
    watch_release(h, h->h_buckets, h->h_n_buckets * sizeof *h->h_buckets);
    assert(h->h_bytes == 0 && !h->h_ranges);
    mem_free(h->h_pairs);
    mem_free(h->h_touched);
    mem_buf_free(&h->h_enc);
    mem_arena_free(&h->h_arena);
    mem_free(h);
}

size_t watch_hub_watchers(const struct watch_hub *h)
{
    return h->h_n_watchers;
}

size_t watch_hub_unsynced(const struct watch_hub *h)
{
    return h->h_n_unsynced;
}

size_t watch_hub_bytes(const struct watch_hub *h)
{
    return h->h_bytes;
}
