import { io, type ManagerOptions, type Socket, type SocketOptions } from "socket.io-client";
import { fullJitter, type BackoffOptions } from "./backoff";
import { Emitter } from "./emitter";
import { classOfAny, isAppCode, parseRefusal, SockgateError, type AnyErrorCode } from "./errors";
import {
  CLIENT_EVENTS,
  CODES,
  isErrorCode,
  SERVER_EVENTS,
  type ErrorCode,
  type Expiring,
  type Identity,
  type JoinAck,
  type LeaveAck,
  type HistoryAck,
  type MembersAck,
  type PublishAck,
  type RefreshAck,
  type SessionEnd,
} from "./protocol";

/** Where the client is in its life. */
export type State = "connecting" | "connected" | "reconnecting" | "ended";

/**
 * What goes with a state: while (re)connecting after a failure, why (`code`:
 * the server's, or `UNREACHABLE` when the attempt never reached the gateway;
 * `message`), which retry comes next (`attempt`, 1 for the first) and after
 * how long (`delayMs`); when ended, `code` and `message`.
 */
export interface StateInfo {
  code?: AnyErrorCode;
  message?: string;
  attempt?: number;
  delayMs?: number;
  /**
   * On "connected" after a reconnection: true when the server gave the old
   * session back (its rooms, and the room messages missed meanwhile, which
   * arrive before anything new); false when this is a fresh session.
   */
  recovered?: boolean;
}

/** Gives the current token, or null when the user is not logged in. */
export type TokenSource = () => string | null | undefined | Promise<string | null | undefined>;

/**
 * The outcome of one renewal attempt after `auth:expiring`. `willRetry` is
 * true only after the first of at most two attempts per warning, when the
 * failure was transient.
 */
export type RefreshResult =
  | { ok: true; expiresAt: number | null }
  | { ok: false; code: AnyErrorCode; message: string; willRetry: boolean };

/** Why a client ended. */
export interface Ended {
  /** sockgate's code, or the app's own when its connect hook refused. */
  code: AnyErrorCode;
  message: string;
}

type SocketIoOptions = Partial<ManagerOptions & SocketOptions>;

export interface ClientOptions extends Omit<SocketIoOptions, "auth" | "reconnection" | "autoConnect" | "forceNew"> {
  /**
   * Asked before every connection attempt and on `auth:expiring`. Returning
   * null (or an empty string) ends the client with `AUTH_REQUIRED` without
   * connecting. May be left out with `withCredentials` (cookie sessions).
   */
  getToken?: TokenSource;
  /**
   * Send cookies with the handshake (and the polling requests). Without
   * `getToken` this is cookie mode: the session cookie authenticates, and
   * renewal goes through `auth:ticket` and `POST /auth/refresh`.
   */
  withCredentials?: boolean;
  /**
   * Cookie mode: called on `auth:expiring` before the renewal, to let the app
   * rotate its session cookie (Next-Auth: `getSession()`).
   */
  refreshSession?: () => unknown;
  /** Cookie mode: where to POST the ticket. Default: `/auth/refresh` on the gateway's origin. */
  refreshUrl?: string | URL;
  /** Reconnection delays (full jitter). */
  backoff?: BackoffOptions;
  /** How long to wait for an ack before giving up with `TIMEOUT`, in ms (default 10000). */
  ackTimeoutMs?: number;
  /** Extra fields for the handshake `auth` payload (the token is added by the client). */
  auth?: Record<string, unknown>;
}

export type ClientEvents = {
  /** Every change of `state` (and of its info while retrying). */
  state: (state: State, info: StateInfo) => void;
  /** The identity after each connection and refresh, null when disconnected. */
  identity: (identity: Identity | null) => void;
  /** Each renewal attempt after `auth:expiring`. */
  refresh: (result: RefreshResult) => void;
};

/** The delay before the one retry of a renewal: up to 1 s (full jitter). */
const REFRESH_RETRY_DELAY: BackoffOptions = { initialDelayMs: 1000 };
/** Renewal attempts per `auth:expiring`: the first, and one retry after a transient failure. */
const REFRESH_ATTEMPTS = 2;

