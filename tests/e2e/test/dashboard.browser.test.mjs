// The live dashboard (/dashboard) in real Chromium against the real binary:
// the admin-key login and its cookie, figures that follow the gateway within
// seconds, a page on another local origin connecting to `serve --dev` with
// the default transports, and the screenshot in docs/dashboard.png
// (refreshed with UPDATE_SCREENSHOT=1).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { api, API_KEY, binary, eventually, freePort, launchChromium, root, SECRET, sign, startGateway, startRedis } from "./helpers.mjs";

const COOKIE = "sockgate_dashboard";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let browser;
before(async () => {
  browser = await launchChromium();
});
after(() => browser?.close());

/** A new tab in its own cookie jar; uncaught errors and console errors land in `errors`. */
async function newPage(viewport = { width: 1366, height: 768 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (err) => errors.push(err.message));
  // The session check and the stream answer 401 before the login; Chromium logs those.
  page.on("console", (msg) => msg.type() === "error" && !/status of 401/.test(msg.text()) && errors.push(msg.text()));
  return { context, page, errors };
}

/** Presses Tab until `selector` has the focus; returns how many presses it took. */
async function tabTo(page, selector, max = 6) {
  for (let presses = 0; presses <= max; presses++) {
    if (await page.evaluate((s) => document.activeElement?.matches(s) ?? false, selector)) return presses;
    await page.keyboard.press("Tab");
  }
  throw new Error(`${selector} not reached with ${max} presses of Tab`);
}

/** The focused element draws an outline (visible focus). */
const focusVisible = (page) => page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle !== "none");

const shown = (page) => page.locator("#connections").textContent();
/** Waits until #connections shows `n`; resolves with the ms it took. */
async function showsConnections(page, n, timeout) {
  const start = Date.now();
  try {
    await page.waitForFunction((n) => document.getElementById("connections")?.textContent === String(n), n, { timeout, polling: 50 });
  } catch {
    throw new Error(`#connections still "${await shown(page)}" after ${timeout} ms, expected ${n}`);
  }
  return Date.now() - start;
}

/** Logs in through the form and waits for the first figures. */
async function logIn(page, gw) {
  await page.goto(`${gw.url}/dashboard`);
  await page.waitForSelector("body[data-state=login]", { timeout: 5000 });
  await page.getByLabel("Admin API key").fill(API_KEY);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.waitForSelector("body[data-state=live]", { timeout: 5000 });
  await page.waitForFunction(() => /^\d+$/.test(document.getElementById("connections")?.textContent ?? ""), null, { timeout: 5000 });
}

const status = async (url, headers = {}) => {
  const res = await fetch(url, { headers, redirect: "manual" });
  await res.body?.cancel();
  return res.status;
};

