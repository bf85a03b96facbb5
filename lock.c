/* lock.c - etcd's v3lock and v3election services (lock.h).
 *
 * Owns the requests in flight (one struct lock_op each, from the request to
 * its answer), the table of keys and prefixes they wait on, and the
 * translation of etcd's client-side recipes (concurrency.Mutex,
 * concurrency.Election, waitDeletes, Election.observe) into proposals,
 * store reads and reactions to applied writes.  Does not own the keys (they
 * are ordinary keys in mvcc.c, written through raft by node.c), leases
 * (lease.c; a lease-0 request grants one through raft like any client) or
 * gRPC framing (grpc.c).
 *
 * etcd runs these services as a client of its own KV API inside the server:
 * a goroutine per request sends a txn, then watches the key it waits for.
 * Here a request is a small state machine.  Its proposals complete through
 * node_propose_fn; while it waits, the keys it cares about sit in a hash
 * table (lock_entry) that lock_notify probes with each key the last write
 * changed.  Only the requests whose keys changed do any work, and each does
 * what etcd's goroutine would do next (read the store, answer, or wait on
 * another key).  Memory per waiting request: the struct, its strings and
 * one or two copies of a key.
 */
#include "lock.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "err.h"
#include "loop.h"
#include "mvcc.h"
#include "node.h"
#include "server.h"

#define LOCK_SESSION_TTL 60         /* concurrency's defaultSessionTTL, seconds */
#define LOCK_QUEUE_MAX (1u << 20)   /* bytes an Observe stream may hold back */
#define LOCK_BEHIND_MS 100          /* how often held-back Observe streams are retried */
#define LOCK_TAB_MIN 64             /* smallest hash table, buckets */
#define LOCK_HEX_MAX 17             /* "-8000000000000000": Go's %x of an int64 */
#define LOCK_FNV_BASIS 14695981039346656037ull
#define LOCK_FNV_PRIME 1099511628211ull

/* The messages of the errors etcd's recipes and services make themselves;
 * like every error of these services they go out as UNKNOWN. */
static const char LOCK_ERR_NOT_LEADER[] = "election: not leader";
static const char LOCK_ERR_NO_LEADER[] = "election: no leader";
static const char LOCK_ERR_NO_LEADER_KEY[] = "\"leader\" field must be provided";
static const char LOCK_ERR_EXPIRED[] = "mutex: session is expired";

enum lock_kind {
    LOCK_K_LOCK,
    LOCK_K_UNLOCK,
    LOCK_K_CAMPAIGN,
    LOCK_K_PROCLAIM,
    LOCK_K_RESIGN,
    LOCK_K_OBSERVE,
};

enum lock_stage {
    LOCK_S_GRANT,    /* lease 0: granting the session's lease */
    LOCK_S_TXN,      /* the request's own txn (Unlock: its delete) */
    LOCK_S_PROCLAIM, /* Campaign over its existing key with another value */
    LOCK_S_RESIGN,   /* Campaign: the proclaim failed; resigning before answering */
    LOCK_S_WAIT,     /* Lock, Campaign: waiting for the older keys to go */
    LOCK_S_OBSERVE,  /* Observe: streaming the leader */
};

/* What an entry waits for. */
enum lock_role {
    LOCK_R_NONE,   /* not in the table */
    LOCK_R_PRED,   /* the deletion of the key created last before ours */
    LOCK_R_OWN,    /* the deletion of our own key (Lock) */
    LOCK_R_LEADER, /* any change of the leader key an Observe sent */
    LOCK_R_PREFIX, /* the first put under an Observe's prefix (no leader yet) */
};

/* What lock_notify saw for an op (lock_op.seen). */
#define LOCK_EV_PRED 1u   /* its predecessor was deleted */
#define LOCK_EV_OWN 2u    /* its own key was deleted */
#define LOCK_EV_KEY 4u    /* Observe: event lock_op.ev concerns it */
#define LOCK_EV_RESYNC 8u /* events were missed: read the store afresh */

struct lock_op;

/* A key (or prefix) in the hub's table, embedded in its op. */
struct lock_entry {
    struct lock_entry *le_next; /* bucket chain */
    struct lock_op *le_op;
    uint8_t *le_key; /* owned copy */
    size_t le_len;
    uint64_t le_hash;
    enum lock_role le_role;
};

