/* raft.c - the Raft consensus state machine (see raft.h).
 *
 * Owns: term, vote and role; the log in memory from the last compaction
 * point on, persisted and not yet persisted entries alike, with the commit
 * and apply cursors; the latest snapshot; the leader's per-member progress
 * (probe/replicate/snapshot, in-flight window) and votes; ReadIndex
 * bookkeeping; the outgoing messages and the ready/advance handshake.  The
 * code follows go.etcd.io/etcd/raft (raft.go, log.go, log_unstable.go,
 * read_only.go, tracker/, quorum/, confchange/) function by function, so
 * the names of etcd's functions appear in the comments to compare against.
 *
 * Does not own: durability (the caller persists what a ready hands out and
 * gives it back on restart), the transport, the state machine, time and
 * randomness (ticks and a seed come in), logging (the caller reports
 * leader changes from the ready's soft state), joint consensus
 * (ConfChangeV2 and ReadOnlyLeaseBased are not implemented).
 *
 * Memory: every entry's data and the snapshot live in "blobs"; queued and
 * handed-out messages point into them without copying.  A blob released
 * while such messages may still exist (log truncation, compaction, a newer
 * snapshot) is put on the dead list of the outbox collecting messages at
 * that moment, and freed only when that outbox has gone out in a ready and
 * been advanced: by then no message can refer to it.
 */
#include "raft.h"

#include <assert.h>
#include <stddef.h>
#include <string.h>

#include "mem.h"
#include "pb.h"

/* Queued ReadIndex requests per queue; beyond, requests are dropped and the
 * requester retries (etcd's server retries after a timeout anyway). */
#define RAFT_MAX_READS 4096

enum raft_campaign_type {
    RAFT_CAMPAIGN_PRE_ELECTION,
    RAFT_CAMPAIGN_ELECTION,
    RAFT_CAMPAIGN_TRANSFER,
};

enum raft_vote_result { RAFT_VOTE_PENDING, RAFT_VOTE_WON, RAFT_VOTE_LOST };

/* etcd marks a leader-transfer election with this context so that voters
 * ignore their leader lease (raft.go campaignTransfer). */
static const uint8_t raft_ctx_transfer[] = "CampaignTransfer";
#define RAFT_CTX_TRANSFER_LEN (sizeof raft_ctx_transfer - 1)

/* ---- types ---- */

struct raft_blob {
    struct raft_blob *b_next; /* link on an outbox's dead list */
    uint64_t b_data[];        /* payload, 8-byte aligned */
};

/* etcd's raftLog + unstable, without the Storage split: all entries from
 * g_first on are here; those below g_unstable are persisted. */
struct raft_log {
    struct api_raft_entry *g_ents; /* owned; entry i at g_ents[g_head + i - g_first];
                                      each Data.p is a blob or NULL */
    size_t g_head, g_n, g_cap;
    uint64_t g_first;     /* >= 1 */
    uint64_t g_prev_term; /* term of entry g_first - 1 (the compaction point) */
    uint64_t g_unstable;  /* first index not yet persisted */
    uint64_t g_committed, g_applied;
    size_t g_bytes;       /* data bytes held */
};

/* tracker.Progress plus this member's vote in the current election. */
struct raft_progress {
    uint64_t p_id, p_match, p_next;
    uint64_t p_pending_snap; /* index of the snapshot in flight */
    uint64_t *p_infl;        /* owned ring of r_max_inflight last-indexes of
                                MsgApps in flight (tracker.Inflights) */
    size_t p_infl_start, p_infl_count;
    enum raft_progress_state p_state;
    bool p_recent_active, p_probe_sent, p_learner;
    int8_t p_vote; /* 0 none, 1 granted, -1 rejected */
};

/* A ReadIndex request (read_only.go readIndexStatus). */
struct raft_read {
    uint64_t rr_from;  /* 0 or our id: local */
    uint64_t rr_index; /* commit index when it arrived */
    uint8_t *rr_ctx;   /* owned */
    size_t rr_len;
    uint64_t *rr_acks; /* owned: ids that answered the heartbeat round */
    size_t rr_n_acks;
};

/* What one ready hands out.  Two of them alternate: one collects while the
 * other is out with the caller. */
struct raft_outbox {
    struct mem_arena o_arena; /* message entry arrays, contexts, ready copies */
    struct api_raft_message *o_msgs; /* owned */
    size_t o_n_msgs, o_cap_msgs;
    struct raft_read_state *o_reads; /* owned */
    size_t o_n_reads, o_cap_reads;
    struct raft_blob *o_dead; /* freed when this outbox is released */
};

struct raft {
    uint64_t r_id;
    uint64_t r_term, r_vote, r_lead;
    uint64_t r_transferee;
    uint64_t r_pending_conf_index;
    uint64_t r_uncommitted_size;
    enum raft_role r_role;
    bool r_learner;
    int r_err; /* sticky RAFT_ENOMEM */

    int r_election_timeout, r_heartbeat_timeout, r_randomized_timeout;
    int r_election_elapsed, r_heartbeat_elapsed;
    bool r_pre_vote, r_check_quorum;
    uint64_t r_max_msg_size, r_max_committed_size, r_max_uncommitted;
    size_t r_max_inflight;
    uint64_t r_rand;

    struct raft_log r_log;

    struct raft_progress *r_prs; /* owned, sorted by id */
    size_t r_n_prs, r_cap_prs;
    uint64_t *r_cs_voters, *r_cs_learners; /* owned: raft_conf_state's arrays */
    size_t r_cs_n_voters, r_cs_n_learners;

    struct api_raft_snapshot *r_snap; /* inside a blob, or NULL */
    bool r_snap_pending;              /* received: the next ready hands it out */
    bool r_want_snap;                 /* a follower needs a snapshot newer than r_snap */

    struct raft_read *r_reads; /* owned: waiting for heartbeat acks */
    size_t r_n_reads, r_cap_reads;
    struct raft_read *r_reads_wait; /* owned: waiting for a commit in this term */
    size_t r_n_reads_wait, r_cap_reads_wait;

    struct raft_outbox r_out[2];
    int r_cur; /* collecting outbox */
    bool r_ready_out;
    struct api_raft_hard_state r_prev_hs;
    uint64_t r_prev_lead;
    enum raft_role r_prev_role;
};

/* ---- prototypes ---- */

static void raft_fail(struct raft *r);
static void *raft_grow(void *arr, size_t *cap, size_t need, size_t size);
static void *raft_blob_new(struct raft *r, size_t n);
static void raft_bury(struct raft *r, const void *p);
static void raft_outbox_release(struct raft_outbox *o);
static void *raft_adup(struct raft *r, const void *p, size_t n);
static uint64_t raft_entry_size(const struct api_raft_entry *e);

static uint64_t raft_log_last(const struct raft_log *g);
static const struct api_raft_entry *raft_log_ent(const struct raft_log *g, uint64_t i);
static bool raft_log_term(const struct raft_log *g, uint64_t i, uint64_t *t);
static uint64_t raft_log_term0(const struct raft_log *g, uint64_t i);
static uint64_t raft_log_last_term(const struct raft_log *g);
static bool raft_log_match(const struct raft_log *g, uint64_t i, uint64_t term);
static bool raft_log_up_to_date(const struct raft_log *g, uint64_t lasti, uint64_t term);
static bool raft_log_reserve(struct raft *r, size_t total);
static bool raft_log_append(struct raft *r, const struct api_raft_entry *ents, size_t n);
static bool raft_log_slice(struct raft *r, uint64_t lo, uint64_t hi, uint64_t max_size,
                           struct api_raft_entry **out, size_t *n);
static void raft_log_commit_to(struct raft_log *g, uint64_t tocommit);
static void raft_log_compact(struct raft *r, uint64_t index);
static void raft_log_clear(struct raft *r, uint64_t index, uint64_t term);

static struct raft_progress *raft_pr(const struct raft *r, uint64_t id);
static bool raft_pr_paused(const struct raft *r, const struct raft_progress *pr);
static void raft_pr_reset_state(struct raft_progress *pr, enum raft_progress_state st);
static void raft_pr_become_probe(struct raft_progress *pr);
static void raft_pr_become_replicate(struct raft_progress *pr);
static bool raft_pr_maybe_update(struct raft_progress *pr, uint64_t n);
static bool raft_pr_maybe_decr_to(struct raft_progress *pr, uint64_t rejected, uint64_t last);
static void raft_infl_free_le(const struct raft *r, struct raft_progress *pr, uint64_t to);
static struct raft_progress *raft_pr_add(struct raft *r, uint64_t id, bool learner);
static void raft_pr_remove(struct raft *r, uint64_t id);
static void raft_prs_clear(struct raft *r);
static bool raft_config_changed(struct raft *r);
static size_t raft_n_voters(const struct raft *r);
static uint64_t raft_quorum_index(const struct raft *r);
static enum raft_vote_result raft_tally(const struct raft *r);
static bool raft_quorum_active(const struct raft *r);
static bool raft_acks_quorum(const struct raft *r, const struct raft_read *rd);
static bool raft_promotable(const struct raft *r);
static int raft_config_restore(struct raft *r, const struct api_raft_conf_state *cs);

static void raft_send(struct raft *r, struct api_raft_message m);
static bool raft_maybe_send_append(struct raft *r, struct raft_progress *pr, bool send_if_empty);
static void raft_bcast_append(struct raft *r);
static void raft_bcast_heartbeat(struct raft *r, const uint8_t *ctx, size_t len);
static void raft_send_timeout_now(struct raft *r, uint64_t to);

static void raft_reset_randomized_timeout(struct raft *r);
static void raft_reset(struct raft *r, uint64_t term);
static void raft_become_follower(struct raft *r, uint64_t term, uint64_t lead);
static void raft_become_candidate(struct raft *r);
static void raft_become_pre_candidate(struct raft *r);
static void raft_become_leader(struct raft *r);
static void raft_campaign_start(struct raft *r, enum raft_campaign_type t);
static void raft_hup(struct raft *r);
static enum raft_vote_result raft_poll(struct raft *r, uint64_t id, bool granted);
static bool raft_maybe_commit(struct raft *r);
static void raft_committed_advanced(struct raft *r);
static bool raft_append_entries_local(struct raft *r, struct api_raft_entry *ents, size_t n);

static bool raft_is_vote(int32_t t);
static int raft_step_msg(struct raft *r, const struct api_raft_message *m);
static void raft_check_quorum(struct raft *r);
static int raft_step_leader(struct raft *r, const struct api_raft_message *m);
static int raft_step_candidate(struct raft *r, const struct api_raft_message *m);
static int raft_step_follower(struct raft *r, const struct api_raft_message *m);
static int raft_forward(struct raft *r, const struct api_raft_message *m);
static void raft_handle_append(struct raft *r, const struct api_raft_message *m);
static void raft_handle_heartbeat(struct raft *r, const struct api_raft_message *m);
static void raft_handle_snapshot(struct raft *r, const struct api_raft_message *m);
static bool raft_restore(struct raft *r, const struct api_raft_snapshot *s);
static struct api_raft_snapshot *raft_snap_copy(struct raft *r, uint64_t index, uint64_t term,
                                                const struct api_raft_conf_state *cs,
                                                const void *data, size_t len, bool has_data);
static void raft_snap_set(struct raft *r, struct api_raft_snapshot *s);

static void raft_reads_free(struct raft_read *v, size_t *n);
static bool raft_read_push(struct raft *r, struct raft_read **v, size_t *n, size_t *cap,
                           uint64_t from, uint64_t index, const uint8_t *ctx, size_t len);
