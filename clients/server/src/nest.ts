// The NestJS adapter (NEST.md): an existing `@WebSocketGateway()` runs behind
// sockgate. sockgate POSTs each client event to a route this adapter adds to
// the app's HTTP server; the adapter runs the matching `@SubscribeMessage`
// handler through Nest's own pipeline (guards, pipes, interceptors, exception
// filters) with a per-call client that looks like a Socket.IO socket, and
// answers with what the handler did: the ack, or the error, and the rooms,
// emits and publishes it asked for.
//
// Nothing here imports NestJS or rxjs at run time: the adapter only speaks
// the `WebSocketAdapter` interface, structurally, so it works with the app's
// own copy of Nest whatever its version.
import { AsyncLocalStorage } from "node:async_hooks";
import type { EventCall, EventReply, Publish, ReplyPublish } from "./protocol";
import { APP_CODE } from "./protocol";
import { DEFAULT_TOLERANCE_SECONDS, SIGNATURE_HEADER, verifySignature } from "./signature";

/** How the adapter is set up: `new SockgateAdapter(app, { secret })`. */
export interface SockgateAdapterOptions {
  /** `SOCKGATE_EVENTS_SECRET`: every call's signature is checked with it. */
  secret: string;
  /** The route sockgate POSTs to (`SOCKGATE_EVENTS_URL`'s path). Default `/sockgate/events`. */
  path?: string;
  /**
   * How long a handler's result may take, in ms. Past it the answer is sent
   * with what the handler did so far (its first value as the ack, if any;
   * else the error `BACKEND_TIMEOUT`). Default 4000: below sockgate's own
   * `SOCKGATE_EVENTS_TIMEOUT_MS` (5000), so the app answers before it gives up.
   */
  timeoutMs?: number;
  /** How old a signature may be, in seconds. Default 300. */
  toleranceSeconds?: number;
  /** The largest call body read, in bytes; a larger one is refused with 413. Default 16 MiB. */
  maxBodyBytes?: number;
  /**
   * How `server.to(room).emit()` publishes when it runs outside a call (a
   * timer, an HTTP controller): e.g. sockgate's `POST /api/publish`. Without
   * it, such an emit throws. Inside a call, the publish goes in the answer.
   */
  publish?: (publish: Publish) => unknown;
}

/** Who the caller is, as sockgate verified it: in `client.data.user` and `client.handshake.auth`. */
export interface SockgateUser {
  userId: string;
  claims: Record<string, unknown>;
}

/** The part of Nest's HTTP adapter (`app.getHttpAdapter()`) the route needs. */
interface HttpAdapter {
  post(path: string, handler: (req: any, res: any) => unknown): unknown;
  reply(res: unknown, body: unknown, statusCode?: number): unknown;
}

/** The part of a Nest application the adapter needs. */
export interface SockgateApp {
  getHttpAdapter(): HttpAdapter;
}

/** A handler as Nest hands it to `bindMessageHandlers`: already wrapped with the gateway's guards, pipes, interceptors and filters. */
interface MessageHandler {
  message: unknown;
  callback: (...args: any[]) => unknown;
  isAckHandledManually?: boolean;
}

/** What Nest's `transform` returns: an rxjs Observable. */
interface Stream {
  subscribe(observer: { next(value: unknown): void; error(err: unknown): void; complete(): void }): { unsubscribe(): void };
}
type Transform = (result: unknown) => Stream;

/** What one call has done so far, and so what it will answer. */
interface CallState {
  call: EventCall;
  /** False once the answer is sent: later effects cannot reach the client. */
  open: boolean;
  ack?: { value: unknown };
  error?: { code: string; message: string };
  /** Each room's last join or leave: the answer's `join` and `leave`. */
  rooms: Map<string, "join" | "leave">;
  emit: { event: string; data?: unknown }[];
  publish: ReplyPublish[];
  disconnect?: { message: string };
  /** What Nest bound to this call's client, set by `bindMessageHandlers`. */
  bound?: { handlers: MessageHandler[]; transform: Transform };
}

