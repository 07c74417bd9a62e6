// Shared helpers: start the real sockgate binary, connect real clients.
import { spawn } from "node:child_process";
import { connect as tcpConnect, createServer } from "node:net";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import jwt from "jsonwebtoken";
import { io } from "socket.io-client";

const here = dirname(fileURLToPath(import.meta.url));
export const root = join(here, "..", "..", "..");
export const binary = process.env.SOCKGATE_BIN ?? join(root, "target", "debug", "sockgate");
export const benchBinary = join(dirname(binary), "sockgate-bench");
export const SECRET = "e2e-secret-e2e-secret-e2e-secret-e2e!";

export const key = (name) => readFileSync(join(root, "tests", "fixtures", "keys", name));
export const now = () => Math.floor(Date.now() / 1000);

/** Signs an HS256 token with SECRET unless told otherwise. */
export function sign(claims = {}, { secret = SECRET, algorithm = "HS256", keyid, ttl = 300 } = {}) {
  const payload = { sub: "alice", iat: now(), exp: now() + ttl, ...claims };
  for (const k of Object.keys(payload)) if (payload[k] === undefined) delete payload[k];
  // jsonwebtoken keeps our `iat`; `{ iat: undefined }` asks for a token without one.
  const options = { algorithm, noTimestamp: "iat" in claims && claims.iat === undefined };
  if (keyid) options.keyid = keyid;
  return jwt.sign(payload, secret, options);
}

/** Every line sockgate wrote to stderr, across all gateways of this test file. */
export const allLogLines = [];

/**
 * Starts `sockgate serve` on a free port with the given environment and
 * resolves once it logs that it is listening.
 */
export async function startGateway(env = {}, args = []) {
  const child = spawn(binary, ["serve", ...args], {
    cwd: root,
    env: cleanEnv({
      PATH: process.env.PATH,
      SOCKGATE_LISTEN: "127.0.0.1:0",
      SOCKGATE_LOG_FORMAT: "json",
      SOCKGATE_LOG: "trace",
      SOCKGATE_SHUTDOWN_TIMEOUT: "2",
      SOCKGATE_DATA_DIR: mkdtempSync(join(tmpdir(), "sockgate-data-")),
      JWT_SECRET: SECRET,
      ...env,
    }),
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs = [];
  const stdout = [];
  createInterface({ input: child.stdout }).on("line", (l) => stdout.push(l));
  const addr = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("sockgate did not start:\n" + logs.join("\n"))), 10000);
    createInterface({ input: child.stderr }).on("line", (line) => {
      logs.push(line);
      allLogLines.push(line);
      try {
        const entry = JSON.parse(line);
        if (entry.message === "sockgate listening") {
          clearTimeout(timer);
          resolve(entry.addr);
        }
      } catch {}
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`sockgate exited with ${code}:\n${logs.join("\n")}`));
    });
  });
  const sockets = [];
  return {
    url: `http://${addr}`,
    child,
    logs,
    stdout,
    /** Connects a client; resolves on connect, rejects with the connect_error. */
    connect(opts = {}) {
      const socket = io(`http://${addr}`, { reconnection: false, forceNew: true, timeout: 5000, ...opts });
      sockets.push(socket);
      return new Promise((resolve, reject) => {
        socket.once("connect", () => resolve(socket));
        socket.once("connect_error", (err) => reject(err));
      });
    },
    async stop() {
      for (const s of sockets) s.close();
      // A child killed by a signal (SIGKILL in a test) has exited already.
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        const t = Date.now();
        child.kill("SIGTERM");
        await exited;
        if (process.env.DEBUG_STOP && Date.now() - t > 500) console.error("SLOW STOP", Date.now() - t, logs.slice(-3));
      }
    },
  };
}