/** What the attempts of one renewal share: the token (or the rotated session) already obtained. */
interface Renewal {
  token?: string;
  sessionRefreshed?: boolean;
}

type RefreshOutcome = RefreshAck | { ok: false; code: AnyErrorCode; message: string };

/**
 * A connection to sockgate that stays authenticated: it asks `getToken` for
 * a token before every connection attempt, refreshes in-band when warned,
 * reconnects with backoff after retryable refusals and ends for good on
 * terminal codes.
 */
export class SockgateClient extends Emitter<ClientEvents> {
  /** The socket.io-client Socket, for application events. */
  readonly socket: Socket;
  /** The gateway URL this client connects to. */
  readonly url: string;

  private _state: State = "connecting";
  private _info: StateInfo = {};
  private _identity: Identity | null = null;
  private _ended: Ended | null = null;

  private readonly getToken?: TokenSource;
  private readonly cookieMode: boolean;
  private readonly refreshSession?: () => unknown;
  private readonly refreshUrl: string;
  private readonly backoff: BackoffOptions;
  private readonly ackTimeoutMs: number;
  private readonly extraAuth: Record<string, unknown>;

  private token: string | undefined;
  private closed = false;
  private everConnected = false;
  private attempt = 0;
  private askedAgainForExpired = false;
  private pendingEnd: SessionEnd | null = null;
  /** The `expiresAt` of every `auth:expiring` handled on the current connection. */
  private readonly warnedExpiries = new Set<number>();
  /** Bumped for every connection attempt and every connect/disconnect, to drop stale async work. */
  private attemptSeq = 0;
  private connectionSeq = 0;
  private refreshSeq = 0;
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();

  constructor(url: string, options: ClientOptions = {}) {
    super();
    const { getToken, withCredentials, refreshSession, refreshUrl, backoff, ackTimeoutMs, auth, ...socketOptions } = options;
    if (!getToken && !withCredentials) {
      throw new TypeError("sockgate: createClient needs getToken, or withCredentials for a cookie session");
    }
    this.url = url;
    this.getToken = getToken;
    this.cookieMode = !getToken && !!withCredentials;
    this.refreshSession = refreshSession;
    this.refreshUrl = String(refreshUrl ?? new URL("/auth/refresh", url.replace(/^ws(s?):/, "http$1:")));
    this.backoff = backoff ?? {};
    this.ackTimeoutMs = ackTimeoutMs ?? 10000;
    this.extraAuth = auth ?? {};

    this.socket = io(url, {
      ...socketOptions,
      withCredentials: !!withCredentials,
      // The client decides when to come back (and with which token): the
      // manager never reconnects by itself, and is never shared.
      reconnection: false,
      autoConnect: false,
      forceNew: true,
      auth: (cb) => cb(this.token !== undefined ? { ...this.extraAuth, token: this.token } : { ...this.extraAuth }),
    });
    this.socket.on("connect", () => void this.onConnect());
    this.socket.on("connect_error", (err) => this.onConnectError(err));
    this.socket.on("disconnect", (reason) => this.onDisconnect(reason));
    this.socket.on(SERVER_EVENTS.end, (end: SessionEnd) => this.onSessionEnd(end));
    this.socket.on(SERVER_EVENTS.expiring, (expiring: Expiring) => void this.onExpiring(expiring));
    void this.attemptConnect();
  }

  /** Closed by the app or ended by the server: nothing more happens. */
  private get over(): boolean {
    return this.closed || this._state === "ended";
  }

  /** "connecting" | "connected" | "reconnecting" | "ended". */
  get state(): State {
    return this._state;
  }

  /** The info that came with the current state. */
  get info(): StateInfo {
    return this._info;
  }

  /** The `auth:whoami` answer once connected, else null. */
  get identity(): Identity | null {
    return this._identity;
  }

  /** `{ code, message }` once ended by a terminal code, else null (also after `close()`). */
  get ended(): Ended | null {
    return this._ended;
  }

