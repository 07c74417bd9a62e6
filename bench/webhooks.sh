#!/usr/bin/env bash
# Counts the lifecycle webhook events of a rolling restart of two nodes,
# next to what a naive connect/disconnect hook would send:
#
#   bench/webhooks.sh [--quick|--full]     2,000 clients (quick) or 10,000
#
# Two sockgate nodes on a private redis-server, each POSTing its lifecycle
# events to bench/webhook-receiver (which checks every signature and counts
# requests and events by type). The clients alternate between the nodes
# and reconnect like socket.io-client (sockgate-bench reconnect) while A is
# restarted (SIGTERM, exit, start again, /readyz 200), then B. A naive hook
# (one call per connect and per disconnect, the usual `io.on("connection")`
# and `socket.on("disconnect")` POST) makes one call per session.started
# and session.ended; the presence events an app keys on (user.online,
# user.offline) are what sockgate's delay keeps from flapping. Writes
# bench/results/webhooks.json.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

MODE=quick
case "${1:-}" in
  "" | --quick) MODE=quick ;;
  --full) MODE=full ;;
  -h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: $0 [--quick|--full]" >&2; exit 2 ;;
esac

. bench/lib.sh
raise_nofile
if [ "$MODE" = quick ]; then N=2000; TIMEOUT=120; else N=10000; TIMEOUT=300; fi
CAP=$((NOFILE - 200))
[ "$N" -gt "$CAP" ] && N=$CAP

build_release
need node nodejs
export JWT_SECRET="$SECRET"
WEBHOOK_SECRET="sockgate-bench-webhook-secret-0123456789"
start_redis

port=$("$BENCH" free-port)
launch receiver env PORT="$port" SECRET="$WEBHOOK_SECRET" "$(command -v node)" "$ROOT/bench/webhook-receiver/server.mjs"
RECEIVER="http://127.0.0.1:$port"
"$BENCH" wait-ready --url "$RECEIVER" --timeout 10

hooks=(SOCKGATE_WEBHOOK_URL="$RECEIVER/hooks" SOCKGATE_WEBHOOK_SECRET="$WEBHOOK_SECRET")
start_sockgate a SOCKGATE_REDIS_URL="$REDIS_URL" "${hooks[@]}"
A=$URL
start_sockgate b SOCKGATE_REDIS_URL="$REDIS_URL" "${hooks[@]}"
B=$URL
wait_cluster "$A" "$B"
restart_script a "$A" --readyz
restart_script b "$B" --readyz

mkdir -p "$WORK/run"
rc=0
"$BENCH" reconnect --url "$A" --node "$B" --connections "$N" --window 30 --timeout "$TIMEOUT" \
  --concurrency 200 --json "$WORK/run/reconnect.json" \
  --restart-cmd "bash $(printf %q "$WORK/a.restart") && bash $(printf %q "$WORK/b.restart")" || rc=$?
[ "$rc" = 0 ] || echo "    (reconnect: exit $rc)"
# The offline delay (5 s) and the last batches.
sleep 8
http_get "$RECEIVER" /counts | sed -n '/^{/,$p' >"$WORK/counts.json"

mkdir -p "$OUT"
node --input-type=module - "$WORK/counts.json" "$WORK/run/reconnect.json" "$OUT/webhooks.json" "$N" "$MODE" <<'JS'
import { readFileSync, writeFileSync } from "node:fs";
const [countsFile, reconnectFile, out, n, mode] = process.argv.slice(2);
const counts = JSON.parse(readFileSync(countsFile, "utf8"));
const reconnect = JSON.parse(readFileSync(reconnectFile, "utf8"));
const t = counts.byType;
const naive = (t["session.started"] ?? 0) + (t["session.ended"] ?? 0);
const result = { mode, clients: Number(n), date: new Date().toISOString(), counts, naiveHookCalls: naive, reconnect: reconnect.metrics ?? reconnect };
writeFileSync(out, JSON.stringify(result, null, 2));
console.log(`clients                        ${n}`);
console.log(`naive connect/disconnect calls ${naive}`);
console.log(`webhook requests (batches)     ${counts.requests}`);
console.log(`events sent                    ${counts.events}`);
for (const [type, k] of Object.entries(t).sort()) console.log(`  ${type.padEnd(28)} ${k}`);
console.log(`bad signatures                 ${counts.badSignatures}`);
JS
