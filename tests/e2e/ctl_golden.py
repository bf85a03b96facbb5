"""ctl_golden.py - our etcdctl (the binary called through an `etcdctl`
symlink) against Debian's etcdctl 3.4.23, command by command and format by
format: stdout, stderr and exit codes must match after normalizing only what
truly varies (lease IDs, timings, DB sizes, ports, log timestamps).

Each comparison runs the same steps twice in parallel: Debian's etcdctl
against one server, ours against a twin server that saw the same writes in
the same order, so revisions and IDs derived from the configuration line up.
This is done with real etcd 3.4.23 as the server and again with ours.  Bad
input (unknown flags, missing arguments, malformed txn, unreachable
endpoints) and every help text are compared without a server.
"""
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
import time

from harness import (ETCDCTL, OUR_BIN, REAL_ETCD, REL_BIN, ROOT, Server, check, ctl_env, eq,
                     free_ports, test)


def our_ctl_dir(binary=OUR_BIN):
    """A temp dir holding a copy of our binary (a rebuild must not change
    it under a running test) and an `etcdctl` symlink to it."""
    d = tempfile.mkdtemp(prefix="ctlgolden.")
    shutil.copy2(binary, os.path.join(d, "etcd"))
    os.symlink("etcd", os.path.join(d, "etcdctl"))
    return d


# ---- steps ----

class S:
    """One etcdctl invocation: args (str for shlex or list), stdin bytes,
    extra env; ep=False runs it without --endpoints."""

    def __init__(self, args, stdin=b"", env=None, ep=True, sort_lines=False):
        self.args = shlex.split(args) if isinstance(args, str) else list(args)
        self.stdin = stdin
        self.env = env or {}
        self.ep = ep
        self.sort_lines = sort_lines


FORMATS = ["simple", "json", "fields", "protobuf", "table"]


def all_formats(args, **kw):
    return [S(args + " -w " + f, **kw) for f in FORMATS]


TXN_OK = b'value("foo") = "bar"\n\nput txnkey yes\nget foo\ndel nothere\n\nput txnkey no\n\n'
TXN_FAIL = b'mod("foo") > "1000"\nversion("foo") = "1"\n\nput t1 a\n\nput t2 b\ndel foo2\nget t1 --prefix\n\n'
TXN_DUP = b'\nput dup 1\nput dup 2\n\n'
TXN_BAD = [
    b'value("foo") == "bar"\n\n\n',          # unknown operator: a Go panic
    b'foo("x") = "1"\n\n\n',                  # unknown target
    b'value(foo) = "bar"\n\n\n',              # key not quoted
    b'value("foo") =\n\n\n',                  # no value
    b'ver("foo") = "x"\n\n\n',                # not a number
    b'lease("foo") = "0"\n\n\n',              # etcdctl passes a string: panic
    b'value("foo") = "bar"',                  # EOF inside the compares
    b'\nput onlykey\n\n\n',                   # put reads the (empty) rest of stdin
    b'\nbogus x y\n\n\n',                     # not get/put/del
    b'\nget\n\n\n',                           # too few words
    b'\nget a --nosuch\n\n\n',                # unknown flag in a request line
    b"\nput 'k' v\n\n\n",                     # argify's single quotes
    b'\nput "a b" "c\\td"\n\n\n',             # argify's double quotes
    b'\nget a --prefix --from-key\n\n\n',     # the request's own check exits
]

KV_STEPS = [
    S("put foo bar"),
    S("put foo bar --prev-kv"),
    S("put foo2 x"),
    S("put foo3 y"),
    S("put zoo z"),
    S(["put", "bin", "\x01\x02\xff\n"]),
    S(["put", "uni", "h\u00e9llo \u2028 <&>"]),
    S("put stdinkey", stdin=b"from stdin\n"),
    S("put -- dashkey -v"),
    S("put emptyval ''"),
] + all_formats("get foo") + all_formats("get foo --prefix") + all_formats("get bin") + \
    all_formats("get uni") + all_formats("get nothere") + [
    S("get foo --prefix --limit 2 -w json"),
    S("get foo --prefix --limit 2 -w fields"),
    S("get --from-key foo2"),
    S(["get", "", "--from-key", "--keys-only"]),
    S(["get", "", "--prefix", "-w", "json"]),
    S("get foo --prefix --sort-by=MODIFY --order=DESCEND"),
    S("get foo --prefix --sort-by=value --order=ascend"),
    S("get foo --prefix --sort-by=CREATE"),
    S("get foo --prefix --sort-by=VERSION --order=DESCEND -w json"),
    S("get foo --prefix --sort-by=KEY --order=DESCEND"),
    S("get foo --rev 2"),
    S("get foo --rev 3 -w json"),
    S("get foo --prefix --print-value-only"),
    S("get foo --keys-only -w json"),
    S("get foo --consistency=s"),
    S("get foo --prefix --hex"),
    S("get bin --hex -w json"),
    S("get foo foo3"),
    S("get foo foo3 -w fields"),
    S("get foo --limit=0x1"),
    S("get foo --rev 1000"),
    S("get foo --print-value-only -w json"),
    S("get foo -w table"),
    S("get foo -w yaml"),
    S("get foo --consistency=x"),
    S("get foo --sort-by=x"),
    S("get foo --order=x"),
    S("get foo bar --prefix"),
    S("get foo --prefix --from-key"),
    S("get"),
    S("get foo --count-only"),
    S("get foo --limit"),
    S("get foo --limit x"),
    S("get foo --prefix=maybe"),
    S("get -x foo"),
    S("get foo -wjson"),
    S("get foo -w=json"),
    S("get foo --write-out=fields --hex"),
    S(["get", ""]),
] + all_formats("del foo3") + [
    S("del nothere -w json"),
    S("del foo --prefix --prev-kv"),
    S("del a --from-key -w json"),
    S("del"),
    S("del a b c"),
    S("del a --prefix --from-key"),
    S("put foo bar2"),
    S("put foo2 x"),
    S("put zoo z"),
    S("put"),
    S("put onlykey"),
    S("put k v --ignore-value"),
    S("put nokey --ignore-value"),
    S("put foo --ignore-value -w json"),
    S("put foo v --ignore-lease"),
    S("put k v --lease zz"),
    S("put k v --lease 1234"),
    S(["put", "", "x"]),
    S(["get", "", "-w", "json"]),
] + [S("txn -w " + f, stdin=TXN_OK) for f in FORMATS] + [
    S("txn -w json", stdin=TXN_FAIL),
    S("txn -w fields", stdin=TXN_FAIL),
    S("txn", stdin=TXN_DUP),
    S("txn -i", stdin=TXN_OK),
    S("txn --interactive -w json", stdin=TXN_FAIL),
    S("txn extra"),
] + [S("txn", stdin=b) for b in TXN_BAD] + all_formats("compaction 3") + [
    S("compaction 3"),
    S("compaction 100000"),
    S("compaction 4 --physical"),
    S("compaction"),
    S("compaction x"),
    S("get foo --rev 2"),
]

