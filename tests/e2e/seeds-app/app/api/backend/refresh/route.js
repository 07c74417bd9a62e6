// POST /api/backend/refresh with `Authorization: Bearer <token>` → a new
// token for the same user, while the old one is still valid.
import { NextResponse } from "next/server";
import { mintToken, verifyToken } from "@/lib/backend";

export async function POST(request) {
  const bearer = request.headers.get("authorization")?.replace(/^Bearer /, "") ?? "";
  const claims = verifyToken(bearer);
  if (!claims) return NextResponse.json({ error: "invalid or expired token" }, { status: 401 });
  return NextResponse.json(mintToken(claims));
}
