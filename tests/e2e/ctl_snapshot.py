"""ctl_snapshot.py - our `etcdctl snapshot save|status|restore` and
`etcdctl defrag --data-dir` (our binary through an `etcdctl` symlink)
against Debian's etcdctl 3.4.23: stdout, stderr and exit codes must match
after normalizing only log timestamps and durations.

Every comparison runs both tools with the same relative arguments, each in
a working directory of its own holding the same input files, so paths in
the output line up without rewriting.  Snapshots are saved from real etcd
3.4.23 and from our server after the same history; a restore by either tool
must give a data dir that real etcd and our server both serve with the
source's keys, revision and hashkv, and our restore must write the very
WAL bytes etcdctl writes."""
import atexit
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

from harness import ETCDCTL, OUR_BIN, REAL_ETCD, Server, check, ctl_env, eq, etcdctl, test

HISTORY = [
    ("put", "a", "1"), ("put", "b", "2"), ("put", "a", "3"), ("del", "b"),
    ("put", "c", "4"), ("compaction", "3"), ("put", "d", "5"), ("put", "e", "6"),
]
FORMATS = ["simple", "table", "json", "fields", "protobuf", "yaml"]
WAL = os.path.join("member", "wal", "0000000000000000-0000000000000000.wal")

_tmp = tempfile.mkdtemp(prefix="ctlsnap.")
atexit.register(shutil.rmtree, _tmp, True)
_ours = os.path.join(_tmp, "bin")
os.makedirs(_ours)
os.symlink(os.path.abspath(OUR_BIN), os.path.join(_ours, "etcdctl"))
OUR_CTL = os.path.join(_ours, "etcdctl")


def norm(b):
    s = b.decode(errors="replace")
    s = re.sub(r'"ts":("[^"]*"|[0-9.e+-]+)', '"ts":T', s)
    s = re.sub(r'"took":[0-9.e+-]+', '"took":D', s)
    s = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} ", "T ", s)
    # a Go panic: the message is compared, the goroutine dump is not
    s = re.sub(r"\npanic: (.|\n)*", "\npanic", s)
    return s


def run(ctl, args, cwd, timeout=60):
    r = subprocess.run([ctl] + list(args), cwd=cwd, capture_output=True, env=ctl_env(), timeout=timeout)
    return r.returncode, norm(r.stdout), norm(r.stderr)


def workdirs(name, files=()):
    """Two fresh working dirs (ours, Debian's) with copies of files."""
    dirs = []
    for who in ("ours", "real"):
        d = os.path.join(_tmp, name, who)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        for f in files:
            if os.path.isdir(f):
                shutil.copytree(f, os.path.join(d, os.path.basename(f)))
            else:
                shutil.copy(f, d)
        dirs.append(d)
    return dirs


def same(args, dirs, what=""):
    """Runs both tools; their (rc, stdout, stderr) must be equal."""
    o = run(OUR_CTL, args, dirs[0])
    r = run(ETCDCTL, args, dirs[1])
    eq(o, r, "%s%r" % (what, args))
    return o


def dump(endpoint):
    rc, out, errs = etcdctl(endpoint, "get", "", "--prefix", "-w", "json")
    eq(rc, 0, repr(errs))
    d = json.loads(out)
    return d["header"]["revision"], [(kv["key"], kv.get("value"), kv["mod_revision"]) for kv in d.get("kvs", [])]


def hashkv(endpoint):
    rc, out, errs = etcdctl(endpoint, "endpoint", "hashkv", "-w", "json")
    eq(rc, 0, repr(errs))
    h = json.loads(out)[0]["HashKV"]
    return h["hash"], h.get("compact_revision")


# ---- the snapshots: saved once per run, by both tools, from both servers ----

_snaps = {}


