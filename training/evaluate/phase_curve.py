"""Phased ranking's quality/latency curve: how deep must the cross-encoder re-score after the first phase?

    .venv/bin/python -m training.evaluate.phase_curve --split validation   # the curve; chooses the depth
    .venv/bin/python -m training.evaluate.phase_curve --split test --depths 0 20 200   # reported once

For each ``rerank_depth`` the service's own rule (``service/ranking/phases.py``) is replayed on precomputed
scores: the first phase (the served ``first_phase`` model over the served encoder's vectors, the item side
passed through the index's int8 full-vector store as the service reads it) scores every candidate, the
ranker's scores replace those of the first ``depth`` by first-phase expected relevance, and the boundary
rule orders the list. Two candidate sets per query, both from the split's queries:

- **labelled**: each query's human-labelled candidates (about 6 per query, at most 16), the set the
  project's NDCG@10 / RMSE / 3-level accuracy are defined on (``ranking_report``'s metrics code);
- **100-candidate lists**: the labelled candidates plus random catalogue items up to 100 (a sample of
  queries; the random items are taken as irrelevant, gain 0 — the regime of ``/v1/rank`` with 100
  candidates, where the first phase decides which few the cross-encoder sees). RMSE and accuracy are on
  the labelled rows only.

Each depth gets NDCG@10, RMSE, 3-level accuracy and the Kendall tau of its order against the full
cross-encoder's order (mean over queries with ≥ 2 candidates). The default depth is the smallest whose
**validation** figures on both sets are within the issue's bounds of the full cross-encoder (NDCG@10 ≥
full − 0.002, RMSE ≤ full + 0.005). Latency comes from ``bench/ranking_phases.py`` (its JSON) when present.
Scores are cached under ``artifacts/phase_curve/`` by split and model versions.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from service.catalogue import load_catalogue
from service.index.vector_store import SlotVectorStore
from service.inference.factory import make_backend, make_encoder, make_first_phase, make_pair_scorer
from service.ranking import phases
from service.ranking.ordinal import from_cumulative_logits
from service.settings import Settings
from training.data import labelled_pairs, split_frame
from training.evaluate.metrics import accuracy, ndcg_at_k, rmse

DEPTHS = (0, 5, 10, 20, 30, 50, 100)
NDCG_BOUND, RMSE_BOUND = 0.002, 0.005
LABELLED = "labelled candidates"  # the issue's: NDCG@10 ≥ full − 0.002, RMSE ≤ full + 0.005
ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "artifacts" / "phase_curve"


@dataclass(frozen=True)
class Scores:
    """Both phases' raw outputs per row of a candidate frame: [n, 2] cumulative relevance logits."""

    first: np.ndarray
    second: np.ndarray


def with_distractors(frame: pd.DataFrame, catalogue, *, queries: int, size: int = 100, seed: int = 0) -> pd.DataFrame:
    """A sample of ``queries`` queries (≥ 2 labelled), each with its labelled rows plus random catalogue items
    up to ``size`` candidates; the added rows have relevance 1.0 (irrelevant) and ``labelled`` False."""
    rng = np.random.default_rng(seed)
    groups = [(q, g) for q, g in frame.groupby("query", sort=True) if len(g) >= 2]
    picked = [groups[i] for i in sorted(rng.choice(len(groups), min(queries, len(groups)), replace=False))]
    ids, titles = np.array(catalogue.item_ids, dtype=object), np.array(catalogue.item_titles, dtype=object)
    parts = []
    for query, group in picked:
        labelled = set(group["item_id"].astype(str))
        extra = [r for r in rng.choice(len(ids), size + len(group), replace=False) if str(ids[r]) not in labelled]
        extra = extra[: size - len(group)]
        parts.append(group.assign(labelled=True))
        parts.append(pd.DataFrame({"query": query, "item_id": ids[extra], "title": titles[extra], "relevance": 1.0,
                                   "label": 0, "labelled": False}))
    return pd.concat(parts, ignore_index=True)


def _file_tag(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def _cached(path: Path, rows: int, compute) -> np.ndarray:
    if path.exists():
        cached = np.load(path)
        if len(cached) == rows:
            return cached
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, value)
    return value


