"""ctl_more.py - our etcdctl's lock, elect, auth/user/role, make-mirror,
migrate and check commands against Debian's etcdctl 3.4.23: the same steps
on twin servers (real etcd 3.4.23, and ours where it serves the calls),
stdout, stderr and exit codes compared after ctl_golden's normalizing (IDs,
revisions that depend on timing, durations).  Lock and elect also run
against each other: a lock held by one etcdctl blocks the other, an
observer of one sees the other's campaign.  The long runs (check perf's
minute, make-mirror's 30 s count) go in parallel in one test."""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

from ctl_golden import S, FORMATS, Side, compare, normalize, our_ctl_dir, twin_servers, all_formats
from harness import ETCDCTL, OUR_BIN, REAL_ETCD, Server, check, ctl_env, eq, free_ports, test


def ours_ctl(d):
    return os.path.join(d, "etcdctl")


# ---- help texts and usage errors: no server ----

HELP_PATHS = ["lock", "elect", "auth", "auth enable", "auth disable", "user", "user add",
              "user delete", "user get", "user list", "user passwd", "user grant-role",
              "user revoke-role", "role", "role add", "role delete", "role get", "role list",
              "role grant-permission", "role revoke-permission", "make-mirror", "migrate",
              "check", "check perf", "check datascale"]

USAGE_STEPS = [S(p + " --help") for p in HELP_PATHS] + [S("help " + p) for p in HELP_PATHS[:6]] + [
    S("lock"), S("lock --ttl x a"), S("lock a --nosuch"), S("lock a -c"),
    S("elect"), S("elect a"), S("elect -l a b"), S("elect a b c"), S("elect -x a"),
    S("auth"), S("auth enable x"), S("auth disable x"), S("auth nosuch"),
    S("user"), S("user add"), S("user add a b"), S("user add :pw"), S("user delete"),
    S("user get"), S("user get a b"), S("user list x"), S("user passwd"),
    S("user grant-role a"), S("user revoke-role a"),
    S("user add u", stdin=b"pw\npx\n"), S("user add u", stdin=b"\n"), S("user add u"),
    S("user passwd u", stdin=b"a\nb\n"), S(["user", "add", ""]),
    S("role"), S("role add"), S("role delete"), S("role get"), S("role list x"),
    S("role grant-permission"), S("role grant-permission r read"),
    S("role grant-permission r nosuch k"), S("role grant-permission r read k --prefix --from-key"),
    S(["role", "grant-permission", "r", "read", "", "--prefix", "--from-key"]),
    S("role grant-permission r read a b --prefix"), S("role grant-permission r read a b --from-key"),
    S("role revoke-permission r"), S("role revoke-permission r a b --prefix"),
    S("role revoke-permission r a --prefix --from-key"),
    S("make-mirror"), S("make-mirror a b"),
    S("check"), S("check perf --load x"), S("check datascale --load huge"), S("check nosuch"),
    S("check perf extra --load x"),
]


@test
def ctl_more_help_and_usage_errors():
    d = our_ctl_dir()
    dead = "127.0.0.1:%d" % free_ports(1)[0]
    try:
        want = compare(USAGE_STEPS, Side(ETCDCTL, [dead]), Side(ours_ctl(d), [dead]), "offline")
        check(sum(1 for _, out, _ in want if "USAGE:" in out) >= len(HELP_PATHS), "help texts")
        check(sum(1 for rc, _, err in want if rc == 128 and "Error:" in err) > 30, "usage errors")
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- auth, user, role ----

