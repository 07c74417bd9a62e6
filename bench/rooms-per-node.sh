#!/usr/bin/env bash
# Per-node CPU cost of room messages in a cluster of 1, 2 and 4 nodes, two
# sockgate builds alternating in one session: does a node's work grow with
# the whole cluster's room traffic, or with its own?
#
#   bench/rooms-per-node.sh OLD_SOCKGATE NEW_SOCKGATE [RUNS]
#
#   RUNS (default 2): each run measures both builds at every node count,
#   alternating (old first in odd runs, new first in even ones).
#
# Environment:
#   OUT          where results go (default bench/results/rooms-per-node-DATE)
#   NODE_COUNTS  cluster sizes (default "1 2 4")
#   ROOMS        clients, one room each (default 4000)
#   MESSAGES     messages published per measurement (default 40000)
#   CONCURRENCY  publishes in flight (default 32)
#   TIMEOUT      seconds to wait for every delivery (default 180)
#   SETTLE       seconds between the last connect and the first snapshot (2)
#   IDLE         seconds of an idle window measured before publishing (3)
#   RATE_PER_NODE  publishes a second per node (default 0: as fast as
#                CONCURRENCY allows). Set, every node takes that many
#                publishes and deliveries a second at every cluster size, so
#                that its CPU per message is compared at the same load: a
#                busier process spends less per message (more is carried per
#                wake-up and system call), and unpaced, the machine's total
#                rate is shared by more nodes as N grows
#   EXTRA_ENV    more VAR=VALUE settings for every node, space-separated
#                (e.g. "SOCKGATE_RECOVERY_WINDOW=0": recovery off)
#   FRONT        1: one more node of the cluster (same Redis, same
#                settings), the front, holds no client and takes every
#                publish; the N nodes measured, the holders, only hold the
#                clients and deliver. Unset (the default), the holders' own
#                APIs take the publishes, and each node's figure includes the
#                API work (HTTP, the history script in Redis) for its share
#                of them, which is much of it and the same in both builds.
#                With FRONT=1 a holder's CPU per delivered message is its
#                delivery work plus, for a build that sends every room
#                message to every node, the work of reading and dropping the
#                messages of the other holders' rooms (and of the front's
#                own, which the front reads back); the per-node figures cover
#                the holders only, the front's CPU is reported apart (per
#                published message, "front" in the JSON). RATE_PER_NODE R
#                then paces the total at R x N publishes a second, all
#                through the front, so that each holder still delivers R a
#                second at every N
#   OLD_REV, NEW_REV  what the builds are (e.g. their commits), written in
#                the summary beside their checksums
#   NOTE         a free line added to the summary (e.g. the machine's load)
#
# A measurement (one build, N nodes) starts a private redis-server on a free
# loopback port and N nodes on it (each with its own data directory, quiet
# logs, the abuse limits off as in bench/lib.sh; the cluster secret is the
# default one derived from JWT_SECRET), waits until every node's /readyz
# answers 200, and runs bench/rooms-per-node.mjs: ROOMS clients, client i
# (token sub "u<i>") on node i % N with the official socket.io-client over
# WebSocket, each the only member of its own room user:u<i>; then MESSAGES
# `POST /api/publish { user, event: "tick" }` over keep-alive connections,
# spread evenly over the nodes' APIs so that (N - 1) / N of them reach their
# room on another node; it waits until every message is delivered. Each
# node's CPU time (utime + stime from /proc/PID/stat) and Redis's
# (INFO used_cpu_user + used_cpu_sys, total_commands_processed) are read
# after the clients connected and after the last delivery. Reported per node:
# messages delivered to its clients, CPU ms, CPU µs per delivered message;
# for Redis, CPU µs and commands per published message. The processes share
# the machine's cores with the client process: CPU time, not wall time, is
# the figure. Then everything is stopped.
#
# Writes OUT/BUILD-nN-rRUN.json per measurement and OUT/summary.md (every
# measurement, then the medians over runs), and prints the summary. With
# FRONT=1 the front node is started after the holders and is the last
# stopped; it is no part of N.
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^set -e/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;; esac
usage="usage: $0 OLD_SOCKGATE NEW_SOCKGATE [RUNS]"
# Paths as given, from the caller's directory.
OLD=$(realpath "${1:?$usage}")
NEW=$(realpath "${2:?$usage}")
RUNS=${3:-2}
[ -z "${OUT:-}" ] || OUT=$(realpath -m "$OUT")
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DIR=${OUT:-$ROOT/bench/results/rooms-per-node-$(date -u +%F)}
NODE_COUNTS=${NODE_COUNTS:-1 2 4}
ROOMS=${ROOMS:-4000}
MESSAGES=${MESSAGES:-40000}
CONCURRENCY=${CONCURRENCY:-32}
TIMEOUT=${TIMEOUT:-180}
SETTLE=${SETTLE:-2}
IDLE=${IDLE:-3}
RATE_PER_NODE=${RATE_PER_NODE:-0}
FRONT=${FRONT:-}
case "$FRONT" in "" | 0) FRONT= ;; 1) ;; *) echo "error: FRONT is 1 or unset, not $FRONT" >&2; exit 1 ;; esac
read -ra EXTRA <<<"${EXTRA_ENV:-}"

