"""FAISS search latency right after an ONNX Runtime encode, as a request thread sees it: OpenMP team vs one thread.

A ``/v1/retrieve`` or keyphrase request encodes its text with ONNX Runtime, whose intra-op threads keep
spinning for a while after the call, and then searches FAISS, whose OpenMP team (every core by default)
wants the same cores. This bench runs that sequence in a fresh thread, as the API's request threads do
(OpenMP's thread count is per thread), over the real keyphrase index (11,795 search terms through the
served encoder), for the default funnel and the flat 384-d index, with ``SHOPRANK_INDEX_SEARCH_THREADS``
at 0 (FAISS's default) and 1, in alternating blocks so that machine drift hits both alike.

    .venv/bin/python bench/search_threads.py [--texts 200] [--blocks 4]
"""

from __future__ import annotations

import argparse
import threading
import time

import numpy as np

from service.catalogue import load_catalogue, stable_id
from service.index.factory import make_index
from service.inference.factory import make_backend, make_encoder
from service.runtime import encode_all
from service.settings import Settings


def timed_block(index, encoder, texts: list[str]) -> dict[str, list[float]]:
    """In a new thread: per text, ms to encode it, to search right after, and to search again at once."""
    timings: dict[str, list[float]] = {"encode": [], "search after encode": [], "search again": []}

    def run() -> None:
        for text in texts:
            started = time.perf_counter()
            query = encoder.encode([text], kind="item")
            encoded = time.perf_counter()
            index.search(query, 60)  # k × keyphrase_candidates_factor, as recommend_keyphrases asks
            searched = time.perf_counter()
            index.search(query, 60)
            again = time.perf_counter()
            for name, (a, b) in zip(timings, ((started, encoded), (encoded, searched), (searched, again))):
                timings[name].append((b - a) * 1000)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=200, help="catalogue titles per block")
    parser.add_argument("--blocks", type=int, default=4, help="alternating blocks per configuration")
    args = parser.parse_args()
    settings = Settings()
    encoder = make_encoder(make_backend(settings), settings)
    catalogue = load_catalogue(settings.data_dir)
    phrases = {stable_id(text): text for text in catalogue.keyphrases}
    ids = np.fromiter(phrases, dtype=np.int64, count=len(phrases))
    vectors = encode_all(encoder, list(phrases.values()), kind="query", batch=256, label="keyphrases")
    texts = list(catalogue.item_titles[: args.texts])
    rows = []
    for layout, shortlist_dim in (("funnel 64->384 x8", 64), ("flat 384-d", 0)):
        indexes = {}
        for threads in (0, 1):
            indexes[threads] = make_index(Settings(index_shortlist_dim=shortlist_dim, index_search_threads=threads))
            indexes[threads].upsert(ids, vectors)
        results: dict[int, dict[str, list[float]]] = {0: {}, 1: {}}
        for block in range(args.blocks):
            for threads in ((0, 1) if block % 2 == 0 else (1, 0)):
                for name, values in timed_block(indexes[threads], encoder, texts).items():
                    results[threads].setdefault(name, []).extend(values)
        for threads in (0, 1):
            medians = {name: float(np.median(values)) for name, values in results[threads].items()}
            p95 = float(np.percentile(results[threads]["search after encode"], 95))
            rows.append((layout, threads, medians, p95))
            print(layout, threads, {k: round(v, 2) for k, v in medians.items()}, round(p95, 2), flush=True)
    print("\n| index | search threads | encode p50 ms | search after encode p50 / p95 ms | search again p50 ms |")
    print("| --- | --- | ---: | ---: | ---: |")
    for layout, threads, medians, p95 in rows:
        label = "0 (FAISS default: every core)" if threads == 0 else str(threads)
        print(f"| {layout} | {label} | {medians['encode']:.2f} | {medians['search after encode']:.2f} / {p95:.2f} "
              f"| {medians['search again']:.2f} |")


if __name__ == "__main__":
    main()
