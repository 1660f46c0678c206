"""Production-style keyphrase evaluation (report section 6), through the service's own pipeline.

For a seeded sample of test-split items, ``service.pipelines.recommend_keyphrases`` runs exactly as
served (encoder → keyphrase index over ALL distinct search terms → ranker relevance filter at the
served ranker's calibrated floor), with ``keyphrase_candidates_factor = 1`` so that its k ANN
candidates are the ones filtered and every returned keyphrase is one that passed. The same items get
a BM25 recall source (bm25s over the same keyphrase corpus, the item title as the query), and a
ranker-passed keyphrase counts as *additional* value only when BM25 did not also return it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import bm25s
import numpy as np
from tqdm import tqdm

from service.catalogue import stable_id
from service.index.factory import make_index
from service.inference.base import InferenceBackend
from service.inference.models import Encoder, PairScorer
from service.pipelines import keyphrase_floor, recommend_keyphrases
from service.runtime import Runtime, encode_all
from service.settings import Settings
from service.store.base import ItemDocument
from service.store.memory import MemoryStore

log = logging.getLogger(__name__)


def _norm(phrase: str) -> str:
    return " ".join(phrase.lower().split())


def additional_keyphrases(passed: Sequence[str], other: Sequence[str]) -> list[str]:
    """The passed keyphrases that the other recall source did not return (case and spacing ignored)."""
    seen = {_norm(p) for p in other}
    return [p for p in passed if _norm(p) not in seen]


def additional_counts(passed: Sequence[Sequence[str]], other: Sequence[Sequence[str]]) -> np.ndarray:
    """Per item: how many of its passed keyphrases the other source missed."""
    return np.array([len(additional_keyphrases(p, o)) for p, o in zip(passed, other, strict=True)], dtype=np.int64)


def sample_items(item_ids: Sequence[str], *, n: int, seed: int) -> list[str]:
    """n distinct items drawn without replacement (seeded), in sorted order for a stable report."""
    unique = np.array(sorted(set(item_ids)), dtype=object)
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(unique, size=min(n, len(unique)), replace=False).tolist())


def keyphrase_runtime(settings: Settings, backend: InferenceBackend, encoder: Encoder, scorer: PairScorer,
                      keyphrases: Sequence[str]) -> Runtime:
    """A Runtime holding only what ``recommend_keyphrases`` reads: encoder, ranker, keyphrase index."""
    settings = settings.model_copy(update={"keyphrase_candidates_factor": 1})
    texts = {stable_id(text): text for text in keyphrases}
    vectors = encode_all(encoder, list(texts.values()), kind="query", batch=settings.index_build_batch,
                         label="keyphrases")
    index = make_index(settings)
    index.upsert(np.fromiter(texts.keys(), dtype=np.int64, count=len(texts)), vectors)
    return Runtime(settings=settings, backend=backend, encoder=encoder, scorer=scorer, items=make_index(settings),
                   keyphrases=index, keyphrase_texts=texts, store=MemoryStore())


def bm25_keyphrases(keyphrases: Sequence[str], titles: Sequence[str], *, k: int) -> list[list[str]]:
    """BM25 top-k keyphrases per title. Zero-score hits are dropped: bm25s pads the top k with
    keyphrases sharing no term with the title, which no recall source would return."""
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(list(keyphrases), stopwords="en", show_progress=False), show_progress=False)
    tokens = bm25s.tokenize(list(titles), stopwords="en", return_ids=False, show_progress=False)
    docs, scores = retriever.retrieve(tokens, k=k, show_progress=False)
    return [[keyphrases[d] for d, s in zip(row_docs, row_scores) if s > 0] for row_docs, row_scores in zip(docs, scores)]


@dataclass
class KeyphraseResult:
    item_ids: list[str]
    titles: list[str]
    k: int
    floor: float
    passed: list[list[str]]  # the ANN candidates that cleared the ranker floor, as the service returns them
    bm25: list[list[str]]  # BM25's (score > 0) top k
    bm25_passed: list[list[str]]  # the BM25 keyphrases that clear the same floor

    def summary(self) -> dict:
        passed = np.array([len(p) for p in self.passed])
        extra = additional_counts(self.passed, self.bm25)
        bm25_n = np.array([len(b) for b in self.bm25])
        bm25_passed = np.array([len(b) for b in self.bm25_passed])
        union = np.array([len({_norm(x) for x in p} | {_norm(x) for x in b})
                          for p, b in zip(self.passed, self.bm25_passed)])
        return {
            "items": len(self.item_ids),
            "candidates": len(self.item_ids) * self.k,
            "pass_rate": float(passed.sum() / (len(self.item_ids) * self.k)),
            "passed_median": float(np.median(passed)),
            "passed_mean": float(passed.mean()),
            "items_with_none": float((passed == 0).mean()),
            "additional_median": float(np.median(extra)),
            "additional_mean": float(extra.mean()),
            "additional_share": float(extra.sum() / max(passed.sum(), 1)),
            "bm25_returned_median": float(np.median(bm25_n)),
            "bm25_pass_rate": float(bm25_passed.sum() / max(bm25_n.sum(), 1)),
            "bm25_passed_median": float(np.median(bm25_passed)),
            "union_passed_median": float(np.median(union)),
        }


def evaluate_keyphrases(runtime: Runtime, *, item_ids: Sequence[str], titles: Sequence[str],
                        keyphrases: Sequence[str], k: int = 20) -> KeyphraseResult:
    """Run the served keyphrase pipeline and the BM25 source on each item and keep what passed."""
    floor = keyphrase_floor(runtime)
    passed = []
    for item_id, title in tqdm(list(zip(item_ids, titles)), desc="keyphrases (served pipeline)", unit="item",
                               mininterval=5):
        recs = recommend_keyphrases(runtime, item=ItemDocument(item_id=item_id, title=title), k=k)
        passed.append([r.keyphrase for r in recs])
    bm25 = bm25_keyphrases(keyphrases, titles, k=k)
    lefts = [p for row in bm25 for p in row]
    rights = [t for row, t in zip(bm25, titles) for _ in row]
    p1 = runtime.scorer.score(lefts, rights, task="query_item").relevance.p_partial_or_better
    keep, bm25_passed, at = p1 >= floor, [], 0
    for row in bm25:
        bm25_passed.append([p for p, ok in zip(row, keep[at : at + len(row)]) if ok])
        at += len(row)
    return KeyphraseResult(list(item_ids), list(titles), k, floor, passed, bm25, bm25_passed)
