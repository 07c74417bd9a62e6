// POST /api/backend/login { username, password } → { user, accessToken, expiresIn }
import { NextResponse } from "next/server";
import { mintToken } from "@/lib/backend";
import { findUser } from "@/lib/users";

export async function POST(request) {
  const { username, password } = await request.json().catch(() => ({}));
  const user = findUser(username, password);
  if (!user) return NextResponse.json({ error: "invalid credentials" }, { status: 401 });
  const { id, name, role } = user;
  return NextResponse.json({ user: { id, name, role }, ...mintToken(user) });
}
