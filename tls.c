/* tls.c - TLS through BearSSL (see tls.h): PEM files turned into trust
 * anchors, certificate chains and private keys; client and server engines;
 * the X.509 checks BearSSL leaves to its user (a server named by an IP
 * address, a client that skips verification); the byte pipe; failures worded
 * the way Go's crypto/tls words them, since that is what etcd users see.
 *
 * Not here: sockets (the owner moves the ciphertext), session resumption
 * (every connection makes a full handshake), renegotiation (refused both
 * ways, as Go refuses it), revocation, and protocol versions other than
 * TLS 1.2 (BearSSL has no TLS 1.3; 1.0 and 1.1 are not offered).
 *
 * Memory: a struct tls_ctx owns its trust anchors (each anchor's dn.data is
 * one block that also holds the anchor's key), its certificate chain (each
 * certificate's data) and one block with the private key's numbers, wiped
 * before it is freed.  A struct tls_conn is a single block holding the
 * engine, the X.509 contexts and the BR_SSL_BUFSIZE_BIDI I/O buffer; the one
 * other block a connection may own is a copy of the server's leaf
 * certificate, kept only while its IP addresses are checked.
 */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <bearssl.h>

#include "mem.h"

/* Largest PEM file read (a system CA bundle is ~200 KiB). */
#define TLS_FILE_MAX (8u << 20)
/* Largest server leaf certificate kept for the IP-address check. */
#define TLS_LEAF_MAX (64u << 10)
/* Days from 1 January of year 0 (proleptic Gregorian) to 1 January 1970. */
#define TLS_DAYS_TO_EPOCH 719528u
/* dNSNames of a server certificate remembered for the mismatch message. */
#define TLS_NAMES 4
#define TLS_NAME_LEN 256

/* Where Go looks for the system roots on Linux, in its order. */
static const char *const tls_system_bundles[] = {
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
};

/* Offered by the client and accepted by the server, in preference order.
 * BearSSL wants a non-const array of const strings. */
static const char *tls_alpn[] = {"h2", "http/1.1"};

/* br_name_element OIDs: a SAN dNSName, and the subject's CommonName. */
static const unsigned char tls_oid_dns[] = {0, 2};
static const unsigned char tls_oid_cn[] = {3, 0x55, 0x04, 0x03};

/* ---- types ---- */

/* A private key; the numbers rsa/ec point into live in data. */
struct tls_key {
    int tk_type; /* BR_KEYTYPE_RSA or BR_KEYTYPE_EC; 0 = none */
    br_rsa_private_key tk_rsa;
    br_ec_private_key tk_ec;
    unsigned char *tk_data; /* owned, wiped when freed */
    size_t tk_len;
};

struct tls_ctx {
    bool tx_server;
    bool tx_insecure;             /* client: accept any server certificate */
    bool tx_client_auth;          /* server: demand a client certificate */
    br_x509_trust_anchor *tx_tas; /* owned array; each dn.data an owned block */
    size_t tx_n_tas;
    br_x509_certificate *tx_chain; /* owned array; each data owned */
    size_t tx_chain_len;
    struct tls_key tx_key;
    unsigned tx_issuer_key_type; /* key type that signed our leaf (static ECDH suites) */
};

/* A br_x509_class standing in front of x509_minimal where BearSSL's own
 * checks do not fit: a server named by an IP address (x509_minimal matches
 * dNSNames only, so the chain is verified without a name and the leaf's
 * iPAddress SANs are matched here), and a client that skips verification
 * (the leaf is only decoded, for the key the handshake needs). */
enum tls_x509_mode { TLS_X509_UNUSED, TLS_X509_VERIFY_IP, TLS_X509_INSECURE };

struct tls_x509 {
    const br_x509_class *vtable; /* first: BearSSL hands back &vtable */
    enum tls_x509_mode mode;
    br_x509_minimal_context *inner; /* VERIFY_IP: the chain checks */
    uint32_t n_certs;               /* certificates ended in this chain */
    br_x509_decoder_context dec;    /* INSECURE: the leaf */
    unsigned char *leaf;            /* VERIFY_IP: owned copy of the leaf */
    size_t leaf_len, leaf_cap;
    bool leaf_lost; /* too large, or OOM: the address cannot be checked */
    unsigned char ip[16];
    size_t ip_len;
    char ip_names[160]; /* addresses the leaf does hold, for the message */
};

struct tls_conn {
    struct tls_ctx *tc_ctx;        /* not owned; outlives the connection */
    br_ssl_engine_context *tc_eng; /* the engine inside tc_ssl */
    union {
        br_ssl_client_context cli;
        br_ssl_server_context srv;
    } tc_ssl;
    br_x509_minimal_context tc_xc;
    struct tls_x509 tc_wrap;
    /* client: the server leaf's dNSNames; server: the client's CommonName */
    br_name_element tc_names[TLS_NAMES];
    char tc_name_buf[TLS_NAMES][TLS_NAME_LEN];
    char tc_server_name[TLS_NAME_LEN];
    bool tc_ready;       /* the handshake has completed (sticky) */
    bool tc_out_partial; /* the owner has sent part of the engine's output */
    /* A fatal alert to send after the engine failed (see tls_conn_fail). */
    unsigned char tc_alert[7];
    size_t tc_alert_len, tc_alert_off;
    char tc_err[640]; /* the failure as text; empty while none */
    unsigned char tc_iobuf[BR_SSL_BUFSIZE_BIDI];
};

static void tls_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int tls_read_file(const char *path, struct mem_buf *out, char *err, size_t errlen);
static void tls_buf_wipe(struct mem_buf *b);
static void tls_key_free(struct tls_key *k);
static void tls_xc_set_time(br_x509_minimal_context *xc);
static void tls_conn_sync(struct tls_conn *c);
static void tls_conn_fail(struct tls_conn *c, int e);
static void tls_conn_describe(struct tls_conn *c, int e);

/* ---- files ---- */

static void tls_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Key material and whatever held it is wiped before the memory goes back. */
static void tls_buf_wipe(struct mem_buf *b)
{
    if (b->data)
        explicit_bzero(b->data, b->cap);
    mem_buf_free(b);
}

/* The whole file into out.  0, or -1 with err set. */
static int tls_read_file(const char *path, struct mem_buf *out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        tls_errf(err, errlen, "open %s: %s", path, strerror(errno));
        return -1;
    }
    for (;;) {
        if (out->len > TLS_FILE_MAX) {
            tls_errf(err, errlen, "%s: file too large", path);
            goto fail;
        }
        if (mem_buf_reserve(out, 16384) < 0) {
            tls_errf(err, errlen, "%s: out of memory", path);
            goto fail;
        }
        size_t k = fread(out->data + out->len, 1, out->cap - out->len, f);
        out->len += k;
        if (k == 0)
            break;
    }
    if (ferror(f)) {
        tls_errf(err, errlen, "read %s: %s", path, strerror(errno));
        goto fail;
    }
    fclose(f);
    return 0;
fail:
    fclose(f);
    tls_buf_wipe(out);
    return -1;
}

/* ---- PEM ---- */

