"""The fitting step after export: relevance floors, label cuts and engagement priors, fitted on validation.

Not an evaluation (``training/evaluate/`` tunes nothing): each function here FITS values on the
validation split and writes them into the card of one exported version, named explicitly (``version``;
None = the latest, the one the service serves). The version is scored through the service's inference
seam pinned to it (``training/export/pinned.py``), so a re-export below the latest version, or under
other model names (``settings.ranker_model`` / ``first_phase_model``), is calibrated in its own card.

int8 ranker scores shift with quantisation (shared/STACK.md), so the floor is fitted on the exact
model version that is served: the P(y ≥ partial) threshold maximising Youden's J (TPR − FPR) for
"partial or better" on validation. The same pass fits the model's own 3-level cut points on its
expected rating (the human rule's 1.835 / 2.5 suit human means, not a model's shrunk predictions);
the service and ``shoprank eval`` label with them. It also fits the engagement priors
(``service/ranking/engagement_prior.py``): the CTR/CVR heads recalibrated with the item's popularity,
against the simulated engagement of the validation pairs. The test split is never used here.
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np

from service.inference.factory import make_backend, make_pair_scorer
from service.inference.repository import ModelVersion, latest_version
from service.ranking.engagement_prior import logit
from service.ranking.ordinal import RATING_CUTS, label_from_raw
from service.settings import Settings
from training.data import labelled_pairs, split_frame
from training.export.cards import record_in_card
from training.export.pinned import pinned_settings, version_dir


def youden_threshold(p_relevant: np.ndarray, is_relevant: np.ndarray, *, grid: np.ndarray | None = None) -> tuple[float, float]:
    """(threshold, J) maximising TPR − FPR over the grid."""
    grid = np.round(np.arange(5, 99) / 100, 2) if grid is None else grid  # exact values: J is what gets served
    scores = [(p_relevant[is_relevant] >= t).mean() - (p_relevant[~is_relevant] >= t).mean() for t in grid]
    best = int(np.argmax(scores))
    return float(grid[best]), float(scores[best])


def accuracy_cuts(rating: np.ndarray, label: np.ndarray, *, grid: np.ndarray | None = None) -> tuple[float, float, float]:
    """(cut₁, cut₂, accuracy): the cut points on the expected rating that label ``rating`` most accurately.

    An exhaustive search over a 0.01 grid (≈ 9,000 pairs of cuts); nothing in scikit-learn fits ordered
    cut points for accuracy."""
    grid = np.round(np.arange(150, 290) / 100, 2) if grid is None else grid
    below = rating[None, :] < grid[:, None]  # [cut, pair]
    best = (RATING_CUTS[0], RATING_CUTS[1], -1.0)
    for i, low in enumerate(grid):
        for j in range(i + 1, len(grid)):
            predicted = np.where(below[i], 0, np.where(below[j], 1, 2))
            acc = float((predicted == label).mean())
            if acc > best[2]:
                best = (float(low), float(grid[j]), acc)
    return best


def fit_engagement_prior(head_probability: np.ndarray, popularity: np.ndarray, target: np.ndarray) -> dict:
    """Logistic regression of a soft engagement target (in [0, 1]) on logit(head) and popularity.

    scikit-learn takes only hard labels, so each pair enters twice: as a 1 weighted by the target and as
    a 0 weighted by 1 − target (the likelihood of the soft target). Returns the coefficients and the
    Pearson r of the head and of the recalibrated estimate with the target."""
    from sklearn.linear_model import LogisticRegression

    x = np.column_stack([logit(head_probability), popularity])
    target = np.clip(np.asarray(target, dtype=np.float64), 0.0, 1.0)
    model = LogisticRegression(C=np.inf, max_iter=1000).fit(
        np.vstack([x, x]), np.r_[np.ones(len(x)), np.zeros(len(x))], sample_weight=np.r_[target, 1.0 - target])
    fitted = model.predict_proba(x)[:, 1]
    return {"bias": round(float(model.intercept_[0]), 4), "head": round(float(model.coef_[0, 0]), 4),
            "popularity": round(float(model.coef_[0, 1]), 4), "pairs": len(x),
            "validation_r_head": round(float(np.corrcoef(head_probability, target)[0, 1]), 4),
            "validation_r_with_popularity": round(float(np.corrcoef(fitted, target)[0, 1]), 4)}


def _scoring(settings: Settings, model: str, version: int | None):
    """Settings that score ``version`` of ``model`` (None: as served, embedded or Triton, unchanged)."""
    if version is None:
        return nullcontext(settings)
    return pinned_settings(settings, {model: version})


def _target(settings: Settings, model: str, version: int | None) -> ModelVersion:
    """The version a fitting step writes to: ``version`` of ``model``, or the latest when None."""
    if version is None:
        return latest_version(settings.model_repo, model)
    return ModelVersion(name=model, version=version, path=version_dir(settings.model_repo, model, version))


def calibrate_ranker(settings: Settings, *, version: int | None = None) -> dict:
    """Fit ``version`` of ``settings.ranker_model`` (None: the latest) on validation; returns the card section."""
    from training.engagement import split_engagement

    target = _target(settings, settings.ranker_model, version)
    pairs = labelled_pairs(settings.data_dir)
    frame = split_frame(pairs, "validation")
    engagement = split_engagement(pairs, frame)
    with _scoring(settings, target.name, version) as pinned:
        scorer = make_pair_scorer(make_backend(pinned), pinned)
        heads = scorer.score(frame["query"].tolist(), frame["title"].tolist())
    p1 = heads.relevance.p_partial_or_better
    relevant = frame["label"].to_numpy() >= 1
    threshold, j = youden_threshold(p1, relevant)
    low, high, acc = accuracy_cuts(heads.relevance.raw_relevance, frame["label"].to_numpy())
    human_rule_acc = float((label_from_raw(heads.relevance.raw_relevance) == frame["label"].to_numpy()).mean())
    kept = p1 >= threshold
    calibration = {
        "min_relevance": threshold,
        "method": "Youden's J for P(y>=partial) vs label>=partial on the validation split",
        "youden_j": round(j, 4),
        "validation_kept": round(float(kept.mean()), 4),
        "validation_precision": round(float(relevant[kept].mean()), 4),
        "validation_irrelevant_removed": round(float((~kept[~relevant]).mean()), 4),
        "label_cuts": [low, high],
        "label_cuts_method": "cut points on the expected rating maximising 3-level accuracy on the validation split",
        "validation_accuracy": {"label_cuts": round(acc, 4), "human_rule": round(human_rule_acc, 4)},
        "engagement": _engagement_priors(heads, engagement),
    }
    record_in_card(target.path, "calibration", calibration)
    return calibration


def _engagement_priors(heads, engagement) -> dict:
    """CTR on every validation pair; CVR on the pairs that were clicked (where the simulation defines it)."""
    popularity = engagement["popularity"].to_numpy()
    clicked = engagement["cvr_mask"].to_numpy() > 0
    return {
        "ctr": fit_engagement_prior(heads.ctr, popularity, engagement["ctr"].to_numpy()),
        "cvr": fit_engagement_prior(heads.cvr[clicked], popularity[clicked], engagement["cvr"].to_numpy()[clicked]),
        "feature": "popularity: the item's log-odds popularity (here the click model's own, training/engagement.py)",
        "method": "logistic regression on logit(head) and popularity against the SIMULATED debiased CTR / CVR "
                  "of the validation split",
    }


def calibrate_first_phase(settings: Settings, *, version: int | None = None) -> dict | None:
    """The relevance floor for what only the first phase scored (keyphrases below the re-scoring depth):
    Youden's J of ``version`` (None: the latest) of ``settings.first_phase_model``'s P(y ≥ partial) on the
    validation split, over the vectors of the encoder ``settings`` serves, added to the ``calibration``
    section of that version's card (the label cuts there are kept). None when phasing is off (no such model,
    or one trained on another encoder); a ValueError with the reason when ``version`` was asked for."""
    from service.inference.factory import make_encoder, make_first_phase
    from service.ranking.ordinal import from_cumulative_logits
    from training.evaluate.phase_curve import score

    with _scoring(settings, settings.first_phase_model, version) as pinned:
        backend = make_backend(pinned)
        first_phase, status = make_first_phase(backend, pinned, make_encoder(backend, pinned))
        if first_phase is None and version is not None:  # asked for one version: say why it cannot be fitted
            raise ValueError(f"{settings.first_phase_model} version {version} is not servable: phased ranking {status}")
        if first_phase is None:
            return None
        target = _target(settings, settings.first_phase_model, version)
        frame = split_frame(labelled_pairs(settings.data_dir), "validation")
        # the first phase reads the encoder's full-width vectors (its card's dim), whatever cut the index serves
        full_width = pinned.model_copy(update={"embedding_dim": int(first_phase.card.get("dim", pinned.embedding_dim))})
        logits = score(full_width, frame, name="validation-labelled").first
    p1 = from_cumulative_logits(logits).p_partial_or_better
    relevant = frame["label"].to_numpy() >= 1
    threshold, j = youden_threshold(p1, relevant)
    kept = p1 >= threshold
    floor = {
        "min_relevance": threshold,
        "method": "Youden's J for the first phase's P(y>=partial) vs label>=partial on the validation split "
                  "(item vectors through the index's full-vector store, as served)",
        "youden_j": round(j, 4),
        "validation_kept": round(float(kept.mean()), 4),
        "validation_precision": round(float(relevant[kept].mean()), 4),
        "validation_irrelevant_removed": round(float((~kept[~relevant]).mean()), 4),
    }
    record_in_card(target.path, "calibration", target.card.get("calibration", {}) | floor)
    return floor
