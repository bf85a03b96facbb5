/* test_raft.c - raft.c against etcd's raft semantics and the Raft safety
 * properties.
 *
 * A deterministic in-memory cluster (struct cluster) drives real struct
 * raft instances: simulated time (ticks); a network that encodes every
 * message as raftpb.Message and decodes it at the receiver (so the wire
 * format is exercised too) and can drop, duplicate, reorder and partition;
 * per-node persisted state (hard state, entries, snapshot) that survives a
 * crash while everything else, an outstanding ready included, is lost;
 * slow disks (a node completes its readies late, the leader replicating
 * meanwhile, as raft.h allows); and a state machine that is a hash chain
 * over the applied entries.  After every step the checks run: election
 * safety, log matching, leader completeness, state machine safety,
 * ReadIndex linearizability; at the end of a random run the network heals
 * and a leader must be elected and commit within bounded ticks.
 * Directed tests reproduce the cases of the Raft paper and etcd's
 * raft_test.go: stale votes, log conflicts and reject hints, Figure 8,
 * ReadIndex, snapshots, membership changes and learners, leader transfer,
 * PreVote, CheckQuorum; and an allocation-failure sweep. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../raft.c"

#define MAXN 7

/* ---- PRNG, hashing ---- */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001B3ULL;
    return h;
}

