/* tests/test_pb.c - unit tests for pb.c and the api.c tables.
 *
 * Known-answer vectors are encodings of etcd 3.4's messages made by protoc
 * and Google's protobuf runtime (regenerate with tests/pb_vectors.py, which
 * rewrites the marked block below): each must decode to the expected C values
 * and re-encode to the same bytes.  Then hostile input: every truncation,
 * overlong varints, lengths past the input, depth bombs, bad wire types,
 * arena and allocator failure; and the merge rules for repeated, singular and
 * oneof fields.  It does not test gRPC framing or what the fields mean. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../pb.c"

#include "../api.h"

/* ---- generated vectors (tests/pb_vectors.py) ---- */
/* etcdserverpb.RangeRequest (protoc, python3-etcd3 agrees): range_req_full */
static const uint8_t vec_range_req_full[] = {
    0x0a, 0x03, 0x66, 0x6f, 0x6f, 0x12, 0x03, 0x66, 0x6f, 0x70, 0x18, 0x0a,
    0x20, 0x87, 0xad, 0x4b, 0x28, 0x02, 0x30, 0x03, 0x38, 0x01, 0x40, 0x01,
    0x48, 0x01, 0x50, 0x01, 0x58, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20, 0x60,
    0x03, 0x68, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
};
/* etcdserverpb.RangeRequest (protoc, python3-etcd3 agrees): range_req_neg_enum */
static const uint8_t vec_range_req_neg_enum[] = {
    0x0a, 0x01, 0x6b, 0x18, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0x01, 0x28, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0x01,
};
/* etcdserverpb.TxnRequest (protoc, python3-etcd3 agrees): txn_req_nested */
static const uint8_t vec_txn_req_nested[] = {
    0x0a, 0x05, 0x1a, 0x01, 0x61, 0x20, 0x00, 0x0a, 0x09, 0x08, 0x01, 0x10,
    0x01, 0x1a, 0x01, 0x62, 0x28, 0x05, 0x0a, 0x09, 0x08, 0x02, 0x10, 0x02,
    0x1a, 0x01, 0x63, 0x30, 0x06, 0x0a, 0x0d, 0x08, 0x03, 0x10, 0x03, 0x1a,
    0x01, 0x64, 0x3a, 0x00, 0x82, 0x04, 0x01, 0x65, 0x0a, 0x07, 0x10, 0x04,
    0x1a, 0x01, 0x66, 0x40, 0x07, 0x12, 0x13, 0x12, 0x11, 0x0a, 0x02, 0x6b,
    0x31, 0x12, 0x02, 0x76, 0x31, 0x18, 0xb4, 0x24, 0x20, 0x01, 0x28, 0x01,
    0x30, 0x01, 0x12, 0x0c, 0x0a, 0x0a, 0x0a, 0x02, 0x6b, 0x32, 0x12, 0x02,
    0x6b, 0x33, 0x18, 0x01, 0x12, 0x08, 0x1a, 0x06, 0x0a, 0x02, 0x6b, 0x34,
    0x18, 0x01, 0x12, 0x1a, 0x22, 0x18, 0x0a, 0x0a, 0x08, 0x01, 0x10, 0x02,
    0x1a, 0x02, 0x69, 0x6e, 0x30, 0x09, 0x12, 0x0a, 0x12, 0x08, 0x0a, 0x02,
    0x69, 0x6b, 0x12, 0x02, 0x69, 0x76, 0x1a, 0x05, 0x0a, 0x03, 0x0a, 0x01,
    0x7a,
};
/* etcdserverpb.RangeResponse (protoc, python3-etcd3 agrees): range_resp */
static const uint8_t vec_range_resp[] = {
    0x0a, 0x1a, 0x08, 0xab, 0x93, 0x9e, 0xab, 0xb4, 0xa4, 0xc0, 0xf7, 0xcd,
    0x01, 0x10, 0xcd, 0xd2, 0x91, 0x8b, 0xd2, 0xb8, 0x81, 0xcf, 0x8e, 0x01,
    0x18, 0x64, 0x20, 0x07, 0x12, 0x18, 0x0a, 0x02, 0x6b, 0x31, 0x10, 0x02,
    0x18, 0x03, 0x20, 0x02, 0x2a, 0x02, 0x76, 0x31, 0x30, 0xcd, 0xf8, 0xac,
    0xd9, 0xa1, 0x87, 0xdf, 0xa6, 0x69, 0x12, 0x0a, 0x0a, 0x02, 0x6b, 0x32,
    0x10, 0x04, 0x18, 0x04, 0x20, 0x01, 0x12, 0xd5, 0x01, 0x0a, 0x02, 0x6b,
    0x33, 0x10, 0x05, 0x18, 0x63, 0x20, 0x11, 0x2a, 0xc8, 0x01, 0x78, 0x78,
    0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78,
    0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78,
    0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78,
    0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78,
    0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78,
    0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78,
    0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78,
    0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78,
    0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78,
    0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78,
    0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78,
    0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78,
    0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78,
    0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78,
    0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78,
    0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78,
    0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x18, 0x01, 0x20, 0x2a,
};
/* etcdserverpb.PutResponse (protoc, python3-etcd3 agrees): put_resp_prev */
static const uint8_t vec_put_resp_prev[] = {
    0x0a, 0x1a, 0x08, 0xab, 0x93, 0x9e, 0xab, 0xb4, 0xa4, 0xc0, 0xf7, 0xcd,
    0x01, 0x10, 0xcd, 0xd2, 0x91, 0x8b, 0xd2, 0xb8, 0x81, 0xcf, 0x8e, 0x01,
    0x18, 0x05, 0x20, 0x07, 0x12, 0x0e, 0x0a, 0x02, 0x70, 0x6b, 0x10, 0x03,
    0x18, 0x04, 0x20, 0x02, 0x2a, 0x02, 0x70, 0x76,
};
/* etcdserverpb.PutResponse (protoc, python3-etcd3 agrees): put_resp_empty_header */
static const uint8_t vec_put_resp_empty_header[] = {
    0x0a, 0x00,
};
/* etcdserverpb.TxnResponse (protoc, python3-etcd3 agrees): txn_resp */
static const uint8_t vec_txn_resp[] = {
    0x0a, 0x1a, 0x08, 0xab, 0x93, 0x9e, 0xab, 0xb4, 0xa4, 0xc0, 0xf7, 0xcd,
    0x01, 0x10, 0xcd, 0xd2, 0x91, 0x8b, 0xd2, 0xb8, 0x81, 0xcf, 0x8e, 0x01,
    0x18, 0x09, 0x20, 0x07, 0x10, 0x01, 0x1a, 0x2e, 0x0a, 0x2c, 0x0a, 0x1a,
    0x08, 0xab, 0x93, 0x9e, 0xab, 0xb4, 0xa4, 0xc0, 0xf7, 0xcd, 0x01, 0x10,
    0xcd, 0xd2, 0x91, 0x8b, 0xd2, 0xb8, 0x81, 0xcf, 0x8e, 0x01, 0x18, 0x09,
    0x20, 0x07, 0x12, 0x0c, 0x0a, 0x01, 0x61, 0x10, 0x01, 0x18, 0x01, 0x20,
    0x01, 0x2a, 0x01, 0x31, 0x20, 0x01, 0x1a, 0x1e, 0x12, 0x1c, 0x0a, 0x1a,
    0x08, 0xab, 0x93, 0x9e, 0xab, 0xb4, 0xa4, 0xc0, 0xf7, 0xcd, 0x01, 0x10,
    0xcd, 0xd2, 0x91, 0x8b, 0xd2, 0xb8, 0x81, 0xcf, 0x8e, 0x01, 0x18, 0x09,
    0x20, 0x07, 0x1a, 0x3e, 0x1a, 0x3c, 0x0a, 0x1a, 0x08, 0xab, 0x93, 0x9e,
    0xab, 0xb4, 0xa4, 0xc0, 0xf7, 0xcd, 0x01, 0x10, 0xcd, 0xd2, 0x91, 0x8b,
    0xd2, 0xb8, 0x81, 0xcf, 0x8e, 0x01, 0x18, 0x09, 0x20, 0x07, 0x10, 0x02,
    0x1a, 0x0d, 0x0a, 0x02, 0x64, 0x31, 0x10, 0x01, 0x18, 0x02, 0x20, 0x01,
    0x2a, 0x01, 0x78, 0x1a, 0x0d, 0x0a, 0x02, 0x64, 0x32, 0x10, 0x01, 0x18,
    0x03, 0x20, 0x02, 0x2a, 0x01, 0x79, 0x1a, 0x1e, 0x22, 0x1c, 0x0a, 0x1a,
    0x08, 0xab, 0x93, 0x9e, 0xab, 0xb4, 0xa4, 0xc0, 0xf7, 0xcd, 0x01, 0x10,
    0xcd, 0xd2, 0x91, 0x8b, 0xd2, 0xb8, 0x81, 0xcf, 0x8e, 0x01, 0x18, 0x09,
    0x20, 0x07,
};
/* etcdserverpb.StatusResponse (protoc): status_resp */
static const uint8_t vec_status_resp[] = {
    0x0a, 0x1a, 0x08, 0xab, 0x93, 0x9e, 0xab, 0xb4, 0xa4, 0xc0, 0xf7, 0xcd,
    0x01, 0x10, 0xcd, 0xd2, 0x91, 0x8b, 0xd2, 0xb8, 0x81, 0xcf, 0x8e, 0x01,
    0x18, 0x4d, 0x20, 0x07, 0x12, 0x06, 0x33, 0x2e, 0x34, 0x2e, 0x32, 0x33,
    0x18, 0x80, 0xa0, 0x01, 0x20, 0xcd, 0xd2, 0x91, 0x8b, 0xd2, 0xb8, 0x81,
    0xcf, 0x8e, 0x01, 0x28, 0xe8, 0x07, 0x30, 0x07, 0x38, 0xe7, 0x07, 0x42,
    0x07, 0x4e, 0x4f, 0x53, 0x50, 0x41, 0x43, 0x45, 0x42, 0x07, 0x43, 0x4f,
    0x52, 0x52, 0x55, 0x50, 0x54, 0x48, 0x80, 0x80, 0x01, 0x50, 0x01,
};
/* etcdserverpb.MemberListResponse (protoc): member_list_resp */
static const uint8_t vec_member_list_resp[] = {
    0x0a, 0x1a, 0x08, 0xab, 0x93, 0x9e, 0xab, 0xb4, 0xa4, 0xc0, 0xf7, 0xcd,
    0x01, 0x10, 0xcd, 0xd2, 0x91, 0x8b, 0xd2, 0xb8, 0x81, 0xcf, 0x8e, 0x01,
    0x18, 0x03, 0x20, 0x07, 0x12, 0x57, 0x08, 0xcd, 0xd2, 0x91, 0x8b, 0xd2,
    0xb8, 0x81, 0xcf, 0x8e, 0x01, 0x12, 0x06, 0x69, 0x6e, 0x66, 0x72, 0x61,
    0x31, 0x1a, 0x15, 0x68, 0x74, 0x74, 0x70, 0x3a, 0x2f, 0x2f, 0x31, 0x32,
    0x37, 0x2e, 0x30, 0x2e, 0x30, 0x2e, 0x31, 0x3a, 0x32, 0x33, 0x38, 0x30,
    0x22, 0x15, 0x68, 0x74, 0x74, 0x70, 0x3a, 0x2f, 0x2f, 0x31, 0x32, 0x37,
    0x2e, 0x30, 0x2e, 0x30, 0x2e, 0x31, 0x3a, 0x32, 0x33, 0x37, 0x39, 0x22,
    0x14, 0x68, 0x74, 0x74, 0x70, 0x3a, 0x2f, 0x2f, 0x31, 0x30, 0x2e, 0x30,
    0x2e, 0x30, 0x2e, 0x31, 0x3a, 0x32, 0x33, 0x37, 0x39, 0x12, 0x1b, 0x08,
    0x02, 0x1a, 0x15, 0x68, 0x74, 0x74, 0x70, 0x3a, 0x2f, 0x2f, 0x31, 0x32,
    0x37, 0x2e, 0x30, 0x2e, 0x30, 0x2e, 0x32, 0x3a, 0x32, 0x33, 0x38, 0x30,
    0x28, 0x01,
};
/* etcdserverpb.WatchRequest (protoc): watch_req_create */
static const uint8_t vec_watch_req_create[] = {
    0x0a, 0x14, 0x0a, 0x01, 0x77, 0x12, 0x01, 0x00, 0x18, 0x11, 0x20, 0x01,
    0x2a, 0x02, 0x00, 0x01, 0x30, 0x01, 0x38, 0x03, 0x40, 0x01,
};
/* etcdserverpb.WatchRequest (protoc): watch_req_cancel */
static const uint8_t vec_watch_req_cancel[] = {
    0x12, 0x02, 0x08, 0x03,
};
/* etcdserverpb.WatchRequest (protoc): watch_req_progress */
static const uint8_t vec_watch_req_progress[] = {
    0x1a, 0x00,
};
/* etcdserverpb.WatchResponse (protoc): watch_resp */
static const uint8_t vec_watch_resp[] = {
    0x0a, 0x1a, 0x08, 0xab, 0x93, 0x9e, 0xab, 0xb4, 0xa4, 0xc0, 0xf7, 0xcd,
    0x01, 0x10, 0xcd, 0xd2, 0x91, 0x8b, 0xd2, 0xb8, 0x81, 0xcf, 0x8e, 0x01,
    0x18, 0x14, 0x20, 0x07, 0x10, 0x03, 0x18, 0x01, 0x20, 0x01, 0x28, 0x0f,
    0x32, 0x2a, 0x6d, 0x76, 0x63, 0x63, 0x3a, 0x20, 0x72, 0x65, 0x71, 0x75,
    0x69, 0x72, 0x65, 0x64, 0x20, 0x72, 0x65, 0x76, 0x69, 0x73, 0x69, 0x6f,
    0x6e, 0x20, 0x68, 0x61, 0x73, 0x20, 0x62, 0x65, 0x65, 0x6e, 0x20, 0x63,
    0x6f, 0x6d, 0x70, 0x61, 0x63, 0x74, 0x65, 0x64, 0x38, 0x01, 0x5a, 0x22,
    0x12, 0x0f, 0x0a, 0x02, 0x77, 0x31, 0x10, 0x0a, 0x18, 0x14, 0x20, 0x03,
    0x2a, 0x03, 0x6e, 0x65, 0x77, 0x1a, 0x0f, 0x0a, 0x02, 0x77, 0x31, 0x10,
    0x0a, 0x18, 0x13, 0x20, 0x02, 0x2a, 0x03, 0x6f, 0x6c, 0x64, 0x5a, 0x0a,
    0x08, 0x01, 0x12, 0x06, 0x0a, 0x02, 0x77, 0x32, 0x18, 0x14,
};
/* etcdserverpb.LeaseKeepAliveResponse (protoc, python3-etcd3 agrees): lease_keepalive_resp */
static const uint8_t vec_lease_keepalive_resp[] = {
    0x0a, 0x1a, 0x08, 0xab, 0x93, 0x9e, 0xab, 0xb4, 0xa4, 0xc0, 0xf7, 0xcd,
    0x01, 0x10, 0xcd, 0xd2, 0x91, 0x8b, 0xd2, 0xb8, 0x81, 0xcf, 0x8e, 0x01,
    0x18, 0x04, 0x20, 0x07, 0x10, 0xcd, 0xf8, 0xac, 0xd9, 0xa1, 0x87, 0xdf,
    0xa6, 0x69, 0x18, 0x3c,
};
/* etcdserverpb.LeaseTimeToLiveResponse (protoc, python3-etcd3 agrees): lease_ttl_resp */
static const uint8_t vec_lease_ttl_resp[] = {
    0x0a, 0x1a, 0x08, 0xab, 0x93, 0x9e, 0xab, 0xb4, 0xa4, 0xc0, 0xf7, 0xcd,
    0x01, 0x10, 0xcd, 0xd2, 0x91, 0x8b, 0xd2, 0xb8, 0x81, 0xcf, 0x8e, 0x01,
    0x18, 0x04, 0x20, 0x07, 0x10, 0x05, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0x01, 0x20, 0x64, 0x2a, 0x01, 0x61, 0x2a, 0x00,
    0x2a, 0x03, 0x63, 0x63, 0x63,
};
/* etcdserverpb.LeaseLeasesResponse (protoc, python3-etcd3 agrees): lease_leases_resp */
static const uint8_t vec_lease_leases_resp[] = {
    0x0a, 0x1a, 0x08, 0xab, 0x93, 0x9e, 0xab, 0xb4, 0xa4, 0xc0, 0xf7, 0xcd,
    0x01, 0x10, 0xcd, 0xd2, 0x91, 0x8b, 0xd2, 0xb8, 0x81, 0xcf, 0x8e, 0x01,
    0x18, 0x04, 0x20, 0x07, 0x12, 0x02, 0x08, 0x01, 0x12, 0x02, 0x08, 0x02,
};
/* etcdserverpb.AuthRoleGrantPermissionRequest (protoc, python3-etcd3 agrees): auth_role_grant_perm_req */
static const uint8_t vec_auth_role_grant_perm_req[] = {
    0x0a, 0x04, 0x72, 0x6f, 0x6f, 0x74, 0x12, 0x0a, 0x08, 0x02, 0x12, 0x02,
    0x2f, 0x61, 0x1a, 0x02, 0x2f, 0x62,
};
/* etcdserverpb.AuthUserAddRequest (protoc): auth_user_add_req */
static const uint8_t vec_auth_user_add_req[] = {
    0x0a, 0x01, 0x75, 0x12, 0x01, 0x70, 0x1a, 0x02, 0x08, 0x01,
};
/* etcdserverpb.AuthRoleGetResponse (protoc, python3-etcd3 agrees): auth_role_get_resp */
static const uint8_t vec_auth_role_get_resp[] = {
    0x0a, 0x1a, 0x08, 0xab, 0x93, 0x9e, 0xab, 0xb4, 0xa4, 0xc0, 0xf7, 0xcd,
    0x01, 0x10, 0xcd, 0xd2, 0x91, 0x8b, 0xd2, 0xb8, 0x81, 0xcf, 0x8e, 0x01,
    0x18, 0x02, 0x20, 0x07, 0x12, 0x03, 0x12, 0x01, 0x6b, 0x12, 0x08, 0x08,
    0x01, 0x12, 0x01, 0x61, 0x1a, 0x01, 0x62,
};
/* etcdserverpb.HashKVResponse (protoc, python3-etcd3 agrees): hash_kv_resp */
static const uint8_t vec_hash_kv_resp[] = {
    0x0a, 0x1a, 0x08, 0xab, 0x93, 0x9e, 0xab, 0xb4, 0xa4, 0xc0, 0xf7, 0xcd,
    0x01, 0x10, 0xcd, 0xd2, 0x91, 0x8b, 0xd2, 0xb8, 0x81, 0xcf, 0x8e, 0x01,
    0x18, 0x08, 0x20, 0x07, 0x10, 0xef, 0xfd, 0xb6, 0xf5, 0x0d, 0x18, 0x06,
};
/* etcdserverpb.AlarmResponse (protoc, python3-etcd3 agrees): alarm_resp */
static const uint8_t vec_alarm_resp[] = {
    0x0a, 0x1a, 0x08, 0xab, 0x93, 0x9e, 0xab, 0xb4, 0xa4, 0xc0, 0xf7, 0xcd,
    0x01, 0x10, 0xcd, 0xd2, 0x91, 0x8b, 0xd2, 0xb8, 0x81, 0xcf, 0x8e, 0x01,
    0x18, 0x08, 0x20, 0x07, 0x12, 0x04, 0x08, 0x09, 0x10, 0x01,
};
/* etcdserverpb.MemberAddResponse (protoc): member_add_resp */
static const uint8_t vec_member_add_resp[] = {
    0x0a, 0x1a, 0x08, 0xab, 0x93, 0x9e, 0xab, 0xb4, 0xa4, 0xc0, 0xf7, 0xcd,
    0x01, 0x10, 0xcd, 0xd2, 0x91, 0x8b, 0xd2, 0xb8, 0x81, 0xcf, 0x8e, 0x01,
    0x18, 0x08, 0x20, 0x07, 0x12, 0x13, 0x08, 0x0a, 0x1a, 0x0d, 0x68, 0x74,
    0x74, 0x70, 0x3a, 0x2f, 0x2f, 0x70, 0x3a, 0x32, 0x33, 0x38, 0x30, 0x28,
    0x01, 0x1a, 0x13, 0x08, 0x0a, 0x1a, 0x0d, 0x68, 0x74, 0x74, 0x70, 0x3a,
    0x2f, 0x2f, 0x70, 0x3a, 0x32, 0x33, 0x38, 0x30, 0x28, 0x01, 0x1a, 0x14,
    0x08, 0x0b, 0x12, 0x01, 0x6e, 0x22, 0x0d, 0x68, 0x74, 0x74, 0x70, 0x3a,
    0x2f, 0x2f, 0x63, 0x3a, 0x32, 0x33, 0x37, 0x39,
};
/* v3lockpb.LockResponse (protoc): lock_resp */
static const uint8_t vec_lock_resp[] = {
    0x0a, 0x1a, 0x08, 0xab, 0x93, 0x9e, 0xab, 0xb4, 0xa4, 0xc0, 0xf7, 0xcd,
    0x01, 0x10, 0xcd, 0xd2, 0x91, 0x8b, 0xd2, 0xb8, 0x81, 0xcf, 0x8e, 0x01,
    0x18, 0x1e, 0x20, 0x07, 0x12, 0x15, 0x6c, 0x6f, 0x63, 0x6b, 0x2f, 0x36,
    0x39, 0x34, 0x64, 0x37, 0x63, 0x33, 0x61, 0x31, 0x62, 0x32, 0x62, 0x33,
    0x63, 0x34, 0x64,
};
/* v3electionpb.CampaignResponse (protoc): campaign_resp */
static const uint8_t vec_campaign_resp[] = {
    0x0a, 0x1a, 0x08, 0xab, 0x93, 0x9e, 0xab, 0xb4, 0xa4, 0xc0, 0xf7, 0xcd,
    0x01, 0x10, 0xcd, 0xd2, 0x91, 0x8b, 0xd2, 0xb8, 0x81, 0xcf, 0x8e, 0x01,
    0x18, 0x1f, 0x20, 0x07, 0x12, 0x0c, 0x0a, 0x01, 0x65, 0x12, 0x03, 0x65,
    0x2f, 0x31, 0x18, 0x1f, 0x20, 0x01,
};
/* v3electionpb.LeaderResponse (protoc): leader_resp */
static const uint8_t vec_leader_resp[] = {
    0x0a, 0x1a, 0x08, 0xab, 0x93, 0x9e, 0xab, 0xb4, 0xa4, 0xc0, 0xf7, 0xcd,
    0x01, 0x10, 0xcd, 0xd2, 0x91, 0x8b, 0xd2, 0xb8, 0x81, 0xcf, 0x8e, 0x01,
    0x18, 0x20, 0x20, 0x07, 0x12, 0x11, 0x0a, 0x03, 0x65, 0x2f, 0x31, 0x10,
    0x1f, 0x18, 0x1f, 0x20, 0x01, 0x2a, 0x02, 0x6d, 0x65, 0x30, 0x01,
};
/* ---- end of generated vectors ---- */

