/* test_backend.c - backend.c against etcd 3.4's backend.
 *
 * Random mvcc histories (puts, deletes, range deletes, txns, compactions,
 * leases) recorded and committed in batches, with restarts in between: each
 * restart loads the db into a new store that must read, compact and write
 * exactly as a reference store that never restarted, at every revision
 * kept, and the file must hold exactly the revisions the reference keeps,
 * byte for byte as etcd encodes them; HashKV is the same before and after.
 * Also the other buckets, the commit policy, ENOSPC (RLIMIT_FSIZE) keeping
 * the batch, allocation failures, snapshots, defrag, and interop with real
 * etcd 3.4.23 both ways (skipped with a message when /usr/bin/etcd is
 * missing): its db loaded by us against what etcdctl read, its hashkv and
 * Maintenance.Hash, and a db we write from the same history against its
 * snapshot (etcdctl snapshot status), restored and served by etcd. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>
#include <bearssl.h>

#include "backend.h"
#include "crc32c.h"
#include "err.h"
#include "json.h"

/* ---- helpers ---- */

static char tmpdir[256];

static int setup_dir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_backend.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *tpath(const char *name)
{
    static char buf[8][512];
    static int i;
    char *p = buf[i++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", tmpdir, name);
    return p;
}

static struct backend *xopen(const char *path, int cmp_limit)
{
    struct backend_config cfg = {.bc_db_flags = DB_NO_SYNC, .bc_compaction_batch_limit = cmp_limit};
    struct backend *b;
    char err[512];
    int rc = backend_open(path, &cfg, &b, err, sizeof err);
    if (rc)
        print_error("backend_open: %s\n", err);
    assert_int_equal(rc, 0);
    return b;
}

static int64_t now_ms = 1000;

/* One prepare/run/finish on this thread; 1 when there was nothing to do. */
static int commit_once(struct backend *b)
{
    struct backend_job *j = backend_commit_prepare(b, now_ms);
    if (!j)
        return 1;
    backend_commit_run(j);
    return backend_commit_finish(b, j, now_ms);
}

static void commit_all(struct backend *b)
{
    while (backend_pending(b)) {
        int rc = commit_once(b);
        if (rc)
            print_error("commit: %s\n", backend_errmsg(b));
        assert_int_equal(rc, 0);
    }
}

static struct mvcc *xload(struct backend *b, struct backend_state *st)
{
    struct mvcc *m = mvcc_new();
    assert_non_null(m);
    int rc = backend_load(b, m, st);
    if (rc)
        print_error("load: %s\n", backend_errmsg(b));
    assert_int_equal(rc, 0);
    return m;
}

static uint32_t hash_of(struct backend *b, const struct mvcc *m, bool kv, int64_t rev)
{
    struct backend_hash *h;
    assert_int_equal(backend_hash_prepare(b, m, kv, rev, &h), 0);
    int rc = backend_hash_run(h);
    if (rc)
        print_error("hash: %s\n", h->bh_err);
    assert_int_equal(rc, 0);
    uint32_t v = h->bh_hash;
    backend_hash_free(h);
    return v;
}

static struct pb_bytes bs(const char *s)
{
    return (struct pb_bytes){(const uint8_t *)s, strlen(s)};
}

static bool bytes_eq(struct pb_bytes a, struct pb_bytes b)
{
    return a.len == b.len && (!a.len || !memcmp(a.p, b.p, a.len));
}

static void put(struct mvcc *m, struct backend *b, const char *k, const char *v, int64_t lease)
{
    struct mem_arena a;
    mem_arena_init(&a, 0);
    struct api_put_req req = {.key = bs(k), .value = bs(v), .lease = lease};
    struct api_put_resp resp = {0};
    assert_int_equal(mvcc_put(m, &req, &a, &resp), 0);
    if (b)
        assert_int_equal(backend_record_changes(b, m), 0);
    mem_arena_free(&a);
}

static void del(struct mvcc *m, struct backend *b, const char *k, const char *end)
{
    struct mem_arena a;
    mem_arena_init(&a, 0);
    struct api_delete_req req = {.key = bs(k), .range_end = bs(end)};
    struct api_delete_resp resp = {0};
    assert_int_equal(mvcc_delete(m, &req, &a, &resp), 0);
    if (b)
        assert_int_equal(backend_record_changes(b, m), 0);
    mem_arena_free(&a);
}

static void compact(struct mvcc *m, struct backend *b, int64_t rev)
{
    assert_int_equal(mvcc_compact(m, rev), 0);
    if (b)
        assert_int_equal(backend_record_compaction(b, m, rev), 0);
}

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static unsigned rn(uint64_t *s, unsigned n)
{
    return (unsigned)(rnd(s) % n);
}

/* ---- comparing stores ---- */

static void same_kv(const struct api_kv *x, const struct api_kv *y)
{
    assert_true(bytes_eq(x->key, y->key));
    assert_true(bytes_eq(x->value, y->value));
    assert_int_equal(x->create_revision, y->create_revision);
    assert_int_equal(x->mod_revision, y->mod_revision);
    assert_int_equal(x->version, y->version);
    assert_int_equal(x->lease, y->lease);
}

static int range_all(struct mvcc *m, int64_t rev, struct mem_arena *a, struct api_range_resp *resp)
{
    struct api_range_req req = {.key = {(const uint8_t *)"", 1}, .range_end = {(const uint8_t *)"", 1},
                                .revision = rev};
    memset(resp, 0, sizeof *resp);
    return mvcc_range(m, &req, a, resp);
}

/* Every key at every revision still readable, and the event history. */
static void same_store(struct mvcc *x, struct mvcc *y)
{
    struct mem_arena a;
    mem_arena_init(&a, 0);
    assert_int_equal(mvcc_rev(x), mvcc_rev(y));
    assert_int_equal(mvcc_compact_main_rev(x), mvcc_compact_main_rev(y));
    int64_t from = mvcc_compact_rev(x) > 1 ? mvcc_compact_rev(x) : 1;
    for (int64_t r = from; r <= mvcc_rev(x); r++) {
        struct api_range_resp rx, ry;
        mem_arena_reset(&a);
        assert_int_equal(range_all(x, r, &a, &rx), 0);
        assert_int_equal(range_all(y, r, &a, &ry), 0);
        assert_int_equal(rx.n_kvs, ry.n_kvs);
        for (size_t i = 0; i < rx.n_kvs; i++)
            same_kv(&rx.kvs[i], &ry.kvs[i]);
    }
    if (mvcc_compact_main_rev(x) > 1) {
        struct api_range_resp r;
        assert_int_equal(range_all(y, mvcc_compact_rev(x) - 1, &a, &r), -ERR_COMPACTED);
    }
    struct mvcc_event *ex, *ey;
    size_t nx, ny;
    int64_t next_x, next_y;
    int64_t ev_from = mvcc_compact_main_rev(x) < 1 ? 1 : mvcc_compact_main_rev(x);
    mem_arena_reset(&a);
    assert_int_equal(mvcc_events_since(x, bs("\x01"), (struct pb_bytes){(const uint8_t *)"", 1}, ev_from,
                                       1 << 16, 0, &a, &ex, &nx, &next_x), 0);
    assert_int_equal(mvcc_events_since(y, bs("\x01"), (struct pb_bytes){(const uint8_t *)"", 1}, ev_from,
                                       1 << 16, 0, &a, &ey, &ny, &next_y), 0);
    assert_int_equal(nx, ny);
    assert_int_equal(next_x, next_y);
    for (size_t i = 0; i < nx; i++) {
        assert_int_equal(ex[i].type, ey[i].type);
        assert_int_equal(ex[i].sub, ey[i].sub);
        same_kv(&ex[i].kv, &ey[i].kv);
        assert_int_equal(ex[i].has_prev, ey[i].has_prev);
        if (ex[i].has_prev)
            same_kv(&ex[i].prev, &ey[i].prev);
    }
    mem_arena_free(&a);
}

static void revkey(uint8_t *out, int64_t main, int64_t sub)
{
    for (int i = 0; i < 8; i++) {
        out[i] = (uint8_t)((uint64_t)main >> (56 - 8 * i));
        out[9 + i] = (uint8_t)((uint64_t)sub >> (56 - 8 * i));
    }
    out[8] = '_';
}

/* The key bucket of the closed db at path holds exactly what m keeps, with
 * etcd's bytes: below the compacted revision C the newest revision of each
 * key live at C, above it every revision (tombstones as key-only
 * KeyValues under a 't' key). */
static void db_matches(const char *path, struct mvcc *m)
{
    struct db *db;
    struct db_tx *tx;
    struct db_bucket *kb;
    struct db_cursor cu;
    struct db_val k, v;
    struct mem_arena a;
    char err[256];
    mem_arena_init(&a, 0);
    assert_int_equal(db_open(path, DB_NO_FREELIST_SYNC, &db, err, sizeof err), 0);
    assert_int_equal(db_begin(db, false, &tx), 0);
    assert_int_equal(db_bucket_get(tx, NULL, "key", 3, &kb), 0);
    db_cursor_init(&cu, tx, kb);
    int rc = db_cursor_first(&cu, &k, &v);

    int64_t c = mvcc_compact_main_rev(m);
    struct api_range_resp at_c = {0};
    if (c > 0)
        assert_int_equal(range_all(m, c, &a, &at_c), 0);
    struct mvcc_revision *keep;
    size_t n_keep;
    assert_int_equal(mvcc_keep(m, c, c, &keep, &n_keep, NULL), 0);
    for (size_t i = 0; i < n_keep; i++) {
        uint8_t want[17];
        revkey(want, keep[i].main, keep[i].sub);
        assert_int_equal(rc, 0);
        assert_int_equal(k.len, 17);
        assert_memory_equal(k.p, want, 17);
        struct api_kv kv;
        assert_int_equal(pb_decode(&api_kv_desc, v.p, v.len, &kv, &a), 0);
        bool found = false;
        for (size_t j = 0; j < at_c.n_kvs; j++)
            if (bytes_eq(at_c.kvs[j].key, kv.key)) {
                same_kv(&at_c.kvs[j], &kv);
                found = true;
            }
        assert_true(found);
        rc = db_cursor_next(&cu, &k, &v);
    }
    mem_free(keep);

    struct mvcc_event *ev;
    size_t n;
    int64_t next;
    assert_int_equal(mvcc_events_since(m, bs("\x01"), (struct pb_bytes){(const uint8_t *)"", 1}, c + 1,
                                       1 << 16, 0, &a, &ev, &n, &next), 0);
    for (size_t i = 0; i < n; i++) {
        uint8_t want[18];
        revkey(want, ev[i].kv.mod_revision, ev[i].sub);
        want[17] = 't';
        bool tomb = ev[i].type == API_EVENT_DELETE;
        struct api_kv kv = tomb ? (struct api_kv){.key = ev[i].kv.key} : ev[i].kv;
        struct mem_buf enc = {0};
        assert_int_equal(pb_encode(&api_kv_desc, &kv, &enc), 0);
        assert_int_equal(rc, 0);
        assert_int_equal(k.len, tomb ? 18 : 17);
        assert_memory_equal(k.p, want, k.len);
        assert_int_equal(v.len, enc.len);
        assert_memory_equal(v.p, enc.data, enc.len);
        mem_buf_free(&enc);
        rc = db_cursor_next(&cu, &k, &v);
    }
    assert_int_equal(rc, DB_ENOTFOUND);
    db_rollback(tx);
    db_close(db);
    mem_arena_free(&a);
}

/* ---- random histories ---- */

static void rkey(uint64_t *s, char *out)
{
    if (rn(s, 10) == 0)
        snprintf(out, 64, "/registry/pods/default/k%02u-%s", rn(s, 30), "long-enough-to-share-a-prefix");
    else
        snprintf(out, 64, "k%02u", rn(s, 30));
}

static struct pb_bytes rvalue(uint64_t *s, struct mem_arena *a)
{
    unsigned kind = rn(s, 20);
    size_t n = kind == 0 ? 0 : kind == 1 ? 5000 + rn(s, 3000) : rn(s, 40);
    uint8_t *p = mem_arena_alloc(a, n + 1);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)rnd(s);
    return (struct pb_bytes){p, n};
}

