/* api.h - C structs for etcd's v3 protobuf messages and their pb.c descriptor
 * tables (defined in api.c).  Field names follow the .proto files
 * (etcdserver/etcdserverpb/rpc.proto, mvcc/mvccpb/kv.proto, auth/authpb,
 * v3lock, v3election); see pb.h for how each proto type is represented.
 * This file owns no behaviour: it is the shape of the wire. */
#ifndef ETCD_API_H
#define ETCD_API_H

#include "pb.h"

/* ---- mvccpb ---- */

struct api_kv { /* mvccpb.KeyValue */
    struct pb_bytes key;
    int64_t create_revision;
    int64_t mod_revision;
    int64_t version;
    struct pb_bytes value;
    int64_t lease;
};

enum api_event_type { API_EVENT_PUT = 0, API_EVENT_DELETE = 1 };

struct api_event { /* mvccpb.Event */
    int32_t type;
    struct api_kv *kv;
    struct api_kv *prev_kv;
};

/* ---- etcdserverpb: KV ---- */

struct api_header { /* ResponseHeader */
    uint64_t cluster_id;
    uint64_t member_id;
    int64_t revision;
    uint64_t raft_term;
};

enum api_sort_order { API_SORT_NONE = 0, API_SORT_ASCEND = 1, API_SORT_DESCEND = 2 };
enum api_sort_target {
    API_SORT_KEY = 0,
    API_SORT_VERSION = 1,
    API_SORT_CREATE = 2,
    API_SORT_MOD = 3,
    API_SORT_VALUE = 4,
};

struct api_range_req { /* RangeRequest */
    struct pb_bytes key;
    struct pb_bytes range_end;
    int64_t limit;
    int64_t revision;
    int32_t sort_order;  /* enum api_sort_order */
    int32_t sort_target; /* enum api_sort_target */
    bool serializable;
    bool keys_only;
    bool count_only;
    int64_t min_mod_revision;
    int64_t max_mod_revision;
    int64_t min_create_revision;
    int64_t max_create_revision;
};

struct api_range_resp { /* RangeResponse */
    struct api_header *header;
    struct api_kv *kvs;
    size_t n_kvs;
    bool more;
    int64_t count;
};

struct api_put_req { /* PutRequest */
    struct pb_bytes key;
    struct pb_bytes value;
    int64_t lease;
    bool prev_kv;
    bool ignore_value;
    bool ignore_lease;
};

struct api_put_resp { /* PutResponse */
    struct api_header *header;
    struct api_kv *prev_kv;
};

struct api_delete_req { /* DeleteRangeRequest */
    struct pb_bytes key;
    struct pb_bytes range_end;
    bool prev_kv;
};

struct api_delete_resp { /* DeleteRangeResponse */
    struct api_header *header;
    int64_t deleted;
    struct api_kv *prev_kvs;
    size_t n_prev_kvs;
};

struct api_txn_req;
struct api_txn_resp;

struct api_request_op { /* RequestOp: exactly one member is non-NULL */
    struct api_range_req *request_range;
    struct api_put_req *request_put;
    struct api_delete_req *request_delete_range;
    struct api_txn_req *request_txn;
};

struct api_response_op { /* ResponseOp: exactly one member is non-NULL */
    struct api_range_resp *response_range;
    struct api_put_resp *response_put;
    struct api_delete_resp *response_delete_range;
    struct api_txn_resp *response_txn;
};

enum api_compare_result {
    API_CMP_EQUAL = 0,
    API_CMP_GREATER = 1,
    API_CMP_LESS = 2,
    API_CMP_NOT_EQUAL = 3,
};
enum api_compare_target {
    API_CMP_VERSION = 0,
    API_CMP_CREATE = 1,
    API_CMP_MOD = 2,
    API_CMP_VALUE = 3,
    API_CMP_LEASE = 4,
};

struct api_compare { /* Compare; the target_union members are PB_ONEOF */
    int32_t result; /* enum api_compare_result */
    int32_t target; /* enum api_compare_target */
    struct pb_bytes key;
    int64_t version;
    bool has_version;
    int64_t create_revision;
    bool has_create_revision;
    int64_t mod_revision;
    bool has_mod_revision;
    struct pb_bytes value;
    bool has_value;
    int64_t lease;
    bool has_lease;
    struct pb_bytes range_end;
};

