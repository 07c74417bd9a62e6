#!/usr/bin/env node
// The floods of the security review of b8a86f7 (issue [1/9]) against one
// sockgate binary, with a fixed, modest number of connections from loopback,
// and what they cost the server: its RSS (VmRSS, /proc/<pid>/status) before
// the flood, at its peak (VmHWM of a server started for that flood alone),
// and 30 s after the flood's connections are gone (memory given back or not).
// Prints one table row per flood.
//
//   bench/floods.sh target/release/sockgate                 # all floods
//   node bench/floods.mjs --bin target/release/sockgate --floods attachments,slow [--settle 30]
//
// The floods:
// - attachments: before CONNECT, a BINARY_EVENT announcing 10 attachments
//   (`4510-[...]`) then 9 binary messages, each 130,000 zero bytes deflated to
//   about 150, over permessage-deflate; the connection kept open.
// - fragments: one compressed first fragment (FIN=0, RSV1) of a 130,000-byte
//   text message, then nothing.
// - idle: plain TCP connections that never send a request (slowloris).
// - history: authenticated publishers, each alone in its own room, send
//   compressible room publishes over deflate until the recovery history
//   (10,000 messages by default) is full.
// - slow: readers (no compression, as many clients) join one room and stop
//   reading (their sockets paused) while a publisher sends compressible
//   publishes over deflate.
// Each flood gets a fresh server. Every flood socket is written by hand on
// node:net (our own HTTP upgrade and masked frames) or opened with `ws`; the
// Socket.IO clients of history and slow speak the protocol over `ws` directly,
// so what goes on the wire is exactly what is counted.
//
// The server runs with its defaults except: the per-address handshake budget
// (SOCKGATE_HANDSHAKE_RATE/BURST) and the cap on pending handshakes
// (SOCKGATE_MAX_PENDING_HANDSHAKES) raised to 100,000, so a flood from one
// address is not merely refused at the door; SOCKGATE_DRAIN_WINDOW=0 and a
// short shutdown timeout, to stop quickly. Any SOCKGATE_* variable set in this
// script's environment is passed on and wins (to raise a cap a newer binary
// adds, say), then any `--env NAME=VALUE` (an allocator's setting, say); the
// table's header line lists what was set.
//
// Only ever connects to 127.0.0.x. Needs `ws` and `jsonwebtoken`, found in
// tests/e2e/node_modules (after `npm ci` there).
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import { createWriteStream, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import zlib from "node:zlib";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(join(root, "tests", "e2e", "package.json"));
const WebSocket = require("ws");
const jwt = require("jsonwebtoken");

const SECRET = "sockgate-floods-secret-0123456789abcdef";
const FLOODS = ["attachments", "fragments", "idle", "history", "slow"];
// Seconds the flood's connections are held once they are all in, while RSS
// is sampled. The review's attacks before CONNECT die at the 10 s handshake
// timeout, so theirs is short; idle connections get long enough for a
// header-read timeout to show.
const HOLD = { attachments: 6, fragments: 6, idle: 20, history: 5, slow: 10 };

const options = parseArgs(process.argv.slice(2));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const children = new Set();
process.on("exit", () => children.forEach((c) => c.kill("SIGKILL")));
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => process.exit(130));

function parseArgs(argv) {
  const o = {
    bin: process.env.SOCKGATE_BIN ?? join(root, "target", "release", "sockgate"),
    floods: FLOODS,
    attachments: 1000,
    fragments: 1000,
    idle: 2000,
    history: 10000,
    publishers: 20,
    readers: 100,
    publishes: 200,
    publishBytes: 65000,
    settle: 30,
    sources: 1,
    concurrency: 100,
    hold: null,
    json: null,
    serverLog: null,
    env: [],
  };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, "").replace(/-(\w)/g, (_, c) => c.toUpperCase());
    const value = argv[i + 1];
    if (!(key in o) || value === undefined) usage(`unknown or incomplete option ${argv[i]}`);
    if (key === "floods") o.floods = value.split(",");
    else if (key === "env") {
      if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(value)) usage(`--env takes NAME=VALUE, not ${value}`);
      o.env.push(value);
    }
    else if (["bin", "json", "serverLog"].includes(key)) o[key] = value;
    else o[key] = Number(value);
  }
  for (const f of o.floods) if (!FLOODS.includes(f)) usage(`unknown flood ${f}`);
  if (!(o.sources >= 1 && o.sources <= 250)) usage("--sources is 1 to 250 (127.0.0.1 ... 127.0.0.N)");
  o.bin = resolve(o.bin);
  return o;
}

