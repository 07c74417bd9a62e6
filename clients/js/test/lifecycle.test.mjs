// @sockgate/client against the real sockgate binary: refresh, reconnect,
// terminal ends, and bursts, as an app lives through them.
import { createServer } from "node:http";
import { test } from "node:test";
import assert from "node:assert/strict";
import { createClient, SockgateError } from "../dist/index.js";
import { eventually, freePort, reach, recordStates, sign, sleep, startGateway } from "./support/gateway.mjs";

/** Starts a gateway and a client for the test; both are stopped after it. */
async function setup(t, env, options) {
  const gw = await startGateway(env);
  t.after(() => gw.stop());
  const make = (opts) => {
    const client = createClient(gw.url, opts);
    t.after(() => client.close());
    return client;
  };
  return { gw, make, client: options ? make(options) : undefined };
}

const states = (recorded) => recorded.map((s) => s.state);

test("stays connected across three 4-second token lifetimes, refreshing in-band", async (t) => {
  let asked = 0;
  const { gw, client } = await setup(t, { SOCKGATE_REFRESH_LEAD: "1" }, { getToken: () => (asked++, sign("alice", { ttl: 4 })) });
  const recorded = recordStates(client);
  const refreshes = [];
  client.on("refresh", (r) => refreshes.push(r));
  let disconnects = 0;
  client.socket.on("disconnect", () => disconnects++);

  await reach(client, "connected");
  const first = client.identity;
  assert.equal(first.userId, "alice");
  await sleep(12500);

  assert.deepEqual(states(recorded), ["connecting", "connected"], "never left connected");
  assert.equal(disconnects, 0);
  assert.ok(Date.now() / 1000 > first.expiresAt + 8, "outlived three lifetimes");
  assert.ok(refreshes.length >= 3, `${refreshes.length} refreshes`);
  assert.ok(refreshes.every((r) => r.ok), JSON.stringify(refreshes));
  assert.equal(asked, 1 + refreshes.length, "getToken asked at connect and for each refresh");
  const now = await client.whoami();
  assert.equal(now.sessionId, first.sessionId, "the same session all along");
  assert.ok(now.expiresAt >= first.expiresAt + 8, "runs on a much later token");
  assert.deepEqual(client.identity.expiresAt, now.expiresAt, "identity follows the refreshes");
  assert.equal(gw.authDecisions("alice").length, 1, "one handshake");
});

/**
 * Watches the `auth:refresh` packets the client puts on the wire (their
 * tokens, in order). `lose` of them, the first ones, are dropped on the way
 * out, as a lossy network would: the ack never comes and the client sees
 * TIMEOUT.
 */
function refreshPackets(client, { lose = 0 } = {}) {
  const tokens = [];
  const send = client.socket.packet;
  client.socket.packet = function (packet) {
    if (packet.data?.[0] === "auth:refresh") {
      tokens.push(packet.data[1]?.token);
      if (tokens.length <= lose) return;
    }
    return send.call(this, packet);
  };
  return tokens;
}

const outcomes = (refreshes) => refreshes.map((r) => (r.ok ? "ok" : `${r.code} ${r.willRetry}`));

