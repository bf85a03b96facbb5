/* ctl_cluster.c - etcdctl's cluster and maintenance commands: member
 * add/remove/update/list/promote, endpoint health/status/hashkv (--cluster),
 * alarm list/disarm, defrag (online; --data-dir is ctl_defrag_data_dir's)
 * and move-leader, with etcdctl's messages, exit codes and output formats
 * (ctlv3/command/{member,ep,alarm,defrag,move_leader}_command.go and the
 * printers' parts for them).
 *
 * Per-endpoint commands open one client per endpoint, as clientv3's
 * Maintenance calls dial the endpoint they are given.  endpoint health
 * checks the endpoints in parallel and reports them in the order the
 * checks finish, as etcdctl does.
 */
#include "ctl.h"

#include <pthread.h>
#include <string.h>

static char *member_peer_urls;
static bool member_learner;
static bool ep_cluster;
static int64_t hashkv_rev;
static char *defrag_data_dir;

static struct ctl_flag member_add_flags[] = {
    {"peer-urls", 0, CTL_STRING, "", "comma separated peer URLs for the new member.", &member_peer_urls},
    {"learner", 0, CTL_BOOL, "false", "indicates if the new member is raft learner", &member_learner},
    {0},
};

static struct ctl_flag member_update_flags[] = {
    {"peer-urls", 0, CTL_STRING, "", "comma separated peer URLs for the updated member.", &member_peer_urls},
    {0},
};

static struct ctl_flag endpoint_pflags[] = {
    {"cluster", 0, CTL_BOOL, "false", "use all endpoints from the cluster member list", &ep_cluster},
    {0},
};

static struct ctl_flag hashkv_pflags[] = {
    {"rev", 0, CTL_INT64, "0", "maximum revision to hash (default: all revisions)", &hashkv_rev},
    {0},
};

static struct ctl_flag defrag_pflags[] = {
    {"cluster", 0, CTL_BOOL, "false", "use all endpoints from the cluster member list", &ep_cluster},
    {0},
};

static struct ctl_flag defrag_flags[] = {
    {"data-dir", 0, CTL_STRING, "", "Optional. If present, defragments a data directory not in use by etcd.", &defrag_data_dir},
    {0},
};

static int member_add_run(struct ctl_cmd *cmd, int argc, char **argv);
static int member_remove_run(struct ctl_cmd *cmd, int argc, char **argv);
static int member_update_run(struct ctl_cmd *cmd, int argc, char **argv);
static int member_list_run(struct ctl_cmd *cmd, int argc, char **argv);
static int member_promote_run(struct ctl_cmd *cmd, int argc, char **argv);
static int ep_health_run(struct ctl_cmd *cmd, int argc, char **argv);
static int ep_status_run(struct ctl_cmd *cmd, int argc, char **argv);
static int ep_hashkv_run(struct ctl_cmd *cmd, int argc, char **argv);
static int alarm_disarm_run(struct ctl_cmd *cmd, int argc, char **argv);
static int alarm_list_run(struct ctl_cmd *cmd, int argc, char **argv);
static int defrag_run(struct ctl_cmd *cmd, int argc, char **argv);
static int move_leader_run(struct ctl_cmd *cmd, int argc, char **argv);

static struct ctl_cmd cmd_member_add = {
    .use = "add <memberName> [options]", .short_desc = "Adds a member into the cluster",
    .flags = member_add_flags, .run = member_add_run,
};
static struct ctl_cmd cmd_member_list = {
    .use = "list", .short_desc = "Lists all members in the cluster",
    .long_desc = "When --write-out is set to simple, this command prints out comma-separated member lists for each endpoint.\n"
                 "The items in the lists are ID, Status, Name, Peer Addrs, Client Addrs, Is Learner.\n",
    .run = member_list_run,
};
static struct ctl_cmd cmd_member_promote = {
    .use = "promote <memberID>", .short_desc = "Promotes a non-voting member in the cluster",
    .long_desc = "Promotes a non-voting learner member to a voting one in the cluster.\n",
    .run = member_promote_run,
};
static struct ctl_cmd cmd_member_remove = {
    .use = "remove <memberID>", .short_desc = "Removes a member from the cluster",
    .run = member_remove_run,
};
static struct ctl_cmd cmd_member_update = {
    .use = "update <memberID> [options]", .short_desc = "Updates a member in the cluster",
    .flags = member_update_flags, .run = member_update_run,
};
static struct ctl_cmd *const member_subs[] = {
    &cmd_member_add, &cmd_member_list, &cmd_member_promote, &cmd_member_remove, &cmd_member_update,
    NULL,
};
struct ctl_cmd ctl_cmd_member = {
    .use = "member <subcommand>", .short_desc = "Membership related commands", .subs = member_subs,
};

static struct ctl_cmd cmd_ep_hashkv = {
    .use = "hashkv", .short_desc = "Prints the KV history hash for each endpoint in --endpoints",
    .pflags = hashkv_pflags, .run = ep_hashkv_run,
};
static struct ctl_cmd cmd_ep_health = {
    .use = "health",
    .short_desc = "Checks the healthiness of endpoints specified in `--endpoints` flag",
    .run = ep_health_run,
};
static struct ctl_cmd cmd_ep_status = {
    .use = "status",
    .short_desc = "Prints out the status of endpoints specified in `--endpoints` flag",
    .long_desc = "When --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.\n"
                 "The items in the lists are endpoint, ID, version, db size, is leader, is learner, raft term, raft index, raft applied index, errors.\n",
    .run = ep_status_run,
};
static struct ctl_cmd *const endpoint_subs[] = {&cmd_ep_hashkv, &cmd_ep_health, &cmd_ep_status, NULL};
struct ctl_cmd ctl_cmd_endpoint = {
    .use = "endpoint <subcommand>", .short_desc = "Endpoint related commands",
    .pflags = endpoint_pflags, .subs = endpoint_subs,
};