function usage(message) {
  console.error(`${message}
usage: node bench/floods.mjs --bin PATH [--floods ${FLOODS.join(",")}]
  [--attachments 1000] [--fragments 1000] [--idle 2000] [--history 10000] [--publishers 20]
  [--readers 100] [--publishes 200] [--publish-bytes 65000] [--settle 30] [--hold S]
  [--sources 1] [--concurrency 100] [--json PATH] [--server-log PATH] [--env NAME=VALUE ...]`);
  process.exit(2);
}

// ---- the server -----------------------------------------------------------

/** The environment every flood's server gets: defaults, raised door limits, then SOCKGATE_* from ours. */
function serverEnv(dataDir) {
  const passed = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith("SOCKGATE_")));
  return {
    PATH: process.env.PATH,
    JWT_SECRET: SECRET,
    SOCKGATE_LISTEN: "127.0.0.1:0",
    SOCKGATE_LOG_FORMAT: "json",
    SOCKGATE_LOG: "info",
    SOCKGATE_DATA_DIR: dataDir,
    SOCKGATE_DRAIN_WINDOW: "0",
    SOCKGATE_SHUTDOWN_TIMEOUT: "2",
    SOCKGATE_HANDSHAKE_RATE: "100000",
    SOCKGATE_HANDSHAKE_BURST: "100000",
    SOCKGATE_MAX_PENDING_HANDSHAKES: "100000",
    ...passed,
    ...Object.fromEntries(options.env.map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)])),
  };
}

