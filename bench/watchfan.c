/* bench/watchfan.c - the receiving side of the watch fan-out benchmark
 * (bench/watch.sh): W etcd watchers on one key over C HTTP/2 connections,
 * counting the events delivered to them.
 *
 *   watchfan -p PORT [-w WATCHERS] [-c CONNS] [-n EVENTS] [-k KEY] [-t SECS]
 *            [-s STREAM_WINDOW] [-W CONN_WINDOW]
 *
 * Opens the connections to 127.0.0.1:PORT, one Watch stream per watcher
 * (spread round robin), each sending one WatchCreateRequest for KEY; once
 * every watch is created it prints "ready" and waits for EVENTS events per
 * watcher (another process does the writes).  Then it prints one line:
 *   events E watchers W min MIN max MAX elapsed_s S events_per_s R cpu_s C
 * with S from the first event counted to the last and C its own CPU time
 * (user + system) since "ready".  Exit status 0 when
 * every watcher got its events, 1 otherwise (timeout, canceled watch,
 * closed stream or connection).
 *
 * A bench tool, not part of the server: its own minimal HTTP/2 client.
 * Requests use HPACK literals, responses' header blocks are skipped
 * undecoded (a HEADERS frame with END_STREAM is a stream ending early).
 * DATA is reassembled into gRPC messages per stream and only the top level
 * of each WatchResponse is read: field 3 (created), 4 (canceled) and the
 * count of field 11 (events).  Windows are credited back with
 * WINDOW_UPDATE as bytes are consumed, half a window at a time, as a real
 * client does.  Single-threaded, epoll-driven, no allocation per message
 * unless one is split across frames.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FAN_READ (256u * 1024)
#define FAN_FRAME_HDR 9
#define FAN_MAX_FRAME 16384 /* the default SETTINGS_MAX_FRAME_SIZE, which we keep */

struct fan_stream {
    uint64_t st_events;
    uint32_t st_unacked; /* consumed DATA bytes not yet credited back */
    bool st_created;
    uint8_t st_hdr[5]; /* gRPC message prefix being read */
    size_t st_hlen;
    uint8_t *st_msg; /* a message split across frames; owned */
    size_t st_need, st_mlen, st_cap;
};

struct fan_conn {
    int fd;
    uint8_t *in; /* owned, FAN_READ + a frame */
    size_t in_len;
    uint8_t *out; /* owned */
    size_t out_off, out_len, out_cap;
    bool want_out;
    uint32_t unacked;
    struct fan_stream *streams; /* owned; stream id 2i+1 */
    size_t n_streams;
};

static struct {
    uint32_t stream_window, conn_window;
    uint64_t want; /* events per watcher */
    uint64_t total, target;
    size_t watchers, created;
    double t_first, t_last;
    int ep;
} fan;

static double fan_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static double fan_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fan_die(const char *what)
{
    fprintf(stderr, "watchfan: %s\n", what);
    exit(1);
}

static void *fan_grow(void *p, size_t n)
{
    p = realloc(p, n);
    if (!p)
        fan_die("out of memory");
    return p;
}

/* ---- output ---- */

static uint8_t *fan_out(struct fan_conn *c, size_t n)
{
    if (c->out_len + n > c->out_cap) {
        if (c->out_off) {
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
        }
        if (c->out_len + n > c->out_cap) {
            c->out_cap = (c->out_len + n) * 2;
            c->out = fan_grow(c->out, c->out_cap);
        }
    }
    uint8_t *p = c->out + c->out_len;
    c->out_len += n;
    return p;
}

static uint8_t *fan_frame(struct fan_conn *c, uint8_t type, uint8_t flags, uint32_t id,
                          size_t len)
{
    uint8_t *p = fan_out(c, FAN_FRAME_HDR + len);
    p[0] = (uint8_t)(len >> 16);
    p[1] = (uint8_t)(len >> 8);
    p[2] = (uint8_t)len;
    p[3] = type;
    p[4] = flags;
    p[5] = (uint8_t)(id >> 24);
    p[6] = (uint8_t)(id >> 16);
    p[7] = (uint8_t)(id >> 8);
    p[8] = (uint8_t)id;
    return p + FAN_FRAME_HDR;
}

static void fan_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void fan_window_update(struct fan_conn *c, uint32_t id, uint32_t inc)
{
    fan_put32(fan_frame(c, 0x8, 0, id, 4), inc);
}