/* Every object of a PEM file: DER bytes back to back in der, and an index. */
struct tls_pem_obj {
    char name[128]; /* what follows "-----BEGIN " */
    size_t off, len;
};

struct tls_pem {
    struct mem_buf der;
    struct mem_buf objs; /* struct tls_pem_obj[] */
    size_t n;
    bool oom;
};

static void tls_pem_append(void *ctx, const void *p, size_t n)
{
    struct tls_pem *pem = ctx;
    if (mem_buf_append(&pem->der, p, n) < 0)
        pem->oom = true;
}

static const struct tls_pem_obj *tls_pem_obj(const struct tls_pem *pem, size_t i)
{
    return (const struct tls_pem_obj *)(const void *)pem->objs.data + i;
}

static void tls_pem_free(struct tls_pem *pem)
{
    tls_buf_wipe(&pem->der);
    mem_buf_free(&pem->objs);
}

/* 0, -1 if the PEM is malformed, -2 on OOM. */
static int tls_pem_decode(struct tls_pem *pem, const unsigned char *p, size_t n)
{
    br_pem_decoder_context pc;
    struct tls_pem_obj cur;
    bool in_obj = false, tail = false;
    br_pem_decoder_init(&pc);
    memset(&cur, 0, sizeof cur);
    for (;;) {
        if (n == 0) {
            if (tail)
                break;
            /* the decoder sees a line only once its newline arrives */
            p = (const unsigned char *)"\n";
            n = 1;
            tail = true;
        }
        size_t k = br_pem_decoder_push(&pc, p, n);
        p += k;
        n -= k;
        switch (br_pem_decoder_event(&pc)) {
        case BR_PEM_BEGIN_OBJ:
            snprintf(cur.name, sizeof cur.name, "%s", br_pem_decoder_name(&pc));
            cur.off = pem->der.len;
            br_pem_decoder_setdest(&pc, tls_pem_append, pem);
            in_obj = true;
            break;
        case BR_PEM_END_OBJ:
            if (in_obj) {
                cur.len = pem->der.len - cur.off;
                if (mem_buf_append(&pem->objs, &cur, sizeof cur) < 0)
                    pem->oom = true;
                else
                    pem->n++;
            }
            in_obj = false;
            break;
        case BR_PEM_ERROR:
            return -1;
        default:
            break;
        }
    }
    if (pem->oom)
        return -2;
    return in_obj ? -1 : 0;
}

/* Reads and decodes path.  0, or -1 with err set. */
static int tls_pem_load(const char *path, struct tls_pem *pem, char *err, size_t errlen)
{
    struct mem_buf file = {0};
    memset(pem, 0, sizeof *pem);
    if (tls_read_file(path, &file, err, errlen) < 0)
        return -1;
    int r = tls_pem_decode(pem, file.data, file.len);
    tls_buf_wipe(&file);
    if (r == -1)
        tls_errf(err, errlen, "%s: malformed PEM data", path);
    else if (r == -2)
        tls_errf(err, errlen, "%s: out of memory", path);
    if (r < 0) {
        tls_pem_free(pem);
        return -1;
    }
    return 0;
}

static bool tls_is_cert(const struct tls_pem_obj *o)
{
    return !strcmp(o->name, "CERTIFICATE") || !strcmp(o->name, "X509 CERTIFICATE");
}

/* ---- trust anchors ---- */

struct tls_dn {
    struct mem_buf b;
    bool oom;
};

static void tls_dn_append(void *ctx, const void *p, size_t n)
{
    struct tls_dn *dn = ctx;
    if (mem_buf_append(&dn->b, p, n) < 0)
        dn->oom = true;
}

/* One DER certificate as a trust anchor, as BearSSL's tools make them: the
 * subject DN and the public key, usable as a CA if Basic Constraints says
 * so (otherwise only for a server presenting that very certificate).
 * 0, a BR_ERR_X509_* code, or -1 on OOM. */
static int tls_ta_from_der(br_x509_trust_anchor *ta, const unsigned char *der, size_t len)
{
    br_x509_decoder_context dc;
    struct tls_dn dn = {0};
    br_x509_decoder_init(&dc, tls_dn_append, &dn);
    br_x509_decoder_push(&dc, der, len);
    int e = br_x509_decoder_last_error(&dc);
    const br_x509_pkey *pk = br_x509_decoder_get_pkey(&dc);
    if (e || !pk || dn.oom) {
        mem_buf_free(&dn.b);
        return dn.oom ? -1 : e ? e : BR_ERR_X509_UNSUPPORTED;
    }
    size_t klen = pk->key_type == BR_KEYTYPE_RSA ? pk->key.rsa.nlen + pk->key.rsa.elen
                                                  : pk->key.ec.qlen;
    unsigned char *blob = mem_alloc(dn.b.len + klen + 1);
    if (!blob) {
        mem_buf_free(&dn.b);
        return -1;
    }
    memset(ta, 0, sizeof *ta);
    if (dn.b.len)
        memcpy(blob, dn.b.data, dn.b.len);
    ta->dn.data = blob;
    ta->dn.len = dn.b.len;
    ta->flags = br_x509_decoder_isCA(&dc) ? BR_X509_TA_CA : 0;
    ta->pkey.key_type = pk->key_type;
    unsigned char *k = blob + dn.b.len;
    if (pk->key_type == BR_KEYTYPE_RSA) {
        ta->pkey.key.rsa.n = k;
        ta->pkey.key.rsa.nlen = pk->key.rsa.nlen;
        memcpy(k, pk->key.rsa.n, pk->key.rsa.nlen);
        ta->pkey.key.rsa.e = k + pk->key.rsa.nlen;
        ta->pkey.key.rsa.elen = pk->key.rsa.elen;
        memcpy(k + pk->key.rsa.nlen, pk->key.rsa.e, pk->key.rsa.elen);
    } else {
        ta->pkey.key.ec.curve = pk->key.ec.curve;
        ta->pkey.key.ec.q = k;
        ta->pkey.key.ec.qlen = pk->key.ec.qlen;
        memcpy(k, pk->key.ec.q, pk->key.ec.qlen);
    }
    mem_buf_free(&dn.b);
    return 0;
}

/* Loads a PEM file that must hold at least one certificate; *n says how
 * many.  0, or -1 with err set (and nothing left to free). */
static int tls_load_certs(const char *path, struct tls_pem *pem, size_t *n, char *err, size_t errlen)
{
    if (tls_pem_load(path, pem, err, errlen) < 0)
        return -1;
    *n = 0;
    for (size_t i = 0; i < pem->n; i++)
        *n += tls_is_cert(tls_pem_obj(pem, i));
    if (*n)
        return 0;
    tls_errf(err, errlen, "%s: no certificate found", path);
    tls_pem_free(pem);
    return -1;
}

/* Adds the certificates of a PEM file to x's anchors.  A bundle the user
 * named must parse whole (as etcd's NewCertPool demands); the system bundle
 * is lenient, so that one root BearSSL cannot read (say an Ed25519 key) does
 * not take every other root with it.  0, or -1 with err set. */
