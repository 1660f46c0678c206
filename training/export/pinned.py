"""Address one exported version explicitly through the service's own inference seam.

The service (and everything scoring through ``service.inference``) serves the *latest* version of each
model in ``settings.model_repo``. A step that must score, calibrate or evaluate a version it just exported
(possibly below the latest, possibly under non-default model names) runs on a view of the repository in
which each pinned model holds only that version: links, nothing copied, so a card written through the view
is the real version's card.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path


def version_dir(repo: Path, model: str, version: int) -> Path:
    """``repo/<model>/<version>``, refusing one that was not exported (no ``model.onnx``)."""
    path = repo / model / str(version)
    if not (path / "model.onnx").exists():
        raise FileNotFoundError(f"{path} holds no model.onnx: {model} version {version} was not exported")
    return path


@contextmanager
def pinned_repo(repo: Path, versions: Mapping[str, int]) -> Iterator[Path]:
    """A repository view where each model of ``versions`` has only that version; other models as they are."""
    with tempfile.TemporaryDirectory(prefix="shoprank-pinned-") as tmp:
        view = Path(tmp)
        for entry in repo.iterdir():
            if entry.name not in versions:
                (view / entry.name).symlink_to(entry.resolve())
        for model, version in versions.items():
            source = version_dir(repo, model, version)
            (view / model).mkdir()
            for item in (repo / model).iterdir():  # config.pbtxt and the like
                if not item.is_dir():
                    (view / model / item.name).symlink_to(item.resolve())
            (view / model / str(version)).symlink_to(source.resolve())
        yield view


@contextmanager
def pinned_settings(settings, versions: Mapping[str, int], *, repo: Path | None = None) -> Iterator:
    """``settings`` serving exactly ``versions`` of ``repo`` (default ``settings.model_repo``) in process."""
    with pinned_repo(repo or settings.model_repo, versions) as view:
        yield settings.model_copy(update={"model_repo": view, "inference": "embedded"})
