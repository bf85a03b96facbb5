/* server.h - the running server: its identity, its stores and its client
 * listeners and connections.  server.c owns the sockets: it accepts client
 * connections, tells HTTP/2 from HTTP/1.1 by the preface, and drives h2.c +
 * grpc.c or http.c for each; rpc.c's handlers reach the state through
 * struct server. */
#ifndef ETCD_SERVER_H
#define ETCD_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"
#include "mvcc.h"

#define SERVER_MAX_URLS 16

struct tls_ctx;

struct server_config {
    const char *name;
    const char *data_dir;
    const char *listen_client_urls[SERVER_MAX_URLS];
    size_t n_listen_client_urls;
    const char *advertise_client_urls[SERVER_MAX_URLS];
    size_t n_advertise_client_urls;
    const char *peer_urls[SERVER_MAX_URLS]; /* this member's advertised peer URLs */
    size_t n_peer_urls;
    size_t max_request_bytes;
    int max_txn_ops;
    uint32_t max_concurrent_streams;
    int64_t quota_backend_bytes; /* --quota-backend-bytes (0 -> 2 GiB) */
    int heartbeat_ms;   /* --heartbeat-interval */
    uint64_t watch_progress_ms; /* --experimental-watch-progress-notify-interval */
    int election_ticks; /* --election-timeout / --heartbeat-interval */
    struct tls_ctx *tls; /* for https:// listeners (--cert-file, --key-file, ...); NULL: none */
};

struct server {
    const struct server_config *cfg;
    struct loop *loop;
    struct mvcc *mvcc; /* owned */
    struct lease_table *leases; /* owned */
    struct watch_hub *watch;    /* owned */
    struct lock_hub *lock;      /* owned */
    struct compactor *compactor; /* owned; NULL without auto compaction */
    struct node *node; /* owned; set by the caller after server_init */
    struct server_listener *listeners; /* owned */
    size_t n_listeners;
    struct server_conn *conns; /* owned list of open client connections */
    size_t n_conns;
    uint8_t *scratch; /* owned: where connections' reads land (server.c) */
    bool reads_paused; /* the node is backlogged with writes: no requests are read */
};

/* Creates the stores.  0 or -1 (OOM). */
int server_init(struct server *s, const struct server_config *cfg, struct loop *loop)
    __attribute__((warn_unused_result));

/* Binds every --listen-client-urls address.  0, or -1 with a message in
 * err (cap bytes), e.g. "listen tcp 127.0.0.1:2379: bind: address already in use". */
int server_listen(struct server *s, char *err, size_t cap) __attribute__((warn_unused_result));

/* Whether connections stopped reading because the node was backlogged
 * (node_backlogged), and reading again once it is not. */
bool server_reads_paused(const struct server *s);
void server_resume_reads(struct server *s);

/* Closes listeners and connections, stops the node and frees the stores. */
void server_close(struct server *s);

/* Parses "http://host:port" into host (cap bytes) and port; 0 or -1. */
int server_parse_url(const char *url, char *host, size_t cap, int *port, bool *tls);

#endif
