// Per-room listening in a cluster: a node subscribes to the channel of a
// room (sockgate:room:{key}) only while it has a socket there, and a few
// seconds after; what is sent to a room still reaches every socket in it,
// once, with recovery on (logged) and off (plain).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { api, API_KEY, eventually, next, sign, startGateway, startRedis } from "./helpers.mjs";

const caps = { rooms: ["chat:*"] };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** How many connections listen on each of `channels`, by PUBSUB NUMSUB. */
function listeners(redis, ...channels) {
  const out = execFileSync("redis-cli", ["-p", String(redis.port), "PUBSUB", "NUMSUB", ...channels], { encoding: "utf8" });
  const lines = out.trim().split("\n");
  const counts = {};
  for (let i = 0; i < lines.length; i += 2) counts[lines[i]] = Number(lines[i + 1]);
  return counts;
}

const room = (key) => `sockgate:room:${key}`;

/** Every message `socket` gets of `event`, as it gets them. */
function collect(socket, event) {
  const got = [];
  socket.on(event, (data) => got.push(data));
  return got;
}

for (const recovery of [true, false]) {
  describe(`two nodes, recovery ${recovery ? "on" : "off"}`, () => {
    let redis;
    let a;
    let b;
    before(async () => {
      redis = await startRedis();
      const env = { SOCKGATE_REDIS_URL: redis.url, SOCKGATE_API_KEY: API_KEY };
      if (!recovery) env.SOCKGATE_RECOVERY_WINDOW = "0";
      a = await startGateway(env);
      b = await startGateway(env);
    });
    after(async () => {
      await a.stop();
      await b.stop();
      await redis.stop();
    });

    test("a node listens on a room while it has a socket there, and a while after", async () => {
      const chan = room("chat:listen");
      assert.equal(listeners(redis, chan)[chan], 0);
      const alice = await a.connect({ auth: { token: sign({ sub: "alice", ...caps }) } });
      // The user's own room: only alice's node listens on it.
      assert.equal(listeners(redis, room("user:alice"))[room("user:alice")], 1);
      // Acked once the node listens: no eventually needed.
      assert.equal((await alice.emitWithAck("room:join", { room: "chat:listen" })).ok, true);
      assert.equal(listeners(redis, chan)[chan], 1);
      const bob = await b.connect({ auth: { token: sign({ sub: "bob", ...caps }) } });
      assert.equal((await bob.emitWithAck("room:join", { room: "chat:listen" })).ok, true);
      assert.equal(listeners(redis, chan)[chan], 2);
      assert.equal((await bob.emitWithAck("room:leave", { room: "chat:listen" })).ok, true);
      await sleep(1500);
      assert.equal(listeners(redis, chan)[chan], 2, "kept a few seconds after the last socket left");
      await eventually(() => listeners(redis, chan)[chan] === 1, 10000, "node B stops listening");
      bob.disconnect();
      await eventually(() => listeners(redis, room("user:bob"))[room("user:bob")] === 0, 10000, "bob's room is let go");
      alice.disconnect();
    });

    test("a join is heard across nodes from its ack on", async () => {
      const alice = await a.connect({ auth: { token: sign({ sub: "alice2", ...caps }) } });
      for (let i = 0; i < 5; i++) {
        const name = `chat:fresh-${i}`;
        assert.equal((await alice.emitWithAck("room:join", { room: name })).ok, true);
        const got = next(alice, "news", 5000);
        const sent = await api(b, "POST", "/api/publish", { body: { room: name, event: "news", data: i } });
        assert.equal(sent.status, 200);
        assert.equal(await got, i);
      }
      alice.disconnect();
    });

    test("a user is reached on every node that holds its sockets, from the CONNECT on", async () => {
      const first = await a.connect({ auth: { token: sign({ sub: "carol" }) } });
      const second = await b.connect({ auth: { token: sign({ sub: "carol" }) } });
      const got = [next(first, "note", 5000), next(second, "note", 5000)];
      assert.equal((await api(b, "POST", "/api/publish", { body: { user: "carol", event: "note", data: "hi" } })).status, 200);
      assert.deepEqual(await Promise.all(got), ["hi", "hi"]);
      first.disconnect();
      second.disconnect();
    });

    test("a message to several rooms reaches each socket once, on each node", async () => {
      const token = (sub) => sign({ sub, ...caps });
      const both = await b.connect({ auth: { token: token("dave") } });
      const one = await b.connect({ auth: { token: token("erin") } });
      const here = await a.connect({ auth: { token: token("frank") } });
      for (const r of ["chat:m1", "chat:m2"]) assert.equal((await both.emitWithAck("room:join", { room: r })).ok, true);
      assert.equal((await one.emitWithAck("room:join", { room: "chat:m2" })).ok, true);
      for (const r of ["chat:m1", "chat:m2"]) assert.equal((await here.emitWithAck("room:join", { room: r })).ok, true);
      const got = [both, one, here].map((s) => collect(s, "multi"));
      for (let i = 0; i < 3; i++) {
        const body = { rooms: ["chat:m1", "chat:m2", "chat:none"], event: "multi", data: i };
        assert.equal((await api(a, "POST", "/api/publish", { body })).status, 200);
      }
      await eventually(() => got.every((g) => g.length >= 3), 5000, "every socket has the three");
      await sleep(300);
      assert.deepEqual(got, [[0, 1, 2], [0, 1, 2], [0, 1, 2]], "once each, in order");
      for (const s of [both, one, here]) s.disconnect();
    });

    test("a burst of handshakes subscribes its users' rooms in a few commands", async (t) => {
      const metric = async (gw, line) => {
        const text = await (await fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${API_KEY}` } })).text();
        const found = text.split("\n").find((l) => l.startsWith(line));
        return found ? Number(found.split(" ").pop()) : 0;
      };
      const commands = 'sockgate_room_channel_commands_total{command="subscribe"}';
      const before = await metric(a, commands);
      const sockets = await Promise.all(
        Array.from({ length: 200 }, (_, i) => a.connect({ auth: { token: sign({ sub: `burst-${i}` }) } })),
      );
      const sent = (await metric(a, commands)) - before;
      t.diagnostic(`200 handshakes: ${sent} SUBSCRIBE commands`);
      assert.ok(sent >= 1 && sent <= 50, `200 users' rooms took ${sent} SUBSCRIBE commands`);
      const chans = Array.from({ length: 200 }, (_, i) => room(`user:burst-${i}`));
      assert.ok(Object.values(listeners(redis, ...chans)).every((n) => n === 1), "each user's room is listened on");
      assert.ok((await metric(a, "sockgate_room_channels")) >= 200);
      for (const s of sockets) s.disconnect();
    });

    test("an idle cluster finds its nodes without scanning the keyspace", async () => {
      const cli = (...args) => execFileSync("redis-cli", ["-p", String(redis.port), ...args], { encoding: "utf8" });
      const sockets = await Promise.all([a, b].map((gw, i) => gw.connect({ auth: { token: sign({ sub: `idle-${i}` }) } })));
      cli("CONFIG", "RESETSTAT");
      // Two rounds of the lost-node look (every 2 s) on each node, and a
      // cluster-wide read that lists the live nodes.
      await sleep(4500);
      assert.equal((await api(a, "GET", "/api/sessions")).status, 200);
      const stats = cli("INFO", "commandstats");
      const calls = (cmd) => Number(stats.match(new RegExp(`cmdstat_${cmd}:calls=(\\d+)`))?.[1] ?? 0);
      assert.equal(calls("scan"), 0, "no SCAN");
      assert.ok(calls("smembers") >= 4, `the set of nodes read instead (${calls("smembers")} SMEMBERS)`);
      for (const s of sockets) s.disconnect();
    });

    test("a node with no socket in a room sends to it without listening on it", async () => {
      const gina = await a.connect({ auth: { token: sign({ sub: "gina", ...caps }) } });
      assert.equal((await gina.emitWithAck("room:join", { room: "chat:only-a" })).ok, true);
      const chan = room("chat:only-a");
      assert.deepEqual(listeners(redis, chan), { [chan]: 1 });
      const got = collect(gina, "solo");
      for (let i = 0; i < 10; i++) {
        await api(b, "POST", "/api/publish", { body: { room: "chat:only-a", event: "solo", data: i } });
      }
      await eventually(() => got.length === 10, 5000, "all ten");
      assert.deepEqual(got, [...Array(10).keys()]);
      gina.disconnect();
    });
  });
}
