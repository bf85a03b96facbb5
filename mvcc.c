/* mvcc.c - the multi-version key-value store (see mvcc.h).
 *
 * Owns: the current and compacted revisions; the key index, an in-memory
 * B+tree of key records in bytewise order, each record holding every revision
 * of its key that compaction has kept (and, for those in memory, value,
 * lease, create revision and version; a tombstone ends a generation); which
 * revisions' KeyValues may be evicted once the backend holds them, and
 * reading them back through the caller's loader; etcd 3.4's Range/Put/DeleteRange/
 * Txn semantics as its applier (etcdserver/apply.go) and store
 * (mvcc/kvstore_txn.go, key_index.go) define them; the API layer's txn
 * validation (v3rpc/key.go checkTxnRequest, checkIntervals); compaction.
 *
 * Does not own: leases (a lease id is a number kept with each revision;
 * existence is asked of the caller through an optional hook), response
 * headers beyond `revision`, encoding, durability, watchers.  Every change
 * goes through one write transaction (struct mvcc_wtxn) whose change log
 * (mv_changes) lists the revisions it appended: the event feed
 * (mvcc_last_event) reads it, for watchers and for a backend batch (17-byte
 * revision key -> KeyValue).  History for watchers that fall behind is read
 * from the key records themselves (mvcc_events_since): there is no index by
 * revision, so a catch-up batch walks the watched range once.
 */
#include "mvcc.h"

#include <assert.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "err.h"

/* ---- types ---- */

/* The rest of a put's mvccpb.KeyValue, while it is in memory. */
struct mvcc_val {
    int64_t l_create;  /* create revision of the generation */
    int64_t l_version; /* 1, 2, ... within a generation */
    int64_t l_lease;
    size_t l_len;
    uint8_t l_bytes[];
};

/* One revision of a key, as etcd's keyIndex holds it, and what is in
 * memory of the KeyValue the backend stores under it: everything, or, once
 * evicted, nothing (the backend has it).  Evicted revisions are kept packed
 * (struct mvcc_hist); this is their unpacked form. */
struct mvcc_ver {
    int64_t v_main;
    int64_t v_sub;
    struct mvcc_val *v_val; /* owned; MVCC_TOMB for a tombstone, NULL once evicted */
};

/* The v_val of every tombstone (which has no KeyValue to keep). */
static struct mvcc_val mvcc_tomb_val;
#define MVCC_TOMB (&mvcc_tomb_val)
#define MVCC_IS_TOMB(v) ((v)->v_val == MVCC_TOMB)
#define MVCC_EVICTED(v) (!(v)->v_val)

/* Where a group of packed revisions starts: revision m_idx of the key, of
 * main revision m_main, is encoded at byte m_off (with a delta of 0). */
struct mvcc_mark {
    int64_t m_main;
    uint32_t m_off;
    uint32_t m_idx;
};

/* A key's evicted revisions, oldest first, packed: a history of hot keys is
 * most of the index, and its revisions are dense.  Each is a varint of
 * (main - previous main) << 2 | tombstone << 1 | (sub != 0), then the sub
 * as a varint if it is not 0: mostly one byte.  Every MVCC_HIST_GROUP
 * revisions a mark lets lookups start without decoding what comes before. */
struct mvcc_hist {
    uint8_t *h_bytes;         /* owned */
    struct mvcc_mark *h_marks; /* owned, ascending */
    uint32_t h_n;             /* revisions */
    uint32_t h_len, h_cap;    /* bytes used, allocated */
    uint32_t h_n_marks, h_cap_marks;
    int64_t h_last;           /* main of the newest */
};

#define MVCC_HIST_GROUP 32
#define MVCC_HIST_ENTRY_MAX 20 /* two 10-byte varints */

/* A key and its kept revisions, oldest first: the first k_res packed in
 * k_hist, the rest (its newest at least) in k_vers, revision i at
 * k_vers[i - k_res].  A record with no revisions is a ghost left by a
 * rolled-back transaction: it reads as absent at every revision and the next
 * compaction frees it. */
struct mvcc_key {
    struct mvcc_ver *k_vers; /* owned array, ascending (main, sub) */
    struct mvcc_hist *k_hist; /* owned; NULL while k_res is 0 */
    size_t k_n;
    size_t k_cap;    /* of k_vers */
    size_t k_res;    /* revisions evicted into k_hist */
    bool k_queued;   /* in mv_dirty */
    size_t k_len;
    uint8_t k_bytes[];
};

/* A walk over a key's revisions in order (mvcc_cur_init, mvcc_cur_next). */
struct mvcc_cur {
    const struct mvcc_key *u_key;
    size_t u_i;          /* the revision mvcc_cur_next returns */
    const uint8_t *u_p;  /* in k_hist: where revision u_i is encoded */
    uint32_t u_mark;     /* in k_hist: the group u_main belongs to */
    int64_t u_main;      /* in k_hist: the main the next delta adds to */
};

/* B+tree node.  Leaves hold the key records (owned by the store, not by the
 * node) and are chained in key order; an inner node's n_keys[i] is the
 * smallest key under n_child[i] (exact for i > 0: keys are never removed from
 * a tree, compaction builds a new one; n_keys[0] is never consulted).
 *
 * The keys a search compares (a leaf's all, an inner node's from 1 on) share
 * their first n_lcp bytes, and n_slice[i] holds the 8 bytes of n_keys[i] that
 * follow, so a binary search mostly compares integers in the node instead of
 * following a pointer to each key: etcd's keys share long prefixes
 * ("/registry/pods/...") and each key record is a cache miss. */
#define MVCC_FANOUT 64
#define MVCC_MAX_HEIGHT 32

struct mvcc_node {
    unsigned n_n;
    bool n_leaf;
    size_t n_lcp;
    struct mvcc_node *n_next; /* leaf: next leaf; spare: next spare */
    uint64_t n_slice[MVCC_FANOUT];
    struct mvcc_key *n_keys[MVCC_FANOUT];
    struct mvcc_node *n_child[]; /* inner nodes only */
};

#define MVCC_LEAF_SIZE (offsetof(struct mvcc_node, n_child))
#define MVCC_INNER_SIZE (MVCC_LEAF_SIZE + MVCC_FANOUT * sizeof(struct mvcc_node *))

struct mvcc_tree {
    struct mvcc_node *t_root;        /* owned; NULL when empty */
    int t_height;                    /* levels including the leaves */
    size_t t_n_keys;
    /* Nodes set aside by mvcc_tree_reserve so that an insert cannot fail
     * half-way through its splits; owned, chained through n_next. */
    struct mvcc_node *t_spare_leaf;
    struct mvcc_node *t_spare_inner;
    int t_n_spare_inner;
};

struct mvcc_iter {
    const struct mvcc_node *i_leaf; /* NULL at the end */
    unsigned i_pos;
};

/* Where a lookup went: the inner nodes and child indexes on the way and the
 * leaf position where the key is or would go.  Valid until the tree changes,
 * so inserting the key looked up does not search again. */
struct mvcc_path {
    struct mvcc_node *p_node[MVCC_MAX_HEIGHT];
    unsigned p_idx[MVCC_MAX_HEIGHT];
    int p_depth;
    struct mvcc_node *p_leaf; /* NULL in an empty tree */
    unsigned p_pos;
};

/* What a (key, range_end) pair selects, as etcd reads it: an empty range_end
 * is the key alone, "\0" every key >= key, anything else [key, range_end). */
struct mvcc_span {
    struct pb_bytes s_key;
    struct pb_bytes s_end;
    bool s_single;
    bool s_open;
};

struct mvcc_scan {
    const struct mvcc_span *sc_span;
    struct mvcc_iter sc_it;
    struct mvcc_key *sc_single; /* the one record of a single-key span */
};

/* One key visible at the revision a range reads. */
struct mvcc_hit {
    struct mvcc_key *h_key;
    struct mvcc_ver h_ver;
    struct api_kv *h_kv; /* the whole kv, when a filter or sort needs it; else NULL */
};

/* One write of the running (or last committed) write transaction: the
 * revision c_idx appended to c_key. */
struct mvcc_change {
    struct mvcc_key *c_key;
    size_t c_idx;
};

/* One revision of a key, as history reads return it before it becomes a
 * struct mvcc_event. */
struct mvcc_evref {
    const struct mvcc_key *r_key;
    size_t r_idx;
    int64_t r_main;
    int64_t r_sub;
};

struct mvcc {
    struct mvcc_tree mv_tree;
    int64_t mv_rev;     /* current revision */
    int64_t mv_compact; /* etcd's compactMainRev: -1 until the first compaction */
    struct mvcc_change *mv_changes; /* owned */
    size_t mv_n_changes;
    size_t mv_cap_changes;
    struct mvcc_hit *mv_hits; /* owned scratch for ranges and deletes */
    size_t mv_cap_hits;
    bool (*mv_lease_exists)(void *ctx, int64_t lease);
    void *mv_lease_ctx;
    struct mvcc_loader mv_loader; /* .load NULL: values are never evicted */
    bool mv_loaded;               /* the running call used the loader */
    /* Keys with revisions older than their newest whose values are still in
     * memory: what mvcc_evict walks.  Owned array; the records are not. */
    struct mvcc_key **mv_dirty;
    size_t mv_n_dirty, mv_cap_dirty;
};

/* Which member of a RequestOp is set.  api.h promises exactly one; should a
 * caller set several, every pass (path, checks, apply, validation) picks the
 * same one. */
enum mvcc_op { MVCC_OP_NONE, MVCC_OP_RANGE, MVCC_OP_PUT, MVCC_OP_DELETE, MVCC_OP_TXN };

/* A write transaction: every write in it gets main revision w_begin + 1 and
 * the next sub revision; the store's revision moves once, at commit, and only
 * if something was written. */
struct mvcc_wtxn {
    struct mvcc *w_m;
    int64_t w_begin;
};

/* For mvcc_txn_check, a delete as checkIntervals sees it:
 * [i_begin, i_end), only kept when not empty: an empty or inverted interval
 * (a delete whose range_end is "\0" or <= key) intersects no key in etcd's
 * interval tree, and etcd's Union of nested deletes drops the "\0" ones. */
struct mvcc_ivl {
    struct pb_bytes i_begin;
    struct pb_bytes i_end;
};

/* What one list of ops writes, as checkIntervals returns it.  Arena memory. */
struct mvcc_wset {
    struct pb_bytes *w_puts; /* sorted, unique */
    size_t w_n_puts;
    struct mvcc_ivl *w_dels; /* sorted by begin */
    size_t w_n_dels;
    struct pb_bytes *w_maxend; /* w_maxend[i]: the largest end among w_dels[0..i] */
};

/* Scratch hits above this many entries are given back after each call so one
 * huge range does not pin its memory for the life of the store. */
#define MVCC_HITS_KEEP 4096

/* ---- prototypes ---- */

static int mvcc_bcmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn);
static int mvcc_cmp64(int64_t a, int64_t b);
static void mvcc_swap(unsigned char *a, unsigned char *b, size_t size);
static void mvcc_sift(unsigned char *base, size_t root, size_t n, size_t size,
                      int (*cmp)(const void *, const void *, const void *), const void *ctx);
static void mvcc_sort(void *base, size_t n, size_t size,
                      int (*cmp)(const void *, const void *, const void *), const void *ctx);

static struct mvcc_key *mvcc_key_new(const uint8_t *p, size_t n);
static void mvcc_key_free(struct mvcc_key *k);
static int mvcc_key_reserve(struct mvcc_key *k);
static bool mvcc_key_at(const struct mvcc_key *k, int64_t rev, struct mvcc_ver *v);
static const struct mvcc_ver *mvcc_key_latest(const struct mvcc_key *k);
static size_t mvcc_key_compact_from(const struct mvcc_key *k, int64_t rev);
static void mvcc_key_compact(struct mvcc_key *k, size_t from);

static uint64_t mvcc_slice(const uint8_t *p, size_t n, size_t off);
static size_t mvcc_node_prefix(const struct mvcc_node *x);
static void mvcc_node_reslice(struct mvcc_node *x, size_t lcp);
static void mvcc_node_fix(struct mvcc_node *x);
static unsigned mvcc_node_search(const struct mvcc_node *x, const uint8_t *p, size_t n,
                                 bool upper);
static unsigned mvcc_node_route(const struct mvcc_node *x, const uint8_t *p, size_t n);
static unsigned mvcc_node_lower(const struct mvcc_node *x, const uint8_t *p, size_t n);
static void mvcc_node_insert_at(struct mvcc_node *x, unsigned at, struct mvcc_key *k,
                                struct mvcc_node *child);
static struct mvcc_node *mvcc_node_split(struct mvcc_tree *t, struct mvcc_node *x, unsigned at,
                                         struct mvcc_key *k, struct mvcc_node *child);
static void mvcc_node_free(struct mvcc_node *x);
static void mvcc_chain_free(struct mvcc_node *x);
static struct mvcc_key *mvcc_tree_lookup(const struct mvcc_tree *t, const uint8_t *p, size_t n,
                                         struct mvcc_path *path);
static struct mvcc_key *mvcc_tree_find(const struct mvcc_tree *t, const uint8_t *p, size_t n);
static void mvcc_tree_seek(const struct mvcc_tree *t, const uint8_t *p, size_t n,
                           struct mvcc_iter *it);
static struct mvcc_key *mvcc_iter_next(struct mvcc_iter *it);
static int mvcc_tree_reserve(struct mvcc_tree *t);
static void mvcc_tree_insert(struct mvcc_tree *t, struct mvcc_key *k, const struct mvcc_path *path);
static int mvcc_tree_rebuild(const struct mvcc_tree *t, int64_t rev, struct mvcc_tree *out);

static void mvcc_span_make(struct mvcc_span *s, struct pb_bytes key, struct pb_bytes end);
static void mvcc_scan_init(struct mvcc_scan *sc, const struct mvcc_tree *t,
                           const struct mvcc_span *s);
static struct mvcc_key *mvcc_scan_next(struct mvcc_scan *sc);

static void mvcc_wtxn_begin(struct mvcc_wtxn *tx, struct mvcc *m);
static int64_t mvcc_wtxn_read_rev(const struct mvcc_wtxn *tx);
static int mvcc_wtxn_log_reserve(struct mvcc *m);
static int mvcc_wtxn_put(struct mvcc_wtxn *tx, struct mvcc_key *k, const struct mvcc_path *path,
                         struct pb_bytes key, const uint8_t *value, size_t vlen, int64_t lease);
