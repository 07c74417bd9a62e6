// The app's end of sockgate's calls (docs/events.md): one handler for the
// event proxy and the connect hook, checked and dispatched the same way
// whatever serves it (a Web `Request`, Node's req/res, NestJS).
import type { IncomingMessage, ServerResponse } from "node:http";
import { buildReply, createContext, type EventContext } from "./context";
import { SockgateError } from "./errors";
import type { ConnectCall, EventCall, EventReply, Identity, RenewCall } from "./protocol";
import { DEFAULT_TOLERANCE_SECONDS, SIGNATURE_HEADER, verifySignature } from "./signature";

/** Handles one client event; its return value is the client's ack. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type EventHandler = (ctx: EventContext, ...args: any[]) => unknown;

/** Says who a handshake (or, without a `renew` handler, a renewal) is, or throws a `SockgateError`. */
export type ConnectHandler = (call: ConnectCall | RenewCall) => Identity | Promise<Identity>;
/** Says who a session renewed before its `expiresAt` is now, or throws a `SockgateError`. */
export type RenewHandler = (call: RenewCall) => Identity | Promise<Identity>;

/** Any call sockgate makes, as `onError` is given it. */
export type Call = EventCall | ConnectCall | RenewCall;

export interface HandlerOptions {
  /**
   * `SOCKGATE_EVENTS_SECRET` (or `SOCKGATE_CONNECT_SECRET`): every call's
   * signature is checked with it. Without one every call is refused (500,
   * and `onError` says why): checked per call, not at creation, so that a
   * module creating the handler loads where the secret is not set (`next build`).
   */
  secret: string | undefined;
  /** Handlers by event name. */
  events?: Record<string, EventHandler>;
  /** The connect hook (`SOCKGATE_CONNECT_URL`). */
  connect?: ConnectHandler;
  /** Renewals of the sessions `connect` admitted with an `expiresAt`; without it, `connect` gets them. */
  renew?: RenewHandler;
  /** How long a handler may take, default 4000: below sockgate's own 5000, so the client learns `BACKEND_TIMEOUT` from us. */
  timeoutMs?: number;
  /** How old (or new) a signature may be, default 300 seconds: older calls are refused as replays. */
  toleranceSeconds?: number;
  /** Largest body read, default 1 MiB (raise it with `SOCKGATE_MAX_MESSAGE`). Larger is 413. */
  maxBodyBytes?: number;
  /** Told of every failure the client does not see the details of; default `console.error`. */
  onError?: (err: unknown, call: Call | undefined) => void;
}

/** An answer, before it is written: the status and the JSON body. */
export interface HandlerResult {
  status: number;
  body: unknown;
}

/**
 * A Node request, with the body a framework may already have read: a
 * Buffer or string `body` (`express.raw`), or a `rawBody` Buffer kept
 * beside the parsed one (NestJS's `rawBody: true`, a `verify` callback).
 */
export type NodeRequest = IncomingMessage & { body?: unknown; rawBody?: unknown };

export interface SockgateHandler {
  /** The Web-standard form: Next.js route handlers, Hono, Bun, Deno. */
  (request: Request): Promise<Response>;
  /** Node's form: `http.createServer`, Express (`app.post(path, handler.node)`). */
  node(req: NodeRequest, res: ServerResponse): void;
  /**
   * The answer to a call whose raw body is already read, for adapters: the
   * signature check, the dispatch and the reply, not the body's size (the
   * adapter bounds what it reads).
   */
  handle(method: string, signature: string | null | undefined, rawBody: Uint8Array): Promise<HandlerResult>;
}

export const DEFAULT_TIMEOUT_MS = 4000;
export const DEFAULT_MAX_BODY_BYTES = 1 << 20;
/** How much of a too-large body is read and dropped before the 413, so the caller reads it rather than a broken pipe. */
const DISCARD_MAX_BYTES = 8 << 20;
const DISCARD_MAX_MS = 5000;

