/* ctl_lease.c - etcdctl's lease commands: grant, revoke, timetolive, list
 * and keep-alive (--once), with etcdctl's messages, exit codes and every
 * output format (ctlv3/command/lease_command.go and the printers' lease
 * parts).
 *
 * clientv3's lease responses embed *ResponseHeader, so Go's JSON inlines
 * the header's fields and the protobuf printer marshals the header alone;
 * both oddities are etcdctl's output and are kept.
 */
#include "ctl.h"

#include <string.h>
#include <unistd.h>

static bool ttl_keys, keepalive_once;

static struct ctl_flag timetolive_flags[] = {
    {"keys", 0, CTL_BOOL, "false", "Get keys attached to this lease", &ttl_keys},
    {0},
};

static struct ctl_flag keepalive_flags[] = {
    {"once", 0, CTL_BOOL, "false", "Resets the keep-alive time to its original value and exits immediately", &keepalive_once},
    {0},
};

static int grant_run(struct ctl_cmd *cmd, int argc, char **argv);
static int revoke_run(struct ctl_cmd *cmd, int argc, char **argv);
static int timetolive_run(struct ctl_cmd *cmd, int argc, char **argv);
static int list_run(struct ctl_cmd *cmd, int argc, char **argv);
static int keepalive_run(struct ctl_cmd *cmd, int argc, char **argv);

static struct ctl_cmd cmd_grant = {
    .use = "grant <ttl>", .short_desc = "Creates leases", .run = grant_run,
};
static struct ctl_cmd cmd_revoke = {
    .use = "revoke <leaseID>", .short_desc = "Revokes leases", .run = revoke_run,
};
static struct ctl_cmd cmd_timetolive = {
    .use = "timetolive <leaseID> [options]", .short_desc = "Get lease information",
    .flags = timetolive_flags, .run = timetolive_run,
};
static struct ctl_cmd cmd_list = {
    .use = "list", .short_desc = "List all active leases", .run = list_run,
};
static struct ctl_cmd cmd_keepalive = {
    .use = "keep-alive [options] <leaseID>", .short_desc = "Keeps leases alive (renew)",
    .flags = keepalive_flags, .run = keepalive_run,
};

static struct ctl_cmd *const lease_subs[] = {
    &cmd_grant, &cmd_keepalive, &cmd_list, &cmd_revoke, &cmd_timetolive, NULL,
};

struct ctl_cmd ctl_cmd_lease = {
    .use = "lease <subcommand>", .short_desc = "Lease related commands", .subs = lease_subs,
};

/* leaseFromArgs */
static int64_t lease_arg(const char *s)
{
    int64_t id;
    char err[256];
    if (ctl_parse_int(s, 16, &id, err, sizeof err) < 0)
        ctl_fail(CTL_EXIT_BAD_ARGS, "bad lease ID arg (%s), expecting ID in Hex", err);
    return id;
}

/* The header's fields inlined (Go's embedded *ResponseHeader). */
static void json_open_embedded(struct ctl_json *j, const struct api_header *h)
{
    cj_open(j, NULL, '{');
    cj_header_fields(j, h);
}

static void fields_id_ttl(const struct api_header *h, int64_t id, int64_t ttl)
{
    ctl_fields_header(h);
    printf("\"ID\" : %lld\n\"TTL\" : %lld\n", (long long)id, (long long)ttl);
}

/* ---- grant ---- */