def score(settings: Settings, frame: pd.DataFrame, *, name: str) -> Scores:
    """First-phase and ranker relevance logits for every row of ``frame`` (query_item), cached on disk by the
    candidate set and each model's file hash (a re-exported version of the same number is scored again)."""
    backend = make_backend(settings)
    encoder = make_encoder(backend, settings)
    first_phase, status = make_first_phase(backend, settings, encoder)
    if first_phase is None:
        raise SystemExit(f"phased ranking is {status}")
    first_tag = _file_tag(settings.model_repo / first_phase.model / first_phase.version / "model.onnx")
    encoder_tag = _file_tag(settings.model_repo / encoder.model / encoder.version / "model.onnx")

    def first() -> np.ndarray:
        queries = sorted(set(frame["query"]))
        q = dict(zip(queries, encoder.encode(queries, kind="query")))
        items = served_item_vectors(settings, encoder, frame)
        heads = first_phase.score(np.stack([q[x] for x in frame["query"]]), items)
        return _logits(heads.relevance)

    return Scores(_cached(CACHE / f"{name}-first_phase-{first_tag}-encoder-{encoder_tag}.npy", len(frame), first),
                  ranker_logits(settings, frame, name=name))


def served_item_vectors(settings: Settings, encoder, frame: pd.DataFrame) -> np.ndarray:
    """Each row's item vector as the service reads it: from the item index snapshot in ``settings.state_dir``
    (built by ``shoprank serve`` with this encoder; every catalogue title is stored as is) when there is one,
    else embedded and passed through the index's full-vector store."""
    from service.catalogue import stable_id
    from service.index.factory import restore_index

    path = settings.state_dir / "items.faiss"
    ids = np.array([stable_id(str(i)) for i in frame["item_id"]], dtype=np.int64)
    if path.exists():
        index = restore_index(settings, path)
        found, vectors = index.vectors(ids)
        print(f"item vectors from {path}: {found.mean():.4f} of rows found, the rest embedded", flush=True)
    else:
        found, vectors = np.zeros(len(frame), dtype=bool), np.zeros((len(frame), encoder.dim), np.float32)
    missing = np.flatnonzero(~found)
    if len(missing):
        titles = sorted(set(frame["title"].iloc[missing]))
        t = encoder.encode(titles, kind="item")
        if settings.funnel_dim is not None:  # what the funnel's full-vector store gives back
            store = SlotVectorStore(t.shape[1], precision=settings.index_full_precision, capacity=len(t))
            store.upsert(np.arange(len(t), dtype=np.int64), t)
            t = store.get(np.arange(len(t), dtype=np.int64))[1]
        by_title = dict(zip(titles, t))
        vectors[missing] = np.stack([by_title[x] for x in frame["title"].iloc[missing]])
    return vectors


def ranker_logits(settings: Settings, frame: pd.DataFrame, *, name: str) -> np.ndarray:
    """The ranker's relevance logits for ``frame`` (cached by the ranker file's hash)."""
    scorer = make_pair_scorer(make_backend(settings), settings.model_copy(update={"pair_cache_size": 0}))
    tag = _file_tag(settings.model_repo / scorer.model / scorer.version / "model.onnx")
    return _cached(CACHE / f"{name}-ranker-{tag}.npy", len(frame),
                   lambda: _logits(scorer.score(frame["query"].tolist(), frame["title"].tolist()).relevance))


def _logits(relevance) -> np.ndarray:
    """Back to cumulative logits (exact inverse of the sigmoid; the cache stores what the models emit)."""
    p = np.clip(np.stack([relevance.p_partial_or_better, relevance.p_exact], axis=1), 1e-12, 1 - 1e-12)
    return np.log(p / (1 - p))


