"""The item tower (training/item_tower/, service/inference TwoTowerEncoder): the served student rebuilt from its
int8 ONNX file, a layer-dropped tower exported like a student, and the service's routing (queries → encoder,
items → tower) with its refusals (no tower, a tower of another encoder, the setting off)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from service.catalogue import load_catalogue
from service.inference.factory import make_backend, make_encoder, make_first_phase
from service.inference.models import Encoder, TwoTowerEncoder
from service.inference.repository import latest_version
from service.settings import Settings
from training.export.onnx_export import export_encoder
from training.item_tower.from_onnx import student_from_onnx
from training.item_tower.model import ItemTower, keep_layers, save_tower

ROOT = Path(__file__).resolve().parents[2]
REPO = ROOT / "model_repo"


@pytest.fixture(scope="module")
def titles() -> list[str]:
    return load_catalogue(ROOT / "data", limit=400).item_titles[::10]


@pytest.fixture(scope="module")
def served() -> Encoder:
    settings = Settings(model_repo=REPO, item_encoder_model="", intra_op_threads=1)
    encoder = make_encoder(make_backend(settings), settings)
    assert isinstance(encoder, Encoder)
    return encoder


@pytest.fixture(scope="module")
def student():
    return student_from_onnx(latest_version(REPO, "encoder").onnx_path)


def _torch_vectors(tower: ItemTower, encoder: Encoder, texts: list[str]) -> np.ndarray:
    batch = encoder.tokenizer()(texts, None)
    with torch.no_grad():
        return tower(torch.from_numpy(batch["input_ids"]), torch.from_numpy(batch["attention_mask"])).numpy()


def test_the_rebuilt_student_reproduces_the_served_encoder(student, served, titles) -> None:
    encoder, projection = student
    assert projection is not None and projection.shape == (384, 384)  # the adaptor came back too
    rebuilt = _torch_vectors(ItemTower(encoder, projection), served, titles)
    cos = np.einsum("ij,ij->i", rebuilt, served.encode(titles, kind="item"))
    assert cos.min() > 0.97, cos.min()  # fp32 of the dequantised weights vs int8 inference


def test_dropping_layers_changes_the_vectors_and_keeping_all_does_not(student, served, titles) -> None:
    encoder, projection = student
    full = _torch_vectors(ItemTower(encoder, projection), served, titles)
    same = _torch_vectors(ItemTower(keep_layers(encoder, list(range(6))), projection), served, titles)
    fewer = _torch_vectors(ItemTower(keep_layers(encoder, [0, 5]), projection), served, titles)
    assert np.allclose(full, same, atol=1e-5)
    assert np.einsum("ij,ij->i", full, fewer).mean() < 0.9


@pytest.fixture(scope="module")
def repo_with_tower(tmp_path_factory, student, served) -> Path:
    """A repository with the shipped encoder and a 1-layer tower exported like a student (fp32), teacher = it."""
    repo = tmp_path_factory.mktemp("repo")
    shutil.copytree(REPO / "encoder", repo / "encoder")
    encoder, projection = student
    tower_dir = save_tower(ItemTower(keep_layers(encoder, [0]), projection), repo.parent / "tower-0",
                           card={"layers": [0], "teacher": served.model_version})
    export_encoder(repo=repo, name="item_encoder", version=1, source=str(tower_dir), int8=False,
                   card={"teacher": served.model_version, "role": "item_tower"})
    return repo


def test_the_exported_tower_is_the_trained_one(repo_with_tower, student, served, titles) -> None:
    settings = Settings(model_repo=repo_with_tower, intra_op_threads=1)
    two = make_encoder(make_backend(settings), settings)
    encoder, projection = student
    expected = _torch_vectors(ItemTower(keep_layers(encoder, [0]), projection), served, titles)
    assert np.einsum("ij,ij->i", two.item.encode(titles), expected).min() > 0.999


def test_queries_go_through_the_encoder_and_items_through_the_tower(repo_with_tower, served, titles) -> None:
    settings = Settings(model_repo=repo_with_tower, intra_op_threads=1)
    two = make_encoder(make_backend(settings), settings)
    assert isinstance(two, TwoTowerEncoder)
    assert two.model_version == f"{served.model_version}+item_encoder:1"
    assert two.vector_space == served.model_version and two.version == served.version and two.dim == served.dim
    assert np.allclose(two.encode(titles[:5], kind="query"), served.encode(titles[:5], kind="query"), atol=1e-6)
    items = two.encode(titles[:5], kind="item")
    assert np.allclose(items, two.item.encode(titles[:5]), atol=1e-6)
    assert not np.allclose(items, served.encode(titles[:5], kind="item"), atol=1e-2)


def test_no_tower_a_tower_of_another_encoder_or_the_setting_off_mean_the_encoder_alone(repo_with_tower, tmp_path) -> None:
    off = Settings(model_repo=repo_with_tower, item_encoder_model="")
    assert isinstance(make_encoder(make_backend(off), off), Encoder)
    absent = Settings(model_repo=repo_with_tower, item_encoder_model="no_such_tower")
    assert isinstance(make_encoder(make_backend(absent), absent), Encoder)
    other = tmp_path / "repo"
    shutil.copytree(repo_with_tower, other)
    card = other / "item_encoder" / "1" / "shoprank.json"
    card.write_text(json.dumps(json.loads(card.read_text()) | {"teacher": "encoder:999"}))
    mismatched = Settings(model_repo=other)
    assert isinstance(make_encoder(make_backend(mismatched), mismatched), Encoder)


def test_phasing_stays_on_over_a_tower_of_the_encoder_it_was_trained_on(repo_with_tower, tmp_path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(repo_with_tower, repo)
    shutil.copytree(REPO / "first_phase", repo / "first_phase")
    settings = Settings(model_repo=repo)
    backend = make_backend(settings)
    scorer, status = make_first_phase(backend, settings, make_encoder(backend, settings))
    assert scorer is not None, status


def test_the_gate_decides_on_validation_recall_within_the_allowed_drop() -> None:
    from training.item_tower.gate import GateResult
    from training.item_tower.step import MAX_RECALL_DROP

    measured = GateResult("validation", 100, encoder_recall=0.7719, tower_recall=0.7551, mean_item_cosine=0.95,
                          min_item_cosine=0.6)
    assert round(measured.drop, 4) == 0.0168 and not measured.passes(MAX_RECALL_DROP)
    close = GateResult("validation", 100, encoder_recall=0.7719, tower_recall=0.7650, mean_item_cosine=0.97,
                       min_item_cosine=0.8)
    assert close.passes(MAX_RECALL_DROP) and close.as_dict()["drop"] == 0.0069
