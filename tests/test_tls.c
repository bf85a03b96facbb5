/* test_tls.c - TLS: certificates made at start with the openssl CLI, then a
 * client and a server connection talking through memory: handshake and ALPN,
 * data both ways (200 KiB each, in whole and in 7-byte ciphertext pieces),
 * close_notify, every verification failure the client and the server must
 * report (unknown CA, wrong DNS name, wrong IP, expired, missing or untrusted
 * client certificate), insecure_skip_verify, RSA/EC/PKCS#8 keys, EC and
 * multi-certificate CA files, file errors, and allocation failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../tls.c"

/* ---- certificates ---- */

static char dir[256];

static const char *path(const char *name)
{
    static char bufs[8][512];
    static int k;
    char *b = bufs[k++ % 8];
    snprintf(b, 512, "%s/%s", dir, name);
    return b;
}

/* Two RSA CAs, an EC CA, and leaves signed by them.  server.key is PKCS#1,
 * server-pk8.key the same key as PKCS#8, server-ec.key SEC1 with its
 * "EC PARAMETERS" block in front. */
static const char *const gen_script =
    "set -e\n"
    "cat > req.cnf <<'EOF'\n"
    "[req]\n"
    "distinguished_name = dn\n"
    "prompt = no\n"
    "[dn]\n"
    "CN = unused\n"
    "[ca]\n"
    "basicConstraints = critical,CA:TRUE\n"
    "keyUsage = critical,keyCertSign,cRLSign\n"
    "subjectKeyIdentifier = hash\n"
    "[server]\n"
    "basicConstraints = CA:FALSE\n"
    "keyUsage = critical,digitalSignature,keyEncipherment\n"
    "extendedKeyUsage = serverAuth,clientAuth\n"
    "subjectAltName = DNS:localhost,IP:127.0.0.1\n"
    "[client]\n"
    "basicConstraints = CA:FALSE\n"
    "keyUsage = critical,digitalSignature,keyEncipherment\n"
    "extendedKeyUsage = clientAuth\n"
    "EOF\n"
    "mkca() { # name keyfile\n"
    "  openssl req -x509 -new -key $2 -subj /CN=$1 -config req.cnf -extensions ca"
    "    -days 3650 -out $1.pem\n"
    "}\n"
    "mkleaf() { # name keyfile cn ext ca\n"
    "  openssl req -new -key $2 -subj /CN=$3 -config req.cnf -out $1.csr\n"
    "  openssl x509 -req -in $1.csr -CA $5.pem -CAkey $5.key -CAcreateserial -days 365"
    "    -extfile req.cnf -extensions $4 -out $1.pem\n"
    "}\n"
    "openssl genrsa -traditional -out ca.key 2048\n"
    "openssl genrsa -traditional -out other-ca.key 2048\n"
    "openssl ecparam -name prime256v1 -genkey -noout -out ec-ca.key\n"
    "mkca ca ca.key\n"
    "mkca other-ca other-ca.key\n"
    "mkca ec-ca ec-ca.key\n"
    "openssl genrsa -traditional -out server.key 2048\n"
    "openssl pkcs8 -topk8 -nocrypt -in server.key -out server-pk8.key\n"
    "openssl ecparam -name prime256v1 -genkey -out server-ec.key\n"
    "openssl genrsa -traditional -out client.key 2048\n"
    "openssl ecparam -name prime256v1 -genkey -noout -out client-ec.key\n"
    "mkleaf server server.key etcd-server server ca\n"
    "mkleaf server-ec server-ec.key etcd-server server ca\n"
    "mkleaf server-by-ec server.key etcd-server server ec-ca\n"
    "mkleaf client client.key root client ca\n"
    "mkleaf client-ec client-ec.key ec-user client ca\n"
    "mkleaf client-other client.key root client other-ca\n"
    "cat other-ca.pem ec-ca.pem ca.pem > bundle.pem\n"
    "printf 'this is not a PEM file\\n' > garbage.pem\n"
    "printf -- '-----BEGIN CERTIFICATE-----\\nMIIB\\n' > truncated.pem\n"
    "printf -- '-----BEGIN CERTIFICATE-----\\nAAAAAAAA\\n-----END CERTIFICATE-----\\n'"
    "  > badcert.pem\n"
    "openssl pkcs8 -topk8 -passout pass:secret -in client.key -out encrypted.key\n";