static uint64_t entry_hash(const struct api_raft_entry *e)
{
    uint64_t h = fnv(0xCBF29CE484222325ULL, &e->Term, sizeof e->Term);
    h = fnv(h, &e->Type, sizeof e->Type);
    return fnv(h, e->Data.p, e->Data.len);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

/* ---- the fixture ---- */

struct node {
    uint64_t id;
    struct raft *r; /* NULL while crashed */
    bool has_rd;
    struct raft_ready rd;
    bool bootstrap; /* a founding member: re-bootstraps if it crashed before persisting */
    bool hold;      /* settle() leaves its outstanding ready alone */
    bool slow;      /* chaos: completes its readies rarely (a slow disk) */

    /* persisted */
    bool has_hs;
    struct api_raft_hard_state hs;
    struct api_raft_entry *log; /* entries after the snapshot; Data malloc'd */
    size_t n_log;
    bool has_snap;
    uint64_t snap_index, snap_term;
    uint64_t snap_voters[MAXN + 2], snap_learners[MAXN + 2];
    size_t snap_nv, snap_nl;
    uint8_t snap_data[16];

    /* volatile state machine */
    uint64_t applied, sm;
    uint64_t n_reads_done;
};

struct wire {
    uint64_t from, to;
    int32_t type;
    uint8_t *buf;
    size_t len;
};

struct commit_rec {
    uint64_t term;     /* entry term, 0 = unknown */
    uint64_t obs_term; /* smallest term of a node seen holding it committed */
};

struct apply_rec {
    bool set;
    uint64_t term, hash, sm;
};

struct pending_read {
    uint64_t min_index; /* committed somewhere when the read was asked */
    bool done;
};

struct cluster {
    size_t n;
    struct node nd[MAXN];
    struct wire *net;
    size_t n_net, cap_net;
    bool cut[MAXN + 1][MAXN + 1];
    uint64_t drop_pct, dup_pct; /* chaos, per delivery, in percent */
    uint64_t rng;
    struct raft_config cfg; /* template for every node */
    uint64_t snap_every, snap_keep; /* 0 = never snapshot */
    bool compact_alone; /* a lone member compacts its log up to applied, as
                           node.c does, and snapshots when raft asks */

    uint64_t *term_leader;
    size_t cap_term_leader;
    struct commit_rec *crec;
    size_t cap_crec;
    uint64_t max_committed;
    struct apply_rec *arec;
    size_t cap_arec;
    struct pending_read *reads;
    size_t n_reads;
    uint64_t next_prop;
    uint64_t snaps_sent, snaps_restored;
    bool drop_snap; /* lose every MsgSnap */
    struct mem_arena arena;
};

static struct node *N(struct cluster *c, uint64_t id)
{
    assert_true(id >= 1 && id <= c->n);
    return &c->nd[id - 1];
}

static struct raft *R(struct cluster *c, uint64_t id)
{
    assert_non_null(N(c, id)->r);
    return N(c, id)->r;
}

static void *grow(void *p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return p;
    size_t n = *cap ? *cap : 16;
    while (n < need)
        n *= 2;
    uint8_t *q = realloc(p, n * size);
    assert_non_null(q);
    memset(q + *cap * size, 0, (n - *cap) * size);
    *cap = n;
    return q;
}

static void plog_truncate(struct node *nd, uint64_t from_index)
{
    while (nd->n_log && nd->log[nd->n_log - 1].Index >= from_index) {
        nd->n_log--;
        free((void *)nd->log[nd->n_log].Data.p);
    }
}

static void plog_append(struct node *nd, const struct api_raft_entry *e)
{
    nd->log = realloc(nd->log, (nd->n_log + 1) * sizeof *nd->log);
    assert_non_null(nd->log);
    struct api_raft_entry *d = &nd->log[nd->n_log++];
    *d = *e;
    if (e->Data.p) {
        uint8_t *p = xmalloc(e->Data.len);
        memcpy(p, e->Data.p, e->Data.len);
        d->Data.p = p;
    }
}

static void plog_drop_upto(struct node *nd, uint64_t index)
{
    size_t k = 0;
    while (k < nd->n_log && nd->log[k].Index <= index)
        free((void *)nd->log[k++].Data.p);
    memmove(nd->log, nd->log + k, (nd->n_log - k) * sizeof *nd->log);
    nd->n_log -= k;
}

static void persist_snap_meta(struct node *nd, const struct api_raft_snapshot *s)
{
    const struct api_raft_conf_state *cs = s->metadata->conf_state;
    nd->has_snap = true;
    nd->snap_index = s->metadata->index;
    nd->snap_term = s->metadata->term;
    nd->snap_nv = cs ? cs->n_voters : 0;
    nd->snap_nl = cs ? cs->n_learners : 0;
    assert_true(nd->snap_nv <= MAXN + 2 && nd->snap_nl <= MAXN + 2);
    if (nd->snap_nv)
        memcpy(nd->snap_voters, cs->voters, nd->snap_nv * sizeof(uint64_t));
    if (nd->snap_nl)
        memcpy(nd->snap_learners, cs->learners, nd->snap_nl * sizeof(uint64_t));
    assert_int_equal(s->data.len, 16);
    memcpy(nd->snap_data, s->data.p, 16);
}

static struct commit_rec *crec_at(struct cluster *c, uint64_t i)
{
    c->crec = grow(c->crec, &c->cap_crec, i + 1, sizeof *c->crec);
    return &c->crec[i];
}

static struct apply_rec *arec_at(struct cluster *c, uint64_t i)
{
    c->arec = grow(c->arec, &c->cap_arec, i + 1, sizeof *c->arec);
    return &c->arec[i];
}

/* Start (or restart) a node from what it persisted, as a member does after
 * a crash: hard state, entries after the snapshot, the snapshot's
 * configuration; its state machine comes back from the snapshot. */
static void node_start(struct cluster *c, struct node *nd)
{
    struct raft_config cfg = c->cfg;
    struct api_raft_conf_state cs = {.voters = nd->snap_voters, .n_voters = nd->snap_nv,
                                     .learners = nd->snap_learners, .n_learners = nd->snap_nl};
    struct api_raft_snapshot_metadata md = {.conf_state = &cs, .index = nd->snap_index,
                                            .term = nd->snap_term};
    struct api_raft_snapshot snap = {.data = {nd->snap_data, 16}, .metadata = &md};
    cfg.id = nd->id;
    cfg.seed = rng_next(&c->rng);
    if (nd->has_snap) {
        cfg.snapshot = &snap;
        cfg.conf_state = &cs;
    }
    cfg.hard_state = nd->has_hs ? &nd->hs : NULL;
    cfg.entries = nd->log;
    cfg.n_entries = nd->n_log;
    assert_int_equal(raft_new(&cfg, &nd->r), 0);
    nd->applied = 0;
    nd->sm = 0;
    if (nd->has_snap) {
        memcpy(&nd->applied, nd->snap_data, 8);
        memcpy(&nd->sm, nd->snap_data + 8, 8);
    }
    if (nd->bootstrap && !nd->has_hs && !nd->n_log && !nd->has_snap) {
        uint64_t ids[MAXN];
        size_t n = 0;
        for (size_t i = 0; i < c->n; i++)
            if (c->nd[i].bootstrap)
                ids[n++] = c->nd[i].id;
        assert_int_equal(raft_bootstrap(nd->r, ids, NULL, n), 0);
    }
}

static void node_crash(struct node *nd)
{
    raft_free(nd->r);
    nd->r = NULL;
    nd->has_rd = false;
}

static void cluster_init(struct cluster *c, size_t n, size_t founders, uint64_t seed,
                         bool pre_vote, bool check_quorum)
{
    memset(c, 0, sizeof *c);
    c->n = n;
    c->rng = seed;
    c->cfg = (struct raft_config){.election_tick = 10,
                                  .heartbeat_tick = 1,
                                  .pre_vote = pre_vote,
                                  .check_quorum = check_quorum,
                                  .max_size_per_msg = 64,
                                  .max_committed_size = 256,
                                  .max_uncommitted_size = 512,
                                  .max_inflight = 4};
    mem_arena_init(&c->arena, 0);
    for (size_t i = 0; i < n; i++) {
        c->nd[i].id = i + 1;
        c->nd[i].bootstrap = i < founders;
    }
    for (size_t i = 0; i < n; i++)
        node_start(c, &c->nd[i]);
}

static void cluster_free(struct cluster *c)
{
    for (size_t i = 0; i < c->n; i++) {
        node_crash(&c->nd[i]);
        plog_truncate(&c->nd[i], 0);
        free(c->nd[i].log);
    }
    for (size_t i = 0; i < c->n_net; i++)
        free(c->net[i].buf);
    free(c->net);
    free(c->term_leader);
    free(c->crec);
    free(c->arec);
    free(c->reads);
    mem_arena_free(&c->arena);
}

static void net_send(struct cluster *c, const struct api_raft_message *m)
{
    struct mem_buf b = {0};
    assert_int_equal(pb_encode(&api_raft_message_desc, m, &b), 0);
    c->net = grow(c->net, &c->cap_net, c->n_net + 1, sizeof *c->net);
    c->net[c->n_net++] = (struct wire){m->from, m->to, m->type, b.data, b.len};
    if (m->type == RAFT_MSG_SNAP)
        c->snaps_sent++;
}

/* A leader's replication messages may leave before its own write is
 * durable (raft.h); everything else waits for node_complete. */
static bool early(const struct raft_ready *rd, const struct api_raft_message *m)
{
    return rd->role == RAFT_LEADER &&
           (m->type == RAFT_MSG_APP || m->type == RAFT_MSG_HEARTBEAT || m->type == RAFT_MSG_SNAP);
}

/* Take the node's next ready (it stays out until node_complete). */
static bool node_take(struct cluster *c, struct node *nd)
{
    if (!nd->r || nd->has_rd || !raft_has_ready(nd->r))
        return false;
    assert_int_equal(raft_ready(nd->r, &nd->rd), 0);
    nd->has_rd = true;
    for (size_t i = 0; i < nd->rd.n_msgs; i++)
        if (early(&nd->rd, &nd->rd.msgs[i]))
            net_send(c, &nd->rd.msgs[i]);
    return true;
}

static void node_apply(struct cluster *c, struct node *nd, const struct api_raft_entry *e)
{
    assert_int_equal(e->Index, nd->applied + 1); /* in order, no gaps */
    uint64_t h = entry_hash(e);
    nd->sm = fnv(nd->sm ^ h, &e->Index, sizeof e->Index);
    nd->applied = e->Index;
    struct apply_rec *a = arec_at(c, e->Index);
    if (a->set) { /* state machine safety */
        assert_int_equal(a->term, e->Term);
        assert_int_equal(a->hash, h);
        assert_int_equal(a->sm, nd->sm);
    } else {
        *a = (struct apply_rec){true, e->Term, h, nd->sm};
    }
    if (e->Type == API_ENTRY_CONF_CHANGE) {
        struct api_raft_conf_change cc;
        mem_arena_reset(&c->arena);
        assert_int_equal(pb_decode(&api_raft_conf_change_desc, e->Data.p, e->Data.len, &cc,
                                   &c->arena),
                         0);
        assert_int_equal(raft_apply_conf_change(nd->r, &cc, NULL), 0);
    }
}

/* Persist, send, apply, advance: what the server does with a ready. */
static void node_complete(struct cluster *c, struct node *nd)
{
    struct raft_ready *rd = &nd->rd;
    if (!nd->has_rd)
        return;
    if (rd->snapshot) {
        persist_snap_meta(nd, rd->snapshot);
        /* raft dropped its whole log for the snapshot: so does storage */
        plog_truncate(nd, 0);
    }
    if (rd->n_entries) {
        plog_truncate(nd, rd->entries[0].Index);
        for (size_t i = 0; i < rd->n_entries; i++)
            plog_append(nd, &rd->entries[i]);
    }
    if (rd->has_hard_state) {
        nd->hs = rd->hard_state;
        nd->has_hs = true;
    }
    for (size_t i = 0; i < rd->n_msgs; i++)
        if (!early(rd, &rd->msgs[i]))
            net_send(c, &rd->msgs[i]);
    if (rd->snapshot) {
        uint64_t idx, sm;
        memcpy(&idx, rd->snapshot->data.p, 8);
        memcpy(&sm, rd->snapshot->data.p + 8, 8);
        assert_int_equal(idx, rd->snapshot->metadata->index);
        struct apply_rec *a = arec_at(c, idx);
        assert_true(a->set);
        assert_int_equal(a->sm, sm);
        nd->applied = idx;
        nd->sm = sm;
        c->snaps_restored++;
    }
    for (size_t i = 0; i < rd->n_committed; i++)
        node_apply(c, nd, &rd->committed[i]);
    for (size_t i = 0; i < rd->n_read_states; i++) {
        const struct raft_read_state *rs = &rd->read_states[i];
        uint64_t id;
        assert_int_equal(rs->ctx.len, 8);
        memcpy(&id, rs->ctx.p, 8);
        assert_true(id < c->n_reads);
        /* linearizable: the read point covers everything committed
         * anywhere before the read was asked */
        assert_true(rs->index >= c->reads[id].min_index);
        c->reads[id].done = true;
        nd->n_reads_done++;
    }
    assert_int_equal(raft_advance(nd->r, rd), 0);
    nd->has_rd = false;

    if (c->compact_alone) {
        const struct raft_log *g = &nd->r->r_log;
        uint64_t ci = nd->applied < g->g_unstable ? nd->applied : g->g_unstable - 1;
        if (nd->r->r_n_prs == 1 && ci >= g->g_first)
            assert_int_equal(raft_compact(nd->r, ci), 0);
    }
    struct raft_status st;
    raft_status(nd->r, &st);
    /* (a snapshot received meanwhile, not yet handed out, is newer) */
    const struct api_raft_snapshot *cur = raft_snapshot(nd->r);
    if (((c->snap_every && nd->applied >= nd->snap_index + c->snap_every) || st.want_snapshot) &&
        (!cur || cur->metadata->index < nd->applied)) {
        struct api_raft_conf_state cs;
        uint8_t data[16];
        raft_conf_state(nd->r, &cs);
        memcpy(data, &nd->applied, 8);
        memcpy(data + 8, &nd->sm, 8);
        assert_int_equal(raft_snapshot_create(nd->r, nd->applied, &cs, data, 16), 0);
        persist_snap_meta(nd, raft_snapshot(nd->r));
        plog_drop_upto(nd, nd->snap_index);
        uint64_t ci = nd->applied > c->snap_keep ? nd->applied - c->snap_keep : 0;
        if (ci >= nd->r->r_log.g_first && ci < nd->r->r_log.g_unstable)
            assert_int_equal(raft_compact(nd->r, ci), 0);
    }
}

static void node_process(struct cluster *c, struct node *nd)
{
    if (node_take(c, nd))
        node_complete(c, nd);
}

static void deliver(struct cluster *c, size_t k, bool keep_order)
{
    struct wire w = c->net[k];
    if (keep_order)
        memmove(&c->net[k], &c->net[k + 1], (c->n_net - k - 1) * sizeof *c->net);
    else
        c->net[k] = c->net[c->n_net - 1];
    c->n_net--;
    struct node *from = N(c, w.from), *to = N(c, w.to);
    bool lost = c->cut[w.from][w.to] || !to->r || (w.type == RAFT_MSG_SNAP && c->drop_snap) ||
                (c->drop_pct && rng_next(&c->rng) % 100 < c->drop_pct);
    if (w.type == RAFT_MSG_SNAP && from->r)
        assert_int_equal(raft_report_snapshot(from->r, w.to, lost), 0);
    if (lost) {
        if (from->r && !to->r)
            assert_int_equal(raft_report_unreachable(from->r, w.to), 0);
        free(w.buf);
        return;
    }
    if (c->dup_pct && rng_next(&c->rng) % 100 < c->dup_pct) {
        uint8_t *copy = xmalloc(w.len);
        memcpy(copy, w.buf, w.len);
        c->net = grow(c->net, &c->cap_net, c->n_net + 1, sizeof *c->net);
        c->net[c->n_net++] = (struct wire){w.from, w.to, w.type, copy, w.len};
    }
    struct api_raft_message m;
    mem_arena_reset(&c->arena);
    assert_int_equal(pb_decode(&api_raft_message_desc, w.buf, w.len, &m, &c->arena), 0);
    int rc = raft_step(to->r, &m);
    assert_true(rc == 0 || rc == RAFT_EDROPPED || rc == RAFT_EPEER);
    free(w.buf);
}

static bool cluster_busy(struct cluster *c)
{
    if (c->n_net)
        return true;
    for (size_t i = 0; i < c->n; i++)
        if (c->nd[i].r && !c->nd[i].hold && (c->nd[i].has_rd || raft_has_ready(c->nd[i].r)))
            return true;
    return false;
}

/* Process readies and deliver messages in order until nothing moves. */
static void settle(struct cluster *c)
{
    for (int guard = 0; cluster_busy(c); guard++) {
        assert_true(guard < 10000);
        for (size_t i = 0; i < c->n; i++) {
            if (c->nd[i].hold)
                continue;
            if (c->nd[i].has_rd)
                node_complete(c, &c->nd[i]);
            node_process(c, &c->nd[i]);
        }
        size_t n = c->n_net;
        for (size_t k = 0; k < n && c->n_net; k++)
            deliver(c, 0, true);
    }
}

static void tick_all(struct cluster *c)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->nd[i].r)
            assert_int_equal(raft_tick(c->nd[i].r), 0);
}

static void isolate(struct cluster *c, uint64_t id)
{
    for (uint64_t j = 1; j <= c->n; j++)
        if (j != id)
            c->cut[id][j] = c->cut[j][id] = true;
}

static void heal(struct cluster *c)
{
    memset(c->cut, 0, sizeof c->cut);
}

/* The leader every live node that knows one agrees on, 0 if none. */
static uint64_t leader_of(struct cluster *c)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->nd[i].r && c->nd[i].r->r_role == RAFT_LEADER) {
            uint64_t term = c->nd[i].r->r_term;
            bool newest = true;
            for (size_t j = 0; j < c->n; j++)
                newest &= !c->nd[j].r || c->nd[j].r->r_term <= term;
            if (newest)
                return c->nd[i].id;
        }
    return 0;
}

static uint64_t elect(struct cluster *c, uint64_t id)
{
    assert_int_equal(raft_campaign(R(c, id)), 0);
    settle(c);
    assert_int_equal(R(c, id)->r_role, RAFT_LEADER);
    return R(c, id)->r_term;
}

static void propose(struct cluster *c, uint64_t id, const char *s)
{
    assert_int_equal(raft_propose(R(c, id), s, strlen(s)), 0);
}

