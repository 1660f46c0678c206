"""Hot model swap under load, embedded and through Triton: zero failed requests, versions switch.

A real API (uvicorn on a free port) serves a copy of ``model_repo/`` while reader threads call
/v1/rank, /v1/retrieve and /v1/keyphrases/recommend and a writer thread PUTs new items. Then a
ranker version 2 (a copy of version 1 with a changed card) and an encoder version 2 (same
weights, a card with text prefixes, so its vectors really differ) are published the way an
export should publish: built aside, then renamed. The test asserts that no request failed, that
every thread saw the versions move forward only, that each /v1/retrieve answer matches the
encoder its ``model_version`` names, and that after the switch every item — including those
written during the re-embedding — sits in the index with its new-encoder vector.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Self
from unittest import mock

import httpx
import numpy as np
import pytest
import uvicorn

import service.runtime
from service.api.app import create_app
from service.catalogue import load_catalogue, stable_id
from service.inference.factory import make_encoder
from service.inference.onnx_local import OnnxLocalBackend
from service.inference.repository import latest_version
from service.runtime import build_runtime
from service.settings import Settings
from tests.conftest import embedded_settings
from tests.integration.servers import free_port
from tests.integration.triton_server import TritonServer
from training.export.python_backend import python_backend_repository, python_backend_version

pytestmark = [pytest.mark.integration, pytest.mark.slow]
QUERY = "angle bracket"
# A long item prefix moves vectors far (cosine to the unprefixed vector ≤ 0.95 on the seed titles)
# compared with the int8 encoder's batch-composition jitter (≥ 0.985 typically, 0.9777 seen under load:
# activations are quantised per batch, so a vector depends slightly on its batch mates, and Triton batches
# across requests).
V2_PREFIXES = {"query": "search query: ",
               "item": "a product sold in a home improvement store, listed with this catalogue title: "}


def linked_copy(source: Path, target: Path, models: tuple[str, ...] = ("encoder", "ranker")) -> Path:
    """A model repository whose version files are symlinks to ``source``'s (cheap; new versions go in target).

    Only ``models`` are copied: by default the encoder and the ranker, so phased ranking is off and the
    versions are ``encoder:N+ranker:M`` (the first phase's swap has its own test below)."""
    for model_dir in (source / m for m in models if (source / m / "config.pbtxt").exists()):
        (target / model_dir.name).mkdir(parents=True)
        shutil.copy(model_dir / "config.pbtxt", target / model_dir.name / "config.pbtxt")
        for version in (v for v in model_dir.iterdir() if v.name.isdigit() and (v / "model.onnx").exists()):
            (target / model_dir.name / version.name).mkdir()
            for file in ("model.onnx", "tokenizer.json", "shoprank.json"):
                if (version / file).exists():  # the first phase has no tokenizer
                    (target / model_dir.name / version.name / file).symlink_to((version / file).resolve())
    return target


def publish_version(model_dir: Path, *, version: int, card_update: dict) -> Path:
    """Version ``version`` = the newest version's files with an updated card, published atomically."""
    source = max((v for v in model_dir.iterdir() if v.name.isdigit()), key=lambda v: int(v.name))
    staging = model_dir / f".publishing-{version}"
    staging.mkdir()
    for file in ("model.onnx", "tokenizer.json"):
        if (source / file).exists():
            (staging / file).symlink_to((source / file).resolve())
    card = json.loads((source / "shoprank.json").read_text()) | card_update
    (staging / "shoprank.json").write_text(json.dumps(card))
    return staging.rename(model_dir / str(version))


def small_build(settings: Settings):
    """The real ``build_runtime`` over 200 items and 300 keyphrases (the re-embedding takes seconds)."""
    full = load_catalogue(settings.data_dir, limit=settings.catalogue_limit)
    trimmed = replace(full, keyphrases=full.keyphrases[:300])
    with mock.patch.object(service.runtime, "load_catalogue", lambda data_dir, limit=None: trimmed):
        return build_runtime(settings)


@contextmanager
def http_api(settings: Settings):
    """The app on a real uvicorn server in a thread; yields (base url, app) once /readyz says 200."""
    app = create_app(settings, build=small_build)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.config.port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        else:
            pytest.fail("API did not become ready")
        yield url, app
    finally:
        server.should_exit = True
        thread.join(60)


class Load:
    """Reader and writer threads recording every answer until stopped."""

    def __init__(self, url: str, *, titles: list[str], readers: int = 3) -> None:
        self.url = url
        self.titles = titles
        self.stop = threading.Event()
        self.failures: list[str] = []
        self.seen: list[list[str]] = [[] for _ in range(readers)]
        self.retrieved: list[tuple[str, str, float]] = []  # (model_version, top id, top score)
        self.written: list[str] = []
        self.threads = [threading.Thread(target=self._read, args=(i,)) for i in range(readers)]
        self.threads.append(threading.Thread(target=self._write))

    def __enter__(self) -> Self:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)

    def _call(self, client: httpx.Client, method: str, path: str, body: dict) -> dict | None:
        try:
            response = client.request(method, self.url + path, json=body, timeout=60)
        except httpx.HTTPError as exc:
            self.failures.append(f"{path}: {exc!r}")
            return None
        if response.status_code != 200:
            self.failures.append(f"{path}: {response.status_code} {response.text[:200]}")
            return None
        return response.json()

    def _read(self, slot: int) -> None:
        calls = [("/v1/rank", {"query": QUERY, "items": [{"id": "a", "title": "Simpson Strong-Tie 12-Gauge Angle"},
                                                         {"id": "b", "title": "Heat Shrink Tubing"}]}),
                 ("/v1/retrieve", {"query": QUERY, "k": 5, "mode": "dense"}),  # scores are cosines
                 ("/v1/keyphrases/recommend", {"item": {"title": "Cordless Drill Driver Kit"}, "k": 5})]
        with httpx.Client() as client:
            while not self.stop.is_set():
                for path, body in calls:
                    answer = self._call(client, "POST", path, body)
                    if answer is None:
                        continue
                    self.seen[slot].append(answer["model_version"])
                    if path == "/v1/retrieve" and answer["items"]:
                        top = answer["items"][0]
                        self.retrieved.append((answer["model_version"], top["id"], top["score"]))

    def _write(self) -> None:
        with httpx.Client() as client:
            n = 0
            while not self.stop.is_set():
                item_id = f"swap-{n}"
                words = self.titles[(7 * n) % len(self.titles) :][:3]  # distinct texts, unlike the catalogue's
                body = {"version": 1, "title": " ".join(words), "category": "swap test"}
                if self._call(client, "PUT", f"/v1/items/{item_id}", body) is not None:
                    self.written.append(item_id)
                n += 1
                time.sleep(0.02)


