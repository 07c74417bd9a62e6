// The client half of bench/rooms-per-node.sh: connects one socket per room
// to the nodes of a running sockgate cluster, publishes room messages through
// the nodes' admin APIs, waits for every delivery, and writes what each node
// and Redis spent on it as JSON.
//
//   node bench/rooms-per-node.mjs --node URL=PID [--node URL=PID ...]
//     --redis-port PORT --secret JWT_SECRET --api-key KEY --json FILE
//     [--rooms 4000] [--messages 40000] [--concurrency 32] [--timeout 180]
//     [--settle 2] [--idle 3] [--rate-per-node 0] [--clk-tck 100] [--label TEXT]
//     [--front URL=PID]
//
// Client i (token sub "u<i>") connects to node i % N with the official
// socket.io-client over WebSocket only; its room is its own user room
// (user:u<i>), so every room has its members on one node. Message k goes to
// the room of user u<k % rooms>, through the API of node (k + floor(k / N)) % N:
// balanced over the nodes, and (N - 1) / N of the messages are published on
// a node other than the one holding their room (publishing message k on node
// k % N would put it on its room's own node every time when N divides rooms).
// With --rate-per-node R, message k is sent no earlier than k / (R * N)
// seconds after the first: every node then takes R publishes and delivers R
// messages a second whatever N is (a node's CPU per message depends on its
// load: the busier, the more each wake-up and system call carries). Without
// it (0), publishing is as fast as the concurrency allows.
//
// With --front URL=PID, every message is published through that node's API
// instead (a node of the same cluster that holds no client): the --node
// nodes only hold clients and deliver. The per-node figures are theirs
// (N counts them only, so --rate-per-node R still gives each of them R
// deliveries a second); the front node's CPU is reported apart, under
// "front".
//
// Timeline: all clients connected; --settle seconds; snapshot A; --idle
// seconds with nothing sent; snapshot B; publish and wait until every message
// is delivered (or --timeout); snapshot C. The measurement is C - B; B - A is
// each process's idle cost (heartbeats, figures, pings), reported beside it.
// A snapshot is each node's CPU time (utime + stime of /proc/PID/stat, all
// threads) and Redis's `INFO` used_cpu_user + used_cpu_sys and
// total_commands_processed (through redis-cli).
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import { createRequire } from "node:module";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";

// socket.io-client and jsonwebtoken as the end-to-end tests install them.
const require = createRequire(new URL("../tests/e2e/package.json", import.meta.url));
const { io } = require("socket.io-client");
const jwt = require("jsonwebtoken");

const { values: opt } = parseArgs({
  options: {
    node: { type: "string", multiple: true },
    "redis-port": { type: "string" },
    secret: { type: "string" },
    "api-key": { type: "string" },
    json: { type: "string" },
    rooms: { type: "string", default: "4000" },
    messages: { type: "string", default: "40000" },
    concurrency: { type: "string", default: "32" },
    timeout: { type: "string", default: "180" },
    settle: { type: "string", default: "2" },
    idle: { type: "string", default: "3" },
    "rate-per-node": { type: "string", default: "0" },
    "clk-tck": { type: "string", default: "100" },
    label: { type: "string", default: "" },
    front: { type: "string" },
  },
});
for (const required of ["node", "redis-port", "secret", "api-key", "json"]) {
  if (!opt[required]) throw new Error(`--${required} is required`);
}
const parseSpec = (spec) => {
  const at = spec.lastIndexOf("=");
  return { url: spec.slice(0, at), pid: Number(spec.slice(at + 1)) };
};
const nodes = opt.node.map(parseSpec);
// The node every publish goes to, holding no client; null: the holders'
// own APIs take the publishes.
const front = opt.front ? parseSpec(opt.front) : null;
const N = nodes.length;
const ROOMS = Number(opt.rooms);
const M = Number(opt.messages);
const CONCURRENCY = Number(opt.concurrency);
const TIMEOUT_MS = Number(opt.timeout) * 1000;
const CLK_TCK = Number(opt["clk-tck"]);
const RATE = Number(opt["rate-per-node"]) * N; // messages a second, 0: unpaced
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.error(`    [${opt.label}]`, ...a);

