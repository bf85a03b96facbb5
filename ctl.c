/* ctl.c - the etcdctl personality's frame (ctl.h): the command tree, flag
 * parsing with pflag's rules and messages, command lookup with cobra's
 * rules (prefix matching, suggestions, "help", usage on flag errors), the
 * help texts in etcdctl's template through Go's tabwriter, the global
 * options and ETCDCTL_* variables, building the client, error reporting,
 * and Go's strconv/time parsing.
 *
 * The commands themselves live in ctl_kv.c, ctl_watch.c, ctl_lease.c,
 * ctl_cluster.c (and the files other commands add); the output formatting
 * they share in ctl_out.c; the connection in client.c.
 */
#include "ctl.h"

#include <errno.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <resolv.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "version.h"

#define CTL_MAX_FLAGS 64
#define CTL_API_VERSION "3.4" /* etcd's version.APIVersion */

struct ctl_globals ctl_g;
struct mem_arena ctl_arena;
char **ctl_os_argv;
int ctl_os_argc;

static bool help_flag;
static struct ctl_flag help_flags[] = {
    {"help", 'h', CTL_BOOL, "false", NULL, &help_flag},
    {0},
};

static struct ctl_flag global_flags[] = {
    {"cacert", 0, CTL_STRING, "", "verify certificates of TLS-enabled secure servers using this CA bundle", &ctl_g.cacert},
    {"cert", 0, CTL_STRING, "", "identify secure client using this TLS certificate file", &ctl_g.cert},
    {"command-timeout", 0, CTL_DURATION, "5s", "timeout for short running command (excluding dial timeout)", &ctl_g.command_timeout},
    {"debug", 0, CTL_BOOL, "false", "enable client-side debug logging", &ctl_g.debug},
    {"dial-timeout", 0, CTL_DURATION, "2s", "dial timeout for client connections", &ctl_g.dial_timeout},
    {"discovery-srv", 'd', CTL_STRING, "", "domain name to query for SRV records describing cluster endpoints", &ctl_g.discovery_srv},
    {"discovery-srv-name", 0, CTL_STRING, "", "service name to query when using DNS discovery", &ctl_g.discovery_srv_name},
    {"endpoints", 0, CTL_STRINGS, "[127.0.0.1:2379]", "gRPC endpoints", &ctl_g.endpoints},
    {"hex", 0, CTL_BOOL, "false", "print byte strings as hex encoded strings", &ctl_g.hex},
    {"insecure-discovery", 0, CTL_BOOL, "true", "accept insecure SRV records describing cluster endpoints", &ctl_g.insecure_discovery},
    {"insecure-skip-tls-verify", 0, CTL_BOOL, "false", "skip server certificate verification (CAUTION: this option should be enabled only for testing purposes)", &ctl_g.insecure_skip_tls_verify},
    {"insecure-transport", 0, CTL_BOOL, "true", "disable transport security for client connections", &ctl_g.insecure_transport},
    {"keepalive-time", 0, CTL_DURATION, "2s", "keepalive time for client connections", &ctl_g.keepalive_time},
    {"keepalive-timeout", 0, CTL_DURATION, "6s", "keepalive timeout for client connections", &ctl_g.keepalive_timeout},
    {"key", 0, CTL_STRING, "", "identify secure client using this TLS key file", &ctl_g.key},
    {"password", 0, CTL_STRING, "", "password for authentication (if this option is used, --user option shouldn't include password)", &ctl_g.password},
    {"user", 0, CTL_STRING, "", "username[:password] for authentication (prompt if password is not supplied)", &ctl_g.user},
    {"write-out", 'w', CTL_STRING, "simple", "set the output format (fields, json, protobuf, simple, table)", &ctl_g.write_out},
    {0},
};

static int version_run(struct ctl_cmd *cmd, int argc, char **argv);
static int help_run(struct ctl_cmd *cmd, int argc, char **argv);
static void usage(struct ctl_cmd *cmd, bool with_help);
static char *cmd_path(const struct ctl_cmd *c, char *buf, size_t cap);

static struct ctl_cmd cmd_version = {
    .use = "version", .short_desc = "Prints the version of etcdctl", .run = version_run,
};

static struct ctl_cmd cmd_help = {
    .use = "help [command]",
    .short_desc = "Help about any command",
    .long_desc = "Help provides help for any command in the application.\n"
                 "Simply type etcdctl help [path to command] for full details.",
    .run = help_run,
};

/* The root's commands, sorted by name as cobra lists them ('_' sorts
 * before the letters: the hidden __complete comes first). */
static struct ctl_cmd *const root_subs[] = {
    &ctl_cmd_complete, &ctl_cmd_alarm, &ctl_cmd_auth, &ctl_cmd_check, &ctl_cmd_compaction,
    &ctl_cmd_completion, &ctl_cmd_defrag, &ctl_cmd_del, &ctl_cmd_elect, &ctl_cmd_endpoint,
    &ctl_cmd_get, &cmd_help, &ctl_cmd_lease, &ctl_cmd_lock, &ctl_cmd_make_mirror,
    &ctl_cmd_member, &ctl_cmd_migrate, &ctl_cmd_move_leader, &ctl_cmd_put, &ctl_cmd_role,
    &ctl_cmd_snapshot, &ctl_cmd_txn, &ctl_cmd_user, &cmd_version, &ctl_cmd_watch, NULL,
};

static struct ctl_cmd root = {
    .use = "etcdctl",
    .short_desc = "A simple command line client for etcd3.",
    .pflags = global_flags,
    .subs = root_subs,
};

/* ---- small helpers ---- */

static char *xstrdup(const char *s)
{
    char *p = mem_arena_dup(&ctl_arena, s, strlen(s) + 1);
    if (!p) {
        fputs("out of memory\n", stderr);
        exit(1);
    }
    return p;
}

static size_t name_len(const struct ctl_cmd *c)
{
    return strcspn(c->use, " ");
}

static bool name_is(const struct ctl_cmd *c, const char *s)
{
    size_t n = name_len(c);
    return strlen(s) == n && !memcmp(c->use, s, n);
}

/* the command's name as a NUL-terminated string (static per call site) */
static const char *cmd_name(const struct ctl_cmd *c, char *buf, size_t cap)
{
    snprintf(buf, cap, "%.*s", (int)name_len(c), c->use);
    return buf;
}

static char *cmd_path(const struct ctl_cmd *c, char *buf, size_t cap)
{
    const struct ctl_cmd *chain[16];
    size_t n = 0, o = 0;
    for (; c && n < sizeof chain / sizeof chain[0]; c = c->parent)
        chain[n++] = c;
    buf[0] = 0;
    while (n-- > 0 && o < cap)
        o += (size_t)snprintf(buf + o, cap - o, "%s%.*s", o ? " " : "", (int)name_len(chain[n]),
                              chain[n]->use);
    return buf;
}

/* Every client made for the command; ctl owns them and closes them at exit. */
static struct client *clients[256];
static size_t n_clients;

_Noreturn void ctl_exit(int code)
{
    fflush(stdout);
    for (size_t i = 0; i < n_clients; i++)
        client_free(clients[i]);
    n_clients = 0;
    mem_arena_free(&ctl_arena);
    exit(code);
}

