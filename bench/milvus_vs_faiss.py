"""Milvus Lite against FAISS behind the index seam: search p50 / p99, upsert throughput, top-10 agreement.

Both sides are what ``make_index`` serves: FAISS as the default Matryoshka funnel (flat 64-d shortlist of 8 × k,
int8 full vectors, ``service/index/funnel.py``) and ``SHOPRANK_INDEX_BACKEND=milvus`` (``MilvusIndex``: the same
funnel, a FLAT 64-d field searched in Milvus Lite, its shortlist rescored here with the 384-d field;
``service/index/milvus_index.py``), each measured in this one process one after the other:

- real: the 54,667 catalogue titles through the served item encoder and the test-split search terms through
  the query side (cached under ``var/bench/`` like ``bench/index_choice.py``); the top 10 of each test query
  from both backends is compared (the dense path of ``/v1/retrieve``, in process: query vector → index.search,
  k = 10), and each against exact 384-d search;
- synthetic (``--synthetic N``): N random unit vectors whose first 64 dimensions carry most of the norm (as a
  Matryoshka student's do), generated in chunks so that only the indexes hold them.

Per backend: the bulk build (upsert of everything in 50,000-row calls; for Milvus Lite plus the flush that makes
its rows searchable fast), NRT upserts (re-upserts of changed vectors in batches of 100, as the indexer sends
them; Milvus Lite flushes every ``milvus_lite_flush_rows`` rows within that time) and single-query search
latency. ``uptime`` before and after says what else ran.

    .venv/bin/python -m bench.milvus_vs_faiss --synthetic 1000000 --out docs/bench/milvus_vs_faiss.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.index_choice import cached_vectors
from service.catalogue import load_catalogue, stable_id
from service.index.exact import ExactIndex
from service.index.factory import make_index
from service.inference.factory import make_backend, make_encoder
from service.settings import Settings
from training.data import split_of

BUILD_CHUNK = 50_000


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def unit(m: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(m / np.linalg.norm(m, axis=1, keepdims=True), dtype=np.float32)


def synthetic(seed: int, n: int, dim: int) -> np.ndarray:
    m = np.random.default_rng(seed).standard_normal((n, dim), dtype=np.float32)
    m[:, :64] *= 3
    return unit(m)


def backends(state: Path) -> dict[str, Settings]:
    base = Settings(state_dir=state)
    return {"faiss (funnel 64->384, int8, flat)": base,
            "milvus lite (funnel 64->384, fp32, FLAT)": base.model_copy(update={
                "index_backend": "milvus", "milvus_uri": str(state / "milvus.db"), "milvus_collection": "bench"})}


def build(index, chunks) -> float:
    started = time.perf_counter()
    for ids, vectors in chunks:
        index.upsert(ids, vectors)
    client = getattr(index, "client", None)
    if client is not None:  # Milvus Lite: seal the memtable so that searches scan segments, not Python rows
        client.flush(index.collection)
    return time.perf_counter() - started


def nrt_upserts(index, ids: np.ndarray, vectors: np.ndarray, batch: int = 100) -> float:
    started = time.perf_counter()
    for start in range(0, len(ids), batch):
        index.upsert(ids[start : start + batch], vectors[start : start + batch])
    return len(ids) / (time.perf_counter() - started)


def search_each(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, list[float]]:
    index.search(queries[:3], k)  # warm-up
    found, latencies = np.empty((len(queries), k), dtype=np.int64), []
    for row in range(len(queries)):
        t0 = time.perf_counter()
        _, found[row] = index.search(queries[row : row + 1], k)
        latencies.append((time.perf_counter() - t0) * 1000)
    return found, latencies


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([len(set(x[x >= 0].tolist()) & set(y[y >= 0].tolist())) / max(1, (y >= 0).sum())
                          for x, y in zip(a, b)]))


def run(label: str, make_chunks, n: int, upsert_ids, upsert_vectors, queries, k: int, truth=None) -> list[dict]:
    rows, answers = [], {}
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as folder:
        for name, settings in backends(Path(folder)).items():
            index = make_index(settings, name="items")
            build_s = build(index, make_chunks())
            rate = nrt_upserts(index, upsert_ids, upsert_vectors)
            found, latencies = search_each(index, queries, k)
            answers[name] = found
            row = {"data": label, "items": n, "backend": name, "live": len(index), "build_s": round(build_s, 1),
                   "upserts_per_s": round(rate), "search_p50_ms": round(float(np.percentile(latencies, 50)), 2),
                   "search_p99_ms": round(float(np.percentile(latencies, 99)), 2), "queries": len(queries),
                   "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}
            if truth is not None:
                row["recall@10_vs_exact384"] = round(overlap(found, truth), 4)
            rows.append(row)
            print(json.dumps(row), flush=True)
            if hasattr(index, "drop"):  # Milvus: free the Lite engine's memory before the next backend
                index.drop()
            del index
    faiss_found, milvus_found = answers.values()
    rows[-1]["top10_overlap_with_faiss"] = round(overlap(milvus_found, faiss_found), 4)
    rows[-1]["top10_identical_queries"] = round(float(np.mean([set(a) == set(b) for a, b in
                                                               zip(milvus_found, faiss_found)])), 4)
    print(json.dumps({"data": label, "top10_overlap_with_faiss": rows[-1]["top10_overlap_with_faiss"],
                      "identical_top10_share": rows[-1]["top10_identical_queries"]}), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--upserts", type=int, default=5000, help="NRT re-upserts (batches of 100) per backend")
    parser.add_argument("--synthetic", type=int, nargs="*", default=[1_000_000], help="synthetic sizes (0: none)")
    parser.add_argument("--synthetic-queries", type=int, default=300)
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    print(f"before: {uptime()}", flush=True)
    rows: list[dict] = []
    settings = Settings()
    if not args.skip_real:
        encoder = make_encoder(make_backend(settings), settings)
        catalogue = load_catalogue(settings.data_dir)
        cache = settings.state_dir / "bench" / encoder.model_version.replace(":", "-")
        titles = catalogue.item_titles
        vectors = unit(cached_vectors(cache / f"items-{len(titles)}.npy", titles, encoder, kind="item"))
        terms = [t for t in catalogue.keyphrases if split_of(t) == "test"]
        queries = unit(cached_vectors(cache / f"queries-test-{len(terms)}.npy", terms, encoder, kind="query"))
        ids = np.array([stable_id(i) for i in catalogue.item_ids], dtype=np.int64)
        exact = ExactIndex(vectors.shape[1])
        exact.upsert(ids, vectors)  # the NRT step below re-upserts the same vectors: the truth stays this
        _, truth = exact.search(queries, args.k)
        pick = np.random.default_rng(0).choice(len(ids), min(args.upserts, len(ids)), replace=False)
        chunks = lambda: ((ids[s : s + BUILD_CHUNK], vectors[s : s + BUILD_CHUNK])  # noqa: E731
                          for s in range(0, len(ids), BUILD_CHUNK))
        print(f"real: {len(ids)} items, {len(queries)} test-split queries, encoder {encoder.model_version}", flush=True)
        rows += run("home-depot catalogue", chunks, len(ids), ids[pick], vectors[pick], queries, args.k, truth)
    for n in [n for n in args.synthetic if n > 0]:
        dim = settings.embedding_dim
        ids = np.arange(n, dtype=np.int64) * 7919 + 11  # spread-out int64 keys
        chunks = lambda n=n, ids=ids, dim=dim: ((ids[s : s + BUILD_CHUNK], synthetic(s, min(BUILD_CHUNK, n - s), dim))  # noqa: E731
                                                for s in range(0, n, BUILD_CHUNK))
        sample = synthetic(0, min(n, BUILD_CHUNK), dim)[: args.synthetic_queries]  # noisy copies of indexed rows
        queries = unit(sample + 0.05 * np.random.default_rng(1).standard_normal(sample.shape, dtype=np.float32))
        upsert_ids = ids[np.random.default_rng(2).choice(n, min(args.upserts, n), replace=False)]
        print(f"synthetic: {n} vectors, {len(queries)} queries", flush=True)
        rows += run("synthetic", chunks, n, upsert_ids, synthetic(10**9, len(upsert_ids), dim), queries, args.k)
    print(f"after: {uptime()}", flush=True)
    print("\n| data | items | backend | build s | NRT upserts/s | search p50 ms | p99 ms | recall@10 vs exact "
          "| top-10 overlap with FAISS |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['data']} | {r['items']:,} | {r['backend']} | {r['build_s']} | {r['upserts_per_s']} "
              f"| {r['search_p50_ms']} | {r['search_p99_ms']} | {r.get('recall@10_vs_exact384', '')} "
              f"| {r.get('top10_overlap_with_faiss', '')} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
