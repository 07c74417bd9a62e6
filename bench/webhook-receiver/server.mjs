// A lifecycle-webhook receiver for bench/webhooks.sh: checks each batch's
// signature, counts requests and events by type, and answers
// GET /counts with them. No dependencies.
//
//   PORT=0 SECRET=... node server.mjs     (prints `listening on <port>`)

import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";

const secret = process.env.SECRET;
const counts = { requests: 0, badSignatures: 0, events: 0, byType: {} };

function verify(body, header) {
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header ?? "");
  if (!m) return false;
  const want = createHmac("sha256", secret).update(`${m[1]}.`).update(body).digest();
  return timingSafeEqual(want, Buffer.from(m[2], "hex"));
}

const server = createServer((req, res) => {
  if (req.method === "GET" && req.url === "/counts") {
    res.writeHead(200, { "content-type": "application/json" });
    return res.end(JSON.stringify(counts));
  }
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    counts.requests += 1;
    if (!verify(body, req.headers["sockgate-signature"])) {
      counts.badSignatures += 1;
      return res.writeHead(401).end();
    }
    for (const e of JSON.parse(body).events) {
      counts.events += 1;
      counts.byType[e.type] = (counts.byType[e.type] ?? 0) + 1;
    }
    res.writeHead(204).end();
  });
});
server.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => console.log(`listening on ${server.address().port}`));
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => process.exit(0));