static int64_t rlease(uint64_t *s)
{
    static const int64_t leases[] = {0, 0, 0, 0, 0x1234, 7, -5, INT64_MAX};
    return leases[rn(s, 8)];
}

static struct pb_bytes dupkey(struct mem_arena *a, const char *k)
{
    size_t n = strlen(k);
    uint8_t *p = mem_arena_dup(a, k, n);
    assert_non_null(p);
    return (struct pb_bytes){p, n};
}

/* One random write applied to every store in ms (same result required);
 * its changes recorded from ms[0]. */
static void random_op(struct mvcc **ms, size_t nm, struct backend *b, uint64_t *s)
{
    struct mem_arena a;
    char k1[64], k2[64];
    mem_arena_init(&a, 0);
    unsigned kind = rn(s, 100);
    int rc0 = 0;
    int64_t rev0 = 0;
    if (kind < 95) {
        struct api_put_req put_req = {0};
        struct api_delete_req del_req = {0};
        struct api_txn_req txn = {0};
        rkey(s, k1);
        rkey(s, k2);
        if (kind < 50) {
            put_req = (struct api_put_req){.key = dupkey(&a, k1), .value = rvalue(s, &a), .lease = rlease(s)};
            if (rn(s, 20) == 0)
                put_req.ignore_lease = true, put_req.lease = 0;
        } else if (kind < 62) {
            del_req.key = dupkey(&a, k1);
        } else if (kind < 70) {
            if (strcmp(k1, k2) > 0) {
                char t[64];
                memcpy(t, k1, sizeof t);
                memcpy(k1, k2, sizeof t);
                memcpy(k2, t, sizeof t);
            }
            del_req.key = dupkey(&a, k1);
            del_req.range_end = rn(s, 5) ? dupkey(&a, k2) : (struct pb_bytes){(const uint8_t *)"", 1};
        } else {
            /* a txn: a compare on one key, then puts and deletes of
             * distinct keys on either branch */
            struct api_compare *cmp = mem_arena_zalloc(&a, sizeof *cmp);
            cmp->key = dupkey(&a, k1);
            cmp->target = API_CMP_VERSION;
            cmp->result = API_CMP_GREATER;
            cmp->has_version = true;
            cmp->version = rn(s, 3);
            txn.compare = cmp;
            txn.n_compare = 1;
            for (int br = 0; br < 2; br++) {
                size_t n = rn(s, 4);
                struct api_request_op *ops = mem_arena_zalloc(&a, (n + 1) * sizeof *ops);
                for (size_t i = 0; i < n; i++) {
                    char k[64];
                    snprintf(k, sizeof k, "t%zu-%02u", i, rn(s, 10));
                    if (rn(s, 3)) {
                        struct api_put_req *p = mem_arena_zalloc(&a, sizeof *p);
                        *p = (struct api_put_req){.key = dupkey(&a, k), .value = rvalue(s, &a),
                                                  .lease = rlease(s)};
                        ops[i].request_put = p;
                    } else {
                        struct api_delete_req *d = mem_arena_zalloc(&a, sizeof *d);
                        d->key = dupkey(&a, k);
                        ops[i].request_delete_range = d;
                    }
                }
                if (br == 0) {
                    txn.success = ops;
                    txn.n_success = n;
                } else {
                    txn.failure = ops;
                    txn.n_failure = n;
                }
            }
        }
        for (size_t i = nm; i-- > 0;) {
            struct api_header hdr = {0};
            int rc;
            if (kind < 50) {
                struct api_put_resp resp = {.header = &hdr};
                rc = mvcc_put(ms[i], &put_req, &a, &resp);
            } else if (kind < 70) {
                struct api_delete_resp resp = {.header = &hdr};
                rc = mvcc_delete(ms[i], &del_req, &a, &resp);
            } else {
                struct api_txn_resp resp = {.header = &hdr};
                rc = mvcc_txn(ms[i], &txn, &a, &resp);
            }
            if (i == nm - 1) {
                rc0 = rc;
                rev0 = hdr.revision;
            }
            assert_int_equal(rc, rc0);
            assert_int_equal(hdr.revision, rev0);
        }
        if (rc0 == 0 && b)
            assert_int_equal(backend_record_changes(b, ms[0]), 0);
    } else {
        int64_t lo = mvcc_compact_main_rev(ms[0]) + 1, cur = mvcc_rev(ms[0]);
        if (lo <= cur) {
            int64_t rev = lo + (int64_t)rn(s, (unsigned)(cur - lo + 1));
            for (size_t i = 0; i < nm; i++)
                assert_int_equal(mvcc_compact(ms[i], rev), 0);
            if (b)
                assert_int_equal(backend_record_compaction(b, ms[0], rev), 0);
        }
    }
    mem_arena_free(&a);
}

