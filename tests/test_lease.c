/* test_lease.c - lease.c against etcd 3.4's lessor: directed tests for each
 * rule (expected values worked out from lease/lessor.go, etcdserver/
 * v3_server.go and pkg/idutil/id.go), a random run against a model that keeps
 * every lease in a plain array, etcd's promote pile-up rule on 2000 leases,
 * and allocation failures at every allocation of each call that allocates.
 * After every step the table's own invariants are checked (hash chains,
 * key lists, heap order and slots). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../lease.c"

/* ---- helpers ---- */

#define KEY(s) (const uint8_t *)(s), strlen(s)

static struct mem_arena arena;

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
    mem_fail_after(-1, 0);
    return 0;
}

static struct lease_table *mk(int64_t min_ttl, bool checkpoint, int64_t checkpoint_ms)
{
    struct lease_config c = {
        .lc_min_ttl = min_ttl,
        .lc_retry_ms = 7000,
        .lc_checkpoint = checkpoint,
        .lc_checkpoint_ms = checkpoint_ms,
        .lc_seed = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
    };
    struct lease_table *t = lease_new(&c);
    assert_non_null(t);
    return t;
}

static int64_t grant(struct lease_table *t, int64_t now, int64_t id, int64_t ttl)
{
    int64_t got = -1;
    assert_int_equal(lease_grant(t, now, id, ttl, &got), 0);
    return got;
}

static struct lease_info info(const struct lease_table *t, int64_t id)
{
    struct lease_info li;
    assert_int_equal(lease_info(t, id, &li), 0);
    return li;
}

static bool bytes_is(struct pb_bytes b, const char *s)
{
    return b.len == strlen(s) && (!b.len || !memcmp(b.p, s, b.len));
}

/* Every structural invariant of the table. */
static void check(const struct lease_table *t)
{
    size_t n = 0, nk = 0, keys_in_lists = 0;
    for (size_t i = 0; i <= t->lt_ids_mask; i++)
        for (const struct lease *l = t->lt_ids[i]; l; l = l->ls_hnext) {
            size_t c = 0;
            n++;
            assert_int_equal(l->ls_hash, lease_hash_id(t, l->ls_id));
            assert_int_equal(l->ls_hash & t->lt_ids_mask, i);
            assert_ptr_equal(lease_find(t, l->ls_id), l);
            assert_true(l->ls_ttl >= t->lt_cfg.lc_min_ttl);
            for (const struct lease_key *k = l->ls_keys; k; k = k->k_next, c++) {
                assert_ptr_equal(k->k_lease, l);
                if (k->k_next)
                    assert_ptr_equal(k->k_next->k_prev, k);
                assert_ptr_equal(lease_key_find(t, k->k_bytes, k->k_len, k->k_hash), k);
            }
            assert_int_equal(c, l->ls_n_keys);
            keys_in_lists += c;
            if (t->lt_primary) {
                assert_true(l->ls_pos[LEASE_Q_EXPIRY] != LEASE_NOT_QUEUED);
                assert_true(l->ls_expiry < LEASE_FOREVER);
                assert_true(l->ls_due[LEASE_Q_EXPIRY] >= l->ls_expiry);
            } else {
                assert_true(l->ls_pos[LEASE_Q_EXPIRY] == LEASE_NOT_QUEUED);
                assert_true(l->ls_pos[LEASE_Q_CHECKPOINT] == LEASE_NOT_QUEUED);
                assert_true(l->ls_expiry == LEASE_FOREVER);
            }
            if (!t->lt_cfg.lc_checkpoint)
                assert_true(l->ls_pos[LEASE_Q_CHECKPOINT] == LEASE_NOT_QUEUED);
        }
    assert_int_equal(n, t->lt_n);
    for (size_t i = 0; i <= t->lt_keys_mask; i++)
        for (const struct lease_key *k = t->lt_keys[i]; k; k = k->k_hnext) {
            nk++;
            assert_int_equal(k->k_hash & t->lt_keys_mask, i);
            assert_int_equal(k->k_hash, lease_siphash(t->lt_cfg.lc_seed, k->k_bytes, k->k_len));
            assert_ptr_equal(lease_find(t, k->k_lease->ls_id), k->k_lease);
        }
    assert_int_equal(nk, t->lt_n_keys);
    assert_int_equal(keys_in_lists, nk);
    for (int q = 0; q < LEASE_NQ; q++) {
        const struct lease_heap *h = &t->lt_q[q];
        assert_true(h->h_n <= t->lt_n);
        assert_true(!t->lt_n || h->h_cap >= t->lt_n);
        for (size_t i = 0; i < h->h_n; i++) {
            assert_int_equal(h->h_v[i]->ls_pos[q], i);
            assert_ptr_equal(lease_find(t, h->h_v[i]->ls_id), h->h_v[i]);
            if (i)
                assert_false(lease_less(q, h->h_v[i], h->h_v[(i - 1) / 2]));
        }
    }
    if (t->lt_primary)
        assert_int_equal(t->lt_q[LEASE_Q_EXPIRY].h_n, t->lt_n);
    else
        assert_int_equal(t->lt_q[LEASE_Q_EXPIRY].h_n + t->lt_q[LEASE_Q_CHECKPOINT].h_n, 0);
}

/* A digest of everything observable about the table, independent of hash
 * order: a failed call must leave it unchanged. */
static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    return h * 0xff51afd7ed558ccdULL;
}

static uint64_t digest(const struct lease_table *t)
{
    uint64_t sum = 0;
    for (size_t i = 0; i <= t->lt_ids_mask; i++)
        for (const struct lease *l = t->lt_ids[i]; l; l = l->ls_hnext) {
            uint64_t h = mix(0, (uint64_t)l->ls_id), ks = 0;
            h = mix(h, (uint64_t)l->ls_ttl);
            h = mix(h, (uint64_t)l->ls_remaining);
            h = mix(h, (uint64_t)l->ls_expiry);
            for (int q = 0; q < LEASE_NQ; q++) {
                h = mix(h, l->ls_pos[q] == LEASE_NOT_QUEUED);
                h = mix(h, l->ls_pos[q] == LEASE_NOT_QUEUED ? 0 : (uint64_t)l->ls_due[q]);
            }
            for (const struct lease_key *k = l->ls_keys; k; k = k->k_next)
                ks += mix(lease_siphash(t->lt_cfg.lc_seed, k->k_bytes, k->k_len), 1);
            sum += mix(h, ks);
        }
    return mix(mix(mix(sum, t->lt_n), t->lt_n_keys), t->lt_primary);
}

