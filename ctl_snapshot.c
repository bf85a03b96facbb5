/* ctl_snapshot.c - etcdctl's `snapshot save|status|restore` and the offline
 * `defrag --data-dir`, as etcdctl 3.4.23 runs them (ctlv3/command/
 * snapshot_command.go, clientv3/snapshot/v3_snapshot.go): the same files,
 * output lines, zap log lines on stderr, error texts and exit codes.
 *
 * save streams Maintenance.Snapshot into <file>.part, checks the sha256
 * trailer is there, fsyncs and renames.  status reads a snapshot (or any
 * bbolt file) read-only and hashes it as etcd does: CRC-32C over every
 * bucket name and its keys and values.  restore copies the db out of the
 * snapshot (checking the trailer), points its consistent index at the new
 * log, replaces the members, and writes the WAL and the .snap file a new
 * member of the --initial-cluster boots from: metadata, one ConfChange
 * AddNode per member at term 1, the hard state, the v2 store snapshot.
 *
 * Deliberately unlike etcdctl 3.4.23: restore writes the new members into the
 * db's members bucket (and empties members_removed) where 3.4's code meant
 * to but deletes nothing; etcd 3.4 reads membership from the v2 store, so
 * it serves the result the same, and a reader of the bucket sees the truth.
 *
 * Does not own: the file formats (db.c, backend.c, wal.c, snap.c), the
 * command-line frame and the client (ctl.c, client.c).
 */
#include "ctl.h"

#include <arpa/inet.h>
#include <bearssl.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "crc32c.h"
#include "db.h"
#include "member.h"
#include "snap.h"
#include "wal.h"

#define SHA_LEN 32       /* sha256.Size: the trailer of a saved snapshot */
#define MAX_MEMBERS 64
#define MAX_URLS MEMBER_MAX_URLS

/* ---- commands and flags ---- */

static char *r_data_dir, *r_wal_dir, *r_cluster, *r_token, *r_peer_urls, *r_name;
static bool r_skip_hash;

static struct ctl_flag restore_flags[] = {
    {"data-dir", 0, CTL_STRING, "", "Path to the data directory", &r_data_dir},
    {"wal-dir", 0, CTL_STRING, "", "Path to the WAL directory (use --data-dir if none given)", &r_wal_dir},
    {"initial-cluster", 0, CTL_STRING, "default=http://localhost:2380",
     "Initial cluster configuration for restore bootstrap", &r_cluster},
    {"initial-cluster-token", 0, CTL_STRING, "etcd-cluster",
     "Initial cluster token for the etcd cluster during restore bootstrap", &r_token},
    {"initial-advertise-peer-urls", 0, CTL_STRING, "http://localhost:2380",
     "List of this member's peer URLs to advertise to the rest of the cluster", &r_peer_urls},
    {"name", 0, CTL_STRING, "default", "Human-readable name for this member", &r_name},
    {"skip-hash-check", 0, CTL_BOOL, "false",
     "Ignore snapshot integrity hash value (required if copied from data directory)", &r_skip_hash},
    {0},
};

static int save_run(struct ctl_cmd *cmd, int argc, char **argv);
static int status_run(struct ctl_cmd *cmd, int argc, char **argv);
static int restore_run(struct ctl_cmd *cmd, int argc, char **argv);

static struct ctl_cmd cmd_restore = {
    .use = "restore <filename> [options]",
    .short_desc = "Restores an etcd member snapshot to an etcd directory",
    .flags = restore_flags,
    .run = restore_run,
};

static struct ctl_cmd cmd_save = {
    .use = "save <filename>",
    .short_desc = "Stores an etcd node backend snapshot to a given file",
    .run = save_run,
};

static struct ctl_cmd cmd_status = {
    .use = "status <filename>",
    .short_desc = "Gets backend snapshot status of a given file",
    .long_desc = "When --write-out is set to simple, this command prints out comma-separated status lists for "
                 "each endpoint.\nThe items in the lists are hash, revision, total keys, total size.\n",
    .run = status_run,
};

static struct ctl_cmd *const snapshot_subs[] = {&cmd_restore, &cmd_save, &cmd_status, NULL};

struct ctl_cmd ctl_cmd_snapshot = {
    .use = "snapshot <subcommand>",
    .short_desc = "Manages etcd node snapshots",
    .subs = snapshot_subs,
};

/* ---- small helpers ---- */

static void *xalloc(size_t n)
{
    void *p = mem_arena_zalloc(&ctl_arena, n ? n : 1);
    if (!p)
        ctl_fail(CTL_EXIT_ERROR, "out of memory");
    return p;
}

static char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = xalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* Go's %q of s. */
static char *quote(const char *s)
{
    struct mem_buf b = {0};
    if (ctl_quote(&b, s, strlen(s)) < 0 || mem_buf_putc(&b, 0) < 0)
        ctl_fail(CTL_EXIT_ERROR, "out of memory");
    char *r = xprintf("%s", (char *)b.data);
    mem_buf_free(&b);
    return r;
}

/* The text Go's syscall.Errno gives (lower case, as Go's table has it). */
static const char *go_errno(int e)
{
    static char buf[128];
    switch (e) {
    case ENOENT: return "no such file or directory";
    case EACCES: return "permission denied";
    case EEXIST: return "file exists";
    case EISDIR: return "is a directory";
    case ENOTDIR: return "not a directory";
    case ENOSPC: return "no space left on device";
    case EROFS: return "read-only file system";
    case EINVAL: return "invalid argument";
    case EBADF: return "bad file descriptor";
    case ENOTEMPTY: return "directory not empty";
    case EIO: return "input/output error";
    case EPERM: return "operation not permitted";
    case ELOOP: return "too many levels of symbolic links";
    case ENAMETOOLONG: return "file name too long";
    case EXDEV: return "invalid cross-device link";
    case EMFILE: return "too many open files";
    case EDQUOT: return "disk quota exceeded";
    default:
        snprintf(buf, sizeof buf, "%s", strerror(e));
        if (buf[0] >= 'A' && buf[0] <= 'Z')
            buf[0] = (char)(buf[0] + 32);
        return buf;
    }
}

/* Go's filepath.Clean. */
static char *path_clean(const char *path)
{
    size_t n = strlen(path), w = 0, r = 0, dotdot = 0;
    if (!n)
        return xprintf(".");
    char *out = xalloc(n + 4);
    bool rooted = path[0] == '/';
    if (rooted) {
        out[w++] = '/';
        r = dotdot = 1;
    }
    while (r < n) {
        if (path[r] == '/') {
            r++;
        } else if (path[r] == '.' && (r + 1 == n || path[r + 1] == '/')) {
            r++;
        } else if (path[r] == '.' && path[r + 1] == '.' && (r + 2 == n || path[r + 2] == '/')) {
            r += 2;
            if (w > dotdot) {
                w--;
                while (w > dotdot && out[w] != '/')
                    w--;
            } else if (!rooted) {
                if (w > 0)
                    out[w++] = '/';
                out[w++] = '.';
                out[w++] = '.';
                dotdot = w;
            }
        } else {
            if ((rooted && w != 1) || (!rooted && w != 0))
                out[w++] = '/';
            for (; r < n && path[r] != '/'; r++)
                out[w++] = path[r];
        }
    }
    if (w == 0)
        out[w++] = '.';
    out[w] = 0;
    return out;
}

/* Go's filepath.Join of the elements up to NULL (empty ones skipped). */
static char *path_join(const char *first, ...) __attribute__((sentinel));
static char *path_join(const char *first, ...)
{
    struct mem_buf s = {0};
    va_list ap;
    va_start(ap, first);
    for (const char *e = first; e; e = va_arg(ap, const char *)) {
        if (!e[0])
            continue;
        if ((s.len && mem_buf_putc(&s, '/') < 0) || mem_buf_append(&s, e, strlen(e)) < 0)
            ctl_fail(CTL_EXIT_ERROR, "out of memory");
    }
    va_end(ap);
    if (!s.len)
        return xprintf("%s", "");
    if (mem_buf_putc(&s, 0) < 0)
        ctl_fail(CTL_EXIT_ERROR, "out of memory");
    char *r = path_clean((char *)s.data);
    mem_buf_free(&s);
    return r;
}