static uint64_t read_index(struct cluster *c, uint64_t id, int *rc)
{
    uint64_t rid = c->n_reads;
    c->reads = realloc(c->reads, (c->n_reads + 1) * sizeof *c->reads);
    assert_non_null(c->reads);
    c->reads[c->n_reads++] = (struct pending_read){c->max_committed, false};
    *rc = raft_read_index(R(c, id), &rid, 8);
    return rid;
}

/* ---- safety properties ---- */

static void check_log_matching(const struct raft *a, const struct raft *b)
{
    const struct raft_log *ga = &a->r_log, *gb = &b->r_log;
    uint64_t lo = ga->g_first > gb->g_first ? ga->g_first : gb->g_first;
    uint64_t hi = raft_log_last(ga) < raft_log_last(gb) ? raft_log_last(ga) : raft_log_last(gb);
    uint64_t top = 0;
    for (uint64_t i = hi; i >= lo && i > 0; i--)
        if (raft_log_ent(ga, i)->Term == raft_log_ent(gb, i)->Term) {
            top = i;
            break;
        }
    /* same index and term => identical logs up to there */
    for (uint64_t i = lo; i <= top; i++) {
        const struct api_raft_entry *x = raft_log_ent(ga, i), *y = raft_log_ent(gb, i);
        assert_int_equal(x->Term, y->Term);
        assert_int_equal(x->Type, y->Type);
        assert_int_equal(entry_hash(x), entry_hash(y));
    }
}

static void check_safety(struct cluster *c)
{
    for (size_t i = 0; i < c->n; i++) {
        const struct raft *r = c->nd[i].r;
        if (!r)
            continue;
        const struct raft_log *g = &r->r_log;
        assert_int_equal(r->r_err, 0);
        assert_true(g->g_applied <= g->g_committed && g->g_committed <= raft_log_last(g));
        /* election safety: one leader per term */
        if (r->r_role == RAFT_LEADER) {
            c->term_leader = grow(c->term_leader, &c->cap_term_leader, r->r_term + 1,
                                  sizeof *c->term_leader);
            if (c->term_leader[r->r_term])
                assert_int_equal(c->term_leader[r->r_term], r->r_id);
            c->term_leader[r->r_term] = r->r_id;
        }
        /* committed entries never change */
        for (uint64_t k = g->g_first; k <= g->g_committed; k++) {
            struct commit_rec *cr = crec_at(c, k);
            uint64_t t = raft_log_ent(g, k)->Term;
            if (cr->term)
                assert_int_equal(cr->term, t);
            else
                *cr = (struct commit_rec){t, r->r_term};
            if (r->r_term < cr->obs_term)
                cr->obs_term = r->r_term;
        }
        if (g->g_committed > c->max_committed)
            c->max_committed = g->g_committed;
    }
    for (size_t i = 0; i < c->n; i++) {
        const struct raft *r = c->nd[i].r;
        if (!r)
            continue;
        /* leader completeness: a leader has every entry committed in an
         * earlier term */
        if (r->r_role == RAFT_LEADER) {
            const struct raft_log *g = &r->r_log;
            for (uint64_t k = g->g_first; k <= c->max_committed; k++) {
                const struct commit_rec *cr = crec_at(c, k);
                if (!cr->term || cr->obs_term >= r->r_term)
                    continue;
                assert_true(k <= raft_log_last(g));
                assert_int_equal(raft_log_ent(g, k)->Term, cr->term);
            }
        }
        /* log matching */
        for (size_t j = i + 1; j < c->n; j++)
            if (c->nd[j].r)
                check_log_matching(r, c->nd[j].r);
    }
}

/* ---- random runs ---- */

/* Heal everything, then a leader must appear and a new proposal must be
 * applied everywhere within a bounded number of ticks. */
static void check_liveness(struct cluster *c)
{
    heal(c);
    c->drop_pct = c->dup_pct = 0;
    for (size_t i = 0; i < c->n; i++)
        if (!c->nd[i].r)
            node_start(c, &c->nd[i]);
    settle(c);
    check_safety(c);
    char buf[32];
    snprintf(buf, sizeof buf, "live-%" PRIu64, c->next_prop++);
    bool proposed = false;
    uint64_t target = 0;
    for (int t = 0; t < 400; t++) {
        uint64_t l = leader_of(c);
        if (l && !proposed) {
            int rc = raft_propose(R(c, l), buf, strlen(buf));
            assert_true(rc == 0 || rc == RAFT_EDROPPED);
            if (rc == 0) {
                proposed = true;
                target = raft_log_last(&R(c, l)->r_log);
            }
        }
        settle(c);
        check_safety(c);
        if (proposed) {
            bool all = true;
            for (size_t i = 0; i < c->n; i++)
                all &= c->nd[i].applied >= target;
            if (all) {
                /* and every state machine is the same */
                for (size_t i = 1; i < c->n; i++)
                    if (c->nd[i].applied == c->nd[0].applied)
                        assert_int_equal(c->nd[i].sm, c->nd[0].sm);
                return;
            }
        }
        tick_all(c);
    }
    fail_msg("no progress within 400 ticks after healing");
}

struct chaos_stats {
    uint64_t steps, applied, elections, reads, snaps, crashes;
};

static void chaos_run(size_t n, uint64_t seed, int steps, bool pre_vote, bool check_quorum,
                      struct chaos_stats *st)
{
    struct cluster *c = calloc(1, sizeof *c);
    assert_non_null(c);
    cluster_init(c, n, n, seed, pre_vote, check_quorum);
    c->snap_every = 12;
    c->snap_keep = 4;
    /* how rough the run is: crashes and partitions 1x..4x, losses */
    uint64_t heavy = 1 + seed % 4;
    c->drop_pct = heavy;
    c->dup_pct = 2;
    for (int s = 0; s < steps; s++) {
        struct node *nd = &c->nd[rng_next(&c->rng) % n];
        uint64_t roll = rng_next(&c->rng) % 1000;
        if (roll < 60) {
            tick_all(c);
        } else if (roll < 560) {
            for (int k = 0; k < 3 && c->n_net; k++)
                deliver(c, rng_next(&c->rng) % c->n_net, false);
        } else if (roll < 710) {
            node_take(c, nd);
        } else if (roll < 860) {
            /* a slow disk: its writes take several times longer */
            if (nd->r && (!nd->slow || rng_next(&c->rng) % 5 == 0))
                node_complete(c, nd);
        } else if (roll < 940) {
            if (nd->r) {
                char buf[32];
                snprintf(buf, sizeof buf, "p%" PRIu64, c->next_prop++);
                int rc = raft_propose(nd->r, buf, strlen(buf));
                assert_true(rc == 0 || rc == RAFT_EDROPPED);
            }
        } else if (roll < 960) {
            /* a deposed leader that has not noticed yet must not answer */
            for (size_t i = 0; i < n; i++)
                if (c->nd[i].r && c->nd[i].r->r_role == RAFT_LEADER && leader_of(c) != i + 1 &&
                    rng_next(&c->rng) % 2)
                    nd = &c->nd[i];
            if (nd->r) {
                int rc;
                read_index(c, nd->id, &rc);
                assert_true(rc == 0 || rc == RAFT_EDROPPED);
            }
        } else if (roll < 962) {
            /* leaders and nodes with a ready out lose the most */
            uint64_t l = leader_of(c);
            if (l && rng_next(&c->rng) % 4 == 0)
                nd = N(c, l);
            if (nd->r && (nd->has_rd || rng_next(&c->rng) % 4 < heavy)) {
                node_crash(nd);
                st->crashes++;
            }
        } else if (roll < 978) {
            if (!nd->r)
                node_start(c, nd);
        } else if (roll < 982) {
            if (rng_next(&c->rng) % 4 >= heavy)
                continue;
            /* a random partition: each node on side 0 or 1 */
            uint64_t side = rng_next(&c->rng);
            heal(c);
            for (uint64_t a = 1; a <= n; a++)
                for (uint64_t b = 1; b <= n; b++)
                    c->cut[a][b] = ((side >> a) & 1) != ((side >> b) & 1);
        } else if (roll < 989) {
            heal(c);
        } else if (roll < 992) {
            nd->slow = !nd->slow;
        } else if (roll < 994) {
            if (nd->r)
                assert_int_equal(raft_transfer_leader(nd->r, 1 + rng_next(&c->rng) % n), 0);
        } else {
            tick_all(c);
        }
        /* a flooded network loses its oldest messages */
        while (c->n_net > 4000) {
            free(c->net[0].buf);
            memmove(&c->net[0], &c->net[1], --c->n_net * sizeof *c->net);
        }
        check_safety(c);
        for (size_t i = 0; i < n; i++)
            if (c->nd[i].r && c->nd[i].r->r_role == RAFT_LEADER)
                st->elections = st->elections > c->nd[i].r->r_term ? st->elections
                                                                    : c->nd[i].r->r_term;
    }
    check_liveness(c);
    st->steps += (uint64_t)steps;
    st->applied += c->max_committed;
    for (size_t i = 0; i < c->n_reads; i++)
        st->reads += c->reads[i].done;
    st->snaps += c->snaps_restored;
    cluster_free(c);
    free(c);
}

static void chaos_print(int n, const struct chaos_stats *st)
{
    print_message("%d nodes: %" PRIu64 " steps, %" PRIu64 " entries committed, max term %" PRIu64
                  ", %" PRIu64 " reads, %" PRIu64 " snapshots restored, %" PRIu64 " crashes\n",
                  n, st->steps, st->applied, st->elections, st->reads, st->snaps, st->crashes);
}

static void test_chaos_3(void **state)
{
    (void)state;
    struct chaos_stats st = {0};
    for (uint64_t seed = 1; seed <= 12; seed++)
        chaos_run(3, seed, 50000, seed % 2, seed % 3 != 0, &st);
    chaos_print(3, &st);
    assert_true(st.applied > 100);
    assert_true(st.reads > 10);
}

