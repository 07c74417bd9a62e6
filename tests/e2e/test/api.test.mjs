// The admin HTTP API: keys, sessions, kicks, revocations, bad input.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { api, API_KEY, ended, eventually, now, run, sign, startGateway, sessionIdOf } from "./helpers.mjs";

/** Waits until `fn()` deep-equals `expected`. */
const eventuallyEqual = (fn, expected) =>
  eventually(() => JSON.stringify(fn()) === JSON.stringify(expected), 10000, JSON.stringify(expected));

test("without SOCKGATE_API_KEY the API does not exist", async () => {
  const gw = await startGateway();
  try {
    for (const key of [API_KEY, null]) {
      const res = await api(gw, "GET", "/api/sessions", { key });
      assert.equal(res.status, 404);
    }
  } finally {
    await gw.stop();
  }
});

test("an API key shorter than 16 bytes refuses to start", async () => {
  const out = await run(["serve"], { JWT_SECRET: "x".repeat(40), SOCKGATE_API_KEY: "short", SOCKGATE_LISTEN: "127.0.0.1:0" });
  assert.equal(out.code, 2);
  assert.match(out.stderr, /SOCKGATE_API_KEY: is 5 bytes; at least 16/);
});

describe("admin API", () => {
  let gw;
  before(async () => (gw = await startGateway({ SOCKGATE_API_KEY: API_KEY })));
  after(() => gw.stop());

  test("every endpoint refuses a missing or wrong key with 401 and a JSON error", async () => {
    const endpoints = [
      ["GET", "/api/sessions"],
      ["DELETE", "/api/sessions/abc"],
      ["POST", "/api/users/alice/disconnect"],
      ["POST", "/api/revocations"],
      ["GET", "/api/revocations"],
    ];
    for (const [method, path] of endpoints) {
      for (const key of [null, "wrong-key-wrong-key", API_KEY + "x", API_KEY.slice(0, -1), ""]) {
        const res = await api(gw, method, path, { key, body: method === "POST" ? { userId: "alice" } : undefined });
        assert.equal(res.status, 401, `${method} ${path} with key ${key}`);
        assert.equal(res.body.error.code, "UNAUTHORIZED");
      }
    }
    // Nothing was revoked by the refused calls.
    assert.deepEqual((await api(gw, "GET", "/api/revocations")).body, { tokens: [], users: [] });
  });

  test("GET /api/sessions lists sessions, filtered by user", async () => {
    const exp = now() + 300;
    const a = await gw.connect({ auth: { token: sign({ sub: "lister", exp }) }, transports: ["websocket"], extraHeaders: { "user-agent": "e2e-agent/1.0" } });
    const b = await gw.connect({ auth: { token: sign({ sub: "lister", exp }) }, transports: ["polling"] });
    await gw.connect({ auth: { token: sign({ sub: "other" }) } });
    const res = await api(gw, "GET", "/api/sessions?user=lister");
    assert.equal(res.status, 200);
    const sessions = res.body.sessions;
    const [idA, idB] = [await sessionIdOf(a), await sessionIdOf(b)];
    assert.deepEqual(sessions.map((s) => s.sessionId).sort(), [idA, idB].sort());
    const sa = sessions.find((s) => s.sessionId === idA);
    assert.equal(sa.userId, "lister");
    assert.equal(sa.expiresAt, exp);
    assert.equal(sa.transport, "websocket");
    assert.equal(sa.userAgent, "e2e-agent/1.0");
    assert.equal(sa.remoteAddr, "127.0.0.1");
    assert.ok(Math.abs(sa.connectedAt - now()) <= 5);
    assert.equal(sessions.find((s) => s.sessionId === idB).transport, "polling");
    const all = await api(gw, "GET", "/api/sessions");
    assert.ok(all.body.sessions.some((s) => s.userId === "other"));
    assert.deepEqual((await api(gw, "GET", "/api/sessions?user=nobody")).body, { sessions: [] });
  });

  test("DELETE /api/sessions/{id} ends that session with KICKED", async () => {
    const victim = await gw.connect({ auth: { token: sign({ sub: "kickme" }) } });
    const bystander = await gw.connect({ auth: { token: sign({ sub: "kickme" }) } });
    const ending = ended(victim);
    const victimId = await sessionIdOf(victim);
    assert.equal((await api(gw, "DELETE", `/api/sessions/${victim.id}`)).status, 404, "the socket.id is not a session id");
    const res = await api(gw, "DELETE", `/api/sessions/${victimId}`);
    assert.equal(res.status, 200);
    const { end, reason } = await ending;
    assert.equal(end.code, "KICKED");
    assert.equal(reason, "io server disconnect");
    assert.ok(bystander.connected);
    const again = await api(gw, "DELETE", `/api/sessions/${victimId}`);
    assert.equal(again.status, 404);
    assert.equal(again.body.error.code, "NOT_FOUND");
    assert.equal((await api(gw, "DELETE", "/api/sessions/not-a-session-id")).status, 404);
  });

  test("POST /api/users/{id}/disconnect ends all of a user's sessions", async () => {
    const s1 = await gw.connect({ auth: { token: sign({ sub: "everywhere" }) } });
    const s2 = await gw.connect({ auth: { token: sign({ sub: "everywhere" }) }, transports: ["polling"] });
    const other = await gw.connect({ auth: { token: sign({ sub: "elsewhere" }) } });
    const endings = [ended(s1), ended(s2)];
    const res = await api(gw, "POST", "/api/users/everywhere/disconnect");
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { ended: 2 });
    for (const { end } of await Promise.all(endings)) assert.equal(end.code, "KICKED");
    assert.ok(other.connected);
    // Kicked, not revoked: the user may connect again.
    await gw.connect({ auth: { token: sign({ sub: "everywhere" }) } });
  });

  test("bad revocation bodies get 400 (413 when too large) with a clear message and change nothing", async () => {
    const cases = [
      [{ raw: "{not json" }, "INVALID_REQUEST"],
      [{ raw: "[]" }, "INVALID_REQUEST"],
      [{ body: { jti: 5, expiresAt: now() + 60 } }, "INVALID_REQUEST"],
      [{ body: { jti: "j", expiresAt: "tomorrow" } }, "INVALID_REQUEST"],
      [{ body: { jti: "j", expiresAt: -1 } }, "INVALID_REQUEST"],
      [{ body: { jti: "j" } }, "INVALID_REQUEST"],
      [{ body: { jti: "", expiresAt: now() + 60 } }, "INVALID_REQUEST"],
      [{ body: { jti: "x".repeat(300), expiresAt: now() + 60 } }, "INVALID_REQUEST"],
      [{ body: { userId: ["alice"] } }, "INVALID_REQUEST"],
      [{ body: { userId: "alice", expiresAt: now() } }, "INVALID_REQUEST"],
      [{ body: { jti: "j", expiresAt: now() + 60, userId: "alice" } }, "INVALID_REQUEST"],
      [{ body: {} }, "INVALID_REQUEST"],
      [{ body: { userId: "alice", surprise: true } }, "INVALID_REQUEST"],
      [{ raw: JSON.stringify({ userId: "alice", pad: "x".repeat(70 * 1024) }) }, "PAYLOAD_TOO_LARGE"],
    ];
    for (const [opts, code] of cases) {
      const res = await api(gw, "POST", "/api/revocations", opts);
      const what = (opts.raw ?? JSON.stringify(opts.body)).slice(0, 60);
      assert.equal(res.status, code === "PAYLOAD_TOO_LARGE" ? 413 : 400, what);
      assert.equal(res.body.error.code, code, `${what}: ${res.body.error.message}`);
      assert.ok(res.body.error.message.length > 5, what);
    }
    // Without a JSON content type.
    const plain = await fetch(gw.url + "/api/revocations", {
      method: "POST",
      headers: { authorization: `Bearer ${API_KEY}` },
      body: JSON.stringify({ userId: "alice" }),
    });
    assert.equal(plain.status, 400);
    assert.equal((await plain.json()).error.code, "INVALID_REQUEST");
    assert.deepEqual((await api(gw, "GET", "/api/revocations")).body, { tokens: [], users: [] });
    // A bad query string on the listing.
    assert.equal((await api(gw, "GET", "/api/sessions?usr=alice")).status, 400);
  });

  test("GET /api/revocations lists the active revocations", async () => {
    const exp = now() + 120;
    assert.equal((await api(gw, "POST", "/api/revocations", { body: { jti: "listed", expiresAt: exp } })).status, 201);
    assert.equal((await api(gw, "POST", "/api/revocations", { body: { userId: "listed-user", issuedBefore: 1000 } })).status, 201);
    const res = await api(gw, "GET", "/api/revocations");
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.tokens, [{ jti: "listed", expiresAt: exp }]);
    assert.deepEqual(res.body.users, [{ userId: "listed-user", issuedBefore: 1000 }]);
  });

  test("POST /api/rooms/{room}/join and /leave: a room's sockets (socketsJoin/socketsLeave), a user's, a session's", async () => {
    const as = (sub) => gw.connect({ auth: { token: sign({ sub, rooms: ["team:*"] }) } });
    const [a, b, outsider] = await Promise.all([as("mover-a"), as("mover-b"), as("mover-c")]);
    for (const s of [a, b]) assert.equal((await s.emitWithAck("room:join", { room: "team:red" })).ok, true);
    const inbox = (s) => {
      const got = [];
      s.on("news", (d) => got.push(d));
      return got;
    };
    const [ga, gb, gc] = [inbox(a), inbox(b), inbox(outsider)];

    const joined = await api(gw, "POST", "/api/rooms/team:all/join", { body: { room: "team:red" } });
    assert.deepEqual(joined.body, { moved: 2 });
    assert.deepEqual((await api(gw, "GET", "/api/rooms/team:all/members")).body.members, ["mover-a", "mover-b"]);
    assert.deepEqual((await api(gw, "POST", "/api/publish", { body: { room: "team:all", event: "news", data: 1 } })).body, { delivered: 2 });
    await eventuallyEqual(() => [ga.length, gb.length], [1, 1]);
    assert.equal(gc.length, 0, "a socket outside team:red did not move");

    // A user's sockets, by user or by their own room.
    assert.deepEqual((await api(gw, "POST", "/api/rooms/team:all/join", { body: { user: "mover-c" } })).body, { moved: 1 });
    assert.deepEqual((await api(gw, "POST", "/api/rooms/team:blue/join", { body: { room: "user:mover-c" } })).body, { moved: 1 });
    const left = await api(gw, "POST", "/api/rooms/team:all/leave", { body: { room: "team:red" } });
    assert.deepEqual(left.body, { moved: 2 });
    assert.deepEqual((await api(gw, "GET", "/api/rooms/team:all/members")).body.members, ["mover-c"]);
    // One session, by its id.
    const sid = await sessionIdOf(a);
    assert.deepEqual((await api(gw, "POST", "/api/rooms/team:solo/join", { body: { sessionId: sid } })).body, { moved: 1 });
    assert.deepEqual((await api(gw, "GET", "/api/rooms/team:solo/members")).body.members, ["mover-a"]);
    assert.deepEqual((await api(gw, "POST", "/api/rooms/team:solo/leave", { body: { sessionId: sid } })).body, { moved: 1 });
    assert.deepEqual((await api(gw, "GET", "/api/rooms/team:solo/members")).body.members, []);

    // Users' own rooms are never joined or left this way; bad names and bodies are 400.
    const own = await api(gw, "POST", "/api/rooms/user:mover-c/join", { body: { room: "team:red" } });
    assert.equal(own.status, 403);
    assert.equal(own.body.error.code, "FORBIDDEN");
    assert.equal((await api(gw, "POST", "/api/rooms/a b/join", { body: { room: "team:red" } })).body.error.code, "ROOM_INVALID");
    assert.equal((await api(gw, "POST", "/api/rooms/team:x/join", { body: { room: "a b" } })).body.error.code, "ROOM_INVALID");
    for (const body of [{ rooms: ["x"] }, { user: "u", room: "r" }, {}, { sessionId: "not-an-id" }, { user: "two words" }]) {
      const res = await api(gw, "POST", "/api/rooms/team:x/join", { body });
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(res.body.error.code, "INVALID_REQUEST", JSON.stringify(body));
    }
    assert.equal((await api(gw, "POST", "/api/rooms/team:x/join", { body: { room: "x" }, key: null })).status, 401);
    for (const s of [a, b, outsider]) s.close();
  });

  test("POST /api/publish refuses exceptSession (it is for the app's replies) and delivers nothing", async () => {
    const s = await gw.connect({ auth: { token: sign({ sub: "except-me" }) } });
    const got = [];
    s.on("note", (d) => got.push(d));
    const sessionId = await sessionIdOf(s);
    const res = await api(gw, "POST", "/api/publish", { body: { user: "except-me", event: "note", data: 1, exceptSession: sessionId } });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, "INVALID_REQUEST");
    assert.match(res.body.error.message, /exceptSession/);
    assert.deepEqual((await api(gw, "POST", "/api/publish", { body: { user: "except-me", event: "note", data: 2 } })).body, { delivered: 1 });
    await eventually(() => got.length === 1);
    assert.deepEqual(got, [2]);
    s.close();
  });

  test("unknown API paths are JSON 404s", async () => {
    const res = await api(gw, "GET", "/api/nothing-here");
    assert.equal(res.status, 404);
    assert.equal(res.body.error.code, "NOT_FOUND");
    // Outside /api the key is not asked for: a plain 404.
    assert.equal((await fetch(gw.url + "/favicon.ico")).status, 404);
  });
});

test("the publish body limit follows SOCKGATE_MAX_PAYLOAD; other endpoints keep 64 KiB", async () => {
  const gw = await startGateway({ SOCKGATE_API_KEY: API_KEY, SOCKGATE_MAX_PAYLOAD: "200000" });
  try {
    const s = await gw.connect({ auth: { token: sign({ sub: "big" }) } });
    const got = new Promise((r) => s.once("blob", r));
    const data = "y".repeat(150_000);
    const res = await api(gw, "POST", "/api/publish", { body: { user: "big", event: "blob", data } });
    assert.deepEqual([res.status, res.body], [200, { delivered: 1 }]);
    assert.equal((await got).length, 150_000);
    const tooBig = await api(gw, "POST", "/api/publish", { body: { user: "big", event: "blob", data: "y".repeat(210_000) } });
    assert.equal(tooBig.body.error.code, "PAYLOAD_TOO_LARGE");
    const revoke = await api(gw, "POST", "/api/revocations", { raw: JSON.stringify({ userId: "big", pad: "x".repeat(70 * 1024) }) });
    assert.equal(revoke.body.error.code, "PAYLOAD_TOO_LARGE");
  } finally {
    await gw.stop();
  }
});