/* HPACK literal without indexing, new name. */
static size_t fan_literal(uint8_t *p, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value), o = 0;
    p[o++] = 0;
    p[o++] = (uint8_t)nl; /* every name and value here is < 127 bytes */
    memcpy(p + o, name, nl);
    o += nl;
    p[o++] = (uint8_t)vl;
    memcpy(p + o, value, vl);
    return o + vl;
}

static void fan_flush(struct fan_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (w < 0)
            fan_die("send failed");
        c->out_off += (size_t)w;
    }
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    bool want = c->out_len > 0;
    if (want != c->want_out) {
        struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0u), .data.ptr = c};
        if (epoll_ctl(fan.ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
            fan_die("epoll_ctl");
        c->want_out = want;
    }
}

/* ---- input ---- */

/* The top level of one WatchResponse. */
static void fan_message(struct fan_stream *s, const uint8_t *p, size_t n)
{
    const uint8_t *e = p + n;
    uint64_t events = 0;
    while (p < e) {
        uint64_t tag = 0, v = 0;
        for (int sh = 0; p < e; sh += 7) {
            tag |= (uint64_t)(*p & 0x7f) << sh;
            if (!(*p++ & 0x80))
                break;
        }
        unsigned wt = tag & 7;
        uint64_t field = tag >> 3;
        if (wt == 0 || wt == 2) {
            for (int sh = 0; p < e; sh += 7) {
                v |= (uint64_t)(*p & 0x7f) << sh;
                if (!(*p++ & 0x80))
                    break;
            }
        }
        if (wt == 2) {
            if (v > (uint64_t)(e - p))
                fan_die("truncated WatchResponse");
            p += v;
            events += field == 11;
        } else if (wt == 1) {
            p += 8;
        } else if (wt == 5) {
            p += 4;
        } else if (wt == 0 && field == 3 && v && !s->st_created) {
            s->st_created = true;
            fan.created++;
        } else if (wt == 0 && field == 4 && v) {
            fan_die("watch canceled");
        } else if (wt != 0) {
            fan_die("bad wire type in WatchResponse");
        }
    }
    if (events) {
        double t = fan_now();
        if (!fan.total)
            fan.t_first = t;
        fan.t_last = t;
        s->st_events += events;
        fan.total += events;
    }
}

/* One DATA payload: gRPC messages, possibly split across frames. */
static void fan_data(struct fan_stream *s, const uint8_t *p, size_t n)
{
    while (n) {
        if (s->st_hlen < 5) {
            size_t k = 5 - s->st_hlen < n ? 5 - s->st_hlen : n;
            memcpy(s->st_hdr + s->st_hlen, p, k);
            s->st_hlen += k;
            p += k;
            n -= k;
            if (s->st_hlen < 5)
                return;
            s->st_need = (size_t)s->st_hdr[1] << 24 | (size_t)s->st_hdr[2] << 16 |
                         (size_t)s->st_hdr[3] << 8 | s->st_hdr[4];
            s->st_mlen = 0;
        }
        size_t k = s->st_need - s->st_mlen < n ? s->st_need - s->st_mlen : n;
        if (!s->st_mlen && k == s->st_need) {
            fan_message(s, p, k); /* whole in this frame: read in place */
        } else {
            if (s->st_mlen + k > s->st_cap) {
                s->st_cap = s->st_need;
                s->st_msg = fan_grow(s->st_msg, s->st_cap);
            }
            memcpy(s->st_msg + s->st_mlen, p, k);
            s->st_mlen += k;
            if (s->st_mlen < s->st_need) {
                return;
            }
            fan_message(s, s->st_msg, s->st_mlen);
        }
        p += k;
        n -= k;
        s->st_hlen = 0;
    }
}

static struct fan_stream *fan_stream(struct fan_conn *c, uint32_t id)
{
    if (!(id & 1) || (id - 1) / 2 >= c->n_streams)
        fan_die("frame on an unknown stream");
    return &c->streams[(id - 1) / 2];
}

