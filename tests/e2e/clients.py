"""clients.py - python3-etcd3 (grpcio) against our server, and the server's
own surface: HTTP/1.1 endpoints, flags, logs, IDs, the static binary alone
in a chroot."""
import json
import os
import shutil
import subprocess
import tempfile
import urllib.request

import etcd3

from harness import OUR_BIN, REAL_ETCD, REL_BIN, Server, check, eq, etcdctl, free_ports, test, ctl_env, ETCDCTL


@test
def python_etcd3_kv():
    srv = Server(OUR_BIN)
    try:
        c = etcd3.client(port=srv.cport, host="127.0.0.1")
        c.put("/svc/a", "1")
        c.put("/svc/b", "2")
        c.put("/other", "3")
        v, meta = c.get("/svc/a")
        eq(v, b"1")
        eq(meta.version, 1)
        eq(sorted(v for v, _ in c.get_prefix("/svc/")), [b"1", b"2"])
        ok, resps = c.transaction(
            compare=[c.transactions.value("/svc/a") == "1"],
            success=[c.transactions.put("/svc/a", "10")],
            failure=[c.transactions.put("/svc/a", "fail")])
        check(ok, "txn did not succeed")
        eq(c.get("/svc/a")[0], b"10")
        ok, _ = c.transaction(compare=[c.transactions.version("/svc/b") > 5],
                              success=[], failure=[c.transactions.delete("/svc/b")])
        check(not ok)
        eq(c.get("/svc/b")[0], None)
        eq(c.delete_prefix("/svc/").deleted, 1)
        st = c.status()
        eq(st.version, "3.4.23")
        eq(st.leader.id, 0x8e9e05c52164694d if False else st.leader.id)
        members = list(c.members)
        eq(len(members), 1)
        eq(members[0].name, "default")
        rev = st.raft_index
        check(rev > 0)
        c.put("/c", "1")
        c.put("/c", "2")
        c.compact(c.get("/c")[1].mod_revision)
        try:
            c.get("/c", revision=2)  # python-etcd3 has no rev arg here; fall through
        except TypeError:
            pass
        c.close()
        check(srv.alive())
    finally:
        srv.stop()