/** CPU time of a process, all its threads, in ms. */
function cpuMs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces), from field 3 on.
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK; // utime, stime
}

const redisCli = (...args) =>
  execFileSync("redis-cli", ["-h", "127.0.0.1", "-p", opt["redis-port"], ...args], { encoding: "utf8" });

function redisInfo() {
  const text = redisCli("INFO", "all");
  const field = (name) => Number(text.match(new RegExp(`^${name}:([0-9.]+)`, "m"))[1]);
  // Calls per command (commands run by scripts count too).
  const calls = {};
  for (const [, name, n] of text.matchAll(/^cmdstat_([^:]+):calls=([0-9]+)/gm)) calls[name] = Number(n);
  return {
    cpuMs: (field("used_cpu_user") + field("used_cpu_sys")) * 1000,
    commands: field("total_commands_processed"),
    calls,
  };
}

/** The machine's CPU time, all cores, in ms: busy (user, nice, system, irq,
 *  softirq, steal) and total (with idle and iowait), from /proc/stat. */
function machineMs() {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f;
  const ms = (x) => (x * 1000) / CLK_TCK;
  return { busy: ms(user + nice + system + irq + softirq + steal), total: ms(user + nice + system + idle + iowait + irq + softirq + steal) };
}

function snapshot() {
  return {
    at: performance.now(),
    machine: machineMs(),
    client: ((u) => (u.user + u.system) / 1000)(process.cpuUsage()),
    nodes: nodes.map((n) => cpuMs(n.pid)),
    front: front ? cpuMs(front.pid) : null,
    redis: redisInfo(),
  };
}

// --- clients ---------------------------------------------------------------

const nodeOf = (i) => i % N;
const received = new Array(ROOMS).fill(0);
const receivedPerNode = new Array(N).fill(0);
let receivedTotal = 0;
let lastDelivery = 0;
let onDelivery = () => {};
let disconnects = 0;
const sockets = [];

function connect(i) {
  const token = jwt.sign({ sub: `u${i}`, exp: Math.floor(Date.now() / 1000) + 3600 }, opt.secret, {
    algorithm: "HS256",
  });
  const socket = io(nodes[nodeOf(i)].url, {
    transports: ["websocket"],
    auth: { token },
    forceNew: true,
    reconnection: false,
    timeout: 30000,
  });
  sockets[i] = socket;
  socket.on("tick", () => {
    received[i]++;
    receivedPerNode[nodeOf(i)]++;
    receivedTotal++;
    lastDelivery = performance.now();
    onDelivery();
  });
  return new Promise((resolve, reject) => {
    socket.once("connect", () => {
      socket.on("disconnect", () => disconnects++);
      resolve();
    });
    socket.once("connect_error", (err) => reject(new Error(`client u${i}: ${err.message}`)));
  });
}

async function connectAll() {
  let next = 0;
  const worker = async () => {
    while (next < ROOMS) await connect(next++);
  };
  await Promise.all(Array.from({ length: Math.min(100, ROOMS) }, worker));
}

// --- publishing ------------------------------------------------------------

// The APIs publishes go to: the holders', or the front node's alone (index
// N in `apis`, apiNodeOf then always N).
const apis = front ? [...nodes, front] : nodes;
const agents = apis.map(() => new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY }));
const apiNodeOf = front ? () => N : (k) => (k + Math.floor(k / N)) % N;
const roomOf = (k) => k % ROOMS;