/* One frame; len bytes of payload at p. */
static void fan_frame_in(struct fan_conn *c, uint8_t type, uint8_t flags, uint32_t id,
                         const uint8_t *p, uint32_t len)
{
    switch (type) {
    case 0x0: { /* DATA */
        struct fan_stream *s = fan_stream(c, id);
        uint32_t pad = 0;
        if (flags & 0x8) {
            if (!len || p[0] >= len)
                fan_die("bad padding");
            pad = p[0];
            fan_data(s, p + 1, len - 1 - pad);
        } else {
            fan_data(s, p, len);
        }
        if (flags & 0x1)
            fan_die("stream ended");
        s->st_unacked += len;
        if (s->st_unacked >= fan.stream_window / 2) {
            fan_window_update(c, id, s->st_unacked);
            s->st_unacked = 0;
        }
        c->unacked += len;
        if (c->unacked >= fan.conn_window / 2) {
            fan_window_update(c, 0, c->unacked);
            c->unacked = 0;
        }
        break;
    }
    case 0x1: /* HEADERS: response headers, or trailers ending the stream */
        if (flags & 0x1)
            fan_die("stream ended by the server (trailers)");
        break;
    case 0x3:
        fan_die("stream reset by the server");
        break;
    case 0x4: /* SETTINGS */
        if (!(flags & 0x1))
            (void)fan_frame(c, 0x4, 0x1, 0, 0);
        break;
    case 0x6: /* PING */
        if (!(flags & 0x1) && len == 8)
            memcpy(fan_frame(c, 0x6, 0x1, 0, 8), p, 8);
        break;
    case 0x7:
        fan_die("GOAWAY from the server");
        break;
    default: /* WINDOW_UPDATE, CONTINUATION, PRIORITY: nothing to do */
        break;
    }
}