/* ---- setup, IDs, hashing ---- */

static void test_min_ttl(void **state)
{
    (void)state;
    /* (3*10)/2 * 100 ms = 1.5 s -> 2 s: etcd's default */
    assert_int_equal(lease_min_ttl(10, 100), 2);
    /* (3*5)/2 = 7 ticks * 100 ms = 0.7 s -> 1 s */
    assert_int_equal(lease_min_ttl(5, 100), 1);
    assert_int_equal(lease_min_ttl(10, 1000), 15);
    assert_int_equal(lease_min_ttl(20, 50), 2);  /* 1500 ms */
    assert_int_equal(lease_min_ttl(4, 500), 3);  /* 3000 ms: exact */
}

static void test_idgen(void **state)
{
    struct lease_idgen g;
    (void)state;
    /* NewGenerator(uint16(0x8e9e05c52164694d), 1700000000123 ms): prefix
     * 0x694d << 48, suffix (ts & (2^40-1)) << 8 = 0x8bcfe5687b00; Next()
     * increments the suffix first. */
    lease_idgen_init(&g, 0x8e9e05c52164694dULL, 1700000000123LL);
    assert_int_equal(lease_idgen_next(&g), 0x694d8bcfe5687b01ULL);
    assert_int_equal(lease_idgen_next(&g), 0x694d8bcfe5687b02ULL);
    assert_int_equal(lease_id_gen(&g), 0x694d8bcfe5687b03LL);
    /* the counter carries into the timestamp */
    for (int i = 4; i <= 0xff; i++)
        (void)lease_idgen_next(&g);
    assert_int_equal(lease_idgen_next(&g), 0x694d8bcfe5687c00ULL);

    /* a member ID whose low 16 bits have the top bit: LeaseGrant keeps the
     * ID positive (& (1<<63 - 1)); Next() itself does not */
    lease_idgen_init(&g, 0xc2a3, 0x123456789aLL);
    assert_int_equal(lease_idgen_next(&g), 0xc2a3123456789a01ULL);
    assert_int_equal(lease_id_gen(&g), 0x42a3123456789a02LL);

    /* the timestamp keeps its low 40 bits only */
    lease_idgen_init(&g, 1, 0x10000000001LL);
    assert_int_equal(lease_idgen_next(&g), 0x0001000000000101ULL);

    /* the 48-bit suffix wraps without touching the prefix; LeaseGrant's loop
     * skips the 0 that member 0 then produces */
    lease_idgen_init(&g, 0x10000, (1LL << 40) - 1);
    for (int i = 0; i < 0xff; i++)
        (void)lease_idgen_next(&g);
    assert_int_equal(lease_id_gen(&g), 1);
    lease_idgen_init(&g, 0x7, (1LL << 40) - 1);
    for (int i = 0; i < 0xff; i++)
        (void)lease_idgen_next(&g);
    assert_int_equal(lease_idgen_next(&g), 0x0007000000000000ULL);
}

static void test_siphash(void **state)
{
    static const uint8_t zero[16];
    (void)state;
    /* SipHash-1-3 with an all-zero key: CPython's bytes hash with
     * PYTHONHASHSEED=0 (sys.hash_info.algorithm == 'siphash13') */
    assert_int_equal(lease_siphash(zero, KEY("abc")), 13851880170939887858ULL);
    assert_int_equal(lease_siphash(zero, KEY("hello")), 16350172494705860510ULL);
    assert_int_equal(lease_siphash(zero, KEY("12345678")), 3785724242978802311ULL);
    assert_int_equal(lease_siphash(zero, KEY("123456789abcdefgh")), 78424065292164886ULL);
}

/* ---- raft-applied rules ---- */

static void test_grant_rules(void **state)
{
    struct lease_table *t = mk(2, false, 0);
    int64_t ttl = -1;
    struct api_lease_time_to_live_resp r;
    (void)state;

    assert_int_equal(lease_grant(t, 0, 0, 10, &ttl), -ERR_LEASE_NOT_FOUND);
    assert_int_equal(lease_grant(t, 0, 1, LEASE_MAX_TTL + 1, &ttl), -ERR_LEASE_TTL_TOO_LARGE);
    /* id 0 is checked before the TTL, the TTL before existence */
    assert_int_equal(lease_grant(t, 0, 0, LEASE_MAX_TTL + 1, &ttl), -ERR_LEASE_NOT_FOUND);
    assert_int_equal(ttl, -1);
    assert_int_equal(grant(t, 0, 1, LEASE_MAX_TTL), LEASE_MAX_TTL);
    assert_int_equal(lease_grant(t, 0, 1, LEASE_MAX_TTL + 1, &ttl), -ERR_LEASE_TTL_TOO_LARGE);
    assert_int_equal(lease_grant(t, 0, 1, 5, &ttl), -ERR_LEASE_EXIST);
    /* short, zero and negative TTLs are raised to the minimum */
    assert_int_equal(grant(t, 0, 2, 1), 2);
    assert_int_equal(grant(t, 0, 3, 0), 2);
    assert_int_equal(grant(t, 0, 4, -5), 2);
    assert_int_equal(grant(t, 0, 5, 3), 3);
    /* negative IDs are leases like any other */
    assert_int_equal(grant(t, 0, -7, 30), 30);
    assert_true(lease_exists(t, -7));
    assert_false(lease_exists(t, 8));
    assert_int_equal(lease_count(t), 6);
    assert_int_equal(lease_info(t, 8, &(struct lease_info){0}), -ERR_LEASE_NOT_FOUND);

    /* a follower's lease does not run */
    assert_int_equal(info(t, 5).lf_expiry_ms, LEASE_FOREVER);
    assert_int_equal(lease_time_to_live(t, 123456, 5, false, &arena, &r), 0);
    assert_int_equal(r.ID, 5);
    assert_int_equal(r.TTL, 9223372036LL);
    assert_int_equal(r.grantedTTL, 3);
    assert_int_equal(lease_next_expiry(t), LEASE_FOREVER);
    check(t);

    /* a primary's lease runs from the grant */
    lease_promote(t, 1000, 0);
    assert_int_equal(grant(t, 5000, 9, 10), 10);
    assert_int_equal(info(t, 9).lf_expiry_ms, 15000);
    assert_int_equal(info(t, 9).lf_remaining, 0);
    check(t);
    lease_free(t);
}

