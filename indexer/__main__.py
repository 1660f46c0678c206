"""``python -m indexer run | produce-sample``: the indexer commands without the service CLI."""

from indexer.cli import indexer_app, produce_sample

indexer_app.command("produce-sample")(produce_sample)
indexer_app()
