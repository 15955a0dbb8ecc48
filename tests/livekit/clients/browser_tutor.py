"""Drive the voice tutor page in headless Chromium (Debian's, through Playwright) with a fake
microphone; runs inside the test's network namespace, prints JSON.

The microphone plays ``--wav`` once, after ``--lead-secs`` of silence (the greeting goes first)
and before a long silence. The script opens the page (the key in the URL fragment), joins,
waits for the agent's greeting caption, the user's caption, an agent reply containing
``--expect`` and its latency, takes a screenshot, hangs up and reports what the page showed.

    PARLEY_TEST_API_KEY=pk_... python -m tests.livekit.clients.browser_tutor
        --url 'http://10.213.0.1:8002/tutor?raw=1' --wav q.wav --expect eighty
        --screenshot artifacts/tutor.png

The key goes into the page's URL fragment, as ``parley up`` opens it (``/tutor#key=...``).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from playwright.sync_api import Page, sync_playwright

from tests.livekit.clients.common import RATE, emit, log, read_wav_48k, write_wav_48k

CHROMIUM = "/usr/bin/chromium"
# Records every change of the page's state attributes, with its time (ms since navigation).
RECORDER = """
window.__changes = [];
new MutationObserver((records) => {
  for (const r of records) {
    const value = r.target.getAttribute(r.attributeName);
    window.__changes.push({attr: r.attributeName, value, t: Math.round(performance.now())});
  }
}).observe(document, {
  subtree: true, attributes: true,
  attributeFilter: ["data-call-state", "data-agent-state", "data-bot-ready", "data-mic-heard",
                    "data-agent-heard"],
});
"""
SNAPSHOT = """() => ({
  body: {...document.body.dataset},
  status: document.getElementById("status").textContent,
  captions: [...document.querySelectorAll("#captions li")].map((li) => ({
    role: li.dataset.role, final: li.dataset.final === "true",
    text: li.querySelector(".text").textContent,
    latency: li.querySelector(".latency")?.textContent ?? null,
  })),
  latency: [...document.querySelectorAll("#latency-history li")].map((li) => ({
    turn: li.dataset.turn, voice_to_voice_ms: li.dataset.voiceToVoiceMs, text: li.textContent,
  })),
  latency_last: document.getElementById("latency-last").textContent,
  changes: window.__changes,
  messages: (window.tutorMessages || []).map(
    (m) => [m.type, JSON.stringify(m.data ?? null).slice(0, 300)]),
})"""


def fake_mic(speech: Path, lead_secs: float, tail_secs: float, out: Path) -> Path:
    """48 kHz mono: silence, the speech, silence (Chromium plays it once: ``%noloop``)."""
    silence = np.zeros(int(RATE * lead_secs), dtype=np.int16)
    after = np.zeros(int(RATE * tail_secs), dtype=np.int16)
    return write_wav_48k(out, np.concatenate([silence, read_wav_48k(speech), after]))


def wait(page: Page, script: str, timeout_s: float, what: str) -> float:
    """Poll a JS expression until it is truthy; returns the seconds it took, or fails with the
    page's state. Polled through DevTools (``evaluate``): Playwright's ``wait_for_function``
    evaluates strings inside the page, which its Content-Security-Policy rightly forbids."""
    started = time.monotonic()
    while not page.evaluate(script):
        if time.monotonic() - started > timeout_s:
            raise RuntimeError(f"timed out waiting for {what}: {page.evaluate(SNAPSHOT)}")
        page.wait_for_timeout(100)
    return round(time.monotonic() - started, 2)


def warm_up(page: Page) -> float:
    """A first call that only waits for the greeting, then hangs up: the agent's models are
    loaded by then, so in the real call the microphone's timing matches the agent's."""
    started = time.monotonic()
    page.click("#join")
    wait(page, "document.body.dataset.agentState === 'speaking'", 120, "the warm-up greeting")
    page.click("#hangup")
    wait(page, "document.body.dataset.callState === 'ended'", 15, "the warm-up hang-up")
    page.evaluate("window.__changes.length = 0; window.tutorMessages && (tutorMessages.length = 0)")
    return round(time.monotonic() - started, 2)


def run(args: argparse.Namespace) -> dict[str, Any]:
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(args.url))
    work = Path(tempfile.mkdtemp(prefix="tutor-browser-"))
    mic = fake_mic(Path(args.wav), args.lead_secs, args.tail_secs, work / "mic.wav")
    flags = [
        "--headless=new",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={mic}%noloop",
        "--autoplay-policy=no-user-gesture-required",
        # getUserMedia needs a secure context; the API is plain http inside the namespace.
        f"--unsafely-treat-insecure-origin-as-secure={origin}",
    ]
    console: list[str] = []
    timings: dict[str, float] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=flags, chromium_sandbox=False
        )
        try:
            page = browser.new_page(viewport={"width": 412, "height": 915})  # a phone
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            page.add_init_script(RECORDER)
            page.goto(f"{args.url}#key={os.environ['PARLEY_TEST_API_KEY']}")
            timings["agents"] = wait(page, "document.body.dataset.agents > 0", 20, "the agents")
            assert "#key=" not in page.url, "the key must leave the address bar"
            if args.warmup:
                timings["warmup"] = warm_up(page)
            page.click("#join")
            timings["connected"] = wait(
                page,
                "['connected','ended'].includes(document.body.dataset.callState)",
                30,
                "the call to connect",
            )
            assert page.evaluate("document.body.dataset.callState") == "connected", page.evaluate(
                SNAPSHOT
            )
            timings["greeting"] = wait(
                page,
                "document.querySelector('#captions li[data-role=agent]')",
                30,
                "the greeting caption",
            )
            timings["user_caption"] = wait(
                page,
                "document.querySelector('#captions li[data-role=user]')",
                args.lead_secs + 30,
                "the user's caption",
            )
            expect = json.dumps(args.expect.lower())
            timings["reply"] = wait(
                page,
                "[...document.querySelectorAll('#captions li[data-role=agent]')]"
                f".some((li) => li.textContent.toLowerCase().includes({expect}))",
                60,
                "the agent's reply caption",
            )
            timings["latency"] = wait(
                page, "document.querySelector('#latency-history li')", 30, "the latency"
            )
            wait(page, "document.body.dataset.agentState === 'listening'", 30, "end of reply")
            Path(args.screenshot).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=args.screenshot, full_page=True)
            shown = page.evaluate(SNAPSHOT)
            page.click("#hangup")
            timings["ended"] = wait(
                page, "document.body.dataset.callState === 'ended'", 15, "the hang-up"
            )
            ended = page.evaluate(SNAPSHOT)
        finally:
            browser.close()
    for line in console:
        log("console", line)
    return {
        "shown": shown,
        "ended": ended["body"],
        "status_after": ended["status"],
        "timings": timings,
        "console_errors": [c for c in console if c.startswith(("error", "pageerror"))],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--wav", required=True)
    parser.add_argument("--expect", required=True, help="a word of the agent's reply")
    parser.add_argument("--screenshot", required=True)
    parser.add_argument("--lead-secs", type=float, default=5.0)
    parser.add_argument(
        "--warmup", action="store_true", help="a first call to load the agent's models"
    )
    parser.add_argument("--tail-secs", type=float, default=60.0)
    args = parser.parse_args()
    emit(run(args))


if __name__ == "__main__":
    main()
