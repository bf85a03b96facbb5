/* raft.h - the Raft consensus state machine, pure: messages, ticks and
 * proposals in; entries to persist, messages to send and entries to apply
 * out.  No I/O, no clock, no randomness but the seed in the config.
 *
 * Semantics are those of etcd 3.4's raft package (go.etcd.io/etcd/raft):
 * terms and votes, elections with a randomized timeout in
 * [election_tick, 2 * election_tick), PreVote and CheckQuorum, log matching
 * with reject hints, commitment of current-term entries by counting, the
 * leader's empty entry on election, heartbeats carrying the commit index,
 * ReadIndex (ReadOnlySafe), probe/replicate progress with an in-flight
 * window, snapshots, one-at-a-time membership changes (ConfChange v1;
 * joint consensus is not supported), learners and leader transfer.
 * Messages are raftpb.Message as struct api_raft_message, so the transport
 * pb_encodes them with api_raft_message_desc and talks to real etcd members.
 *
 * Deliberate differences from etcd 3.4: the leader counts its own log
 * towards the commit quorum only once the caller has persisted it (reported
 * by raft_advance), as the Raft thesis (section 10.2.1) allows when the
 * leader writes in parallel with replication.  A lone voter therefore
 * commits exactly what it has persisted: propose -> raft_ready (entries to
 * persist) -> raft_advance -> raft_ready (the same entries, committed, to
 * apply).  For the same reason a lone voter, like any leader, answers
 * ReadIndex only after it has committed an entry of its term.  Read
 * requests pending at a leader are dropped when it loses leadership.
 *
 * The cycle, run by one thread:
 *
 *     raft_tick / raft_step / raft_propose / ...   any number of times
 *     if (raft_has_ready(r)) {
 *         raft_ready(r, &rd);
 *         persist rd.snapshot, rd.entries, rd.hard_state (fsync if must_sync)
 *         send rd.msgs
 *         apply rd.snapshot, then rd.committed (raft_apply_conf_change for
 *             API_ENTRY_CONF_CHANGE entries), serve rd.read_states
 *         raft_advance(r, &rd);
 *     }
 *
 * Any call but raft_ready may be made between raft_ready and raft_advance
 * (new work then shows up in the next ready).  Messages must leave only
 * after the state in the same ready is durable; the one exception is the
 * MsgApp/MsgHeartbeat/MsgSnap of a ready whose role is RAFT_LEADER, which
 * may go out while that write is in flight: the leader counts itself only
 * after raft_advance, and its term and vote were made durable before it
 * could ask for votes.
 *
 * Memory: raft owns a copy of every entry from the last compaction point on
 * (raft_compact bounds it), of the latest snapshot, and of what the pending
 * messages point to.  Everything a struct raft_ready points to stays valid
 * until raft_advance, even across other calls.  Pointers passed in are read
 * during the call only.
 *
 * Errors: 0 or a negative enum raft_err.  RAFT_ENOMEM is sticky: after it
 * every call returns it and only raft_free is useful (restart the member
 * from its persisted state).  Input from peers is never trusted: malformed
 * messages are dropped, not asserted on.
 */
#ifndef ETCD_RAFT_H
#define ETCD_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api.h"

#define RAFT_MUST_CHECK __attribute__((warn_unused_result))

/* raftpb.MessageType, same numbers. */
enum raft_msg_type {
    RAFT_MSG_HUP = 0,
    RAFT_MSG_BEAT = 1,
    RAFT_MSG_PROP = 2,
    RAFT_MSG_APP = 3,
    RAFT_MSG_APP_RESP = 4,
    RAFT_MSG_VOTE = 5,
    RAFT_MSG_VOTE_RESP = 6,
    RAFT_MSG_SNAP = 7,
    RAFT_MSG_HEARTBEAT = 8,
    RAFT_MSG_HEARTBEAT_RESP = 9,
    RAFT_MSG_UNREACHABLE = 10,
    RAFT_MSG_SNAP_STATUS = 11,
    RAFT_MSG_CHECK_QUORUM = 12,
    RAFT_MSG_TRANSFER_LEADER = 13,
    RAFT_MSG_TIMEOUT_NOW = 14,
    RAFT_MSG_READ_INDEX = 15,
    RAFT_MSG_READ_INDEX_RESP = 16,
    RAFT_MSG_PRE_VOTE = 17,
    RAFT_MSG_PRE_VOTE_RESP = 18,
};