#define VEC(name, desc) { #name, &desc, vec_##name, sizeof vec_##name }

struct vec {
    const char *name;
    const struct pb_msgdesc *d;
    const uint8_t *p;
    size_t n;
};

static const struct vec vecs[] = {
    VEC(range_req_full, api_range_req_desc),
    VEC(range_req_neg_enum, api_range_req_desc),
    VEC(txn_req_nested, api_txn_req_desc),
    VEC(range_resp, api_range_resp_desc),
    VEC(put_resp_prev, api_put_resp_desc),
    VEC(put_resp_empty_header, api_put_resp_desc),
    VEC(txn_resp, api_txn_resp_desc),
    VEC(status_resp, api_status_resp_desc),
    VEC(member_list_resp, api_member_list_resp_desc),
    VEC(watch_req_create, api_watch_req_desc),
    VEC(watch_req_cancel, api_watch_req_desc),
    VEC(watch_req_progress, api_watch_req_desc),
    VEC(watch_resp, api_watch_resp_desc),
    VEC(lease_keepalive_resp, api_lease_keep_alive_resp_desc),
    VEC(lease_ttl_resp, api_lease_time_to_live_resp_desc),
    VEC(lease_leases_resp, api_lease_leases_resp_desc),
    VEC(auth_role_grant_perm_req, api_auth_role_grant_permission_req_desc),
    VEC(auth_user_add_req, api_auth_user_add_req_desc),
    VEC(auth_role_get_resp, api_auth_role_get_resp_desc),
    VEC(hash_kv_resp, api_hash_kv_resp_desc),
    VEC(alarm_resp, api_alarm_resp_desc),
    VEC(member_add_resp, api_member_add_resp_desc),
    VEC(lock_resp, api_lock_resp_desc),
    VEC(campaign_resp, api_campaign_resp_desc),
    VEC(leader_resp, api_leader_resp_desc),
};