/* os.MkdirAll(path, 0700): 0, or -1 with Go's error text in err. */
static int mkdir_all(const char *path, char *err, size_t cap)
{
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return 0;
        snprintf(err, cap, "mkdir %s: %s", path, go_errno(ENOTDIR));
        return -1;
    }
    char *p = xprintf("%s", path);
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/')
        p[--n] = 0;
    char *slash = strrchr(p, '/');
    if (slash && slash != p) {
        *slash = 0;
        if (mkdir_all(p, err, cap) < 0)
            return -1;
        *slash = '/';
    }
    if (mkdir(p, 0700) < 0 && !(errno == EEXIST && stat(p, &st) == 0 && S_ISDIR(st.st_mode))) {
        snprintf(err, cap, "mkdir %s: %s", path, go_errno(errno));
        return -1;
    }
    return 0;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---- zap's JSON log lines (stderr) ----
 * etcdctl's own logger (zap.NewProduction) stamps "ts" as epoch seconds;
 * clientv3's logger stamps ISO 8601 with milliseconds. */

struct zlog {
    struct mem_buf b;
};

static void zl_esc(struct mem_buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    (void)!mem_buf_putc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            (void)!mem_buf_putc(b, '\\');
            (void)!mem_buf_putc(b, *p);
        } else if (*p == '\n') {
            (void)!mem_buf_append(b, "\\n", 2);
        } else if (*p == '\r') {
            (void)!mem_buf_append(b, "\\r", 2);
        } else if (*p == '\t') {
            (void)!mem_buf_append(b, "\\t", 2);
        } else if (*p < 0x20) {
            char u[7] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15], 0};
            (void)!mem_buf_append(b, u, 6);
        } else {
            (void)!mem_buf_putc(b, *p);
        }
    }
    (void)!mem_buf_putc(b, '"');
}

/* Go's strconv.FormatFloat(v, 'f', -1, 64): the fewest digits that read back
 * as v. */