struct lock_op {
    struct lock_hub *hub;
    struct lock_op *prev, *next; /* the hub's list of every op */
    struct grpc_call *call;      /* NULL once a streaming call is gone */
    enum lock_kind kind;
    enum lock_stage stage;
    bool pending; /* a proposal's completion is still to run: it frees a
                     gone call's op */
    bool behind;  /* Observe: a value was held back for a slow client */
    bool dirty;   /* on the hub's dirty list */
    unsigned seen;
    size_t ev;
    struct lock_op *dirty_next;
    int64_t lease;
    int64_t rev;      /* create revision of the key: ours (Lock, Campaign) or
                         the leader key's (Proclaim, Resign) */
    int64_t sent_mod; /* Observe: mod revision of the leader last sent */
    const char *err;  /* Campaign: why the proclaim failed */
    struct api_header hdr; /* Campaign: its txn's header, which etcd answers with */
    struct pb_bytes name, pfx, end, key, value; /* in buf */
    struct lock_entry wait; /* PRED, LEADER or PREFIX */
    struct lock_entry own;  /* OWN */
    uint8_t buf[];
};

struct lock_hub {
    struct server *srv;
    struct lock_op *ops;   /* every op; owned */
    struct lock_op *dirty; /* ops lock_notify has to look at */
    struct lock_entry **tab; /* owned bucket array; entries belong to ops */
    size_t tab_cap, n_entries, n_prefix;
    int64_t seen_rev; /* the store's revision at the last lock_notify */
    size_t n_behind;
    uint64_t timer;
    struct mem_arena scratch; /* store reads; reset before each */
};

static void op_free(struct lock_op *op);
static void op_start(struct lock_op *op);
static void wait_next(struct lock_op *op);
static void observe_sync(struct lock_op *op);
static void on_done(void *arg, int err, const void *resp);

/* ---- the hub ---- */

struct lock_hub *lock_hub_new(struct server *s)
{
    struct lock_hub *h = mem_calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->srv = s;
    h->seen_rev = mvcc_rev(s->mvcc);
    mem_arena_init(&h->scratch, 0);
    return h;
}

void lock_hub_free(struct lock_hub *h)
{
    if (!h)
        return;
    if (h->timer)
        loop_timer_cancel(h->srv->loop, h->timer);
    while (h->ops)
        op_free(h->ops);
    mem_free(h->tab);
    mem_arena_free(&h->scratch);
    mem_free(h);
}

static struct lock_hub *hub_of(const struct grpc_call *call)
{
    const struct server *s = grpc_call_ctx(call);
    return s->lock;
}

static void fill_header(const struct lock_hub *h, struct api_header *hd)
{
    const struct server *s = h->srv;
    hd->cluster_id = node_cluster_id(s->node);
    hd->member_id = node_member_id(s->node);
    hd->raft_term = node_term(s->node);
    hd->revision = mvcc_rev(s->mvcc);
}

/* ---- the table of watched keys ---- */

/* Bytes may be empty with a NULL pointer, which memcpy/memcmp must not see. */
static size_t copy_bytes(uint8_t *dst, struct pb_bytes b)
{
    if (b.len)
        memcpy(dst, b.p, b.len);
    return b.len;
}

static bool bytes_eq(const uint8_t *a, size_t len, struct pb_bytes b)
{
    return len == b.len && (!len || !memcmp(a, b.p, len));
}

static uint64_t key_hash(const uint8_t *k, size_t len)
{
    uint64_t x = LOCK_FNV_BASIS;
    for (size_t i = 0; i < len; i++)
        x = (x ^ k[i]) * LOCK_FNV_PRIME;
    return x;
}

static void entry_unlink(struct lock_hub *h, struct lock_entry *e)
{
    if (e->le_role == LOCK_R_NONE)
        return;
    struct lock_entry **pp = &h->tab[e->le_hash & (h->tab_cap - 1)];
    while (*pp != e)
        pp = &(*pp)->le_next;
    *pp = e->le_next;
    h->n_entries--;
    if (e->le_role == LOCK_R_PREFIX)
        h->n_prefix--;
    e->le_role = LOCK_R_NONE;
}

static int tab_grow(struct lock_hub *h)
{
    size_t cap = h->tab_cap ? h->tab_cap * 2 : LOCK_TAB_MIN;
    struct lock_entry **t = mem_calloc(cap, sizeof *t);
    if (!t)
        return -1;
    for (size_t i = 0; i < h->tab_cap; i++)
        for (struct lock_entry *e = h->tab[i], *next; e; e = next) {
            next = e->le_next;
            e->le_next = t[e->le_hash & (cap - 1)];
            t[e->le_hash & (cap - 1)] = e;
        }
    mem_free(h->tab);
    h->tab = t;
    h->tab_cap = cap;
    return 0;
}

/* Makes e wait for key in role.  0, or -ERR_NOMEM (e is then out of the
 * table). */
