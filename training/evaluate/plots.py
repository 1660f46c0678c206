"""The report's PNG figures (matplotlib, Agg backend: no display on the build machines; dpi 100 keeps them small)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

DPI = 100


def _save(fig, ax, path: Path, *, title: str, grid: bool = True) -> Path:
    """Title, legend, optional grid, tight layout; write the PNG and free the figure."""
    ax.set_title(title, fontsize=10)
    if grid:
        ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def tradeoff_curve(sweep: pd.DataFrame, path: Path, *, engagement_column: str, engagement_label: str,
                   marks: Mapping[str, dict] | None = None, label: str = "value model, w = 0 … 1",
                   baseline: pd.DataFrame | None = None, baseline_label: str = "") -> Path:
    """NDCG@10 (human relevance) against simulated engagement of the top 10, one point per engagement weight.

    ``baseline`` is a second sweep drawn for comparison (e.g. the value model without an input it lacks)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    if baseline is not None:
        ax.plot(baseline[engagement_column], baseline["ndcg10"], ".--", color="tab:gray", label=baseline_label)
    ax.plot(sweep[engagement_column], sweep["ndcg10"], "o-", color="tab:blue", label=label)
    for _, row in sweep.iterrows():
        ax.annotate(f"{row['w']:.1f}", (row[engagement_column], row["ndcg10"]), textcoords="offset points",
                    xytext=(4, 4), fontsize=7)
    for (name, point), marker in zip((marks or {}).items(), "s^Dvx*"):
        ax.plot(point[engagement_column], point["ndcg10"], marker, label=name, markersize=7)
    ax.set_xlabel(engagement_label)
    ax.set_ylabel("NDCG@10 (human relevance)")
    return _save(fig, ax, path, title="Relevance–engagement trade-off (engagement SIMULATED)")


def recall_by_dim(series: Mapping[str, Mapping[int, float]], path: Path, *, k: int) -> Path:
    """Recall@k over the catalogue against the Matryoshka cut, one line per model."""
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for name, by_dim in series.items():
        dims = sorted(by_dim)
        ax.plot(dims, [by_dim[d] for d in dims], "o-", label=name)
        for d in dims:
            ax.annotate(f"{by_dim[d]:.3f}", (d, by_dim[d]), textcoords="offset points", xytext=(3, -11), fontsize=7)
    all_dims = sorted({d for by_dim in series.values() for d in by_dim})
    ax.set_xscale("log", base=2)
    ax.set_xticks(all_dims, [str(d) for d in all_dims])
    ax.minorticks_off()
    ax.set_xlabel("embedding dimensions (Matryoshka cut, re-normalised)")
    ax.set_ylabel(f"recall@{k} of exact items")
    return _save(fig, ax, path, title=f"Catalogue retrieval: recall@{k} vs dimension")


def count_histogram(counts: Mapping[str, Sequence[int]], path: Path, *, k: int) -> Path:
    """Distribution over items of how many keyphrases each source contributes."""
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    bins = np.arange(k + 2) - 0.5
    for name, values in counts.items():
        ax.hist(values, bins=bins, alpha=0.55, label=name)
    ax.set_xlabel(f"keyphrases per item (of the top {k})")
    ax.set_ylabel("items")
    return _save(fig, ax, path, title="Keyphrases per item that clear the ranker floor", grid=False)
