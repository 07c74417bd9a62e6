// The seeds, the documents new users copy, rebuilt as a new user writes
// them and driven in real Chromium: a Next.js app (seeds-app/, next-auth v4
// with a credentials login against its own backend, whose HS256 JWT names
// the user in `id`), whose socket.io server is replaced by the real sockgate
// binary. The seed's socket and hook carry the one fix the migration asks
// for (an `auth` callback); a second page is on @sockgate/react in cookie
// mode. The app is built once with `next build` and served by `next start`.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import jwt from "jsonwebtoken";
import { decode } from "next-auth/jwt";
import { api, API_KEY, freePort, launchChromium, now, root, startGateway } from "./helpers.mjs";

const e2e = join(import.meta.dirname, "..");
const app = join(e2e, "seeds-app");
const nextBin = join(e2e, "node_modules", "next", "dist", "bin", "next");
const BACKEND_JWT_SECRET = "seeds-backend-jwt-secret-seeds-backend-jwt-secret";
const NEXTAUTH_SECRET = "seeds-nextauth-secret-seeds-nextauth-secret-0123";
const SESSION_COOKIE = "next-auth.session-token";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Runs a command to completion; rejects with its output when it fails. */
function sh(command, args, cwd, env = process.env) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve(output) : reject(new Error(`${command} ${args.join(" ")} (in ${cwd}) exited with ${code}:\n${output}`))));
  });
}

/**
 * Puts this repository's @sockgate/client and @sockgate/react into
 * seeds-app/node_modules as `npm install` would: packed tarballs, extracted
 * (a copy, not a link, so `react` resolves from tests/e2e/node_modules and
 * the page has one React). Builds clients/ first when it was not built.
 */
async function installSdk() {
  const clients = join(root, "clients");
  const built = ["js", "react"].every((dir) => existsSync(join(clients, dir, "dist", "index.js")));
  if (!built) {
    if (!existsSync(join(clients, "node_modules"))) await sh("npm", ["ci", "--no-audit", "--no-fund", "--loglevel=error"], clients);
    await sh("npm", ["run", "build"], clients);
  }
  const packed = mkdtempSync(join(tmpdir(), "sockgate-sdk-"));
  try {
    await sh("npm", ["pack", "-w", "@sockgate/client", "-w", "@sockgate/react", "--pack-destination", packed], clients);
    for (const name of ["client", "react"]) {
      const tarball = readdirSync(packed).find((f) => f.startsWith(`sockgate-${name}-`) && f.endsWith(".tgz"));
      if (!tarball) throw new Error(`npm pack made no @sockgate/${name} tarball in ${packed}`);
      const target = join(app, "node_modules", "@sockgate", name);
      rmSync(target, { recursive: true, force: true });
      mkdirSync(target, { recursive: true });
      await sh("tar", ["-xzf", join(packed, tarball), "-C", target, "--strip-components=1"], app);
    }
  } finally {
    rmSync(packed, { recursive: true, force: true });
  }
}

/** Next's own environment: no telemetry (nothing leaves 127.0.0.1). */
const nextEnv = (env = {}) => ({ PATH: process.env.PATH, HOME: process.env.HOME, NEXT_TELEMETRY_DISABLED: "1", ...env });

/**
 * `next start` of the built app on `port` with the app's settings plus
 * `env`; resolves once it serves. The browser reaches it as localhost (the
 * gateway too, so the session cookie flows to both); its server calls its
 * own backend on 127.0.0.1.
 */