const DEFAULT_PATH = "/sockgate/events";
const DEFAULT_TIMEOUT_MS = 4000;
const DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024;
/** The message Nest's guards refuse with: `WsException('Forbidden resource')`. */
const NEST_FORBIDDEN_MESSAGE = "Forbidden resource";

/** The call whose async context the code runs in: where `server.to().emit()` records its publish. */
const currentCall = new AsyncLocalStorage<CallState>();
const states = new WeakMap<SockgateClient, CallState>();

/**
 * The client a gateway's handler, guards and filters get: one per call, made
 * to look like a Socket.IO socket. Its effects go in this call's answer;
 * once the answer is sent they are dropped (with a warning), since there is
 * no socket in this process to send them on.
 */
export class SockgateClient {
  /** sockgate's session id: the same for every event of one connection. */
  readonly id: string;
  /** The call as sockgate sent it. */
  readonly call: EventCall;
  /** The socket's rooms (its own user room first), kept up to date by `join` and `leave`. */
  readonly rooms: Set<string>;
  /** Per-call data: starts as `{ user }`; does not outlive the call. */
  readonly data: Record<string, unknown> & { user: SockgateUser };
  /** The socket's namespace, as Socket.IO's `socket.nsp.name`: `"/"`, or e.g. `"/admin"` (the call's `namespace`). */
  readonly nsp: { readonly name: string };
  readonly handshake: {
    auth: SockgateUser;
    user: SockgateUser;
    address: string | null;
    headers: Record<string, string>;
    query: Record<string, string>;
    issued: number;
    time: string;
  };
  connected = true;
  disconnected = false;

  constructor(call: EventCall, state: CallState) {
    const user: SockgateUser = { userId: call.userId, claims: call.claims ?? {} };
    this.id = call.sessionId;
    this.call = call;
    this.rooms = new Set(call.rooms);
    this.data = { user };
    this.nsp = { name: typeof call.namespace === "string" && call.namespace !== "" ? call.namespace : "/" };
    this.handshake = {
      auth: user,
      user,
      address: call.remoteAddr,
      headers: {},
      query: {},
      issued: call.ts,
      time: new Date(call.ts).toString(),
    };
    states.set(this, state);
  }

