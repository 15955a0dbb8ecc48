"""Embedding throughput of the bundled MiniLM: `python -m tests.knowledge.bench_embed`.

Embeds the fixture chunks (repeated to ``--chunks``) at several batch sizes and prints the
median rate of ``--runs`` runs. Other processes on the machine skew the numbers: check the load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from pipelines.knowledge import LocalMiniLMEmbedder, chunk_text, extract
from tests.knowledge.conftest import DOCS


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", default="8,16,32")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()

    chunks = []
    for path in sorted(DOCS.iterdir()):
        doc = extract(path.read_bytes(), filename=path.name)
        chunks += chunk_text(doc.text, title=doc.title)
    texts = [chunks[i % len(chunks)].content for i in range(args.chunks)]
    tokens = np.mean([c.metadata["token_count"] for c in chunks])
    print(f"{len(texts)} chunks of ~{tokens:.0f} tokens, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
    for batch in (int(b) for b in args.batch.split(",")):
        emb = LocalMiniLMEmbedder(batch_size=batch, threads=args.threads)
        emb.embed(texts[:batch])  # load + warm up
        rates, cpu = [], []
        for _ in range(args.runs):
            start, start_cpu = time.perf_counter(), time.process_time()
            emb.embed(texts)
            rates.append(len(texts) / (time.perf_counter() - start))
            # CPU seconds per chunk do not grow when other processes compete for the cores.
            cpu.append((time.process_time() - start_cpu) / len(texts) * 1000)
        print(f"batch {batch:3d}: {statistics.median(rates):6.1f} chunks/s, "
              f"{statistics.median(cpu):5.0f} CPU-ms/chunk "
              f"(runs: {', '.join(f'{r:.1f}' for r in rates)})")  # fmt: skip


if __name__ == "__main__":
    main()