def replay(frame: pd.DataFrame, scores: Scores, depth: int, *, cuts: tuple, deferred: int = 0,
           rng: np.random.Generator | None = None) -> pd.DataFrame:
    """Per row: its position in the phased order of its query (0 = best), phase, and the served heads.

    ``deferred``: that many of each query's re-scored rows, drawn by ``rng``, are left in phase 1 as a rank
    that defers its uncached pairs answers (``phases.deferred_rows``: never all of them)."""
    first = from_cumulative_logits(scores.first, label_cuts=cuts[0])
    second = from_cumulative_logits(scores.second, label_cuts=cuts[1])
    position = np.zeros(len(frame), dtype=np.int64)
    phase = np.full(len(frame), phases.FIRST, dtype=np.int64)
    for rows in frame.groupby("query", sort=False).indices.values():
        first_order = np.argsort(-first.expected[rows], kind="stable")  # the relevance profile, no floor
        chosen = phases.second_phase_rows(first_order, depth)
        late = np.zeros(len(chosen), dtype=bool)
        if 0 < deferred < len(chosen):
            held = np.ones(len(chosen), dtype=bool)
            held[rng.choice(len(chosen), deferred, replace=False)] = False
            late = phases.deferred_rows(held, deferred)
        local_phase = np.full(len(rows), phases.FIRST)
        local_phase[chosen[~late]] = phases.SECOND
        expected = np.where(local_phase == phases.SECOND, second.expected[rows], first.expected[rows])
        unfiltered = np.zeros(len(rows), dtype=bool)
        order = phases.keep_deferred_in_place(phases.phased_order(expected, unfiltered, local_phase), chosen, late,
                                              unfiltered)
        position[rows[order]] = np.arange(len(rows))
        phase[rows] = local_phase
    use_second = phase == phases.SECOND
    raw = np.where(use_second, second.raw_relevance, first.raw_relevance)
    label = np.where(use_second, second.label_index, first.label_index)
    return pd.DataFrame({"position": position, "phase": phase, "raw": raw, "label_index": label})


def kendall_vs_full(frame: pd.DataFrame, position: np.ndarray, full_position: np.ndarray) -> float:
    taus = [kendalltau(position[rows], full_position[rows]).statistic
            for rows in frame.groupby("query", sort=False).indices.values() if len(rows) >= 2]
    return float(np.nanmean(taus))


def curve(frame: pd.DataFrame, scores: Scores, depths, *, cuts: tuple) -> list[dict]:
    labelled = frame["labelled"].to_numpy() if "labelled" in frame else np.ones(len(frame), dtype=bool)
    full = replay(frame, scores, 10**6, cuts=cuts)
    rows = []
    for depth in depths:
        served = replay(frame, scores, depth, cuts=cuts)
        ranked = frame.assign(phased=-served["position"].to_numpy())
        rows.append({
            "depth": depth,
            "ndcg10": ndcg_at_k(ranked, "phased"),
            "rmse": rmse(served["raw"].to_numpy()[labelled], frame["relevance"].to_numpy()[labelled]),
            "accuracy": accuracy(served["label_index"].to_numpy()[labelled], frame["label"].to_numpy()[labelled]),
            "kendall_tau": kendall_vs_full(frame, served["position"].to_numpy(), full["position"].to_numpy()),
            "phase2_share": float((served["phase"] == phases.SECOND).mean()),
        })
    return rows


def within_bounds(rows: list[dict]) -> list[int]:
    """The depths whose NDCG@10 and RMSE are within the issue's bounds of the full cross-encoder (the deepest row)."""
    full = max(rows, key=lambda r: r["depth"])
    return [r["depth"] for r in rows
            if r["ndcg10"] >= full["ndcg10"] - NDCG_BOUND and r["rmse"] <= full["rmse"] + RMSE_BOUND]


def choose_depth(sets: dict[str, list[dict]]) -> int:
    """The smallest depth within the bounds on every candidate set: the labelled candidates (where the issue's
    bounds are defined, the test table's pairs) and the 100-candidate lists (the regime where a depth below
    the candidate count matters). The full cross-encoder always qualifies."""
    qualifying = set.intersection(*(set(within_bounds(rows)) for rows in sets.values()))
    return min(qualifying)


