"""The ``shoprank`` command: a thin dispatcher over commands owned by their packages.

``shoprank serve`` is defined here; every other package exposes ``register(app)`` and is listed
in ``COMMAND_PACKAGES`` (heavy imports stay inside the command bodies, so ``serve`` starts
without torch). Settings come from the environment (``SHOPRANK_*``), read once per command.
"""

from __future__ import annotations

import importlib
import logging

import typer

from service.settings import Settings

app = typer.Typer(help="ShopRank: online relevance scoring with near-real-time indexing.", no_args_is_help=True)

# Packages whose ``register(app: typer.Typer)`` adds their commands (prepare, train, export, eval, indexer, …).
COMMAND_PACKAGES = ("training.cli", "indexer.cli", "indexer.batch_embed.cli")


@app.callback()
def main(log_level: str = typer.Option(None, help="logging level for every command (default: SHOPRANK_LOG_LEVEL)")) -> None:
    """Logging is set up here, once for every command, in the one format (``SHOPRANK_LOG_FORMAT``)."""
    from service.logging import configure_logging

    settings = Settings()
    configure_logging(settings.model_copy(update={"log_level": log_level}) if log_level else settings)


@app.command()
def serve(
    host: str = typer.Option(None, help="listen address (default: SHOPRANK_HOST)"),
    port: int = typer.Option(None, help="listen port (default: SHOPRANK_PORT)"),
) -> None:
    """Serve the HTTP API with uvicorn (uvloop + httptools); ready when GET /readyz says 200."""
    import uvicorn

    settings = Settings()
    overrides = {key: value for key, value in {"host": host, "port": port}.items() if value is not None}
    settings = settings.model_copy(update=overrides)
    if refusal := settings.open_writes_refusal():
        raise typer.BadParameter(refusal)
    common = dict(host=settings.host, port=settings.port, loop="uvloop", http="httptools", log_config=None,
                  log_level=logging.getLevelName(logging.getLogger().level).lower())
    if settings.workers > 1:  # each worker process builds its own app from the environment
        uvicorn.run("service.api.app:create_app", factory=True, workers=settings.workers, **common)
        return
    from service.api.app import create_app

    uvicorn.run(create_app(settings), **common)


for _package in COMMAND_PACKAGES:
    importlib.import_module(_package).register(app)
