"""Document bytes -> clean text (+ title): plain text, Markdown, HTML (trafilatura) and PDF (pypdf).

Output text keeps Markdown ``#`` headings where the source has them, for the chunker.
Limits are constants; breaking one raises a typed error whose message names the fix.
"""

from __future__ import annotations

import io
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Literal

from pipelines.knowledge.errors import (
    DocumentTooLarge,
    ExtractionError,
    KnowledgeError,
    UnsupportedContentType,
)
from pipelines.knowledge.markdown import markdown_to_text
from pipelines.knowledge.pdf import pdf_layout_text

MAX_DOCUMENT_BYTES = 20 * 1024 * 1024
MAX_TEXT_CHARS = 2_000_000  # roughly 1,000 pages of prose; more is rarely one document
MAX_PDF_PAGES = 1000

Kind = Literal["text", "markdown", "html", "pdf"]

#: Accepted content types (parameters such as ``charset`` are ignored when matching).
CONTENT_TYPES: dict[str, Kind] = {
    "text/plain": "text",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/pdf": "pdf",
}
SUFFIXES: dict[str, Kind] = {
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
}
# Types that say nothing about the content: the file name decides instead.
GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
CANONICAL_TYPE: dict[Kind, str] = {
    "text": "text/plain",
    "markdown": "text/markdown",
    "html": "text/html",
    "pdf": "application/pdf",
}

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\ufeff]")
_TRAILING_SPACE = re.compile(r"[ \t\u00a0]+(?=\n|$)")
_MANY_BLANKS = re.compile(r"\n{3,}")
_BLANK_LINES = re.compile(r"\n\s*\n")
_LIST_ITEM = re.compile(r"^(?:[-*•]|\d{1,3}[.)])\s")
_CHARSET = re.compile(r"charset=([\w.:-]+)", re.I)


@dataclass(frozen=True)
class ExtractedDocument:
    """Clean text of one document, ready for ``chunk_text``."""

    text: str
    title: str | None
    content_type: str
    metadata: dict[str, Any] = field(default_factory=dict)


def format_size(n: int) -> str:
    """Bytes as a short human size ("20 MB", "20.5 MB", "900 KB")."""
    for unit, size in (("MB", 1024 * 1024), ("KB", 1024)):
        if n >= size:
            value = n / size
            # One decimal unless whole, so "20.5 MB" never reads like the 20 MB limit.
            return f"{value:.0f} {unit}" if value.is_integer() else f"{value:.1f} {unit}"
    return f"{n} bytes"


def allowed_types_text() -> str:
    return ", ".join(CONTENT_TYPES) + " (or a file named " + ", ".join(SUFFIXES) + ")"


def media_type(content_type: str | None) -> str:
    """``text/html; charset=utf-8`` -> ``text/html``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def detect_kind(content_type: str | None, filename: str | None, head: bytes = b"") -> Kind:
    """Which extractor to use, from the content type, else the file name, else magic bytes."""
    mtype = media_type(content_type)
    suffix = PurePosixPath(filename or "").suffix.lower()
    if head.startswith(b"%PDF-") and mtype in GENERIC_TYPES | {"application/pdf"}:
        return "pdf"
    if mtype in GENERIC_TYPES:
        if suffix in SUFFIXES:
            return SUFFIXES[suffix]
    elif mtype in CONTENT_TYPES:
        # Servers and browsers often label Markdown as text/plain: trust the name then.
        if mtype == "text/plain" and SUFFIXES.get(suffix) == "markdown":
            return "markdown"
        return CONTENT_TYPES[mtype]
    shown = mtype or (f"file {filename!r}" if filename else "unknown type")
    raise UnsupportedContentType(
        f"unsupported document type {shown!r} — allowed: {allowed_types_text()}; "
        "convert the document to one of these (e.g. save as PDF or plain text)"
    )


def check_size(n: int, limit: int = MAX_DOCUMENT_BYTES, what: str = "file") -> None:
    """Raise ``DocumentTooLarge`` when ``n`` bytes is over ``limit``."""
    if n > limit:
        raise DocumentTooLarge(
            f"{what} is {format_size(n)}, the limit is {format_size(limit)}: "
            "split it into smaller documents or remove images and attachments"
        )


def decode_text(data: bytes, content_type: str | None = None) -> str:
    """Bytes -> str: the declared charset, else UTF-8 (BOM aware), else Windows-1252."""
    match = _CHARSET.search(content_type or "")
    if match:
        try:
            return data.decode(match.group(1))
        except (LookupError, UnicodeDecodeError):
            pass  # a wrong label is common; fall through to sniffing
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # cp1252 decodes almost any byte; the few it cannot become U+FFFD.
        return data.decode("cp1252", errors="replace")


def clean_text(text: str) -> str:
    """Normalised Unicode, LF newlines, no control characters or runs of blank lines."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text).replace("\t", " ")
    text = _TRAILING_SPACE.sub("", text)
    return _MANY_BLANKS.sub("\n\n", text).strip()


def _first_line_title(text: str) -> str | None:
    for line in text.split("\n"):
        line = line.strip().lstrip("#").strip()
        if line:
            # A short first line without a full stop reads as a title; a sentence does not.
            return line if len(line) <= 100 and not line.endswith((".", ",", ";")) else None
    return None


