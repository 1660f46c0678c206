"""``shoprank batch-embed`` on real Spark (``local[2]``, Debian's JRE) with the served ONNX encoder, end to end.

A sample of the real catalogue (300 Home Depot items, a tenth with a category, as CSV) is embedded in full; the
output must be the service's start-up vectors (cosine ≥ 0.999 for every item). A diff run after changing 1 % of
the titles must embed exactly those 3 items and carry the other 297 over byte for byte; a new model version
must re-embed everything. The service then starts from the Parquet, and the diff's output published to the
vector log (real Tansu) is taken by a replica without a model call.
"""

from __future__ import annotations

import logging
import time
import uuid

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from indexer.batch_embed.job import run, spark_session
from indexer.batch_embed.publish import publish
from service.api.app import create_app
from service.catalogue import load_catalogue, text_hash
from service.catalogue_vectors import unpack_vectors
from service.inference.factory import make_backend, make_encoder
from service.runtime import encode_all, seed_item_vectors
from service.searchable import REGISTRY
from service.store.base import ItemDocument
from tests.conftest import ROOT, embedded_settings, serving
from tests.integration.nrt_helpers import nrt_settings, wait_until

pytestmark = pytest.mark.integration

N_ITEMS = 300
CHANGED = {10: "Zebra Striped Titanium Snow Shovel with Ergonomic Handle",
           150: "Purple Velvet Tufted Armchair with Walnut Legs",
           299: "Marker Item Copper Rain Chain for Gutter Downspouts"}  # 1 % of 300 titles


