import Link from "next/link";

export default function Home() {
  return (
    <main>
      <h1>seeds app</h1>
      <ul>
        <li><Link href="/login">Log in</Link></li>
        <li><Link href="/realtime">Realtime (socket.io-client, token in the session)</Link></li>
        <li><Link href="/sdk">Realtime (@sockgate/react, cookie mode)</Link></li>
      </ul>
    </main>
  );
}
