# Shared by bench/compare.sh, bench/cluster.sh, bench/scale.sh and
# bench/rpc-transports.sh (sourced, with ROOT set to the repository): paths,
# the release build, the open-file limit, a private redis-server, the app's
# backend (bench/app-backend), servers that can be restarted on their port,
# and stopping what a script started.
#
# Environment:
#   CARGO_TARGET_DIR            where the binaries are built and found (default: target/)
#   SOCKGATE_BENCH_NO_BUILD=1   skip the release build: use the binaries already
#                               in $CARGO_TARGET_DIR/release
#   SOCKGATE_BENCH_PROFILE=P    use $CARGO_TARGET_DIR/P/ instead of release/ (e.g.
#                               debug, for a functional check; never a
#                               measurement); implies no build, and the
#                               results go to a temporary directory
#   SOCKGATE_BENCH_OUT=DIR      where results are written (default:
#                               bench/results; with another profile,
#                               $TMPDIR/sockgate-bench-P)

SECRET="sockgate-bench-secret-0123456789abcdef"
API_KEY="sockgate-bench-api-key-0123456789"
# What sockgate signs its calls to the app's backend with (32 bytes or more).
EVENTS_SECRET="sockgate-bench-events-secret-0123456789abcdef"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
PROFILE="${SOCKGATE_BENCH_PROFILE:-release}"
BENCH="$TARGET_DIR/$PROFILE/sockgate-bench"
SOCKGATE="$TARGET_DIR/$PROFILE/sockgate"
if [ "$PROFILE" = release ]; then
  OUT="${SOCKGATE_BENCH_OUT:-$ROOT/bench/results}"
else
  # Debug numbers are no measurement: never in bench/results by accident.
  OUT="${SOCKGATE_BENCH_OUT:-${TMPDIR:-/tmp}/sockgate-bench-$PROFILE}"
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sockgate-$(basename "$0" .sh).XXXXXX")
# Every background process a script starts, besides the servers of
# `launch` (whose pids are in $WORK/NAME.pid); stopped on exit.
PIDS=()

