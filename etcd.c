/* etcd.c - main: picks the personality from basename(argv[0]), parses the
 * server's flags and ETCD_* variables as etcd 3.4 does, derives member and
 * cluster IDs as etcd does, prints etcd's startup log lines and runs the
 * server loop.  The server itself is server.c/rpc.c; this file only wires. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compactor.h"
#include "ctl.h"
#include "log.h"
#include "loop.h"
#include "member.h"
#include "node.h"
#include "server.h"
#include "tls.h"
#include "version.h"

/* ---- flags ---- */

enum flag_kind { F_STR, F_BOOL, F_INT, F_UINT, F_DURATION };

/* Every flag etcd 3.4 accepts, so a command line written for etcd is taken
 * as it is.  `used` marks those this server acts on; the others are
 * validated and then reported once at startup as not applicable. */
struct flag {
    const char *name;
    enum flag_kind kind;
    const char *def;
    bool used;
    const char *help;
    const char *val; /* current value (points into argv, environ or def) */
    bool set;        /* given on the command line */
};

#define FLAG(n, k, d, u, h) {n, k, d, u, h, NULL, false}

static struct flag flags[] = {
    FLAG("name", F_STR, "default", true, "Human-readable name for this member."),
    FLAG("data-dir", F_STR, "${name}.etcd", true, "Path to the data directory."),
    FLAG("wal-dir", F_STR, "", false, "Path to the dedicated wal directory."),
    FLAG("snapshot-count", F_UINT, "100000", true, "Committed transactions that trigger a snapshot."),
    FLAG("heartbeat-interval", F_UINT, "100", true, "Time (in milliseconds) of a heartbeat interval."),
    FLAG("election-timeout", F_UINT, "1000", true, "Time (in milliseconds) for an election to timeout."),
    FLAG("initial-election-tick-advance", F_BOOL, "true", false, "Fast-forward election ticks on boot."),
    FLAG("listen-peer-urls", F_STR, "http://localhost:2380", false, "URLs to listen on for peer traffic."),
    FLAG("listen-client-urls", F_STR, "http://localhost:2379", true, "URLs to listen on for client traffic."),
    FLAG("max-snapshots", F_UINT, "5", true, "Maximum number of snapshot files to retain (0 is unlimited)."),
    FLAG("max-wals", F_UINT, "5", true, "Maximum number of wal files to retain (0 is unlimited)."),
    FLAG("quota-backend-bytes", F_INT, "0", true, "Raise alarms when backend size exceeds the given quota (0 defaults to low space quota)."),
    FLAG("backend-batch-interval", F_DURATION, "0", true, "BackendBatchInterval is the maximum time before commit the backend transaction."),
    FLAG("backend-batch-limit", F_INT, "0", true, "BackendBatchLimit is the maximum operations before commit the backend transaction."),
    FLAG("max-txn-ops", F_UINT, "128", true, "Maximum number of operations permitted in a transaction."),
    FLAG("max-request-bytes", F_UINT, "1572864", true, "Maximum client request size in bytes the server will accept."),
    FLAG("max-concurrent-streams", F_UINT, "4294967295", true, "Maximum concurrent streams that each client can open at a time."),
    FLAG("grpc-keepalive-min-time", F_DURATION, "5s", false, "Minimum interval duration that a client should wait before pinging server."),
    FLAG("grpc-keepalive-interval", F_DURATION, "2h", false, "Frequency duration of server-to-client ping to check if a connection is alive (0 to disable)."),
    FLAG("grpc-keepalive-timeout", F_DURATION, "20s", false, "Additional duration of wait before closing a non-responsive connection (0 to disable)."),
    FLAG("initial-advertise-peer-urls", F_STR, "http://localhost:2380", true, "List of this member's peer URLs to advertise to the rest of the cluster."),
    FLAG("initial-cluster", F_STR, "default=http://localhost:2380", true, "Initial cluster configuration for bootstrapping."),
    FLAG("initial-cluster-state", F_STR, "new", true, "Initial cluster state ('new' or 'existing')."),
    FLAG("initial-cluster-token", F_STR, "etcd-cluster", true, "Initial cluster token for the etcd cluster during bootstrap."),
    FLAG("advertise-client-urls", F_STR, "http://localhost:2379", true, "List of this member's client URLs to advertise to the public."),
    FLAG("discovery", F_STR, "", false, "Discovery URL used to bootstrap the cluster."),
    FLAG("discovery-fallback", F_STR, "proxy", false, "Expected behavior ('exit' or 'proxy') when discovery services fails."),
    FLAG("discovery-proxy", F_STR, "", false, "HTTP proxy to use for traffic to discovery service."),
    FLAG("discovery-srv", F_STR, "", false, "DNS srv domain used to bootstrap the cluster."),
    FLAG("discovery-srv-name", F_STR, "", false, "Suffix to the dns srv name queried when bootstrapping."),
    FLAG("strict-reconfig-check", F_BOOL, "true", false, "Reject reconfiguration requests that would cause quorum loss."),
    FLAG("pre-vote", F_BOOL, "false", true, "Enable to run an additional Raft election phase."),
    FLAG("auto-compaction-retention", F_STR, "0", true, "Auto compaction retention length. 0 means disable auto compaction."),
    FLAG("auto-compaction-mode", F_STR, "periodic", true, "Interpret 'auto-compaction-retention' one of: periodic|revision."),
    FLAG("enable-v2", F_BOOL, "false", false, "Accept etcd V2 client requests."),
    FLAG("cert-file", F_STR, "", true, "Path to the client server TLS cert file."),
    FLAG("key-file", F_STR, "", true, "Path to the client server TLS key file."),
    FLAG("client-cert-auth", F_BOOL, "false", true, "Enable client cert authentication."),
    FLAG("client-crl-file", F_STR, "", false, "Path to the client certificate revocation list file."),
    FLAG("client-cert-allowed-hostname", F_STR, "", false, "Allowed TLS hostname for client cert authentication."),
    FLAG("trusted-ca-file", F_STR, "", true, "Path to the client server TLS trusted CA cert file."),
    FLAG("auto-tls", F_BOOL, "false", false, "Client TLS using generated certificates."),
    FLAG("peer-cert-file", F_STR, "", false, "Path to the peer server TLS cert file."),
    FLAG("peer-key-file", F_STR, "", false, "Path to the peer server TLS key file."),
    FLAG("peer-client-cert-auth", F_BOOL, "false", false, "Enable peer client cert authentication."),
    FLAG("peer-trusted-ca-file", F_STR, "", false, "Path to the peer server TLS trusted CA file."),
    FLAG("peer-cert-allowed-cn", F_STR, "", false, "Required CN for client certs connecting to the peer endpoint."),
    FLAG("peer-cert-allowed-hostname", F_STR, "", false, "Allowed TLS hostname for inter peer authentication."),
    FLAG("peer-auto-tls", F_BOOL, "false", false, "Peer TLS using self-generated certificates if --peer-key-file and --peer-cert-file are not provided."),
    FLAG("peer-crl-file", F_STR, "", false, "Path to the peer certificate revocation list file."),
    FLAG("cipher-suites", F_STR, "", false, "Comma-separated list of supported TLS cipher suites between client/server and peers."),
    FLAG("cors", F_STR, "*", false, "Comma-separated whitelist of origins for CORS, or cross-origin resource sharing."),
    FLAG("host-whitelist", F_STR, "*", false, "Acceptable hostnames from HTTP client requests, if server is not secure."),
    FLAG("auth-token", F_STR, "simple", false, "Specify a v3 authentication token type and its options ('simple' or 'jwt')."),
    FLAG("bcrypt-cost", F_UINT, "10", false, "Specify the cost/strength of the bcrypt algorithm for hashing auth passwords."),
    FLAG("auth-token-ttl", F_UINT, "300", false, "The lifetime in seconds of the auth token."),
    FLAG("enable-pprof", F_BOOL, "false", false, "Enable runtime profiling data via HTTP server."),
    FLAG("metrics", F_STR, "basic", false, "Set level of detail for exported metrics, specify 'extensive' to include server side grpc histogram metrics."),
    FLAG("listen-metrics-urls", F_STR, "", false, "List of URLs to listen on for the metrics and health endpoints."),
    FLAG("logger", F_STR, "capnslog", true, "Specify 'zap' for structured logging or 'capnslog'."),
    FLAG("log-outputs", F_STR, "default", true, "Specify 'stdout' or 'stderr' to skip journald logging even when running under systemd, or list of comma separated output targets."),
    FLAG("log-level", F_STR, "info", true, "Configures log level. Only supports debug, info, warn, error, panic, or fatal."),
    FLAG("debug", F_BOOL, "false", true, "Enable debug-level logging for etcd. [WARN] Will be deprecated in v3.5. Use '--log-level=debug' instead."),
    FLAG("log-package-levels", F_STR, "", false, "Specify a particular log level for each etcd package."),
    FLAG("proxy", F_STR, "off", false, "Proxy mode setting ('off', 'readonly' or 'on')."),
    FLAG("proxy-failure-wait", F_UINT, "5000", false, "Time (in milliseconds) an endpoint will be held in a failed state."),
    FLAG("proxy-refresh-interval", F_UINT, "30000", false, "Time (in milliseconds) of the endpoints refresh interval."),
    FLAG("proxy-dial-timeout", F_UINT, "1000", false, "Time (in milliseconds) for a dial to timeout."),
    FLAG("proxy-write-timeout", F_UINT, "5000", false, "Time (in milliseconds) for a write to timeout."),
    FLAG("proxy-read-timeout", F_UINT, "0", false, "Time (in milliseconds) for a read to timeout."),
    FLAG("experimental-initial-corrupt-check", F_BOOL, "false", false, "Enable to check data corruption before serving any client/peer traffic."),
    FLAG("experimental-corrupt-check-time", F_DURATION, "0s", false, "Duration of time between cluster corruption check passes."),
    FLAG("experimental-enable-v2v3", F_STR, "", false, "v3 prefix for serving emulated v2 state."),
    FLAG("experimental-backend-bbolt-freelist-type", F_STR, "array", false, "ExperimentalBackendFreelistType specifies the type of freelist that boltdb backend uses(array and map are supported types)."),
    FLAG("experimental-enable-lease-checkpoint", F_BOOL, "false", false, "Enable to persist lease remaining TTL to prevent indefinite auto-renewal of long lived leases."),
    FLAG("experimental-compaction-batch-limit", F_INT, "1000", false, "Sets the maximum revisions deleted in each compaction batch."),
    FLAG("experimental-peer-skip-client-san-verification", F_BOOL, "false", false, "Skip verification of SAN field in client certificate for peer connections."),
    FLAG("experimental-watch-progress-notify-interval", F_DURATION, "10m", true, "Duration of periodic watch progress notifications."),
    FLAG("experimental-warning-apply-duration", F_DURATION, "100ms", false, "Time duration after which a warning is generated if request takes more time."),
    FLAG("force-new-cluster", F_BOOL, "false", false, "Force to create a new one member cluster."),
    FLAG("enable-grpc-gateway", F_BOOL, "true", false, "Enable GRPC gateway."),
    FLAG("config-file", F_STR, "", false, "Path to the server configuration file."),
};