_Noreturn void ctl_fail(int code, const char *fmt, ...)
{
    fflush(stdout);
    va_list ap;
    va_start(ap, fmt);
    fputs("Error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    ctl_exit(code);
}

_Noreturn void ctl_panic(const char *msg)
{
    fflush(stdout);
    fprintf(stderr, "panic: %s\n\ngoroutine 1 [running]:\nmain.main()\n", msg);
    ctl_exit(2);
}

/* ---- Go's strconv and time parsing ---- */

static int lower(int ch)
{
    return ch >= 'A' && ch <= 'Z' ? ch + 32 : ch;
}

static void num_err(char *err, size_t cap, const char *fn, const char *s, const char *what)
{
    struct mem_buf q = {0};
    if (ctl_quote(&q, s, strlen(s)) == 0 && mem_buf_putc(&q, 0) == 0)
        snprintf(err, cap, "strconv.%s: parsing %s: %s", fn, (char *)q.data, what);
    else
        snprintf(err, cap, "strconv.%s: %s", fn, what);
    mem_buf_free(&q);
}

/* strconv's underscoreOK: "_" only between digits (or after a base prefix) */
static bool underscore_ok(const char *s)
{
    char saw = '^';
    size_t i = 0;
    if (*s == '-' || *s == '+')
        s++;
    bool hex = false;
    if (s[0] == '0' && s[1] && strchr("bBoOxX", s[1])) {
        i = 2;
        saw = '0';
        hex = s[1] == 'x' || s[1] == 'X';
    }
    for (; s[i]; i++) {
        char c = (char)lower((unsigned char)s[i]);
        if ((c >= '0' && c <= '9') || (hex && c >= 'a' && c <= 'f')) {
            saw = '0';
        } else if (c == '_') {
            if (saw != '0')
                return false;
            saw = '_';
        } else {
            if (saw == '_')
                return false;
            saw = '!';
        }
    }
    return saw != '_';
}

/* strconv.ParseUint's core: 0, -1 syntax, -2 range. */
static int parse_u64(const char *s0, int base, uint64_t *out)
{
    const char *s = s0;
    if (!*s)
        return -1;
    bool base0 = base == 0;
    if (base0) {
        base = 10;
        if (s[0] == '0') {
            size_t l = strlen(s);
            char c1 = (char)lower((unsigned char)s[1]);
            if (l >= 3 && (c1 == 'b' || c1 == 'o' || c1 == 'x')) {
                base = c1 == 'b' ? 2 : c1 == 'o' ? 8 : 16;
                s += 2;
            } else {
                base = 8;
                s += 1;
            }
        }
    }
    uint64_t v = 0;
    bool range = false, underscores = false;
    for (; *s; s++) {
        int d;
        char c = *s;
        if (c == '_' && base0) {
            underscores = true;
            continue;
        } else if (c >= '0' && c <= '9') {
            d = c - '0';
        } else if (lower((unsigned char)c) >= 'a' && lower((unsigned char)c) <= 'z') {
            d = lower((unsigned char)c) - 'a' + 10;
        } else {
            return -1;
        }
        if (d >= base)
            return -1;
        if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
            range = true;
        else
            v = v * (uint64_t)base + (uint64_t)d;
    }
    if (underscores && !underscore_ok(s0))
        return -1;
    if (range) {
        *out = UINT64_MAX;
        return -2;
    }
    *out = v;
    return 0;
}

int ctl_parse_uint(const char *s, int base, uint64_t *out, char *err, size_t cap)
{
    int r = parse_u64(s, base, out);
    if (r == 0)
        return 0;
    num_err(err, cap, "ParseUint", s, r == -2 ? "value out of range" : "invalid syntax");
    return -1;
}

int ctl_parse_int(const char *s, int base, int64_t *out, char *err, size_t cap)
{
    const char *p = s;
    bool neg = false;
    if (*p == '+' || *p == '-') {
        neg = *p == '-';
        p++;
    }
    uint64_t u;
    int r = parse_u64(p, base, &u);
    if (r == -1) {
        num_err(err, cap, "ParseInt", s, "invalid syntax");
        return -1;
    }
    if (r == -2 || (!neg && u > (uint64_t)INT64_MAX) || (neg && u > (uint64_t)INT64_MAX + 1)) {
        num_err(err, cap, "ParseInt", s, "value out of range");
        return -1;
    }
    *out = neg ? (int64_t)(0 - u) : (int64_t)u;
    return 0;
}

int ctl_parse_bool(const char *s, bool *out, char *err, size_t cap)
{
    static const char *const t[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const f[] = {"0", "f", "F", "FALSE", "false", "False"};
    for (size_t i = 0; i < 6; i++) {
        if (!strcmp(s, t[i])) {
            *out = true;
            return 0;
        }
        if (!strcmp(s, f[i])) {
            *out = false;
            return 0;
        }
    }
    num_err(err, cap, "ParseBool", s, "invalid syntax");
    return -1;
}

static void dur_err(char *err, size_t cap, const char *what, const char *unit, const char *orig)
{
    struct mem_buf q = {0}, u = {0};
    bool ok = ctl_quote(&q, orig, strlen(orig)) == 0 && mem_buf_putc(&q, 0) == 0;
    if (unit)
        ok = ok && ctl_quote(&u, unit, strlen(unit)) == 0 && mem_buf_putc(&u, 0) == 0;
    if (!ok)
        snprintf(err, cap, "time: invalid duration");
    else if (unit)
        snprintf(err, cap, "time: unknown unit %s in duration %s", (char *)u.data, (char *)q.data);
    else
        snprintf(err, cap, "time: %s %s", what, (char *)q.data);
    mem_buf_free(&q);
    mem_buf_free(&u);
}

int ctl_parse_duration(const char *orig, int64_t *ns, char *err, size_t cap)
{
    static const struct {
        const char *u;
        uint64_t ns;
    } units[] = {
        {"ns", 1}, {"us", 1000}, {"\xc2\xb5s", 1000}, {"\xce\xbcs", 1000},
        {"ms", 1000000}, {"s", 1000000000ull}, {"m", 60000000000ull}, {"h", 3600000000000ull},
    };
    const char *s = orig;
    bool neg = false;
    if (*s == '-' || *s == '+') {
        neg = *s == '-';
        s++;
    }
    if (!strcmp(s, "0")) {
        *ns = 0;
        return 0;
    }
    if (!*s)
        goto invalid;
    uint64_t d = 0;
    while (*s) {
        if (!(*s == '.' || (*s >= '0' && *s <= '9')))
            goto invalid;
        uint64_t v = 0, f = 0;
        double scale = 1;
        const char *st = s;
        while (*s >= '0' && *s <= '9') {
            if (v > (UINT64_MAX >> 1) / 10)
                goto invalid;
            v = v * 10 + (uint64_t)(*s++ - '0');
            if (v > (1ull << 63))
                goto invalid;
        }
        bool pre = s != st, post = false;
        if (*s == '.') {
            s++;
            const char *fs = s;
            bool overflow = false;
            while (*s >= '0' && *s <= '9') {
                if (!overflow) {
                    if (f > (UINT64_MAX >> 1) / 10) {
                        overflow = true;
                    } else {
                        f = f * 10 + (uint64_t)(*s - '0');
                        scale *= 10;
                    }
                }
                s++;
            }
            post = s != fs;
        }
        if (!pre && !post)
            goto invalid;
        size_t ul = 0;
        while (s[ul] && s[ul] != '.' && !(s[ul] >= '0' && s[ul] <= '9'))
            ul++;
        if (!ul) {
            dur_err(err, cap, "missing unit in duration", NULL, orig);
            return -1;
        }
        uint64_t unit = 0;
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
            if (strlen(units[i].u) == ul && !memcmp(units[i].u, s, ul))
                unit = units[i].ns;
        if (!unit) {
            char u[64];
            snprintf(u, sizeof u, "%.*s", (int)ul, s);
            dur_err(err, cap, NULL, u, orig);
            return -1;
        }
        s += ul;
        if (v > (1ull << 63) / unit)
            goto invalid;
        v *= unit;
        if (f > 0) {
            v += (uint64_t)((double)f * ((double)unit / scale));
            if (v > (1ull << 63))
                goto invalid;
        }
        d += v;
        if (d > (1ull << 63))
            goto invalid;
    }
    if (neg) {
        *ns = (int64_t)(0 - d);
        return 0;
    }
    if (d > (uint64_t)INT64_MAX)
        goto invalid;
    *ns = (int64_t)d;
    return 0;
invalid:
    dur_err(err, cap, "invalid duration", NULL, orig);
    return -1;
}

/* ---- flag values ---- */

/* pflag's Value.Set.  0, or -1 with the error text in err. */
static int flag_set(struct ctl_flag *f, const char *v, bool first_set, char *err, size_t cap)
{
    switch (f->type) {
    case CTL_BOOL:
        return ctl_parse_bool(v, f->val, err, cap);
    case CTL_STRING:
        *(char **)f->val = (char *)v;
        return 0;
    case CTL_INT64:
        return ctl_parse_int(v, 0, f->val, err, cap);
    case CTL_UINT64:
        return ctl_parse_uint(v, 0, f->val, err, cap);
    case CTL_DURATION:
        return ctl_parse_duration(v, f->val, err, cap);
    case CTL_STRINGS: {
        /* pflag reads the value as one CSV record; the first Set replaces
         * the default, later ones append */
        struct ctl_strv *sv = f->val;
        if (first_set)
            sv->n = 0;
        size_t cnt = 1;
        for (const char *p = v; *p; p++)
            cnt += *p == ',';
        if (!*v)
            cnt = 0;
        char **nv = mem_arena_alloc(&ctl_arena, (sv->n + cnt + 1) * sizeof *nv);
        if (!nv) {
            snprintf(err, cap, "out of memory");
            return -1;
        }
        if (sv->n)
            memcpy(nv, sv->v, sv->n * sizeof *nv);
        const char *p = v;
        for (size_t i = 0; i < cnt; i++) {
            size_t l = strcspn(p, ",");
            char *s = mem_arena_alloc(&ctl_arena, l + 1);
            if (!s) {
                snprintf(err, cap, "out of memory");
                return -1;
            }
            memcpy(s, p, l);
            s[l] = 0;
            /* csv: a field in quotes may hold commas; etcd endpoints never do */
            if (l >= 2 && s[0] == '"' && s[l - 1] == '"') {
                memmove(s, s + 1, l - 2);
                s[l - 2] = 0;
            }
            nv[sv->n++] = s;
            p += l + (p[l] == ',');
        }
        sv->v = nv;
        return 0;
    }
    }
    return -1;
}

static void flag_default(struct ctl_flag *f)
{
    char err[128];
    const char *d = f->def;
    if (f->type == CTL_STRINGS) {
        char buf[256];
        size_t l = strlen(d);
        snprintf(buf, sizeof buf, "%.*s", (int)(l >= 2 ? l - 2 : 0), d + (l >= 2));
        (void)flag_set(f, xstrdup(buf), true, err, sizeof err);
        return;
    }
    (void)flag_set(f, d, true, err, sizeof err);
    f->changed = false;
}

static void tree_defaults(struct ctl_cmd *c, struct ctl_cmd *parent)
{
    c->parent = parent;
    for (struct ctl_flag *f = c->flags; f && f->name; f++)
        flag_default(f);
    for (struct ctl_flag *f = c->pflags; f && f->name; f++)
        flag_default(f);
    for (size_t i = 0; c->subs && c->subs[i]; i++)
        tree_defaults(c->subs[i], c);
}

/* The flag set cobra parses for c: local, own persistent, the parents'
 * persistent flags, and -h/--help. */
struct flagset {
    struct ctl_flag *f[CTL_MAX_FLAGS];
    size_t n;
};

static void fs_add(struct flagset *fs, struct ctl_flag *flags)
{
    for (struct ctl_flag *f = flags; f && f->name; f++) {
        bool dup = false;
        for (size_t i = 0; i < fs->n; i++)
            dup |= !strcmp(fs->f[i]->name, f->name);
        if (!dup && fs->n < CTL_MAX_FLAGS)
            fs->f[fs->n++] = f;
    }
}

static int cmp_flag(const void *a, const void *b)
{
    return strcmp((*(struct ctl_flag *const *)a)->name, (*(struct ctl_flag *const *)b)->name);
}

static void fs_sort(struct flagset *fs)
{
    qsort(fs->f, fs->n, sizeof fs->f[0], cmp_flag);
}

/* c.Flags() after mergePersistentFlags; -h/--help once cobra has added it
 * (it does so to the command it runs, after the lookup) */
static void fs_all(struct ctl_cmd *c, struct flagset *fs, bool with_help)
{
    fs->n = 0;
    fs_add(fs, c->flags);
    fs_add(fs, c->pflags);
    for (struct ctl_cmd *p = c->parent; p; p = p->parent)
        fs_add(fs, p->pflags);
    if (with_help)
        fs_add(fs, help_flags);
}

/* cobra's LocalFlags: own flags, own persistent flags, -h */
static void fs_local(struct ctl_cmd *c, struct flagset *fs, bool with_help)
{
    fs->n = 0;
    fs_add(fs, c->flags);
    fs_add(fs, c->pflags);
    if (with_help)
        fs_add(fs, help_flags);
    fs_sort(fs);
}

/* cobra's InheritedFlags: the parents' persistent flags */
static void fs_inherited(struct ctl_cmd *c, struct flagset *fs)
{
    fs->n = 0;
    for (struct ctl_cmd *p = c->parent; p; p = p->parent)
        fs_add(fs, p->pflags);
    fs_sort(fs);
}

static struct ctl_flag *fs_find(const struct flagset *fs, const char *name, size_t len)
{
    for (size_t i = 0; i < fs->n; i++)
        if (strlen(fs->f[i]->name) == len && !memcmp(fs->f[i]->name, name, len))
            return fs->f[i];
    return NULL;
}

static struct ctl_flag *fs_short(const struct flagset *fs, char c)
{
    for (size_t i = 0; i < fs->n; i++)
        if (fs->f[i]->shorthand == c)
            return fs->f[i];
    return NULL;
}

/* ---- pflag's parser ---- */

struct parsed {
    char **args; /* positional arguments */
    int n;
    int at_dash; /* args before "--", or -1 */
};

static int set_parsed(struct ctl_flag *f, const char *v, char *err, size_t cap)
{
    char e[256];
    if (flag_set(f, v, !f->changed, e, sizeof e) < 0) {
        char name[80];
        if (f->shorthand)
            snprintf(name, sizeof name, "-%c, --%s", f->shorthand, f->name);
        else
            snprintf(name, sizeof name, "--%s", f->name);
        struct mem_buf q = {0};
        if (ctl_quote(&q, v, strlen(v)) == 0 && mem_buf_putc(&q, 0) == 0)
            snprintf(err, cap, "invalid argument %s for \"%s\" flag: %s", (char *)q.data, name, e);
        mem_buf_free(&q);
        return -1;
    }
    f->changed = true;
    return 0;
}

/* FlagSet.Parse with interspersed arguments.  0, or -1 with err. */
static int parse_flags(const struct flagset *fs, char **a, int n, struct parsed *out, char *err,
                       size_t cap)
{
    out->args = mem_arena_alloc(&ctl_arena, ((size_t)n + 1) * sizeof(char *));
    out->n = 0;
    out->at_dash = -1;
    if (!out->args) {
        snprintf(err, cap, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        char *s = a[i];
        size_t sl = strlen(s);
        if (sl == 0 || s[0] != '-' || sl == 1) {
            out->args[out->n++] = s;
            continue;
        }
        if (s[1] == '-') {
            if (sl == 2) { /* "--" ends the flags */
                out->at_dash = out->n;
                for (i++; i < n; i++)
                    out->args[out->n++] = a[i];
                break;
            }
            const char *name = s + 2;
            if (name[0] == '-' || name[0] == '=') {
                snprintf(err, cap, "bad flag syntax: %s", s);
                return -1;
            }
            const char *eq = strchr(name, '=');
            size_t nl = eq ? (size_t)(eq - name) : strlen(name);
            struct ctl_flag *f = fs_find(fs, name, nl);
            if (!f) {
                snprintf(err, cap, "unknown flag: --%.*s", (int)nl, name);
                return -1;
            }
            const char *v;
            if (eq)
                v = eq + 1;
            else if (f->type == CTL_BOOL)
                v = "true";
            else if (i + 1 < n)
                v = a[++i];
            else {
                snprintf(err, cap, "flag needs an argument: %s", s);
                return -1;
            }
            if (set_parsed(f, v, err, cap) < 0)
                return -1;
            continue;
        }
        /* shorthands: -abc, -wjson, -w=json, -w json */
        const char *sh = s + 1;
        while (*sh) {
            struct ctl_flag *f = fs_short(fs, *sh);
            if (!f) {
                snprintf(err, cap, "unknown shorthand flag: '%c' in -%s", *sh, sh);
                return -1;
            }
            const char *v;
            if (strlen(sh) > 2 && sh[1] == '=') {
                v = sh + 2;
                sh += strlen(sh);
            } else if (f->type == CTL_BOOL) {
                v = "true";
                sh++;
            } else if (sh[1]) {
                v = sh + 1;
                sh += strlen(sh);
            } else if (i + 1 < n) {
                v = a[++i];
                sh++;
            } else {
                snprintf(err, cap, "flag needs an argument: '%c' in -%s", *sh, sh);
                return -1;
            }
            if (set_parsed(f, v, err, cap) < 0)
                return -1;
        }
    }
    return 0;
}

int ctl_parse_cmd_flags(struct ctl_cmd *cmd, bool with_help, char **argv, int argc,
                        int *out_argc, char ***out_argv, char *err, size_t cap)
{
    struct flagset fs = {0};
    fs_add(&fs, cmd->flags);
    if (with_help)
        fs_add(&fs, help_flags);
    help_flag = false;
    struct parsed p;
    /* a FlagSet without -h answers it with pflag.ErrHelp */
    for (int i = 0; !with_help && i < argc; i++) {
        if (!strcmp(argv[i], "--"))
            break;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            snprintf(err, cap, "pflag: help requested");
            return -1;
        }
    }
    if (parse_flags(&fs, argv, argc, &p, err, cap) < 0)
        return -1;
    if (help_flag)
        return -2;
    p.args[p.n] = NULL;
    *out_argc = p.n;
    *out_argv = p.args;
    return 0;
}

struct ctl_flag *ctl_flag_lookup(struct ctl_cmd *cmd, const char *name, size_t len)
{
    struct flagset fs;
    fs_all(cmd, &fs, true);
    return fs_find(&fs, name, len);
}

struct ctl_flag *ctl_flag_shorthand(struct ctl_cmd *cmd, char ch)
{
    struct flagset fs;
    fs_all(cmd, &fs, true);
    return fs_short(&fs, ch);
}

int ctl_parse_all_flags(struct ctl_cmd *cmd, char **argv, int argc, int *out_argc,
                        char ***out_argv, char *err, size_t cap)
{
    struct flagset fs;
    fs_all(cmd, &fs, true);
    struct parsed p;
    if (parse_flags(&fs, argv, argc, &p, err, cap) < 0)
        return -1;
    p.args[p.n] = NULL;
    *out_argc = p.n;
    *out_argv = p.args;
    return 0;
}

void ctl_cobra_usage(struct ctl_cmd *cmd)
{
    struct flagset fs = {0};
    fs_add(&fs, cmd->flags);
    fs_add(&fs, help_flags);
    fs_sort(&fs);
    char name[64];
    cmd_name(cmd, name, sizeof name);
    struct mem_buf b = {0};
    (void)!mem_buf_printf(&b, "Usage:\n   %s%s\n\nFlags:\n", cmd->use,
                          strstr(cmd->use, "[flags]") ? "" : " [flags]");
    /* pflag's FlagUsages: names and types, padded to one column */
    char lines[CTL_MAX_FLAGS][128];
    size_t maxlen = 0;
    for (size_t i = 0; i < fs.n; i++) {
        const struct ctl_flag *f = fs.f[i];
        static const char *const types[] = {"", "string", "int", "uint", "duration", "strings"};
        int n;
        if (f->shorthand)
            n = snprintf(lines[i], sizeof lines[i], "  -%c, --%s", f->shorthand, f->name);
        else
            n = snprintf(lines[i], sizeof lines[i], "      --%s", f->name);
        if (f->type != CTL_BOOL)
            snprintf(lines[i] + n, sizeof lines[i] - (size_t)n, " %s", types[f->type]);
        if (strlen(lines[i]) + 1 > maxlen)
            maxlen = strlen(lines[i]) + 1;
    }
    for (size_t i = 0; i < fs.n; i++) {
        const struct ctl_flag *f = fs.f[i];
        (void)!mem_buf_printf(&b, "%s%*s", lines[i], (int)(maxlen - strlen(lines[i]) + 2), "");
        if (f == help_flags)
            (void)!mem_buf_printf(&b, "help for %s", name);
        else
            (void)!mem_buf_printf(&b, "%s", f->usage);
        bool zero = !strcmp(f->def, "") || !strcmp(f->def, "false") || !strcmp(f->def, "0") ||
                    !strcmp(f->def, "0s") || !strcmp(f->def, "[]");
        if (!zero && f->type == CTL_STRING) {
            (void)!mem_buf_printf(&b, " (default ");
            (void)!ctl_quote(&b, f->def, strlen(f->def));
            (void)!mem_buf_putc(&b, ')');
        } else if (!zero) {
            (void)!mem_buf_printf(&b, " (default %s)", f->def);
        }
        (void)!mem_buf_putc(&b, '\n');
    }
    (void)!mem_buf_putc(&b, '\n');
    fflush(stdout);
    fwrite(b.data, 1, b.len, stderr);
    mem_buf_free(&b);
}

/* ---- cobra's command lookup ---- */

static bool takes_value(const struct flagset *fs, const char *name, size_t len)
{
    struct ctl_flag *f = fs_find(fs, name, len);
    return !(f && f->type == CTL_BOOL);
}

/* stripFlags: the non-flag words of a, as cobra guesses them. */
static int strip_flags(struct ctl_cmd *c, char **a, int n, char **out)
{
    struct flagset fs;
    fs_all(c, &fs, false);
    int k = 0;
    for (int i = 0; i < n; i++) {
        char *s = a[i];
        size_t sl = strlen(s);
        if (!strcmp(s, "--"))
            break;
        if (sl >= 2 && s[0] == '-' && s[1] == '-' && !strchr(s, '=') &&
            takes_value(&fs, s + 2, sl - 2)) {
            if (n - i - 1 <= 1)
                break;
            i++;
            continue;
        }
        if (sl == 2 && s[0] == '-' && !strchr(s, '=')) {
            struct ctl_flag *f = fs_short(&fs, s[1]);
            if (!(f && f->type == CTL_BOOL)) {
                if (n - i - 1 <= 1)
                    break;
                i++;
                continue;
            }
        }
        if (sl && s[0] != '-')
            out[k++] = s;
    }
    return k;
}

static struct ctl_cmd *find_next(struct ctl_cmd *c, const char *next, bool with_hidden)
{
    struct ctl_cmd *match = NULL;
    bool match_alias = false;
    int matches = 0;
    size_t nl = strlen(next);
    for (size_t i = 0; c->subs && c->subs[i]; i++) {
        struct ctl_cmd *s = c->subs[i];
        if (s->hidden && !with_hidden)
            continue;
        if (name_is(s, next) || (s->alias && !strcmp(s->alias, next))) {
            s->called_by_alias = !name_is(s, next);
            return s;
        }
        /* cobra.EnablePrefixMatching, which etcdctl turns on: the name
         * first, then the alias */
        bool by_name = nl <= name_len(s) && !strncmp(s->use, next, nl);
        if (by_name || (s->alias && !strncmp(s->alias, next, nl))) {
            match = s;
            match_alias = !by_name;
            matches++;
        }
    }
    if (matches != 1)
        return NULL;
    match->called_by_alias = match_alias;
    return match;
}

/* argsMinusFirstX */
static int remove_first(char **a, int n, const char *x)
{
    for (int i = 0; i < n; i++) {
        if (!strcmp(a[i], x)) {
            memmove(a + i, a + i + 1, (size_t)(n - i - 1) * sizeof *a);
            return n - 1;
        }
    }
    return n;
}

struct ctl_cmd *ctl_find(char **args, int *n, bool with_hidden, const char **unknown)
{
    struct ctl_cmd *c = &root;
    char **words = mem_arena_alloc(&ctl_arena, ((size_t)*n + 1) * sizeof *words);
    if (!words)
        ctl_exit(1);
    for (;;) {
        int k = strip_flags(c, args, *n, words);
        if (!k)
            break;
        struct ctl_cmd *next = find_next(c, words[0], with_hidden);
        if (!next)
            break;
        *n = remove_first(args, *n, words[0]);
        c = next;
    }
    /* legacyArgs: the root takes no arguments */
    *unknown = c == &root && strip_flags(c, args, *n, words) > 0 ? words[0] : NULL;
    return c;
}

/* cobra's ld(): Levenshtein distance, case-insensitive */
static size_t levenshtein(const char *s, const char *t)
{
    size_t ls = strlen(s), lt = strlen(t);
    size_t row[128];
    if (lt >= sizeof row / sizeof row[0])
        return 99;
    for (size_t j = 0; j <= lt; j++)
        row[j] = j;
    for (size_t i = 1; i <= ls; i++) {
        size_t prev = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lt; j++) {
            size_t cur = row[j];
            size_t cost = lower((unsigned char)s[i - 1]) == lower((unsigned char)t[j - 1]) ? 0 : 1;
            size_t best = prev + cost;
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            prev = cur;
        }
    }
    return row[lt];
}

static void suggestions(struct ctl_cmd *c, const char *typed, char *out, size_t cap)
{
    out[0] = 0;
    size_t o = 0;
    bool any = false;
    for (size_t i = 0; c->subs && c->subs[i]; i++) {
        char n[64];
        if (c->subs[i] == &cmd_help || c->subs[i]->hidden) /* not "available" commands */
            continue;
        cmd_name(c->subs[i], n, sizeof n);
        bool prefix = strlen(typed) <= strlen(n);
        for (size_t k = 0; prefix && typed[k]; k++)
            prefix = lower((unsigned char)typed[k]) == lower((unsigned char)n[k]);
        if (levenshtein(typed, n) <= 2 || prefix) {
            if (!any)
                o += (size_t)snprintf(out + o, cap - o, "\n\nDid you mean this?\n");
            any = true;
            if (o < cap)
                o += (size_t)snprintf(out + o, cap - o, "\t%s\n", n);
        }
        if (o >= cap)
            break;
    }
}

/* ---- Go's text/tabwriter (minwidth 0, tabwidth 8, padding 1, '\t') ---- */

struct tw_cell {
    size_t off, size, width;
};

struct tw_line {
    struct tw_cell *cells;
    size_t n;
};

struct tw {
    const char *text;
    struct tw_line *lines;
    size_t nlines;
    size_t widths[32];
    size_t nwidths;
    struct mem_buf *out;
};

static size_t utf8_width(const char *p, size_t n)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
        w += ((unsigned char)p[i] & 0xc0) != 0x80;
    return w;
}

