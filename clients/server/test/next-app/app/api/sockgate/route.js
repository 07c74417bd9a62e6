// sockgate's events and connect hook, served by a Next.js App Router route
// handler: the Web form of createHandler is the route's POST, as is.
import { createHandler, SockgateError } from "@sockgate/server";

const handler = createHandler({
  secret: process.env.SOCKGATE_EVENTS_SECRET,
  events: {
    "chat:send": async (ctx, { room, text }) => {
      if (!ctx.rooms.includes(room)) throw new SockgateError("CHAT_FORBIDDEN", "join the room first");
      ctx.to(room).emit("chat:message", { from: ctx.userId, text });
      return { ok: true, via: "next" };
    },
    "chat:join": (ctx, room) => {
      ctx.join(room);
      ctx.emit("chat:joined", { room });
      return { ok: true };
    },
    "chat:crash": () => {
      throw new Error("next secret detail");
    },
  },
  connect: async ({ auth }) => {
    if (auth?.apiKey === "next-key") return { userId: "next-user", claims: { plan: "pro" } };
    throw new SockgateError("NOT_LOGGED_IN", "no key");
  },
  onError: (err) => console.error("sockgate handler error:", err.message),
});

export const POST = handler;