#define N_FLAGS (sizeof flags / sizeof flags[0])

static struct flag *flag_find(const char *name, size_t len)
{
    for (size_t i = 0; i < N_FLAGS; i++)
        if (strlen(flags[i].name) == len && !memcmp(flags[i].name, name, len))
            return &flags[i];
    return NULL;
}

static const char *flag_val(const char *name)
{
    return flag_find(name, strlen(name))->val;
}

static bool parse_bool(const char *s, bool *out)
{
    static const char *const t[] = {"1", "t", "T", "true", "TRUE", "True"};
    static const char *const f[] = {"0", "f", "F", "false", "FALSE", "False"};
    for (int i = 0; i < 6; i++) {
        if (!strcmp(s, t[i]))
            return *out = true, true;
        if (!strcmp(s, f[i]))
            return *out = false, true;
    }
    return false;
}

static bool parse_u64(const char *s, unsigned long long *out)
{
    if (!*s || !isdigit((unsigned char)*s))
        return false;
    errno = 0;
    char *e;
    *out = strtoull(s, &e, 10);
    return !*e && errno == 0;
}

/* Go duration syntax: [-+]?([0-9]*(\.[0-9]*)?[a-z]+)+ or "0"; *ms (may be
 * NULL) gets the value in milliseconds. */
