"use client";
import { nextAuth, SockgateProvider, useEvent, useSockgate } from "@sockgate/react";
import { getSession, useSession } from "next-auth/react";
import { useState } from "react";

// Cookie mode: the browser's HTTP-only Next-Auth cookie authenticates the
// socket; the page never holds a token.
export default function Sdk({ url }) {
  const { data: session, status } = useSession({ required: true });
  if (status !== "authenticated") return <p>Loading…</p>;
  return (
    <SockgateProvider url={url} user={session.user.id} {...nextAuth(getSession, { mode: "cookie" })}>
      <Status />
    </SockgateProvider>
  );
}

function Status() {
  const { state, identity, error } = useSockgate();
  const [notifications, setNotifications] = useState([]);
  useEvent("notification", (data) => setNotifications((list) => [...list, data]));
  return (
    <main>
      <h1>{state}</h1>
      <pre id="sdk">{JSON.stringify({ state, identity, error, notifications })}</pre>
    </main>
  );
}
