// The page of test/history.test.mjs: useRoom(room, { history: 2 }) listing
// its messages. Bundled by the test from useRoom's source (../src), not from
// dist. With `gate` set, the page's room:history is held until the test
// releases it (window.releaseHistory), so a message can be published, and
// received live, after the join but before the history is asked: it then
// comes both ways and must be listed once.
import { createRoot } from "react-dom/client";
import { SockgateClient } from "@sockgate/client";
import { SockgateProvider, useRoom, useSockgate } from "../src/index";

declare global {
  interface Window {
    HISTORY_CONFIG: { gatewayUrl: string; token: string; room: string; gate: boolean; maxMessages?: number };
    /** How many `room:history` the page asked (counted before any gate). */
    historyAsks: number;
    /** Lets a held `room:history` go. */
    releaseHistory: () => void;
  }
}

const { gatewayUrl, token, room, gate, maxMessages } = window.HISTORY_CONFIG;
window.historyAsks = 0;
let release!: () => void;
const released = new Promise<void>((resolve) => (release = resolve));
window.releaseHistory = release;

const history = SockgateClient.prototype.history;
SockgateClient.prototype.history = async function (this: SockgateClient, ...args: Parameters<typeof history>) {
  window.historyAsks += 1;
  if (gate) await released;
  return history.apply(this, args);
} as typeof history;

function Messages() {
  const { state } = useSockgate();
  const { joined, messages } = useRoom<{ text: string }>(room, { history: 2, presence: false, maxMessages });
  return (
    <main>
      <p data-testid="state">{state}</p>
      <p data-testid="joined">{String(joined)}</p>
      <ul data-testid="messages">
        {messages.map((m, i) => (
          <li key={`${m.id}#${i}`} data-id={m.id}>
            {m.data.text}
          </li>
        ))}
      </ul>
    </main>
  );
}

createRoot(document.getElementById("root")!).render(
  <SockgateProvider url={gatewayUrl} getToken={() => token}>
    <Messages />
  </SockgateProvider>,
);
