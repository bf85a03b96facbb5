/* ctl_watch.c - etcdctl's watch command: key/range/prefix watches, --rev,
 * --prev-kv, interactive mode (-i: "watch ..." and "progress" lines on
 * stdin), running a command per event after "--" with ETCD_WATCH_* in its
 * environment, ETCDCTL_WATCH_KEY/RANGE_END, and every output format
 * (ctlv3/command/watch_command.go and the printers' Watch).
 *
 * All watches share one Watch stream, as clientv3's watchers with the same
 * context do: creates go out one at a time and the "created" answer names
 * the watch; fragments are joined; a progress notification without a
 * watch id goes to every watch.  When the stream breaks the watches are
 * created again from the revision after the last event seen.
 */
#include "ctl.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static bool watch_interactive, watch_prefix, watch_prev_kv;
static int64_t watch_rev;

static struct ctl_flag watch_flags[] = {
    {"interactive", 'i', CTL_BOOL, "false", "Interactive mode", &watch_interactive},
    {"prefix", 0, CTL_BOOL, "false", "Watch on a prefix if prefix is set", &watch_prefix},
    {"rev", 0, CTL_INT64, "0", "Revision to start watching", &watch_rev},
    {"prev-kv", 0, CTL_BOOL, "false", "get the previous key-value pair before the event happens", &watch_prev_kv},
    {0},
};

static int watch_run(struct ctl_cmd *cmd, int argc, char **argv);

struct ctl_cmd ctl_cmd_watch = {
    .use = "watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]",
    .short_desc = "Watches events stream on keys or prefixes",
    .flags = watch_flags,
    .run = watch_run,
};

static const char *const err_bad_args_num = "bad number of arguments";
static const char *const err_conflict_env = "bad number of arguments (found conflicting environment key)";
static const char *const err_separator = "bad number of arguments (found separator --, but no commands)";

/* ---- watchers on the stream ---- */

#define MAX_WATCHERS 256

struct watcher {
    struct api_watch_create_req req; /* start_revision follows the events seen */
    char **exec;                     /* NULL-terminated, or NULL */
    int64_t id;                      /* -1 until created */
    bool closed;
};

static struct {
    struct client *c;
    struct client_stream *s;
    struct watcher *w[MAX_WATCHERS];
    size_t n;
    size_t creating; /* index of the watcher whose create is in flight, or n */
    bool interactive;
    struct mem_arena a; /* one response */
    struct api_watch_resp cur; /* fragments being joined */
    bool have_cur;
    struct mem_buf frag_events; /* joined fragments' events */
} ws;

static void *xalloc(size_t n)
{
    void *p = mem_arena_zalloc(&ctl_arena, n ? n : 1);
    if (!p)
        ctl_fail(CTL_EXIT_ERROR, "out of memory");
    return p;
}

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
    end[0] = 0;
    return (struct pb_bytes){end, 1};
}

static const char *const hasleader_md[] = {"hasleader", "true", NULL};

static void send_next_create(void)
{
    if (ws.creating < ws.n || !ws.s)
        return;
    for (size_t i = 0; i < ws.n; i++) {
        if (ws.w[i]->id < 0 && !ws.w[i]->closed) {
            struct api_watch_req req = {.create_request = &ws.w[i]->req};
            struct client_err e;
            if (client_stream_send(ws.s, &api_watch_req_desc, &req, &e) == 0)
                ws.creating = i;
            return;
        }
    }
}

static void open_stream(void)
{
    struct client_err e;
    while (!(ws.s = client_stream_open(ws.c, "/etcdserverpb.Watch/Watch", hasleader_md,
                                       ctl_deadline(), &e)))
        usleep(500000);
    ws.creating = ws.n;
    for (size_t i = 0; i < ws.n; i++)
        ws.w[i]->id = -1;
    send_next_create();
}