static void go_float(double v, char *out, size_t cap)
{
    for (int prec = 0; prec < 20; prec++) {
        snprintf(out, cap, "%.*f", prec, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

static void zl_begin(struct zlog *z, const char *level, bool iso, const char *caller, const char *msg)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    memset(z, 0, sizeof *z);
    (void)!mem_buf_printf(&z->b, "{\"level\":\"%s\",\"ts\":", level);
    if (iso) {
        struct tm tm;
        char when[64], zone[16];
        localtime_r(&ts.tv_sec, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
        strftime(zone, sizeof zone, "%z", &tm);
        if (!strcmp(zone, "+0000"))
            strcpy(zone, "Z");
        (void)!mem_buf_printf(&z->b, "\"%s.%03ld%s\"", when, ts.tv_nsec / 1000000, zone);
    } else {
        char f[64];
        int64_t ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
        go_float((double)ns / 1e9, f, sizeof f);
        (void)!mem_buf_printf(&z->b, "%s", f);
    }
    (void)!mem_buf_printf(&z->b, ",\"caller\":\"%s\",\"msg\":", caller);
    zl_esc(&z->b, msg);
}

static void zl_str(struct zlog *z, const char *key, const char *val)
{
    (void)!mem_buf_printf(&z->b, ",\"%s\":", key);
    zl_esc(&z->b, val);
}

static void zl_strs(struct zlog *z, const char *key, char *const *v, size_t n)
{
    (void)!mem_buf_printf(&z->b, ",\"%s\":[", key);
    for (size_t i = 0; i < n; i++) {
        if (i)
            (void)!mem_buf_putc(&z->b, ',');
        zl_esc(&z->b, v[i]);
    }
    (void)!mem_buf_putc(&z->b, ']');
}

static void zl_raw(struct zlog *z, const char *key, const char *val)
{
    (void)!mem_buf_printf(&z->b, ",\"%s\":%s", key, val);
}

static void zl_end(struct zlog *z)
{
    (void)!mem_buf_append(&z->b, "}\n", 2);
    fflush(stdout);
    fwrite(z->b.data, 1, z->b.len, stderr);
    mem_buf_free(&z->b);
}

/* capnslog's critical line and the panic that follows it (etcd's backend
 * panics when bbolt cannot open the file). */
static _Noreturn void backend_panic(const char *path, const char *why)
{
    struct timespec ts;
    struct tm tm;
    char when[64];
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    char *msg = xprintf("cannot open database at %s (%s)", path, why);
    fflush(stdout);
    fprintf(stderr, "%s.%06ld C | mvcc/backend: %s\n", when, ts.tv_nsec / 1000, msg);
    ctl_panic(msg);
}

/* ---- bbolt's open, as far as its error texts go ----
 * bolt.Open reads page 0 for the page size, refuses files shorter than two
 * pages and files whose two meta pages both fail validation; db.c's own
 * checks are stricter and worded differently, so the texts etcdctl prints
 * come from here.  Returns NULL when bbolt would open the file. */
static const char *bolt_open_error(const char *path, bool read_only)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return xprintf("open %s: %s", path, go_errno(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || S_ISDIR(st.st_mode)) {
        int e = S_ISDIR(st.st_mode) ? EISDIR : errno;
        close(fd);
        return xprintf("open %s: %s", path, go_errno(e));
    }
    const char *err = NULL;
    uint8_t page[4096];
    uint32_t ps = 4096;
    if (st.st_size == 0) {
        /* bbolt initialises an empty file: impossible read-only */
        if (read_only)
            err = xprintf("write %s: %s", path, go_errno(EBADF));
    } else if (pread(fd, page, sizeof page, 0) != (ssize_t)sizeof page) {
        err = "invalid database";
    } else {
        uint32_t mps;
        const char *e0 = db_meta_validate(page, &mps);
        if (!e0)
            ps = mps;
        uint8_t m1[DB_META_BYTES];
        if ((uint64_t)st.st_size < 2 * (uint64_t)ps)
            err = "file size too small";
        else if (e0 && (pread(fd, m1, sizeof m1, ps) != (ssize_t)sizeof m1 || db_meta_validate(m1, NULL)))
            err = e0;
    }
    close(fd);
    return err;
}

/* ---- snapshot save ---- */

/* isCommandTimeoutFlagSet: given on the command line or through
 * ETCDCTL_COMMAND_TIMEOUT (pflag marks a flag set from the environment as
 * changed). */
static bool command_timeout_set(struct ctl_cmd *cmd)
{
    for (struct ctl_cmd *c = cmd; c; c = c->parent)
        for (struct ctl_flag *f = c->pflags; f && f->name; f++)
            if (!strcmp(f->name, "command-timeout")) {
                if (f->changed)
                    return true;
                const char *v = getenv("ETCDCTL_COMMAND_TIMEOUT");
                int64_t ns;
                char e[128];
                return v && *v && ctl_parse_duration(v, &ns, e, sizeof e) == 0;
            }
    return false;
}

/* clientv3's stream interceptor logs this when the stream cannot be made
 * before the deadline; the stack is etcdctl 3.4.23's. */
static void log_stream_failed(const struct client_err *e)
{
    struct zlog z;
    char err[700];
    if (e->code == CLIENT_DEADLINE && !e->msg[0])
        snprintf(err, sizeof err, "rpc error: code = DeadlineExceeded desc = context deadline exceeded");
    else if (e->code == CLIENT_DEADLINE)
        snprintf(err, sizeof err, "rpc error: code = DeadlineExceeded desc = latest balancer error: "
                                  "all SubConns are in TransientFailure");
    else
        snprintf(err, sizeof err, "%s", ctl_err_text(e));
    zl_begin(&z, "error", true, "clientv3/retry_interceptor.go:129", "streamer failed to create ClientStream");
    zl_str(&z, "error", err);
    zl_str(&z, "stacktrace",
           "go.etcd.io/etcd/clientv3.(*Client).streamClientInterceptor.func1\n"
           "\tgo.etcd.io/etcd/clientv3/retry_interceptor.go:129\n"
           "google.golang.org/grpc.(*ClientConn).NewStream\n\tgoogle.golang.org/grpc/stream.go:148\n"
           "google.golang.org/grpc.NewClientStream\n\tgoogle.golang.org/grpc/stream.go:155\n"
           "go.etcd.io/etcd/etcdserver/etcdserverpb.(*maintenanceClient).Snapshot\n"
           "\tgo.etcd.io/etcd/etcdserver/etcdserverpb/rpc.pb.go:4296\n"
           "go.etcd.io/etcd/clientv3.(*retryMaintenanceClient).Snapshot\n\tgo.etcd.io/etcd/clientv3/retry.go:214\n"
           "go.etcd.io/etcd/clientv3.(*maintenance).Snapshot\n\tgo.etcd.io/etcd/clientv3/maintenance.go:195\n"
           "go.etcd.io/etcd/clientv3/snapshot.(*v3Manager).Save\n"
           "\tgo.etcd.io/etcd/clientv3/snapshot/v3_snapshot.go:123\n"
           "go.etcd.io/etcd/etcdctl/ctlv3/command.snapshotSaveCommandFunc\n"
           "\tgo.etcd.io/etcd/etcdctl/ctlv3/command/snapshot_command.go:113\n"
           "github.com/spf13/cobra.(*Command).execute\n\tgithub.com/spf13/cobra/command.go:920\n"
           "github.com/spf13/cobra.(*Command).ExecuteC\n\tgithub.com/spf13/cobra/command.go:1044\n"
           "github.com/spf13/cobra.(*Command).Execute\n\tgithub.com/spf13/cobra/command.go:968\n"
           "go.etcd.io/etcd/etcdctl/ctlv3.Start\n\tgo.etcd.io/etcd/etcdctl/ctlv3/ctl_nocov.go:26\n"
           "main.main\n\tgo.etcd.io/etcd/etcdctl/main.go:35\nruntime.main\n\truntime/proc.go:250");
    zl_end(&z);
}

/* The grpc status text clientv3 logs for a failed Recv. */
static const char *recv_err_text(const struct client_err *e)
{
    static char buf[700];
    if (e->code == CLIENT_DEADLINE)
        return "rpc error: code = DeadlineExceeded desc = context deadline exceeded";
    if (e->code == CLIENT_CONN)
        snprintf(buf, sizeof buf, "rpc error: code = Unavailable desc = %s", e->msg);
    else
        snprintf(buf, sizeof buf, "rpc error: code = %s desc = %s", client_code_name(e->code), e->msg);
    return buf;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Save's failure after the .part file exists: it goes (Save's deferred
 * RemoveAll), then "Error: ...", exit 5. */
static _Noreturn void save_fail(const char *part, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static _Noreturn void save_fail(const char *part, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    unlink(part);
    ctl_fail(CTL_EXIT_INTERRUPTED, "%s", msg);
}

static int save_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    if (argc != 1)
        ctl_fail(CTL_EXIT_BAD_ARGS, "snapshot save expects one argument");
    struct client *c = ctl_client_from_cmd(cmd);
    const struct client_opts *o = client_opts(c);
    if (o->n_endpoints != 1) {
        char *list = "";
        for (size_t i = 0; i < o->n_endpoints; i++)
            list = xprintf("%s%s%s", list, i ? " " : "", o->endpoints[i]);
        ctl_fail(CTL_EXIT_INTERRUPTED, "snapshot must be requested to one selected node, not multiple [%s]", list);
    }
    const char *path = argv[0], *ep = o->endpoints[0];
    int64_t deadline = command_timeout_set(cmd) ? ctl_deadline() : 0;
    char *part = xprintf("%s.part", path);

    int fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        const char *why = go_errno(errno);
        ctl_fail(CTL_EXIT_INTERRUPTED, "could not open %s (open %s: %s)", part, part, why);
    }
    struct zlog z;
    zl_begin(&z, "info", false, "snapshot/v3_snapshot.go:119", "created temporary db file");
    zl_str(&z, "path", part);
    zl_end(&z);

    struct timespec ts0;
    clock_gettime(CLOCK_MONOTONIC, &ts0);
    struct client_err e;
    struct client_stream *s = client_stream_open(c, "/etcdserverpb.Maintenance/Snapshot", NULL, deadline, &e);
    if (!s) {
        if (e.code == CLIENT_DEADLINE)
            log_stream_failed(&e);
        save_fail(part, "%s", ctl_err_text(&e));
    }
    struct api_snapshot_req req = {0};
    if (client_stream_send(s, &api_snapshot_req_desc, &req, &e) < 0)
        save_fail(part, "%s", ctl_err_text(&e));
    client_stream_close_send(s);
    zl_begin(&z, "info", true, "clientv3/maintenance.go:200", "opened snapshot stream; downloading");
    zl_end(&z);
    zl_begin(&z, "info", false, "snapshot/v3_snapshot.go:127", "fetching snapshot");
    zl_str(&z, "endpoint", ep);
    zl_end(&z);

    uint64_t size = 0;
    struct mem_arena a;
    mem_arena_init(&a, 0);
    for (;;) {
        struct api_snapshot_resp r;
        mem_arena_reset(&a);
        enum client_recv rr = client_stream_recv(s, &api_snapshot_resp_desc, &r, &a, deadline, -1, &e);
        if (rr == CLIENT_RECV_MSG) {
            if (r.blob.len && write_all(fd, r.blob.p, r.blob.len) < 0)
                save_fail(part, "write %s: %s", part, go_errno(errno));
            size += r.blob.len;
            continue;
        }
        if (rr == CLIENT_RECV_END) {
            zl_begin(&z, "info", true, "clientv3/maintenance.go:208", "completed snapshot read; closing");
            zl_end(&z);
            break;
        }
        if (rr == CLIENT_RECV_TIMEOUT) {
            e.code = CLIENT_DEADLINE;
            e.msg[0] = 0;
        }
        zl_begin(&z, "warn", true, "clientv3/maintenance.go:210", "failed to receive from snapshot stream; closing");
        zl_str(&z, "error", recv_err_text(&e));
        zl_end(&z);
        save_fail(part, "%s", ctl_err_text(&e));
    }
    mem_arena_free(&a);
    client_stream_free(s);

    if (size % 512 != SHA_LEN)
        save_fail(part, "sha256 checksum not found [bytes: %llu]", (unsigned long long)size);
    if (fsync(fd) < 0)
        save_fail(part, "sync %s: %s", part, go_errno(errno));
    if (close(fd) < 0)
        save_fail(part, "close %s: %s", part, go_errno(errno));
    struct timespec ts1;
    clock_gettime(CLOCK_MONOTONIC, &ts1);
    int64_t took_ns = (int64_t)(ts1.tv_sec - ts0.tv_sec) * 1000000000 + (ts1.tv_nsec - ts0.tv_nsec);
    char hsize[32], took[64];
    ctl_humanize_bytes(size, hsize, sizeof hsize);
    go_float((double)took_ns / 1e9, took, sizeof took);
    zl_begin(&z, "info", false, "snapshot/v3_snapshot.go:142", "fetched snapshot");
    zl_str(&z, "endpoint", ep);
    zl_str(&z, "size", hsize);
    zl_raw(&z, "took", took);
    zl_end(&z);

    /* os.Rename refuses to replace a directory with EEXIST */
    struct stat st;
    int rerr = 0;
    if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
        rerr = EEXIST;
    else if (rename(part, path) < 0)
        rerr = errno;
    if (rerr)
        save_fail(part, "could not rename %s to %s (rename %s %s: %s)", part, path, part, path, go_errno(rerr));
    zl_begin(&z, "info", false, "snapshot/v3_snapshot.go:152", "saved");
    zl_str(&z, "path", path);
    zl_end(&z);
    printf("Snapshot saved at %s\n", path);
    return CTL_EXIT_SUCCESS;
}

/* ---- snapshot status ---- */

struct db_status {
    uint32_t hash;
    int64_t revision;
    int64_t total_key;
    int64_t total_size;
};

/* v3Manager.Status: 0, or -1 with the error etcdctl prints. */
static int status_of(const char *path, struct db_status *ds, char **err)
{
    struct stat st;
    memset(ds, 0, sizeof *ds);
    if (stat(path, &st) < 0) {
        *err = xprintf("stat %s: %s", path, go_errno(errno));
        return -1;
    }
    const char *be = bolt_open_error(path, true);
    if (be) {
        *err = xprintf("%s", be);
        return -1;
    }
    struct db *db;
    char msg[512];
    int rc = db_open(path, DB_READ_ONLY, &db, msg, sizeof msg);
    if (rc) {
        *err = xprintf("%s", msg);
        return -1;
    }
    struct db_tx *tx;
    if ((rc = db_begin(db, false, &tx))) {
        *err = xprintf("%s", db_strerror(rc));
        db_close(db);
        return -1;
    }
    if ((rc = db_check(tx))) {
        *err = xprintf("snapshot file integrity check failed. 1 errors found.\n%s", db_tx_errmsg(tx));
        goto out;
    }
    ds->total_size = db_tx_size(tx);
    uint32_t h = 0;
    struct db_cursor top;
    struct db_val k, v;
    db_cursor_init(&top, tx, NULL);
    for (rc = db_cursor_first(&top, &k, &v); !rc; rc = db_cursor_next(&top, &k, &v)) {
        struct db_bucket *b;
        if (v.p || db_bucket_get(tx, NULL, k.p, k.len, &b)) {
            *err = xprintf("cannot get hash of bucket %.*s", (int)k.len, (const char *)k.p);
            rc = -1;
            goto out;
        }
        h = crc32c_update(h, k.p, k.len);
        bool is_key = k.len == 3 && !memcmp(k.p, "key", 3);
        struct db_cursor c;
        struct db_val bk, bv;
        db_cursor_init(&c, tx, b);
        for (rc = db_cursor_first(&c, &bk, &bv); !rc; rc = db_cursor_next(&c, &bk, &bv)) {
            h = crc32c_update(h, bk.p, bk.len);
            if (bv.p)
                h = crc32c_update(h, bv.p, bv.len);
            if (is_key) {
                if (bk.len < 17) { /* bytesToRev would index past the key */
                    *err = xprintf("revision key of %zu bytes in bucket key", bk.len);
                    rc = -1;
                    goto out;
                }
                uint64_t main = 0;
                for (int i = 0; i < 8; i++)
                    main = main << 8 | bk.p[i];
                ds->revision = (int64_t)main;
            }
            ds->total_key++;
        }
        if (rc != DB_ENOTFOUND)
            break;
    }
    if (rc != DB_ENOTFOUND) {
        *err = xprintf("%s", db_tx_errmsg(tx)[0] ? db_tx_errmsg(tx) : db_strerror(rc));
        rc = -1;
        goto out;
    }
    rc = 0;
    ds->hash = h;
out:
    db_rollback(tx);
    db_close(db);
    return rc ? -1 : 0;
}

static int status_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    (void)cmd;
    if (argc != 1)
        ctl_fail(CTL_EXIT_BAD_ARGS, "snapshot status requires exactly one argument");
    ctl_init_display();
    struct db_status ds;
    char *err;
    if (status_of(argv[0], &ds, &err) < 0)
        ctl_fail(CTL_EXIT_ERROR, "%s", err);
    char hash[16], rev[32], keys[32], size[32];
    snprintf(hash, sizeof hash, "%x", ds.hash);
    snprintf(rev, sizeof rev, "%lld", (long long)ds.revision);
    snprintf(keys, sizeof keys, "%lld", (long long)ds.total_key);
    ctl_humanize_bytes((uint64_t)ds.total_size, size, sizeof size);
    switch (ctl_g.fmt) {
    case CTL_FMT_SIMPLE:
        printf("%s, %s, %s, %s\n", hash, rev, keys, size);
        break;
    case CTL_FMT_TABLE: {
        static const char *const hdr[] = {"hash", "revision", "total keys", "total size"};
        char *cells[] = {hash, rev, keys, size};
        ctl_table(hdr, 4, cells, 1);
        break;
    }
    case CTL_FMT_JSON:
        printf("{\"hash\":%u,\"revision\":%lld,\"totalKey\":%lld,\"totalSize\":%lld}\n", ds.hash,
               (long long)ds.revision, (long long)ds.total_key, (long long)ds.total_size);
        break;
    case CTL_FMT_FIELDS:
        printf("\"Hash\" : %u\n\"Revision\" : %lld\n\"Keys\" : %lld\n\"Size\" : %lld\n", ds.hash,
               (long long)ds.revision, (long long)ds.total_key, (long long)ds.total_size);
        break;
    case CTL_FMT_PROTOBUF:
        ctl_unsupported_format();
    }
    return CTL_EXIT_SUCCESS;
}

/* ---- snapshot restore: URLs and the initial cluster ---- */

/* A URL as Go's url.Parse reads it, in the forms etcd accepts. */
struct gourl {
    char *str;    /* URL.String() */
    char *scheme; /* lower case */
    char *host;   /* "host:port" as written */
    bool has_path;
};

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* shouldEscape(c, encodeHost) for ASCII */
static bool host_char_bad(unsigned char c)
{
    if (c >= 0x80 || is_alpha((char)c) || (c >= '0' && c <= '9'))
        return false;
    return !strchr("-_.~!$&'()*+,;=:[]<>\"", c) || c == 0;
}

static bool valid_port(const char *p)
{
    if (!*p)
        return true;
    if (*p != ':')
        return false;
    for (p++; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    return true;
}

/* url.Parse: 0, or -1 with the reason (without the "parse %q: " Go adds). */
static int url_parse(const char *raw, struct gourl *u, const char **why)
{
    memset(u, 0, sizeof *u);
    for (const char *p = raw; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            *why = "net/url: invalid control character in URL";
            return -1;
        }
    char *s = xprintf("%s", raw), *frag = strchr(s, '#');
    if (frag)
        *frag++ = 0;
    /* getScheme */
    char *rest = s;
    size_t i = 0;
    for (; s[i]; i++) {
        char ch = s[i];
        if (is_alpha(ch))
            continue;
        if ((ch >= '0' && ch <= '9') || ch == '+' || ch == '-' || ch == '.') {
            if (i == 0)
                break;
            continue;
        }
        if (ch == ':') {
            if (i == 0) {
                *why = "missing protocol scheme";
                return -1;
            }
            s[i] = 0;
            u->scheme = s;
            rest = s + i + 1;
        }
        break;
    }
    if (!u->scheme)
        u->scheme = xprintf("%s", "");
    for (char *p = u->scheme; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p + 32);
    char *query = strchr(rest, '?');
    if (query)
        *query++ = 0;
    u->host = xprintf("%s", "");
    if (rest[0] != '/') {
        if (u->scheme[0]) { /* opaque: no host */
            u->str = xprintf("%s:%s", u->scheme, rest);
            return 0;
        }
        size_t seg = strcspn(rest, "/");
        if (memchr(rest, ':', seg)) {
            *why = "first path segment in URL cannot contain colon";
            return -1;
        }
    }
    char *auth = NULL;
    if (rest[0] == '/' && rest[1] == '/' && (u->scheme[0] || rest[2] != '/')) {
        auth = rest + 2;
        char *sl = strchr(auth, '/');
        auth = xprintf("%.*s", (int)(sl ? (size_t)(sl - auth) : strlen(auth)), auth);
        rest = sl ? sl : rest + strlen(rest);
        char *at = strrchr(auth, '@');
        char *host = at ? at + 1 : auth;
        if (host[0] == '[') {
            char *rb = strrchr(host, ']');
            if (!rb) {
                *why = "missing ']' in host";
                return -1;
            }
            if (!valid_port(rb + 1)) {
                *why = xprintf("invalid port %s after host", quote(rb + 1));
                return -1;
            }
        } else {
            char *colon = strrchr(host, ':');
            if (colon && !valid_port(colon)) {
                *why = xprintf("invalid port %s after host", quote(colon));
                return -1;
            }
        }
        for (const char *p = host; *p; p++) {
            if (*p == '%') {
                *why = xprintf("invalid URL escape %s", quote(xprintf("%.3s", p)));
                return -1;
            }
            if (host_char_bad((unsigned char)*p)) {
                *why = xprintf("invalid character %s in host name", quote(xprintf("%c", *p)));
                return -1;
            }
        }
        u->host = xprintf("%s", host);
    }
    u->has_path = rest[0] != 0;
    u->str = xprintf("%s%s%s%s%s%s%s%s", u->scheme, u->scheme[0] ? ":" : "", auth ? "//" : "", auth ? auth : "",
                     rest, query ? "?" : "", query ? query : "", frag ? "#" : "");
    if (frag)
        u->str = xprintf("%s%s", u->str, frag);
    return 0;
}

/* net.SplitHostPort: 0 and the host, or -1. */
static int split_host_port(const char *hp, char **host, char **port)
{
    const char *colon = strrchr(hp, ':');
    if (!colon)
        return -1;
    size_t j = 0, k = 0;
    if (hp[0] == '[') {
        const char *end = strchr(hp, ']');
        if (!end)
            return -1;
        if (end[1] == 0 || (end + 1 != colon))
            return -1;
        *host = xprintf("%.*s", (int)(end - hp - 1), hp + 1);
        j = 1;
        k = (size_t)(end - hp) + 1;
    } else {
        *host = xprintf("%.*s", (int)(colon - hp), hp);
        if (strchr(*host, ':'))
            return -1;
    }
    if (strchr(hp + j, '[') || strchr(hp + k, ']'))
        return -1;
    *port = xprintf("%s", colon + 1);
    return 0;
}

/* strings.TrimSpace for ASCII white space */
static char *trim(const char *s)
{
    while (*s && strchr(" \t\n\r\v\f", *s))
        s++;
    size_t n = strlen(s);
    while (n && strchr(" \t\n\r\v\f", s[n - 1]))
        n--;
    return xprintf("%.*s", (int)n, s);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* types.NewURLs: the URL strings sorted into out (n of them), or -1 with
 * etcd's error text. */
static int new_urls(char **in, size_t n, char **out, char **err)
{
    if (n == 0) {
        *err = "no valid URLs given";
        return -1;
    }
    if (n > MAX_URLS) {
        *err = xprintf("more than %d URLs", MAX_URLS);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        char *s = trim(in[i]);
        struct gourl u;
        const char *why;
        if (url_parse(s, &u, &why) < 0) {
            *err = xprintf("parse %s: %s", quote(s), why);
            return -1;
        }
        if (strcmp(u.scheme, "http") && strcmp(u.scheme, "https") && strcmp(u.scheme, "unix") &&
            strcmp(u.scheme, "unixs")) {
            *err = xprintf("URL scheme must be http, https, unix, or unixs: %s", s);
            return -1;
        }
        char *h, *p;
        if (split_host_port(u.host, &h, &p) < 0) {
            *err = xprintf("URL address does not have the form \"host:port\": %s", s);
            return -1;
        }
        if (u.has_path) {
            *err = xprintf("URL must not contain a path: %s", s);
            return -1;
        }
        out[i] = u.str;
    }
    qsort(out, n, sizeof *out, cmp_str);
    return 0;
}

struct rs_member {
    const char *name;
    char *urls[MAX_URLS];
    size_t n_urls;
    uint64_t id;
};

struct rs_cluster {
    struct rs_member m[MAX_MEMBERS];
    size_t n;
};

static int cmp_member_name(const void *a, const void *b)
{
    return strcmp(((const struct rs_member *)a)->name, ((const struct rs_member *)b)->name);
}

static int cmp_member_id(const void *a, const void *b)
{
    uint64_t x = ((const struct rs_member *)a)->id, y = ((const struct rs_member *)b)->id;
    return x < y ? -1 : x > y;
}

/* types.NewURLsMap: "name=url,name=url,...".  Go walks a map, so which
 * bad entry it reports first is chance; this reports in name order. */
static int new_urls_map(const char *s, struct rs_cluster *cl, char **err)
{
    char *copy = xprintf("%s", s), *p = copy;
    cl->n = 0;
    while (*p) {
        char *key = p, *comma = strchr(p, ',');
        if (comma) {
            *comma = 0;
            p = comma + 1;
        } else {
            p += strlen(p);
        }
        if (!*key)
            continue;
        char *val = "", *eq = strchr(key, '=');
        if (eq) {
            *eq = 0;
            val = eq + 1;
        }
        size_t i = 0;
        while (i < cl->n && strcmp(cl->m[i].name, key))
            i++;
        if (i == cl->n) {
            if (cl->n == MAX_MEMBERS) {
                *err = xprintf("more than %d members in the initial cluster", MAX_MEMBERS);
                return -1;
            }
            cl->m[cl->n++] = (struct rs_member){.name = key};
        }
        if (cl->m[i].n_urls == MAX_URLS) {
            *err = xprintf("more than %d URLs", MAX_URLS);
            return -1;
        }
        cl->m[i].urls[cl->m[i].n_urls++] = val;
    }
    qsort(cl->m, cl->n, sizeof cl->m[0], cmp_member_name);
    for (size_t i = 0; i < cl->n; i++)
        if (new_urls(cl->m[i].urls, cl->m[i].n_urls, cl->m[i].urls, err) < 0)
            return -1;
    return 0;
}

/* URLsMap.String(): sorted "name=url" pairs. */
static char *urls_map_string(const struct rs_member *ms, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += ms[i].n_urls;
    char **pairs = xalloc((total + 1) * sizeof *pairs);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < ms[i].n_urls; j++)
            pairs[k++] = xprintf("%s=%s", ms[i].name, ms[i].urls[j]);
    qsort(pairs, k, sizeof *pairs, cmp_str);
    struct mem_buf b = {0};
    for (size_t i = 0; i < k; i++)
        (void)!mem_buf_printf(&b, "%s%s", i ? "," : "", pairs[i]);
    (void)!mem_buf_putc(&b, 0);
    char *r = xprintf("%s", b.data ? (char *)b.data : "");
    mem_buf_free(&b);
    return r;
}

/* Go's %q of a []string: ["a" "b"] */
static char *quote_list(char *const *v, size_t n)
{
    struct mem_buf b = {0};
    (void)!mem_buf_putc(&b, '[');
    for (size_t i = 0; i < n; i++)
        (void)!mem_buf_printf(&b, "%s%s", i ? " " : "", quote(v[i]));
    (void)!mem_buf_printf(&b, "]");
    (void)!mem_buf_putc(&b, 0);
    char *r = xprintf("%s", (char *)b.data);
    mem_buf_free(&b);
    return r;
}

/* netutil's resolveURL: a URL whose host is a DNS name gets the first
 * address it resolves to.  NULL (and why) when resolving fails. */
static char *resolve_url(const char *s, char **why)
{
    struct gourl u;
    const char *perr;
    char *host, *port;
    if (url_parse(s, &u, &perr) < 0 || !strncmp(u.scheme, "unix", 4))
        return xprintf("%s", s);
    if (split_host_port(u.host, &host, &port) < 0) {
        *why = xprintf("failed to resolve %s (address %s: missing port in address)", quote(s), u.host);
        return NULL;
    }
    unsigned char buf[16];
    if (!strcmp(host, "localhost") || inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1)
        return xprintf("%s", s);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai) {
        *why = xprintf("failed to resolve %s (lookup %s: no such host)", quote(s), host);
        return NULL;
    }
    char ip[INET6_ADDRSTRLEN] = "";
    int pn = 0;
    if (ai->ai_family == AF_INET) {
        struct sockaddr_in *sa = (struct sockaddr_in *)ai->ai_addr;
        inet_ntop(AF_INET, &sa->sin_addr, ip, sizeof ip);
        pn = ntohs(sa->sin_port);
    } else if (ai->ai_family == AF_INET6) {
        struct sockaddr_in6 *sa = (struct sockaddr_in6 *)ai->ai_addr;
        inet_ntop(AF_INET6, &sa->sin6_addr, ip, sizeof ip);
        pn = ntohs(sa->sin6_port);
    }
    bool v6 = ai->ai_family == AF_INET6;
    freeaddrinfo(ai);
    const char *hs = strstr(s, u.host);
    if (!hs)
        return xprintf("%s", s);
    return xprintf("%.*s%s%s%s:%d%s", (int)(hs - s), s, v6 ? "[" : "", ip, v6 ? "]" : "", pn, hs + strlen(u.host));
}

/* netutil.URLStringsEqual of sorted lists: NULL when equal, else why. */
static char *urls_equal(char **a, size_t na, char **b, size_t nb)
{
    if (na != nb)
        return xprintf("len(%s) != len(%s)", quote_list(a, na), quote_list(b, nb));
    bool same = true;
    for (size_t i = 0; i < na && same; i++)
        same = !strcmp(a[i], b[i]);
    if (same)
        return NULL;
    char **ra = xalloc(na * sizeof *ra), **rb = xalloc(nb * sizeof *rb), *why = NULL;
    for (size_t i = 0; i < na; i++)
        if (!(ra[i] = resolve_url(a[i], &why)))
            return why;
    for (size_t i = 0; i < nb; i++)
        if (!(rb[i] = resolve_url(b[i], &why)))
            return why;
    qsort(ra, na, sizeof *ra, cmp_str);
    qsort(rb, nb, sizeof *rb, cmp_str);
    for (size_t i = 0; i < na; i++)
        if (strcmp(ra[i], rb[i]))
            return xprintf("resolved urls: %s != %s", quote(ra[i]), quote(rb[i]));
    return NULL;
}

static bool in_list(char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i], s))
            return true;
    return false;
}

