/* test_db.c - db.c: API rules, random operations against an in-memory model
 * with reopening (both freelist modes), splits and merges, inline buckets,
 * page reuse, crash simulation at every write and sync of a commit, ENOSPC
 * through RLIMIT_FSIZE, failing allocations, damaged meta and tree pages,
 * garbage files, snapshots, defrag, readers racing a writer, the append path
 * etcd uses, and interop with real etcd 3.4 (tests/db_interop.py): etcd's
 * db read here, our files read by bbolt (etcdctl snapshot status, which runs
 * bbolt's consistency check) and served by etcd.  Temp files live in one
 * /tmp directory removed at the end. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include <cmocka.h>

#include <signal.h>
#include <sys/resource.h>
#include <time.h>

#include "../db.c"

/* ---- helpers ---- */

static char tmpdir[64];

static const char *tpath(const char *name)
{
    static char buf[4][128];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s", tmpdir, name);
    return buf[i];
}

static int setup_dir(void **state)
{
    (void)state;
    strcpy(tmpdir, "/tmp/test_db.XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    return 0;
}

static int teardown_dir(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

#define OK(expr)                                                                  \
    do {                                                                          \
        int ok_rc_ = (expr);                                                      \
        if (ok_rc_)                                                               \
            fail_msg("%s = %d (%s)", #expr, ok_rc_, db_strerror(ok_rc_));         \
    } while (0)

static struct db *xopen(const char *path, unsigned flags)
{
    char err[256];
    struct db *db;
    int rc = db_open(path, flags, &db, err, sizeof err);
    if (rc)
        fail_msg("db_open(%s) = %d: %s", path, rc, err);
    return db;
}

static struct db_tx *xbegin(struct db *db, bool write)
{
    struct db_tx *tx;
    OK(db_begin(db, write, &tx));
    return tx;
}

static void xcommit(struct db *db, struct db_tx *tx)
{
    int rc = db_commit(tx);
    if (rc)
        fail_msg("commit = %d: %s", rc, db_errmsg(db));
}

static struct db_bucket *xbucket(struct db_tx *tx, struct db_bucket *p, const char *name)
{
    struct db_bucket *b;
    OK(db_bucket_create(tx, p, name, strlen(name), true, &b));
    return b;
}

static void xput(struct db_bucket *b, const char *k, const char *v)
{
    OK(db_put(b, k, strlen(k), v, strlen(v)));
}

static void copy_file(const char *from, const char *to)
{
    FILE *f = fopen(from, "rb"), *g = fopen(to, "wb");
    assert_non_null(f);
    assert_non_null(g);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        assert_int_equal(fwrite(buf, 1, n, g), n);
    fclose(f);
    assert_int_equal(fclose(g), 0);
}

static void patch_file(const char *path, long off, const void *p, size_t n)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, off, SEEK_SET), 0);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The whole database as text-ish bytes: every bucket, nested ones inline,
 * with every key and value; two equal dumps mean equal contents. */
static void dump_bucket(struct db_tx *tx, struct db_bucket *b, struct mem_buf *out, int depth)
{
    struct db_cursor c;
    struct db_val k, v;
    int rc;
    db_cursor_init(&c, tx, b);
    for (rc = db_cursor_first(&c, &k, &v); !rc; rc = db_cursor_next(&c, &k, &v)) {
        assert_int_equal(mem_buf_printf(out, "%d %zu:", depth, k.len), 0);
        assert_int_equal(mem_buf_append(out, k.p, k.len), 0);
        if (!v.p) {
            struct db_bucket *sub;
            OK(db_bucket_get(tx, b, k.p, k.len, &sub));
            assert_int_equal(mem_buf_printf(out, " {\n"), 0);
            dump_bucket(tx, sub, out, depth + 1);
            assert_int_equal(mem_buf_printf(out, "}\n"), 0);
        } else {
            assert_int_equal(mem_buf_printf(out, " %zu:", v.len), 0);
            assert_int_equal(mem_buf_append(out, v.p, v.len), 0);
            assert_int_equal(mem_buf_putc(out, '\n'), 0);
        }
    }
    if (rc != DB_ENOTFOUND)
        fail_msg("dump: %d %s", rc, db_tx_errmsg(tx));
}

static struct mem_buf dump_db(struct db *db)
{
    struct mem_buf out = {0};
    struct db_tx *tx = xbegin(db, false);
    dump_bucket(tx, NULL, &out, 0);
    if (db_check(tx))
        fail_msg("check: %s", db_tx_errmsg(tx));
    db_rollback(tx);
    return out;
}

static struct mem_buf dump_path(const char *path, unsigned flags)
{
    struct db *db = xopen(path, flags);
    struct mem_buf m = dump_db(db);
    db_close(db);
    return m;
}

static bool buf_eq(const struct mem_buf *a, const struct mem_buf *b)
{
    return a->len == b->len && (!a->len || !memcmp(a->data, b->data, a->len));
}

static void check_db(struct db *db)
{
    struct db_tx *tx = xbegin(db, false);
    if (db_check(tx))
        fail_msg("check: %s", db_tx_errmsg(tx));
    db_rollback(tx);
}

/* ---- the basics ---- */

static void test_create_layout(void **state)
{
    (void)state;
    const char *p = tpath("new.db");
    struct db *db = xopen(p, 0);
    assert_int_equal(db_size(db), 4 * 4096);
    assert_int_equal(db_size_in_use(db), 4 * 4096);
    db_close(db);
    /* bbolt's init: metas 0/1 (txid 0/1), freelist page 2, empty leaf 3 */
    FILE *f = fopen(p, "rb");
    uint8_t buf[4 * 4096];
    assert_int_equal(fread(buf, 1, sizeof buf, f), sizeof buf);
    fclose(f);
    for (int i = 0; i < 2; i++) {
        const uint8_t *m = buf + i * 4096;
        assert_int_equal(ld64(m), i);
        assert_int_equal(ld16(m + 8), PG_META);
        assert_int_equal(ld32(m + 16), 0xED0CDAED);
        assert_int_equal(ld32(m + 20), 2);
        assert_int_equal(ld32(m + 24), 4096);
        assert_int_equal(ld64(m + 32), 3);  /* root */
        assert_int_equal(ld64(m + 48), 2);  /* freelist */
        assert_int_equal(ld64(m + 56), 4);  /* high water */
        assert_int_equal(ld64(m + 64), i);  /* txid */
        assert_int_equal(ld64(m + 72), db_fnv64a(m + 16, 56));
    }
    assert_int_equal(ld16(buf + 2 * 4096 + 8), PG_FREELIST);
    assert_int_equal(ld16(buf + 3 * 4096 + 8), PG_LEAF);
    assert_int_equal(ld16(buf + 3 * 4096 + 10), 0);
    /* FNV-64a known answer */
    assert_true(db_fnv64a((const uint8_t *)"a", 1) == 0xaf63dc4c8601ec8cull);
    struct mem_buf d = dump_path(p, 0);
    assert_int_equal(d.len, 0);
    mem_buf_free(&d);
}

static void test_api_rules(void **state)
{
    (void)state;
    struct db *db = xopen(tpath("api.db"), 0);
    struct db_tx *tx = xbegin(db, true), *tx2;
    struct db_bucket *b, *n, *b2;
    struct db_val v, k;
    struct db_cursor c;
    assert_int_equal(db_begin(db, true, &tx2), DB_EBUSY);
    assert_int_equal(db_bucket_get(tx, NULL, "b", 1, &b), DB_ENOTFOUND);
    assert_int_equal(db_bucket_create(tx, NULL, "", 0, false, &b), DB_EINVAL);
    OK(db_bucket_create(tx, NULL, "b", 1, false, &b));
    assert_int_equal(db_bucket_create(tx, NULL, "b", 1, false, &b2), DB_EEXIST);
    OK(db_bucket_create(tx, NULL, "b", 1, true, &b2));
    assert_ptr_equal(b, b2);
    OK(db_bucket_get(tx, NULL, "b", 1, &b2));
    assert_ptr_equal(b, b2);
    /* empty bucket */
    db_cursor_init(&c, tx, b);
    assert_int_equal(db_cursor_first(&c, &k, &v), DB_ENOTFOUND);
    assert_int_equal(db_cursor_last(&c, &k, &v), DB_ENOTFOUND);
    assert_int_equal(db_cursor_next(&c, &k, &v), DB_EINVAL);
    assert_int_equal(db_put(b, "", 0, "x", 1), DB_EINVAL);
    char big[DB_MAX_KEY + 1] = {0};
    assert_int_equal(db_put(b, big, sizeof big, "x", 1), DB_EINVAL);
    OK(db_put(b, big, DB_MAX_KEY, "x", 1));
    OK(db_del(b, big, DB_MAX_KEY));
    xput(b, "a", "1");
    xput(b, "c", "3");
    OK(db_put(b, "e", 1, NULL, 0));
    OK(db_get(b, "e", 1, &v));
    assert_non_null(v.p);
    assert_int_equal(v.len, 0);
    n = xbucket(tx, b, "n");
    xput(n, "x", "y");
    assert_int_equal(db_get(b, "n", 1, &v), DB_EINCOMPAT);
    assert_int_equal(db_put(b, "n", 1, "z", 1), DB_EINCOMPAT);
    assert_int_equal(db_del(b, "n", 1), DB_EINCOMPAT);
    assert_int_equal(db_bucket_create(tx, b, "a", 1, true, &b2), DB_EINCOMPAT);
    assert_int_equal(db_bucket_get(tx, b, "a", 1, &b2), DB_EINCOMPAT);
    assert_int_equal(db_bucket_delete(tx, b, "a", 1), DB_EINCOMPAT);
    assert_int_equal(db_bucket_delete(tx, b, "zz", 2), DB_ENOTFOUND);
    assert_int_equal(db_get(b, "b", 1, &v), DB_ENOTFOUND);
    OK(db_del(b, "zz", 2)); /* missing key: not an error */
    /* cursor: order, nested bucket with NULL value, seek, prev, invalidation */
    db_cursor_init(&c, tx, b);
    OK(db_cursor_first(&c, &k, &v));
    assert_memory_equal(k.p, "a", 1);
    OK(db_cursor_next(&c, &k, &v));
    assert_memory_equal(k.p, "c", 1);
    OK(db_cursor_next(&c, &k, &v));
    assert_memory_equal(k.p, "e", 1);
    OK(db_cursor_next(&c, &k, &v));
    assert_memory_equal(k.p, "n", 1);
    assert_null(v.p);
    assert_int_equal(db_cursor_next(&c, &k, &v), DB_ENOTFOUND);
    assert_int_equal(db_cursor_next(&c, &k, &v), DB_EINVAL);
    OK(db_cursor_seek(&c, "b", 1, &k, &v));
    assert_memory_equal(k.p, "c", 1);
    OK(db_cursor_prev(&c, &k, &v));
    assert_memory_equal(k.p, "a", 1);
    assert_int_equal(db_cursor_prev(&c, &k, &v), DB_ENOTFOUND);
    assert_int_equal(db_cursor_seek(&c, "o", 1, &k, &v), DB_ENOTFOUND);
    OK(db_cursor_last(&c, &k, &v));
    assert_memory_equal(k.p, "n", 1);
    xput(b, "d", "4");
    assert_int_equal(db_cursor_prev(&c, &k, &v), DB_EINVAL);
    /* top-level cursor lists bucket names */
    db_cursor_init(&c, tx, NULL);
    OK(db_cursor_first(&c, &k, &v));
    assert_int_equal(k.len, 1);
    assert_null(v.p);
    /* views stay valid across later changes in the transaction */
    OK(db_get(b, "a", 1, &v));
    xput(b, "a", "changed");
    assert_memory_equal(v.p, "1", 1);
    xcommit(db, tx);

    tx = xbegin(db, false);
    OK(db_bucket_get(tx, NULL, "b", 1, &b));
    assert_int_equal(db_put(b, "q", 1, "q", 1), DB_EINVAL);
    assert_int_equal(db_bucket_create(tx, NULL, "x", 1, false, &b2), DB_EINVAL);
    OK(db_get(b, "a", 1, &v));
    assert_int_equal(v.len, 7);
    OK(db_bucket_get(tx, b, "n", 1, &n));
    OK(db_get(n, "x", 1, &v));
    assert_memory_equal(v.p, "y", 1);
    assert_int_equal(db_commit(tx), DB_EINVAL); /* read transactions just end */

    /* a deleted bucket's handles refuse service */
    tx = xbegin(db, true);
    OK(db_bucket_get(tx, NULL, "b", 1, &b));
    OK(db_bucket_get(tx, b, "n", 1, &n));
    OK(db_bucket_delete(tx, NULL, "b", 1));
    assert_int_equal(db_get(b, "a", 1, &v), DB_EINVAL);
    assert_int_equal(db_put(n, "a", 1, "a", 1), DB_EINVAL);
    assert_int_equal(db_bucket_get(tx, NULL, "b", 1, &b), DB_ENOTFOUND);
    xcommit(db, tx);
    check_db(db);
    struct mem_buf d = dump_db(db);
    assert_int_equal(d.len, 0);
    mem_buf_free(&d);
    db_close(db);
}

/* ---- random operations against a model ---- */

#define NB 5   /* top-level buckets B0..B4; B0 holds nested S0..S2 */
#define NS 3

struct mkv {
    char *k, *v;
    size_t kl, vl;
};
struct mbkt {
    bool exists;
    struct mkv *kv;
    size_t n, cap;
};
struct model {
    struct mbkt b[NB], s[NS];
};

static void mb_free(struct mbkt *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->kv[i].k);
        free(b->kv[i].v);
    }
    free(b->kv);
    *b = (struct mbkt){0};
}