static int raft_read_request(struct raft *r, uint64_t from, const uint8_t *ctx, size_t len);
static void raft_read_serve(struct raft *r, uint64_t from, const uint8_t *ctx, size_t len);
static void raft_read_respond(struct raft *r, uint64_t from, uint64_t index, const uint8_t *ctx,
                              size_t len);
static void raft_read_ack(struct raft *r, uint64_t from, const uint8_t *ctx, size_t len);
static bool raft_committed_in_term(const struct raft *r);

static int raft_encode_cc(struct raft *r, const struct api_raft_conf_change *cc,
                          struct mem_buf *out);

/* ---- small helpers ---- */

static void raft_fail(struct raft *r)
{
    if (!r->r_err)
        r->r_err = RAFT_ENOMEM;
}

/* arr grown to hold `need` elements of `size` bytes: the (possibly moved)
 * array, or NULL on OOM with arr and *cap untouched. */
static void *raft_grow(void *arr, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return arr;
    size_t n = *cap ? *cap : 4;
    while (n < need)
        n *= 2;
    void *p = mem_realloc(arr, n * size);
    if (p)
        *cap = n;
    return p;
}

static void *raft_blob_new(struct raft *r, size_t n)
{
    struct raft_blob *b = mem_alloc(sizeof *b + (n ? n : 1));
    if (!b) {
        raft_fail(r);
        return NULL;
    }
    b->b_next = NULL;
    return b->b_data;
}

/* Messages queued or handed out may point into p: it is freed with the
 * outbox collecting now, which is released only after everything queued
 * before this moment has gone out and been advanced. */
static void raft_bury(struct raft *r, const void *p)
{
    if (!p)
        return;
    struct raft_blob *b = (struct raft_blob *)((uintptr_t)p - offsetof(struct raft_blob, b_data));
    struct raft_outbox *o = &r->r_out[r->r_cur];
    b->b_next = o->o_dead;
    o->o_dead = b;
}

static void raft_outbox_release(struct raft_outbox *o)
{
    while (o->o_dead) {
        struct raft_blob *b = o->o_dead;
        o->o_dead = b->b_next;
        mem_free(b);
    }
    mem_arena_reset(&o->o_arena);
    o->o_n_msgs = 0;
    o->o_n_reads = 0;
}

/* Copy into the collecting outbox; lives until that outbox is released. */
static void *raft_adup(struct raft *r, const void *p, size_t n)
{
    void *d = mem_arena_dup(&r->r_out[r->r_cur].o_arena, p, n);
    if (!d)
        raft_fail(r);
    return d;
}

/* Encoded size of a raftpb.Entry (gogoproto's Entry.Size()), which etcd
 * uses for its message and ready size limits. */
static uint64_t raft_entry_size(const struct api_raft_entry *e)
{
    uint64_t n = 3 + pb_varint_size((uint64_t)(int64_t)e->Type) + pb_varint_size(e->Term) +
                 pb_varint_size(e->Index);
    if (e->Data.p)
        n += 1 + pb_varint_size(e->Data.len) + e->Data.len;
    return n;
}

const char *raft_strerror(int err)
{
    switch (err) {
    case RAFT_OK:
        return "ok";
#define RAFT_ERR_TEXT(name, val, msg) \
    case RAFT_##name:                 \
        return msg;
        RAFT_ERR_TABLE(RAFT_ERR_TEXT)
#undef RAFT_ERR_TEXT
    }
    return "unknown raft error";
}

/* ---- the log (log.go, log_unstable.go) ---- */

static uint64_t raft_log_last(const struct raft_log *g)
{
    return g->g_first + g->g_n - 1;
}

static const struct api_raft_entry *raft_log_ent(const struct raft_log *g, uint64_t i)
{
    return &g->g_ents[g->g_head + (size_t)(i - g->g_first)];
}

/* raftLog.term: false when i is compacted away; 0 past the end. */
static bool raft_log_term(const struct raft_log *g, uint64_t i, uint64_t *t)
{
    *t = 0;
    if (i < g->g_first - 1)
        return false;
    if (i == g->g_first - 1)
        *t = g->g_prev_term;
    else if (i <= raft_log_last(g))
        *t = raft_log_ent(g, i)->Term;
    return true;
}

/* raftLog.zeroTermOnErrCompacted(raftLog.term(i)) */
static uint64_t raft_log_term0(const struct raft_log *g, uint64_t i)
{
    uint64_t t;
    raft_log_term(g, i, &t);
    return t;
}

static uint64_t raft_log_last_term(const struct raft_log *g)
{
    return raft_log_term0(g, raft_log_last(g));
}

/* raftLog.matchTerm, except that an index past the end never matches: etcd
 * reports term 0 there, which a peer could exploit with logTerm 0 to make
 * us append after a gap. */
static bool raft_log_match(const struct raft_log *g, uint64_t i, uint64_t term)
{
    uint64_t t;
    return i <= raft_log_last(g) && raft_log_term(g, i, &t) && t == term;
}

/* raftLog.isUpToDate: the election restriction (thesis 3.6.1). */
static bool raft_log_up_to_date(const struct raft_log *g, uint64_t lasti, uint64_t term)
{
    uint64_t lt = raft_log_last_term(g);
    return term > lt || (term == lt && lasti >= raft_log_last(g));
}

static bool raft_log_reserve(struct raft *r, size_t total)
{
    struct raft_log *g = &r->r_log;
    if (g->g_head + total <= g->g_cap)
        return true;
    if (g->g_head > 0) { /* compaction left room at the front */
        memmove(g->g_ents, g->g_ents + g->g_head, g->g_n * sizeof *g->g_ents);
        g->g_head = 0;
        if (total <= g->g_cap)
            return true;
    }
    struct api_raft_entry *p = raft_grow(g->g_ents, &g->g_cap, total, sizeof *p);
    if (!p) {
        raft_fail(r);
        return false;
    }
    g->g_ents = p;
    return true;
}

/* raftLog.append + unstable.truncateAndAppend: ents[0].Index lies in
 * (committed, last + 1]; the tail from there on is replaced.  Data is
 * copied.  False on OOM (the log then holds a prefix of ents). */
static bool raft_log_append(struct raft *r, const struct api_raft_entry *ents, size_t n)
{
    struct raft_log *g = &r->r_log;
    if (n == 0)
        return true;
    uint64_t after = ents[0].Index;
    assert(after > g->g_committed && after >= g->g_first && after <= raft_log_last(g) + 1);
    size_t keep = (size_t)(after - g->g_first);
    if (!raft_log_reserve(r, keep + n))
        return false;
    for (uint64_t i = after; i <= raft_log_last(g); i++) {
        const struct api_raft_entry *e = raft_log_ent(g, i);
        g->g_bytes -= e->Data.len;
        raft_bury(r, e->Data.p);
    }
    g->g_n = keep;
    if (g->g_unstable > after)
        g->g_unstable = after;
    for (size_t k = 0; k < n; k++) {
        struct api_raft_entry *d = &g->g_ents[g->g_head + g->g_n];
        *d = ents[k];
        if (ents[k].Data.p) {
            uint8_t *p = raft_blob_new(r, ents[k].Data.len);
            if (!p)
                return false;
            memcpy(p, ents[k].Data.p, ents[k].Data.len);
            d->Data.p = p;
        }
        g->g_n++;
        g->g_bytes += d->Data.len;
    }
    return true;
}

/* Entries [lo, hi) (all in the log), limited to max_size bytes but at
 * least one (etcd's limitSize), copied into the collecting outbox; the
 * data stays in the blobs. */
static bool raft_log_slice(struct raft *r, uint64_t lo, uint64_t hi, uint64_t max_size,
                           struct api_raft_entry **out, size_t *n)
{
    const struct raft_log *g = &r->r_log;
    *out = NULL;
    *n = 0;
    if (lo >= hi)
        return true;
    assert(lo >= g->g_first && hi <= raft_log_last(g) + 1);
    size_t cnt = 1;
    uint64_t size = raft_entry_size(raft_log_ent(g, lo));
    while (lo + cnt < hi) {
        size += raft_entry_size(raft_log_ent(g, lo + cnt));
        if (size > max_size)
            break;
        cnt++;
    }
    *out = raft_adup(r, raft_log_ent(g, lo), cnt * sizeof **out);
    if (!*out)
        return false;
    *n = cnt;
    return true;
}

/* raftLog.commitTo.  etcd panics on a commit index past the log; that
 * index comes from a peer, so it is ignored instead. */
static void raft_log_commit_to(struct raft_log *g, uint64_t tocommit)
{
    if (g->g_committed < tocommit && tocommit <= raft_log_last(g))
        g->g_committed = tocommit;
}

/* Drop entries [first, index]; index is in the log. */
static void raft_log_compact(struct raft *r, uint64_t index)
{
    struct raft_log *g = &r->r_log;
    uint64_t term = raft_log_term0(g, index);
    for (uint64_t i = g->g_first; i <= index; i++) {
        const struct api_raft_entry *e = raft_log_ent(g, i);
        g->g_bytes -= e->Data.len;
        raft_bury(r, e->Data.p);
    }
    size_t k = (size_t)(index + 1 - g->g_first);
    g->g_head += k;
    g->g_n -= k;
    if (g->g_n == 0)
        g->g_head = 0;
    g->g_first = index + 1;
    g->g_prev_term = term;
}

/* Empty the log so that it continues after (index, term): restoring a
 * snapshot (raftLog.restore). */
static void raft_log_clear(struct raft *r, uint64_t index, uint64_t term)
{
    struct raft_log *g = &r->r_log;
    for (uint64_t i = g->g_first; i <= raft_log_last(g); i++)
        raft_bury(r, raft_log_ent(g, i)->Data.p);
    g->g_n = 0;
    g->g_head = 0;
    g->g_bytes = 0;
    g->g_first = index + 1;
    g->g_prev_term = term;
    g->g_unstable = index + 1;
    g->g_committed = index;
}

/* ---- progress tracking (tracker/) ---- */

static struct raft_progress *raft_pr(const struct raft *r, uint64_t id)
{
    for (size_t i = 0; i < r->r_n_prs; i++)
        if (r->r_prs[i].p_id == id)
            return &r->r_prs[i];
    return NULL;
}

static bool raft_pr_paused(const struct raft *r, const struct raft_progress *pr)
{
    switch (pr->p_state) {
    case RAFT_PROGRESS_PROBE:
        return pr->p_probe_sent;
    case RAFT_PROGRESS_REPLICATE:
        return pr->p_infl_count == r->r_max_inflight;
    case RAFT_PROGRESS_SNAPSHOT:
        break;
    }
    return true;
}

static void raft_pr_reset_state(struct raft_progress *pr, enum raft_progress_state st)
{
    pr->p_probe_sent = false;
    pr->p_pending_snap = 0;
    pr->p_state = st;
    pr->p_infl_start = 0;
    pr->p_infl_count = 0;
}

/* Progress.BecomeProbe: after a snapshot, probe from past it. */
static void raft_pr_become_probe(struct raft_progress *pr)
{
    if (pr->p_state == RAFT_PROGRESS_SNAPSHOT) {
        uint64_t pending = pr->p_pending_snap;
        raft_pr_reset_state(pr, RAFT_PROGRESS_PROBE);
        pr->p_next = (pr->p_match > pending ? pr->p_match : pending) + 1;
    } else {
        raft_pr_reset_state(pr, RAFT_PROGRESS_PROBE);
        pr->p_next = pr->p_match + 1;
    }
}

