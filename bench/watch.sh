#!/usr/bin/env bash
# bench/watch.sh - watch fan-out of bin/etcd next to Debian's etcd 3.4.23:
# W watchers on one key spread over C HTTP/2 connections (bench/watchfan.c,
# a C receiver built here with cc -O2), then P puts to the key with h2load
# (1 connection, 10 in flight); every watcher must see every event.  A
# benchmark, not a test: quote ratios from one run.
#
#   bench/watch.sh [WATCHERS] [PUTS] [CONNS...]     (default 1000 1000 1 10 100)
#   FANOPTS="-s 65536 -W 65536" bench/watch.sh ...  (a client with small windows: slow)
#
# Per server and connection count: events delivered per second (first event
# to last, as the receiver saw them), the server's CPU time per delivered
# event (utime + stime of the server process from "all watches created" to
# "last event received"), the receiver's, and the server's peak RSS
# (VmHWM).  On a 2-core machine the server, the receiver and h2load share
# the CPUs: events/s is bounded by all three, the server's CPU per event is
# its own cost.
set -u -o pipefail
cd "$(dirname "$0")/.."
WATCHERS=${1:-1000}
PUTS=${2:-1000}
shift 2 2>/dev/null || shift $#
CONNS=("$@")
[ ${#CONNS[@]} -gt 0 ] || CONNS=(1 10 100)
OURS=${OURS:-bin/etcd}
REAL=${REAL:-/usr/bin/etcd}
for t in h2load cc /usr/bin/python3 "$REAL" "$OURS"; do
  [ -e "$t" ] || command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 2; }
done
W=$(mktemp -d /tmp/etcdwatch.XXXXXX)
PID=""
FPID=""
trap '[ -n "$FPID" ] && kill $FPID 2>/dev/null; [ -n "$PID" ] && kill $PID 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT

cc -std=c11 -O2 -Wall -Wextra -o "$W/watchfan" bench/watchfan.c || exit 2
/usr/bin/python3 - "$W" <<'PY'
import struct, sys
from etcd3.etcdrpc import rpc_pb2
b = rpc_pb2.PutRequest(key=b"bench/watch", value=b"v" * 256).SerializeToString()
open(sys.argv[1] + "/put.bin", "wb").write(b"\0" + struct.pack(">I", len(b)) + b)
PY

port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() { # bin conns -> "events/s server_us/event receiver_us/event peak_kib"
  local cp pp url out t0 t1 hz ok=""
  cp=$(port); pp=$(port); url=127.0.0.1:$cp
  "$1" --data-dir "$W/data.$cp" --listen-client-urls "http://$url" --advertise-client-urls "http://$url" \
    --listen-peer-urls "http://127.0.0.1:$pp" --initial-advertise-peer-urls "http://127.0.0.1:$pp" \
    --initial-cluster "default=http://127.0.0.1:$pp" >"$W/log.$cp" 2>&1 &
  PID=$!
  for _ in $(seq 200); do
    ETCDCTL_API=3 etcdctl --endpoints "$url" put bench/watch v >/dev/null 2>&1 && break
    sleep 0.05
  done
  "$W/watchfan" -p "$cp" -w "$WATCHERS" -c "$2" -n "$PUTS" -k bench/watch -t 60 ${FANOPTS:-} >"$W/fan.$cp" 2>&1 &
  FPID=$!
  for _ in $(seq 1200); do
    grep -q '^ready' "$W/fan.$cp" && { ok=1; break; }
    kill -0 $FPID 2>/dev/null || break
    sleep 0.05
  done
  [ -n "$ok" ] || { echo "watchfan: $(cat "$W/fan.$cp")" >&2; exit 1; }
  t0=$(cpu_ticks $PID)
  h2load -n "$PUTS" -c 1 -m 10 -d "$W/put.bin" -H "content-type: application/grpc" -H "te: trailers" \
    "http://$url/etcdserverpb.KV/Put" >"$W/h2load.$cp" 2>&1
  wait $FPID || { echo "watchfan: $(cat "$W/fan.$cp")" >&2; exit 1; }
  FPID=""
  t1=$(cpu_ticks $PID)
  hz=$(getconf CLK_TCK)
  awk -v t0="$t0" -v t1="$t1" -v hz="$hz" -v hwm="$(awk '/VmHWM/ {print $2}' /proc/$PID/status)" '
    $1 == "events" { printf "%d %.3f %.3f %s\n", $12, (t1 - t0) * 1e6 / hz / $2, $14 * 1e6 / $2, hwm }' \
    "$W/fan.$cp"
  kill "$PID"; wait "$PID" 2>/dev/null; PID=""
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'; }
printf "watch fan-out: %d watchers on one key x %d puts (256-byte values)\n" "$WATCHERS" "$PUTS"
printf "%5s | %12s %12s %7s | %9s %9s %7s | %9s %9s | %9s %9s\n" conns "etcd ev/s" "ours ev/s" ours/etcd \
  "etcd us/ev" "ours us/ev" etcd/ours "rcv etcd" "rcv ours" "etcd KiB" "ours KiB"
for c in "${CONNS[@]}"; do
  # in this shell, not a subshell: a failure exits through the trap
  run "$REAL" "$c" >"$W/res.real"
  run "$OURS" "$c" >"$W/res.ours"
  read -r re rc rr rm <"$W/res.real"
  read -r oe oc or om <"$W/res.ours"
  printf "%5s | %12s %12s %7s | %9s %9s %7s | %9s %9s | %9s %9s\n" "$c" "$re" "$oe" "$(ratio "$oe" "$re")" \
    "$rc" "$oc" "$(ratio "$rc" "$oc")" "$rr" "$or" "$rm" "$om"
done
echo "(us/ev: server CPU microseconds per delivered event; rcv: the receiver's; KiB: server peak RSS)"