test("a backend that never re-mints produces at most two refresh attempts per token", async (t) => {
  // The app's backend keeps handing back the token it already gave: a
  // refresh cannot push exp further. The server refuses it with
  // TOKEN_NOT_NEWER and warns once per exp; the client takes no for an
  // answer and lets the session end at exp.
  const token = sign("nora", { ttl: 8 });
  let asked = 0;
  let askedWhileConnected = 0;
  let client;
  const getToken = () => {
    asked++;
    if (client?.state === "connected") askedWhileConnected++;
    return token;
  };
  ({ client } = await setup(t, {}, { getToken, backoff: { initialDelayMs: 100 } }));
  const recorded = recordStates(client);
  const refreshes = [];
  client.on("refresh", (r) => refreshes.push(r));
  const packets = refreshPackets(client);
  const warnings = [];
  client.socket.on("auth:expiring", (w) => warnings.push(w));

  await reach(client, "connected");
  const { expiresAt } = client.identity;
  // The server warns a quarter of the 8-second lifetime ahead, 2 s before exp.
  await eventually(() => recorded.some((s) => s.info.code === "SESSION_EXPIRED"), 20000, "the session ended at exp");
  assert.deepEqual(warnings.map((w) => w.expiresAt), [expiresAt], "one warning for the token's exp");
  assert.ok(packets.length <= 2, `${packets.length} auth:refresh attempts`);
  assert.deepEqual(outcomes(refreshes), ["TOKEN_NOT_NEWER false"], "refused as not newer, and not retried");
  assert.equal(askedWhileConnected, 1, "getToken asked once for the warning");

  // Reconnecting, the same (now expired) token is refused; asked once more, then the end.
  const info = await reach(client, "ended");
  assert.equal(info.code, "TOKEN_EXPIRED");
  assert.equal(asked, 4, "connect, the warning, the reconnect and its one more ask");
});

test("a repeated auth:expiring for the same exp is answered with one refresh", async (t) => {
  let asked = 0;
  let askedWhileConnected = 0;
  let client;
  const getToken = () => {
    asked++;
    if (client?.state === "connected") askedWhileConnected++;
    return sign("otto", { ttl: 8 });
  };
  ({ client } = await setup(t, {}, { getToken }));
  const refreshes = [];
  client.on("refresh", (r) => refreshes.push(r));
  const packets = refreshPackets(client);
  // Delivers a server packet again, as an older server sent it: the warning
  // once more after a refresh that did not move exp.
  const repeat = (warning) => client.socket.onpacket({ type: 2, nsp: "/", data: ["auth:expiring", warning] });
  const warnings = [];
  client.socket.on("auth:expiring", (w) => {
    warnings.push(w);
    if (warnings.length === 1) setImmediate(() => repeat(w));
  });

  await reach(client, "connected");
  await eventually(() => refreshes.length > 0, 15000, "the refresh after the warning");
  assert.deepEqual(outcomes(refreshes), ["ok"]);
  repeat(warnings[0]);
  // A round trip: a refresh started by the repeats would be on the wire by now.
  await client.whoami();
  assert.equal(warnings.length, 3, "the warning and two repeats arrived");
  assert.equal(askedWhileConnected, 1, "getToken asked once");
  assert.equal(packets.length, 1, "one auth:refresh");
  assert.deepEqual(outcomes(refreshes), ["ok"]);
  assert.equal(asked, 2);
  assert.equal(client.state, "connected");
});

test("a refresh lost on the way is retried once, with the token already obtained", async (t) => {
  let asked = 0;
  // A warning 4 s before exp leaves time for the 1-second timeout and the retry.
  const { client } = await setup(t, {}, { getToken: () => (asked++, sign("paula", { ttl: 16 })), ackTimeoutMs: 1000 });
  const recorded = recordStates(client);
  const refreshes = [];
  client.on("refresh", (r) => refreshes.push(r));
  const packets = refreshPackets(client, { lose: 1 });
  await reach(client, "connected");
  const first = client.identity.expiresAt;
  await eventually(() => refreshes.some((r) => r.ok), 20000, "a successful refresh");
  assert.deepEqual(outcomes(refreshes), ["TIMEOUT true", "ok"]);
  assert.equal(packets.length, 2);
  assert.equal(packets[0], packets[1], "the retry sends the same token");
  assert.equal(asked, 2, "getToken asked once at connect and once for the warning");
  await eventually(() => client.identity?.expiresAt > first, 5000, "the identity follows the refresh");
  assert.deepEqual(states(recorded), ["connecting", "connected"]);
});

