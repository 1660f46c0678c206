"""Which version the swap watcher considers complete in an embedded model repository."""

from __future__ import annotations

from pathlib import Path

from service.inference.onnx_local import OnnxLocalBackend
from service.model_swap import newest_version
from service.settings import Settings


def _version(repo: Path, model: str, version: int, *, card: bool) -> None:
    path = repo / model / str(version)
    path.mkdir(parents=True)
    (path / "model.onnx").write_bytes(b"")
    if card:
        (path / "shoprank.json").write_text("{}")


def test_newest_version_skips_versions_still_being_written(tmp_path: Path) -> None:
    settings = Settings(model_repo=tmp_path)
    backend = OnnxLocalBackend(tmp_path)  # nothing is loaded: only the repository is read
    assert newest_version(backend, settings, "ranker") is None  # no model at all
    _version(tmp_path, "ranker", 1, card=True)
    assert newest_version(backend, settings, "ranker") == "1"
    _version(tmp_path, "ranker", 2, card=False)  # export writes the card last
    assert newest_version(backend, settings, "ranker") is None
    (tmp_path / "ranker" / "2" / "shoprank.json").write_text("{}")
    assert newest_version(backend, settings, "ranker") == "2"
    (tmp_path / "ranker" / "10").mkdir()  # a directory without model.onnx is not a version
    assert newest_version(backend, settings, "ranker") == "2"


def test_newest_version_asks_the_server_when_the_backend_can(tmp_path: Path) -> None:
    class ServerSide:
        def newest_version(self, model: str) -> str:
            return "7"

    assert newest_version(ServerSide(), Settings(model_repo=tmp_path), "encoder") == "7"
