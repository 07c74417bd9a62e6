// The README's refresh-and-reconnect example runs as documented.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { root, SECRET, startGateway } from "./helpers.mjs";

test("examples/refresh-and-reconnect.mjs stays connected across token expiries", async () => {
  const gw = await startGateway();
  try {
    const example = join(root, "tests", "e2e", "examples", "refresh-and-reconnect.mjs");
    const { stdout } = await promisify(execFile)("node", [example, gw.url, "9"], { env: { ...process.env, JWT_SECRET: SECRET } });
    const lines = stdout.trim().split("\n");
    assert.equal(lines.filter((l) => l.startsWith("connected as")).length, 1, stdout);
    assert.ok(lines.filter((l) => l.startsWith("refreshed")).length >= 2, stdout);
    assert.ok(!stdout.includes("session ended"), stdout);
    assert.equal(lines.at(-1), "done");
  } finally {
    await gw.stop();
  }
});