static void model_free(struct model *m)
{
    for (int i = 0; i < NB; i++)
        mb_free(&m->b[i]);
    for (int i = 0; i < NS; i++)
        mb_free(&m->s[i]);
}

static char *dupmem(const void *p, size_t n)
{
    char *q = malloc(n ? n : 1);
    assert_non_null(q);
    memcpy(q, p, n);
    return q;
}

static void mb_copy(struct mbkt *to, const struct mbkt *from)
{
    *to = (struct mbkt){.exists = from->exists, .n = from->n, .cap = from->n};
    to->kv = malloc((from->n + 1) * sizeof *to->kv);
    for (size_t i = 0; i < from->n; i++)
        to->kv[i] = (struct mkv){dupmem(from->kv[i].k, from->kv[i].kl),
                                 dupmem(from->kv[i].v, from->kv[i].vl), from->kv[i].kl,
                                 from->kv[i].vl};
}

static void model_copy(struct model *to, const struct model *from)
{
    for (int i = 0; i < NB; i++)
        mb_copy(&to->b[i], &from->b[i]);
    for (int i = 0; i < NS; i++)
        mb_copy(&to->s[i], &from->s[i]);
}

static size_t mb_find(const struct mbkt *b, const char *k, size_t kl, bool *exact)
{
    size_t lo = 0, hi = b->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (db_cmp((const uint8_t *)b->kv[mid].k, b->kv[mid].kl, (const uint8_t *)k, kl) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *exact = lo < b->n && !db_cmp((const uint8_t *)b->kv[lo].k, b->kv[lo].kl, (const uint8_t *)k, kl);
    return lo;
}

static void mb_put(struct mbkt *b, const char *k, size_t kl, const char *v, size_t vl)
{
    bool ex;
    size_t i = mb_find(b, k, kl, &ex);
    if (ex) {
        free(b->kv[i].v);
        b->kv[i].v = dupmem(v, vl);
        b->kv[i].vl = vl;
        return;
    }
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 16;
        b->kv = realloc(b->kv, b->cap * sizeof *b->kv);
    }
    memmove(&b->kv[i + 1], &b->kv[i], (b->n - i) * sizeof *b->kv);
    b->kv[i] = (struct mkv){dupmem(k, kl), dupmem(v, vl), kl, vl};
    b->n++;
}

static void mb_del(struct mbkt *b, const char *k, size_t kl)
{
    bool ex;
    size_t i = mb_find(b, k, kl, &ex);
    if (!ex)
        return;
    free(b->kv[i].k);
    free(b->kv[i].v);
    memmove(&b->kv[i], &b->kv[i + 1], (b->n - i - 1) * sizeof *b->kv);
    b->n--;
}

static void bname(char *out, char c, int i)
{
    out[0] = c;
    out[1] = (char)('0' + i);
    out[2] = 0;
}

/* Compares a bucket with the model forward, backward and at random seeks. */
static void verify_bucket(struct db_tx *tx, struct db_bucket *b, const struct mbkt *m,
                          const struct model *mm, bool with_subs)
{
    struct db_cursor c;
    struct db_val k, v;
    size_t i = 0, subs = 0;
    int rc;
    db_cursor_init(&c, tx, b);
    for (rc = db_cursor_first(&c, &k, &v); !rc; rc = db_cursor_next(&c, &k, &v)) {
        if (!v.p) {
            assert_true(with_subs && k.len == 2 && k.p[0] == 'S' && mm->s[k.p[1] - '0'].exists);
            subs++;
            continue;
        }
        assert_true(i < m->n);
        assert_int_equal(k.len, m->kv[i].kl);
        assert_memory_equal(k.p, m->kv[i].k, k.len);
        assert_int_equal(v.len, m->kv[i].vl);
        if (v.len)
            assert_memory_equal(v.p, m->kv[i].v, v.len);
        i++;
    }
    if (rc != DB_ENOTFOUND)
        fail_msg("iterate: %d %s", rc, db_tx_errmsg(tx));
    assert_int_equal(i, m->n);
    size_t want_subs = 0;
    for (int s = 0; with_subs && s < NS; s++)
        want_subs += mm->s[s].exists;
    assert_int_equal(subs, want_subs);
    size_t back = 0;
    for (rc = db_cursor_last(&c, &k, &v); !rc; rc = db_cursor_prev(&c, &k, &v))
        back++;
    assert_int_equal(rc, DB_ENOTFOUND);
    assert_int_equal(back, m->n + subs);
    for (int t = 0; t < 20 && m->n; t++) {
        const struct mkv *e = &m->kv[rnd() % m->n];
        char probe[64];
        size_t pl = e->kl < sizeof probe - 1 ? e->kl : sizeof probe - 1;
        memcpy(probe, e->k, pl);
        if (rnd() & 1)
            probe[pl++] = 0; /* just after the key */
        bool ex;
        size_t at = mb_find(m, probe, pl, &ex);
        rc = db_cursor_seek(&c, probe, pl, &k, &v);
        while (!rc && !v.p)
            rc = db_cursor_next(&c, &k, &v);
        if (at == m->n) {
            assert_int_equal(rc, DB_ENOTFOUND);
        } else {
            OK(rc);
            assert_int_equal(k.len, m->kv[at].kl);
            assert_memory_equal(k.p, m->kv[at].k, k.len);
        }
    }
}