LEASE_STEPS = [
    S("lease grant 300"),                 # LEASE1: the simple output names the ID
    S("put lk1 a --lease {LEASE1}"),
    S("put lk2 b --lease={LEASE1}"),
] + all_formats("lease timetolive {LEASE1}") + all_formats("lease timetolive {LEASE1} --keys") + \
    all_formats("lease keep-alive --once {LEASE1}") + all_formats("lease list") + [
    S("lease grant 100 -w json"),         # LEASE2
    S("lease grant 100 -w fields"),       # LEASE3
    S("lease grant x"),
    S("lease grant"),
    S("lease grant 9000000001"),
    S("lease revoke zz"),
    S("lease revoke"),
    S("lease timetolive"),
    S("lease keep-alive"),
    S("lease timetolive 1234"),
    S("lease keep-alive --once 1234"),
    S("lease keep-alive 1234"),
    S("lease revoke 1234"),
    S("lease revoke {LEASE2} -w json"),
    S("lease revoke {LEASE3} -w fields"),
    S("lease grant 100"),                 # LEASE4
    S("lease grant 100"),                 # LEASE5
    S("lease revoke {LEASE4} -w protobuf"),
    S("lease revoke {LEASE5} -w table"),
    S("lease revoke {LEASE1}"),
    S("lease timetolive {LEASE1}"),
    S("get lk --prefix"),
    S("lease list"),
    S("lease list -w json"),
    S("lease grant 100 -w protobuf"),     # IDs not printed: no lease list after these
    S("lease grant 100 -w table"),
]

CLUSTER_STEPS = all_formats("member list") + all_formats("endpoint status") + \
    all_formats("endpoint hashkv") + all_formats("endpoint health") + \
    all_formats("alarm list") + all_formats("alarm disarm") + all_formats("defrag") + [
    S("endpoint hashkv --rev 2"),
    S("endpoint hashkv --rev 2 -w json"),
    S("endpoint status --cluster"),
    S("endpoint health --cluster -w json"),
    S("defrag --cluster"),
    S("alarm list extra"),
    S("alarm disarm extra"),
    S("member remove"),
    S("member remove zz"),
    S("member remove 1234"),
    S("member update 1234"),
    S("member update 1234 --peer-urls=http://127.0.0.1:1"),
    S("member update 1234 --peer-urls=ftp://x:1"),
    S("member add"),
    S("member add a b http://x"),
    S("member add newm"),
    S("member add newm --peer-urls=nourl"),
    S("member add newm --peer-urls=http://noport"),
    S("member add newm --peer-urls=http://h:1/path"),
    S("member promote"),
    S("member promote 1234"),
    S("move-leader"),
    S("move-leader zz"),
    S("move-leader 1234"),
    S("version"),
    S("version -w json"),
]

# With --endpoints pointing at a closed port: how a dead endpoint fails.
DEAD_STEPS = [
    S("get foo"),
    S("put foo bar -w json"),
    S("endpoint health"),
    S("endpoint health -w json"),
    S("endpoint status"),
    S("endpoint hashkv"),
    S("member list"),
    S("defrag"),
    S("compaction 1"),
    S("lease grant 10"),
    S("alarm list"),
    S("--dial-timeout=300ms lease keep-alive 1234"),
    S("--dial-timeout=300ms --user root:pw get foo"),
]


# commands other files implement (their help texts are checked there)
OTHER_FILES = ("snapshot", "make-mirror", "migrate", "lock", "elect", "auth", "user", "role",
               "check", "completion")


def cmd_paths():
    """Every command path etcdctl has, from its own help listing."""
    out = subprocess.run([ETCDCTL, "--help"], capture_output=True, env=ctl_env()).stdout.decode()
    paths = []
    for line in out.split("COMMANDS:")[1].split("OPTIONS:")[0].splitlines():
        if line.startswith("\t"):
            paths.append(line.strip().split("\t")[0])
    return paths


