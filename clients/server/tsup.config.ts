import { defineConfig } from "tsup";

export default defineConfig({
  entry: ["src/index.ts", "src/nest.ts"],
  format: ["esm", "cjs"],
  dts: true,
  sourcemap: true,
  clean: true,
  target: "es2020",
  // NestJS and rxjs are the app's: peer dependencies, never bundled.
  external: [/^@nestjs\//, "rxjs", "reflect-metadata"],
});
