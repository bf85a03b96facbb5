/* test_mvcc.c - mvcc.c against etcd 3.4's semantics: directed tests for each
 * rule (the expected values come from reading etcd's mvcc/ and
 * etcdserver/apply.go), a random-operation test against a naive model that
 * keeps the whole history in one array (responses, reads at every revision,
 * the event feed after each write and history batches), checks of the B+tree's invariants,
 * and allocation-failure tests at every allocation of each mutating call. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../mvcc.c"

/* ---- helpers ---- */

#define BS(s) ((struct pb_bytes){(const uint8_t *)(s), sizeof(s) - 1})
#define NOB ((struct pb_bytes){NULL, 0})

static struct pb_bytes bs(const char *s)
{
    return (struct pb_bytes){(const uint8_t *)s, strlen(s)};
}

static bool beq(struct pb_bytes b, const char *s, size_t n)
{
    return b.len == n && (!n || !memcmp(b.p, s, n));
}

#define assert_bytes(b, lit) assert_true(beq((b), (lit), sizeof(lit) - 1))

static struct mem_arena arena;
static struct api_header hdr;

static int setup(void **state)
{
    (void)state;
    mem_arena_init(&arena, 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mem_arena_free(&arena);
    return 0;
}

static int64_t put_l(struct mvcc *m, struct pb_bytes k, struct pb_bytes v, int64_t lease)
{
    struct api_put_req req = {.key = k, .value = v, .lease = lease};
    struct api_put_resp resp = {.header = &hdr};
    assert_int_equal(mvcc_put(m, &req, &arena, &resp), 0);
    return hdr.revision;
}

static int64_t put(struct mvcc *m, const char *k, const char *v)
{
    return put_l(m, bs(k), bs(v), 0);
}

static int64_t del(struct mvcc *m, struct pb_bytes k, struct pb_bytes end, int64_t *deleted)
{
    struct api_delete_req req = {.key = k, .range_end = end};
    struct api_delete_resp resp = {.header = &hdr};
    assert_int_equal(mvcc_delete(m, &req, &arena, &resp), 0);
    if (deleted)
        *deleted = resp.deleted;
    return hdr.revision;
}

static struct api_range_resp rng(struct mvcc *m, struct api_range_req req, int want_rc)
{
    struct api_range_resp resp = {.header = &hdr};
    hdr.revision = -7;
    assert_int_equal(mvcc_range(m, &req, &arena, &resp), want_rc);
    return resp;
}

static struct api_range_resp get_at(struct mvcc *m, const char *k, int64_t rev)
{
    return rng(m, (struct api_range_req){.key = bs(k), .revision = rev}, 0);
}

/* The kvs' keys, joined with ',' for compact assertions. */
static const char *keys_of(const struct api_range_resp *r)
{
    static char buf[1024];
    size_t o = 0;
    buf[0] = 0;
    for (size_t i = 0; i < r->n_kvs; i++)
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%.*s", i ? "," : "",
                              (int)r->kvs[i].key.len, (const char *)r->kvs[i].key.p);
    return buf;
}

static struct mvcc_key *rec(struct mvcc *m, const char *k)
{
    return mvcc_tree_find(&m->mv_tree, (const uint8_t *)k, strlen(k));
}

/* ---- tree invariants ---- */

static size_t check_node(const struct mvcc_node *x, int depth, int height,
                         const struct mvcc_key **prev, const struct mvcc_node **leaf)
{
    assert_true(x->n_n >= 1 && x->n_n <= MVCC_FANOUT);
    /* the compared keys share n_lcp bytes and their slices are current */
    for (unsigned i = !x->n_leaf; i < x->n_n; i++) {
        const struct mvcc_key *k = x->n_keys[i], *f = x->n_keys[!x->n_leaf];
        assert_true(k->k_len >= x->n_lcp);
        assert_true(!x->n_lcp || !memcmp(k->k_bytes, f->k_bytes, x->n_lcp));
        assert_true(x->n_slice[i] == mvcc_slice(k->k_bytes, k->k_len, x->n_lcp));
    }
    if (x->n_leaf) {
        assert_int_equal(depth, height - 1);
        /* leaves are chained in order */
        if (*leaf)
            assert_ptr_equal((*leaf)->n_next, x);
        *leaf = x;
        for (unsigned i = 0; i < x->n_n; i++) {
            const struct mvcc_key *k = x->n_keys[i];
            if (*prev)
                assert_true(mvcc_bcmp((*prev)->k_bytes, (*prev)->k_len, k->k_bytes, k->k_len) < 0);
            *prev = k;
        }
        return x->n_n;
    }
    size_t n = 0;
    for (unsigned i = 0; i < x->n_n; i++) {
        const struct mvcc_key *before = *prev;
        n += check_node(x->n_child[i], depth + 1, height, prev, leaf);
        if (i > 0) {
            /* the separator is the smallest key under its child */
            const struct mvcc_node *c = x->n_child[i];
            while (!c->n_leaf)
                c = c->n_child[0];
            assert_ptr_equal(x->n_keys[i], c->n_keys[0]);
            assert_true(before != NULL);
        }
    }
    return n;
}

static void check_tree(const struct mvcc *m)
{
    const struct mvcc_tree *t = &m->mv_tree;
    if (!t->t_root) {
        assert_int_equal(t->t_n_keys, 0);
        assert_int_equal(t->t_height, 0);
        return;
    }
    const struct mvcc_key *prev = NULL;
    const struct mvcc_node *leaf = NULL;
    assert_int_equal(check_node(t->t_root, 0, t->t_height, &prev, &leaf), t->t_n_keys);
    assert_null(leaf->n_next);
    /* every record's revisions ascend and carry consistent versions (where
     * in memory), and its newest is in memory; the packed history holds the
     * first k_res, evicted, its groups start where their marks say */
    struct mvcc_iter it;
    struct mvcc_key *k;
    mvcc_tree_seek(t, NULL, 0, &it);
    while ((k = mvcc_iter_next(&it))) {
        if (k->k_n) {
            assert_true(k->k_res < k->k_n);
            assert_false(MVCC_EVICTED(mvcc_key_newest(k)));
        }
        assert_true(k->k_n - k->k_res <= k->k_cap);
        const struct mvcc_hist *h = k->k_hist;
        assert_int_equal(h ? h->h_n : 0, k->k_res);
        if (h && h->h_n) {
            assert_true(h->h_n_marks >= 1 && h->h_n_marks <= h->h_cap_marks);
            assert_true(h->h_len <= h->h_cap);
            assert_int_equal(h->h_marks[0].m_idx, 0);
            assert_int_equal(h->h_marks[0].m_off, 0);
            for (uint32_t j = 0; j < h->h_n_marks; j++) {
                uint32_t end = j + 1 < h->h_n_marks ? h->h_marks[j + 1].m_idx : h->h_n;
                assert_true(end > h->h_marks[j].m_idx && end - h->h_marks[j].m_idx <= MVCC_HIST_GROUP);
                struct mvcc_ver g = mvcc_key_ver(k, h->h_marks[j].m_idx);
                assert_int_equal(g.v_main, h->h_marks[j].m_main);
            }
            assert_int_equal(mvcc_key_ver(k, k->k_res - 1).v_main, h->h_last);
        }
        struct mvcc_cur u;
        struct mvcc_ver a, b;
        size_t i = 0;
        for (mvcc_cur_init(&u, k, 0); mvcc_cur_next(&u, &b); i++) {
            struct mvcc_ver w = mvcc_key_ver(k, i);
            assert_memory_equal(&w, &b, sizeof w);
            if (i < k->k_res)
                assert_true(MVCC_EVICTED(&b) || MVCC_IS_TOMB(&b));
            assert_true(mvcc_key_upto(k, b.v_main) > i);
            assert_true(mvcc_key_upto(k, b.v_main - 1) <= i);
            if (i > 0)
                assert_true(a.v_main < b.v_main || (a.v_main == b.v_main && a.v_sub < b.v_sub));
            struct mvcc_ver older = a;
            bool live = i > 0 && !MVCC_EVICTED(&older) && !MVCC_IS_TOMB(&older);
            a = b;
            if (MVCC_EVICTED(&b) || MVCC_IS_TOMB(&b))
                continue;
            if (b.v_val->l_version > 1 && live)
                assert_int_equal(b.v_val->l_version, older.v_val->l_version + 1);
            if (b.v_val->l_version == 1)
                assert_int_equal(b.v_val->l_create, b.v_main);
        }
        assert_int_equal(i, k->k_n);
    }
}

/* A canonical dump of the store: revisions, then every record with its
 * revisions (ghosts left out: they read as absent). */
struct dump {
    char *p;
    size_t n, cap;
};

static void dump_add(struct dump *d, const void *p, size_t n)
{
    if (d->n + n > d->cap) {
        d->cap = (d->n + n) * 2 + 64;
        d->p = realloc(d->p, d->cap);
        assert_non_null(d->p);
    }
    if (n)
        memcpy(d->p + d->n, p, n);
    d->n += n;
}

static struct dump dump_store(const struct mvcc *m)
{
    struct dump d = {0};
    dump_add(&d, &m->mv_rev, sizeof m->mv_rev);
    dump_add(&d, &m->mv_compact, sizeof m->mv_compact);
    struct mvcc_iter it;
    struct mvcc_key *k;
    mvcc_tree_seek(&m->mv_tree, NULL, 0, &it);
    while ((k = mvcc_iter_next(&it))) {
        if (!k->k_n)
            continue;
        dump_add(&d, &k->k_len, sizeof k->k_len);
        dump_add(&d, k->k_bytes, k->k_len);
        dump_add(&d, &k->k_n, sizeof k->k_n);
        for (size_t i = 0; i < k->k_n; i++) {
            struct mvcc_ver w = mvcc_key_ver(k, i);
            const struct mvcc_ver *v = &w;
            int64_t f[3] = {v->v_main, v->v_sub, MVCC_IS_TOMB(v) ? 1 : MVCC_EVICTED(v) ? 2 : 0};
            dump_add(&d, f, sizeof f);
            if (MVCC_IS_TOMB(v) || MVCC_EVICTED(v))
                continue;
            const struct mvcc_val *l = v->v_val;
            int64_t g[4] = {l->l_create, l->l_version, l->l_lease, (int64_t)l->l_len};
            dump_add(&d, g, sizeof g);
            dump_add(&d, l->l_bytes, l->l_len);
        }
    }
    return d;
}

static void assert_dump_equal(struct dump a, struct dump b)
{
    assert_int_equal(a.n, b.n);
    assert_memory_equal(a.p, b.p, a.n);
}

/* ---- directed: store, put, range ---- */

static void test_new_store(void **state)
{
    (void)state;
    struct mvcc *m = mvcc_new();
    assert_non_null(m);
    assert_int_equal(mvcc_rev(m), 1);
    assert_int_equal(mvcc_compact_rev(m), 0);
    struct api_range_resp r = get_at(m, "a", 0);
    assert_int_equal(r.count, 0);
    assert_int_equal(r.n_kvs, 0);
    assert_int_equal(hdr.revision, 1);
    get_at(m, "a", 1);
    rng(m, (struct api_range_req){.key = BS("a"), .revision = 2}, -ERR_FUTURE_REV);
    check_tree(m);
    mvcc_free(m);
}

static void test_put(void **state)
{
    (void)state;
    struct mvcc *m = mvcc_new();
    assert_int_equal(put(m, "foo", "bar"), 2);
    assert_int_equal(put(m, "foo", "baz"), 3);
    assert_int_equal(put(m, "bar", "x"), 4);
    assert_int_equal(mvcc_rev(m), 4);

    struct api_range_resp r = get_at(m, "foo", 0);
    assert_int_equal(r.n_kvs, 1);
    assert_int_equal(r.count, 1);
    assert_int_equal(hdr.revision, 4);
    assert_bytes(r.kvs[0].key, "foo");
    assert_bytes(r.kvs[0].value, "baz");
    assert_int_equal(r.kvs[0].create_revision, 2);
    assert_int_equal(r.kvs[0].mod_revision, 3);
    assert_int_equal(r.kvs[0].version, 2);
    assert_int_equal(r.kvs[0].lease, 0);

    r = get_at(m, "foo", 2);
    assert_bytes(r.kvs[0].value, "bar");
    assert_int_equal(r.kvs[0].version, 1);
    assert_int_equal(hdr.revision, 4); /* the header is the current revision */
    r = get_at(m, "foo", 1);
    assert_int_equal(r.n_kvs, 0);
    assert_int_equal(r.count, 0);

    /* prev_kv */
    struct api_put_req pr = {.key = BS("foo"), .value = BS("qux"), .prev_kv = true};
    struct api_put_resp presp = {.header = &hdr};
    assert_int_equal(mvcc_put(m, &pr, &arena, &presp), 0);
    assert_int_equal(hdr.revision, 5);
    assert_non_null(presp.prev_kv);
    assert_bytes(presp.prev_kv->value, "baz");
    assert_int_equal(presp.prev_kv->mod_revision, 3);
    assert_int_equal(presp.prev_kv->version, 2);
    pr.key = BS("new");
    assert_int_equal(mvcc_put(m, &pr, &arena, &presp), 0);
    assert_null(presp.prev_kv);

    /* leases, ignore_lease, ignore_value */
    assert_int_equal(put_l(m, BS("l"), BS("v1"), 7), 7);
    pr = (struct api_put_req){.key = BS("l"), .value = BS("v2"), .ignore_lease = true};
    assert_int_equal(mvcc_put(m, &pr, &arena, &presp), 0);
    r = get_at(m, "l", 0);
    assert_bytes(r.kvs[0].value, "v2");
    assert_int_equal(r.kvs[0].lease, 7);
    assert_int_equal(r.kvs[0].version, 2);
    pr = (struct api_put_req){.key = BS("l"), .lease = 9, .ignore_value = true};
    assert_int_equal(mvcc_put(m, &pr, &arena, &presp), 0);
    r = get_at(m, "l", 0);
    assert_bytes(r.kvs[0].value, "v2");
    assert_int_equal(r.kvs[0].lease, 9);
    assert_int_equal(r.kvs[0].version, 3);
    assert_int_equal(r.kvs[0].mod_revision, 9);

    /* ignore_* on a missing key: rejected, nothing changes */
    int64_t rev = mvcc_rev(m);
    pr = (struct api_put_req){.key = BS("missing"), .ignore_value = true};
    assert_int_equal(mvcc_put(m, &pr, &arena, &presp), -ERR_KEY_NOT_FOUND);
    pr = (struct api_put_req){.key = BS("missing"), .ignore_lease = true};
    assert_int_equal(mvcc_put(m, &pr, &arena, &presp), -ERR_KEY_NOT_FOUND);
    assert_int_equal(mvcc_rev(m), rev);
    assert_null(rec(m, "missing"));

    /* empty value */
    put(m, "e", "");
    r = get_at(m, "e", 0);
    assert_int_equal(r.n_kvs, 1);
    assert_int_equal(r.kvs[0].value.len, 0);
    check_tree(m);
    mvcc_free(m);
}

