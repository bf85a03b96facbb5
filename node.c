/* node.c - this member's raft node and apply loop (node.h).
 *
 * Owns the raft state machine, the WAL, the table of calls waiting for their
 * entries, the member list and the persist job that runs on the loop's
 * worker thread.  It does not own the stores it applies to (struct server's
 * mvcc) nor the gRPC calls (grpc.c): it answers them.
 *
 * The cycle (one loop thread): proposals and ticks feed raft; at the end of
 * a loop turn run_ready takes raft's ready; its entries and hard state go to
 * the worker (wal_save + fdatasync) while the loop keeps serving; when the
 * worker is done, the committed entries are applied in order, their callers
 * answered, and the ready advanced.  Proposals made meanwhile wait in raft
 * and share the next write: group commit without a timer.
 */
#include "node.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "err.h"
#include "failpoint.h"
#include "lease.h"
#include "lock.h"
#include "log.h"
#include "loop.h"
#include "raft.h"
#include "rpc.h"
#include "server.h"
#include "snap.h"
#include "wal.h"
#include "watch.h"

#define NODE_MAX_MEMBERS 64
/* Worker lanes (loop_work_on): the WAL's writes and snapshots on one, the
 * db's commits and maintenance on the other, so that an entry's fdatasync
 * never waits behind a backend commit.  The db only ever holds what the
 * WAL already made durable, so the two need no ordering between them. */
#define LANE_WAL 0
#define LANE_DB 1
#define WAIT_MIN_CAP 1024

/* Who waits for an entry to apply: a gRPC call, or an internal caller's
 * function (the lock and election services), or nobody. */
struct node_waiter {
    struct grpc_call *call;
    node_done_fn fn;
    void *arg;
};

/* A waiter keyed by the request ID carried in the entry's RequestHeader. */
struct node_wait {
    uint64_t id; /* 0 = empty slot */
    struct node_waiter w;
};

struct node {
    struct server *srv;
    struct loop *loop;
    struct raft *raft;
    struct wal *wal;
    char wal_dir[1024];
    struct backend *be;        /* owned: the db at member/snap/db */
    struct backend_job *bjob;  /* the backend commit on the worker, or NULL */
    uint64_t btimer;
    uint64_t consistent_index; /* the db holds every v3 apply up to here */
    uint64_t bjob_index;       /* ... once the commit in flight is done */
    uint64_t db_index;         /* ... durably */
    struct node_mjob *parked;  /* maintenance jobs waiting for the backend commit */
    bool wal_failing, db_failing; /* the last write of each failed (ENOSPC): retrying */
    struct api_alarm_member alarms[NODE_MAX_MEMBERS * 2]; /* active alarms */
    size_t n_alarms;
    uint64_t member_id, cluster_id;
    struct lease_idgen reqid;
    int heartbeat_ms;
    uint64_t tick_timer;
    uint64_t lease_timer;
    bool stopping;

    /* raft snapshots: taken every snapshot_count entries at an index the
     * db holds durably, so the WAL before it can go */
    uint64_t snapshot_count;
    unsigned max_snapshots, max_wals;
    uint64_t snap_index; /* the newest snapshot's */
    struct snap_job *snap_job; /* on the worker, or NULL */
    uint64_t snap_retry_ms;    /* after a failure, no new attempt before this */
    char snap_dir[1100];

    /* the ready being persisted/applied */
    struct raft_ready rd;
    bool rd_out;
    size_t rd_applied;        /* rd.committed[0..rd_applied) are applied */
    uint64_t persisted_index; /* the WAL holds every entry up to here */
    bool job_running;
    int job_err; /* set by the worker, read after it is done */
    bool kick_pending;

    /* waiters: open addressing, linear probing, power-of-two capacity */
    struct node_wait *waits;
    size_t wait_cap, n_waits;

    /* applied state besides mvcc */
    struct member members[NODE_MAX_MEMBERS];
    size_t n_members;
    bool cluster_version_set;
    bool published;
    bool was_leader;
    uint64_t leader_changes;
    /* disk latencies: timed by the worker (job_sync_s, bjob_s), counted by
     * the loop */
    double job_sync_s, bjob_s;
    struct metrics_hist fsync_hist, commit_hist;
    bool campaign_pending; /* a lone voter campaigns once its log is applied */
    struct mem_arena apply_arena; /* responses nobody waits for */
};

static void kick(struct node *n);

/* ---- waiters ---- */

static size_t wait_slot(const struct node *n, uint64_t id)
{
    /* request IDs count up in their low bits: mix them before masking */
    uint64_t h = id * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 32) & (n->wait_cap - 1);
}

static int wait_grow(struct node *n)
{
    size_t cap = n->wait_cap ? n->wait_cap * 2 : WAIT_MIN_CAP;
    struct node_wait *w = mem_calloc(cap, sizeof *w);
    if (!w)
        return -1;
    struct node_wait *old = n->waits;
    size_t old_cap = n->wait_cap;
    n->waits = w;
    n->wait_cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].id) {
            size_t s = wait_slot(n, old[i].id);
            while (n->waits[s].id)
                s = (s + 1) & (cap - 1);
            n->waits[s] = old[i];
        }
    mem_free(old);
    return 0;
}

static int wait_add(struct node *n, uint64_t id, const struct node_waiter *w)
{
    if ((n->n_waits + 1) * 2 > n->wait_cap && wait_grow(n) < 0)
        return -1;
    size_t s = wait_slot(n, id);
    while (n->waits[s].id)
        s = (s + 1) & (n->wait_cap - 1);
    n->waits[s] = (struct node_wait){id, *w};
    n->n_waits++;
    return 0;
}

/* Removes and returns the waiter for id (all NULL if none).  Deletion
 * shifts the following run back so probing never needs tombstones. */
static struct node_waiter wait_take(struct node *n, uint64_t id)
{
    struct node_waiter none = {0};
    if (!n->wait_cap)
        return none;
    size_t mask = n->wait_cap - 1, s = wait_slot(n, id);
    while (n->waits[s].id && n->waits[s].id != id)
        s = (s + 1) & mask;
    if (!n->waits[s].id)
        return none;
    struct node_waiter w = n->waits[s].w;
    n->n_waits--;
    size_t hole = s;
    for (size_t j = (s + 1) & mask; n->waits[j].id; j = (j + 1) & mask) {
        size_t want = wait_slot(n, n->waits[j].id);
        /* move j into the hole unless its home lies cyclically in (hole, j] */
        bool stays = hole <= j ? (want > hole && want <= j) : (want > hole || want <= j);
        if (!stays) {
            n->waits[hole] = n->waits[j];
            hole = j;
        }
    }
    n->waits[hole].id = 0;
    n->waits[hole].w = none;
    return w;
}

/* The db batch could not take a change (out of memory): continuing would
 * let the db fall behind the WAL's consistent index, so stop as etcd does;
 * a restart replays the WAL from the db's last commit. */
static void be_check(int rc)
{
    if (rc == 0)
        return;
    char fields[128];
    snprintf(fields, sizeof fields, "\"error\":\"%s\"", db_strerror(rc));
    log_line(LOG_FATAL, "mvcc/backend/batch_tx.go:57", "backend", "failed to record a change for the backend",
             NULL, fields);
    exit(1);
}

/* ---- members ---- */

static struct member *member_find(struct node *n, uint64_t id)
{
    for (size_t i = 0; i < n->n_members; i++)
        if (n->members[i].id == id)
            return &n->members[i];
    return NULL;
}

static void members_add(struct node *n, const struct member *m)
{
    struct member *old = member_find(n, m->id);
    if (old) {
        member_free(old);
        *old = *m;
        return;
    }
    if (n->n_members == NODE_MAX_MEMBERS) {
        struct member tmp = *m;
        member_free(&tmp);
        return;
    }
    /* kept in ID order, as etcd lists them */
    size_t i = n->n_members;
    while (i > 0 && n->members[i - 1].id > m->id) {
        n->members[i] = n->members[i - 1];
        i--;
    }
    n->members[i] = *m;
    n->n_members++;
}

static void members_remove(struct node *n, uint64_t id)
{
    struct member *m = member_find(n, id);
    if (!m)
        return;
    member_free(m);
    size_t i = (size_t)(m - n->members);
    memmove(m, m + 1, (n->n_members - i - 1) * sizeof *m);
    n->n_members--;
}

/* ---- applying entries ---- */

static void fill_header(struct node *n, struct api_header *h)
{
    h->cluster_id = n->cluster_id;
    h->member_id = n->member_id;
    struct raft_status st;
    raft_status(n->raft, &st);
    h->raft_term = st.term;
    if (h->revision == 0)
        h->revision = mvcc_rev(n->srv->mvcc);
}