static void test_chaos_5(void **state)
{
    (void)state;
    struct chaos_stats st = {0};
    for (uint64_t seed = 100; seed < 110; seed++)
        chaos_run(5, seed, 50000, seed % 2, seed % 3 != 0, &st);
    chaos_print(5, &st);
    assert_true(st.applied > 100);
}

/* ---- single voter ---- */

static void test_single_voter(void **state)
{
    (void)state;
    struct cluster c;
    cluster_init(&c, 1, 1, 7, true, true);
    struct node *nd = N(&c, 1);

    /* bootstrap: the ConfChange entry, committed, with the hard state */
    assert_true(node_take(&c, nd));
    assert_int_equal(nd->rd.n_entries, 1);
    assert_int_equal(nd->rd.entries[0].Type, API_ENTRY_CONF_CHANGE);
    assert_true(nd->rd.has_hard_state);
    assert_int_equal(nd->rd.hard_state.term, 1);
    assert_int_equal(nd->rd.hard_state.commit, 1);
    assert_int_equal(nd->rd.n_committed, 1);
    node_complete(&c, nd);
    assert_false(raft_has_ready(nd->r));

    /* campaigns after the (randomized) election timeout, not before */
    int ticks = 0;
    while (nd->r->r_role != RAFT_LEADER) {
        assert_int_equal(raft_tick(nd->r), 0);
        ticks++;
        assert_true(ticks < 20);
    }
    assert_true(ticks >= 10);
    assert_int_equal(nd->r->r_term, 2);

    /* leader: the empty entry must be persisted before it commits */
    assert_true(node_take(&c, nd));
    assert_true(nd->rd.soft_changed);
    assert_int_equal(nd->rd.lead, 1);
    assert_int_equal(nd->rd.role, RAFT_LEADER);
    assert_int_equal(nd->rd.n_entries, 1);
    assert_int_equal(nd->rd.entries[0].Index, 2);
    assert_int_equal(nd->rd.n_committed, 0);
    assert_true(nd->rd.must_sync);
    assert_int_equal(nd->rd.hard_state.vote, 1);
    node_complete(&c, nd);
    assert_int_equal(nd->r->r_log.g_committed, 2);
    assert_true(node_take(&c, nd));
    assert_int_equal(nd->rd.n_committed, 1);
    assert_int_equal(nd->rd.n_entries, 0);
    assert_false(nd->rd.must_sync);
    node_complete(&c, nd);

    /* proposals: persisted in one ready, applied in order in the next */
    uint64_t next = 3;
    for (int round = 0; round < 20; round++) {
        for (int k = 0; k < 5; k++) {
            char buf[16];
            snprintf(buf, sizeof buf, "v%d", round * 5 + k);
            propose(&c, 1, buf);
        }
        assert_true(node_take(&c, nd));
        assert_int_equal(nd->rd.n_entries, 5);
        assert_int_equal(nd->rd.entries[0].Index, next);
        assert_int_equal(nd->rd.n_committed, 0); /* not persisted yet */
        /* a proposal made while the ready is out joins the next one */
        if (round == 7)
            propose(&c, 1, "extra");
        node_complete(&c, nd);
        assert_true(node_take(&c, nd));
        assert_int_equal(nd->rd.n_committed, 5);
        assert_int_equal(nd->rd.committed[0].Index, next);
        char want[16];
        snprintf(want, sizeof want, "v%d", round * 5);
        assert_int_equal(nd->rd.committed[0].Data.len, strlen(want));
        assert_memory_equal(nd->rd.committed[0].Data.p, want, strlen(want));
        assert_true(nd->rd.has_hard_state);
        assert_int_equal(nd->rd.hard_state.commit, next + 4);
        next += 5;
        if (round == 7) {
            assert_int_equal(nd->rd.n_entries, 1);
            next++;
        }
        node_complete(&c, nd);
        settle(&c);
        assert_int_equal(nd->applied, next - 1);
    }
    assert_int_equal(nd->hs.commit, next - 1);
    assert_int_equal(nd->hs.term, 2);

    /* ReadIndex on a lone voter: immediate, at the commit index */
    int rc;
    uint64_t rid = read_index(&c, 1, &rc);
    assert_int_equal(rc, 0);
    settle(&c);
    assert_true(c.reads[rid].done);

    /* restart from persisted state only: state machine rebuilt by replay */
    uint64_t sm = nd->sm, applied = nd->applied;
    node_crash(nd);
    node_start(&c, nd);
    assert_int_equal(nd->r->r_term, 2);
    assert_int_equal(nd->r->r_log.g_committed, applied);
    settle(&c);
    assert_int_equal(nd->applied, applied);
    assert_int_equal(nd->sm, sm);
    for (int t = 0; t < 25 && nd->r->r_role != RAFT_LEADER; t++) {
        assert_int_equal(raft_tick(nd->r), 0);
        settle(&c);
    }
    assert_int_equal(nd->r->r_role, RAFT_LEADER);
    assert_int_equal(nd->r->r_term, 3);
    propose(&c, 1, "after-restart");
    settle(&c);
    assert_int_equal(nd->applied, applied + 2); /* the term-3 empty entry + ours */

    /* a lost ready (crash before persisting) is redone after restart */
    propose(&c, 1, "lost");
    assert_true(node_take(&c, nd));
    node_crash(nd);
    node_start(&c, nd);
    settle(&c);
    assert_int_equal(nd->applied, applied + 2);
    assert_int_equal(nd->r->r_log.g_committed, applied + 2);
    check_safety(&c);
    cluster_free(&c);
}

/* A lone voter with snapshots and compaction restarts from the snapshot. */
static void test_single_voter_snapshot(void **state)
{
    (void)state;
    struct cluster c;
    cluster_init(&c, 1, 1, 9, false, false);
    c.snap_every = 10;
    c.snap_keep = 3;
    struct node *nd = N(&c, 1);
    settle(&c);
    assert_int_equal(raft_campaign(nd->r), 0);
    settle(&c);
    for (int i = 0; i < 55; i++) {
        propose(&c, 1, "x");
        settle(&c);
    }
    assert_true(nd->has_snap);
    assert_true(nd->r->r_log.g_first > 40);
    assert_true(nd->r->r_log.g_n < 20);
    uint64_t sm = nd->sm, applied = nd->applied;
    node_crash(nd);
    node_start(&c, nd);
    assert_int_equal(nd->r->r_log.g_first, nd->snap_index + 1);
    settle(&c);
    assert_int_equal(nd->applied, applied);
    assert_int_equal(nd->sm, sm);
    /* compaction is refused past the snapshot or the applied index */
    assert_int_equal(raft_compact(nd->r, applied + 1), RAFT_EINVAL);
    assert_int_equal(raft_snapshot_create(nd->r, applied + 1, NULL, "", 0), RAFT_EINVAL);
    cluster_free(&c);
}

/* The leader replicates while its own write is in flight, but counts
 * itself only once that write is done (thesis 10.2.1): a follower's ack
 * alone must not commit in a 3-node cluster, or a crash of the leader
 * could lose an entry reported committed. */
static void test_leader_counts_itself_when_persisted(void **state)
{
    (void)state;
    struct cluster c;
    cluster_init(&c, 3, 3, 13, true, true);
    settle(&c);
    elect(&c, 1);
    settle(&c);
    struct node *l = N(&c, 1);
    uint64_t commit = l->r->r_log.g_committed;
    isolate(&c, 3);
    propose(&c, 1, "slow-disk");
    assert_true(node_take(&c, l)); /* MsgApp left early, entry not yet durable */
    l->hold = true;
    settle(&c); /* 2 persists and acknowledges */
    assert_int_equal(N(&c, 2)->r->r_log.g_unstable, commit + 2);
    assert_int_equal(l->r->r_log.g_committed, commit);
    /* the leader dies before its write: the entry was never committed */
    node_crash(l);
    l->hold = false;
    node_start(&c, l);
    settle(&c);
    check_safety(&c);
    assert_int_equal(c.max_committed, commit);

    /* same again, but the write completes: now it commits */
    heal(&c);
    for (int t = 0; t < 40 && !leader_of(&c); t++) {
        tick_all(&c);
        settle(&c);
    }
    uint64_t lid = leader_of(&c);
    assert_true(lid != 0);
    l = N(&c, lid);
    commit = l->r->r_log.g_committed;
    isolate(&c, lid == 3 ? 2 : 3); /* one follower acks: not a majority alone */
    propose(&c, lid, "fast-disk");
    assert_true(node_take(&c, l));
    l->hold = true;
    settle(&c);
    assert_int_equal(l->r->r_log.g_committed, commit);
    l->hold = false;
    node_complete(&c, l);
    assert_int_equal(l->r->r_log.g_committed, commit + 1);
    settle(&c);
    check_safety(&c);
    cluster_free(&c);
}

/* ---- directed: a lone instance stepped by hand ---- */

/* A member restarted with the given log (terms of entries 1..n) in a
 * 3-voter (or nv-voter) configuration. */
static struct raft *member(uint64_t id, const uint64_t *terms, size_t n, uint64_t term,
                           uint64_t commit, size_t nv, uint64_t max_msg)
{
    struct api_raft_entry ents[16];
    assert_true(n <= 16);
    for (size_t i = 0; i < n; i++)
        ents[i] = (struct api_raft_entry){.Term = terms[i], .Index = i + 1};
    uint64_t voters[MAXN];
    for (size_t i = 0; i < nv; i++)
        voters[i] = i + 1;
    struct api_raft_conf_state cs = {.voters = voters, .n_voters = nv};
    struct api_raft_hard_state hs = {.term = term, .commit = commit};
    struct raft_config cfg = {.id = id,
                              .election_tick = 10,
                              .heartbeat_tick = 1,
                              .max_size_per_msg = max_msg,
                              .max_inflight = 16,
                              .seed = id,
                              .hard_state = &hs,
                              .entries = ents,
                              .n_entries = n,
                              .conf_state = &cs};
    struct raft *r;
    assert_int_equal(raft_new(&cfg, &r), 0);
    return r;
}

/* Step m, hand the resulting ready back (persisted at once), return the
 * first message of type t in it (copied into *out), or false. */