describe("dashboard", () => {
  let gw;
  before(async () => (gw = await startGateway({ SOCKGATE_API_KEY: API_KEY })));
  after(() => gw?.stop());

  test("the dashboard needs the admin key: a wrong key is refused, the right one shows live figures", async () => {
    const { context, page, errors } = await newPage();
    await page.goto(`${gw.url}/dashboard`);
    await page.waitForSelector("body[data-state=login]", { timeout: 5000 });
    const field = page.getByLabel("Admin API key");
    assert.equal(await field.getAttribute("type"), "password");
    assert.equal(await field.getAttribute("name"), "key");
    assert.equal(await page.locator("#connections").isVisible(), false, "no figures before the login");

    // A wrong key: back to the form, told so, and no cookie.
    await field.fill("not-the-admin-key");
    await page.keyboard.press("Enter");
    await page.waitForURL(/\/dashboard\?denied/, { timeout: 5000 });
    await page.waitForSelector("body[data-state=login]");
    await page.getByText(/wrong key/i).waitFor({ state: "visible", timeout: 2000 });
    assert.deepEqual(await context.cookies(), []);

    // Nothing is served without the cookie, nor with a made-up one.
    for (const path of ["/dashboard/events", "/dashboard/session"]) {
      assert.equal(await status(gw.url + path), 401, `${path} without a cookie`);
      assert.equal(await status(gw.url + path, { cookie: `${COOKIE}=forged-${"0".repeat(32)}` }), 401, `${path} with a forged cookie`);
    }

    // The right key, with the keyboard only.
    assert.ok((await tabTo(page, "#key")) <= 1, "the key field comes first");
    assert.ok(await focusVisible(page), "the key field shows its focus");
    await page.keyboard.type(API_KEY);
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement.textContent.trim()), "Log in", "Tab leads from the key to the submit button");
    assert.ok(await focusVisible(page), "the submit button shows its focus");
    await page.keyboard.press("Enter");
    await page.waitForSelector("body[data-state=live]", { timeout: 5000 });
    await page.waitForFunction(() => /^\d+$/.test(document.getElementById("connections")?.textContent ?? ""), null, { timeout: 5000 });
    assert.equal(await shown(page), "0");
    assert.equal(await page.locator("#connections").getAttribute("aria-live"), "polite");

    // The key is nowhere: not in the URL, the page, the storage or a readable cookie.
    assert.equal(page.url(), `${gw.url}/dashboard`);
    assert.ok(!(await page.content()).includes(API_KEY), "the key is in the page");
    assert.ok(!(await (await fetch(`${gw.url}/dashboard`)).text()).includes(API_KEY), "the key is in the served HTML");
    const storage = await page.evaluate(() => JSON.stringify([{ ...localStorage }, { ...sessionStorage }, document.cookie]));
    assert.equal(storage, '[{},{},""]', "the page keeps nothing readable by scripts");
    const cookies = await context.cookies();
    assert.equal(cookies.length, 1, JSON.stringify(cookies));
    const [cookie] = cookies;
    assert.equal(cookie.name, COOKIE);
    assert.equal(cookie.httpOnly, true, "HttpOnly");
    assert.equal(cookie.sameSite, "Strict", "SameSite=Strict");
    assert.equal(cookie.path, "/dashboard");
    assert.ok(!cookie.value.includes(API_KEY) && cookie.value.length >= 16, "the cookie is a random id, not the key");
    const session = await fetch(`${gw.url}/dashboard/session`, { headers: { cookie: `${COOKIE}=${cookie.value}` } });
    assert.equal(session.status, 200);
    assert.deepEqual(await session.json(), { ok: true });

    // Logging out (keyboard again) ends that session on the server too.
    assert.ok((await tabTo(page, "#logout button")) <= 2, "Log out is reached right after the skip link");
    assert.ok(await focusVisible(page), "Log out shows its focus");
    await page.keyboard.press("Enter");
    await page.waitForSelector("body[data-state=login]", { timeout: 5000 });
    assert.deepEqual(await context.cookies(), [], "the cookie is cleared");
    assert.equal(await status(`${gw.url}/dashboard/session`, { cookie: `${COOKIE}=${cookie.value}` }), 401, "the old cookie still works after the logout");
    assert.equal(await status(`${gw.url}/dashboard/events`, { cookie: `${COOKIE}=${cookie.value}` }), 401);

    assert.deepEqual(errors, []);
    await context.close();
  });

  test("the page shows the new connection count within 2 s", async () => {
    const { context, page, errors } = await newPage();
    await logIn(page, gw);
    const old = Number(await shown(page));
    assert.equal(old, (await api(gw, "GET", "/api/stats")).body.connections, "the page and /api/stats agree");

    const sockets = await Promise.all(
      Array.from({ length: 5 }, (_, i) => gw.connect({ auth: { token: sign({ sub: `u${i}` }) }, transports: ["websocket"] })),
    );
    const up = await showsConnections(page, old + 5, 2000);
    for (const s of sockets.slice(0, 3)) s.close();
    const down = await showsConnections(page, old + 2, 2000);
    for (const s of sockets.slice(3)) s.close();
    await showsConnections(page, old, 3000);
    assert.deepEqual(errors, []);
    await context.close();
    // Shown for the record when run with --test-reporter=spec.
    console.log(`dashboard: +5 shown after ${up} ms, -3 after ${down} ms`);
  });

  test("logging out in one tab stops the figures in every tab of that login", async () => {
    const { context, page: first, errors } = await newPage();
    await logIn(first, gw);
    const second = await context.newPage();
    second.on("pageerror", (err) => errors.push(err.message));
    await second.goto(`${gw.url}/dashboard`);
    await second.waitForSelector("body[data-state=live]", { timeout: 5000 });
    const ticks = () => second.evaluate(() => document.getElementById("updated").textContent);
    await eventually(async () => /^Updated /.test(await ticks()), 3000, "a tick in the second tab");

    await first.getByRole("button", { name: "Log out" }).click();
    await first.waitForSelector("body[data-state=login]", { timeout: 5000 });
    // The second tab's stream belonged to that login: the server ends it, the
    // page finds its session gone and shows the login form.
    try {
      await second.waitForSelector("body[data-state=login]", { timeout: 8000 });
    } catch {
      throw new Error(`the second tab still gets figures after the logout (${await ticks()})`);
    }
    assert.equal(await second.locator("#ended").isVisible(), true, "the second tab says its session ended");
    assert.deepEqual(errors, []);
    await context.close();
  });
});