static struct ctl_cmd cmd_alarm_disarm = {
    .use = "disarm", .short_desc = "Disarms all alarms", .run = alarm_disarm_run,
};
static struct ctl_cmd cmd_alarm_list = {
    .use = "list", .short_desc = "Lists all alarms", .run = alarm_list_run,
};
static struct ctl_cmd *const alarm_subs[] = {&cmd_alarm_disarm, &cmd_alarm_list, NULL};
struct ctl_cmd ctl_cmd_alarm = {
    .use = "alarm <subcommand>", .short_desc = "Alarm related commands", .subs = alarm_subs,
};

struct ctl_cmd ctl_cmd_defrag = {
    .use = "defrag",
    .short_desc = "Defragments the storage of the etcd members with given endpoints",
    .flags = defrag_flags, .pflags = defrag_pflags, .run = defrag_run,
};

struct ctl_cmd ctl_cmd_move_leader = {
    .use = "move-leader <transferee-member-id>",
    .short_desc = "Transfers leadership to another etcd cluster member.",
    .run = move_leader_run,
};

/* ---- shared ---- */

static void *xalloc(size_t n)
{
    void *p = mem_arena_zalloc(&ctl_arena, n ? n : 1);
    if (!p)
        ctl_fail(CTL_EXIT_ERROR, "out of memory");
    return p;
}

static char *bytes_str(struct pb_bytes b)
{
    char *s = xalloc(b.len + 1);
    if (b.len)
        memcpy(s, b.p, b.len);
    return s;
}

static uint64_t member_id_arg(int argc, char **argv)
{
    if (argc != 1)
        ctl_fail(CTL_EXIT_BAD_ARGS, "member ID is not provided");
    uint64_t id;
    char err[256];
    if (ctl_parse_uint(argv[0], 16, &id, err, sizeof err) < 0)
        ctl_fail(CTL_EXIT_BAD_ARGS, "bad member ID arg (%s), expecting ID in Hex", err);
    return id;
}

/* --peer-urls split on commas (strings.Split) */
static size_t split_urls(const char *s, struct pb_bytes **out)
{
    size_t n = 1;
    for (const char *p = s; *p; p++)
        n += *p == ',';
    struct pb_bytes *v = xalloc(n * sizeof *v);
    const char *p = s;
    for (size_t i = 0; i < n; i++) {
        size_t l = strcspn(p, ",");
        v[i] = (struct pb_bytes){(const uint8_t *)p, l};
        p += l + 1;
    }
    *out = v;
    return n;
}