static void raft_pr_become_replicate(struct raft_progress *pr)
{
    raft_pr_reset_state(pr, RAFT_PROGRESS_REPLICATE);
    pr->p_next = pr->p_match + 1;
}

/* Progress.MaybeUpdate: n acknowledged; true if match moved. */
static bool raft_pr_maybe_update(struct raft_progress *pr, uint64_t n)
{
    bool updated = false;
    if (pr->p_match < n) {
        pr->p_match = n;
        updated = true;
        pr->p_probe_sent = false;
    }
    if (pr->p_next < n + 1)
        pr->p_next = n + 1;
    return updated;
}

/* Progress.MaybeDecrTo: the MsgApp at `rejected` was refused; the follower's
 * last index is `last` (the reject hint).  False if the rejection is stale. */
static bool raft_pr_maybe_decr_to(struct raft_progress *pr, uint64_t rejected, uint64_t last)
{
    if (pr->p_state == RAFT_PROGRESS_REPLICATE) {
        if (rejected <= pr->p_match)
            return false;
        pr->p_next = pr->p_match + 1;
        return true;
    }
    if (pr->p_next - 1 != rejected)
        return false;
    pr->p_next = rejected < last + 1 ? rejected : last + 1;
    if (pr->p_next < 1)
        pr->p_next = 1;
    pr->p_probe_sent = false;
    return true;
}

/* Inflights.FreeLE: MsgApps up to `to` have been acknowledged. */
static void raft_infl_free_le(const struct raft *r, struct raft_progress *pr, uint64_t to)
{
    while (pr->p_infl_count > 0 && pr->p_infl[pr->p_infl_start] <= to) {
        pr->p_infl_start = (pr->p_infl_start + 1) % r->r_max_inflight;
        pr->p_infl_count--;
    }
    if (pr->p_infl_count == 0)
        pr->p_infl_start = 0;
}

/* confchange's initProgress: a new member is probed from our last index. */
static struct raft_progress *raft_pr_add(struct raft *r, uint64_t id, bool learner)
{
    uint64_t *infl = mem_alloc(r->r_max_inflight * sizeof *infl);
    struct raft_progress *prs =
        infl ? raft_grow(r->r_prs, &r->r_cap_prs, r->r_n_prs + 1, sizeof *prs) : NULL;
    if (!prs) {
        mem_free(infl);
        raft_fail(r);
        return NULL;
    }
    r->r_prs = prs;
    size_t at = 0;
    while (at < r->r_n_prs && prs[at].p_id < id)
        at++;
    memmove(&prs[at + 1], &prs[at], (r->r_n_prs - at) * sizeof *prs);
    r->r_n_prs++;
    prs[at] = (struct raft_progress){
        .p_id = id,
        .p_next = raft_log_last(&r->r_log),
        .p_infl = infl,
        .p_state = RAFT_PROGRESS_PROBE,
        .p_recent_active = true,
        .p_learner = learner,
    };
    return &prs[at];
}

static void raft_pr_remove(struct raft *r, uint64_t id)
{
    struct raft_progress *pr = raft_pr(r, id);
    if (!pr)
        return;
    mem_free(pr->p_infl);
    size_t at = (size_t)(pr - r->r_prs);
    memmove(pr, pr + 1, (r->r_n_prs - at - 1) * sizeof *pr);
    r->r_n_prs--;
}

static void raft_prs_clear(struct raft *r)
{
    for (size_t i = 0; i < r->r_n_prs; i++)
        mem_free(r->r_prs[i].p_infl);
    r->r_n_prs = 0;
}

/* Refresh what depends on the member set: our learner flag and the arrays
 * raft_conf_state hands out.  False on OOM. */
static bool raft_config_changed(struct raft *r)
{
    const struct raft_progress *self = raft_pr(r, r->r_id);
    r->r_learner = self && self->p_learner;
    size_t nv = raft_n_voters(r), nl = r->r_n_prs - nv;
    uint64_t *v = mem_realloc(r->r_cs_voters, (nv ? nv : 1) * sizeof *v);
    if (!v) {
        raft_fail(r);
        return false;
    }
    r->r_cs_voters = v;
    uint64_t *l = mem_realloc(r->r_cs_learners, (nl ? nl : 1) * sizeof *l);
    if (!l) {
        raft_fail(r);
        return false;
    }
    r->r_cs_learners = l;
    r->r_cs_n_voters = r->r_cs_n_learners = 0;
    for (size_t i = 0; i < r->r_n_prs; i++) {
        if (r->r_prs[i].p_learner)
            l[r->r_cs_n_learners++] = r->r_prs[i].p_id;
        else
            v[r->r_cs_n_voters++] = r->r_prs[i].p_id;
    }
    return true;
}

static size_t raft_n_voters(const struct raft *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->r_n_prs; i++)
        n += !r->r_prs[i].p_learner;
    return n;
}

/* MajorityConfig.CommittedIndex: the largest index persisted by a majority
 * of voters (the leader's own match counts only once persisted). */
static uint64_t raft_quorum_index(const struct raft *r)
{
    size_t nv = raft_n_voters(r), q = nv / 2 + 1;
    if (nv == 0)
        return UINT64_MAX; /* no voters: nothing can commit (maybe_commit) */
    uint64_t best = 0;
    for (size_t i = 0; i < r->r_n_prs; i++) {
        const struct raft_progress *a = &r->r_prs[i];
        if (a->p_learner || a->p_match <= best)
            continue;
        size_t cnt = 0;
        for (size_t j = 0; j < r->r_n_prs; j++)
            cnt += !r->r_prs[j].p_learner && r->r_prs[j].p_match >= a->p_match;
        if (cnt >= q)
            best = a->p_match;
    }
    return best;
}

/* MajorityConfig.VoteResult over the recorded votes. */
static enum raft_vote_result raft_tally(const struct raft *r)
{
    size_t nv = raft_n_voters(r), yes = 0, missing = 0;
    if (nv == 0)
        return RAFT_VOTE_WON;
    for (size_t i = 0; i < r->r_n_prs; i++) {
        const struct raft_progress *pr = &r->r_prs[i];
        if (pr->p_learner)
            continue;
        yes += pr->p_vote > 0;
        missing += pr->p_vote == 0;
    }
    size_t q = nv / 2 + 1;
    if (yes >= q)
        return RAFT_VOTE_WON;
    return yes + missing >= q ? RAFT_VOTE_PENDING : RAFT_VOTE_LOST;
}

static bool raft_quorum_active(const struct raft *r)
{
    size_t active = 0;
    for (size_t i = 0; i < r->r_n_prs; i++)
        active += !r->r_prs[i].p_learner && r->r_prs[i].p_recent_active;
    return active >= raft_n_voters(r) / 2 + 1;
}

static bool raft_acks_quorum(const struct raft *r, const struct raft_read *rd)
{
    size_t n = 0;
    for (size_t i = 0; i < r->r_n_prs; i++) {
        if (r->r_prs[i].p_learner)
            continue;
        for (size_t k = 0; k < rd->rr_n_acks; k++)
            if (rd->rr_acks[k] == r->r_prs[i].p_id) {
                n++;
                break;
            }
    }
    return n >= raft_n_voters(r) / 2 + 1;
}

/* Only a voter may campaign. */
static bool raft_promotable(const struct raft *r)
{
    const struct raft_progress *pr = raft_pr(r, r->r_id);
    return pr && !pr->p_learner;
}

/* confchange.Restore for a non-joint ConfState: voters, then learners.
 * RAFT_EINVAL for a joint configuration or learners without voters. */
static int raft_config_restore(struct raft *r, const struct api_raft_conf_state *cs)
{
    if (cs && (cs->n_voters_outgoing || cs->n_learners_next || (cs->n_learners && !cs->n_voters)))
        return RAFT_EINVAL;
    raft_prs_clear(r);
    for (size_t i = 0; cs && i < cs->n_voters; i++)
        if (cs->voters[i] && !raft_pr(r, cs->voters[i]) && !raft_pr_add(r, cs->voters[i], false))
            return r->r_err;
    for (size_t i = 0; cs && i < cs->n_learners; i++) {
        struct raft_progress *pr = raft_pr(r, cs->learners[i]);
        if (pr)
            pr->p_learner = true;
        else if (cs->learners[i] && !raft_pr_add(r, cs->learners[i], true))
            return r->r_err;
    }
    return raft_config_changed(r) ? 0 : r->r_err;
}

/* ---- sending ---- */

/* raft.send: stamps from and term, queues m.  Vote messages carry their own
 * term; proposals and read requests none, since they are forwarded to the
 * leader as if local. */
static void raft_send(struct raft *r, struct api_raft_message m)
{
    struct raft_outbox *o = &r->r_out[r->r_cur];
    m.from = r->r_id;
    if (m.type != RAFT_MSG_VOTE && m.type != RAFT_MSG_VOTE_RESP && m.type != RAFT_MSG_PRE_VOTE &&
        m.type != RAFT_MSG_PRE_VOTE_RESP && m.type != RAFT_MSG_PROP &&
        m.type != RAFT_MSG_READ_INDEX)
        m.term = r->r_term;
    struct api_raft_message *v = raft_grow(o->o_msgs, &o->o_cap_msgs, o->o_n_msgs + 1, sizeof *v);
    if (!v) {
        raft_fail(r);
        return;
    }
    o->o_msgs = v;
    v[o->o_n_msgs++] = m;
}

/* raft.maybeSendAppend: entries from pr->p_next on, or the snapshot when
 * they are compacted away.  True if a message was queued. */
static bool raft_maybe_send_append(struct raft *r, struct raft_progress *pr, bool send_if_empty)
{
    const struct raft_log *g = &r->r_log;
    if (raft_pr_paused(r, pr))
        return false;
    struct api_raft_message m = {.to = pr->p_id};
    bool compacted = pr->p_next < g->g_first;
    struct api_raft_entry *ents = NULL;
    size_t n = 0;
    if (!compacted && pr->p_next <= raft_log_last(g) &&
        !raft_log_slice(r, pr->p_next, raft_log_last(g) + 1, r->r_max_msg_size, &ents, &n))
        return false;
    if (n == 0 && !send_if_empty)
        return false;
    if (compacted) {
        /* A follower that does not answer gets no snapshot: it would only
         * pin the snapshot in flight (etcd does the same). */
        if (!pr->p_recent_active)
            return false;
        /* The log was compacted past the snapshot while this member was
         * alone: the follower could not continue from it.  The caller is
         * asked for a new one (etcd's ErrSnapshotTemporarilyUnavailable). */
        if (!r->r_snap || r->r_snap->metadata->index + 1 < g->g_first) {
            r->r_want_snap = true;
            return false;
        }
        m.type = RAFT_MSG_SNAP;
        m.snapshot = r->r_snap;
        raft_pr_reset_state(pr, RAFT_PROGRESS_SNAPSHOT);
        pr->p_pending_snap = r->r_snap->metadata->index;
    } else {
        m.type = RAFT_MSG_APP;
        m.index = pr->p_next - 1;
        m.logTerm = raft_log_term0(g, pr->p_next - 1);
        m.entries = ents;
        m.n_entries = n;
        m.commit = g->g_committed;
        if (n) {
            if (pr->p_state == RAFT_PROGRESS_REPLICATE) {
                /* Optimistic: assume delivery, pipeline the next batch. */
                uint64_t last = ents[n - 1].Index;
                pr->p_next = last + 1;
                size_t slot = (pr->p_infl_start + pr->p_infl_count) % r->r_max_inflight;
                pr->p_infl[slot] = last;
                pr->p_infl_count++;
            } else {
                pr->p_probe_sent = true;
            }
        }
    }
    raft_send(r, m);
    return true;
}

