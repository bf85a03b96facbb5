/* client.c - etcdctl's blocking gRPC client (client.h).
 *
 * Owns the socket, the optional TLS pipe, the h2 connection in its client
 * role and the few streams etcdctl uses at once (one unary call, or one
 * Watch/LeaseKeepAlive stream next to unary calls).  gRPC client framing
 * lives here, not in grpc.c, which is the server side: the 5-byte message
 * prefix, request headers (te: trailers, grpc-timeout, token) and status
 * trailers with percent-decoded grpc-message.  It knows nothing about etcd
 * except the Authenticate call that --user needs.
 */
#include "client.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "h2.h"
#include "tls.h"

#define CLIENT_MAX_STREAMS 4
#define CLIENT_IN_CAP (64u << 10)      /* > one h2 frame (16 KiB + 9) */
#define CLIENT_MAX_MSG (1536u << 20)   /* largest response message we take */
#define CLIENT_BACKOFF_MS 100
#define CLIENT_DIAL (-3) /* one connection attempt failed: retried until the deadline */

struct client_stream {
    struct client *c;
    uint32_t sid;
    bool used;
    bool got_headers; /* response headers seen */
    bool done;        /* trailers, reset or connection loss: status is final */
    int status;
    char msg[512];
    struct mem_buf in; /* received bytes not yet framed into messages */
};

struct client {
    const struct client_opts *o;
    int fd;
    size_t ep;         /* index of the connected endpoint */
    bool connected;
    bool broken;       /* transport failed: the next call reconnects */
    char broken_msg[256];
    bool authed;       /* Authenticate done (or not needed) */
    bool got_frame;    /* the server has sent something on this connection */
    int64_t last_read_ms; /* keepalive: when the server last sent anything */
    int64_t ping_sent_ms; /* keepalive: our unanswered PING, 0 if none */
    struct h2_conn *h2;
    struct tls_ctx *tls_ctx;
    struct tls_conn *tls;
    char authority[320];
    char scheme[8];
    char token[512];
    uint8_t *in;       /* plaintext h2 bytes not yet fed; CLIENT_IN_CAP */
    size_t in_len;
    struct client_stream streams[CLIENT_MAX_STREAMS];
};

static void set_err(struct client_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

int64_t client_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_err(struct client_err *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err->code = code;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
}

const char *client_code_name(int code)
{
    static const char *const names[] = {
        "OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
        "AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
        "Aborted", "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss",
        "Unauthenticated",
    };
    if (code >= 0 && code < (int)(sizeof names / sizeof names[0]))
        return names[code];
    return "Unknown";
}

/* ---- endpoints and sockets ---- */

/* Splits an endpoint into scheme ("" when absent), host and port. */
static void parse_endpoint(const char *ep, char *scheme, size_t scap, char *host, size_t hcap,
                           char *port, size_t pcap)
{
    scheme[0] = host[0] = port[0] = 0;
    const char *p = strstr(ep, "://");
    if (p) {
        snprintf(scheme, scap, "%.*s", (int)(p - ep), ep);
        ep = p + 3;
    }
    if (!strcmp(scheme, "unix") || !strcmp(scheme, "unixs")) {
        snprintf(host, hcap, "%s", ep);
        return;
    }
    size_t hl = strcspn(ep, "/");
    const char *colon = NULL;
    if (ep[0] == '[') { /* [v6]:port */
        const char *rb = memchr(ep, ']', hl);
        if (rb) {
            snprintf(host, hcap, "%.*s", (int)(rb - ep - 1), ep + 1);
            if (rb[1] == ':')
                snprintf(port, pcap, "%.*s", (int)(hl - (size_t)(rb + 2 - ep)), rb + 2);
            return;
        }
    }
    for (size_t i = 0; i < hl; i++)
        if (ep[i] == ':')
            colon = ep + i;
    if (colon) {
        snprintf(host, hcap, "%.*s", (int)(colon - ep), ep);
        snprintf(port, pcap, "%.*s", (int)(hl - (size_t)(colon + 1 - ep)), colon + 1);
    } else {
        snprintf(host, hcap, "%.*s", (int)hl, ep);
    }
}

/* Waits until fd is ready for events or the deadline; 1 ready, 0 timeout. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int tmo = -1;
        if (deadline) {
            int64_t left = deadline - client_now_ms();
            if (left <= 0)
                return 0;
            tmo = left > 1000000 ? 1000000 : (int)left;
        }
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, tmo);
        if (r > 0)
            return 1;
        if (r < 0 && errno != EINTR)
            return 1; /* let the caller's syscall report it */
    }
}