/** `sockgate serve --dev` on a free port; resolves with its URL and the token it prints. */
async function startDev() {
  const port = await freePort();
  const child = spawn(binary, ["serve", "--dev", "--listen", `127.0.0.1:${port}`], {
    cwd: root,
    env: { PATH: process.env.PATH, SOCKGATE_DATA_DIR: mkdtempSync(join(tmpdir(), "sockgate-data-")) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const out = [];
  let token;
  let listening = false;
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("serve --dev did not start:\n" + out.join("\n"))), 10000);
    const check = () => token && listening && (clearTimeout(timer), resolve());
    createInterface({ input: child.stdout }).on("line", (line) => {
      out.push(line);
      const jwt = /^\s*(ey[\w-]+\.[\w-]+\.[\w-]+)\s*$/.exec(line);
      if (jwt) token = jwt[1];
      check();
    });
    createInterface({ input: child.stderr }).on("line", (line) => {
      out.push(line);
      if (line.includes("sockgate listening")) listening = true;
      check();
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`serve --dev exited with ${code}:\n${out.join("\n")}`));
    });
  });
  await ready;
  return {
    url: `http://127.0.0.1:${port}`,
    token,
    out,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    },
  };
}

/** An app on its own origin: a page that connects with socket.io-client's browser bundle. */
function startApp(gatewayUrl, token) {
  const bundle = readFileSync(join(root, "tests", "e2e", "node_modules", "socket.io-client", "dist", "socket.io.min.js"));
  const page = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>app</title><link rel="icon" href="data:,"></head>
<body><p id="state">connecting</p>
<script src="/socket.io.min.js"></script>
<script>
  window.errors = [];
  const socket = io(${JSON.stringify(gatewayUrl)}, { auth: { token: ${JSON.stringify(token)} } });
  window.socket = socket;
  socket.io.on("open", () => {
    window.firstTransport = socket.io.engine.transport.name;
    socket.io.engine.on("upgrade", (t) => (window.upgradedTo = t.name));
  });
  socket.on("connect", () => (document.getElementById("state").textContent = "connected"));
  socket.on("connect_error", (err) => window.errors.push(err.message));
</script></body></html>`;
  const server = createServer((req, res) => {
    if (req.url === "/socket.io.min.js") {
      res.writeHead(200, { "content-type": "text/javascript" });
      return res.end(bundle);
    }
    if (req.url === "/") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      return res.end(page);
    }
    res.writeHead(404);
    res.end();
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve({ origin: `http://127.0.0.1:${server.address().port}`, close: () => server.close() })),
  );
}