struct api_txn_req { /* TxnRequest */
    struct api_compare *compare;
    size_t n_compare;
    struct api_request_op *success;
    size_t n_success;
    struct api_request_op *failure;
    size_t n_failure;
};

struct api_txn_resp { /* TxnResponse */
    struct api_header *header;
    bool succeeded;
    struct api_response_op *responses;
    size_t n_responses;
};

struct api_compaction_req { /* CompactionRequest */
    int64_t revision;
    bool physical;
};

struct api_compaction_resp { /* CompactionResponse */
    struct api_header *header;
};

/* ---- etcdserverpb: Watch ---- */

enum api_watch_filter { API_WATCH_NOPUT = 0, API_WATCH_NODELETE = 1 };

struct api_watch_create_req { /* WatchCreateRequest */
    struct pb_bytes key;
    struct pb_bytes range_end;
    int64_t start_revision;
    bool progress_notify;
    int32_t *filters; /* enum api_watch_filter */
    size_t n_filters;
    bool prev_kv;
    int64_t watch_id;
    bool fragment;
};

struct api_watch_cancel_req { /* WatchCancelRequest */
    int64_t watch_id;
};

struct api_watch_progress_req { /* WatchProgressRequest (no fields) */
    int unused_;
};

struct api_watch_req { /* WatchRequest: request_union, exactly one non-NULL */
    struct api_watch_create_req *create_request;
    struct api_watch_cancel_req *cancel_request;
    struct api_watch_progress_req *progress_request;
};

struct api_watch_resp { /* WatchResponse */
    struct api_header *header;
    int64_t watch_id;
    bool created;
    bool canceled;
    int64_t compact_revision;
    struct pb_bytes cancel_reason;
    bool fragment;
    struct api_event *events;
    size_t n_events;
};

/* ---- etcdserverpb: Lease ---- */

struct api_lease_grant_req { /* LeaseGrantRequest */
    int64_t TTL;
    int64_t ID;
};

struct api_lease_grant_resp { /* LeaseGrantResponse */
    struct api_header *header;
    int64_t ID;
    int64_t TTL;
    struct pb_bytes error;
};

struct api_lease_revoke_req { /* LeaseRevokeRequest */
    int64_t ID;
};

struct api_lease_revoke_resp { /* LeaseRevokeResponse */
    struct api_header *header;
};

struct api_lease_checkpoint { /* LeaseCheckpoint */
    int64_t ID;
    int64_t remaining_TTL;
};

struct api_lease_checkpoint_req { /* LeaseCheckpointRequest */
    struct api_lease_checkpoint *checkpoints;
    size_t n_checkpoints;
};

struct api_lease_checkpoint_resp { /* LeaseCheckpointResponse */
    struct api_header *header;
};

struct api_lease_keep_alive_req { /* LeaseKeepAliveRequest */
    int64_t ID;
};

struct api_lease_keep_alive_resp { /* LeaseKeepAliveResponse */
    struct api_header *header;
    int64_t ID;
    int64_t TTL;
};

struct api_lease_time_to_live_req { /* LeaseTimeToLiveRequest */
    int64_t ID;
    bool keys;
};

struct api_lease_time_to_live_resp { /* LeaseTimeToLiveResponse */
    struct api_header *header;
    int64_t ID;
    int64_t TTL;
    int64_t grantedTTL;
    struct pb_bytes *keys;
    size_t n_keys;
};

struct api_lease_leases_req { /* LeaseLeasesRequest (no fields) */
    int unused_;
};

struct api_lease_status { /* LeaseStatus */
    int64_t ID;
};

struct api_lease_leases_resp { /* LeaseLeasesResponse */
    struct api_header *header;
    struct api_lease_status *leases;
    size_t n_leases;
};

/* ---- etcdserverpb: Cluster ---- */

struct api_member { /* Member */
    uint64_t ID;
    struct pb_bytes name;
    struct pb_bytes *peerURLs;
    size_t n_peerURLs;
    struct pb_bytes *clientURLs;
    size_t n_clientURLs;
    bool isLearner;
};