/* One non-blocking connect to addr; the socket, or -1 with errno set
 * (ETIMEDOUT when the deadline passed). */
static int connect_addr(const struct sockaddr *sa, socklen_t len, int family, int64_t deadline)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int en = 0;
    if (connect(fd, sa, len) < 0) {
        en = errno;
        if (en != EINPROGRESS)
            goto fail;
        if (!wait_fd(fd, POLLOUT, deadline)) {
            en = ETIMEDOUT;
            goto fail;
        }
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
            en = soerr ? soerr : errno;
            goto fail;
        }
    }
    if (family != AF_UNIX) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
fail:
    close(fd);
    errno = en;
    return -1;
}

static int dial(const char *scheme, const char *host, const char *port, int64_t deadline)
{
    if (!strcmp(scheme, "unix") || !strcmp(scheme, "unixs")) {
        struct sockaddr_un un = {.sun_family = AF_UNIX};
        if (strlen(host) >= sizeof un.sun_path)
            return -1;
        strcpy(un.sun_path, host);
        return connect_addr((struct sockaddr *)&un, sizeof un, AF_UNIX, deadline);
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host[0] ? host : NULL, port[0] ? port : "443", &hints, &res) != 0) {
        errno = EHOSTUNREACH;
        return -1;
    }
    int fd = -1, en = ECONNREFUSED;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = connect_addr(ai->ai_addr, ai->ai_addrlen, ai->ai_family, deadline);
        en = errno;
    }
    freeaddrinfo(res);
    errno = en;
    return fd;
}

/* ---- transport: h2 <-> (TLS) <-> socket ---- */

static void conn_reset(struct client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    h2_conn_free(c->h2);
    c->h2 = NULL;
    tls_conn_free(c->tls);
    c->tls = NULL;
    c->in_len = 0;
    c->connected = false;
    c->got_frame = false;
    c->ping_sent_ms = 0;
}

static void conn_break(struct client *c, const char *why)
{
    if (!c->broken) {
        c->broken = true;
        snprintf(c->broken_msg, sizeof c->broken_msg, "%s", why);
    }
    for (size_t i = 0; i < CLIENT_MAX_STREAMS; i++) {
        struct client_stream *s = &c->streams[i];
        if (s->used && !s->done) {
            s->done = true;
            s->status = CLIENT_CONN;
            snprintf(s->msg, sizeof s->msg, "%s", why);
        }
    }
}

/* Writes what can be written without blocking.  -1 on a write error. */
static int flush_out(struct client *c)
{
    for (;;) {
        size_t n;
        const uint8_t *p = h2_conn_output(c->h2, &n);
        if (c->tls) {
            while (n) {
                size_t took = tls_conn_write(c->tls, p, n);
                if (!took)
                    break;
                h2_conn_output_done(c->h2, took);
                p = h2_conn_output(c->h2, &n);
            }
            tls_conn_flush(c->tls);
            const uint8_t *q = tls_conn_send_buf(c->tls, &n);
            if (!n)
                return 0;
            ssize_t w = send(c->fd, q, n, MSG_NOSIGNAL);
            if (w < 0)
                return errno == EAGAIN || errno == EINTR ? 0 : -1;
            tls_conn_send_done(c->tls, (size_t)w);
            continue;
        }
        if (!n)
            return 0;
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        h2_conn_output_done(c->h2, (size_t)w);
    }
}

static bool want_write(struct client *c)
{
    size_t n;
    (void)h2_conn_output(c->h2, &n);
    if (n)
        return true;
    if (c->tls) {
        (void)tls_conn_send_buf(c->tls, &n);
        return n > 0;
    }
    return false;
}

static struct client_stream *find_stream(struct client *c, uint32_t sid)
{
    for (size_t i = 0; i < CLIENT_MAX_STREAMS; i++)
        if (c->streams[i].used && c->streams[i].sid == sid)
            return &c->streams[i];
    return NULL;
}

static bool hdr_is(const struct h2_header *h, const char *name)
{
    size_t n = strlen(name);
    return h->name_len == n && !memcmp(h->name, name, n);
}

static int hexval(char ch)
{
    return ch >= '0' && ch <= '9' ? ch - '0'
           : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
           : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
}

