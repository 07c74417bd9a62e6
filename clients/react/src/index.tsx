import {
  createContext,
  useCallback,
  useContext,
  useEffect,
  useMemo,
  useRef,
  useState,
  type ReactNode,
} from "react";
import {
  createClient,
  SockgateError,
  type AnyErrorCode,
  type ClientOptions,
  type Identity,
  type PublishAck,
  type RoomMessage,
  type RoomPresence,
  type RoomRevoked,
  type SockgateClient,
  type State,
} from "@sockgate/client";

export type { AnyErrorCode, ClientOptions, ErrorCode, Identity, RoomMessage, SockgateClient, State, StateInfo } from "@sockgate/client";
export { CODES, SockgateError, nextAuth, nextAuthToken } from "@sockgate/client";

/**
 * Why the client is not connected: the terminal end, or the last failure
 * while retrying, a server code or the SDK's own (`UNREACHABLE` when the
 * gateway could not be reached or refused the page's origin).
 */
export interface SockgateErrorInfo {
  code: AnyErrorCode;
  message: string;
  /** True once the client has ended for good (`state === "ended"`). */
  ended: boolean;
}

/** What `useSockgate()` gives. */
export interface SockgateValue {
  /** The client of the nearest provider (null before its first effect ran). */
  client: SockgateClient | null;
  state: State;
  error: SockgateErrorInfo | null;
  identity: Identity | null;
}

const Context = createContext<SockgateValue | null>(null);

export interface SockgateProviderProps extends ClientOptions {
  /** The gateway URL. Changing it closes the old client and connects a new one. */
  url: string;
  /**
   * Who is logged in (any stable key, e.g. the user id from your session).
   * Changing it closes the old client and connects a new one, so a logout or
   * a switch of account never keeps the previous user's socket. Null or
   * undefined is a valid value too.
   */
  user?: string | null;
  children?: ReactNode;
}

interface Held {
  key: string;
  client: SockgateClient;
  closeTimer?: ReturnType<typeof setTimeout>;
}

/**
 * Holds one sockgate client for its children. `getToken` and
 * `refreshSession` may change on every render (the latest is called); the
 * other options are read when the client is created, which happens again
 * only when `url`, `user`, `withCredentials` or whether there is a
 * `getToken` changes.
 *
 * Under React's StrictMode the effect runs twice; the close of the first run
 * is deferred and cancelled by the second, so one socket is ever opened.
 */
