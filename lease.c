/* lease.c - etcd 3.4's lessor as a pure state machine (see lease.h).
 *
 * Owns: the lease table (a hash of ID -> lease), the attached keys (one hash
 * of key -> lease over all leases, which makes a key belong to one lease at
 * most, plus a list per lease so revoke finds its keys), the expiry queue and
 * the checkpoint queue (binary min-heaps keyed by time, each lease knowing its
 * slot so a renew or revoke fixes the heap in O(log n)), etcd's rules for
 * grant/revoke/renew/checkpoint/promote/demote (lease/lessor.go) and its ID
 * generator (pkg/idutil).
 *
 * Does not own: the clock (every caller passes now_ms), raft proposals, the
 * backend `lease` bucket, deleting keys from mvcc, gRPC replies.
 */
#include "lease.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

/* ---- types ---- */

/* The two queues a lease can sit in. */
enum { LEASE_Q_EXPIRY, LEASE_Q_CHECKPOINT, LEASE_NQ };

#define LEASE_NOT_QUEUED SIZE_MAX
#define LEASE_BUCKETS_MIN 8
/* etcd's defaults for the intervals a zero config asks for. */
#define LEASE_DEFAULT_RETRY_MS 3000
#define LEASE_DEFAULT_CHECKPOINT_MS (5 * 60 * 1000)
/* etcd's leaseRevokeRate: promote spreads expiries only from this many leases
 * on, and then to 3/4 of it per second. */
#define LEASE_REVOKE_RATE 1000
/* int64(time.Duration(math.MaxInt64).Seconds()): the TTL etcd reports for a
 * lease that does not expire. */
#define LEASE_FOREVER_SECONDS 9223372036LL

/* An attached key.  Owned by the table's key hash (lt_keys); also linked into
 * the list of its lease. */
struct lease_key {
    struct lease_key *k_hnext;         /* key hash chain */
    struct lease_key *k_prev, *k_next; /* the lease's list */
    struct lease *k_lease;
    uint64_t k_hash;
    size_t k_len;
    uint8_t k_bytes[];
};

/* A lease.  Owned by the table's ID hash (lt_ids); the heaps point at it. */
struct lease {
    int64_t ls_id;
    int64_t ls_ttl;       /* seconds, >= lc_min_ttl */
    int64_t ls_remaining; /* checkpointed remaining TTL, seconds; <= 0 = unset */
    int64_t ls_expiry;    /* ms; LEASE_FOREVER unless primary */
    /* Heap keys.  The expiry key equals ls_expiry except after lease_expired
     * handed the lease out: then it is the retry time. */
    int64_t ls_due[LEASE_NQ];
    size_t ls_pos[LEASE_NQ]; /* slot in lt_q[q], or LEASE_NOT_QUEUED */
    uint64_t ls_hash;
    struct lease *ls_hnext;    /* ID hash chain */
    struct lease_key *ls_keys; /* head of the list of attached keys */
    size_t ls_n_keys;
};

struct lease_heap {
    struct lease **h_v; /* owned array; capacity always > number of leases */
    size_t h_n;
    size_t h_cap;
};

struct lease_table {
    struct lease_config lt_cfg;
    struct lease **lt_ids; /* owned bucket array, lt_ids_mask + 1 chains */
    size_t lt_ids_mask;
    size_t lt_n;
    struct lease_key **lt_keys; /* owned bucket array, lt_keys_mask + 1 chains */
    size_t lt_keys_mask;
    size_t lt_n_keys;
    /* While primary every lease is in the expiry queue and those due for a
     * checkpoint in the checkpoint queue; otherwise both are empty. */
    struct lease_heap lt_q[LEASE_NQ];
    bool lt_primary;
};

/* One row of lease_leases' sort. */
struct lease_order {
    int64_t o_expiry;
    int64_t o_id;
};

/* ---- prototypes ---- */

static int64_t lease_add_sat(int64_t a, int64_t b);
static int64_t lease_ms(int64_t seconds);
static uint64_t lease_le64(const uint8_t *p);
static uint64_t lease_siphash(const uint8_t key[16], const uint8_t *p, size_t n);
static uint64_t lease_hash_id(const struct lease_table *t, int64_t id);
static int lease_bytes_cmp(const void *a, const void *b);
static int lease_order_cmp(const void *a, const void *b);
static int lease_expiry_cmp(const void *a, const void *b);