/* A reference store runs the whole history; the live store is replaced at
 * every restart by what the db loads.  Restarts come after a full commit,
 * or (when a compaction runs) after only its first batch: the load must
 * then finish the compaction. */
static void test_random_restarts(void **state)
{
    (void)state;
    int restarts_mid_compaction = 0;
    for (uint64_t seed = 1; seed <= 3; seed++) {
        uint64_t s = seed * 0x9E3779B97F4A7C15ull;
        char name[32];
        snprintf(name, sizeof name, "random%" PRIu64 ".db", seed);
        const char *path = tpath(name);
        struct backend *b = xopen(path, 4);
        struct mvcc *ref = mvcc_new(), *live = mvcc_new();
        uint64_t ci = 0;
        int restarts = 0;
        for (int step = 0; step < 600; step++) {
            struct mvcc *ms[2] = {live, ref};
            random_op(ms, 2, b, &s);
            backend_record_consistent_index(b, ++ci);
            now_ms += 7;
            if (backend_commit_due(b, now_ms) || rn(&s, 8) == 0)
                assert_true(commit_once(b) <= 1);
            if (step % 97 != 96)
                continue;
            /* every record is committed; a crash may leave the running
             * compaction with batches to go */
            if (rn(&s, 2))
                assert_true(commit_once(b) <= 1);
            else
                commit_all(b);
            bool mid = backend_pending(b);
            uint32_t h_live = hash_of(b, live, true, 0), h_ref = hash_of(b, ref, true, 0);
            assert_int_equal(h_live, h_ref);
            int64_t at = (mvcc_compact_rev(ref) + mvcc_rev(ref)) / 2 + 1;
            uint32_t h_mid = hash_of(b, ref, true, at), h_all = hash_of(b, ref, false, 0);
            backend_close(b);
            if (!mid)
                db_matches(path, ref);

            b = xopen(path, 4);
            struct backend_state st;
            struct mvcc *m = xload(b, &st);
            assert_int_equal(st.consistent_index, ci);
            assert_int_equal(backend_pending(b), mid);
            restarts_mid_compaction += mid;
            /* the resumed compaction's scheduledCompactRev must be
             * committed before a hash */
            assert_true(commit_once(b) <= 1);
            same_store(ref, m);
            assert_int_equal(hash_of(b, m, true, 0), h_ref);
            assert_int_equal(hash_of(b, m, true, at), h_mid);
            if (!mid)
                assert_int_equal(hash_of(b, m, false, 0), h_all);
            backend_state_free(&st);
            mvcc_free(live);
            live = m;
            restarts++;
        }
        commit_all(b);
        backend_close(b);
        db_matches(path, ref);
        b = xopen(path, 4);
        struct backend_state st;
        struct mvcc *m = xload(b, &st);
        same_store(ref, m);
        same_store(ref, live);
        backend_state_free(&st);
        backend_close(b);
        mvcc_free(m);
        mvcc_free(live);
        mvcc_free(ref);
        assert_true(restarts >= 5);
    }
    print_message("%d restarts in the middle of a compaction\n", restarts_mid_compaction);
    assert_true(restarts_mid_compaction > 0);
}

/* A compaction stopped after its first batch (a crash), resumed by load. */
static void test_compaction_resume(void **state)
{
    (void)state;
    const char *path = tpath("resume.db");
    struct backend *b = xopen(path, 2);
    struct mvcc *ref = mvcc_new();
    char k[16];
    for (int i = 0; i < 20; i++) {
        snprintf(k, sizeof k, "k%d", i % 6);
        put(ref, b, k, "v", 0);
    }
    del(ref, b, "k1", "");
    commit_all(b);
    compact(ref, b, 15);
    assert_int_equal(backend_commit_deadline(b), INT64_MIN);
    assert_int_equal(commit_once(b), 0);
    assert_true(backend_pending(b)); /* more batches to go */
    backend_close(b);

    /* the db says scheduled 15, not finished */
    b = xopen(path, 2);
    struct backend_state st;
    struct mvcc *m = xload(b, &st);
    same_store(ref, m);
    assert_true(backend_pending(b));
    assert_int_equal(backend_commit_deadline(b), INT64_MIN);
    int commits = 0;
    while (backend_pending(b)) {
        assert_int_equal(commit_once(b), 0);
        commits++;
        /* between batches the compactor pauses */
        if (backend_pending(b)) {
            assert_int_equal(backend_commit_deadline(b), now_ms + BACKEND_COMPACTION_PAUSE_MS);
            assert_false(backend_commit_due(b, now_ms));
        }
    }
    assert_true(commits >= 5);
    backend_close(b);
    db_matches(path, ref);
    backend_state_free(&st);
    mvcc_free(m);
    mvcc_free(ref);
}

/* A compaction recorded while a commit runs a batch of an older one
 * replaces it once that commit is done. */
static void test_compaction_replaced(void **state)
{
    (void)state;
    const char *path = tpath("replaced.db");
    struct backend *b = xopen(path, 3);
    struct mvcc *ref = mvcc_new();
    char k[16];
    for (int i = 0; i < 40; i++) {
        snprintf(k, sizeof k, "k%d", i % 7);
        put(ref, b, k, i % 3 ? "v" : "", i % 5 ? 0 : 77);
        if (i % 9 == 8)
            del(ref, b, "k2", "k4");
    }
    commit_all(b);
    compact(ref, b, 20);
    struct backend_job *j = backend_commit_prepare(b, now_ms);
    assert_non_null(j);
    put(ref, b, "late", "1", 0);
    compact(ref, b, 30);
    backend_commit_run(j);
    assert_int_equal(backend_commit_finish(b, j, now_ms), 0);
    assert_int_equal(backend_commit_deadline(b), INT64_MIN);
    commit_all(b);
    backend_close(b);
    db_matches(path, ref);
    b = xopen(path, 3);
    struct backend_state st;
    struct mvcc *m = xload(b, &st);
    assert_false(backend_pending(b));
    same_store(ref, m);
    backend_state_free(&st);
    backend_close(b);
    mvcc_free(m);
    mvcc_free(ref);
}

/* HashKV's revision checks, and a hash refused until what it covers is
 * committed. */
