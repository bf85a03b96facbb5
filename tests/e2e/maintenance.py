"""maintenance.py - HashKV equal to real etcd's for the same history,
defrag, and snapshots both ways: `etcdctl snapshot save` from our server
restored by Debian's etcdctl and served by real etcd 3.4.23, and the
reverse."""
import json
import os
import shutil
import subprocess
import tempfile
import time

from harness import ETCDCTL, OUR_BIN, REAL_ETCD, Server, check, ctl_env, eq, etcdctl, test

HISTORY = [
    ("put", "a", "1"), ("put", "b", "2"), ("put", "a", "3"), ("del", "b"),
    ("put", "c", "4"), ("compaction", "3"), ("put", "d", "5"), ("del", "a"), ("put", "e", "6"),
]


def write_history(endpoint):
    for step in HISTORY:
        eq(etcdctl(endpoint, *step)[0], 0, "step %r" % (step,))


def hashkv(endpoint, rev=0):
    rc, out, errs = etcdctl(endpoint, "endpoint", "hashkv", "--rev", str(rev), "-w", "json")
    eq(rc, 0, repr(errs))
    h = json.loads(out)[0]["HashKV"]
    return h["hash"], h.get("compact_revision"), h["header"]["revision"]


def dump(endpoint):
    rc, out, _ = etcdctl(endpoint, "get", "", "--from-key", "-w", "json")
    j = json.loads(out)
    return j["header"]["revision"], [(kv["key"], kv.get("value"), kv["create_revision"], kv["mod_revision"],
                                      kv["version"]) for kv in j.get("kvs", [])]


@test
def hashkv_and_defrag_match_real_etcd():
    got = []
    for binary in (OUR_BIN, REAL_ETCD):
        srv = Server(binary)
        try:
            write_history(srv.endpoint)
            hs = [hashkv(srv.endpoint, r) for r in (0, 5, 7)]
            eq(etcdctl(srv.endpoint, "defrag")[0], 0)
            hs.append(hashkv(srv.endpoint))
            errs = [etcdctl(srv.endpoint, "endpoint", "hashkv", "--rev", r)[2] for r in ("2", "100")]
            got.append((hs, errs))
        finally:
            srv.stop()
    eq(got[0], got[1])


def restore(snapfile, data):
    r = subprocess.run([ETCDCTL, "snapshot", "restore", snapfile, "--data-dir", data, "--name", "default",
                        "--initial-cluster", "default=http://127.0.0.1:2380",
                        "--initial-advertise-peer-urls", "http://127.0.0.1:2380"],
                       capture_output=True, env=ctl_env(), timeout=60)
    eq(r.returncode, 0, r.stderr.decode())


@test
def snapshots_move_both_ways_with_real_etcd():
    tmp = tempfile.mkdtemp()
    try:
        for src, dst in ((OUR_BIN, REAL_ETCD), (REAL_ETCD, OUR_BIN)):
            snap = os.path.join(tmp, "snap.db")
            data = os.path.join(tmp, "restored")
            shutil.rmtree(data, ignore_errors=True)
            a = Server(src)
            try:
                write_history(a.endpoint)
                want = dump(a.endpoint)
                want_hash = hashkv(a.endpoint)[0]
                rc, _, errs = etcdctl(a.endpoint, "snapshot", "save", snap)
                eq(rc, 0, repr(errs))
            finally:
                a.stop()
            r = subprocess.run([ETCDCTL, "snapshot", "status", snap, "-w", "json"], capture_output=True,
                               env=ctl_env(), timeout=30)
            eq(r.returncode, 0, r.stderr.decode())
            eq(json.loads(r.stdout)["revision"], want[0])
            restore(snap, data)
            b = Server(dst, data=data)
            try:
                eq(dump(b.endpoint), want, "%s -> %s" % (os.path.basename(src), os.path.basename(dst)))
                eq(hashkv(b.endpoint)[0], want_hash)
                eq(etcdctl(b.endpoint, "put", "after", "restore")[0], 0)
            finally:
                b.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@test
