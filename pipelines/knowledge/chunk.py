"""Split cleaned document text into retrieval chunks.

Input is the text ``extract`` produces: paragraphs separated by blank lines, Markdown ``#``
headings on their own lines. Chunks are packed from whole paragraphs where possible (sentences
only when a paragraph does not fit), sized in MiniLM word pieces so that a chunk is embedded
whole: the default ``max_tokens`` is the model's 256-token window minus [CLS]/[SEP]. Each chunk
starts with its heading path ("Clinic > Opening hours") so that it reads, and embeds, in context.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipelines.knowledge.embed import MAX_SEQ_LENGTH, count_tokens

DEFAULT_MAX_TOKENS = MAX_SEQ_LENGTH - 2
DEFAULT_MIN_TOKENS = 150
DEFAULT_OVERLAP_TOKENS = 40
HEADING_SEPARATOR = " > "

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
# A sentence ends at . ! ? (optionally closed by quotes/brackets) followed by whitespace.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")
_BLANK_LINES = re.compile(r"\n\s*\n")


@dataclass(frozen=True)
class Chunk:
    """One retrieval unit; maps onto a row of ``chunks(content, embedding, metadata, ordinal)``."""

    ordinal: int
    content: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Piece:
    text: str
    tokens: int
    sep: str  # how it joins the previous piece: blank line (paragraph), newline (list), space
    heading: bool = False


@dataclass
class _Draft:
    headings: tuple[str, ...]
    pieces: list[_Piece] = field(default_factory=list)
    overlap: int = 0  # leading pieces repeated from the previous chunk

    def has_new_text(self) -> bool:
        return any(not p.heading for p in self.pieces[self.overlap :])

    def tokens(self) -> int:
        return sum(p.tokens for p in self.pieces)


def _pieces(paragraph: str, limit: int, count: Callable[[str], int]) -> list[_Piece]:
    """Sentences of a paragraph; its lines (list items, table rows) always start a piece."""
    out: list[_Piece] = []
    for line in paragraph.split("\n"):
        for n, sentence in enumerate(s.strip() for s in _SENTENCE_END.split(line)):
            if not sentence:
                continue
            sep = " " if n else "\n"
            tokens = count(sentence)
            parts = [sentence] if tokens <= limit else _split_long(sentence, limit, count)
            for part in parts:
                out.append(_Piece(part, tokens if len(parts) == 1 else count(part), sep))
                sep = " "
    if out:
        out[0].sep = "\n\n"
    return out


def _split_long(text: str, max_tokens: int, count: Callable[[str], int]) -> list[str]:
    """Word windows for a 'sentence' longer than a whole chunk (tables, run-on text)."""
    words = text.split()
    # Guess the window from the average word-piece rate, then shrink until it fits: a few
    # tokenizer calls per window instead of one per word.
    per_window = max(1, max_tokens * len(words) // max(1, count(text)))
    out: list[str] = []
    start = 0
    while start < len(words):
        size = per_window
        while size > 1 and count(" ".join(words[start : start + size])) > max_tokens:
            size = max(1, size * 9 // 10)
        out.append(" ".join(words[start : start + size]))
        start += size
    return out


class _Packer:
    def __init__(
        self,
        title: str | None,
        max_tokens: int,
        min_tokens: int,
        overlap_tokens: int,
        metadata: dict[str, Any],
        count: Callable[[str], int],
    ) -> None:
        self.title = title
        self.max_tokens = max_tokens
        self.min_tokens = min_tokens
        self.overlap_tokens = overlap_tokens
        self.metadata = metadata
        self.count = count
        self.stack: list[tuple[int, str]] = []
        self.chunks: list[Chunk] = []
        self._prefix_cache: dict[tuple[str, ...], int] = {}
        self.draft = _Draft(self.path())

    def path(self) -> tuple[str, ...]:
        names = [name for _, name in self.stack]
        if self.title and (not names or names[0].casefold() != self.title.casefold()):
            names.insert(0, self.title)
        return tuple(names)

    def prefix_tokens(self, headings: tuple[str, ...]) -> int:
        if headings not in self._prefix_cache:
            joined = HEADING_SEPARATOR.join(headings)
            self._prefix_cache[headings] = self.count(joined) if headings else 0
        return self._prefix_cache[headings]

    def budget(self, headings: tuple[str, ...]) -> int:
        # Joining with spaces or newlines adds no word pieces, so sizes add up exactly.
        return self.max_tokens - self.prefix_tokens(headings)

    def emit(self) -> None:
        d = self.draft
        # A heading with nothing after it belongs to the next chunk (it is in that one's path).
        while d.pieces and d.pieces[-1].heading:
            d.pieces.pop()
        if d.has_new_text():
            body = d.pieces[0].text + "".join(p.sep + p.text for p in d.pieces[1:])
            prefix = HEADING_SEPARATOR.join(d.headings)
            content = f"{prefix}\n\n{body}" if prefix else body
            tokens = d.tokens() + self.prefix_tokens(d.headings)
            meta = {**self.metadata, "headings": list(d.headings), "token_count": tokens}
            inner = [p.text.lstrip("#").strip() for p in d.pieces if p.heading]
            if inner:
                meta["subheadings"] = inner
            self.chunks.append(Chunk(len(self.chunks), content, meta))
        self.draft = self.next_draft(d)

    def next_draft(self, d: _Draft) -> _Draft:
        nxt = _Draft(self.path())
        # Overlap only inside one section: after a heading the context has changed anyway.
        if d.headings != nxt.headings or any(p.heading for p in d.pieces):
            return nxt
        tail: list[_Piece] = []
        for piece in reversed(d.pieces):
            if sum(p.tokens for p in tail) + piece.tokens > self.overlap_tokens:
                break
            tail.insert(0, piece)
        if tail:
            tail[0] = _Piece(tail[0].text, tail[0].tokens, "\n\n")
        nxt.pieces, nxt.overlap = tail, len(tail)
        return nxt

    def heading(self, level: int, name: str) -> None:
        while self.stack and self.stack[-1][0] >= level:
            self.stack.pop()
        self.stack.append((level, name))
        if self.draft.tokens() >= self.min_tokens or not self.draft.has_new_text():
            self.emit()
            self.draft = _Draft(self.path())
        else:
            # Small sections share a chunk; the heading stays inline as a separator.
            line = f"{'#' * level} {name}"
            self.draft.pieces.append(_Piece(line, self.count(line), "\n\n", heading=True))

    def paragraph(self, text: str) -> None:
        pieces = _pieces(text, max(8, self.budget(self.path())), self.count)
        d = self.draft
        total = sum(p.tokens for p in pieces)
        if d.tokens() + total > self.budget(d.headings):
            marks = [i for i, p in enumerate(d.pieces) if p.heading]
            section = d.pieces[marks[-1] + 1 :] if marks else []
            if d.tokens() >= self.min_tokens:
                # Prefer to close a chunk between paragraphs rather than inside one.
                self.emit()
            elif marks and sum(p.tokens for p in section) <= self.budget(self.path()):
                # The section that shares this chunk is growing past it: give it its own
                # chunk from its heading on, rather than cut it behind another section.
                d.pieces = d.pieces[: marks[-1]]
                self.emit()
                self.draft = _Draft(self.path(), section)
        for piece in pieces:
            d = self.draft
            if d.tokens() + piece.tokens > self.budget(d.headings):
                if d.has_new_text():
                    self.emit()
                    d = self.draft
                # Drop overlap that would not leave room for the new piece.
                while d.overlap and d.tokens() + piece.tokens > self.budget(d.headings):
                    d.pieces.pop(0)
                    d.overlap -= 1
            d.pieces.append(piece)


def chunk_text(
    text: str,
    *,
    title: str | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    min_tokens: int = DEFAULT_MIN_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
    metadata: Mapping[str, Any] | None = None,
    count: Callable[[str], int] = count_tokens,
) -> list[Chunk]:
    """Chunks of at most ``max_tokens`` word pieces, heading path included.

    A chunk closes at a heading once it has ``min_tokens``, before a paragraph that would not
    fit once it has ``min_tokens``, and otherwise inside a paragraph between sentences. A chunk
    cut inside a section repeats up to ``overlap_tokens`` of its trailing sentences at the start
    of the next. ``title`` (e.g. the document title) heads every heading path unless the text's
    first heading already says it; ``metadata`` is copied into every chunk's metadata, next to
    ``headings`` (the path), ``subheadings`` (headings inside the chunk) and ``token_count``.
    """
    if not 0 <= overlap_tokens <= max_tokens // 2:
        raise ValueError("overlap_tokens must be between 0 and half of max_tokens")
    packer = _Packer(title, max_tokens, min_tokens, overlap_tokens, dict(metadata or {}), count)
    for block in _BLANK_LINES.split(text.replace("\r\n", "\n")):
        lines: list[str] = []
        for line in block.strip().split("\n"):
            match = _HEADING.match(line.strip())
            if not match:
                lines.append(line)
                continue
            if lines:
                packer.paragraph("\n".join(lines))
                lines = []
            packer.heading(len(match.group(1)), match.group(2).strip())
        if lines:
            packer.paragraph("\n".join(lines))
    packer.emit()
    return packer.chunks