static void test_hash_rules(void **state)
{
    (void)state;
    const char *path = tpath("hashrules.db");
    struct backend *b = xopen(path, 0);
    struct mvcc *m = mvcc_new();
    struct backend_hash *h;
    for (int i = 0; i < 6; i++)
        put(m, b, i % 2 ? "x" : "y", "v", 0);
    commit_all(b);
    uint32_t empty = crc32c_update(0, "key", 3);
    /* before any compaction etcd's compactMainRev is -1 */
    assert_int_equal(backend_hash_prepare(b, m, true, 0, &h), 0);
    assert_int_equal(h->bh_compact_rev, -1);
    assert_int_equal(h->bh_rev, 7);
    backend_hash_free(h);
    assert_int_equal(backend_hash_prepare(b, m, true, 8, &h), -ERR_FUTURE_REV);
    assert_int_equal(hash_of(b, m, true, -1), empty);
    assert_true(hash_of(b, m, true, 1) == empty);
    assert_true(hash_of(b, m, true, 2) != empty);
    compact(m, b, 4);
    commit_all(b);
    assert_int_equal(backend_hash_prepare(b, m, true, 4, &h), -ERR_COMPACTED);
    assert_int_equal(backend_hash_prepare(b, m, true, 5, &h), 0);
    assert_int_equal(h->bh_compact_rev, 4);
    assert_int_equal(backend_hash_run(h), 0);
    backend_hash_free(h);
    /* recorded, not committed */
    put(m, b, "z", "1", 0);
    assert_int_equal(backend_hash_prepare(b, m, false, 0, &h), 0);
    assert_int_equal(backend_hash_run(h), DB_EBUSY);
    assert_true(strlen(h->bh_err) > 0);
    /* the commit queued before it makes it good */
    assert_int_equal(commit_once(b), 0);
    assert_int_equal(backend_hash_run(h), 0);
    backend_hash_free(h);
    backend_close(b);
    mvcc_free(m);
}

/* ---- the other buckets ---- */

