/* rpc.c - etcd's KV, Cluster and Maintenance gRPC services (rpc.h).
 *
 * Owns request validation as etcd's v3rpc layer does it (empty keys,
 * ignore_value/ignore_lease, txn limits, request size), the response
 * headers (cluster id, member id, raft term, revision) and the mapping of
 * store errors to etcd's gRPC statuses.  It owns no state: the
 * stores live in struct server.
 *
 * Every write (Put, DeleteRange, non-read-only Txn, Compact) is proposed
 * to raft (node.c) and answered when it applies.  Reads are served from the
 * store at once: with one voter that is linearizable, since a write is
 * applied as soon as it is committed.
 */
#include "rpc.h"

#include <stdio.h>
#include <string.h>

#include "api.h"
#include "err.h"
#include "lease.h"
#include "node.h"
#include "server.h"
#include "version.h"
#include "lock.h"
#include "watch.h"

static void fail(struct grpc_call *call, int err)
{
    grpc_call_fail(call, (int)err_grpc_code(err), err_msg(err));
}

/* A header with ids and term; revision as etcd's header.fill: the store's
 * current revision unless the store already set one. */
static void fill_header(const struct server *s, struct api_header *h, bool with_rev)
{
    h->cluster_id = node_cluster_id(s->node);
    h->member_id = node_member_id(s->node);
    h->raft_term = node_term(s->node);
    if (with_rev && h->revision == 0)
        h->revision = mvcc_rev(s->mvcc);
}

static struct api_header *new_header(struct grpc_call *call)
{
    return mem_arena_zalloc(grpc_call_arena(call), sizeof(struct api_header));
}

/* ---- KV ---- */

static void kv_range(struct grpc_call *call, void *reqp)
{
    struct server *s = grpc_call_ctx(call);
    struct api_range_req *req = reqp;
    if (req->key.len == 0)
        return fail(call, ERR_EMPTY_KEY);
    struct api_range_resp resp = {.header = new_header(call)};
    if (!resp.header)
        return fail(call, ERR_NOMEM);
    int r = mvcc_range(s->mvcc, req, grpc_call_arena(call), &resp);
    if (r < 0)
        return fail(call, r);
    fill_header(s, resp.header, true);
    grpc_call_reply(call, &api_range_resp_desc, &resp);
}

bool rpc_lease_exists(void *ctx, int64_t lease)
{
    const struct server *s = ctx;
    return lease_exists(s->leases, lease);
}

/* etcd's backend quota: a write whose estimated cost would take the db past
 * --quota-backend-bytes raises the NOSPACE alarm (through raft) and fails;
 * once the alarm is up every growing write fails until it is disarmed. */
static int64_t put_cost(const struct api_put_req *p)
{
    return 256 + (int64_t)p->key.len + (int64_t)p->value.len; /* etcd's kvOverhead */
}

static int64_t txn_cost(const struct api_txn_req *t)
{
    int64_t c = 0;
    const struct api_request_op *branches[2] = {t->success, t->failure};
    size_t counts[2] = {t->n_success, t->n_failure};
    for (int b = 0; b < 2; b++)
        for (size_t i = 0; i < counts[b]; i++) {
            const struct api_request_op *op = &branches[b][i];
            if (op->request_put)
                c += put_cost(op->request_put);
            else if (op->request_txn)
                c += txn_cost(op->request_txn);
        }
    return c;
}

static bool over_quota(struct server *s, int64_t cost)
{
    if (node_nospace(s->node))
        return true;
    if (cost == 0 || s->cfg->quota_backend_bytes <= 0 ||
        node_db_size(s->node) + cost < s->cfg->quota_backend_bytes)
        return false;
    struct api_alarm_req ar = {.action = API_ALARM_ACTIVATE, .memberID = node_member_id(s->node),
                               .alarm = API_ALARM_NOSPACE};
    struct api_internal_raft_req irr = {.alarm = &ar};
    node_propose(s->node, &irr, NULL);
    return true;
}

/* Writes go through raft: validated here as etcd's v3rpc layer does,
 * answered by node.c when their entry applies. */
static void kv_put(struct grpc_call *call, void *reqp)
{
    struct server *s = grpc_call_ctx(call);
    struct api_put_req *req = reqp;
    if (req->key.len == 0)
        return fail(call, ERR_EMPTY_KEY);
    if (req->ignore_value && req->value.len != 0)
        return fail(call, ERR_VALUE_PROVIDED);
    if (req->ignore_lease && req->lease != 0)
        return fail(call, ERR_LEASE_PROVIDED);
    if (over_quota(s, put_cost(req)))
        return fail(call, ERR_NO_SPACE);
    struct api_internal_raft_req irr = {.put = req};
    node_propose(s->node, &irr, call);
}

