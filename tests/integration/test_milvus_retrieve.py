"""/v1/retrieve with ``SHOPRANK_INDEX_BACKEND=milvus`` (Milvus Lite embedded, in a temp dir) against the FAISS app.

Both apps serve the real encoder over the same catalogue slice (``tests/conftest.py``: the first 2,000 items);
the dense top 10 of test-split search terms must overlap FAISS's by ≥ 0.95 on average (issue 18's bar; the
whole catalogue is measured by ``bench/milvus_vs_faiss.py``), and the embedded write path (PUT, DELETE) must
reach the Milvus collection.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.catalogue import load_catalogue
from service.index.snapshots import read_sidecar
from tests.conftest import API_KEY, CATALOGUE_LIMIT, ROOT, embedded_settings, serving
from training.data import split_of

pytestmark = pytest.mark.slow
KEY = {"X-API-Key": API_KEY}


@pytest.fixture(scope="module")
def milvus_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("milvus-api-state")


@pytest.fixture(scope="module")
def milvus_client(model_repo: Path, milvus_state: Path) -> Iterator[TestClient]:
    settings = embedded_settings(model_repo=model_repo, state_dir=milvus_state, api_key=API_KEY,
                                 index_backend="milvus")  # milvus_uri unset: Milvus Lite at state_dir/milvus.db
    with serving(create_app(settings)) as client:
        yield client


def dense(client: TestClient, query: str, k: int = 10) -> list[dict]:
    response = client.post("/v1/retrieve", json={"query": query, "k": k, "mode": "dense"})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def dense_top(client: TestClient, query: str, k: int = 10) -> list[str]:
    return [item["id"] for item in dense(client, query, k)]


def test_dense_top10_overlaps_faiss_on_test_split_queries(api_client, milvus_client, milvus_state) -> None:
    info = read_sidecar(milvus_state / "items.faiss")
    assert info is not None and info.kind == "milvus" and info.count == CATALOGUE_LIMIT
    catalogue = load_catalogue(ROOT / "data", limit=CATALOGUE_LIMIT)
    seed = dict(zip(catalogue.item_ids, catalogue.item_titles))
    terms = sorted(t for t in catalogue.keyphrases if split_of(t) == "test")[::10]  # ~120 of ~1,200, spread out

    def top10(client: TestClient, term: str) -> set[str]:
        """The 10 best seed items as seeded: the session's FAISS app also serves what other tests wrote."""
        items = [i["id"] for i in dense(client, term, k=30) if seed.get(i["id"]) == i["title"]][:10]
        assert len(items) == 10
        return set(items)

    overlaps = [len(top10(api_client, term) & top10(milvus_client, term)) / 10 for term in terms]
    assert len(terms) >= 100 and float(np.mean(overlaps)) >= 0.95, f"mean top-10 overlap {np.mean(overlaps):.3f}"


def test_embedded_writes_reach_the_milvus_collection(milvus_client) -> None:
    item = "milvus-write-1"
    put = milvus_client.put(f"/v1/items/{item}", headers=KEY,
                            json={"version": 1, "title": "Qwertyzap 18-Volt Cordless Leaf Blower"})
    assert put.status_code == 200, put.text
    assert dense_top(milvus_client, "qwertyzap cordless leaf blower", k=5)[0] == item
    assert milvus_client.delete(f"/v1/items/{item}?version=2", headers=KEY).status_code == 200
    assert item not in dense_top(milvus_client, "qwertyzap cordless leaf blower", k=50)