/* getWatchChan: a watcher for args (key [range_end]); NULL with err */
static struct watcher *new_watcher(char **args, int n, char **exec, const char **err)
{
    if (n < 1) {
        *err = err_bad_args_num;
        return NULL;
    }
    struct watcher *w = xalloc(sizeof *w);
    w->id = -1;
    w->exec = exec;
    w->req.key = (struct pb_bytes){(const uint8_t *)args[0], strlen(args[0])};
    w->req.start_revision = watch_rev;
    if (n == 2) {
        if (watch_prefix) {
            *err = "`range_end` and `--prefix` are mutually exclusive";
            return NULL;
        }
        w->req.range_end = (struct pb_bytes){(const uint8_t *)args[1], strlen(args[1])};
    }
    if (watch_prefix) {
        if (w->req.key.len == 0) {
            w->req.key = (struct pb_bytes){(const uint8_t *)"", 1};
            w->req.range_end = (struct pb_bytes){(const uint8_t *)"", 1};
        } else {
            w->req.range_end = prefix_end(w->req.key);
        }
    }
    w->req.prev_kv = watch_prev_kv;
    return w;
}

static void add_watcher(struct watcher *w)
{
    if (ws.n >= MAX_WATCHERS)
        ctl_fail(CTL_EXIT_ERROR, "too many watches");
    ws.w[ws.n++] = w;
    if (ws.creating == ws.n - 1)
        ws.creating = ws.n;
    send_next_create();
}

/* ---- printing a response ---- */

static const char *event_type(int32_t t)
{
    return t == API_EVENT_PUT ? "PUT" : t == API_EVENT_DELETE ? "DELETE" : "UNKNOWN";
}

static void print_watch(const struct api_watch_resp *r)
{
    struct ctl_json j = {0};
    static const struct api_header empty;
    const struct api_header *h = r->header ? r->header : &empty;
    switch (ctl_g.fmt) {
    case CTL_FMT_SIMPLE:
        for (size_t i = 0; i < r->n_events; i++) {
            const struct api_event *ev = &r->events[i];
            printf("%s\n", event_type(ev->type));
            if (ev->prev_kv)
                ctl_print_kv(ev->prev_kv, false);
            if (ev->kv)
                ctl_print_kv(ev->kv, false);
        }
        break;
    case CTL_FMT_JSON:
        cj_open(&j, NULL, '{');
        cj_open(&j, "Header", '{');
        cj_header_fields(&j, h);
        cj_close(&j, '}');
        cj_open(&j, "Events", '[');
        for (size_t i = 0; i < r->n_events; i++) {
            const struct api_event *ev = &r->events[i];
            cj_open(&j, NULL, '{');
            cj_i64(&j, "type", ev->type, true);
            if (ev->kv)
                cj_kv(&j, "kv", ev->kv);
            if (ev->prev_kv)
                cj_kv(&j, "prev_kv", ev->prev_kv);
            cj_close(&j, '}');
        }
        cj_close(&j, ']');
        cj_i64(&j, "CompactRevision", r->compact_revision, false);
        cj_bool(&j, "Canceled", r->canceled, false);
        cj_bool(&j, "Created", r->created, false);
        cj_close(&j, '}');
        cj_print(&j);
        break;
    case CTL_FMT_FIELDS:
        ctl_fields_header(h);
        for (size_t i = 0; i < r->n_events; i++) {
            const struct api_event *ev = &r->events[i];
            printf("\"Type\" : %s\n", event_type(ev->type));
            if (ev->prev_kv)
                ctl_fields_kv("Prev", ev->prev_kv);
            if (ev->kv)
                ctl_fields_kv("", ev->kv);
        }
        break;
    case CTL_FMT_PROTOBUF: {
        /* etcdctl rebuilds the message: header, events, compact, flags */
        struct api_watch_resp m = {.header = (struct api_header *)h,
                                   .events = r->events, .n_events = r->n_events,
                                   .compact_revision = r->compact_revision,
                                   .canceled = r->canceled, .created = r->created};
        ctl_print_pb(&api_watch_resp_desc, &m);
        break;
    }
    case CTL_FMT_TABLE:
        ctl_unsupported_format();
    }
    fflush(stdout);
}