/* etcd's raft.StateType, same numbers. */
enum raft_role {
    RAFT_FOLLOWER = 0,
    RAFT_CANDIDATE = 1,
    RAFT_LEADER = 2,
    RAFT_PRE_CANDIDATE = 3,
};

/* tracker.StateType, same numbers. */
enum raft_progress_state {
    RAFT_PROGRESS_PROBE = 0,
    RAFT_PROGRESS_REPLICATE = 1,
    RAFT_PROGRESS_SNAPSHOT = 2,
};

#define RAFT_ERR_TABLE(X)                                                            \
    X(ENOMEM, -1, "raft: out of memory")                                             \
    X(EDROPPED, -2, "raft proposal dropped")                                         \
    X(EINVAL, -3, "raft: invalid argument")                                          \
    X(ELOCAL, -4, "raft: cannot step raft local message")                            \
    X(EPEER, -5, "raft: cannot step as peer not found")                              \
    X(EBUSY, -6, "raft: previous ready not advanced")                                \
    X(ECOMPACTED, -7, "requested index is unavailable due to compaction")

enum raft_err {
    RAFT_OK = 0,
#define RAFT_ERR_ENUM(name, val, msg) RAFT_##name = val,
    RAFT_ERR_TABLE(RAFT_ERR_ENUM)
#undef RAFT_ERR_ENUM
};

/* Text for a raft_err; "unknown raft error" for anything else. */
const char *raft_strerror(int err);

struct raft_config {
    uint64_t id;        /* this member; not 0 */
    int election_tick;  /* > heartbeat_tick; etcd: 10 */
    int heartbeat_tick; /* > 0; etcd: 1 */
    bool pre_vote;      /* thesis 9.6; etcd server: --pre-vote */
    bool check_quorum;  /* leader steps down without a quorum for an election
                           timeout; votes within a leader lease are ignored */
    uint64_t max_size_per_msg;     /* entry bytes per MsgApp; 0 = one entry */
    uint64_t max_committed_size;   /* entry bytes per ready; 0 = max_size_per_msg */
    uint64_t max_uncommitted_size; /* leader drops proposals beyond this many
                                      uncommitted payload bytes; 0 = no limit */
    size_t max_inflight;           /* MsgApps in flight per follower; > 0 */
    uint64_t seed;                 /* seeds the election-timeout randomness */

    /* Restart state (all zero/NULL for a new member, which then either
     * raft_bootstrap()s a new cluster or waits to hear from a leader).
     * snapshot: the last persisted snapshot; the log starts after its index.
     * hard_state, entries: what was persisted (entries at or below the
     * snapshot index are skipped, a later entry with a lower index replaces
     * the tail, as etcd's WAL reader does).  conf_state: the configuration
     * as of `applied` (the snapshot's when applied is its index; empty when
     * there is no snapshot and applied is 0: the committed ConfChange entries
     * are then delivered again and re-applied).  applied: the last index the
     * caller's state machine holds (0 = the snapshot's index). */
    const struct api_raft_snapshot *snapshot;
    const struct api_raft_hard_state *hard_state;
    const struct api_raft_entry *entries;
    size_t n_entries;
    const struct api_raft_conf_state *conf_state;
    uint64_t applied;
};

struct raft;

/* 0 and *out, RAFT_EINVAL (bad config or inconsistent restart state:
 * commit outside the log, gaps in the entries, joint ConfState) or
 * RAFT_ENOMEM.  The member starts as a follower with no leader. */
int raft_new(const struct raft_config *c, struct raft **out) RAFT_MUST_CHECK;
void raft_free(struct raft *r);

