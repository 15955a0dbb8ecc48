"""Chunk sizes, overlap, heading context and metadata."""

from __future__ import annotations

import itertools
import json

import pytest

from pipelines.knowledge import chunk_text, count_tokens
from pipelines.knowledge.chunk import DEFAULT_MAX_TOKENS, DEFAULT_MIN_TOKENS
from tests.knowledge.conftest import Corpus


def _sentences(n: int, topic: str) -> list[str]:
    return [f"Sentence {i} explains one more detail about {topic} for patients." for i in range(n)]


def test_fixture_chunks_fit_the_model_window(corpus: Corpus) -> None:
    assert len(corpus.chunks) >= 20
    for c in corpus.chunks:
        assert c.metadata["token_count"] == count_tokens(c.content)
        assert c.metadata["token_count"] <= DEFAULT_MAX_TOKENS  # embedded whole, no truncation
        json.dumps(c.metadata)  # goes into a jsonb column
    sizes = [c.metadata["token_count"] for c in corpus.chunks]
    # Most chunks are full-sized; short ones are document or section ends.
    assert sum(s >= DEFAULT_MIN_TOKENS for s in sizes) >= len(sizes) // 2


def test_ordinals_and_metadata() -> None:
    text = "# Guide\n\n" + "\n\n".join(" ".join(_sentences(8, f"topic {i}")) for i in range(6))
    chunks = chunk_text(text, metadata={"source": "guide.md", "document_id": 7})
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert len(chunks) > 1
    for c in chunks:
        assert c.metadata["source"] == "guide.md" and c.metadata["document_id"] == 7
        assert c.metadata["headings"] == ["Guide"]
        assert c.content.startswith("Guide\n\n")


def test_long_section_splits_with_overlap_on_sentence_boundaries() -> None:
    body = " ".join(_sentences(60, "root canals"))
    chunks = chunk_text(f"# Root canals\n\n{body}", max_tokens=120, overlap_tokens=30)
    assert len(chunks) >= 5
    for prev, nxt in itertools.pairwise(chunks):
        prev_body = prev.content.split("\n\n", 1)[1]
        next_body = nxt.content.split("\n\n", 1)[1]
        first_sentence = next_body.split(". ")[0] + "."
        assert first_sentence in prev_body  # the next chunk repeats the previous tail
        assert count_tokens(first_sentence) <= 30
        assert next_body[0].isupper() and prev_body.endswith(".")  # no cut mid-sentence
    for c in chunks:
        assert count_tokens(c.content) <= 120


def test_no_overlap_when_disabled() -> None:
    body = " ".join(_sentences(40, "fillings"))
    chunks = chunk_text(body, max_tokens=100, overlap_tokens=0)
    assert " ".join(c.content for c in chunks) == body


def test_chunks_break_at_paragraphs_when_possible() -> None:
    paragraphs = [" ".join(_sentences(5, f"subject {i}")) for i in range(8)]
    chunks = chunk_text("\n\n".join(paragraphs), max_tokens=200, min_tokens=100)
    for c in chunks:
        # Every chunk starts at a paragraph start (overlap is itself a paragraph's tail).
        assert c.content.split("\n\n")[-1] in paragraphs


def test_heading_path_is_prefixed_and_nested() -> None:
    text = (
        "# Clinic guide\n\n## Prices\n\n### Crowns\n\n"
        + " ".join(_sentences(30, "crowns"))
        + "\n\n## Parking\n\n"
        + " ".join(_sentences(30, "parking"))
    )
    chunks = chunk_text(text, max_tokens=150)
    crowns = [c for c in chunks if "crowns" in c.content]
    parking = [c for c in chunks if "parking" in c.content.lower()]
    assert crowns[0].content.startswith("Clinic guide > Prices > Crowns\n\n")
    assert crowns[0].metadata["headings"] == ["Clinic guide", "Prices", "Crowns"]
    assert all(c.metadata["headings"] == ["Clinic guide", "Parking"] for c in parking)
    # No overlap across a heading: the parking chunks carry no crown sentences.
    assert not any("crowns" in c.content for c in parking)


def test_small_sections_share_a_chunk_with_inline_headings() -> None:
    text = (
        "# FAQ\n\n## Hours\n\nWe open at 8.\n\n## Parking\n\nFree parking behind.\n\n## Pets\n\nNo."
    )
    [chunk] = chunk_text(text)
    assert chunk.content == (
        "FAQ > Hours\n\nWe open at 8.\n\n## Parking\n\nFree parking behind.\n\n## Pets\n\nNo."
    )
    assert chunk.metadata["subheadings"] == ["Parking", "Pets"]


def test_trailing_heading_moves_to_next_chunk() -> None:
    long_para = " ".join(_sentences(12, "whitening"))
    text = f"# A\n\n{long_para}\n\n## B\n\n{long_para}"
    chunks = chunk_text(text, max_tokens=200, min_tokens=180)
    assert not any(c.content.rstrip().endswith("## B") for c in chunks)
    assert chunks[-1].metadata["headings"] == ["A", "B"]


def test_title_is_prefixed_once() -> None:
    [c] = chunk_text("# Opening hours\n\nOpen daily.", title="Opening hours")
    assert c.content == "Opening hours\n\nOpen daily."
    [c] = chunk_text("Open daily.", title="Bakery")
    assert c.content == "Bakery\n\nOpen daily."


def test_list_lines_stay_lines() -> None:
    [c] = chunk_text("Bring:\n- your ID\n- a list of medicines")
    assert c.content == "Bring:\n- your ID\n- a list of medicines"


def test_run_on_text_without_punctuation_is_split() -> None:
    words = " ".join(f"word{i}" for i in range(2000))
    chunks = chunk_text(words, max_tokens=100)
    assert all(count_tokens(c.content) <= 100 for c in chunks)
    assert "word1999" in chunks[-1].content


def test_empty_text_and_bad_arguments() -> None:
    assert chunk_text("") == []
    assert chunk_text("# Only a heading") == []
    with pytest.raises(ValueError, match="overlap_tokens"):
        chunk_text("x", max_tokens=100, overlap_tokens=80)


def test_custom_counter() -> None:
    chunks = chunk_text(
        "one two three. four five six. seven eight nine.",
        max_tokens=6,
        overlap_tokens=0,
        count=lambda s: len(s.split()),
    )
    assert [c.content for c in chunks] == ["one two three. four five six.", "seven eight nine."]
