/* compactor.c - auto compaction on a timer (compactor.h).  Owns the ring of
 * revisions seen over the retention period and its timer; the compaction
 * itself is an ordinary Compact request through raft (node.c), proposed
 * only by the leader. */
#include "compactor.h"

#include <stdio.h>

#include "err.h"
#include "log.h"
#include "mem.h"
#include "node.h"
#include "server.h"

#define REVISION_INTERVAL_MS (5 * 60 * 1000)
#define HOUR_MS (3600 * 1000)

struct compactor {
    struct server *s;
    bool periodic;
    int64_t retention;     /* ms or revisions */
    int64_t retry_ms;      /* periodic: how often a revision is sampled */
    int64_t *revs;         /* periodic: ring of sampled revisions; owned */
    size_t n_revs, cap_revs, head;
    int64_t last_success;  /* ms */
    int64_t base_interval; /* ms before the next compaction may run */
    int64_t prev;          /* revision: last compacted target */
    int64_t inflight;      /* the revision being compacted, 0 if none */
    uint64_t timer;
};

static void on_timer(struct loop *l, void *arg);

static void arm(struct compactor *c)
{
    c->timer = loop_timer_add(c->s->loop, (uint64_t)(c->periodic ? c->retry_ms : REVISION_INTERVAL_MS),
                              on_timer, c);
}

static void on_done(void *arg, int err, const void *resp)
{
    (void)resp;
    struct compactor *c = arg;
    int64_t rev = c->inflight;
    c->inflight = 0;
    char fields[160];
    if (err == 0 || err == -ERR_COMPACTED) {
        snprintf(fields, sizeof fields, "\"revision\":%lld", (long long)rev);
        log_line(LOG_INFO, c->periodic ? "v3compactor/periodic.go:160" : "v3compactor/revision.go:102",
                 "compactor", c->periodic ? "completed auto periodic compaction" : "completed auto revision compaction",
                 NULL, fields);
        c->last_success = (int64_t)loop_now_ms(c->s->loop);
        c->base_interval = c->retention < HOUR_MS ? c->retention : HOUR_MS;
        c->prev = rev;
    } else {
        snprintf(fields, sizeof fields, "\"revision\":%lld,\"error\":\"%s\"", (long long)rev, err_msg(err));
        log_line(LOG_WARN, "v3compactor/periodic.go:170", "compactor", "failed auto compaction", NULL, fields);
    }
}

static void compact(struct compactor *c, int64_t rev)
{
    char fields[160];
    snprintf(fields, sizeof fields, "\"revision\":%lld", (long long)rev);
    log_line(LOG_INFO, c->periodic ? "v3compactor/periodic.go:134" : "v3compactor/revision.go:86", "compactor",
             c->periodic ? "starting auto periodic compaction" : "starting auto revision compaction", NULL, fields);
    struct api_compaction_req req = {.revision = rev};
    struct api_internal_raft_req irr = {.compaction = &req};
    c->inflight = rev;
    node_propose_fn(c->s->node, &irr, on_done, c);
}

static void on_timer(struct loop *l, void *arg)
{
    struct compactor *c = arg;
    c->timer = 0;
    int64_t now = (int64_t)loop_now_ms(l);
    int64_t cur = mvcc_rev(c->s->mvcc);
    struct raft_status st = {0};
    if (c->s->node)
        node_status(c->s->node, &st);
    bool leader = st.role == RAFT_LEADER;
    if (c->periodic) {
        /* the oldest sample is the revision one retention period ago */
        if (c->n_revs < c->cap_revs) {
            c->revs[(c->head + c->n_revs++) % c->cap_revs] = cur;
        } else {
            c->revs[c->head] = cur;
            c->head = (c->head + 1) % c->cap_revs;
        }
        if (leader && !c->inflight && now - c->last_success >= c->base_interval && c->revs[c->head] > 0)
            compact(c, c->revs[c->head]);
    } else {
        int64_t rev = cur - c->retention;
        if (leader && !c->inflight && rev > 0 && rev != c->prev)
            compact(c, rev);
    }
    arm(c);
}

struct compactor *compactor_new(struct server *s, bool periodic, int64_t retention)
{
    if (retention <= 0)
        return NULL;
    struct compactor *c = mem_calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->s = s;
    c->periodic = periodic;
    c->retention = retention;
    if (periodic) {
        int64_t itv = retention < HOUR_MS ? retention : HOUR_MS;
        c->retry_ms = itv / 10 > 0 ? itv / 10 : 1;
        c->cap_revs = (size_t)(retention / c->retry_ms) + 1;
        c->revs = mem_calloc(c->cap_revs, sizeof *c->revs);
        if (!c->revs) {
            mem_free(c);
            return NULL;
        }
        c->last_success = (int64_t)loop_now_ms(s->loop);
        c->base_interval = retention; /* the first one waits a whole period */
    }
    arm(c);
    return c;
}

void compactor_free(struct compactor *c)
{
    if (!c)
        return;
    if (c->timer)
        loop_timer_cancel(c->s->loop, c->timer);
    mem_free(c->revs);
    mem_free(c);
}
