#!/usr/bin/env bash
# Measures publishing from the app's queues: messages from a producer to
# every member of one user's room, with the same load generator
# (sockgate-bench queue) in one run:
#
#   bench/queues.sh [--quick|--full]
#
#   sockgate, POST /api/publish            (--via api)
#   sockgate, consuming a Redis stream     (--via redis:...)
#   sockgate, consuming NATS JetStream     (--via nats:...)
#   sockgate, consuming RabbitMQ           (--via amqp:...)
#   sockgate, consuming a PostgreSQL outbox (--via postgres:...)
#   the Node peer, POST /api/publish       (io.to(room).emit in process)
#   the Node peer, @socket.io/redis-emitter over the Redis adapter, from
#   another process (bench/peer-node/emit.mjs, --via command:...)
#
# Each runs twice: `max` sends as fast as 16 concurrent senders go (the
# throughput, messages/s to every member; a queue's backlog shows in its
# latency), and `paced` sends at a fixed rate (the latency from the send to
# each member, p50/p99). The brokers are the machine's own (NATS on 4222,
# RabbitMQ on 5672, PostgreSQL on 5432) with names of this run, deleted
# afterwards; Redis is a private redis-server. Writes
# bench/results/queues.json.
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
  MEMBERS=10; MAX_K=3000; PACED_K=1000; RATE=500; TIMEOUT=120
else
  MEMBERS=100; MAX_K=20000; PACED_K=5000; RATE=1000; TIMEOUT=600
fi

build_release
need node nodejs
need npm npm
npm_ci bench/peer-node
start_redis

export JWT_SECRET="$SECRET"
ID="$$"
NATS_URL="nats://127.0.0.1:4222"
AMQP_URL="amqp://guest:guest@127.0.0.1:5672/%2f"
PG_URL="postgres://postgres@127.0.0.1:5432/test"
STREAM="bench-$ID"
NATS_STREAM="BENCH_$ID"
SUBJECT="bench.$ID"
QUEUE="bench-$ID"
TABLE="bench_outbox_$ID"

# One sockgate consumes all four queues; one producer runs at a time.
start_sockgate sockgate \
  SOCKGATE_CONSUME_REDIS_URL="$REDIS_URL" SOCKGATE_CONSUME_REDIS_STREAM="$STREAM" \
  SOCKGATE_CONSUME_NATS_URL="$NATS_URL" SOCKGATE_CONSUME_NATS_STREAM="$NATS_STREAM" SOCKGATE_CONSUME_NATS_SUBJECT="$SUBJECT" \
  SOCKGATE_CONSUME_AMQP_URL="$AMQP_URL" SOCKGATE_CONSUME_AMQP_QUEUE="$QUEUE" \
  SOCKGATE_CONSUME_POSTGRES_URL="$PG_URL" SOCKGATE_CONSUME_POSTGRES_TABLE="$TABLE"
SOCKGATE_URL=$URL
# The consumers create their stream, queue and table as they start.
for _ in $(seq 100); do
  http_get "$SOCKGATE_URL" /api/stats | grep -q '"state":"connecting"' || break
  sleep 0.1
done

port=$("$BENCH" free-port)
URL="http://127.0.0.1:$port"
launch node-peer env PORT="$port" API_KEY="$API_KEY" JWT_SECRET="$SECRET" REDIS_URL="$REDIS_URL" \
  "$(command -v node)" "$ROOT/bench/peer-node/server.mjs"
wait_ready node-peer
PEER_URL=$URL

# run NAME SERVER VIA [--drop-after]: the max run, then the paced run.
run() {
  local name=$1 url=$2 via=$3 drop=${4:-} rc
  for kind in max paced; do
    mkdir -p "$WORK/$kind-$name"
    local args=(--messages "$MAX_K" --send-rate 0)
    [ "$kind" = paced ] && args=(--messages "$PACED_K" --send-rate "$RATE")
    # The table, queue or stream goes with the last run that uses it.
    local last=()
    [ "$kind" = paced ] && [ -n "$drop" ] && last=(--drop-after)
    echo
    echo "==> $name, $kind"
    rc=0
    "$BENCH" queue --url "$url" --timeout "$TIMEOUT" --api-key "$API_KEY" --members "$MEMBERS" \
      --via "$via" "${args[@]}" "${last[@]}" --json "$WORK/$kind-$name/queue.json" || rc=$?
    [ "$rc" = 0 ] || echo "    ($name $kind: exit $rc, see above)"
  done
}

run sockgate-api "$SOCKGATE_URL" api
run sockgate-redis "$SOCKGATE_URL" "redis:$REDIS_URL#$STREAM" drop
run sockgate-nats "$SOCKGATE_URL" "nats:$NATS_URL#$SUBJECT" drop
run sockgate-amqp "$SOCKGATE_URL" "amqp:$AMQP_URL#$QUEUE" drop
run sockgate-postgres "$SOCKGATE_URL" "postgres:$PG_URL#$TABLE" drop
run peer-api "$PEER_URL" api
run peer-redis-emitter "$PEER_URL" "command:REDIS_URL=$REDIS_URL $(command -v node) $ROOT/bench/peer-node/emit.mjs"

mkdir -p "$OUT"
RUNS=()
for kind in max paced; do
  for name in sockgate-api sockgate-redis sockgate-nats sockgate-amqp sockgate-postgres peer-api peer-redis-emitter; do
    RUNS+=(--run "$kind-$name=$WORK/$kind-$name")
  done
done
"$BENCH" compare "${RUNS[@]}" \
  --mode "$MODE" --date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --note "queue: $MEMBERS members of one user; max: $MAX_K messages, 16 senders; paced: $PACED_K messages at $RATE/s" \
  --note "sockgate $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo '+dirty') ($PROFILE build); peer: socket.io 4 with @socket.io/redis-adapter, $(node --version); brokers: the machine's NATS, RabbitMQ, PostgreSQL, a private redis-server; all share the machine's $(nproc) cores" \
  --out "$OUT/queues.json" >"$WORK/compare.txt"

echo
node --input-type=module - "$OUT/queues.json" <<'JS'
// One line per producer: the max run's rate, the paced run's latency.
import { readFileSync } from "node:fs";
const c = JSON.parse(readFileSync(process.argv[2], "utf8"));
const names = c.servers;
const at = (key, run) => {
  const row = c.rows.find((r) => r.key === key);
  const i = names.indexOf(run);
  return row && i >= 0 ? row.values[i] : null;
};
const f = (v, d) => (v == null ? "n/a" : v.toFixed(d));
console.log("producer".padEnd(22), "msgs/s (max)".padStart(13), "p50 ms".padStart(8), "p99 ms".padStart(8), "(paced)");
for (const n of ["sockgate-api", "sockgate-redis", "sockgate-nats", "sockgate-amqp", "sockgate-postgres", "peer-api", "peer-redis-emitter"]) {
  console.log(
    n.padEnd(22),
    f(at("queue.rate", "max-" + n), 0).padStart(13),
    f(at("queue.latency.p50", "paced-" + n), 2).padStart(8),
    f(at("queue.latency.p99", "paced-" + n), 2).padStart(8),
  );
}
JS