struct api_member_list_req { /* MemberListRequest (no fields in 3.4) */
    int unused_;
};

struct api_member_list_resp { /* MemberListResponse */
    struct api_header *header;
    struct api_member *members;
    size_t n_members;
};

struct api_member_add_req { /* MemberAddRequest */
    struct pb_bytes *peerURLs;
    size_t n_peerURLs;
    bool isLearner;
};

struct api_member_add_resp { /* MemberAddResponse */
    struct api_header *header;
    struct api_member *member;
    struct api_member *members;
    size_t n_members;
};

struct api_member_remove_req { /* MemberRemoveRequest */
    uint64_t ID;
};

struct api_member_remove_resp { /* MemberRemoveResponse */
    struct api_header *header;
    struct api_member *members;
    size_t n_members;
};

struct api_member_update_req { /* MemberUpdateRequest */
    uint64_t ID;
    struct pb_bytes *peerURLs;
    size_t n_peerURLs;
};

struct api_member_update_resp { /* MemberUpdateResponse */
    struct api_header *header;
    struct api_member *members;
    size_t n_members;
};

struct api_member_promote_req { /* MemberPromoteRequest */
    uint64_t ID;
};

struct api_member_promote_resp { /* MemberPromoteResponse */
    struct api_header *header;
    struct api_member *members;
    size_t n_members;
};

/* ---- etcdserverpb: Maintenance ---- */

struct api_status_req { /* StatusRequest */
    int unused_;
};

struct api_status_resp { /* StatusResponse */
    struct api_header *header;
    struct pb_bytes version;
    int64_t dbSize;
    uint64_t leader;
    uint64_t raftIndex;
    uint64_t raftTerm;
    uint64_t raftAppliedIndex;
    struct pb_bytes *errors;
    size_t n_errors;
    int64_t dbSizeInUse;
    bool isLearner;
};

enum api_alarm_type { API_ALARM_NONE = 0, API_ALARM_NOSPACE = 1, API_ALARM_CORRUPT = 2 };
enum api_alarm_action {
    API_ALARM_GET = 0,
    API_ALARM_ACTIVATE = 1,
    API_ALARM_DEACTIVATE = 2,
};

struct api_alarm_req { /* AlarmRequest */
    int32_t action;  /* enum api_alarm_action */
    uint64_t memberID;
    int32_t alarm;   /* enum api_alarm_type */
};

struct api_alarm_member { /* AlarmMember */
    uint64_t memberID;
    int32_t alarm; /* enum api_alarm_type */
};

struct api_alarm_resp { /* AlarmResponse */
    struct api_header *header;
    struct api_alarm_member *alarms;
    size_t n_alarms;
};

struct api_defragment_req { /* DefragmentRequest (no fields) */
    int unused_;
};

struct api_defragment_resp { /* DefragmentResponse */
    struct api_header *header;
};

struct api_hash_req { /* HashRequest (no fields) */
    int unused_;
};

struct api_hash_resp { /* HashResponse */
    struct api_header *header;
    uint32_t hash;
};

struct api_hash_kv_req { /* HashKVRequest */
    int64_t revision;
};

struct api_hash_kv_resp { /* HashKVResponse */
    struct api_header *header;
    uint32_t hash;
    int64_t compact_revision;
};

struct api_snapshot_req { /* SnapshotRequest (no fields) */
    int unused_;
};

struct api_snapshot_resp { /* SnapshotResponse */
    struct api_header *header;
    uint64_t remaining_bytes;
    struct pb_bytes blob;
};

struct api_move_leader_req { /* MoveLeaderRequest */
    uint64_t targetID;
};

struct api_move_leader_resp { /* MoveLeaderResponse */
    struct api_header *header;
};

/* ---- authpb ---- */

enum api_perm_type { API_PERM_READ = 0, API_PERM_WRITE = 1, API_PERM_READWRITE = 2 };

struct api_user_add_options { /* authpb.UserAddOptions */
    bool no_password;
};