static void test_range_forms(void **state)
{
    (void)state;
    struct mvcc *m = mvcc_new();
    put(m, "b", "2");
    put(m, "a", "1");
    put(m, "c", "3");
    put(m, "ab", "12");
    put_l(m, BS("\0"), BS("z"), 0);

    struct api_range_resp r = rng(m, (struct api_range_req){.key = BS("a")}, 0);
    assert_string_equal(keys_of(&r), "a");
    r = rng(m, (struct api_range_req){.key = BS("a"), .range_end = BS("c")}, 0);
    assert_string_equal(keys_of(&r), "a,ab,b");
    assert_int_equal(r.count, 3);
    r = rng(m, (struct api_range_req){.key = BS("ab"), .range_end = BS("\0")}, 0);
    assert_string_equal(keys_of(&r), "ab,b,c");
    r = rng(m, (struct api_range_req){.key = BS("\0"), .range_end = BS("\0")}, 0);
    assert_int_equal(r.count, 5);
    assert_int_equal(r.n_kvs, 5);
    assert_bytes(r.kvs[0].key, "\0");
    r = rng(m, (struct api_range_req){.key = BS("b"), .range_end = BS("a")}, 0);
    assert_int_equal(r.count, 0);
    r = rng(m, (struct api_range_req){.key = BS("zz")}, 0);
    assert_int_equal(r.count, 0);
    /* an empty key with a range_end starts at the first key */
    r = rng(m, (struct api_range_req){.key = NOB, .range_end = BS("ab")}, 0);
    assert_int_equal(r.count, 2);

    /* limit, more, count */
    r = rng(m, (struct api_range_req){.key = BS("a"), .range_end = BS("\0"), .limit = 2}, 0);
    assert_string_equal(keys_of(&r), "a,ab");
    assert_true(r.more);
    assert_int_equal(r.count, 4);
    r = rng(m, (struct api_range_req){.key = BS("a"), .range_end = BS("\0"), .limit = 4}, 0);
    assert_int_equal(r.n_kvs, 4);
    assert_false(r.more);
    r = rng(m, (struct api_range_req){.key = BS("a"), .range_end = BS("\0"), .limit = -1}, 0);
    assert_int_equal(r.n_kvs, 4);
    assert_false(r.more);
    r = rng(m, (struct api_range_req){.key = BS("a"), .range_end = BS("\0"), .limit = INT64_MAX},
            0);
    assert_int_equal(r.n_kvs, 4);

    /* keys_only, count_only */
    r = rng(m, (struct api_range_req){.key = BS("a"), .range_end = BS("c"), .keys_only = true}, 0);
    assert_int_equal(r.n_kvs, 3);
    for (size_t i = 0; i < r.n_kvs; i++) {
        assert_int_equal(r.kvs[i].value.len, 0);
        assert_true(r.kvs[i].version > 0);
    }
    r = rng(m,
            (struct api_range_req){
                .key = BS("a"), .range_end = BS("\0"), .count_only = true, .limit = 1},
            0);
    assert_int_equal(r.count, 4);
    assert_int_equal(r.n_kvs, 0);
    assert_false(r.more);
    mvcc_free(m);
}

/* c=1 (rev 2), b=2 (3), a=3 (4), b=22 (5), d=0 (6) */
static struct mvcc *sort_fixture(void)
{
    struct mvcc *m = mvcc_new();
    put(m, "c", "1");
    put(m, "b", "2");
    put(m, "a", "3");
    put(m, "b", "22");
    put(m, "d", "0");
    return m;
}

static const char *sorted(struct mvcc *m, int32_t target, int32_t order, int64_t limit, bool *more)
{
    struct api_range_resp r = rng(m,
                                  (struct api_range_req){.key = BS("a"),
                                                         .range_end = BS("\0"),
                                                         .sort_target = target,
                                                         .sort_order = order,
                                                         .limit = limit},
                                  0);
    assert_int_equal(r.count, 4);
    if (more)
        *more = r.more;
    return keys_of(&r);
}

static void test_range_sort(void **state)
{
    (void)state;
    struct mvcc *m = sort_fixture();
    bool more;
    /* ties keep key order, in both directions */
    assert_string_equal(sorted(m, API_SORT_VERSION, API_SORT_ASCEND, 0, NULL), "a,c,d,b");
    assert_string_equal(sorted(m, API_SORT_VERSION, API_SORT_DESCEND, 0, NULL), "b,a,c,d");
    assert_string_equal(sorted(m, API_SORT_CREATE, API_SORT_ASCEND, 0, NULL), "c,b,a,d");
    assert_string_equal(sorted(m, API_SORT_CREATE, API_SORT_DESCEND, 0, NULL), "d,a,b,c");
    assert_string_equal(sorted(m, API_SORT_MOD, API_SORT_ASCEND, 0, NULL), "c,a,b,d");
    assert_string_equal(sorted(m, API_SORT_MOD, API_SORT_DESCEND, 0, NULL), "d,b,a,c");
    assert_string_equal(sorted(m, API_SORT_VALUE, API_SORT_ASCEND, 0, NULL), "d,c,b,a");
    assert_string_equal(sorted(m, API_SORT_VALUE, API_SORT_DESCEND, 0, NULL), "a,b,c,d");
    assert_string_equal(sorted(m, API_SORT_KEY, API_SORT_DESCEND, 0, NULL), "d,c,b,a");
    assert_string_equal(sorted(m, API_SORT_KEY, API_SORT_ASCEND, 0, NULL), "a,b,c,d");
    /* sorted then cut */
    assert_string_equal(sorted(m, API_SORT_MOD, API_SORT_ASCEND, 2, &more), "c,a");
    assert_true(more);
    assert_string_equal(sorted(m, API_SORT_KEY, API_SORT_DESCEND, 1, &more), "d");
    assert_true(more);
    /* a target other than KEY with order NONE sorts ascending, but etcd
     * fetched only limit+1 keys first (a, b, c) */
    assert_string_equal(sorted(m, API_SORT_VERSION, API_SORT_NONE, 0, NULL), "a,c,d,b");
    assert_string_equal(sorted(m, API_SORT_VERSION, API_SORT_NONE, 2, &more), "a,c");
    assert_true(more);
    assert_string_equal(sorted(m, API_SORT_MOD, API_SORT_NONE, 1, &more), "a");
    assert_true(more);
    /* unknown order or target: no sort */
    assert_string_equal(sorted(m, API_SORT_VERSION, 3, 0, NULL), "a,b,c,d");
    assert_string_equal(sorted(m, 9, API_SORT_ASCEND, 0, NULL), "a,b,c,d");
    mvcc_free(m);
}

static void test_range_filters(void **state)
{
    (void)state;
    struct mvcc *m = sort_fixture();
    struct api_range_req q = {.key = BS("a"), .range_end = BS("\0")};
    struct api_range_req f = q;
    f.min_mod_revision = 5;
    struct api_range_resp r = rng(m, f, 0);
    assert_string_equal(keys_of(&r), "b,d");
    assert_int_equal(r.count, 4); /* count is before the filters */
    f = q;
    f.max_create_revision = 3;
    r = rng(m, f, 0);
    assert_string_equal(keys_of(&r), "b,c");
    f = q;
    f.min_create_revision = 3;
    f.max_mod_revision = 5;
    r = rng(m, f, 0);
    assert_string_equal(keys_of(&r), "a,b");
    f = q;
    f.min_mod_revision = 4;
    f.limit = 1;
    r = rng(m, f, 0);
    assert_string_equal(keys_of(&r), "a");
    assert_true(r.more);
    assert_int_equal(r.count, 4);
    f.limit = 3;
    r = rng(m, f, 0);
    assert_string_equal(keys_of(&r), "a,b,d");
    assert_false(r.more);
    f = q;
    f.max_mod_revision = 1;
    f.count_only = true;
    r = rng(m, f, 0);
    assert_int_equal(r.count, 4);
    mvcc_free(m);
}

static void test_range_revisions(void **state)
{
    (void)state;
    struct mvcc *m = mvcc_new();
    put(m, "a", "1");                  /* 2 */
    put(m, "a", "2");                  /* 3 */
    assert_int_equal(del(m, BS("a"), NOB, NULL), 4);
    put(m, "a", "3");                  /* 5 */

    struct api_range_resp r = get_at(m, "a", 2);
    assert_int_equal(r.kvs[0].version, 1);
    assert_int_equal(r.kvs[0].create_revision, 2);
    r = get_at(m, "a", 3);
    assert_int_equal(r.kvs[0].version, 2);
    r = get_at(m, "a", 4);
    assert_int_equal(r.n_kvs, 0);
    r = get_at(m, "a", 5);
    assert_int_equal(r.kvs[0].version, 1);
    assert_int_equal(r.kvs[0].create_revision, 5);
    rng(m, (struct api_range_req){.key = BS("a"), .revision = 6}, -ERR_FUTURE_REV);
    r = get_at(m, "a", -3); /* rev <= 0 reads the latest */
    assert_bytes(r.kvs[0].value, "3");

    assert_int_equal(mvcc_compact(m, 3), 0);
    assert_int_equal(mvcc_compact_rev(m), 3);
    rng(m, (struct api_range_req){.key = BS("a"), .revision = 2}, -ERR_COMPACTED);
    r = get_at(m, "a", 3); /* the compacted revision itself is readable */
    assert_bytes(r.kvs[0].value, "2");
    assert_int_equal(r.kvs[0].version, 2);
    r = get_at(m, "a", 4);
    assert_int_equal(r.n_kvs, 0);
    /* the future check comes first */
    rng(m, (struct api_range_req){.key = BS("a"), .revision = 9}, -ERR_FUTURE_REV);

    assert_int_equal(mvcc_compact(m, 3), -ERR_COMPACTED);
    assert_int_equal(mvcc_compact(m, 2), -ERR_COMPACTED);
    assert_int_equal(mvcc_compact(m, 6), -ERR_FUTURE_REV);
    assert_int_equal(mvcc_compact(m, 5), 0);
    assert_int_equal(rec(m, "a")->k_n, 1);
    r = get_at(m, "a", 5);
    assert_int_equal(r.kvs[0].version, 1);
    check_tree(m);
    mvcc_free(m);

    /* compacting at 0 is allowed once */
    m = mvcc_new();
    assert_int_equal(mvcc_compact(m, 0), 0);
    assert_int_equal(mvcc_compact(m, 0), -ERR_COMPACTED);
    assert_int_equal(mvcc_compact(m, -1), -ERR_COMPACTED);
    assert_int_equal(mvcc_compact(m, 2), -ERR_FUTURE_REV);
    assert_int_equal(mvcc_compact(m, 1), 0);
    mvcc_free(m);
}

/* ---- directed: packed history ---- */

/* Revisions with one- to ten-byte deltas and subs and tombstones, packed,
 * read back whole and by main revision, then cut by compactions at group
 * heads, inside groups and at the end of the history. */
static void test_packed_history(void **state)
{
    (void)state;
    enum { N = 300 };
    static const int64_t deltas[] = {1, 31, 32, 33, 1000, (int64_t)1 << 40, 0};
    static const int64_t subs[] = {0, 1, 300, (int64_t)1 << 35};
    struct mvcc_ver want[N];
    int64_t main = 0, prev_sub = 0;
    for (int i = 0; i < N; i++) {
        int64_t d = deltas[i % 7];
        int64_t sub = subs[(i / 3) % 4];
        if (d == 0 && sub <= prev_sub)
            d = 1; /* (main, sub) must ascend */
        main += d;
        prev_sub = sub;
        want[i] = (struct mvcc_ver){main, sub, i % 5 == 4 ? MVCC_TOMB : NULL};
    }
    struct mvcc_key *k = mvcc_key_new((const uint8_t *)"k", 1);
    assert_non_null(k);
    for (int i = 0; i < N; i++) {
        assert_int_equal(mvcc_key_reserve(k), 0);
        struct mvcc_ver *v = &k->k_vers[k->k_n++ - k->k_res];
        *v = want[i];
        if (!v->v_val) {
            v->v_val = mvcc_val_new((const uint8_t *)"x", 1);
            assert_non_null(v->v_val);
        }
        if (i % 50 == 49)
            mvcc_key_evict(k, want[i - 10].v_main); /* the last ten stay */
    }
    assert_false(mvcc_key_evict(k, INT64_MAX));
    assert_int_equal(k->k_res, N - 1);
    assert_int_equal(k->k_n - k->k_res, 1);
    assert_true(k->k_cap <= 64); /* the burst's room was given back */
    assert_int_equal(k->k_hist->h_n_marks, (N - 1 + MVCC_HIST_GROUP - 1) / MVCC_HIST_GROUP);

    size_t base = 0; /* want[base] is revision 0 */
    static const size_t cuts[] = {1, 31, 32, 45, 64, 100, 260, 9, 1};
    for (size_t c = 0; c <= sizeof cuts / sizeof *cuts; c++) {
        size_t n = N - base;
        assert_int_equal(k->k_n, n);
        struct mvcc_cur u;
        struct mvcc_ver v;
        size_t i = 0;
        for (mvcc_cur_init(&u, k, 0); mvcc_cur_next(&u, &v); i++) {
            const struct mvcc_ver *w = &want[base + i];
            assert_int_equal(v.v_main, w->v_main);
            assert_int_equal(v.v_sub, w->v_sub);
            assert_int_equal(MVCC_IS_TOMB(&v), w->v_val == MVCC_TOMB);
            assert_int_equal(MVCC_EVICTED(&v), i + 1 < n && w->v_val != MVCC_TOMB);
            struct mvcc_ver x = mvcc_key_ver(k, i);
            assert_int_equal(x.v_main, v.v_main);
            assert_int_equal(x.v_sub, v.v_sub);
            /* a revision sharing its main with the next one counts with it */
            bool shared = base + i + 1 < N && want[base + i + 1].v_main == w->v_main;
            assert_int_equal(mvcc_key_upto(k, w->v_main), i + 1 + shared);
            bool shares_prev = i > 0 && want[base + i - 1].v_main == w->v_main;
            assert_int_equal(mvcc_key_from(k, w->v_main), i - shares_prev);
        }
        assert_int_equal(i, n);
        assert_int_equal(mvcc_key_upto(k, want[base].v_main - 1), 0);
        assert_int_equal(mvcc_key_upto(k, INT64_MAX), n);
        if (c == sizeof cuts / sizeof *cuts)
            break;
        size_t from = cuts[c] < n ? cuts[c] : n - 1;
        mvcc_key_compact(k, from);
        base += from;
    }
    assert_int_equal(k->k_n, 1); /* the last cut left the newest alone */
    assert_null(k->k_hist);
    mvcc_key_free(k);
}

