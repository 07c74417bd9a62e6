// The example chat (example/, built on @sockgate/react) in real Chromium,
// against the real sockgate binary. A small Node server plays the app: it
// serves the bundle, hands out tokens at /token, and answers the chat's
// events at /sockgate/events (example/backend.mjs, on @sockgate/server).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { decode as decodeSession, encode as encodeSession } from "@auth/core/jwt";
import { sign as signCall } from "@sockgate/server";
import { eventually, repoRoot, sign, sleep, startGateway } from "../../js/test/support/gateway.mjs";
import { createChatBackend } from "../example/backend.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const bundle = join(here, "..", "example", "dist");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ROOM = "chat:lobby";
const ROOMS = [{ match: "chat:*", allow: ["join", "publish", "presence"] }];
// The app's Next-Auth (Auth.js v5) secret and cookie, for cookie mode.
const NEXTAUTH_SECRET = "sdk-test-next-auth-secret-0123456789abcdef";
const SESSION_COOKIE = "authjs.session-token";
// What sockgate signs its calls to the app's backend with.
const EVENTS_SECRET = "sdk-test-events-secret-0123456789abcdef";

/** The user of the request's session cookie, opened as Next-Auth does; null without a valid one. */
async function sessionUser(req) {
  const value = new RegExp(`(?:^|; )${SESSION_COOKIE.replace(".", "\\.")}=([^;]+)`).exec(req.headers.cookie ?? "")?.[1];
  if (!value) return null;
  try {
    return (await decodeSession({ token: value, secret: NEXTAUTH_SECRET, salt: SESSION_COOKIE }))?.sub ?? null;
  } catch {
    return null;
  }
}

/** The app's backend: static files, /config.js, /token, the chat's events, and a Next-Auth stand-in. */
function startApp(config) {
  const backend = { ttl: {}, loggedOut: new Set(), tokenRequests: {}, sessionReads: {}, cookieTtl: 4 };
  const chat = createChatBackend({ secret: EVENTS_SECRET });
  /** Sets a fresh session cookie for `user`, as Next-Auth does on sign-in and on every session read. */
  const setSession = async (res, user) => {
    const value = await encodeSession({
      token: { sub: user, name: `User ${user}`, email: `${user}@example.com`, rooms: ROOMS },
      secret: NEXTAUTH_SECRET,
      salt: SESSION_COOKIE,
      maxAge: backend.cookieTtl,
    });
    res.setHeader("set-cookie", `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Lax`);
  };
  const types = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".map": "application/json" };
  const server = createServer(async (req, res) => {
    const url = new URL(req.url, "http://app");
    // sockgate's calls: the handler reads the raw body itself to check its signature.
    if (url.pathname === "/sockgate/events") return chat.handler.node(req, res);
    // Next-Auth's part: sign-in sets the cookie; reading the session rotates it.
    if (url.pathname === "/login") {
      const user = url.searchParams.get("user");
      await setSession(res, user);
      res.writeHead(302, { location: `/?mode=cookie&user=${encodeURIComponent(user)}` });
      return res.end();
    }
    if (url.pathname === "/api/auth/session") {
      const user = await sessionUser(req);
      if (!user) {
        res.writeHead(200, { "content-type": "application/json" });
        return res.end("null");
      }
      backend.sessionReads[user] = (backend.sessionReads[user] ?? 0) + 1;
      await setSession(res, user);
      res.writeHead(200, { "content-type": "application/json" });
      return res.end(JSON.stringify({ user: { name: `User ${user}` } }));
    }
    if (url.pathname === "/api/auth/signout") {
      res.writeHead(200, { "set-cookie": `${SESSION_COOKIE}=; Path=/; HttpOnly; Max-Age=0` });
      return res.end();
    }
    if (url.pathname === "/config.js") {
      res.writeHead(200, { "content-type": "text/javascript" });
      return res.end(`window.SOCKGATE_CONFIG = ${JSON.stringify(config())};`);
    }
    if (url.pathname === "/token") {
      const user = url.searchParams.get("user");
      backend.tokenRequests[user] = (backend.tokenRequests[user] ?? 0) + 1;
      if (!user || backend.loggedOut.has(user)) {
        res.writeHead(401, { "content-type": "application/json" });
        return res.end(JSON.stringify({ error: "not logged in" }));
      }
      res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" });
      return res.end(JSON.stringify({ token: sign(user, { ttl: backend.ttl[user] ?? 300, rooms: ROOMS }) }));
    }
    const file = join(bundle, url.pathname === "/" ? "index.html" : url.pathname.slice(1));
    if (!file.startsWith(bundle) || !existsSync(file)) {
      res.writeHead(404);
      return res.end();
    }
    res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" });
    res.end(readFileSync(file));
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve({ backend, chat, origin: `http://127.0.0.1:${server.address().port}`, close: () => server.close() })),
  );
}