/* types.NewURLs' checks, which clientv3 makes before MemberAdd/Update */
static void check_urls(const struct pb_bytes *u, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char *s = bytes_str(u[i]);
        while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
            s++;
        size_t l = strlen(s);
        while (l && strchr(" \t\n\r", s[l - 1]))
            s[--l] = 0;
        const char *colon = strchr(s, ':');
        size_t sl = colon ? (size_t)(colon - s) : 0;
        bool valid_scheme = sl > 0 && ((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'));
        for (size_t k = 0; valid_scheme && k < sl; k++)
            valid_scheme = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.", s[k]) != NULL;
        if (!valid_scheme ||
            !((sl == 4 && !strncmp(s, "http", 4)) || (sl == 5 && !strncmp(s, "https", 5)) ||
              (sl == 4 && !strncmp(s, "unix", 4)) || (sl == 5 && !strncmp(s, "unixs", 5))))
            ctl_fail(CTL_EXIT_ERROR, "URL scheme must be http, https, unix, or unixs: %s", s);
        const char *rest = s + sl + 1;
        const char *host = "", *path = rest;
        size_t hl = 0;
        if (!strncmp(rest, "//", 2)) {
            host = rest + 2;
            hl = strcspn(host, "/?#");
            path = host + hl;
        }
        /* net.SplitHostPort: host:port, [v6]:port */
        bool ok;
        if (hl && host[0] == '[') {
            const char *rb = memchr(host, ']', hl);
            ok = rb && rb + 1 < host + hl && rb[1] == ':' && !memchr(rb + 2, ':', (size_t)(host + hl - rb - 2));
        } else {
            const char *c1 = memchr(host, ':', hl);
            ok = c1 && !memchr(c1 + 1, ':', (size_t)(host + hl - c1 - 1));
        }
        if (!ok)
            ctl_fail(CTL_EXIT_ERROR, "URL address does not have the form \"host:port\": %s", s);
        size_t pl = strcspn(path, "?#");
        if (pl)
            ctl_fail(CTL_EXIT_ERROR, "URL must not contain a path: %s", s);
    }
}

/* ---- member ---- */

static void json_member(struct ctl_json *j, const char *key, const struct api_member *m)
{
    cj_open(j, key, '{');
    cj_u64(j, "ID", m->ID, true);
    cj_str(j, "name", m->name.p, m->name.len, true);
    if (m->n_peerURLs) {
        cj_open(j, "peerURLs", '[');
        for (size_t i = 0; i < m->n_peerURLs; i++)
            cj_str(j, NULL, m->peerURLs[i].p, m->peerURLs[i].len, false);
        cj_close(j, ']');
    }
    if (m->n_clientURLs) {
        cj_open(j, "clientURLs", '[');
        for (size_t i = 0; i < m->n_clientURLs; i++)
            cj_str(j, NULL, m->clientURLs[i].p, m->clientURLs[i].len, false);
        cj_close(j, ']');
    }
    cj_bool(j, "isLearner", m->isLearner, true);
    cj_close(j, '}');
}

static void json_members(struct ctl_json *j, const struct api_member *ms, size_t n)
{
    if (!n)
        return;
    cj_open(j, "members", '[');
    for (size_t i = 0; i < n; i++)
        json_member(j, NULL, &ms[i]);
    cj_close(j, ']');
}

static void join_bytes(struct mem_buf *b, const struct pb_bytes *v, size_t n, const char *sep)
{
    for (size_t i = 0; i < n; i++) {
        if (i)
            (void)!mem_buf_printf(b, "%s", sep);
        (void)!mem_buf_append(b, v[i].p, v[i].len);
    }
}

/* makeMemberListTable's rows */
static char **member_rows(const struct api_member *ms, size_t n)
{
    char **cells = xalloc((n * 6 + 1) * sizeof *cells);
    for (size_t i = 0; i < n; i++) {
        const struct api_member *m = &ms[i];
        struct mem_buf b = {0};
        char **row = cells + i * 6;
        row[0] = xalloc(24);
        snprintf(row[0], 24, "%llx", (unsigned long long)m->ID);
        row[1] = m->name.len ? "started" : "unstarted";
        row[2] = bytes_str(m->name);
        join_bytes(&b, m->peerURLs, m->n_peerURLs, ",");
        row[3] = bytes_str((struct pb_bytes){b.data, b.len});
        b.len = 0;
        join_bytes(&b, m->clientURLs, m->n_clientURLs, ",");
        row[4] = bytes_str((struct pb_bytes){b.data, b.len});
        row[5] = m->isLearner ? "true" : "false";
        mem_buf_free(&b);
    }
    return cells;
}

static void print_member_list(const struct api_member_list_resp *r)
{
    static const char *const hdr[] = {"ID", "Status", "Name", "Peer Addrs", "Client Addrs", "Is Learner"};
    struct ctl_json j = {0};
    char **rows;
    switch (ctl_g.fmt) {
    case CTL_FMT_SIMPLE:
        rows = member_rows(r->members, r->n_members);
        for (size_t i = 0; i < r->n_members; i++)
            printf("%s, %s, %s, %s, %s, %s\n", rows[i * 6], rows[i * 6 + 1], rows[i * 6 + 2],
                   rows[i * 6 + 3], rows[i * 6 + 4], rows[i * 6 + 5]);
        break;
    case CTL_FMT_TABLE:
        rows = member_rows(r->members, r->n_members);
        ctl_table(hdr, 6, rows, r->n_members);
        break;
    case CTL_FMT_JSON:
        cj_open(&j, NULL, '{');
        cj_header(&j, "header", r->header);
        json_members(&j, r->members, r->n_members);
        cj_close(&j, '}');
        cj_print(&j);
        break;
    case CTL_FMT_FIELDS:
        ctl_fields_header(r->header);
        for (size_t i = 0; i < r->n_members; i++) {
            const struct api_member *m = &r->members[i];
            printf("\"ID\" : %llu\n\"Name\" : ", (unsigned long long)m->ID);
            ctl_print_quoted(m->name.p, m->name.len);
            fputc('\n', stdout);
            for (size_t k = 0; k < m->n_peerURLs; k++) {
                fputs("\"PeerURL\" : ", stdout);
                ctl_print_quoted(m->peerURLs[k].p, m->peerURLs[k].len);
                fputc('\n', stdout);
            }
            for (size_t k = 0; k < m->n_clientURLs; k++) {
                fputs("\"ClientURL\" : ", stdout);
                ctl_print_quoted(m->clientURLs[k].p, m->clientURLs[k].len);
                fputc('\n', stdout);
            }
            printf("\"IsLearner\" : %s\n\n", m->isLearner ? "true" : "false");
        }
        break;
    case CTL_FMT_PROTOBUF:
        ctl_print_pb(&api_member_list_resp_desc, r);
        break;
    }
}

static int member_list_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    int64_t dl = ctl_deadline();
    struct client *c = ctl_client_from_cmd(cmd);
    struct api_member_list_req req = {0};
    struct api_member_list_resp r;
    struct client_err e;
    if (client_unary(c, "/etcdserverpb.Cluster/MemberList", &api_member_list_req_desc, &req,
                     &api_member_list_resp_desc, &r, &ctl_arena, dl, &e) < 0)
        ctl_rpc_fail(c, CTL_EXIT_ERROR, &e, NULL, NULL);
    print_member_list(&r);
    return 0;
}

/* A member change's response in the formats that print one: the printers
 * without such a method fail as printerUnsupported, and promote has none
 * anywhere but in the simple printer (etcdctl dies of a nil interface). */
static void member_change_unsupported(bool promote)
{
    if (promote)
        ctl_panic("runtime error: invalid memory address or nil pointer dereference\n"
                  "[signal SIGSEGV: segmentation violation code=0x1 addr=0x18 pc=0x0]");
    ctl_unsupported_format();
}