test("getToken throwing during a refresh: one retry, which asks it again", async (t) => {
  let asked = 0;
  const getToken = () => {
    if (++asked === 2) throw new Error("token endpoint answered 502");
    return sign("quinn", { ttl: 12 });
  };
  const { client } = await setup(t, {}, { getToken });
  const recorded = recordStates(client);
  const refreshes = [];
  client.on("refresh", (r) => refreshes.push(r));
  const packets = refreshPackets(client);
  await reach(client, "connected");
  await eventually(() => refreshes.some((r) => r.ok), 20000, "a successful refresh");
  assert.deepEqual(outcomes(refreshes), ["AUTH_UNAVAILABLE true", "ok"]);
  assert.match(refreshes[0].message, /getToken\(\) failed: token endpoint answered 502/);
  assert.equal(asked, 3);
  assert.equal(packets.length, 1, "nothing was sent for the failed ask");
  assert.deepEqual(states(recorded), ["connecting", "connected"]);
  assert.equal(client.socket.connected, true);
});

test("a refused refresh is not retried; the session ends with SESSION_EXPIRED and the client comes back with a fresh token", async (t) => {
  let client;
  let askedWhileConnected = 0;
  // While connected, every token names another user, so the refresh is
  // refused (SUBJECT_MISMATCH, terminal); a connection attempt gets a good one.
  const getToken = () => {
    if (client?.state !== "connected") return sign("erin", { ttl: 8 });
    askedWhileConnected++;
    return sign("mallory");
  };
  ({ client } = await setup(t, { SOCKGATE_REFRESH_LEAD: "2" }, { getToken }));
  const recorded = recordStates(client);
  const refreshes = [];
  client.on("refresh", (r) => refreshes.push(r));
  const packets = refreshPackets(client);
  await reach(client, "connected");
  await eventually(() => recorded.filter((s) => s.state === "connected").length === 2, 20000, "connected again");
  assert.deepEqual(states(recorded), ["connecting", "connected", "reconnecting", "connected"]);
  assert.equal(recorded[2].info.code, "SESSION_EXPIRED");
  assert.equal(recorded[2].info.attempt, 1);
  assert.ok(recorded[2].info.delayMs >= 0 && recorded[2].info.delayMs < 1000, `delay ${recorded[2].info.delayMs}`);
  assert.deepEqual(outcomes(refreshes), ["SUBJECT_MISMATCH false"]);
  assert.equal(packets.length, 1);
  assert.equal(askedWhileConnected, 1);
  assert.equal(client.identity.userId, "erin");
});

test("a graceful restart: the client reconnects with a fresh token from getToken", async (t) => {
  const port = await freePort();
  const env = { SOCKGATE_LISTEN: `127.0.0.1:${port}`, SOCKGATE_DRAIN_WINDOW: "0.2" };
  const gw = await startGateway(env);
  const issued = [];
  const client = createClient(gw.url, {
    getToken: () => {
      issued.push(sign("bob", { n: issued.length + 1 }));
      return issued.at(-1);
    },
  });
  let gw2;
  t.after(async () => {
    client.close();
    await gw.stop();
    await gw2?.stop();
  });
  const recorded = recordStates(client);
  await reach(client, "connected");
  assert.equal(client.identity.claims.n, 1);
  const firstSession = client.identity.sessionId;

  const stopping = gw.stop({ keepData: true });
  const info = await reach(client, "reconnecting");
  assert.equal(info.code, "SERVER_SHUTDOWN");
  assert.equal(await stopping, 0, "the old process exits 0");
  // Down for longer than the first retry may wait (under 1 s): at least one
  // attempt fails on the closed port and is retried with backoff.
  await sleep(1500);
  gw2 = await startGateway({ ...env, SOCKGATE_DATA_DIR: gw.dataDir });

  await reach(client, "connected", 40000);
  assert.ok(issued.length >= 2, "getToken asked again");
  assert.equal(client.identity.claims.n, issued.length, "the newest token is the one in use");
  assert.notEqual(client.identity.sessionId, firstSession);
  const seen = states(recorded);
  assert.deepEqual(seen.slice(0, 3), ["connecting", "connected", "reconnecting"]);
  assert.equal(seen.at(-1), "connected");
  assert.ok(!seen.includes("ended"));
  // Retries while the gateway was away were spaced by the backoff.
  const retries = recorded.filter((s) => s.state === "reconnecting").map((s) => s.info.attempt);
  assert.ok(retries.length >= 2, `retried while the gateway was away: ${JSON.stringify(recorded.map((s) => s.info))}`);
  assert.deepEqual(retries, retries.map((_, i) => i + 1), "attempts count up");
  assert.equal(gw2.authDecisions("bob").length, 1);
});