static void fan_read(struct fan_conn *c)
{
    for (;;) {
        ssize_t r = recv(c->fd, c->in + c->in_len, FAN_READ, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (r <= 0)
            fan_die("connection closed by the server");
        c->in_len += (size_t)r;
        size_t off = 0;
        while (c->in_len - off >= FAN_FRAME_HDR) {
            const uint8_t *f = c->in + off;
            uint32_t len = (uint32_t)f[0] << 16 | (uint32_t)f[1] << 8 | f[2];
            if (len > FAN_MAX_FRAME)
                fan_die("frame larger than SETTINGS_MAX_FRAME_SIZE");
            if (c->in_len - off - FAN_FRAME_HDR < len)
                break;
            uint32_t id = ((uint32_t)f[5] << 24 | (uint32_t)f[6] << 16 | (uint32_t)f[7] << 8 |
                           f[8]) & 0x7fffffffu;
            fan_frame_in(c, f[3], f[4], id, f + FAN_FRAME_HDR, len);
            off += FAN_FRAME_HDR + len;
        }
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
        if ((size_t)r < FAN_READ)
            break;
    }
    fan_flush(c);
}

/* ---- setup ---- */

static void fan_open(struct fan_conn *c, int port, size_t n_streams, const char *key)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        fan_die("socket");
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        fan_die("connect");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (fcntl(c->fd, F_SETFL, O_NONBLOCK) < 0)
        fan_die("fcntl");
    c->in = fan_grow(NULL, FAN_READ + FAN_FRAME_HDR + FAN_MAX_FRAME);
    c->n_streams = n_streams;
    c->streams = calloc(n_streams ? n_streams : 1, sizeof *c->streams);
    if (!c->streams)
        fan_die("out of memory");

    memcpy(fan_out(c, 24), "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
    uint8_t *p = fan_frame(c, 0x4, 0, 0, 12);
    p[0] = 0, p[1] = 0x2, fan_put32(p + 2, 0);                 /* ENABLE_PUSH */
    p[6] = 0, p[7] = 0x4, fan_put32(p + 8, fan.stream_window); /* INITIAL_WINDOW_SIZE */
    if (fan.conn_window > 65535) /* an increment of 0 is a protocol error */
        fan_window_update(c, 0, fan.conn_window - 65535);

    char authority[32];
    snprintf(authority, sizeof authority, "127.0.0.1:%d", port);
    uint8_t block[256];
    size_t bl = 0;
    block[bl++] = 0x83; /* :method POST */
    block[bl++] = 0x86; /* :scheme http */
    bl += fan_literal(block + bl, ":path", "/etcdserverpb.Watch/Watch");
    bl += fan_literal(block + bl, ":authority", authority);
    bl += fan_literal(block + bl, "content-type", "application/grpc");
    bl += fan_literal(block + bl, "te", "trailers");
    size_t kl = strlen(key);
    size_t ml = 2 + 2 + kl; /* WatchRequest{create_request{key}} */
    for (size_t i = 0; i < n_streams; i++) {
        uint32_t id = (uint32_t)(2 * i + 1);
        memcpy(fan_frame(c, 0x1, 0x4, id, bl), block, bl);
        uint8_t *m = fan_frame(c, 0x0, 0, id, 5 + ml);
        m[0] = 0;
        fan_put32(m + 1, (uint32_t)ml);
        m[5] = 0x0a;
        m[6] = (uint8_t)(2 + kl);
        m[7] = 0x0a;
        m[8] = (uint8_t)kl;
        memcpy(m + 9, key, kl);
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(fan.ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        fan_die("epoll_ctl");
    fan_flush(c);
}

static void fan_usage(void)
{
    fprintf(stderr, "usage: watchfan -p PORT [-w WATCHERS] [-c CONNS] [-n EVENTS] [-k KEY] "
                    "[-t SECS] [-s STREAM_WINDOW] [-W CONN_WINDOW]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int port = 0, opt;
    size_t n_conns = 10;
    double timeout = 120;
    const char *key = "bench/watch";
    fan.watchers = 1000;
    fan.want = 200;
    fan.stream_window = 1u << 20;
    fan.conn_window = 16u << 20;
    while ((opt = getopt(argc, argv, "p:w:c:n:k:t:s:W:")) != -1) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 'w': fan.watchers = strtoul(optarg, NULL, 10); break;
        case 'c': n_conns = strtoul(optarg, NULL, 10); break;
        case 'n': fan.want = strtoull(optarg, NULL, 10); break;
        case 'k': key = optarg; break;
        case 't': timeout = atof(optarg); break;
        case 's': fan.stream_window = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'W': fan.conn_window = (uint32_t)strtoul(optarg, NULL, 10); break;
        default: fan_usage();
        }
    }
    if (port <= 0 || !fan.watchers || !n_conns || strlen(key) > 100 ||
        fan.stream_window < 65535 || fan.stream_window > 0x7fffffffu ||
        fan.conn_window < 65535 || fan.conn_window > 0x7fffffffu)
        fan_usage();
    if (n_conns > fan.watchers)
        n_conns = fan.watchers;
    fan.target = fan.want * fan.watchers;
    fan.ep = epoll_create1(EPOLL_CLOEXEC);
    if (fan.ep < 0)
        fan_die("epoll_create1");
    struct fan_conn *conns = calloc(n_conns, sizeof *conns);
    if (!conns)
        fan_die("out of memory");
    for (size_t i = 0; i < n_conns; i++)
        fan_open(&conns[i], port, fan.watchers / n_conns + (i < fan.watchers % n_conns), key);

    bool ready = false;
    double cpu0 = 0;
    double deadline = fan_now() + 30; /* for the watches to be created */
    struct epoll_event evs[256];
    while (fan.total < fan.target) {
        double now = fan_now();
        if (now >= deadline)
            break;
        int n = epoll_wait(fan.ep, evs, 256, (int)((deadline - now) * 1000) + 1);
        if (n < 0 && errno != EINTR)
            fan_die("epoll_wait");
        for (int i = 0; i < n; i++) {
            struct fan_conn *c = evs[i].data.ptr;
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                fan_read(c);
            if (evs[i].events & EPOLLOUT)
                fan_flush(c);
        }
        if (!ready && fan.created == fan.watchers) {
            ready = true;
            printf("ready\n");
            fflush(stdout);
            cpu0 = fan_cpu();
            deadline = fan_now() + timeout;
        }
        if (fan.total)
            deadline = fan.t_last + timeout; /* a timeout is the time without events */
    }
    uint64_t lo = UINT64_MAX, hi = 0;
    for (size_t i = 0; i < n_conns; i++)
        for (size_t j = 0; j < conns[i].n_streams; j++) {
            uint64_t e = conns[i].streams[j].st_events;
            lo = e < lo ? e : lo;
            hi = e > hi ? e : hi;
        }
    double el = fan.t_last - fan.t_first;
    printf("events %llu watchers %zu min %llu max %llu elapsed_s %.6f events_per_s %.0f "
           "cpu_s %.3f\n",
           (unsigned long long)fan.total, fan.watchers, (unsigned long long)lo,
           (unsigned long long)hi, el, el > 0 ? (double)fan.total / el : 0.0,
           ready ? fan_cpu() - cpu0 : 0.0);
    if (!ready)
        fan_die("timeout waiting for the watches to be created");
    if (fan.total < fan.target)
        fan_die("timeout waiting for events");
    return 0;
}
