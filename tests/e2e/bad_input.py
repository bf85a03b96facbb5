"""bad_input.py - hostile bytes on the client port: each is answered with the
right error (or the connection is closed) and the server keeps serving a
normal client afterwards."""
import socket
import struct
import time

import grpc

from harness import OUR_BIN, Server, check, eq, etcdctl, proc_kib, test

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(ftype, flags, sid, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


def lit(name, value):
    """HPACK literal without indexing, new name, no Huffman."""
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def request_headers(path):
    return (lit(b":method", b"POST") + lit(b":scheme", b"http") + lit(b":path", path) +
            lit(b":authority", b"x") + lit(b"content-type", b"application/grpc") + lit(b"te", b"trailers"))


def exchange(srv, data, wait=1.0):
    """Sends data, returns everything read until the server closes or wait passes."""
    s = socket.create_connection(("127.0.0.1", srv.cport))
    s.settimeout(0.2)
    try:
        s.sendall(data)
    except OSError:
        pass
    got = b""
    deadline = time.time() + wait
    while time.time() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            break
        if not chunk:
            break
        got += chunk
    s.close()
    return got


def frames(data):
    out = []
    while len(data) >= 9:
        n = int.from_bytes(data[:3], "big")
        out.append((data[3], data[4], int.from_bytes(data[5:9], "big") & 0x7fffffff, data[9:9 + n]))
        data = data[9 + n:]
    return out


def goaway_code(data):
    for t, _, _, p in frames(data):
        if t == 7:
            return int.from_bytes(p[4:8], "big")
    return None


def still_serves(srv):
    eq(etcdctl(srv.endpoint, "put", "alive", "yes")[0], 0, "server stopped serving")
    eq(etcdctl(srv.endpoint, "get", "alive", "--print-value-only")[1], b"yes\n")


@test
def garbage_and_protocol_errors_leave_server_serving():
    srv = Server(OUR_BIN)
    try:
        # garbage: answered as a bad HTTP/1.1 request
        check(exchange(srv, b"\x16\x03\x01garbage\r\n\r\n").startswith(b"HTTP/1.1 400"))
        # truncated preface, then the client goes away
        exchange(srv, PREFACE[:10], wait=0.3)
        # bad preface after the magic's first bytes
        exchange(srv, PREFACE[:20] + b"XXXX" + b"\x00" * 20, wait=0.3)
        base = PREFACE + frame(4, 0, 0, b"")
        # HEADERS with an HPACK index far beyond both tables -> COMPRESSION_ERROR
        eq(goaway_code(exchange(srv, base + frame(1, 5, 1, b"\xff\xf0\x7f"))), 0x9)
        # a frame larger than SETTINGS_MAX_FRAME_SIZE -> FRAME_SIZE_ERROR
        eq(goaway_code(exchange(srv, base + frame(0, 0, 1, b"\x00" * 20000))), 0x6)
        # DATA on stream 0 -> PROTOCOL_ERROR
        eq(goaway_code(exchange(srv, base + frame(0, 0, 0, b"x"))), 0x1)
        # WINDOW_UPDATE overflow on the connection -> FLOW_CONTROL_ERROR
        eq(goaway_code(exchange(srv, base + frame(8, 0, 0, struct.pack(">I", 0x7fffffff)))), 0x3)
        # many streams of garbage protobuf on one connection
        req = base
        for sid in range(1, 40, 2):
            req += frame(1, 4, sid, request_headers(b"/etcdserverpb.KV/Range"))
            req += frame(0, 1, sid, b"\x00\x00\x00\x00\x03\xff\xff\xff")
        got = exchange(srv, req)
        check(goaway_code(got) is None, "bad protobuf closed the connection")
        check(sum(1 for t, f, _, _ in frames(got) if t == 1 and f & 1) >= 20, "not every stream answered")
        still_serves(srv)
        check(srv.alive())
    finally:
        srv.stop()


@test
def grpc_errors_have_right_codes():
    srv = Server(OUR_BIN)
    try:
        ch = grpc.insecure_channel(srv.endpoint)
        raw = lambda path: ch.unary_unary(path, request_serializer=None, response_deserializer=None)
        try:
            raw("/etcdserverpb.KV/Range")(b"\x0a\xff\xff", timeout=5)
            check(False, "bad protobuf accepted")
        except grpc.RpcError as e:
            eq(e.code(), grpc.StatusCode.INTERNAL)
        try:
            raw("/etcdserverpb.KV/Nope")(b"", timeout=5)
            check(False)
        except grpc.RpcError as e:
            eq(e.code(), grpc.StatusCode.UNIMPLEMENTED)
            eq(e.details(), "unknown method Nope for service etcdserverpb.KV")
        try:
            raw("/nope.Svc/X")(b"", timeout=5)
            check(False)
        except grpc.RpcError as e:
            eq(e.code(), grpc.StatusCode.UNIMPLEMENTED)
            eq(e.details(), "unknown service nope.Svc")
        try:
            raw("/etcdserverpb.KV/Put")(b"\x0a\x01k\x12" + b"\xff\xff\xff\x01" + b"x" * (4 << 20), timeout=10)
            check(False)
        except grpc.RpcError as e:
            eq(e.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        # the compressed flag without a negotiated encoding
        s = exchange(srv, PREFACE + frame(4, 0, 0, b"") + frame(1, 4, 1, request_headers(b"/etcdserverpb.KV/Range"))
                     + frame(0, 1, 1, b"\x01\x00\x00\x00\x03\x0a\x01a"))
        check(any(t == 1 and f & 1 for t, f, _, _ in frames(s)), "no trailers")
        # a good call on the same channel still works
        eq(raw("/etcdserverpb.KV/Range")(b"\x0a\x01a", timeout=5)[:1], b"\x0a")  # header first
        ch.close()
        still_serves(srv)
    finally:
        srv.stop()


def _trickle(srv, data, step, pause=0.002):
    """Sends data `step` bytes at a time; returns what came back until the
    server closed, a gRPC call's trailers came or 2 s passed."""
    s = socket.create_connection(("127.0.0.1", srv.cport))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i in range(0, len(data), step):
        s.sendall(data[i:i + step])
        time.sleep(pause)
    got = b""
    deadline = time.time() + 2
    s.settimeout(0.1)
    while time.time() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            break
        got += chunk
        if data.startswith(PREFACE) and any(t == 1 and f & 1 for t, f, _, _ in frames(got)):
            break
    s.close()
    return got


@test
def requests_split_anywhere_are_read_whole():
    """Reads land in a buffer the server shares; what a read leaves of a
    frame or a request waits with its connection.  A gRPC Put sent a byte at
    a time, an HTTP/1.1 request in pieces, a body larger than the shared
    buffer's half, a 1 MiB value over many reads: all are served.  And
    connections that sit idle hold no read buffer: after a 60 KiB burst each,
    200 of them cost far less than the 64 KiB each that a buffer per
    connection would."""
    srv = Server(OUR_BIN)
    try:
        key, val = b"trickle", b"v" * 300
        put = b"\x0a" + bytes([len(key)]) + key + b"\x12" + bytes([0xac, 0x02]) + val
        msg = b"\x00" + struct.pack(">I", len(put)) + put
        req = (PREFACE + frame(4, 0, 0, b"") + frame(1, 4, 1, request_headers(b"/etcdserverpb.KV/Put")) +
               frame(0, 1, 1, msg))
        for step in (1, 7, 100):
            _trickle(srv, req, step)
            eq(etcdctl(srv.endpoint, "get", "trickle", "--print-value-only")[1], val + b"\n",
               "put sent %d bytes at a time" % step)
            etcdctl(srv.endpoint, "del", "trickle")
        got = _trickle(srv, b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 5)
        check(got.startswith(b"HTTP/1.1 200") and b"etcdserver" in got, got[:200])
        body = b"x" * (100 * 1024)
        got = _trickle(srv, b"POST /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body,
                       8192, pause=0.001)
        check(got.startswith(b"HTTP/1.1 "), got[:200])
        big = b"B" * (1 << 20)
        eq(etcdctl(srv.endpoint, "put", "big", input=big)[0], 0)
        eq(etcdctl(srv.endpoint, "get", "big", "--print-value-only")[1], big + b"\n")

        # each connection first sends a read's worth (60 KiB of WINDOW_UPDATEs,
        # which want no answer), then sits idle
        pid = srv.proc.pid
        r0 = proc_kib(pid, "RssAnon")
        burst = PREFACE + frame(4, 0, 0, b"") + frame(8, 0, 0, struct.pack(">I", 1)) * 4700
        idle = []
        for _ in range(200):
            c = socket.create_connection(("127.0.0.1", srv.cport))
            c.sendall(burst)
            idle.append(c)
        time.sleep(0.5)
        per_conn = (proc_kib(pid, "RssAnon") - r0) / len(idle)
        print("    %.1f KiB resident per idle connection" % per_conn)
        check(per_conn < 24, "%.1f KiB per idle connection" % per_conn)
        for c in idle:
            c.close()
        still_serves(srv)
        check(srv.alive())
    finally:
        srv.stop()