def _looks_like_heading(block: str) -> bool:
    # One short line, capitalised, no sentence punctuation: a title or section heading.
    return (
        "\n" not in block
        and len(block) <= 80
        and block[:1].isupper()
        and not block.endswith((".", ",", ";", ":", "!", "?"))
    )


def plain_text_structure(text: str) -> str:
    """Unwrap hard-wrapped paragraphs (keeping list lines) and mark heading-like lines ``#``."""
    blocks = [b.strip() for b in _BLANK_LINES.split(text) if b.strip()]
    out: list[str] = []
    for i, block in enumerate(blocks):
        if i + 1 < len(blocks) and _looks_like_heading(block):
            out.append(("# " if i == 0 else "## ") + block)
            continue
        lines = [ln.strip() for ln in block.split("\n")]
        joined = lines[0]
        for line in lines[1:]:
            joined += ("\n" if _LIST_ITEM.match(line) else " ") + line
        out.append(joined)
    return "\n\n".join(out)


def _extract_text(data: bytes, content_type: str | None) -> tuple[str, str | None]:
    text = plain_text_structure(clean_text(decode_text(data, content_type)))
    return text, _first_line_title(text)


def _extract_markdown(data: bytes, content_type: str | None) -> tuple[str, str | None]:
    text, title = markdown_to_text(clean_text(decode_text(data, content_type)))
    return clean_text(text), title


def _extract_html(data: bytes, content_type: str | None) -> tuple[str, str | None]:
    import trafilatura

    # trafilatura drops navigation, headers, footers and cookie banners; markdown output keeps
    # the headings, and with_metadata puts the page title in front matter.
    options: dict[str, Any] = {
        "output_format": "markdown",
        "include_formatting": True,
        "include_tables": True,
        "include_comments": False,
        "include_links": False,
        "include_images": False,
        "with_metadata": True,
    }
    # A charset in the Content-Type header wins; otherwise trafilatura reads <meta charset>.
    html: bytes | str = (
        decode_text(data, content_type) if _CHARSET.search(content_type or "") else data
    )
    try:
        result = trafilatura.extract(html, **options)
        if not result:
            # Short or unusual pages: recall mode keeps more, the baseline keeps all body text.
            result = trafilatura.extract(html, favor_recall=True, **options)
        if not result:
            result = trafilatura.baseline(html)[1]
    except Exception as exc:  # lxml and trafilatura raise many types on malformed markup
        raise ExtractionError(f"the HTML page could not be parsed ({exc}); save it again") from exc
    text, title = markdown_to_text(result or "")  # the title comes from the front matter
    return clean_text(text), title


def _extract_pdf(data: bytes) -> tuple[str, str | None, dict[str, Any]]:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ExtractionError(
                "the PDF is password-protected: remove the password (print to a new PDF) "
                "and upload it again"
            )
        pages = len(reader.pages)
        if pages > MAX_PDF_PAGES:
            raise DocumentTooLarge(
                f"the PDF has {pages} pages, the limit is {MAX_PDF_PAGES}: split it into parts"
            )
        layout_text = pdf_layout_text(list(reader.pages))
        info_title = reader.metadata.title if reader.metadata else None
    except KnowledgeError:
        raise
    except Exception as exc:  # pypdf raises many exception types on malformed files
        raise ExtractionError(
            f"the PDF could not be read ({exc}); it may be damaged: export it again and retry"
        ) from exc
    text = clean_text(layout_text)
    if not text:
        raise ExtractionError(
            "the PDF has no text layer (it is probably scanned images): run OCR on it "
            "or upload the text instead"
        )
    title = str(info_title).strip() if info_title else None
    return text, title or _first_line_title(text), {"pages": pages}


def extract(
    data: bytes, *, content_type: str | None = None, filename: str | None = None
) -> ExtractedDocument:
    """Clean text and title of a document given as bytes.

    ``content_type`` (a MIME type, parameters allowed) decides the format; a missing or generic
    one falls back to the ``filename`` suffix and PDF magic bytes. Raises
    ``UnsupportedContentType``, ``DocumentTooLarge`` or ``ExtractionError``.
    """
    check_size(len(data))
    kind = detect_kind(content_type, filename, data[:8])
    meta: dict[str, Any] = {}
    if kind == "pdf":
        text, title, meta = _extract_pdf(data)
    elif kind == "html":
        text, title = _extract_html(data, content_type)
    elif kind == "markdown":
        text, title = _extract_markdown(data, content_type)
    else:
        text, title = _extract_text(data, content_type)
    if not text.strip():
        raise ExtractionError(
            f"no text found in the {kind} document"
            + (f" {filename!r}" if filename else "")
            + ": check that the file is not empty or made only of images"
        )
    if len(text) > MAX_TEXT_CHARS:
        raise DocumentTooLarge(
            f"the document has {len(text):,} characters of text, the limit is "
            f"{MAX_TEXT_CHARS:,}: split it into smaller documents"
        )
    if not title and filename:
        title = PurePosixPath(filename).stem.replace("_", " ").replace("-", " ").strip() or None
    return ExtractedDocument(text, title, CANONICAL_TYPE[kind], meta)
