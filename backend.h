/* backend.h - etcd 3.4's backend contents in <data-dir>/member/snap/db, so
 * real etcd 3.4.23 and this server open each other's db.
 *
 * Owns what the buckets hold, byte for byte as etcd writes it:
 *   key      17-byte revision keys (8-byte big-endian main, '_', 8-byte
 *            big-endian sub; a tombstone adds 't') -> mvccpb.KeyValue (a
 *            tombstone stores a KeyValue holding only the key)
 *   meta     consistent_index (8-byte big-endian), scheduledCompactRev and
 *            finishedCompactRev (17-byte revision keys, sub 0)
 *   lease    8-byte big-endian ID -> leasepb.Lease{ID, TTL, RemainingTTL}
 *   members  member ID in hex (types.ID.String()) -> member JSON
 *   members_removed  member ID in hex -> "removed"
 *   cluster  clusterVersion -> "3.4.0"
 *   alarm    AlarmMember protobuf -> empty value
 *   auth     authRevision (8-byte big-endian, 1 at creation); authUsers and
 *            authRoles are created empty
 * the pending write batch built on the loop thread, its commit on the worker
 * thread, compaction of the key bucket in bounded batches, startup recovery
 * into a fresh mvcc, etcd's Hash and HashKV, snapshots with etcd's sha256
 * trailer, defragmentation and the sizes Status reports.
 * Does not own: the file format (db.c), the in-memory store (mvcc.c), the
 * lease table (lease.c), members (member.c), threads and timers (the caller:
 * node.c runs the commit through loop_work).
 *
 * Threads: everything runs on the loop thread except backend_commit_run and
 * backend_hash_run (the worker thread: one job at a time, in the order they
 * were queued), backend_snapshot and backend_defrag (see there).
 *
 * Errors: 0 or a negative DB_E* code from db.h, except where a function says
 * it returns -ERR_x from err.h.  The text is in backend_errmsg() for the
 * loop-thread calls, in the hash for a hash, in the caller's buffer for a
 * snapshot or a defrag.
 *
 * Memory: the pending batch holds one copy of every value written since the
 * last commit; the commit policy (backend_commit_deadline) bounds it to
 * 10,000 records or 100 ms of writes, unless commits keep failing (a full
 * disk), when it grows until they succeed: the caller raises etcd's NOSPACE
 * alarm then, which stops writes.  A compaction holds one revision (16
 * bytes) per key it keeps until its last batch is committed, as etcd does.
 */
#ifndef ETCD_BACKEND_H
#define ETCD_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "db.h"
#include "member.h"
#include "mvcc.h"

#define BACKEND_MUST_CHECK __attribute__((warn_unused_result))

/* etcd's defaults: --backend-batch-interval, --backend-batch-limit,
 * --experimental-compaction-batch-limit, and the pause its compactor takes
 * between two batches. */
#define BACKEND_BATCH_INTERVAL_MS 100
#define BACKEND_BATCH_LIMIT 10000
/* Ours besides: a batch is committed once it holds this many bytes of
 * records.  Until it is, every write in it is in memory several times over
 * (its record, its mvcc value, its raft entry, then the db's pages): under
 * heavy load a count of 10,000 alone would hold tens of MB, for no gain in
 * throughput, as the commits run beside the WAL's writes. */
#define BACKEND_BATCH_BYTES (512 * 1024)
#define BACKEND_COMPACTION_BATCH_LIMIT 1000
#define BACKEND_COMPACTION_PAUSE_MS 10

struct backend;
struct backend_job;
struct backend_hash;

struct backend_config {
    unsigned bc_db_flags;        /* DB_NO_SYNC for --unsafe-no-fsync; DB_NO_FREELIST_SYNC
                                    is always added, as etcd does on Linux */
    int bc_batch_interval_ms;    /* <= 0: BACKEND_BATCH_INTERVAL_MS */
    int bc_batch_limit;          /* <= 0: BACKEND_BATCH_LIMIT */
    int bc_compaction_batch_limit; /* <= 0: BACKEND_COMPACTION_BATCH_LIMIT */
};

/* ---- open, load, close ---- */