static int member_add_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    if (argc < 1)
        ctl_fail(CTL_EXIT_BAD_ARGS, "member name not provided");
    if (argc > 1) {
        struct mem_buf b = {0};
        (void)!mem_buf_printf(&b, "too many arguments");
        for (int i = 0; i < argc; i++) {
            if (!strncasecmp(argv[i], "http", 4))
                (void)!mem_buf_printf(&b, ", did you mean --peer-urls=%s", argv[i]);
        }
        (void)!mem_buf_putc(&b, 0);
        ctl_fail(CTL_EXIT_BAD_ARGS, "%s", (char *)b.data);
    }
    const char *name = argv[0];
    if (!member_peer_urls[0])
        ctl_fail(CTL_EXIT_BAD_ARGS, "member peer urls not provided");
    struct api_member_add_req req = {.isLearner = member_learner};
    req.n_peerURLs = split_urls(member_peer_urls, &req.peerURLs);
    int64_t dl = ctl_deadline();
    struct client *c = ctl_client_from_cmd(cmd);
    check_urls(req.peerURLs, req.n_peerURLs);
    struct api_member_add_resp r;
    struct client_err e;
    if (client_unary(c, "/etcdserverpb.Cluster/MemberAdd", &api_member_add_req_desc, &req,
                     &api_member_add_resp_desc, &r, &ctl_arena, dl, &e) < 0)
        ctl_rpc_fail(c, CTL_EXIT_ERROR, &e, NULL, NULL);
    struct ctl_json j = {0};
    uint64_t new_id = r.member ? r.member->ID : 0;
    switch (ctl_g.fmt) {
    case CTL_FMT_SIMPLE:
        printf("Member %16llx added to cluster %16llx\n", (unsigned long long)new_id,
               (unsigned long long)(r.header ? r.header->cluster_id : 0));
        break;
    case CTL_FMT_JSON:
        cj_open(&j, NULL, '{');
        cj_header(&j, "header", r.header);
        if (r.member)
            json_member(&j, "member", r.member);
        json_members(&j, r.members, r.n_members);
        cj_close(&j, '}');
        cj_print(&j);
        break;
    case CTL_FMT_PROTOBUF:
        ctl_print_pb(&api_member_add_resp_desc, &r);
        break;
    default:
        member_change_unsupported(false);
    }
    if (ctl_g.fmt == CTL_FMT_SIMPLE) {
        struct mem_buf conf = {0};
        bool first = true;
        for (size_t i = 0; i < r.n_members; i++) {
            const struct api_member *m = &r.members[i];
            for (size_t k = 0; k < m->n_peerURLs; k++) {
                if (!first)
                    (void)!mem_buf_putc(&conf, ',');
                first = false;
                if (m->ID == new_id)
                    (void)!mem_buf_printf(&conf, "%s", name);
                else
                    (void)!mem_buf_append(&conf, m->name.p, m->name.len);
                (void)!mem_buf_putc(&conf, '=');
                (void)!mem_buf_append(&conf, m->peerURLs[k].p, m->peerURLs[k].len);
            }
        }
        fputs("\nETCD_NAME=", stdout);
        ctl_print_quoted(name, strlen(name));
        fputs("\nETCD_INITIAL_CLUSTER=", stdout);
        ctl_print_quoted(conf.data, conf.len);
        fputs("\nETCD_INITIAL_ADVERTISE_PEER_URLS=", stdout);
        ctl_print_quoted(member_peer_urls, strlen(member_peer_urls));
        fputs("\nETCD_INITIAL_CLUSTER_STATE=\"existing\"\n", stdout);
        mem_buf_free(&conf);
    }
    return 0;
}

/* remove, update and promote answer with the member list */
static void print_member_change(const char *verb, uint64_t id, const struct api_header *h,
                                const struct pb_msgdesc *d, const void *resp,
                                const struct api_member *ms, size_t n, bool promote)
{
    struct ctl_json j = {0};
    switch (ctl_g.fmt) {
    case CTL_FMT_SIMPLE:
        printf("Member %16llx %s cluster %16llx\n", (unsigned long long)id, verb,
               (unsigned long long)(h ? h->cluster_id : 0));
        break;
    case CTL_FMT_JSON:
        if (promote)
            member_change_unsupported(true);
        cj_open(&j, NULL, '{');
        cj_header(&j, "header", h);
        json_members(&j, ms, n);
        cj_close(&j, '}');
        cj_print(&j);
        break;
    case CTL_FMT_PROTOBUF:
        if (promote)
            member_change_unsupported(true);
        ctl_print_pb(d, resp);
        break;
    default:
        member_change_unsupported(promote);
    }
}

static int member_remove_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    struct api_member_remove_req req = {.ID = member_id_arg(argc, argv)};
    int64_t dl = ctl_deadline();
    struct client *c = ctl_client_from_cmd(cmd);
    struct api_member_remove_resp r;
    struct client_err e;
    if (client_unary(c, "/etcdserverpb.Cluster/MemberRemove", &api_member_remove_req_desc, &req,
                     &api_member_remove_resp_desc, &r, &ctl_arena, dl, &e) < 0)
        ctl_rpc_fail(c, CTL_EXIT_ERROR, &e, NULL, NULL);
    print_member_change("removed from", req.ID, r.header, &api_member_remove_resp_desc, &r,
                        r.members, r.n_members, false);
    return 0;
}

static int member_update_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    struct api_member_update_req req = {.ID = member_id_arg(argc, argv)};
    if (!member_peer_urls[0])
        ctl_fail(CTL_EXIT_BAD_ARGS, "member peer urls not provided");
    req.n_peerURLs = split_urls(member_peer_urls, &req.peerURLs);
    int64_t dl = ctl_deadline();
    struct client *c = ctl_client_from_cmd(cmd);
    check_urls(req.peerURLs, req.n_peerURLs);
    struct api_member_update_resp r;
    struct client_err e;
    if (client_unary(c, "/etcdserverpb.Cluster/MemberUpdate", &api_member_update_req_desc, &req,
                     &api_member_update_resp_desc, &r, &ctl_arena, dl, &e) < 0)
        ctl_rpc_fail(c, CTL_EXIT_ERROR, &e, NULL, NULL);
    print_member_change("updated in", req.ID, r.header, &api_member_update_resp_desc, &r,
                        r.members, r.n_members, false);
    return 0;
}

static int member_promote_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    struct api_member_promote_req req = {.ID = member_id_arg(argc, argv)};
    int64_t dl = ctl_deadline();
    struct client *c = ctl_client_from_cmd(cmd);
    struct api_member_promote_resp r;
    struct client_err e;
    if (client_unary(c, "/etcdserverpb.Cluster/MemberPromote", &api_member_promote_req_desc, &req,
                     &api_member_promote_resp_desc, &r, &ctl_arena, dl, &e) < 0)
        ctl_rpc_fail(c, CTL_EXIT_ERROR, &e, NULL, NULL);
    print_member_change("promoted in", req.ID, r.header, &api_member_promote_resp_desc, &r,
                        r.members, r.n_members, true);
    return 0;
}

/* ---- endpoints ---- */

/* endpointsFromCluster: --endpoints, or with --cluster every member's
 * client URLs (asked without auth, as etcdctl does) */