static void kv_delete(struct grpc_call *call, void *reqp)
{
    struct server *s = grpc_call_ctx(call);
    struct api_delete_req *req = reqp;
    if (req->key.len == 0)
        return fail(call, ERR_EMPTY_KEY);
    struct api_internal_raft_req irr = {.delete_range = req};
    node_propose(s->node, &irr, call);
}

bool rpc_txn_writes(const struct api_txn_req *t)
{
    const struct api_request_op *branches[2] = {t->success, t->failure};
    size_t counts[2] = {t->n_success, t->n_failure};
    for (int b = 0; b < 2; b++)
        for (size_t i = 0; i < counts[b]; i++) {
            const struct api_request_op *op = &branches[b][i];
            if (op->request_put || op->request_delete_range)
                return true;
            if (op->request_txn && rpc_txn_writes(op->request_txn))
                return true;
        }
    return false;
}

static void kv_txn(struct grpc_call *call, void *reqp)
{
    struct server *s = grpc_call_ctx(call);
    struct api_txn_req *req = reqp;
    int r = mvcc_txn_check(req, s->cfg->max_txn_ops);
    if (r < 0)
        return fail(call, r);
    if (rpc_txn_writes(req)) {
        if (over_quota(s, txn_cost(req)))
            return fail(call, ERR_NO_SPACE);
        struct api_internal_raft_req irr = {.txn = req};
        return node_propose(s->node, &irr, call);
    }
    /* read-only: served here like a Range (etcd does not log it either) */
    struct api_txn_resp resp = {.header = new_header(call)};
    if (!resp.header)
        return fail(call, ERR_NOMEM);
    r = mvcc_txn(s->mvcc, req, grpc_call_arena(call), &resp);
    if (r < 0)
        return fail(call, r);
    fill_header(s, resp.header, true);
    grpc_call_reply(call, &api_txn_resp_desc, &resp);
}

static void kv_compact(struct grpc_call *call, void *reqp)
{
    struct server *s = grpc_call_ctx(call);
    struct api_internal_raft_req irr = {.compaction = reqp};
    node_propose(s->node, &irr, call);
}

/* ---- Lease ---- */

static void lease_grant_rpc(struct grpc_call *call, void *reqp)
{
    struct server *s = grpc_call_ctx(call);
    struct api_lease_grant_req *req = reqp;
    /* etcd picks the ID before proposing, so every member applies the same */
    if (over_quota(s, 64)) /* etcd's leaseOverhead */
        return fail(call, ERR_NO_SPACE);
    if (req->ID == 0)
        req->ID = node_lease_id(s->node);
    struct api_internal_raft_req irr = {.lease_grant = req};
    node_propose(s->node, &irr, call);
}

static void lease_revoke_rpc(struct grpc_call *call, void *reqp)
{
    struct server *s = grpc_call_ctx(call);
    struct api_internal_raft_req irr = {.lease_revoke = reqp};
    node_propose(s->node, &irr, call);
}

static void lease_time_to_live_rpc(struct grpc_call *call, void *reqp)
{
    struct server *s = grpc_call_ctx(call);
    struct api_lease_time_to_live_req *req = reqp;
    struct api_lease_time_to_live_resp resp = {.header = new_header(call)};
    if (!resp.header)
        return fail(call, ERR_NOMEM);
    int r = lease_time_to_live(s->leases, (int64_t)loop_now_ms(s->loop), req->ID, req->keys,
                               grpc_call_arena(call), &resp);
    if (r == -ERR_LEASE_NOT_FOUND) {
        /* etcd answers an unknown lease with TTL -1, not an error */
        resp.ID = req->ID;
        resp.TTL = -1;
    } else if (r < 0) {
        return fail(call, r);
    }
    fill_header(s, resp.header, true);
    grpc_call_reply(call, &api_lease_time_to_live_resp_desc, &resp);
}

static void lease_leases_rpc(struct grpc_call *call, void *reqp)
{
    (void)reqp;
    struct server *s = grpc_call_ctx(call);
    struct api_lease_leases_resp resp = {.header = new_header(call)};
    if (!resp.header)
        return fail(call, ERR_NOMEM);
    int r = lease_leases(s->leases, grpc_call_arena(call), &resp);
    if (r < 0)
        return fail(call, r);
    fill_header(s, resp.header, true);
    grpc_call_reply(call, &api_lease_leases_resp_desc, &resp);
}

/* LeaseKeepAlive: a bidirectional stream; each request renews one lease on
 * the leader and is answered with its TTL, 0 for a lease that is gone. */
