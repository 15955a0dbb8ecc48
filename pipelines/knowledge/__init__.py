"""Knowledge core: extract text from documents, chunk it, embed chunks; store.py writes and
searches them in pgvector. Call-time retrieval (a Pipecat processor and a lookup tool) lives in
``pipelines.knowledge.retrieve``, not exported here so that importing this package stays cheap.

Heavy libraries (onnxruntime, tokenizers, trafilatura, pypdf, httpx) load on first use.
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
from pipelines.knowledge.store import (
    EmbeddingSettings,
    RetrievedChunk,
    embed_query,
    insert_chunks,
    make_embedder,
    model_family,
    search_chunks,
)

__all__ = [
    "EMBED_DIM",
    "Chunk",
    "DocumentTooLarge",
    "Embedder",
    "EmbeddingError",
    "EmbeddingSettings",
    "ExtractedDocument",
    "ExtractionError",
    "FetchError",
    "FetchedDocument",
    "KnowledgeError",
    "LocalMiniLMEmbedder",
    "OpenAIEmbedder",
    "RetrievedChunk",
    "UnsupportedContentType",
    "chunk_text",
    "count_tokens",
    "embed_query",
    "extract",
    "fetch_url",
    "insert_chunks",
    "make_embedder",
    "model_family",
    "search_chunks",
]