static void verify_model(struct db *db, const struct model *m)
{
    struct db_tx *tx = xbegin(db, false);
    char name[3];
    for (int i = 0; i < NB; i++) {
        struct db_bucket *b;
        bname(name, 'B', i);
        int rc = db_bucket_get(tx, NULL, name, 2, &b);
        if (!m->b[i].exists) {
            assert_int_equal(rc, DB_ENOTFOUND);
            continue;
        }
        OK(rc);
        verify_bucket(tx, b, &m->b[i], m, i == 0);
        for (int s = 0; i == 0 && s < NS; s++) {
            struct db_bucket *sb;
            bname(name, 'S', s);
            rc = db_bucket_get(tx, b, name, 2, &sb);
            if (!m->s[s].exists) {
                assert_int_equal(rc, DB_ENOTFOUND);
                continue;
            }
            OK(rc);
            verify_bucket(tx, sb, &m->s[s], m, false);
        }
    }
    if (db_check(tx))
        fail_msg("check: %s", db_tx_errmsg(tx));
    db_rollback(tx);
}

static void rand_key(char *k, size_t *kl, int space)
{
    int n = (int)(rnd() % (uint64_t)space);
    *kl = (size_t)snprintf(k, 64, "k%06d", n);
    if (n % 7 == 0) { /* some long keys */
        memset(k + *kl, 'x', 40);
        *kl += 40;
    }
}

static size_t rand_val(char *v, size_t cap)
{
    uint64_t r = rnd() % 100;
    size_t n = r < 2 ? 4000 + rnd() % 16000 : r < 10 ? 0 : rnd() % 120;
    if (n > cap)
        n = cap;
    for (size_t i = 0; i < n; i++)
        v[i] = (char)('a' + (i * 7 + n) % 26);
    return n;
}

/* One transaction of random work on db and the working model. */
static void random_txn(struct db_tx *tx, struct model *w, char *val, size_t vcap)
{
    char name[3], k[64];
    size_t kl;
    int ops = 1 + (int)(rnd() % 150), kind = (int)(rnd() % 20);
    for (int op = 0; op < ops; op++) {
        int bi = (int)(rnd() % NB), si = (int)(rnd() % NS);
        bool nested = bi == 0 && rnd() % 3 == 0;
        struct db_bucket *b, *top;
        bname(name, 'B', bi);
        uint64_t r = rnd() % 100;
        if (r < 3) { /* create or delete a bucket */
            struct mbkt *mb = nested ? &w->s[si] : &w->b[bi];
            if (nested) {
                if (!w->b[0].exists)
                    continue;
                OK(db_bucket_get(tx, NULL, "B0", 2, &top));
                bname(name, 'S', si);
            } else {
                top = NULL;
            }
            if (mb->exists && r == 0) {
                OK(db_bucket_delete(tx, top, name, 2));
                mb_free(mb);
                if (!nested && bi == 0)
                    for (int s = 0; s < NS; s++)
                        mb_free(&w->s[s]);
            } else if (!mb->exists) {
                OK(db_bucket_create(tx, top, name, 2, false, &b));
                mb->exists = true;
            }
            continue;
        }
        if (!w->b[bi].exists)
            continue;
        OK(db_bucket_get(tx, NULL, name, 2, &b));
        struct mbkt *mb = &w->b[bi];
        if (nested) {
            bname(name, 'S', si);
            if (!w->s[si].exists)
                continue;
            OK(db_bucket_get(tx, b, name, 2, &b));
            mb = &w->s[si];
        }
        if (kind == 0 && op == 0) { /* bulk load: splits */
            int base = (int)(rnd() % 100000);
            for (int i = 0; i < 2500; i++) {
                kl = (size_t)snprintf(k, sizeof k, "k%06d", base + i);
                size_t vl = rnd() % 60;
                OK(db_put(b, k, kl, val, vl));
                mb_put(mb, k, kl, val, vl);
            }
        } else if (kind == 1 && op == 0) { /* bulk delete: merges */
            for (size_t i = mb->n; i-- > 0;) {
                if (rnd() % 10 == 0)
                    continue;
                OK(db_del(b, mb->kv[i].k, mb->kv[i].kl));
                mb_del(mb, mb->kv[i].k, mb->kv[i].kl);
            }
        } else if (r < 70) {
            rand_key(k, &kl, 3000);
            size_t vl = rand_val(val, vcap);
            OK(db_put(b, k, kl, val, vl));
            mb_put(mb, k, kl, val, vl);
        } else if (mb->n) {
            const struct mkv *e = &mb->kv[rnd() % mb->n];
            memcpy(k, e->k, e->kl);
            kl = e->kl;
            OK(db_del(b, k, kl));
            mb_del(mb, k, kl);
        }
    }
}

static void test_random_model(void **state)
{
    (void)state;
    const char *p = tpath("random.db");
    unsigned flags = 0;
    struct db *db = xopen(p, flags);
    struct model committed = {0}, work = {0};
    size_t vcap = 20000;
    char *val = malloc(vcap);
    for (size_t i = 0; i < vcap; i++)
        val[i] = (char)('A' + i % 26);
    int commits = 0, rollbacks = 0, reopens = 0;
    for (int round = 0; round < 400; round++) {
        model_free(&work);
        model_copy(&work, &committed);
        struct db_tx *tx = xbegin(db, true);
        random_txn(tx, &work, val, vcap);
        if (rnd() % 8 == 0) {
            db_rollback(tx);
            rollbacks++;
        } else {
            xcommit(db, tx);
            model_free(&committed);
            model_copy(&committed, &work);
            commits++;
        }
        verify_model(db, &committed);
        if (round % 5 == 4) {
            db_close(db);
            flags = (unsigned)(rnd() % 2) ? DB_NO_FREELIST_SYNC : 0;
            db = xopen(p, flags);
            reopens++;
            verify_model(db, &committed);
        }
    }
    print_message("random: %d commits, %d rollbacks, %d reopens, file %" PRId64 " bytes, %" PRId64
                  " in use\n", commits, rollbacks, reopens, db_size(db), db_size_in_use(db));
    db_close(db);
    model_free(&committed);
    model_free(&work);
    free(val);
}

/* ---- splits, merges, inline buckets ---- */

static uint64_t bucket_root(struct db *db, const char *name)
{
    struct db_tx *tx = xbegin(db, false);
    struct db_cursor c;
    struct db_inode e;
    bool exact;
    OK(db_find(&c, &tx->root, name, strlen(name), &exact, &e));
    assert_true(exact);
    uint64_t root = ld64(e.val);
    db_rollback(tx);
    return root;
}

static int tree_depth(struct db *db, const char *name)
{
    struct db_tx *tx = xbegin(db, false);
    struct db_bucket *b;
    struct db_cursor c;
    struct db_val k, v;
    OK(db_bucket_get(tx, NULL, name, strlen(name), &b));
    db_cursor_init(&c, tx, b);
    int rc = db_cursor_first(&c, &k, &v);
    assert_true(rc == 0 || rc == DB_ENOTFOUND);
    int d = rc ? 1 : c.cu_depth;
    db_rollback(tx);
    return d;
}

