// Security review, logging: a broken stderr must not take the gateway down,
// URLs with keys in them must not reach the log, and a token's values must
// not forge log lines in the `pretty` format.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { io } from "socket.io-client";
import { binary, freePort, root, run, SECRET, sign, startGateway } from "./helpers.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const plain = (line) => line.replace(/\x1b\[[0-9;]*m/g, "");

/**
 * Starts `sockgate serve` with stderr as a pipe we control, in either log
 * format. Resolves { child, url, lines } once it logs that it listens.
 */
async function spawnGateway(env = {}) {
  const child = spawn(binary, ["serve"], {
    cwd: root,
    env: {
      PATH: process.env.PATH,
      SOCKGATE_LISTEN: "127.0.0.1:0",
      SOCKGATE_LOG_FORMAT: "json",
      SOCKGATE_LOG: "trace",
      SOCKGATE_SHUTDOWN_TIMEOUT: "2",
      SOCKGATE_DRAIN_WINDOW: "0",
      SOCKGATE_DATA_DIR: mkdtempSync(join(tmpdir(), "sockgate-data-")),
      JWT_SECRET: SECRET,
      ...env,
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const lines = [];
  const addr = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("sockgate did not start:\n" + lines.join("\n"))), 10000);
    createInterface({ input: child.stderr }).on("line", (line) => {
      lines.push(line);
      const m = plain(line).match(/sockgate listening.*?"?addr"?[=:]"?([\d.]+:\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`sockgate exited with ${code}:\n${lines.join("\n")}`));
    });
  });
  return { child, url: `http://${addr}`, lines };
}

/**
 * Connects with a deadline (socket.io-client waits for the namespace's
 * CONNECT forever); resolves { socket } or { error }.
 */
function attempt(url, token, opts = {}, ms = 4000) {
  const socket = io(url, { reconnection: false, forceNew: true, timeout: ms, auth: { token }, ...opts });
  return new Promise((resolve) => {
    const give = (result) => {
      clearTimeout(timer);
      if (!result.socket) socket.close();
      resolve(result);
    };
    const timer = setTimeout(() => give({ error: "no answer" }), ms);
    socket.once("connect", () => give({ socket }));
    socket.once("connect_error", (err) => give({ error: err.message }));
  });
}

/** Connects with a deadline; resolves the socket or null. */
async function tryConnect(url, token, opts = {}) {
  return (await attempt(url, token, opts)).socket ?? null;
}

/** Resolves the exit code, or "still running" after `ms`. */
function exitWithin(child, ms) {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve("still running"), ms);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      resolve(code ?? signal);
    });
  });
}

test("a broken stderr does not take the gateway down: clients connect and echo, SIGTERM exits 0", async () => {
  const gw = await spawnGateway();
  const sockets = [];
  try {
    // The log's reader goes away: from now on every write to stderr fails (EPIPE).
    gw.child.stderr.destroy();
    await sleep(200);
    let connected = 0;
    let echoed = 0;
    for (const transports of [["websocket"], ["polling"], undefined, ["websocket"], ["polling"]]) {
      const s = await tryConnect(gw.url, sign({ sub: "unlogged" }), transports ? { transports } : {});
      if (!s) continue;
      sockets.push(s);
      connected++;
      const back = await Promise.race([s.emitWithAck("echo", { n: connected }), sleep(3000).then(() => null)]);
      if (back?.n === connected) echoed++;
    }
    // A refusal is logged too, and must be answered as usual.
    const junk = await attempt(gw.url, "junk");
    junk.socket?.close();
    const refused = junk.socket ? "connected" : junk.error.split(":")[0];
    const health = await fetch(gw.url + "/healthz", { signal: AbortSignal.timeout(3000) }).then(
      (r) => r.status,
      () => "no answer",
    );
    for (const s of sockets) s.close();
    gw.child.kill("SIGTERM");
    const exit = await exitWithin(gw.child, 6000);
    assert.deepEqual(
      { connected, echoed, refused, health, exit },
      { connected: 5, echoed: 5, refused: "TOKEN_INVALID", health: 200, exit: 0 },
    );
  } finally {
    for (const s of sockets) s.close();
    if (gw.child.exitCode === null) gw.child.kill("SIGKILL");
  }
});

