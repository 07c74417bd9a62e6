// The calls sockgate makes to the app's backend and the answers it reads
// (docs/events.md). The Rust side is crates/core/src/hooks/.

/** A client event, as sockgate POSTs it. */
export interface EventCall {
  id: string;
  event: string;
  args: unknown[];
  userId: string;
  sessionId: string;
  claims: Record<string, unknown>;
  /** The socket's rooms, by their names in its namespace. */
  rooms: string[];
  /**
   * The socket's namespace: `"/"` for the main one, or one of
   * `[[namespaces]]` in full (`"/admin"`, `"/tenant-acme"`). Gateways older
   * than namespaces leave it out: read it as `"/"`.
   */
  namespace: string;
  transport: "websocket" | "polling";
  remoteAddr: string | null;
  ts: number;
}

/** A handshake for the connect hook. */
export interface ConnectCall {
  auth: Record<string, unknown> | null;
  headers: Record<string, string>;
  remoteAddr: string | null;
  transport: "websocket" | "polling";
}

/** A renewal, for the connect hook. */
export interface RenewCall {
  renew: { userId: string; sessionId: string; claims: Record<string, unknown>; expiresAt: number | null };
}

/** `{ room | rooms | user, event, data }`: a publish, as `/api/publish` takes it. */
export type PublishTarget = { room: string } | { rooms: string[] } | { user: string };
/**
 * A publish: `idempotencyKey` (1 to 128 bytes) makes a repeat within
 * sockgate's window a duplicate, delivered to nobody. `namespace` (`"/admin"`)
 * names the namespace whose rooms and user sockets it reaches; without it,
 * `/api/publish` sends to the main namespace, `/`.
 */
export type Publish = PublishTarget & { event: string; data?: unknown; idempotencyKey?: string; namespace?: string };

/**
 * A publish in an event's reply: `exceptSession` (the call's `sessionId`)
 * leaves that socket out. Without `namespace` it goes to the calling
 * socket's namespace (`"namespace": "/"` sends it to the main one).
 */
export type ReplyPublish = Publish & { exceptSession?: string };

/** The answer to an event. */
export interface EventReply {
  ack?: unknown;
  error?: { code: string; message: string };
  join?: string[];
  leave?: string[];
  emit?: { event: string; data?: unknown }[];
  publish?: ReplyPublish[];
  disconnect?: { message: string };
}

/** Who the connect hook says a connection is. */
export interface Identity {
  userId: string | number;
  expiresAt?: number;
  claims?: Record<string, unknown>;
  rooms?: string[];
}

/** The connect hook's answer. */
export type ConnectReply = Identity | { error: { code: string; message: string } };

/** An app's own error code: `[A-Z][A-Z0-9_]{0,63}`. */
export const APP_CODE = /^[A-Z][A-Z0-9_]{0,63}$/;