static void test_revoke(void **state)
{
    struct lease_table *t = mk(2, false, 0);
    struct pb_bytes *keys = (void *)1;
    size_t n = 99;
    (void)state;

    grant(t, 0, 1, 10);
    grant(t, 0, 2, 10);
    assert_int_equal(lease_attach(t, 1, KEY("b")), 0);
    assert_int_equal(lease_attach(t, 1, KEY("ab")), 0);
    assert_int_equal(lease_attach(t, 1, KEY("a")), 0);
    assert_int_equal(lease_attach(t, 1, KEY("")), 0);
    assert_int_equal(lease_attach(t, 1, (const uint8_t *)"a\0z", 3), 0);
    assert_int_equal(lease_attach(t, 2, KEY("c")), 0);

    assert_int_equal(lease_revoke(t, 3, &arena, &keys, &n), -ERR_LEASE_NOT_FOUND);
    assert_int_equal(lease_revoke(t, 1, &arena, &keys, &n), 0);
    /* bytewise, prefixes first, as Go sorts strings */
    assert_int_equal(n, 5);
    assert_true(bytes_is(keys[0], ""));
    assert_true(bytes_is(keys[1], "a"));
    assert_true(keys[2].len == 3 && !memcmp(keys[2].p, "a\0z", 3));
    assert_true(bytes_is(keys[3], "ab"));
    assert_true(bytes_is(keys[4], "b"));
    assert_false(lease_exists(t, 1));
    assert_int_equal(lease_of_key(t, KEY("a")), 0);
    assert_int_equal(lease_of_key(t, KEY("c")), 2);
    assert_int_equal(lease_revoke(t, 1, &arena, &keys, &n), -ERR_LEASE_NOT_FOUND);
    check(t);

    /* the copies outlive the table */
    assert_int_equal(lease_revoke(t, 2, &arena, &keys, &n), 0);
    lease_free(t);
    assert_int_equal(n, 1);
    assert_true(bytes_is(keys[0], "c"));

    /* a lease without keys */
    t = mk(2, false, 0);
    grant(t, 0, 5, 10);
    assert_int_equal(lease_revoke(t, 5, &arena, &keys, &n), 0);
    assert_null(keys);
    assert_int_equal(n, 0);
    assert_int_equal(lease_count(t), 0);
    check(t);
    lease_free(t);
}

static void test_renew(void **state)
{
    struct lease_table *t = mk(2, false, 0);
    int64_t ttl = 0;
    bool clear = true;
    struct api_lease_time_to_live_resp r;
    (void)state;

    grant(t, 0, 1, 10);
    /* only the primary renews; that is checked before the lease exists */
    assert_int_equal(lease_renew(t, 0, 1, &ttl, &clear), LEASE_NOT_PRIMARY);
    assert_int_equal(lease_renew(t, 0, 42, &ttl, &clear), LEASE_NOT_PRIMARY);

    lease_promote(t, 1000, 0); /* expiry 11000 */
    assert_int_equal(lease_renew(t, 1000, 42, &ttl, &clear), -ERR_LEASE_NOT_FOUND);
    assert_int_equal(lease_renew(t, 6000, 1, &ttl, &clear), 0);
    assert_int_equal(ttl, 10);
    assert_false(clear);
    assert_int_equal(info(t, 1).lf_expiry_ms, 16000);
    assert_int_equal(lease_next_expiry(t), 16000);
    assert_int_equal(lease_time_to_live(t, 6000, 1, false, &arena, &r), 0);
    assert_int_equal(r.TTL, 10);
    /* expired, not yet revoked: etcd's Renew waits for the revoke */
    assert_int_equal(lease_renew(t, 16000, 1, &ttl, &clear), LEASE_EXPIRING);
    assert_int_equal(lease_renew(t, 20000, 1, &ttl, &clear), LEASE_EXPIRING);
    assert_int_equal(info(t, 1).lf_expiry_ms, 16000);
    /* a lost revoke and a new leader: the lease lives again */
    lease_demote(t);
    assert_int_equal(lease_renew(t, 20000, 1, &ttl, &clear), LEASE_NOT_PRIMARY);
    lease_promote(t, 21000, 500);
    assert_int_equal(info(t, 1).lf_expiry_ms, 31500);
    assert_int_equal(lease_renew(t, 21000, 1, &ttl, &clear), 0);
    assert_int_equal(info(t, 1).lf_expiry_ms, 31000);
    check(t);
    lease_free(t);
}