static const struct pb_msgdesc *const all_descs[] = {
    &api_kv_desc,
    &api_event_desc,
    &api_header_desc,
    &api_range_req_desc,
    &api_range_resp_desc,
    &api_put_req_desc,
    &api_put_resp_desc,
    &api_delete_req_desc,
    &api_delete_resp_desc,
    &api_request_op_desc,
    &api_response_op_desc,
    &api_compare_desc,
    &api_txn_req_desc,
    &api_txn_resp_desc,
    &api_compaction_req_desc,
    &api_compaction_resp_desc,
    &api_member_desc,
    &api_member_list_req_desc,
    &api_member_list_resp_desc,
    &api_status_req_desc,
    &api_status_resp_desc,
    &api_watch_req_desc,
    &api_watch_create_req_desc,
    &api_watch_cancel_req_desc,
    &api_watch_progress_req_desc,
    &api_watch_resp_desc,
    &api_lease_grant_req_desc,
    &api_lease_grant_resp_desc,
    &api_lease_revoke_req_desc,
    &api_lease_revoke_resp_desc,
    &api_lease_checkpoint_desc,
    &api_lease_checkpoint_req_desc,
    &api_lease_checkpoint_resp_desc,
    &api_lease_keep_alive_req_desc,
    &api_lease_keep_alive_resp_desc,
    &api_lease_time_to_live_req_desc,
    &api_lease_time_to_live_resp_desc,
    &api_lease_leases_req_desc,
    &api_lease_status_desc,
    &api_lease_leases_resp_desc,
    &api_member_add_req_desc,
    &api_member_add_resp_desc,
    &api_member_remove_req_desc,
    &api_member_remove_resp_desc,
    &api_member_update_req_desc,
    &api_member_update_resp_desc,
    &api_member_promote_req_desc,
    &api_member_promote_resp_desc,
    &api_alarm_req_desc,
    &api_alarm_member_desc,
    &api_alarm_resp_desc,
    &api_defragment_req_desc,
    &api_defragment_resp_desc,
    &api_hash_req_desc,
    &api_hash_resp_desc,
    &api_hash_kv_req_desc,
    &api_hash_kv_resp_desc,
    &api_snapshot_req_desc,
    &api_snapshot_resp_desc,
    &api_move_leader_req_desc,
    &api_move_leader_resp_desc,
    &api_user_add_options_desc,
    &api_user_desc,
    &api_permission_desc,
    &api_role_desc,
    &api_auth_enable_req_desc,
    &api_auth_enable_resp_desc,
    &api_auth_disable_req_desc,
    &api_auth_disable_resp_desc,
    &api_authenticate_req_desc,
    &api_authenticate_resp_desc,
    &api_auth_user_add_req_desc,
    &api_auth_user_add_resp_desc,
    &api_auth_user_get_req_desc,
    &api_auth_user_get_resp_desc,
    &api_auth_user_delete_req_desc,
    &api_auth_user_delete_resp_desc,
    &api_auth_user_change_password_req_desc,
    &api_auth_user_change_password_resp_desc,
    &api_auth_user_grant_role_req_desc,
    &api_auth_user_grant_role_resp_desc,
    &api_auth_user_revoke_role_req_desc,
    &api_auth_user_revoke_role_resp_desc,
    &api_auth_role_add_req_desc,
    &api_auth_role_add_resp_desc,
    &api_auth_role_get_req_desc,
    &api_auth_role_get_resp_desc,
    &api_auth_user_list_req_desc,
    &api_auth_user_list_resp_desc,
    &api_auth_role_list_req_desc,
    &api_auth_role_list_resp_desc,
    &api_auth_role_delete_req_desc,
    &api_auth_role_delete_resp_desc,
    &api_auth_role_grant_permission_req_desc,
    &api_auth_role_grant_permission_resp_desc,
    &api_auth_role_revoke_permission_req_desc,
    &api_auth_role_revoke_permission_resp_desc,
    &api_lock_req_desc,
    &api_lock_resp_desc,
    &api_unlock_req_desc,
    &api_unlock_resp_desc,
    &api_leader_key_desc,
    &api_campaign_req_desc,
    &api_campaign_resp_desc,
    &api_proclaim_req_desc,
    &api_proclaim_resp_desc,
    &api_leader_req_desc,
    &api_leader_resp_desc,
    &api_resign_req_desc,
    &api_resign_resp_desc,
};

