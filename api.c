/* api.c - the pb.c descriptor tables for the structs in api.h: etcd 3.4's
 * client-facing messages (rpc.proto, kv.proto, auth.proto, v3lock.proto,
 * v3election.proto).  Field numbers and types are those of the .proto files;
 * string is PB_BYTES.  Also the peer and disk messages: raftpb, walpb,
 * snappb, etcdserver.proto's Request/Metadata (proto2, PB_PROTO2) and
 * raft_internal.proto's InternalRaftRequest.  It owns only data: no
 * behaviour.
 *
 * Every table lists its fields in field-number order (pb.h requires it), and
 * the members of a oneof are adjacent, which is how pb.c finds the group. */
#include "api.h"

#include <stddef.h>

/* ---- table-building macros ---- */

#define API_FIELD(S, fld, n, t) \
    { .num = (n), .type = (t), .offset = offsetof(struct S, fld) }
#define API_ONEOF(S, fld, n, t)                                              \
    { .num = (n), .type = (t), .flags = PB_ONEOF, .offset = offsetof(struct S, fld), \
      .count_offset = offsetof(struct S, has_##fld) }
#define API_REPEATED(S, fld, n, t)                                              \
    { .num = (n), .type = (t), .flags = PB_REPEATED, .offset = offsetof(struct S, fld), \
      .count_offset = offsetof(struct S, n_##fld) }
#define API_MSG(S, fld, n, sd) \
    { .num = (n), .type = PB_MSG, .offset = offsetof(struct S, fld), .sub = &(sd) }
#define API_ONEOF_MSG(S, fld, n, sd)                                                  \
    { .num = (n), .type = PB_MSG, .flags = PB_ONEOF, .offset = offsetof(struct S, fld), \
      .sub = &(sd) }
#define API_REPEATED_MSG(S, fld, n, sd)                                                   \
    { .num = (n), .type = PB_MSG, .flags = PB_REPEATED, .offset = offsetof(struct S, fld), \
      .count_offset = offsetof(struct S, n_##fld), .sub = &(sd) }

#define API_DESC(S, pname)                                                           \
    const struct pb_msgdesc S##_desc = { pname, sizeof(struct S), S##_fields,        \
                                         sizeof S##_fields / sizeof S##_fields[0] }
/* messages without fields (proto3 allows them; C needs a member) */
#define API_EMPTY(S, pname) const struct pb_msgdesc S##_desc = { pname, sizeof(struct S), NULL, 0 }
/* the many responses that carry only ResponseHeader header = 1 */
#define API_HEADER_ONLY(S, pname)                                            \
    static const struct pb_field S##_fields[] = {                            \
        API_MSG(S, header, 1, api_header_desc),                              \
    };                                                                       \
    API_DESC(S, pname)

/* ---- mvccpb ---- */

static const struct pb_field api_kv_fields[] = {
    API_FIELD(api_kv, key, 1, PB_BYTES),
    API_FIELD(api_kv, create_revision, 2, PB_INT64),
    API_FIELD(api_kv, mod_revision, 3, PB_INT64),
    API_FIELD(api_kv, version, 4, PB_INT64),
    API_FIELD(api_kv, value, 5, PB_BYTES),
    API_FIELD(api_kv, lease, 6, PB_INT64),
};
API_DESC(api_kv, "mvccpb.KeyValue");

static const struct pb_field api_event_fields[] = {
    API_FIELD(api_event, type, 1, PB_ENUM),
    API_MSG(api_event, kv, 2, api_kv_desc),
    API_MSG(api_event, prev_kv, 3, api_kv_desc),
};
API_DESC(api_event, "mvccpb.Event");

/* ---- etcdserverpb: KV ---- */

static const struct pb_field api_header_fields[] = {
    API_FIELD(api_header, cluster_id, 1, PB_UINT64),
    API_FIELD(api_header, member_id, 2, PB_UINT64),
    API_FIELD(api_header, revision, 3, PB_INT64),
    API_FIELD(api_header, raft_term, 4, PB_UINT64),
};
API_DESC(api_header, "etcdserverpb.ResponseHeader");

static const struct pb_field api_range_req_fields[] = {
    API_FIELD(api_range_req, key, 1, PB_BYTES),
    API_FIELD(api_range_req, range_end, 2, PB_BYTES),
    API_FIELD(api_range_req, limit, 3, PB_INT64),
    API_FIELD(api_range_req, revision, 4, PB_INT64),
    API_FIELD(api_range_req, sort_order, 5, PB_ENUM),
    API_FIELD(api_range_req, sort_target, 6, PB_ENUM),
    API_FIELD(api_range_req, serializable, 7, PB_BOOL),
    API_FIELD(api_range_req, keys_only, 8, PB_BOOL),
    API_FIELD(api_range_req, count_only, 9, PB_BOOL),
    API_FIELD(api_range_req, min_mod_revision, 10, PB_INT64),
    API_FIELD(api_range_req, max_mod_revision, 11, PB_INT64),
    API_FIELD(api_range_req, min_create_revision, 12, PB_INT64),
    API_FIELD(api_range_req, max_create_revision, 13, PB_INT64),
};
API_DESC(api_range_req, "etcdserverpb.RangeRequest");

static const struct pb_field api_range_resp_fields[] = {
    API_MSG(api_range_resp, header, 1, api_header_desc),
    API_REPEATED_MSG(api_range_resp, kvs, 2, api_kv_desc),
    API_FIELD(api_range_resp, more, 3, PB_BOOL),
    API_FIELD(api_range_resp, count, 4, PB_INT64),
};
API_DESC(api_range_resp, "etcdserverpb.RangeResponse");

static const struct pb_field api_put_req_fields[] = {
    API_FIELD(api_put_req, key, 1, PB_BYTES),
    API_FIELD(api_put_req, value, 2, PB_BYTES),
    API_FIELD(api_put_req, lease, 3, PB_INT64),
    API_FIELD(api_put_req, prev_kv, 4, PB_BOOL),
    API_FIELD(api_put_req, ignore_value, 5, PB_BOOL),
    API_FIELD(api_put_req, ignore_lease, 6, PB_BOOL),
};
API_DESC(api_put_req, "etcdserverpb.PutRequest");

static const struct pb_field api_put_resp_fields[] = {
    API_MSG(api_put_resp, header, 1, api_header_desc),
    API_MSG(api_put_resp, prev_kv, 2, api_kv_desc),
};
API_DESC(api_put_resp, "etcdserverpb.PutResponse");

static const struct pb_field api_delete_req_fields[] = {
    API_FIELD(api_delete_req, key, 1, PB_BYTES),
    API_FIELD(api_delete_req, range_end, 2, PB_BYTES),
    API_FIELD(api_delete_req, prev_kv, 3, PB_BOOL),
};
API_DESC(api_delete_req, "etcdserverpb.DeleteRangeRequest");

static const struct pb_field api_delete_resp_fields[] = {
    API_MSG(api_delete_resp, header, 1, api_header_desc),
    API_FIELD(api_delete_resp, deleted, 2, PB_INT64),
    API_REPEATED_MSG(api_delete_resp, prev_kvs, 3, api_kv_desc),
};
API_DESC(api_delete_resp, "etcdserverpb.DeleteRangeResponse");

static const struct pb_field api_request_op_fields[] = {
    API_ONEOF_MSG(api_request_op, request_range, 1, api_range_req_desc),
    API_ONEOF_MSG(api_request_op, request_put, 2, api_put_req_desc),
    API_ONEOF_MSG(api_request_op, request_delete_range, 3, api_delete_req_desc),
    API_ONEOF_MSG(api_request_op, request_txn, 4, api_txn_req_desc),
};
API_DESC(api_request_op, "etcdserverpb.RequestOp");

static const struct pb_field api_response_op_fields[] = {
    API_ONEOF_MSG(api_response_op, response_range, 1, api_range_resp_desc),
    API_ONEOF_MSG(api_response_op, response_put, 2, api_put_resp_desc),
    API_ONEOF_MSG(api_response_op, response_delete_range, 3, api_delete_resp_desc),
    API_ONEOF_MSG(api_response_op, response_txn, 4, api_txn_resp_desc),
};
API_DESC(api_response_op, "etcdserverpb.ResponseOp");

static const struct pb_field api_compare_fields[] = {
    API_FIELD(api_compare, result, 1, PB_ENUM),
    API_FIELD(api_compare, target, 2, PB_ENUM),
    API_FIELD(api_compare, key, 3, PB_BYTES),
    API_ONEOF(api_compare, version, 4, PB_INT64),
    API_ONEOF(api_compare, create_revision, 5, PB_INT64),
    API_ONEOF(api_compare, mod_revision, 6, PB_INT64),
    API_ONEOF(api_compare, value, 7, PB_BYTES),
    API_ONEOF(api_compare, lease, 8, PB_INT64),
    API_FIELD(api_compare, range_end, 64, PB_BYTES),
};
API_DESC(api_compare, "etcdserverpb.Compare");

static const struct pb_field api_txn_req_fields[] = {
    API_REPEATED_MSG(api_txn_req, compare, 1, api_compare_desc),
    API_REPEATED_MSG(api_txn_req, success, 2, api_request_op_desc),
    API_REPEATED_MSG(api_txn_req, failure, 3, api_request_op_desc),
};
API_DESC(api_txn_req, "etcdserverpb.TxnRequest");

static const struct pb_field api_txn_resp_fields[] = {
    API_MSG(api_txn_resp, header, 1, api_header_desc),
    API_FIELD(api_txn_resp, succeeded, 2, PB_BOOL),
    API_REPEATED_MSG(api_txn_resp, responses, 3, api_response_op_desc),
};
API_DESC(api_txn_resp, "etcdserverpb.TxnResponse");

static const struct pb_field api_compaction_req_fields[] = {
    API_FIELD(api_compaction_req, revision, 1, PB_INT64),
    API_FIELD(api_compaction_req, physical, 2, PB_BOOL),
};
API_DESC(api_compaction_req, "etcdserverpb.CompactionRequest");

API_HEADER_ONLY(api_compaction_resp, "etcdserverpb.CompactionResponse");

/* ---- etcdserverpb: Watch ---- */

static const struct pb_field api_watch_req_fields[] = {
    API_ONEOF_MSG(api_watch_req, create_request, 1, api_watch_create_req_desc),
    API_ONEOF_MSG(api_watch_req, cancel_request, 2, api_watch_cancel_req_desc),
    API_ONEOF_MSG(api_watch_req, progress_request, 3, api_watch_progress_req_desc),
};
API_DESC(api_watch_req, "etcdserverpb.WatchRequest");

static const struct pb_field api_watch_create_req_fields[] = {
    API_FIELD(api_watch_create_req, key, 1, PB_BYTES),
    API_FIELD(api_watch_create_req, range_end, 2, PB_BYTES),
    API_FIELD(api_watch_create_req, start_revision, 3, PB_INT64),
    API_FIELD(api_watch_create_req, progress_notify, 4, PB_BOOL),
    API_REPEATED(api_watch_create_req, filters, 5, PB_ENUM),
    API_FIELD(api_watch_create_req, prev_kv, 6, PB_BOOL),
    API_FIELD(api_watch_create_req, watch_id, 7, PB_INT64),
    API_FIELD(api_watch_create_req, fragment, 8, PB_BOOL),
};
API_DESC(api_watch_create_req, "etcdserverpb.WatchCreateRequest");

static const struct pb_field api_watch_cancel_req_fields[] = {
    API_FIELD(api_watch_cancel_req, watch_id, 1, PB_INT64),
};
API_DESC(api_watch_cancel_req, "etcdserverpb.WatchCancelRequest");

API_EMPTY(api_watch_progress_req, "etcdserverpb.WatchProgressRequest");

static const struct pb_field api_watch_resp_fields[] = {
    API_MSG(api_watch_resp, header, 1, api_header_desc),
    API_FIELD(api_watch_resp, watch_id, 2, PB_INT64),
    API_FIELD(api_watch_resp, created, 3, PB_BOOL),
    API_FIELD(api_watch_resp, canceled, 4, PB_BOOL),
    API_FIELD(api_watch_resp, compact_revision, 5, PB_INT64),
    API_FIELD(api_watch_resp, cancel_reason, 6, PB_BYTES),
    API_FIELD(api_watch_resp, fragment, 7, PB_BOOL),
    API_REPEATED_MSG(api_watch_resp, events, 11, api_event_desc),
};
API_DESC(api_watch_resp, "etcdserverpb.WatchResponse");

/* ---- etcdserverpb: Lease ---- */

static const struct pb_field api_lease_grant_req_fields[] = {
    API_FIELD(api_lease_grant_req, TTL, 1, PB_INT64),
    API_FIELD(api_lease_grant_req, ID, 2, PB_INT64),
};
API_DESC(api_lease_grant_req, "etcdserverpb.LeaseGrantRequest");

static const struct pb_field api_lease_grant_resp_fields[] = {
    API_MSG(api_lease_grant_resp, header, 1, api_header_desc),
    API_FIELD(api_lease_grant_resp, ID, 2, PB_INT64),
    API_FIELD(api_lease_grant_resp, TTL, 3, PB_INT64),
    API_FIELD(api_lease_grant_resp, error, 4, PB_BYTES),
};
API_DESC(api_lease_grant_resp, "etcdserverpb.LeaseGrantResponse");

static const struct pb_field api_lease_revoke_req_fields[] = {
    API_FIELD(api_lease_revoke_req, ID, 1, PB_INT64),
};
API_DESC(api_lease_revoke_req, "etcdserverpb.LeaseRevokeRequest");

API_HEADER_ONLY(api_lease_revoke_resp, "etcdserverpb.LeaseRevokeResponse");

static const struct pb_field api_lease_checkpoint_fields[] = {
    API_FIELD(api_lease_checkpoint, ID, 1, PB_INT64),
    API_FIELD(api_lease_checkpoint, remaining_TTL, 2, PB_INT64),
};
API_DESC(api_lease_checkpoint, "etcdserverpb.LeaseCheckpoint");

static const struct pb_field api_lease_checkpoint_req_fields[] = {
    API_REPEATED_MSG(api_lease_checkpoint_req, checkpoints, 1, api_lease_checkpoint_desc),
};
API_DESC(api_lease_checkpoint_req, "etcdserverpb.LeaseCheckpointRequest");

API_HEADER_ONLY(api_lease_checkpoint_resp, "etcdserverpb.LeaseCheckpointResponse");

static const struct pb_field api_lease_keep_alive_req_fields[] = {
    API_FIELD(api_lease_keep_alive_req, ID, 1, PB_INT64),
};
API_DESC(api_lease_keep_alive_req, "etcdserverpb.LeaseKeepAliveRequest");

static const struct pb_field api_lease_keep_alive_resp_fields[] = {
    API_MSG(api_lease_keep_alive_resp, header, 1, api_header_desc),
    API_FIELD(api_lease_keep_alive_resp, ID, 2, PB_INT64),
    API_FIELD(api_lease_keep_alive_resp, TTL, 3, PB_INT64),
};
API_DESC(api_lease_keep_alive_resp, "etcdserverpb.LeaseKeepAliveResponse");

static const struct pb_field api_lease_time_to_live_req_fields[] = {
    API_FIELD(api_lease_time_to_live_req, ID, 1, PB_INT64),
    API_FIELD(api_lease_time_to_live_req, keys, 2, PB_BOOL),
};
API_DESC(api_lease_time_to_live_req, "etcdserverpb.LeaseTimeToLiveRequest");

static const struct pb_field api_lease_time_to_live_resp_fields[] = {
    API_MSG(api_lease_time_to_live_resp, header, 1, api_header_desc),
    API_FIELD(api_lease_time_to_live_resp, ID, 2, PB_INT64),
    API_FIELD(api_lease_time_to_live_resp, TTL, 3, PB_INT64),
    API_FIELD(api_lease_time_to_live_resp, grantedTTL, 4, PB_INT64),
    API_REPEATED(api_lease_time_to_live_resp, keys, 5, PB_BYTES),
};
API_DESC(api_lease_time_to_live_resp, "etcdserverpb.LeaseTimeToLiveResponse");

API_EMPTY(api_lease_leases_req, "etcdserverpb.LeaseLeasesRequest");

static const struct pb_field api_lease_status_fields[] = {
    API_FIELD(api_lease_status, ID, 1, PB_INT64),
};
API_DESC(api_lease_status, "etcdserverpb.LeaseStatus");

static const struct pb_field api_lease_leases_resp_fields[] = {
    API_MSG(api_lease_leases_resp, header, 1, api_header_desc),
    API_REPEATED_MSG(api_lease_leases_resp, leases, 2, api_lease_status_desc),
};
API_DESC(api_lease_leases_resp, "etcdserverpb.LeaseLeasesResponse");

/* ---- etcdserverpb: Cluster ---- */

static const struct pb_field api_member_fields[] = {
    API_FIELD(api_member, ID, 1, PB_UINT64),
    API_FIELD(api_member, name, 2, PB_BYTES),
    API_REPEATED(api_member, peerURLs, 3, PB_BYTES),
    API_REPEATED(api_member, clientURLs, 4, PB_BYTES),
    API_FIELD(api_member, isLearner, 5, PB_BOOL),
};
API_DESC(api_member, "etcdserverpb.Member");

static const struct pb_field api_member_add_req_fields[] = {
    API_REPEATED(api_member_add_req, peerURLs, 1, PB_BYTES),
    API_FIELD(api_member_add_req, isLearner, 2, PB_BOOL),
};
API_DESC(api_member_add_req, "etcdserverpb.MemberAddRequest");

static const struct pb_field api_member_add_resp_fields[] = {
    API_MSG(api_member_add_resp, header, 1, api_header_desc),
    API_MSG(api_member_add_resp, member, 2, api_member_desc),
    API_REPEATED_MSG(api_member_add_resp, members, 3, api_member_desc),
};
API_DESC(api_member_add_resp, "etcdserverpb.MemberAddResponse");

static const struct pb_field api_member_remove_req_fields[] = {
    API_FIELD(api_member_remove_req, ID, 1, PB_UINT64),
};
API_DESC(api_member_remove_req, "etcdserverpb.MemberRemoveRequest");

static const struct pb_field api_member_remove_resp_fields[] = {
    API_MSG(api_member_remove_resp, header, 1, api_header_desc),
    API_REPEATED_MSG(api_member_remove_resp, members, 2, api_member_desc),
};
API_DESC(api_member_remove_resp, "etcdserverpb.MemberRemoveResponse");

static const struct pb_field api_member_update_req_fields[] = {
    API_FIELD(api_member_update_req, ID, 1, PB_UINT64),
    API_REPEATED(api_member_update_req, peerURLs, 2, PB_BYTES),
};
API_DESC(api_member_update_req, "etcdserverpb.MemberUpdateRequest");

static const struct pb_field api_member_update_resp_fields[] = {
    API_MSG(api_member_update_resp, header, 1, api_header_desc),
    API_REPEATED_MSG(api_member_update_resp, members, 2, api_member_desc),
};
API_DESC(api_member_update_resp, "etcdserverpb.MemberUpdateResponse");

API_EMPTY(api_member_list_req, "etcdserverpb.MemberListRequest");

static const struct pb_field api_member_list_resp_fields[] = {
    API_MSG(api_member_list_resp, header, 1, api_header_desc),
    API_REPEATED_MSG(api_member_list_resp, members, 2, api_member_desc),
};
API_DESC(api_member_list_resp, "etcdserverpb.MemberListResponse");

static const struct pb_field api_member_promote_req_fields[] = {
    API_FIELD(api_member_promote_req, ID, 1, PB_UINT64),
};
API_DESC(api_member_promote_req, "etcdserverpb.MemberPromoteRequest");

static const struct pb_field api_member_promote_resp_fields[] = {
    API_MSG(api_member_promote_resp, header, 1, api_header_desc),
    API_REPEATED_MSG(api_member_promote_resp, members, 2, api_member_desc),
};
API_DESC(api_member_promote_resp, "etcdserverpb.MemberPromoteResponse");

/* ---- etcdserverpb: Maintenance ---- */

API_EMPTY(api_status_req, "etcdserverpb.StatusRequest");

static const struct pb_field api_status_resp_fields[] = {
    API_MSG(api_status_resp, header, 1, api_header_desc),
    API_FIELD(api_status_resp, version, 2, PB_BYTES),
    API_FIELD(api_status_resp, dbSize, 3, PB_INT64),
    API_FIELD(api_status_resp, leader, 4, PB_UINT64),
    API_FIELD(api_status_resp, raftIndex, 5, PB_UINT64),
    API_FIELD(api_status_resp, raftTerm, 6, PB_UINT64),
    API_FIELD(api_status_resp, raftAppliedIndex, 7, PB_UINT64),
    API_REPEATED(api_status_resp, errors, 8, PB_BYTES),
    API_FIELD(api_status_resp, dbSizeInUse, 9, PB_INT64),
    API_FIELD(api_status_resp, isLearner, 10, PB_BOOL),
};
API_DESC(api_status_resp, "etcdserverpb.StatusResponse");

static const struct pb_field api_alarm_req_fields[] = {
    API_FIELD(api_alarm_req, action, 1, PB_ENUM),
    API_FIELD(api_alarm_req, memberID, 2, PB_UINT64),
    API_FIELD(api_alarm_req, alarm, 3, PB_ENUM),
};
API_DESC(api_alarm_req, "etcdserverpb.AlarmRequest");

static const struct pb_field api_alarm_member_fields[] = {
    API_FIELD(api_alarm_member, memberID, 1, PB_UINT64),
    API_FIELD(api_alarm_member, alarm, 2, PB_ENUM),
};
API_DESC(api_alarm_member, "etcdserverpb.AlarmMember");

static const struct pb_field api_alarm_resp_fields[] = {
    API_MSG(api_alarm_resp, header, 1, api_header_desc),
    API_REPEATED_MSG(api_alarm_resp, alarms, 2, api_alarm_member_desc),
};
API_DESC(api_alarm_resp, "etcdserverpb.AlarmResponse");

API_EMPTY(api_defragment_req, "etcdserverpb.DefragmentRequest");
API_HEADER_ONLY(api_defragment_resp, "etcdserverpb.DefragmentResponse");

API_EMPTY(api_hash_req, "etcdserverpb.HashRequest");

static const struct pb_field api_hash_resp_fields[] = {
    API_MSG(api_hash_resp, header, 1, api_header_desc),
    API_FIELD(api_hash_resp, hash, 2, PB_UINT32),
};
API_DESC(api_hash_resp, "etcdserverpb.HashResponse");

static const struct pb_field api_hash_kv_req_fields[] = {
    API_FIELD(api_hash_kv_req, revision, 1, PB_INT64),
};
API_DESC(api_hash_kv_req, "etcdserverpb.HashKVRequest");

static const struct pb_field api_hash_kv_resp_fields[] = {
    API_MSG(api_hash_kv_resp, header, 1, api_header_desc),
    API_FIELD(api_hash_kv_resp, hash, 2, PB_UINT32),
    API_FIELD(api_hash_kv_resp, compact_revision, 3, PB_INT64),
};
API_DESC(api_hash_kv_resp, "etcdserverpb.HashKVResponse");

API_EMPTY(api_snapshot_req, "etcdserverpb.SnapshotRequest");

static const struct pb_field api_snapshot_resp_fields[] = {
    API_MSG(api_snapshot_resp, header, 1, api_header_desc),
    API_FIELD(api_snapshot_resp, remaining_bytes, 2, PB_UINT64),
    API_FIELD(api_snapshot_resp, blob, 3, PB_BYTES),
};
API_DESC(api_snapshot_resp, "etcdserverpb.SnapshotResponse");

static const struct pb_field api_move_leader_req_fields[] = {
    API_FIELD(api_move_leader_req, targetID, 1, PB_UINT64),
};
API_DESC(api_move_leader_req, "etcdserverpb.MoveLeaderRequest");

API_HEADER_ONLY(api_move_leader_resp, "etcdserverpb.MoveLeaderResponse");

/* ---- authpb ---- */

static const struct pb_field api_user_add_options_fields[] = {
    API_FIELD(api_user_add_options, no_password, 1, PB_BOOL),
};
API_DESC(api_user_add_options, "authpb.UserAddOptions");

static const struct pb_field api_user_fields[] = {
    API_FIELD(api_user, name, 1, PB_BYTES),
    API_FIELD(api_user, password, 2, PB_BYTES),
    API_REPEATED(api_user, roles, 3, PB_BYTES),
    API_MSG(api_user, options, 4, api_user_add_options_desc),
};
API_DESC(api_user, "authpb.User");

static const struct pb_field api_permission_fields[] = {
    API_FIELD(api_permission, permType, 1, PB_ENUM),
    API_FIELD(api_permission, key, 2, PB_BYTES),
    API_FIELD(api_permission, range_end, 3, PB_BYTES),
};
API_DESC(api_permission, "authpb.Permission");

static const struct pb_field api_role_fields[] = {
    API_FIELD(api_role, name, 1, PB_BYTES),
    API_REPEATED_MSG(api_role, keyPermission, 2, api_permission_desc),
};
API_DESC(api_role, "authpb.Role");

/* ---- etcdserverpb: Auth ---- */

API_EMPTY(api_auth_enable_req, "etcdserverpb.AuthEnableRequest");
API_HEADER_ONLY(api_auth_enable_resp, "etcdserverpb.AuthEnableResponse");
API_EMPTY(api_auth_disable_req, "etcdserverpb.AuthDisableRequest");
API_HEADER_ONLY(api_auth_disable_resp, "etcdserverpb.AuthDisableResponse");

static const struct pb_field api_authenticate_req_fields[] = {
    API_FIELD(api_authenticate_req, name, 1, PB_BYTES),
    API_FIELD(api_authenticate_req, password, 2, PB_BYTES),
};
API_DESC(api_authenticate_req, "etcdserverpb.AuthenticateRequest");

static const struct pb_field api_authenticate_resp_fields[] = {
    API_MSG(api_authenticate_resp, header, 1, api_header_desc),
    API_FIELD(api_authenticate_resp, token, 2, PB_BYTES),
};
API_DESC(api_authenticate_resp, "etcdserverpb.AuthenticateResponse");

static const struct pb_field api_auth_user_add_req_fields[] = {
    API_FIELD(api_auth_user_add_req, name, 1, PB_BYTES),
    API_FIELD(api_auth_user_add_req, password, 2, PB_BYTES),
    API_MSG(api_auth_user_add_req, options, 3, api_user_add_options_desc),
};
API_DESC(api_auth_user_add_req, "etcdserverpb.AuthUserAddRequest");

API_HEADER_ONLY(api_auth_user_add_resp, "etcdserverpb.AuthUserAddResponse");

static const struct pb_field api_auth_user_get_req_fields[] = {
    API_FIELD(api_auth_user_get_req, name, 1, PB_BYTES),
};
API_DESC(api_auth_user_get_req, "etcdserverpb.AuthUserGetRequest");

static const struct pb_field api_auth_user_get_resp_fields[] = {
    API_MSG(api_auth_user_get_resp, header, 1, api_header_desc),
    API_REPEATED(api_auth_user_get_resp, roles, 2, PB_BYTES),
};
API_DESC(api_auth_user_get_resp, "etcdserverpb.AuthUserGetResponse");

static const struct pb_field api_auth_user_delete_req_fields[] = {
    API_FIELD(api_auth_user_delete_req, name, 1, PB_BYTES),
};
API_DESC(api_auth_user_delete_req, "etcdserverpb.AuthUserDeleteRequest");

API_HEADER_ONLY(api_auth_user_delete_resp, "etcdserverpb.AuthUserDeleteResponse");

static const struct pb_field api_auth_user_change_password_req_fields[] = {
    API_FIELD(api_auth_user_change_password_req, name, 1, PB_BYTES),
    API_FIELD(api_auth_user_change_password_req, password, 2, PB_BYTES),
};
API_DESC(api_auth_user_change_password_req, "etcdserverpb.AuthUserChangePasswordRequest");

API_HEADER_ONLY(api_auth_user_change_password_resp,
                "etcdserverpb.AuthUserChangePasswordResponse");

static const struct pb_field api_auth_user_grant_role_req_fields[] = {
    API_FIELD(api_auth_user_grant_role_req, user, 1, PB_BYTES),
    API_FIELD(api_auth_user_grant_role_req, role, 2, PB_BYTES),
};
API_DESC(api_auth_user_grant_role_req, "etcdserverpb.AuthUserGrantRoleRequest");

API_HEADER_ONLY(api_auth_user_grant_role_resp, "etcdserverpb.AuthUserGrantRoleResponse");

static const struct pb_field api_auth_user_revoke_role_req_fields[] = {
    API_FIELD(api_auth_user_revoke_role_req, name, 1, PB_BYTES),
    API_FIELD(api_auth_user_revoke_role_req, role, 2, PB_BYTES),
};
API_DESC(api_auth_user_revoke_role_req, "etcdserverpb.AuthUserRevokeRoleRequest");

API_HEADER_ONLY(api_auth_user_revoke_role_resp, "etcdserverpb.AuthUserRevokeRoleResponse");

static const struct pb_field api_auth_role_add_req_fields[] = {
    API_FIELD(api_auth_role_add_req, name, 1, PB_BYTES),
};
API_DESC(api_auth_role_add_req, "etcdserverpb.AuthRoleAddRequest");

API_HEADER_ONLY(api_auth_role_add_resp, "etcdserverpb.AuthRoleAddResponse");

static const struct pb_field api_auth_role_get_req_fields[] = {
    API_FIELD(api_auth_role_get_req, role, 1, PB_BYTES),
};
API_DESC(api_auth_role_get_req, "etcdserverpb.AuthRoleGetRequest");

static const struct pb_field api_auth_role_get_resp_fields[] = {
    API_MSG(api_auth_role_get_resp, header, 1, api_header_desc),
    API_REPEATED_MSG(api_auth_role_get_resp, perm, 2, api_permission_desc),
};
API_DESC(api_auth_role_get_resp, "etcdserverpb.AuthRoleGetResponse");

API_EMPTY(api_auth_user_list_req, "etcdserverpb.AuthUserListRequest");

static const struct pb_field api_auth_user_list_resp_fields[] = {
    API_MSG(api_auth_user_list_resp, header, 1, api_header_desc),
    API_REPEATED(api_auth_user_list_resp, users, 2, PB_BYTES),
};
API_DESC(api_auth_user_list_resp, "etcdserverpb.AuthUserListResponse");

API_EMPTY(api_auth_role_list_req, "etcdserverpb.AuthRoleListRequest");

static const struct pb_field api_auth_role_list_resp_fields[] = {
    API_MSG(api_auth_role_list_resp, header, 1, api_header_desc),
    API_REPEATED(api_auth_role_list_resp, roles, 2, PB_BYTES),
};
API_DESC(api_auth_role_list_resp, "etcdserverpb.AuthRoleListResponse");

static const struct pb_field api_auth_role_delete_req_fields[] = {
    API_FIELD(api_auth_role_delete_req, role, 1, PB_BYTES),
};
API_DESC(api_auth_role_delete_req, "etcdserverpb.AuthRoleDeleteRequest");

API_HEADER_ONLY(api_auth_role_delete_resp, "etcdserverpb.AuthRoleDeleteResponse");

static const struct pb_field api_auth_role_grant_permission_req_fields[] = {
    API_FIELD(api_auth_role_grant_permission_req, name, 1, PB_BYTES),
    API_MSG(api_auth_role_grant_permission_req, perm, 2, api_permission_desc),
};
API_DESC(api_auth_role_grant_permission_req, "etcdserverpb.AuthRoleGrantPermissionRequest");

API_HEADER_ONLY(api_auth_role_grant_permission_resp,
                "etcdserverpb.AuthRoleGrantPermissionResponse");

static const struct pb_field api_auth_role_revoke_permission_req_fields[] = {
    API_FIELD(api_auth_role_revoke_permission_req, role, 1, PB_BYTES),
    API_FIELD(api_auth_role_revoke_permission_req, key, 2, PB_BYTES),
    API_FIELD(api_auth_role_revoke_permission_req, range_end, 3, PB_BYTES),
};
API_DESC(api_auth_role_revoke_permission_req, "etcdserverpb.AuthRoleRevokePermissionRequest");

API_HEADER_ONLY(api_auth_role_revoke_permission_resp,
                "etcdserverpb.AuthRoleRevokePermissionResponse");

/* ---- v3lockpb: Lock ---- */

static const struct pb_field api_lock_req_fields[] = {
    API_FIELD(api_lock_req, name, 1, PB_BYTES),
    API_FIELD(api_lock_req, lease, 2, PB_INT64),
};
API_DESC(api_lock_req, "v3lockpb.LockRequest");

static const struct pb_field api_lock_resp_fields[] = {
    API_MSG(api_lock_resp, header, 1, api_header_desc),
    API_FIELD(api_lock_resp, key, 2, PB_BYTES),
};
API_DESC(api_lock_resp, "v3lockpb.LockResponse");

static const struct pb_field api_unlock_req_fields[] = {
    API_FIELD(api_unlock_req, key, 1, PB_BYTES),
};
API_DESC(api_unlock_req, "v3lockpb.UnlockRequest");

API_HEADER_ONLY(api_unlock_resp, "v3lockpb.UnlockResponse");

/* ---- v3electionpb: Election ---- */

static const struct pb_field api_leader_key_fields[] = {
    API_FIELD(api_leader_key, name, 1, PB_BYTES),
    API_FIELD(api_leader_key, key, 2, PB_BYTES),
    API_FIELD(api_leader_key, rev, 3, PB_INT64),
    API_FIELD(api_leader_key, lease, 4, PB_INT64),
};
API_DESC(api_leader_key, "v3electionpb.LeaderKey");

static const struct pb_field api_campaign_req_fields[] = {
    API_FIELD(api_campaign_req, name, 1, PB_BYTES),
    API_FIELD(api_campaign_req, lease, 2, PB_INT64),
    API_FIELD(api_campaign_req, value, 3, PB_BYTES),
};
API_DESC(api_campaign_req, "v3electionpb.CampaignRequest");

static const struct pb_field api_campaign_resp_fields[] = {
    API_MSG(api_campaign_resp, header, 1, api_header_desc),
    API_MSG(api_campaign_resp, leader, 2, api_leader_key_desc),
};
API_DESC(api_campaign_resp, "v3electionpb.CampaignResponse");

static const struct pb_field api_proclaim_req_fields[] = {
    API_MSG(api_proclaim_req, leader, 1, api_leader_key_desc),
    API_FIELD(api_proclaim_req, value, 2, PB_BYTES),
};
API_DESC(api_proclaim_req, "v3electionpb.ProclaimRequest");

API_HEADER_ONLY(api_proclaim_resp, "v3electionpb.ProclaimResponse");

static const struct pb_field api_leader_req_fields[] = {
    API_FIELD(api_leader_req, name, 1, PB_BYTES),
};
API_DESC(api_leader_req, "v3electionpb.LeaderRequest");

static const struct pb_field api_leader_resp_fields[] = {
    API_MSG(api_leader_resp, header, 1, api_header_desc),
    API_MSG(api_leader_resp, kv, 2, api_kv_desc),
};
API_DESC(api_leader_resp, "v3electionpb.LeaderResponse");

static const struct pb_field api_resign_req_fields[] = {
    API_MSG(api_resign_req, leader, 1, api_leader_key_desc),
};
API_DESC(api_resign_req, "v3electionpb.ResignRequest");

API_HEADER_ONLY(api_resign_resp, "v3electionpb.ResignResponse");

/* ---- peer and disk messages ---- */

#define P2(S, fld, n, t) \
    { .num = (n), .type = (t), .flags = PB_PROTO2, .offset = offsetof(struct S, fld) }
#define P2_MSG(S, fld, n, sd) \
    { .num = (n), .type = PB_MSG, .flags = PB_PROTO2, .offset = offsetof(struct S, fld), .sub = &(sd) }
#define P2_REPEATED(S, fld, n, t)                                                        \
    { .num = (n), .type = (t), .flags = PB_REPEATED | PB_PROTO2,                            \
      .offset = offsetof(struct S, fld), .count_offset = offsetof(struct S, n_##fld) }
#define P2_REPEATED_MSG(S, fld, n, sd)                                                   \
    { .num = (n), .type = PB_MSG, .flags = PB_REPEATED | PB_PROTO2,                         \
      .offset = offsetof(struct S, fld), .count_offset = offsetof(struct S, n_##fld), .sub = &(sd) }

static const struct pb_field api_raft_entry_fields[] = {
    P2(api_raft_entry, Type, 1, PB_ENUM),
    P2(api_raft_entry, Term, 2, PB_UINT64),
    P2(api_raft_entry, Index, 3, PB_UINT64),
    P2(api_raft_entry, Data, 4, PB_BYTES),
};
API_DESC(api_raft_entry, "raftpb.Entry");

static const struct pb_field api_raft_hard_state_fields[] = {
    P2(api_raft_hard_state, term, 1, PB_UINT64),
    P2(api_raft_hard_state, vote, 2, PB_UINT64),
    P2(api_raft_hard_state, commit, 3, PB_UINT64),
};
API_DESC(api_raft_hard_state, "raftpb.HardState");

static const struct pb_field api_raft_conf_state_fields[] = {
    P2_REPEATED(api_raft_conf_state, voters, 1, PB_UINT64),
    P2_REPEATED(api_raft_conf_state, learners, 2, PB_UINT64),
    P2_REPEATED(api_raft_conf_state, voters_outgoing, 3, PB_UINT64),
    P2_REPEATED(api_raft_conf_state, learners_next, 4, PB_UINT64),
    P2(api_raft_conf_state, auto_leave, 5, PB_BOOL),
};
API_DESC(api_raft_conf_state, "raftpb.ConfState");

static const struct pb_field api_raft_snapshot_metadata_fields[] = {
    P2_MSG(api_raft_snapshot_metadata, conf_state, 1, api_raft_conf_state_desc),
    P2(api_raft_snapshot_metadata, index, 2, PB_UINT64),
    P2(api_raft_snapshot_metadata, term, 3, PB_UINT64),
};
API_DESC(api_raft_snapshot_metadata, "raftpb.SnapshotMetadata");

static const struct pb_field api_raft_snapshot_fields[] = {
    P2(api_raft_snapshot, data, 1, PB_BYTES),
    P2_MSG(api_raft_snapshot, metadata, 2, api_raft_snapshot_metadata_desc),
};
API_DESC(api_raft_snapshot, "raftpb.Snapshot");

static const struct pb_field api_raft_message_fields[] = {
    P2(api_raft_message, type, 1, PB_ENUM),
    P2(api_raft_message, to, 2, PB_UINT64),
    P2(api_raft_message, from, 3, PB_UINT64),
    P2(api_raft_message, term, 4, PB_UINT64),
    P2(api_raft_message, logTerm, 5, PB_UINT64),
    P2(api_raft_message, index, 6, PB_UINT64),
    P2_REPEATED_MSG(api_raft_message, entries, 7, api_raft_entry_desc),
    P2(api_raft_message, commit, 8, PB_UINT64),
    P2_MSG(api_raft_message, snapshot, 9, api_raft_snapshot_desc),
    P2(api_raft_message, reject, 10, PB_BOOL),
    P2(api_raft_message, rejectHint, 11, PB_UINT64),
    P2(api_raft_message, context, 12, PB_BYTES),
};
API_DESC(api_raft_message, "raftpb.Message");

static const struct pb_field api_raft_conf_change_fields[] = {
    P2(api_raft_conf_change, ID, 1, PB_UINT64),
    P2(api_raft_conf_change, type, 2, PB_ENUM),
    P2(api_raft_conf_change, NodeID, 3, PB_UINT64),
    P2(api_raft_conf_change, context, 4, PB_BYTES),
};
API_DESC(api_raft_conf_change, "raftpb.ConfChange");

static const struct pb_field api_wal_record_fields[] = {
    P2(api_wal_record, type, 1, PB_INT64),
    P2(api_wal_record, crc, 2, PB_UINT32),
    P2(api_wal_record, data, 3, PB_BYTES),
};
API_DESC(api_wal_record, "walpb.Record");

static const struct pb_field api_wal_snapshot_fields[] = {
    P2(api_wal_snapshot, index, 1, PB_UINT64),
    P2(api_wal_snapshot, term, 2, PB_UINT64),
};
API_DESC(api_wal_snapshot, "walpb.Snapshot");

static const struct pb_field api_snap_snapshot_fields[] = {
    P2(api_snap_snapshot, crc, 1, PB_UINT32),
    P2(api_snap_snapshot, data, 2, PB_BYTES),
};
API_DESC(api_snap_snapshot, "snappb.snapshot");

static const struct pb_field api_metadata_fields[] = {
    P2(api_metadata, NodeID, 1, PB_UINT64),
    P2(api_metadata, ClusterID, 2, PB_UINT64),
};
API_DESC(api_metadata, "etcdserverpb.Metadata");

static const struct pb_field api_v2_request_fields[] = {
    P2(api_v2_request, ID, 1, PB_UINT64),
    P2(api_v2_request, Method, 2, PB_BYTES),
    P2(api_v2_request, Path, 3, PB_BYTES),
    P2(api_v2_request, Val, 4, PB_BYTES),
    P2(api_v2_request, Dir, 5, PB_BOOL),
    P2(api_v2_request, PrevValue, 6, PB_BYTES),
    P2(api_v2_request, PrevIndex, 7, PB_UINT64),
    API_ONEOF(api_v2_request, PrevExist, 8, PB_BOOL),
    P2(api_v2_request, Expiration, 9, PB_INT64),
    P2(api_v2_request, Wait, 10, PB_BOOL),
    P2(api_v2_request, Since, 11, PB_UINT64),
    P2(api_v2_request, Recursive, 12, PB_BOOL),
    P2(api_v2_request, Sorted, 13, PB_BOOL),
    P2(api_v2_request, Quorum, 14, PB_BOOL),
    P2(api_v2_request, Time, 15, PB_INT64),
    P2(api_v2_request, Stream, 16, PB_BOOL),
    API_ONEOF(api_v2_request, Refresh, 17, PB_BOOL),
};
API_DESC(api_v2_request, "etcdserverpb.Request");

static const struct pb_field api_request_header_fields[] = {
    API_FIELD(api_request_header, ID, 1, PB_UINT64),
    API_FIELD(api_request_header, username, 2, PB_BYTES),
    API_FIELD(api_request_header, auth_revision, 3, PB_UINT64),
};
API_DESC(api_request_header, "etcdserverpb.RequestHeader");

static const struct pb_field api_internal_authenticate_req_fields[] = {
    API_FIELD(api_internal_authenticate_req, name, 1, PB_BYTES),
    API_FIELD(api_internal_authenticate_req, password, 2, PB_BYTES),
    API_FIELD(api_internal_authenticate_req, simple_token, 3, PB_BYTES),
};
API_DESC(api_internal_authenticate_req, "etcdserverpb.InternalAuthenticateRequest");

static const struct pb_field api_internal_raft_req_fields[] = {
    API_FIELD(api_internal_raft_req, ID, 1, PB_UINT64),
    API_MSG(api_internal_raft_req, v2, 2, api_v2_request_desc),
    API_MSG(api_internal_raft_req, range, 3, api_range_req_desc),
    API_MSG(api_internal_raft_req, put, 4, api_put_req_desc),
    API_MSG(api_internal_raft_req, delete_range, 5, api_delete_req_desc),
    API_MSG(api_internal_raft_req, txn, 6, api_txn_req_desc),
    API_MSG(api_internal_raft_req, compaction, 7, api_compaction_req_desc),
    API_MSG(api_internal_raft_req, lease_grant, 8, api_lease_grant_req_desc),
    API_MSG(api_internal_raft_req, lease_revoke, 9, api_lease_revoke_req_desc),
    API_MSG(api_internal_raft_req, alarm, 10, api_alarm_req_desc),
    API_MSG(api_internal_raft_req, lease_checkpoint, 11, api_lease_checkpoint_req_desc),
    API_MSG(api_internal_raft_req, header, 100, api_request_header_desc),
    API_MSG(api_internal_raft_req, auth_enable, 1000, api_auth_enable_req_desc),
    API_MSG(api_internal_raft_req, auth_disable, 1011, api_auth_disable_req_desc),
    API_MSG(api_internal_raft_req, authenticate, 1012, api_internal_authenticate_req_desc),
    API_MSG(api_internal_raft_req, auth_user_add, 1100, api_auth_user_add_req_desc),
    API_MSG(api_internal_raft_req, auth_user_delete, 1101, api_auth_user_delete_req_desc),
    API_MSG(api_internal_raft_req, auth_user_get, 1102, api_auth_user_get_req_desc),
    API_MSG(api_internal_raft_req, auth_user_change_password, 1103, api_auth_user_change_password_req_desc),
    API_MSG(api_internal_raft_req, auth_user_grant_role, 1104, api_auth_user_grant_role_req_desc),
    API_MSG(api_internal_raft_req, auth_user_revoke_role, 1105, api_auth_user_revoke_role_req_desc),
    API_MSG(api_internal_raft_req, auth_user_list, 1106, api_auth_user_list_req_desc),
    API_MSG(api_internal_raft_req, auth_role_list, 1107, api_auth_role_list_req_desc),
    API_MSG(api_internal_raft_req, auth_role_add, 1200, api_auth_role_add_req_desc),
    API_MSG(api_internal_raft_req, auth_role_delete, 1201, api_auth_role_delete_req_desc),
    API_MSG(api_internal_raft_req, auth_role_get, 1202, api_auth_role_get_req_desc),
    API_MSG(api_internal_raft_req, auth_role_grant_permission, 1203, api_auth_role_grant_permission_req_desc),
    API_MSG(api_internal_raft_req, auth_role_revoke_permission, 1204, api_auth_role_revoke_permission_req_desc),
};
API_DESC(api_internal_raft_req, "etcdserverpb.InternalRaftRequest");

/* ---- leasepb ---- */

static const struct pb_field api_lease_pb_fields[] = {
    API_FIELD(api_lease_pb, ID, 1, PB_INT64),
    API_FIELD(api_lease_pb, TTL, 2, PB_INT64),
    API_FIELD(api_lease_pb, RemainingTTL, 3, PB_INT64),
};
API_DESC(api_lease_pb, "leasepb.Lease");
