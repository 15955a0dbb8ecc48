"""Local LLM: llama-cpp-python with the bundled SmolLM2-135M-Instruct (toy quality, ~60 tok/s).

Pipecat's OpenAI service does the context, streaming and metrics work; this module only swaps
its HTTP client for an in-process one that speaks the same ``chat.completions.create`` shape.
Generation runs in a worker thread and stops between tokens when the stream is closed (barge-in).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

from openai.types.chat import ChatCompletionChunk
from pipecat.services.openai.llm import OpenAILLMService

from pipelines.services.local.models import cached, cpu_threads, smollm_path

CONTEXT_TOKENS = 2048
# Sampling knobs llama.cpp understands; everything else Pipecat sends (service_tier, ...) is
# dropped. Small models loop without a repeat penalty.
_PASS = ("temperature", "top_p", "max_tokens", "seed", "stop", "frequency_penalty")


PREFIX_CACHE_BYTES = 256 << 20


def llama_threads() -> int:
    # One core fewer than STT/TTS get: generation overlaps Piper's synthesis of the first piece,
    # and two busy thread pools on 2 cores slow both (see docs/benchmarks.md).
    return max(1, cpu_threads() - 1)


def llama_model(path: str) -> Any:
    from llama_cpp import Llama
    from llama_cpp.llama_cache import LlamaRAMCache

    def load() -> Any:
        model = Llama(
            model_path=path, n_ctx=CONTEXT_TOKENS, n_threads=llama_threads(), verbose=False
        )
        # Keeps the evaluated state of recent prompts: a call whose prompt starts with a known
        # prefix (the agent's system prompt + greeting, warmed at prewarm) only evaluates the
        # new tokens. Prefill runs at ~150 tok/s on 2 cores, so this saves ~1 s on turn one.
        model.set_cache(LlamaRAMCache(capacity_bytes=PREFIX_CACHE_BYTES))
        return model

    return cached(("llama", path), load)


def warm_prefix(path: str, messages: list[dict[str, Any]]) -> None:
    """Blocking: evaluate ``messages`` once so calls starting with them skip their prefill."""
    model = llama_model(path)
    with _model_lock(model):
        model.create_chat_completion(messages=to_llama_messages(messages), max_tokens=1)


_locks: dict[int, threading.Lock] = {}


def _model_lock(model: Any) -> threading.Lock:
    # One llama.cpp context is not re-entrant: every user of a model shares its lock.
    return _locks.setdefault(id(model), threading.Lock())


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def to_llama_messages(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Flatten OpenAI messages to the plain role/content pairs a chat template takes."""
    out: list[dict[str, str]] = []
    for m in messages:
        role = m.get("role", "user")
        if role == "developer":
            role = "system"
        if role == "tool":
            role, text = "user", f"(tool result) {_text(m.get('content'))}"
        else:
            text = _text(m.get("content"))
        if role in ("system", "user", "assistant") and text:
            out.append({"role": role, "content": text})
    return out


class _Stream:
    """Async iterator of ChatCompletionChunk fed by a generation thread."""

    def __init__(self, llama: Any, lock: threading.Lock, kwargs: dict[str, Any]):
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[ChatCompletionChunk | BaseException | None] = asyncio.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(llama, lock, kwargs), daemon=True, name="llama"
        )
        self._thread.start()

    def _put(self, item: ChatCompletionChunk | BaseException | None) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    def _run(self, llama: Any, lock: threading.Lock, kwargs: dict[str, Any]) -> None:
        try:
            with lock:
                for chunk in llama.create_chat_completion(stream=True, **kwargs):
                    if self._stop.is_set():
                        break
                    self._put(ChatCompletionChunk.model_validate(chunk))
            self._put(None)
        except BaseException as err:
            self._put(err)

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[ChatCompletionChunk]:
        try:
            while True:
                item = await self._queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self._stop.set()

    async def close(self) -> None:
        self._stop.set()


class _Completions:
    def __init__(self, llama: Any, repeat_penalty: float):
        self._llama = llama
        self._lock = _model_lock(llama)
        self._repeat_penalty = repeat_penalty

    async def create(self, **params: Any) -> _Stream:
        kwargs = {k: params[k] for k in _PASS if _given(params.get(k))}
        kwargs["messages"] = to_llama_messages(list(params.get("messages", [])))
        kwargs["repeat_penalty"] = self._repeat_penalty
        return _Stream(self._llama, self._lock, kwargs)


def _given(v: Any) -> bool:
    return v is not None and type(v).__name__ not in ("NotGiven", "Omit", "_NotGiven")


class _Chat:
    def __init__(self, completions: _Completions):
        self.completions = completions


class _Client:
    def __init__(self, llama: Any, repeat_penalty: float):
        self.chat = _Chat(_Completions(llama, repeat_penalty))


class LocalLlamaLLMService(OpenAILLMService):
    """OpenAILLMService over an in-process llama.cpp model. Tools are not offered to the model:
    a 135M model cannot call them reliably (use Groq or an OpenAI-compatible server for tools)."""

    def __init__(self, *, model_path: str | None = None, repeat_penalty: float = 1.15, **kw: Any):
        self._model_path = model_path or str(smollm_path())
        self._repeat_penalty = repeat_penalty
        super().__init__(api_key="local", **kw)

    def create_client(
        self,
        api_key: Any = None,
        base_url: Any = None,
        organization: Any = None,
        project: Any = None,
        default_headers: Any = None,
        **kwargs: Any,
    ) -> Any:
        return _Client(llama_model(self._model_path), self._repeat_penalty)