test("an expired token at connect is replaced from getToken", async (t) => {
  let asked = 0;
  const getToken = () => (++asked === 1 ? sign("carol", { ttl: -30 }) : sign("carol"));
  const { gw, client } = await setup(t, {}, { getToken });
  const recorded = recordStates(client);
  await reach(client, "connected");
  assert.equal(asked, 2);
  assert.equal(client.identity.userId, "carol");
  assert.deepEqual(states(recorded), ["connecting", "connected"], "not counted as a failed attempt");
  assert.deepEqual(gw.authDecisions().map((l) => l.outcome), ["TOKEN_EXPIRED", "OK"]);
});

test("a token source that only has expired tokens ends with TOKEN_EXPIRED after asking once more", async (t) => {
  let asked = 0;
  const { client } = await setup(t, {}, { getToken: async () => (asked++, sign("carol", { ttl: -30 })) });
  const info = await reach(client, "ended");
  assert.equal(info.code, "TOKEN_EXPIRED");
  assert.equal(client.ended.code, "TOKEN_EXPIRED");
  await sleep(1500);
  assert.equal(asked, 2);
  assert.equal(client.state, "ended");
});

test("a revocation ends the client with TOKEN_REVOKED and no reconnect", async (t) => {
  let asked = 0;
  const { gw, client } = await setup(t, {}, { getToken: () => (asked++, sign("dave")) });
  const recorded = recordStates(client);
  await reach(client, "connected");
  const revoked = await gw.api("POST", "/api/revocations", { userId: "dave" });
  assert.equal(revoked.status, 201, JSON.stringify(revoked.body));
  const info = await reach(client, "ended");
  assert.equal(info.code, "TOKEN_REVOKED");
  assert.equal(client.ended.code, "TOKEN_REVOKED");
  assert.equal(typeof client.ended.message, "string");
  assert.equal(client.identity, null);
  await sleep(3000);
  assert.deepEqual(states(recorded), ["connecting", "connected", "ended"]);
  assert.equal(asked, 1, "getToken never asked again");
  assert.equal(client.socket.connected, false);
  assert.equal(gw.authDecisions("dave").length, 1, "no second handshake");
});

test("getToken() giving null ends with AUTH_REQUIRED without connecting", async (t) => {
  const { gw, make } = await setup(t, {});
  for (const getToken of [() => null, async () => null, async () => ""]) {
    let asked = 0;
    const client = make({ getToken: () => (asked++, getToken()) });
    const info = await reach(client, "ended");
    assert.equal(info.code, "AUTH_REQUIRED");
    assert.deepEqual(Object.keys(client.ended), ["code", "message"]);
    assert.equal(asked, 1);
  }
  await sleep(300);
  assert.equal(gw.authDecisions().length, 0, "no handshake reached the gateway");
});

test("400 clients from one address all connect under the default limits", async (t) => {
  const { gw, make } = await setup(t, { SOCKGATE_HANDSHAKE_RATE: undefined, SOCKGATE_HANDSHAKE_BURST: undefined });
  const clients = [];
  const histories = [];
  for (let i = 0; i < 400; i++) {
    const client = make({ getToken: () => sign(`crowd-${i}`) });
    clients.push(client);
    histories.push(recordStates(client));
  }
  await eventually(() => clients.every((c) => c.state === "connected"), 60000, "400 clients connected");
  assert.ok(clients.every((c, i) => c.identity.userId === `crowd-${i}`));
  const retries = histories.flat().filter((s) => s.info.attempt);
  // The burst went over the address's budget; the excess was refused with
  // HTTP 429 and came back after the backoff by itself.
  assert.ok(retries.some((s) => s.info.code === "RATE_LIMITED"), `some attempts were rate limited (${retries.length} retries)`);
  for (const s of retries) assert.ok(["RATE_LIMITED", "CONNECTION_LIMIT", "UNREACHABLE", undefined].includes(s.info.code), JSON.stringify(s.info));
  assert.ok(histories.every((h) => !h.some((s) => s.state === "ended")));
  const sessions = await gw.api("GET", "/api/sessions");
  assert.equal(sessions.body.sessions.length, 400);
});

