// Abuse limits, origin checks, graceful shutdown and metrics, with real clients.
import { test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { api, API_KEY, ended, freePort, refusal, run, sign, startGateway } from "./helpers.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test("handshakes per client address: over the budget is RATE_LIMITED with a retry hint", async () => {
  const gw = await startGateway({ SOCKGATE_HANDSHAKE_RATE: "1", SOCKGATE_HANDSHAKE_BURST: "3" });
  try {
    const first = await gw.connect({ auth: { token: sign() } });
    await gw.connect({ auth: { token: sign() } });
    await gw.connect({ auth: { token: sign() } });
    // Refused when the transport opens, as an HTTP 429 that socket.io-client
    // retries by itself (this one has reconnection off, so it stops).
    const err = await refusal(gw, { auth: { token: sign() } });
    assert.equal(err.message, "xhr poll error");
    assert.equal(err.description, 429);
    const open = await fetch(gw.url + "/socket.io/?EIO=4&transport=polling");
    assert.equal(open.status, 429);
    assert.ok(Number(open.headers.get("retry-after")) >= 1);
    const body = await open.json();
    assert.equal(body.code, "RATE_LIMITED");
    assert.match(body.message, /retry in \d+ s$/);
    assert.ok(body.retryAfterMs > 0 && body.retryAfterMs <= 1000, JSON.stringify(body));
    assert.deepEqual(await first.emitWithAck("echo", "unaffected"), "unaffected");
    await sleep(1100);
    await gw.connect({ auth: { token: sign() } });
  } finally {
    await gw.stop();
  }
});

test("events per socket: over the budget is RATE_LIMITED; sustained abuse ends the socket", async () => {
  const gw = await startGateway({ SOCKGATE_EVENT_RATE: "5", SOCKGATE_EVENT_BURST: "5" });
  try {
    const s = await gw.connect({ auth: { token: sign({ sub: "flood" }) }, transports: ["websocket"] });
    const calm = await gw.connect({ auth: { token: sign({ sub: "calm" }) } });
    const acks = await Promise.all(Array.from({ length: 10 }, (_, i) => s.emitWithAck("echo", i)));
    // Each event runs in its own task, so which five of the ten win the
    // burst is up to the scheduler; how many win is not.
    acks.forEach((a, i) => assert.ok(a === i || a?.code === "RATE_LIMITED", `ack ${i}: ${JSON.stringify(a)}`));
    const refused = acks.filter((a) => a?.code === "RATE_LIMITED");
    assert.ok(10 - refused.length >= 5, `the burst of 5 goes through: ${JSON.stringify(acks)}`);
    assert.ok(refused.length >= 3, `refused ${refused.length} of 10`);
    assert.match(refused[0].message, /too many events/);
    const ending = ended(s);
    // Keep going, one refused event after another, until the server cuts us off.
    for (let i = 0; i < 30 && s.connected; i++) {
      await s.timeout(2000).emitWithAck("echo", i).catch(() => {});
    }
    const { end, reason } = await ending;
    assert.equal(end.code, "RATE_LIMITED");
    assert.equal(end.reconnect, true);
    assert.equal(reason, "transport close");
    assert.deepEqual(await calm.emitWithAck("echo", "fine"), "fine");
  } finally {
    await gw.stop();
  }
});

test("a socket ended while it is still emitting gets its session:end first", async () => {
  // The client keeps sending after the server has decided to end it; those
  // late packets must not cut the transport before session:end is written.
  const gw = await startGateway({ SOCKGATE_EVENT_RATE: "5", SOCKGATE_EVENT_BURST: "5" });
  try {
    for (let k = 0; k < 20; k++) {
      const s = await gw.connect({ auth: { token: sign({ sub: `flood${k}` }) }, transports: ["websocket"] });
      const ending = ended(s);
      await Promise.all(Array.from({ length: 60 }, (_, i) => s.timeout(3000).emitWithAck("echo", i).catch(() => {})));
      const { end, reason } = await ending;
      assert.equal(end?.code, "RATE_LIMITED", `socket ${k}: ${reason} without session:end`);
    }
  } finally {
    await gw.stop();
  }
});