static int setup_certs(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/test_tls.XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    char script[600];
    snprintf(script, sizeof script, "%s/gen.sh", dir);
    FILE *f = fopen(script, "w");
    if (!f)
        return -1;
    fputs(gen_script, f);
    fclose(f);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd '%s' && sh gen.sh >gen.log 2>&1", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "certificate generation failed, see %s/gen.log\n", dir);
        return -1;
    }
    return 0;
}

static int teardown_certs(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static struct tls_ctx *server_ctx(const char *cert, const char *key, const char *ca, bool auth)
{
    struct tls_cfg cfg = {.cert_file = path(cert), .key_file = path(key),
                          .ca_file = ca ? path(ca) : NULL, .client_cert_auth = auth};
    char err[256] = "";
    struct tls_ctx *x = tls_ctx_server(&cfg, err, sizeof err);
    if (!x)
        fail_msg("server ctx: %s", err);
    return x;
}

static struct tls_ctx *client_ctx(const char *ca, const char *cert, const char *key,
                                  bool insecure)
{
    struct tls_cfg cfg = {.ca_file = ca ? path(ca) : NULL,
                          .cert_file = cert ? path(cert) : NULL,
                          .key_file = key ? path(key) : NULL,
                          .insecure_skip_verify = insecure};
    char err[256] = "";
    struct tls_ctx *x = tls_ctx_client(&cfg, err, sizeof err);
    if (!x)
        fail_msg("client ctx: %s", err);
    return x;
}

/* ---- a connection pair in memory ---- */

struct side {
    struct tls_conn *c;
    struct mem_buf got; /* plaintext read so far */
};

struct pair {
    struct side cli, srv;
    size_t chunk; /* largest ciphertext piece moved at once; 0 = all */
};

/* Moves ciphertext from one side to the other; true if any moved. */
static bool move(struct pair *pr, struct side *from, struct side *to)
{
    size_t len, cap;
    const uint8_t *p = tls_conn_send_buf(from->c, &len);
    if (!len)
        return false;
    uint8_t *q = tls_conn_recv_buf(to->c, &cap);
    if (!cap)
        return false;
    size_t n = len < cap ? len : cap;
    if (pr->chunk && n > pr->chunk)
        n = pr->chunk;
    memcpy(q, p, n);
    tls_conn_send_done(from->c, n);
    tls_conn_recv_done(to->c, n);
    return true;
}

static bool drain(struct side *s)
{
    uint8_t buf[5000];
    bool any = false;
    size_t n;
    while ((n = tls_conn_read(s->c, buf, sizeof buf)) > 0) {
        assert_int_equal(mem_buf_append(&s->got, buf, n), 0);
        any = true;
    }
    return any;
}

static void pump(struct pair *pr)
{
    for (int k = 0; k < 1000000; k++) {
        bool moved = move(pr, &pr->cli, &pr->srv);
        moved |= move(pr, &pr->srv, &pr->cli);
        moved |= drain(&pr->cli);
        moved |= drain(&pr->srv);
        if (!moved)
            return;
    }
    fail_msg("connections never went quiet");
}

static void pair_open(struct pair *pr, struct tls_ctx *cx, struct tls_ctx *sx, const char *name)
{
    memset(pr, 0, sizeof *pr);
    pr->cli.c = tls_conn_new(cx, name);
    pr->srv.c = tls_conn_new(sx, NULL);
    assert_non_null(pr->cli.c);
    assert_non_null(pr->srv.c);
    assert_false(tls_conn_ready(pr->cli.c));
    assert_null(tls_conn_error(pr->cli.c));
}

static void pair_close(struct pair *pr)
{
    tls_conn_free(pr->cli.c);
    tls_conn_free(pr->srv.c);
    mem_buf_free(&pr->cli.got);
    mem_buf_free(&pr->srv.got);
}

static void assert_handshake_ok(struct pair *pr)
{
    if (tls_conn_error(pr->cli.c) || tls_conn_error(pr->srv.c))
        fail_msg("handshake failed: client \"%s\", server \"%s\"",
                 tls_conn_error(pr->cli.c) ? tls_conn_error(pr->cli.c) : "",
                 tls_conn_error(pr->srv.c) ? tls_conn_error(pr->srv.c) : "");
    assert_true(tls_conn_ready(pr->cli.c));
    assert_true(tls_conn_ready(pr->srv.c));
    assert_false(tls_conn_closed(pr->cli.c));
    assert_false(tls_conn_closed(pr->srv.c));
    assert_non_null(tls_conn_alpn(pr->cli.c));
    assert_string_equal(tls_conn_alpn(pr->cli.c), "h2");
    assert_string_equal(tls_conn_alpn(pr->srv.c), "h2");
}

/* Runs a handshake that must fail on the client with want_cli (and on the
 * server with want_srv, when given). */
static void expect_failure(struct pair *pr, const char *want_cli, const char *want_srv)
{
    pump(pr);
    assert_true(tls_conn_closed(pr->cli.c));
    assert_false(tls_conn_ready(pr->cli.c));
    const char *e = tls_conn_error(pr->cli.c);
    if (!e || (want_cli && strcmp(e, want_cli)))
        fail_msg("client error \"%s\", want \"%s\"", e ? e : "(none)",
                 want_cli ? want_cli : "any");
    if (want_srv) {
        e = tls_conn_error(pr->srv.c);
        if (!e || strcmp(e, want_srv))
            fail_msg("server error \"%s\", want \"%s\"", e ? e : "(none)", want_srv);
        assert_true(tls_conn_closed(pr->srv.c));
    }
}

/* Writes all of p through from, pumping as the engine fills. */
static void send_all(struct pair *pr, struct side *from, const uint8_t *p, size_t n)
{
    size_t off = 0;
    for (int k = 0; off < n; k++) {
        assert_true(k < 100000);
        size_t w = tls_conn_write(from->c, p + off, n - off);
        off += w;
        if (w == 0 || off == n) {
            tls_conn_flush(from->c);
            pump(pr);
        }
    }
}

/* ---- tests ---- */

static void test_handshake_alpn(void **state)
{
    (void)state;
    struct tls_ctx *sx = server_ctx("server.pem", "server.key", NULL, false);
    struct tls_ctx *cx = client_ctx("ca.pem", NULL, NULL, false);
    struct pair pr;
    pair_open(&pr, cx, sx, "localhost");
    pump(&pr);
    assert_handshake_ok(&pr);
    assert_null(tls_conn_peer_cn(pr.srv.c)); /* no client_cert_auth */
    pair_close(&pr);
    tls_ctx_free(cx);
    tls_ctx_free(sx);
}

static void roundtrip(size_t chunk)
{
    struct tls_ctx *sx = server_ctx("server.pem", "server.key", NULL, false);
    struct tls_ctx *cx = client_ctx("ca.pem", NULL, NULL, false);
    struct pair pr;
    pair_open(&pr, cx, sx, "localhost");
    pr.chunk = chunk;
    /* nothing is taken before the handshake */
    assert_int_equal(tls_conn_write(pr.cli.c, (const uint8_t *)"x", 1), 0);
    pump(&pr);
    assert_handshake_ok(&pr);

    send_all(&pr, &pr.cli, (const uint8_t *)"ping", 4);
    assert_int_equal(pr.srv.got.len, 4);
    assert_memory_equal(pr.srv.got.data, "ping", 4);
    send_all(&pr, &pr.srv, (const uint8_t *)"pong!", 5);
    assert_int_equal(pr.cli.got.len, 5);
    assert_memory_equal(pr.cli.got.data, "pong!", 5);
    pr.srv.got.len = pr.cli.got.len = 0;

    size_t big = 200 * 1024;
    uint8_t *a = malloc(big), *b = malloc(big);
    assert_non_null(a);
    assert_non_null(b);
    for (size_t i = 0; i < big; i++) {
        a[i] = (uint8_t)(i * 7 + (i >> 8));
        b[i] = (uint8_t)(i * 13 + 5);
    }
    /* both ways at once: alternate pieces from each side */
    size_t oa = 0, ob = 0;
    for (int k = 0; oa < big || ob < big; k++) {
        assert_true(k < 100000);
        oa += tls_conn_write(pr.cli.c, a + oa, big - oa < 3000 ? big - oa : 3000);
        ob += tls_conn_write(pr.srv.c, b + ob, big - ob < 5000 ? big - ob : 5000);
        tls_conn_flush(pr.cli.c);
        tls_conn_flush(pr.srv.c);
        pump(&pr);
    }
    assert_int_equal(pr.srv.got.len, big);
    assert_memory_equal(pr.srv.got.data, a, big);
    assert_int_equal(pr.cli.got.len, big);
    assert_memory_equal(pr.cli.got.data, b, big);
    free(a);
    free(b);

    /* close_notify both ways: closed, and no error */
    tls_conn_close(pr.cli.c);
    pump(&pr);
    assert_true(tls_conn_closed(pr.cli.c));
    assert_true(tls_conn_closed(pr.srv.c));
    assert_null(tls_conn_error(pr.cli.c));
    assert_null(tls_conn_error(pr.srv.c));
    pair_close(&pr);
    tls_ctx_free(cx);
    tls_ctx_free(sx);
}

static void test_roundtrip(void **state)
{
    (void)state;
    roundtrip(0);
}

static void test_roundtrip_small_pieces(void **state)
{
    (void)state;
    roundtrip(7);
}

static void test_unknown_authority(void **state)
{
    (void)state;
    struct tls_ctx *sx = server_ctx("server.pem", "server.key", NULL, false);
    struct tls_ctx *cx = client_ctx("other-ca.pem", NULL, NULL, false);
    struct pair pr;
    pair_open(&pr, cx, sx, "localhost");
    expect_failure(&pr, "x509: certificate signed by unknown authority",
                   "remote error: tls: bad certificate");
    assert_int_equal(tls_conn_write(pr.cli.c, (const uint8_t *)"x", 1), 0);
    pair_close(&pr);
    tls_ctx_free(cx);
    tls_ctx_free(sx);
}

static void test_wrong_name(void **state)
{
    (void)state;
    struct tls_ctx *sx = server_ctx("server.pem", "server.key", NULL, false);
    struct tls_ctx *cx = client_ctx("ca.pem", NULL, NULL, false);
    struct pair pr;
    pair_open(&pr, cx, sx, "etcd.example.com");
    expect_failure(&pr, "x509: certificate is valid for localhost, not etcd.example.com",
                   "remote error: tls: bad certificate");
    pair_close(&pr);
    tls_ctx_free(cx);
    tls_ctx_free(sx);
}

static void test_ip_names(void **state)
{
    (void)state;
    struct tls_ctx *sx = server_ctx("server.pem", "server.key", NULL, false);
    struct tls_ctx *cx = client_ctx("ca.pem", NULL, NULL, false);
    struct pair pr;
    pair_open(&pr, cx, sx, "127.0.0.1");
    pump(&pr);
    assert_handshake_ok(&pr);
    pair_close(&pr);

    pair_open(&pr, cx, sx, "127.0.0.2");
    expect_failure(&pr, "x509: certificate is valid for 127.0.0.1, not 127.0.0.2", NULL);
    pair_close(&pr);

    pair_open(&pr, cx, sx, "::1");
    expect_failure(&pr, "x509: certificate is valid for 127.0.0.1, not ::1", NULL);
    pair_close(&pr);
    tls_ctx_free(cx);

    /* the IP path still verifies the chain */
    cx = client_ctx("other-ca.pem", NULL, NULL, false);
    pair_open(&pr, cx, sx, "127.0.0.1");
    expect_failure(&pr, "x509: certificate signed by unknown authority", NULL);
    pair_close(&pr);
    tls_ctx_free(cx);
    tls_ctx_free(sx);

    /* a certificate without IP SANs */
    sx = server_ctx("client.pem", "client.key", NULL, false);
    cx = client_ctx("ca.pem", NULL, NULL, false);
    pair_open(&pr, cx, sx, "10.0.0.1");
    expect_failure(&pr,
                   "x509: cannot validate certificate for 10.0.0.1 because it doesn't contain "
                   "any IP SANs",
                   NULL);
    pair_close(&pr);
    tls_ctx_free(cx);
    tls_ctx_free(sx);
}

static void test_expired(void **state)
{
    (void)state;
    struct tls_ctx *sx = server_ctx("server.pem", "server.key", NULL, false);
    struct tls_ctx *cx = client_ctx("ca.pem", NULL, NULL, false);
    struct pair pr;
    /* the leaf is valid for a year: twenty years on it has expired */
    pair_open(&pr, cx, sx, "localhost");
    pr.cli.c->tc_xc.days += 20 * 365;
    expect_failure(&pr, "x509: certificate has expired or is not yet valid", NULL);
    pair_close(&pr);
    /* and a year before it was made it was not yet valid (same text) */
    pair_open(&pr, cx, sx, "localhost");
    pr.cli.c->tc_xc.days -= 365;
    expect_failure(&pr, "x509: certificate has expired or is not yet valid", NULL);
    pair_close(&pr);
    tls_ctx_free(cx);
    tls_ctx_free(sx);
}

static void test_insecure(void **state)
{
    (void)state;
    struct tls_ctx *sx = server_ctx("server.pem", "server.key", NULL, false);
    struct tls_ctx *cx = client_ctx("other-ca.pem", NULL, NULL, true);
    struct pair pr;
    pair_open(&pr, cx, sx, "wrong.example.com");
    pump(&pr);
    assert_handshake_ok(&pr);
    send_all(&pr, &pr.cli, (const uint8_t *)"hello", 5);
    assert_int_equal(pr.srv.got.len, 5);
    pair_close(&pr);
    /* no CA file at all, an IP name, an EC server key */
    tls_ctx_free(cx);
    tls_ctx_free(sx);
    sx = server_ctx("server-ec.pem", "server-ec.key", NULL, false);
    cx = client_ctx(NULL, NULL, NULL, true);
    pair_open(&pr, cx, sx, "10.1.2.3");
    pump(&pr);
    assert_handshake_ok(&pr);
    pair_close(&pr);
    tls_ctx_free(cx);
    tls_ctx_free(sx);
}

static void test_mtls(void **state)
{
    (void)state;
    struct tls_ctx *sx = server_ctx("server.pem", "server.key", "ca.pem", true);
    struct pair pr;

    /* no client certificate: the server refuses */
    struct tls_ctx *cx = client_ctx("ca.pem", NULL, NULL, false);
    pair_open(&pr, cx, sx, "localhost");
    expect_failure(&pr, "remote error: tls: bad certificate",
                   "tls: client didn't provide a certificate");
    assert_false(tls_conn_ready(pr.srv.c));
    pair_close(&pr);
    tls_ctx_free(cx);

    /* a certificate from another CA: refused too */
    cx = client_ctx("ca.pem", "client-other.pem", "client.key", false);
    pair_open(&pr, cx, sx, "localhost");
    expect_failure(
        &pr, "remote error: tls: bad certificate",
        "tls: failed to verify client certificate: x509: certificate signed by unknown authority");
    assert_null(tls_conn_peer_cn(pr.srv.c));
    pair_close(&pr);
    tls_ctx_free(cx);

    /* signed by the CA: accepted, and the CN is the user */
    cx = client_ctx("ca.pem", "client.pem", "client.key", false);
    pair_open(&pr, cx, sx, "localhost");
    pump(&pr);
    assert_handshake_ok(&pr);
    assert_string_equal(tls_conn_peer_cn(pr.srv.c), "root");
    assert_null(tls_conn_peer_cn(pr.cli.c));
    send_all(&pr, &pr.cli, (const uint8_t *)"authenticated", 13);
    assert_int_equal(pr.srv.got.len, 13);
    pair_close(&pr);
    tls_ctx_free(cx);

    /* an EC client key */
    cx = client_ctx("ca.pem", "client-ec.pem", "client-ec.key", false);
    pair_open(&pr, cx, sx, "localhost");
    pump(&pr);
    assert_handshake_ok(&pr);
    assert_string_equal(tls_conn_peer_cn(pr.srv.c), "ec-user");
    pair_close(&pr);
    tls_ctx_free(cx);
    tls_ctx_free(sx);
}

static void test_key_formats(void **state)
{
    (void)state;
    static const char *const kinds[][2] = {
        {"server.pem", "server.key"},     /* PKCS#1 */
        {"server.pem", "server-pk8.key"}, /* PKCS#8 */
        {"server-ec.pem", "server-ec.key"} /* SEC1 after EC PARAMETERS */,
    };
    struct tls_ctx *cx = client_ctx("ca.pem", NULL, NULL, false);
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) {
        struct tls_ctx *sx = server_ctx(kinds[i][0], kinds[i][1], NULL, false);
        assert_int_equal(sx->tx_key.tk_type, i < 2 ? BR_KEYTYPE_RSA : BR_KEYTYPE_EC);
        struct pair pr;
        pair_open(&pr, cx, sx, "localhost");
        pump(&pr);
        assert_handshake_ok(&pr);
        send_all(&pr, &pr.srv, (const uint8_t *)"key", 3);
        assert_int_equal(pr.cli.got.len, 3);
        pair_close(&pr);
        tls_ctx_free(sx);
    }
    tls_ctx_free(cx);
}