def snapshots():
    """{server: {"file": path, "want": dump, "hash": hashkv}} for server in
    ("real", "ours"), saved by both tools (their outputs and bytes equal);
    the save errors are checked on the way."""
    if _snaps:
        return _snaps
    got = {}
    for name, binary in (("real", REAL_ETCD), ("ours", OUR_BIN)):
        srv = Server(binary)
        try:
            for step in HISTORY:
                eq(etcdctl(srv.endpoint, *step)[0], 0, "step %r" % (step,))
            ep = ["--endpoints", srv.endpoint]
            dirs = workdirs("save-" + name)
            out = same(ep + ["snapshot", "save", "snap.db"], dirs, name + ": ")
            eq(out[0], 0, out)
            with open(os.path.join(dirs[0], "snap.db"), "rb") as f:
                mine = f.read()
            with open(os.path.join(dirs[1], "snap.db"), "rb") as f:
                theirs = f.read()
            eq(mine, theirs, "%s: the saved bytes" % name)
            check(not os.path.exists(os.path.join(dirs[0], "snap.db.part")), "snap.db.part left behind")
            # bad input while the server runs
            os.makedirs(os.path.join(dirs[0], "adir"))
            os.makedirs(os.path.join(dirs[1], "adir"))
            for args in (["snapshot", "save"], ["snapshot", "save", "a", "b"],
                         ["snapshot", "save", "nodir/x.db"], ["snapshot", "save", "adir"],
                         ["--endpoints", srv.endpoint + ",127.0.0.1:1", "snapshot", "save", "x.db"]):
                same(ep + args if args[0] != "--endpoints" else args, dirs, name + ": ")
            got[name] = {"file": os.path.join(dirs[0], "snap.db"), "want": dump(srv.endpoint),
                            "hash": hashkv(srv.endpoint)}
        finally:
            srv.stop()
    _snaps.update(got)
    return _snaps


@test
def ctl_snapshot_save_matches_etcdctl():
    s = snapshots()
    eq(sorted(s), ["ours", "real"])
    # nothing listening: the stream cannot open before --command-timeout
    dirs = workdirs("save-down")
    same(["--endpoints", "127.0.0.1:1", "--command-timeout", "1s", "snapshot", "save", "x.db"], dirs)
    check(not os.listdir(dirs[0]), os.listdir(dirs[0]))


@test
def ctl_snapshot_status_matches_etcdctl():
    s = snapshots()
    files = [s["real"]["file"], s["ours"]["file"]]
    dirs = workdirs("status")
    for d in dirs:
        for i, name in enumerate(("real", "ours")):
            shutil.copy(files[i], os.path.join(d, name + ".db"))
        with open(files[0], "rb") as f:
            data = f.read()
        with open(os.path.join(d, "empty.db"), "wb"):
            pass
        for fname, body in (("short.db", data[:100]), ("page.db", data[:5000]), ("text.db", b"hello\n" * 2000),
                            ("nohash.db", data[:-32])):
            with open(os.path.join(d, fname), "wb") as f:
                f.write(body)
        os.makedirs(os.path.join(d, "adir"))
    for name in ("real", "ours"):
        for w in FORMATS:
            rc = same(["snapshot", "status", name + ".db", "-w", w], dirs)[0]
            check(rc == (0 if w in ("simple", "table", "json", "fields") else 4), (name, w, rc))
        eq(same(["snapshot", "status", name + ".db"], dirs)[0], 0)
    # the status of a snapshot is that of the db without its sha256 trailer
    eq(same(["snapshot", "status", "nohash.db", "-w", "json"], dirs)[1],
       same(["snapshot", "status", "real.db", "-w", "json"], dirs)[1])
    want_rev = s["real"]["want"][0]
    eq(json.loads(run(OUR_CTL, ["snapshot", "status", "real.db", "-w", "json"], dirs[0])[1])["revision"], want_rev)
    for args in (["snapshot", "status"], ["snapshot", "status", "a", "b"], ["snapshot", "status", "missing.db"],
                 ["snapshot", "status", "empty.db"], ["snapshot", "status", "short.db"],
                 ["snapshot", "status", "page.db"], ["snapshot", "status", "text.db"],
                 ["snapshot", "status", "adir"], ["snapshot", "status", "--help"], ["snapshot", "--help"],
                 ["snapshot"], ["snapshot", "save", "--help"], ["snapshot", "restore", "--help"],
                 ["snapshot", "status", "-w", "yaml"]):
        same(args, dirs)


