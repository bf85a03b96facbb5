/* ctl_lock.c - etcdctl's lock and elect commands (ctlv3/command/
 * lock_command.go, elect_command.go) and the client-side recipes they stand
 * on, as clientv3/concurrency has them: a session (a lease granted with the
 * session TTL and kept alive), the mutex (a key "<name>/<lease id in hex>"
 * put with the lease when its create revision is 0; the holder is the key
 * with the lowest create revision; a waiter watches the key just before
 * its own until it is deleted) and the election (the same queue, a value
 * that can be proclaimed, resign, observe).
 *
 * etcdctl 3.4 uses these recipes over plain KV, Lease and Watch calls, not
 * the server's Lock and Election services, so a lock held here and one held
 * by Debian's etcdctl exclude each other.  On SIGINT/SIGTERM the mutex key
 * (or the leader key) is deleted and the process exits 0; the lease is not
 * revoked, exactly as etcdctl leaves it to expire.
 *
 * Everything runs on one thread: waits are client_stream_recv() with a
 * deadline at the next keep-alive and the signal pipe as the wake fd.
 */
#include "ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int64_t lock_ttl;
static bool elect_listen;

static struct ctl_flag lock_flags[] = {
    {"ttl", 0, CTL_INT64, "10", "timeout for session", &lock_ttl},
    {0},
};

static struct ctl_flag elect_flags[] = {
    {"listen", 'l', CTL_BOOL, "false", "observation mode", &elect_listen},
    {0},
};

static int lock_run(struct ctl_cmd *cmd, int argc, char **argv);
static int elect_run(struct ctl_cmd *cmd, int argc, char **argv);

struct ctl_cmd ctl_cmd_lock = {
    .use = "lock <lockname> [exec-command arg1 arg2 ...]",
    .short_desc = "Acquires a named lock",
    .flags = lock_flags,
    .run = lock_run,
};

struct ctl_cmd ctl_cmd_elect = {
    .use = "elect <election-name> [proposal]",
    .short_desc = "Observes and participates in leader election",
    .flags = elect_flags,
    .run = elect_run,
};

#define DEFAULT_SESSION_TTL 60
#define RETRY_CONN_WAIT_MS 500 /* clientv3's retryConnWait */

/* ---- small helpers ---- */

static void *xalloc(size_t n)
{
    void *p = mem_arena_zalloc(&ctl_arena, n ? n : 1);
    if (!p)
        ctl_fail(CTL_EXIT_ERROR, "out of memory");
    return p;
}

static struct pb_bytes bstr(const char *s)
{
    return (struct pb_bytes){(const uint8_t *)s, strlen(s)};
}

/* clientv3's getPrefix: the key after every key with prefix p. */
static struct pb_bytes prefix_end(struct pb_bytes key)
{
    uint8_t *end = xalloc(key.len + 1);
    memcpy(end, key.p, key.len);
    for (size_t i = key.len; i-- > 0;) {
        if (end[i] < 0xff) {
            end[i]++;
            return (struct pb_bytes){end, i + 1};
        }
    }
    end[0] = 0; /* no next prefix: from the key on */
    return (struct pb_bytes){end, 1};
}

/* Go's %x of an int64 */
static char *lease_hex(int64_t id)
{
    char *s = xalloc(24);
    if (id < 0)
        snprintf(s, 24, "-%llx", (unsigned long long)(0 - (uint64_t)id));
    else
        snprintf(s, 24, "%llx", (unsigned long long)id);
    return s;
}

/* What clientv3 reports for a failed call: the warning line and the
 * text ExitWithError prints. */
struct call_err {
    bool failed;
    char text[700];
};

static void call_err_set(struct call_err *ce, const struct client *c, const struct client_err *e,
                         bool warn)
{
    if (warn)
        ctl_rpc_warn(c, e);
    ce->failed = true;
    snprintf(ce->text, sizeof ce->text, "%s", ctl_err_text(e));
}

static void call_err_msg(struct call_err *ce, const char *msg)
{
    ce->failed = true;
    snprintf(ce->text, sizeof ce->text, "%s", msg);
}

/* ---- signals: SIGINT/SIGTERM cancel the command's context ---- */

static int sig_pipe[2] = {-1, -1};
static volatile sig_atomic_t sig_seen;

static void on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    sig_seen = 1;
    if (sig_pipe[1] >= 0)
        (void)!write(sig_pipe[1], "x", 1);
    errno = saved;
}

