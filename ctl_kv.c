/* ctl_kv.c - etcdctl's key-value commands: get, put, del, txn and
 * compaction, with their flags, argument checks, messages and every
 * output format (ctlv3/command/{get,put,del,txn,compaction}_command.go and
 * the printers' KV parts).
 *
 * The request builders (get_op, put_op, del_op) are shared with txn, whose
 * request lines are get/put/del command lines, as in etcdctl.
 */
#include "ctl.h"
#include "json.h"

#include <string.h>
#include <unistd.h>

#include <stdlib.h>

static char *get_consistency, *get_order, *get_sort_by;
static int64_t get_limit, get_rev;
static bool get_prefix, get_from_key, get_keys_only, get_print_value_only;

static struct ctl_flag get_flags[] = {
    {"consistency", 0, CTL_STRING, "l", "Linearizable(l) or Serializable(s)", &get_consistency},
    {"order", 0, CTL_STRING, "", "Order of results; ASCEND or DESCEND (ASCEND by default)", &get_order},
    {"sort-by", 0, CTL_STRING, "", "Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION", &get_sort_by},
    {"limit", 0, CTL_INT64, "0", "Maximum number of results", &get_limit},
    {"prefix", 0, CTL_BOOL, "false", "Get keys with matching prefix", &get_prefix},
    {"from-key", 0, CTL_BOOL, "false", "Get keys that are greater than or equal to the given key using byte compare", &get_from_key},
    {"rev", 0, CTL_INT64, "0", "Specify the kv revision", &get_rev},
    {"keys-only", 0, CTL_BOOL, "false", "Get only the keys", &get_keys_only},
    {"print-value-only", 0, CTL_BOOL, "false", "Only write values when using the \"simple\" output format", &get_print_value_only},
    {0},
};

static char *put_lease;
static bool put_prev_kv, put_ignore_value, put_ignore_lease;

static struct ctl_flag put_flags[] = {
    {"lease", 0, CTL_STRING, "0", "lease ID (in hexadecimal) to attach to the key", &put_lease},
    {"prev-kv", 0, CTL_BOOL, "false", "return the previous key-value pair before modification", &put_prev_kv},
    {"ignore-value", 0, CTL_BOOL, "false", "updates the key using its current value", &put_ignore_value},
    {"ignore-lease", 0, CTL_BOOL, "false", "updates the key using its current lease", &put_ignore_lease},
    {0},
};

static bool del_prefix, del_prev_kv, del_from_key;

static struct ctl_flag del_flags[] = {
    {"prefix", 0, CTL_BOOL, "false", "delete keys with matching prefix", &del_prefix},
    {"prev-kv", 0, CTL_BOOL, "false", "return deleted key-value pairs", &del_prev_kv},
    {"from-key", 0, CTL_BOOL, "false", "delete keys that are greater than or equal to the given key using byte compare", &del_from_key},
    {0},
};

static bool txn_interactive;

static struct ctl_flag txn_flags[] = {
    {"interactive", 'i', CTL_BOOL, "false", "Input transaction in interactive mode", &txn_interactive},
    {0},
};

static bool compact_physical;

static struct ctl_flag compaction_flags[] = {
    {"physical", 0, CTL_BOOL, "false", "'true' to wait for compaction to physically remove all old revisions", &compact_physical},
    {0},
};

static int get_run(struct ctl_cmd *cmd, int argc, char **argv);
static int put_run(struct ctl_cmd *cmd, int argc, char **argv);
static int del_run(struct ctl_cmd *cmd, int argc, char **argv);
static int txn_run(struct ctl_cmd *cmd, int argc, char **argv);
static int compaction_run(struct ctl_cmd *cmd, int argc, char **argv);

struct ctl_cmd ctl_cmd_get = {
    .use = "get [options] <key> [range_end]",
    .short_desc = "Gets the key or a range of keys",
    .flags = get_flags,
    .run = get_run,
};

struct ctl_cmd ctl_cmd_put = {
    .use = "put [options] <key> <value> (<value> can also be given from stdin)",
    .short_desc = "Puts the given key into the store",
    .long_desc = "\nPuts the given key into the store.\n\n"
                 "When <value> begins with '-', <value> is interpreted as a flag.\n"
                 "Insert '--' for workaround:\n\n"
                 "$ put <key> -- <value>\n"
                 "$ put -- <key> <value>\n\n"
                 "If <value> isn't given as a command line argument and '--ignore-value' is not specified,\n"
                 "this command tries to read the value from standard input.\n\n"
                 "If <lease> isn't given as a command line argument and '--ignore-lease' is not specified,\n"
                 "this command tries to read the value from standard input.\n\n"
                 "For example,\n"
                 "$ cat file | put <key>\n"
                 "will store the content of the file to <key>.\n",
    .flags = put_flags,
    .run = put_run,
};

struct ctl_cmd ctl_cmd_del = {
    .use = "del [options] <key> [range_end]",
    .short_desc = "Removes the specified key or range of keys [key, range_end)",
    .flags = del_flags,
    .run = del_run,
};

struct ctl_cmd ctl_cmd_txn = {
    .use = "txn [options]",
    .short_desc = "Txn processes all the requests in one transaction",
    .flags = txn_flags,
    .run = txn_run,
};

