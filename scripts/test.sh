#!/usr/bin/env bash
# Runs every coedit test: Go (with -race), the real sharedb client interop
# tests and the JS client tests (node --test), and the browser end-to-end
# test in headless Chromium. On a fresh Debian machine it first installs
# what those tests need and is missing: Node packages (npm ci, from the
# lockfile), redis-server and chromium (apt-get; needs root or sudo).
#
# Usage: scripts/test.sh            # everything
#        scripts/test.sh -short     # skip the slow Go tests (local loop)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  log "installing $* (apt-get)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi

# Node packages: reinstall when the lockfile is newer than the install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

log "gofmt / go vet"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './node_modules/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
go vet ./...

short=()
[ "${1:-}" = "-short" ] && short=(-short)

log "go test -race ./..."
go test -race -count=1 -timeout 20m "${short[@]}" ./...

log "go test -race ./collab/ without pipelined group commits"
# collab's tests run their Hubs as coedit serve runs a single node, with
# pipelined group commits; a cluster's sessions commit one group at a time.
go test -race -count=1 ./collab/ -collab.pipeline=false

log "go test (memory bounds the race detector would distort)"
# The race detector grows goroutine stacks, so the idle connection's stack
# bound is checked in a plain build (TestIdleConnectionHeap skips it under -race).
go test -count=1 -run 'TestIdleConnectionHeap' ./web/

log "go vet and go test in bench/report (its own module, for the plotting library)"
(cd bench/report && go vet ./... && go test -count=1 ./...)

log "node --test (sharedb interop, JS client)"
# Build the server once for the Node tests.
bindir=$(mktemp -d)
trap 'rm -rf "$bindir"' EXIT
go build -o "$bindir/coedit" ./cmd/coedit
node_tests=(interop/*.test.mjs)
if compgen -G "web/static/test/*.test.mjs" >/dev/null; then node_tests+=(web/static/test/*.test.mjs); fi
# A test that hangs fails after 10 minutes instead of holding CI to its limit.
COEDIT_BIN="$bindir/coedit" node --test --test-concurrency=1 --test-timeout=600000 "${node_tests[@]}"
