// @sockgate/client against the real sockgate binary: refresh, reconnect,
// terminal ends, and bursts, as an app lives through them.
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

test("a failed refresh is retried with backoff and the session stays up", async (t) => {
  let asked = 0;
  // The second token (the first refresh) names another user.
  const getToken = () => (++asked === 2 ? sign("mallory") : sign("alice", { ttl: 8 }));
  const { client } = await setup(t, { SOCKGATE_REFRESH_LEAD: "2" }, { getToken });
  const recorded = recordStates(client);
  const refreshes = [];
  client.on("refresh", (r) => refreshes.push(r));
  await reach(client, "connected");
  await eventually(() => refreshes.some((r) => r.ok), 12000, "a successful refresh");
  assert.deepEqual(
    refreshes.map((r) => (r.ok ? "ok" : `${r.code} ${r.willRetry}`)),
    ["SUBJECT_MISMATCH true", "ok"],
  );
  assert.deepEqual(states(recorded), ["connecting", "connected"]);
  assert.equal(client.socket.connected, true);
});

test("a refresh that keeps failing ends in SESSION_EXPIRED, and the client comes back with a fresh token", async (t) => {
  let client;
  // While connected, every token names another user, so refreshes fail;
  // a connection attempt gets a good one.
  const getToken = () => (client?.state === "connected" ? sign("mallory") : sign("erin", { ttl: 8 }));
  ({ client } = await setup(t, { SOCKGATE_REFRESH_LEAD: "2" }, { getToken }));
  const recorded = recordStates(client);
  const refreshes = [];
  client.on("refresh", (r) => refreshes.push(r));
  await reach(client, "connected");
  await eventually(() => recorded.filter((s) => s.state === "connected").length === 2, 20000, "connected again");
  assert.deepEqual(states(recorded), ["connecting", "connected", "reconnecting", "connected"]);
  assert.equal(recorded[2].info.code, "SESSION_EXPIRED");
  assert.equal(recorded[2].info.attempt, 1);
  assert.ok(recorded[2].info.delayMs >= 0 && recorded[2].info.delayMs < 1000, `delay ${recorded[2].info.delayMs}`);
  assert.ok(refreshes.length >= 2, `retried: ${JSON.stringify(refreshes)}`);
  assert.ok(refreshes.every((r) => !r.ok && r.code === "SUBJECT_MISMATCH"));
  // Retried until the expiry cut it short: every retry but the last was
  // announced (the last either gave up or was in flight at the end).
  assert.ok(refreshes.slice(0, -1).every((r) => r.willRetry), JSON.stringify(refreshes));
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
  for (const s of retries) assert.ok(["RATE_LIMITED", "CONNECTION_LIMIT", undefined].includes(s.info.code), JSON.stringify(s.info));
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
  await refused(alice.joinRoom("user:bob"), "FORBIDDEN");
  bob.close();
  await refused(bob.joinRoom("chat:lobby"), "NOT_CONNECTED");
  assert.equal(bob.state, "ended");
  assert.equal(bob.ended, null, "closed by the app: no code");
});