static struct ctl_strv cluster_endpoints(struct ctl_cmd *cmd)
{
    (void)cmd;
    if (!ep_cluster)
        return ctl_g.endpoints;
    struct ctl_strv eps = ctl_endpoints();
    struct client *c = ctl_client_for(eps.v, eps.n, CTL_AUTH_NONE, false);
    struct api_member_list_req req = {0};
    struct api_member_list_resp r;
    struct client_err e;
    if (client_unary(c, "/etcdserverpb.Cluster/MemberList", &api_member_list_req_desc, &req,
                     &api_member_list_resp_desc, &r, &ctl_arena, ctl_deadline(), &e) < 0) {
        ctl_rpc_warn(c, &e);
        ctl_fail(CTL_EXIT_ERROR, "failed to fetch endpoints from etcd cluster member list: %s",
                 ctl_err_text(&e));
    }
    size_t n = 0;
    for (size_t i = 0; i < r.n_members; i++)
        n += r.members[i].n_clientURLs;
    struct ctl_strv out = {xalloc((n + 1) * sizeof(char *)), 0};
    for (size_t i = 0; i < r.n_members; i++)
        for (size_t k = 0; k < r.members[i].n_clientURLs; k++)
            out.v[out.n++] = bytes_str(r.members[i].clientURLs[k]);
    return out;
}

struct health {
    char *ep;
    bool ok;
    char took[64];
    char error[700];
    struct client *c;
    struct client_err e;
    bool warn;
};

static struct {
    pthread_mutex_t mu;
    struct health **done;
    size_t n;
} hq = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void *health_check(void *arg)
{
    struct health *h = arg;
    /* a random key: any answer but an error means healthy */
    struct api_range_req req = {.key = {(const uint8_t *)"health", 6}};
    struct api_range_resp r;
    struct mem_arena a;
    mem_arena_init(&a, 0);
    /* clientv3.New authenticates first; a failure there has no "took" */
    if (client_opts(h->c)->user) {
        int64_t ms = ctl_g.dial_timeout / 1000000;
        if (client_connect(h->c, ms > 0 ? client_now_ms() + ms : 0, &h->e) < 0) {
            h->warn = true;
            goto done;
        }
    }
    int64_t dl = ctl_deadline();
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = client_unary(h->c, "/etcdserverpb.KV/Range", &api_range_req_desc, &req,
                          &api_range_resp_desc, &r, &a, dl, &h->e);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ctl_duration_str((int64_t)(t1.tv_sec - t0.tv_sec) * 1000000000 + (t1.tv_nsec - t0.tv_nsec),
                     h->took, sizeof h->took);
    /* permission denied is fine: the request went through consensus */
    h->ok = rc == 0 || !strcmp(h->e.msg, "etcdserver: permission denied");
    h->warn = rc != 0;
done:
    mem_arena_free(&a);
    pthread_mutex_lock(&hq.mu);
    hq.done[hq.n++] = h;
    pthread_mutex_unlock(&hq.mu);
    return NULL;
}

static int ep_health_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    ctl_apply_env(cmd);
    ctl_init_display();
    struct ctl_strv eps = cluster_endpoints(cmd);
    struct health *hs = xalloc((eps.n + 1) * sizeof *hs);
    pthread_t *th = xalloc((eps.n + 1) * sizeof *th);
    hq.done = xalloc((eps.n + 1) * sizeof *hq.done);
    for (size_t i = 0; i < eps.n; i++) {
        hs[i].ep = eps.v[i];
        hs[i].c = ctl_client_for(&hs[i].ep, 1, CTL_AUTH_LAZY, false);
    }
    for (size_t i = 0; i < eps.n; i++)
        if (pthread_create(&th[i], NULL, health_check, &hs[i]) != 0)
            health_check(&hs[i]), th[i] = 0;
    for (size_t i = 0; i < eps.n; i++)
        if (th[i])
            pthread_join(th[i], NULL);
    bool errs = false;
    for (size_t i = 0; i < hq.n; i++) {
        struct health *h = hq.done[i];
        if (h->warn)
            ctl_rpc_warn(h->c, &h->e);
        if (!h->ok)
            snprintf(h->error, sizeof h->error, "%s", ctl_err_text(&h->e));
        errs |= !h->ok;
    }
    struct ctl_json j = {0};
    static const char *const hdr[] = {"endpoint", "health", "took", "error"};
    char **cells;
    switch (ctl_g.fmt) {
    case CTL_FMT_SIMPLE:
        fflush(stdout);
        for (size_t i = 0; i < hq.n; i++) {
            const struct health *h = hq.done[i];
            if (h->ok)
                fprintf(stderr, "%s is healthy: successfully committed proposal: took = %s\n",
                        h->ep, h->took);
            else
                fprintf(stderr, "%s is unhealthy: failed to commit proposal: %s\n", h->ep,
                        h->error);
        }
        break;
    case CTL_FMT_JSON:
        cj_open(&j, NULL, '[');
        for (size_t i = 0; i < hq.n; i++) {
            const struct health *h = hq.done[i];
            cj_open(&j, NULL, '{');
            cj_str(&j, "endpoint", h->ep, strlen(h->ep), false);
            cj_bool(&j, "health", h->ok, false);
            cj_str(&j, "took", h->took, strlen(h->took), false);
            cj_str(&j, "error", h->error, strlen(h->error), true);
            cj_close(&j, '}');
        }
        cj_close(&j, ']');
        cj_print(&j);
        break;
    case CTL_FMT_FIELDS:
        for (size_t i = 0; i < hq.n; i++) {
            const struct health *h = hq.done[i];
            fputs("\"Endpoint\" : ", stdout);
            ctl_print_quoted(h->ep, strlen(h->ep));
            printf("\n\"Health\" : %s\n\"Took\" : %s\n\"Error\" : %s\n\n", h->ok ? "true" : "false",
                   h->took, h->error);
        }
        break;
    case CTL_FMT_TABLE:
        cells = xalloc((hq.n * 4 + 1) * sizeof *cells);
        for (size_t i = 0; i < hq.n; i++) {
            struct health *h = hq.done[i];
            cells[i * 4] = h->ep;
            cells[i * 4 + 1] = h->ok ? "true" : "false";
            cells[i * 4 + 2] = h->took;
            cells[i * 4 + 3] = h->error;
        }
        ctl_table(hdr, 4, cells, hq.n);
        break;
    case CTL_FMT_PROTOBUF:
        ctl_unsupported_format();
    }
    if (errs)
        ctl_fail(CTL_EXIT_ERROR, "unhealthy cluster");
    return 0;
}