static void test_ca_bundle(void **state)
{
    (void)state;
    /* three anchors, one of them EC; the server's chain ends at the EC one */
    struct tls_ctx *cx = client_ctx("bundle.pem", NULL, NULL, false);
    assert_int_equal(cx->tx_n_tas, 3);
    assert_int_equal(cx->tx_tas[1].pkey.key_type, BR_KEYTYPE_EC);
    assert_true(cx->tx_tas[0].flags & BR_X509_TA_CA);
    static const char *const certs[] = {"server-by-ec.pem", "server.pem"};
    for (size_t i = 0; i < 2; i++) {
        struct tls_ctx *sx = server_ctx(certs[i], "server.key", NULL, false);
        struct pair pr;
        pair_open(&pr, cx, sx, "localhost");
        pump(&pr);
        assert_handshake_ok(&pr);
        pair_close(&pr);
        tls_ctx_free(sx);
    }
    tls_ctx_free(cx);
}

/* No ca_file: the system bundle, read leniently. */
static void test_system_roots(void **state)
{
    (void)state;
    FILE *f = fopen("/etc/ssl/certs/ca-certificates.crt", "rb");
    if (!f)
        skip();
    fclose(f);
    struct tls_cfg cfg = {0};
    char err[256] = "";
    struct tls_ctx *x = tls_ctx_client(&cfg, err, sizeof err);
    if (!x)
        fail_msg("system roots: %s", err);
    assert_true(x->tx_n_tas > 10);
    /* and our own CA is not among them */
    struct tls_ctx *sx = server_ctx("server.pem", "server.key", NULL, false);
    struct pair pr;
    pair_open(&pr, x, sx, "localhost");
    expect_failure(&pr, "x509: certificate signed by unknown authority", NULL);
    pair_close(&pr);
    tls_ctx_free(sx);
    tls_ctx_free(x);
}

