"""``shoprank batch-embed`` and ``shoprank batch-publish`` (pyspark imported inside the commands only)."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

import typer

from service.settings import Settings


class Mode(StrEnum):
    full = "full"
    diff = "diff"


def batch_embed(
    output: Path = typer.Option(None, help="Parquet directory to write (default: <state_dir>/catalogue-vectors)"),
    catalogue: Path = typer.Option(None, help="CSV (header) or Parquet with item_id, title[, category, version]; "
                                              "default: the Home Depot catalogue in SHOPRANK_DATA_DIR"),
    mode: Mode = typer.Option(Mode.full, help="full: embed every item; diff: only items whose text or model changed"),
    previous: Path = typer.Option(None, help="diff: the output of an earlier run"),
    limit: int = typer.Option(None, help="only the first N catalogue items"),
    master: str = typer.Option(None, help="Spark master (default: spark-submit's, else pyspark's local[*])"),
    partitions: int = typer.Option(None, help="embedding tasks (default: 2 × default parallelism)"),
    chunk: int = typer.Option(None, help="texts per encoder call (default: SHOPRANK_INDEX_BUILD_BATCH)"),
    intra_op_threads: int = typer.Option(1, help="ONNX Runtime threads per Spark task (set spark.task.cpus to it)"),
    publish: bool = typer.Option(False, help="then send what this run embedded to the vector log (Kafka)"),
) -> None:
    """Embed the catalogue with the served item encoder on Spark into Parquet (docs/indexing.md)."""
    from indexer.batch_embed import job
    from indexer.batch_embed.publish import publish as publish_vectors

    settings = Settings()
    output = output or settings.state_dir / "catalogue-vectors"
    conf = {"spark.sql.shuffle.partitions": str(partitions)} if partitions else {}
    spark = job.spark_session(master=master, conf=conf)
    try:
        report = job.run(spark, settings, output=output, catalogue=catalogue, mode=mode.value, previous=previous,
                         limit=limit, partitions=partitions, chunk=chunk, intra_op_threads=intra_op_threads)
        result = report.as_dict()
        if publish:
            result["published"] = publish_vectors(spark, settings, output, previous=previous)
    finally:
        spark.stop()
    typer.echo(json.dumps(result))


def batch_publish(
    vectors: Path = typer.Argument(..., help="Parquet written by shoprank batch-embed"),
    previous: Path = typer.Option(None, help="send only rows that differ from this earlier output"),
    master: str = typer.Option(None, help="Spark master (default: spark-submit's, else local[*])"),
) -> None:
    """Send batch-embed output to the vector log (SHOPRANK_KAFKA_VECTORS_TOPIC) for the replicas."""
    from indexer.batch_embed import job
    from indexer.batch_embed.publish import publish as publish_vectors

    settings = Settings()
    spark = job.spark_session(master=master)
    try:
        sent = publish_vectors(spark, settings, vectors, previous=previous)
    finally:
        spark.stop()
    typer.echo(json.dumps({"published": sent, "topic": settings.kafka_vectors_topic}))


app = typer.Typer(add_completion=False)
app.command()(batch_embed)


def register(app: typer.Typer) -> None:
    """Add ``shoprank batch-embed`` and ``shoprank batch-publish`` to the service CLI."""
    app.command("batch-embed")(batch_embed)
    app.command("batch-publish")(batch_publish)