/* ---- directed: delete, compaction ---- */

static void test_delete(void **state)
{
    (void)state;
    struct mvcc *m = mvcc_new();
    put(m, "a", "1");
    put(m, "b", "2");
    put(m, "c", "3");
    put(m, "d", "4");

    struct api_delete_req req = {.key = BS("b"), .range_end = BS("d"), .prev_kv = true};
    struct api_delete_resp resp = {.header = &hdr};
    assert_int_equal(mvcc_delete(m, &req, &arena, &resp), 0);
    assert_int_equal(resp.deleted, 2);
    assert_int_equal(hdr.revision, 6);
    assert_int_equal(resp.n_prev_kvs, 2);
    assert_bytes(resp.prev_kvs[0].key, "b");
    assert_bytes(resp.prev_kvs[0].value, "2");
    assert_int_equal(resp.prev_kvs[0].mod_revision, 3);
    assert_bytes(resp.prev_kvs[1].key, "c");
    /* one main revision, consecutive sub revisions */
    struct mvcc_key *b = rec(m, "b"), *c = rec(m, "c");
    assert_int_equal(mvcc_key_newest(b)->v_main, 6);
    assert_int_equal(mvcc_key_newest(b)->v_sub, 0);
    assert_int_equal(mvcc_key_newest(c)->v_main, 6);
    assert_int_equal(mvcc_key_newest(c)->v_sub, 1);

    /* nothing to delete: no new revision */
    int64_t n;
    assert_int_equal(del(m, BS("zz"), NOB, &n), 6);
    assert_int_equal(n, 0);
    assert_int_equal(del(m, BS("b"), NOB, &n), 6);
    assert_int_equal(n, 0);
    assert_int_equal(mvcc_rev(m), 6);

    assert_int_equal(del(m, BS("\0"), BS("\0"), &n), 7);
    assert_int_equal(n, 2);
    struct api_range_resp r = rng(m, (struct api_range_req){.key = BS("\0"), .range_end = BS("\0")}, 0);
    assert_int_equal(r.count, 0);
    r = rng(m, (struct api_range_req){.key = BS("\0"), .range_end = BS("\0"), .revision = 6}, 0);
    assert_string_equal(keys_of(&r), "a,d");

    /* a new generation */
    assert_int_equal(put(m, "b", "x"), 8);
    r = get_at(m, "b", 0);
    assert_int_equal(r.kvs[0].create_revision, 8);
    assert_int_equal(r.kvs[0].version, 1);
    check_tree(m);
    mvcc_free(m);
}

static void test_compact(void **state)
{
    (void)state;
    struct mvcc *m = mvcc_new();
    put(m, "a", "1");       /* 2 */
    del(m, BS("a"), NOB, NULL); /* 3 */
    put(m, "b", "1");       /* 4 */
    put(m, "b", "2");       /* 5 */
    del(m, BS("b"), NOB, NULL); /* 6 */
    put(m, "b", "3");       /* 7 */
    put(m, "c", "1");       /* 8 */
    put(m, "c", "2");       /* 9 */

    assert_int_equal(mvcc_compact(m, 3), 0);
    assert_null(rec(m, "a")); /* its last revision <= 3 was a tombstone */
    assert_int_equal(m->mv_tree.t_n_keys, 2);
    assert_int_equal(rec(m, "b")->k_n, 4);
    check_tree(m);

    assert_int_equal(mvcc_compact(m, 6), 0);
    assert_int_equal(rec(m, "b")->k_n, 1); /* tombstone at 6 gone too */
    assert_int_equal(rec(m, "c")->k_n, 2);
    struct api_range_resp r = get_at(m, "b", 6);
    assert_int_equal(r.n_kvs, 0);
    r = get_at(m, "b", 0);
    assert_int_equal(r.kvs[0].version, 1);
    assert_int_equal(r.kvs[0].create_revision, 7);

    assert_int_equal(mvcc_compact(m, 8), 0);
    assert_int_equal(rec(m, "c")->k_n, 2); /* 8 is the newest <= 8: kept */
    r = get_at(m, "c", 8);
    assert_bytes(r.kvs[0].value, "1");
    assert_int_equal(mvcc_compact(m, 9), 0);
    assert_int_equal(rec(m, "c")->k_n, 1);
    /* versions keep counting after compaction */
    put(m, "c", "3");
    r = get_at(m, "c", 0);
    assert_int_equal(r.kvs[0].version, 3);
    assert_int_equal(r.kvs[0].create_revision, 8);

    del(m, BS("\0"), BS("\0"), NULL);
    assert_int_equal(rec(m, "c")->k_n, 3); /* tombstones until compacted */
    assert_int_equal(mvcc_compact(m, mvcc_rev(m)), 0);
    assert_int_equal(m->mv_tree.t_n_keys, 0);
    assert_null(m->mv_tree.t_root);
    check_tree(m);
    put(m, "z", "1");
    check_tree(m);
    r = get_at(m, "z", 0);
    assert_int_equal(r.kvs[0].version, 1);
    mvcc_free(m);
}

/* ---- directed: txn ---- */

#define OPS(...) ((struct api_request_op[]){__VA_ARGS__})
#define NOPS(...) (sizeof((struct api_request_op[]){__VA_ARGS__}) / sizeof(struct api_request_op))
#define OP_PUT(...) {.request_put = &(struct api_put_req){__VA_ARGS__}}
#define OP_RANGE(...) {.request_range = &(struct api_range_req){__VA_ARGS__}}
#define OP_DEL(...) {.request_delete_range = &(struct api_delete_req){__VA_ARGS__}}
#define OP_TXN(...) {.request_txn = &(struct api_txn_req){__VA_ARGS__}}
#define SUCCESS(...) .success = OPS(__VA_ARGS__), .n_success = NOPS(__VA_ARGS__)
#define FAILURE(...) .failure = OPS(__VA_ARGS__), .n_failure = NOPS(__VA_ARGS__)
#define CMPS(...)                                                                              \
    .compare = ((struct api_compare[]){__VA_ARGS__}),                                          \
    .n_compare = sizeof((struct api_compare[]){__VA_ARGS__}) / sizeof(struct api_compare)

static struct api_txn_resp txn(struct mvcc *m, struct api_txn_req req, int want_rc)
{
    struct api_txn_resp resp = {.header = &hdr};
    hdr.revision = -7;
    assert_int_equal(mvcc_txn(m, &req, &arena, &resp), want_rc);
    return resp;
}

static void test_txn_basic(void **state)
{
    (void)state;
    struct mvcc *m = mvcc_new();
    put(m, "a", "1"); /* 2 */

    struct api_txn_resp t = txn(
        m,
        (struct api_txn_req){
            CMPS({.key = BS("a"), .target = API_CMP_VERSION, .result = API_CMP_EQUAL,
                  .version = 1, .has_version = true}),
            SUCCESS(OP_RANGE(.key = BS("a")), OP_PUT(.key = BS("a"), .value = BS("2")),
                    OP_PUT(.key = BS("b"), .value = BS("1")), OP_RANGE(.key = BS("a")),
                    OP_DEL(.key = BS("c")), OP_RANGE(.key = BS("\0"), .range_end = BS("\0"))),
            FAILURE(OP_PUT(.key = BS("f"), .value = BS("1")))},
        0);
    assert_true(t.succeeded);
    assert_int_equal(hdr.revision, 3);
    assert_int_equal(mvcc_rev(m), 3);
    assert_int_equal(t.n_responses, 6);
    /* a read before the txn's first write sees the old revision */
    assert_int_equal(t.responses[0].response_range->header->revision, 2);
    assert_bytes(t.responses[0].response_range->kvs[0].value, "1");
    assert_int_equal(t.responses[1].response_put->header->revision, 3);
    assert_int_equal(t.responses[2].response_put->header->revision, 3);
    /* reads after it see the txn's own writes */
    struct api_range_resp *r = t.responses[3].response_range;
    assert_int_equal(r->header->revision, 3);
    assert_bytes(r->kvs[0].value, "2");
    assert_int_equal(r->kvs[0].mod_revision, 3);
    assert_int_equal(r->kvs[0].version, 2);
    /* a delete of nothing after a write still reports the new revision */
    assert_int_equal(t.responses[4].response_delete_range->deleted, 0);
    assert_int_equal(t.responses[4].response_delete_range->header->revision, 3);
    assert_int_equal(t.responses[5].response_range->count, 2);
    assert_null(rec(m, "f"));
    struct mvcc_key *a = rec(m, "a"), *b = rec(m, "b");
    assert_int_equal(mvcc_key_newest(a)->v_sub, 0);
    assert_int_equal(mvcc_key_newest(b)->v_sub, 1);
    assert_int_equal(mvcc_key_newest(b)->v_main, 3);

    /* failure branch, read-only: no new revision */
    t = txn(m,
            (struct api_txn_req){
                CMPS({.key = BS("a"), .target = API_CMP_VALUE, .result = API_CMP_EQUAL,
                      .value = BS("x"), .has_value = true}),
                SUCCESS(OP_PUT(.key = BS("s"), .value = BS("1"))),
                FAILURE(OP_RANGE(.key = BS("a"), .revision = 2))},
            0);
    assert_false(t.succeeded);
    assert_int_equal(hdr.revision, 3);
    assert_int_equal(mvcc_rev(m), 3);
    assert_bytes(t.responses[0].response_range->kvs[0].value, "1");
    assert_int_equal(t.responses[0].response_range->header->revision, 3);

    /* a delete that matches nothing: no new revision either */
    t = txn(m, (struct api_txn_req){SUCCESS(OP_DEL(.key = BS("zz")))}, 0);
    assert_int_equal(hdr.revision, 3);
    assert_int_equal(t.responses[0].response_delete_range->header->revision, 3);
    assert_int_equal(mvcc_rev(m), 3);

    /* an empty txn */
    t = txn(m, (struct api_txn_req){0}, 0);
    assert_true(t.succeeded);
    assert_int_equal(t.n_responses, 0);
    assert_int_equal(hdr.revision, 3);

    /* an empty RequestOp gets an empty ResponseOp */
    t = txn(m, (struct api_txn_req){SUCCESS({0}, OP_PUT(.key = BS("e"), .value = BS("1")))}, 0);
    assert_null(t.responses[0].response_range);
    assert_null(t.responses[0].response_put);
    assert_null(t.responses[0].response_delete_range);
    assert_null(t.responses[0].response_txn);
    assert_int_equal(hdr.revision, 4);

    /* delete then put of one key in one txn (via nested txns) */
    t = txn(m,
            (struct api_txn_req){SUCCESS(OP_TXN(SUCCESS(OP_PUT(.key = BS("a"), .value = BS("9")))),
                                         OP_TXN(SUCCESS(OP_DEL(.key = BS("a"), .prev_kv = true))),
                                         OP_RANGE(.key = BS("a")))},
            0);
    assert_int_equal(hdr.revision, 5);
    struct api_delete_resp *d = t.responses[1].response_txn->responses[0].response_delete_range;
    assert_int_equal(d->deleted, 1);
    assert_bytes(d->prev_kvs[0].value, "9");
    assert_int_equal(d->prev_kvs[0].mod_revision, 5);
    assert_int_equal(t.responses[2].response_range->count, 0);
    struct api_range_resp g = get_at(m, "a", 4);
    assert_bytes(g.kvs[0].value, "2");
    g = get_at(m, "a", 5);
    assert_int_equal(g.count, 0);
    check_tree(m);
    mvcc_free(m);
}

static bool cmp1(struct mvcc *m, struct api_compare c)
{
    struct api_txn_resp t = txn(m, (struct api_txn_req){.compare = &c, .n_compare = 1}, 0);
    return t.succeeded;
}

static void test_txn_compare(void **state)
{
    (void)state;
    struct mvcc *m = mvcc_new();
    put_l(m, BS("a"), BS("1"), 5); /* 2 */
    put(m, "b", "2");              /* 3 */
    put(m, "b", "3");              /* 4 */

#define C(k, tgt, res, ...)                                                                    \
    ((struct api_compare){.key = BS(k), .target = API_CMP_##tgt, .result = API_CMP_##res,     \
                          __VA_ARGS__})
    /* present keys */
    assert_true(cmp1(m, C("a", VERSION, EQUAL, .version = 1, .has_version = true)));
    assert_true(cmp1(m, C("b", VERSION, GREATER, .version = 1, .has_version = true)));
    assert_true(cmp1(m, C("b", VERSION, LESS, .version = 3, .has_version = true)));
    assert_true(cmp1(m, C("b", VERSION, NOT_EQUAL, .version = 3, .has_version = true)));
    assert_false(cmp1(m, C("b", VERSION, NOT_EQUAL, .version = 2, .has_version = true)));
    assert_true(cmp1(m, C("b", CREATE, EQUAL, .create_revision = 3, .has_create_revision = true)));
    assert_true(cmp1(m, C("b", MOD, EQUAL, .mod_revision = 4, .has_mod_revision = true)));
    assert_true(cmp1(m, C("b", MOD, GREATER, .mod_revision = 3, .has_mod_revision = true)));
    assert_true(cmp1(m, C("a", LEASE, EQUAL, .lease = 5, .has_lease = true)));
    assert_true(cmp1(m, C("b", LEASE, EQUAL, .lease = 0, .has_lease = true)));
    assert_true(cmp1(m, C("a", VALUE, EQUAL, .value = BS("1"), .has_value = true)));
    assert_true(cmp1(m, C("a", VALUE, LESS, .value = BS("10"), .has_value = true)));
    assert_true(cmp1(m, C("a", VALUE, GREATER, .value = BS("0"), .has_value = true)));
    /* the union member the target does not name counts as 0 */
    assert_true(cmp1(m, C("a", CREATE, GREATER, .version = 9, .has_version = true)));
    assert_false(cmp1(m, C("a", VERSION, EQUAL, .create_revision = 1, .has_create_revision = true)));
    /* an unset value compares as "" */
    assert_true(cmp1(m, C("a", VALUE, GREATER)));
    /* unknown result: true; unknown target: compares equal */
    assert_true(cmp1(m, (struct api_compare){.key = BS("a"), .target = API_CMP_VERSION,
                                             .result = 9, .version = 7, .has_version = true}));
    assert_true(cmp1(m, (struct api_compare){.key = BS("a"), .target = 9,
                                             .result = API_CMP_EQUAL, .version = 7,
                                             .has_version = true}));

    /* missing key: an empty KeyValue, except that VALUE always fails */
    assert_true(cmp1(m, C("z", VERSION, EQUAL, .version = 0, .has_version = true)));
    assert_true(cmp1(m, C("z", VERSION, LESS, .version = 1, .has_version = true)));
    assert_true(cmp1(m, C("z", CREATE, EQUAL, .create_revision = 0, .has_create_revision = true)));
    assert_true(cmp1(m, C("z", MOD, EQUAL)));
    assert_true(cmp1(m, C("z", LEASE, EQUAL)));
    assert_false(cmp1(m, C("z", VALUE, EQUAL)));
    assert_false(cmp1(m, C("z", VALUE, NOT_EQUAL, .value = BS("x"), .has_value = true)));

    /* ranges: every key must pass */
    assert_true(cmp1(m, C("a", VALUE, GREATER, .range_end = BS("c"), .value = BS("0"),
                          .has_value = true)));
    assert_false(cmp1(m, C("a", VALUE, EQUAL, .range_end = BS("c"), .value = BS("1"),
                           .has_value = true)));
    assert_true(cmp1(m, C("a", MOD, GREATER, .range_end = BS("\0"), .mod_revision = 1,
                          .has_mod_revision = true)));
    assert_false(cmp1(m, C("a", MOD, GREATER, .range_end = BS("\0"), .mod_revision = 2,
                           .has_mod_revision = true)));
    assert_true(cmp1(m, C("x", VERSION, EQUAL, .range_end = BS("y"))));
    assert_false(cmp1(m, C("x", VALUE, EQUAL, .range_end = BS("y"))));

    /* a deleted key is missing */
    del(m, BS("b"), NOB, NULL);
    assert_true(cmp1(m, C("b", VERSION, EQUAL)));
    assert_true(cmp1(m, C("b", CREATE, EQUAL)));

    /* several compares: all must hold */
    struct api_compare cs[2] = {C("a", VERSION, EQUAL, .version = 1, .has_version = true),
                                C("b", VERSION, EQUAL, .version = 1, .has_version = true)};
    struct api_txn_resp t = txn(m, (struct api_txn_req){.compare = cs, .n_compare = 2}, 0);
    assert_false(t.succeeded);
    cs[1].version = 0;
    t = txn(m, (struct api_txn_req){.compare = cs, .n_compare = 2}, 0);
    assert_true(t.succeeded);
#undef C
    mvcc_free(m);
}

