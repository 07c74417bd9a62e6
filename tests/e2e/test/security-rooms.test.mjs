// Security review, rooms: templated rules must not let a user across a `:`,
// and the authorization webhook must neither answer a downgraded token from
// its cache nor be called once per made-up room name.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sign, startGateway } from "./helpers.mjs";

const RULES = `
[[room_rules]]
match = "dm:{userId}:*"
allow = ["join", "publish"]

[[room_rules]]
match = "team:{claims.team}:*"
allow = ["join", "publish", "presence"]

[[room_rules]]
match = "lobby:*"
allow = ["join"]
`;

function configFile(text) {
  const file = join(mkdtempSync(join(tmpdir(), "sockgate-cfg-")), "sockgate.toml");
  writeFileSync(file, text);
  return file;
}

describe("templated room rules", () => {
  let gw;
  const join_ = async (socket, room) => {
    const ack = await socket.emitWithAck("room:join", { room });
    return ack.ok ? "ok" : ack.code;
  };
  before(async () => {
    gw = await startGateway({ SOCKGATE_CONFIG: configFile(RULES) });
  });
  after(() => gw.stop());

  test("`*` does not cross `:` once a template is filled in", async () => {
    const bob = await gw.connect({ auth: { token: sign({ sub: "bob", team: "red" }) } });
    assert.deepEqual(
      {
        own: await join_(bob, "dm:bob:alice"),
        deeper: await join_(bob, "dm:bob:smith:private"),
        team: await join_(bob, "team:red:general"),
        teamDeeper: await join_(bob, "team:red:admins:ops"),
        // Rules without templates keep matching across segments.
        lobby: await join_(bob, "lobby:a:b"),
      },
      { own: "ok", deeper: "FORBIDDEN", team: "ok", teamDeeper: "FORBIDDEN", lobby: "ok" },
    );
  });

  test("a value holding `:` makes its rule not apply", async () => {
    const smith = await gw.connect({ auth: { token: sign({ sub: "bob:smith", team: "red:admins" }) } });
    assert.deepEqual(
      {
        dm: await join_(smith, "dm:bob:smith:x"),
        dmShort: await join_(smith, "dm:bob:smith"),
        team: await join_(smith, "team:red:admins:ops"),
      },
      { dm: "FORBIDDEN", dmShort: "FORBIDDEN", team: "FORBIDDEN" },
    );
  });
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
        // Only "pro" tokens may enter projects.
        const allowed = call.room.startsWith("proj:") && call.claims.plan === "pro";
        res.writeHead(allowed ? 204 : 403).end();
      });
    });
    await new Promise((r) => hook.server.listen(0, "127.0.0.1", r));
    gw = await startGateway({
      SOCKGATE_AUTHZ_URL: `http://127.0.0.1:${hook.server.address().port}/authz`,
      SOCKGATE_AUTHZ_CACHE_TTL: "60",
      // The per-socket event limit is not what is tested here.
      SOCKGATE_EVENT_RATE: "0",
    });
  });
  after(async () => {
    await gw.stop();
    hook.server.closeAllConnections();
    hook.server.close();
  });

  test("a downgraded token is asked about anew, not answered from the cache", async () => {
    const pro = await gw.connect({ auth: { token: sign({ sub: "dana", plan: "pro" }) } });
    assert.equal((await pro.emitWithAck("room:join", { room: "proj:1" })).ok, true);
    pro.close();
    const free = await gw.connect({ auth: { token: sign({ sub: "dana", plan: "free" }) } });
    const ack = await free.emitWithAck("room:join", { room: "proj:1" });
    assert.equal(ack.code, "FORBIDDEN", "the downgraded token got in from the cache");
    assert.equal(hook.calls.filter((c) => c.userId === "dana").length, 2);
    // The same token asking again is answered from the cache.
    assert.equal((await free.emitWithAck("room:join", { room: "proj:1" })).code, "FORBIDDEN");
    assert.equal(hook.calls.filter((c) => c.userId === "dana").length, 2);
  });

  test("made-up room names cannot each cost a webhook call: a budget per user, then RATE_LIMITED", async () => {
    const sockets = await Promise.all(
      [1, 2, 3].map(() => gw.connect({ auth: { token: sign({ sub: "mallory", plan: "free" }) } })),
    );
    const started = Date.now();
    const acks = await Promise.all(
      sockets.flatMap((s, i) =>
        Array.from({ length: 150 }, (_, n) => s.emitWithAck("room:join", { room: `junk:${i}:${n}` })),
      ),
    );
    const seconds = Math.ceil((Date.now() - started) / 1000);
    const calls = hook.calls.filter((c) => c.userId === "mallory").length;
    const codes = {};
    for (const a of acks) codes[a.code] = (codes[a.code] ?? 0) + 1;
    // 450 made-up rooms; the budget is a burst of 200, then 20 a second.
    assert.ok(calls <= 200 + 20 * seconds + 20, `${calls} webhook calls in ${seconds} s: ${JSON.stringify(codes)}`);
    assert.ok(codes.RATE_LIMITED > 0, JSON.stringify(codes));
    const limited = acks.find((a) => a.code === "RATE_LIMITED");
    assert.match(limited.message, /retry in \d+ s/);
    // Other users are not affected.
    const other = await gw.connect({ auth: { token: sign({ sub: "olga", plan: "pro" }) } });
    assert.equal((await other.emitWithAck("room:join", { room: "proj:2" })).ok, true);
  });
});