  /** Closes the connection for good. The state becomes "ended" with `ended` null. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.clearTimers();
    this.refreshSeq++;
    const wasEnded = this._state === "ended";
    this._state = "ended";
    this.socket.disconnect();
    this.setIdentity(null);
    if (!wasEnded) this.setState("ended", {});
  }

  /** Joins a room: `{ ok: true, room, members }`, or throws a SockgateError. */
  joinRoom(room: string): Promise<JoinAck> {
    return this.request<JoinAck>(CLIENT_EVENTS.join, { room });
  }

  /** Leaves a room: `{ ok: true }`, or throws a SockgateError. */
  leaveRoom(room: string): Promise<LeaveAck> {
    return this.request<LeaveAck>(CLIENT_EVENTS.leave, { room });
  }

  /** Publishes `data` to a joined room: `{ ok: true, id }`, or throws a SockgateError. */
  publish(room: string, data: unknown): Promise<PublishAck> {
    return this.request<PublishAck>(CLIENT_EVENTS.publish, { room, data });
  }

  /** The users in a room: `{ ok: true, room, members }`, or throws a SockgateError. */
  members(room: string): Promise<MembersAck> {
    return this.request<MembersAck>(CLIENT_EVENTS.members, { room });
  }

  /**
   * The newest messages the history keeps of a room you are in (at most
   * `limit`, 100 by default; after `since` when given), oldest first; or
   * throws a SockgateError (`NOT_FOUND` where nothing is kept).
   */
  history<T = unknown>(room: string, options: { since?: string; limit?: number } = {}): Promise<HistoryAck<T>> {
    return this.request<HistoryAck<T>>(CLIENT_EVENTS.history, { room, ...options });
  }

  /** Asks `auth:whoami` again. */
  async whoami(): Promise<Identity> {
    const answer = await this.ack<Identity & { ok?: boolean }>(CLIENT_EVENTS.whoami);
    if (answer && answer.ok === false) throw SockgateError.fromAck(answer);
    return answer;
  }

  // --- connecting -----------------------------------------------------------

  private async attemptConnect(): Promise<void> {
    if (this.over) return;
    const seq = ++this.attemptSeq;
    let token: string | undefined;
    if (this.getToken) {
      let given: unknown;
      try {
        given = await this.getToken();
      } catch (err) {
        if (seq !== this.attemptSeq || this.closed) return;
        this.retry({ code: "AUTH_UNAVAILABLE", message: `getToken() failed: ${errorMessage(err)}` });
        return;
      }
      if (seq !== this.attemptSeq || this.over) return;
      if (given === null || given === undefined || given === "") {
        this.end("AUTH_REQUIRED", "getToken() gave no token: the user is not logged in");
        return;
      }
      if (typeof given !== "string") {
        this.end("TOKEN_INVALID", "getToken() gave something other than a string");
        return;
      }
      token = given;
    }
    this.token = token;
    this.socket.connect();
  }

  private onConnectError(err: Error & { description?: unknown; context?: unknown; data?: unknown }): void {
    if (this.over) return;
    const refusal = parseRefusal(err.message);
    if (refusal) {
      // An expired token: the token source may have a newer one. Ask once
      // more, at once, before this counts as a failed attempt.
      if (refusal.code === "TOKEN_EXPIRED" && this.getToken && !this.askedAgainForExpired) {
        this.askedAgainForExpired = true;
        void this.attemptConnect();
        return;
      }
      if (CODES[refusal.code] === "terminal") this.end(refusal.code, refusal.message);
      else this.retry(refusal);
      return;
    }
    const data = err.data as { code?: unknown; message?: unknown } | undefined;
    if (data !== undefined && isAppCode(data?.code)) {
      // The app's connect hook refused with its own code: terminal.
      this.end(data.code, typeof data.message === "string" ? data.message : data.code);
      return;
    }
    if (err.data !== undefined) {
      // A Socket.IO connect error without a code.
      this.retry({ message: err.message });
      return;
    }
    // A transport error: an HTTP 429/503 from the gateway, or an attempt that
    // never reached it (nothing listening, CORS, TLS, a wrong URL or path,
    // a timeout). All worth retrying; the code makes it visible at once.
    this.retry(transportFailure(err));
  }