static int mvcc_wtxn_tombstone(struct mvcc_wtxn *tx, struct mvcc_key *k);
static void mvcc_wtxn_commit(struct mvcc_wtxn *tx);
static void mvcc_wtxn_abort(struct mvcc_wtxn *tx);

static int mvcc_hits_push(struct mvcc *m, size_t *n, struct mvcc_key *k,
                          const struct mvcc_ver *v);
static void mvcc_hits_trim(struct mvcc *m);
static int mvcc_collect(struct mvcc *m, const struct mvcc_span *s, int64_t rev, size_t keep,
                        size_t *n_hits, int64_t *count);
static size_t mvcc_prune(struct mvcc_hit *h, size_t n, const struct api_range_req *req);
static int mvcc_hit_cmp(const void *a, const void *b, const void *ctx);
static void mvcc_hits_sort(struct mvcc_hit *h, size_t n, const struct api_range_req *req);
static void mvcc_kv_fill(struct api_kv *kv, const struct mvcc_key *k, const struct mvcc_ver *v,
                         bool with_value);
static int mvcc_range_at(struct mvcc *m, const struct api_range_req *req, int64_t cur,
                         struct mem_arena *a, struct api_range_resp *resp);

static int mvcc_op_put(struct mvcc_wtxn *tx, const struct api_put_req *req, struct mem_arena *a,
                       struct api_put_resp *resp);
static int mvcc_op_delete(struct mvcc_wtxn *tx, const struct api_delete_req *req,
                          struct mem_arena *a, struct api_delete_resp *resp);

static enum mvcc_op mvcc_op_kind(const struct api_request_op *op);
static bool mvcc_compare_ver(const struct api_compare *c, const struct mvcc_ver *v);
static bool mvcc_compare(const struct mvcc *m, const struct api_compare *c, int64_t rev);
static size_t mvcc_txn_nodes(const struct api_txn_req *rt);
static void mvcc_txn_path(const struct mvcc *m, const struct api_txn_req *rt, bool *path,
                          size_t *pos);
static int mvcc_txn_check_puts(const struct mvcc *m, const struct api_txn_req *rt,
                               const bool *path, size_t *pos);
static int mvcc_txn_check_ranges(const struct mvcc *m, const struct api_txn_req *rt,
                                 const bool *path, size_t *pos);
static int mvcc_txn_apply(struct mvcc_wtxn *tx, const struct api_txn_req *rt, const bool *path,
                          size_t *pos, struct mem_arena *a, struct api_txn_resp *resp);

static size_t mvcc_key_from(const struct mvcc_key *k, int64_t rev);
static bool mvcc_prev_of(const struct mvcc_key *k, size_t idx, int64_t main, struct mvcc_ver *pv);
static void mvcc_event_head(const struct mvcc_ver *v, struct mvcc_event *ev);
static int mvcc_evref_cmp(const void *a, const void *b, const void *ctx);
static void mvcc_evref_up(struct mvcc_evref *h, size_t i);
static int mvcc_events_of_rev(struct mvcc *m, const struct mvcc_span *s, int64_t rev,
                              struct mem_arena *a, struct mvcc_evref **out, size_t *n);

static int mvcc_bytes_cmp(const void *a, const void *b, const void *ctx);
static int mvcc_ivl_cmp(const void *a, const void *b, const void *ctx);
static bool mvcc_wset_puts(const struct mvcc_wset *w, struct pb_bytes k);
static bool mvcc_wset_deletes(const struct mvcc_wset *w, struct pb_bytes k);
static int mvcc_wset_finish(struct mvcc_wset *w, struct mem_arena *a);
static bool mvcc_wsets_put(const struct mvcc_wset *ws, size_t n, struct pb_bytes k);
static bool mvcc_wsets_delete(const struct mvcc_wset *ws, size_t n, struct pb_bytes k);
static int mvcc_check_intervals(const struct api_request_op *ops, size_t n, struct mem_arena *a,
                                struct mvcc_wset *out);
static int mvcc_check_txn_req(const struct api_txn_req *r, long long max_ops);

/* ---- byte strings and sorting ---- */

/* bytes.Compare; safe for NULL pointers with zero length. */
static int mvcc_bcmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c;
    return an < bn ? -1 : an > bn;
}

static int mvcc_cmp64(int64_t a, int64_t b)
{
    return a < b ? -1 : a > b;
}

static void mvcc_swap(unsigned char *a, unsigned char *b, size_t size)
{
    while (size--) {
        unsigned char t = *a;
        *a++ = *b;
        *b++ = t;
    }
}

static void mvcc_sift(unsigned char *base, size_t root, size_t n, size_t size,
                      int (*cmp)(const void *, const void *, const void *), const void *ctx)
{
    for (;;) {
        size_t c = 2 * root + 1;
        if (c >= n)
            return;
        if (c + 1 < n && cmp(base + c * size, base + (c + 1) * size, ctx) < 0)
            c++;
        if (cmp(base + root * size, base + c * size, ctx) >= 0)
            return;
        mvcc_swap(base + root * size, base + c * size, size);
        root = c;
    }
}

/* Heapsort: in place, no allocation (libc qsort may call malloc behind the
 * allocator hook).  Every caller's cmp is a total order, so the result is the
 * same as a stable sort's. */
static void mvcc_sort(void *base, size_t n, size_t size,
                      int (*cmp)(const void *, const void *, const void *), const void *ctx)
{
    unsigned char *b = base;
    if (n < 2)
        return;
    for (size_t i = n / 2; i-- > 0;)
        mvcc_sift(b, i, n, size, cmp, ctx);
    for (size_t end = n - 1; end > 0; end--) {
        mvcc_swap(b, b + end * size, size);
        mvcc_sift(b, 0, end, size, cmp, ctx);
    }
}

/* ---- key records ---- */

static struct mvcc_key *mvcc_key_new(const uint8_t *p, size_t n)
{
    if (n > SIZE_MAX - sizeof(struct mvcc_key))
        return NULL;
    struct mvcc_key *k = mem_alloc(sizeof *k + n);
    if (!k)
        return NULL;
    k->k_cap = 2;
    k->k_vers = mem_alloc(k->k_cap * sizeof *k->k_vers);
    if (!k->k_vers) {
        mem_free(k);
        return NULL;
    }
    k->k_hist = NULL;
    k->k_n = 0;
    k->k_res = 0;
    k->k_queued = false;
    k->k_len = n;
    if (n)
        memcpy(k->k_bytes, p, n);
    return k;
}

/* A put's KeyValue fields with a copy of its value; NULL on OOM. */
static struct mvcc_val *mvcc_val_new(const uint8_t *value, size_t len)
{
    if (len > SIZE_MAX - sizeof(struct mvcc_val))
        return NULL;
    struct mvcc_val *l = mem_alloc(sizeof *l + len);
    if (!l)
        return NULL;
    l->l_len = len;
    if (len)
        memcpy(l->l_bytes, value, len);
    return l;
}

/* Drops a put's KeyValue (a tombstone stays one). */
static void mvcc_ver_free(struct mvcc_ver *v)
{
    if (!MVCC_IS_TOMB(v)) {
        mem_free(v->v_val);
        v->v_val = NULL;
    }
}

static void mvcc_hist_free(struct mvcc_hist *h)
{
    if (h) {
        mem_free(h->h_bytes);
        mem_free(h->h_marks);
        mem_free(h);
    }
}

static void mvcc_key_free(struct mvcc_key *k)
{
    for (size_t i = 0; i < k->k_n - k->k_res; i++)
        mvcc_ver_free(&k->k_vers[i]);
    mem_free(k->k_vers);
    mvcc_hist_free(k->k_hist);
    mem_free(k);
}

/* The newest revision of a key that has one: never evicted. */
static struct mvcc_ver *mvcc_key_newest(const struct mvcc_key *k)
{
    assert(k->k_n > k->k_res);
    return &k->k_vers[k->k_n - 1 - k->k_res];
}

/* Room for one more revision.  0 or -ERR_NOMEM (k unchanged). */
static int mvcc_key_reserve(struct mvcc_key *k)
{
    if (k->k_n - k->k_res < k->k_cap)
        return 0;
    if (k->k_cap > SIZE_MAX / 2 / sizeof *k->k_vers)
        return -ERR_NOMEM;
    size_t cap = k->k_cap * 2;
    struct mvcc_ver *v = mem_realloc(k->k_vers, cap * sizeof *v);
    if (!v)
        return -ERR_NOMEM;
    k->k_vers = v;
    k->k_cap = cap;
    return 0;
}

/* Gives memory back once the revisions in k_vers are far fewer than its
 * room (after a burst of writes became durable, or a compaction); a failed
 * shrink just keeps the larger array. */
static void mvcc_key_shrink(struct mvcc_key *k)
{
    size_t n = k->k_n - k->k_res;
    if (k->k_cap >= 16 && n <= k->k_cap / 4) {
        size_t cap = n < 2 ? 2 : n * 2;
        struct mvcc_ver *v = mem_realloc(k->k_vers, cap * sizeof *v);
        if (v) {
            k->k_vers = v;
            k->k_cap = cap;
        }
    }
}

/* ---- packed history ---- */

static uint8_t *mvcc_varint_put(uint8_t *p, uint64_t x)
{
    while (x >= 0x80) {
        *p++ = (uint8_t)(x | 0x80);
        x >>= 7;
    }
    *p++ = (uint8_t)x;
    return p;
}

static const uint8_t *mvcc_varint_get(const uint8_t *p, uint64_t *x)
{
    uint64_t r = 0;
    for (unsigned shift = 0;; shift += 7) {
        uint8_t b = *p++;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (b < 0x80)
            break;
    }
    *x = r;
    return p;
}

/* Encodes v, delta after the previous revision's main, at p; returns the
 * end (at most MVCC_HIST_ENTRY_MAX bytes on). */
static uint8_t *mvcc_hist_encode(uint8_t *p, const struct mvcc_ver *v, int64_t delta)
{
    uint64_t x = (uint64_t)delta << 2 | (uint64_t)MVCC_IS_TOMB(v) << 1 | (v->v_sub != 0);
    p = mvcc_varint_put(p, x);
    if (v->v_sub)
        p = mvcc_varint_put(p, (uint64_t)v->v_sub);
    return p;
}

/* Decodes the revision at p into v, *main being the previous one's main
 * (and becoming this one's); returns where the next one starts. */
static const uint8_t *mvcc_hist_decode(const uint8_t *p, int64_t *main, struct mvcc_ver *v)
{
    uint64_t x, sub = 0;
    p = mvcc_varint_get(p, &x);
    if (x & 1)
        p = mvcc_varint_get(p, &sub);
    *main += (int64_t)(x >> 2);
    v->v_main = *main;
    v->v_sub = (int64_t)sub;
    v->v_val = x & 2 ? MVCC_TOMB : NULL;
    return p;
}