static void tw_write_lines(struct tw *t, size_t l0, size_t l1)
{
    for (size_t i = l0; i < l1; i++) {
        struct tw_line *ln = &t->lines[i];
        for (size_t j = 0; j < ln->n; j++) {
            struct tw_cell *c = &ln->cells[j];
            if (c->size)
                (void)!mem_buf_append(t->out, t->text + c->off, c->size);
            if (j < t->nwidths) {
                size_t cellw = (t->widths[j] + 7) / 8 * 8;
                size_t pad = cellw - c->width;
                for (size_t k = 0; k < (pad + 7) / 8; k++)
                    (void)!mem_buf_putc(t->out, '\t');
            }
        }
        if (i + 1 < t->nlines)
            (void)!mem_buf_putc(t->out, '\n');
    }
}

static void tw_format(struct tw *t, size_t line0, size_t line1)
{
    size_t column = t->nwidths;
    size_t this = line0;
    while (this < line1) {
        if (column + 1 >= t->lines[this].n) { /* no cell in this column */
            this++;
            continue;
        }
        tw_write_lines(t, line0, this);
        line0 = this;
        /* the column block: consecutive lines with a cell in this column */
        size_t width = 0;
        for (; this < line1; this++) {
            struct tw_line *ln = &t->lines[this];
            if (column + 1 >= ln->n)
                break;
            if (ln->cells[column].width + 1 > width)
                width = ln->cells[column].width + 1;
        }
        if (t->nwidths < sizeof t->widths / sizeof t->widths[0]) {
            t->widths[t->nwidths++] = width;
            tw_format(t, line0, this);
            t->nwidths--;
        }
        line0 = this;
    }
    tw_write_lines(t, line0, line1);
}