def restore_args(data="restored", extra=()):
    return ["snapshot", "restore", "snap.db", "--data-dir", data, "--name", "default",
            "--initial-cluster", "default=http://127.0.0.1:2380",
            "--initial-advertise-peer-urls", "http://127.0.0.1:2380"] + list(extra)


def serve(binary, data, want, want_hash, what):
    srv = Server(binary, data=data)
    try:
        eq(dump(srv.endpoint), want, what)
        eq(hashkv(srv.endpoint), want_hash, what)
        eq(etcdctl(srv.endpoint, "put", "after", "restore")[0], 0, what)
        rc, out, _ = etcdctl(srv.endpoint, "member", "list")
        eq(rc, 0, what)
        lines = out.decode().splitlines()
        check(len(lines) == 1 and ", started, default, http://127.0.0.1:2380," in lines[0], (what, out))
    finally:
        srv.stop()


@test
def ctl_snapshot_restore_served_by_both_servers():
    s = snapshots()
    for name in ("real", "ours"):
        dirs = workdirs("restore-" + name, [s[name]["file"]])
        out = same(restore_args(), dirs, name + ": ")
        eq(out[0], 0, out)
        for f in (WAL,):
            with open(os.path.join(dirs[0], "restored", f), "rb") as a, \
                    open(os.path.join(dirs[1], "restored", f), "rb") as b:
                eq(a.read(), b.read(), "%s: %s" % (name, f))
        # a data dir of ours is served by real etcd and by our server; one
        # of Debian's by our server
        want, want_hash = s[name]["want"], s[name]["hash"]
        ours_dir = os.path.join(dirs[0], "restored")
        twin = os.path.join(dirs[0], "restored2")
        shutil.copytree(ours_dir, twin)
        serve(REAL_ETCD, ours_dir, want, want_hash, "%s snapshot, our restore, real etcd" % name)
        if name == "real":
            serve(OUR_BIN, twin, want, want_hash, "real snapshot, our restore, our server")
            serve(OUR_BIN, os.path.join(dirs[1], "restored"), want, want_hash,
                  "real snapshot, Debian's restore, our server")


