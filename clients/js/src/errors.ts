import { CODES, isErrorCode, type ErrorClass, type ErrorCode } from "./protocol";

/**
 * Codes the SDK itself reports, beside the server's, all retryable: an ack
 * that did not come back in time (`TIMEOUT`), a request made while the
 * socket is not connected (`NOT_CONNECTED`), and a connection attempt that
 * never reached the gateway's handshake (`UNREACHABLE`: nothing listening,
 * a CORS refusal of the page's origin, a TLS failure, a wrong URL or path).
 */
export type ClientErrorCode = "TIMEOUT" | "NOT_CONNECTED" | "UNREACHABLE";

/**
 * A code of the app's own, `[A-Z][A-Z0-9_]{0,63}`: the app's backend
 * answers an event with `{ error: { code } }`, or its connect hook refuses
 * a connection with one (docs/events.md). Always terminal.
 */
export type AppErrorCode = string & { readonly __appCode?: never };

/** A server code, one of the SDK's own, or the app's. */
export type AnyErrorCode = ErrorCode | ClientErrorCode | AppErrorCode;

const CLIENT_CODES: readonly string[] = ["TIMEOUT", "NOT_CONNECTED", "UNREACHABLE"];

/** Whether `code` may be an app's code: `[A-Z][A-Z0-9_]{0,63}`. */
export function isAppCode(code: unknown): code is AppErrorCode {
  return typeof code === "string" && /^[A-Z][A-Z0-9_]{0,63}$/.test(code);
}

/** A refusal from sockgate (or from the SDK), with its stable code. */
export class SockgateError extends Error {
  readonly code: AnyErrorCode;
  /** The class of `code`: the SDK's own codes are all retryable. */
  readonly retryable: boolean;

  constructor(code: AnyErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.name = "SockgateError";
    this.code = code;
    this.retryable = classOfAny(code) === "retryable";
  }

  /** The error of a refused ack `{ ok: false, code, message }` (or of a malformed answer). */
  static fromAck(ack: unknown): SockgateError {
    const a = (ack ?? {}) as { code?: unknown; message?: unknown };
    if (isAppCode(a.code)) return new SockgateError(a.code, typeof a.message === "string" ? a.message : a.code);
    return new SockgateError("INTERNAL", `unexpected answer from sockgate: ${safeJson(ack)}`);
  }
}

/** The class of a code: the server's own, the SDK's (retryable), or the app's (terminal). */
export function classOfAny(code: AnyErrorCode): ErrorClass {
  if (isErrorCode(code)) return CODES[code];
  return CLIENT_CODES.includes(code) ? "retryable" : "terminal";
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/**
 * Splits a handshake refusal, `err.message` = `"CODE: sentence"`, into its
 * code and sentence. Anything else (a transport error such as
 * `xhr poll error`) gives undefined.
 */
export function parseRefusal(message: string): { code: ErrorCode; message: string } | undefined {
  const m = /^([A-Z][A-Z_]*): ([\s\S]*)$/.exec(message);
  if (!m || !isErrorCode(m[1])) return undefined;
  return { code: m[1], message: m[2] };
}