let app, gw, cookieGw, browser, profile;
const pageErrors = [];

before(async () => {
  assert.ok(existsSync(join(bundle, "app.js")), "example bundle missing: run npm run build first");
  let gatewayUrl, cookieGatewayUrl;
  app = await startApp(() => ({ gatewayUrl, cookieGatewayUrl, room: ROOM }));
  // Both gateways send the chat's events to the app.
  const events = { SOCKGATE_EVENTS_URL: `${app.origin}/sockgate/events`, SOCKGATE_EVENTS_SECRET: EVENTS_SECRET };
  gw = await startGateway({ SOCKGATE_ALLOWED_ORIGINS: app.origin, SOCKGATE_REFRESH_LEAD: "1", ...events });
  gatewayUrl = gw.url;
  // A second gateway that opens the app's Next-Auth session cookies.
  cookieGw = await startGateway({ SOCKGATE_ALLOWED_ORIGINS: app.origin, SOCKGATE_REFRESH_LEAD: "1", SOCKGATE_NEXTAUTH_SECRET: NEXTAUTH_SECRET, ...events });
  cookieGatewayUrl = cookieGw.url;
  profile = mkdtempSync(join(tmpdir(), "sockgate-chromium-"));
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 640, height: 520 },
  });
});

after(async () => {
  await browser?.close();
  await gw?.stop();
  await cookieGw?.stop();
  app?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

/** Opens the chat as `user` in a new tab (in `room`, else the app's default one). */
async function open(user, room) {
  const page = await browser.newPage();
  page.on("pageerror", (err) => pageErrors.push(`${user}: ${err.message}`));
  // A logged-out user's /token answers 401, which the console reports.
  page.on("console", (msg) => msg.type() === "error" && !/status of 401/.test(msg.text()) && pageErrors.push(`${user}: ${msg.text()}`));
  const query = new URLSearchParams({ user, ...(room ? { room } : {}) });
  await page.goto(`${app.origin}/?${query}`);
  return page;
}

const text = (page, id) => page.getByTestId(id).textContent();
const waitText = (page, id, expected, timeout = 15000) =>
  page.waitForFunction(([id, expected]) => document.querySelector(`[data-testid="${id}"]`)?.textContent === expected, [id, expected], { timeout });
const sessionsOf = async (user) => (await gw.api("GET", `/api/sessions?user=${user}`)).body.sessions;

test("the page shows the connection state, with one socket under StrictMode", async () => {
  const page = await open("alice");
  await waitText(page, "state", "connected");
  assert.equal(await text(page, "user"), "alice");
  const shown = await page.evaluate(() => window.shownStates);
  assert.equal(shown[0], "connecting");
  assert.equal(shown.at(-1), "connected");
  // StrictMode runs the provider's effect twice; still one client, one socket.
  await page.getByTestId("send").and(page.locator(":enabled")).waitFor();
  assert.equal((await sessionsOf("alice")).length, 1);
  assert.equal(gw.authDecisions("alice").length, 1, "one handshake");
  assert.equal(app.backend.tokenRequests.alice, 1, "one client asked for one token");
  // useEvent: an event the backend pushes to the user shows up.
  const pushed = await gw.api("POST", "/api/publish", { user: "alice", event: "notification", data: { text: "Maintenance at 10:00" } });
  assert.deepEqual(pushed.body, { delivered: 1 });
  await waitText(page, "notice", "Maintenance at 10:00", 5000);
  assert.equal(await page.evaluate(() => window.sockgateClient.socket.listeners("notification").length), 1);
  assert.deepEqual(pageErrors, []);
  await page.close();
});

test("a message goes from one page to the other and back", async () => {
  const [ann, ben] = [await open("ann"), await open("ben")];
  for (const page of [ann, ben]) {
    await waitText(page, "state", "connected");
    await page.getByTestId("send").and(page.locator(":enabled")).waitFor();
  }
  await eventually(async () => (await text(ann, "members")) === "annben", 5000, "both in the member list");

  await ann.getByTestId("input").fill("hello ben");
  await ann.getByTestId("send").click();
  await ben.locator('[data-testid="messages"] li[data-from="ann"]', { hasText: "hello ben" }).waitFor({ timeout: 5000 });
  await ben.getByTestId("input").fill("hi ann, got it");
  await ben.getByTestId("send").click();
  await ann.locator('[data-testid="messages"] li[data-from="ben"]', { hasText: "hi ann, got it" }).waitFor({ timeout: 5000 });
  // Each page shows both, its own included, in order.
  for (const page of [ann, ben]) {
    const lines = await page.locator('[data-testid="messages"] li').allTextContents();
    assert.deepEqual(lines, ["annhello ben", "benhi ann, got it"]);
    assert.equal(await page.getByTestId("input").inputValue(), "");
  }
  await ann.getByTestId("input").fill("see you");
  await ann.getByTestId("send").click();
  await ben.locator('li[data-from="ann"]', { hasText: "see you" }).waitFor({ timeout: 5000 });
  await ann.locator('li[data-from="ann"]', { hasText: "see you" }).waitFor({ timeout: 5000 });
  // UPDATE_SCREENSHOT=1 refreshes the one in the docs; otherwise it goes to a temp file.
  const shot = process.env.UPDATE_SCREENSHOT ? join(repoRoot, "docs", "sdk-chat.png") : join(profile, "sdk-chat.png");
  mkdirSync(dirname(shot), { recursive: true });
  await ann.screenshot({ path: shot });
  assert.ok(statSync(shot).size > 5000, "a screenshot with something on it");
  assert.deepEqual(pageErrors, []);
  await ann.close();
  await ben.close();
});

test("the chat's backend keeps the messages: a later page loads them on join, then gets new ones live", async () => {
  const room = "chat:backlog";
  const calls = (event, user) => app.chat.calls.filter((c) => c.event === event && c.userId === user).length;
  const lines = (page) => page.locator('[data-testid="messages"] li').allTextContents();
  const senders = (page) => page.locator('[data-testid="messages"] li').evaluateAll((items) => items.map((li) => li.dataset.from));
  const say = async (page, line) => {
    await page.getByTestId("input").fill(line);
    await page.getByTestId("send").click();
  };

  const alex = await open("alex", room);
  await waitText(alex, "state", "connected");
  await alex.getByTestId("send").and(alex.locator(":enabled")).waitFor();
  for (const line of ["first, before bea", "second, before bea"]) {
    await say(alex, line);
    // Sent to the room by the backend (ctx.to(room).emit), the sender's page included.
    await alex.locator('li[data-from="alex"]', { hasText: line }).waitFor({ timeout: 5000 });
  }
  assert.deepEqual(app.chat.rooms.get(room).map((m) => [m.from, m.text]), [["alex", "first, before bea"], ["alex", "second, before bea"]]);

  // Bea was not there when they were sent: only chat:history can show them.
  const bea = await open("bea", room);
  await waitText(bea, "state", "connected");
  await eventually(async () => (await lines(bea)).length === 2, 10000, "the history shown");
  assert.deepEqual(await lines(bea), ["alexfirst, before bea", "alexsecond, before bea"]);
  assert.deepEqual(await senders(bea), ["alex", "alex"]);

  // History asks need the room joined, so bea is in it now: the next message is live.
  await say(alex, "third, live");
  await bea.locator('li[data-from="alex"]', { hasText: "third, live" }).waitFor({ timeout: 5000 });
  const all = ["alexfirst, before bea", "alexsecond, before bea", "alexthird, live"];
  for (const page of [alex, bea]) assert.deepEqual(await lines(page), all, "each message once, in order");
  assert.equal(await alex.getByTestId("input").inputValue(), "");

  // Every call reached the handler signed and verified, once: three sends,
  // one history load per page.
  assert.equal(calls("chat:send", "alex"), 3);
  assert.equal(calls("chat:send", "bea"), 0);
  assert.equal(calls("chat:history", "alex"), 1);
  assert.equal(calls("chat:history", "bea"), 1);

  // A call not signed with the events secret reaches no handler.
  const seen = app.chat.calls.length;
  const body = JSON.stringify({
    id: "forged-1", event: "chat:history", args: [{ room }], userId: "mallory", sessionId: "s1", claims: {},
    rooms: ["user:mallory", room], transport: "websocket", remoteAddr: null, ts: Date.now(),
  });
  const post = (signature) =>
    fetch(`${app.origin}/sockgate/events`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(signature ? { "sockgate-signature": signature } : {}) },
      body,
    });
  assert.equal((await post(undefined)).status, 401, "unsigned");
  assert.equal((await post(signCall(body, "another-events-secret-0123456789abcdef"))).status, 401, "signed with another secret");
  assert.equal(app.chat.calls.length, seen, "no handler ran");
  // The same body signed with the secret is answered: the refusals were the signature's.
  const signed = await post(signCall(body, EVENTS_SECRET));
  assert.equal(signed.status, 200);
  assert.deepEqual((await signed.json()).ack.messages.map((m) => m.text), ["first, before bea", "second, before bea", "third, live"]);
  assert.equal(calls("chat:history", "mallory"), 1);
  assert.deepEqual(pageErrors, []);
  await alex.close();
  await bea.close();
});