struct ctl_cmd ctl_cmd_compaction = {
    .use = "compaction [options] <revision>",
    .short_desc = "Compacts the event history in etcd",
    .flags = compaction_flags,
    .run = compaction_run,
};

/* ---- request builders (getGetOp, getPutOp, getDelOp) ---- */

static struct pb_bytes str_bytes(const char *s)
{
    return (struct pb_bytes){(const uint8_t *)s, strlen(s)};
}

/* clientv3's getPrefix: the key with its last byte below 0xff increased
 * and what follows dropped; all 0xff gives "\0". */
static struct pb_bytes prefix_end(struct pb_bytes key)
{
    uint8_t *end = mem_arena_dup(&ctl_arena, key.p, key.len ? key.len : 1);
    if (!end)
        ctl_fail(CTL_EXIT_ERROR, "out of memory");
    for (size_t i = key.len; i-- > 0;) {
        if (end[i] < 0xff) {
            end[i]++;
            return (struct pb_bytes){end, i + 1};
        }
    }
    end[0] = 0;
    return (struct pb_bytes){end, 1};
}

static const struct pb_bytes zero_byte = {(const uint8_t *)"", 1};

static bool ieq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char x = *a >= 'a' && *a <= 'z' ? (char)(*a - 32) : *a;
        if (x != *b)
            return false;
    }
    return !*a && !*b;
}

static void get_op(int argc, char **argv, struct api_range_req *r)
{
    if (argc == 0)
        ctl_fail(CTL_EXIT_BAD_ARGS, "get command needs one argument as key and an optional argument as range_end");
    if (get_prefix && get_from_key)
        ctl_fail(CTL_EXIT_BAD_ARGS, "`--prefix` and `--from-key` cannot be set at the same time, choose one");
    memset(r, 0, sizeof *r);
    if (!strcmp(get_consistency, "s")) {
        r->serializable = true;
    } else if (strcmp(get_consistency, "l")) {
        struct mem_buf q = {0};
        (void)!ctl_quote(&q, get_consistency, strlen(get_consistency));
        (void)!mem_buf_putc(&q, 0);
        ctl_fail(CTL_EXIT_BAD_FEATURE, "unknown consistency flag %s", (char *)q.data);
    }
    r->key = str_bytes(argv[0]);
    if (argc > 1) {
        if (get_prefix || get_from_key)
            ctl_fail(CTL_EXIT_BAD_ARGS, "too many arguments, only accept one argument when `--prefix` or `--from-key` is set");
        r->range_end = str_bytes(argv[1]);
    }
    r->limit = get_limit;
    if (get_rev > 0)
        r->revision = get_rev;
    int order = API_SORT_NONE, target = API_SORT_KEY;
    if (ieq(get_order, "ASCEND"))
        order = API_SORT_ASCEND;
    else if (ieq(get_order, "DESCEND"))
        order = API_SORT_DESCEND;
    else if (*get_order)
        ctl_fail(CTL_EXIT_BAD_FEATURE, "bad sort order %s", get_order);
    if (ieq(get_sort_by, "CREATE"))
        target = API_SORT_CREATE;
    else if (ieq(get_sort_by, "KEY"))
        target = API_SORT_KEY;
    else if (ieq(get_sort_by, "MODIFY"))
        target = API_SORT_MOD;
    else if (ieq(get_sort_by, "VALUE"))
        target = API_SORT_VALUE;
    else if (ieq(get_sort_by, "VERSION"))
        target = API_SORT_VERSION;
    else if (*get_sort_by)
        ctl_fail(CTL_EXIT_BAD_FEATURE, "bad sort target %s", get_sort_by);
    /* WithSort: ascending by key is the server's order anyway */
    if (target == API_SORT_KEY && order == API_SORT_ASCEND)
        order = API_SORT_NONE;
    r->sort_order = order;
    r->sort_target = target;
    if (get_prefix) {
        if (r->key.len == 0) {
            r->key = zero_byte;
            r->range_end = zero_byte;
        } else {
            r->range_end = prefix_end(r->key);
        }
    }
    if (get_from_key) {
        if (r->key.len == 0)
            r->key = zero_byte;
        r->range_end = zero_byte;
    }
    r->keys_only = get_keys_only;
}

/* argOrStdin: the rest of stdin as the value */
static char *read_stdin_all(size_t *len)
{
    struct mem_buf b = {0};
    for (;;) {
        if (mem_buf_reserve(&b, 65536) < 0)
            ctl_fail(CTL_EXIT_ERROR, "out of memory");
        ssize_t r = read(0, b.data + b.len, b.cap - b.len);
        if (r <= 0)
            break;
        b.len += (size_t)r;
    }
    char *s = mem_arena_alloc(&ctl_arena, b.len + 1);
    if (!s)
        ctl_fail(CTL_EXIT_ERROR, "out of memory");
    if (b.len)
        memcpy(s, b.data, b.len);
    s[b.len] = 0;
    *len = b.len;
    mem_buf_free(&b);
    return s;
}