/* exec.Command's error text for a failed run */
static void run_exec(struct watcher *w, const struct api_watch_resp *r, const struct api_event *ev)
{
    struct mem_buf vars[4] = {{0}};
    (void)!mem_buf_printf(&vars[0], "ETCD_WATCH_REVISION=%lld",
                          (long long)(r->header ? r->header->revision : 0));
    (void)!mem_buf_printf(&vars[1], "ETCD_WATCH_EVENT_TYPE=");
    const char *t = event_type(ev->type);
    (void)!ctl_quote(&vars[1], t, strlen(t));
    (void)!mem_buf_printf(&vars[2], "ETCD_WATCH_KEY=");
    (void)!ctl_quote(&vars[2], ev->kv ? ev->kv->key.p : NULL, ev->kv ? ev->kv->key.len : 0);
    (void)!mem_buf_printf(&vars[3], "ETCD_WATCH_VALUE=");
    (void)!ctl_quote(&vars[3], ev->kv ? ev->kv->value.p : NULL, ev->kv ? ev->kv->value.len : 0);
    for (int i = 0; i < 4; i++)
        (void)!mem_buf_putc(&vars[i], 0);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < 4; i++)
            putenv((char *)vars[i].data);
        execvp(w->exec[0], w->exec);
        _exit(127);
    }
    int st = 0;
    bool ok = pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    for (int i = 0; i < 4; i++)
        mem_buf_free(&vars[i]);
    if (ok)
        return;
    struct mem_buf b = {0};
    (void)!mem_buf_putc(&b, '[');
    for (size_t i = 0; w->exec[i]; i++) {
        if (i)
            (void)!mem_buf_putc(&b, ' ');
        (void)!ctl_quote(&b, w->exec[i], strlen(w->exec[i]));
    }
    (void)!mem_buf_putc(&b, ']');
    (void)!mem_buf_putc(&b, 0);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 127 && !strchr(w->exec[0], '/'))
        fprintf(stderr, "command %s error (exec: \"%s\": executable file not found in $PATH)\n",
                (char *)b.data, w->exec[0]);
    else if (WIFSIGNALED(st))
        fprintf(stderr, "command %s error (signal: %s)\n", (char *)b.data, strsignal(WTERMSIG(st)));
    else
        fprintf(stderr, "command %s error (exit status %d)\n", (char *)b.data, WEXITSTATUS(st));
    ctl_exit(1);
}

static bool is_progress(const struct api_watch_resp *r)
{
    return r->n_events == 0 && !r->canceled && !r->created && r->compact_revision == 0 &&
           r->header && r->header->revision != 0;
}

/* printWatchCh for one response to w; false when w is done (its channel
 * would close) */
static bool deliver(struct watcher *w, const struct api_watch_resp *r)
{
    bool failed = r->compact_revision != 0 || r->canceled;
    if (r->canceled) {
        fflush(stdout);
        if (r->compact_revision)
            fprintf(stderr, "watch was canceled (etcdserver: mvcc: required revision has been compacted)\n");
        else if (r->cancel_reason.len)
            fprintf(stderr, "watch was canceled (%.*s)\n", (int)r->cancel_reason.len,
                    (const char *)r->cancel_reason.p);
        else
            fprintf(stderr, "watch was canceled (etcdserver: mvcc: required revision is a future revision)\n");
    }
    if (is_progress(r))
        printf("progress notify: %lld\n", (long long)r->header->revision);
    print_watch(r);
    if (w->exec)
        for (size_t i = 0; i < r->n_events; i++)
            run_exec(w, r, &r->events[i]);
    /* where a re-created watch resumes */
    if (r->n_events && r->events[r->n_events - 1].kv)
        w->req.start_revision = r->events[r->n_events - 1].kv->mod_revision + 1;
    return !failed;
}

