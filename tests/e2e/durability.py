"""durability.py - what survives a restart and a kill -9, and data dirs
shared with real etcd 3.4.23 in both directions (etcd's WAL format)."""
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import etcd3

from harness import OUR_BIN, REAL_ETCD, REL_BIN, Server, check, eq, etcdctl, proc_kib, test


def dump(endpoint):
    """Every key with its revisions, and the store revision, as JSON text."""
    rc, out, errs = etcdctl(endpoint, "get", "", "--from-key", "-w", "json")
    eq(rc, 0, "get failed: %r" % errs)
    import json
    j = json.loads(out)
    kvs = [(kv["key"], kv.get("value"), kv["create_revision"], kv["mod_revision"], kv["version"])
           for kv in j.get("kvs", [])]
    return j["header"]["revision"], kvs


@test
def restart_keeps_keys_revision_and_history():
    srv = Server(OUR_BIN)
    try:
        for i in range(20):
            eq(etcdctl(srv.endpoint, "put", "k%d" % (i % 5), "v%d" % i)[0], 0)
        eq(etcdctl(srv.endpoint, "del", "k4")[0], 0)
        before = dump(srv.endpoint)
        hist = etcdctl(srv.endpoint, "get", "k1", "--rev", "7", "--print-value-only")[1]
        srv.kill(signal.SIGTERM)
        srv.start()
        eq(dump(srv.endpoint), before)
        eq(etcdctl(srv.endpoint, "get", "k1", "--rev", "7", "--print-value-only")[1], hist)
        eq(hist, b"v1\n")
        # writes go on from the same revision
        eq(etcdctl(srv.endpoint, "put", "after", "restart")[0], 0)
        eq(dump(srv.endpoint)[0], before[0] + 1)
        srv.kill(signal.SIGKILL)
        srv.start()
        eq(dump(srv.endpoint)[0], before[0] + 1)
    finally:
        srv.stop()


@test
def kill9_under_load_loses_no_acknowledged_write():
    srv = Server(OUR_BIN)
    acked = {}
    lock = threading.Lock()
    stop = threading.Event()

    def writer(w):
        c = etcd3.client(host="127.0.0.1", port=srv.cport, timeout=5)
        i = 0
        while not stop.is_set():
            key = "w%d/%d" % (w, i)
            try:
                c.put(key, "v%d" % i)
            except Exception:
                break  # the server died: this one was not acknowledged
            with lock:
                acked[key] = "v%d" % i
            i += 1
        c.close()

    try:
        threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        srv.kill(signal.SIGKILL)
        stop.set()
        for t in threads:
            t.join(10)
        check(len(acked) > 50, "too few writes acknowledged: %d" % len(acked))
        srv.start()
        c = etcd3.client(host="127.0.0.1", port=srv.cport)
        got = {m.key.decode(): v.decode() for v, m in c.get_prefix("w")}
        missing = [k for k in acked if got.get(k) != acked[k]]
        eq(missing, [], "acknowledged writes lost after kill -9")
        c.close()
    finally:
        stop.set()
        srv.stop()


def write_some(endpoint):
    for i in range(10):
        eq(etcdctl(endpoint, "put", "m%d" % i, "val%d" % i)[0], 0)
    eq(etcdctl(endpoint, "del", "m3")[0], 0)
    eq(etcdctl(endpoint, "txn", input=b'value("m1") = "val1"\n\nput m1 changed\n\n\n')[0], 0)


def same_data(a, b):
    da, db = dump(a.endpoint), dump(b.endpoint)
    eq(da, db, "different data")


def snap_files(data):
    d = os.path.join(data, "member", "snap")
    return sorted(f for f in os.listdir(d) if f.endswith(".snap"))