static void log_published(struct node *n)
{
    struct member *me = member_find(n, n->member_id);
    if (!me)
        return;
    char urls[1024] = "", msg[2048], fields[4096];
    size_t o = 0;
    for (size_t i = 0; i < me->n_client_urls && o < sizeof urls; i++)
        o += (size_t)snprintf(urls + o, sizeof urls - o, "%s%s", i ? " " : "", me->client_urls[i]);
    snprintf(msg, sizeof msg, "published {Name:%s ClientURLs:[%s]} to cluster %016llx", me->name, urls,
             (unsigned long long)n->cluster_id);
    snprintf(fields, sizeof fields,
             "\"local-member-id\":\"%016llx\",\"local-member-attributes\":\"{Name:%s ClientURLs:[%s]}\","
             "\"request-path\":\"/0/members/%016llx/attributes\",\"cluster-id\":\"%016llx\","
             "\"publish-timeout\":\"7s\"",
             (unsigned long long)n->member_id, me->name, urls, (unsigned long long)n->member_id,
             (unsigned long long)n->cluster_id);
    log_line(LOG_INFO, "etcdserver/server.go:2069", "etcdserver",
             "published local member to cluster through raft", msg, fields);
}

/* etcd says it is ready once the member is published and the cluster
 * version known; tools wait for these lines. */
static void log_ready(struct node *n)
{
    char msg[512], fields[512];
    log_line(LOG_INFO, "embed/serve.go:97", "embed", "ready to serve client requests", NULL, NULL);
    const struct server_config *cfg = n->srv->cfg;
    for (size_t i = 0; i < cfg->n_listen_client_urls; i++) {
        char host[256];
        int port;
        bool tls;
        if (server_parse_url(cfg->listen_client_urls[i], host, sizeof host, &port, &tls) < 0)
            continue;
        snprintf(fields, sizeof fields, "\"address\":\"%s:%d\"", host, port);
        snprintf(msg, sizeof msg, "serving insecure client requests on %s:%d, this is strongly discouraged!",
                 host, port);
        log_line(LOG_INFO, "embed/serve.go:145", "embed",
                 "serving client traffic insecurely; this is strongly discouraged!", msg, fields);
    }
}

static void log_cluster_version(struct node *n)
{
    char fields[256];
    snprintf(fields, sizeof fields,
             "\"cluster-id\":\"%016llx\",\"local-member-id\":\"%016llx\",\"cluster-version\":\"3.4\"",
             (unsigned long long)n->cluster_id, (unsigned long long)n->member_id);
    log_line(LOG_INFO, "membership/cluster.go:558", "etcdserver/membership", "set initial cluster version",
             "set the initial cluster version to 3.4", fields);
    log_line(LOG_INFO, "api/capability.go:76", "etcdserver/api", "enabled capabilities for version",
             "enabled capabilities for version 3.4", "\"cluster-version\":\"3.4\"");
}

/* etcd 3.4 still publishes attributes and the cluster version as v2 store
 * requests: PUT /0/members/<id>/attributes and PUT /0/version. */
static void apply_v2(struct node *n, const struct api_v2_request *r)
{
    char path[128];
    if (r->Method.len != 3 || memcmp(r->Method.p, "PUT", 3))
        return;
    if (r->Path.len == 10 && !memcmp(r->Path.p, "/0/version", 10)) {
        if (n->cluster_version_set)
            return;
        n->cluster_version_set = true;
        be_check(backend_record_cluster_version(n->be, "3.4.0"));
        log_cluster_version(n);
        if (n->published)
            log_ready(n);
        return;
    }
    unsigned long long id;
    if (r->Path.len >= sizeof path)
        return;
    memcpy(path, r->Path.p, r->Path.len);
    path[r->Path.len] = 0;
    char tail[32];
    if (sscanf(path, "/0/members/%llx/%31s", &id, tail) != 2 || strcmp(tail, "attributes"))
        return;
    struct member *m = member_find(n, id);
    if (!m || member_from_json(m, (const char *)r->Val.p, r->Val.len, true) < 0)
        return;
    be_check(backend_record_member(n->be, m));
    if (id == n->member_id && !n->published) {
        n->published = true;
        log_published(n);
        if (n->cluster_version_set)
            log_ready(n);
    }
}

static void apply_conf_change(struct node *n, const struct api_raft_entry *e, struct mem_arena *a)
{
    struct api_raft_conf_change cc;
    if (!e->Data.p || pb_decode(&api_raft_conf_change_desc, e->Data.p, e->Data.len, &cc, a) < 0)
        return;
    if (raft_apply_conf_change(n->raft, &cc, NULL) < 0)
        return;
    if (cc.type == API_CONF_REMOVE_NODE) {
        members_remove(n, cc.NodeID);
        be_check(backend_record_member_removed(n->be, cc.NodeID));
        return;
    }
    struct member m;
    if (!cc.context.p || member_from_json(&m, (const char *)cc.context.p, cc.context.len, false) < 0)
        return;
    struct member *old = member_find(n, m.id);
    if (old && !m.name[0] && old->name[0]) { /* an update keeps the attributes */
        snprintf(m.name, sizeof m.name, "%s", old->name);
    }
    members_add(n, &m);
    be_check(backend_record_member(n->be, member_find(n, cc.NodeID) ? member_find(n, cc.NodeID) : &m));
    char fields[512], msg[512];
    snprintf(fields, sizeof fields,
             "\"cluster-id\":\"%016llx\",\"local-member-id\":\"%016llx\",\"added-peer-id\":\"%016llx\"",
             (unsigned long long)n->cluster_id, (unsigned long long)n->member_id, (unsigned long long)cc.NodeID);
    snprintf(msg, sizeof msg, "added member %016llx to cluster %016llx", (unsigned long long)cc.NodeID,
             (unsigned long long)n->cluster_id);
    log_line(LOG_INFO, "membership/cluster.go:392", "etcdserver/membership", "added member", msg, fields);
}

/* Keeps the lease table's key lists in step with the store: every change of
 * the last mvcc mutation moves its key to the lease of its new revision (or
 * off any lease, for a delete), as etcd's store attaches and detaches. */
static void sync_leases(struct node *n)
{
    struct lease_table *t = n->srv->leases;
    size_t count = mvcc_last_n_events(n->srv->mvcc);
    for (size_t i = 0; i < count; i++) {
        struct mvcc_event ev;
        mvcc_last_event(n->srv->mvcc, i, &ev);
        const uint8_t *k = ev.kv.key.p;
        size_t kl = ev.kv.key.len;
        int64_t old = lease_of_key(t, k, kl);
        int64_t now = ev.type == API_EVENT_PUT ? ev.kv.lease : 0;
        if (old == now)
            continue;
        if (old)
            lease_detach(t, old, k, kl);
        /* the lease was checked before the put: only memory can fail here */
        if (now && lease_attach(t, now, k, kl) < 0)
            log_line(LOG_ERROR, "lease/lessor.go:568", "lease", "failed to attach key to lease", NULL, NULL);
    }
}

static void reply_err(const struct node_waiter *w, int err)
{
    if (w->call)
        grpc_call_fail(w->call, (int)err_grpc_code(err), err_msg(err));
    else if (w->fn)
        w->fn(w->arg, err < 0 ? err : -err, NULL);
}

static void reply(const struct node_waiter *w, const struct pb_msgdesc *d, const void *resp)
{
    if (w->call)
        grpc_call_reply(w->call, d, resp);
    else if (w->fn)
        w->fn(w->arg, 0, resp);
}

/* Alarm apply: ACTIVATE and DEACTIVATE change the member's alarms (etcd's
 * alarmStore) and answer with the alarm changed, GET with the alarms of
 * the asked type (all for NONE). */
static int apply_alarm(struct node *n, const struct api_alarm_req *ar, struct mem_arena *a,
                       struct api_alarm_resp *resp)
{
    struct api_alarm_member *out = mem_arena_zalloc(a, sizeof n->alarms);
    if (!out)
        return -ERR_NOMEM;
    resp->alarms = out;
    size_t found = n->n_alarms;
    for (size_t i = 0; i < n->n_alarms; i++)
        if (n->alarms[i].memberID == ar->memberID && n->alarms[i].alarm == ar->alarm)
            found = i;
    switch (ar->action) {
    case API_ALARM_GET:
        for (size_t i = 0; i < n->n_alarms; i++)
            if (ar->alarm == API_ALARM_NONE || n->alarms[i].alarm == ar->alarm)
                out[resp->n_alarms++] = n->alarms[i];
        return 0;
    case API_ALARM_ACTIVATE:
        if (ar->alarm == API_ALARM_NONE)
            return 0;
        out[resp->n_alarms++] = (struct api_alarm_member){ar->memberID, ar->alarm};
        if (found < n->n_alarms || n->n_alarms == sizeof n->alarms / sizeof n->alarms[0])
            return 0;
        n->alarms[n->n_alarms++] = out[0];
        be_check(backend_record_alarm(n->be, ar->memberID, ar->alarm, true));
        char fields[256];
        snprintf(fields, sizeof fields, "\"alarm\":\"%s\",\"from\":\"%llx\"",
                 ar->alarm == API_ALARM_NOSPACE ? "NOSPACE" : "CORRUPT", (unsigned long long)ar->memberID);
        log_line(LOG_WARN, "etcdserver/apply.go:636", "etcdserver", "alarm raised", NULL, fields);
        return 0;
    case API_ALARM_DEACTIVATE:
        if (found == n->n_alarms)
            return 0;
        out[resp->n_alarms++] = n->alarms[found];
        n->alarms[found] = n->alarms[--n->n_alarms];
        be_check(backend_record_alarm(n->be, ar->memberID, ar->alarm, false));
        return 0;
    default:
        return 0;
    }
}