static void put_op(int argc, char **argv, struct api_put_req *r)
{
    static const char *const needs = "put command needs 1 argument and input from stdin or 2 arguments";
    if (argc == 0)
        ctl_fail(CTL_EXIT_BAD_ARGS, "%s", needs);
    memset(r, 0, sizeof *r);
    r->key = str_bytes(argv[0]);
    if (put_ignore_value && argc > 1)
        ctl_fail(CTL_EXIT_BAD_ARGS, "put command needs only 1 argument when 'ignore-value' is set");
    if (!put_ignore_value) {
        if (argc > 1) {
            r->value = str_bytes(argv[1]);
        } else {
            size_t n;
            char *v = read_stdin_all(&n);
            if (!n)
                ctl_fail(CTL_EXIT_BAD_ARGS, "%s", needs);
            r->value = (struct pb_bytes){(const uint8_t *)v, n};
        }
    }
    int64_t id;
    char err[256];
    if (ctl_parse_int(put_lease, 16, &id, err, sizeof err) < 0)
        ctl_fail(CTL_EXIT_BAD_ARGS, "bad lease ID (%s), expecting ID in Hex", err);
    r->lease = id;
    r->prev_kv = put_prev_kv;
    r->ignore_value = put_ignore_value;
    r->ignore_lease = put_ignore_lease;
}

static void del_op(int argc, char **argv, struct api_delete_req *r)
{
    if (argc == 0 || argc > 2)
        ctl_fail(CTL_EXIT_BAD_ARGS, "del command needs one argument as key and an optional argument as range_end");
    if (del_prefix && del_from_key)
        ctl_fail(CTL_EXIT_BAD_ARGS, "`--prefix` and `--from-key` cannot be set at the same time, choose one");
    memset(r, 0, sizeof *r);
    r->key = str_bytes(argv[0]);
    if (argc > 1) {
        if (del_prefix || del_from_key)
            ctl_fail(CTL_EXIT_BAD_ARGS, "too many arguments, only accept one argument when `--prefix` or `--from-key` is set");
        r->range_end = str_bytes(argv[1]);
    }
    if (del_prefix) {
        if (r->key.len == 0) {
            r->key = zero_byte;
            r->range_end = zero_byte;
        } else {
            r->range_end = prefix_end(r->key);
        }
    }
    r->prev_kv = del_prev_kv;
    if (del_from_key) {
        if (r->key.len == 0)
            r->key = zero_byte;
        r->range_end = zero_byte;
    }
}

/* ---- printers ---- */

static void simple_get(const struct api_range_resp *r, bool value_only)
{
    for (size_t i = 0; i < r->n_kvs; i++)
        ctl_print_kv(&r->kvs[i], value_only);
}

static void simple_put(const struct api_put_resp *r)
{
    fputs("OK\n", stdout);
    if (r->prev_kv)
        ctl_print_kv(r->prev_kv, false);
}

static void simple_del(const struct api_delete_resp *r)
{
    printf("%lld\n", (long long)r->deleted);
    for (size_t i = 0; i < r->n_prev_kvs; i++)
        ctl_print_kv(&r->prev_kvs[i], false);
}

static void fields_get(const struct api_range_resp *r)
{
    ctl_fields_header(r->header);
    for (size_t i = 0; i < r->n_kvs; i++)
        ctl_fields_kv("", &r->kvs[i]);
    printf("\"More\" : %s\n\"Count\" : %lld\n", r->more ? "true" : "false", (long long)r->count);
}

static void fields_put(const struct api_put_resp *r)
{
    ctl_fields_header(r->header);
    if (r->prev_kv)
        ctl_fields_kv("Prev", r->prev_kv);
}

static void fields_del(const struct api_delete_resp *r)
{
    ctl_fields_header(r->header);
    printf("\"Deleted\" : %lld\n", (long long)r->deleted);
    for (size_t i = 0; i < r->n_prev_kvs; i++)
        ctl_fields_kv("Prev", &r->prev_kvs[i]);
}

static void jprint_get(struct ctl_json *j, const char *key, const struct api_range_resp *r)
{
    cj_open(j, key, '{');
    cj_header(j, "header", r->header);
    if (r->n_kvs) {
        cj_open(j, "kvs", '[');
        for (size_t i = 0; i < r->n_kvs; i++)
            cj_kv(j, NULL, &r->kvs[i]);
        cj_close(j, ']');
    }
    cj_bool(j, "more", r->more, true);
    cj_i64(j, "count", r->count, true);
    cj_close(j, '}');
}

static void jprint_put(struct ctl_json *j, const char *key, const struct api_put_resp *r)
{
    cj_open(j, key, '{');
    cj_header(j, "header", r->header);
    if (r->prev_kv)
        cj_kv(j, "prev_kv", r->prev_kv);
    cj_close(j, '}');
}

static void jprint_del(struct ctl_json *j, const char *key, const struct api_delete_resp *r)
{
    cj_open(j, key, '{');
    cj_header(j, "header", r->header);
    cj_i64(j, "deleted", r->deleted, true);
    if (r->n_prev_kvs) {
        cj_open(j, "prev_kvs", '[');
        for (size_t i = 0; i < r->n_prev_kvs; i++)
            cj_kv(j, NULL, &r->prev_kvs[i]);
        cj_close(j, ']');
    }
    cj_close(j, '}');
}

