"""Issue 21's plumbing: a step addresses the version it exported (a pinned repository view), result rows are
picked by name, and the int8 encoder is served only above the parity floor."""

import json

import pytest

from service.inference.repository import latest_version
from training.evaluate.ranking_report import Row, row_named
from training.export.cards import record_in_card
from training.export.parity import ENCODER_INT8_MIN_COSINE, encoder_precision_gate
from training.export.pinned import pinned_repo, pinned_settings


def _version(repo, model, version, **card):
    path = repo / model / str(version)
    path.mkdir(parents=True)
    (path / "model.onnx").write_bytes(f"{model}:{version}".encode())
    (path / "shoprank.json").write_text(json.dumps({"kind": model, **card}))
    (repo / model / "config.pbtxt").write_text(f'name: "{model}"')
    return path


def test_a_pinned_view_serves_the_version_below_the_latest_and_writes_its_real_card(tmp_path):
    repo = tmp_path / "repo"
    _version(repo, "unified", 2), _version(repo, "unified", 3), _version(repo, "tower", 5)
    with pinned_repo(repo, {"unified": 2}) as view:
        pinned = latest_version(view, "unified")
        assert pinned.version == 2 and pinned.onnx_path.read_bytes() == b"unified:2"
        assert (view / "unified" / "config.pbtxt").read_text() == 'name: "unified"'
        assert latest_version(view, "tower").version == 5  # models not pinned are as they are
        record_in_card(pinned.path, "calibration", {"min_relevance": 0.41234567})
    assert json.loads((repo / "unified" / "2" / "shoprank.json").read_text())["calibration"] == {"min_relevance": 0.4123}
    assert "calibration" not in json.loads((repo / "unified" / "3" / "shoprank.json").read_text())
    assert not view.exists() and latest_version(repo, "unified").version == 3  # the view is gone, the repo intact


def test_pinning_a_version_that_was_not_exported_fails_with_its_path(tmp_path):
    _version(tmp_path, "ranker", 3)
    with pytest.raises(FileNotFoundError, match="ranker version 2 was not exported"), pinned_repo(tmp_path, {"ranker": 2}):
        pass


def test_pinned_settings_score_in_process(tmp_path):
    from service.settings import Settings

    _version(tmp_path, "ranker", 1)
    settings = Settings(model_repo=tmp_path, inference="triton", kafka_bootstrap=None, redis_url=None)
    with pinned_settings(settings, {"ranker": 1}) as pinned:
        assert pinned.inference == "embedded" and pinned.model_repo != tmp_path
        assert latest_version(pinned.model_repo, "ranker").path.resolve() == (tmp_path / "ranker" / "1").resolve()


def test_rows_are_picked_by_key_not_position():
    rows = [Row("ranker (r:2)", 0.9, key="ranker"), Row("student encoder (e:2, 64-d)", 0.8, key="encoder")]
    assert row_named(rows, "encoder").ndcg10 == 0.8 and row_named(rows, "ranker").system == "ranker (r:2)"
    with pytest.raises(KeyError, match="bm25"):
        row_named(rows, "bm25")


def test_the_int8_encoder_below_the_floor_is_replaced_by_its_fp32_export(tmp_path):
    version = _version(tmp_path, "encoder", 1)
    (version / "model.fp32.onnx").write_bytes(b"fp32")
    kept = encoder_precision_gate(version, {"encoder_int8_min_cosine": 0.993, "encoder_fp32_min_cosine": 1.0})
    assert kept["served"] == "int8" and (version / "model.onnx").read_bytes() == b"encoder:1"
    dropped = encoder_precision_gate(version, {"encoder_int8_min_cosine": 0.78249, "encoder_fp32_min_cosine": 1.0})
    assert dropped["served"] == "fp32" and dropped["floor"] == ENCODER_INT8_MIN_COSINE
    assert "0.78249 < floor" in dropped["reason"]
    assert (version / "model.onnx").read_bytes() == b"fp32" and not (version / "model.fp32.onnx").exists()