@test
def snapshots_are_taken_purged_and_restarted_from():
    """--snapshot-count entries after the last snapshot a new .snap file
    (term-index) is written and recorded in the WAL; --max-snapshots keeps
    the newest; a restart starts from the newest and loses nothing."""
    tmp = tempfile.mkdtemp()
    data = os.path.join(tmp, "data")
    try:
        srv = Server(OUR_BIN, data=data, extra=("--snapshot-count", "20", "--max-snapshots", "2"))
        c = etcd3.client(host="127.0.0.1", port=srv.cport, timeout=5)
        for i in range(200):
            c.put("s%d" % (i % 30), "v%d" % i)
            if i % 40 == 0:
                time.sleep(0.15)  # let db commits (and snapshots) happen between bursts
        c.close()
        time.sleep(0.3)
        names = snap_files(data)
        eq(len(names), 2, "snap files %r" % names)
        term, index = (int(x, 16) for x in names[-1][:-5].split("-"))
        check(index > 150 and term >= 2, names)
        want = dump(srv.endpoint)
        log = open(srv.log).read()
        check("saved snapshot at index %d" % index in log, "no log line for %d" % index)
        srv.kill(signal.SIGKILL)
        srv.start()
        eq(dump(srv.endpoint), want)
        check("recovered store from snapshot at index" in open(srv.log).read(), "restart did not use the snapshot")
        srv.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@test
def real_etcd_serves_a_data_dir_we_wrote():
    tmp = tempfile.mkdtemp()
    data = os.path.join(tmp, "data")
    try:
        # small snapshot count: the dir holds .snap files etcd must start from
        ours = Server(OUR_BIN, data=data, extra=("--snapshot-count", "5"))
        write_some(ours.endpoint)
        time.sleep(0.3)  # a db commit, then the snapshot
        check(snap_files(data), "no snapshot written")
        want = dump(ours.endpoint)
        ours.kill(signal.SIGTERM)
        real = Server(REAL_ETCD, data=data)
        try:
            eq(dump(real.endpoint), want)
            eq(etcdctl(real.endpoint, "put", "from", "etcd")[0], 0)
            want = dump(real.endpoint)
        finally:
            real.kill(signal.SIGTERM)
        # and back again, after etcd appended to the same WAL
        ours.start()
        eq(dump(ours.endpoint), want)
        ours.stop()
        real.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@test
def we_serve_a_data_dir_real_etcd_wrote():
    tmp = tempfile.mkdtemp()
    data = os.path.join(tmp, "data")
    try:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            shutil.rmtree(data, ignore_errors=True)
            real = Server(REAL_ETCD, data=data, extra=("--snapshot-count", "5"))
            write_some(real.endpoint)
            want = dump(real.endpoint)
            real.kill(sig)
            check(snap_files(data), "etcd wrote no snapshot")
            ours = Server(OUR_BIN, data=data)
            try:
                eq(dump(ours.endpoint), want)
                rc, out, _ = etcdctl(ours.endpoint, "member", "list")
                check(b", started, default, http://127.0.0.1:2380, http://" in out, out)
            finally:
                ours.kill(signal.SIGTERM)
            real.stop()
            ours.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# counts put each crash past the restart's own writes (election, publish)
FAILPOINTS = ["before_wal_save:60", "after_wal_save:60", "after_wal_sync:60", "before_db_commit:6",
              "after_db_commit:6", "before_compaction:3", "before_defrag", "after_defrag",
              "before_snap_wal_record:2", "after_snap_wal_record:2"]


@test
def crash_at_every_failpoint_loses_no_acknowledged_write():
    """The test build ends itself at a durability boundary (ETCD_FAILPOINT)
    under write load; after a restart every acknowledged put is there and the
    revision never went backwards."""
    for fp in FAILPOINTS:
        srv = Server(OUR_BIN, extra=("--snapshot-count", "300", "--max-snapshots", "1"))
        try:
            c = etcd3.client(host="127.0.0.1", port=srv.cport, timeout=5)
            for i in range(30):
                c.put("pre%d" % i, "x")
            rev_before = c.get("pre0")[1].mod_revision
            c.close()
            srv.kill(signal.SIGTERM)
            srv.env["ETCD_FAILPOINT"] = fp
            srv.start()
            acked = {}
            c = etcd3.client(host="127.0.0.1", port=srv.cport, timeout=5)
            last_rev = 0
            try:
                for i in range(3000):
                    r = c.put("fp/%d" % i, "v%d" % i)
                    acked["fp/%d" % i] = "v%d" % i
                    last_rev = r.header.revision
                    if i % 50 == 10:
                        c.compact(last_rev - 5)
                    if i % 200 == 100:
                        etcdctl(srv.endpoint, "defrag", "--command-timeout=2s")
            except Exception:
                pass
            c.close()
            srv.proc.wait(10)
            check(srv.proc.returncode == 86, "%s: failpoint not reached (rc %r)" % (fp, srv.proc.returncode))
            del srv.env["ETCD_FAILPOINT"]
            srv.start()
            c = etcd3.client(host="127.0.0.1", port=srv.cport)
            got = {m.key.decode(): v.decode() for v, m in c.get_prefix("fp/")}
            eq([k for k in acked if got.get(k) != acked[k]], [], "%s: acknowledged writes lost" % fp)
            rev_after = c.get("pre0")[1]
            check(rev_after is not None and rev_after.mod_revision == rev_before, fp)
            status_rev = c.status().raft_index
            check(status_rev > 0)
            try:
                hdr = c.put("fp/after", "1").header.revision
            except Exception as e:
                raise AssertionError("%s: put after restart: %s" % (fp, e))
            check(hdr > last_rev, "%s: revision went back (%d <= %d)" % (fp, hdr, last_rev))
            c.close()
        finally:
            srv.stop()


