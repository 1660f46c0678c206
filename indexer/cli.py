"""Command bodies of ``shoprank indexer run``, ``shoprank indexer recommend`` and ``shoprank produce-sample``.

``service.cli`` registers them; ``python -m indexer`` runs the same app without the service CLI.
Settings come from the environment (``SHOPRANK_*``) as everywhere else.
"""

from __future__ import annotations

import signal
import threading

import typer

from service.logging import configure_logging
from service.settings import Settings
from service.threads import apply_thread_budget, lower_cpu_priority

indexer_app = typer.Typer(help="Near-real-time indexing from Kafka (docs/indexing.md).", no_args_is_help=True)


def _stop_on_signals() -> threading.Event:
    """SIGTERM / SIGINT finish the open batch, commit and exit cleanly."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


@indexer_app.command("run")
def run_indexer(
    metrics_port: int = typer.Option(None, help="serve Prometheus metrics here (default: settings)"),
    client_id: str = typer.Option(None, help="Kafka client id (default: indexer-<host>-<pid>)"),
) -> None:
    """Consume item-updates in the indexer group: validate, batch, embed, publish vectors, store, commit."""
    from prometheus_client import start_http_server

    from indexer.worker import build_worker

    settings = Settings()
    configure_logging(settings)  # SHOPRANK_LOG_FORMAT / _LOG_LEVEL, as the API
    apply_thread_budget(settings)
    lower_cpu_priority(settings.indexer_nice, sched_idle=settings.indexer_sched_idle)
    port = metrics_port or settings.indexer_metrics_port
    if port:
        start_http_server(port, addr=settings.host)
    worker = build_worker(settings, client_id=client_id)
    typer.echo(f"indexer consuming {settings.kafka_topic} as {settings.kafka_group}", err=True)
    worker.run(stop=_stop_on_signals())


@indexer_app.command("recommend")
def run_recommendations(
    client_id: str = typer.Option("recommendations", help="Kafka client id"),
    metrics_port: int = typer.Option(None, help="serve Prometheus metrics here (shoprank_recommend_items_total)"),
) -> None:
    """Follow the vector log in its own group and cache keyphrase recommendations for changed items
    (those callers ask for, by default: SHOPRANK_RECOMMEND_SCOPE), and warm the ranker's pair scores of
    retitled and new items for the head queries (SHOPRANK_PAIR_WARMING)."""
    from prometheus_client import start_http_server

    from indexer.recommend import RecommendationWorker, recommendations_group
    from service.runtime import build_runtime

    settings = Settings()
    configure_logging(settings)
    apply_thread_budget(settings)
    lower_cpu_priority(settings.indexer_nice, sched_idle=settings.indexer_sched_idle)
    if not settings.kafka_bootstrap or not settings.redis_url:
        raise typer.BadParameter("needs SHOPRANK_KAFKA_BOOTSTRAP and SHOPRANK_REDIS_URL")
    if metrics_port:
        start_http_server(metrics_port, addr=settings.host)
    runtime = build_runtime(settings)
    typer.echo(f"caching recommendations ({settings.recommend_scope} items) from {settings.kafka_vectors_topic} "
               f"as {recommendations_group(settings)}", err=True)
    try:
        RecommendationWorker(settings=settings, runtime=runtime, client_id=client_id).run(stop=_stop_on_signals())
    finally:
        runtime.close()


def produce_sample(
    limit: int = typer.Option(1000, help="catalogue items to create"),
    updates: int = typer.Option(200, help="random title updates after the creates"),
    deletes: int = typer.Option(50, help="random deletes at the end"),
    rate: float = typer.Option(0.0, help="events per second (0 = as fast as possible)"),
    seed: int = typer.Option(0),
    version_base: int = typer.Option(None, help="first version (default: now in ms, so replays are newer)"),
) -> None:
    """Replay a slice of the catalogue as item events on item-updates."""
    from indexer.consumer import make_producer
    from indexer.sample import produce, sample_events
    from service.catalogue import load_catalogue
    from service.stream.topics import ensure_topics

    settings = Settings()
    ensure_topics(settings)
    catalogue = load_catalogue(settings.data_dir, limit=limit)
    producer = make_producer(settings, client_id="produce-sample")
    events = sample_events(catalogue, updates=updates, deletes=deletes, seed=seed, version_base=version_base)
    sent = produce(producer, events, topic=settings.kafka_topic, rate_per_s=rate)
    producer.close()
    typer.echo(f"produced {sent} events to {settings.kafka_topic}")



def register(app: typer.Typer) -> None:
    """Add ``shoprank indexer …`` and ``shoprank produce-sample`` to the service CLI."""
    app.add_typer(indexer_app, name="indexer")
    app.command("produce-sample")(produce_sample)
