#!/usr/bin/env bash
# bench/kv.sh - put and range throughput of bin/etcd next to Debian's etcd
# 3.4.23, with h2load (nghttp2-client) sending real gRPC bodies made by
# python3-etcd3's generated protobuf classes.  A benchmark, not a test:
# quote ratios from one run.
#
#   bench/kv.sh [DURATION_S]     (default 5)
#
# Workloads (conns x streams): put 1x1, put 10x100, range 10x10 serializable,
# range 10x100 linearizable, lease keep-alive 10x100 (each h2load request is
# one LeaseKeepAlive stream renewing one lease once).  Also idle RSS after
# startup and binary size.
set -u -o pipefail
cd "$(dirname "$0")/.."
D=${1:-5}
OURS=${OURS:-bin/etcd}
REAL=${REAL:-/usr/bin/etcd}
for t in h2load /usr/bin/python3 "$REAL" "$OURS"; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install nghttp2-client etcd-server python3-etcd3; make)" >&2; exit 2; }
done
W=$(mktemp -d /tmp/etcdbench.XXXXXX)
trap 'kill $PIDS 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
PIDS=""

/usr/bin/python3 - "$W" <<'PY'
import struct, sys
from etcd3.etcdrpc import rpc_pb2
w = sys.argv[1]
def body(name, msg):
    b = msg.SerializeToString()
    open("%s/%s.bin" % (w, name), "wb").write(b"\0" + struct.pack(">I", len(b)) + b)
body("put", rpc_pb2.PutRequest(key=b"bench/key", value=b"v" * 256))
body("rser", rpc_pb2.RangeRequest(key=b"bench/key", serializable=True))
body("rlin", rpc_pb2.RangeRequest(key=b"bench/key"))
PY

# lease keep-alive bodies are made per server, once its lease exists
ka_body() { # url -> $W/ka.bin renewing a fresh 1-hour lease
  local id
  id=$(ETCDCTL_API=3 etcdctl --endpoints "$1" lease grant 3600 | awk '{print $2}')
  /usr/bin/python3 - "$W" "$id" <<'PY'
import struct, sys
from etcd3.etcdrpc import rpc_pb2
b = rpc_pb2.LeaseKeepAliveRequest(ID=int(sys.argv[2], 16)).SerializeToString()
open(sys.argv[1] + "/ka.bin", "wb").write(b"\0" + struct.pack(">I", len(b)) + b)
PY
}

port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start() { # bin -> sets URL PID
  local cp pp; cp=$(port); pp=$(port)
  URL=http://127.0.0.1:$cp
  "$1" --data-dir "$W/data.$cp" --listen-client-urls "$URL" --advertise-client-urls "$URL" \
    --listen-peer-urls "http://127.0.0.1:$pp" --initial-advertise-peer-urls "http://127.0.0.1:$pp" \
    --initial-cluster "default=http://127.0.0.1:$pp" >"$W/log.$cp" 2>&1 &
  PID=$!
  PIDS="$PIDS $PID"
  for _ in $(seq 200); do
    ETCDCTL_API=3 etcdctl --endpoints "$URL" put bench/key v >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "server $1 did not start" >&2; exit 1
}

rate() { # url path body conns streams -> req/s
  h2load -D "$D" -c "$4" -m "$5" -d "$W/$3.bin" -H 'content-type: application/grpc' -H 'te: trailers' \
    "$1$2" 2>/dev/null | awk '/^finished in/ {gsub(",", "", $4); print int($4)}'
}

declare -A R
for who in real ours; do
  bin=$REAL; [ $who = ours ] && bin=$OURS
  start "$bin"
  sleep 1
  R[$who.rss]=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
  R[$who.put1]=$(rate "$URL" /etcdserverpb.KV/Put put 1 1)
  R[$who.put10]=$(rate "$URL" /etcdserverpb.KV/Put put 10 100)
  R[$who.rser]=$(rate "$URL" /etcdserverpb.KV/Range rser 10 10)
  R[$who.rlin]=$(rate "$URL" /etcdserverpb.KV/Range rlin 10 100)
  ka_body "$URL"
  R[$who.ka]=$(rate "$URL" /etcdserverpb.Lease/LeaseKeepAlive ka 10 100)
  R[$who.peak]=$(awk '/VmHWM/ {print $2}' /proc/$PID/status)
  kill "$PID"; wait "$PID" 2>/dev/null
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'; }
printf "%-28s %14s %14s %8s\n" workload "etcd 3.4.23" "ours" ratio
for k in put1:"put 1x1 (req/s)" put10:"put 10x100 (req/s)" rser:"range ser 10x10 (req/s)" rlin:"range lin 10x100 (req/s)" ka:"lease keep-alive 10x100 (/s)"; do
  key=${k%%:*}; label=${k#*:}
  printf "%-28s %14s %14s %8s\n" "$label" "${R[real.$key]}" "${R[ours.$key]}" "$(ratio "${R[ours.$key]}" "${R[real.$key]}")"
done
printf "%-28s %14s %14s %8s\n" "idle RSS (KiB)" "${R[real.rss]}" "${R[ours.rss]}" "$(ratio "${R[ours.rss]}" "${R[real.rss]}")"
printf "%-28s %14s %14s %8s\n" "peak RSS (KiB)" "${R[real.peak]}" "${R[ours.peak]}" "$(ratio "${R[ours.peak]}" "${R[real.peak]}")"
rs=$(stat -Lc %s "$REAL"); os=$(stat -Lc %s "$OURS")
printf "%-28s %14s %14s %8s\n" "binary (bytes)" "$rs" "$os" "$(ratio "$os" "$rs")"