static void test_txn_nested(void **state)
{
    (void)state;
    struct mvcc *m = mvcc_new();
    put(m, "a", "1"); /* 2 */

    /* the nested compare reads the store as it was before the txn */
    struct api_txn_resp t = txn(
        m,
        (struct api_txn_req){SUCCESS(
            OP_PUT(.key = BS("a"), .value = BS("2")),
            OP_TXN(CMPS({.key = BS("a"), .target = API_CMP_VALUE, .result = API_CMP_EQUAL,
                         .value = BS("1"), .has_value = true}),
                   SUCCESS(OP_PUT(.key = BS("b"), .value = BS("1")), OP_RANGE(.key = BS("a"))),
                   FAILURE(OP_PUT(.key = BS("c"), .value = BS("1")))),
            OP_TXN(CMPS({.key = BS("b"), .target = API_CMP_VERSION, .result = API_CMP_EQUAL,
                         .version = 1, .has_version = true}),
                   SUCCESS(OP_PUT(.key = BS("d"), .value = BS("1"))),
                   FAILURE(OP_PUT(.key = BS("e"), .value = BS("1")))),
            OP_RANGE(.key = BS("b")))},
        0);
    assert_true(t.succeeded);
    assert_int_equal(hdr.revision, 3);
    struct api_txn_resp *n1 = t.responses[1].response_txn;
    assert_true(n1->succeeded);
    assert_non_null(n1->header);
    assert_int_equal(n1->header->revision, 0); /* etcd leaves nested headers empty */
    assert_int_equal(n1->responses[0].response_put->header->revision, 3);
    assert_bytes(n1->responses[1].response_range->kvs[0].value, "2");
    struct api_txn_resp *n2 = t.responses[2].response_txn;
    assert_false(n2->succeeded); /* b did not exist before the txn */
    assert_int_equal(t.responses[3].response_range->count, 1);
    struct api_range_resp r = rng(m, (struct api_range_req){.key = BS("a"), .range_end = BS("\0")}, 0);
    assert_string_equal(keys_of(&r), "a,b,e");
    struct mvcc_key *b = rec(m, "b"), *e = rec(m, "e");
    assert_int_equal(mvcc_key_ver(b, 0).v_sub, 1);
    assert_int_equal(mvcc_key_ver(e, 0).v_sub, 2);

    /* nesting in the failure branch, two levels */
    t = txn(m,
            (struct api_txn_req){
                CMPS({.key = BS("zz"), .target = API_CMP_VERSION, .result = API_CMP_GREATER}),
                FAILURE(OP_TXN(SUCCESS(OP_TXN(SUCCESS(OP_DEL(.key = BS("a"))))),
                               FAILURE(OP_DEL(.key = BS("b")))))},
            0);
    assert_false(t.succeeded);
    assert_true(t.responses[0].response_txn->succeeded);
    assert_int_equal(t.responses[0]
                         .response_txn->responses[0]
                         .response_txn->responses[0]
                         .response_delete_range->deleted,
                     1);
    assert_int_equal(hdr.revision, 4);
    mvcc_free(m);
}

static bool lease_5_exists(void *ctx, int64_t lease)
{
    (void)ctx;
    return lease == 5;
}

static void test_txn_checks(void **state)
{
    (void)state;
    struct mvcc *m = mvcc_new();
    put(m, "a", "1"); /* 2 */
    put(m, "b", "1"); /* 3 */

    txn(m, (struct api_txn_req){SUCCESS(OP_PUT(.key = BS("a"), .value = BS("2")),
                                        OP_PUT(.key = BS("z"), .ignore_value = true))},
        -ERR_KEY_NOT_FOUND);
    assert_int_equal(mvcc_rev(m), 3);
    assert_bytes(get_at(m, "a", 0).kvs[0].value, "1");
    txn(m, (struct api_txn_req){SUCCESS(OP_RANGE(.key = BS("a"), .revision = 4))},
        -ERR_FUTURE_REV);
    /* puts are checked before ranges */
    txn(m, (struct api_txn_req){SUCCESS(OP_RANGE(.key = BS("a"), .revision = 4),
                                        OP_PUT(.key = BS("z"), .ignore_lease = true))},
        -ERR_KEY_NOT_FOUND);
    /* only the branch that runs is checked */
    struct api_txn_resp t = txn(
        m,
        (struct api_txn_req){SUCCESS(OP_PUT(.key = BS("a"), .value = BS("2"))),
                             FAILURE(OP_PUT(.key = BS("z"), .ignore_value = true),
                                     OP_RANGE(.key = BS("a"), .revision = 99))},
        0);
    assert_true(t.succeeded);
    /* ... nested ones included, and against the store before the txn */
    txn(m,
        (struct api_txn_req){SUCCESS(OP_PUT(.key = BS("n"), .value = BS("1")),
                                     OP_TXN(SUCCESS(OP_PUT(.key = BS("n"), .ignore_value = true))))},
        -ERR_KEY_NOT_FOUND);
    assert_int_equal(mvcc_rev(m), 4);

    assert_int_equal(mvcc_compact(m, 3), 0);
    txn(m, (struct api_txn_req){SUCCESS(OP_RANGE(.key = BS("a"), .revision = 2))},
        -ERR_COMPACTED);
    t = txn(m, (struct api_txn_req){SUCCESS(OP_RANGE(.key = BS("a"), .revision = 3))}, 0);
    assert_bytes(t.responses[0].response_range->kvs[0].value, "1");
    /* a negative revision is below the compacted one inside a txn, but reads
     * the latest at top level */
    txn(m, (struct api_txn_req){SUCCESS(OP_RANGE(.key = BS("a"), .revision = -1))},
        -ERR_COMPACTED);
    get_at(m, "a", -1);

    /* lease hook: after each put's ignore check, in op order */
    mvcc_set_lease_check(m, lease_5_exists, NULL);
    txn(m, (struct api_txn_req){SUCCESS(OP_PUT(.key = BS("x"), .lease = 6))},
        -ERR_LEASE_NOT_FOUND);
    txn(m, (struct api_txn_req){SUCCESS(OP_PUT(.key = BS("q"), .ignore_value = true),
                                        OP_PUT(.key = BS("x"), .lease = 6))},
        -ERR_KEY_NOT_FOUND);
    txn(m, (struct api_txn_req){SUCCESS(OP_PUT(.key = BS("x"), .lease = 6),
                                        OP_PUT(.key = BS("q"), .ignore_value = true))},
        -ERR_LEASE_NOT_FOUND);
    txn(m, (struct api_txn_req){SUCCESS(OP_RANGE(.key = BS("a"), .revision = 1),
                                        OP_PUT(.key = BS("x"), .lease = 6))},
        -ERR_LEASE_NOT_FOUND);
    t = txn(m, (struct api_txn_req){SUCCESS(OP_PUT(.key = BS("x"), .lease = 5))}, 0);
    assert_int_equal(get_at(m, "x", 0).kvs[0].lease, 5);
    mvcc_free(m);
}

static void test_txn_rollback(void **state)
{
    (void)state;
    struct mvcc *m = mvcc_new();
    put(m, "a", "1");
    put(m, "b", "2");
    struct dump before = dump_store(m);

    /* etcd's API check lets this through (a delete ending in "\0" overlaps
     * nothing there) and its applier panics on the put; here the txn fails
     * and leaves nothing behind */
    struct api_txn_req req = {SUCCESS(OP_PUT(.key = BS("0"), .value = BS("new")),
                                      OP_DEL(.key = BS("a"), .range_end = BS("\0")),
                                      OP_PUT(.key = BS("a"), .ignore_value = true))};
    assert_int_equal(mvcc_txn_check(&req, 128), 0);
    txn(m, req, -ERR_KEY_NOT_FOUND);
    struct dump after = dump_store(m);
    assert_dump_equal(before, after);
    free(after.p);
    /* the new key's record stays as a ghost until compaction */
    assert_non_null(rec(m, "0"));
    assert_int_equal(rec(m, "0")->k_n, 0);
    assert_int_equal(get_at(m, "0", 0).count, 0);
    struct api_range_resp r = rng(m, (struct api_range_req){.key = BS("\0"), .range_end = BS("\0")}, 0);
    assert_string_equal(keys_of(&r), "a,b");
    assert_int_equal(mvcc_compact(m, 2), 0);
    assert_null(rec(m, "0"));
    check_tree(m);
    /* and a ghost can come back to life */
    txn(m, req, -ERR_KEY_NOT_FOUND);
    assert_int_equal(put(m, "0", "x"), 4);
    assert_int_equal(get_at(m, "0", 0).kvs[0].create_revision, 4);
    check_tree(m);
    free(before.p);
    mvcc_free(m);
}

/* ---- directed: txn validation ---- */

static int chk(struct api_txn_req req, int max)
{
    return mvcc_txn_check(&req, max);
}