static int tls_load_anchors(struct tls_ctx *x, const char *path, bool lenient, char *err,
                            size_t errlen)
{
    struct tls_pem pem;
    size_t n;
    if (tls_load_certs(path, &pem, &n, err, errlen) < 0)
        return -1;
    x->tx_tas = mem_calloc(n, sizeof *x->tx_tas);
    if (!x->tx_tas) {
        tls_errf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    size_t seen = 0;
    for (size_t i = 0; i < pem.n; i++) {
        const struct tls_pem_obj *o = tls_pem_obj(&pem, i);
        if (!tls_is_cert(o))
            continue;
        seen++;
        int e = tls_ta_from_der(&x->tx_tas[x->tx_n_tas], pem.der.data + o->off, o->len);
        if (e == 0) {
            x->tx_n_tas++;
        } else if (e < 0) {
            tls_errf(err, errlen, "%s: out of memory", path);
            goto fail;
        } else if (!lenient) {
            tls_errf(err, errlen, "%s: certificate %zu cannot be parsed (x509 error %d)", path,
                     seen, e);
            goto fail;
        }
    }
    if (x->tx_n_tas == 0) {
        tls_errf(err, errlen, "%s: no usable certificate found", path);
        goto fail;
    }
    tls_pem_free(&pem);
    return 0;
fail:
    tls_pem_free(&pem);
    return -1;
}

static int tls_load_system_anchors(struct tls_ctx *x, char *err, size_t errlen)
{
    for (size_t i = 0; i < sizeof tls_system_bundles / sizeof *tls_system_bundles; i++) {
        FILE *f = fopen(tls_system_bundles[i], "rb");
        if (!f)
            continue;
        fclose(f);
        return tls_load_anchors(x, tls_system_bundles[i], true, err, errlen);
    }
    tls_errf(err, errlen, "no ca_file given and no system certificate bundle found");
    return -1;
}

/* ---- certificate chain and private key ---- */

static int tls_load_chain(struct tls_ctx *x, const char *path, char *err, size_t errlen)
{
    struct tls_pem pem;
    size_t n;
    if (tls_load_certs(path, &pem, &n, err, errlen) < 0)
        return -1;
    x->tx_chain = mem_calloc(n, sizeof *x->tx_chain);
    if (!x->tx_chain)
        goto oom;
    for (size_t i = 0; i < pem.n; i++) {
        const struct tls_pem_obj *o = tls_pem_obj(&pem, i);
        if (!tls_is_cert(o))
            continue;
        br_x509_certificate *cert = &x->tx_chain[x->tx_chain_len];
        cert->data = mem_alloc(o->len ? o->len : 1);
        if (!cert->data)
            goto oom;
        memcpy(cert->data, pem.der.data + o->off, o->len);
        cert->data_len = o->len;
        x->tx_chain_len++;
    }
    tls_pem_free(&pem);
    return 0;
oom:
    tls_errf(err, errlen, "%s: out of memory", path);
    tls_pem_free(&pem);
    return -1;
}

/* Copies n bytes to *dst, advances it, returns where they went. */
static unsigned char *tls_take(unsigned char **dst, const unsigned char *src, size_t n)
{
    unsigned char *at = *dst;
    if (n)
        memcpy(at, src, n);
    *dst += n;
    return at;
}

/* Copies the numbers out of the decoder, which is about to go away. */
static int tls_key_copy(struct tls_key *k, const br_skey_decoder_context *dc)
{
    int type = br_skey_decoder_key_type(dc);
    if (type == BR_KEYTYPE_RSA) {
        const br_rsa_private_key *s = br_skey_decoder_get_rsa(dc);
        k->tk_len = s->plen + s->qlen + s->dplen + s->dqlen + s->iqlen;
        k->tk_data = mem_alloc(k->tk_len ? k->tk_len : 1);
        if (!k->tk_data)
            return -1;
        unsigned char *p = k->tk_data;
        k->tk_rsa = *s;
        k->tk_rsa.p = tls_take(&p, s->p, s->plen);
        k->tk_rsa.q = tls_take(&p, s->q, s->qlen);
        k->tk_rsa.dp = tls_take(&p, s->dp, s->dplen);
        k->tk_rsa.dq = tls_take(&p, s->dq, s->dqlen);
        k->tk_rsa.iq = tls_take(&p, s->iq, s->iqlen);
    } else {
        const br_ec_private_key *s = br_skey_decoder_get_ec(dc);
        k->tk_len = s->xlen;
        k->tk_data = mem_alloc(k->tk_len ? k->tk_len : 1);
        if (!k->tk_data)
            return -1;
        k->tk_ec = *s;
        k->tk_ec.x = memcpy(k->tk_data, s->x, s->xlen);
    }
    k->tk_type = type;
    return 0;
}

static void tls_key_free(struct tls_key *k)
{
    if (k->tk_data) {
        explicit_bzero(k->tk_data, k->tk_len);
        mem_free(k->tk_data);
    }
    memset(k, 0, sizeof *k);
}

/* The first private key in a PEM file: PKCS#1 "RSA PRIVATE KEY", SEC1 "EC
 * PRIVATE KEY" or unencrypted PKCS#8 "PRIVATE KEY" (br_skey_decoder reads
 * all three; other objects, such as "EC PARAMETERS", are skipped). */
static int tls_load_key(struct tls_key *k, const char *path, char *err, size_t errlen)
{
    struct tls_pem pem;
    if (tls_pem_load(path, &pem, err, errlen) < 0)
        return -1;
    int r = -1;
    for (size_t i = 0; i < pem.n; i++) {
        const struct tls_pem_obj *o = tls_pem_obj(&pem, i);
        if (!strcmp(o->name, "ENCRYPTED PRIVATE KEY")) {
            tls_errf(err, errlen, "%s: encrypted private keys are not supported", path);
            goto done;
        }
        if (strcmp(o->name, "PRIVATE KEY") && strcmp(o->name, "RSA PRIVATE KEY") &&
            strcmp(o->name, "EC PRIVATE KEY"))
            continue;
        br_skey_decoder_context dc;
        br_skey_decoder_init(&dc);
        br_skey_decoder_push(&dc, pem.der.data + o->off, o->len);
        int e = br_skey_decoder_last_error(&dc);
        if (e) {
            tls_errf(err, errlen, "%s: invalid or unsupported private key (x509 error %d)", path,
                     e);
        } else if (tls_key_copy(k, &dc) < 0) {
            tls_errf(err, errlen, "%s: out of memory", path);
        } else {
            r = 0;
        }
        explicit_bzero(&dc, sizeof dc);
        goto done;
    }
    tls_errf(err, errlen, "%s: no private key found", path);
done:
    tls_pem_free(&pem);
    return r;
}

/* Big-endian unsigned numbers equal once leading zeros are dropped. */
static bool tls_same_number(const unsigned char *a, size_t alen, const unsigned char *b,
                            size_t blen)
{
    while (alen && !*a)
        a++, alen--;
    while (blen && !*b)
        b++, blen--;
    return alen == blen && (alen == 0 || !memcmp(a, b, alen));
}

/* Does the private key belong to the leaf's public key?  Go checks it when a
 * key pair is loaded; BearSSL would only fail the first handshake. */
static int tls_key_matches(const struct tls_key *k, const br_x509_pkey *pk)
{
    if (pk->key_type != k->tk_type)
        return 0;
    if (k->tk_type == BR_KEYTYPE_RSA) {
        br_rsa_compute_modulus mod = br_rsa_compute_modulus_get_default();
        size_t len = mod(NULL, &k->tk_rsa);
        if (len == 0)
            return 0;
        unsigned char *n = mem_alloc(len);
        if (!n)
            return -1;
        int ok = mod(n, &k->tk_rsa) == len &&
                 tls_same_number(n, len, pk->key.rsa.n, pk->key.rsa.nlen);
        mem_free(n);
        return ok;
    }
    unsigned char q[BR_EC_KBUF_PUB_MAX_SIZE];
    size_t qlen = br_ec_compute_pub(br_ec_get_default(), NULL, q, &k->tk_ec);
    return qlen != 0 && k->tk_ec.curve == pk->key.ec.curve && qlen == pk->key.ec.qlen &&
           !memcmp(q, pk->key.ec.q, qlen);
}

/* Chain and key for a server, or for a client that authenticates itself. */
static int tls_load_identity(struct tls_ctx *x, const char *cert_file, const char *key_file,
                             char *err, size_t errlen)
{
    if (tls_load_chain(x, cert_file, err, errlen) < 0 ||
        tls_load_key(&x->tx_key, key_file, err, errlen) < 0)
        return -1;
    br_x509_decoder_context dc;
    br_x509_decoder_init(&dc, NULL, NULL);
    br_x509_decoder_push(&dc, x->tx_chain[0].data, x->tx_chain[0].data_len);
    const br_x509_pkey *pk = br_x509_decoder_get_pkey(&dc);
    if (!pk) {
        tls_errf(err, errlen, "%s: first certificate cannot be parsed (x509 error %d)",
                 cert_file, br_x509_decoder_last_error(&dc));
        return -1;
    }
    int m = tls_key_matches(&x->tx_key, pk);
    if (m < 0) {
        tls_errf(err, errlen, "%s: out of memory", key_file);
        return -1;
    }
    if (m == 0) {
        tls_errf(err, errlen, "%s: private key does not match public key in %s", key_file,
                 cert_file);
        return -1;
    }
    x->tx_issuer_key_type = br_x509_decoder_get_signer_key_type(&dc);
    if (x->tx_issuer_key_type == 0)
        x->tx_issuer_key_type = BR_KEYTYPE_EC;
    return 0;
}

/* ---- contexts ---- */

struct tls_ctx *tls_ctx_client(const struct tls_cfg *cfg, char *err, size_t errlen)
{
    struct tls_ctx *x = mem_calloc(1, sizeof *x);
    if (!x) {
        tls_errf(err, errlen, "out of memory");
        return NULL;
    }
    x->tx_insecure = cfg->insecure_skip_verify;
    /* With verification skipped the anchors are unused, but a CA file that
     * was named and cannot be read is still an error, as in etcd. */
    if (cfg->ca_file) {
        if (tls_load_anchors(x, cfg->ca_file, false, err, errlen) < 0)
            goto fail;
    } else if (!x->tx_insecure) {
        if (tls_load_system_anchors(x, err, errlen) < 0)
            goto fail;
    }
    if (cfg->cert_file || cfg->key_file) {
        if (!cfg->cert_file || !cfg->key_file) {
            tls_errf(err, errlen, "a client certificate needs both cert_file and key_file");
            goto fail;
        }
        if (tls_load_identity(x, cfg->cert_file, cfg->key_file, err, errlen) < 0)
            goto fail;
    }
    return x;
fail:
    tls_ctx_free(x);
    return NULL;
}

struct tls_ctx *tls_ctx_server(const struct tls_cfg *cfg, char *err, size_t errlen)
{
    struct tls_ctx *x = mem_calloc(1, sizeof *x);
    if (!x) {
        tls_errf(err, errlen, "out of memory");
        return NULL;
    }
    x->tx_server = true;
    x->tx_client_auth = cfg->client_cert_auth;
    if (!cfg->cert_file || !cfg->key_file) {
        tls_errf(err, errlen, "a TLS server needs cert_file and key_file");
        goto fail;
    }
    if (x->tx_client_auth && !cfg->ca_file) {
        tls_errf(err, errlen, "client certificate authentication needs ca_file");
        goto fail;
    }
    if (cfg->ca_file && tls_load_anchors(x, cfg->ca_file, false, err, errlen) < 0)
        goto fail;
    if (tls_load_identity(x, cfg->cert_file, cfg->key_file, err, errlen) < 0)
        goto fail;
    return x;
fail:
    tls_ctx_free(x);
    return NULL;
}

void tls_ctx_free(struct tls_ctx *x)
{
    if (!x)
        return;
    for (size_t i = 0; i < x->tx_n_tas; i++)
        mem_free(x->tx_tas[i].dn.data);
    mem_free(x->tx_tas);
    for (size_t i = 0; i < x->tx_chain_len; i++)
        mem_free(x->tx_chain[i].data);
    mem_free(x->tx_chain);
    tls_key_free(&x->tx_key);
    mem_free(x);
}

/* ---- the X.509 wrapper: IP-address names, skipped verification ---- */

/* One DER element at *p (of *n bytes): its tag and contents; *p and *n move
 * past it.  False when malformed.  Single-byte tags only, which is all that
 * the certificate fields read here use. */
static bool tls_der_next(const unsigned char **p, size_t *n, unsigned *tag,
                         const unsigned char **val, size_t *vlen)
{
    const unsigned char *q = *p;
    size_t left = *n;
    if (left < 2 || (q[0] & 0x1f) == 0x1f)
        return false;
    *tag = q[0];
    size_t len = q[1];
    q += 2;
    left -= 2;
    if (len & 0x80) {
        size_t k = len & 0x7f;
        if (k == 0 || k > 4 || k > left)
            return false;
        len = 0;
        for (size_t i = 0; i < k; i++)
            len = len << 8 | q[i];
        q += k;
        left -= k;
    }
    if (len > left)
        return false;
    *val = q;
    *vlen = len;
    *p = q + len;
    *n = left - len;
    return true;
}

/* Does the leaf's subjectAltName hold w->ip as an iPAddress?  Walks
 * Certificate > TBSCertificate > [3] extensions > the 2.5.29.17 extension >
 * GeneralNames, noting every address found for the error message.  The
 * chain was verified first, so these bytes carry a trusted signature. */
static bool tls_leaf_has_ip(struct tls_x509 *w)
{
    static const unsigned char san_oid[] = {0x55, 0x1d, 0x11};
    const unsigned char *p = w->leaf, *v;
    size_t n = w->leaf_len, vl;
    unsigned tag;
    bool found = false;
    w->ip_names[0] = 0;
    if (!tls_der_next(&p, &n, &tag, &v, &vl) || tag != 0x30)
        return false;
    p = v, n = vl;
    if (!tls_der_next(&p, &n, &tag, &v, &vl) || tag != 0x30)
        return false;
    p = v, n = vl; /* TBSCertificate fields */
    while (n) {
        if (!tls_der_next(&p, &n, &tag, &v, &vl))
            return false;
        if (tag == 0xa3)
            break;
    }
    if (tag != 0xa3)
        return false;
    p = v, n = vl;
    if (!tls_der_next(&p, &n, &tag, &v, &vl) || tag != 0x30)
        return false;
    p = v, n = vl; /* Extensions */
    while (n) {
        const unsigned char *e, *oid;
        size_t el, oidl;
        if (!tls_der_next(&p, &n, &tag, &e, &el) || tag != 0x30)
            return false;
        if (!tls_der_next(&e, &el, &tag, &oid, &oidl) || tag != 0x06)
            return false;
        if (oidl != sizeof san_oid || memcmp(oid, san_oid, oidl))
            continue;
        /* critical BOOLEAN (optional), then the OCTET STRING */
        do {
            if (!tls_der_next(&e, &el, &tag, &v, &vl))
                return false;
        } while (tag == 0x01);
        if (tag != 0x04)
            return false;
        const unsigned char *g = v, *gv;
        size_t gl = vl, gvl;
        if (!tls_der_next(&g, &gl, &tag, &gv, &gvl) || tag != 0x30)
            return false;
        g = gv, gl = gvl;
        while (gl) {
            if (!tls_der_next(&g, &gl, &tag, &gv, &gvl))
                return false;
            if (tag != 0x87 || (gvl != 4 && gvl != 16))
                continue; /* [7] iPAddress */
            if (gvl == w->ip_len && !memcmp(gv, w->ip, gvl))
                found = true;
            char text[INET6_ADDRSTRLEN];
            size_t used = strlen(w->ip_names);
            if (inet_ntop(gvl == 4 ? AF_INET : AF_INET6, gv, text, sizeof text) &&
                used + strlen(text) + 3 < sizeof w->ip_names)
                snprintf(w->ip_names + used, sizeof w->ip_names - used, "%s%s",
                         used ? ", " : "", text);
        }
    }
    return found;
}

static void tls_x509_drop_leaf(struct tls_x509 *w)
{
    mem_free(w->leaf);
    w->leaf = NULL;
    w->leaf_len = w->leaf_cap = 0;
    w->leaf_lost = false;
}

static struct tls_x509 *tls_x509_of(const br_x509_class *const *ctx)
{
    return (struct tls_x509 *)(uintptr_t)ctx;
}

static void tls_x509_start_chain(const br_x509_class **ctx, const char *server_name)
{
    struct tls_x509 *w = tls_x509_of(ctx);
    (void)server_name; /* VERIFY_IP matches the address itself; INSECURE nothing */
    w->n_certs = 0;
    tls_x509_drop_leaf(w);
    if (w->mode == TLS_X509_VERIFY_IP)
        w->inner->vtable->start_chain(&w->inner->vtable, NULL);
}

static void tls_x509_start_cert(const br_x509_class **ctx, uint32_t length)
{
    struct tls_x509 *w = tls_x509_of(ctx);
    if (w->mode == TLS_X509_INSECURE) {
        if (w->n_certs == 0)
            br_x509_decoder_init(&w->dec, NULL, NULL);
        return;
    }
    w->inner->vtable->start_cert(&w->inner->vtable, length);
    if (w->n_certs == 0) {
        if (length <= TLS_LEAF_MAX)
            w->leaf = mem_alloc(length ? length : 1);
        w->leaf_cap = w->leaf ? length : 0;
        w->leaf_lost = !w->leaf;
    }
}

static void tls_x509_append(const br_x509_class **ctx, const unsigned char *buf, size_t len)
{
    struct tls_x509 *w = tls_x509_of(ctx);
    if (w->mode == TLS_X509_INSECURE) {
        if (w->n_certs == 0)
            br_x509_decoder_push(&w->dec, buf, len);
        return;
    }
    w->inner->vtable->append(&w->inner->vtable, buf, len);
    if (w->n_certs == 0 && w->leaf) {
        if (len <= w->leaf_cap - w->leaf_len) {
            memcpy(w->leaf + w->leaf_len, buf, len);
            w->leaf_len += len;
        } else {
            w->leaf_lost = true;
        }
    }
}

static void tls_x509_end_cert(const br_x509_class **ctx)
{
    struct tls_x509 *w = tls_x509_of(ctx);
    if (w->mode == TLS_X509_VERIFY_IP)
        w->inner->vtable->end_cert(&w->inner->vtable);
    w->n_certs++;
}

static unsigned tls_x509_end_chain(const br_x509_class **ctx)
{
    struct tls_x509 *w = tls_x509_of(ctx);
    if (w->mode == TLS_X509_INSECURE) {
        if (w->n_certs == 0)
            return BR_ERR_X509_EMPTY_CHAIN;
        return (unsigned)br_x509_decoder_last_error(&w->dec);
    }
    unsigned r = w->inner->vtable->end_chain(&w->inner->vtable);
    if (r == 0 && (w->leaf_lost || !w->leaf))
        r = BR_ERR_X509_LIMIT_EXCEEDED;
    else if (r == 0 && !tls_leaf_has_ip(w))
        r = BR_ERR_X509_BAD_SERVER_NAME;
    tls_x509_drop_leaf(w);
    return r;
}

static const br_x509_pkey *tls_x509_get_pkey(const br_x509_class *const *ctx, unsigned *usages)
{
    struct tls_x509 *w = tls_x509_of(ctx);
    if (w->mode == TLS_X509_VERIFY_IP)
        return w->inner->vtable->get_pkey(&w->inner->vtable, usages);
    if (usages)
        *usages = BR_KEYTYPE_KEYX | BR_KEYTYPE_SIGN;
    return br_x509_decoder_get_pkey(&w->dec);
}

static const br_x509_class tls_x509_vtable = {
    sizeof(struct tls_x509), tls_x509_start_chain, tls_x509_start_cert, tls_x509_append,
    tls_x509_end_cert,       tls_x509_end_chain,   tls_x509_get_pkey,
};

/* ---- connections ---- */

/* x509_minimal checks validity dates against this; BearSSL counts days
 * from year 0. */
static void tls_xc_set_time(br_x509_minimal_context *xc)
{
    time_t now = time(NULL);
    if (now < 0)
        now = 0;
    br_x509_minimal_set_time(xc, TLS_DAYS_TO_EPOCH + (uint32_t)(now / 86400),
                             (uint32_t)(now % 86400));
}

static void tls_conn_names(struct tls_conn *c, const unsigned char *oid, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        c->tc_names[i].oid = oid;
        c->tc_names[i].buf = c->tc_name_buf[i];
        c->tc_names[i].len = TLS_NAME_LEN;
    }
    br_x509_minimal_set_name_elements(&c->tc_xc, c->tc_names, n);
}

