// [[room_options]]: what a room does, by pattern, beside who may enter it:
// client publishes, its member list, its presence events, recovery. The first entry
// that matches a room gives its options.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { API_KEY, api, eventually, run, sign, startGateway } from "./helpers.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const OPTIONS = `
[[room_options]]
match = "news:*"
client_publish = false

[[room_options]]
match = "quiet:*"
presence = false

[[room_options]]
match = "hush:*"
presence_events = false

[[room_options]]
match = "live:*"
recover = false

[[room_options]]
match = "*"
presence = true
`;

function configFile(text) {
  const file = join(mkdtempSync(join(tmpdir(), "sockgate-room-options-")), "sockgate.toml");
  writeFileSync(file, text);
  return file;
}

/** A socket of `user` allowed everything everywhere, recording what it hears. */
async function member(gw, user) {
  const rooms = [{ match: "*", allow: ["join", "publish", "presence"] }];
  const socket = await gw.connect({ auth: { token: sign({ sub: user, rooms }) } });
  const heard = [];
  for (const event of ["room:message", "room:joined", "room:left", "news"]) socket.on(event, (p) => heard.push([event, p]));
  return { socket, heard };
}
const join_ = async (s, room) => assert.equal((await s.emitWithAck("room:join", { room })).ok, true, `join ${room}`);

describe("room options", () => {
  let gw;
  before(async () => {
    gw = await startGateway(
      { SOCKGATE_API_KEY: API_KEY, SOCKGATE_ROOM_PRESENCE_EVENTS: "true", SOCKGATE_WEBHOOK_OFFLINE_DELAY: "0.3" },
      ["--config", configFile(OPTIONS)],
    );
  });
  after(() => gw.stop());

  test("client_publish = false: a member's room:publish is FORBIDDEN, the server still publishes there", async () => {
    const ann = await member(gw, "ro-ann");
    const bob = await member(gw, "ro-bob");
    await join_(ann.socket, "news:today");
    await join_(bob.socket, "news:today");
    const refused = await ann.socket.emitWithAck("room:publish", { room: "news:today", data: { text: "hi" } });
    assert.deepEqual([refused.ok, refused.code, refused.message], [false, "FORBIDDEN", "clients may not publish in this room"]);
    const published = await api(gw, "POST", "/api/publish", { body: { rooms: ["news:today"], event: "news", data: { headline: "out" } } });
    assert.equal(published.status, 200);
    await eventually(() => bob.heard.some(([e, p]) => e === "news" && p.headline === "out"), 5000, "the server's publish");
    assert.ok(!bob.heard.some(([e]) => e === "room:message"), "the refused publish reached nobody");
    // Another room, with no such option: the same member publishes.
    await join_(ann.socket, "chat:ro");
    await join_(bob.socket, "chat:ro");
    const ok = await ann.socket.emitWithAck("room:publish", { room: "chat:ro", data: { text: "hello" } });
    assert.equal(ok.ok, true);
    await eventually(() => bob.heard.some(([e, p]) => e === "room:message" && p.room === "chat:ro"), 5000, "a publish elsewhere");
    ann.socket.close();
    bob.socket.close();
  });

  test("presence = false: room:members is FORBIDDEN there, and answers elsewhere", async () => {
    const cy = await member(gw, "ro-cy");
    await join_(cy.socket, "quiet:1");
    await join_(cy.socket, "loud:1");
    const quiet = await cy.socket.emitWithAck("room:members", { room: "quiet:1" });
    assert.deepEqual([quiet.ok, quiet.code, quiet.message], [false, "FORBIDDEN", "this room does not list its members"]);
    const loud = await cy.socket.emitWithAck("room:members", { room: "loud:1" });
    assert.equal(loud.ok, true);
    assert.deepEqual(loud.members, ["ro-cy"]);
    cy.socket.close();
  });

  test("presence_events = false silences a room that SOCKGATE_ROOM_PRESENCE_EVENTS would make speak", async () => {
    const di = await member(gw, "ro-di");
    await join_(di.socket, "hush:1");
    await join_(di.socket, "talk:1");
    const ed = await member(gw, "ro-ed");
    await join_(ed.socket, "hush:1");
    await join_(ed.socket, "talk:1");
    await eventually(() => di.heard.some(([e, p]) => e === "room:joined" && p.room === "talk:1" && p.userId === "ro-ed"), 5000, "joined in talk:1");
    ed.socket.close();
    await eventually(() => di.heard.some(([e, p]) => e === "room:left" && p.room === "talk:1" && p.userId === "ro-ed"), 5000, "left talk:1");
    await sleep(300);
    assert.ok(!di.heard.some(([e, p]) => e.startsWith("room:") && p.room === "hush:1"), "hush:1 says nothing");
    di.socket.close();
  });
});

describe("room options and recovery", () => {
  let gw;
  before(async () => {
    gw = await startGateway({ SOCKGATE_API_KEY: API_KEY }, ["--config", configFile(OPTIONS)]);
  });
  after(() => gw.stop());

  test("recover = false: a recovered socket gets back what it missed in the rooms that keep messages only; that room's messages carry no offset", async () => {
    const rooms = [{ match: "*", allow: ["join"] }];
    const reconnecting = { reconnection: true, reconnectionDelay: 50, reconnectionDelayMax: 100, randomizationFactor: 0 };
    const fay = await gw.connect({ ...reconnecting, auth: { token: sign({ sub: "ro-fay", rooms }) } });
    await join_(fay, "live:score");
    await join_(fay, "chat:fay");
    const got = [];
    fay.on("news", (data, offset) => got.push([data.room, data.n, offset]));
    const publish = async (room, n) => {
      const res = await api(gw, "POST", "/api/publish", { body: { rooms: [room], event: "news", data: { room, n } } });
      assert.equal(res.status, 200);
    };
    await publish("live:score", 1);
    await publish("chat:fay", 1);
    await eventually(() => got.length === 2, 5000, "the first messages");
    const [live, chat] = [got.find(([r]) => r === "live:score"), got.find(([r]) => r === "chat:fay")];
    assert.equal(live[2], undefined, "no offset where messages are not kept");
    assert.match(chat[2], /^\d+-\d+$/, "an offset where they are");

    const back = new Promise((resolve) => fay.once("connect", resolve));
    fay.io.engine.close();
    for (const n of [2, 3]) {
      await publish("live:score", n);
      await publish("chat:fay", n);
    }
    await back;
    assert.equal(fay.recovered, true, "recovered, rooms and id");
    await eventually(() => got.some(([r, n]) => r === "chat:fay" && n === 3), 5000, "the kept room's missed messages");
    await sleep(200);
    assert.deepEqual(got.filter(([r]) => r === "chat:fay").map(([, n]) => n), [1, 2, 3]);
    assert.deepEqual(got.filter(([r]) => r === "live:score").map(([, n]) => n), [1], "the live room's missed messages are not replayed");
    // Still in both rooms.
    await publish("live:score", 4);
    await eventually(() => got.some(([r, n]) => r === "live:score" && n === 4), 5000, "the live room after recovery");
    fay.close();
  });
});

test("a [[room_options]] entry with an unknown option refuses to start, naming the line", async () => {
  const file = configFile('[[room_options]]\nmatch = "x:*"\npublish = false\n');
  const out = await run(["serve", "--config", file], { JWT_SECRET: "x".repeat(40), SOCKGATE_LISTEN: "127.0.0.1:0" });
  assert.notEqual(out.code, 0);
  assert.match(out.stderr, /invalid config file/);
  assert.match(out.stderr, /publish/);
});
