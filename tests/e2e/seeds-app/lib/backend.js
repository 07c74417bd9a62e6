// The backend's tokens: HS256 JWTs signed with BACKEND_JWT_SECRET that name
// the user in `id` (not `sub`), as the seeds' backends do. sockgate verifies
// them with the same secret (JWT_SECRET) and SOCKGATE_USER_CLAIM=id.
import { randomUUID } from "node:crypto";
import jwt from "jsonwebtoken";

const secret = () => process.env.BACKEND_JWT_SECRET;

/** Seconds a token lives: BACKEND_TOKEN_TTL, default one hour. */
export const tokenTtl = () => Number(process.env.BACKEND_TOKEN_TTL ?? 3600);

/** A new token for `user`: `{ accessToken, expiresIn }`. */
export function mintToken({ id, name, role }) {
  const expiresIn = tokenTtl();
  const accessToken = jwt.sign({ id, name, role, jti: randomUUID() }, secret(), { algorithm: "HS256", expiresIn });
  return { accessToken, expiresIn };
}

/** The claims of a valid, unexpired token, or null. */
export function verifyToken(token) {
  try {
    return jwt.verify(token, secret(), { algorithms: ["HS256"] });
  } catch {
    return null;
  }
}