/** Starts the binary; resolves { pid, port, stop } once it logs that it listens. */
async function startServer() {
  const dataDir = mkdtempSync(join(tmpdir(), "sockgate-floods-"));
  const child = spawn(options.bin, ["serve"], { env: serverEnv(dataDir), stdio: ["ignore", "ignore", "pipe"] });
  children.add(child);
  const lines = createInterface({ input: child.stderr });
  const tail = [];
  const addr = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sockgate did not start:\n${tail.join("\n")}`)), 15000);
    lines.on("line", (line) => {
      tail.push(line);
      if (tail.length > 20) tail.shift();
      try {
        const entry = JSON.parse(line);
        if (entry.message === "sockgate listening") {
          clearTimeout(timer);
          resolve(entry.addr);
        }
      } catch {}
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`sockgate exited with ${code}:\n${tail.join("\n")}`));
    });
  });
  // From here on its logs are dropped, or appended to --server-log unread:
  // parsing them would cost this process the CPU the flood needs.
  lines.close();
  if (options.serverLog) child.stderr.pipe(createWriteStream(options.serverLog, { flags: "a" }));
  else child.stderr.resume();
  const port = Number(addr.split(":").pop());
  return {
    pid: child.pid,
    port,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 20000);
        await exited;
        clearTimeout(timer);
      }
      children.delete(child);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

// ---- measuring ------------------------------------------------------------

const statusKiB = (pid, field) => Number(readFileSync(`/proc/${pid}/status`, "utf8").match(new RegExp(`${field}:\\s+(\\d+)`))[1]);
const fds = (pid) => readdirSync(`/proc/${pid}/fd`).length;
const mib = (kib) => (kib / 1024).toFixed(1);

/** Samples the server's open descriptors every 100 ms, keeping the highest. */
function fdSampler(pid) {
  const s = { peak: fds(pid) };
  const timer = setInterval(() => {
    try {
      s.peak = Math.max(s.peak, fds(pid));
    } catch {}
  }, 100);
  s.stop = () => clearInterval(timer);
  return s;
}

/** Waits until the server holds no more descriptors than `base` (+2), up to `seconds`; true if it did. */
async function waitFds(pid, base, seconds) {
  for (let i = 0; i < seconds * 10; i++) {
    if (fds(pid) <= base + 2) return true;
    await sleep(100);
  }
  return false;
}

/** Runs `work` (at most `conc` at once) for i in 0..n; resolves the results. */
async function pool(n, conc, work) {
  const out = new Array(n);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      out[i] = await work(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(conc, n) }, worker));
  return out;
}

/** The loopback source address of the i-th connection. */
const source = (i) => `127.0.0.${(i % options.sources) + 1}`;

// ---- raw WebSocket --------------------------------------------------------

/** Deflates as permessage-deflate does (RFC 7692 7.2.1): sync flush, trailing 00 00 ff ff removed. */
function deflate(bytes) {
  const out = zlib.deflateRawSync(bytes, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
  if (!out.subarray(-4).equals(Buffer.from([0, 0, 0xff, 0xff]))) throw new Error("unexpected deflate tail");
  return out.subarray(0, -4);
}

/** A masked client frame. */
function frame({ fin = true, rsv1 = false, opcode, payload }) {
  const mask = crypto.randomBytes(4);
  const len = payload.length;
  const head = len < 126 ? Buffer.alloc(2) : len < 65536 ? Buffer.alloc(4) : Buffer.alloc(10);
  head[0] = (fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode;
  if (len < 126) head[1] = 0x80 | len;
  else if (len < 65536) {
    head[1] = 0x80 | 126;
    head.writeUInt16BE(len, 2);
  } else {
    head[1] = 0x80 | 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] ^= mask[i & 3];
  return Buffer.concat([head, mask, body]);
}

/**
 * Opens a WebSocket on the Engine.IO path by hand, offering permessage-deflate;
 * resolves the socket once the server answered 101 and accepted compression.
 * What the server sends afterwards is read and dropped.
 */
function rawUpgrade(port, i, sockets) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port, localAddress: source(i) });
    sockets.push(socket);
    let head = "";
    const fail = () => resolve(null);
    socket.on("error", fail);
    socket.on("close", fail);
    socket.on("connect", () =>
      socket.write(
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n" +
          `Host: 127.0.0.1:${port}\r\n` +
          "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
          `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString("base64")}\r\n` +
          "Sec-WebSocket-Version: 13\r\n" +
          "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
      ),
    );
    const onData = (chunk) => {
      head += chunk.toString("latin1");
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      socket.off("data", onData);
      socket.on("data", () => {});
      const accepted = head.startsWith("HTTP/1.1 101") && /sec-websocket-extensions:[^\r]*permessage-deflate/i.test(head.slice(0, end));
      if (accepted) resolve(socket);
      else {
        socket.destroy();
        resolve(null);
      }
    };
    socket.on("data", onData);
  });
}

// ---- Socket.IO over ws ----------------------------------------------------

const token = (sub) =>
  jwt.sign({ sub, rooms: ["flood-*"], iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 3600 }, SECRET);

/**
 * An authenticated Socket.IO client on `ws`, speaking Engine.IO v4 / Socket.IO v5
 * itself; resolves once its CONNECT is accepted. `emit(body)` sends
 * `42<id><body>` (body: the event's JSON array) and resolves its ack's argument.
 */
function sioClient(port, user, { deflate, i = 0 }) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`, {
      perMessageDeflate: deflate ? { threshold: 0 } : false,
      localAddress: source(i),
    });
    const acks = new Map();
    let nextId = 0;
    const client = {
      ws,
      sent: () => ws._socket?.bytesWritten ?? 0,
      emit(body) {
        const id = nextId++;
        ws.send(`42${id}${body}`);
        return new Promise((r) => acks.set(id, r));
      },
    };
    const timer = setTimeout(() => reject(new Error(`${user}: no CONNECT answer`)), 15000);
    ws.on("message", (data) => {
      const text = data.toString();
      if (text[0] === "0") ws.send(`40${JSON.stringify({ token: token(user) })}`);
      else if (text === "2") ws.send("3");
      else if (text.startsWith("40")) {
        clearTimeout(timer);
        resolve(client);
      } else if (text.startsWith("44")) reject(new Error(`${user}: ${text}`));
      else if (text.startsWith("43")) {
        const [, id, args] = /^43(\d+)(.*)$/s.exec(text);
        acks.get(Number(id))?.(JSON.parse(args)[0]);
        acks.delete(Number(id));
      }
    });
    ws.on("error", (err) => reject(err));
    ws.on("close", () => {
      reject(new Error(`${user}: closed`));
      for (const r of acks.values()) r({ ok: false, code: "CLOSED" });
    });
  });
}

