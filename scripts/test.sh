#!/usr/bin/env bash
# Runs every sockgate test from a fresh clone:
#   1. formatting, clippy and rustdoc checks (warnings are errors),
#   2. Rust unit and integration tests (crates/*),
#   3. the client SDKs (clients/) are built,
#   4. end-to-end tests: the official socket.io-client from npm against the
#      real sockgate binary (tests/e2e, dependencies pinned by package-lock.json),
#      including cluster tests on private redis-server processes, the
#      dashboard in Chromium and the seeds app (Next.js with next-auth, and
#      the packed SDKs) in Chromium,
#   5. the client SDKs' tests: Node tests and the React example in Chromium.
# It installs what the tests need; nothing has to be set up by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

# need PACKAGES WHY CHECK...: unless CHECK succeeds, installs the Debian
# PACKAGES with apt-get (as root), or stops saying what needs them.
need() {
  local packages=$1 why=$2
  shift 2
  "$@" && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> installing $packages (needed by $why)"
    # shellcheck disable=SC2086 # a list of packages
    apt-get update -qq && apt-get install -y -qq $packages >/dev/null
  else
    echo "error: $why need the Debian package(s) $packages; install them and run again" >&2
    exit 1
  fi
}
has() {
  for command in "$@"; do command -v "$command" >/dev/null || return 1; done
}
has_chromium() {
  [ -x /usr/bin/chromium ] || [ -n "${CHROMIUM_PATH:-}" ]
}

need "nodejs npm" "the end-to-end tests" has node npm
# The cluster tests start their own redis-server on a free port, and two of
# them read and write Redis directly with redis-cli.
need redis-server "the cluster tests" has redis-server
need redis-tools "the cluster tests (redis-cli)" has redis-cli
# The TLS test makes its own self-signed certificate.
need openssl "the TLS test" has openssl
# The browser tests (the dashboard in tests/e2e, @sockgate/react's example
# chat in clients/) drive Debian's Chromium; nothing downloads a browser.
need chromium "the browser tests" has_chromium

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy and cargo doc (warnings are errors)"
cargo clippy --locked --workspace --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps --workspace

echo "==> Rust tests"
cargo build --locked --workspace
cargo test --locked --workspace

# The client SDKs are built first: the end-to-end tests' seeds app (a
# Next.js app in tests/e2e/seeds-app) installs them from `npm pack`.
echo "==> building the client SDKs (clients/)"
cd "$ROOT/clients"
npm ci --no-audit --no-fund --loglevel=error
npm run build

echo "==> end-to-end tests (socket.io-client against target/debug/sockgate)"
cd "$ROOT/tests/e2e"
npm ci --no-audit --no-fund --loglevel=error
npm test

# The client SDKs: @sockgate/client's Node tests and @sockgate/react's
# example chat in Chromium, both against target/debug/sockgate.
echo "==> client SDK tests (clients/js and clients/react against target/debug/sockgate)"
cd "$ROOT/clients"
npm test
