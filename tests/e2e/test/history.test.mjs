// The history API: a room's kept messages, for its members (room:history)
// and the app (GET /api/rooms/{room}/history), newest last, with the
// offset to ask from next and the history's epoch; on one node and across
// a cluster.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { API_KEY, api, sign, startGateway, startRedis } from "./helpers.mjs";

const OPTIONS = '[[room_options]]\nmatch = "live:*"\nrecover = false\n';
function configFile() {
  const file = join(mkdtempSync(join(tmpdir(), "sockgate-history-")), "sockgate.toml");
  writeFileSync(file, OPTIONS);
  return file;
}

const token = (sub) => sign({ sub, rooms: ["chat:*", "live:*"] });
const join_ = async (s, room) => assert.equal((await s.emitWithAck("room:join", { room })).ok, true, `join ${room}`);
async function publish(gw, room, n) {
  const res = await api(gw, "POST", "/api/publish", { body: { rooms: [room], event: "news", data: { n } } });
  assert.equal(res.status, 200, JSON.stringify(res.body));
}
const ns = (answer) => answer.messages.map((m) => m.data.n);

describe("the history API on one node", () => {
  let gw;
  before(async () => {
    gw = await startGateway({ SOCKGATE_API_KEY: API_KEY }, ["--config", configFile()]);
  });
  after(() => gw.stop());

  test("room:history gives a member the newest messages of the room, oldest first, and the offset to go on from", async () => {
    const ann = await gw.connect({ auth: { token: token("hi-ann") } });
    await join_(ann, "chat:h1");
    for (const n of [1, 2, 3, 4, 5]) {
      await publish(gw, "chat:h1", n);
      await publish(gw, "chat:h1-other", 100 + n);
    }
    const last3 = await ann.emitWithAck("room:history", { room: "chat:h1", limit: 3 });
    assert.equal(last3.ok, true);
    assert.equal(last3.room, "chat:h1");
    assert.deepEqual(ns(last3), [3, 4, 5]);
    assert.ok(last3.messages.every((m) => m.event === "news" && /^\d+-\d+$/.test(m.offset)));
    assert.match(last3.offset, /^\d+-\d+$/);
    assert.equal(last3.complete, true);
    assert.match(last3.epoch, /^[0-9a-f]{16}$/);
    // Everything after the first of those.
    const after3 = await ann.emitWithAck("room:history", { room: "chat:h1", since: last3.messages[0].offset });
    assert.deepEqual(ns(after3), [4, 5]);
    // Nothing new since the history's newest offset; then one more.
    const none = await ann.emitWithAck("room:history", { room: "chat:h1", since: last3.offset });
    assert.deepEqual(none.messages, []);
    await publish(gw, "chat:h1", 6);
    const six = await ann.emitWithAck("room:history", { room: "chat:h1", since: last3.offset });
    assert.deepEqual(ns(six), [6]);
    assert.equal(six.epoch, last3.epoch);
    ann.close();
  });

  test("refusals: not a member, a bad limit or offset, a room that keeps nothing", async () => {
    const bob = await gw.connect({ auth: { token: token("hi-bob") } });
    const code = async (payload) => (await bob.emitWithAck("room:history", payload)).code;
    assert.equal(await code({ room: "chat:h1" }), "FORBIDDEN", "not a member");
    await join_(bob, "chat:h2");
    await join_(bob, "live:h2");
    assert.equal(await code({ room: "chat:h2", limit: 0 }), "INVALID_REQUEST");
    assert.equal(await code({ room: "chat:h2", limit: 101 }), "INVALID_REQUEST");
    assert.equal(await code({ room: "chat:h2", since: "yesterday" }), "INVALID_REQUEST");
    assert.equal(await code({ room: "live:h2" }), "NOT_FOUND", "recover = false keeps nothing");
    assert.equal(await code("chat:h2"), "INVALID_REQUEST");
    bob.close();
  });

  test("GET /api/rooms/{room}/history answers the app the same, with its key", async () => {
    for (const n of [1, 2]) await publish(gw, "chat:h3", n);
    const res = await api(gw, "GET", "/api/rooms/chat:h3/history?limit=1");
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.ok, undefined);
    assert.deepEqual(ns(res.body), [2]);
    const all = await api(gw, "GET", "/api/rooms/chat:h3/history");
    assert.deepEqual(ns(all.body), [1, 2]);
    assert.equal((await api(gw, "GET", "/api/rooms/chat:h3/history?limit=0")).status, 400);
    const live = await api(gw, "GET", "/api/rooms/live:h3/history");
    assert.deepEqual([live.status, live.body.error.code], [404, "NOT_FOUND"]);
    assert.equal((await api(gw, "GET", "/api/rooms/chat:h3/history", { key: "wrong-key-wrong-key" })).status, 401);
  });
});

test("without recovery no history is kept: NOT_FOUND", async () => {
  const gw = await startGateway({ SOCKGATE_API_KEY: API_KEY, SOCKGATE_RECOVERY_WINDOW: "0" });
  try {
    const res = await api(gw, "GET", "/api/rooms/chat:x/history");
    assert.deepEqual([res.status, res.body.error.code], [404, "NOT_FOUND"]);
  } finally {
    await gw.stop();
  }
});

