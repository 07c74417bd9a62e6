// The example chat: a page of an app whose backend hands out tokens at
// /token (for the user named in ?user=) and whose gateway is sockgate.
import { StrictMode, useState } from "react";
import { createRoot } from "react-dom/client";
import { nextAuth, SockgateProvider } from "@sockgate/react";
import { App } from "./App";

declare global {
  interface Window {
    SOCKGATE_CONFIG: { gatewayUrl: string; cookieGatewayUrl?: string; room: string };
  }
}

const { gatewayUrl, cookieGatewayUrl } = window.SOCKGATE_CONFIG;
const params = new URLSearchParams(location.search);
// ?room= opens another room than the app's default one.
const room = params.get("room") ?? window.SOCKGATE_CONFIG.room;
// ?mode=cookie: the app's Next-Auth session cookie (HTTP-only) is the
// credential; the page never sees a token.
const cookieMode = params.get("mode") === "cookie";

/** Like next-auth/react's getSession: reading the session also rotates its cookie. */
async function getSession() {
  const res = await fetch("/api/auth/session");
  return res.ok ? res.json() : null;
}

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
  const [user, setUser] = useState<string | null>(() => params.get("user") ?? "alice");
  const signOut = async () => {
    if (cookieMode) await fetch("/api/auth/signout", { method: "POST" });
    setUser(null);
  };
  if (cookieMode) {
    return (
      <SockgateProvider url={cookieGatewayUrl!} user={user} {...nextAuth(getSession, { mode: "cookie" })}>
        <App room={room} onSignOut={signOut} />
      </SockgateProvider>
    );
  }
  return (
    // A new `user` closes the old connection and opens one for the new user.
    <SockgateProvider url={gatewayUrl} user={user} getToken={() => fetchToken(user)}>
      <App room={room} onSignOut={signOut} />
    </SockgateProvider>
  );
}

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <Root />
  </StrictMode>,
);
