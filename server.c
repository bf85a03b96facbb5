/* server.c - client listeners and connections (server.h).
 *
 * Owns every client socket and its buffers.  A new connection starts in
 * "sniff" mode: if its first bytes are the HTTP/2 preface it is handed to
 * h2.c + grpc.c, otherwise to http.c (cmux-style, as etcd serves gRPC and
 * HTTP on one port).  On an https:// listener the socket carries TLS
 * (tls.c's pipe) and the sniffing happens on what it decrypts.  Output is
 * written once per loop turn (deferred flush); a connection whose peer does
 * not read stops being read from, and while the node is backlogged with
 * writes no connection is read from.
 */
#include "server.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "compactor.h"
#include "grpc.h"
#include "h2.h"
#include "http.h"
#include "lease.h"
#include "node.h"
#include "rpc.h"
#include "lock.h"
#include "metrics.h"
#include "tls.h"
#include "watch.h"

#define CONN_READ_CHUNK 65536
#define CONN_IOV 1024 /* IOV_MAX on Linux */
#define CONN_EAGER_WRITE (256u * 1024)
#define CONN_OUT_HIGH (4u << 20) /* stop reading while this much output is unsent */
#define GRPC_OVERHEAD (512u * 1024) /* etcd: grpc max recv = max-request-bytes + 512 KiB */

enum conn_mode { CONN_SNIFF, CONN_H2, CONN_HTTP };

struct server_listener {
    int fd;
    struct server *srv;
    bool tls; /* https:// */
};

struct server_conn {
    struct server *srv;
    int fd;
    enum conn_mode mode;
    struct mem_buf in;       /* received, not yet consumed; owned */
    struct mem_buf http_out; /* HTTP/1.1 responses not yet written; owned */
    struct h2_conn *h2;      /* owned, H2 mode */
    struct grpc_conn *gc;    /* owned, H2 mode */
    struct tls_conn *tls;    /* owned, on an https:// listener: what the socket carries */
    bool flush_pending;      /* a deferred flush is scheduled */
    bool reading;            /* EPOLLIN is on */
    bool writing;            /* EPOLLOUT is on */
    bool close_after_write;
    bool dead;               /* closed; freed by the deferred flush */
    struct server_conn *prev, *next;
};

static void conn_close(struct server_conn *c);
static void conn_flush(struct server_conn *c);
static ssize_t conn_write(struct server_conn *c);

/* ---- URLs ---- */

int server_parse_url(const char *url, char *host, size_t cap, int *port, bool *tls)
{
    const char *p;
    if (!strncmp(url, "http://", 7)) {
        p = url + 7;
        *tls = false;
    } else if (!strncmp(url, "https://", 8)) {
        p = url + 8;
        *tls = true;
    } else if (!strncmp(url, "unix://", 7) || !strncmp(url, "unixs://", 8)) {
        return -1;
    } else {
        return -1;
    }
    const char *end = p + strcspn(p, "/?#");
    const char *colon;
    const char *hs = p, *he;
    if (*p == '[') {
        he = memchr(p, ']', (size_t)(end - p));
        if (!he)
            return -1;
        hs = p + 1;
        colon = he + 1 < end && he[1] == ':' ? he + 1 : NULL;
    } else {
        colon = memchr(p, ':', (size_t)(end - p));
        he = colon ? colon : end;
    }
    if (!colon)
        return -1; /* etcd requires an explicit port */
    char *pe;
    long pt = strtol(colon + 1, &pe, 10);
    if (pe != end || pt < 0 || pt > 65535 || colon + 1 == end)
        return -1;
    size_t hl = (size_t)(he - hs);
    if (hl >= cap)
        return -1;
    memcpy(host, hs, hl);
    host[hl] = 0;
    *port = (int)pt;
    return 0;
}

/* ---- lifecycle ---- */

/* Response headers of watch streams: asked at each response, since the
 * term moves. */
