"""The batch run: full (embed every item) or diff (embed only what changed since a previous output).

Diff keeps a previous row when its text hash and model version equal the new ones and embeds every other item;
items the new catalogue no longer has are dropped (counted as ``removed``). Versions: an input ``version`` column
is written as it is; without one the job versions the items itself: 0 for a new item, the previous version + 1
when the text changed, the previous version otherwise (a new model does not make a new item version), so a diff
run published to the vector log is newer than what replicas seeded from the catalogue hold (version 0).

Embedding runs in ``mapPartitions``: each task embeds its rows ``chunk`` at a time with its worker's encoder
(``models.worker_encoder``). Which rows share an encoder call is fixed, not left to partitioning: the rows to embed,
in input order, cut into runs of ``chunk`` (the service's start-up cuts the catalogue the same way, in runs of
``index_build_batch``). It matters because the served int8 encoder quantises activations per call (dynamic
quantisation), so a vector depends slightly on its batch mates: one title embedded with other batch mates
moved by cosine down to 0.984 (measured, docs/indexing.md); with the same cuts a full run's vectors are
the service's start-up vectors to float rounding, whatever the partition count. Run from ``shoprank batch-embed`` or, on a cluster, with
``spark-submit indexer/batch_embed/job.py …`` (same options; docs/indexing.md).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from indexer.batch_embed.catalogue import read_catalogue, with_text
from indexer.batch_embed.models import (
    SHIPPED_REPO,
    driver_encoder,
    stage_repository,
    worker_config,
    worker_encoder,
)
from service.catalogue_vectors import pack_vector
from service.settings import Settings
from service.store.base import ItemDocument

log = logging.getLogger(__name__)

OUTPUT_DDL = ("item_id string, version long, text_hash long, title string, category string, vector binary, "
              "model_version string")
"""The Parquet schema (``service.catalogue_vectors`` reads it; ``vector`` is float16 bytes)."""


@dataclass(frozen=True)
class BatchReport:
    """What one run did: items written, embedded here, carried over from ``previous``, dropped since then."""

    mode: str
    output: str
    model_version: str
    items: int
    embedded: int
    carried: int
    removed: int
    partitions: int
    seconds: float

    @property
    def items_per_s(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return asdict(self) | {"embedded_per_s": round(self.items_per_s, 1)}


def spark_session(*, master: str | None = None, app_name: str = "shoprank-batch-embed", conf: dict | None = None):
    """A SparkSession whose Python workers run this interpreter (the venv with ShopRank) unless told otherwise."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    for key, value in ({"spark.ui.showConsoleProgress": "false"} | (conf or {})).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def embed_partition(keyed_rows, *, config: dict, model_version: str):
    """``((cut, rank), row)`` pairs sorted by key → ``OUTPUT_DDL`` rows; one encoder call per cut."""
    encoder = worker_encoder(config)
    if encoder.model_version != model_version:  # the shipped files are not what the driver saw
        raise RuntimeError(f"worker encoder is {encoder.model_version}, the driver planned {model_version}")
    buffer: list = []
    current = None
    for (cut, _), row in keyed_rows:
        if buffer and cut != current:
            yield from _embed(encoder, buffer, model_version)
            buffer = []
        current = cut
        buffer.append(row)
    if buffer:
        yield from _embed(encoder, buffer, model_version)


