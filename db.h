/* db.h - the backend: a copy-on-write B+tree in one file, in bbolt's file
 * format (go.etcd.io/bbolt 1.3, as etcd 3.4 uses it), so real etcd opens a
 * member/snap/db this code wrote and this code opens one etcd wrote.
 *
 * Owns: the file (two checksummed meta pages, the freelist page, branch,
 * leaf and overflow pages), named buckets (nested ones too, inline buckets
 * written the way bbolt writes them), read transactions on a consistent
 * snapshot, one write transaction at a time, commit, rollback, copying a
 * snapshot to an fd, defragmentation and a structural check.
 * Does not own: what the keys and values mean (mvcc.c), when to commit
 * (the caller batches), the worker thread that commits.
 *
 * Threads: read transactions may be opened and used on any threads while the
 * write transaction (including its commit) or a defrag runs on another; a
 * transaction itself, its buckets and cursors belong to one thread at a time.
 * Only the small shared state (current meta, open readers, mapping) takes a
 * lock.
 *
 * Errors: functions return 0 or a negative DB_E* code.  A transaction that
 * failed (DB_ENOMEM, DB_ECORRUPT, DB_EIO, DB_ENOSPC) stays failed: every later
 * call on it returns the same code and only db_rollback/db_commit (which then
 * rolls back) are useful.  DB_ENOTFOUND, DB_EEXIST, DB_EINCOMPAT and
 * DB_EINVAL report on one call and do not fail the transaction.
 * db_tx_errmsg() gives the text, with the path and the page id or offset for
 * corruption and the failing system call for I/O errors.
 *
 * Views: keys and values handed out (struct db_val) point into the file's
 * mapping or into the transaction's memory and stay valid until the
 * transaction ends, even across later puts and deletes in it. */
#ifndef ETCD_DB_H
#define ETCD_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DB_MUST_CHECK __attribute__((warn_unused_result))

enum db_err {
    DB_OK = 0,
    DB_ENOTFOUND = -1, /* no such key or bucket; a cursor ran off its end */
    DB_EEXIST = -2,    /* the bucket already exists */
    DB_EINCOMPAT = -3, /* a key where a bucket was asked for, or the reverse */
    DB_EINVAL = -4,    /* bad argument: empty or too long key, write in a read
                          transaction, cursor used after its bucket changed */
    DB_ENOMEM = -5,
    DB_EIO = -6,       /* a system call failed */
    DB_ENOSPC = -7,    /* the disk (or RLIMIT_FSIZE/quota) is full */
    DB_ECORRUPT = -8,  /* the file's bytes are not a valid bbolt database */
    DB_EBUSY = -9,     /* a write transaction is already open, the file is
                          locked by another process, or a defrag is running */
    DB_EFAILED = -10,  /* an earlier commit failed while writing its meta
                          page: memory may not match the file; reopen */
};

/* Static text for a DB_E* code ("unknown error" for others). */
const char *db_strerror(int err);

#define DB_MAX_KEY 32768u          /* bbolt's MaxKeySize */
#define DB_MAX_VALUE 0x7ffffffeu   /* bbolt's MaxValueSize */
#define DB_MAX_DEPTH 24            /* deeper trees are reported corrupt */

struct db;
struct db_tx;
struct db_bucket;

/* A byte range owned by someone else (see "Views" above). */
struct db_val {
    const uint8_t *p;
    size_t len;
};

/* ---- open and close ---- */

enum db_open_flags {
    /* Commit writes no freelist page (meta freelist = none) and open rebuilds
     * the free list by walking the tree: what etcd 3.4 does on Linux
     * (NoFreelistSync).  Without it every commit writes the freelist, as
     * bbolt does by default.  Either file opens in both modes. */
    DB_NO_FREELIST_SYNC = 1u << 0,
    /* Skip fdatasync (etcd's --unsafe-no-fsync): a crash may lose commits
     * and leave a corrupt file. */
    DB_NO_SYNC = 1u << 1,
    /* Open an existing file read-only (etcdctl snapshot status): O_RDONLY,
     * a shared flock, a missing or empty file is an error (DB_EIO with
     * ENOENT, DB_ECORRUPT), and db_begin(write)/db_defrag return DB_EINVAL. */
    DB_READ_ONLY = 1u << 2,
};

