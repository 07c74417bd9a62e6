// The wire protocol of sockgate, as the server defines it in
// crates/protocol. Keep this file in step with it: crates/protocol/tests/
// contract.rs parses `CODES` (one code per line, in the order of
// `ErrorCode::ALL`), `CLIENT_EVENTS` and `SERVER_EVENTS`, and fails when
// they drift from the server's.

/**
 * Every error code sockgate sends, with its class. A retryable code means the
 * same client succeeds later without changing anything (the SDK reconnects
 * with backoff); a terminal one means something has to change first (a new
 * token, a new login, an operator), so the SDK ends the client.
 */
export const CODES = {
  AUTH_REQUIRED: "terminal",
  TOKEN_INVALID: "terminal",
  TOKEN_EXPIRED: "terminal",
  TOKEN_NOT_YET_VALID: "terminal",
  CLAIMS_INVALID: "terminal",
  AUTH_UNAVAILABLE: "retryable",
  TOKEN_REVOKED: "terminal",
  SUBJECT_MISMATCH: "terminal",
  TOKEN_NOT_NEWER: "terminal",
  SESSION_LIMIT: "terminal",
  SESSION_EXPIRED: "retryable",
  SESSION_EVICTED: "terminal",
  KICKED: "terminal",
  UNAUTHORIZED: "terminal",
  INVALID_REQUEST: "terminal",
  PAYLOAD_TOO_LARGE: "terminal",
  NOT_FOUND: "terminal",
  INTERNAL: "retryable",
  FORBIDDEN: "terminal",
  ROOM_INVALID: "terminal",
  ROOM_LIMIT: "terminal",
  RATE_LIMITED: "retryable",
  CONNECTION_LIMIT: "retryable",
  ORIGIN_FORBIDDEN: "terminal",
  SERVER_SHUTDOWN: "retryable",
  UNKNOWN_EVENT: "terminal",
  BACKEND_TIMEOUT: "retryable",
  BACKEND_UNAVAILABLE: "retryable",
  BACKEND_ERROR: "terminal",
  ENDED_BY_APP: "terminal",
  NAMESPACE_FORBIDDEN: "terminal",
} as const;

/** A code sockgate sends. */
export type ErrorCode = keyof typeof CODES;

/** Whether a client refused or ended with a code should come back by itself. */
export type ErrorClass = (typeof CODES)[ErrorCode];

/** Events the client emits, each answered with an ack. */
export const CLIENT_EVENTS = {
  whoami: "auth:whoami",
  refresh: "auth:refresh",
  ticket: "auth:ticket",
  join: "room:join",
  leave: "room:leave",
  publish: "room:publish",
  members: "room:members",
  history: "room:history",
  echo: "echo",
} as const;

/** Events the server emits. */
export const SERVER_EVENTS = {
  expiring: "auth:expiring",
  message: "room:message",
  revoked: "room:revoked",
  end: "session:end",
  joined: "room:joined",
  left: "room:left",
} as const;

/** True for a code sockgate defines. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === "string" && Object.prototype.hasOwnProperty.call(CODES, code);
}

/** The class of a code, or undefined for a code sockgate does not define. */
export function classOf(code: string): ErrorClass | undefined {
  return isErrorCode(code) ? CODES[code] : undefined;
}

/** The answer to `auth:whoami`: the verified identity of the connection. */
export interface Identity {
  userId: string;
  /** The session's public id (the admin API's), not `socket.id`. */
  sessionId: string;
  /** The current token's `exp`, Unix seconds, or null for a token without one. */
  expiresAt: number | null;
  claims: Record<string, unknown>;
}

/** `auth:expiring`. */
export interface Expiring {
  expiresAt: number;
  secondsLeft: number;
}

/** `room:message`. */
export interface RoomMessage<T = unknown> {
  id: string;
  room: string;
  /** The sender's user id, set by the server. */
  from: string;
  data: T;
  /** Unix milliseconds. */
  ts: number;
}

/** `room:joined` and `room:left`, in rooms with presence events. */
export interface RoomPresence {
  room: string;
  userId: string;
}

/** `room:revoked`. */
export interface RoomRevoked {
  room: string;
}

/** `session:end`. */
export interface SessionEnd {
  code: ErrorCode;
  message: string;
  reconnect: boolean;
}

/** A refused ack: `{ ok: false, code, message }`. */
export interface Refusal {
  ok: false;
  code: ErrorCode;
  message: string;
}

/** `auth:refresh` (and `POST /auth/refresh`) answers. */
export type RefreshAck = { ok: true; expiresAt: number | null } | Refusal;

/** `room:join` answers: `members` is how many users are in the room, on every node of a cluster. */
export interface JoinAck {
  ok: true;
  room: string;
  members: number;
}

/** `room:leave` answers. */
export interface LeaveAck {
  ok: true;
}

/** `room:publish` answers. */
export interface PublishAck {
  ok: true;
  id: string;
}

/** `room:members` answers: user ids, sorted, without duplicates. */
export interface MembersAck {
  ok: true;
  room: string;
  members: string[];
}

/** One message the history keeps of a room. */
export interface HistoryMessage<T = unknown> {
  /** Its offset (`{ms}-{seq}`). */
  offset: string;
  event: string;
  data: T;
}

/** `room:history`: the newest messages kept of a room, oldest first. */
export interface HistoryAck<T = unknown> {
  ok: true;
  room: string;
  messages: HistoryMessage<T>[];
  /** The history's newest offset: the `since` of the next ask (null while empty). */
  offset: string | null;
  /** The history's identity: offsets of another epoch mean nothing. */
  epoch: string;
  /** Whether every message after `since` is still kept. */
  complete: boolean;
}
