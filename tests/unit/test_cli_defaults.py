"""CLI options that size a model default to unset: the config dataclasses hold the one copy of each default."""

from unittest import mock

import typer
from typer.testing import CliRunner

import training.cli as cli
from training.biencoder.adaptor import AdaptorConfig
from training.cross_encoder.train import RankerConfig
from training.first_phase.step import FirstPhaseRun
from training.first_phase.train import FirstPhaseConfig


def _invoke(*args: str) -> dict:
    app = typer.Typer()
    cli.register(app)
    seen = {}
    with mock.patch("training.cross_encoder.train.train_ranker_from_files", side_effect=lambda **kw: seen.update(kw)), \
         mock.patch("training.first_phase.step.train_first_phase", side_effect=lambda **kw: seen.update(kw) or {}), \
         mock.patch("training.cli.verify_data"):
        result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return seen


def test_an_unset_option_is_the_dataclass_default_and_a_given_one_overrides_it():
    assert _invoke("train", "ranker")["config"] == RankerConfig()
    given = _invoke("train", "ranker", "--lr", "3e-5", "--tasks", "query_item,item_item")["config"]
    assert given == RankerConfig(lr=3e-5, tasks=["query_item", "item_item"])
    run = _invoke("train", "first-phase")["run"]
    assert run.model == FirstPhaseConfig(loss="mse") and run.alternatives == (FirstPhaseConfig(loss="bce"),)
    assert run.retrieved_max_pairs == FirstPhaseRun().retrieved_max_pairs
    assert _invoke("train", "first-phase", "--retrieved-max-pairs", "0")["run"].retrieved_max_pairs is None


def test_the_adaptor_weights_default_to_the_config_and_must_match_its_cuts():
    assert len(AdaptorConfig().weights) == len(AdaptorConfig().dims)
    assert cli.floats(None) is None and cli.floats("1,1,1,4") == (1.0, 1.0, 1.0, 4.0)
    assert cli.given(a=None, b=0, c="x") == {"b": 0, "c": "x"}
