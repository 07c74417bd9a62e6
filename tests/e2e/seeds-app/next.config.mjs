import { fileURLToPath } from "node:url";

// The app has no package.json of its own: next, react and next-auth come from
// tests/e2e/node_modules, one level up, so that is the project root.
const e2e = fileURLToPath(new URL("..", import.meta.url));

/** @type {import("next").NextConfig} */
export default {
  turbopack: { root: e2e },
  outputFileTracingRoot: e2e,
  poweredByHeader: false,
};
