"use client";
import { useSession } from "next-auth/react";
import { useState } from "react";
import { useWebSocket } from "@/hooks/useWebSocket";

export default function Realtime({ url }) {
  const { data: session } = useSession({ required: true });
  const { socket, connected, error, socketId, connects, notifications, warnings, refreshes } = useWebSocket(url);
  const [whoami, setWhoami] = useState({ asked: 0, answer: null });

  async function askWhoami() {
    const answer = await socket.emitWithAck("auth:whoami");
    setWhoami((w) => ({ asked: w.asked + 1, answer }));
  }

  return (
    <main>
      <h1>Hello {session?.user?.name}</h1>
      <p>{connected ? "Connected" : "Disconnected"}{error && ` (${error})`}</p>
      <ul id="notifications">
        {notifications.map((n, i) => (
          <li key={i}>{n.title}</li>
        ))}
      </ul>
      <button type="button" onClick={askWhoami} disabled={!connected}>
        Who am I
      </button>
      <pre id="whoami" data-asked={whoami.asked}>
        {JSON.stringify(whoami.answer)}
      </pre>
      <pre id="state">{JSON.stringify({ connected, error, socketId, connects, notifications, warnings, refreshes })}</pre>
    </main>
  );
}
