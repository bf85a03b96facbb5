/* tls.h - TLS through BearSSL: PEM certificates and keys, client and server
 * contexts, client-certificate verification, and a byte pipe that sits
 * between a socket and h2/http.
 *
 * Syscall-free like h2.c: the owner moves ciphertext between the socket and
 * the pipe and plaintext between the pipe and its protocol.  A struct
 * tls_ctx holds what is loaded once (trust anchors, certificate chain,
 * private key); each connection gets its own struct tls_conn.
 */
#ifndef ETCD_TLS_H
#define ETCD_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tls_cfg {
    const char *ca_file;       /* PEM trust anchors (client: server CAs; server: client CAs) */
    const char *cert_file;     /* PEM certificate chain, leaf first */
    const char *key_file;      /* PEM private key (RSA or EC; PKCS#1, SEC1 or PKCS#8) */
    bool insecure_skip_verify; /* client: accept any server certificate */
    bool client_cert_auth;     /* server: require a client certificate signed by ca_file */
};

struct tls_ctx;
struct tls_conn;

/* Loads the files named in cfg.  NULL on failure with a reason in err
 * (e.g. "open /x/ca.pem: No such file or directory").  A verifying client
 * without ca_file trusts the system bundle (/etc/ssl/certs/...). */
struct tls_ctx *tls_ctx_client(const struct tls_cfg *cfg, char *err, size_t errlen);
struct tls_ctx *tls_ctx_server(const struct tls_cfg *cfg, char *err, size_t errlen);
void tls_ctx_free(struct tls_ctx *ctx);

/* A connection using ctx (which must outlive it).  Client: server_name is
 * sent as SNI and checked against the certificate unless the context skips
 * verification; an IP literal is not sent, and is matched against the
 * certificate's IP-address SANs; NULL or "" checks no name (the chain is
 * still verified).  ALPN offers (client) or selects (server) "h2" then
 * "http/1.1".  Only TLS 1.2.  NULL on OOM. */
struct tls_conn *tls_conn_new(struct tls_ctx *ctx, const char *server_name);
void tls_conn_free(struct tls_conn *c);

/* Ciphertext read from the socket: room for up to *cap bytes (NULL and
 * *cap = 0 when the engine cannot take any now); then recv_done(n). */
uint8_t *tls_conn_recv_buf(struct tls_conn *c, size_t *cap);
void tls_conn_recv_done(struct tls_conn *c, size_t n);
/* Ciphertext to write to the socket (*len = 0 when none); then send_done(n). */
const uint8_t *tls_conn_send_buf(struct tls_conn *c, size_t *len);
void tls_conn_send_done(struct tls_conn *c, size_t n);

/* Plaintext out: copies up to n bytes, returns how many were taken (0 when
 * the engine is full or the handshake is still running). */
size_t tls_conn_write(struct tls_conn *c, const uint8_t *p, size_t n);
/* Seals a record for what tls_conn_write took. */
void tls_conn_flush(struct tls_conn *c);
/* Plaintext in: copies up to n decrypted bytes, returns how many. */
size_t tls_conn_read(struct tls_conn *c, uint8_t *p, size_t n);
/* Whether decrypted bytes wait to be read (the socket may have nothing
 * more to say about them). */
bool tls_conn_readable(const struct tls_conn *c);

bool tls_conn_ready(const struct tls_conn *c);  /* handshake done */
/* Closed cleanly or by error; after a failure during the handshake, only
 * once the fatal alert for the peer has been taken from send_buf. */
bool tls_conn_closed(const struct tls_conn *c);
/* The failure as text ("x509: certificate signed by unknown authority"...),
 * or NULL when the connection has not failed. */
const char *tls_conn_error(const struct tls_conn *c);
/* Negotiated ALPN protocol or NULL. */
const char *tls_conn_alpn(const struct tls_conn *c);
/* Server with client_cert_auth, after the handshake: the verified client
 * certificate's subject CommonName (etcd's user name for certificate
 * auth); NULL otherwise or when the certificate has none. */
const char *tls_conn_peer_cn(const struct tls_conn *c);
/* Queues close_notify. */
void tls_conn_close(struct tls_conn *c);

#endif