static bool parse_duration(const char *s, double *ms)
{
    static const char *const units[] = {"ns", "us", "\xc2\xb5s", "ms", "s", "m", "h"};
    static const double unit_ms[] = {1e-6, 1e-3, 1e-3, 1, 1e3, 60e3, 3600e3};
    double total = 0, sign = 1;
    if (*s == '-' || *s == '+')
        sign = *s++ == '-' ? -1 : 1;
    if (!strcmp(s, "0")) {
        if (ms)
            *ms = 0;
        return true;
    }
    if (!*s)
        return false;
    while (*s) {
        char *e;
        double v = strtod(s, &e);
        if (e == s || (*s != '.' && !isdigit((unsigned char)*s)))
            return false;
        s = e;
        int best = -1;
        size_t best_len = 0;
        for (int i = 0; i < 7; i++) {
            size_t l = strlen(units[i]);
            if (!strncmp(s, units[i], l) && l > best_len) {
                best = i;
                best_len = l;
            }
        }
        if (best < 0)
            return false;
        total += v * unit_ms[best];
        s += best_len;
    }
    if (ms)
        *ms = sign * total;
    return true;
}

static bool flag_valid(const struct flag *f, const char *v)
{
    unsigned long long u;
    bool b;
    switch (f->kind) {
    case F_BOOL:
        return parse_bool(v, &b);
    case F_UINT:
        return parse_u64(v, &u);
    case F_INT:
        return parse_u64(v[0] == '-' ? v + 1 : v, &u);
    case F_DURATION:
        return parse_duration(v, NULL);
    case F_STR:
        return true;
    }
    return false;
}

