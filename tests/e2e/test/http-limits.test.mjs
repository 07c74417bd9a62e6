// The HTTP door and the server's connection limits (security review [1/9],
// findings 2, 4, 7, 11 and 15a): raw sockets and the official client from
// two loopback addresses, 127.0.0.1 and 127.0.0.2 (Linux routes all of
// 127.0.0.0/8 to lo), against the real binary.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { API_KEY, eventually, sign, startGateway } from "./helpers.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The headers of a WebSocket opening (RFC 6455 §4.1). */
const WS_HEADERS = {
  connection: "Upgrade",
  upgrade: "websocket",
  "sec-websocket-version": "13",
  "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
};

/** A raw HTTP request from a chosen loopback address; a 101 answer counts (and is closed). */
function request(url, { method = "GET", from = "127.0.0.1", headers = {}, body } = {}) {
  const { hostname, port, pathname, search } = new URL(url);
  return new Promise((resolve) => {
    const req = http.request({ host: hostname, port, path: pathname + search, method, localAddress: from, agent: false, headers }, (res) => {
      let text = "";
      res.on("data", (d) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode, text, headers: res.headers }));
    });
    req.on("upgrade", (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode, text: "", headers: res.headers });
    });
    req.on("error", (err) => resolve({ status: 0, text: err.code, headers: {} }));
    req.end(body);
  });
}

const codeOf = (answer) => {
  try {
    return JSON.parse(answer.text).code;
  } catch {
    return undefined;
  }
};

/** Opens a long-polling session from `from` by raw HTTP; resolves its sid. */
async function openPolling(gw, from) {
  const open = await request(`${gw.url}/socket.io/?EIO=4&transport=polling`, { from });
  assert.equal(open.status, 200, open.text);
  return JSON.parse(open.text.slice(1)).sid;
}

/**
 * A TCP connection from `from` that sends nothing unless told; `closed`
 * turns true when the server closes it, `data` gathers what it answers.
 */
async function tcp(gw, from = "127.0.0.1") {
  const socket = net.connect({ host: "127.0.0.1", port: Number(new URL(gw.url).port), localAddress: from });
  const conn = { socket, closed: false, data: "" };
  socket.on("data", (d) => (conn.data += d));
  socket.on("close", () => (conn.closed = true));
  socket.on("error", () => {});
  await new Promise((resolve) => {
    socket.once("connect", resolve);
    socket.once("close", resolve);
  });
  return conn;
}

const closedCount = (conns) => conns.filter((c) => c.closed).length;

/** A socket.io-client whose connections all leave from `from`. */
function connectFrom(gw, from, sub) {
  return gw.connect({ agent: new http.Agent({ localAddress: from }), auth: { token: sign({ sub }) } });
}

