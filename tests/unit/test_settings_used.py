"""Every setting is read somewhere: a field no code reads is a knob that does nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service.settings import Settings
from training.labels.settings import TeacherSettings

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("service", "indexer", "training")


def product_sources(*, besides: Path) -> str:
    files = [path for package in PACKAGES for path in (ROOT / package).rglob("*.py") if path != besides]
    return "\n".join(path.read_text() for path in files)


@pytest.mark.parametrize(("settings_class", "defined_in"), [
    (Settings, ROOT / "service" / "settings.py"),
    (TeacherSettings, ROOT / "training" / "labels" / "settings.py"),
])
def test_every_setting_is_read_by_the_product(settings_class, defined_in: Path) -> None:
    text = product_sources(besides=defined_in)
    own = defined_in.read_text()
    unread = []
    for name in settings_class.model_fields:
        # settings.x / self.settings.x, or the name as a string (model_copy updates, field lists)
        pattern = rf"\.{name}\b|[\"']{name}[\"']"
        if not re.search(pattern, text) and not re.search(rf"self\.{name}\b", own):
            unread.append(name)
    assert not unread, f"{settings_class.__name__} fields read nowhere in {PACKAGES}: {unread}"


def test_training_settings_stay_out_of_the_service() -> None:
    assert not [name for name in Settings.model_fields if name.startswith("teacher_")]


def test_every_setting_belongs_to_exactly_one_group() -> None:
    """Settings defines no field of its own: each sits in one group (server, inference, index, kafka, redis,
    limits, ranking), and no name is claimed by two."""
    groups = [base for base in Settings.__mro__[1:] if base.__name__.endswith("Settings") and base.__module__ ==
              Settings.__module__]
    names = [name for group in groups for name in group.model_fields]
    assert len(groups) == 7
    assert sorted(names) == sorted(Settings.model_fields), "a field outside the groups, or one in two groups"