static int grant_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    if (argc != 1)
        ctl_fail(CTL_EXIT_BAD_ARGS, "lease grant command needs TTL argument");
    struct api_lease_grant_req req = {0};
    char err[256];
    if (ctl_parse_int(argv[0], 10, &req.TTL, err, sizeof err) < 0)
        ctl_fail(CTL_EXIT_BAD_ARGS, "bad TTL (%s)", err);
    int64_t dl = ctl_deadline();
    struct client *c = ctl_client_from_cmd(cmd);
    struct api_lease_grant_resp r;
    struct client_err e;
    if (client_unary(c, "/etcdserverpb.Lease/LeaseGrant", &api_lease_grant_req_desc, &req,
                     &api_lease_grant_resp_desc, &r, &ctl_arena, dl, &e) < 0)
        ctl_rpc_fail(c, CTL_EXIT_ERROR, &e, "failed to grant lease (", ")");
    struct ctl_json j = {0};
    switch (ctl_g.fmt) {
    case CTL_FMT_SIMPLE:
        printf("lease %016llx granted with TTL(%llds)\n", (unsigned long long)r.ID, (long long)r.TTL);
        break;
    case CTL_FMT_JSON:
        json_open_embedded(&j, r.header);
        cj_i64(&j, "ID", r.ID, false);
        cj_i64(&j, "TTL", r.TTL, false);
        cj_str(&j, "Error", r.error.p, r.error.len, false);
        cj_close(&j, '}');
        cj_print(&j);
        break;
    case CTL_FMT_FIELDS:
        fields_id_ttl(r.header, r.ID, r.TTL);
        break;
    case CTL_FMT_PROTOBUF:
        if (r.header)
            ctl_print_pb(&api_header_desc, r.header);
        break;
    case CTL_FMT_TABLE:
        ctl_unsupported_format();
    }
    return 0;
}

/* ---- revoke ---- */

/* proto's compact text of a header, as %v prints it */
static void header_text(const struct api_header *h, struct mem_buf *b)
{
    if (!h) {
        (void)!mem_buf_printf(b, "<nil>");
        return;
    }
    if (h->cluster_id)
        (void)!mem_buf_printf(b, "cluster_id:%llu ", (unsigned long long)h->cluster_id);
    if (h->member_id)
        (void)!mem_buf_printf(b, "member_id:%llu ", (unsigned long long)h->member_id);
    if (h->revision)
        (void)!mem_buf_printf(b, "revision:%lld ", (long long)h->revision);
    if (h->raft_term)
        (void)!mem_buf_printf(b, "raft_term:%llu ", (unsigned long long)h->raft_term);
}

static int revoke_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    if (argc != 1)
        ctl_fail(CTL_EXIT_BAD_ARGS, "lease revoke command needs 1 argument");
    struct api_lease_revoke_req req = {.ID = lease_arg(argv[0])};
    int64_t dl = ctl_deadline();
    struct client *c = ctl_client_from_cmd(cmd);
    struct api_lease_revoke_resp r;
    struct client_err e;
    if (client_unary(c, "/etcdserverpb.Lease/LeaseRevoke", &api_lease_revoke_req_desc, &req,
                     &api_lease_revoke_resp_desc, &r, &ctl_arena, dl, &e) < 0)
        ctl_rpc_fail(c, CTL_EXIT_ERROR, &e, "failed to revoke lease (", ")");
    struct ctl_json j = {0};
    struct mem_buf b = {0};
    switch (ctl_g.fmt) {
    case CTL_FMT_SIMPLE:
        printf("lease %016llx revoked\n", (unsigned long long)req.ID);
        break;
    case CTL_FMT_JSON:
        cj_open(&j, NULL, '{');
        cj_header(&j, "header", r.header);
        cj_close(&j, '}');
        cj_print(&j);
        break;
    case CTL_FMT_FIELDS:
        ctl_fields_header(r.header);
        break;
    case CTL_FMT_PROTOBUF:
        /* clientv3.LeaseRevokeResponse has no Marshal method */
        header_text(r.header, &b);
        (void)!mem_buf_putc(&b, 0);
        ctl_fail(CTL_EXIT_BAD_FEATURE,
                 "marshal unsupported for type clientv3.LeaseRevokeResponse ({%s})",
                 (char *)b.data);
    case CTL_FMT_TABLE:
        ctl_unsupported_format();
    }
    return 0;
}

/* ---- timetolive ---- */

