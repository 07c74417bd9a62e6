// One Socket.IO connection for the page, to sockgate instead of the old
// Node socket.io server.
import { getSession } from "next-auth/react";
import { io } from "socket.io-client";

let socket = null;

export function connectSocket(url) {
  if (socket) return socket;
  socket = io(url, {
    // A callback, not a captured token: socket.io-client calls it on every
    // (re)connection, so a reconnect after a restart or an expiry sends the
    // session's current token instead of the one the page loaded with.
    auth: (cb) => getSession().then((session) => cb({ token: session?.accessToken })),
    // No reconnectionAttempts: after a gateway outage longer than a few
    // attempts the page would stay disconnected until reloaded.
    reconnection: true,
    reconnectionDelay: 1000,
    reconnectionDelayMax: 5000,
  });
  return socket;
}

export function getSocket() {
  return socket;
}

export function disconnectSocket() {
  socket?.disconnect();
  socket = null;
}