/* Start a new cluster, as etcd's RawNode.Bootstrap: at term 1, one
 * committed ConfChangeAddNode entry per peer (contexts[i] is its Context,
 * etcd: the member as JSON; contexts may be NULL), the configuration already
 * applied.  The entries come out in the next ready, to persist and apply.
 * RAFT_EINVAL if n == 0, an id is 0 or the member is not new. */
int raft_bootstrap(struct raft *r, const uint64_t *ids, const struct pb_bytes *contexts,
                   size_t n) RAFT_MUST_CHECK;

/* ---- input ---- */

/* One tick of the logical clock (etcd: 100 ms).  0. */
int raft_tick(struct raft *r) RAFT_MUST_CHECK;
/* A message from a peer.  RAFT_ELOCAL for local-only types, RAFT_EPEER for
 * a response from a member not in the configuration, RAFT_EDROPPED for a
 * forwarded proposal or read request this member cannot take, RAFT_EINVAL
 * for an unknown type; 0 otherwise (including messages ignored as stale or
 * malformed). */
int raft_step(struct raft *r, const struct api_raft_message *m) RAFT_MUST_CHECK;
/* Propose data (copied) as a normal entry.  0 when appended (leader) or
 * forwarded to the leader; RAFT_EDROPPED when there is no leader, a leader
 * transfer is in progress, this leader was removed, or the uncommitted
 * limit is reached. */
int raft_propose(struct raft *r, const void *data, size_t len) RAFT_MUST_CHECK;
/* Propose a membership change (encoded as raftpb.ConfChange in an
 * API_ENTRY_CONF_CHANGE entry).  As raft_propose; like etcd, a leader that
 * still has an unapplied ConfChange replaces this one with an empty normal
 * entry (returning 0). */
int raft_propose_conf_change(struct raft *r, const struct api_raft_conf_change *cc)
    RAFT_MUST_CHECK;
/* Ask for a linearizable read point; ctx (copied, non-empty, unique per
 * request) comes back with the index in a ready's read_states once the
 * leader has confirmed its leadership.  0 when under way; RAFT_EDROPPED
 * when there is no leader or this member is a candidate (retry later). */
int raft_read_index(struct raft *r, const void *ctx, size_t len) RAFT_MUST_CHECK;
/* Start an election now (etcd's Campaign).  0; a no-op for a leader, a
 * learner or a member with unapplied ConfChanges. */
int raft_campaign(struct raft *r) RAFT_MUST_CHECK;
/* Ask the leader to hand leadership to `transferee` (thesis 3.10); from a
 * follower the request is forwarded.  0. */
int raft_transfer_leader(struct raft *r, uint64_t transferee) RAFT_MUST_CHECK;
/* The transport failed to reach `id`: the leader probes it again.  0. */
int raft_report_unreachable(struct raft *r, uint64_t id) RAFT_MUST_CHECK;
/* A MsgSnap to `id` was delivered (failed = false) or not.  0. */
int raft_report_snapshot(struct raft *r, uint64_t id, bool failed) RAFT_MUST_CHECK;

/* Apply a committed ConfChange (call it while applying its entry; a caller
 * that rejects the change passes NodeID 0 instead, as etcd's server does).
 * AddNode adds a voter or promotes a learner, AddLearnerNode adds a learner
 * or demotes a voter, RemoveNode removes, UpdateNode changes nothing.
 * Fills *cs (may be NULL) with the resulting configuration, pointing into
 * raft memory valid until the next configuration change.  RAFT_EINVAL
 * (configuration unchanged) if the change would leave no voter or the type
 * is unknown. */
int raft_apply_conf_change(struct raft *r, const struct api_raft_conf_change *cc,
                           struct api_raft_conf_state *cs) RAFT_MUST_CHECK;

/* ---- output ---- */

struct raft_read_state {
    uint64_t index;      /* serve the read once applied >= index */
    struct pb_bytes ctx; /* as given to raft_read_index */
};

struct raft_ready {
    /* soft state, always filled; soft_changed when either moved since the
     * previous ready */
    uint64_t lead;
    enum raft_role role;
    bool soft_changed;