static void expect_load_error(bool server, const char *ca, const char *cert, const char *key,
                              const char *want)
{
    struct tls_cfg cfg = {.ca_file = ca ? path(ca) : NULL,
                          .cert_file = cert ? path(cert) : NULL,
                          .key_file = key ? path(key) : NULL,
                          .client_cert_auth = server && ca};
    char err[512] = "";
    struct tls_ctx *x =
        server ? tls_ctx_server(&cfg, err, sizeof err) : tls_ctx_client(&cfg, err, sizeof err);
    char full[600];
    snprintf(full, sizeof full, "%s", want);
    if (strstr(want, "%s"))
        snprintf(full, sizeof full, want, dir, dir);
    if (x || strcmp(err, full))
        fail_msg("error \"%s\", want \"%s\"", x ? "(none)" : err, full);
}

static void test_load_errors(void **state)
{
    (void)state;
    expect_load_error(false, "missing.pem", NULL, NULL,
                      "open %s/missing.pem: No such file or directory");
    expect_load_error(false, "garbage.pem", NULL, NULL, "%s/garbage.pem: no certificate found");
    expect_load_error(false, "truncated.pem", NULL, NULL, "%s/truncated.pem: malformed PEM data");
    expect_load_error(false, "badcert.pem", NULL, NULL,
                      "%s/badcert.pem: certificate 1 cannot be parsed (x509 error 41)");
    expect_load_error(false, "server.key", NULL, NULL, "%s/server.key: no certificate found");
    expect_load_error(false, ".", NULL, NULL, "read %s/.: Is a directory");
    expect_load_error(true, NULL, "server.pem", "missing.key",
                      "open %s/missing.key: No such file or directory");
    expect_load_error(true, NULL, "garbage.pem", "server.key",
                      "%s/garbage.pem: no certificate found");
    expect_load_error(true, NULL, "server.pem", "garbage.pem",
                      "%s/garbage.pem: no private key found");
    expect_load_error(true, NULL, "server.pem", "ca.pem", "%s/ca.pem: no private key found");
    expect_load_error(true, NULL, "server.pem", "encrypted.key",
                      "%s/encrypted.key: encrypted private keys are not supported");
    expect_load_error(true, NULL, "server.pem", "client.key",
                      "%s/client.key: private key does not match public key in %s/server.pem");
    expect_load_error(true, NULL, "server.pem", "server-ec.key",
                      "%s/server-ec.key: private key does not match public key in %s/server.pem");
    expect_load_error(true, NULL, NULL, NULL, "a TLS server needs cert_file and key_file");
    expect_load_error(false, "ca.pem", "client.pem", NULL,
                      "a client certificate needs both cert_file and key_file");
    expect_load_error(true, "garbage.pem", "server.pem", "server.key",
                      "%s/garbage.pem: no certificate found");
    struct tls_cfg cfg = {.cert_file = path("server.pem"), .key_file = path("server.key"),
                          .client_cert_auth = true};
    char err[256];
    assert_null(tls_ctx_server(&cfg, err, sizeof err));
    assert_string_equal(err, "client certificate authentication needs ca_file");
}

