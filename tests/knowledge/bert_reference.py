"""A plain-numpy BERT forward pass over the fp32 safetensors all-MiniLM-L6-v2 weights.

Used only as a reference to check that the int8 ONNX export plus our pooling reproduce the
original sentence-transformers model (no torch needed: 6 layers, one short sentence).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

HEADS = 12
EPS = 1e-12

Array = NDArray[np.float32]
_erf = np.vectorize(math.erf, otypes=[np.float64])


def _layer_norm(x: Array, w: Array, b: Array) -> Array:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + EPS) * w + b


def _gelu(x: Array) -> Array:
    # BERT's exact (erf) GELU, as hidden_act="gelu" in config.json.
    return (0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))).astype(np.float32)


def _dense(x: Array, w: dict[str, Array], name: str) -> Array:
    return x @ w[f"{name}.weight"].T + w[f"{name}.bias"]


def reference_embedding(weights_path: Path, ids: list[int]) -> Array:
    """Mean-pooled, L2-normalised sentence embedding of one tokenised text (with [CLS]/[SEP])."""
    from safetensors.numpy import load_file

    w: dict[str, Array] = load_file(str(weights_path))
    n = len(ids)
    x = (
        w["embeddings.word_embeddings.weight"][ids]
        + w["embeddings.position_embeddings.weight"][:n]
        + w["embeddings.token_type_embeddings.weight"][0]
    )
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    dim = x.shape[1]
    head = dim // HEADS
    layer = 0
    while f"encoder.layer.{layer}.attention.self.query.weight" in w:
        p = f"encoder.layer.{layer}."
        q, k, v = (
            _dense(x, w, p + f"attention.self.{t}").reshape(n, HEADS, head).transpose(1, 0, 2)
            for t in ("query", "key", "value")
        )
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(head)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        attn = scores / scores.sum(-1, keepdims=True)
        ctx = (attn @ v).transpose(1, 0, 2).reshape(n, dim)
        x = _layer_norm(
            _dense(ctx, w, p + "attention.output.dense") + x,
            w[p + "attention.output.LayerNorm.weight"],
            w[p + "attention.output.LayerNorm.bias"],
        )
        inner = _gelu(_dense(x, w, p + "intermediate.dense"))
        x = _layer_norm(
            _dense(inner, w, p + "output.dense") + x,
            w[p + "output.LayerNorm.weight"],
            w[p + "output.LayerNorm.bias"],
        )
        layer += 1
    pooled = x.mean(axis=0)
    return (pooled / np.linalg.norm(pooled)).astype(np.float32)