test("token refreshes with no visible disconnect", async () => {
  app.backend.ttl.rita = 4;
  const page = await open("rita");
  await waitText(page, "state", "connected");
  const { sessionId } = (await sessionsOf("rita"))[0];
  // Three renewals of a 4-second token (each about 1 s before its expiry).
  await waitText(page, "refreshes", "3", 20000);
  assert.deepEqual(await page.evaluate(() => window.shownStates), ["connecting", "connected"], "the page never left connected");
  assert.deepEqual(await page.evaluate(() => window.clientStates), ["connected"], "nor did the client");
  assert.ok(app.backend.tokenRequests.rita >= 4, `asked for ${app.backend.tokenRequests.rita} tokens`);
  const sessions = await sessionsOf("rita");
  assert.equal(sessions.length, 1);
  assert.equal(sessions[0].sessionId, sessionId, "the same session throughout");
  assert.ok(sessions[0].expiresAt > Date.now() / 1000, "running on a fresh token");
  assert.equal(gw.authDecisions("rita").length, 1, "one handshake");
  assert.equal(await page.getByTestId("error").count(), 0);
  assert.deepEqual(pageErrors, []);
  await page.close();
});

test("a revoked user sees the session ended with TOKEN_REVOKED, and it stays ended", async () => {
  const page = await open("eve");
  await waitText(page, "state", "connected");
  await page.getByTestId("send").and(page.locator(":enabled")).waitFor();
  const listeners = () =>
    page.evaluate(() => ["room:message", "room:revoked", "chat:message"].map((e) => window.sockgateClient.socket.listeners(e).length));
  assert.deepEqual(await listeners(), [1, 1, 1], "one listener each, despite StrictMode's double effects");
  const revoked = await gw.api("POST", "/api/revocations", { userId: "eve" });
  assert.equal(revoked.status, 201);
  await waitText(page, "state", "ended", 5000);
  assert.equal(await text(page, "error-code"), "TOKEN_REVOKED");
  assert.match(await text(page, "error"), /^Disconnected for good: TOKEN_REVOKED/);
  await sleep(2000);
  assert.equal(await text(page, "state"), "ended");
  assert.equal(app.backend.tokenRequests.eve, 1, "no new token asked: no reconnect");
  assert.equal(gw.authDecisions("eve").length, 1);
  assert.equal(await page.getByTestId("messages").count(), 0, "the chat is gone");
  assert.deepEqual(await listeners(), [0, 0, 0], "its listeners were removed on unmount");
  await page.close();
});