@test
def disk_full_keeps_serving_and_recovers():
    """On a small tmpfs filled to the last byte: writes still land in the
    WAL's preallocated segment, the db commits fail with ENOSPC and are
    retried, reads go on; once space returns everything is committed and
    survives a restart."""
    if os.getuid() != 0:
        print("skipped: needs root to mount a tmpfs")
        return
    mnt = tempfile.mkdtemp()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=80m", "tmpfs", mnt]).returncode != 0:
        print("skipped: cannot mount a tmpfs here")
        shutil.rmtree(mnt)
        return
    try:
        srv = Server(OUR_BIN, data=os.path.join(mnt, "data"))
        try:
            filler = os.path.join(mnt, "filler")
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
            for chunk in (1 << 20, 4096, 1):
                try:
                    while os.write(fd, b"\0" * chunk) > 0:
                        pass
                except OSError:
                    pass
            os.close(fd)
            c = etcd3.client(host="127.0.0.1", port=srv.cport, timeout=10)
            big = b"x" * 100000
            for i in range(40):
                c.put("full/%d" % i, big)
            time.sleep(0.5)  # several batch commits fail meanwhile
            eq(c.get("full/3")[0], big)  # reads go on
            check("failed to commit the backend, retrying" in srv.read_log() or
                  "no space" in srv.read_log().lower(), "no ENOSPC seen: test did not fill the disk")
            os.unlink(filler)
            time.sleep(0.5)
            c.put("after", "space")
            c.close()
            srv.kill(signal.SIGTERM)
            srv.start()
            c = etcd3.client(host="127.0.0.1", port=srv.cport)
            eq(len(list(c.get_prefix("full/"))), 40)
            eq(c.get("after")[0], b"space")
            c.close()
        finally:
            srv.stop()
    finally:
        subprocess.run(["umount", mnt])
        shutil.rmtree(mnt, ignore_errors=True)