static void print_usage(FILE *out)
{
    fprintf(out,
            "Usage:\n\n"
            "  etcd [flags]\n    Start an etcd server.\n\n"
            "  etcd --version\n    Show the version of etcd.\n\n"
            "  etcd -h | --help\n    Show the help information about etcd.\n\n"
            "  etcd --config-file\n    Path to the server configuration file.\n\n");
}

static void print_help(void)
{
    print_usage(stdout);
    printf("Flags (each also read from ETCD_<NAME>, e.g. ETCD_DATA_DIR; a flag given on the\n"
           "command line wins over its variable):\n\n");
    for (size_t i = 0; i < N_FLAGS; i++) {
        const struct flag *f = &flags[i];
        printf("  --%s '%s'\n    %s%s\n", f->name, f->def, f->help,
               f->used ? "" : " (accepted; not acted on by this server yet)");
    }
    printf("\n  --version\n    Print the version and exit.\n");
}

static void print_version(void)
{
    printf("etcd Version: %s\n"
           "Git SHA: %s\n"
           "Go Version: not applicable (C11)\n"
           "Go OS/Arch: linux/amd64\n",
           ETCD_SERVER_VERSION, ETCD_IMPL);
}

/* etcd's flag errors: the message, then the usage, exit 2 (Go's flag pkg). */
static int flag_error(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    print_usage(stderr);
    return 2;
}