/* LeaseRevoke apply: the lease goes and its keys are deleted in one
 * revision, as etcd's lessor does it through one write txn. */
static int apply_revoke(struct node *n, int64_t id, struct mem_arena *a)
{
    struct pb_bytes *keys;
    size_t nk;
    int rc = lease_revoke(n->srv->leases, id, a, &keys, &nk);
    if (rc < 0)
        return rc;
    be_check(backend_record_lease_revoked(n->be, id));
    if (nk == 0)
        return 0;
    struct api_request_op *ops = mem_arena_zalloc(a, nk * sizeof *ops);
    struct api_delete_req *dels = mem_arena_zalloc(a, nk * sizeof *dels);
    if (!ops || !dels)
        return -ERR_NOMEM;
    for (size_t i = 0; i < nk; i++) {
        dels[i].key = keys[i];
        ops[i].request_delete_range = &dels[i];
    }
    struct api_txn_req txn = {.success = ops, .n_success = nk};
    struct api_txn_resp resp = {0};
    rc = mvcc_txn(n->srv->mvcc, &txn, a, &resp);
    if (rc == 0) {
        sync_leases(n);
        be_check(backend_record_changes(n->be, n->srv->mvcc));
    }
    return rc;
}

/* After a successful mvcc write: leases and the db batch follow the
 * store's changes, then the caller gets its response. */
static void written(struct node *n, const struct node_waiter *w, struct api_header *h,
                    const struct pb_msgdesc *d, const void *resp)
{
    sync_leases(n);
    be_check(backend_record_changes(n->be, n->srv->mvcc));
    fill_header(n, h);
    reply(w, d, resp);
}

/* Runs one InternalRaftRequest against the stores and answers its caller. */
static void apply_request(struct node *n, const struct api_internal_raft_req *r, const struct node_waiter *w)
{
    struct mvcc *m = n->srv->mvcc;
    struct mem_arena *a = w->call ? grpc_call_arena(w->call) : &n->apply_arena;
    struct api_header *h = mem_arena_zalloc(a, sizeof *h);
    if (!h)
        return reply_err(w, ERR_NOMEM);
    int rc;
    /* a NOSPACE alarm caps the store: what would grow it is refused (etcd's
     * applierV3Capped) */
    if (node_nospace(n) && (r->put || r->lease_grant || (r->txn && rpc_txn_writes(r->txn))))
        return reply_err(w, ERR_NO_SPACE);
    if (r->put) {
        /* etcd's applier checks the lease before anything else */
        if (r->put->lease && !lease_exists(n->srv->leases, r->put->lease))
            return reply_err(w, ERR_LEASE_NOT_FOUND);
        struct api_put_resp resp = {.header = h};
        if ((rc = mvcc_put(m, r->put, a, &resp)) < 0)
            return reply_err(w, rc);
        written(n, w, h, &api_put_resp_desc, &resp);
    } else if (r->delete_range) {
        struct api_delete_resp resp = {.header = h};
        if ((rc = mvcc_delete(m, r->delete_range, a, &resp)) < 0)
            return reply_err(w, rc);
        written(n, w, h, &api_delete_resp_desc, &resp);
    } else if (r->txn) {
        struct api_txn_resp resp = {.header = h};
        if ((rc = mvcc_txn(m, r->txn, a, &resp)) < 0)
            return reply_err(w, rc);
        written(n, w, h, &api_txn_resp_desc, &resp);
    } else if (r->compaction) {
        failpoint("before_compaction");
        if ((rc = mvcc_compact(m, r->compaction->revision)) < 0)
            return reply_err(w, rc);
        be_check(backend_record_compaction(n->be, m, r->compaction->revision));
        struct api_compaction_resp resp = {.header = h};
        fill_header(n, h);
        reply(w, &api_compaction_resp_desc, &resp);
    } else if (r->alarm) {
        struct api_alarm_resp resp = {.header = h};
        if ((rc = apply_alarm(n, r->alarm, a, &resp)) < 0)
            return reply_err(w, rc);
        fill_header(n, h);
        reply(w, &api_alarm_resp_desc, &resp);
    } else if (r->lease_grant) {
        struct api_lease_grant_resp resp = {.header = h, .ID = r->lease_grant->ID};
        if ((rc = lease_grant(n->srv->leases, (int64_t)loop_now_ms(n->loop), r->lease_grant->ID,
                              r->lease_grant->TTL, &resp.TTL)) < 0)
            return reply_err(w, rc);
        be_check(backend_record_lease(n->be, r->lease_grant->ID, resp.TTL, 0));
        fill_header(n, h);
        reply(w, &api_lease_grant_resp_desc, &resp);
    } else if (r->lease_revoke) {
        if ((rc = apply_revoke(n, r->lease_revoke->ID, a)) < 0)
            return reply_err(w, rc);
        struct api_lease_revoke_resp resp = {.header = h};
        fill_header(n, h);
        reply(w, &api_lease_revoke_resp_desc, &resp);
    } else if (r->lease_checkpoint) {
        for (size_t i = 0; i < r->lease_checkpoint->n_checkpoints; i++)
            lease_checkpoint(n->srv->leases, (int64_t)loop_now_ms(n->loop), r->lease_checkpoint->checkpoints[i].ID,
                             r->lease_checkpoint->checkpoints[i].remaining_TTL);
        reply(w, &api_lease_checkpoint_resp_desc, &(struct api_lease_checkpoint_resp){.header = h});
    } else if (w->call) {
        grpc_call_fail(w->call, GRPC_UNIMPLEMENTED, "etcdserver: request not supported by this server");
    }
}

static void apply_normal(struct node *n, const struct api_raft_entry *e)
{
    if (!e->Data.p || e->Data.len == 0)
        return; /* a new leader's empty entry */
    struct mem_arena *a = &n->apply_arena;
    struct api_internal_raft_req r;
    /* etcd 3.4 writes v2 requests as a bare etcdserverpb.Request: one that
     * does not decode as an InternalRaftRequest is taken as that */
    bool internal = pb_decode(&api_internal_raft_req_desc, e->Data.p, e->Data.len, &r, a) == 0;
    if (!internal || r.v2) {
        struct api_v2_request v2;
        if (internal)
            v2 = *r.v2;
        else if (pb_decode(&api_v2_request_desc, e->Data.p, e->Data.len, &v2, a) < 0)
            return;
        apply_v2(n, &v2);
        return;
    }
    struct node_waiter w = {0};
    if (r.header)
        w = wait_take(n, r.header->ID);
    /* etcd's shouldApplyV3: the db already holds what applied up to its
     * consistent index (a restart replays the WAL from the start) */
    if (e->Index <= n->consistent_index)
        return;
    apply_request(n, &r, &w);
    watch_hub_notify(n->srv->watch);
    lock_notify(n->srv->lock);
}

static void backend_kick(struct node *n);
static void maybe_snapshot(struct node *n);
static void start_parked(struct node *n);
static void stop_parked(struct node *n);

static void apply_entries(struct node *n, const struct api_raft_entry *ents, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        mem_arena_reset(&n->apply_arena);
        if (ents[i].Type == API_ENTRY_CONF_CHANGE)
            apply_conf_change(n, &ents[i], &n->apply_arena);
        else if (ents[i].Type == API_ENTRY_NORMAL)
            apply_normal(n, &ents[i]);
        if (ents[i].Index > n->consistent_index) {
            backend_record_consistent_index(n->be, ents[i].Index);
            n->consistent_index = ents[i].Index;
        }
    }
    if (count) {
        /* what the batch holds need not be in memory twice: only each
         * key's newest value stays (mvcc.h) */
        mvcc_evict(n->srv->mvcc, backend_recorded_rev(n->be));
        backend_kick(n);
    }
}

/* ---- the backend batch: committed on the worker every 100 ms or 10,000
 * changes, behind the WAL writes of the entries it holds ---- */

static void backend_work(void *arg)
{
    struct node *n = arg;
    failpoint("before_db_commit");
    double t = metrics_now();
    backend_commit_run(n->bjob);
    n->bjob_s = metrics_now() - t;
    failpoint("after_db_commit");
}

static void on_backend_timer(struct loop *l, void *arg);

/* Alone in the configuration, no follower will ever be sent the log: what
 * the db holds need not stay in memory too (raft asks for a newer snapshot
 * should a member be added; maybe_snapshot makes it). */
static void compact_alone(struct node *n)
{
    struct api_raft_conf_state cs;
    raft_conf_state(n->raft, &cs);
    if (cs.n_voters == 1 && !cs.n_learners && cs.voters[0] == n->member_id)
        (void)!raft_compact(n->raft, n->db_index); /* refused until raft saw it persisted: next time */
}

