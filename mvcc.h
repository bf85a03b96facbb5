/* mvcc.h - the multi-version key-value store: revisions (main, sub), the key
 * index (key -> generations of revisions, tombstones), Range/Put/DeleteRange/
 * Txn/Compact with etcd 3.4's exact semantics.
 *
 * The key index is in memory; values too, until the backend holds them (see
 * mvcc_set_loader).  It knows nothing about gRPC, leases (a lease id is just
 * a number stored with the key) or response headers: the caller fills
 * header->cluster_id/member_id/raft_term; mvcc sets header->revision where
 * etcd's applier does (top-level responses and the nested ones inside a
 * Txn).
 *
 * Ownership: struct mvcc owns copies of every key, of the newest value of
 * each key and of older values not yet evicted.  Responses are built in the
 * caller's arena; their pb_bytes point either into the arena (values read
 * back from the backend among them) or into mvcc's own storage and stay
 * valid until the next mutating call (put/delete/txn/compact/evict) or
 * mvcc_free.
 *
 * Errors: 0 or -ERR_x from err.h (ERR_COMPACTED, ERR_FUTURE_REV, ERR_NOMEM,
 * ERR_KEY_NOT_FOUND, ERR_LEASE_NOT_FOUND, and from mvcc_txn_check ERR_TOO_MANY_OPS,
 * ERR_DUPLICATE_KEY, ERR_EMPTY_KEY, ERR_VALUE_PROVIDED, ERR_LEASE_PROVIDED).
 * A call that fails changes nothing: the store is as it was before it, at
 * the same revision (-ERR_NOMEM included).
 *
 * Every resp->header (top-level response) may be NULL or caller-allocated;
 * mvcc only sets its revision.
 */
#ifndef ETCD_MVCC_H
#define ETCD_MVCC_H

#include "api.h"
#include "mem.h"

struct mvcc;

/* NULL on OOM. */
struct mvcc *mvcc_new(void);
void mvcc_free(struct mvcc *m);

/* Current (latest) revision; 1 for a new store, as etcd's. */
int64_t mvcc_rev(const struct mvcc *m);
/* Last compacted revision, 0 if never compacted. */
int64_t mvcc_compact_rev(const struct mvcc *m);

/* Optional: how mvcc_txn asks whether a lease exists.  etcd checks, before
 * applying a txn, every put with a non-zero lease on the branches the txn
 * will run (after that put's ignore_value/ignore_lease check); a missing
 * lease fails the txn with -ERR_LEASE_NOT_FOUND.  Without a hook every lease
 * is taken to exist.  Top-level puts are the caller's to check (etcd checks
 * their lease before anything else). */
void mvcc_set_lease_check(struct mvcc *m, bool (*exists)(void *ctx, int64_t lease), void *ctx);

/* RangeRequest -> RangeResponse, every field of RangeRequest honoured
 * (revision: <= 0 = latest, < compacted revision -> -ERR_COMPACTED (the
 * compacted revision itself stays readable, as in etcd), > current ->
 * -ERR_FUTURE_REV; sort; limit + more + count; keys_only; count_only;
 * min/max mod/create revision; range_end "\0" = from key).  count is the
 * number of keys in the range before the min/max filters and the limit, as
 * etcd reports it.  Sorting ties come out in key order.  -ERR_NOMEM if the
 * arena or the scratch space runs out.  resp->header must be allocated by
 * the caller or NULL; its revision is the current revision. */
int mvcc_range(struct mvcc *m, const struct api_range_req *req, struct mem_arena *a,
               struct api_range_resp *resp) MEM_MUST_CHECK;

/* PutRequest -> PutResponse.  ignore_value/ignore_lease on a missing key ->
 * -ERR_KEY_NOT_FOUND.  Bumps the revision by one.  -ERR_NOMEM. */
int mvcc_put(struct mvcc *m, const struct api_put_req *req, struct mem_arena *a,
             struct api_put_resp *resp) MEM_MUST_CHECK;

/* DeleteRangeRequest -> DeleteRangeResponse.  All keys deleted in one
 * revision (sub revisions 0..n-1); no revision bump when nothing matched.
 * -ERR_NOMEM. */
int mvcc_delete(struct mvcc *m, const struct api_delete_req *req, struct mem_arena *a,
                struct api_delete_resp *resp) MEM_MUST_CHECK;

