"""The layer-dropped ranker beside the served one: export, calibration, quality and latency, as served.

Both models run through ``service.inference`` (embedded ONNX Runtime, int8, the service's length-sorted
sub-batches) in one process, so the figures are ratios on the same machine at the same moment.
Quality reuses ``shoprank eval``'s metrics (``training/evaluate/ranking_report.ranker_row``);
calibration reuses ``shoprank calibrate`` on the student's own repository (validation split only).

``python -m training.cross_encoder.lite_compare --lite-repo artifacts/ranker-lite/model_repo --split validation``
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from service.inference.factory import make_backend
from service.inference.models import PairScorer
from service.logging import configure_logging
from service.settings import Settings
from training.data import labelled_pairs, split_frame
from training.evaluate.metrics import pearson_r, rmse
from training.evaluate.ranking_report import Row, ranker_row, to_markdown

log = logging.getLogger(__name__)


def export_lite(artifact: Path, *, repo: Path, version: int, settings: Settings | None = None) -> Path:
    """int8 + fp32 ONNX of the student into ``repo/<ranker_model>/<version>`` with a card, then its
    calibration (floor, cut points, engagement priors) fitted on validation, as ``shoprank calibrate``."""
    import json

    from training.calibrate import calibrate_ranker
    from training.export.onnx_export import export_ranker

    settings = settings or Settings()
    meta = json.loads((artifact / "config.json").read_text())
    card = {"second_phase": {"kept_layers": meta["kept_layers"], "teacher_layers": meta.get("teacher_layers"),
                             "distilled_from": meta.get("distilled_from"), "artifact": str(artifact)}}
    version_dir = export_ranker(artifact_dir=artifact, repo=repo, name=settings.ranker_model, version=version,
                                card=card)
    calibrate_ranker(settings.model_copy(update={"model_repo": repo}), version=version)
    return version_dir


def scorer_for(repo: Path, settings: Settings, *, max_tokens: int | None = None) -> PairScorer:
    """The served pair scorer over ``repo`` (no pair cache: every pair reaches the model)."""
    local = settings.model_copy(update={"model_repo": repo, "inference": "embedded"})
    return PairScorer(make_backend(local), repo, settings.ranker_model,
                      max_tokens=max_tokens or settings.pair_max_tokens, sub_batch=settings.inference_sub_batch)


def quality(scorers: dict[str, PairScorer], *, split: str, settings: Settings) -> tuple[list[Row], dict]:
    """NDCG@10 / RMSE / 3-level accuracy / macro-F1 on ``split`` (query_item) of each scorer, plus how
    closely each follows the first one (Pearson r and RMSE of the expected rating)."""
    frame = split_frame(labelled_pairs(settings.data_dir), split)
    rows, expected = [], {}
    for name, scorer in scorers.items():
        heads = scorer.score(frame["query"].tolist(), frame["title"].tolist(), task="query_item")
        frame[name] = expected[name] = heads.relevance.expected
        rows.append(ranker_row(f"{name} ({scorer.model_version})", frame, heads, column=name))
    first = next(iter(expected))
    agreement = {name: {"pearson_r": round(pearson_r(expected[first], e), 4),
                        "rmse_vs_first": round(rmse(e, expected[first]), 4)} for name, e in expected.items()}
    return rows, agreement


def latency(scorers: dict[str, PairScorer], *, settings: Settings, pairs: int = 100, repeats: int = 30,
            seed: int = 0) -> dict[str, dict]:
    """Per-call latency of ``pairs`` candidates (one query, as ``/v1/rank``), the scorers interleaved on
    the same samples; median and p90 in ms, per pair, and each median as a ratio of the first scorer's."""
    frame = split_frame(labelled_pairs(settings.data_dir), "validation")
    rng = np.random.default_rng(seed)
    titles = frame["title"].unique()
    queries = frame["query"].unique()
    times: dict[str, list[float]] = {name: [] for name in scorers}
    for scorer in scorers.values():  # load sessions and tokenizers outside the clock
        scorer.score(["warm up"] * 8, ["warm up"] * 8)
    for r in range(repeats):
        query = str(queries[rng.integers(len(queries))])
        candidates = [str(t) for t in rng.choice(titles, size=pairs, replace=False)]
        names = list(scorers) if r % 2 == 0 else list(scorers)[::-1]  # alternate who runs first
        for name in names:
            started = time.perf_counter()
            scorers[name].score([query] * pairs, candidates, task="query_item")
            times[name].append((time.perf_counter() - started) * 1000)
    first = np.median(times[next(iter(scorers))])
    return {name: {"p50_ms": round(float(np.median(t)), 1), "p90_ms": round(float(np.percentile(t, 90)), 1),
                   "ms_per_pair": round(float(np.median(t)) / pairs, 3), "ratio_p50": round(float(np.median(t) / first), 3)}
            for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lite-repo", type=Path, action="append", required=True,
                        help="model repository of a student (repeatable); the served one is --repo")
    parser.add_argument("--repo", type=Path, default=None, help="the served repository (default: settings)")
    parser.add_argument("--split", default="validation", help="validation (choices) or test (once, at the end)")
    parser.add_argument("--tokens", default="", help="also score each student truncated to these max tokens, e.g. 48")
    parser.add_argument("--latency", action="store_true", help="also time 100-pair calls side by side")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--no-quality", action="store_true")
    args = parser.parse_args()
    settings = Settings()
    configure_logging(settings)
    scorers = {"served": scorer_for(args.repo or settings.model_repo, settings)}
    for repo in args.lite_repo:
        scorers[str(repo)] = scorer_for(repo, settings)
        for tokens in [int(t) for t in args.tokens.split(",") if t]:
            scorers[f"{repo}@{tokens}"] = scorer_for(repo, settings, max_tokens=tokens)
    if not args.no_quality:
        rows, agreement = quality(scorers, split=args.split, settings=settings)
        print(f"split: {args.split}\n" + to_markdown(rows))
        for row in rows:  # the bounds are in thousandths: four decimals
            print(f"{row.system}: NDCG@10 {row.ndcg10:.4f} RMSE {row.rmse:.4f} accuracy {row.accuracy:.4f} "
                  f"macro-F1 {row.macro_f1:.4f}")
        print("agreement of the expected rating with the served ranker:", agreement)
    if args.latency:
        print("latency, 100 candidates per call:", latency(scorers, settings=settings, repeats=args.repeats))


if __name__ == "__main__":
    main()