/* Every allocation in loading and in tls_conn_new fails in turn: NULL or a
 * clean error each time, nothing leaked (LeakSanitizer watches). */
static void test_alloc_failures(void **state)
{
    (void)state;
    struct tls_cfg scfg = {.cert_file = path("server.pem"), .key_file = path("server.key"),
                           .ca_file = path("bundle.pem"), .client_cert_auth = true};
    struct tls_cfg ccfg = {.cert_file = path("client-ec.pem"), .key_file = path("client-ec.key"),
                           .ca_file = path("bundle.pem")};
    for (int role = 0; role < 2; role++) {
        bool done = false;
        for (long n = 0; !done && n < 1000; n++) {
            char err[256] = "";
            mem_fail_after(n, 0);
            struct tls_ctx *x = role ? tls_ctx_server(&scfg, err, sizeof err)
                                     : tls_ctx_client(&ccfg, err, sizeof err);
            mem_fail_after(-1, 0);
            if (!x) {
                assert_non_null(strstr(err, "out of memory"));
                continue;
            }
            mem_fail_after(0, 0);
            struct tls_conn *c = tls_conn_new(x, "localhost");
            mem_fail_after(-1, 0);
            assert_null(c);
            c = tls_conn_new(x, "127.0.0.1");
            assert_non_null(c);
            tls_conn_free(c);
            tls_ctx_free(x);
            done = true;
        }
        assert_true(done);
    }
    /* the leaf copy for an IP name cannot be made: the handshake fails */
    struct tls_ctx *sx = server_ctx("server.pem", "server.key", NULL, false);
    struct tls_ctx *cx = client_ctx("ca.pem", NULL, NULL, false);
    struct pair pr;
    pair_open(&pr, cx, sx, "127.0.0.1");
    mem_fail_after(0, 1);
    pump(&pr);
    mem_fail_after(-1, 0);
    assert_string_equal(tls_conn_error(pr.cli.c), "x509: certificate too large");
    pair_close(&pr);
    tls_ctx_free(cx);
    tls_ctx_free(sx);
}

