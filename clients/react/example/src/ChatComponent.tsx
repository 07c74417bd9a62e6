import { useEffect, useState, type FormEvent } from "react";
import { useEvent, useRoom, useSockgate } from "@sockgate/react";

/** A message as the app's backend (example/backend.mjs) stores and sends it. */
interface ChatMessage {
  id: string;
  from: string;
  text: string;
  ts: number;
}

/** An error ack from sockgate or the backend. */
interface ErrorAck {
  ok: false;
  code: string;
  message: string;
}

const ACK_TIMEOUT_MS = 10000;

/** `list` with `more` added, each id once, in the order first seen. */
function merge(list: ChatMessage[], more: ChatMessage[]): ChatMessage[] {
  const seen = new Set(list.map((m) => m.id));
  return [...list, ...more.filter((m) => !seen.has(m.id) && seen.add(m.id))];
}

/**
 * A room's messages, who is there, and a box to write in. sockgate joins the
 * room and lists its members (useRoom); the messages go through the app's
 * backend: chat:send stores one and sends it to the room as chat:message,
 * chat:history gives what was said before this page joined.
 */
export function ChatComponent({ room }: { room: string }) {
  const { client, identity } = useSockgate();
  const { joined, members, error } = useRoom(room, { membersIntervalMs: 1000 });
  const [messages, setMessages] = useState<ChatMessage[]>([]);
  const [draft, setDraft] = useState("");
  const [sendError, setSendError] = useState<string | null>(null);

  useEvent("chat:message", (message: ChatMessage & { room: string }) => {
    if (message?.room === room) setMessages((prev) => merge(prev, [message]));
  });

  // Each join (the first, and after a reconnect) loads the room's history;
  // messages that arrived live meanwhile are kept, each once.
  useEffect(() => {
    if (!client || !joined) return;
    let live = true;
    client.socket
      .timeout(ACK_TIMEOUT_MS)
      .emitWithAck("chat:history", { room })
      .then(
        (ack: { messages: ChatMessage[] } | ErrorAck) => {
          if (!live) return;
          if ("messages" in ack) setMessages((prev) => merge(ack.messages, prev));
          else setSendError(`history: ${ack.code}`);
        },
        () => live && setSendError("history: no answer"),
      );
    return () => {
      live = false;
    };
  }, [client, joined, room]);

  async function send(e: FormEvent) {
    e.preventDefault();
    const text = draft.trim();
    if (!text || !client) return;
    try {
      const ack: { ok: true; id: string } | ErrorAck = await client.socket.timeout(ACK_TIMEOUT_MS).emitWithAck("chat:send", { room, text });
      if (!ack.ok) throw new Error(`${ack.code}: ${ack.message}`);
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
              <span className="text">{m.text}</span>
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
      {sendError && (
        <div className="error" data-testid="send-error">
          {sendError}
        </div>
      )}
    </>
  );
}