/* Opens path read-write, creating it (mode 0600) when missing or empty with
 * bbolt's initial layout: meta pages 0 and 1, an empty freelist at page 2, an
 * empty root leaf at page 3, page size 4096.  The file is locked with
 * flock(LOCK_EX).  Picks the newer meta page whose magic, version and checksum
 * hold, like bbolt.
 * Returns 0 and sets *out; DB_EBUSY if another process holds the lock;
 * DB_ECORRUPT if neither meta page is valid or the chosen one, its freelist or
 * (with no freelist page) the tree is inconsistent with the file; DB_EIO or
 * DB_ENOSPC if a system call failed; DB_ENOMEM.  On failure errbuf (if not
 * NULL) holds a message naming path and the page or offset. */
int db_open(const char *path, unsigned flags, struct db **out, char *errbuf,
            size_t errlen) DB_MUST_CHECK;

/* Bytes from the start of a meta page (page 0 or page 1) that
 * db_meta_validate reads: the page header and the meta. */
#define DB_META_BYTES 80

/* bbolt's meta.validate() of one meta page (DB_META_BYTES bytes at page):
 * NULL when bbolt would accept it, else bbolt's error text: "invalid
 * database" (bad magic), "version mismatch", "checksum error".  For a valid
 * meta *page_size (if not NULL) gets the page size it records.  Lets a
 * caller report a file bbolt refuses as bbolt would (bolt.Open's errors). */
const char *db_meta_validate(const uint8_t *page, uint32_t *page_size);

/* Every transaction must have ended.  Closes the file and frees db. */
void db_close(struct db *db);

/* Bytes the file spans as of the last commit: the high-water page count times
 * the page size (etcd's dbSize, bbolt's Tx.Size). */
int64_t db_size(struct db *db);
/* db_size minus the pages on the free list that no reader can still see
 * (etcd's dbSizeInUse). */
int64_t db_size_in_use(struct db *db);

/* Text of the last failure of a write transaction, commit or defrag on db;
 * "" if none.  Only the thread running the writer should read it. */
const char *db_errmsg(struct db *db);

/* ---- transactions ---- */

/* Begins a read transaction (write = false) on the latest committed state, or
 * the write transaction.  Returns 0 and sets *out; DB_EBUSY if write is asked
 * while another write transaction is open or a defrag runs, DB_EFAILED if it
 * is asked after a failed meta write; DB_ENOMEM.  A read
 * transaction is never refused: during a defrag it reads the old file, which
 * nothing writes then, and keeps reading it after the defrag moved on. */
int db_begin(struct db *db, bool write, struct db_tx **out) DB_MUST_CHECK;

/* Commits a write transaction: rebalances and writes the changed pages
 * (freed pages are reused once no reader can see them), fdatasync, writes the
 * meta page, fdatasync.  tx is freed on every path; on failure the message is
 * in db_errmsg().
 * Returns 0;
 *   the transaction's sticky error, after rolling back;
 *   DB_EINVAL for a read transaction (which is ended anyway);
 *   DB_ENOMEM, DB_ECORRUPT (a page referenced twice): rolled back;
 *   DB_ENOSPC or DB_EIO from writing or syncing the pages: rolled back, the
 *     file still holds the previous commit and db stays usable;
 *   DB_ENOSPC or DB_EIO from writing or syncing the meta page: the file may
 *     hold either commit, so db is marked failed: read transactions still
 *     work, db_begin(write) returns DB_EFAILED; close and reopen. */
int db_commit(struct db_tx *tx) DB_MUST_CHECK;