  private async onConnect(): Promise<void> {
    this.warnedExpiries.clear();
    this.attempt = 0;
    this.askedAgainForExpired = false;
    this.pendingEnd = null;
    this.everConnected = true;
    const seq = ++this.connectionSeq;
    let identity: Identity | null = null;
    try {
      identity = await this.whoami();
    } catch {
      // The connection is up; the identity stays unknown.
    }
    if (seq !== this.connectionSeq || this.over || !this.socket.connected) return;
    this.setIdentity(identity);
    this.setState("connected", this.socket.recovered ? { recovered: true } : {});
  }

  private onSessionEnd(end: SessionEnd): void {
    if (this.over) return;
    const code = isErrorCode(end?.code) ? end.code : "INTERNAL";
    const reconnect = end?.reconnect ?? CODES[code] === "retryable";
    if (!reconnect) {
      // Terminal: end now; the server's disconnect follows.
      this.end(code, end.message ?? code);
      return;
    }
    this.pendingEnd = { code, message: end.message ?? code, reconnect };
  }

  private onDisconnect(reason: string): void {
    this.connectionSeq++;
    this.refreshSeq++;
    if (this.over) return;
    this.setIdentity(null);
    const end = this.pendingEnd;
    this.pendingEnd = null;
    if (end) {
      this.retry({ code: end.code, message: end.message });
    } else if (reason === "io server disconnect") {
      // Every server-initiated end is announced by session:end; without
      // one, the server still meant it: do not come back.
      this.end("KICKED", "the server disconnected the socket");
    } else if (reason === "io client disconnect") {
      // The app called socket.disconnect() itself.
      this.close();
    } else {
      this.retry({ message: reason });
    }
  }

  private retry(why: { code?: AnyErrorCode; message?: string; retryAfterMs?: number }): void {
    if (this.over) return;
    this.askedAgainForExpired = false;
    this.attempt += 1;
    const delayMs = Math.max(fullJitter(this.attempt, this.backoff), why.retryAfterMs ?? 0);
    const info: StateInfo = { attempt: this.attempt, delayMs };
    if (why.code) info.code = why.code;
    if (why.message) info.message = why.message;
    this.setState(this.everConnected ? "reconnecting" : "connecting", info);
    this.later(delayMs, () => void this.attemptConnect());
  }

  private end(code: AnyErrorCode, message: string): void {
    if (this._state === "ended") return;
    this.clearTimers();
    this.refreshSeq++;
    this.attemptSeq++;
    this._ended = { code, message };
    // "ended" before the disconnect, whose event fires synchronously.
    this._state = "ended";
    this.socket.disconnect();
    this.setIdentity(null);
    this.setState("ended", { code, message });
  }

  // --- staying authenticated ------------------------------------------------

  /**
   * One warning, one renewal: the token source is asked once, and only a
   * transient failure gets a second attempt, with the same token. Looping
   * until exp would hammer the app's token endpoint (with Next-Auth, its
   * session endpoint) whenever the backend cannot mint a later token; if the
   * renewal fails, the session ends with SESSION_EXPIRED at exp and the
   * reconnect asks `getToken` for a fresh token.
   */
  private async onExpiring(expiring: Expiring): Promise<void> {
    if (this.over) return;
    const expiresAt = typeof expiring?.expiresAt === "number" ? expiring.expiresAt : undefined;
    if (expiresAt !== undefined) {
      // Older servers repeated the warning after a refresh that did not
      // move exp; answering each one was a refresh storm.
      if (this.warnedExpiries.has(expiresAt)) return;
      this.warnedExpiries.add(expiresAt);
    }
    const seq = ++this.refreshSeq;
    const connection = this.connectionSeq;
    const current = () => seq === this.refreshSeq && connection === this.connectionSeq && !this.closed && this.socket.connected;
    const deadline = expiresAt !== undefined ? expiresAt * 1000 : Date.now() + 60000;
    const renewal: Renewal = {};
    for (let attempt = 1; ; attempt++) {
      const result = await this.renewOnce(renewal);
      if (!current()) return;
      if (result.ok) {
        await this.refreshed(result.expiresAt ?? null, current);
        return;
      }
      const delay = fullJitter(1, REFRESH_RETRY_DELAY);
      const willRetry = attempt < REFRESH_ATTEMPTS && classOfAny(result.code) === "retryable" && Date.now() + delay < deadline;
      this.emit("refresh", { ok: false, code: result.code, message: result.message, willRetry });
      if (!willRetry) return;
      await new Promise<void>((resolve) => this.later(delay, resolve));
      if (!current()) return;
    }
  }