/* ---- helpers ---- */

#define N(a) (sizeof(a) / sizeof((a)[0]))

static struct mem_arena arena;

static int setup(void **state)
{
    (void)state;
    mem_arena_init(&arena, 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mem_fail_after(-1, 0);
    mem_arena_free(&arena);
    return 0;
}

static void *decode_ok(const struct pb_msgdesc *d, const uint8_t *p, size_t n)
{
    void *m = mem_arena_alloc(&arena, d->size);
    assert_non_null(m);
    assert_int_equal(pb_decode(d, p, n, m, &arena), PB_OK);
    return m;
}

static int decode_rc(const struct pb_msgdesc *d, const uint8_t *p, size_t n)
{
    void *m = mem_arena_alloc(&arena, d->size);
    assert_non_null(m);
    return pb_decode(d, p, n, m, &arena);
}

static void assert_encodes_to(const struct pb_msgdesc *d, const void *m, const uint8_t *p,
                              size_t n)
{
    struct mem_buf b = {0};
    assert_int_equal(pb_encoded_size(d, m), n);
    assert_int_equal(pb_encode(d, m, &b), 0);
    assert_int_equal(b.len, n);
    if (n)
        assert_memory_equal(b.data, p, n);
    mem_buf_free(&b);
}

static void assert_bytes(struct pb_bytes b, const char *s)
{
    assert_int_equal(b.len, strlen(s));
    if (b.len)
        assert_memory_equal(b.p, s, b.len);
}

static void assert_header(const struct api_header *h, int64_t rev)
{
    assert_non_null(h);
    assert_true(h->cluster_id == 0xCDEF0123456789ABull);
    assert_true(h->member_id == 0x8E9E05C52164694Dull);
    assert_int_equal(h->revision, rev);
    assert_int_equal(h->raft_term, 7);
}

static void assert_kv(const struct api_kv *kv, const char *key, const char *value, int64_t cr,
                      int64_t mr, int64_t ver, int64_t lease)
{
    assert_non_null(kv);
    assert_bytes(kv->key, key);
    assert_bytes(kv->value, value);
    assert_int_equal(kv->create_revision, cr);
    assert_int_equal(kv->mod_revision, mr);
    assert_int_equal(kv->version, ver);
    assert_int_equal(kv->lease, lease);
}

/* ---- the tables ---- */

static void test_tables_well_formed(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(all_descs); i++) {
        const struct pb_msgdesc *d = all_descs[i];
        assert_non_null(d->name);
        assert_true(d->nfields <= PB_MAX_FIELDS);
        for (size_t j = 0; j < d->nfields; j++) {
            const struct pb_field *f = &d->fields[j];
            assert_true(f->num >= 1 && f->num <= PB_FIELDNUM_MAX);
            if (j > 0)
                assert_true(d->fields[j - 1].num < f->num); /* encoder order */
            assert_true(f->type >= PB_BOOL && f->type <= PB_MSG);
            assert_true((f->sub != NULL) == (f->type == PB_MSG));
            assert_false((f->flags & PB_REPEATED) && (f->flags & PB_ONEOF));
            if (f->flags & PB_REPEATED) {
                assert_true(f->offset + sizeof(void *) <= d->size);
                assert_true(f->count_offset + sizeof(size_t) <= d->size);
            } else if (f->type == PB_MSG) {
                assert_true(f->offset + sizeof(void *) <= d->size);
            } else {
                assert_true(f->offset + elem_size(f) <= d->size);
            }
            if ((f->flags & PB_ONEOF) && f->type != PB_MSG)
                assert_true(f->count_offset + sizeof(bool) <= d->size);
        }
        /* an all-zero message is empty on the wire and decodes from nothing */
        void *m = mem_arena_zalloc(&arena, d->size);
        assert_non_null(m);
        assert_int_equal(pb_encoded_size(d, m), 0);
        assert_int_equal(pb_decode(d, NULL, 0, m, &arena), PB_OK);
    }
}

/* ---- known-answer vectors ---- */

static void test_vectors_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(vecs); i++) {
        const struct vec *v = &vecs[i];
        void *m = decode_ok(v->d, v->p, v->n);
        assert_encodes_to(v->d, m, v->p, v->n);

        uint8_t *dst = malloc(v->n);
        assert_non_null(dst);
        pb_encode_to(v->d, m, dst, pb_encoded_size(v->d, m));
        assert_memory_equal(dst, v->p, v->n);
        free(dst);
    }
}

/* Every proper prefix: an error or a clean decode, never a read past the end
 * (each prefix is copied to a heap block of exactly its size for ASan). */
static void test_vectors_truncated(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(vecs); i++) {
        const struct vec *v = &vecs[i];
        for (size_t n = 0; n < v->n; n++) {
            uint8_t *p = malloc(n ? n : 1);
            assert_non_null(p);
            memcpy(p, v->p, n);
            void *m = mem_arena_alloc(&arena, v->d->size);
            assert_non_null(m);
            int rc = pb_decode(v->d, p, n, m, &arena);
            assert_true(rc == PB_OK || rc == PB_ERR_TRUNCATED || rc == PB_ERR_WIRETYPE ||
                        rc == PB_ERR_FIELDNUM);
            if (rc == PB_OK) { /* whatever decoded must survive a round trip */
                struct mem_buf b = {0};
                assert_int_equal(pb_encode(v->d, m, &b), 0);
                void *m2 = decode_ok(v->d, b.data, b.len);
                assert_encodes_to(v->d, m2, b.data, b.len);
                mem_buf_free(&b);
            }
            free(p);
            mem_arena_reset(&arena);
        }
    }
}

static void test_range_req_full(void **state)
{
    (void)state;
    const struct api_range_req *r =
        decode_ok(&api_range_req_desc, vec_range_req_full, sizeof vec_range_req_full);
    assert_bytes(r->key, "foo");
    assert_bytes(r->range_end, "fop");
    assert_int_equal(r->limit, 10);
    assert_int_equal(r->revision, 1234567);
    assert_int_equal(r->sort_order, API_SORT_DESCEND);
    assert_int_equal(r->sort_target, API_SORT_MOD);
    assert_true(r->serializable && r->keys_only && r->count_only);
    assert_int_equal(r->min_mod_revision, 1);
    assert_int_equal(r->max_mod_revision, (int64_t)1 << 40);
    assert_int_equal(r->min_create_revision, 3);
    assert_int_equal(r->max_create_revision, -1);

    const struct api_range_req *neg =
        decode_ok(&api_range_req_desc, vec_range_req_neg_enum, sizeof vec_range_req_neg_enum);
    assert_int_equal(neg->sort_order, -1); /* an int32 read from a 10-byte varint */
    assert_int_equal(neg->limit, -2);
}

static void test_txn_req_nested(void **state)
{
    (void)state;
    const struct api_txn_req *t =
        decode_ok(&api_txn_req_desc, vec_txn_req_nested, sizeof vec_txn_req_nested);
    assert_int_equal(t->n_compare, 5);
    const struct api_compare *c = t->compare;
    assert_int_equal(c[0].target, API_CMP_VERSION);
    assert_true(c[0].has_version); /* version = 0, present because oneof */
    assert_int_equal(c[0].version, 0);
    assert_false(c[0].has_create_revision || c[0].has_value || c[0].has_lease);
    assert_int_equal(c[1].result, API_CMP_GREATER);
    assert_true(c[1].has_create_revision);
    assert_int_equal(c[1].create_revision, 5);
    assert_int_equal(c[2].result, API_CMP_LESS);
    assert_true(c[2].has_mod_revision);
    assert_int_equal(c[2].mod_revision, 6);
    assert_int_equal(c[3].result, API_CMP_NOT_EQUAL);
    assert_true(c[3].has_value); /* empty value, still present */
    assert_int_equal(c[3].value.len, 0);
    assert_bytes(c[3].range_end, "e");
    assert_int_equal(c[4].target, API_CMP_LEASE);
    assert_true(c[4].has_lease);
    assert_int_equal(c[4].lease, 7);
    assert_bytes(c[4].key, "f");

    assert_int_equal(t->n_success, 4);
    const struct api_put_req *put = t->success[0].request_put;
    assert_non_null(put);
    assert_null(t->success[0].request_range);
    assert_bytes(put->key, "k1");
    assert_bytes(put->value, "v1");
    assert_int_equal(put->lease, 0x1234);
    assert_true(put->prev_kv && put->ignore_value && put->ignore_lease);
    assert_non_null(t->success[1].request_range);
    assert_bytes(t->success[1].request_range->range_end, "k3");
    assert_non_null(t->success[2].request_delete_range);
    assert_true(t->success[2].request_delete_range->prev_kv);
    const struct api_txn_req *in = t->success[3].request_txn;
    assert_non_null(in);
    assert_int_equal(in->n_compare, 1);
    assert_int_equal(in->compare[0].mod_revision, 9);
    assert_int_equal(in->n_success, 1);
    assert_bytes(in->success[0].request_put->value, "iv");
    assert_int_equal(in->n_failure, 0);
    assert_int_equal(t->n_failure, 1);
    assert_bytes(t->failure[0].request_range->key, "z");
}