struct ep_status {
    const char *ep;
    struct api_status_resp r;
};

static void print_status(const struct ep_status *st, size_t n)
{
    static const char *const hdr[] = {"endpoint", "ID", "version", "db size", "is leader",
                                      "is learner", "raft term", "raft index",
                                      "raft applied index", "errors"};
    char **cells = xalloc((n * 10 + 1) * sizeof *cells);
    for (size_t i = 0; i < n; i++) {
        const struct api_status_resp *r = &st[i].r;
        char **row = cells + i * 10;
        struct mem_buf b = {0};
        uint64_t mid = r->header ? r->header->member_id : 0;
        row[0] = (char *)st[i].ep;
        row[1] = xalloc(24);
        snprintf(row[1], 24, "%llx", (unsigned long long)mid);
        row[2] = bytes_str(r->version);
        row[3] = xalloc(32);
        ctl_humanize_bytes((uint64_t)r->dbSize, row[3], 32);
        row[4] = r->leader == mid ? "true" : "false";
        row[5] = r->isLearner ? "true" : "false";
        for (int k = 6; k < 9; k++)
            row[k] = xalloc(24);
        snprintf(row[6], 24, "%llu", (unsigned long long)r->raftTerm);
        snprintf(row[7], 24, "%llu", (unsigned long long)r->raftIndex);
        snprintf(row[8], 24, "%llu", (unsigned long long)r->raftAppliedIndex);
        join_bytes(&b, r->errors, r->n_errors, ", ");
        row[9] = bytes_str((struct pb_bytes){b.data, b.len});
        mem_buf_free(&b);
    }
    struct ctl_json j = {0};
    switch (ctl_g.fmt) {
    case CTL_FMT_SIMPLE:
        for (size_t i = 0; i < n; i++) {
            for (int k = 0; k < 10; k++)
                printf("%s%s", k ? ", " : "", cells[i * 10 + k]);
            fputc('\n', stdout);
        }
        break;
    case CTL_FMT_TABLE:
        ctl_table(hdr, 10, cells, n);
        break;
    case CTL_FMT_JSON:
        cj_open(&j, NULL, '[');
        for (size_t i = 0; i < n; i++) {
            const struct api_status_resp *r = &st[i].r;
            cj_open(&j, NULL, '{');
            cj_str(&j, "Endpoint", st[i].ep, strlen(st[i].ep), false);
            cj_open(&j, "Status", '{');
            cj_header(&j, "header", r->header);
            cj_str(&j, "version", r->version.p, r->version.len, true);
            cj_i64(&j, "dbSize", r->dbSize, true);
            cj_u64(&j, "leader", r->leader, true);
            cj_u64(&j, "raftIndex", r->raftIndex, true);
            cj_u64(&j, "raftTerm", r->raftTerm, true);
            cj_u64(&j, "raftAppliedIndex", r->raftAppliedIndex, true);
            if (r->n_errors) {
                cj_open(&j, "errors", '[');
                for (size_t k = 0; k < r->n_errors; k++)
                    cj_str(&j, NULL, r->errors[k].p, r->errors[k].len, false);
                cj_close(&j, ']');
            }
            cj_i64(&j, "dbSizeInUse", r->dbSizeInUse, true);
            cj_bool(&j, "isLearner", r->isLearner, true);
            cj_close(&j, '}');
            cj_close(&j, '}');
        }
        cj_close(&j, ']');
        cj_print(&j);
        break;
    case CTL_FMT_FIELDS:
        for (size_t i = 0; i < n; i++) {
            const struct api_status_resp *r = &st[i].r;
            ctl_fields_header(r->header);
            fputs("\"Version\" : ", stdout);
            ctl_print_quoted(r->version.p, r->version.len);
            printf("\n\"DBSize\" : %lld\n\"Leader\" : %llu\n\"IsLearner\" : %s\n"
                   "\"RaftIndex\" : %llu\n\"RaftTerm\" : %llu\n\"RaftAppliedIndex\" : %llu\n"
                   "\"Errors\" : [",
                   (long long)r->dbSize, (unsigned long long)r->leader,
                   r->isLearner ? "true" : "false", (unsigned long long)r->raftIndex,
                   (unsigned long long)r->raftTerm, (unsigned long long)r->raftAppliedIndex);
            for (size_t k = 0; k < r->n_errors; k++) {
                if (k)
                    fputc(' ', stdout);
                ctl_write(r->errors[k].p, r->errors[k].len);
            }
            fputs("]\n\"Endpoint\" : ", stdout);
            ctl_print_quoted(st[i].ep, strlen(st[i].ep));
            fputs("\n\n", stdout);
        }
        break;
    case CTL_FMT_PROTOBUF:
        ctl_unsupported_format();
    }
}

static int ep_status_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    (void)ctl_client_from_cmd(cmd);
    struct ctl_strv eps = cluster_endpoints(cmd);
    struct ep_status *st = xalloc((eps.n + 1) * sizeof *st);
    size_t n = 0;
    bool failed = false;
    for (size_t i = 0; i < eps.n; i++) {
        struct client *c = ctl_client_for(&eps.v[i], 1, CTL_AUTH_NOW, true);
        struct api_status_req req = {0};
        struct client_err e;
        if (client_unary(c, "/etcdserverpb.Maintenance/Status", &api_status_req_desc, &req,
                         &api_status_resp_desc, &st[n].r, &ctl_arena, ctl_deadline(), &e) < 0) {
            ctl_rpc_warn(c, &e);
            fflush(stdout);
            fprintf(stderr, "Failed to get the status of endpoint %s (%s)\n", eps.v[i],
                    ctl_err_text(&e));
            failed = true;
            continue;
        }
        st[n++].ep = eps.v[i];
    }
    print_status(st, n);
    if (failed)
        ctl_exit(CTL_EXIT_ERROR);
    return 0;
}

struct ep_hash {
    const char *ep;
    struct api_hash_kv_resp r;
};