def offline_steps():
    """Bad input and help texts: no server involved."""
    steps = [
        S("--help"), S("-h"), S("help"), S("help get"), S("help member add"), S("help nosuch"),
        S(""), S("nosuch"), S("a"), S("l"), S("--command-timeout=300ms ge foo"), S("mem"),
        S("member"),
        S("member nosuch"), S("lease"), S("endpoint"), S("alarm"), S("--foo get a"),
        S("get a --foo"), S("get a --foo=1"), S("get a -Z"), S("get a -"), S("-w"),
        S("--endpoints"), S("get a ---x"), S("get --=x a"), S("--dial-timeout=x get a"),
        S("--dial-timeout=1q get a"), S("--dial-timeout=1 get a"), S("--command-timeout=-x get a"),
        S("--hex=maybe get a"), S("get a --rev=1e3"), S("get a --limit=99999999999999999999"),
        S("--cert= get a"), S("--key= get a"), S("--cacert= get a"),
        S("--cert=/nonexistent/c.pem --key=/nonexistent/k.pem get a"),
        S("--cert=/nonexistent/c.pem get a"),
        S("watch"), S("watch a --"), S("watch --rev x a"), S("watch a b --prefix"),
        S("watch a", env={"ETCDCTL_WATCH_RANGE_END": "z"}),
        S("watch a", env={"ETCDCTL_WATCH_KEY": "k"}),
        S("get a", env={"ETCDCTL_WRITE_OUT": "yaml"}),
        S("get a", env={"ETCDCTL_API": "4"}),
        S("version", env={"ETCDCTL_API": "3"}),
        S("version --nosuch"),
    ]
    for p in cmd_paths():
        if p.split()[0] not in OTHER_FILES:
            steps.append(S(p + " --help"))
    steps += [S("help " + p) for p in ("lease grant", "endpoint status", "put", "watch", "txn")]
    return steps


# ---- running and normalizing ----

class Side:
    """One etcdctl binary against its own servers; remembers lease IDs."""

    def __init__(self, ctl_path, endpoints):
        self.ctl = ctl_path
        self.eps = endpoints
        self.leases = []

    def run(self, step):
        args = list(step.args)
        for i, l in enumerate(self.leases):
            args = [a.replace("{LEASE%d}" % (i + 1), l) for a in args]
        if step.ep:
            args = ["--endpoints", ",".join(self.eps)] + args
        env = ctl_env()
        env.update(step.env)
        r = subprocess.run([self.ctl] + args, input=step.stdin, capture_output=True, env=env,
                           timeout=60)
        m = re.match(rb"lease ([0-9a-f]{16}) granted", r.stdout)
        if m:
            self.leases.append(m.group(1).decode())
        m = re.search(rb'"ID":(\d+),"TTL"', r.stdout)
        if m and b"Error" in r.stdout:
            self.leases.append("%x" % int(m.group(1)))
        m = re.search(rb'"ID" : (\d+)\n"TTL"', r.stdout)
        if m and "grant" in step.args:
            self.leases.append("%x" % int(m.group(1)))
        return r.returncode, r.stdout, r.stderr


def normalize(data, side, step):
    s = data.decode("utf-8", errors="replace")
    for i, ep in enumerate(side.eps):
        s = s.replace(ep, "EP%d" % i)
    for i, lid in enumerate(side.leases):
        s = s.replace(lid.rjust(16, "0"), "LEASE%d" % (i + 1))
        s = re.sub(r"\b%d\b" % int(lid, 16), "LEASEDEC%d" % (i + 1), s)
    s = re.sub(r'"ts":"[^"]*"', '"ts":"T"', s)
    s = re.sub(r"client-[0-9a-f-]{36}", "client-UUID", s)
    s = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", "DATE", s)
    s = re.sub(r"took = [0-9.]+[mµn]?s", "took = T", s)
    s = re.sub(r'"took":"[0-9.]+[mµn]?s"', '"took":"T"', s)
    s = re.sub(r'"Took" : [0-9.]+[mµn]?s', '"Took" : T', s)
    s = re.sub(r"\| [0-9.]+[mµn]?s \|", "| T |", s)
    s = re.sub(r'"(dbSize|dbSizeInUse)":\d+', r'"\1":N', s)
    s = re.sub(r'"DBSize" : \d+', '"DBSize" : N', s)
    s = re.sub(r"\d+(\.\d)? [kMG]?B\b", "SIZE", s)
    if "status" in step.args:
        s = re.sub(r'"(raftIndex|raftAppliedIndex)":\d+', r'"\1":N', s)
        s = re.sub(r'"(RaftIndex|RaftAppliedIndex)" : \d+', r'"\1" : N', s)
        s = re.sub(r"(false|true), (\d+), \d+, \d+, ", r"\1, \2, N, N, ", s)
        s = re.sub(r"\| +\d+ \| +\d+ \| +(\|| [^|]*\|)$", "| N | N |", s, flags=re.M)
    if "hashkv" in step.args:  # the hash covers lease IDs, which differ
        s = re.sub(r'"hash":\d+', '"hash":N', s)
        s = re.sub(r'"Hash" : \d+', '"Hash" : N', s)
        s = re.sub(r"^(EP\d+), \d+$", r"\1, N", s, flags=re.M)
        s = re.sub(r"\| \d+ \|$", "| N |", s, flags=re.M)
    if "timetolive" in step.args:
        s = re.sub(r"remaining\(\d+s\)", "remaining(Ns)", s)
        s = re.sub(r'"ttl":\d+', '"ttl":N', s)
        s = re.sub(r'"TTL" : \d+', '"TTL" : N', s)
        s = re.sub(r"attached keys\(\[([^]]*)\]\)",
                   lambda m: "attached keys([" + " ".join(sorted(m.group(1).split())) + "])", s)
        s = re.sub(r'"keys":\[([^]]*)\]',
                   lambda m: '"keys":[' + ",".join(sorted(m.group(1).split(","))) + "]", s)
        s = re.sub(r'(?:"Key" : [^\n]*\n)+', lambda m: "".join(sorted(m.group(0).splitlines(True))), s)
    # table borders follow the widths of what was normalized
    s = re.sub(r"-{2,}", "-", s)
    s = re.sub(r" {2,}", " ", s)
    # a Go panic's goroutine dump is not ours to copy
    s = re.split(r"\n\[signal|\ngoroutine ", s)[0]
    if step.sort_lines:
        s = "\n".join(sorted(s.splitlines()))
    return s


