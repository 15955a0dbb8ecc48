"""Run a FakeCloud as a process (e.g. inside a test's network namespace, next to a worker).

    python -m tests.fakes.serve --port 8090 --rule "check-up=A check-up costs eighty dollars."

Serves the OpenAI-compatible, Groq and Deepgram endpoints on 127.0.0.1:PORT until SIGTERM;
prints ``ready`` once listening. Speech endpoints answer with a fixed ``--transcript``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from tests.fakes.cloud import FakeCloud
from tests.fakes.script import Rule, Script


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--rule", action="append", default=[], help="MATCH=REPLY (case-insensitive)")
    p.add_argument("--default", default="Sorry, I did not catch that.")
    p.add_argument("--transcript", default="hello")
    p.add_argument("--first-token-delay", type=float, default=0.0)
    args = p.parse_args(argv)
    rules = [Rule(*r.split("=", 1)) for r in args.rule]
    script = Script(rules=rules, default=args.default, first_token_delay_s=args.first_token_delay)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with FakeCloud(script, transcribe=args.transcript, api_key=None).start(port=args.port):
        print("ready", flush=True)
        stop.wait()


if __name__ == "__main__":
    main(sys.argv[1:])
