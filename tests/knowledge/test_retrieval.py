"""End to end over the fixture corpus: labelled questions must find their document.

Brute-force cosine in numpy stands in for pgvector here; vectors are unit length, so the
inner product is the cosine similarity.
"""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from pipelines.knowledge import LocalMiniLMEmbedder, extract
from tests.knowledge.conftest import DOCS, Corpus

K = 5


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def test_labelled_set_is_sound(questions: list[dict[str, str]]) -> None:
    assert len(questions) >= 20
    docs = {p.name for p in DOCS.iterdir()}
    assert len(docs) >= 10
    assert {q["document"] for q in questions} <= docs
    for q in questions:
        # Paraphrased, not copied: no run of 6 words shared with the expected document.
        text = _words(extract((DOCS / q["document"]).read_bytes(), filename=q["document"]).text)
        doc_grams = {tuple(text[i : i + 6]) for i in range(len(text) - 5)}
        words = _words(q["question"])
        shared = [g for i in range(len(words) - 5) if (g := tuple(words[i : i + 6])) in doc_grams]
        assert not shared, (q["question"], shared)


def test_recall_at_5(
    corpus: Corpus,
    embedder: LocalMiniLMEmbedder,
    questions: list[dict[str, str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    q_vectors = embedder.embed([q["question"] for q in questions])
    scores = q_vectors @ corpus.vectors.T
    hits_at_1 = hits_at_k = 0
    misses = []
    for q, row in zip(questions, scores, strict=True):
        top = [corpus.chunks[i].metadata["source"] for i in np.argsort(-row)[:K]]
        hits_at_1 += top[0] == q["document"]
        if q["document"] in top:
            hits_at_k += 1
        else:
            misses.append((q["question"], q["document"], top))
    recall = hits_at_k / len(questions)
    with capsys.disabled():
        print(
            f"\n[knowledge] recall@{K} = {recall:.3f}, recall@1 = {hits_at_1 / len(questions):.3f}"
            f" ({len(questions)} questions, {len(corpus.chunks)} chunks)"
        )
    assert recall >= 0.9, misses


def test_embedding_throughput(
    corpus: Corpus, embedder: LocalMiniLMEmbedder, capsys: pytest.CaptureFixture[str]
) -> None:
    texts = [c.content for c in corpus.chunks]
    batch32 = LocalMiniLMEmbedder(batch_size=32)  # shares the loaded model
    start = time.perf_counter()
    batch32.embed(texts)
    rate = len(texts) / (time.perf_counter() - start)
    tokens = np.mean([c.metadata["token_count"] for c in corpus.chunks])
    with capsys.disabled():
        print(f"\n[knowledge] embedding: {rate:.1f} chunks/s (batch 32, ~{tokens:.0f} tokens each)")
    assert rate > 1.0  # a sanity floor only: shared CI machines vary a lot
