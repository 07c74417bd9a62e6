#!/usr/bin/env bash
# Compares sockgate with the usual Node server it replaces (bench/peer-node:
# socket.io 4 + jsonwebtoken in io.use), with the same load generator
# (sockgate-bench) and the same scenarios, one server after the other.
#
#   bench/compare.sh [--quick|--full]
#
#   --quick (default)  5k connections, short runs: a few minutes at most
#   --full             larger counts; hold goes up to 100k connections, or
#                      what the open-file hard limit (ulimit -Hn) allows
#
# Builds sockgate and sockgate-bench in release mode (in $CARGO_TARGET_DIR,
# default target/; SOCKGATE_BENCH_NO_BUILD=1 uses the binaries already in
# $CARGO_TARGET_DIR/release, SOCKGATE_BENCH_PROFILE=debug the debug ones for
# a functional check: see bench/lib.sh), installs the peer and the app's
# backend with `npm ci`, starts each server on a free loopback port with a
# fixed JWT_SECRET and API key, runs the scenarios, stops it, and prints a
# side-by-side table with ratios. Writes bench/results/latest.json (with
# machine info) and bench/results/latest.svg.
# rpc is an app event: the peer answers it in process, sockgate hands it to
# the app's backend (bench/app-backend, Express over HTTP/1.1, started
# beside it). refresh and revoke are sockgate features: n/a for the peer.
# The last scenario, reconnect, restarts each server on its port under
# load (SIGTERM, wait for the exit, start again with the same command and
# environment) and measures how its clients come back.
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
  CONNECT_N=5000;  CONCURRENCY=200
  PACED_N=5000;    PACED_RATE=1000
  HOLD_N=5000;     HOLD_S=10
  REJECT_N=3000
  ECHO_C=100;      ECHO_M=200;   ECHO_W=8
  RPC_C=100;       RPC_M=200;    RPC_W=8
  FANOUT_N=1000;   FANOUT_K=30
  REFRESH_C=50;    REFRESH_R=20
  REVOKE_N=1000
  RECONNECT_N=2000
  TIMEOUT=60
else
  CONNECT_N=20000; CONCURRENCY=500
  PACED_N=19000;   PACED_RATE=1000
  HOLD_N=100000;   HOLD_S=30
  REJECT_N=15000
  ECHO_C=200;      ECHO_M=2000;  ECHO_W=16
  RPC_C=200;       RPC_M=2000;   RPC_W=16
  FANOUT_N=10000;  FANOUT_K=100
  REFRESH_C=200;   REFRESH_R=100
  REVOKE_N=10000
  RECONNECT_N=10000
  TIMEOUT=300
fi
# Seconds after the restart begins that reconnect waits for its clients.
RECONNECT_WINDOW=30
# Each process needs a descriptor per connection plus a few of its own.
CAP=$((NOFILE - 200))
for v in CONNECT_N PACED_N HOLD_N FANOUT_N REVOKE_N RECONNECT_N; do
  if [ "${!v}" -gt "$CAP" ]; then
    echo "note: $v lowered from ${!v} to $CAP by the open-file limit (ulimit -Hn = $NOFILE)"
    printf -v "$v" '%s' "$CAP"
  fi
done

build_release
need node nodejs
need npm npm
npm_ci bench/peer-node
npm_ci bench/app-backend

export JWT_SECRET="$SECRET"
STARTED=$SECONDS

# start_server NAME: starts it on a free port; sets SERVER_PID and URL, and
# writes $WORK/NAME.restart, which restarts it on that port (see lib.sh).
start_server() {
  local name=$1 port
  case "$name" in
    node-peer)
      port=$("$BENCH" free-port)
      URL="http://127.0.0.1:$port"
      launch "$name" env PORT="$port" API_KEY="$API_KEY" JWT_SECRET="$SECRET" \
        "$(command -v node)" "$ROOT/bench/peer-node/server.mjs"
      wait_ready "$name"
      ;;
    sockgate)
      # The app's backend first, for the rpc scenario; it stays up while
      # sockgate restarts. Each generator connection is its own user
      # (`sub: user-<n>`) and one socket's calls go out one at a time, so
      # the per-user limit (16 by default) cannot bind here; it is raised to
      # the connection count anyway, so that it never does, even if every
      # connection were the same user.
      start_app_backend app-backend http
      start_sockgate "$name" SOCKGATE_EVENTS_URL="$EVENTS_URL" \
        SOCKGATE_EVENTS_SECRET="$EVENTS_SECRET" SOCKGATE_EVENTS_CONCURRENCY="$RPC_C"
      ;;
  esac
  restart_script "$name" "$URL"
}

