import Realtime from "./realtime";

// The gateway's address is read when the page is served, not when it is built.
export const dynamic = "force-dynamic";

export default function Page() {
  return <Realtime url={process.env.SOCKGATE_URL} />;
}