async function startApp(port, env) {
  const child = spawn(process.execPath, [nextBin, "start", "-p", String(port), "-H", "127.0.0.1"], {
    cwd: app,
    env: nextEnv({
      NEXTAUTH_URL: `http://localhost:${port}`,
      NEXTAUTH_SECRET,
      BACKEND_URL: `http://127.0.0.1:${port}`,
      BACKEND_JWT_SECRET,
      ...env,
    }),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const exited = new Promise((r) => child.once("exit", r));
  const start = Date.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`next start exited with ${child.exitCode}:\n${output}`);
    const up = await fetch(`http://127.0.0.1:${port}/api/auth/providers`).then((r) => r.ok, () => false);
    if (up) break;
    if (Date.now() - start > 30000) throw new Error(`next start did not serve within 30 s:\n${output}`);
    await sleep(200);
  }
  return {
    url: `http://localhost:${port}`,
    output: () => output,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill("SIGTERM");
      await exited;
    },
  };
}

/**
 * One app instance and its gateway. The gateway verifies the backend's
 * tokens (JWT_SECRET, the user in `id`), delivers to `user-{id}` rooms,
 * admits the app's origin and, in cookie mode, opens the Next-Auth cookie.
 */
async function startStack(appEnv = {}, { cookie = false } = {}) {
  const appPort = await freePort();
  const origin = `http://localhost:${appPort}`;
  const gatewayEnv = {
    JWT_SECRET: BACKEND_JWT_SECRET,
    SOCKGATE_USER_CLAIM: "id",
    SOCKGATE_USER_ROOM: "user-{id}",
    SOCKGATE_ALLOWED_ORIGINS: origin,
    SOCKGATE_API_KEY: API_KEY,
    ...(cookie && { SOCKGATE_NEXTAUTH_SECRET: NEXTAUTH_SECRET }),
  };
  const stack = { gatewayEnv, gw: await startGateway(gatewayEnv) };
  stack.gwPort = new URL(stack.gw.url).port;
  stack.app = await startApp(appPort, { SOCKGATE_URL: `http://localhost:${stack.gwPort}`, ...appEnv });
  stack.stop = async () => {
    await stack.app.stop();
    await stack.gw.stop();
  };
  return stack;
}

let browser;
before(
  async () => {
    await installSdk();
    rmSync(join(app, ".next"), { recursive: true, force: true });
    await sh(process.execPath, [nextBin, "build"], app, nextEnv());
    browser = await launchChromium();
  },
  { timeout: 240000 },
);
after(() => browser?.close());

/** A tab in its own cookie jar; uncaught page errors land in `errors`. */
async function newPage() {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (err) => errors.push(err.message));
  return { context, page, errors };
}

/** Opens the protected `path`, is sent to the login page, logs in as alice and lands on `path`. */
async function logIn(page, stack, path) {
  await page.goto(stack.app.url + path);
  await page.waitForURL(/\/login\?/, { timeout: 15000 });
  await page.getByLabel("Username").fill("alice");
  await page.getByLabel("Password").fill("alice-password");
  await page.getByRole("button", { name: "Log in" }).click();
  await page.waitForURL(stack.app.url + path, { timeout: 15000 });
}

/** The JSON the page shows in `selector`. */
const shown = async (page, selector) => JSON.parse((await page.locator(selector).textContent()) || "null");

