/* lease.h - etcd 3.4's lessor (lease/lessor.go) as a pure state machine: the
 * lease table, the keys attached to each lease, expiry and checkpoint
 * scheduling, promote/demote, and etcd's lease ID generator (pkg/idutil).
 *
 * No I/O and no clock: every call that depends on time takes now_ms, a
 * monotonic clock in milliseconds (>= 0, never going back).  Nothing here
 * proposes, persists or deletes: the caller
 *   - applies LeaseGrant/LeaseRevoke/LeaseCheckpoint entries from the raft log
 *     (lease_grant, lease_revoke, lease_checkpoint), deleting the keys that
 *     lease_revoke hands back in one mvcc revision and writing the `lease`
 *     bucket (lease_info has what etcd persists: ID, TTL, RemainingTTL);
 *   - calls lease_attach/lease_detach as mvcc puts and deletes keys, and on
 *     restart re-adds leases (lease_recover) before re-attaching the keys;
 *   - on the leader, polls lease_expired and lease_checkpoints_due (timers from
 *     lease_next_expiry/lease_next_checkpoint) and proposes a LeaseRevoke per
 *     expired lease and a LeaseCheckpointRequest per batch;
 *   - answers LeaseKeepAlive with lease_renew and LeaseTimeToLive/LeaseLeases
 *     with lease_time_to_live/lease_leases.
 *
 * Errors: 0 or -ERR_x from err.h.  A call that fails changes nothing, and
 * out-parameters are set only on success.
 * Costs: grant/renew/checkpoint O(log n) in the number of leases (hash lookup
 * plus heap fix), revoke O(log n + k log k) for k keys, attach/detach O(1)
 * expected, promote/demote O(n) (O(n log n) when promote spreads expiries).
 * Memory: one allocation per lease and per attached key, hash bucket arrays
 * and two heap arrays that grow with the peak number of leases and keys.
 * Only grant, recover and attach allocate; revoke, time_to_live and leases
 * take the caller's arena; nothing on the leader's timer paths allocates.
 */
#ifndef ETCD_LEASE_H
#define ETCD_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "mem.h"

/* lease.MaxLeaseTTL, seconds. */
#define LEASE_MAX_TTL 9000000000LL
/* The expiry of every lease while the table is not primary. */
#define LEASE_FOREVER INT64_MAX
/* etcd's leaseRevokeRate/2: how many expired leases its lessor hands out
 * every 500 ms.  A good `max` for lease_expired. */
#define LEASE_EXPIRED_BATCH 500
/* etcd's maxLeaseCheckpointBatchSize: a good `max` for lease_checkpoints_due. */
#define LEASE_CHECKPOINT_BATCH 1000

struct lease_config {
    /* Shorter TTLs (zero and negative too) are raised to this, seconds;
     * lease_min_ttl() gives etcd's value. */
    int64_t lc_min_ttl;
    /* An expired lease handed out by lease_expired comes out again after this
     * long if its revoke has not been applied by then (etcd passes
     * ReqTimeout: 5 s + 2 * election timeout).  <= 0 means etcd's default,
     * 3 s. */
    int64_t lc_retry_ms;
    /* --experimental-enable-lease-checkpoint: the leader checkpoints the
     * remaining TTL of long leases through raft so a new leader does not
     * restart them at their full TTL. */
    bool lc_checkpoint;
    /* --experimental-lease-checkpoint-interval; <= 0 means 5 minutes. */
    int64_t lc_checkpoint_ms;
    /* Key of the hash of attached keys and lease IDs, both chosen by
     * clients: random bytes from the caller keep collisions unguessable. */
    uint8_t lc_seed[16];
};

/* The table.  Owns every lease and a copy of every attached key. */
struct lease_table;

/* What etcd keeps of a lease (lease/lessor.go Lease, leasepb.Lease). */
struct lease_info {
    int64_t lf_ttl;       /* granted TTL, seconds */
    int64_t lf_remaining; /* last checkpointed remaining TTL, s; 0 = unset */
    int64_t lf_expiry_ms; /* LEASE_FOREVER unless primary */
    size_t lf_n_keys;
};

/* etcd's minimum TTL for a raft timing: ceil((3 * election_ticks / 2) *
 * tick_ms / 1000) seconds, integer division as etcdserver/server.go does it.
 * 2 with the defaults (10 ticks of 100 ms). */
int64_t lease_min_ttl(int64_t election_ticks, int64_t tick_ms);

/* NULL on OOM.  The table starts not primary (a follower's view). */
struct lease_table *lease_new(const struct lease_config *cfg) MEM_MUST_CHECK;
void lease_free(struct lease_table *t);

