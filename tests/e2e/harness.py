"""harness.py - shared pieces of the end-to-end tests: free loopback ports,
starting and stopping servers (ours and Debian's etcd 3.4.23) on temp data
dirs, running Debian's etcdctl, and a tiny test registry that prints the
closing "N passed, N failed" line."""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUR_BIN = os.environ.get("ETCD_BIN", os.path.join(ROOT, "build/test/etcd"))
REL_BIN = os.path.join(ROOT, "bin/etcd")
REAL_ETCD = "/usr/bin/etcd"
ETCDCTL = "/usr/bin/etcdctl"
PEER_URL = "http://127.0.0.1:2380"  # advertised only: same IDs on both servers


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class Server:
    """One server process on free loopback ports and a temp data dir."""

    def __init__(self, binary, extra=(), name="default", env=None, cwd=None, data=None):
        self.binary = binary
        self.cport, self.pport = free_ports(2)
        self.tmp = tempfile.mkdtemp(prefix="etcdtest.")
        self.data = data or os.path.join(self.tmp, "data")
        self.keep_data = data is not None
        self.endpoint = "127.0.0.1:%d" % self.cport
        self.log = os.path.join(self.tmp, "server.log")
        url = "http://" + self.endpoint
        self.args = ["--name", name, "--data-dir", self.data,
                     "--listen-client-urls", url, "--advertise-client-urls", url,
                     "--listen-peer-urls", "http://127.0.0.1:%d" % self.pport,
                     "--initial-advertise-peer-urls", PEER_URL,
                     "--initial-cluster", "%s=%s" % (name, PEER_URL)] + list(extra)
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.cwd = cwd or self.tmp
        self.logf = open(self.log, "ab")
        self.start()

    def start(self, binary=None):
        """(Re)starts the process on the same ports and data dir."""
        self.binary = binary or self.binary
        self.proc = subprocess.Popen([self.binary] + self.args, stdout=self.logf, stderr=subprocess.STDOUT,
                                     env=self.env, cwd=self.cwd)
        self.wait_ready()

    def kill(self, sig=signal.SIGKILL):
        """Stops the process only, keeping the data dir for a restart."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def wait_ready(self, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited: " + self.read_log()[-2000:])
            try:
                r = subprocess.run([ETCDCTL, "--endpoints", self.endpoint, "--dial-timeout=1s",
                                    "--command-timeout=2s", "get", "probe"],
                                   capture_output=True, env=ctl_env(), timeout=5)
                if r.returncode == 0:
                    return
            except subprocess.TimeoutExpired:
                pass
            time.sleep(0.05)
        raise RuntimeError("server not ready: " + self.read_log()[-2000:])

    def read_log(self):
        with open(self.log, "rb") as f:
            return f.read().decode(errors="replace")

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        rc = self.kill(signal.SIGTERM)
        self.logf.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        return rc


def ctl_env():
    e = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    e["ETCDCTL_API"] = "3"
    return e


def etcdctl(endpoint, *args, input=None, timeout=30):
    """Runs Debian's etcdctl; returns (rc, stdout bytes, 'Error:' lines of stderr)."""
    r = subprocess.run([ETCDCTL, "--endpoints", endpoint] + list(args), input=input,
                       capture_output=True, env=ctl_env(), timeout=timeout)
    errs = [l for l in r.stderr.decode(errors="replace").splitlines() if l.startswith("Error")]
    return r.returncode, r.stdout, errs


# ---- test registry ----

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def run_all(result_file):
    only = sys.argv[1:]
    passed = failed = 0
    for fn in TESTS:
        if only and fn.__name__ not in only:
            continue
        t0 = time.time()
        try:
            fn()
            passed += 1
            print("[       OK ] e2e.%s (%.1fs)" % (fn.__name__, time.time() - t0), flush=True)
        except Exception:
            failed += 1
            print("[  FAILED  ] e2e.%s" % fn.__name__, flush=True)
            traceback.print_exc()
    print("e2e: %d passed, %d failed" % (passed, failed))
    with open(result_file, "a") as f:
        f.write("%d %d\n" % (passed, failed))
    return failed == 0


def proc_kib(pid, field):
    """A /proc/PID/status figure in KiB: VmRSS, RssAnon (the heap: not the
    db file's mapped pages), VmHWM."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def check(cond, msg=""):
    if not cond:
        raise AssertionError(msg)


def eq(a, b, msg=""):
    if a != b:
        raise AssertionError("%s\n  ours: %r\n  real: %r" % (msg, a, b))
