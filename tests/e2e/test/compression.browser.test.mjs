// permessage-deflate in real Chromium: the WebSocket negotiates it, large
// messages cross the wire compressed in both directions and still round-trip,
// small ones go as they are, and SOCKGATE_WS_COMPRESSION=false turns it off.
// The bytes are counted by a TCP proxy between the browser and the gateway.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer as httpServer } from "node:http";
import { createServer, connect as tcpConnect } from "node:net";
import { join } from "node:path";
import { api, API_KEY, launchChromium, root, sign, startGateway } from "./helpers.mjs";


let browser;
before(async () => {
  browser = await launchChromium();
});
after(() => browser?.close());

/** A TCP proxy to `gw` that counts the bytes each way. */
async function countingProxy(gw) {
  const target = new URL(gw.url);
  const bytes = { up: 0, down: 0 };
  const server = createServer((client) => {
    const upstream = tcpConnect(Number(target.port), target.hostname);
    client.on("data", (d) => (bytes.up += d.length));
    upstream.on("data", (d) => (bytes.down += d.length));
    client.pipe(upstream).pipe(client);
    const drop = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", drop);
    upstream.on("error", drop);
    client.on("close", drop);
    upstream.on("close", drop);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${server.address().port}`, bytes, close: () => server.close() };
}

/** A page on its own origin that connects over a WebSocket with the browser bundle. */
function startApp(url, token) {
  const bundle = readFileSync(join(root, "tests", "e2e", "node_modules", "socket.io-client", "dist", "socket.io.min.js"));
  const page = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>app</title><link rel="icon" href="data:,"></head>
<body><script src="/socket.io.min.js"></script>
<script>
  window.news = [];
  const socket = io(${JSON.stringify(url)}, { transports: ["websocket"], auth: { token: ${JSON.stringify(token)} } });
  window.socket = socket;
  socket.on("news", (data) => window.news.push(data));
  window.connected = new Promise((resolve) => socket.on("connect", resolve));
</script></body></html>`;
  const server = httpServer((req, res) => {
    if (req.url === "/socket.io.min.js") {
      res.writeHead(200, { "content-type": "text/javascript" });
      return res.end(bundle);
    }
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(page);
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve({ origin: `http://127.0.0.1:${server.address().port}`, close: () => server.close() })),
  );
}

/** JSON-ish text of about `n` bytes, as repetitive as chat or notification payloads. */
const chatty = (n) => {
  const line = "{\"user\":\"alice\",\"text\":\"see you at the standup\",\"room\":\"chat:team\"},";
  return line.repeat(Math.ceil(n / line.length)).slice(0, n);
};

async function open(gw) {
  const proxy = await countingProxy(gw);
  const app = await startApp(proxy.url, sign({ sub: "alice", rooms: ["chat:*"] }));
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on("console", (msg) => msg.type() === "error" && errors.push(msg.text()));
  page.on("pageerror", (err) => errors.push(err.message));
  await page.goto(app.origin + "/");
  await page.evaluate(() => window.connected);
  const close = async () => {
    await context.close();
    app.close();
    proxy.close();
  };
  return { proxy, page, errors, close };
}

test("Chromium negotiates permessage-deflate; big messages go compressed both ways and round-trip", async () => {
  const gw = await startGateway({ SOCKGATE_API_KEY: API_KEY });
  const { proxy, page, close } = await open(gw);
  try {
    const extensions = await page.evaluate(() => window.socket.io.engine.transport.ws.extensions);
    assert.match(extensions, /^permessage-deflate/, `negotiated: ${extensions}`);
    assert.match(extensions, /server_no_context_takeover/);
    assert.match(extensions, /client_no_context_takeover/);

    const big = chatty(30000);
    const before = { ...proxy.bytes };
    const echoed = await page.evaluate((big) => window.socket.emitWithAck("echo", big), big);
    assert.equal(echoed, big, "the echo round-trips");
    const up = proxy.bytes.up - before.up;
    const down = proxy.bytes.down - before.down;
    console.log(`compression: a ${big.length}-byte echo crossed as ${up} bytes up, ${down} bytes down`);
    assert.ok(up < big.length / 3, `client to server: ${up} bytes for ${big.length}`);
    assert.ok(down < big.length / 3, `server to client: ${down} bytes for ${big.length}`);

    // A room message from the backend, compressed too.
    assert.equal((await page.evaluate(() => window.socket.emitWithAck("room:join", { room: "chat:r" }))).ok, true);
    const published = { text: big };
    const mark = proxy.bytes.down;
    assert.equal((await api(gw, "POST", "/api/publish", { body: { room: "chat:r", event: "news", data: published } })).status, 200);
    await page.waitForFunction(() => window.news.length === 1, null, { timeout: 5000 });
    assert.deepEqual(await page.evaluate(() => window.news[0]), published);
    assert.ok(proxy.bytes.down - mark < big.length / 3, `a room message: ${proxy.bytes.down - mark} bytes`);

    // A message under the threshold (256 bytes) goes as it is, and round-trips.
    assert.equal(await page.evaluate(() => window.socket.emitWithAck("echo", "hi")), "hi");
  } finally {
    await close();
    await gw.stop();
  }
});

test("a WebSocket closed by either side sees one close frame each way", async () => {
  const gw = await startGateway({ SOCKGATE_API_KEY: API_KEY });
  const { page, errors, close } = await open(gw);
  const reconnect = () =>
    page.evaluate(() => {
      window.socket.connect();
      return new Promise((resolve) => window.socket.once("connect", resolve));
    });
  const disconnected = () => page.evaluate(() => new Promise((resolve) => window.socket.once("disconnect", resolve)));
  try {
    // The browser closes it: its close frame, the server's answer.
    let gone = disconnected();
    await page.evaluate(() => window.socket.io.engine.close());
    assert.equal(await gone, "forced close");
    // A kick: the server's DISCONNECT, then the browser closes the transport.
    await reconnect();
    gone = disconnected();
    assert.equal((await api(gw, "POST", "/api/users/alice/disconnect")).status, 200);
    assert.equal(await gone, "io server disconnect");
    // A shutdown: the server closes the transport, the browser answers.
    await reconnect();
    gone = disconnected();
    await gw.stop();
    assert.equal(await gone, "transport close");
    await new Promise((r) => setTimeout(r, 300));
    // Chromium reports a second close frame as "Close received after close".
    assert.deepEqual(errors, []);
  } finally {
    await close();
    await gw.stop();
  }
});

test("SOCKGATE_WS_COMPRESSION=false negotiates nothing, and messages still round-trip", async () => {
  const gw = await startGateway({ SOCKGATE_API_KEY: API_KEY, SOCKGATE_WS_COMPRESSION: "false" });
  const { proxy, page, close } = await open(gw);
  try {
    assert.equal(await page.evaluate(() => window.socket.io.engine.transport.ws.extensions), "");
    const big = chatty(30000);
    const before = proxy.bytes.down;
    assert.equal(await page.evaluate((big) => window.socket.emitWithAck("echo", big), big), big);
    assert.ok(proxy.bytes.down - before > big.length, "uncompressed");
  } finally {
    await close();
    await gw.stop();
  }
});
