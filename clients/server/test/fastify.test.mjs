// createHandler behind a real Fastify 5 app, through `handler.handle` (the
// adapter form: Fastify hands it the raw bytes it kept), called by the
// real sockgate binary for the official socket.io-client's events.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import Fastify from "fastify";
import { createHandler, sign, SockgateError } from "../dist/index.js";
import { ask, collect, connect, EVENTS_SECRET, next, nowSec, startGateway, token } from "./support/gateway.mjs";

let runs = 0;
const handler = createHandler({
  secret: EVENTS_SECRET,
  events: {
    "chat:join": (ctx, room) => {
      runs += 1;
      if (!room.startsWith("chat:")) throw new SockgateError("FORBIDDEN_ROOM", "chat rooms only");
      ctx.join(room);
      return { ok: true };
    },
    // Socket.IO's socket.to(room): the room's other sockets.
    "chat:send": (ctx, room, text) => {
      runs += 1;
      ctx.broadcast.to(room).emit("chat:message", { from: ctx.userId, text });
      return { sent: true };
    },
    // io.to(room): every socket in the room, the sender's too.
    "chat:shout": (ctx, room, text) => {
      runs += 1;
      ctx.to(room).emit("chat:shout", { from: ctx.userId, text });
      return { sent: true };
    },
  },
});

/** The README's Fastify backend: the JSON body kept as bytes, for the signature. */
async function fastifyBackend() {
  const app = Fastify();
  app.addContentTypeParser("application/json", { parseAs: "buffer" }, (req, body, done) => done(null, body));
  app.post("/sockgate", async (req, reply) => {
    const { status, body } = await handler.handle(req.method, req.headers["sockgate-signature"], req.body);
    return reply.code(status).send(body);
  });
  await app.listen({ port: 0, host: "127.0.0.1" });
  return { app, url: `http://127.0.0.1:${app.server.address().port}` };
}

let backend;
let gw;
const sockets = [];
before(async () => {
  backend = await fastifyBackend();
  gw = await startGateway({ SOCKGATE_EVENTS_URL: `${backend.url}/sockgate` });
});
after(async () => {
  sockets.forEach((s) => s.close());
  await gw?.stop();
  await backend?.app.close();
});

async function client(user) {
  const socket = await connect(gw.url, { token: token(user) });
  sockets.push(socket);
  return socket;
}

test("Fastify answers events: a join, a message to the room's others (and one to all), a refusal with its code", async () => {
  const ann = await client("ann");
  const ben = await client("ben");
  assert.deepEqual(await ask(ann, "chat:join", "chat:f"), { ok: true });
  assert.deepEqual(await ask(ben, "chat:join", "chat:f"), { ok: true });
  assert.deepEqual((await gw.api("GET", "/api/rooms/chat:f/members")).body.members, ["ann", "ben"]);
  const own = collect(ann, "chat:message");
  const heard = next(ben, "chat:message");
  assert.deepEqual(await ask(ann, "chat:send", "chat:f", "hi"), { sent: true });
  assert.deepEqual(await heard, { from: "ann", text: "hi" });
  const refused = await ask(ann, "chat:join", "admin");
  assert.deepEqual([refused.ok, refused.code], [false, "FORBIDDEN_ROOM"]);
  const shouts = [next(ann, "chat:shout"), next(ben, "chat:shout")];
  assert.deepEqual(await ask(ann, "chat:shout", "chat:f", "HI"), { sent: true });
  assert.deepEqual(await Promise.all(shouts), [{ from: "ann", text: "HI" }, { from: "ann", text: "HI" }]);
  await ask(ann, "echo", "flush");
  assert.equal(own.length, 0, "broadcast.to(room) leaves the sender out");
});

test("Fastify: a forged or stale signature is 401 and runs nothing", async () => {
  const body = JSON.stringify({
    id: "0".repeat(32), event: "chat:join", args: ["chat:x"], userId: "mallory", sessionId: "s",
    claims: {}, rooms: [], transport: "websocket", remoteAddr: "127.0.0.1", ts: Date.now(),
  });
  const before = runs;
  const post = (signature) =>
    fetch(`${backend.url}/sockgate`, { method: "POST", headers: { "content-type": "application/json", "sockgate-signature": signature }, body });
  for (const signature of [sign(body, "another-secret-another-secret-0123456789"), sign(body, EVENTS_SECRET, nowSec() - 301), ""]) {
    const res = await post(signature);
    assert.equal(res.status, 401);
    assert.equal((await res.json()).error.code, "UNAUTHORIZED");
  }
  assert.equal(runs, before, "no handler ran");
  // The control: the same body, well signed, runs.
  const ok = await post(sign(body, EVENTS_SECRET));
  assert.equal(ok.status, 200);
  assert.equal(runs, before + 1);
});
