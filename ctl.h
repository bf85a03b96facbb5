/* ctl.h - the etcdctl personality: its command tree, cobra/pflag-style flag
 * parsing, ETCDCTL_* variables, help texts, the global options, and the
 * helpers command files share (client set-up, errors, output formats).
 *
 * A command file (ctl_kv.c, ctl_lease.c, ...) defines `struct ctl_cmd`s and
 * the root table in ctl.c lists them.  Adding a command:
 *
 *     static bool lock_foo;
 *     static struct ctl_flag lock_flags[] = {
 *         {"foo", 0, CTL_BOOL, "false", "usage text as etcdctl has it", &lock_foo},
 *         {0},
 *     };
 *     static int lock_run(struct ctl_cmd *cmd, int argc, char **argv);
 *     struct ctl_cmd ctl_cmd_lock = {
 *         .use = "lock <lockname> [exec-command arg1 arg2 ...]",
 *         .short_desc = "Acquires a named lock", .flags = lock_flags, .run = lock_run,
 *     };
 *
 * then declare it below and put it in ctl.c's root list (kept sorted by
 * name, as cobra lists commands).  run() gets the positional arguments with
 * flags removed and returns the exit code; it may also end the process with
 * ctl_fail().  Flag values are set before run() (defaults first, then the
 * command line; ETCDCTL_* variables are applied by ctl_client_from_cmd, as
 * etcdctl applies them when it builds its client).
 *
 * Output goes to stdout through stdio; ctl_fail() and friends flush it
 * before writing to stderr, so the two streams interleave as etcdctl's
 * unbuffered writes do.
 */
#ifndef ETCD_CTL_H
#define ETCD_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "api.h"
#include "client.h"
#include "mem.h"

/* etcdctl's exit codes (ctlv3/command/error.go) */
enum ctl_exit {
    CTL_EXIT_SUCCESS = 0,
    CTL_EXIT_ERROR = 1,
    CTL_EXIT_BAD_CONNECTION = 2,
    CTL_EXIT_INVALID_INPUT = 3,
    CTL_EXIT_BAD_FEATURE = 4,
    CTL_EXIT_INTERRUPTED = 5,
    CTL_EXIT_IO = 6,
    CTL_EXIT_BAD_ARGS = 128,
};

/* ---- flags ---- */

enum ctl_flag_type {
    CTL_BOOL,     /* bool *;    NoOptDefVal "true" as pflag's BoolVar */
    CTL_STRING,   /* char **;   points into argv, the environment or def */
    CTL_INT64,    /* int64_t *; strconv.ParseInt(s, 0, 64) */
    CTL_UINT64,   /* uint64_t * */
    CTL_DURATION, /* int64_t * nanoseconds; Go's time.ParseDuration */
    CTL_STRINGS,  /* struct ctl_strv *; comma-separated, repeated flags append */
};

struct ctl_strv {
    char **v; /* owned by ctl's arena */
    size_t n;
};

struct ctl_flag {
    const char *name;
    char shorthand;          /* 0: none */
    enum ctl_flag_type type;
    const char *def;         /* default as pflag prints it: "false", "5s", "[127.0.0.1:2379]", "" */
    const char *usage;
    void *val;
    bool changed;            /* set on the command line (or by ctl_flag_set) */
};

/* ---- commands ---- */

struct ctl_cmd {
    const char *use;        /* cobra's Use: the name, then the argument synopsis */
    const char *short_desc;
    const char *long_desc;  /* NULL: none */
    struct ctl_flag *flags;  /* local flags, ending with a zeroed entry; may be NULL */
    struct ctl_flag *pflags; /* persistent flags (inherited by subcommands); may be NULL */
    /* NULL: not runnable (prints its help).  Returns the exit code. */
    int (*run)(struct ctl_cmd *cmd, int argc, char **argv);
    struct ctl_cmd *const *subs; /* NULL-terminated, sorted by name; may be NULL */
    struct ctl_cmd *parent;      /* set by ctl_main */
    const char *alias;           /* cobra's Aliases (one); NULL: none */
    /* cobra's Hidden, as its __complete is: never listed, suggested or
     * completed, and a child of its parent only while the command line
     * leads to it (the lookup forgets it when the words go elsewhere). */
    bool hidden;
    bool raw_args;        /* DisableFlagParsing: run() gets the words as typed, flags too */
    bool no_flags_in_use; /* DisableFlagsInUseLine: help shows no " [flags]" */
    bool called_by_alias; /* set by the lookup: the word matched the alias */
};