static void watch_ident(void *ctx, struct api_header *h)
{
    struct server *s = ctx;
    if (!s->node)
        return;
    h->cluster_id = node_cluster_id(s->node);
    h->member_id = node_member_id(s->node);
    h->raft_term = node_term(s->node);
}

int server_init(struct server *s, const struct server_config *cfg, struct loop *loop)
{
    memset(s, 0, sizeof *s);
    s->cfg = cfg;
    s->loop = loop;
    s->mvcc = mvcc_new();
    if (!s->mvcc)
        return -1;
    struct lease_config lc = {
        .lc_min_ttl = lease_min_ttl(cfg->election_ticks, cfg->heartbeat_ms),
    };
    if (getrandom(lc.lc_seed, sizeof lc.lc_seed, 0) < 0)
        memset(lc.lc_seed, 0x5a, sizeof lc.lc_seed);
    s->leases = lease_new(&lc);
    if (!s->leases) {
        mvcc_free(s->mvcc);
        return -1;
    }
    mvcc_set_lease_check(s->mvcc, rpc_lease_exists, s);
    struct watch_config wc = {
        .max_resp_bytes = cfg->max_request_bytes + GRPC_OVERHEAD,
        .progress_ms = cfg->watch_progress_ms,
        /* a stream this far behind is caught up from history in batches of
         * many events per response, like etcd's unsynced watchers */
        .queue_max = 64 * 1024,
        .ident = watch_ident,
        .ident_ctx = s,
    };
    s->watch = watch_hub_new(loop, s->mvcc, &wc);
    if (!s->watch) {
        lease_free(s->leases);
        mvcc_free(s->mvcc);
        return -1;
    }
    s->lock = lock_hub_new(s);
    if (!s->lock) {
        watch_hub_free(s->watch);
        lease_free(s->leases);
        mvcc_free(s->mvcc);
        return -1;
    }
    return 0;
}

void server_close(struct server *s)
{
    while (s->conns) {
        struct server_conn *c = s->conns;
        conn_close(c);
        /* not inside the loop any more: free now */
        s->conns = c->next;
        mem_free(c);
    }
    for (size_t i = 0; i < s->n_listeners; i++) {
        loop_del_fd(s->loop, s->listeners[i].fd);
        close(s->listeners[i].fd);
    }
    mem_free(s->listeners);
    s->listeners = NULL;
    mem_free(s->scratch);
    s->scratch = NULL;
    s->n_listeners = 0;
    watch_hub_free(s->watch);
    s->watch = NULL;
    node_stop(s->node); /* completes the lock service's pending proposals */
    s->node = NULL;
    lock_hub_free(s->lock);
    s->lock = NULL;
    compactor_free(s->compactor); /* after node_stop: it answers its proposal */
    s->compactor = NULL;
    mvcc_free(s->mvcc);
    s->mvcc = NULL;
    lease_free(s->leases);
    s->leases = NULL;
}

/* ---- connections ---- */

static void conn_set_events(struct server_conn *c, bool rd, bool wr)
{
    if (c->dead || (rd == c->reading && wr == c->writing))
        return;
    c->reading = rd;
    c->writing = wr;
    loop_mod_fd(c->srv->loop, c->fd, (rd ? EPOLLIN : 0) | (wr ? EPOLLOUT : 0));
}

static void conn_unlink_free(struct server_conn *c)
{
    struct server *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->n_conns--;
    mem_free(c);
}

static void deferred_flush(struct loop *l, void *arg)
{
    (void)l;
    struct server_conn *c = arg;
    c->flush_pending = false;
    if (c->dead) {
        conn_unlink_free(c);
        return;
    }
    conn_flush(c);
}

static void conn_schedule_flush(struct server_conn *c)
{
    if (c->flush_pending)
        return;
    if (loop_defer(c->srv->loop, deferred_flush, c) < 0) {
        conn_flush(c); /* no memory to defer: write now */
        return;
    }
    c->flush_pending = true;
}

