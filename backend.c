/* backend.c - etcd 3.4's backend contents on db.c (see backend.h).
 *
 * Owns the meaning of the buckets (what etcd's mvcc/kvstore*.go, lease/
 * lessor.go, membership/store.go, v3alarm and auth/store.go write), the
 * pending batch, the commit job, compaction of the key bucket, recovery,
 * Hash/HashKV and snapshots.  Does not own the file format (db.c), the store
 * (mvcc.c) or when things run (node.c calls in; the worker runs the jobs).
 *
 * The pending batch is a chain of chunks holding records (bucket, put or
 * delete, key, value) in the order they were recorded: values are copied
 * once, into the chunk, and a failed commit hands its chain back in front of
 * the new one without copying.  Only one commit job exists at a time and it
 * lives in struct backend, so preparing one never allocates.
 *
 * Compaction follows etcd's scheduleCompaction: the revisions the store kept
 * (mvcc_keep, etcd's "available" map) are taken when it is recorded; each
 * commit then walks at most a batch limit of key-bucket keys from where the
 * last one stopped, below main revision rev + 1, deleting those not kept,
 * and the batch that finds fewer keys than the limit writes
 * finishedCompactRev.  The loop thread never reads the file: the walk runs in
 * the commit, on the worker.
 */
#include "backend.h"

#include <bearssl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crc32c.h"
#include "err.h"
#include "log.h"
#include "pb.h"

/* ---- types ---- */

enum backend_bucket_id {
    BK_KEY,
    BK_META,
    BK_LEASE,
    BK_MEMBERS,
    BK_MEMBERS_REMOVED,
    BK_CLUSTER,
    BK_ALARM,
    BK_AUTH,
    BK_AUTH_USERS,
    BK_AUTH_ROLES,
    BK__COUNT
};

static const char *const backend_bucket_names[BK__COUNT] = {
    "key", "meta", "lease", "members", "members_removed", "cluster", "alarm", "auth", "authUsers",
    "authRoles",
};

enum { BACKEND_PUT, BACKEND_DEL };

#define BACKEND_REV_LEN 17    /* revBytesLen */
#define BACKEND_REVT_LEN 18   /* markedRevBytesLen: a tombstone */
#define BACKEND_REC_HDR 10    /* bucket, op, key length u32, value length u32 */
/* A chunk with its header fits mem.c's largest class: bigger blocks come
 * from malloc, which maps and unmaps them, a page fault per page and a TLB
 * shootdown per chunk. */
#define BACKEND_CHUNK (64 * 1024 - 64)

static const char backend_ci_key[] = "consistent_index";
static const char backend_sched_key[] = "scheduledCompactRev";
static const char backend_finished_key[] = "finishedCompactRev";

/* A piece of the pending batch: records back to back. */
struct backend_chunk {
    struct backend_chunk *ch_next;
    size_t ch_len;
    size_t ch_cap;
    int64_t ch_lo, ch_hi; /* main revisions of its key records; ch_hi 0: none */
    uint8_t ch_data[];
};

struct backend_chain {
    struct backend_chunk *c_head; /* owned */
    struct backend_chunk *c_tail;
    size_t c_n_ops;
    size_t c_bytes; /* of records */
};

/* A compaction of the key bucket in progress. */
struct backend_compaction {
    int64_t cp_rev;
    struct mvcc_revision *cp_keep; /* owned, sorted: never deleted */
    size_t cp_n_keep;
    uint8_t cp_next[BACKEND_REV_LEN]; /* where the next batch starts */
    /* owned scratch for one batch's keys: limit slots of 1 length byte and
     * BACKEND_REVT_LEN key bytes, so the worker never allocates */
    uint8_t *cp_keys;
};

#define BACKEND_SLOT (1 + BACKEND_REVT_LEN)

struct backend_job {
    struct backend *j_b;
    struct backend_chain j_chain; /* owned while in flight */
    bool j_has_ci;
    uint64_t j_ci;
    struct backend_compaction *j_cmp; /* b's, not freed while in flight */
    uint8_t j_cmp_next[BACKEND_REV_LEN];
    bool j_cmp_done;
    uint64_t j_seq;
    /* results, written by the worker */
    int j_err;
    char j_msg[512];
};

struct backend {
    struct db *b_db;            /* owned */
    char *b_path;               /* owned */
    int b_interval_ms;
    size_t b_limit;
    size_t b_cmp_limit;

    /* loop thread */
    struct backend_chain b_pending;
    struct backend_chunk *b_spare; /* owned: one chunk kept for reuse */
    bool b_has_ci;
    uint64_t b_ci;
    uint64_t b_ci_committed;
    bool b_force;
    bool b_in_flight;
    int64_t b_last_commit_ms;
    int64_t b_cmp_ready_ms;
    struct backend_compaction *b_cmp;      /* owned: the one commits advance */
    struct backend_compaction *b_cmp_next; /* owned: recorded while b_cmp was in flight */
    uint64_t b_seq;                        /* record groups so far */
    int64_t b_rev_recorded;                /* newest revision recorded */
    struct db_tx *b_value_tx;              /* open across one mvcc call's loads */
    struct mem_buf b_scratch;
    struct backend_job b_job;
    char b_msg[512];

    /* worker thread: the last record group a commit made durable */
    uint64_t b_disk_seq;
};

/* ---- prototypes ---- */

static void backend_be64(uint8_t *p, uint64_t v);
static uint64_t backend_get64(const uint8_t *p);
static void backend_rev_key(uint8_t *out, int64_t main, int64_t sub);
static int backend_rev_cmp(int64_t am, int64_t as, int64_t bm, int64_t bs);
static bool backend_kept(const struct mvcc_revision *keep, size_t n, int64_t main, int64_t sub);
static int backend_bytes_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn);
static void backend_fmt(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void backend_hexkey(char *out, size_t cap, const uint8_t *p, size_t n);

static void backend_chain_free(struct backend_chain *c);
static uint8_t *backend_reserve(struct backend *b, size_t n);
static uint8_t *backend_put_hdr(uint8_t *p, int bucket, int op, size_t klen, size_t vlen);
static void backend_commit_reserved(struct backend *b, size_t n, size_t ops);
static int backend_record(struct backend *b, int bucket, int op, const void *k, size_t kl,
                          const void *v, size_t vl);
static void backend_compaction_free(struct backend_compaction *c);
static int backend_compaction_new(struct backend *b, const struct mvcc *m, int64_t rev,
                                  struct backend_compaction **out);
static void backend_compaction_install(struct backend *b, struct backend_compaction *c);

static int backend_bucket(struct db_tx *tx, struct db_bucket **cache, int id, struct db_bucket **out);
static int backend_apply(struct backend_job *j, struct db_tx *tx, struct db_bucket **bk);
static int backend_compact_step(struct backend_job *j, struct db_tx *tx, struct db_bucket **bk);

static int backend_corrupt(struct backend *b, const char *bucket, const uint8_t *k, size_t kl,
                           const char *why);
static int backend_load_meta(struct backend *b, struct db_tx *tx, int64_t *finished,
                             int64_t *scheduled, uint64_t *ci, bool *has_ci);
static int backend_load_keys(struct backend *b, struct db_tx *tx, struct mvcc *m, int64_t *max_main);
static int backend_count(struct db_tx *tx, struct db_bucket *bk, size_t *n);
static int backend_load_members(struct backend *b, struct db_tx *tx, struct backend_state *st);
static int backend_load_leases(struct backend *b, struct db_tx *tx, struct backend_state *st);
static int backend_load_misc(struct backend *b, struct db_tx *tx, struct backend_state *st);
static int backend_load_lease_keys(struct mvcc *m, struct backend_state *st);

static int backend_hash_all(struct db_tx *tx, uint32_t *crc, char *err, size_t cap);
static int backend_hash_keys(const struct backend_hash *h, struct db_tx *tx, uint32_t *crc, char *err,
                             size_t cap);

/* ---- helpers ---- */

static void backend_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t backend_get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* etcd's revToBytes. */
static void backend_rev_key(uint8_t *out, int64_t main, int64_t sub)
{
    backend_be64(out, (uint64_t)main);
    out[8] = '_';
    backend_be64(out + 9, (uint64_t)sub);
}

/* Signed, as etcd's revision.GreaterThan compares. */
static int backend_rev_cmp(int64_t am, int64_t as, int64_t bm, int64_t bs)
{
    if (am != bm)
        return am < bm ? -1 : 1;
    if (as != bs)
        return as < bs ? -1 : 1;
    return 0;
}

static bool backend_kept(const struct mvcc_revision *keep, size_t n, int64_t main, int64_t sub)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = backend_rev_cmp(keep[mid].main, keep[mid].sub, main, sub);
        if (c == 0)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* bytes.Compare. */
static int backend_bytes_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c)
        return c;
    return an < bn ? -1 : an > bn;
}