  /** Joins a room (or several) when the answer is applied. */
  join(rooms: string | string[]): void {
    for (const room of typeof rooms === "string" ? [rooms] : rooms) {
      if (!this.#effect("join")) return;
      states.get(this)!.rooms.set(room, "join");
      this.rooms.add(room);
    }
  }

  /** Leaves a room when the answer is applied. */
  leave(room: string): void {
    if (!this.#effect("leave")) return;
    states.get(this)!.rooms.set(room, "leave");
    this.rooms.delete(room);
  }

  /**
   * Emits to this socket. `exception`, the event Nest's exception filter
   * emits, becomes the answer's error instead (the ack's `{ ok: false }`).
   */
  emit(event: string, ...args: unknown[]): boolean {
    if (!this.#effect("emit")) return false;
    const state = states.get(this)!;
    const data = oneArgument(args, "client.emit");
    if (event === "exception") state.error ??= errorOf(data);
    else state.emit.push({ event, data });
    return true;
  }

  /** Ends the session: the client gets `session:end` (`ENDED_BY_APP`) and does not reconnect by itself. */
  disconnect(_close?: boolean): this {
    if (!this.#effect("disconnect")) return this;
    states.get(this)!.disconnect = { message: "io server disconnect" };
    this.connected = false;
    this.disconnected = true;
    return this;
  }

  /** `client.to(room).emit()`: every socket in the room but this one, in the call's answer. */
  to(room: string | string[]): ClientRoomEmitter {
    return new ClientRoomEmitter(this, states.get(this)!, []).to(room);
  }

  in(room: string | string[]): ClientRoomEmitter {
    return this.to(room);
  }

  /** `client.broadcast.to(room).emit()`, the same as `client.to(room).emit()`. */
  get broadcast(): { to(room: string | string[]): ClientRoomEmitter; in(room: string | string[]): ClientRoomEmitter } {
    return { to: (room) => this.to(room), in: (room) => this.to(room) };
  }

  /** Whether an effect can still reach the answer (for the room emitter). */
  canAdd(what: string): boolean {
    return this.#effect(what);
  }

  /** Whether an effect can still reach the answer; warns once when it cannot. */
  #effect(what: string): boolean {
    if (states.get(this)!.open) return true;
    warnLate(`client.${what}()`);
    return false;
  }
}

/** `client.to(room)`: the rooms an emit publishes to, the sender left out. */
class ClientRoomEmitter {
  constructor(
    private readonly client: SockgateClient,
    private readonly state: CallState,
    private readonly rooms: string[],
  ) {}

  to(room: string | string[]): ClientRoomEmitter {
    return new ClientRoomEmitter(this.client, this.state, [...new Set(this.rooms.concat(room))]);
  }

  in(room: string | string[]): ClientRoomEmitter {
    return this.to(room);
  }

  /** Publishes `event` to the rooms but to the sender, in the call's answer. */
  emit(event: string, ...args: unknown[]): boolean {
    if (!this.client.canAdd("to().emit")) return false;
    const data = oneArgument(args, "client.to().emit");
    const target = this.rooms.length === 1 ? { room: this.rooms[0] } : { rooms: this.rooms };
    this.state.publish.push({ ...target, event, data, exceptSession: this.state.call.sessionId });
    return true;
  }
}

/** `server.to(room)`: the rooms an emit publishes to. */
class RoomEmitter {
  constructor(
    private readonly adapter: SockgateAdapter,
    private readonly rooms: string[],
  ) {}

  to(room: string | string[]): RoomEmitter {
    return new RoomEmitter(this.adapter, [...new Set(this.rooms.concat(room))]);
  }

  in(room: string | string[]): RoomEmitter {
    return this.to(room);
  }

  except(_room: string | string[]): never {
    throw new Error("sockgate: except() is not mapped: a publish reaches every socket in its rooms");
  }

  /** Publishes `event` to the rooms: in the answer inside a call, else through the `publish` option. */
  emit(event: string, ...args: unknown[]): boolean {
    const data = oneArgument(args, "server.to().emit");
    const target = this.rooms.length === 1 ? { room: this.rooms[0] } : { rooms: this.rooms };
    return this.adapter.publishFromServer({ ...target, event, data });
  }
}

/**
 * The `@WebSocketServer()` of every gateway, and what `afterInit` gets.
 * Only publishing to rooms is mapped.
 */
export class SockgateServer {
  constructor(private readonly adapter: SockgateAdapter) {}

  to(room: string | string[]): RoomEmitter {
    return new RoomEmitter(this.adapter, []).to(room);
  }

  in(room: string | string[]): RoomEmitter {
    return this.to(room);
  }

  /** Not mapped: sockgate has no "everyone" target. Publish to a room every socket joins. */
  emit(_event: string, ..._args: unknown[]): never {
    throw new Error("sockgate: server.emit() to every socket is not mapped; use server.to(room).emit() with a room every socket joins");
  }

  /**
   * Not mapped: every gateway shares one server. Inside a call a publish
   * goes to the calling socket's namespace; outside one, where the
   * `publish` option sends it.
   */
  of(_namespace: string): this {
    return this;
  }
}

/**
 * Nest's WebSocket adapter for sockgate: `app.useWebSocketAdapter(new
 * SockgateAdapter(app, { secret }))`. It adds the route sockgate POSTs to
 * when it is made (before `app.init()`/`listen()`, so ahead of Nest's body
 * parser: the signature is checked on the raw body).
 */
export class SockgateAdapter {
  readonly #options: Required<Omit<SockgateAdapterOptions, "publish">> & Pick<SockgateAdapterOptions, "publish">;
  readonly #http: HttpAdapter;
  readonly #server = new SockgateServer(this);
  /** Each gateway's connection callback, and its events once known. */
  readonly #gateways: { connect: (client: SockgateClient) => unknown; events?: Set<unknown> }[] = [];

  constructor(app: SockgateApp, options: SockgateAdapterOptions) {
    if (!options || typeof options.secret !== "string" || options.secret.length === 0) {
      throw new Error("SockgateAdapter: `secret` (SOCKGATE_EVENTS_SECRET) is required");
    }
    this.#options = {
      secret: options.secret,
      path: options.path ?? DEFAULT_PATH,
      timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      toleranceSeconds: options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS,
      maxBodyBytes: options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
      publish: options.publish,
    };
    this.#http = app.getHttpAdapter();
    this.#http.post(this.#options.path, (req, res) => this.#serve(req, res));
  }

  // ---- Nest's WebSocketAdapter ----

  /** Every gateway (any port, path or namespace) gets the same server: sockgate is the only one. */
  create(_port: number, _options?: unknown): SockgateServer {
    return this.#server;
  }

  /** Keeps the gateway's connection callback: it runs for each call it handles (NEST.md). */
  bindClientConnect(_server: unknown, callback: (client: SockgateClient) => unknown): void {
    this.#gateways.push({ connect: callback });
  }

  /** Never called back: there is no long-lived socket here, so `handleDisconnect` never runs. */
  bindClientDisconnect(_client: unknown, _callback: unknown): void {}

  /** Nest binds the gateway's handlers to this call's client: kept for the call to pick one. */
  bindMessageHandlers(client: SockgateClient, handlers: MessageHandler[], transform: Transform): void {
    const state = states.get(client);
    if (state) state.bound = { handlers, transform };
  }

  close(_server: unknown): void {}

  dispose(): void {}

  // ---- the calls ----

  /**
   * Answers one verified call: runs its handler and says what it did.
   * Never throws: a failure is the answer's error.
   */
  async handle(call: EventCall): Promise<EventReply> {
    const state: CallState = { call, open: true, rooms: new Map(), emit: [], publish: [] };
    const client = new SockgateClient(call, state);
    return currentCall.run(state, async () => {
      try {
        const found = this.#handlerFor(client, state);
        if (!found) {
          state.open = false;
          return { error: { code: "UNKNOWN_EVENT", message: `no handler for ${JSON.stringify(call.event)}` } };
        }
        await this.#run(found.handler, found.transform, state);
      } catch (err) {
        state.error ??= { code: "BACKEND_ERROR", message: "Internal server error" };
        process.emitWarning(`sockgate: the handler of ${JSON.stringify(call.event)} failed: ${String(err)}`);
      }
      return answerOf(state);
    });
  }

  /** Publishes for `server.to().emit()`: into the current call's answer, else through the `publish` option. */
  publishFromServer(publish: Publish): boolean {
    const state = currentCall.getStore();
    if (state?.open) {
      state.publish.push(publish);
      return true;
    }
    const send = this.#options.publish;
    if (!send) {
      throw new Error(
        "sockgate: server.to().emit() outside a call needs a way to publish: new SockgateAdapter(app, { publish })",
      );
    }
    Promise.resolve()
      .then(() => send(publish))
      .catch((err) => process.emitWarning(`sockgate: publish failed: ${String(err)}`));
    return true;
  }

  /**
   * The handler for the call's event. Nest binds handlers per client through
   * a gateway's connection callback, which also runs its `handleConnection`:
   * so only the gateway that handles the event is connected, once its events
   * are known (a gateway not yet seen is connected to learn them).
   */
  #handlerFor(client: SockgateClient, state: CallState): { handler: MessageHandler; transform: Transform } | undefined {
    for (const gateway of this.#gateways) {
      if (gateway.events && !gateway.events.has(state.call.event)) continue;
      state.bound = undefined;
      gateway.connect(client);
      const bound = state.bound as CallState["bound"];
      if (!bound) continue;
      if (!gateway.events) {
        gateway.events = new Set(bound.handlers.map((h) => h.message));
        this.#warnShared(gateway.events);
      }
      const handler = bound.handlers.find((h) => h.message === state.call.event);
      if (handler) return { handler, transform: bound.transform };
    }
    return undefined;
  }

  /** Two gateways subscribed to one event: only the first bound runs (there are no namespaces here). */
  #warnShared(events: Set<unknown>): void {
    for (const other of this.#gateways) {
      if (!other.events || other.events === events) continue;
      for (const event of events) {
        if (other.events.has(event)) process.emitWarning(`sockgate: two gateways subscribe to ${String(event)}; the first one bound handles it`);
      }
    }
  }