struct api_user { /* authpb.User */
    struct pb_bytes name;
    struct pb_bytes password;
    struct pb_bytes *roles;
    size_t n_roles;
    struct api_user_add_options *options;
};

struct api_permission { /* authpb.Permission */
    int32_t permType; /* enum api_perm_type */
    struct pb_bytes key;
    struct pb_bytes range_end;
};

struct api_role { /* authpb.Role */
    struct pb_bytes name;
    struct api_permission *keyPermission;
    size_t n_keyPermission;
};

/* ---- etcdserverpb: Auth ---- */

struct api_auth_enable_req { /* AuthEnableRequest (no fields) */
    int unused_;
};

struct api_auth_enable_resp { /* AuthEnableResponse */
    struct api_header *header;
};

struct api_auth_disable_req { /* AuthDisableRequest (no fields) */
    int unused_;
};

struct api_auth_disable_resp { /* AuthDisableResponse */
    struct api_header *header;
};

struct api_authenticate_req { /* AuthenticateRequest */
    struct pb_bytes name;
    struct pb_bytes password;
};

struct api_authenticate_resp { /* AuthenticateResponse */
    struct api_header *header;
    struct pb_bytes token;
};

struct api_auth_user_add_req { /* AuthUserAddRequest */
    struct pb_bytes name;
    struct pb_bytes password;
    struct api_user_add_options *options;
};

struct api_auth_user_add_resp { /* AuthUserAddResponse */
    struct api_header *header;
};

struct api_auth_user_get_req { /* AuthUserGetRequest */
    struct pb_bytes name;
};

struct api_auth_user_get_resp { /* AuthUserGetResponse */
    struct api_header *header;
    struct pb_bytes *roles;
    size_t n_roles;
};

struct api_auth_user_delete_req { /* AuthUserDeleteRequest */
    struct pb_bytes name;
};

struct api_auth_user_delete_resp { /* AuthUserDeleteResponse */
    struct api_header *header;
};

struct api_auth_user_change_password_req { /* AuthUserChangePasswordRequest */
    struct pb_bytes name;
    struct pb_bytes password;
};

struct api_auth_user_change_password_resp { /* AuthUserChangePasswordResponse */
    struct api_header *header;
};

struct api_auth_user_grant_role_req { /* AuthUserGrantRoleRequest */
    struct pb_bytes user;
    struct pb_bytes role;
};

struct api_auth_user_grant_role_resp { /* AuthUserGrantRoleResponse */
    struct api_header *header;
};

struct api_auth_user_revoke_role_req { /* AuthUserRevokeRoleRequest */
    struct pb_bytes name;
    struct pb_bytes role;
};

struct api_auth_user_revoke_role_resp { /* AuthUserRevokeRoleResponse */
    struct api_header *header;
};

struct api_auth_role_add_req { /* AuthRoleAddRequest */
    struct pb_bytes name;
};

struct api_auth_role_add_resp { /* AuthRoleAddResponse */
    struct api_header *header;
};

struct api_auth_role_get_req { /* AuthRoleGetRequest */
    struct pb_bytes role;
};

struct api_auth_role_get_resp { /* AuthRoleGetResponse */
    struct api_header *header;
    struct api_permission *perm;
    size_t n_perm;
};

struct api_auth_user_list_req { /* AuthUserListRequest (no fields) */
    int unused_;
};

struct api_auth_user_list_resp { /* AuthUserListResponse */
    struct api_header *header;
    struct pb_bytes *users;
    size_t n_users;
};

struct api_auth_role_list_req { /* AuthRoleListRequest (no fields) */
    int unused_;
};

struct api_auth_role_list_resp { /* AuthRoleListResponse */
    struct api_header *header;
    struct pb_bytes *roles;
    size_t n_roles;
};

struct api_auth_role_delete_req { /* AuthRoleDeleteRequest */
    struct pb_bytes role;
};

struct api_auth_role_delete_resp { /* AuthRoleDeleteResponse */
    struct api_header *header;
};

struct api_auth_role_grant_permission_req { /* AuthRoleGrantPermissionRequest */
    struct pb_bytes name;
    struct api_permission *perm;
};

struct api_auth_role_grant_permission_resp { /* AuthRoleGrantPermissionResponse */
    struct api_header *header;
};

