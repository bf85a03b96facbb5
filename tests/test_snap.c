/* test_snap.c - raft snapshot files: round trip, choosing the newest one the
 * WAL knows, broken files set aside, purging, and the v2 store payload. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "json.h"
#include "snap.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/test_snap.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

static void save(uint64_t term, uint64_t index, const char *data)
{
    uint64_t voter = 0x8e9e05c52164694dull;
    struct api_raft_conf_state cs = {.voters = &voter, .n_voters = 1};
    struct api_raft_snapshot_metadata md = {.conf_state = &cs, .index = index, .term = term};
    struct api_raft_snapshot s = {.data = {(const uint8_t *)data, strlen(data)}, .metadata = &md};
    char err[256];
    assert_int_equal(snap_save(dir, &s, err, sizeof err), 0);
}

static bool exists(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

static void test_round_trip_and_newest_recorded(void **state)
{
    (void)state;
    save(2, 11, "eleven");
    save(2, 22, "twenty-two");
    save(3, 33, "orphan"); /* written, then a crash before its WAL record */
    assert_true(exists("0000000000000002-000000000000000b.snap"));
    struct api_wal_snapshot ws[] = {{0, 0}, {11, 2}, {22, 2}};
    struct mem_arena a;
    mem_arena_init(&a, 0);
    struct api_raft_snapshot s;
    char err[256];
    assert_int_equal(snap_load(dir, ws, 3, &a, &s, err, sizeof err), 1);
    assert_int_equal(s.metadata->index, 22);
    assert_int_equal(s.metadata->term, 2);
    assert_int_equal(s.metadata->conf_state->n_voters, 1);
    assert_true(s.metadata->conf_state->voters[0] == 0x8e9e05c52164694dull);
    assert_memory_equal(s.data.p, "twenty-two", 10);
    assert_true(exists("0000000000000003-0000000000000021.snap")); /* passed over, kept */
    /* none recorded: none loaded */
    assert_int_equal(snap_load(dir, ws, 1, &a, &s, err, sizeof err), 0);
    mem_arena_free(&a);
}

static void test_broken_file_set_aside(void **state)
{
    (void)state;
    save(2, 22, "good");
    save(2, 44, "will be damaged");
    char path[256];
    snprintf(path, sizeof path, "%s/0000000000000002-000000000000002c.snap", dir);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, -3, SEEK_END);
    fputc('X', f); /* inside the data: the CRC no longer matches */
    fclose(f);
    struct api_wal_snapshot ws[] = {{22, 2}, {44, 2}};
    struct mem_arena a;
    mem_arena_init(&a, 0);
    struct api_raft_snapshot s;
    char err[256];
    assert_int_equal(snap_load(dir, ws, 2, &a, &s, err, sizeof err), 1);
    assert_int_equal(s.metadata->index, 22);
    assert_true(exists("0000000000000002-000000000000002c.snap.broken"));
    assert_false(exists("0000000000000002-000000000000002c.snap"));
    /* an empty file is broken too */
    snprintf(path, sizeof path, "%s/0000000000000002-0000000000000050.snap", dir);
    fclose(fopen(path, "w"));
    struct api_wal_snapshot w2[] = {{80, 2}};
    assert_int_equal(snap_load(dir, w2, 1, &a, &s, err, sizeof err), 0);
    assert_true(exists("0000000000000002-0000000000000050.snap.broken"));
    mem_arena_free(&a);
}

static void test_purge_keeps_newest(void **state)
{
    (void)state;
    for (uint64_t i = 1; i <= 7; i++)
        save(2, i * 100, "x");
    assert_int_equal(snap_purge(dir, 0), 0); /* 0 keeps all */
    assert_int_equal(snap_purge(dir, 5), 2);
    assert_false(exists("0000000000000002-0000000000000064.snap"));
    assert_false(exists("0000000000000002-00000000000000c8.snap"));
    assert_true(exists("0000000000000002-000000000000012c.snap"));
    assert_int_equal(snap_purge(dir, 1), 4);
    assert_true(exists("0000000000000002-00000000000002bc.snap"));
}

