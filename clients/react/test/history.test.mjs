// useRoom's `history` option, in real Chromium against the real sockgate
// binary (recovery on by default, so the gateway keeps the rooms' messages).
// The page (history-page.tsx) renders useRoom(room, { history: 2 }); the
// publisher is the official socket.io-client, from Node, and publishes before
// the page opens, while it loads the history, and after.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { chromium } from "playwright-core";
import { io } from "socket.io-client";
import { sign, sleep, startGateway } from "../../js/test/support/gateway.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ROOMS = [{ match: "chat:*", allow: ["join", "publish"] }];

const index = (config) => `<!doctype html>
<html lang="en">
  <head><meta charset="utf-8" /><title>history</title><link rel="icon" href="data:," /></head>
  <body>
    <div id="root"></div>
    <script>window.HISTORY_CONFIG = ${JSON.stringify(config)};</script>
    <script src="/app.js"></script>
  </body>
</html>`;

/** Serves the page (/?user=...&room=...&gate=1&max=N) and its bundle. */
function startApp(bundle, gatewayUrl) {
  const server = createServer((req, res) => {
    const url = new URL(req.url, "http://app");
    if (url.pathname === "/") {
      const token = sign(url.searchParams.get("user"), { rooms: ROOMS });
      const config = { gatewayUrl: gatewayUrl(), token, room: url.searchParams.get("room"), gate: url.searchParams.get("gate") === "1" };
      if (url.searchParams.has("max")) config.maxMessages = Number(url.searchParams.get("max"));
      res.writeHead(200, { "content-type": "text/html", "cache-control": "no-store" });
      return res.end(index(config));
    }
    if (url.pathname === "/app.js") {
      res.writeHead(200, { "content-type": "text/javascript" });
      return res.end(bundle);
    }
    res.writeHead(404);
    res.end();
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve({ origin: `http://127.0.0.1:${server.address().port}`, close: () => server.close() })),
  );
}

let app, gw, browser;
const sockets = [];

before(async () => {
  const bundled = await build({
    entryPoints: [join(here, "history-page.tsx")],
    bundle: true,
    write: false,
    format: "iife",
    jsx: "automatic",
    target: "es2020",
    define: { "process.env.NODE_ENV": JSON.stringify("development") },
    logLevel: "warning",
  });
  let gatewayUrl;
  app = await startApp(bundled.outputFiles[0].text, () => gatewayUrl);
  gw = await startGateway({ SOCKGATE_ALLOWED_ORIGINS: app.origin });
  gatewayUrl = gw.url;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  for (const socket of sockets) socket.close();
  await browser?.close();
  await gw?.stop();
  app?.close();
});

/** A socket.io-client socket of `user`, in `room`, with a `publish(text)` that resolves the message id. */
async function publisher(user, room) {
  const socket = io(gw.url, { transports: ["websocket"], reconnection: false, forceNew: true, auth: { token: sign(user, { rooms: ROOMS }) } });
  sockets.push(socket);
  await new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("connect_error", reject);
  });
  const ack = await socket.timeout(5000).emitWithAck("room:join", { room });
  assert.equal(ack.ok, true, `${user} joins ${room}: ${JSON.stringify(ack)}`);
  return async (text) => {
    const sent = await socket.timeout(5000).emitWithAck("room:publish", { room, data: { text } });
    assert.equal(sent.ok, true, `${user} publishes ${text}: ${JSON.stringify(sent)}`);
    return { id: sent.id, text };
  };
}

/** Opens the page of alice in `room`, and waits until it joined. */
async function openPage(room, { gate = false, max } = {}) {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (err) => errors.push(err.message));
  page.on("console", (msg) => msg.type() === "error" && errors.push(msg.text()));
  await page.goto(`${app.origin}/?user=alice&room=${encodeURIComponent(room)}&gate=${gate ? 1 : 0}${max ? `&max=${max}` : ""}`);
  await page.getByTestId("joined").and(page.getByText("true", { exact: true })).waitFor({ timeout: 15000 }).catch(async (err) => {
    throw new Error(`the page did not join: ${await page.locator("main").textContent()} ${errors}: ${err.message}`);
  });
  return { page, errors };
}

/** The messages the page lists, as `{ id, text }`. */
const shown = (page) =>
  page.evaluate(() => [...document.querySelectorAll('[data-testid="messages"] li')].map((li) => ({ id: li.dataset.id, text: li.textContent })));