test("signing out closes the socket; nobody logged in is AUTH_REQUIRED", async () => {
  const page = await open("sam");
  await waitText(page, "state", "connected");
  assert.equal((await sessionsOf("sam")).length, 1);
  await page.getByTestId("signout").click();
  await waitText(page, "state", "ended", 5000);
  assert.equal(await text(page, "error-code"), "AUTH_REQUIRED");
  await eventually(async () => (await sessionsOf("sam")).length === 0, 5000, "the old socket closed");

  app.backend.loggedOut.add("nia");
  const other = await open("nia");
  await waitText(other, "state", "ended");
  assert.equal(await text(other, "error-code"), "AUTH_REQUIRED");
  assert.equal(gw.authDecisions("nia").length, 0, "never connected");
  assert.deepEqual(pageErrors, []);
  await page.close();
  await other.close();
});

test("a page on an origin the gateway does not allow shows UNREACHABLE with the hint, and keeps trying", async () => {
  // The same app on another port is another origin, not in SOCKGATE_ALLOWED_ORIGINS.
  const stranger = await startApp(() => ({ gatewayUrl: gw.url, room: ROOM }));
  // The browser reports the CORS refusals in the console: expected here.
  const page = await browser.newPage();
  page.on("pageerror", (err) => pageErrors.push(`olga: ${err.message}`));
  try {
    await page.goto(`${stranger.origin}/?user=olga`);
    await waitText(page, "error-code", "UNREACHABLE");
    assert.equal(await text(page, "state"), "connecting");
    assert.match(await text(page, "error"), /the gateway refused this origin or is unreachable: check SOCKGATE_ALLOWED_ORIGINS and the URL/);
    const info = await page.evaluate(() => window.sockgateClient.info);
    assert.equal(info.code, "UNREACHABLE");
    // Retryable: the client goes on trying, each time with a fresh token.
    await page.waitForFunction(() => window.sockgateClient.info.attempt >= 2, null, { timeout: 15000 });
    assert.equal(await text(page, "error-code"), "UNREACHABLE");
    assert.ok(stranger.backend.tokenRequests.olga >= 2, `asked for ${stranger.backend.tokenRequests.olga} tokens`);
    assert.equal((await sessionsOf("olga")).length, 0, "never connected");
    assert.deepEqual(pageErrors, []);
  } finally {
    await page.close();
    stranger.close();
  }
});

