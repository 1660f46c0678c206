"""Model cards (``shoprank.json``) of exported versions: sections added after export.

Calibration (``shoprank calibrate``) and the held-out figures (``shoprank train recipe``) are known only
once a version is exported, so they are written into its card in place; torch-free on purpose.
"""

from __future__ import annotations

import json
from pathlib import Path


def record_in_card(version_dir: Path, key: str, value: dict | str) -> None:
    """Set one section (or field) of an exported version's model card (calibration, held-out figures) in place."""
    from service.inference.models import forget_cards

    path = version_dir / "shoprank.json"
    card = json.loads(path.read_text())
    card[key] = {k: round(v, 4) if isinstance(v, float) else v for k, v in value.items()} \
        if isinstance(value, dict) else value
    path.write_text(json.dumps(card, indent=2))
    forget_cards()  # the service caches cards per version
