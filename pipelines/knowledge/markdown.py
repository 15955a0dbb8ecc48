"""Markdown -> plain text that keeps its heading structure (``#`` lines) for the chunker.

Emphasis, links, images and HTML are reduced to their text; lists stay one item a line and
tables one row a line, so the chunker can split them at line boundaries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from markdown_it import MarkdownIt
from markdown_it.token import Token

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*(?:\n|\Z)", re.DOTALL)
_TAG = re.compile(r"<!--.*?-->|<[^>]+>", re.DOTALL)
_SPACES = re.compile(r"[ \t\u00a0]+")


@dataclass
class _State:
    blocks: list[str] = field(default_factory=list)
    group: list[str] | None = None  # lines of the list or table being read
    lists: list[list[int]] = field(default_factory=list)  # [next number or -1 for bullets]
    item_first_para: list[bool] = field(default_factory=list)
    row: list[str] | None = None
    heading_level: int = 0

    def add_line(self, line: str) -> None:
        line = line.rstrip()
        if not line.strip():
            return
        if self.group is not None:
            self.group.append(line)
        else:
            self.blocks.append(line)


def _inline_text(token: Token) -> str:
    parts: list[str] = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type == "softbreak":
            parts.append(" ")
        elif child.type == "hardbreak":
            parts.append("\n")
        elif child.type == "image":
            # The alt text is the image's only text content.
            parts.append(child.content or "".join(c.content for c in child.children or []))
        elif child.type == "html_inline" and child.content.lower().startswith("<br"):
            parts.append("\n")
    return "\n".join(_SPACES.sub(" ", line).strip() for line in "".join(parts).split("\n"))


def split_front_matter(source: str) -> tuple[dict[str, str], str]:
    """YAML-ish ``key: value`` front matter (Jekyll, Hugo, trafilatura) and the rest."""
    match = _FRONT_MATTER.match(source)
    if not match:
        return {}, source
    fields: dict[str, str] = {}
    for line in match.group(1).splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and not key.startswith((" ", "\t")):
            fields[key.strip().lower()] = value.strip().strip("\"'")
    return fields, source[match.end() :]


def markdown_to_text(source: str) -> tuple[str, str | None]:
    """(clean text with ``#`` headings, title) of a Markdown document.

    The title is the front matter's ``title`` or else the first level-1 heading.
    """
    meta, body = split_front_matter(source)
    title = meta.get("title") or None
    state = _State()
    tokens = MarkdownIt("commonmark").enable("table").parse(body)
    for tok in tokens:
        kind = tok.type
        if kind == "heading_open":
            state.heading_level = int(tok.tag[1])
        elif kind == "inline" and state.heading_level:
            text = _inline_text(tok).replace("\n", " ")
            if title is None and state.heading_level == 1:
                title = text
            state.add_line(f"{'#' * state.heading_level} {text}")
            state.heading_level = 0
        elif kind in ("bullet_list_open", "ordered_list_open", "table_open"):
            if state.group is None:
                state.group = []
            if kind != "table_open":
                start = int(tok.attrs.get("start", 1) or 1) if kind == "ordered_list_open" else -1
                state.lists.append([start])
        elif kind in ("bullet_list_close", "ordered_list_close", "table_close"):
            if kind != "table_close":
                state.lists.pop()
            if not state.lists and state.group is not None:
                lines, state.group = state.group, None
                state.add_line("\n".join(lines))
        elif kind == "list_item_open":
            state.item_first_para.append(True)
        elif kind == "list_item_close":
            state.item_first_para.pop()
        elif kind == "tr_open":
            state.row = []
        elif kind == "tr_close" and state.row is not None:
            state.add_line(" | ".join(state.row))
            state.row = None
        elif kind == "inline" and state.row is not None:
            state.row.append(_inline_text(tok).replace("\n", " "))
        elif kind == "inline":
            text = _inline_text(tok)
            if state.lists and state.item_first_para:
                depth = len(state.lists) - 1
                counter = state.lists[-1]
                if state.item_first_para[-1]:
                    marker = "-" if counter[0] < 0 else f"{counter[0]}."
                    if counter[0] >= 0:
                        counter[0] += 1
                    state.item_first_para[-1] = False
                else:
                    marker = " "
                text = "  " * depth + f"{marker} " + text.replace("\n", " ")
            state.add_line(text)
        elif kind in ("fence", "code_block"):
            state.add_line(tok.content.strip("\n"))
        elif kind == "html_block":
            state.add_line(_SPACES.sub(" ", _TAG.sub(" ", tok.content)).strip())
    return "\n\n".join(state.blocks), title