/* Validates a TxnRequest as etcd's API layer does before proposing it
 * (checkTxnRequest, then checkIntervals on success, then on failure), first
 * error wins:
 * at most max_ops compares/operations in each list, a nested txn at most
 * max_ops minus its parent's largest list (-ERR_TOO_MANY_OPS); no empty key
 * in compares/puts/ranges/deletes (-ERR_EMPTY_KEY); ignore_value with a value
 * (-ERR_VALUE_PROVIDED); ignore_lease with a lease (-ERR_LEASE_PROVIDED); an
 * empty RequestOp (-ERR_KEY_NOT_FOUND); no key written twice in one branch
 * including nested txns, by etcd's exact overlap rules (-ERR_DUPLICATE_KEY);
 * -ERR_NOMEM. */
int mvcc_txn_check(const struct api_txn_req *req, int max_ops) MEM_MUST_CHECK;

/* TxnRequest -> TxnResponse: evaluates compares, runs one branch; all writes
 * share one main revision (bumped once if anything was written).  As etcd's
 * applier: every compare, nested ones included, reads the store as it was
 * before the txn; then, over the ops the txn will run, puts are checked
 * (ignore_value/ignore_lease on a key missing before the txn ->
 * -ERR_KEY_NOT_FOUND; the lease hook -> -ERR_LEASE_NOT_FOUND), then ranges
 * with a non-zero revision (> current -> -ERR_FUTURE_REV; below etcd's
 * compactMainRev, which is -1 before any compaction -> -ERR_COMPACTED, so a
 * negative revision that reads the latest at top level can fail here).
 * Nested op responses get arena headers holding only the revision; nested
 * txn responses an all-zero header.  An ignore_* put whose key an earlier op
 * of the same txn deleted (etcd panics there) fails the whole txn with
 * -ERR_KEY_NOT_FOUND.  -ERR_NOMEM. */
int mvcc_txn(struct mvcc *m, const struct api_txn_req *req, struct mem_arena *a,
             struct api_txn_resp *resp) MEM_MUST_CHECK;

/* ---- history on disk ----
 *
 * The key index keeps every revision (packed, about 1.5 bytes each once
 * evicted).  With a loader, the rest of a revision's KeyValue (value, create
 * revision, version, lease) stays in memory while it is its key's newest and
 * until the loader can read it back (the backend has recorded it);
 * mvcc_evict then drops it, and reads of history (a range at an old
 * revision, a watcher's catch-up) get it back through the loader.
 * Reads of the present, prev_kv of a write, txn compares and the event feed
 * of the last write never load.  A failed load fails the call with the
 * loader's error (a txn is then undone as for -ERR_NOMEM). */
struct mvcc_loader {
    /* The KeyValue stored for key at revision (main, sub), a put: its
     * create_revision, version, lease and value (copied into a) in *kv;
     * mvcc sets key and mod_revision.  0 or -ERR_x (-ERR_NOMEM,
     * -ERR_CORRUPT). */
    int (*load)(void *ctx, struct pb_bytes key, int64_t main, int64_t sub, struct mem_arena *a,
                struct api_kv *kv);
    /* The call that loaded is over: a loader may keep one read transaction
     * across the loads of a call and end it here. */
    void (*done)(void *ctx);
    void *ctx;
};
/* Before the first write or restore. */
void mvcc_set_loader(struct mvcc *m, const struct mvcc_loader *l);
/* The loader can read back every revision <= rev: drops the KeyValues of
 * those that are not their key's newest.  Cost: the keys written since they
 * were last evicted.  Without a loader, does nothing. */
void mvcc_evict(struct mvcc *m, int64_t rev);

/* ---- the event feed ---- */

/* One change a write made: the mvccpb.Event a watcher is sent and what a
 * backend batch stores (the revision key main/sub, 't' for a tombstone).
 * Pointers are into the store: valid until the next mutating call. */
struct mvcc_event {
    int32_t type;       /* API_EVENT_PUT, or API_EVENT_DELETE for a tombstone */
    int64_t sub;        /* sub revision; the main revision is kv.mod_revision */
    struct api_kv kv;   /* DELETE: key and mod_revision only, as etcd's event
                         * (etcd's backend stores a tombstone as the key alone) */
    struct api_kv prev; /* valid if has_prev: the key as of revision main - 1 */
    bool has_prev;      /* what etcd's watch server sends as prev_kv: the key
                         * existed at main - 1 and that revision is not compacted */
};

/* The changes the last mutating call made, in (main, sub) order: one
 * revision's events.  0 after a call that failed or wrote nothing, after a
 * read-only txn and after mvcc_compact.  O(1). */
size_t mvcc_last_n_events(const struct mvcc *m);
/* Fills *ev with change i (< mvcc_last_n_events) of the last call.  O(1)
 * plus the key's revisions written by that same call. */
void mvcc_last_event(const struct mvcc *m, size_t i, struct mvcc_event *ev);