static int ep_hashkv_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    (void)ctl_client_from_cmd(cmd);
    struct ctl_strv eps = cluster_endpoints(cmd);
    struct ep_hash *hs = xalloc((eps.n + 1) * sizeof *hs);
    size_t n = 0;
    const char *last_err = NULL;
    for (size_t i = 0; i < eps.n; i++) {
        struct client *c = ctl_client_for(&eps.v[i], 1, CTL_AUTH_NOW, true);
        struct api_hash_kv_req req = {.revision = hashkv_rev};
        struct client_err e;
        if (client_unary(c, "/etcdserverpb.Maintenance/HashKV", &api_hash_kv_req_desc, &req,
                         &api_hash_kv_resp_desc, &hs[n].r, &ctl_arena, ctl_deadline(), &e) < 0) {
            ctl_rpc_warn(c, &e);
            fflush(stdout);
            const char *t = ctl_err_text(&e);
            fprintf(stderr, "Failed to get the hash of endpoint %s (%s)\n", eps.v[i], t);
            last_err = bytes_str((struct pb_bytes){(const uint8_t *)t, strlen(t)});
            continue;
        }
        hs[n++].ep = eps.v[i];
    }
    static const char *const hdr[] = {"endpoint", "hash"};
    struct ctl_json j = {0};
    char **cells;
    switch (ctl_g.fmt) {
    case CTL_FMT_SIMPLE:
        for (size_t i = 0; i < n; i++)
            printf("%s, %u\n", hs[i].ep, hs[i].r.hash);
        break;
    case CTL_FMT_TABLE:
        cells = xalloc((n * 2 + 1) * sizeof *cells);
        for (size_t i = 0; i < n; i++) {
            cells[i * 2] = (char *)hs[i].ep;
            cells[i * 2 + 1] = xalloc(16);
            snprintf(cells[i * 2 + 1], 16, "%u", hs[i].r.hash);
        }
        ctl_table(hdr, 2, cells, n);
        break;
    case CTL_FMT_JSON:
        cj_open(&j, NULL, '[');
        for (size_t i = 0; i < n; i++) {
            cj_open(&j, NULL, '{');
            cj_str(&j, "Endpoint", hs[i].ep, strlen(hs[i].ep), false);
            cj_open(&j, "HashKV", '{');
            cj_header(&j, "header", hs[i].r.header);
            cj_u64(&j, "hash", hs[i].r.hash, true);
            cj_i64(&j, "compact_revision", hs[i].r.compact_revision, true);
            cj_close(&j, '}');
            cj_close(&j, '}');
        }
        cj_close(&j, ']');
        cj_print(&j);
        break;
    case CTL_FMT_FIELDS:
        for (size_t i = 0; i < n; i++) {
            ctl_fields_header(hs[i].r.header);
            fputs("\"Endpoint\" : ", stdout);
            ctl_print_quoted(hs[i].ep, strlen(hs[i].ep));
            printf("\n\"Hash\" : %u\n\n", hs[i].r.hash);
        }
        break;
    case CTL_FMT_PROTOBUF:
        ctl_unsupported_format();
    }
    if (last_err)
        ctl_fail(CTL_EXIT_ERROR, "%s", last_err);
    return 0;
}

/* ---- alarm ---- */

static const char *alarm_name(int32_t a)
{
    return a == API_ALARM_NONE ? "NONE" : a == API_ALARM_NOSPACE ? "NOSPACE"
           : a == API_ALARM_CORRUPT ? "CORRUPT" : NULL;
}

static void print_alarms(const struct api_alarm_resp *r)
{
    struct ctl_json j = {0};
    switch (ctl_g.fmt) {
    case CTL_FMT_SIMPLE:
        /* %+v of *AlarmMember: proto's compact text */
        for (size_t i = 0; i < r->n_alarms; i++) {
            const struct api_alarm_member *a = &r->alarms[i];
            if (a->memberID)
                printf("memberID:%llu ", (unsigned long long)a->memberID);
            if (a->alarm) {
                const char *n = alarm_name(a->alarm);
                if (n)
                    printf("alarm:%s ", n);
                else
                    printf("alarm:%d ", a->alarm);
            }
            fputc('\n', stdout);
        }
        break;
    case CTL_FMT_JSON:
        cj_open(&j, NULL, '{');
        cj_header(&j, "header", r->header);
        if (r->n_alarms) {
            cj_open(&j, "alarms", '[');
            for (size_t i = 0; i < r->n_alarms; i++) {
                cj_open(&j, NULL, '{');
                cj_u64(&j, "memberID", r->alarms[i].memberID, true);
                cj_i64(&j, "alarm", r->alarms[i].alarm, true);
                cj_close(&j, '}');
            }
            cj_close(&j, ']');
        }
        cj_close(&j, '}');
        cj_print(&j);
        break;
    case CTL_FMT_FIELDS:
        ctl_fields_header(r->header);
        for (size_t i = 0; i < r->n_alarms; i++) {
            const char *n = alarm_name(r->alarms[i].alarm);
            printf("\"MemberID\" : %llu\n", (unsigned long long)r->alarms[i].memberID);
            if (n)
                printf("\"AlarmType\" : %s\n\n", n);
            else
                printf("\"AlarmType\" : %d\n\n", r->alarms[i].alarm);
        }
        break;
    case CTL_FMT_PROTOBUF:
        ctl_print_pb(&api_alarm_resp_desc, r);
        break;
    case CTL_FMT_TABLE:
        ctl_unsupported_format();
    }
}

static int alarm_call(struct client *c, const struct api_alarm_req *req,
                      struct api_alarm_resp *r, int64_t dl, struct client_err *e)
{
    return client_unary(c, "/etcdserverpb.Maintenance/Alarm", &api_alarm_req_desc, req,
                        &api_alarm_resp_desc, r, &ctl_arena, dl, e);
}