static void test_meta_members_leases(void **state)
{
    (void)state;
    const char *path = tpath("meta.db");
    struct backend *b = xopen(path, 0);
    struct backend_state st;
    struct mvcc *m = xload(b, &st);
    assert_int_equal(st.consistent_index, 0);
    assert_int_equal(st.n_members, 0);
    assert_string_equal(st.cluster_version, "");
    backend_state_free(&st);

    struct member m1, m2;
    const char *p1[] = {"http://127.0.0.1:2380"}, *c1[] = {"http://127.0.0.1:2379"};
    const char *p2[] = {"http://10.0.0.2:2380", "http://10.0.0.3:2380"};
    assert_int_equal(member_init(&m1, 0xbdae9bbc11dd390dull, "default", p1, 1, c1, 1), 0);
    assert_int_equal(member_init(&m2, 0x1ull, "", p2, 2, NULL, 0), 0);
    m2.is_learner = true;
    assert_int_equal(backend_record_member(b, &m1), 0);
    assert_int_equal(backend_record_member(b, &m2), 0);
    assert_int_equal(backend_record_member_removed(b, 0x1), 0);
    assert_int_equal(backend_record_member_removed(b, 0xfeedull), 0);
    assert_int_equal(backend_record_cluster_version(b, "3.4.0"), 0);
    assert_int_equal(backend_record_lease(b, 0x694d7c8c3b3f5e0aLL, 600, 0), 0);
    assert_int_equal(backend_record_lease(b, 5, 10, 0), 0);
    assert_int_equal(backend_record_lease(b, -3, 2, 0), 0);
    assert_int_equal(backend_record_lease(b, 5, 10, 7), 0); /* a checkpoint */
    assert_int_equal(backend_record_lease_revoked(b, -3), 0);
    assert_int_equal(backend_record_alarm(b, 0xbdae9bbc11dd390dull, 1, true), 0);
    assert_int_equal(backend_record_alarm(b, 2, 2, true), 0);
    assert_int_equal(backend_record_alarm(b, 2, 2, false), 0);
    assert_int_equal(backend_record_alarm(b, 0, 0, true), DB_EINVAL);
    put(m, b, "a", "1", 5);
    put(m, b, "b", "2", 5);
    put(m, b, "c", "3", 0x694d7c8c3b3f5e0aLL);
    put(m, b, "b", "2", 0);
    put(m, b, "d", "4", 99); /* a lease the table does not have */
    del(m, b, "d", "");
    put(m, b, "e", "5", 99);
    backend_record_consistent_index(b, 0x0102030405060708ull);
    commit_all(b);
    backend_close(b);
    member_free(&m2);

    b = xopen(path, 0);
    struct mvcc *m3 = xload(b, &st);
    same_store(m, m3);
    assert_int_equal(st.consistent_index, 0x0102030405060708ull);
    assert_int_equal(st.n_members, 1);
    assert_int_equal(st.members[0].id, m1.id);
    assert_string_equal(st.members[0].name, "default");
    assert_int_equal(st.members[0].n_peer_urls, 1);
    assert_string_equal(st.members[0].client_urls[0], "http://127.0.0.1:2379");
    assert_int_equal(st.n_removed, 2);
    assert_int_equal(st.removed[0], 1);
    assert_int_equal(st.removed[1], 0xfeed);
    assert_string_equal(st.cluster_version, "3.4.0");
    /* leases in key (big-endian ID) order */
    assert_int_equal(st.n_leases, 2);
    assert_int_equal(st.leases[0].id, 5);
    assert_int_equal(st.leases[0].ttl, 10);
    assert_int_equal(st.leases[0].remaining_ttl, 7);
    assert_int_equal(st.leases[1].id, 0x694d7c8c3b3f5e0aLL);
    assert_int_equal(st.leases[1].ttl, 600);
    assert_int_equal(st.n_lease_keys, 3);
    assert_true(bytes_eq(st.lease_keys[0].key, bs("a")));
    assert_int_equal(st.lease_keys[0].lease, 5);
    assert_true(bytes_eq(st.lease_keys[1].key, bs("c")));
    assert_true(bytes_eq(st.lease_keys[2].key, bs("e")));
    assert_int_equal(st.lease_keys[2].lease, 99);
    assert_int_equal(st.n_alarms, 1);
    assert_int_equal(st.alarms[0].memberID, 0xbdae9bbc11dd390dull);
    assert_int_equal(st.alarms[0].alarm, 1);
    backend_state_free(&st);
    backend_close(b);

    /* etcd's exact bytes */
    struct db *db;
    struct db_tx *tx;
    struct db_bucket *bk;
    struct db_val v;
    char err[256];
    assert_int_equal(db_open(path, 0, &db, err, sizeof err), 0);
    assert_int_equal(db_begin(db, false, &tx), 0);
    assert_int_equal(db_bucket_get(tx, NULL, "members", 7, &bk), 0);
    assert_int_equal(db_get(bk, "bdae9bbc11dd390d", 16, &v), 0);
    const char *js = "{\"id\":13668033151171901709,\"peerURLs\":[\"http://127.0.0.1:2380\"],"
                     "\"name\":\"default\",\"clientURLs\":[\"http://127.0.0.1:2379\"]}";
    assert_int_equal(v.len, strlen(js));
    assert_memory_equal(v.p, js, v.len);
    assert_int_equal(db_get(bk, "1", 1, &v), DB_ENOTFOUND);
    assert_int_equal(db_bucket_get(tx, NULL, "members_removed", 15, &bk), 0);
    assert_int_equal(db_get(bk, "feed", 4, &v), 0);
    assert_int_equal(v.len, 7);
    assert_memory_equal(v.p, "removed", 7);
    assert_int_equal(db_bucket_get(tx, NULL, "lease", 5, &bk), 0);
    assert_int_equal(db_get(bk, "\x69\x4d\x7c\x8c\x3b\x3f\x5e\x0a", 8, &v), 0);
    struct api_lease_pb l;
    struct mem_arena a;
    mem_arena_init(&a, 0);
    assert_int_equal(pb_decode(&api_lease_pb_desc, v.p, v.len, &l, &a), 0);
    assert_int_equal(l.ID, 0x694d7c8c3b3f5e0aLL);
    assert_int_equal(l.TTL, 600);
    assert_int_equal(l.RemainingTTL, 0);
    assert_int_equal(db_bucket_get(tx, NULL, "meta", 4, &bk), 0);
    assert_int_equal(db_get(bk, "consistent_index", 16, &v), 0);
    assert_memory_equal(v.p, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    assert_int_equal(db_bucket_get(tx, NULL, "auth", 4, &bk), 0);
    assert_int_equal(db_get(bk, "authRevision", 12, &v), 0);
    assert_memory_equal(v.p, "\0\0\0\0\0\0\0\x01", 8);
    assert_int_equal(db_bucket_get(tx, NULL, "key", 3, &bk), 0);
    uint8_t rk[18];
    revkey(rk, 7, 0);
    rk[17] = 't';
    assert_int_equal(db_get(bk, rk, 18, &v), 0);
    assert_int_equal(v.len, 3);
    assert_memory_equal(v.p, "\x0a\x01" "d", 3);
    revkey(rk, 2, 0);
    assert_int_equal(db_get(bk, rk, 17, &v), 0);
    assert_int_equal(v.len, 14);
    assert_memory_equal(v.p, "\x0a\x01" "a\x10\x02\x18\x02\x20\x01\x2a\x01" "1\x30\x05", 14);
    db_rollback(tx);
    db_close(db);
    mem_arena_free(&a);
    member_free(&m1);
    mvcc_free(m);
    mvcc_free(m3);
}

/* What etcd creates at startup, and nothing written when it is all there. */
static void test_open_layout(void **state)
{
    (void)state;
    const char *path = tpath("layout.db");
    struct backend *b = xopen(path, 0);
    assert_false(backend_pending(b));
    assert_int_equal(backend_commit_deadline(b), INT64_MAX);
    assert_null(backend_commit_prepare(b, now_ms));
    int64_t size = backend_size(b);
    assert_true(size > 0 && backend_size_in_use(b) <= size);
    backend_close(b);
    struct stat st1, st2;
    assert_int_equal(stat(path, &st1), 0);

    struct db *db;
    struct db_tx *tx;
    struct db_cursor cu;
    struct db_val k, v;
    char err[256], names[256] = "";
    assert_int_equal(db_open(path, 0, &db, err, sizeof err), 0);
    assert_int_equal(db_begin(db, false, &tx), 0);
    uint64_t txid = db_tx_id(tx);
    db_cursor_init(&cu, tx, NULL);
    for (int rc = db_cursor_first(&cu, &k, &v); rc == 0; rc = db_cursor_next(&cu, &k, &v))
        snprintf(names + strlen(names), sizeof names - strlen(names), "%.*s ", (int)k.len, (const char *)k.p);
    assert_string_equal(names, "alarm auth authRoles authUsers cluster key lease members members_removed meta ");
    db_rollback(tx);
    db_close(db);

    b = xopen(path, 0);
    backend_close(b);
    assert_int_equal(db_open(path, 0, &db, err, sizeof err), 0);
    assert_int_equal(db_begin(db, false, &tx), 0);
    assert_int_equal(db_tx_id(tx), txid);
    db_rollback(tx);
    db_close(db);
    assert_int_equal(stat(path, &st2), 0);
    assert_int_equal(st1.st_size, st2.st_size);
}

/* ---- the commit policy ---- */

static void test_policy(void **state)
{
    (void)state;
    const char *path = tpath("policy.db");
    struct backend_config cfg = {.bc_db_flags = DB_NO_SYNC, .bc_batch_limit = 50};
    struct backend *b;
    assert_int_equal(backend_open(path, &cfg, &b, NULL, 0), 0);
    struct mvcc *m = mvcc_new();
    now_ms = 5000;
    put(m, b, "a", "1", 0);
    /* no commit yet: due at once, the interval counts from the last commit */
    assert_true(backend_commit_due(b, now_ms));
    assert_int_equal(commit_once(b), 0);
    assert_false(backend_pending(b));
    assert_int_equal(backend_commit_deadline(b), INT64_MAX);
    put(m, b, "b", "1", 0);
    assert_int_equal(backend_commit_deadline(b), 5000 + BACKEND_BATCH_INTERVAL_MS);
    assert_false(backend_commit_due(b, 5099));
    assert_true(backend_commit_due(b, 5100));
    /* a consistent index alone is worth a commit, an unchanged one is not */
    now_ms = 5100;
    assert_int_equal(commit_once(b), 0);
    backend_record_consistent_index(b, 3);
    assert_true(backend_pending(b));
    assert_int_equal(commit_once(b), 0);
    backend_record_consistent_index(b, 3);
    assert_false(backend_pending(b));
    /* the batch limit makes it due at once */
    for (int i = 0; i < 49; i++)
        put(m, b, "c", "x", 0);
    assert_false(backend_commit_due(b, now_ms + 1));
    put(m, b, "c", "x", 0);
    assert_int_equal(backend_commit_deadline(b), INT64_MIN);
    /* one job at a time; records made while it runs wait for the next */
    struct backend_job *j = backend_commit_prepare(b, now_ms);
    assert_non_null(j);
    assert_true(backend_in_flight(b));
    assert_null(backend_commit_prepare(b, now_ms));
    put(m, b, "d", "x", 0);
    assert_int_equal(backend_commit_deadline(b), INT64_MAX);
    backend_commit_run(j);
    assert_int_equal(backend_commit_finish(b, j, now_ms), 0);
    assert_false(backend_in_flight(b));
    assert_int_equal(backend_commit_deadline(b), now_ms + BACKEND_BATCH_INTERVAL_MS);
    commit_all(b);
    /* so does a batch of BACKEND_BATCH_BYTES, whatever the count */
    static char big[64 * 1024];
    memset(big, 'v', sizeof big - 1);
    int n = 0;
    while (backend_commit_deadline(b) != INT64_MIN) {
        put(m, b, "big", big, 0);
        n++;
        assert_true(n * (sizeof big - 1) <= BACKEND_BATCH_BYTES + sizeof big);
    }
    assert_true(n < 50 && n * (sizeof big - 1) >= BACKEND_BATCH_BYTES - sizeof big);
    commit_all(b);
    backend_close(b);
    mvcc_free(m);
}

/* ---- values read back ---- */

/* mvcc evicts what a batch recorded at once: history is read back from the
 * pending batch, then from the batch in flight, then from the file. */
static void test_values_from_batches(void **state)
{
    (void)state;
    const char *path = tpath("values.db");
    struct backend *b = xopen(path, 0);
    struct mvcc *m = mvcc_new();
    mvcc_set_loader(m, &(struct mvcc_loader){backend_value, backend_value_done, b});
    static const char *const vals[] = {"one", "two", "three", "four"};
    for (int i = 0; i < 4; i++) {
        put(m, b, "h", vals[i], 0);
        put(m, b, "other", vals[i], 0);
    }
    mvcc_evict(m, backend_recorded_rev(b));
    struct mem_arena a;
    mem_arena_init(&a, 0);
    for (int stage = 0; stage < 3; stage++) {
        struct backend_job *j = NULL;
        if (stage == 1) {
            j = backend_commit_prepare(b, now_ms);
            assert_non_null(j);
        }
        for (int i = 0; i < 4; i++) {
            struct api_range_req req = {.key = bs("h"), .revision = 2 + 2 * i};
            struct api_range_resp resp = {0};
            assert_int_equal(mvcc_range(m, &req, &a, &resp), 0);
            assert_int_equal(resp.n_kvs, 1);
            assert_true(bytes_eq(resp.kvs[0].value, bs(vals[i])));
            assert_int_equal(resp.kvs[0].version, i + 1);
            assert_int_equal(resp.kvs[0].mod_revision, 2 + 2 * i);
        }
        if (j) {
            backend_commit_run(j);
            assert_int_equal(backend_commit_finish(b, j, now_ms), 0);
        }
        mem_arena_reset(&a);
    }
    assert_false(backend_pending(b));
    mem_arena_free(&a);
    backend_close(b);
    mvcc_free(m);
}

/* ---- failures ---- */

/* A full disk fails the commit; the batch, with what was recorded while it
 * ran, is kept in order and committed once there is room. */
static void test_enospc(void **state)
{
    (void)state;
    const char *path = tpath("enospc.db");
    struct backend *b = xopen(path, 0);
    struct mvcc *m = mvcc_new();
    put(m, b, "small", "1", 0);
    backend_record_consistent_index(b, 1);
    commit_all(b);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);

    char *big = malloc(30000);
    memset(big, 'z', 29999);
    big[29999] = 0;
    for (int i = 0; i < 8; i++) {
        char k[16];
        snprintf(k, sizeof k, "big%d", i);
        put(m, b, k, big, 0);
    }
    backend_record_consistent_index(b, 2);

    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = (rlim_t)sb.st_size + 16384;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    struct backend_job *j = backend_commit_prepare(b, now_ms);
    assert_non_null(j);
    /* recorded while the job is in flight: must come after it */
    put(m, b, "big0", "overwritten", 0);
    del(m, b, "big1", "");
    backend_record_consistent_index(b, 3);
    backend_commit_run(j);
    int rc = backend_commit_finish(b, j, now_ms);
    assert_int_equal(rc, DB_ENOSPC);
    assert_true(strlen(backend_errmsg(b)) > 0);
    assert_true(backend_pending(b));
    assert_int_equal(backend_commit_deadline(b), now_ms + BACKEND_BATCH_INTERVAL_MS);
    /* and again, still full */
    assert_int_equal(commit_once(b), DB_ENOSPC);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_DFL);

    commit_all(b);
    backend_close(b);
    b = xopen(path, 0);
    struct backend_state st;
    struct mvcc *m2 = xload(b, &st);
    assert_int_equal(st.consistent_index, 3);
    same_store(m, m2);
    backend_state_free(&st);
    backend_close(b);
    db_matches(path, m);
    mvcc_free(m);
    mvcc_free(m2);
    free(big);
}

