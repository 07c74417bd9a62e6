#!/usr/bin/env bash
# Sizing figures for docs/sizing.md: what one connection, one handshake, one
# delivered message and one recovery cost a sockgate process (and, in a
# cluster, the Redis it shares), measured one step at a time on this machine.
#
#   bench/sizing.sh [--small] [STEP...]
#
#   STEP      memory, handshake, delivery, recovery (default: all four, in
#             that order); the idle cost of a cluster node is measured with
#             the cluster memory step. `summary` alone measures nothing and
#             writes OUT/summary.md again from the JSON files there
#   --small   every count at a few hundred (a functional check of the
#             script, not a measurement); results go to a temporary
#             directory unless OUT is set
#
# Steps:
#   memory     `sockgate-bench hold --server-pid` against one process:
#              HOLD_N (10,000) and HOLD_MAX (19,000) idle connections, and
#              HOLD_N offering permessage-deflate (`--compress`, as browsers
#              do); then HOLD_N on a node in cluster mode (SOCKGATE_REDIS_URL,
#              a private redis-server): the server's RSS per connection,
#              Redis's used_memory per connection, the kernel's slab growth,
#              the server CPU of the connect phase and of the close phase
#              per connection, and the idle cost (server and Redis CPU and
#              Redis commands a second) while the connections are held.
#              20,000 connections do not fit: one process may hold 20,000
#              open files here (ulimit -Hn) and the server keeps a few of
#              its own (listener, epoll, data files, Redis).
#   handshake  `sockgate-bench connect --connections CONNECT_N` (10,000),
#              single node, then a node on Redis: server CPU per handshake
#              (open, verify, CONNECT, then close), Redis CPU and commands
#              per handshake, by command.
#   delivery   `sockgate-bench fanout` (FANOUT_MEMBERS members of one user
#              room, `POST /api/publish` one message at a time, each with
#              FANOUT_PAYLOAD bytes of chat-like text), run twice on the
#              same servers: FANOUT_BASE then FANOUT_MESSAGES messages. A
#              sampler reads the servers' CPU and sockgate_sessions every
#              0.1 s; the stretch of each run while every member is
#              connected holds the deliveries and none of the handshakes or
#              closes, and the difference of the two stretches' CPU over the
#              difference of the runs' deliveries is the CPU per delivered
#              message. Single node plain, with --compress, and with
#              recovery off; a node on Redis with recovery on (the default)
#              and off; 2 nodes on Redis (members alternate, publishes
#              through the first). Then the publish steps: PUBLISH_MESSAGES
#              messages to PUBLISH_MEMBERS members, one at a time, after an
#              idle window: the cost of a published message besides its
#              deliveries (the API call, the history), and in a cluster
#              Redis CPU and commands per published message (enough
#              messages for Redis's CPU to be read), single node, on Redis
#              with recovery on and off, and 2 nodes.
#   recovery   bench/sizing-recovery.mjs: RECOVERY_N (2,000) official
#              socket.io-client sockets (WebSocket) in one room; a few
#              messages published; every transport dropped at once
#              (`socket.io.engine.close()`), messages published during the
#              drop; the clients reconnect by themselves and recover. Server
#              CPU per recovery (the park, the new handshake, the replay),
#              single node and on Redis (with Redis commands per recovery),
#              and the same with recovery off (a fresh session that joins
#              its room again) for comparison.
#
# CPU is a process's utime + stime from /proc/PID/stat (all threads),
# Redis's used_cpu_user + used_cpu_sys and per-command calls from `INFO all`
# (commandstats; the snapshots' own INFO calls are left out), read before
# and after each step. The generator shares the machine's cores: the figures
# are CPU time, not wall time.
#
# Environment:
#   SOCKGATE, BENCH   the binaries (default /work/target-rel/release/sockgate
#                     and /work/target-rel/release/sockgate-bench)
#   OUT               where results go (default
#                     bench/results/sizing-2026-12-07; with --small, a
#                     temporary directory)
#   REPEAT            runs of the memory and handshake steps (default 1)
#   HOLD_N, HOLD_MAX, HOLD_S   connections held, the most held, seconds held
#                     (10000, 19000, 20)
#   MEMORY_MODES      the memory step's holds (default "single max compress
#                     cluster": HOLD_N, HOLD_MAX, HOLD_N with --compress,
#                     HOLD_N on Redis)
#   IDLE_S            seconds of the idle window inside a hold (8)
#   CONNECT_N, CONCURRENCY     handshakes measured, in flight (10000, 200)
#   FANOUT_MEMBERS, FANOUT_BASE, FANOUT_MESSAGES, FANOUT_PAYLOAD
#                     (5000, 10, 210, 512)
#   PUBLISH_MEMBERS, PUBLISH_MESSAGES   (10, 5000)
#   RECOVERY_N, RECOVERY_BEFORE, RECOVERY_DURING   clients, messages before
#                     the drop, messages published during it (2000, 3, 5)
#   NOTE              a free line added to the summary
#
# Each measurement writes OUT/NAME.json (the command, the snapshots, the
# figures) and, for the generator's own report, OUT/NAME.bench.json;
# OUT/summary.md lists every figure with its command.
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^set -e/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;; esac

SMALL=
STEPS=()
for arg in "$@"; do
  case "$arg" in
    --small) SMALL=1 ;;
    memory | handshake | delivery | recovery | summary) STEPS+=("$arg") ;;
    *) echo "usage: $0 [--small] [memory|handshake|delivery|recovery|summary]..." >&2; exit 2 ;;
  esac