static bool step_get(struct raft *r, struct api_raft_message m, int32_t t,
                     struct api_raft_message *out)
{
    if (m.type != RAFT_MSG_HUP)
        assert_int_equal(raft_step(r, &m), 0);
    bool found = false;
    while (raft_has_ready(r)) {
        struct raft_ready rd;
        assert_int_equal(raft_ready(r, &rd), 0);
        for (size_t i = 0; i < rd.n_msgs && !found; i++)
            if (rd.msgs[i].type == t) {
                *out = rd.msgs[i];
                out->entries = NULL; /* not valid after advance */
                found = true;
            }
        assert_int_equal(raft_advance(r, &rd), 0);
    }
    return found;
}

static void test_vote_rejects_stale_log(void **state)
{
    (void)state;
    static const uint64_t terms[] = {1, 2, 2}; /* last index 3, last term 2 */
    struct {
        uint64_t index, log_term;
        bool granted;
    } cases[] = {
        {3, 1, false}, /* older last term */
        {9, 1, false}, /* longer but older */
        {2, 2, false}, /* same term, shorter */
        {3, 2, true},  /* equal */
        {4, 2, true},  /* same term, longer */
        {1, 3, true},  /* newer last term, shorter */
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct raft *r = member(1, terms, 3, 2, 1, 3, 64);
        struct api_raft_message resp;
        struct api_raft_message m = {.type = RAFT_MSG_VOTE, .from = 2, .to = 1, .term = 3,
                                     .index = cases[k].index, .logTerm = cases[k].log_term};
        assert_true(step_get(r, m, RAFT_MSG_VOTE_RESP, &resp));
        assert_int_equal(resp.reject, !cases[k].granted);
        assert_int_equal(resp.term, 3);
        assert_int_equal(r->r_term, 3); /* the term moves either way */
        assert_int_equal(r->r_vote, cases[k].granted ? 2 : 0);
        /* one vote per term */
        m.from = 3;
        m.index = 9;
        m.logTerm = 9;
        assert_true(step_get(r, m, RAFT_MSG_VOTE_RESP, &resp));
        assert_int_equal(resp.reject, cases[k].granted);
        raft_free(r);
    }
}

/* Figure 8 of the Raft paper: S1, leader again in term 4, replicates its
 * term-2 entry to a majority; it must not count that as committed until an
 * entry of term 4 is on a majority too. */
static void test_figure8_commit_rule(void **state)
{
    (void)state;
    static const uint64_t terms[] = {1, 2};
    struct raft *r = member(1, terms, 2, 3, 1, 5, 0);
    struct api_raft_message out;
    assert_int_equal(raft_campaign(r), 0);
    assert_true(step_get(r, (struct api_raft_message){.type = RAFT_MSG_HUP}, RAFT_MSG_VOTE, &out));
    assert_int_equal(out.term, 4);
    assert_int_equal(raft_step(r, &(struct api_raft_message){.type = RAFT_MSG_VOTE_RESP,
                                                             .from = 2, .to = 1, .term = 4}),
                     0);
    assert_int_equal(raft_step(r, &(struct api_raft_message){.type = RAFT_MSG_VOTE_RESP,
                                                             .from = 3, .to = 1, .term = 4}),
                     0);
    assert_int_equal(r->r_role, RAFT_LEADER);
    step_get(r, (struct api_raft_message){.type = RAFT_MSG_HUP}, 0, &out); /* persist 3:4 */
    assert_int_equal(raft_log_last(&r->r_log), 3);
    assert_int_equal(r->r_prs[0].p_match, 3);
    /* S2 and S3 acknowledge the term-2 entry: a majority holds index 2 */
    for (uint64_t id = 2; id <= 3; id++)
        step_get(r, (struct api_raft_message){.type = RAFT_MSG_APP_RESP, .from = id, .to = 1,
                                              .term = 4, .index = 2},
                 0, &out);
    assert_int_equal(r->r_log.g_committed, 1);
    step_get(r, (struct api_raft_message){.type = RAFT_MSG_APP_RESP, .from = 2, .to = 1,
                                          .term = 4, .index = 3},
             0, &out);
    assert_int_equal(r->r_log.g_committed, 1); /* 3:4 on S1, S2 only */
    step_get(r, (struct api_raft_message){.type = RAFT_MSG_APP_RESP, .from = 3, .to = 1,
                                          .term = 4, .index = 3},
             0, &out);
    assert_int_equal(r->r_log.g_committed, 3); /* and 2:2 with it */
    raft_free(r);
}

/* The Figure 8 race run through the whole cluster: S5 (term 3) and S1
 * (term 4) overwrite each other; nothing committed is ever lost. */
static void test_follower_conflicts(void **state)
{
    (void)state;
    struct cluster c;
    cluster_init(&c, 3, 3, 11, false, false);
    settle(&c);
    elect(&c, 1);
    propose(&c, 1, "a");
    settle(&c);
    uint64_t base = raft_log_last(&R(&c, 1)->r_log);
    /* 1 appends entries nobody else gets */
    isolate(&c, 1);
    for (int i = 0; i < 6; i++)
        propose(&c, 1, "lost");
    settle(&c);
    /* 2 becomes leader and appends different entries, 3 gets them */
    c.cut[2][3] = c.cut[3][2] = false;
    elect(&c, 2);
    for (int i = 0; i < 3; i++)
        propose(&c, 2, "kept");
    settle(&c);
    assert_int_equal(raft_log_last(&R(&c, 1)->r_log), base + 6);
    assert_int_equal(R(&c, 2)->r_log.g_committed, base + 4);
    /* 1 rejoins: its conflicting tail is replaced using the reject hints */
    heal(&c);
    for (int t = 0; t < 3; t++) {
        tick_all(&c);
        settle(&c);
    }
    check_safety(&c);
    for (uint64_t id = 1; id <= 3; id++) {
        const struct raft_log *g = &R(&c, id)->r_log;
        assert_int_equal(raft_log_last(g), base + 4);
        assert_int_equal(N(&c, id)->applied, base + 4);
        for (uint64_t i = base + 1; i <= base + 4; i++)
            assert_int_equal(raft_log_ent(g, i)->Term, R(&c, 2)->r_term);
    }
    assert_int_equal(N(&c, 1)->sm, N(&c, 2)->sm);
    /* the follower's persisted log was rewritten too */
    assert_int_equal(N(&c, 1)->log[N(&c, 1)->n_log - 1].Index, base + 4);
    cluster_free(&c);
}

/* A follower far behind with a divergent log: the hint lets the leader
 * jump back instead of probing one index per round trip. */
static void test_reject_hint(void **state)
{
    (void)state;
    static const uint64_t lt[] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    struct raft *r = member(1, lt, 10, 2, 1, 3, 64);
    struct api_raft_message out;
    assert_int_equal(raft_campaign(r), 0);
    step_get(r, (struct api_raft_message){.type = RAFT_MSG_HUP}, 0, &out);
    step_get(r, (struct api_raft_message){.type = RAFT_MSG_VOTE_RESP, .from = 2, .to = 1,
                                          .term = 3},
             0, &out);
    assert_int_equal(r->r_role, RAFT_LEADER);
    /* 3 has only 2 entries: it rejects index 10 with hint 2 */
    assert_true(step_get(r, (struct api_raft_message){.type = RAFT_MSG_APP_RESP, .from = 3,
                                                      .to = 1, .term = 3, .index = 10,
                                                      .reject = true, .rejectHint = 2},
                         RAFT_MSG_APP, &out));
    assert_int_equal(out.to, 3);
    assert_int_equal(out.index, 2);
    assert_int_equal(out.logTerm, 1);
    /* a stale rejection (for an index we no longer probe) is ignored */
    assert_false(step_get(r, (struct api_raft_message){.type = RAFT_MSG_APP_RESP, .from = 3,
                                                       .to = 1, .term = 3, .index = 10,
                                                       .reject = true, .rejectHint = 2},
                          RAFT_MSG_APP, &out));
    raft_free(r);

    /* follower side: a MsgApp that does not match is refused with our last
     * index as the hint */
    static const uint64_t ft[] = {1, 1};
    r = member(3, ft, 2, 3, 1, 3, 64);
    struct api_raft_entry e = {.Term = 3, .Index = 11};
    assert_true(step_get(r, (struct api_raft_message){.type = RAFT_MSG_APP, .from = 1, .to = 3,
                                                      .term = 3, .index = 10, .logTerm = 1,
                                                      .entries = &e, .n_entries = 1},
                         RAFT_MSG_APP_RESP, &out));
    assert_true(out.reject);
    assert_int_equal(out.index, 10);
    assert_int_equal(out.rejectHint, 2);
    /* hostile input: a gap between index and the entries is dropped */
    e.Index = 5;
    assert_false(step_get(r, (struct api_raft_message){.type = RAFT_MSG_APP, .from = 1, .to = 3,
                                                       .term = 3, .index = 2, .logTerm = 1,
                                                       .entries = &e, .n_entries = 1},
                          RAFT_MSG_APP_RESP, &out));
    /* logTerm 0 past our end must not look like a match (etcd's term()
     * says 0 there) */
    assert_true(step_get(r, (struct api_raft_message){.type = RAFT_MSG_APP, .from = 1, .to = 3,
                                                      .term = 3, .index = 7, .logTerm = 0},
                         RAFT_MSG_APP_RESP, &out));
    assert_true(out.reject);
    /* a heartbeat commit past our log is ignored, not fatal */
    step_get(r, (struct api_raft_message){.type = RAFT_MSG_HEARTBEAT, .from = 1, .to = 3,
                                          .term = 3, .commit = 50},
             0, &out);
    assert_int_equal(r->r_log.g_committed, 1);
    raft_free(r);
}

/* ---- directed: ReadIndex ---- */

