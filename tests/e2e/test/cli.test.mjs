// The command line: `sockgate token`, `serve --dev`, startup refusals, config layering.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import jwt from "jsonwebtoken";
import { refusal, run, sign, startGateway, SECRET } from "./helpers.mjs";

test("`sockgate token` prints an HS256 token the gateway accepts", async () => {
  const out = await run(["token", "--sub", "alice", "--ttl", "15m", "--claim", "team=red", "--claim", "admin=true"], { JWT_SECRET: SECRET });
  assert.equal(out.code, 0, out.stderr);
  const token = out.stdout.trim();
  const claims = jwt.verify(token, SECRET, { algorithms: ["HS256"] });
  assert.equal(claims.sub, "alice");
  assert.equal(claims.exp - claims.iat, 900);
  assert.equal(claims.team, "red");
  assert.equal(claims.admin, true);
  assert.equal(typeof claims.jti, "string");

  const gw = await startGateway();
  try {
    const s = await gw.connect({ auth: { token } });
    assert.equal((await s.emitWithAck("auth:whoami")).claims.team, "red");
  } finally {
    await gw.stop();
  }
});

test("`sockgate token` without a secret says what to set", async () => {
  const out = await run(["token", "--sub", "alice"]);
  assert.equal(out.code, 2);
  assert.match(out.stderr, /JWT_SECRET/);
});

test("a secret shorter than 32 bytes refuses to start, saying why, without echoing it", async () => {
  const out = await run(["serve"], { JWT_SECRET: "short-secret-value", SOCKGATE_LISTEN: "127.0.0.1:0" });
  assert.equal(out.code, 2);
  assert.match(out.stderr, /JWT_SECRET: the HMAC secret is 18 bytes; at least 32 are required/);
  assert.ok(!out.stderr.includes("short-secret-value"));
});

test("no key at all refuses to start and points at --dev", async () => {
  const out = await run(["serve"], { SOCKGATE_LISTEN: "127.0.0.1:0" });
  assert.equal(out.code, 2);
  assert.match(out.stderr, /no verification key configured/);
  assert.match(out.stderr, /--dev/);
});

test("`serve --dev` runs with nothing configured and prints a working token", async () => {
  const gw = await startGateway({ JWT_SECRET: undefined }, ["--dev"]);
  try {
    const banner = gw.stdout.join("\n");
    assert.match(banner, /DEVELOPMENT MODE/);
    const token = gw.stdout.find((l) => /^ey[\w-]+\.[\w-]+\.[\w-]+$/.test(l));
    assert.ok(token, banner);
    const s = await gw.connect({ auth: { token } });
    assert.equal((await s.emitWithAck("auth:whoami")).userId, "dev");
    // The generated secret differs per process: our own tokens do not pass.
    assert.match((await refusal(gw, { auth: { token: sign() } })).message, /^TOKEN_INVALID: /);
  } finally {
    await gw.stop();
  }
});

test("settings layer: file < environment < flags", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sockgate-"));
  const file = join(dir, "sockgate.toml");
  writeFileSync(file, `user_claim = "uid"\njwt_secret = "${SECRET}"\n`);
  const tokenFor = (claim) => sign({ sub: undefined, [claim]: `by-${claim}` });
  const userOf = async (gw, claim) => {
    const s = await gw.connect({ auth: { token: tokenFor(claim) } });
    return (await s.emitWithAck("auth:whoami")).userId;
  };

  let gw = await startGateway({ JWT_SECRET: undefined, SOCKGATE_CONFIG: file });
  try {
    assert.equal(await userOf(gw, "uid"), "by-uid");
  } finally {
    await gw.stop();
  }
  gw = await startGateway({ JWT_SECRET: undefined, SOCKGATE_CONFIG: file, SOCKGATE_USER_CLAIM: "id" });
  try {
    assert.equal(await userOf(gw, "id"), "by-id");
    assert.match((await refusal(gw, { auth: { token: tokenFor("uid") } })).message, /^CLAIMS_INVALID: /);
  } finally {
    await gw.stop();
  }
  gw = await startGateway({ JWT_SECRET: undefined, SOCKGATE_USER_CLAIM: "id" }, ["--config", file, "--user-claim", "name"]);
  try {
    assert.equal(await userOf(gw, "name"), "by-name");
  } finally {
    await gw.stop();
  }
});

test("a typo in the config file is an error, not silently ignored", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sockgate-"));
  const file = join(dir, "sockgate.toml");
  writeFileSync(file, `jwt_secert = "${SECRET}"\n`);
  const out = await run(["serve", "--config", file]);
  assert.equal(out.code, 2);
  assert.match(out.stderr, /jwt_secert/);
});

test("--help never shows secret values from the environment", async () => {
  const out = await run(["serve", "--help"], { JWT_SECRET: SECRET, SOCKGATE_JWT_SECRET: SECRET, SOCKGATE_JWT_PREVIOUS_SECRET: SECRET });
  assert.equal(out.code, 0);
  assert.match(out.stdout, /SOCKGATE_JWT_SECRET/);
  assert.ok(!out.stdout.includes(SECRET));
});