@test
def history_values_are_read_back_from_disk():
    """Only each key's newest value stays in memory once the backend holds
    the older ones: memory does not grow with history, and every read of
    history (get --rev, sorting by value at an old revision, a watch from an
    old revision with prev_kv, after a restart too) reads them back."""
    from etcd3.etcdrpc import rpc_pb2
    n, vsize = 400, 64 * 1024
    val = lambda i: (b"%08d" % i) * (vsize // 8)
    srv = Server(OUR_BIN, env={"ASAN_OPTIONS": "quarantine_size_mb=1:detect_leaks=0"})
    try:
        c = etcd3.client(host="127.0.0.1", port=srv.cport, timeout=30)
        first = c.put("warm", "x").header.revision + 1
        time.sleep(0.3)
        r0 = proc_kib(srv.proc.pid, "RssAnon")
        for i in range(n):
            c.put("big", val(i))
        for i in range(10):  # s/i: "a<i>", then overwritten in reverse order
            c.put("s/%d" % i, "a%d" % i)
        sorted_rev = c.get("s/9")[1].mod_revision
        for i in range(10):
            c.put("s/%d" % i, "b%d" % (9 - i))
        time.sleep(0.5)  # a backend commit, then eviction
        growth = proc_kib(srv.proc.pid, "RssAnon") - r0
        # values and raft entries kept would be twice the history; the
        # release build keeps a few batches' worth (3-8 MB); ASan's shadow
        # memory, redzones, quarantine and a thread per lane add to that
        # (11-19 MB)
        asan = os.path.realpath(OUR_BIN) != os.path.realpath(REL_BIN)
        print("    resident heap grew %d KiB for %d KiB of history" % (growth, n * vsize // 1024), flush=True)
        check(growth < n * vsize // 1024 * (4 if asan else 2) // 4,
              "server grew %d KiB for %d KiB of history" % (growth, n * vsize // 1024))

        def check_history(what):
            for i in (0, 1, n // 2, n - 2, n - 1):
                r = c.kvstub.Range(rpc_pb2.RangeRequest(key=b"big", revision=first + i), c.timeout)
                eq(r.kvs[0].value, val(i), "%s: big at revision %d" % (what, first + i))
            r = c.kvstub.Range(rpc_pb2.RangeRequest(
                key=b"s/", range_end=b"s0", revision=sorted_rev,
                sort_target=rpc_pb2.RangeRequest.VALUE, sort_order=rpc_pb2.RangeRequest.DESCEND),
                c.timeout)
            eq([kv.key for kv in r.kvs], [b"s/%d" % i for i in range(9, -1, -1)], what + ": sorted by value")
            eq(etcdctl(srv.endpoint, "get", "big", "--rev", str(first + 7), "--print-value-only")[1],
               val(7) + b"\n", what + ": etcdctl get --rev")
            evs, cancel = c.watch("big", start_revision=first, prev_kv=True)
            got = []
            for ev in evs:
                got.append(ev)
                if len(got) == n:
                    break
            cancel()
            eq([e.value for e in got] == [val(i) for i in range(n)], True, what + ": watched values")
            eq([e.prev_value for e in got[1:]] == [val(i) for i in range(n - 1)], True,
               what + ": watched prev values")

        check_history("running")
        c.close()
        srv.kill(signal.SIGTERM)
        srv.start()
        srv.wait_ready()
        c = etcd3.client(host="127.0.0.1", port=srv.cport, timeout=30)
        check_history("after a restart")
        eq(c.get("big")[0], val(n - 1), "the newest value")
        c.close()
    finally:
        srv.stop()


def _put_body(key, value):
    """A gRPC-framed PutRequest, for h2load -d."""
    def ld(field, b):
        n, v = len(b), b""
        while n >= 0x80:
            v += bytes([n & 0x7f | 0x80])
            n >>= 7
        return bytes([field << 3 | 2]) + v + bytes([n]) + b
    msg = ld(1, key) + ld(2, value)
    return b"\x00" + len(msg).to_bytes(4, "big") + msg


@test
def write_backlog_stops_reads_and_bounds_memory():
    """Every db commit takes a second (a failpoint sleeps, as a stalled disk
    would) under 1,000 concurrent puts: once 2 MiB of writes wait for the db
    the server reads no more requests until they are in, so its memory stays
    bounded where it would grow with the stall; every acknowledged put is
    applied and the server serves as before afterwards."""
    # ASan's quarantine would hold on to every freed block: off here
    asan = ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=0"]))
    srv = Server(OUR_BIN, env={"ETCD_FAILPOINT": "before_db_commit:sleep1000", "ASAN_OPTIONS": asan})
    try:
        body = os.path.join(srv.tmp, "put.bin")
        with open(body, "wb") as f:
            f.write(_put_body(b"backlog", b"v" * 256))
        pid = srv.proc.pid
        r0 = proc_kib(pid, "RssAnon")
        load = subprocess.Popen(["h2load", "-D", "4", "-c", "10", "-m", "100", "-d", body,
                                 "-H", "content-type: application/grpc", "-H", "te: trailers",
                                 "http://%s/etcdserverpb.KV/Put" % srv.endpoint],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        peak = r0
        while load.poll() is None:
            peak = max(peak, proc_kib(pid, "RssAnon"))
            time.sleep(0.05)
        out = load.stdout.read().decode()
        done = int(out.split("requests: ")[1].split(" succeeded")[0].split(",")[-2].split()[0])
        print("    %d puts in 4 s, resident heap grew %d KiB at most" % (done, peak - r0))
        check(done > 0, out)
        check(peak - r0 < 48 * 1024, "heap grew %d KiB" % (peak - r0))
        rc, js, _ = etcdctl(srv.endpoint, "get", "backlog", "-w", "json")
        eq(rc, 0)
        import json
        check(json.loads(js)["header"]["revision"] >= 1 + done, js)
        eq(etcdctl(srv.endpoint, "put", "after", "ok")[0], 0)
        eq(etcdctl(srv.endpoint, "get", "after", "--print-value-only")[1], b"ok\n")
        check(srv.alive())
    finally:
        srv.stop()
