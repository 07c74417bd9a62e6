// /api/stats: the figures the dashboard shows, measured by the server, with
// the official client doing the connecting.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { io } from "socket.io-client";
import { api, API_KEY, eventually, freePort, refusal, sign, now, startGateway, startRedis } from "./helpers.mjs";

const stats = async (gw) => {
  const res = await api(gw, "GET", "/api/stats");
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body;
};

test("/api/stats needs the admin key", async () => {
  const gw = await startGateway({ SOCKGATE_API_KEY: API_KEY });
  try {
    assert.equal((await api(gw, "GET", "/api/stats", { key: null })).status, 401);
    assert.equal((await api(gw, "GET", "/api/stats", { key: "wrong-key-wrong-key-wrong" })).status, 401);
    assert.equal((await api(gw, "GET", "/api/stats")).status, 200);
  } finally {
    await gw.stop();
  }
});

test("10 good handshakes, 3 expired and 2 invalid tokens and one close: exact counts and rate", async () => {
  const gw = await startGateway({ SOCKGATE_API_KEY: API_KEY });
  try {
    const before = await stats(gw);
    assert.equal(before.authSuccessRate, null, "nothing to measure yet");
    assert.equal(before.reconnectionSuccessRate, null);
    assert.equal(before.reconnectMs, null);
    const sockets = [];
    for (let i = 0; i < 10; i++) sockets.push(await gw.connect({ auth: { token: sign({ sub: `s${i}` }) } }));
    for (let i = 0; i < 3; i++) await refusal(gw, { auth: { token: sign({ sub: "late", exp: now() - 10 }) } });
    for (let i = 0; i < 2; i++) await refusal(gw, { auth: { token: "not-a-token" } });
    sockets[0].close();
    await eventually(async () => (await stats(gw)).connections === 9, 5000, "the close is counted");
    const s = await stats(gw);
    assert.equal(s.connections, 9);
    assert.deepEqual(s.handshakes, { ok: 10, refused: { TOKEN_EXPIRED: 3, TOKEN_INVALID: 2 } });
    assert.equal(s.authSuccessRate, 0.6667);
    for (const p of [s.authLatencyMs, s.sessionOverheadMs]) {
      assert.ok(p.p50 > 0 && p.p99 >= p.p50, JSON.stringify(p));
      assert.ok(p.p99 < 1000, "server time, not client round trips");
    }
    assert.deepEqual(s.ends, {}, "a client's own close is no server end");
    assert.equal(s.reconnectionSuccessRate, null, "a client's own close is no loss");
    assert.equal(s.nodes.length, 1);
    assert.equal(s.nodes[0].connections, 9);
    assert.equal(s.nodes[0].redis, "off");
    assert.ok(s.nodes[0].rssBytes > 1024 * 1024);
    // A server end is counted by its code.
    const kicked = await api(gw, "POST", "/api/users/s1/disconnect");
    assert.equal(kicked.status, 200);
    await eventually(async () => (await stats(gw)).ends.KICKED === 1, 5000, "the kick is counted");
  } finally {
    await gw.stop();
  }
});

