import Sdk from "./sdk";

// The gateway's address is read when the page is served, not when it is built.
export const dynamic = "force-dynamic";

export default function Page() {
  return <Sdk url={process.env.SOCKGATE_URL} />;
}