  /**
   * Runs a handler as Nest's Socket.IO adapter does: `callback(data, ack)`,
   * its result through `transform`; a value with an `event` is an emit, any
   * other is the ack (the first one counts). Done when the result completes
   * (and, for an `@Ack()` handler, the ack was called), or at the timeout.
   */
  #run(handler: MessageHandler, transform: Transform, state: CallState): Promise<void> {
    const manual = handler.isAckHandledManually === true;
    return new Promise<void>((resolve) => {
      let completed = false;
      let finished = false;
      let subscription: { unsubscribe(): void } | undefined;
      const finish = () => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        subscription?.unsubscribe();
        resolve();
      };
      const check = () => {
        if (state.error || (completed && (!manual || state.ack))) finish();
      };
      const ack = (...values: unknown[]) => {
        if (!state.ack && state.open) state.ack = { value: values[0] };
        check();
      };
      const timer = setTimeout(() => {
        if (!state.ack && !state.error) {
          state.error = { code: "BACKEND_TIMEOUT", message: `no answer within ${this.#options.timeoutMs} ms` };
        }
        finish();
      }, this.#options.timeoutMs);
      let result: Stream;
      try {
        result = transform(handler.callback(dataOf(state.call.args), ack));
      } catch (err) {
        state.error ??= { code: "BACKEND_ERROR", message: "Internal server error" };
        process.emitWarning(`sockgate: the handler of ${JSON.stringify(state.call.event)} failed: ${String(err)}`);
        return finish();
      }
      subscription = result.subscribe({
        next: (value) => {
          if (value === null || value === undefined) return;
          if (isWsResponse(value)) state.emit.push({ event: value.event, data: value.data });
          else if (!manual && !state.ack) state.ack = { value };
        },
        error: (err) => {
          state.error ??= { code: "BACKEND_ERROR", message: "Internal server error" };
          process.emitWarning(`sockgate: the handler of ${JSON.stringify(state.call.event)} failed: ${String(err)}`);
          finish();
        },
        complete: () => {
          completed = true;
          check();
        },
      });
      if (finished) subscription.unsubscribe();
    });
  }

  // ---- the route ----

  /** The POST route: signature first, then the call. Never throws. */
  async #serve(req: any, res: any): Promise<void> {
    let raw: Buffer | undefined;
    try {
      raw = await rawBodyOf(req, this.#options.maxBodyBytes);
    } catch {
      return this.#reply(res, 413, { error: { code: "TOO_LARGE", message: "call body too large" } });
    }
    if (!raw) {
      process.emitWarning(
        "sockgate: the call's raw body was already read by a body parser; make the SockgateAdapter before any app.useBodyParser()/app.use(express.json()), or create the app with { rawBody: true }",
      );
      return this.#reply(res, 500, { error: { code: "NO_RAW_BODY", message: "raw body unavailable" } });
    }
    const header = headerOf(req, SIGNATURE_HEADER);
    if (!verifySignature(raw, header, this.#options.secret, { toleranceSeconds: this.#options.toleranceSeconds })) {
      return this.#reply(res, 401, { error: { code: "BAD_SIGNATURE", message: "signature does not verify" } });
    }
    let call: unknown;
    try {
      call = JSON.parse(raw.toString("utf8"));
    } catch {
      return this.#reply(res, 400, { error: { code: "BAD_REQUEST", message: "body is not JSON" } });
    }
    if (!isEventCall(call)) {
      return this.#reply(res, 400, { error: { code: "BAD_REQUEST", message: "body is not an event call" } });
    }
    this.#reply(res, 200, await this.handle(call));
  }

  #reply(res: unknown, status: number, body: unknown): void {
    this.#http.reply(res, body, status);
  }
}