/* A watcher's channel closed: the command ends unless interactive. */
static void watcher_closed(struct watcher *w)
{
    w->closed = true;
    if (!ws.interactive)
        ctl_fail(CTL_EXIT_INTERRUPTED, "watch is canceled by the server");
}

static void handle(const struct api_watch_resp *r)
{
    if (r->created) {
        if (ws.creating < ws.n) {
            struct watcher *w = ws.w[ws.creating];
            w->id = r->watch_id;
            if (w->req.start_revision == 0 && r->header)
                w->req.start_revision = r->header->revision + 1;
            ws.creating = ws.n;
            if (r->canceled)
                watcher_closed(w);
        }
        send_next_create();
        return;
    }
    if (r->canceled && r->compact_revision == 0) {
        for (size_t i = 0; i < ws.n; i++)
            if (ws.w[i]->id == r->watch_id && !ws.w[i]->closed)
                watcher_closed(ws.w[i]);
        return;
    }
    if (is_progress(r) && r->watch_id == -1) {
        for (size_t i = 0; i < ws.n; i++)
            if (ws.w[i]->id >= 0 && !ws.w[i]->closed && !deliver(ws.w[i], r))
                watcher_closed(ws.w[i]);
        return;
    }
    for (size_t i = 0; i < ws.n; i++) {
        struct watcher *w = ws.w[i];
        if (w->id == r->watch_id && !w->closed) {
            if (!deliver(w, r))
                watcher_closed(w);
            return;
        }
    }
}

/* Joins fragments; handles complete responses. */
static void receive(struct api_watch_resp *r)
{
    if (!ws.have_cur || r->created || r->canceled) {
        ws.frag_events.len = 0;
        ws.cur = *r;
        ws.have_cur = true;
    } else if (ws.cur.watch_id == r->watch_id) {
        ws.cur.fragment = r->fragment;
    }
    if (mem_buf_append(&ws.frag_events, r->events, r->n_events * sizeof *r->events) < 0)
        ctl_fail(CTL_EXIT_ERROR, "out of memory");
    if (!r->created && ws.cur.fragment)
        return;
    ws.cur.events = (struct api_event *)ws.frag_events.data;
    ws.cur.n_events = ws.frag_events.len / sizeof(struct api_event);
    ws.have_cur = false;
    handle(&ws.cur);
    ws.frag_events.len = 0;
    mem_arena_reset(&ws.a);
}

/* ---- argument handling (parseWatchArgs) ---- */

/* pflag on watch's own flags (no -h), as a fresh FlagSet: 0 or -1 (err) */
static int parse_line_flags(char **a, int n, char ***out, int *on, char *err, size_t cap)
{
    watch_interactive = watch_prefix = watch_prev_kv = false;
    watch_rev = 0;
    for (struct ctl_flag *f = watch_flags; f->name; f++)
        f->changed = false;
    int pn;
    char **pa;
    if (ctl_parse_cmd_flags(&ctl_cmd_watch, false, a, n, &pn, &pa, err, cap) < 0)
        return -1;
    *out = pa;
    *on = pn;
    return 0;
}

/* Returns the error text, or NULL with the watch key/range in wargs and
 * the command after "--" in *exec. */