/* grpc-message is percent-encoded (grpc's spec). */
static void percent_decode(const char *p, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        if (p[i] == '%' && i + 2 < n && hexval(p[i + 1]) >= 0 && hexval(p[i + 2]) >= 0) {
            out[o++] = (char)(hexval(p[i + 1]) << 4 | hexval(p[i + 2]));
            i += 2;
        } else {
            out[o++] = p[i];
        }
    }
    out[o] = 0;
}

static void on_headers(struct client_stream *s, const struct h2_event *ev)
{
    const struct h2_header *status = NULL, *gstatus = NULL, *gmsg = NULL, *ctype = NULL;
    for (size_t i = 0; i < ev->n_headers; i++) {
        const struct h2_header *h = &ev->headers[i];
        if (hdr_is(h, ":status"))
            status = h;
        else if (hdr_is(h, "grpc-status"))
            gstatus = h;
        else if (hdr_is(h, "grpc-message"))
            gmsg = h;
        else if (hdr_is(h, "content-type"))
            ctype = h;
    }
    if (!s->got_headers) {
        s->got_headers = true;
        if (status && !(status->value_len == 3 && !memcmp(status->value, "200", 3))) {
            /* grpc-go: an HTTP error status becomes a gRPC code */
            char buf[8];
            size_t n = status->value_len < sizeof buf - 1 ? status->value_len : sizeof buf - 1;
            memcpy(buf, status->value, n);
            buf[n] = 0;
            int http = atoi(buf);
            int code = http == 400 ? 13 : http == 401 ? 16 : http == 403 ? 7 : http == 404 ? 12
                       : (http == 429 || http == 502 || http == 503 || http == 504) ? 14 : 2;
            s->done = true;
            s->status = code;
            snprintf(s->msg, sizeof s->msg, "unexpected HTTP status code received from server: %d",
                     http);
            return;
        }
        if (!gstatus && ctype &&
            (ctype->value_len < 16 || memcmp(ctype->value, "application/grpc", 16))) {
            s->done = true;
            s->status = 13;
            snprintf(s->msg, sizeof s->msg,
                     "transport: received the unexpected content-type \"%.*s\"",
                     (int)ctype->value_len, ctype->value);
            return;
        }
    }
    if (gstatus) {
        char buf[16];
        size_t n = gstatus->value_len < sizeof buf - 1 ? gstatus->value_len : sizeof buf - 1;
        memcpy(buf, gstatus->value, n);
        buf[n] = 0;
        s->status = atoi(buf);
        if (s->status < 0 || s->status > 16) /* not a gRPC code: grpc-go says Unknown */
            s->status = 2;
        if (gmsg)
            percent_decode(gmsg->value, gmsg->value_len, s->msg, sizeof s->msg);
        else
            s->msg[0] = 0;
        s->done = true;
    } else if (ev->end_stream) {
        s->done = true;
        s->status = 13;
        snprintf(s->msg, sizeof s->msg, "server closed the stream without sending trailers");
    }
}

static int on_event(struct client *c, const struct h2_event *ev)
{
    struct client_stream *s = ev->stream_id ? find_stream(c, ev->stream_id) : NULL;
    switch (ev->type) {
    case H2_EV_HEADERS:
        if (s && !s->done)
            on_headers(s, ev);
        break;
    case H2_EV_DATA:
        if (!s || s->done)
            break;
        if (s->in.len + ev->len > CLIENT_MAX_MSG + 5) {
            s->done = true;
            s->status = 8;
            snprintf(s->msg, sizeof s->msg, "grpc: received message larger than max");
            break;
        }
        if (mem_buf_append(&s->in, ev->data, ev->len) < 0)
            return -1;
        if (ev->end_stream && !s->done) {
            s->done = true;
            s->status = 13;
            snprintf(s->msg, sizeof s->msg, "server closed the stream without sending trailers");
        }
        break;
    case H2_EV_RESET:
        if (s && !s->done) {
            s->done = true;
            /* grpc-go's mapping of RST_STREAM codes */
            s->status = ev->error_code == H2_CANCEL ? 1 : ev->error_code == H2_REFUSED_STREAM ? 14 : 13;
            snprintf(s->msg, sizeof s->msg, "stream terminated by RST_STREAM with error code: %s",
                     ev->error_code == H2_CANCEL ? "CANCEL"
                     : ev->error_code == H2_REFUSED_STREAM ? "REFUSED_STREAM"
                     : ev->error_code == H2_NO_ERROR ? "NO_ERROR" : "INTERNAL_ERROR");
        }
        break;
    case H2_EV_GOAWAY:
        for (size_t i = 0; i < CLIENT_MAX_STREAMS; i++) {
            struct client_stream *t = &c->streams[i];
            if (t->used && !t->done && t->sid > ev->last_stream_id) {
                t->done = true;
                t->status = 14;
                snprintf(t->msg, sizeof t->msg, "the connection is draining");
            }
        }
        break;
    default:
        break;
    }
    return 0;
}

