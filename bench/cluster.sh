#!/usr/bin/env bash
# Measures sockgate across two nodes of one cluster: fan-out and revocation
# propagation, with the same load generator (sockgate-bench) as compare.sh.
#
#   bench/cluster.sh [--quick|--full]
#
#   --quick (default)  fan-out to 1,000 members; revocations of 100 sockets
#                      (the propagation time); a few seconds of load
#   --full             fan-out to 10,000 members; revocations of 1,000
#                      sockets at once (propagation plus bulk ending)
#
# Builds sockgate and sockgate-bench in release mode, starts a private
# redis-server on a free loopback port and two sockgate nodes on it, and
# runs each scenario twice: `one-node` (every socket on node A) and
# `two-nodes` (sockets alternate between A and B). The admin API call
# (publish, revoke) always goes to node A, so in the two-node run half of
# the sockets are reached across Redis; their latencies are reported on
# their own (fanout.remote.*, revoke.remote.*). revoke runs several rounds
# (fresh sockets, fresh jti) so its percentiles rest on more than one call.
# Writes
# bench/results/cluster.json and bench/results/cluster.svg.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

MODE=quick
case "${1:-}" in
  "" | --quick) MODE=quick ;;
  --full) MODE=full ;;
  -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: $0 [--quick|--full]" >&2; exit 2 ;;
esac

SECRET="sockgate-bench-secret-0123456789abcdef"
API_KEY="sockgate-bench-api-key-0123456789"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BENCH="$TARGET_DIR/release/sockgate-bench"
SOCKGATE="$TARGET_DIR/release/sockgate"
OUT="$ROOT/bench/results"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sockgate-cluster.XXXXXX")
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
if [ "$NOFILE" = unlimited ]; then NOFILE=1048576; fi

if [ "$MODE" = quick ]; then
  FANOUT_N=1000;  FANOUT_K=30
  REVOKE_N=100;   ROUNDS=20
  TIMEOUT=60
else
  FANOUT_N=10000; FANOUT_K=100
  REVOKE_N=1000;  ROUNDS=10
  TIMEOUT=300
fi
CAP=$((NOFILE - 200))
for v in FANOUT_N REVOKE_N; do
  if [ "${!v}" -gt "$CAP" ]; then
    echo "note: $v lowered from ${!v} to $CAP by the open-file limit (ulimit -Hn = $NOFILE)"
    printf -v "$v" '%s' "$CAP"
  fi
done

if ! command -v redis-server >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> installing redis-server"
    apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
  else
    echo "error: this benchmark needs redis-server; install it and run again" >&2
    exit 1
  fi
fi

echo "==> building sockgate and sockgate-bench (release, $TARGET_DIR)"
cargo build --release -p sockgate -p sockgate-bench
export JWT_SECRET="$SECRET"
STARTED=$SECONDS

REDIS_PORT=$("$BENCH" free-port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
"$BENCH" wait-ready --url "http://127.0.0.1:$REDIS_PORT" --timeout 10
echo "==> redis-server on 127.0.0.1:$REDIS_PORT"

# start_node NAME: a sockgate node of the cluster; sets URL.
start_node() {
  local name=$1 port
  port=$("$BENCH" free-port)
  URL="http://127.0.0.1:$port"
  # Abuse limits off, as in compare.sh: the generator is a handful of
  # client addresses opening thousands of connections.
  SOCKGATE_API_KEY=$API_KEY SOCKGATE_LISTEN="127.0.0.1:$port" \
    SOCKGATE_REDIS_URL="redis://127.0.0.1:$REDIS_PORT" \
    SOCKGATE_DATA_DIR="$WORK/data-$name" SOCKGATE_LOG=warn SOCKGATE_SHUTDOWN_TIMEOUT=2 \
    SOCKGATE_HANDSHAKE_RATE=0 SOCKGATE_EVENT_RATE=0 \
    "$SOCKGATE" serve >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  if ! "$BENCH" wait-ready --url "$URL" --timeout 30; then
    echo "error: node $name did not start; its log:" >&2
    cat "$WORK/$name.log" >&2
    exit 1
  fi
  echo "==> node $name on $URL"
}

start_node a
A=$URL
start_node b
B=$URL
# Both nodes must have joined the cluster before anything is measured.
command -v curl >/dev/null && for url in "$A" "$B"; do
  for _ in $(seq 50); do
    curl -fs "$url/readyz" >/dev/null && break
    sleep 0.2
  done
done

# scenario DIR NAME ARGS...: one scenario, report in DIR/NAME.json.
scenario() {
  local dir=$1 name=$2
  shift 2
  local rc=0
  mkdir -p "$dir"
  "$BENCH" "$name" --url "$A" --timeout "$TIMEOUT" --concurrency 200 --api-key "$API_KEY" \
    --json "$dir/$name.json" "$@" || rc=$?
  [ $rc = 0 ] || echo "    ($name counted errors or could not run: exit $rc)"
}

echo "==> one node: every socket on A"
scenario "$WORK/one-node" fanout --members "$FANOUT_N" --messages "$FANOUT_K"
scenario "$WORK/one-node" revoke --connections "$REVOKE_N" --rounds "$ROUNDS"
echo "==> two nodes: sockets alternate between A and B; API calls to A"
scenario "$WORK/two-nodes" fanout --members "$FANOUT_N" --messages "$FANOUT_K" --node "$B"
scenario "$WORK/two-nodes" revoke --connections "$REVOKE_N" --rounds "$ROUNDS" --node "$B"

mkdir -p "$OUT"
echo
"$BENCH" compare \
  --run "one-node=$WORK/one-node" --run "two-nodes=$WORK/two-nodes" \
  --mode "cluster-$MODE" --date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --note "$(redis-server --version | cut -d' ' -f1-3), $(rustc --version | cut -d' ' -f1-2), sockgate $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo '+dirty')" \
  --note "redis-server, both nodes and the generator share the machine's $(nproc) cores; revoke: $ROUNDS rounds of $REVOKE_N sockets, percentiles over all" \
  --out "$OUT/cluster.json"
"$BENCH" chart --input "$OUT/cluster.json" --out "$OUT/cluster.svg"
echo "==> took $((SECONDS - STARTED)) s (build not counted)"