/* Formats text (lines of tab-terminated cells) as tabwriter.Flush would. */
static void tabwrite(const char *text, size_t len, struct mem_buf *out)
{
    struct tw t = {.text = text, .out = out};
    size_t nl = 1;
    for (size_t i = 0; i < len; i++)
        nl += text[i] == '\n';
    t.lines = mem_calloc(nl, sizeof *t.lines);
    size_t ncells = nl;
    for (size_t i = 0; i < len; i++)
        ncells += text[i] == '\t';
    struct tw_cell *cells = mem_calloc(ncells, sizeof *cells);
    if (!t.lines || !cells)
        goto out;
    size_t ci = 0, start = 0;
    t.lines[0].cells = cells;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || text[i] == '\t' || text[i] == '\n') {
            struct tw_line *ln = &t.lines[t.nlines];
            cells[ci] = (struct tw_cell){start, i - start, utf8_width(text + start, i - start)};
            ci++;
            ln->n++;
            start = i + 1;
            if (i == len || text[i] == '\n') {
                t.nlines++;
                if (i < len)
                    t.lines[t.nlines].cells = cells + ci;
            }
        }
    }
    tw_format(&t, 0, t.nlines);
out:
    mem_free(t.lines);
    mem_free(cells);
}

/* ---- help: etcdctl's usage template ---- */