@pytest.fixture(scope="module")
def spark():
    session = spark_session(master="local[2]", app_name="test-batch-embed",
                            conf={"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "4"})
    yield session
    session.stop()


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("batch-embed")


@pytest.fixture(scope="module")
def settings(model_repo, work):
    return embedded_settings(model_repo=model_repo, state_dir=work / "state", catalogue_limit=N_ITEMS)


@pytest.fixture(scope="module")
def encoder(settings):
    return make_encoder(make_backend(settings), settings)


@pytest.fixture(scope="module")
def sample(work) -> pd.DataFrame:
    """The first 300 catalogue items; every tenth with a category (the embedded text is then ``title | category``)."""
    catalogue = load_catalogue(ROOT / "data", limit=N_ITEMS)
    frame = pd.DataFrame({"item_id": catalogue.item_ids, "title": catalogue.item_titles,
                          "category": ["Garden Tools" if n % 10 == 5 else "" for n in range(N_ITEMS)]})
    frame.to_csv(work / "catalogue.csv", index=False)
    return frame


@pytest.fixture(scope="module")
def full(spark, settings, sample, work):
    report = run(spark, settings, output=work / "full", catalogue=work / "catalogue.csv", mode="full", partitions=3)
    return report, pq.read_table(work / "full").to_pandas().set_index("item_id").loc[sample["item_id"]]


@pytest.fixture(scope="module")
def diff(spark, settings, sample, full, work):
    changed = sample.copy()
    for row, title in CHANGED.items():
        changed.loc[row, "title"] = title
    changed.to_csv(work / "changed.csv", index=False)
    report = run(spark, settings, output=work / "diff", catalogue=work / "changed.csv", mode="diff",
                 previous=work / "full", partitions=3)
    return report, changed, pq.read_table(work / "diff").to_pandas().set_index("item_id").loc[changed["item_id"]]


def _texts(frame: pd.DataFrame) -> list[str]:
    return [ItemDocument(item_id=i, title=t, category=c if isinstance(c, str) else "").text
            for i, t, c in zip(frame["item_id"], frame["title"], frame["category"])]


def test_full_run_is_the_services_start_up_vectors(full, sample, settings, encoder) -> None:
    report, out = full
    assert (report.embedded, report.carried, report.items) == (N_ITEMS, 0, N_ITEMS)
    texts = _texts(sample)
    service = encode_all(encoder, texts, kind="item", batch=settings.index_build_batch, label="test")
    cosine = np.sum(unpack_vectors(out["vector"].tolist()) * service, axis=1)
    print(f"full run vs service start-up: min cosine {cosine.min():.7f} over {len(cosine)} items")
    assert cosine.min() >= 0.999
    assert out["text_hash"].tolist() == [text_hash(t) for t in texts]
    assert set(out["model_version"]) == {encoder.model_version} and set(out["version"]) == {0}
    assert all(len(v) == 2 * settings.embedding_dim for v in out["vector"])  # float16


def test_diff_after_changing_one_percent_embeds_only_those(diff, full, encoder, settings) -> None:
    report, changed, out = diff
    print(f"diff run: {report.as_dict()}")
    assert (report.embedded, report.carried, report.removed) == (len(CHANGED), N_ITEMS - len(CHANGED), 0)
    ids = changed["item_id"].tolist()
    moved = [ids[row] for row in sorted(CHANGED)]
    kept = [item for item in ids if item not in moved]
    previous = full[1]
    assert (out.loc[kept, "vector"] == previous.loc[kept, "vector"]).all()  # carried over byte for byte
    assert set(out.loc[kept, "version"]) == {0} and set(out.loc[moved, "version"]) == {1}  # text changed: +1
    service = encoder.encode([CHANGED[row] for row in sorted(CHANGED)], kind="item")
    assert np.sum(unpack_vectors(out.loc[moved, "vector"].tolist()) * service, axis=1).min() >= 0.999


def test_a_new_model_version_re_embeds_everything(spark, settings, diff, work) -> None:
    table = pq.read_table(work / "diff")
    older = table.set_column(table.schema.get_field_index("model_version"), "model_version",
                             pa.array(["encoder:0"] * table.num_rows, pa.string()))
    pq.write_table(older, work / "older.parquet")
    report = run(spark, settings, output=work / "rebuilt", catalogue=work / "changed.csv", mode="diff",
                 previous=work / "older.parquet", partitions=3)
    assert (report.embedded, report.carried) == (N_ITEMS, 0)
    versions = pq.read_table(work / "rebuilt", columns=["version"]).column("version").to_pylist()
    assert sorted(versions) == sorted(pq.read_table(work / "diff", columns=["version"]).column("version").to_pylist())


def test_the_service_starts_from_the_parquet(full, settings, encoder, work, caplog) -> None:
    with_vectors = settings.model_copy(update={"catalogue_vectors": work / "full"})
    seed = [ItemDocument(item_id=i, title=t) for i, t in zip(*_seed(settings))]
    with caplog.at_level(logging.INFO, logger="service.catalogue_vectors"):
        _, vectors = seed_item_vectors(with_vectors, encoder, seed)
    # the seed has no categories: the 30 items embedded with one in the sample are embedded here instead
    assert f"{N_ITEMS - 30} of {N_ITEMS} seed items from" in caplog.text and "30 embedded here" in caplog.text
    expected = unpack_vectors(full[1]["vector"].tolist())
    plain = [n for n in range(N_ITEMS) if n % 10 != 5]
    assert np.allclose(vectors[plain], expected[plain])

    api_settings = with_vectors.model_copy(update={"state_dir": work / "api-state"})  # shared with the replica
    with serving(create_app(api_settings)) as client:
        title = seed[42].title
        hits = client.post("/v1/retrieve", json={"query": title, "k": 5, "mode": "dense"}).json()["items"]
        assert hits[0]["id"] == seed[42].item_id, hits


def _seed(settings):
    catalogue = load_catalogue(settings.data_dir, limit=settings.catalogue_limit)
    return catalogue.item_ids, catalogue.item_titles


def test_published_diff_is_taken_by_a_replica(spark, diff, full, kafka_bootstrap, model_repo, work) -> None:
    _, changed, _ = diff
    replica = nrt_settings(kafka_bootstrap=kafka_bootstrap, redis_url=None, model_repo=model_repo,
                           state_dir=work / "api-state", catalogue_limit=N_ITEMS,
                           catalogue_vectors=work / "full", replica_id=f"r-{uuid.uuid4().hex[:6]}")
    ids = changed["item_id"].tolist()
    with serving(create_app(replica)) as client:
        logged, embedded = _embeddings("logged"), _embeddings("embedded")
        started = time.monotonic()
        assert publish(spark, replica, work / "diff", previous=work / "full") == len(CHANGED)

        def top(title: str) -> str | None:
            hits = client.post("/v1/retrieve", json={"query": title, "k": 1, "mode": "dense"}).json()["items"]
            return hits[0]["id"] if hits else None

        for row, title in CHANGED.items():
            wait_until(lambda row=row, title=title: top(title) == ids[row], what=f"{ids[row]} searchable")
            item = client.get(f"/v1/items/{ids[row]}").json()
            assert item["title"] == title and item["searchable_version"] == 1
        print(f"published → searchable in the replica in {time.monotonic() - started:.2f}s")
        assert _embeddings("logged") - logged == len(CHANGED)  # the batch vectors, as sent
        assert _embeddings("embedded") == embedded  # no model call in the replica


def _embeddings(outcome: str) -> float:
    """The replica's ``shoprank_replica_item_embeddings_total{outcome}`` (``service.searchable``)."""
    return REGISTRY.get_sample_value("shoprank_replica_item_embeddings_total", {"outcome": outcome}) or 0.0
