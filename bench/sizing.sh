#!/usr/bin/env bash
# Sizing figures for docs/sizing.md: what one connection, one handshake, one
# delivered message and one recovery cost a sockgate process (and, in a
# cluster, the Redis it shares), measured one step at a time on this machine.
#
#   bench/sizing.sh [--small] [STEP...]
#
#   STEP      memory, handshake, delivery, recovery (default: all four, in
#             that order); the idle cost of a cluster node is measured with
#             the cluster memory step
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
#              same server: FANOUT_BASE then FANOUT_MESSAGES messages; the
#              difference of the two runs' CPU over the difference of their
#              deliveries is the CPU per delivered message, without the
#              members' handshakes. Single node plain, with --compress, and
#              with recovery off; a node on Redis with recovery on (the
#              default) and off, and 2 nodes on Redis (members alternate,
#              publishes through the first); for the cluster, Redis CPU and
#              commands per published message.
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
#   IDLE_S            seconds of the idle window inside a hold (8)
#   CONNECT_N, CONCURRENCY     handshakes measured, in flight (10000, 200)
#   FANOUT_MEMBERS, FANOUT_BASE, FANOUT_MESSAGES, FANOUT_PAYLOAD
#                     (5000, 10, 110, 512)
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
    memory | handshake | delivery | recovery) STEPS+=("$arg") ;;
    *) echo "usage: $0 [--small] [memory|handshake|delivery|recovery]..." >&2; exit 2 ;;
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
  : "${RECOVERY_N:=200}"
fi
REPEAT=${REPEAT:-1}
HOLD_N=${HOLD_N:-10000}
HOLD_MAX=${HOLD_MAX:-19000}
HOLD_S=${HOLD_S:-20}
IDLE_S=${IDLE_S:-8}
CONNECT_N=${CONNECT_N:-10000}
CONCURRENCY=${CONCURRENCY:-200}
FANOUT_MEMBERS=${FANOUT_MEMBERS:-5000}
FANOUT_BASE=${FANOUT_BASE:-10}
FANOUT_MESSAGES=${FANOUT_MESSAGES:-110}
FANOUT_PAYLOAD=${FANOUT_PAYLOAD:-512}
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
  local held=$s
  snap "$WORK/$name.s1" "${SPIDS[0]}"
  sleep "$IDLE_S"
  snap "$WORK/$name.s2" "${SPIDS[0]}"
  wait "$hp" || echo "    (hold exited with $?: see $DIR/$name.log)"
  sleep 3
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
    --slurpfile report "$DIR/$name.bench.json" \
    '{asked: $n, connected: $connected, sessions_gauge_when_snapped: $held, open: $open, idle: $idle, close: $close,
      open_net: $open_net, close_net: $close_net,
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
      {what: "Redis used_memory per connection", value: r($d.open.redis.used_memory_bytes / $d.connected; 0), unit: "bytes", key: true},
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