static void catch_signals(void)
{
    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
        sig_pipe[0] = sig_pipe[1] = -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* ---- the session: a lease kept alive (concurrency/session.go) ---- */

struct session {
    struct client *c;
    int64_t id;
    int64_t ttl;
    struct client_stream *ka;
    int64_t next_ka;  /* when to send the next keep-alive */
    int64_t deadline; /* no answer by then: the lease is gone */
    int64_t retry_at; /* stream broken: reopen then */
    bool done;
    struct mem_arena a;
};

static const char *const hasleader_md[] = {"hasleader", "true", NULL};

/* The arenas that live until exit (ctl_fail exits from anywhere). */
static struct mem_arena *live_arenas[4];

static void free_live_arenas(void)
{
    for (size_t i = 0; i < sizeof live_arenas / sizeof live_arenas[0]; i++)
        if (live_arenas[i])
            mem_arena_free(live_arenas[i]);
}

static void arena_live(struct mem_arena *a)
{
    mem_arena_init(a, 0);
    for (size_t i = 0; i < sizeof live_arenas / sizeof live_arenas[0]; i++) {
        if (!live_arenas[i]) {
            if (i == 0)
                atexit(free_live_arenas);
            live_arenas[i] = a;
            return;
        }
    }
}

/* NewSession: grants the lease (0, or -1 with ce filled) and starts the
 * keep-alives. */
static int session_new(struct session *s, struct client *c, int64_t ttl, struct call_err *ce)
{
    memset(s, 0, sizeof *s);
    s->c = c;
    s->ttl = ttl > 0 ? ttl : DEFAULT_SESSION_TTL;
    arena_live(&s->a);
    struct api_lease_grant_req req = {.TTL = s->ttl};
    struct api_lease_grant_resp r;
    struct client_err e;
    if (client_unary(c, "/etcdserverpb.Lease/LeaseGrant", &api_lease_grant_req_desc, &req,
                     &api_lease_grant_resp_desc, &r, &ctl_arena, 0, &e) < 0) {
        call_err_set(ce, c, &e, true);
        return -1;
    }
    s->id = r.ID;
    int64_t now = client_now_ms();
    s->next_ka = now;
    /* clientv3 waits dial-timeout + 1s for the first answer */
    s->deadline = now + ctl_g.dial_timeout / 1000000 + 1000;
    s->ka = client_stream_open(c, "/etcdserverpb.Lease/LeaseKeepAlive", hasleader_md, 0, &e);
    if (!s->ka)
        s->retry_at = now + RETRY_CONN_WAIT_MS;
    return 0;
}

static void session_answer(struct session *s, const struct api_lease_keep_alive_resp *r)
{
    if (r->ID != s->id)
        return;
    if (r->TTL <= 0) {
        s->done = true;
        return;
    }
    int64_t now = client_now_ms();
    s->next_ka = now + r->TTL * 1000 / 3;
    s->deadline = now + r->TTL * 1000;
}

static void session_broken(struct session *s)
{
    client_stream_free(s->ka);
    s->ka = NULL;
    s->retry_at = client_now_ms() + RETRY_CONN_WAIT_MS;
}

/* Takes the answers already received and sends what is due.  No waiting. */
static void session_service(struct session *s)
{
    if (s->done)
        return;
    while (s->ka) {
        struct api_lease_keep_alive_resp r;
        mem_arena_reset(&s->a);
        struct client_err e;
        enum client_recv rr =
            client_stream_recv(s->ka, &api_lease_keep_alive_resp_desc, &r, &s->a, 1, -1, &e);
        if (rr == CLIENT_RECV_MSG) {
            session_answer(s, &r);
            continue;
        }
        if (rr != CLIENT_RECV_TIMEOUT)
            session_broken(s);
        break;
    }
    int64_t now = client_now_ms();
    if (s->done || now > s->deadline) {
        s->done = true;
        return;
    }
    if (!s->ka && now >= s->retry_at) {
        struct client_err e;
        s->ka = client_stream_open(s->c, "/etcdserverpb.Lease/LeaseKeepAlive", hasleader_md, 0, &e);
        if (!s->ka) {
            s->retry_at = now + RETRY_CONN_WAIT_MS;
            return;
        }
        s->next_ka = now;
    }
    if (s->ka && now >= s->next_ka) {
        struct api_lease_keep_alive_req req = {.ID = s->id};
        struct client_err e;
        if (client_stream_send(s->ka, &api_lease_keep_alive_req_desc, &req, &e) < 0) {
            session_broken(s);
            return;
        }
        /* until answered, the send loop looks again every 500 ms */
        s->next_ka = now + RETRY_CONN_WAIT_MS;
    }
}

static int64_t session_wake(const struct session *s)
{
    int64_t t = s->deadline + 1;
    if (s->ka && s->next_ka < t)
        t = s->next_ka;
    if (!s->ka && s->retry_at < t)
        t = s->retry_at;
    return t > 0 ? t : 1;
}

enum wait_result { WAIT_MSG, WAIT_SIGNAL, WAIT_SESSION_DONE, WAIT_ERR };

/* Waits for the next message on w (NULL: for nothing but a signal or the
 * session's end), keeping the session alive meanwhile.  watch_session: the
 * session's end ends the wait too. */
static enum wait_result session_wait(struct session *s, struct client_stream *w,
                                     const struct pb_msgdesc *d, void *msg, struct mem_arena *a,
                                     bool watch_session, struct client_err *e)
{
    for (;;) {
        session_service(s);
        if (sig_seen)
            return WAIT_SIGNAL;
        if (watch_session && s->done)
            return WAIT_SESSION_DONE;
        int64_t wake = s->done ? 0 : session_wake(s);
        if (w) {
            enum client_recv rr = client_stream_recv(w, d, msg, a, wake, sig_pipe[0], e);
            if (rr == CLIENT_RECV_MSG)
                return WAIT_MSG;
            if (rr == CLIENT_RECV_END) {
                e->code = 14;
                snprintf(e->msg, sizeof e->msg, "transport is closing");
                return WAIT_ERR;
            }
            if (rr == CLIENT_RECV_ERR)
                return WAIT_ERR;
            continue;
        }
        if (s->ka) {
            struct api_lease_keep_alive_resp r;
            mem_arena_reset(&s->a);
            enum client_recv rr = client_stream_recv(s->ka, &api_lease_keep_alive_resp_desc, &r,
                                                     &s->a, wake, sig_pipe[0], e);
            if (rr == CLIENT_RECV_MSG)
                session_answer(s, &r);
            else if (rr == CLIENT_RECV_END || rr == CLIENT_RECV_ERR)
                session_broken(s);
            continue;
        }
        /* no stream: sleep until the retry, or a signal */
        int64_t left = wake ? wake - client_now_ms() : 1000;
        if (left > 0) {
            fd_set fds;
            FD_ZERO(&fds);
            if (sig_pipe[0] >= 0)
                FD_SET(sig_pipe[0], &fds);
            struct timeval tv = {left / 1000, (left % 1000) * 1000};
            (void)select(sig_pipe[0] + 1, &fds, NULL, NULL, &tv);
        }
    }
}

/* ---- KV calls the recipes make ---- */

static int kv_range(struct client *c, const struct api_range_req *req, struct api_range_resp *r,
                    struct mem_arena *a, struct call_err *ce)
{
    struct client_err e;
    if (client_unary(c, "/etcdserverpb.KV/Range", &api_range_req_desc, req, &api_range_resp_desc,
                     r, a ? a : &ctl_arena, 0, &e) < 0) {
        call_err_set(ce, c, &e, true);
        return -1;
    }
    return 0;
}

static int kv_get(struct client *c, struct pb_bytes key, struct api_range_resp *r,
                  struct call_err *ce)
{
    struct api_range_req req = {.key = key};
    return kv_range(c, &req, r, NULL, ce);
}

static int kv_txn(struct client *c, const struct api_txn_req *req, struct api_txn_resp *r,
                  struct call_err *ce)
{
    struct client_err e;
    if (client_unary(c, "/etcdserverpb.KV/Txn", &api_txn_req_desc, req, &api_txn_resp_desc, r,
                     &ctl_arena, 0, &e) < 0) {
        call_err_set(ce, c, &e, true);
        return -1;
    }
    return 0;
}

static int kv_delete(struct client *c, struct pb_bytes key, struct call_err *ce)
{
    struct api_delete_req req = {.key = key};
    struct api_delete_resp r;
    struct client_err e;
    if (client_unary(c, "/etcdserverpb.KV/DeleteRange", &api_delete_req_desc, &req,
                     &api_delete_resp_desc, &r, &ctl_arena, 0, &e) < 0) {
        call_err_set(ce, c, &e, true);
        return -1;
    }
    return 0;
}

/* Get(pfx, WithFirstCreate()) or WithLastCreate(): prefix, sorted by create
 * revision, limit 1.  end: prefix_end(pfx). */
static struct api_range_req range_top(struct pb_bytes pfx, struct pb_bytes end, int32_t order)
{
    return (struct api_range_req){
        .key = pfx, .range_end = end, .sort_target = API_SORT_CREATE, .sort_order = order,
        .limit = 1,
    };
}

static struct api_range_req *range_top_op(struct pb_bytes pfx, int32_t order)
{
    struct api_range_req *r = xalloc(sizeof *r);
    *r = range_top(pfx, prefix_end(pfx), order);
    return r;
}

static struct api_compare *cmp_create(struct pb_bytes key, int64_t rev)
{
    struct api_compare *cmp = xalloc(sizeof *cmp);
    cmp->result = API_CMP_EQUAL;
    cmp->target = API_CMP_CREATE;
    cmp->key = key;
    cmp->create_revision = rev;
    cmp->has_create_revision = true;
    return cmp;
}

static struct api_put_req *op_put(struct pb_bytes key, struct pb_bytes val, int64_t lease)
{
    struct api_put_req *p = xalloc(sizeof *p);
    p->key = key;
    p->value = val;
    p->lease = lease;
    return p;
}

/* The error a canceled watch reports (WatchResponse.Err). */
static void watch_cancel_err(const struct api_watch_resp *r, struct call_err *ce)
{
    if (r->compact_revision) {
        call_err_msg(ce, "etcdserver: mvcc: required revision has been compacted");
    } else if (r->cancel_reason.len) {
        struct client_err e = {.code = 9};
        snprintf(e.msg, sizeof e.msg, "%.*s", (int)r->cancel_reason.len,
                 (const char *)r->cancel_reason.p);
        call_err_msg(ce, ctl_err_text(&e));
    } else {
        call_err_msg(ce, "etcdserver: mvcc: required revision is a future revision");
    }
}

static struct client_stream *watch_open(struct client *c, struct pb_bytes key,
                                        struct pb_bytes end, int64_t rev, struct call_err *ce)
{
    struct client_err e;
    struct client_stream *w = client_stream_open(c, "/etcdserverpb.Watch/Watch", NULL, 0, &e);
    if (!w) {
        call_err_msg(ce, ctl_err_text(&e));
        return NULL;
    }
    struct api_watch_create_req cr = {.key = key, .range_end = end, .start_revision = rev};
    struct api_watch_req req = {.create_request = &cr};
    if (client_stream_send(w, &api_watch_req_desc, &req, &e) < 0) {
        client_stream_free(w);
        call_err_msg(ce, ctl_err_text(&e));
        return NULL;
    }
    return w;
}

enum { WAITED = 0, WAIT_FAILED = -1, WAIT_CANCELED = -2 };

/* waitDelete: watches key from rev until it is deleted. */
static int wait_delete(struct session *s, struct pb_bytes key, int64_t rev, struct call_err *ce)
{
    struct client_stream *w = watch_open(s->c, key, (struct pb_bytes){0}, rev, ce);
    if (!w)
        return WAIT_FAILED;
    static struct mem_arena a;
    static bool a_live;
    if (!a_live)
        arena_live(&a);
    a_live = true;
    int rc = WAIT_FAILED;
    for (;;) {
        struct api_watch_resp r;
        struct client_err e;
        mem_arena_reset(&a);
        enum wait_result wr = session_wait(s, w, &api_watch_resp_desc, &r, &a, false, &e);
        if (wr == WAIT_SIGNAL) {
            call_err_msg(ce, "context canceled");
            rc = WAIT_CANCELED;
            break;
        }
        if (wr == WAIT_ERR) {
            call_err_msg(ce, ctl_err_text(&e));
            break;
        }
        bool deleted = false;
        for (size_t i = 0; i < r.n_events; i++)
            deleted |= r.events[i].type == API_EVENT_DELETE;
        if (deleted) {
            rc = WAITED;
            break;
        }
        if (r.canceled || r.compact_revision) {
            watch_cancel_err(&r, ce);
            break;
        }
    }
    client_stream_free(w);
    return rc;
}

/* waitDeletes: until no key under pfx has a create revision <= max_rev;
 * *hdr: the header of the last Get. */
static int wait_deletes(struct session *s, struct pb_bytes pfx, int64_t max_rev,
                        struct api_header **hdr, struct call_err *ce)
{
    struct pb_bytes end = prefix_end(pfx);
    for (;;) {
        if (sig_seen) {
            call_err_msg(ce, "context canceled");
            return WAIT_CANCELED;
        }
        struct api_range_req req = range_top(pfx, end, API_SORT_DESCEND);
        req.max_create_revision = max_rev;
        struct api_range_resp r;
        if (kv_range(s->c, &req, &r, NULL, ce) < 0)
            return WAIT_FAILED;
        if (r.n_kvs == 0) {
            *hdr = r.header;
            return WAITED;
        }
        int64_t rev = r.header ? r.header->revision : 0;
        int rc = wait_delete(s, r.kvs[0].key, rev, ce);
        if (rc != WAITED)
            return rc;
    }
}

/* ---- printing a Get response (display.Get) ---- */

static void print_get(const struct api_range_resp *r)
{
    struct ctl_json j = {0};
    switch (ctl_g.fmt) {
    case CTL_FMT_SIMPLE:
        for (size_t i = 0; i < r->n_kvs; i++)
            ctl_print_kv(&r->kvs[i], false);
        break;
    case CTL_FMT_FIELDS:
        ctl_fields_header(r->header);
        for (size_t i = 0; i < r->n_kvs; i++)
            ctl_fields_kv("", &r->kvs[i]);
        printf("\"More\" : %s\n\"Count\" : %lld\n", r->more ? "true" : "false",
               (long long)r->count);
        break;
    case CTL_FMT_JSON:
        cj_open(&j, NULL, '{');
        cj_header(&j, "header", r->header);
        if (r->n_kvs) {
            cj_open(&j, "kvs", '[');
            for (size_t i = 0; i < r->n_kvs; i++)
                cj_kv(&j, NULL, &r->kvs[i]);
            cj_close(&j, ']');
        }
        cj_bool(&j, "more", r->more, true);
        cj_i64(&j, "count", r->count, true);
        cj_close(&j, '}');
        cj_print(&j);
        break;
    case CTL_FMT_PROTOBUF:
        ctl_print_pb(&api_range_resp_desc, r);
        break;
    case CTL_FMT_TABLE:
        ctl_unsupported_format();
    }
    fflush(stdout);
}

/* ---- the mutex (concurrency/mutex.go) ---- */

struct mutex {
    struct session *s;
    struct pb_bytes pfx;   /* "<name>/" */
    struct pb_bytes key;   /* pfx + lease id in hex */
    int64_t rev;
    struct api_header *hdr;
};

static int mutex_unlock(struct mutex *m, struct call_err *ce)
{
    return kv_delete(m->s->c, m->key, ce);
}

/* 0 locked, WAIT_FAILED or WAIT_CANCELED with ce filled */
static int mutex_lock(struct mutex *m, struct call_err *ce)
{
    struct session *s = m->s;
    char *hex = lease_hex(s->id);
    uint8_t *k = xalloc(m->pfx.len + strlen(hex));
    memcpy(k, m->pfx.p, m->pfx.len);
    memcpy(k + m->pfx.len, hex, strlen(hex));
    m->key = (struct pb_bytes){k, m->pfx.len + strlen(hex)};

    struct api_request_op then[2] = {
        {.request_put = op_put(m->key, (struct pb_bytes){(const uint8_t *)"", 0}, s->id)},
        {.request_range = range_top_op(m->pfx, API_SORT_ASCEND)},
    };
    struct api_range_req *get = xalloc(sizeof *get);
    get->key = m->key;
    struct api_request_op els[2] = {
        {.request_range = get},
        {.request_range = range_top_op(m->pfx, API_SORT_ASCEND)},
    };
    struct api_txn_req req = {
        .compare = cmp_create(m->key, 0), .n_compare = 1,
        .success = then, .n_success = 2, .failure = els, .n_failure = 2,
    };
    struct api_txn_resp r;
    if (kv_txn(s->c, &req, &r, ce) < 0)
        return WAIT_FAILED;
    if (r.n_responses < 2 || !r.responses[1].response_range) {
        call_err_msg(ce, "unexpected txn response");
        return WAIT_FAILED;
    }
    m->rev = r.header ? r.header->revision : 0;
    if (!r.succeeded) {
        const struct api_range_resp *g = r.responses[0].response_range;
        if (!g || !g->n_kvs)
            ctl_panic("runtime error: index out of range [0] with length 0");
        m->rev = g->kvs[0].create_revision;
    }
    const struct api_range_resp *owner = r.responses[1].response_range;
    if (owner->n_kvs == 0 || owner->kvs[0].create_revision == m->rev) {
        m->hdr = r.header;
        return 0;
    }
    struct api_header *hdr = NULL;
    int rc = wait_deletes(s, m->pfx, m->rev - 1, &hdr, ce);
    if (rc != WAITED) {
        struct call_err ue = {0};
        (void)mutex_unlock(m, &ue);
        return rc;
    }
    m->hdr = hdr;
    return 0;
}

/* ---- running the command under the lock ---- */

/* Go's syscall.Signal names (Linux) */
static const char *go_signal_name(int sig, char *buf, size_t cap)
{
    static const char *const names[] = {
        NULL, "hangup", "interrupt", "quit", "illegal instruction", "trace/breakpoint trap",
        "aborted", "bus error", "floating point exception", "killed", "user defined signal 1",
        "segmentation fault", "user defined signal 2", "broken pipe", "alarm clock",
        "terminated", "stack fault", "child exited", "continued", "stopped (signal)", "stopped",
        "stopped (tty input)", "stopped (tty output)", "urgent I/O condition",
        "CPU time limit exceeded", "file size limit exceeded", "virtual timer expired",
        "profiling timer expired", "window changed", "I/O possible", "power failure",
        "bad system call",
    };
    if (sig > 0 && sig < (int)(sizeof names / sizeof names[0]))
        return names[sig];
    snprintf(buf, cap, "signal %d", sig);
    return buf;
}

/* Go's syscall.Errno texts for what exec can fail with */
static const char *go_errno_text(int err)
{
    switch (err) {
    case ENOENT:
        return "no such file or directory";
    case EACCES:
        return "permission denied";
    case ENOEXEC:
        return "exec format error";
    case ENOTDIR:
        return "not a directory";
    case EISDIR:
        return "is a directory";
    case E2BIG:
        return "argument list too long";
    case ENOMEM:
        return "cannot allocate memory";
    case ETXTBSY:
        return "text file busy";
    case ELOOP:
        return "too many levels of symbolic links";
    case ENAMETOOLONG:
        return "file name too long";
    default:
        return strerror(err);
    }
}

static bool executable(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && !S_ISDIR(st.st_mode) && (st.st_mode & 0111);
}

/* exec.LookPath: the path, or NULL with the error in err */
static char *look_path(const char *file, char *err, size_t cap)
{
    if (strchr(file, '/'))
        return (char *)file;
    const char *path = getenv("PATH");
    if (!path)
        path = "";
    for (const char *p = path;;) {
        size_t l = strcspn(p, ":");
        char *cand = xalloc(l + strlen(file) + 3);
        if (l == 0)
            snprintf(cand, l + strlen(file) + 3, "./%s", file);
        else
            snprintf(cand, l + strlen(file) + 3, "%.*s/%s", (int)l, p, file);
        if (executable(cand))
            return cand;
        if (!p[l])
            break;
        p += l + 1;
    }
    snprintf(err, cap, "exec: \"%s\": executable file not found in $PATH", file);
    return NULL;
}

/* The environment exec.Cmd hands over for Env = extra ++ os.Environ():
 * keys in first-seen order, the last value of each. */
static char **child_env(char **extra, size_t n_extra)
{
    size_t n = n_extra;
    for (char **e = environ; *e; e++)
        n++;
    char **out = xalloc((n + 1) * sizeof *out);
    size_t k = 0;
    char **all = xalloc((n + 1) * sizeof *all);
    size_t na = 0;
    for (size_t i = 0; i < n_extra; i++)
        all[na++] = extra[i];
    for (char **e = environ; *e; e++)
        all[na++] = *e;
    for (size_t i = 0; i < na; i++) {
        size_t kl = strcspn(all[i], "=");
        size_t j = 0;
        for (; j < k; j++)
            if (strcspn(out[j], "=") == kl && !memcmp(out[j], all[i], kl))
                break;
        if (j < k)
            out[j] = all[i];
        else
            out[k++] = all[i];
    }
    out[k] = NULL;
    return out;
}

/* cmd.Run(): 0, or -1 with Go's error text in err */
static int run_command(char **args, char **env, char *err, size_t cap)
{
    char *path = look_path(args[0], err, cap);
    if (!path)
        return -1;
    int ep[2];
    if (pipe2(ep, O_CLOEXEC) < 0) {
        snprintf(err, cap, "pipe: %s", strerror(errno));
        return -1;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, cap, "fork/exec %s: %s", path, go_errno_text(errno));
        close(ep[0]);
        close(ep[1]);
        return -1;
    }
    if (pid == 0) {
        /* Go: a nil Stdin reads from the null device; signals as default */
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0 && nul != 0) {
            dup2(nul, 0);
            close(nul);
        }
        execve(path, args, env);
        int e = errno;
        (void)!write(ep[1], &e, sizeof e);
        _exit(127);
    }
    close(ep[1]);
    int e = 0;
    ssize_t got;
    do
        got = read(ep[0], &e, sizeof e);
    while (got < 0 && errno == EINTR);
    close(ep[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (got == (ssize_t)sizeof e) {
        snprintf(err, cap, "fork/exec %s: %s", path, go_errno_text(e));
        return -1;
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    if (WIFEXITED(st)) {
        snprintf(err, cap, "exit status %d", WEXITSTATUS(st));
    } else if (WIFSIGNALED(st)) {
        char b[32];
        snprintf(err, cap, "signal: %s%s", go_signal_name(WTERMSIG(st), b, sizeof b),
                 WCOREDUMP(st) ? " (core dumped)" : "");
    } else {
        snprintf(err, cap, "exit status %d", -1);
    }
    return -1;
}

/* ---- lock ---- */

static int lock_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    if (argc == 0)
        ctl_fail(CTL_EXIT_BAD_ARGS,
                 "lock takes a lock name argument and an optional command to execute");
    struct client *c = ctl_client_from_cmd(cmd);
    static struct session s;
    struct call_err ce = {0};
    if (session_new(&s, c, lock_ttl, &ce) < 0)
        ctl_fail(CTL_EXIT_ERROR, "%s", ce.text);
    catch_signals();

    size_t nl = strlen(argv[0]);
    uint8_t *pfx = xalloc(nl + 1);
    memcpy(pfx, argv[0], nl);
    pfx[nl] = '/';
    struct mutex m = {.s = &s, .pfx = {pfx, nl + 1}};
    if (mutex_lock(&m, &ce) < 0)
        ctl_fail(CTL_EXIT_ERROR, "%s", ce.text);

    if (argc > 1) {
        char **extra = xalloc(2 * sizeof *extra);
        size_t kl = strlen("ETCD_LOCK_KEY=") + m.key.len + 1;
        extra[0] = xalloc(kl);
        snprintf(extra[0], kl, "ETCD_LOCK_KEY=%.*s", (int)m.key.len, (const char *)m.key.p);
        extra[1] = xalloc(48);
        snprintf(extra[1], 48, "ETCD_LOCK_REV=%lld", (long long)(m.hdr ? m.hdr->revision : 0));
        char **args = xalloc((size_t)argc * sizeof *args);
        for (int i = 1; i < argc; i++)
            args[i - 1] = argv[i];
        char err[600];
        int rc = run_command(args, child_env(extra, 2), err, sizeof err);
        struct call_err ue = {0};
        int urc = mutex_unlock(&m, &ue);
        if (rc < 0)
            ctl_fail(CTL_EXIT_ERROR, "%s", err);
        if (urc < 0)
            ctl_fail(CTL_EXIT_ERROR, "%s", ue.text);
        return 0;
    }

    struct api_range_resp k;
    if (sig_seen) {
        call_err_msg(&ce, "context canceled");
        ctl_fail(CTL_EXIT_ERROR, "%s", ce.text);
    }
    if (kv_get(c, m.key, &k, &ce) < 0)
        ctl_fail(CTL_EXIT_ERROR, "%s", ce.text);
    if (k.n_kvs == 0)
        ctl_fail(CTL_EXIT_ERROR, "lock lost on init");
    print_get(&k);

    struct client_err e;
    enum wait_result wr = session_wait(&s, NULL, NULL, NULL, NULL, true, &e);
    if (wr == WAIT_SIGNAL) {
        if (mutex_unlock(&m, &ce) < 0)
            ctl_fail(CTL_EXIT_ERROR, "%s", ce.text);
        return 0;
    }
    ctl_fail(CTL_EXIT_ERROR, "session expired");
}

/* ---- elect (concurrency/election.go) ---- */

struct election {
    struct session *s;
    struct pb_bytes pfx;
    struct pb_bytes key; /* empty: not the leader */
    int64_t rev;
    bool leader;
};

static int election_resign(struct election *el, struct call_err *ce)
{
    if (!el->leader)
        return 0;
    struct api_request_op then = {.request_delete_range = xalloc(sizeof(struct api_delete_req))};
    then.request_delete_range->key = el->key;
    struct api_txn_req req = {
        .compare = cmp_create(el->key, el->rev), .n_compare = 1, .success = &then, .n_success = 1,
    };
    struct api_txn_resp r;
    int rc = kv_txn(el->s->c, &req, &r, ce);
    el->leader = false;
    return rc;
}

static int election_proclaim(struct election *el, struct pb_bytes val, struct call_err *ce)
{
    struct api_request_op then = {.request_put = op_put(el->key, val, el->s->id)};
    struct api_txn_req req = {
        .compare = cmp_create(el->key, el->rev), .n_compare = 1, .success = &then, .n_success = 1,
    };
    struct api_txn_resp r;
    if (kv_txn(el->s->c, &req, &r, ce) < 0)
        return -1;
    if (!r.succeeded) {
        call_err_msg(ce, "election: not leader");
        return -1;
    }
    return 0;
}

static int election_campaign(struct election *el, struct pb_bytes val, struct call_err *ce)
{
    struct session *s = el->s;
    char *hex = lease_hex(s->id);
    uint8_t *k = xalloc(el->pfx.len + strlen(hex));
    memcpy(k, el->pfx.p, el->pfx.len);
    memcpy(k + el->pfx.len, hex, strlen(hex));
    struct pb_bytes key = {k, el->pfx.len + strlen(hex)};

    struct api_request_op then = {.request_put = op_put(key, val, s->id)};
    struct api_range_req *get = xalloc(sizeof *get);
    get->key = key;
    struct api_request_op els = {.request_range = get};
    struct api_txn_req req = {
        .compare = cmp_create(key, 0), .n_compare = 1,
        .success = &then, .n_success = 1, .failure = &els, .n_failure = 1,
    };
    struct api_txn_resp r;
    if (kv_txn(s->c, &req, &r, ce) < 0)
        return WAIT_FAILED;
    el->key = key;
    el->rev = r.header ? r.header->revision : 0;
    el->leader = true;
    if (!r.succeeded) {
        const struct api_range_resp *g = r.n_responses ? r.responses[0].response_range : NULL;
        if (!g || !g->n_kvs)
            ctl_panic("runtime error: index out of range [0] with length 0");
        el->rev = g->kvs[0].create_revision;
        if (g->kvs[0].value.len != val.len || memcmp(g->kvs[0].value.p, val.p, val.len)) {
            if (election_proclaim(el, val, ce) < 0) {
                struct call_err re = {0};
                (void)election_resign(el, &re);
                return WAIT_FAILED;
            }
        }
    }
    struct api_header *hdr;
    int rc = wait_deletes(s, el->pfx, el->rev - 1, &hdr, ce);
    if (rc == WAIT_CANCELED) {
        struct call_err re = {0};
        (void)election_resign(el, &re);
    } else if (rc != WAITED) {
        el->leader = false;
    }
    return rc;
}

static int campaign(struct client *c, const char *name, const char *prop)
{
    static struct session s;
    struct call_err ce = {0};
    if (session_new(&s, c, 0, &ce) < 0)
        ctl_fail(CTL_EXIT_ERROR, "%s", ce.text);
    catch_signals();
    size_t nl = strlen(name);
    uint8_t *pfx = xalloc(nl + 1);
    memcpy(pfx, name, nl);
    pfx[nl] = '/';
    struct election el = {.s = &s, .pfx = {pfx, nl + 1}};
    if (election_campaign(&el, bstr(prop), &ce) != WAITED)
        ctl_fail(CTL_EXIT_ERROR, "%s", ce.text);
    if (sig_seen)
        ctl_fail(CTL_EXIT_ERROR, "context canceled");
    struct api_range_resp r;
    if (kv_get(c, el.key, &r, &ce) < 0)
        ctl_fail(CTL_EXIT_ERROR, "%s", ce.text);
    print_get(&r);
    struct client_err e;
    if (session_wait(&s, NULL, NULL, NULL, NULL, true, &e) != WAIT_SIGNAL)
        ctl_fail(CTL_EXIT_ERROR, "elect: session expired");
    if (election_resign(&el, &ce) < 0)
        ctl_fail(CTL_EXIT_ERROR, "%s", ce.text);
    return 0;
}

/* Election.observe: prints the leader, every proclaimed value, and the next
 * leader once the key is deleted.  Returns only when the stream of
 * observations ends: 0 after a signal, -1 when the observer was lost.
 * oa holds one round (the Get and the first PUT seen), ea one event. */
static int observe_round(struct session *s, struct pb_bytes pfx, struct pb_bytes end,
                         struct mem_arena *oa, struct mem_arena *ea)
{
    struct call_err ce = {0};
    struct api_range_req req = range_top(pfx, end, API_SORT_ASCEND);
    struct api_range_resp resp;
    if (kv_range(s->c, &req, &resp, oa, &ce) < 0)
        return -1;
    struct api_header *hdr = resp.header;
    struct api_kv *kv = NULL;
    struct client_err e;
    if (resp.n_kvs == 0) {
        /* wait for the first key put under the prefix */
        int64_t rev = resp.header ? resp.header->revision : 0;
        struct client_stream *w = watch_open(s->c, pfx, end, rev, &ce);
        if (!w)
            return -1;
        while (!kv) {
            struct api_watch_resp *wr = mem_arena_zalloc(oa, sizeof *wr);
            if (!wr)
                ctl_fail(CTL_EXIT_ERROR, "out of memory");
            enum wait_result r = session_wait(s, w, &api_watch_resp_desc, wr, oa, false, &e);
            if (r != WAIT_MSG || wr->canceled || wr->compact_revision) {
                client_stream_free(w);
                return -1;
            }
            for (size_t i = 0; i < wr->n_events && !kv; i++) {
                if (wr->events[i].type == API_EVENT_PUT && wr->events[i].kv) {
                    kv = wr->events[i].kv;
                    hdr = wr->header ? wr->header : mem_arena_zalloc(oa, sizeof *hdr);
                    if (!hdr)
                        ctl_fail(CTL_EXIT_ERROR, "out of memory");
                    hdr->revision = kv->mod_revision;
                }
            }
        }
        client_stream_free(w);
    } else {
        kv = &resp.kvs[0];
    }
    struct api_range_resp out = {.header = hdr, .kvs = kv, .n_kvs = 1};
    print_get(&out);

    /* then every change of that key until it is deleted */
    int64_t rev = (hdr ? hdr->revision : 0) + 1;
    struct client_stream *w = watch_open(s->c, kv->key, (struct pb_bytes){0}, rev, &ce);
    if (!w)
        return -1;
    for (;;) {
        struct api_watch_resp wr;
        mem_arena_reset(ea);
        enum wait_result r = session_wait(s, w, &api_watch_resp_desc, &wr, ea, false, &e);
        if (r != WAIT_MSG)
            break;
        for (size_t i = 0; i < wr.n_events; i++) {
            if (wr.events[i].type == API_EVENT_DELETE) {
                client_stream_free(w);
                return 0;
            }
            resp.header = wr.header;
            resp.kvs = wr.events[i].kv;
            resp.n_kvs = 1;
            print_get(&resp);
        }
        if (wr.canceled)
            break;
    }
    client_stream_free(w);
    return -1;
}

static int observe_loop(struct session *s, struct pb_bytes pfx)
{
    static struct mem_arena oa, ea;
    arena_live(&oa);
    arena_live(&ea);
    struct pb_bytes end = prefix_end(pfx);
    int rc = 0;
    while (!sig_seen) {
        mem_arena_reset(&oa);
        if (observe_round(s, pfx, end, &oa, &ea) < 0) {
            rc = sig_seen ? 0 : -1;
            break;
        }
    }
    return rc;
}

static int observe(struct client *c, const char *name)
{
    static struct session s;
    struct call_err ce = {0};
    if (session_new(&s, c, 0, &ce) < 0)
        ctl_fail(CTL_EXIT_ERROR, "%s", ce.text);
    catch_signals();
    size_t nl = strlen(name);
    uint8_t *pfx = xalloc(nl + 1);
    memcpy(pfx, name, nl);
    pfx[nl] = '/';
    if (observe_loop(&s, (struct pb_bytes){pfx, nl + 1}) < 0 && !sig_seen)
        ctl_fail(CTL_EXIT_ERROR, "elect: observer lost");
    return 0;
}

static int elect_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    if (argc != 1 && argc != 2)
        ctl_fail(CTL_EXIT_BAD_ARGS,
                 "elect takes one election name argument and an optional proposal argument");
    struct client *c = ctl_client_from_cmd(cmd);
    if (argc == 1) {
        if (!elect_listen)
            ctl_fail(CTL_EXIT_BAD_ARGS, "no proposal argument but -l not set");
        return observe(c, argv[0]);
    }
    if (elect_listen)
        ctl_fail(CTL_EXIT_BAD_ARGS, "proposal given but -l is set");
    return campaign(c, argv[0], argv[1]);
}