static void test_read_index(void **state)
{
    (void)state;
    struct cluster c;
    cluster_init(&c, 3, 3, 21, true, true);
    settle(&c);
    elect(&c, 1);
    propose(&c, 1, "w");
    settle(&c);
    uint64_t commit = R(&c, 1)->r_log.g_committed;

    /* on the leader: needs a heartbeat round */
    int rc;
    isolate(&c, 1);
    uint64_t a = read_index(&c, 1, &rc);
    assert_int_equal(rc, 0);
    settle(&c);
    assert_false(c.reads[a].done); /* no quorum answered */
    heal(&c);
    tick_all(&c); /* the next heartbeat carries the pending context */
    settle(&c);
    assert_true(c.reads[a].done);

    /* on a follower: forwarded, answered through the follower */
    uint64_t b = read_index(&c, 2, &rc);
    assert_int_equal(rc, 0);
    settle(&c);
    assert_true(c.reads[b].done);
    assert_int_equal(N(&c, 2)->n_reads_done, 1);

    /* after a leader change the new leader serves reads (node_complete
     * checks every read point against what was committed before) */
    assert_int_equal(raft_transfer_leader(R(&c, 1), 3), 0);
    settle(&c);
    assert_int_equal(R(&c, 3)->r_role, RAFT_LEADER);
    uint64_t d = read_index(&c, 3, &rc);
    assert_int_equal(rc, 0);
    settle(&c);
    assert_true(c.reads[d].done);
    assert_true(R(&c, 3)->r_log.g_committed > commit);

    /* no leader: dropped, the caller retries */
    for (uint64_t id = 1; id <= 3; id++)
        node_crash(N(&c, id));
    for (uint64_t id = 1; id <= 3; id++)
        node_start(&c, N(&c, id));
    read_index(&c, 2, &rc);
    assert_int_equal(rc, RAFT_EDROPPED);
    assert_int_equal(raft_read_index(R(&c, 2), "", 0), RAFT_EINVAL);
    cluster_free(&c);
}

/* A leader that has not committed in its term holds reads back: its commit
 * index may lag entries a previous leader committed. */
static void test_read_index_new_leader(void **state)
{
    (void)state;
    static const uint64_t terms[] = {1, 1, 2};
    struct raft *r = member(1, terms, 3, 2, 2, 3, 64);
    struct api_raft_message out;
    assert_int_equal(raft_campaign(r), 0);
    step_get(r, (struct api_raft_message){.type = RAFT_MSG_HUP}, 0, &out);
    step_get(r, (struct api_raft_message){.type = RAFT_MSG_VOTE_RESP, .from = 2, .to = 1,
                                          .term = 3},
             0, &out);
    assert_int_equal(r->r_role, RAFT_LEADER);
    assert_int_equal(raft_read_index(r, "ctx1", 4), 0);
    /* no heartbeat with the context goes out yet */
    struct raft_ready rd;
    assert_int_equal(raft_ready(r, &rd), 0);
    for (size_t i = 0; i < rd.n_msgs; i++)
        assert_int_equal(rd.msgs[i].context.len, 0);
    assert_int_equal(rd.n_read_states, 0);
    assert_int_equal(raft_advance(r, &rd), 0);
    /* 2 acknowledges the empty entry: commit moves to 4 (term 3) */
    assert_true(step_get(r, (struct api_raft_message){.type = RAFT_MSG_APP_RESP, .from = 2,
                                                      .to = 1, .term = 3, .index = 4},
                         RAFT_MSG_HEARTBEAT, &out));
    assert_int_equal(r->r_log.g_committed, 4);
    assert_int_equal(out.context.len, 4);
    /* 3 answers that heartbeat: with our own ack a quorum confirms */
    struct api_raft_message hb = {.type = RAFT_MSG_HEARTBEAT_RESP, .from = 3, .to = 1, .term = 3,
                                  .context = {(const uint8_t *)"ctx1", 4}};
    assert_int_equal(raft_step(r, &hb), 0);
    assert_int_equal(raft_ready(r, &rd), 0);
    assert_int_equal(rd.n_read_states, 1);
    assert_int_equal(rd.read_states[0].index, 4);
    assert_memory_equal(rd.read_states[0].ctx.p, "ctx1", 4);
    assert_int_equal(raft_advance(r, &rd), 0);
    raft_free(r);
}

/* ---- directed: snapshots ---- */

static void test_snapshot_catch_up(void **state)
{
    (void)state;
    struct cluster c;
    cluster_init(&c, 3, 3, 31, true, true);
    c.snap_every = 8;
    c.snap_keep = 2;
    settle(&c);
    elect(&c, 1);
    isolate(&c, 3);
    for (int i = 0; i < 40; i++) {
        propose(&c, 1, "s");
        settle(&c);
    }
    tick_all(&c);
    settle(&c);
    const struct raft_log *g1 = &R(&c, 1)->r_log;
    assert_true(g1->g_first > N(&c, 3)->applied + 1); /* 3 needs a snapshot */
    assert_int_equal(c.snaps_sent, 0);
    heal(&c);
    for (int t = 0; t < 5; t++) {
        tick_all(&c);
        settle(&c);
    }
    assert_true(c.snaps_sent >= 1);
    assert_true(c.snaps_restored >= 1);
    assert_true(N(&c, 3)->has_snap);
    assert_int_equal(N(&c, 3)->applied, N(&c, 1)->applied);
    assert_int_equal(N(&c, 3)->sm, N(&c, 1)->sm);
    struct raft_progress_info pi;
    assert_int_equal(raft_progress(R(&c, 1), 3, &pi), 0);
    assert_int_equal(pi.state, RAFT_PROGRESS_REPLICATE);
    assert_int_equal(pi.match, raft_log_last(g1));
    check_safety(&c);

    /* node 3 restarts from the snapshot it received */
    node_crash(N(&c, 3));
    node_start(&c, N(&c, 3));
    settle(&c);
    propose(&c, 1, "after");
    settle(&c);
    assert_int_equal(N(&c, 3)->applied, N(&c, 1)->applied);
    assert_int_equal(N(&c, 3)->sm, N(&c, 1)->sm);

    /* a snapshot the follower already covers only moves its commit */
    struct raft *f = R(&c, 2);
    const struct api_raft_snapshot *s = raft_snapshot(R(&c, 1));
    uint64_t last = raft_log_last(&f->r_log);
    struct api_raft_message m = {.type = RAFT_MSG_SNAP, .from = 1, .to = 2,
                                 .term = f->r_term, .snapshot = (struct api_raft_snapshot *)s};
    assert_int_equal(raft_step(f, &m), 0);
    assert_int_equal(raft_log_last(&f->r_log), last);
    assert_false(f->r_snap_pending);
    settle(&c);
    cluster_free(&c);
}

/* A failed snapshot send makes the leader probe again later. */
static void test_snapshot_failure(void **state)
{
    (void)state;
    struct cluster c;
    cluster_init(&c, 3, 3, 33, false, false);
    c.snap_every = 5;
    c.snap_keep = 1;
    settle(&c);
    elect(&c, 1);
    isolate(&c, 3);
    for (int i = 0; i < 20; i++) {
        propose(&c, 1, "f");
        settle(&c);
    }
    /* 3 is back, but every MsgSnap is lost: the transport reports the
     * failure and the leader probes again instead of waiting forever */
    heal(&c);
    c.drop_snap = true;
    tick_all(&c);
    settle(&c);
    struct raft_progress_info pi;
    assert_int_equal(c.snaps_sent, 1);
    assert_int_equal(raft_progress(R(&c, 1), 3, &pi), 0);
    assert_int_equal(pi.state, RAFT_PROGRESS_PROBE);
    assert_true(N(&c, 3)->applied < N(&c, 1)->applied);
    c.drop_snap = false;
    for (int t = 0; t < 5; t++) {
        tick_all(&c);
        settle(&c);
    }
    assert_int_equal(N(&c, 3)->applied, N(&c, 1)->applied);
    assert_int_equal(raft_progress(R(&c, 1), 3, &pi), 0);
    assert_int_equal(pi.state, RAFT_PROGRESS_REPLICATE);
    cluster_free(&c);
}

/* ---- directed: membership ---- */

static void propose_cc(struct cluster *c, uint64_t id, int32_t type, uint64_t node)
{
    struct api_raft_conf_change cc = {.type = type, .NodeID = node};
    assert_int_equal(raft_propose_conf_change(R(c, id), &cc), 0);
}

static bool has_id(const uint64_t *v, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == id)
            return true;
    return false;
}

/* A lone member keeps no log in memory beyond what it applied, with no
 * snapshot at all; a member added later gets a snapshot raft asks for. */
static void test_compact_alone(void **state)
{
    (void)state;
    struct cluster c;
    cluster_init(&c, 2, 1, 77, true, true); /* node 2 exists, not a member */
    c.compact_alone = true;
    settle(&c);
    elect(&c, 1);
    for (int i = 0; i < 30; i++) {
        propose(&c, 1, "a");
        settle(&c);
    }
    struct raft *r1 = R(&c, 1);
    assert_false(N(&c, 1)->has_snap);
    assert_null(raft_snapshot(r1));
    assert_true(r1->r_log.g_first > 30);
    assert_true(r1->r_log.g_n <= 2);
    struct raft_status st;
    raft_status(r1, &st);
    assert_false(st.want_snapshot);
    /* not alone any more: nothing past the snapshot may go */
    propose_cc(&c, 1, API_CONF_ADD_NODE, 2);
    for (int t = 0; t < 5; t++) {
        tick_all(&c);
        settle(&c);
    }
    assert_true(N(&c, 1)->has_snap);
    assert_true(c.snaps_sent >= 1);
    assert_int_equal(N(&c, 2)->applied, N(&c, 1)->applied);
    assert_int_equal(N(&c, 2)->sm, N(&c, 1)->sm);
    raft_status(r1, &st);
    assert_false(st.want_snapshot);
    uint64_t first = r1->r_log.g_first;
    propose(&c, 1, "b");
    settle(&c);
    assert_int_equal(raft_compact(r1, r1->r_log.g_applied), RAFT_EINVAL);
    assert_int_equal(r1->r_log.g_first, first);
    assert_int_equal(N(&c, 2)->sm, N(&c, 1)->sm);
    check_safety(&c);
    cluster_free(&c);
}

