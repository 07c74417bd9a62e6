#!/usr/bin/env node
// What a WebSocket compression context costs: N official socket.io-client
// connections (which offer permessage-deflate) as one user, then one 2 KiB
// echo each, then one 2 KiB /api/publish to all of them; the server's RSS
// growth per connection after each step (BENCHMARKS.md, "Compression").
// Run it from tests/e2e (after `npm ci`), against a sockgate started with
// SOCKGATE_MAX_SESSIONS_PER_USER above N:
//   node ../../bench/context-memory.mjs --url http://127.0.0.1:3001 --pid <pid> \
//     --secret "$JWT_SECRET" --key "$SOCKGATE_API_KEY" [--n 2000]
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import crypto from "node:crypto";
const { io } = createRequire(join(process.cwd(), "package.json"))("socket.io-client");
const arg = (k, d) => { const i = process.argv.indexOf(`--${k}`); return i > 0 ? process.argv[i + 1] : d; };
const url = arg("url"), pid = +arg("pid"), secret = arg("secret"), key = arg("key"), N = +arg("n", 2000);
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
const token = (sub) => { const h = b64({ alg: "HS256", typ: "JWT" }), p = b64({ sub, iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 3600 }); return `${h}.${p}.${crypto.createHmac("sha256", secret).update(`${h}.${p}`).digest("base64url")}`; };
const rss = () => +readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/)[1];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const text = Array.from({ length: 400 }, (_, i) => ["the", "release", "is", "ready", "alice", "bob", "noon"][(i * 7919) % 7]).join(" ");
const before = rss();
const sockets = [];
for (let i = 0; i < N; i += 100) {
  await Promise.all(Array.from({ length: Math.min(100, N - i) }, () => new Promise((res) => {
    const s = io(url, { transports: ["websocket"], reconnection: false, forceNew: true, auth: { token: token("ctx") } });
    sockets.push(s);
    s.once("connect", res);
  })));
}
await sleep(2000);
const idle = rss();
for (let i = 0; i < N; i += 100) await Promise.all(sockets.slice(i, i + 100).map((s) => s.emitWithAck("echo", text)));
await sleep(1000);
const echoed = rss();
let got = 0;
sockets.forEach((s) => s.on("news", () => got++));
await fetch(`${url}/api/publish`, { method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" }, body: JSON.stringify({ user: "ctx", event: "news", data: { text } }) });
while (got < N) await sleep(100);
await sleep(1000);
const published = rss();
const per = (a) => +((a - before) / N).toFixed(2);
console.log(JSON.stringify({ n: N, idle_kib: per(idle), after_echo_kib: per(echoed), after_publish_kib: per(published), message_bytes: text.length }));
sockets.forEach((s) => s.close());
process.exit(0);
