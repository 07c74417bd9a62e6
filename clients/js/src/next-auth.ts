import type { ClientOptions, TokenSource } from "./client";

/** The parts of a Next-Auth session the helpers read. */
export interface NextAuthSessionLike {
  token?: unknown;
  accessToken?: unknown;
}

/** What the helpers pass to `getSession`: next-auth v4's `GetSessionParams` has `broadcast`. */
export interface GetSessionParams {
  broadcast?: boolean;
}

/**
 * Next-Auth's `getSession` (from `next-auth/react`), or anything shaped like
 * it. The session is typed loosely on purpose: next-auth's own `Session` has
 * no `token` unless the app augments it, and cookie mode reads nothing from it.
 */
export type GetSession = (params?: GetSessionParams) => unknown;

/**
 * Reads the session without `broadcast`: next-auth's `getSession()` otherwise
 * posts a "session" message to every other tab, each of which then fetches
 * /api/auth/session too, on every token ask and every renewal.
 */
const readSession = (getSession: GetSession) => getSession({ broadcast: false });

/**
 * A `getToken` reading the token the app put in its Next-Auth session
 * (`session.token`, else `session.accessToken`), or null when logged out.
 * Calls `getSession({ broadcast: false })`.
 */
export function nextAuthToken(getSession: GetSession): TokenSource {
  return async () => {
    const session = (await readSession(getSession)) as NextAuthSessionLike | null | undefined;
    const token = session?.token ?? session?.accessToken;
    return typeof token === "string" && token !== "" ? token : null;
  };
}

/**
 * Client options for an app on Next-Auth.
 *
 * - `mode: "token"` (default): the token from the session, through `getToken`.
 * - `mode: "cookie"`: the browser sends the HTTP-only session cookie with the
 *   handshake (`withCredentials`); on `auth:expiring` the client calls
 *   `getSession({ broadcast: false })` (which rotates the cookie) and renews
 *   the connection with a ticket, without reconnecting.
 *
 * Both read the session with `{ broadcast: false }`, so that other tabs are
 * not told to read it too.
 */
export function nextAuth(getSession: GetSession, { mode = "token" }: { mode?: "token" | "cookie" } = {}): Pick<
  ClientOptions,
  "getToken" | "withCredentials" | "refreshSession"
> {
  if (mode === "cookie") {
    return {
      withCredentials: true,
      refreshSession: async () => {
        await readSession(getSession);
      },
    };
  }
  return { getToken: nextAuthToken(getSession) };
}