static void test_conf_change(void **state)
{
    (void)state;
    struct cluster c;
    /* nodes 4 and 5 exist but are not members yet */
    cluster_init(&c, 5, 3, 41, true, true);
    settle(&c);
    elect(&c, 1);
    propose(&c, 1, "x");
    settle(&c);

    /* add 4 as a learner: it catches up but does not vote or campaign */
    propose_cc(&c, 1, API_CONF_ADD_LEARNER_NODE, 4);
    settle(&c);
    tick_all(&c);
    settle(&c);
    struct api_raft_conf_state cs;
    raft_conf_state(R(&c, 1), &cs);
    assert_int_equal(cs.n_voters, 3);
    assert_int_equal(cs.n_learners, 1);
    assert_int_equal(cs.learners[0], 4);
    assert_int_equal(N(&c, 4)->applied, N(&c, 1)->applied);
    assert_true(R(&c, 4)->r_learner);
    assert_int_equal(raft_campaign(R(&c, 4)), 0);
    assert_int_equal(R(&c, 4)->r_role, RAFT_FOLLOWER);
    for (int t = 0; t < 30; t++)
        assert_int_equal(raft_tick(R(&c, 4)), 0);
    assert_int_equal(R(&c, 4)->r_role, RAFT_FOLLOWER);
    settle(&c);

    /* a second change while one is unapplied becomes an empty entry */
    propose_cc(&c, 1, API_CONF_ADD_NODE, 4);
    propose_cc(&c, 1, API_CONF_ADD_NODE, 5);
    settle(&c);
    raft_conf_state(R(&c, 1), &cs);
    assert_int_equal(cs.n_voters, 4);
    assert_true(has_id(cs.voters, cs.n_voters, 4));
    assert_false(has_id(cs.voters, cs.n_voters, 5));
    assert_false(R(&c, 4)->r_learner);

    /* remove 2; the others (1, 3, 4) keep committing without it */
    propose_cc(&c, 1, API_CONF_REMOVE_NODE, 2);
    settle(&c);
    raft_conf_state(R(&c, 3), &cs);
    assert_int_equal(cs.n_voters, 3);
    assert_false(has_id(cs.voters, cs.n_voters, 2));
    node_crash(N(&c, 2));
    isolate(&c, 3); /* 1 and 4 are a majority of {1, 3, 4} */
    propose(&c, 1, "y");
    settle(&c);
    assert_int_equal(N(&c, 4)->applied, N(&c, 1)->applied);
    heal(&c);
    /* 4 can now lead (CheckQuorum's lease keeps 1 in place otherwise) */
    assert_int_equal(raft_transfer_leader(R(&c, 1), 4), 0);
    for (int t = 0; t < 5 && R(&c, 4)->r_role != RAFT_LEADER; t++) {
        tick_all(&c);
        settle(&c);
    }
    assert_int_equal(R(&c, 4)->r_role, RAFT_LEADER);
    propose(&c, 4, "z");
    settle(&c);
    assert_int_equal(N(&c, 1)->applied, N(&c, 4)->applied);
    check_safety(&c);

    /* the last voter cannot be removed; NodeID 0 is a no-op */
    struct api_raft_conf_change cc = {.type = API_CONF_REMOVE_NODE, .NodeID = 0};
    assert_int_equal(raft_apply_conf_change(R(&c, 4), &cc, &cs), 0);
    assert_int_equal(cs.n_voters, 3);
    cluster_free(&c);

    struct cluster one;
    cluster_init(&one, 1, 1, 43, false, false);
    settle(&one);
    cc = (struct api_raft_conf_change){.type = API_CONF_REMOVE_NODE, .NodeID = 1};
    assert_int_equal(raft_apply_conf_change(R(&one, 1), &cc, NULL), RAFT_EINVAL);
    cc.type = API_CONF_ADD_LEARNER_NODE;
    assert_int_equal(raft_apply_conf_change(R(&one, 1), &cc, NULL), RAFT_EINVAL);
    cc.type = 99;
    assert_int_equal(raft_apply_conf_change(R(&one, 1), &cc, NULL), RAFT_EINVAL);
    cluster_free(&one);
}

/* ---- directed: leader transfer ---- */

static void test_leader_transfer(void **state)
{
    (void)state;
    struct cluster c;
    cluster_init(&c, 3, 3, 51, true, true);
    settle(&c);
    uint64_t term = elect(&c, 1);
    propose(&c, 1, "a");
    settle(&c);

    /* up-to-date transferee: MsgTimeoutNow right away, it wins even within
     * the others' leader lease and without PreVote */
    assert_int_equal(raft_transfer_leader(R(&c, 1), 2), 0);
    settle(&c);
    assert_int_equal(R(&c, 2)->r_role, RAFT_LEADER);
    assert_int_equal(R(&c, 2)->r_term, term + 1);
    assert_int_equal(R(&c, 1)->r_role, RAFT_FOLLOWER);

    /* a lagging transferee is caught up first; proposals are refused
     * meanwhile */
    isolate(&c, 3);
    propose(&c, 2, "b");
    settle(&c);
    c.cut[2][3] = c.cut[3][2] = false;
    assert_int_equal(raft_transfer_leader(R(&c, 2), 3), 0);
    assert_int_equal(R(&c, 2)->r_transferee, 3);
    assert_int_equal(raft_propose(R(&c, 2), "c", 1), RAFT_EDROPPED);
    /* 3's progress was paused by the lost messages: the next heartbeat
     * answer resumes replication, then MsgTimeoutNow follows */
    for (int t = 0; t < 5 && R(&c, 3)->r_role != RAFT_LEADER; t++) {
        tick_all(&c);
        settle(&c);
    }
    assert_int_equal(R(&c, 3)->r_role, RAFT_LEADER);
    assert_int_equal(N(&c, 3)->applied, N(&c, 2)->applied);
    heal(&c);
    settle(&c);

    /* from a follower: forwarded (the follower itself becomes leader) */
    tick_all(&c);
    settle(&c);
    assert_int_equal(R(&c, 1)->r_lead, 3);
    assert_int_equal(raft_transfer_leader(R(&c, 1), 2), 0);
    for (int t = 0; t < 5 && R(&c, 1)->r_role != RAFT_LEADER; t++) {
        tick_all(&c);
        settle(&c);
    }
    assert_int_equal(R(&c, 1)->r_role, RAFT_LEADER);

    /* an unreachable transferee: the transfer is abandoned after an
     * election timeout and proposals flow again */
    isolate(&c, 3);
    propose(&c, 1, "d");
    settle(&c);
    assert_int_equal(raft_transfer_leader(R(&c, 1), 3), 0);
    assert_int_equal(raft_propose(R(&c, 1), "e", 1), RAFT_EDROPPED);
    for (int t = 0; t < 10; t++) {
        tick_all(&c);
        settle(&c);
    }
    assert_int_equal(R(&c, 1)->r_role, RAFT_LEADER);
    assert_int_equal(R(&c, 1)->r_transferee, 0);
    propose(&c, 1, "f");
    settle(&c);
    check_safety(&c);
    cluster_free(&c);
}

/* ---- directed: PreVote, CheckQuorum ---- */

/* A node partitioned away for long keeps its term with PreVote and does not
 * depose the leader when it comes back; without PreVote it does. */
static void test_pre_vote(void **state)
{
    (void)state;
    for (int pv = 1; pv >= 0; pv--) {
        struct cluster c;
        cluster_init(&c, 3, 3, 61, pv, false);
        settle(&c);
        uint64_t term = elect(&c, 1);
        isolate(&c, 3);
        for (int t = 0; t < 100; t++) {
            tick_all(&c);
            settle(&c);
        }
        if (pv) {
            assert_int_equal(R(&c, 3)->r_term, term);
            assert_int_equal(R(&c, 3)->r_role, RAFT_PRE_CANDIDATE);
        } else {
            assert_true(R(&c, 3)->r_term > term + 3);
        }
        heal(&c);
        for (int t = 0; t < 30; t++) {
            tick_all(&c);
            settle(&c);
        }
        if (pv) {
            assert_int_equal(R(&c, 1)->r_role, RAFT_LEADER);
            assert_int_equal(R(&c, 1)->r_term, term);
            assert_int_equal(R(&c, 3)->r_lead, 1);
        } else {
            assert_true(R(&c, 1)->r_term > term + 3); /* disrupted */
        }
        check_safety(&c);
        cluster_free(&c);
    }
}

static void test_check_quorum(void **state)
{
    (void)state;
    struct cluster c;
    cluster_init(&c, 3, 3, 71, false, true);
    settle(&c);
    uint64_t term = elect(&c, 1);
    /* votes within the leader lease are ignored: 3 cannot depose 1 */
    assert_int_equal(raft_campaign(R(&c, 3)), 0);
    settle(&c);
    assert_int_equal(R(&c, 1)->r_role, RAFT_LEADER);
    assert_int_equal(R(&c, 2)->r_term, term);
    for (int t = 0; t < 3; t++) {
        tick_all(&c);
        settle(&c);
    }
    /* 3 (at a higher term) rejoins: someone leads again */
    for (int k = 0; k < 40 && !leader_of(&c); k++) {
        tick_all(&c);
        settle(&c);
    }

    /* a leader cut off from its followers steps down within two election
     * timeouts */
    uint64_t l = leader_of(&c);
    assert_true(l != 0);
    isolate(&c, l);
    int t = 0;
    while (R(&c, l)->r_role == RAFT_LEADER) {
        tick_all(&c);
        settle(&c);
        assert_true(++t <= 20);
    }
    assert_int_equal(R(&c, l)->r_role, RAFT_FOLLOWER);
    assert_int_equal(raft_propose(R(&c, l), "x", 1), RAFT_EDROPPED);
    heal(&c);
    for (int k = 0; k < 40 && !leader_of(&c); k++) {
        tick_all(&c);
        settle(&c);
    }
    assert_true(leader_of(&c) != 0);
    check_safety(&c);
    cluster_free(&c);
}

/* ---- API edges ---- */