/* Feeds the buffered plaintext to h2 and handles the events. */
static int feed(struct client *c)
{
    size_t off = 0;
    while (off < c->in_len) {
        struct h2_event ev;
        int r = h2_conn_feed(c->h2, c->in + off, c->in_len - off, &ev);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        c->got_frame = true;
        off += (size_t)r;
        if (ev.type != H2_EV_NONE && on_event(c, &ev) < 0)
            return -1;
    }
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
    return 0;
}

/* Reads what is there.  1 progress, 0 nothing yet, -1 closed or failed. */
static int read_in(struct client *c)
{
    if (c->tls) {
        size_t cap;
        uint8_t *b = tls_conn_recv_buf(c->tls, &cap);
        if (b && cap) {
            ssize_t r = recv(c->fd, b, cap, 0);
            if (r == 0)
                return -1;
            if (r < 0)
                return errno == EAGAIN || errno == EINTR ? 0 : -1;
            tls_conn_recv_done(c->tls, (size_t)r);
        }
        size_t got = tls_conn_read(c->tls, c->in + c->in_len, CLIENT_IN_CAP - c->in_len);
        c->in_len += got;
        if (!got && tls_conn_closed(c->tls))
            return -1;
        return 1;
    }
    ssize_t r = recv(c->fd, c->in + c->in_len, CLIENT_IN_CAP - c->in_len, 0);
    if (r == 0)
        return -1;
    if (r < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    c->in_len += (size_t)r;
    return 1;
}

/* grpc-go's client keepalive as etcdctl configures it (--keepalive-time,
 * --keepalive-timeout, no pings without an active call): when the server
 * has sent nothing for keepalive-time, PING it; when nothing comes back
 * within keepalive-timeout, the connection is taken for dead and closed,
 * so that a watch or keep-alive behind a vanished peer fails over instead
 * of waiting forever.  Returns when the next keepalive step is due, 0 if
 * none. */
static int64_t keepalive_due(const struct client *c)
{
    if (!c->o->keepalive_time_ms || !c->connected)
        return 0;
    bool active = false;
    for (size_t i = 0; i < CLIENT_MAX_STREAMS && !active; i++)
        active = c->streams[i].used && !c->streams[i].done;
    if (!active)
        return 0;
    if (c->ping_sent_ms)
        return c->ping_sent_ms + c->o->keepalive_timeout_ms;
    return c->last_read_ms + c->o->keepalive_time_ms;
}

/* Takes the keepalive step that is due, if any.  -1 when the connection
 * was declared dead. */
static int keepalive(struct client *c)
{
    int64_t due = keepalive_due(c), now = client_now_ms();
    if (!due || now < due)
        return 0;
    if (c->ping_sent_ms) {
        conn_break(c, "transport is closing");
        return -1;
    }
    h2_conn_ping(c->h2, (uint64_t)now);
    c->ping_sent_ms = now;
    if (flush_out(c) < 0) {
        conn_break(c, "transport is closing");
        return -1;
    }
    return 0;
}

/* One round of I/O: write, wait until readable (or wake_fd, or the
 * deadline), read and process.  Returns 1 after progress or a timeout, 2 if
 * wake_fd is readable, -1 when the connection broke (streams failed). */
static int pump(struct client *c, int64_t deadline, int wake_fd)
{
    if (c->broken)
        return -1;
    if (flush_out(c) < 0) {
        conn_break(c, "transport is closing");
        return -1;
    }
    /* plaintext the TLS engine already holds would not wake poll() */
    if (c->tls && c->in_len < CLIENT_IN_CAP) {
        size_t got = tls_conn_read(c->tls, c->in + c->in_len, CLIENT_IN_CAP - c->in_len);
        if (got) {
            c->in_len += got;
            if (feed(c) < 0) {
                conn_break(c, "error reading from server: EOF");
                return -1;
            }
            return flush_out(c) < 0 ? -1 : 1;
        }
    }
    struct pollfd p[2] = {{.fd = c->fd, .events = POLLIN | (want_write(c) ? POLLOUT : 0)},
                          {.fd = wake_fd, .events = POLLIN}};
    int64_t ka = keepalive_due(c);
    int64_t until = deadline && (!ka || deadline < ka) ? deadline : ka;
    int tmo = -1;
    if (until) {
        int64_t left = until - client_now_ms();
        if (left < 0)
            left = 0;
        tmo = left > 1000000 ? 1000000 : (int)left;
    }
    int r = poll(p, wake_fd >= 0 ? 2 : 1, tmo);
    if (r < 0)
        return errno == EINTR ? 1 : -1;
    if (r == 0)
        return keepalive(c) < 0 ? -1 : 1;
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
        int rr = read_in(c);
        if (rr > 0) {
            c->last_read_ms = client_now_ms();
            c->ping_sent_ms = 0;
        }
        if (rr < 0 || feed(c) < 0) {
            if (c->tls && tls_conn_error(c->tls))
                conn_break(c, tls_conn_error(c->tls));
            else
                conn_break(c, "error reading from server: EOF");
            return -1;
        }
    }
    if (flush_out(c) < 0) {
        conn_break(c, "transport is closing");
        return -1;
    }
    if (wake_fd >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR)))
        return 2;
    return 1;
}

