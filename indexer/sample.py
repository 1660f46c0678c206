"""Replay the catalogue as item events (``shoprank produce-sample``), for demos, tests and benchmarks.

The first pass creates every item of the slice; then ``updates`` random items get a new title
(a word appended or removed) and ``deletes`` random items are deleted, each at the item's
next version. Versions start at ``version_base`` (default: now in milliseconds), so a second
replay is newer than the first instead of being dropped as stale.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

from service.catalogue import Catalogue
from service.stream.events import DeleteEvent, UpsertEvent, encode_event

_EXTRA_WORDS = ("new", "pro", "2-pack", "heavy duty", "white", "black", "compact", "premium", "outdoor")


def sample_events(catalogue: Catalogue, *, updates: int = 0, deletes: int = 0, seed: int = 0,
                  version_base: int | None = None) -> Iterator[UpsertEvent | DeleteEvent]:
    """Creates, then random updates and deletes, in the order they should be produced."""
    rng = random.Random(seed)
    base = int(time.time() * 1000) if version_base is None else version_base
    versions: dict[str, int] = {}
    titles = dict(zip(catalogue.item_ids, catalogue.item_titles))
    for item_id, title in titles.items():
        versions[item_id] = base
        yield UpsertEvent(type="upsert", item_id=item_id, version=base, title=title)
    live = list(titles)
    for _ in range(updates):
        item_id = rng.choice(live)
        versions[item_id] += 1
        yield UpsertEvent(type="upsert", item_id=item_id, version=versions[item_id],
                          title=f"{titles[item_id]} {rng.choice(_EXTRA_WORDS)}")
    for item_id in rng.sample(live, min(deletes, len(live))):
        versions[item_id] += 1
        yield DeleteEvent(type="delete", item_id=item_id, version=versions[item_id])


def produce(producer, events, *, topic: str, rate_per_s: float = 0.0) -> int:
    """Send events keyed by item id (optionally paced to ``rate_per_s``); returns how many."""
    started = time.perf_counter()
    sent = 0
    for event in events:
        if rate_per_s > 0:
            delay_s = started + sent / rate_per_s - time.perf_counter()
            if delay_s > 0:
                time.sleep(delay_s)
        producer.send(topic, key=event.item_id.encode("utf-8"), value=encode_event(event))
        sent += 1
    producer.flush()
    return sent
