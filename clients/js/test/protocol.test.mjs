// The SDK's protocol table against the server's own definitions.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { CODES, CLIENT_EVENTS, SERVER_EVENTS, classOf } from "../dist/index.js";
import { repoRoot } from "./support/gateway.mjs";

const errorsMd = join(repoRoot, "docs", "errors.md");
const codesRs = join(repoRoot, "crates", "protocol", "src", "codes.rs");

test("every code in docs/errors.md's class table is in CODES with the same class", () => {
  const text = readFileSync(errorsMd, "utf8");
  const rows = [...text.matchAll(/^\| `([A-Z_]+)` \| (retryable|terminal) \|$/gm)].map((m) => [m[1], m[2]]);
  assert.ok(rows.length >= 20, `found the class table (${rows.length} rows)`);
  for (const [code, cls] of rows) assert.equal(CODES[code], cls, `${code} is ${cls} in docs/errors.md`);
  assert.deepEqual(Object.keys(CODES).sort(), rows.map(([c]) => c).sort(), "CODES holds exactly the documented codes");
  // Every code the other tables of the page name is known too.
  for (const [, code] of text.matchAll(/^\| `([A-Z][A-Z_]+)` \|/gm)) assert.ok(code in CODES, `${code} from docs/errors.md is in CODES`);
});

test("CODES follows ErrorCode::ALL and ErrorCode::class of crates/protocol", () => {
  const src = readFileSync(codesRs, "utf8");
  const all = /pub const ALL: \[ErrorCode; \d+\] = \[([\s\S]*?)\];/.exec(src)[1];
  const variants = [...all.matchAll(/ErrorCode::(\w+)/g)].map((m) => m[1]);
  const wire = Object.fromEntries([...src.matchAll(/ErrorCode::(\w+) => "([A-Z_]+)"/g)].map((m) => [m[1], m[2]]));
  const classFn = /pub const fn class\(self\) -> Class \{([\s\S]*?)\n    \}/.exec(src)[1];
  const retryable = new Set([...classFn.split("=> Class::Retryable")[0].matchAll(/ErrorCode::(\w+)/g)].map((m) => m[1]));
  assert.deepEqual(
    Object.entries(CODES),
    variants.map((v) => [wire[v], retryable.has(v) ? "retryable" : "terminal"]),
  );
});

test("the protocol names and classes", () => {
  assert.equal(classOf("TOKEN_EXPIRED"), "terminal");
  assert.equal(classOf("SESSION_EXPIRED"), "retryable");
  assert.equal(classOf("NOPE"), undefined);
  assert.deepEqual(CLIENT_EVENTS, {
    whoami: "auth:whoami",
    refresh: "auth:refresh",
    ticket: "auth:ticket",
    join: "room:join",
    leave: "room:leave",
    publish: "room:publish",
    members: "room:members",
    history: "room:history",
    echo: "echo",
  });
  assert.deepEqual(SERVER_EVENTS, {
    expiring: "auth:expiring",
    message: "room:message",
    revoked: "room:revoked",
    end: "session:end",
    joined: "room:joined",
    left: "room:left",
  });
});

test("the CommonJS build exports the same API", () => {
  const require = createRequire(import.meta.url);
  const cjs = require("../dist/index.cjs");
  assert.equal(typeof cjs.createClient, "function");
  assert.equal(typeof cjs.SockgateError, "function");
  assert.deepEqual(cjs.CODES, CODES);
});