/* Commands of the tree (ctl.c lists them in the root). */
extern struct ctl_cmd ctl_cmd_get, ctl_cmd_put, ctl_cmd_del, ctl_cmd_txn,
    ctl_cmd_compaction;                              /* ctl_kv.c */
extern struct ctl_cmd ctl_cmd_watch;                 /* ctl_watch.c */
extern struct ctl_cmd ctl_cmd_lease;                 /* ctl_lease.c */
extern struct ctl_cmd ctl_cmd_member, ctl_cmd_endpoint, ctl_cmd_alarm, ctl_cmd_defrag,
    ctl_cmd_move_leader;                             /* ctl_cluster.c */
extern struct ctl_cmd ctl_cmd_snapshot;              /* ctl_snapshot.c */
extern struct ctl_cmd ctl_cmd_lock, ctl_cmd_elect;   /* ctl_lock.c */
extern struct ctl_cmd ctl_cmd_auth, ctl_cmd_user, ctl_cmd_role; /* ctl_auth.c */
extern struct ctl_cmd ctl_cmd_make_mirror, ctl_cmd_migrate, ctl_cmd_check; /* ctl_misc.c */
extern struct ctl_cmd ctl_cmd_completion, ctl_cmd_complete; /* ctl_complete.c */
/* `defrag --data-dir`: defragments <data_dir>/member/snap/db offline as
 * etcdctl does (waiting for the file lock, saying so after a second).
 * Prints nothing on success; returns the exit code (1 after "Failed to
 * defragment etcd data[...]"); exits 2 with etcd's panic when the db cannot
 * be opened. */
int ctl_defrag_data_dir(const char *data_dir);

/* Parses argv against cmd's own flags only (and -h/--help when
 * with_help), as a fresh cobra command without parents would (txn's request
 * lines, watch -i's lines): the positional arguments in *out_argv.  0, or
 * -1 with pflag's error text in err ("unknown flag: --x"; "pflag: help
 * requested" for -h without with_help); -2 when -h was given with_help. */
int ctl_parse_cmd_flags(struct ctl_cmd *cmd, bool with_help, char **argv, int argc,
                        int *out_argc, char ***out_argv, char *err, size_t cap);
/* cobra's default usage text for cmd under a nameless root, on stderr (what
 * a txn request line with a bad flag shows). */
void ctl_cobra_usage(struct ctl_cmd *cmd);

/* etcdctl's argify: a request line split into words, quotes removed as
 * etcdctl does (txn and watch -i lines).  Returns the count. */
int ctl_argify(const char *s, char ***out);

/* The personality's main: argv[0] is "etcdctl".  Returns the exit code. */
int ctl_main(int argc, char **argv);

/* ---- the frame's lookup and flags, for shell completion (ctl_complete.c) ---- */

/* cobra's Command.Find from the root: descends while the first word of
 * args[0..*n) that is neither a flag nor a flag's value names a subcommand
 * (exactly, by its alias, or by a unique prefix), removing that word from
 * args and *n.  Hidden commands take part only when with_hidden.  Returns
 * the command reached; *unknown is the first such word left at the root
 * (cobra's "unknown command" error), else NULL. */
struct ctl_cmd *ctl_find(char **args, int *n, bool with_hidden, const char **unknown);
/* cmd.Flags().Lookup(name[0..len)) and .ShorthandLookup(ch) over every flag
 * cmd takes: its own, its and its parents' persistent ones, -h/--help.
 * NULL: no such flag. */