static int entry_set(struct lock_hub *h, struct lock_entry *e, struct pb_bytes key,
                     enum lock_role role)
{
    if (e->le_role == role && bytes_eq(e->le_key, e->le_len, key))
        return 0;
    entry_unlink(h, e);
    if (h->n_entries >= h->tab_cap && tab_grow(h) < 0)
        return -ERR_NOMEM;
    if (key.len != e->le_len || !e->le_key) {
        uint8_t *k = mem_realloc(e->le_key, key.len ? key.len : 1);
        if (!k)
            return -ERR_NOMEM;
        e->le_key = k;
        e->le_len = key.len;
    }
    copy_bytes(e->le_key, key);
    e->le_hash = key_hash(key.p, key.len);
    e->le_role = role;
    struct lock_entry **b = &h->tab[e->le_hash & (h->tab_cap - 1)];
    e->le_next = *b;
    *b = e;
    h->n_entries++;
    if (role == LOCK_R_PREFIX)
        h->n_prefix++;
    return 0;
}

/* ---- ops ---- */

/* name followed by last at dst: etcd's election/lock prefix "name/" (last
 * '/') or its range end "name0" (the prefix's last byte plus one). */
static struct pb_bytes put_prefix(uint8_t *dst, struct pb_bytes name, uint8_t last)
{
    dst[copy_bytes(dst, name)] = last;
    return (struct pb_bytes){dst, name.len + 1};
}

/* An op with copies of the request's strings.  With a name (Lock, Campaign,
 * Observe) buf holds "name/" followed by room for the lease in hex (key, once
 * the lease is known), then the prefix's range end "name0", then value;
 * otherwise key, then value. */
static struct lock_op *op_new(struct lock_hub *h, struct grpc_call *call, enum lock_kind kind,
                              const struct pb_bytes *name, struct pb_bytes key,
                              struct pb_bytes value)
{
    size_t n = name ? name->len : 0;
    size_t size = name ? (n + 1 + LOCK_HEX_MAX) + (n + 1) : key.len;
    struct lock_op *op = mem_calloc(1, sizeof *op + size + value.len);
    if (!op)
        return NULL;
    op->hub = h;
    op->call = call;
    op->kind = kind;
    op->wait.le_op = op;
    op->own.le_op = op;
    uint8_t *p = op->buf;
    if (name) {
        op->pfx = put_prefix(p, *name, '/');
        op->name = (struct pb_bytes){p, n};
        op->key = op->pfx;
        p += n + 1 + LOCK_HEX_MAX;
        op->end = put_prefix(p, *name, '/' + 1);
        p += n + 1;
    } else {
        op->key = (struct pb_bytes){p, copy_bytes(p, key)};
        p += key.len;
    }
    op->value = (struct pb_bytes){p, copy_bytes(p, value)};
    op->next = h->ops;
    if (h->ops)
        h->ops->prev = op;
    h->ops = op;
    if (call)
        grpc_call_set_data(call, op);
    return op;
}

static void op_free(struct lock_op *op)
{
    struct lock_hub *h = op->hub;
    entry_unlink(h, &op->wait);
    entry_unlink(h, &op->own);
    mem_free(op->wait.le_key);
    mem_free(op->own.le_key);
    if (op->behind)
        h->n_behind--;
    if (op->dirty) {
        struct lock_op **pp = &h->dirty;
        while (*pp != op)
            pp = &(*pp)->dirty_next;
        *pp = op->dirty_next;
    }
    if (op->prev)
        op->prev->next = op->next;
    else
        h->ops = op->next;
    if (op->next)
        op->next->prev = op->prev;
    mem_free(op);
}

static bool op_streaming(const struct lock_op *op)
{
    return op->kind == LOCK_K_LOCK || op->kind == LOCK_K_CAMPAIGN || op->kind == LOCK_K_OBSERVE;
}

/* Answers the request and frees the op (msg may point into it).  Lock and
 * Campaign are streaming calls on our side: one message, then status OK,
 * is a unary answer. */
static void op_reply(struct lock_op *op, const struct pb_msgdesc *d, const void *msg)
{
    struct grpc_call *call = op->call;
    if (call && !op_streaming(op))
        grpc_call_reply(call, d, msg);
    else if (call && grpc_call_send(call, d, msg) < 0)
        grpc_call_fail(call, GRPC_UNKNOWN, err_msg(ERR_NOMEM));
    else if (call)
        grpc_call_fail(call, GRPC_OK, NULL);
    op_free(op);
}

/* Ends the request with etcd's status for these services and frees the op. */
static void op_fail(struct lock_op *op, const char *msg)
{
    if (op->call)
        grpc_call_fail(op->call, GRPC_UNKNOWN, msg);
    op_free(op);
}

/* Sets key to "name/<lease in hex>": Go's %x of the int64 LeaseID. */
static void op_set_key(struct lock_op *op)
{
    char hex[LOCK_HEX_MAX + 1];
    uint64_t u = op->lease < 0 ? 0 - (uint64_t)op->lease : (uint64_t)op->lease;
    int n = snprintf(hex, sizeof hex, "%s%" PRIx64, op->lease < 0 ? "-" : "", u);
    memcpy(op->buf + op->pfx.len, hex, (size_t)n);
    op->key = (struct pb_bytes){op->buf, op->pfx.len + (size_t)n};
}