static void test_range_resp(void **state)
{
    (void)state;
    const struct api_range_resp *r =
        decode_ok(&api_range_resp_desc, vec_range_resp, sizeof vec_range_resp);
    assert_header(r->header, 100);
    assert_int_equal(r->n_kvs, 3);
    assert_kv(&r->kvs[0], "k1", "v1", 2, 3, 2, 0x694d7c3a1b2b3c4d);
    assert_kv(&r->kvs[1], "k2", "", 4, 4, 1, 0);
    assert_int_equal(r->kvs[2].value.len, 200);
    assert_int_equal(r->kvs[2].mod_revision, 99);
    assert_true(r->more);
    assert_int_equal(r->count, 42);
}

static void test_put_resp(void **state)
{
    (void)state;
    const struct api_put_resp *r =
        decode_ok(&api_put_resp_desc, vec_put_resp_prev, sizeof vec_put_resp_prev);
    assert_header(r->header, 5);
    assert_kv(r->prev_kv, "pk", "pv", 3, 4, 2, 0);

    r = decode_ok(&api_put_resp_desc, vec_put_resp_empty_header,
                  sizeof vec_put_resp_empty_header);
    assert_non_null(r->header); /* present though every field is zero */
    assert_int_equal(r->header->revision, 0);
    assert_null(r->prev_kv);

    /* and the encoder writes a non-NULL empty header as tag + length 0 */
    struct api_header h = {0};
    struct api_put_resp pr = {.header = &h};
    assert_encodes_to(&api_put_resp_desc, &pr, vec_put_resp_empty_header,
                      sizeof vec_put_resp_empty_header);
}

static void test_txn_resp(void **state)
{
    (void)state;
    const struct api_txn_resp *r = decode_ok(&api_txn_resp_desc, vec_txn_resp, sizeof vec_txn_resp);
    assert_header(r->header, 9);
    assert_true(r->succeeded);
    assert_int_equal(r->n_responses, 4);
    assert_int_equal(r->responses[0].response_range->n_kvs, 1);
    assert_kv(&r->responses[0].response_range->kvs[0], "a", "1", 1, 1, 1, 0);
    assert_header(r->responses[1].response_put->header, 9);
    assert_null(r->responses[1].response_put->prev_kv);
    const struct api_delete_resp *del = r->responses[2].response_delete_range;
    assert_int_equal(del->deleted, 2);
    assert_int_equal(del->n_prev_kvs, 2);
    assert_kv(&del->prev_kvs[1], "d2", "y", 1, 3, 2, 0);
    assert_header(r->responses[3].response_txn->header, 9);
    assert_false(r->responses[3].response_txn->succeeded);
}

static void test_status_resp(void **state)
{
    (void)state;
    const struct api_status_resp *s =
        decode_ok(&api_status_resp_desc, vec_status_resp, sizeof vec_status_resp);
    assert_header(s->header, 77);
    assert_bytes(s->version, "3.4.23");
    assert_int_equal(s->dbSize, 20480);
    assert_true(s->leader == 0x8E9E05C52164694Dull);
    assert_int_equal(s->raftIndex, 1000);
    assert_int_equal(s->raftTerm, 7);
    assert_int_equal(s->raftAppliedIndex, 999);
    assert_int_equal(s->n_errors, 2);
    assert_bytes(s->errors[0], "NOSPACE");
    assert_bytes(s->errors[1], "CORRUPT");
    assert_int_equal(s->dbSizeInUse, 16384);
    assert_true(s->isLearner);
}

static void test_member_resps(void **state)
{
    (void)state;
    const struct api_member_list_resp *l =
        decode_ok(&api_member_list_resp_desc, vec_member_list_resp, sizeof vec_member_list_resp);
    assert_header(l->header, 3);
    assert_int_equal(l->n_members, 2);
    assert_true(l->members[0].ID == 0x8E9E05C52164694Dull);
    assert_bytes(l->members[0].name, "infra1");
    assert_int_equal(l->members[0].n_peerURLs, 1);
    assert_bytes(l->members[0].peerURLs[0], "http://127.0.0.1:2380");
    assert_int_equal(l->members[0].n_clientURLs, 2);
    assert_bytes(l->members[0].clientURLs[1], "http://10.0.0.1:2379");
    assert_false(l->members[0].isLearner);
    assert_int_equal(l->members[1].ID, 2);
    assert_int_equal(l->members[1].name.len, 0);
    assert_int_equal(l->members[1].n_clientURLs, 0);
    assert_true(l->members[1].isLearner);

    const struct api_member_add_resp *a =
        decode_ok(&api_member_add_resp_desc, vec_member_add_resp, sizeof vec_member_add_resp);
    assert_int_equal(a->member->ID, 10);
    assert_true(a->member->isLearner);
    assert_int_equal(a->n_members, 2);
    assert_bytes(a->members[1].clientURLs[0], "http://c:2379");
}

static void test_watch(void **state)
{
    (void)state;
    const struct api_watch_req *w =
        decode_ok(&api_watch_req_desc, vec_watch_req_create, sizeof vec_watch_req_create);
    const struct api_watch_create_req *c = w->create_request;
    assert_non_null(c);
    assert_null(w->cancel_request);
    assert_null(w->progress_request);
    assert_bytes(c->key, "w");
    assert_int_equal(c->range_end.len, 1);
    assert_int_equal(c->range_end.p[0], 0);
    assert_int_equal(c->start_revision, 17);
    assert_true(c->progress_notify && c->prev_kv && c->fragment);
    assert_int_equal(c->n_filters, 2);
    assert_int_equal(c->filters[0], API_WATCH_NOPUT);
    assert_int_equal(c->filters[1], API_WATCH_NODELETE);
    assert_int_equal(c->watch_id, 3);

    w = decode_ok(&api_watch_req_desc, vec_watch_req_cancel, sizeof vec_watch_req_cancel);
    assert_int_equal(w->cancel_request->watch_id, 3);
    w = decode_ok(&api_watch_req_desc, vec_watch_req_progress, sizeof vec_watch_req_progress);
    assert_non_null(w->progress_request);
    assert_null(w->create_request);

    const struct api_watch_resp *r =
        decode_ok(&api_watch_resp_desc, vec_watch_resp, sizeof vec_watch_resp);
    assert_header(r->header, 20);
    assert_int_equal(r->watch_id, 3);
    assert_true(r->created && r->canceled && r->fragment);
    assert_int_equal(r->compact_revision, 15);
    assert_bytes(r->cancel_reason, "mvcc: required revision has been compacted");
    assert_int_equal(r->n_events, 2);
    assert_int_equal(r->events[0].type, API_EVENT_PUT);
    assert_kv(r->events[0].kv, "w1", "new", 10, 20, 3, 0);
    assert_kv(r->events[0].prev_kv, "w1", "old", 10, 19, 2, 0);
    assert_int_equal(r->events[1].type, API_EVENT_DELETE);
    assert_kv(r->events[1].kv, "w2", "", 0, 20, 0, 0);
    assert_null(r->events[1].prev_kv);
}

static void test_lease(void **state)
{
    (void)state;
    const struct api_lease_keep_alive_resp *k = decode_ok(
        &api_lease_keep_alive_resp_desc, vec_lease_keepalive_resp, sizeof vec_lease_keepalive_resp);
    assert_header(k->header, 4);
    assert_int_equal(k->ID, 0x694d7c3a1b2b3c4d);
    assert_int_equal(k->TTL, 60);

    const struct api_lease_time_to_live_resp *t = decode_ok(
        &api_lease_time_to_live_resp_desc, vec_lease_ttl_resp, sizeof vec_lease_ttl_resp);
    assert_int_equal(t->ID, 5);
    assert_int_equal(t->TTL, -1);
    assert_int_equal(t->grantedTTL, 100);
    assert_int_equal(t->n_keys, 3);
    assert_bytes(t->keys[0], "a");
    assert_bytes(t->keys[1], ""); /* an empty element still counts */
    assert_bytes(t->keys[2], "ccc");

    const struct api_lease_leases_resp *l =
        decode_ok(&api_lease_leases_resp_desc, vec_lease_leases_resp, sizeof vec_lease_leases_resp);
    assert_int_equal(l->n_leases, 2);
    assert_int_equal(l->leases[1].ID, 2);
}

static void test_auth(void **state)
{
    (void)state;
    const struct api_auth_role_grant_permission_req *g =
        decode_ok(&api_auth_role_grant_permission_req_desc, vec_auth_role_grant_perm_req,
                  sizeof vec_auth_role_grant_perm_req);
    assert_bytes(g->name, "root");
    assert_int_equal(g->perm->permType, API_PERM_READWRITE);
    assert_bytes(g->perm->key, "/a");
    assert_bytes(g->perm->range_end, "/b");

    const struct api_auth_user_add_req *u =
        decode_ok(&api_auth_user_add_req_desc, vec_auth_user_add_req, sizeof vec_auth_user_add_req);
    assert_bytes(u->name, "u");
    assert_bytes(u->password, "p");
    assert_true(u->options->no_password);

    const struct api_auth_role_get_resp *r =
        decode_ok(&api_auth_role_get_resp_desc, vec_auth_role_get_resp, sizeof vec_auth_role_get_resp);
    assert_int_equal(r->n_perm, 2);
    assert_int_equal(r->perm[0].permType, API_PERM_READ);
    assert_int_equal(r->perm[1].permType, API_PERM_WRITE);
    assert_bytes(r->perm[1].range_end, "b");
}