static void jprint_txn(struct ctl_json *j, const char *key, const struct api_txn_resp *r)
{
    cj_open(j, key, '{');
    cj_header(j, "header", r->header);
    cj_bool(j, "succeeded", r->succeeded, true);
    if (r->n_responses) {
        cj_open(j, "responses", '[');
        for (size_t i = 0; i < r->n_responses; i++) {
            const struct api_response_op *op = &r->responses[i];
            cj_open(j, NULL, '{');
            if (op->response_range) {
                cj_open(j, "Response", '{');
                jprint_get(j, "ResponseRange", op->response_range);
                cj_close(j, '}');
            } else if (op->response_put) {
                cj_open(j, "Response", '{');
                jprint_put(j, "ResponsePut", op->response_put);
                cj_close(j, '}');
            } else if (op->response_delete_range) {
                cj_open(j, "Response", '{');
                jprint_del(j, "ResponseDeleteRange", op->response_delete_range);
                cj_close(j, '}');
            } else if (op->response_txn) {
                cj_open(j, "Response", '{');
                jprint_txn(j, "ResponseTxn", op->response_txn);
                cj_close(j, '}');
            } else {
                cj_null(j, "Response");
            }
            cj_close(j, '}');
        }
        cj_close(j, ']');
    }
    cj_close(j, '}');
}

static void print_get(const struct api_range_resp *r, bool value_only)
{
    struct ctl_json j = {0};
    switch (ctl_g.fmt) {
    case CTL_FMT_SIMPLE:
        simple_get(r, value_only);
        break;
    case CTL_FMT_FIELDS:
        fields_get(r);
        break;
    case CTL_FMT_JSON:
        jprint_get(&j, NULL, r);
        cj_print(&j);
        break;
    case CTL_FMT_PROTOBUF:
        ctl_print_pb(&api_range_resp_desc, r);
        break;
    case CTL_FMT_TABLE:
        ctl_unsupported_format();
    }
}

static void print_put(const struct api_put_resp *r)
{
    struct ctl_json j = {0};
    switch (ctl_g.fmt) {
    case CTL_FMT_SIMPLE:
        simple_put(r);
        break;
    case CTL_FMT_FIELDS:
        fields_put(r);
        break;
    case CTL_FMT_JSON:
        jprint_put(&j, NULL, r);
        cj_print(&j);
        break;
    case CTL_FMT_PROTOBUF:
        ctl_print_pb(&api_put_resp_desc, r);
        break;
    case CTL_FMT_TABLE:
        ctl_unsupported_format();
    }
}

static void print_del(const struct api_delete_resp *r)
{
    struct ctl_json j = {0};
    switch (ctl_g.fmt) {
    case CTL_FMT_SIMPLE:
        simple_del(r);
        break;
    case CTL_FMT_FIELDS:
        fields_del(r);
        break;
    case CTL_FMT_JSON:
        jprint_del(&j, NULL, r);
        cj_print(&j);
        break;
    case CTL_FMT_PROTOBUF:
        ctl_print_pb(&api_delete_resp_desc, r);
        break;
    case CTL_FMT_TABLE:
        ctl_unsupported_format();
    }
}

static void simple_txn(const struct api_txn_resp *r)
{
    fputs(r->succeeded ? "SUCCESS\n" : "FAILURE\n", stdout);
    for (size_t i = 0; i < r->n_responses; i++) {
        const struct api_response_op *op = &r->responses[i];
        fputs("\n", stdout);
        if (op->response_delete_range)
            simple_del(op->response_delete_range);
        else if (op->response_put)
            simple_put(op->response_put);
        else if (op->response_range)
            simple_get(op->response_range, false);
        else
            fputs("unexpected response\n", stdout);
    }
}

static void fields_txn(const struct api_txn_resp *r)
{
    ctl_fields_header(r->header);
    printf("\"Succeeded\" : %s\n", r->succeeded ? "true" : "false");
    for (size_t i = 0; i < r->n_responses; i++) {
        const struct api_response_op *op = &r->responses[i];
        if (op->response_delete_range)
            fields_del(op->response_delete_range);
        else if (op->response_put)
            fields_put(op->response_put);
        else if (op->response_range)
            fields_get(op->response_range);
        else
            fputs("\"Unknown\" : \"\"\n", stdout);
    }
}

static void print_txn(const struct api_txn_resp *r)
{
    struct ctl_json j = {0};
    switch (ctl_g.fmt) {
    case CTL_FMT_SIMPLE:
        simple_txn(r);
        break;
    case CTL_FMT_FIELDS:
        fields_txn(r);
        break;
    case CTL_FMT_JSON:
        jprint_txn(&j, NULL, r);
        cj_print(&j);
        break;
    case CTL_FMT_PROTOBUF:
        ctl_print_pb(&api_txn_resp_desc, r);
        break;
    case CTL_FMT_TABLE:
        ctl_unsupported_format();
    }
}

/* ---- get, put, del, compaction ---- */

static int get_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    struct api_range_req req;
    get_op(argc, argv, &req);
    int64_t dl = ctl_deadline();
    struct client *c = ctl_client_from_cmd(cmd);
    struct api_range_resp resp;
    struct client_err e;
    if (client_unary(c, "/etcdserverpb.KV/Range", &api_range_req_desc, &req, &api_range_resp_desc,
                     &resp, &ctl_arena, dl, &e) < 0)
        ctl_rpc_fail(c, CTL_EXIT_ERROR, &e, NULL, NULL);
    if (get_print_value_only && ctl_g.fmt != CTL_FMT_SIMPLE)
        ctl_fail(CTL_EXIT_BAD_ARGS, "print-value-only is only for `--write-out=simple`");
    print_get(&resp, get_print_value_only);
    return 0;
}

