import { fileURLToPath } from "node:url";

// The app has no package.json of its own: next, react and @sockgate/server
// (this repository's, a workspace link) come from clients/node_modules, so
// clients/ is the project root.
const clients = fileURLToPath(new URL("../../..", import.meta.url));

/** @type {import("next").NextConfig} */
export default {
  turbopack: { root: clients },
  outputFileTracingRoot: clients,
  poweredByHeader: false,
};