/* A record either goes in whole or not at all when memory runs out. */
static void test_nomem(void **state)
{
    (void)state;
    const char *path = tpath("nomem.db");
    struct backend *b = xopen(path, 0);
    struct mvcc *m = mvcc_new();
    struct member mb;
    const char *p1[] = {"http://127.0.0.1:2380"};
    assert_int_equal(member_init(&mb, 9, "n", p1, 1, NULL, 0), 0);
    /* nothing committed yet, so no chunk is kept for reuse */
    put(m, NULL, "a", "1", 0);
    for (int what = 0; what < 4; what++) {
        int rc;
        mem_fail_after(0, 1);
        switch (what) {
        case 0:
            rc = backend_record_changes(b, m);
            break;
        case 1:
            rc = backend_record_member(b, &mb);
            break;
        case 2:
            rc = backend_record_compaction(b, m, 1);
            break;
        default:
            rc = backend_record_member_removed(b, 9);
            break;
        }
        mem_fail_after(-1, 0);
        assert_int_equal(rc, DB_ENOMEM);
        assert_false(backend_pending(b));
    }
    assert_int_equal(backend_record_changes(b, m), 0);
    assert_true(backend_pending(b));
    /* a commit that runs out of memory keeps the batch, at every allocation */
    for (long n = 0;; n++) {
        mem_fail_after(n, 0);
        int rc = commit_once(b);
        mem_fail_after(-1, 0);
        if (rc == 0)
            break;
        assert_true(n < 1000);
        if (rc == DB_EFAILED) {
            /* db.c gives the file up when it cannot build the meta page:
             * a restart, which replays the write */
            backend_close(b);
            b = xopen(path, 0);
            assert_int_equal(backend_record_changes(b, m), 0);
            continue;
        }
        assert_int_equal(rc, DB_ENOMEM);
        assert_true(backend_pending(b));
    }
    assert_false(backend_pending(b));
    backend_close(b);

    /* load fails cleanly at every allocation */
    b = xopen(path, 0);
    struct backend_state st0;
    struct mvcc *want = xload(b, &st0);
    backend_state_free(&st0);
    same_store(m, want);
    mvcc_free(want);
    for (long n = 0;; n++) {
        struct mvcc *m2 = mvcc_new();
        struct backend_state st;
        mem_fail_after(n, 0);
        int rc = backend_load(b, m2, &st);
        mem_fail_after(-1, 0);
        backend_state_free(&st);
        mvcc_free(m2);
        if (rc == 0)
            break;
        assert_int_equal(rc, DB_ENOMEM);
        assert_true(n < 1000);
    }
    backend_close(b);
    member_free(&mb);
    mvcc_free(m);
}

/* What etcd never writes is refused with the bucket and key named. */
static void test_corrupt(void **state)
{
    (void)state;
    static const struct {
        const char *bucket;
        const char *key;
        size_t klen;
        const char *val;
        size_t vlen;
        bool tombstone_too; /* the same revision also stored as a tombstone */
    } cases[] = {
        {"key", "short", 5, "\x0a\x01" "a", 3},
        {"key", "\0\0\0\0\0\0\0\x02_\0\0\0\0\0\0\0\0x", 18, "\x0a\x01" "a", 3},
        {"key", "\0\0\0\0\0\0\0\x02_\0\0\0\0\0\0\0\0", 17, "\x0a\x01" "a\x10\x02\x18\x02\x20\x01", 9, true},
        {"key", "\0\0\0\0\0\0\0\x02_\0\0\0\0\0\0\0\0", 17, "\x0a\x01" "a\x18\x03\x20\x01\x10\x02", 9},
        {"key", "\0\0\0\0\0\0\0\x02_\0\0\0\0\0\0\0\0", 17, "\x0a\x01" "a\x18\x02\x10\x02", 7},
        {"key", "\0\0\0\0\0\0\0\x02_\0\0\0\0\0\0\0\0", 17, "\xff", 1},
        {"key", "\0\0\0\0\0\0\0\0_\0\0\0\0\0\0\0\0", 17, "\x0a\x01" "a\x18\0\x20\x01\x10\0", 9},
        {"meta", "finishedCompactRev", 18, "\0\0\0\x01", 4},
        {"meta", "consistent_index", 16, "\x01", 1},
        {"lease", "\0\0\0\0\0\0\0\x01", 8, "\x08", 1},
        {"members", "1", 1, "{\"id\":", 6},
        {"members_removed", "xyz", 3, "removed", 7},
        {"alarm", "\x08", 1, "", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "corrupt%zu.db", i);
        const char *path = tpath(name);
        struct backend *b = xopen(path, 0);
        backend_close(b);
        struct db *db;
        struct db_tx *tx;
        struct db_bucket *bk;
        assert_int_equal(db_open(path, 0, &db, NULL, 0), 0);
        assert_int_equal(db_begin(db, true, &tx), 0);
        assert_int_equal(db_bucket_get(tx, NULL, cases[i].bucket, strlen(cases[i].bucket), &bk), 0);
        assert_int_equal(db_put(bk, cases[i].key, cases[i].klen, cases[i].val, cases[i].vlen), 0);
        if (cases[i].tombstone_too) {
            uint8_t t[18];
            memcpy(t, cases[i].key, 17);
            t[17] = 't';
            assert_int_equal(db_put(bk, t, 18, "\x0a\x01" "a", 3), 0);
        }
        assert_int_equal(db_commit(tx), 0);
        db_close(db);
        b = xopen(path, 0);
        struct mvcc *m = mvcc_new();
        struct backend_state st;
        int rc = backend_load(b, m, &st);
        assert_int_equal(rc, DB_ECORRUPT);
        assert_non_null(strstr(backend_errmsg(b), cases[i].bucket));
        backend_state_free(&st);
        mvcc_free(m);
        backend_close(b);
    }
}

/* ---- snapshot, defrag ---- */