static void test_maintenance(void **state)
{
    (void)state;
    const struct api_hash_kv_resp *h =
        decode_ok(&api_hash_kv_resp_desc, vec_hash_kv_resp, sizeof vec_hash_kv_resp);
    assert_true(h->hash == 0xDEADBEEFu);
    assert_int_equal(h->compact_revision, 6);

    const struct api_alarm_resp *a =
        decode_ok(&api_alarm_resp_desc, vec_alarm_resp, sizeof vec_alarm_resp);
    assert_int_equal(a->n_alarms, 1);
    assert_int_equal(a->alarms[0].memberID, 9);
    assert_int_equal(a->alarms[0].alarm, API_ALARM_NOSPACE);
}

static void test_lock_election(void **state)
{
    (void)state;
    const struct api_lock_resp *l = decode_ok(&api_lock_resp_desc, vec_lock_resp, sizeof vec_lock_resp);
    assert_header(l->header, 30);
    assert_bytes(l->key, "lock/694d7c3a1b2b3c4d");

    const struct api_campaign_resp *c =
        decode_ok(&api_campaign_resp_desc, vec_campaign_resp, sizeof vec_campaign_resp);
    assert_bytes(c->leader->name, "e");
    assert_bytes(c->leader->key, "e/1");
    assert_int_equal(c->leader->rev, 31);
    assert_int_equal(c->leader->lease, 1);

    const struct api_leader_resp *r =
        decode_ok(&api_leader_resp_desc, vec_leader_resp, sizeof vec_leader_resp);
    assert_kv(r->kv, "e/1", "me", 31, 31, 1, 1);
}

/* ---- encoding from hand-built structs ---- */

static void test_encode_range_resp_by_hand(void **state)
{
    (void)state;
    static uint8_t big[200];
    memset(big, 'x', sizeof big);
    struct api_header h = {0xCDEF0123456789ABull, 0x8E9E05C52164694Dull, 100, 7};
    struct api_kv kvs[3] = {
        {{(const uint8_t *)"k1", 2}, 2, 3, 2, {(const uint8_t *)"v1", 2}, 0x694d7c3a1b2b3c4d},
        {{(const uint8_t *)"k2", 2}, 4, 4, 1, {NULL, 0}, 0},
        {{(const uint8_t *)"k3", 2}, 5, 99, 17, {big, sizeof big}, 0},
    };
    struct api_range_resp r = {&h, kvs, 3, true, 42};
    assert_encodes_to(&api_range_resp_desc, &r, vec_range_resp, sizeof vec_range_resp);
}

static void test_encode_proto3_presence(void **state)
{
    (void)state;
    /* oneof zero is written, plain zero is not; negative int32 takes 10 bytes */
    struct api_compare c = {.has_version = true, .key = {(const uint8_t *)"a", 1}};
    static const uint8_t want_c[] = {0x1a, 0x01, 'a', 0x20, 0x00};
    assert_encodes_to(&api_compare_desc, &c, want_c, sizeof want_c);

    struct api_compare cv = {.has_value = true};
    static const uint8_t want_cv[] = {0x3a, 0x00};
    assert_encodes_to(&api_compare_desc, &cv, want_cv, sizeof want_cv);

    struct api_range_req r = {.sort_order = -1};
    static const uint8_t want_r[] = {0x28, 0xff, 0xff, 0xff, 0xff, 0xff,
                                     0xff, 0xff, 0xff, 0xff, 0x01};
    assert_encodes_to(&api_range_req_desc, &r, want_r, sizeof want_r);

    struct api_watch_progress_req pr = {0};
    struct api_watch_req w = {.progress_request = &pr};
    assert_encodes_to(&api_watch_req_desc, &w, vec_watch_req_progress,
                      sizeof vec_watch_req_progress);

    /* repeated: packed scalars, empty bytes elements kept */
    int32_t filters[] = {0, 1, 0};
    struct api_watch_create_req wc = {.filters = filters, .n_filters = 3};
    static const uint8_t want_wc[] = {0x2a, 0x03, 0x00, 0x01, 0x00};
    assert_encodes_to(&api_watch_create_req_desc, &wc, want_wc, sizeof want_wc);

    struct pb_bytes keys[] = {{NULL, 0}, {(const uint8_t *)"b", 1}};
    struct api_lease_time_to_live_resp t = {.keys = keys, .n_keys = 2};
    static const uint8_t want_t[] = {0x2a, 0x00, 0x2a, 0x01, 'b'};
    assert_encodes_to(&api_lease_time_to_live_resp_desc, &t, want_t, sizeof want_t);
}

static void test_encode_appends(void **state)
{
    (void)state;
    struct mem_buf b = {0};
    assert_int_equal(mem_buf_append(&b, "GRPC!", 5), 0);
    struct api_lease_keep_alive_req k = {.ID = 1};
    assert_int_equal(pb_encode(&api_lease_keep_alive_req_desc, &k, &b), 0);
    struct api_lease_keep_alive_req zero = {0};
    assert_int_equal(pb_encode(&api_lease_keep_alive_req_desc, &zero, &b), 0);
    assert_int_equal(b.len, 7);
    assert_memory_equal(b.data, "GRPC!\x08\x01", 7);
    mem_buf_free(&b);
}

static void test_encode_oom(void **state)
{
    (void)state;
    struct api_range_resp *r = decode_ok(&api_range_resp_desc, vec_range_resp, sizeof vec_range_resp);
    struct mem_buf b = {0};
    mem_fail_after(0, 1);
    assert_int_equal(pb_encode(&api_range_resp_desc, r, &b), -1);
    assert_int_equal(pb_put_varint(&b, 1), -1);
    assert_int_equal(pb_put_tag(&b, 1, 0), -1);
    mem_fail_after(-1, 0);
    assert_int_equal(b.len, 0);
    mem_buf_free(&b);
}

/* ---- varint helpers ---- */

static void test_varints(void **state)
{
    (void)state;
    static const struct {
        uint64_t v;
        size_t n;
    } cases[] = {
        {0, 1}, {1, 1}, {127, 1}, {128, 2}, {16383, 2}, {16384, 3},
        {UINT32_MAX, 5}, {(uint64_t)1 << 63, 10}, {UINT64_MAX, 10},
    };
    for (size_t i = 0; i < N(cases); i++) {
        struct mem_buf b = {0};
        assert_int_equal(pb_varint_size(cases[i].v), cases[i].n);
        assert_int_equal(pb_put_varint(&b, cases[i].v), 0);
        assert_int_equal(b.len, cases[i].n);
        uint64_t got = 1;
        assert_int_equal(pb_get_varint(b.data, b.len, &got), cases[i].n);
        assert_true(got == cases[i].v);
        assert_int_equal(pb_get_varint(b.data, b.len - 1, &got), 0); /* truncated */
        mem_buf_free(&b);
    }
    static const uint8_t eleven[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                                     0x80, 0x80, 0x80, 0x80, 0x01};
    uint64_t v;
    assert_int_equal(pb_get_varint(eleven, sizeof eleven, &v), 0);
    assert_int_equal(pb_get_varint(NULL, 0, &v), 0);

    struct mem_buf b = {0};
    assert_int_equal(pb_put_tag(&b, PB_FIELDNUM_MAX, 2), 0);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.data, "\xfa\xff\xff\xff\x0f", 5);
    mem_buf_free(&b);
}

/* ---- hostile input ---- */

static void test_bad_varints(void **state)
{
    (void)state;
    /* limit = varint of 11 bytes */
    static const uint8_t overlong[] = {0x18, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                                       0x80, 0x80, 0x80, 0x80, 0x00};
    assert_int_equal(decode_rc(&api_range_req_desc, overlong, sizeof overlong), PB_ERR_VARINT);
    /* 10 bytes, all with the continuation bit: overlong even at the end */
    assert_int_equal(decode_rc(&api_range_req_desc, overlong, 11), PB_ERR_VARINT);
    assert_int_equal(decode_rc(&api_range_req_desc, overlong, 6), PB_ERR_TRUNCATED);
    /* an overlong tag */
    assert_int_equal(decode_rc(&api_range_req_desc, overlong + 1, sizeof overlong - 1),
                     PB_ERR_VARINT);
    /* a 10th byte carrying bits past 64 is accepted, the bits dropped */
    static const uint8_t tenth[] = {0x18, 0xff, 0xff, 0xff, 0xff, 0xff,
                                    0xff, 0xff, 0xff, 0xff, 0x7f};
    const struct api_range_req *r = decode_ok(&api_range_req_desc, tenth, sizeof tenth);
    assert_int_equal(r->limit, -1);
    /* an unknown field's overlong varint is an error too */
    static const uint8_t unk[] = {0xa0, 0x06, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                                  0x80, 0x80, 0x80, 0x80, 0x01};
    assert_int_equal(decode_rc(&api_range_req_desc, unk, sizeof unk), PB_ERR_VARINT);
}