def plot(result: dict, path: Path, *, latency: dict | None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    for (name, rows), color in zip(result["sets"].items(), ("tab:blue", "tab:orange")):
        depths = [r["depth"] for r in rows]
        full = max(rows, key=lambda r: r["depth"])
        axes[0].plot(depths, [r["ndcg10"] for r in rows], "o-", color=color, label=name)
        axes[0].axhline(full["ndcg10"] - NDCG_BOUND, color=color, ls=":", lw=1, label=f"full − {NDCG_BOUND}, {name}")
        axes[1].plot(depths, [r["rmse"] for r in rows], "o-", color=color, label=name)
        axes[1].axhline(full["rmse"] + RMSE_BOUND, color=color, ls=":", lw=1, label=f"full + {RMSE_BOUND}, {name}")
        axes[2].plot(depths, [r["kendall_tau"] for r in rows], "o-", color=color, label=name)
    for ax in axes:
        ax.axvline(result["chosen_depth"], color="tab:green", ls="--", lw=1, label=f"chosen depth {result['chosen_depth']}")
        ax.set_xscale("symlog", linthresh=5)
        ax.set_xticks(list(DEPTHS), [str(d) for d in DEPTHS])
        ax.set_xlabel("rerank_depth (candidates the cross-encoder re-scores)")
        ax.grid(alpha=0.3)
    axes[0].set_title(f"NDCG@10, {result['split']} split ({result['models']})", fontsize=9)
    axes[1].set_title("RMSE on the labelled pairs (1–3 scale)", fontsize=9)
    axes[2].set_title("Kendall τ of the order vs the full cross-encoder's", fontsize=9)
    if latency:
        twin = axes[2].twinx()
        depths = sorted(int(d) for d in latency)
        twin.plot(depths, [latency[str(d)] for d in depths], "s--", color="tab:red", label="p50 ÷ full, 100 candidates")
        twin.set_ylabel("/v1/rank p50 at 100 candidates ÷ full cross-encoder", color="tab:red")
        twin.legend(fontsize=7, loc="lower right")
    for ax, where in zip(axes, ("lower right", "upper right", "center right")):
        ax.legend(fontsize=7, loc=where)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def to_markdown(result: dict) -> str:
    lines = []
    for name, rows in result["sets"].items():
        lines += [f"{result['split']}, {name}:", "",
                  "| rerank_depth | NDCG@10 | RMSE | 3-level acc. | Kendall τ vs full | share re-scored |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: |"]
        lines += [f"| {r['depth']} | {r['ndcg10']:.4f} | {r['rmse']:.4f} | {r['accuracy']:.4f} | "
                  f"{r['kendall_tau']:.3f} | {r['phase2_share']:.2f} |" for r in rows]
        lines.append("")
    return "\n".join(lines)


def candidate_sets(settings: Settings, split: str, queries: int) -> dict[str, tuple[str, pd.DataFrame]]:
    """The two candidate sets of a split: display name → (cache name, frame)."""
    frame = split_frame(labelled_pairs(settings.data_dir), split).assign(labelled=True)
    lists = with_distractors(frame, load_catalogue(settings.data_dir), queries=queries)
    return {LABELLED: (f"{split}-labelled", frame),
            f"100-candidate lists ({lists['query'].nunique()} queries)": (f"{split}-lists{queries}", lists)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=["validation", "test"], default="validation")
    parser.add_argument("--depths", type=int, nargs="+", default=list(DEPTHS))
    parser.add_argument("--queries", type=int, default=200, help="queries of the 100-candidate lists")
    parser.add_argument("--latency", type=Path, default=ROOT / "docs" / "bench" / "ranking_phases.json",
                        help="bench/ranking_phases.py's JSON (p50 ratio per depth), drawn when present")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "report")
    args = parser.parse_args(argv)
    settings = Settings()
    backend = make_backend(settings)
    first_phase, _ = make_first_phase(backend, settings, make_encoder(backend, settings))
    ranker = make_pair_scorer(backend, settings)
    cuts = (first_phase.card.get("calibration", {}).get("label_cuts"), ranker.card.get("calibration", {}).get("label_cuts"))
    sets = {title: curve(frame, score(settings, frame, name=name), args.depths, cuts=cuts)
            for title, (name, frame) in candidate_sets(settings, args.split, args.queries).items()}
    result = {"split": args.split, "models": f"{ranker.model_version}+{first_phase.model_version}",
              "depths": args.depths, "sets": sets, "chosen_depth": choose_depth(sets)}
    print(to_markdown(result))
    result["within_bounds"] = {name: within_bounds(rows) for name, rows in sets.items()}
    print(f"depths within the bounds on {args.split}: {result['within_bounds']}; "
          f"chosen (smallest on both): {result['chosen_depth']}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"phase_curve_{args.split}.json").write_text(json.dumps(result, indent=1))
    if args.split == "validation":
        latency = None
        if args.latency.exists():
            latency = json.loads(args.latency.read_text()).get("depth_p50_ratio")
        print("plot:", plot(result, args.out / "phase_curve.png", latency=latency))
    return result


if __name__ == "__main__":
    main()