struct ctl_flag *ctl_flag_lookup(struct ctl_cmd *cmd, const char *name, size_t len);
struct ctl_flag *ctl_flag_shorthand(struct ctl_cmd *cmd, char ch);
/* pflag's parse of argv[0..argc) against the same flags, setting values and
 * ->changed as it goes: the positional arguments (all of those after "--"
 * included) in *out_argc and *out_argv.  0, or -1 with pflag's error text in
 * err ("unknown flag: --x"). */
int ctl_parse_all_flags(struct ctl_cmd *cmd, char **argv, int argc, int *out_argc,
                        char ***out_argv, char *err, size_t cap);
/* cobra's answer to arguments a command rejects: "Error: <msg>" on stderr,
 * the command's help on stdout, then "Error: <msg>" again; exit 1. */
_Noreturn void ctl_usage_fail(struct ctl_cmd *cmd, const char *msg);

/* ---- the global options ---- */

enum ctl_format { CTL_FMT_SIMPLE, CTL_FMT_JSON, CTL_FMT_FIELDS, CTL_FMT_PROTOBUF, CTL_FMT_TABLE };

struct ctl_globals {
    struct ctl_strv endpoints;
    bool debug;
    char *write_out;
    bool hex;
    int64_t dial_timeout, command_timeout, keepalive_time, keepalive_timeout; /* ns */
    bool insecure_transport, insecure_discovery, insecure_skip_tls_verify;
    char *cert, *key, *cacert, *user, *password, *discovery_srv, *discovery_srv_name;
    /* derived by ctl_client_from_cmd */
    enum ctl_format fmt;
};

extern struct ctl_globals ctl_g;

/* Run-wide arena for argument copies and small lookups; freed at exit. */
extern struct mem_arena ctl_arena;

/* The process's arguments (Go's os.Args; watch looks for "--" in them). */
extern char **ctl_os_argv;
extern int ctl_os_argc;

/* ---- building the client (etcdctl's clientConfigFromCmd/mustClient) ----
 *
 * Applies ETCDCTL_* variables to the inherited flags (warning about unknown
 * ones, failing on one that a flag shadows), prints them with --debug,
 * resolves the endpoints, checks the TLS and auth options (prompting for a
 * password), validates --write-out, and returns a client; with --user it
 * authenticates at once (exit 2 on failure).  Exits on every error as
 * etcdctl does. */
struct client *ctl_client_from_cmd(struct ctl_cmd *cmd);
/* How ctl_client_for treats --user. */
enum ctl_auth {
    CTL_AUTH_NONE, /* not at all (MemberList for --cluster) */
    CTL_AUTH_NOW,  /* authenticate at once; exit 2 on failure (clientv3.New) */
    CTL_AUTH_LAZY, /* authenticate on the first call, which then fails */
};
/* The same configuration for other endpoints (endpoint health/status,
 * move-leader): a client for eps[0..n); direct names it as clientv3's
 * Dial(ep) does in diagnostics ("passthrough:///ep") rather than as a
 * clientv3.New client. */
struct client *ctl_client_for(char **eps, size_t n, enum ctl_auth auth, bool direct);
/* Only the env/--write-out part (endpoint health calls it itself). */
void ctl_apply_env(struct ctl_cmd *cmd);
void ctl_init_display(void);
/* The endpoints after --discovery-srv: ctl_g.endpoints unless SRV found some. */
struct ctl_strv ctl_endpoints(void);

/* now + --command-timeout, as commandCtx */
int64_t ctl_deadline(void);

/* ---- errors ---- */