static bool lease_less(int q, const struct lease *a, const struct lease *b);
static void lease_heap_place(struct lease_table *t, int q, size_t i, struct lease *l);
static void lease_heap_up(struct lease_table *t, int q, size_t i);
static void lease_heap_down(struct lease_table *t, int q, size_t i);
static void lease_queue_set(struct lease_table *t, int q, struct lease *l, int64_t due);
static void lease_queue_remove(struct lease_table *t, int q, struct lease *l);
static void lease_queue_clear(struct lease_table *t, int q);
static int lease_reserve(struct lease_table *t);

static struct lease *lease_find(const struct lease_table *t, int64_t id);
static void lease_ids_grow(struct lease_table *t);
static struct lease_key *lease_key_find(const struct lease_table *t, const uint8_t *key, size_t len,
                                        uint64_t h);
static void lease_keys_grow(struct lease_table *t);
static void lease_key_link(struct lease *l, struct lease_key *k);
static void lease_key_unlink(struct lease_key *k);
static void lease_key_destroy(struct lease_table *t, struct lease_key *k);

static int64_t lease_remaining_ttl(const struct lease *l);
static int64_t lease_deadline(int64_t now_ms, int64_t extend_ms, int64_t seconds);
static void lease_start(struct lease_table *t, struct lease *l, int64_t now_ms, int64_t extend_ms);
static void lease_schedule_checkpoint(struct lease_table *t, struct lease *l, int64_t now_ms);
static int lease_insert(struct lease_table *t, int64_t now_ms, int64_t id, int64_t ttl,
                        int64_t remaining, struct lease **out);
static void lease_destroy(struct lease_table *t, struct lease *l);
static void lease_drop_all(struct lease_table *t);
static void lease_spread(struct lease_table *t, int64_t now_ms, int64_t extend_ms);

/* ---- arithmetic and hashing ---- */

/* Times come from the caller and TTLs from the backend and raft entries:
 * saturate rather than overflow. */