struct api_auth_role_revoke_permission_req { /* AuthRoleRevokePermissionRequest */
    struct pb_bytes role;
    struct pb_bytes key;
    struct pb_bytes range_end;
};

struct api_auth_role_revoke_permission_resp { /* AuthRoleRevokePermissionResponse */
    struct api_header *header;
};

/* ---- v3lockpb: Lock ---- */

struct api_lock_req { /* v3lockpb.LockRequest */
    struct pb_bytes name;
    int64_t lease;
};

struct api_lock_resp { /* v3lockpb.LockResponse */
    struct api_header *header;
    struct pb_bytes key;
};

struct api_unlock_req { /* v3lockpb.UnlockRequest */
    struct pb_bytes key;
};

struct api_unlock_resp { /* v3lockpb.UnlockResponse */
    struct api_header *header;
};

/* ---- v3electionpb: Election ---- */

struct api_leader_key { /* v3electionpb.LeaderKey */
    struct pb_bytes name;
    struct pb_bytes key;
    int64_t rev;
    int64_t lease;
};

struct api_campaign_req { /* v3electionpb.CampaignRequest */
    struct pb_bytes name;
    int64_t lease;
    struct pb_bytes value;
};

struct api_campaign_resp { /* v3electionpb.CampaignResponse */
    struct api_header *header;
    struct api_leader_key *leader;
};

struct api_proclaim_req { /* v3electionpb.ProclaimRequest */
    struct api_leader_key *leader;
    struct pb_bytes value;
};

struct api_proclaim_resp { /* v3electionpb.ProclaimResponse */
    struct api_header *header;
};

struct api_leader_req { /* v3electionpb.LeaderRequest (Leader and Observe) */
    struct pb_bytes name;
};

struct api_leader_resp { /* v3electionpb.LeaderResponse */
    struct api_header *header;
    struct api_kv *kv;
};

struct api_resign_req { /* v3electionpb.ResignRequest */
    struct api_leader_key *leader;
};

struct api_resign_resp { /* v3electionpb.ResignResponse */
    struct api_header *header;
};

/* ---- descriptor tables (api.c) ---- */

extern const struct pb_msgdesc api_kv_desc;
extern const struct pb_msgdesc api_event_desc;
extern const struct pb_msgdesc api_header_desc;
extern const struct pb_msgdesc api_range_req_desc;
extern const struct pb_msgdesc api_range_resp_desc;
extern const struct pb_msgdesc api_put_req_desc;
extern const struct pb_msgdesc api_put_resp_desc;
extern const struct pb_msgdesc api_delete_req_desc;
extern const struct pb_msgdesc api_delete_resp_desc;
extern const struct pb_msgdesc api_request_op_desc;
extern const struct pb_msgdesc api_response_op_desc;
extern const struct pb_msgdesc api_compare_desc;
extern const struct pb_msgdesc api_txn_req_desc;
extern const struct pb_msgdesc api_txn_resp_desc;
extern const struct pb_msgdesc api_compaction_req_desc;
extern const struct pb_msgdesc api_compaction_resp_desc;
extern const struct pb_msgdesc api_member_desc;
extern const struct pb_msgdesc api_member_list_req_desc;
extern const struct pb_msgdesc api_member_list_resp_desc;
extern const struct pb_msgdesc api_status_req_desc;
extern const struct pb_msgdesc api_status_resp_desc;