test("a repeated sid is refused: another address can neither poll, post nor upgrade a session with sid=<own>&sid=<victim>", async () => {
  const gw = await startGateway();
  try {
    const base = `${gw.url}/socket.io/?EIO=4&transport=polling`;
    // The victim at 127.0.0.1 opens a session and connects; the CONNECT
    // answer waits in its outbox for its next poll.
    const victim = await openPolling(gw, "127.0.0.1");
    const connect = await request(`${base}&sid=${victim}`, {
      method: "POST",
      headers: { "content-type": "text/plain;charset=UTF-8" },
      body: `40${JSON.stringify({ token: sign({ sub: "victim" }) })}`,
    });
    assert.equal(connect.status, 200, connect.text);
    // The attacker at 127.0.0.2 holds a session of its own, the decoy.
    const decoy = await openPolling(gw, "127.0.0.2");
    for (const sids of [`sid=${decoy}&sid=${victim}`, `sid=${victim}&sid=${decoy}`]) {
      const order = sids.startsWith(`sid=${decoy}`) ? "decoy first" : "victim first";
      const attempts = {
        poll: await request(`${base}&${sids}`, { from: "127.0.0.2" }),
        post: await request(`${base}&${sids}`, {
          method: "POST",
          from: "127.0.0.2",
          headers: { "content-type": "text/plain;charset=UTF-8" },
          body: '42["room:join",{"room":"x"}]',
        }),
        upgrade: await request(`${gw.url}/socket.io/?EIO=4&transport=websocket&${sids}`, { from: "127.0.0.2", headers: WS_HEADERS }),
      };
      for (const [what, answer] of Object.entries(attempts)) {
        assert.equal(answer.status, 400, `${what}, ${order}: ${answer.status} ${answer.text}`);
        assert.equal(codeOf(answer), "INVALID_REQUEST", `${what}, ${order}: ${answer.text}`);
      }
    }
    // Nothing was read from the victim's outbox: its own poll gets the
    // CONNECT answer, and its session goes on.
    const mine = await request(`${base}&sid=${victim}`);
    assert.equal(mine.status, 200, mine.text);
    assert.match(mine.text, /(^|\x1e)40\{[^\x1e]*"sid":/, mine.text);
    const ping = await request(`${base}&sid=${victim}`, { method: "POST", headers: { "content-type": "text/plain;charset=UTF-8" }, body: "3" });
    assert.equal(ping.status, 200, ping.text);
  } finally {
    await gw.stop();
  }
});

test("a repeated sid does not disturb the victim's socket.io-client session", async () => {
  const gw = await startGateway();
  try {
    const victim = await gw.connect({ transports: ["polling"], auth: { token: sign({ sub: "victim" }) } });
    let disconnected = false;
    victim.on("disconnect", () => (disconnected = true));
    const decoy = await openPolling(gw, "127.0.0.2");
    const url = `${gw.url}/socket.io/?EIO=4&transport=polling&sid=${decoy}&sid=${victim.io.engine.id}`;
    const answers = await Promise.all([
      request(url, { from: "127.0.0.2" }),
      request(url, { method: "POST", from: "127.0.0.2", headers: { "content-type": "text/plain;charset=UTF-8" }, body: '42["room:join",{"room":"x"}]' }),
      request(url.replace("transport=polling", "transport=websocket"), { from: "127.0.0.2", headers: WS_HEADERS }),
    ]);
    assert.deepEqual(answers.map((a) => a.status), [400, 400, 400], answers.map((a) => a.text).join(" | "));
    // Two polls at once would have closed the victim's session.
    await sleep(500);
    assert.equal(disconnected, false, "the victim's session survived");
    assert.equal(await victim.emitWithAck("echo", "mine"), "mine");
    assert.equal(victim.io.engine.transport.name, "polling", "nobody upgraded it");
  } finally {
    await gw.stop();
  }
});

test("opens by any method spend the handshake budget: POST and PUT are refused with 429 like GET", async () => {
  const gw = await startGateway({ SOCKGATE_HANDSHAKE_RATE: "1", SOCKGATE_HANDSHAKE_BURST: "3" });
  try {
    const ws = `${gw.url}/socket.io/?EIO=4&transport=websocket`;
    const polling = `${gw.url}/socket.io/?EIO=4&transport=polling`;
    // Three WebSocket opens by POST and PUT spend the burst; the engine
    // opens a WebSocket on GET only.
    for (const method of ["POST", "PUT", "POST"]) {
      const answer = await request(ws, { method, headers: WS_HEADERS });
      assert.equal(answer.status, 400, `${method}: ${answer.status} ${answer.text}`);
      assert.equal(codeOf(answer), 2, answer.text);
    }
    // The budget is spent for every method (a token may come back each second).
    const attempts = [];
    for (let i = 0; i < 3; i++) {
      attempts.push(await request(polling));
      attempts.push(await request(ws, { method: "POST", headers: WS_HEADERS }));
      attempts.push(await request(ws, { method: "PUT", headers: WS_HEADERS }));
      attempts.push(await request(polling, { method: "POST", headers: { "content-type": "text/plain" }, body: "40" }));
    }
    const statuses = attempts.map((a) => a.status);
    assert.ok(!statuses.includes(101), `no transport opened: ${statuses}`);
    const limited = attempts.filter((a) => a.status === 429);
    assert.ok(limited.length >= attempts.length - 2, `refused: ${statuses}`);
    for (const a of limited) {
      assert.equal(codeOf(a), "RATE_LIMITED");
      assert.ok(Number(a.headers["retry-after"]) >= 1);
    }
  } finally {
    await gw.stop();
  }
});

test("while draining, opens by any method are refused with 503 SERVER_SHUTDOWN", async () => {
  const gw = await startGateway({ SOCKGATE_DRAIN_WINDOW: "30" });
  const clients = [];
  try {
    for (let i = 0; i < 20; i++) clients.push(await gw.connect({ transports: ["websocket"], auth: { token: sign({ sub: `drain-${i}` }) } }));
    gw.child.kill("SIGTERM");
    // The node refuses opens from the moment it drains until its listener
    // closes (a quarter of a second after the last session ended): watched
    // without pauses, then every method tried at once.
    const until = Date.now() + 5000;
    while ((await request(gw.url + "/readyz")).status !== 503) assert.ok(Date.now() < until, "/readyz never answered 503");
    const ws = `${gw.url}/socket.io/?EIO=4&transport=websocket`;
    const polling = `${gw.url}/socket.io/?EIO=4&transport=polling`;
    const answers = await Promise.all([
      request(ws, { method: "PUT", headers: WS_HEADERS }),
      request(ws, { method: "POST", headers: WS_HEADERS }),
      request(polling, { method: "POST", headers: { "content-type": "text/plain" }, body: "40" }),
      request(polling, { method: "PUT" }),
    ]);
    assert.deepEqual(answers.map((a) => a.status), [503, 503, 503, 503], answers.map((a) => a.text).join(" | "));
    for (const a of answers) assert.equal(codeOf(a), "SERVER_SHUTDOWN");
  } finally {
    for (const c of clients) c.close();
    await gw.stop();
  }
});

test("per-address cap: one address's excess connections are closed at once; another address still connects", async () => {
  const gw = await startGateway({ SOCKGATE_MAX_TCP_CONNECTIONS_PER_ADDRESS: "10", SOCKGATE_HEADER_TIMEOUT: "60" });
  const held = [];
  try {
    for (let i = 0; i < 15; i++) held.push(await tcp(gw, "127.0.0.1"));
    await eventually(() => closedCount(held) >= 5, 5000, "the 5 over the cap closed");
    await sleep(300);
    assert.equal(closedCount(held), 5, "exactly the connections over the cap");
    assert.ok(held.every((c) => c.data === ""), "closed without an answer");
    // 127.0.0.1 is full; 127.0.0.2 is not held up.
    const other = await connectFrom(gw, "127.0.0.2", "other");
    assert.equal(await other.emitWithAck("echo", "in"), "in");
    // Places come back when connections close.
    for (const c of held) c.socket.destroy();
    const again = await eventually(() => connectFrom(gw, "127.0.0.1", "again").catch(() => null), 5000, "127.0.0.1 connects again");
    assert.equal(await again.emitWithAck("echo", "back"), "back");
  } finally {
    for (const c of held) c.socket.destroy();
    await gw.stop();
  }
});

test("total cap: connections past SOCKGATE_MAX_TCP_CONNECTIONS are closed at once, from any address; places come back", async () => {
  const gw = await startGateway({
    SOCKGATE_MAX_TCP_CONNECTIONS: "20",
    SOCKGATE_MAX_TCP_CONNECTIONS_PER_ADDRESS: "0",
    SOCKGATE_HEADER_TIMEOUT: "60",
  });
  const held = [];
  try {
    for (let i = 0; i < 24; i++) held.push(await tcp(gw, i % 2 ? "127.0.0.2" : "127.0.0.1"));
    await eventually(() => closedCount(held) >= 4, 5000, "the 4 over the cap closed");
    await sleep(300);
    assert.equal(closedCount(held), 4, "exactly the connections over the cap");
    // At the cap a client cannot even open its transport.
    await assert.rejects(gw.connect({ auth: { token: sign({ sub: "late" }) } }));
    for (const c of held.filter((c) => !c.closed).slice(0, 5)) c.socket.destroy();
    const s = await eventually(() => gw.connect({ auth: { token: sign({ sub: "late" }) } }).catch(() => null), 5000, "a client connects once places free up");
    assert.equal(await s.emitWithAck("echo", "x"), "x");
  } finally {
    for (const c of held) c.socket.destroy();
    await gw.stop();
  }
});

test("header and keep-alive timeouts close idle connections; a long-poll and a WebSocket in use are not cut", async () => {
  const gw = await startGateway({ SOCKGATE_HEADER_TIMEOUT: "1", SOCKGATE_KEEPALIVE_TIMEOUT: "2" });
  const conns = [];
  try {
    const silent = await tcp(gw);
    const partial = await tcp(gw);
    partial.socket.write("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    const kept = await tcp(gw);
    kept.socket.write("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    conns.push(silent, partial, kept);
    const polling = await gw.connect({ transports: ["polling"], auth: { token: sign({ sub: "poller" }) } });
    const ws = await gw.connect({ transports: ["websocket"], auth: { token: sign({ sub: "socket" }) } });
    await eventually(() => silent.closed && partial.closed, 10000, "connections without a whole head closed");
    assert.equal(silent.data + partial.data, "", "closed without an answer");
    await eventually(() => kept.closed, 10000, "an idle keep-alive connection closed");
    assert.match(kept.data, /^HTTP\/1\.1 200 /, "its request was answered first");
    // Past both timeouts, the long-poll (a request in flight) and the
    // WebSocket (no longer HTTP) are still there.
    await sleep(1500);
    assert.ok(polling.connected && ws.connected);
    assert.equal(await polling.emitWithAck("echo", "p"), "p");
    assert.equal(await ws.emitWithAck("echo", "w"), "w");
  } finally {
    for (const c of conns) c.socket.destroy();
    await gw.stop();
  }
});

test("a request body that does not arrive within SOCKGATE_BODY_TIMEOUT ends its request (admin API, long-polling post)", async () => {
  const gw = await startGateway({
    SOCKGATE_BODY_TIMEOUT: "1",
    SOCKGATE_API_KEY: API_KEY,
    SOCKGATE_HEADER_TIMEOUT: "60",
    SOCKGATE_KEEPALIVE_TIMEOUT: "60",
  });
  const conns = [];
  try {
    const sid = await openPolling(gw, "127.0.0.1");
    const api = await tcp(gw);
    const post = await tcp(gw);
    conns.push(api, post);
    api.socket.write(
      `POST /api/publish HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${API_KEY}\r\n` +
        `Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"room":`,
    );
    post.socket.write(
      `POST /socket.io/?EIO=4&transport=polling&sid=${sid} HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
        `Content-Type: text/plain;charset=UTF-8\r\nContent-Length: 1000\r\n\r\n42["echo"`,
    );
    const ended = (c) => c.closed || /^HTTP\/1\.1 \d{3} [^]*\r\n\r\n/.test(c.data);
    await eventually(() => ended(api) && ended(post), 10000, "both slow bodies ended");
    // The API refuses the call; the engine closes the session whose post
    // did not arrive (its client reconnects).
    assert.match(api.data, /^HTTP\/1\.1 400 [^]*INVALID_REQUEST/, api.data);
    assert.match(post.data, /^HTTP\/1\.1 4\d\d /, post.data);
  } finally {
    for (const c of conns) c.socket.destroy();
    await gw.stop();
  }
});

/** Posts the dashboard login form from `from`, from the dashboard's own origin unless told. */
function login(gw, { from = "127.0.0.1", key = API_KEY, origin, body, type = "application/x-www-form-urlencoded" } = {}) {
  const host = new URL(gw.url).host;
  return request(`${gw.url}/dashboard/login`, {
    method: "POST",
    from,
    headers: { host, origin: origin ?? `http://${host}`, "content-type": type },
    body: body ?? `key=${encodeURIComponent(key)}`,
  });
}

const loggedIn = (a) => a.status === 303 && a.headers.location === "/dashboard" && /^sockgate_dashboard=\w+/.test(a.headers["set-cookie"]?.[0] ?? "");
const denied = (a) => a.status === 303 && a.headers.location === "/dashboard?denied";

/** Resolves once the gateway has logged a refused dashboard login since line `since`. */
async function refusalLogged(gw, since) {
  const until = Date.now() + 5000;
  for (;;) {
    if (gw.logs.slice(since).some((l) => l.includes('"dashboard login refused"'))) return;
    assert.ok(Date.now() < until, "no dashboard login refusal logged");
    await sleep(5);
  }
}

test("dashboard logins are throttled per address: junk from elsewhere never locks the operator out", async () => {
  const gw = await startGateway({ SOCKGATE_API_KEY: API_KEY });
  try {
    // A wrong key from 127.0.0.2 holds that address's turn for a second;
    // the operator at 127.0.0.1 logs in meanwhile, at once.
    let since = gw.logs.length;
    const guess = login(gw, { from: "127.0.0.2", key: "a-wrong-guess-a-wrong-guess" });
    await refusalLogged(gw, since);
    const operator = await login(gw);
    assert.ok(loggedIn(operator), `operator: ${operator.status} ${operator.text}`);
    assert.ok(denied(await guess));

    // A post from another origin, or one that is no login form, says
    // nothing about the key and takes no turn, even from the operator's
    // own address.
    const junk = [
      { origin: "http://evil.example" },
      { body: "nokey=1" },
      { type: "application/json", body: '{"key":"x"}' },
    ];
    for (const j of junk) {
      since = gw.logs.length;
      const pending = login(gw, j);
      await refusalLogged(gw, since);
      const again = await login(gw);
      assert.ok(loggedIn(again), `after ${JSON.stringify(j)}: ${again.status} ${again.text}`);
      assert.ok(!loggedIn(await pending), JSON.stringify(j));
    }

    // A guesser at one address is held to one key at a time, a second each,
    // however many connections it opens.
    const burst = await Promise.all(Array.from({ length: 5 }, (_, i) => login(gw, { from: "127.0.0.2", key: `guess-${i}-guess-${i}-guess-${i}` })));
    assert.equal(burst.filter(denied).length, 1, burst.map((a) => a.status).join(","));
    assert.equal(burst.filter((a) => a.status === 429).length, 4);
  } finally {
    await gw.stop();
  }
});

const HTTP2_PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/** An empty HTTP/2 SETTINGS frame (RFC 9113 §6.5). */
const EMPTY_SETTINGS = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);

/** What a connection answers to `bytes` within 3 s (or until it closes). */
async function answerTo(socket, bytes) {
  const chunks = [];
  socket.on("data", (d) => chunks.push(d));
  socket.write(bytes);
  await new Promise((resolve) => {
    const timer = setTimeout(resolve, 3000);
    socket.on("close", () => {
      clearTimeout(timer);
      resolve();
    });
    socket.on("data", () => {
      if (Buffer.concat(chunks).length >= 9) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  socket.destroy();
  return Buffer.concat(chunks);
}

/** Whether `answer` opens with an HTTP/2 SETTINGS frame. */
const isHttp2 = (answer) => answer.length >= 9 && answer[3] === 4;

test("HTTP/2 is off unless SOCKGATE_HTTP2: an h2c prior-knowledge preface gets no HTTP/2 answer", async () => {
  for (const [env, http2] of [[{}, false], [{ SOCKGATE_HTTP2: "true" }, true]]) {
    const gw = await startGateway(env);
    try {
      const conn = await tcp(gw);
      const answer = await answerTo(conn.socket, Buffer.concat([Buffer.from(HTTP2_PREFACE), EMPTY_SETTINGS]));
      if (http2) assert.ok(isHttp2(answer), `SOCKGATE_HTTP2=true serves HTTP/2: ${answer.toString("hex")}`);
      else assert.equal(answer.length, 0, `no answer at all by default: ${answer.toString("hex")}`);
      // HTTP/1.1 is served either way.
      assert.equal((await request(gw.url + "/healthz")).status, 200);
    } finally {
      await gw.stop();
    }
  }
});

test("with TLS, ALPN offers h2 only when SOCKGATE_HTTP2 is on, and HTTP/2 by prior knowledge is refused", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sockgate-tls-"));
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost",
    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
  ], { stdio: "ignore" });
  const ca = readFileSync(cert);
  const secure = (gw, ALPNProtocols) =>
    new Promise((resolve, reject) => {
      const socket = tls.connect({ host: "127.0.0.1", port: Number(new URL(gw.url).port), ca, ALPNProtocols }, () => resolve(socket));
      socket.once("error", reject);
    });
  for (const [env, offered] of [[{}, "http/1.1"], [{ SOCKGATE_HTTP2: "true" }, "h2"]]) {
    const gw = await startGateway({ SOCKGATE_TLS_CERT: cert, SOCKGATE_TLS_KEY: key, ...env });
    try {
      const negotiated = await secure(gw, ["h2", "http/1.1"]);
      assert.equal(negotiated.alpnProtocol, offered);
      negotiated.destroy();
      if (offered === "http/1.1") {
        // Without ALPN, a client that just speaks HTTP/2 gets no answer either.
        const plain = await secure(gw, undefined);
        const answer = await answerTo(plain, Buffer.concat([Buffer.from(HTTP2_PREFACE), EMPTY_SETTINGS]));
        assert.equal(answer.length, 0, answer.toString("hex"));
      }
    } finally {
      await gw.stop();
    }
  }
});