static int64_t lease_add_sat(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

static int64_t lease_ms(int64_t seconds)
{
    int64_t r;
    if (__builtin_mul_overflow(seconds, 1000, &r))
        return seconds > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

static uint64_t lease_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

#define LEASE_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define LEASE_SIPROUND(v0, v1, v2, v3)                                                             \
    do {                                                                                           \
        v0 += v1; v1 = LEASE_ROTL(v1, 13); v1 ^= v0; v0 = LEASE_ROTL(v0, 32);                      \
        v2 += v3; v3 = LEASE_ROTL(v3, 16); v3 ^= v2;                                               \
        v0 += v3; v3 = LEASE_ROTL(v3, 21); v3 ^= v0;                                               \
        v2 += v1; v1 = LEASE_ROTL(v1, 17); v1 ^= v2; v2 = LEASE_ROTL(v2, 32);                      \
    } while (0)

/* SipHash-1-3: keys and lease IDs are chosen by clients, so the bucket a
 * value lands in must not be predictable without the seed. */
static uint64_t lease_siphash(const uint8_t key[16], const uint8_t *p, size_t n)
{
    uint64_t k0 = lease_le64(key), k1 = lease_le64(key + 8);
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
    uint64_t m, b = (uint64_t)n << 56;
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        m = lease_le64(p + i);
        v3 ^= m;
        LEASE_SIPROUND(v0, v1, v2, v3);
        v0 ^= m;
    }
    for (size_t j = 0; i + j < n; j++)
        b |= (uint64_t)p[i + j] << (8 * j);
    v3 ^= b;
    LEASE_SIPROUND(v0, v1, v2, v3);
    v0 ^= b;
    v2 ^= 0xff;
    LEASE_SIPROUND(v0, v1, v2, v3);
    LEASE_SIPROUND(v0, v1, v2, v3);
    LEASE_SIPROUND(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

static uint64_t lease_hash_id(const struct lease_table *t, int64_t id)
{
    uint8_t b[8];
    uint64_t u = (uint64_t)id;
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(u >> (8 * i));
    return lease_siphash(t->lt_cfg.lc_seed, b, sizeof b);
}

/* Bytewise, a prefix first: Go's string order, which etcd sorts keys by. */
static int lease_bytes_cmp(const void *a, const void *b)
{
    const struct pb_bytes *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = n ? memcmp(x->p, y->p, n) : 0;
    if (c)
        return c;
    return (x->len > y->len) - (x->len < y->len);
}

static int lease_order_cmp(const void *a, const void *b)
{
    const struct lease_order *x = a, *y = b;
    if (x->o_expiry != y->o_expiry)
        return x->o_expiry < y->o_expiry ? -1 : 1;
    return (x->o_id > y->o_id) - (x->o_id < y->o_id);
}

static int lease_expiry_cmp(const void *a, const void *b)
{
    const struct lease *x = *(struct lease *const *)a, *y = *(struct lease *const *)b;
    return lease_less(LEASE_Q_EXPIRY, x, y) ? -1 : lease_less(LEASE_Q_EXPIRY, y, x);
}

/* ---- queues ---- */

/* Ties broken by ID so the order leases come out in is deterministic. */
static bool lease_less(int q, const struct lease *a, const struct lease *b)
{
    if (a->ls_due[q] != b->ls_due[q])
        return a->ls_due[q] < b->ls_due[q];
    return a->ls_id < b->ls_id;
}

static void lease_heap_place(struct lease_table *t, int q, size_t i, struct lease *l)
{
    t->lt_q[q].h_v[i] = l;
    l->ls_pos[q] = i;
}

static void lease_heap_up(struct lease_table *t, int q, size_t i)
{
    struct lease **v = t->lt_q[q].h_v;
    struct lease *l = v[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!lease_less(q, l, v[parent]))
            break;
        lease_heap_place(t, q, i, v[parent]);
        i = parent;
    }
    lease_heap_place(t, q, i, l);
}

static void lease_heap_down(struct lease_table *t, int q, size_t i)
{
    struct lease **v = t->lt_q[q].h_v;
    size_t n = t->lt_q[q].h_n;
    struct lease *l = v[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && lease_less(q, v[c + 1], v[c]))
            c++;
        if (!lease_less(q, v[c], l))
            break;
        lease_heap_place(t, q, i, v[c]);
        i = c;
    }
    lease_heap_place(t, q, i, l);
}

/* Queues l at due, or moves it there.  Never allocates: lease_reserve keeps
 * room for every lease. */
static void lease_queue_set(struct lease_table *t, int q, struct lease *l, int64_t due)
{
    struct lease_heap *h = &t->lt_q[q];
    l->ls_due[q] = due;
    if (l->ls_pos[q] == LEASE_NOT_QUEUED) {
        assert(h->h_n < h->h_cap);
        lease_heap_place(t, q, h->h_n++, l);
    }
    lease_heap_up(t, q, l->ls_pos[q]);
    lease_heap_down(t, q, l->ls_pos[q]);
}

static void lease_queue_remove(struct lease_table *t, int q, struct lease *l)
{
    struct lease_heap *h = &t->lt_q[q];
    size_t i = l->ls_pos[q];
    if (i == LEASE_NOT_QUEUED)
        return;
    l->ls_pos[q] = LEASE_NOT_QUEUED;
    struct lease *last = h->h_v[--h->h_n];
    if (i == h->h_n)
        return;
    lease_heap_place(t, q, i, last);
    lease_heap_up(t, q, i);
    lease_heap_down(t, q, last->ls_pos[q]);
}

static void lease_queue_clear(struct lease_table *t, int q)
{
    struct lease_heap *h = &t->lt_q[q];
    for (size_t i = 0; i < h->h_n; i++)
        h->h_v[i]->ls_pos[q] = LEASE_NOT_QUEUED;
    h->h_n = 0;
}

/* Room in both heaps for one more lease, taken before a lease is added so
 * that promote, renew and checkpoint scheduling never fail. */
static int lease_reserve(struct lease_table *t)
{
    for (int q = 0; q < LEASE_NQ; q++) {
        struct lease_heap *h = &t->lt_q[q];
        if (h->h_cap > t->lt_n)
            continue;
        size_t cap = h->h_cap ? 2 * h->h_cap : 16;
        struct lease **v = mem_realloc(h->h_v, cap * sizeof *v);
        if (!v)
            return -ERR_NOMEM;
        h->h_v = v;
        h->h_cap = cap;
    }
    return 0;
}

/* ---- hashes ---- */

static struct lease *lease_find(const struct lease_table *t, int64_t id)
{
    struct lease *l = t->lt_ids[lease_hash_id(t, id) & t->lt_ids_mask];
    while (l && l->ls_id != id)
        l = l->ls_hnext;
    return l;
}

/* Best effort: when the bigger bucket array cannot be had, chains just get
 * longer, so inserting never fails here. */
static void lease_ids_grow(struct lease_table *t)
{
    size_t n = 2 * (t->lt_ids_mask + 1);
    struct lease **b = mem_calloc(n, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i <= t->lt_ids_mask; i++) {
        struct lease *l = t->lt_ids[i], *next;
        for (; l; l = next) {
            next = l->ls_hnext;
            l->ls_hnext = b[l->ls_hash & (n - 1)];
            b[l->ls_hash & (n - 1)] = l;
        }
    }
    mem_free(t->lt_ids);
    t->lt_ids = b;
    t->lt_ids_mask = n - 1;
}

static struct lease_key *lease_key_find(const struct lease_table *t, const uint8_t *key, size_t len,
                                        uint64_t h)
{
    struct lease_key *k = t->lt_keys[h & t->lt_keys_mask];
    for (; k; k = k->k_hnext)
        if (k->k_hash == h && k->k_len == len && (!len || !memcmp(k->k_bytes, key, len)))
            return k;
    return NULL;
}

static void lease_keys_grow(struct lease_table *t)
{
    size_t n = 2 * (t->lt_keys_mask + 1);
    struct lease_key **b = mem_calloc(n, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i <= t->lt_keys_mask; i++) {
        struct lease_key *k = t->lt_keys[i], *next;
        for (; k; k = next) {
            next = k->k_hnext;
            k->k_hnext = b[k->k_hash & (n - 1)];
            b[k->k_hash & (n - 1)] = k;
        }
    }
    mem_free(t->lt_keys);
    t->lt_keys = b;
    t->lt_keys_mask = n - 1;
}

static void lease_key_link(struct lease *l, struct lease_key *k)
{
    k->k_lease = l;
    k->k_prev = NULL;
    k->k_next = l->ls_keys;
    if (l->ls_keys)
        l->ls_keys->k_prev = k;
    l->ls_keys = k;
    l->ls_n_keys++;
}

static void lease_key_unlink(struct lease_key *k)
{
    struct lease *l = k->k_lease;
    if (k->k_prev)
        k->k_prev->k_next = k->k_next;
    else
        l->ls_keys = k->k_next;
    if (k->k_next)
        k->k_next->k_prev = k->k_prev;
    l->ls_n_keys--;
}

static void lease_key_destroy(struct lease_table *t, struct lease_key *k)
{
    struct lease_key **pp = &t->lt_keys[k->k_hash & t->lt_keys_mask];
    lease_key_unlink(k);
    while (*pp != k)
        pp = &(*pp)->k_hnext;
    *pp = k->k_hnext;
    t->lt_n_keys--;
    mem_free(k);
}

/* ---- leases ---- */

/* Lease.RemainingTTL: the checkpointed remaining TTL if set, else the TTL. */
static int64_t lease_remaining_ttl(const struct lease *l)
{
    return l->ls_remaining > 0 ? l->ls_remaining : l->ls_ttl;
}

/* Lease.refresh's new expiry, kept below LEASE_FOREVER, which would read as
 * "not primary". */
static int64_t lease_deadline(int64_t now_ms, int64_t extend_ms, int64_t seconds)
{
    int64_t d = lease_add_sat(now_ms, lease_add_sat(extend_ms, lease_ms(seconds)));
    return d < LEASE_FOREVER ? d : LEASE_FOREVER - 1;
}

static void lease_start(struct lease_table *t, struct lease *l, int64_t now_ms, int64_t extend_ms)
{
    l->ls_expiry = lease_deadline(now_ms, extend_ms, lease_remaining_ttl(l));
    lease_queue_set(t, LEASE_Q_EXPIRY, l, l->ls_expiry);
}

/* lessor.scheduleCheckpointIfNeeded: only leases longer than the interval
 * ever get a checkpoint. */
static void lease_schedule_checkpoint(struct lease_table *t, struct lease *l, int64_t now_ms)
{
    const struct lease_config *c = &t->lt_cfg;
    if (!c->lc_checkpoint || lease_remaining_ttl(l) <= c->lc_checkpoint_ms / 1000)
        return;
    lease_queue_set(t, LEASE_Q_CHECKPOINT, l, lease_add_sat(now_ms, c->lc_checkpoint_ms));
}

static int lease_insert(struct lease_table *t, int64_t now_ms, int64_t id, int64_t ttl,
                        int64_t remaining, struct lease **out)
{
    struct lease *l;
    if (lease_find(t, id))
        return -ERR_LEASE_EXIST;
    if (lease_reserve(t) < 0 || !(l = mem_calloc(1, sizeof *l)))
        return -ERR_NOMEM;
    l->ls_id = id;
    l->ls_ttl = ttl < t->lt_cfg.lc_min_ttl ? t->lt_cfg.lc_min_ttl : ttl;
    l->ls_remaining = remaining;
    l->ls_expiry = LEASE_FOREVER;
    l->ls_pos[LEASE_Q_EXPIRY] = l->ls_pos[LEASE_Q_CHECKPOINT] = LEASE_NOT_QUEUED;
    l->ls_hash = lease_hash_id(t, id);
    l->ls_hnext = t->lt_ids[l->ls_hash & t->lt_ids_mask];
    t->lt_ids[l->ls_hash & t->lt_ids_mask] = l;
    if (++t->lt_n > t->lt_ids_mask + 1)
        lease_ids_grow(t);
    if (t->lt_primary) {
        lease_start(t, l, now_ms, 0);
        lease_schedule_checkpoint(t, l, now_ms);
    }
    if (out)
        *out = l;
    return 0;
}

static void lease_destroy(struct lease_table *t, struct lease *l)
{
    struct lease **pp = &t->lt_ids[l->ls_hash & t->lt_ids_mask];
    while (l->ls_keys)
        lease_key_destroy(t, l->ls_keys);
    lease_queue_remove(t, LEASE_Q_EXPIRY, l);
    lease_queue_remove(t, LEASE_Q_CHECKPOINT, l);
    while (*pp != l)
        pp = &(*pp)->ls_hnext;
    *pp = l->ls_hnext;
    t->lt_n--;
    mem_free(l);
}

static void lease_drop_all(struct lease_table *t)
{
    for (size_t i = 0; i <= t->lt_ids_mask; i++) {
        struct lease *l = t->lt_ids[i], *next;
        for (; l; l = next) {
            struct lease_key *k = l->ls_keys, *knext;
            for (; k; k = knext) {
                knext = k->k_next;
                mem_free(k);
            }
            next = l->ls_hnext;
            mem_free(l);
        }
        t->lt_ids[i] = NULL;
    }
    memset(t->lt_keys, 0, (t->lt_keys_mask + 1) * sizeof *t->lt_keys);
    t->lt_n = t->lt_n_keys = 0;
    t->lt_q[LEASE_Q_EXPIRY].h_n = t->lt_q[LEASE_Q_CHECKPOINT].h_n = 0;
}

/* ---- public: setup ---- */

int64_t lease_min_ttl(int64_t election_ticks, int64_t tick_ms)
{
    int64_t ms = (3 * election_ticks) / 2 * tick_ms;
    return ms / 1000 + (ms % 1000 > 0);
}

struct lease_table *lease_new(const struct lease_config *cfg)
{
    struct lease_table *t = mem_calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->lt_cfg = *cfg;
    if (t->lt_cfg.lc_retry_ms <= 0)
        t->lt_cfg.lc_retry_ms = LEASE_DEFAULT_RETRY_MS;
    if (t->lt_cfg.lc_checkpoint_ms <= 0)
        t->lt_cfg.lc_checkpoint_ms = LEASE_DEFAULT_CHECKPOINT_MS;
    t->lt_ids = mem_calloc(LEASE_BUCKETS_MIN, sizeof *t->lt_ids);
    t->lt_keys = mem_calloc(LEASE_BUCKETS_MIN, sizeof *t->lt_keys);
    if (!t->lt_ids || !t->lt_keys)
        goto fail;
    t->lt_ids_mask = t->lt_keys_mask = LEASE_BUCKETS_MIN - 1;
    return t;
fail:
    mem_free(t->lt_keys);
    mem_free(t->lt_ids);
    mem_free(t);
    return NULL;
}

void lease_free(struct lease_table *t)
{
    if (!t)
        return;
    lease_drop_all(t);
    mem_free(t->lt_q[LEASE_Q_EXPIRY].h_v);
    mem_free(t->lt_q[LEASE_Q_CHECKPOINT].h_v);
    mem_free(t->lt_keys);
    mem_free(t->lt_ids);
    mem_free(t);
}

/* ---- public: raft-applied changes ---- */

int lease_grant(struct lease_table *t, int64_t now_ms, int64_t id, int64_t ttl,
                int64_t *granted_ttl)
{
    struct lease *l;
    int rc;
    if (id == 0)
        return -ERR_LEASE_NOT_FOUND;
    if (ttl > LEASE_MAX_TTL)
        return -ERR_LEASE_TTL_TOO_LARGE;
    if ((rc = lease_insert(t, now_ms, id, ttl, 0, &l)) < 0)
        return rc;
    *granted_ttl = l->ls_ttl;
    return 0;
}

int lease_revoke(struct lease_table *t, int64_t id, struct mem_arena *a, struct pb_bytes **keys,
                 size_t *n_keys)
{
    struct lease *l = lease_find(t, id);
    struct pb_bytes *v = NULL;
    size_t n = 0;
    if (!l)
        return -ERR_LEASE_NOT_FOUND;
    if (l->ls_n_keys) {
        /* Copies: the keys' own storage goes with the lease. */
        v = mem_arena_alloc(a, l->ls_n_keys * sizeof *v);
        if (!v)
            return -ERR_NOMEM;
        for (struct lease_key *k = l->ls_keys; k; k = k->k_next, n++) {
            v[n].p = mem_arena_dup(a, k->k_bytes, k->k_len);
            v[n].len = k->k_len;
            if (!v[n].p)
                return -ERR_NOMEM;
        }
        qsort(v, n, sizeof *v, lease_bytes_cmp);
    }
    lease_destroy(t, l);
    *keys = v;
    *n_keys = n;
    return 0;
}

void lease_checkpoint(struct lease_table *t, int64_t now_ms, int64_t id, int64_t remaining_ttl)
{
    struct lease *l = lease_find(t, id);
    if (!l)
        return;
    l->ls_remaining = remaining_ttl;
    if (t->lt_primary)
        lease_schedule_checkpoint(t, l, now_ms);
}

int lease_recover(struct lease_table *t, int64_t now_ms, int64_t id, int64_t ttl,
                  int64_t remaining_ttl)
{
    if (id == 0)
        return -ERR_LEASE_NOT_FOUND;
    return lease_insert(t, now_ms, id, ttl, remaining_ttl, NULL);
}

void lease_reset(struct lease_table *t)
{
    lease_drop_all(t);
}

/* ---- public: attached keys ---- */

int lease_attach(struct lease_table *t, int64_t id, const uint8_t *key, size_t len)
{
    struct lease *l = lease_find(t, id);
    struct lease_key *k;
    uint64_t h;
    if (!l)
        return -ERR_LEASE_NOT_FOUND;
    h = lease_siphash(t->lt_cfg.lc_seed, key, len);
    if ((k = lease_key_find(t, key, len, h))) {
        /* mvcc detaches the old lease before attaching the new one; moving
         * here keeps a key on one lease even if a caller does not. */
        if (k->k_lease != l) {
            lease_key_unlink(k);
            lease_key_link(l, k);
        }
        return 0;
    }
    if (!(k = mem_alloc(sizeof *k + len)))
        return -ERR_NOMEM;
    k->k_hash = h;
    k->k_len = len;
    if (len)
        memcpy(k->k_bytes, key, len);
    k->k_hnext = t->lt_keys[h & t->lt_keys_mask];
    t->lt_keys[h & t->lt_keys_mask] = k;
    lease_key_link(l, k);
    if (++t->lt_n_keys > t->lt_keys_mask + 1)
        lease_keys_grow(t);
    return 0;
}

int lease_detach(struct lease_table *t, int64_t id, const uint8_t *key, size_t len)
{
    struct lease *l = lease_find(t, id);
    struct lease_key *k;
    if (!l)
        return -ERR_LEASE_NOT_FOUND;
    k = lease_key_find(t, key, len, lease_siphash(t->lt_cfg.lc_seed, key, len));
    /* etcd would also drop the key's entry when it belongs to another lease,
     * leaving that lease listing a key nobody maps to it; only the owner's
     * detach counts here. */
    if (k && k->k_lease == l)
        lease_key_destroy(t, k);
    return 0;
}

int64_t lease_of_key(const struct lease_table *t, const uint8_t *key, size_t len)
{
    struct lease_key *k = lease_key_find(t, key, len, lease_siphash(t->lt_cfg.lc_seed, key, len));
    return k ? k->k_lease->ls_id : 0;
}

/* ---- public: queries ---- */

bool lease_exists(const struct lease_table *t, int64_t id)
{
    return lease_find(t, id) != NULL;
}

size_t lease_count(const struct lease_table *t)
{
    return t->lt_n;
}

int lease_info(const struct lease_table *t, int64_t id, struct lease_info *out)
{
    const struct lease *l = lease_find(t, id);
    if (!l)
        return -ERR_LEASE_NOT_FOUND;
    out->lf_ttl = l->ls_ttl;
    out->lf_remaining = l->ls_remaining;
    out->lf_expiry_ms = l->ls_expiry;
    out->lf_n_keys = l->ls_n_keys;
    return 0;
}

int lease_time_to_live(const struct lease_table *t, int64_t now_ms, int64_t id, bool want_keys,
                       struct mem_arena *a, struct api_lease_time_to_live_resp *resp)
{
    const struct lease *l = lease_find(t, id);
    struct pb_bytes *v = NULL;
    size_t n = 0;
    if (!l)
        return -ERR_LEASE_NOT_FOUND;
    if (want_keys && l->ls_n_keys) {
        if (!(v = mem_arena_alloc(a, l->ls_n_keys * sizeof *v)))
            return -ERR_NOMEM;
        for (const struct lease_key *k = l->ls_keys; k; k = k->k_next, n++)
            v[n] = (struct pb_bytes){k->k_bytes, k->k_len};
        qsort(v, n, sizeof *v, lease_bytes_cmp);
    }
    resp->ID = id;
    /* C's division truncates toward zero as Go's float-to-int conversion
     * does, so 0.5 s past expiry reads 0 and 1.5 s past reads -1. */
    resp->TTL = l->ls_expiry == LEASE_FOREVER ? LEASE_FOREVER_SECONDS
                                              : lease_add_sat(l->ls_expiry, -now_ms) / 1000;
    resp->grantedTTL = l->ls_ttl;
    resp->keys = v;
    resp->n_keys = n;
    return 0;
}

int lease_leases(const struct lease_table *t, struct mem_arena *a,
                 struct api_lease_leases_resp *resp)
{
    struct lease_order *o;
    struct api_lease_status *s;
    size_t n = 0;
    resp->leases = NULL;
    resp->n_leases = 0;
    if (!t->lt_n)
        return 0;
    o = mem_arena_alloc(a, t->lt_n * sizeof *o);
    s = mem_arena_alloc(a, t->lt_n * sizeof *s);
    if (!o || !s)
        return -ERR_NOMEM;
    for (size_t i = 0; i <= t->lt_ids_mask; i++)
        for (const struct lease *l = t->lt_ids[i]; l; l = l->ls_hnext)
            o[n++] = (struct lease_order){l->ls_expiry, l->ls_id};
    qsort(o, n, sizeof *o, lease_order_cmp);
    for (size_t i = 0; i < n; i++)
        s[i].ID = o[i].o_id;
    resp->leases = s;
    resp->n_leases = n;
    return 0;
}

/* ---- public: the primary side ---- */

int lease_renew(struct lease_table *t, int64_t now_ms, int64_t id, int64_t *ttl,
                bool *clear_checkpoint)
{
    struct lease *l;
    if (!t->lt_primary)
        return LEASE_NOT_PRIMARY;
    if (!(l = lease_find(t, id)))
        return -ERR_LEASE_NOT_FOUND;
    if (l->ls_expiry <= now_ms)
        return LEASE_EXPIRING;
    /* etcd applies the clearing checkpoint before it refreshes, so the lease
     * restarts at its full TTL; without checkpointing etcd 3.4 would restart
     * it at a stale remaining TTL, which no client asked for. */
    *clear_checkpoint = t->lt_cfg.lc_checkpoint && l->ls_remaining > 0;
    l->ls_expiry = lease_deadline(now_ms, 0, l->ls_ttl);
    lease_queue_set(t, LEASE_Q_EXPIRY, l, l->ls_expiry);
    *ttl = l->ls_ttl;
    return 0;
}

size_t lease_expired(struct lease_table *t, int64_t now_ms, int64_t *out, size_t max)
{
    struct lease_heap *h = &t->lt_q[LEASE_Q_EXPIRY];
    size_t n = 0;
    while (n < max && h->h_n && h->h_v[0]->ls_due[LEASE_Q_EXPIRY] <= now_ms) {
        struct lease *l = h->h_v[0];
        assert(l->ls_expiry <= now_ms);
        out[n++] = l->ls_id;
        /* lessor.expireExists: look again after the retry interval, the
         * revoke may never make it through raft. */
        lease_queue_set(t, LEASE_Q_EXPIRY, l, lease_add_sat(now_ms, t->lt_cfg.lc_retry_ms));
    }
    return n;
}

int64_t lease_next_expiry(const struct lease_table *t)
{
    const struct lease_heap *h = &t->lt_q[LEASE_Q_EXPIRY];
    return h->h_n ? h->h_v[0]->ls_due[LEASE_Q_EXPIRY] : LEASE_FOREVER;
}

size_t lease_checkpoints_due(struct lease_table *t, int64_t now_ms,
                             struct api_lease_checkpoint *out, size_t max)
{
    struct lease_heap *h = &t->lt_q[LEASE_Q_CHECKPOINT];
    size_t n = 0;
    while (n < max && h->h_n && h->h_v[0]->ls_due[LEASE_Q_CHECKPOINT] <= now_ms) {
        struct lease *l = h->h_v[0];
        int64_t left, secs;
        lease_queue_remove(t, LEASE_Q_CHECKPOINT, l);
        if (l->ls_expiry <= now_ms)
            continue;
        left = l->ls_expiry - now_ms;
        secs = left / 1000 + (left % 1000 != 0); /* math.Ceil of seconds */
        if (secs >= l->ls_ttl)
            continue;
        out[n++] = (struct api_lease_checkpoint){l->ls_id, secs};
    }
    return n;
}

int64_t lease_next_checkpoint(const struct lease_table *t)
{
    const struct lease_heap *h = &t->lt_q[LEASE_Q_CHECKPOINT];
    return h->h_n ? h->h_v[0]->ls_due[LEASE_Q_CHECKPOINT] : LEASE_FOREVER;
}

/* The second half of lessor.Promote: after a leader change many leases can
 * come due in the same second (all of them, when every lease was renewed
 * just before).  Walking the leases by expiry, windows of one second are
 * allowed 3/4 of the revoke rate; past that each lease is pushed back by
 * the share of a second its rank asks for, less how far into the window it
 * already was.  Sorting the expiry heap's array in place leaves a valid heap
 * and needs no memory; the walk changes expiries without sifting, so the
 * heap is rebuilt afterwards. */
static void lease_spread(struct lease_table *t, int64_t now_ms, int64_t extend_ms)
{
    struct lease_heap *h = &t->lt_q[LEASE_Q_EXPIRY];
    const int64_t target = (3 * LEASE_REVOKE_RATE) / 4;
    int64_t base, next, expires = 0;

    qsort(h->h_v, h->h_n, sizeof *h->h_v, lease_expiry_cmp);
    base = lease_add_sat(h->h_v[0]->ls_expiry, -now_ms);
    next = lease_add_sat(base, 1000);
    for (size_t i = 0; i < h->h_n; i++) {
        struct lease *l = h->h_v[i];
        int64_t remaining = lease_add_sat(l->ls_expiry, -now_ms), delay;
        double rate;
        if (remaining > next) {
            base = remaining;
            next = lease_add_sat(base, 1000);
            expires = 1;
            continue;
        }
        if (++expires <= target)
            continue;
        /* If leases are extended by n seconds, leases n seconds ahead of the
         * base window should be extended by only one second (etcd). */
        rate = 1000.0 * (double)expires / (double)target - (double)(remaining - base);
        delay = (int64_t)rate;
        next = lease_add_sat(base, delay);
        l->ls_expiry =
            lease_deadline(now_ms, lease_add_sat(delay, extend_ms), lease_remaining_ttl(l));
        l->ls_due[LEASE_Q_EXPIRY] = l->ls_expiry;
        lease_schedule_checkpoint(t, l, now_ms);
    }
    for (size_t i = 0; i < h->h_n; i++)
        h->h_v[i]->ls_pos[LEASE_Q_EXPIRY] = i;
    for (size_t i = h->h_n / 2; i-- > 0;)
        lease_heap_down(t, LEASE_Q_EXPIRY, i);
}

void lease_promote(struct lease_table *t, int64_t now_ms, int64_t extend_ms)
{
    if (extend_ms < 0)
        extend_ms = 0;
    t->lt_primary = true;
    for (size_t i = 0; i <= t->lt_ids_mask; i++)
        for (struct lease *l = t->lt_ids[i]; l; l = l->ls_hnext) {
            lease_start(t, l, now_ms, extend_ms);
            lease_schedule_checkpoint(t, l, now_ms);
        }
    if (t->lt_n >= LEASE_REVOKE_RATE)
        lease_spread(t, now_ms, extend_ms);
}

void lease_demote(struct lease_table *t)
{
    t->lt_primary = false;
    for (size_t i = 0; i <= t->lt_ids_mask; i++)
        for (struct lease *l = t->lt_ids[i]; l; l = l->ls_hnext)
            l->ls_expiry = LEASE_FOREVER;
    lease_queue_clear(t, LEASE_Q_EXPIRY);
    lease_queue_clear(t, LEASE_Q_CHECKPOINT);
}

bool lease_is_primary(const struct lease_table *t)
{
    return t->lt_primary;
}

/* ---- public: IDs ---- */

#define LEASE_ID_TS_BITS 40
#define LEASE_ID_CNT_BITS 8
#define LEASE_ID_SUFFIX_BITS (LEASE_ID_TS_BITS + LEASE_ID_CNT_BITS)

void lease_idgen_init(struct lease_idgen *g, uint64_t member_id, int64_t unix_ms)
{
    g->ig_prefix = (uint64_t)(uint16_t)member_id << LEASE_ID_SUFFIX_BITS;
    g->ig_suffix = ((uint64_t)unix_ms & ((1ULL << LEASE_ID_TS_BITS) - 1)) << LEASE_ID_CNT_BITS;
}

uint64_t lease_idgen_next(struct lease_idgen *g)
{
    g->ig_suffix++;
    return g->ig_prefix | (g->ig_suffix & ((1ULL << LEASE_ID_SUFFIX_BITS) - 1));
}

int64_t lease_id_gen(struct lease_idgen *g)
{
    uint64_t id;
    do
        id = lease_idgen_next(g) & (uint64_t)INT64_MAX;
    while (id == 0);
    return (int64_t)id;
}