static void raft_bcast_append(struct raft *r)
{
    for (size_t i = 0; i < r->r_n_prs; i++)
        if (r->r_prs[i].p_id != r->r_id)
            raft_maybe_send_append(r, &r->r_prs[i], true);
}

/* Heartbeats carry min(match, commit): a follower must not commit entries
 * it may not have, or that may differ from ours. */
static void raft_bcast_heartbeat(struct raft *r, const uint8_t *ctx, size_t len)
{
    struct pb_bytes c = {NULL, 0};
    if (ctx) {
        c.p = raft_adup(r, ctx, len);
        if (!c.p)
            return;
        c.len = len;
    }
    for (size_t i = 0; i < r->r_n_prs; i++) {
        const struct raft_progress *pr = &r->r_prs[i];
        if (pr->p_id == r->r_id)
            continue;
        uint64_t commit = pr->p_match < r->r_log.g_committed ? pr->p_match : r->r_log.g_committed;
        raft_send(r, (struct api_raft_message){
                         .type = RAFT_MSG_HEARTBEAT, .to = pr->p_id, .commit = commit, .context = c});
    }
}

static void raft_send_timeout_now(struct raft *r, uint64_t to)
{
    raft_send(r, (struct api_raft_message){.type = RAFT_MSG_TIMEOUT_NOW, .to = to});
}

/* ---- role changes ---- */

static void raft_reset_randomized_timeout(struct raft *r)
{
    /* xorshift64*: deterministic for a given seed, which tests rely on. */
    r->r_rand ^= r->r_rand >> 12;
    r->r_rand ^= r->r_rand << 25;
    r->r_rand ^= r->r_rand >> 27;
    uint64_t x = r->r_rand * 0x2545F4914F6CDD1DULL;
    r->r_randomized_timeout =
        r->r_election_timeout + (int)((x >> 33) % (uint64_t)r->r_election_timeout);
}

static void raft_reset(struct raft *r, uint64_t term)
{
    if (r->r_term != term) {
        r->r_term = term;
        r->r_vote = 0;
    }
    r->r_lead = 0;
    r->r_election_elapsed = 0;
    r->r_heartbeat_elapsed = 0;
    raft_reset_randomized_timeout(r);
    r->r_transferee = 0;
    uint64_t last = raft_log_last(&r->r_log);
    for (size_t i = 0; i < r->r_n_prs; i++) {
        struct raft_progress *pr = &r->r_prs[i];
        raft_pr_reset_state(pr, RAFT_PROGRESS_PROBE);
        pr->p_vote = 0;
        pr->p_recent_active = false;
        pr->p_next = last + 1;
        /* Our own log counts only as far as it is persisted. */
        pr->p_match = pr->p_id == r->r_id ? r->r_log.g_unstable - 1 : 0;
    }
    r->r_pending_conf_index = 0;
    r->r_uncommitted_size = 0;
    /* Reads wait on this leadership; the requesters retry on a new one. */
    raft_reads_free(r->r_reads, &r->r_n_reads);
    raft_reads_free(r->r_reads_wait, &r->r_n_reads_wait);
}

static void raft_become_follower(struct raft *r, uint64_t term, uint64_t lead)
{
    raft_reset(r, term);
    r->r_lead = lead;
    r->r_role = RAFT_FOLLOWER;
}

static void raft_become_candidate(struct raft *r)
{
    assert(r->r_role != RAFT_LEADER);
    raft_reset(r, r->r_term + 1);
    r->r_vote = r->r_id;
    r->r_role = RAFT_CANDIDATE;
}

/* PreVote (thesis 9.6): no term change, no vote cast. */
static void raft_become_pre_candidate(struct raft *r)
{
    assert(r->r_role != RAFT_LEADER);
    for (size_t i = 0; i < r->r_n_prs; i++)
        r->r_prs[i].p_vote = 0;
    r->r_lead = 0;
    r->r_role = RAFT_PRE_CANDIDATE;
}

static void raft_become_leader(struct raft *r)
{
    assert(r->r_role != RAFT_FOLLOWER);
    raft_reset(r, r->r_term);
    r->r_lead = r->r_id;
    r->r_role = RAFT_LEADER;
    struct raft_progress *self = raft_pr(r, r->r_id);
    if (self)
        raft_pr_become_replicate(self);
    /* Any ConfChange in the uncommitted tail may still be pending; refusing
     * new ones until everything up to here is applied is safe and cheap. */
    r->r_pending_conf_index = raft_log_last(&r->r_log);
    /* The empty entry commits the tail of earlier terms (thesis 3.6.2,
     * Figure 3.7): only entries of the current term commit by counting. */
    struct api_raft_entry empty = {.Type = API_ENTRY_NORMAL};
    raft_append_entries_local(r, &empty, 1);
}

/* raft.campaign */
static void raft_campaign_start(struct raft *r, enum raft_campaign_type t)
{
    uint64_t term;
    int32_t type;
    if (t == RAFT_CAMPAIGN_PRE_ELECTION) {
        raft_become_pre_candidate(r);
        type = RAFT_MSG_PRE_VOTE;
        term = r->r_term + 1; /* the term we would campaign in */
    } else {
        raft_become_candidate(r);
        type = RAFT_MSG_VOTE;
        term = r->r_term;
    }
    if (raft_poll(r, r->r_id, true) == RAFT_VOTE_WON) {
        /* A single voter wins by its own vote. */
        if (t == RAFT_CAMPAIGN_PRE_ELECTION)
            raft_campaign_start(r, RAFT_CAMPAIGN_ELECTION);
        else
            raft_become_leader(r);
        return;
    }
    struct pb_bytes ctx = {NULL, 0};
    if (t == RAFT_CAMPAIGN_TRANSFER)
        ctx = (struct pb_bytes){raft_ctx_transfer, RAFT_CTX_TRANSFER_LEN};
    for (size_t i = 0; i < r->r_n_prs; i++) {
        const struct raft_progress *pr = &r->r_prs[i];
        if (pr->p_learner || pr->p_id == r->r_id)
            continue;
        raft_send(r, (struct api_raft_message){.type = type,
                                               .to = pr->p_id,
                                               .term = term,
                                               .index = raft_log_last(&r->r_log),
                                               .logTerm = raft_log_last_term(&r->r_log),
                                               .context = ctx});
    }
}

/* MsgHup: an election timeout or raft_campaign. */
static void raft_hup(struct raft *r)
{
    const struct raft_log *g = &r->r_log;
    if (r->r_role == RAFT_LEADER || !raft_promotable(r))
        return;
    /* A member that has not applied a committed ConfChange may not know its
     * own configuration yet; etcd refuses to campaign then. */
    uint64_t lo = g->g_applied + 1 > g->g_first ? g->g_applied + 1 : g->g_first;
    for (uint64_t i = lo; i <= g->g_committed; i++)
        if (raft_log_ent(g, i)->Type == API_ENTRY_CONF_CHANGE)
            return;
    raft_campaign_start(r, r->r_pre_vote ? RAFT_CAMPAIGN_PRE_ELECTION : RAFT_CAMPAIGN_ELECTION);
}

/* raft.poll: record id's (first) vote, then count. */
static enum raft_vote_result raft_poll(struct raft *r, uint64_t id, bool granted)
{
    struct raft_progress *pr = raft_pr(r, id);
    if (pr && pr->p_vote == 0)
        pr->p_vote = granted ? 1 : -1;
    return raft_tally(r);
}

/* raft.maybeCommit: only an entry of the current term commits by counting
 * replicas (thesis 3.6.2; Figure 8 of the Raft paper shows why). */
static bool raft_maybe_commit(struct raft *r)
{
    struct raft_log *g = &r->r_log;
    uint64_t mci = raft_quorum_index(r);
    if (mci > g->g_committed && mci <= raft_log_last(g) && raft_log_term0(g, mci) == r->r_term) {
        g->g_committed = mci;
        return true;
    }
    return false;
}

/* The leader's commit index moved: pending reads can be served and the
 * followers learn the new commit index. */
static void raft_committed_advanced(struct raft *r)
{
    if (r->r_n_reads_wait && raft_committed_in_term(r)) {
        struct raft_read *w = r->r_reads_wait;
        size_t n = r->r_n_reads_wait;
        r->r_reads_wait = NULL;
        r->r_n_reads_wait = 0;
        r->r_cap_reads_wait = 0;
        for (size_t i = 0; i < n; i++)
            raft_read_serve(r, w[i].rr_from, w[i].rr_ctx, w[i].rr_len);
        raft_reads_free(w, &n);
        mem_free(w);
    }
    raft_bcast_append(r);
}

/* raft.appendEntry: stamp term and index, enforce the uncommitted limit,
 * append.  Our own progress moves when the caller reports the entries
 * persisted (raft_advance), not here. */
static bool raft_append_entries_local(struct raft *r, struct api_raft_entry *ents, size_t n)
{
    uint64_t li = raft_log_last(&r->r_log), size = 0;
    for (size_t i = 0; i < n; i++) {
        ents[i].Term = r->r_term;
        ents[i].Index = li + 1 + i;
        size += ents[i].Data.len;
    }
    /* An empty uncommitted tail admits one proposal of any size. */
    if (r->r_uncommitted_size > 0 && r->r_max_uncommitted &&
        r->r_uncommitted_size + size > r->r_max_uncommitted)
        return false;
    r->r_uncommitted_size += size;
    return raft_log_append(r, ents, n);
}

/* ---- stepping ---- */

static bool raft_is_vote(int32_t t)
{
    return t == RAFT_MSG_VOTE || t == RAFT_MSG_PRE_VOTE;
}

/* raft.Step: term handling common to all roles, then votes, then the
 * role's own step function. */