static int put_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    struct api_put_req req;
    put_op(argc, argv, &req);
    int64_t dl = ctl_deadline();
    struct client *c = ctl_client_from_cmd(cmd);
    struct api_put_resp resp;
    struct client_err e;
    if (client_unary(c, "/etcdserverpb.KV/Put", &api_put_req_desc, &req, &api_put_resp_desc, &resp,
                     &ctl_arena, dl, &e) < 0)
        ctl_rpc_fail(c, CTL_EXIT_ERROR, &e, NULL, NULL);
    print_put(&resp);
    return 0;
}

static int del_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    struct api_delete_req req;
    del_op(argc, argv, &req);
    int64_t dl = ctl_deadline();
    struct client *c = ctl_client_from_cmd(cmd);
    struct api_delete_resp resp;
    struct client_err e;
    if (client_unary(c, "/etcdserverpb.KV/DeleteRange", &api_delete_req_desc, &req,
                     &api_delete_resp_desc, &resp, &ctl_arena, dl, &e) < 0)
        ctl_rpc_fail(c, CTL_EXIT_ERROR, &e, NULL, NULL);
    print_del(&resp);
    return 0;
}

static int compaction_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    if (argc != 1)
        ctl_fail(CTL_EXIT_BAD_ARGS, "compaction command needs 1 argument");
    struct api_compaction_req req = {.physical = compact_physical};
    char err[256];
    if (ctl_parse_int(argv[0], 10, &req.revision, err, sizeof err) < 0)
        ctl_fail(CTL_EXIT_ERROR, "%s", err);
    struct client *c = ctl_client_from_cmd(cmd);
    struct api_compaction_resp resp;
    struct client_err e;
    if (client_unary(c, "/etcdserverpb.KV/Compact", &api_compaction_req_desc, &req,
                     &api_compaction_resp_desc, &resp, &ctl_arena, ctl_deadline(), &e) < 0)
        ctl_rpc_fail(c, CTL_EXIT_ERROR, &e, NULL, NULL);
    printf("compacted revision %lld\n", (long long)req.revision);
    return 0;
}

/* ---- txn ---- */

/* bufio.Reader.ReadString('\n') on stdin, with Go's 4096-byte buffer
 * (what put reads from stdin inside a txn is what the buffer left). */
static struct {
    char buf[4096];
    size_t off, len;
} in;

/* A line with its '\n'; NULL at EOF before a newline (Go: io.EOF). */
static char *read_line(void)
{
    struct mem_buf b = {0};
    for (;;) {
        if (in.off == in.len) {
            ssize_t r = read(0, in.buf, sizeof in.buf);
            if (r <= 0) {
                mem_buf_free(&b);
                return NULL;
            }
            in.off = 0;
            in.len = (size_t)r;
        }
        char *nl = memchr(in.buf + in.off, '\n', in.len - in.off);
        size_t n = nl ? (size_t)(nl - (in.buf + in.off)) + 1 : in.len - in.off;
        if (mem_buf_append(&b, in.buf + in.off, n) < 0)
            ctl_fail(CTL_EXIT_ERROR, "out of memory");
        in.off += n;
        if (nl)
            break;
    }
    char *s = mem_arena_alloc(&ctl_arena, b.len + 1);
    if (!s)
        ctl_fail(CTL_EXIT_ERROR, "out of memory");
    memcpy(s, b.data, b.len);
    s[b.len] = 0;
    mem_buf_free(&b);
    return s;
}

/* strings.TrimSpace (ASCII white space) in place */
static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\v' || *s == '\f')
        s++;
    size_t l = strlen(s);
    while (l && strchr(" \t\n\r\v\f", s[l - 1]))
        s[--l] = 0;
    return s;
}

static void prompt(const char *s)
{
    if (txn_interactive) {
        fputs(s, stdout);
        fputc('\n', stdout);
        fflush(stdout);
    }
}

