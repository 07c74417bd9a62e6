// Test support: runs the real sockgate binary and mints tokens for it.
import { spawn } from "node:child_process";
import { createHmac, randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
/** The repository root (clients/js/test/support → ../../../..). */
export const repoRoot = resolve(here, "..", "..", "..", "..");
export const binary = process.env.SOCKGATE_BIN ?? join(repoRoot, "target", "debug", "sockgate");
export const SECRET = "sdk-test-secret-sdk-test-secret-0123456789";
export const API_KEY = "sdk-test-api-key-0123456789";

export const nowSec = () => Math.floor(Date.now() / 1000);
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const b64url = (value) => Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");

/** An HS256 JWT for `sub`, valid `ttl` seconds from now unless `claims` say otherwise. */
export function sign(sub, { ttl = 300, secret = SECRET, ...claims } = {}) {
  const iat = nowSec();
  const payload = { sub, iat, exp: iat + ttl, jti: randomUUID(), ...claims };
  const unsigned = `${b64url({ alg: "HS256", typ: "JWT" })}.${b64url(payload)}`;
  return `${unsigned}.${createHmac("sha256", secret).update(unsigned).digest("base64url")}`;
}

/** A TCP port nobody listens on right now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts `sockgate serve` with the test secret and admin key plus `env`
 * (a value of undefined unsets a variable). Resolves once it listens.
 */
export async function startGateway(env = {}) {
  if (!existsSync(binary)) throw new Error(`no sockgate binary at ${binary} (build it with cargo build, or set SOCKGATE_BIN)`);
  const dataDir = env.SOCKGATE_DATA_DIR ?? mkdtempSync(join(tmpdir(), "sockgate-sdk-"));
  const fullEnv = {
    PATH: process.env.PATH,
    SOCKGATE_LISTEN: "127.0.0.1:0",
    SOCKGATE_LOG_FORMAT: "json",
    SOCKGATE_LOG: "info",
    SOCKGATE_SHUTDOWN_TIMEOUT: "2",
    SOCKGATE_DATA_DIR: dataDir,
    JWT_SECRET: SECRET,
    SOCKGATE_API_KEY: API_KEY,
    ...env,
  };
  for (const k of Object.keys(fullEnv)) if (fullEnv[k] === undefined) delete fullEnv[k];
  const child = spawn(binary, ["serve"], { env: fullEnv, stdio: ["ignore", "ignore", "pipe"] });
  const logs = [];
  const addr = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("sockgate did not start:\n" + logs.join("\n"))), 15000);
    createInterface({ input: child.stderr }).on("line", (line) => {
      let entry;
      try {
        entry = JSON.parse(line);
      } catch {
        entry = { message: line };
      }
      logs.push(entry);
      if (entry.message === "sockgate listening") {
        clearTimeout(timer);
        resolve(entry.addr);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`sockgate exited with ${code}:\n${logs.map((l) => JSON.stringify(l)).join("\n")}`));
    });
  });
  const url = `http://${addr}`;
  return {
    url,
    addr,
    child,
    logs,
    dataDir,
    /** The handshake decisions logged so far (target sockgate::auth, one per attempt). */
    authDecisions(user) {
      return logs.filter((l) => l.target === "sockgate::auth" && l.outcome && l.message !== "refresh" && (user === undefined || l.user === user));
    },
    /** Calls the admin API. */
    async api(method, path, body) {
      const headers = { authorization: `Bearer ${API_KEY}` };
      if (body !== undefined) headers["content-type"] = "application/json";
      const res = await fetch(url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      const text = await res.text();
      let parsed = text;
      try {
        parsed = JSON.parse(text);
      } catch {}
      return { status: res.status, body: parsed };
    },
    /** SIGTERM; resolves with the exit code once the process is gone. */
    async stop({ keepData = false } = {}) {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once("exit", (code) => r(code)));
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 15000);
        const code = await exited;
        clearTimeout(timer);
        if (!keepData) rmSync(dataDir, { recursive: true, force: true });
        return code;
      }
      if (!keepData) rmSync(dataDir, { recursive: true, force: true });
      return child.exitCode;
    },
  };
}

/** Polls `fn` until it returns something truthy; fails after `timeoutMs`. */
export async function eventually(fn, timeoutMs = 10000, what = "condition") {
  const start = Date.now();
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() - start > timeoutMs) throw new Error(`${what} not reached within ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** Records every state a client goes through (with its info and time). */
export function recordStates(client) {
  const states = [{ state: client.state, info: client.info, at: Date.now() }];
  client.on("state", (state, info) => states.push({ state, info, at: Date.now() }));
  return states;
}

/** Resolves once `client` reaches `state`; rejects if it ends first (unless waiting for "ended"). */
export function reach(client, state, timeoutMs = 15000) {
  return new Promise((resolve, reject) => {
    if (client.state === state) return resolve(client.info);
    const timer = setTimeout(() => {
      off();
      reject(new Error(`state ${state} not reached within ${timeoutMs} ms (now ${client.state} ${JSON.stringify(client.info)})`));
    }, timeoutMs);
    const off = client.on("state", (s, info) => {
      if (s === state) {
        clearTimeout(timer);
        off();
        resolve(info);
      } else if (s === "ended") {
        clearTimeout(timer);
        off();
        reject(new Error(`ended with ${JSON.stringify(info)} while waiting for ${state}`));
      }
    });
  });
}