function publish(k) {
  const n = apiNodeOf(k);
  const body = JSON.stringify({ user: `u${roomOf(k)}`, event: "tick", data: { k, text: "hello" } });
  const url = new URL("/api/publish", apis[n].url);
  return new Promise((resolve) => {
    const req = http.request(
      url,
      {
        method: "POST",
        agent: agents[n],
        headers: {
          authorization: `Bearer ${opt["api-key"]}`,
          "content-type": "application/json",
          "content-length": Buffer.byteLength(body),
        },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d) => (text += d));
        res.on("end", () => resolve(res.statusCode === 200 ? null : `${res.statusCode} ${text.slice(0, 200)}`));
      },
    );
    req.on("error", (err) => resolve(err.message));
    req.end(body);
  });
}

async function publishAll() {
  const errors = [];
  const start = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < M) {
      const k = next++;
      if (RATE > 0) {
        const wait = start + (k * 1000) / RATE - performance.now();
        if (wait >= 1) await sleep(wait);
      }
      const err = await publish(k);
      if (err) errors.push(err);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, M) }, worker));
  return errors;
}

function delivered(deadline) {
  return new Promise((resolve) => {
    const done = () => {
      if (receivedTotal >= M) resolve(true);
    };
    onDelivery = done;
    done();
    setTimeout(() => resolve(false), Math.max(0, deadline - performance.now()));
  });
}

// --- the measurement -------------------------------------------------------

const began = performance.now();
await connectAll();
const connectS = (performance.now() - began) / 1000;
log(`${ROOMS} clients connected to ${N} node(s) in ${connectS.toFixed(1)} s`);
await sleep(Number(opt.settle) * 1000);
const a = snapshot();
// The channels the nodes listen on (one per room with per-room channels).
const channels = redisCli("PUBSUB", "CHANNELS").split("\n").filter(Boolean);
await sleep(Number(opt.idle) * 1000);
const b = snapshot();
const publishErrors = await publishAll();
const publishedAt = performance.now();
const complete = await delivered(b.at + TIMEOUT_MS);
const c = snapshot();
if (!complete) log(`timeout: ${receivedTotal} of ${M} messages delivered after ${opt.timeout} s`);
if (publishErrors.length) log(`${publishErrors.length} publishes failed, first: ${publishErrors[0]}`);

const expectedPerNode = new Array(N).fill(0);
const publishedPerNode = new Array(N).fill(0);
let crossing = 0;
for (let k = 0; k < M; k++) {
  const home = nodeOf(roomOf(k));
  expectedPerNode[home]++;
  if (apiNodeOf(k) < N) publishedPerNode[apiNodeOf(k)]++;
  if (apiNodeOf(k) !== home) crossing++;
}
let duplicates = 0;
for (let i = 0; i < ROOMS; i++) {
  const expected = Math.floor(M / ROOMS) + (i < M % ROOMS ? 1 : 0);
  if (received[i] > expected) duplicates += received[i] - expected;
}