static void backend_fmt(char *buf, size_t cap, const char *fmt, ...)
{
    if (!buf || !cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
}

/* A key for a message: hex, cut short. */
static void backend_hexkey(char *out, size_t cap, const uint8_t *p, size_t n)
{
    size_t o = 0;
    out[0] = 0;
    for (size_t i = 0; i < n && o + 3 < cap && i < 40; i++)
        o += (size_t)snprintf(out + o, cap - o, "%02x", p[i]);
}

/* ---- the pending batch ---- */

static void backend_chain_free(struct backend_chain *c)
{
    struct backend_chunk *x = c->c_head;
    while (x) {
        struct backend_chunk *next = x->ch_next;
        mem_free(x);
        x = next;
    }
    memset(c, 0, sizeof *c);
}

/* Room for n bytes at the end of the pending chain, for one record group:
 * a group never spans chunks, so it is recorded whole or not at all.  The
 * bytes count once backend_commit_reserved says so.  NULL on OOM (nothing
 * changed). */
static uint8_t *backend_reserve(struct backend *b, size_t n)
{
    struct backend_chain *c = &b->b_pending;
    if (c->c_tail && c->c_tail->ch_cap - c->c_tail->ch_len >= n)
        return c->c_tail->ch_data + c->c_tail->ch_len;
    struct backend_chunk *x;
    if (b->b_spare && b->b_spare->ch_cap >= n) {
        x = b->b_spare;
        b->b_spare = NULL;
    } else {
        size_t cap = n > BACKEND_CHUNK ? n : BACKEND_CHUNK;
        if (cap > SIZE_MAX - sizeof *x)
            return NULL;
        x = mem_alloc(sizeof *x + cap);
        if (!x)
            return NULL;
        x->ch_cap = cap;
    }
    x->ch_len = 0;
    x->ch_lo = x->ch_hi = 0;
    x->ch_next = NULL;
    if (c->c_tail)
        c->c_tail->ch_next = x;
    else
        c->c_head = x;
    c->c_tail = x;
    return x->ch_data;
}

static uint8_t *backend_put_hdr(uint8_t *p, int bucket, int op, size_t klen, size_t vlen)
{
    uint32_t k = (uint32_t)klen, v = (uint32_t)vlen;
    p[0] = (uint8_t)bucket;
    p[1] = (uint8_t)op;
    memcpy(p + 2, &k, 4);
    memcpy(p + 6, &v, 4);
    return p + BACKEND_REC_HDR;
}

static void backend_commit_reserved(struct backend *b, size_t n, size_t ops)
{
    b->b_pending.c_tail->ch_len += n;
    b->b_pending.c_n_ops += ops;
    b->b_pending.c_bytes += n;
    b->b_seq++;
}

static int backend_record(struct backend *b, int bucket, int op, const void *k, size_t kl,
                          const void *v, size_t vl)
{
    if (vl > DB_MAX_VALUE || kl > DB_MAX_KEY)
        return DB_EINVAL;
    size_t n = BACKEND_REC_HDR + kl + vl;
    uint8_t *p = backend_reserve(b, n);
    if (!p)
        return DB_ENOMEM;
    p = backend_put_hdr(p, bucket, op, kl, vl);
    memcpy(p, k, kl);
    if (vl)
        memcpy(p + kl, v, vl);
    backend_commit_reserved(b, n, 1);
    return 0;
}

/* ---- open and close ---- */

int backend_open(const char *path, const struct backend_config *cfg, struct backend **out, char *err,
                 size_t errlen)
{
    struct backend_config def = {0};
    struct db_tx *tx = NULL;
    bool changed = false;
    int rc;

    *out = NULL;
    if (!cfg)
        cfg = &def;
    struct backend *b = mem_calloc(1, sizeof *b);
    size_t plen = strlen(path);
    if (!b || !(b->b_path = mem_alloc(plen + 1))) {
        mem_free(b);
        backend_fmt(err, errlen, "%s: out of memory", path);
        return DB_ENOMEM;
    }
    memcpy(b->b_path, path, plen + 1);
    b->b_interval_ms =
        cfg->bc_batch_interval_ms > 0 ? cfg->bc_batch_interval_ms : BACKEND_BATCH_INTERVAL_MS;
    b->b_limit = cfg->bc_batch_limit > 0 ? (size_t)cfg->bc_batch_limit : BACKEND_BATCH_LIMIT;
    b->b_cmp_limit = cfg->bc_compaction_batch_limit > 0 ? (size_t)cfg->bc_compaction_batch_limit
                                                        : BACKEND_COMPACTION_BATCH_LIMIT;
    b->b_job.j_b = b;

    rc = db_open(path, cfg->bc_db_flags | DB_NO_FREELIST_SYNC, &b->b_db, err, errlen);
    if (rc)
        goto fail;
    if ((rc = db_begin(b->b_db, true, &tx)))
        goto fail_msg;
    /* etcd's startup: NewStore, membership, lessor, alarms and the auth
     * store each create their buckets; the auth store writes authRevision 1
     * when it finds none */
    for (int i = 0; i < BK__COUNT; i++) {
        const char *name = backend_bucket_names[i];
        struct db_bucket *bk;
        rc = db_bucket_get(tx, NULL, name, strlen(name), &bk);
        if (rc == DB_ENOTFOUND) {
            rc = db_bucket_create(tx, NULL, name, strlen(name), false, &bk);
            changed = true;
        }
        if (rc)
            goto fail_tx;
        if (i == BK_AUTH) {
            struct db_val v;
            rc = db_get(bk, "authRevision", 12, &v);
            if (rc == DB_ENOTFOUND) {
                uint8_t one[8];
                backend_be64(one, 1);
                rc = db_put(bk, "authRevision", 12, one, 8);
                changed = true;
            }
            if (rc)
                goto fail_tx;
        }
    }
    if (!changed) {
        db_rollback(tx);
    } else if ((rc = db_commit(tx))) {
        goto fail_msg;
    }
    *out = b;
    return 0;

fail_tx:
    backend_fmt(err, errlen, "%s: creating buckets: %s", path,
                *db_tx_errmsg(tx) ? db_tx_errmsg(tx) : db_strerror(rc));
    db_rollback(tx);
    goto fail;
fail_msg:
    backend_fmt(err, errlen, "%s: creating buckets: %s", path,
                *db_errmsg(b->b_db) ? db_errmsg(b->b_db) : db_strerror(rc));
fail:
    if (b->b_db)
        db_close(b->b_db);
    mem_free(b->b_path);
    mem_free(b);
    return rc;
}

void backend_close(struct backend *b)
{
    if (!b)
        return;
    backend_value_done(b);
    backend_chain_free(&b->b_pending);
    backend_chain_free(&b->b_job.j_chain);
    mem_free(b->b_spare);
    backend_compaction_free(b->b_cmp);
    backend_compaction_free(b->b_cmp_next);
    mem_buf_free(&b->b_scratch);
    db_close(b->b_db);
    mem_free(b->b_path);
    mem_free(b);
}

const char *backend_errmsg(const struct backend *b)
{
    return b->b_msg;
}

/* ---- recording ---- */

int backend_record_changes(struct backend *b, const struct mvcc *m)
{
    size_t n = mvcc_last_n_events(m), total = 0;
    struct mvcc_event ev;
    struct api_kv kv;
    if (!n)
        return 0;
    /* sized first so the revision goes in whole or not at all */
    for (size_t i = 0; i < n; i++) {
        mvcc_last_event(m, i, &ev);
        if (ev.type == API_EVENT_PUT)
            kv = ev.kv;
        else
            kv = (struct api_kv){.key = ev.kv.key};
        size_t vl = pb_encoded_size(&api_kv_desc, &kv);
        if (vl > DB_MAX_VALUE)
            return DB_EINVAL;
        total += BACKEND_REC_HDR + BACKEND_REVT_LEN + vl;
    }
    uint8_t *p = backend_reserve(b, total), *start = p;
    if (!p)
        return DB_ENOMEM;
    b->b_rev_recorded = mvcc_rev(m);
    struct backend_chunk *x = b->b_pending.c_tail;
    if (!x->ch_hi)
        x->ch_lo = mvcc_rev(m);
    x->ch_hi = mvcc_rev(m);
    for (size_t i = 0; i < n; i++) {
        mvcc_last_event(m, i, &ev);
        bool tomb = ev.type != API_EVENT_PUT;
        /* storeTxnWrite.put stores the whole KeyValue; delete a KeyValue
         * holding only the key, under a key marked 't' */
        kv = tomb ? (struct api_kv){.key = ev.kv.key} : ev.kv;
        size_t vl = pb_encoded_size(&api_kv_desc, &kv);
        size_t kl = tomb ? BACKEND_REVT_LEN : BACKEND_REV_LEN;
        p = backend_put_hdr(p, BK_KEY, BACKEND_PUT, kl, vl);
        backend_rev_key(p, ev.kv.mod_revision, ev.sub);
        if (tomb)
            p[BACKEND_REV_LEN] = 't';
        p += kl;
        pb_encode_to(&api_kv_desc, &kv, p, vl);
        p += vl;
    }
    backend_commit_reserved(b, (size_t)(p - start), n);
    return 0;
}

void backend_record_consistent_index(struct backend *b, uint64_t index)
{
    b->b_has_ci = true;
    b->b_ci = index;
}

int backend_record_member(struct backend *b, const struct member *mb)
{
    char key[17];
    snprintf(key, sizeof key, "%" PRIx64, mb->id);
    b->b_scratch.len = 0;
    if (member_to_json(mb, &b->b_scratch) < 0)
        return DB_ENOMEM;
    return backend_record(b, BK_MEMBERS, BACKEND_PUT, key, strlen(key), b->b_scratch.data,
                          b->b_scratch.len);
}

int backend_record_member_removed(struct backend *b, uint64_t id)
{
    char key[17];
    snprintf(key, sizeof key, "%" PRIx64, id);
    size_t kl = strlen(key);
    /* both records in one reservation: all or nothing */
    size_t n = 2 * (BACKEND_REC_HDR + kl) + 7;
    uint8_t *p = backend_reserve(b, n);
    if (!p)
        return DB_ENOMEM;
    p = backend_put_hdr(p, BK_MEMBERS, BACKEND_DEL, kl, 0);
    memcpy(p, key, kl);
    p = backend_put_hdr(p + kl, BK_MEMBERS_REMOVED, BACKEND_PUT, kl, 7);
    memcpy(p, key, kl);
    memcpy(p + kl, "removed", 7);
    backend_commit_reserved(b, n, 2);
    return 0;
}

int backend_record_cluster_version(struct backend *b, const char *version)
{
    return backend_record(b, BK_CLUSTER, BACKEND_PUT, "clusterVersion", 14, version, strlen(version));
}

int backend_record_lease(struct backend *b, int64_t id, int64_t ttl, int64_t remaining_ttl)
{
    uint8_t key[8], val[40];
    struct api_lease_pb l = {.ID = id, .TTL = ttl, .RemainingTTL = remaining_ttl};
    size_t vl = pb_encoded_size(&api_lease_pb_desc, &l);
    backend_be64(key, (uint64_t)id);
    pb_encode_to(&api_lease_pb_desc, &l, val, vl);
    return backend_record(b, BK_LEASE, BACKEND_PUT, key, 8, val, vl);
}

int backend_record_lease_revoked(struct backend *b, int64_t id)
{
    uint8_t key[8];
    backend_be64(key, (uint64_t)id);
    return backend_record(b, BK_LEASE, BACKEND_DEL, key, 8, NULL, 0);
}

int backend_record_alarm(struct backend *b, uint64_t member_id, int32_t alarm, bool active)
{
    uint8_t key[32];
    struct api_alarm_member am = {.memberID = member_id, .alarm = alarm};
    size_t kl = pb_encoded_size(&api_alarm_member_desc, &am);
    pb_encode_to(&api_alarm_member_desc, &am, key, kl);
    /* an AlarmMember with both fields zero encodes to nothing, which bbolt
     * cannot store as a key: etcd never raises alarm NONE */
    if (!kl)
        return DB_EINVAL;
    return backend_record(b, BK_ALARM, active ? BACKEND_PUT : BACKEND_DEL, key, kl, NULL, 0);
}

/* ---- compaction ---- */

static void backend_compaction_free(struct backend_compaction *c)
{
    if (!c)
        return;
    mem_free(c->cp_keep);
    mem_free(c->cp_keys);
    mem_free(c);
}

static int backend_compaction_new(struct backend *b, const struct mvcc *m, int64_t rev,
                                  struct backend_compaction **out)
{
    struct backend_compaction *c = mem_calloc(1, sizeof *c);
    if (!c)
        return DB_ENOMEM;
    c->cp_rev = rev;
    c->cp_keys = mem_alloc(b->b_cmp_limit * BACKEND_SLOT);
    if (!c->cp_keys || mvcc_keep(m, rev, rev, &c->cp_keep, &c->cp_n_keep, NULL) < 0) {
        backend_compaction_free(c);
        return DB_ENOMEM;
    }
    *out = c;
    return 0;
}

/* A newer compaction replaces the running one: it deletes everything the
 * older would (a revision the older one drops is not the newest <= the newer
 * revision either, or is a tombstone), so it starts over from the first key.
 * The running one is still the job's while a commit is in flight. */
static void backend_compaction_install(struct backend *b, struct backend_compaction *c)
{
    if (b->b_in_flight) {
        backend_compaction_free(b->b_cmp_next);
        b->b_cmp_next = c;
    } else {
        backend_compaction_free(b->b_cmp);
        b->b_cmp = c;
    }
}

int backend_record_compaction(struct backend *b, const struct mvcc *m, int64_t rev)
{
    struct backend_compaction *c;
    uint8_t rk[BACKEND_REV_LEN];
    int rc = backend_compaction_new(b, m, rev, &c);
    if (rc)
        return rc;
    backend_rev_key(rk, rev, 0);
    rc = backend_record(b, BK_META, BACKEND_PUT, backend_sched_key, strlen(backend_sched_key), rk,
                        sizeof rk);
    if (rc) {
        backend_compaction_free(c);
        return rc;
    }
    backend_compaction_install(b, c);
    /* etcd's updateCompactRev forces a commit of scheduledCompactRev */
    b->b_force = true;
    return 0;
}

/* ---- commit policy ---- */

bool backend_pending(const struct backend *b)
{
    return b->b_pending.c_n_ops || (b->b_has_ci && b->b_ci != b->b_ci_committed) || b->b_cmp ||
           b->b_cmp_next || b->b_force;
}

bool backend_in_flight(const struct backend *b)
{
    return b->b_in_flight;
}

size_t backend_backlog_bytes(const struct backend *b)
{
    return b->b_pending.c_bytes + (b->b_in_flight ? b->b_job.j_chain.c_bytes : 0);
}

int64_t backend_commit_deadline(const struct backend *b)
{
    if (b->b_in_flight || !backend_pending(b))
        return INT64_MAX;
    if (b->b_force || b->b_pending.c_n_ops >= b->b_limit ||
        b->b_pending.c_bytes >= BACKEND_BATCH_BYTES)
        return INT64_MIN;
    int64_t d = INT64_MAX;
    if (b->b_pending.c_n_ops || (b->b_has_ci && b->b_ci != b->b_ci_committed))
        d = b->b_last_commit_ms + b->b_interval_ms;
    if ((b->b_cmp || b->b_cmp_next) && b->b_cmp_ready_ms < d)
        d = b->b_cmp_ready_ms;
    return d;
}

bool backend_commit_due(const struct backend *b, int64_t now_ms)
{
    return backend_commit_deadline(b) <= now_ms;
}

/* ---- commit ---- */

struct backend_job *backend_commit_prepare(struct backend *b, int64_t now_ms)
{
    if (b->b_in_flight || !backend_pending(b))
        return NULL;
    if (b->b_cmp_next) {
        backend_compaction_free(b->b_cmp);
        b->b_cmp = b->b_cmp_next;
        b->b_cmp_next = NULL;
    }
    struct backend_job *j = &b->b_job;
    j->j_chain = b->b_pending;
    memset(&b->b_pending, 0, sizeof b->b_pending);
    j->j_has_ci = b->b_has_ci;
    j->j_ci = b->b_ci;
    j->j_cmp = b->b_cmp;
    j->j_cmp_done = false;
    if (j->j_cmp)
        memcpy(j->j_cmp_next, j->j_cmp->cp_next, BACKEND_REV_LEN);
    j->j_seq = b->b_seq;
    j->j_err = 0;
    j->j_msg[0] = 0;
    b->b_force = false;
    b->b_in_flight = true;
    b->b_last_commit_ms = now_ms;
    return j;
}

/* The bucket handles of one transaction, looked up on first use.  etcd puts
 * into the key bucket with UnsafeSeqPut, which fills split pages to 90%. */
static int backend_bucket(struct db_tx *tx, struct db_bucket **cache, int id, struct db_bucket **out)
{
    if (!cache[id]) {
        const char *name = backend_bucket_names[id];
        int rc = db_bucket_get(tx, NULL, name, strlen(name), &cache[id]);
        if (rc)
            return rc;
        if (id == BK_KEY)
            db_bucket_set_fill(cache[id], 0.9);
    }
    *out = cache[id];
    return 0;
}

static int backend_apply(struct backend_job *j, struct db_tx *tx, struct db_bucket **bk)
{
    for (const struct backend_chunk *x = j->j_chain.c_head; x; x = x->ch_next) {
        size_t off = 0;
        while (off < x->ch_len) {
            const uint8_t *p = x->ch_data + off;
            uint32_t kl, vl;
            struct db_bucket *b;
            memcpy(&kl, p + 2, 4);
            memcpy(&vl, p + 6, 4);
            int rc = backend_bucket(tx, bk, p[0], &b);
            if (rc)
                return rc;
            p += BACKEND_REC_HDR;
            if (x->ch_data[off + 1] == BACKEND_PUT) /* the job owns the chunk until it ends */
                rc = db_put_ref(b, p, kl, p + kl, vl);
            else
                rc = db_del(b, p, kl);
            if (rc)
                return rc;
            off += BACKEND_REC_HDR + kl + vl;
        }
    }
    if (j->j_has_ci) {
        struct db_bucket *b;
        uint8_t v[8];
        backend_be64(v, j->j_ci);
        int rc = backend_bucket(tx, bk, BK_META, &b);
        if (rc || (rc = db_put(b, backend_ci_key, strlen(backend_ci_key), v, 8)))
            return rc;
    }
    return 0;
}

/* One batch of etcd's scheduleCompaction: the keys in [next, rev + 1) up to
 * the limit, those not kept deleted; fewer than the limit means done. */
static int backend_compact_step(struct backend_job *j, struct db_tx *tx, struct db_bucket **bk)
{
    struct backend_compaction *c = j->j_cmp;
    size_t limit = j->j_b->b_cmp_limit, n = 0;
    struct db_bucket *kb, *mb;
    struct db_cursor cu;
    struct db_val k, v;
    uint8_t end[8];
    int rc = backend_bucket(tx, bk, BK_KEY, &kb);
    if (rc)
        return rc;
    backend_be64(end, (uint64_t)c->cp_rev + 1);
    db_cursor_init(&cu, tx, kb);
    /* keys are collected first: deleting would invalidate the cursor */
    for (rc = db_cursor_seek(&cu, j->j_cmp_next, BACKEND_REV_LEN, &k, &v);
         rc == 0 && n < limit && backend_bytes_cmp(k.p, k.len, end, 8) < 0;
         rc = db_cursor_next(&cu, &k, &v)) {
        if (k.len != BACKEND_REV_LEN && k.len != BACKEND_REVT_LEN) {
            char hex[96];
            backend_hexkey(hex, sizeof hex, k.p, k.len);
            backend_fmt(j->j_msg, sizeof j->j_msg, "%s: bucket key: key %s is not a revision",
                        j->j_b->b_path, hex);
            return DB_ECORRUPT;
        }
        uint8_t *slot = c->cp_keys + n++ * BACKEND_SLOT;
        slot[0] = (uint8_t)k.len;
        memcpy(slot + 1, k.p, k.len);
    }
    if (rc && rc != DB_ENOTFOUND)
        return rc;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *slot = c->cp_keys + i * BACKEND_SLOT;
        int64_t main = (int64_t)backend_get64(slot + 1), sub = (int64_t)backend_get64(slot + 10);
        if (backend_kept(c->cp_keep, c->cp_n_keep, main, sub))
            continue;
        if ((rc = db_del(kb, slot + 1, slot[0])))
            return rc;
    }
    if (n < limit) {
        uint8_t rk[BACKEND_REV_LEN];
        backend_rev_key(rk, c->cp_rev, 0);
        if ((rc = backend_bucket(tx, bk, BK_META, &mb)) ||
            (rc = db_put(mb, backend_finished_key, strlen(backend_finished_key), rk, sizeof rk)))
            return rc;
        j->j_cmp_done = true;
        return 0;
    }
    const uint8_t *last = c->cp_keys + (n - 1) * BACKEND_SLOT + 1;
    backend_rev_key(j->j_cmp_next, (int64_t)backend_get64(last),
                    (int64_t)(backend_get64(last + 9) + 1));
    return 0;
}

