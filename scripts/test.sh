#!/usr/bin/env bash
# Runs every test Veil has, the way CI does. It first installs what the
# tests need where it can: Debian's Chromium for the browser tests and
# Debian's ClickHouse (18.16) for the report engines' parity tests (as root
# through apt-get, or through sudo), and the Mixpanel SDKs from npm for the
# SDK tests.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

log "installing test dependencies"
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "cannot install chromium (not root, no sudo): install it with 'apt-get install chromium'" >&2
    exit 1
  fi
fi
chromium --version
# The server is in /usr/sbin, which a non-root PATH may lack.
if ! { command -v clickhouse-server || [ -x /usr/sbin/clickhouse-server ]; } >/dev/null 2>&1 ||
  ! command -v clickhouse-client >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clickhouse-server clickhouse-client >/dev/null
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clickhouse-server clickhouse-client >/dev/null
  else
    echo "cannot install clickhouse (not root, no sudo): install it with 'apt-get install clickhouse-server clickhouse-client'" >&2
    exit 1
  fi
fi
clickhouse-client --version
node --version && npm --version
(cd test/e2e/js && npm install --no-audit --no-fund --loglevel=error)

log "formatting and vet"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './test/e2e/js/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change: $unformatted" >&2
  exit 1
fi
go vet ./...

log "tests (race detector on; the end-to-end and ClickHouse parity tests must not skip)"
export VEIL_E2E_REQUIRE=1
go test -race -count=1 -timeout 20m ./...
log "all tests passed"
