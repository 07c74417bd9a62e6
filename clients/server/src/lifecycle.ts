// sockgate's lifecycle webhooks (docs/webhooks.md): signed batches of what
// happens to sessions, users and rooms, `{ "events": [...] }`.
import { verifySignature, DEFAULT_TOLERANCE_SECONDS } from "./signature";

interface Stamped {
  /** Unique per event: a retried batch repeats it, so keep it to drop a repeat. */
  id: string;
  /** When it happened, Unix milliseconds. */
  ts: number;
}

/** One event of a batch. */
export type LifecycleEvent = Stamped &
  (
    | { type: "session.started"; userId: string; sessionId: string; transport: "websocket" | "polling"; remoteAddr: string | null; recovered: boolean }
    | { type: "session.ended"; userId: string; sessionId: string; code: string; reconnect: boolean; durationMs: number }
    | { type: "user.online" | "user.offline"; userId: string }
    | { type: "room.occupied" | "room.vacated"; room: string }
    | { type: "member.joined" | "member.left"; room: string; userId: string }
  );

/** A batch that is not sockgate's: forged, stale, or not a batch. */
export class SockgateWebhookError extends Error {
  constructor(
    message: string,
    /** The status to answer with: 401 for the signature, 400 for the body. */
    readonly status: 400 | 401,
  ) {
    super(message);
    this.name = "SockgateWebhookError";
  }
}

/**
 * Checks a batch's `Sockgate-Signature` on its raw bytes and returns its
 * events, in the order they happened; throws a `SockgateWebhookError`
 * (401, 400) otherwise. sockgate retries a batch until a 2xx: answer it
 * once the events are stored, and drop events whose `id` you have seen.
 */
export function readLifecycle(
  rawBody: string | Uint8Array,
  signature: string | null | undefined,
  secret: string,
  { toleranceSeconds = DEFAULT_TOLERANCE_SECONDS }: { toleranceSeconds?: number } = {},
): LifecycleEvent[] {
  if (!verifySignature(rawBody, signature, secret, { toleranceSeconds })) {
    throw new SockgateWebhookError("missing, wrong or stale Sockgate-Signature", 401);
  }
  let body: unknown;
  try {
    body = JSON.parse(typeof rawBody === "string" ? rawBody : Buffer.from(rawBody).toString("utf8"));
  } catch {
    throw new SockgateWebhookError("the body is not JSON", 400);
  }
  const events = (body as { events?: unknown } | null)?.events;
  if (!Array.isArray(events) || !events.every((e) => typeof e?.type === "string" && typeof e?.id === "string")) {
    throw new SockgateWebhookError("the body is not a batch of events", 400);
  }
  return events as LifecycleEvent[];
}