static int alarm_list_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    (void)argv;
    if (argc != 0)
        ctl_fail(CTL_EXIT_BAD_ARGS, "alarm list command accepts no arguments");
    int64_t dl = ctl_deadline();
    struct client *c = ctl_client_from_cmd(cmd);
    struct api_alarm_req req = {.action = API_ALARM_GET};
    struct api_alarm_resp r;
    struct client_err e;
    if (alarm_call(c, &req, &r, dl, &e) < 0)
        ctl_rpc_fail(c, CTL_EXIT_ERROR, &e, NULL, NULL);
    print_alarms(&r);
    return 0;
}

static int alarm_disarm_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    (void)argv;
    if (argc != 0)
        ctl_fail(CTL_EXIT_BAD_ARGS, "alarm disarm command accepts no arguments");
    int64_t dl = ctl_deadline();
    struct client *c = ctl_client_from_cmd(cmd);
    /* clientv3 lists the alarms and disarms each; its answer has no header */
    struct api_alarm_req req = {.action = API_ALARM_GET};
    struct api_alarm_resp list, one, ret = {0};
    struct client_err e;
    if (alarm_call(c, &req, &list, dl, &e) < 0)
        ctl_rpc_fail(c, CTL_EXIT_ERROR, &e, NULL, NULL);
    ret.alarms = xalloc((list.n_alarms + 1) * sizeof *ret.alarms * 4);
    size_t cap = list.n_alarms * 4 + 1;
    for (size_t i = 0; i < list.n_alarms; i++) {
        struct api_alarm_req d = {.action = API_ALARM_DEACTIVATE,
                                  .memberID = list.alarms[i].memberID,
                                  .alarm = list.alarms[i].alarm};
        if (alarm_call(c, &d, &one, dl, &e) < 0)
            ctl_rpc_fail(c, CTL_EXIT_ERROR, &e, NULL, NULL);
        for (size_t k = 0; k < one.n_alarms && ret.n_alarms < cap; k++)
            ret.alarms[ret.n_alarms++] = one.alarms[k];
    }
    print_alarms(&ret);
    return 0;
}

/* ---- defrag ---- */

static int defrag_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    if (defrag_data_dir[0]) /* offline, on the db file (ctl_snapshot.c) */
        return ctl_defrag_data_dir(defrag_data_dir);
    (void)ctl_client_from_cmd(cmd);
    struct ctl_strv eps = cluster_endpoints(cmd);
    int failures = 0;
    for (size_t i = 0; i < eps.n; i++) {
        struct client *c = ctl_client_for(&eps.v[i], 1, CTL_AUTH_NOW, true);
        struct api_defragment_req req = {0};
        struct api_defragment_resp r;
        struct client_err e;
        if (client_unary(c, "/etcdserverpb.Maintenance/Defragment", &api_defragment_req_desc,
                         &req, &api_defragment_resp_desc, &r, &ctl_arena, ctl_deadline(), &e) < 0) {
            ctl_rpc_warn(c, &e);
            fflush(stdout);
            fprintf(stderr, "Failed to defragment etcd member[%s] (%s)\n", eps.v[i],
                    ctl_err_text(&e));
            failures++;
        } else {
            printf("Finished defragmenting etcd member[%s]\n", eps.v[i]);
        }
    }
    if (failures)
        ctl_exit(CTL_EXIT_ERROR);
    return 0;
}

/* ---- move-leader ---- */

static int move_leader_run(struct ctl_cmd *cmd, int argc, char **argv)
{
    if (argc != 1)
        ctl_fail(CTL_EXIT_BAD_ARGS, "move-leader command needs 1 argument");
    uint64_t target;
    char err[256];
    if (ctl_parse_uint(argv[0], 16, &target, err, sizeof err) < 0)
        ctl_fail(CTL_EXIT_BAD_ARGS, "%s", err);
    (void)ctl_client_from_cmd(cmd);
    struct ctl_strv eps = ctl_endpoints();
    int64_t dl = ctl_deadline();
    struct client *leader = NULL;
    uint64_t leader_id = 0;
    for (size_t i = 0; i < eps.n && !leader; i++) {
        struct client *c = ctl_client_for(&eps.v[i], 1, CTL_AUTH_NOW, false);
        struct api_status_req req = {0};
        struct api_status_resp r;
        struct client_err e;
        if (client_unary(c, "/etcdserverpb.Maintenance/Status", &api_status_req_desc, &req,
                         &api_status_resp_desc, &r, &ctl_arena, dl, &e) < 0)
            ctl_rpc_fail(c, CTL_EXIT_ERROR, &e, NULL, NULL);
        if (r.header && r.header->member_id == r.leader) {
            leader = c;
            leader_id = r.leader;
        }
    }
    if (!leader) {
        struct mem_buf b = {0};
        (void)!mem_buf_putc(&b, '[');
        for (size_t i = 0; i < eps.n; i++)
            (void)!mem_buf_printf(&b, "%s%s", i ? " " : "", eps.v[i]);
        (void)!mem_buf_printf(&b, "]");
        (void)!mem_buf_putc(&b, 0);
        ctl_fail(CTL_EXIT_BAD_ARGS, "no leader endpoint given at %s", (char *)b.data);
    }
    struct api_move_leader_req req = {.targetID = target};
    struct api_move_leader_resp r;
    struct client_err e;
    if (client_unary(leader, "/etcdserverpb.Maintenance/MoveLeader", &api_move_leader_req_desc,
                     &req, &api_move_leader_resp_desc, &r, &ctl_arena, dl, &e) < 0)
        ctl_rpc_fail(leader, CTL_EXIT_ERROR, &e, NULL, NULL);
    struct ctl_json j = {0};
    switch (ctl_g.fmt) {
    case CTL_FMT_SIMPLE:
        printf("Leadership transferred from %llx to %llx\n", (unsigned long long)leader_id,
               (unsigned long long)target);
        break;
    case CTL_FMT_JSON:
        cj_open(&j, NULL, '{');
        cj_header(&j, "header", r.header);
        cj_close(&j, '}');
        cj_print(&j);
        break;
    case CTL_FMT_PROTOBUF:
        ctl_print_pb(&api_move_leader_resp_desc, &r);
        break;
    default:
        ctl_unsupported_format();
    }
    return 0;
}