async function joinRoom(client, room) {
  const answer = await client.emit(JSON.stringify(["room:join", { room }]));
  if (!answer?.ok) throw new Error(`room:join ${room}: ${JSON.stringify(answer)}`);
}

/** `n` publishes of `body`, one at a time; a RATE_LIMITED answer waits and tries again. */
async function publishMany(client, body, n) {
  let ok = 0;
  while (ok < n) {
    const answer = await client.emit(body);
    if (answer?.ok) ok++;
    else if (answer?.code === "RATE_LIMITED") await sleep(250);
    else throw new Error(`room:publish: ${JSON.stringify(answer)}`);
  }
}

/** Compressible text, like a chat log: `bytes` characters of a few words. */
function chatText(bytes) {
  const words = ["the", "release", "is", "ready", "alice", "bob", "noon", "see", "you", "at"];
  const parts = [];
  for (let i = 0, n = 0; n < bytes; i++) {
    const w = words[(i * 7919) % words.length];
    parts.push(w);
    n += w.length + 1;
  }
  return parts.join(" ").slice(0, bytes);
}

// ---- the floods -----------------------------------------------------------
// Each opens its connections and sends its attack; resolves { count, unit,
// sent (bytes the attacker wrote), release() }.

async function attachments(server) {
  const n = options.attachments;
  const placeholders = Array.from({ length: 10 }, (_, num) => ({ _placeholder: true, num }));
  const announce = frame({ opcode: 1, payload: Buffer.from(`4510-${JSON.stringify(["x", ...placeholders])}`) });
  const attachment = deflate(Buffer.alloc(130000));
  const sockets = [];
  await pool(n, options.concurrency, async (i) => {
    const socket = await rawUpgrade(server.port, i, sockets);
    if (!socket) return;
    socket.write(announce);
    // A fresh mask for each of the 9 frames, as a client would.
    for (let k = 0; k < 9; k++) socket.write(frame({ opcode: 2, rsv1: true, payload: attachment }));
  });
  return rawResult(sockets, n);
}

async function fragments(server) {
  const n = options.fragments;
  const first = deflate(Buffer.from(`42["x","${"a".repeat(130000 - 8)}`));
  const sockets = [];
  await pool(n, options.concurrency, async (i) => {
    const socket = await rawUpgrade(server.port, i, sockets);
    if (socket) socket.write(frame({ fin: false, rsv1: true, opcode: 1, payload: first }));
  });
  return rawResult(sockets, n);
}

async function idle(server) {
  const n = options.idle;
  const sockets = [];
  await pool(n, options.concurrency, (i) =>
    new Promise((resolve) => {
      const socket = net.connect({ host: "127.0.0.1", port: server.port, localAddress: source(i) });
      sockets.push(socket);
      socket.on("connect", resolve);
      socket.on("error", resolve);
      socket.on("close", resolve);
      socket.on("data", () => {});
    }),
  );
  return rawResult(sockets, n);
}

function rawResult(sockets, n) {
  return {
    count: n,
    unit: "connection",
    sent: () => sockets.reduce((sum, s) => sum + s.bytesWritten, 0),
    release: () => sockets.forEach((s) => s.destroy()),
  };
}

async function history(server) {
  const n = options.history;
  const p = options.publishers;
  const data = chatText(options.publishBytes);
  const publishers = await pool(p, p, (i) => sioClient(server.port, `flood-pub-${i}`, { deflate: true, i }));
  // Each publisher alone in its room: no member receives, the history keeps
  // every message.
  await Promise.all(publishers.map((c, i) => joinRoom(c, `flood-h-${i}`)));
  await Promise.all(
    publishers.map((c, i) => {
      const body = JSON.stringify(["room:publish", { room: `flood-h-${i}`, data }]);
      return publishMany(c, body, Math.floor(n / p) + (i < n % p ? 1 : 0));
    }),
  );
  return {
    count: n,
    unit: "publish",
    sent: () => publishers.reduce((sum, c) => sum + c.sent(), 0),
    release: () => publishers.forEach((c) => c.ws.terminate()),
  };
}

