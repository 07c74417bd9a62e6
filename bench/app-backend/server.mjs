// The app's backend behind sockgate, as a benchmark peer: sockgate hands it
// the client events it does not answer itself (docs/events.md), and it
// answers the `rpc` event with `{ ack: args[0] }`, the way bench/peer-node
// answers it in process. Every call's signature is checked first, as a real
// backend must. Three ways sockgate can reach it, by MODE:
//
//   MODE=http  Express 5, POST /sockgate/events  (SOCKGATE_EVENTS_URL=http://127.0.0.1:PORT/sockgate/events)
//   MODE=h2c   node:http2, the same path over HTTP/2 cleartext
//                                                (SOCKGATE_EVENTS_URL=h2c://127.0.0.1:PORT/sockgate/events)
//   MODE=grpc  @grpc/grpc-js, sockgate.v1.App.Event from proto/sockgate/v1/app.proto
//                                                (SOCKGATE_EVENTS_URL=grpc://127.0.0.1:PORT)
//
//   MODE=http EVENTS_SECRET=... PORT=4000 node server.mjs
//
// Prints `listening on <port> (<mode>)` once it accepts connections (PORT=0
// picks one). On SIGTERM or SIGINT it prints how many calls it answered and
// refused, and exits 0. One process, one core, like the Node peer.

import { createHmac, timingSafeEqual } from "node:crypto";
import http2 from "node:http2";
import { fileURLToPath } from "node:url";
import express from "express";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const mode = process.env.MODE ?? "http";
const secret = process.env.EVENTS_SECRET;
const port = Number(process.env.PORT ?? 4000);
const host = process.env.HOST ?? "127.0.0.1";
const path = "/sockgate/events";
// Older signatures are refused: a replayed call is not answered again.
const TOLERANCE_S = 300;
const BODY_LIMIT = 1 << 20;

if (!secret) {
  console.error("app-backend: set EVENTS_SECRET");
  process.exit(2);
}

const counts = { answered: 0, refused: 0 };

// signed(header, signedText): the `sockgate-signature` header
// (`t=<unix s>,v1=<hex>`) is HMAC-SHA256(secret, "<t>.<signedText>") and
// recent. signedText is the raw body over HTTP, the request's id over gRPC.
function signed(header, signedText) {
  const { t, v1 = "" } = Object.fromEntries(String(header ?? "").split(",").map((p) => p.split("=")));
  if (!t || Math.abs(Date.now() / 1000 - Number(t)) > TOLERANCE_S) return false;
  const expected = createHmac("sha256", secret).update(`${t}.`).update(signedText).digest();
  const given = Buffer.from(v1, "hex");
  return given.length === expected.length && timingSafeEqual(given, expected);
}

// answer(event, args): the answer's fields (docs/events.md, "The answer").
function answer(event, args) {
  if (event === "rpc") return { ack: args[0] };
  return { error: { code: "UNKNOWN_EVENT", message: String(event) } };
}

// ---- HTTP/1.1: Express 5 -------------------------------------------------

function startHttp() {
  const app = express();
  // express.raw: the signature is over the bytes sockgate sent, so the body
  // is checked before it is parsed.
  app.post(path, express.raw({ type: "application/json", limit: BODY_LIMIT }), (req, res) => {
    if (!Buffer.isBuffer(req.body) || !signed(req.get("sockgate-signature"), req.body)) {
      counts.refused++;
      return res.sendStatus(401);
    }
    const { event, args } = JSON.parse(req.body);
    counts.answered++;
    res.json(answer(event, args));
  });
  const server = app.listen(port, host, () => ready(server.address().port));
  return () => {
    server.close();
    server.closeAllConnections();
  };
}

// ---- HTTP/2 cleartext: node:http2 ----------------------------------------

function reply(stream, status, body) {
  const text = body === undefined ? "" : JSON.stringify(body);
  stream.respond({
    ":status": status,
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  stream.end(text);
}

function readStream(stream, limit) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    stream.on("data", (c) => {
      size += c.length;
      if (size > limit) {
        reject(new Error("body too large"));
        stream.close(http2.constants.NGHTTP2_CANCEL);
      } else {
        chunks.push(c);
      }
    });
    stream.on("end", () => resolve(Buffer.concat(chunks)));
    stream.on("error", reject);
  });
}

async function onStream(stream, headers) {
  if (headers[":method"] !== "POST" || headers[":path"] !== path) return reply(stream, 404);
  const body = await readStream(stream, BODY_LIMIT);
  if (!signed(headers["sockgate-signature"], body)) {
    counts.refused++;
    return reply(stream, 401);
  }
  const { event, args } = JSON.parse(body);
  counts.answered++;
  reply(stream, 200, answer(event, args));
}

function startH2c() {
  // createServer, not createSecureServer: HTTP/2 by prior knowledge.
  const server = http2.createServer();
  server.on("stream", (stream, headers) => {
    onStream(stream, headers).catch(() => {
      if (!stream.headersSent && !stream.destroyed) reply(stream, 400);
    });
  });
  server.listen(port, host, () => ready(server.address().port));
  return () => server.close();
}

// ---- gRPC: @grpc/grpc-js -------------------------------------------------

function startGrpc() {
  const proto = fileURLToPath(new URL("../../proto/sockgate/v1/app.proto", import.meta.url));
  const { App } = grpc.loadPackageDefinition(protoLoader.loadSync(proto, { longs: Number })).sockgate.v1;
  const server = new grpc.Server();
  server.addService(App.service, {
    event(call, done) {
      // Over gRPC the signature is over "<t>.<id>": there is no raw body.
      const [header] = call.metadata.get("sockgate-signature");
      if (!signed(header, call.request.id)) {
        counts.refused++;
        return done({ code: grpc.status.UNAUTHENTICATED, details: "bad signature" });
      }
      const { ack, error } = answer(call.request.event, JSON.parse(call.request.argsJson));
      counts.answered++;
      // JSON travels as text; an empty ack_json is null.
      done(null, error ? { error } : { ackJson: ack === undefined ? "" : JSON.stringify(ack) });
    },
    connect(_call, done) {
      done({ code: grpc.status.UNIMPLEMENTED, details: "no connect hook here" });
    },
  });
  server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, bound) => {
    if (err) {
      console.error(`app-backend: ${err.message}`);
      process.exit(1);
    }
    ready(bound);
  });
  return () => server.forceShutdown();
}

// --------------------------------------------------------------------------

function ready(bound) {
  console.log(`listening on ${bound} (${mode})`);
}

const starts = { http: startHttp, h2c: startH2c, grpc: startGrpc };
if (!starts[mode]) {
  console.error(`app-backend: MODE must be http, h2c or grpc, not ${mode}`);
  process.exit(2);
}
const stop = starts[mode]();

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    stop();
    console.log(`answered ${counts.answered} calls, refused ${counts.refused}`);
    process.exit(0);
  });
}
