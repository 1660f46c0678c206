"""Durable index snapshots: the index bytes plus a JSON sidecar saying what the snapshot covers.

The sidecar (``<name>.json`` beside ``<name>``) holds the index kind, dimension and size and a
free ``meta`` dict the caller fills: the encoder version that made the vectors, the Kafka
offsets the snapshot covers, the catalogue it was built from. A restorer compares ``meta`` with
what it expects and rebuilds when they differ, so a snapshot made by another model is never served.
Both files are written to a temp file, fsynced and renamed, so a crash leaves the old pair or
the new index with the old sidecar, never a torn file; the sidecar is written last and checked
against the index's size on restore.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SnapshotInfo:
    """What one snapshot holds (the sidecar's content)."""

    kind: str
    dim: int
    count: int
    meta: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # implementation state, e.g. HNSW tombstones


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file + fsync + rename (readers never see a partial file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_sidecar(path: Path, info: SnapshotInfo) -> None:
    write_atomic(sidecar_path(path), json.dumps(asdict(info), sort_keys=True).encode("utf-8"))


def read_sidecar(path: Path) -> SnapshotInfo | None:
    """The snapshot's sidecar, or None when the snapshot or its sidecar is missing or unreadable."""
    side = sidecar_path(path)
    if not (path.exists() and side.exists()):
        return None
    try:
        return SnapshotInfo(**json.loads(side.read_text()))
    except (ValueError, TypeError):
        return None


def matches(info: SnapshotInfo | None, *, kind: str, dim: int, meta: dict[str, Any]) -> bool:
    """True when a snapshot was made with this kind and dimension and every expected meta value."""
    if info is None or info.kind != kind or info.dim != dim:
        return False
    return all(info.meta.get(key) == value for key, value in meta.items())