static void test_bad_lengths(void **state)
{
    (void)state;
    static const uint8_t past[] = {0x0a, 0x05, 'a'};
    assert_int_equal(decode_rc(&api_range_req_desc, past, sizeof past), PB_ERR_TRUNCATED);
    static const uint8_t max64[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                    0xff, 0xff, 0xff, 0x01, 'a'};
    assert_int_equal(decode_rc(&api_range_req_desc, max64, sizeof max64), PB_ERR_TRUNCATED);
    /* SIZE_MAX - 1: input pointer + length would wrap */
    static const uint8_t wrap[] = {0x12, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff,
                                   0xff, 0xff, 0xff, 0x01, 'a', 'b'};
    assert_int_equal(decode_rc(&api_range_resp_desc, wrap, sizeof wrap), PB_ERR_TRUNCATED);
    /* a sub-message length past its parent's end */
    static const uint8_t sub[] = {0x0a, 0x02, 0x08, 0x05, 0x00};
    assert_int_equal(decode_rc(&api_put_resp_desc, sub, 3), PB_ERR_TRUNCATED);
    /* fixed-width unknown fields cut short */
    static const uint8_t i64[] = {0xa1, 0x06, 1, 2, 3, 4, 5, 6, 7};
    assert_int_equal(decode_rc(&api_range_req_desc, i64, sizeof i64), PB_ERR_TRUNCATED);
    static const uint8_t i32[] = {0xa5, 0x06, 1, 2, 3};
    assert_int_equal(decode_rc(&api_range_req_desc, i32, sizeof i32), PB_ERR_TRUNCATED);
    /* packed payload ending inside a varint */
    static const uint8_t packed[] = {0x2a, 0x02, 0x01, 0x80};
    assert_int_equal(decode_rc(&api_watch_create_req_desc, packed, sizeof packed),
                     PB_ERR_TRUNCATED);
}

/* TxnRequest{success: [RequestOp{request_txn: ...}]} nested levels deep:
 * two messages per level. */
static size_t build_txn_bomb(uint8_t *buf, size_t cap, int levels)
{
    size_t len = 0; /* the innermost TxnRequest is empty */
    uint8_t *end = buf + cap;
    for (int i = 0; i < levels - 1; i++) {
        uint8_t *p = end - len;
        p = put_varint_back(p, len);
        *--p = 0x22; /* RequestOp.request_txn */
        len = (size_t)(end - p);
        p = put_varint_back(p, len);
        *--p = 0x12; /* TxnRequest.success */
        len = (size_t)(end - p);
    }
    memmove(buf, end - len, len);
    return len;
}

static void test_depth_bomb(void **state)
{
    (void)state;
    static uint8_t buf[4096];
    size_t n = build_txn_bomb(buf, sizeof buf, 100);
    assert_int_equal(decode_rc(&api_txn_req_desc, buf, n), PB_ERR_DEPTH);

    /* 16 TxnRequests = 31 nested messages: within PB_MAX_DEPTH (32) */
    n = build_txn_bomb(buf, sizeof buf, (PB_MAX_DEPTH + 1) / 2);
    struct api_txn_req *t = decode_ok(&api_txn_req_desc, buf, n);
    assert_encodes_to(&api_txn_req_desc, t, buf, n);
    n = build_txn_bomb(buf, sizeof buf, (PB_MAX_DEPTH + 1) / 2 + 1);
    assert_int_equal(decode_rc(&api_txn_req_desc, buf, n), PB_ERR_DEPTH);
}

static void test_unknown_fields_skipped(void **state)
{
    (void)state;
    static const uint8_t in[] = {
        0x0a, 0x01, 'k',                         /* key */
        0xa0, 0x06, 0x96, 0x01,                  /* 100: varint */
        0xa9, 0x06, 1, 2, 3, 4, 5, 6, 7, 8,      /* 101: fixed64 */
        0xb2, 0x06, 0x03, 'x', 'y', 'z',         /* 102: bytes */
        0xbd, 0x06, 1, 2, 3, 4,                  /* 103: fixed32 */
        0xf8, 0xff, 0xff, 0xff, 0x0f, 0x01,      /* 2^29-1: varint */
        0x18, 0x05,                              /* limit */
    };
    static const uint8_t out[] = {0x0a, 0x01, 'k', 0x18, 0x05};
    const struct api_range_req *r = decode_ok(&api_range_req_desc, in, sizeof in);
    assert_bytes(r->key, "k");
    assert_int_equal(r->limit, 5);
    assert_encodes_to(&api_range_req_desc, r, out, sizeof out);
    /* and inside a repeated sub-message, where the count pass also sees them */
    static const uint8_t kvs[] = {0x12, 0x05, 0xa0, 0x06, 0x01, 0x30, 0x02, 0xa0, 0x06, 0x01};
    const struct api_range_resp *rr = decode_ok(&api_range_resp_desc, kvs, sizeof kvs);
    assert_int_equal(rr->n_kvs, 1);
    assert_int_equal(rr->kvs[0].lease, 2);
}

static void test_bad_wire_types(void **state)
{
    (void)state;
    static const struct {
        const struct pb_msgdesc *d;
        uint8_t in[6];
        size_t n;
        int rc;
    } cases[] = {
        {&api_range_req_desc, {0xa3, 0x06}, 2, PB_ERR_WIRETYPE},       /* unknown, group start */
        {&api_range_req_desc, {0xa4, 0x06}, 2, PB_ERR_WIRETYPE},       /* unknown, group end */
        {&api_range_req_desc, {0xa6, 0x06}, 2, PB_ERR_WIRETYPE},       /* wire type 6 */
        {&api_range_req_desc, {0xa7, 0x06}, 2, PB_ERR_WIRETYPE},       /* wire type 7 */
        {&api_range_req_desc, {0x0b}, 1, PB_ERR_WIRETYPE},             /* key as group */
        {&api_range_req_desc, {0x08, 0x01}, 2, PB_ERR_WIRETYPE},       /* key as varint */
        {&api_range_req_desc, {0x1a, 0x01, 0x01}, 3, PB_ERR_WIRETYPE}, /* limit, singular, len */
        {&api_range_req_desc, {0x1d, 0, 0, 0, 0}, 5, PB_ERR_WIRETYPE}, /* limit as fixed32 */
        {&api_put_resp_desc, {0x08, 0x01}, 2, PB_ERR_WIRETYPE},        /* header as varint */
        {&api_range_resp_desc, {0x10, 0x01}, 2, PB_ERR_WIRETYPE},      /* repeated msg varint */
        {&api_status_resp_desc, {0x40, 0x01}, 2, PB_ERR_WIRETYPE},     /* repeated string */
        {&api_range_req_desc, {0x00, 0x01}, 2, PB_ERR_FIELDNUM},       /* field 0 */
        {&api_range_req_desc, {0x80, 0x80, 0x80, 0x80}, 4, PB_ERR_TRUNCATED},
    };
    for (size_t i = 0; i < N(cases); i++)
        assert_int_equal(decode_rc(cases[i].d, cases[i].in, cases[i].n), cases[i].rc);
    /* field 2^29 */
    static const uint8_t big[] = {0x80, 0x80, 0x80, 0x80, 0x10, 0x00};
    assert_int_equal(decode_rc(&api_range_req_desc, big, sizeof big), PB_ERR_FIELDNUM);
    /* a wrong wire type deep inside a sub-message */
    static const uint8_t deep[] = {0x12, 0x04, 0x0a, 0x02, 0x08, 0x01};
    assert_int_equal(decode_rc(&api_txn_req_desc, deep, sizeof deep), PB_ERR_WIRETYPE);
}

static void test_arena_limit(void **state)
{
    (void)state;
    int saw_nomem = 0;
    for (size_t limit = 16;; limit += 16) {
        struct mem_arena a;
        mem_arena_init(&a, limit);
        struct api_txn_resp r;
        int rc = pb_decode(&api_txn_resp_desc, vec_txn_resp, sizeof vec_txn_resp, &r, &a);
        mem_arena_free(&a);
        if (rc == PB_OK)
            break;
        assert_int_equal(rc, PB_ERR_NOMEM);
        saw_nomem++;
    }
    assert_true(saw_nomem > 5);

    /* the allocator failing under the arena is the same error */
    for (long k = 0; k < 4; k++) {
        struct mem_arena a;
        mem_arena_init(&a, 0);
        struct api_txn_resp r;
        mem_fail_after(k, 1);
        int rc = pb_decode(&api_txn_resp_desc, vec_txn_resp, sizeof vec_txn_resp, &r, &a);
        mem_fail_after(-1, 0);
        mem_arena_free(&a);
        assert_true(rc == PB_ERR_NOMEM || rc == PB_OK);
        if (k == 0)
            assert_int_equal(rc, PB_ERR_NOMEM);
    }
}

/* ---- merge rules ---- */

static void test_repeated_split(void **state)
{
    (void)state;
    static const uint8_t in[] = {
        0x12, 0x03, 0x0a, 0x01, 'a', /* kvs[0] */
        0x18, 0x01,                  /* more */
        0x12, 0x03, 0x0a, 0x01, 'b', /* kvs[1] */
        0x0a, 0x02, 0x18, 0x09,      /* header */
        0x12, 0x00,                  /* kvs[2], empty */
        0x20, 0x03,                  /* count */
        0x12, 0x03, 0x0a, 0x01, 'c', /* kvs[3] */
    };
    const struct api_range_resp *r = decode_ok(&api_range_resp_desc, in, sizeof in);
    assert_int_equal(r->n_kvs, 4);
    assert_bytes(r->kvs[0].key, "a");
    assert_bytes(r->kvs[1].key, "b");
    assert_int_equal(r->kvs[2].key.len, 0);
    assert_bytes(r->kvs[3].key, "c");
    assert_int_equal(r->header->revision, 9);
    assert_true(r->more);
    assert_int_equal(r->count, 3);
}