/* ---- proposals ---- */

static void propose_txn(struct lock_op *op, struct api_txn_req *txn)
{
    struct server *s = op->hub->srv;
    int r = mvcc_txn_check(txn, s->cfg->max_txn_ops);
    if (r < 0)
        return op_fail(op, err_msg(r));
    struct api_internal_raft_req irr = {.txn = txn};
    op->pending = true;
    /* may complete (and free op) before it returns */
    node_propose_fn(s->node, &irr, on_done, op);
}

/* The compare create_revision(key) == rev of etcd's recipes. */
static struct api_compare cmp_create(struct pb_bytes key, int64_t rev)
{
    return (struct api_compare){
        .result = API_CMP_EQUAL,
        .target = API_CMP_CREATE,
        .key = key,
        .create_revision = rev,
        .has_create_revision = true,
    };
}

/* Mutex.Unlock (and the Unlock service): delete the key.  Unless answer is
 * set nobody waits for it (a client that went away, a failed wait). */
static void propose_delete(struct lock_op *op, bool answer)
{
    struct api_delete_req del = {.key = op->key};
    struct api_internal_raft_req irr = {.delete_range = &del};
    struct node *n = op->hub->srv->node;
    if (!answer)
        return node_propose(n, &irr, NULL);
    op->pending = true;
    node_propose_fn(n, &irr, on_done, op);
}

/* Election.Resign: delete the key if it is still the one campaigned with.
 * Unless answer is set nobody waits for it (a client that went away). */
static void propose_resign(struct lock_op *op, bool answer)
{
    struct api_compare cmp = cmp_create(op->key, op->rev);
    struct api_delete_req del = {.key = op->key};
    struct api_request_op then = {.request_delete_range = &del};
    struct api_txn_req txn = {.compare = &cmp, .n_compare = 1, .success = &then, .n_success = 1};
    if (answer)
        return propose_txn(op, &txn);
    struct api_internal_raft_req irr = {.txn = &txn};
    node_propose(op->hub->srv->node, &irr, NULL);
}

/* Election.Proclaim: put value if key is still the one campaigned with. */
static void propose_proclaim(struct lock_op *op)
{
    struct api_compare cmp = cmp_create(op->key, op->rev);
    struct api_put_req put = {.key = op->key, .value = op->value, .lease = op->lease};
    struct api_request_op then = {.request_put = &put};
    struct api_txn_req txn = {.compare = &cmp, .n_compare = 1, .success = &then, .n_success = 1};
    propose_txn(op, &txn);
}

/* Mutex.Lock's and Election.Campaign's txn: create the key unless it is
 * there (a session holding or waiting already reuses its place).  Lock also
 * reads the oldest key under the prefix, its owner. */
static void propose_acquire(struct lock_op *op)
{
    struct api_compare cmp = cmp_create(op->key, 0);
    struct api_put_req put = {.key = op->key, .value = op->value, .lease = op->lease};
    struct api_range_req get = {.key = op->key};
    struct api_range_req owner = {
        .key = op->pfx,
        .range_end = op->end,
        .limit = 1,
        .sort_order = API_SORT_ASCEND,
        .sort_target = API_SORT_CREATE,
    };
    struct api_request_op then[2] = {{.request_put = &put}, {.request_range = &owner}};
    struct api_request_op els[2] = {{.request_range = &get}, {.request_range = &owner}};
    size_t n = op->kind == LOCK_K_LOCK ? 2 : 1;
    struct api_txn_req txn = {
        .compare = &cmp,
        .n_compare = 1,
        .success = then,
        .n_success = n,
        .failure = els,
        .n_failure = n,
    };
    propose_txn(op, &txn);
}

/* etcd's session: a lease ID of 0 grants a fresh lease first. */
static void op_begin(struct lock_op *op)
{
    if (op->lease != 0)
        return op_start(op);
    struct node *n = op->hub->srv->node;
    struct api_lease_grant_req g = {.TTL = LOCK_SESSION_TTL, .ID = node_lease_id(n)};
    struct api_internal_raft_req irr = {.lease_grant = &g};
    op->stage = LOCK_S_GRANT;
    op->pending = true;
    node_propose_fn(n, &irr, on_done, op);
}

/* The request's own write, once its lease is known. */
static void op_start(struct lock_op *op)
{
    op->stage = LOCK_S_TXN;
    switch (op->kind) {
    case LOCK_K_LOCK:
    case LOCK_K_CAMPAIGN:
        op_set_key(op);
        return propose_acquire(op);
    case LOCK_K_PROCLAIM:
        return propose_proclaim(op);
    case LOCK_K_RESIGN:
        return propose_resign(op, true);
    case LOCK_K_UNLOCK:
        return propose_delete(op, true);
    case LOCK_K_OBSERVE:
        break;
    }
    assert(0 && "observe proposes nothing");
}