/* ---- backpressure ----
 *
 * A write costs memory from the moment its request is read until the db
 * file holds it: its raft entry, its mvcc value, its backend record, the
 * db's pages.  Normally that is a batch or two; when the disk stalls, the
 * writes that keep coming would pile up without bound.  So past
 * NODE_BACKLOG_HIGH bytes of such writes the server stops reading requests
 * (node_backlogged), and reads again once they are down to
 * NODE_BACKLOG_LOW.  Not while a write is failing for want of space: then
 * reads must go on, and the writes wait in memory as before. */
#define NODE_BACKLOG_HIGH (2u << 20)
#define NODE_BACKLOG_LOW (1u << 20)

static uint64_t node_backlog(const struct node *n)
{
    struct raft_status st;
    raft_status(n->raft, &st);
    return st.uncommitted_bytes + backend_backlog_bytes(n->be);
}

bool node_backlogged(const struct node *n)
{
    return !n->wal_failing && !n->db_failing && node_backlog(n) >= NODE_BACKLOG_HIGH;
}

static void node_backlog_eased(struct node *n)
{
    if (server_reads_paused(n->srv) &&
        (n->wal_failing || n->db_failing || node_backlog(n) <= NODE_BACKLOG_LOW))
        server_resume_reads(n->srv);
}

static void backend_done(struct loop *l, void *arg)
{
    struct node *n = arg;
    int rc = backend_commit_finish(n->be, n->bjob, (int64_t)loop_now_ms(l));
    n->bjob = NULL;
    n->db_failing = rc != 0;
    metrics_observe(&n->commit_hist, n->bjob_s);
    if (rc == 0) {
        n->db_index = n->bjob_index;
        compact_alone(n);
    }
    if (rc == DB_ENOSPC) {
        char fields[256];
        snprintf(fields, sizeof fields, "\"error\":\"%s\"", db_strerror(rc));
        log_line(LOG_WARN, "mvcc/backend/batch_tx.go:181", "backend", "failed to commit the backend, retrying",
                 NULL, fields);
    } else if (rc < 0) {
        char msg[600];
        snprintf(msg, sizeof msg, "failed to commit the backend: %s", backend_errmsg(n->be));
        log_line(LOG_FATAL, "mvcc/backend/batch_tx.go:181", "backend", msg, NULL, NULL);
        exit(1); /* the WAL still holds everything: a restart replays it */
    }
    if (!n->stopping) {
        start_parked(n);
        backend_kick(n);
        maybe_snapshot(n);
        node_backlog_eased(n);
    }
}

static void backend_kick(struct node *n)
{
    if (n->stopping || backend_in_flight(n->be))
        return;
    int64_t now = (int64_t)loop_now_ms(n->loop);
    if (backend_commit_due(n->be, now)) {
        n->bjob = backend_commit_prepare(n->be, now);
        n->bjob_index = n->consistent_index;
        if (n->bjob && loop_work_on(n->loop, LANE_DB, backend_work, backend_done, n) == 0)
            return;
        if (n->bjob) { /* no memory to queue it: commit here instead */
            backend_work(n);
            backend_done(n->loop, n);
            return;
        }
    }
    int64_t d = backend_commit_deadline(n->be);
    if (d == INT64_MAX || n->btimer)
        return;
    n->btimer = loop_timer_add(n->loop, d > now ? (uint64_t)(d - now) : 10, on_backend_timer, n);
}

static void on_backend_timer(struct loop *l, void *arg)
{
    (void)l;
    struct node *n = arg;
    n->btimer = 0;
    backend_kick(n);
}

/* ---- raft snapshots ----
 * As etcd: once snapshot_count entries have applied since the last one, the
 * state is snapshotted at an index the db holds durably (so a restart that
 * starts there misses nothing), the .snap file and the WAL's snapshot
 * record are written on the worker, the WAL segments before it released and
 * old files purged, and raft's log compacted, keeping 5,000 entries for
 * slow followers.  The job owns the WAL: persisting waits for it. */

#define SNAP_CATCHUP_ENTRIES 5000

struct snap_job {
    struct node *n;
    struct api_raft_snapshot snap;
    struct api_raft_snapshot_metadata md;
    struct api_raft_conf_state cs;
    struct mem_buf data; /* the v2 store */
    int rc;              /* 0, or which step failed: -1 file, -2 WAL */
    char err[512];
};

static void snap_work(void *arg)
{
    struct snap_job *j = arg;
    struct node *n = j->n;
    if (snap_save(n->snap_dir, &j->snap, j->err, sizeof j->err) < 0) {
        j->rc = -1;
        return;
    }
    failpoint("before_snap_wal_record");
    int rc = wal_save_snapshot(n->wal, j->md.index, j->md.term);
    failpoint("after_snap_wal_record");
    if (rc < 0) {
        snprintf(j->err, sizeof j->err, "%s", wal_strerror(rc));
        j->rc = -2;
        return;
    }
    wal_release_to(n->wal, j->md.index);
    (void)!wal_purge(n->wal, n->max_wals); /* a file left over goes next time */
    (void)!snap_purge(n->snap_dir, n->max_snapshots);
}

static void snap_job_free(struct snap_job *j)
{
    j->n->snap_job = NULL;
    mem_buf_free(&j->data);
    mem_free(j->cs.voters);
    mem_free(j->cs.learners);
    mem_free(j);
}

static void snap_done(struct loop *l, void *arg)
{
    (void)l;
    struct snap_job *j = arg;
    struct node *n = j->n;
    n->job_running = false;
    char msg[640], fields[640];
    if (j->rc < 0) {
        snprintf(msg, sizeof msg, "failed to save snapshot: %s", j->err);
        snprintf(fields, sizeof fields, "\"error\":\"%s\"", j->err);
        log_line(LOG_ERROR, "etcdserver/server.go:2422", "etcdserver", "failed to save snapshot", msg, fields);
        n->snap_retry_ms = loop_now_ms(n->loop) + 10000; /* a full disk: not at every commit */
    } else {
        n->snap_index = j->md.index;
        snprintf(msg, sizeof msg, "saved snapshot at index %llu", (unsigned long long)j->md.index);
        snprintf(fields, sizeof fields, "\"snapshot-index\":%llu", (unsigned long long)j->md.index);
        log_line(LOG_INFO, "etcdserver/server.go:2430", "etcdserver", "saved snapshot", msg, fields);
        uint64_t ci = j->md.index > SNAP_CATCHUP_ENTRIES ? j->md.index - SNAP_CATCHUP_ENTRIES : 1;
        if (raft_compact(n->raft, ci) == 0) {
            snprintf(msg, sizeof msg, "compacted raft log at %llu", (unsigned long long)ci);
            snprintf(fields, sizeof fields, "\"compact-index\":%llu", (unsigned long long)ci);
            log_line(LOG_INFO, "etcdserver/server.go:2476", "etcdserver", "compacted Raft logs", msg, fields);
        }
    }
    snap_job_free(j);
    if (!n->stopping)
        kick(n);
}

static uint64_t *copy_ids(const uint64_t *v, size_t n)
{
    uint64_t *c = mem_alloc(n ? n * sizeof *c : 1);
    if (c && n)
        memcpy(c, v, n * sizeof *c);
    return c;
}

/* Starts a snapshot when one is due and the WAL is free. */
static void maybe_snapshot(struct node *n)
{
    struct raft_status st;
    raft_status(n->raft, &st);
    if (n->stopping || n->job_running || !n->snapshot_count || n->db_index <= n->snap_index ||
        (n->db_index - n->snap_index <= n->snapshot_count && !st.want_snapshot) ||
        loop_now_ms(n->loop) < n->snap_retry_ms)
        return;
    uint64_t index = n->db_index, term;
    if (raft_term_at(n->raft, index, &term) < 0 || index > st.applied)
        return;
    struct snap_job *j = mem_calloc(1, sizeof *j);
    if (!j)
        return;
    j->n = n;
    struct api_raft_conf_state cs;
    raft_conf_state(n->raft, &cs);
    j->cs.voters = copy_ids(cs.voters, cs.n_voters);
    j->cs.n_voters = cs.n_voters;
    j->cs.learners = copy_ids(cs.learners, cs.n_learners);
    j->cs.n_learners = cs.n_learners;
    j->md = (struct api_raft_snapshot_metadata){.conf_state = &j->cs, .index = index, .term = term};
    if (!j->cs.voters || !j->cs.learners ||
        snap_v2_store(n->members, n->n_members, NULL, 0, n->cluster_version_set ? "3.4.0" : "", &j->data) < 0 ||
        raft_snapshot_create(n->raft, index, &j->cs, j->data.data, j->data.len) < 0) {
        n->job_running = true;
        j->rc = -1;
        snprintf(j->err, sizeof j->err, "out of memory");
        snap_done(n->loop, j);
        return;
    }
    j->snap = (struct api_raft_snapshot){.data = {j->data.data, j->data.len}, .metadata = &j->md};
    char msg[160], fields[160];
    snprintf(msg, sizeof msg, "start to snapshot (applied: %llu, lastsnap: %llu)", (unsigned long long)index,
             (unsigned long long)n->snap_index);
    snprintf(fields, sizeof fields, "\"applied-index\":%llu,\"snapshot-index\":%llu,\"snapshot-count\":%llu",
             (unsigned long long)index, (unsigned long long)n->snap_index, (unsigned long long)n->snapshot_count);
    log_line(LOG_INFO, "etcdserver/server.go:2381", "etcdserver", "triggering snapshot", msg, fields);
    n->job_running = true;
    n->snap_job = j;
    if (loop_work_on(n->loop, LANE_WAL, snap_work, snap_done, j) < 0) {
        j->rc = -1;
        snprintf(j->err, sizeof j->err, "out of memory");
        snap_done(n->loop, j);
    }
}

