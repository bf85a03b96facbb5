"""kv_compare.py - the KV, Cluster and Maintenance commands of Debian's
etcdctl 3.4.23 run against our server and against real etcd 3.4.23, step by
step, comparing stdout, the Error: lines and exit codes."""
import re

from harness import REAL_ETCD, OUR_BIN, Server, etcdctl, eq, test, check

TXN_SUCCESS = b"""value("foo") = "bar2"

put txnkey yes
get foo

put txnkey no

"""
TXN_FAILURE = b"""mod("foo") > "1000"
version("foo2") = "1"

put t1 a

put t2 b
del foo2
get t1

"""
TXN_MULTI_CMP = b"""create("foo2") != "0"
lease("foo") = "0"
value("zoo") < "zzz"

get zoo --prefix

"""
TXN_DUP = b"""

put dup 1
put dup 2

"""

# Each step: etcdctl arguments (and stdin).  Revision numbers line up on both
# servers because the same writes happen in the same order.
STEPS = [
    (["put", "foo", "bar"], None),
    (["put", "foo", "bar2", "--prev-kv"], None),
    (["put", "foo2", "x"], None),
    (["put", "foo3", "y"], None),
    (["put", "zoo", "z"], None),
    (["put", "bin", "\x01\x02"], None),
    (["put", "stdinkey"], b"from stdin"),
    (["get", "foo"], None),
    (["get", "foo", "-w", "json"], None),
    (["get", "foo", "--prefix"], None),
    (["get", "foo", "--prefix", "--limit", "2"], None),
    (["get", "foo", "--prefix", "--limit", "2", "-w", "json"], None),
    (["get", "--from-key", "foo2"], None),
    (["get", "", "--from-key", "--keys-only"], None),
    (["get", "foo", "--prefix", "--sort-by=MODIFY", "--order=DESCEND"], None),
    (["get", "foo", "--prefix", "--sort-by=VALUE", "--order=ASCEND"], None),
    (["get", "foo", "--prefix", "--sort-by=CREATE"], None),
    (["get", "foo", "--prefix", "--sort-by=VERSION", "--order=DESCEND", "-w", "json"], None),
    (["get", "foo", "--prefix", "--sort-by=KEY", "--order=DESCEND"], None),
    (["get", "foo", "--rev", "2"], None),
    (["get", "foo", "--rev", "3", "-w", "json"], None),
    (["get", "foo", "--prefix", "--print-value-only"], None),
    (["get", "foo", "--prefix", "--count-only", "-w", "json"], None),
    (["get", "foo", "--prefix", "--keys-only", "-w", "json"], None),
    (["get", "foo", "--consistency=s"], None),
    (["get", "foo", "-w", "fields"], None),
    (["get", "foo", "-w", "protobuf"], None),
    (["get", "foo", "--prefix", "--hex"], None),
    (["get", "foo", "foo3"], None),
    (["get", "bin", "-w", "json"], None),
    (["get", "nothere"], None),
    (["get", "nothere", "-w", "json"], None),
    (["del", "foo3"], None),
    (["del", "nothere"], None),
    (["del", "foo", "--prefix", "--prev-kv"], None),
    (["del", "a", "--from-key", "-w", "json"], None),
    (["put", "foo", "bar2"], None),
    (["put", "foo2", "x"], None),
    (["put", "zoo", "z"], None),
    (["txn"], TXN_SUCCESS),
    (["txn", "-w", "json"], TXN_FAILURE),
    (["txn", "-w", "json"], TXN_MULTI_CMP),
    (["txn"], TXN_DUP),
    (["get", "", "--from-key", "-w", "json"], None),
    (["compaction", "3"], None),
    (["compaction", "3"], None),
    (["get", "foo", "--rev", "2"], None),
    (["get", "foo", "--rev", "100000"], None),
    (["compaction", "100000"], None),
    (["put", "", "x"], None),
    (["get", ""], None),
    (["put", "k", "v", "--lease", "1234"], None),
    (["put", "foo", "--ignore-value"], None),
    (["put", "nokey", "--ignore-value"], None),
    (["put", "foo", "v", "--ignore-lease"], None),
    (["get", "foo", "-w", "json"], None),
    (["member", "list"], None),
    (["member", "list", "-w", "json"], None),
    (["member", "list", "-w", "table"], None),
    (["endpoint", "status", "-w", "json"], None),
    (["endpoint", "status", "-w", "table"], None),
    (["endpoint", "status"], None),
    (["endpoint", "health"], None),
]


def normalize(out, srv):
    s = out.decode(errors="replace")
    s = s.replace(srv.endpoint, "ENDPOINT")
    s = re.sub(r'"dbSize(InUse)?":\d+', '"dbSize":N', s)
    s = re.sub(r" *\d+(\.\d+)? [kMG]?B", " SIZE", s)
    s = re.sub(r"took = [0-9.]+[mµn]?s", "took = T", s)
    return s


def run_steps(srv):
    return [(rc, normalize(out, srv), errs) for rc, out, errs in
            (etcdctl(srv.endpoint, *args, input=stdin) for args, stdin in STEPS)]


@test
def kv_commands_match_real_etcd():
    real = Server(REAL_ETCD)
    try:
        want = run_steps(real)
    finally:
        real.stop()
    ours = Server(OUR_BIN)
    try:
        got = run_steps(ours)
        check(ours.alive(), "server died")
    finally:
        ours.stop()
    eq(len(got), len(want))
    for (args, _), g, w in zip(STEPS, got, want):
        eq(g, w, "etcdctl %s" % " ".join(args))
    # the comparison means something: most steps printed, some failed
    check(sum(1 for rc, out, _ in want if out) > 45, "too few outputs")
    check(sum(1 for rc, _, errs in want if rc and errs) >= 8, "too few error cases")


@test
def txn_too_many_ops_and_big_request():
    ops = b"\n" + b"".join(b"put k%d v\n" % i for i in range(129)) + b"\n\n"
    big = b"x" * (1536 * 1024 + 10)
    results = []
    for binary in (OUR_BIN, REAL_ETCD):
        srv = Server(binary)
        try:
            results.append([
                etcdctl(srv.endpoint, "txn", input=ops)[0::2],
                etcdctl(srv.endpoint, "put", "big", input=big)[0::2],
                etcdctl(srv.endpoint, "put", "ok", input=b"x" * (1024 * 1024))[0::2],
                etcdctl(srv.endpoint, "get", "ok", "--print-value-only")[1] == b"x" * (1024 * 1024) + b"\n",
            ])
        finally:
            srv.stop()
    eq(results[0], results[1])
    check(results[0][3], "1 MiB value did not round-trip")
