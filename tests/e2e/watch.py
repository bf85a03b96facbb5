"""watch.py - the Watch service end to end.  Debian's etcdctl watch (history,
live, prefix, ranges, --prev-kv, -w json, interactive with progress, a
compacted start) against our server and against real etcd 3.4.23 with the
same writes, outputs compared byte for byte; python3-etcd3's watch API on
both; and a raw HTTP/2 client that stops reading while many events are
written: the server's memory stays bounded, other clients keep working,
and the slow client gets every event in order once it reads again."""
import os
import socket
import struct
import subprocess
import threading
import time

import etcd3
from etcd3.etcdrpc import rpc_pb2

from harness import (ETCDCTL, OUR_BIN, REAL_ETCD, REL_BIN, Server, check, ctl_env, eq, etcdctl,
                     test, proc_kib)

# ---- etcdctl watch as a background process ----


class Watch:
    """`etcdctl watch ...` running; its output is collected until stop()."""

    def __init__(self, endpoint, args, stdin=False):
        self.p = subprocess.Popen([ETCDCTL, "--endpoints", endpoint, "watch"] + args,
                                  stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ctl_env())
        self.out, self.err = bytearray(), bytearray()
        self.last = time.time()
        self.threads = [threading.Thread(target=self._pump, args=(self.p.stdout, self.out)),
                        threading.Thread(target=self._pump, args=(self.p.stderr, self.err))]
        for t in self.threads:
            t.daemon = True
            t.start()

    def _pump(self, f, buf):
        while True:
            b = f.read1(65536)
            if not b:
                return
            buf.extend(b)
            self.last = time.time()

    def send(self, line):
        self.p.stdin.write(line.encode() + b"\n")
        self.p.stdin.flush()

    def quiet(self, settle=0.6, limit=10.0):
        """Waits until nothing has arrived for `settle` seconds."""
        start = time.time()
        time.sleep(settle)
        while time.time() - self.last < settle and time.time() - start < limit:
            time.sleep(0.05)

    def stop(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait(10)
        for t in self.threads:
            t.join(5)
        return bytes(self.out), bytes(self.err)


def watch_output(endpoint, args):
    w = Watch(endpoint, args)
    w.quiet()
    return w.stop()


def ctl(endpoint, *args, input=None):
    rc, out, errs = etcdctl(endpoint, *args, input=input)
    check(rc == 0, "etcdctl %s: %r" % (args, errs))
    return out


# no compares, three puts/deletes on success, no failure ops
TXN = b"\nput foo 3\nput foo3 c\ndel bar\n\n\n"


def writes(ep):
    """The same history on both servers: revisions 2..10."""
    ctl(ep, "put", "foo", "1")           # 2
    ctl(ep, "put", "foo2", "a")          # 3
    ctl(ep, "put", "bar", "b")           # 4
    ctl(ep, "put", "foo", "2")           # 5
    ctl(ep, "del", "foo")                # 6
    ctl(ep, "txn", input=TXN)            # 7: three events
    ctl(ep, "put", "zoo", "z")           # 8
    ctl(ep, "del", "foo", "--prefix")    # 9: foo, foo2, foo3
    ctl(ep, "put", "foo", "4")           # 10


HISTORY = [
    ["--rev", "1", "foo"],
    ["--rev", "1", "--prefix", "foo"],
    ["--rev", "1", "--prefix", "--prev-kv", "foo"],
    ["--rev", "3", "foo", "zoo"],
    ["--rev", "1", "--prefix", ""],
    ["--rev", "5", "--prefix", "foo", "-w", "json"],
    ["--rev", "7", "--prev-kv", "foo", "-w", "json"],
    ["--rev", "9", "foo", "-w", "fields"],
    ["--rev", "100", "foo"],
]


def scenario(binary):
    """Everything etcdctl prints for the watches below, in order."""
    srv = Server(binary)
    res = []
    try:
        ep = srv.endpoint
        writes(ep)
        for args in HISTORY:
            res.append((args, watch_output(ep, args)))

        # live: created at the next revision, so creation cannot race the writes
        live = [Watch(ep, ["--rev", "11", "--prefix", "live/", "--prev-kv"]),
                Watch(ep, ["--rev", "11", "live/a", "live/c", "-w", "json"]),
                Watch(ep, ["-i", "--rev", "11", "--prev-kv"], stdin=True)]
        live[2].send("watch live/b")
        time.sleep(0.5)
        ctl(ep, "put", "live/a", "1")                # 11
        ctl(ep, "put", "live/b", "2")                # 12
        ctl(ep, "put", "live/a", "3")                # 13
        ctl(ep, "put", "other", "x")                 # 14
        ctl(ep, "del", "live/", "--prefix")          # 15
        for w in live:
            w.quiet()
        live[2].send("progress")
        live[2].quiet()
        for i, w in enumerate(live):
            res.append((["live", i], w.stop()))

        # compaction: a start below it is canceled, at it is served
        ctl(ep, "compact", "6")
        r = subprocess.run([ETCDCTL, "--endpoints", ep, "watch", "--rev", "3", "foo"],
                           capture_output=True, env=ctl_env(), timeout=20)
        res.append((["compacted"], (r.returncode, r.stdout, r.stderr)))
        res.append((["at compaction"], watch_output(ep, ["--rev", "6", "--prefix", "foo"])))
        check(srv.alive(), "server died")
    finally:
        srv.stop()
    return res


@test
def etcdctl_watch_matches_real_etcd():
    ours = scenario(OUR_BIN)
    real = scenario(REAL_ETCD)
    eq(len(ours), len(real))
    for (args, o), (_, r) in zip(ours, real):
        eq(o, r, "etcdctl watch %s" % args)
    # the comparison must not be of empty outputs: revision 7 is the txn's
    # three events, 9 a delete of three keys
    everything = dict((str(a), o) for a, o in real)[str(["--rev", "1", "--prefix", ""])][0]
    eq(everything.count(b"PUT\n"), 8)
    eq(everything.count(b"DELETE\n"), 5)


# ---- python3-etcd3 ----

_excepthook = threading.excepthook


def _quiet_closed_watcher(args):
    """python3-etcd3's watch thread re-opens its stream forever and dies with
    "Channel closed" once the client is closed: expected, not a failure."""
    if args.thread is not None and args.thread.name.startswith("etcd3_watch_") and \
            args.exc_type is ValueError:
        return
    _excepthook(args)


threading.excepthook = _quiet_closed_watcher


def py_events(evs):
    return [(type(e).__name__, e.key, e.value, e.mod_revision,
             getattr(e, "prev_value", None)) for e in evs]


def python_scenario(binary):
    srv = Server(binary)
    try:
        c = etcd3.client(host="127.0.0.1", port=srv.cport, timeout=10)
        out = []
        it, cancel = c.watch("py/a")
        c.put("py/a", "1")
        c.put("py/b", "x")
        c.put("py/a", "2")
        c.delete("py/a")
        got = []
        for ev in it:
            got.append(ev)
            if len(got) == 3:
                break
        cancel()
        out.append(py_events(got))

        # prefix, callbacks, cancel_watch
        calls = []
        done = threading.Event()

        def cb(resp):
            if isinstance(resp, Exception):
                calls.append(("error", type(resp).__name__))
            else:
                calls.extend(py_events(resp.events))
            if len(calls) >= 2:
                done.set()

        wid = c.add_watch_prefix_callback("py/", cb)
        c.put("py/c", "3")
        c.put("py/d", "4")
        check(done.wait(10), "callback events did not arrive")
        c.cancel_watch(wid)
        time.sleep(0.3)
        c.put("py/e", "5")
        time.sleep(0.5)
        out.append(list(calls))

        # history and prev_kv
        it, cancel = c.watch_prefix("py/", start_revision=2, prev_kv=True)
        got = []
        for ev in it:
            got.append(ev)
            if len(got) == 7:
                break
        cancel()
        out.append(py_events(got))

        # a compacted start: the callback gets the error
        c.compact(5)
        errs = []
        ev = threading.Event()

        def ecb(resp):
            errs.append(type(resp).__name__ if isinstance(resp, Exception) else "response")
            ev.set()

        try:
            c.add_watch_callback("py/a", ecb, start_revision=2)
            ev.wait(10)
        except Exception as e:  # etcd3 may raise from add_watch_callback instead
            errs.append(type(e).__name__)
        out.append(errs)
        c.close()
        check(srv.alive(), "server died")
        return out
    finally:
        srv.stop()


@test
def python_etcd3_watch_matches_real_etcd():
    ours = python_scenario(OUR_BIN)
    real = python_scenario(REAL_ETCD)
    for i, (o, r) in enumerate(zip(ours, real)):
        eq(o, r, "python3-etcd3 watch step %d" % i)
    eq(len(ours[0]), 3)
    eq(ours[3], ["RevisionCompactedError"])


# ---- a client that stops reading ----

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(ftype, flags, sid, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


def lit(name, value):
    """HPACK literal without indexing, new name, no Huffman."""
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def grpc_msg(msg):
    b = msg.SerializeToString()
    return b"\x00" + struct.pack(">I", len(b)) + b


class RawWatch:
    """One Watch stream over a hand-made HTTP/2 connection with the default
    64 KiB windows: it reads only when asked to, and credits the windows back
    only for what it read."""

    def __init__(self, port, create):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        hdrs = (lit(b":method", b"POST") + lit(b":scheme", b"http") +
                lit(b":path", b"/etcdserverpb.Watch/Watch") + lit(b":authority", b"x") +
                lit(b"content-type", b"application/grpc") + lit(b"te", b"trailers"))
        req = rpc_pb2.WatchRequest(create_request=create)
        self.s.sendall(PREFACE + frame(4, 0, 0, b"") + frame(1, 4, 1, hdrs) +
                       frame(0, 0, 1, grpc_msg(req)))
        self.buf = b""
        self.data = b""
        self.responses = []

    def read(self, until, timeout=60):
        """Reads and decodes until until(responses) or the timeout."""
        self.s.settimeout(0.2)
        deadline = time.time() + timeout
        while not until(self.responses) and time.time() < deadline:
            try:
                chunk = self.s.recv(1 << 20)
            except socket.timeout:
                continue
            check(chunk, "server closed the raw watch connection")
            self.buf += chunk
            self._frames()
        return until(self.responses)

    def _frames(self):
        out = b""
        while len(self.buf) >= 9:
            n = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + n:
                break
            ftype, flags = self.buf[3], self.buf[4]
            sid = int.from_bytes(self.buf[5:9], "big") & 0x7fffffff
            payload = self.buf[9:9 + n]
            self.buf = self.buf[9 + n:]
            if ftype == 4 and not flags & 1:      # SETTINGS: ack
                out += frame(4, 1, 0, b"")
            elif ftype == 6 and not flags & 1:    # PING: ack
                out += frame(6, 1, 0, payload)
            elif ftype == 0 and sid == 1:         # DATA: keep, credit back
                self.data += payload
                if n:
                    inc = struct.pack(">I", n)
                    out += frame(8, 0, 0, inc) + frame(8, 0, 1, inc)
            elif ftype in (3, 7):                 # RST_STREAM, GOAWAY
                raise AssertionError("raw watch: stream ended (frame type %d)" % ftype)
        while len(self.data) >= 5:
            n = int.from_bytes(self.data[1:5], "big")
            if len(self.data) < 5 + n:
                break
            self.responses.append(rpc_pb2.WatchResponse.FromString(self.data[5:5 + n]))
            self.data = self.data[5 + n:]
        if out:
            self.s.sendall(out)

    def close(self):
        self.s.close()


N_SLOW, VSIZE = 600, 64 * 1024


def value(i):
    return (b"%08d" % i) * (VSIZE // 8)


def write_many(c, first=0):
    for i in range(first, first + N_SLOW):
        c.put("slow/%d" % (i % 50), value(i))


def slow_binary():
    """The release build when there is one: ASan's quarantine would hide
    what the server gives back."""
    if os.path.exists(REL_BIN):
        return REL_BIN, {}
    return OUR_BIN, {"ASAN_OPTIONS": "quarantine_size_mb=1:detect_leaks=0"}


@test
def slow_watcher_is_bounded_and_catches_up():
    binary, env = slow_binary()
    # how much the store alone grows for these writes
    base = Server(binary, env=env)
    try:
        c = etcd3.client(host="127.0.0.1", port=base.cport, timeout=30)
        c.put("warm", "x")
        r0 = proc_kib(base.proc.pid, "VmRSS")
        write_many(c)
        base_growth = proc_kib(base.proc.pid, "VmRSS") - r0
        c.close()
    finally:
        base.stop()

    srv = Server(binary, env=env)
    raw = None
    try:
        c = etcd3.client(host="127.0.0.1", port=srv.cport, timeout=30)
        c.put("warm", "x")
        start = c.get("warm")[1].mod_revision + 1
        raw = RawWatch(srv.cport, rpc_pb2.WatchCreateRequest(
            key=b"slow/", range_end=b"slow0", start_revision=start, prev_kv=True))
        check(raw.read(lambda rs: any(r.created for r in rs), 10), "raw watch not created")
        # a normal client watching the same keys, reading as it goes
        fast = []
        fast_done = threading.Event()

        def cb(resp):
            if not isinstance(resp, Exception):
                fast.extend(resp.events)
                if len(fast) >= N_SLOW:
                    fast_done.set()

        c.add_watch_prefix_callback("slow/", cb)
        r0 = proc_kib(srv.proc.pid, "VmRSS")
        write_many(c)
        check(fast_done.wait(30), "the reading client fell behind: %d events" % len(fast))
        growth = proc_kib(srv.proc.pid, "VmRSS") - r0
        # buffering for the slow client would add another copy of every value
        check(growth < base_growth + 16 * 1024,
              "server grew %d KiB with a stalled watcher, %d KiB without" % (growth, base_growth))
        eq(ctl(srv.endpoint, "get", "slow/7", "--print-value-only")[:8], b"%08d" % (N_SLOW - 43))

        # it reads again: every event, in order, with its prev_kv
        def all_events(rs):
            return sum(len(r.events) for r in rs) >= N_SLOW
        check(raw.read(all_events, 120), "slow watcher got %d of %d events" %
              (sum(len(r.events) for r in raw.responses), N_SLOW))
        evs = [e for r in raw.responses for e in r.events]
        eq(len(evs), N_SLOW)
        for i, e in enumerate(evs):
            eq(e.kv.mod_revision, start + i)
            eq(e.kv.value[:8], b"%08d" % i)
            if i >= 50:
                eq(e.prev_kv.value[:8], b"%08d" % (i - 50))
        check(all(r.watch_id == 0 and not r.canceled for r in raw.responses))
        c.close()
        check(srv.alive(), "server died")
    finally:
        if raw:
            raw.close()
        srv.stop()