static int hexd(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* strconv.Unquote of a double-quoted Go literal q[0..n) (quotes included)
 * into out (NUL-terminated; *len = bytes).  0, or -1 (invalid syntax). */
static int go_unquote(const char *q, size_t n, char *out, size_t *len)
{
    if (n < 2 || q[0] != '"' || q[n - 1] != '"')
        return -1;
    size_t o = 0;
    for (size_t i = 1; i < n - 1;) {
        unsigned char ch = (unsigned char)q[i];
        if (ch == '"' || ch == '\n')
            return -1;
        if (ch != '\\') {
            out[o++] = (char)ch;
            i++;
            continue;
        }
        if (++i >= n - 1)
            return -1;
        char e = q[i++];
        switch (e) {
        case 'a': out[o++] = '\a'; break;
        case 'b': out[o++] = '\b'; break;
        case 'f': out[o++] = '\f'; break;
        case 'n': out[o++] = '\n'; break;
        case 'r': out[o++] = '\r'; break;
        case 't': out[o++] = '\t'; break;
        case 'v': out[o++] = '\v'; break;
        case '\\': out[o++] = '\\'; break;
        case '"': out[o++] = '"'; break;
        case 'x': case 'u': case 'U': {
            int nd = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            uint32_t v = 0;
            for (int k = 0; k < nd; k++) {
                if (i >= n - 1 || hexd(q[i]) < 0)
                    return -1;
                v = v << 4 | (uint32_t)hexd(q[i++]);
            }
            if (e == 'x') {
                out[o++] = (char)v;
            } else {
                if (v > 0x10ffff || (v >= 0xd800 && v < 0xe000))
                    return -1;
                o += json_put_utf8(out + o, v);
            }
            break;
        }
        default:
            if (e >= '0' && e <= '7') {
                uint32_t v = (uint32_t)(e - '0');
                for (int k = 0; k < 2; k++) {
                    if (i >= n - 1 || q[i] < '0' || q[i] > '7')
                        return -1;
                    v = v * 8 + (uint32_t)(q[i++] - '0');
                }
                if (v > 255)
                    return -1;
                out[o++] = (char)v;
                break;
            }
            return -1;
        }
    }
    out[o] = 0;
    *len = o;
    return 0;
}

/* fmt.Sscanf's %q: skips spaces, reads a quoted string.  Returns the
 * position after it, or NULL with *err ("unexpected EOF", "expected quoted
 * string", "invalid syntax"). */
static const char *scan_quoted(const char *p, char **out, size_t *olen, const char **err)
{
    while (*p == ' ' || *p == '\t' || *p == '\r')
        p++;
    if (!*p) {
        *err = "unexpected EOF";
        return NULL;
    }
    const char *start = p;
    if (*p == '`') {
        const char *e = strchr(p + 1, '`');
        if (!e) {
            *err = "unexpected EOF";
            return NULL;
        }
        *olen = (size_t)(e - p - 1);
        *out = mem_arena_dup(&ctl_arena, p + 1, *olen + 1);
        if (!*out)
            ctl_fail(CTL_EXIT_ERROR, "out of memory");
        (*out)[*olen] = 0;
        return e + 1;
    }
    if (*p != '"') {
        *err = "expected quoted string";
        return NULL;
    }
    for (p++;; p++) {
        if (!*p) {
            *err = "unexpected EOF";
            return NULL;
        }
        if (*p == '\\') {
            if (!*++p) {
                *err = "unexpected EOF";
                return NULL;
            }
            continue;
        }
        if (*p == '"')
            break;
    }
    p++;
    *out = mem_arena_alloc(&ctl_arena, (size_t)(p - start) + 1);
    if (!*out)
        ctl_fail(CTL_EXIT_ERROR, "out of memory");
    if (go_unquote(start, (size_t)(p - start), *out, olen) < 0) {
        *err = "invalid syntax";
        return NULL;
    }
    return p;
}

static _Noreturn void malformed(const char *line, const char *target, int n, const char *key,
                                size_t klen, const char *op, const char *val, size_t vlen,
                                const char *serr)
{
    struct mem_buf b = {0};
    if (n != 3) {
        (void)!mem_buf_printf(&b, "malformed comparison: %s; got %s(", line, target);
        (void)!ctl_quote(&b, key, klen);
        (void)!mem_buf_printf(&b, ") %s ", op);
        (void)!ctl_quote(&b, val, vlen);
    } else {
        (void)!mem_buf_printf(&b, "malformed comparison: %s (%s)", line, serr);
    }
    (void)!mem_buf_putc(&b, 0);
    ctl_fail(CTL_EXIT_INVALID_INPUT, "%s", (char *)b.data);
}

/* parseCompare */
static void parse_compare(const char *line, struct api_compare *cmp)
{
    const char *lp = strchr(line, '(');
    if (!lp)
        ctl_fail(CTL_EXIT_INVALID_INPUT, "malformed comparison: %s", line);
    char *target = mem_arena_dup(&ctl_arena, line, (size_t)(lp - line) + 1);
    if (!target)
        ctl_fail(CTL_EXIT_ERROR, "out of memory");
    target[lp - line] = 0;
    /* fmt.Sscanf(rest, "%q) %s %q", &key, &op, &val) */
    char *key = "", *val = "", *op = "";
    size_t klen = 0, vlen = 0;
    const char *serr = NULL;
    int n = 0;
    const char *p = scan_quoted(lp + 1, &key, &klen, &serr);
    if (p) {
        n = 1;
        if (!*p) {
            serr = "unexpected EOF";
        } else if (*p != ')') {
            serr = "input does not match format";
        } else {
            p++;
            if (*p && *p != ' ' && *p != '\t' && *p != '\r') {
                serr = "expected space in input to match format";
            } else {
                while (*p == ' ' || *p == '\t' || *p == '\r')
                    p++;
                if (!*p) {
                    serr = "unexpected EOF";
                } else {
                    size_t ol = strcspn(p, " \t\r\n");
                    op = mem_arena_dup(&ctl_arena, p, ol + 1);
                    if (!op)
                        ctl_fail(CTL_EXIT_ERROR, "out of memory");
                    op[ol] = 0;
                    p += ol;
                    n = 2;
                    if (*p && *p != ' ' && *p != '\t' && *p != '\r')
                        serr = "expected space in input to match format";
                    else if (scan_quoted(p, &val, &vlen, &serr))
                        n = 3;
                }
            }
        }
    }
    if (n != 3 || serr)
        malformed(line, target, n, key, klen, op, val, vlen, serr);
    memset(cmp, 0, sizeof *cmp);
    int result;
    /* clientv3.Compare: the operator is checked first, and panics */
    if (!strcmp(op, "="))
        result = API_CMP_EQUAL;
    else if (!strcmp(op, "!="))
        result = API_CMP_NOT_EQUAL;
    else if (!strcmp(op, ">"))
        result = API_CMP_GREATER;
    else if (!strcmp(op, "<"))
        result = API_CMP_LESS;
    else
        result = -1;
    bool is_int = !strcmp(target, "ver") || !strcmp(target, "version") || !strcmp(target, "c") ||
                  !strcmp(target, "create") || !strcmp(target, "m") || !strcmp(target, "mod");
    bool is_val = !strcmp(target, "val") || !strcmp(target, "value");
    bool is_lease = !strcmp(target, "lease");
    if (!is_int && !is_val && !is_lease)
        ctl_fail(CTL_EXIT_INVALID_INPUT, "malformed comparison: %s (unknown target %s)", line, target);
    int64_t v = 0;
    char err[256];
    if (is_int && ctl_parse_int(val, 10, &v, err, sizeof err) < 0)
        ctl_fail(CTL_EXIT_INVALID_INPUT, "invalid txn compare request: %s", line);
    if (result < 0)
        ctl_panic("Unknown result op");
    cmp->result = result;
    cmp->key = (struct pb_bytes){(const uint8_t *)key, klen};
    if (!strcmp(target, "ver") || !strcmp(target, "version")) {
        cmp->target = API_CMP_VERSION;
        cmp->version = v;
        cmp->has_version = true;
    } else if (!strcmp(target, "c") || !strcmp(target, "create")) {
        cmp->target = API_CMP_CREATE;
        cmp->create_revision = v;
        cmp->has_create_revision = true;
    } else if (!strcmp(target, "m") || !strcmp(target, "mod")) {
        cmp->target = API_CMP_MOD;
        cmp->mod_revision = v;
        cmp->has_mod_revision = true;
    } else if (is_val) {
        cmp->target = API_CMP_VALUE;
        cmp->value = (struct pb_bytes){(const uint8_t *)val, vlen};
        cmp->has_value = true;
    } else {
        /* etcdctl hands the value to clientv3 as a string: a panic */
        ctl_panic("bad value");
    }
}

/* argify: etcdctl's splitting of a request line into words */
int ctl_argify(const char *s, char ***out)
{
    size_t cap = strlen(s) / 2 + 2;
    char **a = mem_arena_alloc(&ctl_arena, cap * sizeof *a);
    if (!a)
        ctl_fail(CTL_EXIT_ERROR, "out of memory");
    int n = 0;
    const char *p = s;
    while (*p) {
        if (strchr(" \t\n\r\v\f", *p)) {
            p++;
            continue;
        }
        const char *st = p;
        if (*p == '"') {
            const char *q = p + 1;
            while (*q && *q != '"') {
                if (*q == '\\' && q[1])
                    q++;
                q++;
            }
            if (*q == '"') {
                p = q + 1;
            } else { /* no closing quote: the regexp matches nothing here */
                p++;
                continue;
            }
        } else if (*p == '\'') {
            const char *q = strchr(p + 1, '\'');
            if (!q) {
                p++;
                continue;
            }
            p = q + 1;
        } else {
            while (*p && !strchr(" \t\n\r\v\f", *p))
                p++;
        }
        char *w = mem_arena_dup(&ctl_arena, st, (size_t)(p - st) + 1);
        if (!w)
            ctl_fail(CTL_EXIT_ERROR, "out of memory");
        w[p - st] = 0;
        a[n++] = w;
    }
    for (int i = 0; i < n; i++) {
        char *w = a[i];
        size_t wl = strlen(w);
        if (w[0] == '\'') {
            /* etcdctl slices with len(args), not len(args[i]) */
            size_t hi = (size_t)(n - 1);
            char msg[128];
            if (n - 1 < 1) {
                snprintf(msg, sizeof msg, "runtime error: slice bounds out of range [1:%d]", n - 1);
                ctl_panic(msg);
            }
            if (hi > wl) {
                snprintf(msg, sizeof msg, "runtime error: slice bounds out of range [:%zu] with length %zu", hi, wl);
                ctl_panic(msg);
            }
            w[hi] = 0;
            a[i] = w + 1;
        } else if (w[0] == '"') {
            size_t ol;
            char *o = mem_arena_alloc(&ctl_arena, wl + 1);
            if (!o)
                ctl_fail(CTL_EXIT_ERROR, "out of memory");
            if (go_unquote(w, wl, o, &ol) < 0)
                ctl_fail(CTL_EXIT_INVALID_INPUT, "invalid syntax");
            a[i] = o;
        }
    }
    *out = a;
    return n;
}

/* The defaults of a command's flags, as a freshly made cobra command. */
static void reset_flags(struct ctl_flag *flags)
{
    for (struct ctl_flag *f = flags; f && f->name; f++) {
        f->changed = false;
        switch (f->type) {
        case CTL_BOOL:
            *(bool *)f->val = !strcmp(f->def, "true");
            break;
        case CTL_STRING:
            *(char **)f->val = (char *)f->def;
            break;
        case CTL_INT64:
            *(int64_t *)f->val = strtoll(f->def, NULL, 10);
            break;
        default:
            break;
        }
    }
}

/* parseRequestUnion */
static void parse_request(const char *line, struct api_request_op *op)
{
    char **args;
    int n = ctl_argify(line, &args);
    if (n < 2)
        ctl_fail(CTL_EXIT_INVALID_INPUT, "invalid txn compare request: %s", line);
    /* a nameless cobra root with put, get, del (and cobra's help and
     * completion); prefixes select a command when unique */
    static const char *const names[] = {"completion", "del", "get", "help", "put"};
    int found = -1, matches = 0;
    for (int i = 0; i < 5; i++) {
        if (!strcmp(args[0], names[i])) {
            found = i;
            matches = 1;
            break;
        }
        if (!strncmp(names[i], args[0], strlen(args[0]))) {
            found = i;
            matches++;
        }
    }
    if (matches != 1 || found == 0 || found == 3)
        ctl_fail(CTL_EXIT_INVALID_INPUT, "invalid txn request: %s", line);
    struct ctl_cmd *c = found == 1 ? &ctl_cmd_del : found == 2 ? &ctl_cmd_get : &ctl_cmd_put;
    reset_flags(c->flags);
    int pn;
    char **pa;
    char err[256];
    int pr = ctl_parse_cmd_flags(c, true, args + 1, n - 1, &pn, &pa, err, sizeof err);
    if (pr == -1)
        ctl_cobra_usage(c); /* cobra shows it on a flag error */
    if (pr == -2) /* cobra printed help and etcdctl waits for an op forever */
        ctl_panic("fatal error: all goroutines are asleep - deadlock!");
    if (pr < 0)
        ctl_fail(CTL_EXIT_INVALID_INPUT, "invalid txn request: %s", line);
    if (found == 1) {
        op->request_delete_range = mem_arena_zalloc(&ctl_arena, sizeof *op->request_delete_range);
        if (!op->request_delete_range)
            ctl_fail(CTL_EXIT_ERROR, "out of memory");
        del_op(pn, pa, op->request_delete_range);
    } else if (found == 2) {
        op->request_range = mem_arena_zalloc(&ctl_arena, sizeof *op->request_range);
        if (!op->request_range)
            ctl_fail(CTL_EXIT_ERROR, "out of memory");
        get_op(pn, pa, op->request_range);
    } else {
        op->request_put = mem_arena_zalloc(&ctl_arena, sizeof *op->request_put);
        if (!op->request_put)
            ctl_fail(CTL_EXIT_ERROR, "out of memory");
        put_op(pn, pa, op->request_put);
    }
}

static size_t read_compares(struct api_compare **out)
{
    size_t n = 0, cap = 0;
    struct api_compare *v = NULL;
    for (;;) {
        char *l = read_line();
        if (!l)
            ctl_fail(CTL_EXIT_INVALID_INPUT, "EOF");
        l = trim(l);
        if (!*l)
            break;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            struct api_compare *nv = mem_arena_alloc(&ctl_arena, cap * sizeof *nv);
            if (!nv)
                ctl_fail(CTL_EXIT_ERROR, "out of memory");
            if (n)
                memcpy(nv, v, n * sizeof *nv);
            v = nv;
        }
        parse_compare(l, &v[n++]);
    }
    *out = v;
    return n;
}

