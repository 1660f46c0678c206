"""The markdown pieces every report section writes with: numbers, shares and tables."""

from __future__ import annotations

import numpy as np


def num(value: float | None, digits: int = 3) -> str:
    """A figure to ``digits`` places, or an em dash when it was not measured."""
    return "—" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"


def pct(value: float) -> str:
    """A share as a percentage with one decimal."""
    return f"{100 * value:.1f} %"


def md_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])