/* ---- connecting ---- */

static int tls_handshake(struct client *c, int64_t deadline, struct client_err *err)
{
    while (!tls_conn_ready(c->tls)) {
        if (tls_conn_closed(c->tls)) {
            const char *e = tls_conn_error(c->tls);
            set_err(err, CLIENT_DIAL, "%s", e ? e : "tls: handshake failed");
            return -1;
        }
        size_t n;
        const uint8_t *q = tls_conn_send_buf(c->tls, &n);
        if (n) {
            ssize_t w = send(c->fd, q, n, MSG_NOSIGNAL);
            if (w < 0 && errno != EAGAIN && errno != EINTR)
                goto io_fail;
            if (w > 0)
                tls_conn_send_done(c->tls, (size_t)w);
            if (w < 0 && !wait_fd(c->fd, POLLOUT, deadline))
                goto timeout;
            continue;
        }
        size_t cap;
        uint8_t *b = tls_conn_recv_buf(c->tls, &cap);
        if (!b || !cap)
            continue;
        if (!wait_fd(c->fd, POLLIN, deadline))
            goto timeout;
        ssize_t r = recv(c->fd, b, cap, 0);
        if (r == 0)
            goto io_fail;
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            goto io_fail;
        }
        tls_conn_recv_done(c->tls, (size_t)r);
    }
    return 0;
timeout:
    set_err(err, CLIENT_DIAL, "tls: handshake timed out");
    return -1;
io_fail:
    set_err(err, CLIENT_DIAL, "%s",
            tls_conn_error(c->tls) ? tls_conn_error(c->tls) : "tls: connection closed during handshake");
    return -1;
}

static int make_tls_ctx(struct client *c, char *err, size_t cap)
{
    struct tls_cfg tc = {
        .ca_file = c->o->cacert, /* NULL: the system's trust anchors */
        .cert_file = c->o->cert,
        .key_file = c->o->key,
        .insecure_skip_verify = c->o->insecure_skip_verify,
    };
    c->tls_ctx = tls_ctx_client(&tc, err, cap);
    return c->tls_ctx ? 0 : -1;
}