/* ---- waiting (waitDeletes) ---- */

/* The oldest (order ASCEND) or newest (DESCEND) key in [pfx, end) created
 * at or before max_create (0: any).  0 with *found set or not, or -ERR_x.
 * kv points into a or the store: use it before the next write. */
static int read_edge(struct lock_hub *h, struct pb_bytes pfx, struct pb_bytes end, int32_t order,
                     int64_t max_create, bool keys_only, struct mem_arena *a, struct api_kv *kv,
                     bool *found)
{
    struct api_range_req req = {
        .key = pfx,
        .range_end = end,
        .limit = 1,
        .sort_order = order,
        .sort_target = API_SORT_CREATE,
        .max_create_revision = max_create,
        .keys_only = keys_only,
    };
    struct api_range_resp resp = {0};
    int r = mvcc_range(h->srv->mvcc, &req, a, &resp);
    *found = r == 0 && resp.n_kvs > 0;
    if (*found)
        *kv = resp.kvs[0];
    return r;
}

/* The wait failed: etcd's Mutex.Lock deletes its key before it returns the
 * error; Campaign leaves its key unless the client went away. */
static void wait_fail(struct lock_op *op, int err)
{
    if (op->kind == LOCK_K_LOCK)
        propose_delete(op, false);
    op_fail(op, err_msg(err));
}

static void acquired(struct lock_op *op)
{
    if (op->kind == LOCK_K_LOCK) {
        /* the header of waitDeletes' last read */
        struct api_header hd = {0};
        fill_header(op->hub, &hd);
        struct api_lock_resp resp = {.header = &hd, .key = op->key};
        return op_reply(op, &api_lock_resp_desc, &resp);
    }
    /* Campaign answers with the header of its first txn, as etcd's Election */
    struct api_leader_key lk = {
        .name = op->name,
        .key = op->key,
        .rev = op->rev,
        .lease = op->lease,
    };
    struct api_header hd = op->hdr;
    struct api_campaign_resp resp = {.header = &hd, .leader = &lk};
    op_reply(op, &api_campaign_resp_desc, &resp);
}

/* One turn of waitDeletes: the last key created before ours; none left
 * means we hold the lock (lead the election), else wait for its deletion. */
static void wait_next(struct lock_op *op)
{
    struct lock_hub *h = op->hub;
    struct api_kv kv;
    bool found;
    mem_arena_reset(&h->scratch);
    int r = read_edge(h, op->pfx, op->end, API_SORT_DESCEND, op->rev - 1, true, &h->scratch, &kv,
                      &found);
    if (r < 0)
        return wait_fail(op, r);
    if (!found)
        return acquired(op);
    r = entry_set(h, &op->wait, kv.key, LOCK_R_PRED);
    if (r < 0)
        return wait_fail(op, r);
}

static void start_wait(struct lock_op *op)
{
    op->stage = LOCK_S_WAIT;
    if (op->kind == LOCK_K_LOCK) {
        int r = entry_set(op->hub, &op->own, op->key, LOCK_R_OWN);
        if (r < 0)
            return wait_fail(op, r);
    }
    wait_next(op);
}

/* After missed events: is our key still the one we created? */
static bool own_key_alive(struct lock_op *op)
{
    struct lock_hub *h = op->hub;
    struct api_range_req req = {.key = op->key, .keys_only = true};
    struct api_range_resp resp = {0};
    mem_arena_reset(&h->scratch);
    if (mvcc_range(h->srv->mvcc, &req, &h->scratch, &resp) < 0)
        return true; /* out of memory: the next write will tell */
    return resp.n_kvs == 1 && resp.kvs[0].create_revision == op->rev;
}

static void wait_event(struct lock_op *op, unsigned seen)
{
    /* our key went with its lease: etcd would go on waiting and then hand
     * out a lock nobody holds any more */
    if (op->kind == LOCK_K_LOCK &&
        ((seen & LOCK_EV_OWN) || ((seen & LOCK_EV_RESYNC) && !own_key_alive(op))))
        return op_fail(op, LOCK_ERR_EXPIRED);
    wait_next(op);
}

/* ---- completions ---- */

