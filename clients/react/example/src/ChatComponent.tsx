import { useState, type FormEvent } from "react";
import { useRoom, useSockgate } from "@sockgate/react";

interface ChatMessage {
  text: string;
}

/** A room's messages, who is there, and a box to write in. */
export function ChatComponent({ room }: { room: string }) {
  const { identity } = useSockgate();
  const { joined, messages, members, publish, error } = useRoom<ChatMessage>(room, { membersIntervalMs: 1000 });
  const [draft, setDraft] = useState("");
  const [sendError, setSendError] = useState<string | null>(null);

  async function send(e: FormEvent) {
    e.preventDefault();
    const text = draft.trim();
    if (!text) return;
    try {
      await publish({ text });
      setDraft("");
      setSendError(null);
    } catch (err) {
      setSendError(err instanceof Error ? err.message : String(err));
    }
  }

  return (
    <>
      {error && <div className="error">Cannot join {room}: {error.code}</div>}
      <div className="chat">
        <ul className="messages" data-testid="messages">
          {messages.map((m) => (
            <li key={m.id} className={m.from === identity?.userId ? "mine" : ""} data-from={m.from}>
              <span className="from">{m.from}</span>
              <span className="text">{m.data?.text}</span>
            </li>
          ))}
        </ul>
        <aside className="members">
          <h2>In the room</h2>
          <ul data-testid="members">
            {(members ?? []).map((m) => (
              <li key={m}>{m}</li>
            ))}
          </ul>
        </aside>
      </div>
      <form onSubmit={send}>
        <input data-testid="input" value={draft} onChange={(e) => setDraft(e.target.value)} placeholder={joined ? "Write a message" : "Joining…"} />
        <button data-testid="send" disabled={!joined}>
          Send
        </button>
      </form>
      {sendError && <div className="error">{sendError}</div>}
    </>
  );
}