/* What client and server share: TLS 1.2 only, no renegotiation, ALPN
 * without failing on a mismatch (a peer without ALPN still gets a
 * connection; the owner sees tls_conn_alpn() == NULL), the I/O buffer. */
static void tls_engine_common(struct tls_conn *c)
{
    br_ssl_engine_context *eng = c->tc_eng;
    br_ssl_engine_set_versions(eng, BR_TLS12, BR_TLS12);
    br_ssl_engine_add_flags(eng, BR_OPT_NO_RENEGOTIATION);
    br_ssl_engine_remove_flags(eng, BR_OPT_FAIL_ON_ALPN_MISMATCH | BR_OPT_TOLERATE_NO_CLIENT_AUTH);
    br_ssl_engine_set_protocol_names(eng, tls_alpn, sizeof tls_alpn / sizeof *tls_alpn);
    br_ssl_engine_set_buffer(eng, c->tc_iobuf, sizeof c->tc_iobuf, 1);
}

/* A server name that is an IP literal is no SNI (RFC 6066 forbids it; Go
 * sends none) and is matched against iPAddress SANs by tls_x509.  An empty
 * or NULL name sends no SNI and, as BearSSL documents, matches no name: the
 * chain is still verified. */
static void tls_conn_setup_client(struct tls_conn *c, const char *server_name)
{
    struct tls_ctx *x = c->tc_ctx;
    br_ssl_client_context *cc = &c->tc_ssl.cli;
    br_ssl_client_init_full(cc, &c->tc_xc, x->tx_tas, x->tx_n_tas);
    c->tc_eng = &cc->eng;
    tls_xc_set_time(&c->tc_xc);
    snprintf(c->tc_server_name, sizeof c->tc_server_name, "%s", server_name ? server_name : "");
    struct tls_x509 *w = &c->tc_wrap;
    bool ip = false;
    if (inet_pton(AF_INET, c->tc_server_name, w->ip) == 1) {
        w->ip_len = 4;
        ip = true;
    } else if (inet_pton(AF_INET6, c->tc_server_name, w->ip) == 1) {
        w->ip_len = 16;
        ip = true;
    }
    if (x->tx_insecure || ip) {
        w->vtable = &tls_x509_vtable;
        w->mode = x->tx_insecure ? TLS_X509_INSECURE : TLS_X509_VERIFY_IP;
        w->inner = &c->tc_xc;
        br_ssl_engine_set_x509(c->tc_eng, &w->vtable);
    } else {
        tls_conn_names(c, tls_oid_dns, TLS_NAMES);
    }
    if (x->tx_key.tk_type == BR_KEYTYPE_RSA)
        br_ssl_client_set_single_rsa(cc, x->tx_chain, x->tx_chain_len, &x->tx_key.tk_rsa,
                                     br_rsa_pkcs1_sign_get_default());
    else if (x->tx_key.tk_type == BR_KEYTYPE_EC)
        br_ssl_client_set_single_ec(cc, x->tx_chain, x->tx_chain_len, &x->tx_key.tk_ec,
                                    BR_KEYTYPE_SIGN, x->tx_issuer_key_type, br_ec_get_default(),
                                    br_ecdsa_sign_asn1_get_default());
    tls_engine_common(c);
    br_ssl_client_reset(cc, c->tc_server_name[0] && !ip ? c->tc_server_name : NULL, 0);
}