/* Opens (creating it when missing) the db at path and creates, in one
 * commit, the buckets etcd creates at startup that are missing, with
 * authRevision = 1 in a new auth bucket (nothing is written when all exist).
 * cfg may be NULL for the defaults.  Returns 0 and sets *out; DB_EBUSY (the
 * file is locked by another process), DB_ECORRUPT, DB_EINCOMPAT (a bucket
 * name is a plain key), DB_EIO, DB_ENOSPC, DB_ENOMEM: *out is NULL and err
 * (if not NULL) holds a message naming path. */
int backend_open(const char *path, const struct backend_config *cfg, struct backend **out, char *err,
                 size_t errlen) BACKEND_MUST_CHECK;

/* No job may be in flight (wait for the worker).  Records not yet committed
 * are dropped: commit first (backend_commit_prepare/run/finish until
 * backend_pending returns false) for a clean shutdown. */
void backend_close(struct backend *b);

/* Text of the last failure of backend_load or backend_commit_finish (with
 * the path and, for corruption, the bucket and key); "" if none.  Loop
 * thread; valid until the next call on b. */
const char *backend_errmsg(const struct backend *b);

/* A lease as the lease bucket keeps it. */
struct backend_lease {
    int64_t id;
    int64_t ttl;           /* seconds, as granted (already raised to the minimum) */
    int64_t remaining_ttl; /* last checkpointed remaining TTL; 0 = unset */
};

/* A key whose newest revision is live and carries a lease. */
struct backend_lease_key {
    struct pb_bytes key;
    int64_t lease;
};

/* What backend_load found besides the keys.  Every array (NULL when empty)
 * and key byte is owned by the struct; backend_state_free frees them. */
struct backend_state {
    uint64_t consistent_index;     /* 0 when the db has none */
    struct member *members;        /* the members bucket, in key order */
    size_t n_members;
    uint64_t *removed;             /* members_removed IDs, in key order */
    size_t n_removed;
    char cluster_version[64];      /* "" when not set */
    struct backend_lease *leases;  /* in ID byte order */
    size_t n_leases;
    struct backend_lease_key *lease_keys; /* in key order */
    size_t n_lease_keys;
    struct api_alarm_member *alarms;
    size_t n_alarms;
    struct mem_arena bs_arena;     /* owns the arrays and key bytes */
};

/* Startup (etcd's store.restore, lessor.initAndRecover): rebuilds m, which
 * must be fresh from mvcc_new, from the key bucket: every stored revision
 * with its exact fields, the current revision (the newest stored, at least
 * the compacted one) and the compacted revision (finishedCompactRev, or
 * never compacted).  A compaction the db says was scheduled but not finished
 * is redone, as etcd does: mvcc_compact on m and its key-bucket deletion
 * queued in the pending batch.  Fills *st (zeroed first) with the rest; the
 * caller then lease_recover()s st->leases, lease_attach()es st->lease_keys
 * (etcd attaches a key to a lease that does not exist; lease_attach refuses
 * it, which is harmless), takes the members and the cluster version.  Call
 * once, before anything is recorded.
 * Returns 0; DB_ECORRUPT when a bucket holds what etcd never writes (the
 * message names the bucket and key), a read error from db.c, DB_ENOMEM;
 * on failure m and *st must be freed (mvcc_free, backend_state_free). */
int backend_load(struct backend *b, struct mvcc *m, struct backend_state *st) BACKEND_MUST_CHECK;

void backend_state_free(struct backend_state *st);

/* ---- recording applied changes (loop thread) ----
 *
 * Each call appends to the pending batch; nothing touches the file until a
 * commit.  Returns 0, or DB_ENOMEM with nothing recorded: the store and the
 * batch then disagree, so the caller must stop (etcd panics there).
 * DB_EINVAL (nothing recorded) for what bbolt cannot store: a value over
 * DB_MAX_VALUE, an alarm with member 0 and type NONE. */

/* The changes of the last successful mvcc_put/delete/txn (mvcc_last_event):
 * one key-bucket record per change.  Call after every mutation that wrote
 * something, a LeaseRevoke's deletes included; a call with no changes
 * records nothing. */
int backend_record_changes(struct backend *b, const struct mvcc *m) BACKEND_MUST_CHECK;