static bool has_subs(const struct ctl_cmd *c)
{
    return c->subs && c->subs[0];
}

static void flag_usages(const struct flagset *fs, const char *help_name, struct mem_buf *b)
{
    for (size_t i = 0; i < fs->n; i++) {
        const struct ctl_flag *f = fs->f[i];
        char hu[128];
        const char *u = f->usage;
        if (f == help_flags) {
            snprintf(hu, sizeof hu, "help for %s", help_name);
            u = hu;
        }
        if (f->shorthand)
            (void)!mem_buf_printf(b, "  -%c, --%s", f->shorthand, f->name);
        else
            (void)!mem_buf_printf(b, "      --%s", f->name);
        if (f->type == CTL_BOOL)
            (void)!mem_buf_putc(b, '[');
        (void)!mem_buf_putc(b, '=');
        if (f->type == CTL_STRING)
            (void)!ctl_quote(b, f->def, strlen(f->def));
        else
            (void)!mem_buf_printf(b, "%s", f->def);
        if (f->type == CTL_BOOL)
            (void)!mem_buf_putc(b, ']');
        (void)!mem_buf_printf(b, "\t%s\n", u);
    }
}

/* cmdName: the path from below start down to c */
static void rel_name(const struct ctl_cmd *c, const struct ctl_cmd *start, char *buf, size_t cap)
{
    char tmp[256], n[64];
    snprintf(buf, cap, "%s", cmd_name(c, n, sizeof n));
    char sn[64];
    cmd_name(start, sn, sizeof sn);
    while (c->parent && !name_is(c->parent, sn)) {
        c = c->parent;
        snprintf(tmp, sizeof tmp, "%s %s", cmd_name(c, n, sizeof n), buf);
        snprintf(buf, cap, "%s", tmp);
    }
}

static void list_subs(const struct ctl_cmd *top, const struct ctl_cmd *c, struct mem_buf *b)
{
    for (size_t i = 0; c->subs && c->subs[i]; i++) {
        const struct ctl_cmd *s = c->subs[i];
        if (s->hidden) /* in cobra's tree only while it runs */
            continue;
        if (s->run) {
            char n[256];
            rel_name(s, top, n, sizeof n);
            (void)!mem_buf_printf(b, "\t%s\t%s\n", n, s->short_desc);
        }
        list_subs(top, s, b);
    }
}

/* with_help: cobra adds -h to a command only when it runs it (or names it
 * in "help <command>") */
static void usage(struct ctl_cmd *c, bool with_help)
{
    struct mem_buf b = {0}, out = {0};
    char path[256], name[64], rel[256];
    cmd_name(c, name, sizeof name);
    (void)!mem_buf_printf(&b, "NAME:\n");
    if (!c->parent) {
        (void)!mem_buf_printf(&b, "\t%s - %s\n", name, c->short_desc);
    } else {
        rel_name(c, &root, rel, sizeof rel);
        (void)!mem_buf_printf(&b, "\t%s - %s\n", rel, c->short_desc);
    }
    if (c->parent) {
        cmd_path(c->parent, path, sizeof path);
        (void)!mem_buf_printf(&b, "\nUSAGE:\n\t%s %s", path, c->use);
    } else {
        (void)!mem_buf_printf(&b, "\nUSAGE:\n\t%s", c->use);
    }
    (void)!mem_buf_printf(&b, "%s\n",
                          c->no_flags_in_use || strstr(c->use, "[flags]") ? "" : " [flags]");
    if (!c->parent)
        (void)!mem_buf_printf(&b, "\nVERSION:\n\t%s\n", ETCD_SERVER_VERSION);
    if (has_subs(c)) {
        (void)!mem_buf_printf(&b, "\nAPI VERSION:\n\t%s\n", CTL_API_VERSION);
        (void)!mem_buf_printf(&b, "\n\nCOMMANDS:\n");
        list_subs(c, c, &b);
    }
    if (c->long_desc && c->long_desc[0]) {
        (void)!mem_buf_printf(&b, "\nDESCRIPTION:\n");
        /* descToLines: trim "\n\t " at both ends, split on newlines */
        const char *s = c->long_desc, *e = s + strlen(s);
        while (s < e && strchr("\n\t ", *s))
            s++;
        while (e > s && strchr("\n\t ", e[-1]))
            e--;
        while (s <= e) {
            const char *nl = memchr(s, '\n', (size_t)(e - s));
            const char *le = nl ? nl : e;
            (void)!mem_buf_printf(&b, "\t%.*s\n", (int)(le - s), s);
            if (!nl)
                break;
            s = nl + 1;
        }
    }
    struct flagset fs;
    fs_local(c, &fs, with_help);
    if (fs.n)
        (void)!mem_buf_printf(&b, "\nOPTIONS:\n");
    flag_usages(&fs, name, &b);
    fs_inherited(c, &fs);
    if (fs.n) {
        (void)!mem_buf_printf(&b, "\nGLOBAL OPTIONS:\n");
        flag_usages(&fs, name, &b);
    }
    (void)!mem_buf_putc(&b, '\n');
    tabwrite((const char *)b.data, b.len, &out);
    ctl_write(out.data, out.len);
    mem_buf_free(&b);
    mem_buf_free(&out);
}

static int help_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    (void)cmd;
    char **a = mem_arena_alloc(&ctl_arena, ((size_t)argc + 1) * sizeof *a);
    if (!a)
        ctl_exit(1);
    memcpy(a, argv, (size_t)argc * sizeof *a);
    int n = argc;
    const char *unknown;
    struct ctl_cmd *c = ctl_find(a, &n, false, &unknown);
    if (unknown) {
        /* Unknown help topic [`a` `b`] (Go's %#q of a []string), on stderr */
        fflush(stdout);
        fputs("Unknown help topic [", stderr);
        for (int i = 0; i < argc; i++)
            fprintf(stderr, "%s`%s`", i ? " " : "", argv[i]);
        fputs("]\n", stderr);
        usage(&root, false);
        return 0;
    }
    usage(c, true);
    return 0;
}

static int version_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    (void)cmd;
    (void)argc;
    (void)argv;
    printf("etcdctl version: %s\nAPI version: %s\n", ETCD_SERVER_VERSION, CTL_API_VERSION);
    return 0;
}

/* ---- ETCDCTL_* variables (pkg/flags.SetPflagsFromEnv) ---- */

static void flag_env_name(const char *name, char *out, size_t cap)
{
    size_t o = (size_t)snprintf(out, cap, "ETCDCTL_");
    for (; *name && o + 1 < cap; name++)
        out[o++] = *name == '-' ? '_' : (char)(*name >= 'a' && *name <= 'z' ? *name - 32 : *name);
    out[o] = 0;
}