void backend_commit_run(struct backend_job *j)
{
    struct backend *b = j->j_b;
    struct db_bucket *bk[BK__COUNT] = {0};
    struct db_tx *tx;
    int rc = db_begin(b->b_db, true, &tx);
    if (rc) {
        backend_fmt(j->j_msg, sizeof j->j_msg, "%s: begin write transaction: %s", b->b_path,
                    db_strerror(rc));
        j->j_err = rc;
        return;
    }
    rc = backend_apply(j, tx, bk);
    if (rc == 0 && j->j_cmp)
        rc = backend_compact_step(j, tx, bk);
    if (rc) {
        if (!j->j_msg[0])
            backend_fmt(j->j_msg, sizeof j->j_msg, "%s: %s", b->b_path,
                        *db_tx_errmsg(tx) ? db_tx_errmsg(tx) : db_strerror(rc));
        db_rollback(tx);
        j->j_err = rc;
        return;
    }
    rc = db_commit(tx);
    if (rc) {
        backend_fmt(j->j_msg, sizeof j->j_msg, "%s: commit: %s", b->b_path,
                    *db_errmsg(b->b_db) ? db_errmsg(b->b_db) : db_strerror(rc));
        j->j_err = rc;
        return;
    }
    b->b_disk_seq = j->j_seq;
}