/* Output made outside of the connection's own events (watch events, late
 * replies) goes out at the end of the turn, all of it in one write; but a
 * connection that gets a lot in one turn (thousands of watchers times
 * several writes) writes it as it comes, so its buffer stays small and
 * warm instead of holding the turn's output while its streams queue
 * behind h2's cap on unsent output.  A write error is left to the
 * deferred flush. */
static void grpc_wake(void *owner)
{
    struct server_conn *c = owner;
    conn_schedule_flush(c);
    if (c->mode == CONN_H2 && h2_conn_unsent(c->h2) >= CONN_EAGER_WRITE)
        (void)conn_write(c);
}

/* Releases everything but the struct itself, which is freed by the pending
 * deferred flush (callbacks later in this turn may still hold it). */
static void conn_close(struct server_conn *c)
{
    if (c->dead)
        return;
    c->dead = true;
    loop_del_fd(c->srv->loop, c->fd);
    close(c->fd);
    grpc_conn_free(c->gc);
    c->gc = NULL;
    h2_conn_free(c->h2);
    c->h2 = NULL;
    tls_conn_free(c->tls);
    c->tls = NULL;
    mem_buf_free(&c->in);
    mem_buf_free(&c->http_out);
    if (!c->flush_pending && loop_defer(c->srv->loop, deferred_flush, c) == 0)
        c->flush_pending = true;
    /* if even that failed the struct leaks rather than dangling */
}

/* Writes as much pending output as the socket takes: one sendmsg per
 * CONN_IOV stretches of it (h2 output references shared event bytes).
 * Returns the bytes left pending, or -1 on a write error.  Closes nothing:
 * callers may be inside the connection's handlers. */
static ssize_t conn_write_tls(struct server_conn *c);

/* The connection's pending plaintext as up to CONN_IOV pieces; how many. */
static size_t conn_outputv(struct server_conn *c, struct iovec *iov)
{
    if (c->mode == CONN_H2)
        return h2_conn_outputv(c->h2, iov, CONN_IOV);
    iov[0] = (struct iovec){c->http_out.data, c->http_out.len};
    return c->http_out.len > 0;
}

/* n bytes of it are written (or sealed). */
static void conn_output_done(struct server_conn *c, size_t n)
{
    if (c->mode == CONN_H2)
        h2_conn_output_done(c->h2, n);
    else
        mem_buf_consume(&c->http_out, n);
}

static ssize_t conn_write(struct server_conn *c)
{
    if (c->tls)
        return conn_write_tls(c);
    for (;;) {
        struct iovec iov[CONN_IOV];
        size_t k = conn_outputv(c, iov), n = 0;
        if (k == 0)
            break;
        for (size_t i = 0; i < k; i++)
            n += iov[i].iov_len;
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = k};
        ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return -1;
        }
        conn_output_done(c, (size_t)w);
        if ((size_t)w < n) /* the socket is full */
            break;
    }
    return (ssize_t)(c->mode == CONN_H2 ? h2_conn_unsent(c->h2) : c->http_out.len);
}

/* conn_write through TLS: plaintext is sealed into the engine as far as it
 * takes it, and its records (and the handshake's) go to the socket.  The
 * pending count includes sealed bytes the socket has not taken. */