static void lease_keep_alive_msg(struct grpc_call *call, void *reqp)
{
    struct server *s = grpc_call_ctx(call);
    struct api_lease_keep_alive_req *req = reqp;
    struct api_header h = {0};
    struct api_lease_keep_alive_resp resp = {.header = &h, .ID = req->ID};
    bool clear = false;
    int64_t ttl = 0;
    int r = lease_renew(s->leases, (int64_t)loop_now_ms(s->loop), req->ID, &ttl, &clear);
    if (r == LEASE_NOT_PRIMARY)
        return grpc_call_fail(call, (int)err_grpc_code(ERR_NOT_LEADER), err_msg(ERR_NOT_LEADER));
    resp.TTL = r == 0 ? ttl : 0;
    if (r == 0 && clear) {
        struct api_lease_checkpoint cp = {.ID = req->ID};
        struct api_lease_checkpoint_req creq = {.checkpoints = &cp, .n_checkpoints = 1};
        struct api_internal_raft_req irr = {.lease_checkpoint = &creq};
        node_propose(s->node, &irr, NULL);
    }
    fill_header(s, &h, true);
    if (grpc_call_send(call, &api_lease_keep_alive_resp_desc, &resp) < 0)
        grpc_call_fail(call, GRPC_UNAVAILABLE, "etcdserver: server stopped");
}

static void lease_keep_alive_end(struct grpc_call *call, bool reset)
{
    if (!reset)
        grpc_call_fail(call, GRPC_OK, NULL);
}

/* ---- Watch ---- */

static void watch_msg(struct grpc_call *call, void *req)
{
    struct server *s = grpc_call_ctx(call);
    watch_on_message(s->watch, call, req);
}

/* ---- Cluster ---- */

static struct pb_bytes *url_list(struct mem_arena *a, char *const *urls, size_t n)
{
    struct pb_bytes *v = mem_arena_alloc(a, (n ? n : 1) * sizeof *v);
    if (!v)
        return NULL;
    for (size_t i = 0; i < n; i++)
        v[i] = (struct pb_bytes){(const uint8_t *)urls[i], strlen(urls[i])};
    return v;
}

static void cluster_member_list(struct grpc_call *call, void *reqp)
{
    (void)reqp;
    struct server *s = grpc_call_ctx(call);
    struct mem_arena *a = grpc_call_arena(call);
    size_t n;
    const struct member *ms = node_members(s->node, &n);
    struct api_member *m = mem_arena_zalloc(a, (n ? n : 1) * sizeof *m);
    struct api_member_list_resp resp = {.header = new_header(call), .members = m, .n_members = n};
    if (!m || !resp.header)
        return fail(call, ERR_NOMEM);
    for (size_t i = 0; i < n; i++) {
        m[i].ID = ms[i].id;
        m[i].name = (struct pb_bytes){(const uint8_t *)ms[i].name, strlen(ms[i].name)};
        m[i].peerURLs = url_list(a, ms[i].peer_urls, ms[i].n_peer_urls);
        m[i].n_peerURLs = ms[i].n_peer_urls;
        m[i].clientURLs = url_list(a, ms[i].client_urls, ms[i].n_client_urls);
        m[i].n_clientURLs = ms[i].n_client_urls;
        m[i].isLearner = ms[i].is_learner;
        if (!m[i].peerURLs || !m[i].clientURLs)
            return fail(call, ERR_NOMEM);
    }
    /* etcd's cluster service header carries no revision */
    fill_header(s, resp.header, false);
    grpc_call_reply(call, &api_member_list_resp_desc, &resp);
}

/* ---- Maintenance ---- */

static void maint_status(struct grpc_call *call, void *reqp)
{
    (void)reqp;
    struct server *s = grpc_call_ctx(call);
    struct raft_status st;
    node_status(s->node, &st);
    struct api_status_resp resp = {
        .header = new_header(call),
        .version = {(const uint8_t *)ETCD_SERVER_VERSION, sizeof ETCD_SERVER_VERSION - 1},
        .dbSize = node_db_size(s->node),
        .dbSizeInUse = node_db_size_in_use(s->node),
        .leader = st.lead,
        .raftIndex = st.commit,
        .raftTerm = st.term,
        .raftAppliedIndex = st.applied,
    };
    if (!resp.header)
        return fail(call, ERR_NOMEM);
    /* each alarm as Go's proto text, which is what etcdctl shows */
    size_t na;
    const struct api_alarm_member *al = node_alarms(s->node, &na);
    if (na) {
        struct mem_arena *a = grpc_call_arena(call);
        resp.errors = mem_arena_alloc(a, na * sizeof *resp.errors);
        if (!resp.errors)
            return fail(call, ERR_NOMEM);
        for (size_t i = 0; i < na; i++) {
            char *t = mem_arena_alloc(a, 96);
            if (!t)
                return fail(call, ERR_NOMEM);
            int l = snprintf(t, 96, "memberID:%llu alarm:%s ", (unsigned long long)al[i].memberID,
                             al[i].alarm == API_ALARM_NOSPACE ? "NOSPACE" : "CORRUPT");
            resp.errors[resp.n_errors++] = (struct pb_bytes){(const uint8_t *)t, (size_t)l};
        }
    }
    fill_header(s, resp.header, true);
    grpc_call_reply(call, &api_status_resp_desc, &resp);
}