/* capnslog's line: "2006-01-02 15:04:05.000000 W | pkg/flags: ..." */
static void capnslog(char level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void capnslog(char level, const char *fmt, ...)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    localtime_r(&ts.tv_sec, &tm);
    char when[64];
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    fflush(stdout);
    fprintf(stderr, "%s.%06ld %c | pkg/flags: ", when, ts.tv_nsec / 1000, level);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static const char *const watch_env_names[] = {"ETCDCTL_WATCH_KEY", "ETCDCTL_WATCH_RANGE_END"};

extern char **environ;

void ctl_apply_env(struct ctl_cmd *cmd)
{
    struct flagset fs;
    fs_inherited(cmd, &fs);
    bool is_watch = !strncmp(cmd->use, "watch", 5);
    char used[CTL_MAX_FLAGS][64], shadow[CTL_MAX_FLAGS][64];
    size_t nused = 0, nshadow = 0;
    for (size_t i = 0; i < fs.n; i++) {
        struct ctl_flag *f = fs.f[i];
        char key[64];
        flag_env_name(f->name, key, sizeof key);
        if (f->changed) {
            snprintf(shadow[nshadow++], 64, "%s", key);
            continue;
        }
        const char *v = getenv(key);
        if (v && *v) {
            snprintf(used[nused++], 64, "%s", key);
            char err[256];
            /* an unparsable value is ignored, as etcdctl ignores the error */
            (void)flag_set(f, v, true, err, sizeof err);
        }
    }
    for (char **e = environ; *e; e++) {
        const char *eq = strchr(*e, '=');
        size_t kl = eq ? (size_t)(eq - *e) : strlen(*e);
        bool skip = false;
        for (size_t i = 0; i < nused && !skip; i++)
            skip = strlen(used[i]) == kl && !memcmp(used[i], *e, kl);
        for (size_t i = 0; is_watch && i < 2 && !skip; i++)
            skip = strlen(watch_env_names[i]) == kl && !memcmp(watch_env_names[i], *e, kl) &&
                   eq && eq[1];
        if (skip)
            continue;
        for (size_t i = 0; i < nshadow; i++) {
            if (strlen(shadow[i]) == kl && !memcmp(shadow[i], *e, kl)) {
                capnslog('C', "conflicting environment variable \"%s\" is shadowed by "
                              "corresponding command-line flag (either unset environment "
                              "variable or disable flag)", shadow[i]);
                ctl_exit(1);
            }
        }
        if (!strncmp(*e, "ETCDCTL_", 8))
            capnslog('W', "unrecognized environment variable %s", *e);
    }
}

void ctl_init_display(void)
{
    static const char *const names[] = {"simple", "json", "fields", "protobuf", "table"};
    for (int i = 0; i < 5; i++) {
        if (!strcmp(ctl_g.write_out, names[i])) {
            ctl_g.fmt = (enum ctl_format)i;
            return;
        }
    }
    ctl_fail(CTL_EXIT_BAD_FEATURE, "unsupported output format");
}

_Noreturn void ctl_unsupported_format(void)
{
    ctl_fail(CTL_EXIT_BAD_FEATURE, "%s not supported as output format", ctl_g.write_out);
}

/* ---- building the client ---- */

static struct client_opts copts;
static char uuid[40];

int64_t ctl_deadline(void)
{
    int64_t ms = ctl_g.command_timeout / 1000000;
    return ms > 0 ? client_now_ms() + ms : client_now_ms();
}

/* ---- DNS SRV discovery (pkg/srv.GetClient) ---- */

/* Go names the server it asked in lookup errors */
static void nameserver(char *out, size_t cap)
{
    snprintf(out, cap, "127.0.0.1:53");
    FILE *f = fopen("/etc/resolv.conf", "r");
    if (!f)
        return;
    char line[256], addr[128];
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, " nameserver %127s", addr) == 1) {
            snprintf(out, cap, strchr(addr, ':') ? "[%s]:53" : "%s:53", addr);
            break;
        }
    }
    fclose(f);
}

struct srv_rec {
    unsigned prio, weight, port;
    char target[256];
};

static int cmp_srv(const void *a, const void *b)
{
    const struct srv_rec *x = a, *y = b;
    if (x->prio != y->prio)
        return x->prio < y->prio ? -1 : 1;
    return x->weight > y->weight ? -1 : x->weight < y->weight;
}

/* net.LookupSRV: appends scheme://target:port for each record.  0, or -1
 * with Go's error text. */
static int lookup_srv(const char *name, const char *scheme, struct mem_buf *eps, char *err,
                      size_t cap)
{
    unsigned char ans[8192];
    int n = res_query(name, C_IN, T_SRV, ans, sizeof ans);
    char ns[160];
    if (n < 12) {
        nameserver(ns, sizeof ns);
        snprintf(err, cap, "lookup %s on %s: %s", name, ns,
                 n < 0 && h_errno == TRY_AGAIN ? "server misbehaving" : "no such host");
        return -1;
    }
    const unsigned char *p = ans + 12, *end = ans + n;
    unsigned qd = (unsigned)ans[4] << 8 | ans[5], an = (unsigned)ans[6] << 8 | ans[7];
    for (unsigned i = 0; i < qd && p < end; i++) {
        int l = dn_skipname(p, end);
        if (l < 0)
            return -1;
        p += l + 4;
    }
    struct srv_rec recs[64];
    size_t nr = 0;
    for (unsigned i = 0; i < an && p < end && nr < 64; i++) {
        int l = dn_skipname(p, end);
        if (l < 0 || p + l + 10 > end)
            break;
        p += l;
        unsigned type = (unsigned)p[0] << 8 | p[1], rdlen = (unsigned)p[8] << 8 | p[9];
        p += 10;
        if (p + rdlen > end)
            break;
        if (type == T_SRV && rdlen > 6) {
            struct srv_rec *r = &recs[nr];
            r->prio = (unsigned)p[0] << 8 | p[1];
            r->weight = (unsigned)p[2] << 8 | p[3];
            r->port = (unsigned)p[4] << 8 | p[5];
            if (dn_expand(ans, end, p + 6, r->target, sizeof r->target - 1) >= 0) {
                strcat(r->target, "."); /* Go keeps the root's dot */
                nr++;
            }
        }
        p += rdlen;
    }
    if (!nr) {
        nameserver(ns, sizeof ns);
        snprintf(err, cap, "lookup %s on %s: no such host", name, ns);
        return -1;
    }
    qsort(recs, nr, sizeof recs[0], cmp_srv);
    for (size_t i = 0; i < nr; i++) {
        char *e = mem_arena_alloc(&ctl_arena, strlen(recs[i].target) + 32);
        if (!e)
            ctl_fail(CTL_EXIT_ERROR, "out of memory");
        sprintf(e, "%s://%s:%u", scheme, recs[i].target, recs[i].port);
        if (mem_buf_append(eps, &e, sizeof e) < 0)
            ctl_fail(CTL_EXIT_ERROR, "out of memory");
    }
    return 0;
}

/* endpointsFromCmd: the SRV records under --discovery-srv when given,
 * else --endpoints (trimmed) */
struct ctl_strv ctl_endpoints(void)
{
    struct ctl_strv eps = ctl_g.endpoints;
    if (ctl_g.discovery_srv[0]) {
        const char *svc = ctl_g.discovery_srv_name;
        char name[2][512], err[2][700];
        snprintf(name[0], sizeof name[0], "_etcd-client-ssl%s%s._tcp.%s", *svc ? "-" : "", svc,
                 ctl_g.discovery_srv);
        snprintf(name[1], sizeof name[1], "_etcd-client%s%s._tcp.%s", *svc ? "-" : "", svc,
                 ctl_g.discovery_srv);
        struct mem_buf found = {0};
        int e1 = lookup_srv(name[0], "https", &found, err[0], sizeof err[0]);
        int e2 = lookup_srv(name[1], "http", &found, err[1], sizeof err[1]);
        if (e1 < 0 && e2 < 0)
            ctl_fail(CTL_EXIT_ERROR, "dns lookup errors: %s and %s", err[0], err[1]);
        struct ctl_strv d = {mem_arena_alloc(&ctl_arena, found.len + sizeof(char *)), 0};
        if (!d.v)
            ctl_fail(CTL_EXIT_ERROR, "out of memory");
        for (size_t i = 0; i < found.len / sizeof(char *); i++) {
            char *e = ((char **)found.data)[i];
            if (!ctl_g.insecure_discovery && !strncmp(e, "http://", 7)) {
                fflush(stdout);
                fprintf(stderr, "ignoring discovered insecure endpoint \"%s\"\n", e);
                continue;
            }
            d.v[d.n++] = e;
        }
        mem_buf_free(&found);
        if (d.n)
            return d;
    }
    for (size_t i = 0; i < eps.n; i++) { /* strings.TrimSpace */
        char *s = eps.v[i];
        while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
            s++;
        size_t l = strlen(s);
        while (l && (s[l - 1] == ' ' || s[l - 1] == '\t' || s[l - 1] == '\n' || s[l - 1] == '\r'))
            s[--l] = 0;
        eps.v[i] = s;
    }
    return eps;
}

static void check_file_flag(const char *name, const char *v, struct ctl_cmd *cmd)
{
    struct flagset fs;
    fs_all(cmd, &fs, true);
    struct ctl_flag *f = fs_find(&fs, name, strlen(name));
    if (f && f->changed && !*v)
        ctl_fail(CTL_EXIT_BAD_ARGS, "empty string is passed to --%s option", name);
}