static void test_packed_and_unpacked(void **state)
{
    (void)state;
    static const uint8_t in[] = {
        0x2a, 0x01, 0x00,       /* filters packed [NOPUT] */
        0x0a, 0x01, 'k',        /* key */
        0x28, 0x01,             /* filters unpacked NODELETE */
        0x2a, 0x00,             /* filters packed, empty */
        0x2a, 0x03, 0x01, 0x00, 0x01, /* filters packed [1, 0, 1] */
        0x28, 0x00,             /* filters unpacked NOPUT */
    };
    static const uint8_t out[] = {0x0a, 0x01, 'k', 0x2a, 0x06, 0, 1, 1, 0, 1, 0};
    const struct api_watch_create_req *w = decode_ok(&api_watch_create_req_desc, in, sizeof in);
    assert_int_equal(w->n_filters, 6);
    static const int32_t want[] = {0, 1, 1, 0, 1, 0};
    for (size_t i = 0; i < N(want); i++)
        assert_int_equal(w->filters[i], want[i]);
    assert_encodes_to(&api_watch_create_req_desc, w, out, sizeof out);

    /* packed elements that are multi-byte and negative */
    static const uint8_t neg[] = {0x2a, 0x0b, 0xff, 0xff, 0xff, 0xff, 0xff,
                                  0xff, 0xff, 0xff, 0xff, 0x01, 0x02};
    w = decode_ok(&api_watch_create_req_desc, neg, sizeof neg);
    assert_int_equal(w->n_filters, 2);
    assert_int_equal(w->filters[0], -1);
    assert_int_equal(w->filters[1], 2);
    assert_encodes_to(&api_watch_create_req_desc, w, neg, sizeof neg);
}

static void test_singular_merge(void **state)
{
    (void)state;
    /* scalar twice: later wins; header twice: merged */
    static const uint8_t in[] = {
        0x0a, 0x02, 0x18, 0x05,       /* header{revision 5} */
        0x12, 0x03, 0x0a, 0x01, 'a',  /* prev_kv{key a} */
        0x0a, 0x04, 0x20, 0x07, 0x18, 0x06, /* header{raft_term 7, revision 6} */
        0x12, 0x02, 0x30, 0x04,       /* prev_kv{lease 4} */
    };
    const struct api_put_resp *r = decode_ok(&api_put_resp_desc, in, sizeof in);
    assert_int_equal(r->header->revision, 6);
    assert_int_equal(r->header->raft_term, 7);
    assert_bytes(r->prev_kv->key, "a");
    assert_int_equal(r->prev_kv->lease, 4);

    static const uint8_t keys[] = {0x0a, 0x01, 'a', 0x0a, 0x02, 'b', 'c'};
    const struct api_range_req *rr = decode_ok(&api_range_req_desc, keys, sizeof keys);
    assert_bytes(rr->key, "bc");

    /* a singular message twice: its repeated fields concatenate */
    static const uint8_t mem[] = {
        0x12, 0x05, 0x1a, 0x01, 'x', 0x08, 0x01, /* member{peerURLs [x], ID 1} */
        0x12, 0x06, 0x1a, 0x01, 'y', 0x1a, 0x01, 'z', /* member{peerURLs [y, z]} */
    };
    const struct api_member_add_resp *m = decode_ok(&api_member_add_resp_desc, mem, sizeof mem);
    assert_int_equal(m->member->ID, 1);
    assert_int_equal(m->member->n_peerURLs, 3);
    assert_bytes(m->member->peerURLs[0], "x");
    assert_bytes(m->member->peerURLs[1], "y");
    assert_bytes(m->member->peerURLs[2], "z");
}

static void test_oneof(void **state)
{
    (void)state;
    /* compare: version then value then create_revision 0 */
    static const uint8_t cmp[] = {0x20, 0x03, 0x3a, 0x01, 'v', 0x28, 0x00};
    const struct api_compare *c = decode_ok(&api_compare_desc, cmp, sizeof cmp);
    assert_false(c->has_version);
    assert_int_equal(c->version, 0);
    assert_false(c->has_value);
    assert_int_equal(c->value.len, 0);
    assert_true(c->has_create_revision);
    assert_int_equal(c->create_revision, 0);
    static const uint8_t cmp_out[] = {0x28, 0x00};
    assert_encodes_to(&api_compare_desc, c, cmp_out, sizeof cmp_out);

    /* request op: range then put; put twice is replaced, not merged */
    static const uint8_t op[] = {
        0x0a, 0x03, 0x0a, 0x01, 'r',  /* request_range{key r} */
        0x12, 0x03, 0x0a, 0x01, 'a',  /* request_put{key a} */
        0x12, 0x03, 0x12, 0x01, 'b',  /* request_put{value b} */
    };
    const struct api_request_op *o = decode_ok(&api_request_op_desc, op, sizeof op);
    assert_null(o->request_range);
    assert_non_null(o->request_put);
    assert_int_equal(o->request_put->key.len, 0);
    assert_bytes(o->request_put->value, "b");
    assert_encodes_to(&api_request_op_desc, o, op + 10, 5);

    /* watch request: create then cancel */
    static const uint8_t wr[] = {0x0a, 0x03, 0x0a, 0x01, 'k', 0x12, 0x02, 0x08, 0x04};
    const struct api_watch_req *w = decode_ok(&api_watch_req_desc, wr, sizeof wr);
    assert_null(w->create_request);
    assert_int_equal(w->cancel_request->watch_id, 4);
}

static void test_scalar_truncation(void **state)
{
    (void)state;
    /* int32 and enum keep the low 32 bits; bool is any non-zero */
    static const uint8_t in[] = {0x28, 0x81, 0x80, 0x80, 0x80, 0x10, /* 2^32 + 1 */
                                 0x38, 0x02,                         /* serializable 2 */
                                 0x40, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                                 0x80, 0x01}; /* keys_only 2^63 */
    const struct api_range_req *r = decode_ok(&api_range_req_desc, in, sizeof in);
    assert_int_equal(r->sort_order, 1);
    assert_true(r->serializable);
    assert_true(r->keys_only);

    static const uint8_t h[] = {0x10, 0x85, 0x80, 0x80, 0x80, 0x20}; /* hash 2^33 + 5 */
    const struct api_hash_resp *hr = decode_ok(&api_hash_resp_desc, h, sizeof h);
    assert_int_equal(hr->hash, 5);
}

/* gogoproto's proto2 encodings (raftpb, walpb, Request): non-nullable
 * scalars and messages always written, nullable bytes iff non-nil,
 * repeated scalars unpacked.  Expected bytes as Go's etcd writes them. */
static void test_proto2(void **state)
{
    (void)state;
    struct mem_buf b = {0};
    struct api_raft_entry e = {.Term = 1, .Index = 2};
    assert_int_equal(pb_encode(&api_raft_entry_desc, &e, &b), 0);
    static const uint8_t want_e[] = {0x08, 0x00, 0x10, 0x01, 0x18, 0x02};
    assert_int_equal(b.len, sizeof want_e);
    assert_memory_equal(b.data, want_e, sizeof want_e);
    b.len = 0;
    e.Data = (struct pb_bytes){(const uint8_t *)"", 0}; /* empty, not nil */
    assert_int_equal(pb_encode(&api_raft_entry_desc, &e, &b), 0);
    assert_int_equal(b.len, sizeof want_e + 2);
    assert_memory_equal(b.data + sizeof want_e, "\x22\x00", 2);

    b.len = 0;
    uint64_t voters[] = {1, 300};
    struct api_raft_conf_state cs = {.voters = voters, .n_voters = 2};
    assert_int_equal(pb_encode(&api_raft_conf_state_desc, &cs, &b), 0);
    static const uint8_t want_cs[] = {0x08, 0x01, 0x08, 0xac, 0x02, 0x28, 0x00};
    assert_int_equal(b.len, sizeof want_cs);
    assert_memory_equal(b.data, want_cs, sizeof want_cs);

    b.len = 0;
    struct api_raft_snapshot snap = {0}; /* NULL metadata: still written, empty */
    assert_int_equal(pb_encode(&api_raft_snapshot_desc, &snap, &b), 0);
    assert_int_equal(b.len, 2);
    assert_memory_equal(b.data, "\x12\x00", 2);

    /* decode what we wrote: presence of empty Data survives */
    struct mem_arena a;
    mem_arena_init(&a, 0);
    static const uint8_t in[] = {0x08, 0x00, 0x10, 0x01, 0x18, 0x02, 0x22, 0x00};
    struct api_raft_entry d;
    assert_int_equal(pb_decode(&api_raft_entry_desc, in, sizeof in, &d, &a), 0);
    assert_non_null(d.Data.p);
    assert_int_equal(d.Data.len, 0);
    assert_int_equal(d.Index, 2);
    mem_arena_free(&a);
    mem_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tables_well_formed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vectors_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vectors_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range_req_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_req_nested, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range_resp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_resp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_resp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_resp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_member_resps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_maintenance, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_election, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encode_range_resp_by_hand, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encode_proto3_presence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encode_appends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encode_oom, setup, teardown),
        cmocka_unit_test_setup_teardown(test_varints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_varints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_lengths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_depth_bomb, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_fields_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_wire_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_arena_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repeated_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_packed_and_unpacked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_singular_merge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oneof, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scalar_truncation, setup, teardown),
        cmocka_unit_test(test_proto2),
    };
    return cmocka_run_group_tests_name("pb", tests, NULL, NULL);
}
