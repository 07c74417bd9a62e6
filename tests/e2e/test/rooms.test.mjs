// Rooms: authorization from claims, config rules and a webhook; delivery;
// presence; rights lost on refresh; the publish API; every invalid input.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { api, API_KEY, next, now, sign, startGateway } from "./helpers.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const RULES = `
[[room_rules]]
match = "team:{claims.team}:*"
allow = ["join", "publish", "presence"]

[[room_rules]]
match = "dm:{userId}:*"
allow = ["join", "publish"]

[[room_rules]]
match = "ops:*"
allow = ["join", "publish", "presence"]
role = "admin"
`;

function configFile(text) {
  const file = join(mkdtempSync(join(tmpdir(), "sockgate-cfg-")), "sockgate.toml");
  writeFileSync(file, text);
  return file;
}

/** Collects every event of `name` a socket receives. */
function inbox(socket, name = "room:message") {
  const got = [];
  socket.on(name, (m) => got.push(m));
  return got;
}

describe("rooms", () => {
  let gw;
  const as = (sub, claims = {}, opts = {}) => gw.connect({ auth: { token: sign({ sub, ...claims }) }, ...opts });
  before(async () => {
    gw = await startGateway({
      SOCKGATE_CONFIG: configFile(RULES),
      SOCKGATE_API_KEY: API_KEY,
      SOCKGATE_MAX_ROOMS_PER_SOCKET: "3",
      SOCKGATE_MAX_PAYLOAD: "1024",
    });
  });
  after(() => gw.stop());

  test("capabilities in the token: strings grant join and publish, objects their own actions", async () => {
    const s = await as("cap", { rooms: ["chat:*", { match: "news:*", allow: ["join", "presence"] }] });
    const joined = await s.emitWithAck("room:join", { room: "chat:lobby" });
    assert.deepEqual(joined, { ok: true, room: "chat:lobby", members: 1 });
    assert.equal((await s.emitWithAck("room:publish", { room: "chat:lobby", data: "hi" })).ok, true);
    assert.equal((await s.emitWithAck("room:members", { room: "chat:lobby" })).code, "FORBIDDEN");
    assert.equal((await s.emitWithAck("room:join", { room: "news:today" })).ok, true);
    assert.deepEqual((await s.emitWithAck("room:members", { room: "news:today" })).members, ["cap"]);
    const denied = await s.emitWithAck("room:publish", { room: "news:today", data: "x" });
    assert.equal(denied.code, "FORBIDDEN");
    assert.equal(typeof denied.message, "string");
    assert.equal((await s.emitWithAck("room:join", { room: "secret" })).code, "FORBIDDEN");
  });

  test("config rules with templates and roles", async () => {
    const red = await as("rose", { team: "red" });
    assert.equal((await red.emitWithAck("room:join", { room: "team:red:general" })).ok, true);
    assert.equal((await red.emitWithAck("room:join", { room: "team:blue:general" })).code, "FORBIDDEN");
    assert.equal((await red.emitWithAck("room:join", { room: "dm:rose:42" })).ok, true);
    assert.equal((await red.emitWithAck("room:join", { room: "dm:bob:42" })).code, "FORBIDDEN");
    assert.equal((await red.emitWithAck("room:join", { room: "ops:alerts" })).code, "FORBIDDEN");
    // A claim holding a wildcard must not widen the rule it fills.
    const sly = await as("sly", { team: "*" });
    assert.equal((await sly.emitWithAck("room:join", { room: "team:red:general" })).code, "FORBIDDEN");
    const admin = await as("ada", { roles: ["admin"] });
    assert.equal((await admin.emitWithAck("room:join", { room: "ops:alerts" })).ok, true);
    assert.deepEqual((await admin.emitWithAck("room:members", { room: "ops:alerts" })).members, ["ada"]);
  });

  test("user rooms are reserved", async () => {
    const s = await as("owner");
    assert.equal((await s.emitWithAck("room:join", { room: "user:someone-else" })).code, "FORBIDDEN");
    assert.deepEqual(await s.emitWithAck("room:join", { room: "user:owner" }), { ok: true, room: "user:owner", members: 1 });
    assert.equal((await s.emitWithAck("room:leave", { room: "user:owner" })).code, "FORBIDDEN");
    assert.deepEqual((await s.emitWithAck("room:members", { room: "user:owner" })).members, ["owner"]);
  });

  test("messages reach the other members only, stamped by the server", async () => {
    const caps = { rooms: ["chat:*"] };
    const alice = await as("alice", caps);
    const alice2 = await as("alice", caps);
    const aliceElsewhere = await as("alice", caps);
    const bob = await as("bob", caps);
    const carol = await as("carol", caps);
    const dave = await as("dave", caps);
    for (const s of [alice, alice2, bob, carol]) assert.equal((await s.emitWithAck("room:join", { room: "chat:lobby" })).ok, true);
    for (const s of [alice, aliceElsewhere, dave]) assert.equal((await s.emitWithAck("room:join", { room: "chat:other" })).ok, true);
    const boxes = Object.fromEntries(Object.entries({ alice, alice2, aliceElsewhere, bob, carol, dave }).map(([k, s]) => [k, inbox(s)]));

    const sent = Date.now();
    const ack = await alice.emitWithAck("room:publish", { room: "chat:lobby", data: { text: "hello", from: "mallory" } });
    assert.equal(ack.ok, true);
    assert.match(ack.id, /^[0-9a-f]+$/);
    await sleep(200);
    for (const name of ["alice2", "bob", "carol"]) {
      assert.equal(boxes[name].length, 1, name);
      const m = boxes[name][0];
      assert.deepEqual({ ...m, ts: 0 }, { id: ack.id, room: "chat:lobby", from: "alice", data: { text: "hello", from: "mallory" }, ts: 0 });
      assert.ok(m.ts >= sent - 1000 && m.ts <= Date.now() + 1000);
    }
    for (const name of ["alice", "aliceElsewhere", "dave"]) assert.equal(boxes[name].length, 0, name);

    // Not a member: refused.
    assert.equal((await dave.emitWithAck("room:publish", { room: "chat:lobby", data: 1 })).code, "FORBIDDEN");
    assert.deepEqual((await bob.emitWithAck("room:leave", { room: "chat:lobby" })), { ok: true });
    await alice.emitWithAck("room:publish", { room: "chat:lobby", data: 2 });
    await sleep(200);
    assert.equal(boxes.bob.length, 1, "a member that left gets nothing more");
    assert.equal(boxes.carol.length, 2);
  });

  test("presence follows joins, leaves and disconnects", async () => {
    const caps = { rooms: [{ match: "hall:*", allow: ["join", "presence"] }] };
    const p1 = await as("pam", caps);
    const p2 = await as("pam", caps);
    const q = await as("quinn", caps);
    for (const s of [p1, p2, q]) await s.emitWithAck("room:join", { room: "hall:1" });
    assert.deepEqual((await q.emitWithAck("room:members", { room: "hall:1" })).members, ["pam", "quinn"]);
    assert.deepEqual((await api(gw, "GET", "/api/rooms/hall:1/members")).body, { room: "hall:1", members: ["pam", "quinn"] });
    p1.disconnect();
    await sleep(100);
    assert.deepEqual((await q.emitWithAck("room:members", { room: "hall:1" })).members, ["pam", "quinn"], "pam still has a socket");
    await p2.emitWithAck("room:leave", { room: "hall:1" });
    assert.deepEqual((await q.emitWithAck("room:members", { room: "hall:1" })).members, ["quinn"]);
    const joined = await p2.emitWithAck("room:join", { room: "hall:1" });
    assert.equal(joined.members, 2);
  });

  test("a refresh recomputes rights: rooms no longer allowed are left with room:revoked", async () => {
    const s = await as("rhea", { rooms: ["chat:*", "club:*"], iat: now() });
    const peer = await as("peer", { rooms: ["chat:*"] });
    await s.emitWithAck("room:join", { room: "chat:refresh" });
    await s.emitWithAck("room:join", { room: "club:1" });
    await peer.emitWithAck("room:join", { room: "chat:refresh" });
    const revoked = next(s, "room:revoked");
    const ack = await s.emitWithAck("auth:refresh", { token: sign({ sub: "rhea", rooms: ["club:*"] }, { ttl: 600 }) });
    assert.equal(ack.ok, true);
    assert.deepEqual(await revoked, { room: "chat:refresh" });
    const box = inbox(s);
    await peer.emitWithAck("room:publish", { room: "chat:refresh", data: "after" });
    await sleep(150);
    assert.equal(box.length, 0, "no more messages from the lost room");
    assert.equal((await s.emitWithAck("room:publish", { room: "chat:refresh", data: 1 })).code, "FORBIDDEN");
    assert.equal((await s.emitWithAck("room:publish", { room: "club:1", data: 1 })).ok, true, "allowed rooms are kept");
    assert.deepEqual((await api(gw, "GET", "/api/rooms/chat:refresh/members")).body.members, ["peer"]);
  });

  test("invalid room events get ROOM_INVALID, INVALID_REQUEST, ROOM_LIMIT, PAYLOAD_TOO_LARGE", async () => {
    const s = await as("ivan", { rooms: ["*"] });
    const cases = [
      ["room:join", { room: 5 }, "ROOM_INVALID"],
      ["room:join", { room: "" }, "ROOM_INVALID"],
      ["room:join", { room: "has space" }, "ROOM_INVALID"],
      ["room:join", { room: "tab\there" }, "ROOM_INVALID"],
      ["room:join", { room: "x".repeat(201) }, "ROOM_INVALID"],
      ["room:join", {}, "ROOM_INVALID"],
      ["room:join", "just-a-string", "INVALID_REQUEST"],
      ["room:join", [1, 2], "INVALID_REQUEST"],
      ["room:leave", { room: null }, "ROOM_INVALID"],
      ["room:members", { room: { nested: true } }, "ROOM_INVALID"],
      ["room:publish", { room: ["a"], data: 1 }, "ROOM_INVALID"],
      ["room:publish", 42, "INVALID_REQUEST"],
    ];
    for (const [event, payload, code] of cases) {
      const ack = await s.emitWithAck(event, payload);
      assert.equal(ack.ok, false, `${event} ${JSON.stringify(payload)}`);
      assert.equal(ack.code, code, `${event} ${JSON.stringify(payload)}: ${ack.message}`);
    }
    assert.equal((await s.emitWithAck("room:join", { room: "x".repeat(200) })).ok, true, "200 characters is fine");
    await s.emitWithAck("room:join", { room: "r2" });
    await s.emitWithAck("room:join", { room: "r3" });
    assert.equal((await s.emitWithAck("room:join", { room: "r4" })).code, "ROOM_LIMIT");
    assert.equal((await s.emitWithAck("room:join", { room: "r3" })).ok, true, "re-joining is not a new room");
    const big = await s.emitWithAck("room:publish", { room: "r2", data: "x".repeat(2000) });
    assert.equal(big.code, "PAYLOAD_TOO_LARGE");
    assert.deepEqual(await s.emitWithAck("echo", "alive"), "alive");
  });

  test("POST /api/publish reaches a user, a room, several rooms", async () => {
    const b1 = await as("pub-bob");
    const b2 = await as("pub-bob", {}, { transports: ["polling"] });
    const c = await as("pub-cy", { rooms: ["news:*"] });
    const d = await as("pub-di", { rooms: ["news:*", "sport:*"] });
    await c.emitWithAck("room:join", { room: "news:1" });
    await d.emitWithAck("room:join", { room: "news:1" });
    await d.emitWithAck("room:join", { room: "sport:1" });
    const boxes = [b1, b2, c, d].map((s) => inbox(s, "notification"));

    let res = await api(gw, "POST", "/api/publish", { body: { user: "pub-bob", event: "notification", data: { n: 1 } } });
    assert.deepEqual([res.status, res.body], [200, { delivered: 2 }]);
    res = await api(gw, "POST", "/api/publish", { body: { room: "news:1", event: "notification", data: { n: 2 } } });
    assert.deepEqual(res.body, { delivered: 2 });
    res = await api(gw, "POST", "/api/publish", { body: { rooms: ["news:1", "sport:1", "user:pub-bob"], event: "notification", data: { n: 3 } } });
    assert.deepEqual(res.body, { delivered: 4 }, "a socket in two target rooms counts (and receives) once");
    res = await api(gw, "POST", "/api/publish", { body: { room: "empty:room", event: "notification", data: 0 } });
    assert.deepEqual(res.body, { delivered: 0 });
    await sleep(200);
    assert.deepEqual(boxes.map((b) => b.map((m) => m.n)), [[1, 3], [1, 3], [2, 3], [2, 3]]);
  });

  test("the publish API refuses reserved events and invalid input", async () => {
    const s = await as("victim");
    const forged = inbox(s, "session:end");
    const cases = [
      [{ user: "victim", event: "session:end", data: { code: "KICKED" } }, "INVALID_REQUEST"],
      [{ user: "victim", event: "auth:expiring", data: {} }, "INVALID_REQUEST"],
      [{ user: "victim", event: "room:message", data: {} }, "INVALID_REQUEST"],
      [{ user: "victim", event: "disconnect" }, "INVALID_REQUEST"],
      [{ user: "victim", event: "connect_error" }, "INVALID_REQUEST"],
      [{ user: "victim", event: "" }, "INVALID_REQUEST"],
      [{ user: "victim", event: "x".repeat(101) }, "INVALID_REQUEST"],
      [{ user: "victim", event: 5 }, "INVALID_REQUEST"],
      [{ user: "victim" }, "INVALID_REQUEST"],
      [{ event: "notification" }, "INVALID_REQUEST"],
      [{ user: "victim", room: "a", event: "notification" }, "INVALID_REQUEST"],
      [{ rooms: [], event: "notification" }, "INVALID_REQUEST"],
      [{ room: "bad room", event: "notification" }, "ROOM_INVALID"],
      [{ rooms: ["ok", "not ok"], event: "notification" }, "ROOM_INVALID"],
      [{ user: "victim", event: "notification", extra: 1 }, "INVALID_REQUEST"],
      [{ user: "victim", event: "notification", data: "x".repeat(2000) }, "PAYLOAD_TOO_LARGE"],
    ];
    for (const [body, code] of cases) {
      const res = await api(gw, "POST", "/api/publish", { body });
      assert.equal(res.status, code === "PAYLOAD_TOO_LARGE" ? 413 : 400, JSON.stringify(body).slice(0, 80));
      assert.equal(res.body.error.code, code, `${JSON.stringify(body).slice(0, 80)}: ${res.body.error.message}`);
    }
    assert.equal((await api(gw, "POST", "/api/publish", { key: null, body: { user: "victim", event: "x" } })).status, 401);
    assert.equal((await api(gw, "GET", "/api/rooms/bad%20room/members")).body.error.code, "ROOM_INVALID");
    await sleep(100);
    assert.equal(forged.length, 0);
    assert.ok(s.connected);
  });
});

test("SOCKGATE_ROOMS_CLAIM names the claim that carries room capabilities", async () => {
  const gw = await startGateway({ SOCKGATE_ROOMS_CLAIM: "perms" });
  try {
    const renamed = await gw.connect({ auth: { token: sign({ sub: "p1", perms: ["chat:*"] }) } });
    assert.equal((await renamed.emitWithAck("room:join", { room: "chat:x" })).ok, true);
    const usual = await gw.connect({ auth: { token: sign({ sub: "p2", rooms: ["chat:*"] }) } });
    assert.equal((await usual.emitWithAck("room:join", { room: "chat:x" })).code, "FORBIDDEN");
  } finally {
    await gw.stop();
  }
});

describe("authorization webhook", () => {
  let hook;
  let gw;
  before(async () => {
    hook = { calls: [] };
    hook.server = createServer((req, res) => {
      let body = "";
      req.on("data", (d) => (body += d));
      req.on("end", () => {
        const call = JSON.parse(body);
        hook.calls.push(call);
        if (call.room.startsWith("slow:")) return setTimeout(() => res.writeHead(200).end(), 3000);
        res.writeHead(call.room.startsWith("ok:") ? 204 : 403).end();
      });
    });
    await new Promise((r) => hook.server.listen(0, "127.0.0.1", r));
    gw = await startGateway({
      SOCKGATE_AUTHZ_URL: `http://127.0.0.1:${hook.server.address().port}/authz`,
      SOCKGATE_AUTHZ_TIMEOUT_MS: "300",
      SOCKGATE_AUTHZ_CACHE_TTL: "60",
    });
  });
  after(async () => {
    await gw.stop();
    hook.server.closeAllConnections();
    hook.server.close();
  });

  test("2xx allows, other statuses deny, answers are cached", async () => {
    const s = await gw.connect({ auth: { token: sign({ sub: "hooked", team: "red" }) } });
    assert.equal((await s.emitWithAck("room:join", { room: "ok:1" })).ok, true);
    assert.deepEqual(hook.calls.at(-1), { userId: "hooked", room: "ok:1", action: "join", claims: hook.calls.at(-1).claims });
    assert.equal(hook.calls.at(-1).claims.team, "red");
    assert.equal((await s.emitWithAck("room:join", { room: "no:1" })).code, "FORBIDDEN");
    // The webhook gets the claims without credentials, as clients do.
    const carrier = await gw.connect({ auth: { token: sign({ sub: "carrier", team: "blue", accessToken: sign({ sub: "x" }), client_secret: "s" }) } });
    assert.equal((await carrier.emitWithAck("room:join", { room: "ok:carrier" })).ok, true);
    assert.deepEqual(hook.calls.at(-1).claims.team, "blue");
    assert.equal(hook.calls.at(-1).claims.accessToken, undefined, "the backend token stays out of the webhook");
    assert.equal(hook.calls.at(-1).claims.client_secret, undefined);
    carrier.close();
    assert.equal((await s.emitWithAck("room:publish", { room: "ok:1", data: 1 })).ok, true);
    assert.equal(hook.calls.at(-1).action, "publish");
    const before = hook.calls.length;
    await s.emitWithAck("room:leave", { room: "ok:1" });
    assert.equal((await s.emitWithAck("room:join", { room: "ok:1" })).ok, true);
    assert.equal((await s.emitWithAck("room:join", { room: "no:1" })).code, "FORBIDDEN");
    assert.equal(hook.calls.length, before, "cached answers: no new calls");
  });

  test("a slow or unreachable webhook answers AUTH_UNAVAILABLE without hanging the socket", async () => {
    const s = await gw.connect({ auth: { token: sign({ sub: "waiter" }) } });
    const t = Date.now();
    assert.equal((await s.emitWithAck("room:join", { room: "slow:1" })).code, "AUTH_UNAVAILABLE");
    assert.ok(Date.now() - t < 2000, `answered after ${Date.now() - t} ms`);
    assert.deepEqual(await s.emitWithAck("echo", 1), 1);
    const down = await startGateway({ SOCKGATE_AUTHZ_URL: "http://127.0.0.1:9/authz" });
    try {
      const d = await down.connect({ auth: { token: sign({ sub: "nobody" }) } });
      assert.equal((await d.emitWithAck("room:join", { room: "ok:1" })).code, "AUTH_UNAVAILABLE");
    } finally {
      await down.stop();
    }
  });
});