export function SockgateProvider({ url, user, children, getToken, refreshSession, ...options }: SockgateProviderProps) {
  const latest = useRef({ getToken, refreshSession, options });
  latest.current = { getToken, refreshSession, options };
  const held = useRef<Held | null>(null);
  const [client, setClient] = useState<SockgateClient | null>(null);
  const hasToken = typeof getToken === "function";
  const key = JSON.stringify([url, user ?? null, hasToken, !!options.withCredentials]);

  useEffect(() => {
    let h = held.current;
    if (h && h.key === key) {
      clearTimeout(h.closeTimer);
      h.closeTimer = undefined;
    } else {
      if (h) {
        clearTimeout(h.closeTimer);
        h.client.close();
      }
      const l = latest.current;
      const created = createClient(url, {
        ...l.options,
        getToken: hasToken ? () => latest.current.getToken!() : undefined,
        refreshSession: () => latest.current.refreshSession?.(),
      });
      h = held.current = { key, client: created };
    }
    const mine = h;
    setClient(mine.client);
    return () => {
      mine.closeTimer = setTimeout(() => {
        mine.client.close();
        if (held.current === mine) held.current = null;
      }, 0);
    };
    // `key` stands for url, user, hasToken and withCredentials.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key]);

  const snapshot = useClientSnapshot(client);
  const value = useMemo<SockgateValue>(() => ({ client, ...snapshot }), [client, snapshot]);
  return <Context.Provider value={value}>{children}</Context.Provider>;
}

type Snapshot = Omit<SockgateValue, "client">;

function read(client: SockgateClient | null): Snapshot {
  if (!client) return { state: "connecting", error: null, identity: null };
  const { state, info, ended, identity } = client;
  let error: SockgateErrorInfo | null = null;
  if (ended) error = { ...ended, ended: true };
  else if (state !== "connected" && info.code) error = { code: info.code, message: info.message ?? "", ended: false };
  return { state, error, identity };
}

function useClientSnapshot(client: SockgateClient | null): Snapshot {
  const [snapshot, setSnapshot] = useState(() => read(client));
  useEffect(() => {
    setSnapshot(read(client));
    if (!client) return;
    const update = () => setSnapshot(read(client));
    const offs = [client.on("state", update), client.on("identity", update)];
    return () => offs.forEach((off) => off());
  }, [client]);
  return snapshot;
}

/** The provider's `{ client, state, error, identity }`. */
export function useSockgate(): SockgateValue {
  const value = useContext(Context);
  if (!value) throw new Error("useSockgate must be used inside <SockgateProvider>");
  return value;
}

/**
 * Listens to a Socket.IO event of the provider's socket while the component
 * is mounted. The latest `handler` is called; the listener is removed on
 * unmount and moved when the client changes.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function useEvent<Args extends any[] = any[]>(name: string, handler: (...args: Args) => void): void {
  const { client } = useSockgate();
  const ref = useRef(handler);
  useEffect(() => {
    ref.current = handler;
  });
  useEffect(() => {
    if (!client) return;
    const listener = (...args: Args) => ref.current(...args);
    client.socket.on(name, listener);
    return () => {
      client.socket.off(name, listener);
    };
  }, [client, name]);
}

export interface UseRoomOptions {
  /** How many messages to keep (the newest), default 200. */
  maxMessages?: number;
  /** Ask `room:members` when joined (needs the `presence` right), default true. */
  presence?: boolean;
  /** Also ask it every this many ms while joined; 0 (default) for only at join. */
  membersIntervalMs?: number;
  /**
   * Load the room's last this many messages (`room:history`, at most 100)
   * after the first join, before the live ones; 0 (default) for none. Read
   * at that join. Where the gateway keeps nothing (`NOT_FOUND`) or the ask
   * fails, `messages` holds only the live ones.
   */
  history?: number;
}

export interface RoomValue<T> {
  /** True while the socket is in the room. Rejoined after every reconnect. */
  joined: boolean;
  /** Messages of this room since the component mounted (after the `history` loaded, if asked), the sender's own included. */
  messages: RoomMessage<T>[];
  /** The users in the room, or null when unknown (no presence right); kept live by `room:joined` and `room:left` in rooms with presence events. */
  members: string[] | null;
  /** Publishes to the room; the message is added to `messages` once acked. Throws a SockgateError. */
  publish: (data: T) => Promise<PublishAck>;
  /** Why the room could not be joined (or was revoked), else null. */
  error: SockgateError | null;
  /** Asks `room:members` again. */
  refreshMembers: () => Promise<void>;
}

/**
 * Joins `room` while mounted and connected (again after each reconnect),
 * collects its messages and members, and leaves it on unmount.
 */
export function useRoom<T = unknown>(room: string | null | undefined, options: UseRoomOptions = {}): RoomValue<T> {
  const { client, state } = useSockgate();
  const { maxMessages = 200, presence = true, membersIntervalMs = 0 } = options;
  const connected = state === "connected";
  const [joined, setJoined] = useState(false);
  const [messages, setMessages] = useState<RoomMessage<T>[]>([]);
  const [members, setMembers] = useState<string[] | null>(null);
  const [error, setError] = useState<SockgateError | null>(null);
  const pendingLeave = useRef<{ client: SockgateClient; room: string; timer: ReturnType<typeof setTimeout> } | null>(null);
  const max = useRef(maxMessages);
  max.current = maxMessages;
  const historyLimit = useRef(0);
  historyLimit.current = Math.min(100, Math.max(0, Math.floor(Number(options.history) || 0)));
  // Which client and room the history was asked for: once per pair, and a
  // late answer for another pair is dropped.
  const historyFor = useRef<{ client: SockgateClient; room: string } | null>(null);

  const add = useCallback((message: RoomMessage<T>) => {
    setMessages((prev) => (prev.some((m) => m.id === message.id) ? prev : [...prev, message].slice(-max.current)));
  }, []);

  // A new room or client starts from scratch.
  useEffect(() => {
    historyFor.current = null;
    setMessages([]);
    setMembers(null);
    setJoined(false);
    setError(null);
  }, [client, room]);

  useEffect(() => {
    if (!client || !room) return;
    const onMessage = (message: RoomMessage<T>) => {
      if (message?.room === room) add(message);
    };
    const onRevoked = (revoked: RoomRevoked) => {
      if (revoked?.room !== room) return;
      setJoined(false);
      setError(new SockgateError("FORBIDDEN", `the refreshed token no longer allows room ${room}`));
    };
    // Rooms with presence events keep the member list live.
    const onJoined = (p: RoomPresence) => {
      if (p?.room === room) setMembers((prev) => (prev && !prev.includes(p.userId) ? [...prev, p.userId].sort() : prev));
    };
    const onLeft = (p: RoomPresence) => {
      if (p?.room === room) setMembers((prev) => (prev ? prev.filter((u) => u !== p.userId) : prev));
    };
    client.socket.on("room:message", onMessage);
    client.socket.on("room:revoked", onRevoked);
    client.socket.on("room:joined", onJoined);
    client.socket.on("room:left", onLeft);
    return () => {
      client.socket.off("room:message", onMessage);
      client.socket.off("room:revoked", onRevoked);
      client.socket.off("room:joined", onJoined);
      client.socket.off("room:left", onLeft);
    };
  }, [client, room, add]);

  const refreshMembers = useCallback(async () => {
    if (!client || !room || !presence) return;
    try {
      setMembers((await client.members(room)).members);
    } catch (err) {
      if (err instanceof SockgateError && err.code === "FORBIDDEN") setMembers(null);
    }
  }, [client, room, presence]);

  // The last `history` messages of the room, put before the live ones that
  // came meanwhile; one that came both ways (published while the history
  // was asked) is kept once, by its id.
  const loadHistory = useCallback((client: SockgateClient, room: string) => {
    const limit = historyLimit.current;
    if (!limit || historyFor.current) return;
    const asked = (historyFor.current = { client, room });
    client.history<RoomMessage<T>>(room, { limit }).then(
      (ack) => {
        if (historyFor.current !== asked) return;
        const older = (ack.messages ?? [])
          .filter((m) => m.event === "room:message" && m.data && typeof m.data.id === "string")
          .map((m) => m.data);
        if (!older.length) return;
        setMessages((prev) => {
          const seen = new Set(prev.map((m) => m.id));
          const missing = older.filter((m) => !seen.has(m.id) && (seen.add(m.id), true));
          return missing.length ? [...missing, ...prev].slice(-max.current) : prev;
        });
      },
      // Nothing kept (NOT_FOUND) or refused: the live messages only. Not
      // answered (the connection dropped): asked again at the next join.
      (err: unknown) => {
        const code = err instanceof SockgateError ? err.code : null;
        if (historyFor.current === asked && (code === "NOT_CONNECTED" || code === "TIMEOUT")) historyFor.current = null;
      },
    );
  }, []);

  useEffect(() => {
    if (!client || !room || !connected) {
      setJoined(false);
      return;
    }
    // A leave scheduled by this effect's previous run (StrictMode, or a
    // re-render with the same room) is cancelled rather than sent.
    const pending = pendingLeave.current;
    if (pending) {
      clearTimeout(pending.timer);
      pendingLeave.current = null;
      if (pending.client !== client || pending.room !== room) pending.client.leaveRoom(pending.room).catch(() => {});
    }
    let live = true;
    client.joinRoom(room).then(
      () => {
        if (!live) return;
        setJoined(true);
        setError(null);
        void refreshMembers();
        loadHistory(client, room);
      },
      (err: unknown) => {
        if (!live) return;
        setJoined(false);
        setError(err instanceof SockgateError ? err : new SockgateError("INTERNAL", String(err)));
      },
    );
    return () => {
      live = false;
      const timer = setTimeout(() => {
        if (pendingLeave.current?.timer === timer) pendingLeave.current = null;
        if (client.socket.connected) client.leaveRoom(room).catch(() => {});
      }, 0);
      pendingLeave.current = { client, room, timer };
    };
  }, [client, room, connected, refreshMembers, loadHistory]);

  useEffect(() => {
    if (!joined || !membersIntervalMs) return;
    const timer = setInterval(() => void refreshMembers(), membersIntervalMs);
    return () => clearInterval(timer);
  }, [joined, membersIntervalMs, refreshMembers]);

  const publish = useCallback(
    async (data: T) => {
      if (!client || !room) throw new SockgateError("NOT_CONNECTED", "no client or no room");
      const ack = await client.publish(room, data);
      add({ id: ack.id, room, from: client.identity?.userId ?? "", data, ts: Date.now() });
      return ack;
    },
    [client, room, add],
  );

  return { joined, messages, members, publish, error, refreshMembers };
}
