"""Logs are structured, carry call_id, and never show phone numbers or secrets."""

from __future__ import annotations

import json

import pytest
from loguru import logger

from parley import log


def test_json_logs_carry_call_id_and_redact(capsys: pytest.CaptureFixture[str]) -> None:
    log.configure("INFO", json_logs=True)
    try:
        with logger.contextualize(call_id="c0ffee"):
            logger.info("dialing +44 20 7946 0958 with Authorization: Bearer sk_live_abcdef123456")
            logger.info("groq key gsk_ABCDEFGH12345678 and api_key=supersecretvalue1")
        logger.info("outside a call")
    finally:
        log.configure("INFO")
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    assert [x["call_id"] for x in lines] == ["c0ffee", "c0ffee", "-"]
    text = " ".join(x["msg"] for x in lines)
    assert "7946" not in text and "<phone>" in text
    assert "sk_live_abcdef123456" not in text and "gsk_ABCDEFGH12345678" not in text
    assert "supersecretvalue1" not in text
    assert lines[0]["level"] == "INFO" and lines[0]["ts"]


def test_redact_keeps_ordinary_numbers() -> None:
    assert log.redact("turn 3 took 1250 ms") == "turn 3 took 1250 ms"
    assert log.redact("call +14155550123 now") == "call <phone> now"


@pytest.mark.parametrize(
    "line",
    [
        "egress refused: 127.0.0.1:8080 (a loopback address, 127.0.0.1)",
        "tool crm GET 192.168.100.200 -> HTTP 200 in 12 ms",
        "tool crm GET 10.0.0.1.nip.io -> refused (a private address)",
        "metadata 169.254.169.254 and ::ffff:127.0.0.1",
    ],
)
def test_ip_addresses_and_hosts_stay_as_they_are(line: str) -> None:
    assert log.redact(line) == line


def test_phone_numbers_next_to_addresses_are_still_redacted() -> None:
    assert log.redact("caller +1 415 555 2671 from 10.0.0.7") == "caller <phone> from 10.0.0.7"
    assert log.redact("10.0.0.7 dialed 415.555.2671") == "10.0.0.7 dialed <phone>"
    assert log.redact("+1 415 555 2671") == "<phone>"