/* speakeasy.Ask: prompt on stdout, read a line with echo off */
static char *ask_password(void)
{
    /* speakeasy runs "stty -echo" and "stty echo" on stdin, which complain
     * when it is not a terminal */
    static const char *const stty_err = "stty: 'standard input': Inappropriate ioctl for device\n";
    fputs("Password: ", stdout);
    fflush(stdout);
    struct termios old, raw;
    bool tty = tcgetattr(0, &old) == 0;
    if (tty) {
        raw = old;
        raw.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(0, TCSAFLUSH, &raw);
    } else {
        fputs(stty_err, stderr);
    }
    char buf[1024];
    size_t n = 0;
    for (;;) {
        char ch;
        ssize_t r = read(0, &ch, 1);
        if (r <= 0 || ch == '\n')
            break;
        if (n + 1 < sizeof buf && ch != '\r')
            buf[n++] = ch;
    }
    buf[n] = 0;
    if (tty)
        tcsetattr(0, TCSAFLUSH, &old);
    else
        fputs(stty_err, stderr);
    fputc('\n', stdout);
    return xstrdup(buf);
}

static void debug_env(struct ctl_cmd *cmd)
{
    struct flagset fs;
    fs_inherited(cmd, &fs);
    for (size_t i = 0; i < fs.n; i++) {
        const struct ctl_flag *f = fs.f[i];
        char key[64], dur[64];
        flag_env_name(f->name, key, sizeof key);
        fprintf(stderr, "%s=", key);
        switch (f->type) {
        case CTL_BOOL:
            fputs(*(bool *)f->val ? "true" : "false", stderr);
            break;
        case CTL_STRING:
            fputs(*(char **)f->val, stderr);
            break;
        case CTL_INT64:
            fprintf(stderr, "%lld", (long long)*(int64_t *)f->val);
            break;
        case CTL_UINT64:
            fprintf(stderr, "%llu", (unsigned long long)*(uint64_t *)f->val);
            break;
        case CTL_DURATION:
            ctl_duration_str(*(int64_t *)f->val, dur, sizeof dur);
            fputs(dur, stderr);
            break;
        case CTL_STRINGS: {
            const struct ctl_strv *sv = f->val;
            fputc('[', stderr);
            for (size_t k = 0; k < sv->n; k++)
                fprintf(stderr, "%s%s", k ? "," : "", sv->v[k]);
            fputc(']', stderr);
            break;
        }
        }
        fputc('\n', stderr);
    }
}

static void fill_opts(struct client_opts *o, char **eps, size_t n, bool with_auth)
{
    memset(o, 0, sizeof *o);
    o->endpoints = eps;
    o->n_endpoints = n;
    o->dial_timeout_ms = ctl_g.dial_timeout / 1000000;
    /* grpc-go raises a keepalive time under 10 s to 10 s */
    if (ctl_g.keepalive_time > 0) {
        o->keepalive_time_ms = ctl_g.keepalive_time / 1000000;
        if (o->keepalive_time_ms < 10000)
            o->keepalive_time_ms = 10000;
        o->keepalive_timeout_ms = ctl_g.keepalive_timeout / 1000000;
        if (o->keepalive_timeout_ms <= 0) /* grpc-go's default */
            o->keepalive_timeout_ms = 20000;
    }
    o->cert = ctl_g.cert[0] ? ctl_g.cert : NULL;
    o->key = ctl_g.key[0] ? ctl_g.key : NULL;
    o->cacert = ctl_g.cacert[0] ? ctl_g.cacert : NULL;
    /* secureCfgFromCmd: the discovery domain names the server unless
     * insecure discovery is on */
    if (ctl_g.discovery_srv[0] && !ctl_g.insecure_discovery)
        o->server_name = ctl_g.discovery_srv;
    o->use_tls = o->cert || o->key || o->cacert || o->server_name || !ctl_g.insecure_transport;
    o->insecure_skip_verify = ctl_g.insecure_skip_tls_verify;
    if (with_auth && ctl_g.user[0]) {
        if (ctl_g.password[0]) {
            o->user = ctl_g.user;
            o->password = ctl_g.password;
        } else {
            char *colon = strchr(ctl_g.user, ':');
            if (colon) {
                o->user = xstrdup(ctl_g.user);
                ((char *)o->user)[colon - ctl_g.user] = 0;
                o->password = colon + 1;
            } else {
                o->user = ctl_g.user;
                o->password = ask_password();
            }
        }
        /* clientv3 authenticates only with both set */
        if (!o->password[0])
            o->user = o->password = NULL;
    }
}

static void new_uuid(void)
{
    uint8_t r[16] = {0};
    if (getrandom(r, sizeof r, 0) != sizeof r) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        memcpy(r, &ts, sizeof ts < sizeof r ? sizeof ts : sizeof r);
    }
    r[6] = (uint8_t)((r[6] & 0x0f) | 0x40);
    r[8] = (uint8_t)((r[8] & 0x3f) | 0x80);
    snprintf(uuid, sizeof uuid,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0], r[1],
             r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14],
             r[15]);
}

static bool file_has(const char *path, const char *what)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[256];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, what) != NULL;
    fclose(f);
    return found;
}

/* Go's words for a key pair that does not load (tls.LoadX509KeyPair) */
static const char *tls_error_text(const char *err, const struct client_opts *o)
{
    if (strstr(err, "does not match"))
        return "tls: private key does not match public key";
    bool bad_pem = strstr(err, "no certificate found") || strstr(err, "malformed PEM") ||
                   strstr(err, "no private key found") || strstr(err, "cannot be parsed");
    if (bad_pem && o->cert && !strncmp(err, o->cert, strlen(o->cert)))
        return file_has(o->cert, "PRIVATE KEY-----")
                   ? "tls: failed to find certificate PEM data in certificate input, but did "
                     "find a private key; PEM inputs may have been switched"
                   : "tls: failed to find any PEM data in certificate input";
    if (bad_pem && o->key && !strncmp(err, o->key, strlen(o->key)))
        return file_has(o->key, "BEGIN CERTIFICATE-----")
                   ? "tls: found a certificate rather than a key in the PEM for the private key"
                   : "tls: failed to find any PEM data in key input";
    return err;
}

/* auth_now: clientv3.New authenticates before returning */
static struct client *make_client(struct client_opts *o, bool auth_now)
{
    if (o->n_endpoints == 0)
        ctl_fail(CTL_EXIT_BAD_CONNECTION, "etcdclient: no available endpoints");
    /* transport.TLSInfo.ClientConfig: a half-given key pair is an error */
    if ((o->cert && !o->key) || (!o->cert && o->key))
        ctl_fail(CTL_EXIT_BAD_ARGS, "KeyFile and CertFile must both be present[key: %s, cert: %s]",
                 o->key ? o->key : "", o->cert ? o->cert : "");
    const char *files[] = {o->cacert, o->cert, o->key};
    for (size_t i = 0; i < 3; i++) {
        if (files[i] && access(files[i], R_OK) != 0)
            ctl_fail(CTL_EXIT_BAD_ARGS, "open %s: %s", files[i],
                     errno == ENOENT ? "no such file or directory" : strerror(errno));
    }
    char err[512] = "out of memory";
    struct client *c =
        n_clients < sizeof clients / sizeof clients[0] ? client_new(o, err, sizeof err) : NULL;
    if (!c)
        ctl_fail(CTL_EXIT_BAD_ARGS, "%s", tls_error_text(err, o));
    clients[n_clients++] = c;
    if (o->user && auth_now) {
        struct client_err e;
        int64_t ms = ctl_g.dial_timeout / 1000000;
        if (client_connect(c, ms > 0 ? client_now_ms() + ms : 0, &e) < 0) {
            ctl_rpc_warn(c, &e);
            ctl_fail(CTL_EXIT_BAD_CONNECTION, "%s", ctl_err_text(&e));
        }
    }
    return c;
}

struct client *ctl_client_from_cmd(struct ctl_cmd *cmd)
{
    ctl_apply_env(cmd);
    if (ctl_g.debug)
        debug_env(cmd);
    struct ctl_strv eps = ctl_endpoints();
    check_file_flag("cert", ctl_g.cert, cmd);
    check_file_flag("key", ctl_g.key, cmd);
    check_file_flag("cacert", ctl_g.cacert, cmd);
    fill_opts(&copts, eps.v, eps.n, true);
    if (!uuid[0])
        new_uuid();
    const char *ep0 = eps.n ? eps.v[0] : "";
    const char *hp = strstr(ep0, "://");
    size_t tl = strlen(ep0) + 64;
    char *target = mem_arena_alloc(&ctl_arena, tl);
    if (!target)
        ctl_fail(CTL_EXIT_ERROR, "out of memory");
    snprintf(target, tl, "endpoint://client-%s/%s", uuid, hp ? hp + 3 : ep0);
    copts.target = target;
    ctl_init_display();
    return make_client(&copts, true);
}