# gone PID: true once the process has exited (or is a zombie: a restarted
# server is no child of this shell, and nothing may reap it).
gone() {
  ! kill -0 "$1" 2>/dev/null || grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# wait_gone PID [SECONDS]: waits until PID is gone, up to SECONDS (60), and
# reaps it when it is this shell's child. False if it is still running.
wait_gone() {
  local i
  for ((i = 0; i < ${2:-60} * 10; i++)); do
    if gone "$1"; then
      wait "$1" 2>/dev/null || true
      return 0
    fi
    sleep 0.1
  done
  return 1
}

cleanup() {
  local f pids=("${PIDS[@]}")
  # The servers, as their pid files have them now: after a restart, the
  # process running is not the one this shell started.
  for f in "$WORK"/*.pid; do [ -e "$f" ] && pids+=("$(cat "$f")"); done
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait_gone "$pid" 20 || kill -KILL "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# raise_nofile: the open-file limit up to the hard limit, for this shell and
# what it starts (servers and generator hold one descriptor per connection).
# Sets NOFILE.
raise_nofile() {
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  NOFILE=$(ulimit -n)
  if [ "$NOFILE" = unlimited ]; then NOFILE=1048576; fi
}

# build_release: builds sockgate and sockgate-bench in release mode, unless
# SOCKGATE_BENCH_NO_BUILD=1 or SOCKGATE_BENCH_PROFILE names another profile:
# then the binaries must be there already.
build_release() {
  if [ "${SOCKGATE_BENCH_NO_BUILD:-}" = 1 ] || [ "$PROFILE" != release ]; then
    local bin
    for bin in "$SOCKGATE" "$BENCH"; do
      if [ ! -x "$bin" ]; then
        echo "error: no binary at $bin (no build asked: build it first, or unset SOCKGATE_BENCH_NO_BUILD)" >&2
        exit 1
      fi
    done
    echo "==> using the prebuilt $PROFILE binaries in $TARGET_DIR/$PROFILE (no build)"
    if [ "$PROFILE" != release ]; then
      echo "    note: $PROFILE binaries: a functional check, not a measurement"
    fi
    return
  fi
  echo "==> building sockgate and sockgate-bench (release, $TARGET_DIR)"
  cargo build --release -p sockgate -p sockgate-bench
}

# need PROGRAM PACKAGE: installs PACKAGE with apt-get when PROGRAM is missing
# and this runs as root, or stops with a message.
need() {
  command -v "$1" >/dev/null && return
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> installing $2"
    apt-get update -qq && apt-get install -y -qq "$2" >/dev/null
  else
    echo "error: this benchmark needs $1 (Debian package $2); install it and run again" >&2
    exit 1
  fi
}

# start_redis: a private redis-server on a free loopback port, nothing on
# disk. Sets REDIS_URL.
start_redis() {
  need redis-server redis-server
  local port
  port=$("$BENCH" free-port)
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
    >"$WORK/redis.log" 2>&1 &
  PIDS+=($!)
  "$BENCH" wait-ready --url "http://127.0.0.1:$port" --timeout 10
  REDIS_URL="redis://127.0.0.1:$port"
  echo "==> redis-server on 127.0.0.1:$port"
}

# npm_ci DIR: installs the Node package in DIR (bench/peer-node,
# bench/app-backend) exactly as its package-lock.json has it.
npm_ci() {
  echo "==> installing $1 (npm ci)"
  (cd "$ROOT/$1" && npm ci --no-audit --no-fund --loglevel=error)
}

# start_app_backend NAME MODE: the app's backend (bench/app-backend, after
# `npm_ci bench/app-backend`) on a free port, answering the `rpc` event
# over MODE (http, h2c or grpc), checking signatures with $EVENTS_SECRET.
# Started with `launch`, so it is stopped on exit (or by `stop_app_backend`).
# Sets EVENTS_URL, the SOCKGATE_EVENTS_URL that reaches it. Changes
# SERVER_PID (launch sets it): start it before the server it serves.
start_app_backend() {
  local name=$1 mode=$2 port
  port=$("$BENCH" free-port)
  launch "$name" env MODE="$mode" PORT="$port" EVENTS_SECRET="$EVENTS_SECRET" \
    "$(command -v node)" "$ROOT/bench/app-backend/server.mjs"
  if ! "$BENCH" wait-ready --url "http://127.0.0.1:$port" --timeout 30; then
    echo "error: $name did not start; its log:" >&2
    cat "$WORK/$name.log" >&2
    exit 1
  fi
  case "$mode" in
    http) EVENTS_URL="http://127.0.0.1:$port/sockgate/events" ;;
    h2c) EVENTS_URL="h2c://127.0.0.1:$port/sockgate/events" ;;
    grpc) EVENTS_URL="grpc://127.0.0.1:$port" ;;
  esac
  echo "==> $name ($mode) listening on 127.0.0.1:$port (pid $SERVER_PID)"
}

# stop_app_backend NAME: stops it and prints what it counted (calls
# answered and refused: a refusal is a signature that did not check out).
# Sets BACKEND_COUNTS to that line.
stop_app_backend() {
  stop_launched "$1"
  BACKEND_COUNTS=$(grep '^answered ' "$WORK/$1.log" | tail -1 || true)
  echo "    $1: ${BACKEND_COUNTS:-no counts (did it stop cleanly? see its log)}"
}

# launch NAME COMMAND...: starts COMMAND in the background, output to
# $WORK/NAME.log, pid in $WORK/NAME.pid and SERVER_PID. The start is written
# to $WORK/NAME.start first (the command quoted, with absolute paths) and
# sourced from there, so that `restart_script` starts it again exactly the
# same way: same command, same environment variables, same port.
launch() {
  local name=$1
  shift
  {
    echo "# Starts $name in the background (written by bench/lib.sh)."
    printf '%q ' "$@"
    printf '>>%q 2>&1 &\n' "$WORK/$name.log"
    printf 'echo $! >%q\n' "$WORK/$name.pid"
  } >"$WORK/$name.start"
  : >"$WORK/$name.log"
  . "$WORK/$name.start"
  SERVER_PID=$(cat "$WORK/$name.pid")
}

# restart_script NAME URL [--readyz]: writes $WORK/NAME.restart, a bash
# script that restarts the server `launch NAME` started, on the same port:
# SIGTERM to the pid in $WORK/NAME.pid, waits until that process has exited
# (up to 60 s), starts it again with $WORK/NAME.start, and waits until URL
# accepts connections and, with --readyz, answers /readyz with 200 (a
# cluster node that has joined). Exits non-zero when a step fails. It is
# what `sockgate-bench reconnect --restart-cmd "bash $WORK/NAME.restart"`
# runs; the new server is the restart script's child, not this shell's:
# `cleanup` and `stop_launched` find it through the pid file.
restart_script() {
  local name=$1 url=$2 readyz=${3:-}
  {
    echo '#!/usr/bin/env bash'
    echo "# Restarts $name on $url (written by bench/lib.sh)."
    echo 'set -euo pipefail'
    declare -f gone http_get
    printf 'name=%q url=%q pidfile=%q start=%q bench=%q readyz=%q\n' \
      "$name" "$url" "$WORK/$name.pid" "$WORK/$name.start" "$BENCH" "$readyz"
    cat <<'SCRIPT'
began=$(date +%s%N)
ms() { echo $((($(date +%s%N) - began) / 1000000)); }
old=$(cat "$pidfile")
kill -TERM "$old" 2>/dev/null || true
for _ in $(seq 600); do gone "$old" && break; sleep 0.1; done
if ! gone "$old"; then
  echo "restart $name: pid $old still running 60 s after SIGTERM" >&2
  exit 1
fi
stopped=$(ms)
. "$start"
"$bench" wait-ready --url "$url" --timeout 30
if [ -n "$readyz" ]; then
  for _ in $(seq 300); do
    http_get "$url" /readyz | head -1 | grep -q " 200 " && break
    sleep 0.1
  done
  http_get "$url" /readyz | head -1 | grep -q " 200 " ||
    { echo "restart $name: /readyz not 200 within 30 s" >&2; exit 1; }
fi
echo "    restart $name: pid $old exited after ${stopped} ms; pid $(cat "$pidfile") ready at $(ms) ms" >&2
SCRIPT
  } >"$WORK/$name.restart"
}

# stop_launched NAME: stops the server `launch NAME` started (or the one
# its restart script started since): SIGTERM, then waits until it is gone.
stop_launched() {
  local pid
  pid=$(cat "$WORK/$1.pid")
  kill -TERM "$pid" 2>/dev/null || true
  wait_gone "$pid" 60 || kill -KILL "$pid" 2>/dev/null || true
  rm -f "$WORK/$1.pid"
}

# start_sockgate NAME [VAR=VALUE...]: a sockgate on a free port with the
# benchmark's secret and API key, quiet logs and the abuse limits off (the
# generator is a handful of client addresses opening thousands of
# connections, which the per-address and per-socket budgets and the
# per-address connection cap exist to stop). The total connection cap keeps
# its default, the open-file limit minus 128: the scripts hold at most the
# limit minus 200.
# Started with `launch`, so `restart_script NAME "$URL"` can restart it.
# Sets URL and SERVER_PID.
start_sockgate() {
  local name=$1 port
  shift
  port=$("$BENCH" free-port)
  URL="http://127.0.0.1:$port"
  launch "$name" env JWT_SECRET="$SECRET" SOCKGATE_API_KEY="$API_KEY" SOCKGATE_LISTEN="127.0.0.1:$port" \
    SOCKGATE_DATA_DIR="$WORK/data-$name" SOCKGATE_LOG=warn SOCKGATE_SHUTDOWN_TIMEOUT=2 \
    SOCKGATE_HANDSHAKE_RATE=0 SOCKGATE_EVENT_RATE=0 SOCKGATE_MAX_TCP_CONNECTIONS_PER_ADDRESS=0 "$@" \
    "$SOCKGATE" serve
  wait_ready "$name"
}

# wait_ready NAME: waits for $URL to accept connections, or shows NAME's log.
wait_ready() {
  if ! "$BENCH" wait-ready --url "$URL" --timeout 30; then
    echo "error: $1 did not start; its log:" >&2
    cat "$WORK/$1.log" >&2
    exit 1
  fi
  echo "==> $1 listening on $URL (pid $SERVER_PID)"
}

# http_get URL PATH: the raw HTTP/1.0 answer (status line, headers, body),
# with bash's /dev/tcp so no curl is needed. Sends the benchmark's API key
# (/metrics needs it).
http_get() {
  local hostport=${1#http://}
  (exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}" &&
    printf 'GET %s HTTP/1.0\r\nAuthorization: Bearer %s\r\n\r\n' "$2" "${API_KEY:-}" >&3 && cat <&3) 2>/dev/null || true
}

# wait_cluster URL...: waits (up to 10 s each) until every node answers
# /readyz with 200, i.e. has joined the cluster.
wait_cluster() {
  local url
  for url in "$@"; do
    for _ in $(seq 50); do
      http_get "$url" /readyz | head -1 | grep -q " 200 " && break
      sleep 0.2
    done
  done
}