/** The handler for sockgate's calls. */
export function createHandler(options: HandlerOptions): SockgateHandler {
  const handle = (method: string, signature: string | null | undefined, rawBody: Uint8Array) =>
    answer(options, method, signature, rawBody);
  const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const web = async (request: Request): Promise<Response> => {
    if (request.method !== "POST") return toResponse(methodNotAllowed());
    const raw = await readWebBody(request, maxBody);
    if (raw === null) return toResponse(tooLarge(maxBody));
    return toResponse(await handle(request.method, request.headers.get(SIGNATURE_HEADER), raw));
  };
  const node = (req: NodeRequest, res: ServerResponse) => {
    serveNode(req, res, handle, maxBody).catch((err) => {
      report(options, err, undefined);
      if (!res.headersSent) writeNode(res, { status: 500, body: failure("INTERNAL", "the request could not be answered") });
      else res.destroy();
    });
  };
  return Object.assign(web, { node, handle });
}

// ---- checking and dispatching -------------------------------------------

async function answer(
  options: HandlerOptions,
  method: string,
  signature: string | null | undefined,
  rawBody: Uint8Array,
): Promise<HandlerResult> {
  if (method !== "POST") return methodNotAllowed();
  if (typeof options.secret !== "string" || options.secret.length === 0) {
    report(options, new Error("createHandler was given no secret (SOCKGATE_EVENTS_SECRET): every call is refused"), undefined);
    return { status: 500, body: failure("INTERNAL", "the backend has no secret to check sockgate's signature with") };
  }
  const toleranceSeconds = options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  // The signature first: nothing of an unsigned body is read, let alone run.
  if (!verifySignature(rawBody, signature, options.secret, { toleranceSeconds })) {
    return { status: 401, body: failure("UNAUTHORIZED", "missing, wrong or stale Sockgate-Signature") };
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(rawBody).toString("utf8"));
  } catch {
    return invalid("the body is not JSON");
  }
  if (isEventCall(body)) return { status: 200, body: await answerEvent(options, body) };
  if (isRenewCall(body)) return answerConnect(options, body, options.renew ?? options.connect);
  if (isConnectCall(body)) return answerConnect(options, body, options.connect);
  return invalid("the body is not a sockgate call (an event, a handshake or a renewal)");
}

async function answerEvent(options: HandlerOptions, call: EventCall): Promise<EventReply> {
  const handler = ownHandler(options.events, call.event);
  if (!handler) return { error: { code: "UNKNOWN_EVENT", message: `no handler for the event "${call.event}"` } };
  const { ctx, effects, seal } = createContext(call);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const outcome = await settle(() => handler(ctx, ...call.args), timeoutMs);
  seal();
  switch (outcome.kind) {
    case "value":
      return buildReply(outcome.value, effects);
    case "timeout":
      report(options, new Error(`the handler of "${call.event}" did not settle within ${timeoutMs} ms`), call);
      return { error: { code: "BACKEND_TIMEOUT", message: `the app did not answer "${call.event}" within ${timeoutMs} ms` } };
    case "error":
      // A throw changes nothing: the effects added before it are dropped.
      if (outcome.error instanceof SockgateError) return { error: outcome.error.toAnswer("BACKEND_ERROR") };
      report(options, outcome.error, call);
      return { error: { code: "BACKEND_ERROR", message: "the app's handler failed" } };
  }
}

/**
 * The connect hook's answer. A `SockgateError` refuses the handshake with
 * its code (terminal for the client); any other failure or a timeout is a
 * 503, which sockgate takes as `AUTH_UNAVAILABLE`: the client retries by
 * itself, and a renewal leaves the session to run out at its `expiresAt`.
 */
