#!/usr/bin/env node
// A flood of Engine.IO opens that never authenticate, from one client: the
// attack of security review item 2. Opens `GET /socket.io/?EIO=4&transport=polling`
// over keep-alive connections for a fixed time and reports how many opens the
// server granted, how many it refused (by status), and its RSS before, after
// and at its peak. Only ever sends to the URL given (use 127.0.0.1).
//   node bench/flood-opens.mjs --url http://127.0.0.1:3001 --pid <server pid> [--seconds 8] [--conc 64]
import http from "node:http";
import { readFileSync } from "node:fs";

const arg = (k, d) => {
  const i = process.argv.indexOf(`--${k}`);
  return i > 0 ? process.argv[i + 1] : d;
};
const url = new URL("/socket.io/?EIO=4&transport=polling", arg("url"));
const pid = +arg("pid");
const seconds = +arg("seconds", 8);
const conc = +arg("conc", 64);
if (!arg("url") || !pid) {
  console.error("usage: --url URL --pid SERVER_PID [--seconds 8] [--conc 64]");
  process.exit(2);
}
if (!["127.0.0.1", "localhost", "[::1]"].includes(url.hostname)) {
  console.error("refusing to flood anything but this machine");
  process.exit(2);
}
const status = (field) => +readFileSync(`/proc/${pid}/status`, "utf8").match(new RegExp(`${field}:\\s+(\\d+)`))[1];
const agent = new http.Agent({ keepAlive: true, maxSockets: conc });
const counts = {};
const before = status("VmRSS");
const deadline = Date.now() + seconds * 1000;

function open() {
  return new Promise((resolve) => {
    const req = http.get(url, { agent }, (res) => {
      res.resume();
      res.on("end", () => {
        counts[res.statusCode] = (counts[res.statusCode] ?? 0) + 1;
        resolve();
      });
    });
    req.on("error", () => {
      counts.error = (counts.error ?? 0) + 1;
      resolve();
    });
  });
}

async function worker() {
  while (Date.now() < deadline) await open();
}
await Promise.all(Array.from({ length: conc }, worker));
const after = status("VmRSS");
agent.destroy();
console.log(
  JSON.stringify({
    seconds,
    conc,
    opened: counts[200] ?? 0,
    refused: Object.fromEntries(Object.entries(counts).filter(([k]) => k !== "200")),
    rss_before_mib: +(before / 1024).toFixed(1),
    rss_after_mib: +(after / 1024).toFixed(1),
    rss_peak_mib: +(status("VmHWM") / 1024).toFixed(1),
  }),
);