/* ServerConfig.VerifyBootstrap for the restored member. */
static int verify_bootstrap(const struct rs_cluster *cl, const char *name, char **ap, size_t nap, char **err)
{
    const struct rs_member *self = NULL;
    for (size_t i = 0; i < cl->n; i++)
        if (!strcmp(cl->m[i].name, name))
            self = &cl->m[i];
    if (!self) {
        *err = xprintf("couldn't find local name %s in the initial cluster configuration", quote(name));
        return -1;
    }
    /* advertiseMatchesCluster */
    char *why = urls_equal(ap, nap, (char **)self->urls, self->n_urls);
    if (why) {
        struct rs_member mine = {.name = name, .n_urls = nap};
        memcpy(mine.urls, ap, nap * sizeof *ap);
        struct mem_buf b = {0};
        bool any = false;
        for (size_t i = 0; i < self->n_urls; i++)
            if (!in_list(ap, nap, self->urls[i]) && !(i && !strcmp(self->urls[i], self->urls[i - 1]))) {
                (void)!mem_buf_printf(&b, "%s%s=%s", any ? "," : "", name, self->urls[i]);
                any = true;
            }
        struct mem_buf aps = {0};
        for (size_t i = 0; i < nap; i++)
            (void)!mem_buf_printf(&aps, "%s%s", i ? "," : "", ap[i]);
        (void)!mem_buf_putc(&aps, 0);
        (void)!mem_buf_putc(&b, 0);
        if (any) {
            *err = xprintf("--initial-cluster has %s but missing from --initial-advertise-peer-urls=%s (%s)",
                           (char *)b.data, (char *)aps.data, why);
        } else {
            b.len = 0;
            for (size_t i = 0; i < nap; i++)
                if (!in_list((char **)self->urls, self->n_urls, ap[i]) && !(i && !strcmp(ap[i], ap[i - 1]))) {
                    (void)!mem_buf_printf(&b, "%s%s", any ? "," : "", ap[i]);
                    any = true;
                }
            (void)!mem_buf_putc(&b, 0);
            if (any)
                *err = xprintf("--initial-advertise-peer-urls has %s but missing from --initial-cluster=%s",
                               (char *)b.data, urls_map_string(&mine, 1));
            else
                *err = xprintf("failed to resolve %s to match --initial-cluster=%s (%s)", (char *)aps.data,
                               urls_map_string(&mine, 1), why);
        }
        mem_buf_free(&b);
        mem_buf_free(&aps);
        return -1;
    }
    /* checkDuplicateURL */
    size_t total = 0;
    char *all[MAX_MEMBERS * MAX_URLS];
    for (size_t i = 0; i < cl->n; i++)
        for (size_t j = 0; j < cl->m[i].n_urls; j++)
            all[total++] = cl->m[i].urls[j];
    qsort(all, total, sizeof *all, cmp_str);
    for (size_t i = 1; i < total; i++)
        if (!strcmp(all[i], all[i - 1])) {
            *err = xprintf("initial cluster %s has duplicate url", urls_map_string(cl->m, cl->n));
            return -1;
        }
    return 0;
}