static int timetolive_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    if (argc != 1)
        ctl_fail(CTL_EXIT_BAD_ARGS, "lease timetolive command needs lease ID as argument");
    struct api_lease_time_to_live_req req = {.ID = lease_arg(argv[0]), .keys = ttl_keys};
    struct client *c = ctl_client_from_cmd(cmd);
    struct api_lease_time_to_live_resp r;
    struct client_err e;
    /* context.TODO(): no deadline */
    if (client_unary(c, "/etcdserverpb.Lease/LeaseTimeToLive", &api_lease_time_to_live_req_desc,
                     &req, &api_lease_time_to_live_resp_desc, &r, &ctl_arena, 0, &e) < 0)
        ctl_rpc_fail(c, CTL_EXIT_BAD_CONNECTION, &e, NULL, NULL);
    struct ctl_json j = {0};
    switch (ctl_g.fmt) {
    case CTL_FMT_SIMPLE:
        if (r.grantedTTL == 0 && r.TTL == -1) {
            printf("lease %016llx already expired\n", (unsigned long long)r.ID);
            break;
        }
        printf("lease %016llx granted with TTL(%llds), remaining(%llds)", (unsigned long long)r.ID,
               (long long)r.grantedTTL, (long long)r.TTL);
        if (ttl_keys) {
            fputs(", attached keys([", stdout);
            for (size_t i = 0; i < r.n_keys; i++) {
                if (i)
                    fputc(' ', stdout);
                ctl_write(r.keys[i].p, r.keys[i].len);
            }
            fputs("])", stdout);
        }
        fputc('\n', stdout);
        break;
    case CTL_FMT_JSON:
        json_open_embedded(&j, r.header);
        cj_i64(&j, "id", r.ID, false);
        cj_i64(&j, "ttl", r.TTL, false);
        cj_i64(&j, "granted-ttl", r.grantedTTL, false);
        if (r.n_keys) {
            cj_open(&j, "keys", '[');
            for (size_t i = 0; i < r.n_keys; i++)
                cj_b64(&j, NULL, r.keys[i].p, r.keys[i].len, false);
            cj_close(&j, ']');
        } else {
            cj_null(&j, "keys");
        }
        cj_close(&j, '}');
        cj_print(&j);
        break;
    case CTL_FMT_FIELDS:
        fields_id_ttl(r.header, r.ID, r.TTL);
        printf("\"GrantedTTL\" : %lld\n", (long long)r.grantedTTL);
        for (size_t i = 0; i < r.n_keys; i++) {
            fputs("\"Key\" : ", stdout);
            ctl_print_quoted(r.keys[i].p, r.keys[i].len);
            fputc('\n', stdout);
        }
        break;
    case CTL_FMT_PROTOBUF:
        if (r.header)
            ctl_print_pb(&api_header_desc, r.header);
        break;
    case CTL_FMT_TABLE:
        ctl_unsupported_format();
    }
    return 0;
}

/* ---- list ---- */

static int list_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    struct client *c = ctl_client_from_cmd(cmd);
    struct api_lease_leases_req req = {0};
    struct api_lease_leases_resp r;
    struct client_err e;
    if (client_unary(c, "/etcdserverpb.Lease/LeaseLeases", &api_lease_leases_req_desc, &req,
                     &api_lease_leases_resp_desc, &r, &ctl_arena, 0, &e) < 0)
        ctl_rpc_fail(c, CTL_EXIT_BAD_CONNECTION, &e, NULL, NULL);
    struct ctl_json j = {0};
    switch (ctl_g.fmt) {
    case CTL_FMT_SIMPLE:
        printf("found %zu leases\n", r.n_leases);
        for (size_t i = 0; i < r.n_leases; i++)
            printf("%016llx\n", (unsigned long long)r.leases[i].ID);
        break;
    case CTL_FMT_JSON:
        json_open_embedded(&j, r.header);
        cj_open(&j, "leases", '[');
        for (size_t i = 0; i < r.n_leases; i++) {
            cj_open(&j, NULL, '{');
            cj_i64(&j, "id", r.leases[i].ID, false);
            cj_close(&j, '}');
        }
        cj_close(&j, ']');
        cj_close(&j, '}');
        cj_print(&j);
        break;
    case CTL_FMT_FIELDS:
        ctl_fields_header(r.header);
        for (size_t i = 0; i < r.n_leases; i++)
            printf("\"ID\" : %lld\n", (long long)r.leases[i].ID);
        break;
    case CTL_FMT_PROTOBUF:
        if (r.header)
            ctl_print_pb(&api_header_desc, r.header);
        break;
    case CTL_FMT_TABLE:
        ctl_unsupported_format();
    }
    return 0;
}

/* ---- keep-alive ---- */