/* ---- proposing ---- */

static void propose(struct node *n, struct api_internal_raft_req *irr, const struct node_waiter *w)
{
    struct api_request_header hdr = {.ID = lease_idgen_next(&n->reqid)};
    irr->header = &hdr;
    struct mem_buf b = {0};
    if (pb_encode(&api_internal_raft_req_desc, irr, &b) < 0) {
        mem_buf_free(&b);
        return reply_err(w, ERR_NOMEM);
    }
    if (b.len > n->srv->cfg->max_request_bytes) {
        mem_buf_free(&b);
        return reply_err(w, ERR_REQUEST_TOO_LARGE);
    }
    bool waits = w->call || w->fn;
    if (waits && wait_add(n, hdr.ID, w) < 0) {
        mem_buf_free(&b);
        return reply_err(w, ERR_NOMEM);
    }
    int rc = raft_propose(n->raft, b.data, b.len);
    mem_buf_free(&b);
    if (rc < 0) {
        if (waits)
            wait_take(n, hdr.ID);
        return reply_err(w, rc == RAFT_EDROPPED ? ERR_NO_LEADER : ERR_NOMEM);
    }
    kick(n);
}

void node_propose(struct node *n, struct api_internal_raft_req *irr, struct grpc_call *call)
{
    struct node_waiter w = {.call = call};
    propose(n, irr, &w);
}

void node_propose_fn(struct node *n, struct api_internal_raft_req *irr, node_done_fn fn, void *arg)
{
    struct node_waiter w = {.fn = fn, .arg = arg};
    propose(n, irr, &w);
}

/* Bootstrap/restart: the member publishes its name and client URLs (and,
 * the first time, the cluster version) once it leads, as etcd does. */
static void propose_v2_put(struct node *n, const char *path, const char *val, size_t vlen)
{
    static const char put[] = "PUT";
    struct api_v2_request r = {
        .ID = lease_idgen_next(&n->reqid),
        .Method = {(const uint8_t *)put, 3},
        .Path = {(const uint8_t *)path, strlen(path)},
        .Val = {(const uint8_t *)val, vlen},
        .PrevValue = {(const uint8_t *)"", 0},
    };
    struct mem_buf b = {0};
    if (pb_encode(&api_v2_request_desc, &r, &b) == 0 && raft_propose(n->raft, b.data, b.len) == 0)
        kick(n);
    mem_buf_free(&b);
}

static void publish(struct node *n)
{
    struct member *me = member_find(n, n->member_id);
    if (!me)
        return;
    const struct server_config *cfg = n->srv->cfg;
    struct member attrs = {0};
    snprintf(attrs.name, sizeof attrs.name, "%s", cfg->name);
    for (size_t i = 0; i < cfg->n_advertise_client_urls; i++)
        attrs.client_urls[i] = (char *)cfg->advertise_client_urls[i];
    attrs.n_client_urls = cfg->n_advertise_client_urls;
    struct mem_buf b = {0};
    char path[64];
    snprintf(path, sizeof path, "/0/members/%llx/attributes", (unsigned long long)n->member_id);
    if (member_attrs_json(&attrs, &b) == 0)
        propose_v2_put(n, path, (const char *)b.data, b.len);
    mem_buf_free(&b);
    if (!n->cluster_version_set) {
        log_line(LOG_INFO, "etcdserver/server.go:2567", "etcdserver", "setting up initial cluster version",
                 "setting up the initial cluster version to 3.4", "\"cluster-version\":\"3.4\"");
        propose_v2_put(n, "/0/version", "3.4.0", 5);
    }
}

/* ---- the ready cycle ---- */

/* The leader revokes expired leases through raft, in bounded batches (etcd:
 * up to 500 every 500 ms) so thousands expiring at once never stall it. */
static void on_lease_timer(struct loop *l, void *arg)
{
    struct node *n = arg;
    n->lease_timer = 0;
    int64_t ids[500];
    size_t k = lease_expired(n->srv->leases, (int64_t)loop_now_ms(l), ids, 500);
    for (size_t i = 0; i < k; i++) {
        struct api_lease_revoke_req rv = {.ID = ids[i]};
        struct api_internal_raft_req irr = {.lease_revoke = &rv};
        node_propose(n, &irr, NULL);
    }
    if (!n->stopping && n->was_leader)
        n->lease_timer = loop_timer_add(l, 500, on_lease_timer, n);
}

static void on_soft_state(struct node *n, const struct raft_ready *rd)
{
    bool leader = rd->role == RAFT_LEADER;
    if (leader && !n->was_leader) {
        n->leader_changes++;
        /* leases restart with their full TTL plus an election timeout, so
         * none expires just because the old leader is gone */
        lease_promote(n->srv->leases, (int64_t)loop_now_ms(n->loop),
                      (int64_t)n->heartbeat_ms * n->srv->cfg->election_ticks);
        if (!n->lease_timer)
            n->lease_timer = loop_timer_add(n->loop, 500, on_lease_timer, n);
        struct raft_status st;
        raft_status(n->raft, &st);
        char msg[256], fields[256];
        snprintf(msg, sizeof msg, "raft.node: %016llx elected leader %016llx at term %llu",
                 (unsigned long long)n->member_id, (unsigned long long)n->member_id,
                 (unsigned long long)st.term);
        snprintf(fields, sizeof fields, "\"local-member-id\":\"%016llx\",\"elected-leader\":\"%016llx\",\"term\":%llu",
                 (unsigned long long)n->member_id, (unsigned long long)n->member_id,
                 (unsigned long long)st.term);
        log_line(LOG_INFO, "raft/node.go:327", "raft", msg, NULL, fields);
        n->was_leader = true;
        publish(n);
    } else if (!leader && n->was_leader) {
        n->was_leader = false;
        lease_demote(n->srv->leases);
    }
}

static void persist_work(void *arg)
{
    struct node *n = arg;
    const struct raft_ready *rd = &n->rd;
    failpoint("before_wal_save");
    int rc = wal_save(n->wal, rd->has_hard_state ? &rd->hard_state : NULL, rd->entries, rd->n_entries);
    failpoint("after_wal_save");
    n->job_sync_s = -1;
    if (rc == 0 && rd->must_sync) {
        double t = metrics_now();
        rc = wal_sync(n->wal);
        n->job_sync_s = metrics_now() - t;
    }
    failpoint("after_wal_sync");
    n->job_err = rc;
}

/* Applies the ready's committed entries that are durable in our WAL, from
 * n->rd_applied on.  A lone voter's committed entries always are (raft
 * counts the leader only once its write is done), so they are applied and
 * answered while the next batch is still being written. */
static void apply_durable(struct node *n)
{
    size_t i = n->rd_applied;
    while (i < n->rd.n_committed && n->rd.committed[i].Index <= n->persisted_index)
        i++;
    if (i > n->rd_applied)
        apply_entries(n, n->rd.committed + n->rd_applied, i - n->rd_applied);
    n->rd_applied = i;
}

/* A lone voter need not wait out an election timeout (etcd fast-forwards
 * its ticks for the same reason); raft ignores the campaign while conf
 * changes are unapplied, so this is retried after each apply until taken. */
static void campaign_if_alone(struct node *n)
{
    if (!n->campaign_pending || n->n_members != 1)
        return;
    struct raft_status st;
    raft_status(n->raft, &st);
    if (st.role == RAFT_LEADER || st.role == RAFT_CANDIDATE)
        n->campaign_pending = false;
    else if (raft_campaign(n->raft) < 0)
        n->campaign_pending = false;
}

static void finish_ready(struct node *n)
{
    /* messages for peers: a one-member cluster has none to send */
    if (n->rd.n_entries)
        n->persisted_index = n->rd.entries[n->rd.n_entries - 1].Index;
    apply_durable(n);
    n->rd_out = false;
    if (raft_advance(n->raft, &n->rd) < 0)
        log_line(LOG_ERROR, "etcdserver/raft.go:230", "etcdserver", "raft advance failed", NULL, NULL);
    campaign_if_alone(n);
    maybe_snapshot(n);
    kick(n);
    node_backlog_eased(n);
}

static void persist_retry(struct loop *l, void *arg);