# lib.sh: $WORK (removed on exit), the cleanup trap that stops every server
# started with `launch`, `stop_launched`, `http_get`, `raise_nofile`, `need`.
# It sets OUT for the other scripts; this one writes to $DIR.
. bench/lib.sh
raise_nofile
need redis-server redis-server
need redis-cli redis-tools
for bin in "$OLD" "$NEW"; do
  [ -x "$bin" ] || { echo "error: $bin is not an executable" >&2; exit 1; }
done
if [ "$ROOMS" -gt $((NOFILE - 200)) ]; then
  echo "error: ROOMS=$ROOMS needs an open-file limit above $((ROOMS + 200)) (ulimit -Hn = $NOFILE)" >&2
  exit 1
fi
CLK_TCK=$(getconf CLK_TCK)
mkdir -p "$DIR"

# free_port: a TCP port free on 127.0.0.1 right now.
free_port() {
  node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => {
    console.log(s.address().port); s.close(); })'
}

# wait_readyz NAME URL: waits (30 s) until the node answers /readyz with
# 200, i.e. has joined the cluster; shows its log and stops if not.
wait_readyz() {
  local i
  for ((i = 0; i < 150; i++)); do
    http_get "$2" /readyz | head -1 | grep -q " 200 " && return 0
    gone "$(cat "$WORK/$1.pid")" && break
    sleep 0.2
  done
  echo "error: $1 did not get ready at $2; its log:" >&2
  cat "$WORK/$1.log" >&2
  exit 1
}

# start_node NAME BINARY REDIS_PORT: a node of the cluster on a free port,
# with its own data directory. Sets NODE_URL and SERVER_PID.
start_node() {
  local name=$1 bin=$2 redis_port=$3 port
  port=$(free_port)
  mkdir -p "$WORK/data-$name"
  launch "$name" env JWT_SECRET="$SECRET" SOCKGATE_API_KEY="$API_KEY" \
    SOCKGATE_REDIS_URL="redis://127.0.0.1:$redis_port" SOCKGATE_LISTEN="127.0.0.1:$port" \
    SOCKGATE_DATA_DIR="$WORK/data-$name" SOCKGATE_LOG=warn SOCKGATE_SHUTDOWN_TIMEOUT=2 \
    SOCKGATE_HANDSHAKE_RATE=0 SOCKGATE_EVENT_RATE=0 SOCKGATE_MAX_TCP_CONNECTIONS_PER_ADDRESS=0 \
    "${EXTRA[@]}" "$bin" serve
  NODE_URL="http://127.0.0.1:$port"
}

