#!/usr/bin/env bash
# build.sh - the steps behind `make`: installing missing Debian packages,
# running the unit and end-to-end tests, the fuzz smoke run.
#   ./build.sh deps          install what is missing (as root), or say what is
#   ./build.sh unit T...     run cmocka test binaries
#   ./build.sh e2e           end-to-end tests with Debian's etcdctl/python3-etcd3
#   ./build.sh e2e-release   some of them again against the release binary
#   ./build.sh fuzz [secs]   build the libFuzzer targets and run each briefly
#   ./build.sh summary       the closing "N passed, N failed" line of make test
set -u -o pipefail
cd "$(dirname "$0")"
RESULTS=build/results.txt
mkdir -p build

# command or file -> Debian package that provides it
NEEDS=(
  "gcc:gcc" "make:make" "musl-gcc:musl-tools" "clang:clang" "file:file" "curl:curl"
  "/usr/include/bearssl.h:libbearssl-dev" "/usr/include/cmocka.h:libcmocka-dev"
  "/usr/bin/etcd:etcd-server" "/usr/bin/etcdctl:etcd-client"
  "/usr/lib/python3/dist-packages/etcd3/__init__.py:python3-etcd3"
  "/usr/bin/unshare:util-linux" "openssl:openssl" "h2load:nghttp2-client"
  "/usr/share/bash-completion/bash_completion:bash-completion" "zsh:zsh" "fish:fish"
)

deps() {
  local missing=() item what pkg
  for item in "${NEEDS[@]}"; do
    what=${item%%:*} pkg=${item##*:}
    if [[ $what == /* ]]; then [ -e "$what" ] && continue
    else command -v "$what" >/dev/null 2>&1 && continue; fi
    missing+=("$pkg")
  done
  # libFuzzer's runtime ships separately from clang on Debian
  if command -v clang >/dev/null 2>&1 && ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
    missing+=("libclang-rt-$(clang --version | sed -n 's/.*version \([0-9]*\).*/\1/p' | head -1)-dev")
  fi
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    return 1
  fi
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

record() { echo "$1 $2 $3" >>"$RESULTS"; } # suite passed failed

unit() {
  local t out pass fail
  for t in "$@"; do
    out=$("$t" 2>&1); local rc=$?
    echo "$out"
    pass=$(echo "$out" | grep -o '\[  PASSED  \] [0-9]* test' | awk '{s+=$4} END {print s+0}')
    fail=$(echo "$out" | grep -o '\[  FAILED  \] [0-9]* test' | awk '{s+=$4} END {print s+0}')
    if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi # crashed
    record "$(basename "$t")" "$pass" "$fail"
  done
}

e2e() {
  /usr/bin/python3 tests/e2e/run.py
  local rc=$?
  local line
  line=$(tail -n 1 build/e2e-result.txt 2>/dev/null || echo "0 1")
  record e2e $line
  return 0
}

# The release binary has its own allocator paths (off under ASan): a quick
# pass of the client-facing suites against it too.
e2e_release() {
  ETCD_BIN="$PWD/bin/etcd" /usr/bin/python3 tests/e2e/run.py kv_commands_match_real_etcd python_etcd3_kv \
    garbage_and_protocol_errors_leave_server_serving grpc_errors_have_right_codes \
    kill9_under_load_loses_no_acknowledged_write python_etcd3_watch_matches_real_etcd \
    slow_watcher_is_bounded_and_catches_up lease_commands_match_real_etcd hashkv_and_defrag_match_real_etcd \
    history_values_are_read_back_from_disk
  local line
  line=$(tail -n 1 build/e2e-result.txt 2>/dev/null || echo "0 1")
  record e2e-release $line
  return 0
}

fuzz() {
  local secs=${1:-20} t
  mkdir -p build/fuzz
  for t in tests/fuzz/fuzz_*.c; do
    local name deps
    name=$(basename "$t" .c)
    deps=$(sed -n 's|^// deps: ||p' "$t")
    clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -I. -o "build/fuzz/$name" "$t" $deps || return 1
    mkdir -p "build/fuzz/$name.corpus"
    "build/fuzz/$name" -max_total_time="$secs" -rss_limit_mb=1024 "build/fuzz/$name.corpus" >"build/fuzz/$name.log" 2>&1 \
      && { echo "fuzz $name: ${secs}s, no crash"; record "$name" 1 0; } \
      || { tail -30 "build/fuzz/$name.log"; record "$name" 0 1; }
  done
}

summary() {
  awk '{p+=$2; f+=$3; printf "  %-24s %4d passed, %d failed\n", $1, $2, $3} END {printf "total: %d passed, %d failed\n", p, f; exit f > 0}' "$RESULTS"
}

cmd=${1:-}
shift || true
case $cmd in
  deps) deps ;;
  unit) unit "$@" ;;
  e2e) e2e ;;
  e2e-release) e2e_release ;;
  fuzz) fuzz "$@" ;;
  summary) summary ;;
  reset) rm -f "$RESULTS" ;;
  *) sed -n '2,8p' "$0"; exit 2 ;;
esac