def _cut_key(indexed: tuple, *, chunk: int) -> tuple:
    row, rank = indexed
    return (rank // chunk, rank), row


def _cut_partition(key: tuple) -> int:
    return key[0]  # pyspark takes it modulo the partition count: cuts round-robin over the tasks


def cuts(todo, *, chunk: int, partitions: int):
    """The rows to embed as ``((cut, rank), row)``, each cut whole in one partition, sorted within it."""
    ranked = todo.rdd.sortBy(lambda row: row.position, numPartitions=partitions).zipWithIndex()
    keyed = ranked.map(functools.partial(_cut_key, chunk=chunk))
    return keyed.repartitionAndSortWithinPartitions(partitions, partitionFunc=_cut_partition)


def _embed(encoder, rows: list, model_version: str):
    texts = [ItemDocument(item_id=r.item_id, title=r.title, category=r.category or "").text for r in rows]
    vectors = encoder.encode(texts, kind="item")
    for row, vector in zip(rows, vectors):
        yield (row.item_id, row.version, row.text_hash, row.title, row.category, pack_vector(vector), model_version)


_SHIPPED: dict[str, str] = {}
"""Driver side: repositories already added to the SparkContext (``addFile`` refuses a name twice)."""


def ship_models(spark, settings: Settings, encoder) -> str:
    """Stage the served models and add them to the job once per SparkContext; returns the shipped name."""
    key = f"{spark.sparkContext.applicationId}:{settings.model_repo.resolve()}:{encoder.model_version}"
    if key not in _SHIPPED:
        staged = stage_repository(settings, encoder)
        spark.sparkContext.addFile(str(staged), recursive=True)
        _SHIPPED[key] = str(staged)
    return SHIPPED_REPO


def run(spark, settings: Settings, *, output: Path, catalogue: Path | None = None, mode: Literal["full", "diff"] = "full",
        previous: Path | None = None, limit: int | None = None, partitions: int | None = None, chunk: int | None = None,
        intra_op_threads: int = 1) -> BatchReport:
    """Embed the catalogue into ``output`` (Parquet, overwritten) and say what was embedded and carried."""
    from pyspark.sql import functions as F

    if mode == "diff" and previous is None:
        raise ValueError("--mode diff needs --previous <parquet of an earlier run>")
    if previous is not None and Path(previous).resolve() == Path(output).resolve():
        raise ValueError("--output must differ from --previous (Spark cannot overwrite what it is reading)")
    started = time.monotonic()
    partitions = partitions or spark.sparkContext.defaultParallelism * 2
    chunk = chunk or settings.index_build_batch
    encoder = driver_encoder(settings)
    model_version = encoder.model_version
    ship_models(spark, settings, encoder)
    items = with_text(read_catalogue(spark, catalogue, data_dir=settings.data_dir, limit=limit,
                                     partitions=partitions)).cache()
    removed = 0
    if mode == "full" or previous is None:
        todo = items.withColumn("version", F.coalesce("version", F.lit(0)))
        carried = None
    else:
        prev = spark.read.parquet(str(previous)).select(
            "item_id", F.col("version").alias("prev_version"), F.col("text_hash").alias("prev_hash"),
            F.col("vector").alias("prev_vector"), F.col("model_version").alias("prev_model"))
        joined = items.join(prev, "item_id", "left").cache()
        same = F.coalesce((F.col("prev_hash") == F.col("text_hash")) & (F.col("prev_model") == model_version),
                          F.lit(False))
        carried = joined.where(same).select(
            "item_id", F.coalesce("version", "prev_version").alias("version"), "text_hash", "title", "category",
            F.col("prev_vector").alias("vector"), F.col("prev_model").alias("model_version"))
        own_version = (F.when(F.col("prev_version").isNull(), F.lit(0))
                       .when(F.col("prev_hash") != F.col("text_hash"), F.col("prev_version") + 1)
                       .otherwise(F.col("prev_version")))
        todo = joined.where(~same).select("item_id", F.coalesce("version", own_version).alias("version"),
                                          "text_hash", "title", "category", "position")
        removed = prev.join(items, "item_id", "left_anti").count()
    n_todo = todo.count()
    n_carried = carried.count() if carried is not None else 0
    config = worker_config(settings, intra_op_threads=intra_op_threads)
    embed = functools.partial(embed_partition, config=config, model_version=model_version)
    parts = max(1, min(partitions, -(-n_todo // chunk)))  # no task without a cut
    embedded = spark.createDataFrame(cuts(todo, chunk=chunk, partitions=parts).mapPartitions(embed), OUTPUT_DDL)
    out = embedded if carried is None else embedded.unionByName(carried)
    out.write.mode("overwrite").parquet(str(output))
    items.unpersist()
    if carried is not None:
        joined.unpersist()
    report = BatchReport(mode=mode, output=str(output), model_version=model_version, items=n_todo + n_carried,
                         embedded=n_todo, carried=n_carried, removed=removed, partitions=parts,
                         seconds=round(time.monotonic() - started, 2))
    log.info("batch-embed %s: %s", mode, report.as_dict())
    return report


def main(argv: list[str] | None = None) -> None:
    """``spark-submit indexer/batch_embed/job.py [options]``: the ``shoprank batch-embed`` command itself."""
    from indexer.batch_embed.cli import app

    app(argv, prog_name="batch-embed")


if __name__ == "__main__":
    main()