/** Waits until the JSON in `selector` satisfies `ok`; resolves with it. */
async function until(page, selector, ok, what, timeoutMs = 15000) {
  const start = Date.now();
  let value;
  for (;;) {
    value = await shown(page, selector).catch(() => undefined);
    if (value && ok(value)) return value;
    if (Date.now() - start > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms; the page shows ${JSON.stringify(value)}`);
    await sleep(100);
  }
}

/** Asks `auth:whoami` through the page's button; resolves with the answer it shows. */
async function whoami(page) {
  const asked = Number(await page.locator("#whoami").getAttribute("data-asked"));
  await page.getByRole("button", { name: "Who am I" }).click();
  await page.waitForFunction((n) => Number(document.getElementById("whoami").dataset.asked) > n, asked, { timeout: 10000 });
  return shown(page, "#whoami");
}

const publish = (gw, data) => api(gw, "POST", "/api/publish", { body: { room: "user-42", event: "notification", data } });

const JWS_OR_JWE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*(\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*)?$/;
const CREDENTIAL_KEY = /token|secret|password|key/i;

/** Every place in `value` that holds or names a credential: keys like token/secret/…, JWS/JWE-shaped strings. */
function credentialsIn(value, path = "$") {
  if (typeof value === "string") {
    const looksSigned = (value.length >= 16 && JWS_OR_JWE.test(value)) || /eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*/.test(value);
    return looksSigned ? [`${path} looks like a JWS/JWE`] : [];
  }
  if (value === null || typeof value !== "object") return [];
  return Object.entries(value).flatMap(([k, v]) => [
    ...(CREDENTIAL_KEY.test(k) ? [`${path}.${k} is named like a credential`] : []),
    ...credentialsIn(v, `${path}.${k}`),
  ]);
}

describe("the seeds app, token in the session (the seed's socket and hook)", () => {
  let stack;
  before(async () => (stack = await startStack()), { timeout: 60000 });
  after(() => stack?.stop());

  test("a logged-in page connects with the seed hook as the backend's user and gets a backend publish to user-42", { timeout: 60000 }, async () => {
    const { context, page, errors } = await newPage();
    try {
      await logIn(page, stack, "/realtime");
      const state = await until(page, "#state", (s) => s.connected, "the seed hook connects");
      assert.equal(state.error, null);
      assert.equal(state.connects, 1);
      assert.ok(state.socketId, "the page shows its socket id");

      const me = await whoami(page);
      assert.equal(me.userId, "42", "the user is the backend token's `id`");
      assert.equal(me.claims.role, "member");
      assert.ok(me.expiresAt > now() + 3000 && me.expiresAt <= now() + 3600, "exp is the backend token's (BACKEND_TOKEN_TTL 3600)");

      // The seed puts the backend token in the session: the scanner of the cookie-mode test finds it here.
      const session = await page.evaluate(() => fetch("/api/auth/session").then((r) => r.json()));
      assert.ok(credentialsIn(session).length > 0, "token mode: the session holds the token");

      const res = await publish(stack.gw, { title: "Your report is ready" });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.delivered, 1, "user-42 is alice's room (SOCKGATE_USER_ROOM=user-{id})");
      const got = await until(page, "#state", (s) => s.notifications.length > 0, "the notification arrives");
      assert.deepEqual(got.notifications, [{ title: "Your report is ready" }]);
      await page.locator("#notifications").getByText("Your report is ready").waitFor({ timeout: 5000 });
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });

  test("the gateway restarts on the same port: the page reconnects by itself and gets the next publish", { timeout: 90000 }, async () => {
    const { context, page, errors } = await newPage();
    try {
      await logIn(page, stack, "/realtime");
      await until(page, "#state", (s) => s.connected && s.connects === 1, "the seed hook connects");

      await stack.gw.stop();
      await until(page, "#state", (s) => !s.connected, "the page sees the gateway go");
      stack.gw = await startGateway({ ...stack.gatewayEnv, SOCKGATE_LISTEN: `127.0.0.1:${stack.gwPort}` });

      // No reconnectionAttempts cap: socket.io-client keeps trying, and its
      // `auth` callback hands the new gateway the session's token.
      const back = await until(page, "#state", (s) => s.connected && s.connects === 2, "the page reconnects", 45000);
      assert.equal(back.error, null);
      assert.equal((await whoami(page)).userId, "42");

      const res = await publish(stack.gw, { title: "Back after the restart" });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.delivered, 1, "user-42 is alice's room (SOCKGATE_USER_ROOM=user-{id})");
      await until(page, "#state", (s) => s.notifications.some((n) => n.title === "Back after the restart"), "the publish after the restart arrives");
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });
});

describe("the seeds app with a 20 s backend token", () => {
  let stack;
  before(async () => (stack = await startStack({ BACKEND_TOKEN_TTL: "20" })), { timeout: 60000 });
  after(() => stack?.stop());

  test("auth:expiring → a re-minted token through auth:refresh: same socket, later exp, alive past the first exp, no storm", { timeout: 90000 }, async () => {
    const { context, page, errors } = await newPage();
    try {
      await logIn(page, stack, "/realtime");
      const first = await until(page, "#state", (s) => s.connected, "the seed hook connects");
      const me = await whoami(page);
      assert.ok(me.expiresAt <= now() + 20, `a 20 s token (exp in ${me.expiresAt - now()} s)`);

      // The gateway warns a quarter of the lifetime (5 s) before exp; the
      // hook's getSession() finds less than half left, re-mints, and sends it.
      const refreshed = await until(page, "#state", (s) => s.refreshes.length > 0, "a refresh on auth:expiring", 30000);
      const [warning] = refreshed.warnings;
      assert.equal(warning.expiresAt, me.expiresAt, "the warning is the first token's");
      assert.ok(warning.secondsLeft <= 5, `warned ${warning.secondsLeft} s before exp: a quarter of 20 s at most`);
      const [ack] = refreshed.refreshes;
      assert.equal(ack.ok, true, `auth:refresh answered ${JSON.stringify(ack)}`);
      assert.ok(ack.expiresAt > me.expiresAt, "the re-minted token expires later");

      // Past the first token's exp, the same socket is still up.
      await sleep(Math.max(0, (me.expiresAt + 2) * 1000 - Date.now()));
      const later = await shown(page, "#state");
      assert.equal(later.connected, true, "still connected after the first token's exp");
      assert.equal(later.socketId, first.socketId, "the same socket: no reconnect");
      assert.equal(later.connects, 1, "connected once");
      const me2 = await whoami(page);
      assert.equal(me2.sessionId, me.sessionId);
      assert.ok(me2.expiresAt > me.expiresAt, "auth:whoami's expiresAt moved later");
      // One auth:expiring per token, one refresh per warning: one so far
      // (two if the second token's warning came already), never a storm.
      assert.ok(later.warnings.length <= 2, `${later.warnings.length} warnings: ${JSON.stringify(later.warnings)}`);
      assert.equal(later.refreshes.length, later.warnings.length, "one refresh per warning");
      assert.ok(later.refreshes.every((r) => r.ok), JSON.stringify(later.refreshes));
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });
});

describe("the seeds app in cookie mode (@sockgate/react, no token in the session)", () => {
  let stack;
  before(async () => (stack = await startStack({ SEEDS_COOKIE_MODE: "1", BACKEND_TOKEN_TTL: "600" }, { cookie: true })), { timeout: 60000 });
  after(() => stack?.stop());

  test("the SDK connects with the session cookie; no credential reaches the page; the identity is the backend token's", { timeout: 60000 }, async () => {
    const { context, page, errors } = await newPage();
    try {
      await logIn(page, stack, "/sdk");
      const { identity, error } = await until(page, "#sdk", (s) => s.state === "connected" && s.identity, "the SDK connects");
      assert.equal(error, null);

      // Nothing the page can read holds a credential.
      const session = await page.evaluate(() => fetch("/api/auth/session").then((r) => r.json()));
      const readable = await page.evaluate(() => document.cookie);
      assert.equal(session.user.name, "Alice", "logged in");
      assert.deepEqual(credentialsIn({ identity, session, readable }), [], JSON.stringify({ identity, session }));

      // The identity is the backend token inside the cookie, not the cookie's own claims.
      const cookie = (await context.cookies()).find((c) => c.name === SESSION_COOKIE);
      assert.ok(cookie?.httpOnly, "the session cookie is HTTP-only");
      const { accessToken } = await decode({ token: cookie.value, secret: NEXTAUTH_SECRET });
      const backend = jwt.decode(accessToken);
      assert.equal(identity.userId, String(backend.id), "the user is the backend token's `id`");
      assert.equal(identity.expiresAt, backend.exp, "exp is the backend token's (600 s), not the 30-day session's");
      assert.ok(identity.expiresAt <= now() + 600);
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });
});