/* "Error: <fmt>" on stderr (stdout flushed first), then exit(code). */
_Noreturn void ctl_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* An RPC failure as clientv3 reports it: the error text of e (an etcd
 * error's message, "rpc error: code = X desc = Y", or "context deadline
 * exceeded"). */
const char *ctl_err_text(const struct client_err *e);
/* Unary RPC failure: the zap "retrying of unary invoker failed" warning
 * line clientv3 logs, then "Error: <prefix><text><suffix>", exit(code). */
_Noreturn void ctl_rpc_fail(const struct client *c, int code, const struct client_err *e,
                            const char *prefix, const char *suffix);
/* Just the warning line (for callers that go on after a failure). */
void ctl_rpc_warn(const struct client *c, const struct client_err *e);
/* A Go runtime panic as etcdctl would die of it: message, exit 2. */
_Noreturn void ctl_panic(const char *msg);
/* Flushes stdout and exits. */
_Noreturn void ctl_exit(int code);

/* ---- parsing as Go's strconv does ----
 * Each returns 0, or -1 with the Go error text in err ("strconv.ParseInt:
 * parsing \"x\": invalid syntax"). */
int ctl_parse_int(const char *s, int base, int64_t *out, char *err, size_t cap);
int ctl_parse_uint(const char *s, int base, uint64_t *out, char *err, size_t cap);
int ctl_parse_bool(const char *s, bool *out, char *err, size_t cap);
int ctl_parse_duration(const char *s, int64_t *ns, char *err, size_t cap);

/* ---- output helpers (ctl_out.c) ---- */

/* Go's strconv.Quote of p[0..n) (%q) appended to b; 0 or -1 on OOM. */
int ctl_quote(struct mem_buf *b, const void *p, size_t n) MEM_MUST_CHECK;
/* Writes %q of p[0..n) to stdout. */
void ctl_print_quoted(const void *p, size_t n);
/* Go's time.Duration.String() of ns. */
void ctl_duration_str(int64_t ns, char *out, size_t cap);
/* humanize.Bytes: "20 kB", "1.2 MB". */
void ctl_humanize_bytes(uint64_t v, char *out, size_t cap);
/* Writes p[0..n) to stdout. */
void ctl_write(const void *p, size_t n);

/* The simple printer's key/value lines (printKV), honouring --hex. */
void ctl_print_kv(const struct api_kv *kv, bool value_only);
/* The fields printer's pieces. */
void ctl_fields_header(const struct api_header *h); /* NULL header: Go's nil-pointer panic */
void ctl_fields_kv(const char *prefix, const struct api_kv *kv);

/* JSON as Go's encoding/json writes etcd's gogoproto structs: omitempty
 * fields, []byte as base64, int64/uint64 as numbers.  The writer keeps
 * track of commas. */
struct ctl_json {
    struct mem_buf b;
    bool first[32];
    int depth;
};
void cj_open(struct ctl_json *j, const char *key, char brace); /* key NULL inside arrays / at top */
void cj_close(struct ctl_json *j, char brace);
void cj_i64(struct ctl_json *j, const char *key, int64_t v, bool omitempty);
void cj_u64(struct ctl_json *j, const char *key, uint64_t v, bool omitempty);
void cj_bool(struct ctl_json *j, const char *key, bool v, bool omitempty);
void cj_str(struct ctl_json *j, const char *key, const void *p, size_t n, bool omitempty);
void cj_b64(struct ctl_json *j, const char *key, const void *p, size_t n, bool omitempty);
void cj_null(struct ctl_json *j, const char *key);
/* "header":{...} (omitted when h is NULL) and a KeyValue object. */
void cj_header(struct ctl_json *j, const char *key, const struct api_header *h);
void cj_header_fields(struct ctl_json *j, const struct api_header *h); /* embedded: no braces */
void cj_kv(struct ctl_json *j, const char *key, const struct api_kv *kv);
/* Prints the buffer and a newline to stdout, frees it. */
void cj_print(struct ctl_json *j);

/* Writes msg's protobuf encoding to stdout (the protobuf printer). */
void ctl_print_pb(const struct pb_msgdesc *d, const void *msg);

/* olekukonko/tablewriter as etcdctl configures it: header row, right
 * alignment, cells wrapped at 30 columns. */
void ctl_table(const char *const *hdr, size_t ncols, char **cells, size_t nrows);

/* "<name> not supported as output format", exit 4 (printerUnsupported). */
_Noreturn void ctl_unsupported_format(void);

#endif
