import { APP_CODE } from "./protocol";

/**
 * An answer the app means to give: thrown from an event handler, it
 * becomes the client's ack `{ ok: false, code, message }`; thrown from the
 * connect handler, the client's `connect_error` with that code. `code`
 * should be `[A-Z][A-Z0-9_]{0,63}` (`CHAT_FORBIDDEN`): any other becomes
 * `BACKEND_ERROR`. `message` is shown to the client.
 */
export class SockgateError extends Error {
  readonly code: string;

  constructor(code: string, message?: string) {
    super(message ?? code);
    this.name = "SockgateError";
    this.code = code;
  }

  /** The `{ code, message }` of the answer: the code as sockgate would pass it. */
  toAnswer(fallback: string): { code: string; message: string } {
    return { code: APP_CODE.test(this.code) ? this.code : fallback, message: this.message };
  }
}

/**
 * A failed call of the admin API. `code` is the API's own
 * (`UNAUTHORIZED`, `INVALID_REQUEST`, `NOT_FOUND`, ...; docs/errors.md) or
 * the client's: `UNREACHABLE` (no connection to the gateway), `TIMEOUT`
 * (no answer within `timeoutMs`), `BAD_RESPONSE` (an answer that is not the
 * API's JSON). `status` is the HTTP status, 0 when there was none.
 */
export class SockgateApiError extends Error {
  readonly code: string;
  readonly status: number;

  constructor(code: string, status: number, message: string) {
    super(message);
    this.name = "SockgateApiError";
    this.code = code;
    this.status = status;
  }

  /** Whether trying the same call again may succeed. */
  get retryable(): boolean {
    return this.code === "UNREACHABLE" || this.code === "TIMEOUT" || this.status === 503 || this.status === 500;
  }
}
