"""Which FAISS index for a catalogue that changes all the time? recall@20 vs exact, latency, upsert cost, size.

Runs the service's own ``FaissIndex`` (flat / IVF + hashtable direct map / HNSW + tombstone
filter), each also as a Matryoshka funnel (``MatryoshkaFunnelIndex``: the ANN index over the
64-d cut, its shortlist of 8 × k rescored with the full vectors), on *real* embeddings:
catalogue titles through the served item encoder, test-split search terms through the query
side, both cached under ``var/bench/`` so a re-run only measures the indexes. Each candidate
goes through the same churn: build from the first 90 %, then upsert 10 % new items, re-upsert
10 % changed items (new title → new vector) and delete 5 % — recall is measured after the churn
against exact search over the live set, and the size is that of the index's own snapshot files
(what it holds in memory, give or take).

    .venv/bin/python bench/index_choice.py --items 54667 --queries 1000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from service.catalogue import load_catalogue, stable_id
from service.index.exact import ExactIndex
from service.index.faiss_index import FaissIndex
from service.index.funnel import MatryoshkaFunnelIndex
from service.inference.factory import make_backend, make_encoder
from service.settings import Settings
from training.data import split_of


def cached_vectors(path: Path, texts: list[str], encoder, *, kind: str) -> np.ndarray:
    if path.exists():
        return np.load(path)
    started = time.perf_counter()
    vectors = np.concatenate([encoder.encode(texts[i:i + 256], kind=kind) for i in range(0, len(texts), 256)])
    print(f"encoded {len(texts)} {kind} texts in {time.perf_counter() - started:.1f}s "
          f"({len(texts) / (time.perf_counter() - started):.0f}/s)", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def churn_plan(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    order = rng.permutation(n)
    base, fresh = order[: int(n * 0.9)], order[int(n * 0.9):]
    return {"base": base, "new": fresh,
            "changed": rng.choice(base, size=int(n * 0.1), replace=False),
            "deleted": rng.choice(base, size=int(n * 0.05), replace=False)}


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(set(f[f >= 0].tolist()) & set(t[t >= 0].tolist())) / max(1, (t >= 0).sum())
            for f, t in zip(found, truth)]
    return float(np.mean(hits))


def snapshot_mb(index) -> float:
    """Bytes of the index's own snapshot files: the vectors and structures it keeps in memory."""
    with tempfile.TemporaryDirectory() as folder:
        index.snapshot(Path(folder) / "index", meta={})
        return sum(f.stat().st_size for f in Path(folder).iterdir()) / 2**20