async function answerConnect(
  options: HandlerOptions,
  call: ConnectCall | RenewCall,
  handler: ((call: never) => unknown) | undefined,
): Promise<HandlerResult> {
  if (!handler) {
    report(options, new Error("sockgate asked the connect hook, but createHandler was given no connect handler"), call);
    return { status: 200, body: failure("AUTH_REQUIRED", "this backend admits no connection") };
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const outcome = await settle(() => (handler as (call: ConnectCall | RenewCall) => unknown)(call), timeoutMs);
  switch (outcome.kind) {
    case "value": {
      const identity = toIdentity(outcome.value);
      if (identity) return { status: 200, body: identity };
      report(options, new TypeError("the connect handler returned no identity ({ userId: string | number, ... })"), call);
      return { status: 200, body: failure("BACKEND_ERROR", "the app's connect handler failed") };
    }
    case "timeout":
      report(options, new Error(`the connect handler did not settle within ${timeoutMs} ms`), call);
      return { status: 503, body: failure("BACKEND_TIMEOUT", "the app's connect handler did not answer in time") };
    case "error":
      if (outcome.error instanceof SockgateError) return { status: 200, body: { error: outcome.error.toAnswer("AUTH_REQUIRED") } };
      report(options, outcome.error, call);
      return { status: 503, body: failure("BACKEND_UNAVAILABLE", "the app's connect handler failed") };
  }
}

type Outcome = { kind: "value"; value: unknown } | { kind: "error"; error: unknown } | { kind: "timeout" };

/**
 * Runs `run` for at most `ms`. Past that the outcome is a timeout; the
 * handler goes on running, but what it returns or throws later is dropped
 * (and never an unhandled rejection).
 */
function settle(run: () => unknown, ms: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ kind: "timeout" }), ms);
    Promise.resolve()
      .then(run)
      .then(
        (value) => resolve({ kind: "value", value }),
        (error) => resolve({ kind: "error", error }),
      )
      .finally(() => clearTimeout(timer));
  });
}

/** The handler for `name`, never one inherited from Object (`constructor`, `__proto__`). */
function ownHandler(events: Record<string, EventHandler> | undefined, name: string): EventHandler | undefined {
  if (!events || !Object.prototype.hasOwnProperty.call(events, name)) return undefined;
  const handler = events[name];
  return typeof handler === "function" ? handler : undefined;
}

