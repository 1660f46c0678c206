"""Exported ONNX files against the torch models they came from: the check a recipe run records.

fp32 must match to float rounding; int8 per-channel is expected to drift a little (shared/STACK.md),
so both are reported and the recipe's test bounds them. ``encoder_precision_gate`` decides from those
figures whether the int8 encoder may be served at all.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

PRECISIONS = (("fp32", "model.fp32.onnx"), ("int8", "model.onnx"))

# The lowest cosine between the int8 encoder and its torch student, on the parity texts, below which the int8
# export is not served. Chosen from the shipped models: the full recipe's shipped encoder measured 0.993 (STACK.md:
# per-channel int8 keeps MiniLM at ≈ 0.99), the quick preset's 0.782 (issue 21); 0.98 keeps the shipped run's
# margin and refuses an int8 model whose worst text has visibly turned.
ENCODER_INT8_MIN_COSINE = 0.98


def _session(path: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def encoder_parity(version_dir: Path, student_dir: Path, texts: list[str]) -> dict[str, float]:
    """Lowest cosine between the ONNX embedding and sentence-transformers' for the same texts."""
    from sentence_transformers import SentenceTransformer

    student = SentenceTransformer(str(student_dir), device="cpu")
    reference = student.encode(texts, normalize_embeddings=True)
    batch = student.tokenizer(texts, truncation=True, max_length=student.max_seq_length, padding=True,
                              return_tensors="np")
    feeds = {name: batch[name].astype(np.int64) for name in ("input_ids", "attention_mask")}
    figures = {}
    for precision, file in PRECISIONS:
        (onnx,) = _session(version_dir / file).run(None, feeds)
        figures[f"encoder_{precision}_min_cosine"] = round(float((onnx * reference).sum(axis=1).min()), 5)
    return figures


def encoder_precision_gate(version_dir: Path, figures: dict[str, float], *,
                           floor: float = ENCODER_INT8_MIN_COSINE) -> dict:
    """Serve the int8 encoder only when its worst parity cosine reaches ``floor``; else serve the fp32 export
    instead (``model.fp32.onnx`` becomes ``model.onnx``). Returns the decision, for the version's card."""
    worst = figures["encoder_int8_min_cosine"]
    decision = {"int8_min_cosine": worst, "floor": floor, "fp32_min_cosine": figures["encoder_fp32_min_cosine"]}
    if worst >= floor:
        return decision | {"served": "int8", "reason": f"int8 worst-case cosine {worst} >= floor {floor}"}
    if (version_dir / "model.fp32.onnx").exists():  # else a stopped run already swapped it
        (version_dir / "model.fp32.onnx").replace(version_dir / "model.onnx")
    return decision | {"served": "fp32", "reason": f"int8 worst-case cosine {worst} < floor {floor}: the int8 "
                                                    "export was dropped and the fp32 one is served"}


def ranker_parity(version_dir: Path, ranker_dir: Path, lefts: list[str], rights: list[str]) -> dict[str, float]:
    """Largest absolute difference of the cumulative relevance logits, ONNX against torch (query_item)."""
    import torch

    from training.cross_encoder.predict import TorchPairScorer

    ranker = TorchPairScorer(ranker_dir)
    tokens = ranker.tokenizer(lefts, rights, truncation=True, max_length=ranker.max_tokens, padding=True,
                              return_tensors="pt")
    with torch.inference_mode():
        reference = ranker.model(**tokens)[0].numpy()
    feeds = {k: v.numpy().astype(np.int64) for k, v in tokens.items()}
    feeds["task_id"] = np.zeros(len(lefts), dtype=np.int64)  # query_item; an input of multihead / mhp only
    figures = {}
    for precision, file in PRECISIONS:
        session = _session(version_dir / file)
        inputs = {i.name for i in session.get_inputs()}
        (onnx,) = session.run(["relevance_logits"], {k: v for k, v in feeds.items() if k in inputs})
        figures[f"ranker_{precision}_max_abs_logit_diff"] = round(float(np.abs(onnx - reference).max()), 5)
    return figures
