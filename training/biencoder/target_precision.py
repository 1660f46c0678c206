"""Which precision should score the student's distillation targets: fp32 or the int8 the service runs?

``python -m training.biencoder.target_precision REPO/ranker/N --pairs 3000``: one exported ranker version
(it must hold both ``model.onnx`` (int8) and ``model.fp32.onnx``), a seeded sample of the VALIDATION
split's query–item pairs, both precisions through the service's inference seam, side by side in one
run: RMSE of each's expected rating against the human mean, NDCG@10 within each query, and how far the
two are apart. The recipe's choice (``training/biencoder/teacher_scores.py``) cites this measurement.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np


def _view(version_dir: Path, onnx: str, root: Path) -> Path:
    """A one-version repository whose ``model.onnx`` is ``version_dir/onnx`` (links, nothing copied)."""
    out = root / onnx.replace(".", "_")
    target = out / version_dir.parent.name / version_dir.name
    target.mkdir(parents=True)
    for item in version_dir.iterdir():
        if not item.name.endswith(".onnx"):
            (target / item.name).symlink_to(item.resolve())
    (target / "model.onnx").symlink_to((version_dir / onnx).resolve())
    return out


def compare(version_dir: Path, *, pairs: int = 3000, seed: int = 0) -> dict:
    import pandas as pd

    from service.inference.factory import make_backend, make_pair_scorer
    from service.settings import Settings
    from training.biencoder.teacher_scores import score_pairs
    from training.data import labelled_pairs, split_frame
    from training.evaluate.metrics import ndcg_at_k, rmse

    settings = Settings()
    frame = split_frame(labelled_pairs(settings.data_dir), "validation")
    queries = frame["query"].drop_duplicates().sample(frac=1.0, random_state=seed)
    # whole queries, so NDCG@10 is over each query's every labelled item
    keep, total = [], 0
    for query, size in frame.groupby("query").size().loc[queries].items():
        if total >= pairs:
            break
        keep.append(query)
        total += size
    sample = frame[frame["query"].isin(keep)].reset_index(drop=True)
    out: dict = {"ranker": str(version_dir), "split": "validation", "pairs": len(sample), "queries": len(keep),
                 "seed": seed}
    scores = {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision, onnx in (("fp32", "model.fp32.onnx"), ("int8", "model.onnx")):
            repo = _view(version_dir, onnx, Path(tmp))
            serve = settings.model_copy(update={"model_repo": repo, "ranker_model": version_dir.parent.name,
                                                "inference": "embedded", "pair_cache_size": 0})
            started = time.time()
            scores[precision] = score_pairs(scorer=make_pair_scorer(make_backend(serve), serve),
                                            lefts=sample["query"].tolist(), rights=sample["title"].tolist())
            scored = pd.DataFrame({"query": sample["query"], "relevance": sample["relevance"],
                                   "score": scores[precision]})
            out[precision] = {"rmse": round(rmse(scores[precision], sample["relevance"].to_numpy()), 4),
                              "ndcg10": round(ndcg_at_k(scored, "score"), 4),
                              "seconds": round(time.time() - started, 1)}
    gap = np.abs(scores["fp32"] - scores["int8"])
    out["fp32_vs_int8"] = {"max_abs_diff": round(float(gap.max()), 4), "mean_abs_diff": round(float(gap.mean()), 4),
                           "pearson": round(float(np.corrcoef(scores["fp32"], scores["int8"])[0, 1]), 4)}
    return out


def main(version_dir: Path, pairs: int = 3000, seed: int = 0) -> None:
    print(json.dumps(compare(version_dir, pairs=pairs, seed=seed), indent=2))


if __name__ == "__main__":
    import typer

    typer.run(main)