static void test_attach_detach(void **state)
{
    struct lease_table *t = mk(2, false, 0);
    struct api_lease_time_to_live_resp r;
    (void)state;

    grant(t, 0, 1, 10);
    grant(t, 0, 2, 10);
    assert_int_equal(lease_attach(t, 3, KEY("x")), -ERR_LEASE_NOT_FOUND);
    assert_int_equal(lease_of_key(t, KEY("x")), 0);
    assert_int_equal(lease_attach(t, 1, KEY("x")), 0);
    assert_int_equal(lease_attach(t, 1, KEY("x")), 0); /* again: no change */
    assert_int_equal(lease_attach(t, 1, KEY("y")), 0);
    assert_int_equal(info(t, 1).lf_n_keys, 2);
    assert_int_equal(lease_of_key(t, KEY("x")), 1);

    /* a put with another lease moves the key */
    assert_int_equal(lease_attach(t, 2, KEY("x")), 0);
    assert_int_equal(lease_of_key(t, KEY("x")), 2);
    assert_int_equal(info(t, 1).lf_n_keys, 1);
    assert_int_equal(info(t, 2).lf_n_keys, 1);
    check(t);

    /* detach: unknown lease is an error; a key of another lease or none is
     * left alone */
    assert_int_equal(lease_detach(t, 3, KEY("x")), -ERR_LEASE_NOT_FOUND);
    assert_int_equal(lease_detach(t, 1, KEY("x")), 0);
    assert_int_equal(lease_of_key(t, KEY("x")), 2);
    assert_int_equal(lease_detach(t, 1, KEY("nope")), 0);
    assert_int_equal(lease_detach(t, 2, KEY("x")), 0);
    assert_int_equal(lease_of_key(t, KEY("x")), 0);
    assert_int_equal(info(t, 2).lf_n_keys, 0);
    check(t);

    /* many keys: the key hash grows, TimeToLive lists them sorted */
    for (int i = 999; i >= 0; i--) {
        char k[16];
        snprintf(k, sizeof k, "k%04d", i);
        assert_int_equal(lease_attach(t, 2, KEY(k)), 0);
    }
    check(t);
    assert_int_equal(lease_time_to_live(t, 0, 2, true, &arena, &r), 0);
    assert_int_equal(r.n_keys, 1000);
    for (int i = 0; i < 1000; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%04d", i);
        assert_true(bytes_is(r.keys[i], k));
    }
    assert_int_equal(lease_time_to_live(t, 0, 2, false, &arena, &r), 0);
    assert_null(r.keys);
    assert_int_equal(r.n_keys, 0);
    for (int i = 0; i < 1000; i += 2) {
        char k[16];
        snprintf(k, sizeof k, "k%04d", i);
        assert_int_equal(lease_detach(t, 2, KEY(k)), 0);
    }
    assert_int_equal(info(t, 2).lf_n_keys, 500);
    assert_int_equal(lease_of_key(t, KEY("k0001")), 2);
    assert_int_equal(lease_of_key(t, KEY("k0002")), 0);
    check(t);
    lease_free(t);
}

static void test_time_to_live(void **state)
{
    struct lease_table *t = mk(2, false, 0);
    struct api_lease_time_to_live_resp r = {0};
    (void)state;

    assert_int_equal(lease_time_to_live(t, 0, 1, true, &arena, &r), -ERR_LEASE_NOT_FOUND);
    lease_promote(t, 0, 0);
    grant(t, 1000, 1, 10); /* expiry 11000 */
    assert_int_equal(lease_time_to_live(t, 1000, 1, true, &arena, &r), 0);
    assert_int_equal(r.TTL, 10);
    assert_int_equal(r.grantedTTL, 10);
    assert_int_equal(r.n_keys, 0);
    /* int64(Remaining().Seconds()) truncates toward zero */
    assert_int_equal(lease_time_to_live(t, 3500, 1, false, &arena, &r), 0);
    assert_int_equal(r.TTL, 7);
    assert_int_equal(lease_time_to_live(t, 10999, 1, false, &arena, &r), 0);
    assert_int_equal(r.TTL, 0);
    assert_int_equal(lease_time_to_live(t, 11500, 1, false, &arena, &r), 0);
    assert_int_equal(r.TTL, 0);
    assert_int_equal(lease_time_to_live(t, 12500, 1, false, &arena, &r), 0);
    assert_int_equal(r.TTL, -1);
    assert_int_equal(lease_time_to_live(t, 14000, 1, false, &arena, &r), 0);
    assert_int_equal(r.TTL, -3);
    lease_free(t);
}

static void test_leases_order(void **state)
{
    struct lease_table *t = mk(2, false, 0);
    struct api_lease_leases_resp r = {0};
    (void)state;

    assert_int_equal(lease_leases(t, &arena, &r), 0);
    assert_null(r.leases);
    assert_int_equal(r.n_leases, 0);
    /* not primary: all "forever", by ID */
    grant(t, 0, 30, 5);
    grant(t, 0, 10, 50);
    grant(t, 0, -20, 20);
    assert_int_equal(lease_leases(t, &arena, &r), 0);
    assert_int_equal(r.n_leases, 3);
    assert_int_equal(r.leases[0].ID, -20);
    assert_int_equal(r.leases[1].ID, 10);
    assert_int_equal(r.leases[2].ID, 30);
    /* primary: soonest expiry first (lessor.Leases sorts by Remaining) */
    lease_promote(t, 0, 0);
    assert_int_equal(lease_leases(t, &arena, &r), 0);
    assert_int_equal(r.leases[0].ID, 30);
    assert_int_equal(r.leases[1].ID, -20);
    assert_int_equal(r.leases[2].ID, 10);
    lease_free(t);
}

/* ---- expiry ---- */

static void test_expired_batches(void **state)
{
    struct lease_table *t = mk(2, false, 0);
    enum { N = 3000 };
    int64_t out[LEASE_EXPIRED_BATCH + 1];
    struct pb_bytes *keys;
    size_t n;
    (void)state;

    lease_promote(t, 0, 0);
    /* granted in reverse: the order out is by expiry, then ID */
    for (int64_t id = N; id >= 1; id--)
        grant(t, 0, id, 5);
    check(t);
    assert_int_equal(lease_next_expiry(t), 5000);
    assert_int_equal(lease_expired(t, 4999, out, LEASE_EXPIRED_BATCH), 0);
    for (int b = 0; b < N / LEASE_EXPIRED_BATCH; b++) {
        assert_int_equal(lease_expired(t, 5000, out, LEASE_EXPIRED_BATCH), LEASE_EXPIRED_BATCH);
        for (int i = 0; i < LEASE_EXPIRED_BATCH; i++)
            assert_int_equal(out[i], b * LEASE_EXPIRED_BATCH + i + 1);
        assert_int_equal(lease_next_expiry(t), b == N / LEASE_EXPIRED_BATCH - 1 ? 12000 : 5000);
    }
    assert_int_equal(lease_expired(t, 11999, out, LEASE_EXPIRED_BATCH), 0);
    check(t);
    /* the even ones are revoked; the odd ones' revokes were lost and come
     * out again after the retry interval */
    for (int64_t id = 2; id <= N; id += 2)
        assert_int_equal(lease_revoke(t, id, &arena, &keys, &n), 0);
    mem_arena_reset(&arena);
    for (int b = 0; b < N / 2 / LEASE_EXPIRED_BATCH; b++) {
        assert_int_equal(lease_expired(t, 12000, out, LEASE_EXPIRED_BATCH), LEASE_EXPIRED_BATCH);
        for (int i = 0; i < LEASE_EXPIRED_BATCH; i++)
            assert_int_equal(out[i], 2 * (b * LEASE_EXPIRED_BATCH + i) + 1);
    }
    assert_int_equal(lease_expired(t, 12000, out, LEASE_EXPIRED_BATCH), 0);
    /* max 0 hands out nothing */
    assert_int_equal(lease_expired(t, 100000, out, 0), 0);
    /* a follower expires nothing */
    lease_demote(t);
    assert_int_equal(lease_expired(t, 100000, out, LEASE_EXPIRED_BATCH), 0);
    assert_int_equal(lease_next_expiry(t), LEASE_FOREVER);
    check(t);
    lease_free(t);
}

