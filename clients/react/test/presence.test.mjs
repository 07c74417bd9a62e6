// useRoom's member list kept live by the gateway's room:joined and room:left,
// in real Chromium against the real sockgate binary. The page
// (presence-page.tsx) neither polls (membersIntervalMs 0) nor calls
// refreshMembers: after the one room:members asked at join, only the push
// events can change the list it shows. The other users are the official
// socket.io-client, from Node.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { chromium } from "playwright-core";
import { io } from "socket.io-client";
import { eventually, sign, startGateway } from "../../js/test/support/gateway.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ROOM = "team:presence";
const ROOMS = [{ match: "team:*", allow: ["join", "presence"] }];
// How long the gateway waits before announcing a departure (seconds).
const OFFLINE_DELAY = 0.5;

/** The page of `user`: its config (the gateway URL, a token for `user`, the room) and the bundle. */
const index = (config) => `<!doctype html>
<html lang="en">
  <head><meta charset="utf-8" /><title>presence</title><link rel="icon" href="data:," /></head>
  <body>
    <div id="root"></div>
    <script>window.PRESENCE_CONFIG = ${JSON.stringify(config)};</script>
    <script src="/app.js"></script>
  </body>
</html>`;

/** Serves the page (/?user=...) and its bundle. */
function startApp(bundle, config) {
  const server = createServer((req, res) => {
    const url = new URL(req.url, "http://app");
    if (url.pathname === "/") {
      const token = sign(url.searchParams.get("user"), { rooms: ROOMS });
      res.writeHead(200, { "content-type": "text/html", "cache-control": "no-store" });
      return res.end(index({ ...config(), token }));
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
const pageErrors = [];
const sockets = [];

before(async () => {
  // The page, from useRoom's source.
  const bundled = await build({
    entryPoints: [join(here, "presence-page.tsx")],
    bundle: true,
    write: false,
    format: "iife",
    jsx: "automatic",
    target: "es2020",
    define: { "process.env.NODE_ENV": JSON.stringify("development") },
    logLevel: "warning",
  });
  let gatewayUrl;
  app = await startApp(bundled.outputFiles[0].text, () => ({ gatewayUrl, room: ROOM }));
  gw = await startGateway({
    SOCKGATE_ALLOWED_ORIGINS: app.origin,
    SOCKGATE_ROOM_PRESENCE_EVENTS: "true",
    SOCKGATE_WEBHOOK_OFFLINE_DELAY: String(OFFLINE_DELAY),
  });
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

/** A socket.io-client socket of `user`, connected and in the room. */
async function joinAs(user) {
  const socket = io(gw.url, { transports: ["websocket"], reconnection: false, forceNew: true, auth: { token: sign(user, { rooms: ROOMS }) } });
  sockets.push(socket);
  await new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("connect_error", reject);
  });
  const ack = await socket.timeout(5000).emitWithAck("room:join", { room: ROOM });
  assert.equal(ack.ok, true, `${user} joins: ${JSON.stringify(ack)}`);
  return socket;
}

const sessionsOf = async (user) => (await gw.api("GET", `/api/sessions?user=${user}`)).body.sessions;
const shownMembers = (page) => page.locator('[data-testid="members"] li').allTextContents();

/** Waits until the page lists exactly `expected` as the room's members. */
async function waitMembers(page, expected, timeout = 5000) {
  try {
    await page.waitForFunction(
      (expected) => JSON.stringify([...document.querySelectorAll('[data-testid="members"] li')].map((li) => li.textContent)) === expected,
      JSON.stringify(expected),
      { timeout, polling: 25 },
    );
  } catch (err) {
    throw new Error(`the page lists ${JSON.stringify(await shownMembers(page))}, not ${JSON.stringify(expected)}: ${err.message}`);
  }
}

test("useRoom keeps its member list live from room:joined and room:left alone, with no polling", async () => {
  const page = await browser.newPage();
  page.on("pageerror", (err) => pageErrors.push(err.message));
  page.on("console", (msg) => msg.type() === "error" && pageErrors.push(msg.text()));
  await page.goto(`${app.origin}/?user=alice`);
  await page.getByTestId("joined").and(page.getByText("true", { exact: true })).waitFor({ timeout: 15000 }).catch(async (err) => {
    throw new Error(`the page did not join: ${await page.locator("main").textContent()} ${pageErrors}: ${err.message}`);
  });
  // The one room:members of the join.
  await waitMembers(page, ["alice"]);
  const asks = () => page.evaluate(() => window.membersAsks);
  assert.equal(await asks(), 1);

  // Bob comes: room:joined.
  const bob1 = await joinAs("bob");
  await waitMembers(page, ["alice", "bob"]);

  // Bob's second socket is no news, and closing one of the two leaves bob in.
  const bob2 = await joinAs("bob");
  bob1.close();
  await eventually(async () => (await sessionsOf("bob")).length === 1, 5000, "bob's first socket gone at the gateway");
  // Carol comes and goes after bob's first socket is gone: her room:left,
  // the same delay later, comes after any bob's close could have caused.
  const carol = await joinAs("carol");
  await waitMembers(page, ["alice", "bob", "carol"]);
  carol.close();
  await waitMembers(page, ["alice", "bob"]);

  // Bob's last socket: room:left, after the offline delay.
  const closedAt = Date.now();
  bob2.close();
  await waitMembers(page, ["alice"]);
  const took = Date.now() - closedAt;
  assert.ok(took >= OFFLINE_DELAY * 1000 * 0.9, `bob left the list after ${took} ms, before the offline delay`);

  // Nothing but the push events changed the list: still the one room:members.
  assert.equal(await asks(), 1, "no room:members after the join's");
  assert.deepEqual(pageErrors, []);
  await page.close();
});
