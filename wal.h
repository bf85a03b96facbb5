/* wal.h - etcd's write-ahead log: raft entries, hard states and snapshot
 * markers in CRC-chained segment files, byte-compatible with etcd 3.4 (a WAL
 * directory written here opens in etcd and the other way round).
 *
 * Layout (etcd's wal package): <dir>/%016x-%016x.wal named sequence-index,
 * each preallocated to 64 MB (64,000,000 bytes).  A record is an 8-byte
 * little-endian length word (low 56 bits: length of the walpb.Record; when the
 * record is padded to 8 bytes, the top byte is 0x80|pad) and the record; each
 * record's crc is CRC-32C chained over the data of every record before it.
 * A segment starts with a crc record carrying the previous segment's running
 * CRC, then metadata, then (from the second segment on) the hard state.
 *
 * Reading is stricter than etcd where etcd would let damage pass: length
 * words, padding and record encodings must be exactly what etcd writes,
 * every segment must start with its crc and metadata records (and hold
 * neither elsewhere), entry types must be known, and a zero length word must
 * be followed by zeros to the end of its sector.  No file etcd writes fails
 * these.  What remains undetectable is inherent to the format: the record
 * type is outside the CRC, so flipping an entry without data into a hard
 * state (or back) goes unseen; and, as in etcd, damage in the last segment
 * that looks like a torn write (say a flipped length word running into the
 * zeroed tail) is cut off as one, reported in wal_contents.torn.
 *
 * Threading: a struct wal is used by one thread at a time (the fsync worker);
 * there is no global state but the CRC tables.
 *
 * Errors: 0 on success; a negative errno from a system call (-ENOSPC, -EIO,
 * -ENOMEM, -EEXIST, ...) or one of the WAL_E* codes below, all <= -1000.
 * wal_strerror() gives the text of either kind.
 *
 * Failure is sticky: after a failed wal_save/wal_sync/wal_save_snapshot the
 * WAL returns WAL_EFAILED from those three, and only wal_close (and
 * wal_release_to/wal_purge) remain useful, EXCEPT after -ENOSPC, -ENOMEM and
 * WAL_ETOOBIG: those leave the files as they were before the call (a partial
 * write is truncated away and the truncation synced; a cut that could not
 * create the next segment undoes the batch that triggered it), and a later
 * call may succeed, e.g. once disk space is freed.  A failed fdatasync is
 * always sticky: after one, the page cache cannot be trusted.
 */
#ifndef ETCD_WAL_H
#define ETCD_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "mem.h"

#define WAL_MUST_CHECK __attribute__((warn_unused_result))

/*  name            code   text */
#define WAL_ERR_TABLE(X)                                                          \
    X(CORRUPT, -1001, "wal: corrupt record")                                      \
    X(CRC, -1002, "wal: crc mismatch")                                            \
    X(TOOBIG, -1003, "wal: max entry size limit exceeded")                        \
    X(UNEXPECTED_EOF, -1004, "wal: unexpected EOF")                               \
    X(METADATA, -1005, "wal: conflicting metadata found")                         \
    X(SNAP_MISMATCH, -1006, "wal: snapshot mismatch")                             \
    X(SNAP_NOT_FOUND, -1007, "wal: snapshot not found")                           \
    X(FILE_NOT_FOUND, -1008, "wal: file not found")                               \
    X(GAP, -1009, "wal: slice bounds out of range")                               \
    X(BAD_TYPE, -1010, "wal: unexpected block type")                              \
    X(LOCKED, -1011, "wal: segment locked by another process")                    \
    X(FAILED, -1012, "wal: an earlier write failed; only wal_close is allowed")

enum wal_err {
#define WAL_ERR_ENUM(name, code, text) WAL_E##name = code,
    WAL_ERR_TABLE(WAL_ERR_ENUM)
#undef WAL_ERR_ENUM
};

/* Text for a WAL_E* code or a negative errno; never NULL. */
const char *wal_strerror(int err);

struct wal; /* opaque; owned by whoever wal_create/wal_open handed it to */

/* What a read found.  Every pointer points into the caller's arena. */
struct wal_contents {
    struct pb_bytes metadata;        /* p == NULL: no metadata record */
    struct api_raft_hard_state hs;   /* the last hard state; all zero if none */
    struct api_raft_entry *ents;     /* entries after the snapshot, index order */
    size_t n_ents;
    struct api_wal_snapshot *snaps;  /* snapshot records, file order */
    size_t n_snaps;
    bool torn;                       /* wal_open cut a torn tail off the last
                                        segment at tail_off (the whole old file
                                        is kept as <segment>.broken, as etcd) */
    uint64_t tail_off;               /* wal_open: where appending resumes in
                                        the last segment */
    char err[512];                   /* after a failure: what, which file, offset */
};

/* True if dir holds a file ending in ".wal" (etcd's wal.Exist). */
bool wal_exists(const char *dir);

