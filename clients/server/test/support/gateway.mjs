// Test support: runs the real sockgate binary against a backend built with
// @sockgate/server, and connects the official socket.io-client to it.
import { spawn } from "node:child_process";
import { createHmac, randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { io } from "socket.io-client";

const here = dirname(fileURLToPath(import.meta.url));
/** The repository root (clients/server/test/support → ../../../..). */
export const repoRoot = resolve(here, "..", "..", "..", "..");
export const binary = process.env.SOCKGATE_BIN ?? join(repoRoot, "target", "debug", "sockgate");
/** The tokens' key (JWT_SECRET). */
export const SECRET = "server-sdk-test-jwt-secret-0123456789";
/** What sockgate signs its calls to the backend with (SOCKGATE_EVENTS_SECRET): at least 32 bytes. */
export const EVENTS_SECRET = "server-sdk-test-events-secret-0123456789";
export const API_KEY = "server-sdk-test-api-key-0123456789";

export const nowSec = () => Math.floor(Date.now() / 1000);
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const b64url = (value) => Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");

/** An HS256 JWT for `sub`, valid `ttl` seconds from now unless `claims` say otherwise. */
export function token(sub, { ttl = 300, secret = SECRET, ...claims } = {}) {
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
 * Starts `sockgate serve` with the test secrets and admin key plus `env`
 * (a value of undefined unsets a variable). Resolves once it listens.
 */
export async function startGateway(env = {}) {
  if (!existsSync(binary)) throw new Error(`no sockgate binary at ${binary} (build it with cargo build, or set SOCKGATE_BIN)`);
  const dataDir = env.SOCKGATE_DATA_DIR ?? mkdtempSync(join(tmpdir(), "sockgate-server-sdk-"));
  const fullEnv = {
    PATH: process.env.PATH,
    SOCKGATE_LISTEN: "127.0.0.1:0",
    SOCKGATE_LOG_FORMAT: "json",
    SOCKGATE_LOG: "info",
    SOCKGATE_SHUTDOWN_TIMEOUT: "2",
    SOCKGATE_DATA_DIR: dataDir,
    JWT_SECRET: SECRET,
    SOCKGATE_API_KEY: API_KEY,
    SOCKGATE_EVENTS_SECRET: EVENTS_SECRET,
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
    /** Calls the admin API directly (to check what the SDK did). */
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
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once("exit", (code) => r(code)));
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 15000);
        const code = await exited;
        clearTimeout(timer);
        rmSync(dataDir, { recursive: true, force: true });
        return code;
      }
      rmSync(dataDir, { recursive: true, force: true });
      return child.exitCode;
    },
  };
}

/** Serves `listener` (a Node `(req, res)` or an Express app) on 127.0.0.1; resolves with its URL and close(). */
export async function serve(listener) {
  const server = createHttpServer(listener);
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections?.();
        server.close(() => r());
      }),
  };
}

/**
 * A socket.io-client connected to `url`, without reconnection (a test sees
 * every refusal once). Resolves once connected; rejects with the
 * connect_error.
 */
export function connect(url, auth, options = {}) {
  const socket = io(url, { transports: ["websocket"], reconnection: false, forceNew: true, auth, ...options });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error(`no connection to ${url} within 15 s`));
    }, 15000);
    socket.once("connect", () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once("connect_error", (err) => {
      clearTimeout(timer);
      socket.close();
      reject(err);
    });
  });
}

/** Emits with an ack and resolves with the ack's value (15 s at most). */
export function ask(socket, event, ...args) {
  return socket.timeout(15000).emitWithAck(event, ...args);
}

/** Resolves with the next `event` on `socket` (its first argument), failing after `timeoutMs`. */
export function next(socket, event, timeoutMs = 15000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off(event, on);
      reject(new Error(`no ${event} within ${timeoutMs} ms`));
    }, timeoutMs);
    const on = (data) => {
      clearTimeout(timer);
      resolve(data);
    };
    socket.once(event, on);
  });
}

/** Collects every `event` on `socket`, in order. */
export function collect(socket, event) {
  const seen = [];
  socket.on(event, (data) => seen.push(data));
  return seen;
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
