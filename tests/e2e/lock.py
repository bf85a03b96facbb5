"""lock.py - the v3lock and v3election services end to end.  Their gRPC
methods called directly (python3-etcd3 has no stubs for them: requests are
encoded by hand below) against our server and real etcd 3.4.23 with the same
steps, answers compared after naming lease IDs by order of appearance:
errors, headers, keys, leaders, waiting and its end by unlock, lease expiry
or revoke, a client that gives up while waiting, Observe's stream.  Then
the client-side recipes that use the same keys through KV, Watch and Lease:
Debian's `etcdctl lock` and `etcdctl elect` (blocking, `lock -- cmd`, a
holder killed with its lease expiring, `elect -l` following a change of
leader) and python3-etcd3's lock."""
import re
import signal
import socket
import struct
import subprocess
import threading
import time
import types

import etcd3
import etcd3.locks
import grpc
import tenacity

from harness import ETCDCTL, OUR_BIN, REAL_ETCD, Server, check, ctl_env, eq, test

LOCK = "/v3lockpb.Lock/"
ELECTION = "/v3electionpb.Election/"

# ---- protobuf by hand ----


def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def enc(fields):
    """[(field number, int | str | bytes | nested list)] -> message bytes."""
    out = b""
    for num, v in fields:
        if isinstance(v, int):
            out += varint(num << 3) + varint(v)
        else:
            v = enc(v) if isinstance(v, list) else v.encode() if isinstance(v, str) else v
            out += varint(num << 3 | 2) + varint(len(v)) + v
    return out


def dec(b):
    """message bytes -> {field number: [int | bytes]} (varint and length-delimited only)."""
    d, i = {}, 0

    def vint():
        nonlocal i
        v = s = 0
        while True:
            c = b[i]
            i += 1
            v |= (c & 0x7F) << s
            s += 7
            if not c & 0x80:
                return v

    while i < len(b):
        key = vint()
        if key & 7 == 0:
            v = vint()
            v = v - (1 << 64) if v >= 1 << 63 else v
        else:
            n = vint()
            v, i = bytes(b[i:i + n]), i + n
        d.setdefault(key >> 3, []).append(v)
    return d


def field(d, num, default):
    return d.get(num, [default])[0]


def header(b):
    d = dec(b)
    return tuple(field(d, n, 0) for n in (1, 2, 3, 4))  # cluster, member, revision, term


def kv(b):
    d = dec(b)
    return {"key": field(d, 1, b""), "create": field(d, 2, 0), "mod": field(d, 3, 0),
            "version": field(d, 4, 0), "value": field(d, 5, b""), "lease": field(d, 6, 0)}


def leader_key(name, key, rev, lease):
    return [(1, name), (2, key), (3, rev), (4, lease)]


# ---- calling the services ----


class Client:
    """Raw calls to one server; every answer decoded into plain values."""

    def __init__(self, srv):
        self.ch = grpc.insecure_channel(srv.endpoint)
        self.kv = etcd3.client(host="127.0.0.1", port=srv.cport)

    def close(self):
        self.ch.close()
        self.kv.close()

    def call(self, method, req, timeout=10):
        try:
            f = self.ch.unary_unary(method, request_serializer=None, response_deserializer=None)
            return self.decode(method, f(enc(req), timeout=timeout))
        except grpc.RpcError as e:
            return ("error", e.code().name, e.details())

    @staticmethod
    def decode(method, b):
        d = dec(b)
        out = {"header": header(field(d, 1, b""))}
        name = method.rsplit("/", 1)[1]
        if name == "Lock":
            out["key"] = field(d, 2, b"")
        elif name == "Campaign":
            lk = dec(field(d, 2, b""))
            out["leader"] = (field(lk, 1, b""), field(lk, 2, b""), field(lk, 3, 0), field(lk, 4, 0))
        elif name in ("Leader", "Observe"):
            out["kv"] = kv(field(d, 2, b""))
        return out

    def observe(self, name):
        """Starts Observe(name); returns (messages list filled by a thread, the call)."""
        f = self.ch.unary_stream(ELECTION + "Observe", request_serializer=None, response_deserializer=None)
        it = f(enc([(1, name)]))
        got = []

        def pump():
            try:
                for m in it:
                    got.append(self.decode(ELECTION + "Observe", m))
            except grpc.RpcError as e:
                got.append(("end", e.code().name))

        threading.Thread(target=pump, daemon=True).start()
        return got, it

    def background(self, method, req, timeout=30):
        """Starts a call in a thread; returns a dict that gets "r" when it ends."""
        res = {}

        def run():
            res["r"] = self.call(method, req, timeout)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        res["thread"] = t
        return res

    def keys(self, prefix):
        kvs = self.kv.get_prefix(prefix) if prefix else self.kv.get_all()
        return [(m.key, m.create_revision, m.lease_id) for _, m in kvs]