/* Creates dir as a new WAL: writes crc 0, the metadata (meta may be NULL =
 * absent, as a nil []byte in etcd) and a snapshot record {0, 0} into
 * <dir>.tmp/0000000000000000-0000000000000000.wal, syncs it and renames
 * <dir>.tmp to dir (replacing an existing dir that has no .wal files; its
 * parents are created).  *out is ready for wal_save.
 * Returns 0; -EEXIST if dir already holds .wal files; -ENOMEM; another
 * -errno from mkdir/unlink/open/fallocate/pwrite/fdatasync/rename (dir is
 * then untouched) or from the fsync of dir's parent after the rename;
 * WAL_ELOCKED. */
int wal_create(const char *dir, const uint8_t *meta, size_t meta_len, struct wal **out)
    WAL_MUST_CHECK;

/* Opens the WAL in dir for appending, after reading everything from the
 * segment that holds the snapshot (index, term) on: every CRC is checked,
 * c gets the metadata, the last hard state, the entries with index > index
 * (a later entry at an index <= an earlier one replaces that tail, as raft
 * overwrote it) and the snapshot records; entry data is copied into a.
 * A torn tail of the last segment (a record cut short by the end of the file,
 * or one that fails to decode or to match its CRC while a whole 512-byte
 * sector of it is zero) is truncated as etcd's repair does; the zero-filled
 * preallocated space after the last record is normal.  Every segment read
 * stays locked (open-file-description locks, as etcd) until released.
 * Returns 0 with *out set; otherwise *out is NULL, c->err says what and
 * where, and the return is one of:
 *   WAL_EFILE_NOT_FOUND  no segment, no segment at or before index, or a
 *                        gap in the sequence numbers after it;
 *   WAL_ELOCKED          a segment is locked (another etcd running);
 *   WAL_ECRC, WAL_ECORRUPT, WAL_ETOOBIG  a bad record (file and offset in err);
 *   WAL_EUNEXPECTED_EOF  a record cut short in a segment that is not the last;
 *   WAL_EBAD_TYPE, WAL_EMETADATA, WAL_EGAP  (file and offset in err);
 *   WAL_ESNAP_MISMATCH   the snapshot record at index has another term;
 *   WAL_ESNAP_NOT_FOUND  no snapshot record at index;
 *   -ENOMEM (heap or arena limit), or -errno from open/read/ftruncate/
 *   fallocate/fdatasync. */
int wal_open(const char *dir, uint64_t index, uint64_t term, struct mem_arena *a,
             struct wal **out, struct wal_contents *c) WAL_MUST_CHECK;

/* etcd's ValidSnapshotEntries: reads every segment of dir without locking or
 * repairing and sets c->snaps to the snapshot records whose index is <= the
 * last hard state's commit, c->hs to that hard state (other fields zero).
 * A torn tail ends the read without error.
 * Returns 0; WAL_EFILE_NOT_FOUND; WAL_ECRC, WAL_ECORRUPT, WAL_ETOOBIG
 * (with c->err); -ENOMEM; -errno from open/read. */
int wal_valid_snapshots(const char *dir, struct mem_arena *a, struct wal_contents *c)
    WAL_MUST_CHECK;

/* Appends the entries and then the hard state (NULL or all zero: none) with
 * one pwrite, without syncing; wal_sync makes them durable.  Encoding
 * allocates nothing per entry (two buffers in w are reused, and freed after
 * a batch that grew them past 4 MB).  When the segment has passed 64 MB,
 * cuts a new one: the old one is truncated and synced, the new one written
 * as <dir>/0.tmp (crc, metadata, hard state), synced and renamed, so
 * wal_save may fdatasync.  Nothing to write: returns 0 at once.
 * Returns 0; -ENOSPC (disk or quota full), -ENOMEM, WAL_ETOOBIG (a record
 * would be >= 10 MiB, which etcd refuses to read): nothing of this call
 * stays, the WAL stays usable; WAL_EFAILED; or, failing the WAL, -errno from
 * pwrite/ftruncate/fdatasync/open/fallocate/rename/fsync. */
int wal_save(struct wal *w, const struct api_raft_hard_state *hs,
             const struct api_raft_entry *ents, size_t n) WAL_MUST_CHECK;

/* fdatasync of the current segment.  Returns 0; WAL_EFAILED; -errno (the WAL
 * is then failed). */
int wal_sync(struct wal *w) WAL_MUST_CHECK;

/* Appends a snapshot record {index, term} and syncs.  Same returns as
 * wal_save (-ENOSPC and -ENOMEM recoverable). */
int wal_save_snapshot(struct wal *w, uint64_t index, uint64_t term) WAL_MUST_CHECK;

/* etcd's ReleaseLockTo: unlocks and closes the segments that cannot hold
 * entries at or after index, keeping the newest one that starts before index
 * (it may hold index itself) and all later ones.  Cannot fail. */
void wal_release_to(struct wal *w, uint64_t index);

/* Deletes the oldest segments of the directory that this WAL no longer holds
 * (see wal_release_to) while more than max_files remain (etcd's --max-wals
 * purge; max_files == 0 keeps everything).  Returns the number deleted, or
 * -ENOMEM or -errno from opendir/unlink. */
int wal_purge(struct wal *w, unsigned max_files) WAL_MUST_CHECK;

/* Syncs (unless failed), unlocks and closes everything and frees w (w may be
 * NULL).  Returns 0 or the -errno of that last fdatasync; w is gone either way. */
int wal_close(struct wal *w);

#endif