/* Watch */
extern const struct pb_msgdesc api_watch_req_desc;
extern const struct pb_msgdesc api_watch_create_req_desc;
extern const struct pb_msgdesc api_watch_cancel_req_desc;
extern const struct pb_msgdesc api_watch_progress_req_desc;
extern const struct pb_msgdesc api_watch_resp_desc;
/* Lease */
extern const struct pb_msgdesc api_lease_grant_req_desc;
extern const struct pb_msgdesc api_lease_grant_resp_desc;
extern const struct pb_msgdesc api_lease_revoke_req_desc;
extern const struct pb_msgdesc api_lease_revoke_resp_desc;
extern const struct pb_msgdesc api_lease_checkpoint_desc;
extern const struct pb_msgdesc api_lease_checkpoint_req_desc;
extern const struct pb_msgdesc api_lease_checkpoint_resp_desc;
extern const struct pb_msgdesc api_lease_keep_alive_req_desc;
extern const struct pb_msgdesc api_lease_keep_alive_resp_desc;
extern const struct pb_msgdesc api_lease_time_to_live_req_desc;
extern const struct pb_msgdesc api_lease_time_to_live_resp_desc;
extern const struct pb_msgdesc api_lease_leases_req_desc;
extern const struct pb_msgdesc api_lease_status_desc;
extern const struct pb_msgdesc api_lease_leases_resp_desc;
/* Cluster */
extern const struct pb_msgdesc api_member_add_req_desc;
extern const struct pb_msgdesc api_member_add_resp_desc;
extern const struct pb_msgdesc api_member_remove_req_desc;
extern const struct pb_msgdesc api_member_remove_resp_desc;
extern const struct pb_msgdesc api_member_update_req_desc;
extern const struct pb_msgdesc api_member_update_resp_desc;
extern const struct pb_msgdesc api_member_promote_req_desc;
extern const struct pb_msgdesc api_member_promote_resp_desc;
/* Maintenance */
extern const struct pb_msgdesc api_alarm_req_desc;
extern const struct pb_msgdesc api_alarm_member_desc;
extern const struct pb_msgdesc api_alarm_resp_desc;
extern const struct pb_msgdesc api_defragment_req_desc;
extern const struct pb_msgdesc api_defragment_resp_desc;
extern const struct pb_msgdesc api_hash_req_desc;
extern const struct pb_msgdesc api_hash_resp_desc;
extern const struct pb_msgdesc api_hash_kv_req_desc;
extern const struct pb_msgdesc api_hash_kv_resp_desc;
extern const struct pb_msgdesc api_snapshot_req_desc;
extern const struct pb_msgdesc api_snapshot_resp_desc;
extern const struct pb_msgdesc api_move_leader_req_desc;
extern const struct pb_msgdesc api_move_leader_resp_desc;
/* authpb */
extern const struct pb_msgdesc api_user_add_options_desc;
extern const struct pb_msgdesc api_user_desc;
extern const struct pb_msgdesc api_permission_desc;
extern const struct pb_msgdesc api_role_desc;
/* Auth */
extern const struct pb_msgdesc api_auth_enable_req_desc;
extern const struct pb_msgdesc api_auth_enable_resp_desc;
extern const struct pb_msgdesc api_auth_disable_req_desc;
extern const struct pb_msgdesc api_auth_disable_resp_desc;
extern const struct pb_msgdesc api_authenticate_req_desc;
extern const struct pb_msgdesc api_authenticate_resp_desc;
extern const struct pb_msgdesc api_auth_user_add_req_desc;
extern const struct pb_msgdesc api_auth_user_add_resp_desc;
extern const struct pb_msgdesc api_auth_user_get_req_desc;
extern const struct pb_msgdesc api_auth_user_get_resp_desc;
extern const struct pb_msgdesc api_auth_user_delete_req_desc;
extern const struct pb_msgdesc api_auth_user_delete_resp_desc;
extern const struct pb_msgdesc api_auth_user_change_password_req_desc;
extern const struct pb_msgdesc api_auth_user_change_password_resp_desc;
extern const struct pb_msgdesc api_auth_user_grant_role_req_desc;
extern const struct pb_msgdesc api_auth_user_grant_role_resp_desc;
extern const struct pb_msgdesc api_auth_user_revoke_role_req_desc;
extern const struct pb_msgdesc api_auth_user_revoke_role_resp_desc;
extern const struct pb_msgdesc api_auth_role_add_req_desc;
extern const struct pb_msgdesc api_auth_role_add_resp_desc;
extern const struct pb_msgdesc api_auth_role_get_req_desc;
extern const struct pb_msgdesc api_auth_role_get_resp_desc;
extern const struct pb_msgdesc api_auth_user_list_req_desc;
extern const struct pb_msgdesc api_auth_user_list_resp_desc;
extern const struct pb_msgdesc api_auth_role_list_req_desc;
extern const struct pb_msgdesc api_auth_role_list_resp_desc;
extern const struct pb_msgdesc api_auth_role_delete_req_desc;
extern const struct pb_msgdesc api_auth_role_delete_resp_desc;
extern const struct pb_msgdesc api_auth_role_grant_permission_req_desc;
extern const struct pb_msgdesc api_auth_role_grant_permission_resp_desc;
extern const struct pb_msgdesc api_auth_role_revoke_permission_req_desc;
extern const struct pb_msgdesc api_auth_role_revoke_permission_resp_desc;
/* v3lockpb */
extern const struct pb_msgdesc api_lock_req_desc;
extern const struct pb_msgdesc api_lock_resp_desc;
extern const struct pb_msgdesc api_unlock_req_desc;
extern const struct pb_msgdesc api_unlock_resp_desc;
/* v3electionpb */
extern const struct pb_msgdesc api_leader_key_desc;
extern const struct pb_msgdesc api_campaign_req_desc;
extern const struct pb_msgdesc api_campaign_resp_desc;
extern const struct pb_msgdesc api_proclaim_req_desc;
extern const struct pb_msgdesc api_proclaim_resp_desc;
extern const struct pb_msgdesc api_leader_req_desc;
extern const struct pb_msgdesc api_leader_resp_desc;
extern const struct pb_msgdesc api_resign_req_desc;
extern const struct pb_msgdesc api_resign_resp_desc;