AUTH_STEPS = [
    S("auth enable"),                     # no root user yet
    S("role add r1"), S("role add r1"), S("role add r2 -w json"), S("role add r3 -w fields"),
    S("role add r4 -w protobuf"), S("role add r5 -w table"),
    S("role grant-permission r1 readwrite foo"), S("role grant-permission r1 read --prefix pre"),
    S("role grant-permission r1 Write --from-key fk"), S("role grant-permission r1 read a z"),
    S(["role", "grant-permission", "--prefix", "r1", "read", ""]),
    S(["role", "grant-permission", "r1", "write", "", "--from-key"]),
    S(["role", "grant-permission", "r1", "write", ""]),
    S(["role", "grant-permission", "r1", "read", "\xff\xff", "--prefix"]),
    S("role grant-permission r1 read pfx2 --prefix -w json"),
    S("role grant-permission r2 write k1 -w fields"),
    S("role grant-permission r2 write k2 -w protobuf"),
    S("role grant-permission nosuch read k"),
] + all_formats("role get r1") + all_formats("role get r2") + all_formats("role list") + [
    S("role get nosuch"),
    S("role revoke-permission r1 foo"), S("role revoke-permission r1 foo"),
    S("role revoke-permission r1 a z -w json"),
    S("role revoke-permission r1 fk --from-key"),
    S("role revoke-permission r1 pre --prefix -w fields"),
    S(["role", "revoke-permission", "r1", "", "--prefix"]),
    S("role revoke-permission r2 k2 -w protobuf"),
    S("role get r1"),
    S("user add u1:pw1"), S("user add u1:pw1"), S("user add u2 --new-user-password=p2 -w json"),
    S("user add u3 --no-password -w fields"), S("user add u4 --interactive=false", stdin=b"  pw4 x\n"),
    S("user add u5", stdin=b"pw5\npw5\n"), S("user add u6:a:b -w protobuf"),
    S("user add u7 --interactive=false", stdin=b"\nx"), S("user add u8:x -w table"),
    S("user grant-role u1 r1"), S("user grant-role u1 r2 -w json"), S("user grant-role u1 nosuch"),
    S("user grant-role nosuch r1"), S("user grant-role u2 r2 -w fields"),
] + all_formats("user get u1") + all_formats("user get u1 --detail") + all_formats("user list") + [
    S("user get u3"), S("user get nosuch"),
    S("user revoke-role u1 r2"), S("user revoke-role u1 r2"), S("user revoke-role u2 r2 -w json"),
    S("user passwd u4 --interactive=false", stdin=b"np\n"), S("user passwd u5", stdin=b"q\nq\n"),
    S("user passwd nosuch --interactive=false", stdin=b"x\n"), S("user passwd u4 -w fields", stdin=b"z\nz\n"),
    S("user delete u6"), S("user delete u6"), S("user delete u8 -w json"),
    S("role delete r5"), S("role delete r5"), S("role delete r4 -w fields"),
    S("auth enable"),                     # root user does not exist
    S("user add root:rootpw"),
    S("auth enable"),                     # adds the root role, grants it
    S("auth enable"),
    S("role list"),                       # no user now
    S("--user root:rootpw role list"), S("--user root --password rootpw user list -w json"),
    S("--user root:wrong user list"), S("--user nosuch:x get a"), S("--user u3:x get a"),
    S("--user u1:pw1 put foo v"), S("--user u1:pw1 put zz v"), S("--user u1:pw1 get foo"),
    S("--user u1:pw1 put other v"), S("--user u1:pw1 user list"),
    S("--user u1:pw1 auth disable"),
    S("--user root:rootpw lock L1 -- true"),
    S("--user root:rootpw auth disable"), S("auth disable"), S("user list"),
]


@test
def ctl_more_auth_against_real_etcd():
    d = our_ctl_dir()
    try:
        from ctl_golden import golden_against
        want = golden_against(REAL_ETCD, AUTH_STEPS, "real etcd")
        check(sum(1 for _, out, _ in want if out) > 60, "too few outputs")
    finally:
        shutil.rmtree(d, ignore_errors=True)


