"""Write congruence: one event history through the embedded path and through Kafka + Redis + a replica.

The history holds new items, title changes, price-only changes, deletes, re-creations after a delete,
duplicates and late (out-of-order) versions. The embedded service takes it as HTTP writes (stale ones
get their 409); the streamed deployment takes the same events on the item topic, applied by a real
indexer into the vector log and Redis, and followed by a replica. Both must end with the same
documents, the same searchable versions and the same search answers: the lexical top 10 exactly
(no model involved), and the dense top 1 for every live item's own title (dense vectors may differ in
the last digits: int8 activations are quantised per batch, and the two paths batch differently).
Both paths run the one versioned apply (``service/versioned_apply.py``) and the stores' version rule.
"""

from __future__ import annotations

import random
import time

import pytest

from service.api.app import create_app
from service.settings import Settings
from tests.conftest import serving
from tests.integration.nrt_helpers import (
    ROOT,
    delete,
    expected_final,
    nrt_settings,
    produce,
    running_indexer,
    upsert,
    wait_until,
)

pytestmark = pytest.mark.integration

BASES = ["Copper Rain Chain", "Walnut Floating Shelf", "Titanium Snow Shovel", "Velvet Tufted Armchair",
         "Glazed Teal Planter", "Brass Cabinet Pull", "Cedar Garden Bench", "Slate Grey Doormat",
         "Bamboo Bath Mat", "Chrome Shower Head", "Oak Step Stool", "Linen Window Curtain"]
COLOURS = ["Crimson", "Saffron", "Cobalt", "Emerald", "Ivory", "Onyx"]


def history(seed: int = 7, events: int = 160) -> list:
    """Events in production order: per item its versions mostly rise, with stale and duplicate ones mixed in."""
    rng = random.Random(seed)
    items = {f"wc-{i}": base for i, base in enumerate(BASES)}
    state: dict[str, tuple[int, str | None, float | None]] = {}  # item → (version, title or None if deleted, price)
    out = []
    for _ in range(events):
        item = rng.choice(list(items))
        version, title, price = state.get(item, (0, None, None))
        roll = rng.random()
        if version and roll < 0.12:  # a duplicate or a late, older version
            late = rng.randint(max(1, version - 3), version)
            out.append(upsert(item, late, f"{rng.choice(COLOURS)} {items[item]} (late)", price=1.0))
            continue
        version += 1
        if title is not None and roll < 0.27:
            state[item] = (version, None, None)
            out.append(delete(item, version))
        elif title is not None and roll < 0.55:  # price only: the embedded text is unchanged
            price = round(rng.uniform(5, 500), 2)
            state[item] = (version, title, price)
            out.append(upsert(item, version, title, price=price, category="home"))
        else:
            title = f"{rng.choice(COLOURS)} {items[item]} {item}"
            price = round(rng.uniform(5, 500), 2)
            state[item] = (version, title, price)
            out.append(upsert(item, version, title, price=price, category="home"))
    return out


def http_write(client, event) -> None:
    if event.type == "delete":
        response = client.delete(f"/v1/items/{event.item_id}", params={"version": event.version})
    else:
        body = {"version": event.version, "title": event.title, "category": event.category, "price": event.price}
        response = client.put(f"/v1/items/{event.item_id}", json=body)
    assert response.status_code in (200, 201, 409), response.text  # 409: stale, as the history intends


def item_state(client, item_id: str) -> dict | int:
    response = client.get(f"/v1/items/{item_id}")
    if response.status_code != 200:
        return response.status_code
    body = response.json()
    return {key: body.get(key) for key in ("id", "version", "title", "category", "price", "searchable_version")}


def search(client, query: str, mode: str) -> list[str]:
    response = client.post("/v1/retrieve", json={"query": query, "k": 10, "mode": mode})
    assert response.status_code == 200, response.text
    return [hit["id"] for hit in response.json()["items"]]


def test_embedded_and_streamed_writes_end_in_the_same_state(kafka_bootstrap, redis_url, model_repo, tmp_path):
    events = history()
    final = expected_final(events)
    assert sum(1 for _, title in final.values() if title is None) >= 2, "the history should end with deletes"
    stale = sum(1 for i, e in enumerate(events) if any(p.item_id == e.item_id and p.version >= e.version
                                                         for p in events[:i]))
    assert stale >= 10, "the history should hold duplicates and late versions"

    embedded = Settings(model_repo=model_repo, data_dir=ROOT / "data", state_dir=tmp_path / "embedded",
                        catalogue_limit=500, api_key=None)
    streamed = nrt_settings(kafka_bootstrap=kafka_bootstrap, redis_url=redis_url, model_repo=model_repo,
                            state_dir=tmp_path / "streamed", replica_id=f"wc-{time.time_ns()}")
    with serving(create_app(embedded)) as direct, serving(create_app(streamed)) as replica, \
            running_indexer(streamed):
        produce(streamed, events)
        for event in events:
            http_write(direct, event)

        def replica_done() -> bool:
            for item_id, (version, title) in final.items():
                state = item_state(replica, item_id)
                if (title is None and state != 404) or (title is not None and (
                        state == 404 or state["searchable_version"] != version)):
                    return False
            return True

        wait_until(replica_done, timeout_s=90, what="the replica applied the whole history")
        for item_id, (version, title) in final.items():
            ours, theirs = item_state(direct, item_id), item_state(replica, item_id)
            assert ours == theirs, f"{item_id}: embedded {ours} vs streamed {theirs}"
            assert (ours == 404) if title is None else (ours["version"] == version and ours["title"] == title)
        live = [title for _, title in final.values() if title is not None]
        for title in live + [f"{base} late" for base in BASES[:4]]:
            assert search(direct, title, "lexical") == search(replica, title, "lexical"), title
        for item_id, (_, title) in final.items():
            if title is not None:
                assert search(direct, title, "dense")[0] == search(replica, title, "dense")[0] == item_id, title
            else:
                for client in (direct, replica):
                    assert item_id not in search(client, BASES[int(item_id.split("-")[1])], "hybrid")