static ssize_t conn_write_tls(struct server_conn *c)
{
    for (;;) {
        bool moved = false;
        struct iovec iov[CONN_IOV];
        size_t k = conn_outputv(c, iov), taken = 0;
        for (size_t i = 0; i < k; i++) {
            size_t t = tls_conn_write(c->tls, iov[i].iov_base, iov[i].iov_len);
            taken += t;
            if (t < iov[i].iov_len)
                break;
        }
        if (taken) {
            conn_output_done(c, taken);
            tls_conn_flush(c->tls);
            moved = true;
        }
        size_t len;
        const uint8_t *out = tls_conn_send_buf(c->tls, &len);
        if (len) {
            ssize_t w = send(c->fd, out, len, MSG_NOSIGNAL);
            if (w < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
                return -1;
            if (w > 0) {
                tls_conn_send_done(c->tls, (size_t)w);
                moved = true;
            }
            if (w < (ssize_t)len)
                break; /* the socket is full */
        }
        if (!moved)
            break;
    }
    size_t sealed;
    (void)tls_conn_send_buf(c->tls, &sealed);
    return (ssize_t)((c->mode == CONN_H2 ? h2_conn_unsent(c->h2) : c->http_out.len) + sealed);
}

/* Writes pending output; what the socket does not take waits for EPOLLOUT. */
static void conn_flush(struct server_conn *c)
{
    ssize_t pending = conn_write(c);
    if (pending >= 0 && c->tls && tls_conn_closed(c->tls))
        pending = -1; /* a failed handshake, once its alert is out */
    if (pending < 0) {
        conn_close(c);
        return;
    }
    if (!pending && c->close_after_write) {
        conn_close(c);
        return;
    }
    conn_set_events(c, (size_t)pending < CONN_OUT_HIGH && !c->close_after_write && !c->srv->reads_paused,
                    pending > 0);
}

bool server_reads_paused(const struct server *s)
{
    return s->reads_paused;
}

static void conn_event(struct loop *l, int fd, uint32_t events, void *arg);

/* Reading turns back on at each connection's flush; bytes a TLS engine
 * decrypted meanwhile are read now, as no socket event will come for them.
 * Runs as deferred work: the node's callbacks, which resume reads, must not
 * see requests arrive under them. */
static void resume_reads(struct loop *l, void *arg)
{
    struct server *s = arg;
    for (struct server_conn *c = s->conns; c; c = c->next) {
        if (c->dead)
            continue;
        if (c->tls && tls_conn_readable(c->tls))
            conn_event(l, c->fd, EPOLLIN, c);
        else
            conn_schedule_flush(c);
    }
}

void server_resume_reads(struct server *s)
{
    s->reads_paused = false;
    if (loop_defer(s->loop, resume_reads, s) < 0)
        for (struct server_conn *c = s->conns; c; c = c->next)
            if (!c->dead)
                conn_schedule_flush(c);
}

static int conn_start_h2(struct server_conn *c)
{
    struct server *s = c->srv;
    struct h2_config hc = {
        .max_concurrent_streams = s->cfg->max_concurrent_streams,
        .max_header_list_size = 64 * 1024,
    };
    c->h2 = h2_conn_new(H2_SERVER, &hc);
    if (!c->h2)
        return -1;
    struct grpc_limits gl = {.max_recv_msg = s->cfg->max_request_bytes + GRPC_OVERHEAD};
    c->gc = grpc_conn_new(c->h2, rpc_methods, &gl, s, grpc_wake, c);
    if (!c->gc)
        return -1;
    c->mode = CONN_H2;
    return 0;
}

static int server_metrics(void *ctx, struct mem_buf *body)
{
    return metrics_render(ctx, body);
}

/* Consumes what it can of in[0..len) and says how much in *used.  -1:
 * close the connection now. */
static int conn_process(struct server_conn *c, const uint8_t *in, size_t len, size_t *used)
{
    size_t off = 0;
    int rc = 0;
    if (c->mode == CONN_SNIFF) {
        size_t n = len < H2_PREFACE_LEN ? len : H2_PREFACE_LEN;
        if (memcmp(in, H2_PREFACE, n))
            c->mode = CONN_HTTP;
        else if (n == H2_PREFACE_LEN) {
            if (conn_start_h2(c) < 0)
                return -1;
        } else {
            *used = 0;
            return 0;
        }
    }
    if (c->mode == CONN_H2) {
        while (off < len) {
            struct h2_event ev;
            int r = h2_conn_feed(c->h2, in + off, len - off, &ev);
            if (r < 0) {
                c->close_after_write = true; /* GOAWAY is queued */
                break;
            }
            if (r == 0)
                break;
            off += (size_t)r;
            if (ev.type != H2_EV_NONE && grpc_conn_event(c->gc, &ev) < 0) {
                h2_conn_goaway(c->h2, H2_INTERNAL_ERROR);
                c->close_after_write = true;
                break;
            }
        }
    } else {
        struct http_limits hl = {.max_body = c->srv->cfg->max_request_bytes,
                                 .metrics = c->srv->node ? server_metrics : NULL,
                                 .metrics_ctx = c->srv};
        while (off < len && !c->close_after_write) {
            bool cl = false;
            int r = http_feed(&hl, in + off, len - off, &c->http_out, &cl);
            if (r < 0) {
                rc = -1;
                break;
            }
            if (r == 0)
                break;
            off += (size_t)r;
            if (cl)
                c->close_after_write = true;
        }
    }
    *used = off;
    return rc;
}

/* Decrypted bytes into p[0..n): what the engine holds, after feeding it
 * what the socket has (from_socket).  Returns the count, 0 for none now
 * (the handshake, or a partial record), -1 to close. */
static ssize_t conn_recv_tls(struct server_conn *c, uint8_t *p, size_t n, bool from_socket)
{
    size_t got = 0;
    for (;;) {
        got += tls_conn_read(c->tls, p + got, n - got);
        if (got == n || !from_socket)
            break;
        size_t room;
        uint8_t *in = tls_conn_recv_buf(c->tls, &room);
        if (!in || !room)
            break;
        ssize_t r = recv(c->fd, in, room, 0);
        if (r == 0)
            return got ? (ssize_t)got : -1;
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return -1;
        }
        tls_conn_recv_done(c->tls, (size_t)r);
    }
    return (ssize_t)got;
}