static const char *parse_watch_args(char **cargs, int cn, const char *env_key,
                                    const char *env_range, bool interactive, char ***wargs,
                                    int *wn, char ***exec)
{
    char **raw = ctl_os_argv;
    int rn = ctl_os_argc;
    for (int i = 0; i < ctl_os_argc; i++) {
        if (!strcmp(ctl_os_argv[i], "watch")) {
            raw = ctl_os_argv + i + 1;
            rn = ctl_os_argc - i - 1;
            break;
        }
    }
    char **w = xalloc(((size_t)cn + 3) * sizeof *w);
    memcpy(w, cargs, (size_t)cn * sizeof *w);
    int n = cn;
    if (interactive) {
        w++; /* "watch" */
        n--;
    }
    int exec_idx = -1;
    char **seps = interactive ? w : raw;
    int sn = interactive ? n : rn;
    for (int i = 0; i < sn; i++) {
        if (!strcmp(seps[i], "--")) {
            exec_idx = i;
            break;
        }
    }
    static char errbuf[256];
    if (!interactive) {
        if (exec_idx >= 0 && exec_idx == rn - 1)
            return err_separator;
        if (exec_idx < 0 && rn < 1 && !*env_key)
            return err_bad_args_num;
        if (exec_idx >= 0 && *env_key) {
            int ridx = rn - 1;
            for (int widx = n - 1; widx >= 0; widx--) {
                if (ridx >= 0 && !strcmp(w[widx], raw[ridx])) {
                    ridx--;
                    continue;
                }
                if (ridx == exec_idx)
                    return err_conflict_env;
            }
        }
        if (exec_idx < 0 && n > 0 && *env_key)
            return err_conflict_env;
    } else {
        if (exec_idx >= 0 && exec_idx == n - 1)
            return err_separator;
        char **pa;
        int pn;
        if (parse_line_flags(w, n, &pa, &pn, errbuf, sizeof errbuf) < 0)
            return errbuf;
        if (exec_idx < 0 && !*env_key && pn < 1)
            return err_bad_args_num;
        if (exec_idx < 0 && pn > 0 && *env_key)
            return err_conflict_env;
    }
    *exec = NULL;
    if (exec_idx >= 0) {
        int en = sn - exec_idx - 1;
        char **ex = xalloc(((size_t)en + 1) * sizeof *ex);
        memcpy(ex, seps + exec_idx + 1, (size_t)en * sizeof *ex);
        *exec = ex;
    }
    if (interactive) {
        char **pa;
        int pn;
        if (parse_line_flags(w, n, &pa, &pn, errbuf, sizeof errbuf) < 0)
            return errbuf;
        w = pa;
        n = pn;
    }
    if (*env_key) {
        int extra = *env_range ? 2 : 1;
        char **nw = xalloc(((size_t)n + 3) * sizeof *nw);
        nw[0] = (char *)env_key;
        if (extra == 2)
            nw[1] = (char *)env_range;
        memcpy(nw + extra, w, (size_t)n * sizeof *nw);
        w = nw;
        n += extra;
    }
    if (exec_idx >= 0) {
        /* drop the command words cobra also left in the arguments */
        int end = n - 1;
        for (; end >= 0; end--)
            if (!strcmp(w[end], seps[exec_idx + 1]))
                break;
        n = end < 0 ? 0 : end;
    }
    *wargs = w;
    *wn = n;
    return NULL;
}

/* ---- the command ---- */

static void loop(int wake_fd)
{
    struct client_err e;
    for (;;) {
        struct api_watch_resp r;
        enum client_recv rr =
            client_stream_recv(ws.s, &api_watch_resp_desc, &r, &ws.a, 0, wake_fd, &e);
        if (rr == CLIENT_RECV_MSG) {
            receive(&r);
            continue;
        }
        if (rr == CLIENT_RECV_WAKE)
            return;
        /* the stream ended: halting errors end the watches, the others
         * (connection lost, Unavailable) are retried on a new stream */
        bool retry = rr == CLIENT_RECV_END || e.code == CLIENT_CONN || e.code == 14 ||
                     e.code == 13;
        if (!retry || !strcmp(e.msg, "etcdserver: no leader")) {
            for (size_t i = 0; i < ws.n; i++)
                if (!ws.w[i]->closed)
                    watcher_closed(ws.w[i]);
            if (ws.interactive)
                ctl_fail(CTL_EXIT_INTERRUPTED, "watch is canceled by the server");
        }
        client_stream_free(ws.s);
        ws.s = NULL;
        usleep(100000);
        open_stream();
    }
}