static void persist_done(struct loop *l, void *arg)
{
    (void)l;
    struct node *n = arg;
    n->job_running = false;
    if (n->job_sync_s >= 0)
        metrics_observe(&n->fsync_hist, n->job_sync_s);
    n->wal_failing = n->job_err == -ENOSPC;
    if (n->wal_failing) {
        /* nothing of the batch stayed on disk: keep it and try again; reads
         * go on, writes wait (and their clients time out) */
        node_backlog_eased(n);
        char fields[256];
        snprintf(fields, sizeof fields, "\"error\":\"%s\"", wal_strerror(n->job_err));
        log_line(LOG_WARN, "wal/wal.go:702", "wal", "failed to write to WAL, retrying", NULL, fields);
        loop_timer_add(n->loop, 100, persist_retry, n);
        return;
    }
    if (n->job_err < 0) {
        char fields[256], msg[256];
        snprintf(fields, sizeof fields, "\"error\":\"%s\"", wal_strerror(n->job_err));
        snprintf(msg, sizeof msg, "failed to save raft state to WAL: %s", wal_strerror(n->job_err));
        log_line(LOG_FATAL, "etcdserver/raft.go:238", "etcdserver", "failed to save Raft hard state and entries",
                 msg, fields);
        exit(1); /* nothing unsynced was acknowledged: a restart replays the WAL */
    }
    if (n->stopping)
        return;
    finish_ready(n);
}

static void start_persist(struct node *n)
{
    n->job_running = true;
    if (loop_work_on(n->loop, LANE_WAL, persist_work, persist_done, n) < 0) {
        n->job_running = false;
        loop_timer_add(n->loop, 10, persist_retry, n);
    }
}

static void persist_retry(struct loop *l, void *arg)
{
    (void)l;
    struct node *n = arg;
    if (!n->stopping && n->rd_out && !n->job_running)
        start_persist(n);
}

static void run_ready(struct loop *l, void *arg)
{
    (void)l;
    struct node *n = arg;
    n->kick_pending = false;
    if (n->stopping || n->job_running || n->rd_out)
        return;
    if (!raft_has_ready(n->raft)) {
        campaign_if_alone(n); /* a restart with nothing left to apply */
        if (!raft_has_ready(n->raft))
            return;
    }
    if (raft_ready(n->raft, &n->rd) < 0)
        return;
    n->rd_out = true;
    n->rd_applied = 0;
    if (n->rd.soft_changed)
        on_soft_state(n, &n->rd);
    apply_durable(n);
    if (n->rd.n_entries || n->rd.must_sync) {
        start_persist(n);
        return;
    }
    if (n->rd.has_hard_state) {
        /* only the commit index moved: a write to the page cache, no sync
         * (etcd does not sync it either); the worker is idle, so the WAL is
         * ours to use on this thread */
        int rc = wal_save(n->wal, &n->rd.hard_state, NULL, 0);
        if (rc < 0) {
            n->job_err = rc;
            n->job_running = true; /* persist_done handles the error */
            persist_done(n->loop, n);
            return;
        }
    }
    finish_ready(n);
}

static void kick(struct node *n)
{
    if (n->kick_pending || n->stopping)
        return;
    if (loop_defer(n->loop, run_ready, n) == 0)
        n->kick_pending = true;
}

static void on_tick(struct loop *l, void *arg)
{
    struct node *n = arg;
    if (raft_tick(n->raft) == 0)
        kick(n);
    n->tick_timer = loop_timer_add(l, (uint64_t)n->heartbeat_ms, on_tick, n);
}

/* ---- start and stop ---- */

