// The usual Node Socket.IO server with JWT auth, as a benchmark peer for
// sockgate: socket.io 4, an HS256 check with jsonwebtoken in io.use, every
// socket in the room `user:{id}`, an `echo` event with ack, an `rpc` event
// with ack (the app's own event, which sockgate hands to bench/app-backend
// instead), and `POST /api/publish` (the same body as sockgate's) for the
// fanout scenario. With REDIS_URL, the Redis adapter
// (@socket.io/redis-adapter), so that @socket.io/redis-emitter (emit.mjs)
// reaches its sockets from another process: the queue scenario's peer path.
//
//   JWT_SECRET=... API_KEY=... PORT=3002 [REDIS_URL=redis://...] node server.mjs
//
// Prints `listening on <port>` once it accepts connections (PORT=0 picks one).
// One process, one core: the way this server is usually run.

import http from "node:http";
import { Server } from "socket.io";
import jwt from "jsonwebtoken";

const secret = process.env.JWT_SECRET;
const apiKey = process.env.API_KEY;
const port = Number(process.env.PORT ?? 3002);
const host = process.env.HOST ?? "127.0.0.1";
if (!secret) {
  console.error("peer-node: set JWT_SECRET");
  process.exit(2);
}

function json(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

function readBody(req, limit = 1 << 20) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on("data", (c) => {
      size += c.length;
      if (size > limit) {
        reject(new Error("body too large"));
        req.destroy();
      } else {
        chunks.push(c);
      }
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

// Non-Socket.IO requests (socket.io answers /socket.io/ itself).
async function onRequest(req, res) {
  if (req.method === "GET" && req.url === "/healthz") {
    res.writeHead(200, { "content-type": "text/plain" });
    return res.end("ok");
  }
  if (req.method === "POST" && req.url === "/api/publish") {
    if (!apiKey || req.headers.authorization !== `Bearer ${apiKey}`) {
      return json(res, 401, { error: { code: "UNAUTHORIZED", message: "missing or wrong API key" } });
    }
    let body;
    try {
      body = JSON.parse(await readBody(req));
    } catch (err) {
      return json(res, 400, { error: { code: "INVALID_REQUEST", message: err.message } });
    }
    const room = body.room ?? (body.user != null ? `user:${body.user}` : null);
    if (!room || typeof body.event !== "string") {
      return json(res, 400, { error: { code: "INVALID_REQUEST", message: "give room or user, and event" } });
    }
    const delivered = io.sockets.adapter.rooms.get(room)?.size ?? 0;
    io.to(room).emit(body.event, body.data);
    return json(res, 200, { delivered });
  }
  json(res, 404, { error: { code: "NOT_FOUND", message: "no such endpoint" } });
}

const httpServer = http.createServer((req, res) => {
  onRequest(req, res).catch((err) => json(res, 500, { error: { code: "INTERNAL", message: err.message } }));
});

// PER_MESSAGE_DEFLATE=1 negotiates permessage-deflate (socket.io's own
// option, off by default), for the compression comparison in BENCHMARKS.md.
const io = new Server(httpServer, process.env.PER_MESSAGE_DEFLATE === "1" ? { perMessageDeflate: { threshold: 256 } } : {});

io.use((socket, next) => {
  const token = socket.handshake.auth?.token;
  if (!token) return next(new Error("no token"));
  try {
    const claims = jwt.verify(token, secret, { algorithms: ["HS256"] });
    socket.data.userId = String(claims.sub);
    next();
  } catch (err) {
    next(new Error(err.message));
  }
});

io.on("connection", (socket) => {
  socket.join(`user:${socket.data.userId}`);
  socket.on("echo", (data, ack) => {
    if (typeof ack === "function") ack(data);
  });
  // The app's handler, in process: what sockgate's backend call replaces.
  socket.on("rpc", (data, ack) => {
    if (typeof ack === "function") ack(data);
  });
});

if (process.env.REDIS_URL) {
  const { createClient } = await import("redis");
  const { createAdapter } = await import("@socket.io/redis-adapter");
  const pub = createClient({ url: process.env.REDIS_URL });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  io.adapter(createAdapter(pub, sub));
}

httpServer.listen(port, host, () => {
  console.log(`listening on ${httpServer.address().port}`);
});

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    io.close();
    process.exit(0);
  });
}