static size_t read_ops(struct api_request_op **out)
{
    size_t n = 0, cap = 0;
    struct api_request_op *v = NULL;
    for (;;) {
        char *l = read_line();
        if (!l)
            ctl_fail(CTL_EXIT_INVALID_INPUT, "EOF");
        l = trim(l);
        if (!*l)
            break;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            struct api_request_op *nv = mem_arena_alloc(&ctl_arena, cap * sizeof *nv);
            if (!nv)
                ctl_fail(CTL_EXIT_ERROR, "out of memory");
            if (n)
                memcpy(nv, v, n * sizeof *nv);
            v = nv;
        }
        memset(&v[n], 0, sizeof v[n]);
        parse_request(l, &v[n++]);
    }
    *out = v;
    return n;
}

static int txn_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    (void)argv;
    if (argc != 0)
        ctl_fail(CTL_EXIT_BAD_ARGS, "txn command does not accept argument");
    struct client *c = ctl_client_from_cmd(cmd);
    struct api_txn_req req = {0};
    prompt("compares:");
    req.n_compare = read_compares(&req.compare);
    prompt("success requests (get, put, del):");
    req.n_success = read_ops(&req.success);
    prompt("failure requests (get, put, del):");
    req.n_failure = read_ops(&req.failure);
    /* the request lines reset the get/put/del flags, as fresh cobra
     * commands do; the txn itself has no deadline (context.Background) */
    struct api_txn_resp resp;
    struct client_err e;
    if (client_unary(c, "/etcdserverpb.KV/Txn", &api_txn_req_desc, &req, &api_txn_resp_desc,
                     &resp, &ctl_arena, 0, &e) < 0)
        ctl_rpc_fail(c, CTL_EXIT_ERROR, &e, NULL, NULL);
    print_txn(&resp);
    return 0;
}