/* Garbage instead of a ServerHello, and a client talking to a client. */
static void test_garbage_peer(void **state)
{
    (void)state;
    struct tls_ctx *cx = client_ctx("ca.pem", NULL, NULL, false);
    struct tls_conn *c = tls_conn_new(cx, "localhost");
    assert_non_null(c);
    size_t cap, len;
    assert_non_null(tls_conn_send_buf(c, &len)); /* the ClientHello, dropped */
    tls_conn_send_done(c, len);
    uint8_t *q = tls_conn_recv_buf(c, &cap);
    assert_non_null(q);
    assert_true(cap >= 5); /* BearSSL asks for a record header first */
    memset(q, 'G', 5); /* "GGGGG": not a TLS record */
    tls_conn_recv_done(c, 5);
    assert_string_equal(tls_conn_error(c), "tls: unsupported protocol version");
    /* a fatal protocol_version alert goes out in clear before the close */
    assert_false(tls_conn_closed(c));
    const uint8_t *a = tls_conn_send_buf(c, &len);
    assert_int_equal(len, 7);
    assert_int_equal(a[0], 0x15);
    assert_int_equal(a[1], 0x03);
    assert_memory_equal(a + 3, "\x00\x02\x02\x46", 4);
    tls_conn_send_done(c, 3);
    assert_false(tls_conn_closed(c));
    a = tls_conn_send_buf(c, &len);
    assert_int_equal(len, 4);
    tls_conn_send_done(c, 4);
    assert_true(tls_conn_closed(c));
    assert_null(tls_conn_send_buf(c, &len));
    assert_int_equal(len, 0);
    assert_null(tls_conn_recv_buf(c, &cap));
    assert_int_equal(cap, 0);
    tls_conn_free(c);

    struct pair pr;
    pair_open(&pr, cx, cx, "localhost");
    pump(&pr);
    assert_false(tls_conn_ready(pr.cli.c));
    assert_false(tls_conn_ready(pr.srv.c));
    pair_close(&pr);
    tls_ctx_free(cx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_alpn),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_roundtrip_small_pieces),
        cmocka_unit_test(test_unknown_authority),
        cmocka_unit_test(test_wrong_name),
        cmocka_unit_test(test_ip_names),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_insecure),
        cmocka_unit_test(test_mtls),
        cmocka_unit_test(test_key_formats),
        cmocka_unit_test(test_ca_bundle),
        cmocka_unit_test(test_system_roots),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_garbage_peer),
    };
    return cmocka_run_group_tests_name("tls", tests, setup_certs, teardown_certs);
}
