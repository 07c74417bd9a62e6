// A single node's recovery across its own restart: the history and the
// parked sessions are kept in SQLite under SOCKGATE_DATA_DIR, so that the
// official client comes back to the restarted node with its socket id, its
// rooms and what it missed, as it would to another node of a cluster.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { API_KEY, api, eventually, freePort, sign, startGateway } from "./helpers.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const range = (a, b) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

async function publish(gw, n) {
  const res = await api(gw, "POST", "/api/publish", { body: { room: "chat:r", event: "news", data: { n } } });
  assert.equal(res.status, 200, JSON.stringify(res.body));
}

/** A member of chat:r recording the `n` of every `news`. */
async function member(gw, user, reconnection) {
  const socket = await gw.connect({ ...reconnection, auth: { token: sign({ sub: user, rooms: ["chat:*"] }) } });
  assert.equal((await socket.emitWithAck("room:join", { room: "chat:r" })).ok, true);
  const got = [];
  socket.on("news", (data) => got.push(data.n));
  return { socket, got };
}

/** The same port and data directory for both runs. */
function node(port, dir) {
  return startGateway({ SOCKGATE_API_KEY: API_KEY, SOCKGATE_LISTEN: `127.0.0.1:${port}`, SOCKGATE_DATA_DIR: dir });
}

/** Sends `name` to the node's process and waits for it to exit (its clients stay as they are). */
async function signal(gw, name) {
  const exited = new Promise((r) => gw.child.once("exit", r));
  gw.child.kill(name);
  await exited;
}

const fast = { reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 200, randomizationFactor: 0 };
const manual = { reconnection: false };

/**
 * Alice stays connected; carol's transport drops (she is parked), and she
 * misses 3 and 4. Then the node stops with `stop`, and starts again.
 */
async function restartWith(stop) {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "sockgate-restart-"));
  const first = await node(port, dir);
  const alice = await member(first, "rs-alice", fast);
  const carol = await member(first, "rs-carol", manual);
  const [aliceId, carolId] = [alice.socket.id, carol.socket.id];
  for (const n of [1, 2]) await publish(first, n);
  await eventually(() => alice.got.length === 2 && carol.got.length === 2, 5000, "1 and 2");
  carol.socket.io.engine.close();
  await eventually(() => !carol.socket.connected, 5000, "carol's transport dropped");
  // Parked: her state is on its way to disk.
  await sleep(200);
  for (const n of [3, 4]) await publish(first, n);
  await eventually(() => alice.got.length === 4, 5000, "alice got 3 and 4");
  // What was written is on disk a moment after.
  await sleep(300);
  await stop(first);
  const second = await node(port, dir);
  return { second, alice, carol, aliceId, carolId };
}

describe("recovery across a single node's restart", () => {
  test("SIGTERM: every client recovers on the restarted node, with what it missed", async () => {
    const { second, alice, carol, aliceId, carolId } = await restartWith((gw) => signal(gw, "SIGTERM"));
    try {
      // Alice was drained (SERVER_SHUTDOWN, retryable): she comes back by
      // herself and recovers.
      await eventually(() => alice.socket.connected, 10000, "alice back");
      assert.equal(alice.socket.recovered, true, "alice recovered");
      assert.equal(alice.socket.id, aliceId);
      await publish(second, 5);
      await eventually(() => alice.got.length === 5, 5000, "alice got 5");
      assert.deepEqual(alice.got, range(1, 5), "each once, in order");
      // Carol had dropped before the restart: her pid and offset still
      // name her session, with 3, 4 and 5 missed.
      const back = new Promise((resolve) => carol.socket.once("connect", resolve));
      carol.socket.connect();
      await back;
      assert.equal(carol.socket.recovered, true, "carol recovered");
      assert.equal(carol.socket.id, carolId);
      await eventually(() => carol.got.length === 5, 5000, "carol got what she missed");
      assert.deepEqual(carol.got, range(1, 5));
      // Recovered sessions are in their rooms again.
      await publish(second, 6);
      await eventually(() => alice.got.at(-1) === 6 && carol.got.at(-1) === 6, 5000, "both got 6");
    } finally {
      alice.socket.close();
      carol.socket.close();
      await second.stop();
    }
  });

  test("SIGKILL: what was written comes back (a parked session and its missed messages); the sessions alive at the kill start fresh", async () => {
    const { second, alice, carol, carolId } = await restartWith((gw) => signal(gw, "SIGKILL"));
    try {
      const back = new Promise((resolve) => carol.socket.once("connect", resolve));
      carol.socket.connect();
      await back;
      assert.equal(carol.socket.recovered, true, "carol recovered");
      assert.equal(carol.socket.id, carolId);
      await eventually(() => carol.got.length === 4, 5000, "carol got 3 and 4");
      assert.deepEqual(carol.got, range(1, 4));
      // Alice was connected when the process died: nothing parked her, so
      // she comes back as a new session (and says so).
      await eventually(() => alice.socket.connected, 10000, "alice back");
      assert.equal(alice.socket.recovered, false);
    } finally {
      alice.socket.close();
      carol.socket.close();
      await second.stop();
    }
  });
});