  private async renewOnce(renewal: Renewal): Promise<RefreshOutcome> {
    try {
      return await (this.cookieMode ? this.renewCookie(renewal) : this.renewToken(renewal));
    } catch (err) {
      if (err instanceof SockgateError) return { ok: false, code: err.code, message: errorMessage(err) };
      return { ok: false, code: "AUTH_UNAVAILABLE", message: errorMessage(err) };
    }
  }

  private async refreshed(expiresAt: number | null, current: () => boolean): Promise<void> {
    this.emit("refresh", { ok: true, expiresAt });
    try {
      const identity = await this.whoami();
      if (current()) this.setIdentity(identity);
    } catch {
      if (current() && this._identity) this.setIdentity({ ...this._identity, expiresAt });
    }
  }

  /** `auth:refresh` with the token of this renewal, asking `getToken` only if there is none yet. */
  private async renewToken(renewal: Renewal): Promise<RefreshAck> {
    if (renewal.token === undefined) {
      let given: unknown;
      try {
        given = await this.getToken!();
      } catch (err) {
        throw new SockgateError("AUTH_UNAVAILABLE", `getToken() failed: ${errorMessage(err)}`);
      }
      if (given === null || given === undefined || given === "") {
        return { ok: false, code: "AUTH_REQUIRED", message: "getToken() gave no token" };
      }
      if (typeof given !== "string") {
        return { ok: false, code: "TOKEN_INVALID", message: "getToken() gave something other than a string" };
      }
      renewal.token = given;
    }
    const ack = await this.ack<RefreshAck>(CLIENT_EVENTS.refresh, { token: renewal.token });
    if (ack && ack.ok === true) {
      this.token = renewal.token;
      return ack;
    }
    throw SockgateError.fromAck(ack);
  }

  /** Cookie mode: `refreshSession` once per renewal, then a fresh single-use ticket POSTed with the cookie. */
  private async renewCookie(renewal: Renewal): Promise<RefreshAck> {
    if (this.refreshSession && !renewal.sessionRefreshed) {
      try {
        await this.refreshSession();
      } catch (err) {
        throw new SockgateError("AUTH_UNAVAILABLE", `refreshSession() failed: ${errorMessage(err)}`);
      }
      renewal.sessionRefreshed = true;
    }
    const answer = await this.ack<{ ticket?: unknown; ok?: boolean }>(CLIENT_EVENTS.ticket);
    if (!answer || typeof answer.ticket !== "string") throw SockgateError.fromAck(answer);
    let res: Response;
    try {
      res = await fetch(this.refreshUrl, {
        method: "POST",
        credentials: "include",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ ticket: answer.ticket }),
      });
    } catch (err) {
      throw new SockgateError("UNREACHABLE", `POST ${this.refreshUrl} did not get through: ${errorMessage(err)}`);
    }
    let body: unknown;
    try {
      body = await res.json();
    } catch {
      throw new SockgateError(res.status >= 500 ? "INTERNAL" : "INVALID_REQUEST", `POST ${this.refreshUrl} answered HTTP ${res.status}`);
    }
    const b = body as { ok?: unknown; expiresAt?: unknown; error?: unknown };
    if (b && b.ok === true) return { ok: true, expiresAt: typeof b.expiresAt === "number" ? b.expiresAt : null };
    throw SockgateError.fromAck(b && typeof b.error === "object" ? b.error : b);
  }

  // --- plumbing -------------------------------------------------------------

  private async request<T extends { ok: true }>(event: string, payload: unknown): Promise<T> {
    const ack = await this.ack<T | { ok: false }>(event, payload);
    if (ack && (ack as { ok?: unknown }).ok === true) return ack as T;
    throw SockgateError.fromAck(ack);
  }

  private async ack<T>(event: string, ...args: unknown[]): Promise<T> {
    if (!this.socket.connected) throw new SockgateError("NOT_CONNECTED", `${event}: the client is not connected`);
    try {
      return (await this.socket.timeout(this.ackTimeoutMs).emitWithAck(event, ...args)) as T;
    } catch (err) {
      if (!this.socket.connected) throw new SockgateError("NOT_CONNECTED", `${event}: the connection closed before the answer`);
      throw new SockgateError("TIMEOUT", `${event}: no answer within ${this.ackTimeoutMs} ms (${errorMessage(err)})`);
    }
  }

  private setState(state: State, info: StateInfo): void {
    this._state = state;
    this._info = info;
    this.emit("state", state, info);
  }

  private setIdentity(identity: Identity | null): void {
    if (identity === this._identity) return;
    this._identity = identity;
    this.emit("identity", identity);
  }

  private later(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    this.timers.add(timer);
  }

  private clearTimers(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}