/* One read from c and what it completes.  Reads land in the server's
 * scratch buffer behind any small unconsumed tail of c->in, which is all a
 * connection keeps between reads (most often nothing): a thousand idle
 * connections hold no read buffers.  Only a tail longer than half the
 * scratch (an HTTP/1.1 body) grows in c->in.  Returns the bytes read, 0
 * when there is nothing to read now, -1 to close. */
static ssize_t conn_read(struct server_conn *c, bool from_socket)
{
    struct server *s = c->srv;
    if (!s->scratch && !(s->scratch = mem_alloc(CONN_READ_CHUNK)))
        return -1;
    bool small = c->in.len <= CONN_READ_CHUNK / 2;
    if (!small && mem_buf_reserve(&c->in, CONN_READ_CHUNK) < 0)
        return -1;
    uint8_t *buf = small ? s->scratch : c->in.data;
    size_t have = c->in.len, cap = small ? CONN_READ_CHUNK : c->in.cap;
    if (small && have)
        memcpy(buf, c->in.data, have);
    ssize_t r;
    if (c->tls) {
        r = conn_recv_tls(c, buf + have, cap - have, from_socket);
        if (r <= 0)
            return r;
    } else {
        do
            r = recv(c->fd, buf + have, cap - have, 0);
        while (r < 0 && errno == EINTR);
        if (r <= 0)
            return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
    }
    size_t used;
    if (conn_process(c, buf, have + (size_t)r, &used) < 0)
        return -1;
    if (!small) {
        c->in.len += (size_t)r;
        mem_buf_consume(&c->in, used);
    } else {
        c->in.len = 0;
        if (used < have + (size_t)r && mem_buf_append(&c->in, buf + used, have + (size_t)r - used) < 0)
            return -1;
    }
    if (!c->in.len)
        mem_buf_free(&c->in);
    return r;
}