static void test_api_edges(void **state)
{
    (void)state;
    struct raft *r;
    struct raft_config cfg = {.id = 1, .election_tick = 10, .heartbeat_tick = 1,
                              .max_inflight = 4};
    struct raft_config bad = cfg;
    bad.id = 0;
    assert_int_equal(raft_new(&bad, &r), RAFT_EINVAL);
    bad = cfg;
    bad.election_tick = 1;
    assert_int_equal(raft_new(&bad, &r), RAFT_EINVAL);
    bad = cfg;
    struct api_raft_hard_state hs = {.term = 1, .commit = 5};
    bad.hard_state = &hs;
    assert_int_equal(raft_new(&bad, &r), RAFT_EINVAL); /* commit past the log */
    struct api_raft_entry gap[2] = {{.Term = 1, .Index = 1}, {.Term = 1, .Index = 3}};
    bad = cfg;
    bad.entries = gap;
    bad.n_entries = 2;
    assert_int_equal(raft_new(&bad, &r), RAFT_EINVAL);
    uint64_t out_voters[] = {2};
    struct api_raft_conf_state joint = {.voters = out_voters, .n_voters = 1,
                                        .voters_outgoing = out_voters, .n_voters_outgoing = 1};
    bad = cfg;
    bad.conf_state = &joint;
    assert_int_equal(raft_new(&bad, &r), RAFT_EINVAL);

    /* WAL-style replay: a later record with a lower index replaces the tail */
    struct api_raft_entry wal[4] = {{.Term = 1, .Index = 1}, {.Term = 1, .Index = 2},
                                    {.Term = 1, .Index = 3}, {.Term = 2, .Index = 2}};
    bad = cfg;
    bad.entries = wal;
    bad.n_entries = 4;
    assert_int_equal(raft_new(&bad, &r), 0);
    struct raft_status st;
    raft_status(r, &st);
    assert_int_equal(st.last_index, 2);
    uint64_t term;
    assert_int_equal(raft_term_at(r, 2, &term), 0);
    assert_int_equal(term, 2);
    assert_int_equal(raft_term_at(r, 3, &term), RAFT_EINVAL);
    assert_int_equal(raft_bootstrap(r, out_voters, NULL, 1), RAFT_EINVAL); /* not new */
    raft_free(r);

    assert_int_equal(raft_new(&cfg, &r), 0);
    uint64_t zero = 0;
    assert_int_equal(raft_bootstrap(r, &zero, NULL, 1), RAFT_EINVAL);
    assert_int_equal(raft_bootstrap(r, NULL, NULL, 0), RAFT_EINVAL);
    /* no configuration yet: a new member waits, proposals have no leader */
    assert_int_equal(raft_propose(r, "x", 1), RAFT_EDROPPED);
    for (int t = 0; t < 50; t++)
        assert_int_equal(raft_tick(r), 0);
    assert_int_equal(r->r_role, RAFT_FOLLOWER);
    assert_int_equal(raft_step(r, &(struct api_raft_message){.type = RAFT_MSG_HUP, .from = 2}),
                     RAFT_ELOCAL);
    assert_int_equal(raft_step(r, &(struct api_raft_message){.type = RAFT_MSG_APP_RESP,
                                                             .from = 2}),
                     RAFT_EPEER);
    assert_int_equal(raft_step(r, &(struct api_raft_message){.type = 42, .from = 2}),
                     RAFT_EINVAL);
    struct raft_ready rd = {0};
    assert_int_equal(raft_advance(r, &rd), RAFT_EINVAL);
    assert_int_equal(raft_ready(r, &rd), 0);
    assert_int_equal(raft_ready(r, &rd), RAFT_EBUSY);
    assert_false(raft_has_ready(r));
    assert_int_equal(raft_advance(r, &rd), 0);
    assert_string_equal(raft_strerror(RAFT_EDROPPED), "raft proposal dropped");
    assert_string_equal(raft_strerror(12345), "unknown raft error");
    raft_free(r);
}

/* Messages handed out stay valid while the log beneath them is truncated
 * and compacted (ASan would catch a use after free). */
static void test_ready_survives_truncation(void **state)
{
    (void)state;
    struct cluster c;
    cluster_init(&c, 3, 3, 81, false, false);
    settle(&c);
    elect(&c, 1);
    isolate(&c, 1);
    propose(&c, 1, "doomed-entry-with-some-bytes");
    assert_true(node_take(&c, N(&c, 1))); /* MsgApps point at the entry */
    N(&c, 1)->hold = true;
    /* 2 becomes leader; 1 learns of it while its ready is still out */
    c.cut[2][3] = c.cut[3][2] = false;
    elect(&c, 2);
    propose(&c, 2, "winner");
    settle(&c);
    c.cut[2][1] = false;
    tick_all(&c);
    settle(&c); /* 1 truncates the doomed entry and appends 2's */
    assert_true(N(&c, 1)->has_rd);
    const struct raft_ready *rd = &N(&c, 1)->rd;
    bool saw = false;
    for (size_t i = 0; i < rd->n_msgs; i++)
        for (size_t k = 0; k < rd->msgs[i].n_entries; k++)
            saw |= rd->msgs[i].entries[k].Data.len == strlen("doomed-entry-with-some-bytes") &&
                   !memcmp(rd->msgs[i].entries[k].Data.p, "doomed", 6);
    assert_true(saw);
    heal(&c);
    N(&c, 1)->hold = false;
    node_complete(&c, N(&c, 1)); /* sends stale MsgApps: rejected as stale */
    for (int t = 0; t < 3; t++) {
        tick_all(&c);
        settle(&c);
    }
    check_safety(&c);
    assert_int_equal(N(&c, 1)->sm, N(&c, 2)->sm);
    cluster_free(&c);
}

/* ---- allocation failures ---- */

/* Fail every allocation in turn during a single-voter session and a
 * follower's catch-up: the failure is reported and sticky, nothing leaks,
 * nothing crashes. */
static int oom_session(void)
{
    struct raft *r = NULL;
    struct raft_config cfg = {.id = 1, .election_tick = 2, .heartbeat_tick = 1,
                              .max_size_per_msg = 64, .max_inflight = 2};
    uint64_t ids[] = {1, 2};
    int rc = raft_new(&cfg, &r);
    if (rc)
        return rc;
    struct raft_ready rd;
    if ((rc = raft_bootstrap(r, ids, NULL, 2)))
        goto out;
    for (int t = 0; t < 6; t++) {
        if ((rc = raft_tick(r)))
            goto out;
        while (raft_has_ready(r)) {
            if ((rc = raft_ready(r, &rd)))
                goto out;
            for (size_t i = 0; i < rd.n_msgs; i++) {
                struct api_raft_message *m = &rd.msgs[i];
                if (m->type == RAFT_MSG_VOTE) {
                    struct api_raft_message resp = {.type = RAFT_MSG_VOTE_RESP, .from = 2,
                                                    .to = 1, .term = m->term};
                    if ((rc = raft_step(r, &resp)))
                        goto out;
                } else if (m->type == RAFT_MSG_APP && m->n_entries) {
                    struct api_raft_message resp = {.type = RAFT_MSG_APP_RESP, .from = 2, .to = 1,
                                                    .term = m->term,
                                                    .index = m->entries[m->n_entries - 1].Index};
                    if ((rc = raft_step(r, &resp)))
                        goto out;
                }
            }
            if ((rc = raft_advance(r, &rd)))
                goto out;
        }
        if (r->r_role == RAFT_LEADER) {
            if ((rc = raft_propose(r, "data", 4)) && rc != RAFT_EDROPPED)
                goto out;
            if ((rc = raft_read_index(r, "rctx", 4)) && rc != RAFT_EDROPPED)
                goto out;
            struct api_raft_conf_change cc = {.type = API_CONF_ADD_LEARNER_NODE, .NodeID = 3};
            if ((rc = raft_propose_conf_change(r, &cc)) && rc != RAFT_EDROPPED)
                goto out;
            if ((rc = raft_apply_conf_change(r, &cc, NULL)))
                goto out;
            if (r->r_log.g_applied >= 3 &&
                (rc = raft_snapshot_create(r, r->r_log.g_applied, NULL, "snap", 4)))
                goto out;
        }
    }
    rc = 0;
out:
    if (rc) {
        /* sticky */
        assert_int_equal(rc, RAFT_ENOMEM);
        assert_int_equal(raft_tick(r), RAFT_ENOMEM);
        assert_int_equal(raft_propose(r, "x", 1), RAFT_ENOMEM);
        assert_false(raft_has_ready(r));
    }
    raft_free(r);
    return rc;
}

static void test_oom(void **state)
{
    (void)state;
    int failures = 0;
    for (long n = 0;; n++) {
        mem_fail_after(n, 0);
        int rc = oom_session();
        mem_fail_after(-1, 0);
        if (rc == 0)
            break;
        assert_int_equal(rc, RAFT_ENOMEM);
        failures++;
        assert_true(n < 10000);
    }
    assert_true(failures > 20);
    assert_int_equal(oom_session(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_voter),
        cmocka_unit_test(test_single_voter_snapshot),
        cmocka_unit_test(test_leader_counts_itself_when_persisted),
        cmocka_unit_test(test_vote_rejects_stale_log),
        cmocka_unit_test(test_figure8_commit_rule),
        cmocka_unit_test(test_follower_conflicts),
        cmocka_unit_test(test_reject_hint),
        cmocka_unit_test(test_read_index),
        cmocka_unit_test(test_read_index_new_leader),
        cmocka_unit_test(test_snapshot_catch_up),
        cmocka_unit_test(test_compact_alone),
        cmocka_unit_test(test_snapshot_failure),
        cmocka_unit_test(test_conf_change),
        cmocka_unit_test(test_leader_transfer),
        cmocka_unit_test(test_pre_vote),
        cmocka_unit_test(test_check_quorum),
        cmocka_unit_test(test_api_edges),
        cmocka_unit_test(test_ready_survives_truncation),
        cmocka_unit_test(test_oom),
        cmocka_unit_test(test_chaos_3),
        cmocka_unit_test(test_chaos_5),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