static void test_v2_store_json(void **state)
{
    (void)state;
    struct member m[2];
    const char *peer[] = {"http://localhost:2380"}, *client[] = {"http://127.0.0.1:2379"};
    assert_int_equal(member_init(&m[0], 0x8e9e05c52164694dull, "default", peer, 1, client, 1), 0);
    assert_int_equal(member_init(&m[1], 0x1234ull, "", peer, 1, NULL, 0), 0); /* not published */
    m[1].is_learner = true;
    uint64_t removed = 0xabcull;
    struct mem_buf b = {0};
    assert_int_equal(snap_v2_store(m, 2, &removed, 1, "3.4.0", &b), 0);
    struct mem_arena a;
    mem_arena_init(&a, 0);
    struct json j;
    char err[128];
    assert_int_equal(json_parse((const char *)b.data, b.len, &a, &j, err, sizeof err), 0);
    const struct json *zero = json_get(json_get(json_get(&j, "Root"), "Children"), "0");
    assert_non_null(zero);
    assert_string_equal(json_get(zero, "Path")->s, "/0");
    const struct json *ms = json_get(json_get(json_get(zero, "Children"), "members"), "Children");
    const struct json *m0 = json_get(json_get(ms, "8e9e05c52164694d"), "Children");
    assert_string_equal(json_get(json_get(m0, "raftAttributes"), "Value")->s,
                        "{\"peerURLs\":[\"http://localhost:2380\"]}");
    assert_string_equal(json_get(json_get(m0, "attributes"), "Value")->s,
                        "{\"name\":\"default\",\"clientURLs\":[\"http://127.0.0.1:2379\"]}");
    assert_int_equal(json_get(json_get(m0, "attributes"), "Children")->type, JSON_NULL);
    const struct json *m1 = json_get(json_get(ms, "0000000000001234"), "Children");
    assert_string_equal(json_get(json_get(m1, "raftAttributes"), "Value")->s,
                        "{\"peerURLs\":[\"http://localhost:2380\"],\"isLearner\":true}");
    assert_null(json_get(m1, "attributes"));
    const struct json *rm = json_get(json_get(zero, "Children"), "removed_members");
    assert_string_equal(json_get(json_get(json_get(rm, "Children"), "0000000000000abc"), "Value")->s, "removed");
    assert_string_equal(json_get(json_get(json_get(zero, "Children"), "version"), "Value")->s, "3.4.0");
    assert_non_null(json_get(json_get(json_get(&j, "Root"), "Children"), "1"));
    uint64_t ci;
    assert_int_equal(json_u64(json_get(&j, "CurrentIndex"), &ci), 0);
    assert_int_equal(ci, 5);
    /* and back */
    struct member back[4];
    size_t nb;
    char ver[16];
    assert_int_equal(snap_v2_members(b.data, b.len, back, 4, &nb, ver, sizeof ver), 0);
    assert_int_equal(nb, 2);
    assert_string_equal(ver, "3.4.0");
    assert_true(back[0].id == m[0].id);
    assert_string_equal(back[0].name, "default");
    assert_string_equal(back[0].client_urls[0], "http://127.0.0.1:2379");
    assert_string_equal(back[0].peer_urls[0], "http://localhost:2380");
    assert_false(back[0].is_learner);
    assert_true(back[1].id == 0x1234);
    assert_true(back[1].is_learner);
    assert_int_equal(back[1].n_client_urls, 0);
    for (size_t i = 0; i < 2; i++)
        member_free(&back[i]);
    assert_int_equal(snap_v2_members(b.data, b.len, back, 1, &nb, ver, sizeof ver), -1); /* too many */
    assert_int_equal(nb, 0);
    assert_int_equal(snap_v2_members((const uint8_t *)"{\"Root\":", 8, back, 4, &nb, ver, sizeof ver), -1);
    mem_arena_free(&a);
    mem_buf_free(&b);
    member_free(&m[0]);
    member_free(&m[1]);
}

/* A v2 store as etcd 3.4.23 wrote it (its snapshot at index 11, trimmed of
 * the watcher history): the members and version come back. */
static void test_v2_members_from_etcd(void **state)
{
    (void)state;
    const char *j =
        "{\"Root\":{\"Path\":\"/\",\"CreatedIndex\":0,\"ModifiedIndex\":0,\"ExpireTime\":\"0001-01-01T00:00:00Z\","
        "\"Value\":\"\",\"Children\":{\"0\":{\"Path\":\"/0\",\"CreatedIndex\":0,\"ModifiedIndex\":0,"
        "\"ExpireTime\":\"0001-01-01T00:00:00Z\",\"Value\":\"\",\"Children\":{\"members\":{\"Path\":\"/0/members\","
        "\"CreatedIndex\":1,\"ModifiedIndex\":1,\"ExpireTime\":\"0001-01-01T00:00:00Z\",\"Value\":\"\",\"Children\":"
        "{\"8e9e05c52164694d\":{\"Path\":\"/0/members/8e9e05c52164694d\",\"CreatedIndex\":1,\"ModifiedIndex\":1,"
        "\"ExpireTime\":\"0001-01-01T00:00:00Z\",\"Value\":\"\",\"Children\":{\"attributes\":{\"Path\":"
        "\"/0/members/8e9e05c52164694d/attributes\",\"CreatedIndex\":2,\"ModifiedIndex\":2,\"ExpireTime\":"
        "\"0001-01-01T00:00:00Z\",\"Value\":\"{\\\"name\\\":\\\"default\\\",\\\"clientURLs\\\":[\\\"http://127.0.0.1:23791\\\"]}\","
        "\"Children\":null},\"raftAttributes\":{\"Path\":\"/0/members/8e9e05c52164694d/raftAttributes\","
        "\"CreatedIndex\":1,\"ModifiedIndex\":1,\"ExpireTime\":\"0001-01-01T00:00:00Z\",\"Value\":"
        "\"{\\\"peerURLs\\\":[\\\"http://localhost:2380\\\"]}\",\"Children\":null}}}}},\"version\":{\"Path\":"
        "\"/0/version\",\"CreatedIndex\":3,\"ModifiedIndex\":3,\"ExpireTime\":\"0001-01-01T00:00:00Z\",\"Value\":"
        "\"3.4.0\",\"Children\":null}}},\"1\":{\"Path\":\"/1\",\"CreatedIndex\":0,\"ModifiedIndex\":0,\"ExpireTime\":"
        "\"0001-01-01T00:00:00Z\",\"Value\":\"\",\"Children\":{}}}},\"CurrentIndex\":3}";
    struct member ms[2];
    size_t n;
    char ver[16];
    assert_int_equal(snap_v2_members((const uint8_t *)j, strlen(j), ms, 2, &n, ver, sizeof ver), 0);
    assert_int_equal(n, 1);
    assert_string_equal(ver, "3.4.0");
    assert_true(ms[0].id == 0x8e9e05c52164694dull);
    assert_string_equal(ms[0].name, "default");
    assert_string_equal(ms[0].client_urls[0], "http://127.0.0.1:23791");
    assert_string_equal(ms[0].peer_urls[0], "http://localhost:2380");
    member_free(&ms[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip_and_newest_recorded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broken_file_set_aside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purge_keeps_newest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v2_store_json, setup, teardown),
        cmocka_unit_test(test_v2_members_from_etcd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