int backend_commit_finish(struct backend *b, struct backend_job *j, int64_t now_ms)
{
    b->b_in_flight = false;
    if (j->j_err) {
        /* nothing of the job reached the file: its records go back in front
         * of those recorded since, and the compaction position stays */
        struct backend_chain *p = &b->b_pending;
        if (j->j_chain.c_head) {
            j->j_chain.c_tail->ch_next = p->c_head;
            if (!p->c_tail)
                p->c_tail = j->j_chain.c_tail;
            p->c_head = j->j_chain.c_head;
            p->c_n_ops += j->j_chain.c_n_ops;
            p->c_bytes += j->j_chain.c_bytes;
        }
        memset(&j->j_chain, 0, sizeof j->j_chain);
        b->b_cmp_ready_ms = now_ms + b->b_interval_ms;
        snprintf(b->b_msg, sizeof b->b_msg, "%s", j->j_msg);
        return j->j_err;
    }
    /* keep one default-sized chunk: the next batch then starts without
     * an allocation */
    struct backend_chunk *x = j->j_chain.c_head;
    while (x) {
        struct backend_chunk *next = x->ch_next;
        if (!b->b_spare && x->ch_cap == BACKEND_CHUNK)
            b->b_spare = x;
        else
            mem_free(x);
        x = next;
    }
    memset(&j->j_chain, 0, sizeof j->j_chain);
    if (j->j_has_ci)
        b->b_ci_committed = j->j_ci;
    if (j->j_cmp && j->j_cmp == b->b_cmp) {
        if (j->j_cmp_done) {
            backend_compaction_free(b->b_cmp);
            b->b_cmp = NULL;
        } else {
            memcpy(b->b_cmp->cp_next, j->j_cmp_next, BACKEND_REV_LEN);
        }
        b->b_cmp_ready_ms = now_ms + BACKEND_COMPACTION_PAUSE_MS;
    }
    return 0;
}