static void tls_conn_setup_server(struct tls_conn *c)
{
    struct tls_ctx *x = c->tc_ctx;
    br_ssl_server_context *sc = &c->tc_ssl.srv;
    if (x->tx_key.tk_type == BR_KEYTYPE_RSA)
        br_ssl_server_init_full_rsa(sc, x->tx_chain, x->tx_chain_len, &x->tx_key.tk_rsa);
    else
        br_ssl_server_init_full_ec(sc, x->tx_chain, x->tx_chain_len, x->tx_issuer_key_type,
                                   &x->tx_key.tk_ec);
    c->tc_eng = &sc->eng;
    br_ssl_engine_add_flags(c->tc_eng, BR_OPT_ENFORCE_SERVER_PREFERENCES);
    if (x->tx_client_auth) {
        /* Without BR_OPT_TOLERATE_NO_CLIENT_AUTH a client that sends no
         * certificate, or one that does not verify, fails the handshake. */
        br_x509_minimal_init_full(&c->tc_xc, x->tx_tas, x->tx_n_tas);
        tls_xc_set_time(&c->tc_xc);
        tls_conn_names(c, tls_oid_cn, 1);
        br_ssl_engine_set_x509(c->tc_eng, &c->tc_xc.vtable);
        br_ssl_server_set_trust_anchor_names_alt(sc, x->tx_tas, x->tx_n_tas);
        /* for the client's CertificateVerify */
        br_ssl_engine_set_default_rsavrfy(c->tc_eng);
        br_ssl_engine_set_default_ecdsa(c->tc_eng);
    }
    tls_engine_common(c);
    br_ssl_server_reset(sc);
}