# fanout_step NAME MODE NODES FLAG [VAR=VALUE...]: two fanout runs on the
# same servers, FANOUT_BASE then FANOUT_MESSAGES messages; the difference.
fanout_step() {
  local name=$1 mode=$2 count=$3 flag=$4 j
  shift 4
  echo "==> $name: fanout $FANOUT_MEMBERS members × ($FANOUT_MESSAGES − $FANOUT_BASE) messages ($mode, $count node(s)${flag:+, $flag}${*:+, $*})"
  servers_up "$name" "$count" "$mode" "$@"
  local nodes=()
  for ((j = 1; j < count; j++)); do nodes+=(--node "${URLS[j]}"); done
  local run m cmd=()
  for run in base full; do
    m=$FANOUT_BASE
    [ $run = full ] && m=$FANOUT_MESSAGES
    cmd=("$BENCH" fanout --url "${URLS[0]}" ${nodes[@]+"${nodes[@]}"} --members "$FANOUT_MEMBERS" --messages "$m"
      --payload "$FANOUT_PAYLOAD" --concurrency "$CONCURRENCY" --sources 16 --timeout 300 --message-timeout 30
      --json "$DIR/$name.$run.bench.json" ${flag:+"$flag"})
    snap "$WORK/$name.$run.s0" "${SPIDS[@]}"
    "${cmd[@]}" >"$DIR/$name.$run.log" 2>&1 || echo "    (fanout exited with $?: see $DIR/$name.$run.log)"
    sleep 3
    snap "$WORK/$name.$run.s1" "${SPIDS[@]}"
  done
  servers_down
  local base full data figures
  base=$(delta "$WORK/$name.base.s0" "$WORK/$name.base.s1" 1)
  full=$(delta "$WORK/$name.full.s0" "$WORK/$name.full.s1" 1)
  data=$(jq -n --argjson base "$base" --argjson full "$full" \
    --slurpfile rb "$DIR/$name.base.bench.json" --slurpfile rf "$DIR/$name.full.bench.json" '
    def pick: (.details // .) | {members, connected, published, completed, deliveries_per_s, elapsed_s, all_members, errors};
    def r(x; k): (x * pow(10; k) | round) / pow(10; k);
    ($rb[0] | pick) as $b | ($rf[0] | pick) as $f
    | ($f.published - $b.published) as $msgs
    | ($f.connected * $f.published - $b.connected * $b.published) as $deliveries
    | {base: ($base + {bench: $b}), full: ($full + {bench: $f}), messages: $msgs, deliveries: $deliveries,
       server_cpu_ms: r($full.server_cpu_ms - $base.server_cpu_ms; 1),
       server_cpu_us_per_delivery: r(($full.server_cpu_ms - $base.server_cpu_ms) * 1000 / $deliveries; 3),
       server_cpu_us_per_message: r(($full.server_cpu_ms - $base.server_cpu_ms) * 1000 / $msgs; 1),
       redis: (if $full.redis == null then null else
         {cpu_us_per_message: r(($full.redis.cpu_ms - $base.redis.cpu_ms) * 1000 / $msgs; 2),
          commands_per_message: r(($full.redis.commands - $base.redis.commands) / $msgs; 3),
          calls_per_message: ($full.redis.calls | with_entries(.value = r((.value - ($base.redis.calls[.key] // 0)) / $msgs; 3)) | with_entries(select(.value > 0)))} end)}')
  figures=$(jq -n --argjson d "$data" '
    [ {what: "members × messages (difference of the two runs)", value: "\($d.full.bench.connected) × \($d.messages)", unit: ""},
      {what: "server CPU per delivered message", value: $d.server_cpu_us_per_delivery, unit: "µs", key: true},
      {what: "server CPU per published message (to all its members)", value: $d.server_cpu_us_per_message, unit: "µs"},
      {what: "deliveries/s of the longer run (one message at a time, each to every member first)", value: ($d.full.bench.deliveries_per_s | round), unit: "/s"},
      {what: "messages completed (longer run)", value: "\($d.full.bench.completed)/\($d.full.bench.published)", unit: ""} ]
    + (if $d.redis == null then [] else [
      {what: "Redis CPU per published message", value: $d.redis.cpu_us_per_message, unit: "µs", key: true},
      {what: "Redis commands per published message", value: $d.redis.commands_per_message, unit: "", key: true},
      {what: "Redis calls per published message", value: ($d.redis.calls_per_message | tostring), unit: ""} ] end)')
  write_step "$name" delivery "Fan-out: $FANOUT_MEMBERS members, $FANOUT_PAYLOAD-byte payload, $mode, $count node(s)${flag:+, $flag}${*:+, $*}" \
    "$(cmdline "${cmd[@]}") (and the same with --messages $FANOUT_BASE first; the difference)" "$figures" "$data"
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
{
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
        hold_step "memory-$HOLD_N-r$rep" "$HOLD_N" single
        hold_step "memory-$HOLD_MAX-r$rep" "$HOLD_MAX" single
        hold_step "memory-$HOLD_N-compress-r$rep" "$HOLD_N" single --compress
        hold_step "memory-$HOLD_N-cluster-r$rep" "$HOLD_N" cluster
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
      ;;
    recovery)
      recovery_step recovery-single single
      recovery_step recovery-cluster cluster
      recovery_step reconnect-single-norecovery single SOCKGATE_RECOVERY_WINDOW=0
      recovery_step reconnect-cluster-norecovery cluster SOCKGATE_RECOVERY_WINDOW=0
      ;;
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