async function slow(server) {
  const room = "flood-slow";
  const readers = await pool(options.readers, options.concurrency, (i) =>
    sioClient(server.port, `flood-reader-${i}`, { deflate: false, i }),
  );
  await Promise.all(readers.map((c) => joinRoom(c, room)));
  // They stop reading: the kernel's buffers fill, then the server's outboxes.
  readers.forEach((c) => c.ws.pause());
  const publisher = await sioClient(server.port, "flood-slow-pub", { deflate: true });
  await joinRoom(publisher, room);
  await publishMany(publisher, JSON.stringify(["room:publish", { room, data: chatText(options.publishBytes) }]), options.publishes);
  return {
    count: options.readers,
    unit: "reader",
    sent: () => publisher.sent(),
    release: () => [...readers, publisher].forEach((c) => c.ws.terminate()),
  };
}

const RUN = { attachments, fragments, idle, history, slow };

/** One flood against a fresh server: its table row. */
async function measure(name) {
  const server = await startServer();
  let sampler;
  try {
    await sleep(2000);
    const baseFds = fds(server.pid);
    const before = statusKiB(server.pid, "VmRSS");
    sampler = fdSampler(server.pid);
    const started = Date.now();
    const flood = await RUN[name](server);
    const sentSeconds = (Date.now() - started) / 1000;
    await sleep((options.hold ?? HOLD[name]) * 1000);
    const heldAtEnd = fds(server.pid) - baseFds;
    // The server started for this flood alone: its high-water mark is the flood's peak.
    const peak = statusKiB(server.pid, "VmHWM");
    sampler.stop();
    const sent = flood.sent();
    flood.release();
    const gone = await waitFds(server.pid, baseFds, 30);
    await sleep(options.settle * 1000);
    const after = statusKiB(server.pid, "VmRSS");
    return {
      flood: name,
      count: flood.count,
      unit: flood.unit,
      sent_bytes: sent,
      send_seconds: +sentSeconds.toFixed(1),
      rss_before_kib: before,
      rss_peak_kib: peak,
      rss_after_kib: after,
      peak_growth_kib_per_unit: +((peak - before) / flood.count).toFixed(1),
      held_peak: sampler.peak - baseFds,
      held_end_of_hold: heldAtEnd,
      connections_gone: gone,
    };
  } finally {
    sampler?.stop();
    await server.stop();
  }
}

const PLURAL = { connection: "connections", publish: "publishes", reader: "readers" };

function row(r) {
  const cells = [
    r.flood,
    `${r.count} ${PLURAL[r.unit]}`,
    `${(r.sent_bytes / 1024).toFixed(1)} KiB in ${r.send_seconds} s`,
    `${r.held_peak} / ${r.held_end_of_hold}`,
    mib(r.rss_before_kib),
    mib(r.rss_peak_kib),
    `${r.peak_growth_kib_per_unit} KiB/${r.unit}`,
    `${mib(r.rss_after_kib)}${r.connections_gone ? "" : " (connections not all gone)"}`,
  ];
  return `| ${cells.join(" | ")} |`;
}

const passed = Object.keys(process.env).filter((k) => k.startsWith("SOCKGATE_"));
console.log(`binary: ${options.bin}`);
console.log(
  `server: defaults, SOCKGATE_HANDSHAKE_RATE/BURST=100000, SOCKGATE_MAX_PENDING_HANDSHAKES=100000` +
    (passed.length ? `, from the environment: ${passed.map((k) => `${k}=${process.env[k]}`).join(" ")}` : "") +
    (options.env.length ? `, --env: ${options.env.join(" ")}` : "") +
    `; sources: ${options.sources} loopback address(es); settle ${options.settle} s`,
);
console.log("");
console.log(`| flood | size | attacker sent | server sockets held (peak / end of hold) | RSS before (MiB) | RSS peak (MiB) | peak growth | RSS ${options.settle} s after (MiB) |`);
console.log("|---|---|---|---|---|---|---|---|");
const results = [];
for (const name of options.floods) {
  // A flood that cannot run (a newer binary refusing what it sends, say)
  // gets its row with the reason, and the next one still runs.
  try {
    const r = await measure(name);
    results.push(r);
    console.log(row(r));
  } catch (err) {
    results.push({ flood: name, error: String(err.message ?? err) });
    console.log(`| ${name} | could not run: ${String(err.message ?? err).split("\n")[0]} |`);
  }
}
if (options.json) writeFileSync(options.json, JSON.stringify({ binary: options.bin, options, results }, null, 2));
process.exit(0);