static void test_txn_check(void **state)
{
    (void)state;
#define P(k) OP_PUT(.key = BS(k), .value = BS("v"))
#define D(k) OP_DEL(.key = BS(k))
#define DR(k, e) OP_DEL(.key = BS(k), .range_end = BS(e))
#define T(...) OP_TXN(__VA_ARGS__)
#define CHK(max, ...) chk((struct api_txn_req){__VA_ARGS__}, max)
    struct api_compare c3[3] = {{.key = BS("a")}, {.key = BS("b")}, {.key = NOB}};
    struct api_compare c1[1] = {{.key = BS("a")}};

    /* sizes: compares and each list count against max_ops */
    assert_int_equal(CHK(2, SUCCESS(P("a"), P("b"))), 0);
    assert_int_equal(CHK(2, SUCCESS(P("a"), P("b"), P("c"))), -ERR_TOO_MANY_OPS);
    assert_int_equal(CHK(2, FAILURE(P("a"), P("b"), P("c"))), -ERR_TOO_MANY_OPS);
    assert_int_equal(CHK(2, .compare = c3, .n_compare = 3), -ERR_TOO_MANY_OPS);
    assert_int_equal(CHK(3, .compare = c3, .n_compare = 2), 0);
    /* a nested txn gets what its parent's largest list leaves */
    assert_int_equal(CHK(2, SUCCESS(T(SUCCESS(P("a"), P("b"))))), -ERR_TOO_MANY_OPS);
    assert_int_equal(CHK(2, SUCCESS(T(SUCCESS(P("a"))))), 0);
    assert_int_equal(CHK(2, SUCCESS(T(SUCCESS(P("a"))), P("b"))), -ERR_TOO_MANY_OPS);
    assert_int_equal(CHK(2, SUCCESS(T(.compare = c1, .n_compare = 1))), 0);
    assert_int_equal(CHK(2, .compare = c1, .n_compare = 1, FAILURE(T(SUCCESS(P("a"))), P("b"))),
                     -ERR_TOO_MANY_OPS);
    assert_int_equal(CHK(3, SUCCESS(T(SUCCESS(T(SUCCESS(P("a"))))))), 0);
    assert_int_equal(CHK(2, SUCCESS(T(SUCCESS(T(SUCCESS(P("a"))))))), -ERR_TOO_MANY_OPS);

    /* empty keys, provided value/lease, empty ops; sizes are checked first */
    assert_int_equal(CHK(128, .compare = c3, .n_compare = 3), -ERR_EMPTY_KEY);
    assert_int_equal(CHK(2, .compare = c3, .n_compare = 3), -ERR_TOO_MANY_OPS);
    assert_int_equal(CHK(128, SUCCESS(OP_RANGE(.key = NOB, .range_end = BS("a")))),
                     -ERR_EMPTY_KEY);
    assert_int_equal(CHK(128, SUCCESS(OP_PUT(.key = NOB))), -ERR_EMPTY_KEY);
    assert_int_equal(CHK(128, SUCCESS(OP_DEL(.key = NOB))), -ERR_EMPTY_KEY);
    assert_int_equal(CHK(128, FAILURE(T(SUCCESS(OP_PUT(.key = NOB))))), -ERR_EMPTY_KEY);
    assert_int_equal(
        CHK(128, SUCCESS(OP_PUT(.key = BS("a"), .value = BS("x"), .ignore_value = true))),
        -ERR_VALUE_PROVIDED);
    assert_int_equal(CHK(128, SUCCESS(OP_PUT(.key = BS("a"), .ignore_value = true))), 0);
    assert_int_equal(CHK(128, SUCCESS(OP_PUT(.key = BS("a"), .lease = 3, .ignore_lease = true))),
                     -ERR_LEASE_PROVIDED);
    assert_int_equal(CHK(128, SUCCESS(OP_PUT(.key = BS("a"), .lease = 3, .ignore_value = true))),
                     0);
    assert_int_equal(CHK(128, SUCCESS(P("a"), {0})), -ERR_KEY_NOT_FOUND);
    assert_int_equal(CHK(128, SUCCESS(T(FAILURE({0})))), -ERR_KEY_NOT_FOUND);
    /* ... and before duplicates, on both branches */
    assert_int_equal(CHK(128, SUCCESS(P("a"), P("a")), FAILURE(OP_PUT(.key = NOB))),
                     -ERR_EMPTY_KEY);

    /* one level */
    assert_int_equal(CHK(128, SUCCESS(P("a"), P("a"))), -ERR_DUPLICATE_KEY);
    assert_int_equal(CHK(128, SUCCESS(P("a"), P("b"))), 0);
    assert_int_equal(CHK(128, SUCCESS(P("a"), D("a"))), -ERR_DUPLICATE_KEY);
    assert_int_equal(CHK(128, SUCCESS(D("a"), P("a"))), -ERR_DUPLICATE_KEY);
    assert_int_equal(CHK(128, SUCCESS(P("b"), DR("a", "c"))), -ERR_DUPLICATE_KEY);
    assert_int_equal(CHK(128, SUCCESS(P("a"), DR("a", "c"))), -ERR_DUPLICATE_KEY);
    assert_int_equal(CHK(128, SUCCESS(P("c"), DR("a", "c"))), 0);
    assert_int_equal(CHK(128, SUCCESS(P("a\0"), D("a"))), 0);
    assert_int_equal(CHK(128, SUCCESS(P("a\0"), DR("a", "a\0\0"))), -ERR_DUPLICATE_KEY);
    /* intervals that etcd's tree never intersects: empty, inverted, "\0" */
    assert_int_equal(CHK(128, SUCCESS(P("b"), DR("a", "\0"))), 0);
    assert_int_equal(CHK(128, SUCCESS(P("b"), DR("c", "a"))), 0);
    assert_int_equal(CHK(128, SUCCESS(P("a"), DR("a", "a"))), 0);
    /* deletes may overlap each other */
    assert_int_equal(CHK(128, SUCCESS(DR("a", "c"), DR("b", "d"), D("b"))), 0);
    assert_int_equal(CHK(128, SUCCESS(P("a")), FAILURE(P("a"))), 0);
    assert_int_equal(CHK(128, SUCCESS(P("b")), FAILURE(P("a"), P("a"))), -ERR_DUPLICATE_KEY);
    /* many intervals: only the one reaching furthest covers "m" */
    assert_int_equal(CHK(128, SUCCESS(DR("a", "b"), DR("c", "d"), DR("e", "z"), DR("f", "g"),
                                      P("m"))),
                     -ERR_DUPLICATE_KEY);
    assert_int_equal(CHK(128, SUCCESS(DR("a", "b"), DR("c", "d"), DR("e", "k"), DR("f", "g"),
                                      P("m"))),
                     0);

    /* nested */
    assert_int_equal(CHK(128, SUCCESS(T(SUCCESS(P("a")), FAILURE(P("a"))))), 0);
    assert_int_equal(CHK(128, SUCCESS(T(SUCCESS(P("a"), D("a"))))), -ERR_DUPLICATE_KEY);
    assert_int_equal(CHK(128, SUCCESS(T(SUCCESS(P("a"))), T(SUCCESS(P("a"))))),
                     -ERR_DUPLICATE_KEY);
    assert_int_equal(CHK(128, SUCCESS(T(FAILURE(P("a"))), T(SUCCESS(P("a"))))),
                     -ERR_DUPLICATE_KEY);
    assert_int_equal(CHK(128, SUCCESS(T(SUCCESS(P("a"))), T(FAILURE(P("a"))))),
                     -ERR_DUPLICATE_KEY);
    assert_int_equal(CHK(128, SUCCESS(T(SUCCESS(P("a"))), P("a"))), -ERR_DUPLICATE_KEY);
    assert_int_equal(CHK(128, SUCCESS(P("a"), T(SUCCESS(P("a"))))), -ERR_DUPLICATE_KEY);
    assert_int_equal(CHK(128, SUCCESS(D("a"), T(SUCCESS(P("a"))))), -ERR_DUPLICATE_KEY);
    assert_int_equal(CHK(128, SUCCESS(T(SUCCESS(D("a"))), T(SUCCESS(P("a"))))),
                     -ERR_DUPLICATE_KEY);
    assert_int_equal(CHK(128, SUCCESS(T(SUCCESS(DR("a", "c"))), P("b"))), -ERR_DUPLICATE_KEY);
    assert_int_equal(CHK(128, SUCCESS(T(SUCCESS(T(SUCCESS(P("a"))))), P("a"))),
                     -ERR_DUPLICATE_KEY);
    assert_int_equal(CHK(128, SUCCESS(T(SUCCESS(T(SUCCESS(D("a"))))), P("a"))),
                     -ERR_DUPLICATE_KEY);
    /* etcd's rules, kept: an earlier nested put against a later nested
     * delete is not checked; a nested txn's own else-put against its then-
     * delete is not either; "\0"-ended deletes vanish */
    assert_int_equal(CHK(128, SUCCESS(T(SUCCESS(P("a"))), T(SUCCESS(D("a"))))), 0);
    assert_int_equal(CHK(128, SUCCESS(T(SUCCESS(D("a")), FAILURE(P("a"))))), 0);
    assert_int_equal(CHK(128, SUCCESS(T(SUCCESS(DR("a", "\0"))), P("b"))), 0);
#undef P
#undef D
#undef DR
#undef T
#undef CHK
}

/* ---- directed: the event feed and history ---- */

static struct mvcc_event last_ev(const struct mvcc *m, size_t i)
{
    struct mvcc_event ev;
    assert_true(i < mvcc_last_n_events(m));
    mvcc_last_event(m, i, &ev);
    return ev;
}

static void test_events(void **state)
{
    (void)state;
    struct mvcc *m = mvcc_new();
    assert_int_equal(mvcc_last_n_events(m), 0);
    put(m, "a", "1"); /* 2 */
    assert_int_equal(mvcc_last_n_events(m), 1);
    struct mvcc_event ev = last_ev(m, 0);
    assert_int_equal(ev.type, API_EVENT_PUT);
    assert_int_equal(ev.sub, 0);
    assert_bytes(ev.kv.key, "a");
    assert_bytes(ev.kv.value, "1");
    assert_int_equal(ev.kv.create_revision, 2);
    assert_int_equal(ev.kv.mod_revision, 2);
    assert_int_equal(ev.kv.version, 1);
    assert_false(ev.has_prev);

    put_l(m, BS("a"), BS("2"), 7); /* 3 */
    ev = last_ev(m, 0);
    assert_int_equal(ev.kv.version, 2);
    assert_int_equal(ev.kv.lease, 7);
    assert_true(ev.has_prev);
    assert_bytes(ev.prev.value, "1");
    assert_int_equal(ev.prev.mod_revision, 2);

    put(m, "b", "x"); /* 4 */
    del(m, BS("a"), BS("c"), NULL); /* 5: a and b */
    assert_int_equal(mvcc_last_n_events(m), 2);
    ev = last_ev(m, 1);
    assert_int_equal(ev.type, API_EVENT_DELETE);
    assert_int_equal(ev.sub, 1);
    assert_bytes(ev.kv.key, "b");
    assert_int_equal(ev.kv.mod_revision, 5);
    assert_int_equal(ev.kv.create_revision, 0);
    assert_int_equal(ev.kv.version, 0);
    assert_int_equal(ev.kv.value.len, 0);
    assert_true(ev.has_prev);
    assert_bytes(ev.prev.value, "x");

    /* a delete that matched nothing, a failed put, a read-only and a failed
     * txn, a compaction: no events, not the previous call's */
    del(m, BS("zz"), NOB, NULL);
    assert_int_equal(mvcc_last_n_events(m), 0);
    put(m, "c", "1"); /* 6 */
    struct api_put_req bad = {.key = BS("nope"), .ignore_value = true};
    struct api_put_resp pr = {0};
    assert_int_equal(mvcc_put(m, &bad, &arena, &pr), -ERR_KEY_NOT_FOUND);
    assert_int_equal(mvcc_last_n_events(m), 0);
    put(m, "c", "2"); /* 7 */
    txn(m, (struct api_txn_req){SUCCESS(OP_RANGE(.key = BS("c")))}, 0);
    assert_int_equal(mvcc_last_n_events(m), 0);
    put(m, "c", "3"); /* 8 */
    txn(m, (struct api_txn_req){SUCCESS(OP_RANGE(.key = BS("c"), .revision = 99))},
        -ERR_FUTURE_REV);
    assert_int_equal(mvcc_last_n_events(m), 0);
    put(m, "c", "4"); /* 9 */
    assert_int_equal(mvcc_compact(m, 2), 0);
    assert_int_equal(mvcc_last_n_events(m), 0);

    /* a txn that puts a key in one nested txn and deletes it in the next
     * (checkIntervals lets that through): two events in one revision; the
     * delete's prev is the key before the txn, as etcd reads it at rev - 1 */
    txn(m, (struct api_txn_req){SUCCESS(OP_TXN(SUCCESS(OP_PUT(.key = BS("c"), .value = BS("5")))),
                                        OP_TXN(SUCCESS(OP_DEL(.key = BS("c")))),
                                        OP_PUT(.key = BS("d"), .value = BS("new")))},
        0); /* 10 */
    assert_int_equal(mvcc_last_n_events(m), 3);
    ev = last_ev(m, 0);
    assert_int_equal(ev.type, API_EVENT_PUT);
    assert_bytes(ev.kv.value, "5");
    assert_bytes(ev.prev.value, "4");
    ev = last_ev(m, 1);
    assert_int_equal(ev.type, API_EVENT_DELETE);
    assert_int_equal(ev.sub, 1);
    assert_true(ev.has_prev);
    assert_bytes(ev.prev.value, "4");
    assert_int_equal(ev.prev.mod_revision, 9);
    ev = last_ev(m, 2);
    assert_bytes(ev.kv.key, "d");
    assert_int_equal(ev.sub, 2);
    assert_false(ev.has_prev);
    mvcc_free(m);
}

static size_t since(struct mvcc *m, const char *k, struct pb_bytes end, int64_t from, size_t max,
                    struct mvcc_event **evs, int64_t *next)
{
    size_t n;
    assert_int_equal(mvcc_events_since(m, bs(k), end, from, max, 0, &arena, evs, &n, next), 0);
    return n;
}

static void test_events_since(void **state)
{
    (void)state;
    struct mvcc *m = mvcc_new();
    struct mvcc_event *evs;
    int64_t next;
    size_t n;
    assert_int_equal(since(m, "a", NOB, 1, 10, &evs, &next), 0);
    assert_int_equal(next, 2);
    put(m, "a", "1"); /* 2 */
    put(m, "b", "1"); /* 3 */
    put(m, "a", "2"); /* 4 */
    del(m, BS("a"), BS("c"), NULL); /* 5: a, b */
    put(m, "b", "2"); /* 6 */

    n = since(m, "a", BS("\0"), 1, 100, &evs, &next);
    assert_int_equal(n, 6);
    assert_int_equal(next, 7);
    int64_t want_rev[] = {2, 3, 4, 5, 5, 6};
    for (size_t i = 0; i < n; i++)
        assert_int_equal(evs[i].kv.mod_revision, want_rev[i]);
    assert_int_equal(evs[4].sub, 1);
    assert_bytes(evs[4].kv.key, "b");
    assert_bytes(evs[4].prev.value, "1");
    assert_bytes(evs[5].kv.value, "2");
    assert_false(evs[5].has_prev); /* b was deleted at 5 */

    /* whole revisions: 4 events fit, but then revision 5 would be split */
    n = since(m, "a", BS("\0"), 1, 4, &evs, &next);
    assert_int_equal(n, 3);
    assert_int_equal(next, 5);
    n = since(m, "a", BS("\0"), next, 1, &evs, &next);
    assert_int_equal(n, 2); /* revision 5 alone is larger than max: whole */
    assert_int_equal(next, 6);
    n = since(m, "a", BS("\0"), next, 1, &evs, &next);
    assert_int_equal(n, 1);
    assert_int_equal(next, 7);

    n = since(m, "a", NOB, 3, 100, &evs, &next);
    assert_int_equal(n, 2);
    assert_int_equal(evs[0].kv.mod_revision, 4);
    assert_int_equal(evs[1].type, API_EVENT_DELETE);
    n = since(m, "b", NOB, 9, 100, &evs, &next);
    assert_int_equal(n, 0);
    assert_int_equal(next, 9);

    /* compaction at 5: from 5 is allowed and returns what was kept of 5
     * (nothing: both were tombstones); below 5 is compacted */
    assert_int_equal(mvcc_compact(m, 5), 0);
    assert_int_equal(mvcc_compact_main_rev(m), 5);
    assert_int_equal(mvcc_events_since(m, BS("a"), BS("\0"), 4, 10, 0, &arena, &evs, &n, &next),
                     -ERR_COMPACTED);
    n = since(m, "a", BS("\0"), 5, 100, &evs, &next);
    assert_int_equal(n, 1);
    assert_int_equal(evs[0].kv.mod_revision, 6);
    put(m, "c", "1"); /* 7 */
    assert_int_equal(mvcc_compact(m, 7), 0);
    n = since(m, "c", NOB, 7, 100, &evs, &next);
    assert_int_equal(n, 1); /* c's put at 7 is its newest: kept, no prev */
    assert_false(evs[0].has_prev);
    mvcc_free(m);

    /* before any compaction compactMainRev is -1: from -1 reads everything */
    m = mvcc_new();
    assert_int_equal(mvcc_compact_main_rev(m), -1);
    put(m, "a", "1");
    n = since(m, "a", NOB, -1, 10, &evs, &next);
    assert_int_equal(n, 1);
    assert_int_equal(mvcc_events_since(m, BS("a"), NOB, -2, 10, 0, &arena, &evs, &n, &next),
                     -ERR_COMPACTED);
    mvcc_free(m);
}

/* ---- big trees ---- */