def wait_for(cond, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


class Leases:
    """Names lease IDs (ints, or hex in keys) in order of first appearance."""

    def __init__(self):
        self.names = {}

    def name(self, lid):
        return self.names.setdefault(lid, "L%d" % len(self.names))

    def norm(self, v):
        if isinstance(v, dict):
            return {k: (self.name(x) if k == "lease" and x else self.norm(x)) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return type(v)(self.norm(x) for x in v)
        if isinstance(v, bytes):
            return re.sub(rb"/(-?[0-9a-f]{8,16})$", lambda m: b"/" + self.name(int(m.group(1), 16)).encode(), v)
        if isinstance(v, int) and v > 1 << 40 and v in self.names:
            return self.names[v]
        return v


def on_both(session):
    """Runs session(client, record) on our server and on real etcd; compares what it recorded."""
    results = []
    for binary in (OUR_BIN, REAL_ETCD):
        srv = Server(binary)
        c = Client(srv)
        leases = Leases()
        log = []

        def record(what, value, leases=leases, log=log):
            log.append((what, leases.norm(value)))

        try:
            session(c, record, leases)
        finally:
            c.close()
            srv.stop()
        results.append(log)
    ours, real = results
    for o, r in zip(ours, real):
        eq(o, r, "step %s" % (o[0],))
    eq(len(ours), len(real), "number of steps")


def campaign(name, lease, value):
    return [(1, name), (2, lease), (3, value)]


# ---- the services against real etcd ----


@test
def lock_and_election_answers_match_real_etcd():
    def session(c, record, leases):
        l1 = c.kv.lease(60).id
        leases.name(l1)
        record("lock unknown lease", c.call(LOCK + "Lock", [(1, "n"), (2, 12345)]))
        record("lock", c.call(LOCK + "Lock", [(1, "n"), (2, l1)]))
        record("lock again, same lease", c.call(LOCK + "Lock", [(1, "n"), (2, l1)]))
        record("lock empty name", c.call(LOCK + "Lock", [(2, l1)]))
        r = c.call(LOCK + "Lock", [(1, "n0")])
        record("lock with lease 0", r)
        lid = int(r["key"].rsplit(b"/", 1)[1], 16)
        record("its session lease", (c.kv.get_lease_info(lid).grantedTTL, c.keys("n0/")))
        record("unlock no key", c.call(LOCK + "Unlock", []))
        record("unlock", c.call(LOCK + "Unlock", [(1, b"n/%x" % l1)]))
        record("unlock missing", c.call(LOCK + "Unlock", [(1, "nope")]))
        record("keys", c.keys("n"))
        record("leader none", c.call(ELECTION + "Leader", [(1, "e")]))
        r = c.call(ELECTION + "Campaign", campaign("e", l1, "v1"))
        record("campaign", r)
        lk = leader_key(*r["leader"])
        record("leader", c.call(ELECTION + "Leader", [(1, "e")]))
        record("proclaim", c.call(ELECTION + "Proclaim", [(1, lk), (2, "v2")]))
        record("proclaim no leader key", c.call(ELECTION + "Proclaim", [(2, "v2")]))
        record("resign no leader key", c.call(ELECTION + "Resign", []))
        bad = leader_key(r["leader"][0], r["leader"][1], r["leader"][2] + 1, l1)
        record("proclaim other rev", c.call(ELECTION + "Proclaim", [(1, bad), (2, "v3")]))
        record("resign other rev", c.call(ELECTION + "Resign", [(1, bad)]))
        record("campaign same value", c.call(ELECTION + "Campaign", campaign("e", l1, "v2")))
        record("campaign new value", c.call(ELECTION + "Campaign", campaign("e", l1, "v9")))
        record("leader after", c.call(ELECTION + "Leader", [(1, "e")]))
        nolease = leader_key(r["leader"][0], r["leader"][1], r["leader"][2], 999)
        record("proclaim unknown lease", c.call(ELECTION + "Proclaim", [(1, nolease), (2, "x")]))
        record("resign", c.call(ELECTION + "Resign", [(1, lk)]))
        record("resign again", c.call(ELECTION + "Resign", [(1, lk)]))
        record("campaign unknown lease", c.call(ELECTION + "Campaign", campaign("e", 999, "v")))
        record("campaign empty name", c.call(ELECTION + "Campaign", [(2, l1)]))
        record("leader empty name", c.call(ELECTION + "Leader", []))
        record("proclaim empty key", c.call(ELECTION + "Proclaim", [(1, [(3, 5), (4, l1)]), (2, "v")]))
        r = c.call(ELECTION + "Campaign", campaign("z", 0, "zv"))
        record("campaign lease 0", r)
        moved = leader_key(r["leader"][0], r["leader"][1], r["leader"][2], 0)
        record("proclaim lease 0", c.call(ELECTION + "Proclaim", [(1, moved), (2, "zw")]))
        record("leader on new lease", c.call(ELECTION + "Leader", [(1, "z")]))
        record("all keys", c.keys(""))

    on_both(session)


@test
def lock_waits_for_older_holders_as_real_etcd():
    def session(c, record, leases):
        l1, l2, l3 = (c.kv.lease(60).id for _ in range(3))
        for lid in (l1, l2, l3):
            leases.name(lid)
        record("first", c.call(LOCK + "Lock", [(1, "m"), (2, l1)]))
        w2 = c.background(LOCK + "Lock", [(1, "m"), (2, l2)])
        check(wait_for(lambda: len(c.keys("m/")) == 2))
        w3 = c.background(LOCK + "Lock", [(1, "m"), (2, l3)])
        check(wait_for(lambda: len(c.keys("m/")) == 3))
        time.sleep(0.3)
        record("both wait", ("r" in w2, "r" in w3))
        record("unlock first", c.call(LOCK + "Unlock", [(1, b"m/%x" % l1)]))
        w2["thread"].join(10)
        record("second gets it", w2.get("r"))
        time.sleep(0.3)
        record("third still waits", "r" in w3)
        c.kv.revoke_lease(l2)  # the holder's lease goes: its key with it
        w3["thread"].join(10)
        record("third gets it", w3.get("r"))
        record("keys", c.keys("m/"))

    on_both(session)


@test
def expired_holder_hands_lock_to_waiter_as_real_etcd():
    def session(c, record, leases):
        short, long_ = c.kv.lease(2).id, c.kv.lease(60).id
        leases.name(short)
        leases.name(long_)
        record("holder", c.call(LOCK + "Lock", [(1, "x"), (2, short)]))
        t0 = time.time()
        record("waiter", c.call(LOCK + "Lock", [(1, "x"), (2, long_)], timeout=15))
        record("waited for the expiry", 1.0 < time.time() - t0 < 10)
        record("keys", c.keys("x/"))

    on_both(session)


@test
def client_giving_up_removes_its_place_as_real_etcd():
    def session(c, record, leases):
        l1, l2 = c.kv.lease(60).id, c.kv.lease(60).id
        leases.name(l1)
        leases.name(l2)
        record("lock", c.call(LOCK + "Lock", [(1, "g"), (2, l1)]))
        record("waiter times out", c.call(LOCK + "Lock", [(1, "g"), (2, l2)], timeout=1))
        check(wait_for(lambda: len(c.keys("g/")) == 1))
        record("its key is gone", c.keys("g/"))
        record("campaign", c.call(ELECTION + "Campaign", campaign("h", l1, "a")))
        record("campaigner times out", c.call(ELECTION + "Campaign", campaign("h", l2, "b"), timeout=1))
        check(wait_for(lambda: len(c.keys("h/")) == 1))
        record("it resigned", c.keys("h/"))
        record("unlock", c.call(LOCK + "Unlock", [(1, b"g/%x" % l1)]))
        record("lock again", c.call(LOCK + "Lock", [(1, "g"), (2, l2)], timeout=2))

    on_both(session)


@test
def campaign_waits_and_proclaim_over_old_value_as_real_etcd():
    def session(c, record, leases):
        l1, l2 = c.kv.lease(60).id, c.kv.lease(60).id
        leases.name(l1)
        leases.name(l2)
        r = c.call(ELECTION + "Campaign", campaign("c", l1, "one"))
        record("leader", r)
        w = c.background(ELECTION + "Campaign", campaign("c", l2, "two"))
        check(wait_for(lambda: len(c.keys("c/")) == 2))
        # campaigning again with the same lease and another value proclaims it
        # while waiting its turn: the key keeps its place
        w2 = c.background(ELECTION + "Campaign", campaign("c", l2, "two-b"))
        check(wait_for(lambda: [v for v, _ in c.kv.get_prefix("c/")][1:] == [b"two-b"]))
        time.sleep(0.3)
        record("waiting", ("r" in w, "r" in w2, c.keys("c/")))
        record("resign", c.call(ELECTION + "Resign", [(1, leader_key(*r["leader"]))]))
        w["thread"].join(10)
        w2["thread"].join(10)
        record("first waiter", w.get("r"))
        record("second waiter", w2.get("r"))
        record("leader", c.call(ELECTION + "Leader", [(1, "c")]))

    on_both(session)


@test
def observe_streams_leader_changes_as_real_etcd():
    def session(c, record, leases):
        l1, l2 = c.kv.lease(60).id, c.kv.lease(60).id
        leases.name(l1)
        leases.name(l2)
        got, stream = c.observe("ob")
        c.kv.put("other", "x")  # outside the prefix
        time.sleep(0.5)
        record("nothing yet", list(got))

        def step(what, fn, expect):
            fn()
            check(wait_for(lambda: len(got) >= expect), "%s: %r" % (what, got))
            time.sleep(0.3)  # and nothing more
            record(what, list(got))

        r1 = {}
        step("first leader", lambda: r1.update(c.call(ELECTION + "Campaign", campaign("ob", l1, "a"))), 1)
        w = c.background(ELECTION + "Campaign", campaign("ob", l2, "b"))
        step("a waiter changes nothing", lambda: wait_for(lambda: len(c.keys("ob/")) == 2), 1)
        lk1 = leader_key(*r1["leader"])
        step("proclaim", lambda: c.call(ELECTION + "Proclaim", [(1, lk1), (2, "a2")]), 2)
        step("same value again", lambda: c.call(ELECTION + "Proclaim", [(1, lk1), (2, "a2")]), 3)
        step("resign", lambda: c.call(ELECTION + "Resign", [(1, lk1)]), 4)
        w["thread"].join(10)
        record("waiter", w.get("r"))
        step("leader's lease revoked", lambda: c.kv.revoke_lease(l2), 4)
        step("first put under the prefix", lambda: c.kv.put("ob/plain", "p"), 5)
        step("a later key is no leader", lambda: c.kv.put("ob/zz", "q"), 5)
        step("leader deleted", lambda: c.kv.delete("ob/plain"), 6)
        stream.cancel()
        got2, stream2 = c.observe("ob")
        check(wait_for(lambda: len(got2) >= 1))
        record("a new observer gets the leader at once", list(got2))
        stream2.cancel()

    on_both(session)


class RawObserve:
    """Observe over a hand-made HTTP/2 connection with the default 64 KiB
    windows: it reads only when asked to, and credits the windows back only
    for what it read, so a client that stops reading can be played."""

    PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

    @staticmethod
    def frame(ftype, flags, sid, payload):
        return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload

    def __init__(self, port, name):
        def lit(k, v):  # HPACK literal without indexing, new name, no Huffman
            return b"\x00" + bytes([len(k)]) + k + bytes([len(v)]) + v

        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        hdrs = (lit(b":method", b"POST") + lit(b":scheme", b"http") +
                lit(b":path", (ELECTION + "Observe").encode()) + lit(b":authority", b"x") +
                lit(b"content-type", b"application/grpc") + lit(b"te", b"trailers"))
        req = enc([(1, name)])
        self.s.sendall(self.PREFACE + self.frame(4, 0, 0, b"") + self.frame(1, 4, 1, hdrs) +
                       self.frame(0, 1, 1, b"\x00" + struct.pack(">I", len(req)) + req))
        self.buf = self.data = b""
        self.responses = []

    def read(self, until, timeout=60):
        self.s.settimeout(0.2)
        deadline = time.time() + timeout
        while not until(self.responses) and time.time() < deadline:
            try:
                chunk = self.s.recv(1 << 20)
            except socket.timeout:
                continue
            check(chunk, "server closed the raw connection")
            self.buf += chunk
            out = b""
            while len(self.buf) >= 9 and len(self.buf) >= 9 + int.from_bytes(self.buf[:3], "big"):
                n, ftype, flags = int.from_bytes(self.buf[:3], "big"), self.buf[3], self.buf[4]
                sid = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
                payload, self.buf = self.buf[9:9 + n], self.buf[9 + n:]
                if ftype == 4 and not flags & 1:
                    out += self.frame(4, 1, 0, b"")
                elif ftype == 6 and not flags & 1:
                    out += self.frame(6, 1, 0, payload)
                elif ftype == 0 and sid == 1 and n:
                    self.data += payload
                    inc = struct.pack(">I", n)
                    out += self.frame(8, 0, 0, inc) + self.frame(8, 0, 1, inc)
            while len(self.data) >= 5 and len(self.data) >= 5 + int.from_bytes(self.data[1:5], "big"):
                n = int.from_bytes(self.data[1:5], "big")
                self.responses.append(Client.decode(ELECTION + "Observe", self.data[5:5 + n]))
                self.data = self.data[5 + n:]
            if out:
                self.s.sendall(out)
        return until(self.responses)

    def close(self):
        self.s.close()


@test
def slow_observer_skips_to_the_latest_leader():
    """A client that does not read its Observe stream makes the server hold
    back (about 1 MiB), not queue every value: once it reads again it gets
    the newest leader, having missed values in between, as etcd's Observe
    allows."""
    srv = Server(OUR_BIN)
    c = Client(srv)
    raw = None
    try:
        lid = c.kv.lease(60).id
        r = c.call(ELECTION + "Campaign", campaign("big", lid, "v0"))
        lk = leader_key(*r["leader"])
        raw = RawObserve(srv.cport, "big")
        check(raw.read(lambda rs: len(rs) >= 1, 10), "observer got no leader")
        n = 200
        for i in range(1, n + 1):
            c.call(ELECTION + "Proclaim", [(1, lk), (2, (b"%08d" % i) * 8192)])
        last = (b"%08d" % n) * 8192
        check(raw.read(lambda rs: rs[-1]["kv"]["value"] == last, 60), "never got the last value")
        values = [m["kv"]["value"][:8] for m in raw.responses]
        check(len(values) < n, "every one of %d values was queued" % n)
        eq(values[1:], sorted(values[1:]), "values out of order")
        check(srv.alive())
    finally:
        if raw:
            raw.close()
        c.close()
        srv.stop()


# ---- where we differ from etcd 3.4.23 on purpose ----


@test
def lock_fails_when_waiters_lease_expires():
    """etcd 3.4.23 would answer this Lock with success once the holder left,
    for a key that is gone; we fail it as later etcd does, and at once."""
    srv = Server(OUR_BIN)
    c = Client(srv)
    try:
        holder, short = c.kv.lease(60).id, c.kv.lease(2).id
        c.call(LOCK + "Lock", [(1, "s"), (2, holder)])
        t0 = time.time()
        r = c.call(LOCK + "Lock", [(1, "s"), (2, short)], timeout=15)
        eq(r, ("error", "UNKNOWN", "mutex: session is expired"))
        check(time.time() - t0 < 8, "failed only after %.1fs" % (time.time() - t0))
        eq([k for k, _, _ in c.keys("s/")], [b"s/%x" % holder])
        # deleting a waiter's key by hand is the same loss
        other = c.kv.lease(60).id
        w = c.background(LOCK + "Lock", [(1, "s"), (2, other)])
        check(wait_for(lambda: len(c.keys("s/")) == 2))
        c.kv.delete("s/%x" % other)
        w["thread"].join(10)
        eq(w.get("r"), ("error", "UNKNOWN", "mutex: session is expired"))
        check(srv.alive())
    finally:
        c.close()
        srv.stop()


@test
def many_waiters_queue_in_order():
    srv = Server(OUR_BIN)
    c = Client(srv)
    try:
        ids = [c.kv.lease(60).id for _ in range(20)]
        c.call(LOCK + "Lock", [(1, "q"), (2, ids[0])])
        waits = []
        for lid in ids[1:]:
            waits.append(c.background(LOCK + "Lock", [(1, "q"), (2, lid)]))
            check(wait_for(lambda: len(c.keys("q/")) == len(waits) + 1))
        got = []
        for i, lid in enumerate(ids[:-1]):
            c.call(LOCK + "Unlock", [(1, b"q/%x" % lid)])
            w = waits[i]
            w["thread"].join(10)
            got.append(w.get("r", {}).get("key"))
            check(all("r" not in x for x in waits[i + 1:]), "a later waiter got the lock early")
        eq(got, [b"q/%x" % lid for lid in ids[1:]])
        check(srv.alive())
    finally:
        c.close()
        srv.stop()


# ---- client-side recipes: etcdctl lock / elect, python3-etcd3 ----


class Ctl:
    """A background etcdctl whose output is collected."""

    def __init__(self, srv, *args):
        self.p = subprocess.Popen([ETCDCTL, "--endpoints", srv.endpoint] + list(args),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ctl_env())
        self.out = bytearray()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        while True:
            b = self.p.stdout.read1(4096)
            if not b:
                return
            self.out.extend(b)

    def lines(self):
        """Output lines; `etcdctl lock` follows its key with an empty line."""
        return [l for l in bytes(self.out).splitlines() if l]

    def stop(self, sig=signal.SIGINT):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            return self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return self.p.wait()


@test
def etcdctl_lock_blocks_second_until_first_releases():
    srv = Server(OUR_BIN)
    first = second = None
    try:
        first = Ctl(srv, "lock", "door")
        check(wait_for(lambda: len(first.lines()) == 1), "first lock not taken")
        check(re.fullmatch(rb"door/[0-9a-f]{16}", first.lines()[0]), first.lines())
        second = Ctl(srv, "lock", "door")
        time.sleep(1.5)
        eq(second.lines(), [], "second lock taken while the first holds it")
        eq(first.stop(), 0)
        check(wait_for(lambda: len(second.lines()) == 1), "second lock not taken after release")
        check(second.lines()[0] != first.lines()[0])
        eq(second.stop(), 0)
        eq(Client(srv).keys("door/"), [])
    finally:
        for p in (first, second):
            if p:
                p.stop(signal.SIGKILL)
        srv.stop()


@test
def etcdctl_lock_runs_command_holding_the_lock_as_real_etcd():
    outs = []
    for binary in (OUR_BIN, REAL_ETCD):
        srv = Server(binary)
        try:
            r = subprocess.run([ETCDCTL, "--endpoints", srv.endpoint, "lock", "job", "--", "sh", "-c",
                                "echo run $ETCD_LOCK_KEY $ETCD_LOCK_REV; etcdctl --endpoints %s get --prefix job/ "
                                "--keys-only" % srv.endpoint],
                               capture_output=True, env=ctl_env(), timeout=30)
            after = subprocess.run([ETCDCTL, "--endpoints", srv.endpoint, "get", "--prefix", "job/"],
                                   capture_output=True, env=ctl_env(), timeout=30)
            outs.append((r.returncode, re.sub(rb"[0-9a-f]{16}", b"LEASE", r.stdout), after.stdout))
        finally:
            srv.stop()
    eq(outs[0], outs[1])
    check(outs[0][1].startswith(b"run job/LEASE 2\njob/LEASE\n"), outs[0])


@test
def etcdctl_lock_holder_killed_loses_lock_when_lease_expires():
    srv = Server(OUR_BIN)
    holder = waiter = None
    try:
        holder = Ctl(srv, "lock", "--ttl", "2", "res")
        check(wait_for(lambda: len(holder.lines()) == 1))
        waiter = Ctl(srv, "lock", "res")
        time.sleep(1)
        eq(waiter.lines(), [])
        t0 = time.time()
        holder.stop(signal.SIGKILL)  # no more keep-alives: its 2 s lease runs out
        check(wait_for(lambda: len(waiter.lines()) == 1, 15), "waiter never got the lock")
        took = time.time() - t0
        check(1.0 < took < 8, "lock passed after %.1fs" % took)
        eq(waiter.stop(), 0)
    finally:
        for p in (holder, waiter):
            if p:
                p.stop(signal.SIGKILL)
        srv.stop()


@test
def etcdctl_elect_observer_sees_leader_change_as_real_etcd():
    outs = []
    for binary in (OUR_BIN, REAL_ETCD):
        srv = Server(binary)
        procs = []
        try:
            p1 = Ctl(srv, "elect", "pick", "alpha")
            procs.append(p1)
            check(wait_for(lambda: len(p1.lines()) == 2), "alpha not elected")
            obs = Ctl(srv, "elect", "-l", "pick")
            procs.append(obs)
            check(wait_for(lambda: len(obs.lines()) == 2), "observer did not see alpha")
            p2 = Ctl(srv, "elect", "pick", "beta")
            procs.append(p2)
            time.sleep(1)
            eq(p2.lines(), [], "beta elected while alpha leads")
            eq(p1.stop(), 0)  # alpha's etcdctl ends its session: beta leads
            check(wait_for(lambda: len(obs.lines()) == 4), "observer missed the change")
            check(wait_for(lambda: len(p2.lines()) == 2), "beta not elected")
            for p in (p2, obs):
                eq(p.stop(), 0)
            outs.append(re.sub(rb"[0-9a-f]{16}", b"LEASE", bytes(obs.out) + b"--\n" + bytes(p2.out)))
        finally:
            for p in procs:
                p.stop(signal.SIGKILL)
            srv.stop()
    eq(outs[0], outs[1])
    eq(outs[0], b"pick/LEASE\nalpha\npick/LEASE\nbeta\n--\npick/LEASE\nbeta\n")


def lock_retry_compat(*args, wait=None, **kw):
    """python3-etcd3 0.12's Lock.acquire hands tenacity a wait(attempt,
    delay) that tenacity 8 no longer calls that way: adapt it."""
    if wait is not None:
        old = wait

        def wait(state):
            return old(state.attempt_number, state.seconds_since_start)

    return tenacity.retry(*args, wait=wait, **kw)


@test
def python_etcd3_lock_excludes_second_holder():
    srv = Server(OUR_BIN)
    saved = etcd3.locks.tenacity
    etcd3.locks.tenacity = types.SimpleNamespace(**{**vars(tenacity), "retry": lock_retry_compat})
    try:
        c = etcd3.client(host="127.0.0.1", port=srv.cport)
        a, b = c.lock("printer", ttl=10), c.lock("printer", ttl=10)
        check(a.acquire(timeout=5), "first acquire failed")
        check(a.is_acquired())
        check(not b.acquire(timeout=1), "second acquire succeeded while held")
        got = {}
        t = threading.Thread(target=lambda: got.update(ok=b.acquire(timeout=10)))
        t.start()
        time.sleep(0.5)
        check(not got, "second acquire returned while held")
        check(a.release())
        t.join(15)
        check(got.get("ok"), "waiting acquire failed after release")
        check(b.is_acquired() and not a.is_acquired())
        check(not a.acquire(timeout=1))
        check(b.release())
        with c.lock("printer", ttl=10) as l:
            check(l.is_acquired())
        c.close()
    finally:
        etcd3.locks.tenacity = saved
        srv.stop()
