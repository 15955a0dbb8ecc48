#!/usr/bin/env bash
# Builds the browser tutor page (web/tutor) into api/static/tutor, which the API serves at
# /tutor. Idempotent and quick when nothing changed: `npm ci` only when node_modules is
# missing or the lock file changed, the build only when its inputs changed.
# Needs Node.js 20+ and npm (registry access the first time). PARLEY_SKIP_WEB=1 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WEB="$ROOT/web/tutor"
OUT="$ROOT/api/static/tutor"

say() { printf '\033[1m[web]\033[0m %s\n' "$*"; }

if [ "${PARLEY_SKIP_WEB:-}" = 1 ]; then
  say "skipped (PARLEY_SKIP_WEB=1): /tutor answers 503 until it is built"
  exit 0
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "build_web: Node.js 20+ and npm are needed to build the tutor page" \
    "(apt-get install nodejs npm), or set PARLEY_SKIP_WEB=1 to skip it" >&2
  exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  echo "build_web: Node.js $(node --version) is too old; the tutor page needs 20+" >&2
  exit 1
fi

# One build at a time (set-up and a test run may overlap).
exec 9>"$WEB/.build.lock"
flock 9

hash_of() { (cd "$WEB" && find "$@" -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-16; }

lock_hash=$(hash_of package.json package-lock.json)
if [ ! -d "$WEB/node_modules" ] || [ "$(cat "$WEB/node_modules/.parley-lock" 2>/dev/null)" != "$lock_hash" ]; then
  say "installing npm packages (npm ci)"
  (cd "$WEB" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_hash" >"$WEB/node_modules/.parley-lock"
fi

build_hash=$(hash_of package.json package-lock.json tsconfig.json build.mjs src)
if [ -f "$OUT/index.html" ] && [ "$(cat "$WEB/node_modules/.parley-build" 2>/dev/null)" = "$build_hash" ]; then
  say "tutor page up to date: $OUT"
  exit 0
fi
say "type-checking and building the tutor page"
(cd "$WEB" && node_modules/.bin/tsc --noEmit && node build.mjs)
echo "$build_hash" >"$WEB/node_modules/.parley-build"