/* ---- peer and disk messages (proto2 unless noted; see pb.h "proto2") ---- */

enum api_entry_type { API_ENTRY_NORMAL = 0, API_ENTRY_CONF_CHANGE = 1, API_ENTRY_CONF_CHANGE_V2 = 2 };

struct api_raft_entry { /* raftpb.Entry */
    int32_t Type;          /* enum api_entry_type */
    uint64_t Term;
    uint64_t Index;
    struct pb_bytes Data;  /* nullable: p == NULL = absent */
};

struct api_raft_hard_state { /* raftpb.HardState */
    uint64_t term;
    uint64_t vote;
    uint64_t commit;
};

struct api_raft_conf_state { /* raftpb.ConfState (repeated scalars unpacked) */
    uint64_t *voters;
    size_t n_voters;
    uint64_t *learners;
    size_t n_learners;
    uint64_t *voters_outgoing;
    size_t n_voters_outgoing;
    uint64_t *learners_next;
    size_t n_learners_next;
    bool auto_leave;
};

struct api_raft_snapshot_metadata { /* raftpb.SnapshotMetadata */
    struct api_raft_conf_state *conf_state; /* non-nullable: NULL = empty */
    uint64_t index;
    uint64_t term;
};

struct api_raft_snapshot { /* raftpb.Snapshot */
    struct pb_bytes data;
    struct api_raft_snapshot_metadata *metadata; /* non-nullable */
};

struct api_raft_message { /* raftpb.Message */
    int32_t type; /* MessageType */
    uint64_t to;
    uint64_t from;
    uint64_t term;
    uint64_t logTerm;
    uint64_t index;
    struct api_raft_entry *entries;
    size_t n_entries;
    uint64_t commit;
    struct api_raft_snapshot *snapshot; /* non-nullable */
    bool reject;
    uint64_t rejectHint;
    struct pb_bytes context;
};

enum api_conf_change_type {
    API_CONF_ADD_NODE = 0,
    API_CONF_REMOVE_NODE = 1,
    API_CONF_UPDATE_NODE = 2,
    API_CONF_ADD_LEARNER_NODE = 3,
};

struct api_raft_conf_change { /* raftpb.ConfChange */
    uint64_t ID;
    int32_t type; /* enum api_conf_change_type */
    uint64_t NodeID;
    struct pb_bytes context; /* etcd: the member as JSON */
};

struct api_wal_record { /* walpb.Record */
    int64_t type;
    uint32_t crc;
    struct pb_bytes data;
};

struct api_wal_snapshot { /* walpb.Snapshot */
    uint64_t index;
    uint64_t term;
};

struct api_snap_snapshot { /* snappb.snapshot: a .snap file */
    uint32_t crc;
    struct pb_bytes data;
};

