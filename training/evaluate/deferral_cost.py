"""What a deferred pair costs the answer it is deferred in: NDCG@10 with 1–3 of the re-scored rows left in phase 1.

    .venv/bin/python -m training.evaluate.deferral_cost --split validation
    .venv/bin/python -m training.evaluate.deferral_cost --split test      # reported once

A phased rank of a query the replica re-scored before answers without the few pairs its cache lacks (a new,
retitled or moved-up item; ``settings.rerank_defer_max``), and the next request has them
(``service/inference/pair_filler.py``). This replays ``phase_curve``'s candidate sets at the served depth with
``d`` of each query's re-scored rows, drawn at random (which item changed is unrelated to its relevance), kept
in phase 1: the quality of an answer *during* that window, as if every query were in it. The answers after the
window are the undeferred ones (row ``d`` = 0). Mean over ``--seeds`` draws.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from service.inference.factory import make_backend, make_encoder, make_first_phase, make_pair_scorer
from service.settings import Settings
from training.evaluate.metrics import ndcg_at_k
from training.evaluate.phase_curve import ROOT, candidate_sets, replay, score


def ndcg_with_deferred(frame, scores, *, depth: int, deferred: int, cuts: tuple, seeds: int) -> float:
    """Mean NDCG@10 over ``seeds`` draws of ``deferred`` re-scored rows per query left in phase 1."""
    values = []
    for seed in range(seeds if deferred else 1):
        served = replay(frame, scores, depth, cuts=cuts, deferred=deferred, rng=np.random.default_rng(seed))
        values.append(ndcg_at_k(frame.assign(phased=-served["position"].to_numpy()), "phased"))
    return float(np.mean(values))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=["validation", "test"], default="validation")
    parser.add_argument("--deferred", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--queries", type=int, default=200, help="queries of the 100-candidate lists")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "report")
    args = parser.parse_args(argv)
    settings = Settings()
    backend = make_backend(settings)
    first_phase, _ = make_first_phase(backend, settings, make_encoder(backend, settings))
    ranker = make_pair_scorer(backend, settings)
    cuts = (first_phase.card.get("calibration", {}).get("label_cuts"), ranker.card.get("calibration", {}).get("label_cuts"))
    depth = settings.rerank_depth
    sets = {}
    for title, (name, frame) in candidate_sets(settings, args.split, args.queries).items():
        scores = score(settings, frame, name=name)
        sets[title] = {d: ndcg_with_deferred(frame, scores, depth=depth, deferred=d, cuts=cuts, seeds=args.seeds)
                       for d in args.deferred}
    result = {"split": args.split, "models": f"{ranker.model_version}+{first_phase.model_version}", "depth": depth,
              "seeds": args.seeds, "ndcg10_by_deferred": sets}
    print(f"NDCG@10 at rerank depth {depth} with d re-scored rows per query deferred ({args.split}, {result['models']})")
    print("| candidate set | " + " | ".join(f"d = {d}" for d in args.deferred) + " |")
    print("| --- |" + " ---: |" * len(args.deferred))
    for title, row in sets.items():
        print(f"| {title} | " + " | ".join(f"{row[d]:.4f}" for d in args.deferred) + " |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"deferral_cost_{args.split}.json").write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