static void test_snapshot_defrag(void **state)
{
    (void)state;
    const char *path = tpath("snap.db");
    struct backend *b = xopen(path, 0);
    struct mvcc *m = mvcc_new();
    char k[32], v[512];
    memset(v, 'v', sizeof v - 1);
    v[sizeof v - 1] = 0;
    for (int i = 0; i < 2000; i++) {
        snprintf(k, sizeof k, "key%05d", i);
        put(m, b, k, v, 0);
    }
    del(m, b, "key", "kez");
    compact(m, b, mvcc_rev(m));
    commit_all(b);
    uint32_t before = hash_of(b, m, false, 0);
    int64_t size = backend_size(b);
    assert_true(backend_size_in_use(b) < size / 2);

    const char *sp = tpath("snap.out");
    int fd = open(sp, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    uint64_t n;
    char err[256];
    assert_int_equal(backend_snapshot(b, fd, &n, err, sizeof err), 0);
    assert_int_equal(n, (uint64_t)size + 32);
    uint8_t *data = malloc(n);
    assert_int_equal(pread(fd, data, n, 0), (ssize_t)n);
    close(fd);
    br_sha256_context sha;
    uint8_t dig[32];
    br_sha256_init(&sha);
    br_sha256_update(&sha, data, n - 32);
    br_sha256_out(&sha, dig);
    assert_memory_equal(dig, data + n - 32, 32);
    free(data);

    assert_int_equal(backend_defrag(b, err, sizeof err), 0);
    assert_true(backend_size(b) < size / 2);
    assert_int_equal(hash_of(b, m, false, 0), before);
    put(m, b, "after", "defrag", 0);
    commit_all(b);
    backend_close(b);
    b = xopen(path, 0);
    struct backend_state st;
    struct mvcc *m2 = xload(b, &st);
    same_store(m, m2);
    backend_state_free(&st);
    backend_close(b);
    mvcc_free(m);
    mvcc_free(m2);
}

/* ---- interop with real etcd 3.4.23 ---- */

struct etcd {
    pid_t pid;
    int client, peer;
    char ep[64];
    char dir[512];
};

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&sa, &len), 0);
    close(s);
    return ntohs(sa.sin_port);
}

