// [[namespaces]]: several namespaces over one connection (the official
// client's Manager), each socket authenticated on its own CONNECT, with its
// own claims, rooms, room rules and publishes.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import express from "express";
import { Manager } from "socket.io-client";
import { API_KEY, api, eventually, sign, startGateway } from "./helpers.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const NAMESPACES = `
[[namespaces]]
name = "/admin"
claims = { role = "admin" }

[[namespaces]]
name = "/tenant-*"

[[namespaces.room_rules]]
match = "board:*"
allow = ["join", "publish", "presence"]

[[namespaces]]
name = "/ticker"
public = true

[[namespaces.room_rules]]
match = "prices"
allow = ["join"]
`;

function configFile(text) {
  const file = join(mkdtempSync(join(tmpdir(), "sockgate-namespaces-")), "sockgate.toml");
  writeFileSync(file, text);
  return file;
}

const EVERYWHERE = [{ match: "*", allow: ["join", "publish", "presence"] }];

/** One connection (a Manager) and its namespace sockets. */
function manager(gw, opts = {}) {
  const m = new Manager(gw.url, { reconnection: false, timeout: 5000, transports: ["websocket"], ...opts });
  const opened = [];
  return {
    m,
    /** Resolves with the connected socket, rejects with its connect_error. */
    socket(ns, auth) {
      const socket = m.socket(ns, { auth });
      opened.push(socket);
      const heard = [];
      socket.onAny((event, payload) => heard.push([event, payload]));
      socket.heard = heard;
      return new Promise((resolve, reject) => {
        socket.once("connect", () => resolve(socket));
        socket.once("connect_error", (err) => reject(err));
      });
    },
    close() {
      for (const s of opened) s.close();
    },
  };
}

async function refusedWith(promise) {
  try {
    const socket = await promise;
    socket.close();
  } catch (err) {
    return err;
  }
  throw new Error("the namespace was joined but should have been refused");
}

const joined = async (s, room) => {
  const ack = await s.emitWithAck("room:join", { room });
  assert.equal(ack.ok, true, `join ${room}: ${JSON.stringify(ack)}`);
};

describe("namespaces", () => {
  let gw;
  before(async () => {
    gw = await startGateway({ SOCKGATE_API_KEY: API_KEY, SOCKGATE_ALLOWED_ORIGINS: "http://app.example" }, [
      "--config",
      configFile(NAMESPACES),
    ]);
  });
  after(() => gw.stop());

  test("two namespaces on one connection, with different claims, keep their rooms apart", async () => {
    const admin = { token: sign({ sub: "ns-ada", role: "admin", rooms: EVERYWHERE }) };
    const ada = manager(gw);
    const main = await ada.socket("/", admin);
    const ops = await ada.socket("/admin", admin);
    assert.notEqual(main.id, ops.id, "two sockets");
    assert.equal(ada.m.engine.transport.name, "websocket");
    assert.equal((await ops.emitWithAck("auth:whoami")).userId, "ns-ada");
    // The same room name in both namespaces: two rooms.
    await joined(main, "ops");
    await joined(ops, "ops");
    const bob = manager(gw);
    const bobAdmin = await bob.socket("/admin", { token: sign({ sub: "ns-bob", role: ["user", "admin"], rooms: EVERYWHERE }) });
    await joined(bobAdmin, "ops");
    const said = await bobAdmin.emitWithAck("room:publish", { room: "ops", data: { text: "in admin" } });
    assert.equal(said.ok, true, JSON.stringify(said));
    await eventually(() => ops.heard.some(([e, p]) => e === "room:message" && p.room === "ops" && p.data.text === "in admin"), 5000, "the admin room's message");
    // Published per namespace through the API.
    const toAdmin = await api(gw, "POST", "/api/publish", { body: { namespace: "/admin", room: "ops", event: "alert", data: { n: 1 } } });
    assert.equal(toAdmin.status, 200, JSON.stringify(toAdmin.body));
    const toMain = await api(gw, "POST", "/api/publish", { body: { room: "ops", event: "alert", data: { n: 2 } } });
    assert.equal(toMain.status, 200);
    await eventually(() => ops.heard.some(([e, p]) => e === "alert" && p.n === 1), 5000, "the admin publish");
    await eventually(() => main.heard.some(([e, p]) => e === "alert" && p.n === 2), 5000, "the main publish");
    await sleep(200);
    assert.ok(!main.heard.some(([e, p]) => (e === "alert" && p.n === 1) || e === "room:message"), JSON.stringify(main.heard));
    assert.ok(!ops.heard.some(([e, p]) => e === "alert" && p.n === 2), JSON.stringify(ops.heard));
    // Members per namespace: the admin room has both, the main one ada only.
    const members = await api(gw, "GET", "/api/rooms/ops/members?namespace=%2Fadmin");
    assert.deepEqual(members.body.members, ["ns-ada", "ns-bob"]);
    assert.deepEqual((await api(gw, "GET", "/api/rooms/ops/members")).body.members, ["ns-ada"]);
    // Each user's own room is per namespace too.
    await api(gw, "POST", "/api/publish", { body: { namespace: "/admin", user: "ns-ada", event: "direct", data: { to: "admin" } } });
    await eventually(() => ops.heard.some(([e, p]) => e === "direct" && p.to === "admin"), 5000, "the admin user room");
    await sleep(200);
    assert.ok(!main.heard.some(([e]) => e === "direct"));
    // A server-side join moves the sockets of the namespace named only.
    const moved = await api(gw, "POST", "/api/rooms/war-room/join", { body: { user: "ns-ada", namespace: "/admin" } });
    assert.deepEqual([moved.status, moved.body.moved], [200, 1]);
    await api(gw, "POST", "/api/publish", { body: { namespace: "/admin", room: "war-room", event: "brief", data: {} } });
    await eventually(() => ops.heard.some(([e]) => e === "brief"), 5000, "the moved admin socket hears its new room");
    const movedMain = await api(gw, "POST", "/api/rooms/war-room/join", { body: { user: "ns-ada" } });
    assert.equal(movedMain.body.moved, 1, "the main socket only");
    ada.close();
    bob.close();
  });

  test("a namespace socket whose transport drops recovers its rooms and what it missed", async () => {
    const token = sign({ sub: "ns-hal", role: "admin", rooms: EVERYWHERE });
    const hal = manager(gw, { reconnection: true, reconnectionDelay: 300, reconnectionDelayMax: 300, randomizationFactor: 0 });
    const ops = await hal.socket("/admin", { token });
    const got = [];
    ops.on("alert", (p) => got.push(p.n));
    await joined(ops, "ops-r");
    const alert = (n) => api(gw, "POST", "/api/publish", { body: { namespace: "/admin", room: "ops-r", event: "alert", data: { n } } });
    await alert(1);
    await eventually(() => got.length === 1, 5000, "the first alert");
    const id = ops.id;
    const back = new Promise((resolve) => ops.once("connect", resolve));
    hal.m.engine.close();
    await alert(2);
    await back;
    assert.equal(ops.recovered, true, "recovered");
    assert.equal(ops.id, id);
    await alert(3);
    await eventually(() => got.length === 3, 5000, "the missed and the next alert");
    assert.deepEqual(got, [1, 2, 3]);
    hal.close();
  });

  test("a refused admin namespace leaves / connected", async () => {
    const token = sign({ sub: "ns-carl", role: "user", rooms: EVERYWHERE });
    const carl = manager(gw);
    const main = await carl.socket("/", { token });
    const err = await refusedWith(carl.socket("/admin", { token }));
    assert.equal(err.data?.code, "NAMESPACE_FORBIDDEN", err.message);
    assert.match(err.message, /^NAMESPACE_FORBIDDEN: /);
    // The main namespace goes on over the same connection.
    assert.equal(main.connected, true);
    assert.equal((await main.emitWithAck("auth:whoami")).userId, "ns-carl");
    await joined(main, "lobby");
    // No token at all: the admin namespace refuses as any other would.
    const anon = manager(gw);
    const none = await refusedWith(anon.socket("/admin", {}));
    assert.equal(none.data?.code, "AUTH_REQUIRED");
    // A namespace nobody serves.
    const unknown = await refusedWith(carl.socket("/nowhere", { token }));
    assert.equal(unknown.message, "Invalid namespace");
    assert.equal(main.connected, true);
    carl.close();
    anon.close();
  });

  test("a pattern namespace: each tenant is a namespace of its own, under the pattern's rules", async () => {
    // No rooms claim: only the pattern's room rules grant anything.
    const token = sign({ sub: "ns-dora" });
    const dora = manager(gw);
    const acme = await dora.socket("/tenant-acme", { token });
    const globex = await dora.socket("/tenant-globex", { token });
    await joined(acme, "board:1");
    await joined(globex, "board:1");
    const other = await acme.emitWithAck("room:join", { room: "elsewhere" });
    assert.equal(other.code, "FORBIDDEN", "the pattern's rules, not more");
    const published = await api(gw, "POST", "/api/publish", { body: { namespace: "/tenant-acme", room: "board:1", event: "card", data: { id: 7 } } });
    assert.equal(published.status, 200);
    assert.equal(published.body.delivered, 1);
    await eventually(() => acme.heard.some(([e, p]) => e === "card" && p.id === 7), 5000, "acme's card");
    await sleep(200);
    assert.ok(!globex.heard.some(([e]) => e === "card"), "globex's board:1 is another room");
    // The main namespace's rules are not the pattern's.
    const main = await dora.socket("/", { token });
    const mainJoin = await main.emitWithAck("room:join", { room: "board:1" });
    assert.equal(mainJoin.code, "FORBIDDEN");
    const nomatch = await refusedWith(dora.socket("/tenant", { token }));
    assert.equal(nomatch.message, "Invalid namespace");
    dora.close();
  });

  test("a public namespace lets in sockets without a token, anonymous", async () => {
    const guest = manager(gw);
    const prices = await guest.socket("/ticker", {});
    const me = await prices.emitWithAck("auth:whoami");
    assert.match(me.userId, /^anon-[A-Za-z0-9]{16}$/);
    await joined(prices, "prices");
    const forbidden = await prices.emitWithAck("room:join", { room: "secret" });
    assert.equal(forbidden.code, "FORBIDDEN");
    await api(gw, "POST", "/api/publish", { body: { namespace: "/ticker", room: "prices", event: "tick", data: { eur: 1.08 } } });
    await eventually(() => prices.heard.some(([e, p]) => e === "tick" && p.eur === 1.08), 5000, "the tick");
    // The main namespace still needs a token.
    const main = await refusedWith(guest.socket("/", {}));
    assert.equal(main.data?.code, "AUTH_REQUIRED");
    guest.close();
    // A page of a site that may not connect may not open it either.
    const evil = manager(gw, { extraHeaders: { origin: "http://evil.example" } });
    const refused = await refusedWith(evil.socket("/ticker", {}));
    assert.equal(refused.data?.code, "ORIGIN_FORBIDDEN");
    evil.close();
    const app = manager(gw, { extraHeaders: { origin: "http://app.example" } });
    await app.socket("/ticker", {});
    app.close();
  });

  test("one connection may be in at most 16 namespaces: a 17th CONNECT closes it, and the node serves others", async () => {
    const token = sign({ sub: "ns-ivy" });
    const ivy = manager(gw);
    const first = await ivy.socket("/tenant-0", { token });
    for (let n = 1; n < 16; n++) await ivy.socket(`/tenant-${n}`, { token });
    const dropped = new Promise((resolve) => first.once("disconnect", resolve));
    ivy.socket("/tenant-16", { token }).catch(() => {});
    assert.equal(await dropped, "transport close");
    ivy.close();
    const other = manager(gw);
    await other.socket("/tenant-x", { token: sign({ sub: "ns-jo" }) });
    other.close();
  });

  test("a publish to a namespace nobody serves is refused", async () => {
    const res = await api(gw, "POST", "/api/publish", { body: { namespace: "/nowhere", room: "r", event: "e" } });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, "INVALID_REQUEST");
    assert.match(res.body.error.message, /not served/);
    const bad = await api(gw, "POST", "/api/publish", { body: { namespace: "no slash", room: "r", event: "e" } });
    assert.equal(bad.status, 400);
    const history = await api(gw, "GET", "/api/rooms/r/members?namespace=%2Fnowhere");
    assert.equal(history.status, 400);
  });
});

describe("namespaces and the session limit", () => {
  let gw;
  before(async () => {
    gw = await startGateway({ SOCKGATE_API_KEY: API_KEY, SOCKGATE_MAX_SESSIONS_PER_USER: "1" }, ["--config", configFile(NAMESPACES)]);
  });
  after(() => gw.stop());

  test("the limit counts connections, not namespace sockets", async () => {
    const token = sign({ sub: "ns-erin", role: "admin" });
    const first = manager(gw);
    await first.socket("/", { token });
    await first.socket("/admin", { token });
    await first.socket("/tenant-x", { token });
    const second = manager(gw);
    const refused = await refusedWith(second.socket("/", { token }));
    assert.equal(refused.data?.code, "SESSION_LIMIT");
    const listed = await api(gw, "GET", "/api/sessions?user=ns-erin");
    assert.equal(listed.status, 200);
    first.close();
    // Once the first connection is gone, a new one gets in.
    await eventually(async () => {
      const m = manager(gw);
      try {
        await m.socket("/admin", { token });
        return true;
      } catch {
        m.close();
        return false;
      }
    }, 5000, "a new connection after the first closed");
    second.close();
  });
});

describe("namespaces: their own event routes and rate limits", () => {
  const SECRET = "namespace-events-secret-namespace-events";
  let gw;
  let server;
  const calls = [];
  before(async () => {
    const app = express();
    app.use(express.json());
    for (const path of ["/main", "/ops"]) {
      app.post(path, (req, res) => {
        calls.push({ path, body: req.body });
        res.json({ ack: { path, namespace: req.body.namespace } });
      });
    }
    server = app.listen(0, "127.0.0.1");
    await new Promise((r) => server.once("listening", r));
    const base = `http://127.0.0.1:${server.address().port}`;
    const config = `
[[events]]
match = "*"
url = "${base}/main"

[[namespaces]]
name = "/ops"
event_rate = 1
event_burst = 2

[[namespaces.events]]
match = "deploy:*"
url = "${base}/ops"

[[namespaces]]
name = "/tenant-*"
`;
    gw = await startGateway({ SOCKGATE_API_KEY: API_KEY, SOCKGATE_EVENTS_SECRET: SECRET }, ["--config", configFile(config)]);
  });
  after(async () => {
    await gw.stop();
    server.close();
  });

  test("a namespace's routes take its events; a namespace without routes uses the main ones", async () => {
    const token = sign({ sub: "ns-fay" });
    const fay = manager(gw);
    const main = await fay.socket("/", { token });
    const ops = await fay.socket("/ops", { token });
    const tenant = await fay.socket("/tenant-q", { token });
    assert.deepEqual(await main.emitWithAck("hello", 1), { path: "/main", namespace: "/" });
    assert.deepEqual(await ops.emitWithAck("deploy:start", 1), { path: "/ops", namespace: "/ops" });
    assert.deepEqual(await tenant.emitWithAck("hello", 1), { path: "/main", namespace: "/tenant-q" });
    // Its own routes only: the main namespace's catch-all does not take it.
    const unknown = await ops.emitWithAck("hello", 1);
    assert.equal(unknown.code, "UNKNOWN_EVENT", JSON.stringify(unknown));
    assert.ok(!calls.some((c) => c.path === "/main" && c.body.namespace === "/ops"));
    fay.close();
  });

  test("a namespace's own event rate: its sockets are held to it, the main namespace's are not", async () => {
    const token = sign({ sub: "ns-gus" });
    const gus = manager(gw);
    const main = await gus.socket("/", { token });
    const ops = await gus.socket("/ops", { token });
    const opsAcks = await Promise.all(Array.from({ length: 5 }, (_, i) => ops.emitWithAck("deploy:step", i)));
    const limited = opsAcks.filter((a) => a?.code === "RATE_LIMITED").length;
    assert.ok(limited >= 2, `burst 2 at 1/s: ${JSON.stringify(opsAcks)}`);
    const mainAcks = await Promise.all(Array.from({ length: 5 }, (_, i) => main.emitWithAck("hello", i)));
    assert.ok(mainAcks.every((a) => a.path === "/main"), JSON.stringify(mainAcks));
    gus.close();
  });
});