/* The model: every lease in an array; what comes out of lease_expired must
 * be the model's leases with due <= now, by (due, id), at most max. */
struct mlease {
    int64_t id, ttl, expiry, due;
    bool alive;
};

static int mlease_cmp(const void *a, const void *b)
{
    const struct mlease *x = *(struct mlease *const *)a, *y = *(struct mlease *const *)b;
    if (x->due != y->due)
        return x->due < y->due ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static void test_expiry_model(void **state)
{
    enum { MAXL = 900 };
    static struct mlease m[MAXL];
    static struct mlease *order[MAXL];
    struct lease_table *t = mk(2, false, 0);
    const int64_t retry = t->lt_cfg.lc_retry_ms;
    int64_t now = 1000, out[16];
    size_t nm = 0;
    unsigned seed = 12345;
    int handed = 0, revoked = 0;
    int64_t ids = 0;
    (void)state;

    srand(seed);
    lease_promote(t, now, 0);
    for (int step = 0; step < 40000; step++) {
        int op = rand() % 100;
        now += rand() % 400;
        if (op < 25) {
            /* a new lease in a free slot (a revoked one once the array is
             * full); IDs never repeat, a third are negative */
            struct mlease *x = nm < MAXL ? &m[nm++] : &m[(size_t)rand() % MAXL];
            if (x->alive)
                continue;
            ids++;
            x->id = ids % 3 ? ids * 7919 : -ids;
            x->ttl = rand() % 25 - 2;
            assert_int_equal(grant(t, now, x->id, x->ttl), x->ttl < 2 ? 2 : x->ttl);
            if (x->ttl < 2)
                x->ttl = 2;
            x->expiry = x->due = now + x->ttl * 1000;
            x->alive = true;
        } else if (op < 55 && nm) {
            struct mlease *x = &m[(size_t)rand() % nm];
            int64_t ttl = 0;
            bool clear = true;
            int rc = lease_renew(t, now, x->id, &ttl, &clear);
            if (!x->alive) {
                assert_int_equal(rc, -ERR_LEASE_NOT_FOUND);
            } else if (x->expiry <= now) {
                assert_int_equal(rc, LEASE_EXPIRING);
            } else {
                assert_int_equal(rc, 0);
                assert_int_equal(ttl, x->ttl);
                assert_false(clear);
                x->expiry = x->due = now + x->ttl * 1000;
            }
        } else if (op < 62 && nm) {
            struct mlease *x = &m[(size_t)rand() % nm];
            struct pb_bytes *keys;
            size_t n;
            assert_int_equal(lease_revoke(t, x->id, &arena, &keys, &n),
                             x->alive ? 0 : -ERR_LEASE_NOT_FOUND);
            x->alive = false;
        } else if (op < 95) {
            size_t max = (size_t)(rand() % 16), no = 0, got;
            for (size_t i = 0; i < nm; i++)
                if (m[i].alive && m[i].due <= now)
                    order[no++] = &m[i];
            qsort(order, no, sizeof *order, mlease_cmp);
            got = lease_expired(t, now, out, max);
            assert_int_equal(got, no < max ? no : max);
            for (size_t i = 0; i < got; i++) {
                assert_int_equal(out[i], order[i]->id);
                order[i]->due = now + retry;
                handed++;
                /* most revokes go through raft; some are lost */
                if (rand() % 4) {
                    struct pb_bytes *keys;
                    size_t n;
                    assert_int_equal(lease_revoke(t, out[i], &arena, &keys, &n), 0);
                    order[i]->alive = false;
                    revoked++;
                }
            }
        } else if (op < 97) {
            /* a leader change: every lease restarts with its TTL plus the
             * extension */
            int64_t extend = rand() % 3000;
            lease_demote(t);
            assert_int_equal(lease_next_expiry(t), LEASE_FOREVER);
            now += rand() % 5000;
            lease_promote(t, now, extend);
            for (size_t i = 0; i < nm; i++)
                m[i].expiry = m[i].due = now + extend + m[i].ttl * 1000;
        } else {
            int64_t next = LEASE_FOREVER;
            for (size_t i = 0; i < nm; i++) {
                struct api_lease_time_to_live_resp r;
                if (!m[i].alive)
                    continue;
                if (m[i].due < next)
                    next = m[i].due;
                assert_int_equal(lease_time_to_live(t, now, m[i].id, false, &arena, &r), 0);
                assert_int_equal(r.TTL, (m[i].expiry - now) / 1000);
            }
            assert_int_equal(lease_next_expiry(t), next);
            check(t);
        }
        if (step % 1000 == 0)
            mem_arena_reset(&arena);
    }
    check(t);
    /* the run did what it was meant to */
    assert_true(handed > 2000);
    assert_true(revoked > 1000);
    assert_true(handed > revoked);
    lease_free(t);
}

/* ---- promote / demote ---- */

static void test_promote_demote(void **state)
{
    struct lease_table *t = mk(2, false, 0);
    (void)state;

    grant(t, 0, 1, 10);
    grant(t, 0, 2, 20);
    assert_false(lease_is_primary(t));
    lease_promote(t, 5000, 1000);
    assert_true(lease_is_primary(t));
    assert_int_equal(info(t, 1).lf_expiry_ms, 16000);
    assert_int_equal(info(t, 2).lf_expiry_ms, 26000);
    assert_int_equal(lease_next_expiry(t), 16000);
    check(t);
    lease_demote(t);
    assert_false(lease_is_primary(t));
    assert_int_equal(info(t, 1).lf_expiry_ms, LEASE_FOREVER);
    assert_int_equal(lease_next_expiry(t), LEASE_FOREVER);
    check(t);
    /* a negative extension counts as none */
    lease_promote(t, 9000, -5);
    assert_int_equal(info(t, 1).lf_expiry_ms, 19000);
    /* promote while primary refreshes again */
    lease_promote(t, 10000, 0);
    assert_int_equal(info(t, 1).lf_expiry_ms, 20000);
    check(t);
    /* promote allocates nothing */
    mem_fail_after(0, 1);
    lease_demote(t);
    lease_promote(t, 11000, 0);
    mem_fail_after(-1, 0);
    check(t);
    lease_free(t);
}

/* etcd's pile-up rule with 2000 leases in two TTL groups.  All of a group
 * have the same remaining time R, so for the k-th lease of a window (k from
 * 1) rateDelay is 1 s * k / 750 - 0: past the 750th each lease gets
 * floor(1000 * k / 750) ms more; the second group starts a new window. */
static void test_promote_spread(void **state)
{
    struct lease_table *t = mk(2, false, 0);
    int64_t out[LEASE_EXPIRED_BATCH];
    (void)state;

    for (int64_t id = 1; id <= 2000; id++)
        grant(t, 0, id, id <= 1000 ? 10 : 100);
    lease_promote(t, 1000, 1500);
    check(t);
    for (int64_t id = 1; id <= 2000; id++) {
        int64_t k = id <= 1000 ? id : id - 1000;
        int64_t want = 1000 + 1500 + (id <= 1000 ? 10000 : 100000);
        if (k > 750)
            want += 1000 * k / 750;
        assert_int_equal(info(t, id).lf_expiry_ms, want);
    }
    /* no more than 750 come due within any second of the first group */
    assert_int_equal(lease_expired(t, 12500, out, LEASE_EXPIRED_BATCH), LEASE_EXPIRED_BATCH);
    assert_int_equal(lease_expired(t, 12500, out, LEASE_EXPIRED_BATCH), 250);
    assert_int_equal(lease_expired(t, 12500 + 1000, out, LEASE_EXPIRED_BATCH), 0);
    assert_int_equal(lease_expired(t, 12500 + 1001, out, LEASE_EXPIRED_BATCH), 1);
    assert_int_equal(out[0], 751);

    /* below 1000 leases nothing is spread */
    lease_demote(t);
    for (int64_t id = 1000; id <= 2000; id++) {
        struct pb_bytes *keys;
        size_t n;
        assert_int_equal(lease_revoke(t, id, &arena, &keys, &n), 0);
    }
    lease_promote(t, 0, 0);
    for (int64_t id = 1; id < 1000; id++)
        assert_int_equal(info(t, id).lf_expiry_ms, 10000);
    check(t);
    lease_free(t);
}

/* ---- checkpoints ---- */

static void test_checkpoint(void **state)
{
    struct lease_table *t = mk(2, true, 5000);
    struct api_lease_checkpoint cp[4];
    int64_t ttl;
    bool clear;
    (void)state;

    lease_promote(t, 0, 0);
    grant(t, 0, 1, 60);
    grant(t, 0, 2, 5); /* not longer than the interval: never checkpointed */
    check(t);
    assert_int_equal(lease_next_checkpoint(t), 5000);
    assert_int_equal(lease_checkpoints_due(t, 4999, cp, 4), 0);
    assert_int_equal(lease_checkpoints_due(t, 5500, cp, 4), 1);
    /* 54.5 s left: math.Ceil -> 55 */
    assert_int_equal(cp[0].ID, 1);
    assert_int_equal(cp[0].remaining_TTL, 55);
    assert_int_equal(lease_next_checkpoint(t), LEASE_FOREVER);
    /* the entry comes back through raft; the next is scheduled from it */
    lease_checkpoint(t, 5600, 1, 55);
    assert_int_equal(info(t, 1).lf_remaining, 55);
    assert_int_equal(lease_next_checkpoint(t), 10600);
    lease_checkpoint(t, 5600, 99, 55); /* unknown: ignored */
    check(t);

    /* renewing a checkpointed lease asks for the checkpoint to be cleared
     * and restarts the full TTL */
    assert_int_equal(lease_renew(t, 6000, 1, &ttl, &clear), 0);
    assert_true(clear);
    assert_int_equal(ttl, 60);
    assert_int_equal(info(t, 1).lf_expiry_ms, 66000);
    lease_checkpoint(t, 6000, 1, 0);
    assert_int_equal(info(t, 1).lf_remaining, 0);
    assert_int_equal(lease_renew(t, 6000, 1, &ttl, &clear), 0);
    assert_false(clear);
    /* due at 11000 (rescheduled by the clearing apply); a lease renewed at
     * the due time has its full TTL left: nothing to checkpoint */
    assert_int_equal(lease_next_checkpoint(t), 11000);
    assert_int_equal(lease_renew(t, 11000, 1, &ttl, &clear), 0);
    assert_int_equal(lease_checkpoints_due(t, 11000, cp, 4), 0);
    assert_int_equal(lease_next_checkpoint(t), LEASE_FOREVER);

    /* a new leader starts the lease at its checkpointed remaining TTL */
    lease_checkpoint(t, 12000, 1, 30);
    assert_int_equal(lease_next_checkpoint(t), 17000);
    lease_demote(t);
    assert_int_equal(lease_next_checkpoint(t), LEASE_FOREVER);
    assert_int_equal(lease_checkpoints_due(t, 100000, cp, 4), 0);
    /* a follower records checkpoints without scheduling */
    lease_checkpoint(t, 13000, 1, 25);
    assert_int_equal(lease_next_checkpoint(t), LEASE_FOREVER);
    check(t);
    lease_promote(t, 20000, 1000);
    assert_int_equal(info(t, 1).lf_expiry_ms, 46000);
    assert_int_equal(info(t, 2).lf_expiry_ms, 26000);
    /* 25 s remaining is still longer than the 5 s interval */
    assert_int_equal(lease_next_checkpoint(t), 25000);
    /* expired leases are not checkpointed */
    assert_int_equal(lease_checkpoints_due(t, 46000, cp, 4), 0);
    check(t);

    /* batches are bounded */
    for (int64_t id = 10; id < 20; id++)
        grant(t, 50000, id, 100);
    assert_int_equal(lease_checkpoints_due(t, 56000, cp, 4), 4);
    assert_int_equal(cp[0].ID, 10);
    assert_int_equal(cp[0].remaining_TTL, 94);
    assert_int_equal(lease_checkpoints_due(t, 56000, cp, 4), 4);
    assert_int_equal(lease_checkpoints_due(t, 56000, cp, 4), 2);
    assert_int_equal(cp[1].ID, 19);
    check(t);
    lease_free(t);

    /* checkpointing off: nothing scheduled, renew never asks to clear */
    t = mk(2, false, 5000);
    lease_promote(t, 0, 0);
    grant(t, 0, 1, 60);
    lease_checkpoint(t, 1000, 1, 40);
    assert_int_equal(info(t, 1).lf_remaining, 40);
    assert_int_equal(lease_next_checkpoint(t), LEASE_FOREVER);
    assert_int_equal(lease_checkpoints_due(t, 100000, cp, 4), 0);
    assert_int_equal(lease_renew(t, 2000, 1, &ttl, &clear), 0);
    assert_false(clear);
    assert_int_equal(info(t, 1).lf_expiry_ms, 62000);
    check(t);
    lease_free(t);

    /* the default interval is etcd's 5 minutes */
    t = mk(2, true, 0);
    lease_promote(t, 0, 0);
    grant(t, 0, 1, 300);
    grant(t, 0, 2, 301);
    assert_int_equal(lease_next_checkpoint(t), 300000);
    assert_int_equal(lease_checkpoints_due(t, 300000, cp, 4), 1);
    assert_int_equal(cp[0].ID, 2);
    assert_int_equal(cp[0].remaining_TTL, 1);
    lease_free(t);
}

/* ---- recovery ---- */

static void test_recover(void **state)
{
    struct lease_table *t = mk(2, false, 0);
    struct pb_bytes *keys;
    size_t n;
    (void)state;

    assert_int_equal(lease_recover(t, 0, 5, 1, 0), 0);
    assert_int_equal(lease_recover(t, 0, 6, 100, 40), 0);
    assert_int_equal(lease_recover(t, 0, 7, 10, 0), 0);
    /* no MaxLeaseTTL check on what the backend holds */
    assert_int_equal(lease_recover(t, 0, 8, LEASE_MAX_TTL * 10, 0), 0);
    assert_int_equal(lease_recover(t, 0, 7, 10, 0), -ERR_LEASE_EXIST);
    assert_int_equal(lease_recover(t, 0, 0, 10, 0), -ERR_LEASE_NOT_FOUND);
    assert_int_equal(info(t, 5).lf_ttl, 2);
    assert_int_equal(info(t, 6).lf_remaining, 40);
    assert_int_equal(info(t, 6).lf_expiry_ms, LEASE_FOREVER);
    /* mvcc re-attaches keys */
    assert_int_equal(lease_attach(t, 6, KEY("a")), 0);
    assert_int_equal(lease_attach(t, 6, KEY("b")), 0);
    assert_int_equal(lease_attach(t, 9, KEY("c")), -ERR_LEASE_NOT_FOUND);
    check(t);
    lease_promote(t, 1000, 500);
    assert_int_equal(info(t, 5).lf_expiry_ms, 3500);
    assert_int_equal(info(t, 6).lf_expiry_ms, 41500);
    assert_int_equal(info(t, 7).lf_expiry_ms, 11500);
    assert_int_equal(info(t, 8).lf_expiry_ms, 1500 + LEASE_MAX_TTL * 10000);
    /* recovered while primary: runs at once, as a grant */
    assert_int_equal(lease_recover(t, 2000, 10, 3, 0), 0);
    assert_int_equal(info(t, 10).lf_expiry_ms, 5000);
    check(t);

    /* a snapshot replaces everything; the primary flag stays */
    lease_reset(t);
    assert_int_equal(lease_count(t), 0);
    assert_int_equal(lease_of_key(t, KEY("a")), 0);
    assert_int_equal(lease_next_expiry(t), LEASE_FOREVER);
    assert_true(lease_is_primary(t));
    check(t);
    assert_int_equal(lease_recover(t, 3000, 6, 100, 40), 0);
    assert_int_equal(lease_attach(t, 6, KEY("a")), 0);
    assert_int_equal(info(t, 6).lf_expiry_ms, 43000);
    assert_int_equal(lease_revoke(t, 6, &arena, &keys, &n), 0);
    assert_int_equal(n, 1);
    check(t);
    lease_free(t);
}

/* Values from a corrupt backend or a hostile raft entry saturate instead of
 * overflowing (UBSan would catch the overflow). */
static void test_extremes(void **state)
{
    struct lease_table *t = mk(INT64_MIN, true, 1000);
    struct api_lease_time_to_live_resp r;
    struct api_lease_checkpoint cp[2];
    int64_t out[2];
    (void)state;

    assert_int_equal(lease_recover(t, 0, 1, INT64_MAX, 0), 0);
    assert_int_equal(lease_recover(t, 0, 2, INT64_MIN, 0), 0);
    assert_int_equal(lease_recover(t, 0, 3, 10, INT64_MAX), 0);
    lease_promote(t, 1000, INT64_MAX);
    assert_int_equal(info(t, 1).lf_expiry_ms, LEASE_FOREVER - 1);
    assert_int_equal(info(t, 3).lf_expiry_ms, LEASE_FOREVER - 1);
    lease_promote(t, 1000, 0);
    assert_int_equal(info(t, 2).lf_expiry_ms, INT64_MIN + 1000);
    assert_int_equal(lease_expired(t, 0, out, 2), 1);
    assert_int_equal(out[0], 2);
    assert_int_equal(lease_time_to_live(t, 1000, 1, false, &arena, &r), 0);
    assert_int_equal(r.TTL, (LEASE_FOREVER - 1 - 1000) / 1000);
    assert_int_equal(lease_time_to_live(t, 1000, 2, false, &arena, &r), 0);
    assert_int_equal(r.TTL, INT64_MIN / 1000);
    lease_checkpoint(t, 1000, 3, INT64_MIN);
    lease_checkpoint(t, 1000, 1, INT64_MAX);
    /* lease 3's remaining time is past its TTL: skipped */
    assert_int_equal(lease_checkpoints_due(t, 2000, cp, 2), 1);
    assert_int_equal(cp[0].ID, 1);
    check(t);
    lease_free(t);
}

/* ---- allocation failures ---- */

/* Runs op with the n-th allocation failing, n = 0, 1, ... until it
 * succeeds; every failure must be -ERR_NOMEM and leave the table as it was.
 * Returns how many failures were injected. */
typedef int (*lease_op)(struct lease_table *t);

static int nomem_loop(struct lease_table *t, lease_op op, bool sticky)
{
    for (long n = 0;; n++) {
        uint64_t before = digest(t);
        int rc;
        mem_arena_free(&arena);
        mem_arena_init(&arena, 0);
        mem_fail_after(n, sticky);
        rc = op(t);
        mem_fail_after(-1, 0);
        check(t);
        if (rc == 0)
            return (int)n;
        assert_int_equal(rc, -ERR_NOMEM);
        assert_int_equal(digest(t), before);
    }
}

static int64_t next_id = 100;

static int op_grant(struct lease_table *t)
{
    int64_t ttl;
    int rc = lease_grant(t, 500, next_id, 10, &ttl);
    if (rc == 0)
        next_id++;
    return rc;
}

static int op_recover(struct lease_table *t)
{
    int rc = lease_recover(t, 500, next_id, 600, 400);
    if (rc == 0)
        next_id++;
    return rc;
}

static int key_no;

static int op_attach(struct lease_table *t)
{
    char k[32];
    int rc;
    snprintf(k, sizeof k, "key-%d", key_no);
    rc = lease_attach(t, 1 + key_no % 3, KEY(k));
    if (rc == 0)
        key_no++;
    return rc;
}

static int op_revoke(struct lease_table *t)
{
    struct pb_bytes *keys;
    size_t n;
    int rc = lease_revoke(t, 1, &arena, &keys, &n);
    if (rc == 0)
        assert_int_equal(n, 5);
    return rc;
}

static int op_ttl(struct lease_table *t)
{
    struct api_lease_time_to_live_resp r;
    int rc = lease_time_to_live(t, 500, 2, true, &arena, &r);
    if (rc == 0)
        assert_int_equal(r.n_keys, 5);
    return rc;
}

static int op_leases(struct lease_table *t)
{
    struct api_lease_leases_resp r;
    int rc = lease_leases(t, &arena, &r);
    if (rc == 0)
        assert_int_equal(r.n_leases, lease_count(t));
    return rc;
}

static void test_nomem(void **state)
{
    struct lease_table *t;
    int fails = 0;
    (void)state;

    /* lease_new: three allocations */
    for (long n = 0; n < 3; n++) {
        mem_fail_after(n, 0);
        assert_null(lease_new(&(struct lease_config){0}));
    }
    mem_fail_after(-1, 0);

    for (int round = 0; round < 2; round++) {
        t = mk(2, true, 1000);
        if (round)
            lease_promote(t, 0, 0);
        next_id = 100;
        key_no = 0;
        for (int64_t id = 1; id <= 3; id++)
            grant(t, 0, id, 10);
        /* grants across heap and bucket growth (16, 32, ... leases) */
        for (int i = 0; i < 70; i++) {
            fails += nomem_loop(t, i % 2 ? op_grant : op_recover, true);
            fails += nomem_loop(t, i % 2 ? op_grant : op_recover, false);
        }
        /* attaches across key bucket growth */
        for (int i = 0; i < 40; i++) {
            fails += nomem_loop(t, op_attach, true);
            fails += nomem_loop(t, op_attach, false);
        }
        assert_int_equal(info(t, 1).lf_n_keys + info(t, 2).lf_n_keys + info(t, 3).lf_n_keys, 80);
        fails += nomem_loop(t, op_leases, true);
        /* 27 keys are on lease 2: detach all but five */
        for (int i = 0; i < 80; i++) {
            char k[32];
            snprintf(k, sizeof k, "key-%d", i);
            if (i % 3 == 1 && i > 15)
                assert_int_equal(lease_detach(t, 2, KEY(k)), 0);
            if (i % 3 == 0 && i > 12)
                assert_int_equal(lease_detach(t, 1, KEY(k)), 0);
        }
        fails += nomem_loop(t, op_ttl, true);
        fails += nomem_loop(t, op_revoke, true);
        assert_false(lease_exists(t, 1));
        /* nothing on the expiry or checkpoint paths allocates */
        mem_fail_after(0, 1);
        {
            int64_t out[8], ttl;
            struct api_lease_checkpoint cp[8];
            bool clear;
            lease_promote(t, 1000, 0);
            assert_int_equal(lease_renew(t, 2000, 2, &ttl, &clear), 0);
            lease_checkpoint(t, 2000, 2, 5);
            assert_true(lease_checkpoints_due(t, 4000, cp, 8) > 0);
            assert_true(lease_expired(t, 100000, out, 8) > 0);
            assert_int_equal(lease_detach(t, 2, KEY("key-1")), 0);
            lease_demote(t);
            lease_reset(t);
        }
        mem_fail_after(-1, 0);
        check(t);
        lease_free(t);
    }
    /* the loops did inject failures at every step they could */
    assert_true(fails > 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_min_ttl),
        cmocka_unit_test(test_idgen),
        cmocka_unit_test(test_siphash),
        cmocka_unit_test_setup_teardown(test_grant_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoke, setup, teardown),
        cmocka_unit_test_setup_teardown(test_renew, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attach_detach, setup, teardown),
        cmocka_unit_test_setup_teardown(test_time_to_live, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leases_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_promote_demote, setup, teardown),
        cmocka_unit_test_setup_teardown(test_promote_spread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extremes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nomem, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
