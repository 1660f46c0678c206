"""Exported ONNX files against the torch models they came from: the check a recipe run records.

fp32 must match to float rounding; int8 per-channel is expected to drift a little (shared/STACK.md),
so both are reported and the recipe's test bounds them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

PRECISIONS = (("fp32", "model.fp32.onnx"), ("int8", "model.onnx"))


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