/* Tries endpoint i once.  0 connected, -1 not (err says why). */
static int try_endpoint(struct client *c, size_t i, int64_t deadline, struct client_err *err)
{
    char scheme[16], host[256], port[32];
    parse_endpoint(c->o->endpoints[i], scheme, sizeof scheme, host, sizeof host, port,
                   sizeof port);
    bool use_tls = !strcmp(scheme, "https") || !strcmp(scheme, "unixs") ||
                   (!scheme[0] && c->o->use_tls);
    int64_t dl = deadline;
    if (c->o->dial_timeout_ms > 0) {
        int64_t d = client_now_ms() + c->o->dial_timeout_ms;
        if (!dl || d < dl)
            dl = d;
    }
    c->fd = dial(scheme, host, port, dl);
    if (c->fd < 0) {
        int en = errno;
        const char *net = !strcmp(scheme, "unix") || !strcmp(scheme, "unixs") ? "unix" : "tcp";
        char addr[300];
        if (strchr(host, ':'))
            snprintf(addr, sizeof addr, "[%s]:%s", host, port);
        else
            snprintf(addr, sizeof addr, "%s%s%s", host, *net == 't' ? ":" : "", port);
        set_err(err, CLIENT_DIAL, "dial %s %s: %s", net, addr,
                en == ECONNREFUSED ? "connect: connection refused"
                : en == ETIMEDOUT || en == EINPROGRESS ? "i/o timeout"
                : en == ENOENT ? "connect: no such file or directory"
                : en == EHOSTUNREACH ? "connect: no route to host" : "connect: connection failed");
        return -1;
    }
    if (use_tls) {
        if (!c->tls_ctx) {
            char e[256] = "";
            if (make_tls_ctx(c, e, sizeof e) < 0) {
                set_err(err, CLIENT_DIAL, "%s", e);
                goto fail;
            }
        }
        c->tls = tls_conn_new(c->tls_ctx, c->o->server_name ? c->o->server_name : host);
        if (!c->tls) {
            set_err(err, CLIENT_CONN, "out of memory");
            goto fail;
        }
        if (tls_handshake(c, dl, err) < 0)
            goto fail;
    }
    struct h2_config hc = {.max_concurrent_streams = 100, .initial_window_size = 4u << 20,
                           .conn_window_size = 16u << 20};
    c->h2 = h2_conn_new(H2_CLIENT, &hc);
    if (!c->h2) {
        set_err(err, CLIENT_CONN, "out of memory");
        goto fail;
    }
    snprintf(c->scheme, sizeof c->scheme, "%s", use_tls ? "https" : "http");
    if (!strcmp(scheme, "unix") || !strcmp(scheme, "unixs"))
        snprintf(c->authority, sizeof c->authority, "localhost");
    else if (strchr(host, ':'))
        snprintf(c->authority, sizeof c->authority, "[%s]:%s", host, port);
    else
        snprintf(c->authority, sizeof c->authority, "%s%s%s", host, port[0] ? ":" : "", port);
    c->ep = i;
    c->connected = true;
    c->last_read_ms = client_now_ms();
    return 0;
fail:
    conn_reset(c);
    return -1;
}

static int authenticate(struct client *c, int64_t deadline, struct client_err *err);

int client_connect(struct client *c, int64_t deadline, struct client_err *err)
{
    if (c->broken) { /* start over on a new connection */
        conn_reset(c);
        c->broken = false;
        c->authed = false;
        for (size_t i = 0; i < CLIENT_MAX_STREAMS; i++)
            c->streams[i].used = false;
    }
    if (!c->connected) {
        int64_t backoff = CLIENT_BACKOFF_MS;
        for (;;) {
            for (size_t i = 0; i < c->o->n_endpoints; i++) {
                if (try_endpoint(c, i, deadline, err) == 0)
                    goto connected;
                if (deadline && client_now_ms() >= deadline)
                    break;
            }
            /* as grpc-go, every failure (refused, TLS) is retried until
             * the deadline */
            int64_t now = client_now_ms();
            if (deadline && now + backoff >= deadline) {
                if (deadline > now)
                    usleep((useconds_t)(deadline - now) * 1000);
                err->code = CLIENT_DEADLINE; /* msg keeps the last dial error */
                return -1;
            }
            usleep((useconds_t)backoff * 1000);
            if (backoff < 1000)
                backoff *= 2;
        }
    }
connected:
    if (!c->authed) {
        c->authed = true;
        if (c->o->user && c->o->password && authenticate(c, deadline, err) < 0)
            return -1;
    }
    return 0;
}

const struct client_opts *client_opts(const struct client *c)
{
    return c->o;
}

const char *client_endpoint(const struct client *c)
{
    return c->connected ? c->o->endpoints[c->ep] : NULL;
}

struct client *client_new(const struct client_opts *o, char *err, size_t errlen)
{
    snprintf(err, errlen, "out of memory");
    struct client *c = mem_calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->in = mem_alloc(CLIENT_IN_CAP);
    if (!c->in) {
        mem_free(c);
        return NULL;
    }
    c->o = o;
    c->fd = -1;
    bool tls = o->use_tls;
    for (size_t i = 0; i < o->n_endpoints; i++)
        tls |= !strncmp(o->endpoints[i], "https://", 8) || !strncmp(o->endpoints[i], "unixs://", 8);
    if (tls && make_tls_ctx(c, err, errlen) < 0) {
        client_free(c);
        return NULL;
    }
    return c;
}

void client_free(struct client *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < CLIENT_MAX_STREAMS; i++)
        mem_buf_free(&c->streams[i].in);
    conn_reset(c);
    tls_ctx_free(c->tls_ctx);
    mem_free(c->in);
    mem_free(c);
}