/* ---- snapshot restore: the db ---- */

static _Noreturn void restore_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static _Noreturn void restore_fail(const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ctl_fail(CTL_EXIT_ERROR, "%s", msg);
}

/* Go's %v of a []byte: [1 2 3] */
static char *bytes_list(const uint8_t *p, size_t n)
{
    struct mem_buf b = {0};
    (void)!mem_buf_putc(&b, '[');
    for (size_t i = 0; i < n; i++)
        (void)!mem_buf_printf(&b, "%s%u", i ? " " : "", p[i]);
    (void)!mem_buf_printf(&b, "]");
    (void)!mem_buf_putc(&b, 0);
    char *r = xprintf("%s", (char *)b.data);
    mem_buf_free(&b);
    return r;
}

/* saveDB's first half: the snapshot's bytes to <snap_dir>/db, the sha256
 * trailer cut off and (unless skipped) checked. */
static void copy_db(const char *snap_path, const char *snap_dir, const char *dbpath, bool skip_hash)
{
    int in = open(snap_path, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        restore_fail("open %s: %s", snap_path, go_errno(errno));
    struct stat st;
    if (fstat(in, &st) < 0)
        restore_fail("stat %s: %s", snap_path, go_errno(errno));
    if (S_ISDIR(st.st_mode))
        restore_fail("read %s: is a directory", snap_path);
    uint64_t size = (uint64_t)st.st_size;
    uint8_t sha[SHA_LEN];
    if (size < SHA_LEN)
        restore_fail("seek %s: invalid argument", snap_path);
    if (pread(in, sha, SHA_LEN, (off_t)(size - SHA_LEN)) != SHA_LEN)
        restore_fail("read %s: %s", snap_path, go_errno(errno ? errno : EIO));
    char err[1024];
    if (mkdir_all(snap_dir, err, sizeof err) < 0)
        restore_fail("%s", err);
    int out = open(dbpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (out < 0)
        restore_fail("open %s: %s", dbpath, go_errno(errno));
    bool has_hash = size % 512 == SHA_LEN;
    uint64_t body = has_hash ? size - SHA_LEN : size;
    br_sha256_context h;
    br_sha256_init(&h);
    static uint8_t buf[1 << 16];
    uint64_t done = 0;
    for (;;) {
        ssize_t r = read(in, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            restore_fail("read %s: %s", snap_path, go_errno(errno));
        if (r == 0)
            break;
        if (write_all(out, buf, (size_t)r) < 0)
            restore_fail("write %s: %s", dbpath, go_errno(errno));
        if (done < body)
            br_sha256_update(&h, buf, (size_t)(body - done < (uint64_t)r ? body - done : (uint64_t)r));
        done += (uint64_t)r;
    }
    close(in);
    if (has_hash && ftruncate(out, (off_t)body) < 0)
        restore_fail("truncate %s: %s", dbpath, go_errno(errno));
    close(out);
    if (!has_hash && !skip_hash)
        restore_fail("snapshot missing hash but --skip-hash-check=false");
    if (has_hash && !skip_hash) {
        uint8_t got[SHA_LEN];
        br_sha256_out(&h, got);
        if (memcmp(got, sha, SHA_LEN))
            restore_fail("expected sha256 %s, got %s", bytes_list(sha, SHA_LEN), bytes_list(got, SHA_LEN));
    }
}

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* The members buckets emptied (the new members go in through the backend),
 * and the compaction marks etcd's store logs when it restores. */
static void reset_members(const char *dbpath, int64_t *finished, int64_t *scheduled)
{
    struct db *db;
    struct db_tx *tx;
    char msg[512];
    const char *why = bolt_open_error(dbpath, false);
    if (why)
        backend_panic(dbpath, why);
    int rc = db_open(dbpath, DB_NO_FREELIST_SYNC, &db, msg, sizeof msg);
    if (rc)
        backend_panic(dbpath, msg);
    if ((rc = db_begin(db, true, &tx)))
        restore_fail("%s: %s", dbpath, db_strerror(rc));
    struct db_bucket *meta;
    struct db_val v;
    *finished = *scheduled = -1;
    if (!db_bucket_get(tx, NULL, "meta", 4, &meta)) {
        if (!db_get(meta, "finishedCompactRev", 18, &v) && v.len >= 8)
            *finished = (int64_t)be64(v.p);
        if (!db_get(meta, "scheduledCompactRev", 19, &v) && v.len >= 8)
            *scheduled = (int64_t)be64(v.p);
    }
    static const char *const names[] = {"members", "members_removed"};
    for (int i = 0; i < 2 && !rc; i++) {
        struct db_bucket *b;
        rc = db_bucket_delete(tx, NULL, names[i], strlen(names[i]));
        if (rc == DB_ENOTFOUND)
            rc = 0;
        if (!rc)
            rc = db_bucket_create(tx, NULL, names[i], strlen(names[i]), false, &b);
    }
    if (rc) {
        db_rollback(tx);
        restore_fail("%s: %s", dbpath, db_strerror(rc));
    }
    if ((rc = db_commit(tx)))
        restore_fail("%s", db_errmsg(db));
    db_close(db);
}

/* saveDB's second half: etcd opens the db as a store, which redoes an
 * unfinished compaction, and commits the consistent index (the number of
 * members: the index of the last ConfChange entry). */
static void rewrite_db(const char *dbpath, struct member *ms, size_t n)
{
    int64_t finished, scheduled;
    reset_members(dbpath, &finished, &scheduled);
    struct backend *b;
    char msg[512];
    if (backend_open(dbpath, NULL, &b, msg, sizeof msg) < 0)
        backend_panic(dbpath, msg);
    struct mvcc *m = mvcc_new();
    if (!m)
        restore_fail("out of memory");
    struct backend_state st;
    if (backend_load(b, m, &st) < 0)
        restore_fail("failed to recover store from backend: %s", backend_errmsg(b));
    struct zlog z;
    char num[32];
    if (finished >= 0) {
        zl_begin(&z, "info", false, "mvcc/kvstore.go:388", "restored last compact revision");
        zl_str(&z, "meta-bucket-name", "meta");
        zl_str(&z, "meta-bucket-name-key", "finishedCompactRev");
        snprintf(num, sizeof num, "%lld", (long long)finished);
        zl_raw(&z, "restored-compact-revision", num);
        zl_end(&z);
    }
    /* backend_load queued the rest of an unfinished compaction: the
     * commits below finish it, as etcd's store does before it closes */
    bool resume = scheduled > 0 && scheduled > finished;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    snprintf(num, sizeof num, "%lld", (long long)scheduled);
    if (resume) {
        zl_begin(&z, "info", false, "mvcc/kvstore.go:468", "resume scheduled compaction");
        zl_str(&z, "meta-bucket-name", "meta");
        zl_str(&z, "meta-bucket-name-key", "scheduledCompactRev");
        zl_raw(&z, "scheduled-compact-revision", num);
        zl_end(&z);
        zl_begin(&z, "info", false, "mvcc/index.go:189", "compact tree index");
        zl_raw(&z, "revision", num);
        zl_end(&z);
    }
    for (size_t i = 0; i < n; i++)
        if (backend_record_member(b, &ms[i]) < 0)
            restore_fail("out of memory");
    backend_record_consistent_index(b, n);
    for (int tries = 0; backend_pending(b); tries++) {
        int64_t now = client_now_ms();
        struct backend_job *j = backend_commit_prepare(b, now);
        if (!j || tries > 1000000)
            restore_fail("%s: cannot commit", dbpath);
        backend_commit_run(j);
        if (backend_commit_finish(b, j, now) < 0)
            restore_fail("%s", backend_errmsg(b));
    }
    if (resume) {
        char took[64];
        clock_gettime(CLOCK_MONOTONIC, &t1);
        go_float((double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, took, sizeof took);
        zl_begin(&z, "info", false, "mvcc/kvstore_compaction.go:56", "finished scheduled compaction");
        zl_raw(&z, "compact-revision", num);
        zl_raw(&z, "took", took);
        zl_end(&z);
    }
    backend_state_free(&st);
    mvcc_free(m);
    backend_close(b);
}

/* ---- snapshot restore: WAL and snap ---- */

static void write_wal_and_snap(const char *wal_dir, const char *snap_dir, struct member *ms, size_t n,
                               uint64_t self_id, uint64_t cluster_id)
{
    char err[1024];
    if (mkdir_all(wal_dir, err, sizeof err) < 0)
        restore_fail("%s", err);
    struct zlog z;
    char cid[32], id[32];
    snprintf(cid, sizeof cid, "%llx", (unsigned long long)cluster_id);
    for (size_t i = 0; i < n; i++) {
        snprintf(id, sizeof id, "%llx", (unsigned long long)ms[i].id);
        zl_begin(&z, "info", false, "membership/cluster.go:392", "added member");
        zl_str(&z, "cluster-id", cid);
        zl_str(&z, "local-member-id", "0");
        zl_str(&z, "added-peer-id", id);
        zl_strs(&z, "added-peer-peer-urls", ms[i].peer_urls, ms[i].n_peer_urls);
        zl_end(&z);
    }
    struct api_metadata md = {.NodeID = self_id, .ClusterID = cluster_id};
    struct mem_buf mdb = {0};
    if (pb_encode(&api_metadata_desc, &md, &mdb) < 0)
        restore_fail("out of memory");
    struct wal *w;
    int rc = wal_create(wal_dir, mdb.data, mdb.len, &w);
    mem_buf_free(&mdb);
    if (rc < 0)
        restore_fail("%s", wal_strerror(rc));

    /* one ConfChange AddNode per member, in ID order, at term 1 */
    struct api_raft_entry *ents = xalloc(n * sizeof *ents);
    uint64_t *ids = xalloc(n * sizeof *ids);
    struct mem_buf ctx = {0}, cc = {0};
    for (size_t i = 0; i < n; i++) {
        ctx.len = cc.len = 0;
        ids[i] = ms[i].id;
        if (member_to_json(&ms[i], &ctx) < 0)
            restore_fail("out of memory");
        struct api_raft_conf_change c = {.type = API_CONF_ADD_NODE, .NodeID = ms[i].id,
                                         .context = {ctx.data, ctx.len}};
        if (pb_encode(&api_raft_conf_change_desc, &c, &cc) < 0)
            restore_fail("out of memory");
        ents[i] = (struct api_raft_entry){.Type = API_ENTRY_CONF_CHANGE, .Term = 1, .Index = i + 1,
                                          .Data = {xalloc(cc.len), cc.len}};
        memcpy((uint8_t *)ents[i].Data.p, cc.data, cc.len);
    }
    mem_buf_free(&ctx);
    mem_buf_free(&cc);
    uint64_t commit = n, term = 1;
    struct api_raft_hard_state hs = {.term = term, .vote = ids[0], .commit = commit};
    if ((rc = wal_save(w, &hs, ents, n)) < 0 || (rc = wal_sync(w)) < 0)
        restore_fail("%s", wal_strerror(rc));

    /* the v2 store holds each member's raft attributes only: AddMember
     * writes no name or client URLs there */
    struct member *bare = xalloc(n * sizeof *bare);
    for (size_t i = 0; i < n; i++) {
        bare[i] = ms[i];
        bare[i].name[0] = 0;
        bare[i].n_client_urls = 0;
    }
    struct mem_buf v2 = {0};
    if (snap_v2_store(bare, n, NULL, 0, "", &v2) < 0)
        restore_fail("out of memory");
    struct api_raft_conf_state cs = {.voters = ids, .n_voters = n};
    struct api_raft_snapshot_metadata meta = {.conf_state = &cs, .index = commit, .term = term};
    struct api_raft_snapshot snap = {.data = {v2.data, v2.len}, .metadata = &meta};
    if (snap_save(snap_dir, &snap, err, sizeof err) < 0)
        restore_fail("%s", err);
    mem_buf_free(&v2);
    if ((rc = wal_save_snapshot(w, commit, term)) < 0)
        restore_fail("%s", wal_strerror(rc));
    if ((rc = wal_close(w)) < 0)
        restore_fail("%s", wal_strerror(rc));
}

static void log_restore(const char *msg, const char *caller, const char *path, const char *wal_dir,
                        const char *data_dir, const char *snap_dir)
{
    struct zlog z;
    zl_begin(&z, "info", false, caller, msg);
    zl_str(&z, "path", path);
    zl_str(&z, "wal-dir", wal_dir);
    zl_str(&z, "data-dir", data_dir);
    zl_str(&z, "snap-dir", snap_dir);
    zl_end(&z);
}

static int restore_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    (void)cmd;
    if (argc != 1)
        ctl_fail(CTL_EXIT_BAD_ARGS, "snapshot restore requires exactly one argument");
    const char *data_dir = r_data_dir[0] ? r_data_dir : xprintf("%s.etcd", r_name);
    const char *wal_dir = r_wal_dir[0] ? r_wal_dir : path_join(data_dir, "member", "wal", NULL);

    /* the peer URLs: strings.Split(flag, ",") */
    char *list = xprintf("%s", r_peer_urls), *ap[MAX_URLS];
    size_t nap = 0;
    for (char *p = list;;) {
        char *comma = strchr(p, ',');
        if (nap == MAX_URLS)
            ctl_fail(CTL_EXIT_ERROR, "more than %d URLs", MAX_URLS);
        ap[nap++] = p;
        if (!comma)
            break;
        *comma = 0;
        p = comma + 1;
    }
    char *err;
    if (new_urls(ap, nap, ap, &err) < 0)
        ctl_fail(CTL_EXIT_ERROR, "%s", err);
    struct rs_cluster *cl = xalloc(sizeof *cl);
    if (new_urls_map(r_cluster, cl, &err) < 0 || verify_bootstrap(cl, r_name, ap, nap, &err) < 0)
        ctl_fail(CTL_EXIT_ERROR, "%s", err);

    /* NewClusterFromURLsMap: members by ID, the cluster ID from them */
    for (size_t i = 0; i < cl->n; i++)
        cl->m[i].id = member_id((const char *const *)cl->m[i].urls, cl->m[i].n_urls, r_token, 0);
    qsort(cl->m, cl->n, sizeof cl->m[0], cmp_member_id);
    uint64_t ids[MAX_MEMBERS], self_id = 0;
    struct member *ms = xalloc(cl->n * sizeof *ms);
    for (size_t i = 0; i < cl->n; i++) {
        if (i && cl->m[i].id == cl->m[i - 1].id)
            ctl_fail(CTL_EXIT_ERROR, "member exists with identical ID %llx", (unsigned long long)cl->m[i].id);
        ids[i] = cl->m[i].id;
        if (!strcmp(cl->m[i].name, r_name))
            self_id = cl->m[i].id;
        /* the URL strings stay in ctl's arena (not member_init's heap
         * copies): every exit path, ctl_fail's too, frees them */
        ms[i].id = cl->m[i].id;
        snprintf(ms[i].name, sizeof ms[i].name, "%s", cl->m[i].name);
        memcpy(ms[i].peer_urls, cl->m[i].urls, cl->m[i].n_urls * sizeof(char *));
        ms[i].n_peer_urls = cl->m[i].n_urls;
    }
    uint64_t cluster_id = member_cluster_id(ids, cl->n);

    if (exists(data_dir))
        ctl_fail(CTL_EXIT_ERROR, "data-dir %s exists", quote(data_dir));
    if (exists(wal_dir))
        ctl_fail(CTL_EXIT_ERROR, "wal-dir %s exists", quote(wal_dir));
    const char *snap_dir = path_join(data_dir, "member", "snap", NULL);
    const char *dbpath = path_join(snap_dir, "db", NULL);
    log_restore("restoring snapshot", "snapshot/v3_snapshot.go:296", argv[0], wal_dir, data_dir, snap_dir);
    copy_db(argv[0], snap_dir, dbpath, r_skip_hash);
    rewrite_db(dbpath, ms, cl->n);
    write_wal_and_snap(wal_dir, snap_dir, ms, cl->n, self_id, cluster_id);
    log_restore("restored snapshot", "snapshot/v3_snapshot.go:309", argv[0], wal_dir, data_dir, snap_dir);
    return CTL_EXIT_SUCCESS;
}

/* ---- defrag --data-dir ---- */

int ctl_defrag_data_dir(const char *data_dir)
{
    const char *path = path_join(data_dir, "member", "snap", "db", NULL);
    struct db *db;
    char msg[512];
    int64_t start = client_now_ms();
    bool warned = false;
    int rc;
    /* bbolt waits for the lock; etcdctl says so after a second */
    while ((rc = db_open(path, DB_NO_FREELIST_SYNC, &db, msg, sizeof msg)) == DB_EBUSY) {
        if (!warned && client_now_ms() - start >= 1000) {
            fflush(stdout);
            fprintf(stderr,
                    "waiting for etcd to close and release its lock on %s. To defrag a running etcd "
                    "instance, omit --data-dir.\n",
                    quote(path));
            warned = true;
        }
        usleep(50000);
    }
    if (rc) {
        const char *why = bolt_open_error(path, false);
        backend_panic(path, why ? why : msg);
    }
    rc = db_defrag(db);
    if (rc) {
        fflush(stdout);
        fprintf(stderr, "Failed to defragment etcd data[%s] (%s)\n", data_dir,
                db_errmsg(db)[0] ? db_errmsg(db) : db_strerror(rc));
        db_close(db);
        return CTL_EXIT_ERROR;
    }
    db_close(db);
    return CTL_EXIT_SUCCESS;
}