def restored_membership_comes_from_the_snapshot():
    """A data dir Debian's etcdctl restored for another cluster (name, token)
    still holds the old member in the db's members bucket; like etcd, the
    membership comes from the .snap's v2 store and the WAL."""
    tmp = tempfile.mkdtemp()
    try:
        snap, data = os.path.join(tmp, "snap.db"), os.path.join(tmp, "restored")
        a = Server(OUR_BIN)
        try:
            eq(etcdctl(a.endpoint, "put", "k", "v")[0], 0)
            eq(etcdctl(a.endpoint, "snapshot", "save", snap)[0], 0)
        finally:
            a.stop()
        r = subprocess.run([ETCDCTL, "snapshot", "restore", snap, "--data-dir", data, "--name", "other",
                            "--initial-cluster", "other=http://127.0.0.1:2380",
                            "--initial-cluster-token", "other-token",
                            "--initial-advertise-peer-urls", "http://127.0.0.1:2380"],
                           capture_output=True, env=ctl_env(), timeout=60)
        eq(r.returncode, 0, r.stderr.decode())
        want = []
        for binary in (REAL_ETCD, OUR_BIN):
            d = os.path.join(tmp, "copy")
            shutil.rmtree(d, ignore_errors=True)
            shutil.copytree(data, d)
            b = Server(binary, data=d, name="other")
            try:
                rc, out, _ = etcdctl(b.endpoint, "member", "list")
                eq(rc, 0)
                check(b", started, other, http://127.0.0.1:2380, http://" in out, out)
                want.append(out.split(b",")[0])
                eq(etcdctl(b.endpoint, "get", "k", "--print-value-only")[1], b"v\n")
            finally:
                b.stop()
        eq(want[0], want[1], "member IDs differ")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@test
def quota_raises_nospace_and_disarm_recovers():
    srv = Server(OUR_BIN, extra=["--quota-backend-bytes=300000"])
    try:
        big = os.urandom(40000).hex().encode()
        mid = json.loads(etcdctl(srv.endpoint, "member", "list", "-w", "json")[1])["members"][0]["ID"]
        alarm = b"memberID:%d alarm:NOSPACE \n" % mid
        errs = []
        for i in range(15):
            rc, _, e = etcdctl(srv.endpoint, "put", "big%d" % i, input=big)
            errs += e
        check("Error: etcdserver: mvcc: database space exceeded" in errs, errs)
        rc, out, _ = etcdctl(srv.endpoint, "alarm", "list")
        eq(out, alarm)
        eq(etcdctl(srv.endpoint, "get", "big0", "--print-value-only")[1], big + b"\n")  # reads go on
        eq(etcdctl(srv.endpoint, "put", "x", "y")[2], ["Error: etcdserver: mvcc: database space exceeded"])
        eq(etcdctl(srv.endpoint, "del", "big", "--prefix")[0], 0)  # deletes go on
        rev = json.loads(etcdctl(srv.endpoint, "get", "x", "-w", "json")[1])["header"]["revision"]
        eq(etcdctl(srv.endpoint, "compaction", str(rev))[0], 0)
        eq(etcdctl(srv.endpoint, "defrag")[0], 0)
        eq(etcdctl(srv.endpoint, "alarm", "disarm")[1], alarm)
        eq(etcdctl(srv.endpoint, "alarm", "list")[1], b"")
        eq(etcdctl(srv.endpoint, "put", "x", "y")[1], b"OK\n")
        # the alarm state is durable: raise it again and restart
        for i in range(15):
            etcdctl(srv.endpoint, "put", "again%d" % i, input=big)
        srv.kill()
        srv.start()
        eq(etcdctl(srv.endpoint, "alarm", "list")[1], alarm)
    finally:
        srv.stop()


@test
def periodic_auto_compaction_keeps_the_retention_window():
    srv = Server(OUR_BIN, extra=["--auto-compaction-mode=periodic", "--auto-compaction-retention=2s"])
    try:
        t0 = time.time()
        i = 0
        while time.time() - t0 < 4.5:
            eq(etcdctl(srv.endpoint, "put", "ac", str(i))[0], 0)
            i += 1
            time.sleep(0.1)
        rc, _, errs = etcdctl(srv.endpoint, "get", "ac", "--rev", "2")
        eq(errs, ["Error: etcdserver: mvcc: required revision has been compacted"])
        # history inside the window is still there
        rev = json.loads(etcdctl(srv.endpoint, "get", "ac", "-w", "json")[1])["header"]["revision"]
        eq(etcdctl(srv.endpoint, "get", "ac", "--rev", str(rev - 3))[0], 0)
        check("completed auto periodic compaction" in srv.read_log())
    finally:
        srv.stop()