static void test_splits_merges_inline(void **state)
{
    (void)state;
    struct db *db = xopen(tpath("split.db"), 0);
    struct db_tx *tx = xbegin(db, true);
    struct db_bucket *b = xbucket(tx, NULL, "small");
    xput(b, "a", "1");
    xput(b, "b", "2");
    xcommit(db, tx);
    assert_int_equal(bucket_root(db, "small"), 0); /* inline */
    int64_t size0 = db_size_in_use(db);

    char k[32], v[200];
    memset(v, 'v', sizeof v);
    tx = xbegin(db, true);
    OK(db_bucket_get(tx, NULL, "small", 5, &b));
    for (int i = 0; i < 20000; i++) {
        snprintf(k, sizeof k, "key%08d", (int)((uint64_t)i * 7919 % 20000));
        OK(db_put(b, k, strlen(k), v, 50 + i % 100));
    }
    xcommit(db, tx);
    assert_true(bucket_root(db, "small") != 0);
    assert_true(tree_depth(db, "small") >= 3);
    check_db(db);

    /* delete all but two keys over several commits: merges, then inline again */
    for (int round = 0; round < 4; round++) {
        tx = xbegin(db, true);
        OK(db_bucket_get(tx, NULL, "small", 5, &b));
        for (int i = round; i < 20000; i += 4) {
            if (i == 0 || i == 1)
                continue;
            snprintf(k, sizeof k, "key%08d", i);
            OK(db_del(b, k, strlen(k)));
        }
        xcommit(db, tx);
        check_db(db);
    }
    assert_int_equal(bucket_root(db, "small"), 0);
    assert_int_equal(tree_depth(db, "small"), 1);
    /* the freed pages are free, not in use, once the next commit releases them */
    tx = xbegin(db, true);
    xcommit(db, tx);
    print_message("merges: in use %" PRId64 " -> %" PRId64 " of %" PRId64 " bytes\n", size0,
                  db_size_in_use(db), db_size(db));
    assert_true(db_size_in_use(db) <= 32 * 4096); /* metas, root, freelist pages */

    /* one huge value: overflow pages; and deleting it frees them */
    char *huge = malloc(1 << 20);
    for (int i = 0; i < 1 << 20; i++)
        huge[i] = (char)(i * 31);
    tx = xbegin(db, true);
    OK(db_bucket_get(tx, NULL, "small", 5, &b));
    OK(db_put(b, "huge", 4, huge, 1 << 20));
    xcommit(db, tx);
    tx = xbegin(db, false);
    struct db_val got;
    OK(db_bucket_get(tx, NULL, "small", 5, &b));
    OK(db_get(b, "huge", 4, &got));
    assert_int_equal(got.len, 1 << 20);
    assert_memory_equal(got.p, huge, 1 << 20);
    db_rollback(tx);
    int64_t with_huge = db_size_in_use(db);
    tx = xbegin(db, true);
    OK(db_bucket_get(tx, NULL, "small", 5, &b));
    OK(db_del(b, "huge", 4));
    xcommit(db, tx);
    tx = xbegin(db, true); /* the next commit releases the pending pages */
    xcommit(db, tx);
    assert_true(db_size_in_use(db) < with_huge - (1 << 20));
    check_db(db);
    free(huge);
    db_close(db);
}

/* ---- the path etcd takes: batches of increasing 17-byte keys ---- */

static void revkey(char *k, int64_t main, int64_t sub)
{
    /* etcd's revision key: 8-byte big-endian main, '_', 8-byte sub */
    for (int i = 0; i < 8; i++) {
        k[i] = (char)(main >> (56 - 8 * i));
        k[9 + i] = (char)(sub >> (56 - 8 * i));
    }
    k[8] = '_';
}

static void test_append_batches(void **state)
{
    (void)state;
    struct db *db = xopen(tpath("append.db"), DB_NO_FREELIST_SYNC);
    char k[17], v[120];
    memset(v, 'x', sizeof v);
    int64_t rev = 1;
    double t0 = now();
    for (int batch = 0; batch < 20; batch++) {
        struct db_tx *tx = xbegin(db, true);
        struct db_bucket *b = xbucket(tx, NULL, "key");
        db_bucket_set_fill(b, 0.9);
        for (int i = 0; i < 10000; i++) {
            revkey(k, ++rev, 0);
            OK(db_put(b, k, 17, v, sizeof v));
        }
        xcommit(db, tx);
    }
    double t1 = now();
    struct db_tx *tx = xbegin(db, false);
    struct db_bucket *b;
    struct db_cursor c;
    struct db_val kk, vv;
    OK(db_bucket_get(tx, NULL, "key", 3, &b));
    db_cursor_init(&c, tx, b);
    int n = 0, rc;
    int64_t last = 0;
    for (rc = db_cursor_first(&c, &kk, &vv); !rc; rc = db_cursor_next(&c, &kk, &vv)) {
        assert_int_equal(kk.len, 17);
        int64_t m = 0;
        for (int i = 0; i < 8; i++)
            m = m << 8 | kk.p[i];
        assert_true(m > last);
        last = m;
        n++;
    }
    double t2 = now();
    assert_int_equal(rc, DB_ENOTFOUND);
    assert_int_equal(n, 200000);
    OK(db_check(tx));
    db_rollback(tx);
    /* fill 0.9: pages are about 90% full */
    double payload = 200000.0 * (16 + 17 + sizeof v);
    double used = (double)db_size_in_use(db);
    print_message("append: 20 x 10000 puts %.0f ms, full scan %.0f ms, %.0f%% of used bytes are "
                  "payload\n", (t1 - t0) * 1000, (t2 - t1) * 1000, 100 * payload / used);
    assert_true(payload / used > 0.8);
    db_close(db);
}

/* ---- page reuse ---- */

static void test_free_page_reuse(void **state)
{
    (void)state;
    for (int mode = 0; mode < 2; mode++) {
        const char *p = tpath(mode ? "reuse2.db" : "reuse.db");
        struct db *db = xopen(p, mode ? DB_NO_FREELIST_SYNC : 0);
        char k[32], v[100];
        int64_t at50 = 0, max_after = 0;
        for (int round = 0; round < 300; round++) {
            struct db_tx *tx = xbegin(db, true);
            struct db_bucket *b = xbucket(tx, NULL, "b");
            for (int i = 0; i < 200; i++) {
                int n = round == 0 ? i * 10 : (int)(rnd() % 2000);
                snprintf(k, sizeof k, "key%05d", n);
                memset(v, 'a' + round % 26, sizeof v);
                OK(db_put(b, k, strlen(k), v, sizeof v));
            }
            xcommit(db, tx);
            if (round == 50)
                at50 = db_size(db);
            if (round > 50 && db_size(db) > max_after)
                max_after = db_size(db);
            if (round == 120) { /* reopening keeps the free list */
                db_close(db);
                db = xopen(p, mode ? DB_NO_FREELIST_SYNC : 0);
            }
        }
        print_message("reuse%s: size after 50 commits %" PRId64 ", max after %" PRId64 "\n",
                      mode ? " (no freelist sync)" : "", at50, max_after);
        assert_true(max_after <= at50 + at50 / 10);
        check_db(db);

        /* an open reader pins what it sees: the file grows, then stops */
        struct db_tx *r = xbegin(db, false);
        int64_t before = db_size(db);
        for (int round = 0; round < 30; round++) {
            struct db_tx *tx = xbegin(db, true);
            struct db_bucket *b = xbucket(tx, NULL, "b");
            for (int i = 0; i < 2000; i += 3) {
                snprintf(k, sizeof k, "key%05d", i);
                OK(db_put(b, k, strlen(k), "new", 3));
            }
            xcommit(db, tx);
        }
        assert_true(db_size(db) > before);
        struct db_bucket *rb;
        struct db_val got;
        OK(db_bucket_get(r, NULL, "b", 1, &rb));
        OK(db_get(rb, "key00000", 8, &got));
        assert_int_equal(got.len, 100); /* still the old value */
        db_rollback(r);
        int64_t grown = db_size(db);
        for (int round = 0; round < 30; round++) {
            struct db_tx *tx = xbegin(db, true);
            struct db_bucket *b = xbucket(tx, NULL, "b");
            for (int i = 0; i < 2000; i += 3) {
                snprintf(k, sizeof k, "key%05d", i);
                OK(db_put(b, k, strlen(k), round & 1 ? "odd" : "eve", 3));
            }
            xcommit(db, tx);
        }
        assert_int_equal(db_size(db), grown);
        check_db(db);
        db_close(db);
    }
}

/* ---- crashes, ENOSPC, failing allocations ---- */

/* A fixed second transaction: grows, shrinks, overflows, buckets come and go. */
static void crash_txn(struct db_tx *tx)
{
    char k[32], *v = malloc(9000);
    memset(v, 'q', 9000);
    struct db_bucket *b = xbucket(tx, NULL, "data");
    for (int i = 0; i < 1500; i++) {
        snprintf(k, sizeof k, "new%05d", i);
        OK(db_put(b, k, strlen(k), v, (size_t)(i % 40)));
    }
    for (int i = 0; i < 400; i += 2) {
        snprintf(k, sizeof k, "old%05d", i);
        OK(db_del(b, k, strlen(k)));
    }
    for (int i = 0; i < 4000; i += 97) { /* scattered leaves: many write runs */
        snprintf(k, sizeof k, "old%05d", i);
        OK(db_put(b, k, strlen(k), "touched", 7));
    }
    OK(db_put(b, "big", 3, v, 9000));
    OK(db_bucket_delete(tx, NULL, "gone", 4));
    struct db_bucket *n = xbucket(tx, NULL, "fresh");
    xput(n, "x", "y");
    free(v);
}

static void crash_base(const char *p, unsigned flags)
{
    char k[32], v[64];
    unlink(p);
    struct db *db = xopen(p, flags);
    struct db_tx *tx = xbegin(db, true);
    struct db_bucket *b = xbucket(tx, NULL, "data"), *g = xbucket(tx, NULL, "gone");
    memset(v, 'o', sizeof v);
    for (int i = 0; i < 4000; i++) {
        snprintf(k, sizeof k, "old%05d", i);
        OK(db_put(b, k, strlen(k), v, sizeof v));
        if (i < 400)
            OK(db_put(g, k, strlen(k), v, 10));
    }
    xcommit(db, tx);
    /* more commits rewriting scattered leaves: both metas in use and a
     * fragmented free list, so the next commit writes many separate runs */
    for (int round = 0; round < 3; round++) {
        tx = xbegin(db, true);
        b = xbucket(tx, NULL, "data");
        for (int i = round; i < 4000; i += 7 * (round + 2)) {
            snprintf(k, sizeof k, "old%05d", i);
            xput(b, k, "rewritten");
        }
        xcommit(db, tx);
    }
    db_close(db);
}

