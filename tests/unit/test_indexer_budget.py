"""The indexer's ONNX Runtime budget is its own: one thread, no spinning by default, whatever the API's is."""

from __future__ import annotations

from indexer.worker import indexer_process_settings
from service.settings import Settings


def test_defaults_do_not_spin_and_give_the_indexer_one_thread() -> None:
    settings = Settings(_env_file=None)
    assert settings.ort_allow_spinning is False and settings.indexer_ort_allow_spinning is False
    budget = indexer_process_settings(settings.model_copy(update={"intra_op_threads": 4, "ort_allow_spinning": True}))
    assert (budget.intra_op_threads, budget.ort_allow_spinning) == (1, False)


def test_the_indexer_budget_is_set_apart_from_the_api(monkeypatch) -> None:
    monkeypatch.setenv("SHOPRANK_INDEXER_INTRA_OP_THREADS", "3")
    monkeypatch.setenv("SHOPRANK_INDEXER_ORT_ALLOW_SPINNING", "true")
    monkeypatch.setenv("SHOPRANK_INTRA_OP_THREADS", "2")
    settings = Settings()
    budget = indexer_process_settings(settings)
    assert (budget.intra_op_threads, budget.ort_allow_spinning) == (3, True)
    assert (settings.intra_op_threads, settings.ort_allow_spinning) == (2, False)