struct tls_conn *tls_conn_new(struct tls_ctx *ctx, const char *server_name)
{
    struct tls_conn *c = mem_calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->tc_ctx = ctx;
    if (ctx->tx_server)
        tls_conn_setup_server(c);
    else
        tls_conn_setup_client(c, server_name);
    tls_conn_sync(c); /* a reset without entropy has already failed */
    return c;
}

void tls_conn_free(struct tls_conn *c)
{
    if (!c)
        return;
    tls_x509_drop_leaf(&c->tc_wrap);
    explicit_bzero(c, sizeof *c); /* session keys */
    mem_free(c);
}

/* ---- the pipe ---- */

/* After every call that may move the engine: note the end of the
 * handshake, and word a failure once. */
static void tls_conn_sync(struct tls_conn *c)
{
    unsigned st = br_ssl_engine_current_state(c->tc_eng);
    if (st & (BR_SSL_SENDAPP | BR_SSL_RECVAPP))
        c->tc_ready = true;
    int e = br_ssl_engine_last_error(c->tc_eng);
    if (e != BR_ERR_OK && !c->tc_err[0])
        tls_conn_fail(c, e);
}

/* BearSSL closes a failed engine without a word to the peer.  Go sends a
 * fatal alert, and etcd users read it ("remote error: tls: bad
 * certificate" when the server refuses a client certificate), so one is
 * sent here while that is still possible without the engine: during the
 * handshake, before our ChangeCipherSpec (the alert then goes in clear), and
 * with the engine's output sent up to a record boundary. */
static void tls_conn_fail(struct tls_conn *c, int e)
{
    tls_conn_describe(c, e);
    if (c->tc_ready || c->tc_out_partial || e >= BR_ERR_RECV_FATAL_ALERT ||
        c->tc_eng->out.vtable != &br_sslrec_out_clear_vtable)
        return;
    unsigned char desc = 40; /* handshake_failure */
    if ((e >= BR_ERR_X509_OK && e <= BR_ERR_X509_NOT_TRUSTED) || e == BR_ERR_NO_CLIENT_AUTH)
        desc = 42; /* bad_certificate, as Go sends for both */
    else if (e == BR_ERR_UNSUPPORTED_VERSION)
        desc = 70; /* protocol_version */
    else if (e == BR_ERR_BAD_MAC)
        desc = 20; /* bad_record_mac */
    uint16_t v = c->tc_eng->version_out ? c->tc_eng->version_out : BR_TLS12;
    unsigned char *a = c->tc_alert;
    a[0] = 21; /* alert record */
    a[1] = (unsigned char)(v >> 8);
    a[2] = (unsigned char)v;
    a[3] = 0;
    a[4] = 2;
    a[5] = 2; /* fatal */
    a[6] = desc;
    c->tc_alert_len = 7;
}