static void test_big_tree(void **state)
{
    (void)state;
    struct mvcc *m = mvcc_new();
    char k[32];
    const int N = 20000;
    /* random order */
    uint32_t x = 12345;
    for (int i = 0; i < N; i++) {
        x = x * 1103515245u + 12345u;
        snprintf(k, sizeof k, "r%08u", (x >> 8) % 1000000u);
        put(m, k, "v");
    }
    check_tree(m);
    size_t n_random = m->mv_tree.t_n_keys;
    /* ascending (the append path) */
    for (int i = 0; i < N; i++) {
        snprintf(k, sizeof k, "s%08d", i);
        put(m, k, k);
    }
    /* descending */
    for (int i = N; i-- > 0;) {
        snprintf(k, sizeof k, "d%08d", i);
        put(m, k, k);
    }
    check_tree(m);
    assert_int_equal(m->mv_tree.t_n_keys, n_random + 2 * (size_t)N);
    assert_true(m->mv_tree.t_height >= 3);

    struct api_range_resp r =
        rng(m, (struct api_range_req){.key = BS("s00001000"), .range_end = BS("s00002000")}, 0);
    assert_int_equal(r.count, 1000);
    assert_int_equal(r.n_kvs, 1000);
    for (int i = 0; i < 1000; i++) {
        snprintf(k, sizeof k, "s%08d", 1000 + i);
        assert_true(beq(r.kvs[i].key, k, strlen(k)));
    }
    r = rng(m,
            (struct api_range_req){
                .key = BS("s"), .range_end = BS("t"), .limit = 10, .sort_order = API_SORT_DESCEND},
            0);
    assert_int_equal(r.count, N);
    assert_bytes(r.kvs[0].key, "s00019999");
    assert_true(r.more);
    r = rng(m, (struct api_range_req){.key = BS("\0"), .range_end = BS("\0"), .count_only = true},
            0);
    assert_int_equal(r.count, (int64_t)m->mv_tree.t_n_keys);

    /* delete every other "s" key and all "d" keys, compact: rebuilt index */
    int64_t n;
    for (int i = 0; i < N; i += 2) {
        snprintf(k, sizeof k, "s%08d", i);
        del(m, bs(k), NOB, &n);
        assert_int_equal(n, 1);
    }
    del(m, BS("d"), BS("e"), &n);
    assert_int_equal(n, N);
    assert_int_equal(mvcc_compact(m, mvcc_rev(m)), 0);
    check_tree(m);
    assert_int_equal(m->mv_tree.t_n_keys, n_random + (size_t)N / 2);
    r = rng(m, (struct api_range_req){.key = BS("s"), .range_end = BS("t"), .limit = 3}, 0);
    assert_string_equal(keys_of(&r), "s00000001,s00000003,s00000005");
    assert_int_equal(r.count, N / 2);
    /* and the rebuilt tree takes inserts again */
    for (int i = 0; i < N; i += 2) {
        snprintf(k, sizeof k, "s%08d", i);
        put(m, k, "again");
    }
    check_tree(m);
    r = rng(m, (struct api_range_req){.key = BS("s"), .range_end = BS("t"), .count_only = true},
            0);
    assert_int_equal(r.count, N);
    mvcc_free(m);
}

/* ---- the model: the whole history in one array ---- */

#define NKEYS 8
static const struct pb_bytes model_keys[NKEYS] = {
    {(const uint8_t *)"\0", 1}, {(const uint8_t *)"a", 1},  {(const uint8_t *)"a\0", 2},
    {(const uint8_t *)"ab", 2}, {(const uint8_t *)"b", 1},  {(const uint8_t *)"ba", 2},
    {(const uint8_t *)"c", 1},  {(const uint8_t *)"d", 1},
};
/* range ends worth trying, beside the keys themselves */
static const struct pb_bytes model_ends[] = {
    {(const uint8_t *)"\0", 1}, {(const uint8_t *)"a\x01", 2}, {(const uint8_t *)"bb", 2},
    {(const uint8_t *)"z", 1},  {(const uint8_t *)"\0\0", 2},
};

struct mev {
    int key;
    int64_t main, sub;
    bool tomb;
    uint8_t val[4];
    size_t vlen;
    int64_t lease;
};

struct model {
    struct mev *ev;
    size_t n, cap;
    int64_t rev, compact;
    /* the running txn */
    int64_t begin;
    int64_t n_changes;
};

static bool model_get(const struct model *md, int key, int64_t rev, struct api_kv *kv)
{
    bool live = false;
    int64_t create = 0, version = 0;
    const struct mev *last = NULL;
    for (size_t i = 0; i < md->n; i++) {
        const struct mev *e = &md->ev[i];
        if (e->key != key || e->main > rev)
            continue;
        if (e->tomb) {
            live = false;
            continue;
        }
        if (!live) {
            live = true;
            create = e->main;
            version = 0;
        }
        version++;
        last = e;
    }
    if (!live)
        return false;
    kv->key = model_keys[key];
    kv->create_revision = create;
    kv->mod_revision = last->main;
    kv->version = version;
    kv->value.p = last->vlen ? last->val : NULL;
    kv->value.len = last->vlen;
    kv->lease = last->lease;
    return true;
}

static bool model_in(int key, struct pb_bytes k, struct pb_bytes end)
{
    struct pb_bytes x = model_keys[key];
    int c = mvcc_bcmp(x.p, x.len, k.p, k.len);
    if (!end.len)
        return c == 0;
    if (c < 0)
        return false;
    if (end.len == 1 && end.p[0] == 0)
        return true;
    return mvcc_bcmp(x.p, x.len, end.p, end.len) < 0;
}

static int64_t model_read_rev(const struct model *md)
{
    return md->begin + (md->n_changes > 0);
}

static bool model_less(const struct api_kv *a, const struct api_kv *b, int32_t target)
{
    switch (target) {
    case API_SORT_KEY:
        return mvcc_bcmp(a->key.p, a->key.len, b->key.p, b->key.len) < 0;
    case API_SORT_VERSION:
        return a->version < b->version;
    case API_SORT_CREATE:
        return a->create_revision < b->create_revision;
    case API_SORT_MOD:
        return a->mod_revision < b->mod_revision;
    default:
        return mvcc_bcmp(a->value.p, a->value.len, b->value.p, b->value.len) < 0;
    }
}

/* applierV3backend.Range, literally, with Go's insertion sort (what
 * sort.Sort runs on slices this short). */
static int model_range(const struct model *md, const struct api_range_req *req, int64_t cur,
                       struct api_range_resp *out)
{
    int64_t rev = req->revision;
    if (rev > cur)
        return -ERR_FUTURE_REV;
    if (rev <= 0)
        rev = cur;
    if (rev < md->compact)
        return -ERR_COMPACTED;
    struct api_kv *kvs = mem_arena_zalloc(&arena, NKEYS * sizeof *kvs);
    assert_non_null(kvs);
    size_t n = 0;
    for (int k = 0; k < NKEYS; k++)
        if (model_in(k, req->key, req->range_end) && model_get(md, k, rev, &kvs[n]))
            n++;
    out->count = (int64_t)n;
    out->more = false;
    out->kvs = NULL;
    out->n_kvs = 0;
    if (out->header)
        out->header->revision = cur;
    if (req->count_only)
        return 0;
    int64_t limit = req->limit;
    if (req->sort_order != API_SORT_NONE || req->min_mod_revision || req->max_mod_revision ||
        req->min_create_revision || req->max_create_revision)
        limit = 0;
    if (limit > 0)
        limit++;
    if (limit > 0 && (size_t)limit < n)
        n = (size_t)limit;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        const struct api_kv *kv = &kvs[i];
        if ((req->max_mod_revision && kv->mod_revision > req->max_mod_revision) ||
            (req->min_mod_revision && kv->mod_revision < req->min_mod_revision) ||
            (req->max_create_revision && kv->create_revision > req->max_create_revision) ||
            (req->min_create_revision && kv->create_revision < req->min_create_revision))
            continue;
        kvs[j++] = *kv;
    }
    n = j;
    int32_t order = req->sort_order;
    if (req->sort_target != API_SORT_KEY && order == API_SORT_NONE)
        order = API_SORT_ASCEND;
    if ((order == API_SORT_ASCEND || order == API_SORT_DESCEND) && req->sort_target >= 0 &&
        req->sort_target <= API_SORT_VALUE) {
        for (size_t i = 1; i < n; i++)
            for (size_t k = i; k > 0; k--) {
                bool less = order == API_SORT_ASCEND
                                ? model_less(&kvs[k], &kvs[k - 1], req->sort_target)
                                : model_less(&kvs[k - 1], &kvs[k], req->sort_target);
                if (!less)
                    break;
                struct api_kv t = kvs[k];
                kvs[k] = kvs[k - 1];
                kvs[k - 1] = t;
            }
    }
    if (req->limit > 0 && n > (size_t)req->limit) {
        n = (size_t)req->limit;
        out->more = true;
    }
    for (size_t i = 0; i < n; i++)
        if (req->keys_only)
            kvs[i].value = NOB;
    out->kvs = n ? kvs : NULL;
    out->n_kvs = n;
    return 0;
}

static int model_key_index(struct pb_bytes k)
{
    for (int i = 0; i < NKEYS; i++)
        if (!mvcc_bcmp(model_keys[i].p, model_keys[i].len, k.p, k.len))
            return i;
    fail_msg("key outside the model's key space");
    return -1;
}

static void model_append(struct model *md, int key, bool tomb, struct pb_bytes v, int64_t lease)
{
    assert_true(md->n < md->cap);
    struct mev *e = &md->ev[md->n++];
    memset(e, 0, sizeof *e);
    e->key = key;
    e->main = md->begin + 1;
    e->sub = md->n_changes++;
    e->tomb = tomb;
    assert_true(v.len <= sizeof e->val);
    if (v.len)
        memcpy(e->val, v.p, v.len);
    e->vlen = v.len;
    e->lease = lease;
}

static int model_put(struct model *md, const struct api_put_req *req, struct api_put_resp *out)
{
    int key = model_key_index(req->key);
    struct api_kv cur;
    bool have = model_get(md, key, model_read_rev(md), &cur);
    if ((req->ignore_value || req->ignore_lease) && !have)
        return -ERR_KEY_NOT_FOUND;
    struct pb_bytes v = req->ignore_value ? cur.value : req->value;
    int64_t lease = req->ignore_lease ? cur.lease : req->lease;
    out->prev_kv = NULL;
    if (req->prev_kv && have) {
        out->prev_kv = mem_arena_dup(&arena, &cur, sizeof cur);
        assert_non_null(out->prev_kv);
    }
    model_append(md, key, false, v, lease);
    if (out->header)
        out->header->revision = md->begin + 1;
    return 0;
}

static void model_delete(struct model *md, const struct api_delete_req *req,
                         struct api_delete_resp *out)
{
    struct api_kv *prev = mem_arena_zalloc(&arena, NKEYS * sizeof *prev);
    assert_non_null(prev);
    int64_t rev = model_read_rev(md);
    size_t n = 0;
    int del_keys[NKEYS];
    for (int k = 0; k < NKEYS; k++)
        if (model_in(k, req->key, req->range_end) && model_get(md, k, rev, &prev[n]))
            del_keys[n++] = k;
    for (size_t i = 0; i < n; i++)
        model_append(md, del_keys[i], true, NOB, 0);
    out->deleted = (int64_t)n;
    out->prev_kvs = req->prev_kv && n ? prev : NULL;
    out->n_prev_kvs = req->prev_kv ? n : 0;
    if (out->header)
        out->header->revision = n || md->n_changes ? md->begin + 1 : md->begin;
}

static bool model_compare(const struct model *md, const struct api_compare *c)
{
    struct api_kv kvs[NKEYS];
    size_t n = 0;
    for (int k = 0; k < NKEYS; k++)
        if (model_in(k, c->key, c->range_end) && model_get(md, k, md->rev, &kvs[n]))
            n++;
    if (!n) {
        if (c->target == API_CMP_VALUE)
            return false;
        memset(&kvs[0], 0, sizeof kvs[0]);
        n = 1;
    }
    for (size_t i = 0; i < n; i++) {
        const struct api_kv *kv = &kvs[i];
        int r = 0;
        switch (c->target) {
        case API_CMP_VALUE: {
            struct pb_bytes v = c->has_value ? c->value : NOB;
            r = mvcc_bcmp(kv->value.p, kv->value.len, v.p, v.len);
            break;
        }
        case API_CMP_CREATE:
            r = mvcc_cmp64(kv->create_revision, c->has_create_revision ? c->create_revision : 0);
            break;
        case API_CMP_MOD:
            r = mvcc_cmp64(kv->mod_revision, c->has_mod_revision ? c->mod_revision : 0);
            break;
        case API_CMP_VERSION:
            r = mvcc_cmp64(kv->version, c->has_version ? c->version : 0);
            break;
        case API_CMP_LEASE:
            r = mvcc_cmp64(kv->lease, c->has_lease ? c->lease : 0);
            break;
        }
        bool ok = c->result == API_CMP_EQUAL       ? r == 0
                  : c->result == API_CMP_NOT_EQUAL ? r != 0
                  : c->result == API_CMP_GREATER   ? r > 0
                  : c->result == API_CMP_LESS      ? r < 0
                                                   : true;
        if (!ok)
            return false;
    }
    return true;
}

/* compareToPath */
static void model_path(const struct model *md, const struct api_txn_req *rt, bool *path,
                       size_t *n)
{
    bool ok = true;
    for (size_t i = 0; i < rt->n_compare && ok; i++)
        ok = model_compare(md, &rt->compare[i]);
    path[(*n)++] = ok;
    const struct api_request_op *ops = ok ? rt->success : rt->failure;
    size_t k = ok ? rt->n_success : rt->n_failure;
    for (size_t i = 0; i < k; i++)
        if (ops[i].request_txn)
            model_path(md, ops[i].request_txn, path, n);
}

/* checkRequests; pass 0 checks puts, pass 1 ranges */
static int model_checks(const struct model *md, const struct api_txn_req *rt, const bool *path,
                        size_t *pos, int pass)
{
    bool ok = path[(*pos)++];
    const struct api_request_op *ops = ok ? rt->success : rt->failure;
    size_t k = ok ? rt->n_success : rt->n_failure;
    for (size_t i = 0; i < k; i++) {
        const struct api_request_op *op = &ops[i];
        if (op->request_txn) {
            int rc = model_checks(md, op->request_txn, path, pos, pass);
            if (rc)
                return rc;
        } else if (pass == 0 && op->request_put) {
            struct api_kv kv;
            if ((op->request_put->ignore_value || op->request_put->ignore_lease) &&
                !model_get(md, model_key_index(op->request_put->key), md->rev, &kv))
                return -ERR_KEY_NOT_FOUND;
        } else if (pass == 1 && op->request_range) {
            int64_t r = op->request_range->revision;
            if (r == 0)
                continue;
            if (r > md->rev)
                return -ERR_FUTURE_REV;
            if (r < md->compact)
                return -ERR_COMPACTED;
        }
    }
    return 0;
}