static int mkdir_p(const char *path)
{
    char tmp[2048];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    return mkdir(tmp, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

static int start_new(struct node *n, const struct node_config *cfg, char *err, size_t cap)
{
    n->member_id = cfg->self->id;
    n->cluster_id = member_cluster_id(&n->member_id, 1);
    struct api_metadata md = {.NodeID = n->member_id, .ClusterID = n->cluster_id};
    uint8_t mdbuf[32];
    size_t mdlen = pb_encoded_size(&api_metadata_desc, &md);
    pb_encode_to(&api_metadata_desc, &md, mdbuf, mdlen);
    int rc = wal_create(n->wal_dir, mdbuf, mdlen, &n->wal);
    if (rc < 0) {
        snprintf(err, cap, "create wal error: %s", wal_strerror(rc));
        return -1;
    }
    struct member boot = *cfg->self;
    boot.n_client_urls = 0; /* the bootstrap context carries no client URLs */
    boot.name[0] = 0;
    snprintf(boot.name, sizeof boot.name, "%s", cfg->self->name);
    struct mem_buf ctx = {0};
    if (member_to_json(&boot, &ctx) < 0) {
        snprintf(err, cap, "out of memory");
        return -1;
    }
    struct raft_config rc_cfg = {
        .id = n->member_id,
        .election_tick = cfg->election_ticks,
        .heartbeat_tick = 1,
        .pre_vote = cfg->pre_vote,
        .check_quorum = true,
        .max_size_per_msg = 1024 * 1024,
        .max_inflight = 512,
    };
    if (getrandom(&rc_cfg.seed, sizeof rc_cfg.seed, 0) < 0)
        rc_cfg.seed = (uint64_t)time(NULL);
    struct pb_bytes c = {ctx.data, ctx.len};
    if (raft_new(&rc_cfg, &n->raft) < 0 || raft_bootstrap(n->raft, &n->member_id, &c, 1) < 0) {
        mem_buf_free(&ctx);
        snprintf(err, cap, "cannot start raft");
        return -1;
    }
    mem_buf_free(&ctx);
    return 0;
}

static int recover_members(struct node *n, const struct api_raft_snapshot *snap, char *err, size_t cap)
{
    struct member *ms = mem_calloc(NODE_MAX_MEMBERS, sizeof *ms);
    size_t nm;
    char ver[32];
    if (!ms || snap_v2_members(snap->data.p, snap->data.len, ms, NODE_MAX_MEMBERS, &nm, ver, sizeof ver) < 0) {
        snprintf(err, cap, "failed to recover membership from the snapshot at index %llu",
                 (unsigned long long)snap->metadata->index);
        mem_free(ms);
        return -1;
    }
    for (size_t i = 0; i < nm; i++)
        members_add(n, &ms[i]); /* takes the member's strings */
    mem_free(ms);
    if (ver[0])
        n->cluster_version_set = true;
    return 0;
}

static int start_restart(struct node *n, const struct node_config *cfg, char *err, size_t cap)
{
    struct mem_arena a;
    mem_arena_init(&a, 0);
    struct wal_contents wc;
    memset(&wc, 0, sizeof wc);
    /* start from the newest snapshot the WAL has a record of, as etcd */
    int rc = wal_valid_snapshots(n->wal_dir, &a, &wc);
    if (rc < 0) {
        snprintf(err, cap, "failed to read WAL snapshots: %s: %s", wal_strerror(rc), wc.err);
        mem_arena_free(&a);
        return -1;
    }
    struct api_raft_snapshot snap;
    int found = snap_load(n->snap_dir, wc.snaps, wc.n_snaps, &a, &snap, err, cap);
    if (found < 0) {
        mem_arena_free(&a);
        return -1;
    }
    uint64_t sidx = found ? snap.metadata->index : 0, sterm = found ? snap.metadata->term : 0;
    if (sidx > n->consistent_index) {
        /* etcd's recoverSnapshotBackend: the db must hold the snapshot */
        snprintf(err, cap,
                 "failed to recover v3 backend from snapshot: failed to find database snapshot file "
                 "(snap: snapshot file doesn't exist): db consistent index %llu < snapshot index %llu",
                 (unsigned long long)n->consistent_index, (unsigned long long)sidx);
        mem_arena_free(&a);
        return -1;
    }
    if (found) {
        char msg[160], fields[160];
        snprintf(msg, sizeof msg, "recovered store from snapshot at index %llu", (unsigned long long)sidx);
        snprintf(fields, sizeof fields, "\"snapshot-index\":%llu", (unsigned long long)sidx);
        log_line(LOG_INFO, "etcdserver/server.go:463", "etcdserver", "recovered v2 store from snapshot", msg,
                 fields);
    }
    n->snap_index = sidx;
    /* membership as etcd 3.4 keeps it: the v2 store in the snapshot, then
     * what the WAL replays (conf changes, published attributes); the db's
     * members bucket may be stale (etcdctl snapshot restore leaves the old
     * cluster's there) */
    for (size_t i = 0; i < n->n_members; i++)
        member_free(&n->members[i]);
    n->n_members = 0;
    if (found && recover_members(n, &snap, err, cap) < 0) {
        mem_arena_free(&a);
        return -1;
    }
    memset(&wc, 0, sizeof wc);
    rc = wal_open(n->wal_dir, sidx, sterm, &a, &n->wal, &wc);
    if (rc < 0) {
        snprintf(err, cap, "failed to open WAL: %s: %s", wal_strerror(rc), wc.err);
        mem_arena_free(&a);
        return -1;
    }
    struct api_metadata md = {0};
    if (!wc.metadata.p || pb_decode(&api_metadata_desc, wc.metadata.p, wc.metadata.len, &md, &a) < 0) {
        snprintf(err, cap, "failed to read WAL metadata in %s", n->wal_dir);
        mem_arena_free(&a);
        return -1;
    }
    n->member_id = md.NodeID;
    n->cluster_id = md.ClusterID;
    if (wc.torn) {
        char fields[1200];
        snprintf(fields, sizeof fields, "\"wal-dir\":\"%s\",\"offset\":%llu", n->wal_dir,
                 (unsigned long long)wc.tail_off);
        log_line(LOG_WARN, "wal/repair.go:40", "wal", "repaired torn WAL tail", NULL, fields);
    }
    struct raft_config rc_cfg = {
        .id = n->member_id,
        .election_tick = cfg->election_ticks,
        .heartbeat_tick = 1,
        .pre_vote = cfg->pre_vote,
        .check_quorum = true,
        .max_size_per_msg = 1024 * 1024,
        .max_inflight = 512,
        .hard_state = &wc.hs,
        .entries = wc.ents,
        .n_entries = wc.n_ents,
        .snapshot = found ? &snap : NULL,
        .conf_state = found ? snap.metadata->conf_state : NULL,
    };
    n->persisted_index = wc.n_ents ? wc.ents[wc.n_ents - 1].Index : sidx;
    if (getrandom(&rc_cfg.seed, sizeof rc_cfg.seed, 0) < 0)
        rc_cfg.seed = (uint64_t)time(NULL);
    rc = raft_new(&rc_cfg, &n->raft);
    mem_arena_free(&a); /* raft copied what it keeps */
    if (rc < 0) {
        snprintf(err, cap, "cannot restart raft from %s: %s", n->wal_dir, raft_strerror(rc));
        return -1;
    }
    return 0;
}

/* Opens member/snap/db and rebuilds the stores from it: the keys and their
 * history, leases with their keys, members, the cluster version and the
 * consistent index (the WAL entries up to it are not applied again).  A
 * db without a WAL beside it is stale (etcd would refuse it too, or it is
 * left from a failed bootstrap): it is set aside as db.stale. */
static int open_backend(struct node *n, const struct node_config *cfg, bool restart, char *err, size_t cap)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/member/snap/db", cfg->data_dir);
    if (!restart) {
        char stale[1200];
        snprintf(stale, sizeof stale, "%s.stale", path);
        if (rename(path, stale) < 0 && errno != ENOENT) {
            snprintf(err, cap, "cannot set aside %s: %s", path, strerror(errno));
            return -1;
        }
    }
    struct backend_config bc = {.bc_batch_interval_ms = cfg->backend_batch_ms,
                                .bc_batch_limit = cfg->backend_batch_limit};
    if (backend_open(path, &bc, &n->be, err, cap) < 0)
        return -1;
    struct backend_state st;
    mvcc_set_loader(n->srv->mvcc, &(struct mvcc_loader){backend_value, backend_value_done, n->be});
    int rc = backend_load(n->be, n->srv->mvcc, &st);
    if (rc < 0) {
        snprintf(err, cap, "failed to load the backend: %s", backend_errmsg(n->be));
        return -1;
    }
    n->consistent_index = st.consistent_index;
    n->db_index = n->bjob_index = st.consistent_index;
    int64_t now = (int64_t)loop_now_ms(n->loop);
    for (size_t i = 0; i < st.n_leases; i++)
        if (lease_recover(n->srv->leases, now, st.leases[i].id, st.leases[i].ttl, st.leases[i].remaining_ttl) ==
            -ERR_NOMEM)
            goto nomem;
    for (size_t i = 0; i < st.n_lease_keys; i++)
        if (lease_attach(n->srv->leases, st.lease_keys[i].lease, st.lease_keys[i].key.p,
                         st.lease_keys[i].key.len) == -ERR_NOMEM)
            goto nomem;
    for (size_t i = 0; i < st.n_members; i++) {
        members_add(n, &st.members[i]); /* takes the member's strings */
        memset(&st.members[i], 0, sizeof st.members[i]);
    }
    n->cluster_version_set = st.cluster_version[0] != 0;
    for (size_t i = 0; i < st.n_alarms && n->n_alarms < sizeof n->alarms / sizeof n->alarms[0]; i++)
        n->alarms[n->n_alarms++] = st.alarms[i];
    backend_state_free(&st);
    return 0;
nomem:
    backend_state_free(&st);
    snprintf(err, cap, "out of memory loading the backend");
    return -1;
}

int node_start(struct server *s, const struct node_config *cfg, struct node **out, char *err, size_t cap)
{
    struct node *n = mem_calloc(1, sizeof *n);
    if (!n) {
        snprintf(err, cap, "out of memory");
        return -1;
    }
    n->srv = s;
    n->loop = s->loop;
    n->heartbeat_ms = cfg->heartbeat_ms > 0 ? cfg->heartbeat_ms : 100;
    mem_arena_init(&n->apply_arena, 0);
    n->snapshot_count = cfg->snapshot_count;
    n->max_snapshots = cfg->max_snapshots;
    n->max_wals = cfg->max_wals;
    snprintf(n->wal_dir, sizeof n->wal_dir, "%s/member/wal", cfg->data_dir);
    snprintf(n->snap_dir, sizeof n->snap_dir, "%s/member/snap", cfg->data_dir);
    if (mkdir_p(n->snap_dir) < 0) {
        snprintf(err, cap, "cannot access data directory: mkdir %s: %s", n->snap_dir, strerror(errno));
        goto fail;
    }
    bool restart = wal_exists(n->wal_dir);
    if (open_backend(n, cfg, restart, err, cap) < 0)
        goto fail;
    if ((restart ? start_restart : start_new)(n, cfg, err, cap) < 0)
        goto fail;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lease_idgen_init(&n->reqid, n->member_id, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);

    char msg[256], fields[256];
    snprintf(fields, sizeof fields, "\"local-member-id\":\"%016llx\",\"cluster-id\":\"%016llx\"",
             (unsigned long long)n->member_id, (unsigned long long)n->cluster_id);
    snprintf(msg, sizeof msg, "%s member %016llx in cluster %016llx", restart ? "restarting" : "starting",
             (unsigned long long)n->member_id, (unsigned long long)n->cluster_id);
    log_line(LOG_INFO, "etcdserver/raft.go:536", "etcdserver",
             restart ? "restarting local member" : "starting local member", msg, fields);

    n->tick_timer = loop_timer_add(n->loop, (uint64_t)n->heartbeat_ms, on_tick, n);
    n->campaign_pending = true;
    kick(n);
    *out = n;
    return 0;
fail:
    node_stop(n);
    return -1;
}

void node_stop(struct node *n)
{
    if (!n)
        return;
    n->stopping = true;
    if (n->tick_timer)
        loop_timer_cancel(n->loop, n->tick_timer);
    if (n->lease_timer)
        loop_timer_cancel(n->loop, n->lease_timer);
    /* node_stop runs after loop_run returned: let the worker finish the
     * write in flight before the WAL goes */
    loop_wait_worker(n->loop);
    if (n->snap_job) /* done, but its callback will not run */
        snap_job_free(n->snap_job);
    if (n->wal)
        wal_close(n->wal);
    if (n->btimer)
        loop_timer_cancel(n->loop, n->btimer);
    if (n->be) {
        /* the worker is idle: finish its job here, then commit the rest */
        int64_t now = (int64_t)loop_now_ms(n->loop);
        if (n->bjob)
            (void)!backend_commit_finish(n->be, n->bjob, now);
        for (int tries = 0; tries < 3 && backend_pending(n->be); tries++) {
            struct backend_job *j = backend_commit_prepare(n->be, now);
            if (!j)
                break;
            backend_commit_run(j);
            if (backend_commit_finish(n->be, j, now) < 0)
                break;
        }
        backend_close(n->be);
    }
    for (size_t i = 0; i < n->wait_cap; i++)
        if (n->waits[i].id)
            reply_err(&n->waits[i].w, ERR_STOPPED);
    mem_free(n->waits);
    stop_parked(n);
    for (size_t i = 0; i < n->n_members; i++)
        member_free(&n->members[i]);
    mem_arena_free(&n->apply_arena);
    raft_free(n->raft);
    mem_free(n);
}

/* ---- maintenance on the backend: Hash, HashKV, Defragment, Snapshot ----
 *
 * Each runs on the worker after a commit of everything applied so far, so
 * it sees the latest state and never runs beside a commit.  A request that
 * finds a commit in flight waits for it (parked). */

enum node_mkind { MJ_HASH, MJ_HASH_KV, MJ_DEFRAG, MJ_SNAPSHOT };

#define SNAPSHOT_CHUNK (32 * 1024) /* etcd sends the db in 32 KiB pieces */

struct node_mjob {
    struct node *n;
    struct grpc_call *call; /* NULL once the client is gone */
    enum node_mkind kind;
    int64_t rev;
    struct backend_hash *h;
    int rc;
    char err[256];
    int fd;         /* snapshot: the unlinked temp file holding it */
    uint64_t size, sent;
    struct node_mjob *next;
};

static void mjob_free(struct node_mjob *mj)
{
    if (mj->call)
        grpc_call_set_data(mj->call, NULL);
    if (mj->h)
        backend_hash_free(mj->h);
    if (mj->fd >= 0)
        close(mj->fd);
    mem_free(mj);
}

static void mjob_work(void *arg)
{
    struct node_mjob *mj = arg;
    struct backend *b = mj->n->be;
    switch (mj->kind) {
    case MJ_HASH:
    case MJ_HASH_KV:
        mj->rc = backend_hash_run(mj->h);
        if (mj->rc < 0)
            snprintf(mj->err, sizeof mj->err, "%s", mj->h->bh_err);
        break;
    case MJ_DEFRAG:
        failpoint("before_defrag");
        mj->rc = backend_defrag(b, mj->err, sizeof mj->err);
        failpoint("after_defrag");
        break;
    case MJ_SNAPSHOT:
        mj->rc = backend_snapshot(b, mj->fd, &mj->size, mj->err, sizeof mj->err);
        break;
    }
}

static void snapshot_send(struct loop *l, void *arg);

static void mjob_done(struct loop *l, void *arg)
{
    struct node_mjob *mj = arg;
    struct node *n = mj->n;
    struct grpc_call *call = mj->call;
    if (!call || n->stopping) {
        mjob_free(mj);
        return;
    }
    if (mj->rc < 0) {
        char msg[320];
        snprintf(msg, sizeof msg, "etcdserver: %s", mj->err[0] ? mj->err : db_strerror(mj->rc));
        grpc_call_fail(call, GRPC_INTERNAL, msg);
        mj->call = NULL;
        mjob_free(mj);
        return;
    }
    struct api_header h = {.revision = mj->h ? mj->h->bh_rev : 0};
    fill_header(n, &h);
    switch (mj->kind) {
    case MJ_HASH: {
        struct api_hash_resp resp = {.header = &h, .hash = mj->h->bh_hash};
        grpc_call_reply(call, &api_hash_resp_desc, &resp);
        break;
    }
    case MJ_HASH_KV: {
        struct api_hash_kv_resp resp = {.header = &h, .hash = mj->h->bh_hash,
                                        .compact_revision = mj->h->bh_compact_rev};
        grpc_call_reply(call, &api_hash_kv_resp_desc, &resp);
        break;
    }
    case MJ_DEFRAG: {
        struct api_defragment_resp resp = {.header = &h};
        grpc_call_reply(call, &api_defragment_resp_desc, &resp);
        break;
    }
    case MJ_SNAPSHOT:
        snapshot_send(l, mj);
        return;
    }
    mj->call = NULL;
    mjob_free(mj);
}

/* Streams the snapshot file in etcd's 32 KiB pieces, a few at a time while
 * the client keeps up, so a big db is never all in memory. */
static void snapshot_send(struct loop *l, void *arg)
{
    struct node_mjob *mj = arg;
    struct grpc_call *call = mj->call;
    if (!call || mj->n->stopping) {
        mjob_free(mj);
        return;
    }
    static uint8_t chunk[SNAPSHOT_CHUNK];
    while (mj->sent < mj->size && grpc_call_queued(call) < 4 * SNAPSHOT_CHUNK) {
        size_t want = mj->size - mj->sent < SNAPSHOT_CHUNK ? (size_t)(mj->size - mj->sent) : SNAPSHOT_CHUNK;
        ssize_t r = pread(mj->fd, chunk, want, (off_t)mj->sent);
        if (r <= 0) {
            grpc_call_fail(call, GRPC_INTERNAL, "etcdserver: cannot read the snapshot");
            mj->call = NULL;
            mjob_free(mj);
            return;
        }
        mj->sent += (uint64_t)r;
        struct api_header h = {0};
        fill_header(mj->n, &h);
        struct api_snapshot_resp resp = {.header = &h, .remaining_bytes = mj->size - mj->sent,
                                         .blob = {chunk, (size_t)r}};
        if (grpc_call_send(call, &api_snapshot_resp_desc, &resp) < 0) {
            grpc_call_fail(call, GRPC_UNAVAILABLE, "etcdserver: server stopped");
            mj->call = NULL;
            mjob_free(mj);
            return;
        }
    }
    if (mj->sent == mj->size) {
        grpc_call_fail(call, GRPC_OK, NULL);
        mj->call = NULL;
        mjob_free(mj);
        return;
    }
    loop_timer_add(l, 5, snapshot_send, mj);
}

static void mjob_start(struct node *n, struct node_mjob *mj)
{
    if (backend_in_flight(n->be)) {
        mj->next = n->parked;
        n->parked = mj;
        return;
    }
    int64_t now = (int64_t)loop_now_ms(n->loop);
    if (mj->kind == MJ_HASH || mj->kind == MJ_HASH_KV) {
        int rc = backend_hash_prepare(n->be, n->srv->mvcc, mj->kind == MJ_HASH_KV, mj->rev, &mj->h);
        if (rc < 0) {
            if (mj->call)
                grpc_call_fail(mj->call, (int)err_grpc_code(rc), err_msg(rc));
            mj->call = NULL;
            mjob_free(mj);
            return;
        }
    }
    n->bjob = backend_commit_prepare(n->be, now);
    n->bjob_index = n->consistent_index;
    if (n->bjob && loop_work_on(n->loop, LANE_DB, backend_work, backend_done, n) < 0) {
        backend_work(n);
        backend_done(n->loop, n);
    }
    if (loop_work_on(n->loop, LANE_DB, mjob_work, mjob_done, mj) < 0) {
        if (mj->call)
            grpc_call_fail(mj->call, GRPC_RESOURCE_EXHAUSTED, "etcdserver: out of memory");
        mj->call = NULL;
        mjob_free(mj);
    }
}

/* Shutdown: maintenance calls still waiting for a backend commit end. */
static void stop_parked(struct node *n)
{
    while (n->parked) {
        struct node_mjob *mj = n->parked;
        n->parked = mj->next;
        if (mj->call)
            grpc_call_fail(mj->call, (int)err_grpc_code(ERR_STOPPED), err_msg(ERR_STOPPED));
        mj->call = NULL;
        mjob_free(mj);
    }
}

static void start_parked(struct node *n)
{
    struct node_mjob *list = n->parked;
    n->parked = NULL;
    while (list) {
        struct node_mjob *mj = list;
        list = list->next;
        mj->next = NULL;
        if (!mj->call) {
            mjob_free(mj);
            continue;
        }
        mjob_start(n, mj);
    }
}

void node_maintenance(struct node *n, int kind, int64_t rev, struct grpc_call *call)
{
    struct node_mjob *mj = mem_calloc(1, sizeof *mj);
    if (!mj)
        return grpc_call_fail(call, GRPC_RESOURCE_EXHAUSTED, "etcdserver: out of memory");
    mj->n = n;
    mj->call = call;
    mj->kind = (enum node_mkind)kind;
    mj->rev = rev;
    mj->fd = -1;
    grpc_call_set_data(call, mj);
    if (mj->kind == MJ_SNAPSHOT) {
        mj->fd = open(n->snap_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (mj->fd < 0) {
            char msg[256];
            snprintf(msg, sizeof msg, "etcdserver: cannot create a snapshot file: %s", strerror(errno));
            grpc_call_fail(call, GRPC_INTERNAL, msg);
            mj->call = NULL;
            mjob_free(mj);
            return;
        }
    }
    mjob_start(n, mj);
}

void node_maintenance_gone(struct grpc_call *call)
{
    struct node_mjob *mj = grpc_call_data(call);
    if (mj)
        mj->call = NULL; /* freed when its job or timer next runs */
}

/* ---- queries ---- */

int64_t node_lease_id(struct node *n)
{
    return lease_id_gen(&n->reqid);
}

const struct metrics_hist *node_fsync_hist(const struct node *n)
{
    return &n->fsync_hist;
}

const struct metrics_hist *node_commit_hist(const struct node *n)
{
    return &n->commit_hist;
}

uint64_t node_leader_changes(const struct node *n)
{
    return n->leader_changes;
}

size_t node_pending_proposals(const struct node *n)
{
    return n->n_waits;
}

void node_status(const struct node *n, struct raft_status *st)
{
    raft_status(n->raft, st);
}

uint64_t node_term(const struct node *n)
{
    struct raft_status st;
    raft_status(n->raft, &st);
    return st.term;
}

uint64_t node_member_id(const struct node *n)
{
    return n->member_id;
}

uint64_t node_cluster_id(const struct node *n)
{
    return n->cluster_id;
}

bool node_nospace(const struct node *n)
{
    for (size_t i = 0; i < n->n_alarms; i++)
        if (n->alarms[i].alarm == API_ALARM_NOSPACE)
            return true;
    return false;
}

const struct api_alarm_member *node_alarms(const struct node *n, size_t *count)
{
    *count = n->n_alarms;
    return n->alarms;
}

int64_t node_db_size(const struct node *n)
{
    return backend_size(n->be);
}

int64_t node_db_size_in_use(const struct node *n)
{
    return backend_size_in_use(n->be);
}

const struct member *node_members(const struct node *n, size_t *count)
{
    *count = n->n_members;
    return n->members;
}