static int raft_step_msg(struct raft *r, const struct api_raft_message *m)
{
    struct raft_log *g = &r->r_log;
    if (m->term == 0) {
        /* local message, or a proposal/read forwarded by a follower */
    } else if (m->term > r->r_term) {
        if (raft_is_vote(m->type)) {
            bool force = m->context.len == RAFT_CTX_TRANSFER_LEN &&
                         !memcmp(m->context.p, raft_ctx_transfer, RAFT_CTX_TRANSFER_LEN);
            bool in_lease = r->r_check_quorum && r->r_lead != 0 &&
                            r->r_election_elapsed < r->r_election_timeout;
            /* Within the minimum election timeout of hearing from a leader,
             * neither update the term nor grant a vote (thesis 4.2.3). */
            if (!force && in_lease)
                return 0;
        }
        if (m->type == RAFT_MSG_PRE_VOTE) {
            /* never change our term for a pre-vote */
        } else if (m->type == RAFT_MSG_PRE_VOTE_RESP && !m->reject) {
            /* a granted pre-vote carries the term we will campaign in */
        } else if (m->type == RAFT_MSG_APP || m->type == RAFT_MSG_HEARTBEAT ||
                   m->type == RAFT_MSG_SNAP) {
            raft_become_follower(r, m->term, m->from);
        } else {
            raft_become_follower(r, m->term, 0);
        }
    } else if (m->term < r->r_term) {
        if ((r->r_check_quorum || r->r_pre_vote) &&
            (m->type == RAFT_MSG_HEARTBEAT || m->type == RAFT_MSG_APP)) {
            /* A leader of an older term: we may have bumped our term while
             * partitioned.  With CheckQuorum or PreVote our votes would not
             * make it step down, so tell it our term. */
            raft_send(r, (struct api_raft_message){.type = RAFT_MSG_APP_RESP, .to = m->from});
        } else if (m->type == RAFT_MSG_PRE_VOTE) {
            /* Rejecting with our term unblocks a pre-candidate with a
             * stale term (dropping it could deadlock the cluster). */
            raft_send(r, (struct api_raft_message){
                             .type = RAFT_MSG_PRE_VOTE_RESP, .to = m->from, .term = r->r_term,
                             .reject = true});
        }
        return 0;
    }

    switch (m->type) {
    case RAFT_MSG_VOTE:
    case RAFT_MSG_PRE_VOTE: {
        /* A repeat of our vote, no vote and no leader yet this term, or a
         * pre-vote for a future term; and the candidate's log is at least
         * as up to date as ours (thesis 3.6.1).  Learners vote too: a
         * promoted learner may not have applied its promotion yet. */
        bool can_vote = r->r_vote == m->from || (r->r_vote == 0 && r->r_lead == 0) ||
                        (m->type == RAFT_MSG_PRE_VOTE && m->term > r->r_term);
        int32_t resp = m->type == RAFT_MSG_VOTE ? RAFT_MSG_VOTE_RESP : RAFT_MSG_PRE_VOTE_RESP;
        if (can_vote && raft_log_up_to_date(g, m->index, m->logTerm)) {
            /* Answer with the message's term: for a pre-vote ours is older
             * and the pre-candidate would drop the answer as stale. */
            raft_send(r, (struct api_raft_message){.type = resp, .to = m->from, .term = m->term});
            if (m->type == RAFT_MSG_VOTE) {
                r->r_election_elapsed = 0;
                r->r_vote = m->from;
            }
        } else {
            raft_send(r, (struct api_raft_message){
                             .type = resp, .to = m->from, .term = r->r_term, .reject = true});
        }
        return 0;
    }
    default:
        break;
    }
    switch (r->r_role) {
    case RAFT_LEADER:
        return raft_step_leader(r, m);
    case RAFT_CANDIDATE:
    case RAFT_PRE_CANDIDATE:
        return raft_step_candidate(r, m);
    case RAFT_FOLLOWER:
        break;
    }
    return raft_step_follower(r, m);
}

/* CheckQuorum (thesis 6.2): a leader that has not heard from a majority
 * within an election timeout steps down, so that a partitioned leader does
 * not go on serving (and so that the lease in raft_step_msg is sound). */
static void raft_check_quorum(struct raft *r)
{
    struct raft_progress *self = raft_pr(r, r->r_id);
    if (self)
        self->p_recent_active = true;
    if (!raft_quorum_active(r))
        raft_become_follower(r, r->r_term, 0);
    for (size_t i = 0; i < r->r_n_prs; i++)
        if (r->r_prs[i].p_id != r->r_id)
            r->r_prs[i].p_recent_active = false;
}

static int raft_step_leader(struct raft *r, const struct api_raft_message *m)
{
    struct raft_log *g = &r->r_log;
    switch (m->type) {
    case RAFT_MSG_PROP: {
        if (!raft_pr(r, r->r_id) || r->r_transferee)
            return RAFT_EDROPPED;
        struct api_raft_entry *ents =
            raft_adup(r, m->entries, m->n_entries * sizeof *m->entries);
        if (!ents)
            return r->r_err;
        for (size_t i = 0; i < m->n_entries; i++) {
            if (ents[i].Type == API_ENTRY_NORMAL)
                continue;
            /* One membership change at a time (thesis 4.1): refuse while one
             * may still be unapplied.  Joint consensus (v2) is not
             * implemented, so v2 changes are always refused.  etcd keeps the
             * slot with an empty entry. */
            if (ents[i].Type != API_ENTRY_CONF_CHANGE || r->r_pending_conf_index > g->g_applied)
                ents[i] = (struct api_raft_entry){.Type = API_ENTRY_NORMAL};
            else
                r->r_pending_conf_index = raft_log_last(g) + i + 1;
        }
        if (!raft_append_entries_local(r, ents, m->n_entries))
            return r->r_err ? r->r_err : RAFT_EDROPPED;
        raft_bcast_append(r);
        return 0;
    }
    case RAFT_MSG_READ_INDEX:
        return raft_read_request(r, m->from, m->entries[0].Data.p, m->entries[0].Data.len);
    default:
        break;
    }

    struct raft_progress *pr = raft_pr(r, m->from);
    if (!pr)
        return 0;
    switch (m->type) {
    case RAFT_MSG_APP_RESP:
        pr->p_recent_active = true;
        if (m->reject) {
            if (raft_pr_maybe_decr_to(pr, m->index, m->rejectHint)) {
                if (pr->p_state == RAFT_PROGRESS_REPLICATE)
                    raft_pr_become_probe(pr);
                raft_maybe_send_append(r, pr, true);
            }
            return 0;
        }
        bool old_paused = raft_pr_paused(r, pr);
        if (!raft_pr_maybe_update(pr, m->index))
            return 0;
        if (pr->p_state == RAFT_PROGRESS_PROBE) {
            raft_pr_become_replicate(pr);
        } else if (pr->p_state == RAFT_PROGRESS_SNAPSHOT && pr->p_match >= pr->p_pending_snap) {
            /* Back to replicating via probing, which takes the snapshot
             * into account. */
            raft_pr_become_probe(pr);
            raft_pr_become_replicate(pr);
        } else if (pr->p_state == RAFT_PROGRESS_REPLICATE) {
            raft_infl_free_le(r, pr, m->index);
        }
        if (raft_maybe_commit(r))
            raft_committed_advanced(r);
        else if (old_paused)
            raft_maybe_send_append(r, pr, true); /* it may lack the commit index */
        /* The window may have opened for several size-limited messages. */
        while (raft_maybe_send_append(r, pr, false) && !r->r_err)
            ;
        if (m->from == r->r_transferee && pr->p_match == raft_log_last(g))
            raft_send_timeout_now(r, m->from);
        return 0;
    case RAFT_MSG_HEARTBEAT_RESP:
        pr->p_recent_active = true;
        pr->p_probe_sent = false;
        /* Free one slot so a full window cannot stall replication forever. */
        if (pr->p_state == RAFT_PROGRESS_REPLICATE && pr->p_infl_count == r->r_max_inflight) {
            pr->p_infl_start = (pr->p_infl_start + 1) % r->r_max_inflight;
            pr->p_infl_count--;
        }
        if (pr->p_match < raft_log_last(g))
            raft_maybe_send_append(r, pr, true);
        if (m->context.len)
            raft_read_ack(r, m->from, m->context.p, m->context.len);
        return 0;
    case RAFT_MSG_SNAP_STATUS:
        if (pr->p_state != RAFT_PROGRESS_SNAPSHOT)
            return 0;
        /* On failure forget the snapshot before probing, or we would probe
         * from an index the follower never reached. */
        if (m->reject)
            pr->p_pending_snap = 0;
        raft_pr_become_probe(pr);
        /* Wait for the follower's answer (or a heartbeat) before the next
         * MsgApp. */
        pr->p_probe_sent = true;
        return 0;
    case RAFT_MSG_UNREACHABLE:
        /* While pipelining, an unreachable peer has likely lost a MsgApp. */
        if (pr->p_state == RAFT_PROGRESS_REPLICATE)
            raft_pr_become_probe(pr);
        return 0;
    case RAFT_MSG_TRANSFER_LEADER: {
        if (pr->p_learner)
            return 0;
        uint64_t transferee = m->from;
        if (r->r_transferee == transferee)
            return 0;
        r->r_transferee = 0;
        if (transferee == r->r_id)
            return 0;
        /* The transfer must finish within an election timeout (thesis 3.10). */
        r->r_election_elapsed = 0;
        r->r_transferee = transferee;
        if (pr->p_match == raft_log_last(g))
            raft_send_timeout_now(r, transferee);
        else
            raft_maybe_send_append(r, pr, true);
        return 0;
    }
    default:
        return 0;
    }
}

static int raft_step_candidate(struct raft *r, const struct api_raft_message *m)
{
    /* Stale pre-vote answers may still arrive once we are a candidate. */
    int32_t my_resp = r->r_role == RAFT_PRE_CANDIDATE ? RAFT_MSG_PRE_VOTE_RESP : RAFT_MSG_VOTE_RESP;
    switch (m->type) {
    case RAFT_MSG_PROP:
    case RAFT_MSG_READ_INDEX:
        return RAFT_EDROPPED;
    case RAFT_MSG_APP:
        raft_become_follower(r, m->term, m->from);
        raft_handle_append(r, m);
        return 0;
    case RAFT_MSG_HEARTBEAT:
        raft_become_follower(r, m->term, m->from);
        raft_handle_heartbeat(r, m);
        return 0;
    case RAFT_MSG_SNAP:
        raft_become_follower(r, m->term, m->from);
        raft_handle_snapshot(r, m);
        return 0;
    default:
        break;
    }
    if (m->type != my_resp)
        return 0;
    switch (raft_poll(r, m->from, !m->reject)) {
    case RAFT_VOTE_WON:
        if (r->r_role == RAFT_PRE_CANDIDATE) {
            raft_campaign_start(r, RAFT_CAMPAIGN_ELECTION);
        } else {
            raft_become_leader(r);
            raft_bcast_append(r);
        }
        break;
    case RAFT_VOTE_LOST:
        /* a pre-vote answer carries a future term: keep ours */
        raft_become_follower(r, r->r_term, 0);
        break;
    case RAFT_VOTE_PENDING:
        break;
    }
    return 0;
}

static int raft_step_follower(struct raft *r, const struct api_raft_message *m)
{
    switch (m->type) {
    case RAFT_MSG_PROP:
    case RAFT_MSG_READ_INDEX:
    case RAFT_MSG_TRANSFER_LEADER:
        if (r->r_lead == 0)
            return RAFT_EDROPPED;
        return raft_forward(r, m);
    case RAFT_MSG_APP:
        r->r_election_elapsed = 0;
        r->r_lead = m->from;
        raft_handle_append(r, m);
        return 0;
    case RAFT_MSG_HEARTBEAT:
        r->r_election_elapsed = 0;
        r->r_lead = m->from;
        raft_handle_heartbeat(r, m);
        return 0;
    case RAFT_MSG_SNAP:
        r->r_election_elapsed = 0;
        r->r_lead = m->from;
        raft_handle_snapshot(r, m);
        return 0;
    case RAFT_MSG_TIMEOUT_NOW:
        /* A transfer skips PreVote: the leader asked for it. */
        if (raft_promotable(r))
            raft_campaign_start(r, RAFT_CAMPAIGN_TRANSFER);
        return 0;
    case RAFT_MSG_READ_INDEX_RESP: {
        struct raft_outbox *o = &r->r_out[r->r_cur];
        if (m->n_entries != 1)
            return 0;
        const uint8_t *ctx = raft_adup(r, m->entries[0].Data.p, m->entries[0].Data.len);
        struct raft_read_state *v =
            ctx ? raft_grow(o->o_reads, &o->o_cap_reads, o->o_n_reads + 1, sizeof *v) : NULL;
        if (!v) {
            raft_fail(r);
            return r->r_err;
        }
        o->o_reads = v;
        v[o->o_n_reads++] = (struct raft_read_state){m->index, {ctx, m->entries[0].Data.len}};
        return 0;
    }
    default:
        return 0;
    }
}