def run_side(side, steps, out):
    for st in steps:
        rc, o, e = side.run(st)
        out.append((rc, normalize(o, side, st), normalize(e, side, st)))


def compare(steps, real_side, our_side, label):
    want, got = [], []
    threads = [threading.Thread(target=run_side, args=(real_side, steps, want)),
               threading.Thread(target=run_side, args=(our_side, steps, got))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    eq(len(got), len(steps), label + ": steps run")
    bad = []
    for st, g, w in zip(steps, got, want):
        if g != w:
            bad.append("%s: etcdctl %s\n  ours: %r\n  real: %r" % (label, " ".join(st.args), g, w))
    if bad:
        raise AssertionError("%d of %d steps differ:\n%s" % (len(bad), len(steps), "\n".join(bad[:15])))
    return want


def twin_servers(binary, n=2):
    return [Server(binary) for _ in range(n)]


def golden_against(binary, steps, label, setup=()):
    d = our_ctl_dir()
    srvs = twin_servers(binary)
    try:
        for srv in srvs:  # the same state on both, made by Debian's etcdctl
            for args in setup:
                subprocess.run([ETCDCTL, "--endpoints", srv.endpoint] + args, capture_output=True,
                               env=ctl_env(), check=True)
        real_side = Side(ETCDCTL, [srvs[0].endpoint])
        our_side = Side(os.path.join(d, "etcdctl"), [srvs[1].endpoint])
        want = compare(steps, real_side, our_side, label)
        for s in srvs:
            check(s.alive(), "server died")
        return want
    finally:
        for s in srvs:
            s.stop()
        shutil.rmtree(d, ignore_errors=True)


# ---- tests ----

@test
def ctl_golden_kv():
    steps = KV_STEPS + LEASE_STEPS + CLUSTER_STEPS
    ours = {}
    t = threading.Thread(target=lambda: ours.__setitem__(
        "err", _catch(lambda: golden_against(OUR_BIN, steps, "our etcd"))))
    t.start()
    try:
        want = golden_against(REAL_ETCD, steps, "real etcd")
    finally:
        t.join()
    if ours["err"]:
        raise ours["err"]
    print("    %d steps, %d with output, %d failing with Error:" % (
        len(want), sum(1 for _, out, _ in want if out), sum(1 for rc, _, err in want if rc and "Error" in err)))
    check(sum(1 for rc, out, _ in want if out) > 120, "too few outputs")
    check(sum(1 for rc, _, err in want if rc and "Error" in err) > 40, "too few error cases")


def _catch(fn):
    try:
        fn()
    except Exception as e:  # handed to the test's thread
        return e
    return None


AUTH_SETUP = [["user", "add", "root", "--new-user-password=pw"], ["put", "k", "v"],
              ["auth", "enable"]]
AUTH_STEPS = [
    S("--user root:pw get k"),
    S("--user root --password pw get k -w json"),
    S("--user=root:pw put k2 v2"),
    S("--user root:bad get k"),
    S("--user nobody:x get k"),
    S("get k"),
    S("put k v3"),
    S("--user root:pw endpoint health"),
    S("--user root:bad endpoint health"),
    S("--user root:bad endpoint health -w json"),
    S("--user root:pw endpoint status -w json"),
    S("--user root:bad endpoint status"),
    S("--user root:pw member list"),
    S("--user root get k", stdin=b"pw\n"),
    S("--user root get k", stdin=b"bad\n"),
    S("--user root:pw lease grant 10 -w fields"),
    S("--user root:pw watch k --rev 1 -w json -- false"),
    S("--user root:pw --password=pw get k"),
]


@test
def ctl_golden_auth():
    golden_against(REAL_ETCD, AUTH_STEPS, "real etcd with auth", setup=AUTH_SETUP)


@test
def ctl_golden_bad_input_and_help():
    d = our_ctl_dir()
    dead = "127.0.0.1:%d" % free_ports(1)[0]
    try:
        real_side = Side(ETCDCTL, [dead])
        our_side = Side(os.path.join(d, "etcdctl"), [dead])
        want = compare(offline_steps(), real_side, our_side, "offline")
        check(sum(1 for _, out, _ in want if "USAGE:" in out) > 40, "too few help texts")
        fast = [S(["--command-timeout=700ms"] + st.args) for st in DEAD_STEPS]
        compare(fast, real_side, our_side, "dead endpoint")
    finally:
        shutil.rmtree(d, ignore_errors=True)


# Ends a watch deterministically: the command run for the last event kills
# its parent etcdctl once everything before it was printed.
KILLER = """#!/bin/sh
echo "$ETCD_WATCH_REVISION $ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY $ETCD_WATCH_VALUE"
[ "$ETCD_WATCH_VALUE" != '"4"' ] || kill $PPID
"""


def watch_session(ctl, srv, tmp):
    """Watches replayed from history, so nothing waits on timing: every
    format, ranges, exec, interactive mode, compaction, keep-alive until
    revoked."""
    ep = ["--endpoints", srv.endpoint]
    env = ctl_env()
    killer = os.path.join(tmp, "killer")
    if not os.path.exists(killer):
        with open(killer, "w") as f:
            f.write(KILLER)
        os.chmod(killer, 0o755)
    out = []

    def run(args, stdin=None, keep_open=False, after_first=None, extra_env=None):
        p = subprocess.Popen([ctl] + ep + args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=dict(env, **(extra_env or {})))
        first = b""
        if stdin:
            p.stdin.write(stdin)
            p.stdin.flush()
        if not keep_open:
            p.stdin.close()
        if after_first:
            first = p.stdout.readline()
            after_first()
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        o, e = first + p.stdout.read(), p.stderr.read()
        for f in (p.stdout, p.stderr) + ((p.stdin,) if keep_open else ()):
            f.close()
        e = re.sub(rb"\n\[signal.*|\ngoroutine .*", b"", e, flags=re.S)
        out.append((args, p.returncode, o, e))
        return o

    for f in FORMATS:
        run(["watch", "wk", "--rev", "2", "-w", f, "--", killer])
    run(["watch", "wk", "--prefix", "--rev", "2", "--prev-kv", "--", killer])
    run(["watch", "wk", "wl", "--rev", "2", "--", killer])
    run(["watch", "--rev", "2", "--", killer], extra_env={"ETCDCTL_WATCH_KEY": "wk"})
    run(["watch", "--rev", "2", "--prev-kv", "-w", "json", "--", killer],
        extra_env={"ETCDCTL_WATCH_KEY": "wk", "ETCDCTL_WATCH_RANGE_END": "wl"})
    run(["watch", "-i"], stdin=b"watch wk --rev 2 -- " + killer.encode() + b"\n", keep_open=True)
    run(["watch", "-i", "--hex"], stdin=b"watch --prefix wk --rev 2 -- " + killer.encode() + b"\n",
        keep_open=True)
    run(["watch", "-i"], stdin=b"bogus\nwatch\nwatch wk --rev 2 --prefix x\nprogress\n")
    # compacted history: the watch is canceled, etcdctl exits 5
    subprocess.run([ETCDCTL] + ep + ["compaction", "5"], capture_output=True, env=env)
    run(["watch", "wk", "--rev", "2"])
    run(["watch", "wk", "--rev", "2", "-w", "json"])
    # keep-alive prints until the lease is revoked
    for fmt in ("simple", "json"):
        lid = subprocess.run([ETCDCTL] + ep + ["lease", "grant", "3"], capture_output=True,
                             env=env).stdout.split()[1].decode()
        run(["lease", "keep-alive", lid, "-w", fmt], after_first=lambda: subprocess.run(
            [ETCDCTL] + ep + ["lease", "revoke", lid], capture_output=True, env=env))
        args, rc, o, e = out[-1]
        dec = str(int(lid, 16)).encode()
        out[-1] = (args[:2] + args[3:], rc,
                   re.sub(rb'"revision":\d+', b'"revision":N', o.replace(lid.encode(), b"LEASE").replace(dec, b"LEASEDEC")),
                   e.replace(lid.encode(), b"LEASE"))
    return out


def watch_writes(srv):
    ep = ["--endpoints", srv.endpoint]
    for args in (["put", "wk", "1"], ["put", "wk", "2"], ["put", "wk2", "x y"], ["del", "wk"],
                 ["put", "wl", "3"], ["put", "wk", "4"]):
        subprocess.run([ETCDCTL] + ep + args, capture_output=True, env=ctl_env(), check=True)


@test
def ctl_golden_watch_and_keepalive():
    d = our_ctl_dir()
    try:
        for binary in (REAL_ETCD, OUR_BIN):
            srvs = twin_servers(binary)
            try:
                for s in srvs:
                    watch_writes(s)
                res = {}
                ts = [threading.Thread(target=lambda k, c, s: res.__setitem__(k, watch_session(c, s, d)),
                                       args=(k, c, s))
                      for k, c, s in (("real", ETCDCTL, srvs[0]),
                                      ("ours", os.path.join(d, "etcdctl"), srvs[1]))]
                for t in ts:
                    t.start()
                for t in ts:
                    t.join()
                for (args, *g), (_, *w) in zip(res["ours"], res["real"]):
                    eq(g, w, "%s: etcdctl %s" % (os.path.basename(binary), " ".join(args)))
                check(all(o for _, _, o, _ in res["real"][:4]), "watches printed nothing")
                eq(res["real"][0][1], -15, "the watch was not ended by its command")
            finally:
                for s in srvs:
                    s.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- a three-member real etcd cluster ----

def start_cluster(n=3):
    """n real etcd members on loopback; returns (procs, client endpoints, tmp)."""
    tmp = tempfile.mkdtemp(prefix="ctlcluster.")
    ports = free_ports(2 * n)
    names = ["m%d" % i for i in range(n)]
    peer = ["http://127.0.0.1:%d" % ports[2 * i + 1] for i in range(n)]
    client = ["127.0.0.1:%d" % ports[2 * i] for i in range(n)]
    initial = ",".join("%s=%s" % (names[i], peer[i]) for i in range(n))
    procs = []
    for i in range(n):
        log = open(os.path.join(tmp, names[i] + ".log"), "wb")
        procs.append(subprocess.Popen(
            [REAL_ETCD, "--name", names[i], "--data-dir", os.path.join(tmp, names[i]),
             "--listen-client-urls", "http://" + client[i], "--advertise-client-urls", "http://" + client[i],
             "--listen-peer-urls", peer[i], "--initial-advertise-peer-urls", peer[i],
             "--initial-cluster", initial, "--initial-cluster-token", "ctlgolden",
             "--heartbeat-interval", "20", "--election-timeout", "200"],
            stdout=log, stderr=subprocess.STDOUT))
    deadline = time.time() + 30
    while time.time() < deadline:
        r = subprocess.run([ETCDCTL, "--endpoints", ",".join(client), "endpoint", "health",
                            "--command-timeout=1s"], capture_output=True, env=ctl_env())
        if r.returncode == 0:
            break
        time.sleep(0.1)
    return procs, client, tmp


def stop_cluster(procs, tmp):
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    shutil.rmtree(tmp, ignore_errors=True)


def member_ids(eps):
    r = subprocess.run([ETCDCTL, "--endpoints", eps[0], "member", "list"], capture_output=True,
                       env=ctl_env())
    return {l.split(", ")[2]: l.split(", ")[0] for l in r.stdout.decode().splitlines()}


def leader_name(eps, ids):
    r = subprocess.run([ETCDCTL, "--endpoints", ",".join(eps), "endpoint", "status", "-w", "json"],
                       capture_output=True, env=ctl_env())
    m = re.search(rb'"leader":(\d+)', r.stdout)
    lid = "%x" % int(m.group(1))
    return [n for n, i in ids.items() if i == lid][0]


@test
def ctl_golden_cluster():
    """Multi-member commands against one real 3-member cluster, Debian's
    etcdctl first, then ours doing the same change."""
    d = our_ctl_dir()
    procs, eps, tmp = start_cluster()
    try:
        ours = os.path.join(d, "etcdctl")
        ids = member_ids(eps)
        all_eps = ",".join(eps)

        def norm(b):
            s = b.decode(errors="replace")
            # "%16x" pads a short ID with spaces
            s = re.sub(r"\b(Member|cluster) +", r"\1 ", s)
            for n, i in ids.items():
                s = re.sub(r"\b%s\b" % i, "ID_" + n, s)
                s = re.sub(r"\b%d\b" % int(i, 16), "IDDEC_" + n, s)
            for i, ep in enumerate(eps):
                s = s.replace(ep, "EP%d" % i)
            s = re.sub(r'"ts":"[^"]*"', '"ts":"T"', s)
            s = re.sub(r"client-[0-9a-f-]{36}", "client-UUID", s)
            s = re.sub(r"took = [0-9.]+[mµn]?s", "took = T", s)
            s = re.sub(r'"took":"[0-9.]+[mµn]?s"', '"took":"T"', s)
            s = re.sub(r"\| [0-9.]+[mµn]?s \|", "| T |", s)
            s = re.sub(r'"(dbSize|dbSizeInUse|raftIndex|raftAppliedIndex|revision|raft_term|raftTerm)":\d+',
                       r'"\1":N', s)
            s = re.sub(r"\d+(\.\d)? [kMG]?B\b", "SIZE", s)
            # which member answers a balanced request is grpc's random pick
            s = re.sub(r'"member_id":IDDEC_m\d', '"member_id":M', s)
            s = re.sub(r'"MemberID" : IDDEC_m\d\n"Revision"', '"MemberID" : M\n"Revision"', s)
            s = re.sub(r"(false|true), \d+, \d+, \d+, ", r"\1, N, N, N, ", s)
            s = re.sub(r"\| +\d+ \| +\d+ \| +\d+ \|", "| N | N | N |", s)
            s = re.sub(r"-{2,}", "-", s)
            s = re.sub(r" {2,}", " ", s)
            return re.split(r"\n\[signal|\ngoroutine ", s)[0]

        def both(args, ep=all_eps, sort=False, extra_ids=None):
            res = []
            for ctl in (ETCDCTL, ours):
                r = subprocess.run([ctl, "--endpoints", ep] + args, capture_output=True,
                                   env=ctl_env(), timeout=60)
                o, e = norm(r.stdout), norm(r.stderr)
                if extra_ids:
                    o, e = extra_ids(o), extra_ids(e)
                if sort:
                    o = "\n".join(sorted(o.splitlines()))
                    e = "\n".join(sorted(e.splitlines()))
                res.append((r.returncode, o, e))
            eq(res[1], res[0], "etcdctl " + " ".join(args))
            return res[0]

        for f in FORMATS:
            both(["member", "list", "-w", f], ep=eps[0])
            both(["endpoint", "status", "-w", f], sort=f == "simple")
            both(["endpoint", "status", "--cluster", "-w", f], ep=eps[0], sort=f == "simple")
            both(["endpoint", "hashkv", "--cluster", "-w", f], ep=eps[0], sort=f == "simple")
        both(["endpoint", "health", "--cluster"], ep=eps[0], sort=True)
        both(["defrag", "--cluster"], ep=eps[0])

        # learners: each etcdctl adds one, fails to promote it (not started),
        # updates and removes it
        for ctl in (ETCDCTL, ours):
            port = free_ports(1)[0]
            url = "http://127.0.0.1:%d" % port
            res = []
            deadline = time.time() + 20
            while True:  # etcd refuses changes until its members were up 5s
                r = subprocess.run([ctl, "--endpoints", all_eps, "member", "add", "learner1",
                                    "--learner", "--peer-urls", url], capture_output=True,
                                   env=ctl_env())
                if b"unhealthy cluster" not in r.stderr or time.time() > deadline:
                    break
                time.sleep(0.2)
            new_id = re.search(rb"Member ([0-9a-f ]{16}) added", r.stdout).group(1).decode().strip()

            def fix(s, new_id=new_id, port=port):
                s = re.sub(r"\b%s\b" % new_id, "NEWID", s)
                s = re.sub(r"\b%d\b" % int(new_id, 16), "NEWIDDEC", s)
                s = s.replace(str(port), "PORT")
                # members come sorted by ID, and the new one's ID is random
                s = re.sub(r'ETCD_INITIAL_CLUSTER="([^"]*)"',
                           lambda m: 'ETCD_INITIAL_CLUSTER="%s"' % ",".join(sorted(m.group(1).split(","))), s)
                if s.startswith('{"header"'):
                    j = json.loads(re.sub(r'(?<=[:\[,])(IDDEC_\w+|NEWIDDEC|M|N)(?=[,}\]])', r'"\1"', s))
                    j["members"] = sorted(j.get("members", []), key=lambda m: m["peerURLs"])
                    return json.dumps(j, sort_keys=True)
                return "\n".join(sorted(s.splitlines()))
            res.append((r.returncode, fix(norm(r.stdout)), fix(norm(r.stderr))))
            for args in (["member", "list"], ["member", "list", "-w", "json"],
                         ["member", "promote", new_id], ["member", "promote", new_id, "-w", "json"],
                         ["member", "update", new_id, "--peer-urls", url + "," + url.replace("127.0.0.1", "localhost")],
                         ["member", "update", new_id, "--peer-urls", url, "-w", "json"],
                         ["member", "remove", new_id], ["member", "remove", new_id]):
                r = subprocess.run([ctl, "--endpoints", all_eps] + args, capture_output=True,
                                   env=ctl_env())
                res.append((r.returncode, fix(norm(r.stdout)), fix(norm(r.stderr))))
            if ctl == ETCDCTL:
                want = res
            else:
                for g, w in zip(res, want):
                    eq(g, w, "member add/promote/update/remove")

        # move-leader: each etcdctl moves the leadership to the next member
        for ctl in (ETCDCTL, ours):
            lead = leader_name(eps, ids)
            target = sorted(ids)[(sorted(ids).index(lead) + 1) % 3]
            r = subprocess.run([ctl, "--endpoints", all_eps, "move-leader", ids[target]],
                               capture_output=True, env=ctl_env())
            eq((r.returncode, norm(r.stdout)),
               (0, "Leadership transferred from ID_%s to ID_%s\n" % (lead, target)),
               "move-leader with " + ctl)
        # through an endpoint that is not the leader's: etcdctl refuses
        lead = leader_name(eps, ids)
        other = [eps[i] for i, n in enumerate(sorted(ids)) if n != lead][0]
        both(["move-leader", ids[lead]], ep=other)
    finally:
        stop_cluster(procs, tmp)
        shutil.rmtree(d, ignore_errors=True)


@test
def ctl_get_speed():
    """100 `etcdctl get` invocations: ours (the release binary when built)
    must be faster than Debian's; prints both times."""
    binary = REL_BIN if os.path.exists(REL_BIN) else OUR_BIN
    d = our_ctl_dir(binary)
    srv = Server(OUR_BIN)
    try:
        subprocess.run([ETCDCTL, "--endpoints", srv.endpoint, "put", "k", "v"], capture_output=True,
                       env=ctl_env(), check=True)
        times = {}
        for name, ctl in (("ours", os.path.join(d, "etcdctl")), ("real", ETCDCTL)):
            t0 = time.time()
            for _ in range(100):
                r = subprocess.run([ctl, "--endpoints", srv.endpoint, "get", "k"],
                                   capture_output=True, env=ctl_env())
                eq(r.stdout, b"k\nv\n", name)
            times[name] = time.time() - t0
        print("    100 x etcdctl get: ours %.0f ms (%s), real %.0f ms" %
              (times["ours"] * 1000, os.path.relpath(binary, ROOT), times["real"] * 1000), flush=True)
        check(times["ours"] < times["real"], "ours is not faster")
    finally:
        srv.stop()
        shutil.rmtree(d, ignore_errors=True)


# ---- TLS ----

def make_certs(d):
    """A CA, a server certificate for 127.0.0.1/localhost, a client
    certificate and an unrelated CA, made with openssl."""
    def ossl(*args):
        subprocess.run(["openssl"] + list(args), cwd=d, check=True, capture_output=True)
    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
         "-days", "2", "-subj", "/CN=ctl-golden-ca")
    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-out",
         "other.pem", "-days", "2", "-subj", "/CN=other-ca")
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n")
    with open(os.path.join(d, "client.ext"), "w") as f:
        f.write("extendedKeyUsage=clientAuth\n")
    for name in ("server", "client"):
        ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out", name + ".csr",
             "-subj", "/CN=" + name)
        ossl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", name + ".pem", "-days", "2", "-extfile", name + ".ext")