test("JWKS and webhook URLs are logged without their query string or credentials", async () => {
  const idpPort = await freePort();
  const hookPort = await freePort();
  const JWKS_KEY = "jwks-query-secret-4f1d";
  const JWKS_PASSWORD = "jwks-password-9a7c";
  const HOOK_KEY = "hook-query-secret-c3b2";
  const HOOK_PASSWORD = "hook-password-81e0";
  const gw = await startGateway({
    // Nothing listens on these ports: every request fails and is logged at WARN.
    SOCKGATE_JWKS_URL: `http://idp:${JWKS_PASSWORD}@127.0.0.1:${idpPort}/tenant/jwks.json?api_key=${JWKS_KEY}`,
    SOCKGATE_AUTHZ_URL: `http://hook:${HOOK_PASSWORD}@127.0.0.1:${hookPort}/authz?token=${HOOK_KEY}#${HOOK_KEY}`,
    // Whatever any crate logs at any level.
    SOCKGATE_LOG: "trace",
  });
  try {
    const s = await gw.connect({ auth: { token: sign({ sub: "asker" }) } });
    assert.equal((await s.emitWithAck("room:join", { room: "project:1" })).code, "AUTH_UNAVAILABLE");
  } finally {
    await gw.stop();
  }
  const warnings = gw.logs.map((l) => JSON.parse(l)).filter((e) => e.level === "WARN");
  const jwks = warnings.find((e) => /JWKS/.test(e.message));
  const hook = warnings.find((e) => /webhook/.test(e.message));
  assert.ok(jwks && hook, `both failures are logged: ${JSON.stringify(warnings)}`);
  // Still useful: the host, port and path are shown.
  assert.ok(jwks.error.includes(`127.0.0.1:${idpPort}/tenant/jwks.json`), jwks.error);
  assert.ok(hook.error.includes(`127.0.0.1:${hookPort}/authz`), hook.error);
  for (const line of gw.logs) {
    for (const secret of [JWKS_KEY, JWKS_PASSWORD, HOOK_KEY, HOOK_PASSWORD]) {
      assert.ok(!line.includes(secret), `log line leaks ${secret}: ${line}`);
    }
  }
});

test("pretty logs: a user claim holding a line break cannot forge a log line", async () => {
  const FORGED = "2030-01-01T00:00:00.000000Z  INFO sockgate::auth: handshake accepted outcome=\"OK\" user=root";
  const gw = await spawnGateway({ SOCKGATE_LOG_FORMAT: "pretty", SOCKGATE_LOG: "info" });
  let outcome;
  try {
    const token = sign({ sub: `mallory\n${FORGED}\r\u2028` });
    const s = await tryConnect(gw.url, token);
    outcome = s ? "connected" : "refused";
    s?.close();
    // Something normal afterwards, so the refusal's line has surely been written.
    const ok = await tryConnect(gw.url, sign({ sub: "marker" }));
    ok?.close();
    await sleep(300);
  } finally {
    gw.child.kill("SIGTERM");
    await exitWithin(gw.child, 6000);
    if (gw.child.exitCode === null) gw.child.kill("SIGKILL");
  }
  const lines = gw.lines.map(plain);
  assert.ok(lines.some((l) => l.includes("user=marker")), lines.join("\n"));
  const forged = lines.filter((l) => l.startsWith(FORGED.slice(0, 30)));
  assert.deepEqual(forged, [], "a line starts with the forged text");
  for (const l of lines) assert.ok(!/[\r\u2028]/.test(l), `raw control character in ${JSON.stringify(l)}`);
  assert.equal(outcome, "refused", "a user id with control characters is refused");
});

test("a TOML parse error does not echo the line (or value) that holds a secret", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sockgate-"));
  for (const [name, text] of [
    ["unquoted", `jwt_secret = ${SECRET}x\n`],
    ["unterminated", `jwt_secret = "${SECRET}\n`],
    ["typo", `jwt_secert = "${SECRET}"\n`],
    ["wrong type", `jwt_leeway = "${SECRET}"\n`],
  ]) {
    const file = join(dir, `${name.replace(" ", "-")}.toml`);
    writeFileSync(file, text);
    const out = await run(["serve", "--config", file]);
    assert.equal(out.code, 2, name);
    assert.match(out.stderr, /invalid config file .*line 1/, name);
    assert.ok(!out.stderr.includes(SECRET), `${name}: ${out.stderr}`);
  }
});