uint8_t *tls_conn_recv_buf(struct tls_conn *c, size_t *cap)
{
    return br_ssl_engine_recvrec_buf(c->tc_eng, cap);
}

void tls_conn_recv_done(struct tls_conn *c, size_t n)
{
    if (n)
        br_ssl_engine_recvrec_ack(c->tc_eng, n);
    tls_conn_sync(c);
}

const uint8_t *tls_conn_send_buf(struct tls_conn *c, size_t *len)
{
    if (c->tc_alert_off < c->tc_alert_len) {
        *len = c->tc_alert_len - c->tc_alert_off;
        return c->tc_alert + c->tc_alert_off;
    }
    return br_ssl_engine_sendrec_buf(c->tc_eng, len);
}

void tls_conn_send_done(struct tls_conn *c, size_t n)
{
    if (c->tc_alert_off < c->tc_alert_len) {
        size_t left = c->tc_alert_len - c->tc_alert_off;
        c->tc_alert_off += n < left ? n : left;
        return;
    }
    if (n) {
        br_ssl_engine_sendrec_ack(c->tc_eng, n);
        size_t left;
        c->tc_out_partial = br_ssl_engine_sendrec_buf(c->tc_eng, &left) != NULL;
    }
    tls_conn_sync(c);
}

size_t tls_conn_write(struct tls_conn *c, const uint8_t *p, size_t n)
{
    size_t room;
    unsigned char *buf = br_ssl_engine_sendapp_buf(c->tc_eng, &room);
    if (!buf || !n)
        return 0;
    size_t k = n < room ? n : room;
    memcpy(buf, p, k);
    br_ssl_engine_sendapp_ack(c->tc_eng, k); /* a full buffer seals a record itself */
    tls_conn_sync(c);
    return k;
}

void tls_conn_flush(struct tls_conn *c)
{
    br_ssl_engine_flush(c->tc_eng, 0);
    tls_conn_sync(c);
}

size_t tls_conn_read(struct tls_conn *c, uint8_t *p, size_t n)
{
    size_t avail;
    unsigned char *buf = br_ssl_engine_recvapp_buf(c->tc_eng, &avail);
    if (!buf || !n)
        return 0;
    size_t k = n < avail ? n : avail;
    memcpy(p, buf, k);
    br_ssl_engine_recvapp_ack(c->tc_eng, k);
    tls_conn_sync(c);
    return k;
}

bool tls_conn_readable(const struct tls_conn *c)
{
    return (br_ssl_engine_current_state(c->tc_eng) & BR_SSL_RECVAPP) != 0;
}

bool tls_conn_ready(const struct tls_conn *c)
{
    return c->tc_ready;
}

bool tls_conn_closed(const struct tls_conn *c)
{
    return br_ssl_engine_current_state(c->tc_eng) == BR_SSL_CLOSED &&
           c->tc_alert_off == c->tc_alert_len;
}

const char *tls_conn_error(const struct tls_conn *c)
{
    return c->tc_err[0] ? c->tc_err : NULL;
}

const char *tls_conn_alpn(const struct tls_conn *c)
{
    return br_ssl_engine_get_selected_protocol(c->tc_eng);
}

const char *tls_conn_peer_cn(const struct tls_conn *c)
{
    if (!c->tc_ctx->tx_server || !c->tc_ctx->tx_client_auth || !c->tc_ready ||
        c->tc_names[0].status != 1)
        return NULL;
    return c->tc_name_buf[0];
}

void tls_conn_close(struct tls_conn *c)
{
    br_ssl_engine_close(c->tc_eng);
    tls_conn_sync(c);
}

/* ---- error text ---- */

/* BearSSL's codes in the words of Go's crypto/tls and crypto/x509 where Go
 * has them; codes not listed become "tls: error N". */
#define TLS_ERRORS(X)                                                                          \
    X(BR_ERR_BAD_PARAM, "tls: bad parameter")                                                  \
    X(BR_ERR_BAD_STATE, "tls: bad state")                                                      \
    X(BR_ERR_UNSUPPORTED_VERSION, "tls: unsupported protocol version")         \
    X(BR_ERR_BAD_VERSION, "tls: received record with version mismatch")                       \
    X(BR_ERR_BAD_LENGTH, "tls: bad record length")                                             \
    X(BR_ERR_TOO_LARGE, "tls: oversized record received")                                      \
    X(BR_ERR_BAD_MAC, "tls: bad record MAC")                                                   \
    X(BR_ERR_NO_RANDOM, "tls: no source of randomness")                                        \
    X(BR_ERR_UNKNOWN_TYPE, "tls: unknown record type")                                         \
    X(BR_ERR_UNEXPECTED, "tls: unexpected message")                                            \
    X(BR_ERR_BAD_CCS, "tls: bad ChangeCipherSpec")                                             \
    X(BR_ERR_BAD_ALERT, "tls: bad alert")                                                      \
    X(BR_ERR_BAD_HANDSHAKE, "tls: bad handshake message")                                      \
    X(BR_ERR_OVERSIZED_ID, "tls: oversized session id")                                        \
    X(BR_ERR_BAD_CIPHER_SUITE, "tls: no cipher suite supported by both client and server")     \
    X(BR_ERR_BAD_COMPRESSION, "tls: unsupported compression method")                           \
    X(BR_ERR_BAD_FRAGLEN, "tls: bad max fragment length")                                      \
    X(BR_ERR_BAD_SECRENEG, "tls: secure renegotiation failed")                                 \
    X(BR_ERR_EXTRA_EXTENSION, "tls: unexpected extension")                                     \
    X(BR_ERR_BAD_SNI, "tls: invalid server name")                                              \
    X(BR_ERR_BAD_HELLO_DONE, "tls: bad ServerHelloDone")                                       \
    X(BR_ERR_LIMIT_EXCEEDED, "tls: handshake limit exceeded")                                  \
    X(BR_ERR_BAD_FINISHED, "tls: bad Finished message")                                        \
    X(BR_ERR_RESUME_MISMATCH, "tls: session resumption mismatch")                              \
    X(BR_ERR_INVALID_ALGORITHM, "tls: unsupported signature algorithm")                        \
    X(BR_ERR_BAD_SIGNATURE, "tls: invalid signature")                                          \
    X(BR_ERR_WRONG_KEY_USAGE, "tls: certificate key usage does not allow the cipher suite")    \
    X(BR_ERR_NO_CLIENT_AUTH, "tls: client didn't provide a certificate")                       \
    X(BR_ERR_IO, "tls: I/O error")                                                             \
    X(BR_ERR_X509_INVALID_VALUE, "x509: invalid value in certificate")                         \
    X(BR_ERR_X509_TRUNCATED, "x509: truncated certificate")                                    \
    X(BR_ERR_X509_EMPTY_CHAIN, "x509: empty certificate chain")                                \
    X(BR_ERR_X509_INNER_TRUNC, "x509: malformed certificate (inner truncation)")               \
    X(BR_ERR_X509_BAD_TAG_CLASS, "x509: malformed certificate (tag class)")                    \
    X(BR_ERR_X509_BAD_TAG_VALUE, "x509: malformed certificate (tag value)")                    \
    X(BR_ERR_X509_INDEFINITE_LENGTH, "x509: malformed certificate (indefinite length)")        \
    X(BR_ERR_X509_EXTRA_ELEMENT, "x509: malformed certificate (extra element)")                \
    X(BR_ERR_X509_UNEXPECTED, "x509: malformed certificate (unexpected element)")              \
    X(BR_ERR_X509_NOT_CONSTRUCTED, "x509: malformed certificate (not constructed)")            \
    X(BR_ERR_X509_NOT_PRIMITIVE, "x509: malformed certificate (not primitive)")                \
    X(BR_ERR_X509_PARTIAL_BYTE, "x509: malformed certificate (partial byte)")                  \
    X(BR_ERR_X509_BAD_BOOLEAN, "x509: malformed certificate (boolean)")                        \
    X(BR_ERR_X509_OVERFLOW, "x509: malformed certificate (overflow)")                          \
    X(BR_ERR_X509_BAD_DN, "x509: malformed distinguished name")                                \
    X(BR_ERR_X509_BAD_TIME, "x509: malformed validity time")                                   \
    X(BR_ERR_X509_UNSUPPORTED, "x509: unsupported certificate feature")                        \
    X(BR_ERR_X509_LIMIT_EXCEEDED, "x509: certificate too large")                               \
    X(BR_ERR_X509_WRONG_KEY_TYPE, "x509: wrong public key type")                               \
    X(BR_ERR_X509_BAD_SIGNATURE, "x509: invalid signature")                                    \
    X(BR_ERR_X509_TIME_UNKNOWN, "x509: current time unknown")                                  \
    X(BR_ERR_X509_EXPIRED, "x509: certificate has expired or is not yet valid")                \
    X(BR_ERR_X509_DN_MISMATCH, "x509: issuer name does not match")                             \
    X(BR_ERR_X509_BAD_SERVER_NAME, "x509: certificate is valid for other names")               \
    X(BR_ERR_X509_CRITICAL_EXTENSION, "x509: unhandled critical extension")                    \
    X(BR_ERR_X509_NOT_CA, "x509: certificate is not authorized to sign other certificates")    \
    X(BR_ERR_X509_FORBIDDEN_KEY_USAGE, "x509: certificate specifies an incompatible key usage") \
    X(BR_ERR_X509_WEAK_PUBLIC_KEY, "x509: public key too weak")                                \
    X(BR_ERR_X509_NOT_TRUSTED, "x509: certificate signed by unknown authority")

