# Shared by bench/compare.sh, bench/cluster.sh and bench/scale.sh (sourced,
# with ROOT set to the repository): paths, the release build, the open-file
# limit, a private redis-server, and stopping what a script started.

SECRET="sockgate-bench-secret-0123456789abcdef"
API_KEY="sockgate-bench-api-key-0123456789"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BENCH="$TARGET_DIR/release/sockgate-bench"
SOCKGATE="$TARGET_DIR/release/sockgate"
OUT="$ROOT/bench/results"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sockgate-$(basename "$0" .sh).XXXXXX")
# Every background process a script starts; stopped on exit.
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
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

build_release() {
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

# start_sockgate NAME [VAR=VALUE...]: a sockgate on a free port with the
# benchmark's secret and API key, quiet logs and the abuse limits off (the
# generator is a handful of client addresses opening thousands of
# connections, which the per-address and per-socket budgets exist to stop).
# Sets URL and SERVER_PID.
start_sockgate() {
  local name=$1 port
  shift
  port=$("$BENCH" free-port)
  URL="http://127.0.0.1:$port"
  env JWT_SECRET="$SECRET" SOCKGATE_API_KEY="$API_KEY" SOCKGATE_LISTEN="127.0.0.1:$port" \
    SOCKGATE_DATA_DIR="$WORK/data-$name" SOCKGATE_LOG=warn SOCKGATE_SHUTDOWN_TIMEOUT=2 \
    SOCKGATE_HANDSHAKE_RATE=0 SOCKGATE_EVENT_RATE=0 "$@" \
    "$SOCKGATE" serve >"$WORK/$name.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
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
# with bash's /dev/tcp so no curl is needed.
http_get() {
  local hostport=${1#http://}
  (exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}" &&
    printf 'GET %s HTTP/1.0\r\n\r\n' "$2" >&3 && cat <&3) 2>/dev/null || true
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