/* Returns -1 to continue, or an exit code. */
static int parse_args(int argc, char **argv)
{
    for (size_t i = 0; i < N_FLAGS; i++)
        flags[i].val = flags[i].def;
    /* environment first; the command line overrides it */
    for (size_t i = 0; i < N_FLAGS; i++) {
        char env[96] = "ETCD_";
        size_t o = 5;
        for (const char *p = flags[i].name; *p && o < sizeof env - 1; p++)
            env[o++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
        env[o] = 0;
        const char *v = getenv(env);
        if (v) {
            if (!flag_valid(&flags[i], v)) {
                fprintf(stderr, "invalid value %s for %s: parse error\n", v, env);
                return 1;
            }
            flags[i].val = v;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] == 0) {
            fprintf(stderr, "error verifying flags, '%s' is not a valid flag. See 'etcd --help'.\n", a);
            return 1;
        }
        a += a[1] == '-' ? 2 : 1;
        if (!*a)
            break; /* "--" ends the flags */
        const char *eq = strchr(a, '=');
        size_t nl = eq ? (size_t)(eq - a) : strlen(a);
        if (nl == 4 && !strncmp(a, "help", 4)) {
            print_help();
            return 0;
        }
        if (nl == 1 && a[0] == 'h') {
            print_help();
            return 0;
        }
        if (nl == 7 && !strncmp(a, "version", 7)) {
            print_version();
            return 0;
        }
        struct flag *f = flag_find(a, nl);
        if (!f) {
            char name[128];
            snprintf(name, sizeof name, "%.*s", (int)nl, a);
            return flag_error("flag provided but not defined: -%s%s", name, "");
        }
        const char *v;
        if (eq)
            v = eq + 1;
        else if (f->kind == F_BOOL)
            v = "true";
        else if (i + 1 < argc)
            v = argv[++i];
        else
            return flag_error("flag needs an argument: -%s%s", f->name, "");
        if (!flag_valid(f, v)) {
            char msg[160];
            snprintf(msg, sizeof msg, "invalid value \"%s\" for flag -%s: parse error", v, f->name);
            return flag_error("%s%s", msg, "");
        }
        f->val = v;
        f->set = true;
    }
    return -1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The configuration's strings, for the life of the process. */
static struct mem_arena cfg_arena;

/* Splits s on commas into out (pieces copied into cfg_arena); returns the
 * count, or -1 if there are more than max (or no memory). */
static int split_list(const char *s, const char **out, size_t max)
{
    size_t n = 0;
    while (*s) {
        size_t l = strcspn(s, ",");
        if (l) {
            char *piece = n < max ? mem_arena_alloc(&cfg_arena, l + 1) : NULL;
            if (!piece)
                return -1;
            memcpy(piece, s, l);
            piece[l] = 0;
            out[n++] = piece;
        }
        s += l;
        if (*s == ',')
            s++;
    }
    return (int)n;
}

/* ---- server startup ---- */


static void json_str_list(char *dst, size_t cap, const char *const *v, size_t n)
{
    size_t o = (size_t)snprintf(dst, cap, "[");
    for (size_t i = 0; i < n && o < cap; i++) {
        char e[512];
        o += (size_t)snprintf(dst + o, cap - o, "%s\"%s\"", i ? "," : "", log_json_str(e, sizeof e, v[i]));
    }
    if (o < cap)
        snprintf(dst + o, cap - o, "]");
}

static void space_list(char *dst, size_t cap, const char *const *v, size_t n)
{
    size_t o = 0;
    dst[0] = 0;
    for (size_t i = 0; i < n && o < cap; i++)
        o += (size_t)snprintf(dst + o, cap - o, "%s%s", i ? "," : "", v[i]);
}

static int die(const char *msg)
{
    log_line(LOG_FATAL, "etcdmain/etcd.go:271", "etcdmain", msg, NULL, NULL);
    return 1;
}

static int etcd_main(int argc, char **argv)
{
    int rc = parse_args(argc, argv);
    if (rc >= 0)
        return rc;

    struct server_config cfg = {0};
    cfg.name = flag_val("name");
    bool zap = !strcmp(flag_val("logger"), "zap");
    if (!zap && strcmp(flag_val("logger"), "capnslog")) {
        fprintf(stderr, "unknown logger option %s\n", flag_val("logger"));
        return 1;
    }
    int lvl = log_parse_level(flag_val("log-level"));
    if (lvl < 0) {
        fprintf(stderr, "unknown log level %s\n", flag_val("log-level"));
        return 1;
    }
    bool dbg = false;
    parse_bool(flag_val("debug"), &dbg);
    if (dbg)
        lvl = LOG_DEBUG;
    const char *outs[4];
    int nouts = split_list(flag_val("log-outputs"), outs, 4);
    if (nouts < 0 || log_setup(zap ? LOG_ZAP : LOG_CAPNSLOG, (enum log_level)lvl, nouts ? outs[0] : NULL) < 0) {
        fprintf(stderr, "failed to open log output %s\n", flag_val("log-outputs"));
        return 1;
    }

    char msg[4096], fields[8192], tmp[1024], tmp2[1024];
    /* data dir */
    char ddbuf[512];
    const char *dd = flag_val("data-dir");
    if (!strcmp(dd, "${name}.etcd")) {
        snprintf(ddbuf, sizeof ddbuf, "%s.etcd", cfg.name);
        dd = ddbuf;
        snprintf(fields, sizeof fields, "\"data-dir\":\"%s\"", log_json_str(tmp, sizeof tmp, dd));
        snprintf(msg, sizeof msg, "no data-dir provided, using default data-dir ./%s", dd);
        log_line(LOG_WARN, "etcdmain/etcd.go:119", "etcdmain", "'data-dir' was empty; using default", msg, fields);
    }
    cfg.data_dir = dd;

    /* URLs */
    int n;
    if ((n = split_list(flag_val("listen-client-urls"), cfg.listen_client_urls, SERVER_MAX_URLS)) <= 0)
        return die("--listen-client-urls must not be empty");
    cfg.n_listen_client_urls = (size_t)n;
    if ((n = split_list(flag_val("advertise-client-urls"), cfg.advertise_client_urls, SERVER_MAX_URLS)) < 0)
        return die("too many --advertise-client-urls");
    cfg.n_advertise_client_urls = (size_t)n;
    if ((n = split_list(flag_val("initial-advertise-peer-urls"), cfg.peer_urls, SERVER_MAX_URLS)) <= 0)
        return die("--initial-advertise-peer-urls must not be empty");
    cfg.n_peer_urls = (size_t)n;
    const char *https = NULL;
    for (size_t i = 0; i < cfg.n_listen_client_urls; i++) {
        char host[256];
        int port;
        bool tls;
        if (server_parse_url(cfg.listen_client_urls[i], host, sizeof host, &port, &tls) < 0) {
            snprintf(msg, sizeof msg, "error verifying flags, invalid URL \"%s\" in --listen-client-urls. See 'etcd --help'.",
                     cfg.listen_client_urls[i]);
            return die(msg);
        }
        if (tls && !https)
            https = cfg.listen_client_urls[i];
    }
    if (https) {
        /* etcd's client TLS: a certificate and key, and with
         * --client-cert-auth clients must show one signed by --trusted-ca-file */
        if (!*flag_val("cert-file") || !*flag_val("key-file")) {
            snprintf(msg, sizeof msg,
                     "TLS key/cert (--cert-file, --key-file) must be provided for client url %s with HTTPS scheme",
                     https);
            return die(msg);
        }
        bool cca = false;
        parse_bool(flag_val("client-cert-auth"), &cca);
        struct tls_cfg tc = {.ca_file = *flag_val("trusted-ca-file") ? flag_val("trusted-ca-file") : NULL,
                             .cert_file = flag_val("cert-file"),
                             .key_file = flag_val("key-file"),
                             .client_cert_auth = cca};
        char terr[512];
        if (!(cfg.tls = tls_ctx_server(&tc, terr, sizeof terr)))
            return die(terr);
    }
    if ((flag_find("listen-client-urls", 18)->set || getenv("ETCD_LISTEN_CLIENT_URLS")) &&
        !flag_find("advertise-client-urls", 21)->set && !getenv("ETCD_ADVERTISE_CLIENT_URLS")) {
        log_line(LOG_ERROR, "etcdmain/etcd.go:119", "etcdmain", "error verifying flags",
                 "error verifying flags, --advertise-client-urls is required when --listen-client-urls is "
                 "set explicitly. See 'etcd --help'.",
                 "\"error\":\"--advertise-client-urls is required when --listen-client-urls is set explicitly\"");
        log_line(LOG_ERROR, "etcdmain/etcd.go:119", "etcdmain",
                 "When listening on specific address(es), this etcd process must advertise accessible url(s) to "
                 "each connected client.",
                 NULL, NULL);
        return 1;
    }

    /* initial cluster: name=url,... ; our member must be in it with exactly
     * our advertised peer URLs */
    /* etcd 3.4.23 keeps "default=http://localhost:2380" even when only
     * --name is given, and then refuses to start: so do we */
    const char *ic = flag_val("initial-cluster");
    const char *entries[64];
    int ne = split_list(ic, entries, 64);
    if (ne < 0)
        return die("too many --initial-cluster entries");
    const char *mine[SERVER_MAX_URLS];
    size_t nmine = 0;
    const char *other_names[64];
    size_t nother = 0;
    for (int i = 0; i < ne; i++) {
        const char *eq = strchr(entries[i], '=');
        if (!eq) {
            snprintf(msg, sizeof msg, "error verifying flags, invalid --initial-cluster entry \"%s\". See 'etcd --help'.", entries[i]);
            return die(msg);
        }
        size_t nl = (size_t)(eq - entries[i]);
        if (nl == strlen(cfg.name) && !strncmp(entries[i], cfg.name, nl)) {
            if (nmine == SERVER_MAX_URLS)
                return die("too many peer URLs");
            mine[nmine++] = eq + 1;
        } else {
            bool seen = false;
            for (size_t k = 0; k < nother; k++)
                if (!strncmp(other_names[k], entries[i], nl) && other_names[k][nl] == '=')
                    seen = true;
            if (!seen)
                other_names[nother++] = entries[i];
        }
    }
    if (!nmine) {
        snprintf(msg, sizeof msg, "couldn't find local name \"%s\" in the initial cluster configuration", cfg.name);
        return die(msg);
    }
    {
        const char *a[SERVER_MAX_URLS], *b[SERVER_MAX_URLS];
        memcpy(a, mine, nmine * sizeof *a);
        memcpy(b, cfg.peer_urls, cfg.n_peer_urls * sizeof *b);
        qsort(a, nmine, sizeof *a, cmp_str);
        qsort(b, cfg.n_peer_urls, sizeof *b, cmp_str);
        bool same = nmine == cfg.n_peer_urls;
        for (size_t i = 0; same && i < nmine; i++)
            same = !strcmp(a[i], b[i]);
        if (!same) {
            space_list(tmp, sizeof tmp, mine, nmine);
            space_list(tmp2, sizeof tmp2, cfg.peer_urls, cfg.n_peer_urls);
            snprintf(msg, sizeof msg, "--initial-cluster has %s=%s but missing from --initial-advertise-peer-urls=%s",
                     cfg.name, tmp, tmp2);
            return die(msg);
        }
    }
    if (nother) {
        snprintf(msg, sizeof msg,
                 "--initial-cluster names %zu other member(s); this build runs single-member clusters only",
                 nother);
        return die(msg);
    }
    if (strcmp(flag_val("initial-cluster-state"), "new") && strcmp(flag_val("initial-cluster-state"), "existing")) {
        snprintf(msg, sizeof msg, "invalid value \"%s\" for flag -initial-cluster-state: invalid value %s",
                 flag_val("initial-cluster-state"), flag_val("initial-cluster-state"));
        return die(msg);
    }
    unsigned long long u;
    parse_u64(flag_val("max-request-bytes"), &u);
    cfg.max_request_bytes = (size_t)u;
    parse_u64(flag_val("max-txn-ops"), &u);
    cfg.max_txn_ops = u > 1u << 30 ? 1 << 30 : (int)u;
    parse_u64(flag_val("max-concurrent-streams"), &u);
    cfg.max_concurrent_streams = u > 0xffffffffu ? 0xffffffffu : (uint32_t)u;

    unsigned long long snapshot_count, max_snaps, max_wals;
    parse_u64(flag_val("snapshot-count"), &snapshot_count);
    parse_u64(flag_val("max-snapshots"), &max_snaps);
    parse_u64(flag_val("max-wals"), &max_wals);
    for (size_t i = 0; i < N_FLAGS; i++)
        if ((flags[i].set || strcmp(flags[i].val, flags[i].def)) && !flags[i].used) {
            snprintf(fields, sizeof fields, "\"flag\":\"%s\",\"value\":\"%s\"", flags[i].name,
                     log_json_str(tmp, sizeof tmp, flags[i].val));
            snprintf(msg, sizeof msg, "flag --%s=%s is accepted but not acted on by this server yet",
                     flags[i].name, flags[i].val);
            log_line(LOG_WARN, "etcdmain/config.go:330", "etcdmain", "flag accepted but not acted on yet", msg, fields);
        }

    const char *token = flag_val("initial-cluster-token");
    uint64_t mid = member_id(cfg.peer_urls, cfg.n_peer_urls, token, 0);

    json_str_list(tmp, sizeof tmp, cfg.listen_client_urls, cfg.n_listen_client_urls);
    snprintf(fields, sizeof fields, "\"listen-client-urls\":%s", tmp);
    log_line(LOG_INFO, "embed/etcd.go:127", "embed", "configuring client listeners", NULL, fields);

    json_str_list(tmp, sizeof tmp, cfg.peer_urls, cfg.n_peer_urls);
    json_str_list(tmp2, sizeof tmp2, cfg.advertise_client_urls, cfg.n_advertise_client_urls);
    snprintf(fields, sizeof fields,
             "\"etcd-version\":\"%s\",\"git-sha\":\"%s\",\"name\":\"%s\",\"data-dir\":\"%s\","
             "\"member-dir\":\"%s/member\",\"initial-advertise-peer-urls\":%s,\"advertise-client-urls\":%s,"
             "\"initial-cluster-state\":\"%s\",\"initial-cluster-token\":\"%s\",\"max-request-bytes\":%zu,"
             "\"max-txn-ops\":%d",
             ETCD_SERVER_VERSION, ETCD_IMPL, cfg.name, dd, dd, tmp, tmp2, flag_val("initial-cluster-state"), token,
             cfg.max_request_bytes, cfg.max_txn_ops);
    snprintf(msg, sizeof msg, "name = %s", cfg.name);
    log_line(LOG_INFO, "embed/etcd.go:305", "embed", "starting an etcd server", msg, fields);

    unsigned long long hb, et;
    parse_u64(flag_val("heartbeat-interval"), &hb);
    parse_u64(flag_val("election-timeout"), &et);
    if (hb == 0 || et < 5 * hb) {
        snprintf(msg, sizeof msg,
                 "--election-timeout[%llums] should be at least as 5 times as --heartbeat-interval[%llums]", et, hb);
        return die(msg);
    }
    cfg.heartbeat_ms = (int)hb;
    long long quota = strtoll(flag_val("quota-backend-bytes"), NULL, 10);
    /* etcd: 0 means the default 2 GiB, a negative value no quota */
    cfg.quota_backend_bytes = quota == 0 ? 2LL << 30 : quota < 0 ? 0 : quota;
    double wp;
    parse_duration(flag_val("experimental-watch-progress-notify-interval"), &wp);
    cfg.watch_progress_ms = wp > 0 ? (uint64_t)wp : 0;
    cfg.election_ticks = (int)(et / hb);
    struct loop *loop = loop_new();
    if (!loop)
        return die("cannot create the event loop");
    struct server srv;
    if (server_init(&srv, &cfg, loop) < 0)
        return die("out of memory");
    struct member self;
    if (member_init(&self, mid, cfg.name, cfg.peer_urls, cfg.n_peer_urls, cfg.advertise_client_urls,
                    cfg.n_advertise_client_urls) < 0)
        return die("out of memory");
    bool pre_vote = false;
    parse_bool(flag_val("pre-vote"), &pre_vote);
    double batch_ms;
    parse_duration(flag_val("backend-batch-interval"), &batch_ms);
    long long batch_limit = strtoll(flag_val("backend-batch-limit"), NULL, 10);
    struct node_config nc = {
        .data_dir = dd,
        .self = &self,
        .cluster_token = token,
        .heartbeat_ms = (int)hb,
        .election_ticks = (int)(et / hb),
        .pre_vote = pre_vote,
        .snapshot_count = snapshot_count,
        .max_snapshots = (unsigned)max_snaps,
        .max_wals = (unsigned)max_wals,
        .backend_batch_ms = batch_ms >= 1 && batch_ms < 1e9 ? (int)batch_ms : 0,
        .backend_batch_limit = batch_limit > 0 && batch_limit < 1 << 30 ? (int)batch_limit : 0,
    };
    char nerr[1024];
    int nrc = node_start(&srv, &nc, &srv.node, nerr, sizeof nerr);
    member_free(&self);
    if (nrc < 0) {
        server_close(&srv);
        loop_free(loop);
        return die(nerr);
    }

    /* --auto-compaction-retention: a duration, or a plain number (hours for
     * periodic, revisions for revision) */
    const char *mode = flag_val("auto-compaction-mode"), *ret = flag_val("auto-compaction-retention");
    bool periodic = !strcmp(mode, "periodic");
    if (!periodic && strcmp(mode, "revision")) {
        snprintf(msg, sizeof msg, "unknown auto-compaction-mode \"%s\"", mode);
        server_close(&srv);
        loop_free(loop);
        return die(msg);
    }
    double rms = 0;
    unsigned long long rnum;
    if (parse_u64(ret, &rnum))
        rms = periodic ? (double)rnum * 3600e3 : (double)rnum;
    else if (!periodic || !parse_duration(ret, &rms)) {
        snprintf(msg, sizeof msg, "invalid --auto-compaction-retention \"%s\"", ret);
        server_close(&srv);
        loop_free(loop);
        return die(msg);
    }
    srv.compactor = compactor_new(&srv, periodic, (int64_t)rms);

    char err[512];
    if (server_listen(&srv, err, sizeof err) < 0) {
        log_line(LOG_FATAL, "etcdmain/etcd.go:271", "etcdmain", "listener failed", err, NULL);
        server_close(&srv);
        loop_free(loop);
        return 1;
    }

    int sig = loop_run(loop);
    if (sig > 0) {
        snprintf(fields, sizeof fields, "\"signal\":\"%s\"", sig == 2 ? "SIGINT" : "SIGTERM");
        snprintf(msg, sizeof msg, "received %s, shutting down...", sig == 2 ? "interrupt signal" : "terminated signal");
        log_line(LOG_INFO, "osutil/interrupt_unix.go:63", "osutil", "received signal; shutting down", msg, fields);
    }
    server_close(&srv);
    loop_free(loop);
    tls_ctx_free(cfg.tls);
    mem_arena_free(&cfg_arena);
    mem_release_cache();
    return 0;
}

int main(int argc, char **argv)
{
    const char *self = strrchr(argv[0], '/');
    self = self ? self + 1 : argv[0];
    if (!strcmp(self, "etcdctl"))
        return ctl_main(argc, argv);
    return etcd_main(argc, argv);
}
