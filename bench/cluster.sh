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
# Then a rolling restart, its own run `rolling-restart`: clients alternate
# between A and B and reconnect like socket.io-client while A is restarted
# (SIGTERM, wait for the exit, start again on the same port with the same
# Redis, wait until /readyz answers 200), then B the same way
# (sockgate-bench reconnect: 2,000 clients, 10,000 with --full). Writes
# bench/results/cluster.json and bench/results/cluster.svg.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

MODE=quick
case "${1:-}" in
  "" | --quick) MODE=quick ;;
  --full) MODE=full ;;
  -h | --help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: $0 [--quick|--full]" >&2; exit 2 ;;
esac

. bench/lib.sh
raise_nofile

if [ "$MODE" = quick ]; then
  FANOUT_N=1000;  FANOUT_K=30
  REVOKE_N=100;   ROUNDS=20
  RECONNECT_N=2000
  TIMEOUT=60
else
  FANOUT_N=10000; FANOUT_K=100
  REVOKE_N=1000;  ROUNDS=10
  RECONNECT_N=10000
  TIMEOUT=300
fi
CAP=$((NOFILE - 200))
for v in FANOUT_N REVOKE_N RECONNECT_N; do
  if [ "${!v}" -gt "$CAP" ]; then
    echo "note: $v lowered from ${!v} to $CAP by the open-file limit (ulimit -Hn = $NOFILE)"
    printf -v "$v" '%s' "$CAP"
  fi
done

build_release
export JWT_SECRET="$SECRET"
STARTED=$SECONDS
start_redis
start_sockgate a SOCKGATE_REDIS_URL="$REDIS_URL"
A=$URL
start_sockgate b SOCKGATE_REDIS_URL="$REDIS_URL"
B=$URL
# Both nodes must have joined the cluster before anything is measured.
wait_cluster "$A" "$B"

# scenario DIR NAME ARGS...: one scenario, report in DIR/NAME.json.
scenario() {
  local dir=$1 name=$2
  shift 2
  local rc=0
  mkdir -p "$dir"
  case $name in fanout | revoke) set -- --api-key "$API_KEY" "$@" ;; esac
  "$BENCH" "$name" --url "$A" --timeout "$TIMEOUT" --concurrency 200 \
    --json "$dir/$name.json" "$@" || rc=$?
  [ $rc = 0 ] || echo "    ($name counted errors or could not run: exit $rc)"
}

echo "==> one node: every socket on A"
scenario "$WORK/one-node" fanout --members "$FANOUT_N" --messages "$FANOUT_K"
scenario "$WORK/one-node" revoke --connections "$REVOKE_N" --rounds "$ROUNDS"
echo "==> two nodes: sockets alternate between A and B; API calls to A"
scenario "$WORK/two-nodes" fanout --members "$FANOUT_N" --messages "$FANOUT_K" --node "$B"
scenario "$WORK/two-nodes" revoke --connections "$REVOKE_N" --rounds "$ROUNDS" --node "$B"
echo "==> rolling restart: clients alternate between A and B; A restarted, then B"
restart_script a "$A" --readyz
restart_script b "$B" --readyz
sleep 3 # the previous sockets closed first
scenario "$WORK/rolling-restart" reconnect --connections "$RECONNECT_N" --node "$B" --window 30 \
  --restart-cmd "bash $(printf %q "$WORK/a.restart") && bash $(printf %q "$WORK/b.restart")"

mkdir -p "$OUT"
echo
# rolling-restart in the middle: the ratio column is last/first, so it stays
# two-nodes/one-node for fanout and revoke; reconnect has only the middle run.
"$BENCH" compare \
  --run "one-node=$WORK/one-node" --run "rolling-restart=$WORK/rolling-restart" \
  --run "two-nodes=$WORK/two-nodes" \
  --mode "cluster-$MODE" --date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --note "$(redis-server --version | cut -d' ' -f1-3), $(rustc --version | cut -d' ' -f1-2), sockgate $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo '+dirty')" \
  --note "redis-server, both nodes and the generator share the machine's $(nproc) cores; revoke: $ROUNDS rounds of $REVOKE_N sockets, percentiles over all" \
  --note "rolling-restart: $RECONNECT_N clients over A and B; A restarted (SIGTERM, exit, start, /readyz 200), then B" \
  --out "$OUT/cluster.json"
"$BENCH" chart --input "$OUT/cluster.json" --out "$OUT/cluster.svg"
echo "==> took $((SECONDS - STARTED)) s (build not counted)"
