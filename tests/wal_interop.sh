#!/usr/bin/env bash
# tests/wal_interop.sh - runs the real etcd 3.4 for test_wal's interop test.
#
#   wal_interop.sh gen DATADIR       start etcd on a new DATADIR, put the keys
#                                    wal-interop-key1..3 (values v1..v3), print
#                                    "member_id=N" and "cluster_id=N" (decimal),
#                                    stop etcd with SIGTERM
#   wal_interop.sh get DATADIR KEY   start etcd on DATADIR, print KEY's value,
#                                    stop it
#
# etcd listens on free 127.0.0.1 ports only; its log goes to DATADIR.log.
# Only the etcd this script started is ever signalled.  Exit 77 when
# /usr/bin/etcd or /usr/bin/etcdctl is missing (the test then skips).
set -u -o pipefail

ETCD=/usr/bin/etcd
ETCDCTL=/usr/bin/etcdctl
[ -x "$ETCD" ] && [ -x "$ETCDCTL" ] || { echo "etcd or etcdctl not installed" >&2; exit 77; }

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { sed -n '4,10p' "$0" >&2; exit 2; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pid=
stop_etcd() {
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  pid=
}
trap stop_etcd EXIT

start_etcd() {
  local cport pport
  cport=$(free_port) && pport=$(free_port) || exit 1
  [ "$cport" != "$pport" ] || pport=$(free_port)
  ep=http://127.0.0.1:$cport
  local peer=http://127.0.0.1:$pport
  "$ETCD" --name wal-interop --data-dir "$dir" \
    --listen-client-urls "$ep" --advertise-client-urls "$ep" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
    --initial-cluster "wal-interop=$peer" --initial-cluster-state new \
    >>"$dir.log" 2>&1 &
  pid=$!
  for _ in $(seq 200); do
    "$ETCDCTL" --endpoints="$ep" --dial-timeout=1s endpoint health >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "etcd did not become healthy; log: $dir.log" >&2
  tail -20 "$dir.log" >&2
  exit 1
}

ctl() { "$ETCDCTL" --endpoints="$ep" --command-timeout=5s "$@"; }

case $cmd in
  gen)
    start_etcd
    for i in 1 2 3; do ctl put "wal-interop-key$i" "v$i" >/dev/null || exit 1; done
    status=$(ctl endpoint status -w fields) || exit 1
    echo "member_id=$(echo "$status" | sed -n 's/^"MemberID" : //p')"
    echo "cluster_id=$(echo "$status" | sed -n 's/^"ClusterID" : //p')"
    ;;
  get)
    key=${3:?key}
    start_etcd
    ctl get "$key" --print-value-only || exit 1
    ;;
  *)
    echo "unknown command $cmd" >&2
    exit 2
    ;;
esac
stop_etcd
