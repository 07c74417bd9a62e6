// The publish client: sockgate's admin API (docs/api.md) from the backend.
// fetch keeps connections alive by itself (undici, Node 18+).
import { randomUUID } from "node:crypto";
import { SockgateApiError } from "./errors";
import type { Publish, PublishTarget } from "./protocol";

export interface SockgateOptions {
  /** The gateway's base URL, `http://127.0.0.1:3001` (the API is under `/api`). */
  url: string;
  /** `SOCKGATE_API_KEY`. */
  apiKey: string;
  /** How long one attempt may take, default 5000 ms; past it the call fails with `TIMEOUT`. */
  timeoutMs?: number;
  /** Retries of idempotent calls after a network error, a timeout or a 503, default 2. Publishes are retried with their idempotency key. */
  retries?: number;
}

/** A live session, as `GET /api/sessions` lists it. */
export interface Session {
  sessionId: string;
  userId: string;
  connectedAt: number;
  expiresAt: number | null;
  remoteAddr: string | null;
  userAgent: string | null;
  transport: "websocket" | "polling";
}

/** The answer to a revocation. */
export interface Revocation {
  revoked: { jti: string; expiresAt: number } | { userId: string; issuedBefore: number };
  /** Sessions this node ended. */
  ended: number;
  /** In a cluster: whether the other nodes were told at once. */
  shared?: boolean;
}

/** The active revocations. */
export interface Revocations {
  tokens: { jti: string; expiresAt: number }[];
  users: { userId: string; issuedBefore: number }[];
}

/** What a publish did. */
export interface Published {
  /** The sockets reached on the node that took the call. */
  delivered: number;
  /** True when its idempotency key was seen within the window: it reached nobody this time. */
  duplicate?: boolean;
}

/** Options of one publish. */
export interface PublishOptions {
  /**
   * The same key on every send of one message (1 to 128 bytes): sockgate
   * delivers it once within `SOCKGATE_IDEMPOTENCY_WINDOW`. Default: a new
   * random key per call, kept across its retries.
   */
  idempotencyKey?: string;
  /**
   * The namespace whose rooms (or whose sockets of the user) it reaches,
   * in full: `"/admin"`, `"/tenant-acme"`. Default: the main namespace,
   * `/`. One that sockgate does not serve is `INVALID_REQUEST`.
   */
  namespace?: string;
}

/** Emits to rooms or a user through `POST /api/publish`. */
export interface PublishTo {
  /** Resolves with the sockets reached on the node that took the call. */
  emit(event: string, data?: unknown, options?: PublishOptions): Promise<Published>;
}

/**
 * Moves every socket of a room, on every node. `moved` counts the sockets
 * of the node that took the call; the other nodes move theirs as the
 * announcement reaches them.
 */
export interface RoomSockets {
  /** Every socket in the room joins `room` (the room policy is not asked). */
  socketsJoin(room: string): Promise<{ moved: number }>;
  /** Every socket in the room leaves `room`. */
  socketsLeave(room: string): Promise<{ moved: number }>;
}

interface CallOptions {
  body?: unknown;
  /** Whether the call may be sent again: it is when sending it twice does what sending it once does. */
  idempotent: boolean;
}

const BACKOFF_MS = 100;

/**
 * The admin API. Every method resolves with the API's answer or rejects
 * with a `SockgateApiError`. Calls that do the same when sent twice are
 * retried after a network error, a timeout or a 503; so are publishes,
 * which always carry an idempotency key.
 */
export class Sockgate {
  private readonly base: string;
  private readonly apiKey: string;
  private readonly timeoutMs: number;
  private readonly retries: number;

  constructor({ url, apiKey, timeoutMs = 5000, retries = 2 }: SockgateOptions) {
    if (!url) throw new TypeError("new Sockgate needs the gateway's url");
    if (!apiKey) throw new TypeError("new Sockgate needs the admin API key (SOCKGATE_API_KEY)");
    this.base = url.replace(/\/+$/, "") + "/api";
    this.apiKey = apiKey;
    this.timeoutMs = timeoutMs;
    this.retries = Math.max(0, retries);
  }

  /** Emits to every socket in `room` (or in any of `rooms`, once each), on every node. */
  to(room: string | readonly string[]): PublishTo {
    const target: PublishTarget = typeof room === "string" ? { room } : { rooms: [...room] };
    return { emit: (event, data, options) => this.publish(publishBody(target, event, data, options)) };
  }

  /** Emits to every socket of the user. */
  toUser(userId: string | number): PublishTo {
    return { emit: (event, data, options) => this.publish(publishBody({ user: String(userId) }, event, data, options)) };
  }

  /**
   * `POST /api/publish`. A body without `idempotencyKey` gets a random one,
   * so that a retry after a lost answer is a duplicate, not a second
   * delivery.
   */
  publish(body: Publish): Promise<Published> {
    const keyed = body.idempotencyKey === undefined ? { ...body, idempotencyKey: randomUUID() } : body;
    return this.call("POST", "/publish", { body: keyed, idempotent: true });
  }

