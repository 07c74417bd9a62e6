#!/usr/bin/env bash
# Runs every sockgate test from a fresh clone:
#   1. formatting, clippy and rustdoc checks (warnings are errors),
#   2. Rust unit and integration tests (crates/*),
#   3. end-to-end tests: the official socket.io-client from npm against the
#      real sockgate binary (tests/e2e, dependencies pinned by package-lock.json),
#      including cluster tests on private redis-server processes and the
#      dashboard in Chromium,
#   4. the client SDKs (clients/): Node tests and the React example in Chromium.
# It installs what the tests need; nothing has to be set up by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> installing Node.js and npm (needed by the end-to-end tests)"
    apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
  else
    echo "error: the end-to-end tests need node and npm; install them and run again" >&2
    exit 1
  fi
fi

# The cluster tests start their own redis-server on a free port.
if ! command -v redis-server >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> installing redis-server (needed by the cluster tests)"
    apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
  else
    echo "error: the cluster tests need redis-server (Debian package redis-server); install it and run again" >&2
    exit 1
  fi
fi

# Two cluster tests read and write Redis directly with redis-cli.
if ! command -v redis-cli >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> installing redis-tools (redis-cli, needed by the cluster tests)"
    apt-get update -qq && apt-get install -y -qq redis-tools >/dev/null
  else
    echo "error: the cluster tests need redis-cli (Debian package redis-tools); install it and run again" >&2
    exit 1
  fi
fi

# The TLS test makes its own self-signed certificate with openssl.
if ! command -v openssl >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> installing openssl (needed by the TLS test)"
    apt-get update -qq && apt-get install -y -qq openssl >/dev/null
  else
    echo "error: the TLS test needs the openssl command; install it and run again" >&2
    exit 1
  fi
fi

# The browser tests (the dashboard in tests/e2e, @sockgate/react's example
# chat in clients/) drive Debian's Chromium; nothing downloads a browser.
if [ ! -x /usr/bin/chromium ] && [ -z "${CHROMIUM_PATH:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> installing chromium (needed by the browser tests)"
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  else
    echo "error: the browser tests need Chromium at /usr/bin/chromium (Debian package chromium) or CHROMIUM_PATH; install it and run again" >&2
    exit 1
  fi
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy and cargo doc (warnings are errors)"
cargo clippy --locked --workspace --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps --workspace

echo "==> Rust tests"
cargo build --locked --workspace
cargo test --locked --workspace

echo "==> end-to-end tests (socket.io-client against target/debug/sockgate)"
cd "$ROOT/tests/e2e"
npm ci --no-audit --no-fund --loglevel=error
npm test

# The client SDKs: @sockgate/client's Node tests and @sockgate/react's
# example chat in Chromium, both against target/debug/sockgate.
echo "==> client SDK tests (clients/js and clients/react against target/debug/sockgate)"
cd "$ROOT/clients"
npm ci --no-audit --no-fund --loglevel=error
npm run build
npm test