@test
def ctl_snapshot_restore_wal_and_errors_match():
    s = snapshots()
    snap = s["real"]["file"]
    dirs = workdirs("restore-bad", [snap])
    for d in dirs:
        with open(snap, "rb") as f:
            data = bytearray(f.read())
        data[9000] ^= 0xff  # inside the db: the sha256 no longer matches
        for fname, body in (("flipped.db", bytes(data)), ("nohash.db", bytes(data[:-32])),
                            ("tiny.db", bytes(data[:10])), ("trunc.db", bytes(data[:5000])),
                            ("text.db", b"not a db\n" * 1000)):
            with open(os.path.join(d, fname), "wb") as f:
                f.write(body)
        os.makedirs(os.path.join(d, "exists"))
    # several members, another token, our own names: the WAL bytes of both
    multi = ["--initial-cluster", "m1=http://10.0.0.1:2380,m2=http://10.0.0.2:2380,m3=http://10.0.0.3:2380",
             "--initial-advertise-peer-urls", "http://10.0.0.2:2380", "--name", "m2",
             "--initial-cluster-token", "tok"]
    for i, extra in enumerate((multi, ["--name", "n", "--initial-cluster", "n=http://localhost:2380"],
                               ["--wal-dir", "walhere"])):
        data = "multi%d" % i
        eq(same(["snapshot", "restore", "snap.db", "--data-dir", data] + extra, dirs)[0], 0)
        wal = os.path.join("walhere", os.path.basename(WAL)) if "--wal-dir" in extra else os.path.join(data, WAL)
        with open(os.path.join(dirs[0], wal), "rb") as a, open(os.path.join(dirs[1], wal), "rb") as b:
            eq(a.read(), b.read(), "WAL of %r" % extra)
    bad = [
        ["snapshot", "restore"], ["snapshot", "restore", "a", "b"],
        ["snapshot", "restore", "missing.db", "--data-dir", "x1"],
        ["snapshot", "restore", "flipped.db", "--data-dir", "x2"],
        ["snapshot", "restore", "nohash.db", "--data-dir", "x3"],
        ["snapshot", "restore", "tiny.db", "--data-dir", "x4"],
        ["snapshot", "restore", "trunc.db", "--data-dir", "x5", "--skip-hash-check"],
        ["snapshot", "restore", "text.db", "--data-dir", "x6", "--skip-hash-check"],
        ["snapshot", "restore", "snap.db", "--data-dir", "exists"],
        ["snapshot", "restore", "snap.db", "--data-dir", "x7", "--wal-dir", "exists"],
        ["snapshot", "restore", "snap.db", "--data-dir", "x8", "--name", "nobody"],
        ["snapshot", "restore", "snap.db", "--data-dir", "x9", "--initial-advertise-peer-urls", "http://127.0.0.1:2380"],
        ["snapshot", "restore", "snap.db", "--data-dir", "x10", "--initial-advertise-peer-urls",
         "http://localhost:2380,http://localhost:2381"],
        ["snapshot", "restore", "snap.db", "--data-dir", "x11", "--initial-cluster",
         "default=http://localhost:2380,default=http://localhost:2381"],
        ["snapshot", "restore", "snap.db", "--data-dir", "x12", "--initial-cluster",
         "default=http://localhost:2380,other=http://localhost:2380"],
        ["snapshot", "restore", "snap.db", "--data-dir", "x13", "--initial-advertise-peer-urls", "ftp://h:1"],
        ["snapshot", "restore", "snap.db", "--data-dir", "x14", "--initial-advertise-peer-urls", "http://h"],
        ["snapshot", "restore", "snap.db", "--data-dir", "x15", "--initial-advertise-peer-urls", "http://h:1/p"],
        ["snapshot", "restore", "snap.db", "--data-dir", "x16", "--initial-advertise-peer-urls", "127.0.0.1:2380"],
        ["snapshot", "restore", "snap.db", "--data-dir", "x17", "--initial-advertise-peer-urls", "http://a b:1"],
        ["snapshot", "restore", "snap.db", "--data-dir", "x18", "--initial-advertise-peer-urls", ""],
        ["snapshot", "restore", "snap.db", "--data-dir", "x19", "--initial-cluster", ""],
    ]
    for args in bad:
        check(same(args, dirs)[0] != 0, args)
    # what a failed restore leaves behind is the same too
    for x in ("x2", "x3", "x5", "x6"):
        eq(sorted(os.listdir(os.path.join(dirs[0], x, "member", "snap"))),
           sorted(os.listdir(os.path.join(dirs[1], x, "member", "snap"))), x)


@test
def ctl_defrag_data_dir_matches_etcdctl():
    s = snapshots()
    dirs = workdirs("defrag", [s["real"]["file"]])
    for d in dirs:
        subprocess.run([ETCDCTL] + restore_args(), cwd=d, capture_output=True, env=ctl_env(), check=True)
        os.makedirs(os.path.join(d, "empty"))
    eq(same(["defrag", "--data-dir", "restored"], dirs), (0, "", ""))
    a = run(OUR_CTL, ["snapshot", "status", os.path.join("restored", "member", "snap", "db"), "-w", "json"], dirs[0])
    b = run(ETCDCTL, ["snapshot", "status", os.path.join("restored", "member", "snap", "db"), "-w", "json"], dirs[1])
    eq(a, b, "the defragmented dbs")
    for args in (["defrag", "--data-dir", "nonexistent"],):
        eq(same(args, dirs)[0], 2)
    # a running server holds the lock: both wait, say so after a second,
    # and go on once it stops
    srv = Server(OUR_BIN, data=os.path.join(dirs[0], "restored"))
    procs = []
    try:
        for ctl, d in ((OUR_CTL, dirs[0]), (ETCDCTL, dirs[0])):
            procs.append(subprocess.Popen([ctl, "defrag", "--data-dir", "restored"], cwd=d, env=ctl_env(),
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        time.sleep(1.6)
        check(all(p.poll() is None for p in procs), "defrag did not wait for the lock")
    finally:
        srv.kill(signal.SIGTERM)
    outs = [p.communicate(timeout=30) for p in procs]
    eq((procs[0].returncode, outs[0]), (procs[1].returncode, outs[1]), "waiting for the lock")
    check(b"waiting for etcd to close and release its lock" in outs[0][1], outs[0])
    srv.stop()
