/* test_member.c - member and cluster IDs as etcd computes them, and the JSON
 * etcd 3.4 writes for members (bytes taken from a real etcd's WAL). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "member.h"

static void test_ids(void **state)
{
    (void)state;
    const char *urls[] = {"http://localhost:2380"};
    uint64_t id = member_id(urls, 1, "etcd-cluster", 0);
    assert_true(id == 0x8e9e05c52164694dull);
    assert_true(member_cluster_id(&id, 1) == 0xcdf818194e3a8c32ull);
    /* URL order does not matter; the token and the time do */
    const char *two[] = {"http://b:2380", "http://a:2380"};
    const char *two_sorted[] = {"http://a:2380", "http://b:2380"};
    assert_true(member_id(two, 2, "t", 0) == member_id(two_sorted, 2, "t", 0));
    assert_true(member_id(two, 2, "t", 0) != member_id(two, 2, "u", 0));
    assert_true(member_id(two, 2, "t", 0) != member_id(two, 2, "t", 1700000000));
    uint64_t ids[] = {3, 1, 2}, sorted[] = {1, 2, 3};
    assert_true(member_cluster_id(ids, 3) == member_cluster_id(sorted, 3));
}

static void test_json(void **state)
{
    (void)state;
    const char *peer[] = {"http://localhost:2380"};
    const char *client[] = {"http://127.0.0.1:23790"};
    struct member m;
    assert_int_equal(member_init(&m, 0x8e9e05c52164694dull, "default", peer, 1, NULL, 0), 0);
    struct mem_buf b = {0};
    assert_int_equal(member_to_json(&m, &b), 0);
    const char *want = "{\"id\":10276657743932975437,\"peerURLs\":[\"http://localhost:2380\"],\"name\":\"default\"}";
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    member_free(&m);

    assert_int_equal(member_init(&m, 1, "default", peer, 1, client, 1), 0);
    b.len = 0;
    assert_int_equal(member_attrs_json(&m, &b), 0);
    want = "{\"name\":\"default\",\"clientURLs\":[\"http://127.0.0.1:23790\"]}";
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);

    /* round trip, learner included */
    m.is_learner = true;
    b.len = 0;
    assert_int_equal(member_to_json(&m, &b), 0);
    struct member r;
    assert_int_equal(member_from_json(&r, (const char *)b.data, b.len, false), 0);
    assert_true(r.id == 1 && r.is_learner);
    assert_string_equal(r.name, "default");
    assert_int_equal(r.n_peer_urls, 1);
    assert_string_equal(r.client_urls[0], "http://127.0.0.1:23790");
    /* attributes update an existing member */
    const char *attrs = "{\"name\":\"n2\",\"clientURLs\":[\"http://x:1\",\"http://y:2\"]}";
    assert_int_equal(member_from_json(&r, attrs, strlen(attrs), true), 0);
    assert_string_equal(r.name, "n2");
    assert_int_equal(r.n_client_urls, 2);
    assert_true(r.id == 1);
    member_free(&r);
    member_free(&m);
    /* malformed */
    assert_int_equal(member_from_json(&r, "{\"id\":-1}", 9, false), -1);
    assert_int_equal(member_from_json(&r, "[1]", 3, false), -1);
    assert_int_equal(member_from_json(&r, "{\"id\":1,\"peerURLs\":[1]}", 23, false), -1);
    mem_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_json),
    };
    return cmocka_run_group_tests_name("member", tests, NULL, NULL);
}