static int model_apply(struct model *md, const struct api_txn_req *rt, const bool *path,
                       size_t *pos, struct api_txn_resp *out)
{
    bool ok = path[(*pos)++];
    const struct api_request_op *ops = ok ? rt->success : rt->failure;
    size_t k = ok ? rt->n_success : rt->n_failure;
    out->succeeded = ok;
    out->n_responses = k;
    out->responses = k ? mem_arena_zalloc(&arena, k * sizeof *out->responses) : NULL;
    for (size_t i = 0; i < k; i++) {
        const struct api_request_op *op = &ops[i];
        struct api_response_op *ro = &out->responses[i];
        struct api_header *h = mem_arena_zalloc(&arena, sizeof *h);
        int rc = 0;
        if (op->request_range) {
            ro->response_range = mem_arena_zalloc(&arena, sizeof *ro->response_range);
            ro->response_range->header = h;
            rc = model_range(md, op->request_range, model_read_rev(md), ro->response_range);
            assert_int_equal(rc, 0);
        } else if (op->request_put) {
            ro->response_put = mem_arena_zalloc(&arena, sizeof *ro->response_put);
            ro->response_put->header = h;
            rc = model_put(md, op->request_put, ro->response_put);
        } else if (op->request_delete_range) {
            ro->response_delete_range = mem_arena_zalloc(&arena, sizeof *ro->response_delete_range);
            ro->response_delete_range->header = h;
            model_delete(md, op->request_delete_range, ro->response_delete_range);
        } else {
            ro->response_txn = mem_arena_zalloc(&arena, sizeof *ro->response_txn);
            ro->response_txn->header = h;
            rc = model_apply(md, op->request_txn, path, pos, ro->response_txn);
        }
        if (rc)
            return rc;
    }
    return 0;
}

static void model_begin(struct model *md)
{
    md->begin = md->rev;
    md->n_changes = 0;
}

static void model_end(struct model *md, size_t saved, int rc)
{
    if (rc)
        md->n = saved;
    else if (md->n_changes)
        md->rev++;
}

static int model_txn(struct model *md, const struct api_txn_req *rt, struct api_txn_resp *out)
{
    bool path[64];
    size_t n = 0, pos = 0;
    model_path(md, rt, path, &n);
    int rc = model_checks(md, rt, path, &pos, 0);
    if (rc)
        return rc;
    pos = 0;
    rc = model_checks(md, rt, path, &pos, 1);
    if (rc)
        return rc;
    size_t saved = md->n;
    model_begin(md);
    pos = 0;
    rc = model_apply(md, rt, path, &pos, out);
    if (!rc && out->header)
        out->header->revision = model_read_rev(md);
    model_end(md, saved, rc);
    return rc;
}

/* ---- comparing responses ---- */

static void same_kv(const struct api_kv *e, const struct api_kv *a)
{
    assert_true(beq(a->key, (const char *)e->key.p, e->key.len));
    assert_true(beq(a->value, (const char *)e->value.p, e->value.len));
    assert_int_equal(a->create_revision, e->create_revision);
    assert_int_equal(a->mod_revision, e->mod_revision);
    assert_int_equal(a->version, e->version);
    assert_int_equal(a->lease, e->lease);
}

static void same_header(const struct api_header *e, const struct api_header *a)
{
    assert_int_equal(e == NULL, a == NULL);
    if (e)
        assert_int_equal(a->revision, e->revision);
}

static void same_range(const struct api_range_resp *e, const struct api_range_resp *a)
{
    same_header(e->header, a->header);
    assert_int_equal(a->count, e->count);
    assert_int_equal(a->more, e->more);
    assert_int_equal(a->n_kvs, e->n_kvs);
    for (size_t i = 0; i < e->n_kvs; i++)
        same_kv(&e->kvs[i], &a->kvs[i]);
}

static void same_put(const struct api_put_resp *e, const struct api_put_resp *a)
{
    same_header(e->header, a->header);
    assert_int_equal(e->prev_kv == NULL, a->prev_kv == NULL);
    if (e->prev_kv)
        same_kv(e->prev_kv, a->prev_kv);
}

static void same_delete(const struct api_delete_resp *e, const struct api_delete_resp *a)
{
    same_header(e->header, a->header);
    assert_int_equal(a->deleted, e->deleted);
    assert_int_equal(a->n_prev_kvs, e->n_prev_kvs);
    for (size_t i = 0; i < e->n_prev_kvs; i++)
        same_kv(&e->prev_kvs[i], &a->prev_kvs[i]);
}

static void same_txn(const struct api_txn_resp *e, const struct api_txn_resp *a)
{
    same_header(e->header, a->header);
    assert_int_equal(a->succeeded, e->succeeded);
    assert_int_equal(a->n_responses, e->n_responses);
    for (size_t i = 0; i < e->n_responses; i++) {
        const struct api_response_op *x = &e->responses[i], *y = &a->responses[i];
        assert_int_equal(x->response_range == NULL, y->response_range == NULL);
        assert_int_equal(x->response_put == NULL, y->response_put == NULL);
        assert_int_equal(x->response_delete_range == NULL, y->response_delete_range == NULL);
        assert_int_equal(x->response_txn == NULL, y->response_txn == NULL);
        if (x->response_range)
            same_range(x->response_range, y->response_range);
        if (x->response_put)
            same_put(x->response_put, y->response_put);
        if (x->response_delete_range)
            same_delete(x->response_delete_range, y->response_delete_range);
        if (x->response_txn)
            same_txn(x->response_txn, y->response_txn);
    }
}

/* ---- random operations ---- */

static uint64_t rnd_state;

static uint32_t rnd(uint32_t n)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return (uint32_t)(rnd_state % n);
}

static struct pb_bytes rnd_value(void)
{
    static const char *vals[] = {"", "0", "1", "10", "2", "x", "xy", "zzzz"};
    return bs(vals[rnd(8)]);
}

static struct pb_bytes rnd_end(void)
{
    uint32_t r = rnd(10);
    if (r < 4)
        return NOB;
    if (r < 8)
        return model_keys[rnd(NKEYS)];
    return model_ends[rnd(sizeof model_ends / sizeof model_ends[0])];
}

static int64_t rnd_rev(const struct model *md)
{
    switch (rnd(4)) {
    case 0:
        return 0;
    case 1:
        return (int64_t)rnd(3) - 2;
    default:
        return md->compact - 1 + (int64_t)rnd((uint32_t)(md->rev - md->compact + 3));
    }
}

static struct api_range_req *rnd_range_req(const struct model *md)
{
    struct api_range_req *q = mem_arena_zalloc(&arena, sizeof *q);
    q->key = model_keys[rnd(NKEYS)];
    q->range_end = rnd_end();
    q->revision = rnd(3) ? 0 : rnd_rev(md);
    q->limit = rnd(3) ? 0 : (int64_t)rnd(5) - 1;
    if (!rnd(3)) {
        q->sort_order = (int32_t)rnd(4);
        q->sort_target = (int32_t)rnd(6);
    }
    q->keys_only = !rnd(5);
    q->count_only = !rnd(8);
    if (!rnd(4)) {
        q->min_mod_revision = rnd(2) ? 0 : rnd_rev(md);
        q->max_mod_revision = rnd(2) ? 0 : rnd_rev(md);
        q->min_create_revision = rnd(2) ? 0 : rnd_rev(md);
        q->max_create_revision = rnd(2) ? 0 : rnd_rev(md);
    }
    return q;
}

static struct api_put_req *rnd_put_req(void)
{
    struct api_put_req *q = mem_arena_zalloc(&arena, sizeof *q);
    q->key = model_keys[rnd(NKEYS)];
    q->value = rnd_value();
    q->lease = rnd(3) ? 0 : rnd(3);
    q->prev_kv = rnd(2);
    if (!rnd(6)) {
        q->ignore_value = rnd(2);
        q->ignore_lease = !q->ignore_value || rnd(2);
    }
    return q;
}

static struct api_delete_req *rnd_delete_req(void)
{
    struct api_delete_req *q = mem_arena_zalloc(&arena, sizeof *q);
    q->key = model_keys[rnd(NKEYS)];
    q->range_end = rnd(2) ? NOB : rnd_end();
    q->prev_kv = rnd(2);
    return q;
}

static struct api_txn_req *rnd_txn_req(const struct model *md, int depth);

static void rnd_ops(const struct model *md, int depth, struct api_request_op **ops, size_t *n)
{
    *n = rnd(4);
    *ops = *n ? mem_arena_zalloc(&arena, *n * sizeof **ops) : NULL;
    for (size_t i = 0; i < *n; i++) {
        uint32_t r = rnd(depth < 2 ? 7 : 6);
        if (r < 2)
            (*ops)[i].request_put = rnd_put_req();
        else if (r < 4)
            (*ops)[i].request_range = rnd_range_req(md);
        else if (r < 6)
            (*ops)[i].request_delete_range = rnd_delete_req();
        else
            (*ops)[i].request_txn = rnd_txn_req(md, depth + 1);
    }
}

static struct api_txn_req *rnd_txn_req(const struct model *md, int depth)
{
    struct api_txn_req *t = mem_arena_zalloc(&arena, sizeof *t);
    t->n_compare = rnd(3);
    t->compare = t->n_compare ? mem_arena_zalloc(&arena, t->n_compare * sizeof *t->compare) : NULL;
    for (size_t i = 0; i < t->n_compare; i++) {
        struct api_compare *c = &t->compare[i];
        c->key = model_keys[rnd(NKEYS)];
        c->range_end = rnd(3) ? NOB : rnd_end();
        c->target = (int32_t)rnd(5);
        c->result = (int32_t)rnd(4);
        int64_t v = rnd(2) ? (int64_t)rnd(3) : rnd_rev(md);
        switch (c->target) {
        case API_CMP_VERSION:
            c->version = v;
            c->has_version = rnd(8);
            break;
        case API_CMP_CREATE:
            c->create_revision = v;
            c->has_create_revision = rnd(8);
            break;
        case API_CMP_MOD:
            c->mod_revision = v;
            c->has_mod_revision = rnd(8);
            break;
        case API_CMP_VALUE:
            c->value = rnd_value();
            c->has_value = rnd(8);
            break;
        default:
            c->lease = v;
            c->has_lease = rnd(8);
            break;
        }
    }
    rnd_ops(md, depth, &t->success, &t->n_success);
    rnd_ops(md, depth, &t->failure, &t->n_failure);
    return t;
}

/* The event the model's history entry idx is: the kv as of that change and,
 * as etcd's watch reads prev_kv, the key at main - 1 unless compacted. */
static void model_event(const struct model *md, size_t idx, struct mvcc_event *ev)
{
    const struct mev *e = &md->ev[idx];
    memset(ev, 0, sizeof *ev);
    ev->sub = e->sub;
    ev->kv.key = model_keys[e->key];
    ev->kv.mod_revision = e->main;
    ev->type = e->tomb ? API_EVENT_DELETE : API_EVENT_PUT;
    if (!e->tomb) {
        bool live = false;
        for (size_t i = 0; i <= idx; i++) {
            const struct mev *x = &md->ev[i];
            if (x->key != e->key)
                continue;
            if (x->tomb) {
                live = false;
                continue;
            }
            if (!live) {
                live = true;
                ev->kv.create_revision = x->main;
                ev->kv.version = 0;
            }
            ev->kv.version++;
        }
        ev->kv.value.p = e->vlen ? e->val : NULL;
        ev->kv.value.len = e->vlen;
        ev->kv.lease = e->lease;
    }
    ev->has_prev = e->main - 1 >= md->compact && model_get(md, e->key, e->main - 1, &ev->prev);
}

static void same_event(const struct mvcc_event *e, const struct mvcc_event *a)
{
    assert_int_equal(a->type, e->type);
    assert_int_equal(a->sub, e->sub);
    same_kv(&e->kv, &a->kv);
    assert_int_equal(a->has_prev, e->has_prev);
    if (e->has_prev)
        same_kv(&e->prev, &a->prev);
}

/* The feed after a mutating call: the model's entries from saved on, or
 * nothing if the call failed. */
static void check_feed(const struct mvcc *m, const struct model *md, size_t saved, int rc)
{
    size_t n = rc ? 0 : md->n - saved;
    assert_int_equal(mvcc_last_n_events(m), n);
    for (size_t i = 0; i < n; i++) {
        struct mvcc_event e, a;
        model_event(md, saved + i, &e);
        mvcc_last_event(m, i, &a);
        same_event(&e, &a);
    }
}

/* Whether compaction kept history entry idx: everything above the
 * compacted revision, and at it a put that is its key's newest there. */
static bool model_kept(const struct model *md, size_t idx)
{
    const struct mev *e = &md->ev[idx];
    if (e->main > md->compact)
        return true;
    if (e->main < md->compact || e->tomb)
        return false;
    for (size_t i = idx + 1; i < md->n && md->ev[i].main == e->main; i++)
        if (md->ev[i].key == e->key)
            return false;
    return true;
}

/* mvcc_events_since from a random revision, batch after batch, against the
 * model's history. */
static void check_since(struct mvcc *m, const struct model *md)
{
    struct pb_bytes key = model_keys[rnd(NKEYS)], end = rnd_end();
    int64_t from = md->compact - 1 + (int64_t)rnd((uint32_t)(md->rev - md->compact + 4));
    size_t max = 1 + rnd(6);
    size_t max_bytes = rnd(3) ? 0 : 1 + rnd(8); /* values are 0-4 bytes */
    struct mvcc_event *evs;
    size_t n;
    int64_t next;
    if (from < md->compact) {
        assert_int_equal(mvcc_events_since(m, key, end, from, max, max_bytes, &arena, &evs, &n, &next),
                         -ERR_COMPACTED);
        return;
    }
    size_t want = 0;
    while (want < md->n && md->ev[want].main < from)
        want++;
    for (int64_t at = from;;) {
        assert_int_equal(mvcc_events_since(m, key, end, at, max, max_bytes, &arena, &evs, &n, &next), 0);
        if (n > max)
            assert_int_equal(evs[0].kv.mod_revision, evs[n - 1].kv.mod_revision);
        for (size_t i = 0; i < n; i++) {
            while (want < md->n && (!model_in(md->ev[want].key, key, end) || !model_kept(md, want)))
                want++;
            assert_true(want < md->n);
            struct mvcc_event e;
            model_event(md, want++, &e);
            same_event(&e, &evs[i]);
        }
        if (n)
            assert_true(next > evs[n - 1].kv.mod_revision);
        if (at > md->rev) {
            assert_int_equal(next, at);
            break;
        }
        assert_true(next > at);
        if (next > md->rev) {
            assert_int_equal(next, md->rev + 1);
            break;
        }
        at = next;
    }
    while (want < md->n && (!model_in(md->ev[want].key, key, end) || !model_kept(md, want)))
        want++;
    assert_int_equal(want, md->n);
}