static void test_crash_every_write(void **state)
{
    (void)state;
    for (unsigned flags = 0; flags <= DB_NO_FREELIST_SYNC; flags += DB_NO_FREELIST_SYNC) {
        const char *base = tpath("crash-base.db"), *work = tpath("crash.db");
        crash_base(base, flags);
        struct mem_buf s0 = dump_path(base, flags), s1;
        copy_file(base, work);
        struct db *db = xopen(work, flags);
        struct db_tx *tx = xbegin(db, true);
        crash_txn(tx);
        xcommit(db, tx);
        db_close(db);
        s1 = dump_path(work, flags);
        assert_false(buf_eq(&s0, &s1));
        int olds = 0, news = 0, usable = 0;
        for (long at = 0;; at++) {
            copy_file(base, work);
            db = xopen(work, flags);
            tx = xbegin(db, true);
            crash_txn(tx);
            db_fault_at = at;
            db_fault_errno = at % 2 ? ENOSPC : EIO;
            int rc = db_commit(tx);
            db_fault_at = -1;
            if (rc) {
                assert_true(rc == DB_ENOSPC || rc == DB_EIO);
                assert_true(strstr(db_errmsg(db), work) != NULL);
                /* a failure before the meta write leaves db usable */
                if (db_begin(db, true, &tx) == 0) {
                    usable++;
                    db_rollback(tx);
                }
            }
            db_close(db);
            struct mem_buf got = dump_path(work, flags);
            if (buf_eq(&got, &s0))
                olds++;
            else if (buf_eq(&got, &s1))
                news++;
            else
                fail_msg("fault at I/O %ld: state is neither old nor new", at);
            mem_buf_free(&got);
            if (!rc) {
                assert_true(buf_eq(&got, &s1) || got.len == 0);
                print_message("crash (flags %u): %ld I/O points, %d old, %d new, %d usable after\n",
                              flags, at, olds, news, usable);
                break;
            }
        }
        assert_true(olds > 1);
        assert_true(news >= 1); /* the fault in the final sync */
        assert_true(usable >= 1);

        /* after a failed page write the same db commits fine */
        copy_file(base, work);
        db = xopen(work, flags);
        tx = xbegin(db, true);
        crash_txn(tx);
        db_fault_at = 1;
        db_fault_errno = ENOSPC;
        assert_int_equal(db_commit(tx), DB_ENOSPC);
        db_fault_at = -1;
        tx = xbegin(db, true);
        crash_txn(tx);
        xcommit(db, tx);
        struct mem_buf again = dump_db(db);
        assert_true(buf_eq(&again, &s1));
        mem_buf_free(&again);
        db_close(db);
        again = dump_path(work, flags);
        assert_true(buf_eq(&again, &s1));
        mem_buf_free(&again);
        mem_buf_free(&s0);
        mem_buf_free(&s1);
    }
}

static void test_enospc_rlimit(void **state)
{
    (void)state;
    const char *p = tpath("fsize.db");
    struct db *db = xopen(p, 0);
    struct mem_buf before = dump_db(db);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 64 * 1024;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    char *v = malloc(200000);
    memset(v, 'z', 200000);
    struct db_tx *tx = xbegin(db, true);
    struct db_bucket *b = xbucket(tx, NULL, "b");
    OK(db_put(b, "v", 1, v, 200000));
    int rc = db_commit(tx);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_DFL);
    assert_int_equal(rc, DB_ENOSPC);
    assert_non_null(strstr(db_errmsg(db), "pwrite"));
    struct mem_buf after = dump_db(db);
    assert_true(buf_eq(&before, &after));
    mem_buf_free(&after);
    tx = xbegin(db, true); /* space is back: the next commit succeeds */
    b = xbucket(tx, NULL, "b");
    OK(db_put(b, "v", 1, v, 200000));
    xcommit(db, tx);
    db_close(db);
    after = dump_path(p, 0);
    assert_true(after.len > 200000);
    mem_buf_free(&after);
    mem_buf_free(&before);
    free(v);
}

/* crash_txn's work with every result checked: the first failure. */
static int oom_txn(struct db_tx *tx, struct db_bucket **bp)
{
    struct db_bucket *g;
    char k[32], v[40] = {0};
    int rc = db_bucket_create(tx, NULL, "data", 4, true, bp);
    for (int i = 0; !rc && i < 1500; i++) {
        snprintf(k, sizeof k, "new%05d", i);
        rc = db_put(*bp, k, strlen(k), v, (size_t)(i % 40));
    }
    for (int i = 0; !rc && i < 400; i += 2) {
        snprintf(k, sizeof k, "old%05d", i);
        rc = db_del(*bp, k, strlen(k));
    }
    if (!rc)
        rc = db_bucket_delete(tx, NULL, "gone", 4);
    if (!rc)
        rc = db_bucket_create(tx, NULL, "fresh", 5, false, &g);
    if (!rc)
        rc = db_put(g, "x", 1, "y", 1);
    return rc;
}

static void test_alloc_failures(void **state)
{
    (void)state;
    const char *base = tpath("oom-base.db"), *work = tpath("oom.db");
    struct db_bucket *b = NULL;
    crash_base(base, 0);
    struct mem_buf s0 = dump_path(base, 0), s1;
    copy_file(base, work);
    struct db *db = xopen(work, 0);
    struct db_tx *tx = xbegin(db, true);
    OK(oom_txn(tx, &b));
    xcommit(db, tx);
    db_close(db);
    s1 = dump_path(work, 0);
    int failures = 0;
    for (long n = 0;; n++) {
        copy_file(base, work);
        char err[256];
        bool done = false;
        mem_fail_after(n, 1);
        int rc = db_open(work, 0, &db, err, sizeof err);
        if (!rc) {
            rc = db_begin(db, true, &tx);
            if (!rc) {
                b = NULL;
                rc = oom_txn(tx, &b);
                if (rc) {
                    assert_int_equal(rc, DB_ENOMEM);
                    if (b) /* sticky: the transaction keeps failing */
                        assert_int_equal(db_put(b, "a", 1, "b", 1), DB_ENOMEM);
                    db_rollback(tx);
                } else {
                    rc = db_commit(tx);
                    done = rc == 0;
                }
            }
            mem_fail_after(-1, 0);
            db_close(db);
        }
        mem_fail_after(-1, 0);
        if (rc) {
            assert_int_equal(rc, DB_ENOMEM);
            failures++;
        }
        struct mem_buf got = dump_path(work, 0);
        bool same = buf_eq(&got, &s0) || buf_eq(&got, &s1);
        mem_buf_free(&got);
        if (!same)
            fail_msg("allocation %ld failing left a state that is neither old nor new", n);
        if (done)
            break;
    }
    print_message("alloc failures: %d failing allocation points survived\n", failures);
    assert_true(failures > 10);
    mem_buf_free(&s0);
    mem_buf_free(&s1);
}

/* ---- damaged files ---- */

static void test_meta_bitflips(void **state)
{
    (void)state;
    const char *p = tpath("meta.db");
    struct db *db = xopen(p, 0);
    struct mem_buf states[4];
    for (int i = 0; i < 4; i++) {
        struct db_tx *tx = xbegin(db, true);
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        xput(xbucket(tx, NULL, "b"), k, "v");
        xcommit(db, tx);
        states[i] = dump_db(db);
    }
    db_close(db); /* txids 2..5: the newest (5) is in meta page 1 */
    uint8_t bit = 0x10;
    uint8_t byte;
    FILE *f = fopen(p, "rb");
    fseek(f, 4096 + 16 + 40, SEEK_SET); /* the high-water mark of meta 1 */
    assert_int_equal(fread(&byte, 1, 1, f), 1);
    fclose(f);
    byte ^= bit;
    patch_file(p, 4096 + 16 + 40, &byte, 1);
    struct mem_buf got = dump_path(p, 0);
    assert_true(buf_eq(&got, &states[2])); /* meta 0 has txid 4 */
    mem_buf_free(&got);
    /* committing on top writes txid 5 into page 1 again: it heals */
    db = xopen(p, 0);
    struct db_tx *tx = xbegin(db, true);
    xput(xbucket(tx, NULL, "b"), "k3", "v");
    xcommit(db, tx);
    got = dump_db(db);
    assert_true(buf_eq(&got, &states[3]));
    mem_buf_free(&got);
    db_close(db);
    /* both damaged: refused, with a message naming both */
    uint8_t junk[4] = {1, 2, 3, 4};
    patch_file(p, 16 + 56, junk, 4);
    patch_file(p, 4096 + 16 + 56, junk, 4);
    char err[256];
    assert_int_equal(db_open(p, 0, &db, err, sizeof err), DB_ECORRUPT);
    assert_non_null(strstr(err, "no valid meta page"));
    assert_non_null(strstr(err, p));
    for (int i = 0; i < 4; i++)
        mem_buf_free(&states[i]);
}

