// The example chat: a page of an app whose backend hands out tokens at
// /token (for the user named in ?user=) and whose gateway is sockgate.
import { StrictMode, useState } from "react";
import { createRoot } from "react-dom/client";
import { SockgateProvider } from "@sockgate/react";
import { App } from "./App";

declare global {
  interface Window {
    SOCKGATE_CONFIG: { gatewayUrl: string; room: string };
  }
}

const { gatewayUrl, room } = window.SOCKGATE_CONFIG;

/** Asks the app's backend for a token; null when nobody is logged in. */
async function fetchToken(user: string | null): Promise<string | null> {
  if (!user) return null;
  const res = await fetch(`/token?user=${encodeURIComponent(user)}`);
  if (res.status === 401) return null;
  if (!res.ok) throw new Error(`token endpoint answered ${res.status}`);
  return (await res.json()).token;
}

function Root() {
  // Who is logged in: here from ?user=, in a real app from its session.
  const [user, setUser] = useState<string | null>(() => new URLSearchParams(location.search).get("user") ?? "alice");
  return (
    // A new `user` closes the old connection and opens one for the new user.
    <SockgateProvider url={gatewayUrl} user={user} getToken={() => fetchToken(user)}>
      <App room={room} onSignOut={() => setUser(null)} />
    </SockgateProvider>
  );
}

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <Root />
  </StrictMode>,
);