/* Ends a read transaction, or discards a write transaction.  Frees tx. */
void db_rollback(struct db_tx *tx);

/* The transaction id: that of the commit a read transaction sees, the one
 * a write transaction will commit as. */
uint64_t db_tx_id(const struct db_tx *tx);
/* Bytes of the file as the transaction sees it (bbolt's Tx.Size): what
 * db_tx_write_to writes. */
int64_t db_tx_size(const struct db_tx *tx);
/* Message for the transaction's last error; "" if none.  Valid until it ends. */
const char *db_tx_errmsg(const struct db_tx *tx);

/* ---- buckets ---- */

/* parent NULL means the top level.  Handles are owned by tx, valid until it
 * ends (or the bucket is deleted in it); getting the same bucket twice gives
 * the same handle. */

/* Returns 0 and sets *out; DB_ENOTFOUND; DB_EINCOMPAT if name is a plain key;
 * DB_EINVAL for an empty name or a deleted parent; DB_ENOMEM; DB_ECORRUPT. */
int db_bucket_get(struct db_tx *tx, struct db_bucket *parent, const void *name,
                  size_t len, struct db_bucket **out) DB_MUST_CHECK;

/* Creates an empty bucket (stored inline in its parent until it outgrows a
 * quarter page, as bbolt does).  With exist_ok an existing bucket is returned
 * instead of DB_EEXIST.  Returns 0 and sets *out; DB_EEXIST; DB_EINCOMPAT if
 * name is a plain key; DB_EINVAL (read transaction, empty or too long name);
 * DB_ENOMEM; DB_ECORRUPT. */
int db_bucket_create(struct db_tx *tx, struct db_bucket *parent, const void *name,
                     size_t len, bool exist_ok, struct db_bucket **out) DB_MUST_CHECK;

/* Deletes a bucket, its keys and nested buckets; their pages go to the free
 * list.  Handles to it and below become unusable (DB_EINVAL).  Returns 0;
 * DB_ENOTFOUND; DB_EINCOMPAT if name is a plain key; DB_EINVAL;
 * DB_ENOMEM; DB_ECORRUPT. */
int db_bucket_delete(struct db_tx *tx, struct db_bucket *parent, const void *name,
                     size_t len) DB_MUST_CHECK;

/* How full split pages are left, clamped to [0.1, 1.0]; 0.5 by default.
 * etcd uses 0.9 for the key bucket, whose keys only grow.  For this
 * transaction only, as in bbolt. */
void db_bucket_set_fill(struct db_bucket *b, double fill);

/* ---- keys ---- */

/* Sets *v to the value of key.  Returns 0; DB_ENOTFOUND; DB_EINCOMPAT if key
 * names a nested bucket; DB_EINVAL if b was deleted; DB_ECORRUPT. */
int db_get(struct db_bucket *b, const void *key, size_t klen,
           struct db_val *v) DB_MUST_CHECK;

/* Inserts or replaces.  key and val are copied.  Returns 0; DB_EINVAL (read
 * transaction, empty key, key > DB_MAX_KEY, value > DB_MAX_VALUE, deleted
 * bucket); DB_EINCOMPAT if key names a nested bucket; DB_ENOMEM;
 * DB_ECORRUPT. */
int db_put(struct db_bucket *b, const void *key, size_t klen, const void *val,
           size_t vlen) DB_MUST_CHECK;
/* db_put without the copies: key and val must stay as they are until the
 * transaction ends (a batch that outlives its commit). */
int db_put_ref(struct db_bucket *b, const void *key, size_t klen, const void *val,
               size_t vlen) DB_MUST_CHECK;

/* Removes key; a missing key is not an error (bbolt's Delete).  Returns 0;
 * DB_EINVAL (read transaction, deleted bucket); DB_EINCOMPAT if key names a
 * nested bucket; DB_ENOMEM; DB_ECORRUPT. */
int db_del(struct db_bucket *b, const void *key, size_t klen) DB_MUST_CHECK;

/* ---- cursors ---- */