/* Pass a proposal, read request or transfer request on to the leader.  Its
 * entries point into the caller's buffer: copy them into the outbox. */
static int raft_forward(struct raft *r, const struct api_raft_message *m)
{
    struct api_raft_message f = *m;
    f.to = r->r_lead;
    f.term = 0; /* send() stamps what needs a term */
    if (m->n_entries) {
        struct api_raft_entry *e = raft_adup(r, m->entries, m->n_entries * sizeof *e);
        if (!e)
            return r->r_err;
        for (size_t i = 0; i < m->n_entries; i++)
            if (e[i].Data.p && !(e[i].Data.p = raft_adup(r, e[i].Data.p, e[i].Data.len)))
                return r->r_err;
        f.entries = e;
    }
    f.context = (struct pb_bytes){NULL, 0};
    f.snapshot = NULL;
    raft_send(r, f);
    return r->r_err;
}

/* raft.handleAppendEntries with raftLog.maybeAppend (thesis 3.5). */
static void raft_handle_append(struct raft *r, const struct api_raft_message *m)
{
    struct raft_log *g = &r->r_log;
    if (m->index < g->g_committed) {
        raft_send(r, (struct api_raft_message){
                         .type = RAFT_MSG_APP_RESP, .to = m->from, .index = g->g_committed});
        return;
    }
    if (!raft_log_match(g, m->index, m->logTerm)) {
        /* The hint (our last index) lets the leader skip the probing of
         * indexes we do not have at all. */
        raft_send(r, (struct api_raft_message){.type = RAFT_MSG_APP_RESP,
                                               .to = m->from,
                                               .index = m->index,
                                               .reject = true,
                                               .rejectHint = raft_log_last(g)});
        return;
    }
    uint64_t lastnewi = m->index + m->n_entries;
    for (size_t k = 0; k < m->n_entries; k++) {
        const struct api_raft_entry *e = &m->entries[k];
        if (raft_log_match(g, e->Index, e->Term))
            continue;
        /* First conflicting or new entry: replace our tail from there.  A
         * conflict with a committed entry means a broken peer. */
        if (e->Index <= g->g_committed)
            return;
        if (!raft_log_append(r, e, m->n_entries - k))
            return;
        break;
    }
    raft_log_commit_to(g, m->commit < lastnewi ? m->commit : lastnewi);
    raft_send(r, (struct api_raft_message){.type = RAFT_MSG_APP_RESP, .to = m->from, .index = lastnewi});
}

static void raft_handle_heartbeat(struct raft *r, const struct api_raft_message *m)
{
    raft_log_commit_to(&r->r_log, m->commit);
    struct pb_bytes ctx = {NULL, 0};
    if (m->context.len) {
        ctx.p = raft_adup(r, m->context.p, m->context.len);
        if (!ctx.p)
            return;
        ctx.len = m->context.len;
    }
    raft_send(r, (struct api_raft_message){.type = RAFT_MSG_HEARTBEAT_RESP, .to = m->from, .context = ctx});
}

static void raft_handle_snapshot(struct raft *r, const struct api_raft_message *m)
{
    struct raft_log *g = &r->r_log;
    uint64_t index = raft_restore(r, m->snapshot) ? raft_log_last(g) : g->g_committed;
    raft_send(r, (struct api_raft_message){.type = RAFT_MSG_APP_RESP, .to = m->from, .index = index});
}

/* raft.restore: adopt a snapshot from the leader unless our log already
 * covers it.  True if the log was replaced. */
static bool raft_restore(struct raft *r, const struct api_raft_snapshot *s)
{
    struct raft_log *g = &r->r_log;
    const struct api_raft_snapshot_metadata *md = s->metadata;
    if (md->index <= g->g_committed)
        return false;
    if (r->r_role != RAFT_FOLLOWER) {
        /* Defense in depth, as etcd: never restore unless following. */
        raft_become_follower(r, r->r_term + 1, 0);
        return false;
    }
    const struct api_raft_conf_state *cs = md->conf_state;
    bool found = false;
    for (size_t i = 0; cs && i < cs->n_voters; i++)
        found |= cs->voters[i] == r->r_id;
    for (size_t i = 0; cs && i < cs->n_learners; i++)
        found |= cs->learners[i] == r->r_id;
    if (!found || !cs->n_voters || cs->n_voters_outgoing || cs->n_learners_next)
        return false;
    if (raft_log_match(g, md->index, md->term)) {
        /* Our log has the snapshot's last entry: just commit up to it. */
        raft_log_commit_to(g, md->index);
        return false;
    }
    struct api_raft_snapshot *copy = raft_snap_copy(r, md->index, md->term, cs, s->data.p,
                                                    s->data.len, s->data.p != NULL);
    if (!copy)
        return false;
    raft_log_clear(r, md->index, md->term);
    raft_snap_set(r, copy);
    r->r_snap_pending = true;
    return raft_config_restore(r, cs) == 0;
}

/* One blob holding the snapshot, its metadata, conf state and data. */
static struct api_raft_snapshot *raft_snap_copy(struct raft *r, uint64_t index, uint64_t term,
                                                const struct api_raft_conf_state *cs,
                                                const void *data, size_t len, bool has_data)
{
    size_t nv = cs ? cs->n_voters : 0, nl = cs ? cs->n_learners : 0;
    size_t size = sizeof(struct api_raft_snapshot) + sizeof(struct api_raft_snapshot_metadata) +
                  sizeof(struct api_raft_conf_state) + (nv + nl) * sizeof(uint64_t) + len;
    uint8_t *p = raft_blob_new(r, size);
    if (!p)
        return NULL;
    struct api_raft_snapshot *s = (struct api_raft_snapshot *)p;
    struct api_raft_snapshot_metadata *md = (struct api_raft_snapshot_metadata *)(s + 1);
    struct api_raft_conf_state *c = (struct api_raft_conf_state *)(md + 1);
    uint64_t *ids = (uint64_t *)(c + 1);
    uint8_t *d = (uint8_t *)(ids + nv + nl);
    *c = (struct api_raft_conf_state){.voters = ids, .n_voters = nv, .learners = ids + nv,
                                      .n_learners = nl};
    if (nv)
        memcpy(ids, cs->voters, nv * sizeof *ids);
    if (nl)
        memcpy(ids + nv, cs->learners, nl * sizeof *ids);
    *md = (struct api_raft_snapshot_metadata){.conf_state = c, .index = index, .term = term};
    *s = (struct api_raft_snapshot){.data = {has_data ? d : NULL, len}, .metadata = md};
    if (len)
        memcpy(d, data, len);
    return s;
}

static void raft_snap_set(struct raft *r, struct api_raft_snapshot *s)
{
    raft_bury(r, r->r_snap);
    r->r_snap = s;
    r->r_snap_pending = false;
}

/* ---- ReadIndex (read_only.go; thesis 6.4) ---- */

static void raft_reads_free(struct raft_read *v, size_t *n)
{
    for (size_t i = 0; i < *n; i++) {
        mem_free(v[i].rr_ctx);
        mem_free(v[i].rr_acks);
    }
    *n = 0;
}

static bool raft_read_push(struct raft *r, struct raft_read **v, size_t *n, size_t *cap,
                           uint64_t from, uint64_t index, const uint8_t *ctx, size_t len)
{
    if (*n >= RAFT_MAX_READS)
        return false;
    struct raft_read *nv = raft_grow(*v, cap, *n + 1, sizeof *nv);
    uint8_t *c = nv ? mem_alloc(len ? len : 1) : NULL;
    if (!c) {
        if (nv)
            *v = nv;
        raft_fail(r);
        return false;
    }
    *v = nv;
    memcpy(c, ctx, len);
    nv[(*n)++] = (struct raft_read){.rr_from = from, .rr_index = index, .rr_ctx = c, .rr_len = len};
    return true;
}

/* A leader got a read request.  Until it has committed an entry of its own
 * term it does not know the latest commit index (thesis 6.4 step 1). */
static int raft_read_request(struct raft *r, uint64_t from, const uint8_t *ctx, size_t len)
{
    if (!raft_committed_in_term(r)) {
        if (!raft_read_push(r, &r->r_reads_wait, &r->r_n_reads_wait, &r->r_cap_reads_wait, from,
                            0, ctx, len))
            return r->r_err ? r->r_err : RAFT_EDROPPED;
        return 0;
    }
    raft_read_serve(r, from, ctx, len);
    return r->r_err;
}

/* Read point = commit index, once a heartbeat round confirms that we still
 * lead.  A lone voter needs no confirmation.  etcd answers a lone voter
 * before it has committed in its term; here its commit index lags its
 * persisted log by a ready cycle after a restart, so it waits like the
 * others (raft_read_request). */
static void raft_read_serve(struct raft *r, uint64_t from, const uint8_t *ctx, size_t len)
{
    uint64_t committed = r->r_log.g_committed;
    if (raft_n_voters(r) == 1 && raft_promotable(r)) { /* we are the only voter */
        raft_read_respond(r, from, committed, ctx, len);
        return;
    }
    for (size_t i = 0; i < r->r_n_reads; i++)
        if (r->r_reads[i].rr_len == len && !memcmp(r->r_reads[i].rr_ctx, ctx, len))
            return; /* already waiting for its heartbeat round */
    if (!raft_read_push(r, &r->r_reads, &r->r_n_reads, &r->r_cap_reads, from, committed, ctx, len))
        return;
    raft_read_ack(r, r->r_id, ctx, len);
    raft_bcast_heartbeat(r, ctx, len);
}

static void raft_read_respond(struct raft *r, uint64_t from, uint64_t index, const uint8_t *ctx,
                              size_t len)
{
    uint8_t *c = raft_adup(r, ctx, len);
    if (!c)
        return;
    if (from == 0 || from == r->r_id) {
        struct raft_outbox *o = &r->r_out[r->r_cur];
        struct raft_read_state *v = raft_grow(o->o_reads, &o->o_cap_reads, o->o_n_reads + 1, sizeof *v);
        if (!v) {
            raft_fail(r);
            return;
        }
        o->o_reads = v;
        v[o->o_n_reads++] = (struct raft_read_state){index, {c, len}};
        return;
    }
    struct api_raft_entry *e = raft_adup(r, &(struct api_raft_entry){.Data = {c, len}}, sizeof *e);
    if (e)
        raft_send(r, (struct api_raft_message){
                         .type = RAFT_MSG_READ_INDEX_RESP, .to = from, .index = index,
                         .entries = e, .n_entries = 1});
}

/* readOnly.recvAck + advance: once a quorum answered the heartbeat carrying
 * ctx, that request and every one queued before it are confirmed. */
static void raft_read_ack(struct raft *r, uint64_t from, const uint8_t *ctx, size_t len)
{
    size_t at = 0;
    while (at < r->r_n_reads &&
           !(r->r_reads[at].rr_len == len && !memcmp(r->r_reads[at].rr_ctx, ctx, len)))
        at++;
    if (at == r->r_n_reads)
        return;
    struct raft_read *rd = &r->r_reads[at];
    bool seen = false;
    for (size_t k = 0; k < rd->rr_n_acks; k++)
        seen |= rd->rr_acks[k] == from;
    if (!seen) {
        uint64_t *a = mem_realloc(rd->rr_acks, (rd->rr_n_acks + 1) * sizeof *a);
        if (!a) {
            raft_fail(r);
            return;
        }
        rd->rr_acks = a;
        a[rd->rr_n_acks++] = from;
    }
    if (!raft_acks_quorum(r, rd))
        return;
    size_t n = at + 1;
    for (size_t i = 0; i < n; i++)
        raft_read_respond(r, r->r_reads[i].rr_from, r->r_reads[i].rr_index, r->r_reads[i].rr_ctx,
                          r->r_reads[i].rr_len);
    raft_reads_free(r->r_reads, &n);
    memmove(r->r_reads, r->r_reads + at + 1, (r->r_n_reads - at - 1) * sizeof *r->r_reads);
    r->r_n_reads -= at + 1;
}

