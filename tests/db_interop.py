#!/usr/bin/python3
"""tests/db_interop.py - drives real etcd 3.4 for the interop test in
tests/test_db.c, which runs it and checks the files in between.

  produce DIR   start etcd (/usr/bin/etcd) with data dir DIR/etcd on free
                127.0.0.1 ports, write through the JSON gateway (3000 puts
                from 8 connections, overwrites, deletes, a 6000-byte value, a
                lease, a compaction), save every key/value and the hashkv at the
                final revision to DIR/expect.json, stop etcd with SIGTERM
  verify DIR    start etcd on DIR/etcd again (its member/snap/db now written
                by our code), check every key/value and hashkv against
                DIR/expect.json, put one more key, stop etcd
  status FILE   etcdctl snapshot status FILE -w json; prints
                "hash revision totalKey totalSize" on one line

Exit status 0 on success; what went wrong goes to stderr.  Only the etcd it
started is ever signalled.
"""
import base64
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

ETCD = "/usr/bin/etcd"
ETCDCTL = "/usr/bin/etcdctl"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def b64(b):
    return base64.b64encode(b).decode()


class Etcd:
    def __init__(self, datadir, log):
        self.client = free_port()
        peer = free_port()
        self.url = "http://127.0.0.1:%d" % self.client
        purl = "http://127.0.0.1:%d" % peer
        self.log = open(log, "ab")
        self.proc = subprocess.Popen(
            [ETCD, "--name", "n1", "--data-dir", datadir,
             "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
             "--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
             "--initial-cluster", "n1=" + purl],
            stdout=self.log, stderr=self.log)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit("etcd exited with %d; see %s" % (self.proc.returncode, log))
            try:
                if json.loads(self.get("/health")).get("health") == "true":
                    return
            except (OSError, ValueError, http.client.HTTPException):
                pass
            time.sleep(0.1)
        self.stop()
        raise SystemExit("etcd did not become healthy; see " + log)

    def get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.client, timeout=10)
        c.request("GET", path)
        body = c.getresponse().read()
        c.close()
        return body

    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.client, timeout=30)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def call(conn, path, req):
    conn.request("POST", path, json.dumps(req), {"Content-Type": "application/json"})
    r = conn.getresponse()
    body = r.read()
    if r.status != 200:
        raise SystemExit("%s: HTTP %d %s" % (path, r.status, body[:200]))
    return json.loads(body)


def dump(e):
    c = e.conn()
    r = call(c, "/v3/kv/range", {"key": b64(b"\0"), "range_end": b64(b"\0")})
    c.close()
    kvs = [[kv["key"], kv.get("value", ""), int(kv["mod_revision"])] for kv in r.get("kvs", [])]
    return kvs, int(r["header"]["revision"])


def hashkv(e, rev):
    out = subprocess.run([ETCDCTL, "--endpoints", e.url, "endpoint", "hashkv", "--rev", str(rev),
                          "-w", "json"], capture_output=True, text=True, check=True).stdout
    return json.loads(out)[0]["HashKV"]["hash"]


def produce(d):
    e = Etcd(os.path.join(d, "etcd"), os.path.join(d, "etcd.log"))
    try:
        def worker(i):
            c = e.conn()
            for n in range(i, 3000, 8):
                call(c, "/v3/kv/put", {"key": b64(b"key-%05d" % n), "value": b64(b"v%d-" % n * 7)})
            c.close()
        ts = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        c = e.conn()
        for n in range(0, 3000, 10):  # overwrites, so compaction frees something
            call(c, "/v3/kv/put", {"key": b64(b"key-%05d" % n), "value": b64(b"second")})
        rev = int(call(c, "/v3/kv/range", {"key": b64(b"key-00000")})["header"]["revision"])
        for n in range(5, 3000, 50):
            call(c, "/v3/kv/deleterange", {"key": b64(b"key-%05d" % n)})
        call(c, "/v3/kv/put", {"key": b64(b"big"), "value": b64(bytes(range(256)) * 23 + b"end!")})
        lease = call(c, "/v3/lease/grant", {"TTL": 3600})["ID"]
        call(c, "/v3/kv/put", {"key": b64(b"leased"), "value": b64(b"x"), "lease": lease})
        call(c, "/v3/kv/compaction", {"revision": rev, "physical": True})
        call(c, "/v3/kv/put", {"key": b64(b"last"), "value": b64(b"")})
        c.close()
        kvs, rev = dump(e)
        h = hashkv(e, rev)
    finally:
        e.stop()
    with open(os.path.join(d, "expect.json"), "w") as f:
        json.dump({"kvs": kvs, "revision": rev, "hash": h}, f)
    print("etcd wrote %d keys, revision %d, hashkv %d" % (len(kvs), rev, h))


def verify(d):
    with open(os.path.join(d, "expect.json")) as f:
        want = json.load(f)
    e = Etcd(os.path.join(d, "etcd"), os.path.join(d, "etcd2.log"))
    try:
        kvs, rev = dump(e)
        if rev != want["revision"]:
            raise SystemExit("revision %d, want %d" % (rev, want["revision"]))
        if kvs != want["kvs"]:
            raise SystemExit("key/values differ: %d keys, want %d" % (len(kvs), len(want["kvs"])))
        h = hashkv(e, rev)
        if h != want["hash"]:
            raise SystemExit("hashkv %d, want %d" % (h, want["hash"]))
        c = e.conn()
        call(c, "/v3/kv/put", {"key": b64(b"after-restart"), "value": b64(b"ok")})
        c.close()
    finally:
        e.stop()
    print("etcd read %d keys, revision %d, hashkv %d: all match" % (len(kvs), rev, h))


def status(path):
    r = subprocess.run([ETCDCTL, "snapshot", "status", path, "-w", "json"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("snapshot status failed: " + r.stderr.strip())
    s = json.loads(r.stdout)
    print(s["hash"], s["revision"], s["totalKey"], s["totalSize"])


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("produce", "verify", "status"):
        raise SystemExit(__doc__)
    {"produce": produce, "verify": verify, "status": status}[sys.argv[1]](sys.argv[2])