/* ---- applied through raft (every member, same order, same results) ---- */

/* LeaseGrant apply (lessor.Grant).  TTLs below the minimum are raised to it;
 * *granted_ttl gets the TTL the response carries.  A primary table starts the
 * lease's clock at now_ms; a follower's lease never expires until promote.
 * -ERR_LEASE_NOT_FOUND for id 0 (NoLease: the API layer picks an ID with
 * lease_id_gen first), -ERR_LEASE_TTL_TOO_LARGE for ttl > LEASE_MAX_TTL,
 * -ERR_LEASE_EXIST, -ERR_NOMEM; checked in that order.  Negative IDs are
 * accepted, as etcd does. */
int lease_grant(struct lease_table *t, int64_t now_ms, int64_t id, int64_t ttl,
                int64_t *granted_ttl) MEM_MUST_CHECK;

/* LeaseRevoke apply (lessor.Revoke): removes the lease and hands back its
 * keys, copied into the arena and sorted bytewise, as etcd deletes them (so
 * every member's backend hashes alike); the caller deletes them all in one
 * mvcc revision.  *keys is NULL when there are none.  -ERR_LEASE_NOT_FOUND;
 * -ERR_NOMEM when the arena runs out (the lease stays). */
int lease_revoke(struct lease_table *t, int64_t id, struct mem_arena *a, struct pb_bytes **keys,
                 size_t *n_keys) MEM_MUST_CHECK;

/* LeaseCheckpoint apply, one entry (lessor.Checkpoint): records the remaining
 * TTL (seconds; 0 clears it) that the next promote starts the lease with, and
 * on a primary schedules the lease's next checkpoint.  Unknown IDs are
 * ignored, as etcd does.  The caller persists the new RemainingTTL only when
 * configured to (--experimental-lease-checkpoint-persist). */
void lease_checkpoint(struct lease_table *t, int64_t now_ms, int64_t id, int64_t remaining_ttl);

/* Restart or snapshot install (lessor.initAndRecover): re-adds a lease read
 * from the backend.  The TTL is raised to the minimum; remaining_ttl (0 =
 * unset) is what the next promote starts it with, else the full TTL.  No
 * LEASE_MAX_TTL check.  On a primary table the clock starts at now_ms, as
 * for a grant.  -ERR_LEASE_NOT_FOUND for id 0, -ERR_LEASE_EXIST, -ERR_NOMEM. */
int lease_recover(struct lease_table *t, int64_t now_ms, int64_t id, int64_t ttl,
                  int64_t remaining_ttl) MEM_MUST_CHECK;

/* Drops every lease and attached key (before re-adding from a snapshot);
 * keeps the configuration and the primary flag. */
void lease_reset(struct lease_table *t);

/* ---- attached keys (called as mvcc changes keys) ---- */

/* A put with this lease: attaches key to the lease, moving it off the lease it
 * was attached to before if any.  -ERR_LEASE_NOT_FOUND (etcd's Attach error:
 * mvcc checks the lease before the put), -ERR_NOMEM. */
int lease_attach(struct lease_table *t, int64_t id, const uint8_t *key, size_t len) MEM_MUST_CHECK;

/* A delete, or a put without this lease over a key that had it: detaches
 * key.  0 also when the key was not attached to this lease (nothing
 * changes); -ERR_LEASE_NOT_FOUND for an unknown lease. */
int lease_detach(struct lease_table *t, int64_t id, const uint8_t *key, size_t len);

/* The lease key is attached to, 0 if none (lessor.GetLease). */
int64_t lease_of_key(const struct lease_table *t, const uint8_t *key, size_t len);

/* ---- queries ---- */

bool lease_exists(const struct lease_table *t, int64_t id);
size_t lease_count(const struct lease_table *t);
/* 0, or -ERR_LEASE_NOT_FOUND. */
int lease_info(const struct lease_table *t, int64_t id, struct lease_info *out);

/* LeaseTimeToLive on the leader: sets resp->ID, TTL (seconds left, truncated
 * toward zero as etcd's int64(Remaining().Seconds()): -1 once a lease is a
 * second past its expiry and not yet revoked; 9223372036 on a table that is
 * not primary), grantedTTL and, when want_keys, keys/n_keys sorted bytewise
 * (array in the arena, bytes owned by the table: valid until the next call
 * that changes the table).  resp->header is left alone.  -ERR_LEASE_NOT_FOUND
 * (the gRPC layer answers TTL -1 then), -ERR_NOMEM. */
int lease_time_to_live(const struct lease_table *t, int64_t now_ms, int64_t id, bool want_keys,
                       struct mem_arena *a, struct api_lease_time_to_live_resp *resp) MEM_MUST_CHECK;

