/* test_json.c - JSON parsing of valid and hostile input, Go-compatible
 * string and base64 encoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json.h"

static struct mem_arena arena;

static int setup(void **state)
{
    (void)state;
    mem_arena_init(&arena, 1 << 20);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mem_arena_free(&arena);
    return 0;
}

static int parse(const char *s, struct json *out, char *err)
{
    return json_parse(s, strlen(s), &arena, out, err, 200);
}

static void test_member_record(void **state)
{
    (void)state;
    /* what etcd 3.4 stores in the members bucket */
    const char *m = "{\"id\":10276657743932975437,\"peerURLs\":[\"http://localhost:2380\"],"
                    "\"name\":\"default\",\"clientURLs\":[\"http://localhost:2379\"]}";
    struct json j;
    char err[200];
    assert_int_equal(parse(m, &j, err), 0);
    uint64_t id;
    assert_int_equal(json_u64(json_get(&j, "id"), &id), 0);
    assert_true(id == 10276657743932975437ull);
    const struct json *p = json_get(&j, "peerURLs");
    assert_non_null(p);
    assert_int_equal(p->type, JSON_ARRAY);
    assert_int_equal(p->n, 1);
    assert_string_equal(p->kids[0].s, "http://localhost:2380");
    assert_string_equal(json_get(&j, "name")->s, "default");
    assert_null(json_get(&j, "isLearner"));
}

static void test_values_and_escapes(void **state)
{
    (void)state;
    struct json j;
    char err[200];
    assert_int_equal(parse(" [true, false, null, -12, 3.5e+2, \"a\\u00e9\\ud83d\\ude00\\n\\\"\", {}, []] ",
                           &j, err), 0);
    assert_int_equal(j.n, 8);
    assert_true(j.kids[0].b);
    assert_false(j.kids[1].b);
    assert_int_equal(j.kids[2].type, JSON_NULL);
    int64_t v;
    assert_int_equal(json_i64(&j.kids[3], &v), 0);
    assert_int_equal(v, -12);
    assert_int_equal(json_i64(&j.kids[4], &v), -1); /* not an integer */
    assert_string_equal(j.kids[5].s, "a\xc3\xa9\xf0\x9f\x98\x80\n\"");
    assert_int_equal(j.kids[6].type, JSON_OBJECT);
    assert_int_equal(j.kids[7].n, 0);
    uint64_t u;
    assert_int_equal(parse("18446744073709551615", &j, err), 0);
    assert_int_equal(json_u64(&j, &u), 0);
    assert_true(u == UINT64_MAX);
    assert_int_equal(parse("18446744073709551616", &j, err), 0);
    assert_int_equal(json_u64(&j, &u), -1);
    assert_int_equal(parse("-9223372036854775808", &j, err), 0);
    assert_int_equal(json_i64(&j, &v), 0);
    assert_true(v == INT64_MIN);
    /* duplicate keys: the last wins */
    assert_int_equal(parse("{\"a\":1,\"a\":2}", &j, err), 0);
    assert_int_equal(json_i64(json_get(&j, "a"), &v), 0);
    assert_int_equal(v, 2);
}

static void test_bad_input(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "{", "[1,", "{\"a\"}", "{\"a\":}", "[1 2]", "01", "-", "1.", "1e", "tru", "\"abc",
        "\"\\x\"", "\"\\u12\"", "\"a\x01\"", "{1:2}", "[]x", "nul", "[,]", "{\"a\":1,}",
    };
    struct json j;
    char err[200];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        assert_int_equal(parse(bad[i], &j, err), -1);
        assert_true(err[0] != 0);
    }
    assert_int_equal(parse("[1 2]", &j, err), -1);
    assert_string_equal(err, "invalid character '2' after array element at offset 3");
    /* nesting beyond the limit is refused, not recursed into */
    char deep[1000];
    memset(deep, '[', sizeof deep - 1);
    deep[sizeof deep - 1] = 0;
    assert_int_equal(parse(deep, &j, err), -1);
    assert_non_null(strstr(err, "max depth"));
    /* an arena too small for the input fails cleanly */
    struct mem_arena small;
    mem_arena_init(&small, 64);
    const char *big = "[\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"]";
    assert_int_equal(json_parse(big, strlen(big), &small, &j, err, sizeof err), -1);
    mem_arena_free(&small);
}

static void test_encode(void **state)
{
    (void)state;
    struct mem_buf b = {0};
    assert_int_equal(json_put_str(&b, "a\"b\\c\n<&>\x01\xe2\x80\xa8", 13), 0);
    const char *want = "\"a\\\"b\\\\c\\n\\u003c\\u0026\\u003e\\u0001\\u2028\"";
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    b.len = 0;
    assert_int_equal(json_put_b64(&b, (const uint8_t *)"foo", 3), 0);
    assert_int_equal(json_put_b64(&b, (const uint8_t *)"fo", 2), 0);
    assert_int_equal(json_put_b64(&b, (const uint8_t *)"f", 1), 0);
    assert_int_equal(json_put_b64(&b, (const uint8_t *)"", 0), 0);
    want = "\"Zm9v\"\"Zm8=\"\"Zg==\"\"\"";
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    /* a round trip through the parser */
    b.len = 0;
    assert_int_equal(json_put_str(&b, "x\ty\x1f", 4), 0);
    struct json j;
    char err[200];
    assert_int_equal(json_parse((const char *)b.data, b.len, &arena, &j, err, sizeof err), 0);
    assert_int_equal(j.len, 4);
    assert_memory_equal(j.s, "x\ty\x1f", 4);
    mem_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_member_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_values_and_escapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encode, setup, teardown),
    };
    return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
