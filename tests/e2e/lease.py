"""lease.py - leases through Debian's etcdctl and python3-etcd3: grant,
attach, expiry deleting attached keys, keep-alive, revoke, time-to-live and
list, and etcd's answers for unknown leases, compared with real etcd."""
import re
import time

import etcd3

from harness import OUR_BIN, REAL_ETCD, Server, check, eq, etcdctl, test


def lease_session(srv):
    """The same lease commands against one server; IDs normalized."""
    out = []

    def run(*args):
        rc, o, errs = etcdctl(srv.endpoint, *args)
        o = re.sub(rb'"(id|ID|ttl|TTL)":\d+', rb'"\1":N', o)
        # etcd lists a lease's keys in Go map order, which is random
        o = re.sub(rb"attached keys\(\[([^]]*)\]\)",
                   lambda m: b"attached keys([" + b" ".join(sorted(m.group(1).split())) + b"])", o)
        o = re.sub(rb'"keys":\[([^]]*)\]', lambda m: b'"keys":[' + b",".join(sorted(m.group(1).split(b","))) + b"]", o)
        out.append((args[0], rc, re.sub(rb"[0-9a-f]{16}", b"ID", o), errs))
        return o

    lid = run("lease", "grant", "100").split()[1].decode()
    run("put", "--lease=" + lid, "lk1", "a")
    run("put", "--lease=" + lid, "lk2", "b")
    run("lease", "timetolive", lid, "--keys")
    run("lease", "list")
    run("lease", "keep-alive", "--once", lid)
    run("put", "lk1", "detached")
    run("lease", "timetolive", lid, "--keys", "-w", "json")
    run("lease", "revoke", lid)
    run("get", "lk", "--prefix")
    run("lease", "revoke", lid)
    run("lease", "timetolive", lid)
    run("lease", "keep-alive", "--once", lid)
    run("put", "--lease=1234", "x", "y")
    run("lease", "grant", "9000000001")
    run("lease", "list")
    return out


@test
def lease_commands_match_real_etcd():
    results = []
    for binary in (OUR_BIN, REAL_ETCD):
        srv = Server(binary)
        try:
            results.append(lease_session(srv))
        finally:
            srv.stop()
    ours, real = results
    for o, r in zip(ours, real):
        # revisions in json headers can differ by nothing here; TTL seconds may tick
        eq(o, r, "etcdctl %s" % (o[0],))


@test
def lease_expiry_deletes_keys_and_keepalive_keeps_them():
    srv = Server(OUR_BIN)
    try:
        c = etcd3.client(host="127.0.0.1", port=srv.cport)
        short = c.lease(2)
        kept = c.lease(2)
        c.put("/svc/short", "1", lease=short)
        c.put("/svc/kept", "1", lease=kept)
        deadline = time.time() + 8
        gone = False
        while time.time() < deadline:
            kept.refresh()
            if c.get("/svc/short")[0] is None:
                gone = True
                break
            time.sleep(0.5)
        check(gone, "key with an expired 2 s lease is still there")
        eq(c.get("/svc/kept")[0], b"1", "kept-alive key vanished")
        check(kept.remaining_ttl > 0)
        eq(short.remaining_ttl, -1)
        kept.revoke()
        eq(c.get("/svc/kept")[0], None)
        c.close()
    finally:
        srv.stop()


@test
def leases_survive_restart():
    srv = Server(OUR_BIN)
    try:
        c = etcd3.client(host="127.0.0.1", port=srv.cport)
        l = c.lease(60)
        c.put("/r/k", "v", lease=l)
        c.close()
        srv.kill()
        srv.start()
        c = etcd3.client(host="127.0.0.1", port=srv.cport)
        eq(c.get("/r/k")[0], b"v")
        ttl = c.get_lease_info(l.id)
        check(ttl.TTL > 50 and list(ttl.keys) == [b"/r/k"], ttl)
        c.revoke_lease(l.id)
        eq(c.get("/r/k")[0], None)
        c.close()
    finally:
        srv.stop()