# measure LABEL BINARY NODES RUN: one measurement, report in
# $DIR/LABEL-nNODES-rRUN.json.
measure() {
  local label=$1 bin=$2 n=$3 run=$4 j redis_port name rc=0
  local names=() urls=() specs=() front=()
  local report="$DIR/$label-n$n-r$run.json"
  echo "==> $label, $n node(s), run $run"

  redis_port=$(free_port)
  launch redis redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no
  for ((j = 0; j < 100; j++)); do
    [ "$(redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null)" = PONG ] && break
    sleep 0.1
  done

  for ((j = 0; j < n; j++)); do
    names+=("node$j")
    start_node "node$j" "$bin" "$redis_port"
    urls+=("$NODE_URL")
    specs+=(--node "$NODE_URL=$SERVER_PID")
  done
  if [ -n "$FRONT" ]; then
    names+=(front)
    start_node front "$bin" "$redis_port"
    front=(--front "$NODE_URL=$SERVER_PID")
    urls+=("$NODE_URL")
  fi
  for ((j = 0; j < ${#names[@]}; j++)); do wait_readyz "${names[j]}" "${urls[j]}"; done

  node bench/rooms-per-node.mjs "${specs[@]}" --redis-port "$redis_port" \
    --secret "$SECRET" --api-key "$API_KEY" --json "$report" --label "$label n=$n r$run" \
    --rooms "$ROOMS" --messages "$MESSAGES" --concurrency "$CONCURRENCY" --timeout "$TIMEOUT" \
    --settle "$SETTLE" --idle "$IDLE" --rate-per-node "$RATE_PER_NODE" --clk-tck "$CLK_TCK" \
    ${front[@]+"${front[@]}"} || rc=$?
  [ $rc = 0 ] || echo "    (incomplete: publishes failed or deliveries missing, exit $rc; see $report)"

  for name in "${names[@]}"; do
    if grep -q -i -E 'error|panic' "$WORK/$name.log"; then
      echo "    $name logged errors:"
      grep -i -E 'error|panic' "$WORK/$name.log" | head -5 | sed 's/^/      /'
    fi
    stop_launched "$name"
  done
  stop_launched redis
  rm -rf "$WORK"/data-node* "$WORK"/data-front
}

STARTED=$SECONDS
for run in $(seq "$RUNS"); do
  order=(old new)
  [ $((run % 2)) = 0 ] && order=(new old)
  for n in $NODE_COUNTS; do
    for label in "${order[@]}"; do
      bin=$OLD
      [ "$label" = new ] && bin=$NEW
      measure "$label" "$bin" "$n" "$run"
    done
  done
done

# The summary: one row per measurement, then the median of each build and
# cluster size over the runs, with new/old.
# Recovery as the nodes had it, for the summary of a FRONT run.
recovery="recovery on (default window)"
for setting in "${EXTRA[@]}"; do
  case "$setting" in
    SOCKGATE_RECOVERY_WINDOW=0) recovery="recovery off (SOCKGATE_RECOVERY_WINDOW=0: plain messages, no history)" ;;
    SOCKGATE_RECOVERY_WINDOW=*) recovery="recovery on ($setting)" ;;
  esac
done
node - "$DIR" "$RUNS" "$NODE_COUNTS" "$recovery" >"$DIR/summary.md" <<'JS'
const fs = require("fs");
const [dir, runs, counts, recovery] = process.argv.slice(2);
const ns = counts.trim().split(/\s+/).map(Number);
const rows = [];
for (let run = 1; run <= Number(runs); run++)
  for (const n of ns)
    for (const build of ["old", "new"]) {
      const file = `${dir}/${build}-n${n}-r${run}.json`;
      if (fs.existsSync(file)) rows.push({ build, n, run, r: JSON.parse(fs.readFileSync(file)) });
    }
// By cluster size, old before new, then by run.
rows.sort((a, b) => a.n - b.n || b.build.localeCompare(a.build) || a.run - b.run);
const f = (x, d = 1) => (x === null || x === undefined ? "–" : x.toFixed(d));
const first = rows[0]?.r;
// FRONT=1: every publish through a node without clients.
const fronted = Boolean(first?.front);
console.log(`# Room messages per node: old vs new${fronted ? ", publishes on a front node" : ""}\n`);
if (fronted) {
  console.log(
    `Mode: front node (one extra node on the same Redis, no client, takes every publish; the N nodes ` +
      `measured only hold clients and deliver), ` +
      (first.ratePerNode
        ? `paced at ${first.ratePerNode} a second per holder (${first.ratePerNode} x N in all)`
        : "unpaced") +
      `, ${recovery}.\n`,
  );
  console.log(
    `${first.rooms} clients (one room each, client i on holder i % N, WebSocket), ` +
      `${first.messages} \`POST /api/publish\` (${first.concurrency} in flight) all on the front node; ` +
      `CPU from the first publish to the last delivery. µs/msg: a holder's CPU time over the messages ` +
      `its own clients received (its delivery work, and for old, reading and dropping the messages of ` +
      `the other nodes' rooms); front µs/msg: the front node's CPU over the published messages; Redis: ` +
      `CPU and commands per published message; channels: the pub/sub channels the nodes (front ` +
      `included) listened on. Idle: a holder's CPU in a quiet window before publishing. Others' CPU: ` +
      `the machine's CPU time during the measurement that none of the measured processes (holders, front, ` +
      `Redis, the client) spent, in ms a second (1000 = a whole core): the other load of a shared machine.\n`,
  );
} else if (first) {
  console.log(
    `${first.rooms} clients (one room each, client i on node i % N, WebSocket), ` +
      `${first.messages} \`POST /api/publish\` (${first.concurrency} in flight` +
      (first.ratePerNode ? `, paced at ${first.ratePerNode} a second per node` : ", unpaced") +
      `) spread over the nodes' APIs; ` +
      `CPU from the first publish to the last delivery. µs/msg: a node's CPU time over the messages ` +
      `its own clients received; Redis: CPU and commands per published message; channels: ` +
      `the pub/sub channels the nodes listened on. Idle: a node's CPU in a quiet window before publishing.\n`,
  );
}
console.log(
  "| build | nodes | run | node µs/delivered mean | min | max | delivered/node | node CPU ms (mean) | idle node ms/s | " +
    (fronted ? "front µs/msg | front CPU ms | idle front ms/s | " : "") +
    "Redis µs/msg | Redis cmd/msg | channels | msg/s | complete |" +
    (fronted ? " others' CPU ms/s |" : ""),
);
console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|" + (fronted ? "---:|---:|---:|" : "") + "---:|---:|---:|---:|---|" + (fronted ? "---:|" : ""));
for (const { build, n, run, r } of rows) {
  const idle = r.perNode.map((p) => p.idleCpuMsPerS).filter((x) => x !== null);
  const idleMean = idle.length ? idle.reduce((s, x) => s + x, 0) / idle.length : null;
  const ok = r.complete && !r.publishErrors && !r.duplicates && !r.disconnects;
  const note = ok ? "yes" : `no (${r.delivered}/${r.messages}, ${r.publishErrors} failed, ${r.duplicates} dup, ${r.disconnects} disc)`;
  console.log(
    `| ${build} | ${n} | ${run} | ${f(r.mean.cpuUsPerDelivered)} | ${f(r.mean.minCpuUsPerDelivered)} | ` +
      `${f(r.mean.maxCpuUsPerDelivered)} | ${f(r.mean.delivered, 0)} | ${f(r.mean.cpuMs, 0)} | ${f(idleMean)} | ` +
      (fronted ? `${f(r.front?.cpuUsPerMessage)} | ${f(r.front?.cpuMs, 0)} | ${f(r.front?.idleCpuMsPerS)} | ` : "") +
      `${f(r.redis.cpuUsPerMessage)} | ${f(r.redis.commandsPerMessage, 2)} | ${r.redis.channels} | ${f(r.messagesPerSecond, 0)} | ${note} |` +
      (fronted ? ` ${f(r.machine?.otherCpuMsPerS, 0)} |` : ""),
  );
}
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : null;
};
const med = (build, n, get) => median(rows.filter((x) => x.build === build && x.n === n).map((x) => get(x.r)));
console.log(`\nMedians over the runs:\n`);
console.log(
  "| nodes | old node µs/delivered | new node µs/delivered | new/old | old Redis µs/msg | new Redis µs/msg | old Redis cmd/msg | new Redis cmd/msg |" +
    (fronted ? " old front µs/msg | new front µs/msg |" : ""),
);
console.log("|---:|---:|---:|---:|---:|---:|---:|---:|" + (fronted ? "---:|---:|" : ""));
for (const n of ns) {
  const o = med("old", n, (r) => r.mean.cpuUsPerDelivered);
  const w = med("new", n, (r) => r.mean.cpuUsPerDelivered);
  console.log(
    `| ${n} | ${f(o)} | ${f(w)} | ${o && w ? (w / o).toFixed(2) + "x" : "–"} | ` +
      `${f(med("old", n, (r) => r.redis.cpuUsPerMessage))} | ${f(med("new", n, (r) => r.redis.cpuUsPerMessage))} | ` +
      `${f(med("old", n, (r) => r.redis.commandsPerMessage), 2)} | ${f(med("new", n, (r) => r.redis.commandsPerMessage), 2)} |` +
      (fronted
        ? ` ${f(med("old", n, (r) => r.front.cpuUsPerMessage))} | ${f(med("new", n, (r) => r.front.cpuUsPerMessage))} |`
        : ""),
  );
}
JS
{
  echo
  echo "old: \`$OLD\` (${OLD_REV:+$OLD_REV, }$(sha256sum "$OLD" | cut -c1-12)), new: \`$NEW\` (${NEW_REV:+$NEW_REV, }$(sha256sum "$NEW" | cut -c1-12));"
  echo "$(redis-server --version | cut -d' ' -f1-3), node $(node --version), $(nproc) cores shared by Redis, the nodes and the client;"
  echo "${EXTRA_ENV:+node settings: $EXTRA_ENV; }tree $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(date -u +%Y-%m-%dT%H:%M:%SZ)."
  [ -z "${NOTE:-}" ] || { echo; echo "$NOTE"; }
} >>"$DIR/summary.md"
echo
cat "$DIR/summary.md"
echo
echo "==> results in $DIR; took $((SECONDS - STARTED)) s"