# stop_server: stops the server running now (after reconnect, the one the
# restart started), and sockgate's backend after it.
stop_server() {
  stop_launched "$SERVER_NAME"
  SERVER_PID=""
  if [ "$SERVER_NAME" = sockgate ]; then stop_app_backend app-backend; fi
}

# scenario NAME ARGS...: runs one scenario against $URL, report in
# $DIR/NAME.json (or $DIR/$REPORT.json). A scenario that counted errors
# (exit 1) is recorded and the run goes on.
scenario() {
  local name=$1
  shift
  local rc=0
  "$BENCH" "$name" --url "$URL" --timeout "$TIMEOUT" --json "$DIR/${REPORT:-$name}.json" "$@" || rc=$?
  case $rc in
    0) ;;
    1) echo "    ($name counted errors; see above)" ;;
    3) echo "    !!! $name: BAD TOKENS WERE ACCEPTED by $SERVER_NAME" ;;
    *) echo "    ($name could not run: exit $rc)" ;;
  esac
}

run_all() {
  SERVER_NAME=$1
  DIR="$WORK/$SERVER_NAME"
  mkdir -p "$DIR"
  start_server "$SERVER_NAME"
  # hold first, so its memory baseline is the freshly started server.
  scenario hold --connections "$HOLD_N" --concurrency "$CONCURRENCY" --hold "$HOLD_S" --server-pid "$SERVER_PID"
  scenario connect --connections "$CONNECT_N" --concurrency "$CONCURRENCY"
  # A steady 1,000 new connections per second: latency, not throughput.
  # After a pause, so the server is not still closing the previous 5,000.
  sleep 3
  REPORT=connect-paced scenario connect --connections "$PACED_N" --rate "$PACED_RATE" --concurrency 1000
  scenario reject --attempts "$REJECT_N" --concurrency "$CONCURRENCY"
  scenario echo --connections "$ECHO_C" --messages "$ECHO_M" --window "$ECHO_W"
  scenario rpc --connections "$RPC_C" --messages "$RPC_M" --window "$RPC_W"
  scenario fanout --members "$FANOUT_N" --messages "$FANOUT_K" --concurrency "$CONCURRENCY" --api-key "$API_KEY"
  if [ "$SERVER_NAME" = sockgate ]; then
    scenario refresh --connections "$REFRESH_C" --refreshes "$REFRESH_R"
    scenario revoke --connections "$REVOKE_N" --concurrency "$CONCURRENCY" --api-key "$API_KEY"
  fi
  # Last, as it replaces the server process: a restart under load, the same
  # way for both servers (SIGTERM, wait for the exit, start again on the
  # same port). After a pause, so the previous sockets are closed.
  sleep 3
  scenario reconnect --connections "$RECONNECT_N" --concurrency "$CONCURRENCY" \
    --window "$RECONNECT_WINDOW" --restart-cmd "bash $(printf %q "$WORK/$SERVER_NAME.restart")"
  stop_server
}

run_all node-peer
run_all sockgate

mkdir -p "$OUT"
echo
"$BENCH" compare \
  --run "node-peer=$WORK/node-peer" --run "sockgate=$WORK/sockgate" \
  --mode "$MODE" --date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --note "node $(node --version), $(rustc --version | cut -d' ' -f1-2), sockgate $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo '+dirty')" \
  --note "open-file limit $NOFILE; generator, server and peer share the machine's $(nproc) cores" \
  --out "$OUT/latest.json"
"$BENCH" chart --input "$OUT/latest.json" --out "$OUT/latest.svg"
echo "==> servers and scenarios took $((SECONDS - STARTED)) s (builds and npm ci not counted)"