/** Waits until the page lists exactly `expected` (`{ id, text }`s), in that order. */
async function waitShown(page, expected, timeout = 5000) {
  try {
    await page.waitForFunction(
      (expected) =>
        JSON.stringify([...document.querySelectorAll('[data-testid="messages"] li')].map((li) => ({ id: li.dataset.id, text: li.textContent }))) === expected,
      JSON.stringify(expected),
      { timeout, polling: 25 },
    );
  } catch (err) {
    throw new Error(`the page lists ${JSON.stringify(await shown(page))}, not ${JSON.stringify(expected)}: ${err.message}`);
  }
}

test("useRoom({ history: 2 }) lists the room's last 2 messages from before it opened, in order, then the live ones", async () => {
  const room = "chat:history-before";
  const publish = await publisher("bob", room);
  const [, m2, m3] = [await publish("m1"), await publish("m2"), await publish("m3")];

  const { page, errors } = await openPage(room);
  await waitShown(page, [m2, m3]);
  // Nothing more comes from the history.
  await sleep(300);
  assert.deepEqual(await shown(page), [m2, m3]);

  // A live message comes after them.
  const m4 = await publish("m4");
  await waitShown(page, [m2, m3, m4]);
  assert.equal(await page.evaluate(() => window.historyAsks), 1, "one room:history");
  assert.deepEqual(errors, []);
  await page.close();
});

test("a message published while the history loads comes both live and in the history, and is listed once", async () => {
  const room = "chat:history-race";
  const publish = await publisher("bob", room);
  await publish("p1");
  await publish("p2");
  const p3 = await publish("p3");

  // The page joined and asked the history, which it holds.
  const { page, errors } = await openPage(room, { gate: true });
  await page.waitForFunction(() => window.historyAsks === 1, null, { timeout: 5000, polling: 25 });
  await sleep(100);
  assert.deepEqual(await shown(page), [], "nothing before the history");

  // Published now, p4 comes live, and will be in the history too.
  const p4 = await publish("p4");
  await waitShown(page, [p4]);
  await page.evaluate(() => window.releaseHistory());
  // The last 2 of the history are p3 and p4: p4 once.
  await waitShown(page, [p3, p4]);
  await sleep(300);
  const list = await shown(page);
  assert.deepEqual(list, [p3, p4]);
  assert.equal(new Set(list.map((m) => m.id)).size, list.length, `unique ids: ${JSON.stringify(list)}`);

  const p5 = await publish("p5");
  await waitShown(page, [p3, p4, p5]);
  assert.deepEqual(errors, []);
  await page.close();
});

test("a message published right after the page joined, with the history unheld, is listed once", async () => {
  const room = "chat:history-unheld";
  const publish = await publisher("bob", room);
  await publish("q1");
  const q2 = await publish("q2");
  const q3 = await publish("q3");

  const { page, errors } = await openPage(room);
  // As soon as it joined: before, while or after its room:history is served.
  const q4 = await publish("q4");
  // q4 may be in the history (then q3, q4) or after it (then q2, q3, q4).
  await page.waitForFunction(
    (id) => [...document.querySelectorAll('[data-testid="messages"] li')].some((li) => li.dataset.id === id),
    q4.id,
    { timeout: 5000, polling: 25 },
  );
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="messages"] li').length >= 2, null, { timeout: 5000, polling: 25 });
  await sleep(300);
  const list = await shown(page);
  assert.equal(new Set(list.map((m) => m.id)).size, list.length, `unique ids: ${JSON.stringify(list)}`);
  const expected = [JSON.stringify([q3, q4]), JSON.stringify([q2, q3, q4])];
  assert.ok(expected.includes(JSON.stringify(list)), `the page lists ${JSON.stringify(list)}`);
  assert.deepEqual(errors, []);
  await page.close();
});

test("maxMessages still bounds the list with the history loaded", async () => {
  const room = "chat:history-max";
  const publish = await publisher("bob", room);
  await publish("r1");
  await publish("r2");
  const r3 = await publish("r3");

  // history 2, maxMessages 1: the newest one only.
  const { page, errors } = await openPage(room, { max: 1 });
  await waitShown(page, [r3]);
  await sleep(300);
  assert.deepEqual(await shown(page), [r3]);
  const r4 = await publish("r4");
  await waitShown(page, [r4]);
  assert.deepEqual(errors, []);
  await page.close();
});