@test
def ctl_more_auth_against_our_server():
    """Our server has no Auth service: every command fails as Debian's
    etcdctl fails against it (Unimplemented)."""
    from ctl_golden import golden_against
    steps = [S("auth enable"), S("auth disable"), S("user add a:b"), S("user list -w json"),
             S("user get u --detail"), S("role add r"), S("role get r -w fields"),
             S("role grant-permission r read k"), S("--user root:x get a")]
    want = golden_against(OUR_BIN, steps, "our etcd")
    check(all(rc != 0 for rc, _, _ in want), "a command succeeded")


# ---- lock and elect ----

def _lease_norm(out):
    """Names the lease of each "<name>/<16 hex digits>" key by order of
    appearance, in every form a format prints it: the hex in the key, the
    key in base64 (json), the lease in decimal and as a protobuf varint."""
    import base64
    import json as _json
    text = re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes([int(m.group(1), 16)]), out)  # --hex
    hexes = []
    for m in re.finditer(rb"/([0-9a-f]{16})", text):
        if m.group(1) not in hexes:
            hexes.append(m.group(1))
    if text.startswith(b"{"):  # json: the keys are base64
        try:
            j = _json.loads(text.splitlines()[0])
            for kv in j.get("kvs", []):
                k = base64.b64decode(kv["key"])
                for m in re.finditer(rb"/([0-9a-f]{16})", k):
                    if m.group(1) not in hexes:
                        hexes.append(m.group(1))
                kv["key"] = k.decode(errors="replace")
            text = _json.dumps(j, sort_keys=True).encode() + b"\n"
        except ValueError:
            pass
    for i, h in enumerate(hexes):
        lid = int(h, 16)
        v = lid
        varint = bytearray()
        while True:
            b = v & 0x7F
            v >>= 7
            varint.append(b | (0x80 if v else 0))
            if not v:
                break
        text = text.replace(h, b"LEASE%d" % i).replace(str(lid).encode(), b"LEASEDEC%d" % i)
        text = text.replace(b"0" + bytes(varint), b"0VARINT%d" % i)
    return text


_procs = []  # every etcdctl started in the background, ended by _reap


def _start(ctl, ep, args):
    p = subprocess.Popen([ctl, "--endpoints", ep] + args, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ctl_env())
    _procs.append(p)
    return p


def _reap():
    while _procs:
        p = _procs.pop()
        if p.poll() is None:
            p.kill()
        p.communicate()


def _hold_then_interrupt(ctl, ep, args, hold=0.3, timeout=15):
    """Runs args until it printed something (or exited), then SIGINT:
    (rc, stdout, stderr)."""
    p = _start(ctl, ep, args)
    first = b""
    deadline = time.time() + timeout
    import select
    while time.time() < deadline and p.poll() is None:
        r, _, _ = select.select([p.stdout], [], [], 0.1)
        if r:
            first = os.read(p.stdout.fileno(), 65536)
            break
    time.sleep(hold)
    if p.poll() is None:
        p.send_signal(signal.SIGINT)
    try:
        o, e = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        o, e = p.communicate()
    return p.returncode, first + o, e


LOCK_CMD = "echo $ETCD_LOCK_KEY $ETCD_LOCK_REV; exit 3"


def _lock_session(ctl, ep):
    out = []
    for f in FORMATS:
        out.append(_hold_then_interrupt(ctl, ep, ["lock", "lk_" + f, "-w", f]))
    out.append(_hold_then_interrupt(ctl, ep, ["lock", "lk", "--ttl", "5", "--hex"]))
    for args in (["lock", "lx", "--", "sh", "-c", LOCK_CMD],
                 ["lock", "lx", "--", "sh", "-c", "env | grep ^ETCD_LOCK | sort"],
                 ["lock", "lx", "--", "/nonexistent/cmd"], ["lock", "lx", "--", "no-such-cmd-x"],
                 ["lock", "lx", "--", "sh", "-c", "kill -9 $$"],
                 ["elect", "el", "v1", "-w", "json"], ["elect", "el", "v2", "-w", "fields"]):
        if args[0] == "elect":
            out.append(_hold_then_interrupt(ctl, ep, args))
        else:
            r = subprocess.run([ctl, "--endpoints", ep] + args, capture_output=True, env=ctl_env(),
                               timeout=30)
            out.append((r.returncode, r.stdout, r.stderr))
    r = subprocess.run([ctl, "--endpoints", ep, "get", "", "--prefix", "-w", "json"],
                       capture_output=True, env=ctl_env())
    out.append((r.returncode, r.stdout, b""))
    return [(rc, _lease_norm(o), _lease_norm(e)) for rc, o, e in out]