/* Every key at every readable revision, against the model. */
static void verify_all(struct mvcc *m, const struct model *md)
{
    assert_int_equal(mvcc_rev(m), md->rev);
    for (int64_t rev = md->compact < 1 ? 1 : md->compact; rev <= md->rev; rev++) {
        struct api_range_req q = {.key = BS("\0"), .range_end = BS("\0"), .revision = rev};
        struct api_range_resp e = {.header = &(struct api_header){0}};
        struct api_range_resp a = {.header = &(struct api_header){0}};
        assert_int_equal(model_range(md, &q, md->rev, &e), 0);
        assert_int_equal(mvcc_range(m, &q, &arena, &a), 0);
        same_range(&e, &a);
    }
    check_tree(m);
}

/* A backend for the evicting runs: every revision the feed reported, kept
 * in (main, sub) order as the key bucket keeps them. */
struct disk_rev {
    int64_t main, sub, create, version, lease;
    uint8_t *key, *val;
    size_t klen, vlen;
};

static struct {
    bool on;
    struct disk_rev *v;
    size_t n, cap;
    int64_t durable; /* mvcc_evict'ed up to here */
    long loads, dones;
    bool open;       /* a call's loads are under way */
} disk;

static int disk_load(void *ctx, struct pb_bytes key, int64_t main, int64_t sub, struct mem_arena *a,
                     struct api_kv *kv)
{
    (void)ctx;
    assert_true(main <= disk.durable); /* only what was evicted is asked for */
    disk.open = true;
    disk.loads++;
    size_t lo = 0, hi = disk.n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct disk_rev *d = &disk.v[mid];
        if (d->main < main || (d->main == main && d->sub < sub))
            lo = mid + 1;
        else
            hi = mid;
    }
    assert_true(lo < disk.n);
    const struct disk_rev *d = &disk.v[lo];
    assert_true(d->main == main && d->sub == sub);
    assert_int_equal(d->klen, key.len);
    assert_memory_equal(d->key, key.p, key.len);
    uint8_t *p = d->vlen ? mem_arena_dup(a, d->val, d->vlen) : NULL;
    if (d->vlen && !p)
        return -ERR_NOMEM;
    kv->value = (struct pb_bytes){p, d->vlen};
    kv->create_revision = d->create;
    kv->version = d->version;
    kv->lease = d->lease;
    return 0;
}

static void disk_done(void *ctx)
{
    (void)ctx;
    assert_true(disk.open);
    disk.open = false;
    disk.dones++;
}

/* What the backend records after a successful write: the feed. */
static void disk_record(const struct mvcc *m)
{
    for (size_t i = 0; disk.on && i < mvcc_last_n_events(m); i++) {
        struct mvcc_event ev;
        mvcc_last_event(m, i, &ev);
        if (disk.n == disk.cap) {
            disk.cap = disk.cap ? disk.cap * 2 : 1024;
            disk.v = realloc(disk.v, disk.cap * sizeof *disk.v);
            assert_non_null(disk.v);
        }
        struct disk_rev *d = &disk.v[disk.n++];
        d->main = ev.kv.mod_revision;
        d->sub = ev.sub;
        d->create = ev.kv.create_revision;
        d->version = ev.kv.version;
        d->lease = ev.kv.lease;
        d->klen = ev.kv.key.len;
        d->key = malloc(d->klen + 1);
        memcpy(d->key, ev.kv.key.p, d->klen);
        d->vlen = ev.kv.value.len;
        d->val = malloc(d->vlen + 1);
        if (d->vlen)
            memcpy(d->val, ev.kv.value.p, d->vlen);
    }
}

static void disk_free(void)
{
    for (size_t i = 0; i < disk.n; i++) {
        free(disk.v[i].key);
        free(disk.v[i].val);
    }
    free(disk.v);
    memset(&disk, 0, sizeof disk);
}

/* Values of revisions other than their key's newest still in memory. */
static size_t resident_old_values(const struct mvcc *m)
{
    struct mvcc_iter it;
    struct mvcc_key *k;
    size_t n = 0;
    mvcc_tree_seek(&m->mv_tree, NULL, 0, &it);
    while ((k = mvcc_iter_next(&it)))
        for (size_t i = k->k_res; i + 1 < k->k_n; i++)
            n += !MVCC_EVICTED(&k->k_vers[i - k->k_res]) && !MVCC_IS_TOMB(&k->k_vers[i - k->k_res]);
    return n;
}

/* evicting: the store has a loader (disk) and evicts up to a random durable
 * revision now and then, so reads of history go through loads.  long_history:
 * compactions are rare, so keys build histories of many packed groups. */
static void run_random(uint64_t seed, int steps, bool evicting, bool long_history)
{
    struct model md = {.cap = 200000, .rev = 1, .compact = -1};
    md.ev = calloc(md.cap, sizeof *md.ev);
    assert_non_null(md.ev);
    struct mvcc *m = mvcc_new();
    disk.on = evicting;
    if (evicting)
        mvcc_set_loader(m, &(struct mvcc_loader){disk_load, disk_done, NULL});
    rnd_state = seed;
    for (int step = 0; step < steps; step++) {
        if (evicting && rnd(10) == 0) {
            disk.durable += (int64_t)rnd((uint32_t)(md.rev - disk.durable + 1));
            mvcc_evict(m, disk.durable);
        }
        uint32_t op = rnd(100);
        int rc_e, rc_a;
        size_t saved = md.n;
        if (op < 30) {
            struct api_put_req *q = rnd_put_req();
            struct api_put_resp e = {.header = &(struct api_header){0}};
            struct api_put_resp a = {.header = &(struct api_header){0}};
            model_begin(&md);
            rc_e = model_put(&md, q, &e);
            model_end(&md, saved, rc_e);
            rc_a = mvcc_put(m, q, &arena, &a);
            assert_int_equal(rc_a, rc_e);
            if (!rc_e)
                same_put(&e, &a);
            check_feed(m, &md, saved, rc_e);
            disk_record(m);
        } else if (op < 42) {
            struct api_delete_req *q = rnd_delete_req();
            struct api_delete_resp e = {.header = &(struct api_header){0}};
            struct api_delete_resp a = {.header = &(struct api_header){0}};
            model_begin(&md);
            model_delete(&md, q, &e);
            model_end(&md, md.n, 0);
            assert_int_equal(mvcc_delete(m, q, &arena, &a), 0);
            same_delete(&e, &a);
            check_feed(m, &md, saved, 0);
            disk_record(m);
        } else if (op < 70) {
            struct api_range_req *q = rnd_range_req(&md);
            struct api_range_resp e = {.header = &(struct api_header){0}};
            struct api_range_resp a = {.header = &(struct api_header){0}};
            rc_e = model_range(&md, q, md.rev, &e);
            rc_a = mvcc_range(m, q, &arena, &a);
            assert_int_equal(rc_a, rc_e);
            if (!rc_e)
                same_range(&e, &a);
        } else if (op < 97) {
            struct api_txn_req *q = rnd_txn_req(&md, 0);
            struct api_txn_resp e = {.header = &(struct api_header){0}};
            struct api_txn_resp a = {.header = &(struct api_header){0}};
            rc_e = model_txn(&md, q, &e);
            rc_a = mvcc_txn(m, q, &arena, &a);
            assert_int_equal(rc_a, rc_e);
            if (!rc_e)
                same_txn(&e, &a);
            check_feed(m, &md, saved, rc_e);
            disk_record(m);
        } else if (!long_history || rnd(20) == 0) {
            int64_t rev = md.compact - 1 + (int64_t)rnd((uint32_t)(md.rev - md.compact + 3));
            rc_e = rev <= md.compact ? -ERR_COMPACTED : rev > md.rev ? -ERR_FUTURE_REV : 0;
            assert_int_equal(mvcc_compact(m, rev), rc_e);
            if (!rc_e)
                md.compact = rev;
            assert_int_equal(mvcc_last_n_events(m), 0);
        }
        if (step % 10 == 9)
            check_since(m, &md);
        if (step % 200 == 199)
            verify_all(m, &md);
        mem_arena_reset(&arena);
    }
    verify_all(m, &md);
    if (evicting) {
        disk.durable = md.rev;
        mvcc_evict(m, md.rev);
        assert_int_equal(resident_old_values(m), 0);
        verify_all(m, &md);
        print_message("evicting run: %ld loads in %ld calls\n", disk.loads, disk.dones);
        assert_true(disk.loads > 0);
        assert_false(disk.open);
        disk_free();
    }
    mvcc_free(m);
    free(md.ev);
}

static void test_random(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 8; seed++)
        run_random(seed * 0x9E3779B97F4A7C15ull, 3000, false, false);
}

/* The same with values evicted and read back from a backend. */
static void test_random_evicting(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 6; seed++)
        run_random(seed * 0xD1B54A32D192ED03ull, 3000, true, false);
}

/* Evicting with long histories: many groups of packed revisions per key,
 * compactions that cut them anywhere. */
static void test_random_long_history(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 3; seed++)
        run_random(seed * 0x94D049BB133111EBull, 4000, true, true);
}

/* ---- allocation failures ---- */

/* Runs op on m with the n-th allocation failing, for n = 0, 1, ... until it
 * succeeds; each failure must be -ERR_NOMEM and leave m exactly as ref (which
 * has not run op).  On success op is run on ref too and both must agree. */
typedef int (*store_op)(struct mvcc *m, struct mem_arena *a);

static void fail_each(struct mvcc *m, struct mvcc *ref, store_op op, int sticky, const char *name)
{
    struct dump want = dump_store(ref);
    int failures = 0;
    for (long n = 0;; n++) {
        struct mem_arena a;
        mem_arena_init(&a, 0);
        mem_fail_after(n, sticky);
        int rc = op(m, &a);
        mem_fail_after(-1, 0);
        mem_arena_free(&a);
        if (rc == 0)
            break;
        assert_int_equal(rc, -ERR_NOMEM);
        failures++;
        struct dump got = dump_store(m);
        assert_dump_equal(want, got);
        free(got.p);
        check_tree(m);
        assert_true(n < 10000);
    }
    if (!failures)
        fail_msg("%s: no allocation to fail", name);
    struct mem_arena a;
    mem_arena_init(&a, 0);
    assert_int_equal(op(ref, &a), 0);
    mem_arena_free(&a);
    struct dump got = dump_store(m);
    free(want.p);
    want = dump_store(ref);
    assert_dump_equal(want, got);
    free(got.p);
    free(want.p);
    check_tree(m);
}

static int op_put_existing(struct mvcc *m, struct mem_arena *a)
{
    struct api_put_req q = {.key = BS("k00000010"), .value = BS("new value"), .prev_kv = true};
    struct api_put_resp r = {0};
    return mvcc_put(m, &q, a, &r);
}

static int op_put_new_middle(struct mvcc *m, struct mem_arena *a)
{
    struct api_put_req q = {.key = BS("k00000010x"), .value = BS("v")};
    struct api_put_resp r = {0};
    return mvcc_put(m, &q, a, &r);
}

static int op_put_new_end(struct mvcc *m, struct mem_arena *a)
{
    char k[32];
    snprintf(k, sizeof k, "k%08" PRId64, mvcc_rev(m) + 100000);
    struct api_put_req q = {.key = bs(k), .value = BS("v"), .prev_kv = true};
    struct api_put_resp r = {0};
    return mvcc_put(m, &q, a, &r);
}

static int op_delete_range(struct mvcc *m, struct mem_arena *a)
{
    struct api_delete_req q = {.key = BS("k00000100"), .range_end = BS("k00000300"),
                               .prev_kv = true};
    struct api_delete_resp r = {0};
    return mvcc_delete(m, &q, a, &r);
}

static int op_range(struct mvcc *m, struct mem_arena *a)
{
    struct api_range_req q = {.key = BS("k"), .range_end = BS("l"),
                              .sort_target = API_SORT_VALUE, .sort_order = API_SORT_DESCEND};
    struct api_range_resp r = {0};
    return mvcc_range(m, &q, a, &r);
}

static int op_txn(struct mvcc *m, struct mem_arena *a)
{
    char k[32];
    snprintf(k, sizeof k, "t%08" PRId64, mvcc_rev(m));
    struct api_txn_req q = {
        CMPS({.key = BS("k00000001"), .target = API_CMP_VERSION, .result = API_CMP_GREATER}),
        SUCCESS(OP_PUT(.key = BS("k00000001"), .value = BS("t1"), .prev_kv = true),
                OP_RANGE(.key = BS("k00000001"), .range_end = BS("k00000400")),
                OP_PUT(.key = bs(k), .value = BS("new key")),
                OP_TXN(SUCCESS(OP_DEL(.key = BS("k00000500"), .range_end = BS("k00000700"),
                                      .prev_kv = true),
                               OP_PUT(.key = BS("k00000002x"), .value = BS("nested new")))),
                OP_PUT(.key = BS("k00000003"), .ignore_value = true, .lease = 4))};
    struct api_txn_resp r = {0};
    return mvcc_txn(m, &q, a, &r);
}

static int op_txn_check(struct mvcc *m, struct mem_arena *a)
{
    (void)m;
    (void)a;
    struct api_txn_req q = {SUCCESS(OP_PUT(.key = BS("a"), .value = BS("1")),
                                    OP_DEL(.key = BS("b"), .range_end = BS("c")),
                                    OP_TXN(SUCCESS(OP_PUT(.key = BS("x"))),
                                           FAILURE(OP_PUT(.key = BS("x")))))};
    return mvcc_txn_check(&q, 128);
}

static int op_compact(struct mvcc *m, struct mem_arena *a)
{
    (void)a;
    return mvcc_compact(m, mvcc_rev(m));
}

static void fill(struct mvcc *m)
{
    char k[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(k, sizeof k, "k%08d", (i * 7919) % 5000);
        put(m, k, k);
    }
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof k, "k%08d", i);
        put(m, k, "again");
    }
}

#define FAIL_EACH(op) fail_each(m, ref, op, sticky, #op)

static void test_nomem(void **state)
{
    (void)state;
    struct mvcc *m = mvcc_new(), *ref = mvcc_new();
    for (int sticky = 1; sticky >= 0; sticky--) {
        fill(m);
        fill(ref);
        FAIL_EACH(op_put_existing);
        FAIL_EACH(op_put_new_middle);
        for (int i = 0; i < 70; i++) /* enough appends to split a leaf */
            FAIL_EACH(op_put_new_end);
        FAIL_EACH(op_range);
        FAIL_EACH(op_txn);
        FAIL_EACH(op_delete_range);
        FAIL_EACH(op_txn_check);
        FAIL_EACH(op_compact);
    }
    mvcc_free(m);
    mvcc_free(ref);

    /* and a new store */
    for (long n = 0;; n++) {
        mem_fail_after(n, 1);
        m = mvcc_new();
        mem_fail_after(-1, 0);
        if (m)
            break;
    }
    mvcc_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_new_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range_sort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range_revisions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_packed_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_basic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_compare, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_nested, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_since, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_tree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_evicting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_long_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nomem, setup, teardown),
    };
    return cmocka_run_group_tests_name("mvcc", tests, NULL, NULL);
}