test("the global connection cap refuses new connections with CONNECTION_LIMIT", async () => {
  const gw = await startGateway({ SOCKGATE_MAX_CONNECTIONS: "2" });
  try {
    const a = await gw.connect({ auth: { token: sign() } });
    await gw.connect({ auth: { token: sign() } });
    const err = await refusal(gw, { auth: { token: sign() } });
    assert.equal(err.message, "xhr poll error");
    assert.equal(err.description, 503);
    const open = await fetch(gw.url + "/socket.io/?EIO=4&transport=polling");
    assert.equal((await open.json()).code, "CONNECTION_LIMIT");
    assert.deepEqual(await a.emitWithAck("echo", 1), 1);
    a.disconnect();
    await sleep(100);
    await gw.connect({ auth: { token: sign() } });
  } finally {
    await gw.stop();
  }
});

test("a transport that never sends the Socket.IO handshake is closed after SOCKGATE_HANDSHAKE_TIMEOUT", async () => {
  const gw = await startGateway({ SOCKGATE_HANDSHAKE_TIMEOUT: "1" });
  try {
    const ws = new WebSocket(gw.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket");
    const opened = Date.now();
    const closedAt = await new Promise((resolve, reject) => {
      ws.on("close", () => resolve(Date.now()));
      ws.on("error", reject);
      setTimeout(() => reject(new Error("still open after 5 s")), 5000);
    });
    assert.ok(closedAt - opened >= 900 && closedAt - opened < 3000, `closed after ${closedAt - opened} ms`);
  } finally {
    await gw.stop();
  }
});

test("an oversized message closes only its own connection", async () => {
  const gw = await startGateway({ SOCKGATE_MAX_MESSAGE: "2000" });
  try {
    const big = await gw.connect({ auth: { token: sign({ sub: "big" }) }, transports: ["websocket"] });
    const bystander = await gw.connect({ auth: { token: sign({ sub: "small" }) } });
    const gone = new Promise((r) => big.once("disconnect", r));
    big.emit("echo", "x".repeat(10_000));
    await gone;
    assert.deepEqual(await bystander.emitWithAck("echo", "ok"), "ok");
  } finally {
    await gw.stop();
  }
});

test("SOCKGATE_ALLOWED_ORIGINS refuses other browser origins", async () => {
  const gw = await startGateway({ SOCKGATE_ALLOWED_ORIGINS: "https://app.example, https://admin.example" });
  try {
    for (const transports of [["websocket"], ["polling"]]) {
      const err = await refusal(gw, { auth: { token: sign() }, transports, extraHeaders: { origin: "https://evil.example" } });
      assert.match(err.message, /^ORIGIN_FORBIDDEN: /);
      await gw.connect({ auth: { token: sign() }, transports, extraHeaders: { origin: "https://admin.example" } });
    }
    // Clients without an Origin (native apps, servers) are let through.
    await gw.connect({ auth: { token: sign() } });
  } finally {
    await gw.stop();
  }
});

test("cookie auth without an origin list refuses to start", async () => {
  const out = await run(["serve"], { JWT_SECRET: "x".repeat(40), SOCKGATE_AUTH_COOKIE: "sg", SOCKGATE_LISTEN: "127.0.0.1:0" });
  assert.equal(out.code, 2);
  assert.match(out.stderr, /SOCKGATE_AUTH_COOKIE: cookie auth needs SOCKGATE_ALLOWED_ORIGINS/);
  const star = await run(["serve"], { JWT_SECRET: "x".repeat(40), SOCKGATE_ALLOWED_ORIGINS: "*", SOCKGATE_LISTEN: "127.0.0.1:0" });
  assert.equal(star.code, 2);
});

test("SIGTERM: clients get session:end SERVER_SHUTDOWN, then their transport closes, and the process exits 0", async () => {
  const gw = await startGateway({ SOCKGATE_SHUTDOWN_TIMEOUT: "5" });
  const ws = await gw.connect({ auth: { token: sign() }, transports: ["websocket"] });
  const poll = await gw.connect({ auth: { token: sign() }, transports: ["polling"] });
  const endings = [ended(ws), ended(poll)];
  const exited = new Promise((r) => gw.child.once("exit", (code) => r(code)));
  gw.child.kill("SIGTERM");
  for (const { end, reason } of await Promise.all(endings)) {
    assert.equal(end.code, "SERVER_SHUTDOWN");
    assert.equal(end.reconnect, true);
    assert.equal(reason, "transport close");
  }
  assert.equal(await exited, 0);
});

test("/metrics counts handshakes by outcome, connections, joins and refreshes", async () => {
  const gw = await startGateway({ SOCKGATE_API_KEY: API_KEY });
  try {
    const metric = async (line) => {
      const text = await (await fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${API_KEY}` } })).text();
      const found = text.split("\n").find((l) => l.startsWith(line + " "));
      return found ? Number(found.split(" ").at(-1)) : 0;
    };
    const okBefore = await metric('sockgate_handshakes_total{outcome="OK"}');
    const s = await gw.connect({ auth: { token: sign({ rooms: ["chat:*"] }) }, transports: ["websocket"] });
    await refusal(gw, { auth: { token: "junk" } });
    await refusal(gw, {});
    await s.emitWithAck("room:join", { room: "chat:1" });
    await s.emitWithAck("room:join", { room: "secret" });
    // A refresh must move exp forward (TOKEN_NOT_NEWER otherwise).
    await s.emitWithAck("auth:refresh", { token: sign({}, { ttl: 600 }) });
    assert.equal(await metric('sockgate_handshakes_total{outcome="OK"}'), okBefore + 1);
    assert.ok((await metric('sockgate_handshakes_total{outcome="TOKEN_INVALID"}')) >= 1);
    assert.ok((await metric('sockgate_handshakes_total{outcome="AUTH_REQUIRED"}')) >= 1);
    assert.equal(await metric('sockgate_connections{transport="websocket"}'), 1);
    assert.equal(await metric("sockgate_sessions"), 1);
    assert.equal(await metric('sockgate_room_joins_total{result="allowed"}'), 1);
    assert.equal(await metric('sockgate_room_joins_total{result="denied"}'), 1);
    assert.equal(await metric('sockgate_refreshes_total{outcome="OK"}'), 1);
    assert.ok((await metric("sockgate_messages_in_total")) >= 3);
    assert.ok((await metric("sockgate_verify_seconds_count")) >= 3);
    s.disconnect();
    await sleep(100);
    assert.equal(await metric('sockgate_connections{transport="websocket"}'), 0);
    assert.equal(await metric("sockgate_sessions"), 0);
  } finally {
    await gw.stop();
  }
});

test("CORS: only the allowed origins, with credentials, never a wildcard", async () => {
  const open = await startGateway({ SOCKGATE_API_KEY: API_KEY });
  const strict = await startGateway({ SOCKGATE_API_KEY: API_KEY, SOCKGATE_ALLOWED_ORIGINS: "https://app.example" });
  try {
    const preflight = (gw, origin, path) =>
      fetch(gw.url + path, {
        method: "OPTIONS",
        headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "authorization,content-type" },
      });
    for (const path of ["/api/revocations", "/socket.io/?EIO=4&transport=polling"]) {
      const ok = await preflight(strict, "https://app.example", path);
      assert.equal(ok.headers.get("access-control-allow-origin"), "https://app.example", path);
      assert.equal(ok.headers.get("access-control-allow-credentials"), "true", path);
      const evil = await preflight(strict, "https://evil.example", path);
      assert.equal(evil.headers.get("access-control-allow-origin"), null, path);
      const none = await preflight(open, "https://app.example", path);
      assert.equal(none.headers.get("access-control-allow-origin"), null, `${path}: no origins configured, no CORS`);
    }
    const poll = await fetch(strict.url + "/socket.io/?EIO=4&transport=polling", { headers: { origin: "https://app.example" } });
    assert.equal(poll.headers.get("access-control-allow-origin"), "https://app.example");
  } finally {
    await open.stop();
    await strict.stop();
  }
});

test("/metrics is not public: the API key on the main listener, or its own address", async () => {
  const open = await startGateway();
  const keyed = await startGateway({ SOCKGATE_API_KEY: API_KEY });
  const port = await freePort();
  const separate = await startGateway({ SOCKGATE_METRICS_LISTEN: `127.0.0.1:${port}` });
  try {
    for (const gw of [open, keyed, separate]) await gw.connect({ auth: { token: sign() } });
    assert.equal((await fetch(`${open.url}/metrics`)).status, 404, "no key, no metrics on the public listener");
    assert.equal((await fetch(`${keyed.url}/metrics`)).status, 401);
    assert.equal((await fetch(`${keyed.url}/metrics`, { headers: { authorization: "Bearer wrong-key-wrong-key" } })).status, 401);
    const ok = await fetch(`${keyed.url}/metrics`, { headers: { authorization: `Bearer ${API_KEY}` } });
    assert.equal(ok.status, 200);
    assert.match(await ok.text(), /sockgate_/);
    const scraped = await fetch(`http://127.0.0.1:${port}/metrics`);
    assert.equal(scraped.status, 200);
    assert.match(await scraped.text(), /sockgate_handshakes_total/);
    assert.equal((await fetch(`${separate.url}/metrics`)).status, 404);
  } finally {
    await open.stop();
    await keyed.stop();
    await separate.stop();
  }
});
