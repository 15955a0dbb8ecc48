"""Knowledge core: extract text from documents, chunk it, embed chunks. No database here.

Heavy libraries (onnxruntime, tokenizers, trafilatura, pypdf, httpx) load on first use, so
importing this package is cheap.
"""

from pipelines.knowledge.chunk import Chunk, chunk_text
from pipelines.knowledge.embed import (
    EMBED_DIM,
    Embedder,
    LocalMiniLMEmbedder,
    OpenAIEmbedder,
    count_tokens,
)
from pipelines.knowledge.errors import (
    DocumentTooLarge,
    EmbeddingError,
    ExtractionError,
    FetchError,
    KnowledgeError,
    UnsupportedContentType,
)
from pipelines.knowledge.extract import ExtractedDocument, extract
from pipelines.knowledge.fetch import FetchedDocument, fetch_url

__all__ = [
    "EMBED_DIM",
    "Chunk",
    "DocumentTooLarge",
    "Embedder",
    "EmbeddingError",
    "ExtractedDocument",
    "ExtractionError",
    "FetchError",
    "FetchedDocument",
    "KnowledgeError",
    "LocalMiniLMEmbedder",
    "OpenAIEmbedder",
    "UnsupportedContentType",
    "chunk_text",
    "count_tokens",
    "extract",
    "fetch_url",
]