static void test_garbage_files(void **state)
{
    (void)state;
    char err[256];
    struct db *db;
    const char *p = tpath("garbage.db");
    uint8_t *junk = malloc(65536);
    for (int i = 0; i < 65536; i++)
        junk[i] = (uint8_t)rnd();
    FILE *f = fopen(p, "wb");
    fwrite(junk, 1, 65536, f);
    fclose(f);
    assert_int_equal(db_open(p, 0, &db, err, sizeof err), DB_ECORRUPT);
    assert_non_null(strstr(err, "no valid meta page"));
    f = fopen(p, "wb");
    fwrite(junk, 1, 100, f);
    fclose(f);
    assert_int_equal(db_open(p, 0, &db, err, sizeof err), DB_ECORRUPT);
    assert_non_null(strstr(err, "too small"));
    free(junk);
    /* a truncated file: the meta points past its end */
    db = xopen(p = tpath("trunc.db"), 0);
    struct db_tx *tx = xbegin(db, true);
    struct db_bucket *b = xbucket(tx, NULL, "b");
    char k[16];
    for (int i = 0; i < 3000; i++) {
        snprintf(k, sizeof k, "%08d", i);
        xput(b, k, "some value here");
    }
    xcommit(db, tx);
    db_close(db);
    assert_int_equal(truncate(p, 8 * 4096), 0);
    assert_int_equal(db_open(p, 0, &db, err, sizeof err), DB_ECORRUPT);
    assert_non_null(strstr(err, "truncated"));
    /* locked by another opener */
    db = xopen(tpath("locked.db"), 0);
    struct db *db2;
    assert_int_equal(db_open(tpath("locked.db"), 0, &db2, err, sizeof err), DB_EBUSY);
    db_close(db);
}

/* Finds the id of the first leaf and of the root branch of bucket b. */
static void find_pages(const char *p, uint64_t *branch, uint64_t *leaf)
{
    struct db *db = xopen(p, 0);
    struct db_tx *tx = xbegin(db, false);
    struct db_bucket *b;
    struct db_cursor c;
    struct db_val k, v;
    OK(db_bucket_get(tx, NULL, "b", 1, &b));
    db_cursor_init(&c, tx, b);
    OK(db_cursor_first(&c, &k, &v));
    assert_true(c.cu_depth >= 2);
    *branch = ld64(c.cu_stack[0].cr_page);
    *leaf = ld64(c.cu_stack[c.cu_depth - 1].cr_page);
    db_rollback(tx);
    db_close(db);
}

/* Reads everything; returns the first error and its message. */
static int read_all(const char *p, char *msg, size_t mlen)
{
    char err[256];
    struct db *db;
    int rc = db_open(p, 0, &db, err, sizeof err);
    if (rc) {
        snprintf(msg, mlen, "%s", err);
        return rc;
    }
    struct db_tx *tx = xbegin(db, false);
    struct db_bucket *b;
    struct db_cursor c;
    struct db_val k, v;
    rc = db_bucket_get(tx, NULL, "b", 1, &b);
    if (!rc) {
        db_cursor_init(&c, tx, b);
        for (rc = db_cursor_first(&c, &k, &v); !rc; rc = db_cursor_next(&c, &k, &v)) {
        }
        if (rc == DB_ENOTFOUND)
            rc = db_check(tx);
    }
    snprintf(msg, mlen, "%s", db_tx_errmsg(tx));
    db_rollback(tx);
    if (!rc) {
        /* and writing over it */
        struct db_tx *w = xbegin(db, true);
        rc = db_bucket_get(w, NULL, "b", 1, &b);
        for (int i = 0; !rc && i < 100; i++)
            rc = db_put(b, "00000500", 8, "x", 1);
        rc = rc ? (db_rollback(w), rc) : db_commit(w);
    }
    db_close(db);
    return rc;
}

static void test_corrupt_pages(void **state)
{
    (void)state;
    const char *good = tpath("good.db"), *bad = tpath("bad.db");
    struct db *db = xopen(good, 0);
    struct db_tx *tx = xbegin(db, true);
    struct db_bucket *b = xbucket(tx, NULL, "b");
    char k[16];
    for (int i = 0; i < 3000; i++) {
        snprintf(k, sizeof k, "%08d", i);
        xput(b, k, "some value here");
    }
    xcommit(db, tx);
    db_close(db);
    uint64_t branch, leaf;
    find_pages(good, &branch, &leaf);
    char msg[256];
    struct {
        const char *what;
        int which; /* 0 leaf, 1 branch */
        long off;
        uint64_t val;
        int size;
    } cases[] = {
        {"leaf element past the page", 0, 16 + 16 * 3 + 8, 100000, 4},
        {"leaf count too big", 0, 10, 0xFFF0, 2},
        {"leaf flags", 0, 8, 0x40, 2},
        {"leaf page id", 0, 0, 7777, 8},
        {"leaf overflow", 0, 12, 1000000, 4},
        {"branch child beyond high water", 1, 16 + 8, 1u << 30, 8},
        {"branch child is a meta page", 1, 16 + 16 + 8, 1, 8},
        {"branch child is itself", 1, 16 + 8, 0, 8},
        {"branch key past the page", 1, 16 + 4, 50000, 4},
        {"leaf keys out of order", 0, 16 + 16 * 5 + 8, 1, 4},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t id = cases[i].which ? branch : leaf;
        uint64_t val = cases[i].val ? cases[i].val : id;
        copy_file(good, bad);
        patch_file(bad, (long)(id * 4096) + cases[i].off, &val, (size_t)cases[i].size);
        int rc = read_all(bad, msg, sizeof msg);
        if (rc != DB_ECORRUPT || !strstr(msg, bad) || !strstr(msg, "page"))
            fail_msg("%s: rc %d, message '%s'", cases[i].what, rc, msg);
    }
}

/* ---- snapshots, defrag, threads ---- */

static void test_snapshot(void **state)
{
    (void)state;
    const char *p = tpath("snap-src.db"), *out = tpath("snap.db");
    struct db *db = xopen(p, DB_NO_FREELIST_SYNC);
    char k[16];
    struct db_tx *tx = xbegin(db, true);
    struct db_bucket *b = xbucket(tx, NULL, "b");
    for (int i = 0; i < 5000; i++) {
        snprintf(k, sizeof k, "%08d", i);
        xput(b, k, "value");
    }
    xbucket(tx, b, "nested");
    xcommit(db, tx);
    struct mem_buf want = dump_db(db);
    struct db_tx *r = xbegin(db, false);
    tx = xbegin(db, true); /* later changes must not leak into the snapshot */
    b = xbucket(tx, NULL, "b");
    for (int i = 0; i < 5000; i += 2) {
        snprintf(k, sizeof k, "%08d", i);
        OK(db_del(b, k, strlen(k)));
    }
    xcommit(db, tx);
    FILE *f = fopen(out, "wb");
    uint64_t written;
    OK(db_tx_write_to(r, fileno(f), &written));
    fclose(f);
    assert_int_equal(written, (uint64_t)db_tx_size(r));
    db_rollback(r);
    db_close(db);
    struct mem_buf got = dump_path(out, 0);
    assert_true(buf_eq(&got, &want));
    mem_buf_free(&got);
    mem_buf_free(&want);
}

struct defrag_thr {
    struct db *db;
    int rc;
    int done;
};

