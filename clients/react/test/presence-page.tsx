// The page of test/presence.test.mjs: useRoom's member list with no polling
// (membersIntervalMs 0) and no refreshMembers call, so after the one
// `room:members` asked at join only `room:joined` and `room:left` can change
// it. Bundled by the test from useRoom's source (../src), not from dist.
import { useEffect } from "react";
import { createRoot } from "react-dom/client";
import { SockgateProvider, useRoom, useSockgate } from "../src/index";

declare global {
  interface Window {
    PRESENCE_CONFIG: { gatewayUrl: string; token: string; room: string };
    /** How many `room:members` the page's socket sent. */
    membersAsks: number;
  }
}

const { gatewayUrl, token, room } = window.PRESENCE_CONFIG;
window.membersAsks = 0;

function Members() {
  const { client, state } = useSockgate();
  const { joined, members } = useRoom(room, { membersIntervalMs: 0 });
  useEffect(() => {
    if (!client) return;
    const count = (event: string) => {
      if (event === "room:members") window.membersAsks += 1;
    };
    client.socket.onAnyOutgoing(count);
    return () => {
      client.socket.offAnyOutgoing(count);
    };
  }, [client]);
  return (
    <main>
      <p data-testid="state">{state}</p>
      <p data-testid="joined">{String(joined)}</p>
      {members && (
        <ul data-testid="members">
          {members.map((userId) => (
            <li key={userId}>{userId}</li>
          ))}
        </ul>
      )}
    </main>
  );
}

createRoot(document.getElementById("root")!).render(
  <SockgateProvider url={gatewayUrl} getToken={() => token}>
    <Members />
  </SockgateProvider>,
);