static void txn_done(struct lock_op *op, const void *resp)
{
    const struct api_txn_resp *tr = resp;
    switch (op->kind) {
    case LOCK_K_UNLOCK: {
        const struct api_delete_resp *dr = resp;
        struct api_unlock_resp ur = {.header = dr->header};
        return op_reply(op, &api_unlock_resp_desc, &ur);
    }
    case LOCK_K_PROCLAIM: {
        if (!tr->succeeded)
            return op_fail(op, LOCK_ERR_NOT_LEADER);
        struct api_proclaim_resp pr = {.header = tr->header};
        return op_reply(op, &api_proclaim_resp_desc, &pr);
    }
    case LOCK_K_RESIGN: {
        struct api_resign_resp rr = {.header = tr->header};
        return op_reply(op, &api_resign_resp_desc, &rr);
    }
    case LOCK_K_LOCK:
    case LOCK_K_CAMPAIGN:
        break;
    case LOCK_K_OBSERVE:
        assert(0 && "observe proposes nothing");
        return;
    }
    /* the compare failed only if the key exists: the get found it */
    assert(tr->n_responses >= 1);
    const struct api_range_resp *mine = tr->responses[0].response_range;
    assert(tr->succeeded || (mine && mine->n_kvs == 1));
    op->rev = tr->succeeded ? tr->header->revision : mine->kvs[0].create_revision;
    if (op->kind == LOCK_K_LOCK) {
        assert(tr->n_responses == 2 && tr->responses[1].response_range);
        const struct api_range_resp *owner = tr->responses[1].response_range;
        if (owner->n_kvs == 0 || owner->kvs[0].create_revision == op->rev) {
            struct api_lock_resp lr = {.header = tr->header, .key = op->key};
            return op_reply(op, &api_lock_resp_desc, &lr);
        }
        return start_wait(op);
    }
    op->hdr = *tr->header;
    if (!tr->succeeded) {
        const struct pb_bytes *v = &mine->kvs[0].value;
        if (!bytes_eq(v->p, v->len, op->value)) {
            op->stage = LOCK_S_PROCLAIM;
            return propose_proclaim(op);
        }
    }
    start_wait(op);
}

static void on_done(void *arg, int err, const void *resp)
{
    struct lock_op *op = arg;
    op->pending = false;
    /* the client went away: etcd's recipe returns its context's error
     * without another step (whatever the write did stays) */
    if (!op->call)
        return op_free(op);
    switch (op->stage) {
    case LOCK_S_GRANT:
        if (err < 0)
            return op_fail(op, err_msg(err));
        op->lease = ((const struct api_lease_grant_resp *)resp)->ID;
        return op_start(op);
    case LOCK_S_TXN:
        if (err < 0)
            return op_fail(op, err_msg(err));
        return txn_done(op, resp);
    case LOCK_S_PROCLAIM:
        /* Campaign: a failed proclaim resigns, then answers its error */
        if (err < 0)
            op->err = err_msg(err);
        else if (!((const struct api_txn_resp *)resp)->succeeded)
            op->err = LOCK_ERR_NOT_LEADER;
        else
            return start_wait(op);
        op->stage = LOCK_S_RESIGN;
        return propose_resign(op, true);
    case LOCK_S_RESIGN:
        return op_fail(op, op->err);
    case LOCK_S_WAIT:
    case LOCK_S_OBSERVE:
        break;
    }
    assert(0 && "no proposal in flight in this stage");
}

/* ---- Observe ---- */

static void behind_arm(struct lock_hub *h);

/* Sends kv as the leader unless it is what the client last got; kv NULL:
 * no leader, wait for the first put under the prefix. */
static void observe_show(struct lock_op *op, const struct api_kv *kv)
{
    struct lock_hub *h = op->hub;
    int r;
    if (!kv) {
        if ((r = entry_set(h, &op->wait, op->pfx, LOCK_R_PREFIX)) < 0)
            return op_fail(op, err_msg(r));
        return;
    }
    const struct lock_entry *e = &op->wait;
    if (e->le_role == LOCK_R_LEADER && bytes_eq(e->le_key, e->le_len, kv->key) &&
        kv->mod_revision == op->sent_mod)
        return;
    /* a client that does not read gets the newest leader later, not every
     * value in between (etcd's Observe promises only the most recent) */
    if (grpc_call_queued(op->call) > LOCK_QUEUE_MAX) {
        op->behind = true;
        h->n_behind++;
        return behind_arm(h);
    }
    struct api_header hd = {0};
    fill_header(h, &hd);
    struct api_leader_resp resp = {.header = &hd, .kv = (struct api_kv *)kv};
    if (grpc_call_send(op->call, &api_leader_resp_desc, &resp) < 0)
        return op_fail(op, err_msg(ERR_NOMEM));
    op->sent_mod = kv->mod_revision;
    if ((r = entry_set(h, &op->wait, kv->key, LOCK_R_LEADER)) < 0)
        return op_fail(op, err_msg(r));
}

/* Election.observe's read: the oldest key under the prefix is the leader. */
static void observe_sync(struct lock_op *op)
{
    struct lock_hub *h = op->hub;
    struct api_kv kv;
    bool found;
    mem_arena_reset(&h->scratch);
    int r = read_edge(h, op->pfx, op->end, API_SORT_ASCEND, 0, false, &h->scratch, &kv, &found);
    if (r < 0)
        return op_fail(op, err_msg(r));
    observe_show(op, found ? &kv : NULL);
}

