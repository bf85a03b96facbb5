/* lock.h - etcd's v3lock (Lock, Unlock) and v3election (Campaign, Proclaim,
 * Leader, Observe, Resign) gRPC services, with etcd 3.4.23's semantics
 * (etcdserver/api/v3lock, v3election over clientv3/concurrency's Mutex and
 * Election recipes): the same keys, the same transactions, the same answers.
 *
 * Lock(name, lease) puts name/<lease in hex> with the lease if it is not
 * there and waits until every key under name/ created before it is gone;
 * Campaign does the same with a value.  A request that must wait is parked
 * on the keys it waits for: lock_notify, called after every applied entry,
 * hands it the deletions of those keys, so a wait costs nothing while
 * unrelated keys change and nothing polls.  Observe streams the election's
 * leader (the oldest key under name/) and each change of it.
 *
 * Every error is answered as etcd's in-process client hands it back to these
 * services: gRPC status UNKNOWN with etcd's message ("etcdserver: requested
 * lease not found", "election: not leader", "election: no leader",
 * "\"leader\" field must be provided", ...).  A lease ID of 0 makes the
 * request grant a 60 s lease first and use it, as etcd's session does.
 *
 * Where it deliberately differs from etcd 3.4.23: a Lock whose own key is
 * deleted while it waits (its lease expired or was revoked) fails at once
 * with "mutex: session is expired" (etcd 3.4.23 would still answer success
 * once the older holders were gone, for a key that no longer exists; later
 * etcd fails it with this message).
 */
#ifndef ETCD_LOCK_H
#define ETCD_LOCK_H

#include <stdbool.h>

#include "grpc.h"

struct server;
struct lock_hub;

/* The services' state: requests in flight and the keys they wait on.  s
 * must outlive the hub; s->node, s->mvcc and s->loop are read at each use,
 * so the node may be set after this.  NULL on OOM. */
struct lock_hub *lock_hub_new(struct server *s) __attribute__((warn_unused_result));
/* Call after node_stop (which completes every proposal still in flight) and
 * after every connection is closed.  Frees whatever is left. */
void lock_hub_free(struct lock_hub *h);

/* Call after every applied raft entry, next to watch_hub_notify: hands the
 * changes of the last write (mvcc_last_event) to the requests waiting on
 * them.  Does nothing when the revision did not move.  If the store moved
 * by more than one revision since the last call, every waiting request
 * looks at the store afresh instead: nothing is missed.  Cost: nothing when
 * nobody waits; otherwise a hash lookup per changed key (plus one per '/'
 * in the key while an Observe waits for a first leader) and the work of
 * the requests whose keys changed. */
void lock_notify(struct lock_hub *h);

/* Method handlers; they find the hub as ((struct server *)ctx)->lock.
 * Lock, Campaign and Observe are registered as streaming calls (the client
 * sees no difference for Lock and Campaign: one request, one response) so
 * that a client that goes away while they wait is noticed at once (on_end
 * with reset): etcd then deletes the waiting key (Lock) or resigns
 * (Campaign), and so do we. */
void lock_lock_msg(struct grpc_call *call, void *req);
void lock_unlock(struct grpc_call *call, void *req);
void lock_campaign_msg(struct grpc_call *call, void *req);
void lock_proclaim(struct grpc_call *call, void *req);
void lock_leader(struct grpc_call *call, void *req);
void lock_observe_msg(struct grpc_call *call, void *req);
void lock_resign(struct grpc_call *call, void *req);
void lock_call_end(struct grpc_call *call, bool reset);

/* The entries for rpc.c's method table (struct grpc_method). */
#define LOCK_METHODS                                                                              \
    {"/v3lockpb.Lock/Lock", &api_lock_req_desc, true, lock_lock_msg, lock_call_end},              \
    {"/v3lockpb.Lock/Unlock", &api_unlock_req_desc, false, lock_unlock, NULL},                    \
    {"/v3electionpb.Election/Campaign", &api_campaign_req_desc, true, lock_campaign_msg,          \
     lock_call_end},                                                                              \
    {"/v3electionpb.Election/Proclaim", &api_proclaim_req_desc, false, lock_proclaim, NULL},      \
    {"/v3electionpb.Election/Leader", &api_leader_req_desc, false, lock_leader, NULL},            \
    {"/v3electionpb.Election/Observe", &api_leader_req_desc, true, lock_observe_msg,              \
     lock_call_end},                                                                              \
    {"/v3electionpb.Election/Resign", &api_resign_req_desc, false, lock_resign, NULL}

#endif
