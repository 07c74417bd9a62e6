import { useEffect, useState } from "react";
import { useEvent, useSockgate, type SockgateClient } from "@sockgate/react";
import { ChatComponent } from "./ChatComponent";

declare global {
  interface Window {
    /** Every state the page showed, for the browser tests. */
    shownStates: string[];
    /** Every state the client went through, rendered or not. */
    clientStates: string[];
    /** The provider's client, for the browser tests to inspect. */
    sockgateClient: SockgateClient | null;
  }
}
window.shownStates = [];
window.clientStates = [];

export function App({ room, onSignOut }: { room: string; onSignOut: () => void }) {
  const { client, state, error, identity } = useSockgate();
  const [refreshes, setRefreshes] = useState(0);
  const [notice, setNotice] = useState<string | null>(null);

  // Pushed by the app's backend through sockgate's admin API (/api/publish).
  useEvent("notification", (data: { text: string }) => setNotice(data.text));

  useEffect(() => {
    if (window.shownStates[window.shownStates.length - 1] !== state) window.shownStates.push(state);
  }, [state]);

  useEffect(() => {
    window.sockgateClient = client;
    if (!client) return;
    const offState = client.on("state", (s) => window.clientStates.push(s));
    const offRefresh = client.on("refresh", (r) => r.ok && setRefreshes((n) => n + 1));
    return () => {
      offState();
      offRefresh();
    };
  }, [client]);

  return (
    <div className="app">
      <header>
        <h1>#{room}</h1>
        <span className={`state ${state}`} data-testid="state">
          {state}
        </span>
        <button className="signout" data-testid="signout" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      <div className="meta">
        <span>
          signed in as <b data-testid="user">{identity?.userId ?? "…"}</b>
        </span>
        <span>
          token renewals: <b data-testid="refreshes">{refreshes}</b>
        </span>
      </div>
      {notice && (
        <div className="notice" data-testid="notice">
          {notice}
        </div>
      )}
      {error && (
        <div className="error" data-testid="error">
          {error.ended ? "Disconnected for good: " : state === "connecting" ? "Cannot connect yet: " : "Reconnecting after "}
          <b data-testid="error-code">{error.code}</b> ({error.message})
        </div>
      )}
      {state !== "ended" && <ChatComponent room={room} />}
    </div>
  );
}