test("a dropped transport comes back recovered: the same session, its rooms, what it missed", async (t) => {
  const rooms = [{ match: "chat:*", allow: ["join", "publish"] }];
  const { make } = await setup(t, {});
  const alice = make({ getToken: () => sign("alice", { rooms }) });
  const bob = make({ getToken: () => sign("bob", { rooms }) });
  await Promise.all([reach(alice, "connected"), reach(bob, "connected")]);
  await alice.joinRoom("chat:lobby");
  await bob.joinRoom("chat:lobby");
  const before = (await alice.whoami()).sessionId;
  const texts = [];
  alice.socket.on("room:message", (m) => texts.push(m.data.text));
  const recorded = recordStates(alice);

  alice.socket.io.engine.close();
  await bob.publish("chat:lobby", { text: "while you were away" });
  // The first entry is the state when recording began (connected).
  const later = () => recorded.slice(1);
  await eventually(() => later().some((s) => s.state === "connected"), 10000, "back");
  assert.deepEqual(later().map((s) => s.state), ["reconnecting", "connected"]);
  const back = later().find((s) => s.state === "connected");
  assert.equal(back.info.recovered, true, JSON.stringify(recorded));
  assert.equal((await alice.whoami()).sessionId, before, "the same session");
  await eventually(() => texts.length === 1, 5000, "the missed message");
  await bob.publish("chat:lobby", { text: "welcome back" });
  await eventually(() => texts.length === 2, 5000, "a new message in the same room");
  assert.deepEqual(texts, ["while you were away", "welcome back"]);
});

test("room helpers answer acks and throw SockgateError with the code", async (t) => {
  const rooms = [{ match: "chat:*", allow: ["join", "publish", "presence"] }];
  const { make } = await setup(t, {});
  const alice = make({ getToken: () => sign("alice", { rooms }) });
  const bob = make({ getToken: () => sign("bob", { rooms }) });
  await Promise.all([reach(alice, "connected"), reach(bob, "connected")]);

  assert.deepEqual(await alice.joinRoom("chat:lobby"), { ok: true, room: "chat:lobby", members: 1 });
  assert.equal((await bob.joinRoom("chat:lobby")).members, 2);
  const got = new Promise((resolve) => bob.socket.once("room:message", resolve));
  const sent = await alice.publish("chat:lobby", { text: "hi" });
  assert.equal(sent.ok, true);
  const message = await got;
  assert.equal(message.id, sent.id);
  assert.equal(message.from, "alice");
  assert.deepEqual(message.data, { text: "hi" });
  assert.deepEqual(await alice.members("chat:lobby"), { ok: true, room: "chat:lobby", members: ["alice", "bob"] });
  const history = await bob.history("chat:lobby", { limit: 5 });
  assert.deepEqual(
    history.messages.map((m) => [m.event, m.data.from, m.data.data]),
    [["room:message", "alice", { text: "hi" }]],
    "the room's kept messages",
  );
  assert.equal((await bob.history("chat:lobby", { since: history.offset })).messages.length, 0, "nothing after the newest offset");
  assert.deepEqual(await bob.leaveRoom("chat:lobby"), { ok: true });

  const refused = async (promise, code) => {
    const err = await promise.then(
      () => assert.fail("should have been refused"),
      (e) => e,
    );
    assert.ok(err instanceof SockgateError, String(err));
    assert.equal(err.code, code, err.message);
  };
  await refused(alice.joinRoom("secret:plans"), "FORBIDDEN");
  await refused(alice.joinRoom("has space"), "ROOM_INVALID");
  await refused(bob.publish("chat:lobby", "after leaving"), "FORBIDDEN");
  await refused(bob.history("chat:lobby"), "FORBIDDEN");
  await refused(alice.joinRoom("user:bob"), "FORBIDDEN");
  bob.close();
  await refused(bob.joinRoom("chat:lobby"), "NOT_CONNECTED");
  assert.equal(bob.state, "ended");
  assert.equal(bob.ended, null, "closed by the app: no code");
});