int64_t backend_recorded_rev(const struct backend *b)
{
    return b->b_rev_recorded;
}


/* ---- values for mvcc ---- */

/* The KeyValue recorded under revision key rk in chain c, if there. */
static bool backend_chain_find(const struct backend_chain *c, int64_t main, const uint8_t *rk,
                               struct db_val *v)
{
    for (const struct backend_chunk *x = c->c_head; x; x = x->ch_next) {
        if (!x->ch_hi || main < x->ch_lo || main > x->ch_hi)
            continue;
        for (size_t off = 0; off < x->ch_len;) {
            const uint8_t *p = x->ch_data + off;
            uint32_t kl, vl;
            memcpy(&kl, p + 2, 4);
            memcpy(&vl, p + 6, 4);
            off += BACKEND_REC_HDR + kl + vl;
            if (p[0] == BK_KEY && p[1] == BACKEND_PUT && kl == BACKEND_REV_LEN &&
                !memcmp(p + BACKEND_REC_HDR, rk, BACKEND_REV_LEN)) {
                *v = (struct db_val){p + BACKEND_REC_HDR + kl, vl};
                return true;
            }
        }
    }
    return false;
}

/* A revision mvcc evicted is read back from the batch that recorded it
 * while that is not yet committed (mvcc evicts as soon as it is recorded:
 * its value need not be in memory twice), else from the file. */
int backend_value(void *ctx, struct pb_bytes key, int64_t main, int64_t sub, struct mem_arena *a,
                  struct api_kv *out)
{
    struct backend *b = ctx;
    struct db_bucket *kb;
    struct db_val v;
    uint8_t rk[BACKEND_REV_LEN];
    int rc = 0;
    backend_rev_key(rk, main, sub);
    if (backend_chain_find(&b->b_pending, main, rk, &v) ||
        (b->b_in_flight && backend_chain_find(&b->b_job.j_chain, main, rk, &v)))
        goto found;
    if (!b->b_value_tx)
        rc = db_begin(b->b_db, false, &b->b_value_tx);
    if (!rc)
        rc = db_bucket_get(b->b_value_tx, NULL, "key", 3, &kb);
    if (!rc)
        rc = db_get(kb, rk, sizeof rk, &v);
found:;
    struct api_kv kv;
    int pr = rc ? 0 : pb_decode(&api_kv_desc, v.p, v.len, &kv, a);
    if (rc == DB_ENOMEM || pr == PB_ERR_NOMEM)
        return -ERR_NOMEM;
    if (rc || pr < 0 || kv.mod_revision != main || kv.key.len != key.len ||
        memcmp(kv.key.p, key.p, key.len)) {
        /* etcd dies here; one request failing is enough */
        char text[128], fields[128];
        snprintf(text, sizeof text, "range cannot find rev (%" PRId64 ",%" PRId64 ")", main, sub);
        snprintf(fields, sizeof fields, "\"revision-main\":%" PRId64 ",\"revision-sub\":%" PRId64,
                 main, sub);
        log_line(LOG_ERROR, "mvcc/kvstore_txn.go:149", "mvcc", "range failed to find revision pair",
                 text, fields);
        return -ERR_CORRUPT;
    }
    *out = kv;
    /* the decoded bytes point into the file's mapping or a batch */
    out->value.p = kv.value.len ? mem_arena_dup(a, kv.value.p, kv.value.len) : NULL;
    return kv.value.len && !out->value.p ? -ERR_NOMEM : 0;
}

void backend_value_done(void *ctx)
{
    struct backend *b = ctx;
    if (b->b_value_tx) {
        db_rollback(b->b_value_tx);
        b->b_value_tx = NULL;
    }
}

/* ---- load ---- */

static int backend_corrupt(struct backend *b, const char *bucket, const uint8_t *k, size_t kl,
                           const char *why)
{
    char hex[96];
    backend_hexkey(hex, sizeof hex, k, kl);
    snprintf(b->b_msg, sizeof b->b_msg, "%s: bucket %s, key %s: %s", b->b_path, bucket, hex, why);
    return DB_ECORRUPT;
}