/* ---- calls ---- */

#define HDR(n, v) {n, sizeof n - 1, v, strlen(v)}

static struct client_stream *stream_start(struct client *c, const char *path,
                                          const char *const *md, int64_t call_deadline,
                                          int64_t deadline, struct client_err *err)
{
    if (client_connect(c, deadline, err) < 0)
        return NULL;
    struct client_stream *s = NULL;
    for (size_t i = 0; i < CLIENT_MAX_STREAMS && !s; i++)
        if (!c->streams[i].used)
            s = &c->streams[i];
    if (!s) {
        set_err(err, CLIENT_CONN, "too many streams");
        return NULL;
    }
    char tmo[32];
    struct h2_header h[16] = {
        HDR(":method", "POST"),
        HDR(":scheme", c->scheme),
        HDR(":path", path),
        HDR(":authority", c->authority),
        HDR("content-type", "application/grpc"),
        HDR("user-agent", "grpc-go/1.26.0"),
        HDR("te", "trailers"),
    };
    size_t n = 7;
    if (call_deadline) {
        int64_t left = call_deadline - client_now_ms();
        snprintf(tmo, sizeof tmo, "%lldm", (long long)(left > 0 ? left : 1));
        h[n++] = (struct h2_header)HDR("grpc-timeout", tmo);
    }
    if (c->token[0])
        h[n++] = (struct h2_header)HDR("token", c->token);
    for (size_t i = 0; md && md[i] && md[i + 1] && n + 1 < sizeof h / sizeof h[0]; i += 2)
        h[n++] = (struct h2_header){md[i], strlen(md[i]), md[i + 1], strlen(md[i + 1])};
    int64_t sid = h2_conn_request(c->h2, h, n, false);
    if (sid <= 0) {
        set_err(err, 14, "%s", sid == -1 ? "out of memory" : "transport is closing");
        return NULL;
    }
    struct mem_buf keep = s->in;
    memset(s, 0, sizeof *s);
    s->in = keep;
    s->in.len = 0;
    s->c = c;
    s->used = true;
    s->sid = (uint32_t)sid;
    return s;
}

static int stream_send(struct client_stream *s, const struct pb_msgdesc *d, const void *msg,
                       bool end, struct client_err *err)
{
    size_t n = pb_encoded_size(d, msg);
    uint8_t *p = mem_alloc(n + 5);
    if (!p) {
        set_err(err, 8, "out of memory");
        return -1;
    }
    p[0] = 0;
    p[1] = (uint8_t)(n >> 24);
    p[2] = (uint8_t)(n >> 16);
    p[3] = (uint8_t)(n >> 8);
    p[4] = (uint8_t)n;
    pb_encode_to(d, msg, p + 5, n);
    int r = h2_conn_submit_data(s->c->h2, s->sid, p, n + 5, end);
    mem_free(p);
    if (r < 0) {
        set_err(err, 14, "transport is closing");
        return -1;
    }
    return 0;
}

static void stream_release(struct client_stream *s)
{
    if (!s->done && s->c->h2)
        h2_conn_reset_stream(s->c->h2, s->sid, H2_CANCEL);
    s->used = false;
    s->in.len = 0;
}

static void status_err(const struct client_stream *s, struct client_err *err)
{
    err->code = s->status;
    snprintf(err->msg, sizeof err->msg, "%s", s->msg);
}

/* A complete message in s->in: copies it into a (responses point into
 * their bytes) and decodes.  1 decoded, 0 none complete, -1 bad message. */
