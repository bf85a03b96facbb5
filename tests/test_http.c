/* test_http.c - HTTP/1.1 request parsing and the plain endpoints. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http.h"

static const struct http_limits lim = {.max_body = 1024};

static int feed(const char *req, struct mem_buf *out, bool *close)
{
    out->len = 0;
    *close = false;
    return http_feed(&lim, (const uint8_t *)req, strlen(req), out, close);
}

static bool has(const struct mem_buf *b, const char *s)
{
    return memmem(b->data, b->len, s, strlen(s)) != NULL;
}

static void test_health_version_404(void **state)
{
    (void)state;
    struct mem_buf out = {0};
    bool cl;
    const char *r = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(feed(r, &out, &cl), (int)strlen(r));
    assert_false(cl);
    assert_true(has(&out, "HTTP/1.1 200 OK\r\n"));
    assert_true(has(&out, "\r\n\r\n{\"health\":\"true\"}"));
    r = "GET /version HTTP/1.1\r\n\r\n";
    assert_int_equal(feed(r, &out, &cl), (int)strlen(r));
    assert_true(has(&out, "{\"etcdserver\":\"3.4.23\",\"etcdcluster\":\"3.4.0\"}"));
    assert_true(has(&out, "Content-Type: application/json\r\n"));
    r = "GET /nope HTTP/1.1\r\n\r\n";
    assert_int_equal(feed(r, &out, &cl), (int)strlen(r));
    assert_true(has(&out, "HTTP/1.1 404 Not Found\r\n"));
    mem_buf_free(&out);
}

static int fake_metrics(void *ctx, struct mem_buf *body)
{
    return *(int *)ctx ? -1 : mem_buf_printf(body, "# TYPE x gauge\nx 1\n");
}

/* /metrics is the caller's body under Prometheus' content type; without a
 * source it is a 404, and a failing source fails the feed. */
static void test_metrics(void **state)
{
    (void)state;
    struct mem_buf out = {0};
    bool cl = false;
    int fail = 0;
    struct http_limits ml = {.max_body = 1024, .metrics = fake_metrics, .metrics_ctx = &fail};
    const char *r = "GET /metrics HTTP/1.1\r\n\r\n";
    assert_int_equal(http_feed(&ml, (const uint8_t *)r, strlen(r), &out, &cl), (int)strlen(r));
    assert_true(has(&out, "HTTP/1.1 200 OK\r\n"));
    assert_true(has(&out, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    assert_true(has(&out, "Content-Length: 19\r\n"));
    assert_true(has(&out, "\r\n\r\n# TYPE x gauge\nx 1\n"));
    fail = 1;
    assert_int_equal(http_feed(&ml, (const uint8_t *)r, strlen(r), &out, &cl), -1);
    assert_int_equal(feed(r, &out, &cl), (int)strlen(r));
    assert_true(has(&out, "HTTP/1.1 404 Not Found\r\n"));
    mem_buf_free(&out);
}

static void test_incomplete_and_pipelined(void **state)
{
    (void)state;
    struct mem_buf out = {0};
    bool cl;
    const char *two = "GET /health HTTP/1.1\r\n\r\nGET /version HTTP/1.1\r\n\r\n";
    for (size_t n = 0; n < 24; n++) /* every prefix of the first request */
        assert_int_equal(http_feed(&lim, (const uint8_t *)two, n, &out, &cl), 0);
    assert_int_equal(feed(two, &out, &cl), 24);
    /* a body is waited for, then skipped */
    const char *post = "POST /health HTTP/1.1\r\nContent-Length: 5\r\n\r\nab";
    assert_int_equal(feed(post, &out, &cl), 0);
    post = "POST /health HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcdeGET";
    assert_int_equal(feed(post, &out, &cl), (int)strlen(post) - 3);
    mem_buf_free(&out);
}

static void test_close_and_errors(void **state)
{
    (void)state;
    struct mem_buf out = {0};
    bool cl;
    assert_true(feed("GET /health HTTP/1.1\r\nConnection: close\r\n\r\n", &out, &cl) > 0);
    assert_true(cl);
    assert_true(feed("GET /health HTTP/1.0\r\n\r\n", &out, &cl) > 0);
    assert_true(cl);
    assert_true(feed("GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &out, &cl) > 0);
    assert_false(cl);
    assert_true(feed("garbage\r\n\r\n", &out, &cl) > 0);
    assert_true(cl);
    assert_true(has(&out, "400 Bad Request"));
    assert_true(feed("GET / HTTP/1.1\r\nContent-Length: 99999\r\n\r\n", &out, &cl) > 0);
    assert_true(cl);
    assert_true(has(&out, "413"));
    assert_true(feed("GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", &out, &cl) > 0);
    assert_true(has(&out, "400"));
    assert_true(feed("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &out, &cl) > 0);
    assert_true(has(&out, "501"));
    assert_true(feed("GET / HTTP/1.1\r\nNoColonHere\r\n\r\n", &out, &cl) > 0);
    assert_true(has(&out, "400"));
    /* headers that never end: refused once they pass the limit */
    static char big[HTTP_MAX_HEADER + 100];
    memset(big, 'a', sizeof big - 1);
    assert_true(feed(big, &out, &cl) > 0);
    assert_true(cl);
    assert_true(has(&out, "431"));
    mem_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health_version_404),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_incomplete_and_pipelined),
        cmocka_unit_test(test_close_and_errors),
    };
    return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