test("a single node's restart keeps its epoch and history in its data directory; another directory starts a new epoch", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sockgate-history-dir-"));
  const first = await startGateway({ SOCKGATE_API_KEY: API_KEY, SOCKGATE_DATA_DIR: dir });
  await publish(first, "chat:e", 1);
  const a = (await api(first, "GET", "/api/rooms/chat:e/history")).body;
  await first.stop();
  const second = await startGateway({ SOCKGATE_API_KEY: API_KEY, SOCKGATE_DATA_DIR: dir });
  const elsewhere = await startGateway({ SOCKGATE_API_KEY: API_KEY });
  try {
    const b = (await api(second, "GET", "/api/rooms/chat:e/history")).body;
    assert.match(a.epoch, /^[0-9a-f]{16}$/);
    assert.equal(b.epoch, a.epoch);
    assert.deepEqual(ns(b), [1]);
    assert.equal(b.offset, a.offset);
    const c = (await api(elsewhere, "GET", "/api/rooms/chat:e/history")).body;
    assert.notEqual(c.epoch, a.epoch);
    assert.deepEqual(ns(c), []);
  } finally {
    await second.stop();
    await elsewhere.stop();
  }
});

const BOUNDS = `
[[room_options]]
match = "busy:*"
history_size = 5

[[room_options]]
match = "brief:*"
history_ttl = 1
`;

for (const where of ["one node", "a cluster"]) {
  test(`per-room bounds (${where}): a busy room keeps its own history_size and evicts nobody else; history_ttl ages a room's messages out`, async () => {
    const redis = where === "a cluster" ? await startRedis() : null;
    const file = join(mkdtempSync(join(tmpdir(), "sockgate-bounds-")), "sockgate.toml");
    writeFileSync(file, BOUNDS);
    const env = { SOCKGATE_API_KEY: API_KEY, SOCKGATE_RECOVERY_HISTORY: "40", ...(redis ? { SOCKGATE_REDIS_URL: redis.url } : {}) };
    const gw = await startGateway(env, ["--config", file]);
    try {
      for (const n of [1, 2, 3]) await publish(gw, "chat:quiet", n);
      for (let n = 1; n <= 120; n++) await publish(gw, "busy:1", n);
      const busy = (await api(gw, "GET", "/api/rooms/busy:1/history")).body;
      assert.deepEqual(ns(busy), [116, 117, 118, 119, 120], "its own 5, the newest");
      assert.equal(busy.complete, false);
      const quiet = (await api(gw, "GET", "/api/rooms/chat:quiet/history")).body;
      assert.deepEqual(ns(quiet), [1, 2, 3], "the quiet room keeps everything");
      assert.equal(quiet.complete, true);
      // A member that missed the busy room's older messages is told so.
      const since = (await api(gw, "GET", `/api/rooms/busy:1/history?since=${busy.offset.replace(/-\d+$/, "-0").replace(/^\d+/, (ms) => String(Number(ms) - 60000))}`)).body;
      assert.equal(since.complete, false);
      await publish(gw, "brief:1", 1);
      assert.deepEqual(ns((await api(gw, "GET", "/api/rooms/brief:1/history")).body), [1]);
      await new Promise((r) => setTimeout(r, 1300));
      const aged = (await api(gw, "GET", "/api/rooms/brief:1/history")).body;
      assert.deepEqual(ns(aged), [], "older than history_ttl");
      assert.equal(aged.complete, false);
      await publish(gw, "brief:1", 2);
      assert.deepEqual(ns((await api(gw, "GET", "/api/rooms/brief:1/history")).body), [2]);
    } finally {
      await gw.stop();
      await redis?.stop();
    }
  });
}

test("in a cluster, every node reads the same history, in the same epoch", async () => {
  const redis = await startRedis();
  const env = { SOCKGATE_API_KEY: API_KEY, SOCKGATE_REDIS_URL: redis.url };
  const a = await startGateway(env);
  const b = await startGateway(env);
  try {
    for (const n of [1, 2, 3]) await publish(a, "chat:hc", n);
    await publish(b, "chat:hc", 4);
    const fromA = (await api(a, "GET", "/api/rooms/chat:hc/history")).body;
    const fromB = (await api(b, "GET", "/api/rooms/chat:hc/history?limit=2")).body;
    assert.deepEqual(ns(fromA), [1, 2, 3, 4]);
    assert.deepEqual(ns(fromB), [3, 4]);
    assert.equal(fromA.epoch, fromB.epoch);
    assert.equal(fromA.offset, fromB.offset);
    const member = await b.connect({ auth: { token: token("hi-cy") } });
    await join_(member, "chat:hc");
    const since = await member.emitWithAck("room:history", { room: "chat:hc", since: fromA.messages[1].offset });
    assert.deepEqual(ns(since), [3, 4]);
    // A busy room after it: the quiet room's messages are further back
    // than one page of the stream (read newest first), and still found.
    await Promise.all(Array.from({ length: 300 }, (_, i) => publish(a, "chat:busy", i)));
    const quiet = (await api(b, "GET", "/api/rooms/chat:hc/history?limit=4")).body;
    assert.deepEqual(ns(quiet), [1, 2, 3, 4]);
    assert.equal(quiet.complete, true);
    const busy = (await api(b, "GET", "/api/rooms/chat:busy/history?limit=3")).body;
    assert.equal(busy.messages.length, 3);
    assert.equal(busy.offset, busy.messages[2].offset, "the history's newest is the busy room's last");
    member.close();
  } finally {
    await a.stop();
    await b.stop();
    await redis.stop();
  }
});
