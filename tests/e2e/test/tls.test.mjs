// TLS with rustls: wss:// and https:// with a certificate made for the test.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { io } from "socket.io-client";
import { run, sign, startGateway } from "./helpers.mjs";

function selfSigned() {
  const dir = mkdtempSync(join(tmpdir(), "sockgate-tls-"));
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost",
    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
  ], { stdio: "ignore" });
  return { cert, key, pem: readFileSync(cert) };
}

test("clients connect over wss:// and https:// long-polling; plain http is refused", async () => {
  const { cert, key, pem } = selfSigned();
  const gw = await startGateway({ SOCKGATE_TLS_CERT: cert, SOCKGATE_TLS_KEY: key });
  const url = gw.url.replace("http://", "https://");
  const sockets = [];
  try {
    for (const transports of [["websocket"], ["polling"]]) {
      const s = io(url, { auth: { token: sign({ sub: "tls" }) }, transports, ca: pem, reconnection: false, forceNew: true });
      sockets.push(s);
      await new Promise((resolve, reject) => {
        s.once("connect", resolve);
        s.once("connect_error", reject);
      });
      assert.equal((await s.emitWithAck("auth:whoami")).userId, "tls");
    }
    const health = await new Promise((resolve, reject) => {
      https.get(`${url}/healthz`, { ca: pem }, (res) => {
        let body = "";
        res.on("data", (d) => (body += d));
        res.on("end", () => resolve(body));
      }).on("error", reject);
    });
    assert.equal(health, "ok");
    // A client that does not trust the certificate cannot connect.
    const untrusting = io(url, { auth: { token: sign() }, transports: ["websocket"], reconnection: false, forceNew: true });
    sockets.push(untrusting);
    const err = await new Promise((resolve) => untrusting.once("connect_error", resolve));
    assert.ok(err instanceof Error);
  } finally {
    for (const s of sockets) s.close();
    await gw.stop();
  }
});

test("a certificate without its key refuses to start", async () => {
  const { cert } = selfSigned();
  const out = await run(["serve"], { JWT_SECRET: "x".repeat(40), SOCKGATE_TLS_CERT: cert, SOCKGATE_LISTEN: "127.0.0.1:0" });
  assert.equal(out.code, 2);
  assert.match(out.stderr, /SOCKGATE_TLS_KEY/);
});