test("a page on another local origin connects to serve --dev with the default transports", async () => {
  const dev = await startDev();
  const app = await startApp(dev.url, dev.token);
  const { context, page, errors } = await newPage({ width: 800, height: 600 });
  try {
    await page.goto(app.origin + "/");
    const start = Date.now();
    try {
      await page.waitForFunction(() => document.getElementById("state").textContent === "connected", null, { timeout: 10000 });
    } catch {
      const seen = await page.evaluate(() => window.errors);
      throw new Error(`no connect within 10 s; connect_error: ${JSON.stringify([...new Set(seen)])}`);
    }
    console.log(`dashboard: serve --dev accepted ${app.origin} after ${Date.now() - start} ms`);
    assert.equal(await page.evaluate(() => window.firstTransport), "polling", "the default transports start with long-polling");
    const who = await page.evaluate(() => window.socket.emitWithAck("auth:whoami"));
    assert.equal(who.userId, "dev");
    // ... and upgrade to a WebSocket from that origin too.
    await page.waitForFunction(() => window.upgradedTo === "websocket" && window.socket.io.engine.transport.name === "websocket", null, { timeout: 5000 });
    assert.equal((await page.evaluate(() => window.socket.emitWithAck("echo", "hi"))), "hi");

    // Local origins only: another site gets no CORS grant.
    const handshake = (origin) => fetch(`${dev.url}/socket.io/?EIO=4&transport=polling`, { headers: { origin } });
    const local = await handshake("http://localhost:5173");
    await local.body?.cancel();
    assert.equal(local.headers.get("access-control-allow-origin"), "http://localhost:5173");
    const evil = await handshake("https://evil.example");
    await evil.body?.cancel();
    assert.ok(!["*", "https://evil.example"].includes(evil.headers.get("access-control-allow-origin")), "a remote origin was granted CORS");
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
    app.close();
    await dev.stop();
  }
});

