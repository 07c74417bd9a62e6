// The recovery step of bench/sizing.sh: what a connection-state recovery
// costs the server (and Redis, in a cluster), with the official client.
//
//   node bench/sizing-recovery.mjs --url URL --pid PID --secret JWT_SECRET
//     --api-key KEY --json FILE [--redis-port PORT] [--clients 2000]
//     [--before 3] [--during 5] [--room sizing:r] [--clk-tck 100]
//     [--settle 2] [--timeout 120] [--expect-fresh]
//
// --clients sockets of socket.io-client (WebSocket only, reconnection on
// with the client's default delays), one user each (sub "r<i>", token
// capability rooms ["sizing:*"]), each joins --room. --before messages are
// published to the room (`POST /api/publish`) and reach everyone. Then,
// after --settle seconds, snapshot A; every client's transport is dropped
// at once (`socket.io.engine.close()`, as on a network failure: no Socket.IO
// disconnect, so the server parks the session); --during messages are
// published right after, while they are away; the clients reconnect by
// themselves and recover (`socket.recovered`), getting what they missed.
// Once every client is back and has every message, --settle seconds more,
// snapshot B. B − A is the cost of the drops, reconnections, recoveries and
// replays (and of the --during publishes, a few messages). A window of the
// same length before A, with nothing happening, gives the idle cost.
//
// With --expect-fresh (a server with SOCKGATE_RECOVERY_WINDOW=0) nothing is
// recovered: each client gets a fresh session and joins the room again, as
// an app does; the messages sent during the drop are lost to it.
//
// Finally one more message checks that every client is in the room again.
// A snapshot: the server's CPU (utime + stime of /proc/PID/stat) and
// Redis's used_cpu_user + used_cpu_sys and calls per command (INFO all,
// through redis-cli; INFO and CONFIG left out).
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";

// socket.io-client and jsonwebtoken as the end-to-end tests install them.
const require = createRequire(new URL("../tests/e2e/package.json", import.meta.url));
const { io } = require("socket.io-client");
const jwt = require("jsonwebtoken");

const { values: opt } = parseArgs({
  options: {
    url: { type: "string" },
    pid: { type: "string" },
    secret: { type: "string" },
    "api-key": { type: "string" },
    json: { type: "string" },
    "redis-port": { type: "string" },
    clients: { type: "string", default: "2000" },
    before: { type: "string", default: "3" },
    during: { type: "string", default: "5" },
    room: { type: "string", default: "sizing:r" },
    "clk-tck": { type: "string", default: "100" },
    settle: { type: "string", default: "2" },
    timeout: { type: "string", default: "120" },
    "expect-fresh": { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
});
if (opt.help) {
  console.log(readFileSync(new URL(import.meta.url), "utf8").split("\nimport ")[0].replace(/^\/\/ ?/gm, ""));
  process.exit(0);
}
for (const required of ["url", "pid", "secret", "api-key", "json"]) {
  if (!opt[required]) throw new Error(`--${required} is required`);
}
const N = Number(opt.clients);
const BEFORE = Number(opt.before);
const DURING = Number(opt.during);
const ROOM = opt.room;
const PID = Number(opt.pid);
const CLK_TCK = Number(opt["clk-tck"]);
const FRESH = opt["expect-fresh"];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.error("    [recovery]", ...a);
const round = (x, d = 2) => (x === null ? null : Math.round(x * 10 ** d) / 10 ** d);

// --- snapshots -----------------------------------------------------------------

function cpuMs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK; // utime, stime
}

function redisInfo() {
  if (!opt["redis-port"]) return null;
  const text = execFileSync("redis-cli", ["-h", "127.0.0.1", "-p", opt["redis-port"], "INFO", "all"], { encoding: "utf8" });
  const field = (name) => Number(text.match(new RegExp(`^${name}:([0-9.]+)`, "m"))[1]);
  const calls = {};
  for (const [, name, n] of text.matchAll(/^cmdstat_([^:]+):calls=([0-9]+)/gm)) {
    if (name !== "info" && name !== "config") calls[name] = Number(n);
  }
  return { cpuMs: (field("used_cpu_user") + field("used_cpu_sys")) * 1000, usedMemory: field("used_memory"), calls };
}

const snapshot = () => ({ at: performance.now(), cpuMs: cpuMs(PID), redis: redisInfo() });

/** What happened between two snapshots, per `n` operations (as bench/sizing.sh's `delta`). */
function delta(a, b, n) {
  const d = {
    seconds: round((b.at - a.at) / 1000),
    ops: n,
    server_cpu_ms: round(b.cpuMs - a.cpuMs, 1),
    server_cpu_us_per_op: n ? round(((b.cpuMs - a.cpuMs) * 1000) / n) : null,
    redis: null,
  };
  if (a.redis) {
    const calls = Object.fromEntries(
      Object.entries(b.redis.calls)
        .map(([k, v]) => [k, v - (a.redis.calls[k] ?? 0)])
        .filter(([, v]) => v > 0)
        .sort((x, y) => y[1] - x[1]),
    );
    const commands = Object.values(calls).reduce((s, x) => s + x, 0);
    d.redis = {
      cpu_ms: round(b.redis.cpuMs - a.redis.cpuMs, 1),
      cpu_us_per_op: n ? round(((b.redis.cpuMs - a.redis.cpuMs) * 1000) / n) : null,
      commands,
      commands_per_op: n ? round(commands / n, 3) : null,
      calls,
      calls_per_op: n ? Object.fromEntries(Object.entries(calls).map(([k, v]) => [k, round(v / n, 3)])) : null,
      used_memory_bytes: b.redis.usedMemory - a.redis.usedMemory,
    };
  }
  return d;
}

// --- clients ---------------------------------------------------------------------

const got = Array.from({ length: N }, () => []);
const connects = new Array(N).fill(0);
const recoveredFlags = new Array(N).fill(null);
const sockets = [];
let onChange = () => {};
let joinErrors = 0;
let connectErrors = 0;
const text = "the release is ready for review after lunch, alice said to bob".repeat(3);

function token(i) {
  return jwt.sign({ sub: `r${i}`, rooms: ["sizing:*"], exp: Math.floor(Date.now() / 1000) + 3600 }, opt.secret, {
    algorithm: "HS256",
  });
}

async function join(socket) {
  const answer = await socket.timeout(30000).emitWithAck("room:join", { room: ROOM }).catch((e) => ({ ok: false, e }));
  if (!answer.ok) joinErrors++;
}

function connect(i) {
  const socket = io(opt.url, { transports: ["websocket"], auth: { token: token(i) }, forceNew: true, timeout: 30000 });
  sockets[i] = socket;
  socket.on("news", (data) => {
    got[i].push(data.n);
    onChange();
  });
  socket.on("connect_error", () => connectErrors++);
  return new Promise((resolve) => {
    socket.on("connect", async () => {
      connects[i]++;
      if (connects[i] === 1) {
        await join(socket);
        resolve();
      } else {
        recoveredFlags[i] = socket.recovered;
        // A fresh session is in no room but its user's: the app joins again.
        if (!socket.recovered) await join(socket);
      }
      onChange();
    });
  });
}

async function connectAll() {
  let next = 0;
  const worker = async () => {
    while (next < N) await connect(next++);
  };
  await Promise.all(Array.from({ length: Math.min(100, N) }, worker));
}

async function publish(n) {
  const res = await fetch(new URL("/api/publish", opt.url), {
    method: "POST",
    headers: { authorization: `Bearer ${opt["api-key"]}`, "content-type": "application/json" },
    body: JSON.stringify({ room: ROOM, event: "news", data: { n, text } }),
  });
  if (res.status !== 200) throw new Error(`publish ${n}: HTTP ${res.status} ${await res.text()}`);
}

/** Resolves true once `done()` holds, false after `ms`. */
function until(done, ms) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    const check = () => {
      if (done()) {
        clearTimeout(timer);
        resolve(true);
      }
    };
    onChange = check;
    check();
  });
}