/* History for watchers catching up: the events of the keys in [key,
 * range_end) (range_end as in a RangeRequest: empty = the key alone, "\0" =
 * every key >= key) with main revision >= from_rev, in (main, sub) order, in
 * whole revisions: at most max_events (>= 1) events, unless the first
 * revision alone has more, which then comes whole, and, past the first
 * revision, no revision once the values returned (kv and prev) reach
 * max_bytes (0: no such limit).  Evicted values are read back into a.
 * *evs is allocated in a
 * (NULL when *n is 0); *next_rev is the revision to ask from next time:
 * current revision + 1 once everything up to the present was returned.
 * From a revision in the future: nothing, *next_rev = from_rev.
 * -ERR_COMPACTED if from_rev < etcd's compactMainRev (-1 before any
 * compaction: so from_rev = compacted revision is allowed, as etcd's watch
 * allows it, and returns what compaction kept of that revision: its puts
 * that are still their key's newest revision <= it); -ERR_NOMEM.
 * Cost: one walk over the range's keys (a lookup for a single key) plus
 * O(events log max_events); nothing is kept between calls. */
int mvcc_events_since(struct mvcc *m, struct pb_bytes key, struct pb_bytes range_end,
                      int64_t from_rev, size_t max_events, size_t max_bytes, struct mem_arena *a,
                      struct mvcc_event **evs, size_t *n, int64_t *next_rev) MEM_MUST_CHECK;

/* etcd's compactMainRev: the last compacted revision, or -1 before any
 * compaction (a watch reports it as compact_revision). */
int64_t mvcc_compact_main_rev(const struct mvcc *m);

/* Compacts history up to rev: every revision <= rev goes except the newest
 * of each key, unless that one is a tombstone.  -ERR_COMPACTED if rev <=
 * compacted revision (compacting at 0 is allowed once, as in etcd),
 * -ERR_FUTURE_REV if rev > current revision, -ERR_NOMEM (rebuilding the key
 * index). */
int mvcc_compact(struct mvcc *m, int64_t rev) MEM_MUST_CHECK;

/* ---- restoring from the backend ---- */

/* One revision as the backend keys it: etcd's revision{main, sub}. */
struct mvcc_revision {
    int64_t main;
    int64_t sub;
};

/* Rebuilding a store from the backend's key bucket (etcd's restore): on a
 * store fresh from mvcc_new, call mvcc_restore_rev for every stored revision
 * in strictly ascending (main, sub) order (main >= 1), then
 * mvcc_restore_finish once.  kv is the stored mvccpb.KeyValue: for a put its
 * create_revision, version (>= 1), lease and value are kept exactly, and its
 * mod_revision must be main; for a tombstone (the key had etcd's 't' mark)
 * only kv->key is read.  The caller checks the order and the fields (they
 * come from disk); an assert guards them here.  As etcd's restore does, a
 * tombstone of a key that is not live is skipped.  0, or -ERR_NOMEM (the
 * store is as before the call). */
int mvcc_restore_rev(struct mvcc *m, int64_t main, int64_t sub, const struct api_kv *kv,
                     bool tombstone) MEM_MUST_CHECK;

/* Ends a restore: the current revision becomes rev (at least 1) and etcd's
 * compactMainRev compact_main_rev (-1 = never compacted).  A store restored
 * from what another store wrote (every revision it kept, its revisions and
 * its compaction) then reads, compacts and writes as that store would. */
void mvcc_restore_finish(struct mvcc *m, int64_t rev, int64_t compact_main_rev);

/* etcd's kvindex.Keep(rev): for every key, its newest revision with main <=
 * rev, unless that one is a tombstone.  Those with main <= upto go to *out
 * (mem_alloc'd, the caller mem_frees it; NULL when *n is 0), sorted by
 * (main, sub); *n_all (if not NULL) counts all of them.  After
 * mvcc_compact(rev), mvcc_keep(rev, rev) lists the revisions <= rev the
 * compaction kept: what the backend must not delete.  O(keys + n log n).
 * 0 or -ERR_NOMEM. */
int mvcc_keep(const struct mvcc *m, int64_t rev, int64_t upto, struct mvcc_revision **out, size_t *n,
              size_t *n_all) MEM_MUST_CHECK;

/* Every key whose newest revision is live and carries a lease (what etcd's
 * restore re-attaches), in key order: *out in the arena (NULL when *n is 0),
 * each with its key and lease only; key bytes point into the store (valid
 * until the next mutating call).  One walk over the keys.  0 or -ERR_NOMEM. */
int mvcc_leased_keys(const struct mvcc *m, struct mem_arena *a, struct api_kv **out,
                     size_t *n) MEM_MUST_CHECK;

#endif
