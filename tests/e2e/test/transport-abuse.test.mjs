// Attacks below the Socket.IO handshake (security review): floods of
// transports that never authenticate, and stolen Engine.IO session ids.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { eventually, sign, startGateway } from "./helpers.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A raw HTTP request from a chosen loopback source address. */
function request(url, { method = "GET", from = "127.0.0.1", headers = {}, body } = {}) {
  const { hostname, port, pathname, search } = new URL(url);
  return new Promise((resolve) => {
    const req = http.request({ host: hostname, port, path: pathname + search, method, localAddress: from, agent: false, headers }, (res) => {
      let text = "";
      res.on("data", (d) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode, text }));
    });
    req.on("error", (err) => resolve({ status: 0, text: err.code }));
    req.end(body);
  });
}

test("a stolen long-polling sid is refused from another address; the victim keeps its session", async () => {
  const gw = await startGateway();
  try {
    const victim = await gw.connect({ transports: ["polling"], auth: { token: sign({ sub: "victim" }) } });
    let disconnected = false;
    victim.on("disconnect", () => (disconnected = true));
    const url = `${gw.url}/socket.io/?EIO=4&transport=polling&sid=${victim.io.engine.id}`;
    // Posting events as the victim, polling its packets away (two polls at
    // once used to close its session), and moving it onto a WebSocket.
    const post = await request(url, { method: "POST", from: "127.0.0.2", headers: { "content-type": "text/plain" }, body: '42["room:join",{"room":"x"}]' });
    assert.equal(post.status, 403, post.text);
    assert.equal(JSON.parse(post.text).code, "FORBIDDEN");
    const polls = await Promise.all([request(url, { from: "127.0.0.2" }), request(url, { from: "127.0.0.3" })]);
    assert.deepEqual(polls.map((p) => p.status), [403, 403]);
    const upgrade = await request(url.replace("transport=polling", "transport=websocket"), {
      from: "127.0.0.2",
      headers: { connection: "Upgrade", upgrade: "websocket", "sec-websocket-version": "13", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==" },
    });
    assert.equal(upgrade.status, 403);
    await sleep(500);
    assert.equal(disconnected, false, "the victim's session survived");
    assert.equal(await victim.emitWithAck("echo", "mine"), "mine");
  } finally {
    await gw.stop();
  }
});

test("transports that never authenticate are capped, and their places come back", async () => {
  const gw = await startGateway({ SOCKGATE_HANDSHAKE_RATE: "0", SOCKGATE_MAX_PENDING_HANDSHAKES: "50", SOCKGATE_HANDSHAKE_TIMEOUT: "2" });
  try {
    const open = () => request(`${gw.url}/socket.io/?EIO=4&transport=polling`);
    const answers = [];
    for (let i = 0; i < 120; i++) answers.push(await open());
    const opened = answers.filter((a) => a.status === 200).length;
    const refused = answers.filter((a) => a.status === 503);
    assert.equal(opened, 50, "at most the cap is held open without a handshake");
    assert.equal(refused.length, 70);
    assert.equal(JSON.parse(refused[0].text).code, "CONNECTION_LIMIT");
    // socketioxide closes them at the handshake timeout; their places free up.
    await eventually(async () => (await open()).status === 200, 10000, "a place came back");
    const s = await gw.connect({ auth: { token: sign({ sub: "legit" }) } });
    assert.equal((await s.emitWithAck("auth:whoami")).userId, "legit");
  } finally {
    await gw.stop();
  }
});

test("a transport that handshakes frees its pending place at once", async () => {
  const gw = await startGateway({ SOCKGATE_HANDSHAKE_RATE: "0", SOCKGATE_MAX_PENDING_HANDSHAKES: "5" });
  try {
    // Far more clients than pending places, one after the other: each one
    // gives its place back when it handshakes, not when it disconnects.
    const sockets = [];
    for (let i = 0; i < 30; i++) sockets.push(await gw.connect({ auth: { token: sign({ sub: `c${i}` }) } }));
    assert.equal(sockets.filter((s) => s.connected).length, 30);
  } finally {
    await gw.stop();
  }
});
