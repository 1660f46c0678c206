"""Dense vs lexical vs hybrid retrieval over the whole catalogue: recall@100 and NDCG@10 per mode.

    .venv/bin/python -m bench.hybrid_retrieval [--state-dir var/bench/ranking_phases] [--out docs/bench/hybrid_retrieval.json]

The served parts, in process: ``build_runtime`` with the default settings over all 54,667 items (the item
index restored from ``--state-dir``'s snapshot when it matches the served encoder, else encoded once), the
query tower and the item index for **dense**, ``Bm25LexicalIndex`` over the titles for **lexical**, and the
service's own ``reciprocal_rank_fusion`` over both lists (each ``hybrid_candidates`` = 100 deep, as
``/v1/retrieve`` fuses at k ≤ 100) for **hybrid**. A sample of queries also goes through
``pipelines.retrieve(mode="hybrid")`` to check that the offline fusion is what the endpoint returns.

Judgements (data/README.md labels): recall@100 is the share of a query's *exact* items (label 2) in the top
100, as the report's retrieval section (``training/evaluate/retrieval.py``); NDCG@10 uses the graded labels
(gain 0/1/2); items without a judgement count as irrelevant. Queries: those with at least one exact item.
Both metrics through ranx. Home Depot's judged candidates came from its own (largely lexical) search engine,
so unjudged-but-relevant items found only by dense retrieval count against it: a bias to keep in mind.

Choice, on **validation** only: the RRF constant c with the best recall@100 (ties: NDCG@10), then the
default mode with the best recall@100 (the retrieval stage feeds the ranker; recall is its job). Then the
**test** split is measured once with those choices.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
from ranx import Qrels, Run, evaluate

from service import pipelines
from service.ranking.fusion import reciprocal_rank_fusion
from service.runtime import Runtime, build_runtime
from service.settings import Settings
from training.data import labelled_pairs, split_frame

RRF_CONSTANTS = (0, 1, 5, 10, 20, 40, 60, 100, 200)
DEPTH = 100


def judgements(settings: Settings, split: str) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    """(graded qrels for NDCG, exact-only qrels for recall) of the split's queries with ≥ 1 exact item."""
    frame = split_frame(labelled_pairs(settings.data_dir), split)
    exact_queries = set(frame.loc[frame["label"] == 2, "query"])
    frame = frame[frame["query"].isin(exact_queries)]
    graded: dict[str, dict[str, int]] = {}
    exact: dict[str, dict[str, int]] = {}
    for query, item_id, label in zip(frame["query"], frame["item_id"].astype(str), frame["label"]):
        graded.setdefault(query, {})[item_id] = max(int(label), graded.get(query, {}).get(item_id, 0))
        if label == 2:
            exact.setdefault(query, {})[item_id] = 1
    return graded, exact


def source_lists(runtime: Runtime, queries: list[str]) -> tuple[list[list[str]], list[list[str]], float, float]:
    """Per query the dense and the lexical top ``DEPTH`` item ids, and the seconds each source took."""
    started = time.perf_counter()
    dense = [[item_id for item_id, _ in pipelines.dense_hits(runtime, q, DEPTH)] for q in queries]
    dense_s = time.perf_counter() - started
    started = time.perf_counter()
    lexical = [[item_id for item_id, _ in pipelines.lexical_hits(runtime, q, DEPTH)] for q in queries]
    return dense, lexical, dense_s, time.perf_counter() - started


def metrics(graded, exact, queries: list[str], lists: list[list[str]]) -> dict[str, float]:
    # scores only order the run: DEPTH, DEPTH-1, … keeps each list's order (an empty list: a zero-score stub)
    run = {q: ({item: float(DEPTH - r) for r, item in enumerate(got)} or {"-": 0.0}) for q, got in zip(queries, lists)}
    return {"recall@100": float(evaluate(Qrels(exact), Run(run), "recall@100")),
            "ndcg@10": float(evaluate(Qrels(graded), Run(run), "ndcg@10"))}


