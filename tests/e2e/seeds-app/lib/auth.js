// Next-Auth v4: the user logs in against the backend, whose JWT is kept in
// the Next-Auth session (an encrypted, HTTP-only cookie) and re-minted before
// it runs out.
import CredentialsProvider from "next-auth/providers/credentials";

// The backend is this same app (app/api/backend/*), reached from the server.
const backend = (path) => `${process.env.BACKEND_URL}${path}`;

// The documented "without session.token" setup: sockgate opens the session
// cookie itself, so the backend token never has to reach the page.
const cookieMode = () => process.env.SEEDS_COOKIE_MODE === "1";

async function backendLogin(credentials) {
  const res = await fetch(backend("/api/backend/login"), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: credentials?.username, password: credentials?.password }),
  });
  if (!res.ok) return null;
  const { user, accessToken, expiresIn } = await res.json();
  return { ...user, accessToken, expiresIn };
}

async function refreshAccessToken(token) {
  try {
    const res = await fetch(backend("/api/backend/refresh"), {
      method: "POST",
      headers: { authorization: `Bearer ${token.accessToken}` },
    });
    const body = await res.json();
    if (!res.ok) throw new Error(body.error);
    return {
      ...token,
      accessToken: body.accessToken,
      accessTokenExpires: Date.now() + body.expiresIn * 1000,
      accessTokenLifetime: body.expiresIn,
      error: undefined,
    };
  } catch {
    return { ...token, error: "RefreshAccessTokenError" };
  }
}

/** @type {import("next-auth").NextAuthOptions} */
export const authOptions = {
  secret: process.env.NEXTAUTH_SECRET,
  session: { strategy: "jwt" },
  pages: { signIn: "/login" },
  providers: [
    CredentialsProvider({
      name: "Credentials",
      credentials: {
        username: { label: "Username", type: "text" },
        password: { label: "Password", type: "password" },
      },
      authorize: backendLogin,
    }),
  ],
  callbacks: {
    async jwt({ token, user }) {
      if (user) {
        token.id = user.id;
        token.accessToken = user.accessToken;
        token.accessTokenExpires = Date.now() + user.expiresIn * 1000;
        token.accessTokenLifetime = user.expiresIn;
        token.role = user.role;
      }
      // Re-mint once less than half of the token's lifetime is left, so a
      // page asking on `auth:expiring` always gets a token that lives longer.
      const halfLife = token.accessTokenLifetime * 500;
      if (Date.now() < token.accessTokenExpires - halfLife) return token;
      return refreshAccessToken(token);
    },
    async session({ session, token }) {
      session.user.id = token.id;
      session.user.role = token.role;
      if (!cookieMode()) session.accessToken = token.accessToken;
      if (token.error) session.error = token.error;
      return session;
    },
  },
};