static void maint_hash(struct grpc_call *call, void *reqp)
{
    (void)reqp;
    node_maintenance(((struct server *)grpc_call_ctx(call))->node, 0, 0, call);
}

static void maint_hash_kv(struct grpc_call *call, void *reqp)
{
    struct api_hash_kv_req *req = reqp;
    node_maintenance(((struct server *)grpc_call_ctx(call))->node, 1, req->revision, call);
}

static void maint_defragment(struct grpc_call *call, void *reqp)
{
    (void)reqp;
    node_maintenance(((struct server *)grpc_call_ctx(call))->node, 2, 0, call);
}

static void maint_snapshot(struct grpc_call *call, void *reqp)
{
    (void)reqp;
    node_maintenance(((struct server *)grpc_call_ctx(call))->node, 3, 0, call);
}

static void maint_snapshot_end(struct grpc_call *call, bool reset)
{
    if (reset)
        node_maintenance_gone(call);
}

/* Alarm: GET is answered from the applied alarms; ACTIVATE and DEACTIVATE
 * (`etcdctl alarm disarm`) go through raft like every change. */
static void maint_alarm(struct grpc_call *call, void *reqp)
{
    struct server *s = grpc_call_ctx(call);
    struct api_alarm_req *req = reqp;
    if (req->action != API_ALARM_GET) {
        struct api_internal_raft_req irr = {.alarm = req};
        return node_propose(s->node, &irr, call);
    }
    size_t n;
    const struct api_alarm_member *all = node_alarms(s->node, &n);
    struct api_alarm_resp resp = {.header = new_header(call)};
    resp.alarms = mem_arena_alloc(grpc_call_arena(call), (n ? n : 1) * sizeof *resp.alarms);
    if (!resp.header || !resp.alarms)
        return fail(call, ERR_NOMEM);
    for (size_t i = 0; i < n; i++)
        if (req->alarm == API_ALARM_NONE || all[i].alarm == req->alarm)
            resp.alarms[resp.n_alarms++] = all[i];
    fill_header(s, resp.header, true);
    grpc_call_reply(call, &api_alarm_resp_desc, &resp);
}

/* ---- method table ---- */

#define UNARY(path, desc, fn) {path, &desc, false, fn, NULL}

const struct grpc_method rpc_methods[] = {
    UNARY("/etcdserverpb.KV/Range", api_range_req_desc, kv_range),
    UNARY("/etcdserverpb.KV/Put", api_put_req_desc, kv_put),
    UNARY("/etcdserverpb.KV/DeleteRange", api_delete_req_desc, kv_delete),
    UNARY("/etcdserverpb.KV/Txn", api_txn_req_desc, kv_txn),
    UNARY("/etcdserverpb.KV/Compact", api_compaction_req_desc, kv_compact),
    UNARY("/etcdserverpb.Lease/LeaseGrant", api_lease_grant_req_desc, lease_grant_rpc),
    UNARY("/etcdserverpb.Lease/LeaseRevoke", api_lease_revoke_req_desc, lease_revoke_rpc),
    UNARY("/etcdserverpb.Lease/LeaseTimeToLive", api_lease_time_to_live_req_desc, lease_time_to_live_rpc),
    UNARY("/etcdserverpb.Lease/LeaseLeases", api_lease_leases_req_desc, lease_leases_rpc),
    {"/etcdserverpb.Lease/LeaseKeepAlive", &api_lease_keep_alive_req_desc, true, lease_keep_alive_msg,
     lease_keep_alive_end},
    {"/etcdserverpb.Watch/Watch", &api_watch_req_desc, true, watch_msg, watch_on_end},
    UNARY("/etcdserverpb.Cluster/MemberList", api_member_list_req_desc, cluster_member_list),
    UNARY("/etcdserverpb.Maintenance/Status", api_status_req_desc, maint_status),
    UNARY("/etcdserverpb.Maintenance/Hash", api_hash_req_desc, maint_hash),
    UNARY("/etcdserverpb.Maintenance/HashKV", api_hash_kv_req_desc, maint_hash_kv),
    UNARY("/etcdserverpb.Maintenance/Defragment", api_defragment_req_desc, maint_defragment),
    UNARY("/etcdserverpb.Maintenance/Alarm", api_alarm_req_desc, maint_alarm),
    {"/etcdserverpb.Maintenance/Snapshot", &api_snapshot_req_desc, true, maint_snapshot, maint_snapshot_end},
    LOCK_METHODS,
    {0},
};
