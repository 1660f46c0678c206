"""Phased ranking: a cheap first phase scores every candidate, the cross-encoder re-scores the best few.

Pure numpy, free of models and HTTP, so the rule is testable alone (``tests/unit/test_phases.py``);
``service/pipelines.py`` feeds it the two phases' heads.

1. The first phase (``FirstPhaseScorer``: a small model over the query and item vectors) scores all
   ``n`` candidates; the value model orders them with the caller's weights and floor.
2. The cross-encoder re-scores the first ``depth`` of that order (``second_phase_rows``), unfiltered
   candidates first, since they are the ones that can reach the top.
   A query this replica re-scored before, whose set now holds at most ``max_deferred`` pairs no cache has
   (a new, retitled or moved-up item), leaves those in phase 1 for now (``deferred_rows``): they are scored
   right after the response (``service/inference/pair_filler.py``), so the next request re-scores them.
   Meanwhile each keeps the place the first phase gave it among the re-scored ones (``keep_deferred_in_place``).
3. Each candidate keeps the heads of the last phase that scored it (``merge``): re-scored ones the
   cross-encoder's, the others the first phase's; the response says which (``phase`` 1 or 2).

**The boundary rule** (``phased_order``), as in Vespa, where second-phase hits stay above first-phase
ones: the order is (a) unfiltered before filtered, (b) within each, every re-scored candidate (phase 2)
before every candidate the cross-encoder did not see (phase 1), (c) within a phase, by score, ties by
input order. So the first-phase order decides *which* candidates reach the top ``depth``, and the
cross-encoder alone decides their order among themselves; a first-phase score is never compared with a
cross-encoder score. Scores are each phase's own estimate, so a phase-1 candidate may show a higher
score than a phase-2 candidate above it: the order, not the score, is the answer. A candidate the
cross-encoder filters (its P(y ≥ partial) under the floor) drops to the filtered block, where the same
rule applies again (phase 2 first).

**The one exception, a deferred candidate**: one the cross-encoder was due to re-score but whose pair is
being scored after the response keeps its place in the first phase's order of the re-scored block (the first
phase put it third of ten: it is third), marked phase 1. Sent below the block instead, a relevant new item
would sink for one answer: NDCG@10 with one of ten deferred at random was 0.8473 against 0.8599 on the
validation split's 100-candidate lists, and 0.8603 in place (``training/evaluate/deferral_cost.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FIRST, SECOND = 1, 2


@dataclass(frozen=True)
class Heads:
    """Per-candidate read-outs of one phase (arrays of equal length) after engagement priors."""

    p_partial_or_better: np.ndarray
    p_exact: np.ndarray
    labels: list[str]
    ctr: np.ndarray
    cvr: np.ndarray

    @property
    def expected(self) -> np.ndarray:
        return self.p_partial_or_better + self.p_exact

    def __len__(self) -> int:
        return len(self.p_partial_or_better)


def second_phase_rows(first_order: np.ndarray, depth: int) -> np.ndarray:
    """Positions the cross-encoder re-scores: the first ``depth`` of the first phase's order (best first)."""
    if depth < 0:
        raise ValueError(f"depth must be ≥ 0, got {depth}")
    return np.asarray(first_order, dtype=np.int64)[:depth]


def deferred_rows(held: np.ndarray, max_deferred: int) -> np.ndarray:
    """Which of the rows chosen for re-scoring to leave in phase 1 (a boolean mask over them): the ones whose pair
    no cache holds, when there are at most ``max_deferred`` of them and the cache holds at least one other (the
    query was re-scored before and its set changed by a few). None otherwise: a cold query is re-scored in full."""
    held = np.asarray(held, dtype=bool)
    missing = ~held
    count = int(missing.sum())
    if count == 0 or count > max_deferred or count == len(held):
        return np.zeros(len(held), dtype=bool)
    return missing


def keep_deferred_in_place(order: np.ndarray, chosen: np.ndarray, deferred: np.ndarray,
                           filtered: np.ndarray) -> np.ndarray:
    """``order`` (``phased_order``'s, the deferred rows counted as phase 1) with each unfiltered deferred row of
    ``chosen`` (the rows due for re-scoring, in the first phase's order; ``deferred`` a mask over them) moved into
    the leading block of unfiltered re-scored rows at its index in ``chosen``."""
    moving = [int(row) for row, late in zip(chosen, deferred) if late and not filtered[row]]
    if not moving:
        return np.asarray(order)
    rest = [int(row) for row in order if int(row) not in moving]
    rescored = {int(row) for row, late in zip(chosen, deferred) if not late}
    block = 0
    while block < len(rest) and rest[block] in rescored and not filtered[rest[block]]:
        block += 1
    top, slot = rest[:block], {int(row): i for i, row in enumerate(chosen)}
    for row in sorted(moving, key=slot.__getitem__):  # ascending, so each lands at its own index
        top.insert(min(slot[row], len(top)), row)
    return np.array(top + rest[block:], dtype=np.int64)


def merge(first: Heads, second: Heads, rows: np.ndarray) -> tuple[Heads, np.ndarray]:
    """``first``'s heads with ``second``'s (scored for ``rows``, in that order) laid over them; and the
    phase per candidate (2 where re-scored, else 1)."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(second) != len(rows):
        raise ValueError(f"{len(second)} second-phase scores for {len(rows)} rows")
    phase = np.full(len(first), FIRST, dtype=np.int64)
    phase[rows] = SECOND

    def lay(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = np.array(a, dtype=np.float64, copy=True)
        out[rows] = b
        return out

    labels = list(first.labels)
    for row, label in zip(rows.tolist(), second.labels):
        labels[row] = label
    merged = Heads(lay(first.p_partial_or_better, second.p_partial_or_better), lay(first.p_exact, second.p_exact),
                   labels, lay(first.ctr, second.ctr), lay(first.cvr, second.cvr))
    return merged, phase


def phased_order(score: np.ndarray, filtered: np.ndarray, phase: np.ndarray, *,
                 tiebreak: np.ndarray | None = None) -> np.ndarray:
    """Positions best first by the boundary rule: unfiltered first, then phase 2 before phase 1, then
    ``score`` descending, then ``tiebreak`` descending (if given), then input order."""
    n = len(score)
    keys = [np.arange(n)]
    if tiebreak is not None:
        keys.append(-np.asarray(tiebreak, dtype=np.float64))
    keys += [-np.asarray(score, dtype=np.float64), np.asarray(phase) != SECOND, np.asarray(filtered, dtype=bool)]
    return np.lexsort(keys)  # the last key is the primary one