test("nothing listening: UNREACHABLE after the first attempt, with a hint, and the client keeps trying", async (t) => {
  const port = await freePort();
  let asked = 0;
  const client = createClient(`http://127.0.0.1:${port}`, { getToken: () => (asked++, sign("ursula")), backoff: { initialDelayMs: 50, maxDelayMs: 100 } });
  t.after(() => client.close());
  const recorded = recordStates(client);
  await eventually(() => recorded.length >= 3, 10000, "two failed attempts");
  const [first, second] = recorded.slice(1);
  assert.equal(first.state, "connecting");
  assert.equal(first.info.code, "UNREACHABLE");
  assert.equal(first.info.attempt, 1);
  assert.match(first.info.message, /^the gateway refused this origin or is unreachable: check SOCKGATE_ALLOWED_ORIGINS and the URL \(xhr poll error\)$/);
  assert.equal(client.info.code, "UNREACHABLE");
  assert.equal(second.state, "connecting");
  assert.equal(second.info.attempt, 2, "retried: UNREACHABLE is retryable");
  assert.ok(asked >= 2, "a fresh token for each attempt");
  assert.equal(client.ended, null);
  assert.equal(new SockgateError("UNREACHABLE", "x").retryable, true);
});

test("a gateway at another path: UNREACHABLE naming the HTTP status and the path option", async (t) => {
  const { make } = await setup(t, {});
  const client = make({ getToken: () => sign("victor"), path: "/realtime/", backoff: { initialDelayMs: 50, maxDelayMs: 100 } });
  const recorded = recordStates(client);
  await eventually(() => recorded.length >= 2, 10000, "a failed attempt");
  const { state, info } = recorded[1];
  assert.equal(state, "connecting");
  assert.equal(info.code, "UNREACHABLE");
  assert.match(info.message, /HTTP 404/);
  assert.match(info.message, /`path` option/);
});

test("the app's connect hook refusing with its own code ends the client with that code; its errors keep theirs", async (t) => {
  // The app's backend: a connect hook that knows one API key, and an event
  // handler that refuses with a code of its own.
  const backend = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      const call = JSON.parse(body);
      res.setHeader("content-type", "application/json");
      if (call.event === "chat:send") return res.end(JSON.stringify({ error: { code: "CHAT_FORBIDDEN", message: "muted" } }));
      if (call.auth?.apiKey === "good") return res.end(JSON.stringify({ userId: "hooked" }));
      res.end(JSON.stringify({ error: { code: "NOT_LOGGED_IN", message: "log in first" } }));
    });
  });
  await new Promise((r) => backend.listen(0, "127.0.0.1", r));
  t.after(() => backend.close());
  const url = `http://127.0.0.1:${backend.address().port}/`;
  const gw = await startGateway({ SOCKGATE_CONNECT_URL: url, SOCKGATE_EVENTS_URL: url, SOCKGATE_EVENTS_SECRET: "e".repeat(40) });
  t.after(() => gw.stop());

  const refused = createClient(gw.url, { withCredentials: true, auth: { apiKey: "bad" }, transports: ["websocket"] });
  t.after(() => refused.close());
  await reach(refused, "ended");
  assert.deepEqual(refused.ended, { code: "NOT_LOGGED_IN", message: "log in first" });

  const admitted = createClient(gw.url, { withCredentials: true, auth: { apiKey: "good" }, transports: ["websocket"] });
  t.after(() => admitted.close());
  await reach(admitted, "connected");
  assert.equal(admitted.identity.userId, "hooked");
  const ack = await admitted.socket.emitWithAck("chat:send", "hi");
  const err = SockgateError.fromAck(ack);
  assert.equal(err.code, "CHAT_FORBIDDEN");
  assert.equal(err.retryable, false, "an app's code is terminal");
});