def run_candidate(name: str, index, ids, vectors, changed_vectors, plan, queries, truth, k: int) -> dict:
    started = time.perf_counter()
    index.upsert(ids[plan["base"]], vectors[plan["base"]])
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    for chunk in np.array_split(plan["new"], max(1, len(plan["new"]) // 100)):  # NRT-sized batches of ~100
        index.upsert(ids[chunk], vectors[chunk])
    for chunk in np.array_split(plan["changed"], max(1, len(plan["changed"]) // 100)):
        index.upsert(ids[chunk], changed_vectors[chunk])
    upserts = len(plan["new"]) + len(plan["changed"])
    upsert_s = time.perf_counter() - started
    started = time.perf_counter()
    index.delete(ids[plan["deleted"]])
    delete_s = time.perf_counter() - started
    index.search(queries[:5], k)  # warm-up
    latencies = []
    found = np.empty((len(queries), k), dtype=np.int64)
    for row in range(len(queries)):
        t0 = time.perf_counter()
        _, found[row] = index.search(queries[row:row + 1], k)
        latencies.append((time.perf_counter() - t0) * 1000)
    inner = getattr(index, "_index", None)
    if getattr(inner, "nlist", None):  # FaissIndex caps nlist at (first batch / 39): report the one trained
        name = name.replace("nlist=", f"nlist={inner.nlist} (asked ").replace(" nprobe", ") nprobe")
    return {"index": name, "recall@k": round(recall_at(found, truth), 4),
            "p50_ms": round(float(np.percentile(latencies, 50)), 3),
            "p99_ms": round(float(np.percentile(latencies, 99)), 3),
            "build_s": round(build_s, 2), "upserts_per_s": round(upserts / upsert_s),
            "delete_ms": round(delete_s * 1000, 2), "live": len(index), "snapshot_mb": round(snapshot_mb(index), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--dim", type=int, default=None, help="cut vectors to this Matryoshka dim (default: settings)")
    parser.add_argument("--threads", type=int, default=1, help="FAISS threads for single-query search")
    parser.add_argument("--shortlist-dim", type=int, default=64, help="the funnel candidates' short cut (0: none)")
    parser.add_argument("--shortlist-factor", type=int, default=8, help="the funnel's shortlist, as a multiple of k")
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = parser.parse_args()

    settings = Settings()
    faiss.omp_set_num_threads(args.threads)
    encoder = make_encoder(make_backend(settings), settings)
    catalogue = load_catalogue(settings.data_dir, limit=args.items)
    titles = catalogue.item_titles
    cache = settings.state_dir / "bench" / f"{encoder.model_version.replace(':', '-')}"
    vectors = cached_vectors(cache / f"items-{len(titles)}.npy", titles, encoder, kind="item")
    changed_vectors = cached_vectors(cache / f"items-changed-{len(titles)}.npy",
                                     [f"{t} new 2-pack" for t in titles], encoder, kind="item")
    terms = [t for t in catalogue.keyphrases if split_of(t) == "test"][: args.queries]
    queries = cached_vectors(cache / f"queries-test-{len(terms)}.npy", terms, encoder, kind="query")
    dim = args.dim or vectors.shape[1]
    renorm = lambda m: np.ascontiguousarray(m[:, :dim] / np.linalg.norm(m[:, :dim], axis=1, keepdims=True))  # noqa: E731
    vectors, changed_vectors, queries = renorm(vectors), renorm(changed_vectors), renorm(queries)

    ids = np.array([stable_id(i) for i in catalogue.item_ids], dtype=np.int64)
    plan = churn_plan(len(ids), np.random.default_rng(0))
    exact = ExactIndex(dim)
    run_candidate("exact", exact, ids, vectors, changed_vectors, plan, queries[:1], np.full((1, args.k), -1), args.k)
    _, truth = exact.search(queries, args.k)

    nlist = int(4 * np.sqrt(len(plan["base"])))
    candidates = [("flat", dict(kind="flat"))]
    candidates += [(f"ivf nlist={nlist} nprobe={p}", dict(kind="ivf", nlist=nlist, nprobe=p)) for p in (8, 16, 32, 64)]
    candidates += [(f"hnsw M=32 ef={ef}", dict(kind="hnsw", ef_search=ef)) for ef in (16, 32, 64, 128)]
    if 0 < args.shortlist_dim < dim:  # the funnel's HNSW searches with efSearch ≥ its shortlist, so one ef is enough
        funnel = {"shortlist_dim": args.shortlist_dim, "shortlist_factor": args.shortlist_factor}
        label = f"funnel {args.shortlist_dim}->{dim} x{args.shortlist_factor}"
        candidates += [(f"{label}: {name}", {**params, "funnel": funnel})
                       for name, params in candidates
                       if params.get("nprobe") in (None, 16, 32) and params.get("ef_search") in (None, 64)]
        candidates += [(f"{label}, int8 full vectors: flat", {"kind": "flat", "funnel": {**funnel, "full_precision": "int8"}})]
    rows = []
    print(f"{len(ids)} items ({len(exact)} live after churn), {len(queries)} queries, dim {dim}, "
          f"k={args.k}, {args.threads} FAISS thread(s)", flush=True)
    for name, params in candidates:
        funnel = params.pop("funnel", None)
        index = MatryoshkaFunnelIndex(dim, **funnel, **params) if funnel else FaissIndex(dim, **params)
        row = run_candidate(name, index, ids, vectors, changed_vectors, plan, queries, truth, args.k)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n| index | recall@{args.k} | p50 ms | p99 ms | build s | upserts/s | delete 5% ms | snapshot MB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['index']} | {r['recall@k']:.3f} | {r['p50_ms']} | {r['p99_ms']} | {r['build_s']} "
              f"| {r['upserts_per_s']} | {r['delete_ms']} | {r['snapshot_mb']} |")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