test("a restart and the clients' return show up in reconnectionSuccessRate", async () => {
  const port = await freePort();
  const env = {
    SOCKGATE_LISTEN: `127.0.0.1:${port}`,
    SOCKGATE_API_KEY: API_KEY,
    SOCKGATE_DRAIN_WINDOW: "0.5",
    SOCKGATE_DATA_DIR: mkdtempSync(join(tmpdir(), "sockgate-stats-")),
  };
  let gw = await startGateway(env);
  const clients = [];
  try {
    for (let i = 0; i < 20; i++) {
      // Default options: reconnection on, a fresh token per attempt.
      clients.push(io(gw.url, { forceNew: true, auth: (cb) => cb({ token: sign({ sub: `r${i}` }) }) }));
    }
    await eventually(() => clients.every((c) => c.connected), 20000, "20 connected");
    const exited = new Promise((r) => gw.child.once("exit", r));
    gw.child.kill("SIGTERM");
    await exited;
    gw = await startGateway(env);
    await eventually(() => clients.every((c) => c.connected), 30000, "20 back");
    const s = await eventually(async () => {
      const s = await stats(gw);
      return s.reconnectionSuccessRate === 1 && s.nodes[0].recovered === 20 && s;
    }, 10000, "20 recovered");
    assert.ok(s.reconnectMs.p50 > 0 && s.reconnectMs.p99 >= s.reconnectMs.p50, JSON.stringify(s.reconnectMs));
    assert.ok(s.reconnectMs.p99 < 30000);
    assert.equal(s.handshakes.ok, 20, "the new node counts since it started");
  } finally {
    for (const c of clients) c.close();
    await gw.stop();
  }
});

test("serve --dev turns on the admin API and prints its key and the dashboard URL", async () => {
  const gw = await startGateway({ JWT_SECRET: undefined }, ["--dev"]);
  try {
    const out = gw.stdout.join("\n");
    const key = out.match(/^SOCKGATE_API_KEY=(\S+)/m)?.[1];
    assert.ok(key, out);
    assert.ok(out.includes(`${gw.url}/dashboard`), `the banner names the port really bound: ${out}`);
    assert.match(out, /http:\/\/localhost:\*/);
    const res = await api(gw, "GET", "/api/stats", { key });
    assert.equal(res.status, 200);
    const page = await fetch(`${gw.url}/dashboard`);
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.ok(!html.includes(key), "the page never holds the key");
    // The key is not in the logs either.
    assert.ok(!gw.logs.join("\n").includes(key));
  } finally {
    await gw.stop();
  }
});

test("a cross-origin page that is not allowed is logged once, naming the setting", async () => {
  const gw = await startGateway({});
  try {
    for (let i = 0; i < 5; i++) {
      await fetch(`${gw.url}/socket.io/?EIO=4&transport=polling`, { headers: { origin: "http://127.0.0.1:3999" } });
    }
    await eventually(() => gw.logs.some((l) => l.includes("SOCKGATE_ALLOWED_ORIGINS")), 3000, "a warning");
    const warnings = gw.logs.filter((l) => l.includes("SOCKGATE_ALLOWED_ORIGINS") && l.includes("127.0.0.1:3999"));
    assert.equal(warnings.length, 1, "once per origin");
    assert.equal(JSON.parse(warnings[0]).level, "WARN");
  } finally {
    await gw.stop();
  }
});



test("in a cluster, /api/stats on any node sums every node's figures and lists each", async () => {
  const redis = await startRedis();
  const env = { SOCKGATE_REDIS_URL: redis.url, SOCKGATE_API_KEY: API_KEY };
  const a = await startGateway(env);
  const b = await startGateway(env);
  try {
    for (let i = 0; i < 3; i++) await a.connect({ auth: { token: sign({ sub: `a${i}` }) } });
    for (let i = 0; i < 2; i++) await b.connect({ auth: { token: sign({ sub: `b${i}` }) } });
    await refusal(b, { auth: { token: "not-a-token" } });
    // Nodes share their figures every second.
    const s = await eventually(async () => {
      const s = await stats(a);
      return s.nodes.length === 2 && s.connections === 5 && s.handshakes.refused.TOKEN_INVALID === 1 && s;
    }, 10000, "both nodes' figures on node A");
    assert.equal(s.handshakes.ok, 5);
    assert.equal(s.authSuccessRate, 0.8333);
    assert.deepEqual(s.nodes.map((n) => n.connections).sort(), [2, 3]);
    assert.ok(s.nodes.every((n) => n.redis === "ok" && n.id && n.rssBytes > 0));
    assert.notEqual(s.nodes[0].id, s.nodes[1].id);
  } finally {
    await a.stop();
    await b.stop();
    await redis.stop();
  }
});
