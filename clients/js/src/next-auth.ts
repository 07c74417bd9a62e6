import type { ClientOptions, TokenSource } from "./client";

/** The parts of a Next-Auth session the helpers read. */
export interface NextAuthSessionLike {
  token?: unknown;
  accessToken?: unknown;
}

/** Next-Auth's `getSession` (from `next-auth/react`), or anything shaped like it. */
export type GetSession = () => Promise<NextAuthSessionLike | null | undefined> | NextAuthSessionLike | null | undefined;

/**
 * A `getToken` reading the token the app put in its Next-Auth session
 * (`session.token`, else `session.accessToken`), or null when logged out.
 */
export function nextAuthToken(getSession: GetSession): TokenSource {
  return async () => {
    const session = await getSession();
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
 *   `getSession()` (which rotates the cookie) and renews the connection with
 *   a ticket, without reconnecting.
 */
export function nextAuth(getSession: GetSession, { mode = "token" }: { mode?: "token" | "cookie" } = {}): Pick<
  ClientOptions,
  "getToken" | "withCredentials" | "refreshSession"
> {
  if (mode === "cookie") {
    return {
      withCredentials: true,
      refreshSession: async () => {
        await getSession();
      },
    };
  }
  return { getToken: nextAuthToken(getSession) };
}
