"""The served item encoder inside Spark tasks: its model files shipped with the job, one session per worker.

The driver builds the encoder exactly as the service does (``make_backend`` + ``make_encoder``), so the job knows
the served model version and whether items go through an item tower, then copies only those version directories
into a small repository of the same layout and ships it with ``SparkContext.addFile``. Each Python worker opens
that copy once, on its first task (``worker_encoder``), with the service's own code: ``OnnxLocalBackend``,
``Encoder.encode`` (tokeniser, length-sorted sub-batches, Matryoshka cut), so a batch vector is the service's
vector for the same text.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from service.inference.factory import make_backend, make_encoder
from service.inference.models import Encoder, TwoTowerEncoder
from service.inference.repository import latest_version
from service.settings import Settings

SHIPPED_REPO = "shoprank-models"
"""Name of the shipped repository directory under ``SparkFiles.getRootDirectory()``."""

# Settings the workers need to build the same encoder (everything else keeps its default there).
ENCODER_FIELDS = ("encoder_model", "item_encoder_model", "item_max_tokens", "inference_sub_batch", "embedding_dim")

_WORKER: dict[tuple, Encoder | TwoTowerEncoder] = {}
"""Per Python worker process: the encoder opened by its first task (Spark reuses workers between tasks)."""


def driver_encoder(settings: Settings) -> Encoder | TwoTowerEncoder:
    """The service's item encoder for ``settings`` (embedded ONNX Runtime), on the driver."""
    return make_encoder(make_backend(settings.model_copy(update={"inference": "embedded"})), settings)


def served_models(encoder: Encoder | TwoTowerEncoder) -> list[str]:
    return [encoder.query.model, encoder.item.model] if isinstance(encoder, TwoTowerEncoder) else [encoder.model]


def stage_repository(settings: Settings, encoder: Encoder | TwoTowerEncoder, *, into: Path | None = None) -> Path:
    """Copy the served version of each model the item side needs into ``<into>/shoprank-models/<model>/<v>/``."""
    root = Path(into or tempfile.mkdtemp(prefix="shoprank-batch-")) / SHIPPED_REPO
    for model in served_models(encoder):
        version = latest_version(settings.model_repo, model)
        shutil.copytree(version.path, root / model / str(version.version), dirs_exist_ok=True)
    return root


def worker_config(settings: Settings, *, intra_op_threads: int) -> dict:
    """What a worker needs to rebuild the encoder: the encoder settings and its ONNX Runtime budget."""
    fields = {name: getattr(settings, name) for name in ENCODER_FIELDS}
    return fields | {"intra_op_threads": intra_op_threads, "ort_allow_spinning": False, "inference": "embedded"}


def worker_encoder(config: dict, repo: Path | None = None) -> Encoder | TwoTowerEncoder:
    """This worker's encoder over the shipped repository (``SparkFiles``), opened on first use."""
    key = tuple(sorted(config.items()))
    encoder = _WORKER.get(key)
    if encoder is None:
        if repo is None:
            from pyspark import SparkFiles

            repo = Path(SparkFiles.get(SHIPPED_REPO))
        settings = Settings(model_repo=repo, **config)
        encoder = _WORKER[key] = make_encoder(make_backend(settings), settings)
    return encoder