/** The answer for what a call did; closes the call to later effects. */
function answerOf(state: CallState): EventReply {
  state.open = false;
  const answer: EventReply = {};
  if (state.error) answer.error = state.error;
  else if (state.ack && state.ack.value !== undefined) answer.ack = state.ack.value;
  const join = [...state.rooms].filter(([, op]) => op === "join").map(([room]) => room);
  const leave = [...state.rooms].filter(([, op]) => op === "leave").map(([room]) => room);
  if (join.length) answer.join = join;
  if (leave.length) answer.leave = leave;
  if (state.emit.length) answer.emit = state.emit;
  if (state.publish.length) answer.publish = state.publish;
  if (state.disconnect) answer.disconnect = state.disconnect;
  return answer;
}

/**
 * The answer's error for what Nest's exception filter emitted as
 * `exception`: `WsException({ code, message })` keeps its code when it is an
 * app code (`[A-Z][A-Z0-9_]{0,63}`); a guard's refusal is `FORBIDDEN`;
 * anything else `BACKEND_ERROR`.
 */
function errorOf(payload: unknown): { code: string; message: string } {
  const fields = isObject(payload) ? payload : {};
  const message = typeof payload === "string" ? payload : typeof fields.message === "string" ? fields.message : "error";
  if (typeof fields.code === "string" && APP_CODE.test(fields.code)) return { code: fields.code, message };
  if (message === NEST_FORBIDDEN_MESSAGE) return { code: "FORBIDDEN", message };
  return { code: "BACKEND_ERROR", message };
}