    /* persist, in this order, before sending (see the top of this file) */
    const struct api_raft_snapshot *snapshot; /* from the leader, or NULL; raft's
                                                 log now starts after it, so the
                                                 persisted entries go too */
    const struct api_raft_entry *entries;     /* append; entries[0].Index may
                                                 be <= the persisted last index:
                                                 the tail from there is replaced */
    size_t n_entries;
    struct api_raft_hard_state hard_state;
    bool has_hard_state; /* hard_state changed since the previous ready */
    bool must_sync;      /* entries, term or vote changed: fsync before sending */

    /* send */
    struct api_raft_message *msgs;
    size_t n_msgs;

    /* apply, in order (after persisting) */
    const struct api_raft_entry *committed;
    size_t n_committed;
    const struct raft_read_state *read_states;
    size_t n_read_states;
};

/* Whether raft_ready would return anything; false while a ready is out. */
bool raft_has_ready(const struct raft *r);
/* Fill *rd (see struct raft_ready).  0; RAFT_EBUSY if the previous ready
 * was not advanced; RAFT_ENOMEM. */
int raft_ready(struct raft *r, struct raft_ready *rd) RAFT_MUST_CHECK;
/* rd (as returned by raft_ready) was persisted, sent and applied.  0;
 * RAFT_EINVAL if no ready is out. */
int raft_advance(struct raft *r, const struct raft_ready *rd) RAFT_MUST_CHECK;

/* ---- snapshots and compaction ---- */

/* Record a snapshot of the caller's state machine at `index` (<= applied,
 * not compacted away), whose configuration is *cs, with `data` (copied);
 * raft sends it to followers that need entries it no longer has.  0;
 * RAFT_EINVAL if index is beyond applied or older than the current
 * snapshot; RAFT_ECOMPACTED if the term at index is gone. */
int raft_snapshot_create(struct raft *r, uint64_t index, const struct api_raft_conf_state *cs,
                         const void *data, size_t len) RAFT_MUST_CHECK;
/* The latest snapshot (created, received or restarted from), NULL if none;
 * valid until the snapshot changes and the ready after that is advanced. */
const struct api_raft_snapshot *raft_snapshot(const struct raft *r);
/* Drop the entries up to `index`, which must be persisted, applied and
 * covered by the snapshot, unless this member is the configuration's only
 * one: then no follower needs them, and should one be added later, raft
 * asks for a newer snapshot (raft_status' want_snapshot) before it sends
 * it any.  0 (also when already compacted); RAFT_EINVAL. */
int raft_compact(struct raft *r, uint64_t index) RAFT_MUST_CHECK;

/* ---- status ---- */

struct raft_status {
    uint64_t id, term, vote, lead, commit, applied;
    uint64_t first_index, last_index; /* entries held in memory */
    uint64_t lead_transferee;         /* 0 = none */
    enum raft_role role;
    bool learner;
    bool want_snapshot; /* a follower needs entries the log no longer holds,
                           and the snapshot does not reach them: create a
                           newer one (raft_snapshot_create) */
    size_t log_bytes; /* entry data held */
    uint64_t uncommitted_bytes; /* entry data proposed and not yet applied */
};

void raft_status(const struct raft *r, struct raft_status *st);

struct raft_progress_info {
    uint64_t match, next;
    enum raft_progress_state state;
    bool learner, recent_active;
};

/* Leader's view of member `id`.  0, or RAFT_EPEER if `id` is not a member. */
int raft_progress(const struct raft *r, uint64_t id, struct raft_progress_info *out)
    RAFT_MUST_CHECK;
/* The current configuration, pointing into raft memory valid until the
 * next configuration change. */
void raft_conf_state(const struct raft *r, struct api_raft_conf_state *cs);
/* Term of the entry at `index`: 0, or RAFT_ECOMPACTED, or RAFT_EINVAL
 * beyond the last index. */
int raft_term_at(const struct raft *r, uint64_t index, uint64_t *term) RAFT_MUST_CHECK;

#endif