const seconds = (c.at - b.at) / 1000;
const idleS = (b.at - a.at) / 1000;
const round = (x, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
const perNode = nodes.map((n, j) => {
  const cpu = c.nodes[j] - b.nodes[j];
  const idleMsPerS = idleS > 0 ? (b.nodes[j] - a.nodes[j]) / idleS : null;
  return {
    url: n.url,
    pid: n.pid,
    delivered: receivedPerNode[j],
    expected: expectedPerNode[j],
    published: publishedPerNode[j],
    cpuMs: round(cpu, 1),
    cpuUsPerDelivered: receivedPerNode[j] ? round((cpu * 1000) / receivedPerNode[j]) : null,
    idleCpuMsPerS: idleMsPerS === null ? null : round(idleMsPerS),
  };
});
const usPerDelivered = perNode.map((p) => p.cpuUsPerDelivered).filter((x) => x !== null);
const redisCpu = c.redis.cpuMs - b.redis.cpuMs;
const redisCommands = c.redis.commands - b.redis.commands;
const report = {
  label: opt.label,
  nodes: N,
  rooms: ROOMS,
  messages: M,
  concurrency: CONCURRENCY,
  ratePerNode: Number(opt["rate-per-node"]),
  crossing,
  complete,
  delivered: receivedTotal,
  duplicates,
  disconnects,
  publishErrors: publishErrors.length,
  firstPublishError: publishErrors[0] ?? null,
  connectSeconds: round(connectS),
  publishSeconds: round((publishedAt - b.at) / 1000),
  lastDeliverySeconds: lastDelivery ? round((lastDelivery - b.at) / 1000) : null,
  seconds: round(seconds),
  messagesPerSecond: round(M / seconds, 0),
  idleSeconds: round(idleS),
  perNode,
  mean: {
    cpuMs: round(perNode.reduce((s, p) => s + p.cpuMs, 0) / N, 1),
    cpuUsPerDelivered: round(usPerDelivered.reduce((s, x) => s + x, 0) / usPerDelivered.length),
    minCpuUsPerDelivered: Math.min(...usPerDelivered),
    maxCpuUsPerDelivered: Math.max(...usPerDelivered),
    delivered: round(receivedTotal / N, 1),
  },
  totalNodeCpuUsPerMessage: round((perNode.reduce((s, p) => s + p.cpuMs, 0) * 1000) / M),
  // The front node (FRONT=1): every publish, no client; not in perNode,
  // mean or totalNodeCpuUsPerMessage.
  front: front
    ? {
        url: front.url,
        pid: front.pid,
        published: M,
        cpuMs: round(c.front - b.front, 1),
        cpuUsPerMessage: round(((c.front - b.front) * 1000) / M),
        idleCpuMsPerS: idleS > 0 ? round((b.front - a.front) / idleS) : null,
      }
    : null,
  // The whole machine during the measurement: how busy its cores were, and
  // how much of that was none of the measured processes (the nodes, the
  // front, Redis, this client): other load on a shared machine.
  machine: (() => {
    const busy = c.machine.busy - b.machine.busy;
    const total = c.machine.total - b.machine.total;
    const ours =
      perNode.reduce((s, p) => s + p.cpuMs, 0) + (front ? c.front - b.front : 0) + redisCpu + (c.client - b.client);
    return {
      busyPercent: total > 0 ? round((busy * 100) / total, 1) : null,
      otherCpuMsPerS: seconds > 0 ? round(Math.max(0, busy - ours) / seconds, 1) : null,
      load1: round(loadavg()[0]),
    };
  })(),
  redis: {
    cpuMs: round(redisCpu, 1),
    cpuUsPerMessage: round((redisCpu * 1000) / M),
    commands: redisCommands,
    commandsPerMessage: round(redisCommands / M, 3),
    // The commands of the measurement, most called first, per message.
    callsPerMessage: Object.fromEntries(
      Object.entries(c.redis.calls)
        .map(([name, n]) => [name, round((n - (b.redis.calls[name] ?? 0)) / M, 3)])
        .filter(([, x]) => x > 0)
        .sort((x, y) => y[1] - x[1]),
    ),
    channels: channels.length,
    channelSamples: channels.sort().slice(0, 5),
    idleCpuMsPerS: idleS > 0 ? round((b.redis.cpuMs - a.redis.cpuMs) / idleS) : null,
    idleCommandsPerS: idleS > 0 ? round((b.redis.commands - a.redis.commands) / idleS) : null,
  },
};
writeFileSync(opt.json, JSON.stringify(report, null, 2) + "\n");
log(
  `${receivedTotal}/${M} delivered in ${report.seconds} s; per node µs/delivered ` +
    perNode.map((p) => p.cpuUsPerDelivered).join(", ") +
    (front ? `; front ${report.front.cpuUsPerMessage} µs/msg` : "") +
    `; redis ${report.redis.cpuUsPerMessage} µs/msg, ${report.redis.commandsPerMessage} cmd/msg`,
);

for (const s of sockets) s?.close();
for (const agent of agents) agent.destroy();
process.exit(complete && !publishErrors.length ? 0 : 1);
