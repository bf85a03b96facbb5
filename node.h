/* node.h - this member's raft node: client writes become raft proposals
 * (etcd's InternalRaftRequest), what raft hands out is persisted to the WAL
 * on the worker thread (group commit: everything proposed while the previous
 * write was in flight shares the next write and fdatasync), committed
 * entries are applied in order to the stores, and each waiting gRPC call is
 * answered only then.  A single-member cluster is raft with one voter: there
 * is no second write path.
 *
 * The data directory is etcd's: <data-dir>/member/wal holds the WAL with
 * etcd's records and entries (the bootstrap conf change, the v2 publish and
 * cluster-version requests, InternalRaftRequests), so a restart replays it,
 * and etcd 3.4 replays it too.
 */
#ifndef ETCD_NODE_H
#define ETCD_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "grpc.h"
#include "member.h"
#include "metrics.h"
#include "raft.h"

struct server;
struct node;

struct node_config {
    const char *data_dir;
    const struct member *self; /* this member as the flags describe it */
    const char *cluster_token;
    int heartbeat_ms;   /* --heartbeat-interval */
    int election_ticks; /* --election-timeout / --heartbeat-interval */
    bool pre_vote;
    uint64_t snapshot_count; /* --snapshot-count: entries between raft snapshots */
    unsigned max_snapshots;  /* --max-snapshots, 0 = keep all */
    unsigned max_wals;       /* --max-wals, 0 = keep all */
    int backend_batch_ms;    /* --backend-batch-interval, 0 = etcd's default */
    int backend_batch_limit; /* --backend-batch-limit, 0 = etcd's default */
};

/* Opens (restart: replays the WAL) or creates (new member: bootstraps a
 * one-member cluster) the data directory and starts ticking.  On restart the
 * member and cluster IDs come from the WAL, as in etcd, whatever the flags
 * say.  0, or -1 with a message in err. */
int node_start(struct server *s, const struct node_config *cfg, struct node **out, char *err,
               size_t cap) __attribute__((warn_unused_result));
/* Waits for the in-flight WAL write, closes the WAL, frees everything.
 * Calls still waiting for their entries fail with "etcdserver: server
 * stopped". */
void node_stop(struct node *n);

/* Proposes irr on behalf of call (NULL: nobody waits); irr->header is set
 * here.  The call is answered when the entry applies, or failed now (no
 * leader, too large, ...). */
void node_propose(struct node *n, struct api_internal_raft_req *irr, struct grpc_call *call);

/* A new lease ID, drawn like etcd from the request ID generator. */
int64_t node_lease_id(struct node *n);
/* For internal callers (the lock and election services): fn(arg, err,
 * resp) runs once, with err 0 and resp pointing to the typed response
 * (struct api_put_resp, api_delete_resp, api_txn_resp, ... as the request)
 * valid during the call, or with err < 0 (-ERR_x) and resp NULL.  It may
 * run before node_propose_fn returns (a proposal refused at once). */
typedef void (*node_done_fn)(void *arg, int err, const void *resp);
void node_propose_fn(struct node *n, struct api_internal_raft_req *irr, node_done_fn fn, void *arg);

/* Whether writes accepted but not yet in the db file are too many: the
 * server reads no requests meanwhile, and is told to read again with
 * server_resume_reads. */
bool node_backlogged(const struct node *n);

/* For /metrics: times this member saw a leader elected, and proposals
 * waiting to be applied. */
uint64_t node_leader_changes(const struct node *n);
size_t node_pending_proposals(const struct node *n);
/* WAL fdatasyncs and backend commits, timed. */
const struct metrics_hist *node_fsync_hist(const struct node *n);
const struct metrics_hist *node_commit_hist(const struct node *n);

/* Raft's view: role, leader, term, commit and applied index. */
void node_status(const struct node *n, struct raft_status *st);
uint64_t node_term(const struct node *n);
uint64_t node_member_id(const struct node *n);
uint64_t node_cluster_id(const struct node *n);
/* Maintenance calls on the backend, answered on call when done: kind 0
 * Hash, 1 HashKV at rev, 2 Defragment, 3 Snapshot (a server stream of the
 * db and etcd's sha256 trailer).  node_maintenance_gone: the stream of a
 * call given here died (its grpc on_end with reset). */
void node_maintenance(struct node *n, int kind, int64_t rev, struct grpc_call *call);
void node_maintenance_gone(struct grpc_call *call);

/* A NOSPACE alarm is active: writes that would grow the store fail. */
bool node_nospace(const struct node *n);
/* The active alarms; valid until the next apply. */
const struct api_alarm_member *node_alarms(const struct node *n, size_t *count);

/* The backend file's size and the part of it in use (Status' dbSize and
 * dbSizeInUse). */
int64_t node_db_size(const struct node *n);
int64_t node_db_size_in_use(const struct node *n);
/* The members as applied, in ID order; valid until the next apply. */
const struct member *node_members(const struct node *n, size_t *count);

#endif
