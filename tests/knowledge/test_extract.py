"""Extraction of each format, limits and typed errors."""

from __future__ import annotations

import io

import pytest

from parley.errors import ParleyError
from pipelines.knowledge import (
    DocumentTooLarge,
    ExtractionError,
    UnsupportedContentType,
    extract,
)
from pipelines.knowledge.extract import MAX_DOCUMENT_BYTES, detect_kind, format_size
from tests.knowledge.conftest import DOCS
from tests.knowledge.make_fixtures import SECTIONS, TITLE

BOILERPLATE = ("cookie", "Accept all", "Meet the team", "Privacy policy", "rights reserved")


def test_plain_text_gets_title_paragraphs_and_headings() -> None:
    doc = extract((DOCS / "dental_aftercare.txt").read_bytes(), content_type="text/plain")
    assert doc.content_type == "text/plain"
    assert doc.title == "Aftercare advice from Maple Grove Dental"
    assert "## After a tooth extraction" in doc.text
    # Hard-wrapped lines are joined back into one paragraph.
    assert "so that a blood clot forms in the socket. The clot protects" in doc.text


def test_plain_text_keeps_list_lines() -> None:
    doc = extract((DOCS / "accounting_services.txt").read_bytes(), filename="a.txt")
    assert "- P60 and any P45 or P11D forms from your employers\n- Records of" in doc.text


def test_markdown_markup_is_stripped_but_headings_kept() -> None:
    doc = extract((DOCS / "dental_services.md").read_bytes(), content_type="text/markdown")
    assert doc.title == "Treatments and prices at Maple Grove Dental"  # from front matter
    assert "## Teeth whitening" in doc.text
    assert "A routine check-up takes about 20 minutes" in doc.text  # **bold** removed
    assert "**" not in doc.text and "title:" not in doc.text


def test_markdown_links_images_and_code() -> None:
    src = b"# Guide\n\nSee [our site](https://x.test) ![a map](m.png) and `code`.\n\n- one\n- two\n"
    doc = extract(src, filename="guide.md")
    assert doc.text == "# Guide\n\nSee our site a map and code.\n\n- one\n- two"
    assert doc.title == "Guide"


def test_markdown_served_as_text_plain_is_read_as_markdown() -> None:
    doc = extract(b"# Hours\n\n*Open* daily.", content_type="text/plain", filename="hours.md")
    assert doc.content_type == "text/markdown"
    assert doc.text == "# Hours\n\nOpen daily."


def test_html_main_text_without_boilerplate() -> None:
    doc = extract((DOCS / "dental_hours_location.html").read_bytes(), content_type="text/html")
    assert doc.title == "Opening hours and how to find us"
    assert "## Parking" in doc.text and "Buses 7 and 22" in doc.text
    assert "Monday to Thursday | 8:00 to 19:00" in doc.text  # tables kept, a row a line
    for junk in BOILERPLATE:
        assert junk not in doc.text


def test_pdf_text_title_pages_and_headings() -> None:
    doc = extract((DOCS / "dental_insurance_payment.pdf").read_bytes(), filename="x.pdf")
    assert doc.content_type == "application/pdf"
    assert doc.title == TITLE
    assert doc.metadata == {"pages": 2}
    for heading, paragraphs in SECTIONS:
        assert f"## {heading}" in doc.text
        for paragraph in paragraphs:
            assert paragraph in doc.text  # each paragraph comes back whole, lines rejoined


def test_pdf_detected_by_magic_bytes() -> None:
    data = (DOCS / "dental_insurance_payment.pdf").read_bytes()
    assert extract(data, content_type="application/octet-stream").content_type == (
        "application/pdf"
    )


def _pdf(encrypt: bool) -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    if encrypt:
        writer.encrypt("secret")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_pdf_without_text_layer_says_to_ocr() -> None:
    with pytest.raises(ExtractionError, match="no text layer.*OCR"):
        extract(_pdf(encrypt=False), content_type="application/pdf")


def test_password_protected_pdf_is_rejected() -> None:
    with pytest.raises(ExtractionError, match="password"):
        extract(_pdf(encrypt=True), content_type="application/pdf")


def test_damaged_pdf_is_rejected() -> None:
    with pytest.raises(ExtractionError, match="damaged"):
        extract(b"%PDF-1.4\nthis is not really a pdf", content_type="application/pdf")


def test_unsupported_type_names_allowed_types() -> None:
    with pytest.raises(UnsupportedContentType) as err:
        extract(b"\x89PNG....", content_type="image/png", filename="scan.png")
    message = str(err.value)
    assert "'image/png'" in message and "allowed:" in message and "application/pdf" in message
    assert isinstance(err.value, ParleyError)


def test_unknown_file_without_type_is_rejected() -> None:
    with pytest.raises(UnsupportedContentType, match="report.docx"):
        extract(b"PK\x03\x04", filename="report.docx")


def test_too_large_file_says_size_and_limit() -> None:
    with pytest.raises(DocumentTooLarge) as err:
        extract(b"a" * (30 * 1024 * 1024), content_type="text/plain")
    assert "file is 30 MB, the limit is 20 MB" in str(err.value)
    assert format_size(MAX_DOCUMENT_BYTES) == "20 MB"


def test_empty_document_is_an_error() -> None:
    with pytest.raises(ExtractionError, match="no text found"):
        extract(b"  \n\n ", content_type="text/plain", filename="empty.txt")


@pytest.mark.parametrize(
    ("data", "ctype", "expected"),
    [
        ("Café crème".encode(), "text/plain; charset=utf-8", "Café crème"),
        ("Café crème".encode("cp1252"), "text/plain", "Café crème"),
        ("Café".encode("latin-1"), "text/plain; charset=latin-1", "Café"),
        ("\ufeffBOM first".encode(), "text/plain", "BOM first"),
    ],
)
def test_text_decoding(data: bytes, ctype: str, expected: str) -> None:
    assert extract(data, content_type=ctype).text == expected


def test_detect_kind_prefers_content_type() -> None:
    assert detect_kind("text/html; charset=utf-8", "page.txt") == "html"
    assert detect_kind(None, "notes.MARKDOWN") == "markdown"
    assert detect_kind("", "x.htm") == "html"