/* How many groups start at a main revision (by_main) or an index <= x. */
static uint32_t mvcc_hist_marks_upto(const struct mvcc_hist *h, bool by_main, int64_t x)
{
    uint32_t lo = 0, hi = h->h_n_marks;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if ((by_main ? h->h_marks[mid].m_main : (int64_t)h->h_marks[mid].m_idx) <= x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The group revision i (< h_n) is in. */
static uint32_t mvcc_hist_group(const struct mvcc_hist *h, size_t i)
{
    return mvcc_hist_marks_upto(h, false, (int64_t)i) - 1;
}

/* Appends v, the revision after the history's newest, evicted.  0 or
 * -ERR_NOMEM (nothing changed: the revision stays in memory). */
static int mvcc_hist_append(struct mvcc_key *k, const struct mvcc_ver *v)
{
    struct mvcc_hist *h = k->k_hist;
    if (!h) {
        h = mem_alloc(sizeof *h);
        if (!h)
            return -ERR_NOMEM;
        memset(h, 0, sizeof *h);
        k->k_hist = h;
    }
    bool head = !h->h_n_marks || h->h_n - h->h_marks[h->h_n_marks - 1].m_idx == MVCC_HIST_GROUP;
    if (h->h_n == UINT32_MAX || h->h_len > UINT32_MAX / 2 - MVCC_HIST_ENTRY_MAX)
        return -ERR_NOMEM;
    if (head && h->h_n_marks == h->h_cap_marks) {
        uint32_t cap = h->h_cap_marks ? h->h_cap_marks * 2 : 1;
        struct mvcc_mark *mk = mem_realloc(h->h_marks, cap * sizeof *mk);
        if (!mk)
            return -ERR_NOMEM;
        h->h_marks = mk;
        h->h_cap_marks = cap;
    }
    if (h->h_cap - h->h_len < MVCC_HIST_ENTRY_MAX) {
        uint32_t cap = h->h_cap ? h->h_cap * 2 : 32;
        uint8_t *b = mem_realloc(h->h_bytes, cap);
        if (!b)
            return -ERR_NOMEM;
        h->h_bytes = b;
        h->h_cap = cap;
    }
    if (head)
        h->h_marks[h->h_n_marks++] = (struct mvcc_mark){v->v_main, h->h_len, h->h_n};
    uint8_t *end = mvcc_hist_encode(h->h_bytes + h->h_len, v, head ? 0 : v->v_main - h->h_last);
    h->h_len = (uint32_t)(end - h->h_bytes);
    h->h_last = v->v_main;
    h->h_n++;
    k->k_res++;
    return 0;
}

/* Drops the history's oldest `from` revisions (0 < from < h_n).  In place:
 * the new first revision is re-encoded as a group head, never longer than
 * it was, and what follows it moves down unchanged. */
static void mvcc_hist_drop(struct mvcc_hist *h, size_t from)
{
    uint32_t g = mvcc_hist_group(h, from);
    const struct mvcc_mark *mk = &h->h_marks[g];
    int64_t main = mk->m_main;
    struct mvcc_ver v;
    const uint8_t *p = h->h_bytes + mk->m_off;
    for (size_t i = mk->m_idx; i <= from; i++)
        p = mvcc_hist_decode(p, &main, &v);
    uint8_t head[MVCC_HIST_ENTRY_MAX];
    size_t hl = (size_t)(mvcc_hist_encode(head, &v, 0) - head);
    size_t rest = (size_t)(p - h->h_bytes);
    memmove(h->h_bytes + hl, p, h->h_len - rest);
    memcpy(h->h_bytes, head, hl);
    h->h_len = (uint32_t)(hl + h->h_len - rest);
    uint32_t n = h->h_n_marks - g;
    memmove(h->h_marks, h->h_marks + g, n * sizeof *h->h_marks);
    h->h_marks[0] = (struct mvcc_mark){v.v_main, 0, (uint32_t)from};
    for (uint32_t j = 0; j < n; j++) {
        h->h_marks[j].m_off = (uint32_t)(h->h_marks[j].m_off - rest + hl);
        h->h_marks[j].m_idx -= (uint32_t)from;
    }
    h->h_marks[0].m_off = 0;
    h->h_n_marks = n;
    h->h_n -= (uint32_t)from;
    if (h->h_cap >= 256 && h->h_len <= h->h_cap / 4) {
        uint8_t *b = mem_realloc(h->h_bytes, h->h_len * 2);
        if (b) {
            h->h_bytes = b;
            h->h_cap = h->h_len * 2;
        }
    }
    if (h->h_cap_marks >= 16 && n <= h->h_cap_marks / 4) {
        struct mvcc_mark *m = mem_realloc(h->h_marks, n * 2 * sizeof *m);
        if (m) {
            h->h_marks = m;
            h->h_cap_marks = n * 2;
        }
    }
}

/* ---- reading a key's revisions ---- */

/* A walk from revision i of k (i <= k->k_n). */
static void mvcc_cur_init(struct mvcc_cur *u, const struct mvcc_key *k, size_t i)
{
    u->u_key = k;
    u->u_i = i;
    u->u_p = NULL;
    if (i >= k->k_res)
        return;
    const struct mvcc_hist *h = k->k_hist;
    uint32_t g = mvcc_hist_group(h, i);
    const struct mvcc_mark *mk = &h->h_marks[g];
    struct mvcc_ver v;
    u->u_mark = g;
    u->u_main = mk->m_main;
    u->u_p = h->h_bytes + mk->m_off;
    for (size_t j = mk->m_idx; j < i; j++)
        u->u_p = mvcc_hist_decode(u->u_p, &u->u_main, &v);
}

/* The walk's next revision into v; false past the newest. */
static bool mvcc_cur_next(struct mvcc_cur *u, struct mvcc_ver *v)
{
    const struct mvcc_key *k = u->u_key;
    if (u->u_i >= k->k_n)
        return false;
    if (u->u_i >= k->k_res) {
        *v = k->k_vers[u->u_i++ - k->k_res];
        return true;
    }
    const struct mvcc_hist *h = k->k_hist;
    if (u->u_mark + 1 < h->h_n_marks && h->h_marks[u->u_mark + 1].m_idx == u->u_i)
        u->u_main = h->h_marks[++u->u_mark].m_main;
    u->u_p = mvcc_hist_decode(u->u_p, &u->u_main, v);
    u->u_i++;
    return true;
}

/* Revision i (< k->k_n) of k. */
static struct mvcc_ver mvcc_key_ver(const struct mvcc_key *k, size_t i)
{
    struct mvcc_cur u;
    struct mvcc_ver v;
    if (i >= k->k_res)
        return k->k_vers[i - k->k_res];
    mvcc_cur_init(&u, k, i);
    mvcc_cur_next(&u, &v);
    return v;
}

/* How many revisions of k have main <= rev. */
static size_t mvcc_key_upto(const struct mvcc_key *k, int64_t rev)
{
    size_t n = k->k_n - k->k_res;
    if (n && k->k_vers[n - 1].v_main <= rev)
        return k->k_n; /* the common case: reading the latest revision */
    if (n && k->k_vers[0].v_main <= rev) {
        size_t lo = 0, hi = n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (k->k_vers[mid].v_main <= rev)
                lo = mid + 1;
            else
                hi = mid;
        }
        return k->k_res + lo;
    }
    const struct mvcc_hist *h = k->k_hist;
    if (!h || !h->h_n || h->h_marks[0].m_main > rev)
        return 0;
    uint32_t lo = mvcc_hist_marks_upto(h, true, rev); /* the group is lo - 1 */
    const struct mvcc_mark *mk = &h->h_marks[lo - 1];
    size_t end = lo < h->h_n_marks ? h->h_marks[lo].m_idx : h->h_n;
    const uint8_t *p = h->h_bytes + mk->m_off;
    int64_t main = mk->m_main;
    struct mvcc_ver v;
    size_t i = mk->m_idx;
    for (; i < end; i++) {
        p = mvcc_hist_decode(p, &main, &v);
        if (v.v_main > rev)
            break;
    }
    return i;
}

/* The revision of k visible at rev into *v; false if the key did not exist
 * then (keyIndex.get: the newest revision with main <= rev, unless a
 * tombstone). */
static bool mvcc_key_at(const struct mvcc_key *k, int64_t rev, struct mvcc_ver *v)
{
    size_t n = mvcc_key_upto(k, rev);
    if (!n)
        return false;
    *v = mvcc_key_ver(k, n - 1);
    return !MVCC_IS_TOMB(v);
}

/* The live revision of k including writes of the running transaction. */
static const struct mvcc_ver *mvcc_key_latest(const struct mvcc_key *k)
{
    if (!k || !k->k_n || MVCC_IS_TOMB(mvcc_key_newest(k)))
        return NULL;
    return mvcc_key_newest(k);
}

/* Index of the first revision that compacting at rev keeps: every revision
 * with main <= rev goes except the newest of them, and that one goes too if
 * it is a tombstone (keyIndex.compact).  k->k_n means the record dies. */
static size_t mvcc_key_compact_from(const struct mvcc_key *k, int64_t rev)
{
    size_t n = mvcc_key_upto(k, rev);
    if (n == 0)
        return 0;
    struct mvcc_ver v = mvcc_key_ver(k, n - 1);
    return MVCC_IS_TOMB(&v) ? n : n - 1;
}

static void mvcc_key_compact(struct mvcc_key *k, size_t from)
{
    if (!from)
        return;
    size_t hist = from < k->k_res ? from : k->k_res;
    size_t mem = from - hist;
    if (hist == k->k_res) {
        mvcc_hist_free(k->k_hist);
        k->k_hist = NULL;
    } else {
        mvcc_hist_drop(k->k_hist, hist);
    }
    for (size_t i = 0; i < mem; i++)
        mvcc_ver_free(&k->k_vers[i]);
    memmove(k->k_vers, k->k_vers + mem, (k->k_n - k->k_res - mem) * sizeof *k->k_vers);
    k->k_n -= from;
    k->k_res -= hist;
    mvcc_key_shrink(k);
}

/* Evicts the revisions of k with main <= rev but its newest into its
 * history, as far as memory allows; true if some are left to evict. */
static bool mvcc_key_evict(struct mvcc_key *k, int64_t rev)
{
    size_t n = k->k_n - k->k_res, e = 0;
    while (e + 1 < n && k->k_vers[e].v_main <= rev && !mvcc_hist_append(k, &k->k_vers[e]))
        mvcc_ver_free(&k->k_vers[e++]);
    if (e) {
        memmove(k->k_vers, k->k_vers + e, (n - e) * sizeof *k->k_vers);
        mvcc_key_shrink(k);
    }
    return k->k_res + 1 < k->k_n;
}

/* ---- the key index: a B+tree of key records ---- */

/* Bytes p[off, off + 8) as a big-endian integer, zero past the end.  Two
 * keys with the same first off bytes whose slices differ order as their
 * slices do; equal slices say nothing. */
static uint64_t mvcc_slice(const uint8_t *p, size_t n, size_t off)
{
    uint64_t s = 0;
    for (size_t i = off; i < off + 8; i++)
        s = s << 8 | (i < n ? p[i] : 0);
    return s;
}

/* The prefix the compared keys of x share: they are sorted, so what the
 * first and last share, all share. */
static size_t mvcc_node_prefix(const struct mvcc_node *x)
{
    unsigned first = !x->n_leaf;
    if (x->n_n <= first)
        return 0;
    const struct mvcc_key *a = x->n_keys[first], *b = x->n_keys[x->n_n - 1];
    size_t l = 0, n = a->k_len < b->k_len ? a->k_len : b->k_len;
    while (l < n && a->k_bytes[l] == b->k_bytes[l])
        l++;
    return l;
}

static void mvcc_node_reslice(struct mvcc_node *x, size_t lcp)
{
    x->n_lcp = lcp;
    for (unsigned i = !x->n_leaf; i < x->n_n; i++)
        x->n_slice[i] = mvcc_slice(x->n_keys[i]->k_bytes, x->n_keys[i]->k_len, lcp);
}

/* After the compared keys changed at either end: two key records are read,
 * all of them only if the prefix moved. */
static void mvcc_node_fix(struct mvcc_node *x)
{
    size_t l = mvcc_node_prefix(x);
    if (l != x->n_lcp)
        mvcc_node_reslice(x, l);
}

/* The first compared position of x whose key is > p (upper) or >= p, or
 * x->n_n if none is. */
static unsigned mvcc_node_search(const struct mvcc_node *x, const uint8_t *p, size_t n,
                                 bool upper)
{
    unsigned lo = !x->n_leaf, hi = x->n_n;
    if (lo >= hi)
        return lo;
    /* a key without the shared prefix sorts before or after all of them */
    size_t l = x->n_lcp;
    int c = mvcc_bcmp(p, n < l ? n : l, x->n_keys[lo]->k_bytes, l);
    if (c)
        return c < 0 ? lo : hi;
    uint64_t ps = mvcc_slice(p, n, l);
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        const struct mvcc_key *k = x->n_keys[mid];
        int d = x->n_slice[mid] != ps ? (x->n_slice[mid] < ps ? -1 : 1)
                                      : mvcc_bcmp(k->k_bytes, k->k_len, p, n);
        if (d < 0 || (upper && d == 0))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Child of inner node x whose subtree holds key p: the last i with
 * i == 0 || n_keys[i] <= p. */
static unsigned mvcc_node_route(const struct mvcc_node *x, const uint8_t *p, size_t n)
{
    return mvcc_node_search(x, p, n, true) - 1;
}

/* First position in leaf x whose key is >= p. */
static unsigned mvcc_node_lower(const struct mvcc_node *x, const uint8_t *p, size_t n)
{
    return mvcc_node_search(x, p, n, false);
}

static void mvcc_node_insert_at(struct mvcc_node *x, unsigned at, struct mvcc_key *k,
                                struct mvcc_node *child)
{
    assert(x->n_n < MVCC_FANOUT && at <= x->n_n);
    memmove(&x->n_keys[at + 1], &x->n_keys[at], (x->n_n - at) * sizeof x->n_keys[0]);
    memmove(&x->n_slice[at + 1], &x->n_slice[at], (x->n_n - at) * sizeof x->n_slice[0]);
    x->n_keys[at] = k;
    if (!x->n_leaf) {
        memmove(&x->n_child[at + 1], &x->n_child[at], (x->n_n - at) * sizeof x->n_child[0]);
        x->n_child[at] = child;
    }
    x->n_n++;
    /* between the first and last compared keys the prefix cannot change */
    if (at == (unsigned)!x->n_leaf || at == x->n_n - 1)
        mvcc_node_fix(x);
    x->n_slice[at] = mvcc_slice(k->k_bytes, k->k_len, x->n_lcp);
}

/* Splits the full node x while inserting (k, child) at position at; returns
 * the new right sibling, taken from the reserve.  An insert past the last
 * entry (keys arriving in ascending order) leaves x full and starts the new
 * node with the one entry, so append-only workloads keep full nodes. */
static struct mvcc_node *mvcc_node_split(struct mvcc_tree *t, struct mvcc_node *x, unsigned at,
                                         struct mvcc_key *k, struct mvcc_node *child)
{
    struct mvcc_node *r;
    if (x->n_leaf) {
        r = t->t_spare_leaf;
        t->t_spare_leaf = NULL;
    } else {
        r = t->t_spare_inner;
        t->t_spare_inner = r->n_next;
        t->t_n_spare_inner--;
    }
    assert(r);
    unsigned s = at == MVCC_FANOUT ? MVCC_FANOUT : MVCC_FANOUT / 2;
    r->n_leaf = x->n_leaf;
    r->n_n = MVCC_FANOUT - s;
    memcpy(r->n_keys, &x->n_keys[s], r->n_n * sizeof r->n_keys[0]);
    memcpy(r->n_slice, &x->n_slice[s], r->n_n * sizeof r->n_slice[0]);
    r->n_lcp = x->n_lcp;
    if (!x->n_leaf)
        memcpy(r->n_child, &x->n_child[s], r->n_n * sizeof r->n_child[0]);
    x->n_n = s;
    if (x->n_leaf) {
        r->n_next = x->n_next;
        x->n_next = r;
    } else {
        r->n_next = NULL;
    }
    /* each half may share a longer prefix than the whole did */
    mvcc_node_fix(x);
    mvcc_node_fix(r);
    if (at <= s && s < MVCC_FANOUT)
        mvcc_node_insert_at(x, at, k, child);
    else
        mvcc_node_insert_at(r, at - s, k, child);
    return r;
}

/* Frees x and the nodes under it, not the key records. */
static void mvcc_node_free(struct mvcc_node *x)
{
    if (!x)
        return;
    if (!x->n_leaf)
        for (unsigned i = 0; i < x->n_n; i++)
            mvcc_node_free(x->n_child[i]);
    mem_free(x);
}

static void mvcc_chain_free(struct mvcc_node *x)
{
    while (x) {
        struct mvcc_node *next = x->n_next;
        mem_free(x);
        x = next;
    }
}

static struct mvcc_key *mvcc_tree_lookup(const struct mvcc_tree *t, const uint8_t *p, size_t n,
                                         struct mvcc_path *path)
{
    struct mvcc_node *x = t->t_root;
    path->p_depth = 0;
    path->p_leaf = NULL;
    path->p_pos = 0;
    if (!x)
        return NULL;
    while (!x->n_leaf) {
        unsigned i = mvcc_node_route(x, p, n);
        assert(path->p_depth < MVCC_MAX_HEIGHT);
        path->p_node[path->p_depth] = x;
        path->p_idx[path->p_depth++] = i;
        x = x->n_child[i];
    }
    unsigned i = mvcc_node_lower(x, p, n);
    path->p_leaf = x;
    path->p_pos = i;
    if (i < x->n_n && !mvcc_bcmp(x->n_keys[i]->k_bytes, x->n_keys[i]->k_len, p, n))
        return x->n_keys[i];
    return NULL;
}

static struct mvcc_key *mvcc_tree_find(const struct mvcc_tree *t, const uint8_t *p, size_t n)
{
    struct mvcc_path path;
    return mvcc_tree_lookup(t, p, n, &path);
}

/* Positions it at the first key >= p. */
static void mvcc_tree_seek(const struct mvcc_tree *t, const uint8_t *p, size_t n,
                           struct mvcc_iter *it)
{
    const struct mvcc_node *x = t->t_root;
    it->i_leaf = NULL;
    it->i_pos = 0;
    if (!x)
        return;
    while (!x->n_leaf)
        x = x->n_child[mvcc_node_route(x, p, n)];
    it->i_leaf = x;
    it->i_pos = mvcc_node_lower(x, p, n);
    if (it->i_pos == x->n_n) {
        it->i_leaf = x->n_next;
        it->i_pos = 0;
    }
}

/* Scans read every record and its newest revision, two dependent cache
 * misses per key: the loads for the keys a few places ahead start early. */
#define MVCC_PREFETCH 8

static struct mvcc_key *mvcc_iter_next(struct mvcc_iter *it)
{
    if (!it->i_leaf)
        return NULL;
    const struct mvcc_node *x = it->i_leaf;
    unsigned ahead = it->i_pos + MVCC_PREFETCH;
    if (ahead < x->n_n)
        __builtin_prefetch(x->n_keys[ahead]);
    if (ahead - MVCC_PREFETCH / 2 < x->n_n) {
        const struct mvcc_key *a = x->n_keys[ahead - MVCC_PREFETCH / 2];
        if (a->k_n)
            __builtin_prefetch(mvcc_key_newest(a));
    }
    struct mvcc_key *k = x->n_keys[it->i_pos];
    if (++it->i_pos == it->i_leaf->n_n) {
        it->i_leaf = it->i_leaf->n_next;
        it->i_pos = 0;
    }
    return k;
}

/* Sets aside the nodes one insert may need (a leaf, one inner node per inner
 * level, one for a new root).  0 or -ERR_NOMEM; what was reserved stays. */
static int mvcc_tree_reserve(struct mvcc_tree *t)
{
    if (!t->t_spare_leaf) {
        t->t_spare_leaf = mem_alloc(MVCC_LEAF_SIZE);
        if (!t->t_spare_leaf)
            return -ERR_NOMEM;
    }
    while (t->t_n_spare_inner < t->t_height) {
        struct mvcc_node *x = mem_alloc(MVCC_INNER_SIZE);
        if (!x)
            return -ERR_NOMEM;
        x->n_next = t->t_spare_inner;
        t->t_spare_inner = x;
        t->t_n_spare_inner++;
    }
    return 0;
}

/* Inserts k where path (a lookup of k's bytes that found nothing) says;
 * mvcc_tree_reserve must have succeeded since the tree last changed, so
 * this cannot fail. */
static void mvcc_tree_insert(struct mvcc_tree *t, struct mvcc_key *k, const struct mvcc_path *path)
{
    int d = path->p_depth;

    t->t_n_keys++;
    if (!t->t_root) {
        struct mvcc_node *leaf = t->t_spare_leaf;
        t->t_spare_leaf = NULL;
        leaf->n_leaf = true;
        leaf->n_n = 1;
        leaf->n_next = NULL;
        leaf->n_keys[0] = k;
        mvcc_node_reslice(leaf, mvcc_node_prefix(leaf));
        t->t_root = leaf;
        t->t_height = 1;
        return;
    }
    struct mvcc_node *x = path->p_leaf;
    unsigned at = path->p_pos;
    struct mvcc_key *up_key = k;
    struct mvcc_node *up_child = NULL;
    for (;;) {
        if (x->n_n < MVCC_FANOUT) {
            mvcc_node_insert_at(x, at, up_key, up_child);
            return;
        }
        struct mvcc_node *r = mvcc_node_split(t, x, at, up_key, up_child);
        up_key = r->n_keys[0];
        up_child = r;
        if (d == 0) {
            struct mvcc_node *root = t->t_spare_inner;
            t->t_spare_inner = root->n_next;
            t->t_n_spare_inner--;
            root->n_leaf = false;
            root->n_next = NULL;
            root->n_n = 2;
            root->n_keys[0] = x->n_keys[0];
            root->n_child[0] = x;
            root->n_keys[1] = up_key;
            root->n_child[1] = r;
            mvcc_node_reslice(root, mvcc_node_prefix(root));
            t->t_root = root;
            t->t_height++;
            assert(t->t_height < MVCC_MAX_HEIGHT);
            return;
        }
        d--;
        x = path->p_node[d];
        at = path->p_idx[d] + 1;
    }
}

/* Builds into *out a tree of the records of t that survive a compaction at
 * rev, nodes packed full.  t is not changed.  0 or -ERR_NOMEM (nothing
 * allocated then).  Rebuilding keeps the tree free of deletion code: records
 * leave the index only here, and compaction walks every key anyway. */
static int mvcc_tree_rebuild(const struct mvcc_tree *t, int64_t rev, struct mvcc_tree *out)
{
    struct mvcc_node *heads[MVCC_MAX_HEIGHT] = {0};
    int levels = 1;
    struct mvcc_node *tail = NULL;
    struct mvcc_iter it;
    struct mvcc_key *k;

    memset(out, 0, sizeof *out);
    mvcc_tree_seek(t, NULL, 0, &it);
    while ((k = mvcc_iter_next(&it))) {
        if (mvcc_key_compact_from(k, rev) == k->k_n)
            continue;
        if (!tail || tail->n_n == MVCC_FANOUT) {
            struct mvcc_node *x = mem_alloc(MVCC_LEAF_SIZE);
            if (!x)
                goto fail;
            x->n_leaf = true;
            x->n_n = 0;
            x->n_next = NULL;
            if (tail)
                tail->n_next = x;
            else
                heads[0] = x;
            tail = x;
        }
        tail->n_keys[tail->n_n++] = k;
        out->t_n_keys++;
    }
    if (!heads[0])
        return 0;
    /* each level above groups the nodes of the one below; the n_next chain
     * of inner nodes only serves this loop and the cleanup */
    while (heads[levels - 1]->n_next) {
        if (levels == MVCC_MAX_HEIGHT)
            goto fail;
        tail = NULL;
        for (struct mvcc_node *c = heads[levels - 1]; c; c = c->n_next) {
            if (!tail || tail->n_n == MVCC_FANOUT) {
                struct mvcc_node *x = mem_alloc(MVCC_INNER_SIZE);
                if (!x)
                    goto fail;
                x->n_leaf = false;
                x->n_n = 0;
                x->n_next = NULL;
                if (tail)
                    tail->n_next = x;
                else
                    heads[levels] = x;
                tail = x;
            }
            tail->n_keys[tail->n_n] = c->n_keys[0];
            tail->n_child[tail->n_n++] = c;
        }
        levels++;
    }
    for (int l = 0; l < levels; l++)
        for (struct mvcc_node *x = heads[l]; x; x = x->n_next)
            mvcc_node_reslice(x, mvcc_node_prefix(x));
    out->t_root = heads[levels - 1];
    out->t_height = levels;
    return 0;
fail:
    for (int l = 0; l < MVCC_MAX_HEIGHT; l++)
        mvcc_chain_free(heads[l]);
    memset(out, 0, sizeof *out);
    return -ERR_NOMEM;
}

/* ---- spans and scans ---- */

static void mvcc_span_make(struct mvcc_span *s, struct pb_bytes key, struct pb_bytes end)
{
    s->s_key = key;
    s->s_end = end;
    s->s_single = end.len == 0;
    s->s_open = end.len == 1 && end.p[0] == 0; /* mkGteRange */
}

static void mvcc_scan_init(struct mvcc_scan *sc, const struct mvcc_tree *t,
                           const struct mvcc_span *s)
{
    sc->sc_span = s;
    sc->sc_single = NULL;
    sc->sc_it.i_leaf = NULL;
    sc->sc_it.i_pos = 0;
    if (s->s_single)
        sc->sc_single = mvcc_tree_find(t, s->s_key.p, s->s_key.len);
    else
        mvcc_tree_seek(t, s->s_key.p, s->s_key.len, &sc->sc_it);
}

/* The next key record in the span, whether or not it is visible at any
 * particular revision; NULL at the end. */
static struct mvcc_key *mvcc_scan_next(struct mvcc_scan *sc)
{
    const struct mvcc_span *s = sc->sc_span;
    if (s->s_single) {
        struct mvcc_key *k = sc->sc_single;
        sc->sc_single = NULL;
        return k;
    }
    struct mvcc_key *k = mvcc_iter_next(&sc->sc_it);
    if (!k || s->s_open)
        return k;
    if (mvcc_bcmp(k->k_bytes, k->k_len, s->s_end.p, s->s_end.len) >= 0) {
        sc->sc_it.i_leaf = NULL;
        return NULL;
    }
    return k;
}

/* ---- store lifecycle ---- */

struct mvcc *mvcc_new(void)
{
    struct mvcc *m = mem_calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->mv_rev = 1;
    m->mv_compact = -1;
    return m;
}

void mvcc_free(struct mvcc *m)
{
    if (!m)
        return;
    struct mvcc_iter it;
    struct mvcc_key *k;
    mvcc_tree_seek(&m->mv_tree, NULL, 0, &it);
    while ((k = mvcc_iter_next(&it)))
        mvcc_key_free(k);
    mvcc_node_free(m->mv_tree.t_root);
    mem_free(m->mv_tree.t_spare_leaf);
    mvcc_chain_free(m->mv_tree.t_spare_inner);
    mem_free(m->mv_changes);
    mem_free(m->mv_hits);
    mem_free(m->mv_dirty);
    mem_free(m);
}

int64_t mvcc_rev(const struct mvcc *m)
{
    return m->mv_rev;
}

int64_t mvcc_compact_rev(const struct mvcc *m)
{
    return m->mv_compact < 0 ? 0 : m->mv_compact;
}

void mvcc_set_lease_check(struct mvcc *m, bool (*exists)(void *ctx, int64_t lease), void *ctx)
{
    m->mv_lease_exists = exists;
    m->mv_lease_ctx = ctx;
}

/* ---- write transactions ---- */

static void mvcc_wtxn_begin(struct mvcc_wtxn *tx, struct mvcc *m)
{
    tx->w_m = m;
    tx->w_begin = m->mv_rev;
    m->mv_n_changes = 0;
}

/* ---- values on disk ---- */

/* A revision was appended to k: the ones before it are no longer its
 * newest, so mvcc_evict may drop their values once the backend has them.
 * The room was reserved by mvcc_wtxn_log_reserve. */
static void mvcc_dirty_note(struct mvcc *m, struct mvcc_key *k)
{
    if (m->mv_loader.load && !k->k_queued && k->k_n >= 2 && k->k_res + 1 < k->k_n) {
        assert(m->mv_n_dirty < m->mv_cap_dirty);
        k->k_queued = true;
        m->mv_dirty[m->mv_n_dirty++] = k;
    }
}

void mvcc_set_loader(struct mvcc *m, const struct mvcc_loader *l)
{
    m->mv_loader = *l;
}

void mvcc_evict(struct mvcc *m, int64_t rev)
{
    size_t keep = 0;
    for (size_t i = 0; i < m->mv_n_dirty; i++) {
        struct mvcc_key *k = m->mv_dirty[i];
        if (mvcc_key_evict(k, rev))
            m->mv_dirty[keep++] = k;
        else
            k->k_queued = false;
    }
    m->mv_n_dirty = keep;
}


/* Ends the loads of a public call (the loader may hold a read transaction
 * across them); passes rc through. */
static int mvcc_loads_done(struct mvcc *m, int rc)
{
    if (m->mv_loaded) {
        m->mv_loaded = false;
        m->mv_loader.done(m->mv_loader.ctx);
    }
    return rc;
}

/* The kv of revision v of k (see mvcc_kv_fill), read back from the backend
 * into a when evicted.  0, or the loader's -ERR_x (-ERR_CORRUPT when what
 * it read cannot be that revision's). */
static int mvcc_kv_load(struct mvcc *m, struct api_kv *kv, const struct mvcc_key *k,
                        const struct mvcc_ver *v, bool with_value, struct mem_arena *a)
{
    if (!MVCC_EVICTED(v)) {
        mvcc_kv_fill(kv, k, v, with_value);
        return 0;
    }
    m->mv_loaded = true;
    memset(kv, 0, sizeof *kv);
    struct pb_bytes key = {k->k_bytes, k->k_len};
    int rc = m->mv_loader.load(m->mv_loader.ctx, key, v->v_main, v->v_sub, a, kv);
    if (!rc && (kv->version < 1 || kv->create_revision < 1 || kv->create_revision > v->v_main))
        rc = -ERR_CORRUPT;
    kv->key = key;
    kv->mod_revision = v->v_main;
    if (!with_value)
        kv->value = (struct pb_bytes){NULL, 0};
    return rc;
}

/* The revision reads inside the transaction see: its own writes once there
 * are any (storeTxnWrite.Range). */
static int64_t mvcc_wtxn_read_rev(const struct mvcc_wtxn *tx)
{
    return tx->w_begin + (tx->w_m->mv_n_changes > 0);
}

/* Room for one more change in the log, and for the key it writes in
 * mv_dirty (mvcc_dirty_note).  0 or -ERR_NOMEM. */
static int mvcc_wtxn_log_reserve(struct mvcc *m)
{
    if (m->mv_loader.load && m->mv_n_dirty == m->mv_cap_dirty) {
        size_t cap = m->mv_cap_dirty ? m->mv_cap_dirty * 2 : 64;
        if (cap > SIZE_MAX / sizeof *m->mv_dirty)
            return -ERR_NOMEM;
        struct mvcc_key **d = mem_realloc(m->mv_dirty, cap * sizeof *d);
        if (!d)
            return -ERR_NOMEM;
        m->mv_dirty = d;
        m->mv_cap_dirty = cap;
    }
    if (m->mv_n_changes < m->mv_cap_changes)
        return 0;
    size_t cap = m->mv_cap_changes ? m->mv_cap_changes * 2 : 16;
    if (cap > SIZE_MAX / sizeof *m->mv_changes)
        return -ERR_NOMEM;
    struct mvcc_change *c = mem_realloc(m->mv_changes, cap * sizeof *c);
    if (!c)
        return -ERR_NOMEM;
    m->mv_changes = c;
    m->mv_cap_changes = cap;
    return 0;
}

/* Appends a put of key at the transaction's revision: to record k, or, if
 * the key has no record yet (k NULL), to a new one inserted where path, the
 * lookup that found nothing, says.  Every allocation happens before anything
 * changes, so on -ERR_NOMEM the store is as before. */
static int mvcc_wtxn_put(struct mvcc_wtxn *tx, struct mvcc_key *k, const struct mvcc_path *path,
                         struct pb_bytes key, const uint8_t *value, size_t vlen, int64_t lease)
{
    struct mvcc *m = tx->w_m;
    int rc = mvcc_wtxn_log_reserve(m);
    if (rc)
        return rc;
    struct mvcc_val *val = mvcc_val_new(value, vlen);
    if (!val)
        return -ERR_NOMEM;
    if (k) {
        rc = mvcc_key_reserve(k);
        if (rc)
            goto fail;
    } else {
        k = mvcc_key_new(key.p, key.len);
        if (!k) {
            rc = -ERR_NOMEM;
            goto fail;
        }
        rc = mvcc_tree_reserve(&m->mv_tree);
        if (rc) {
            mvcc_key_free(k);
            goto fail;
        }
        mvcc_tree_insert(&m->mv_tree, k, path);
    }

    /* the key's newest is in memory: never evicted */
    const struct mvcc_ver *prev = mvcc_key_latest(k);
    struct mvcc_ver *v = &k->k_vers[k->k_n - k->k_res];
    v->v_main = tx->w_begin + 1;
    v->v_sub = (int64_t)m->mv_n_changes;
    v->v_val = val;
    val->l_create = prev ? prev->v_val->l_create : v->v_main;
    val->l_version = prev ? prev->v_val->l_version + 1 : 1;
    val->l_lease = lease;
    m->mv_changes[m->mv_n_changes].c_key = k;
    m->mv_changes[m->mv_n_changes].c_idx = k->k_n;
    m->mv_n_changes++;
    k->k_n++;
    mvcc_dirty_note(m, k);
    return 0;
fail:
    mem_free(val);
    return rc;
}

/* Appends a tombstone to the live key k.  0 or -ERR_NOMEM (nothing changed). */
static int mvcc_wtxn_tombstone(struct mvcc_wtxn *tx, struct mvcc_key *k)
{
    struct mvcc *m = tx->w_m;
    int rc = mvcc_wtxn_log_reserve(m);
    if (rc)
        return rc;
    rc = mvcc_key_reserve(k);
    if (rc)
        return rc;
    struct mvcc_ver *v = &k->k_vers[k->k_n - k->k_res];
    v->v_main = tx->w_begin + 1;
    v->v_sub = (int64_t)m->mv_n_changes;
    v->v_val = MVCC_TOMB;
    m->mv_changes[m->mv_n_changes].c_key = k;
    m->mv_changes[m->mv_n_changes].c_idx = k->k_n;
    m->mv_n_changes++;
    k->k_n++;
    mvcc_dirty_note(m, k);
    return 0;
}

static void mvcc_wtxn_commit(struct mvcc_wtxn *tx)
{
    if (tx->w_m->mv_n_changes)
        tx->w_m->mv_rev++;
}

/* Undoes every write of the transaction, newest first.  Records created by
 * it stay in the index as ghosts until the next compaction: taking them out
 * would need tree deletion, which nothing else needs. */
static void mvcc_wtxn_abort(struct mvcc_wtxn *tx)
{
    struct mvcc *m = tx->w_m;
    while (m->mv_n_changes) {
        struct mvcc_change *c = &m->mv_changes[--m->mv_n_changes];
        struct mvcc_key *k = c->c_key;
        assert(k->k_n == c->c_idx + 1);
        mvcc_ver_free(mvcc_key_newest(k));
        k->k_n--;
    }
}

/* ---- range ---- */

static int mvcc_hits_push(struct mvcc *m, size_t *n, struct mvcc_key *k,
                          const struct mvcc_ver *v)
{
    if (*n == m->mv_cap_hits) {
        size_t cap = m->mv_cap_hits ? m->mv_cap_hits * 2 : 64;
        if (cap > SIZE_MAX / sizeof *m->mv_hits)
            return -ERR_NOMEM;
        struct mvcc_hit *h = mem_realloc(m->mv_hits, cap * sizeof *h);
        if (!h)
            return -ERR_NOMEM;
        m->mv_hits = h;
        m->mv_cap_hits = cap;
    }
    m->mv_hits[*n].h_key = k;
    m->mv_hits[*n].h_ver = *v;
    m->mv_hits[*n].h_kv = NULL;
    (*n)++;
    return 0;
}

static void mvcc_hits_trim(struct mvcc *m)
{
    if (m->mv_cap_hits > MVCC_HITS_KEEP) {
        mem_free(m->mv_hits);
        m->mv_hits = NULL;
        m->mv_cap_hits = 0;
    }
}

/* Counts the keys of span s visible at rev and keeps the first `keep` of
 * them (in key order) in m->mv_hits. */
static int mvcc_collect(struct mvcc *m, const struct mvcc_span *s, int64_t rev, size_t keep,
                        size_t *n_hits, int64_t *count)
{
    struct mvcc_scan sc;
    struct mvcc_key *k;
    *n_hits = 0;
    *count = 0;
    mvcc_scan_init(&sc, &m->mv_tree, s);
    while ((k = mvcc_scan_next(&sc))) {
        struct mvcc_ver v;
        if (!mvcc_key_at(k, rev, &v))
            continue;
        (*count)++;
        if (*n_hits < keep) {
            int rc = mvcc_hits_push(m, n_hits, k, &v);
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* Every hit's whole kv (read back when evicted) in h_kv.  0 or -ERR_x. */
static int mvcc_hits_load(struct mvcc *m, size_t n, struct mem_arena *a)
{
    if (!n)
        return 0;
    if (n > SIZE_MAX / sizeof(struct api_kv))
        return -ERR_NOMEM;
    struct api_kv *kvs = mem_arena_alloc(a, n * sizeof *kvs);
    if (!kvs)
        return -ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        struct mvcc_hit *h = &m->mv_hits[i];
        int rc = mvcc_kv_load(m, &kvs[i], h->h_key, &h->h_ver, true, a);
        if (rc)
            return rc;
        h->h_kv = &kvs[i];
    }
    return 0;
}

/* apply.go pruneKVs with the min/max mod/create revision filters (the
 * create ones on loaded hits). */
static size_t mvcc_prune(struct mvcc_hit *h, size_t n, const struct api_range_req *req)
{
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        const struct mvcc_ver *v = &h[i].h_ver;
        if ((req->max_mod_revision && v->v_main > req->max_mod_revision) ||
            (req->min_mod_revision && v->v_main < req->min_mod_revision) ||
            (req->max_create_revision && h[i].h_kv->create_revision > req->max_create_revision) ||
            (req->min_create_revision && h[i].h_kv->create_revision < req->min_create_revision))
            continue;
        h[j++] = h[i];
    }
    return j;
}

struct mvcc_sort_by {
    int32_t target;
    bool desc;
};

/* Orders by the sort target, ties by key ascending: the hits arrive in key
 * order, so this total order gives what a stable sort would (and what Go's
 * sort.Sort gives for the small slices where it runs insertion sort). */
static int mvcc_hit_cmp(const void *a, const void *b, const void *ctx)
{
    const struct mvcc_hit *x = a, *y = b;
    const struct mvcc_sort_by *by = ctx;
    int c = 0;
    switch (by->target) {
    case API_SORT_VERSION:
        c = mvcc_cmp64(x->h_kv->version, y->h_kv->version);
        break;
    case API_SORT_CREATE:
        c = mvcc_cmp64(x->h_kv->create_revision, y->h_kv->create_revision);
        break;
    case API_SORT_MOD:
        c = mvcc_cmp64(x->h_ver.v_main, y->h_ver.v_main);
        break;
    case API_SORT_VALUE:
        c = mvcc_bcmp(x->h_kv->value.p, x->h_kv->value.len, y->h_kv->value.p, y->h_kv->value.len);
        break;
    default:
        break;
    }
    if (by->desc)
        c = -c;
    if (!c)
        c = mvcc_bcmp(x->h_key->k_bytes, x->h_key->k_len, y->h_key->k_bytes, y->h_key->k_len);
    return c;
}

/* apply.go: a target other than KEY with order NONE sorts ascending; an
 * unknown order leaves the hits alone; an unknown target (etcd dereferences a
 * nil sorter there) also leaves them alone. */
static void mvcc_hits_sort(struct mvcc_hit *h, size_t n, const struct api_range_req *req)
{
    int32_t order = req->sort_order;
    if (req->sort_target != API_SORT_KEY && order == API_SORT_NONE)
        order = API_SORT_ASCEND;
    if (order != API_SORT_ASCEND && order != API_SORT_DESCEND)
        return;
    if (req->sort_target < API_SORT_KEY || req->sort_target > API_SORT_VALUE)
        return;
    if (req->sort_target == API_SORT_KEY) {
        if (order == API_SORT_DESCEND)
            for (size_t i = 0, j = n; i + 1 < j; i++, j--) {
                struct mvcc_hit t = h[i];
                h[i] = h[j - 1];
                h[j - 1] = t;
            }
        return;
    }
    struct mvcc_sort_by by = {req->sort_target, order == API_SORT_DESCEND};
    mvcc_sort(h, n, sizeof *h, mvcc_hit_cmp, &by);
}

/* The kv of a put in memory (or of a tombstone: key and mod_revision);
 * it points at the store's key and value bytes. */
static void mvcc_kv_fill(struct api_kv *kv, const struct mvcc_key *k, const struct mvcc_ver *v,
                         bool with_value)
{
    assert(!MVCC_EVICTED(v));
    memset(kv, 0, sizeof *kv);
    kv->key.p = k->k_bytes;
    kv->key.len = k->k_len;
    kv->mod_revision = v->v_main;
    if (MVCC_IS_TOMB(v))
        return;
    kv->create_revision = v->v_val->l_create;
    kv->version = v->v_val->l_version;
    kv->lease = v->v_val->l_lease;
    if (with_value && v->v_val->l_len)
        kv->value = (struct pb_bytes){v->v_val->l_bytes, v->v_val->l_len};
}

/* applierV3backend.Range over storeTxnRead.rangeKeys, with cur the revision
 * the read view is at. */
static int mvcc_range_at(struct mvcc *m, const struct api_range_req *req, int64_t cur,
                         struct mem_arena *a, struct api_range_resp *resp)
{
    int64_t rev = req->revision;
    if (rev > cur)
        return -ERR_FUTURE_REV;
    if (rev <= 0)
        rev = cur;
    if (rev < m->mv_compact)
        return -ERR_COMPACTED;

    /* Only an unsorted, unfiltered read stops early: one extra key tells
     * whether there are more.  The test is on the requested order, so a
     * target other than KEY with order NONE sorts just the keys fetched
     * (as etcd does). */
    bool filtered = req->min_mod_revision || req->max_mod_revision ||
                    req->min_create_revision || req->max_create_revision;
    size_t keep = SIZE_MAX;
    if (req->count_only)
        keep = 0;
    else if (req->sort_order == API_SORT_NONE && !filtered && req->limit > 0 &&
             (uint64_t)req->limit < SIZE_MAX)
        keep = (size_t)req->limit + 1;

    struct mvcc_span s;
    size_t n;
    int64_t count;
    mvcc_span_make(&s, req->key, req->range_end);
    int rc = mvcc_collect(m, &s, rev, keep, &n, &count);
    if (rc)
        return rc;

    resp->kvs = NULL;
    resp->n_kvs = 0;
    resp->more = false;
    resp->count = count;
    if (!req->count_only) {
        /* the index holds revisions; a filter or sort on more than those
         * needs the kvs first */
        bool by_kv = req->min_create_revision || req->max_create_revision ||
                     req->sort_target == API_SORT_VERSION ||
                     req->sort_target == API_SORT_CREATE || req->sort_target == API_SORT_VALUE;
        if (by_kv && (rc = mvcc_hits_load(m, n, a)))
            return rc;
        n = mvcc_prune(m->mv_hits, n, req);
        mvcc_hits_sort(m->mv_hits, n, req);
        if (req->limit > 0 && (uint64_t)n > (uint64_t)req->limit) {
            n = (size_t)req->limit;
            resp->more = true;
        }
        if (n) {
            if (n > SIZE_MAX / sizeof *resp->kvs)
                return -ERR_NOMEM;
            resp->kvs = mem_arena_alloc(a, n * sizeof *resp->kvs);
            if (!resp->kvs)
                return -ERR_NOMEM;
            for (size_t i = 0; i < n; i++) {
                if (i + MVCC_PREFETCH < n) {
                    __builtin_prefetch(m->mv_hits[i + MVCC_PREFETCH].h_key);
                    __builtin_prefetch(m->mv_hits[i + MVCC_PREFETCH].h_ver.v_val);
                }
                const struct mvcc_hit *h = &m->mv_hits[i];
                if (h->h_kv) {
                    resp->kvs[i] = *h->h_kv;
                    if (req->keys_only)
                        resp->kvs[i].value = (struct pb_bytes){NULL, 0};
                } else if ((rc = mvcc_kv_load(m, &resp->kvs[i], h->h_key, &h->h_ver,
                                              !req->keys_only, a))) {
                    return rc;
                }
            }
            resp->n_kvs = n;
        }
    }
    if (resp->header)
        resp->header->revision = cur;
    return 0;
}

int mvcc_range(struct mvcc *m, const struct api_range_req *req, struct mem_arena *a,
               struct api_range_resp *resp)
{
    int rc = mvcc_range_at(m, req, m->mv_rev, a, resp);
    mvcc_hits_trim(m);
    return mvcc_loads_done(m, rc);
}

/* ---- put and delete ---- */

/* applierV3backend.Put inside a write transaction. */
static int mvcc_op_put(struct mvcc_wtxn *tx, const struct api_put_req *req, struct mem_arena *a,
                       struct api_put_resp *resp)
{
    struct mvcc *m = tx->w_m;
    struct mvcc_path path;
    struct mvcc_key *k = mvcc_tree_lookup(&m->mv_tree, req->key.p, req->key.len, &path);
    const struct mvcc_ver *cur = mvcc_key_latest(k);
    const uint8_t *value = req->value.p;
    size_t vlen = req->value.len;
    int64_t lease = req->lease;

    if ((req->ignore_value || req->ignore_lease) && !cur)
        return -ERR_KEY_NOT_FOUND;
    if (req->ignore_value) {
        value = cur->v_val->l_bytes;
        vlen = cur->v_val->l_len;
    }
    if (req->ignore_lease)
        lease = cur->v_val->l_lease;
    resp->prev_kv = NULL;
    if (req->prev_kv && cur) {
        /* before the write: a failed put must leave nothing behind */
        resp->prev_kv = mem_arena_alloc(a, sizeof *resp->prev_kv);
        if (!resp->prev_kv)
            return -ERR_NOMEM;
        mvcc_kv_fill(resp->prev_kv, k, cur, true);
    }
    int rc = mvcc_wtxn_put(tx, k, &path, req->key, value, vlen, lease);
    if (rc)
        return rc;
    if (resp->header)
        resp->header->revision = tx->w_begin + 1;
    return 0;
}

/* applierV3backend.DeleteRange inside a write transaction: the keys visible
 * to the transaction get tombstones with consecutive sub revisions. */
static int mvcc_op_delete(struct mvcc_wtxn *tx, const struct api_delete_req *req,
                          struct mem_arena *a, struct api_delete_resp *resp)
{
    struct mvcc *m = tx->w_m;
    struct mvcc_span s;
    size_t n;
    int64_t count;
    mvcc_span_make(&s, req->key, req->range_end);
    int rc = mvcc_collect(m, &s, mvcc_wtxn_read_rev(tx), SIZE_MAX, &n, &count);
    if (rc)
        return rc;

    resp->prev_kvs = NULL;
    resp->n_prev_kvs = 0;
    if (req->prev_kv && n) {
        /* filled before the tombstones go in: appending may move the
         * revision arrays the hits point into */
        if (n > SIZE_MAX / sizeof *resp->prev_kvs)
            return -ERR_NOMEM;
        resp->prev_kvs = mem_arena_alloc(a, n * sizeof *resp->prev_kvs);
        if (!resp->prev_kvs)
            return -ERR_NOMEM;
        for (size_t i = 0; i < n; i++)
            mvcc_kv_fill(&resp->prev_kvs[i], m->mv_hits[i].h_key, &m->mv_hits[i].h_ver, true);
        resp->n_prev_kvs = n;
    }
    for (size_t i = 0; i < n; i++) {
        rc = mvcc_wtxn_tombstone(tx, m->mv_hits[i].h_key);
        if (rc)
            return rc;
    }
    resp->deleted = (int64_t)n;
    if (resp->header)
        resp->header->revision = n || m->mv_n_changes ? tx->w_begin + 1 : tx->w_begin;
    return 0;
}

int mvcc_put(struct mvcc *m, const struct api_put_req *req, struct mem_arena *a,
             struct api_put_resp *resp)
{
    struct mvcc_wtxn tx;
    mvcc_wtxn_begin(&tx, m);
    int rc = mvcc_op_put(&tx, req, a, resp);
    if (rc)
        mvcc_wtxn_abort(&tx);
    else
        mvcc_wtxn_commit(&tx);
    return rc;
}

int mvcc_delete(struct mvcc *m, const struct api_delete_req *req, struct mem_arena *a,
                struct api_delete_resp *resp)
{
    struct mvcc_wtxn tx;
    mvcc_wtxn_begin(&tx, m);
    int rc = mvcc_op_delete(&tx, req, a, resp);
    if (rc)
        mvcc_wtxn_abort(&tx);
    else
        mvcc_wtxn_commit(&tx);
    mvcc_hits_trim(m);
    return rc;
}

/* ---- txn ---- */

static enum mvcc_op mvcc_op_kind(const struct api_request_op *op)
{
    if (op->request_range)
        return MVCC_OP_RANGE;
    if (op->request_put)
        return MVCC_OP_PUT;
    if (op->request_delete_range)
        return MVCC_OP_DELETE;
    if (op->request_txn)
        return MVCC_OP_TXN;
    return MVCC_OP_NONE;
}

/* compareKV: the target value comes from the oneof only if it is the member
 * the target names; otherwise 0 (or the empty value). */
static bool mvcc_compare_ver(const struct api_compare *c, const struct mvcc_ver *v)
{
    /* compares read the present: each key's newest, which is in memory */
    assert(!v || !MVCC_EVICTED(v));
    const struct mvcc_val *l = v ? v->v_val : NULL;
    int r = 0;
    switch (c->target) {
    case API_CMP_VALUE: {
        struct pb_bytes want = c->has_value ? c->value : (struct pb_bytes){NULL, 0};
        r = mvcc_bcmp(l ? l->l_bytes : NULL, l ? l->l_len : 0, want.p, want.len);
        break;
    }
    case API_CMP_CREATE:
        r = mvcc_cmp64(l ? l->l_create : 0, c->has_create_revision ? c->create_revision : 0);
        break;
    case API_CMP_MOD:
        r = mvcc_cmp64(v ? v->v_main : 0, c->has_mod_revision ? c->mod_revision : 0);
        break;
    case API_CMP_VERSION:
        r = mvcc_cmp64(l ? l->l_version : 0, c->has_version ? c->version : 0);
        break;
    case API_CMP_LEASE:
        r = mvcc_cmp64(l ? l->l_lease : 0, c->has_lease ? c->lease : 0);
        break;
    default:
        break;
    }
    switch (c->result) {
    case API_CMP_EQUAL:
        return r == 0;
    case API_CMP_NOT_EQUAL:
        return r != 0;
    case API_CMP_GREATER:
        return r > 0;
    case API_CMP_LESS:
        return r < 0;
    default:
        return true;
    }
}

/* applyCompare: every key of the span must pass; with no key the compare is
 * made against an empty KeyValue, except that a VALUE compare then fails. */
static bool mvcc_compare(const struct mvcc *m, const struct api_compare *c, int64_t rev)
{
    struct mvcc_span s;
    struct mvcc_scan sc;
    struct mvcc_key *k;
    bool any = false;
    mvcc_span_make(&s, c->key, c->range_end);
    mvcc_scan_init(&sc, &m->mv_tree, &s);
    while ((k = mvcc_scan_next(&sc))) {
        struct mvcc_ver v;
        if (!mvcc_key_at(k, rev, &v))
            continue;
        any = true;
        if (!mvcc_compare_ver(c, &v))
            return false;
    }
    if (!any)
        return c->target != API_CMP_VALUE && mvcc_compare_ver(c, NULL);
    return true;
}

/* Number of txn nodes in rt, both branches: an upper bound on the path. */
static size_t mvcc_txn_nodes(const struct api_txn_req *rt)
{
    size_t n = 1;
    for (size_t i = 0; i < rt->n_success; i++)
        if (mvcc_op_kind(&rt->success[i]) == MVCC_OP_TXN)
            n += mvcc_txn_nodes(rt->success[i].request_txn);
    for (size_t i = 0; i < rt->n_failure; i++)
        if (mvcc_op_kind(&rt->failure[i]) == MVCC_OP_TXN)
            n += mvcc_txn_nodes(rt->failure[i].request_txn);
    return n;
}

/* compareToPath: the branch each txn on the taken path runs, in depth-first
 * order, every compare (nested ones too) read before anything is written. */
static void mvcc_txn_path(const struct mvcc *m, const struct api_txn_req *rt, bool *path,
                          size_t *pos)
{
    bool ok = true;
    for (size_t i = 0; i < rt->n_compare && ok; i++)
        ok = mvcc_compare(m, &rt->compare[i], m->mv_rev);
    path[(*pos)++] = ok;
    const struct api_request_op *ops = ok ? rt->success : rt->failure;
    size_t n = ok ? rt->n_success : rt->n_failure;
    for (size_t i = 0; i < n; i++)
        if (mvcc_op_kind(&ops[i]) == MVCC_OP_TXN)
            mvcc_txn_path(m, ops[i].request_txn, path, pos);
}

/* checkRequests with checkRequestPut: ignore_value/ignore_lease need the key
 * to exist before the txn; a lease must exist. */
static int mvcc_txn_check_puts(const struct mvcc *m, const struct api_txn_req *rt,
                               const bool *path, size_t *pos)
{
    bool ok = path[(*pos)++];
    const struct api_request_op *ops = ok ? rt->success : rt->failure;
    size_t n = ok ? rt->n_success : rt->n_failure;
    for (size_t i = 0; i < n; i++) {
        enum mvcc_op kind = mvcc_op_kind(&ops[i]);
        if (kind == MVCC_OP_TXN) {
            int rc = mvcc_txn_check_puts(m, ops[i].request_txn, path, pos);
            if (rc)
                return rc;
            continue;
        }
        if (kind != MVCC_OP_PUT)
            continue;
        const struct api_put_req *p = ops[i].request_put;
        if (p->ignore_value || p->ignore_lease) {
            struct mvcc_key *k = mvcc_tree_find(&m->mv_tree, p->key.p, p->key.len);
            if (!mvcc_key_latest(k))
                return -ERR_KEY_NOT_FOUND;
        }
        if (p->lease && m->mv_lease_exists && !m->mv_lease_exists(m->mv_lease_ctx, p->lease))
            return -ERR_LEASE_NOT_FOUND;
    }
    return 0;
}

/* checkRequests with checkRequestRange: the revision must be readable now. */
static int mvcc_txn_check_ranges(const struct mvcc *m, const struct api_txn_req *rt,
                                 const bool *path, size_t *pos)
{
    bool ok = path[(*pos)++];
    const struct api_request_op *ops = ok ? rt->success : rt->failure;
    size_t n = ok ? rt->n_success : rt->n_failure;
    for (size_t i = 0; i < n; i++) {
        enum mvcc_op kind = mvcc_op_kind(&ops[i]);
        if (kind == MVCC_OP_TXN) {
            int rc = mvcc_txn_check_ranges(m, ops[i].request_txn, path, pos);
            if (rc)
                return rc;
            continue;
        }
        const struct api_range_req *r = ops[i].request_range;
        if (kind != MVCC_OP_RANGE || !r->revision)
            continue;
        if (r->revision > m->mv_rev)
            return -ERR_FUTURE_REV;
        if (r->revision < m->mv_compact)
            return -ERR_COMPACTED;
    }
    return 0;
}

/* applyTxn.  Op responses carry headers with only the revision set; a nested
 * txn's header stays all zero, as etcd leaves it. */
static int mvcc_txn_apply(struct mvcc_wtxn *tx, const struct api_txn_req *rt, const bool *path,
                          size_t *pos, struct mem_arena *a, struct api_txn_resp *resp)
{
    bool ok = path[(*pos)++];
    const struct api_request_op *ops = ok ? rt->success : rt->failure;
    size_t n = ok ? rt->n_success : rt->n_failure;
    resp->succeeded = ok;
    resp->responses = NULL;
    resp->n_responses = 0;
    if (!n)
        return 0;
    if (n > SIZE_MAX / sizeof *resp->responses)
        return -ERR_NOMEM;
    resp->responses = mem_arena_zalloc(a, n * sizeof *resp->responses);
    if (!resp->responses)
        return -ERR_NOMEM;
    resp->n_responses = n;
    for (size_t i = 0; i < n; i++) {
        const struct api_request_op *op = &ops[i];
        struct api_response_op *out = &resp->responses[i];
        enum mvcc_op kind = mvcc_op_kind(op);
        int rc = 0;
        if (kind == MVCC_OP_NONE)
            continue; /* etcd leaves a nil ResponseOp */
        struct api_header *h = mem_arena_zalloc(a, sizeof *h);
        if (!h)
            return -ERR_NOMEM;
        if (kind == MVCC_OP_RANGE) {
            out->response_range = mem_arena_zalloc(a, sizeof *out->response_range);
            if (!out->response_range)
                return -ERR_NOMEM;
            out->response_range->header = h;
            rc = mvcc_range_at(tx->w_m, op->request_range, mvcc_wtxn_read_rev(tx), a,
                               out->response_range);
        } else if (kind == MVCC_OP_PUT) {
            out->response_put = mem_arena_zalloc(a, sizeof *out->response_put);
            if (!out->response_put)
                return -ERR_NOMEM;
            out->response_put->header = h;
            rc = mvcc_op_put(tx, op->request_put, a, out->response_put);
        } else if (kind == MVCC_OP_DELETE) {
            out->response_delete_range = mem_arena_zalloc(a, sizeof *out->response_delete_range);
            if (!out->response_delete_range)
                return -ERR_NOMEM;
            out->response_delete_range->header = h;
            rc = mvcc_op_delete(tx, op->request_delete_range, a, out->response_delete_range);
        } else {
            out->response_txn = mem_arena_zalloc(a, sizeof *out->response_txn);
            if (!out->response_txn)
                return -ERR_NOMEM;
            out->response_txn->header = h;
            rc = mvcc_txn_apply(tx, op->request_txn, path, pos, a, out->response_txn);
        }
        if (rc)
            return rc;
    }
    return 0;
}

int mvcc_txn(struct mvcc *m, const struct api_txn_req *req, struct mem_arena *a,
             struct api_txn_resp *resp)
{
    /* the feed shows this call's changes, none if it fails before writing */
    m->mv_n_changes = 0;
    size_t n = mvcc_txn_nodes(req);
    bool *path = mem_arena_alloc(a, n * sizeof *path);
    if (!path)
        return -ERR_NOMEM;
    size_t pos = 0;
    mvcc_txn_path(m, req, path, &pos);
    pos = 0;
    int rc = mvcc_txn_check_puts(m, req, path, &pos);
    if (rc)
        return rc;
    pos = 0;
    rc = mvcc_txn_check_ranges(m, req, path, &pos);
    if (rc)
        return rc;

    struct mvcc_wtxn tx;
    mvcc_wtxn_begin(&tx, m);
    pos = 0;
    rc = mvcc_txn_apply(&tx, req, path, &pos, a, resp);
    if (rc) {
        /* only -ERR_NOMEM, or an ignore_* put whose key an earlier op of
         * this txn deleted (where etcd panics): undo, stay consistent */
        mvcc_wtxn_abort(&tx);
    } else {
        if (resp->header)
            resp->header->revision = mvcc_wtxn_read_rev(&tx);
        mvcc_wtxn_commit(&tx);
    }
    mvcc_hits_trim(m);
    return mvcc_loads_done(m, rc);
}

/* ---- txn validation (v3rpc checkTxnRequest, checkIntervals) ---- */

static int mvcc_bytes_cmp(const void *a, const void *b, const void *ctx)
{
    const struct pb_bytes *x = a, *y = b;
    (void)ctx;
    return mvcc_bcmp(x->p, x->len, y->p, y->len);
}

static int mvcc_ivl_cmp(const void *a, const void *b, const void *ctx)
{
    const struct mvcc_ivl *x = a, *y = b;
    (void)ctx;
    int c = mvcc_bcmp(x->i_begin.p, x->i_begin.len, y->i_begin.p, y->i_begin.len);
    return c ? c : mvcc_bcmp(x->i_end.p, x->i_end.len, y->i_end.p, y->i_end.len);
}

static bool mvcc_wset_puts(const struct mvcc_wset *w, struct pb_bytes k)
{
    size_t lo = 0, hi = w->w_n_puts;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = mvcc_bcmp(w->w_puts[mid].p, w->w_puts[mid].len, k.p, k.len);
        if (!c)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* Whether some delete interval holds k: among the intervals beginning at or
 * before k, the one reaching furthest must end after k. */
static bool mvcc_wset_deletes(const struct mvcc_wset *w, struct pb_bytes k)
{
    size_t lo = 0, hi = w->w_n_dels;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (mvcc_bcmp(w->w_dels[mid].i_begin.p, w->w_dels[mid].i_begin.len, k.p, k.len) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo && mvcc_bcmp(w->w_maxend[lo - 1].p, w->w_maxend[lo - 1].len, k.p, k.len) > 0;
}

/* Sorts and dedups the puts, sorts the deletes and computes w_maxend. */
static int mvcc_wset_finish(struct mvcc_wset *w, struct mem_arena *a)
{
    mvcc_sort(w->w_puts, w->w_n_puts, sizeof *w->w_puts, mvcc_bytes_cmp, NULL);
    size_t j = 0;
    for (size_t i = 0; i < w->w_n_puts; i++)
        if (!j || mvcc_bytes_cmp(&w->w_puts[j - 1], &w->w_puts[i], NULL))
            w->w_puts[j++] = w->w_puts[i];
    w->w_n_puts = j;
    mvcc_sort(w->w_dels, w->w_n_dels, sizeof *w->w_dels, mvcc_ivl_cmp, NULL);
    w->w_maxend = NULL;
    if (!w->w_n_dels)
        return 0;
    w->w_maxend = mem_arena_alloc(a, w->w_n_dels * sizeof *w->w_maxend);
    if (!w->w_maxend)
        return -ERR_NOMEM;
    for (size_t i = 0; i < w->w_n_dels; i++) {
        struct pb_bytes e = w->w_dels[i].i_end;
        if (i && mvcc_bytes_cmp(&w->w_maxend[i - 1], &e, NULL) > 0)
            e = w->w_maxend[i - 1];
        w->w_maxend[i] = e;
    }
    return 0;
}

static bool mvcc_wsets_put(const struct mvcc_wset *ws, size_t n, struct pb_bytes k)
{
    for (size_t i = 0; i < n; i++)
        if (mvcc_wset_puts(&ws[i], k))
            return true;
    return false;
}

static bool mvcc_wsets_delete(const struct mvcc_wset *ws, size_t n, struct pb_bytes k)
{
    for (size_t i = 0; i < n; i++)
        if (mvcc_wset_deletes(&ws[i], k))
            return true;
    return false;
}

/* checkIntervals over ops[0..n): a key may not be put twice, nor be put and
 * fall in a delete, where etcd's rules look.  Those rules, kept as they are:
 * this level's deletes and the deletes of the nested txns before a nested txn
 * are checked against its puts; a nested txn's then and else branches may
 * put the same key; this level's puts are checked against everything below.
 * A nested txn's puts are not checked against the deletes of nested txns
 * after it.  Fills *out with everything written, for the level above. */
static int mvcc_check_intervals(const struct api_request_op *ops, size_t n, struct mem_arena *a,
                                struct mvcc_wset *out)
{
    struct mvcc_wset *kids = NULL;
    size_t n_kids = 0, n_txn = 0, n_del = 0, n_put = 0;
    for (size_t i = 0; i < n; i++) {
        enum mvcc_op kind = mvcc_op_kind(&ops[i]);
        n_txn += kind == MVCC_OP_TXN;
        n_del += kind == MVCC_OP_DELETE;
        n_put += kind == MVCC_OP_PUT;
    }
    /* kids[0] holds this level's deletes, then two sets per nested txn */
    kids = mem_arena_zalloc(a, (1 + 2 * n_txn) * sizeof *kids);
    if (!kids)
        return -ERR_NOMEM;
    if (n_del) {
        kids[0].w_dels = mem_arena_alloc(a, n_del * sizeof *kids[0].w_dels);
        if (!kids[0].w_dels)
            return -ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        if (mvcc_op_kind(&ops[i]) != MVCC_OP_DELETE)
            continue;
        const struct api_delete_req *d = ops[i].request_delete_range;
        struct mvcc_ivl iv = {d->key, d->range_end};
        if (!d->range_end.len) { /* a point: [key, key + "\0") */
            uint8_t *e = mem_arena_alloc(a, d->key.len + 1);
            if (!e)
                return -ERR_NOMEM;
            if (d->key.len)
                memcpy(e, d->key.p, d->key.len);
            e[d->key.len] = 0;
            iv.i_end.p = e;
            iv.i_end.len = d->key.len + 1;
        }
        if (mvcc_bytes_cmp(&iv.i_end, &iv.i_begin, NULL) > 0)
            kids[0].w_dels[kids[0].w_n_dels++] = iv;
    }
    int rc = mvcc_wset_finish(&kids[0], a);
    if (rc)
        return rc;
    n_kids = 1;

    for (size_t i = 0; i < n; i++) {
        if (mvcc_op_kind(&ops[i]) != MVCC_OP_TXN)
            continue;
        const struct api_txn_req *t = ops[i].request_txn;
        struct mvcc_wset *then = &kids[n_kids], *els = &kids[n_kids + 1];
        rc = mvcc_check_intervals(t->success, t->n_success, a, then);
        if (rc)
            return rc;
        rc = mvcc_check_intervals(t->failure, t->n_failure, a, els);
        if (rc)
            return rc;
        for (size_t j = 0; j < then->w_n_puts; j++)
            if (mvcc_wsets_put(kids, n_kids, then->w_puts[j]) ||
                mvcc_wsets_delete(kids, n_kids, then->w_puts[j]))
                return -ERR_DUPLICATE_KEY;
        for (size_t j = 0; j < els->w_n_puts; j++)
            if (mvcc_wsets_put(kids, n_kids, els->w_puts[j]) ||
                mvcc_wsets_delete(kids, n_kids, els->w_puts[j]))
                return -ERR_DUPLICATE_KEY;
        n_kids += 2;
    }

    size_t all_puts = n_put, all_dels = 0;
    for (size_t i = 0; i < n_kids; i++) {
        all_puts += kids[i].w_n_puts;
        all_dels += kids[i].w_n_dels;
    }
    memset(out, 0, sizeof *out);
    if (all_puts) {
        out->w_puts = mem_arena_alloc(a, all_puts * sizeof *out->w_puts);
        if (!out->w_puts)
            return -ERR_NOMEM;
    }
    if (all_dels) {
        out->w_dels = mem_arena_alloc(a, all_dels * sizeof *out->w_dels);
        if (!out->w_dels)
            return -ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        if (mvcc_op_kind(&ops[i]) != MVCC_OP_PUT)
            continue;
        const struct api_put_req *p = ops[i].request_put;
        if (mvcc_wsets_put(kids, n_kids, p->key) || mvcc_wsets_delete(kids, n_kids, p->key))
            return -ERR_DUPLICATE_KEY;
        out->w_puts[out->w_n_puts++] = p->key;
    }
    /* two puts of one key at this level */
    mvcc_sort(out->w_puts, out->w_n_puts, sizeof *out->w_puts, mvcc_bytes_cmp, NULL);
    for (size_t i = 1; i < out->w_n_puts; i++)
        if (!mvcc_bytes_cmp(&out->w_puts[i - 1], &out->w_puts[i], NULL))
            return -ERR_DUPLICATE_KEY;
    for (size_t i = 0; i < n_kids; i++) {
        if (kids[i].w_n_puts)
            memcpy(out->w_puts + out->w_n_puts, kids[i].w_puts,
                   kids[i].w_n_puts * sizeof *out->w_puts);
        out->w_n_puts += kids[i].w_n_puts;
        if (kids[i].w_n_dels)
            memcpy(out->w_dels + out->w_n_dels, kids[i].w_dels,
                   kids[i].w_n_dels * sizeof *out->w_dels);
        out->w_n_dels += kids[i].w_n_dels;
    }
    return mvcc_wset_finish(out, a);
}

/* checkTxnRequest with checkRequestOp: a nested txn may use only the ops its
 * parent left (max_ops minus the parent's largest list). */
static int mvcc_check_txn_req(const struct api_txn_req *r, long long max_ops)
{
    size_t opc = r->n_compare;
    if (opc < r->n_success)
        opc = r->n_success;
    if (opc < r->n_failure)
        opc = r->n_failure;
    if (opc > (size_t)LLONG_MAX || (long long)opc > max_ops)
        return -ERR_TOO_MANY_OPS;
    for (size_t i = 0; i < r->n_compare; i++)
        if (!r->compare[i].key.len)
            return -ERR_EMPTY_KEY;
    for (int branch = 0; branch < 2; branch++) {
        const struct api_request_op *ops = branch ? r->failure : r->success;
        size_t n = branch ? r->n_failure : r->n_success;
        for (size_t i = 0; i < n; i++) {
            const struct api_request_op *op = &ops[i];
            enum mvcc_op kind = mvcc_op_kind(op);
            if (kind == MVCC_OP_RANGE) {
                if (!op->request_range->key.len)
                    return -ERR_EMPTY_KEY;
            } else if (kind == MVCC_OP_PUT) {
                const struct api_put_req *p = op->request_put;
                if (!p->key.len)
                    return -ERR_EMPTY_KEY;
                if (p->ignore_value && p->value.len)
                    return -ERR_VALUE_PROVIDED;
                if (p->ignore_lease && p->lease)
                    return -ERR_LEASE_PROVIDED;
            } else if (kind == MVCC_OP_DELETE) {
                if (!op->request_delete_range->key.len)
                    return -ERR_EMPTY_KEY;
            } else if (kind == MVCC_OP_TXN) {
                int rc = mvcc_check_txn_req(op->request_txn, max_ops - (long long)opc);
                if (rc)
                    return rc;
            } else {
                return -ERR_KEY_NOT_FOUND; /* an empty RequestOp */
            }
        }
    }
    return 0;
}

int mvcc_txn_check(const struct api_txn_req *req, int max_ops)
{
    int rc = mvcc_check_txn_req(req, max_ops);
    if (rc)
        return rc;
    /* checkIntervals allocates maps in etcd; here a throwaway arena */
    struct mem_arena a;
    struct mvcc_wset w;
    mem_arena_init(&a, 0);
    rc = mvcc_check_intervals(req->success, req->n_success, &a, &w);
    if (!rc)
        rc = mvcc_check_intervals(req->failure, req->n_failure, &a, &w);
    mem_arena_free(&a);
    return rc;
}

/* ---- the event feed ---- */

/* Index of the first revision of k with main >= rev (k->k_n if none). */
static size_t mvcc_key_from(const struct mvcc_key *k, int64_t rev)
{
    return rev > INT64_MIN ? mvcc_key_upto(k, rev - 1) : 0;
}

/* The revision etcd's watch server reads as prev_kv of revision idx of k,
 * of main revision main: the key at main - 1, that is the newest revision
 * before main, into *pv if live; else false.  Revisions earlier in the same
 * main (a txn that put then deleted the key) do not count, and when main - 1
 * is compacted that revision is gone here too (compaction keeps only the
 * newest revision <= the compacted one), as etcd's read at main - 1 fails
 * then. */
static bool mvcc_prev_of(const struct mvcc_key *k, size_t idx, int64_t main, struct mvcc_ver *pv)
{
    while (idx > 0) {
        *pv = mvcc_key_ver(k, --idx);
        if (pv->v_main != main)
            return !MVCC_IS_TOMB(pv);
    }
    return false;
}

/* etcd's event for revision v, kvs not filled yet. */
static void mvcc_event_head(const struct mvcc_ver *v, struct mvcc_event *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->sub = v->v_sub;
    ev->type = MVCC_IS_TOMB(v) ? API_EVENT_DELETE : API_EVENT_PUT;
}

size_t mvcc_last_n_events(const struct mvcc *m)
{
    return m->mv_n_changes;
}

void mvcc_last_event(const struct mvcc *m, size_t i, struct mvcc_event *ev)
{
    assert(i < m->mv_n_changes);
    const struct mvcc_key *k = m->mv_changes[i].c_key;
    size_t idx = m->mv_changes[i].c_idx;
    /* what the last call wrote and replaced was its key's newest: in memory */
    struct mvcc_ver v = mvcc_key_ver(k, idx), pv;
    mvcc_event_head(&v, ev);
    mvcc_kv_fill(&ev->kv, k, &v, true);
    if (mvcc_prev_of(k, idx, v.v_main, &pv)) {
        ev->has_prev = true;
        mvcc_kv_fill(&ev->prev, k, &pv, true);
    }
}

int64_t mvcc_compact_main_rev(const struct mvcc *m)
{
    return m->mv_compact;
}

/* (main, sub) order. */
static int mvcc_evref_cmp(const void *a, const void *b, const void *ctx)
{
    const struct mvcc_evref *x = a, *y = b;
    (void)ctx;
    int c = mvcc_cmp64(x->r_main, y->r_main);
    return c ? c : mvcc_cmp64(x->r_sub, y->r_sub);
}

/* Max-heap: moves h[i] up to its place. */
static void mvcc_evref_up(struct mvcc_evref *h, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (mvcc_evref_cmp(&h[p], &h[i], NULL) >= 0)
            return;
        struct mvcc_evref t = h[p];
        h[p] = h[i];
        h[i] = t;
        i = p;
    }
}

/* Every revision with main == rev of the keys in s: the one revision that
 * did not fit in a batch, which goes out whole (a delete of a huge range). */
static int mvcc_events_of_rev(struct mvcc *m, const struct mvcc_span *s, int64_t rev,
                              struct mem_arena *a, struct mvcc_evref **out, size_t *n)
{
    struct mvcc_scan sc;
    struct mvcc_cur u;
    struct mvcc_ver v;
    const struct mvcc_key *k;
    size_t count = 0;
    mvcc_scan_init(&sc, &m->mv_tree, s);
    while ((k = mvcc_scan_next(&sc)))
        for (mvcc_cur_init(&u, k, mvcc_key_from(k, rev)); mvcc_cur_next(&u, &v) && v.v_main == rev;)
            count++;
    if (count > SIZE_MAX / sizeof **out)
        return -ERR_NOMEM;
    *out = mem_arena_alloc(a, count * sizeof **out);
    if (!*out)
        return -ERR_NOMEM;
    *n = 0;
    mvcc_scan_init(&sc, &m->mv_tree, s);
    while ((k = mvcc_scan_next(&sc)))
        for (mvcc_cur_init(&u, k, mvcc_key_from(k, rev)); mvcc_cur_next(&u, &v) && v.v_main == rev;)
            (*out)[(*n)++] = (struct mvcc_evref){k, u.u_i - 1, v.v_main, v.v_sub};
    return 0;
}

/* One walk over the range keeps the max_events smallest revisions in a
 * max-heap.  cut is the smallest main revision of anything that did not
 * fit: everything below cut is in the heap, so the batch is the heap less
 * the revisions >= cut (which may be partial). */
int mvcc_events_since(struct mvcc *m, struct pb_bytes key, struct pb_bytes range_end,
                      int64_t from_rev, size_t max_events, size_t max_bytes, struct mem_arena *a,
                      struct mvcc_event **evs, size_t *n, int64_t *next_rev)
{
    *evs = NULL;
    *n = 0;
    *next_rev = from_rev;
    if (from_rev < m->mv_compact)
        return -ERR_COMPACTED;
    if (from_rev > m->mv_rev)
        return 0;
    if (max_events == 0)
        max_events = 1;
    if (max_events > SIZE_MAX / sizeof(struct mvcc_evref))
        return -ERR_NOMEM;
    struct mvcc_evref *h = mem_arena_alloc(a, max_events * sizeof *h);
    if (!h)
        return -ERR_NOMEM;

    struct mvcc_span s;
    struct mvcc_scan sc;
    const struct mvcc_key *k;
    size_t hn = 0;
    int64_t cut = INT64_MAX;
    mvcc_span_make(&s, key, range_end);
    mvcc_scan_init(&sc, &m->mv_tree, &s);
    while ((k = mvcc_scan_next(&sc))) {
        struct mvcc_cur u;
        struct mvcc_ver v;
        for (mvcc_cur_init(&u, k, mvcc_key_from(k, from_rev)); mvcc_cur_next(&u, &v);) {
            struct mvcc_evref r = {k, u.u_i - 1, v.v_main, v.v_sub};
            if (hn < max_events) {
                h[hn] = r;
                mvcc_evref_up(h, hn++);
                continue;
            }
            const struct mvcc_evref *top = &h[0];
            if (mvcc_evref_cmp(&r, top, NULL) >= 0) {
                /* this key's later revisions are larger still */
                if (v.v_main < cut)
                    cut = v.v_main;
                break;
            }
            int64_t tm = top->r_main;
            if (tm < cut)
                cut = tm;
            h[0] = r;
            mvcc_sift((unsigned char *)h, 0, hn, sizeof *h, mvcc_evref_cmp, NULL);
        }
    }
    if (cut == INT64_MAX) {
        *next_rev = m->mv_rev + 1;
    } else {
        size_t j = 0;
        for (size_t i = 0; i < hn; i++)
            if (h[i].r_main < cut)
                h[j++] = h[i];
        hn = j;
        *next_rev = cut;
        if (!hn) {
            int rc = mvcc_events_of_rev(m, &s, cut, a, &h, &hn);
            if (rc)
                return rc;
            *next_rev = cut + 1;
        }
    }
    if (!hn)
        return 0;
    mvcc_sort(h, hn, sizeof *h, mvcc_evref_cmp, NULL);
    if (hn > SIZE_MAX / sizeof **evs)
        return -ERR_NOMEM;
    *evs = mem_arena_alloc(a, hn * sizeof **evs);
    if (!*evs)
        return -ERR_NOMEM;
    /* evicted values are read back; a prev is mostly the event just
     * before it, whose value is at hand */
    size_t bytes = 0;
    int rc = 0;
    for (size_t i = 0; i < hn && !rc; i++) {
        struct mvcc_event *ev = &(*evs)[i];
        const struct mvcc_evref *r = &h[i];
        if (max_bytes && bytes >= max_bytes && r->r_main != h[i - 1].r_main) {
            hn = i; /* the rest is read next time, not now and again then */
            *next_rev = r->r_main;
            break;
        }
        struct mvcc_ver v = mvcc_key_ver(r->r_key, r->r_idx), pv;
        mvcc_event_head(&v, ev);
        rc = mvcc_kv_load(m, &ev->kv, r->r_key, &v, true, a);
        if (mvcc_prev_of(r->r_key, r->r_idx, v.v_main, &pv)) {
            ev->has_prev = true;
            if (i > 0 && h[i - 1].r_key == r->r_key && h[i - 1].r_main == pv.v_main &&
                h[i - 1].r_sub == pv.v_sub)
                ev->prev = (*evs)[i - 1].kv;
            else if (!rc)
                rc = mvcc_kv_load(m, &ev->prev, r->r_key, &pv, true, a);
        }
        bytes += ev->kv.value.len + ev->prev.value.len;
    }
    if (rc) {
        *evs = NULL;
        hn = 0;
    }
    *n = hn;
    return mvcc_loads_done(m, rc);
}

/* ---- compaction ---- */

int mvcc_compact(struct mvcc *m, int64_t rev)
{
    /* the change log points at revision indexes compaction moves */
    m->mv_n_changes = 0;
    if (rev <= m->mv_compact)
        return -ERR_COMPACTED;
    if (rev > m->mv_rev)
        return -ERR_FUTURE_REV;

    struct mvcc_tree *t = &m->mv_tree;
    struct mvcc_iter it;
    struct mvcc_key *k;
    size_t dead = 0;
    mvcc_tree_seek(t, NULL, 0, &it);
    while ((k = mvcc_iter_next(&it)))
        dead += mvcc_key_compact_from(k, rev) == k->k_n;

    /* The only allocation is the new index, made before anything changes,
     * so -ERR_NOMEM leaves the store as it was. */
    struct mvcc_tree nt;
    if (dead) {
        int rc = mvcc_tree_rebuild(t, rev, &nt);
        if (rc)
            return rc;
        size_t keep = 0;
        for (size_t i = 0; i < m->mv_n_dirty; i++) {
            k = m->mv_dirty[i];
            if (mvcc_key_compact_from(k, rev) < k->k_n)
                m->mv_dirty[keep++] = k;
        }
        m->mv_n_dirty = keep;
    }
    mvcc_tree_seek(t, NULL, 0, &it);
    while ((k = mvcc_iter_next(&it))) {
        size_t from = mvcc_key_compact_from(k, rev);
        if (from == k->k_n)
            mvcc_key_free(k);
        else
            mvcc_key_compact(k, from);
    }
    if (dead) {
        mvcc_node_free(t->t_root);
        t->t_root = nt.t_root;
        t->t_height = nt.t_height;
        t->t_n_keys = nt.t_n_keys;
    }
    m->mv_compact = rev;
    return 0;
}

/* ---- restoring from the backend ---- */

/* Everything restored is on disk: with a loader, only the newest revision
 * of a key keeps its value. */
static void mvcc_restore_evict(struct mvcc *m, struct mvcc_key *k)
{
    if (m->mv_loader.load)
        mvcc_key_evict(k, INT64_MAX);
}

int mvcc_restore_rev(struct mvcc *m, int64_t main, int64_t sub, const struct api_kv *kv,
                     bool tombstone)
{
    struct mvcc_path path;
    struct mvcc_key *k = mvcc_tree_lookup(&m->mv_tree, kv->key.p, kv->key.len, &path);
    assert(main >= 1 && sub >= 0);
    assert(!k || !k->k_n || mvcc_key_newest(k)->v_main < main ||
           (mvcc_key_newest(k)->v_main == main && mvcc_key_newest(k)->v_sub < sub));
    struct mvcc_ver *v;
    int rc;
    if (tombstone) {
        /* etcd's restoreIntoIndex drops a tombstone with no live generation
         * under it: what a compaction cut short leaves behind */
        if (!mvcc_key_latest(k))
            return 0;
        if ((rc = mvcc_key_reserve(k)))
            return rc;
        v = &k->k_vers[k->k_n++ - k->k_res];
        v->v_main = main;
        v->v_sub = sub;
        v->v_val = MVCC_TOMB;
        mvcc_restore_evict(m, k);
        return 0;
    }
    assert(kv->version >= 1 && kv->mod_revision == main);
    struct mvcc_val *val = mvcc_val_new(kv->value.p, kv->value.len);
    if (!val)
        return -ERR_NOMEM;
    if (k) {
        rc = mvcc_key_reserve(k);
    } else {
        k = mvcc_key_new(kv->key.p, kv->key.len);
        rc = k ? mvcc_tree_reserve(&m->mv_tree) : -ERR_NOMEM;
        if (rc == 0) {
            mvcc_tree_insert(&m->mv_tree, k, &path);
        } else if (k) {
            mvcc_key_free(k);
        }
    }
    if (rc) {
        mem_free(val);
        return rc;
    }
    /* the stored KeyValue is what etcd serves, so its fields are taken as
     * they are rather than recomputed from the key's history */
    v = &k->k_vers[k->k_n++ - k->k_res];
    v->v_main = main;
    v->v_sub = sub;
    v->v_val = val;
    val->l_create = kv->create_revision;
    val->l_version = kv->version;
    val->l_lease = kv->lease;
    mvcc_restore_evict(m, k);
    return 0;
}

void mvcc_restore_finish(struct mvcc *m, int64_t rev, int64_t compact_main_rev)
{
    m->mv_rev = rev < 1 ? 1 : rev;
    m->mv_compact = compact_main_rev;
    m->mv_n_changes = 0;
}

/* LSD radix sort by (main, sub), both >= 0 in a store: a compaction sorts
 * a revision per key on the loop thread, and for a million keys this is
 * several times faster than a comparison sort (random order: a branch
 * mispredicted per compare).  Digits of 11 bits, only as many as the
 * largest value has (sub is nearly always 0); a digit that is the same in
 * every element costs one counting pass and no move.  0 or -ERR_NOMEM (a
 * unchanged). */
#define MVCC_RADIX_BITS 11
#define MVCC_RADIX (1u << MVCC_RADIX_BITS)

static int mvcc_revision_sort(struct mvcc_revision *a, size_t n)
{
    if (n < 2)
        return 0;
    size_t *count = mem_alloc(MVCC_RADIX * sizeof *count);
    struct mvcc_revision *tmp = mem_alloc(n * sizeof *tmp), *src = a, *dst = tmp;
    if (!count || !tmp) {
        mem_free(count);
        mem_free(tmp);
        return -ERR_NOMEM;
    }
    /* the sub revision first: it is the less significant half */
    for (int field = 1; field >= 0; field--) {
        uint64_t max = 0;
        for (size_t i = 0; i < n; i++) {
            uint64_t v = (uint64_t)(field ? src[i].sub : src[i].main);
            max = v > max ? v : max;
        }
        for (unsigned shift = 0; shift < 64 && max >> shift; shift += MVCC_RADIX_BITS) {
            memset(count, 0, MVCC_RADIX * sizeof *count);
            for (size_t i = 0; i < n; i++) {
                uint64_t v = (uint64_t)(field ? src[i].sub : src[i].main);
                count[(v >> shift) & (MVCC_RADIX - 1)]++;
            }
            uint64_t first = (uint64_t)(field ? src[0].sub : src[0].main);
            if (count[(first >> shift) & (MVCC_RADIX - 1)] == n)
                continue;
            size_t sum = 0;
            for (unsigned d = 0; d < MVCC_RADIX; d++) {
                size_t c = count[d];
                count[d] = sum;
                sum += c;
            }
            for (size_t i = 0; i < n; i++) {
                uint64_t v = (uint64_t)(field ? src[i].sub : src[i].main);
                dst[count[(v >> shift) & (MVCC_RADIX - 1)]++] = src[i];
            }
            struct mvcc_revision *t = src;
            src = dst;
            dst = t;
        }
    }
    if (src != a)
        memcpy(a, src, n * sizeof *a);
    mem_free(count);
    mem_free(tmp);
    return 0;
}

int mvcc_keep(const struct mvcc *m, int64_t rev, int64_t upto, struct mvcc_revision **out, size_t *n,
              size_t *n_all)
{
    struct mvcc_revision *arr = NULL;
    size_t cnt = 0, cap = 0, all = 0;
    struct mvcc_iter it;
    const struct mvcc_key *k;

    mvcc_tree_seek(&m->mv_tree, NULL, 0, &it);
    while ((k = mvcc_iter_next(&it))) {
        struct mvcc_ver v;
        if (!mvcc_key_at(k, rev, &v))
            continue;
        all++;
        if (v.v_main > upto)
            continue;
        if (cnt == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            struct mvcc_revision *na =
                ncap > SIZE_MAX / sizeof *na ? NULL : mem_realloc(arr, ncap * sizeof *na);
            if (!na) {
                mem_free(arr);
                return -ERR_NOMEM;
            }
            arr = na;
            cap = ncap;
        }
        arr[cnt].main = v.v_main;
        arr[cnt++].sub = v.v_sub;
    }
    if (mvcc_revision_sort(arr, cnt) < 0) {
        mem_free(arr);
        return -ERR_NOMEM;
    }
    if (!cnt) {
        mem_free(arr);
        arr = NULL;
    }
    *out = arr;
    *n = cnt;
    if (n_all)
        *n_all = all;
    return 0;
}

int mvcc_leased_keys(const struct mvcc *m, struct mem_arena *a, struct api_kv **out, size_t *n)
{
    struct mvcc_iter it;
    const struct mvcc_key *k;
    size_t cnt = 0;
    *out = NULL;
    *n = 0;
    mvcc_tree_seek(&m->mv_tree, NULL, 0, &it);
    while ((k = mvcc_iter_next(&it))) {
        const struct mvcc_ver *v = mvcc_key_latest(k);
        cnt += v && v->v_val->l_lease;
    }
    if (!cnt)
        return 0;
    if (cnt > SIZE_MAX / sizeof **out)
        return -ERR_NOMEM;
    struct api_kv *kvs = mem_arena_zalloc(a, cnt * sizeof *kvs);
    if (!kvs)
        return -ERR_NOMEM;
    mvcc_tree_seek(&m->mv_tree, NULL, 0, &it);
    while ((k = mvcc_iter_next(&it))) {
        const struct mvcc_ver *v = mvcc_key_latest(k);
        if (!v || !v->v_val->l_lease)
            continue;
        kvs[*n].key.p = k->k_bytes;
        kvs[*n].key.len = k->k_len;
        kvs[(*n)++].lease = v->v_val->l_lease;
    }
    *out = kvs;
    return 0;
}
