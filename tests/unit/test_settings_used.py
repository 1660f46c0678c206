"""Every setting is read somewhere: a field no code reads is a knob that does nothing."""

from __future__ import annotations

import re
from pathlib import Path

from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("service", "indexer", "training")


def product_sources() -> str:
    files = [path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
             if path != ROOT / "service" / "settings.py"]
    return "\n".join(path.read_text() for path in files)


def test_every_setting_is_read_by_the_product() -> None:
    text = product_sources()
    settings_py = (ROOT / "service" / "settings.py").read_text()
    unread = []
    for name in Settings.model_fields:
        # settings.x / self.settings.x, or the name as a string (model_copy updates, field lists)
        pattern = rf"\.{name}\b|[\"']{name}[\"']"
        if not re.search(pattern, text) and not re.search(rf"self\.{name}\b", settings_py):
            unread.append(name)
    assert not unread, f"settings read nowhere in {PACKAGES}: {unread}"
