"""The job's input: a catalogue as a Spark DataFrame with the text the service embeds for each item and its hash.

Input columns: ``item_id`` and ``title`` (required), ``category`` and ``version`` (optional), from CSV (with a
header) or Parquet; no path means the vendored Home Depot catalogue as the service seeds it
(``service.catalogue.load_catalogue``: distinct products, stripped titles, no category, version 0). The text is
``ItemDocument.text`` (``title | category``) and its hash ``searchable.text_hash``, computed by the service's own
code in the workers, so diff runs and the service's start-up compare the same hashes.
"""

from __future__ import annotations

from pathlib import Path

from service.catalogue import load_catalogue, text_hash
from service.store.base import ItemDocument

INPUT_DDL = "item_id string, title string, category string, version long"
TEXT_DDL = "item_id string, version long, text_hash long, title string, category string, position long"
"""Rows after ``with_text`` (version null: the input has none, the job decides, see ``job``; position: the row's
place in the input, which fixes the batches the encoder sees, see ``job``)."""


def read_catalogue(spark, path: Path | None, *, data_dir: Path, limit: int | None = None, partitions: int = 4):
    """The input catalogue as ``INPUT_DDL`` rows (null title rows dropped; ``limit``: the first N)."""
    from pyspark.sql import functions as F

    if path is None:
        catalogue = load_catalogue(data_dir, limit=limit)
        rows = [(i, t, "", None) for i, t in zip(catalogue.item_ids, catalogue.item_titles)]
        return spark.createDataFrame(spark.sparkContext.parallelize(rows, partitions), INPUT_DDL)
    if str(path).endswith(".csv"):  # RFC 4180 quoting ("" inside quotes), as pandas and most tools write it
        frame = spark.read.option("header", True).option("escape", '"').option("multiLine", True).csv(str(path))
    else:
        frame = spark.read.parquet(str(path))
    missing = {"item_id", "title"} - set(frame.columns)
    if missing:
        raise ValueError(f"catalogue {path} lacks the column(s) {sorted(missing)} (has {frame.columns})")
    frame = frame.select(
        F.col("item_id").cast("string"), F.col("title").cast("string"),
        (F.col("category") if "category" in frame.columns else F.lit("")).cast("string").alias("category"),
        (F.col("version") if "version" in frame.columns else F.lit(None)).cast("long").alias("version"),
    ).where(F.col("item_id").isNotNull() & F.col("title").isNotNull())
    return frame.limit(limit) if limit else frame


def _text_row(indexed: tuple) -> tuple:
    row, position = indexed
    doc = ItemDocument(item_id=row.item_id, title=row.title, category=row.category or "")
    return row.item_id, row.version, text_hash(doc.text), doc.title, doc.category, position


def with_text(frame):
    """``INPUT_DDL`` rows → ``TEXT_DDL`` rows: the service's item text hashed in the workers, input order kept."""
    return frame.sparkSession.createDataFrame(frame.rdd.zipWithIndex().map(_text_row), TEXT_DDL)