static bool raft_committed_in_term(const struct raft *r)
{
    return raft_log_term0(&r->r_log, r->r_log.g_committed) == r->r_term;
}

/* ---- public: lifecycle ---- */

static int raft_encode_cc(struct raft *r, const struct api_raft_conf_change *cc,
                          struct mem_buf *out)
{
    if (pb_encode(&api_raft_conf_change_desc, cc, out) != 0) {
        raft_fail(r);
        return r->r_err;
    }
    return 0;
}

int raft_new(const struct raft_config *c, struct raft **out)
{
    *out = NULL;
    if (c->id == 0 || c->heartbeat_tick <= 0 || c->election_tick <= c->heartbeat_tick ||
        c->max_inflight == 0)
        return RAFT_EINVAL;
    struct raft *r = mem_calloc(1, sizeof *r);
    if (!r)
        return RAFT_ENOMEM;
    r->r_id = c->id;
    r->r_election_timeout = c->election_tick;
    r->r_heartbeat_timeout = c->heartbeat_tick;
    r->r_pre_vote = c->pre_vote;
    r->r_check_quorum = c->check_quorum;
    r->r_max_msg_size = c->max_size_per_msg;
    r->r_max_committed_size = c->max_committed_size ? c->max_committed_size : c->max_size_per_msg;
    r->r_max_uncommitted = c->max_uncommitted_size;
    r->r_max_inflight = c->max_inflight;
    r->r_rand = c->seed ^ 0x9E3779B97F4A7C15ULL;
    if (r->r_rand == 0)
        r->r_rand = 1;
    mem_arena_init(&r->r_out[0].o_arena, 0);
    mem_arena_init(&r->r_out[1].o_arena, 0);
    struct raft_log *g = &r->r_log;
    g->g_first = 1;
    g->g_unstable = 1;

    int rc = RAFT_EINVAL;
    const struct api_raft_snapshot *s = c->snapshot;
    if (s && s->metadata && s->metadata->index) {
        const struct api_raft_snapshot_metadata *md = s->metadata;
        struct api_raft_snapshot *copy = raft_snap_copy(r, md->index, md->term, md->conf_state,
                                                        s->data.p, s->data.len, s->data.p != NULL);
        if (!copy)
            goto fail;
        r->r_snap = copy;
        raft_log_clear(r, md->index, md->term);
        g->g_applied = md->index;
    }
    for (size_t i = 0; i < c->n_entries; i++) {
        const struct api_raft_entry *e = &c->entries[i];
        if (e->Index < g->g_first)
            continue;
        if (e->Index > raft_log_last(g) + 1)
            goto fail;
        if (!raft_log_append(r, e, 1))
            goto fail;
    }
    g->g_unstable = raft_log_last(g) + 1;
    if (c->hard_state) {
        const struct api_raft_hard_state *hs = c->hard_state;
        if (hs->commit > raft_log_last(g))
            goto fail;
        /* The snapshot's index is committed even if the hard state says
         * less. */
        if (hs->commit > g->g_committed)
            g->g_committed = hs->commit;
        r->r_term = hs->term;
        r->r_vote = hs->vote;
    }
    if (c->applied) {
        if (c->applied < g->g_applied || c->applied > g->g_committed)
            goto fail;
        g->g_applied = c->applied;
    }
    rc = raft_config_restore(r, c->conf_state);
    if (rc)
        goto fail;
    raft_become_follower(r, r->r_term, 0);
    r->r_prev_hs = (struct api_raft_hard_state){r->r_term, r->r_vote, g->g_committed};
    r->r_prev_lead = 0;
    r->r_prev_role = RAFT_FOLLOWER;
    *out = r;
    return 0;
fail:
    if (r->r_err)
        rc = r->r_err;
    raft_free(r);
    return rc;
}

void raft_free(struct raft *r)
{
    if (!r)
        return;
    struct raft_log *g = &r->r_log;
    for (uint64_t i = g->g_first; i <= raft_log_last(g); i++)
        raft_bury(r, raft_log_ent(g, i)->Data.p);
    raft_bury(r, r->r_snap);
    for (int i = 0; i < 2; i++) {
        raft_outbox_release(&r->r_out[i]);
        mem_arena_free(&r->r_out[i].o_arena);
        mem_free(r->r_out[i].o_msgs);
        mem_free(r->r_out[i].o_reads);
    }
    mem_free(g->g_ents);
    raft_prs_clear(r);
    mem_free(r->r_prs);
    mem_free(r->r_cs_voters);
    mem_free(r->r_cs_learners);
    raft_reads_free(r->r_reads, &r->r_n_reads);
    mem_free(r->r_reads);
    raft_reads_free(r->r_reads_wait, &r->r_n_reads_wait);
    mem_free(r->r_reads_wait);
    mem_free(r);
}

int raft_bootstrap(struct raft *r, const uint64_t *ids, const struct pb_bytes *contexts, size_t n)
{
    struct raft_log *g = &r->r_log;
    if (r->r_err)
        return r->r_err;
    if (n == 0 || raft_log_last(g) != 0 || r->r_snap || r->r_term != 0)
        return RAFT_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (ids[i] == 0)
            return RAFT_EINVAL;
    raft_become_follower(r, 1, 0);
    struct mem_buf b = {0};
    for (size_t i = 0; i < n; i++) {
        struct api_raft_conf_change cc = {.type = API_CONF_ADD_NODE, .NodeID = ids[i]};
        if (contexts)
            cc.context = contexts[i];
        b.len = 0;
        if (raft_encode_cc(r, &cc, &b))
            break;
        struct api_raft_entry e = {.Type = API_ENTRY_CONF_CHANGE, .Term = 1, .Index = i + 1,
                                   .Data = {b.data ? b.data : (const uint8_t *)"", b.len}};
        if (!raft_log_append(r, &e, 1))
            break;
    }
    mem_buf_free(&b);
    if (r->r_err)
        return r->r_err;
    g->g_committed = n;
    for (size_t i = 0; i < n; i++) {
        struct api_raft_conf_change cc = {.type = API_CONF_ADD_NODE, .NodeID = ids[i]};
        int rc = raft_apply_conf_change(r, &cc, NULL);
        if (rc)
            return rc;
    }
    /* The first ready must carry the hard state. */
    r->r_prev_hs = (struct api_raft_hard_state){0, 0, 0};
    return 0;
}

/* ---- public: input ---- */

int raft_tick(struct raft *r)
{
    if (r->r_err)
        return r->r_err;
    if (r->r_role != RAFT_LEADER) {
        r->r_election_elapsed++;
        if (raft_promotable(r) && r->r_election_elapsed >= r->r_randomized_timeout) {
            r->r_election_elapsed = 0;
            raft_hup(r);
        }
        return r->r_err;
    }
    r->r_heartbeat_elapsed++;
    r->r_election_elapsed++;
    if (r->r_election_elapsed >= r->r_election_timeout) {
        r->r_election_elapsed = 0;
        if (r->r_check_quorum)
            raft_check_quorum(r);
        /* A transfer that did not finish in an election timeout is
         * abandoned: we go on leading. */
        if (r->r_role == RAFT_LEADER)
            r->r_transferee = 0;
    }
    if (r->r_role == RAFT_LEADER && r->r_heartbeat_elapsed >= r->r_heartbeat_timeout) {
        r->r_heartbeat_elapsed = 0;
        /* The newest pending read rides along: its confirmation confirms
         * every read queued before it too. */
        const struct raft_read *last = r->r_n_reads ? &r->r_reads[r->r_n_reads - 1] : NULL;
        raft_bcast_heartbeat(r, last ? last->rr_ctx : NULL, last ? last->rr_len : 0);
    }
    return r->r_err;
}

int raft_step(struct raft *r, const struct api_raft_message *m)
{
    if (r->r_err)
        return r->r_err;
    switch (m->type) {
    case RAFT_MSG_HUP:
    case RAFT_MSG_BEAT:
    case RAFT_MSG_UNREACHABLE:
    case RAFT_MSG_SNAP_STATUS:
    case RAFT_MSG_CHECK_QUORUM:
        return RAFT_ELOCAL;
    case RAFT_MSG_APP_RESP:
    case RAFT_MSG_VOTE_RESP:
    case RAFT_MSG_HEARTBEAT_RESP:
    case RAFT_MSG_PRE_VOTE_RESP:
        if (!raft_pr(r, m->from))
            return RAFT_EPEER;
        break;
    case RAFT_MSG_PROP:
        if (m->n_entries == 0)
            return RAFT_EDROPPED;
        break;
    case RAFT_MSG_APP:
        /* Entries must follow m->index without gaps: the log code relies
         * on it and a peer's bytes are not to be trusted. */
        for (size_t k = 0; k < m->n_entries; k++)
            if (m->entries[k].Index != m->index + 1 + k)
                return 0;
        break;
    case RAFT_MSG_SNAP:
        if (!m->snapshot || !m->snapshot->metadata || !m->snapshot->metadata->index)
            return 0;
        break;
    case RAFT_MSG_READ_INDEX:
        if (m->n_entries != 1 || m->entries[0].Data.len == 0)
            return 0;
        break;
    case RAFT_MSG_VOTE:
    case RAFT_MSG_PRE_VOTE:
        if (m->term == 0) /* a vote is always for some term */
            return 0;
        break;
    case RAFT_MSG_HEARTBEAT:
    case RAFT_MSG_TRANSFER_LEADER:
    case RAFT_MSG_TIMEOUT_NOW:
    case RAFT_MSG_READ_INDEX_RESP:
        break;
    default:
        return RAFT_EINVAL;
    }
    if (m->from == 0)
        return 0;
    int rc = raft_step_msg(r, m);
    return r->r_err ? r->r_err : rc;
}

int raft_propose(struct raft *r, const void *data, size_t len)
{
    if (r->r_err)
        return r->r_err;
    struct api_raft_entry e = {.Type = API_ENTRY_NORMAL,
                               .Data = {data ? data : (const uint8_t *)"", len}};
    int rc = raft_step_msg(r, &(struct api_raft_message){
                                  .type = RAFT_MSG_PROP, .from = r->r_id, .entries = &e,
                                  .n_entries = 1});
    return r->r_err ? r->r_err : rc;
}

int raft_propose_conf_change(struct raft *r, const struct api_raft_conf_change *cc)
{
    if (r->r_err)
        return r->r_err;
    struct mem_buf b = {0};
    int rc = raft_encode_cc(r, cc, &b);
    if (rc == 0) {
        struct api_raft_entry e = {.Type = API_ENTRY_CONF_CHANGE,
                                   .Data = {b.data ? b.data : (const uint8_t *)"", b.len}};
        rc = raft_step_msg(r, &(struct api_raft_message){
                                 .type = RAFT_MSG_PROP, .from = r->r_id, .entries = &e,
                                 .n_entries = 1});
    }
    mem_buf_free(&b);
    return r->r_err ? r->r_err : rc;
}