static void conn_event(struct loop *l, int fd, uint32_t events, void *arg)
{
    (void)l;
    (void)fd;
    struct server_conn *c = arg;
    struct server *s = c->srv;
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        for (int rounds = 0; rounds < 4 && !c->close_after_write; rounds++) {
            if (!s->reads_paused && s->node && node_backlogged(s->node))
                s->reads_paused = true; /* every connection: its flush turns reading off */
            if (s->reads_paused && !(events & (EPOLLERR | EPOLLHUP)))
                break;
            ssize_t r = conn_read(c, true);
            if (r < 0) {
                conn_close(c);
                return;
            }
            if ((size_t)r < CONN_READ_CHUNK / 2)
                break;
        }
        /* what the TLS engine decrypted and could not hand over stays
         * there: the socket will not say so again */
        while (c->tls && !c->dead && !s->reads_paused && tls_conn_readable(c->tls))
            if (conn_read(c, false) < 0) {
                conn_close(c);
                return;
            }
    }
    if (c->dead)
        return;
    conn_schedule_flush(c);
}

static void accept_event(struct loop *l, int fd, uint32_t events, void *arg)
{
    (void)events;
    struct server_listener *ls = arg;
    struct server *s = ls->srv;
    for (int i = 0; i < 64; i++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0)
            return; /* EAGAIN, or out of fds: the next event retries */
        int one = 1;
        setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct server_conn *c = mem_calloc(1, sizeof *c);
        if (!c) {
            close(cfd);
            continue;
        }
        c->srv = s;
        c->fd = cfd;
        c->reading = true;
        if (ls->tls && !(c->tls = tls_conn_new(s->cfg->tls, NULL))) {
            close(cfd);
            mem_free(c);
            continue;
        }
        if (loop_add_fd(l, cfd, EPOLLIN, conn_event, c) < 0) {
            tls_conn_free(c->tls);
            close(cfd);
            mem_free(c);
            continue;
        }
        c->next = s->conns;
        if (s->conns)
            s->conns->prev = c;
        s->conns = c;
        s->n_conns++;
    }
}

/* ---- listeners ---- */

static int listen_one(struct server *s, const char *url, char *err, size_t cap)
{
    char host[256];
    int port;
    bool tls;
    if (server_parse_url(url, host, sizeof host, &port, &tls) < 0) {
        snprintf(err, cap, "error verifying flags, invalid URL \"%s\": expected http://host:port", url);
        return -1;
    }
    if (tls && !s->cfg->tls) {
        snprintf(err, cap, "TLS key/cert (--cert-file, --key-file) must be provided for client url %s "
                 "with HTTPS scheme", url);
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    int gr = getaddrinfo(host[0] ? host : NULL, portstr, &hints, &res);
    if (gr != 0) {
        snprintf(err, cap, "listen tcp %s:%d: %s", host, port, gai_strerror(gr));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1024) == 0)
            break;
        snprintf(err, cap, "listen tcp %s:%d: bind: %s", host, port, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return -1;
    struct server_listener *nl = mem_realloc(s->listeners, (s->n_listeners + 1) * sizeof *nl);
    if (!nl) {
        close(fd);
        snprintf(err, cap, "out of memory");
        return -1;
    }
    s->listeners = nl;
    /* the loop holds pointers to listeners: register only after the array
     * stops moving (see server_listen) */
    nl[s->n_listeners++] = (struct server_listener){fd, s, tls};
    return 0;
}

int server_listen(struct server *s, char *err, size_t cap)
{
    for (size_t i = 0; i < s->cfg->n_listen_client_urls; i++)
        if (listen_one(s, s->cfg->listen_client_urls[i], err, cap) < 0)
            return -1;
    for (size_t i = 0; i < s->n_listeners; i++)
        if (loop_add_fd(s->loop, s->listeners[i].fd, EPOLLIN, accept_event, &s->listeners[i]) < 0) {
            snprintf(err, cap, "epoll: %s", strerror(errno));
            return -1;
        }
    return 0;
}
