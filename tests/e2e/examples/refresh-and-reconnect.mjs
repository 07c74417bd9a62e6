// A client that never outlives its token and never loses its session:
//   - the `auth` callback fetches a fresh token on every (re)connection attempt;
//   - `auth:expiring` triggers an in-band refresh, with no reconnect;
//   - `session:end` tells why the server ended the session.
//
// Run it against a gateway started with the same JWT_SECRET:
//   JWT_SECRET=... sockgate serve
//   JWT_SECRET=... node tests/e2e/examples/refresh-and-reconnect.mjs http://127.0.0.1:3001 20
//
// getToken() stands in for your backend's token endpoint; here it asks
// `sockgate token` for a 4-second token so the refreshes are easy to watch.
import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { io } from "socket.io-client";

const url = process.argv[2] ?? "http://127.0.0.1:3001";
const seconds = Number(process.argv[3] ?? 20);
const sockgate = process.env.SOCKGATE_BIN ?? join(dirname(fileURLToPath(import.meta.url)), "../../../target/debug/sockgate");

async function getToken() {
  return execFileSync(sockgate, ["token", "--sub", "alice", "--ttl", "4s"]).toString().trim();
}

const socket = io(url, {
  // Called before every connection attempt, so a reconnect after a network
  // drop always presents a fresh token.
  auth: (cb) => getToken().then((token) => cb({ token })),
});

socket.on("connect", () => console.log(`connected as ${socket.id}`));
socket.on("connect_error", (err) => console.log(`refused: ${err.message}`));

socket.on("auth:expiring", async ({ secondsLeft }) => {
  try {
    const ack = await socket.emitWithAck("auth:refresh", { token: await getToken() });
    console.log(ack.ok ? `refreshed (${secondsLeft}s were left), now valid until ${ack.expiresAt}` : `refresh failed: ${ack.code}`);
  } catch (err) {
    // The ack never comes when the connection drops meanwhile (or we close
    // it); the next connection attempt fetches a fresh token anyway.
    if (socket.active) console.log(`refresh interrupted: ${err.message}`);
  }
});

socket.on("session:end", ({ code, message }) => console.log(`session ended: ${code}: ${message}`));

setTimeout(() => {
  console.log("done");
  socket.close();
}, seconds * 1000);