/** Runs the binary (sockgate unless told) to completion and returns { code, stdout, stderr }. */
export function run(args, env = {}, program = binary) {
  return new Promise((resolve) => {
    const child = spawn(program, args, { cwd: root, env: cleanEnv({ PATH: process.env.PATH, ...env }) });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

/** The connect_error of a refused handshake (fails the test if it connects). */
export async function refusal(gateway, opts) {
  try {
    const socket = await gateway.connect(opts);
    socket.close();
  } catch (err) {
    return err;
  }
  throw new Error("handshake was accepted but should have been refused");
}

/** Drops variables set to undefined, so a test can unset a default. */
function cleanEnv(env) {
  return Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined));
}

export const API_KEY = "e2e-api-key-e2e-api-key";

/** Calls the admin API; resolves { status, body }. */
export async function api(gateway, method, path, { body, key = API_KEY, raw } = {}) {
  const headers = {};
  if (key !== null) headers.authorization = `Bearer ${key}`;
  if (body !== undefined || raw !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(gateway.url + path, { method, headers, body: raw ?? (body === undefined ? undefined : JSON.stringify(body)) });
  const text = await res.text();
  let parsed = text;
  try {
    parsed = JSON.parse(text);
  } catch {}
  return { status: res.status, body: parsed };
}

/** The public session id of a connected socket (not its socket.id). */
export async function sessionIdOf(socket) {
  return (await socket.emitWithAck("auth:whoami")).sessionId;
}

/** Resolves with the payload of the next `event` on `socket`. */
export function next(socket, event, timeoutMs = 10000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${timeoutMs} ms`)), timeoutMs);
    socket.once(event, (payload) => {
      clearTimeout(timer);
      resolve(payload);
    });
  });
}

/** Resolves with { end, reason } once the server ends `socket`. */
export function ended(socket, timeoutMs = 10000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ended within ${timeoutMs} ms`)), timeoutMs);
    let end;
    socket.once("session:end", (payload) => (end = { ...payload, at: Date.now() }));
    socket.once("disconnect", (reason) => {
      clearTimeout(timer);
      resolve({ end, reason, at: Date.now() });
    });
  });
}

/**
 * Starts a private redis-server on `port` (a free one when omitted), with
 * nothing kept on disk. Resolves once it accepts connections.
 */
export async function startRedis(port) {
  port ??= await freePort();
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("redis-server did not start")), 10000);
    createInterface({ input: child.stdout }).on("line", (line) => {
      if (line.includes("Ready to accept connections")) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on("error", (e) => reject(new Error(`cannot run redis-server: ${e.message}`)));
    child.on("exit", (code) => reject(new Error(`redis-server exited with ${code}`)));
  });
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      // Killed by a signal, a child has a signalCode and no exitCode.
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGKILL");
      await exited;
    },
  };
}

/**
 * A TCP proxy on a free port of 127.0.0.1 in front of `targetPort`: point a
 * client at `port`, then `cut()` (every connection destroyed, new ones
 * refused) and `resume()` (listening again on the same port) to make the
 * service behind it go away and come back.
 */
export async function startProxy(targetPort) {
  const conns = new Set();
  const pipe = (client) => {
    const upstream = tcpConnect(targetPort, "127.0.0.1");
    const pair = [client, upstream];
    for (const s of pair) {
      conns.add(s);
      s.on("error", () => {});
      s.on("close", () => {
        conns.delete(s);
        for (const other of pair) other.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  };
  const listen = (port) =>
    new Promise((resolve, reject) => {
      const server = createServer(pipe);
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => {
        server.off("error", reject);
        resolve(server);
      });
    });
  let server = await listen(0);
  const { port } = server.address();
  const cut = () => {
    server?.close();
    server = null;
    for (const s of conns) s.destroy();
  };
  return {
    port,
    /** Destroys every connection and stops accepting (connections are refused). */
    cut,
    /** Accepts connections again, on the same port. */
    async resume() {
      server ??= await listen(port);
    },
    stop: cut,
  };
}

/** A TCP port nobody listens on right now. */
export function freePort() {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Polls `fn` until it returns truthy (or fails after `timeoutMs`). */
export async function eventually(fn, timeoutMs = 10000, what = "condition") {
  const start = Date.now();
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() - start > timeoutMs) throw new Error(`${what} not reached within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Where Debian's Chromium is (or CHROMIUM_PATH). */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/** Debian's Chromium, headless, driven by playwright-core: nothing downloads a browser. */
export async function launchChromium() {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium missing at ${CHROMIUM} (Debian package chromium, or set CHROMIUM_PATH)`);
  const { chromium } = await import("playwright-core");
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}
