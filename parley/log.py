"""Structured logging on loguru (Pipecat's logger), with call_id and redaction of secrets/phones."""

from __future__ import annotations

import json
import re
import sys
from typing import TYPE_CHECKING, Any

from loguru import logger

if TYPE_CHECKING:
    from loguru import Record

# E.164-ish numbers and common secret shapes; redaction runs on every record, so keep it regexes.
# Not inside identifiers: a UUID's digit groups are not a phone number.
_PHONE = re.compile(r"(?<![\w/-])\+?\d[\d\s().-]{7,}\d(?![\w-])")
_SECRET = re.compile(
    r"(?i)(bearer\s+|token\s+|api[_-]?key[\"'=:\s]+|secret[\"'=:\s]+)([A-Za-z0-9._\-]{8,})"
)
_KEY_PREFIX = re.compile(r"\b(gsk|sk|pk|dg)_[A-Za-z0-9]{8,}\b")
# Dotted quads (IPv4 addresses, also inside host names) are not phone numbers: the phone
# pattern runs on the text between them, so it can neither match nor swallow one.
_IPV4 = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?!\d)(?!\.\d)")


def redact(text: str) -> str:
    text = _SECRET.sub(lambda m: m.group(1) + "***", text)
    text = _KEY_PREFIX.sub(lambda m: m.group(1) + "_***", text)
    out: list[str] = []
    start = 0
    for ip in _IPV4.finditer(text):
        out += [_PHONE.sub("<phone>", text[start : ip.start()]), ip.group()]
        start = ip.end()
    out.append(_PHONE.sub("<phone>", text[start:]))
    return "".join(out)


def _patch(record: Record) -> None:
    record["message"] = redact(record["message"])
    record["extra"].setdefault("call_id", "-")


def _json_sink(message: Any) -> None:
    r = message.record
    out = {
        "ts": r["time"].isoformat(),
        "level": r["level"].name,
        "logger": r["name"],
        "msg": r["message"],
        **{k: v for k, v in r["extra"].items() if isinstance(v, str | int | float | bool)},
    }
    sys.stderr.write(json.dumps(out) + "\n")


def configure(level: str = "INFO", json_logs: bool = False) -> None:
    """Replace loguru's default sink. Call once per process (CLI, worker, API)."""
    logger.remove()
    logger.configure(patcher=_patch)
    if json_logs:
        logger.add(_json_sink, level=level)
    else:
        logger.add(
            sys.stderr,
            level=level,
            format="{time:HH:mm:ss.SSS} {level: <7} call={extra[call_id]} {name}: {message}",
        )
