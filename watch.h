/* watch.h - etcd's Watch service: the bidirectional "/etcdserverpb.Watch/Watch"
 * stream, with etcd 3.4's semantics (etcdserver/api/v3rpc/watch.go,
 * mvcc/watchable_store.go): many watches per stream, create (key, range_end,
 * start_revision, filters, prev_kv, progress_notify, fragment, watch_id),
 * cancel, progress requests, periodic progress notifications, compacted
 * watches, responses split by size, headers with the caller's ids.
 *
 * A struct watch_hub serves every stream of a server.  It reads the store
 * through mvcc.h: the events of each write (mvcc_last_event), and history
 * (mvcc_events_since) for watches that start in the past or fall behind.
 * A watch is "synced" (it gets each write's events as the write is applied)
 * or "unsynced" (behind; caught up from history in bounded batches by the
 * hub's timer, then synced again).  A synced watch whose stream holds more
 * than queue_max bytes back (the client does not read) becomes unsynced
 * instead of queueing more: memory per slow client stays bounded and the
 * store's history is the buffer.  A watch that falls behind the compacted
 * revision is canceled with compact_revision set, as etcd does.
 *
 * The hub owns one loop timer (catch-up, progress notifications); it must
 * be freed after every Watch call has ended (connections closed first).
 */
#ifndef ETCD_WATCH_H
#define ETCD_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "grpc.h"
#include "loop.h"
#include "mvcc.h"

struct watch_config {
    /* A watch created with fragment = true gets a response of this many
     * bytes or more split into several (etcd: --max-request-bytes + 512 KiB,
     * its gRPC overhead allowance).  0 = never split. */
    size_t max_resp_bytes;
    /* progress_notify period (etcd's --experimental-watch-progress-notify-
     * interval); each stream adds up to a tenth of it as jitter, as etcd.
     * 0 = etcd's default, 10 minutes; below 100 ms it is 100 ms (etcd's
     * minimum). */
    uint64_t progress_ms;
    /* Bytes a stream may have queued behind HTTP/2 flow control before its
     * watches stop getting live events and are caught up from history
     * later.  0 = 1 MiB. */
    size_t queue_max;
    /* Fills hdr's cluster_id, member_id and raft_term for a response (the
     * hub sets the revision); asked at each response, so a new raft term
     * shows at once. */
    void (*ident)(void *ctx, struct api_header *hdr);
    void *ident_ctx;
};

struct watch_hub;

/* m and loop must outlive the hub; cfg->ident is required.  NULL on OOM. */
struct watch_hub *watch_hub_new(struct loop *loop, struct mvcc *m, const struct watch_config *cfg)
    __attribute__((warn_unused_result));
/* Call once every Watch call has ended (close the connections first).  A
 * stream still open is detached from its call, so its on_end does nothing. */
void watch_hub_free(struct watch_hub *h);

/* Delivers the events of the write just applied to the store: call after
 * every mutating store call (calling it after one that failed or wrote
 * nothing is harmless: it only acts when the revision moved).  If the store
 * moved by more than one revision since the last call, or the events of
 * the last revision are not available any more, every synced watch is
 * caught up from history instead: nothing is lost. */
void watch_hub_notify(struct watch_hub *h);

/* The Watch method's handlers, for grpc.h's method table:
 *   {"/etcdserverpb.Watch/Watch", &api_watch_req_desc, true, <fn calling
 *    watch_on_message with the server's hub>, watch_on_end}
 * on_end needs no hub: the stream remembers it.  A create that fails (range
 * empty, duplicate watch_id, OOM) is answered as etcd does: created and
 * canceled, watch_id -1, cancel_reason set; canceling an unknown id is not
 * answered.  A half-close by the client keeps the stream serving, as etcd's
 * does; the stream ends when the client resets it or the connection goes.
 * There is no permission check yet (no auth store).  The call is ended by
 * the hub only on OOM (RESOURCE_EXHAUSTED) or a client that keeps sending
 * requests while reading none of the responses (its queue past 8 *
 * queue_max: RESOURCE_EXHAUSTED "etcdserver: too many requests"). */
void watch_on_message(struct watch_hub *h, struct grpc_call *call, void *req);
void watch_on_end(struct grpc_call *call, bool reset);

/* Counters: open watches (a compacted one counts until its client cancels
 * it: etcd keeps its id), those of them being caught up from history, and
 * the bytes the hub holds for streams, watches and its index of watched
 * ranges (scratch space for one write's responses not included). */
size_t watch_hub_watchers(const struct watch_hub *h);
size_t watch_hub_unsynced(const struct watch_hub *h);
size_t watch_hub_bytes(const struct watch_hub *h);

#endif
