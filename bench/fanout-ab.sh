#!/usr/bin/env bash
# Fan-out of two sockgate builds and the Node peer, alternating, in one
# session: what a change costs the publish path, with the peer as the
# yardstick of how busy the machine is.
#
#   bench/fanout-ab.sh OLD_SOCKGATE NEW_SOCKGATE [RUNS]
#
#   MEMBERS (default 1000), MESSAGES (200), PAYLOAD (bytes of text, 0)
#
# Each run starts a fresh server on a free port (its own data directory),
# runs `sockgate-bench fanout` against it, and stops it with SIGTERM. The
# generator is the release sockgate-bench of this tree (built if missing).
# Reports go to $SOCKGATE_BENCH_OUT/fanout-ab/ (default bench/results), and
# a table of medians is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OLD=$(realpath "${1:?usage: $0 OLD_SOCKGATE NEW_SOCKGATE [RUNS]}")
NEW=$(realpath "${2:?usage: $0 OLD_SOCKGATE NEW_SOCKGATE [RUNS]}")
RUNS=${3:-3}
. bench/lib.sh
raise_nofile
[ -x "$BENCH" ] || cargo build --release -p sockgate-bench
npm_ci bench/peer-node
export JWT_SECRET="$SECRET"
DIR="$OUT/fanout-ab"
mkdir -p "$DIR"
MEMBERS=${MEMBERS:-1000} MESSAGES=${MESSAGES:-200} PAYLOAD=${PAYLOAD:-0}

one() {
  local label=$1 run=$2 port
  port=$("$BENCH" free-port)
  URL="http://127.0.0.1:$port"
  case $label in
    peer) launch "$label" env PORT="$port" API_KEY="$API_KEY" JWT_SECRET="$SECRET" \
      "$(command -v node)" bench/peer-node/server.mjs ;;
    old | new)
      local bin=$OLD
      [ "$label" = new ] && bin=$NEW
      launch "$label" env JWT_SECRET="$SECRET" SOCKGATE_API_KEY="$API_KEY" SOCKGATE_LISTEN="127.0.0.1:$port" \
        SOCKGATE_DATA_DIR="$WORK/data-$label-$run" SOCKGATE_LOG=warn SOCKGATE_HANDSHAKE_RATE=0 \
        SOCKGATE_EVENT_RATE=0 SOCKGATE_MAX_TCP_CONNECTIONS_PER_ADDRESS=0 "$bin" serve ;;
  esac
  wait_ready "$label"
  "$BENCH" fanout --url "$URL" --members "$MEMBERS" --messages "$MESSAGES" --payload "$PAYLOAD" \
    --concurrency 200 --api-key "$API_KEY" --json "$DIR/$label-$run.json" || true
  stop_launched "$label"
  sleep 2
}

for run in $(seq "$RUNS"); do
  for label in old new peer; do one "$label" "$run"; done
done

node -e '
const fs = require("fs");
const dir = process.argv[1], runs = Number(process.argv[2]);
const keys = ["fanout.all.p50", "fanout.all.p99", "fanout.rate", "fanout.call.p50"];
const med = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const of = (label, key) => med(Array.from({ length: runs }, (_, i) => {
  const r = JSON.parse(fs.readFileSync(`${dir}/${label}-${i + 1}.json`));
  return r.metrics.find((m) => m.key === key).value;
}));
for (const key of keys) {
  const [o, n, p] = ["old", "new", "peer"].map((l) => of(l, key));
  console.log(`${key.padEnd(16)} old ${o.toFixed(2)}  new ${n.toFixed(2)}  peer ${p.toFixed(2)}  new/old ${(n / o).toFixed(2)}x  new/peer ${(n / p).toFixed(2)}x`);
}' "$DIR" "$RUNS"
