// What an event handler gets: the call's fields, and helpers that build the
// reply's effects (docs/events.md, "The answer"). sockgate applies them, in
// the order of each list, before it sends the ack.
import type { EventCall, EventReply, PublishTarget, ReplyPublish } from "./protocol";

/** Emits to rooms or a user, through sockgate's publish path. */
export interface Target {
  emit(event: string, data?: unknown): void;
}

/** The context of one event: who sent it, and what its answer does. */
export interface EventContext {
  /** Unique per call: use it to make a retried operation idempotent. */
  readonly id: string;
  readonly event: string;
  readonly userId: string;
  readonly sessionId: string;
  /** The session's claims, without credentials. */
  readonly claims: Record<string, unknown>;
  /** The socket's rooms when it sent the event, its own user room first, by their names in its namespace. */
  readonly rooms: readonly string[];
  readonly transport: "websocket" | "polling";
  readonly remoteAddr: string | null;
  /**
   * The socket's Socket.IO namespace: `"/"` (the main one, and what a
   * gateway older than namespaces means), or e.g. `"/admin"`. `join`,
   * `leave` and the publishes of the answer apply to it.
   */
  readonly namespace: string;
  /** When sockgate received the event, Unix milliseconds. */
  readonly ts: number;
  /** This socket joins `room` (the room policy is not asked: your backend decides). */
  join(room: string): void;
  /** This socket leaves `room`. */
  leave(room: string): void;
  /** Emits `event` to this socket only. */
  emit(event: string, data?: unknown): void;
  /** Emits to every socket in `room` (or in any of `rooms`, once each), on every node: Socket.IO's `io.to(room)`, the sender included. */
  to(room: string | readonly string[]): Target;
  /** The same, but for the socket that sent the event: Socket.IO's `socket.to(room)` and `socket.broadcast.to(room)`. */
  readonly broadcast: { to(room: string | readonly string[]): Target };
  /** Emits to every socket of the user `userId`. */
  toUser(userId: string | number): Target;
  /** Ends this session: the client gets `session:end { code: "ENDED_BY_APP", message }`. */
  disconnect(message?: string): void;
}

/** The reply an event handler's helpers built so far. */
export interface Effects {
  join: string[];
  leave: string[];
  emit: { event: string; data?: unknown }[];
  publish: ReplyPublish[];
  disconnect?: { message: string };
}

/**
 * A context for `call`, and its effects. Once `seal()` is called (the
 * reply is on its way, or the handler ran out of time), the helpers throw:
 * an effect added then would be silently lost.
 */
export function createContext(call: EventCall): { ctx: EventContext; effects: Effects; seal: () => void } {
  const effects: Effects = { join: [], leave: [], emit: [], publish: [] };
  let sealed = false;
  const add = (apply: () => void) => {
    if (sealed) throw new Error(`the reply to "${call.event}" (call ${call.id}) was already sent: this effect would be lost`);
    apply();
  };
  const publishTo = (target: PublishTarget, but?: { exceptSession: string }): Target => ({
    emit: (event, data) => add(() => effects.publish.push({ ...target, event, ...withData(data), ...but })),
  });
  const rooms = (room: string | readonly string[]): PublishTarget =>
    typeof room === "string" ? { room } : { rooms: [...room] };
  const ctx: EventContext = {
    id: call.id,
    event: call.event,
    userId: call.userId,
    sessionId: call.sessionId,
    claims: call.claims ?? {},
    rooms: call.rooms ?? [],
    transport: call.transport,
    remoteAddr: call.remoteAddr ?? null,
    namespace: typeof call.namespace === "string" && call.namespace !== "" ? call.namespace : "/",
    ts: call.ts,
    join: (room) => add(() => effects.join.push(room)),
    leave: (room) => add(() => effects.leave.push(room)),
    emit: (event, data) => add(() => effects.emit.push({ event, ...withData(data) })),
    to: (room) => publishTo(rooms(room)),
    broadcast: { to: (room) => publishTo(rooms(room), { exceptSession: call.sessionId }) },
    toUser: (userId) => publishTo({ user: String(userId) }),
    disconnect: (message = "ended by the app") => add(() => (effects.disconnect = { message })),
  };
  return { ctx, effects, seal: () => (sealed = true) };
}

/** The reply for a handler's return value and its effects: empty lists left out. */
export function buildReply(ack: unknown, effects: Effects): EventReply {
  const reply: EventReply = {};
  if (ack !== undefined) reply.ack = ack;
  if (effects.join.length) reply.join = effects.join;
  if (effects.leave.length) reply.leave = effects.leave;
  if (effects.emit.length) reply.emit = effects.emit;
  if (effects.publish.length) reply.publish = effects.publish;
  if (effects.disconnect) reply.disconnect = effects.disconnect;
  return reply;
}

// `data` left out is `null` for sockgate; say nothing rather than `undefined`.
function withData(data: unknown): { data?: unknown } {
  return data === undefined ? {} : { data };
}
