/* err.h - every error code the server can return, in one X-macro table, with
 * the gRPC status code and the exact message etcd 3.4 sends
 * (etcdserver/api/v3rpc/rpctypes/error.go).  Functions return 0 on success or
 * -ERR_x; err_grpc_code()/err_msg() turn that into a gRPC status. */
#ifndef ETCD_ERR_H
#define ETCD_ERR_H

/* gRPC status codes (grpc/codes) */
enum grpc_code {
    GRPC_OK = 0,
    GRPC_CANCELLED = 1,
    GRPC_UNKNOWN = 2,
    GRPC_INVALID_ARGUMENT = 3,
    GRPC_DEADLINE_EXCEEDED = 4,
    GRPC_NOT_FOUND = 5,
    GRPC_ALREADY_EXISTS = 6,
    GRPC_PERMISSION_DENIED = 7,
    GRPC_RESOURCE_EXHAUSTED = 8,
    GRPC_FAILED_PRECONDITION = 9,
    GRPC_ABORTED = 10,
    GRPC_OUT_OF_RANGE = 11,
    GRPC_UNIMPLEMENTED = 12,
    GRPC_INTERNAL = 13,
    GRPC_UNAVAILABLE = 14,
    GRPC_DATA_LOSS = 15,
    GRPC_UNAUTHENTICATED = 16,
};

/*  name                 gRPC code                 message */
#define ERR_TABLE(X)                                                                         \
    X(NOMEM, GRPC_RESOURCE_EXHAUSTED, "etcdserver: out of memory")                           \
    X(BADPROTO, GRPC_INTERNAL, "grpc: error unmarshalling request: unexpected EOF")          \
    X(EMPTY_KEY, GRPC_INVALID_ARGUMENT, "etcdserver: key is not provided")                   \
    X(KEY_NOT_FOUND, GRPC_INVALID_ARGUMENT, "etcdserver: key not found")                     \
    X(VALUE_PROVIDED, GRPC_INVALID_ARGUMENT, "etcdserver: value is provided")                \
    X(LEASE_PROVIDED, GRPC_INVALID_ARGUMENT, "etcdserver: lease is provided")                \
    X(TOO_MANY_OPS, GRPC_INVALID_ARGUMENT, "etcdserver: too many operations in txn request") \
    X(DUPLICATE_KEY, GRPC_INVALID_ARGUMENT, "etcdserver: duplicate key given in txn request") \
    X(COMPACTED, GRPC_OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted") \
    X(FUTURE_REV, GRPC_OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision") \
    X(NO_SPACE, GRPC_RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded")       \
    X(LEASE_NOT_FOUND, GRPC_NOT_FOUND, "etcdserver: requested lease not found")              \
    X(LEASE_EXIST, GRPC_FAILED_PRECONDITION, "etcdserver: lease already exists")             \
    X(LEASE_TTL_TOO_LARGE, GRPC_OUT_OF_RANGE, "etcdserver: too large lease TTL")             \
    X(WATCH_CANCELED, GRPC_CANCELLED, "etcdserver: watch canceled")                          \
    X(MEMBER_EXIST, GRPC_FAILED_PRECONDITION, "etcdserver: member ID already exist")         \
    X(PEER_URL_EXIST, GRPC_FAILED_PRECONDITION, "etcdserver: Peer URLs already exists")      \
    X(MEMBER_BAD_URLS, GRPC_INVALID_ARGUMENT, "etcdserver: given member URLs are invalid")   \
    X(MEMBER_NOT_FOUND, GRPC_NOT_FOUND, "etcdserver: member not found")                      \
    X(REQUEST_TOO_LARGE, GRPC_INVALID_ARGUMENT, "etcdserver: request is too large")          \
    X(TOO_MANY_REQUESTS, GRPC_RESOURCE_EXHAUSTED, "etcdserver: too many requests")           \
    X(AUTH_NOT_ENABLED, GRPC_FAILED_PRECONDITION, "etcdserver: authentication is not enabled") \
    X(PERMISSION_DENIED, GRPC_PERMISSION_DENIED, "etcdserver: permission denied")            \
    X(INVALID_AUTH_TOKEN, GRPC_UNAUTHENTICATED, "etcdserver: invalid auth token")            \
    X(NO_LEADER, GRPC_UNAVAILABLE, "etcdserver: no leader")                                  \
    X(NOT_LEADER, GRPC_FAILED_PRECONDITION, "etcdserver: not leader")                       \
    X(NOT_CAPABLE, GRPC_UNAVAILABLE, "etcdserver: not capable")                              \
    X(STOPPED, GRPC_UNAVAILABLE, "etcdserver: server stopped")                               \
    X(TIMEOUT, GRPC_UNAVAILABLE, "etcdserver: request timed out")                            \
    X(CORRUPT, GRPC_DATA_LOSS, "etcdserver: corrupt cluster")

enum err_code {
    ERR_NONE = 0,
#define ERR_ENUM(name, code, msg) ERR_##name,
    ERR_TABLE(ERR_ENUM)
#undef ERR_ENUM
    ERR__COUNT
};

/* e is a positive ERR_x or its negation; unknown codes give UNKNOWN. */
static inline enum grpc_code err_grpc_code(int e)
{
    static const enum grpc_code codes[] = {
        GRPC_OK,
#define ERR_CODE(name, code, msg) code,
        ERR_TABLE(ERR_CODE)
#undef ERR_CODE
    };
    if (e < 0)
        e = -e;
    return e < ERR__COUNT ? codes[e] : GRPC_UNKNOWN;
}

static inline const char *err_msg(int e)
{
    static const char *const msgs[] = {
        "",
#define ERR_MSG(name, code, msg) msg,
        ERR_TABLE(ERR_MSG)
#undef ERR_MSG
    };
    if (e < 0)
        e = -e;
    return e < ERR__COUNT ? msgs[e] : "unknown error";
}

#endif