/* After mvcc_compact(m, rev) succeeded: writes scheduledCompactRev and starts
 * deleting from the key bucket every revision <= rev that m no longer holds,
 * at most bc_compaction_batch_limit keys per commit, then writes
 * finishedCompactRev.  A newer compaction replaces one still running (it
 * deletes all the older one would).  Makes a commit due at once, as etcd
 * forces one. */
int backend_record_compaction(struct backend *b, const struct mvcc *m, int64_t rev) BACKEND_MUST_CHECK;

/* The raft index of the entry just applied; written with every commit.
 * Cannot fail. */
void backend_record_consistent_index(struct backend *b, uint64_t index);

/* A member added or updated (conf change, published attributes, promote). */
int backend_record_member(struct backend *b, const struct member *mb) BACKEND_MUST_CHECK;
/* A member removed: deleted from members, put in members_removed. */
int backend_record_member_removed(struct backend *b, uint64_t id) BACKEND_MUST_CHECK;
/* The cluster version, e.g. "3.4.0" (etcd stores semver's String()). */
int backend_record_cluster_version(struct backend *b, const char *version) BACKEND_MUST_CHECK;
/* A lease granted or checkpointed (with --experimental-lease-checkpoint-
 * persist): what lease_info reports, ttl after raising to the minimum. */
int backend_record_lease(struct backend *b, int64_t id, int64_t ttl,
                         int64_t remaining_ttl) BACKEND_MUST_CHECK;
/* A lease revoked. */
int backend_record_lease_revoked(struct backend *b, int64_t id) BACKEND_MUST_CHECK;
/* An alarm activated (active) or deactivated. */
int backend_record_alarm(struct backend *b, uint64_t member_id, int32_t alarm,
                         bool active) BACKEND_MUST_CHECK;

/* ---- history for mvcc (loop thread) ----
 *
 * mvcc's loader (struct mvcc_loader: backend_value, backend_value_done, b):
 * the KeyValue of key at revision (main, sub) read from the key bucket, its
 * value copied into a.  The first load of a call opens a read transaction that the rest
 * share and backend_value_done ends.  Works during a defrag (db.c reads the
 * old file).  0, -ERR_NOMEM, or -ERR_CORRUPT when the revision is missing
 * or holds another key (logged as etcd's "range failed to find revision
 * pair"). */
int backend_value(void *b, struct pb_bytes key, int64_t main, int64_t sub, struct mem_arena *a,
                  struct api_kv *kv);
void backend_value_done(void *b);
/* Every revision <= this one is recorded (in a batch, committed or not):
 * what mvcc_evict may drop from memory, as backend_value reads it back. */
int64_t backend_recorded_rev(const struct backend *b);

/* ---- committing (prepare: loop, run: worker, finish: loop) ---- */

/* When the pending batch should be committed, in the caller's monotonic
 * milliseconds: INT64_MIN when due now (BACKEND_BATCH_LIMIT records
 * pending, or a compaction was just recorded), the last commit's start plus
 * the batch interval when anything else is pending, the end of the pause
 * after the last compaction batch while a compaction runs, INT64_MAX when
 * nothing is pending or a job is in flight (ask again after finish). */
int64_t backend_commit_deadline(const struct backend *b);
/* backend_commit_deadline(b) <= now_ms. */
bool backend_commit_due(const struct backend *b, int64_t now_ms);
/* Records, a consistent index or a compaction batch are waiting (whatever
 * the policy says). */
bool backend_pending(const struct backend *b);
/* A job from backend_commit_prepare has not been finished yet. */
bool backend_in_flight(const struct backend *b);
/* Bytes of records not yet in the file: the pending batch and the one in
 * flight. */
size_t backend_backlog_bytes(const struct backend *b);

/* Takes the pending batch (plus the next compaction batch, if one runs) into
 * a job for backend_commit_run.  Returns NULL when nothing is pending or a
 * job is in flight.  Never allocates (the job lives in b). */
struct backend_job *backend_commit_prepare(struct backend *b, int64_t now_ms);

/* Worker thread: one write transaction applying the job, then db_commit.
 * Touches nothing the loop thread uses while the job is in flight. */
void backend_commit_run(struct backend_job *j);