TLS_GOOD = ["--cacert", "ca.pem", "--cert", "client.pem", "--key", "client.key"]


def start_tls_server(binary, d):
    """binary serving https:// with client-certificate auth on the
    certificates of make_certs(d), once it has taken a first put k=v:
    (process, log file, client port)."""
    cport, pport = free_ports(2)
    url = "https://127.0.0.1:%d" % cport
    log = open(os.path.join(d, "etcd-%d.log" % cport), "wb")
    p = subprocess.Popen([binary, "--data-dir", os.path.join(d, "data-%d" % cport),
                          "--listen-client-urls", url, "--advertise-client-urls", url,
                          "--listen-peer-urls", "http://127.0.0.1:%d" % pport,
                          "--cert-file", "server.pem", "--key-file", "server.key",
                          "--trusted-ca-file", "ca.pem", "--client-cert-auth"],
                         cwd=d, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 20
    while time.time() < deadline:
        if subprocess.run([ETCDCTL, "--endpoints", url] + TLS_GOOD + ["put", "k", "v"], cwd=d,
                          capture_output=True, env=ctl_env()).returncode == 0:
            break
        time.sleep(0.1)
    return p, log, cport


@test
def ctl_golden_tls():
    """Real etcd 3.4.23 serving TLS with client-certificate auth: both
    etcdctls with good and bad TLS options."""
    d = our_ctl_dir()
    make_certs(d)
    good = TLS_GOOD
    p, log, cport = start_tls_server(REAL_ETCD, d)
    url = "https://127.0.0.1:%d" % cport
    try:
        host = "127.0.0.1:%d" % cport
        short = ["--command-timeout=700ms"]
        steps = [
            S(["--endpoints", url] + good + ["get", "k"], ep=False),
            S(["--endpoints", url] + good + ["get", "k", "-w", "json"], ep=False),
            S(["--endpoints", host] + good + ["get", "k"], ep=False),
            S(["--endpoints", "https://localhost:%d" % cport] + good + ["get", "k"], ep=False),
            S(["--endpoints", url] + good + ["endpoint", "health"], ep=False),
            S(["--endpoints", url] + good + ["endpoint", "status"], ep=False),
            S(["--endpoints", url] + good + ["member", "list", "-w", "table"], ep=False),
            S(["--endpoints", url, "--insecure-skip-tls-verify", "--cert", "client.pem",
               "--key", "client.key", "get", "k"], ep=False),
            S(["--endpoints", host, "--insecure-transport=false", "--insecure-skip-tls-verify",
               "--cert", "client.pem", "--key", "client.key", "get", "k"], ep=False),
            S(["--endpoints", url] + short + ["--cacert", "other.pem", "--cert", "client.pem",
                                              "--key", "client.key", "get", "k"], ep=False),
            S(["--endpoints", url] + short + ["--cacert", "ca.pem", "get", "k"], ep=False),
            S(["--endpoints", host] + short + ["get", "k"], ep=False),
            S(["--endpoints", url, "--cacert", "ca.pem", "--cert", "client.pem", "--key", "ca.key",
               "get", "k"], ep=False),
            S(["--endpoints", url, "--cacert", "ca.pem", "--cert", "client.key", "--key",
               "client.pem", "get", "k"], ep=False),
            S(["--endpoints", url, "--cacert", "ca.pem", "--cert", "client.pem", "get", "k"],
              ep=False),
            S(["--endpoints", url, "--cacert", "nope.pem", "get", "k"], ep=False),
        ]
        real_side = Side(ETCDCTL, [url, host, "localhost:%d" % cport])
        our_side = Side(os.path.join(d, "etcdctl"), [url, host, "localhost:%d" % cport])
        want = []
        got = []
        for st in steps:  # one server: run them in turn, real first
            for side, out in ((real_side, want), (our_side, got)):
                r = subprocess.run([side.ctl] + st.args, capture_output=True, env=ctl_env(), cwd=d,
                                   timeout=60)
                out.append((r.returncode, normalize(r.stdout, side, st), normalize(r.stderr, side, st)))
        for st, g, w in zip(steps, got, want):
            eq(g, w, "etcdctl " + " ".join(st.args))
        check(want[0][1] == "k\nv\n", "TLS get did not work: %r" % (want[0],))
    finally:
        p.terminate()
        p.wait(10)
        log.close()
        shutil.rmtree(d, ignore_errors=True)


@test
def server_tls_matches_real_etcd():
    """Our server on an https:// client URL with --cert-file/--key-file,
    --trusted-ca-file and --client-cert-auth, next to real etcd 3.4.23 with
    the same flags: Debian's etcdctl, with good and bad TLS options, prints
    the same against both; python-etcd3 with certificates reads and writes
    (a 1 MiB value too) and watches; HTTP/1.1 /health answers over TLS."""
    import ssl
    import etcd3
    d = our_ctl_dir()
    make_certs(d)
    good = TLS_GOOD
    servers = []
    try:
        for binary in (REAL_ETCD, OUR_BIN):
            servers.append(start_tls_server(binary, d))
        short = ["--command-timeout=700ms"]
        steps = [
            ["get", "k"], ["get", "k", "-w", "json"], ["put", "k2", "v2"], ["get", "k", "--prefix"],
            ["endpoint", "health"], ["member", "list", "-w", "table"],
            ["--insecure-skip-tls-verify", "--cert", "client.pem", "--key", "client.key", "get", "k"],
            short + ["--cacert", "other.pem", "--cert", "client.pem", "--key", "client.key", "get", "k"],
            short + ["--cacert", "ca.pem", "get", "k"],
            short + ["--cacert", "ca.pem", "--cert", "server.pem", "--key", "server.key", "get", "k"],
            short + ["--insecure-transport", "get", "k"],
        ]
        outs = []
        for _, _, cport in servers:
            url = "https://127.0.0.1:%d" % cport
            side = Side(ETCDCTL, [url, "127.0.0.1:%d" % cport])
            res = []
            for st in steps:
                args = ["--endpoints", url] + (good if st[0] in ("get", "put", "endpoint", "member") else []) + st
                r = subprocess.run([ETCDCTL] + args, capture_output=True, env=ctl_env(), cwd=d, timeout=60)
                s = S(args, ep=False)
                res.append((r.returncode, normalize(r.stdout, side, s), normalize(r.stderr, side, s)))
            outs.append(res)
        for st, w, g in zip(steps, outs[0], outs[1]):
            eq(g, w, "etcdctl " + " ".join(st))
        check(outs[0][0][1] == "k\nv\n", "TLS get did not work: %r" % (outs[0][0],))

        cport = servers[1][2]
        c = etcd3.client("127.0.0.1", cport, ca_cert=os.path.join(d, "ca.pem"),
                         cert_key=os.path.join(d, "client.key"), cert_cert=os.path.join(d, "client.pem"))
        c.put("py", "tls")
        eq(c.get("py")[0], b"tls")
        big = os.urandom(1 << 20)  # many records each way, the engine taking output in pieces
        c.put("big", big)
        eq(c.get("big")[0], big)
        events, cancel = c.watch("w")
        for i in range(50):
            c.put("w", str(i))
        eq([next(events).value for _ in range(50)], [str(i).encode() for i in range(50)])
        cancel()
        c.close()
        ctx = ssl.create_default_context(cafile=os.path.join(d, "ca.pem"))
        ctx.load_cert_chain(os.path.join(d, "client.pem"), os.path.join(d, "client.key"))
        import socket as _socket
        with _socket.create_connection(("127.0.0.1", cport)) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as t:
                t.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                got = b""
                while True:
                    chunk = t.recv(4096)
                    if not chunk:
                        break
                    got += chunk
        check(got.startswith(b"HTTP/1.1 200") and b'"health":"true"' in got, got[:300])
    finally:
        for p, log, _ in servers:
            p.terminate()
            p.wait(10)
            log.close()
        shutil.rmtree(d, ignore_errors=True)
