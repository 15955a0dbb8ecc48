# The two commands of the README. Both set everything up first (idempotent, cached).
.PHONY: run test setup lint bench

run: setup
	.venv/bin/parley up

test: setup
	.venv/bin/python -m pytest

setup:
	bash scripts/setup.sh

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

bench: setup
	.venv/bin/python bench/voice_latency.py
