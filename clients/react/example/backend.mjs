// The example chat's backend, on @sockgate/server: sockgate sends it the
// chat events it does not handle itself (chat:send, chat:history). Messages
// are kept in memory, one list per room, so a page that joins later can load
// what was said before it came.
import { createHandler, SockgateError } from "@sockgate/server";

/** How many messages chat:history gives back. */
export const HISTORY_LENGTH = 50;

/**
 * The backend for `secret` (SOCKGATE_EVENTS_SECRET). `calls` lists every call
 * that reached a handler, so only calls whose signature was verified.
 */
export function createChatBackend({ secret }) {
  const rooms = new Map(); // room → [{ id, from, text, ts }], oldest first
  const calls = [];
  let lastId = 0;

  const send = (ctx, { room, text } = {}) => {
    calls.push({ event: ctx.event, userId: ctx.userId });
    // The gateway's room policy decided who may join; only members may write.
    if (!ctx.rooms.includes(room)) throw new SockgateError("NOT_IN_ROOM", "join first");
    if (typeof text !== "string" || !text.trim()) throw new SockgateError("EMPTY_MESSAGE", "nothing to send");
    const message = { id: `m${++lastId}`, from: ctx.userId, text, ts: Date.now() };
    if (!rooms.has(room)) rooms.set(room, []);
    rooms.get(room).push(message);
    ctx.to(room).emit("chat:message", { room, ...message });
    return { ok: true, id: message.id };
  };

  const history = (ctx, { room } = {}) => {
    calls.push({ event: ctx.event, userId: ctx.userId });
    if (!ctx.rooms.includes(room)) throw new SockgateError("NOT_IN_ROOM", "join first");
    return { messages: (rooms.get(room) ?? []).slice(-HISTORY_LENGTH) };
  };

  const handler = createHandler({ secret, events: { "chat:send": send, "chat:history": history } });
  return { handler, rooms, calls };
}