def wait_for_version(url: str, expected: str, *, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if httpx.get(url + "/readyz", timeout=10).json().get("model_version") == expected:
            return
        time.sleep(0.2)
    pytest.fail(f"model_version never became {expected}")


def forward_only(versions: list[str], order: list[str]) -> bool:
    ranks = [order.index(v) for v in versions]
    return ranks == sorted(ranks)


@pytest.fixture()
def production_repo(model_repo: Path, tmp_path: Path) -> Path:
    return linked_copy(model_repo, tmp_path / "model_repo")


@pytest.fixture(params=["embedded", "triton"])
def deployment(request, production_repo: Path, tmp_path: Path):
    """(settings, publish) for one backend; ``publish(model, version, card_update)`` adds a version."""
    base = dict(model_repo=production_repo, state_dir=tmp_path / "state", catalogue_limit=200, model_swap_poll_s=0.2)
    if request.param == "embedded":
        def publish(model: str, version: int, card_update: dict) -> None:
            publish_version(production_repo / model, version=version, card_update=card_update)

        yield embedded_settings(**base), publish
        return
    served = python_backend_repository(source_repo=production_repo, target_repo=tmp_path / "triton_repo")

    def publish(model: str, version: int, card_update: dict) -> None:  # export, then mirror for the Python backend
        published = publish_version(production_repo / model, version=version, card_update=card_update)
        python_backend_version(source_version_dir=published, target_model_dir=served / model)

    with TritonServer(served, poll_s=1) as triton:
        yield embedded_settings(**(base | dict(model_repo=served, inference="triton", triton_url=triton.grpc_url,
                                               triton_timeout_s=30.0))), publish


def shipped_versions(repo: Path) -> tuple[int, int]:
    """(encoder, ranker) versions the repository serves now; the tests publish the next ones."""
    return tuple(int(latest_version(repo, model).version) for model in ("encoder", "ranker"))


def test_swap_under_load_has_zero_failed_requests(deployment, model_repo: Path, production_repo: Path) -> None:
    settings, publish = deployment
    e, r = shipped_versions(model_repo)
    old, new = f"encoder:{e}", f"encoder:{e + 1}"
    order = [f"{old}+ranker:{r}", f"{old}+ranker:{r + 1}", f"{new}+ranker:{r + 1}"]
    with http_api(settings) as (url, app):
        assert httpx.get(url + "/readyz").json()["model_version"] == order[0]
        with Load(url, titles=load_catalogue(settings.data_dir).keyphrases) as load:
            time.sleep(1.0)
            publish("ranker", r + 1, {"note": "swap test: same weights, new card"})
            wait_for_version(url, order[1])
            time.sleep(1.0)
            publish("encoder", e + 1, {"prefixes": V2_PREFIXES, "note": "swap test: prefixed texts"})
            wait_for_version(url, order[2])
            time.sleep(3.0)  # past the watcher's grace period and its late catch-up
        runtime = app.state.runtime_holder.runtime

    print(f"{settings.inference}: {sum(map(len, load.seen))} reads and {len(load.written)} writes during the swaps, "
          f"{len(load.failures)} failed; versions seen: {sorted({v for seen in load.seen for v in seen})}")
    assert load.failures == [], load.failures[:5]
    assert all(seen and forward_only(seen, order) for seen in load.seen), [sorted(set(s)) for s in load.seen]
    assert {v for seen in load.seen for v in seen} == set(order)

    encoders = {old: make_encoder(OnnxLocalBackend(model_repo), settings),  # has the shipped version only
                new: make_encoder(OnnxLocalBackend(production_repo), settings)}
    assert [enc.version for enc in encoders.values()] == [str(e), str(e + 1)]

    # each /v1/retrieve answer is scored by the encoder its model_version names (the switch is atomic)
    named = 0
    for version, top_id, score in set(load.retrieved):
        text = runtime.store.get_items([top_id])[0].text
        expected = {name: float(enc.encode([QUERY], kind="query")[0] @ enc.encode([text], kind="item")[0])
                    for name, enc in encoders.items()}
        this, other = version.split("+")[0], ({old, new} - {version.split("+")[0]}).pop()
        assert abs(score - expected[this]) < abs(score - expected[other]), (version, score, expected)
        named += 1
    assert named >= 2

    # after the switch the index holds new-encoder vectors for every item, including the writes made meanwhile
    assert runtime.model_version == order[2] and len(load.written) >= 10
    docs = [doc for doc in runtime.store.get_items(load.written) if doc is not None]
    new_scores, new_ids = runtime.items.search(encoders[new].encode([d.text for d in docs], kind="item"), 1)
    old_scores, _ = runtime.items.search(encoders[old].encode([d.text for d in docs], kind="item"), 1)
    assert new_ids[:, 0].tolist() == [stable_id(doc.item_id) for doc in docs]
    # 0.97: under a loaded CI run the batch-composition jitter reached 0.9777 for one write (2026-12-03); the
    # prefix keeps the old encoder's vectors at ≤ 0.95, so this still tells the two encoders apart
    assert new_scores[:, 0].min() > 0.97, np.sort(new_scores[:, 0])[:5]
    assert (new_scores[:, 0] > old_scores[:, 0]).all(), (new_scores[:, 0] - old_scores[:, 0]).min()


def failed_swaps(url: str) -> float:
    match = re.search(r'shoprank_model_swaps_total{outcome="failed"} (\S+)', httpx.get(url + "/metrics").text)
    return float(match.group(1)) if match else 0.0


def test_a_broken_version_is_refused_and_the_old_one_keeps_serving(production_repo: Path, tmp_path: Path) -> None:
    e, r = shipped_versions(production_repo)
    settings = embedded_settings(model_repo=production_repo, state_dir=tmp_path / "state", catalogue_limit=200,
                                 model_swap_poll_s=0.2)
    with http_api(settings) as (url, app):
        before = failed_swaps(url)
        broken = publish_version(production_repo / "ranker", version=r + 1, card_update={"note": "truncated export"})
        (broken / "model.onnx").unlink()
        (broken / "model.onnx").write_bytes(b"not an onnx file")
        deadline = time.monotonic() + 30
        while failed_swaps(url) == before:
            assert time.monotonic() < deadline, f"the watcher never tried version {r + 1}"
            time.sleep(0.2)
        rank = httpx.post(url + "/v1/rank", json={"query": QUERY, "items": [{"id": "a", "title": "Angle"}]})
        assert rank.status_code == 200 and rank.json()["model_version"] == f"encoder:{e}+ranker:{r}"
        time.sleep(1.0)  # later polls do not retry the same broken versions
        assert failed_swaps(url) == before + 1
        assert app.state.runtime_holder.runtime.scorer.version == str(r)


def test_a_new_first_phase_swaps_in_and_an_encoder_swap_turns_phasing_off(model_repo: Path, tmp_path: Path) -> None:
    """Phased ranking follows the swaps: a new first-phase version is served without a restart; a new encoder
    makes the first phase (trained on the old encoder's vectors) unusable, so phasing goes off."""
    from types import SimpleNamespace

    from service import pipelines
    from service.model_swap import ModelSwapWatcher
    from service.store.base import ItemDocument

    if not any((model_repo / "first_phase").glob("*/model.onnx")):
        pytest.fail(f"{model_repo} has no first_phase model", pytrace=False)
    repo = linked_copy(model_repo, tmp_path / "model_repo", models=("encoder", "ranker", "first_phase"))
    e, r = shipped_versions(repo)
    f = int(latest_version(repo, "first_phase").version)
    settings = embedded_settings(model_repo=repo, state_dir=tmp_path / "state", catalogue_limit=200,
                                 model_swap_poll_s=0)
    slot = SimpleNamespace(runtime=small_build(settings))
    watcher = ModelSwapWatcher(slot, settings, grace_s=0.1)
    weights = pipelines.resolve_weights(settings, profile=None, overrides=None)
    items = [ItemDocument(item_id=str(i), title=t) for i, t in enumerate(["Angle bracket", "Drill", "Hose"])]
    try:
        assert slot.runtime.model_version == f"encoder:{e}+ranker:{r}+first_phase:{f}"
        assert watcher.check_once() is None
        publish_version(repo / "first_phase", version=f + 1, card_update={"note": "swap test: new card"})
        assert watcher.check_once() == "ranker"
        assert slot.runtime.model_version == f"encoder:{e}+ranker:{r}+first_phase:{f + 1}"
        assert slot.runtime.first_phase.backend is slot.runtime.scorer.backend
        ranked = pipelines.rank(slot.runtime, query=QUERY, items=items, weights=weights, rerank_depth=0)
        assert {item.phase for item in ranked} == {1}
        assert watcher.check_once() is None  # nothing new: no second swap
        publish_version(repo / "encoder", version=e + 1, card_update={"prefixes": V2_PREFIXES})
        assert watcher.check_once() == "encoder"
        assert slot.runtime.first_phase is None and slot.runtime.phasing.startswith("off:")
        assert f"trained on 'encoder:{e}'" in slot.runtime.phasing
        assert slot.runtime.model_version == f"encoder:{e + 1}+ranker:{r}"
        ranked = pipelines.rank(slot.runtime, query=QUERY, items=items, weights=weights, rerank_depth=0)
        assert {item.phase for item in ranked} == {2}
        assert watcher.check_once() is None
    finally:
        watcher.stop()
