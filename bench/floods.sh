#!/usr/bin/env bash
# Runs bench/floods.mjs (the security review's floods, RSS before, at the
# peak and 30 s after) against one sockgate binary, with the open-file limit
# raised to the hard limit for it and the server it starts.
#
#   bench/floods.sh [BINARY] [floods.mjs options]
#   bench/floods.sh target/release/sockgate --floods attachments,slow
#
# BINARY defaults to $CARGO_TARGET_DIR/release/sockgate (target/ without it).
# Build it first: cargo build --release -p sockgate
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${CARGO_TARGET_DIR:-target}/release/sockgate"
if [ $# -gt 0 ] && [[ $1 != --* ]]; then
  BIN=$1
  shift
fi
if [ ! -x "$BIN" ]; then
  echo "no sockgate binary at $BIN (cargo build --release -p sockgate)" >&2
  exit 2
fi
if [ ! -d tests/e2e/node_modules/ws ]; then
  echo "tests/e2e/node_modules is missing: run npm ci in tests/e2e" >&2
  exit 2
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec node bench/floods.mjs --bin "$BIN" "$@"