/** The handler's data, as Nest's Socket.IO adapter gives it: one argument as is, several as an array. */
function dataOf(args: unknown[]): unknown {
  const values = args.map(fromWire);
  if (values.length === 0) return undefined;
  return values.length === 1 ? values[0] : values;
}

/** A binary argument arrives as `{ "$binary": "<base64>" }`: a Buffer again, as Socket.IO gives it. */
function fromWire(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(fromWire);
  if (!isObject(value)) return value;
  const keys = Object.keys(value);
  if (keys.length === 1 && keys[0] === "$binary" && typeof value.$binary === "string") {
    return Buffer.from(value.$binary, "base64");
  }
  return Object.fromEntries(keys.map((k) => [k, fromWire(value[k])]));
}

/** sockgate's emits and publishes carry one value. */
function oneArgument(args: unknown[], what: string): unknown {
  if (args.length > 1) throw new Error(`sockgate: ${what}() takes one data argument (sockgate's events carry one value)`);
  return args[0];
}

function isWsResponse(value: unknown): value is { event: string; data?: unknown } {
  return isObject(value) && typeof value.event === "string" && value.event !== "";
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

function isEventCall(value: unknown): value is EventCall {
  return (
    isObject(value) &&
    typeof value.event === "string" &&
    Array.isArray(value.args) &&
    typeof value.userId === "string" &&
    typeof value.sessionId === "string" &&
    Array.isArray(value.rooms)
  );
}

function headerOf(req: any, name: string): string | undefined {
  const value = req?.headers?.[name];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * The call's raw body: Nest's `rawBody` (`{ rawBody: true }`), a body an
 * `express.raw()` left, or the request stream when nothing read it yet.
 * Undefined when a parser already consumed it.
 */
async function rawBodyOf(req: any, maxBytes: number): Promise<Buffer | undefined> {
  if (Buffer.isBuffer(req.rawBody)) return req.rawBody;
  if (Buffer.isBuffer(req.body)) return req.body;
  if (req._body || req.readableEnded || typeof req[Symbol.asyncIterator] !== "function") return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw new Error("too large");
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

let warnedLate = false;

/** An effect after the answer was sent has nowhere to go; said once per process. */
function warnLate(what: string): void {
  if (warnedLate) return;
  warnedLate = true;
  process.emitWarning(`sockgate: ${what} after the call was answered is dropped (there is no socket in this process)`);
}