static int take_message(struct client_stream *s, const struct pb_msgdesc *d, void *msg,
                        struct mem_arena *a, struct client_err *err)
{
    if (s->in.len < 5)
        return 0;
    const uint8_t *p = s->in.data;
    size_t len = (size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | p[4];
    if (s->in.len - 5 < len)
        return 0;
    if (p[0] & 1) {
        set_err(err, 13, "grpc: compressed message received but no decompressor");
        return -1;
    }
    uint8_t *copy = mem_arena_dup(a, p + 5, len);
    if (!copy) {
        set_err(err, 8, "out of memory");
        return -1;
    }
    mem_buf_consume(&s->in, len + 5);
    if (pb_decode(d, copy, len, msg, a) < 0) {
        set_err(err, 13, "grpc: failed to unmarshal the received message");
        return -1;
    }
    return 1;
}

int client_unary(struct client *c, const char *path, const struct pb_msgdesc *req_desc,
                 const void *req, const struct pb_msgdesc *resp_desc, void *resp,
                 struct mem_arena *a, int64_t deadline, struct client_err *err)
{
    struct client_stream *s;
    for (;;) {
        s = stream_start(c, path, NULL, deadline, deadline, err);
        if (!s)
            return -1;
        if (stream_send(s, req_desc, req, true, err) < 0) {
            stream_release(s);
            return -1;
        }
        while (!s->done) {
            if (deadline && client_now_ms() >= deadline) {
                set_err(err, CLIENT_DEADLINE, "%s", ""); /* connected, no answer */
                stream_release(s);
                return -1;
            }
            (void)pump(c, deadline, -1);
        }
        /* closed before the server said anything (a TLS port spoken to in
         * plain text...): grpc-go counts that as a failed dial, and retries */
        if (s->status != CLIENT_CONN || c->got_frame)
            break;
        stream_release(s);
        int64_t now = client_now_ms();
        if (deadline && now + CLIENT_BACKOFF_MS >= deadline) {
            if (deadline > now)
                usleep((useconds_t)(deadline - now) * 1000);
            set_err(err, CLIENT_DEADLINE, "connection closed before server preface received");
            return -1;
        }
        usleep(CLIENT_BACKOFF_MS * 1000);
    }
    int rc = -1;
    if (s->status != 0) {
        status_err(s, err);
        goto out;
    }
    int r = take_message(s, resp_desc, resp, a, err);
    if (r == 0)
        set_err(err, 13, "grpc: server returned no response message");
    rc = r == 1 ? 0 : -1;
out:
    stream_release(s);
    return rc;
}

struct client_stream *client_stream_open(struct client *c, const char *path,
                                         const char *const *md, int64_t deadline,
                                         struct client_err *err)
{
    return stream_start(c, path, md, 0, deadline, err);
}

int client_stream_send(struct client_stream *s, const struct pb_msgdesc *d, const void *msg,
                       struct client_err *err)
{
    if (s->done) {
        status_err(s, err);
        return -1;
    }
    if (stream_send(s, d, msg, false, err) < 0)
        return -1;
    if (flush_out(s->c) < 0) {
        conn_break(s->c, "transport is closing");
        set_err(err, CLIENT_CONN, "transport is closing");
        return -1;
    }
    return 0;
}

void client_stream_close_send(struct client_stream *s)
{
    if (!s->done)
        (void)!h2_conn_submit_data(s->c->h2, s->sid, NULL, 0, true);
    (void)flush_out(s->c);
}

enum client_recv client_stream_recv(struct client_stream *s, const struct pb_msgdesc *d,
                                    void *msg, struct mem_arena *a, int64_t deadline,
                                    int wake_fd, struct client_err *err)
{
    for (;;) {
        int r = take_message(s, d, msg, a, err);
        if (r != 0)
            return r > 0 ? CLIENT_RECV_MSG : CLIENT_RECV_ERR;
        if (s->done) {
            if (s->status == 0)
                return CLIENT_RECV_END;
            status_err(s, err);
            return CLIENT_RECV_ERR;
        }
        if (deadline && client_now_ms() >= deadline)
            return CLIENT_RECV_TIMEOUT;
        int pr = pump(s->c, deadline, wake_fd);
        if (pr == 2)
            return CLIENT_RECV_WAKE;
    }
}

void client_stream_free(struct client_stream *s)
{
    if (!s)
        return;
    stream_release(s);
    if (s->c->h2)
        (void)flush_out(s->c);
}

/* ---- auth ---- */

static int authenticate(struct client *c, int64_t deadline, struct client_err *err)
{
    struct api_authenticate_req req = {
        .name = {(const uint8_t *)c->o->user, strlen(c->o->user)},
        .password = {(const uint8_t *)c->o->password, strlen(c->o->password)},
    };
    struct api_authenticate_resp resp;
    struct mem_arena a;
    mem_arena_init(&a, 0);
    int r = client_unary(c, "/etcdserverpb.Auth/Authenticate", &api_authenticate_req_desc, &req,
                         &api_authenticate_resp_desc, &resp, &a, deadline, err);
    if (r == 0) {
        snprintf(c->token, sizeof c->token, "%.*s", (int)resp.token.len,
                 (const char *)resp.token.p);
    } else if (!strcmp(err->msg, "etcdserver: authentication is not enabled")) {
        r = 0; /* clientv3 goes on without a token */
    }
    mem_arena_free(&a);
    return r;
}
