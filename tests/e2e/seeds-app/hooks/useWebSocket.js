"use client";
import { getSession, useSession } from "next-auth/react";
import { useEffect, useState } from "react";
import { connectSocket, disconnectSocket } from "@/lib/socket";

/** The page's connection: its state, the notifications the backend pushed, the expiry warnings and token refreshes. */
export function useWebSocket(url) {
  const { status } = useSession();
  const [socket, setSocket] = useState(null);
  const [connected, setConnected] = useState(false);
  const [error, setError] = useState(null);
  const [socketId, setSocketId] = useState(null);
  const [connects, setConnects] = useState(0);
  const [notifications, setNotifications] = useState([]);
  const [warnings, setWarnings] = useState([]);
  const [refreshes, setRefreshes] = useState([]);

  useEffect(() => {
    if (status !== "authenticated") return;
    const s = connectSocket(url);
    setSocket(s);
    const onConnect = () => {
      setConnected(true);
      setError(null);
      setSocketId(s.id);
      setConnects((n) => n + 1);
    };
    const onConnectError = (err) => {
      setConnected(false);
      setError(err.message);
    };
    const onDisconnect = () => setConnected(false);
    const onNotification = (data) => setNotifications((list) => [...list, data]);
    // sockgate warns before the token expires; swap it in place, no reconnect.
    const onExpiring = async (warning) => {
      setWarnings((list) => [...list, warning]);
      const session = await getSession();
      s.emit("auth:refresh", { token: session?.accessToken }, (ack) => {
        setRefreshes((list) => [...list, ack]);
        if (!ack?.ok) setError(ack?.code ?? "REFRESH_FAILED");
      });
    };
    s.on("connect", onConnect);
    s.on("connect_error", onConnectError);
    s.on("disconnect", onDisconnect);
    s.on("notification", onNotification);
    s.on("auth:expiring", onExpiring);
    if (s.connected) onConnect();
    return () => {
      s.off("connect", onConnect);
      s.off("connect_error", onConnectError);
      s.off("disconnect", onDisconnect);
      s.off("notification", onNotification);
      s.off("auth:expiring", onExpiring);
      disconnectSocket();
    };
  }, [status, url]);

  return { socket, connected, error, socketId, connects, notifications, warnings, refreshes };
}