static int backend_load_meta(struct backend *b, struct db_tx *tx, int64_t *finished,
                             int64_t *scheduled, uint64_t *ci, bool *has_ci)
{
    static const char *const keys[] = {backend_finished_key, backend_sched_key};
    struct db_bucket *mb;
    struct db_val v;
    int rc = db_bucket_get(tx, NULL, "meta", 4, &mb);
    if (rc)
        return rc;
    for (int i = 0; i < 2; i++) {
        int64_t *out = i ? scheduled : finished;
        rc = db_get(mb, keys[i], strlen(keys[i]), &v);
        if (rc == DB_ENOTFOUND)
            continue;
        if (rc)
            return rc;
        if (v.len != BACKEND_REV_LEN)
            return backend_corrupt(b, "meta", (const uint8_t *)keys[i], strlen(keys[i]),
                                   "not a revision");
        *out = (int64_t)backend_get64(v.p);
    }
    rc = db_get(mb, backend_ci_key, strlen(backend_ci_key), &v);
    if (rc == DB_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    if (v.len != 8)
        return backend_corrupt(b, "meta", (const uint8_t *)backend_ci_key, strlen(backend_ci_key),
                               "not 8 bytes");
    *ci = backend_get64(v.p);
    *has_ci = true;
    return 0;
}

/* Every stored revision into m, checking what etcd's restore would trip
 * over or silently misread. */
static int backend_load_keys(struct backend *b, struct db_tx *tx, struct mvcc *m, int64_t *max_main)
{
    struct db_bucket *kb;
    struct db_cursor cu;
    struct db_val k, v;
    struct mem_arena a;
    int64_t pm = 0, ps = -1;
    int rc = db_bucket_get(tx, NULL, "key", 3, &kb);
    if (rc)
        return rc;
    mem_arena_init(&a, 0);
    db_cursor_init(&cu, tx, kb);
    for (rc = db_cursor_first(&cu, &k, &v); rc == 0; rc = db_cursor_next(&cu, &k, &v)) {
        bool tomb = k.len == BACKEND_REVT_LEN && k.p[BACKEND_REV_LEN] == 't';
        struct api_kv kv;
        if ((k.len != BACKEND_REV_LEN && !tomb) || k.p[8] != '_' || !v.p) {
            rc = backend_corrupt(b, "key", k.p, k.len, "not a revision key");
            break;
        }
        int64_t main = (int64_t)backend_get64(k.p), sub = (int64_t)backend_get64(k.p + 9);
        /* sorted keys give ascending revisions but for a revision stored
         * both live and as a tombstone */
        if (main < 1 || sub < 0 || backend_rev_cmp(main, sub, pm, ps) <= 0) {
            rc = backend_corrupt(b, "key", k.p, k.len, "revision below 1 or not above the last one");
            break;
        }
        mem_arena_reset(&a);
        int pr = pb_decode(&api_kv_desc, v.p, v.len, &kv, &a);
        if (pr == PB_ERR_NOMEM) {
            rc = DB_ENOMEM;
            break;
        }
        if (pr < 0 || !kv.key.len ||
            (!tomb && (kv.mod_revision != main || kv.version < 1 || kv.create_revision < 1 ||
                       kv.create_revision > main))) {
            rc = backend_corrupt(b, "key", k.p, k.len, "not a valid mvccpb.KeyValue");
            break;
        }
        if ((rc = mvcc_restore_rev(m, main, sub, &kv, tomb)) < 0) {
            rc = DB_ENOMEM;
            break;
        }
        pm = main;
        ps = sub;
    }
    mem_arena_free(&a);
    if (rc != DB_ENOTFOUND)
        return rc;
    *max_main = pm;
    return 0;
}

static int backend_count(struct db_tx *tx, struct db_bucket *bk, size_t *n)
{
    struct db_cursor cu;
    struct db_val k, v;
    int rc;
    *n = 0;
    db_cursor_init(&cu, tx, bk);
    for (rc = db_cursor_first(&cu, &k, &v); rc == 0; rc = db_cursor_next(&cu, &k, &v))
        (*n)++;
    return rc == DB_ENOTFOUND ? 0 : rc;
}

static int backend_load_members(struct backend *b, struct db_tx *tx, struct backend_state *st)
{
    struct db_bucket *bk;
    struct db_cursor cu;
    struct db_val k, v;
    size_t n;
    int rc;
    if ((rc = db_bucket_get(tx, NULL, "members", 7, &bk)) || (rc = backend_count(tx, bk, &n)))
        return rc;
    if (n) {
        st->members = mem_arena_zalloc(&st->bs_arena, n * sizeof *st->members);
        if (!st->members)
            return DB_ENOMEM;
        db_cursor_init(&cu, tx, bk);
        for (rc = db_cursor_first(&cu, &k, &v); rc == 0 && st->n_members < n;
             rc = db_cursor_next(&cu, &k, &v)) {
            struct member *mb = &st->members[st->n_members];
            if (!v.p || member_from_json(mb, (const char *)v.p, v.len, false) < 0)
                return backend_corrupt(b, "members", k.p, k.len, "not member JSON");
            st->n_members++;
        }
        if (rc && rc != DB_ENOTFOUND)
            return rc;
    }
    if ((rc = db_bucket_get(tx, NULL, "members_removed", 15, &bk)) || (rc = backend_count(tx, bk, &n)))
        return rc;
    if (!n)
        return 0;
    st->removed = mem_arena_zalloc(&st->bs_arena, n * sizeof *st->removed);
    if (!st->removed)
        return DB_ENOMEM;
    db_cursor_init(&cu, tx, bk);
    for (rc = db_cursor_first(&cu, &k, &v); rc == 0 && st->n_removed < n;
         rc = db_cursor_next(&cu, &k, &v)) {
        char hex[17];
        char *end;
        if (k.len > 16)
            return backend_corrupt(b, "members_removed", k.p, k.len, "not a member ID");
        memcpy(hex, k.p, k.len);
        hex[k.len] = 0;
        errno = 0;
        unsigned long long id = strtoull(hex, &end, 16);
        if (errno || end != hex + k.len || !k.len || hex[0] == '-' || hex[0] == '+' || hex[0] == ' ')
            return backend_corrupt(b, "members_removed", k.p, k.len, "not a member ID");
        st->removed[st->n_removed++] = id;
    }
    return rc == DB_ENOTFOUND ? 0 : rc;
}

static int backend_load_leases(struct backend *b, struct db_tx *tx, struct backend_state *st)
{
    struct db_bucket *bk;
    struct db_cursor cu;
    struct db_val k, v;
    struct mem_arena a;
    size_t n;
    int rc;
    if ((rc = db_bucket_get(tx, NULL, "lease", 5, &bk)) || (rc = backend_count(tx, bk, &n)))
        return rc;
    if (!n)
        return 0;
    st->leases = mem_arena_zalloc(&st->bs_arena, n * sizeof *st->leases);
    if (!st->leases)
        return DB_ENOMEM;
    mem_arena_init(&a, 0);
    db_cursor_init(&cu, tx, bk);
    for (rc = db_cursor_first(&cu, &k, &v); rc == 0 && st->n_leases < n;
         rc = db_cursor_next(&cu, &k, &v)) {
        struct api_lease_pb l;
        mem_arena_reset(&a);
        int pr = v.p ? pb_decode(&api_lease_pb_desc, v.p, v.len, &l, &a) : PB_ERR_WIRETYPE;
        if (pr < 0) {
            rc = pr == PB_ERR_NOMEM ? DB_ENOMEM
                                    : backend_corrupt(b, "lease", k.p, k.len, "not a leasepb.Lease");
            break;
        }
        /* etcd takes the ID from the value, not the key */
        st->leases[st->n_leases++] = (struct backend_lease){l.ID, l.TTL, l.RemainingTTL};
    }
    mem_arena_free(&a);
    return rc == DB_ENOTFOUND ? 0 : rc;
}

static int backend_load_misc(struct backend *b, struct db_tx *tx, struct backend_state *st)
{
    struct db_bucket *bk;
    struct db_cursor cu;
    struct db_val k, v;
    struct mem_arena a;
    size_t n;
    int rc;
    if ((rc = db_bucket_get(tx, NULL, "cluster", 7, &bk)))
        return rc;
    rc = db_get(bk, "clusterVersion", 14, &v);
    if (rc == 0) {
        if (v.len >= sizeof st->cluster_version)
            return backend_corrupt(b, "cluster", (const uint8_t *)"clusterVersion", 14, "too long");
        memcpy(st->cluster_version, v.p, v.len);
        st->cluster_version[v.len] = 0;
    } else if (rc != DB_ENOTFOUND) {
        return rc;
    }
    if ((rc = db_bucket_get(tx, NULL, "alarm", 5, &bk)) || (rc = backend_count(tx, bk, &n)))
        return rc;
    if (!n)
        return 0;
    st->alarms = mem_arena_zalloc(&st->bs_arena, n * sizeof *st->alarms);
    if (!st->alarms)
        return DB_ENOMEM;
    mem_arena_init(&a, 0);
    db_cursor_init(&cu, tx, bk);
    for (rc = db_cursor_first(&cu, &k, &v); rc == 0 && st->n_alarms < n;
         rc = db_cursor_next(&cu, &k, &v)) {
        mem_arena_reset(&a);
        int pr = pb_decode(&api_alarm_member_desc, k.p, k.len, &st->alarms[st->n_alarms], &a);
        if (pr < 0) {
            rc = pr == PB_ERR_NOMEM ? DB_ENOMEM
                                    : backend_corrupt(b, "alarm", k.p, k.len, "not an AlarmMember");
            break;
        }
        st->n_alarms++;
    }
    mem_arena_free(&a);
    return rc == DB_ENOTFOUND ? 0 : rc;
}

/* etcd's keyToLease: the lease of each key's newest revision, if live. */
static int backend_load_lease_keys(struct mvcc *m, struct backend_state *st)
{
    struct mem_arena a;
    struct api_kv *kvs;
    size_t n;
    int rc = DB_ENOMEM;
    mem_arena_init(&a, 0);
    if (mvcc_leased_keys(m, &a, &kvs, &n) < 0)
        goto out;
    rc = 0;
    if (!n)
        goto out;
    rc = DB_ENOMEM;
    st->lease_keys = mem_arena_alloc(&st->bs_arena, n * sizeof *st->lease_keys);
    if (!st->lease_keys)
        goto out;
    for (size_t i = 0; i < n; i++) {
        uint8_t *p = mem_arena_dup(&st->bs_arena, kvs[i].key.p, kvs[i].key.len);
        if (!p)
            goto out;
        st->lease_keys[i] = (struct backend_lease_key){{p, kvs[i].key.len}, kvs[i].lease};
        st->n_lease_keys++;
    }
    rc = 0;
out:
    mem_arena_free(&a);
    return rc;
}

int backend_load(struct backend *b, struct mvcc *m, struct backend_state *st)
{
    struct db_tx *tx;
    int64_t finished = -1, scheduled = 0, max_main = 0;
    uint64_t ci = 0;
    bool has_ci = false;
    memset(st, 0, sizeof *st);
    mem_arena_init(&st->bs_arena, 0);
    b->b_msg[0] = 0;
    int rc = db_begin(b->b_db, false, &tx);
    if (rc) {
        snprintf(b->b_msg, sizeof b->b_msg, "%s: begin read transaction: %s", b->b_path,
                 db_strerror(rc));
        return rc;
    }
    if ((rc = backend_load_meta(b, tx, &finished, &scheduled, &ci, &has_ci)) ||
        (rc = backend_load_keys(b, tx, m, &max_main)) || (rc = backend_load_members(b, tx, st)) ||
        (rc = backend_load_leases(b, tx, st)) || (rc = backend_load_misc(b, tx, st))) {
        if (!b->b_msg[0])
            snprintf(b->b_msg, sizeof b->b_msg, "%s: %s", b->b_path,
                     *db_tx_errmsg(tx) ? db_tx_errmsg(tx) : db_strerror(rc));
        db_rollback(tx);
        return rc;
    }
    db_rollback(tx);
    st->consistent_index = ci;
    b->b_has_ci = has_ci;
    b->b_ci = b->b_ci_committed = ci;

    /* store.restore: the compacted revision is the finished one; the current
     * revision the newest stored, raised to the compacted one when a
     * compaction removed every revision up to it */
    int64_t cur = max_main > finished ? max_main : finished;
    mvcc_restore_finish(m, cur, finished);
    cur = mvcc_rev(m);
    /* a compaction scheduled but not finished is redone (compactLockfree),
     * unless etcd's updateCompactRev would refuse it; 0 means none */
    if (scheduled != 0 && scheduled > finished && scheduled <= cur) {
        if (mvcc_compact(m, scheduled) < 0 || backend_record_compaction(b, m, scheduled) < 0) {
            snprintf(b->b_msg, sizeof b->b_msg, "%s: resuming compaction: out of memory", b->b_path);
            return DB_ENOMEM;
        }
    }
    if (backend_load_lease_keys(m, st) < 0) {
        snprintf(b->b_msg, sizeof b->b_msg, "%s: out of memory", b->b_path);
        return DB_ENOMEM;
    }
    return 0;
}

void backend_state_free(struct backend_state *st)
{
    for (size_t i = 0; i < st->n_members; i++)
        member_free(&st->members[i]);
    mem_arena_free(&st->bs_arena);
    memset(st, 0, sizeof *st);
}

/* ---- hashes ---- */

int backend_hash_prepare(struct backend *b, const struct mvcc *m, bool kv, int64_t rev,
                         struct backend_hash **out)
{
    *out = NULL;
    int64_t cur = mvcc_rev(m), cr = mvcc_compact_main_rev(m);
    if (kv) {
        /* store.HashByRev's checks; a negative rev passes both and hashes
         * nothing but the bucket name, as in etcd */
        if (rev > 0 && rev <= cr)
            return -ERR_COMPACTED;
        if (rev > 0 && rev > cur)
            return -ERR_FUTURE_REV;
        if (rev == 0)
            rev = cur;
    }
    struct backend_hash *h = mem_calloc(1, sizeof *h);
    if (!h)
        return -ERR_NOMEM;
    h->bh_rev = cur;
    h->bh_compact_rev = cr;
    h->bh_b = b;
    h->bh_kv = kv;
    h->bh_at = rev;
    h->bh_seq = b->b_seq;
    if (kv) {
        /* only the kept revisions at or below the compacted one matter: the
         * rest of the bucket is hashed whatever Keep says */
        size_t all;
        if (mvcc_keep(m, rev, cr, &h->bh_keep, &h->bh_n_keep, &all) < 0) {
            mem_free(h);
            return -ERR_NOMEM;
        }
        h->bh_keep_any = all > 0;
    }
    *out = h;
    return 0;
}

/* backend.Hash(DefaultIgnores). */
static int backend_hash_all(struct db_tx *tx, uint32_t *crc, char *err, size_t cap)
{
    struct db_cursor top, cu;
    struct db_val name, v, k;
    int rc;
    db_cursor_init(&top, tx, NULL);
    for (rc = db_cursor_first(&top, &name, &v); rc == 0; rc = db_cursor_next(&top, &name, &v)) {
        struct db_bucket *bk;
        if ((rc = db_bucket_get(tx, NULL, name.p, name.len, &bk))) {
            backend_fmt(err, cap, "cannot get hash of bucket %.*s", (int)name.len,
                        (const char *)name.p);
            return rc == DB_EINCOMPAT ? DB_ECORRUPT : rc;
        }
        bool meta = name.len == 4 && !memcmp(name.p, "meta", 4);
        *crc = crc32c_update(*crc, name.p, name.len);
        db_cursor_init(&cu, tx, bk);
        for (rc = db_cursor_first(&cu, &k, &v); rc == 0; rc = db_cursor_next(&cu, &k, &v)) {
            if (meta && k.len == strlen(backend_ci_key) && !memcmp(k.p, backend_ci_key, k.len))
                continue;
            *crc = crc32c_update(*crc, k.p, k.len);
            *crc = crc32c_update(*crc, v.p, v.len);
        }
        if (rc != DB_ENOTFOUND)
            return rc;
    }
    return rc == DB_ENOTFOUND ? 0 : rc;
}

/* store.HashByRev's walk of the key bucket. */
static int backend_hash_keys(const struct backend_hash *h, struct db_tx *tx, uint32_t *crc, char *err,
                             size_t cap)
{
    struct db_bucket *kb;
    struct db_cursor cu;
    struct db_val k, v;
    int rc = db_bucket_get(tx, NULL, "key", 3, &kb);
    if (rc)
        return rc;
    *crc = crc32c_update(0, "key", 3);
    db_cursor_init(&cu, tx, kb);
    for (rc = db_cursor_first(&cu, &k, &v); rc == 0; rc = db_cursor_next(&cu, &k, &v)) {
        if (k.len < BACKEND_REV_LEN) {
            char hex[96];
            backend_hexkey(hex, sizeof hex, k.p, k.len);
            backend_fmt(err, cap, "bucket key: key %s is not a revision", hex);
            return DB_ECORRUPT;
        }
        int64_t main = (int64_t)backend_get64(k.p), sub = (int64_t)backend_get64(k.p + 9);
        if (backend_rev_cmp(main, sub, h->bh_at + 1, 0) >= 0)
            continue;
        /* revisions a compaction is still deleting are skipped */
        if (backend_rev_cmp(main, sub, h->bh_compact_rev + 1, 0) < 0 && h->bh_keep_any &&
            !backend_kept(h->bh_keep, h->bh_n_keep, main, sub))
            continue;
        *crc = crc32c_update(*crc, k.p, k.len);
        *crc = crc32c_update(*crc, v.p, v.len);
    }
    return rc == DB_ENOTFOUND ? 0 : rc;
}

int backend_hash_run(struct backend_hash *h)
{
    struct backend *b = h->bh_b;
    struct db_tx *tx;
    uint32_t crc = 0;
    h->bh_err[0] = 0;
    if (b->b_disk_seq < h->bh_seq) {
        snprintf(h->bh_err, sizeof h->bh_err, "%s: what the hash covers is not committed", b->b_path);
        return DB_EBUSY;
    }
    int rc = db_begin(b->b_db, false, &tx);
    if (rc) {
        snprintf(h->bh_err, sizeof h->bh_err, "%s: begin read transaction: %s", b->b_path,
                 db_strerror(rc));
        return rc;
    }
    rc = h->bh_kv ? backend_hash_keys(h, tx, &crc, h->bh_err, sizeof h->bh_err)
                  : backend_hash_all(tx, &crc, h->bh_err, sizeof h->bh_err);
    if (rc && !h->bh_err[0])
        snprintf(h->bh_err, sizeof h->bh_err, "%s: %s", b->b_path,
                 *db_tx_errmsg(tx) ? db_tx_errmsg(tx) : db_strerror(rc));
    db_rollback(tx);
    if (rc == 0)
        h->bh_hash = crc;
    return rc;
}

void backend_hash_free(struct backend_hash *h)
{
    if (!h)
        return;
    mem_free(h->bh_keep);
    mem_free(h);
}

/* ---- whole-db operations ---- */

int backend_snapshot(struct backend *b, int fd, uint64_t *size, char *err, size_t errlen)
{
    struct db_tx *tx;
    uint64_t written = 0;
    uint8_t *buf = NULL;
    int rc;
    if (size)
        *size = 0;
    off_t start = lseek(fd, 0, SEEK_CUR);
    if (start < 0) {
        backend_fmt(err, errlen, "snapshot: lseek: %s", strerror(errno));
        return DB_EIO;
    }
    if ((rc = db_begin(b->b_db, false, &tx))) {
        backend_fmt(err, errlen, "%s: begin read transaction: %s", b->b_path, db_strerror(rc));
        return rc;
    }
    rc = db_tx_write_to(tx, fd, &written);
    if (rc)
        backend_fmt(err, errlen, "%s", *db_tx_errmsg(tx) ? db_tx_errmsg(tx) : db_strerror(rc));
    db_rollback(tx);
    if (rc)
        return rc;

    /* Maintenance.Snapshot appends the sha256 of what it sent; `etcdctl
     * snapshot restore` checks it.  The bytes are read back from the file:
     * db.c writes straight to the fd. */
    br_sha256_context sha;
    uint8_t digest[br_sha256_SIZE];
    br_sha256_init(&sha);
    if (!(buf = mem_alloc(BACKEND_CHUNK))) {
        backend_fmt(err, errlen, "snapshot: out of memory");
        return DB_ENOMEM;
    }
    for (uint64_t off = 0; off < written;) {
        size_t want = written - off < BACKEND_CHUNK ? (size_t)(written - off) : BACKEND_CHUNK;
        ssize_t r = pread(fd, buf, want, start + (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            backend_fmt(err, errlen, "snapshot: read back: %s", r < 0 ? strerror(errno) : "short file");
            mem_free(buf);
            return DB_EIO;
        }
        br_sha256_update(&sha, buf, (size_t)r);
        off += (uint64_t)r;
    }
    mem_free(buf);
    br_sha256_out(&sha, digest);
    for (size_t done = 0; done < sizeof digest;) {
        ssize_t w = write(fd, digest + done, sizeof digest - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            backend_fmt(err, errlen, "snapshot: write: %s", strerror(e));
            return e == ENOSPC || e == EFBIG || e == EDQUOT ? DB_ENOSPC : DB_EIO;
        }
        done += (size_t)w;
    }
    if (size)
        *size = written + sizeof digest;
    return 0;
}

int backend_defrag(struct backend *b, char *err, size_t errlen)
{
    int rc = db_defrag(b->b_db);
    if (rc)
        backend_fmt(err, errlen, "%s", *db_errmsg(b->b_db) ? db_errmsg(b->b_db) : db_strerror(rc));
    return rc;
}

int64_t backend_size(struct backend *b)
{
    return db_size(b->b_db);
}

int64_t backend_size_in_use(struct backend *b)
{
    return db_size_in_use(b->b_db);
}