/* Runs a shell command; its stdout (malloc'd) or NULL if it failed. */
static char *sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *sh(const char *fmt, ...)
{
    char cmd[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    size_t cap = 4096, len = 0;
    char *out = malloc(cap);
    size_t r;
    while ((r = fread(out + len, 1, cap - len - 1, f)) > 0) {
        len += r;
        if (cap - len < 2)
            out = realloc(out, cap *= 2);
    }
    out[len] = 0;
    if (pclose(f) != 0) {
        print_error("failed: %s\n%s\n", cmd, out);
        free(out);
        return NULL;
    }
    return out;
}

#define CTL "/usr/bin/etcdctl --endpoints=%s "

static void etcd_start(struct etcd *e, const char *datadir, int peer)
{
    e->client = free_port();
    e->peer = peer ? peer : free_port();
    snprintf(e->ep, sizeof e->ep, "127.0.0.1:%d", e->client);
    snprintf(e->dir, sizeof e->dir, "%s", datadir);
    char curl[64], purl[64], cluster[128], log[600];
    snprintf(curl, sizeof curl, "http://127.0.0.1:%d", e->client);
    snprintf(purl, sizeof purl, "http://127.0.0.1:%d", e->peer);
    snprintf(cluster, sizeof cluster, "n1=%s", purl);
    snprintf(log, sizeof log, "%s.log", datadir);
    e->pid = fork();
    assert_true(e->pid >= 0);
    if (e->pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        dup2(fd, 1);
        dup2(fd, 2);
        execl("/usr/bin/etcd", "etcd", "--name", "n1", "--data-dir", datadir, "--listen-client-urls", curl,
              "--advertise-client-urls", curl, "--listen-peer-urls", purl, "--initial-advertise-peer-urls",
              purl, "--initial-cluster", cluster, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, CTL "endpoint health >/dev/null 2>&1", e->ep);
        if (system(cmd) == 0)
            return;
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kill(e->pid, SIGKILL);
    waitpid(e->pid, NULL, 0);
    fail_msg("etcd did not start; see %s", log);
}

static void etcd_stop(struct etcd *e)
{
    int status;
    kill(e->pid, SIGTERM);
    assert_int_equal(waitpid(e->pid, &status, 0), e->pid);
}

static size_t b64dec(const char *s, uint8_t *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (; *s && *s != '='; s++) {
        const char *p = strchr(tab, *s);
        assert_non_null(p);
        acc = acc << 6 | (uint32_t)(p - tab);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    return n;
}

static int64_t jint(const struct json *o, const char *key)
{
    int64_t v = 0;
    const struct json *j = json_get(o, key);
    if (j)
        assert_int_equal(json_i64(j, &v), 0);
    return v;
}

/* `etcdctl get --from-key "" --rev=rev -w json` against m at rev. */
static void same_as_etcd(struct mvcc *m, const char *out, int64_t rev)
{
    struct mem_arena a;
    struct json j;
    char err[128];
    mem_arena_init(&a, 0);
    assert_int_equal(json_parse(out, strlen(out), &a, &j, err, sizeof err), 0);
    const struct json *kvs = json_get(&j, "kvs");
    struct api_range_resp r;
    assert_int_equal(range_all(m, rev, &a, &r), 0);
    assert_int_equal(r.n_kvs, kvs ? kvs->n : 0);
    for (size_t i = 0; i < r.n_kvs; i++) {
        const struct json *kv = &kvs->kids[i];
        uint8_t kb[256], *vb = malloc(16384);
        const struct json *val = json_get(kv, "value");
        struct api_kv want = {
            .key = {kb, b64dec(json_get(kv, "key")->s, kb)},
            .value = {vb, val ? b64dec(val->s, vb) : 0},
            .create_revision = jint(kv, "create_revision"),
            .mod_revision = jint(kv, "mod_revision"),
            .version = jint(kv, "version"),
            .lease = jint(kv, "lease"),
        };
        same_kv(&r.kvs[i], &want);
        free(vb);
    }
    mem_arena_free(&a);
}

static uint32_t etcd_hashkv(const struct etcd *e, int64_t rev)
{
    char *out = sh(CTL "endpoint hashkv --rev=%" PRId64 " -w json", e->ep, rev);
    assert_non_null(out);
    struct mem_arena a;
    struct json j;
    char err[128];
    uint64_t h;
    mem_arena_init(&a, 0);
    assert_int_equal(json_parse(out, strlen(out), &a, &j, err, sizeof err), 0);
    assert_int_equal(json_u64(json_get(json_get(&j.kids[0], "HashKV"), "hash"), &h), 0);
    mem_arena_free(&a);
    free(out);
    return (uint32_t)h;
}

/* Maintenance.Hash, which etcdctl does not expose. */
static uint32_t etcd_hash(const struct etcd *e)
{
    char *out = sh("/usr/bin/python3 -c 'import grpc, sys\n"
                   "from etcd3.etcdrpc import rpc_pb2, rpc_pb2_grpc\n"
                   "c = grpc.insecure_channel(sys.argv[1])\n"
                   "print(rpc_pb2_grpc.MaintenanceStub(c).Hash(rpc_pb2.HashRequest(), timeout=10).hash)' %s",
                   e->ep);
    assert_non_null(out);
    uint32_t h = (uint32_t)strtoul(out, NULL, 10);
    free(out);
    return h;
}

struct snap_status {
    uint64_t hash;
    int64_t revision, total_key;
};

static struct snap_status snapshot_status(const char *file)
{
    char *out = sh("/usr/bin/etcdctl snapshot status %s -w json", file);
    assert_non_null(out);
    struct mem_arena a;
    struct json j;
    char err[128];
    struct snap_status s;
    mem_arena_init(&a, 0);
    assert_int_equal(json_parse(out, strlen(out), &a, &j, err, sizeof err), 0);
    assert_int_equal(json_u64(json_get(&j, "hash"), &s.hash), 0);
    s.revision = jint(&j, "revision");
    s.total_key = jint(&j, "totalKey");
    mem_arena_free(&a);
    free(out);
    return s;
}

static void ctl_ok(const struct etcd *e, const char *args)
{
    char *out = sh(CTL "%s", e->ep, args);
    assert_non_null(out);
    free(out);
}

/* Real etcd writes a history through etcdctl; we load its db and compare
 * with what it served.  Then we write a db from the same history and compare
 * it with etcd's snapshot; etcd restores it and serves the same keys. */
static void test_etcd_interop(void **state)
{
    (void)state;
    if (access("/usr/bin/etcd", X_OK) || access("/usr/bin/etcdctl", X_OK) || access("/usr/bin/python3", X_OK)) {
        print_message("interop: SKIPPED: /usr/bin/etcd, /usr/bin/etcdctl or /usr/bin/python3 is missing "
                      "(apt-get install etcd-server etcd-client python3-etcd3)\n");
        skip();
    }
    struct etcd e;
    const char *dir = tpath("etcd1");
    etcd_start(&e, dir, 0);

    char big[5001];
    memset(big, 'x', 5000);
    big[5000] = 0;
    char cmd[6000];
    ctl_ok(&e, "put a 1");                          /* 2 */
    ctl_ok(&e, "put b 2");                          /* 3 */
    ctl_ok(&e, "put a 3");                          /* 4 */
    snprintf(cmd, sizeof cmd, "put big %s", big);   /* 5 */
    ctl_ok(&e, cmd);
    ctl_ok(&e, "del b");                            /* 6 */
    char *out = sh("printf 'value(\"a\") = \"3\"\\n\\nput c x\\ndel a\\n\\nput d y\\n\\n' | " CTL "txn", e.ep);
    assert_non_null(out);                           /* 7: c, a deleted */
    assert_non_null(strstr(out, "SUCCESS"));
    free(out);
    out = sh(CTL "lease grant 600", e.ep);
    assert_non_null(out);
    unsigned long long lid;
    assert_int_equal(sscanf(out, "lease %llx granted", &lid), 1);
    free(out);
    snprintf(cmd, sizeof cmd, "put e v --lease=%llx", lid); /* 8 */
    ctl_ok(&e, cmd);
    ctl_ok(&e, "put f1 1");                         /* 9 */
    ctl_ok(&e, "put f2 2");                         /* 10 */
    ctl_ok(&e, "compact 6 --physical");
    ctl_ok(&e, "del f --prefix");                   /* 11 */
    ctl_ok(&e, "put g z");                          /* 12 */
    ctl_ok(&e, "put a again");                      /* 13 */
    const int64_t cur = 13, cmp = 6;

    char *gets[16] = {0};
    for (int64_t r = cmp; r <= cur; r++) {
        gets[r] = sh(CTL "get '' --from-key --rev=%" PRId64 " -w json", e.ep, r);
        assert_non_null(gets[r]);
    }
    uint32_t hkv = etcd_hashkv(&e, 0), hkv9 = etcd_hashkv(&e, 9), hkv7 = etcd_hashkv(&e, 7);
    uint32_t hall = etcd_hash(&e);
    const char *esnap = tpath("etcd.snap");
    snprintf(cmd, sizeof cmd, "snapshot save %s >/dev/null 2>&1", esnap);
    ctl_ok(&e, cmd);
    etcd_stop(&e);

    /* 1. etcd's db, loaded by us */
    char dbpath[600];
    snprintf(dbpath, sizeof dbpath, "%s/member/snap/db", dir);
    struct backend *b = xopen(dbpath, 0);
    struct backend_state st;
    struct mvcc *m = xload(b, &st);
    assert_false(backend_pending(b));
    assert_int_equal(mvcc_rev(m), cur);
    assert_int_equal(mvcc_compact_rev(m), cmp);
    for (int64_t r = cmp; r <= cur; r++)
        same_as_etcd(m, gets[r], r);
    assert_int_equal(hash_of(b, m, true, 0), hkv);
    assert_int_equal(hash_of(b, m, true, 9), hkv9);
    assert_int_equal(hash_of(b, m, true, 7), hkv7);
    assert_int_equal(hash_of(b, m, false, 0), hall);
    assert_int_equal(st.n_members, 1);
    assert_string_equal(st.members[0].name, "n1");
    assert_string_equal(st.cluster_version, "3.4.0");
    assert_int_equal(st.n_leases, 1);
    assert_int_equal(st.leases[0].id, (int64_t)lid);
    assert_int_equal(st.leases[0].ttl, 600);
    assert_int_equal(st.n_lease_keys, 1);
    assert_true(bytes_eq(st.lease_keys[0].key, bs("e")));
    assert_int_equal(st.lease_keys[0].lease, (int64_t)lid);
    assert_true(st.consistent_index > 0);
    backend_close(b);

    /* 2. the same history written by us */
    const char *ours = tpath("ours.db");
    b = xopen(ours, 0);
    struct mvcc *w = mvcc_new();
    put(w, b, "a", "1", 0);
    put(w, b, "b", "2", 0);
    put(w, b, "a", "3", 0);
    put(w, b, "big", big, 0);
    del(w, b, "b", "");
    {
        struct mem_arena a;
        mem_arena_init(&a, 0);
        struct api_compare c = {.result = API_CMP_EQUAL, .target = API_CMP_VALUE, .key = bs("a"),
                                .value = bs("3"), .has_value = true};
        struct api_put_req pc = {.key = bs("c"), .value = bs("x")}, pd = {.key = bs("d"), .value = bs("y")};
        struct api_delete_req da = {.key = bs("a")};
        struct api_request_op ok[2] = {{.request_put = &pc}, {.request_delete_range = &da}};
        struct api_request_op ko[1] = {{.request_put = &pd}};
        struct api_txn_req t = {.compare = &c, .n_compare = 1, .success = ok, .n_success = 2,
                                .failure = ko, .n_failure = 1};
        struct api_txn_resp tr = {0};
        assert_int_equal(mvcc_txn(w, &t, &a, &tr), 0);
        assert_true(tr.succeeded);
        assert_int_equal(backend_record_changes(b, w), 0);
        mem_arena_free(&a);
    }
    assert_int_equal(backend_record_lease(b, (int64_t)lid, 600, 0), 0);
    put(w, b, "e", "v", (int64_t)lid);
    put(w, b, "f1", "1", 0);
    put(w, b, "f2", "2", 0);
    compact(w, b, cmp);
    del(w, b, "f", "g");
    put(w, b, "g", "z", 0);
    put(w, b, "a", "again", 0);
    for (size_t i = 0; i < st.n_members; i++)
        assert_int_equal(backend_record_member(b, &st.members[i]), 0);
    assert_int_equal(backend_record_cluster_version(b, st.cluster_version), 0);
    backend_record_consistent_index(b, st.consistent_index);
    commit_all(b);
    same_store(m, w);
    assert_int_equal(hash_of(b, w, true, 0), hkv);
    assert_int_equal(hash_of(b, w, false, 0), hall);
    const char *osnap = tpath("ours.snap");
    int fd = open(osnap, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    char err[256];
    assert_int_equal(backend_snapshot(b, fd, NULL, err, sizeof err), 0);
    close(fd);
    backend_close(b);

    struct snap_status se = snapshot_status(esnap), so = snapshot_status(osnap);
    assert_int_equal(so.hash, se.hash);
    assert_int_equal(so.revision, se.revision);
    assert_int_equal(so.total_key, se.total_key);

    /* restore checks our sha256 trailer; etcd then serves our keys */
    const char *rdir = tpath("restored");
    int peer = free_port();
    out = sh("cd %s && /usr/bin/etcdctl snapshot restore %s --name n1 --data-dir %s "
             "--initial-cluster n1=http://127.0.0.1:%d --initial-advertise-peer-urls http://127.0.0.1:%d 2>&1",
             tmpdir, osnap, rdir, peer, peer);
    assert_non_null(out);
    free(out);
    etcd_start(&e, rdir, peer);
    out = sh(CTL "get '' --from-key -w json", e.ep);
    assert_non_null(out);
    same_as_etcd(w, out, cur);
    free(out);
    assert_int_equal(etcd_hashkv(&e, 0), hkv);
    etcd_stop(&e);

    for (int64_t r = cmp; r <= cur; r++)
        free(gets[r]);
    backend_state_free(&st);
    mvcc_free(m);
    mvcc_free(w);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_layout),
        cmocka_unit_test(test_meta_members_leases),
        cmocka_unit_test(test_policy),
        cmocka_unit_test(test_values_from_batches),
        cmocka_unit_test(test_random_restarts),
        cmocka_unit_test(test_compaction_resume),
        cmocka_unit_test(test_compaction_replaced),
        cmocka_unit_test(test_hash_rules),
        cmocka_unit_test(test_enospc),
        cmocka_unit_test(test_nomem),
        cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_snapshot_defrag),
        cmocka_unit_test(test_etcd_interop),
    };
    return cmocka_run_group_tests_name("backend", tests, setup_dir, teardown_dir);
}