/* LeaseLeases: every lease ID, soonest expiry first (ties by ID), the array
 * in the arena (NULL when empty).  resp->header is left alone.  -ERR_NOMEM. */
int lease_leases(const struct lease_table *t, struct mem_arena *a,
                 struct api_lease_leases_resp *resp) MEM_MUST_CHECK;

/* ---- the primary (leader) side ---- */

/* lease_renew's answers besides 0 and -ERR_LEASE_NOT_FOUND.  etcd's Renew
 * blocks on an expired lease until its revoke applies (then: not found, which
 * KeepAlive answers with TTL 0) or the lessor is demoted (then: not primary);
 * not primary means forwarding the renew to the leader. */
#define LEASE_NOT_PRIMARY 1
#define LEASE_EXPIRING 2

/* LeaseKeepAlive (lessor.Renew): restarts the lease's full TTL at now_ms and
 * sets *ttl to it.  When checkpointing is on and the lease carries a
 * checkpointed remaining TTL, *clear_checkpoint is set: the caller proposes
 * LeaseCheckpoint{ID, remaining_TTL 0} so a later leader does not cut the
 * renewed lease short (etcd proposes it before renewing).
 * Returns 0, LEASE_NOT_PRIMARY (checked first), -ERR_LEASE_NOT_FOUND, or
 * LEASE_EXPIRING (the lease is at or past its expiry: hold the request and
 * retry after the revoke applies or leadership changes).  Never allocates. */
int lease_renew(struct lease_table *t, int64_t now_ms, int64_t id, int64_t *ttl,
                bool *clear_checkpoint) MEM_MUST_CHECK;

/* Up to max IDs of expired leases (expiry <= now_ms), earliest first (ties by
 * ID); nothing unless primary.  Each one handed out is handed out again
 * lc_retry_ms later if it still exists, in case its revoke was lost; the
 * caller proposes a LeaseRevoke for each.  Bounded so thousands of leases
 * expiring together go out over several loop turns. */
size_t lease_expired(struct lease_table *t, int64_t now_ms, int64_t *out, size_t max);

/* When lease_expired next has something: a time in ms, LEASE_FOREVER if never
 * (not primary or no leases).  May be <= now when a batch was cut short. */
int64_t lease_next_expiry(const struct lease_table *t);

/* Up to max due checkpoints (lessor.findDueScheduledCheckpoints): leases
 * whose remaining TTL, rounded up to seconds, is below their TTL.  Nothing
 * unless primary with checkpointing on.  The caller proposes them as one
 * LeaseCheckpointRequest. */
size_t lease_checkpoints_due(struct lease_table *t, int64_t now_ms, struct api_lease_checkpoint *out,
                             size_t max);

/* When lease_checkpoints_due next has something, or LEASE_FOREVER. */
int64_t lease_next_checkpoint(const struct lease_table *t);

/* Becoming leader, once the entries of earlier terms are applied
 * (lessor.Promote(electionTimeout)): every lease restarts at now_ms with its
 * remaining TTL (checkpointed, else full) plus extend_ms (negative counts as
 * 0).  With 1000 leases or more, etcd's pile-up rule then pushes leases
 * expiring within the same second back so that no more than 750 expire per
 * second.  Allocates nothing. */
void lease_promote(struct lease_table *t, int64_t now_ms, int64_t extend_ms);

/* Losing leadership (lessor.Demote): no lease expires, checkpoints stop. */
void lease_demote(struct lease_table *t);

bool lease_is_primary(const struct lease_table *t);

/* ---- lease IDs (pkg/idutil.Generator) ---- */

/* etcd's request/lease ID generator: 2 bytes of member ID, 5 bytes of the
 * Unix time in ms at start, 1 byte of counter, the low 6 bytes counting up
 * (carrying into the timestamp).  etcd draws request IDs and lease IDs from
 * one generator, so the lease IDs one member hands out are not consecutive. */
struct lease_idgen {
    uint64_t ig_prefix;
    uint64_t ig_suffix;
};

/* member_id: the member's full ID (its low 16 bits are used, uint16(id) as
 * etcd); unix_ms: wall clock at start. */
void lease_idgen_init(struct lease_idgen *g, uint64_t member_id, int64_t unix_ms);
/* Generator.Next(). */
uint64_t lease_idgen_next(struct lease_idgen *g);
/* The ID LeaseGrant picks for a request with ID 0: Next() with the top bit
 * cleared, skipping 0.  Always > 0. */
int64_t lease_id_gen(struct lease_idgen *g);

#endif
