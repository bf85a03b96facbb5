/* snap.h - etcd's raft snapshot files and what they hold.
 *
 * <data-dir>/member/snap/%016x-%016x.snap (term, index) is a snappb.Snapshot
 * {crc: CRC-32C of data, data: a raftpb.Snapshot}; the raftpb.Snapshot's data
 * is etcd 3.4's v2 store as JSON, from which etcd recovers the membership
 * and the cluster version.  A restart starts from the newest snapshot file
 * that the WAL holds a snapshot record for (a file written just before a
 * crash, with no record yet, is passed over; an unreadable one is renamed
 * <name>.broken), as etcd's LoadNewestAvailable.
 */
#ifndef ETCD_SNAP_H
#define ETCD_SNAP_H

#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "mem.h"
#include "member.h"

/* Writes s to dir as a new file and fsyncs it and dir.  0, or -1 with the
 * reason in err (a partial file is removed). */
int snap_save(const char *dir, const struct api_raft_snapshot *s, char *err, size_t cap)
    __attribute__((warn_unused_result));

/* The newest snapshot in dir whose (index, term) is among walsnaps, decoded
 * into *out from a.  1 found, 0 none, -1 with err set (dir unreadable, out of
 * memory). */
int snap_load(const char *dir, const struct api_wal_snapshot *walsnaps, size_t n, struct mem_arena *a,
              struct api_raft_snapshot *out, char *err, size_t cap) __attribute__((warn_unused_result));

/* Deletes the oldest .snap files while more than max remain (max 0 keeps
 * all), as etcd's --max-snapshots purge.  Number deleted, or -errno. */
int snap_purge(const char *dir, unsigned max);

/* Appends etcd's v2 store JSON holding the members (raftAttributes and
 * attributes), removed member IDs and the cluster version ("" = unset). */
int snap_v2_store(const struct member *ms, size_t n, const uint64_t *removed, size_t n_removed,
                  const char *cluster_version, struct mem_buf *out) __attribute__((warn_unused_result));

/* Reads the members and the cluster version ("" when unset) back from a
 * v2 store as etcd or snap_v2_store wrote it.  The members are the
 * caller's to member_free.  0, or -1 on malformed JSON, more than cap
 * members or OOM (nothing left to free). */
int snap_v2_members(const uint8_t *data, size_t len, struct member *out, size_t cap, size_t *n,
                    char *version, size_t vcap) __attribute__((warn_unused_result));

#endif
