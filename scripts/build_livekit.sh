#!/usr/bin/env bash
# Build livekit-server once (pure Go, from the Go module proxy) into $CACHE/bin/livekit-server,
# for the tests that run a real LiveKit server (tests/livekit). Idempotent: a binary of the right
# version is kept. Called by scripts/setup.sh; safe to run on its own.
set -euo pipefail

CACHE="${PARLEY_CACHE_DIR:-$HOME/.cache/parley}"
LIVEKIT_VERSION=1.13.5
BIN="$CACHE/bin/livekit-server"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
right_version() { [ -x "$1" ] && "$1" --version 2>/dev/null | grep -q "version $LIVEKIT_VERSION\$"; }

right_version "$BIN" && exit 0
mkdir -p "$CACHE/bin"
# Earlier set-ups left `go install`'s own name for the binary (`server`): reuse it.
if right_version "$CACHE/bin/server"; then
  cp "$CACHE/bin/server" "$BIN.tmp" && mv "$BIN.tmp" "$BIN"
  say "livekit-server $LIVEKIT_VERSION: reused $CACHE/bin/server"
  exit 0
fi

command -v go >/dev/null 2>&1 || PATH="/usr/local/go/bin:$PATH"
if ! command -v go >/dev/null 2>&1; then
  say "skipping livekit-server: Go is not installed (https://go.dev/dl/); the LiveKit tests will be skipped"
  exit 0
fi

say "building livekit-server $LIVEKIT_VERSION once (Go module proxy; about 3 minutes on 2 cores)"
# Everything Go downloads or compiles stays in the cache, not in ~/go.
export GOPATH="$CACHE/go" GOMODCACHE="$CACHE/go/pkg/mod" GOCACHE="$CACHE/go/build"
export GOBIN="$CACHE/go/bin" CGO_ENABLED=0
# v1.13.5 needs Go 1.26: let an older local Go fetch that toolchain from the proxy.
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
go install "github.com/livekit/livekit-server/cmd/server@v$LIVEKIT_VERSION"
cp "$GOBIN/server" "$BIN.tmp" && mv "$BIN.tmp" "$BIN"
right_version "$BIN" || { echo "setup: $BIN does not report version $LIVEKIT_VERSION" >&2; exit 1; }
say "livekit-server $LIVEKIT_VERSION: $BIN"