/* bufio.ReadString('\n') on stdin, a byte at a time so that nothing is
 * read ahead of the line */
static char *read_line(bool *eof)
{
    struct mem_buf b = {0};
    *eof = false;
    for (;;) {
        char ch;
        ssize_t r = read(0, &ch, 1);
        if (r <= 0) {
            *eof = true;
            break;
        }
        if (mem_buf_putc(&b, (uint8_t)ch) < 0)
            ctl_fail(CTL_EXIT_ERROR, "out of memory");
        if (ch == '\n')
            break;
    }
    char *s = xalloc(b.len + 1);
    if (b.len)
        memcpy(s, b.data, b.len);
    mem_buf_free(&b);
    return s;
}

static void interactive_line(const char *env_key, const char *env_range)
{
    bool eof;
    char *l = read_line(&eof);
    if (eof)
        ctl_fail(CTL_EXIT_INVALID_INPUT, "Error reading watch request line: EOF");
    size_t ll = strlen(l);
    if (ll && l[ll - 1] == '\n')
        l[--ll] = 0;
    char **args;
    int n = ctl_argify(l, &args);
    fflush(stdout);
    if (n < 1) {
        fprintf(stderr, "Invalid command: %s (watch and progress supported)\n", l);
        return;
    }
    if (!strcmp(args[0], "watch")) {
        if (n < 2 && !*env_key) {
            fprintf(stderr, "Invalid command %s (command type or key is not provided)\n", l);
            return;
        }
        char **wargs, **exec;
        int wn;
        const char *err = parse_watch_args(args, n, env_key, env_range, true, &wargs, &wn, &exec);
        if (err)
            ctl_fail(CTL_EXIT_BAD_ARGS, "%s", err);
        struct watcher *w = new_watcher(wargs, wn, exec, &err);
        if (!w) {
            fprintf(stderr, "Invalid command %s (%s)\n", l, err);
            return;
        }
        if (!ws.s)
            open_stream();
        add_watcher(w);
    } else if (!strcmp(args[0], "progress")) {
        if (!ws.s)
            open_stream();
        struct api_watch_progress_req pr = {0};
        struct api_watch_req req = {.progress_request = &pr};
        struct client_err e;
        if (client_stream_send(ws.s, &api_watch_req_desc, &req, &e) < 0)
            ctl_fail(CTL_EXIT_ERROR, "%s", ctl_err_text(&e));
    } else {
        fprintf(stderr, "Invalid command %s (only support watch)\n", l);
    }
}

static int watch_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    const char *env_key = getenv("ETCDCTL_WATCH_KEY"), *env_range = getenv("ETCDCTL_WATCH_RANGE_END");
    env_key = env_key ? env_key : "";
    env_range = env_range ? env_range : "";
    if (!*env_key && *env_range) {
        struct mem_buf q = {0};
        (void)!ctl_quote(&q, env_range, strlen(env_range));
        (void)!mem_buf_putc(&q, 0);
        ctl_fail(CTL_EXIT_BAD_ARGS, "ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END=%s",
                 (char *)q.data);
    }
    mem_arena_init(&ws.a, 0);
    ws.interactive = watch_interactive;
    if (watch_interactive) {
        ws.c = ctl_client_from_cmd(cmd);
        for (;;) {
            if (ws.s)
                loop(0);
            interactive_line(env_key, env_range);
        }
    }
    char **wargs, **exec;
    int wn;
    const char *err = parse_watch_args(argv, argc, env_key, env_range, false, &wargs, &wn, &exec);
    if (err)
        ctl_fail(CTL_EXIT_BAD_ARGS, "%s", err);
    ws.c = ctl_client_from_cmd(cmd);
    struct watcher *w = new_watcher(wargs, wn, exec, &err);
    if (!w)
        ctl_fail(CTL_EXIT_BAD_ARGS, "%s", err);
    open_stream();
    add_watcher(w);
    loop(-1);
    return 0;
}