def _twin_lock_sessions(binary, d):
    srvs = twin_servers(binary)
    try:
        res = {}
        ts = [threading.Thread(target=lambda k, c, s: res.__setitem__(k, _lock_session(c, s.endpoint)),
                               args=(k, c, s))
              for k, c, s in (("real", ETCDCTL, srvs[0]), ("ours", ours_ctl(d), srvs[1]))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        for i, (g, w) in enumerate(zip(res["ours"], res["real"])):
            eq(g, w, "%s: lock/elect step %d" % (os.path.basename(binary), i))
        check(res["real"][0][1].startswith(b"lk_simple/LEASE0\n"), "lock printed no key")
    finally:
        for s in srvs:
            s.stop()


def _exclusion(first, second, ep, name):
    """first holds the lock; second, started later, must wait until first is
    interrupted, then run its command."""
    p1 = _start(first, ep, ["lock", name])
    line = p1.stdout.readline()
    check(line.startswith(name.encode() + b"/"), "first holder printed %r" % line)
    t0 = time.time()
    p2 = _start(second, ep, ["lock", name, "--", "sh", "-c", "echo $ETCD_LOCK_KEY"])
    time.sleep(2)
    check(p2.poll() is None, "the second etcdctl got the lock while the first held it")
    released = time.time()
    p1.send_signal(signal.SIGINT)
    o1, _ = p1.communicate(timeout=10)
    o2, e2 = p2.communicate(timeout=15)
    eq((p1.returncode, p2.returncode), (0, 0), "exit codes")
    check(o2.startswith(name.encode() + b"/") and o2.strip() != line.strip(),
          "second holder's key %r" % o2)
    check(time.time() - released < 10 and released - t0 >= 2, "timing")


def _observe_campaigns(d, ep):
    """Debian's and our observers see our campaign, then Debian's once ours
    resigns; both print the same lines."""
    ours = ours_ctl(d)
    obs = [_start(c, ep, ["elect", "-l", "race"]) for c in (ETCDCTL, ours)]
    time.sleep(1)
    c1 = _start(ours, ep, ["elect", "race", "first"])
    check(c1.stdout.readline().startswith(b"race/"), "our campaign")
    check(c1.stdout.readline() == b"first\n", "our proposal")
    c2 = _start(ETCDCTL, ep, ["elect", "race", "second"])
    time.sleep(1.5)
    check(c2.poll() is None, "Debian's campaign won while ours led")
    c1.send_signal(signal.SIGINT)
    c1.communicate(timeout=10)
    check(c2.stdout.readline().startswith(b"race/"), "Debian's campaign after ours resigned")
    time.sleep(1)
    c2.send_signal(signal.SIGINT)
    c2.communicate(timeout=10)
    time.sleep(0.5)
    outs = []
    for p in obs:
        p.send_signal(signal.SIGINT)
        o, e = p.communicate(timeout=10)
        outs.append((p.returncode, o, e))
    eq(outs[1], outs[0], "observers")
    vals = outs[0][1].splitlines()[1::2]
    eq(vals, [b"first", b"second"], "observed leaders")


@test
def ctl_more_lock_and_elect():
    d = our_ctl_dir()
    try:
        for binary in (REAL_ETCD, OUR_BIN):
            _twin_lock_sessions(binary, d)
            srv = Server(binary)
            try:
                _exclusion(ours_ctl(d), ETCDCTL, srv.endpoint, "ex1")
                _exclusion(ETCDCTL, ours_ctl(d), srv.endpoint, "ex2")
                _observe_campaigns(d, srv.endpoint)
            finally:
                _reap()
                srv.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- check perf, check datascale, make-mirror, migrate ----

PERF_LINE = re.compile(r"^(PASS|FAIL)(: (Throughput is|Throughput too low:) N writes/s|"
                       r": Slowest request took N\.Ns|: Stddev is N\.Ns|: too many errors|"
                       r": ERROR\(.*\) -> N|)$|^(Slowest request took too long|Stddev too high): "
                       r"N\.Ns$|^Compact(ing|ed) with revision N$|^Defragment(ing|ed) \"EP\"$")


def _bar_lines(out, eps):
    """A run's stdout with each progress-bar line reduced to what was last
    drawn on it (what a terminal shows), numbers and endpoints named."""
    s = out.decode(errors="replace")
    for ep in eps:
        s = s.replace(ep, "EP")
    lines = [l.split("\r")[-1] for l in s.split("\n")]
    return [re.sub(r"\d+", "N", l) for l in lines]


def _check_perf(ctl, ep, res, key):
    r = subprocess.run([ctl, "--endpoints", ep, "check", "perf", "--load", "s", "--auto-compact"],
                       capture_output=True, env=ctl_env(), timeout=120)
    res[key] = r


def _datascale(ctl, ep, extra=()):
    r = subprocess.run([ctl, "--endpoints", ep, "check", "datascale"] + list(extra),
                       capture_output=True, env=ctl_env(), timeout=120)
    return r.returncode, r.stdout, r.stderr


def _mirror(d):
    """Debian's and our make-mirror from one source to two destinations:
    the initial copy, then a Put, a Delete and a Txn followed by the watch;
    the key count printed after 30 s and the destinations' contents must
    match."""
    srvs = [Server(REAL_ETCD) for _ in range(3)]
    src, d1, d2 = srvs
    try:
        def put(*a):
            subprocess.run([ETCDCTL, "--endpoints", src.endpoint] + list(a), capture_output=True,
                           env=ctl_env(), check=True, input=a[-1].encode() if a[0] == "txn" else None)
        ps = []
        for i in range(5):
            put("put", "/src/k%d" % i, "v%d" % i)
        put("put", "other", "x")
        ps = [subprocess.Popen([c, "--endpoints", src.endpoint, "make-mirror", dst.endpoint,
                                "--prefix", "/src/", "--dest-prefix", "/dst/"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ctl_env())
              for c, dst in ((ETCDCTL, d1), (ours_ctl(d), d2))]
        time.sleep(2)
        put("put", "/src/k9", "new")
        put("del", "/src/k0")
        subprocess.run([ETCDCTL, "--endpoints", src.endpoint, "txn"], capture_output=True,
                       env=ctl_env(), check=True,
                       input=b"\nput /src/t1 a\nput /src/t2 b\ndel /src/k1\nput other y\n\n\n")
        put("put", "/src/k2", "again")
        time.sleep(30.5)
        outs = []
        for p in ps:
            p.send_signal(signal.SIGTERM)
            o, e = p.communicate(timeout=10)
            outs.append(o)
        eq(outs[1], outs[0], "make-mirror's count")
        eq(outs[0], b"11\n", "Debian's count")
        got = []
        for dst in (d1, d2):
            r = subprocess.run([ETCDCTL, "--endpoints", dst.endpoint, "get", "", "--prefix",
                                "-w", "json"], capture_output=True, env=ctl_env())
            got.append(r.stdout)
        eq(got[1], got[0], "the destinations")
        check(b'"count":6' in got[0], "mirrored keys: %r" % got[0])
        # the same destination twice: the conflicting prefix flags
        r = [subprocess.run([c, "--endpoints", src.endpoint, "make-mirror", d1.endpoint,
                             "--dest-prefix", "x", "--no-dest-prefix"], capture_output=True,
                            env=ctl_env(), timeout=20) for c in (ETCDCTL, ours_ctl(d))]
        eq((r[1].returncode, r[1].stdout, r[1].stderr), (r[0].returncode, r[0].stdout, r[0].stderr),
           "conflicting prefix flags")
    finally:
        for p in ps:
            if p.poll() is None:
                p.kill()
            p.communicate()
        for s in srvs:
            s.stop()


V2_STEPS = [
    ["set", "/foo", "bar"], ["set", "/dir/x", "y"], ["set", "/dir/sub/z", "deep"],
    ["set", "/ttlkey", "z", "--ttl", "300"], ["mkdir", "/emptydir"], ["mk", "/made", "once"],
    ["mk", "/made", "twice"], ["update", "/foo", "bar2"], ["set", "/foo", "bar3", "--swap-with-value", "bar2"],
    ["set", "/foo", "bar4", "--swap-with-value", "nope"], ["mk", "/queue", "j1", "--in-order"],
    ["mk", "/queue", "j2", "--in-order"], ["rm", "/dir/x"], ["set", "/gone", "x"], ["rm", "/gone"],
    ["set", "/_hidden", "h"], ["rmdir", "/emptydir"], ["mkdir", "/emptydir2"],
    ["set", "/uni", "h\u00e9llo <&>"],
]


def _migrate(d):
    """A real member that served v2 keys, stopped; Debian's and our migrate
    on copies of its data dir print the same and write the same keys, which
    real etcd then serves the same.  Then the cases without v2 keys (a
    fresh real member, one of ours) and the failures."""
    tmp = tempfile.mkdtemp(prefix="ctlmigrate.")
    started = []
    try:
        src = Server(REAL_ETCD, extra=["--enable-v2"])
        started.append(src)
        env2 = dict(ctl_env(), ETCDCTL_API="2")
        for st in V2_STEPS:
            subprocess.run([ETCDCTL, "--endpoints", "http://" + src.endpoint] + st,
                           capture_output=True, env=env2, timeout=20)
        subprocess.run([ETCDCTL, "--endpoints", src.endpoint, "put", "v3key", "v3"],
                       capture_output=True, env=ctl_env(), check=True)
        src.kill(signal.SIGTERM)
        plain = Server(REAL_ETCD)
        started.append(plain)
        plain.kill(signal.SIGTERM)
        ourdir = Server(OUR_BIN)
        started.append(ourdir)
        subprocess.run([ETCDCTL, "--endpoints", ourdir.endpoint, "put", "a", "b"],
                       capture_output=True, env=ctl_env(), check=True)
        ourdir.kill(signal.SIGTERM)

        def both(data, args, serve=False):
            res = []
            for name, ctl in (("real", ETCDCTL), ("ours", ours_ctl(d))):
                dd = os.path.join(tmp, name)
                shutil.rmtree(dd, ignore_errors=True)
                if data:
                    shutil.copytree(data, dd)
                r = subprocess.run([ctl, "migrate", "--data-dir", dd] + args, capture_output=True,
                                   env=ctl_env(), timeout=60)
                o = (r.returncode, r.stdout.replace(dd.encode(), b"DD"),
                     re.sub(rb'"ttl":-?\d+', b'"ttl":N', r.stderr.replace(dd.encode(), b"DD")))
                if serve:
                    s = Server(REAL_ETCD, data=dd)
                    try:
                        g = subprocess.run([ETCDCTL, "--endpoints", s.endpoint, "get", "",
                                            "--prefix", "-w", "json"], capture_output=True,
                                           env=ctl_env()).stdout
                    finally:
                        s.stop()
                        shutil.rmtree(dd, ignore_errors=True)
                    o += (g,)
                res.append(o)
            eq(res[1], res[0], "migrate " + " ".join(args))
            return res[0]

        rc, out, _, kvs = both(src.data, [], serve=True)
        check(out.endswith(b"finished transforming keys\n") and b"/dir/sub/z" not in out, "migrate")
        check(b"L2Rpci9zdWIveg==" in kvs and b"djNrZXk=" in kvs, "migrated keys: %r" % kvs)
        both(src.data, ["--no-ttl"], serve=True)
        echo = os.path.join(tmp, "echo.sh")
        with open(echo, "w") as f:
            f.write("#!/bin/sh\ncat >&2\n")
        os.chmod(echo, 0o755)
        both(src.data, ["--transformer", echo])
        both(src.data, ["--transformer", "/bin/false"])
        both(src.data, ["--transformer", "no-such-transformer"])
        both(plain.data, [])
        both(ourdir.data, [])
        both(None, [])
        both(plain.data, ["--wal-dir", "/nonexistent/wal"])
    finally:
        for s in started:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@test
def ctl_more_check_mirror_migrate():
    """check perf (a minute: Debian's and ours at once on twin real servers)
    runs behind make-mirror's 30 s, check datascale and migrate."""
    d = our_ctl_dir()
    perf_srvs = twin_servers(REAL_ETCD)
    res = {}
    ts = [threading.Thread(target=_check_perf, args=(c, s.endpoint, res, k))
          for k, c, s in (("real", ETCDCTL, perf_srvs[0]), ("ours", ours_ctl(d), perf_srvs[1]))]
    try:
        for t in ts:
            t.start()
        _mirror(d)
        # datascale: twin real servers, then ours
        srvs = twin_servers(REAL_ETCD)
        try:
            out = {}
            dts = [threading.Thread(target=lambda k, c, s: out.__setitem__(
                       k, _datascale(c, s.endpoint, ["--auto-compact", "--auto-defrag"])), args=(k, c, s))
                   for k, c, s in (("real", ETCDCTL, srvs[0]), ("ours", ours_ctl(d), srvs[1]))]
            for t in dts:
                t.start()
            for t in dts:
                t.join()
            (grc, go, ge), (wrc, wo, we) = out["ours"], out["real"]
            eq((grc, _bar_lines(go, [srvs[1].endpoint])), (wrc, _bar_lines(wo, [srvs[0].endpoint])),
               "check datascale")
            check(b"\r 10000 / 10000  100.00% " in go, "datascale's bar")
            subprocess.run([ETCDCTL, "--endpoints", srvs[0].endpoint, "put", "/etcdctl-check-perf/x", "y"],
                           capture_output=True, env=ctl_env(), check=True)
            r = [subprocess.run([c, "--endpoints", srvs[0].endpoint, "check", "perf"],
                                capture_output=True, env=ctl_env(), timeout=60)
                 for c in (ETCDCTL, ours_ctl(d))]
            eq((r[1].returncode, r[1].stdout, r[1].stderr), (r[0].returncode, r[0].stdout, r[0].stderr),
               "check perf on a used prefix")
        finally:
            for s in srvs:
                s.stop()
        srv = Server(OUR_BIN)
        try:
            # datascale reads process_resident_memory_bytes from /metrics
            (grc, go, ge), (wrc, wo, we) = (_datascale(ours_ctl(d), srv.endpoint),
                                            _datascale(ETCDCTL, srv.endpoint))
            eq((grc, _bar_lines(go, [srv.endpoint]), ge), (wrc, _bar_lines(wo, [srv.endpoint]), we),
               "check datascale against our server")
            check(b"PASS: Approximate system memory used : " in wo, "Debian's etcdctl on our /metrics")
        finally:
            srv.stop()
        _migrate(d)
        for t in ts:
            t.join()
        (grc, go), (wrc, wo) = [(res[k].returncode, _bar_lines(res[k].stdout, [s.endpoint]))
                                for k, s in (("ours", perf_srvs[1]), ("real", perf_srvs[0]))]
        for lines, rc in ((go, grc), (wo, wrc)):
            eq(lines[0], " N / N  N.N% NmNs", "the bar's last state")
            for l in lines[1:-1]:
                check(PERF_LINE.match(l), "check perf line %r" % l)
            eq(rc, 0 if lines[-2] == "PASS" else 1, "exit code")
        if grc == 0 and wrc == 0:
            eq(go, wo, "check perf")
        else:
            print("    check perf: ours %r, Debian's %r" % (go, wo), flush=True)
        check(b"\r 0 / 60    0.00%" in res["ours"].stdout, "check perf's first bar")
    finally:
        for t in ts:
            t.join()
        for s in perf_srvs:
            s.stop()
        shutil.rmtree(d, ignore_errors=True)


# ---- keepalive: a watch behind a connection that went silent ----

class _Blackhole:
    """A TCP proxy to target whose connections can be frozen: a frozen
    connection stays open but nothing passes any more, as when a peer
    vanishes behind a partition.  Connections made later pass again."""

    def __init__(self, target):
        import socket
        self.target = target
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.endpoint = "127.0.0.1:%d" % self.lsock.getsockname()[1]
        self.conns, self.frozen, self.accepted = [], set(), 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import socket
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            host, port = self.target.split(":")
            u = socket.create_connection((host, int(port)))
            with self.lock:
                self.accepted += 1
                self.conns.append((c, u))
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, a, b):
        while True:
            try:
                data = a.recv(65536)
            except OSError:
                return
            if not data:
                return
            with self.lock:
                if id(a) in self.frozen:
                    continue  # swallowed: the peer has vanished
            try:
                b.sendall(data)
            except OSError:
                return

    def freeze(self):
        with self.lock:
            for c, u in self.conns:
                self.frozen.update((id(c), id(u)))

    def close(self):
        self.lsock.close()
        with self.lock:
            for c, u in self.conns:
                c.close()
                u.close()


@test
def ctl_watch_gives_up_a_silent_connection_after_keepalive():
    """etcdctl's --keepalive-time/--keepalive-timeout (grpc-go raises the
    time to its 10 s minimum): with the connection frozen, both etcdctls
    ping, get no answer, drop it, reconnect and resume the watch."""
    d = our_ctl_dir()
    srv = Server(OUR_BIN)
    procs, holes = [], []
    try:
        srv.wait_ready()
        for ctl in (ours_ctl(d), ETCDCTL):
            hole = _Blackhole(srv.endpoint)
            holes.append(hole)
            procs.append(subprocess.Popen([ctl, "--endpoints", hole.endpoint, "--keepalive-timeout", "2s",
                                           "watch", "ka"], stdout=subprocess.PIPE, env=ctl_env()))
        guard = threading.Timer(45, lambda: [p.kill() for p in procs])  # a hang fails, not blocks
        guard.daemon = True
        guard.start()
        time.sleep(1)
        from harness import etcdctl
        eq(etcdctl(srv.endpoint, "put", "ka", "before")[0], 0, "put")
        for p in procs:
            eq(p.stdout.readline(), b"PUT\n", "event before the freeze")
            p.stdout.readline(), p.stdout.readline()
        for h in holes:
            h.freeze()
        eq(etcdctl(srv.endpoint, "put", "ka", "during")[0], 0, "put")
        t0 = time.time()
        for p in procs:
            eq(p.stdout.readline(), b"PUT\n", "the event put while frozen arrives after reconnecting")
            eq(p.stdout.readline(), b"ka\n", "key")
            eq(p.stdout.readline(), b"during\n", "value")
        took = time.time() - t0
        check(9 <= took <= 25, "resumed after keepalive time + timeout (%.1f s)" % took)
        for h in holes:
            eq(h.accepted, 2, "one reconnection")
    finally:
        for p in procs:
            p.kill()
            p.wait()
        for h in holes:
            h.close()
        srv.stop()
        shutil.rmtree(d, ignore_errors=True)
