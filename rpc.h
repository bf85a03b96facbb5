/* rpc.h - etcd's gRPC services on top of grpc.c: KV (Range, Put, DeleteRange,
 * Txn, Compact), Cluster (MemberList) and Maintenance (Status).  Each handler
 * validates the request as etcd's v3rpc layer does, runs it against the
 * server's stores and answers with etcd's response headers and errors. */
#ifndef ETCD_RPC_H
#define ETCD_RPC_H

#include "api.h"
#include "grpc.h"

/* The method table for grpc_conn_new; handlers expect a struct server * as
 * the connection's ctx. */
extern const struct grpc_method rpc_methods[];

/* True if any operation of the txn (either branch, nested) writes. */
bool rpc_txn_writes(const struct api_txn_req *t);

/* The lease lookup mvcc_txn uses for puts inside a txn (mvcc.h's hook) and
 * node.c for top-level puts.  There is no lease store yet: like etcd with
 * no such lease, every lease ID is unknown. */
bool rpc_lease_exists(void *ctx, int64_t lease);

#endif