static void observe_event(struct lock_op *op, unsigned seen)
{
    if (seen & LOCK_EV_RESYNC)
        return observe_sync(op);
    struct mvcc_event ev;
    mvcc_last_event(op->hub->srv->mvcc, op->ev, &ev);
    /* a put of the leader, or the first put with no leader; the leader's
     * deletion sends the next oldest key, if any */
    if (ev.type == API_EVENT_PUT)
        return observe_show(op, &ev.kv);
    observe_sync(op);
}

static void on_behind_timer(struct loop *l, void *arg)
{
    (void)l;
    struct lock_hub *h = arg;
    h->timer = 0;
    for (struct lock_op *op = h->ops, *next; op; op = next) {
        next = op->next;
        if (!op->behind || grpc_call_queued(op->call) > LOCK_QUEUE_MAX / 2)
            continue;
        op->behind = false;
        h->n_behind--;
        observe_sync(op);
    }
    behind_arm(h);
}

static void behind_arm(struct lock_hub *h)
{
    if (h->n_behind && !h->timer)
        h->timer = loop_timer_add(h->srv->loop, LOCK_BEHIND_MS, on_behind_timer, h);
}

/* ---- lock_notify ---- */

static void mark(struct lock_hub *h, struct lock_op *op, unsigned flag, size_t i)
{
    if (!op->dirty) {
        op->dirty = true;
        op->ev = i;
        op->dirty_next = h->dirty;
        h->dirty = op;
    }
    op->seen |= flag;
}

/* The entries for k[0..len) (prefix: the PREFIX ones, else the others). */
static void match(struct lock_hub *h, const uint8_t *k, size_t len, uint64_t hash, bool prefix,
                  int32_t type, size_t i)
{
    for (struct lock_entry *e = h->tab[hash & (h->tab_cap - 1)]; e; e = e->le_next) {
        if (e->le_hash != hash || (e->le_role == LOCK_R_PREFIX) != prefix ||
            !bytes_eq(e->le_key, e->le_len, (struct pb_bytes){k, len}) || e->le_op->behind)
            continue;
        switch (e->le_role) {
        case LOCK_R_PRED:
            if (type == API_EVENT_DELETE)
                mark(h, e->le_op, LOCK_EV_PRED, i);
            break;
        case LOCK_R_OWN:
            if (type == API_EVENT_DELETE)
                mark(h, e->le_op, LOCK_EV_OWN, i);
            break;
        case LOCK_R_LEADER:
        case LOCK_R_PREFIX:
            mark(h, e->le_op, LOCK_EV_KEY, i);
            break;
        case LOCK_R_NONE:
            break;
        }
    }
}

void lock_notify(struct lock_hub *h)
{
    struct mvcc *m = h->srv->mvcc;
    int64_t rev = mvcc_rev(m);
    if (rev == h->seen_rev)
        return;
    size_t n = mvcc_last_n_events(m);
    struct mvcc_event ev;
    /* one revision on, and the events at hand are that revision's */
    bool missed = rev != h->seen_rev + 1 || n == 0;
    if (!missed) {
        mvcc_last_event(m, 0, &ev);
        missed = ev.kv.mod_revision != rev;
    }
    h->seen_rev = rev;
    if (!h->n_entries)
        return;
    if (missed) {
        for (struct lock_op *op = h->ops; op; op = op->next)
            if (op->wait.le_role != LOCK_R_NONE && !op->behind)
                mark(h, op, LOCK_EV_RESYNC, 0);
    } else {
        for (size_t i = 0; i < n; i++) {
            mvcc_last_event(m, i, &ev);
            const uint8_t *k = ev.kv.key.p;
            size_t len = ev.kv.key.len;
            /* hash every prefix ending in '/' on the way: a key is under
             * the prefix "name/" exactly when one of them is "name/" */
            bool prefixes = h->n_prefix && ev.type == API_EVENT_PUT;
            uint64_t x = LOCK_FNV_BASIS;
            for (size_t j = 0; j < len; j++) {
                x = (x ^ k[j]) * LOCK_FNV_PRIME;
                if (prefixes && k[j] == '/')
                    match(h, k, j + 1, x, true, ev.type, i);
            }
            match(h, k, len, x, false, ev.type, i);
        }
    }
    /* act only now: acting may change the table that was being probed */
    struct lock_op *op;
    while ((op = h->dirty)) {
        h->dirty = op->dirty_next;
        op->dirty = false;
        unsigned seen = op->seen;
        op->seen = 0;
        if (op->kind == LOCK_K_OBSERVE)
            observe_event(op, seen);
        else
            wait_event(op, seen);
    }
}

/* ---- handlers ---- */

static void call_fail(struct grpc_call *call, const char *msg)
{
    grpc_call_fail(call, GRPC_UNKNOWN, msg);
}

/* Lock, Campaign and Observe are unary or server-streaming for the client:
 * only the first request message counts, as in grpc-go's handlers. */