struct api_metadata { /* etcdserverpb.Metadata: the WAL's metadata record */
    uint64_t NodeID;
    uint64_t ClusterID;
};

struct api_v2_request { /* etcdserverpb.Request (v2; etcd 3.4 still publishes with it) */
    uint64_t ID;
    struct pb_bytes Method; /* non-nullable strings: set p (even to "") */
    struct pb_bytes Path;
    struct pb_bytes Val;
    bool Dir;
    struct pb_bytes PrevValue;
    uint64_t PrevIndex;
    bool PrevExist; /* nullable */
    bool has_PrevExist;
    int64_t Expiration;
    bool Wait;
    uint64_t Since;
    bool Recursive;
    bool Sorted;
    bool Quorum;
    int64_t Time;
    bool Stream;
    bool Refresh; /* nullable */
    bool has_Refresh;
};

struct api_request_header { /* etcdserverpb.RequestHeader (proto3) */
    uint64_t ID;
    struct pb_bytes username;
    uint64_t auth_revision;
};

struct api_internal_authenticate_req { /* etcdserverpb.InternalAuthenticateRequest (proto3) */
    struct pb_bytes name;
    struct pb_bytes password;
    struct pb_bytes simple_token;
};

/* etcdserverpb.InternalRaftRequest (proto3): what a raft entry's Data holds. */
struct api_internal_raft_req {
    uint64_t ID;
    struct api_v2_request *v2;
    struct api_range_req *range;
    struct api_put_req *put;
    struct api_delete_req *delete_range;
    struct api_txn_req *txn;
    struct api_compaction_req *compaction;
    struct api_lease_grant_req *lease_grant;
    struct api_lease_revoke_req *lease_revoke;
    struct api_alarm_req *alarm;
    struct api_lease_checkpoint_req *lease_checkpoint;
    struct api_request_header *header;
    struct api_auth_enable_req *auth_enable;
    struct api_auth_disable_req *auth_disable;
    struct api_internal_authenticate_req *authenticate;
    struct api_auth_user_add_req *auth_user_add;
    struct api_auth_user_delete_req *auth_user_delete;
    struct api_auth_user_get_req *auth_user_get;
    struct api_auth_user_change_password_req *auth_user_change_password;
    struct api_auth_user_grant_role_req *auth_user_grant_role;
    struct api_auth_user_revoke_role_req *auth_user_revoke_role;
    struct api_auth_user_list_req *auth_user_list;
    struct api_auth_role_list_req *auth_role_list;
    struct api_auth_role_add_req *auth_role_add;
    struct api_auth_role_delete_req *auth_role_delete;
    struct api_auth_role_get_req *auth_role_get;
    struct api_auth_role_grant_permission_req *auth_role_grant_permission;
    struct api_auth_role_revoke_permission_req *auth_role_revoke_permission;
};

extern const struct pb_msgdesc api_raft_entry_desc;
extern const struct pb_msgdesc api_raft_hard_state_desc;
extern const struct pb_msgdesc api_raft_conf_state_desc;
extern const struct pb_msgdesc api_raft_snapshot_metadata_desc;
extern const struct pb_msgdesc api_raft_snapshot_desc;
extern const struct pb_msgdesc api_raft_message_desc;
extern const struct pb_msgdesc api_raft_conf_change_desc;
extern const struct pb_msgdesc api_wal_record_desc;
extern const struct pb_msgdesc api_wal_snapshot_desc;
extern const struct pb_msgdesc api_snap_snapshot_desc;
extern const struct pb_msgdesc api_metadata_desc;
extern const struct pb_msgdesc api_v2_request_desc;
extern const struct pb_msgdesc api_request_header_desc;
extern const struct pb_msgdesc api_internal_authenticate_req_desc;
extern const struct pb_msgdesc api_internal_raft_req_desc;

/* ---- leasepb (what the backend's lease bucket stores) ---- */

struct api_lease_pb { /* leasepb.Lease */
    int64_t ID;
    int64_t TTL;
    int64_t RemainingTTL;
};

extern const struct pb_msgdesc api_lease_pb_desc;

#endif
