#!/usr/bin/env bash
# Holds N authenticated connections at once on this machine (default
# 100,000) with a sockgate cluster, and reports what that costs.
#
#   bench/scale.sh [CONNECTIONS] [HOLD_SECONDS]
#
# One process can hold about as many connections as its open-file limit
# (`ulimit -Hn`) allows. Where that limit is below CONNECTIONS, the script
# runs as many sockgate nodes as it takes, joined into one cluster through
# a private redis-server on a free loopback port, and one sockgate-bench
# `hold` per node, all at the same time. While they hold, it sums the
# nodes' `sockgate_sessions` gauges (from /metrics) and keeps the highest
# total: the number of connections the cluster held at once. Writes
# bench/results/scale.json.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

WANT=${1:-100000}
HOLD=${2:-45}
. bench/lib.sh
raise_nofile
PER_PROCESS=$((NOFILE - 1000))
NODES=$(((WANT + PER_PROCESS - 1) / PER_PROCESS))
EACH=$(((WANT + NODES - 1) / NODES))
echo "==> $WANT connections: $NODES node(s) of $EACH (open-file limit $NOFILE per process)"

build_release
export JWT_SECRET="$SECRET"
start_redis
URLS=()
NODE_PIDS=()
for i in $(seq "$NODES"); do
  start_sockgate "node-$i" SOCKGATE_REDIS_URL="$REDIS_URL"
  URLS+=("$URL")
  NODE_PIDS+=("$SERVER_PID")
done
wait_cluster "${URLS[@]}"

# sessions URL: the node's sockgate_sessions gauge.
sessions() {
  local n
  n=$(http_get "$1" /metrics | awk '/^sockgate_sessions /{print int($2)}')
  echo "${n:-0}"
}

# Each generator spreads its connections over 200 loopback source
# addresses: with only a few, binding a source port slows to a crawl once
# tens of thousands are taken (the kernel searches the port range).
STARTED=$SECONDS
GEN_PIDS=()
for i in $(seq "$NODES"); do
  "$BENCH" hold --url "${URLS[$((i - 1))]}" --connections "$EACH" \
    --hold "$HOLD" --server-pid "${NODE_PIDS[$((i - 1))]}" --concurrency 100 --threads 1 --sources 200 \
    --timeout 900 --json "$WORK/hold-$i.json" >"$WORK/hold-$i.txt" 2>&1 &
  GEN_PIDS+=($!)
done

PEAK=0
PEAK_AT=0
while :; do
  running=0
  for pid in "${GEN_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && running=1; done
  [ $running = 1 ] || break
  total=0
  for url in "${URLS[@]}"; do total=$((total + $(sessions "$url"))); done
  if [ "$total" -gt "$PEAK" ]; then PEAK=$total; PEAK_AT=$((SECONDS - STARTED)); fi
  printf '\r    %6d s: %7d sessions held (peak %d)' $((SECONDS - STARTED)) "$total" "$PEAK"
  sleep 2
done
echo
RC=0
for pid in "${GEN_PIDS[@]}"; do wait "$pid" || RC=1; done

# field FILE NAME: a number from a report's details.
field() { grep -o "\"$2\": *[0-9.]*" "$1" | head -1 | cut -d: -f2 | tr -d ' '; }
CONNECTED=0
SERVER_BYTES=0
CLIENT_BYTES=0
ROWS=""
for i in $(seq "$NODES"); do
  f="$WORK/hold-$i.json"
  c=$(field "$f" connected)
  before=$(field "$f" server_rss_before)
  held=$(field "$f" server_rss_held)
  cb=$(field "$f" client_rss_before)
  ch=$(field "$f" client_rss_held)
  CONNECTED=$((CONNECTED + c))
  SERVER_BYTES=$((SERVER_BYTES + held - before))
  CLIENT_BYTES=$((CLIENT_BYTES + ch - cb))
  printf '    node %d: %6d connected, server RSS %s -> %s MiB\n' "$i" "$c" \
    $((before / 1048576)) $((held / 1048576))
  ROWS="$ROWS{\"node\":$i,\"connected\":$c,\"server_rss_before\":$before,\"server_rss_held\":$held},"
done
PER_CONN=$(awk -v b="$SERVER_BYTES" -v n="$CONNECTED" 'BEGIN { printf "%.2f", n ? b / n / 1024 : 0 }')
GEN_PER_CONN=$(awk -v b="$CLIENT_BYTES" -v n="$CONNECTED" 'BEGIN { printf "%.2f", n ? b / n / 1024 : 0 }')
echo "==> held at once (sum of sockgate_sessions): $PEAK, ${PEAK_AT} s in"
echo "==> connected: $CONNECTED of $((EACH * NODES)); server memory per connection ${PER_CONN} KiB; generator ${GEN_PER_CONN} KiB"
mkdir -p bench/results
printf '{"date":"%s","nodes":%d,"per_node":%d,"hold_s":%s,"peak_sessions":%d,"connected":%d,"server_kib_per_connection":%s,"generator_kib_per_connection":%s,"open_file_limit":%s,"nodes_detail":[%s]}\n' \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$NODES" "$EACH" "$HOLD" "$PEAK" "$CONNECTED" "$PER_CONN" "$GEN_PER_CONN" "$NOFILE" "${ROWS%,}" \
  >bench/results/scale.json
echo "==> wrote bench/results/scale.json; took $((SECONDS - STARTED)) s"
if [ $RC != 0 ]; then
  echo "some hold counted errors; their tables:"
  cat "$WORK"/hold-*.txt
fi
exit $RC