void lock_lock_msg(struct grpc_call *call, void *reqp)
{
    if (grpc_call_data(call))
        return;
    const struct api_lock_req *req = reqp;
    struct lock_op *op = op_new(hub_of(call), call, LOCK_K_LOCK, &req->name, (struct pb_bytes){0},
                                (struct pb_bytes){0});
    if (!op)
        return call_fail(call, err_msg(ERR_NOMEM));
    op->lease = req->lease;
    op_begin(op);
}

void lock_unlock(struct grpc_call *call, void *reqp)
{
    const struct api_unlock_req *req = reqp;
    /* etcd's KV.DeleteRange check, handed back through its client */
    if (req->key.len == 0)
        return call_fail(call, err_msg(ERR_EMPTY_KEY));
    struct lock_op *op =
        op_new(hub_of(call), call, LOCK_K_UNLOCK, NULL, req->key, (struct pb_bytes){0});
    if (!op)
        return call_fail(call, err_msg(ERR_NOMEM));
    op_start(op);
}

void lock_campaign_msg(struct grpc_call *call, void *reqp)
{
    if (grpc_call_data(call))
        return;
    const struct api_campaign_req *req = reqp;
    struct lock_op *op =
        op_new(hub_of(call), call, LOCK_K_CAMPAIGN, &req->name, (struct pb_bytes){0}, req->value);
    if (!op)
        return call_fail(call, err_msg(ERR_NOMEM));
    op->lease = req->lease;
    op_begin(op);
}

/* Proclaim and Resign act on the leader key the client holds, with the
 * lease it names (0: a fresh session lease, as etcd's). */
static void leader_op(struct grpc_call *call, enum lock_kind kind, const struct api_leader_key *lk,
                      struct pb_bytes value)
{
    if (!lk)
        return call_fail(call, LOCK_ERR_NO_LEADER_KEY);
    struct lock_op *op = op_new(hub_of(call), call, kind, NULL, lk->key, value);
    if (!op)
        return call_fail(call, err_msg(ERR_NOMEM));
    op->rev = lk->rev;
    op->lease = lk->lease;
    op_begin(op);
}

void lock_proclaim(struct grpc_call *call, void *reqp)
{
    const struct api_proclaim_req *req = reqp;
    leader_op(call, LOCK_K_PROCLAIM, req->leader, req->value);
}

void lock_resign(struct grpc_call *call, void *reqp)
{
    const struct api_resign_req *req = reqp;
    leader_op(call, LOCK_K_RESIGN, req->leader, (struct pb_bytes){0});
}

void lock_leader(struct grpc_call *call, void *reqp)
{
    const struct api_leader_req *req = reqp;
    struct lock_hub *h = hub_of(call);
    struct mem_arena *a = grpc_call_arena(call);
    uint8_t *b = mem_arena_alloc(a, 2 * (req->name.len + 1));
    if (!b)
        return call_fail(call, err_msg(ERR_NOMEM));
    struct pb_bytes pfx = put_prefix(b, req->name, '/');
    struct pb_bytes end = put_prefix(b + pfx.len, req->name, '/' + 1);
    struct api_kv kv;
    bool found;
    int r = read_edge(h, pfx, end, API_SORT_ASCEND, 0, false, a, &kv, &found);
    if (r < 0)
        return call_fail(call, err_msg(r));
    if (!found)
        return call_fail(call, LOCK_ERR_NO_LEADER);
    struct api_header hd = {0};
    fill_header(h, &hd);
    struct api_leader_resp resp = {.header = &hd, .kv = &kv};
    grpc_call_reply(call, &api_leader_resp_desc, &resp);
}

void lock_observe_msg(struct grpc_call *call, void *reqp)
{
    if (grpc_call_data(call))
        return;
    const struct api_leader_req *req = reqp;
    struct lock_op *op =
        op_new(hub_of(call), call, LOCK_K_OBSERVE, &req->name, (struct pb_bytes){0},
               (struct pb_bytes){0});
    if (!op)
        return call_fail(call, err_msg(ERR_NOMEM));
    op->stage = LOCK_S_OBSERVE;
    observe_sync(op);
}

void lock_call_end(struct grpc_call *call, bool reset)
{
    struct lock_op *op = grpc_call_data(call);
    if (!reset) {
        /* the client's half-close after its one request: the call goes on */
        if (!op)
            grpc_call_fail(call, GRPC_INTERNAL, "grpc: no request message");
        return;
    }
    if (!op)
        return;
    op->call = NULL;
    if (op->pending)
        return; /* its completion frees it */
    /* a client gone while waiting: etcd's Mutex deletes its key, its
     * Election resigns */
    if (op->stage == LOCK_S_WAIT) {
        if (op->kind == LOCK_K_LOCK)
            propose_delete(op, false);
        else
            propose_resign(op, false);
    }
    op_free(op);
}