  /** Ends every session of the user with `KICKED`, on every node. Not a revocation: they may connect again. */
  disconnectUser(userId: string | number): Promise<{ ended: number }> {
    return this.call("POST", `/users/${seg(userId)}/disconnect`, { idempotent: true });
  }

  /** Ends one session (`404 NOT_FOUND` when there is none). */
  kick(sessionId: string): Promise<{ ended: number }> {
    return this.call("DELETE", `/sessions/${seg(sessionId)}`, { idempotent: true });
  }

  /** Revokes one token until `expiresAt` (its `exp`, Unix seconds). */
  revokeToken(jti: string, expiresAt: number): Promise<Revocation> {
    return this.call("POST", "/revocations", { body: { jti, expiresAt }, idempotent: true });
  }

  /** Revokes every token of the user issued before `issuedBefore` (Unix seconds; default: until now). */
  revokeUser(userId: string | number, issuedBefore?: number): Promise<Revocation> {
    const body = issuedBefore === undefined ? { userId: String(userId) } : { userId: String(userId), issuedBefore };
    return this.call("POST", "/revocations", { body, idempotent: true });
  }

  /** The active revocations. */
  revocations(): Promise<Revocations> {
    return this.call("GET", "/revocations", { idempotent: true });
  }

  /** The live sessions, oldest first: the user's, or everyone's. */
  async sessions(userId?: string | number): Promise<Session[]> {
    const query = userId === undefined ? "" : `?user=${encodeURIComponent(String(userId))}`;
    const answer = await this.call<{ sessions: Session[] }>("GET", `/sessions${query}`, { idempotent: true });
    return answer.sessions;
  }

  /** The users present in `room`, sorted. */
  async members(room: string): Promise<string[]> {
    const answer = await this.call<{ members: string[] }>("GET", `/rooms/${seg(room)}/members`, { idempotent: true });
    return answer.members;
  }

  /** The sockets of `room`, to move them all into another room or out of it. */
  in(room: string): RoomSockets {
    const move = (action: "join" | "leave", other: string) =>
      this.call<{ moved: number }>("POST", `/rooms/${seg(other)}/${action}`, { body: { room }, idempotent: true });
    return { socketsJoin: (other) => move("join", other), socketsLeave: (other) => move("leave", other) };
  }

  private async call<T>(method: string, path: string, options: CallOptions): Promise<T> {
    const attempts = options.idempotent ? this.retries + 1 : 1;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.attempt<T>(method, path, options.body);
      } catch (err) {
        const again = err instanceof SockgateApiError && (err.code === "UNREACHABLE" || err.code === "TIMEOUT" || err.status === 503);
        if (!again || attempt >= attempts) throw err;
        await sleep(BACKOFF_MS * 2 ** (attempt - 1) * (0.5 + Math.random() / 2));
      }
    }
  }

  private async attempt<T>(method: string, path: string, body: unknown): Promise<T> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.apiKey}` };
    if (body !== undefined) headers["content-type"] = "application/json";
    let res: Response;
    let text: string;
    try {
      res = await fetch(this.base + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
        redirect: "manual",
      });
      text = await res.text();
    } catch (err) {
      throw networkError(err, this.timeoutMs);
    }
    const parsed = parseJson(text);
    if (res.ok && parsed !== undefined) return parsed as T;
    throw apiError(res.status, parsed);
  }
}

function publishBody(target: PublishTarget, event: string, data: unknown, options: PublishOptions = {}): Publish {
  return {
    ...target,
    event,
    ...(data === undefined ? {} : { data }),
    ...(options.idempotencyKey === undefined ? {} : { idempotencyKey: options.idempotencyKey }),
    ...(options.namespace === undefined ? {} : { namespace: options.namespace }),
  };
}

/** A path segment: ids and rooms may hold `/`, `?`, `#`. */
function seg(value: string | number): string {
  return encodeURIComponent(String(value));
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function apiError(status: number, body: unknown): SockgateApiError {
  const error = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  if (error && typeof error.code === "string") {
    return new SockgateApiError(error.code, status, typeof error.message === "string" ? error.message : error.code);
  }
  if (status >= 200 && status < 300) return new SockgateApiError("BAD_RESPONSE", status, "the answer is not JSON");
  return new SockgateApiError(status === 503 ? "UNAVAILABLE" : "BAD_RESPONSE", status, `HTTP ${status} without an API error`);
}

function networkError(err: unknown, timeoutMs: number): SockgateApiError {
  const name = (err as { name?: string } | null)?.name;
  if (name === "TimeoutError" || name === "AbortError") {
    return new SockgateApiError("TIMEOUT", 0, `no answer from sockgate within ${timeoutMs} ms`);
  }
  const cause = (err as { cause?: { code?: string; message?: string } } | null)?.cause;
  const why = cause?.code ?? cause?.message ?? (err instanceof Error ? err.message : String(err));
  return new SockgateApiError("UNREACHABLE", 0, `sockgate could not be reached (${why})`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