test("the dashboard under load: 50 connections, refusals, rooms (docs/dashboard.png)", async () => {
  const gw = await startGateway({ SOCKGATE_API_KEY: API_KEY });
  const { context, page, errors } = await newPage({ width: 1366, height: 900 });
  try {
    await logIn(page, gw);
    const rooms = [
      ["chat:lobby", 24],
      ["chat:support", 13],
      ["chat:release-42", 7],
      ["chat:ops", 3],
    ];
    const roomOf = (i) => {
      let n = i;
      for (const [room, members] of rooms) {
        if (n < members) return room;
        n -= members;
      }
      return null;
    };
    const refuse = async (token) => {
      const err = await gw.connect({ auth: token === undefined ? {} : { token }, transports: ["websocket"] }).then(
        (s) => (s.close(), null),
        (e) => e,
      );
      assert.ok(err, "a bad token was accepted");
      return err.message.split(":")[0];
    };
    // Twelve seconds of arrivals, with refusals here and there, 2 users
    // kicked and 3 leaving: 55 accepted handshakes, 50 connections held.
    const schedule = [6, 9, 11, 7, 5, 6, 4, 3, 2, 1, 1, 0];
    const sockets = [];
    const codes = [];
    for (const [round, count] of schedule.entries()) {
      const batch = await Promise.all(
        Array.from({ length: count }, (_, j) => {
          const i = sockets.length + j;
          return gw.connect({ auth: { token: sign({ sub: `user${i}`, rooms: ["chat:*"] }) }, transports: ["websocket"] });
        }),
      );
      for (const s of batch) {
        const room = roomOf(sockets.length);
        sockets.push(s);
        if (room) assert.equal((await s.emitWithAck("room:join", { room })).ok, true);
      }
      if (round === 2 || round === 6) codes.push(await refuse(sign({ sub: "late" }, { ttl: -60 })));
      if (round === 4) codes.push(await refuse(sign({ sub: "mallory" }, { secret: SECRET.split("").reverse().join("") })), await refuse(undefined));
      if (round === 8) codes.push(await refuse("not-a-jwt"));
      if (round === 11) for (const user of ["user53", "user54"]) assert.ok((await api(gw, "POST", `/api/users/${user}/disconnect`)).status < 300);
      if (round === 10) for (const s of sockets.slice(50, 53)) s.close();
      await sleep(1000);
    }
    assert.equal(sockets.length, 55);
    assert.deepEqual(codes.sort(), ["AUTH_REQUIRED", "TOKEN_EXPIRED", "TOKEN_EXPIRED", "TOKEN_INVALID", "TOKEN_INVALID"]);

    await showsConnections(page, 50, 5000);
    const rows = (id) => page.locator(`#${id} tbody tr`).evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent.trim())));
    await eventually(async () => JSON.stringify(await rows("rooms")) === JSON.stringify(rooms.map(([r, n]) => [r, String(n)])), 3000, "the rooms table");
    await eventually(async () => {
      const refusals = Object.fromEntries(await rows("refusals"));
      return refusals.TOKEN_EXPIRED === "2" && refusals.TOKEN_INVALID === "2" && refusals.AUTH_REQUIRED === "1";
    }, 3000, "the refusals table");
    await eventually(async () => (await rows("ends")).some(([code, n]) => code === "KICKED" && n === "2"), 3000, "2 KICKED in the ends table");
    const targets = await page.locator("#targets tbody tr").evaluateAll((trs) => trs.map((tr) => [tr.cells[0].firstChild.textContent, tr.dataset.status]));
    assert.deepEqual(Object.fromEntries(targets)["Authentication success rate"], "missed", "55 of 60 handshakes is below 99.9%");
    assert.deepEqual(Object.fromEntries(targets)["Authentication latency p99"], "met");
    const nodes = await rows("nodes");
    assert.equal(nodes.length, 1);
    assert.equal(nodes[0][1], "50");
    assert.equal(nodes[0][3].includes("off"), true, "no Redis: off");
    const legend = await page.locator("#legend-refusals li").allTextContents();
    assert.ok(["TOKEN_EXPIRED", "TOKEN_INVALID", "AUTH_REQUIRED"].every((c) => legend.some((l) => l.startsWith(c))), legend.join(" | "));
    // The charts have drawn lines, with labelled axes.
    for (const id of ["connections", "handshakes", "refusals", "auth"]) {
      assert.ok((await page.locator(`#chart-${id} path.series`).count()) > 0, `${id} chart has a line`);
      assert.ok((await page.locator(`#chart-${id} .axis text`).count()) >= 4, `${id} chart has axis labels`);
    }

    // UPDATE_SCREENSHOT=1 refreshes docs/dashboard.png; otherwise it goes to a temporary file.
    const shot = process.env.UPDATE_SCREENSHOT ? join(root, "docs", "dashboard.png") : join(mkdtempSync(join(tmpdir(), "sockgate-shot-")), "dashboard.png");
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok(statSync(shot).size > 20000, "a screenshot with something on it");
    if (!process.env.UPDATE_SCREENSHOT) rmSync(dirname(shot), { recursive: true, force: true });
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
    await gw.stop();
  }
});

test("the dashboard shows each queue consumer's state, what it took and refused, and its lag", async () => {
  const redis = await startRedis();
  const stream = "dash-" + Date.now();
  const gw = await startGateway({
    SOCKGATE_API_KEY: API_KEY,
    SOCKGATE_CONSUME_REDIS_URL: redis.url,
    SOCKGATE_CONSUME_REDIS_STREAM: stream,
  });
  const { context, page, errors } = await newPage();
  try {
    const xadd = (payload) => execFileSync("redis-cli", ["-p", String(redis.port), "XADD", stream, "*", "payload", payload]);
    xadd(JSON.stringify({ user: "nobody", event: "note", data: 1 }));
    xadd("not json");
    xadd(JSON.stringify({ user: "nobody", event: "note", data: 2 }));
    await logIn(page, gw);
    const row = () => page.locator("#consumers tbody tr").evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent.trim())));
    await eventually(async () => JSON.stringify(await row()) === JSON.stringify([[`redis:${stream}`, "✓ running", "2", "1", "0"]]), 8000, "the queues table");
    // The broker goes away: the row says so.
    await redis.stop();
    await eventually(async () => (await row())[0]?.[1] === "✗ retrying", 10000, "the consumer retrying");
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
    await gw.stop();
    await redis.stop();
  }
});
