// Attacks on the engine from the security review of b8a86f7 (issue [1/9]):
// memory and CPU floods through binary attachments, fragments, polling
// bodies and outboxes, the protocol's close codes, and transports kept
// after their namespace. Each test plays one attack with raw frames (`ws`,
// or a net.Socket writing frames by hand) against the real binary; the
// official client plays the users who must keep working meanwhile.
//
// Memory is read from /proc/<pid>/status (VmRSS) before and after a
// bounded number of attacking connections, and compared with what the
// attack would make the server hold, with a wide margin: the figures are
// printed so that they can be quoted.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import zlib from "node:zlib";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import WebSocket from "ws";
import { API_KEY, api, ended, eventually, sign, startGateway } from "./helpers.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const MiB = 1024 * 1024;

/** The resident memory of a process, in bytes. */
function rss(child) {
  const status = readFileSync(`/proc/${child.pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)[1]) * 1024;
}

const mib = (bytes) => (bytes / MiB).toFixed(1);

// ---------------------------------------------------------------------------
// WebSocket clients on the `ws` package.

/**
 * A raw Engine.IO WebSocket: every text message received is kept, and the
 * close code the server sent (or null when the connection just dropped).
 */
function openWs(gw, { deflate = false } = {}) {
  const url = gw.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket";
  const ws = new WebSocket(url, { perMessageDeflate: deflate });
  const conn = { ws, texts: [], code: undefined, closed: false, waiters: [] };
  ws.on("error", () => {});
  ws.on("message", (data, isBinary) => {
    if (!isBinary) conn.texts.push(data.toString());
    wake(conn);
  });
  ws.on("close", (code) => {
    conn.closed = true;
    conn.code = code;
    wake(conn);
  });
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve(conn));
    ws.once("unexpected-response", (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    ws.once("error", reject);
  });
}

function wake(conn) {
  for (const w of conn.waiters.splice(0)) w();
}

/** Waits up to `ms` for `cond(conn)`; resolves with whether it held. */
async function within(conn, ms, cond) {
  const deadline = Date.now() + ms;
  while (!cond(conn)) {
    const left = deadline - Date.now();
    if (left <= 0) return false;
    await new Promise((r) => {
      const t = setTimeout(r, left);
      conn.waiters.push(() => {
        clearTimeout(t);
        r();
      });
    });
  }
  return true;
}

/** The close code the server sent within `ms`, "open" when it did not close. */
async function closeCodeWithin(conn, ms) {
  return (await within(conn, ms, (c) => c.closed)) ? conn.code : "open";
}

/** The first text matching `re` within `ms` (fails the test otherwise). */
async function textMatching(conn, re, ms = 5000) {
  const found = () => conn.texts.find((t) => re.test(t));
  if (!(await within(conn, ms, found))) {
    throw new Error(`no message matching ${re} within ${ms} ms (got ${JSON.stringify(conn.texts.slice(-5))}, closed: ${conn.code})`);
  }
  return found();
}

/** A raw WebSocket past its Engine.IO open and a CONNECT to `/` with `token`. */
async function joinedWs(gw, token, opts) {
  const conn = await openWs(gw, opts);
  await textMatching(conn, /^0\{/);
  conn.ws.send(`40${JSON.stringify({ token })}`);
  await textMatching(conn, /^40\{.*"sid"/);
  return conn;
}

/** Sends and ignores the outcome (the server may have closed meanwhile). */
function sendQuietly(conn, data, opts = {}) {
  return new Promise((resolve) => conn.ws.send(data, opts, () => resolve()));
}

function closeWs(conn) {
  if (!conn) return;
  if (conn.ws.readyState === WebSocket.OPEN || conn.ws.readyState === WebSocket.CONNECTING) conn.ws.terminate();
}

// ---------------------------------------------------------------------------
// A WebSocket written frame by frame on a net.Socket.

const OP = { continuation: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 };

/** A masked client frame (RFC 6455 5.2). */
function frame(opcode, payload, { fin = true, rsv1 = false } = {}) {
  const body = Buffer.from(payload);
  const len = body.length;
  let header;
  if (len < 126) {
    header = Buffer.alloc(2);
    header[1] = 0x80 | len;
  } else if (len < 65536) {
    header = Buffer.alloc(4);
    header[1] = 0x80 | 126;
    header.writeUInt16BE(len, 2);
  } else {
    header = Buffer.alloc(10);
    header[1] = 0x80 | 127;
    header.writeBigUInt64BE(BigInt(len), 2);
  }
  header[0] = (fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode;
  const mask = randomBytes(4);
  for (let i = 0; i < len; i++) body[i] ^= mask[i & 3];
  return Buffer.concat([header, mask, body]);
}

/** A message compressed for permessage-deflate: the sync flush's 00 00 ff ff dropped (RFC 7692 7.2.1). */
function deflate(data) {
  const out = zlib.deflateRawSync(Buffer.from(data), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
  assert.deepEqual([...out.subarray(-4)], [0, 0, 0xff, 0xff]);
  return out.subarray(0, -4);
}

/**
 * Upgrades a net.Socket by hand; resolves with a connection that parses
 * the server's frames (texts kept, inflated when compressed; the close code).
 */
async function rawWs(gw, { deflate: offer = false } = {}) {
  const { hostname, port } = new URL(gw.url);
  const socket = net.connect({ host: hostname, port: Number(port) });
  socket.on("error", () => {});
  const conn = { socket, texts: [], code: undefined, closed: false, waiters: [], extensions: "" };
  await new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  const key = randomBytes(16).toString("base64");
  socket.write(
    `GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: ${hostname}:${port}\r\n` +
      "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n" +
      `Sec-WebSocket-Key: ${key}\r\n` +
      (offer ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" : "") +
      "\r\n",
  );
  let buffer = Buffer.alloc(0);
  let upgraded = false;
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no upgrade answer")), 5000);
    socket.on("data", (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      if (!upgraded) {
        const end = buffer.indexOf("\r\n\r\n");
        if (end < 0) return;
        const head = buffer.subarray(0, end).toString();
        buffer = buffer.subarray(end + 4);
        clearTimeout(timer);
        if (!head.startsWith("HTTP/1.1 101")) return reject(new Error(`upgrade refused: ${head.split("\r\n")[0]}`));
        conn.extensions = /sec-websocket-extensions: *([^\r\n]*)/i.exec(head)?.[1] ?? "";
        upgraded = true;
        resolve();
      }
      buffer = parseFrames(conn, buffer);
    });
  });
  socket.on("close", () => {
    conn.closed = true;
    wake(conn);
  });
  // Writes frames until the connection is gone (then drops them).
  conn.send = (bytes) => {
    if (!socket.destroyed) socket.write(bytes);
  };
  return conn;
}

/** Takes the whole frames off `buffer`; gives back what is left. */
function parseFrames(conn, buffer) {
  for (;;) {
    if (buffer.length < 2) return buffer;
    const rsv1 = (buffer[0] & 0x40) !== 0;
    const opcode = buffer[0] & 0x0f;
    let len = buffer[1] & 0x7f;
    let at = 2;
    if (len === 126) {
      if (buffer.length < 4) return buffer;
      len = buffer.readUInt16BE(2);
      at = 4;
    } else if (len === 127) {
      if (buffer.length < 10) return buffer;
      len = Number(buffer.readBigUInt64BE(2));
      at = 10;
    }
    if (buffer.length < at + len) return buffer;
    let payload = buffer.subarray(at, at + len);
    buffer = buffer.subarray(at + len);
    if (opcode === OP.close) {
      conn.code = payload.length >= 2 ? payload.readUInt16BE(0) : null;
      conn.closed = true;
      conn.send(frame(OP.close, payload.subarray(0, 2)));
      conn.socket.end();
    } else if (opcode === OP.text) {
      if (rsv1) payload = zlib.inflateRawSync(Buffer.concat([payload, Buffer.from([0, 0, 0xff, 0xff])]));
      conn.texts.push(payload.toString());
    }
    wake(conn);
  }
}

/** A hand-made WebSocket past its Engine.IO open and a CONNECT with `token`. */
async function joinedRaw(gw, token, opts) {
  const conn = await rawWs(gw, opts);
  await textMatching(conn, /^0\{/);
  conn.send(frame(OP.text, `40${JSON.stringify({ token })}`));
  await textMatching(conn, /^40\{.*"sid"/);
  return conn;
}

// ---------------------------------------------------------------------------
// Long-polling with node:http.

/** A request; resolves { status, text }, or status 0 and "timeout" after `timeoutMs`. */
function request(url, { method = "GET", headers = {}, body, timeoutMs = 10000 } = {}) {
  const { hostname, port, pathname, search } = new URL(url);
  return new Promise((resolve) => {
    const req = http.request({ host: hostname, port, path: pathname + search, method, agent: false, headers }, (res) => {
      let text = "";
      res.on("data", (d) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode, text }));
    });
    req.setTimeout(timeoutMs, () => {
      req.destroy();
      resolve({ status: 0, text: "timeout" });
    });
    req.on("error", (err) => resolve({ status: 0, text: err.code }));
    req.end(body);
  });
}

/** Opens a long-polling session; resolves { sid, url } (url names the session). */
async function openPolling(gw) {
  const open = await request(`${gw.url}/socket.io/?EIO=4&transport=polling`);
  assert.equal(open.status, 200, open.text);
  const { sid } = JSON.parse(open.text.slice(1));
  return { sid, url: `${gw.url}/socket.io/?EIO=4&transport=polling&sid=${sid}` };
}

function post(url, packets, timeoutMs) {
  return request(url, { method: "POST", headers: { "content-type": "text/plain;charset=UTF-8" }, body: packets.join("\x1e"), timeoutMs });
}

/**
 * Whether the session behind `url` is gone: its polls answer 400 or end
 * with the close packet `1`. A poll still waiting after a few seconds is a
 * live session (the first ping would only come after 25 s).
 */
async function sessionGone(url) {
  for (let i = 0; i < 5; i++) {
    const poll = await request(url, { timeoutMs: 4000 });
    if (poll.status === 400) return true;
    if (poll.status === 0) return false;
    if (poll.text.split("\x1e").includes("1")) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------

/** A legitimate user, on the official client, connected and answering. */
async function legitimate(gw, sub = "legit", opts = {}) {
  const socket = await gw.connect({ auth: { token: sign({ sub }) }, ...opts });
  assert.equal(await socket.emitWithAck("echo", "before"), "before");
  return socket;
}

async function stillWorks(gw, socket, sub = "legit") {
  assert.ok(socket.connected, `${sub}'s client is still connected`);
  assert.equal(await socket.emitWithAck("echo", "after"), "after");
  const fresh = await gw.connect({ auth: { token: sign({ sub: `${sub}-new` }) } });
  assert.equal((await fresh.emitWithAck("auth:whoami")).userId, `${sub}-new`);
  fresh.close();
}

/** Runs `fn` over `items`, at most `width` at a time. */
async function inBatches(items, width, fn) {
  const results = [];
  for (let i = 0; i < items.length; i += width) {
    results.push(...(await Promise.all(items.slice(i, i + width).map(fn))));
  }
  return results;
}

// ---------------------------------------------------------------------------
// Finding 1: binary attachments held before any CONNECT.

/** A BINARY_EVENT announcing 10 attachments, 9 of them sent. */
const ATTACHMENTS = 10;
const ATTACHMENT_BYTES = 130_000; // under the default message limit (128 KiB)
const ANNOUNCE = `45${ATTACHMENTS}-["x",${Array.from({ length: ATTACHMENTS }, (_, n) => `{"_placeholder":true,"num":${n}}`).join(",")}]`;

async function sendUnfinishedAttachments(conn) {
  await sendQuietly(conn, ANNOUNCE);
  const zeros = Buffer.alloc(ATTACHMENT_BYTES);
  for (let i = 0; i < ATTACHMENTS - 1; i++) {
    if (conn.closed) break;
    await sendQuietly(conn, zeros, { binary: true, compress: true });
  }
}

test("finding 1a: unfinished binary attachments before CONNECT close the connection (1002/1003) and hold no memory", async () => {
  const ATTACKERS = 120;
  const gw = await startGateway({ SOCKGATE_HANDSHAKE_RATE: "0", SOCKGATE_HANDSHAKE_TIMEOUT: "60", SOCKGATE_LOG: "info" });
  const attackers = [];
  try {
    const user = await legitimate(gw);
    await sleep(500);
    const before = rss(gw.child);
    const opened = await inBatches(Array.from({ length: ATTACKERS }), 20, async () => {
      const conn = await openWs(gw, { deflate: true });
      attackers.push(conn);
      await textMatching(conn, /^0\{/);
      await sendUnfinishedAttachments(conn);
      return conn;
    });
    await sleep(1000);
    const after = rss(gw.child);
    const held = after - before;
    const sent = ATTACKERS * (ATTACHMENTS - 1) * ATTACHMENT_BYTES;
    console.log(
      `finding 1a: ${ATTACKERS} connections each announcing ${ATTACHMENTS} attachments and sending ${ATTACHMENTS - 1} of ${ATTACHMENT_BYTES} bytes (compressed): ` +
        `RSS ${mib(before)} → ${mib(after)} MiB, +${mib(held)} MiB, ${(held / ATTACKERS / 1024).toFixed(0)} KiB per connection ` +
        `(attachments inflated: ${((sent / ATTACKERS) / 1024).toFixed(0)} KiB per connection)`,
    );
    assert.ok(held < sent / 4, `RSS grew by ${mib(held)} MiB; expected under a quarter of the ${mib(sent)} MiB the attachments inflate to`);
    const codes = await Promise.all(opened.map((c) => closeCodeWithin(c, 5000)));
    const tally = {};
    for (const c of codes) tally[c] = (tally[c] ?? 0) + 1;
    console.log("finding 1a: close codes", JSON.stringify(tally));
    // A binary packet before CONNECT is both a packet before CONNECT
    // (1002) and binary data, which sockgate never takes (1003): either
    // code says why.
    assert.ok(codes.every((c) => c === 1002 || c === 1003), `every attacker closed as a protocol error: ${JSON.stringify(tally)}`);
    await stillWorks(gw, user);
  } finally {
    attackers.forEach(closeWs);
    await gw.stop();
  }
});

test("finding 1b: a binary event after CONNECT closes the connection with 1003", async () => {
  const gw = await startGateway();
  const conns = [];
  try {
    const user = await legitimate(gw);
    const conn = await joinedWs(gw, sign({ sub: "mallory" }), { deflate: true });
    conns.push(conn);
    await sendUnfinishedAttachments(conn);
    assert.equal(await closeCodeWithin(conn, 5000), 1003);
    // A whole binary event (all its attachments) is refused the same way.
    const whole = await joinedWs(gw, sign({ sub: "mallory" }));
    conns.push(whole);
    await sendQuietly(whole, `451-0["echo",{"_placeholder":true,"num":0}]`);
    await sendQuietly(whole, Buffer.from("hi"), { binary: true });
    assert.equal(await closeCodeWithin(whole, 5000), 1003);
    assert.ok(!whole.texts.some((t) => t.startsWith("43")), "the event got no answer");
    // A binary message that no packet announced.
    const bare = await joinedWs(gw, sign({ sub: "mallory" }));
    conns.push(bare);
    await sendQuietly(bare, Buffer.from([1, 2, 3]), { binary: true });
    assert.equal(await closeCodeWithin(bare, 5000), 1003);
    await stillWorks(gw, user);
  } finally {
    conns.forEach(closeWs);
    await gw.stop();
  }
});

test("finding 1b: a binary message in a polling body after CONNECT is refused (400) and ends the session", async () => {
  const gw = await startGateway();
  try {
    const session = await openPolling(gw);
    const connect = await post(session.url, [`40${JSON.stringify({ token: sign({ sub: "mallory" }) })}`]);
    assert.equal(connect.status, 200, connect.text);
    const answer = await request(session.url);
    assert.match(answer.text, /^40\{.*"sid"/);
    const binary = await post(session.url, [`b${Buffer.from([1, 2, 3]).toString("base64")}`]);
    assert.equal(binary.status, 400, `binary message: ${binary.status} ${binary.text}`);
    assert.ok(await sessionGone(session.url), "the session is gone");
  } finally {
    await gw.stop();
  }
});

// ---------------------------------------------------------------------------
// Finding 3: event arguments parsed before the name is looked up.

test("finding 3a: a flood of unknown events with big arguments spends the event budget and ends the session", async () => {
  const gw = await startGateway({ SOCKGATE_EVENT_RATE: "1", SOCKGATE_EVENT_BURST: "5" });
  try {
    const user = await legitimate(gw);
    const flooder = await gw.connect({ auth: { token: sign({ sub: "flooder" }) } });
    const end = ended(flooder, 10000);
    const big = Array.from({ length: 5000 }, (_, i) => i);
    for (let i = 0; i < 60 && flooder.connected; i++) flooder.emit(`no:such:event:${i}`, big);
    const { end: payload } = await end;
    assert.equal(payload?.code, "RATE_LIMITED", `session:end ${JSON.stringify(payload)}`);
    await stillWorks(gw, user);
  } finally {
    await gw.stop();
  }
});

test("finding 3b: room:publish with a binary argument closes the connection with 1003", async () => {
  const gw = await startGateway();
  let conn;
  try {
    const reader = await gw.connect({ auth: { token: sign({ sub: "reader", rooms: ["chat:*"] }) } });
    assert.equal((await reader.emitWithAck("room:join", { room: "chat:a" })).ok, true);
    let messages = 0;
    reader.on("room:message", () => messages++);
    conn = await joinedWs(gw, sign({ sub: "mallory", rooms: ["chat:*"] }));
    conn.ws.send(`420["room:join",{"room":"chat:a"}]`);
    await textMatching(conn, /^430\[\{.*"ok":true/);
    await sendQuietly(conn, `451-1["room:publish",{"room":"chat:a","data":{"_placeholder":true,"num":0}}]`);
    await sendQuietly(conn, Buffer.alloc(20_000, 7), { binary: true });
    assert.equal(await closeCodeWithin(conn, 5000), 1003);
    assert.ok(!conn.texts.some((t) => t.startsWith("431")), "the publish got no answer");
    await sleep(300);
    assert.equal(messages, 0, "nothing was published");
    assert.equal(await reader.emitWithAck("echo", "ok"), "ok");
  } finally {
    closeWs(conn);
    await gw.stop();
  }
});

// ---------------------------------------------------------------------------
// Finding 5: unfinished fragmented messages.

test("finding 5a: a compressed first fragment and then nothing is closed at the fragment timeout (1002)", async () => {
  const gw = await startGateway({ SOCKGATE_WS_FRAGMENT_TIMEOUT: "2" });
  let conn;
  try {
    const user = await legitimate(gw);
    conn = await joinedRaw(gw, sign({ sub: "mallory" }), { deflate: true });
    assert.match(conn.extensions, /permessage-deflate/);
    const compressed = deflate(`42["echo","${"a".repeat(100_000)}"]`);
    // The first half of the message, marked compressed (RSV1) and not final.
    conn.send(frame(OP.text, compressed.subarray(0, compressed.length >> 1), { fin: false, rsv1: true }));
    const started = Date.now();
    assert.equal(await closeCodeWithin(conn, 2000 + 6000), 1002, "closed as a protocol error within the timeout and some slack");
    console.log(`finding 5a: closed ${Date.now() - started} ms after the first fragment (timeout 2 s)`);
    await stillWorks(gw, user);
  } finally {
    conn?.socket.destroy();
    await gw.stop();
  }
});

test("finding 5b: fragments adding up past the message limit are closed with 1009 before the message ends", async () => {
  const MAX = 65536;
  const gw = await startGateway({ SOCKGATE_MAX_MESSAGE: String(MAX), SOCKGATE_WS_FRAGMENT_TIMEOUT: "30" });
  const conns = [];
  try {
    const user = await legitimate(gw);
    // Plain fragments: 3 × 30,000 bytes, never final.
    const plain = await joinedRaw(gw, sign({ sub: "mallory" }));
    conns.push(plain);
    plain.send(frame(OP.text, `42["echo","${"a".repeat(30_000)}`, { fin: false }));
    for (let i = 0; i < 2; i++) plain.send(frame(OP.continuation, "a".repeat(30_000), { fin: false }));
    assert.equal(await closeCodeWithin(plain, 5000), 1009);
    // Compressed fragments: a few hundred bytes on the wire, 200,000 once inflated.
    const packed = await joinedRaw(gw, sign({ sub: "mallory" }), { deflate: true });
    conns.push(packed);
    const compressed = deflate(`42["echo","${"a".repeat(200_000)}"]`);
    const cut = compressed.length >> 1;
    packed.send(frame(OP.text, compressed.subarray(0, cut), { fin: false, rsv1: true }));
    packed.send(frame(OP.continuation, compressed.subarray(cut), { fin: false }));
    assert.equal(await closeCodeWithin(packed, 5000), 1009);
    await stillWorks(gw, user);
  } finally {
    conns.forEach((c) => c.socket.destroy());
    await gw.stop();
  }
});

// ---------------------------------------------------------------------------
// Finding 6: long-polling bodies of many packets.

test("finding 6a: a polling body of 1,000 packets is refused (400) and ends the session; 256 are accepted", async () => {
  const gw = await startGateway();
  try {
    const user = await legitimate(gw);
    const session = await openPolling(gw);
    const pongs = (n) => Array.from({ length: n }, () => "3");
    const fits = await post(session.url, pongs(256));
    assert.equal(fits.status, 200, `256 packets: ${fits.text}`);
    const flood = await post(session.url, pongs(1000));
    assert.equal(flood.status, 400, `1,000 packets: ${flood.text}`);
    assert.deepEqual(JSON.parse(flood.text), { code: 3, message: "Bad request" });
    assert.ok(await sessionGone(session.url), "the session is gone");
    await stillWorks(gw, user);
  } finally {
    await gw.stop();
  }
});

test("finding 6b: a polling body of 20 CONNECTs with a valid token makes at most one session and closes the transport", async () => {
  const gw = await startGateway({ SOCKGATE_API_KEY: API_KEY });
  try {
    const user = await legitimate(gw);
    const session = await openPolling(gw);
    const connect = `40${JSON.stringify({ token: sign({ sub: "multi" }) })}`;
    const answer = await post(session.url, Array.from({ length: 20 }, () => connect));
    console.log(`finding 6b: the POST answered ${answer.status} ${answer.text}`);
    let most = 0;
    for (let i = 0; i < 10; i++) {
      const listed = await api(gw, "GET", "/api/sessions?user=multi");
      assert.equal(listed.status, 200);
      most = Math.max(most, listed.body.sessions.length);
      await sleep(200);
    }
    console.log(`finding 6b: at most ${most} sessions of user multi`);
    assert.ok(most <= 1, `at most one session, saw ${most}`);
    assert.equal(answer.status, 400, "the body is refused");
    assert.ok(await sessionGone(session.url), "the transport is closed");
    await stillWorks(gw, user);
  } finally {
    await gw.stop();
  }
});

// ---------------------------------------------------------------------------
// Finding 9: broadcasts to members that stopped reading.

test("finding 9: members that stop reading are closed at the outbox bound; memory stays bounded; the others keep working", async () => {
  const MEMBERS = 30;
  const PUBLISHES = 100;
  const SIZE = 100_000;
  const OUTBOX = MiB;
  const gw = await startGateway({
    SOCKGATE_API_KEY: API_KEY,
    SOCKGATE_MAX_PAYLOAD: "131072",
    SOCKGATE_MAX_OUTBOX: String(OUTBOX),
    SOCKGATE_RECOVERY_WINDOW: "0",
    SOCKGATE_HANDSHAKE_RATE: "0",
    SOCKGATE_LOG: "info",
  });
  const members = [];
  try {
    const rooms = ["bcast:*"];
    const publisher = await gw.connect({ auth: { token: sign({ sub: "publisher", rooms }) } });
    assert.equal((await publisher.emitWithAck("room:join", { room: "bcast:1" })).ok, true);
    const reader = await gw.connect({ auth: { token: sign({ sub: "reader", rooms }) } });
    assert.equal((await reader.emitWithAck("room:join", { room: "bcast:1" })).ok, true);
    let read = 0;
    reader.on("room:message", () => read++);
    await inBatches(Array.from({ length: MEMBERS }), 10, async () => {
      // No compression offered: what the server queues is what it writes.
      const conn = await joinedWs(gw, sign({ sub: "stalled", rooms }));
      members.push(conn);
      conn.ws.send(`420["room:join",{"room":"bcast:1"}]`);
      await textMatching(conn, /^430\[\{.*"ok":true/);
      conn.ws._socket.pause();
    });
    assert.equal((await api(gw, "GET", "/api/sessions?user=stalled")).body.sessions.length, MEMBERS);
    await sleep(500);
    const before = rss(gw.child);
    let peak = before;
    for (let i = 0; i < PUBLISHES; i++) {
      // Compressible: the publisher's frames are a few hundred bytes each.
      const data = `${i} `.padEnd(SIZE, "lorem ipsum dolor sit amet ");
      const ack = await publisher.emitWithAck("room:publish", { room: "bcast:1", data });
      assert.equal(ack.ok, true, JSON.stringify(ack));
      if (i % 10 === 9) peak = Math.max(peak, rss(gw.child));
    }
    await sleep(1000);
    peak = Math.max(peak, rss(gw.child));
    const queuedPerMember = PUBLISHES * SIZE;
    console.log(
      `finding 9: ${MEMBERS} stalled members, ${PUBLISHES} publishes of ${SIZE} bytes: ` +
        `RSS ${mib(before)} → peak ${mib(peak)} MiB, +${mib(peak - before)} MiB ` +
        `(${mib(queuedPerMember)} MiB sent to each member, outbox bound ${mib(OUTBOX)} MiB)`,
    );
    // Bound: each member's outbox full, the published data once (shared by
    // the members' writes in flight), and slack; far under a copy of the
    // messages per member.
    const bound = MEMBERS * OUTBOX + PUBLISHES * SIZE + 20 * MiB;
    assert.ok(peak - before < bound, `RSS grew by ${mib(peak - before)} MiB; expected under ${mib(bound)} MiB`);
    // Stalled members are closed at the bound, well before the write
    // timeout (a pingTimeout, 20 s from the first stalled write) would
    // have closed them.
    await eventually(
      async () => (await api(gw, "GET", "/api/sessions?user=stalled")).body.sessions.length === 0,
      10000,
      "every stalled member closed",
    );
    // Once they read again, they find their connection closed before the end.
    for (const m of members) m.ws._socket.resume();
    const codes = await Promise.all(members.map((m) => closeCodeWithin(m, 10000)));
    const got = members.map((m) => m.texts.filter((t) => t.includes("room:message")).length);
    console.log(`finding 9: stalled members closed with ${JSON.stringify([...new Set(codes)])} after ${Math.min(...got)} to ${Math.max(...got)} messages`);
    assert.ok(codes.every((c) => c !== "open"), `every stalled member closed: ${JSON.stringify(codes)}`);
    assert.ok(got.every((n) => n < PUBLISHES), "no stalled member got every message");
    // The publisher and the member that reads saw nothing of it.
    await eventually(() => read === PUBLISHES, 10000, "the reading member got every message");
    assert.ok(publisher.connected && reader.connected);
    assert.equal(await publisher.emitWithAck("echo", "still"), "still");
  } finally {
    members.forEach(closeWs);
    await gw.stop();
  }
});

// ---------------------------------------------------------------------------
// Finding 10: big messages parsed before CONNECT.

test("finding 10a: a big compressible message before CONNECT is closed at once (1009: over the 16 KiB a stranger may send)", async () => {
  const gw = await startGateway({ SOCKGATE_HANDSHAKE_TIMEOUT: "60" });
  let conn;
  try {
    const user = await legitimate(gw);
    conn = await openWs(gw, { deflate: true });
    await textMatching(conn, /^0\{/);
    const message = `42["x","${"a".repeat(130_000)}"]`;
    await sendQuietly(conn, message, { compress: true });
    assert.equal(await closeCodeWithin(conn, 5000), 1009);
    await stillWorks(gw, user);
  } finally {
    closeWs(conn);
    await gw.stop();
  }
});

test("finding 10b: a CONNECT over 16 KiB is closed with 1009; one under it is answered", async () => {
  const gw = await startGateway({ SOCKGATE_HANDSHAKE_TIMEOUT: "60" });
  const conns = [];
  try {
    const token = sign({ sub: "padded" });
    const connectOf = (size) => {
      const base = `40${JSON.stringify({ token, pad: "" })}`;
      const text = `40${JSON.stringify({ token, pad: "x".repeat(size - base.length) })}`;
      assert.equal(text.length, size);
      return text;
    };
    const small = await openWs(gw, { deflate: true });
    conns.push(small);
    await textMatching(small, /^0\{/);
    small.ws.send(connectOf(12000));
    await textMatching(small, /^40\{.*"sid"/);
    const big = await openWs(gw, { deflate: true });
    conns.push(big);
    await textMatching(big, /^0\{/);
    await sendQuietly(big, connectOf(17000));
    assert.equal(await closeCodeWithin(big, 5000), 1009);
    assert.ok(!big.texts.some((t) => t.startsWith("40")), "the big CONNECT got no answer");
  } finally {
    conns.forEach(closeWs);
    await gw.stop();
  }
});

// ---------------------------------------------------------------------------
// Finding 12: a transport kept after its namespace.

test("finding 12: after the client leaves its namespace (41) the server closes the WebSocket (1000)", async () => {
  const gw = await startGateway({ SOCKGATE_API_KEY: API_KEY });
  let conn;
  try {
    conn = await joinedWs(gw, sign({ sub: "leaver" }));
    conn.ws.send("41");
    assert.equal(await closeCodeWithin(conn, 5000), 1000);
    assert.equal((await api(gw, "GET", "/api/sessions?user=leaver")).body.sessions.length, 0);
  } finally {
    closeWs(conn);
    await gw.stop();
  }
});

// ---------------------------------------------------------------------------
// Finding 15b: close codes and UTF-8. (RSV1 on a control frame is accepted by
// the WebSocket library; see docs/security.md.)

test("finding 15b: protocol errors close with 1002, not 1000", async () => {
  const gw = await startGateway({ SOCKGATE_HANDSHAKE_TIMEOUT: "60" });
  const conns = [];
  try {
    // An Engine.IO packet type that does not exist, after CONNECT.
    const garbage = await joinedWs(gw, sign({ sub: "mallory" }));
    conns.push(garbage);
    garbage.ws.send("9hello");
    assert.equal(await closeCodeWithin(garbage, 5000), 1002);
    // An EVENT before CONNECT.
    const early = await openWs(gw);
    conns.push(early);
    await textMatching(early, /^0\{/);
    early.ws.send(`42["echo","x"]`);
    assert.equal(await closeCodeWithin(early, 5000), 1002);
    // A second CONNECT to the joined namespace.
    const twice = await joinedWs(gw, sign({ sub: "mallory" }));
    conns.push(twice);
    twice.ws.send(`40${JSON.stringify({ token: sign({ sub: "mallory" }) })}`);
    assert.equal(await closeCodeWithin(twice, 5000), 1002);
  } finally {
    conns.forEach(closeWs);
    await gw.stop();
  }
});

test("finding 15b: a text frame that is not UTF-8 closes with 1007", async () => {
  const gw = await startGateway();
  let conn;
  try {
    conn = await joinedRaw(gw, sign({ sub: "mallory" }));
    conn.send(frame(OP.text, Buffer.from([0x34, 0x32, 0x5b, 0x22, 0xc3, 0x28, 0x22, 0x5d]))); // 42["\xc3("]
    assert.equal(await closeCodeWithin(conn, 5000), 1007);
  } finally {
    conn?.socket.destroy();
    await gw.stop();
  }
});

// ---------------------------------------------------------------------------
// Finding 15c: concurrent POSTs on one polling session.

test("finding 15c: a second POST while one is in flight gets 400 and ends the session", async () => {
  const gw = await startGateway();
  let held;
  try {
    const user = await legitimate(gw);
    const session = await openPolling(gw);
    const { hostname, port, pathname, search } = new URL(session.url);
    // The first POST: its head and part of its body, the rest never sent.
    held = net.connect({ host: hostname, port: Number(port) });
    held.on("error", () => {});
    let heldAnswer = "";
    held.on("data", (d) => (heldAnswer += d));
    await new Promise((r) => held.once("connect", r));
    held.write(
      `POST ${pathname}${search} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nContent-Type: text/plain;charset=UTF-8\r\n` +
        "Content-Length: 100\r\n\r\n3\x1e3\x1e",
    );
    await sleep(500);
    const second = await post(session.url, ["3"], 5000);
    assert.equal(second.status, 400, `second POST: ${second.status} ${second.text}`);
    assert.ok(await sessionGone(session.url), "the session is gone");
    console.log(`finding 15c: the held POST got ${JSON.stringify(heldAnswer.split("\r\n")[0] || "(nothing yet)")}`);
    await stillWorks(gw, user);
  } finally {
    held?.destroy();
    await gw.stop();
  }
});