/* Caller-owned (on the stack is fine); the fields are private to db.c.
 * A cursor walks one bucket in key order.  Changing that bucket (put, delete,
 * nested bucket create/delete) invalidates its cursors: their next call
 * returns DB_EINVAL; reposition with first/last/seek. */
struct db_cursor_ref {
    const uint8_t *cr_page; /* page bytes, or NULL when cr_node is set */
    struct db_node *cr_node;
    size_t cr_len;          /* bytes of the page including overflow */
    uint32_t cr_count;
    uint32_t cr_index;
    bool cr_leaf;
};
struct db_cursor {
    struct db_tx *cu_tx;
    struct db_bucket *cu_b;
    uint32_t cu_mod;
    int cu_depth;
    struct db_cursor_ref cu_stack[DB_MAX_DEPTH];
};

/* b NULL walks the top-level bucket names.  Never fails. */
void db_cursor_init(struct db_cursor *c, struct db_tx *tx, struct db_bucket *b);

/* Each positions the cursor and sets *k and *v.  A nested bucket is returned
 * with v->p == NULL; a plain value always has v->p != NULL (also when empty).
 * Return 0; DB_ENOTFOUND past either end (or an empty bucket), which leaves
 * the cursor unpositioned; DB_EINVAL if the bucket changed or was deleted
 * since the cursor was positioned, or next/prev on an unpositioned cursor;
 * DB_ECORRUPT (the message names the page). */
int db_cursor_first(struct db_cursor *c, struct db_val *k, struct db_val *v) DB_MUST_CHECK;
int db_cursor_last(struct db_cursor *c, struct db_val *k, struct db_val *v) DB_MUST_CHECK;
int db_cursor_next(struct db_cursor *c, struct db_val *k, struct db_val *v) DB_MUST_CHECK;
int db_cursor_prev(struct db_cursor *c, struct db_val *k, struct db_val *v) DB_MUST_CHECK;
/* The first key >= key. */
int db_cursor_seek(struct db_cursor *c, const void *key, size_t klen, struct db_val *k,
                   struct db_val *v) DB_MUST_CHECK;

/* ---- whole-database operations ---- */

/* Writes the database as a read transaction sees it to fd (bbolt's
 * Tx.WriteTo, what etcd sends as a snapshot): both meta pages rebuilt from
 * the transaction's meta, then its pages 2.. as they are in the file;
 * exactly db_tx_size() bytes.  *written (if not NULL) counts bytes written.
 * Returns 0; DB_EINVAL for a write transaction; DB_EIO or DB_ENOSPC if
 * write(2) failed; the transaction's sticky error. */
int db_tx_write_to(struct db_tx *tx, int fd, uint64_t *written) DB_MUST_CHECK;

/* Walks every page the transaction can reach and checks: page ids below the
 * high-water mark, page types, element bounds, keys sorted, no page referenced
 * twice, and (when the file has a freelist page) that every page is either
 * reachable or on the freelist, never both.  Returns 0; DB_ECORRUPT with the
 * first problem in db_tx_errmsg(); DB_ENOMEM. */
int db_check(struct db_tx *tx) DB_MUST_CHECK;

/* etcd's defrag: copies every bucket (nested ones too, sequences excepted)
 * into a new file "<path>.tmp.XXXXXX" beside it, committing every 10,000
 * keys, with fill 0.9, then renames it over path and continues on it.  No
 * write transaction may be open, and none is allowed while it runs; read
 * transactions are (see db_begin).
 * Returns 0; DB_EBUSY (a write transaction is open); DB_EFAILED;
 * DB_EIO/DB_ENOSPC/DB_ENOMEM/DB_ECORRUPT before the rename: the temp file is
 * removed, the old file untouched and db usable on it; DB_EIO if only the
 * fsync of the directory after the rename failed: db already runs on the new
 * file.  The message is in db_errmsg(). */
int db_defrag(struct db *db) DB_MUST_CHECK;

#endif