static void *defrag_main(void *arg)
{
    struct defrag_thr *d = arg;
    d->rc = db_defrag(d->db);
    __atomic_store_n(&d->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void test_defrag(void **state)
{
    (void)state;
    const char *p = tpath("defrag.db");
    struct db *db = xopen(p, 0);
    char k[32], v[100];
    memset(v, 'd', sizeof v);
    struct db_tx *tx = xbegin(db, true);
    struct db_bucket *b = xbucket(tx, NULL, "key"), *n = xbucket(tx, b, "nested");
    xput(n, "in", "side");
    for (int i = 0; i < 30000; i++) {
        snprintf(k, sizeof k, "k%08d", i);
        OK(db_put(b, k, strlen(k), v, sizeof v));
    }
    xput(xbucket(tx, NULL, "meta"), "consistent_index", "12345678");
    xcommit(db, tx);
    tx = xbegin(db, true);
    b = xbucket(tx, NULL, "key");
    for (int i = 0; i < 30000; i++) {
        if (i % 10 == 0)
            continue;
        snprintf(k, sizeof k, "k%08d", i);
        OK(db_del(b, k, strlen(k)));
    }
    xcommit(db, tx);
    struct mem_buf want = dump_db(db);
    int64_t size = db_size(db);
    /* a reader open across the defrag, and readers begun while it runs on
     * another thread, read the old file; a writer waits for the end */
    struct db_tx *r = xbegin(db, false);
    struct defrag_thr d = {.db = db};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, defrag_main, &d), 0);
    int during = 0, busy_writes = 0;
    while (!__atomic_load_n(&d.done, __ATOMIC_ACQUIRE)) {
        struct db_tx *t2 = xbegin(db, false);
        struct db_bucket *kb;
        struct db_val dv;
        OK(db_bucket_get(t2, NULL, "key", 3, &kb));
        OK(db_get(kb, "k00000010", 9, &dv));
        assert_int_equal(dv.len, sizeof v);
        db_rollback(t2);
        during++;
        /* a writer begun before the defrag has started would make it
         * refuse to start (DB_EBUSY): try writers only once it runs */
        pthread_mutex_lock(&db->mu);
        bool started = db->defrag;
        pthread_mutex_unlock(&db->mu);
        if (!started)
            continue;
        struct db_tx *w2;
        int wrc = db_begin(db, true, &w2);
        if (wrc == DB_EBUSY)
            busy_writes++;
        else if (!wrc)
            db_rollback(w2);
    }
    pthread_join(th, NULL);
    OK(d.rc);
    print_message("defrag: %" PRId64 " -> %" PRId64 " bytes, %d reads and %d refused writers "
                  "during it\n", size, db_size(db), during, busy_writes);
    assert_true(db_size(db) < size / 4);
    struct db_bucket *rb;
    struct db_val rv;
    OK(db_bucket_get(r, NULL, "key", 3, &rb));
    OK(db_get(rb, "k00029990", 9, &rv));
    assert_int_equal(rv.len, sizeof v);
    assert_int_equal(db_get(rb, "k00029991", 9, &rv), DB_ENOTFOUND);
    struct mem_buf got = dump_db(db);
    assert_true(buf_eq(&got, &want));
    mem_buf_free(&got);
    /* keeps working on the new file, with the old reader still open: its
     * id must not hold back, nor be confused with, the new file's readers */
    for (int i = 0; i < 20; i++) {
        struct db_tx *r2 = xbegin(db, false);
        tx = xbegin(db, true);
        b = xbucket(tx, NULL, "key");
        for (int j = 0; j < 300; j++) {
            snprintf(k, sizeof k, "k%08d", (i * 300 + j) * 10 % 30000);
            OK(db_put(b, k, strlen(k), v, sizeof v - (size_t)i));
        }
        xcommit(db, tx);
        db_rollback(r2);
    }
    db_rollback(r);
    check_db(db);
    tx = xbegin(db, true);
    xput(xbucket(tx, NULL, "meta"), "after", "defrag");
    xcommit(db, tx);
    db_close(db);
    db = xopen(p, 0);
    tx = xbegin(db, false);
    struct db_val got_v;
    OK(db_bucket_get(tx, NULL, "meta", 4, &b));
    OK(db_get(b, "after", 5, &got_v));
    db_rollback(tx);
    check_db(db);
    db_close(db);
    mem_buf_free(&want);
}

struct thr {
    struct db *db;
    _Atomic int stop;
    _Atomic int reads;
};

static void *reader_main(void *arg)
{
    struct thr *t = arg;
    while (!t->stop) {
        struct db_tx *tx;
        if (db_begin(t->db, false, &tx))
            abort();
        struct db_bucket *b;
        if (db_bucket_get(tx, NULL, "t", 1, &b) == 0) {
            struct db_val v, k;
            struct db_cursor c;
            if (db_get(b, "n", 1, &v) || v.len != 8)
                abort();
            uint64_t n;
            memcpy(&n, v.p, 8);
            uint64_t count = 0;
            db_cursor_init(&c, tx, b);
            int rc;
            for (rc = db_cursor_first(&c, &k, &v); !rc; rc = db_cursor_next(&c, &k, &v))
                count++;
            if (rc != DB_ENOTFOUND || count != n * 20 + 1)
                abort(); /* a snapshot must be exactly one commit */
        }
        db_rollback(tx);
        (void)db_size_in_use(t->db);
        t->reads++;
    }
    return NULL;
}

static void *commit_main(void *arg)
{
    struct db_tx *tx = arg;
    return (void *)(intptr_t)db_commit(tx);
}

/* Two readers check every snapshot is exactly one commit while the writer
 * commits, some commits on a thread other than the one that began them (as
 * etcd's worker does). */
static void test_threads(void **state)
{
    (void)state;
    struct thr t = {.db = xopen(tpath("threads.db"), 0)};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, reader_main, &t), 0);
    char k[32];
    for (uint64_t n = 1; n <= 150; n++) {
        struct db_tx *tx = xbegin(t.db, true);
        struct db_bucket *b = xbucket(tx, NULL, "t");
        for (int i = 0; i < 20; i++) {
            snprintf(k, sizeof k, "k%08" PRIu64, n * 100 + (uint64_t)i);
            xput(b, k, "0123456789012345678901234567890123456789");
        }
        OK(db_put(b, "n", 1, &n, 8));
        if (n % 10 == 0) { /* churn: rewrite old keys so pages get freed */
            for (uint64_t m = 1; m < n; m++) {
                snprintf(k, sizeof k, "k%08" PRIu64, m * 100);
                xput(b, k, "rewritten");
            }
        }
        if (n % 3) {
            xcommit(t.db, tx);
        } else {
            pthread_t w;
            void *rc;
            assert_int_equal(pthread_create(&w, NULL, commit_main, tx), 0);
            pthread_join(w, &rc);
            assert_int_equal((intptr_t)rc, 0);
        }
    }
    t.stop = 1;
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    print_message("threads: %d consistent reads during 150 commits\n", t.reads);
    assert_true(t.reads > 0);
    check_db(t.db);
    db_close(t.db);
}

/* ---- interop with real etcd ---- */

static uint32_t crc32c(uint32_t crc, const uint8_t *p, size_t n)
{
    static uint32_t table[256];
    if (!table[1])
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int j = 0; j < 8; j++)
                c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
            table[i] = c;
        }
    crc = ~crc;
    while (n--)
        crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

struct status {
    uint32_t hash;
    int64_t revision, total_key, total_size;
};

/* What etcdctl snapshot status computes, computed by us. */
static struct status our_status(const char *p)
{
    struct status s = {0};
    struct db *db = xopen(p, 0);
    struct db_tx *tx = xbegin(db, false);
    struct db_cursor c, kc;
    struct db_val k, v, kk, vv;
    int rc;
    OK(db_check(tx));
    s.total_size = db_tx_size(tx);
    db_cursor_init(&c, tx, NULL);
    for (rc = db_cursor_first(&c, &k, &v); !rc; rc = db_cursor_next(&c, &k, &v)) {
        struct db_bucket *b;
        OK(db_bucket_get(tx, NULL, k.p, k.len, &b));
        s.hash = crc32c(s.hash, k.p, k.len);
        bool keyb = k.len == 3 && !memcmp(k.p, "key", 3);
        db_cursor_init(&kc, tx, b);
        for (rc = db_cursor_first(&kc, &kk, &vv); !rc; rc = db_cursor_next(&kc, &kk, &vv)) {
            s.hash = crc32c(s.hash, kk.p, kk.len);
            s.hash = crc32c(s.hash, vv.p ? vv.p : (const uint8_t *)"", vv.len);
            if (keyb) { /* etcd's revision keys; tombstones end in 't' */
                assert_true(kk.len == 17 || (kk.len == 18 && kk.p[17] == 't'));
                s.revision = 0;
                for (int i = 0; i < 8; i++)
                    s.revision = s.revision << 8 | kk.p[i];
            }
            s.total_key++;
        }
        assert_int_equal(rc, DB_ENOTFOUND);
    }
    assert_int_equal(rc, DB_ENOTFOUND);
    db_rollback(tx);
    db_close(db);
    return s;
}

static char interop_script[512];

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

static struct status etcd_status(const char *p)
{
    char cmd[1024], line[256];
    struct status s = {0};
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s status %s", interop_script, p);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    if (!fgets(line, sizeof line, f))
        line[0] = 0;
    int rc = pclose(f);
    if (rc != 0 || sscanf(line, "%" SCNu32 " %" SCNd64 " %" SCNd64 " %" SCNd64, &s.hash, &s.revision,
                          &s.total_key, &s.total_size) != 4)
        fail_msg("etcdctl snapshot status %s failed (%d): %s", p, rc, line);
    return s;
}

static void same_status(const char *p, const char *what)
{
    struct status a = our_status(p), b = etcd_status(p);
    print_message("interop: %s: bbolt says hash %" PRIu32 " rev %" PRId64 " keys %" PRId64
                  " size %" PRId64 "\n", what, b.hash, b.revision, b.total_key, b.total_size);
    assert_int_equal(a.hash, b.hash);
    assert_int_equal(a.revision, b.revision);
    assert_int_equal(a.total_key, b.total_key);
    assert_int_equal(a.total_size, b.total_size);
}

/* Copies every bucket of src into a new file with our writer, committing
 * every `every` keys. */
