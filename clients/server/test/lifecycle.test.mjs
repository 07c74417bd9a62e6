// readLifecycle behind a real Express app, receiving the real sockgate
// binary's lifecycle webhooks for the official socket.io-client's sessions:
// the receiver of docs/webhooks.md.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import express from "express";
import { readLifecycle, sign, SockgateWebhookError } from "../dist/index.js";
import { connect, eventually, serve, startGateway, token } from "./support/gateway.mjs";

const WEBHOOK_SECRET = "server-sdk-webhook-secret-0123456789abcd";
const seen = new Map(); // id → event: a retried batch repeats ids
const refused = [];

// The receiver, as docs/webhooks.md shows it.
const app = express();
app.post("/sockgate/lifecycle", express.raw({ type: "application/json" }), (req, res) => {
  try {
    for (const event of readLifecycle(req.body, req.headers["sockgate-signature"], WEBHOOK_SECRET)) {
      if (!seen.has(event.id)) seen.set(event.id, event);
    }
    res.sendStatus(204);
  } catch (err) {
    if (!(err instanceof SockgateWebhookError)) throw err;
    refused.push(err.status);
    res.sendStatus(err.status);
  }
});

let backend;
let gw;
before(async () => {
  backend = await serve(app);
  gw = await startGateway({
    SOCKGATE_WEBHOOK_URL: `${backend.url}/sockgate/lifecycle`,
    SOCKGATE_WEBHOOK_SECRET: WEBHOOK_SECRET,
    SOCKGATE_WEBHOOK_OFFLINE_DELAY: "0.2",
  });
});
after(async () => {
  await gw?.stop();
  await backend?.close();
});

test("readLifecycle takes sockgate's batches: a session's start and end, online and offline", async () => {
  const socket = await connect(gw.url, { token: token("life-ann") });
  socket.close();
  await eventually(() => [...seen.values()].some((e) => e.type === "user.offline" && e.userId === "life-ann"), 10000, "user.offline");
  const types = [...seen.values()].filter((e) => e.userId === "life-ann").map((e) => e.type);
  assert.deepEqual(types, ["session.started", "user.online", "session.ended", "user.offline"]);
  assert.deepEqual(refused, []);
});

test("a forged, stale or malformed batch is refused with its status", async () => {
  const body = JSON.stringify({ events: [{ id: "x", type: "user.online", userId: "mallory", ts: 1 }] });
  const post = (signature, data = body) =>
    fetch(`${backend.url}/sockgate/lifecycle`, { method: "POST", headers: { "content-type": "application/json", "sockgate-signature": signature }, body: data });
  assert.equal((await post(sign(body, "another-secret-another-secret-0123456789"))).status, 401);
  assert.equal((await post(sign(body, WEBHOOK_SECRET, Math.floor(Date.now() / 1000) - 301))).status, 401);
  assert.equal((await post(sign("[1]", WEBHOOK_SECRET), "[1]")).status, 400);
  assert.equal((await post(sign(body, WEBHOOK_SECRET))).status, 204, "the control: well signed");
  assert.ok(seen.has("x"));
  assert.throws(() => readLifecycle(body, "", WEBHOOK_SECRET), (err) => err instanceof SockgateWebhookError && err.status === 401);
});
