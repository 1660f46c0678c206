"""Human-label figures of first-phase (or ranker) logits on one split's query–item pairs.

The same read-outs the project reports for the ranker (``training/evaluate/ranking_report.py``): NDCG@10
by expected relevance per query, RMSE of the expected rating (1–3) against the human mean, and 3-level
accuracy with the card's label cuts — through the project's metric code.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from service.inference.repository import latest_version
from service.ranking.ordinal import from_cumulative_logits, label_from_raw
from training.evaluate.metrics import accuracy, macro_f1, ndcg_at_k, rmse


def human_figures(queries: pd.Series, relevance: np.ndarray, relevance_logits: np.ndarray, *,
                  label_cuts=None) -> dict:
    """``queries``/``relevance`` (human mean 1–3) of query–item pairs and the logits scored for them."""
    scores = from_cumulative_logits(relevance_logits, label_cuts=label_cuts)
    relevance = np.asarray(relevance, dtype=float)
    frame = pd.DataFrame({"query": np.asarray(queries), "relevance": relevance, "score": scores.expected})
    truth = label_from_raw(relevance)
    return {"pairs": len(frame), "ndcg10": ndcg_at_k(frame, "score"), "rmse": rmse(scores.raw_relevance, relevance),
            "accuracy": accuracy(scores.label_index, truth), "macro_f1": macro_f1(scores.label_index, truth)}


def split_figures(settings, *, split: str = "test", model: str = "first_phase") -> dict:
    """The served first phase alone on ``split``'s query–item pairs (every labelled row, as ``shoprank eval``),
    beside the served encoder's cosine on the same rows; run once, at the end, on test.

    Vectors come from the served encoder at full width (queries ``kind="query"``, titles ``kind="item"``) and
    the scores from the repository's ``model`` through the service's inference backend."""
    from service.inference.factory import make_backend
    from training.data import labelled_pairs, split_frame
    from training.first_phase.embed import encode_texts, full_width_encoder

    frame = split_frame(labelled_pairs(settings.data_dir), split)
    backend = make_backend(settings)
    encoder = full_width_encoder(settings)
    queries = encode_texts(encoder, frame["query"].tolist(), kind="query")
    titles = encode_texts(encoder, frame["title"].tolist(), kind="item")
    q = np.stack([queries[t] for t in frame["query"]])
    i = np.stack([titles[t] for t in frame["title"]])
    step = backend.model_info(model).max_batch
    parts = [backend.infer(model, {"query_embedding": q[s:s + step], "item_embedding": i[s:s + step],
                                   "task_id": np.zeros(len(q[s:s + step]), np.int64)}) for s in range(0, len(q), step)]
    logits = np.concatenate([p["relevance_logits"] for p in parts])
    card = json.loads((latest_version(settings.model_repo, model).path / "shoprank.json").read_text())
    out = human_figures(frame["query"], frame["relevance"].to_numpy(), logits,
                        label_cuts=card.get("calibration", {}).get("label_cuts"))
    cosine = pd.DataFrame({"query": frame["query"], "relevance": frame["relevance"], "score": (q * i).sum(axis=1)})
    return {"split": split, "model": f"{model}:{latest_version(settings.model_repo, model).version}",
            "encoder": encoder.model_version, **out, "encoder_cosine_ndcg10": ndcg_at_k(cosine, "score")}


def main(split: str = "test", model_repo: str = "model_repo") -> None:
    """``python -m training.first_phase.evaluate``: the served first phase's figures on one split, as JSON."""
    from pathlib import Path

    from service.settings import Settings

    settings = Settings().model_copy(update={"model_repo": Path(model_repo), "inference": "embedded"})
    print(json.dumps(split_figures(settings, split=split), indent=2))


if __name__ == "__main__":
    import typer

    typer.run(main)