static void print_keepalive(const struct api_lease_keep_alive_resp *r)
{
    struct ctl_json j = {0};
    switch (ctl_g.fmt) {
    case CTL_FMT_SIMPLE:
        printf("lease %016llx keepalived with TTL(%lld)\n", (unsigned long long)r->ID,
               (long long)r->TTL);
        break;
    case CTL_FMT_JSON:
        json_open_embedded(&j, r->header);
        cj_i64(&j, "ID", r->ID, false);
        cj_i64(&j, "TTL", r->TTL, false);
        cj_close(&j, '}');
        cj_print(&j);
        break;
    case CTL_FMT_FIELDS:
        fields_id_ttl(r->header, r->ID, r->TTL);
        break;
    case CTL_FMT_PROTOBUF:
        if (r->header)
            ctl_print_pb(&api_header_desc, r->header);
        break;
    case CTL_FMT_TABLE:
        ctl_unsupported_format();
    }
    fflush(stdout);
}

static struct client_stream *open_keepalive(struct client *c, int64_t deadline,
                                            struct client_err *e)
{
    static const char *const hasleader[] = {"hasleader", "true", NULL};
    return client_stream_open(c, "/etcdserverpb.Lease/LeaseKeepAlive", hasleader, deadline, e);
}

static int keepalive_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    if (argc != 1)
        ctl_fail(CTL_EXIT_BAD_ARGS, "lease keep-alive command needs lease ID as argument");
    struct api_lease_keep_alive_req req = {.ID = lease_arg(argv[0])};
    struct client *c = ctl_client_from_cmd(cmd);
    struct api_lease_keep_alive_resp r;
    struct client_err e;
    struct mem_arena a;
    mem_arena_init(&a, 0);
    if (keepalive_once) {
        /* KeepAliveOnce: one request on a fresh stream, one answer */
        struct client_stream *s = open_keepalive(c, 0, &e);
        if (!s || client_stream_send(s, &api_lease_keep_alive_req_desc, &req, &e) < 0)
            ctl_fail(CTL_EXIT_BAD_CONNECTION, "%s", ctl_err_text(&e));
        enum client_recv rr = client_stream_recv(s, &api_lease_keep_alive_resp_desc, &r, &a, 0, -1, &e);
        if (rr == CLIENT_RECV_END) {
            e.code = 14;
            snprintf(e.msg, sizeof e.msg, "transport is closing");
        }
        if (rr != CLIENT_RECV_MSG)
            ctl_fail(CTL_EXIT_BAD_CONNECTION, "%s", ctl_err_text(&e));
        if (r.TTL <= 0)
            ctl_fail(CTL_EXIT_BAD_CONNECTION, "etcdserver: requested lease not found");
        print_keepalive(&r);
        mem_arena_free(&a);
        return 0;
    }
    /* KeepAlive: renew at a third of the TTL; the lease is gone when the
     * server answers TTL <= 0 or no renewal succeeds before it would
     * expire */
    /* clientv3 gives the first answer --dial-timeout + 1s (5s without one) */
    int64_t first = ctl_g.dial_timeout > 0 ? ctl_g.dial_timeout / 1000000 + 1000 : 5000;
    int64_t next = 0, expire = client_now_ms() + first;
    struct client_stream *s = NULL;
    for (;;) {
        int64_t now = client_now_ms();
        if (now >= expire)
            break;
        if (!s) {
            s = open_keepalive(c, expire, &e);
            if (!s)
                continue;
            next = now;
        }
        if (now >= next) {
            if (client_stream_send(s, &api_lease_keep_alive_req_desc, &req, &e) < 0) {
                client_stream_free(s);
                s = NULL;
                continue;
            }
            next = now + 500; /* until answered: clientv3 checks every 500 ms */
        }
        int64_t wake = expire < next ? expire : next;
        mem_arena_reset(&a);
        enum client_recv rr =
            client_stream_recv(s, &api_lease_keep_alive_resp_desc, &r, &a, wake, -1, &e);
        if (rr == CLIENT_RECV_TIMEOUT)
            continue;
        if (rr != CLIENT_RECV_MSG) {
            client_stream_free(s);
            s = NULL;
            usleep(500000);
            continue;
        }
        if (r.TTL <= 0)
            break;
        print_keepalive(&r);
        now = client_now_ms();
        next = now + r.TTL * 1000 / 3;
        expire = now + r.TTL * 1000;
    }
    if (ctl_g.fmt == CTL_FMT_SIMPLE)
        printf("lease %016llx expired or revoked.\n", (unsigned long long)req.ID);
    client_stream_free(s);
    mem_arena_free(&a);
    return 0;
}