struct client *ctl_client_for(char **eps, size_t n, enum ctl_auth auth, bool direct)
{
    struct client_opts *o = mem_arena_zalloc(&ctl_arena, sizeof *o);
    if (!o)
        ctl_fail(CTL_EXIT_ERROR, "out of memory");
    fill_opts(o, eps, n, auth != CTL_AUTH_NONE);
    const char *ep0 = n ? eps[0] : "";
    size_t tl = strlen(ep0) + 64;
    char *target = mem_arena_alloc(&ctl_arena, tl);
    if (!target)
        ctl_fail(CTL_EXIT_ERROR, "out of memory");
    if (direct) { /* clientv3's Dial(ep): grpc's passthrough resolver */
        snprintf(target, tl, "passthrough:///%s", ep0);
    } else { /* a clientv3.New client of its own */
        const char *hp = strstr(ep0, "://");
        new_uuid();
        snprintf(target, tl, "endpoint://client-%s/%s", uuid, hp ? hp + 3 : ep0);
    }
    o->target = target;
    return make_client(o, auth != CTL_AUTH_LAZY);
}

/* ---- errors ---- */

/* rpctypes' errStringToError: the messages clientv3 turns into bare
 * etcdserver errors (every server error but "watch canceled") */
static bool etcd_error_msg(const char *m)
{
    static const char *const known[] = {
        "etcdserver: key is not provided", "etcdserver: key not found",
        "etcdserver: value is provided", "etcdserver: lease is provided",
        "etcdserver: too many operations in txn request",
        "etcdserver: duplicate key given in txn request",
        "etcdserver: mvcc: required revision has been compacted",
        "etcdserver: mvcc: required revision is a future revision",
        "etcdserver: mvcc: database space exceeded", "etcdserver: requested lease not found",
        "etcdserver: lease already exists", "etcdserver: too large lease TTL",
        "etcdserver: member ID already exist", "etcdserver: Peer URLs already exists",
        "etcdserver: re-configuration failed due to not enough started members",
        "etcdserver: given member URLs are invalid", "etcdserver: member not found",
        "etcdserver: can only promote a learner member",
        "etcdserver: can only promote a learner member which is in sync with leader",
        "etcdserver: too many learner members in cluster", "etcdserver: request is too large",
        "etcdserver: too many requests", "etcdserver: root user does not exist",
        "etcdserver: root user does not have root role", "etcdserver: user name already exists",
        "etcdserver: user name is empty", "etcdserver: user name not found",
        "etcdserver: role name already exists", "etcdserver: role name not found",
        "etcdserver: role name is empty",
        "etcdserver: authentication failed, invalid user ID or password",
        "etcdserver: permission denied", "etcdserver: role is not granted to the user",
        "etcdserver: permission is not granted to the role",
        "etcdserver: authentication is not enabled", "etcdserver: invalid auth token",
        "etcdserver: invalid auth management", "etcdserver: revision of auth store is old",
        "etcdserver: no leader", "etcdserver: not leader", "etcdserver: leader changed",
        "etcdserver: not capable", "etcdserver: server stopped", "etcdserver: request timed out",
        "etcdserver: request timed out, possibly due to previous leader failure",
        "etcdserver: request timed out, possibly due to connection lost",
        "etcdserver: request timed out, waiting for the applied index took too long",
        "etcdserver: unhealthy cluster", "etcdserver: corrupt cluster",
        "etcdserver: bad leader transferee", "etcdserver: rpc not supported for learner",
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(m, known[i]))
            return true;
    return false;
}

const char *ctl_err_text(const struct client_err *e)
{
    static char buf[700];
    if (e->code == CLIENT_DEADLINE)
        return "context deadline exceeded";
    if (e->code == CLIENT_CONN) {
        snprintf(buf, sizeof buf, "rpc error: code = Unavailable desc = %s", e->msg);
        return buf;
    }
    if (etcd_error_msg(e->msg))
        return e->msg;
    snprintf(buf, sizeof buf, "rpc error: code = %s desc = %s", client_code_name(e->code),
             e->msg);
    return buf;
}

void ctl_rpc_warn(const struct client *c, const struct client_err *e)
{
    char err[700];
    const struct client_opts *o = client_opts(c);
    bool passthrough = o->target && !strncmp(o->target, "passthrough:", 12);
    if (e->code == CLIENT_DEADLINE && !e->msg[0])
        snprintf(err, sizeof err, "rpc error: code = DeadlineExceeded desc = context deadline exceeded");
    else if (e->code == CLIENT_DEADLINE && passthrough)
        snprintf(err, sizeof err, "rpc error: code = DeadlineExceeded desc = latest balancer error: "
                                  "connection error: desc = \"transport: Error while dialing %s\"",
                 e->msg);
    else if (e->code == CLIENT_DEADLINE)
        snprintf(err, sizeof err, "rpc error: code = DeadlineExceeded desc = latest balancer error: "
                                  "all SubConns are in TransientFailure");
    else if (e->code == CLIENT_CONN)
        snprintf(err, sizeof err, "rpc error: code = Unavailable desc = %s", e->msg);
    else
        snprintf(err, sizeof err, "rpc error: code = %s desc = %s", client_code_name(e->code),
                 e->msg);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    localtime_r(&ts.tv_sec, &tm);
    char when[64], zone[16];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    strftime(zone, sizeof zone, "%z", &tm);
    if (!strcmp(zone, "+0000"))
        strcpy(zone, "Z");
    struct mem_buf b = {0};
    (void)!mem_buf_printf(&b,
                          "{\"level\":\"warn\",\"ts\":\"%s.%03ld%s\",\"caller\":\"clientv3/"
                          "retry_interceptor.go:62\",\"msg\":\"retrying of unary invoker failed\","
                          "\"target\":",
                          when, ts.tv_nsec / 1000000, zone);
    const char *target = o->target ? o->target : "";
    (void)!json_put_str(&b, target, strlen(target));
    (void)!mem_buf_printf(&b, ",\"attempt\":0,\"error\":");
    (void)!json_put_str(&b, err, strlen(err));
    (void)!mem_buf_printf(&b, "}\n");
    fflush(stdout);
    fwrite(b.data, 1, b.len, stderr);
    mem_buf_free(&b);
}

_Noreturn void ctl_rpc_fail(const struct client *c, int code, const struct client_err *e,
                            const char *prefix, const char *suffix)
{
    ctl_rpc_warn(c, e);
    ctl_fail(code, "%s%s%s", prefix ? prefix : "", ctl_err_text(e), suffix ? suffix : "");
}

/* ---- execution (cobra's ExecuteC) ---- */

_Noreturn void ctl_usage_fail(struct ctl_cmd *c, const char *err)
{
    fflush(stdout);
    fprintf(stderr, "Error: %s\n", err);
    usage(c, true);
    fflush(stdout);
    fputc('\n', stderr);
    ctl_fail(CTL_EXIT_ERROR, "%s", err);
}

int ctl_main(int argc, char **argv)
{
    static char outbuf[1 << 16];
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
    mem_arena_init(&ctl_arena, 0);
    ctl_os_argv = argv;
    ctl_os_argc = argc;

    const char *api = getenv("ETCDCTL_API");
    if (api && *api && strcmp(api, "3")) {
        if (!strcmp(api, "2"))
            fprintf(stderr, "Error: ETCDCTL_API=2 is not supported by this etcdctl; "
                            "the v2 API is not part of this build\n");
        else
            fprintf(stderr, "unsupported API version %s\n", api);
        return 1;
    }
    unsetenv("ETCDCTL_API");
    tree_defaults(&root, NULL);

    char **args = mem_arena_alloc(&ctl_arena, (size_t)argc * sizeof *args);
    char **trial = mem_arena_alloc(&ctl_arena, (size_t)argc * sizeof *trial);
    if (!args || !trial)
        return 1;
    int n = argc - 1, tn = n;
    memcpy(args, argv + 1, (size_t)n * sizeof *args);
    memcpy(trial, args, (size_t)n * sizeof *args);

    /* cobra adds its hidden __complete to the tree only when the command
     * line leads to it, and looks again without it otherwise */
    const char *unknown;
    struct ctl_cmd *c = ctl_find(trial, &tn, true, &unknown);
    if (c->hidden) {
        args = trial;
        n = tn;
    } else {
        c = ctl_find(args, &n, false, &unknown);
    }
    if (unknown) {
        char sug[1024], msg[1400];
        suggestions(c, unknown, sug, sizeof sug);
        struct mem_buf q = {0};
        if (ctl_quote(&q, unknown, strlen(unknown)) < 0 || mem_buf_putc(&q, 0) < 0)
            return 1;
        snprintf(msg, sizeof msg, "unknown command %s for \"etcdctl\"%s", (char *)q.data, sug);
        mem_buf_free(&q);
        fprintf(stderr, "Error: %s\nRun 'etcdctl --help' for usage.\n", msg);
        ctl_fail(CTL_EXIT_ERROR, "%s", msg);
    }
    if (c->raw_args) {
        args[n] = NULL;
        ctl_exit(c->run(c, n, args));
    }

    struct flagset fs;
    fs_all(c, &fs, true);
    struct parsed p;
    char err[512];
    if (parse_flags(&fs, args, n, &p, err, sizeof err) < 0)
        ctl_usage_fail(c, err);
    if (help_flag || !c->run) {
        usage(c, true);
        ctl_exit(0);
    }
    p.args[p.n] = NULL;
    ctl_exit(c->run(c, p.n, p.args));
}
