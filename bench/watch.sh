#!/usr/bin/env bash
# bench/watch.sh - watch fan-out of bin/etcd next to Debian's etcd 3.4.23:
# W watchers on one key (python3-etcd3's grpc, ../shared/bench/watchfan.py),
# then P puts to it with h2load; every watcher must see every event.  A
# benchmark, not a test: quote ratios from one run.
#
#   bench/watch.sh [WATCHERS] [PUTS]     (default 1000 200)
#
# On a small machine the Python client that receives the events is the
# bottleneck for either server, so delivered events/s mostly measures it;
# the server's own cost shows in its CPU time per delivered event (utime +
# stime of the server process across the run) and its memory (VmHWM).
set -u -o pipefail
cd "$(dirname "$0")/.."
WATCHERS=${1:-1000}
PUTS=${2:-200}
OURS=${OURS:-bin/etcd}
REAL=${REAL:-/usr/bin/etcd}
FAN=${FAN:-../shared/bench/watchfan.py}
for t in h2load /usr/bin/python3 "$REAL" "$OURS" "$FAN"; do
  [ -e "$t" ] || command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 2; }
done
W=$(mktemp -d /tmp/etcdwatch.XXXXXX)
PID=""
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT

/usr/bin/python3 - "$W" <<'PY'
import struct, sys
from etcd3.etcdrpc import rpc_pb2
b = rpc_pb2.PutRequest(key=b"bench/watch", value=b"v" * 256).SerializeToString()
open(sys.argv[1] + "/put.bin", "wb").write(b"\0" + struct.pack(">I", len(b)) + b)
PY

port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() { # bin -> "events/s cpu_us_per_event peak_kib"
  local cp pp url out t0 t1 hz
  cp=$(port); pp=$(port); url=127.0.0.1:$cp
  "$1" --data-dir "$W/data.$cp" --listen-client-urls "http://$url" --advertise-client-urls "http://$url" \
    --listen-peer-urls "http://127.0.0.1:$pp" --initial-advertise-peer-urls "http://127.0.0.1:$pp" \
    --initial-cluster "default=http://127.0.0.1:$pp" >"$W/log.$cp" 2>&1 &
  PID=$!
  for _ in $(seq 200); do
    ETCDCTL_API=3 etcdctl --endpoints "$url" put bench/watch v >/dev/null 2>&1 && break
    sleep 0.05
  done
  t0=$(cpu_ticks $PID)
  out=$(/usr/bin/python3 "$FAN" --endpoint "$url" --watchers "$WATCHERS" --puts "$PUTS" --body "$W/put.bin" \
    --key bench/watch --timeout 120)
  t1=$(cpu_ticks $PID)
  hz=$(getconf CLK_TCK)
  echo "$out" | /usr/bin/python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
if "error" in r:
    sys.exit("watchfan: %s" % r["error"])
ev = r["watchers"] * r["puts"]
cpu_us = (int(sys.argv[2]) - int(sys.argv[1])) * 1e6 / int(sys.argv[3])
print("%d %.2f %s" % (r["events_per_s"], cpu_us / ev, sys.argv[4]))
' "$t0" "$t1" "$hz" "$(awk '/VmHWM/ {print $2}' /proc/$PID/status)"
  kill "$PID"; wait "$PID" 2>/dev/null; PID=""
}

read -r re rc rm < <(run "$REAL")
read -r oe oc om < <(run "$OURS")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'; }
printf "watch fan-out: %d watchers x %d puts\n" "$WATCHERS" "$PUTS"
printf "%-34s %12s %12s %8s\n" metric "etcd 3.4.23" ours "etcd/ours"
printf "%-34s %12s %12s %8s\n" "events delivered/s (client-bound)" "$re" "$oe" "$(ratio "$re" "$oe")"
printf "%-34s %12s %12s %8s\n" "server CPU us per event" "$rc" "$oc" "$(ratio "$rc" "$oc")"
printf "%-34s %12s %12s %8s\n" "server peak RSS (KiB)" "$rm" "$om" "$(ratio "$rm" "$om")"