// --- the measurement ---------------------------------------------------------

const settle = Number(opt.settle) * 1000;
const timeout = Number(opt.timeout) * 1000;
const began = performance.now();
await connectAll();
const connectS = (performance.now() - began) / 1000;
log(`${N} clients connected and joined ${ROOM} in ${connectS.toFixed(1)} s (${joinErrors} join errors)`);

for (let n = 1; n <= BEFORE; n++) {
  await publish(n);
  if (!(await until(() => got.every((g) => g.length >= n), 30000))) log(`message ${n} did not reach everyone`);
}
await sleep(settle);
const idleStart = snapshot();
await sleep(settle);
const a = snapshot();

// Every transport drops at once; messages go out while they are away.
const dropAt = performance.now();
for (const s of sockets) s.io.engine.close();
for (let n = BEFORE + 1; n <= BEFORE + DURING; n++) await publish(n);
const expected = FRESH ? BEFORE : BEFORE + DURING;
const allBack = await until(
  () => connects.every((c) => c >= 2) && (FRESH || got.every((g) => g.length >= expected)),
  timeout,
);
const backS = (performance.now() - dropAt) / 1000;
await sleep(settle);
const b = snapshot();
if (!allBack) log(`timeout: ${connects.filter((c) => c >= 2).length} of ${N} back after ${opt.timeout} s`);

// Every client in the room again: one more message reaches all.
const last = BEFORE + DURING + 1;
await publish(last);
await until(() => got.every((g) => g.includes(last)), 10000);

const reconnected = connects.filter((c) => c >= 2).length;
const recovered = recoveredFlags.filter((r) => r === true).length;
const wanted = FRESH
  ? [...Array.from({ length: BEFORE }, (_, k) => k + 1), last]
  : Array.from({ length: last }, (_, k) => k + 1);
let duplicates = 0;
let outOfOrder = 0;
let complete = 0;
for (const g of got) {
  duplicates += g.length - new Set(g).size;
  if (g.some((x, k) => k > 0 && x <= g[k - 1])) outOfOrder++;
  if (g.length === wanted.length && g.every((x, k) => x === wanted[k])) complete++;
}
const report = {
  clients: N,
  room: ROOM,
  expect_fresh: FRESH,
  before: BEFORE,
  during: DURING,
  expected_messages: wanted.length,
  connect_s: round(connectS),
  join_errors: joinErrors,
  connect_errors: connectErrors,
  reconnected,
  recovered,
  fresh: recoveredFlags.filter((r) => r === false).length,
  complete_clients: complete,
  duplicates,
  out_of_order: outOfOrder,
  back_s: round(backS),
  all_back: allBack,
  load1: round(loadavg()[0]),
  idle: delta(idleStart, a, 0),
  drop: delta(a, b, reconnected),
};
writeFileSync(opt.json, JSON.stringify(report, null, 2) + "\n");
log(
  `${reconnected}/${N} back in ${report.back_s} s, ${recovered} recovered, ${complete} complete; ` +
    `server ${report.drop.server_cpu_us_per_op} µs per reconnect` +
    (report.drop.redis ? `; redis ${report.drop.redis.commands_per_op} commands, ${report.drop.redis.cpu_us_per_op} µs` : ""),
);
for (const s of sockets) s.close();
process.exit(allBack && complete === N ? 0 : 1);
