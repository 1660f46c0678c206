"""Client-side tokenisation with the fast ``tokenizers`` library.

Padding is the main waste on short e-commerce texts, so batches are padded to their own
longest text (never to a fixed 128, which all-MiniLM's ``tokenizer.json`` would do by
default) and ``length_sorted_chunks`` groups texts of similar length into sub-batches.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer


class TextTokenizer:
    """Turns texts or text pairs into BERT-style int64 tensors padded to the batch's longest."""

    def __init__(self, tokenizer_json: Path, *, max_tokens: int) -> None:
        self._tok = Tokenizer.from_file(str(tokenizer_json))
        self._tok.no_padding()
        self._tok.enable_truncation(max_length=max_tokens)
        self.max_tokens = max_tokens

    def lengths(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> np.ndarray:
        encs = self._encode(texts, pairs)
        return np.fromiter((len(e.ids) for e in encs), dtype=np.int64, count=len(encs))

    def __call__(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        encs = self._encode(texts, pairs)
        width = max((len(e.ids) for e in encs), default=1)
        n = len(encs)
        input_ids = np.zeros((n, width), dtype=np.int64)
        attention = np.zeros((n, width), dtype=np.int64)
        types = np.zeros((n, width), dtype=np.int64)
        for row, enc in enumerate(encs):
            m = len(enc.ids)
            input_ids[row, :m] = enc.ids
            attention[row, :m] = 1
            types[row, :m] = enc.type_ids
        return {"input_ids": input_ids, "attention_mask": attention, "token_type_ids": types}

    def _encode(self, texts: Sequence[str], pairs: Sequence[str] | None):
        if pairs is None:
            return self._tok.encode_batch(list(texts))
        return self._tok.encode_batch(list(zip(texts, pairs)))


def length_sorted_chunks(lengths: np.ndarray, *, size: int) -> Iterator[np.ndarray]:
    """Yield index arrays of at most ``size`` positions, each of texts of similar length."""
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(order), size):
        yield order[start : start + size]
