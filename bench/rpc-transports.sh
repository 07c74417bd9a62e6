#!/usr/bin/env bash
# The app's backend reached three ways: the same rpc scenario against
# sockgate with bench/app-backend behind it over HTTP/1.1 (http://),
# HTTP/2 cleartext (h2c://) and gRPC (grpc://), one transport after the
# other, and the three side by side.
#
#   bench/rpc-transports.sh [--quick|--full]
#
#   --quick (default)  100 connections x 200 events, window 8 (compare.sh's rpc)
#   --full             200 connections x 2000 events, window 16
#
# For each transport it starts the backend (MODE=http, h2c or grpc) and a
# fresh sockgate whose SOCKGATE_EVENTS_URL reaches it, each on a free
# loopback port, runs `sockgate-bench rpc`, then stops both, so every
# transport starts from the same state. Prints a table (msgs/s, round trip
# p50 and p99, errors) and writes bench/results/rpc-transports.json (the
# `sockgate-bench compare` format: rows, every report in full, the machine;
# the ratios are grpc/http).
#
# Builds sockgate and sockgate-bench in release mode (in $CARGO_TARGET_DIR,
# default target/). Environment (bench/lib.sh):
#   SOCKGATE_BENCH_NO_BUILD=1    no build: use the binaries in $CARGO_TARGET_DIR/release
#   SOCKGATE_BENCH_PROFILE=debug use $CARGO_TARGET_DIR/debug (a functional check,
#                                not a measurement; results go to $TMPDIR/sockgate-bench-debug)
#   SOCKGATE_BENCH_OUT=DIR       write the results there instead
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
  RPC_C=100; RPC_M=200;  RPC_W=8;  TIMEOUT=60
else
  RPC_C=200; RPC_M=2000; RPC_W=16; TIMEOUT=300
fi
TRANSPORTS=(http h2c grpc)

build_release
need node nodejs
need npm npm
npm_ci bench/app-backend

export JWT_SECRET="$SECRET"
STARTED=$SECONDS
NOTES=()

# run_transport T: backend over T, sockgate in front of it, the rpc
# scenario (report in $WORK/T/rpc.json), both stopped.
run_transport() {
  local transport=$1 rc=0
  mkdir -p "$WORK/$transport"
  echo
  echo "==> rpc over $transport"
  start_app_backend "backend-$transport" "$transport"
  # Each generator connection is its own user (`sub: user-<n>`) and one
  # socket's calls go out one at a time: the per-user limit cannot bind;
  # raised to the connection count so that it never does.
  start_sockgate "sockgate-$transport" SOCKGATE_EVENTS_URL="$EVENTS_URL" \
    SOCKGATE_EVENTS_SECRET="$EVENTS_SECRET" SOCKGATE_EVENTS_CONCURRENCY="$RPC_C"
  "$BENCH" rpc --url "$URL" --timeout "$TIMEOUT" --json "$WORK/$transport/rpc.json" \
    --connections "$RPC_C" --messages "$RPC_M" --window "$RPC_W" || rc=$?
  case $rc in
    0) ;;
    1) echo "    (rpc over $transport counted errors; see above)" ;;
    *) echo "    (rpc over $transport could not run: exit $rc)" ;;
  esac
  stop_launched "sockgate-$transport"
  stop_app_backend "backend-$transport"
  NOTES+=(--note "$transport: $EVENTS_URL; backend ${BACKEND_COUNTS:-gave no counts}")
}

for t in "${TRANSPORTS[@]}"; do run_transport "$t"; done

mkdir -p "$OUT"
RUNS=()
for t in "${TRANSPORTS[@]}"; do RUNS+=(--run "$t=$WORK/$t"); done
# compare's own table (every metric) is in the JSON; the short one follows.
"$BENCH" compare "${RUNS[@]}" \
  --mode "$MODE" --date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --note "rpc: $RPC_C connections x $RPC_M events, window $RPC_W; bench/app-backend $(node --version)" \
  --note "sockgate $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo '+dirty') ($PROFILE build); generator, sockgate and backend share the machine's $(nproc) cores" \
  "${NOTES[@]}" \
  --out "$OUT/rpc-transports.json" >"$WORK/compare.txt"

echo
node --input-type=module - "$OUT/rpc-transports.json" <<'JS'
// The short table: one line per transport, from the comparison's rows.
import { readFileSync } from "node:fs";
const c = JSON.parse(readFileSync(process.argv[2], "utf8"));
const row = (key) => c.rows.find((r) => r.key === key)?.values ?? [];
const cols = [
  ["msgs/s", "rpc.rate", 0],
  ["p50 ms", "rpc.rtt.p50", 2],
  ["p99 ms", "rpc.rtt.p99", 2],
  ["acked", "rpc.acked", 0],
  ["errors", "rpc.errors", 0],
];
const cell = (v, digits) => (v == null ? "n/a" : v.toFixed(digits));
console.log(["transport".padEnd(10), ...cols.map(([h]) => h.padStart(10))].join(" "));
c.servers.forEach((name, i) => {
  const cells = cols.map(([, key, digits]) => cell(row(key)[i], digits).padStart(10));
  console.log([name.padEnd(10), ...cells].join(" "));
});
for (const note of c.notes) console.log(`  ${note}`);
JS
echo "==> wrote $OUT/rpc-transports.json; the runs took $((SECONDS - STARTED)) s (builds and npm ci not counted)"
