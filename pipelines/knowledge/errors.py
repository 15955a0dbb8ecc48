"""Typed errors of the knowledge core. Each message says what is wrong and how to fix it."""

from __future__ import annotations

from parley.errors import ParleyError


class KnowledgeError(ParleyError):
    """Base class for knowledge-base errors (ingestion, extraction, embedding)."""


class UnsupportedContentType(KnowledgeError):
    """The document's type is not one we can extract text from."""


class DocumentTooLarge(KnowledgeError):
    """The document (or its extracted text) is over a size limit."""


class ExtractionError(KnowledgeError):
    """The document is of a supported type but no usable text came out of it."""


class FetchError(KnowledgeError):
    """A URL could not be fetched (bad scheme, blocked address, HTTP error, timeout)."""


class EmbeddingError(KnowledgeError):
    """The embedding model is missing or an embedding endpoint answered wrongly."""