def measure(runtime: Runtime, split: str, constants: tuple[int, ...]) -> dict:
    graded, exact = judgements(runtime.settings, split)
    queries = sorted(exact)
    dense, lexical, dense_s, lexical_s = source_lists(runtime, queries)
    rows = {"dense": metrics(graded, exact, queries, dense), "lexical": metrics(graded, exact, queries, lexical)}
    first_sets = None
    same_set: dict[str, float] = {}
    for c in constants:
        fused = [[key for key, _ in reciprocal_rank_fusion([d, lx], c=c, k=DEPTH)] for d, lx in zip(dense, lexical)]
        rows[f"hybrid c={c}"] = metrics(graded, exact, queries, fused)
        sets = [set(f) for f in fused]
        first_sets = first_sets or sets
        same_set[f"c={c}"] = round(float(np.mean([a == b for a, b in zip(sets, first_sets)])), 4)
    only_lexical = np.mean([len(set(lx) - set(d)) / max(len(lx), 1) for d, lx in zip(dense, lexical)])
    return {"split": split, "queries": len(queries), "rows": rows,
            "seconds": {"dense": round(dense_s, 1), "lexical": round(lexical_s, 1)},
            "share_of_lexical_top100_not_in_dense_top100": round(float(only_lexical), 4),
            f"share_of_queries_whose_fused_top100_set_equals_c={constants[0]}": same_set}


def check_endpoint_fusion(runtime: Runtime, queries: list[str], c: int) -> int:
    """``pipelines.retrieve(mode="hybrid", k=100)`` vs the offline fusion on these queries; returns mismatches."""
    settings = runtime.settings.model_copy(update={"rrf_k": c, "hybrid_candidates": DEPTH})
    probe = dataclasses.replace(runtime, settings=settings)
    bad = 0
    for q in queries:
        served = [hit.item.item_id for hit in pipelines.retrieve(probe, query=q, k=DEPTH, mode="hybrid")]
        dense, lexical, _, _ = source_lists(runtime, [q])
        offline = [key for key, _ in reciprocal_rank_fusion([dense[0], lexical[0]], c=c, k=DEPTH)]
        bad += served != offline
    return bad


def best(result: dict, names: list[str]) -> str:
    rows = result["rows"]
    return max(names, key=lambda name: (rows[name]["recall@100"], rows[name]["ndcg@10"]))


def table(result: dict) -> str:
    lines = ["| mode | recall@100 (exact) | NDCG@10 |", "| --- | ---: | ---: |"]
    lines += [f"| {name} | {row['recall@100']:.4f} | {row['ndcg@10']:.4f} |" for name, row in result["rows"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--state-dir", type=Path, default=Path("var/bench/ranking_phases"),
                        help="index snapshots (shared with bench.ranking_phases: built once)")
    parser.add_argument("--out", type=Path, default=Path("var/bench/hybrid_retrieval.json"))
    parser.add_argument("--check-queries", type=int, default=30)
    args = parser.parse_args(argv)
    settings = Settings(state_dir=args.state_dir, catalogue_limit=None, kafka_bootstrap=None, redis_url=None)
    started = time.perf_counter()
    runtime = build_runtime(settings)
    print(f"runtime ready in {time.perf_counter() - started:.0f}s: {len(runtime.items)} vectors, "
          f"{len(runtime.lexical)} titles; load {os.getloadavg()[0]:.2f}")
    validation = measure(runtime, "validation", RRF_CONSTANTS)
    c = int(best(validation, [f"hybrid c={c}" for c in RRF_CONSTANTS]).split("=")[1])
    mode = best(validation, ["dense", "lexical", f"hybrid c={c}"]).split(" ")[0]
    print(f"validation ({validation['queries']} queries):\n{table(validation)}\nchosen: rrf_k={c}, default mode={mode}")
    test = measure(runtime, "test", (c,))
    print(f"test ({test['queries']} queries):\n{table(test)}")
    mismatches = check_endpoint_fusion(runtime, sorted(judgements(settings, "test")[1])[: args.check_queries], c)
    print(f"pipelines.retrieve(mode='hybrid') vs offline fusion: {mismatches} of {args.check_queries} queries differ")
    ps = subprocess.run(["ps", "-eo", "pcpu,comm", "--sort=-pcpu"], capture_output=True, text=True).stdout
    out = {"validation": validation, "test": test, "chosen": {"rrf_k": c, "retrieval_mode": mode},
           "endpoint_mismatches": mismatches, "load_average": os.getloadavg(),
           "busiest_processes": ps.splitlines()[:6]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")
    runtime.close()


if __name__ == "__main__":
    main()
