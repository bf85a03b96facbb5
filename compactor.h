/* compactor.h - etcd's auto compaction (--auto-compaction-mode and
 * --auto-compaction-retention): the leader proposes Compact requests
 * through raft on a timer.  periodic: keep `retention` of history (a
 * duration), checked every min(retention, 1h)/10 and compacting at most
 * every min(retention, 1h); revision: every 5 minutes compact to the
 * current revision minus `retention` revisions. */
#ifndef ETCD_COMPACTOR_H
#define ETCD_COMPACTOR_H

#include <stdbool.h>
#include <stdint.h>

struct server;
struct compactor;

/* retention: milliseconds (periodic) or revisions (revision); <= 0 turns
 * auto compaction off (returns NULL, which compactor_free accepts).  NULL
 * also on OOM. */
struct compactor *compactor_new(struct server *s, bool periodic, int64_t retention);
void compactor_free(struct compactor *c);

#endif