/* TLS alert descriptions, Go's wording. */
#define TLS_ALERTS(X)                                                                          \
    X(0, "close notify")                                                                       \
    X(10, "unexpected message")                                                                \
    X(20, "bad record MAC")                                                                    \
    X(21, "decryption failed")                                                                 \
    X(22, "record overflow")                                                                   \
    X(30, "decompression failure")                                                             \
    X(40, "handshake failure")                                                                 \
    X(42, "bad certificate")                                                                   \
    X(43, "unsupported certificate")                                                           \
    X(44, "revoked certificate")                                                               \
    X(45, "expired certificate")                                                               \
    X(46, "unknown certificate")                                                               \
    X(47, "illegal parameter")                                                                 \
    X(48, "unknown certificate authority")                                                     \
    X(49, "access denied")                                                                     \
    X(50, "error decoding message")                                                            \
    X(51, "error decrypting message")                                                          \
    X(70, "protocol version not supported")                                                    \
    X(71, "insufficient security level")                                                       \
    X(80, "internal error")                                                                    \
    X(86, "inappropriate fallback")                                                            \
    X(90, "user canceled")                                                                     \
    X(100, "no renegotiation")                                                                 \
    X(109, "missing extension")                                                                \
    X(110, "unsupported extension")                                                            \
    X(112, "unrecognized name")                                                                \
    X(116, "certificate required")                                                             \
    X(120, "no application protocol")

static const char *tls_error_text(int e)
{
    switch (e) {
#define TLS_CASE(code, text)                                                                   \
    case code:                                                                                 \
        return text;
        TLS_ERRORS(TLS_CASE)
    default:
        return NULL;
    }
}

static const char *tls_alert_text(int a)
{
    switch (a) {
        TLS_ALERTS(TLS_CASE)
#undef TLS_CASE
    default:
        return NULL;
    }
}

/* The names the server's certificate does hold, for a name mismatch. */
static void tls_conn_cert_names(const struct tls_conn *c, char *out, size_t outlen)
{
    size_t used = 0;
    out[0] = 0;
    if (c->tc_wrap.mode == TLS_X509_VERIFY_IP) {
        snprintf(out, outlen, "%s", c->tc_wrap.ip_names);
        return;
    }
    for (size_t i = 0; i < TLS_NAMES; i++) {
        if (c->tc_names[i].status != 1)
            continue;
        int k = snprintf(out + used, outlen - used, "%s%s", used ? ", " : "", c->tc_name_buf[i]);
        if (k < 0 || (size_t)k >= outlen - used) {
            out[used] = 0;
            break;
        }
        used += (size_t)k;
    }
}

static void tls_conn_describe(struct tls_conn *c, int e)
{
    char *out = c->tc_err;
    size_t outlen = sizeof c->tc_err;
    if (e >= BR_ERR_RECV_FATAL_ALERT) {
        bool sent = e >= BR_ERR_SEND_FATAL_ALERT;
        int a = e - (sent ? BR_ERR_SEND_FATAL_ALERT : BR_ERR_RECV_FATAL_ALERT);
        const char *t = tls_alert_text(a);
        if (t)
            snprintf(out, outlen, "%s error: tls: %s", sent ? "local" : "remote", t);
        else
            snprintf(out, outlen, "%s error: tls: alert(%d)", sent ? "local" : "remote", a);
        return;
    }
    if (e == BR_ERR_X509_BAD_SERVER_NAME && !c->tc_ctx->tx_server) {
        char names[256];
        tls_conn_cert_names(c, names, sizeof names);
        if (names[0])
            snprintf(out, outlen, "x509: certificate is valid for %s, not %s", names,
                     c->tc_server_name);
        else if (c->tc_wrap.mode == TLS_X509_VERIFY_IP)
            snprintf(out, outlen,
                     "x509: cannot validate certificate for %s because it doesn't contain any "
                     "IP SANs",
                     c->tc_server_name);
        else
            snprintf(out, outlen, "x509: certificate is valid for other names, not %s",
                     c->tc_server_name);
        return;
    }
    const char *t = tls_error_text(e);
    char buf[32];
    if (!t) {
        snprintf(buf, sizeof buf, "tls: error %d", e);
        t = buf;
    }
    if (c->tc_ctx->tx_server && e >= BR_ERR_X509_OK && e <= BR_ERR_X509_NOT_TRUSTED)
        snprintf(out, outlen, "tls: failed to verify client certificate: %s", t);
    else
        snprintf(out, outlen, "%s", t);
}
