// createHandler as a Next.js App Router route handler (`export const POST =
// handler`, test/next-app/app/api/sockgate/route.js), built with `next
// build`, served by `next start`, called by the real sockgate binary for the
// events of the official socket.io-client and for its connect hook.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { sign } from "../dist/index.js";
import { ask, connect, eventually, EVENTS_SECRET, freePort, next, sleep, startGateway, token } from "./support/gateway.mjs";

const app = join(dirname(fileURLToPath(import.meta.url)), "next-app");
const nextBin = join(dirname(createRequire(import.meta.url).resolve("next/package.json")), "dist", "bin", "next");
/** Next's environment: no telemetry (nothing leaves 127.0.0.1), and the handler's secret. */
const nextEnv = { PATH: process.env.PATH, HOME: process.env.HOME, NEXT_TELEMETRY_DISABLED: "1", SOCKGATE_EVENTS_SECRET: EVENTS_SECRET };

/** Runs `next <args>` in the app to completion; rejects with its output when it fails. */
function runNext(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [nextBin, ...args], { cwd: app, env: nextEnv, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve(output) : reject(new Error(`next ${args.join(" ")} exited with ${code}:\n${output}`))));
  });
}

/** `next start` on a free port; resolves once the route answers. */
async function startNext() {
  const port = await freePort();
  const child = spawn(process.execPath, [nextBin, "start", "-p", String(port), "-H", "127.0.0.1"], {
    cwd: app,
    env: nextEnv,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const exited = new Promise((r) => child.once("exit", r));
  const url = `http://127.0.0.1:${port}`;
  const start = Date.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`next start exited with ${child.exitCode}:\n${output}`);
    const up = await fetch(`${url}/api/sockgate`, { method: "POST", body: "{}" }).then((r) => r.status === 401, () => false);
    if (up) break;
    if (Date.now() - start > 60000) throw new Error(`next start did not serve within 60 s:\n${output}`);
    await sleep(200);
  }
  return {
    url,
    output: () => output,
    async stop() {
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        await exited;
      }
    },
  };
}

let nextServer;
let gw;
const sockets = [];

before(
  async () => {
    await runNext(["build"]);
    nextServer = await startNext();
    gw = await startGateway({
      SOCKGATE_EVENTS_URL: `${nextServer.url}/api/sockgate`,
      SOCKGATE_CONNECT_URL: `${nextServer.url}/api/sockgate`,
    });
  },
  { timeout: 300000 },
);

after(async () => {
  sockets.forEach((s) => s.close());
  await gw?.stop();
  await nextServer?.stop();
});

async function client(user) {
  const socket = await connect(gw.url, { token: token(user) });
  sockets.push(socket);
  return socket;
}

describe("a Next.js route handler", () => {
  test("events: ack, join and emit, a publish to the room, a SockgateError", async () => {
    const alice = await client("alice");
    const bob = await client("bob");
    const refused = await ask(alice, "chat:send", { room: "chat:next", text: "early" });
    assert.deepEqual(refused, { ok: false, code: "CHAT_FORBIDDEN", message: "join the room first" });

    const joined = next(alice, "chat:joined");
    assert.deepEqual(await ask(alice, "chat:join", "chat:next"), { ok: true });
    assert.deepEqual(await joined, { room: "chat:next" });
    await ask(bob, "chat:join", "chat:next");

    const heard = next(bob, "chat:message");
    assert.deepEqual(await ask(alice, "chat:send", { room: "chat:next", text: "hi" }), { ok: true, via: "next" });
    assert.deepEqual(await heard, { from: "alice", text: "hi" });
  });

  test("an exception is BACKEND_ERROR without its message; an unknown event is UNKNOWN_EVENT", async () => {
    const alice = await client("alice");
    assert.deepEqual(await ask(alice, "chat:crash"), { ok: false, code: "BACKEND_ERROR", message: "the app's handler failed" });
    await eventually(() => /next secret detail/.test(nextServer.output()), 10000, "onError's line in the app's log");
    const unknown = await ask(alice, "chat:unknown");
    assert.equal(unknown.code, "UNKNOWN_EVENT");
    assert.match(unknown.message, /"chat:unknown"/, "the handler's message, not sockgate's");
  });

  test("the connect hook admits with an Identity and refuses with a SockgateError", async () => {
    const admitted = await connect(gw.url, { apiKey: "next-key" });
    sockets.push(admitted);
    const me = await ask(admitted, "auth:whoami");
    assert.equal(me.userId, "next-user");
    assert.equal(me.claims.plan, "pro");
    const err = await connect(gw.url, { apiKey: "nope" }).then(
      () => assert.fail("admitted"),
      (e) => e,
    );
    assert.deepEqual(err.data, { code: "NOT_LOGGED_IN", message: "no key" });
  });

  test("unsigned, forged and stale calls are 401; a GET is 405", async () => {
    const body = JSON.stringify({ id: "x", event: "chat:join", args: ["chat:x"], userId: "m", sessionId: "s", claims: {}, rooms: [], transport: "websocket", remoteAddr: null, ts: 0 });
    const post = (headers) => fetch(`${nextServer.url}/api/sockgate`, { method: "POST", headers, body });
    for (const headers of [
      {},
      { "sockgate-signature": sign(body, "wrong-secret-wrong-secret-wrong-secret") },
      { "sockgate-signature": sign(body, EVENTS_SECRET, Math.floor(Date.now() / 1000) - 3600) },
    ]) {
      const res = await post(headers);
      assert.equal(res.status, 401);
      assert.equal((await res.json()).error.code, "UNAUTHORIZED");
    }
    const ok = await post({ "sockgate-signature": sign(body, EVENTS_SECRET) });
    assert.equal(ok.status, 200);
    assert.equal((await fetch(`${nextServer.url}/api/sockgate`)).status, 405);
  });
});
