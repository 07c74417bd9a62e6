// room:joined and room:left: rooms with presence events tell their members
// who comes and goes, a departure after the offline delay, a quick return
// cancelling both.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sign, startGateway } from "./helpers.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A socket of `user` allowed in game:* and chat:*, recording presence events. */
async function member(gw, user) {
  const socket = await gw.connect({ auth: { token: sign({ sub: user, rooms: ["game:*", "chat:*"] }) } });
  const heard = [];
  socket.on("room:joined", (p) => heard.push(["joined", p.room, p.userId]));
  socket.on("room:left", (p) => heard.push(["left", p.room, p.userId]));
  return { socket, heard };
}
const join_ = async (s, room) => assert.equal((await s.emitWithAck("room:join", { room })).ok, true);
const leave = async (s, room) => assert.equal((await s.emitWithAck("room:leave", { room })).ok, true);

describe("presence events by room rule", () => {
  let gw;
  before(async () => {
    const file = join(mkdtempSync(join(tmpdir(), "sockgate-presence-")), "sockgate.toml");
    writeFileSync(file, '[[room_rules]]\nmatch = "game:*"\nallow = []\npresence_events = true\n');
    gw = await startGateway({ SOCKGATE_WEBHOOK_OFFLINE_DELAY: "0.5" }, ["--config", file]);
  });
  after(() => gw.stop());

  test("a user's first socket is announced, the last one gone after the delay; other rooms hear nothing", async () => {
    const ann = await member(gw, "pe-ann");
    await join_(ann.socket, "game:1");
    await join_(ann.socket, "chat:1");
    const bob1 = await member(gw, "pe-bob");
    const bob2 = await member(gw, "pe-bob");
    await join_(bob1.socket, "game:1");
    await join_(bob2.socket, "game:1"); // bob's second socket: no news
    await join_(bob1.socket, "chat:1");
    await sleep(200);
    // Every member hears it, the newcomer's own sockets included.
    assert.deepEqual(ann.heard, [["joined", "game:1", "pe-ann"], ["joined", "game:1", "pe-bob"]]);
    await leave(bob1.socket, "game:1"); // one of bob's sockets left: still there
    await sleep(800);
    assert.equal(ann.heard.length, 2);
    bob2.socket.close(); // the last one: after the delay
    await sleep(200);
    assert.equal(ann.heard.length, 2, "not before the delay");
    await sleep(800);
    assert.deepEqual(ann.heard.slice(1), [["joined", "game:1", "pe-bob"], ["left", "game:1", "pe-bob"]]);
    for (const s of [ann.socket, bob1.socket]) s.close();
  });

  test("a return within the delay (a reload) is neither left nor joined", async () => {
    const cy = await member(gw, "pe-cy");
    await join_(cy.socket, "game:2");
    const token = sign({ sub: "pe-di", rooms: ["game:*"] });
    const di = await gw.connect({ auth: { token } });
    await join_(di, "game:2");
    await sleep(100);
    di.close();
    const again = await gw.connect({ auth: { token } });
    await join_(again, "game:2");
    await sleep(1000);
    assert.deepEqual(cy.heard, [["joined", "game:2", "pe-cy"], ["joined", "game:2", "pe-di"]]);
    again.close();
    cy.socket.close();
  });
});

test("SOCKGATE_ROOM_PRESENCE_EVENTS=true: every room", async () => {
  const gw = await startGateway({ SOCKGATE_ROOM_PRESENCE_EVENTS: "true", SOCKGATE_WEBHOOK_OFFLINE_DELAY: "0.2" });
  try {
    const ed = await member(gw, "pe-ed");
    await join_(ed.socket, "chat:any");
    const fay = await member(gw, "pe-fay");
    await join_(fay.socket, "chat:any");
    await leave(fay.socket, "chat:any");
    await sleep(600);
    assert.deepEqual(ed.heard, [["joined", "chat:any", "pe-ed"], ["joined", "chat:any", "pe-fay"], ["left", "chat:any", "pe-fay"]]);
    // Without either, no room hears anything (the default).
    const plain = await startGateway({});
    try {
      const gil = await member(plain, "pe-gil");
      await join_(gil.socket, "chat:q");
      const hal = await member(plain, "pe-hal");
      await join_(hal.socket, "chat:q");
      await sleep(300);
      assert.deepEqual(gil.heard, []);
    } finally {
      await plain.stop();
    }
  } finally {
    await gw.stop();
  }
});