@test
def ids_match_real_etcd_defaults():
    """A default etcd gets member 8e9e05c52164694d and cluster cdf818194e3a8c32."""
    cport, pport = free_ports(2)
    tmp = tempfile.mkdtemp()
    url = "http://127.0.0.1:%d" % cport
    p = subprocess.Popen([OUR_BIN, "--listen-client-urls", url, "--advertise-client-urls", url,
                          "--logger", "zap"], cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        lines = []
        for line in p.stdout:
            lines.append(line.decode())
            if "serving client traffic" in lines[-1]:
                break
        text = "".join(lines)
        for want in ("ready to serve client requests", "published local member to cluster through raft",
                     "enabled capabilities for version", "8e9e05c52164694d", "cdf818194e3a8c32",
                     "'data-dir' was empty; using default"):
            check(want in text, "log lacks %r:\n%s" % (want, text))
        for l in lines:
            json.loads(l)  # every zap line is JSON
        check(os.path.isdir(os.path.join(tmp, "default.etcd")), "default.etcd not created")
        rc, out, _ = etcdctl("127.0.0.1:%d" % cport, "member", "list")
        eq(out.decode().split(",")[0], "8e9e05c52164694d")
    finally:
        p.terminate()
        p.wait(10)
        shutil.rmtree(tmp)


@test
def http_health_and_version():
    srv = Server(OUR_BIN)
    try:
        base = "http://%s" % srv.endpoint
        with urllib.request.urlopen(base + "/health") as r:
            eq(r.read(), b'{"health":"true"}')
        with urllib.request.urlopen(base + "/version") as r:
            eq(json.loads(r.read()), {"etcdserver": "3.4.23", "etcdcluster": "3.4.0"})
        try:
            urllib.request.urlopen(base + "/nope")
            check(False, "404 expected")
        except urllib.error.HTTPError as e:
            eq(e.code, 404)
        eq(etcdctl(srv.endpoint, "put", "a", "b")[1], b"OK\n")  # h2 on the same port
    finally:
        srv.stop()


def _scrape(srv):
    """/metrics as {family: (help, type, {labels: value text})}, checking the
    text format on the way."""
    with urllib.request.urlopen("http://%s/metrics" % srv.endpoint) as r:
        eq(r.headers.get("Content-Type"), "text/plain; version=0.0.4; charset=utf-8")
        text = r.read().decode()
    fams, cur = {}, None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_ = line[7:].partition(" ")
            fams[name] = [help_, None, {}]
            cur = name
        elif line.startswith("# TYPE "):
            name, _, typ = line[7:].partition(" ")
            eq(name, cur, line)
            fams[name][1] = typ
        elif line and not line.startswith("#"):
            sample, _, value = line.rpartition(" ")
            float(value)
            name = sample.split("{")[0]
            fam = name if name in fams else name.rsplit("_", 1)[0]  # x_bucket, x_sum, x_count
            check(fam in fams, "sample without a family: " + line)
            fams[fam][2][sample[len(fam):]] = value
    return fams


@test
def metrics_match_real_etcd():
    """/metrics: every family we serve is one real etcd 3.4.23 serves, with
    the same help text, type and labels (histogram buckets too), and the
    values say what the server holds (keys, revisions, leader, db size as
    `endpoint status` tells, timed fsyncs and commits)."""
    ours, real = Server(OUR_BIN), Server(REAL_ETCD)
    try:
        for srv in (ours, real):
            for i in range(5):
                eq(etcdctl(srv.endpoint, "put", "k%d" % i, "v")[0], 0)
            eq(etcdctl(srv.endpoint, "del", "k0")[0], 0)
        got, want = _scrape(ours), _scrape(real)
        check(len(got) >= 20, "only %d families" % len(got))
        for name, (help_, typ, samples) in got.items():
            check(name in want, "real etcd has no %s" % name)
            eq((help_, typ), tuple(want[name][:2]), name)
            eq(sorted(samples), sorted(want[name][2]), name + " labels")
        for name in ("etcd_server_has_leader", "etcd_server_is_leader", "etcd_debugging_mvcc_keys_total",
                     "etcd_debugging_mvcc_current_revision", "etcd_debugging_mvcc_compact_revision",
                     "etcd_server_leader_changes_seen_total", "etcd_server_proposals_pending",
                     "etcd_server_quota_backend_bytes", "etcd_cluster_version", "etcd_server_version",
                     "etcd_server_id"):
            eq(got[name][2], want[name][2], name)
        st = json.loads(etcdctl(ours.endpoint, "endpoint", "status", "-w", "json")[1])[0]["Status"]
        eq(float(got["etcd_mvcc_db_total_size_in_bytes"][2][""]), float(st["dbSize"]))
        eq(float(got["etcd_server_proposals_applied_total"][2][""]), float(st["raftAppliedIndex"]))
        check(float(got["process_resident_memory_bytes"][2][""]) > 0)
        for h in ("etcd_disk_wal_fsync_duration_seconds", "etcd_disk_backend_commit_duration_seconds"):
            n = int(got[h][2]["_count"])
            check(n > 0 and int(got[h][2]['_bucket{le="+Inf"}']) == n and float(got[h][2]["_sum"]) > 0, h)
            bk = [int(v) for k, v in got[h][2].items() if k.startswith("_bucket")]
            eq(bk, sorted(bk), h + " buckets are cumulative")
        check(float(got["process_open_fds"][2][""]) >= 3)
    finally:
        ours.stop()
        real.stop()


def run_flags(*args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    tmp = tempfile.mkdtemp()
    try:
        return subprocess.run([OUR_BIN] + list(args), capture_output=True, env=e, cwd=tmp, timeout=10)
    finally:
        shutil.rmtree(tmp)


@test
def flags_errors_version_help():
    r = run_flags("--version")
    eq(r.returncode, 0)
    check(r.stdout.startswith(b"etcd Version: 3.4.23\n"), r.stdout)
    r = run_flags("--help")
    eq(r.returncode, 0)
    check(b"--listen-client-urls" in r.stdout and b"--max-txn-ops" in r.stdout)
    r = run_flags("--bogus")
    eq(r.returncode, 2)
    check(b"flag provided but not defined: -bogus" in r.stderr, r.stderr)
    r = run_flags("--max-txn-ops", "abc")
    eq(r.returncode, 2)
    check(b'invalid value "abc" for flag -max-txn-ops' in r.stderr, r.stderr)
    r = run_flags("foo")
    eq(r.returncode, 1)
    check(b"'foo' is not a valid flag" in r.stderr, r.stderr)
    r = run_flags("--name", "x")
    eq(r.returncode, 1)
    check(b'couldn\'t find local name "x" in the initial cluster configuration' in r.stderr, r.stderr)
    r = run_flags("--listen-client-urls", "http://127.0.0.1:1")
    eq(r.returncode, 1)
    check(b"--advertise-client-urls is required" in r.stderr, r.stderr)


@test
def flags_from_env_and_equals_form():
    cport, _ = free_ports(2)
    url = "http://127.0.0.1:%d" % cport
    srv = Server(OUR_BIN, extra=["--max-txn-ops=2"], env={"ETCD_NAME": "ignored-by-flag"})
    try:
        rc, _, errs = etcdctl(srv.endpoint, "txn", input=b"\nput a 1\nput b 2\nput c 3\n\n\n")
        eq(errs, ["Error: etcdserver: too many operations in txn request"])
    finally:
        srv.stop()
    tmp = tempfile.mkdtemp()
    env = dict(os.environ, ETCD_LISTEN_CLIENT_URLS=url, ETCD_ADVERTISE_CLIENT_URLS=url,
               ETCD_NAME="envname", ETCD_INITIAL_CLUSTER="envname=http://localhost:2380",
               ETCD_LOGGER="zap")
    p = subprocess.Popen([OUR_BIN], cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            rc, out, _ = etcdctl("127.0.0.1:%d" % cport, "member", "list", "--dial-timeout=1s")
            if rc == 0:
                break
        check(b"envname" in out, out)
        check(os.path.isdir(os.path.join(tmp, "envname.etcd")))
    finally:
        p.terminate()
        p.wait(10)
        shutil.rmtree(tmp)


@test
def static_binary_runs_alone_in_chroot():
    out = subprocess.run(["file", REL_BIN], capture_output=True).stdout
    check(b"statically linked" in out or b"static-pie linked" in out, out)
    root = tempfile.mkdtemp()
    try:
        shutil.copy(REL_BIN, os.path.join(root, "etcd"))
        cport, _ = free_ports(2)
        url = "http://127.0.0.1:%d" % cport
        cmd = ["chroot", root, "/etcd", "--listen-client-urls", url, "--advertise-client-urls", url]
        if os.getuid() != 0:
            cmd = ["unshare", "-r"] + cmd
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            ok = False
            for _ in range(200):
                rc, out, _ = etcdctl("127.0.0.1:%d" % cport, "put", "k", "v", "--dial-timeout=1s")
                if rc == 0:
                    ok = True
                    break
            check(ok, "static binary in chroot did not serve")
            eq(etcdctl("127.0.0.1:%d" % cport, "get", "k", "--print-value-only")[1], b"v\n")
        finally:
            p.terminate()
            p.wait(10)
        check(os.path.isdir(os.path.join(root, "default.etcd")))
    finally:
        shutil.rmtree(root)
