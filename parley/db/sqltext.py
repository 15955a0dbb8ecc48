"""Split a SQL script into statements, the way the Supabase CLI records them.

Understands ``--`` and nested ``/* */`` comments, '...' and E'...' strings, "quoted"
identifiers and $tag$ dollar quotes. SQL-standard ``BEGIN ATOMIC ... END`` bodies are not
supported (write function bodies with dollar quotes instead).
"""

from __future__ import annotations

import re

_DOLLAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


def _skip_block_comment(sql: str, i: int) -> int:
    depth, i = 1, i + 2
    while i < len(sql) and depth:
        if sql.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif sql.startswith("*/", i):
            depth, i = depth - 1, i + 2
        else:
            i += 1
    return i


def _skip_string(sql: str, i: int) -> int:
    prev = sql[i - 1] if i else ""
    before = sql[i - 2] if i > 1 else ""
    backslash = prev in "eE" and not (before.isalnum() or before == "_")
    i += 1
    while i < len(sql):
        c = sql[i]
        if backslash and c == "\\":
            i += 2
            continue
        if c == "'":
            if sql.startswith("''", i):
                i += 2
                continue
            return i + 1
        i += 1
    return i


def _skip_identifier(sql: str, i: int) -> int:
    i += 1
    while i < len(sql):
        if sql[i] == '"':
            if sql.startswith('""', i):
                i += 2
                continue
            return i + 1
        i += 1
    return i


def _skip(sql: str, i: int) -> int | None:
    """Index after the comment/string/quote starting at ``i``, or None if none starts there."""
    c = sql[i]
    if c == "-" and sql.startswith("--", i):
        end = sql.find("\n", i)
        return len(sql) if end < 0 else end + 1
    if c == "/" and sql.startswith("/*", i):
        return _skip_block_comment(sql, i)
    if c == "'":
        return _skip_string(sql, i)
    if c == '"':
        return _skip_identifier(sql, i)
    if c == "$":
        prev = sql[i - 1] if i else ""
        m = _DOLLAR.match(sql, i)
        if m and not (prev.isalnum() or prev == "_"):
            end = sql.find(m.group(0), m.end())
            return len(sql) if end < 0 else end + len(m.group(0))
    return None


def strip_comments(sql: str) -> str:
    """The text without its comments (strings and quotes kept as they are)."""
    out: list[str] = []
    i = 0
    while i < len(sql):
        nxt = _skip(sql, i)
        if nxt is None:
            out.append(sql[i])
            i += 1
        elif sql.startswith(("--", "/*"), i):
            out.append(" ")
            i = nxt
        else:
            out.append(sql[i:nxt])
            i = nxt
    return "".join(out)


def split_statements(sql: str) -> list[str]:
    """Statements without their trailing ``;``; comment-only pieces are dropped."""
    statements: list[str] = []
    start = i = 0
    while i < len(sql):
        nxt = _skip(sql, i)
        if nxt is not None:
            i = nxt
            continue
        if sql[i] == ";":
            _add(statements, sql[start:i])
            start = i + 1
        i += 1
    _add(statements, sql[start:])
    return statements


def _add(statements: list[str], piece: str) -> None:
    if strip_comments(piece).strip():
        statements.append(piece.strip())