test("cookie mode: the Next-Auth cookie connects, and renewals rotate it with no visible disconnect", async () => {
  const page = await browser.newPage();
  page.on("pageerror", (err) => pageErrors.push(`cora: ${err.message}`));
  page.on("console", (msg) => msg.type() === "error" && pageErrors.push(`cora: ${msg.text()}`));
  await page.goto(`${app.origin}/login?user=cora`);
  assert.match(page.url(), /mode=cookie/);
  await waitText(page, "state", "connected");
  assert.equal(await text(page, "user"), "cora", "the identity comes from the session cookie");
  const [session] = (await cookieGw.api("GET", "/api/sessions?user=cora")).body.sessions;
  // The cookie lives 4 s; each renewal reads the session (rotating the
  // cookie), then sends a ticket with the new cookie to /auth/refresh.
  await waitText(page, "refreshes", "2", 20000);
  assert.deepEqual(await page.evaluate(() => window.shownStates), ["connecting", "connected"], "the page never left connected");
  assert.deepEqual(await page.evaluate(() => window.clientStates), ["connected"]);
  assert.ok(app.backend.sessionReads.cora >= 2, `session read ${app.backend.sessionReads.cora} times`);
  assert.equal(app.backend.tokenRequests.cora, undefined, "no token involved");
  const sessions = (await cookieGw.api("GET", "/api/sessions?user=cora")).body.sessions;
  assert.equal(sessions.length, 1);
  assert.equal(sessions[0].sessionId, session.sessionId, "the same session throughout");
  assert.ok(sessions[0].expiresAt > session.expiresAt, "running on the rotated cookie's expiry");
  assert.equal(cookieGw.authDecisions("cora").length, 1, "one handshake");
  assert.deepEqual(pageErrors, []);
  await page.close();
});
