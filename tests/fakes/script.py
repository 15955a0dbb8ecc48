"""The scripted "brain" behind the fake chat-completions endpoints.

A :class:`Script` decides which canned reply answers each chat-completion request
and records every request body it sees. The functions at the bottom turn a reply
into the exact JSON objects OpenAI-compatible servers send: ``chat.completion``
bodies, and the ``chat.completion.chunk`` stream (text streamed word by word,
tool calls streamed as an id+name chunk followed by argument fragments).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

JSON = dict[str, Any]


@dataclass(frozen=True)
class TextReply:
    """An assistant text answer, streamed word by word."""

    text: str


@dataclass(frozen=True)
class ToolCallReply:
    """A single function call. ``arguments`` may be a dict or an already-encoded JSON string."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    call_id: str | None = None

    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(dict(self.arguments))


@dataclass(frozen=True)
class ParallelToolCalls:
    """Several function calls in one assistant turn (``tool_calls[0..n]``)."""

    calls: tuple[ToolCallReply, ...]


Reply = TextReply | ToolCallReply | ParallelToolCalls
ReplyLike = Reply | str
"""A reply; a bare ``str`` is shorthand for ``TextReply(str)``."""


class Rule(NamedTuple):
    """``match`` is looked for (case-insensitively) in the last user/tool message."""

    match: str
    reply: ReplyLike


def as_reply(reply: ReplyLike) -> Reply:
    return TextReply(reply) if isinstance(reply, str) else reply


def content_text(content: object) -> str:
    """Flatten an OpenAI message ``content`` (str, list of parts, or None) to text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") in ("text", "input_text")
        ]
        return " ".join(texts)
    return ""


def last_user_or_tool_text(messages: Sequence[object]) -> str:
    """Content of the last message whose role is ``user`` or ``tool`` ("" if none)."""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") in ("user", "tool"):
            return content_text(message.get("content"))
    return ""


@dataclass
class Script:
    """Scripted LLM replies.

    Selection for each request, in order:

    1. ``rules``: the first ``(match, reply)`` whose ``match`` occurs
       (case-insensitively) in the content of the LAST ``user`` or ``tool`` message;
    2. ``queue``: otherwise the next reply of this list is popped (FIFO);
    3. ``default``.

    ``first_token_delay_s`` is slept before the first streamed chunk (after the
    HTTP headers went out, like a real server's time-to-first-token) or before a
    non-streamed response; ``chunk_delay_s`` between later chunks. Every request
    body is appended to ``requests`` and every chosen reply to ``replies_sent``.
    """

    rules: list[tuple[str, ReplyLike]] = field(default_factory=list)
    default: ReplyLike = "OK."
    queue: list[ReplyLike] = field(default_factory=list)
    first_token_delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    requests: list[JSON] = field(default_factory=list)
    replies_sent: list[Reply] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def respond(self, body: JSON) -> Reply:
        """Record ``body`` and pick the reply for it."""
        messages = body.get("messages")
        text = last_user_or_tool_text(messages if isinstance(messages, list) else []).lower()
        with self._lock:
            self.requests.append(body)
            reply: ReplyLike | None = None
            for match, candidate in self.rules:
                if match.lower() in text:
                    reply = candidate
                    break
            if reply is None:
                reply = self.queue.pop(0) if self.queue else self.default
            chosen = as_reply(reply)
            self.replies_sent.append(chosen)
            return chosen


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def _tool_calls(reply: Reply) -> tuple[ToolCallReply, ...]:
    if isinstance(reply, ToolCallReply):
        return (reply,)
    if isinstance(reply, ParallelToolCalls):
        return reply.calls
    return ()


def _call_id(call: ToolCallReply, index: int, completion_id: str) -> str:
    return call.call_id or f"call_{completion_id[-16:]}{index:02d}"


def split_words(text: str) -> list[str]:
    """Split text into word pieces that concatenate back to ``text`` exactly."""
    return re.findall(r"\s*\S+\s*$|\s*\S+", text) or [text]


def split_arguments(arguments: str, size: int = 8) -> list[str]:
    return [arguments[i : i + size] for i in range(0, len(arguments), size)] or [""]


def count_prompt_tokens(body: JSON) -> int:
    """A deterministic stand-in for a tokenizer: ~4 characters per token."""
    return max(1, len(json.dumps(body.get("messages", []))) // 4)


def usage_json(prompt_tokens: int, completion_tokens: int) -> JSON:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def stream_deltas(reply: Reply, completion_id: str) -> tuple[list[JSON], str]:
    """The ``delta`` objects of a streamed reply, and its ``finish_reason``."""
    calls = _tool_calls(reply)
    if not calls:
        assert isinstance(reply, TextReply)
        deltas: list[JSON] = [{"role": "assistant", "content": "", "refusal": None}]
        deltas += [{"content": piece} for piece in split_words(reply.text)]
        return deltas, "stop"
    deltas = []
    for index, call in enumerate(calls):
        head: JSON = {
            "index": index,
            "id": _call_id(call, index, completion_id),
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        first: JSON = {"tool_calls": [head]}
        if index == 0:
            first = {"role": "assistant", "content": None, "refusal": None, **first}
        deltas.append(first)
        for fragment in split_arguments(call.arguments_json()):
            deltas.append({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
    return deltas, "tool_calls"


def stream_chunks(
    reply: Reply,
    *,
    model: str,
    completion_id: str,
    include_usage: bool,
    prompt_tokens: int,
    extra: JSON | None = None,
) -> list[JSON]:
    """Every ``chat.completion.chunk`` object of a streamed reply, in order."""
    created = int(time.time())
    deltas, finish_reason = stream_deltas(reply, completion_id)

    def chunk(choices: list[JSON]) -> JSON:
        obj: JSON = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": choices,
        }
        if include_usage:
            obj["usage"] = None
        return obj

    chunks = [
        chunk([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}])
        for delta in deltas
    ]
    chunks.append(
        chunk([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish_reason}])
    )
    if extra:
        chunks[0].update(extra)
    if include_usage:
        final = chunk([])
        final["usage"] = usage_json(prompt_tokens, len(deltas) - 1)
        chunks.append(final)
    return chunks


def completion_json(
    reply: Reply, *, model: str, completion_id: str, prompt_tokens: int, extra: JSON | None = None
) -> JSON:
    """A non-streamed ``chat.completion`` body."""
    calls = _tool_calls(reply)
    message: JSON = {"role": "assistant", "content": None, "refusal": None, "annotations": []}
    if calls:
        message["tool_calls"] = [
            {
                "id": _call_id(call, index, completion_id),
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments_json()},
            }
            for index, call in enumerate(calls)
        ]
        completion_tokens = sum(len(split_arguments(c.arguments_json())) for c in calls)
    else:
        assert isinstance(reply, TextReply)
        message["content"] = reply.text
        completion_tokens = len(split_words(reply.text))
    body: JSON = {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if calls else "stop",
            }
        ],
        "usage": usage_json(prompt_tokens, completion_tokens),
        "service_tier": "default",
    }
    body.update(extra or {})
    return body