/**
 * What a transport-level connect_error tells. The gateway's own refusals when
 * the transport opens (HTTP 429/503) carry a JSON body with a code and
 * `retryAfterMs`. Anything else is `UNREACHABLE`, with a hint at the usual
 * cause: in a browser, a CORS refusal, a TLS failure and nothing listening
 * all look alike (no status), so the hint names the URL and
 * SOCKGATE_ALLOWED_ORIGINS; an HTTP status without the gateway's body is
 * some other server (or another path) answering.
 */
function transportFailure(err: Error & { description?: unknown; context?: unknown }): {
  code: AnyErrorCode;
  message: string;
  retryAfterMs?: number;
} {
  const status = typeof err.description === "number" && err.description > 0 ? err.description : undefined;
  const refusal = gatewayRefusal(err);
  if (refusal || status === 429) {
    const result: { code: AnyErrorCode; message: string; retryAfterMs?: number } = {
      code: refusal?.code ?? "RATE_LIMITED",
      message: status ? `${err.message} (HTTP ${status})` : err.message,
    };
    if (refusal?.retryAfterMs) result.retryAfterMs = refusal.retryAfterMs;
    return result;
  }
  if (status === 404) {
    return { code: "UNREACHABLE", message: `nothing answers Socket.IO here (HTTP 404): check the URL and the \`path\` option (default /socket.io/) (${err.message})` };
  }
  if (status) {
    return {
      code: "UNREACHABLE",
      message: `the server answered HTTP ${status}, not the gateway's handshake: check the URL, the \`path\` option and any proxy in front of the gateway (${err.message})`,
    };
  }
  return {
    code: "UNREACHABLE",
    message: `the gateway refused this origin or is unreachable: check SOCKGATE_ALLOWED_ORIGINS and the URL (${err.message})`,
  };
}

/** The gateway's JSON refusal `{ code, message, retryAfterMs }` in a transport error, when readable. */
function gatewayRefusal(err: Error & { context?: unknown }): { code: ErrorCode; retryAfterMs?: number } | undefined {
  try {
    const text = (err.context as { responseText?: unknown } | undefined)?.responseText;
    if (typeof text !== "string" || !text.startsWith("{")) return undefined;
    const body = JSON.parse(text) as { code?: unknown; retryAfterMs?: unknown };
    if (!isErrorCode(body.code)) return undefined;
    const retryAfterMs = typeof body.retryAfterMs === "number" && body.retryAfterMs > 0 ? Math.min(body.retryAfterMs, 60000) : undefined;
    return retryAfterMs ? { code: body.code, retryAfterMs } : { code: body.code };
  } catch {
    // Not the gateway's JSON (or not readable cross-origin).
    return undefined;
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Connects to sockgate at `url`. `getToken` is asked before every connection
 * attempt and on `auth:expiring`; the other options go to socket.io-client.
 */
export function createClient(url: string, options: ClientOptions = {}): SockgateClient {
  return new SockgateClient(url, options);
}
