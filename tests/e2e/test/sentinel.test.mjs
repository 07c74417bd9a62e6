// Redis Sentinel: two sockgate nodes find the master through the
// Sentinels (redis+sentinel://…/mymaster), and follow a failover (the master
// killed, its replica promoted) without losing a connection or a
// revocation, or delivering anything twice.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { createInterface } from "node:readline";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { allLogLines, api, API_KEY, ended, eventually, freePort, next, now, refusal, sign, startGateway } from "./helpers.mjs";

const caps = { rooms: ["chat:*"] };
const children = [];

/** Starts redis-server with `args`; resolves once a line of its output matches `ready`. */
async function redisServer(args, ready) {
  const child = spawn("redis-server", args, { stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  const lines = [];
  createInterface({ input: child.stdout }).on("line", (line) => lines.push(line));
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server ${args.join(" ")} did not start:\n${lines.join("\n")}`)), 10000);
    const check = setInterval(() => {
      if (lines.some((l) => ready.test(l))) {
        clearTimeout(timer);
        clearInterval(check);
        resolve();
      }
    }, 20);
    child.on("error", (e) => reject(new Error(`cannot run redis-server: ${e.message}`)));
  });
  return { child, lines };
}

const cli = (port, ...args) => execFileSync("redis-cli", ["-p", String(port), ...args], { encoding: "utf8" }).trim();

let master;
let replica;
let sentinel;
let ports;
let a;
let b;

before(async () => {
  ports = { master: await freePort(), replica: await freePort(), sentinel: await freePort(), dead: await freePort() };
  // Each in a directory of its own: a replica's sync writes an RDB file there.
  const plain = () => ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", mkdtempSync(join(tmpdir(), "sockgate-redis-"))];
  master = await redisServer(["--port", String(ports.master), ...plain()], /Ready to accept connections/);
  replica = await redisServer(
    ["--port", String(ports.replica), ...plain(), "--replicaof", "127.0.0.1", String(ports.master)],
    /MASTER <-> REPLICA sync: Finished with success/,
  );
  const dir = mkdtempSync(join(tmpdir(), "sockgate-sentinel-"));
  const conf = join(dir, "sentinel.conf");
  writeFileSync(
    conf,
    [
      `port ${ports.sentinel}`,
      "bind 127.0.0.1",
      `dir ${dir}`,
      `sentinel monitor mymaster 127.0.0.1 ${ports.master} 1`,
      "sentinel down-after-milliseconds mymaster 1000",
      "sentinel failover-timeout mymaster 10000",
      "",
    ].join("\n"),
  );
  sentinel = await redisServer([conf, "--sentinel"], /\+monitor master mymaster/);
  await eventually(() => sentinel.lines.some((l) => l.includes("+slave slave")), 15000, "the Sentinel sees the replica");
  // The first Sentinel listed is not there: the next one answers.
  const url = `redis+sentinel://127.0.0.1:${ports.dead},127.0.0.1:${ports.sentinel}/mymaster`;
  const env = { SOCKGATE_REDIS_URL: url, SOCKGATE_API_KEY: API_KEY };
  a = await startGateway(env);
  b = await startGateway(env);
});

after(async () => {
  await a?.stop();
  await b?.stop();
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
});

const ready = async (gw) => (await fetch(`${gw.url}/readyz`)).status;

test("the nodes find the master through the Sentinels and work as one cluster", async () => {
  assert.equal(await ready(a), 200);
  const alice = await a.connect({ auth: { token: sign({ sub: "alice", ...caps }) } });
  const bob = await b.connect({ auth: { token: sign({ sub: "bob", ...caps }) } });
  for (const s of [alice, bob]) assert.equal((await s.emitWithAck("room:join", { room: "chat:s" })).ok, true);
  const got = next(bob, "room:message");
  await alice.emitWithAck("room:publish", { room: "chat:s", data: "hello" });
  assert.equal((await got).data, "hello");
  assert.ok(Number(cli(ports.master, "DBSIZE")) > 0, "the nodes write to the master");
  alice.disconnect();
  bob.disconnect();
});

test("a failover: connections stay, delivery resumes, revocations hold, nothing arrives twice", async () => {
  const alice = await a.connect({ auth: { token: sign({ sub: "alice2", ...caps }) } });
  const bob = await b.connect({ auth: { token: sign({ sub: "bob2", ...caps }) } });
  const carol = await b.connect({ auth: { token: sign({ sub: "carol", jti: "carol-after", ...caps }) } });
  for (const s of [alice, bob]) assert.equal((await s.emitWithAck("room:join", { room: "chat:fo" })).ok, true);
  const drops = [];
  for (const s of [alice, bob, carol]) s.on("disconnect", (why) => drops.push(why));
  const seen = [];
  bob.on("room:message", (m) => seen.push(m.id));

  const revoked = sign({ sub: "mallory", jti: "before-failover" });
  const stored = await api(a, "POST", "/api/revocations", { body: { jti: "before-failover", expiresAt: now() + 600 } });
  assert.equal(stored.status, 201);

  // Traffic all through the failover: a message every 50 ms from alice.
  let sending = true;
  const sent = (async () => {
    for (let n = 0; sending; n++) {
      await alice.timeout(3000).emitWithAck("room:publish", { room: "chat:fo", data: { n } }).catch(() => {});
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  master.child.kill("SIGKILL");
  await eventually(() => sentinel.lines.some((l) => l.includes("+switch-master")), 20000, "the Sentinel promotes the replica");
  assert.equal(cli(ports.replica, "ROLE").split("\n")[0], "master");
  await eventually(async () => (await ready(a)) === 200 && (await ready(b)) === 200, 20000, "both nodes ready on the new master");

  await eventually(async () => {
    const got = next(bob, "room:message", 1000).catch(() => null);
    await alice.emitWithAck("room:publish", { room: "chat:fo", data: "after" });
    return (await got)?.data === "after";
  }, 15000, "cross-node delivery on the new master");

  const members = await eventually(async () => {
    const r = (await api(a, "GET", "/api/rooms/chat:fo/members")).body.members;
    return r?.length === 2 && r;
  }, 10000, "presence on the new master");
  assert.deepEqual(members, ["alice2", "bob2"]);

  // A revocation made on A after the failover ends the socket on B.
  const end = ended(carol);
  const later = await api(a, "POST", "/api/revocations", { body: { jti: "carol-after", expiresAt: now() + 600 } });
  assert.equal(later.status, 201);
  assert.equal((await end).end?.code, "TOKEN_REVOKED");
  // The one made before it holds on both nodes.
  for (const gw of [a, b]) assert.match((await refusal(gw, { auth: { token: revoked } })).message, /^TOKEN_REVOKED: /);

  sending = false;
  await sent;
  assert.deepEqual(drops.filter((why) => why !== "io server disconnect"), [], "no connection was lost");
  // Their heartbeats lapsed on the promoted replica; their sessions did
  // not: neither node takes the other for dead.
  const sessions = (await api(b, "GET", "/api/sessions")).body.sessions.map((s) => s.userId);
  assert.ok(sessions.includes("alice2") && sessions.includes("bob2"), `both nodes' sessions listed: ${sessions}`);
  assert.deepEqual(allLogLines.filter((l) => l.includes("NODE_LOST")), [], "no node reported lost");
  assert.equal(new Set(seen).size, seen.length, "nothing arrived twice");
  assert.ok(alice.connected && bob.connected);
  alice.disconnect();
  bob.disconnect();
});

test("a planned failover back to the old master's port: the nodes follow without losing a connection", { timeout: 120000 }, async () => {
  const alice = await a.connect({ auth: { token: sign({ sub: "alice3", ...caps }) } });
  const bob = await b.connect({ auth: { token: sign({ sub: "bob3", ...caps }) } });
  for (const s of [alice, bob]) assert.equal((await s.emitWithAck("room:join", { room: "chat:planned" })).ok, true);
  const drops = [];
  for (const s of [alice, bob]) s.on("disconnect", (why) => drops.push(why));

  // The old master's port comes back as a replica of the new master.
  const dir = mkdtempSync(join(tmpdir(), "sockgate-redis-"));
  master = await redisServer(
    ["--port", String(ports.master), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--replicaof", "127.0.0.1", String(ports.replica)],
    /MASTER <-> REPLICA sync: Finished with success/,
  );
  await eventually(() => cli(ports.sentinel, "SENTINEL", "replicas", "mymaster").includes(String(ports.master)), 20000, "the Sentinel sees the new replica");
  const switches = sentinel.lines.filter((l) => l.includes("+switch-master")).length;
  assert.equal(cli(ports.sentinel, "SENTINEL", "failover", "mymaster"), "OK");
  await eventually(() => sentinel.lines.filter((l) => l.includes("+switch-master")).length > switches, 20000, "the planned switch");
  assert.equal(cli(ports.master, "ROLE").split("\n")[0], "master");
  // The Sentinel turns the old master into a replica a few seconds later:
  // from then on it refuses the nodes' writes, and they move.
  await eventually(() => cli(ports.replica, "ROLE").split("\n")[0] === "slave", 30000, "the old master demoted");
  await eventually(() => allLogLines.filter((l) => l.includes("moved there")).length === 4, 10000, "both nodes moved");

  await eventually(async () => {
    const got = next(bob, "room:message", 1000).catch(() => null);
    await alice.emitWithAck("room:publish", { room: "chat:planned", data: "back" });
    return (await got)?.data === "back";
  }, 20000, "cross-node delivery after the planned failover");
  // Written again on the new master by both nodes' resync.
  await eventually(async () => {
    const sessions = (await api(a, "GET", "/api/sessions")).body.sessions?.map((s) => s.userId) ?? [];
    return sessions.includes("alice3") && sessions.includes("bob3");
  }, 10000, "both nodes' sessions listed");
  assert.deepEqual(drops, [], "no connection was lost");
  alice.disconnect();
  bob.disconnect();
});

test("on the new master: session limits and recovery across nodes", async () => {
  const env = { SOCKGATE_REDIS_URL: `redis+sentinel://127.0.0.1:${ports.sentinel}/mymaster`, SOCKGATE_API_KEY: API_KEY, SOCKGATE_MAX_SESSIONS_PER_USER: "1", SOCKGATE_SESSION_LIMIT_POLICY: "reject" };
  const c = await startGateway(env);
  const d = await startGateway(env);
  try {
    const first = await c.connect({ auth: { token: sign({ sub: "dana", ...caps }) } });
    assert.match((await refusal(d, { auth: { token: sign({ sub: "dana", ...caps }) } })).message, /^SESSION_LIMIT: /);
    first.disconnect();

    // A session dropped on c recovers on d with what it missed.
    const token = sign({ sub: "erin", ...caps });
    const erin = await c.connect({ auth: { token } });
    assert.equal((await erin.emitWithAck("room:join", { room: "chat:rec" })).ok, true);
    const one = next(erin, "news");
    assert.equal((await api(d, "POST", "/api/publish", { body: { room: "chat:rec", event: "news", data: 1 } })).status, 200);
    assert.equal(await one, 1);
    const [pid, offset, id] = [erin._pid, erin._lastOffset, erin.id];
    assert.ok(pid && offset, "recovery is on");
    erin.io.engine.close();
    await eventually(async () => (await api(c, "GET", "/api/sessions?user=erin")).body.sessions?.length === 0, 10000, "the session parked");
    for (const n of [2, 3]) {
      assert.equal((await api(c, "POST", "/api/publish", { body: { room: "chat:rec", event: "news", data: n } })).status, 200);
    }
    const { io } = await import("socket.io-client");
    const back = io(d.url, { reconnection: false, forceNew: true, transports: ["websocket"], autoConnect: false, auth: { token, pid, offset } });
    const got = [];
    back.on("news", (n) => got.push(n));
    back.connect();
    await eventually(() => got.length === 2, 10000, "what it missed");
    assert.deepEqual(got, [2, 3]);
    assert.equal(back.id, id, "the same socket id, on the other node");
    back.close();
  } finally {
    await c.stop();
    await d.stop();
  }
});
