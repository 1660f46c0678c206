"""The judging prompt and how to read its answer (text, or token log-probabilities → soft label).

The model answers with ONE digit (0 irrelevant, 1 partial, 2 exact): digits are single tokens in
every common tokenizer, so the first answer token's ``top_logprobs`` give the whole distribution.
Bump ``PROMPT_VERSION`` whenever the wording changes: it is part of the cache key.
"""

from __future__ import annotations

import math
import re

import numpy as np

PROMPT_VERSION = "relevance-3level-v1"
CLASS_TOKENS = ("0", "1", "2")

SYSTEM_PROMPT = """You rate search relevance for an online home-improvement store.
Given a shopper's search query and one product, judge how well the product matches what the shopper wants:
2 = exact: the product is what the query asks for (type, and any brand, size, colour or spec it names);
1 = partial: related or a close substitute, but misses a named attribute, or is an accessory or part of what was asked;
0 = irrelevant: a different kind of product, or useless for this query.
Answer with the single digit only."""


def build_messages(*, query: str, title: str, category: str | None = None) -> list[dict[str, str]]:
    """OpenAI chat messages for one pair (category is optional: Home Depot titles come without one)."""
    lines = [f"Query: {query.strip()}", f"Product title: {title.strip()}"]
    if category:
        lines.append(f"Product category: {category.strip()}")
    lines.append("Relevance (0, 1 or 2):")
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "\n".join(lines)}]


def parse_answer(text: str | None) -> int | None:
    """The first 0/1/2 digit in the answer text, or None if the model said something else."""
    match = re.search(r"[012]", text or "")
    return int(match.group()) if match else None


def soft_label_from_logprobs(content: list[dict] | None) -> np.ndarray | None:
    """[3] class probabilities from the first answer token's ``top_logprobs``, renormalised over 0/1/2.

    ``content`` is ``choices[0].logprobs.content`` of a chat completion. Token variants that strip
    to the same digit (``"2"``, ``" 2"``) add up. Returns None when no token is an answer digit
    (then the caller falls back to the hard label from the text).
    """
    for token in content or []:
        if token.get("token", "").strip() not in CLASS_TOKENS:
            continue
        mass = np.zeros(3)
        candidates = token.get("top_logprobs") or [{"token": token["token"], "logprob": token.get("logprob", 0.0)}]
        for alternative in candidates:
            text = alternative.get("token", "").strip()
            if text in CLASS_TOKENS:
                mass[int(text)] += math.exp(float(alternative["logprob"]))
        return mass / mass.sum() if mass.sum() > 0 else None
    return None