int raft_read_index(struct raft *r, const void *ctx, size_t len)
{
    if (r->r_err)
        return r->r_err;
    if (len == 0)
        return RAFT_EINVAL;
    struct api_raft_entry e = {.Data = {ctx, len}};
    int rc = raft_step_msg(r, &(struct api_raft_message){
                                  .type = RAFT_MSG_READ_INDEX, .entries = &e, .n_entries = 1});
    return r->r_err ? r->r_err : rc;
}

int raft_campaign(struct raft *r)
{
    if (r->r_err)
        return r->r_err;
    raft_hup(r);
    return r->r_err;
}

int raft_transfer_leader(struct raft *r, uint64_t transferee)
{
    if (r->r_err)
        return r->r_err;
    if (transferee == 0)
        return RAFT_EINVAL;
    int rc = raft_step_msg(r, &(struct api_raft_message){.type = RAFT_MSG_TRANSFER_LEADER,
                                                          .from = transferee});
    return r->r_err ? r->r_err : rc == RAFT_EDROPPED ? 0 : rc;
}

int raft_report_unreachable(struct raft *r, uint64_t id)
{
    if (r->r_err)
        return r->r_err;
    if (r->r_role == RAFT_LEADER)
        raft_step_leader(r, &(struct api_raft_message){.type = RAFT_MSG_UNREACHABLE, .from = id});
    return r->r_err;
}

int raft_report_snapshot(struct raft *r, uint64_t id, bool failed)
{
    if (r->r_err)
        return r->r_err;
    if (r->r_role == RAFT_LEADER)
        raft_step_leader(r, &(struct api_raft_message){
                                .type = RAFT_MSG_SNAP_STATUS, .from = id, .reject = failed});
    return r->r_err;
}

int raft_apply_conf_change(struct raft *r, const struct api_raft_conf_change *cc,
                           struct api_raft_conf_state *cs)
{
    if (r->r_err)
        return r->r_err;
    struct raft_progress *pr = cc->NodeID ? raft_pr(r, cc->NodeID) : NULL;
    bool voter = pr && !pr->p_learner;
    size_t nv = raft_n_voters(r);
    switch (cc->NodeID ? cc->type : API_CONF_UPDATE_NODE) {
    case API_CONF_ADD_NODE:
        if (pr)
            pr->p_learner = false;
        else if (!raft_pr_add(r, cc->NodeID, false))
            return r->r_err;
        break;
    case API_CONF_ADD_LEARNER_NODE:
        if (voter && nv == 1)
            return RAFT_EINVAL;
        if (pr)
            pr->p_learner = true;
        else if (!raft_pr_add(r, cc->NodeID, true))
            return r->r_err;
        break;
    case API_CONF_REMOVE_NODE:
        if (voter && nv == 1)
            return RAFT_EINVAL;
        raft_pr_remove(r, cc->NodeID);
        break;
    case API_CONF_UPDATE_NODE:
        break;
    default:
        return RAFT_EINVAL;
    }
    if (!raft_config_changed(r))
        return r->r_err;
    if (cs)
        raft_conf_state(r, cs);
    /* raft.switchToConfig: a removed or demoted leader keeps leading
     * (etcd's server stops a removed member); otherwise a smaller quorum
     * may commit more, and new members are probed right away. */
    if (r->r_role != RAFT_LEADER || !raft_promotable(r))
        return 0;
    if (raft_maybe_commit(r)) {
        raft_committed_advanced(r);
    } else {
        for (size_t i = 0; i < r->r_n_prs; i++)
            if (r->r_prs[i].p_id != r->r_id)
                raft_maybe_send_append(r, &r->r_prs[i], false);
    }
    if (r->r_transferee && !raft_pr(r, r->r_transferee))
        r->r_transferee = 0;
    return r->r_err;
}

/* ---- public: output ---- */

bool raft_has_ready(const struct raft *r)
{
    const struct raft_log *g = &r->r_log;
    const struct raft_outbox *o = &r->r_out[r->r_cur];
    if (r->r_err || r->r_ready_out)
        return false;
    uint64_t off = g->g_applied + 1 > g->g_first ? g->g_applied + 1 : g->g_first;
    bool hs_changed = r->r_term != r->r_prev_hs.term || r->r_vote != r->r_prev_hs.vote ||
                      g->g_committed != r->r_prev_hs.commit;
    return r->r_lead != r->r_prev_lead || r->r_role != r->r_prev_role || hs_changed ||
           r->r_snap_pending || o->o_n_msgs || o->o_n_reads ||
           g->g_unstable <= raft_log_last(g) || g->g_committed >= off;
}

int raft_ready(struct raft *r, struct raft_ready *rd)
{
    struct raft_log *g = &r->r_log;
    struct raft_outbox *o = &r->r_out[r->r_cur];
    memset(rd, 0, sizeof *rd);
    if (r->r_err)
        return r->r_err;
    if (r->r_ready_out)
        return RAFT_EBUSY;
    struct api_raft_entry *ents;
    size_t n;
    if (!raft_log_slice(r, g->g_unstable, raft_log_last(g) + 1, UINT64_MAX, &ents, &n))
        return r->r_err;
    rd->entries = ents;
    rd->n_entries = n;
    uint64_t off = g->g_applied + 1 > g->g_first ? g->g_applied + 1 : g->g_first;
    if (!raft_log_slice(r, off, g->g_committed + 1, r->r_max_committed_size, &ents, &n))
        return r->r_err;
    rd->committed = ents;
    rd->n_committed = n;
    if (r->r_snap_pending)
        rd->snapshot = r->r_snap;

    struct api_raft_hard_state hs = {r->r_term, r->r_vote, g->g_committed};
    rd->must_sync = rd->n_entries || hs.term != r->r_prev_hs.term || hs.vote != r->r_prev_hs.vote;
    if (memcmp(&hs, &r->r_prev_hs, sizeof hs) != 0) {
        rd->hard_state = hs;
        rd->has_hard_state = true;
        r->r_prev_hs = hs;
    }
    rd->lead = r->r_lead;
    rd->role = r->r_role;
    rd->soft_changed = r->r_lead != r->r_prev_lead || r->r_role != r->r_prev_role;
    r->r_prev_lead = r->r_lead;
    r->r_prev_role = r->r_role;

    rd->msgs = o->o_msgs;
    rd->n_msgs = o->o_n_msgs;
    rd->read_states = o->o_reads;
    rd->n_read_states = o->o_n_reads;
    r->r_ready_out = true;
    r->r_cur ^= 1;
    return 0;
}

int raft_advance(struct raft *r, const struct raft_ready *rd)
{
    struct raft_log *g = &r->r_log;
    if (r->r_err)
        return r->r_err;
    if (!r->r_ready_out)
        return RAFT_EINVAL;
    /* raft.advance: the applied cursor, then what became stable. */
    uint64_t applied = rd->n_committed ? rd->committed[rd->n_committed - 1].Index
                       : rd->snapshot   ? rd->snapshot->metadata->index
                                        : 0;
    if (applied > g->g_applied && applied <= g->g_committed)
        g->g_applied = applied;
    uint64_t done = 0;
    for (size_t i = 0; i < rd->n_committed; i++)
        done += rd->committed[i].Data.len;
    r->r_uncommitted_size = done < r->r_uncommitted_size ? r->r_uncommitted_size - done : 0;
    if (rd->n_entries) {
        /* unstable.stableTo: only if that entry is still ours (a newer
         * leader may have replaced it meanwhile). */
        const struct api_raft_entry *e = &rd->entries[rd->n_entries - 1];
        if (e->Index >= g->g_unstable && raft_log_match(g, e->Index, e->Term))
            g->g_unstable = e->Index + 1;
    }
    if (rd->snapshot && r->r_snap == rd->snapshot)
        r->r_snap_pending = false;
    raft_outbox_release(&r->r_out[r->r_cur ^ 1]);
    r->r_ready_out = false;

    /* The leader's own persisted entries count now (thesis 10.2.1). */
    struct raft_progress *self = raft_pr(r, r->r_id);
    if (r->r_role == RAFT_LEADER && self && raft_pr_maybe_update(self, g->g_unstable - 1) &&
        raft_maybe_commit(r))
        raft_committed_advanced(r);
    return r->r_err;
}

/* ---- public: snapshots and compaction ---- */

int raft_snapshot_create(struct raft *r, uint64_t index, const struct api_raft_conf_state *cs,
                         const void *data, size_t len)
{
    const struct raft_log *g = &r->r_log;
    if (r->r_err)
        return r->r_err;
    if (index > g->g_applied || (r->r_snap && index < r->r_snap->metadata->index) || index == 0 ||
        (cs && (cs->n_voters_outgoing || cs->n_learners_next)))
        return RAFT_EINVAL;
    uint64_t term;
    if (!raft_log_term(g, index, &term))
        return RAFT_ECOMPACTED;
    struct api_raft_snapshot *s = raft_snap_copy(r, index, term, cs, data, len, true);
    if (!s)
        return r->r_err;
    /* A received snapshot not yet handed out is newer than anything we
     * applied, so this one cannot replace it (index <= applied). */
    assert(!r->r_snap_pending);
    raft_snap_set(r, s);
    if (index + 1 >= g->g_first)
        r->r_want_snap = false;
    return 0;
}

const struct api_raft_snapshot *raft_snapshot(const struct raft *r)
{
    return r->r_snap;
}

int raft_compact(struct raft *r, uint64_t index)
{
    struct raft_log *g = &r->r_log;
    if (r->r_err)
        return r->r_err;
    if (index < g->g_first)
        return 0;
    bool alone = r->r_n_prs == 1 && r->r_prs[0].p_id == r->r_id;
    if (index > g->g_applied || index >= g->g_unstable ||
        (!alone && (!r->r_snap || index > r->r_snap->metadata->index)))
        return RAFT_EINVAL;
    raft_log_compact(r, index);
    return 0;
}

/* ---- public: status ---- */

void raft_status(const struct raft *r, struct raft_status *st)
{
    const struct raft_log *g = &r->r_log;
    *st = (struct raft_status){
        .id = r->r_id,
        .term = r->r_term,
        .vote = r->r_vote,
        .lead = r->r_lead,
        .commit = g->g_committed,
        .applied = g->g_applied,
        .first_index = g->g_first,
        .last_index = raft_log_last(g),
        .lead_transferee = r->r_transferee,
        .uncommitted_bytes = r->r_uncommitted_size,
        .role = r->r_role,
        .learner = r->r_learner,
        .want_snapshot = r->r_want_snap,
        .log_bytes = g->g_bytes,
    };
}

int raft_progress(const struct raft *r, uint64_t id, struct raft_progress_info *out)
{
    const struct raft_progress *pr = raft_pr(r, id);
    if (!pr)
        return RAFT_EPEER;
    *out = (struct raft_progress_info){.match = pr->p_match,
                                       .next = pr->p_next,
                                       .state = pr->p_state,
                                       .learner = pr->p_learner,
                                       .recent_active = pr->p_recent_active};
    return 0;
}

void raft_conf_state(const struct raft *r, struct api_raft_conf_state *cs)
{
    *cs = (struct api_raft_conf_state){.voters = r->r_cs_voters,
                                       .n_voters = r->r_cs_n_voters,
                                       .learners = r->r_cs_learners,
                                       .n_learners = r->r_cs_n_learners};
}

int raft_term_at(const struct raft *r, uint64_t index, uint64_t *term)
{
    *term = 0;
    if (index > raft_log_last(&r->r_log))
        return RAFT_EINVAL;
    return raft_log_term(&r->r_log, index, term) ? 0 : RAFT_ECOMPACTED;
}