/* Loop thread, after backend_commit_run returned.  Returns 0: the job is
 * durable and its memory freed (one chunk is kept for reuse).  On failure
 * the job's records go back in front of those recorded meanwhile, so nothing
 * is lost and a later commit retries them:
 *   DB_ENOSPC: the disk is full; retry after the batch interval (the caller
 *     raises the NOSPACE alarm);
 *   DB_EFAILED, DB_EIO, DB_ECORRUPT, DB_ENOMEM, DB_EBUSY: reported; the
 *     message is in backend_errmsg.  After DB_EFAILED (or DB_ENOSPC/DB_EIO
 *     while writing the meta page, which leaves the db failed) every retry
 *     fails the same way: etcd exits there, and so should the caller. */
int backend_commit_finish(struct backend *b, struct backend_job *j, int64_t now_ms) BACKEND_MUST_CHECK;

/* ---- hashes (prepare: loop, run: worker) ----
 *
 * etcd computes them on the committed file, after forcing a commit.  So:
 * with no job in flight (else wait for its finish), prepare the commit of
 * what is pending (if any), prepare the hash, and queue both on the worker,
 * the commit first.  Jobs queued later cannot change what the hash sees. */

struct backend_hash {
    int64_t bh_rev;         /* the response header's revision: current at prepare */
    int64_t bh_compact_rev; /* HashKV's compact_revision: etcd's compactMainRev,
                               -1 before the first compaction */
    uint32_t bh_hash;       /* set by a successful backend_hash_run */
    char bh_err[256];       /* why backend_hash_run failed */
    /* private */
    struct backend *bh_b;
    bool bh_kv;
    int64_t bh_at;                /* HashKV: hash revisions up to this one */
    struct mvcc_revision *bh_keep; /* owned: kvindex.Keep(bh_at) up to bh_compact_rev */
    size_t bh_n_keep;
    bool bh_keep_any;             /* kvindex.Keep(bh_at) is not empty */
    uint64_t bh_seq;              /* records up to here must be committed */
};

/* Maintenance.Hash (kv false): crc32c over every bucket's name and its keys
 * and values but meta/consistent_index.  HashKV (kv true, etcd's
 * store.HashByRev(rev)): crc32c over "key" and the key bucket's keys and
 * values with main revision <= rev (0 = current), skipping revisions at or
 * below the compacted one that kvindex.Keep(rev) does not keep.
 * Returns 0 and sets *out (free with backend_hash_free); for HashKV
 * -ERR_COMPACTED (0 < rev <= compacted revision) or -ERR_FUTURE_REV (rev >
 * current), from err.h as the gRPC layer wants them; -ERR_NOMEM. */
int backend_hash_prepare(struct backend *b, const struct mvcc *m, bool kv, int64_t rev,
                         struct backend_hash **out) BACKEND_MUST_CHECK;
/* Worker thread (or any thread while no commit runs).  Returns 0 and sets
 * h->bh_hash; DB_EBUSY when a record the hash must see is not committed
 * (the commit queued before it failed: retry after a successful commit);
 * DB_ECORRUPT (a key-bucket key shorter than a revision, or a top-level
 * key that is not a bucket); a read error from db.c. */
int backend_hash_run(struct backend_hash *h) BACKEND_MUST_CHECK;
void backend_hash_free(struct backend_hash *h);

/* ---- whole-db operations ---- */

/* Maintenance.Snapshot's bytes (what `etcdctl snapshot save` stores): the
 * db as its latest commit has it (db_tx_write_to), then the sha256 of those
 * bytes.  fd must be a regular file open O_RDWR: the bytes are written at its
 * offset and read back for the digest.  Any thread; it sees what was
 * committed when it starts (commit first for the latest state).  *size (if
 * not NULL) gets the bytes written, the digest included.  Returns 0;
 * DB_EBUSY during a defrag; DB_EIO or DB_ENOSPC (a write or read failed);
 * DB_ENOMEM. */
int backend_snapshot(struct backend *b, int fd, uint64_t *size, char *err,
                     size_t errlen) BACKEND_MUST_CHECK;

/* db_defrag: run it on the worker thread (so no commit runs), with no hash
 * or snapshot running.  Returns db_defrag's codes; on failure err (if not
 * NULL) gets the message. */
int backend_defrag(struct backend *b, char *err, size_t errlen) BACKEND_MUST_CHECK;

/* Status' dbSize and dbSizeInUse.  Any thread. */
int64_t backend_size(struct backend *b);
int64_t backend_size_in_use(struct backend *b);

#endif