done
[ ${#STEPS[@]} -gt 0 ] || STEPS=(memory handshake delivery recovery)

SOCKGATE_BIN=$(realpath "${SOCKGATE:-/work/target-rel/release/sockgate}")
BENCH_BIN=$(realpath "${BENCH:-/work/target-rel/release/sockgate-bench}")
[ -z "${OUT:-}" ] || OUT=$(realpath -m "$OUT")
GIVEN_OUT=${OUT:-}
cd "$(dirname "$0")/.."
ROOT=$(pwd)

if [ -n "$SMALL" ]; then
  : "${HOLD_N:=500}" "${HOLD_MAX:=800}" "${HOLD_S:=6}" "${IDLE_S:=2}"
  : "${CONNECT_N:=500}" "${FANOUT_MEMBERS:=300}" "${FANOUT_BASE:=3}" "${FANOUT_MESSAGES:=13}"
  : "${RECOVERY_N:=200}" "${PUBLISH_MESSAGES:=300}"
fi
REPEAT=${REPEAT:-1}
MEMORY_MODES=${MEMORY_MODES:-single max compress cluster}
HOLD_N=${HOLD_N:-10000}
HOLD_MAX=${HOLD_MAX:-19000}
HOLD_S=${HOLD_S:-20}
IDLE_S=${IDLE_S:-8}
CONNECT_N=${CONNECT_N:-10000}
CONCURRENCY=${CONCURRENCY:-200}
FANOUT_MEMBERS=${FANOUT_MEMBERS:-5000}
FANOUT_BASE=${FANOUT_BASE:-10}
FANOUT_MESSAGES=${FANOUT_MESSAGES:-210}
FANOUT_PAYLOAD=${FANOUT_PAYLOAD:-512}
PUBLISH_MEMBERS=${PUBLISH_MEMBERS:-10}
PUBLISH_MESSAGES=${PUBLISH_MESSAGES:-5000}
RECOVERY_N=${RECOVERY_N:-2000}
RECOVERY_BEFORE=${RECOVERY_BEFORE:-3}
RECOVERY_DURING=${RECOVERY_DURING:-5}

# lib.sh: $WORK (removed on exit), `launch`/`stop_launched`, `start_sockgate`
# (the benchmark's secret and API key, SOCKGATE_LOG=warn, the abuse limits
# off, its own data directory), `http_get`, `wait_cluster`, `raise_nofile`,
# `need`, and the cleanup trap. Its binaries and OUT are replaced below.
. bench/lib.sh
SOCKGATE=$SOCKGATE_BIN
BENCH=$BENCH_BIN
if [ -n "$GIVEN_OUT" ]; then
  DIR=$GIVEN_OUT
elif [ -n "$SMALL" ]; then
  DIR=${TMPDIR:-/tmp}/sockgate-sizing-small
else
  DIR=$ROOT/bench/results/sizing-2026-12-07
fi
raise_nofile
need redis-server redis-server
need redis-cli redis-tools
need node nodejs
need jq jq
for bin in "$SOCKGATE" "$BENCH"; do
  [ -x "$bin" ] || { echo "error: no binary at $bin" >&2; exit 1; }
done
[ -d "$ROOT/tests/e2e/node_modules/socket.io-client" ] ||
  { echo "error: tests/e2e/node_modules is missing (cd tests/e2e && npm ci)" >&2; exit 1; }
for v in HOLD_N HOLD_MAX CONNECT_N FANOUT_MEMBERS RECOVERY_N; do
  if [ "${!v}" -gt $((NOFILE - 200)) ]; then
    echo "error: $v=${!v} does not fit the open-file limit ($NOFILE): at most $((NOFILE - 200))" >&2
    exit 1
  fi
done
CLK_TCK=$(getconf CLK_TCK)
mkdir -p "$DIR"
export JWT_SECRET="$SECRET" SOCKGATE_API_KEY="$API_KEY"
RPORT=

# --- snapshots ---------------------------------------------------------------

# ticks PID: utime + stime of PID, in clock ticks.
ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
# rss_kb PID: VmRSS in KiB.
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# redis_json: Redis's CPU (ms), commands, used_memory and calls per command,
# as JSON; null without a Redis.
redis_json() {
  if [ -z "$RPORT" ]; then echo null; return; fi
  redis-cli -h 127.0.0.1 -p "$RPORT" INFO all | tr -d '\r' | awk -F: '
    /^used_cpu_user:/ { u = $2 } /^used_cpu_sys:/ { s = $2 }
    /^total_commands_processed:/ { c = $2 } /^used_memory:/ { m = $2 }
    /^cmdstat_/ { split($2, a, ","); sub(/^calls=/, "", a[1]); name = substr($1, 9)
                  calls = calls (calls == "" ? "" : ",") "\"" name "\":" a[1] }
    END { printf "{\"cpu_ms\":%.3f,\"commands\":%d,\"used_memory\":%d,\"calls\":{%s}}\n", (u + s) * 1000, c, m, calls }'
}

# snap FILE PID...: the time, the PIDs' summed CPU (ms) and RSS (KiB),
# Redis's figures, the kernel's slab and TCP buffer pages, as JSON in FILE.
snap() {
  local file=$1 p t=0 r=0
  shift
  for p in "$@"; do
    t=$((t + $(ticks "$p")))
    r=$((r + $(rss_kb "$p")))
  done
  jq -n --argjson at "$(date +%s%3N)" --argjson ticks "$t" --argjson tck "$CLK_TCK" --argjson rss "$r" \
    --argjson redis "$(redis_json)" \
    --argjson slab "$(awk '/^Slab:/ { print $2 }' /proc/meminfo)" \
    --argjson tcp "$(awk '/^TCP:/ { for (i = 1; i <= NF; i++) if ($i == "mem") print $(i + 1) }' /proc/net/sockstat)" \
    --argjson load "$(awk '{ print $1 }' /proc/loadavg)" \
    '{at_ms: $at, cpu_ms: ($ticks * 1000 / $tck), rss_kb: $rss, redis: $redis, slab_kb: $slab, tcp_mem_pages: $tcp, load1: $load}' >"$file"
}

# delta A B N: what happened between snapshots A and B (files), per N
# operations: seconds, server CPU, Redis CPU, commands and calls by command
# (INFO and CONFIG, the snapshots' own, left out).
delta() {
  jq -n --slurpfile a "$1" --slurpfile b "$2" --argjson n "$3" '
    ($a[0]) as $a | ($b[0]) as $b
    | def r(d): (. * pow(10; d) | round) / pow(10; d);
    {
      seconds: (($b.at_ms - $a.at_ms) / 1000 | r(2)),
      ops: $n,
      server_cpu_ms: ($b.cpu_ms - $a.cpu_ms | r(1)),
      server_cpu_us_per_op: (if $n > 0 then (($b.cpu_ms - $a.cpu_ms) * 1000 / $n | r(2)) else null end),
      server_rss_kb: {before: $a.rss_kb, after: $b.rss_kb},
      slab_kb: ($b.slab_kb - $a.slab_kb),
      tcp_mem_pages: ($b.tcp_mem_pages - $a.tcp_mem_pages),
      load1: [$a.load1, $b.load1],
      redis: (if $a.redis == null then null else
        (($b.redis.calls | to_entries
          | map(select(.key != "info" and .key != "config"))
          | map({key, value: (.value - ($a.redis.calls[.key] // 0))})
          | map(select(.value > 0)) | sort_by(-.value) | from_entries) as $calls
        | ($calls | add // 0) as $cmds
        | {
            cpu_ms: ($b.redis.cpu_ms - $a.redis.cpu_ms | r(1)),
            cpu_us_per_op: (if $n > 0 then (($b.redis.cpu_ms - $a.redis.cpu_ms) * 1000 / $n | r(2)) else null end),
            commands: $cmds,
            processed: ($b.redis.commands - $a.redis.commands),
            commands_per_op: (if $n > 0 then ($cmds / $n | r(3)) else null end),
            calls: $calls,
            calls_per_op: (if $n > 0 then ($calls | map_values(. / $n | r(3))) else null end),
            used_memory_bytes: ($b.redis.used_memory - $a.redis.used_memory)
          }) end)
    }'
}

# net D IDLE: D (a delta, with ops) less what the idle window IDLE (a
# delta over nothing) would have cost over as many seconds: the background
# of heartbeats and figures taken out.
net() {
  jq -n --argjson d "$1" --argjson i "$2" '
    def r(x; k): (x * pow(10; k) | round) / pow(10; k);
    ($d.seconds / $i.seconds) as $k
    | {server_cpu_us_per_op: r(($d.server_cpu_ms - $k * $i.server_cpu_ms) * 1000 / $d.ops; 2),
       redis: (if $d.redis == null then null else
         {cpu_us_per_op: r(($d.redis.cpu_ms - $k * $i.redis.cpu_ms) * 1000 / $d.ops; 2),
          commands_per_op: r(($d.redis.commands - $k * $i.redis.commands) / $d.ops; 3),
          calls_per_op: ($d.redis.calls | with_entries(.value = r((.value - $k * ($i.redis.calls[.key] // 0)) / $d.ops; 3))
                         | with_entries(select(.value > 0.0005)))} end)}'
}

# --- servers -----------------------------------------------------------------

# redis_up: a private redis-server on a free port (launch NAME redis, stopped
# by redis_down). Sets RPORT and REDIS_URL.
redis_up() {
  local i
  RPORT=$("$BENCH" free-port)
  launch redis redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no
  for ((i = 0; i < 100; i++)); do
    [ "$(redis-cli -h 127.0.0.1 -p "$RPORT" ping 2>/dev/null)" = PONG ] && break
    sleep 0.1
  done
  REDIS_URL="redis://127.0.0.1:$RPORT"
}
redis_down() {
  stop_launched redis
  RPORT=
}

# servers_up NAME COUNT MODE [VAR=VALUE...]: COUNT sockgate processes
# (NAME-1...), on Redis when MODE is cluster. Sets URLS, SPIDS, SERVER_ENV
# (the settings, for the summary).
servers_up() {
  local name=$1 count=$2 mode=$3 i
  shift 3
  local extra=("$@")
  URLS=() SPIDS=() SNAMES=()
  if [ "$mode" = cluster ]; then
    redis_up
    extra=(SOCKGATE_REDIS_URL="$REDIS_URL" "${extra[@]}")
  fi
  for ((i = 1; i <= count; i++)); do
    start_sockgate "$name-$i" ${extra[@]+"${extra[@]}"} >/dev/null
    URLS+=("$URL") SPIDS+=("$SERVER_PID") SNAMES+=("$name-$i")
  done
  [ "$mode" = cluster ] && wait_cluster "${URLS[@]}"
  SERVER_ENV="JWT_SECRET=… SOCKGATE_API_KEY=… SOCKGATE_LISTEN=127.0.0.1:PORT SOCKGATE_DATA_DIR=… SOCKGATE_LOG=warn SOCKGATE_SHUTDOWN_TIMEOUT=2 SOCKGATE_HANDSHAKE_RATE=0 SOCKGATE_EVENT_RATE=0 SOCKGATE_MAX_TCP_CONNECTIONS_PER_ADDRESS=0"
  [ "$mode" = cluster ] && SERVER_ENV+=" SOCKGATE_REDIS_URL=redis://127.0.0.1:PORT (private redis-server $(redis-server --version | awk '{print $3}'))"
  [ $# -gt 0 ] && SERVER_ENV+=" $*"
  sleep 1
  return 0
}

# servers_down: stops them (and Redis), shows any error lines they logged.
servers_down() {
  local n
  for n in "${SNAMES[@]}"; do
    if grep -q -i -E '(^| )(ERROR|panic)' "$WORK/$n.log"; then
      echo "    $n logged errors:"
      grep -i -E '(^| )(ERROR|panic)' "$WORK/$n.log" | head -5 | sed 's/^/      /'
    fi
    stop_launched "$n"
    rm -rf "$WORK/data-$n"
  done
  [ -z "$RPORT" ] || redis_down
}

# sessions URL: the node's sockgate_sessions gauge.
sessions() { http_get "$1" /metrics | awk '/^sockgate_sessions / { print int($2); exit }'; }

# cmdline ARGS...: the command, quoted, with the binaries' paths shortened.
cmdline() { printf '%q ' "$@" | sed -e "s#$BENCH#sockgate-bench#g" -e 's/ $//'; }

# write_step NAME SECTION TITLE COMMAND FIGURES_JSON DATA_JSON
write_step() {
  jq -n --arg name "$1" --arg section "$2" --arg title "$3" --arg command "$4" \
    --arg server_env "${SERVER_ENV:-}" --argjson figures "$5" --argjson data "$6" \
    --arg sockgate "$SOCKGATE" --arg when "$(date -u +%FT%TZ)" \
    '{name: $name, section: $section, title: $title, command: $command, server_env: $server_env,
      sockgate: $sockgate, when: $when, figures: $figures, data: $data}' >"$DIR/$1.json"
  jq -r '.figures[] | "    \(.what): \(.value) \(.unit)"' "$DIR/$1.json"
}

# settle_redis: waits (up to 60 s) until Redis takes fewer than 100
# commands a second, i.e. the nodes have written what the last step gave
# them (a node writes its sessions to Redis behind the handshakes). Prints
# the seconds waited. Returns at once without a Redis.
settle_redis() {
  local i a b start=$SECONDS
  if [ -n "$RPORT" ]; then
    for ((i = 0; i < 60; i++)); do
      a=$(redis-cli -h 127.0.0.1 -p "$RPORT" INFO stats | tr -d '\r' | awk -F: '/^total_commands_processed:/ { print $2 }')
      sleep 1
      b=$(redis-cli -h 127.0.0.1 -p "$RPORT" INFO stats | tr -d '\r' | awk -F: '/^total_commands_processed:/ { print $2 }')
      [ $((b - a)) -lt 100 ] && break
    done
  fi
  echo $((SECONDS - start))
}

# --- memory --------------------------------------------------------------------

# hold_step NAME N MODE [--compress]: N idle connections held; snapshots
# before, once all are in, after IDLE_S seconds, and after the close.
hold_step() {
  local name=$1 n=$2 mode=$3 flag=${4:-} hp s last=0 still=0 i
  echo "==> $name: hold $n ($mode${flag:+, $flag})"
  servers_up "$name" 1 "$mode"
  local cmd=("$BENCH" hold --url "${URLS[0]}" --connections "$n" --hold "$HOLD_S" --server-pid "${SPIDS[0]}"
    --concurrency "$CONCURRENCY" --sources 16 --timeout $((HOLD_S + 180)) --json "$DIR/$name.bench.json" ${flag:+"$flag"})
  snap "$WORK/$name.s0" "${SPIDS[0]}"
  "${cmd[@]}" >"$DIR/$name.log" 2>&1 &
  hp=$!
  # All in: the gauge at N, or steady for 5 s once the generator is holding.
  for ((i = 0; i < 600; i++)); do
    sleep 0.5
    s=$(sessions "${URLS[0]}")
    s=${s:-0}
    [ "$s" -ge "$n" ] && break
    gone "$hp" && break
    if [ "$s" -gt 0 ] && [ "$s" = "$last" ]; then still=$((still + 1)); else still=0; fi
    [ $still -ge 10 ] && break
    last=$s
  done
  local held=$s lag_open=0 lag_close=0
  # On Redis, the connect phase ends once the node has written its sessions.
  [ "$mode" = cluster ] && lag_open=$(settle_redis)
  snap "$WORK/$name.s1" "${SPIDS[0]}"
  sleep "$IDLE_S"
  snap "$WORK/$name.s2" "${SPIDS[0]}"
  wait "$hp" || echo "    (hold exited with $?: see $DIR/$name.log)"
  sleep 3
  [ "$mode" = cluster ] && lag_close=$(settle_redis)
  snap "$WORK/$name.s3" "${SPIDS[0]}"
  servers_down
  local connected
  connected=$(jq '.details.connected // 0' "$DIR/$name.bench.json" 2>/dev/null || echo 0)
  [ "$connected" -gt 0 ] || connected=$held
  local open idle close
  open=$(delta "$WORK/$name.s0" "$WORK/$name.s1" "$connected")
  idle=$(delta "$WORK/$name.s1" "$WORK/$name.s2" "$connected")
  close=$(delta "$WORK/$name.s2" "$WORK/$name.s3" "$connected")
  local data
  data=$(jq -n --argjson open "$open" --argjson idle "$idle" --argjson close "$close" \
    --argjson open_net "$(net "$open" "$idle")" --argjson close_net "$(net "$close" "$idle")" \
    --argjson held "$held" --argjson n "$n" --argjson connected "$connected" \
    --argjson lag_open "$lag_open" --argjson lag_close "$lag_close" \
    --slurpfile report "$DIR/$name.bench.json" \
    '{asked: $n, connected: $connected, sessions_gauge_when_snapped: $held, open: $open, idle: $idle, close: $close,
      open_net: $open_net, close_net: $close_net,
      redis_settle_s: {after_connect: $lag_open, after_close: $lag_close},
      bench: ($report[0] | (.details // .) | {connected, dropped, server_rss_before, server_rss_held, server_rss_peak,
        server_bytes_per_connection, client_bytes_per_connection, connections_per_s, errors})}')
  local figures
  figures=$(jq -n --argjson d "$data" --arg mode "$mode" --arg flag "$flag" '
    def r(x; k): (x * pow(10; k) | round) / pow(10; k);
    [ {what: "connections held", value: $d.connected, unit: ""},
      {what: "server RSS per connection (sockgate-bench hold: RSS at the end of the hold − before, / connected)",
       value: r($d.bench.server_bytes_per_connection / 1024; 2), unit: "KiB", key: true},
      {what: "server RSS before → held", value: "\(r($d.bench.server_rss_before / 1048576; 1)) → \(r($d.bench.server_rss_held / 1048576; 1))", unit: "MiB"},
      {what: "kernel slab growth per connection (both ends are on this machine: client + server socket)",
       value: r($d.open.slab_kb / $d.connected; 2), unit: "KiB"},
      {what: "server CPU per connection, connect phase (open, verify, CONNECT)", value: $d.open.server_cpu_us_per_op, unit: "µs"},
      {what: "server CPU per connection, close phase", value: $d.close.server_cpu_us_per_op, unit: "µs"},
      {what: "server CPU while idle, \($d.connected) connections held (pings every 25 s)",
       value: r($d.idle.server_cpu_ms / $d.idle.seconds; 2), unit: "ms/s"} ]
    + (if $d.open.redis == null then [] else [
      {what: "seconds after the gauge reached \($d.connected) until Redis was quiet again (the node writes its sessions behind the handshakes); after the close, besides 3 s",
       value: "\($d.redis_settle_s.after_connect); \($d.redis_settle_s.after_close)", unit: "s"},
      {what: "Redis used_memory per connection", value: r($d.open.redis.used_memory_bytes / $d.connected; 0), unit: "bytes", key: true},
      {what: "Redis commands per connection, connect phase (raw)", value: $d.open.redis.commands_per_op, unit: ""},
      {what: "Redis commands per connection, close phase (raw)", value: $d.close.redis.commands_per_op, unit: ""},
      {what: "Redis commands per connection, connect phase, less the idle rate", value: $d.open_net.redis.commands_per_op, unit: "", key: true},
      {what: "Redis calls per connection, connect phase, less the idle rate", value: ($d.open_net.redis.calls_per_op | tostring), unit: ""},
      {what: "Redis CPU per connection, connect phase, less the idle rate", value: $d.open_net.redis.cpu_us_per_op, unit: "µs"},
      {what: "Redis commands per connection, close phase, less the idle rate", value: $d.close_net.redis.commands_per_op, unit: "", key: true},
      {what: "Redis calls per connection, close phase, less the idle rate", value: ($d.close_net.redis.calls_per_op | tostring), unit: ""},
      {what: "Redis CPU per connection, close phase, less the idle rate", value: $d.close_net.redis.cpu_us_per_op, unit: "µs"},
      {what: "Redis while idle (one node, connections held): commands", value: r($d.idle.redis.commands / $d.idle.seconds; 1), unit: "/s", key: true},
      {what: "Redis while idle: CPU", value: r($d.idle.redis.cpu_ms / $d.idle.seconds; 2), unit: "ms/s"},
      {what: "Redis while idle: calls", value: ($d.idle.redis.calls | map_values(r(. / $d.idle.seconds; 2)) | tostring), unit: "/s"} ] end)')
  write_step "$name" memory "Idle connections: $n, $mode${flag:+, $flag}" "$(cmdline "${cmd[@]}")" "$figures" "$data"
}

# --- handshakes ----------------------------------------------------------------

# connect_step NAME MODE: CONNECT_N handshakes (each connection is closed
# once all are in).
connect_step() {
  local name=$1 mode=$2
  echo "==> $name: connect $CONNECT_N ($mode)"
  servers_up "$name" 1 "$mode"
  local cmd=("$BENCH" connect --url "${URLS[0]}" --connections "$CONNECT_N" --concurrency "$CONCURRENCY"
    --sources 16 --timeout 300 --json "$DIR/$name.bench.json")
  # An idle window first: the background (heartbeats, figures) to take out.
  snap "$WORK/$name.i0" "${SPIDS[0]}"
  sleep "$IDLE_S"
  snap "$WORK/$name.s0" "${SPIDS[0]}"
  "${cmd[@]}" >"$DIR/$name.log" 2>&1 || echo "    (connect exited with $?: see $DIR/$name.log)"
  sleep 3
  snap "$WORK/$name.s1" "${SPIDS[0]}"
  servers_down
  local connected d idle data figures
  connected=$(jq '.details.connected // 0' "$DIR/$name.bench.json")
  d=$(delta "$WORK/$name.s0" "$WORK/$name.s1" "$connected")
  idle=$(delta "$WORK/$name.i0" "$WORK/$name.s0" 0)
  data=$(jq -n --argjson d "$d" --argjson idle "$idle" --argjson net "$(net "$d" "$idle")" --slurpfile report "$DIR/$name.bench.json" '
    $d + {idle: $idle, net: $net,
        bench: ($report[0] | (.details // .) | {attempted, connected, dropped, connections_per_s, latency, errors})}')
  figures=$(jq -n --argjson d "$data" '
    [ {what: "handshakes", value: $d.bench.connected, unit: ""},
      {what: "server CPU per handshake (open, verify, CONNECT, close)", value: $d.server_cpu_us_per_op, unit: "µs", key: true},
      {what: "the same, less the idle rate over the step", value: $d.net.server_cpu_us_per_op, unit: "µs"},
      {what: "step length; connections/s (generator and server on the same 2 cores)", value: "\($d.seconds) s; \($d.bench.connections_per_s | round)", unit: "/s"} ]
    + (if $d.redis == null then [] else [
      {what: "Redis CPU per handshake", value: $d.redis.cpu_us_per_op, unit: "µs"},
      {what: "Redis commands per handshake", value: $d.redis.commands_per_op, unit: ""},
      {what: "Redis calls per handshake", value: ($d.redis.calls_per_op | tostring), unit: ""},
      {what: "Redis while idle before (one node, no connection): commands; CPU", value: "\($d.idle.redis.commands / $d.idle.seconds | . * 10 | round / 10) /s; \($d.idle.redis.cpu_ms / $d.idle.seconds | . * 100 | round / 100) ms/s", unit: ""},
      {what: "Redis CPU per handshake, less the idle rate", value: $d.net.redis.cpu_us_per_op, unit: "µs", key: true},
      {what: "Redis commands per handshake, less the idle rate", value: $d.net.redis.commands_per_op, unit: "", key: true},
      {what: "Redis calls per handshake, less the idle rate", value: ($d.net.redis.calls_per_op | tostring), unit: ""} ] end)')
  write_step "$name" handshake "Handshakes: $CONNECT_N, $mode" "$(cmdline "${cmd[@]}")" "$figures" "$data"
}

# --- delivered messages --------------------------------------------------------

# sampler FILE: every 0.1 s, a line "ms ticks sessions redis_cpu_ms": the
# servers' summed CPU ticks, their summed sockgate_sessions gauges, and
# Redis's CPU (0 without one). Runs until killed.
sampler() {
  set +e
  local t s p u rc x
  while :; do
    t=0 s=0 rc=0
    for p in "${SPIDS[@]}"; do x=$(ticks "$p" 2>/dev/null); t=$((t + ${x:-0})); done
    for u in "${URLS[@]}"; do x=$(sessions "$u"); s=$((s + ${x:-0})); done
    [ -n "$RPORT" ] && rc=$(redis-cli -h 127.0.0.1 -p "$RPORT" INFO cpu |
      tr -d '\r' | awk -F: '/^used_cpu_(user|sys):/ { c += $2 } END { printf "%.3f", c * 1000 }')
    echo "$(date +%s%3N) $t $s $rc"
    sleep 0.1
  done >"$1"
}

# window FILE CONNECTED: from the samples, the stretch while every member
# was connected (the gauge at CONNECTED or more): from the first such sample
# to the last; its seconds, server CPU (ms) and Redis CPU (ms), and the CPU
# before it (the connect phase) and after it (the close phase).
window() {
  awk -v c="$2" -v tck="$CLK_TCK" '
    NR == 1 { t0 = $1; k0 = $2 }
    $3 >= c && !f { f = 1; ta = $1; ka = $2; ra = $4 }
    $3 >= c { tb = $1; kb = $2; rb = $4 }
    { tz = $1; kz = $2 }
    END {
      if (!f) { print "null"; exit }
      printf "{\"seconds\":%.2f,\"server_cpu_ms\":%.1f,\"redis_cpu_ms\":%.2f,\"connect_phase_cpu_ms\":%.1f,\"close_phase_cpu_ms\":%.1f}\n",
        (tb - ta) / 1000, (kb - ka) * 1000 / tck, rb - ra, (ka - k0) * 1000 / tck, (kz - kb) * 1000 / tck
    }' "$1"
}

# fanout_step NAME MODE NODES FLAG [VAR=VALUE...]: two fanout runs on the
# same servers, FANOUT_BASE then FANOUT_MESSAGES messages to
# FANOUT_MEMBERS members. In each, the window while every member is
# connected (sampler, above) holds the deliveries and none of the members'
# handshakes or closes; the difference of the two windows' CPU over the
# difference of their deliveries is the CPU per delivered message (what the
# windows' edges add is the same in both, and cancels).
fanout_step() {
  local name=$1 mode=$2 count=$3 flag=$4 j
  shift 4
  echo "==> $name: fanout $FANOUT_MEMBERS members × ($FANOUT_MESSAGES − $FANOUT_BASE) messages ($mode, $count node(s)${flag:+, $flag}${*:+, $*})"
  servers_up "$name" "$count" "$mode" "$@"
  local nodes=()
  for ((j = 1; j < count; j++)); do nodes+=(--node "${URLS[j]}"); done
  local run m sp cmd=()
  for run in base full; do
    m=$FANOUT_BASE
    [ $run = full ] && m=$FANOUT_MESSAGES
    cmd=("$BENCH" fanout --url "${URLS[0]}" ${nodes[@]+"${nodes[@]}"} --members "$FANOUT_MEMBERS" --messages "$m"
      --payload "$FANOUT_PAYLOAD" --concurrency "$CONCURRENCY" --sources 16 --timeout 300 --message-timeout 30
      --json "$DIR/$name.$run.bench.json" ${flag:+"$flag"})
    snap "$WORK/$name.$run.s0" "${SPIDS[@]}"
    sampler "$DIR/$name.$run.samples" &
    sp=$!
    "${cmd[@]}" >"$DIR/$name.$run.log" 2>&1 || echo "    (fanout exited with $?: see $DIR/$name.$run.log)"
    sleep 3
    kill "$sp" 2>/dev/null || true
    wait "$sp" 2>/dev/null || true
    snap "$WORK/$name.$run.s1" "${SPIDS[@]}"
  done
  servers_down
  local base full wb wf data figures
  base=$(delta "$WORK/$name.base.s0" "$WORK/$name.base.s1" 1)
  full=$(delta "$WORK/$name.full.s0" "$WORK/$name.full.s1" 1)
  wb=$(window "$DIR/$name.base.samples" "$(jq '.details.connected' "$DIR/$name.base.bench.json")")
  wf=$(window "$DIR/$name.full.samples" "$(jq '.details.connected' "$DIR/$name.full.bench.json")")
  data=$(jq -n --argjson base "$base" --argjson full "$full" --argjson wb "$wb" --argjson wf "$wf" \
    --slurpfile rb "$DIR/$name.base.bench.json" --slurpfile rf "$DIR/$name.full.bench.json" '
    def pick: (.details // .) | {members, connected, published, completed, deliveries_per_s, elapsed_s, all_members, errors};
    def r(x; k): (x * pow(10; k) | round) / pow(10; k);
    ($rb[0] | pick) as $b | ($rf[0] | pick) as $f
    | ($f.published - $b.published) as $msgs
    | ($f.connected * $f.published - $b.connected * $b.published) as $deliveries
    | {base: ($base + {bench: $b, window: $wb}), full: ($full + {bench: $f, window: $wf}),
       messages: $msgs, deliveries: $deliveries,
       # Without a window in each run (a run too short for the sampler):
       # the whole runs, handshakes and closes included.
       windowed: ($wb != null and $wf != null),
       server_cpu_ms: (if $wb != null and $wf != null then r($wf.server_cpu_ms - $wb.server_cpu_ms; 1)
                       else r($full.server_cpu_ms - $base.server_cpu_ms; 1) end)}
    | . + {
       server_cpu_us_per_delivery: r(.server_cpu_ms * 1000 / $deliveries; 3),
       server_cpu_us_per_message: r(.server_cpu_ms * 1000 / $msgs; 1),
       whole_runs_us_per_delivery: r(($full.server_cpu_ms - $base.server_cpu_ms) * 1000 / $deliveries; 3),
       connect_phase_us_per_member: (if $wf != null then r($wf.connect_phase_cpu_ms * 1000 / $f.connected; 1) else null end),
       close_phase_us_per_member: (if $wf != null then r($wf.close_phase_cpu_ms * 1000 / $f.connected; 1) else null end),
       redis: (if $full.redis == null then null else
         {cpu_us_per_message: (if .windowed then r(($wf.redis_cpu_ms - $wb.redis_cpu_ms) * 1000 / $msgs; 2)
                               else r(($full.redis.cpu_ms - $base.redis.cpu_ms) * 1000 / $msgs; 2) end),
          commands_per_message: r(($full.redis.commands - $base.redis.commands) / $msgs; 3),
          calls_per_message: ($full.redis.calls | with_entries(.value = r((.value - ($base.redis.calls[.key] // 0)) / $msgs; 3)) | with_entries(select(.value > 0.0005)))} end)}')
  figures=$(jq -n --argjson d "$data" '
    [ {what: "members × messages (difference of the two runs)", value: "\($d.full.bench.connected) × \($d.messages)", unit: ""},
      {what: "server CPU per delivered message (\(if $d.windowed then "windows with every member connected" else "whole runs: no window with every member connected" end), difference of the two runs)", value: $d.server_cpu_us_per_delivery, unit: "µs", key: true},
      {what: "server CPU per published message (to all its members)", value: $d.server_cpu_us_per_message, unit: "µs"},
      {what: "cross-check: whole runs (handshakes and closes included), difference", value: $d.whole_runs_us_per_delivery, unit: "µs"},
      {what: "server CPU per member while the members connect (one user: every member is the same sub)", value: $d.connect_phase_us_per_member, unit: "µs"},
      {what: "server CPU per member while they close", value: $d.close_phase_us_per_member, unit: "µs"},
      {what: "deliveries/s of the longer run (one message at a time, each to every member first)", value: ($d.full.bench.deliveries_per_s | round), unit: "/s"},
      {what: "messages completed (longer run)", value: "\($d.full.bench.completed)/\($d.full.bench.published)", unit: ""} ]
    + (if $d.redis == null then [] else [
      {what: "Redis CPU per published message (not a measure of it: the window also holds the session writes of the members, which Redis takes seconds behind their handshakes; see the publish steps)", value: $d.redis.cpu_us_per_message, unit: "µs"},
      {what: "Redis commands per published message", value: $d.redis.commands_per_message, unit: ""},
      {what: "Redis calls per published message", value: ($d.redis.calls_per_message | tostring), unit: ""} ] end)')
  write_step "$name" delivery "Fan-out: $FANOUT_MEMBERS members, $FANOUT_PAYLOAD-byte payload, $mode, $count node(s)${flag:+, $flag}${*:+, $*}" \
    "$(cmdline "${cmd[@]}") (and the same with --messages $FANOUT_BASE first; the difference)" "$figures" "$data"
}

# publish_step NAME MODE NODES [VAR=VALUE...]: PUBLISH_MESSAGES messages,
# one at a time, to a user room of PUBLISH_MEMBERS members: what one
# published message costs besides its deliveries (the API call, the
# history, Redis), with an idle window before to take the background out.
publish_step() {
  local name=$1 mode=$2 count=$3 j
  shift 3
  echo "==> $name: $PUBLISH_MESSAGES publishes to $PUBLISH_MEMBERS members ($mode, $count node(s)${*:+, $*})"
  servers_up "$name" "$count" "$mode" "$@"
  local nodes=()
  for ((j = 1; j < count; j++)); do nodes+=(--node "${URLS[j]}"); done
  local cmd=("$BENCH" fanout --url "${URLS[0]}" ${nodes[@]+"${nodes[@]}"} --members "$PUBLISH_MEMBERS" --messages "$PUBLISH_MESSAGES"
    --payload "$FANOUT_PAYLOAD" --sources 16 --timeout 300 --message-timeout 30 --json "$DIR/$name.bench.json")
  snap "$WORK/$name.i0" "${SPIDS[@]}"
  sleep "$IDLE_S"
  snap "$WORK/$name.s0" "${SPIDS[@]}"
  "${cmd[@]}" >"$DIR/$name.log" 2>&1 || echo "    (fanout exited with $?: see $DIR/$name.log)"
  sleep 2
  snap "$WORK/$name.s1" "${SPIDS[@]}"
  servers_down
  local published d idle data figures
  published=$(jq '.details.published // 0' "$DIR/$name.bench.json")
  d=$(delta "$WORK/$name.s0" "$WORK/$name.s1" "$published")
  idle=$(delta "$WORK/$name.i0" "$WORK/$name.s0" 0)
  data=$(jq -n --argjson d "$d" --argjson idle "$idle" --argjson net "$(net "$d" "$idle")" --slurpfile report "$DIR/$name.bench.json" '
    $d + {idle: $idle, net: $net,
      bench: ($report[0] | (.details // .) | {members, connected, published, completed, deliveries_per_s, elapsed_s, all_members, publish_call, errors})}')
  figures=$(jq -n --argjson d "$data" '
    [ {what: "messages published × members", value: "\($d.bench.published) × \($d.bench.connected)", unit: ""},
      {what: "server CPU per published message (API call, history, \($d.bench.connected) deliveries; \($d.bench.connected) handshakes in the run), less the idle rate",
       value: $d.net.server_cpu_us_per_op, unit: "µs", key: true},
      {what: "publish call p50 / p99", value: "\($d.bench.publish_call.p50_us / 1000) / \($d.bench.publish_call.p99_us / 1000)", unit: "ms"} ]
    + (if $d.redis == null then [] else [
      {what: "Redis CPU per published message, less the idle rate", value: $d.net.redis.cpu_us_per_op, unit: "µs", key: true},
      {what: "Redis commands per published message (commandstats: a script counts, and so does each command it runs), less the idle rate",
       value: $d.net.redis.commands_per_op, unit: "", key: true},
      {what: "Redis calls per published message, less the idle rate", value: ($d.net.redis.calls_per_op | tostring), unit: ""},
      {what: "Redis while idle before: commands; CPU", value: "\($d.idle.redis.commands / $d.idle.seconds | . * 10 | round / 10) /s; \($d.idle.redis.cpu_ms / $d.idle.seconds | . * 100 | round / 100) ms/s", unit: ""} ] end)')
  write_step "$name" delivery "Publishes: $PUBLISH_MESSAGES messages of $FANOUT_PAYLOAD bytes to $PUBLISH_MEMBERS members, $mode, $count node(s)${*:+, $*}" \
    "$(cmdline "${cmd[@]}")" "$figures" "$data"
}

# --- recovery ------------------------------------------------------------------

# recovery_step NAME MODE [VAR=VALUE...]
recovery_step() {
  local name=$1 mode=$2
  shift 2
  echo "==> $name: recovery of $RECOVERY_N clients ($mode${*:+, $*})"
  servers_up "$name" 1 "$mode" "$@"
  local cmd=(node bench/sizing-recovery.mjs --url "${URLS[0]}" --pid "${SPIDS[0]}" --clients "$RECOVERY_N"
    --before "$RECOVERY_BEFORE" --during "$RECOVERY_DURING" --clk-tck "$CLK_TCK" --json "$DIR/$name.bench.json")
  [ -n "$RPORT" ] && cmd+=(--redis-port "$RPORT")
  case " $* " in *" SOCKGATE_RECOVERY_WINDOW=0 "*) cmd+=(--expect-fresh) ;; esac
  "${cmd[@]}" --secret "$SECRET" --api-key "$API_KEY" >"$DIR/$name.log" 2>&1 ||
    echo "    (sizing-recovery exited with $?: see $DIR/$name.log)"
  servers_down
  local data figures
  data=$(jq '.' "$DIR/$name.bench.json")
  data=$(jq -n --argjson d "$data" --argjson net "$(net "$(jq '.drop' <<<"$data")" "$(jq '.idle' <<<"$data")")" '$d + {net: $net}')
  figures=$(jq -n --argjson d "$data" '
    [ {what: "clients dropped / came back / recovered", value: "\($d.clients) / \($d.reconnected) / \($d.recovered)", unit: ""},
      {what: "messages each got, in order, once (of \($d.expected_messages))", value: "\($d.complete_clients) clients complete, \($d.duplicates) duplicates, \($d.out_of_order) out of order", unit: ""},
      {what: (if $d.expect_fresh then "server CPU per reconnect (the drop, a fresh handshake, room:join again)" else "server CPU per recovery (the drop and park, the handshake, the recovery, the replay)" end),
       value: $d.drop.server_cpu_us_per_op, unit: "µs", key: true},
      {what: "the same, less the idle rate", value: $d.net.server_cpu_us_per_op, unit: "µs"},
      {what: "from the drop to the last client back", value: $d.back_s, unit: "s"} ]
    + (if $d.drop.redis == null then [] else [
      {what: "Redis CPU per \(if $d.expect_fresh then "reconnect" else "recovery" end)", value: $d.drop.redis.cpu_us_per_op, unit: "µs"},
      {what: "Redis commands per \(if $d.expect_fresh then "reconnect" else "recovery" end)", value: $d.drop.redis.commands_per_op, unit: ""},
      {what: "Redis calls per \(if $d.expect_fresh then "reconnect" else "recovery" end)", value: ($d.drop.redis.calls_per_op | tostring), unit: ""},
      {what: "Redis while idle before: commands; CPU", value: "\($d.idle.redis.commands / $d.idle.seconds | . * 10 | round / 10) /s; \($d.idle.redis.cpu_ms / $d.idle.seconds | . * 100 | round / 100) ms/s", unit: ""},
      {what: "Redis CPU, less the idle rate", value: $d.net.redis.cpu_us_per_op, unit: "µs", key: true},
      {what: "Redis commands, less the idle rate", value: $d.net.redis.commands_per_op, unit: "", key: true},
      {what: "Redis calls, less the idle rate", value: ($d.net.redis.calls_per_op | tostring), unit: ""} ] end)')
  write_step "$name" recovery "Recovery: $RECOVERY_N official clients, $mode${*:+, $*}" \
    "$(cmdline "${cmd[@]}") --secret … --api-key …" "$figures" "$data"
}

# --- the run -------------------------------------------------------------------

STARTED=$SECONDS
echo "==> sizing: steps ${STEPS[*]}; results in $DIR"
echo "    sockgate $SOCKGATE ($(sha256sum "$SOCKGATE" | cut -c1-12)), sockgate-bench $BENCH ($(sha256sum "$BENCH" | cut -c1-12))"
[ "${STEPS[*]}" = summary ] || {
  echo "sockgate=$SOCKGATE sha256=$(sha256sum "$SOCKGATE" | cut -c1-16) mtime=$(date -u -r "$SOCKGATE" +%FT%TZ)"
  echo "sockgate-bench=$BENCH sha256=$(sha256sum "$BENCH" | cut -c1-16) mtime=$(date -u -r "$BENCH" +%FT%TZ)"
  echo "tree=$(git rev-parse --short HEAD 2>/dev/null || echo '?') started=$(date -u +%FT%TZ) load=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "cores=$(nproc) mem=$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) nofile=$NOFILE $(redis-server --version | cut -d' ' -f1-3) node=$(node --version)"
  echo "small=${SMALL:-0} repeat=$REPEAT"
} >"$DIR/run-$(date -u +%Y%m%dT%H%M%S).txt"

for step in "${STEPS[@]}"; do
  case "$step" in
    memory)
      for ((rep = 1; rep <= REPEAT; rep++)); do
        for m in $MEMORY_MODES; do
          case "$m" in
            single) hold_step "memory-$HOLD_N-r$rep" "$HOLD_N" single ;;
            max) hold_step "memory-$HOLD_MAX-r$rep" "$HOLD_MAX" single ;;
            compress) hold_step "memory-$HOLD_N-compress-r$rep" "$HOLD_N" single --compress ;;
            cluster) hold_step "memory-$HOLD_N-cluster-r$rep" "$HOLD_N" cluster ;;
            *) echo "error: MEMORY_MODES: unknown $m" >&2; exit 2 ;;
          esac
        done
      done
      ;;
    handshake)
      for ((rep = 1; rep <= REPEAT; rep++)); do
        connect_step "handshake-single-r$rep" single
        connect_step "handshake-cluster-r$rep" cluster
      done
      ;;
    delivery)
      fanout_step delivery-single single 1 ""
      fanout_step delivery-single-compress single 1 --compress
      fanout_step delivery-single-norecovery single 1 "" SOCKGATE_RECOVERY_WINDOW=0
      fanout_step delivery-cluster cluster 1 ""
      fanout_step delivery-cluster-norecovery cluster 1 "" SOCKGATE_RECOVERY_WINDOW=0
      fanout_step delivery-cluster-2nodes cluster 2 ""
      publish_step publish-single single 1
      publish_step publish-cluster cluster 1
      publish_step publish-cluster-norecovery cluster 1 SOCKGATE_RECOVERY_WINDOW=0
      publish_step publish-cluster-2nodes cluster 2
      ;;
    recovery)
      recovery_step recovery-single single
      recovery_step recovery-cluster cluster
      recovery_step reconnect-single-norecovery single SOCKGATE_RECOVERY_WINDOW=0
      recovery_step reconnect-cluster-norecovery cluster SOCKGATE_RECOVERY_WINDOW=0
      ;;
    summary) ;;
  esac
done

# The summary: every step's figures, with its command, from the JSON files.
node - "$DIR" "${NOTE:-}" >"$DIR/summary.md" <<'JS'
const fs = require("fs");
const [dir, note] = process.argv.slice(2);
const order = ["memory", "handshake", "delivery", "recovery"];
const titles = {
  memory: "Memory per idle connection (and the idle cost)",
  handshake: "CPU per handshake",
  delivery: "CPU per delivered message",
  recovery: "CPU per recovery",
};
const steps = fs
  .readdirSync(dir)
  .filter((f) => f.endsWith(".json") && !f.endsWith(".bench.json"))
  .map((f) => JSON.parse(fs.readFileSync(`${dir}/${f}`, "utf8")))
  .filter((s) => s.section);
steps.sort((a, b) => order.indexOf(a.section) - order.indexOf(b.section) || a.when.localeCompare(b.when));
const runs = fs.readdirSync(dir).filter((f) => /^run-.*\.txt$/.test(f)).sort();
const out = [];
out.push("# Sizing measurements\n");
out.push(
  "Written by `bench/sizing.sh` (see its header for the method). CPU is a process's utime + stime " +
    "(/proc/PID/stat, all threads), Redis's `used_cpu_user + used_cpu_sys` and per-command calls from " +
    "`INFO all` (the snapshots' own INFO calls left out), read before and after each step. The load " +
    "generator shares the machine's 2 cores with the server: the figures are CPU time, not wall time. " +
    "Each step's numbers, snapshots and the generator's report are in its `NAME.json` and `NAME.bench.json` here.\n",
);
if (note) out.push(note + "\n");
out.push("Runs:\n");
for (const r of runs) out.push("```\n" + fs.readFileSync(`${dir}/${r}`, "utf8").trim() + "\n```\n");
out.push("## Key figures\n");
out.push("| step | figure | value |");
out.push("|---|---|---:|");
for (const s of steps)
  for (const f of s.figures.filter((f) => f.key))
    out.push(`| [${s.name}](#${s.name}) | ${f.what} | ${f.value} ${f.unit} |`);
out.push("");
let section = null;
for (const s of steps) {
  if (s.section !== section) {
    section = s.section;
    out.push(`## ${titles[section]}\n`);
  }
  out.push(`### ${s.name}\n`);
  out.push(`${s.title}. ${s.when}.\n`);
  out.push("```sh\n" + s.command + "\n```\n");
  out.push(`Server: \`${s.server_env}\`\n`);
  out.push("| figure | value |");
  out.push("|---|---:|");
  for (const f of s.figures) out.push(`| ${f.what} | ${String(f.value).replace(/\|/g, "\\|")} ${f.unit} |`);
  out.push("");
}
console.log(out.join("\n"));
JS
echo
echo "==> summary: $DIR/summary.md; took $((SECONDS - STARTED)) s"