/** The fields sockgate reads from an identity, and only those: it refuses unknown fields. */
function toIdentity(value: unknown): Identity | null {
  if (!isObject(value)) return null;
  const { userId, expiresAt, claims, rooms } = value as Record<string, unknown>;
  if (typeof userId !== "string" && !(typeof userId === "number" && Number.isInteger(userId))) return null;
  const identity: Identity = { userId };
  if (expiresAt !== undefined && expiresAt !== null) identity.expiresAt = expiresAt as number;
  if (claims !== undefined && claims !== null) identity.claims = claims as Record<string, unknown>;
  if (rooms !== undefined && rooms !== null) identity.rooms = rooms as string[];
  return identity;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isEventCall(body: unknown): body is EventCall {
  return (
    isObject(body) &&
    typeof body.event === "string" &&
    Array.isArray(body.args) &&
    typeof body.id === "string" &&
    typeof body.userId === "string" &&
    typeof body.sessionId === "string"
  );
}

function isRenewCall(body: unknown): body is RenewCall {
  return isObject(body) && isObject(body.renew) && typeof body.renew.userId === "string";
}

function isConnectCall(body: unknown): body is ConnectCall {
  return isObject(body) && "auth" in body && isObject(body.headers);
}

function report(options: HandlerOptions, err: unknown, call: Call | undefined): void {
  try {
    if (options.onError) options.onError(err, call);
    else console.error("sockgate: a handler failed:", err);
  } catch {
    // A failing logger must not turn into a failed answer.
  }
}

function failure(code: string, message: string) {
  return { error: { code, message } };
}

function invalid(message: string): HandlerResult {
  return { status: 400, body: failure("INVALID_REQUEST", message) };
}

function methodNotAllowed(): HandlerResult {
  return { status: 405, body: failure("METHOD_NOT_ALLOWED", "sockgate's calls are POSTs") };
}

function tooLarge(limit: number): HandlerResult {
  return { status: 413, body: failure("PAYLOAD_TOO_LARGE", `the body is larger than ${limit} bytes`) };
}

/** The JSON text of an answer; an ack that cannot be JSON (a BigInt, a cycle) is the app's failure. */
function serialize(result: HandlerResult): { status: number; text: string } {
  try {
    return { status: result.status, text: JSON.stringify(result.body) };
  } catch {
    return { status: 200, text: JSON.stringify(failure("BACKEND_ERROR", "the app's answer is not JSON")) };
  }
}

// ---- the Web form ---------------------------------------------------------

function toResponse(result: HandlerResult): Response {
  const { status, text } = serialize(result);
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (status === 405) headers.allow = "POST";
  return new Response(text, { status, headers });
}

/** The body, or null when it is larger than `limit`. */
async function readWebBody(request: Request, limit: number): Promise<Uint8Array | null> {
  if (Number(request.headers.get("content-length") ?? 0) > limit) return null;
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      return null;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

// ---- the Node form --------------------------------------------------------

async function serveNode(
  req: NodeRequest,
  res: ServerResponse,
  handle: SockgateHandler["handle"],
  limit: number,
): Promise<void> {
  if (req.method !== "POST") return writeNode(res, methodNotAllowed());
  const raw = await readNodeBody(req, limit);
  if (raw === "too-large") {
    res.setHeader("connection", "close");
    return writeNode(res, tooLarge(limit));
  }
  if (raw === "parsed") {
    throw new Error(
      "the request's body was already parsed (express.json?), so its signature cannot be checked: " +
        'mount the handler with express.raw({ type: "application/json" }), before any body parser, or keep a rawBody',
    );
  }
  const header = req.headers[SIGNATURE_HEADER];
  writeNode(res, await handle("POST", typeof header === "string" ? header : null, raw));
}

function writeNode(res: ServerResponse, result: HandlerResult): void {
  const { status, text } = serialize(result);
  res.statusCode = status;
  res.setHeader("content-type", "application/json");
  if (status === 405) res.setHeader("allow", "POST");
  res.end(text);
}

/**
 * The raw body: the one a framework kept (`express.raw` gives a Buffer,
 * NestJS's `rawBody: true` a `rawBody`), else read from the stream, at
 * most `limit` bytes.
 */
async function readNodeBody(req: NodeRequest, limit: number): Promise<Uint8Array | "too-large" | "parsed"> {
  const kept = Buffer.isBuffer(req.rawBody) ? req.rawBody : Buffer.isBuffer(req.body) ? req.body : null;
  if (kept) return kept.length > limit ? "too-large" : kept;
  if (typeof req.body === "string") return Buffer.from(req.body, "utf8");
  if (req.readableEnded) return "parsed"; // someone read it and kept no raw copy
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > limit) {
    await discard(req);
    return "too-large";
  }
  return readStream(req, limit);
}

/** The stream's bytes; past `limit`, the rest is dropped and the answer is "too-large". */
function readStream(req: IncomingMessage, limit: number): Promise<Buffer | "too-large"> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) return void chunks.push(chunk);
      stop();
      discard(req).then(() => resolve("too-large"));
    };
    const onEnd = () => {
      stop();
      resolve(Buffer.concat(chunks));
    };
    const onError = (err: Error) => {
      stop();
      reject(err);
    };
    const stop = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
  });
}

/**
 * Reads and drops the rest of a body (at most 8 MiB, for at most 5 s): a
 * caller still writing when the connection closes gets a broken pipe
 * instead of the 413.
 */
function discard(req: IncomingMessage): Promise<void> {
  return new Promise((resolve) => {
    let dropped = 0;
    const done = () => {
      clearTimeout(timer);
      req.off("data", onData);
      req.off("end", done);
      req.off("error", done);
      req.off("close", done);
      resolve();
    };
    const onData = (chunk: Buffer) => {
      dropped += chunk.length;
      if (dropped > DISCARD_MAX_BYTES) done();
    };
    const timer = setTimeout(done, DISCARD_MAX_MS);
    req.on("data", onData);
    req.once("end", done);
    req.once("error", done);
    req.once("close", done);
    req.resume();
  });
}
