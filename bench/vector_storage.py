"""Id-keyed vector storage as the catalogue grows: FAISS ``IndexIDMap2`` vs ``SlotVectorStore``, in both roles.

Every near-real-time batch replaces (re-embedded items) or drops (deleted items) vectors by id, in
two places: the funnel's full 384-d vectors, which rescore each shortlist, and the flat index, which
scans the 64-d cut for that shortlist (or 384-d with the funnel off). Side by side in one run, at each
catalogue size: milliseconds per batch of 100 re-upserts, per batch of 100 deletes (each followed by
re-adding the same ids, so the size stays put), per read (full vectors: a lookup of 160 ids, 8 × k at
k = 20; flat index: one query's top 160), and the resident memory the filled store added to its
process (id maps included: each store is built in a fresh process). The FAISS stores are what
``service/index/`` used before ``service/index/vector_store.py``; they stay here only as baselines.
Vectors are random unit vectors: the costs measured do not depend on their values.

    .venv/bin/python bench/vector_storage.py --sizes 100000 1000000 4000000
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time

import faiss
import numpy as np

from service.index.vector_store import SlotVectorStore

BATCH, SHORTLIST = 100, 160


class FaissIdMapStore:
    """The baseline: FAISS keeps the vectors by id; ``remove_ids`` rewrites the array behind the removed rows."""

    def __init__(self, inner) -> None:
        self.index = faiss.IndexIDMap2(inner)

    def upsert(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.index.remove_ids(ids)
        self.index.add_with_ids(vectors, ids)

    def delete(self, ids: np.ndarray) -> None:
        self.index.remove_ids(ids)

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        return self.index.reconstruct_batch(ids)

    def search(self, queries: np.ndarray, k: int):
        return self.index.search(queries, k)


# name -> (role, dimension, factory); a role's first store is its baseline
STORES = {
    "FAISS IDMap2(SQ fp16)": ("full vectors", 384, lambda: FaissIdMapStore(
        faiss.IndexScalarQuantizer(384, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT))),
    "SlotVectorStore fp16": ("full vectors", 384, lambda: SlotVectorStore(384, precision="fp16")),
    "SlotVectorStore int8": ("full vectors", 384, lambda: SlotVectorStore(384, precision="int8")),
    "FAISS IDMap2(FlatIP) 64-d": ("flat index", 64, lambda: FaissIdMapStore(faiss.IndexFlatIP(64))),
    "SlotVectorStore fp32 64-d": ("flat index", 64, lambda: SlotVectorStore(64, precision="fp32")),
}


# glibc raises its mmap threshold (up to 32 MB) each time a large block is freed, after which freed
# temporaries of that size stay in the heap and inflate the resident size; a fixed threshold returns them.
CHILD_ENV = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(1 << 20)}


def resident_mb() -> float:
    gc.collect()
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def unit_vectors(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim), dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def per_call_ms(action, batches: list[np.ndarray], *, then=None) -> float:
    """Median milliseconds of ``action(batch)`` over the batches; ``then(batch)`` runs after each, untimed."""
    timings = []
    for batch in batches:
        started = time.perf_counter()
        action(batch)
        timings.append((time.perf_counter() - started) * 1000)
        if then is not None:
            then(batch)
    return float(np.median(timings))


def measure(name: str, n: int, rounds: int) -> dict:
    role, dim, factory = STORES[name]
    rng = np.random.default_rng(n)
    ids = rng.choice(2**62, size=n, replace=False).astype(np.int64)
    before = resident_mb()
    store = factory()
    started = time.perf_counter()
    for start in range(0, n, 100_000):
        store.upsert(ids[start:start + 100_000], unit_vectors(rng, min(100_000, n - start), dim))
    build_s = time.perf_counter() - started
    memory_mb = resident_mb() - before
    batches = [rng.choice(ids, size=BATCH, replace=False) for _ in range(rounds)]
    fresh = unit_vectors(rng, BATCH, dim)
    upsert_ms = per_call_ms(lambda b: store.upsert(b, fresh), batches)
    delete_ms = per_call_ms(store.delete, batches, then=lambda b: store.upsert(b, fresh))  # re-added: same size
    if role == "full vectors":
        read_ms = per_call_ms(store.lookup, [rng.choice(ids, size=SHORTLIST, replace=False) for _ in range(rounds)])
    else:
        read_ms = per_call_ms(lambda q: store.search(q, SHORTLIST), [unit_vectors(rng, 1, dim) for _ in range(rounds)])
    return {"role": role, "store": name, "items": n, "build_s": round(build_s, 2),
            "upsert_100_ms": round(upsert_ms, 3), "delete_100_ms": round(delete_ms, 3),
            "read_ms": round(read_ms, 3), "mb": round(memory_mb, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=30, help="batches timed per operation (median reported)")
    parser.add_argument("--roles", nargs="+", default=["full vectors", "flat index"])
    parser.add_argument("--out", default=None, help="write the rows as JSON here")
    parser.add_argument("--one", nargs=2, metavar=("STORE", "ITEMS"), help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    faiss.omp_set_num_threads(1)
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), args.rounds)))
        return
    rows = []
    for n in args.sizes:
        for name in (name for name, (role, _, _) in STORES.items() if role in args.roles):  # fresh process each
            child = subprocess.run([sys.executable, __file__, "--rounds", str(args.rounds), "--one", name, str(n)],
                                   check=True, capture_output=True, text=True, env=CHILD_ENV)
            rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    print("\n| role | items | store | upsert 100 ms | delete 100 ms | read ms | resident MB | vs FAISS: upsert, read, MB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        base = next(r for r in rows if (r["role"], r["items"]) == (row["role"], row["items"]))
        ratios = "baseline" if row is base else (
            f"{row['upsert_100_ms'] / base['upsert_100_ms']:.4f}×, {row['read_ms'] / base['read_ms']:.2f}×, "
            f"{row['mb'] / base['mb']:.2f}×")
        print(f"| {row['role']} | {row['items']:,} | {row['store']} | {row['upsert_100_ms']} | "
              f"{row['delete_100_ms']} | {row['read_ms']} | {row['mb']} | {ratios} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
