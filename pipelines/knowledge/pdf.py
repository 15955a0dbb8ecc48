"""PDF text with paragraphs and headings recovered from the layout (pypdf).

pypdf's plain ``extract_text`` gives one line per printed line and no paragraph breaks. Here
the position and font size of every text run decide instead: a vertical gap wider than the
usual line spacing starts a paragraph, and lines set larger than the body text become Markdown
headings (largest size ``#``, next ``##``, ...), which the chunker then uses as context.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise
from statistics import median
from typing import Any

_SPACES = re.compile(r"\s+")
MAX_HEADING_CHARS = 150  # longer "large" text is a pull quote or a banner, not a heading


@dataclass
class _Line:
    text: str
    y: float
    size: float


def _matrix_mul(a: list[float], b: list[float]) -> list[float]:
    return [
        a[0] * b[0] + a[1] * b[2],
        a[0] * b[1] + a[1] * b[3],
        a[2] * b[0] + a[3] * b[2],
        a[2] * b[1] + a[3] * b[3],
        a[4] * b[0] + a[5] * b[2] + b[4],
        a[4] * b[1] + a[5] * b[3] + b[5],
    ]


def _page_lines(page: Any) -> list[_Line]:
    lines: list[_Line] = []

    def visit(text: str, cm: list[float], tm: list[float], font: Any, size: float) -> None:
        m = _matrix_mul(tm, cm)  # text space -> page space
        y, scale = m[5], math.hypot(m[2], m[3]) or 1.0
        for n, part in enumerate(text.split("\n")):
            if lines and n == 0 and abs(lines[-1].y - y) < 1.0:
                lines[-1].text += part  # same baseline: the same printed line
            elif part.strip():
                lines.append(_Line(part, y, round(size * scale, 1)))

    page.extract_text(visitor_text=visit)
    for line in lines:
        line.text = _SPACES.sub(" ", line.text).strip()
    return [ln for ln in lines if ln.text]


def _join(a: str, b: str) -> str:
    # Rejoin words hyphenated at a line end ("appoint-" + "ment").
    if a.endswith("-") and len(a) > 1 and a[-2].isalpha() and b[:1].islower():
        return a[:-1] + b
    return f"{a} {b}"


def pdf_layout_text(pages: list[Any]) -> str:
    """Text of all pages: blank lines between paragraphs, ``#`` before larger-font headings."""
    page_lines = [_page_lines(p) for p in pages]
    all_lines = [ln for lines in page_lines for ln in lines]
    if not all_lines:
        return ""
    weights: Counter[float] = Counter()
    for ln in all_lines:
        weights[ln.size] += len(ln.text)
    body = weights.most_common(1)[0][0]
    larger = sorted({s for s in weights if s > body * 1.15}, reverse=True)
    level = {size: min(i + 1, 6) for i, size in enumerate(larger)}
    gaps = [
        prev.y - cur.y
        for lines in page_lines
        for prev, cur in pairwise(lines)
        if prev.size == cur.size == body and prev.y > cur.y
    ]
    spacing = median(gaps) if gaps else body * 1.2

    blocks: list[tuple[int, str]] = []  # (heading level or 0, text)
    for lines in page_lines:
        prev: _Line | None = None
        for ln in lines:
            head = level.get(ln.size, 0) if len(ln.text) <= MAX_HEADING_CHARS else 0
            gap = (prev.y - ln.y) if prev else math.inf
            same_block = (
                prev is not None
                and blocks
                and blocks[-1][0] == head
                and ln.size == prev.size
                and 0 < gap <= spacing * 1.3 * (ln.size / body)
            )
            if same_block:
                blocks[-1] = (head, _join(blocks[-1][1], ln.text))
            else:
                blocks.append((head, ln.text))
            prev = ln
    return "\n\n".join(("#" * h + " " if h else "") + text for h, text in blocks)
