/* member.h - cluster membership as etcd 3.4 keeps it: members (id, name,
 * peer and client URLs, learner flag), member and cluster IDs derived as
 * etcd derives them, and the JSON forms etcd writes (raft ConfChange
 * context, the backend's `members` bucket, v2 attribute records). */
#ifndef ETCD_MEMBER_H
#define ETCD_MEMBER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mem.h"

#define MEMBER_MAX_URLS 16

struct member {
    uint64_t id;
    char name[256];
    char *peer_urls[MEMBER_MAX_URLS]; /* owned (mem_alloc) */
    size_t n_peer_urls;
    char *client_urls[MEMBER_MAX_URLS]; /* owned */
    size_t n_client_urls;
    bool is_learner;
};

/* sha1(sorted peer URLs + token [+ unix time when adding to a running
 * cluster, now > 0]), first 8 bytes big-endian: etcd's NewMember. */
uint64_t member_id(const char *const *peer_urls, size_t n, const char *token, int64_t now);
/* sha1 over the sorted member IDs (8 bytes big-endian each): etcd's genID. */
uint64_t member_cluster_id(const uint64_t *ids, size_t n);

/* Fills m (zeroing it first) with copies of the strings.  0, -1 on OOM or
 * too many URLs. */
int member_init(struct member *m, uint64_t id, const char *name, const char *const *peer_urls,
                size_t n_peer, const char *const *client_urls, size_t n_client)
    __attribute__((warn_unused_result));
void member_free(struct member *m);

/* Appends etcd's JSON for the whole member ({"id":..,"peerURLs":[..],
 * "name":..,"clientURLs":[..]}, omitempty rules as Go's). 0 or -1 (OOM). */
int member_to_json(const struct member *m, struct mem_buf *out) __attribute__((warn_unused_result));
/* Appends the attributes JSON etcd publishes ({"name":..,"clientURLs":[..]}). */
int member_attrs_json(const struct member *m, struct mem_buf *out)
    __attribute__((warn_unused_result));
/* Appends the raft attributes etcd's v2 store keeps ({"peerURLs":[..]},
 * "isLearner" when set). */
int member_raft_attrs_json(const struct member *m, struct mem_buf *out)
    __attribute__((warn_unused_result));
/* Builds a member from the v2 store's records: raftAttributes JSON and
 * attributes JSON (NULL when the member never published).  0, or -1. */
int member_from_v2(struct member *m, uint64_t id, const char *raft, size_t rlen, const char *attrs,
                   size_t alen) __attribute__((warn_unused_result));
/* Parses member_to_json's form (or its attributes part into an existing
 * member when attrs_only).  0, or -1 on malformed input / OOM. */
int member_from_json(struct member *m, const char *p, size_t n, bool attrs_only)
    __attribute__((warn_unused_result));

#endif
