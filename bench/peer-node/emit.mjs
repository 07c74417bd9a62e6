// The Node peer's way to publish from another process: @socket.io/redis-emitter
// over the Redis adapter of server.mjs (started with REDIS_URL). Reads one
// publish per line on standard input, `{ "user" | "room", "event", "data" }`,
// and emits it to the room (`user:<id>` for a user): what sockgate-bench's
// queue scenario drives with --via command:'node bench/peer-node/emit.mjs'.
//
//   REDIS_URL=redis://127.0.0.1:6379 node emit.mjs < messages.jsonl

import { createInterface } from "node:readline";
import { createClient } from "redis";
import { Emitter } from "@socket.io/redis-emitter";

const client = createClient({ url: process.env.REDIS_URL });
await client.connect();
const emitter = new Emitter(client);

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const body = JSON.parse(line);
  const room = body.room ?? `user:${body.user}`;
  emitter.to(room).emit(body.event, body.data);
}
await client.quit();
