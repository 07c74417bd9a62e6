// The signature sockgate puts on every call (docs/events.md):
// `Sockgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`.
import { createHmac, timingSafeEqual } from "node:crypto";

/** The header's name, lowercase as Node and fetch give it. */
export const SIGNATURE_HEADER = "sockgate-signature";

/** How old a signature may be, by default: 5 minutes. */
export const DEFAULT_TOLERANCE_SECONDS = 300;

/**
 * Whether `header` signs `rawBody` with `secret`, and is no older (or
 * newer) than `toleranceSeconds`: a forged call fails the HMAC, a replayed
 * one the clock. Compared in constant time.
 */
export function verifySignature(
  rawBody: string | Uint8Array,
  header: string | null | undefined,
  secret: string,
  { toleranceSeconds = DEFAULT_TOLERANCE_SECONDS, now = Date.now() }: { toleranceSeconds?: number; now?: number } = {},
): boolean {
  const m = /^t=(\d{1,12}),v1=([0-9a-f]{64})$/.exec(header ?? "");
  if (!m) return false;
  const t = Number(m[1]);
  if (Math.abs(now / 1000 - t) > toleranceSeconds) return false;
  const expected = createHmac("sha256", secret).update(`${t}.`).update(rawBody).digest();
  return timingSafeEqual(Buffer.from(m[2], "hex"), expected);
}

/** The header sockgate would send for `rawBody` at `t`: for tests and tools. */
export function sign(rawBody: string | Uint8Array, secret: string, t = Math.floor(Date.now() / 1000)): string {
  const v1 = createHmac("sha256", secret).update(`${t}.`).update(rawBody).digest("hex");
  return `t=${t},v1=${v1}`;
}