static void rewrite(const char *src, const char *dst, unsigned flags, int every)
{
    unlink(dst);
    struct db *in = xopen(src, 0), *out = xopen(dst, flags);
    struct db_tx *r = xbegin(in, false), *w = xbegin(out, true);
    struct db_cursor c, kc;
    struct db_val k, v, kk, vv;
    int rc, n = 0;
    db_cursor_init(&c, r, NULL);
    for (rc = db_cursor_first(&c, &k, &v); !rc; rc = db_cursor_next(&c, &k, &v)) {
        struct db_bucket *b, *ob;
        OK(db_bucket_get(r, NULL, k.p, k.len, &b));
        OK(db_bucket_create(w, NULL, k.p, k.len, false, &ob));
        db_cursor_init(&kc, r, b);
        for (rc = db_cursor_first(&kc, &kk, &vv); !rc; rc = db_cursor_next(&kc, &kk, &vv)) {
            if (++n % every == 0) {
                xcommit(out, w);
                w = xbegin(out, true);
                OK(db_bucket_get(w, NULL, k.p, k.len, &ob));
            }
            OK(db_put(ob, kk.p, kk.len, vv.p, vv.len));
        }
    }
    xcommit(out, w);
    db_rollback(r);
    db_close(in);
    db_close(out);
}

/* Whether real etcd is there; finds tests/db_interop.py. */
static bool have_etcd(void)
{
    if (access("/usr/bin/etcd", X_OK) || access("/usr/bin/etcdctl", X_OK)) {
        print_message("interop: SKIPPED: /usr/bin/etcd or /usr/bin/etcdctl is missing "
                      "(apt-get install etcd-server etcd-client)\n");
        return false;
    }
    const char *file = __FILE__;
    const char *slash = strrchr(file, '/');
    snprintf(interop_script, sizeof interop_script, "%.*sdb_interop.py",
             slash ? (int)(slash - file + 1) : 0, file);
    if (access(interop_script, R_OK))
        snprintf(interop_script, sizeof interop_script, "tests/db_interop.py");
    return true;
}

/* More than 0xFFFF free pages: the freelist page's count is 0xFFFF and the
 * real count is its first id slot.  We read it back, and so does bbolt. */
static void test_freelist_count_overflow(void **state)
{
    (void)state;
    const char *p = tpath("bigfree.db");
    /* the file reaches ~270 MB: a machine short of disk skips this one */
    struct statvfs vfs;
    if (statvfs("/tmp", &vfs) == 0 && (uint64_t)vfs.f_bavail * vfs.f_frsize < (2ull << 30)) {
        print_message("skipped: less than 2 GiB free in /tmp\n");
        skip();
    }
    struct db *db = xopen(p, 0);
    size_t vlen = 1 << 20;
    char *v = malloc(vlen), k[16];
    memset(v, 'f', vlen);
    struct db_tx *tx = xbegin(db, true);
    struct db_bucket *b = xbucket(tx, NULL, "big");
    for (int i = 0; i < 260; i++) {
        snprintf(k, sizeof k, "%04d", i);
        OK(db_put(b, k, strlen(k), v, vlen));
    }
    xcommit(db, tx);
    tx = xbegin(db, true);
    b = xbucket(tx, NULL, "big");
    for (int i = 0; i < 260; i++) {
        snprintf(k, sizeof k, "%04d", i);
        OK(db_del(b, k, strlen(k)));
    }
    xput(b, "small", "one");
    xcommit(db, tx);
    int64_t size = db_size(db), in_use = db_size_in_use(db);
    db_close(db);
    db = xopen(p, 0);
    /* what the last commit freed was pending; on disk and at reopen it is free */
    assert_true(in_use > size / 2);
    assert_true(db_size_in_use(db) < 1 << 20);
    uint64_t fl = db->meta.freelist;
    const uint8_t *pg = db->map->base + fl * 4096;
    assert_int_equal(ld16(pg + 8), PG_FREELIST);
    assert_int_equal(ld16(pg + 10), 0xFFFF);
    uint64_t count = ld64(pg + 16);
    assert_true(count > 0xFFFF);
    print_message("freelist: %" PRIu64 " ids on %" PRIu32 " pages, file %" PRId64 " bytes\n",
                  count, ld32(pg + 12) + 1, size);
    check_db(db);
    db_close(db);
    free(v);
    if (have_etcd())
        same_status(p, "more than 0xFFFF free pages");
}

static void test_etcd_interop(void **state)
{
    (void)state;
    if (!have_etcd())
        skip();
    char dir[128], etcddb[256], cmd[512];
    snprintf(dir, sizeof dir, "%s/etcd", tmpdir);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(etcddb, sizeof etcddb, "%s/etcd/member/snap/db", dir);
    double t0 = now();
    assert_int_equal(run("/usr/bin/python3 %s produce %s", interop_script, dir), 0);

    /* 1. etcd's file, read by us: the same hash, revision and key count as
     * bbolt computes, every bucket etcd uses, 17-byte keys, a value on
     * overflow pages, and branch pages in the key bucket */
    const char *theirs = tpath("theirs.db");
    copy_file(etcddb, theirs);
    same_status(theirs, "etcd's db read by us");
    struct db *db = xopen(theirs, 0);
    struct db_tx *tx = xbegin(db, false);
    const char *names[] = {"key", "meta", "lease", "members", "members_removed", "cluster",
                           "alarm", "auth", "authUsers", "authRoles"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        struct db_bucket *b;
        OK(db_bucket_get(tx, NULL, names[i], strlen(names[i]), &b));
    }
    struct db_bucket *kb;
    struct db_cursor c;
    struct db_val k, v;
    OK(db_bucket_get(tx, NULL, "key", 3, &kb));
    db_cursor_init(&c, tx, kb);
    size_t maxv = 0;
    int depth = 0, rc;
    for (rc = db_cursor_first(&c, &k, &v); !rc; rc = db_cursor_next(&c, &k, &v)) {
        if (v.len > maxv)
            maxv = v.len;
        if (c.cu_depth > depth)
            depth = c.cu_depth;
    }
    assert_true(maxv > 4096);
    assert_true(depth >= 2);
    db_rollback(tx);
    db_close(db);

    /* 2. files our writer made from scratch, read by bbolt (whose check
     * verifies every page is reachable or on the free list), both modes */
    const char *ours = tpath("ours.db"), *ours2 = tpath("ours-nofl.db");
    rewrite(theirs, ours, 0, 700);
    same_status(ours, "our rewrite (freelist synced)");
    rewrite(theirs, ours2, DB_NO_FREELIST_SYNC, 1000000);
    same_status(ours2, "our rewrite (no freelist)");

    /* 3. etcd's file changed in place by us: new buckets (inline, then
     * grown), keys added and removed, many commits, then a defrag */
    const char *mod = tpath("modified.db");
    copy_file(etcddb, mod);
    db = xopen(mod, 0);
    for (int round = 0; round < 20; round++) {
        tx = xbegin(db, true);
        struct db_bucket *t = xbucket(tx, NULL, "zz-test"), *m = xbucket(tx, NULL, "meta");
        char key[32], val[64];
        for (int i = 0; i < 40; i++) {
            snprintf(key, sizeof key, "r%02d-%03d", round, i);
            snprintf(val, sizeof val, "value %d", i * round);
            xput(t, key, val);
        }
        if (round % 4 == 3)
            for (int i = 0; i < 40; i += 2) {
                snprintf(key, sizeof key, "r%02d-%03d", round - 1, i);
                OK(db_del(t, key, strlen(key)));
            }
        xput(m, "zz-our-key", "x");
        xbucket(tx, t, "nested-inline");
        xcommit(db, tx);
    }
    db_close(db);
    same_status(mod, "etcd's db modified by us");
    db = xopen(mod, 0);
    OK(db_defrag(db));
    db_close(db);
    same_status(mod, "etcd's db modified and defragmented by us");

    /* 4. real etcd serves a data dir whose db we wrote from scratch: every
     * key, value and hashkv match; then etcd writes to it and we read it */
    snprintf(cmd, sizeof cmd, "%s.orig", etcddb);
    assert_int_equal(rename(etcddb, cmd), 0);
    copy_file(ours, etcddb);
    assert_int_equal(run("/usr/bin/python3 %s verify %s", interop_script, dir), 0);
    copy_file(etcddb, tpath("after-etcd.db"));
    same_status(tpath("after-etcd.db"), "our db after etcd wrote to it");
    db = xopen(tpath("after-etcd.db"), 0);
    struct mem_buf d = dump_db(db);
    assert_non_null(memmem(d.data, d.len, "after-restart", 13));
    mem_buf_free(&d);
    db_close(db);
    print_message("interop: done in %.1f s\n", now() - t0);
}

/* An argument runs only the tests matching that pattern (cmocka's filter). */
int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_layout),
        cmocka_unit_test(test_api_rules),
        cmocka_unit_test(test_random_model),
        cmocka_unit_test(test_splits_merges_inline),
        cmocka_unit_test(test_append_batches),
        cmocka_unit_test(test_free_page_reuse),
        cmocka_unit_test(test_crash_every_write),
        cmocka_unit_test(test_enospc_rlimit),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_meta_bitflips),
        cmocka_unit_test(test_garbage_files),
        cmocka_unit_test(test_corrupt_pages),
        cmocka_unit_test(test_snapshot),
        cmocka_unit_test(test_defrag),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_freelist_count_overflow),
        cmocka_unit_test(test_etcd_interop),
    };
    return cmocka_run_group_tests_name("db", tests, setup_dir, teardown_dir);
}
